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
#include "worker/wk_client.h"
#include "worker/wk_conn.h"
#include "worker/wk_pool.h"
#include "worker/wk_server.h"

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

/*
 * A CancelRequest on its way to PostgreSQL. PostgreSQL closes the
 * connection once it has signalled the backend, so the end of the
 * connection is when the cancel has arrived: then the client's own cancel
 * connection (via) is closed, as PostgreSQL closes it (PQcancel returns only
 * then), and the backend may serve another client again (mark).
 */
struct wk_cancel_op {
	struct bufferevent *bev;
	struct wk_client *via;    /* the client's CancelRequest connection, or NULL */
	struct shm_client *mark;  /* its cancel_backend is backend until the end, or NULL */
	struct wk_server *server; /* its gone_cancel is this op until the end, or NULL */
	uint32_t backend;
};

static void
wk_cancel_end(struct wk_cancel_op *op)
{
	uint32_t want = op->backend;

	bufferevent_free(op->bev);
	if (op->mark &&
	    atomic_compare_exchange_strong(&op->mark->cancel_backend, &want, (uint32_t)0))
		wk_client_cancel_arrived(op->mark);
	if (op->via) {
		op->via->cancel_op = NULL;
		(void)wk_client_close(op->via, "cancel request handled");
	}
	if (op->server) {
		op->server->gone_cancel = NULL;
		wk_server_gone_cancel_landed(op->server);
	}
	free(op);
}

void
wk_cancel_forget_client(struct wk_cancel_op *op)
{
	op->via = NULL;
}

void
wk_cancel_forget_server(struct wk_cancel_op *op)
{
	op->server = NULL;
}

static void
wk_cancel_read_cb(struct bufferevent *bev, void *arg)
{
	/* PostgreSQL answers a CancelRequest with nothing: whatever comes is dropped */
	evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
	(void)arg;
}

static void
wk_cancel_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct wk_cancel_op *op = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		log_warn(NULL, "cancel request to server failed");
	wk_cancel_end(op); /* EOF: the backend has been signalled */
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

bool
wk_cancel_request(struct wk_client *via, uint32_t pid, uint32_t key)
{
	struct shm_client *r = wk_cancel_find(pid, key);
	uint32_t server_pid, server_key, again_pid, again_key, none = 0;
	int32_t db_idx, again_db;
	struct wk_pool *p;

	if (!r) {
		log_debug(NULL, "cancel request with an unknown, stale or forged key: ignored");
		return false;
	}
	if (!wk_cancel_read_server(r, &db_idx, &server_pid, &server_key) || db_idx < 0 ||
	    server_pid == 0 || !atomic_load(&r->is_running)) {
		if (atomic_load_explicit(&r->state, memory_order_relaxed) == SHM_STATE_WAITING) {
			/* queued for a server: its worker takes it out of the queue (57014) */
			atomic_store_explicit(&r->is_cancel_requested, 1, memory_order_release);
			log_debug(NULL,
				  "cancel request for a waiting client: passed to its worker");
			return false;
		}
		/* as PostgreSQL, which drops a cancel that comes while it waits for a command */
		log_debug(NULL, "cancel request for a client without a running query: ignored");
		return false;
	}
	/* server_db_idx holds the pool's shm index: the same pool in every worker */
	p = wk_pool_get((uint32_t)db_idx);
	if (!p || !p->cfg || !p->addr_len)
		return false;
	/*
	 * Marked before the request is checked again, while its worker clears
	 * is_running before it reads the mark at the end of a transaction (both
	 * sequentially consistent): either that worker sees the mark and keeps
	 * the server from other clients until the cancel has arrived, or this
	 * sees the request done and sends nothing.
	 */
	if (!atomic_compare_exchange_strong(&r->cancel_backend, &none, server_pid)) {
		if (none == server_pid) {
			log_debug(NULL, "cancel request for a backend already being cancelled");
			return false;
		}
		return wk_cancel_send(p, server_pid, server_key, NULL, via);
	}
	if (!atomic_load(&r->is_running) ||
	    !wk_cancel_read_server(r, &again_db, &again_pid, &again_key) ||
	    again_pid != server_pid) {
		uint32_t want = server_pid;

		(void)atomic_compare_exchange_strong(&r->cancel_backend, &want, (uint32_t)0);
		wk_client_cancel_arrived(r);
		log_debug(NULL, "cancel request for a query that has just ended: ignored");
		return false;
	}
	return wk_cancel_send(p, server_pid, server_key, r, via);
}

/* Send PostgreSQL's CancelRequest for (server_pid, server_key): the op, or NULL (mark settled). */
static struct wk_cancel_op *
wk_cancel_start(struct wk_pool *p, uint32_t server_pid, uint32_t server_key,
		struct shm_client *mark)
{
	struct wk_cancel_op *op;
	struct pgw_buf *b = &g_wk.scratch;
	struct timeval tv = { g_cfg->connect_timeout / 1000,
			      (g_cfg->connect_timeout % 1000) * 1000 };

	op = calloc(1, sizeof(*op));
	if (op)
		op->bev = bufferevent_socket_new(g_wk.base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!op || !op->bev) {
		free(op);
		goto fail;
	}
	op->backend = server_pid;
	op->mark = mark;
	bufferevent_setcb(op->bev, wk_cancel_read_cb, NULL, wk_cancel_event_cb, op);
	bufferevent_set_timeouts(op->bev, &tv, &tv);
	pgw_buf_reset(b);
	pgw_put_cancel_request(b, server_pid, server_key);
	if (b->has_error || evbuffer_add(bufferevent_get_output(op->bev), b->data, b->len) < 0 ||
	    bufferevent_enable(op->bev, EV_READ | EV_WRITE) < 0 ||
	    bufferevent_socket_connect(op->bev, (struct sockaddr *)&p->addr, (int)p->addr_len) <
		    0) {
		bufferevent_free(op->bev);
		free(op);
		goto fail;
	}
	log_info(NULL, "cancel request forwarded to %s:%d for backend %u", p->db->host, p->db->port,
		 server_pid);
	return op;
fail:
	log_warn(NULL, "cannot send a cancel request to %s:%d", p->db->host, p->db->port);
	if (mark) {
		uint32_t want = server_pid;

		(void)atomic_compare_exchange_strong(&mark->cancel_backend, &want, (uint32_t)0);
		wk_client_cancel_arrived(mark);
	}
	return NULL;
}

bool
wk_cancel_send(struct wk_pool *p, uint32_t server_pid, uint32_t server_key, struct shm_client *mark,
	       struct wk_client *via)
{
	struct wk_cancel_op *op = wk_cancel_start(p, server_pid, server_key, mark);

	if (!op || !via)
		return false;
	/* the client's connection stays open until PostgreSQL has the cancel */
	op->via = via;
	via->cancel_op = op;
	return true;
}

bool
wk_cancel_server(struct wk_server *s)
{
	struct wk_cancel_op *op = wk_cancel_start(s->pool, s->backend_pid, s->backend_key, NULL);

	if (!op)
		return false;
	op->server = s;
	s->gone_cancel = op;
	return true;
}
