/*
 * wk_stats.c: the worker's statistics hooks (see wk_stats.h).
 * Runs in: a worker. Writes only this worker's slot of the shared segment.
 *
 * Times: a request runs from the later of its first message being forwarded
 * (s->request_start_us) and the previous ReadyForQuery (pipelined requests)
 * to its ReadyForQuery. A transaction runs from the start of its first
 * request to the ReadyForQuery with status 'I'; the part of it when no
 * request was running is idle-in-transaction time.
 */
#include "worker/wk_stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "shared/stats.h"
#include "sql/sql_classify.h"
#include "worker/wk_lsn.h"
#include "worker/wk_session.h"

#define WK_STATS_PUBLISH_US 1000000 /* query cache rows and connection details */

struct shm_client *g_wk_client_rows;
struct shm_server *g_wk_server_rows;

static uint64_t wk_stats_next_snap_us;
static uint64_t wk_stats_next_publish_us;

void
wk_stats_init(void)
{
	g_wk_client_rows = shm_client((uint32_t)g_wk.slot, 0);
	g_wk_server_rows = shm_server((uint32_t)g_wk.slot, 0);
}

/*
 * s's shm row, or NULL: listeners have none, and a server gives its row back
 * (wk_server_gone) before it leaves its pool's lists.
 */
static struct shm_server *
wk_stats_server_row(const struct wk_server *s)
{
	return s->row < g_shm->servers_per_worker ? wk_stats_server_row_at(s->row) : NULL;
}

void
wk_stats_ready(struct wk_server *s, struct wk_client *c, char st)
{
	/* in a local: the compiler would reload p->stats around every atomic store */
	struct shm_pool_stats *ps = s->pool->stats;
	uint64_t now = g_wk.mono_us;
	uint64_t start =
		s->request_start_us > s->stat_ready_us ? s->request_start_us : s->stat_ready_us;
	uint64_t qt = now > start ? now - start : 0;
	struct shm_server *r = wk_stats_server_row_at(s->row);
	struct shm_client *cr = c ? wk_stats_client_row(c->row) : NULL;

	shm_stat_add(&ps->cnt[SHM_STAT_QUERY], 1);
	shm_stat_add(&ps->cnt[SHM_STAT_QUERY_US], qt);
	stats_hist_add(ps, SHM_HIST_QUERY, qt);
	if (!s->stat_in_tx) {
		s->stat_tx_start_us = start;
		s->stat_tx_query_us = 0;
	}
	s->stat_tx_query_us += qt;
	if (cr)
		cr->query_time_us += qt;
	if (st == 'I') {
		uint64_t xt = now > s->stat_tx_start_us ? now - s->stat_tx_start_us : 0;

		shm_stat_add(&ps->cnt[SHM_STAT_XACT], 1);
		shm_stat_add(&ps->cnt[SHM_STAT_XACT_US], xt);
		shm_stat_add(&ps->cnt[SHM_STAT_IDLE_XACT_US],
			     xt > s->stat_tx_query_us ? xt - s->stat_tx_query_us : 0);
		stats_hist_add(ps, SHM_HIST_XACT, xt);
		if (cr)
			cr->xact_time_us += xt;
		s->stat_in_tx = false;
	} else {
		s->stat_in_tx = true;
	}
	s->stat_ready_us = now;
	r->tx_status = (uint8_t)st;
	r->ready_us = g_wk.now_us;
}

void
wk_stats_assign(struct wk_pool *p, struct wk_client *c)
{
	uint64_t w = g_wk.mono_us > c->wait_start_us ? g_wk.mono_us - c->wait_start_us : 0;

	wk_stats_add(p, SHM_STAT_ASSIGN, 1);
	wk_stats_add(p, SHM_STAT_WAIT_US, w);
	wk_stats_client_row(c->row)->wait_time_us += w;
}

void
wk_stats_connected(struct wk_server *s)
{
	wk_stats_add(s->pool, SHM_STAT_CONNECT, 1);
	wk_stats_add(s->pool, SHM_STAT_CONNECT_US,
		     g_wk.mono_us > s->connect_us ? g_wk.mono_us - s->connect_us : 0);
	s->stat_ready_us = g_wk.mono_us;
	wk_stats_connect_result(s->pool, false);
}

void
wk_stats_error(struct wk_server *s, struct wk_client *c)
{
	struct shm_server *r = wk_stats_server_row(s);

	wk_stats_add(s->pool, SHM_STAT_ERRORS, 1);
	if (r)
		r->errors++;
	if (c)
		wk_stats_client_row(c->row)->errors++;
}

/*
 * Whether tag (n bytes, not NUL-terminated) starts with word w (wn bytes)
 * followed by a blank or its end. Called with literals, so the compare is a
 * load or two, not a call: this runs for every statement.
 */
static inline bool
wk_stats_tag_is_n(const char *tag, size_t n, const char *w, size_t wn)
{
	return n >= wn && memcmp(tag, w, wn) == 0 && (n == wn || tag[wn] == ' ' || tag[wn] == '\0');
}

#define WK_STATS_TAG_IS(tag, n, lit) wk_stats_tag_is_n((tag), (n), (lit), sizeof(lit) - 1)

/* The row count at the end of a tag of n bytes ("INSERT 0 5", "UPDATE 5"); 0 if none. */
static uint64_t
wk_stats_tag_rows(const char *tag, size_t n)
{
	char num[WK_STATS_TAG_MAX];
	size_t i = n;

	while (i > 0 && tag[i - 1] != ' ')
		i--;
	if (i == 0)
		return 0;
	memcpy(num, tag + i, n - i); /* n < WK_STATS_TAG_MAX */
	num[n - i] = '\0';
	return strtoull(num, NULL, 10);
}

/* What a CommandComplete tag says a client statement did. */
enum wk_stats_kind {
	WK_STATS_NEUTRAL = 0, /* transaction and session control, cursors, LISTEN/NOTIFY */
	WK_STATS_READ,
	WK_STATS_WRITE,
	WK_STATS_INSERT, /* writes that report rows */
	WK_STATS_UPDATE,
	WK_STATS_DELETE,
};

/*
 * Dispatch on the first letter, so that the usual tags cost a compare or
 * two: this runs for every statement.
 */
static enum wk_stats_kind
wk_stats_tag_kind(const char *tag, size_t n, bool is_copy_in)
{
	if (n == 0)
		return WK_STATS_NEUTRAL;
	switch (tag[0]) {
	case 'S':
		if (WK_STATS_TAG_IS(tag, n, "SELECT") || WK_STATS_TAG_IS(tag, n, "SHOW"))
			return WK_STATS_READ;
		if (WK_STATS_TAG_IS(tag, n, "SET") || WK_STATS_TAG_IS(tag, n, "SAVEPOINT") ||
		    WK_STATS_TAG_IS(tag, n, "START"))
			return WK_STATS_NEUTRAL;
		return WK_STATS_WRITE; /* SECURITY LABEL */
	case 'I':
		return WK_STATS_TAG_IS(tag, n, "INSERT") ? WK_STATS_INSERT : WK_STATS_WRITE;
	case 'U':
		if (WK_STATS_TAG_IS(tag, n, "UPDATE"))
			return WK_STATS_UPDATE;
		return WK_STATS_TAG_IS(tag, n, "UNLISTEN") ? WK_STATS_NEUTRAL : WK_STATS_WRITE;
	case 'D':
		if (WK_STATS_TAG_IS(tag, n, "DELETE"))
			return WK_STATS_DELETE;
		if (WK_STATS_TAG_IS(tag, n, "DISCARD") || WK_STATS_TAG_IS(tag, n, "DEALLOCATE") ||
		    WK_STATS_TAG_IS(tag, n, "DECLARE"))
			return WK_STATS_NEUTRAL;
		return WK_STATS_WRITE; /* DROP, DO */
	case 'C':
		if (WK_STATS_TAG_IS(tag, n, "COPY"))
			return is_copy_in ? WK_STATS_INSERT : WK_STATS_READ;
		if (WK_STATS_TAG_IS(tag, n, "COMMIT") || WK_STATS_TAG_IS(tag, n, "CLOSE") ||
		    WK_STATS_TAG_IS(tag, n, "CHECKPOINT"))
			return WK_STATS_NEUTRAL;
		return WK_STATS_WRITE; /* CREATE, CALL, CLUSTER, COMMENT */
	case 'F':
		return WK_STATS_TAG_IS(tag, n, "FETCH") ? WK_STATS_READ : WK_STATS_WRITE;
	case 'E':
		return WK_STATS_TAG_IS(tag, n, "EXPLAIN") ? WK_STATS_READ : WK_STATS_WRITE;
	case 'B':
		return WK_STATS_TAG_IS(tag, n, "BEGIN") ? WK_STATS_NEUTRAL : WK_STATS_WRITE;
	case 'R':
		if (WK_STATS_TAG_IS(tag, n, "ROLLBACK") || WK_STATS_TAG_IS(tag, n, "RELEASE") ||
		    WK_STATS_TAG_IS(tag, n, "RESET"))
			return WK_STATS_NEUTRAL;
		return WK_STATS_WRITE; /* REINDEX, REFRESH, REVOKE */
	case 'P':
		return WK_STATS_TAG_IS(tag, n, "PREPARE") ? WK_STATS_NEUTRAL : WK_STATS_WRITE;
	case 'L':
		if (WK_STATS_TAG_IS(tag, n, "LISTEN") || WK_STATS_TAG_IS(tag, n, "LOAD"))
			return WK_STATS_NEUTRAL;
		return WK_STATS_WRITE; /* LOCK */
	case 'N':
		return WK_STATS_TAG_IS(tag, n, "NOTIFY") ? WK_STATS_NEUTRAL : WK_STATS_WRITE;
	case 'M':
		return WK_STATS_TAG_IS(tag, n, "MOVE") ? WK_STATS_NEUTRAL : WK_STATS_WRITE;
	case '\0':
		return WK_STATS_NEUTRAL;
	default:
		return WK_STATS_WRITE; /* ALTER, GRANT, TRUNCATE, VACUUM, ANALYZE, ... */
	}
}

/* A write's counters (out of line: the usual statement is a read). */
static __attribute__((noinline)) void
wk_stats_write(struct wk_pool *p, enum wk_stats_kind kind, const char *tag, size_t n)
{
	switch (kind) {
	case WK_STATS_INSERT:
		wk_stats_add(p, SHM_STAT_ROWS_INSERTED, wk_stats_tag_rows(tag, n));
		break;
	case WK_STATS_UPDATE:
		wk_stats_add(p, SHM_STAT_ROWS_UPDATED, wk_stats_tag_rows(tag, n));
		break;
	case WK_STATS_DELETE:
		wk_stats_add(p, SHM_STAT_ROWS_DELETED, wk_stats_tag_rows(tag, n));
		break;
	default:
		break;
	}
	wk_stats_add(p, SHM_STAT_WRITES, 1);
}

/* ROLLBACK, ABORT, a COMMIT that failed, pgdog's own cleanup. */
static __attribute__((noinline)) void
wk_stats_rollback(struct wk_server *s)
{
	struct shm_server *r = wk_stats_server_row(s);

	wk_stats_add(s->pool, SHM_STAT_ROLLBACKS, 1);
	if (r)
		r->rollbacks++;
}

void
wk_stats_command(struct wk_server *s, struct wk_cursor *cur, size_t off, size_t tag_len)
{
	uint8_t tmp[WK_STATS_TAG_MAX];
	size_t n = tag_len < sizeof(tmp) - 1 ? tag_len : sizeof(tmp) - 1;
	/* in place when the tag lies in one piece of the buffer (the usual case): no copy */
	const char *tag = (const char *)wk_cursor_at(cur, off + PGW_HDR_LEN, n, tmp);
	enum wk_stats_kind kind;

	if (!tag) {
		n = wk_cursor_copy(cur, off + PGW_HDR_LEN, tmp, n);
		tag = (const char *)tmp;
	}
	if (n && tag[n - 1] == '\0')
		n--; /* tag_len counts the tag's NUL */
	if (n && tag[0] == 'R' && WK_STATS_TAG_IS(tag, n, "ROLLBACK"))
		wk_stats_rollback(s);
	if (s->internal_ready > 0)
		return; /* pgdog's own statement: not the client's read or write */
	kind = wk_stats_tag_kind(tag, n, s->is_copy_in);
	if (kind == WK_STATS_READ)
		wk_stats_add(s->pool, SHM_STAT_READS, 1);
	else if (kind != WK_STATS_NEUTRAL)
		wk_stats_write(s->pool, kind, tag, n);
}

void
wk_stats_auth(struct wk_pool *p, bool is_ok)
{
	if (!p || !p->stats)
		return;
	wk_stats_add(p, SHM_STAT_AUTH, 1);
	if (!is_ok)
		wk_stats_add(p, SHM_STAT_AUTH_FAILED, 1);
}

void
wk_stats_connect_result(struct wk_pool *p, bool is_failed)
{
	if (p->stats)
		atomic_store_explicit(&p->stats->is_connect_failed, is_failed,
				      memory_order_relaxed);
}

/* The most hit statements of this worker's SQL cache into its slot. */
static void
wk_stats_publish_queries(struct shm_worker *w)
{
	struct sql_cache_query top[SHM_QC_ROWS];
	size_t n = sql_cache_top(top, SHM_QC_ROWS);

	for (size_t i = 0; i < SHM_QC_ROWS; i++) {
		struct shm_qc_row *r = &w->qc_rows[i];

		shm_row_write_begin(&r->seq);
		if (i < n) {
			size_t len = top[i].text_len < sizeof(r->text) - 1 ? top[i].text_len
									   : sizeof(r->text) - 1;

			memcpy(r->text, top[i].text, len);
			r->text[len] = '\0';
			r->text_len = (uint32_t)(top[i].text_len ? top[i].text_len : 1);
			r->hash = top[i].hash;
			r->hits = top[i].hits;
			r->misses = 1; /* parsed once when it entered the cache */
			/* every statement goes to one server: pgdog does not shard yet */
			r->direct = top[i].hits + 1;
			r->multi = 0;
		} else {
			r->text_len = 0;
		}
		shm_row_write_end(&r->seq);
	}
}

/* value of parameter name among params (ParameterStatus names), or "". */
static const char *
wk_stats_param(const struct wk_server_param *params, size_t cnt, const char *name)
{
	for (size_t i = 0; i < cnt; i++)
		if (strcasecmp(params[i].name, name) == 0)
			return params[i].value;
	return "";
}

static const char *const wk_stats_fd_params[] = { "client_encoding", "DateStyle", "TimeZone",
						  "standard_conforming_strings" };

/* The four settings SHOW FDS reports, as the client sees them. */
static void
wk_stats_publish_client(struct wk_client *c)
{
	struct shm_client *r = wk_stats_client_row(c->row);
	char *dst[] = { r->client_encoding, r->datestyle, r->timezone, r->std_strings };
	size_t dst_len[] = { sizeof(r->client_encoding), sizeof(r->datestyle), sizeof(r->timezone),
			     sizeof(r->std_strings) };

	shm_row_write_begin(&r->seq);
	r->prepared_cnt = (uint32_t)c->prep_names.cnt;
	r->pins = c->pins;
	for (size_t i = 0; i < ARRAY_SIZE(wk_stats_fd_params); i++) {
		const struct wk_setting *v = wk_session_get(&c->session, wk_stats_fd_params[i]);
		const char *val = v         ? v->value
				  : c->pool ? wk_stats_param(c->pool->params, c->pool->params_cnt,
							     wk_stats_fd_params[i])
					    : "";

		snprintf(dst[i], dst_len[i], "%s", val);
	}
	shm_row_write_end(&r->seq);
}

static void
wk_stats_publish_server(struct wk_server *s)
{
	struct shm_server *r = wk_stats_server_row(s);
	char *dst[4];
	size_t dst_len[4];

	if (!r)
		return;
	dst[0] = r->client_encoding;
	dst[1] = r->datestyle;
	dst[2] = r->timezone;
	dst[3] = r->std_strings;
	dst_len[0] = sizeof(r->client_encoding);
	dst_len[1] = sizeof(r->datestyle);
	dst_len[2] = sizeof(r->timezone);
	dst_len[3] = sizeof(r->std_strings);
	shm_row_write_begin(&r->seq);
	r->prepared_cnt = (uint32_t)s->held.cnt;
	for (size_t i = 0; i < ARRAY_SIZE(wk_stats_fd_params); i++)
		snprintf(dst[i], dst_len[i], "%s",
			 wk_stats_param(s->params, s->params_cnt, wk_stats_fd_params[i]));
	shm_row_write_end(&r->seq);
}

static void
wk_stats_publish_conns(void)
{
	struct list *pos;

	list_foreach (pos, &g_wk.clients) {
		struct wk_client *c = list_entry(pos, struct wk_client, node);

		if (c->state != WK_CLIENT_CLOSING)
			wk_stats_publish_client(c);
	}
	for (uint32_t i = 0; i < wk_pool_count(); i++) {
		struct wk_pool *p = wk_pool_get(i);

		for (int st = 0; st < WK_SERVER_STATE_CNT; st++)
			list_foreach (pos, &p->servers[st])
				wk_stats_publish_server(list_entry(pos, struct wk_server, node));
	}
}

void
wk_stats_tick(void)
{
	struct shm_worker *w = shm_worker((uint32_t)g_wk.slot);
	struct sql_cache_stats qc;

	sql_cache_stats(&qc);
	atomic_store_explicit(&w->qc_hits, qc.hits, memory_order_relaxed);
	atomic_store_explicit(&w->qc_misses, qc.misses, memory_order_relaxed);
	atomic_store_explicit(&w->qc_parses, qc.parses, memory_order_relaxed);
	atomic_store_explicit(&w->qc_prefiltered, qc.prefiltered, memory_order_relaxed);
	atomic_store_explicit(&w->qc_entries, qc.entries, memory_order_relaxed);
	wk_lsn_tick(); /* worker 0: SHOW REPLICATION's checks */
	if (g_wk.mono_us >= wk_stats_next_publish_us) {
		wk_stats_next_publish_us = g_wk.mono_us + WK_STATS_PUBLISH_US;
		wk_stats_publish_queries(w);
		wk_stats_publish_conns();
	}
	if (g_wk.mono_us < wk_stats_next_snap_us)
		return;
	wk_stats_next_snap_us = g_wk.mono_us + (uint64_t)g_cfg->stats_period * 1000;
	for (uint32_t i = 0; i < wk_pool_count(); i++) {
		struct wk_pool *p = wk_pool_get(i);

		/* pool indexes run to the segment's capacity: unused ones have no stats */
		if (p->stats)
			stats_snapshot(p->stats, g_wk.mono_us);
	}
	atomic_store_explicit(&w->rss_bytes, stats_rss_bytes((int)getpid()), memory_order_relaxed);
}
