/*
 * wk_admin.c: the admin console (see wk_admin.h).
 * Runs in: a worker. Answers from shared memory, so every worker's clients,
 * servers and pools appear whichever worker the admin connection reached.
 */
#include "worker/wk_admin.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "shared/config.h"
#include "shared/shm.h"
#include "worker/wk_client.h"

#define WK_ADMIN_MSG_MAX  (64 * 1024)
#define WK_ADMIN_COLS_MAX 24

enum wk_rc
wk_admin_welcome(struct wk_client *c)
{
	static const char *const params[][2] = {
		{ "server_version", "15.0 (pgdog " PACKAGE_VERSION ")" },
		{ "server_encoding", "UTF8" },
		{ "client_encoding", "UTF8" },
		{ "DateStyle", "ISO, MDY" },
		{ "integer_datetimes", "on" },
		{ "standard_conforming_strings", "on" },
		{ "TimeZone", "UTC" },
		{ "is_superuser", "on" },
	};
	struct pgw_buf *b = &g_wk.scratch;

	pgw_buf_reset(b);
	for (size_t i = 0; i < ARRAY_SIZE(params); i++)
		pgw_put_param_status(b, params[i][0], params[i][1]);
	return wk_client_send_ready(c, b);
}

static void
wk_admin_time(char *out, size_t len, uint64_t us)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;

	if (!us) {
		out[0] = '\0';
		return;
	}
	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%d %H:%M:%S", &tm);
}

static const char *
wk_admin_state(uint8_t st)
{
	static const char *const names[] = {
		"free", "login", "idle", "active", "waiting", "closing"
	};

	return st < ARRAY_SIZE(names) ? names[st] : "?";
}

/* A row builder: text cells in fixed buffers. */
struct wk_admin_row {
	char cells[WK_ADMIN_COLS_MAX][128];
	const char *values[WK_ADMIN_COLS_MAX];
	size_t cnt;
};

static void wk_admin_cell(struct wk_admin_row *row, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void
wk_admin_cell(struct wk_admin_row *row, const char *fmt, ...)
{
	va_list ap;

	if (row->cnt == WK_ADMIN_COLS_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(row->cells[row->cnt], sizeof(row->cells[0]), fmt, ap);
	va_end(ap);
	row->values[row->cnt] = row->cells[row->cnt];
	row->cnt++;
}

static void
wk_admin_show_clients(struct pgw_buf *b, size_t *rows)
{
	static const char *const cols[] = { "id",
					    "user",
					    "database",
					    "addr",
					    "port",
					    "state",
					    "connect_time",
					    "last_request",
					    "queries",
					    "transactions",
					    "bytes_received",
					    "bytes_sent",
					    "errors",
					    "application_name",
					    "worker",
					    "server_id" };

	pgw_put_row_description(b, cols, ARRAY_SIZE(cols));
	for (uint32_t w = 0; w < g_shm->workers_cnt; w++) {
		for (uint32_t i = 0; i < g_shm->clients_per_worker; i++) {
			struct shm_client *src = shm_client(w, i), r;
			struct wk_admin_row row = { .cnt = 0 };
			char t1[32], t2[32];

			if (atomic_load_explicit(&src->state, memory_order_relaxed) ==
			    SHM_STATE_FREE)
				continue;
			if (!shm_row_read(&src->seq, src, &r, sizeof(r)) ||
			    r.state == SHM_STATE_FREE)
				continue;
			wk_admin_time(t1, sizeof(t1), r.connect_us);
			wk_admin_time(t2, sizeof(t2), r.last_request_us);
			wk_admin_cell(&row, "w%uc%" PRIu64, w, r.id);
			wk_admin_cell(&row, "%s", r.user);
			wk_admin_cell(&row, "%s", r.database);
			wk_admin_cell(&row, "%s", r.addr);
			wk_admin_cell(&row, "%u", r.port);
			wk_admin_cell(&row, "%s", wk_admin_state(r.state));
			wk_admin_cell(&row, "%s", t1);
			wk_admin_cell(&row, "%s", t2);
			wk_admin_cell(&row, "%" PRIu64, r.queries);
			wk_admin_cell(&row, "%" PRIu64, r.transactions);
			wk_admin_cell(&row, "%" PRIu64, r.bytes_received);
			wk_admin_cell(&row, "%" PRIu64, r.bytes_sent);
			wk_admin_cell(&row, "%" PRIu64, r.errors);
			wk_admin_cell(&row, "%s", r.application_name);
			wk_admin_cell(&row, "%u", w);
			if (r.server_id)
				wk_admin_cell(&row, "w%us%" PRIu64, w, r.server_id);
			else
				wk_admin_cell(&row, "%s", "");
			pgw_put_data_row(b, row.values, row.cnt);
			(*rows)++;
		}
	}
}

static void
wk_admin_show_servers(struct pgw_buf *b, size_t *rows)
{
	static const char *const cols[] = {
		"id",           "pool_id",        "database",   "user",
		"addr",         "port",           "state",      "connect_time",
		"request_time", "remote_pid",     "client_id",  "transactions",
		"queries",      "bytes_received", "bytes_sent", "application_name",
		"worker"
	};

	pgw_put_row_description(b, cols, ARRAY_SIZE(cols));
	for (uint32_t w = 0; w < g_shm->workers_cnt; w++) {
		for (uint32_t i = 0; i < g_shm->servers_per_worker; i++) {
			struct shm_server *src = shm_server(w, i), r;
			struct wk_admin_row row = { .cnt = 0 };
			const struct config_pool *cp;
			const struct config_database *db;
			char t1[32], t2[32];

			if (atomic_load_explicit(&src->state, memory_order_relaxed) ==
			    SHM_STATE_FREE)
				continue;
			if (!shm_row_read(&src->seq, src, &r, sizeof(r)) ||
			    r.state == SHM_STATE_FREE || r.pool_idx < 0 ||
			    (size_t)r.pool_idx >= g_cfg->pools_cnt)
				continue;
			cp = &g_cfg->pools[r.pool_idx];
			db = &g_cfg->databases[cp->db_idx];
			wk_admin_time(t1, sizeof(t1), r.connect_us);
			wk_admin_time(t2, sizeof(t2), r.request_us);
			wk_admin_cell(&row, "w%us%" PRIu64, w, r.id);
			wk_admin_cell(&row, "%d", r.pool_idx);
			wk_admin_cell(&row, "%s", db->name);
			wk_admin_cell(&row, "%s", g_cfg->users[cp->user_idx].name);
			wk_admin_cell(&row, "%s", db->host);
			wk_admin_cell(&row, "%d", db->port);
			wk_admin_cell(&row, "%s", wk_admin_state(r.state));
			wk_admin_cell(&row, "%s", t1);
			wk_admin_cell(&row, "%s", t2);
			wk_admin_cell(&row, "%u", r.remote_pid);
			if (r.client_id)
				wk_admin_cell(&row, "w%uc%" PRIu64, w, r.client_id);
			else
				wk_admin_cell(&row, "%s", "");
			wk_admin_cell(&row, "%" PRIu64, r.transactions);
			wk_admin_cell(&row, "%" PRIu64, r.queries);
			wk_admin_cell(&row, "%" PRIu64, r.bytes_received);
			wk_admin_cell(&row, "%" PRIu64, r.bytes_sent);
			wk_admin_cell(&row, "%s", r.application_name);
			wk_admin_cell(&row, "%u", w);
			pgw_put_data_row(b, row.values, row.cnt);
			(*rows)++;
		}
	}
}

static void
wk_admin_show_pools(struct pgw_buf *b, size_t *rows)
{
	static const char *const cols[] = { "id",         "database",  "user",
					    "addr",       "port",      "shard",
					    "role",       "cl_active", "cl_waiting",
					    "sv_active",  "sv_idle",   "sv_login",
					    "sv_total",   "pool_size", "maxwait",
					    "maxwait_us", "pool_mode", "checkout_timeouts",
					    "pins" };

	pgw_put_row_description(b, cols, ARRAY_SIZE(cols));
	for (uint32_t i = 0; i < g_shm->pools_cnt; i++) {
		const struct config_pool *cp = &g_cfg->pools[i];
		const struct config_database *db = &g_cfg->databases[cp->db_idx];
		struct wk_admin_row row = { .cnt = 0 };
		uint64_t cl_active = 0, cl_waiting = 0, sv_active = 0, sv_idle = 0, sv_login = 0;
		uint64_t maxwait = 0, timeouts = 0, pins = 0;

		for (uint32_t w = 0; w < g_shm->workers_cnt; w++) {
			struct shm_pool_stats *st = shm_pool_stats(w, i);
			uint64_t mw = atomic_load_explicit(&st->maxwait_us, memory_order_relaxed);

			cl_active += atomic_load_explicit(&st->cl_active, memory_order_relaxed);
			cl_waiting += atomic_load_explicit(&st->cl_waiting, memory_order_relaxed);
			sv_active += atomic_load_explicit(&st->sv_active, memory_order_relaxed);
			sv_idle += atomic_load_explicit(&st->sv_idle, memory_order_relaxed);
			sv_login += atomic_load_explicit(&st->sv_login, memory_order_relaxed);
			timeouts +=
				atomic_load_explicit(&st->checkout_timeouts, memory_order_relaxed);
			pins += atomic_load_explicit(&st->pins, memory_order_relaxed);
			if (mw > maxwait)
				maxwait = mw;
		}
		wk_admin_cell(&row, "%u", i);
		wk_admin_cell(&row, "%s", db->name);
		wk_admin_cell(&row, "%s", g_cfg->users[cp->user_idx].name);
		wk_admin_cell(&row, "%s", db->host);
		wk_admin_cell(&row, "%d", db->port);
		wk_admin_cell(&row, "%d", db->shard);
		wk_admin_cell(&row, "%s", config_role_name(db->role));
		wk_admin_cell(&row, "%" PRIu64, cl_active);
		wk_admin_cell(&row, "%" PRIu64, cl_waiting);
		wk_admin_cell(&row, "%" PRIu64, sv_active);
		wk_admin_cell(&row, "%" PRIu64, sv_idle);
		wk_admin_cell(&row, "%" PRIu64, sv_login);
		wk_admin_cell(&row, "%u", shm_pool_open_total(i));
		wk_admin_cell(&row, "%d", cp->pool_size);
		wk_admin_cell(&row, "%" PRIu64, maxwait / 1000000);
		wk_admin_cell(&row, "%" PRIu64, maxwait % 1000000);
		wk_admin_cell(&row, "%s", config_pooler_mode_name(cp->pooler_mode));
		wk_admin_cell(&row, "%" PRIu64, timeouts);
		wk_admin_cell(&row, "%" PRIu64, pins);
		pgw_put_data_row(b, row.values, row.cnt);
		(*rows)++;
	}
}

static void
wk_admin_show_prepared(struct pgw_buf *b, size_t *rows)
{
	static const char *const cols[] = { "worker",  "name",    "statement",
					    "used_by", "servers", "uses" };

	pgw_put_row_description(b, cols, ARRAY_SIZE(cols));
	for (uint32_t w = 0; w < g_shm->workers_cnt; w++) {
		for (uint32_t i = 0; i < g_shm->prepared_per_worker; i++) {
			struct shm_prepared *src = shm_prepared(w, i), r;
			struct wk_admin_row row = { .cnt = 0 };

			if (!src->id || !shm_row_read(&src->seq, src, &r, sizeof(r)) || !r.id)
				continue;
			r.name[sizeof(r.name) - 1] = '\0';
			r.query[sizeof(r.query) - 1] = '\0';
			wk_admin_cell(&row, "%u", w);
			wk_admin_cell(&row, "%s", r.name);
			wk_admin_cell(&row, "%.127s", r.query);
			wk_admin_cell(&row, "%u", r.client_refs);
			wk_admin_cell(&row, "%u", r.server_refs);
			wk_admin_cell(&row, "%" PRIu64, r.uses);
			pgw_put_data_row(b, row.values, row.cnt);
			(*rows)++;
		}
	}
}

/* Lower-case the command, squeeze blanks, drop a trailing ';'. */
static void
wk_admin_normalize(const char *sql, char *out, size_t len)
{
	size_t n = 0;
	bool blank = true;

	for (; *sql && n + 1 < len; sql++) {
		if (isspace((unsigned char)*sql)) {
			if (!blank)
				out[n++] = ' ';
			blank = true;
			continue;
		}
		out[n++] = (char)tolower((unsigned char)*sql);
		blank = false;
	}
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == ';'))
		n--;
	out[n] = '\0';
}

static enum wk_rc
wk_admin_query(struct wk_client *c, const char *sql)
{
	struct pgw_buf *b = &g_wk.scratch;
	char cmd[256], tag[64];
	size_t rows = 0;

	wk_admin_normalize(sql, cmd, sizeof(cmd));
	log_debug(&c->lctx, "admin command: %.100s", cmd);
	pgw_buf_reset(b);
	if (cmd[0] == '\0') {
		pgw_put_empty_query(b);
	} else if (strcmp(cmd, "show version") == 0) {
		const char *cols[] = { "version" };
		const char *vals[] = { "pgdog " PACKAGE_VERSION };

		pgw_put_row_description(b, cols, 1);
		pgw_put_data_row(b, vals, 1);
		pgw_put_command_complete(b, "SHOW");
	} else if (strcmp(cmd, "show clients") == 0) {
		wk_admin_show_clients(b, &rows);
	} else if (strcmp(cmd, "show servers") == 0) {
		wk_admin_show_servers(b, &rows);
	} else if (strcmp(cmd, "show pools") == 0) {
		wk_admin_show_pools(b, &rows);
	} else if (strcmp(cmd, "show prepared") == 0) {
		wk_admin_show_prepared(b, &rows);
	} else {
		pgw_put_error(
			b, false, "ERROR", SQLSTATE_SYNTAX_ERROR, "unrecognized admin command",
			NULL,
			"The admin console answers SHOW VERSION, SHOW CLIENTS, SHOW SERVERS, SHOW POOLS and SHOW PREPARED.");
	}
	if (strncmp(cmd, "show ", 5) == 0 && strcmp(cmd, "show version") != 0 && !b->has_error &&
	    b->len > 0 && b->data[0] == PGW_MSG_ROW_DESCRIPTION) {
		snprintf(tag, sizeof(tag), "SHOW");
		pgw_put_command_complete(b, tag);
	}
	(void)rows;
	pgw_put_ready(b, 'I');
	if (wk_conn_send(&c->io, b) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	return WK_OK;
}

enum wk_rc
wk_admin_on_input(struct wk_client *c)
{
	struct evbuffer *in = c->io.in;

	for (;;) {
		struct pgw_hdr h;
		const uint8_t *msg = NULL;
		struct pgw_buf *b = &g_wk.scratch;
		enum wk_rc rc = WK_OK;

		switch (wk_conn_peek(in, WK_ADMIN_MSG_MAX, true, &h, &msg)) {
		case WK_PEEK_MORE:
		case WK_PEEK_HEADER:
			return WK_AGAIN;
		case WK_PEEK_BAD_LEN:
			return wk_client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
					       "invalid message length");
		case WK_PEEK_TOO_LONG:
			return wk_client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
					       "admin command longer than %d bytes",
					       WK_ADMIN_MSG_MAX);
		case WK_PEEK_WHOLE:
			break;
		}
		switch (h.type) {
		case PGW_MSG_QUERY: {
			const char *sql;

			if (pgw_parse_query(msg + PGW_HDR_LEN, h.len - 4, &sql) < 0)
				return wk_client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
						       "invalid query message");
			rc = wk_admin_query(c, sql);
			break;
		}
		case PGW_MSG_TERMINATE:
			return wk_client_close(c, NULL);
		case PGW_MSG_PARSE:
		case PGW_MSG_BIND:
		case PGW_MSG_DESCRIBE:
		case PGW_MSG_EXECUTE:
		case PGW_MSG_CLOSE:
		case PGW_MSG_FLUSH:
			if (!c->admin_skip_to_sync) {
				pgw_buf_reset(b);
				pgw_put_error(
					b, false, "ERROR", SQLSTATE_FEATURE_NOT_SUPPORTED,
					"the admin console supports only the simple query protocol",
					NULL, NULL);
				if (wk_conn_send(&c->io, b) < 0)
					return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY,
							       "out of memory");
				c->admin_skip_to_sync = true;
			}
			break;
		case PGW_MSG_SYNC:
			c->admin_skip_to_sync = false;
			pgw_buf_reset(b);
			pgw_put_ready(b, 'I');
			if (wk_conn_send(&c->io, b) < 0)
				return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
			break;
		default:
			return wk_client_fatal(
				c, SQLSTATE_PROTOCOL_VIOLATION,
				"unexpected message type 0x%02x on the admin console", h.type);
		}
		if (rc == WK_CLOSED)
			return WK_CLOSED;
		evbuffer_drain(in, pgw_msg_size(&h));
	}
}
