/*
 * wk_cancel.c: CancelRequest handling (see wk_cancel.h).
 * Runs in: a worker. The key table is the shm client rows: any worker can
 * check a key and read which server runs that client's query.
 */
#include "worker/wk_cancel.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "shared/config.h"
#include "shared/log.h"
#include "shared/pgw.h"
#include "shared/secret.h"
#include "shared/shm.h"
#include "worker/wk_conn.h"
#include "worker/wk_pool.h"

#define WK_CANCEL_SLOT_SHIFT 24
#define WK_CANCEL_ROW_MASK   0xffffffu

uint32_t
wk_cancel_pid(uint32_t slot, uint32_t row)
{
	return slot << WK_CANCEL_SLOT_SHIFT | (row + 1);
}

uint32_t
wk_cancel_row_of(uint32_t pid)
{
	return (pid & WK_CANCEL_ROW_MASK) - 1;
}

/* Does row r belong to the client that holds (pid, key)? */
static bool
wk_cancel_row_is(struct shm_client *r, uint32_t pid, uint32_t key)
{
	uint32_t want = atomic_load_explicit(&r->cancel_key, memory_order_acquire);

	return want != 0 && r->cancel_pid == pid && secret_equal(&want, &key, sizeof(key));
}

/*
 * The row of the client holding (pid, key): the row the pid names; else the
 * same index in the twin slot, then every row of both (a handed-over client
 * whose index was taken). NULL if none: forged or stale.
 */
static struct shm_client *
wk_cancel_find(uint32_t pid, uint32_t key)
{
	uint32_t slot = pid >> WK_CANCEL_SLOT_SHIFT, idx = wk_cancel_row_of(pid);
	uint32_t slots[2];

	if ((pid & WK_CANCEL_ROW_MASK) == 0 || slot >= g_shm->workers_cnt ||
	    idx >= g_shm->clients_per_worker)
		return NULL;
	slots[0] = slot;
	slots[1] = shm_slot_twin(slot);
	for (int k = 0; k < 2; k++)
		if (wk_cancel_row_is(shm_client(slots[k], idx), pid, key))
			return shm_client(slots[k], idx);
	for (int k = 0; k < 2; k++)
		for (uint32_t i = 0; i < g_shm->clients_per_worker; i++)
			if (wk_cancel_row_is(shm_client(slots[k], i), pid, key))
				return shm_client(slots[k], i);
	return NULL;
}

static void
wk_cancel_done_cb(struct bufferevent *bev, void *arg)
{
	/* the request is written: PostgreSQL answers nothing, so we are done */
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_free(bev);
}

static void
wk_cancel_event_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		log_warn(NULL, "cancel request to server failed");
	bufferevent_free(bev);
}

/* Read the server half of a client row consistently. */
static bool
wk_cancel_read_server(struct shm_client *r, int32_t *db_idx, uint32_t *pid, uint32_t *key)
{
	for (int i = 0; i < 100; i++) {
		uint32_t a = atomic_load_explicit(&r->server_seq, memory_order_acquire);

		if (a & 1)
			continue;
		*db_idx = r->server_db_idx;
		*pid = r->server_pid;
		*key = r->server_key;
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&r->server_seq, memory_order_relaxed) == a)
			return true;
	}
	return false;
}

void
wk_cancel_request(uint32_t pid, uint32_t key)
{
	struct shm_client *r = wk_cancel_find(pid, key);
	uint32_t server_pid, server_key;
	int32_t db_idx;
	struct wk_pool *p = NULL;

	if (!r) {
		log_debug(NULL, "cancel request with an unknown, stale or forged key: ignored");
		return;
	}
	if (!wk_cancel_read_server(r, &db_idx, &server_pid, &server_key) || db_idx < 0 ||
	    server_pid == 0) {
		if (atomic_load_explicit(&r->state, memory_order_relaxed) == SHM_STATE_WAITING) {
			/* queued for a server: its worker takes it out of the queue (57014) */
			atomic_store_explicit(&r->is_cancel_requested, 1, memory_order_release);
			log_debug(NULL,
				  "cancel request for a waiting client: passed to its worker");
			return;
		}
		log_debug(NULL, "cancel request for a client without a running query: ignored");
		return;
	}
	{
		/* server_db_idx holds the pool's shm index: the same pool in every worker */
		struct wk_pool *q = wk_pool_get((uint32_t)db_idx);

		if (q && q->cfg && q->addr_len)
			p = q;
	}
	if (p)
		wk_cancel_send(p, server_pid, server_key);
}

void
wk_cancel_send(struct wk_pool *p, uint32_t server_pid, uint32_t server_key)
{
	struct bufferevent *bev;
	struct pgw_buf *b = &g_wk.scratch;
	struct timeval tv = { g_cfg->connect_timeout / 1000,
			      (g_cfg->connect_timeout % 1000) * 1000 };

	bev = bufferevent_socket_new(g_wk.base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!bev)
		return;
	bufferevent_setcb(bev, NULL, wk_cancel_done_cb, wk_cancel_event_cb, NULL);
	bufferevent_set_timeouts(bev, &tv, &tv);
	pgw_buf_reset(b);
	pgw_put_cancel_request(b, server_pid, server_key);
	if (b->has_error || evbuffer_add(bufferevent_get_output(bev), b->data, b->len) < 0 ||
	    bufferevent_enable(bev, EV_WRITE) < 0 ||
	    bufferevent_socket_connect(bev, (struct sockaddr *)&p->addr, (int)p->addr_len) < 0) {
		log_warn(NULL, "cannot send a cancel request to %s:%d", p->db->host, p->db->port);
		bufferevent_free(bev);
		return;
	}
	log_info(NULL, "cancel request forwarded to %s:%d for backend %u", p->db->host, p->db->port,
		 server_pid);
}
