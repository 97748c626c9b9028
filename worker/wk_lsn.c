/*
 * wk_lsn.c: replication checks for SHOW REPLICATION (see wk_lsn.h).
 * Runs in: worker 0. Writes only its own slot's shm_pool_stats rows.
 *
 * One check connection per [databases.*] section, opened through the first
 * live pool of the section (its user's credentials) as a listener-type
 * server connection: outside pool_size and the pool's lists. A check is one
 * simple Query; its single DataRow is published when its ReadyForQuery
 * arrives. A connection that does not log in within connect_timeout, or
 * whose check is unanswered for two intervals, is closed and reopened one
 * interval later. Nothing here runs on the request path.
 */
#include "worker/wk_lsn.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/config.h"
#include "shared/log.h"
#include "shared/pgw.h"
#include "shared/shm.h"
#include "worker/wk_conn.h"
#include "worker/wk_pool.h"
#include "worker/wk_server.h"

#define WK_LSN_MSG_MAX    4096
#define WK_LSN_CLOSING_US (1000 * 1000) /* a closed connection's backend gets this long */

/*
 * Positions as byte offsets (pg_lsn - '0/0'), so that they compare as
 * numbers; times as microseconds since the epoch. NULL (no transaction
 * replayed yet) becomes 0.
 */
static const char wk_lsn_query[] =
	"SELECT pg_is_in_recovery()::int, "
	"(CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_replay_lsn(), '0/0') "
	"ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::bigint, "
	"coalesce((extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::bigint, 0), "
	"(extract(epoch FROM now()) * 1000000)::bigint, "
	"(CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_replay_lsn(), '0/0') "
	"ELSE pg_current_wal_lsn() END)::text";

#define WK_LSN_COLS 5

struct wk_lsn_mon {
	struct wk_server *s;   /* the check connection; NULL: none */
	struct wk_server *old; /* closed, until its backend hangs up */
	bool is_ready;         /* logged in */
	bool has_row;          /* the check in flight returned its row */
	bool has_error;        /* ... or an error */
	uint64_t sent_us;      /* monotonic: when the check in flight was sent; 0: none */
	uint64_t next_us;      /* monotonic: the next check */
	uint64_t retry_after_us;
	struct shm_lsn row; /* the figures being read */
};

/* By pool index (wk_pool_get); a section's check lives at its first live pool. */
static struct wk_lsn_mon *wk_lsn_mons;
static uint32_t wk_lsn_mons_cnt;

static uint64_t
wk_lsn_interval_us(void)
{
	return (uint64_t)g_cfg->lsn_check_interval * 1000;
}

/* Whether checks run: an interval, and a replica to check. */
static bool
wk_lsn_is_wanted(void)
{
	if (g_wk.slot != 0)
		return false;
	if (g_cfg->lsn_check_interval <= 0 || g_wk.is_shutting_down)
		return false;
	for (size_t i = 0; i < g_cfg->databases_cnt; i++)
		if (g_cfg->databases[i].role != CONFIG_ROLE_PRIMARY)
			return true;
	return false;
}

static bool
wk_lsn_pool_is_live(const struct wk_pool *p)
{
	return p->cfg && !p->is_draining && p->stats;
}

/* Whether pool k is the first live pool of its database section. */
static bool
wk_lsn_is_lead(uint32_t k)
{
	const struct wk_pool *p = wk_pool_get(k);

	if (!wk_lsn_pool_is_live(p))
		return false;
	for (uint32_t j = 0; j < k; j++) {
		const struct wk_pool *q = wk_pool_get(j);

		if (wk_lsn_pool_is_live(q) && q->db == p->db)
			return false;
	}
	return true;
}

static struct wk_lsn_mon *
wk_lsn_mon_of(const struct wk_server *s)
{
	uint32_t k = s->pool->idx;

	if (k < wk_lsn_mons_cnt && wk_lsn_mons[k].s == s)
		return &wk_lsn_mons[k];
	return NULL;
}

/* Give a closed connection's backend time to go, then let the server object go. */
static void
wk_lsn_reap_old(struct wk_lsn_mon *m)
{
	if (m->old && m->old->state == WK_SERVER_CLOSING &&
	    g_wk.mono_us - m->old->closing_since_us > WK_LSN_CLOSING_US)
		wk_server_gone(m->old);
}

/* Copy the figures of the check into every pool of lead's database section. */
static void
wk_lsn_publish(const struct wk_pool *lead, const struct shm_lsn *row)
{
	for (uint32_t j = 0; j < wk_pool_count(); j++) {
		struct wk_pool *p = wk_pool_get(j);
		struct shm_lsn *dst;

		if (!wk_lsn_pool_is_live(p) || p->db != lead->db)
			continue;
		dst = &p->stats->lsn;
		shm_row_write_begin(&dst->seq);
		dst->is_in_recovery = row->is_in_recovery;
		dst->checked_us = g_wk.now_us;
		dst->lsn = row->lsn;
		dst->replay_us = row->replay_us;
		dst->server_now_us = row->server_now_us;
		memcpy(dst->lsn_text, row->lsn_text, sizeof(dst->lsn_text));
		shm_row_write_end(&dst->seq);
	}
}

static void
wk_lsn_send(struct wk_lsn_mon *m)
{
	struct pgw_buf *b = &g_wk.scratch;

	pgw_buf_reset(b);
	pgw_put_query(b, wk_lsn_query);
	if (wk_conn_send(&m->s->io, b) < 0) {
		wk_server_close(m->s, "out of memory");
		return;
	}
	m->sent_us = g_wk.mono_us;
	m->has_row = m->has_error = false;
}

void
wk_lsn_tick(void)
{
	uint32_t cnt = wk_pool_count();
	bool is_wanted = wk_lsn_is_wanted();

	if (cnt > wk_lsn_mons_cnt && is_wanted) {
		struct wk_lsn_mon *v = realloc(wk_lsn_mons, cnt * sizeof(*v));

		if (v) { /* else tried again next sweep, with the table it has */
			memset(v + wk_lsn_mons_cnt, 0, (cnt - wk_lsn_mons_cnt) * sizeof(*v));
			wk_lsn_mons = v;
			wk_lsn_mons_cnt = cnt;
		}
	}
	for (uint32_t k = 0; k < wk_lsn_mons_cnt; k++) {
		struct wk_lsn_mon *m = &wk_lsn_mons[k];
		uint64_t now = g_wk.mono_us, connect = (uint64_t)g_cfg->connect_timeout * 1000;

		wk_lsn_reap_old(m);
		if (!is_wanted || k >= cnt || !wk_lsn_is_lead(k)) {
			if (m->s)
				wk_server_close(m->s, "replication check no longer needed");
			continue;
		}
		if (!m->s) {
			if (now < m->retry_after_us)
				continue;
			m->s = wk_server_connect_listener(wk_pool_get(k));
			m->retry_after_us = now + wk_lsn_interval_us();
			if (!m->s) {
				log_warn(NULL, "replication check of %s: cannot open a connection",
					 wk_pool_get(k)->name);
				continue;
			}
			m->s->is_monitor = true;
			m->is_ready = false;
			m->sent_us = 0;
			continue;
		}
		if (!m->is_ready) {
			if (connect && now - m->s->connect_us > connect)
				wk_server_close(m->s, "connect_timeout reached");
			continue;
		}
		if (m->sent_us && now - m->sent_us > 2 * wk_lsn_interval_us()) {
			log_warn(&m->s->lctx,
				 "replication check unanswered for %d ms: reconnecting",
				 2 * g_cfg->lsn_check_interval);
			wk_server_close(m->s, "replication check timed out");
			continue;
		}
		if (!m->sent_us && now >= m->next_us)
			wk_lsn_send(m);
	}
}

void
wk_lsn_ready(struct wk_server *s)
{
	struct wk_lsn_mon *m = wk_lsn_mon_of(s);

	if (!m) {
		wk_server_close(s, "replication check no longer needed");
		return;
	}
	log_debug(&s->lctx, "replication check connected, backend pid %u", s->backend_pid);
	m->is_ready = true;
	wk_lsn_send(m); /* the first figures now */
}

static bool
wk_lsn_parse_row(const uint8_t *body, size_t len, struct shm_lsn *row)
{
	char v[WK_LSN_COLS][32];

	for (int i = 0; i < WK_LSN_COLS; i++)
		if (pgw_parse_data_col(body, len, WK_LSN_COLS, (unsigned)i, v[i], sizeof(v[i])) < 0)
			return false;
	row->is_in_recovery = v[0][0] == '1';
	row->lsn = strtoull(v[1], NULL, 10);
	row->replay_us = strtoull(v[2], NULL, 10);
	row->server_now_us = strtoull(v[3], NULL, 10);
	snprintf(row->lsn_text, sizeof(row->lsn_text), "%.23s", v[4]); /* X/X: 17 at most */
	return true;
}

void
wk_lsn_read(struct wk_server *s)
{
	struct wk_lsn_mon *m = wk_lsn_mon_of(s);
	struct evbuffer *in = s->io.in;

	if (!m) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	for (;;) {
		struct pgw_hdr h;
		const uint8_t *msg;
		struct pgw_error_fields f;

		if (!wk_server_next_msg(s, WK_LSN_MSG_MAX, &h, &msg,
					"invalid message on the replication check connection"))
			return;
		switch (h.type) {
		case PGW_MSG_DATA_ROW:
			if (!wk_lsn_parse_row(msg + PGW_HDR_LEN, h.len - 4, &m->row)) {
				wk_server_close(s, "unexpected row from the replication check");
				return;
			}
			m->has_row = true;
			break;
		case PGW_MSG_ERROR:
			if (!m->has_error &&
			    pgw_parse_error(msg + PGW_HDR_LEN, h.len - 4, &f) == 0 && f.message)
				log_warn(&s->lctx, "replication check failed: %.200s", f.message);
			m->has_error = true;
			break;
		case PGW_MSG_READY:
			if (m->has_row && !m->has_error)
				wk_lsn_publish(s->pool, &m->row);
			m->sent_us = 0;
			m->next_us = g_wk.mono_us + wk_lsn_interval_us();
			break;
		case PGW_MSG_ROW_DESCRIPTION:
		case PGW_MSG_COMMAND_COMPLETE:
		case PGW_MSG_NOTICE:
		case PGW_MSG_PARAMETER_STATUS:
		case PGW_MSG_NOTIFICATION:
			break;
		default:
			wk_server_close(s,
					"unexpected message on the replication check connection");
			return;
		}
		evbuffer_drain(in, pgw_msg_size(&h));
	}
}

void
wk_lsn_closed(struct wk_server *s)
{
	struct wk_lsn_mon *m = wk_lsn_mon_of(s);

	if (!m)
		return;
	if (m->old)
		wk_server_gone(m->old);
	m->old = s;
	m->s = NULL;
	m->is_ready = false;
	m->sent_us = 0;
	m->retry_after_us = g_wk.mono_us + wk_lsn_interval_us();
}

void
wk_lsn_freed(struct wk_server *s)
{
	for (uint32_t k = 0; k < wk_lsn_mons_cnt; k++) {
		if (wk_lsn_mons[k].s == s) {
			wk_lsn_mons[k].s = NULL;
			wk_lsn_mons[k].is_ready = false;
		}
		if (wk_lsn_mons[k].old == s)
			wk_lsn_mons[k].old = NULL;
	}
}

void
wk_lsn_cleanup(void)
{
	for (uint32_t k = 0; k < wk_lsn_mons_cnt; k++) {
		struct wk_lsn_mon *m = &wk_lsn_mons[k];

		if (m->s)
			wk_server_close(m->s, "worker exit");
		if (m->old)
			wk_server_gone(m->old);
	}
	/* a connection freed by the next reap must not find the table */
	free(wk_lsn_mons);
	wk_lsn_mons = NULL;
	wk_lsn_mons_cnt = 0;
}
