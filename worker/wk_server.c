/*
 * wk_server.c: connections to PostgreSQL (see wk_server.h).
 * Runs in: a worker.
 *
 *   CONNECTING --connected--> LOGIN --ReadyForQuery--> IDLE <----------+
 *       |                       |                      | checkout      |
 *       |                       |                      v               |
 *       |                       |                    ACTIVE --client left cleanly--> RESET
 *       |                       |                      |                             |
 *       +-----------------------+----------------------+---- error / timeout --------+--> CLOSING
 *
 * While ACTIVE, messages move from the server's input to the client's
 * output by reference; pgdog reads only the headers, ReadyForQuery's status
 * byte and ParameterStatus bodies. Results of pgdog's own queries (the SETs
 * that apply a client's startup parameters, the reset query) are swallowed.
 *
 * A pub/sub listener (is_listener, wk_pubsub.c) logs in the same way but
 * only goes CONNECTING -> LOGIN -> IDLE -> CLOSING, off the pool's lists and
 * cap; while IDLE its bytes go to wk_pubsub_listener_read().
 */
#include "worker/wk_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shared/config.h"
#include "shared/log.h"
#include "shared/secret.h"
#include "shared/shm.h"
#include "worker/wk_cancel.h"
#include "worker/wk_client.h"
#include "worker/wk_stats.h"
#include "worker/wk_pubsub.h"

#define WK_SERVER_LOGIN_MSG_MAX (64 * 1024) /* no login message is larger */
#define WK_SERVER_PARAM_MSG_MAX (16 * 1024)
#define WK_SERVER_NO_ROW        UINT32_MAX

static uint32_t wk_server_put_reset(struct wk_server *s, struct pgw_buf *b, bool is_session_end,
				    bool is_in_block);
static void wk_server_read_cb(void *arg);
static void wk_server_write_cb(void *arg);
static void wk_server_event_cb(void *arg, short what);

static size_t wk_server_read_flat(void *arg, const uint8_t *buf, size_t len);

static const struct wk_stream_ops wk_server_io_ops = {
	.on_flat = wk_server_read_flat,
	.on_read = wk_server_read_cb,
	.on_drain = wk_server_write_cb,
	.on_event = wk_server_event_cb,
};

static void wk_server_on_idle(struct wk_server *s);

/* Allowed moves: [from][to]. */
static const bool wk_server_moves[WK_SERVER_STATE_CNT][WK_SERVER_STATE_CNT] = {
	[WK_SERVER_CONNECTING] = { [WK_SERVER_LOGIN] = true, [WK_SERVER_CLOSING] = true },
	[WK_SERVER_LOGIN] = { [WK_SERVER_IDLE] = true, [WK_SERVER_CLOSING] = true },
	[WK_SERVER_IDLE] = { [WK_SERVER_ACTIVE] = true, [WK_SERVER_CLOSING] = true },
	[WK_SERVER_ACTIVE] = { [WK_SERVER_RESET] = true,
			       [WK_SERVER_IDLE] = true,
			       [WK_SERVER_CLOSING] = true },
	[WK_SERVER_RESET] = { [WK_SERVER_IDLE] = true, [WK_SERVER_CLOSING] = true },
	[WK_SERVER_CLOSING] = { [WK_SERVER_CLOSING] = false },
};

static enum shm_conn_state
wk_server_shm_state(enum wk_server_state st)
{
	switch (st) {
	case WK_SERVER_CONNECTING:
	case WK_SERVER_LOGIN:
	case WK_SERVER_RESET:
		return SHM_STATE_LOGIN;
	case WK_SERVER_IDLE:
		return SHM_STATE_IDLE;
	case WK_SERVER_ACTIVE:
		return SHM_STATE_ACTIVE;
	default:
		return SHM_STATE_CLOSING;
	}
}

void
wk_server_row_update(struct wk_server *s)
{
	struct shm_server *r;

	if (s->row == WK_SERVER_NO_ROW)
		return;
	r = wk_stats_server_row_at(s->row);

	shm_row_write_begin(&r->seq);
	atomic_store_explicit(&r->state, (uint8_t)wk_server_shm_state(s->state),
			      memory_order_relaxed);
	r->pool_idx = (int32_t)s->pool->idx;
	r->db_idx = s->pool->cfg->db_idx;
	r->remote_pid = s->backend_pid;
	r->id = s->id;
	r->client_id = s->client ? s->client->id : 0;
	r->fd = wk_stream_fd(&s->io);
	r->backend_key = s->backend_key;
	shm_row_write_end(&r->seq);
}

/*
 * Give the shm row back. With the reservation it is what a replacement
 * connection needs, so both are returned together, before the object is freed.
 */
static void
wk_server_row_free(struct wk_server *s)
{
	struct shm_server *r;

	if (s->row == WK_SERVER_NO_ROW)
		return;
	r = shm_server((uint32_t)g_wk.slot, s->row);
	shm_row_write_begin(&r->seq);
	atomic_store_explicit(&r->state, SHM_STATE_FREE, memory_order_relaxed);
	r->id = 0;
	shm_row_write_end(&r->seq);
	g_wk.free_server_rows[g_wk.free_server_rows_cnt++] = s->row;
	s->row = WK_SERVER_NO_ROW;
}

/* Out of line: a state change checks one table entry and one log level before it. */
static __attribute__((noinline, cold)) void
wk_server_state_log(struct wk_server *s, enum wk_server_state from, enum wk_server_state st)
{
	if (from != st && !wk_server_moves[from][st]) {
		log_error(&s->lctx, "bad server state change %s -> %s", wk_server_state_name(from),
			  wk_server_state_name(st));
		ASSERT(!"bad server state change");
	}
	log_noise(&s->lctx, "server %s -> %s", wk_server_state_name(from),
		  wk_server_state_name(st));
}

void
wk_server_set_state(struct wk_server *s, enum wk_server_state st)
{
	enum wk_server_state from = s->state;

	if (UNLIKELY((!wk_server_moves[from][st] && from != st) || g_log_level >= LOG_LVL_NOISE))
		wk_server_state_log(s, from, st);
	s->state = st;
	s->state_since_us = g_wk.mono_us;
	if (s->is_listener) {
		wk_server_row_update(s);
		return;
	}
	wk_pool_move(s->pool, s, from, st);
	if ((from == WK_SERVER_IDLE && st == WK_SERVER_ACTIVE) ||
	    (from == WK_SERVER_ACTIVE && st == WK_SERVER_IDLE)) {
		/*
		 * Checkout and check-in, once per transaction: only the state and
		 * the client change. The rest of the row was written at login and
		 * is rewritten by a reload (wk_pool_point).
		 */
		struct shm_server *r;

		if (s->row == WK_SERVER_NO_ROW)
			return;
		r = wk_stats_server_row_at(s->row);
		shm_row_write_begin(&r->seq);
		atomic_store_explicit(&r->state, (uint8_t)wk_server_shm_state(st),
				      memory_order_relaxed);
		r->client_id = s->client ? s->client->id : 0;
		shm_row_write_end(&r->seq);
		return;
	}
	wk_server_row_update(s);
}

/* The user and password to log in to PostgreSQL with. */
static const char *
wk_server_user(const struct wk_pool *p)
{
	if (p->user->server_user && *p->user->server_user)
		return p->user->server_user;
	if (p->db->user && *p->db->user)
		return p->db->user;
	return p->user->name;
}

static const char *
wk_server_password(const struct wk_pool *p)
{
	if (p->user->server_password && *p->user->server_password)
		return p->user->server_password;
	if (p->db->password && *p->db->password)
		return p->db->password;
	if (p->user->secret.kind == AUTH_SECRET_PLAIN)
		return p->user->secret.plain;
	return NULL;
}

/*
 * A pool server (reserved, with a shm row, on the pool's lists) or a pub/sub
 * listener (none of these: outside pool_size, shown by SHOW LISTENERS).
 */
static struct wk_server *
wk_server_open(struct wk_pool *p, bool is_listener)
{
	struct wk_server *s = NULL;
	int saved;

	if (p->addr_len == 0) {
		errno = EHOSTUNREACH;
		return NULL;
	}
	if (!is_listener && g_wk.free_server_rows_cnt == 0) {
		errno = ENOSPC;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	list_init(&s->node);
	s->pool = p;
	s->id = ++g_wk.next_server_id;
	s->is_listener = is_listener;
	s->row =
		is_listener ? WK_SERVER_NO_ROW : g_wk.free_server_rows[--g_wk.free_server_rows_cnt];
	s->is_reserved = !is_listener;
	s->tx_status = 'I';
	s->connect_us = g_wk.mono_us;
	s->state_since_us = g_wk.mono_us;
	if (p->cfg->server_lifetime > 0) {
		/* jitter spreads reconnections: lifetime +/- a random part of server_lifetime_jitter */
		int64_t life_ms = p->cfg->server_lifetime;
		int64_t jitter_ms = p->cfg->server_lifetime_jitter;

		if (jitter_ms > 0)
			life_ms += (int64_t)secret_random_uniform((uint32_t)(2 * jitter_ms)) -
				   jitter_ms;
		s->lifetime_us = life_ms > 0 ? (uint64_t)life_ms * 1000 : 1;
	}
	snprintf(s->lctx.id, sizeof(s->lctx.id), is_listener ? "w%dl%llu" : "w%ds%llu", g_wk.slot,
		 (unsigned long long)s->id);
	snprintf(s->lctx.peer, sizeof(s->lctx.peer), "%s:%d", p->db->host, p->db->port);
	s->lctx.user = p->user->name;
	s->lctx.db = p->db->name;
	if (!is_listener) {
		struct shm_server *r = shm_server((uint32_t)g_wk.slot, s->row);

		shm_row_write_begin(&r->seq);
		r->connect_us = g_wk.now_us;
		r->request_us = 0;
		r->queries = r->transactions = r->bytes_received = r->bytes_sent = 0;
		r->ready_us = 0; /* SHOW SERVERS: nothing from the row's last connection */
		r->tx_status = 'I';
		r->application_name[0] = '\0';
		memset(&r->fd, 0, sizeof(*r) - offsetof(struct shm_server, fd));
		shm_row_write_end(&r->seq);
	}
	s->state = WK_SERVER_CONNECTING;
	if (!is_listener)
		wk_pool_move(p, s, WK_SERVER_CONNECTING, WK_SERVER_CONNECTING);
	wk_server_row_update(s);

	if (wk_stream_connect(&s->io, (struct sockaddr *)&p->addr, (socklen_t)p->addr_len,
			      &wk_server_io_ops, s) < 0)
		goto fail;
	log_debug(&s->lctx, "connecting");
	return s;
fail:
	saved = errno;
	/* the caller gives back the reservation */
	s->is_reserved = false;
	wk_server_set_state(s, WK_SERVER_CLOSING);
	wk_reap_server(s);
	errno = saved;
	return NULL;
}

struct wk_server *
wk_server_connect(struct wk_pool *p)
{
	return wk_server_open(p, false);
}

struct wk_server *
wk_server_connect_listener(struct wk_pool *p)
{
	return wk_server_open(p, true);
}

void
wk_server_free(struct wk_server *s)
{
	if (!s)
		return;
	if (s->gone_cancel)
		wk_cancel_forget_server(s->gone_cancel);
	if (s->is_listener)
		wk_pubsub_listener_freed(s);
	else
		wk_pool_forget(s->pool, s);
	wk_stream_cleanup(&s->io);
	if (s->scram) {
		auth_scram_client_cleanup(s->scram);
		free(s->scram);
	}
	wk_settings_cleanup(&s->applied);
	wk_prep_held_cleanup(&s->held);
	wk_server_slots_clear(s);
	free(s->slots);
	wk_server_row_free(s);
	free(s);
}

void
wk_server_close(struct wk_server *s, const char *reason)
{
	bool has_backend;

	if (s->state == WK_SERVER_CLOSING)
		return;
	if (s->is_listener)
		wk_pubsub_listener_closed(s);
	if (s->gone_cancel) {
		wk_cancel_forget_server(s->gone_cancel);
		s->gone_cancel = NULL;
	}
	s->is_gone_cancel_wait = false;
	/* once connected, a PostgreSQL backend exists until it sees us go */
	has_backend = s->state != WK_SERVER_CONNECTING && wk_stream_is_open(&s->io);
	log_debug(&s->lctx, "closing server connection: %s", reason ? reason : "");
	if (has_backend && s->backend_pid && !g_wk.is_shutting_down && !g_wk.is_loop_done &&
	    (s->state == WK_SERVER_RESET ||
	     (s->state == WK_SERVER_ACTIVE &&
	      (s->expect_ready || s->has_unsynced || s->internal_ready)))) {
		/*
		 * Its backend is running something, and reads our Terminate only
		 * when that ends: cancel it, or it runs on, outside the pool's
		 * count, once the slot is given back (WK_POOL_CLOSE_WAIT_US).
		 */
		(void)wk_cancel_send(s->pool, s->backend_pid, s->backend_key, NULL, NULL);
	}
	if (s->client) {
		struct wk_client *c = s->client;

		s->client = NULL;
		c->server = NULL;
	}
	if (wk_stream_is_open(&s->io)) {
		wk_stream_write_off(&s->io);
		if (s->state != WK_SERVER_CONNECTING && s->state != WK_SERVER_LOGIN) {
			struct pgw_buf *b = &g_wk.scratch;

			pgw_buf_reset(b);
			pgw_put_terminate(b);
			if (wk_conn_send(&s->io, b) < 0)
				log_debug(&s->lctx, "cannot queue Terminate");
		}
		/* best effort: whatever the kernel takes now */
		wk_conn_flush_now(&s->io);
		if (has_backend)
			shutdown(wk_stream_fd(&s->io), SHUT_WR);
	}
	wk_server_set_state(s, WK_SERVER_CLOSING);
	s->closing_since_us = g_wk.mono_us;
	if (has_backend)
		wk_stream_read_on(&s->io);
	if (has_backend && wk_stream_is_reading(&s->io))
		return; /* keeps its reservation until the backend has gone (wk_server_gone) */
	wk_server_gone(s);
}

void
wk_server_gone(struct wk_server *s)
{
	if (s->is_free_later)
		return;
	wk_stream_read_off(&s->io);
	wk_stream_write_off(&s->io);
	/*
	 * The backend closed its end (or did not within a second): only now may
	 * another connection take its place, so PostgreSQL never sees more than
	 * pool_size connections of the pool.
	 */
	wk_server_row_free(s);
	if (!s->is_listener)
		wk_pool_server_gone(s->pool, s);
	wk_reap_server(s);
}

/* Fail the login: tell the pool's waiters and close. */
static enum wk_rc wk_server_login_fail(struct wk_server *s, const char *sqlstate, const char *fmt,
				       ...) PRINTF_LIKE(3, 4);

static enum wk_rc
wk_server_login_fail(struct wk_server *s, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn(&s->lctx, "server login failed: %s", msg);
	if (s->is_listener) {
		snprintf(s->error, sizeof(s->error), "%.200s", msg); /* for the LISTENing clients */
	} else {
		wk_stats_add(s->pool, SHM_STAT_ERRORS, 1);
		/* waiters first: closing must not open a replacement for them */
		wk_pool_server_failed(s->pool, sqlstate, msg);
	}
	wk_server_close(s, msg);
	return WK_CLOSED;
}

static void
wk_server_send_startup(struct wk_server *s)
{
	const struct wk_pool *p = s->pool;
	/* a listener names itself, so that operators find it in pg_stat_activity */
	const char *names[] = { "user", "database", "application_name" };
	const char *values[] = { wk_server_user(p), p->db->database_name,
				 s->is_monitor ? "pgdog_lsn_check" : "pgdog_listener" };
	struct pgw_buf *b = &g_wk.scratch;

	pgw_buf_reset(b);
	pgw_put_startup(b, names, values, s->is_listener ? 3 : 2);
	if (wk_conn_send(&s->io, b) < 0) {
		(void)wk_server_login_fail(s, SQLSTATE_OUT_OF_MEMORY, "out of memory");
		return;
	}
	wk_server_set_state(s, WK_SERVER_LOGIN);
}

static void
wk_server_event_cb(void *arg, short what)
{
	struct wk_server *s = arg;
	struct wk_pool *p = s->pool;
	int err = errno;

	wk_clock_update();
	if (what & WK_STREAM_CONNECTED) {
		(void)wk_conn_bind_socket_opts(wk_stream_fd(&s->io));
		wk_server_send_startup(s);
		return;
	}
	if (!(what & (WK_STREAM_EOF | WK_STREAM_ERROR)))
		return;
	switch (s->state) {
	case WK_SERVER_CONNECTING:
		(void)wk_server_login_fail(
			s, SQLSTATE_CONNECTION_FAILURE,
			"could not connect to server \"%s:%d\" for pool \"%s\": %s", p->db->host,
			p->db->port, p->name,
			(what & WK_STREAM_ERROR) && err ? strerror(err) : "connection closed");
		break;
	case WK_SERVER_LOGIN:
		(void)wk_server_login_fail(s, SQLSTATE_CONNECTION_FAILURE,
					   "server \"%s:%d\" closed the connection during login",
					   p->db->host, p->db->port);
		break;
	case WK_SERVER_ACTIVE: {
		struct wk_client *c = s->client;
		bool has_fatal;

		/* forward what it said before it went away (often a FATAL) */
		if (c)
			(void)wk_server_forward(s);
		c = s->client;
		has_fatal = s->has_fatal && s->internal_ready == 0;
		wk_server_close(s, "server closed the connection");
		if (c && has_fatal) {
			/* as from PostgreSQL: its FATAL, then the end of the connection */
			c->server = NULL;
			wk_client_close(c, "server sent FATAL and closed the connection");
		} else if (c) {
			wk_client_server_lost(c, SQLSTATE_CONNECTION_FAILURE,
					      "server closed the connection unexpectedly");
		}
		break;
	}
	case WK_SERVER_CLOSING:
		wk_server_gone(s);
		break;
	default:
		wk_server_close(s, "server closed the connection");
		break;
	}
}

static void
wk_server_write_cb(void *arg)
{
	struct wk_server *s = arg;

	/* the client paused for our output to drain: let it go on */
	if (s->client && s->client->read_paused)
		wk_client_resume(s->client);
}

void
wk_server_resume(struct wk_server *s)
{
	if (!s->read_paused)
		return;
	s->read_paused = false;
	wk_stream_read_on(&s->io);
	if (evbuffer_get_length(s->io.in))
		wk_server_read_cb(s);
}

static void
wk_server_param_set(struct wk_server *s, const char *name, const char *value)
{
	size_t i;

	for (i = 0; i < s->params_cnt; i++)
		if (strcmp(s->params[i].name, name) == 0)
			break;
	if (i == s->params_cnt) {
		if (s->params_cnt == WK_SERVER_PARAMS_MAX)
			return;
		s->params_cnt++;
		snprintf(s->params[i].name, sizeof(s->params[i].name), "%s", name);
	}
	snprintf(s->params[i].value, sizeof(s->params[i].value), "%s", value);
	s->params_gen++;
}

/* SCRAM with what users.ini gives us. */
static enum wk_rc
wk_server_sasl_start(struct wk_server *s, const uint8_t *data, size_t len)
{
	struct wk_pool *p = s->pool;
	const char *password = wk_server_password(p);
	bool has_mech = false;
	char out[AUTH_SCRAM_MSG_MAX];
	size_t out_len;
	struct pgw_buf *b = &g_wk.scratch;

	for (size_t i = 0; i < len;) {
		const char *m = (const char *)data + i;
		size_t n = strnlen(m, len - i);

		if (n == 0 || n == len - i)
			break;
		if (strcmp(m, "SCRAM-SHA-256") == 0)
			has_mech = true;
		i += n + 1;
	}
	if (!has_mech)
		return wk_server_login_fail(
			s, SQLSTATE_FEATURE_NOT_SUPPORTED,
			"server asks for a SASL mechanism other than SCRAM-SHA-256");
	s->scram = calloc(1, sizeof(*s->scram));
	if (!s->scram)
		return wk_server_login_fail(s, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	if (password) {
		if (auth_scram_client_init(s->scram, password, NULL, NULL) < 0)
			return wk_server_login_fail(s, SQLSTATE_INTERNAL_ERROR,
						    "cannot start SCRAM authentication");
	} else if (p->user->secret.kind == AUTH_SECRET_SCRAM && p->has_client_key) {
		if (auth_scram_client_init(s->scram, NULL, &p->user->secret, p->client_key) < 0)
			return wk_server_login_fail(s, SQLSTATE_INTERNAL_ERROR,
						    "cannot start SCRAM authentication");
	} else {
		return wk_server_login_fail(
			s, SQLSTATE_INVALID_PASSWORD,
			"server asks user \"%s\" for a SCRAM password, but users.ini holds no cleartext password (set server_password) and no client has logged in with the verifier yet",
			wk_server_user(p));
	}
	if (auth_scram_client_first(s->scram, out, sizeof(out), &out_len) < 0)
		return wk_server_login_fail(s, SQLSTATE_INTERNAL_ERROR,
					    "SCRAM client-first failed");
	pgw_buf_reset(b);
	pgw_put_sasl_initial(b, "SCRAM-SHA-256", out, out_len);
	secret_wipe(out, sizeof(out));
	if (wk_conn_send(&s->io, b) < 0)
		return wk_server_login_fail(s, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	return WK_OK;
}

static enum wk_rc
wk_server_on_auth(struct wk_server *s, const uint8_t *body, size_t len)
{
	struct wk_pool *p = s->pool;
	uint32_t code;
	const uint8_t *data;
	size_t data_len;
	struct pgw_buf *b = &g_wk.scratch;
	const char *password = wk_server_password(p);
	char out[AUTH_SCRAM_MSG_MAX], err[256];
	size_t out_len;

	if (pgw_parse_auth(body, len, &code, &data, &data_len) < 0)
		return wk_server_login_fail(s, SQLSTATE_PROTOCOL_VIOLATION,
					    "malformed authentication request from server");
	pgw_buf_reset(b);
	switch (code) {
	case PGW_AUTH_OK:
		return WK_OK;
	case PGW_AUTH_CLEARTEXT:
		if (!password)
			return wk_server_login_fail(
				s, SQLSTATE_INVALID_PASSWORD,
				"server asks user \"%s\" for a cleartext password, but users.ini holds none (set server_password)",
				wk_server_user(p));
		pgw_put_password(b, password);
		break;
	case PGW_AUTH_MD5: {
		char hash[AUTH_MD5_LEN + 1], resp[AUTH_MD5_LEN + 1];

		if (data_len != 4)
			return wk_server_login_fail(s, SQLSTATE_PROTOCOL_VIOLATION,
						    "malformed MD5 request from server");
		if (password)
			auth_md5_hash(password, wk_server_user(p), hash);
		else if (p->user->secret.kind == AUTH_SECRET_MD5 &&
			 strcmp(wk_server_user(p), p->user->name) == 0)
			memcpy(hash, p->user->secret.md5, sizeof(hash));
		else
			return wk_server_login_fail(
				s, SQLSTATE_INVALID_PASSWORD,
				"server asks user \"%s\" for an MD5 password, but users.ini holds neither a cleartext password nor its md5 hash",
				wk_server_user(p));
		auth_md5_response(hash, data, resp);
		pgw_put_password(b, resp);
		secret_wipe(hash, sizeof(hash));
		secret_wipe(resp, sizeof(resp));
		break;
	}
	case PGW_AUTH_SASL:
		return wk_server_sasl_start(s, data, data_len);
	case PGW_AUTH_SASL_CONTINUE:
		if (!s->scram)
			return wk_server_login_fail(s, SQLSTATE_PROTOCOL_VIOLATION,
						    "unexpected SASL continue from server");
		if (auth_scram_client_final(s->scram, data, data_len, out, sizeof(out), &out_len,
					    err, sizeof(err)) < 0)
			return wk_server_login_fail(s, SQLSTATE_INVALID_PASSWORD,
						    "SCRAM authentication with server failed: %s",
						    err);
		pgw_put_sasl_response(b, out, out_len);
		secret_wipe(out, sizeof(out));
		break;
	case PGW_AUTH_SASL_FINAL:
		if (!s->scram ||
		    auth_scram_client_verify(s->scram, data, data_len, err, sizeof(err)) < 0)
			return wk_server_login_fail(s, SQLSTATE_INVALID_PASSWORD,
						    "server failed to prove it knows the password");
		auth_scram_client_cleanup(s->scram);
		free(s->scram);
		s->scram = NULL;
		return WK_OK;
	default:
		return wk_server_login_fail(s, SQLSTATE_FEATURE_NOT_SUPPORTED,
					    "server requested unsupported authentication method %u",
					    code);
	}
	if (wk_conn_send(&s->io, b) < 0)
		return wk_server_login_fail(s, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	return WK_OK;
}

/* Login: authentication, parameters, key, then ReadyForQuery. */
static enum wk_rc
wk_server_on_login(struct wk_server *s)
{
	struct evbuffer *in = s->io.in;

	for (;;) {
		struct pgw_hdr h;
		const uint8_t *msg = NULL, *body;
		size_t len;
		enum wk_rc rc = WK_OK;

		switch (wk_conn_peek(in, WK_SERVER_LOGIN_MSG_MAX, true, &h, &msg)) {
		case WK_PEEK_MORE:
		case WK_PEEK_HEADER:
			return WK_AGAIN;
		case WK_PEEK_BAD_LEN:
		case WK_PEEK_TOO_LONG:
			return wk_server_login_fail(
				s, SQLSTATE_PROTOCOL_VIOLATION,
				"invalid message length from server during login");
		case WK_PEEK_WHOLE:
			break;
		}
		body = msg + PGW_HDR_LEN;
		len = h.len - 4;
		switch (h.type) {
		case PGW_MSG_AUTH:
			rc = wk_server_on_auth(s, body, len);
			break;
		case PGW_MSG_PARAMETER_STATUS: {
			const char *name, *value;

			if (pgw_parse_param_status(body, len, &name, &value) == 0)
				wk_server_param_set(s, name, value);
			break;
		}
		case PGW_MSG_BACKEND_KEY:
			if (pgw_parse_backend_key(body, len, &s->backend_pid, &s->backend_key) < 0)
				rc = wk_server_login_fail(s, SQLSTATE_PROTOCOL_VIOLATION,
							  "malformed BackendKeyData from server");
			break;
		case PGW_MSG_ERROR: {
			struct pgw_error_fields f;

			if (pgw_parse_error(body, len, &f) < 0 || !f.message)
				rc = wk_server_login_fail(s, SQLSTATE_CONNECTION_FAILURE,
							  "server refused the login");
			else
				rc = wk_server_login_fail(
					s, f.sqlstate ? f.sqlstate : SQLSTATE_CONNECTION_FAILURE,
					"%s", f.message);
			break;
		}
		case PGW_MSG_NOTICE:
		case PGW_MSG_NEGOTIATE_VERSION:
			break;
		case PGW_MSG_READY: {
			char st;

			if (pgw_parse_ready(body, len, &st) < 0) {
				rc = wk_server_login_fail(s, SQLSTATE_PROTOCOL_VIOLATION,
							  "malformed ReadyForQuery from server");
				break;
			}
			evbuffer_drain(in, pgw_msg_size(&h));
			s->tx_status = st;
			if (s->is_listener) {
				log_debug(&s->lctx, "logged in, backend pid %u", s->backend_pid);
				wk_server_set_state(s, WK_SERVER_IDLE);
				wk_pubsub_listener_ready(s);
				if (s->state == WK_SERVER_IDLE && evbuffer_get_length(s->io.in))
					wk_pubsub_listener_read(s);
				return WK_OK;
			}
			wk_stats_connected(s);
			wk_pool_learn_params(s->pool, s);
			log_debug(&s->lctx, "logged in, backend pid %u", s->backend_pid);
			wk_server_row_update(s);
			wk_pool_server_ready(s->pool, s);
			return WK_OK;
		}
		default:
			rc = wk_server_login_fail(
				s, SQLSTATE_PROTOCOL_VIOLATION,
				"unexpected message '%c' from server during login", h.type);
			break;
		}
		if (rc == WK_CLOSED)
			return WK_CLOSED;
		evbuffer_drain(in, pgw_msg_size(&h));
	}
}

int
wk_server_send_internal(struct wk_server *s, const struct pgw_buf *b, uint32_t queries_cnt)
{
	if (wk_conn_send(&s->io, b) < 0)
		return -1;
	s->unnamed_id = 0; /* a simple Query drops the unnamed statement */
	s->internal_ready += queries_cnt;
	return 0;
}

/* A protocol error from the server while a client is linked: both go. */
static enum wk_rc
wk_server_broken(struct wk_server *s, const char *why)
{
	struct wk_client *c = s->client;

	log_error(&s->lctx, "%s", why);
	wk_server_close(s, why);
	if (c)
		wk_client_server_lost(c, SQLSTATE_PROTOCOL_VIOLATION, why);
	return WK_CLOSED;
}

/*
 * One of pgdog's own queries failed: the client cannot have the session it
 * asked for. Tell it with the server's words, and let the server finish and
 * go through reset.
 */
static void
wk_server_internal_error(struct wk_server *s, const uint8_t *body, size_t len)
{
	struct pgw_error_fields f;
	struct wk_client *c = s->client;

	if (!c || s->internal_failed)
		return;
	s->internal_failed = true;
	if (pgw_parse_error(body, len, &f) < 0 || !f.message) {
		f.sqlstate = SQLSTATE_INTERNAL_ERROR;
		f.message = "server rejected the session parameters";
	}
	wk_client_fatal(c, f.sqlstate ? f.sqlstate : SQLSTATE_INTERNAL_ERROR, "%s", f.message);
}

/* ---- reply slots (prepared statement rewriting) ------------------------- */

int
wk_server_slots_grow(struct wk_server *s)
{
	size_t cap = s->slots_cap ? s->slots_cap * 2 : 64;
	struct wk_slot *v = malloc(cap * sizeof(*v));

	if (!v)
		return -1;
	/* unroll the ring into the new array */
	for (size_t i = 0; i < s->slots_cnt; i++)
		v[i] = s->slots[(s->slots_head + i) & (s->slots_cap - 1)];
	free(s->slots);
	s->slots = v;
	s->slots_cap = cap;
	s->slots_head = 0;
	return 0;
}

static struct wk_slot *
wk_server_slot_head(struct wk_server *s)
{
	return s->slots_cnt ? &s->slots[s->slots_head] : NULL;
}

static void
wk_server_slot_map_free(struct wk_server *s, struct wk_slot *sl)
{
	wk_pos_map_free(sl->pos_map);
	sl->pos_map = NULL;
	s->pos_maps_cnt--;
}

static void
wk_server_slot_pop(struct wk_server *s)
{
	struct wk_slot *sl = &s->slots[s->slots_head];

	if (UNLIKELY(sl->pos_map != NULL))
		wk_server_slot_map_free(s, sl);
	if (UNLIKELY(sl->client_names != NULL)) {
		free(sl->client_names);
		sl->client_names = NULL;
	}
	s->slots_head = (s->slots_head + 1) & (s->slots_cap - 1);
	s->slots_cnt--;
	if (UNLIKELY(s->is_unnamed_unsure) && s->slots_cnt == 0)
		s->is_unnamed_unsure = false; /* answered, or restored (wk_client_unnamed_lost) */
	if (UNLIKELY(s->is_unsynced_wait) && s->slots_cnt == 0) {
		/* all answered (or skipped after an error): the client's Query goes on */
		s->is_unsynced_wait = false;
		s->is_verify_wait = false;
		s->is_verify_resume = true;
	}
}

void
wk_server_slots_clear(struct wk_server *s)
{
	for (size_t i = 0; i < s->slots_cnt; i++) {
		struct wk_slot *sl = &s->slots[(s->slots_head + i) & (s->slots_cap - 1)];

		if (sl->pos_map)
			wk_server_slot_map_free(s, sl);
		free(sl->client_names);
		sl->client_names = NULL;
		if (sl->prep) {
			/* never answered: the reference it held goes */
			sl->prep->client_refs--;
			wk_prep_release_if_unused(sl->prep);
		}
		sl->prep = NULL;
	}
	s->is_verify_wait = s->is_verify_resume = s->is_unsynced_wait = false;
	s->is_unnamed_unsure = false;
	wk_prep_held_answered_all(&s->held);
	s->slots_head = s->slots_cnt = 0;
	s->is_discarding = false;
	s->is_unnamed_tag_due = false;
}

/* The map of positions of the Query whose reply is due (NULL: none). */
static const struct wk_pos_map *
wk_server_head_map(struct wk_server *s)
{
	const struct wk_slot *sl = wk_server_slot_head(s);

	return sl && sl->kind == WK_SLOT_QUERY ? sl->pos_map : NULL;
}

/*
 * The name of one of the client's statements in an error's text, as the
 * server knows it ("__pgdog_<slot>_<id>"): written as the client's own
 * name for it (NULL: not such a text), the one the message the error is
 * about used when the client has two (the head slot's client_names). *at
 * and *len: where pgdog's name (with its quotes) is in v.
 */
static const char *
wk_server_error_name(struct wk_server *s, const char *v, const char **at, size_t *len)
{
	const char *p = strstr(v, "\"__pgdog_"), *q, *mine;
	const struct wk_slot *sl = wk_server_slot_head(s);

	if (!p || !s->client || !(q = strchr(p + 1, '"')))
		return NULL;
	*at = p;
	*len = (size_t)(q - p) + 1;
	for (const char *k = sl ? sl->client_names : NULL; k && *k;
	     k += strlen(k) + 1, k += strlen(k) + 1)
		if (wk_prep_name_is(k, p + 1, *len - 2))
			return k + strlen(k) + 1;
	/* an Execute of the unnamed SQL EXECUTE: the name it used */
	if (s->error_slot_kind == WK_SLOT_EXECUTE && s->client->sql_kind == WK_SQL_EXECUTE &&
	    s->client->sql_prep && wk_prep_name_is(s->client->sql_prep->name, p + 1, *len - 2))
		return s->client->sql_name;
	mine = wk_prep_names_name_of(&s->client->prep_names, p + 1, *len - 2);
	if (!mine && s->client->sql_kind == WK_SQL_PREPARE &&
	    wk_prep_name_is(s->client->sql_junk, p + 1, *len - 2))
		mine = s->client->sql_name; /* its throwaway, run again (42P05) */
	return mine;
}

/*
 * An ErrorResponse (body, blen bytes) about a client's statement or a Query
 * pgdog rewrote, whole at the front of in: a position (map: the Query
 * slot's, or NULL) is made to point into the text the client sent, and a
 * statement named as the server knows it ("__pgdog_<slot>_<id>", a Bind with
 * the wrong number of parameters) gets the client's name for it, as
 * PostgreSQL would say; message, when not NULL, replaces the error's text.
 * The message goes to out; true when it did (the caller drains the server's
 * copy), false when nothing changed.
 */
static bool
wk_server_error_rewrite(struct wk_server *s, const uint8_t *body, size_t len,
			const struct wk_pos_map *m, const char *message, struct evbuffer *out)
{
	struct pgw_buf *b = &g_wk.scratch;
	size_t i = 0;
	bool is_changed = false;

	if (m && !m->is_ascii) {
		/* counted as UTF-8: right only when that is what the client speaks */
		size_t k;

		for (k = 0; k < s->params_cnt; k++)
			if (strcmp(s->params[k].name, "client_encoding") == 0)
				break;
		if (k == s->params_cnt || strcmp(s->params[k].value, "UTF8") != 0)
			m = NULL;
	}
	pgw_buf_reset(b);
	pgw_begin(b, PGW_MSG_ERROR);
	while (i < len && body[i] != 0) {
		const char *v = (const char *)body + i + 1;
		size_t vlen = strnlen(v, len - i - 1), qlen;
		const char *mine = NULL, *at;
		char num[24];
		char *end;
		long pos;

		if (vlen == len - i - 1)
			return false; /* not NUL-terminated: PostgreSQL's bytes go as they are */
		pos = m && body[i] == 'P' ? strtol(v, &end, 10) : 0;
		if (message && body[i] == 'M') {
			pgw_put_u8(b, 'M');
			pgw_put_str(b, message);
			is_changed = true;
			i += 1 + vlen + 1;
			continue;
		}
		if (body[i] == 'M' || body[i] == 'D')
			mine = wk_server_error_name(s, v, &at, &qlen);
		if (pos > 0 && end != v && *end == '\0') {
			/* none when the error is in what pgdog put in front */
			pos = wk_pos_map_apply(m, pos);
			is_changed = true;
			if (pos > 0) {
				snprintf(num, sizeof(num), "%ld", pos);
				pgw_put_u8(b, 'P');
				pgw_put_str(b, num);
			}
		} else if (mine) {
			/* once: PostgreSQL names a statement once in a message */
			pgw_put_u8(b, body[i]);
			pgw_put_bytes(b, v, (size_t)(at - v) + 1);
			pgw_put_bytes(b, mine, strlen(mine));
			pgw_put_str(b, at + qlen - 1);
			is_changed = true;
		} else {
			pgw_put_u8(b, body[i]);
			pgw_put_str(b, v);
		}
		i += 1 + vlen + 1;
	}
	pgw_put_u8(b, 0);
	pgw_end(b);
	if (!is_changed || b->has_error)
		return false;
	return evbuffer_add(out, b->data, b->len) == 0;
}

/*
 * Is an error from s for its client c read whole, to be written as the
 * client's (wk_server_error_rewrite): its position in a Query pgdog
 * rewrote, query_timeout's cancel, a statement named as the server knows
 * it (the client has names: an SQL EXECUTE sent as a Parse, a Bind with
 * the wrong number of parameters; the throwaway of an unnamed SQL PREPARE
 * executed twice)? Errors are few: reading them whole costs little.
 */
static inline bool
wk_server_error_is_read(const struct wk_server *s, const struct wk_client *c)
{
	return UNLIKELY(s->pos_maps_cnt) || UNLIKELY(s->is_cancel_text_due) ||
	       (c && (c->prep_names.cnt || c->sql_kind == WK_SQL_PREPARE));
}

/*
 * The text of the error query_timeout's cancel caused (the whole
 * ErrorResponse at msg), as PostgreSQL words statement_timeout's; NULL for
 * another error. PostgreSQL cannot tell pgdog's CancelRequest from a
 * client's: it says "user request" (in English; translated, it stays). The
 * first such error after the cancel is the one it caused.
 */
static const char *
wk_server_timeout_text(struct wk_server *s, const uint8_t *msg, const struct pgw_hdr *h)
{
	struct pgw_error_fields f;

	if (!s->is_cancel_text_due || pgw_parse_error(msg + PGW_HDR_LEN, h->len - 4, &f) < 0 ||
	    !f.sqlstate || strcmp(f.sqlstate, SQLSTATE_QUERY_CANCELED) != 0)
		return NULL;
	s->is_cancel_text_due = false;
	if (!f.message || strcmp(f.message, "canceling statement due to user request") != 0)
		return NULL; /* statement_timeout's, or translated */
	return "canceling statement due to query_timeout";
}

/* The longest RowDescription or error whose statement pgdog looks at (larger: passed unread). */
#define WK_SERVER_PREP_REPLY_MAX (1u << 20)
/* PostgreSQL's error when a prepared statement's result type changed (plancache.c) */
#define WK_SERVER_CACHED_PLAN_MSG "cached plan must not change result type"

/*
 * Is a reply of this type, at the head of s's slots, about a client's
 * statement (WK_SLOT_PREP_USE, _STALE, _VERIFY): its error, or the result a
 * Describe of it tells?
 */
static inline bool
wk_server_is_prep_reply(struct wk_server *s, uint8_t type)
{
	const struct wk_slot *sl;
	uint8_t role;

	if (type != PGW_MSG_ERROR && type != PGW_MSG_ROW_DESCRIPTION && type != PGW_MSG_NO_DATA)
		return false;
	sl = wk_server_slot_head(s);
	if (!sl || !sl->prep)
		return false;
	role = sl->prep_role;
	if (role != WK_SLOT_PREP_USE && role != WK_SLOT_PREP_STALE && role != WK_SLOT_PREP_VERIFY)
		return false;
	return type == PGW_MSG_ERROR || sl->kind == WK_SLOT_DESCRIBE_S;
}

/*
 * A reply about a client's statement (wk_server_is_prep_reply), whole at
 * msg: a RowDescription or NoData tells its result (wk_prep_desc_seen), a
 * 0A000 "cached plan must not change result type" makes it stale, and the
 * 26000 of a stale statement's use is replaced by that 0A000, written to out
 * (true: the caller drops the server's message).
 */
static bool
wk_server_prep_reply(struct wk_server *s, const struct pgw_hdr *h, const uint8_t *msg,
		     struct evbuffer *out)
{
	const struct wk_slot *sl = wk_server_slot_head(s);
	struct wk_prep *p = sl->prep;
	const uint8_t *body = msg + PGW_HDR_LEN;
	size_t blen = h->len - 4;
	struct pgw_error_fields f;
	struct pgw_buf *b = &g_wk.scratch;
	static const char *const fields[] = {
		"SERROR",
		"VERROR",
		"C" SQLSTATE_FEATURE_NOT_SUPPORTED,
		"M" WK_SERVER_CACHED_PLAN_MSG,
		"Fplancache.c",
		"RRevalidateCachedQuery",
	};

	if (h->type != PGW_MSG_ERROR) {
		(void)wk_prep_desc_seen(p, h->type == PGW_MSG_NO_DATA
						   ? WK_PREP_DESC_NONE
						   : wk_prep_desc_hash(body, blen));
		return false;
	}
	if (pgw_parse_error(body, blen, &f) < 0 || !f.sqlstate)
		return false; /* malformed: passed as it is */
	if (sl->prep_role == WK_SLOT_PREP_STALE) {
		/* in a failed transaction the server says 25P02 first: that goes on */
		if (strcmp(f.sqlstate, SQLSTATE_INVALID_SQL_STATEMENT_NAME) != 0 || !out)
			return false;
		/* with PostgreSQL's file and routine: drivers (asyncpg) re-prepare on seeing them */
		pgw_buf_reset(b);
		pgw_begin(b, PGW_MSG_ERROR);
		for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++) {
			pgw_put_u8(b, (uint8_t)fields[k][0]);
			pgw_put_str(b, fields[k] + 1);
		}
		pgw_put_u8(b, 0);
		pgw_end(b);
		return !b->has_error && evbuffer_add(out, b->data, b->len) == 0;
	}
	/* the routine's name is not translated (lc_messages), the message may be */
	if (strcmp(f.sqlstate, SQLSTATE_FEATURE_NOT_SUPPORTED) == 0 &&
	    ((f.routine && strcmp(f.routine, "RevalidateCachedQuery") == 0) ||
	     (f.message && strcmp(f.message, WK_SERVER_CACHED_PLAN_MSG) == 0)))
		wk_prep_make_stale(p);
	return out && wk_server_error_rewrite(s, body, blen, NULL, NULL, out);
}

bool
wk_server_synth_due(struct wk_server *s)
{
	struct wk_slot *sl = wk_server_slot_head(s);

	return sl && (sl->kind == WK_SLOT_SYNTH_PARSE || sl->kind == WK_SLOT_SYNTH_CLOSE);
}

int
wk_server_emit_synth(struct wk_server *s)
{
	struct wk_slot *sl;
	struct pgw_buf *b = &g_wk.scratch;

	sl = wk_server_slot_head(s);
	if (!s->client || !sl ||
	    (sl->kind != WK_SLOT_SYNTH_PARSE && sl->kind != WK_SLOT_SYNTH_CLOSE))
		return 0;
	pgw_buf_reset(b);
	while ((sl = wk_server_slot_head(s)) &&
	       (sl->kind == WK_SLOT_SYNTH_PARSE || sl->kind == WK_SLOT_SYNTH_CLOSE)) {
		pgw_begin(b, sl->kind == WK_SLOT_SYNTH_PARSE ? PGW_MSG_PARSE_COMPLETE
							     : PGW_MSG_CLOSE_COMPLETE);
		pgw_end(b);
		wk_prep_slot_end(s, sl, false);
		wk_server_slot_pop(s);
	}
	return b->len ? wk_conn_send(&s->client->io, b) : 0;
}

static inline bool
wk_server_slot_ends(uint8_t kind, uint8_t type)
{
	switch (kind) {
	case WK_SLOT_PARSE:
		return type == PGW_MSG_PARSE_COMPLETE;
	case WK_SLOT_BIND:
		return type == PGW_MSG_BIND_COMPLETE;
	case WK_SLOT_CLOSE:
		return type == PGW_MSG_CLOSE_COMPLETE;
	case WK_SLOT_DESCRIBE_S:
	case WK_SLOT_DESCRIBE_P:
		return type == PGW_MSG_ROW_DESCRIPTION || type == PGW_MSG_NO_DATA;
	case WK_SLOT_EXECUTE:
		return type == PGW_MSG_COMMAND_COMPLETE || type == PGW_MSG_EMPTY_QUERY ||
		       type == PGW_MSG_PORTAL_SUSPENDED;
	default:
		return type == PGW_MSG_READY;
	}
}

/*
 * Match a reply with the slot it answers; true when the client must not
 * see it. An ErrorResponse ends the current slot and every slot up to the
 * next Sync (the server skips those messages): a failed Parse leaves nothing
 * prepared.
 */
static bool
wk_server_slot_reply(struct wk_server *s, uint8_t type)
{
	struct wk_slot *sl;
	bool is_swallow;

	if (type == PGW_MSG_NOTICE || type == PGW_MSG_PARAMETER_STATUS ||
	    type == PGW_MSG_NOTIFICATION)
		return false;
	/* the caller has emitted the synthetic replies due before this message */
	sl = wk_server_slot_head(s);
	if (!sl)
		return false;
	if (type == PGW_MSG_ERROR) {
		bool is_first = true, is_refused = true;

		s->error_slot_kind = sl->kind; /* what the error is about (wk_server_error_name) */
		/*
		 * An extended-protocol error: the server skips every message up
		 * to the next Sync, a client's simple Query or FunctionCall sent
		 * behind unsynced messages among them (it owes no ReadyForQuery)
		 */
		while ((sl = wk_server_slot_head(s)) && sl->kind != WK_SLOT_SYNC &&
		       (sl->kind != WK_SLOT_QUERY || (!is_first && sl->is_skippable))) {
			if (sl->is_unnamed_copy) {
				if (s->unnamed_id &&
				    wk_unnamed_tag(s->unnamed_id) == sl->unnamed_tag)
					s->unnamed_id = 0; /* to be prepared again */
			} else if (sl->unnamed_tag) {
				wk_client_unnamed_lost(s, sl, is_refused);
			}
			if (sl->kind == WK_SLOT_QUERY && s->expect_ready)
				s->expect_ready--;
			is_first = false;
			is_refused = is_refused && sl->is_for_next;
			wk_prep_slot_end(s, sl, true);
			wk_server_slot_pop(s);
		}
		if (sl && sl->kind == WK_SLOT_QUERY) {
			wk_prep_slot_end(s, sl, true);
			/* pgdog's own query: its errors are its own too */
			return sl->is_swallow;
		}
		return false;
	}
	is_swallow = sl->is_swallow;
	if (type == PGW_MSG_READY) {
		/*
		 * A ReadyForQuery ends everything up to its Sync or Query; what
		 * had no reply before them was skipped after an error (one that
		 * came before pgdog sent it: a Parse it injected then left nothing).
		 */
		while ((sl = wk_server_slot_head(s))) {
			uint8_t kind = sl->kind;

			if (sl->prep)
				wk_prep_slot_end(s, sl,
						 kind != WK_SLOT_SYNC && kind != WK_SLOT_QUERY);
			wk_server_slot_pop(s);
			if (kind == WK_SLOT_SYNC || kind == WK_SLOT_QUERY)
				break;
		}
		return is_swallow;
	}
	if (wk_server_slot_ends(sl->kind, type)) {
		if (sl->prep)
			wk_prep_slot_end(s, sl, false);
		if (UNLIKELY(sl->is_end_mark))
			s->is_end_mark_ran = type == PGW_MSG_COMMAND_COMPLETE;
		if (UNLIKELY(sl->is_unnamed_copy))
			wk_client_unnamed_copied(s, sl);
		else if (sl->unnamed_tag)
			wk_client_unnamed_parsed(s, sl);
		wk_server_slot_pop(s);
	}
	return is_swallow;
}

/*
 * A transaction ended (ReadyForQuery 'I'): the client's pending SET/RESET
 * take effect if it committed. After an error the server's settings are
 * not known for sure (a savepoint may have kept some): it gets RESET ALL
 * before anyone else uses it.
 */
static int
wk_server_tx_end(struct wk_server *s, struct wk_client *c)
{
	bool is_commit = !s->has_tx_error && !s->is_tag_rollback, has_reset = false;

	if (!c->session.pending_cnt)
		return 0;
	if (is_commit &&
	    wk_session_apply_ops(&c->session, &s->applied, &has_reset, c->session.rfq_seen) < 0)
		s->is_dirty = true;
	else if (!is_commit && s->has_tx_error)
		s->is_dirty = true;
	if (!is_commit && s->is_tag_discard) {
		/* a DISCARD ALL ran: PostgreSQL committed it on its own, it stands */
		wk_settings_clear(&s->applied);
		has_reset = true;
	}
	s->needs_resync |= has_reset;
	if (wk_session_end_tx(&c->session, is_commit, c->session.rfq_seen) < 0) {
		s->is_dirty = true;
		return -1;
	}
	if (!is_commit && s->is_tag_discard)
		wk_session_reset_all(&c->session);
	return 0;
}

/*
 * A COMMIT or ROLLBACK executed in the middle of a request ended the
 * transaction (CommandComplete, is_tag_rollback read): the SETs before it
 * stand or go now, whatever follows it in the request (wk_client_end_mark).
 * WK_CLOSED when the client was closed (out of memory).
 */
static int
wk_server_end_at_mark(struct wk_server *s, struct wk_client *c)
{
	bool has_reset;

	s->is_end_mark_ran = false;
	if (wk_session_end_at_mark(&c->session, &s->applied, !s->is_tag_rollback, &has_reset) < 0) {
		s->is_dirty = true;
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	}
	s->needs_resync |= has_reset;
	s->is_tag_rollback = false; /* what follows is a new transaction's */
	return 0;
}

/*
 * After a RESET the server holds its own defaults where PostgreSQL would
 * hold the client's startup values: when the client keeps this server,
 * apply them again now (replies swallowed, ParameterStatus passed on).
 */
static void
wk_server_resync(struct wk_server *s, struct wk_client *c)
{
	s->needs_resync = false;
	(void)wk_server_sync_session(s, c);
}

int
wk_server_sync_session(struct wk_server *s, struct wk_client *c)
{
	struct pgw_buf *b = &g_wk.scratch;
	int queries;

	pgw_buf_reset(b);
	queries = wk_session_sync_memo(&c->session, &s->applied, s->params, s->params_cnt,
				       s->params_gen, &s->sync_memo, b);
	if (queries < 0 || (queries > 0 && wk_server_send_internal(s, b, (uint32_t)queries) < 0)) {
		s->is_dirty = true; /* its values are not known: reset before reuse */
		return -1;
	}
	return 0;
}

/*
 * Count n bytes moved from s to c: the server's and client's rows and the
 * pool's total_sent. Called before they can reach the client, so a client
 * that has its reply finds it in SHOW STATS and /metrics.
 */
static void
wk_server_count_sent(struct wk_server *s, struct wk_client *c, size_t n)
{
	shm_server((uint32_t)g_wk.slot, s->row)->bytes_received += n;
	if (n) {
		shm_client((uint32_t)g_wk.slot, c->row)->bytes_sent += n;
		wk_stats_add(s->pool, SHM_STAT_SENT, n);
	}
}

/* The ReadyForQuery that ends the transaction has moved (and is counted): give the server back. */
static enum wk_rc
wk_server_release_due(struct wk_server *s)
{
	struct wk_client *c = s->client;

	wk_client_detach(c);
	/* the client may have the next transaction queued already */
	if (c->state == WK_CLIENT_IDLE && evbuffer_get_length(c->io.in))
		(void)wk_client_resume_input(c);
	return WK_OK;
}

void
wk_server_checkin(struct wk_server *s)
{
	struct pgw_buf *b = &g_wk.scratch;
	uint32_t queries = 0;

	s->client = NULL;
	wk_stats_server_unlinked(s);
	s->read_paused = false;
	s->is_tracked = false;
	wk_server_slots_clear(s);
	wk_stream_read_on(&s->io);
	if (UNLIKELY(s->is_dirty || g_cfg->server_reset_query_always))
		pgw_buf_reset(b); /* queries follow */
	if (s->is_dirty) {
		pgw_put_query(b, "RESET ALL");
		queries++;
		wk_settings_clear(&s->applied);
		s->is_dirty = false;
	}
	if (g_cfg->server_reset_query_always && g_cfg->server_reset_query &&
	    *g_cfg->server_reset_query) {
		pgw_put_query(b, g_cfg->server_reset_query);
		queries++;
		wk_settings_clear(&s->applied);
		wk_prep_held_after_query(&s->held, g_cfg->server_reset_query);
	}
	if (queries == 0) {
		wk_pool_server_ready(s->pool, s);
		if (s->state == WK_SERVER_IDLE && evbuffer_get_length(s->io.in))
			wk_server_on_idle(s);
		return;
	}
	wk_server_set_state(s, WK_SERVER_RESET);
	wk_stats_add(s->pool, SHM_STAT_CLEANED, 1);
	s->internal_ready = 0;
	if (wk_server_send_internal(s, b, queries) < 0)
		wk_server_close(s, "out of memory");
}

/*
 * What of its client's pins a server still holds, one column each (in
 * WK_PIN_* order below), in its own transaction: session advisory locks,
 * LISTENs, WITH HOLD cursors (the only cursors left between
 * transactions), objects of its temporary schema (tables, views,
 * sequences, functions, types: each depends on its schema), a role or
 * session authorization other than the one it logged in with (the backend's
 * activity row keeps that user; a missing row counts as held), SQL prepared
 * statements (pgdog's own are protocol-level).
 * Schema-qualified throughout, operators too: the client's search_path
 * cannot change it.
 */
static const char wk_server_probe_sql[] =
	"SELECT EXISTS (SELECT FROM pg_catalog.pg_locks WHERE locktype OPERATOR(pg_catalog.=) "
	"'advisory' AND pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()), "
	"EXISTS (SELECT FROM pg_catalog.pg_listening_channels()), "
	"EXISTS (SELECT FROM pg_catalog.pg_cursors), "
	"EXISTS (SELECT FROM pg_catalog.pg_depend WHERE refclassid OPERATOR(pg_catalog.=) "
	"'pg_catalog.pg_namespace'::pg_catalog.regclass AND refobjid OPERATOR(pg_catalog.=) "
	"pg_catalog.pg_my_temp_schema()), "
	"pg_catalog.current_setting('role') OPERATOR(pg_catalog.<>) 'none' OR NOT EXISTS "
	"(SELECT FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) a, "
	"pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) a.usesysid AND r.rolname "
	"OPERATOR(pg_catalog.=) pg_catalog.\"session_user\"()), "
	"EXISTS (SELECT FROM pg_catalog.pg_prepared_statements WHERE from_sql)";
static const unsigned wk_server_probe_pins[] = { WK_PIN_ADVISORY, WK_PIN_LISTEN, WK_PIN_CURSOR,
						 WK_PIN_TEMP,     WK_PIN_ROLE,   WK_PIN_PREPARED };
#define WK_SERVER_PROBE_COLS (sizeof(wk_server_probe_pins) / sizeof(wk_server_probe_pins[0]))

/*
 * The client ran a statement that may have ended its pins (WK_PIN_ASK) and
 * has nothing more running on s: ask s what it still holds, behind the
 * ReadyForQuery going to the client; what it no longer holds is released
 * when the reply comes (wk_server_probe_done). Only when every pin is one
 * the server can be asked about, and the client is not halfway through a
 * message to s.
 */
static void
wk_server_pin_probe(struct wk_server *s, struct wk_client *c)
{
	struct pgw_buf *b = &g_wk.scratch;

	c->is_pin_ask_due = false;
	if (!c->pins || (c->pins & ~WK_PINS_ASKABLE) || s->is_probe_running || c->fwd_remaining ||
	    c->end_due || wk_client_is_session(c))
		return; /* (a client that is ending releases its server anyway) */
	/* untracked, named Parses are the client's own, and not from_sql */
	if ((c->pins & WK_PIN_PREPARED) && !s->is_tracked)
		return;
	pgw_buf_reset(b);
	pgw_put_query(b, wk_server_probe_sql);
	s->probe_skip = s->internal_ready;
	s->probe_held = c->pins; /* until its row says otherwise */
	s->probe_gen = c->pin_gen;
	if (b->has_error || wk_server_send_internal(s, b, 1) < 0) {
		s->is_dirty = true; /* reset before reuse, as for pgdog's other queries */
		return;
	}
	s->is_probe_running = true;
	log_debug(&s->lctx, "asking the server what still pins it (0x%x)", c->pins);
}

/* The probe's DataRow: what the server still holds. */
static void
wk_server_probe_row(struct wk_server *s, const uint8_t *body, size_t len)
{
	unsigned held = 0;

	for (unsigned i = 0; i < WK_SERVER_PROBE_COLS; i++) {
		char v[8];

		if (pgw_parse_data_col(body, len, (unsigned)WK_SERVER_PROBE_COLS, i, v, sizeof(v)) <
			    0 ||
		    (v[0] != 't' && v[0] != 'f') || v[1] != '\0')
			return; /* not understood: all stay */
		if (v[0] == 't')
			held |= wk_server_probe_pins[i];
	}
	s->probe_held = held;
}

/*
 * The probe's ReadyForQuery has come: the pins s no longer holds are
 * released, unless the client pinned again since it was asked (asked again
 * then, at its next ReadyForQuery 'I'). True when nothing pins the client
 * any more and s has nothing of its running: s goes back to the pool.
 */
static bool
wk_server_probe_done(struct wk_server *s, struct wk_client *c)
{
	unsigned gone;

	s->is_probe_running = false;
	if (!c || s->state != WK_SERVER_ACTIVE)
		return false;
	if (c->pin_gen != s->probe_gen) {
		/* a statement sent since may have made what the server did not hold then */
		c->is_pin_ask_due = true;
		return false;
	}
	gone = c->pins & WK_PINS_ASKABLE & ~s->probe_held;
	if (gone) {
		c->pins &= ~gone;
		log_debug(&c->lctx, "the server no longer holds what pinned it (0x%x), 0x%x left",
			  gone, c->pins);
	}
	return !c->pins && s->internal_ready == 0 && s->expect_ready == 0 && !s->has_unsynced &&
	       c->fwd_remaining == 0 && !wk_client_is_session(c) && !wk_client_cancel_due(c, s);
}

/*
 * A ReadyForQuery with status st that answers the client's requests (not
 * pgdog's own queries): statistics, the end of a transaction, and whether
 * the server goes back to the pool once the message has moved
 * (is_release_due). -1: the session's values could not be kept (out of
 * memory); -2: a transaction block in statement mode (a BEGIN pgdog did not
 * refuse); the caller ends the session (wk_server_session_lost).
 */
static int
wk_server_client_ready(struct wk_server *s, struct wk_client *c, char st)
{
	if (s->expect_ready)
		s->expect_ready--;
	if (c) {
		c->session.rfq_seen++;
		if (st == 'I')
			c->idle_rfq = c->session.rfq_seen; /* its portals are gone */
		/* its request ended without the tag: refused or skipped, it dropped nothing */
		if (UNLIKELY(c->is_dealloc_tag_due) && c->session.rfq_seen >= c->dealloc_tag_rfq) {
			c->is_dealloc_tag_due = false;
			c->is_pin_after_tag = false;
		}
		if (s->expect_ready == 0 && !s->has_unsynced)
			wk_client_running(c,
					  false); /* a cancel now is dropped, as PostgreSQL does */
	}
	wk_stats_ready(s, c, st);
	if (UNLIKELY(st != 'I' && c && c->pooler_mode == CONFIG_POOLER_STATEMENT))
		return -2;
	if (st == 'T') {
		/*
		 * Still in the block after an error: it was rolled back to a
		 * savepoint, or ended AND CHAIN; the block can commit again
		 * (SETs pending from before pinned the server: wk_client_track)
		 */
		s->has_tx_error = false;
		s->is_tag_rollback = false;
	}
	if (UNLIKELY(c && c->end_due) && st != 'I' && s->expect_ready == 0)
		s->is_end_due = true; /* in its block: it ends after this (rolled back) */
	if (st != 'I')
		return 0;
	shm_server((uint32_t)g_wk.slot, s->row)->transactions++;
	if (c) {
		shm_client((uint32_t)g_wk.slot, c->row)->transactions++;
		if (UNLIKELY(c->unpin_due))
			wk_client_unpin_settle(c, !s->has_tx_error && !s->is_tag_rollback);
		if (wk_server_tx_end(s, c) < 0)
			return -1;
		if (s->expect_ready == 0 && !s->has_unsynced && !c->pins && c->fwd_remaining == 0 &&
		    !wk_client_is_session(c) && !wk_client_cancel_due(c, s))
			s->is_release_due = true;
		else if (s->needs_resync && s->expect_ready == 0 && !s->has_unsynced)
			wk_server_resync(s, c);
		/* after the resync's queries: the probe's reply is the last */
		if (UNLIKELY(c->is_pin_ask_due) && !s->is_release_due && s->expect_ready == 0 &&
		    !s->has_unsynced)
			wk_server_pin_probe(s, c);
		/* given back, the client reads its next message idle: its end_due then */
		if (UNLIKELY(c->end_due) && !s->is_release_due && s->expect_ready == 0)
			s->is_end_due = true;
	}
	if (c && c->pubsub) {
		/* pub/sub: LISTEN in the block takes effect if it committed */
		wk_pubsub_client_tx_end(c, !s->is_tag_rollback);
		s->is_notify_due = wk_pubsub_has_queued(c);
	}
	s->has_tx_error = false;
	s->is_tag_rollback = false;
	s->is_tag_discard = false;
	return 0;
}

static void
wk_server_session_lost(struct wk_client *c, int why)
{
	if (why == -2)
		/* the server's block is rolled back when the client goes (wk_server_release) */
		wk_client_fatal(c, SQLSTATE_FEATURE_NOT_SUPPORTED,
				"transaction blocks are not allowed in statement pooling mode");
	else
		wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY,
				"out of memory: cannot keep the session's settings");
}

/* Move the batch of bytes decided for the client (or drop it when there is none). */
static void
wk_server_flush(struct evbuffer *in, struct evbuffer *out, size_t *pending, size_t *avail,
		size_t *moved)
{
	if (!*pending)
		return;
	if (out)
		evbuffer_remove_buffer(in, out, *pending);
	else
		evbuffer_drain(in, *pending);
	*moved += *pending;
	*avail -= *pending;
	*pending = 0;
}

/*
 * Move the batch decided so far, then read the message at the front of in
 * whole (at most max bytes): true with *h and *msg set (and *avail what in
 * holds), false while it is not all there.
 */
static bool
wk_server_front_whole(struct evbuffer *in, struct evbuffer *out, size_t *off, size_t *avail,
		      size_t *moved, uint32_t max, struct pgw_hdr *h, const uint8_t **msg)
{
	wk_server_flush(in, out, off, avail, moved);
	if (wk_conn_peek(in, max, true, h, msg) != WK_PEEK_WHOLE)
		return false;
	*avail = evbuffer_get_length(in);
	return true;
}

/*
 * The last flush before wk_server_forward() returns: as wk_server_flush(),
 * but a run that is all of the input may trade buffers with the client's
 * empty output (wk_stream_take()); s->io.in and c->io.out must be read
 * again after it.
 */
static void
wk_server_flush_last(struct wk_server *s, struct wk_client *c, size_t *pending, size_t *avail,
		     size_t *moved)
{
	if (!*pending)
		return;
	if (c && c->pubsub)
		/*
		 * pub/sub: notifications held during the transaction, or the FATAL
		 * of an overflow, may follow at once; they go out with the reply in
		 * one write, as a client reading the reply expects.
		 */
		wk_stream_take(&c->io, &s->io, *pending);
	else if (c)
		wk_stream_take_last(&c->io, &s->io, *pending);
	else
		evbuffer_drain(s->io.in, *pending);
	*moved += *pending;
	*avail -= *pending;
	*pending = 0;
}

/*
 * The common case of wk_server_forward(), without its general checks:
 * replies pgdog passes on as they are and that change nothing beyond the
 * reply slots (descriptions, rows, completions). Returns the offset after
 * the last such message (when it ends beyond avail, the rest of it is
 * s->fwd_remaining and the offset is avail); stops before the first message
 * the general loop must see, and after a message that leaves pgdog's own
 * replies due (*is_synth_due). The caller checked that c is linked, that
 * none of pgdog's own queries runs, and that no message is partly forwarded
 * or being dropped, and that c is no pub/sub client.
 */
static const bool wk_server_plain_types[256] = {
	[PGW_MSG_DATA_ROW] = true,
	[PGW_MSG_ROW_DESCRIPTION] = true,
	[PGW_MSG_PARSE_COMPLETE] = true,
	[PGW_MSG_BIND_COMPLETE] = true,
	[PGW_MSG_CLOSE_COMPLETE] = true,
	[PGW_MSG_NO_DATA] = true,
	[PGW_MSG_PARAMETER_DESCRIPTION] = true,
	[PGW_MSG_PORTAL_SUSPENDED] = true,
	[PGW_MSG_EMPTY_QUERY] = true,
	[PGW_MSG_COPY_DATA] = true,
	[PGW_MSG_COMMAND_COMPLETE] = true, /* unless the transaction's end must be known */
};

static size_t
wk_server_forward_plain(struct wk_server *s, struct wk_client *c, struct wk_cursor *cur, size_t off,
			size_t avail, bool *is_synth_due)
{
	/* the transaction's end must be known: CommandComplete goes the general way */
	bool has_pending = c->session.pending_cnt != 0 || c->is_dealloc_tag_due || c->unpin_due;
	/* the head of the reply slots: it changes only when a reply ends it */
	struct wk_slot *sl = s->is_tracked ? wk_server_slot_head(s) : NULL;

	/* swallowed, pgdog's own replies first, or a statement's result it reads: the general loop */
	if (sl && (sl->is_swallow || sl->kind == WK_SLOT_SYNTH_PARSE ||
		   sl->kind == WK_SLOT_SYNTH_CLOSE || (sl->prep && sl->kind == WK_SLOT_DESCRIBE_S)))
		return off;
	while (avail - off >= PGW_HDR_LEN) {
		uint8_t tmp[PGW_HDR_LEN];
		const uint8_t *hdr = wk_cursor_at(cur, off, PGW_HDR_LEN, tmp);
		struct pgw_hdr h;
		size_t size;
		bool is_popped = false;

		if (!hdr || !wk_hdr_parse(hdr, &h) || !wk_server_plain_types[h.type] ||
		    (h.type == PGW_MSG_COMMAND_COMPLETE && has_pending))
			return off;
		/* statistics read a CommandComplete's whole tag: the general loop waits for it */
		if (h.type == PGW_MSG_COMMAND_COMPLETE && h.len <= 4 + WK_STATS_TAG_MAX &&
		    avail - off < pgw_msg_size(&h))
			return off;
		if (sl && wk_server_slot_ends(sl->kind, h.type)) {
			if (sl->prep)
				wk_prep_slot_end(s, sl, false);
			wk_server_slot_pop(s);
			sl = wk_server_slot_head(s);
			is_popped = true;
		}
		if (h.type == PGW_MSG_PARSE_COMPLETE)
			wk_stats_add(s->pool, SHM_STAT_SERVER_PARSE, 1);
		else if (h.type == PGW_MSG_COMMAND_COMPLETE) {
			wk_stats_command(s, cur, off, h.len - 4);
			s->is_copy_in = false;
		}
		size = pgw_msg_size(&h);
		if (size > avail - off) {
			s->fwd_remaining = size - (avail - off);
			return avail;
		}
		off += size;
		if (is_popped && sl) {
			/* replies pgdog owes right after this message, or a swallowed one next */
			if (sl->kind == WK_SLOT_SYNTH_PARSE || sl->kind == WK_SLOT_SYNTH_CLOSE) {
				*is_synth_due = true;
				return off;
			}
			if (sl->is_swallow || (sl->prep && sl->kind == WK_SLOT_DESCRIBE_S))
				return off;
		}
	}
	return off;
}

/*
 * The server has answered the Describe a client's message waited for
 * (wk_client_prep_verify): that message, and what follows it, go on.
 */
static void
wk_server_verify_resume(struct wk_server *s)
{
	struct wk_client *c = s->client;

	s->is_verify_resume = false;
	if (c && c->server == s && c->state == WK_CLIENT_ACTIVE && evbuffer_get_length(c->io.in))
		(void)wk_client_resume_input(c);
}

/*
 * An extended-protocol COPY FROM STDIN has begun: the Syncs the client sent
 * behind its Execute went to a server in copy-in mode, which ignores them,
 * so they owe no ReadyForQuery (their reply slots go too); the request is
 * unsynced again until the client's next Sync.
 */
static void
wk_server_copy_syncs_back(struct wk_server *s)
{
	uint32_t n = s->syncs_since_exec;

	s->syncs_since_exec = 0;
	while (n && s->expect_ready) {
		if (s->slots_cnt > 1) {
			struct wk_slot *sl =
				&s->slots[(s->slots_head + s->slots_cnt - 1) & (s->slots_cap - 1)];

			if (sl->kind != WK_SLOT_SYNC)
				break;
			s->slots_cnt--;
		} else if (s->is_tracked) {
			break;
		}
		s->expect_ready--;
		n--;
		s->has_unsynced = true;
	}
	/* a Sync sent after its CopyDone (in the same write) still ends the request */
	if (s->is_copy_end_since_exec && s->is_synced_after_copy_end)
		s->has_unsynced = false;
	log_debug(&s->lctx, "COPY FROM STDIN: the Syncs sent behind its Execute are ignored");
}

/* A drained server's reset is over (st: its status): back to the pool, or closed. */
static void
wk_server_reset_end(struct wk_server *s, char st)
{
	if (st == 'I' && !s->internal_failed) {
		wk_pool_server_ready(s->pool, s);
	} else {
		wk_stats_add(s->pool, SHM_STAT_OUT_OF_SYNC, 1);
		wk_server_close(s, "reset failed");
	}
}

/*
 * The replies owed to a client that left are all in (st: the server's
 * status): the rollback and reset go out. 1: sent; 0: none is needed; -1:
 * the server was closed.
 */
static int
wk_server_drained(struct wk_server *s, char st)
{
	struct pgw_buf *b = &g_wk.scratch;
	uint32_t resets;

	pgw_buf_reset(b);
	resets = wk_server_put_reset(s, b, s->reset_after_drain == 2, st != 'I');
	s->reset_after_drain = 0;
	if (resets && (b->has_error || wk_server_send_internal(s, b, resets) < 0)) {
		wk_server_close(s, "out of memory");
		return -1;
	}
	return resets ? 1 : 0;
}

/*
 * A row (or COPY data) for a client that left: PostgreSQL, whose write to
 * a gone client fails, would end the query and abort its transaction. The
 * query is cancelled for that, once per drain (wk_cancel_server).
 */
static void
wk_server_gone_output(struct wk_server *s)
{
	s->is_gone_cancel_sent = true;
	if (!s->backend_pid)
		return;
	log_debug(&s->lctx, "rows for a client that left: cancelling its query");
	(void)wk_cancel_server(s);
}

void
wk_server_gone_cancel_landed(struct wk_server *s)
{
	if (!s->is_gone_cancel_wait)
		return;
	s->is_gone_cancel_wait = false;
	if (s->state != WK_SERVER_RESET)
		return;
	if (wk_server_drained(s, s->tx_status) == 0)
		wk_server_reset_end(s, s->tx_status); /* nothing to roll back or reset */
}

/*
 * Forward what the server sent to its client. Whole runs of messages move
 * with one evbuffer_remove_buffer(); the batch is flushed only before
 * something that must be at the front of the buffer (a message pgdog reads
 * whole or drops) or that writes to the client itself.
 */
enum wk_rc
wk_server_forward(struct wk_server *s)
{
	struct wk_client *c = s->client;
	struct evbuffer *in = s->io.in;
	struct evbuffer *out = c ? c->io.out : NULL;
	struct shm_server *r = shm_server((uint32_t)g_wk.slot, s->row);
	size_t moved = 0, off = 0, avail = evbuffer_get_length(in);
	struct wk_cursor cur;
	bool has_cur = false; /* cur matches the buffer */
	/* pub/sub state cannot appear during this call: tested once, not per message */
	bool is_pubsub = c && c->pubsub;

	/* whatever this adds to out goes to the socket when the callback ends */
	if (c)
		wk_stream_want_write(&c->io);
	while (off < avail) {
		struct pgw_hdr h;
		uint8_t tmp[PGW_HDR_LEN + 12];
		const uint8_t *hdr; /* n bytes: the header, and the first bytes of the body */
		const uint8_t *msg = NULL;
		size_t n;
		bool is_held;     /* a ReadyForQuery pub/sub held once (wk_pubsub_server_reply) */
		bool is_replaced; /* pgdog wrote its own reply in place of this one */

		if (s->fwd_remaining) {
			n = avail - off < s->fwd_remaining ? avail - off : s->fwd_remaining;
			if (out && (s->internal_ready == 0 || s->is_fwd_internal) &&
			    !s->is_discarding) {
				off += n;
			} else {
				wk_server_flush(in, out, &off, &avail, &moved);
				has_cur = false;
				evbuffer_drain(in, n);
				avail -= n;
				has_cur = false;
			}
			s->fwd_remaining -= n;
			if (s->fwd_remaining == 0) {
				s->is_discarding = false;
				s->is_fwd_internal = false;
				/* replies pgdog owes right after this message */
				if (s->is_tracked && wk_server_synth_due(s)) {
					wk_server_flush(in, out, &off, &avail, &moved);
					has_cur = false;
					if (wk_server_emit_synth(s) < 0)
						log_warn(&s->lctx,
							 "out of memory for a synthetic reply");
				}
				if (s->is_release_due) {
					wk_server_flush_last(s, c, &off, &avail, &moved);
					wk_server_count_sent(s, c, moved);
					return wk_server_release_due(s);
				}
				if (UNLIKELY(s->is_end_due) && c) {
					/* the replies it was owed are out: now its Terminate or FATAL */
					wk_server_flush_last(s, c, &off, &avail, &moved);
					wk_server_count_sent(s, c, moved);
					s->is_end_due = false;
					(void)wk_client_end(c);
					return WK_CLOSED;
				}
				if (s->is_notify_due) {
					/* pub/sub: notifications held during the transaction follow its end */
					wk_server_flush(in, out, &off, &avail, &moved);
					has_cur = false;
					s->is_notify_due = false;
					if (c && wk_pubsub_client_deliver(c) == WK_CLOSED)
						return WK_CLOSED;
				}
			}
			continue;
		}
		if (avail - off < PGW_HDR_LEN)
			break;
		if (!has_cur) {
			wk_cursor_init(&cur, in);
			has_cur = true;
		}
		/* pub/sub follows its clients' replies itself: the general loop only */
		if (c && !c->pubsub && s->internal_ready == 0 && !s->is_discarding) {
			bool is_synth_due = false;

			off = wk_server_forward_plain(s, c, &cur, off, avail, &is_synth_due);
			if (is_synth_due) {
				/* replies pgdog owes right after this message */
				wk_server_flush(in, out, &off, &avail, &moved);
				has_cur = false;
				if (wk_server_emit_synth(s) < 0)
					log_warn(&s->lctx, "out of memory for a synthetic reply");
				continue;
			}
			if (s->fwd_remaining || avail - off < PGW_HDR_LEN)
				continue;
		}
		n = avail - off < sizeof(tmp) ? avail - off : sizeof(tmp);
		hdr = wk_cursor_at(&cur, off, n, tmp);
		if (!hdr)
			break;
		if (!wk_hdr_parse(hdr, &h))
			return wk_server_broken(s, "invalid message length from server");
		if (h.type == PGW_MSG_READY && n < PGW_HDR_LEN + 1)
			break; /* its status byte first */
		/*
		 * Statistics read a CommandComplete's whole tag: wait for its few
		 * bytes here, before the message counts against the reply slots.
		 */
		if (h.type == PGW_MSG_COMMAND_COMPLETE && h.len <= 4 + WK_STATS_TAG_MAX &&
		    avail - off < pgw_msg_size(&h))
			break;
		/* an error about a Query pgdog rewrote may get its position changed: whole first */
		if (h.type == PGW_MSG_ERROR && wk_server_error_is_read(s, c) &&
		    h.len <= WK_SERVER_LOGIN_MSG_MAX && avail - off < pgw_msg_size(&h))
			break;
		/* a reply about a client's statement is read: whole first */
		if (UNLIKELY(avail - off < pgw_msg_size(&h)) && s->is_tracked &&
		    s->internal_ready == 0 && c && pgw_msg_size(&h) <= WK_SERVER_PREP_REPLY_MAX &&
		    wk_server_is_prep_reply(s, h.type))
			break;
		/* pub/sub may rewrite a CommandComplete it follows: whole first */
		if (is_pubsub && h.type == PGW_MSG_COMMAND_COMPLETE &&
		    avail - off < pgw_msg_size(&h) && s->internal_ready == 0 &&
		    wk_pubsub_is_watching(c))
			break;
		is_held = is_pubsub && h.type == PGW_MSG_READY && s->internal_ready == 0 &&
			  wk_pubsub_is_holding(c);
		if (is_held) {
			/* a ReadyForQuery pub/sub held: its slots were settled the first time */
			wk_server_flush(in, out, &off, &avail, &moved);
			has_cur = false;
			if (wk_pubsub_server_reply(c, in, &h, false) == WK_PUBSUB_HOLD) {
				s->read_paused = true;
				wk_stream_read_off(&s->io);
				break;
			}
		}
		if (s->is_tracked && s->internal_ready == 0 && c && !is_held) {
			if (wk_server_synth_due(s)) {
				wk_server_flush(in, out, &off, &avail, &moved);
				has_cur = false;
				if (wk_server_emit_synth(s) < 0)
					log_warn(&s->lctx, "out of memory for a synthetic reply");
			}
			is_replaced = false;
			if (UNLIKELY(wk_server_is_prep_reply(s, h.type)) &&
			    pgw_msg_size(&h) <= WK_SERVER_PREP_REPLY_MAX) {
				has_cur = false;
				if (!wk_server_front_whole(in, out, &off, &avail, &moved,
							   WK_SERVER_PREP_REPLY_MAX, &h, &msg))
					goto done;
				is_replaced = wk_server_prep_reply(s, &h, msg, out);
			}
			s->is_discarding = wk_server_slot_reply(s, h.type) || is_replaced;
		}
		if (is_pubsub && !is_held && s->internal_ready == 0 &&
		    (h.type == PGW_MSG_READY
			     ? wk_pubsub_follows_ready(c)
			     : (h.type == PGW_MSG_COMMAND_COMPLETE || h.type == PGW_MSG_ERROR) &&
				       wk_pubsub_is_watching(c))) {
			/* pub/sub follows this client's statements (LISTEN among others) */
			int prc;

			wk_server_flush(in, out, &off, &avail, &moved);
			has_cur = false;
			prc = wk_pubsub_server_reply(c, in, &h, s->is_discarding);
			if (prc < 0)
				return WK_CLOSED;
			avail = evbuffer_get_length(in);
			if (prc == WK_PUBSUB_DROPPED)
				continue;
			if (prc == WK_PUBSUB_HOLD) {
				/* resumed by pub/sub once its listener has run the LISTEN */
				s->read_paused = true;
				wk_stream_read_off(&s->io);
				break;
			}
			n = avail < sizeof(tmp) ? avail : sizeof(tmp);
			if (evbuffer_copyout(in, tmp, n) != (ev_ssize_t)n)
				break;
			hdr = tmp;
		}
		switch (h.type) {
		case PGW_MSG_READY: {
			char st = (char)hdr[PGW_HDR_LEN];
			int why;

			if (h.len != 5 || (st != 'I' && st != 'T' && st != 'E'))
				return wk_server_broken(s, "malformed ReadyForQuery from server");
			s->tx_status = st;
			s->ready_us = g_wk.mono_us;
			s->has_error_unsynced = false;
			if (s->internal_ready > 0) {
				bool is_probe_end = false;

				wk_server_flush(in, out, &off, &avail, &moved);
				has_cur = false;
				s->internal_ready--;
				if (UNLIKELY(s->is_probe_running)) {
					if (s->probe_skip)
						s->probe_skip--;
					else
						is_probe_end = true;
				}
				/* SHOW SERVERS tx_status: pgdog's own ROLLBACK or reset ends it too */
				shm_server((uint32_t)g_wk.slot, s->row)->tx_status = (uint8_t)st;
				evbuffer_drain(in, pgw_msg_size(&h));
				avail = evbuffer_get_length(in);
				has_cur = false;
				if (s->internal_ready == 0 && s->state == WK_SERVER_RESET &&
				    s->reset_after_drain && !s->internal_failed) {
					/* the left client's replies are drained: now the cleanup */
					int drc;

					if (UNLIKELY(s->gone_cancel != NULL)) {
						/* after pgdog's cancel has landed (it must not hit the reset) */
						s->is_gone_cancel_wait = true;
						goto done;
					}
					drc = wk_server_drained(s, st);
					if (drc < 0)
						return WK_CLOSED;
					if (drc > 0)
						continue;
				}
				if (is_probe_end && wk_server_probe_done(s, c)) {
					/* the client is idle and nothing pins it now */
					wk_server_flush_last(s, c, &off, &avail, &moved);
					wk_server_count_sent(s, c, moved);
					return wk_server_release_due(s);
				}
				if (s->internal_ready == 0 && s->state == WK_SERVER_ACTIVE && c &&
				    c->is_login_check && !s->internal_failed) {
					/* the client's startup values are taken: its login ends */
					wk_server_flush_last(s, c, &off, &avail, &moved);
					wk_server_count_sent(s, c, moved);
					(void)wk_client_login_checked(c);
					return WK_OK;
				}
				if (s->internal_ready == 0 && s->state == WK_SERVER_RESET) {
					wk_server_reset_end(s, st);
					return WK_CLOSED;
				}
				continue;
			}
			why = wk_server_client_ready(s, c, st);
			if (why < 0) {
				/* the session's values are lost: end it, reset the server */
				wk_server_flush(in, out, &off, &avail, &moved);
				evbuffer_drain(in, pgw_msg_size(&h));
				wk_server_session_lost(c, why);
				return WK_CLOSED;
			}
			/*
			 * Queries of pgdog's own sent behind it (the client's startup
			 * values applied again on its pinned server after a RESET):
			 * this ReadyForQuery is still the client's
			 */
			if (s->internal_ready)
				s->is_fwd_internal = true;
			break;
		}
		case PGW_MSG_COPY_IN:
			s->is_copy_in = true;
			if (UNLIKELY(s->is_unsynced_wait)) {
				/* the COPY waits for the client: so much for the answers */
				s->is_unsynced_wait = false;
				s->is_verify_wait = false;
				s->is_verify_resume = true;
			}
			s->is_copy_client_done = false;
			if (UNLIKELY(c && c->end_due))
				s->is_end_due = true; /* its COPY cannot go on: 08P01 after this */
			if (!s->is_last_exec_query && s->syncs_since_exec && s->internal_ready == 0)
				wk_server_copy_syncs_back(s);
			break;
		case PGW_MSG_PARSE_COMPLETE:
			wk_stats_add(s->pool, SHM_STAT_SERVER_PARSE, 1);
			break;
		case PGW_MSG_NOTIFICATION:
			/*
			 * A notification for the client's LISTEN, delivered while
			 * pgdog's own query ran on its pinned server: the client's
			 */
			if (s->internal_ready > 0 && c && s->state == WK_SERVER_ACTIVE)
				s->is_fwd_internal = true;
			break;
		case PGW_MSG_COPY_DATA:
		case PGW_MSG_DATA_ROW:
			if (UNLIKELY(!c) && s->reset_after_drain && !s->is_gone_cancel_sent &&
			    !s->is_probe_running)
				wk_server_gone_output(s);
			if (h.type == PGW_MSG_DATA_ROW && UNLIKELY(s->is_probe_running) &&
			    s->internal_ready > 0 && s->probe_skip == 0) {
				if (h.len > WK_SERVER_LOGIN_MSG_MAX)
					return wk_server_broken(s, "oversized row from server");
				has_cur = false;
				if (!wk_server_front_whole(in, out, &off, &avail, &moved,
							   WK_SERVER_LOGIN_MSG_MAX, &h, &msg))
					goto done;
				wk_server_probe_row(s, msg + PGW_HDR_LEN, h.len - 4);
			}
			break;
		case PGW_MSG_COMMAND_COMPLETE:
			if (!has_cur) {
				wk_cursor_init(&cur, in);
				has_cur = true;
			}
			wk_stats_command(s, &cur, off, h.len - 4);
			s->is_copy_in = false;
			/* only a session with SETs to settle needs to know how the transaction ends */
			if (c &&
			    (c->session.pending_cnt || c->is_dealloc_tag_due || c->unpin_due ||
			     (c->pubsub && wk_pubsub_has_pending(c))) &&
			    s->internal_ready == 0) {
				if (n < sizeof(tmp) && n < pgw_msg_size(&h))
					goto done; /* the tag's first bytes are not in yet */
				s->is_tag_rollback = h.len >= 4 + 8 &&
						     memcmp(hdr + PGW_HDR_LEN, "ROLLBACK", 8) == 0;
				if (UNLIKELY(s->is_end_mark_ran) &&
				    wk_server_end_at_mark(s, c) == WK_CLOSED)
					return WK_CLOSED;
				if (h.len == 4 + 12 &&
				    memcmp(hdr + PGW_HDR_LEN, "DISCARD ALL", 11) == 0) {
					s->is_tag_discard = true;
					if (c->is_dealloc_tag_due)
						wk_client_tag_ran(c, true);
				}
				if (c->is_dealloc_tag_due && h.len == 4 + 15 &&
				    memcmp(hdr + PGW_HDR_LEN, "DEALLOCATE A", 12) == 0)
					wk_client_tag_ran(c, false);
			}
			break;
		case PGW_MSG_PARAMETER_STATUS: {
			const char *name, *value;

			if (h.len > WK_SERVER_PARAM_MSG_MAX)
				return wk_server_broken(s, "oversized ParameterStatus from server");
			/* read whole, at the front */
			has_cur = false;
			if (!wk_server_front_whole(in, out, &off, &avail, &moved,
						   WK_SERVER_PARAM_MSG_MAX, &h, &msg))
				goto done;
			s->is_fwd_internal = false;
			if (pgw_parse_param_status(msg + PGW_HDR_LEN, h.len - 4, &name, &value) !=
			    0)
				break;
			wk_server_param_set(s, name, value);
			if (c && s->state == WK_SERVER_ACTIVE && !c->is_login_check) {
				/*
				 * Values pgdog's SETs for the client brought: it sees those
				 * it was not told yet, as PostgreSQL reports a change (at
				 * login, in the ParameterStatus list: wk_client_finish_login).
				 */
				int told = wk_client_param_status(c, name, value,
								  s->internal_ready > 0);

				s->is_fwd_internal = s->internal_ready > 0 && told != 0;
			}
			break;
		}
		case PGW_MSG_ERROR:
			s->is_copy_in = false;
			/* the severity field comes first: "SFATAL", as PostgreSQL writes it */
			if (n >= PGW_HDR_LEN + 6 && hdr[PGW_HDR_LEN] == 'S' &&
			    (memcmp(hdr + PGW_HDR_LEN + 1, "FATAL", 5) == 0 ||
			     memcmp(hdr + PGW_HDR_LEN + 1, "PANIC", 5) == 0))
				s->has_fatal = true;
			if (s->internal_ready == 0) {
				s->has_tx_error = true;
				/* no Sync or Query sent after it: the server skips what is sent now */
				s->has_error_unsynced = s->slots_cnt == 0;
				wk_stats_error(s, c);
			}
			if (wk_server_error_is_read(s, c) && s->internal_ready == 0 && c &&
			    !s->is_discarding && h.len <= WK_SERVER_LOGIN_MSG_MAX) {
				/* whole (waited for above): positions, names, the timeout's text */
				has_cur = false;
				if (wk_server_front_whole(in, out, &off, &avail, &moved,
							  WK_SERVER_LOGIN_MSG_MAX, &h, &msg) &&
				    wk_server_error_rewrite(
					    s, msg + PGW_HDR_LEN, h.len - 4, wk_server_head_map(s),
					    wk_server_timeout_text(s, msg, &h), out)) {
					moved += pgw_msg_size(&h);
					evbuffer_drain(in, pgw_msg_size(&h));
					avail = evbuffer_get_length(in);
					continue;
				}
			}
			if (s->internal_ready > 0 && s->is_probe_running && s->probe_skip == 0) {
				/* the probe failed (a statement_timeout of the client's?): all stay */
				s->probe_held = c ? c->pins : 0;
			} else if (s->internal_ready > 0) {
				if (h.len > WK_SERVER_LOGIN_MSG_MAX)
					return wk_server_broken(s, "oversized error from server");
				has_cur = false;
				if (!wk_server_front_whole(in, out, &off, &avail, &moved,
							   WK_SERVER_LOGIN_MSG_MAX, &h, &msg))
					goto done;
				wk_server_internal_error(s, msg + PGW_HDR_LEN, h.len - 4);
				/* the client is gone, and the server with it */
				if (s->state == WK_SERVER_CLOSING)
					return WK_CLOSED;
				c = s->client;
				out = c ? c->io.out : NULL;
				is_pubsub = c && c->pubsub;
				if (c)
					wk_stream_want_write(&c->io);
			}
			break;
		default:
			break;
		}
		s->fwd_remaining = pgw_msg_size(&h);
	}
done:
	wk_server_flush_last(s, c, &off, &avail, &moved);
	out = c ? c->io.out : NULL; /* the buffers may have traded places */
	if (c)
		wk_server_count_sent(s, c, moved);
	else
		r->bytes_received += moved;
	if (c && moved) {
		if (evbuffer_get_length(out) > WK_BACKPRESSURE_BYTES && !s->read_paused) {
			s->read_paused = true;
			wk_stream_read_off(&s->io);
		}
	}
	if (c && s->state == WK_SERVER_ACTIVE && g_wk.is_shutting_down)
		(void)wk_client_close_if_idle(c);
	if (UNLIKELY(s->is_verify_resume))
		wk_server_verify_resume(s);
	return WK_OK;
}

/*
 * wk_stream's on_flat: a reply read while nothing waited in the server's
 * input is handled in the worker's read buffer and sent to the client with
 * one send(), without passing through the two evbuffers (their add, swap,
 * writev and drain cost more than the rest of the reply's handling). Only
 * the common case: a linked client with nothing queued for it, none of
 * pgdog's own queries running, no message partly moved or being dropped, no
 * pub/sub; it takes the run of messages wk_server_forward_plain() passes
 * and a ReadyForQuery that ends the read. What it leaves goes through the
 * input buffer to wk_server_forward(), after what it sent.
 */
static size_t
wk_server_read_flat(void *arg, const uint8_t *buf, size_t len)
{
	struct wk_server *s = arg;
	struct wk_client *c = s->client;
	struct wk_cursor cur;
	size_t off, sent;
	bool is_synth_due = false, is_ready = false;

	if (s->state != WK_SERVER_ACTIVE || !c || c->pubsub || s->internal_ready ||
	    s->is_discarding || s->fwd_remaining || g_wk.is_shutting_down ||
	    !wk_stream_is_out_idle(&c->io))
		return 0;
	wk_clock_update();
	wk_cursor_flat(&cur, buf, len);
	off = wk_server_forward_plain(s, c, &cur, 0, len, &is_synth_due);
	sent = off;
	if (!is_synth_due && !s->fwd_remaining && len - off == PGW_HDR_LEN + 1 &&
	    buf[off] == PGW_MSG_READY && buf[off + 1] == 0 && buf[off + 2] == 0 &&
	    buf[off + 3] == 0 && buf[off + 4] == 5 && !(s->is_tracked && wk_server_synth_due(s))) {
		char st = (char)buf[off + PGW_HDR_LEN];

		if (st == 'I' || st == 'T' || st == 'E') {
			/* a swallowed ReadyForQuery (prepared statement rewriting) is not sent */
			bool is_dropped = s->is_tracked && wk_server_slot_reply(s, PGW_MSG_READY);

			s->tx_status = st;
			s->ready_us = g_wk.mono_us;
			s->has_error_unsynced = false;
			int why = wk_server_client_ready(s, c, st);

			if (why < 0) {
				wk_server_count_sent(s, c, sent);
				if (wk_stream_send(&c->io, buf, sent) < 0)
					log_warn(&s->lctx, "out of memory for a reply");
				wk_server_session_lost(c, why);
				return WK_STREAM_FLAT_GONE;
			}
			if (!is_dropped)
				sent = len;
			off = len;
			is_ready = true;
		}
	}
	if (off == 0)
		return 0;
	wk_server_count_sent(s, c, sent);
	if (wk_stream_send(&c->io, buf, sent) < 0) {
		wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory for a reply");
		return WK_STREAM_FLAT_GONE;
	}
	/* replies pgdog owes right after the last message */
	if (is_synth_due || (is_ready && s->is_tracked && wk_server_synth_due(s))) {
		if (wk_server_emit_synth(s) < 0)
			log_warn(&s->lctx, "out of memory for a synthetic reply");
	}
	if (is_ready && s->is_release_due) {
		(void)wk_server_release_due(s);
		return WK_STREAM_FLAT_GONE;
	}
	if (is_ready && UNLIKELY(s->is_end_due)) {
		s->is_end_due = false;
		(void)wk_client_end(c);
		return WK_STREAM_FLAT_GONE;
	}
	if (sent) {
		if (evbuffer_get_length(c->io.out) > WK_BACKPRESSURE_BYTES && !s->read_paused) {
			s->read_paused = true;
			wk_stream_read_off(&s->io);
		}
	}
	if (UNLIKELY(s->is_verify_resume))
		wk_server_verify_resume(s);
	return off;
}

bool
wk_server_next_msg(struct wk_server *s, uint32_t max, struct pgw_hdr *h, const uint8_t **msg,
		   const char *why)
{
	switch (wk_conn_peek(s->io.in, max, true, h, msg)) {
	case WK_PEEK_MORE:
	case WK_PEEK_HEADER:
		return false;
	case WK_PEEK_WHOLE:
		return true;
	default:
		wk_server_close(s, why);
		return false;
	}
}

/* Server talking while idle: only notices, parameter changes, or its death. */
static void
wk_server_on_idle(struct wk_server *s)
{
	struct evbuffer *in = s->io.in;
	struct pgw_hdr h;
	const uint8_t *msg;

	while (wk_conn_peek(in, WK_SERVER_LOGIN_MSG_MAX, true, &h, &msg) == WK_PEEK_WHOLE) {
		switch (h.type) {
		case PGW_MSG_NOTICE:
		case PGW_MSG_PARAMETER_STATUS:
		case PGW_MSG_NOTIFICATION:
			evbuffer_drain(in, pgw_msg_size(&h));
			continue;
		default:
			wk_server_close(s, "unexpected message from an idle server");
			return;
		}
	}
	if (evbuffer_get_length(in) >= PGW_HDR_LEN &&
	    wk_conn_peek(in, WK_SERVER_LOGIN_MSG_MAX, false, &h, &msg) != WK_PEEK_HEADER)
		wk_server_close(s, "invalid message from an idle server");
}

static void
wk_server_read_cb(void *arg)
{
	struct wk_server *s = arg;

	wk_clock_update();
	switch (s->state) {
	case WK_SERVER_LOGIN:
		(void)wk_server_on_login(s);
		break;
	case WK_SERVER_ACTIVE:
	case WK_SERVER_RESET:
		(void)wk_server_forward(s);
		break;
	case WK_SERVER_IDLE:
		if (s->is_listener)
			wk_pubsub_listener_read(s);
		else
			wk_server_on_idle(s);
		break;
	default:
		evbuffer_drain(s->io.in, evbuffer_get_length(s->io.in));
		break;
	}
}

/*
 * Append what leaves s clean for the pool: ROLLBACK when a block is open,
 * then server_reset_query (the session ended, or the server's settings are
 * not the pool's) or RESET ALL. Returns how many queries.
 */
static uint32_t
wk_server_put_reset(struct wk_server *s, struct pgw_buf *b, bool is_session_end, bool is_in_block)
{
	uint32_t queries = 0;

	if (is_in_block) {
		pgw_put_query(b, "ROLLBACK");
		queries++;
	}
	if ((is_session_end || s->is_dirty || g_cfg->server_reset_query_always) &&
	    g_cfg->server_reset_query && *g_cfg->server_reset_query) {
		pgw_put_query(b, g_cfg->server_reset_query);
		queries++;
		wk_settings_clear(&s->applied);
		wk_prep_held_after_query(&s->held, g_cfg->server_reset_query);
		s->is_dirty = false;
	} else if (s->is_dirty) {
		pgw_put_query(b, "RESET ALL");
		queries++;
		wk_settings_clear(&s->applied);
		s->is_dirty = false;
	}
	return queries;
}

void
wk_server_release(struct wk_server *s, bool is_session_end, bool is_cancel_due)
{
	struct pgw_buf *b = &g_wk.scratch;
	uint32_t queries = 0;

	s->client = NULL;
	wk_stats_server_unlinked(s);
	s->read_paused = false;
	s->is_tracked = false;
	wk_server_slots_clear(s);
	if (s->state != WK_SERVER_ACTIVE)
		return;
	wk_stream_read_on(&s->io);
	if (s->is_broken_request || s->internal_failed) {
		/* half a message went to the server: nothing can bring it back in step */
		wk_stats_add(s->pool, SHM_STAT_OUT_OF_SYNC, 1);
		wk_server_close(s, "client left in the middle of a message");
		return;
	}
	if (is_cancel_due) {
		wk_server_close(s, "client left with a cancel on its way to the server");
		return;
	}
	if (UNLIKELY(s->is_unreusable)) {
		wk_server_close(s, "its client loaded a library (LOAD)");
		return;
	}
	if (s->is_ready_unsure && (s->expect_ready || s->has_unsynced || s->internal_ready)) {
		/* which replies are still owed is not known: it cannot be drained */
		wk_stats_add(s->pool, SHM_STAT_OUT_OF_SYNC, 1);
		wk_server_close(s, "client left after a Query inside an unsynced request");
		return;
	}
	pgw_buf_reset(b);
	if (s->is_copy_in || s->has_unsynced || s->expect_ready || s->tx_status != 'I')
		wk_stats_add(s->pool, SHM_STAT_RESYNCED, 1); /* SHOW POOLS re_synced */
	/*
	 * Recovery: end what the client left running (COPY, an unsynced
	 * pipeline), drain every reply it is owed, roll back, and reset if the
	 * session ends. All of it is swallowed; rollback_timeout bounds it.
	 */
	if (s->is_copy_in) {
		pgw_begin(b, PGW_MSG_COPY_FAIL);
		pgw_put_str(b, "client disconnected");
		pgw_end(b);
	}
	if (s->has_unsynced) {
		/*
		 * What the client sent without a Sync must not commit: PostgreSQL
		 * rolls it back when its client goes. A Describe of a portal that
		 * cannot exist fails (34000) and aborts the transaction, which the
		 * Sync then ends with a rollback (skipped if an error came first).
		 */
		pgw_put_target(b, PGW_MSG_DESCRIBE, 'P', "pgdog: the client is gone");
		pgw_begin(b, PGW_MSG_SYNC);
		pgw_end(b);
		s->expect_ready++;
		s->has_unsynced = false;
		s->has_exec_unsynced = false;
	}
	if (s->expect_ready) {
		/*
		 * Whether a block is open after them is known only then: ROLLBACK
		 * (not to be sent outside one, PostgreSQL warns) and the reset
		 * follow the last reply (wk_server_reset_after_drain).
		 */
		s->reset_after_drain = is_session_end ? 2 : 1;
		s->is_gone_cancel_sent = false;
		log_debug(&s->lctx, "client left with %u replies pending: draining them",
			  s->expect_ready);
	} else {
		queries += wk_server_put_reset(s, b, is_session_end, s->tx_status != 'I');
	}
	queries += s->expect_ready;
	s->expect_ready = 0;
	s->is_release_due = false;
	wk_server_set_state(s, WK_SERVER_RESET);
	/* pgdog's own queries still running (the client's SETs): their replies come first */
	if (queries == 0 && s->internal_ready == 0) {
		wk_pool_server_ready(s->pool, s);
		return;
	}
	wk_stats_add(s->pool, SHM_STAT_CLEANED, 1);
	if (queries && wk_server_send_internal(s, b, queries) < 0) {
		wk_server_close(s, "out of memory");
		return;
	}
	/* in case replies are already buffered */
	if (evbuffer_get_length(s->io.in))
		(void)wk_server_forward(s);
}
