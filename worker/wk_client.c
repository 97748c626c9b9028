/*
 * wk_client.c: client connections (see wk_client.h).
 * Runs in: a worker.
 *
 *   STARTUP --StartupMessage--> AUTH --proof ok--> LOGIN_WAIT --pool knows
 *      |  (SSLRequest: 'N')      |                   |   server params--+
 *      |                         |                   v                  |
 *      |                         +---(admin db)---> ADMIN     IDLE <----+
 *      |                                                       | first request
 *      |                                                       +--a server is idle-------+
 *      |                                                       v                         v
 *      |                                                  WAIT_SERVER --server linked--> ACTIVE
 *      |                                                       | checkout_timeout          | Terminate / EOF
 *      +-------------------------------------------------------+---------------------------+--> CLOSING
 *
 * Session mode: a client keeps its server from its first request until it
 * leaves; then the server is rolled back if needed, reset with
 * server_reset_query and returned to the pool. Client bytes move to the
 * server by reference; pgdog reads only message headers.
 */
#include "worker/wk_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "shared/config.h"
#include "shared/hash.h"
#include "shared/log.h"
#include "shared/secret.h"
#include "shared/shm.h"
#include "sql/sql_classify.h"
#include "worker/wk_admin.h"
#include "worker/wk_admin_ctl.h"
#include "worker/wk_cancel.h"
#include "worker/wk_handoff.h"
#include "worker/wk_pool.h"
#include "worker/wk_pubsub.h"
#include "worker/wk_server.h"
#include "worker/wk_stats.h"

#define WK_CLIENT_AUTH_MSG_MAX 8192 /* password and SASL messages */
#define WK_CLIENT_WAIT_INPUT_MAX \
	(64 * 1024)             /* buffered while queued for a server, then reading stops */
#define WK_CLIENT_ANSWER_MORE 2 /* wk_client_answer_locally: wait for the rest */

/* Append a string literal's bytes (no NUL) to a pgw_buf. */
#define WK_PUT_LIT(b, lit) pgw_put_bytes((b), (lit), sizeof(lit) - 1)

static void wk_client_read_cb(void *arg);
static void wk_client_write_cb(void *arg);
static void wk_client_event_cb(void *arg, short what);

static size_t wk_client_read_flat(void *arg, const uint8_t *buf, size_t len);

static const struct wk_stream_ops wk_client_io_ops = {
	.on_flat = wk_client_read_flat,
	.on_read = wk_client_read_cb,
	.on_drain = wk_client_write_cb,
	.on_event = wk_client_event_cb,
};

static enum wk_rc wk_client_on_input(struct wk_client *c);
static enum wk_rc wk_client_on_idle(struct wk_client *c);
static const char *wk_client_param(const struct wk_client *c, const char *name);
static void wk_client_bound_clear(struct wk_client *c);
static bool wk_client_bind_names(const struct pgw_hdr *h, const uint8_t *msg, size_t *n1,
				 size_t *n2);

static const bool wk_client_moves[WK_CLIENT_STATE_CNT][WK_CLIENT_STATE_CNT] = {
	[WK_CLIENT_STARTUP] = { [WK_CLIENT_AUTH] = true, [WK_CLIENT_CLOSING] = true },
	[WK_CLIENT_AUTH] = { [WK_CLIENT_LOGIN_WAIT] = true,
			     [WK_CLIENT_IDLE] = true,
			     [WK_CLIENT_ADMIN] = true,
			     [WK_CLIENT_CLOSING] = true },
	[WK_CLIENT_LOGIN_WAIT] = { [WK_CLIENT_IDLE] = true, [WK_CLIENT_CLOSING] = true },
	[WK_CLIENT_IDLE] = { [WK_CLIENT_WAIT_SERVER] = true,
			     [WK_CLIENT_ACTIVE] = true, /* a server was idle: no wait */
			     [WK_CLIENT_CLOSING] = true },
	[WK_CLIENT_WAIT_SERVER] = { [WK_CLIENT_ACTIVE] = true,
				    [WK_CLIENT_IDLE] = true, /* cancelled while waiting */
				    [WK_CLIENT_CLOSING] = true },
	[WK_CLIENT_ACTIVE] = { [WK_CLIENT_IDLE] = true, [WK_CLIENT_CLOSING] = true },
	[WK_CLIENT_ADMIN] = { [WK_CLIENT_CLOSING] = true },
	[WK_CLIENT_CLOSING] = { [WK_CLIENT_CLOSING] = false },
};

static enum shm_conn_state
wk_client_shm_state(enum wk_client_state st)
{
	switch (st) {
	case WK_CLIENT_STARTUP:
	case WK_CLIENT_AUTH:
	case WK_CLIENT_LOGIN_WAIT:
		return SHM_STATE_LOGIN;
	case WK_CLIENT_IDLE:
	case WK_CLIENT_ADMIN:
		return SHM_STATE_IDLE;
	case WK_CLIENT_WAIT_SERVER:
		return SHM_STATE_WAITING;
	case WK_CLIENT_ACTIVE:
		return SHM_STATE_ACTIVE;
	default:
		return SHM_STATE_CLOSING;
	}
}

static struct shm_client *
wk_client_row(const struct wk_client *c)
{
	return wk_stats_client_row(c->row);
}

static void
wk_client_pool_count(struct wk_client *c, int delta)
{
	if (c->pool)
		atomic_fetch_add_explicit(&c->pool->stats->cl_active, (uint32_t)delta,
					  memory_order_relaxed);
}

/* SHOW POOLS cl_active counts logged-in clients that are not waiting: IDLE and ACTIVE. */
static const bool wk_client_is_counted[WK_CLIENT_STATE_CNT] = {
	[WK_CLIENT_IDLE] = true,
	[WK_CLIENT_ACTIVE] = true,
};

/* Out of line: a state change checks one table entry and one log level before it. */
static __attribute__((noinline, cold)) void
wk_client_state_log(struct wk_client *c, enum wk_client_state from, enum wk_client_state st)
{
	if (from != st && !wk_client_moves[from][st]) {
		log_error(&c->lctx, "bad client state change %s -> %s", wk_client_state_name(from),
			  wk_client_state_name(st));
		ASSERT(!"bad client state change");
	}
	log_noise(&c->lctx, "client %s -> %s", wk_client_state_name(from),
		  wk_client_state_name(st));
}

void
wk_client_set_state(struct wk_client *c, enum wk_client_state st)
{
	enum wk_client_state from = c->state;

	c->state = st;
	if (wk_client_is_counted[from] != wk_client_is_counted[st])
		wk_client_pool_count(c, wk_client_is_counted[st] ? 1 : -1);
	atomic_store_explicit(&wk_client_row(c)->state, (uint8_t)wk_client_shm_state(st),
			      memory_order_relaxed);
	/* last, so that nothing needs keeping across the call */
	if (UNLIKELY((!wk_client_moves[from][st] && from != st) || g_log_level >= LOG_LVL_NOISE))
		wk_client_state_log(c, from, st);
}

/* Clients of this worker keeping their server for a cancel on its way (is_cancel_hold). */
static size_t wk_client_holds_cnt;

void
wk_client_running(struct wk_client *c, bool is_running)
{
	if (c->is_running == is_running)
		return;
	c->is_running = is_running;
	/* sequentially consistent: see wk_cancel_request */
	atomic_store(&wk_client_row(c)->is_running, (uint8_t)is_running);
}

bool
wk_client_cancel_due(struct wk_client *c, struct wk_server *s)
{
	uint32_t b = atomic_load(&wk_client_row(c)->cancel_backend);

	if (b == 0 || b != s->backend_pid)
		return false;
	if (!c->is_cancel_hold) {
		c->is_cancel_hold = true;
		c->cancel_hold_us = g_wk.mono_us;
		wk_client_holds_cnt++;
		log_debug(&c->lctx,
			  "a cancel for backend %u is on its way: server kept until it arrives", b);
	}
	return true;
}

/*
 * c's socket is read unless one of these holds: is_read_off (pgdog reads
 * nothing more until an event: wk_client_read_stop/start), read_paused
 * (backpressure: its server's output, or its own input that cannot move on,
 * is full: wk_client_fwd_done, wk_client_resume), is_out_full (what pgdog
 * answers it itself piles up unread: wk_client_on_idle, wk_client_write_cb).
 */
static void
wk_client_read_update(struct wk_client *c)
{
	if (c->is_read_off || c->read_paused || c->is_out_full)
		wk_stream_read_off(&c->io);
	else
		wk_stream_read_on(&c->io);
}

/*
 * c does not read what pgdog answers it without a server (a request of the
 * idle path, an admin command): as PostgreSQL, whose writes then block,
 * pgdog reads nothing more from it until that output has drained
 * (wk_client_write_cb). True when it holds so.
 */
bool
wk_client_hold_for_output(struct wk_client *c)
{
	if (LIKELY(evbuffer_get_length(c->io.out) <= WK_BACKPRESSURE_BYTES))
		return false;
	c->is_out_full = true;
	wk_client_read_update(c);
	return true;
}

void
wk_client_read_stop(struct wk_client *c)
{
	c->is_read_off = true;
	wk_stream_read_off(&c->io);
}

void
wk_client_read_start(struct wk_client *c)
{
	if (!c->is_read_off)
		return;
	c->is_read_off = false;
	wk_client_read_update(c);
}

/* Backpressure is over: reading again unless something else holds it. */
static void
wk_client_unpause(struct wk_client *c)
{
	c->read_paused = false;
	wk_client_read_update(c);
}

/* c's cancel is no longer awaited: reading on again if it was off for it. */
static bool
wk_client_cancel_read_on(struct wk_client *c)
{
	if (!c->is_cancel_read_off)
		return false;
	c->is_cancel_read_off = false;
	if (c->state != WK_CLIENT_ACTIVE && c->state != WK_CLIENT_IDLE)
		return false;
	wk_client_read_start(c);
	return true;
}

/* c's cancel has arrived: it gives its server back if its transaction is done. */
static void
wk_client_cancel_unhold(struct wk_client *c)
{
	struct wk_server *s = c->server;

	if (s && wk_client_cancel_due(c, s))
		return;
	c->is_cancel_hold = false;
	wk_client_holds_cnt--;
	log_debug(&c->lctx, "the cancel has arrived: %zu bytes of the client's wait, reading %s",
		  evbuffer_get_length(c->io.in), c->is_cancel_read_off ? "held" : "not held");
	if (s && c->state == WK_CLIENT_ACTIVE && s->expect_ready == 0 && !s->has_unsynced &&
	    s->internal_ready == 0 && s->tx_status == 'I' && !c->pins && c->fwd_remaining == 0 &&
	    !wk_client_is_session(c) && evbuffer_get_length(c->io.in) == 0)
		wk_client_detach(c);
	/* the request that waited for the cancel goes now (wk_client_forward) */
	if (wk_client_cancel_read_on(c) && evbuffer_get_length(c->io.in)) {
		wk_clock_update();
		(void)wk_client_on_input(c);
	}
}

/*
 * The worker that sent a cancel clears its mark when the cancel connection
 * ends, which its timeouts bound to about twice connect_timeout. A mark held
 * longer than that (and a second more) lost that worker (it died, or hangs):
 * cleared here, else c would keep its server, and its next request wait,
 * until it disconnected.
 */
static void
wk_client_cancel_stale(struct wk_client *c, uint64_t now)
{
	struct shm_client *r = wk_client_row(c);
	uint64_t bound = 2 * (uint64_t)g_cfg->connect_timeout * 1000 + 1000000;
	uint32_t b = atomic_load(&r->cancel_backend);

	if (b == 0 || now - c->cancel_hold_us <= bound ||
	    !atomic_compare_exchange_strong(&r->cancel_backend, &b, (uint32_t)0))
		return;
	log_warn(&c->lctx,
		 "the cancel for backend %u did not end within %.1f s (its worker is gone?): "
		 "the client's server is its own again",
		 b, (double)(now - c->cancel_hold_us) / 1e6);
}

void
wk_client_cancel_arrived(struct shm_client *r)
{
	struct list *pos, *tmp;

	if (!wk_client_holds_cnt)
		return;
	list_foreach_safe (pos, tmp, &g_wk.clients) {
		struct wk_client *c = list_entry(pos, struct wk_client, node);

		if (c->is_cancel_hold && wk_client_row(c) == r)
			wk_client_cancel_unhold(c);
	}
}

void
wk_client_row_server(struct wk_client *c)
{
	struct shm_client *r = wk_client_row(c);
	struct wk_server *s = c->server;

	atomic_fetch_add_explicit(&r->server_seq, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	r->server_db_idx = s ? (int32_t)s->pool->idx : -1; /* the pool's shm index */
	r->server_pid = s ? s->backend_pid : 0;
	r->server_key = s ? s->backend_key : 0;
	r->server_id = s ? s->id : 0;
	atomic_fetch_add_explicit(&r->server_seq, 1, memory_order_release);
}

static void
wk_client_peer(struct wk_client *c, const struct sockaddr *sa, uint16_t *port)
{
	char host[INET6_ADDRSTRLEN] = "";

	*port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		*port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		*port = ntohs(in6->sin6_port);
	} else {
		snprintf(host, sizeof(host), "unix");
	}
	if (*port)
		snprintf(c->lctx.peer, sizeof(c->lctx.peer), "%s:%u", host, *port);
	else
		snprintf(c->lctx.peer, sizeof(c->lctx.peer), "%s", host);
	snprintf(wk_client_row(c)->addr, SHM_ADDR_MAX, "%s", host);
}

/* log_pooler_errors: one line per ErrorResponse pgdog itself sends to a client. */
static void
wk_client_log_error(const struct log_ctx *ctx, const char *severity, const char *sqlstate,
		    const char *message)
{
	if (g_cfg->log_pooler_errors)
		log_warn(ctx, "pooler error: %s %s: %s", severity, sqlstate, message);
}

/* Refuse a connection before any state exists: one write, then close. */
static void
wk_client_refuse(int fd, const char *sqlstate, const char *message)
{
	struct pgw_buf *b = &g_wk.scratch;

	wk_client_log_error(NULL, "FATAL", sqlstate, message);
	pgw_buf_reset(b);
	pgw_put_error(b, false, "FATAL", sqlstate, message, NULL, NULL);
	if (!b->has_error)
		(void)write(fd, b->data, b->len);
	close(fd);
}

void
wk_client_accept(int fd, const struct sockaddr *sa, socklen_t sa_len, bool is_unix)
{
	struct wk_client *c;
	struct shm_client *r;
	uint16_t port;

	if (g_wk.free_client_rows_cnt == 0 ||
	    shm_clients_total() >= (uint32_t)g_cfg->max_client_conn) {
		wk_client_refuse(fd, SQLSTATE_TOO_MANY_CONNECTIONS,
				 "sorry, too many clients already");
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		wk_client_refuse(fd, SQLSTATE_OUT_OF_MEMORY, "out of memory");
		return;
	}
	list_init(&c->wait_node);
	wk_session_init(&c->session);
	wk_settings_init(&c->told);
	wk_prep_names_init(&c->prep_names);
	c->pool_idx = -1;
	c->is_unix = is_unix;
	c->id = ++g_wk.next_client_id;
	c->row = g_wk.free_client_rows[--g_wk.free_client_rows_cnt];
	c->connect_us = g_wk.mono_us;
	c->last_request_us = g_wk.mono_us;
	snprintf(c->lctx.id, sizeof(c->lctx.id), "w%dc%llu", g_wk.slot, (unsigned long long)c->id);
	r = wk_client_row(c);
	shm_row_write_begin(&r->seq);
	memset((char *)r + sizeof(r->seq), 0, sizeof(*r) - sizeof(r->seq));
	r->id = c->id;
	r->pool_idx = -1;
	r->server_db_idx = -1;
	r->connect_us = g_wk.now_us;
	r->fd = fd; /* SHOW FDS */
	wk_client_peer(c, sa, &port);
	r->port = port;
	shm_row_write_end(&r->seq);
	list_append(&g_wk.clients, &c->node);
	g_wk.clients_cnt++;
	atomic_fetch_add_explicit(&shm_worker((uint32_t)g_wk.slot)->clients_cnt, 1,
				  memory_order_relaxed);
	c->state = WK_CLIENT_STARTUP;
	atomic_store_explicit(&r->state, SHM_STATE_LOGIN, memory_order_relaxed);

	(void)wk_conn_bind_socket_opts(fd);
	if (wk_stream_open(&c->io, fd, &wk_client_io_ops, c) < 0) {
		wk_client_close(c, "out of memory");
		return;
	}
	if (!wk_stream_is_reading(&c->io)) {
		wk_client_close(c, "cannot watch the socket");
		return;
	}
	log_debug(&c->lctx, "connection accepted%s", is_unix ? " on the Unix socket" : "");
}

/*
 * Binary upgrade: a client the previous generation's worker handed over
 * (wk_handoff.c), logged in and between transactions. Re-created as if it
 * had just logged in, without sending it anything: it keeps its row (and
 * so its cancel key) when that row is free here.
 */
struct wk_client *
wk_client_adopt(int fd, struct wk_handoff_state *st)
{
	struct sockaddr_storage ss;
	socklen_t ss_len = sizeof(ss);
	struct wk_client *c;
	struct shm_client *r;
	const char *app;
	uint16_t port;
	int pool_idx, cfg_idx;

	memset(&ss, 0, sizeof(ss));
	if (getpeername(fd, (struct sockaddr *)&ss, &ss_len) < 0)
		ss.ss_family = AF_UNIX;
	cfg_idx = config_find_pool(g_cfg, st->user, st->database);
	/* c->pool_idx is the pool's stable shm index, not the configuration's */
	pool_idx = cfg_idx < 0 ? -1 : wk_pool_index_of(cfg_idx);
	if (pool_idx < 0) {
		wk_client_refuse(fd, SQLSTATE_INVALID_CATALOG_NAME,
				 "this database or user is not in the configuration any more");
		return NULL;
	}
	if (g_wk.free_client_rows_cnt == 0 ||
	    shm_clients_total() >= (uint32_t)g_cfg->max_client_conn) {
		wk_client_refuse(fd, SQLSTATE_TOO_MANY_CONNECTIONS,
				 "sorry, too many clients already");
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		wk_client_refuse(fd, SQLSTATE_OUT_OF_MEMORY, "out of memory");
		return NULL;
	}
	list_init(&c->wait_node);
	c->session = st->session; /* moved */
	wk_session_init(&st->session);
	wk_settings_init(&c->told);
	wk_prep_names_init(&c->prep_names);
	c->is_unix = st->is_unix;
	c->id = ++g_wk.next_client_id;
	/*
	 * The same row index as in the old worker, if free: a CancelRequest
	 * with the client's old BackendKeyData then finds it at once (else by
	 * searching, see wk_cancel_request); the key stays the client's.
	 */
	c->row = g_wk.free_client_rows[g_wk.free_client_rows_cnt - 1];
	for (size_t i = 0; i < g_wk.free_client_rows_cnt; i++) {
		if (g_wk.free_client_rows[i] == wk_cancel_row_of(st->cancel_pid)) {
			g_wk.free_client_rows[i] = c->row;
			c->row = wk_cancel_row_of(st->cancel_pid);
			break;
		}
	}
	g_wk.free_client_rows_cnt--;
	c->cancel_key = st->cancel_key;
	while (c->cancel_key == 0)
		c->cancel_key = secret_random_u32();
	c->connect_us = g_wk.mono_us;
	c->last_request_us = g_wk.mono_us;
	snprintf(c->lctx.id, sizeof(c->lctx.id), "w%dc%llu", g_wk.slot, (unsigned long long)c->id);
	snprintf(c->user_name, sizeof(c->user_name), "%s", st->user);
	snprintf(c->db_name, sizeof(c->db_name), "%s", st->database);
	c->lctx.user = c->user_name;
	c->lctx.db = c->db_name;
	c->pool_idx = pool_idx;
	c->user = &g_cfg->users[g_cfg->pools[cfg_idx].user_idx];
	c->pool = wk_pool_get((uint32_t)pool_idx);
	/* the mode it logged in with, as before the upgrade */
	c->pooler_mode =
		st->pooler_mode != 0xff ? st->pooler_mode : (uint8_t)c->pool->cfg->pooler_mode;
	app = wk_client_param(c, "application_name");
	r = wk_client_row(c);
	shm_row_write_begin(&r->seq);
	memset((char *)r + sizeof(r->seq), 0, sizeof(*r) - sizeof(r->seq));
	r->id = c->id;
	r->pool_idx = pool_idx;
	r->cancel_pid = st->cancel_pid;
	r->server_db_idx = -1;
	r->connect_us = g_wk.now_us;
	r->fd = fd; /* SHOW FDS */
	wk_client_peer(c, (struct sockaddr *)&ss, &port);
	r->port = port;
	snprintf(r->user, sizeof(r->user), "%s", c->user_name);
	snprintf(r->database, sizeof(r->database), "%s", c->db_name);
	snprintf(r->application_name, sizeof(r->application_name), "%s", app ? app : "");
	shm_row_write_end(&r->seq);
	list_append(&g_wk.clients, &c->node);
	g_wk.clients_cnt++;
	atomic_fetch_add_explicit(&shm_worker((uint32_t)g_wk.slot)->clients_cnt, 1,
				  memory_order_relaxed);
	c->state = WK_CLIENT_STARTUP;
	wk_client_set_state(c, WK_CLIENT_AUTH);

	(void)wk_conn_bind_socket_opts(fd);
	if (wk_stream_open(&c->io, fd, &wk_client_io_ops, c) < 0) { /* fd closed */
		wk_client_close(c, "out of memory");
		return NULL;
	}
	wk_client_set_state(c, WK_CLIENT_IDLE);
	atomic_store_explicit(&r->cancel_key, c->cancel_key, memory_order_release);
	if (!wk_stream_is_reading(&c->io)) {
		wk_client_close(c, "cannot watch the socket");
		return NULL;
	}
	if (g_cfg->log_connections)
		log_info(&c->lctx,
			 "login handed over from the previous generation: user=%s database=%s%s",
			 c->user_name, c->db_name,
			 c->cancel_key == st->cancel_key ? ""
							 : " (its cancel key is not valid here)");
	return c;
}

/*
 * The client's unnamed statement becomes a rewritten SQL PREPARE or EXECUTE
 * (see struct wk_client sql_kind; kind WK_SQL_NONE: none), its number
 * sql_id set by the caller; the reference on the statement before is dropped.
 */
static void
wk_client_sql_set(struct wk_client *c, enum wk_sql_kind kind, struct wk_prep *p, const char *name,
		  const char *junk)
{
	struct wk_prep *old = c->sql_prep;

	c->sql_kind = (uint8_t)kind;
	c->sql_prep = p;
	c->sql_id = 0;
	c->is_sql_bind_due = false;
	snprintf(c->sql_name, sizeof(c->sql_name), "%s", name ? name : "");
	snprintf(c->sql_junk, sizeof(c->sql_junk), "%s", junk ? junk : "");
	if (p) {
		p->client_refs++;
		wk_prep_publish(p);
	}
	if (old) {
		old->client_refs--;
		wk_prep_publish(old);
		wk_prep_release_if_unused(old);
	}
}

void
wk_client_free(struct wk_client *c)
{
	struct shm_client *r;

	if (!c)
		return;
	if (c->pool)
		wk_pool_unwait(c->pool, c);
	if (c->is_admin)
		wk_admin_ctl_forget(c);
	if (c->cancel_op)
		wk_cancel_forget_client(c->cancel_op);
	if (c->is_cancel_hold)
		wk_client_holds_cnt--;
	list_del(&c->node);
	wk_stream_cleanup(&c->io);
	if (c->scram) {
		auth_scram_server_cleanup(c->scram);
		free(c->scram);
	}
	if (c->fake_secret) {
		auth_secret_cleanup(c->fake_secret);
		free(c->fake_secret);
	}
	free(c->login_notice);
	wk_session_cleanup(&c->session);
	wk_settings_cleanup(&c->told);
	wk_prep_names_cleanup(&c->prep_names);
	free(c->unnamed_msg);
	for (size_t i = 0; i < c->unnamed_old_cap; i++)
		free(c->unnamed_old[i].msg);
	free(c->unnamed_old);
	wk_client_bound_clear(c);
	free(c->bound);
	wk_client_sql_set(c, WK_SQL_NONE, NULL, NULL, NULL);
	wk_pubsub_client_free(c);
	r = wk_client_row(c);
	shm_row_write_begin(&r->seq);
	atomic_store_explicit(&r->cancel_key, 0, memory_order_relaxed);
	atomic_store_explicit(&r->state, SHM_STATE_FREE, memory_order_relaxed);
	r->id = 0;
	shm_row_write_end(&r->seq);
	g_wk.free_client_rows[g_wk.free_client_rows_cnt++] = c->row;
	g_wk.clients_cnt--;
	atomic_fetch_sub_explicit(&shm_worker((uint32_t)g_wk.slot)->clients_cnt, 1,
				  memory_order_relaxed);
	free(c);
}

enum wk_rc
wk_client_close(struct wk_client *c, const char *reason)
{
	struct shm_client *r = wk_client_row(c);

	if (c->state == WK_CLIENT_CLOSING)
		return WK_CLOSED;
	if (c->pool)
		wk_pool_unwait(c->pool, c);
	if (c->server) {
		struct wk_server *s = c->server;

		bool is_cancel_due;

		c->server = NULL;
		if (c->fwd_remaining)
			s->is_broken_request = true; /* half a message went to the server */
		/* cleared before the mark is read: see wk_cancel_request */
		wk_client_running(c, false);
		is_cancel_due = s->backend_pid && atomic_load(&r->cancel_backend) == s->backend_pid;
		/* no reset unloads a library: no other client gets that process */
		s->is_unreusable = (c->pins & WK_PIN_LOAD) != 0;
		wk_server_release(s, wk_client_is_session(c) || c->pins, is_cancel_due);
	}
	atomic_store_explicit(&r->cancel_key, 0, memory_order_relaxed);
	wk_client_row_server(c);
	if (wk_stream_is_open(&c->io)) {
		wk_stream_read_off(&c->io);
		wk_stream_write_off(&c->io);
		wk_conn_flush_now(&c->io);
	}
	if (g_cfg->log_disconnections && c->state != WK_CLIENT_STARTUP)
		log_info(&c->lctx, "closing client connection after %.3f s: %s",
			 (double)(g_wk.mono_us - c->connect_us) / 1e6,
			 reason ? reason : "client left");
	else
		log_debug(&c->lctx, "closing client connection: %s",
			  reason ? reason : "client left");
	wk_client_set_state(c, WK_CLIENT_CLOSING);
	wk_reap_client(c);
	return WK_CLOSED;
}

enum wk_rc
wk_client_fatal(struct wk_client *c, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	struct pgw_buf *b = &g_wk.scratch;

	if (c->state == WK_CLIENT_CLOSING)
		return WK_CLOSED;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	wk_client_log_error(&c->lctx, "FATAL", sqlstate, msg);
	pgw_buf_reset(b);
	pgw_put_error(b, false, "FATAL", sqlstate, msg, NULL, NULL);
	if (wk_stream_is_open(&c->io) && wk_conn_send(&c->io, b) < 0)
		log_debug(&c->lctx, "cannot queue the error for the client");
	wk_client_row(c)->errors++;
	return wk_client_close(c, msg);
}

void
wk_client_server_lost(struct wk_client *c, const char *sqlstate, const char *message)
{
	c->server = NULL;
	wk_client_fatal(c, sqlstate, "%s", message);
}

/* ---- startup ------------------------------------------------------------ */

/*
 * Split options="-c a=b --c=d" into startup settings (backslash escapes
 * spaces), with PostgreSQL's errors: *sqlstate and err on failure.
 */
static int
wk_client_parse_options(struct wk_client *c, const char *opts, const char **sqlstate, char *err,
			size_t err_len)
{
	const char *p = opts;
	char *word = malloc(strlen(opts) + 1);
	bool after_c = false;
	int rc = -1;

	*sqlstate = SQLSTATE_SYNTAX_ERROR;
	if (!word) {
		*sqlstate = SQLSTATE_OUT_OF_MEMORY;
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	for (;;) {
		size_t n = 0;
		char *eq, *name;

		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		while (*p && *p != ' ' && *p != '\t') {
			if (*p == '\\' && p[1])
				p++;
			word[n++] = *p++;
		}
		word[n] = '\0';
		if (!after_c && strcmp(word, "-c") == 0) {
			/* the name=value is the next word */
			after_c = true;
			continue;
		}
		name = word;
		if (after_c)
			;
		else if (strncmp(name, "-c", 2) == 0)
			name += 2;
		else if (strncmp(name, "--", 2) == 0)
			name += 2;
		else {
			*sqlstate = SQLSTATE_FEATURE_NOT_SUPPORTED;
			snprintf(
				err, err_len,
				"unsupported startup option \"%.100s\": only -c name=value is accepted",
				word);
			goto out;
		}
		eq = strchr(name, '=');
		if (!eq) {
			/* as PostgreSQL words it: "-c name" or "--name" */
			snprintf(err, err_len, "%s%.200s requires a value",
				 after_c || word[1] == 'c' ? "-c " : "--", name);
			goto out;
		}
		after_c = false;
		if (eq == name) {
			*sqlstate = SQLSTATE_UNDEFINED_OBJECT;
			snprintf(err, err_len, "unrecognized configuration parameter \"\"");
			goto out;
		}
		*eq = '\0';
		for (char *q = name; *q; q++)
			if (*q == '-')
				*q = '_';
		if (wk_settings_put(&c->session.startup, name, eq + 1, false) < 0) {
			*sqlstate = SQLSTATE_OUT_OF_MEMORY;
			snprintf(err, err_len, "out of memory");
			goto out;
		}
	}
	if (after_c)
		snprintf(err, err_len, "invalid command-line argument for server process: -c");
	else
		rc = 0;
out:
	free(word);
	return rc;
}

/*
 * The header of c's next message (wk_conn_peek() of its input, up to
 * max_message_len): a bad or too long length closes c with 08P01, and
 * answers WK_PEEK_BAD_LEN.
 */
static enum wk_peek
wk_client_peek(struct wk_client *c, struct pgw_hdr *h, const uint8_t **msg)
{
	enum wk_peek r = wk_conn_peek(c->io.in, (uint32_t)g_cfg->max_message_len, false, h, msg);

	if (r == WK_PEEK_BAD_LEN)
		(void)wk_client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "invalid message length");
	else if (r == WK_PEEK_TOO_LONG)
		(void)wk_client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
				      "message of %u bytes exceeds max_message_len (%d)", h->len,
				      g_cfg->max_message_len);
	return r == WK_PEEK_TOO_LONG ? WK_PEEK_BAD_LEN : r;
}

/*
 * wk_client_peek() as a result for the callers that stop on it: WK_OK with
 * the header in h, WK_AGAIN until it has come, WK_CLOSED when c was closed.
 */
static enum wk_rc
wk_client_peek_rc(struct wk_client *c, struct pgw_hdr *h, const uint8_t **msg)
{
	switch (wk_client_peek(c, h, msg)) {
	case WK_PEEK_MORE:
		return WK_AGAIN;
	case WK_PEEK_BAD_LEN:
		return WK_CLOSED; /* wk_client_peek closed c */
	default:
		return WK_OK;
	}
}

/*
 * A startup application_name as PostgreSQL takes it: cut to 63 bytes (a
 * name, NAMEDATALEN - 1) at a character's start, with a NOTICE at the end
 * of the login, then every byte outside printable ASCII written '?'. The
 * cut counts UTF-8 characters, as pg_mbcliplen does in a UTF8 database.
 */
static int
wk_client_clean_app_name(struct wk_client *c)
{
	const struct wk_setting *v = wk_settings_get(&c->session.startup, "application_name");
	char clean[64];
	size_t n = 0, len;

	if (!v)
		return 0;
	len = strlen(v->value);
	while (n < len) {
		unsigned char b = (unsigned char)v->value[n];
		size_t step = (b & 0x80) == 0      ? 1
			      : (b & 0xe0) == 0xc0 ? 2
			      : (b & 0xf0) == 0xe0 ? 3
			      : (b & 0xf8) == 0xf0 ? 4
						   : 1;

		if (n + step > sizeof(clean) - 1)
			break;
		n += step;
	}
	memcpy(clean, v->value, n);
	clean[n] = '\0';
	if (n < len) {
		char *msg = NULL;

		if (asprintf(&msg, "identifier \"%s\" will be truncated to \"%s\"", v->value,
			     clean) < 0)
			return -1;
		free(c->login_notice);
		c->login_notice = msg;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)clean[i] < 32 || (unsigned char)clean[i] > 126)
			clean[i] = '?';
	if (n == len && strcmp(clean, v->value) == 0)
		return 0;
	return wk_settings_put(&c->session.startup, "application_name", clean, false);
}

/* Keep the startup parameters: the session's values, applied to every server it uses. */
static int
wk_client_keep_params(struct wk_client *c, const struct pgw_startup *st, const char **sqlstate,
		      char *err, size_t err_len)
{
	/* -c options first: the packet's own parameters win over them, as in PostgreSQL */
	const char *opts = pgw_startup_get(st, "options");

	if (opts && wk_client_parse_options(c, opts, sqlstate, err, err_len) < 0)
		return -1;
	for (size_t i = 0; i < st->params_cnt; i++) {
		const char *name = st->params[i].name, *value = st->params[i].value;

		if (strcmp(name, "user") == 0 || strcmp(name, "database") == 0 ||
		    strcmp(name, "options") == 0)
			continue;
		if (strcmp(name, "replication") == 0) {
			if (strcasecmp(value, "false") == 0 || strcasecmp(value, "off") == 0 ||
			    strcasecmp(value, "no") == 0 || strcmp(value, "0") == 0)
				continue;
			*sqlstate = SQLSTATE_FEATURE_NOT_SUPPORTED;
			snprintf(err, err_len,
				 "replication connections are not supported by pgdog");
			return -1;
		}
		if (wk_settings_put(&c->session.startup, name, value, false) < 0) {
			*sqlstate = SQLSTATE_OUT_OF_MEMORY;
			snprintf(err, err_len, "out of memory");
			return -1;
		}
	}
	if (wk_client_clean_app_name(c) < 0) {
		*sqlstate = SQLSTATE_OUT_OF_MEMORY;
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	return 0;
}

static const char *
wk_client_param(const struct wk_client *c, const char *name)
{
	const struct wk_setting *v = wk_settings_get(&c->session.startup, name);

	return v ? v->value : NULL;
}

/* A SCRAM secret for a user that does not exist: same salt every time. */
static struct auth_secret *
wk_client_fake_secret(const char *user)
{
	struct auth_secret *s = calloc(1, sizeof(*s));
	uint8_t in[32 + 128], digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	size_t n = strnlen(user, 128);

	if (!s)
		return NULL;
	memcpy(in, g_shm->mock_key, 32);
	memcpy(in + 32, user, n);
	if (EVP_Digest(in, 32 + n, digest, &dlen, EVP_sha256(), NULL) != 1 || dlen < 16) {
		free(s);
		return NULL;
	}
	s->kind = AUTH_SECRET_SCRAM;
	s->iterations = AUTH_SCRAM_ITERATIONS;
	memcpy(s->salt, digest, 16);
	s->salt_len = 16;
	secret_random(s->stored_key, sizeof(s->stored_key));
	secret_random(s->server_key, sizeof(s->server_key));
	return s;
}

static const struct auth_secret *
wk_client_secret(const struct wk_client *c)
{
	if (c->is_admin)
		return &g_cfg->admin.secret;
	if (c->user)
		return &c->user->secret;
	return c->fake_secret;
}

static enum wk_rc
wk_client_auth_fail(struct wk_client *c)
{
	if (c->pool_idx >= 0)
		wk_stats_auth(wk_pool_get((uint32_t)c->pool_idx), false);
	return wk_client_fatal(c, SQLSTATE_INVALID_PASSWORD,
			       "password authentication failed for user \"%s\"", c->user_name);
}

/* Everything is checked: send AuthenticationOk and go on. */
static enum wk_rc
wk_client_auth_done(struct wk_client *c)
{
	struct pgw_buf *b = &g_wk.scratch;
	struct wk_pool *p;

	if (c->scram) {
		auth_scram_server_cleanup(c->scram);
		free(c->scram);
		c->scram = NULL;
	}
	if (!c->is_admin) {
		if (!c->user)
			return wk_client_auth_fail(c);
		if (!config_has_database(g_cfg, c->db_name))
			return wk_client_fatal(c, SQLSTATE_INVALID_CATALOG_NAME,
					       "database \"%s\" does not exist", c->db_name);
		if (c->pool_idx < 0)
			return wk_client_fatal(
				c, SQLSTATE_INVALID_AUTHORIZATION,
				"user \"%s\" is not allowed to connect to database \"%s\"",
				c->user_name, c->db_name);
	}
	pgw_buf_reset(b);
	pgw_put_auth(b, PGW_AUTH_OK, NULL, 0);
	if (wk_conn_send(&c->io, b) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	if (c->is_admin) {
		wk_client_set_state(c, WK_CLIENT_ADMIN);
		if (g_cfg->log_connections)
			log_info(&c->lctx, "admin login");
		return wk_admin_welcome(c);
	}
	p = wk_pool_get((uint32_t)c->pool_idx);
	c->pool = p;
	/* kept for the connection's life: a reload changes the mode for new clients only */
	c->pooler_mode = (uint8_t)p->cfg->pooler_mode;
	wk_stats_auth(p, true);
	{
		struct shm_client *r = wk_client_row(c);

		shm_row_write_begin(&r->seq);
		r->pool_idx = c->pool_idx;
		shm_row_write_end(&r->seq);
	}
	if (wk_pool_has_params(p))
		return wk_client_finish_login(c);
	/* the first client of a cold pool waits for a server to learn its parameters */
	wk_client_set_state(c, WK_CLIENT_LOGIN_WAIT);
	wk_client_read_stop(c);
	return wk_pool_checkout(p, c);
}

enum wk_rc
wk_client_send_ready(struct wk_client *c, struct pgw_buf *b)
{
	do {
		c->cancel_key = secret_random_u32();
	} while (c->cancel_key == 0);
	pgw_put_backend_key(b, wk_cancel_pid((uint32_t)g_wk.slot, c->row), c->cancel_key);
	pgw_put_ready(b, 'I');
	if (wk_conn_send(&c->io, b) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	wk_client_row(c)->cancel_pid = wk_cancel_pid((uint32_t)g_wk.slot, c->row);
	atomic_store_explicit(&wk_client_row(c)->cancel_key, c->cancel_key, memory_order_release);
	return WK_OK;
}

/* The value its pool's servers reported at login for name, or NULL. */
static const char *
wk_client_pool_param(const struct wk_client *c, const char *name)
{
	for (size_t i = 0; c->pool && i < c->pool->params_cnt; i++)
		if (strcasecmp(c->pool->params[i].name, name) == 0)
			return c->pool->params[i].value;
	return NULL;
}

int
wk_client_param_status(struct wk_client *c, const char *name, const char *value, bool is_ours)
{
	const struct wk_setting *t = wk_settings_get(&c->told, name);
	const char *pool_value = wk_client_pool_param(c, name);
	const char *was = t ? t->value : pool_value;

	if (is_ours && was && strcmp(was, value) == 0)
		return 0; /* it knows: PostgreSQL reports only a change */
	if (pool_value && strcmp(pool_value, value) == 0)
		wk_settings_del(&c->told, name);
	else if (wk_settings_put(&c->told, name, value, false) < 0)
		return -1;
	return 1;
}

/*
 * Startup values a server of the pool has accepted: a login that brings
 * only those (or the pool's own) needs no server. Per worker, direct-mapped
 * on (pool, name, value); a value pushed out is tried again.
 */
#define WK_LOGIN_CHECKED_SLOTS 1024
static struct wk_login_checked {
	uint64_t key;
	char *spelled; /* a reported parameter's value as the server wrote it: owned */
} wk_login_checked[WK_LOGIN_CHECKED_SLOTS];

static uint64_t
wk_login_key(int pool_idx, const struct wk_setting *v)
{
	uint64_t h = fnv1a64(FNV1A64_INIT, &pool_idx, sizeof(pool_idx));

	h = fnv1a64(h, v->name, strlen(v->name) + 1);
	h = fnv1a64(h, v->value, strlen(v->value));
	return h | 1; /* 0 is an empty slot */
}

/*
 * Does c bring a startup value that no server of its pool has taken yet?
 * PostgreSQL refuses a login whose value is invalid (work_mem=bogus), so
 * such a value is tried on a server before the login ends. Any text is a
 * valid application_name.
 */
static bool
wk_client_login_needs_check(const struct wk_client *c)
{
	const struct wk_settings *st = &c->session.startup;

	for (size_t i = 0; i < st->cnt; i++) {
		const struct wk_setting *v = &st->v[i];
		const char *reported;
		uint64_t k;

		if (strcmp(v->name, "application_name") == 0)
			continue;
		reported = wk_client_pool_param(c, v->name);
		if (reported && strcmp(reported, v->value) == 0)
			continue;
		k = wk_login_key(c->pool_idx, v);
		if (wk_login_checked[k % WK_LOGIN_CHECKED_SLOTS].key != k)
			return true;
	}
	return false;
}

/* How the server wrote c's startup value of name when it took it, or NULL. */
static const char *
wk_client_login_spelled(const struct wk_client *c, const char *name)
{
	const struct wk_setting *v = wk_settings_get(&c->session.startup, name);
	uint64_t k;

	if (!v)
		return NULL;
	k = wk_login_key(c->pool_idx, v);
	if (wk_login_checked[k % WK_LOGIN_CHECKED_SLOTS].key != k)
		return NULL;
	return wk_login_checked[k % WK_LOGIN_CHECKED_SLOTS].spelled;
}

/* The value s reported for name, or NULL. */
static const char *
wk_client_server_param(const struct wk_server *s, const char *name)
{
	for (size_t i = 0; s && i < s->params_cnt; i++)
		if (strcasecmp(s->params[i].name, name) == 0)
			return s->params[i].value;
	return NULL;
}

/*
 * c's startup values are applied on its server (its SETs answered without
 * an error): remember them, give the server back, and end the login with
 * the values as the server spells them.
 */
enum wk_rc
wk_client_login_checked(struct wk_client *c)
{
	const struct wk_settings *st = &c->session.startup;

	for (size_t i = 0; i < st->cnt; i++) {
		uint64_t k = wk_login_key(c->pool_idx, &st->v[i]);
		struct wk_login_checked *e = &wk_login_checked[k % WK_LOGIN_CHECKED_SLOTS];
		const char *spelled = wk_client_server_param(c->server, st->v[i].name);

		free(e->spelled);
		e->spelled = NULL;
		e->key = 0;
		if (spelled && !(e->spelled = strdup(spelled)))
			continue; /* out of memory: tried again next time */
		e->key = k;
	}
	c->is_login_check = false;
	return wk_client_finish_login(c);
}

enum wk_rc
wk_client_finish_login(struct wk_client *c)
{
	struct pgw_buf *b = &g_wk.scratch;
	struct wk_pool *p = c->pool;
	struct wk_server *s = c->server; /* after wk_client_login_checked */

	if (!c->is_login_checked && !p->is_held && !p->is_banned && !g_wk.is_shutting_down &&
	    wk_client_login_needs_check(c)) {
		/* its first transaction starts now, with no request of its own */
		c->is_login_checked = true;
		c->is_login_check = true;
		wk_client_read_stop(c);
		wk_client_set_state(c, WK_CLIENT_IDLE);
		return wk_pool_checkout(p, c);
	}
	c->is_login_checked = true;
	pgw_buf_reset(b);
	if (c->login_notice) {
		/* client_min_messages above NOTICE keeps it from the client, as in PostgreSQL */
		const char *level = wk_client_param(c, "client_min_messages");

		if (!level || strncasecmp(level, "debug", 5) == 0 ||
		    strcasecmp(level, "notice") == 0)
			pgw_put_error(b, true, "NOTICE", SQLSTATE_NAME_TOO_LONG, c->login_notice,
				      NULL, NULL);
		free(c->login_notice);
		c->login_notice = NULL;
	}
	for (size_t i = 0; i < p->params_cnt; i++) {
		const char *mine = wk_client_param(c, p->params[i].name);
		const char *spelled = NULL;

		if (mine)
			spelled = s ? wk_client_server_param(s, p->params[i].name)
				    : wk_client_login_spelled(c, p->params[i].name);
		if (spelled)
			mine = spelled; /* "German, DMY" for german */
		pgw_put_param_status(b, p->params[i].name, mine ? mine : p->params[i].value);
		if (mine && wk_client_param_status(c, p->params[i].name, mine, false) < 0)
			return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	}
	if (wk_client_send_ready(c, b) == WK_CLOSED)
		return WK_CLOSED;
	if (s)
		wk_client_detach(c); /* IDLE, its server back to the pool (scratch is free again) */
	wk_client_read_start(c);
	if (c->state != WK_CLIENT_IDLE)
		wk_client_set_state(c, WK_CLIENT_IDLE);
	if (g_cfg->log_connections)
		log_info(&c->lctx, "login: user=%s database=%s", c->user_name, c->db_name);
	if (g_wk.is_shutting_down)
		return wk_client_fatal(c, SQLSTATE_ADMIN_SHUTDOWN,
				       "terminating connection due to administrator command");
	if (evbuffer_get_length(c->io.in))
		return wk_client_on_input(c);
	return WK_OK;
}

/* A StartupMessage 3.x: who, where, and which authentication to run. */
static enum wk_rc
wk_client_login_start(struct wk_client *c, const struct pgw_startup *st)
{
	struct pgw_buf *b = &g_wk.scratch;
	struct shm_client *r = wk_client_row(c);
	const char *app;
	char err[256];
	const char *sqlstate = NULL;

	snprintf(c->user_name, sizeof(c->user_name), "%s", st->user);
	snprintf(c->db_name, sizeof(c->db_name), "%s", st->database);
	c->lctx.user = c->user_name;
	c->lctx.db = c->db_name;
	if (wk_client_keep_params(c, st, &sqlstate, err, sizeof(err)) < 0)
		return wk_client_fatal(c, sqlstate, "%s", err);
	app = wk_client_param(c, "application_name");
	shm_row_write_begin(&r->seq);
	snprintf(r->user, sizeof(r->user), "%s", c->user_name);
	snprintf(r->database, sizeof(r->database), "%s", c->db_name);
	snprintf(r->application_name, sizeof(r->application_name), "%s", app ? app : "");
	shm_row_write_end(&r->seq);
	wk_client_set_state(c, WK_CLIENT_AUTH);

	if (g_cfg->admin.name && strcmp(c->db_name, g_cfg->admin.name) == 0) {
		if (!g_cfg->admin.user || strcmp(c->user_name, g_cfg->admin.user) != 0)
			return wk_client_fatal(
				c, SQLSTATE_INVALID_AUTHORIZATION,
				"user \"%s\" is not allowed to connect to the admin console",
				c->user_name);
		if (g_cfg->admin.secret.kind == AUTH_SECRET_NONE)
			return wk_client_fatal(
				c, SQLSTATE_INVALID_AUTHORIZATION,
				"the admin console is disabled: set a password in [admin]");
		c->is_admin = true;
		snprintf(r->database, sizeof(r->database), "%s", c->db_name);
	} else {
		/* the entry for this database; any entry of that name still authenticates */
		int cfg_idx = config_find_pool(g_cfg, c->user_name, c->db_name);

		/* c->pool_idx is the pool's stable shm index, not the configuration's */
		c->pool_idx = wk_pool_index_of(cfg_idx);
		if (cfg_idx >= 0)
			c->user = &g_cfg->users[g_cfg->pools[cfg_idx].user_idx];
		else
			c->user = config_find_user(g_cfg, c->user_name);
	}

	pgw_buf_reset(b);
	switch (g_cfg->auth_type) {
	case CONFIG_AUTH_TRUST:
		if (!c->is_admin && !c->user)
			return wk_client_fatal(c, SQLSTATE_INVALID_AUTHORIZATION,
					       "role \"%s\" does not exist", c->user_name);
		return wk_client_auth_done(c);
	case CONFIG_AUTH_PLAIN:
		pgw_put_auth(b, PGW_AUTH_CLEARTEXT, NULL, 0);
		c->auth_step = WK_AUTH_PASSWORD;
		break;
	case CONFIG_AUTH_MD5:
		secret_random(c->md5_salt, sizeof(c->md5_salt));
		pgw_put_auth(b, PGW_AUTH_MD5, c->md5_salt, sizeof(c->md5_salt));
		c->auth_step = WK_AUTH_PASSWORD;
		break;
	case CONFIG_AUTH_SCRAM:
	default:
		if (!c->is_admin && !c->user) {
			c->fake_secret = wk_client_fake_secret(c->user_name);
			if (!c->fake_secret)
				return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
		}
		pgw_put_auth_sasl(b, "SCRAM-SHA-256");
		c->auth_step = WK_AUTH_SASL_FIRST;
		break;
	}
	if (wk_conn_send(&c->io, b) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	return WK_OK;
}

static enum wk_rc
wk_client_on_startup(struct wk_client *c)
{
	struct evbuffer *in = c->io.in;

	for (;;) {
		uint8_t lenbuf[4];
		uint32_t len;
		const uint8_t *pkt;
		struct pgw_startup *st;
		char err[256] = "";
		enum pgw_startup_kind kind;
		enum wk_rc rc = WK_OK;

		if (evbuffer_copyout(in, lenbuf, 4) != 4)
			return WK_AGAIN;
		if (pgw_read_startup_len(lenbuf, 4, &len) < 0)
			return wk_client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
					       "invalid length of startup packet");
		if (evbuffer_get_length(in) < len)
			return WK_AGAIN;
		pkt = evbuffer_pullup(in, len);
		st = malloc(sizeof(*st));
		if (!pkt || !st) {
			free(st);
			return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
		}
		kind = pgw_startup_parse(pkt, len, st, err, sizeof(err));
		evbuffer_drain(in, len);
		switch (kind) {
		case PGW_STARTUP_SSL:
		case PGW_STARTUP_GSSENC: {
			bool *asked = kind == PGW_STARTUP_SSL ? &c->is_ssl_asked : &c->is_gss_asked;

			if (*asked) {
				/* PostgreSQL takes a second one for an unknown protocol version */
				rc = wk_client_fatal(
					c, SQLSTATE_FEATURE_NOT_SUPPORTED,
					"unsupported frontend protocol 1234.%d: server supports 3.0 to 3.0",
					kind == PGW_STARTUP_SSL ? 5679 : 5680);
				break;
			}
			*asked = true;
			/*
			 * No encryption yet: the client may go on in plaintext, once
			 * it has the answer. What it sent before, PostgreSQL refuses
			 * (it could be a man in the middle's).
			 */
			if (evbuffer_add(c->io.out, "N", 1) < 0)
				rc = wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
			else if (evbuffer_get_length(in))
				rc = wk_client_fatal(
					c, SQLSTATE_PROTOCOL_VIOLATION,
					kind == PGW_STARTUP_SSL
						? "received unencrypted data after SSL request"
						: "received unencrypted data after GSSAPI encryption request");
			else
				wk_stream_want_write(&c->io);
			break;
		}
		case PGW_STARTUP_CANCEL:
			if (wk_cancel_request(c, st->cancel_pid, st->cancel_key)) {
				/* closed once PostgreSQL has it, as PostgreSQL closes it */
				evbuffer_drain(in, evbuffer_get_length(in));
				wk_client_read_stop(c);
				free(st);
				return WK_OK;
			}
			rc = wk_client_close(c, "cancel request handled");
			break;
		case PGW_STARTUP_BAD_CANCEL:
			/* PostgreSQL sends nothing back to a malformed one either */
			rc = wk_client_close(c, err);
			break;
		case PGW_STARTUP_BAD_MAJOR:
			rc = wk_client_fatal(
				c, SQLSTATE_FEATURE_NOT_SUPPORTED,
				"unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
				st->major, st->minor);
			break;
		case PGW_STARTUP_V3:
			if (st->minor > 0 || st->pq_options_cnt > 0) {
				struct pgw_buf *b = &g_wk.scratch;

				pgw_buf_reset(b);
				pgw_put_negotiate_version(b, PGW_PROTO_3_0, st->pq_options,
							  st->pq_options_cnt);
				if (wk_conn_send(&c->io, b) < 0) {
					rc = wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY,
							     "out of memory");
					break;
				}
			}
			rc = wk_client_login_start(c, st);
			free(st);
			return rc == WK_CLOSED ? WK_CLOSED : WK_OK;
		case PGW_STARTUP_NO_USER:
			rc = wk_client_fatal(c, SQLSTATE_INVALID_AUTHORIZATION, "%s", err);
			break;
		case PGW_STARTUP_INVALID:
		default:
			rc = wk_client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "%s",
					     err[0] ? err : "invalid startup packet");
			break;
		}
		free(st);
		if (rc == WK_CLOSED)
			return WK_CLOSED;
	}
}

/* ---- authentication ----------------------------------------------------- */

static enum wk_rc
wk_client_on_password(struct wk_client *c, const uint8_t *body, size_t len)
{
	const char *pw;
	const struct auth_secret *sec = wk_client_secret(c);
	const char *user = c->user_name;
	bool ok;

	if (pgw_parse_password(body, len, &pw) < 0)
		return wk_client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "invalid password packet");
	if (!sec || (!c->is_admin && !c->user))
		ok = false;
	else if (g_cfg->auth_type == CONFIG_AUTH_MD5)
		ok = auth_md5_verify(sec, user, c->md5_salt, pw);
	else
		ok = auth_plain_verify(sec, user, pw);
	if (!ok)
		return wk_client_auth_fail(c);
	return wk_client_auth_done(c);
}

/* A SASL message that is not SCRAM as PostgreSQL reads it: 08P01, its reason said once. */
static enum wk_rc
wk_client_scram_fatal(struct wk_client *c, const char *err)
{
	static const char prefix[] = "malformed SCRAM message";

	if (strcmp(err, AUTH_SCRAM_ERR_AUTHZID) == 0) /* well formed, not supported */
		return wk_client_fatal(c, SQLSTATE_FEATURE_NOT_SUPPORTED, "%s", err);
	return wk_client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "%s%s%s",
			       strncmp(err, prefix, sizeof(prefix) - 1) == 0 ? "" : prefix,
			       strncmp(err, prefix, sizeof(prefix) - 1) == 0 ? "" : ": ", err);
}

static enum wk_rc
wk_client_on_sasl_first(struct wk_client *c, const uint8_t *body, size_t len)
{
	const char *mech;
	const uint8_t *data;
	size_t data_len, out_len;
	char out[AUTH_SCRAM_MSG_MAX], err[256];
	struct pgw_buf *b = &g_wk.scratch;

	if (pgw_parse_sasl_initial(body, len, &mech, &data, &data_len) < 0)
		return wk_client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "malformed SASL message");
	if (strcmp(mech, "SCRAM-SHA-256") != 0)
		return wk_client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
				       "client selected an invalid SASL authentication mechanism");
	c->scram = calloc(1, sizeof(*c->scram));
	if (!c->scram)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	if (auth_scram_server_init(c->scram, wk_client_secret(c)) < 0)
		return wk_client_auth_fail(c);
	if (auth_scram_server_first(c->scram, data, data_len, out, sizeof(out), &out_len, err,
				    sizeof(err)) < 0)
		return wk_client_scram_fatal(c, err);
	pgw_buf_reset(b);
	pgw_put_auth(b, PGW_AUTH_SASL_CONTINUE, out, out_len);
	if (wk_conn_send(&c->io, b) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	c->auth_step = WK_AUTH_SASL_FINAL;
	return WK_OK;
}

static enum wk_rc
wk_client_on_sasl_final(struct wk_client *c, const uint8_t *body, size_t len)
{
	char out[AUTH_SCRAM_MSG_MAX], err[256];
	size_t out_len;
	struct pgw_buf *b = &g_wk.scratch;
	int rc;

	rc = auth_scram_server_final(c->scram, body, len, out, sizeof(out), &out_len, err,
				     sizeof(err));
	if (rc < 0)
		return wk_client_scram_fatal(c, err);
	if (rc == 0 || (!c->is_admin && !c->user))
		return wk_client_auth_fail(c);
	/* keep the proven ClientKey: it logs in to PostgreSQL with the same verifier */
	if (!c->is_admin && c->pool_idx >= 0 && c->user->secret.kind == AUTH_SECRET_SCRAM) {
		struct wk_pool *p = wk_pool_get((uint32_t)c->pool_idx);

		memcpy(p->client_key, auth_scram_server_client_key(c->scram), AUTH_KEY_LEN);
		p->has_client_key = true;
	}
	pgw_buf_reset(b);
	pgw_put_auth(b, PGW_AUTH_SASL_FINAL, out, out_len);
	if (wk_conn_send(&c->io, b) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	return wk_client_auth_done(c);
}

static enum wk_rc
wk_client_on_auth(struct wk_client *c)
{
	struct evbuffer *in = c->io.in;
	struct pgw_hdr h;
	const uint8_t *msg = NULL;
	uint8_t body[WK_CLIENT_AUTH_MSG_MAX];
	size_t len;
	enum wk_rc rc;

	switch (wk_conn_peek(in, WK_CLIENT_AUTH_MSG_MAX, true, &h, &msg)) {
	case WK_PEEK_MORE:
	case WK_PEEK_HEADER:
		return WK_AGAIN;
	case WK_PEEK_BAD_LEN:
	case WK_PEEK_TOO_LONG:
		return wk_client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
				       "invalid length of authentication message");
	case WK_PEEK_WHOLE:
		break;
	}
	if (h.type != PGW_MSG_PASSWORD)
		return wk_client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
				       "expected password response, got message type %d", h.type);
	/* take the message out first: what follows it belongs to the next phase */
	len = h.len - 4;
	memcpy(body, msg + PGW_HDR_LEN, len);
	evbuffer_drain(in, pgw_msg_size(&h));
	switch (c->auth_step) {
	case WK_AUTH_PASSWORD:
		rc = wk_client_on_password(c, body, len);
		break;
	case WK_AUTH_SASL_FIRST:
		rc = wk_client_on_sasl_first(c, body, len);
		break;
	case WK_AUTH_SASL_FINAL:
		rc = wk_client_on_sasl_final(c, body, len);
		break;
	default:
		rc = wk_client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
				     "unexpected authentication message");
		break;
	}
	secret_wipe(body, len);
	return rc;
}

/* ---- session ------------------------------------------------------------ */

/*
 * strcmp() == 0 for two SHM_NAME_MAX arrays, with the usual answer (the
 * same short name, NUL in the first eight bytes) from one compare.
 */
static inline bool
wk_client_name_eq(const char *a, const char *b)
{
	uint64_t x, y;

	memcpy(&x, a, 8);
	memcpy(&y, b, 8);
	if (x != y)
		return false;
	if ((x - 0x0101010101010101ull) & ~x & 0x8080808080808080ull)
		return true; /* a NUL among them: both end there */
	return strcmp(a + 8, b + 8) == 0;
}
_Static_assert(SHM_NAME_MAX >= 8, "wk_client_name_eq reads eight bytes");

/*
 * Does message h (whole at msg) of c call currval or lastval? A Bind is
 * looked at through the statement it runs (c's named statement, or its
 * unnamed one as pgdog keeps it).
 */
static bool
wk_client_msg_reads_seq(const struct wk_client *c, const struct pgw_hdr *h, const uint8_t *msg)
{
	const char *body = (const char *)msg + PGW_HDR_LEN;
	size_t blen = h->len - 4, n1, n2;
	struct wk_prep *p;
	struct pgw_hdr ph;

	/* the bytes after a text's NUL are looked at too: at worst one DISCARD more */
	switch (h->type) {
	case PGW_MSG_QUERY:
		return wk_text_reads_seq(body, blen);
	case PGW_MSG_PARSE:
		n1 = wk_strnlen(body, blen);
		return n1 < blen && wk_text_reads_seq(body + n1 + 1, blen - n1 - 1);
	case PGW_MSG_BIND:
		n1 = wk_strnlen(body, blen);
		if (n1 + 1 >= blen)
			return false;
		n2 = wk_strnlen(body + n1 + 1, blen - n1 - 1);
		if (n2 == 0)
			return c->unnamed_len > PGW_HDR_LEN && wk_hdr_parse(c->unnamed_msg, &ph) &&
			       ph.type == PGW_MSG_PARSE && pgw_msg_size(&ph) <= c->unnamed_len &&
			       wk_client_msg_reads_seq(c, &ph, c->unnamed_msg);
		p = wk_prep_names_get(&c->prep_names, body + n1 + 1);
		if (!p)
			return false;
		if (p->seq_read == WK_PREP_SEQ_UNKNOWN) /* once per statement */
			p->seq_read = wk_text_reads_seq((const char *)p->key, p->key_len)
					      ? WK_PREP_SEQ_READ
					      : WK_PREP_SEQ_NONE;
		return p->seq_read == WK_PREP_SEQ_READ;
	default:
		return false;
	}
}

/* Does the first message in c's input (whole) call currval or lastval? */
static bool
wk_client_front_reads_seq(const struct wk_client *c)
{
	struct evbuffer *in = c->io.in;
	struct evbuffer_iovec v;
	const uint8_t *msg;
	struct pgw_hdr h;

	/* the first chunk holds the whole message nearly always: no copy then */
	if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len < PGW_HDR_LEN ||
	    !wk_hdr_parse(v.iov_base, &h) ||
	    (h.type != PGW_MSG_QUERY && h.type != PGW_MSG_PARSE && h.type != PGW_MSG_BIND))
		return false;
	if (v.iov_len >= pgw_msg_size(&h))
		return wk_client_msg_reads_seq(c, &h, v.iov_base);
	if (evbuffer_get_length(in) < pgw_msg_size(&h))
		return false;
	msg = evbuffer_pullup(in, (ev_ssize_t)pgw_msg_size(&h));
	return msg && wk_client_msg_reads_seq(c, &h, msg);
}

/*
 * The sequence values s's session remembers are another client's (see
 * is_seq_foreign) and c's first request reads them: s forgets them first
 * (DISCARD SEQUENCES, its reply swallowed), so that c gets PostgreSQL's
 * 55000 rather than someone else's value. -1 on out of memory.
 */
static int
wk_client_discard_sequences(struct wk_server *s)
{
	struct pgw_buf *b = &g_wk.scratch;

	s->is_seq_foreign = false;
	pgw_buf_reset(b);
	pgw_put_query(b, "DISCARD SEQUENCES");
	if (b->has_error)
		return -1;
	log_noise(&s->lctx, "another client's sequence values forgotten (DISCARD SEQUENCES)");
	return wk_server_send_internal(s, b, 1);
}

enum wk_rc
wk_client_attach(struct wk_client *c, struct wk_server *s)
{
	struct pgw_buf *b = &g_wk.scratch;
	struct shm_server *sr = wk_stats_server_row_at(s->row);
	struct shm_client *cr = wk_client_row(c);

	c->server = s;
	s->client = c;
	s->expect_ready = 0;
	s->has_unsynced = false;
	s->has_exec_unsynced = false;
	s->internal_failed = false;
	s->fwd_remaining = 0;
	s->internal_ready = 0;
	s->is_copy_in = false;
	s->is_broken_request = false;
	s->is_release_due = false;
	s->is_end_due = false;
	s->is_notify_due = false;
	s->has_tx_error = false;
	s->has_error_unsynced = false;
	s->is_ready_unsure = false;
	s->is_tag_rollback = false;
	s->is_tag_discard = false;
	s->is_end_mark_ran = false;
	c->is_end_mark_due = false;
	s->is_tracked =
		!wk_client_is_session(c) && g_cfg->prepared_statements != CONFIG_PREPARED_DISABLED;
	s->needs_resync = false;
	s->is_fwd_internal = false;
	wk_server_slots_clear(s);
	wk_server_set_state(s, WK_SERVER_ACTIVE);
	wk_client_set_state(c, WK_CLIENT_ACTIVE);
	wk_client_row_server(c);
	if (!wk_client_name_eq(sr->application_name, cr->application_name))
		memcpy(sr->application_name, cr->application_name, sizeof(sr->application_name));
	sr->request_us = g_wk.now_us;
	/* its sequence values are c's own when each was the other's last checkout */
	s->is_seq_foreign = s->seq_client_id != c->id || c->seq_server_id != s->id;
	s->seq_client_id = c->id;
	c->seq_server_id = s->id;
	log_debug(&c->lctx, "linked to server %s (backend pid %u)", s->lctx.id, s->backend_pid);
	if (wk_server_sync_session(s, c) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	if (s->held.junk_cnt) {
		/* statements made for a 42P05 (wk_client_prep_parse_dup) go before anyone sees them */
		pgw_buf_reset(b);
		(void)wk_prep_junk_take(&s->held, b);
		pgw_begin(b, PGW_MSG_SYNC);
		pgw_end(b);
		if (b->has_error || wk_server_send_internal(s, b, 1) < 0)
			return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	}
	if (s->is_seq_foreign && !wk_client_is_session(c) && evbuffer_get_length(c->io.in) &&
	    wk_client_front_reads_seq(c) && wk_client_discard_sequences(s) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	if (c->is_login_check)
		return s->internal_ready ? WK_OK : wk_client_login_checked(c);
	wk_client_read_start(c);
	/* empty when wk_client_read_flat() checked out: it sends the request itself */
	return evbuffer_get_length(c->io.in) ? wk_client_on_input(c) : WK_OK;
}

bool
wk_client_is_session(const struct wk_client *c)
{
	return !c->pool || c->pooler_mode == CONFIG_POOLER_SESSION;
}

void
wk_client_detach(struct wk_client *c)
{
	struct wk_server *s = c->server;

	wk_client_running(c, false);
	if (c->is_cancel_hold) {
		c->is_cancel_hold = false;
		wk_client_holds_cnt--;
	}
	if (UNLIKELY(c->is_cancel_read_off))
		(void)wk_client_cancel_read_on(c);
	if (UNLIKELY(c->read_paused))
		wk_client_unpause(c); /* its server's output is no longer its concern */
	c->server = NULL;
	s->client = NULL;
	s->is_release_due = false;
	wk_client_row_server(c);
	wk_client_set_state(c, WK_CLIENT_IDLE);
	c->last_request_us = g_wk.mono_us;
	if (UNLIKELY(c->bound_cnt))
		wk_client_bound_clear(c); /* its portals ended with its transaction */
	c->is_dealloc_tag_due = false;
	c->is_pin_after_tag = false;
	log_noise(&c->lctx, "transaction done: server %s back to the pool", s->lctx.id);
	wk_server_checkin(s);
	if (c->pubsub)
		(void)wk_pubsub_client_deliver(c); /* between transactions: held notifications */
}

/* Refuse a request without a server: ErrorResponse, then ReadyForQuery. */
static enum wk_rc
wk_client_refuse_request(struct wk_client *c, const char *sqlstate, const char *message)
{
	struct pgw_buf *b = &g_wk.scratch;

	wk_client_log_error(&c->lctx, "ERROR", sqlstate, message);
	pgw_buf_reset(b);
	pgw_put_error(b, false, "ERROR", sqlstate, message, NULL, NULL);
	pgw_put_ready(b, 'I');
	if (wk_conn_send(&c->io, b) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	wk_client_row(c)->errors++;
	return WK_OK;
}

/* ReadyForQuery 'I' to c: the end of a request pgdog dropped without a server. */
static enum wk_rc
wk_client_send_idle_ready(struct wk_client *c)
{
	struct pgw_buf *b = &g_wk.scratch;

	pgw_buf_reset(b);
	pgw_put_ready(b, 'I');
	if (wk_conn_send(&c->io, b) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	return WK_OK;
}

/* prepared_statements = full applies to c's requests (transaction and statement modes). */
static bool
wk_client_is_full(const struct wk_client *c)
{
	return !wk_client_is_session(c) && g_cfg->prepared_statements == CONFIG_PREPARED_FULL;
}

/*
 * A request starts on s with nothing in flight before it: query_timeout
 * times it from now, and no cancel went out for it yet.
 */
static ALWAYS_INLINE void
wk_client_request_start(struct wk_server *s)
{
	s->request_start_us = g_wk.mono_us;
	s->is_cancel_sent = false;
	s->is_cancel_text_due = false;
}

/*
 * The transaction status c's next message will meet on its server, when
 * nothing is in flight there ('I', 'T' or 'E'), or only extended-protocol
 * messages of the request being sent, all answered, none an Execute (none
 * changes it); 0 when unknown (requests or an Execute in flight). Without a
 * server: 'I'.
 */
static char
wk_client_tx_known(const struct wk_client *c)
{
	const struct wk_server *s = c->server;

	if (!s)
		return 'I';
	if (s->expect_ready || s->slots_cnt || s->internal_ready ||
	    (s->has_unsynced && (!s->is_tracked || s->has_exec_unsynced)))
		return 0;
	return s->tx_status;
}

/* c's standard_conforming_strings, for the next request it sends. */
static bool
wk_client_is_std_strings(const struct wk_client *c)
{
	const struct wk_server *s = c->server;
	/* nothing in flight: the server's last report is the value in force (SET LOCAL too) */
	bool is_current = s && wk_client_tx_known(c) != 0;

	/* while pgdog's SETs for c run there, the report may be another client's value */
	if (s && s->internal_ready)
		s = NULL;
	return wk_session_is_std_strings(&c->session, s ? s->params : NULL, s ? s->params_cnt : 0,
					 is_current);
}

/*
 * sql_classify() as PostgreSQL will read sql from c: with c's
 * standard_conforming_strings, looked up only when the quick reject cannot
 * answer (the common SELECT/UPDATE pays nothing for it).
 */
static int
wk_client_classify(const struct wk_client *c, const char *sql, size_t len, struct sql_result *res)
{
	if (sql_classify_quick(sql, len, res))
		return 0;
	return sql_classify_lexed(sql, len, wk_client_is_std_strings(c), res);
}

/*
 * A statement's text (len bytes) as c has PostgreSQL read it: false when
 * its standard_conforming_strings is off and the text holds a backslash
 * (then it is another statement than the same bytes from a client with it
 * on: wk_prep_register_std()).
 */
static bool
wk_client_text_is_std(const struct wk_client *c, const void *text, size_t len)
{
	return !memchr(text, '\\', len) || wk_client_is_std_strings(c);
}

/*
 * DEALLOCATE ALL / DISCARD ALL: the client's statements are gone, and so is
 * everything prepared on its current server.
 */
static void
wk_client_forget_prepared(struct wk_client *c)
{
	wk_prep_names_clear(&c->prep_names);
	if (c->server)
		wk_prep_held_cleanup(&c->server->held);
}

void
wk_client_tag_ran(struct wk_client *c, bool is_discard)
{
	/* an SQL PREPARE after it in its Query: that statement stays */
	unsigned kept = c->is_pin_after_tag ? WK_PIN_PREPARED : 0;

	c->is_dealloc_tag_due = false;
	c->is_pin_after_tag = false;
	/*
	 * Untracked, what the client sent after it went on: a pin it made (an
	 * SQL PREPARE's too) may be newer, and stays until the client leaves
	 */
	if (c->server && c->server->is_tracked) {
		if (is_discard) {
			/* as wk_client_discard_all */
			c->pins &= kept | c->unnamed_pins | WK_PIN_LOAD;
			wk_pubsub_client_unlisten(c, NULL);
		}
		c->pins &= ~WK_PIN_PREPARED | kept;
	}
	wk_client_forget_prepared(c);
}

/*
 * The client made an SQL statement pgdog does not follow, or a named one of
 * prepared_statements = disabled: the server stays with it. Made after a
 * DEALLOCATE ALL or DISCARD ALL whose outcome is not known yet, that one
 * does not drop it (wk_client_tag_ran). True when newly pinned.
 */
static bool
wk_client_pin_prepared(struct wk_client *c)
{
	bool is_new = !(c->pins & WK_PIN_PREPARED);

	c->pin_gen++; /* as wk_client_pins_add: a probe asked before does not know it */
	c->pins |= WK_PIN_PREPARED;
	if (c->is_dealloc_tag_due)
		c->is_pin_after_tag = true;
	return is_new;
}

/* c's pins were `before`: a server newly pinned is counted once (SHOW POOLS pins). */
static void
wk_client_pins_counted(struct wk_client *c, unsigned before)
{
	if (!before && c->pins && c->pool) {
		atomic_fetch_add_explicit(&c->pool->stats->pins, 1, memory_order_relaxed);
		log_debug(&c->lctx, "session state pins its server (0x%x)", c->pins);
	}
}

/*
 * What the client's statement pins when it runs (WK_PIN_*): added to c's,
 * and no longer released by a statement before it (unpin_due); WK_PIN_ASK
 * in pins has its server asked later (is_pin_ask_due). Any pinning makes a
 * probe already asked stale (pin_gen).
 */
static void
wk_client_pins_add(struct wk_client *c, unsigned pins)
{
	if (!pins)
		return;
	c->pin_gen++; /* a probe of its server asked before this does not know it */
	if (UNLIKELY(pins & WK_PIN_ASK)) {
		c->is_pin_ask_due = true; /* its server is asked once the client is idle */
		pins &= ~WK_PIN_ASK;
	}
	c->pins |= pins;
	c->unpin_due &= ~pins;
}

/* wk_client_pins_add(), counted (SHOW POOLS pins) */
static void
wk_client_pin_by(struct wk_client *c, unsigned pins)
{
	unsigned before = c->pins;

	wk_client_pins_add(c, pins);
	wk_client_pins_counted(c, before);
}

/*
 * The pins (WK_PIN_*) a text whose classification has these flags makes when
 * it runs, with WK_PIN_ASK when it may end some (or leave none: a temporary
 * object or WITH HOLD cursor whose transaction rolls back or drops it).
 */
static unsigned
wk_client_flag_pins(unsigned flags)
{
	return ((flags & SQL_F_ADVISORY_LOCK) ? WK_PIN_ADVISORY : 0) |
	       ((flags & SQL_F_TEMP_OBJECT) ? WK_PIN_TEMP : 0) |
	       ((flags & SQL_F_HOLD_CURSOR) ? WK_PIN_CURSOR : 0) |
	       ((flags & SQL_F_SET_CONFIG) ? WK_PIN_CONFIG : 0) |
	       ((flags & SQL_F_LOAD) ? WK_PIN_LOAD : 0) |
	       /* a RESET ROLE too: whether a role is left in force is asked */
	       ((flags & SQL_F_SESSION_ROLE) ? WK_PIN_ROLE | WK_PIN_ASK : 0) |
	       /* pub/sub follows LISTENs where it can (wk_client_track, wk_pubsub_bind) */
	       ((flags & SQL_F_LISTEN) && g_cfg->pub_sub_channel_size == 0
			? WK_PIN_LISTEN | WK_PIN_ASK
			: 0) |
	       ((flags &
		 (SQL_F_ADVISORY_UNLOCK | SQL_F_MAY_UNPIN | SQL_F_TEMP_OBJECT | SQL_F_HOLD_CURSOR))
			? WK_PIN_ASK
			: 0);
}

/* wk_client_flag_pins() of the Parse wk_client_track() saw last (0: none, or a Query) */
static unsigned wk_client_parse_pins;

/*
 * The ReadyForQuery that will end the request the client is sending now:
 * after those its server still owes (pipelined requests).
 */
static uint64_t
wk_client_op_rfq(const struct wk_client *c)
{
	return c->session.rfq_seen + (c->server ? c->server->expect_ready : 0) + 1;
}

/*
 * The statement the client is sending ends what pins (WK_PIN_*) if its
 * transaction commits: the server goes back to the pool after the
 * ReadyForQuery 'I' that ends it, not before (wk_client_unpin_settle).
 */
static void
wk_client_unpin_after(struct wk_client *c, unsigned pins)
{
	c->unpin_due |= pins;
	c->unpin_rfq = wk_client_op_rfq(c);
}

void
wk_client_unpin_settle(struct wk_client *c, bool is_commit)
{
	/*
	 * Any transaction that fails from then on drops them all (one
	 * scheduled in an earlier request shares unpin_rfq with a later one's)
	 */
	if (!is_commit)
		c->unpin_due = 0;
	if (c->session.rfq_seen < c->unpin_rfq)
		return; /* a request before it ended */
	c->pins &= ~c->unpin_due;
	c->unpin_due = 0;
}

/*
 * The client's DISCARD ALL or DEALLOCATE ALL may not run (an earlier
 * statement of its Query, or an aborted transaction, makes PostgreSQL skip
 * or refuse it): what it drops goes when its CommandComplete comes
 * (wk_client_tag_ran), and the client's next message waits for that.
 */
static void
wk_client_tag_due(struct wk_client *c)
{
	c->is_dealloc_tag_due = true;
	c->dealloc_tag_rfq = wk_client_op_rfq(c);
	if (c->server && c->server->is_tracked) {
		c->server->is_unsynced_wait = true;
		c->server->is_verify_wait = true;
	}
}

/*
 * Does PostgreSQL surely refuse the client's DISCARD ALL or DEALLOCATE ALL
 * (kind) where it runs now (is_multi: among other statements), so that
 * nothing is dropped? An aborted transaction refuses both; a transaction
 * block, or other statements around it, refuse DISCARD ALL (25001). So does
 * an Execute before it not yet ended by a Sync, unless that Execute ended
 * the transaction (a COMMIT): PostgreSQL's pipeline mark goes with it. That
 * one is left to the DISCARD ALL's CommandComplete (the transaction it
 * meets is not known: wk_client_tx_known).
 */
static bool
wk_client_refuses_discard(struct wk_client *c, enum sql_kind kind, bool is_multi)
{
	char tx = wk_client_tx_known(c);

	return tx == 'E' || (kind == SQL_DISCARD_ALL && (is_multi || tx == 'T'));
}

/*
 * Does what the client sends its server now surely run (unless it fails
 * itself)? Not when the server is untracked and has unsynced messages
 * before it: PostgreSQL skips it if one of those fails, and pgdog does not
 * follow which (on a tracked server it waited for their answers).
 */
static bool
wk_client_is_run_sure(const struct wk_client *c)
{
	const struct wk_server *s = c->server;

	return !s || s->is_tracked || !s->has_unsynced;
}

/*
 * Must a message to s that PostgreSQL would skip after an earlier failure
 * wait for the answers before it (wk_client_wait_unsynced)? Not behind a
 * COPY FROM STDIN, whose answers wait for the client.
 */
static bool
wk_client_must_wait(const struct wk_server *s)
{
	return wk_server_is_unanswered(s) && !s->is_copy_in;
}

/*
 * The client's DISCARD ALL runs (the reply ending it: rfq): its settings go
 * back to its startup values and it listens on nothing; nothing pins it
 * (its statements are forgotten by the caller). Unless it surely runs
 * (is_sure), pins and LISTENs stay: the server keeps them if it is
 * skipped. -1 on out of memory.
 */
static int
wk_client_discard_all(struct wk_client *c, uint64_t rfq, bool is_sure)
{
	int rc = wk_session_add_op(&c->session, WK_OP_RESET_ALL, NULL, NULL, rfq);

	if (is_sure) {
		/*
		 * The unnamed statement stays (run from a named one): it may pin
		 * again; a loaded library stays in the server process
		 */
		c->pins &= c->unnamed_pins | WK_PIN_LOAD;
		wk_pubsub_client_unlisten(c, NULL);
	}
	return rc;
}

/*
 * The client's DISCARD ALL or DEALLOCATE ALL (kind; is_multi: among other
 * statements of its Query) goes to its server now. Unless PostgreSQL
 * refuses it there, it drops every statement of the server's session (and
 * a DISCARD ALL the client's settings, pins and LISTENs). When a statement
 * before it may fail or the transaction it meets may be aborted, its
 * CommandComplete tells (wk_client_tag_ran), and what the client sends next
 * waits for it (names it drops must be gone by then). -1 on out of memory.
 */
static int
wk_client_drop_all_sent(struct wk_client *c, enum sql_kind kind, bool is_multi)
{
	bool is_sure, is_known;
	int rc = 0;

	if (wk_client_refuses_discard(c, kind, is_multi))
		return 0;
	is_sure = wk_client_is_run_sure(c);
	/* requests in flight: the transaction it meets may have failed (25P02) */
	is_known = wk_client_tx_known(c) != 0;
	if (kind == SQL_DISCARD_ALL)
		rc = wk_client_discard_all(c, wk_client_op_rfq(c), is_sure && is_known);
	if (!is_sure)
		return rc; /* what it drops stays, and pins, if it is skipped */
	if (is_multi || !is_known) {
		wk_client_tag_due(c);
		return rc;
	}
	c->pins &= ~WK_PIN_PREPARED;
	wk_client_forget_prepared(c);
	return rc;
}

/*
 * A SET, RESET or RESET ALL statement st of res, run by the client: to the
 * pending list (a SET of the role or session authorization, or one pgdog
 * cannot read whole, pins instead). -1 on out of memory.
 */
static int
wk_client_track_setting(struct wk_client *c, const struct sql_result *res,
			const struct sql_stmt *st)
{
	uint64_t rfq = wk_client_op_rfq(c);

	if (UNLIKELY(c->pins & WK_PIN_ROLE) && !(st->flags & SQL_F_SESSION_ROLE))
		/* maybe as another role, which pgdog's SET on another server would not be */
		c->pins |= WK_PIN_SETTINGS;
	switch (st->kind) {
	case SQL_SET:
		if (st->flags & SQL_F_SESSION_ROLE)
			return 0; /* pinned by the text (wk_client_flag_pins) */
		if (st->is_truncated) {
			c->pins |= WK_PIN_OPAQUE;
			return 0;
		}
		if (!wk_client_text_is_std(c, st->value, strlen(st->value))) {
			/* replayed where standard_conforming_strings may be on */
			char escaped[SQL_VALUE_MAX * 2];

			if (wk_session_escape_literals(st->value, escaped, sizeof(escaped)) < 0) {
				c->pins |= WK_PIN_SETTINGS; /* the server keeps the value */
				return 0;
			}
			return wk_session_add_op(&c->session, WK_OP_SET, st->name, escaped, rfq);
		}
		if (strcasecmp(st->name, "datestyle") == 0) {
			char merged[64];

			if (wk_session_datestyle_merge(
				    wk_session_current(&c->session, "datestyle",
						       wk_client_pool_param(c, "DateStyle")),
				    st->value, merged, sizeof(merged)))
				return wk_session_add_op(&c->session, WK_OP_SET, st->name, merged,
							 rfq);
		}
		return wk_session_add_op(&c->session, WK_OP_SET, st->name, st->value, rfq);
	case SQL_RESET:
		if (st->flags & SQL_F_SESSION_ROLE || st->is_truncated)
			return 0;
		return wk_session_add_op(&c->session, WK_OP_RESET, st->name, NULL, rfq);
	case SQL_RESET_ALL:
		/* set_config values are reset too, if it commits (wk_client_unpin_after) */
		if (!(res->flags & SQL_F_SET_CONFIG))
			wk_client_unpin_after(c, WK_PIN_CONFIG);
		return wk_session_add_op(&c->session, WK_OP_RESET_ALL, NULL, NULL, rfq);
	default:
		return 0;
	}
}

/*
 * Does st, run from a prepared statement, change the session or settle its
 * changes: a SET, RESET or RESET ALL, a DISCARD ALL or DEALLOCATE ALL, a
 * ROLLBACK TO, a COMMIT, ROLLBACK or PREPARE TRANSACTION
 * (wk_client_bind_setting)?
 */
static bool
wk_client_stmt_is_setting(const struct sql_stmt *st)
{
	switch (st->kind) {
	case SQL_SET:
	case SQL_RESET:
	case SQL_RESET_ALL:
	case SQL_DISCARD_ALL:
	case SQL_DEALLOCATE_ALL:
	case SQL_ROLLBACK_TO:
	case SQL_COMMIT:
	case SQL_ROLLBACK:
	case SQL_PREPARE_TX:
		return true;
	default:
		return false;
	}
}

/* A COMMIT, ROLLBACK or PREPARE TRANSACTION, not chained to the next transaction? */
static bool
wk_client_stmt_ends_tx(const struct sql_stmt *st)
{
	return (st->kind == SQL_COMMIT || st->kind == SQL_ROLLBACK || st->kind == SQL_PREPARE_TX) &&
	       !st->is_chain;
}

/*
 * The client runs a COMMIT, ROLLBACK or PREPARE TRANSACTION from a prepared
 * statement while SETs are pending: more may follow it in its request, so
 * its own CommandComplete settles the SETs before it (a WK_OP_END marks
 * them, and the Execute's reply slot is_end_mark: wk_client_slot). Where
 * pgdog has no reply slots (prepared_statements = disabled) a chained one
 * pins the server instead, the values PostgreSQL settled staying there.
 * -1 on out of memory.
 */
static int
wk_client_end_mark(struct wk_client *c, const struct sql_stmt *st)
{
	if (!c->session.pending_cnt)
		return 0;
	if (c->server && c->server->is_tracked && !c->is_end_mark_due) {
		if (wk_session_add_op(&c->session, WK_OP_END, NULL, NULL, wk_client_op_rfq(c)) < 0)
			return -1;
		c->is_end_mark_due = true;
		return 0;
	}
	if (st->is_chain)
		c->pins |= WK_PIN_SETTINGS;
	return 0;
}

/*
 * The client runs a statement whose text (sql, len bytes) it prepared with
 * a Parse (the Execute of a portal bound to it): a SET, RESET or RESET ALL
 * in it takes effect now, as in a Query; preparing and binding it changed
 * nothing. So does a ROLLBACK TO or a chained COMMIT/ROLLBACK (SETs pending
 * then pin the server), and a DISCARD ALL or DEALLOCATE ALL, which drops
 * every statement of the server's session (wk_client_drop_all_sent), and a
 * COMMIT or ROLLBACK settles the SETs before it (wk_client_end_mark). With
 * is_run false nothing is done: only whether the text has one. Returns 1
 * when it has, 2 when all it has are such transaction ends (not chained),
 * 0 when none, -1 on out of memory.
 */
static int
wk_client_bind_setting(struct wk_client *c, const char *sql, size_t len, bool is_run)
{
	struct sql_result res;
	unsigned before = c->pins;
	int found = 0;

	if (wk_client_classify(c, sql, len, &res) < 0)
		return -1;
	if (!res.is_parsed || res.is_error)
		return 0;
	for (size_t i = 0; i < res.stmts_cnt; i++) {
		const struct sql_stmt *st = &res.stmts[i];

		if (!wk_client_stmt_is_setting(st))
			continue;
		if (!is_run && wk_client_stmt_ends_tx(st)) {
			found = found ? found : 2;
			continue;
		}
		found = 1;
		if (!is_run)
			break;
		if (st->kind == SQL_DISCARD_ALL || st->kind == SQL_DEALLOCATE_ALL) {
			/*
			 * The answers before it are in (wk_client_prep waited); after
			 * an Execute of this request, the transaction it meets is
			 * not known (a COMMIT's Execute ended it): its
			 * CommandComplete tells, as for one in a Query
			 */
			if (wk_client_drop_all_sent(c, st->kind,
						    res.stmts_cnt > 1 || res.has_more) < 0)
				return -1;
			continue;
		}
		if (st->kind == SQL_ROLLBACK_TO) {
			/* as in a Query (wk_client_track_inner): SETs it would settle pin */
			if (c->session.pending_cnt)
				c->pins |= WK_PIN_SETTINGS;
			continue;
		}
		if (st->kind == SQL_COMMIT || st->kind == SQL_ROLLBACK ||
		    st->kind == SQL_PREPARE_TX) {
			if (wk_client_end_mark(c, st) < 0)
				return -1;
			continue;
		}
		if (wk_client_track_setting(c, &res, st) < 0)
			return -1;
	}
	wk_client_pins_counted(c, before);
	return found;
}

/*
 * May the statement text (n bytes; one statement: a Parse's) be a DISCARD
 * or a DEALLOCATE? Told from its first character before its words are
 * looked for: most texts start otherwise.
 */
static bool
wk_client_text_may_drop(const char *text, size_t n)
{
	size_t i = 0;
	char first;

	while (i < n && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r'))
		i++;
	if (i == n)
		return false;
	first = (char)(text[i] | 0x20);
	if (first != 'd' && text[i] != '-' && text[i] != '/' && text[i] != '\f' && text[i] != '\v')
		return false; /* a comment (or a rarer space) may come first */
	return wk_text_has_word(text, n, "deallocate") || wk_text_has_word(text, n, "discard");
}

/*
 * At most this many portals bound to such statements and not run are
 * remembered (a client keeping its server across transactions keeps them).
 */
#define WK_CLIENT_BOUND_MAX 16

/* Forget the client's bound portal i. */
static void
wk_client_bound_del(struct wk_client *c, size_t i)
{
	free(c->bound[i].portal);
	free(c->bound[i].sql);
	c->bound[i] = c->bound[--c->bound_cnt];
}

/* Its server goes back to the pool, or the client ends: its portals are gone. */
static void
wk_client_bound_clear(struct wk_client *c)
{
	while (c->bound_cnt)
		wk_client_bound_del(c, c->bound_cnt - 1);
}

/* The client's bound portal named portal (n bytes), or -1. */
static ssize_t
wk_client_bound_find(const struct wk_client *c, const char *portal, size_t n)
{
	for (size_t i = 0; i < c->bound_cnt; i++)
		if (c->bound[i].portal_len == n && memcmp(c->bound[i].portal, portal, n) == 0)
			return (ssize_t)i;
	return -1;
}

/*
 * The client binds its portal named portal (n bytes) to a statement whose
 * text (sql, len bytes) changes the session: followed at the portal's
 * Execute (wk_client_bound_msg). -1 on out of memory.
 */
static int
wk_client_bound_add(struct wk_client *c, const char *portal, size_t n, const char *sql, size_t len)
{
	ssize_t i = wk_client_bound_find(c, portal, n);
	struct wk_bound *bd;

	if (i >= 0)
		wk_client_bound_del(c, (size_t)i); /* this Bind again, after a wait */
	if (c->bound_cnt == WK_CLIENT_BOUND_MAX)
		wk_client_bound_del(c, 0); /* most likely a portal of a transaction gone by */
	if (c->bound_cnt == c->bound_cap) {
		size_t cap = c->bound_cap ? c->bound_cap * 2 : 2;
		struct wk_bound *m = realloc(c->bound, cap * sizeof(*m));

		if (!m)
			return -1;
		c->bound = m;
		c->bound_cap = cap;
	}
	bd = &c->bound[c->bound_cnt];
	bd->portal = strndup(portal, n);
	bd->sql = strndup(sql, len);
	if (!bd->portal || !bd->sql) {
		free(bd->portal);
		free(bd->sql);
		return -1;
	}
	bd->portal_len = n;
	bd->sql_len = len;
	bd->rfq = wk_client_op_rfq(c);
	bd->may_dealloc = wk_client_text_may_drop(sql, len);
	c->bound_cnt++;
	return 0;
}

/* The client's bound portal that a Bind or Execute (whole msg) names, or -1. */
static ssize_t
wk_client_bound_of(const struct wk_client *c, const struct pgw_hdr *h, const uint8_t *msg)
{
	const char *body = (const char *)msg + PGW_HDR_LEN;
	size_t blen = h->len - 4, n = wk_strnlen(body, blen);

	return n < blen ? wk_client_bound_find(c, body, n) : -1;
}

/* Is the Execute msg (whole) of a bound portal whose text may drop statements? */
static bool
wk_client_bound_may_dealloc(const struct wk_client *c, const struct pgw_hdr *h, const uint8_t *msg)
{
	ssize_t i = wk_client_bound_of(c, h, msg);

	return i >= 0 && c->bound[i].may_dealloc;
}

/*
 * A Bind or an Execute (whole msg) from a client with bound portals: a
 * Bind replaces its portal's statement (unless the Bind fails, a portal of
 * that name is one PostgreSQL has already dropped); an Execute runs it
 * (wk_client_bind_setting). -1 on out of memory.
 */
static int
wk_client_bound_msg(struct wk_client *c, const struct pgw_hdr *h, const uint8_t *msg)
{
	ssize_t i = wk_client_bound_of(c, h, msg);
	int rc;

	if (i < 0)
		return 0;
	/*
	 * A transaction ended since its Bind (or its request failed): PostgreSQL
	 * dropped the portal, and this Execute fails (34000). The answers
	 * before an Execute that may drop statements are in (wk_client_prep
	 * waited for them); one that sets something fails, and takes its
	 * settings with it.
	 */
	if (h->type != PGW_MSG_EXECUTE || c->idle_rfq >= c->bound[i].rfq) {
		wk_client_bound_del(c, (size_t)i);
		return 0;
	}
	rc = wk_client_bind_setting(c, c->bound[i].sql, c->bound[i].sql_len, true);
	wk_client_bound_del(c, (size_t)i);
	return rc < 0 ? -1 : 0;
}

/*
 * The client binds its portal (n bytes) to its named statement p: one that
 * changes the session is followed at the portal's Execute; p->setting
 * remembers whether it does. -1 on out of memory.
 */
static int
wk_client_prep_setting(struct wk_client *c, struct wk_prep *p, const char *portal, size_t n)
{
	const char *sql = (const char *)p->key;
	size_t len;
	int rc;

	if (p->setting == WK_PREP_SETTING_NONE || p->is_sql)
		return 0;
	len = wk_strnlen(sql, p->key_len);
	if (p->setting == WK_PREP_SETTING_UNKNOWN) {
		rc = wk_client_bind_setting(c, sql, len, false);
		if (rc < 0)
			return -1;
		p->setting = rc == 2 ? WK_PREP_SETTING_END
			     : rc    ? WK_PREP_SETTING_SOME
				     : WK_PREP_SETTING_NONE;
		if (!rc)
			return 0;
	}
	if (p->setting == WK_PREP_SETTING_END && !c->session.pending_cnt)
		return 0; /* nothing for it to settle */
	return wk_client_bound_add(c, portal, n, sql, len);
}

/*
 * The client binds its portal (n bytes) to its unnamed statement, whose
 * Parse held a SET or a ROLLBACK TO (unnamed_setting) and pgdog keeps its
 * text: as wk_client_prep_setting.
 */
static int
wk_client_unnamed_setting(struct wk_client *c, const char *portal, size_t n)
{
	const char *sql;

	if (!c->unnamed_setting)
		return 0;
	if (c->sql_kind == WK_SQL_PREPARE && c->sql_id == c->unnamed_id && c->unnamed_id) {
		/*
		 * Its SQL PREPARE runs: the name counts from here on, in order,
		 * and goes again unless PostgreSQL runs it (WK_SLOT_PREP_EXEC)
		 */
		if (wk_prep_names_get(&c->prep_names, c->sql_name))
			return 0; /* PostgreSQL's 42P05 at Execute */
		if (wk_prep_names_put_unconfirmed(&c->prep_names, c->sql_name, c->sql_prep,
						  c->server ? c->server->syncs_cnt : 0) < 0)
			return -1;
		c->is_sql_bind_due = true;
		return 0;
	}
	if (c->unnamed_len <= PGW_HDR_LEN + 1)
		return 0;
	sql = (const char *)c->unnamed_msg + PGW_HDR_LEN + 1;
	return wk_client_bound_add(c, portal, n, sql,
				   wk_strnlen(sql, c->unnamed_len - PGW_HDR_LEN - 1));
}

/*
 * Transaction and statement modes: what a Query or Parse does to the
 * session. SET/RESET go to the pending list (kept if the transaction
 * commits); state that cannot follow the client to another server pins its
 * server until it is released. *is_refused: the message was answered here
 * and drained.
 */
static ALWAYS_INLINE enum wk_rc wk_client_track_inner(struct wk_client *c, const struct pgw_hdr *h,
						      struct evbuffer *in, const uint8_t *whole,
						      bool *is_refused);

/*
 * whole: the whole message when the caller has it outside in (in is then
 * NULL, and the client is not in statement mode, where a refused message
 * would be drained from in).
 */
static ALWAYS_INLINE enum wk_rc
wk_client_track(struct wk_client *c, const struct pgw_hdr *h, struct evbuffer *in,
		const uint8_t *whole, bool *is_refused)
{
	unsigned before = c->pins;
	enum wk_rc rc = wk_client_track_inner(c, h, in, whole, is_refused);

	if (rc != WK_CLOSED)
		wk_client_pins_counted(c, before);
	return rc;
}

static ALWAYS_INLINE enum wk_rc
wk_client_track_inner(struct wk_client *c, const struct pgw_hdr *h, struct evbuffer *in,
		      const uint8_t *whole, bool *is_refused)
{
	const uint8_t *msg = whole ? whole : evbuffer_pullup(in, (ev_ssize_t)pgw_msg_size(h));
	const char *body, *sql;
	size_t blen, len;
	struct sql_result res;
	bool is_at_bind = false, is_pin_instead = false, is_multi, is_long, is_std = true,
	     is_split = false;
	unsigned all_flags, text_pins;
	const char *sql_part;

	*is_refused = false;
	wk_client_parse_pins = 0;
	if (!msg)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	body = (const char *)msg + PGW_HDR_LEN;
	blen = h->len - 4;
	if (h->type == PGW_MSG_QUERY) {
		sql = body;
		len = wk_strnlen(body, blen);
	} else {
		size_t nlen = wk_strnlen(body, blen);
		bool is_tracked = c->server && c->server->is_tracked;

		if (nlen >= blen)
			return WK_OK; /* malformed: PostgreSQL says so */
		/*
		 * pgdog follows a statement's SET where it runs, at the Execute
		 * of a portal bound to it (wk_client_bound_msg): a tracked
		 * server's statements, and the unnamed one (its text kept when
		 * it has one, wk_client_unnamed_untracked); a named statement
		 * of prepared_statements = disabled pins its server instead.
		 */
		is_at_bind = is_tracked || (nlen == 0 && !wk_client_is_session(c));
		is_pin_instead = !is_tracked && nlen > 0 && !wk_client_is_session(c);
		if (nlen == 0) {
			c->unnamed_setting = false; /* until this text shows one */
			c->unnamed_pins_prev = c->unnamed_pins;
			c->unnamed_pins = 0;
		}
		/* prepared_statements = disabled: the statement lives on this server only */
		if (nlen > 0 && !(c->server && c->server->is_tracked) && wk_client_pin_prepared(c))
			log_debug(&c->lctx,
				  "named prepared statement: server pinned to the client");
		sql = body + nlen + 1;
		len = wk_strnlen(sql, blen - nlen - 1);
	}
	if (wk_conn_sql_is_known_plain(sql, len))
		return WK_OK; /* the text of last time, or its numbers changed: nothing to track */
	if (wk_client_classify(c, sql, len, &res) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	sql_part = sql; /* where the statements of res begin */
	if (!res.is_parsed) {
		/* without a backslash the text reads the same whatever standard_conforming_strings */
		if (!memchr(sql, '\\', len))
			wk_conn_sql_note_plain(sql, len);
		return WK_OK;
	}
	/* several statements: one implicit transaction block, as PostgreSQL runs them */
	is_multi = res.stmts_cnt > 1 || res.has_more;
	is_long = res.has_more;
	all_flags = res.flags;
	if (res.has_more)
		is_std = wk_client_is_std_strings(c); /* the rest is read as the first part was */
	/* locks, temporary objects, WITH HOLD cursors, set_config(..., false) values */
	text_pins = wk_client_flag_pins(res.flags);
	if (UNLIKELY(res.flags & SQL_F_LISTEN) && !(text_pins & WK_PIN_LISTEN)) {
		/* pub/sub serves LISTEN statements, not one a DO block's body runs */
		for (size_t i = 0; i < res.stmts_cnt; i++)
			if ((res.stmts[i].flags & SQL_F_LISTEN) && res.stmts[i].kind != SQL_LISTEN)
				text_pins |= WK_PIN_LISTEN | WK_PIN_ASK;
	}
	wk_client_pins_add(c, text_pins); /* counted by wk_client_track */
	if (h->type == PGW_MSG_QUERY) {
		/*
		 * Released if its Query commits (an error before it leaves the
		 * locks or cursors); a Parse of it releases nothing: it may never
		 * run (pinned until a Query's, or the end)
		 */
		if ((res.flags & SQL_F_ADVISORY_UNLOCK_ALL) && !(text_pins & WK_PIN_ADVISORY))
			wk_client_unpin_after(c, WK_PIN_ADVISORY);
		if ((res.flags & SQL_F_CLOSE_ALL) && !(text_pins & WK_PIN_CURSOR))
			wk_client_unpin_after(c, WK_PIN_CURSOR);
	} else {
		/* what it pins again when run after a release (a named one: wk_prep pins) */
		wk_client_parse_pins = text_pins;
		if (body[0] == '\0')
			c->unnamed_pins = text_pins;
	}
next_part:
	for (size_t i = 0; i < res.stmts_cnt; i++) {
		const struct sql_stmt *st = &res.stmts[i];
		int rc = 0;

		switch (st->kind) {
		case SQL_BEGIN:
			if (c->pooler_mode != CONFIG_POOLER_STATEMENT)
				break;
			if (h->type == PGW_MSG_QUERY) {
				evbuffer_drain(in, pgw_msg_size(h));
				*is_refused = true;
				return wk_client_refuse_request(
					c, SQLSTATE_FEATURE_NOT_SUPPORTED,
					"transaction blocks are not allowed in statement pooling mode");
			}
			if (c->server && c->server->expect_ready == 0 && !c->server->has_unsynced &&
			    c->server->internal_ready == 0 && c->server->slots_cnt == 0) {
				/* a Parse of BEGIN opening a request: refuse it, skip to its Sync */
				struct pgw_buf *b = &g_wk.scratch;

				evbuffer_drain(in, pgw_msg_size(h));
				*is_refused = true;
				c->is_skip_to_sync = true;
				wk_client_log_error(
					&c->lctx, "ERROR", SQLSTATE_FEATURE_NOT_SUPPORTED,
					"transaction blocks are not allowed in statement pooling mode");
				pgw_buf_reset(b);
				pgw_put_error(
					b, false, "ERROR", SQLSTATE_FEATURE_NOT_SUPPORTED,
					"transaction blocks are not allowed in statement pooling mode",
					NULL, NULL);
				wk_client_row(c)->errors++;
				if (wk_conn_send(&c->io, b) < 0)
					return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY,
							       "out of memory");
				return WK_OK;
			}
			break;
		case SQL_SET:
		case SQL_RESET:
		case SQL_RESET_ALL:
			if (is_pin_instead) {
				c->pins |= WK_PIN_SETTINGS; /* the server keeps what it does */
				break;
			}
			if (!is_at_bind) {
				rc = wk_client_track_setting(c, &res, st);
				break;
			}
			if (h->type == PGW_MSG_PARSE && body[0] == '\0')
				c->unnamed_setting = true;
			if (st->kind == SQL_SET && st->is_truncated)
				c->pins |= WK_PIN_OPAQUE; /* as soon as it is prepared */
			break;
		case SQL_DISCARD_ALL:
		case SQL_DEALLOCATE_ALL:
			if (is_pin_instead)
				break; /* pinned by its name: nothing is dropped until it runs */
			if (is_at_bind) {
				/* prepared, not run: it takes effect when run (wk_client_bound_msg) */
				if (h->type == PGW_MSG_PARSE && body[0] == '\0')
					c->unnamed_setting = true;
				break;
			}
			/* prepared_statements = full: wk_client_prep_query decides for it alone */
			if (st->kind == SQL_DEALLOCATE_ALL && wk_client_is_full(c) &&
			    h->type == PGW_MSG_QUERY && !is_multi)
				break;
			rc = wk_client_drop_all_sent(c, st->kind, is_multi);
			break;
		case SQL_LISTEN:
			/* pub/sub serves the LISTENs of a Query it follows (its guard too) */
			if (!wk_pubsub_query_is_followed(c))
				wk_client_pins_add(c,
						   WK_PIN_LISTEN | WK_PIN_ASK); /* rolled back? */
			c->unpin_due &= ~WK_PIN_LISTEN;
			break;
		case SQL_UNLISTEN_ALL:
			/* when its Query commits: a Parse of it may never run */
			if (h->type == PGW_MSG_QUERY)
				wk_client_unpin_after(c, WK_PIN_LISTEN);
			wk_pubsub_client_unlisten(c, NULL);
			break;
		case SQL_UNLISTEN:
			wk_pubsub_client_unlisten(c, st->name);
			break;
		case SQL_PREPARE:
			/*
			 * prepared_statements = full: wk_client_prep() decides (Query
			 * and Parse), but leaves a Query of more statements than one
			 * result holds as it is
			 */
			if (!wk_client_is_full(c) || is_long) {
				(void)wk_client_pin_prepared(c);
				/* prepared: each run makes it again (after a DISCARD ALL too) */
				if (h->type == PGW_MSG_PARSE) {
					wk_client_parse_pins |= WK_PIN_PREPARED;
					if (body[0] == '\0')
						c->unnamed_pins |= WK_PIN_PREPARED;
				}
			}
			break;
		case SQL_COMMIT:
		case SQL_ROLLBACK:
		case SQL_PREPARE_TX:
			/*
			 * The SETs pending at the end of the transaction are settled
			 * by how it ended; not so those of a transaction ended in
			 * the middle of the request, or chained to the next one. A
			 * Parse: more may follow its Execute in the request, its own
			 * CommandComplete settles the SETs pending by then
			 * (wk_client_end_mark): none, most of the time.
			 */
			if (!st->is_chain && (is_at_bind ? !c->session.pending_cnt
							 : i + 1 == res.stmts_cnt && !res.has_more))
				break;
			/* fall through */
		case SQL_ROLLBACK_TO: /* SETs made since the savepoint are undone, not the others */
			c->unpin_due = 0; /* an UNLISTEN * before it may be undone */
			if (!is_at_bind) {
				is_split = true;
				break;
			}
			/* a Parse: followed when bound (wk_client_bind_setting), each time */
			if (h->type == PGW_MSG_PARSE && body[0] == '\0')
				c->unnamed_setting = true;
			break;
		default:
			break;
		}
		if (rc < 0)
			return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	}
	if (is_split && c->session.pending_cnt)
		c->pins |= WK_PIN_SETTINGS; /* the server keeps the values PostgreSQL settled */
	if (res.has_more) {
		/* more statements than one result holds: the text after the last one described */
		const struct sql_stmt *last = &res.stmts[res.stmts_cnt - 1];
		size_t off = (size_t)(sql_part - sql) + last->loc + last->loc_len;

		if (off >= len || sql[off] != ';') {
			c->pins |= WK_PIN_OPAQUE; /* not found: keep the server */
			return WK_OK;
		}
		sql_part = sql + off + 1;
		if (sql_classify_lexed(sql_part, len - off - 1, is_std, &res) < 0)
			return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
		if (!res.is_parsed || res.is_error)
			return WK_OK;
		res.flags = all_flags;
		goto next_part;
	}
	return WK_OK;
}

/* Numbers pgdog's throwaway statement names (per worker). */
static uint64_t wk_client_throwaway_cnt;
/* The server's expect_ready when wk_client_prep() began (wk_client_prep_send_query). */
static uint32_t wk_client_prep_ready0;
/* The client's pending ops before the message wk_client_prep() handles was tracked. */
static size_t wk_client_msg_ops0;

/*
 * pgdog put requests of its own (Closes and a Sync, Queries) in front of
 * the client's message since wk_client_prep_ready0: the SETs that message
 * made, and the LISTEN pub/sub follows in it (is_watched: a Query or
 * Parse), are settled by the ReadyForQuery after theirs.
 */
static void
wk_client_prep_shift(struct wk_client *c, const struct wk_server *s, bool is_watched)
{
	uint32_t n = s->expect_ready - wk_client_prep_ready0;

	if (n == 0)
		return;
	wk_session_shift_ops(&c->session, wk_client_msg_ops0, n);
	if (c->is_dealloc_tag_due &&
	    c->dealloc_tag_rfq > c->session.rfq_seen + (s->expect_ready - n))
		c->dealloc_tag_rfq += n;
	if (c->unpin_due && c->unpin_rfq > c->session.rfq_seen + (s->expect_ready - n))
		c->unpin_rfq += n;
	if (is_watched && c->pubsub)
		wk_pubsub_query_shift(c, n);
	wk_client_prep_ready0 = s->expect_ready;
}

/* The slot pushed last (there is one). */
static struct wk_slot *
wk_client_slot_last(const struct wk_server *s)
{
	return &s->slots[(s->slots_head + s->slots_cnt - 1) % s->slots_cap];
}

/* The slot pushed last is the Parse of the client's unnamed statement (wk_client_unnamed_parse). */
static void
wk_client_slot_tag_unnamed(struct wk_server *s)
{
	struct wk_slot *sl = wk_client_slot_last(s);

	s->is_unnamed_tag_due = false;
	sl->unnamed_tag = wk_unnamed_tag(s->unnamed_id);
	sl->is_unnamed_prev_here = s->is_unnamed_prev_here_due;
}

/*
 * The slot pushed last is about the client's statement p, in role (enum
 * wk_slot_prep_role), pushed without one: it holds a reference on p until
 * its end.
 */
static void
wk_client_slot_use(struct wk_server *s, struct wk_prep *p, uint8_t role)
{
	struct wk_slot *sl = wk_client_slot_last(s);

	sl->prep = p;
	sl->prep_role = role;
	p->client_refs++;
}

/*
 * The name a message used for statement p (the last slot's message), kept
 * when the client has another for it: the server's error names the one used
 * (wk_server_error_name). -1 on out of memory.
 */
static int
wk_client_slot_name(struct wk_client *c, struct wk_server *s, const struct wk_prep *p,
		    const char *name)
{
	struct wk_slot *sl;
	size_t had = 0, a, b;
	const char *mine;
	char *v;

	if (LIKELY(!c->prep_names.has_alias))
		return 0;
	mine = wk_prep_names_name_of(&c->prep_names, p->name, strlen(p->name));
	if (mine && strcmp(mine, name) == 0)
		return 0; /* the name errors get anyway */
	sl = wk_client_slot_last(s);
	for (const char *k = sl->client_names; k && *k; k += strlen(k) + 1)
		had += strlen(k) + 1;
	a = strlen(p->name) + 1;
	b = strlen(name) + 1;
	v = realloc(sl->client_names, had + a + b + 1);
	if (!v)
		return -1;
	memcpy(v + had, p->name, a);
	memcpy(v + had + a, name, b);
	v[had + a + b] = '\0';
	sl->client_names = v;
	return 0;
}

/* Give sl (a Query's slot) the text's map of positions (NULL: none). */
static void
wk_client_slot_set_map(struct wk_server *s, struct wk_slot *sl, struct wk_pos_map *map)
{
	sl->pos_map = map;
	if (map)
		s->pos_maps_cnt++;
}

/*
 * Append a Close or Describe (type) of the statement name to out, and its
 * reply slot (kind; is_swallow: pgdog's own). -1 on out of memory.
 */
static int
wk_client_put_stmt_msg(struct wk_server *s, struct evbuffer *out, uint8_t type, const char *name,
		       enum wk_slot_kind kind, bool is_swallow)
{
	struct pgw_buf *b = &g_wk.scratch;

	pgw_buf_reset(b);
	pgw_put_target(b, type, 'S', name);
	if (b->has_error || evbuffer_add(out, b->data, b->len) < 0 ||
	    wk_server_slot_push(s, kind, is_swallow, NULL) < 0)
		return -1;
	return 0;
}

/*
 * Close the least recently used statements of s until it holds keep.
 * Called only where nothing of the request goes before the Closes (no
 * client message since the last Sync): after an error earlier in a
 * request PostgreSQL would skip them, and the server would keep what pgdog
 * takes as gone (its next Parse of it: 42P05, for any client). Returns 1
 * when a Close was injected, 0 when none was needed, -1 on out of memory.
 */
static int
wk_client_prep_trim(struct wk_server *s, struct evbuffer *out, size_t keep)
{
	int rc = 0;

	while (s->held.cnt > keep) {
		struct wk_prep *old = wk_prep_held_lru(&s->held);

		if (wk_client_put_stmt_msg(s, out, PGW_MSG_CLOSE, old->name, WK_SLOT_CLOSE, true) <
		    0)
			return -1;
		wk_prep_held_del(&s->held, old);
		rc = 1;
	}
	return rc;
}

/*
 * Before preparing a statement on s: at prepared_statements_limit, close
 * the least recently used ones (wk_client_prep_trim). In the middle of a
 * request (a client message sent since the last Sync) nothing is closed:
 * the server holds more than the limit until the next request starts
 * (wk_client_prep). Returns 1 when a Close was injected, 0 when not, -1 on
 * out of memory.
 */
static int
wk_client_prep_make_room(struct wk_server *s, struct evbuffer *out)
{
	uint32_t limit = (uint32_t)g_cfg->prepared_statements_limit;

	if (!limit || s->held.cnt < limit || s->has_unsynced)
		return 0;
	return wk_client_prep_trim(s, out, limit - 1);
}

/*
 * Make sure the server has p prepared: inject what prepares it (replies
 * swallowed) if not. Returns 1 when something was injected, 0 when the
 * server has it, -1 on out of memory.
 */
static int
wk_client_prep_ensure(struct wk_client *c, struct wk_server *s, struct wk_prep *p,
		      struct evbuffer *out, bool is_client_parse)
{
	(void)c;
	if (wk_prep_held_has(&s->held, p))
		return 0;
	/* the server skips it up to the next Sync, and what needs it too */
	if (s->has_error_unsynced && !is_client_parse)
		return 0;
	if (wk_client_prep_make_room(s, out) < 0 ||
	    evbuffer_add(out, p->parse_msg, p->parse_len) < 0)
		return -1;
	if (p->is_sql) {
		/* Close, Parse, Bind, Execute (PREPARE's CommandComplete: it holds it), Close x2 */
		if (wk_server_slot_push(s, WK_SLOT_CLOSE, true, NULL) < 0 ||
		    wk_server_slot_push(s, WK_SLOT_PARSE, true, NULL) < 0 ||
		    wk_server_slot_push(s, WK_SLOT_BIND, true, NULL) < 0 ||
		    wk_server_slot_push(s, WK_SLOT_EXECUTE, true, p) < 0 ||
		    wk_server_slot_push(s, WK_SLOT_CLOSE, true, NULL) < 0 ||
		    wk_server_slot_push(s, WK_SLOT_CLOSE, true, NULL) < 0)
			return -1;
	} else if (wk_server_slot_push(s, WK_SLOT_PARSE, !is_client_parse, p) < 0) {
		return -1;
	} else if (is_client_parse) {
		/* refused: the client's name goes too */
		wk_client_slot_last(s)->prep_role = WK_SLOT_PREP_SQL;
	}
	if (wk_prep_held_add(&s->held, p) < 0)
		return -1;
	wk_prep_held_sent(&s->held, p, s->syncs_cnt);
	return 1;
}

/*
 * pgdog's Describe of p, just prepared on s (reply swallowed): the result
 * it tells is p's, or compared with p's (WK_SLOT_PREP_VERIFY). -1 on out of
 * memory.
 */
static int
wk_client_prep_describe(struct wk_server *s, struct wk_prep *p, struct evbuffer *out)
{
	if (wk_client_put_stmt_msg(s, out, PGW_MSG_DESCRIBE, p->name, WK_SLOT_DESCRIBE_S, true) < 0)
		return -1;
	wk_client_slot_use(s, p, WK_SLOT_PREP_VERIFY);
	return 0;
}

/* Append a Flush of pgdog's own (PostgreSQL answers it with nothing). */
static int
wk_client_put_flush(struct evbuffer *out)
{
	static const uint8_t flush[] = { PGW_MSG_FLUSH, 0, 0, 0, 4 };

	return evbuffer_add(out, flush, sizeof(flush));
}

/*
 * The client's next message waits until the server has answered what went
 * before it (is_verify_wait; the end of a reply slot with a statement resumes
 * it): a Flush makes the answer come now, the client's transaction left as
 * it is. -1 on out of memory.
 */
static int
wk_client_wait_answer(struct wk_server *s, struct evbuffer *out)
{
	if (wk_client_put_flush(out) < 0)
		return -1;
	s->is_verify_wait = true;
	return 0;
}

/*
 * The client's next message waits until s has answered every message sent
 * (or skipped their rest after an error, has_error_unsynced): one that
 * PostgreSQL would skip after a failure before it (wk_server_slot_pop
 * resumes it). -1 on out of memory.
 */
static int
wk_client_wait_unsynced(struct wk_server *s, struct evbuffer *out)
{
	if (wk_client_wait_answer(s, out) < 0)
		return -1;
	s->is_unsynced_wait = true;
	return 0;
}

/*
 * A client's Bind or Describe of its statement p, which s does not hold:
 * prepared there now, it would describe the result p's text has today,
 * while PostgreSQL keeps the result type a statement was prepared with
 * (0A000 "cached plan must not change result type" once DDL changed it).
 * So pgdog prepares p, asks the server to describe it (reply swallowed,
 * WK_SLOT_PREP_VERIFY: wk_prep_desc_seen compares it with p's) and holds the
 * client's message until that answer is in (s is_verify_wait): then it goes
 * to p, or fails with 0A000 if p's result changed. The wait also means that
 * whether the Parse succeeded (or was skipped after an error) is known
 * before anything that needs p is sent, in this request or a later one.
 * Returns 1 when the client's message waits, 2 when s held p already (the
 * caller need not look again), 0 when it can go otherwise (p prepared there
 * now, or left to wk_client_prep_ensure()), -1 on out of memory.
 */
static int
wk_client_prep_verify(struct wk_client *c, struct wk_server *s, struct wk_prep *p,
		      struct evbuffer *out)
{
	int rc;

	if (wk_prep_held_is_unsure(&s->held, p, s->syncs_cnt)) {
		/* its Parse in an earlier request may be skipped: known first */
		return wk_client_wait_answer(s, out) < 0 ? -1 : 1;
	}
	if (wk_prep_held_has(&s->held, p))
		return 2;
	if (p->is_sql || p->is_stale || p->is_desc_live)
		return 0;
	/* pub/sub follows where these run (wk_pubsub_bind): prepared as before, no wait */
	if (g_cfg->pub_sub_channel_size > 0 && p->pubsub != WK_PREP_PUBSUB_NONE) {
		rc = wk_pubsub_prep_follows(p);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
	}
	rc = wk_client_prep_ensure(c, s, p, out, false);
	if (rc <= 0)
		return rc;
	if (wk_client_prep_describe(s, p, out) < 0 || wk_client_wait_answer(s, out) < 0)
		return -1;
	log_debug(&c->lctx, "statement %s prepared again: its result is checked first", p->name);
	return 1;
}

/*
 * Before a simple Query: end the extended-protocol messages pgdog injected
 * with a Sync of its own (its ReadyForQuery swallowed), so that the Query
 * runs even if one of them fails. -1 on out of memory.
 */
static int
wk_client_prep_sync(struct wk_server *s, struct evbuffer *out)
{
	static const uint8_t sync[] = { PGW_MSG_SYNC, 0, 0, 0, 4 };

	if (evbuffer_add(out, sync, sizeof(sync)) < 0 ||
	    wk_server_slot_push(s, WK_SLOT_SYNC, true, NULL) < 0)
		return -1;
	if (s->expect_ready == 0 && !s->has_unsynced) {
		wk_client_request_start(s);
	}
	s->expect_ready++;
	s->has_unsynced = false;
	s->has_exec_unsynced = false;
	return 0;
}

/* Send a simple Query of pgdog's own; every reply, errors included, swallowed. */
static int
wk_client_prep_own_query(struct wk_server *s, struct evbuffer *out, const char *sql)
{
	struct pgw_buf *b = &g_wk.scratch;

	pgw_buf_reset(b);
	pgw_put_query(b, sql);
	if (b->has_error || evbuffer_add(out, b->data, b->len) < 0 ||
	    wk_server_slot_push(s, WK_SLOT_QUERY, true, NULL) < 0)
		return -1;
	if (s->expect_ready == 0 && !s->has_unsynced) {
		wk_client_request_start(s);
	}
	s->expect_ready++;
	return 0;
}

/*
 * A PREPARE or Parse of a name the client already has must fail as in
 * PostgreSQL: 42P05, "prepared statement "x" already exists", no CONTEXT,
 * in its place among the replies, aborting the transaction it is in. pgdog
 * lets PostgreSQL say it: a statement of the client's name is made on the
 * server first (a junk statement), and the client's own message fails on
 * it. After a Query the junk is closed at once (wk_client_prep_junk_flush());
 * after a Parse, in front of the client's next request (the server skips
 * everything up to the client's Sync), or when the server is attached next.
 * A name made already (junk not closed yet) is not made again.
 */

/* Close the server's junk statements: Closes and a Sync, replies swallowed. -1 on out of memory. */
static int
wk_client_prep_junk_flush(struct wk_server *s, struct evbuffer *out)
{
	struct pgw_buf *b = &g_wk.scratch;
	size_t n;

	pgw_buf_reset(b);
	n = wk_prep_junk_take(&s->held, b);
	if (b->has_error || evbuffer_add(out, b->data, b->len) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (wk_server_slot_push(s, WK_SLOT_CLOSE, true, NULL) < 0)
			return -1;
	return wk_client_prep_sync(s, out);
}

/*
 * Before the client's Query with a PREPARE of a name it has (the token
 * tok, tok_len bytes of its text; name, as PostgreSQL stores it): make the
 * statement under that name with a simple Query of pgdog's own, so that
 * the client's PREPARE fails on it. -1 on out of memory.
 */
static int
wk_client_prep_dup_make_sql(struct wk_server *s, struct evbuffer *out, const char *name,
			    const char *tok, size_t tok_len)
{
	char make[2 * SQL_NAME_MAX + 32];

	if (wk_prep_junk_has(&s->held, name))
		return 0;
	if (tok_len > 2 * SQL_NAME_MAX)
		return 0; /* cannot be: the name fits SQL_NAME_MAX */
	snprintf(make, sizeof(make), "PREPARE %.*s AS SELECT", (int)tok_len, tok);
	if (wk_prep_junk_add(&s->held, name) < 0)
		return -1;
	return wk_client_prep_own_query(s, out, make);
}

/*
 * wk_client_prep_dup_make_sql() in the extended protocol: a Parse of a
 * statement called name (the client's, closed later), so that the client's
 * SQL PREPARE of name fails with PostgreSQL's own 42P05. -1 on out of memory.
 */
static int
wk_client_prep_dup_make_parse(struct wk_server *s, struct evbuffer *out, const char *name)
{
	struct pgw_buf *b = &g_wk.scratch;
	bool is_junk = wk_prep_junk_has(&s->held, name);

	pgw_buf_reset(b);
	/*
	 * Closed first: made earlier in the request, it may be there, or not
	 * (an error before that Parse made the server skip it)
	 */
	if (is_junk)
		pgw_put_target(b, PGW_MSG_CLOSE, 'S', name);
	pgw_begin(b, PGW_MSG_PARSE);
	pgw_put_str(b, name);
	/* a statement that ends a transaction: accepted in an aborted one too */
	pgw_put_str(b, "COMMIT");
	pgw_put_u16(b, 0);
	pgw_end(b);
	return b->has_error || evbuffer_add(out, b->data, b->len) < 0 ||
			       (is_junk && wk_server_slot_push(s, WK_SLOT_CLOSE, true, NULL) < 0) ||
			       wk_server_slot_push(s, WK_SLOT_PARSE, true, NULL) < 0 ||
			       (!is_junk && wk_prep_junk_add(&s->held, name) < 0)
		       ? -1
		       : 0;
}

/* A Parse of p's text (and parameter types) under name, appended to b. */
static void
wk_client_put_copy_parse(struct pgw_buf *b, const struct wk_prep *p, const char *name)
{
	pgw_begin(b, PGW_MSG_PARSE);
	pgw_put_str(b, name);
	pgw_put_bytes(b, p->key, p->key_len);
	pgw_end(b);
}

/*
 * A client's Parse of a statement the server holds, in an aborted
 * transaction: PostgreSQL answers it under a throwaway name (closed again if
 * it succeeds after all), so the client gets the server's own answer and
 * what the server holds does not change. -1 on out of memory.
 */
static int
wk_client_prep_parse_check(struct wk_server *s, struct evbuffer *out, struct wk_prep *p)
{
	struct pgw_buf *b = &g_wk.scratch;
	char check[64];

	snprintf(check, sizeof(check), "__pgdog_check_%d_%llu", g_wk.slot,
		 (unsigned long long)++wk_client_throwaway_cnt);
	pgw_buf_reset(b);
	wk_client_put_copy_parse(b, p, check);
	pgw_put_target(b, PGW_MSG_CLOSE, 'S', check);
	if (b->has_error || evbuffer_add(out, b->data, b->len) < 0 ||
	    wk_server_slot_push(s, WK_SLOT_PARSE, false, p) < 0)
		return -1;
	wk_client_slot_last(s)->prep_role = WK_SLOT_PREP_CHECK;
	return wk_server_slot_push(s, WK_SLOT_CLOSE, true, NULL);
}

/*
 * A Parse of a name the client already has: PostgreSQL refuses it with
 * 42P05. The statement is made under that name first (unless it is there
 * already), then the client's Parse (msg, whole) goes as it is and fails on
 * it; the server skips the client's later messages up to its Sync, as
 * after any failed Parse. PostgreSQL reads the client's text first, so a
 * syntax error, several statements, or (in an aborted transaction) 25P02
 * come before 42P05, as they would. -1 on out of memory.
 */
static int
wk_client_prep_parse_dup(struct wk_server *s, struct evbuffer *out, const char *name,
			 const uint8_t *msg, size_t msg_len)
{
	if (wk_client_prep_dup_make_parse(s, out, name) < 0)
		return -1;
	if (evbuffer_add(out, msg, msg_len) < 0 ||
	    wk_server_slot_push(s, WK_SLOT_PARSE, false, NULL) < 0)
		return -1;
	log_debug(&s->lctx, "Parse of an existing statement name: 42P05 from the server");
	return 0;
}

/* The text of SQL PREPARE after the name ("[(types)] AS statement"), trimmed. */
static void
wk_client_prep_rest(const char *sql, const struct sql_stmt *st, const char **rest, size_t *n)
{
	size_t a = st->name_off + st->name_len, z = st->loc + st->loc_len;

	while (a < z && strchr(" \t\r\n\f\v", sql[a]))
		a++;
	while (z > a && (strchr(" \t\r\n\f\v;", sql[z - 1])))
		z--;
	*rest = sql + a;
	*n = z - a;
}

_Static_assert(WK_POS_SEGS_MAX >= SQL_STMTS_MAX + 1, "a position map holds every name and a front");

/* Characters of t counted as UTF-8 (the bytes that start one); a byte above ASCII clears *is_ascii. */
static uint32_t
wk_client_chars(const char *t, size_t n, bool *is_ascii)
{
	uint32_t k = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t ch = (uint8_t)t[i];

		*is_ascii &= ch < 0x80;
		k += (ch & 0xC0) != 0x80;
	}
	return k;
}

/*
 * Send the client's Query with the name tokens of some statements replaced:
 * names[i] (NULL: keep) for res->stmts[i], after a PREPARE of each SQL
 * statement in pre[0..pre_cnt) (their CommandComplete swallowed: in the same
 * Query, a failed one is the client's only error and nothing after it runs).
 * Its replies go to the client; *slot is its reply slot, which keeps a map
 * of where the text moved (for the positions of errors). -1 on out of
 * memory.
 */
static int
wk_client_prep_send_query(struct wk_server *s, struct evbuffer *out, const char *sql, size_t len,
			  const struct sql_result *res, const char *const *names,
			  struct wk_prep *const *pre, size_t pre_cnt, struct wk_slot **slot)
{
	struct pgw_buf *b = &g_wk.scratch;
	size_t at = 0;
	/* where the text moves, for the positions of errors (none: they stay as they are) */
	struct wk_pos_map *map = wk_pos_map_new();
	uint32_t srv = 0; /* characters of the server's text so far */
	bool is_ascii = true;

	pgw_buf_reset(b);
	pgw_begin(b, PGW_MSG_QUERY);
	for (size_t i = 0; i < pre_cnt; i++) {
		WK_PUT_LIT(b, "PREPARE ");
		pgw_put_bytes(b, pre[i]->name, strlen(pre[i]->name));
		pgw_put_u8(b, ' ');
		pgw_put_bytes(b, pre[i]->key, pre[i]->key_len);
		/* on its own line: the statement may end in a -- comment */
		WK_PUT_LIT(b, "\n;");
		srv += 8 + (uint32_t)strlen(pre[i]->name) + 1 +
		       wk_client_chars((const char *)pre[i]->key, pre[i]->key_len, &is_ascii) + 2;
	}
	if (map && srv)
		map->seg[map->cnt++] = (struct wk_pos_seg){ 0, srv, 0 };
	for (size_t i = 0; i < res->stmts_cnt; i++) {
		const struct sql_stmt *st = &res->stmts[i];
		uint32_t name_len = 0;

		if (!names[i])
			continue;
		pgw_put_bytes(b, sql + at, st->name_off - at);
		/* quoted: the client's "name" may touch the word before it (execute"p") */
		pgw_put_u8(b, '"');
		pgw_put_bytes(b, names[i], strlen(names[i]));
		pgw_put_u8(b, '"');
		srv += wk_client_chars(sql + at, st->name_off - at, &is_ascii);
		name_len = wk_client_chars(names[i], strlen(names[i]), &is_ascii) + 2;
		if (map)
			map->seg[map->cnt++] =
				(struct wk_pos_seg){ srv, srv + name_len,
						     wk_client_chars(sql + st->name_off,
								     st->name_len, &is_ascii) };
		srv += name_len;
		at = st->name_off + st->name_len;
	}
	pgw_put_bytes(b, sql + at, len - at);
	pgw_put_u8(b, 0);
	pgw_end(b);
	if (b->has_error || evbuffer_add(out, b->data, b->len) < 0) {
		wk_pos_map_free(map);
		return -1;
	}
	(void)wk_client_chars(sql + at, len - at, &is_ascii);
	if (map && map->cnt == 0) {
		wk_pos_map_free(map);
		map = NULL;
	}
	if (map)
		map->is_ascii = is_ascii;
	/* this Query's SETs and LISTENs end after pgdog's queries in front */
	if (s->client && s->expect_ready > wk_client_prep_ready0)
		wk_client_prep_shift(s->client, s, true);
	for (size_t i = 0; i < pre_cnt; i++)
		if (wk_server_slot_push(s, WK_SLOT_EXECUTE, true, pre[i]) < 0) {
			wk_pos_map_free(map);
			return -1;
		}
	if (wk_server_slot_push(s, WK_SLOT_QUERY, false, NULL) < 0) {
		wk_pos_map_free(map);
		return -1;
	}
	*slot = wk_client_slot_last(s);
	wk_client_slot_set_map(s, *slot, map);
	return 0;
}

/*
 * wk_client_prep_send_query() for a Query with PREPAREs of new names among
 * its statements: one reply slot per statement (each ends at its
 * CommandComplete; an error ends the rest), so that each PREPARE's name is
 * kept or dropped by its own outcome, as PostgreSQL keeps a statement
 * prepared before a later one fails. stmt_prep[i] / stmt_role[i]: the
 * statement and role of res->stmts[i]'s slot (NULL: none); each such slot
 * holds a reference on its statement, so that a DEALLOCATE later in the
 * Query cannot free it first. -1 on out of memory.
 */
static int
wk_client_prep_send_query_each(struct wk_server *s, struct evbuffer *out, const char *sql,
			       size_t len, const struct sql_result *res, const char *const *names,
			       struct wk_prep *const *pre, size_t pre_cnt,
			       struct wk_prep *const *stmt_prep, const uint8_t *stmt_role)
{
	struct wk_slot *sl;
	struct wk_pos_map *map;

	/* the Query slot goes last: send, then put the statements' slots in front of it */
	if (wk_client_prep_send_query(s, out, sql, len, res, names, pre, pre_cnt, &sl) < 0)
		return -1;
	map = sl->pos_map; /* the Query slot's, pushed again below */
	if (map)
		s->pos_maps_cnt--;
	s->slots_cnt--;
	for (size_t i = 0; i < res->stmts_cnt; i++) {
		if (wk_server_slot_push(s, WK_SLOT_EXECUTE, false, stmt_prep[i]) < 0) {
			wk_pos_map_free(map);
			return -1;
		}
		/* its reference: a later statement (DEALLOCATE) may drop p before this reply */
		if (stmt_prep[i])
			wk_client_slot_last(s)->prep_role = stmt_role[i];
	}
	if (wk_server_slot_push(s, WK_SLOT_QUERY, false, NULL) < 0) {
		wk_pos_map_free(map);
		return -1;
	}
	wk_client_slot_set_map(s, wk_client_slot_last(s), map);
	return 0;
}

/*
 * A Query of several statements with SQL PREPARE of a new name among them
 * can be rewritten (the names followed statement by statement) unless
 * DEALLOCATE ALL follows a PREPARE: then the client keeps its server.
 */
static bool
wk_client_prep_multi_ok(const struct wk_client *c, const struct sql_result *res)
{
	for (size_t i = 0; i < res->stmts_cnt; i++) {
		const struct sql_stmt *st = &res->stmts[i];

		if (st->kind != SQL_PREPARE)
			continue;
		if (!st->name_len || st->is_truncated)
			return false;
		if (wk_prep_names_get(&c->prep_names, st->name))
			continue; /* a 42P05: nothing after it runs */
		for (size_t j = i + 1; j < res->stmts_cnt; j++) {
			const struct sql_stmt *t = &res->stmts[j];

			if (t->kind == SQL_DEALLOCATE_ALL)
				return false;
		}
	}
	return true;
}

/*
 * SQL PREPARE name ... alone in a Query. A name the client has: 42P05 from
 * the server (wk_client_prep_dup_make_sql). Otherwise PostgreSQL checks it:
 * under the statement's pgdog name when this server does not hold it yet,
 * else under a throwaway name dropped right after. The client's name counts
 * from now on, and is dropped again if PostgreSQL refuses the statement. -1 on out of memory.
 */
static int
wk_client_prep_sql_prepare(struct wk_client *c, struct wk_server *s, struct evbuffer *out,
			   const char *sql, size_t len, const struct sql_result *res)
{
	const struct sql_stmt *st = &res->stmts[0];
	const char *names[SQL_STMTS_MAX] = { NULL };
	const char *rest;
	char check[64], drop[96];
	size_t rest_len;
	struct wk_prep *p;
	struct wk_slot *sl;

	if (wk_prep_names_get(&c->prep_names, st->name)) {
		/* PostgreSQL's own 42P05, on a statement of that name made for it */
		if (wk_client_prep_dup_make_sql(s, out, st->name, sql + st->name_off,
						st->name_len) < 0 ||
		    wk_client_prep_send_query(s, out, sql, len, res, names, NULL, 0, &sl) < 0)
			return -1;
		return wk_client_prep_junk_flush(s, out);
	}
	wk_client_prep_rest(sql, st, &rest, &rest_len);
	p = wk_prep_register_sql_std(rest, rest_len, wk_client_text_is_std(c, rest, rest_len));
	if (!p || wk_prep_names_put_unconfirmed(&c->prep_names, st->name, p, s->syncs_cnt) < 0)
		return -1;
	p->pins |= (uint16_t)wk_client_flag_pins(res->flags);
	if (!wk_prep_held_has(&s->held, p)) {
		int rc = wk_client_prep_make_room(s, out);

		if (rc < 0 || (rc > 0 && wk_client_prep_sync(s, out) < 0))
			return -1;
		names[0] = p->name;
		if (wk_client_prep_send_query(s, out, sql, len, res, names, NULL, 0, &sl) < 0)
			return -1;
		sl->prep = p;
		sl->prep_role = WK_SLOT_PREP_SQL;
		p->client_refs++;
		return wk_prep_held_add(&s->held, p);
	}
	/* a new name each time: one left behind by a cancelled DEALLOCATE cannot collide */
	snprintf(check, sizeof(check), "__pgdog_check_%d_%llu", g_wk.slot,
		 (unsigned long long)++wk_client_throwaway_cnt);
	names[0] = check;
	if (wk_client_prep_send_query(s, out, sql, len, res, names, NULL, 0, &sl) < 0)
		return -1;
	sl->prep = p;
	sl->prep_role = WK_SLOT_PREP_CHECK;
	p->client_refs++;
	snprintf(drop, sizeof(drop), "DEALLOCATE %s", check);
	return wk_client_prep_own_query(s, out, drop);
}

/*
 * One DEALLOCATE [ALL] or PREPARE alone in a Query, the client on a server
 * (in a transaction block, or pinned) with nothing else in flight:
 * pgdog answers what only touches the client's names, as PostgreSQL would
 * in the transaction's state (25P02 when it is aborted). DEALLOCATE ALL is left to
 * the server when the client has statements of its own there (a PREPARE
 * that pinned it); a duplicate PREPARE inside a transaction block is left to
 * the server, which must fail the transaction. Returns 1 when
 * answered, 0 when not, -1 on out of memory.
 */
static int
wk_client_prep_local(struct wk_client *c, struct wk_server *s, const struct pgw_hdr *h,
		     struct evbuffer *in, const struct sql_stmt *st)
{
	struct pgw_buf *b = &g_wk.scratch;
	bool is_known;

	if (s->expect_ready || s->has_unsynced || s->slots_cnt || s->internal_ready ||
	    c->fwd_remaining || (s->tx_status == 'I' && !c->pins))
		return 0;
	/*
	 * In a transaction block DEALLOCATE takes the transaction's snapshot (a
	 * SET TRANSACTION ISOLATION after it fails): PostgreSQL runs one on a
	 * statement made for the purpose (not for DEALLOCATE ALL, answered here
	 * so that the server keeps the statements other clients use)
	 */
	if (s->tx_status == 'T' && st->kind == SQL_DEALLOCATE)
		return 0;
	if (st->kind == SQL_DEALLOCATE_ALL) {
		if (c->pins & WK_PIN_PREPARED)
			return 0;
	} else {
		if (!st->name_len || st->is_truncated)
			return 0;
		is_known = wk_prep_names_get(&c->prep_names, st->name) != NULL;
		if (!is_known || (st->kind == SQL_PREPARE && s->tx_status == 'T'))
			return 0;
	}
	pgw_buf_reset(b);
	if (s->tx_status == 'E') {
		pgw_put_error(b, false, "ERROR", SQLSTATE_IN_FAILED_SQL_TRANSACTION,
			      "current transaction is aborted, commands ignored until end of "
			      "transaction block",
			      NULL, NULL);
		wk_client_row(c)->errors++;
	} else if (st->kind == SQL_DEALLOCATE_ALL) {
		wk_prep_names_clear(&c->prep_names);
		pgw_put_command_complete(b, "DEALLOCATE ALL");
	} else if (st->kind == SQL_DEALLOCATE) {
		wk_prep_names_del(&c->prep_names, st->name);
		pgw_put_command_complete(b, "DEALLOCATE");
	} else {
		char text[SQL_NAME_MAX + 64];

		snprintf(text, sizeof(text), "prepared statement \"%s\" already exists", st->name);
		pgw_put_error(b, false, "ERROR", SQLSTATE_DUPLICATE_PSTATEMENT, text, NULL, NULL);
		wk_client_row(c)->errors++;
	}
	pgw_put_ready(b, s->tx_status);
	evbuffer_drain(in, pgw_msg_size(h));
	if (wk_conn_send(&c->io, b) < 0)
		return -1;
	log_noise(&c->lctx, "SQL prepared statement command answered by pgdog");
	return 1;
}

/*
 * prepared_statements = full: a simple Query with SQL PREPARE, EXECUTE or
 * DEALLOCATE. The client's names become pgdog's names in the text; what
 * EXECUTE needs is prepared first. Returns 1 when the Query was replaced
 * (drained, sent, its reply slots pushed), 0 when it goes on as it is, -1 on
 * out of memory.
 */
static int
wk_client_prep_query(struct wk_client *c, struct wk_server *s, const struct pgw_hdr *h,
		     struct evbuffer *in, struct evbuffer *out)
{
	const uint8_t *msg = evbuffer_pullup(in, (ev_ssize_t)pgw_msg_size(h));
	const char *names[SQL_STMTS_MAX] = { NULL };
	struct wk_prep *pre[SQL_STMTS_MAX];
	/* PREPAREs of new names in this Query: their statements, and how each is checked */
	struct wk_prep *stmt_prep[SQL_STMTS_MAX] = { NULL };
	uint8_t stmt_role[SQL_STMTS_MAX] = { 0 };
	/* EXECUTEs of statements the client has two names for: their names (errors name them) */
	struct wk_prep *named[SQL_STMTS_MAX] = { NULL };
	struct {
		const char *name; /* res.stmts[i].name */
		struct wk_prep *prep;
	} local[SQL_STMTS_MAX];
	char checks[SQL_STMTS_MAX][48];
	size_t pre_cnt = 0, local_cnt = 0;
	const struct sql_stmt *dup = NULL;
	const char *sql;
	size_t len;
	struct sql_result res;
	bool has_named = false, has_injected = false, has_rewrite = false, is_local;
	/* DEALLOCATEs: the statements made for them to drop, in one query of pgdog's */
	char drops[SQL_STMTS_MAX * 64];
	size_t drops_len = 0;
	struct wk_slot *sl;
	int rc;

	if (!msg)
		return -1;
	if (!wk_query_is_wellformed(msg + PGW_HDR_LEN, h->len - 4))
		return 0; /* PostgreSQL says 08P01 */
	sql = (const char *)msg + PGW_HDR_LEN;
	len = strnlen(sql, h->len - 4);
	if (wk_client_classify(c, sql, len, &res) < 0)
		return -1;
	if (!res.is_parsed || res.is_error || res.has_more)
		return 0;
	if (!wk_client_is_full(c) &&
	    (res.stmts_cnt != 1 || res.stmts[0].kind != SQL_DEALLOCATE ||
	     res.stmts[0].is_truncated || !wk_prep_names_get(&c->prep_names, res.stmts[0].name)))
		return 0; /* extended: only a DEALLOCATE of a protocol-level statement is pgdog's */
	for (size_t i = 0; i < res.stmts_cnt; i++) {
		enum sql_kind k = res.stmts[i].kind;

		if (k == SQL_PREPARE || k == SQL_EXECUTE || k == SQL_DEALLOCATE)
			has_named = true;
	}
	if (res.stmts_cnt == 1 &&
	    (res.stmts[0].kind == SQL_DEALLOCATE_ALL || res.stmts[0].kind == SQL_DEALLOCATE ||
	     res.stmts[0].kind == SQL_PREPARE)) {
		rc = wk_client_prep_local(c, s, h, in, &res.stmts[0]);
		if (rc != 0)
			return rc;
		if (res.stmts[0].kind == SQL_DEALLOCATE_ALL)
			/* it goes to the server (not refused there: everything prepared goes) */
			return wk_client_drop_all_sent(c, SQL_DEALLOCATE_ALL, false);
	}
	if (!has_named)
		return 0;
	if (res.stmts_cnt == 1 && res.stmts[0].kind == SQL_PREPARE && res.stmts[0].name_len &&
	    !res.stmts[0].is_truncated) {
		if (wk_client_prep_sql_prepare(c, s, out, sql, len, &res) < 0)
			return -1;
		goto sent;
	}
	if (res.stmts_cnt == 1 && res.stmts[0].kind == SQL_DEALLOCATE && res.stmts[0].name_len &&
	    !res.stmts[0].is_truncated && wk_prep_names_get(&c->prep_names, res.stmts[0].name)) {
		/*
		 * Only the client's name goes; the statement stays on the server for
		 * others. PostgreSQL still answers, in order and with the state of
		 * the transaction, by dropping a statement made for the purpose;
		 * the name goes when it does (not in a transaction that failed
		 * before it: pipelined).
		 */
		char drop[64], make[128];
		struct wk_prep *p = wk_prep_names_drop_begin(&c->prep_names, res.stmts[0].name);

		snprintf(drop, sizeof(drop), "__pgdog_drop_%d_%llu", g_wk.slot,
			 (unsigned long long)++wk_client_throwaway_cnt);
		snprintf(make, sizeof(make), "PREPARE %s AS SELECT", drop);
		names[0] = drop;
		if (wk_client_prep_own_query(s, out, make) < 0 ||
		    wk_client_prep_send_query(s, out, sql, len, &res, names, NULL, 0, &sl) < 0)
			return -1;
		sl->prep = p;
		sl->prep_role = WK_SLOT_PREP_DROP;
		p->client_refs++;
		goto sent;
	}
	/* one or more statements: rewrite the names, in order */
	if (!wk_client_prep_multi_ok(c, &res)) {
		/* what the names will mean cannot be followed: it lives on this server only */
		if (wk_client_pin_prepared(c))
			log_debug(
				&c->lctx,
				"SQL PREPARE among other statements: server pinned to the client");
		return 0;
	}
	for (size_t i = 0; i < res.stmts_cnt; i++) {
		const struct sql_stmt *st = &res.stmts[i];
		struct wk_prep *p = NULL;

		if ((st->kind != SQL_PREPARE && st->kind != SQL_EXECUTE &&
		     st->kind != SQL_DEALLOCATE) ||
		    !st->name_len || st->is_truncated)
			continue; /* a name pgdog cannot place is left to PostgreSQL */
		/* a name PREPAREd earlier in this Query, else one the client has */
		for (size_t j = local_cnt; j-- > 0 && !p;)
			if (local[j].name && strcmp(local[j].name, st->name) == 0)
				p = local[j].prep;
		is_local = p != NULL;
		if (!p)
			p = wk_prep_names_get(&c->prep_names, st->name);
		if (st->kind == SQL_DEALLOCATE && p) {
			/*
			 * Only the client's name goes, when PostgreSQL runs the
			 * DEALLOCATE (not when a statement before it fails): it
			 * drops a statement made for the purpose, and pgdog's
			 * stays on the server for others.
			 */
			for (size_t j = 0; j < local_cnt; j++)
				if (local[j].name && strcmp(local[j].name, st->name) == 0)
					local[j].name = NULL;
			p = wk_prep_names_drop_begin(&c->prep_names, st->name);
			snprintf(checks[i], sizeof(checks[i]), "__pgdog_drop_%d_%llu", g_wk.slot,
				 (unsigned long long)++wk_client_throwaway_cnt);
			/* closed after the Query, in case it did not run */
			if (!p || wk_prep_junk_add(&s->held, checks[i]) < 0)
				return -1;
			drops_len += (size_t)snprintf(drops + drops_len, sizeof(drops) - drops_len,
						      "%sPREPARE %s AS SELECT",
						      drops_len ? ";" : "", checks[i]);
			names[i] = checks[i];
			stmt_prep[i] = p;
			stmt_role[i] = WK_SLOT_PREP_DROP;
			has_rewrite = true;
			continue;
		}
		if (st->kind == SQL_PREPARE && p) {
			/*
			 * A name the client has: PostgreSQL's own 42P05 there, made
			 * possible before the Query (see wk_client_prep_dup_make_sql).
			 * Nothing after it runs: its names stay as they are.
			 */
			dup = st;
			has_rewrite = true;
			break;
		}
		if (st->kind == SQL_PREPARE) {
			const char *rest;
			size_t rest_len;

			wk_client_prep_rest(sql, st, &rest, &rest_len);
			p = wk_prep_register_sql_std(rest, rest_len,
						     wk_client_text_is_std(c, rest, rest_len));
			if (!p || wk_prep_names_put_unconfirmed(&c->prep_names, st->name, p,
								s->syncs_cnt) < 0)
				return -1;
			p->pins |= (uint16_t)wk_client_flag_pins(res.flags);
			local[local_cnt].name = st->name;
			local[local_cnt++].prep = p;
			stmt_prep[i] = p;
			if (!wk_prep_held_has(&s->held, p)) {
				/* PostgreSQL checks it under its pgdog name: this server has it then */
				rc = wk_client_prep_make_room(s, out);
				if (rc < 0 || wk_prep_held_add(&s->held, p) < 0)
					return -1;
				has_injected |= rc > 0;
				names[i] = p->name;
				stmt_role[i] = WK_SLOT_PREP_SQL;
			} else {
				/* held already: checked under a throwaway name, closed later */
				snprintf(checks[i], sizeof(checks[i]), "__pgdog_check_%d_%llu",
					 g_wk.slot, (unsigned long long)++wk_client_throwaway_cnt);
				if (wk_prep_junk_add(&s->held, checks[i]) < 0)
					return -1;
				names[i] = checks[i];
				stmt_role[i] = WK_SLOT_PREP_CHECK;
			}
			has_rewrite = true;
			continue;
		}
		if (!p)
			continue; /* PostgreSQL says 26000, naming the client's statement */
		if (is_local) {
			/* made by the PREPARE in front of it */
		} else if (p->is_sql && !wk_prep_held_has(&s->held, p)) {
			/* prepared by a PREPARE in front of the client's statements */
			rc = wk_client_prep_make_room(s, out);
			if (rc < 0 || wk_prep_held_add(&s->held, p) < 0)
				return -1;
			has_injected |= rc > 0;
			pre[pre_cnt++] = p;
		} else {
			rc = wk_client_prep_ensure(c, s, p, out, false);
			if (rc < 0)
				return -1;
			has_injected |= rc > 0;
		}
		names[i] = p->name;
		has_rewrite = true;
		if (UNLIKELY(c->prep_names.has_alias))
			named[i] = p;
		p->uses++;
		wk_prep_publish(p);
		if (UNLIKELY(p->pins))
			wk_client_pin_by(c, p->pins);
	}
	if (!has_rewrite)
		return 0;
	if (has_injected && wk_client_prep_sync(s, out) < 0)
		return -1;
	if (dup &&
	    wk_client_prep_dup_make_sql(s, out, dup->name, sql + dup->name_off, dup->name_len) < 0)
		return -1;
	if (drops_len && wk_client_prep_own_query(s, out, drops) < 0)
		return -1;
	if (local_cnt || drops_len)
		rc = wk_client_prep_send_query_each(s, out, sql, len, &res, names, pre, pre_cnt,
						    stmt_prep, stmt_role);
	else
		rc = wk_client_prep_send_query(s, out, sql, len, &res, names, pre, pre_cnt, &sl);
	/* the Query's slot is the last one */
	for (size_t i = 0; i < res.stmts_cnt && rc == 0; i++)
		if (named[i])
			rc = wk_client_slot_name(c, s, named[i], res.stmts[i].name);
	/* what was made for checks and 42P05 goes right after (Close works in a failed block) */
	if (rc < 0 || (s->held.junk_cnt && wk_client_prep_junk_flush(s, out) < 0))
		return -1;
sent:
	evbuffer_drain(in, pgw_msg_size(h));
	if (s->expect_ready == 0 && !s->has_unsynced) {
		wk_client_request_start(s);
	}
	s->expect_ready++;
	log_noise(&c->lctx, "SQL prepared statement names rewritten");
	return 1;
}

/*
 * A named Parse (msg, whole; body, blen: its body; n1: its name's length):
 * the name maps to pgdog's statement for the text, prepared on the server
 * if it does not hold it. Returns 1 (handled: the caller drains the
 * client's message), -1 on out of memory.
 */
static int
wk_client_prep_parse_named(struct wk_client *c, struct wk_server *s, const uint8_t *msg,
			   const char *body, size_t blen, size_t n1, struct evbuffer *out)
{
	struct wk_prep *p;

	if (wk_prep_names_is_unconfirmed(&c->prep_names, body) ||
	    (c->prep_names.dropping_cnt && wk_prep_names_is_dropping(&c->prep_names, body))) {
		/*
		 * A Parse of the name still unanswered: 42P05 only if PostgreSQL
		 * accepts it. A Close of it unanswered: the name is free only if
		 * PostgreSQL runs the Close (an earlier error makes it skip it,
		 * and this Parse too when it is in the same request).
		 */
		return wk_client_wait_answer(s, out) < 0 ? -1 : 3;
	}
	if (wk_prep_names_get(&c->prep_names, body))
		return wk_client_prep_parse_dup(s, out, body, msg, PGW_HDR_LEN + blen) < 0 ? -1 : 1;
	/* the name counts once PostgreSQL (or pgdog in its place) has answered the Parse */
	p = wk_prep_register_std((const uint8_t *)body, blen, n1,
				 wk_client_text_is_std(c, body + n1 + 1, blen - n1 - 1));
	if (!p)
		return -1;
	p->pins |= (uint16_t)wk_client_parse_pins;
	/* the server has it only if an earlier request's Parse of it is not skipped: known first */
	if (wk_prep_held_is_unsure(&s->held, p, s->syncs_cnt))
		return wk_client_wait_answer(s, out) < 0 ? -1 : 3;
	if (wk_prep_names_put_unconfirmed(&c->prep_names, body, p, s->syncs_cnt) < 0)
		return -1;
	if (wk_prep_held_has(&s->held, p) &&
	    (s->tx_status == 'E' || s->expect_ready || s->internal_ready)) {
		/*
		 * An aborted transaction refuses any Parse: let PostgreSQL say so,
		 * also when requests before this one are still running (one may
		 * abort it)
		 */
		if (wk_client_prep_parse_check(s, out, p) < 0)
			return -1;
	} else if (wk_prep_held_has(&s->held, p)) {
		/* skipped after an earlier error up to the Sync: then the name goes */
		if (wk_server_slot_push(s, WK_SLOT_SYNTH_PARSE, false, p) < 0)
			return -1;
		wk_client_slot_last(s)->prep_role = WK_SLOT_PREP_CHECK;
	} else {
		int rc = wk_client_prep_ensure(c, s, p, out, true);

		/* the first copy of p tells the result its later copies must keep */
		if (rc < 0 || (rc > 0 && !p->has_desc && !p->is_sql && !p->is_desc_live &&
			       wk_client_prep_describe(s, p, out) < 0))
			return -1;
	}
	return 1;
}

static int wk_client_unnamed_parse(struct wk_client *c, struct wk_server *s, const uint8_t *msg,
				   size_t size);

/* A new throwaway statement name in b (48 bytes), with this prefix. */
static void
wk_client_prep_throwaway(char *b, size_t n, const char *prefix)
{
	snprintf(b, n, "__pgdog_%s_%d_%llu", prefix, g_wk.slot,
		 (unsigned long long)++wk_client_throwaway_cnt);
}

/*
 * prepared_statements = full: a Parse whose text is SQL PREPARE, EXECUTE or
 * DEALLOCATE of a name (PQexecParams("EXECUTE s(1)"), a driver running
 * everything through the extended protocol). It is rewritten as in a
 * simple Query, into the same name space, and the statement runs when the
 * client executes it:
 * - EXECUTE name: pgdog's name for it (prepared first where missing); a
 *   named Parse of it becomes a statement like any other;
 * - DEALLOCATE name (unnamed Parse): the client's name goes now; the text
 *   drops a statement made for the purpose (so PostgreSQL still answers);
 * - PREPARE name AS ... (unnamed Parse): PostgreSQL prepares it under its
 *   pgdog name in front (its errors come then), and the text prepares a
 *   throwaway copy, closed later; the name is the client's when an
 *   Execute runs it (wk_client_unnamed_setting, WK_SLOT_PREP_EXEC), as in
 *   PostgreSQL; a name the client has fails with PostgreSQL's 42P05 at
 *   Execute.
 * A named Parse of PREPARE or DEALLOCATE, or a name pgdog cannot place,
 * pins the server instead. Returns 1 when handled (replacement sent: the
 * caller drains the client's message), 2 when handled and the replacement
 * recorded as the client's unnamed statement (a PREPARE), 0 when the Parse
 * is not such a statement, 3 when it waits for the answers to what went
 * before it (a PREPARE or DEALLOCATE of the name in an earlier request), -1
 * on out of memory.
 */
static int
wk_client_prep_parse_sql(struct wk_client *c, struct wk_server *s, const char *body, size_t blen,
			 size_t n1, struct evbuffer *out)
{
	const char *sql = body + n1 + 1, *tail, *name = NULL;
	size_t len = wk_strnlen(sql, blen - n1 - 1), tail_len;
	struct sql_result res;
	const struct sql_stmt *st;
	struct wk_prep *p, *drop = NULL;
	char tmp[48];
	struct pgw_buf nb;
	enum wk_sql_kind kind = WK_SQL_NONE;
	const char *junk = NULL;
	size_t slots0;
	int rc;

	if (len >= blen - n1 - 1 || wk_conn_sql_is_known_plain(sql, len))
		return 0;     /* malformed (PostgreSQL says so), or the plain text seen last */
	tail = sql + len + 1; /* the parameter types */
	tail_len = blen - n1 - 1 - len - 1;
	if (wk_client_classify(c, sql, len, &res) < 0)
		return -1;
	if (!res.is_parsed || res.is_error || res.stmts_cnt != 1)
		return 0;
	st = &res.stmts[0];
	if (st->kind != SQL_PREPARE && st->kind != SQL_EXECUTE && st->kind != SQL_DEALLOCATE)
		return 0;
	if (!wk_client_is_full(c) && st->kind != SQL_DEALLOCATE)
		return 0; /* extended: only a DEALLOCATE of a protocol-level statement is pgdog's */
	if (!st->name_len || st->is_truncated || (n1 > 0 && st->kind != SQL_EXECUTE)) {
		if (st->kind == SQL_PREPARE && wk_client_pin_prepared(c))
			log_debug(&c->lctx,
				  "SQL PREPARE in a named Parse: server pinned to the client");
		return 0;
	}
	/* what the name means depends on answers not in yet (a PREPARE of it may not run) */
	if (wk_prep_names_is_pending(&c->prep_names, st->name, s->syncs_cnt))
		return wk_client_wait_answer(s, out) < 0 ? -1 : 3;
	slots0 = s->slots_cnt;
	p = wk_prep_names_get(&c->prep_names, st->name);
	switch (st->kind) {
	case SQL_EXECUTE:
		if (!p)
			return 0; /* PostgreSQL says 26000, naming the client's statement */
		if (wk_client_prep_ensure(c, s, p, out, false) < 0)
			return -1;
		p->uses++;
		wk_prep_publish(p);
		if (UNLIKELY(p->pins))
			wk_client_pin_by(c, p->pins);
		name = p->name;
		kind = WK_SQL_EXECUTE;
		break;
	case SQL_DEALLOCATE:
		if (!p)
			return 0;
		wk_client_prep_throwaway(tmp, sizeof(tmp), "drop");
		pgw_buf_init(&nb);
		pgw_begin(&nb, PGW_MSG_PARSE);
		pgw_put_str(&nb, tmp);
		pgw_put_str(&nb, "SELECT");
		pgw_put_u16(&nb, 0);
		pgw_end(&nb);
		rc = nb.has_error || evbuffer_add(out, nb.data, nb.len) < 0 ||
				     wk_server_slot_push(s, WK_SLOT_PARSE, true, NULL) < 0 ||
				     wk_prep_junk_add(&s->held, tmp) < 0
			     ? -1
			     : 0;
		pgw_buf_cleanup(&nb);
		if (rc < 0)
			return -1;
		/* the name goes when PostgreSQL accepts the Parse (not in an aborted block) */
		drop = wk_prep_names_drop_begin(&c->prep_names, st->name);
		name = tmp;
		break;
	default: /* SQL_PREPARE */
		if (p) {
			/* PostgreSQL's own 42P05 when the client executes it */
			if (wk_client_prep_dup_make_parse(s, out, st->name) < 0)
				return -1;
			kind = WK_SQL_PREPARE_DUP;
			junk = st->name;
			break; /* the text as it is */
		}
		{
			const char *rest;
			size_t rest_len;

			wk_client_prep_rest(sql, st, &rest, &rest_len);
			p = wk_prep_register_sql_std(rest, rest_len,
						     wk_client_text_is_std(c, rest, rest_len));
		}
		if (!p || wk_client_prep_ensure(c, s, p, out, false) < 0)
			return -1;
		p->pins |= (uint16_t)wk_client_flag_pins(res.flags);
		/* the name is the client's when this statement runs (wk_client_unnamed_setting) */
		kind = WK_SQL_PREPARE;
		junk = tmp;
		wk_client_prep_throwaway(tmp, sizeof(tmp), "check");
		if (wk_prep_junk_add(&s->held, tmp) < 0)
			return -1;
		name = tmp;
		break;
	}
	/* the client's Parse, its text with the name replaced */
	pgw_buf_init(&nb);
	pgw_begin(&nb, PGW_MSG_PARSE);
	pgw_put_bytes(&nb, body, n1 + 1);
	if (name) {
		pgw_put_bytes(&nb, sql, st->name_off);
		pgw_put_u8(&nb, '"'); /* as wk_client_prep_query writes it */
		pgw_put_bytes(&nb, name, strlen(name));
		pgw_put_u8(&nb, '"');
		pgw_put_bytes(&nb, sql + st->name_off + st->name_len,
			      len - st->name_off - st->name_len);
	} else {
		pgw_put_bytes(&nb, sql, len);
	}
	pgw_put_u8(&nb, 0);
	pgw_put_bytes(&nb, tail, tail_len);
	pgw_end(&nb);
	if (nb.has_error) {
		rc = -1;
	} else if (n1 > 0) {
		/* a named EXECUTE: a statement like any other, under its new text */
		rc = wk_client_prep_parse_named(c, s, nb.data, (const char *)nb.data + PGW_HDR_LEN,
						nb.len - PGW_HDR_LEN, n1, out);
	} else {
		rc = evbuffer_add(out, nb.data, nb.len) < 0 ||
				     wk_server_slot_push(s, WK_SLOT_PARSE, false, NULL) < 0
			     ? -1
			     : 1;
		/* what went ahead for it fails it (wk_server_slot_reply) */
		for (size_t i = slots0; rc > 0 && i + 1 < s->slots_cnt; i++)
			s->slots[(s->slots_head + i) & (s->slots_cap - 1)].is_for_next = true;
		if (rc > 0 && kind != WK_SQL_NONE) {
			/*
			 * The client's unnamed statement is this text, prepared again
			 * where its Bind goes (wk_client_unnamed_ensure); a PREPARE's
			 * Bind runs it (unnamed_setting)
			 */
			if (wk_client_unnamed_parse(c, s, nb.data, nb.len) < 0) {
				rc = -1;
			} else {
				wk_client_slot_tag_unnamed(s);
				wk_client_sql_set(c, kind, kind == WK_SQL_PREPARE_DUP ? NULL : p,
						  st->name, junk);
				c->sql_id = c->unnamed_id;
				c->unnamed_setting = kind == WK_SQL_PREPARE;
				rc = 2;
			}
		}
		if (rc > 0 && drop) {
			struct wk_slot *sl = wk_client_slot_last(s);

			sl->prep = drop;
			sl->prep_role = WK_SLOT_PREP_DROP;
			drop->client_refs++;
		}
	}
	pgw_buf_cleanup(&nb);
	log_noise(&c->lctx, "SQL prepared statement command in a Parse rewritten");
	return rc;
}

/*
 * The client's Bind (body, blen bytes: portal name n1 bytes, statement name
 * n2 bytes) appended to b with the statement name replaced by name.
 */
static ALWAYS_INLINE void
wk_client_bind_renamed(const char *body, size_t blen, size_t n1, size_t n2, const char *name,
		       struct pgw_buf *b)
{
	pgw_begin(b, PGW_MSG_BIND);
	pgw_put_bytes(b, body, n1 + 1);
	pgw_put_str(b, name);
	pgw_put_bytes(b, body + n1 + 1 + n2 + 1, blen - (n1 + 1 + n2 + 1));
	pgw_end(b);
}

/*
 * The client's Bind (body, blen bytes: portal name n1 bytes, statement name
 * n2 bytes) of its statement p appended to b with the name of pgdog's
 * statement that s holds for it, and its reply slot; p counts the use. -1
 * on out of memory.
 */
static ALWAYS_INLINE int
wk_client_prep_bind_put(struct wk_server *s, struct wk_prep *p, const char *name, const char *body,
			size_t blen, size_t n1, size_t n2, struct pgw_buf *b)
{
	wk_client_bind_renamed(body, blen, n1, n2, name, b);
	if (b->has_error || wk_server_slot_push(s, WK_SLOT_BIND, false, NULL) < 0)
		return -1;
	p->uses++;
	wk_prep_publish(p);
	if (UNLIKELY(p->pins) && s->client)
		wk_client_pin_by(s->client, p->pins);
	return 0;
}

/*
 * A client's Bind (body, blen: portal name n1 bytes, statement name n2) or
 * Describe of its stale statement p: sent under a name no server holds,
 * its 26000 reaches the client as PostgreSQL's 0A000 (wk_server.c), and the
 * server's transaction fails as PostgreSQL's would. -1 on out of memory.
 */
static int
wk_client_prep_stale(struct wk_server *s, struct wk_prep *p, uint8_t type, const char *body,
		     size_t blen, size_t n1, size_t n2, struct evbuffer *out)
{
	struct pgw_buf *b = &g_wk.scratch;

	if (type == PGW_MSG_BIND) {
		pgw_buf_reset(b);
		wk_client_bind_renamed(body, blen, n1, n2, WK_PREP_STALE_NAME, b);
		if (b->has_error || evbuffer_add(out, b->data, b->len) < 0 ||
		    wk_server_slot_push(s, WK_SLOT_BIND, false, NULL) < 0)
			return -1;
	} else if (wk_client_put_stmt_msg(s, out, PGW_MSG_DESCRIBE, WK_PREP_STALE_NAME,
					  WK_SLOT_DESCRIBE_S, false) < 0) {
		return -1;
	}
	wk_client_slot_use(s, p, WK_SLOT_PREP_STALE);
	log_debug(&s->lctx, "statement %s is stale: 0A000", p->name);
	return 0;
}

/*
 * A text of n bytes that may DEALLOCATE a statement the client prepared with
 * a Parse, which pgdog answers for it: psycopg 3 sends DEALLOCATE _pg3_N when
 * its cache of statements is full.
 */
static bool
wk_client_may_deallocate(const struct wk_client *c, const uint8_t *text, size_t n)
{
	return c->prep_names.cnt && wk_text_has_word((const char *)text, n, "deallocate");
}

/* Numbers the clients' Parses of their unnamed statement (per worker). */
static uint64_t wk_client_unnamed_seq;

/* At most this many unnamed statements kept before the last Parse (the oldest go). */
#define WK_CLIENT_UNNAMED_OLD_MAX 64

/*
 * The client's unnamed statement and its unnamed_old entry i change places
 * (unnamed_setting stays: wk_client_track sets it for a Parse's text).
 */
static void
wk_client_unnamed_swap(struct wk_client *c, size_t i)
{
	struct wk_unnamed_old *o = &c->unnamed_old[i];
	struct wk_unnamed_old t = *o;

	o->id = c->unnamed_id;
	o->msg = c->unnamed_msg;
	o->len = c->unnamed_len;
	o->cap = c->unnamed_cap;
	o->pins = c->unnamed_pins;
	c->unnamed_id = t.id;
	c->unnamed_msg = t.msg;
	c->unnamed_len = t.len;
	c->unnamed_cap = t.cap;
	c->unnamed_pins = t.pins;
}

/* n entries of unnamed_old from at are gone: their buffers become spares. */
static void
wk_client_unnamed_old_cut(struct wk_client *c, size_t at, size_t n)
{
	struct wk_unnamed_old *o = c->unnamed_old, t[WK_CLIENT_UNNAMED_OLD_MAX];
	size_t cap = c->unnamed_old_cap; /* <= WK_CLIENT_UNNAMED_OLD_MAX, as n */

	memcpy(t, &o[at], n * sizeof(*o));
	memmove(&o[at], &o[at + n], (cap - at - n) * sizeof(*o));
	memcpy(&o[cap - n], t, n * sizeof(*o));
	c->unnamed_old_cnt -= n;
}

/*
 * A Parse of the client's unnamed statement goes to s: the one it replaces
 * is kept while that Parse may be skipped. Nothing unanswered on s: those
 * kept before are settled. -1 on out of memory.
 */
static int
wk_client_unnamed_push(struct wk_client *c, const struct wk_server *s)
{
	unsigned pins;

	if (!s->is_tracked || s->slots_cnt == 0)
		c->unnamed_old_cnt = 0;
	else if (c->unnamed_old_cnt == WK_CLIENT_UNNAMED_OLD_MAX)
		wk_client_unnamed_old_cut(c, 0, 1);
	if (c->unnamed_old_cnt == c->unnamed_old_cap) {
		size_t cap = c->unnamed_old_cap ? c->unnamed_old_cap * 2 : 1;
		struct wk_unnamed_old *o = realloc(c->unnamed_old, cap * sizeof(*o));

		if (!o)
			return -1;
		memset(&o[c->unnamed_old_cap], 0, (cap - c->unnamed_old_cap) * sizeof(*o));
		c->unnamed_old = o;
		c->unnamed_old_cap = cap;
	}
	/* kept with the statement it had (wk_client_track has set the new one's) */
	pins = c->unnamed_pins;
	c->unnamed_pins = c->unnamed_pins_prev;
	wk_client_unnamed_swap(c, c->unnamed_old_cnt++);
	c->unnamed_pins = pins;
	return 0;
}

/*
 * The client's Parse of its unnamed statement (msg, size bytes; NULL when
 * pgdog rewrote its text) goes to s: s's unnamed statement is now the
 * client's, and the message is kept to prepare it again on the server of a
 * later request. -1 on out of memory.
 */
static int
wk_client_unnamed_parse(struct wk_client *c, struct wk_server *s, const uint8_t *msg, size_t size)
{
	bool was_here = c->unnamed_id && s->unnamed_id == c->unnamed_id;

	if (s->is_tracked && wk_server_is_unanswered(s)) {
		s->is_unnamed_unsure = true;
		s->unnamed_unsure_syncs = s->syncs_cnt;
	}
	if (wk_client_unnamed_push(c, s) < 0)
		return -1;
	c->unnamed_id = s->unnamed_id = ++wk_client_unnamed_seq;
	c->unnamed_len = 0;
	if (!msg)
		return 0;
	/* sent as it is, on a tracked server: its slot comes next (wk_client_slot) */
	s->is_unnamed_tag_due = s->is_tracked;
	s->is_unnamed_prev_here_due = was_here;
	if (size > c->unnamed_cap) {
		uint8_t *m = realloc(c->unnamed_msg, size);

		if (!m)
			return -1;
		c->unnamed_msg = m;
		c->unnamed_cap = size;
	}
	memcpy(c->unnamed_msg, msg, size);
	c->unnamed_len = size;
	return 0;
}

void
wk_client_unnamed_copied(struct wk_server *s, const struct wk_slot *sl)
{
	const struct wk_client *c = s->client;

	if (c && c->unnamed_id && wk_unnamed_tag(c->unnamed_id) == sl->unnamed_tag)
		s->unnamed_id = c->unnamed_id;
}

void
wk_client_unnamed_lost(struct wk_server *s, const struct wk_slot *sl, bool is_refused)
{
	struct wk_client *c = s->client;
	uint32_t tag = sl->unnamed_tag;
	bool is_server_s = s->unnamed_id && wk_unnamed_tag(s->unnamed_id) == tag;

	/*
	 * Refused, it has dropped the statement before it; skipped, it left
	 * the one before it, known when that was the client's (below)
	 */
	if (is_server_s)
		s->unnamed_id = 0;
	if (!c)
		return;
	if (c->unnamed_id && wk_unnamed_tag(c->unnamed_id) == tag) {
		if (is_refused || c->unnamed_old_cnt == 0) {
			/* it has none: its Bind gets 26000 on any server */
			c->unnamed_id = 0;
			c->unnamed_len = 0;
			c->unnamed_setting = false;
			c->unnamed_pins = 0;
			c->unnamed_old_cnt = 0;
		} else {
			/* the one before it is the client's again; a SET in it is looked for at Bind */
			wk_client_unnamed_swap(c, --c->unnamed_old_cnt);
			if (!c->unnamed_id)
				c->unnamed_len = 0;
			c->unnamed_setting = c->unnamed_len > 0;
			/*
			 * Still there: nothing to prepare again (unless one between
			 * was skipped too, or pgdog rewrote its text: no copy of it is
			 * kept)
			 */
			if (is_server_s && sl->is_unnamed_prev_here && c->unnamed_len &&
			    !c->is_unnamed_here_unsure)
				s->unnamed_id = c->unnamed_id;
		}
		c->is_unnamed_here_unsure = false;
		return;
	}
	/*
	 * A later Parse followed (skipped too, or after a Sync): refused, this
	 * one leaves none before the later ones; skipped, the one before it is
	 * theirs
	 */
	for (size_t i = c->unnamed_old_cnt; i-- > 0;) {
		if (!c->unnamed_old[i].id || wk_unnamed_tag(c->unnamed_old[i].id) != tag)
			continue;
		if (is_refused) {
			wk_client_unnamed_old_cut(c, 0, i + 1);
		} else {
			wk_client_unnamed_old_cut(c, i, 1);
			c->is_unnamed_here_unsure = true;
		}
		return;
	}
}

void
wk_client_unnamed_parsed(struct wk_server *s, const struct wk_slot *sl)
{
	struct wk_client *c = s->client;

	if (!c || !c->unnamed_old_cnt)
		return;
	/* the ones before it can no longer come back */
	if (c->unnamed_id && wk_unnamed_tag(c->unnamed_id) == sl->unnamed_tag) {
		c->unnamed_old_cnt = 0;
		c->is_unnamed_here_unsure = false;
		return;
	}
	for (size_t i = c->unnamed_old_cnt; i-- > 0;) {
		if (c->unnamed_old[i].id &&
		    wk_unnamed_tag(c->unnamed_old[i].id) == sl->unnamed_tag) {
			wk_client_unnamed_old_cut(c, 0, i);
			return;
		}
	}
}

/*
 * A simple Query or a Close of the unnamed statement from the client goes
 * to s (NULL: none): PostgreSQL drops the unnamed statement there.
 */
static ALWAYS_INLINE void
wk_client_unnamed_drop(struct wk_client *c, struct wk_server *s)
{
	c->unnamed_id = 0;
	c->unnamed_len = 0;
	c->unnamed_setting = false;
	c->unnamed_pins = 0;
	c->unnamed_old_cnt = 0;
	c->is_unnamed_here_unsure = false;
	if (s)
		s->unnamed_id = 0;
}

/*
 * Is whether s holds the client's unnamed statement unknown for a message
 * after a Sync: its last Parse went behind messages not answered yet, and
 * a Sync came since (before it, a skipped Parse skips the message too).
 */
static ALWAYS_INLINE bool
wk_client_unnamed_is_unsure(const struct wk_server *s)
{
	return UNLIKELY(s->is_unnamed_unsure) && s->syncs_cnt != s->unnamed_unsure_syncs &&
	       !s->is_copy_in;
}

/* msg (whole) is a Bind or a Describe of the unnamed statement. */
static bool
wk_client_is_unnamed_ref(const struct pgw_hdr *h, const uint8_t *msg)
{
	const char *body = (const char *)msg + PGW_HDR_LEN;
	size_t blen = h->len - 4, n1;

	if (h->type == PGW_MSG_BIND) {
		n1 = wk_strnlen(body, blen);
		return n1 + 1 < blen && body[n1 + 1] == '\0';
	}
	return h->type == PGW_MSG_DESCRIBE && blen >= 2 && body[0] == 'S' && body[1] == '\0';
}

/*
 * msg (whole) is a Bind or a Describe of the unnamed statement that s
 * cannot take as it is: s's unnamed statement is not the client's.
 */
static bool
wk_client_is_unnamed_due(const struct wk_client *c, const struct wk_server *s,
			 const struct pgw_hdr *h, const uint8_t *msg)
{
	return !(c->unnamed_id && s->unnamed_id == c->unnamed_id) &&
	       wk_client_is_unnamed_ref(h, msg);
}

/*
 * The client's unnamed statement, a rewritten SQL PREPARE or EXECUTE (sql_kind),
 * is prepared again on s: what its text needs there goes first (a throwaway
 * copy it may make is closed later). -1 on out of memory.
 */
static int
wk_client_sql_ensure(struct wk_client *c, struct wk_server *s, struct evbuffer *out)
{
	switch (c->sql_kind) {
	case WK_SQL_PREPARE:
		return wk_prep_junk_has(&s->held, c->sql_junk)
			       ? 0
			       : wk_prep_junk_add(&s->held, c->sql_junk);
	case WK_SQL_PREPARE_DUP:
		return wk_client_prep_dup_make_parse(s, out, c->sql_junk);
	case WK_SQL_EXECUTE:
		return wk_client_prep_ensure(c, s, c->sql_prep, out, false) < 0 ? -1 : 0;
	default:
		return 0;
	}
}

/*
 * Before the client's Bind or Describe of its unnamed statement on s: when
 * s's unnamed statement is another's (the client prepared its own in an
 * earlier request, on another server, or another client's Parse or Query
 * came in between), send the client's Parse again (its reply swallowed); when
 * the client has none, close s's, so that PostgreSQL answers 26000 as it
 * would. -1 on out of memory.
 */
static int
wk_client_unnamed_ensure(struct wk_client *c, struct wk_server *s, struct evbuffer *out)
{
	if (c->unnamed_id && s->unnamed_id == c->unnamed_id)
		return 0;
	if (c->unnamed_id && c->unnamed_len) {
		/* behind messages not answered yet: skipped if one of them fails */
		bool may_skip = wk_server_is_unanswered(s);

		if ((c->sql_id == c->unnamed_id && wk_client_sql_ensure(c, s, out) < 0) ||
		    evbuffer_add(out, c->unnamed_msg, c->unnamed_len) < 0 ||
		    wk_server_slot_push(s, WK_SLOT_PARSE, true, NULL) < 0)
			return -1;
		/*
		 * The server holds it from here on, unless this Parse fails or
		 * is skipped; if it may be, from its ParseComplete on
		 * (wk_client_unnamed_copied): a Bind of it after the next Sync
		 * prepares it again until then.
		 */
		if (!may_skip)
			s->unnamed_id = c->unnamed_id;
		wk_client_slot_last(s)->unnamed_tag = wk_unnamed_tag(c->unnamed_id);
		wk_client_slot_last(s)->is_unnamed_copy = true;
		log_noise(&c->lctx, "unnamed statement prepared again on this server");
		return 0;
	}
	if (wk_client_put_stmt_msg(s, out, PGW_MSG_CLOSE, "", WK_SLOT_CLOSE, true) < 0)
		return -1;
	s->unnamed_id = 0;
	return 0;
}

/*
 * The statement name that takes the place of the unnamed one where pgdog
 * cannot prepare the client's again (prepared_statements = disabled): the
 * server answers 26000, naming it, and runs nothing of another client's.
 */
#define WK_CLIENT_UNNAMED_GONE "(unnamed: prepared on another server connection)"

/*
 * An untracked server (prepared_statements = disabled) in transaction or
 * statement mode whose unnamed statement may not be the client's: its
 * Binds and Describes are looked at (wk_client_unnamed_untracked).
 */
static ALWAYS_INLINE bool
wk_client_is_unnamed_watched(const struct wk_client *c, const struct wk_server *s)
{
	return !s->is_tracked && c->pooler_mode != CONFIG_POOLER_SESSION &&
	       !(c->unnamed_id && s->unnamed_id == c->unnamed_id);
}

/*
 * prepared_statements = disabled, transaction or statement mode: the
 * message at the front of in (whole when it is a Bind or Describe that
 * wk_client_is_unnamed_watched() says to look at) goes to s. A Parse of the
 * unnamed statement makes s's the client's; a Bind or Describe of it where
 * s's unnamed statement is not the client's goes with
 * WK_CLIENT_UNNAMED_GONE as its statement name instead (appended to out,
 * drained from in). Returns 1 when replaced, 0 when the message goes as it
 * is, -1 on out of memory.
 */
static int
wk_client_unnamed_untracked(struct wk_client *c, struct wk_server *s, const struct pgw_hdr *h,
			    struct evbuffer *in, struct evbuffer *out)
{
	struct pgw_buf *b = &g_wk.scratch;
	const uint8_t *msg;
	const char *body;
	size_t blen;

	if (h->type == PGW_MSG_PARSE) {
		uint8_t first = 1;
		struct evbuffer_ptr pos;

		evbuffer_ptr_set(in, &pos, PGW_HDR_LEN, EVBUFFER_PTR_SET);
		if (h->len <= 4 || evbuffer_copyout_from(in, &pos, &first, 1) != 1 || first != 0)
			return 0;
		/* the text of one with a SET is kept: followed at its Execute (whole: tracked) */
		msg = c->unnamed_setting ? evbuffer_pullup(in, (ev_ssize_t)pgw_msg_size(h)) : NULL;
		return wk_client_unnamed_parse(c, s, msg, msg ? pgw_msg_size(h) : 0) < 0 ? -1 : 0;
	}
	if (UNLIKELY(c->unnamed_setting || c->bound_cnt || c->unnamed_pins) &&
	    (h->type == PGW_MSG_BIND || h->type == PGW_MSG_EXECUTE)) {
		size_t n1, n2;

		msg = evbuffer_pullup(in, (ev_ssize_t)pgw_msg_size(h));
		if (!msg || (c->bound_cnt && wk_client_bound_msg(c, h, msg) < 0))
			return -1;
		if (h->type == PGW_MSG_BIND && (c->unnamed_setting || c->unnamed_pins) &&
		    wk_client_bind_names(h, msg, &n1, &n2) && n2 == 0) {
			/* the unnamed statement runs again: what it pins with it */
			if (c->unnamed_pins)
				wk_client_pin_by(c, c->unnamed_pins);
			if (c->unnamed_setting && !wk_client_is_unnamed_due(c, s, h, msg) &&
			    wk_client_unnamed_setting(c, (const char *)msg + PGW_HDR_LEN, n1) < 0)
				return -1;
		}
	}
	if ((h->type != PGW_MSG_BIND && h->type != PGW_MSG_DESCRIBE) ||
	    !wk_client_is_unnamed_watched(c, s))
		return 0;
	msg = evbuffer_pullup(in, (ev_ssize_t)pgw_msg_size(h));
	if (!msg)
		return -1;
	if (!wk_client_is_unnamed_due(c, s, h, msg))
		return 0;
	body = (const char *)msg + PGW_HDR_LEN;
	blen = h->len - 4;
	pgw_buf_reset(b);
	if (h->type == PGW_MSG_BIND) {
		wk_client_bind_renamed(body, blen, wk_strnlen(body, blen), 0,
				       WK_CLIENT_UNNAMED_GONE, b);
	} else {
		pgw_put_target(b, PGW_MSG_DESCRIBE, 'S', WK_CLIENT_UNNAMED_GONE);
	}
	if (b->has_error || evbuffer_add(out, b->data, b->len) < 0)
		return -1;
	evbuffer_drain(in, pgw_msg_size(h));
	log_debug(&c->lctx, "unnamed statement not on this server: PostgreSQL answers 26000");
	return 1;
}

/* wk_client_prep(): the message waits in the input (wk_client_prep_verify) */
#define WK_CLIENT_PREP_WAIT 2

/*
 * A client's Describe of p, whose result PostgreSQL reads from the session
 * when it prepares it (is_desc_live: FETCH, SQL EXECUTE): answered by a copy
 * of p prepared now under a throwaway name and closed right after, so that
 * it describes this client's cursor or statement, not the one some session
 * had when s prepared its copy of p. -1 on out of memory.
 */
static int
wk_client_prep_describe_live(struct wk_server *s, const struct wk_prep *p, struct evbuffer *out)
{
	struct pgw_buf *b = &g_wk.scratch;
	char tmp[48];

	wk_client_prep_throwaway(tmp, sizeof(tmp), "desc");
	pgw_buf_reset(b);
	wk_client_put_copy_parse(b, p, tmp);
	pgw_put_target(b, PGW_MSG_DESCRIBE, 'S', tmp);
	pgw_put_target(b, PGW_MSG_CLOSE, 'S', tmp);
	/* only the Describe's reply goes to the client */
	return b->has_error || evbuffer_add(out, b->data, b->len) < 0 ||
			       wk_server_slot_push(s, WK_SLOT_PARSE, true, NULL) < 0 ||
			       wk_server_slot_push(s, WK_SLOT_DESCRIBE_S, false, NULL) < 0 ||
			       wk_server_slot_push(s, WK_SLOT_CLOSE, true, NULL) < 0
		       ? -1
		       : 0;
}

/*
 * Transaction mode with prepared_statements = extended: rewrite a named
 * Parse/Bind/Describe/Close to pgdog's statement names. Returns 1 when the
 * message was handled (drained and replaced), 0 when it goes on as it is,
 * WK_CLIENT_PREP_WAIT when it stays in the input until the server has
 * answered what pgdog sent for it, -1 on out of memory.
 */
static int
wk_client_prep(struct wk_client *c, struct wk_server *s, const struct pgw_hdr *h,
	       struct evbuffer *in, struct evbuffer *out)
{
	const uint8_t *msg;
	const char *body;
	size_t blen, n1, n2;
	struct wk_prep *p, *use;
	struct pgw_buf *b = &g_wk.scratch;
	bool is_held;

	if (UNLIKELY(c->bound_cnt) && (h->type == PGW_MSG_BIND || h->type == PGW_MSG_EXECUTE)) {
		msg = evbuffer_pullup(in, (ev_ssize_t)pgw_msg_size(h));
		if (!msg)
			return -1;
		if (h->type == PGW_MSG_EXECUTE && wk_client_must_wait(s) &&
		    wk_client_bound_may_dealloc(c, h, msg))
			/* what it drops cannot come back: run only if nothing before it failed */
			return wk_client_wait_unsynced(s, out) < 0 ? -1 : WK_CLIENT_PREP_WAIT;
		bool was_due = c->is_dealloc_tag_due;

		if (wk_client_bound_msg(c, h, msg) < 0)
			return -1;
		if (h->type == PGW_MSG_EXECUTE) {
			/* its DISCARD/DEALLOCATE ALL's outcome ends a wait: it must come now */
			s->is_flush_due = !was_due && c->is_dealloc_tag_due;
			return 0;
		}
	}
	wk_client_prep_ready0 = s->expect_ready;
	if (s->held.junk_cnt && !s->has_unsynced && wk_client_prep_junk_flush(s, out) < 0)
		return -1; /* a new request starts here: the Closes go first, on their own */
	if (UNLIKELY(g_cfg->prepared_statements_limit &&
		     s->held.cnt > (size_t)g_cfg->prepared_statements_limit) &&
	    !s->has_unsynced) {
		/* the last request prepared more than the limit: closed now, on their own */
		int rc = wk_client_prep_trim(s, out, (size_t)g_cfg->prepared_statements_limit);

		if (rc < 0 || (rc > 0 && wk_client_prep_sync(s, out) < 0))
			return -1;
	}
	/* this message's SETs and LISTENs end after the Closes' Sync */
	wk_client_prep_shift(c, s, h->type == PGW_MSG_QUERY || h->type == PGW_MSG_PARSE);
	if (h->type == PGW_MSG_QUERY) {
		if (wk_client_is_full(c)) {
			if (UNLIKELY(wk_server_is_unanswered(s)))
				s->is_ready_unsure = true; /* rewritten: not counted in msg_sent */
			return wk_client_prep_query(c, s, h, in, out);
		}
		if (!c->prep_names.cnt)
			return 0;
		/* extended: a DEALLOCATE of a statement the client prepared with a Parse */
		msg = evbuffer_pullup(in, (ev_ssize_t)pgw_msg_size(h));
		if (!msg)
			return -1;
		return wk_client_may_deallocate(c, msg + PGW_HDR_LEN, h->len - 4)
			       ? wk_client_prep_query(c, s, h, in, out)
			       : 0;
	}
	if (h->type != PGW_MSG_PARSE && h->type != PGW_MSG_BIND && h->type != PGW_MSG_DESCRIBE &&
	    h->type != PGW_MSG_CLOSE)
		return 0;
	msg = evbuffer_pullup(in, (ev_ssize_t)pgw_msg_size(h));
	if (!msg)
		return -1;
	body = (const char *)msg + PGW_HDR_LEN;
	blen = h->len - 4;
	switch (h->type) {
	case PGW_MSG_PARSE: {
		int rc = 0;

		n1 = wk_strnlen(body, blen);
		if (n1 >= blen)
			return 0;
		if (wk_client_is_full(c) ||
		    (n1 == 0 && wk_client_may_deallocate(c, msg + PGW_HDR_LEN + 1, blen - 1)))
			rc = wk_client_prep_parse_sql(c, s, body, blen, n1, out);
		if (rc == 0 && n1 > 0)
			rc = wk_client_prep_parse_named(c, s, msg, body, blen, n1, out);
		if (rc == 3)
			return WK_CLIENT_PREP_WAIT;
		/* 2: rewritten, and recorded as the client's unnamed statement */
		if (rc >= 0 && rc != 2 && n1 == 0 &&
		    wk_client_unnamed_parse(c, s, rc ? NULL : msg, pgw_msg_size(h)) < 0)
			return -1;
		if (rc <= 0)
			return rc;
		break;
	}
	case PGW_MSG_BIND:
		n1 = wk_strnlen(body, blen);
		if (n1 + 1 >= blen)
			return 0;
		n2 = wk_strnlen(body + n1 + 1, blen - n1 - 1);
		if (n1 + 1 + n2 >= blen)
			return 0;
		if (n2 == 0) {
			bool is_dup;

			if (wk_client_unnamed_is_unsure(s))
				return wk_client_wait_unsynced(s, out) < 0 ? -1
									   : WK_CLIENT_PREP_WAIT;
			/*
			 * Its SQL PREPARE run again (the name is the client's): the
			 * throwaway it prepares must exist for PostgreSQL's 42P05,
			 * made again when pgdog has closed it or on another server
			 */
			is_dup =
				UNLIKELY(c->sql_kind != WK_SQL_NONE) && c->unnamed_id &&
				c->sql_id == c->unnamed_id &&
				(c->sql_kind == WK_SQL_PREPARE ? c->unnamed_setting
							       : c->sql_kind == WK_SQL_PREPARE_DUP);
			/* whether its name is taken depends on answers not in yet */
			if (is_dup &&
			    wk_prep_names_is_pending(&c->prep_names, c->sql_name, s->syncs_cnt))
				return wk_client_wait_answer(s, out) < 0 ? -1 : WK_CLIENT_PREP_WAIT;
			/*
			 * A name the client has: the statement that makes
			 * PostgreSQL's 42P05 must be there (closed after each
			 * request, and another server has none)
			 */
			is_dup = is_dup && wk_prep_names_get(&c->prep_names, c->sql_name);
			/*
			 * Not a name the client has: its Execute makes the
			 * throwaway under the statement's text, closed when the
			 * next request starts (one flushed since its Parse would
			 * be left there, and the Parse that makes a later 42P05
			 * would fail first)
			 */
			if (UNLIKELY(c->sql_kind == WK_SQL_PREPARE) && !is_dup && c->unnamed_id &&
			    c->sql_id == c->unnamed_id && c->unnamed_setting &&
			    !wk_prep_junk_has(&s->held, c->sql_junk) &&
			    wk_prep_junk_add(&s->held, c->sql_junk) < 0)
				return -1;
			if (UNLIKELY(c->unnamed_pins))
				wk_client_pin_by(c, c->unnamed_pins); /* it runs again */
			if (wk_client_unnamed_setting(c, body, n1) < 0 ||
			    (is_dup && wk_client_prep_dup_make_parse(s, out, c->sql_junk) < 0))
				return -1;
			return wk_client_unnamed_ensure(c, s, out);
		}
		/* what the name means depends on answers not in yet */
		if (wk_prep_names_is_pending(&c->prep_names, body + n1 + 1, s->syncs_cnt))
			return wk_client_wait_answer(s, out) < 0 ? -1 : WK_CLIENT_PREP_WAIT;
		p = wk_prep_names_get(&c->prep_names, body + n1 + 1);
		if (!p)
			return 0; /* PostgreSQL reports the unknown statement */
		if (p->is_stale) {
			if (wk_client_prep_stale(s, p, PGW_MSG_BIND, body, blen, n1, n2, out) < 0)
				return -1;
			break;
		}
		is_held = false;
		switch (wk_client_prep_verify(c, s, p, out)) {
		case 0:
			break;
		case 2:
			is_held = true;
			break;
		case 1:
			return WK_CLIENT_PREP_WAIT;
		default:
			return -1;
		}
		if (wk_client_prep_setting(c, p, body, n1) < 0)
			return -1;
		use = p;
		/* LISTEN/UNLISTEN, savepoint commands: pub/sub follows where they run */
		if (p->pubsub != WK_PREP_PUBSUB_NONE && !p->is_sql &&
		    g_cfg->pub_sub_channel_size > 0) {
			int rc = wk_pubsub_bind(c, p, &use);

			if (rc < 0)
				return -1;
			if (rc > 0 && !(c->pins & WK_PIN_LISTEN)) {
				/* a LISTEN on the server itself */
				wk_client_pin_by(c, WK_PIN_LISTEN);
				log_debug(&c->lctx, "named LISTEN not followed: server pinned");
			}
		}
		/* one look at what s holds per Bind: wk_client_prep_verify's */
		if ((use != p || !is_held) && wk_client_prep_ensure(c, s, use, out, false) < 0)
			return -1;
		pgw_buf_reset(b);
		if (wk_client_prep_bind_put(s, p, use->name, body, blen, n1, n2, b) < 0 ||
		    evbuffer_add(out, b->data, b->len) < 0)
			return -1;
		if (use == p) {
			wk_client_slot_use(s, p, WK_SLOT_PREP_USE);
			if (wk_client_slot_name(c, s, p, body + n1 + 1) < 0)
				return -1;
		}
		break;
	case PGW_MSG_DESCRIBE:
		if (blen >= 2 && body[0] == 'S' && body[1] == '\0') {
			if (wk_client_unnamed_is_unsure(s))
				return wk_client_wait_unsynced(s, out) < 0 ? -1
									   : WK_CLIENT_PREP_WAIT;
			return wk_client_unnamed_ensure(c, s, out);
		}
		if (blen < 2 || body[0] != 'S')
			return 0;
		n1 = wk_strnlen(body + 1, blen - 1);
		if (n1 >= blen - 1)
			return 0;
		if (wk_prep_names_is_pending(&c->prep_names, body + 1, s->syncs_cnt))
			return wk_client_wait_answer(s, out) < 0 ? -1 : WK_CLIENT_PREP_WAIT;
		p = wk_prep_names_get(&c->prep_names, body + 1);
		if (!p)
			return 0;
		if (p->is_stale) {
			if (wk_client_prep_stale(s, p, PGW_MSG_DESCRIBE, NULL, 0, 0, 0, out) < 0)
				return -1;
			break;
		}
		if (UNLIKELY(p->is_desc_live)) {
			if (wk_client_prep_describe_live(s, p, out) < 0)
				return -1;
			p->uses++;
			wk_prep_publish(p);
			break;
		}
		switch (wk_client_prep_verify(c, s, p, out)) {
		case 0:
			if (wk_client_prep_ensure(c, s, p, out, false) < 0)
				return -1;
			break;
		case 2:
			break;
		case 1:
			return WK_CLIENT_PREP_WAIT;
		default:
			return -1;
		}
		if (wk_client_put_stmt_msg(s, out, PGW_MSG_DESCRIBE, p->name, WK_SLOT_DESCRIBE_S,
					   false) < 0)
			return -1;
		wk_client_slot_use(s, p, WK_SLOT_PREP_USE);
		if (wk_client_slot_name(c, s, p, body + 1) < 0)
			return -1;
		p->uses++;
		wk_prep_publish(p);
		break;
	case PGW_MSG_CLOSE:
		if (blen >= 2 && body[0] == 'S' && body[1] == '\0') {
			/* skipped if an unanswered message before it fails: known first */
			if (UNLIKELY(s->has_unsynced) && wk_client_must_wait(s))
				return wk_client_wait_unsynced(s, out) < 0 ? -1
									   : WK_CLIENT_PREP_WAIT;
			wk_client_unnamed_drop(c, s);
			return 0;
		}
		if (blen < 2 || body[0] != 'S' || wk_strnlen(body + 1, blen - 1) >= blen - 1)
			return 0;
		/* a Close of it in flight: this one closes something only if that one is skipped */
		if (c->prep_names.dropping_cnt &&
		    wk_prep_names_is_dropping(&c->prep_names, body + 1))
			return wk_client_wait_answer(s, out) < 0 ? -1 : WK_CLIENT_PREP_WAIT;
		/*
		 * The statement stays prepared on servers for other clients:
		 * answered here; the name goes when pgdog answers, not if an
		 * earlier error makes PostgreSQL skip the Close
		 */
		p = wk_prep_names_drop_begin(&c->prep_names, body + 1);
		if (wk_server_slot_push(s, WK_SLOT_SYNTH_CLOSE, false, NULL) < 0)
			return -1;
		if (p) {
			struct wk_slot *sl = wk_client_slot_last(s);

			sl->prep = p;
			sl->prep_role = WK_SLOT_PREP_DROP;
			p->client_refs++;
		}
		break;
	default:
		return 0;
	}
	evbuffer_drain(in, pgw_msg_size(h));
	return 1;
}

/*
 * The first byte of a message's body: from msg (whole) when the caller has
 * it, else from the front of in; none when the body is empty.
 */
static ALWAYS_INLINE uint8_t
wk_client_body_byte0(const struct pgw_hdr *h, struct evbuffer *in, const uint8_t *msg, uint8_t none)
{
	struct evbuffer_ptr pos;
	uint8_t b = none;

	if (h->len <= 4)
		return none;
	if (msg)
		return msg[PGW_HDR_LEN];
	evbuffer_ptr_set(in, &pos, PGW_HDR_LEN, EVBUFFER_PTR_SET);
	(void)evbuffer_copyout_from(in, &pos, &b, 1);
	return b;
}

/*
 * The reply slot of a message forwarded as it is. msg is the whole message
 * when the caller has it (in the middle of a run), NULL when it is at the
 * front of in. -1 on out of memory.
 */
static ALWAYS_INLINE int
wk_client_slot(struct wk_server *s, const struct pgw_hdr *h, struct evbuffer *in,
	       const uint8_t *msg)
{
	uint8_t kind_byte = 0;

	switch (h->type) {
	case PGW_MSG_PARSE:
		if (wk_server_slot_push(s, WK_SLOT_PARSE, false, NULL) < 0)
			return -1;
		if (s->is_unnamed_tag_due)
			wk_client_slot_tag_unnamed(s);
		return 0;
	case PGW_MSG_BIND:
		if (wk_server_slot_push(s, WK_SLOT_BIND, false, NULL) < 0)
			return -1;
		if (UNLIKELY(s->client->is_sql_bind_due)) {
			/* the Bind of the client's SQL PREPARE: its Execute settles the name */
			struct wk_slot *sl = wk_client_slot_last(s);

			s->client->is_sql_bind_due = false;
			sl->prep = s->client->sql_prep;
			sl->prep_role = WK_SLOT_PREP_EXEC;
			sl->prep->client_refs++;
			/* the portal's name comes first */
			sl->is_unnamed_portal = wk_client_body_byte0(h, in, msg, 1) == '\0';
		}
		return 0;
	case PGW_MSG_CLOSE:
		return wk_server_slot_push(s, WK_SLOT_CLOSE, false, NULL);
	case PGW_MSG_DESCRIBE:
		kind_byte = wk_client_body_byte0(h, in, msg, 0);
		return wk_server_slot_push(
			s, kind_byte == 'P' ? WK_SLOT_DESCRIBE_P : WK_SLOT_DESCRIBE_S, false, NULL);
	case PGW_MSG_EXECUTE:
		if (wk_server_slot_push(s, WK_SLOT_EXECUTE, false, NULL) < 0)
			return -1;
		if (UNLIKELY(s->client->is_end_mark_due)) {
			s->client->is_end_mark_due = false;
			wk_client_slot_last(s)->is_end_mark = true;
		}
		return 0;
	case PGW_MSG_SYNC:
		if (UNLIKELY(wk_client_sync_is_copy(s)))
			return 0; /* PostgreSQL ignores it: no reply */
		return wk_server_slot_push(s, WK_SLOT_SYNC, false, NULL);
	case PGW_MSG_QUERY:
	case PGW_MSG_FUNCTION_CALL: {
		/* behind unsynced messages not answered (COPY): skipped if one of them fails */
		bool is_skippable = wk_server_is_unanswered(s);

		if (wk_server_slot_push(s, WK_SLOT_QUERY, false, NULL) < 0)
			return -1;
		wk_client_slot_last(s)->is_skippable = is_skippable;
		return 0;
	}
	default:
		return 0;
	}
}

/*
 * A tracked Bind or Describe that wk_client_prep() would leave as it is,
 * told from the whole message without looking anything up: a Bind of the
 * unnamed statement, a Describe of a portal or of the unnamed statement.
 * These join wk_client_forward()'s run; anything else goes to the front.
 */
static bool
wk_client_is_plain_msg(const struct pgw_hdr *h, const uint8_t *msg)
{
	return wk_client_is_unnamed_ref(h, msg) ||
	       (h->type == PGW_MSG_DESCRIBE && h->len - 4 >= 2 && msg[PGW_HDR_LEN] == 'P');
}

/*
 * wk_client_forward() reads the header after a run this long with
 * evbuffer_pullup() (a copy only when the run spans chains), a longer one
 * through a cursor.
 */
#define WK_CLIENT_RUN_PULLUP_MAX 4096

/*
 * Is a ReadyForQuery counted for a Query behind unsynced messages of s that
 * may be skipped, and not followed by slots? Tracked, the Query waited for
 * their answers (wk_client_prep) unless a COPY held them.
 */
static bool
wk_client_ready_may_skip(const struct wk_server *s)
{
	return !s->is_tracked || (g_cfg->prepared_statements == CONFIG_PREPARED_FULL &&
				  wk_client_slot_last(s)->is_skippable);
}

/*
 * A message of type goes to s as it is: the ReadyForQuery it will owe, the
 * request's clocks and the query counters.
 */
static ALWAYS_INLINE void
wk_client_msg_sent(struct wk_server *s, struct shm_client *r, struct shm_server *sr, uint8_t type)
{
	switch (type) {
	case PGW_MSG_QUERY:
		if (s->expect_ready == 0) {
			wk_client_request_start(s);
		}
		if (UNLIKELY(s->has_unsynced) && wk_client_ready_may_skip(s))
			s->is_ready_unsure = true;
		s->expect_ready++;
		s->syncs_since_exec = 0;
		s->is_copy_end_since_exec = false;
		s->is_last_exec_query = true;
		r->queries++;
		sr->queries++;
		r->last_request_us = g_wk.now_us;
		sr->request_us = g_wk.now_us;
		break;
	case PGW_MSG_FUNCTION_CALL:
		if (UNLIKELY(s->has_unsynced) && wk_client_ready_may_skip(s))
			s->is_ready_unsure = true;
		s->expect_ready++;
		break;
	case PGW_MSG_SYNC:
		if (UNLIKELY(wk_client_sync_is_copy(s)))
			break; /* PostgreSQL ignores it: no ReadyForQuery */
		if (s->expect_ready == 0 && !s->has_unsynced) {
			wk_client_request_start(s);
		}
		s->expect_ready++;
		s->has_unsynced = false;
		s->has_exec_unsynced = false;
		if (!s->is_copy_end_since_exec)
			s->syncs_since_exec++; /* taken back if the Execute starts a COPY FROM */
		else
			s->is_synced_after_copy_end = true;
		break;
	case PGW_MSG_COPY_DONE:
	case PGW_MSG_COPY_FAIL:
		s->is_copy_client_done = true;
		s->is_copy_end_since_exec = true;
		s->is_synced_after_copy_end = false;
		break;
	case PGW_MSG_EXECUTE:
		s->has_exec_unsynced = true;
		s->syncs_since_exec = 0;
		s->is_copy_end_since_exec = false;
		s->is_last_exec_query = false;
		r->queries++;
		sr->queries++;
		r->last_request_us = g_wk.now_us;
		sr->request_us = g_wk.now_us;
		s->has_unsynced = true;
		break;
	case PGW_MSG_PARSE:
	case PGW_MSG_BIND:
	case PGW_MSG_DESCRIBE:
	case PGW_MSG_CLOSE:
		if (s->expect_ready == 0 && !s->has_unsynced) {
			wk_client_request_start(s);
		}
		s->has_unsynced = true;
		break;
	default:
		break;
	}
}

/*
 * The end of a forwarding turn that moved bytes to s: pgdog's own replies
 * due, byte counters, and backpressure on the client when s's output is
 * long.
 */
static ALWAYS_INLINE enum wk_rc
wk_client_fwd_done(struct wk_client *c, struct wk_server *s, struct shm_client *r,
		   struct shm_server *sr, size_t moved)
{
	if (s->is_tracked && wk_server_emit_synth(s) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	if (!c->is_running && (s->expect_ready || s->has_unsynced))
		wk_client_running(c, true);
	r->bytes_received += moved;
	sr->bytes_sent += moved;
	wk_stats_add(s->pool, SHM_STAT_RECV, moved);
	if (!c->read_paused) {
		/*
		 * Its server's output is full, or its input is while its next
		 * message waits for an answer (is_verify_wait): PostgreSQL
		 * would not read either, so neither buffer grows without bound.
		 */
		if (evbuffer_get_length(s->io.out) > WK_BACKPRESSURE_BYTES ||
		    UNLIKELY(s->is_verify_wait &&
			     evbuffer_get_length(c->io.in) > WK_BACKPRESSURE_BYTES)) {
			c->read_paused = true;
			wk_stream_read_off(&c->io);
		}
	} else if (evbuffer_get_length(s->io.out) <= WK_STREAM_DRAINED_BYTES &&
		   (!s->is_verify_wait ||
		    evbuffer_get_length(c->io.in) <= WK_STREAM_DRAINED_BYTES)) {
		/* paused for its input, which moves on now: no drain of s to wait for */
		wk_client_unpause(c);
	}
	return WK_OK;
}

/* Move the run of bytes wk_client_forward() has passed over to the server's output. */
static void
wk_client_fwd_flush(struct wk_client *c, struct wk_server *s, size_t *run)
{
	if (*run) {
		wk_stream_take(&s->io, &c->io, *run);
		*run = 0;
	}
}

/* Is a message of this type one PostgreSQL skips after an error, up to the next Sync? */
static bool
wk_client_is_skipped(uint8_t type)
{
	switch (type) {
	case PGW_MSG_PARSE:
	case PGW_MSG_BIND:
	case PGW_MSG_DESCRIBE:
	case PGW_MSG_CLOSE:
	case PGW_MSG_EXECUTE:
	case PGW_MSG_FLUSH:
	case PGW_MSG_QUERY:
	case PGW_MSG_FUNCTION_CALL:
		return true;
	default:
		return false;
	}
}

/* Session traffic: client bytes to its server, headers read on the way. */
/*
 * A message type PostgreSQL takes after login. It reads nothing else: any
 * other type gets FATAL 08P01 (CopyData, CopyDone and CopyFail outside a
 * COPY are read and ignored, so they pass).
 */
static bool
wk_client_is_msg_type(uint8_t t)
{
	switch (t) {
	case PGW_MSG_QUERY:
	case PGW_MSG_PARSE:
	case PGW_MSG_BIND:
	case PGW_MSG_EXECUTE:
	case PGW_MSG_DESCRIBE:
	case PGW_MSG_CLOSE:
	case PGW_MSG_SYNC:
	case PGW_MSG_FLUSH:
	case PGW_MSG_FUNCTION_CALL:
	case PGW_MSG_TERMINATE:
	case PGW_MSG_COPY_DATA:
	case PGW_MSG_COPY_DONE:
	case PGW_MSG_COPY_FAIL:
		return true;
	default:
		return false;
	}
}

/*
 * A FunctionCall (PQfn) runs a function by its oid: pgdog does not see what
 * it does (set_config, an advisory lock, anything), so it pins the server
 * as the SQL that does those would, unless it is one of the large-object
 * functions libpq's lo_* API calls this way, whose descriptors last one
 * transaction. Reads the oid at the front of in (h is its header); false
 * while it has not all come.
 */
static bool
wk_client_function_call(struct wk_client *c, const struct pgw_hdr *h, struct evbuffer *in)
{
	static const uint32_t lo_oids[] = { 715, 952, 953,  954,  955,  956, 957,
					    958, 964, 1004, 3170, 3171, 3172 };
	uint8_t b[PGW_HDR_LEN + 4];
	uint32_t oid;

	if (h->len < 8)
		return true; /* PostgreSQL refuses it */
	if (evbuffer_copyout(in, b, sizeof(b)) != (ev_ssize_t)sizeof(b))
		return false;
	oid = (uint32_t)b[5] << 24 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 8 | b[8];
	for (size_t i = 0; i < sizeof(lo_oids) / sizeof(lo_oids[0]); i++)
		if (oid == lo_oids[i])
			return true;
	wk_client_pin_by(c, WK_PIN_FUNCTION);
	log_debug(&c->lctx, "function call (oid %u): server pinned to the client", oid);
	return true;
}

/* c's connection ends as end_due says (its replies are out, or none were owed). */
enum wk_rc
wk_client_end(struct wk_client *c)
{
	if (c->end_due == WK_END_BAD_TYPE)
		return wk_client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
				       "invalid frontend message type %d", c->end_type);
	return wk_client_close(c, NULL);
}

/*
 * A Terminate or a message of an invalid type at the front of c's input
 * while its server owes it replies: PostgreSQL reads that message only after
 * answering what came before, so the client gets those replies first and
 * nothing after it is read. Without replies owed the end comes now; so it
 * does after the replies to its synced requests when an extended-protocol
 * request without its Sync is last (its replies are not sent; the release
 * rolls it back, as PostgreSQL does). During COPY FROM STDIN an invalid
 * message ends the connection at once, as in PostgreSQL.
 */
static enum wk_rc
wk_client_end_at(struct wk_client *c, struct wk_server *s, uint8_t type)
{
	c->end_due = type == PGW_MSG_TERMINATE ? WK_END_TERMINATE : WK_END_BAD_TYPE;
	c->end_type = type;
	if (s && s->is_copy_in)
		return wk_client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
				       "unexpected message type 0x%02X during COPY from stdin",
				       type);
	/*
	 * Nothing owed to it: it goes now, also while pgdog's own queries run
	 * on its server (their replies are drained by the release; nothing
	 * else would end it once they are in). Unsure: the replies owed may
	 * never come.
	 */
	if (!s || s->expect_ready == 0 || s->is_ready_unsure)
		return wk_client_end(c);
	wk_client_read_stop(c);
	return WK_AGAIN;
}

static enum wk_rc
wk_client_forward(struct wk_client *c)
{
	struct wk_server *s = c->server;
	struct evbuffer *in = c->io.in;
	struct evbuffer *out = s->io.out;
	struct shm_client *r = wk_client_row(c);
	struct shm_server *sr = shm_server((uint32_t)g_wk.slot, s->row);
	size_t moved = 0;
	/*
	 * run: bytes at the front of in already looked at, going to out as they
	 * are, not moved yet. Execute and Sync join the run where they are;
	 * anything pgdog reads, rewrites or drops is handled at the front, so the
	 * run moves first. A pipeline's tail (Describe, Execute, Sync) then moves
	 * with one wk_stream_take(), usually a trade of buffers, instead of one
	 * partial-chain copy per message.
	 */
	size_t run = 0;
	struct wk_cursor cur;
	bool has_cur = false; /* cur matches in */
	/*
	 * in's length: only the front path (run == 0) drains or trades in, so
	 * while a run grows the length read when it began still holds.
	 */
	size_t in_len = 0;
	/* in's first chain, read in place while the run grows (0: not looked up) */
	const uint8_t *flat = NULL;
	size_t flat_len = 0;

	if (UNLIKELY(c->is_cancel_hold) && c->fwd_remaining == 0 && s->expect_ready == 0 &&
	    !s->has_unsynced && s->internal_ready == 0 && wk_client_cancel_due(c, s)) {
		/*
		 * A cancel is still on its way to s's backend: PostgreSQL signals
		 * it twice (its process, then its process group), and the second,
		 * late under load, would cancel this new request. It goes once the
		 * cancel has arrived (wk_client_cancel_unhold; one sent by another
		 * worker is seen here at once, or by the sweep).
		 */
		wk_client_read_stop(c);
		c->is_cancel_read_off = true;
		return WK_AGAIN;
	}
	/* whatever this adds to out goes to the socket when the callback ends */
	wk_stream_want_write(&s->io);
	for (;;) {
		struct pgw_hdr h;
		const uint8_t *msg = NULL;
		size_t avail;

		/* the next message waits for the server's answer (wk_client_prep_verify) */
		if (UNLIKELY(s->is_verify_wait))
			goto done;
		if (run == 0)
			in_len = evbuffer_get_length(in);
		avail = in_len - run;
		if (avail == 0)
			break;
		if (c->fwd_remaining) {
			size_t n = avail < c->fwd_remaining ? avail : c->fwd_remaining;

			run += n;
			c->fwd_remaining -= n;
			moved += n;
			continue;
		}
		if (run) {
			uint8_t hdr[PGW_HDR_LEN];
			const uint8_t *at = NULL;
			bool is_hdr_ok;

			if (avail < PGW_HDR_LEN)
				goto done;
			if (flat_len == 0) {
				flat_len = evbuffer_get_contiguous_space(in);
				flat = flat_len ? evbuffer_pullup(in, (ev_ssize_t)flat_len) : NULL;
				if (!flat)
					flat_len = 0;
			}
			if (run + PGW_HDR_LEN <= flat_len) {
				at = flat + run;
			} else if (run <= WK_CLIENT_RUN_PULLUP_MAX) {
				/* the run is mostly in the first chain already: no copy then */
				at = evbuffer_pullup(in, (ev_ssize_t)(run + PGW_HDR_LEN));
				flat_len = 0; /* the chains may have been merged */
				if (at)
					at += run;
			} else {
				if (!has_cur) {
					wk_cursor_init(&cur, in);
					has_cur = true;
				}
				if (wk_cursor_copy(&cur, run, hdr, PGW_HDR_LEN) == PGW_HDR_LEN)
					at = hdr;
			}
			if (!at)
				goto done;
			is_hdr_ok = wk_hdr_parse(at, &h) &&
				    h.len <= (uint32_t)g_cfg->max_message_len &&
				    !c->is_skip_to_sync;
			if (is_hdr_ok && (h.type == PGW_MSG_BIND || h.type == PGW_MSG_DESCRIBE)) {
				/*
				 * Untracked, nothing reads them; tracked, they join when
				 * whole in the first chains and left as they are.
				 */
				if (s->is_tracked && run <= WK_CLIENT_RUN_PULLUP_MAX &&
				    pgw_msg_size(&h) <= WK_CLIENT_RUN_PULLUP_MAX &&
				    avail >= pgw_msg_size(&h)) {
					if (run + pgw_msg_size(&h) <= flat_len) {
						at = flat + run;
					} else {
						at = evbuffer_pullup(
							in, (ev_ssize_t)(run + pgw_msg_size(&h)));
						flat_len = 0;
						if (at)
							at += run;
						has_cur = false;
					}
					/* a Bind may start or end a portal's SET (wk_client_bound_msg) */
					if (at && wk_client_is_plain_msg(&h, at) &&
					    !wk_client_is_unnamed_due(c, s, &h, at) &&
					    !wk_client_unnamed_is_unsure(s) &&
					    !(UNLIKELY(c->unnamed_setting || c->bound_cnt) &&
					      h.type == PGW_MSG_BIND))
						msg = at;
				}
				/* after an error the server skips them: dropped at the front */
				if ((s->is_tracked && (!msg || s->has_error_unsynced)) ||
				    wk_client_is_unnamed_watched(c, s) ||
				    (UNLIKELY(c->unnamed_setting || c->bound_cnt) &&
				     h.type == PGW_MSG_BIND)) {
					wk_client_fwd_flush(c, s, &run);
					in = c->io.in;
					out = s->io.out;
					has_cur = false;
					flat_len = 0;
					continue;
				}
			} else if (!is_hdr_ok ||
				   (h.type != PGW_MSG_EXECUTE && h.type != PGW_MSG_SYNC) ||
				   (h.type == PGW_MSG_EXECUTE &&
				    ((UNLIKELY(s->has_error_unsynced) && s->is_tracked) ||
				     UNLIKELY(c->bound_cnt)))) {
				/* to the front with it (errors are reported from there) */
				wk_client_fwd_flush(c, s, &run);
				in = c->io.in;
				out = s->io.out;
				has_cur = false;
				flat_len = 0;
				continue;
			}
		} else if (c->front_in == in && c->front_len == in_len) {
			/* wk_client_on_idle() has just read this header */
			h = c->front_hdr;
			c->front_in = NULL;
			has_cur = false;
			flat_len = 0;
		} else {
			has_cur = false; /* what follows may pull up or drain in */
			flat_len = 0;
			switch (wk_client_peek(c, &h, &msg)) {
			case WK_PEEK_MORE:
				goto done;
			case WK_PEEK_BAD_LEN:
				return WK_CLOSED; /* wk_client_peek closed c */
			default:
				break;
			}
		}
		if (c->is_skip_to_sync) {
			/* after a refused message: drop the rest of the request up to its Sync */
			if (avail < pgw_msg_size(&h))
				goto done;
			evbuffer_drain(in, pgw_msg_size(&h));
			if (h.type != PGW_MSG_SYNC)
				continue;
			c->is_skip_to_sync = false;
			if (wk_client_send_idle_ready(c) == WK_CLOSED)
				return WK_CLOSED;
			if (s->expect_ready == 0 && !s->has_unsynced && s->internal_ready == 0) {
				wk_client_detach(c);
				return wk_client_on_input(c);
			}
			continue;
		}
		if (UNLIKELY(h.type == PGW_MSG_TERMINATE || !wk_client_is_msg_type(h.type)) ||
		    UNLIKELY(c->end_due)) {
			if (c->end_due)
				goto done; /* its replies are still coming */
			if (wk_client_end_at(c, s, h.type) == WK_CLOSED)
				return WK_CLOSED;
			goto done;
		}
		if (UNLIKELY(s->has_error_unsynced) && s->is_tracked &&
		    wk_client_is_skipped(h.type)) {
			/*
			 * After an error PostgreSQL skips everything up to the next
			 * Sync, without a reply: so does pgdog, rather than answer,
			 * name or forget statements the server never sees.
			 */
			if (avail < pgw_msg_size(&h))
				goto done;
			evbuffer_drain(in, pgw_msg_size(&h));
			continue;
		}
		/* pub/sub: a Sync that may commit a LISTEN waits for the listener's */
		if (h.type == PGW_MSG_SYNC && UNLIKELY(c->pubsub != NULL) &&
		    wk_pubsub_sync_waits(c))
			goto done;
		/* messages pgdog reads must be whole first: wait for the rest */
		if ((h.type == PGW_MSG_QUERY || h.type == PGW_MSG_PARSE ||
		     ((h.type == PGW_MSG_BIND || h.type == PGW_MSG_DESCRIBE) &&
		      wk_client_is_unnamed_watched(c, s)) ||
		     (s->is_tracked && (h.type == PGW_MSG_BIND || h.type == PGW_MSG_DESCRIBE ||
					h.type == PGW_MSG_CLOSE)) ||
		     (UNLIKELY(c->unnamed_setting || c->bound_cnt) &&
		      (h.type == PGW_MSG_BIND || h.type == PGW_MSG_EXECUTE))) &&
		    avail < pgw_msg_size(&h))
			goto done;
		if ((h.type == PGW_MSG_QUERY || h.type == PGW_MSG_FUNCTION_CALL) &&
		    UNLIKELY(s->has_unsynced) && s->is_tracked && wk_client_must_wait(s)) {
			/*
			 * Behind unsynced messages not answered yet: PostgreSQL
			 * skips it if one of them fails. It waits for their
			 * answers (a Flush asks for them), so that pgdog knows
			 * whether it runs before following what it does: the
			 * unnamed statement it drops, a DEALLOCATE ALL, its SETs,
			 * its ReadyForQuery. Skipped, it is dropped above, as
			 * PostgreSQL drops it (has_error_unsynced).
			 */
			if (wk_client_wait_unsynced(s, out) < 0)
				return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
			goto done;
		}
		if (h.type == PGW_MSG_QUERY)
			wk_client_unnamed_drop(c, s);
		if ((h.type == PGW_MSG_QUERY || h.type == PGW_MSG_PARSE) &&
		    g_cfg->pub_sub_channel_size > 0) {
			/* LISTEN / UNLISTEN: pgdog's listener, at once or at COMMIT */
			bool is_handled;

			switch (wk_pubsub_client_query(c, &h, &is_handled)) {
			case WK_CLOSED:
				return WK_CLOSED;
			case WK_AGAIN:
				goto done; /* the rest of an extended-protocol request */
			default:
				break;
			}
			if (is_handled) {
				if (c->is_read_off)
					goto done;
				continue;
			}
		}
		if (UNLIKELY(h.type == PGW_MSG_FUNCTION_CALL) && !(c->pins & WK_PIN_FUNCTION) &&
		    !wk_client_is_session(c) && !wk_client_function_call(c, &h, in))
			goto done;
		wk_client_msg_ops0 = c->session.pending_cnt;
		if (h.type == PGW_MSG_QUERY || h.type == PGW_MSG_PARSE) {
			bool is_refused;

			if (wk_client_track(c, &h, in, NULL, &is_refused) == WK_CLOSED)
				return WK_CLOSED;
			if (is_refused) {
				if (c->is_skip_to_sync)
					continue;
				if (s->expect_ready == 0 && !s->has_unsynced &&
				    s->internal_ready == 0 && s->tx_status == 'I' && !c->pins) {
					wk_client_detach(c);
					return wk_client_on_input(c);
				}
				continue;
			}
		}
		wk_stats_client_msg(s->pool, h.type);
		if (!s->is_tracked && c->pooler_mode != CONFIG_POOLER_SESSION) {
			int rc = wk_client_unnamed_untracked(c, s, &h, in, out);

			if (rc < 0)
				return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
			if (rc > 0) {
				wk_client_msg_sent(s, r, sr, h.type);
				moved += pgw_msg_size(&h);
				continue;
			}
		}
		if (s->is_tracked && h.type != PGW_MSG_TERMINATE) {
			/* in the middle of a run only what wk_client_prep() leaves is let in */
			int rc = run ? 0 : wk_client_prep(c, s, &h, in, out);

			if (rc == WK_CLIENT_PREP_WAIT) {
				/* resumed by the server's reader (is_verify_resume) */
				if (s->expect_ready == 0 && !s->has_unsynced) {
					wk_client_request_start(s);
				}
				s->has_unsynced = true;
				goto done;
			}
			if (rc < 0 ||
			    (rc == 0 && wk_client_slot(s, &h, in, run ? msg : NULL) < 0)) {
				wk_client_fwd_flush(c, s, &run);
				return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
			}
			if (rc > 0 && h.type == PGW_MSG_QUERY) {
				/* replaced; wk_client_prep counted the ReadyForQuery it is owed */
				r->queries++;
				sr->queries++;
				r->last_request_us = g_wk.now_us;
				sr->request_us = g_wk.now_us;
				continue;
			}
			if (rc > 0) {
				if (s->expect_ready == 0 && !s->has_unsynced) {
					wk_client_request_start(s);
				}
				s->has_unsynced = true;
				continue;
			}
		}
		wk_client_msg_sent(s, r, sr, h.type);
		if (avail >= pgw_msg_size(&h)) {
			/* whole: it joins the run now rather than on the next turn */
			run += pgw_msg_size(&h);
			moved += pgw_msg_size(&h);
			continue;
		}
		c->fwd_remaining = pgw_msg_size(&h);
	}
done:
	if (run) {
		/* the last move: sent from the input when it is all of it */
		wk_stream_take_last(&s->io, &c->io, run);
		run = 0;
	}
	if (UNLIKELY(s->is_flush_due)) {
		s->is_flush_due = false;
		if (wk_client_put_flush(s->io.out) < 0)
			return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	}
	if (wk_client_fwd_done(c, s, r, sr, moved) == WK_CLOSED)
		return WK_CLOSED;
	if (UNLIKELY(s->is_verify_resume) && c->server == s && evbuffer_get_length(c->io.in)) {
		/* what the waiting message needed was answered by pgdog itself */
		s->is_verify_resume = false;
		return wk_client_forward(c);
	}
	return WK_OK;
}

/*
 * The request in buf is one wk_client_read_flat() takes: one whole simple
 * Query, or whole extended-protocol messages that pgdog passes as they are
 * (the unnamed statement, portals; what wk_client_prep() would leave alone)
 * ending with a Sync.
 */
static bool
wk_client_is_flat_request(const uint8_t *buf, size_t len)
{
	size_t off = 0;

	while (len - off >= PGW_HDR_LEN) {
		const uint8_t *msg = buf + off;
		struct pgw_hdr h;

		if (!wk_hdr_parse(msg, &h) || h.len > (uint32_t)g_cfg->max_message_len ||
		    pgw_msg_size(&h) > len - off)
			return false;
		off += pgw_msg_size(&h);
		switch (h.type) {
		case PGW_MSG_QUERY:
			return off == len && msg == buf;
		case PGW_MSG_SYNC:
			return off == len;
		case PGW_MSG_PARSE:
			if (h.len < 5 || msg[PGW_HDR_LEN] != '\0')
				return false;
			break;
		case PGW_MSG_BIND:
			if (!wk_client_bind_names(&h, msg, NULL, NULL))
				return false;
			break;
		case PGW_MSG_DESCRIBE:
			if (!wk_client_is_plain_msg(&h, msg))
				return false;
			break;
		case PGW_MSG_EXECUTE:
			break;
		default:
			return false;
		}
	}
	return false;
}

/*
 * The lengths of a Bind's portal and statement names (*n1, *n2 when not
 * NULL); false when either is not terminated inside the message.
 */
static bool
wk_client_bind_names(const struct pgw_hdr *h, const uint8_t *msg, size_t *n1, size_t *n2)
{
	const char *body = (const char *)msg + PGW_HDR_LEN;
	size_t blen = h->len - 4, a = wk_strnlen(body, blen), b;

	if (a + 1 >= blen)
		return false;
	b = wk_strnlen(body + a + 1, blen - a - 1);
	if (a + 1 + b >= blen)
		return false;
	if (n1)
		*n1 = a;
	if (n2)
		*n2 = b;
	return true;
}

/*
 * Requests this long at most are rebuilt in one buffer by
 * wk_client_read_flat() when a Bind names a prepared statement; longer
 * ones take the general path.
 */
#define WK_CLIENT_FLAT_REBUILD_MAX 8192

/*
 * A request rebuilt by wk_client_read_flat() (per worker: the loop is
 * single-threaded). Not g_wk.scratch: what runs while it is built may use
 * that one.
 */
static struct pgw_buf wk_client_flat_buf;
static bool wk_client_is_flat_buf_init;

/* Named Binds wk_client_read_flat() rewrites in one request, at most; more take the general path. */
#define WK_CLIENT_FLAT_BINDS_MAX 8

/*
 * After the check-out: the Binds of named statements in the request can be
 * rewritten here, each a statement the client prepared and s holds already
 * (otherwise the general path prepares it first, or reports the unknown
 * name). preps[] gets their statements in order, *cnt how many.
 */
static bool
wk_client_flat_binds_ready(struct wk_client *c, struct wk_server *s, const uint8_t *buf, size_t len,
			   struct wk_prep **preps, size_t *cnt)
{
	bool has_parse = false;

	*cnt = 0;
	for (size_t off = 0; off < len;) {
		const uint8_t *msg = buf + off;
		struct pgw_hdr h;
		size_t n1, n2;
		struct wk_prep *p;

		(void)wk_hdr_parse(msg, &h);
		off += pgw_msg_size(&h);
		if (h.type == PGW_MSG_PARSE) {
			const char *text = (const char *)msg + PGW_HDR_LEN + 1;

			has_parse = true; /* of the unnamed statement, which the rest uses */
			/*
			 * DEALLOCATE of a protocol-level statement: wk_client_prep_parse_sql();
			 * a DISCARD ALL or DEALLOCATE ALL run here would drop the
			 * statements of preps (wk_client_bound_msg)
			 */
			if (wk_client_text_may_drop(text, h.len - 4 - 1))
				return false;
		} else if (!has_parse && (h.type == PGW_MSG_BIND || h.type == PGW_MSG_DESCRIBE) &&
			   (wk_client_is_unnamed_due(c, s, &h, msg) ||
			    (c->unnamed_setting && h.type == PGW_MSG_BIND))) {
			/* the general path prepares it first, or renames it, or follows its SET */
			return false;
		}
		if (!s->is_tracked || h.type != PGW_MSG_BIND)
			continue; /* untracked: named statements pass as they are */
		(void)wk_client_bind_names(&h, msg, &n1, &n2);
		if (n2 == 0)
			continue;
		p = wk_prep_names_get(&c->prep_names, (const char *)msg + PGW_HDR_LEN + n1 + 1);
		if (!p || p->is_stale || !wk_prep_held_has(&s->held, p) ||
		    len > WK_CLIENT_FLAT_REBUILD_MAX || *cnt == WK_CLIENT_FLAT_BINDS_MAX ||
		    (p->setting != WK_PREP_SETTING_NONE &&
		     (p->setting != WK_PREP_SETTING_END || c->session.pending_cnt)) ||
		    c->prep_names.has_alias)
			return false;
		preps[(*cnt)++] = p;
	}
	return true;
}

/*
 * wk_stream's on_flat: a client between transactions whose read is one
 * whole request (wk_client_is_flat_request: a simple Query, or an
 * extended-protocol request of unnamed statements and portals) takes an idle server and sends the request
 * from the worker's read buffer, with what wk_client_on_idle() and
 * wk_client_forward() do for it, but without the input evbuffer (its add,
 * peeks, pull-ups and drain cost about as much as the rest); Binds of named
 * statements the server holds are rebuilt with pgdog's names in one buffer.
 * Anything less common (a queue, pub/sub, statement mode,
 * prepared_statements = full, a statement the server does not hold yet, a
 * partial message) returns 0: the general path then sees the bytes in the
 * input buffer.
 */
static size_t
wk_client_read_flat(void *arg, const uint8_t *buf, size_t len)
{
	struct wk_client *c = arg;
	struct wk_server *s;
	struct shm_client *r;
	struct shm_server *sr;
	struct wk_prep *preps[WK_CLIENT_FLAT_BINDS_MAX];
	size_t preps_cnt, k = 0;
	bool is_refused = false;

	if ((buf[0] != PGW_MSG_QUERY && buf[0] != PGW_MSG_PARSE && buf[0] != PGW_MSG_BIND) ||
	    c->state != WK_CLIENT_IDLE || c->is_read_off || c->read_paused || c->cancel_skip ||
	    c->drop_remaining || !c->pool || g_wk.is_shutting_down ||
	    g_cfg->pub_sub_channel_size > 0 || c->pooler_mode == CONFIG_POOLER_STATEMENT ||
	    wk_client_is_full(c) || !wk_pool_is_checkout_now(c->pool) ||
	    !wk_client_is_flat_request(buf, len))
		return 0;
	/* a DEALLOCATE of a protocol-level statement is pgdog's (wk_client_answer_deallocate) */
	if (buf[0] == PGW_MSG_QUERY &&
	    wk_client_may_deallocate(c, buf + PGW_HDR_LEN, len - PGW_HDR_LEN))
		return 0;
	wk_clock_update();
	c->last_request_us = g_wk.mono_us;
	/* links c to an idle server at once (wk_pool_is_checkout_now) */
	if (wk_pool_checkout(c->pool, c) == WK_CLOSED || c->state != WK_CLIENT_ACTIVE || !c->server)
		return WK_STREAM_FLAT_GONE; /* closed: its request goes with it */
	s = c->server;
	/*
	 * Linked, and the request still in the read buffer: 0 hands it to the
	 * general path (wk_client_forward() on the input buffer) from here.
	 */
	if (s->is_seq_foreign && !wk_client_is_session(c)) {
		struct pgw_hdr h;

		if (wk_hdr_parse(buf, &h) && wk_client_msg_reads_seq(c, &h, buf)) {
			/* behind pgdog's DISCARD SEQUENCES (see wk_client_attach) */
			if (wk_client_discard_sequences(s) < 0) {
				(void)wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
				return WK_STREAM_FLAT_GONE;
			}
			return 0;
		}
	}
	if (!wk_client_flat_binds_ready(c, s, buf, len, preps, &preps_cnt))
		return 0;
	r = wk_client_row(c);
	sr = shm_server((uint32_t)g_wk.slot, s->row);
	if (preps_cnt) {
		if (!wk_client_is_flat_buf_init) {
			pgw_buf_init(&wk_client_flat_buf);
			wk_client_is_flat_buf_init = true;
		}
		pgw_buf_reset(&wk_client_flat_buf);
	}
	/* the Closes that were due go first (what wk_client_prep() does at a request's start) */
	if (s->is_tracked && s->held.junk_cnt && !s->has_unsynced &&
	    wk_client_prep_junk_flush(s, s->io.out) < 0)
		goto oom;
	for (size_t off = 0; off < len;) {
		const uint8_t *msg = buf + off;
		struct pgw_hdr h;
		size_t n1, n2;

		(void)wk_hdr_parse(msg, &h); /* checked by wk_client_is_flat_request */
		off += pgw_msg_size(&h);
		/* not statement mode: nothing is refused (and drained from the input) */
		if ((h.type == PGW_MSG_QUERY || h.type == PGW_MSG_PARSE) &&
		    wk_client_track(c, &h, NULL, msg, &is_refused) == WK_CLOSED)
			return WK_STREAM_FLAT_GONE;
		if (h.type == PGW_MSG_QUERY)
			wk_client_unnamed_drop(c, s);
		else if (h.type == PGW_MSG_PARSE &&
			 wk_client_unnamed_parse(c, s,
						 s->is_tracked || c->unnamed_setting ? msg : NULL,
						 pgw_msg_size(&h)) < 0)
			goto oom;
		else if (h.type == PGW_MSG_BIND && (c->unnamed_setting || c->unnamed_pins) &&
			 wk_client_bind_names(&h, msg, &n1, &n2) && n2 == 0) {
			if (c->unnamed_pins)
				wk_client_pin_by(c, c->unnamed_pins); /* it runs again */
			if (c->unnamed_setting &&
			    wk_client_unnamed_setting(c, (const char *)msg + PGW_HDR_LEN, n1) < 0)
				goto oom;
		} else if (UNLIKELY(c->bound_cnt) &&
			   (h.type == PGW_MSG_BIND || h.type == PGW_MSG_EXECUTE) &&
			   wk_client_bound_msg(c, &h, msg) < 0) {
			goto oom;
		}
		wk_stats_client_msg(s->pool, h.type);
		if (preps_cnt && h.type == PGW_MSG_BIND &&
		    wk_client_bind_names(&h, msg, &n1, &n2) && n2 > 0) {
			/* to pgdog's name (wk_client_flat_binds_ready: prepared on s) */
			struct wk_prep *p = preps[k++];

			/* pub/sub is off here: no named LISTEN takes another statement's name */
			if (wk_client_prep_bind_put(s, p, p->name, (const char *)msg + PGW_HDR_LEN,
						    h.len - 4, n1, n2, &wk_client_flat_buf) < 0)
				goto oom;
			wk_client_slot_use(s, p, WK_SLOT_PREP_USE);
		} else {
			if (s->is_tracked && wk_client_slot(s, &h, NULL, msg) < 0)
				goto oom;
			if (preps_cnt)
				pgw_put_bytes(&wk_client_flat_buf, msg, pgw_msg_size(&h));
		}
		wk_client_msg_sent(s, r, sr, h.type);
	}
	if (preps_cnt) {
		if (wk_client_flat_buf.has_error ||
		    wk_stream_send(&s->io, wk_client_flat_buf.data, wk_client_flat_buf.len) < 0)
			goto oom;
	} else if (wk_stream_send(&s->io, buf, len) < 0) {
		goto oom;
	}
	(void)wk_client_fwd_done(c, s, r, sr, len);
	return WK_STREAM_FLAT_GONE;
oom:
	(void)wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	return WK_STREAM_FLAT_GONE;
}

/*
 * Nothing in res changes session state (transaction control is fine, but
 * not BEGIN in statement mode, which refuses it).
 */
static bool
wk_client_is_plain(const struct sql_result *res, bool is_statement_mode)
{
	if (!res->is_parsed)
		return true;
	if (res->flags || res->has_more || res->is_error)
		return false;
	for (size_t i = 0; i < res->stmts_cnt; i++) {
		switch (res->stmts[i].kind) {
		case SQL_BEGIN:
			if (is_statement_mode)
				return false;
			break;
		case SQL_OTHER:
		case SQL_COMMIT:
		case SQL_ROLLBACK:
		case SQL_SAVEPOINT:
		case SQL_RELEASE:
		case SQL_ROLLBACK_TO:
		case SQL_PREPARE_TX:
			break;
		default:
			return false;
		}
	}
	return true;
}

/*
 * prepared_statements = full, a client between transactions: a Query that is
 * one DEALLOCATE of a name it has, or DEALLOCATE ALL, only forgets its names
 * (the statements stay prepared on servers for others), so pgdog answers it
 * without a server; so are the errors PostgreSQL would give for a name the
 * client does not have (EXECUTE, DEALLOCATE: 26000) or already has (PREPARE:
 * 42P05). Returns 1 when answered, 0 when not such a Query, -1 on out of
 * memory.
 */
static int
wk_client_answer_deallocate(struct wk_client *c, struct evbuffer *in)
{
	struct pgw_buf *b = &g_wk.scratch;
	struct pgw_hdr h;
	const uint8_t *msg;
	const char *sql;
	struct sql_result res;
	const struct sql_stmt *st;

	if ((!wk_client_is_full(c) && !c->prep_names.cnt) ||
	    wk_conn_peek(in, (uint32_t)g_cfg->max_message_len, true, &h, &msg) != WK_PEEK_WHOLE ||
	    h.type != PGW_MSG_QUERY || !wk_query_is_wellformed(msg + PGW_HDR_LEN, h.len - 4))
		return 0;
	sql = (const char *)msg + PGW_HDR_LEN;
	if (!wk_client_is_full(c) && !wk_client_may_deallocate(c, msg + PGW_HDR_LEN, h.len - 4))
		return 0;
	if (wk_client_classify(c, sql, strnlen(sql, h.len - 4), &res) < 0)
		return -1;
	if (!res.is_parsed || res.is_error || res.has_more || res.stmts_cnt != 1 || res.flags)
		return 0;
	st = &res.stmts[0];
	pgw_buf_reset(b);
	if (!wk_client_is_full(c) && (st->kind != SQL_DEALLOCATE || st->is_truncated ||
				      !wk_prep_names_get(&c->prep_names, st->name)))
		return 0; /* extended: SQL PREPARE, EXECUTE and their DEALLOCATE go to a server */
	if (st->kind == SQL_DEALLOCATE_ALL) {
		wk_prep_names_clear(&c->prep_names);
		pgw_put_command_complete(b, "DEALLOCATE ALL");
	} else if (st->kind == SQL_DEALLOCATE && !st->is_truncated &&
		   wk_prep_names_get(&c->prep_names, st->name)) {
		wk_prep_names_del(&c->prep_names, st->name);
		pgw_put_command_complete(b, "DEALLOCATE");
	} else if (st->name_len && !st->is_truncated &&
		   (st->kind == SQL_EXECUTE || st->kind == SQL_DEALLOCATE ||
		    st->kind == SQL_PREPARE) &&
		   (wk_prep_names_get(&c->prep_names, st->name) != NULL) ==
			   (st->kind == SQL_PREPARE)) {
		char text[SQL_NAME_MAX + 64];

		snprintf(text, sizeof(text), "prepared statement \"%s\" %s", st->name,
			 st->kind == SQL_PREPARE ? "already exists" : "does not exist");
		pgw_put_error(b, false, "ERROR",
			      st->kind == SQL_PREPARE ? SQLSTATE_DUPLICATE_PSTATEMENT
						      : SQLSTATE_INVALID_SQL_STATEMENT_NAME,
			      text, NULL, NULL);
		wk_client_row(c)->errors++;
	} else {
		return 0;
	}
	pgw_put_ready(b, 'I');
	evbuffer_drain(in, pgw_msg_size(&h));
	if (wk_conn_send(&c->io, b) < 0)
		return -1;
	wk_client_unnamed_drop(c, NULL); /* as a simple Query does in PostgreSQL */
	wk_client_row(c)->queries++;
	log_noise(&c->lctx, "DEALLOCATE answered without a server");
	return 1;
}

/* Does a Parse in buf[0, end) (whole messages) name the statement name? */
static bool
wk_client_request_parses(const uint8_t *buf, size_t end, const char *name)
{
	for (size_t off = 0; off < end;) {
		struct pgw_hdr h;

		if (pgw_read_header(buf + off, PGW_HDR_LEN, &h) != 1)
			return true;
		if (h.type == PGW_MSG_PARSE &&
		    strcmp((const char *)buf + off + PGW_HDR_LEN, name) == 0)
			return true;
		off += pgw_msg_size(&h);
	}
	return false;
}

/*
 * Transaction mode, prepared_statements = extended: a client between
 * transactions that only prepares or closes named statements up to a Sync
 * (what PQprepare sends) needs no server when PostgreSQL has accepted each
 * statement before and none changes session state: pgdog answers
 * ParseComplete / CloseComplete and ReadyForQuery itself. This also keeps a
 * client that prepares synchronously from waiting for a server another of
 * its connections holds. Returns 1 when answered, 0 when a server is
 * needed, WK_CLIENT_ANSWER_MORE when the rest of the request has not come,
 * -1 on out of memory.
 */
static int
wk_client_answer_locally(struct wk_client *c)
{
	struct evbuffer *in = c->io.in;
	size_t avail = evbuffer_get_length(in), off = 0, end = 0;
	const uint8_t *buf;
	struct pgw_buf *b = &g_wk.scratch;
	struct wk_cursor cur;

	if (wk_client_is_session(c) || g_cfg->prepared_statements == CONFIG_PREPARED_DISABLED)
		return 0;
	switch (wk_client_answer_deallocate(c, in)) {
	case 0:
		break;
	case 1:
		return 1;
	default:
		return -1;
	}
	/*
	 * A request opening with a Parse of the unnamed statement (the extended
	 * protocol's usual one) always goes to a server: say so before scanning
	 * (the caller has seen a whole header).
	 */
	buf = evbuffer_pullup(in, avail > PGW_HDR_LEN ? PGW_HDR_LEN + 1 : PGW_HDR_LEN);
	if (!buf)
		return -1;
	if (buf[0] == PGW_MSG_PARSE && (avail == PGW_HDR_LEN || buf[PGW_HDR_LEN] == '\0'))
		return avail == PGW_HDR_LEN ? WK_CLIENT_ANSWER_MORE : 0;
	/*
	 * scan: only whole Parse/Close messages ending with a Sync; one cut by
	 * the end of what has come waits for the rest (a read may end
	 * anywhere), up to WK_CLIENT_WAIT_INPUT_MAX
	 */
	wk_cursor_init(&cur, in);
	while (!end) {
		uint8_t hdr[PGW_HDR_LEN];
		struct pgw_hdr h;

		if (off + PGW_HDR_LEN > avail)
			return avail < WK_CLIENT_WAIT_INPUT_MAX ? WK_CLIENT_ANSWER_MORE : 0;
		if (wk_cursor_copy(&cur, off, hdr, PGW_HDR_LEN) != PGW_HDR_LEN ||
		    pgw_read_header(hdr, PGW_HDR_LEN, &h) != 1 || h.len > 65536)
			return 0;
		if (off + pgw_msg_size(&h) > avail)
			return avail < WK_CLIENT_WAIT_INPUT_MAX ? WK_CLIENT_ANSWER_MORE : 0;
		if (h.type == PGW_MSG_SYNC)
			end = off + pgw_msg_size(&h);
		else if (h.type != PGW_MSG_PARSE && h.type != PGW_MSG_CLOSE)
			return 0;
		off += pgw_msg_size(&h);
	}
	buf = evbuffer_pullup(in, (ev_ssize_t)end);
	if (!buf)
		return -1;
	for (off = 0; off < end;) {
		struct pgw_hdr h;
		const char *body = (const char *)buf + off + PGW_HDR_LEN;
		size_t blen, n;

		if (pgw_read_header(buf + off, PGW_HDR_LEN, &h) != 1)
			return 0;
		blen = h.len - 4;
		n = wk_strnlen(body, blen);
		if (h.type == PGW_MSG_PARSE) {
			struct wk_prep *p;
			struct sql_result res;
			const char *sql = body + n + 1;

			if (n == 0 || n >= blen)
				return 0;
			if (wk_prep_names_get(&c->prep_names, body) ||
			    wk_client_request_parses(buf, off, body))
				return 0; /* 42P05 comes from a server, in its place */
			p = wk_prep_register_std((const uint8_t *)body, blen, n,
						 wk_client_text_is_std(c, sql, blen - n - 1));
			if (!p)
				return -1;
			if (!p->is_valid)
				return 0;
			if (wk_client_classify(c, sql, wk_strnlen(sql, blen - n - 1), &res) < 0)
				return -1;
			if (!wk_client_is_plain(&res, c->pooler_mode == CONFIG_POOLER_STATEMENT))
				return 0; /* it may change the session: let a server see it */
		} else if (h.type == PGW_MSG_CLOSE) {
			if (blen < 2 || body[0] != 'S' ||
			    wk_strnlen(body + 1, blen - 1) >= blen - 1 || body[1] == '\0')
				return 0;
		}
		off += pgw_msg_size(&h);
	}
	/* answer */
	pgw_buf_reset(b);
	for (off = 0; off < end;) {
		struct pgw_hdr h;
		const char *body = (const char *)buf + off + PGW_HDR_LEN;

		if (pgw_read_header(buf + off, PGW_HDR_LEN, &h) != 1)
			return -1; /* scanned above: cannot happen */
		if (h.type == PGW_MSG_PARSE) {
			size_t n = strlen(body);
			struct wk_prep *p = wk_prep_register_std(
				(const uint8_t *)body, h.len - 4, n,
				wk_client_text_is_std(c, body + n + 1, h.len - 4 - n - 1));

			if (!p || wk_prep_names_put(&c->prep_names, body, p) < 0)
				return -1;
			pgw_begin(b, PGW_MSG_PARSE_COMPLETE);
			pgw_end(b);
		} else if (h.type == PGW_MSG_CLOSE) {
			wk_prep_names_del(&c->prep_names, body + 1);
			pgw_begin(b, PGW_MSG_CLOSE_COMPLETE);
			pgw_end(b);
		} else {
			pgw_put_ready(b, 'I');
		}
		off += pgw_msg_size(&h);
	}
	evbuffer_drain(in, end);
	if (wk_conn_send(&c->io, b) < 0)
		return -1;
	log_noise(&c->lctx, "prepared statements answered without a server");
	return 1;
}

/* Drop what a cancel in the queue left of c's request (wk_client_cancel_wait). */
static enum wk_rc
wk_client_skip_cancelled(struct wk_client *c)
{
	struct evbuffer *in = c->io.in;

	while (c->cancel_skip) {
		struct pgw_hdr h;
		const uint8_t *msg = NULL;
		bool is_last;
		enum wk_rc rc;

		rc = wk_client_peek_rc(c, &h, &msg);
		if (rc != WK_OK)
			return rc;
		if (evbuffer_get_length(in) < pgw_msg_size(&h))
			return WK_AGAIN;
		evbuffer_drain(in, pgw_msg_size(&h));
		/* as PostgreSQL, which skips even a Terminate while it looks for the Sync */
		is_last = c->cancel_skip == WK_CANCEL_SKIP_ONE || h.type == PGW_MSG_SYNC;
		if (is_last) {
			c->cancel_skip = 0;
			if (wk_client_send_idle_ready(c) == WK_CLOSED)
				return WK_CLOSED;
		}
	}
	return evbuffer_get_length(in) ? wk_client_on_idle(c) : WK_OK;
}

/* Logged in, no server: the first request takes one from the pool. */
static enum wk_rc
wk_client_on_idle(struct wk_client *c)
{
	struct evbuffer *in = c->io.in;
	struct pgw_hdr h;
	const uint8_t *msg = NULL;
	enum wk_rc checkout_rc, rc;

again:
	if (UNLIKELY(wk_client_hold_for_output(c)))
		return WK_AGAIN;
	if (UNLIKELY(c->cancel_skip))
		return wk_client_skip_cancelled(c);
	for (;;) {
		if (UNLIKELY(c->drop_remaining)) {
			size_t n = evbuffer_get_length(in);

			if (n > c->drop_remaining)
				n = c->drop_remaining;
			evbuffer_drain(in, n);
			c->drop_remaining -= n;
			if (c->drop_remaining)
				return WK_AGAIN;
		}
		rc = wk_client_peek_rc(c, &h, &msg);
		if (rc != WK_OK)
			return rc;
		if (LIKELY(h.type != PGW_MSG_COPY_DATA && h.type != PGW_MSG_COPY_DONE &&
			   h.type != PGW_MSG_COPY_FAIL))
			break;
		/*
		 * Outside a COPY (the rest of one that failed, say): PostgreSQL
		 * drops them without a reply, and so does pgdog, without taking a
		 * server for them (as they come: a CopyData may be large).
		 */
		c->drop_remaining = pgw_msg_size(&h);
	}
	if (h.type == PGW_MSG_TERMINATE || !wk_client_is_msg_type(h.type))
		return wk_client_end_at(c, NULL, h.type);
	if (g_wk.is_shutting_down)
		return wk_client_fatal(c, SQLSTATE_ADMIN_SHUTDOWN,
				       "terminating connection due to administrator command");
	if (g_cfg->pub_sub_channel_size > 0) {
		/* LISTEN / UNLISTEN alone between transactions: pgdog's listener serves it */
		bool is_handled;

		rc = wk_pubsub_client_query(c, &h, &is_handled);
		if (rc != WK_OK)
			return rc;
		if (is_handled) {
			if (h.type == PGW_MSG_QUERY)
				wk_client_unnamed_drop(c, NULL); /* as a simple Query does */
			if (c->is_read_off || !evbuffer_get_length(in))
				return WK_OK;
			goto again;
		}
	}
	/*
	 * only a request that starts with Parse, Close or Sync can be answered
	 * here, or a Query (DEALLOCATE) of a client with prepared statements
	 */
	switch (h.type == PGW_MSG_PARSE || h.type == PGW_MSG_CLOSE || h.type == PGW_MSG_SYNC ||
				(h.type == PGW_MSG_QUERY &&
				 (wk_client_is_full(c) || c->prep_names.cnt))
			? wk_client_answer_locally(c)
			: 0) {
	case 1:
		/* more may follow (a loop: thousands of Syncs may have come in one read) */
		if (!evbuffer_get_length(in))
			return WK_OK;
		goto again;
	case WK_CLIENT_ANSWER_MORE:
		return WK_AGAIN;
	case -1:
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	default:
		break;
	}
	/* to ACTIVE at once when a server is idle, else to WAIT_SERVER in the queue */
	c->front_hdr = h;
	c->front_in = in;
	c->front_len = evbuffer_get_length(in);
	checkout_rc = wk_pool_checkout(c->pool, c);
	c->front_in = NULL; /* c is freed after the callback only: still writable */
	if (checkout_rc == WK_CLOSED)
		return WK_CLOSED;
	/*
	 * Still queued: reading stays on (two epoll_ctl calls per queued request
	 * saved) until the input grows past WK_CLIENT_WAIT_INPUT_MAX
	 * (wk_client_on_input). A client that leaves meanwhile is seen at once:
	 * it leaves the queue, and its request, which no server has seen, is
	 * dropped (no one is left to read its answer).
	 */
	return WK_OK;
}

static enum wk_rc
wk_client_on_input(struct wk_client *c)
{
	switch (c->state) {
	case WK_CLIENT_STARTUP: {
		enum wk_rc rc = wk_client_on_startup(c);

		/* a password or SASL message sent in the same write as the StartupMessage */
		if (rc != WK_CLOSED && c->state == WK_CLIENT_AUTH && evbuffer_get_length(c->io.in))
			return wk_client_on_input(c);
		return rc;
	}
	case WK_CLIENT_AUTH: {
		enum wk_rc rc;

		/* a client may send its next message before we answer: loop */
		do {
			rc = wk_client_on_auth(c);
		} while (rc == WK_OK && c->state == WK_CLIENT_AUTH &&
			 evbuffer_get_length(c->io.in) > 0);
		if (rc == WK_OK && c->state != WK_CLIENT_AUTH && c->state != WK_CLIENT_CLOSING &&
		    evbuffer_get_length(c->io.in) > 0 && c->state != WK_CLIENT_LOGIN_WAIT)
			return wk_client_on_input(c);
		return rc;
	}
	case WK_CLIENT_IDLE:
		return wk_client_on_idle(c);
	case WK_CLIENT_ACTIVE:
		return wk_client_forward(c);
	case WK_CLIENT_ADMIN:
		return wk_admin_on_input(c);
	case WK_CLIENT_WAIT_SERVER:
		/* bytes wait in the input buffer until a server is linked (attach reads again) */
		if (evbuffer_get_length(c->io.in) > WK_CLIENT_WAIT_INPUT_MAX)
			wk_client_read_stop(c);
		return WK_AGAIN;
	case WK_CLIENT_LOGIN_WAIT:
		return WK_AGAIN; /* reading is off */
	default:
		evbuffer_drain(c->io.in, evbuffer_get_length(c->io.in));
		return WK_CLOSED;
	}
}

enum wk_rc
wk_client_resume_input(struct wk_client *c)
{
	return wk_client_on_input(c);
}

static void
wk_client_read_cb(void *arg)
{
	struct wk_client *c = arg;

	wk_clock_update();
	c->last_request_us = g_wk.mono_us;
	(void)wk_client_on_input(c);
}

static void
wk_client_write_cb(void *arg)
{
	struct wk_client *c = arg;

	/* our output drained below the mark: the server may send again */
	if (c->server && c->server->read_paused)
		wk_server_resume(c->server);
	if (UNLIKELY(c->is_out_full)) {
		/* and the client's own requests may be read again (wk_client_on_idle) */
		c->is_out_full = false;
		wk_client_read_update(c);
		if ((c->state == WK_CLIENT_IDLE || c->state == WK_CLIENT_ADMIN) &&
		    evbuffer_get_length(c->io.in) && wk_client_on_input(c) == WK_CLOSED)
			return;
	}
	if (c->pubsub && wk_pubsub_client_drained(c) == WK_CLOSED)
		return; /* notifications held for a slow reader; it may be gone */
	/* binary upgrade: the moment a reply is out is when a busy client can move */
	if (wk_handoff_is_sending())
		(void)wk_handoff_try(c);
}

void
wk_client_resume(struct wk_client *c)
{
	if (!c->read_paused)
		return;
	wk_client_unpause(c);
	if (evbuffer_get_length(c->io.in))
		(void)wk_client_on_input(c);
}

/*
 * The client closed its end after sending (it may have only shut down its
 * writing side, and be reading): as PostgreSQL, which reads the end of the
 * input only after the messages before it, what it sent whole runs, queued
 * or on its server, it gets the replies, and then the connection ends (a
 * Terminate put behind them: wk_client_end_at). A message it did not finish
 * is dropped. True when c stays for that; an idle client, or one queued
 * with nothing whole to run, is closed by the caller.
 */
static bool
wk_client_eof_keep(struct wk_client *c)
{
	static const uint8_t terminate[PGW_HDR_LEN] = { PGW_MSG_TERMINATE, 0, 0, 0, 4 };
	struct evbuffer *in = c->io.in;
	size_t len = evbuffer_get_length(in), whole = c->fwd_remaining;
	struct wk_cursor cur;

	if (c->end_due)
		return c->state == WK_CLIENT_ACTIVE; /* ending already, after its replies */
	if (!(c->state == WK_CLIENT_ACTIVE && c->server) && c->state != WK_CLIENT_WAIT_SERVER)
		return false;
	if (c->server && c->server->is_ready_unsure)
		return false; /* the replies owed may never come */
	if (whole > len)
		return false; /* in the middle of a message to the server */
	wk_cursor_init(&cur, in);
	while (len - whole >= PGW_HDR_LEN) {
		uint8_t hdr[PGW_HDR_LEN];
		struct pgw_hdr h;

		if (wk_cursor_copy(&cur, whole, hdr, PGW_HDR_LEN) != PGW_HDR_LEN ||
		    !wk_hdr_parse(hdr, &h) || len - whole < pgw_msg_size(&h))
			break;
		whole += pgw_msg_size(&h);
	}
	if (whole == 0 && c->state == WK_CLIENT_WAIT_SERVER)
		return false; /* queued with half a message: nothing to run */
	if (whole < len) {
		/* drop the unfinished message at the end */
		struct evbuffer *keep = evbuffer_new();

		if (!keep || evbuffer_remove_buffer(in, keep, whole) != (int)whole) {
			if (keep)
				evbuffer_free(keep);
			return false;
		}
		evbuffer_drain(in, evbuffer_get_length(in));
		evbuffer_add_buffer(in, keep);
		evbuffer_free(keep);
	}
	if (evbuffer_add(in, terminate, sizeof(terminate)) < 0)
		return false;
	log_debug(&c->lctx, "client closed its end: its replies first");
	(void)wk_client_on_input(c);
	return true;
}

static void
wk_client_event_cb(void *arg, short what)
{
	struct wk_client *c = arg;

	wk_clock_update();
	if ((what & WK_STREAM_EOF) && !(what & WK_STREAM_ERROR) && wk_client_eof_keep(c))
		return;
	if (what & (WK_STREAM_EOF | WK_STREAM_ERROR))
		wk_client_close(c, (what & WK_STREAM_ERROR) ? "connection error" : NULL);
}

bool
wk_client_close_if_idle(struct wk_client *c)
{
	struct wk_server *s = c->server;

	switch (c->state) {
	case WK_CLIENT_ACTIVE:
		if (!s || s->tx_status != 'I' || s->expect_ready || s->has_unsynced ||
		    s->internal_ready || c->fwd_remaining || evbuffer_get_length(c->io.in))
			return false;
		break;
	case WK_CLIENT_WAIT_SERVER:
	case WK_CLIENT_CLOSING:
		return false;
	default:
		break;
	}
	wk_client_fatal(c, SQLSTATE_ADMIN_SHUTDOWN,
			"terminating connection due to administrator command");
	return true;
}

/*
 * A cancel for a client waiting in the queue: it leaves the queue with
 * 57014, and its request, which no server has seen, is dropped as
 * PostgreSQL drops what follows an error: a Query (or FunctionCall) alone,
 * else every message up to the next Sync, which gets the ReadyForQuery.
 * Whole messages only, however they arrive (wk_client_skip_cancelled).
 */
static void
wk_client_cancel_wait(struct wk_client *c)
{
	struct pgw_buf *b = &g_wk.scratch;

	wk_pool_unwait(c->pool, c);
	wk_client_log_error(&c->lctx, "ERROR", SQLSTATE_QUERY_CANCELED,
			    "canceling statement due to user request");
	pgw_buf_reset(b);
	pgw_put_error(b, false, "ERROR", SQLSTATE_QUERY_CANCELED,
		      "canceling statement due to user request", NULL, NULL);
	if (wk_conn_send(&c->io, b) < 0) {
		wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
		return;
	}
	wk_client_row(c)->errors++;
	log_info(&c->lctx, "cancelled while waiting for a server");
	c->cancel_skip =
		c->front_hdr.type == PGW_MSG_QUERY || c->front_hdr.type == PGW_MSG_FUNCTION_CALL
			? WK_CANCEL_SKIP_ONE
			: WK_CANCEL_SKIP_TO_SYNC;
	wk_client_set_state(c, WK_CLIENT_IDLE);
	wk_client_read_start(c);
	(void)wk_client_on_idle(c);
}

/* Timeouts of one client (sweep). */
static void
wk_client_sweep_one(struct wk_client *c, uint64_t now)
{
	uint64_t login = (uint64_t)g_cfg->client_login_timeout * 1000;
	uint64_t idle = (uint64_t)g_cfg->client_idle_timeout * 1000;
	uint64_t idle_tx = (uint64_t)g_cfg->client_idle_in_transaction_timeout * 1000;
	uint64_t query = (uint64_t)g_cfg->query_timeout * 1000;
	struct wk_server *s = c->server;
	uint64_t quiet = now - c->last_request_us;

	switch (c->state) {
	case WK_CLIENT_STARTUP:
	case WK_CLIENT_AUTH:
		if (now - c->connect_us > login) {
			/* as PostgreSQL at authentication_timeout: closed without a word */
			log_info(
				&c->lctx,
				"client did not complete login within client_login_timeout (%d ms)",
				g_cfg->client_login_timeout);
			wk_client_close(c, "client_login_timeout");
		}
		return;
	case WK_CLIENT_WAIT_SERVER:
		if (atomic_exchange_explicit(&wk_client_row(c)->is_cancel_requested, 0,
					     memory_order_acquire))
			wk_client_cancel_wait(c);
		return;
	case WK_CLIENT_IDLE:
		if (idle && quiet > idle)
			wk_client_fatal(c, SQLSTATE_IDLE_SESSION_TIMEOUT,
					"terminating connection due to idle-session timeout");
		return;
	case WK_CLIENT_ACTIVE:
		/* a cancel sent from another worker: it has arrived when its mark is gone */
		if (UNLIKELY(c->is_cancel_hold)) {
			wk_client_cancel_stale(c, now);
			wk_client_cancel_unhold(c);
		}
		if (c->state != WK_CLIENT_ACTIVE)
			return;
		s = c->server;
		break;
	default:
		return;
	}
	if (!s)
		return;
	if (s->expect_ready || s->has_unsynced) {
		/*
		 * A request is running: query_timeout cancels it, PostgreSQL
		 * reports 57014. Pipelined requests each run from the
		 * ReadyForQuery before them.
		 */
		uint64_t started =
			s->request_start_us > s->ready_us ? s->request_start_us : s->ready_us;

		if (query && s->is_cancel_sent && s->cancel_for_us == started &&
		    now - s->cancel_sent_us > (uint64_t)g_cfg->connect_timeout * 1000 + query) {
			/* no answer to the request nor to its cancel: the server is lost */
			log_warn(&s->lctx, "no answer from backend %u %.1f s after its cancel",
				 s->backend_pid, (double)(now - s->cancel_sent_us) / 1e6);
			s->is_broken_request = true; /* out of step: closed, not reused */
			wk_client_fatal(
				c, SQLSTATE_CONNECTION_FAILURE,
				"terminating connection: the server answered neither the query "
				"after query_timeout (%d ms) nor its cancel request",
				g_cfg->query_timeout);
			return;
		}
		if (query && (!s->is_cancel_sent || s->cancel_for_us != started) &&
		    now - started > query) {
			uint32_t none = 0;
			bool is_marked;

			s->is_cancel_sent = true;
			s->is_cancel_text_due = true;
			s->cancel_for_us = started;
			s->cancel_sent_us = now;
			log_info(&c->lctx, "query_timeout (%d ms) reached: cancelling backend %u",
				 g_cfg->query_timeout, s->backend_pid);
			/* the server stays with c until the cancel has arrived (wk_client_cancel_due) */
			is_marked = atomic_compare_exchange_strong(
				&wk_client_row(c)->cancel_backend, &none, s->backend_pid);
			(void)wk_cancel_send(s->pool, s->backend_pid, s->backend_key,
					     is_marked ? wk_client_row(c) : NULL, NULL);
			/* c's next request waits for it too (is_cancel_hold) */
			(void)wk_client_cancel_due(c, s);
		}
		return;
	}
	if (s->tx_status != 'I') {
		if (idle_tx && quiet > idle_tx && now - s->ready_us > idle_tx)
			wk_client_fatal(
				c, SQLSTATE_IDLE_IN_TRANSACTION_TIMEOUT,
				"terminating connection due to idle-in-transaction timeout");
		return;
	}
	if (idle && quiet > idle && now - s->ready_us > idle)
		wk_client_fatal(c, SQLSTATE_IDLE_SESSION_TIMEOUT,
				"terminating connection due to idle-session timeout");
}

void
wk_client_sweep(void)
{
	struct list *pos, *tmp;

	list_foreach_safe (pos, tmp, &g_wk.clients) {
		wk_client_sweep_one(list_entry(pos, struct wk_client, node), g_wk.mono_us);
	}
}
