/*
 * wk_pubsub.c: LISTEN/NOTIFY fan-out in transaction mode (see wk_pubsub.h).
 * Runs in: a worker.
 *
 * Per pool this worker keeps a list of channels, each with the clients
 * listening on it, and at most one listener connection: a struct wk_server
 * with is_listener set, logged in by wk_server.c like any pool server but
 * kept off the pool's lists and outside pool_size. With N workers a pool has
 * up to N listeners, each LISTENing on its own clients' channels.
 *
 * Invariants:
 * - a channel exists while at least one client listens on it; the listener
 *   runs LISTEN when the channel is created and UNLISTEN when the last
 *   client leaves; every client on a channel also has the channel in its
 *   own list;
 * - queries to the listener are numbered (sent_seq); each ReadyForQuery
 *   completes the oldest (done_seq). A channel is LISTENed on the server
 *   once done_seq >= its listen_seq; a client's LISTEN is answered only
 *   then, so a NOTIFY committed after the client saw "LISTEN" reaches it;
 * - notifications reach a client only between whole messages and between
 *   its transactions: written at once when it has no server (or its pinned
 *   server is idle between transactions), else queued (at most
 *   pub_sub_channel_size) and written right after the ReadyForQuery 'I'
 *   that ends its transaction (or, for a client that reads too slowly,
 *   once its output drains). A client whose queue overflows is closed
 *   with FATAL 54000 at that boundary: notifications are never dropped
 *   silently; nor when the listener is lost: its clients get FATAL 08006
 *   at their next boundary (they reconnect and LISTEN again);
 * - a client's LISTEN/UNLISTEN of an open transaction (ops) takes effect
 *   when it commits, in order, minus what a ROLLBACK TO undid; a Query
 *   with LISTEN among other statements, or any Query while ops are
 *   pending, is followed reply by reply (wk_pubsub_tx.c). The server never
 *   LISTENs for a client: a followed LISTEN runs as UNLISTEN there (a no-op
 *   on a pooled server) and its tag is turned back.
 */
#include "worker/wk_pubsub.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "shared/config.h"
#include "shared/hash.h"
#include "shared/log.h"
#include "shared/shm.h"
#include "sql/sql_classify.h"
#include "worker/wk_client.h"
#include "worker/wk_lsn.h"
#include "worker/wk_pool.h"
#include "worker/wk_pubsub_int.h"
#include "worker/wk_server.h"

#define WK_PUBSUB_MSG_MAX    (64 * 1024) /* NotificationResponse: payloads are under 8000 bytes */
#define WK_PUBSUB_AT_LOGIN   UINT64_MAX  /* listen_seq: LISTENed by the next login's query */
#define WK_PUBSUB_RETRY_US   (1000 * 1000)
#define WK_PUBSUB_CLOSING_US (1000 * 1000)
#define WK_PUBSUB_NO_ROW     UINT32_MAX
/* Closing flushes only this much (wk_conn_flush_now): the FATAL waits for the output to drain */
#define WK_PUBSUB_FATAL_ROOM (32 * 1024)

/* by pool index (wk_pool idx), each allocated on its first LISTEN; the array grows with the pools */
static struct wk_pubsub_pool **wk_pubsub_pools;
static size_t wk_pubsub_pools_cnt;
static uint32_t wk_pubsub_free_rows[SHM_LISTENERS_PER_WORKER];
static uint32_t wk_pubsub_free_rows_cnt;
static bool wk_pubsub_rows_ready;
static uint64_t wk_pubsub_next_id;
static struct pgw_buf wk_pubsub_msg; /* the notification being fanned out */
static bool wk_pubsub_msg_ready;

/* ---- shm rows (SHOW LISTENERS) ------------------------------------------ */

static void
wk_pubsub_row_publish(const struct wk_pubsub_chan *ch)
{
	struct shm_listener *r;
	const struct wk_server *s = ch->pp->listener;

	if (ch->row == WK_PUBSUB_NO_ROW)
		return;
	r = shm_listener((uint32_t)g_wk.slot, ch->row);
	shm_row_write_begin(&r->seq);
	r->pool_idx = (int32_t)ch->pp->pool->idx;
	r->clients_cnt = (uint32_t)ch->clients_cnt;
	r->backend_pid = s && ch->pp->is_ready ? s->backend_pid : 0;
	r->id = ch->id;
	r->received = ch->received;
	r->delivered = ch->delivered;
	snprintf(r->channel, sizeof(r->channel), "%s", ch->name);
	snprintf(r->database, sizeof(r->database), "%s", ch->pp->pool->db->name);
	snprintf(r->user, sizeof(r->user), "%s", ch->pp->pool->user->name);
	shm_row_write_end(&r->seq);
}

static uint32_t
wk_pubsub_row_take(void)
{
	if (!wk_pubsub_rows_ready) {
		for (uint32_t i = 0; i < SHM_LISTENERS_PER_WORKER; i++)
			wk_pubsub_free_rows[i] = SHM_LISTENERS_PER_WORKER - 1 - i;
		wk_pubsub_free_rows_cnt = SHM_LISTENERS_PER_WORKER;
		wk_pubsub_rows_ready = true;
	}
	if (!g_shm || wk_pubsub_free_rows_cnt == 0)
		return WK_PUBSUB_NO_ROW;
	return wk_pubsub_free_rows[--wk_pubsub_free_rows_cnt];
}

static void
wk_pubsub_row_give(struct wk_pubsub_chan *ch)
{
	struct shm_listener *r;

	if (ch->row == WK_PUBSUB_NO_ROW)
		return;
	r = shm_listener((uint32_t)g_wk.slot, ch->row);
	shm_row_write_begin(&r->seq);
	r->id = 0;
	shm_row_write_end(&r->seq);
	wk_pubsub_free_rows[wk_pubsub_free_rows_cnt++] = ch->row;
	ch->row = WK_PUBSUB_NO_ROW;
}

static void
wk_pubsub_publish_pool(struct wk_pubsub_pool *pp)
{
	struct list *pos;

	list_foreach (pos, &pp->chans)
		wk_pubsub_row_publish(list_entry(pos, struct wk_pubsub_chan, node));
}

/* ---- tables -------------------------------------------------------------- */

/* The pub/sub state of c's pool, created on first use. NULL on out of memory. */
struct wk_pubsub_pool *
wk_pubsub_pool_of(struct wk_client *c)
{
	size_t idx;
	struct wk_pubsub_pool *pp;

	if (!c->pool)
		return NULL;
	idx = c->pool->idx;
	if (idx >= wk_pubsub_pools_cnt) {
		size_t n = idx + 1;
		struct wk_pubsub_pool **np = realloc(wk_pubsub_pools, n * sizeof(*np));

		if (!np)
			return NULL;
		memset(np + wk_pubsub_pools_cnt, 0, (n - wk_pubsub_pools_cnt) * sizeof(*np));
		wk_pubsub_pools = np;
		wk_pubsub_pools_cnt = n;
	}
	pp = wk_pubsub_pools[idx];
	if (pp)
		return pp;
	pp = calloc(1, sizeof(*pp));
	if (!pp)
		return NULL;
	pp->pool = c->pool;
	list_init(&pp->chans);
	list_init(&pp->waiters);
	list_init(&pp->holders);
	wk_pubsub_pools[idx] = pp;
	return pp;
}

static struct wk_pubsub_pool *
wk_pubsub_pool_of_server(const struct wk_server *s)
{
	if (s->pool->idx >= wk_pubsub_pools_cnt)
		return NULL;
	return wk_pubsub_pools[s->pool->idx];
}

static size_t
wk_pubsub_hash(const char *name)
{
	return fnv1a32(FNV1A32_INIT, name, strlen(name));
}

static struct wk_pubsub_chan *
wk_pubsub_chan_find(struct wk_pubsub_pool *pp, const char *name)
{
	struct wk_pubsub_chan *ch;

	if (!pp->buckets_cnt)
		return NULL;
	for (ch = pp->buckets[wk_pubsub_hash(name) & (pp->buckets_cnt - 1)]; ch; ch = ch->hnext)
		if (strcmp(ch->name, name) == 0)
			return ch;
	return NULL;
}

/*
 * Add ch to the hash (grown to keep chains short; a failed growth keeps the
 * old table, only slower). -1 when there is no table at all.
 */
static int
wk_pubsub_hash_add(struct wk_pubsub_pool *pp, struct wk_pubsub_chan *ch)
{
	size_t b;

	if (pp->chans_cnt >= 2 * pp->buckets_cnt) {
		size_t n = pp->buckets_cnt ? pp->buckets_cnt * 2 : 64;
		struct wk_pubsub_chan **nb = calloc(n, sizeof(*nb));

		if (nb) {
			for (size_t i = 0; i < pp->buckets_cnt; i++) {
				while (pp->buckets[i]) {
					struct wk_pubsub_chan *c = pp->buckets[i];

					pp->buckets[i] = c->hnext;
					b = wk_pubsub_hash(c->name) & (n - 1);
					c->hnext = nb[b];
					nb[b] = c;
				}
			}
			free(pp->buckets);
			pp->buckets = nb;
			pp->buckets_cnt = n;
		} else if (!pp->buckets_cnt) {
			return -1;
		}
	}
	b = wk_pubsub_hash(ch->name) & (pp->buckets_cnt - 1);
	ch->hnext = pp->buckets[b];
	pp->buckets[b] = ch;
	return 0;
}

static void
wk_pubsub_hash_del(struct wk_pubsub_pool *pp, struct wk_pubsub_chan *ch)
{
	struct wk_pubsub_chan **pos =
		&pp->buckets[wk_pubsub_hash(ch->name) & (pp->buckets_cnt - 1)];

	while (*pos && *pos != ch)
		pos = &(*pos)->hnext;
	if (*pos)
		*pos = ch->hnext;
}

/* Append LISTEN/UNLISTEN "name" (double quotes doubled: the name is exact). */
static void
wk_pubsub_put_cmd(struct pgw_buf *b, const char *verb, const char *name)
{
	pgw_put_bytes(b, verb, strlen(verb));
	pgw_put_bytes(b, " \"", 2);
	for (const char *p = name; *p; p++) {
		if (*p == '"')
			pgw_put_u8(b, '"');
		pgw_put_u8(b, (uint8_t)*p);
	}
	pgw_put_u8(b, '"');
}

/* End the message begun in b, send it to pp's listener and count it. -1 on out of memory. */
static int
wk_pubsub_send_msg(struct wk_pubsub_pool *pp, struct pgw_buf *b)
{
	pgw_end(b);
	if (b->has_error || wk_conn_send(&pp->listener->io, b) < 0)
		return -1;
	pp->sent_seq++;
	return 0;
}

/* Send one Query built from commands for each channel (or one channel). -1 on failure. */
static int
wk_pubsub_send_listen(struct wk_pubsub_pool *pp, const char *verb, struct wk_pubsub_chan *only,
		      const char *name)
{
	struct pgw_buf *b = &g_wk.scratch;
	struct list *pos;
	bool is_first = true;

	pgw_buf_reset(b);
	pgw_begin(b, PGW_MSG_QUERY);
	if (name) {
		wk_pubsub_put_cmd(b, verb, name);
	} else {
		list_foreach (pos, &pp->chans) {
			struct wk_pubsub_chan *ch = list_entry(pos, struct wk_pubsub_chan, node);

			if (only && ch != only)
				continue;
			if (!is_first)
				pgw_put_u8(b, ';');
			is_first = false;
			wk_pubsub_put_cmd(b, verb, ch->name);
		}
	}
	pgw_put_u8(b, 0);
	return wk_pubsub_send_msg(pp, b);
}

static void wk_pubsub_fail_waiters(struct wk_pubsub_pool *pp, const char *why);

/* Open the listener connection when channels need one and none is open. */
static void
wk_pubsub_pool_connect(struct wk_pubsub_pool *pp)
{
	char why[256];

	if (pp->listener || pp->chans_cnt == 0 || g_wk.mono_us < pp->retry_after_us)
		return;
	pp->is_ready = false;
	pp->sent_seq = pp->done_seq = 0;
	pp->listener = wk_server_connect_listener(pp->pool);
	if (!pp->listener) {
		snprintf(why, sizeof(why),
			 "pub/sub: cannot open a listener connection for pool %s: %s",
			 pp->pool->name, strerror(errno));
		log_warn(NULL, "%s", why);
		pp->retry_after_us = g_wk.mono_us + WK_PUBSUB_RETRY_US;
		wk_pubsub_fail_waiters(pp, why);
		return;
	}
	log_info(&pp->listener->lctx, "pub/sub: opening the listener connection for pool %s",
		 pp->pool->name);
}

/*
 * Reply to a LISTEN/UNLISTEN pgdog served: for the extended protocol, the
 * replies to Parse/Bind/Describe first (prefix: their reply types, '1', '2',
 * 't' (no parameters), 'n'), then CommandComplete and ReadyForQuery 'I'.
 */
static enum wk_rc
wk_pubsub_reply_status(struct wk_client *c, const char *prefix, const char *tag, char status)
{
	struct pgw_buf *b = &g_wk.scratch;

	pgw_buf_reset(b);
	for (const char *p = prefix; *p; p++) {
		pgw_begin(b, (uint8_t)*p);
		if (*p == PGW_MSG_PARAMETER_DESCRIPTION)
			pgw_put_u16(b, 0);
		pgw_end(b);
	}
	pgw_put_command_complete(b, tag);
	pgw_put_ready(b, status);
	if (wk_conn_send(&c->io, b) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	return WK_OK;
}

static enum wk_rc
wk_pubsub_reply(struct wk_client *c, const char *prefix, const char *tag)
{
	return wk_pubsub_reply_status(c, prefix, tag, 'I');
}

struct wk_pubsub_client *
wk_pubsub_client_get(struct wk_client *c, struct wk_pubsub_pool *pp)
{
	struct wk_pubsub_client *pc = c->pubsub;

	if (pc)
		return pc;
	pc = calloc(1, sizeof(*pc));
	if (!pc)
		return NULL;
	pc->c = c;
	pc->pp = pp;
	list_init(&pc->wait_node);
	list_init(&pc->hold_node);
	pgw_buf_init(&pc->queue);
	c->pubsub = pc;
	return pc;
}

static void
wk_pubsub_chan_free(struct wk_pubsub_chan *ch)
{
	struct wk_pubsub_pool *pp = ch->pp;

	list_del(&ch->node);
	wk_pubsub_hash_del(pp, ch);
	pp->chans_cnt--;
	wk_pubsub_row_give(ch);
	if (pp->listener && pp->is_ready &&
	    wk_pubsub_send_listen(pp, "UNLISTEN", NULL, ch->name) < 0)
		wk_server_close(pp->listener, "out of memory");
	free(ch->clients);
	free(ch);
	if (pp->chans_cnt == 0 && pp->listener) {
		/* nobody listens any more: no connection kept for nothing */
		log_debug(&pp->listener->lctx, "pub/sub: no channel left, closing the listener");
		wk_server_close(pp->listener, "no channel left to listen on");
	}
}

/* Free ch if nobody listens and no open transaction is about to. */
void
wk_pubsub_chan_release(struct wk_pubsub_chan *ch)
{
	if (ch->clients_cnt == 0 && ch->pending_cnt == 0)
		wk_pubsub_chan_free(ch);
	else
		wk_pubsub_row_publish(ch);
}

/* pc no longer waits for its LISTEN to be confirmed by the listener. */
static void
wk_pubsub_unwait(struct wk_pubsub_client *pc)
{
	list_del(&pc->wait_node);
	list_init(&pc->wait_node);
	pc->wait_chan = NULL;
	pc->is_query_wait = false;
}

/*
 * Read from c again after its LISTEN stopped reading (the answer is sent),
 * and run what it pipelined meanwhile; nothing if it is closing.
 */
static void
wk_pubsub_read_on(struct wk_client *c)
{
	if (!c->is_read_off || (c->state != WK_CLIENT_IDLE && c->state != WK_CLIENT_ACTIVE))
		return;
	wk_client_read_start(c);
	if (evbuffer_get_length(c->io.in))
		(void)wk_client_resume_input(c);
}

/* Take c off one channel (the channel goes when it was the last client). */
static void
wk_pubsub_leave(struct wk_client *c, size_t i)
{
	struct wk_pubsub_client *pc = c->pubsub;
	struct wk_pubsub_chan *ch = pc->chans[i];

	pc->chans[i] = pc->chans[--pc->chans_cnt];
	for (size_t j = 0; j < ch->clients_cnt; j++) {
		if (ch->clients[j] == c) {
			ch->clients[j] = ch->clients[--ch->clients_cnt];
			break;
		}
	}
	if (pc->wait_chan == ch)
		wk_pubsub_unwait(pc);
	wk_pubsub_chan_release(ch);
}

static ssize_t
wk_pubsub_client_index(const struct wk_pubsub_client *pc, const char *name)
{
	for (size_t i = 0; pc && i < pc->chans_cnt; i++)
		if (strcmp(pc->chans[i]->name, name) == 0)
			return (ssize_t)i;
	return -1;
}

/*
 * Forget the notifications queued for pc on channel (NULL: all): PostgreSQL
 * reads them after the commit, when the session no longer listens there.
 */
static void
wk_pubsub_queue_purge(struct wk_pubsub_client *pc, const char *channel)
{
	size_t r = 0, w = 0;
	uint32_t kept = 0;

	if (!pc->queued_cnt)
		return;
	while (r + PGW_HDR_LEN <= pc->queue.len) {
		struct pgw_hdr h;
		size_t size;

		if (pgw_read_header(pc->queue.data + r, PGW_HDR_LEN, &h) != 1)
			break;
		size = pgw_msg_size(&h);
		/* body: int32 pid, channel, payload */
		if (channel &&
		    strcmp((const char *)pc->queue.data + r + PGW_HDR_LEN + 4, channel) != 0) {
			memmove(pc->queue.data + w, pc->queue.data + r, size);
			w += size;
			kept++;
		}
		r += size;
	}
	pc->queue.len = w;
	pc->queued_cnt = kept;
}

/* Drop c's registration on channel (NULL: all of them) now. */
void
wk_pubsub_drop(struct wk_client *c, const char *channel)
{
	struct wk_pubsub_client *pc = c->pubsub;

	if (!pc)
		return;
	wk_pubsub_queue_purge(pc, channel);
	if (channel) {
		ssize_t i = wk_pubsub_client_index(pc, channel);

		if (i >= 0)
			wk_pubsub_leave(c, (size_t)i);
		return;
	}
	while (pc->chans_cnt)
		wk_pubsub_leave(c, pc->chans_cnt - 1);
}

bool
wk_pubsub_query_is_followed(const struct wk_client *c)
{
	return c->pubsub && c->pubsub->is_query_watched;
}

void
wk_pubsub_client_unlisten(struct wk_client *c, const char *channel)
{
	/* a Query pub/sub follows: its UNLISTENs take effect when it commits */
	if (c->pubsub && c->pubsub->is_query_watched)
		return;
	wk_pubsub_drop(c, channel);
}

/* Grow an array of elem-byte elements to hold one more. -1 on out of memory. */
int
wk_pubsub_grow_n(void **arr, size_t elem, size_t cnt, size_t *cap)
{
	void *n;
	size_t ncap;

	if (cnt < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 4;
	n = realloc(*arr, ncap * elem);
	if (!n)
		return -1;
	*arr = n;
	*cap = ncap;
	return 0;
}

/* Grow an array of pointers by one slot. -1 on out of memory. */
static int
wk_pubsub_grow(void ***arr, size_t cnt, size_t *cap)
{
	return wk_pubsub_grow_n((void **)arr, sizeof(void *), cnt, cap);
}

/*
 * The channel name of pp, created (and LISTENed by the listener, which is
 * opened if needed) when new. NULL on out of memory.
 */
struct wk_pubsub_chan *
wk_pubsub_chan_get(struct wk_pubsub_pool *pp, const char *name)
{
	struct wk_pubsub_chan *ch = wk_pubsub_chan_find(pp, name);

	if (ch)
		return ch;
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return NULL;
	ch->pp = pp;
	ch->id = ++wk_pubsub_next_id;
	snprintf(ch->name, sizeof(ch->name), "%s", name);
	ch->listen_seq = WK_PUBSUB_AT_LOGIN;
	if (wk_pubsub_hash_add(pp, ch) < 0) {
		free(ch);
		return NULL;
	}
	ch->row = wk_pubsub_row_take();
	list_append(&pp->chans, &ch->node);
	pp->chans_cnt++;
	if (pp->listener && pp->is_ready) {
		if (wk_pubsub_send_listen(pp, "LISTEN", ch, NULL) < 0)
			wk_server_close(pp->listener, "out of memory");
		else
			ch->listen_seq = pp->sent_seq;
	}
	wk_pubsub_pool_connect(pp);
	wk_pubsub_row_publish(ch);
	return ch;
}

/*
 * Register c on name. Returns 1 when the reply can go now, 0 when c waits
 * for the listener (only with can_wait), -1 on out of memory.
 */
int
wk_pubsub_listen(struct wk_client *c, struct wk_pubsub_pool *pp, const char *name, bool can_wait)
{
	struct wk_pubsub_client *pc = wk_pubsub_client_get(c, pp);
	struct wk_pubsub_chan *ch;

	if (!pc)
		return -1;
	pc->has_listened = true;
	if (wk_pubsub_client_index(pc, name) >= 0)
		return 1; /* LISTEN twice is LISTEN once */
	ch = wk_pubsub_chan_get(pp, name);
	if (!ch)
		return -1;
	if (wk_pubsub_grow((void ***)&ch->clients, ch->clients_cnt, &ch->clients_cap) < 0 ||
	    wk_pubsub_grow((void ***)&pc->chans, pc->chans_cnt, &pc->chans_cap) < 0) {
		wk_pubsub_chan_release(ch);
		return -1;
	}
	ch->clients[ch->clients_cnt++] = c;
	pc->chans[pc->chans_cnt++] = ch;
	wk_pubsub_row_publish(ch);
	if (!can_wait || (pp->listener && pp->is_ready && pp->done_seq >= ch->listen_seq))
		return 1;
	pc->wait_chan = ch;
	list_append(&pp->waiters, &pc->wait_node);
	return 0;
}

bool
wk_pubsub_chan_confirmed(const struct wk_pubsub_chan *ch)
{
	const struct wk_pubsub_pool *pp = ch->pp;

	return pp->listener && pp->is_ready && ch->listen_seq <= pp->done_seq;
}

/*
 * Are the channels pc's Query (pre) and open transaction (ops) LISTEN on
 * LISTENed by the listener on the server?
 */
static bool
wk_pubsub_pre_confirmed(const struct wk_pubsub_client *pc)
{
	for (size_t i = 0; i < pc->pre_cnt; i++)
		if (!wk_pubsub_chan_confirmed(pc->pre[i]))
			return false;
	for (size_t i = 0; i < pc->ops_cnt; i++)
		if (pc->ops[i].ch && !wk_pubsub_chan_confirmed(pc->ops[i].ch))
			return false;
	return true;
}

int
wk_pubsub_pre_add(struct wk_pubsub_client *pc, const char *name)
{
	struct wk_pubsub_chan *ch;

	if (wk_pubsub_grow((void ***)&pc->pre, pc->pre_cnt, &pc->pre_cap) < 0)
		return -1;
	ch = wk_pubsub_chan_get(pc->pp, name);
	if (!ch)
		return -1;
	for (size_t j = 0; j < pc->pre_cnt; j++)
		if (pc->pre[j] == ch)
			return 0;
	ch->pending_cnt++;
	pc->pre[pc->pre_cnt++] = ch;
	return 0;
}

int
wk_pubsub_prelisten(struct wk_client *c, struct wk_pubsub_client *pc, const struct sql_stmt *stmts,
		    size_t cnt)
{
	for (size_t i = 0; i < cnt; i++)
		if (stmts[i].kind == SQL_LISTEN && wk_pubsub_pre_add(pc, stmts[i].name) < 0)
			return -1;
	if (wk_pubsub_pre_confirmed(pc))
		return 0;
	if (!pc->is_query_wait) {
		log_debug(&c->lctx, "pub/sub: the Query waits for the listener's LISTEN");
		pc->is_query_wait = true;
		list_append(&pc->pp->waiters, &pc->wait_node);
	}
	wk_client_read_stop(c);
	return 1;
}

void
wk_pubsub_pre_release(struct wk_pubsub_client *pc)
{
	while (pc->pre_cnt) {
		struct wk_pubsub_chan *ch = pc->pre[--pc->pre_cnt];

		ch->pending_cnt--;
		wk_pubsub_chan_release(ch);
	}
}

/*
 * Send pp's listener a Sync: PostgreSQL answers it with a ReadyForQuery
 * alone (no transaction), after the notifications signalled to it before.
 * -1 on out of memory.
 */
static int
wk_pubsub_send_sync(struct wk_pubsub_pool *pp)
{
	struct pgw_buf *b = &g_wk.scratch;

	pgw_buf_reset(b);
	pgw_begin(b, PGW_MSG_SYNC);
	return wk_pubsub_send_msg(pp, b);
}

uint64_t
wk_pubsub_sync_seq(struct wk_pubsub_pool *pp)
{
	if (!pp->listener || !pp->is_ready)
		return 0;
	if (pp->done_seq < pp->sent_seq) {
		/* one query at a time does for every client: the next one */
		pp->is_sync_wanted = true;
		return pp->sent_seq + 1;
	}
	if (wk_pubsub_send_sync(pp) < 0) {
		wk_server_close(pp->listener, "out of memory");
		return 0;
	}
	return pp->sent_seq;
}

/* ---- serving LISTEN / UNLISTEN ------------------------------------------- */

/*
 * The transaction status c's server is at with nothing in flight ('I' or
 * 'T'), 0 otherwise (replies of its own would pass pgdog's).
 */
char
wk_pubsub_quiet_status(const struct wk_client *c)
{
	const struct wk_server *s = c->server;

	if (c->state != WK_CLIENT_ACTIVE || !s || s->state != WK_SERVER_ACTIVE ||
	    s->fwd_remaining || s->expect_ready || s->has_unsynced || s->internal_ready ||
	    s->slots_cnt || s->is_release_due || (s->tx_status != 'I' && s->tx_status != 'T'))
		return 0;
	return s->tx_status;
}

/*
 * Cheap test before classifying: the Query text at the front of in can
 * only be LISTEN or UNLISTEN when its first non-blank byte is l, u, or a
 * comment start. Keeps the parse cache out of the way of ordinary queries.
 */
static bool
wk_pubsub_may_be_ours(struct evbuffer *in, bool is_parse)
{
	uint8_t buf[PGW_HDR_LEN + 32];
	ev_ssize_t n = evbuffer_copyout(in, buf, sizeof(buf));
	ev_ssize_t i = PGW_HDR_LEN;

	if (is_parse) {
		/* only the unnamed statement: the name is empty */
		if (n > i && buf[i] != 0)
			return false;
		i++;
	}
	for (; i < n; i++) {
		switch (buf[i]) {
		case ' ':
		case '\t':
		case '\n':
		case '\r':
		case '\f':
			continue;
		case 'l':
		case 'L':
		case 'u':
		case 'U':
		case '-':
		case '/':
			return true;
		default:
			return false;
		}
	}
	return true; /* all blank so far: let the parser decide */
}

/* Is this statement one pgdog serves? */
static bool
wk_pubsub_is_ours(const struct sql_result *res)
{
	const struct sql_stmt *st = &res->stmts[0];

	/* its own flags (SQL_F_LISTEN, SQL_F_MAY_UNPIN) aside, nothing else in the text */
	if (!res->is_parsed || res->is_error || res->has_more || res->stmts_cnt != 1 ||
	    (res->flags & ~(SQL_F_LISTEN | SQL_F_MAY_UNPIN)))
		return false;
	if (st->is_truncated)
		return false;
	return st->kind == SQL_LISTEN || st->kind == SQL_UNLISTEN || st->kind == SQL_UNLISTEN_ALL;
}

/*
 * Serve st (LISTEN, UNLISTEN, UNLISTEN *) inside a transaction block
 * (ReadyForQuery 'T', nothing in flight): PostgreSQL applies it at COMMIT.
 * pgdog answers itself (prefix: see wk_pubsub_reply_status; CommandComplete,
 * ReadyForQuery 'T') and keeps the operation for the end of the transaction.
 */
static enum wk_rc
wk_pubsub_serve_in_tx(struct wk_client *c, const struct sql_stmt *st, size_t size,
		      const char *prefix)
{
	struct wk_pubsub_pool *pp = wk_pubsub_pool_of(c);

	if (!pp || wk_pubsub_op_add(c, pp, st->kind, st->name) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	evbuffer_drain(c->io.in, size);
	shm_client((uint32_t)g_wk.slot, c->row)->queries++;
	log_debug(&c->lctx, "pub/sub: %s%s%s%s in a transaction: applied at COMMIT",
		  st->kind == SQL_LISTEN ? "LISTEN" : "UNLISTEN",
		  st->kind == SQL_UNLISTEN_ALL ? " *" : " \"", st->name,
		  st->kind == SQL_UNLISTEN_ALL ? "" : "\"");
	return wk_pubsub_reply_status(c, prefix, st->kind == SQL_LISTEN ? "LISTEN" : "UNLISTEN",
				      'T');
}

/*
 * Serve st (LISTEN, UNLISTEN, UNLISTEN *) for c, whose request (size bytes
 * at the front of its input) is drained; prefix: see wk_pubsub_reply().
 * In a transaction block (its server quiet at 'T'): wk_pubsub_serve_in_tx.
 */
static enum wk_rc
wk_pubsub_serve(struct wk_client *c, const struct sql_stmt *st, size_t size, const char *prefix)
{
	struct evbuffer *in = c->io.in;
	struct wk_pubsub_pool *pp;

	if (wk_pubsub_quiet_status(c) == 'T')
		return wk_pubsub_serve_in_tx(c, st, size, prefix);
	pp = wk_pubsub_pool_of(c);
	if (!pp)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	evbuffer_drain(in, size);
	shm_client((uint32_t)g_wk.slot, c->row)->queries++;
	c->last_request_us = g_wk.mono_us;
	switch (st->kind) {
	case SQL_LISTEN:
		switch (wk_pubsub_listen(c, pp, st->name, true)) {
		case 1:
			log_debug(&c->lctx, "pub/sub: LISTEN \"%s\"", st->name);
			return wk_pubsub_reply(c, prefix, "LISTEN");
		case 0:
			log_debug(&c->lctx, "pub/sub: LISTEN \"%s\" waits for the listener",
				  st->name);
			snprintf(c->pubsub->wait_prefix, sizeof(c->pubsub->wait_prefix), "%s",
				 prefix);
			wk_client_read_stop(c);
			return WK_OK;
		default:
			return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
		}
	case SQL_UNLISTEN:
		wk_pubsub_drop(c, st->name);
		log_debug(&c->lctx, "pub/sub: UNLISTEN \"%s\"", st->name);
		return wk_pubsub_reply(c, prefix, "UNLISTEN");
	default:
		wk_pubsub_drop(c, NULL);
		log_debug(&c->lctx, "pub/sub: UNLISTEN *");
		return wk_pubsub_reply(c, prefix, "UNLISTEN");
	}
}

/* How wk_pubsub_client_extended treats a request it recognises. */
enum wk_pubsub_ext {
	WK_PUBSUB_EXT_SERVE,     /* LISTEN/UNLISTEN: answer it */
	WK_PUBSUB_EXT_FOLLOW,    /* LISTEN/UNLISTEN behind requests in flight: follow it */
	WK_PUBSUB_EXT_FOLLOW_TX, /* SAVEPOINT, RELEASE, ROLLBACK [TO], COMMIT: follow it */
};

/*
 * The Parse at the front of in (whole, h its header) is unnamed, has no
 * parameter types and holds LISTEN/UNLISTEN alone (with is_tx: one
 * SAVEPOINT, RELEASE, ROLLBACK [TO] or COMMIT): classified into *res.
 * False otherwise (also on out of memory, which PostgreSQL will then meet).
 */
static bool
wk_pubsub_parse_is_ours(struct evbuffer *in, const struct pgw_hdr *h, struct sql_result *res,
			bool is_tx)
{
	const uint8_t *buf = evbuffer_pullup(in, (ev_ssize_t)pgw_msg_size(h));
	const char *body;
	size_t blen = h->len - 4, qlen;

	if (!buf || blen < 1)
		return false;
	body = (const char *)buf + PGW_HDR_LEN;
	if (body[0] != 0)
		return false;
	qlen = strnlen(body + 1, blen - 1);
	/* name NUL, query NUL, int16 parameter type count (must be 0) */
	if (qlen + 4 > blen || body[1 + qlen + 1] != 0 || body[1 + qlen + 2] != 0)
		return false;
	if (is_tx) {
		if (sql_classify_all(body + 1, qlen, res) < 0 || !res->is_parsed || res->is_error ||
		    res->stmts_cnt != 1 || res->stmts[0].is_truncated)
			return false;
		switch (res->stmts[0].kind) {
		case SQL_SAVEPOINT:
		case SQL_RELEASE:
		case SQL_ROLLBACK_TO:
		case SQL_ROLLBACK:
		case SQL_COMMIT:
			return true;
		default:
			return false;
		}
	}
	if (sql_classify(body + 1, qlen, res) < 0)
		return false;
	return wk_pubsub_is_ours(res);
}

/*
 * Extended protocol: an unnamed Parse of LISTEN or UNLISTEN without
 * parameters, Bind of it to the unnamed portal, an optional Describe,
 * Execute and Sync, all buffered (what PQexecParams sends). From a client
 * between transactions or with nothing in flight, pgdog answers it; with
 * is_follow (requests of the client still running), it goes to the server
 * and is followed (wk_pubsub_watch_parse). Anything else goes to a server
 * (and a LISTEN there pins it).
 */
static enum wk_rc
wk_pubsub_client_extended(struct wk_client *c, bool *is_handled, enum wk_pubsub_ext mode)
{
	static const char order[] = { PGW_MSG_PARSE, PGW_MSG_BIND, PGW_MSG_DESCRIBE,
				      PGW_MSG_EXECUTE, PGW_MSG_SYNC };
	struct evbuffer *in = c->io.in;
	size_t avail = evbuffer_get_length(in), off = 0, step = 0, parse_size = 0;
	const uint8_t *buf;
	char prefix[8];
	size_t prefix_len = 0;
	struct sql_result res;

	/* scan the headers: P B [D] E S, whole, small */
	while (step < sizeof(order)) {
		uint8_t hdr[PGW_HDR_LEN];
		struct pgw_hdr h;
		struct evbuffer_ptr pos;

		if (off + PGW_HDR_LEN > avail)
			return WK_AGAIN; /* the rest of the request is on its way */
		if (evbuffer_ptr_set(in, &pos, off, EVBUFFER_PTR_SET) < 0 ||
		    evbuffer_copyout_from(in, &pos, hdr, PGW_HDR_LEN) != PGW_HDR_LEN ||
		    pgw_read_header(hdr, PGW_HDR_LEN, &h) != 1 ||
		    off + pgw_msg_size(&h) > WK_PUBSUB_QUERY_MAX)
			return WK_OK;
		while (step < sizeof(order) && order[step] != h.type &&
		       order[step] == PGW_MSG_DESCRIBE)
			step++;
		if (step == sizeof(order) || order[step] != h.type)
			return WK_OK;
		if (off + pgw_msg_size(&h) > avail)
			return WK_AGAIN;
		if (h.type == PGW_MSG_PARSE &&
		    !wk_pubsub_parse_is_ours(in, &h, &res, mode == WK_PUBSUB_EXT_FOLLOW_TX))
			return WK_OK;
		if (h.type == PGW_MSG_PARSE)
			parse_size = pgw_msg_size(&h);
		step++;
		off += pgw_msg_size(&h);
	}
	buf = evbuffer_pullup(in, (ev_ssize_t)off);
	if (!buf)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	for (size_t o = 0; o < off;) {
		struct pgw_hdr h;
		const char *body = (const char *)buf + o + PGW_HDR_LEN;
		size_t blen;

		if (pgw_read_header(buf + o, PGW_HDR_LEN, &h) != 1)
			return WK_OK;
		blen = h.len - 4;
		switch (h.type) {
		case PGW_MSG_PARSE:
			prefix[prefix_len++] = PGW_MSG_PARSE_COMPLETE; /* checked while scanning */
			break;
		case PGW_MSG_BIND:
			/* unnamed portal, unnamed statement, no parameters */
			if (blen < 2 + 2 + 2 || body[0] != 0 || body[1] != 0)
				return WK_OK;
			{
				uint16_t nfmt =
					(uint16_t)((uint8_t)body[2] << 8 | (uint8_t)body[3]);
				size_t p = 4 + (size_t)nfmt * 2;

				if (p + 2 > blen || body[p] != 0 || body[p + 1] != 0)
					return WK_OK;
			}
			prefix[prefix_len++] = PGW_MSG_BIND_COMPLETE;
			break;
		case PGW_MSG_DESCRIBE:
			if (blen != 2 || (body[0] != 'P' && body[0] != 'S') || body[1] != 0)
				return WK_OK;
			if (body[0] == 'S')
				prefix[prefix_len++] = PGW_MSG_PARAMETER_DESCRIPTION;
			prefix[prefix_len++] = PGW_MSG_NO_DATA;
			break;
		case PGW_MSG_EXECUTE:
			if (blen < 1 || body[0] != 0)
				return WK_OK;
			break;
		default:
			break;
		}
		o += pgw_msg_size(&h);
	}
	prefix[prefix_len] = '\0';
	if (mode != WK_PUBSUB_EXT_SERVE)
		return wk_pubsub_watch_parse(c, &res.stmts[0], parse_size, is_handled);
	*is_handled = true;
	return wk_pubsub_serve(c, &res.stmts[0], off, prefix);
}

enum wk_rc
wk_pubsub_client_query(struct wk_client *c, const struct pgw_hdr *h, bool *is_handled)
{
	struct evbuffer *in = c->io.in;
	struct sql_result res;
	char quiet;

	*is_handled = false;
	if (c->pubsub) {
		/* pgdog's rewrite of the Query it just followed: it goes on as it is */
		c->pubsub->is_query_watched = c->pubsub->is_rewritten;
		c->pubsub->has_cur_watch &= c->pubsub->is_rewritten;
		if (c->pubsub->is_rewritten) {
			c->pubsub->is_rewritten = false;
			return WK_OK;
		}
	}
	/* a LISTEN that went to its server (pinned) is undone there, not here */
	if (g_cfg->pub_sub_channel_size <= 0 || wk_client_is_session(c) ||
	    (c->pins & WK_PIN_LISTEN))
		return WK_OK;
	quiet = wk_pubsub_quiet_status(c);
	if (h->type == PGW_MSG_PARSE && c->state == WK_CLIENT_ACTIVE) {
		enum wk_rc rc = wk_pubsub_parse_named(c, h);

		if (rc != WK_OK || wk_pubsub_query_is_followed(c))
			return rc;
	}
	if (h->type == PGW_MSG_PARSE) {
		/*
		 * Between transactions, or in a block with nothing in flight:
		 * served; behind requests in flight (no Execute unsynced before
		 * it, so that its replies can be told apart): followed.
		 */
		bool is_follow = c->state != WK_CLIENT_IDLE && !quiet;

		if (is_follow &&
		    (c->state != WK_CLIENT_ACTIVE || !c->server ||
		     c->server->state != WK_SERVER_ACTIVE || wk_pubsub_execute_unsynced(c->server)))
			return WK_OK;
		if (h->len > WK_PUBSUB_QUERY_MAX)
			return WK_OK;
		if (wk_pubsub_may_be_ours(in, true)) {
			enum wk_rc rc = wk_pubsub_client_extended(c, is_handled,
								  is_follow ? WK_PUBSUB_EXT_FOLLOW
									    : WK_PUBSUB_EXT_SERVE);

			if (rc != WK_OK || *is_handled || wk_pubsub_query_is_followed(c))
				return rc;
		}
		/* a transaction holding operations: its savepoints and end are followed too */
		if (c->state == WK_CLIENT_ACTIVE && c->server &&
		    !wk_pubsub_execute_unsynced(c->server) && wk_pubsub_is_watching(c))
			return wk_pubsub_client_extended(c, is_handled, WK_PUBSUB_EXT_FOLLOW_TX);
		return WK_OK;
	}
	if (h->type != PGW_MSG_QUERY)
		return WK_OK;
	if (evbuffer_get_length(in) < pgw_msg_size(h))
		return WK_AGAIN;
	if (c->state == WK_CLIENT_IDLE || quiet) {
		/* alone: served at once (or kept for COMMIT), no server needed */
		if (h->len <= WK_PUBSUB_QUERY_MAX && wk_pubsub_may_be_ours(in, false)) {
			const uint8_t *msg = evbuffer_pullup(in, (ev_ssize_t)pgw_msg_size(h));
			const char *sql;

			if (!msg)
				return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
			sql = (const char *)msg + PGW_HDR_LEN;
			if (sql_classify(sql, wk_strnlen(sql, h->len - 4), &res) < 0)
				return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
			if (wk_pubsub_is_ours(&res) &&
			    wk_query_is_wellformed(msg + PGW_HDR_LEN, h->len - 4)) {
				*is_handled = true;
				return wk_pubsub_serve(c, &res.stmts[0], pgw_msg_size(h), "");
			}
		}
		if (c->state == WK_CLIENT_IDLE)
			return WK_OK; /* followed once a server is linked */
	}
	if (c->state != WK_CLIENT_ACTIVE || !c->server)
		return WK_OK;
	return wk_pubsub_watch_query(c, h, is_handled);
}

bool
wk_pubsub_sync_waits(struct wk_client *c)
{
	struct wk_pubsub_client *pc = c->pubsub;

	if (!pc->pre_cnt && !pc->ops_cnt)
		return false;
	/* out of memory cannot happen here: no channel is added */
	return wk_pubsub_prelisten(c, pc, NULL, 0) > 0;
}

/* ---- delivery ------------------------------------------------------------ */

/* May a notification be written to c now (between whole messages and transactions)? */
static bool
wk_pubsub_at_boundary(const struct wk_client *c)
{
	const struct wk_server *s = c->server;

	switch (c->state) {
	case WK_CLIENT_IDLE:
	case WK_CLIENT_WAIT_SERVER:
		/* no server: its output holds only whole messages pgdog wrote */
		return true;
	case WK_CLIENT_ACTIVE:
		/* a pinned server idle between transactions */
		return s && s->state == WK_SERVER_ACTIVE && s->fwd_remaining == 0 &&
		       s->tx_status == 'I' && s->expect_ready == 0 && !s->has_unsynced &&
		       s->internal_ready == 0 && !s->is_release_due;
	default:
		return false;
	}
}

bool
wk_pubsub_has_queued(const struct wk_client *c)
{
	return c->pubsub && (c->pubsub->queued_cnt || c->pubsub->is_overflow || c->pubsub->is_lost);
}

enum wk_rc
wk_pubsub_client_deliver(struct wk_client *c)
{
	struct wk_pubsub_client *pc = c->pubsub;

	if (!pc || c->state == WK_CLIENT_CLOSING ||
	    (!pc->queued_cnt && !pc->is_overflow && !pc->is_lost))
		return WK_OK;
	if ((pc->is_overflow || pc->is_lost) &&
	    evbuffer_get_length(c->io.out) > WK_PUBSUB_FATAL_ROOM)
		return WK_OK; /* the drain callback comes back: the FATAL must not be cut off */
	if (pc->is_overflow)
		return wk_client_fatal(
			c, SQLSTATE_PROGRAM_LIMIT_EXCEEDED,
			"too many notifications queued for this client while it was in a transaction or not reading (pub_sub_channel_size = %d)",
			g_cfg->pub_sub_channel_size);
	if (pc->queued_cnt) {
		/* what arrived before the listener was lost, then the FATAL */
		if (wk_conn_send(&c->io, &pc->queue) < 0)
			return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
		log_noise(&c->lctx, "pub/sub: %u queued notifications delivered", pc->queued_cnt);
		pgw_buf_reset(&pc->queue);
		pc->queued_cnt = 0;
		if (pc->is_lost && evbuffer_get_length(c->io.out) > WK_PUBSUB_FATAL_ROOM)
			return WK_OK;
	}
	if (pc->is_lost)
		return wk_client_fatal(
			c, SQLSTATE_CONNECTION_FAILURE,
			"pub/sub: the listener connection that served this client's LISTEN was lost; notifications may have been missed: reconnect and LISTEN again");
	return WK_OK;
}

enum wk_rc
wk_pubsub_client_drained(struct wk_client *c)
{
	if (!wk_pubsub_has_queued(c) || !wk_pubsub_at_boundary(c))
		return WK_OK;
	return wk_pubsub_client_deliver(c);
}

/*
 * One notification (whole message in wk_pubsub_msg) to one client. A client
 * that does not read (output above the backpressure mark) has it queued like
 * a client in a transaction, so its buffer never grows without bound.
 */
static void
wk_pubsub_deliver_one(struct wk_client *c, struct wk_pubsub_chan *ch)
{
	struct wk_pubsub_client *pc = c->pubsub;

	if (c->state == WK_CLIENT_CLOSING || pc->is_overflow || pc->is_lost)
		return; /* disconnected at its next boundary */
	if (pc->wait_chan == ch)
		return; /* its LISTEN is not in effect yet: PostgreSQL would not deliver this */
	if (!pc->queued_cnt && wk_pubsub_at_boundary(c) &&
	    evbuffer_get_length(c->io.out) < WK_BACKPRESSURE_BYTES) {
		if (wk_conn_send(&c->io, &wk_pubsub_msg) < 0) {
			wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
			return;
		}
		ch->delivered++;
		return;
	}
	if (pc->queued_cnt >= (uint32_t)g_cfg->pub_sub_channel_size) {
		/* closed at its next boundary: never in the middle of a message */
		pc->is_overflow = true;
		log_warn(
			&c->lctx,
			"pub/sub: more than pub_sub_channel_size (%d) notifications wait for this client: it will be disconnected",
			g_cfg->pub_sub_channel_size);
		return;
	}
	pgw_put_bytes(&pc->queue, wk_pubsub_msg.data, wk_pubsub_msg.len);
	if (pc->queue.has_error) {
		pc->is_overflow = true; /* out of memory: same outcome, never a silent loss */
		return;
	}
	pc->queued_cnt++;
	ch->delivered++;
}

/* ---- listener connection ------------------------------------------------- */

/*
 * Let the ReadyForQuery of clients whose committed LISTEN is now in effect
 * (all of them with is_all: their listener is gone and they are marked
 * lost) go on to the client.
 */
static void
wk_pubsub_resume_holders(struct wk_pubsub_pool *pp, bool is_all)
{
	struct list *pos, *tmp;

	list_foreach_safe (pos, tmp, &pp->holders) {
		struct wk_pubsub_client *pc = list_entry(pos, struct wk_pubsub_client, hold_node);
		struct wk_client *c = pc->c;

		if (!is_all && wk_pubsub_hold_pending(pc))
			continue;
		/* the hook lets the held ReadyForQuery pass when it reads it again */
		if (c->state == WK_CLIENT_ACTIVE && c->server)
			wk_server_resume(c->server);
		else
			wk_pubsub_unhold(pc);
	}
}

/* Answer the clients whose LISTEN is now in effect on the server. */
static void
wk_pubsub_answer_waiters(struct wk_pubsub_pool *pp)
{
	struct list *pos, *tmp;

	list_foreach_safe (pos, tmp, &pp->waiters) {
		struct wk_pubsub_client *pc = list_entry(pos, struct wk_pubsub_client, wait_node);
		struct wk_client *c = pc->c;

		if (pc->is_query_wait) {
			/* its Query goes to its server now */
			if (!wk_pubsub_pre_confirmed(pc))
				continue;
			wk_pubsub_unwait(pc);
			wk_pubsub_read_on(c);
			continue;
		}
		if (!pc->wait_chan || pc->wait_chan->listen_seq > pp->done_seq)
			continue;
		wk_pubsub_unwait(pc);
		if (c->state == WK_CLIENT_CLOSING)
			continue;
		if (wk_pubsub_reply(c, pc->wait_prefix, "LISTEN") == WK_CLOSED)
			continue;
		wk_pubsub_read_on(c);
	}
	wk_pubsub_resume_holders(pp, false);
}

void
wk_pubsub_listener_ready(struct wk_server *s)
{
	struct wk_pubsub_pool *pp = wk_pubsub_pool_of_server(s);
	struct list *pos;

	if (s->is_monitor) {
		wk_lsn_ready(s); /* the replication check connection */
		return;
	}

	if (!pp || pp->listener != s) {
		wk_server_close(s, "listener no longer needed");
		return;
	}
	if (pp->chans_cnt == 0) {
		wk_server_close(s, "no channel left to listen on");
		return;
	}
	pp->is_ready = true;
	pp->retry_after_us = 0;
	if (wk_pubsub_send_listen(pp, "LISTEN", NULL, NULL) < 0) {
		wk_server_close(s, "out of memory");
		return;
	}
	list_foreach (pos, &pp->chans)
		list_entry(pos, struct wk_pubsub_chan, node)->listen_seq = pp->sent_seq;
	log_info(&s->lctx,
		 "pub/sub: listener connected (backend pid %u), listening on %zu channels",
		 s->backend_pid, pp->chans_cnt);
	wk_pubsub_publish_pool(pp);
}

/* Does pc's open transaction (or its Query on the way) LISTEN on ch? */
static bool
wk_pubsub_is_pending_on(const struct wk_pubsub_client *pc, const struct wk_pubsub_chan *ch)
{
	for (size_t i = 0; i < pc->ops_cnt; i++)
		if (pc->ops[i].ch == ch)
			return true;
	for (size_t i = 0; !pc->is_query_wait && i < pc->pre_cnt; i++)
		if (pc->pre[i] == ch)
			return true;
	return false;
}

/*
 * A notification on ch sent by backend pid that has come before the
 * replies of the client holding that server: when that client's
 * transaction LISTENs on ch, the notification is what it committed with
 * the LISTEN (the client holds its server until the transaction ends), and
 * PostgreSQL delivers it to the session before its ReadyForQuery: so does
 * pgdog (the client joins ch when pgdog reads the commit).
 */
static void
wk_pubsub_deliver_pending(struct wk_pubsub_chan *ch, uint32_t pid)
{
	struct list *pos;

	list_foreach (pos, &ch->pp->pool->servers[WK_SERVER_ACTIVE]) {
		struct wk_server *s = list_entry(pos, struct wk_server, node);
		struct wk_client *c = s->client;

		if (s->backend_pid != pid || !c || !c->pubsub || c->pubsub->pp != ch->pp)
			continue;
		if (wk_pubsub_client_index(c->pubsub, ch->name) < 0 &&
		    wk_pubsub_is_pending_on(c->pubsub, ch))
			wk_pubsub_deliver_one(c, ch);
		return;
	}
}

/* A NotificationResponse from the listener: fan it out. */
static void
wk_pubsub_on_notification(struct wk_pubsub_pool *pp, const uint8_t *msg, const struct pgw_hdr *h)
{
	const char *body = (const char *)msg + PGW_HDR_LEN;
	size_t blen = h->len - 4;
	struct wk_pubsub_chan *ch;

	if (blen < 4 + 2 || strnlen(body + 4, blen - 4) >= blen - 4)
		return;
	ch = wk_pubsub_chan_find(pp, body + 4);
	if (!ch)
		return; /* UNLISTENed meanwhile */
	ch->received++;
	if (!wk_pubsub_msg_ready) {
		pgw_buf_init(&wk_pubsub_msg);
		wk_pubsub_msg_ready = true;
	}
	pgw_buf_reset(&wk_pubsub_msg);
	pgw_put_bytes(&wk_pubsub_msg, msg, pgw_msg_size(h));
	if (wk_pubsub_msg.has_error) {
		log_warn(NULL, "pub/sub: out of memory for a notification on \"%s\"", ch->name);
		return;
	}
	/* a client closed on the way stays in the array until it is freed */
	for (size_t i = 0; i < ch->clients_cnt; i++)
		wk_pubsub_deliver_one(ch->clients[i], ch);
	if (ch->pending_cnt) {
		uint32_t pid;

		memcpy(&pid, body, sizeof(pid));
		wk_pubsub_deliver_pending(ch, ntohl(pid));
	}
	wk_pubsub_row_publish(ch);
}

void
wk_pubsub_listener_read(struct wk_server *s)
{
	struct evbuffer *in = s->io.in;
	struct wk_pubsub_pool *pp = wk_pubsub_pool_of_server(s);
	struct pgw_hdr h;
	const uint8_t *msg;

	if (s->is_monitor) {
		wk_lsn_read(s); /* the replication check connection */
		return;
	}

	if (!pp || pp->listener != s) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	for (;;) {
		if (!wk_server_next_msg(s, WK_PUBSUB_MSG_MAX, &h, &msg,
					"invalid message from the listener connection"))
			return;
		switch (h.type) {
		case PGW_MSG_NOTIFICATION:
			wk_pubsub_on_notification(pp, msg, &h);
			break;
		case PGW_MSG_READY:
			if (pp->done_seq < pp->sent_seq)
				pp->done_seq++;
			if (pp->is_sync_wanted) {
				pp->is_sync_wanted = false;
				if (wk_pubsub_send_sync(pp) < 0) {
					wk_server_close(s, "out of memory");
					return;
				}
			}
			wk_pubsub_answer_waiters(pp);
			break;
		case PGW_MSG_ERROR: {
			struct pgw_error_fields f;

			if (pgw_parse_error(msg + PGW_HDR_LEN, h.len - 4, &f) == 0 && f.message)
				log_warn(&s->lctx,
					 "pub/sub: the listener connection got an error: %s",
					 f.message);
			break;
		}
		case PGW_MSG_COMMAND_COMPLETE:
		case PGW_MSG_NOTICE:
		case PGW_MSG_PARAMETER_STATUS:
			break;
		default:
			wk_server_close(s, "unexpected message on the listener connection");
			return;
		}
		/* the connection may have been closed by a client's reply path: stop then */
		if (pp->listener != s)
			return;
		evbuffer_drain(in, pgw_msg_size(&h));
	}
}

/* The listener is gone before logging in: the clients waiting for it get an error. */
static void
wk_pubsub_fail_waiters(struct wk_pubsub_pool *pp, const char *why)
{
	struct list *pos, *tmp;

	list_foreach_safe (pos, tmp, &pp->waiters) {
		struct wk_pubsub_client *pc = list_entry(pos, struct wk_pubsub_client, wait_node);
		struct wk_pubsub_chan *ch = pc->wait_chan;
		struct wk_client *c = pc->c;
		struct pgw_buf *b = &g_wk.scratch;

		if (pc->is_query_wait) {
			/* its Query goes on; its commit waits for the next listener */
			wk_pubsub_unwait(pc);
			wk_pubsub_read_on(c);
			continue;
		}
		/* its LISTEN did not happen (leaving also ends the wait) */
		for (size_t i = 0; i < pc->chans_cnt; i++) {
			if (pc->chans[i] == ch) {
				wk_pubsub_leave(c, i);
				break;
			}
		}
		if (pc->wait_chan)
			wk_pubsub_unwait(pc);
		if (c->state == WK_CLIENT_CLOSING)
			continue;
		pgw_buf_reset(b);
		pgw_put_error(b, false, "ERROR", SQLSTATE_CONNECTION_FAILURE, why, NULL, NULL);
		pgw_put_ready(b, 'I');
		if (wk_conn_send(&c->io, b) < 0) {
			wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
			continue;
		}
		shm_client((uint32_t)g_wk.slot, c->row)->errors++;
		wk_pubsub_read_on(c);
	}
}

/*
 * The listener connection of pp was lost: notifications sent until a new
 * one LISTENs are lost too, for every client registered on its channels or
 * about to be (a LISTEN in an open transaction, in flight, or waiting for
 * its reply). PostgreSQL clients meet a lost connection by reconnecting and
 * LISTENing again, so each of them is disconnected with FATAL 08006 at its
 * next boundary between transactions (at once when idle) rather than left
 * with a silent gap. With only_holders, just the clients whose commit waits
 * for the listener (it never logged in).
 */
static void
wk_pubsub_lose_clients(struct wk_pubsub_pool *pp, bool only_holders)
{
	struct list *pos, *tmp;
	size_t n = 0;

	list_foreach_safe (pos, tmp, &g_wk.clients) {
		struct wk_client *c = list_entry(pos, struct wk_client, node);
		struct wk_pubsub_client *pc = c->pubsub;

		if (!pc || pc->pp != pp || c->state == WK_CLIENT_CLOSING || pc->is_lost)
			continue;
		if (only_holders ? !pc->is_holding
				 : !pc->chans_cnt && !pc->ops_cnt && !pc->watch_cnt &&
					   !pc->wait_chan && !pc->is_query_wait)
			continue;
		pc->is_lost = true;
		n++;
		if (pc->is_query_wait) {
			/* its Query goes on; it goes at the boundary after it */
			wk_pubsub_unwait(pc);
			wk_pubsub_read_on(c);
			continue;
		}
		if (pc->wait_chan)
			wk_pubsub_unwait(pc); /* its LISTEN is not answered: it goes */
		if (!pc->is_holding && wk_pubsub_at_boundary(c))
			(void)wk_pubsub_client_deliver(c);
	}
	/* their held ReadyForQuery goes on, and the FATAL after it */
	wk_pubsub_resume_holders(pp, true);
	if (n)
		log_warn(
			NULL,
			"pub/sub: pool %s: %zu listening clients disconnected (FATAL 08006) at their next transaction boundary: notifications may have been missed",
			pp->pool->name, n);
}

void
wk_pubsub_listener_closed(struct wk_server *s)
{
	struct wk_pubsub_pool *pp = wk_pubsub_pool_of_server(s);
	struct list *pos;
	bool was_ready;
	char why[512];

	if (s->is_monitor) {
		wk_lsn_closed(s); /* the replication check connection */
		return;
	}

	if (!pp || pp->listener != s)
		return;
	was_ready = pp->is_ready;
	pp->listener = NULL;
	pp->is_ready = false;
	if (pp->old && pp->old != s)
		wk_server_gone(pp->old);
	pp->old = s;
	pp->sent_seq = pp->done_seq = 0;
	pp->is_sync_wanted = false;
	list_foreach (pos, &pp->chans)
		list_entry(pos, struct wk_pubsub_chan, node)->listen_seq = WK_PUBSUB_AT_LOGIN;
	if (pp->chans_cnt == 0)
		return;
	if (was_ready) {
		log_warn(
			&s->lctx,
			"pub/sub: listener connection of pool %s lost with %zu channels: its clients are disconnected, reconnecting for the rest",
			pp->pool->name, pp->chans_cnt);
		pp->retry_after_us = 0;
		wk_pubsub_lose_clients(pp, false);
	} else {
		snprintf(why, sizeof(why),
			 "pub/sub: cannot open the listener connection for %s%s%s", pp->pool->name,
			 s->error[0] ? ": " : "", s->error);
		log_warn(&s->lctx, "%s", why);
		pp->retry_after_us = g_wk.mono_us + WK_PUBSUB_RETRY_US;
		wk_pubsub_fail_waiters(pp, why);
		wk_pubsub_lose_clients(pp, true);
	}
	wk_pubsub_publish_pool(pp);
}

void
wk_pubsub_listener_freed(struct wk_server *s)
{
	struct wk_pubsub_pool *pp = wk_pubsub_pool_of_server(s);

	if (s->is_monitor) {
		wk_lsn_freed(s); /* the replication check connection */
		return;
	}

	if (!pp)
		return;
	if (pp->old == s)
		pp->old = NULL;
	if (pp->listener == s) {
		pp->listener = NULL;
		pp->is_ready = false;
	}
}

/* ---- client lifecycle, sweep, exit --------------------------------------- */

void
wk_pubsub_client_free(struct wk_client *c)
{
	struct wk_pubsub_client *pc = c->pubsub;

	if (!pc)
		return;
	if (pc->wait_chan || pc->is_query_wait)
		wk_pubsub_unwait(pc);
	if (pc->is_holding)
		wk_pubsub_unhold(pc);
	while (pc->chans_cnt)
		wk_pubsub_leave(c, pc->chans_cnt - 1);
	wk_pubsub_client_tx_end(c, false); /* LISTENs of its open transaction are dropped */
	wk_pubsub_pre_release(pc);
	free(pc->pre);
	free(pc->chans);
	free(pc->ops);
	free(pc->watches);
	pgw_buf_cleanup(&pc->queue);
	free(pc);
	c->pubsub = NULL;
}

void
wk_pubsub_sweep(void)
{
	uint64_t connect = (uint64_t)g_cfg->connect_timeout * 1000;

	for (size_t i = 0; i < wk_pubsub_pools_cnt; i++) {
		struct wk_pubsub_pool *pp = wk_pubsub_pools[i];

		if (!pp)
			continue;
		if (pp->old && pp->old->state == WK_SERVER_CLOSING &&
		    g_wk.mono_us - pp->old->closing_since_us > WK_PUBSUB_CLOSING_US)
			wk_server_gone(pp->old);
		if (pp->listener && !pp->is_ready && connect &&
		    g_wk.mono_us - pp->listener->connect_us > connect) {
			snprintf(pp->listener->error, sizeof(pp->listener->error),
				 "connect_timeout reached");
			wk_server_close(pp->listener, "connect_timeout reached");
		}
		if (!pp->listener && pp->chans_cnt && !g_wk.is_shutting_down)
			wk_pubsub_pool_connect(pp);
	}
}

void
wk_pubsub_cleanup(void)
{
	for (size_t i = 0; i < wk_pubsub_pools_cnt; i++) {
		struct wk_pubsub_pool *pp = wk_pubsub_pools[i];

		if (!pp)
			continue;
		if (pp->listener)
			wk_server_close(pp->listener, "worker exit");
		if (pp->old)
			wk_server_gone(pp->old);
		/* a listener freed by the next reap must not find this pool */
		wk_pubsub_pools[i] = NULL;
		free(pp->buckets);
		free(pp);
	}
	free(wk_pubsub_pools);
	wk_pubsub_pools = NULL;
	wk_pubsub_pools_cnt = 0;
	if (wk_pubsub_msg_ready)
		pgw_buf_cleanup(&wk_pubsub_msg);
	wk_pubsub_msg_ready = false;
}
