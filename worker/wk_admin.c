/*
 * wk_admin.c: the admin console (see wk_admin.h).
 * Runs in: a worker. Answers from shared memory, so every worker's clients,
 * servers and pools appear whichever worker the admin connection reached.
 */
#include "worker/wk_admin.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "shared/config.h"
#include "shared/shm.h"
#include "shared/stats.h"
#include "worker/wk_admin_ctl.h"
#include "worker/wk_client.h"

#define WK_ADMIN_MSG_MAX  (64 * 1024)
#define WK_ADMIN_COLS_MAX 64

/* The console's session parameters: reported at login, answered by SHOW <name>. */
static const char *const wk_admin_params[][2] = {
	{ "server_version", "15.0 (pgdog " PACKAGE_VERSION ")" },
	{ "server_encoding", "UTF8" },
	{ "client_encoding", "UTF8" },
	{ "DateStyle", "ISO, MDY" },
	{ "integer_datetimes", "on" },
	{ "standard_conforming_strings", "on" },
	{ "TimeZone", "UTC" },
	{ "is_superuser", "on" },
};

enum wk_rc
wk_admin_welcome(struct wk_client *c)
{
	struct pgw_buf *b = &g_wk.scratch;

	pgw_buf_reset(b);
	for (size_t i = 0; i < ARRAY_SIZE(wk_admin_params); i++)
		pgw_put_param_status(b, wk_admin_params[i][0], wk_admin_params[i][1]);
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

static struct stats_pool *wk_admin_collect(struct pgw_buf *b, size_t *cnt);
static void wk_admin_ident_cells(struct wk_admin_row *row, const struct stats_ident *id);

static const char *
wk_admin_bool(bool b)
{
	return b ? "t" : "f";
}

/*
 * PgDog's columns, then pgdog's own (worker, server_id). replication is
 * always "none" and transactions_2pc 0: pgdog refuses replication
 * connections and has no two-phase commit yet.
 */
static void
wk_admin_show_clients(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const cols[] = { "id",
					    "user",
					    "database",
					    "addr",
					    "port",
					    "state",
					    "replication",
					    "connect_time",
					    "last_request",
					    "queries",
					    "transactions",
					    "transactions_2pc",
					    "wait_time",
					    "query_time",
					    "transaction_time",
					    "bytes_received",
					    "bytes_sent",
					    "errors",
					    "application_name",
					    "locked",
					    "prepared_statements",
					    "worker",
					    "server_id" };

	(void)c;
	(void)args;
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
			wk_admin_cell(&row, "%s", "none");
			wk_admin_cell(&row, "%s", t1);
			wk_admin_cell(&row, "%s", t2);
			wk_admin_cell(&row, "%" PRIu64, r.queries);
			wk_admin_cell(&row, "%" PRIu64, r.transactions);
			wk_admin_cell(&row, "%d", 0);
			wk_admin_cell(&row, "%" PRIu64, r.wait_time_us);
			wk_admin_cell(&row, "%" PRIu64, r.query_time_us);
			wk_admin_cell(&row, "%" PRIu64, r.xact_time_us);
			wk_admin_cell(&row, "%" PRIu64, r.bytes_received);
			wk_admin_cell(&row, "%" PRIu64, r.bytes_sent);
			wk_admin_cell(&row, "%" PRIu64, r.errors);
			wk_admin_cell(&row, "%s", r.application_name);
			wk_admin_cell(&row, "%s", wk_admin_bool(r.pins != 0));
			wk_admin_cell(&row, "%u", r.prepared_cnt);
			wk_admin_cell(&row, "%u", w);
			if (r.server_id)
				wk_admin_cell(&row, "w%us%" PRIu64, w, r.server_id);
			else
				wk_admin_cell(&row, "%s", "");
			pgw_put_data_row(b, row.values, row.cnt);
		}
	}
	pgw_put_command_complete(b, "SHOW");
}

/*
 * PgDog's columns, then pgdog's own (id, worker, tx_status). healthchecks is
 * always 0: pgdog runs no health checks on its servers.
 */
static void
wk_admin_show_servers(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const cols[] = { "pool_id",
					    "database",
					    "user",
					    "addr",
					    "port",
					    "state",
					    "connect_time",
					    "request_time",
					    "remote_pid",
					    "client_id",
					    "transactions",
					    "queries",
					    "rollbacks",
					    "prepared_statements",
					    "healthchecks",
					    "errors",
					    "bytes_received",
					    "bytes_sent",
					    "last_sent",
					    "last_received",
					    "age",
					    "application_name",
					    "id",
					    "worker",
					    "tx_status" };

	(void)c;
	(void)args;
	pgw_put_row_description(b, cols, ARRAY_SIZE(cols));
	for (uint32_t w = 0; w < g_shm->workers_cnt; w++) {
		for (uint32_t i = 0; i < g_shm->servers_per_worker; i++) {
			struct shm_server *src = shm_server(w, i), r;
			struct wk_admin_row row = { .cnt = 0 };
			struct stats_ident id;
			char t1[32], t2[32], t3[32];

			if (atomic_load_explicit(&src->state, memory_order_relaxed) ==
			    SHM_STATE_FREE)
				continue;
			if (!shm_row_read(&src->seq, src, &r, sizeof(r)) ||
			    r.state == SHM_STATE_FREE || r.pool_idx < 0 ||
			    !stats_ident_read((uint32_t)r.pool_idx, &id))
				continue;
			wk_admin_time(t1, sizeof(t1), r.connect_us);
			wk_admin_time(t2, sizeof(t2), r.request_us);
			wk_admin_time(t3, sizeof(t3), r.ready_us);
			wk_admin_cell(&row, "%d", r.pool_idx);
			wk_admin_cell(&row, "%s", id.database);
			wk_admin_cell(&row, "%s", id.user);
			wk_admin_cell(&row, "%s", id.host);
			wk_admin_cell(&row, "%d", id.port);
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
			wk_admin_cell(&row, "%" PRIu64, r.rollbacks);
			wk_admin_cell(&row, "%u", r.prepared_cnt);
			wk_admin_cell(&row, "%d", 0);
			wk_admin_cell(&row, "%" PRIu64, r.errors);
			wk_admin_cell(&row, "%" PRIu64, r.bytes_received);
			wk_admin_cell(&row, "%" PRIu64, r.bytes_sent);
			/* the last request sent to it, the last ReadyForQuery it sent */
			wk_admin_cell(&row, "%s", t2);
			wk_admin_cell(&row, "%s", t3);
			wk_admin_cell(&row, "%" PRIu64,
				      g_wk.now_us > r.connect_us
					      ? (g_wk.now_us - r.connect_us) / 1000000
					      : 0);
			wk_admin_cell(&row, "%s", r.application_name);
			wk_admin_cell(&row, "w%us%" PRIu64, w, r.id);
			wk_admin_cell(&row, "%u", w);
			wk_admin_cell(&row, "%c", r.tx_status ? r.tx_status : 'I');
			pgw_put_data_row(b, row.values, row.cnt);
		}
	}
	pgw_put_command_complete(b, "SHOW");
}

/*
 * PgDog's columns, then pgdog's own (cl_active, sv_login, pool_size,
 * checkout_timeouts, pins). schema_admin is always f: pgdog has no schema
 * administration pool (sharding) yet.
 */
static void
wk_admin_show_pools(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const cols[] = {
		"id",          "database",     "user",         "addr",
		"port",        "shard",        "role",         "cl_waiting",
		"sv_idle",     "sv_active",    "sv_idle_xact", "sv_total",
		"maxwait",     "maxwait_us",   "pool_mode",    "paused",
		"banned",      "healthy",      "errors",       "re_synced",
		"out_of_sync", "force_closed", "online",       "schema_admin",
		"cl_active",   "sv_login",     "pool_size",    "checkout_timeouts",
		"pins"
	};
	size_t cnt;
	struct stats_pool *ps = wk_admin_collect(b, &cnt);
	struct stats_holds h;

	(void)c;
	(void)args;
	stats_holds_read(&h, g_wk.now_us);
	pgw_put_row_description(b, cols, ARRAY_SIZE(cols));
	for (size_t i = 0; i < cnt; i++) {
		const struct stats_ident *id = &ps[i].ident;
		struct wk_admin_row row = { .cnt = 0 };
		bool is_banned = stats_holds_is_banned(&h, id->database, id->user);

		if (id->state == SHM_POOL_FREE)
			continue;
		wk_admin_cell(&row, "%zu", i);
		wk_admin_ident_cells(&row, id);
		wk_admin_cell(&row, "%" PRIu64, ps[i].cl_waiting);
		wk_admin_cell(&row, "%" PRIu64, ps[i].sv_idle);
		wk_admin_cell(&row, "%" PRIu64, ps[i].sv_active);
		wk_admin_cell(&row, "%" PRIu64, ps[i].sv_idle_xact);
		wk_admin_cell(&row, "%" PRIu64, ps[i].sv_total);
		wk_admin_cell(&row, "%" PRIu64, ps[i].maxwait_us / 1000000);
		wk_admin_cell(&row, "%" PRIu64, ps[i].maxwait_us % 1000000);
		wk_admin_cell(&row, "%s",
			      config_pooler_mode_name((enum config_pooler_mode)id->pooler_mode));
		wk_admin_cell(&row, "%s", wk_admin_bool(stats_holds_is_paused(&h, id->database)));
		wk_admin_cell(&row, "%s", wk_admin_bool(is_banned));
		/* healthy: not banned, and no worker's last connect to the server failed */
		wk_admin_cell(&row, "%s",
			      wk_admin_bool(!is_banned && ps[i].connect_failed_cnt == 0));
		wk_admin_cell(&row, "%" PRIu64, ps[i].total[SHM_STAT_ERRORS]);
		wk_admin_cell(&row, "%" PRIu64, ps[i].total[SHM_STAT_RESYNCED]);
		wk_admin_cell(&row, "%" PRIu64, ps[i].total[SHM_STAT_OUT_OF_SYNC]);
		wk_admin_cell(&row, "%" PRIu64, ps[i].total[SHM_STAT_FORCE_CLOSED]);
		/* online: in the configuration (a pool removed by a reload drains) */
		wk_admin_cell(&row, "%s", wk_admin_bool(id->state == SHM_POOL_LIVE));
		wk_admin_cell(&row, "%s", wk_admin_bool(false));
		wk_admin_cell(&row, "%" PRIu64, ps[i].cl_active);
		wk_admin_cell(&row, "%" PRIu64, ps[i].sv_login);
		wk_admin_cell(&row, "%d", id->pool_size);
		wk_admin_cell(&row, "%" PRIu64, ps[i].checkout_timeouts);
		wk_admin_cell(&row, "%" PRIu64, ps[i].pins);
		pgw_put_data_row(b, row.values, row.cnt);
	}
	free(ps);
	pgw_put_command_complete(b, "SHOW");
}

static void
wk_admin_show_prepared(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const cols[] = { "worker",  "name",    "statement",
					    "used_by", "servers", "uses" };

	(void)c;
	(void)args;
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
		}
	}
	pgw_put_command_complete(b, "SHOW");
}

/* LISTEN channels served by the workers' listener connections (pub/sub). */
static void
wk_admin_show_listeners(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const cols[] = { "database", "user",      "channel", "clients",
					    "received", "delivered", "worker",  "backend_pid" };

	(void)c;
	(void)args;
	pgw_put_row_description(b, cols, ARRAY_SIZE(cols));
	for (uint32_t w = 0; w < g_shm->workers_cnt; w++) {
		for (uint32_t i = 0; i < g_shm->listeners_per_worker; i++) {
			struct shm_listener *src = shm_listener(w, i), r;
			struct wk_admin_row row = { .cnt = 0 };

			if (!src->id || !shm_row_read(&src->seq, src, &r, sizeof(r)) || !r.id)
				continue;
			r.channel[sizeof(r.channel) - 1] = '\0';
			r.database[sizeof(r.database) - 1] = '\0';
			r.user[sizeof(r.user) - 1] = '\0';
			wk_admin_cell(&row, "%s", r.database);
			wk_admin_cell(&row, "%s", r.user);
			wk_admin_cell(&row, "%s", r.channel);
			wk_admin_cell(&row, "%u", r.clients_cnt);
			wk_admin_cell(&row, "%" PRIu64, r.received);
			wk_admin_cell(&row, "%" PRIu64, r.delivered);
			wk_admin_cell(&row, "%u", w);
			wk_admin_cell(&row, "%u", r.backend_pid);
			pgw_put_data_row(b, row.values, row.cnt);
		}
	}
	pgw_put_command_complete(b, "SHOW");
}

/* ---- statistics (shared/stats.h: the same sums as /metrics) ---------------- */

/*
 * Every pool summed over the workers. On out of memory: NULL, *cnt = 0, and
 * b's error flag set, so the reply becomes an error (wk_admin_query).
 */
static struct stats_pool *
wk_admin_collect(struct pgw_buf *b, size_t *cnt)
{
	size_t n = g_shm->pools_cnt; /* the high-water mark: free indexes are skipped */
	struct stats_pool *ps = calloc(n ? n : 1, sizeof(*ps));

	*cnt = ps ? n : 0;
	if (ps)
		stats_collect(ps, n);
	else
		b->has_error = true;
	return ps;
}

/* The columns database, user, addr, port, shard, role of a pool. */
static void
wk_admin_ident_cells(struct wk_admin_row *row, const struct stats_ident *id)
{
	wk_admin_cell(row, "%s", id->database);
	wk_admin_cell(row, "%s", id->user);
	wk_admin_cell(row, "%s", id->host);
	wk_admin_cell(row, "%d", id->port);
	wk_admin_cell(row, "%d", id->shard);
	wk_admin_cell(row, "%s", config_role_name((enum config_role)id->role));
}

/*
 * The counters of SHOW STATS, in PgDog's order, then pgdog's own
 * (client_parse_count, auth_failures). stat -1: xact_2pc_count, always 0
 * (pgdog has no two-phase commit yet).
 */
static const struct {
	const char *name;
	int stat;
} wk_admin_stat_cols[] = {
	{ "xact_count", SHM_STAT_XACT },
	{ "xact_2pc_count", -1 },
	{ "query_count", SHM_STAT_QUERY },
	{ "server_assignment_count", SHM_STAT_ASSIGN },
	{ "received", SHM_STAT_RECV },
	{ "sent", SHM_STAT_SENT },
	{ "xact_time", SHM_STAT_XACT_US },
	{ "idle_xact_time", SHM_STAT_IDLE_XACT_US },
	{ "query_time", SHM_STAT_QUERY_US },
	{ "wait_time", SHM_STAT_WAIT_US },
	{ "server_parse_count", SHM_STAT_SERVER_PARSE },
	{ "bind_count", SHM_STAT_BIND },
	{ "close_count", SHM_STAT_CLOSE },
	{ "errors", SHM_STAT_ERRORS },
	{ "cleaned", SHM_STAT_CLEANED },
	{ "rollbacks", SHM_STAT_ROLLBACKS },
	{ "connect_time", SHM_STAT_CONNECT_US },
	{ "connect_count", SHM_STAT_CONNECT },
	{ "reads", SHM_STAT_READS },
	{ "writes", SHM_STAT_WRITES },
	{ "auth_attempts", SHM_STAT_AUTH },
	{ "rows_inserted", SHM_STAT_ROWS_INSERTED },
	{ "rows_updated", SHM_STAT_ROWS_UPDATED },
	{ "rows_deleted", SHM_STAT_ROWS_DELETED },
	{ "client_parse_count", SHM_STAT_PARSE },
	{ "auth_failures", SHM_STAT_AUTH_FAILED },
};

#define WK_ADMIN_STAT_COLS ARRAY_SIZE(wk_admin_stat_cols)

static void
wk_admin_show_stats(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const fixed[] = { "database", "user", "addr", "port", "shard", "role" };
	char names[2 * WK_ADMIN_STAT_COLS][48];
	const char *cols[ARRAY_SIZE(fixed) + 2 * WK_ADMIN_STAT_COLS];
	size_t cnt, n = 0;
	struct stats_pool *ps = wk_admin_collect(b, &cnt);

	_Static_assert(ARRAY_SIZE(fixed) + 2 * WK_ADMIN_STAT_COLS <= WK_ADMIN_COLS_MAX, "cells");
	(void)c;
	(void)args;
	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
		cols[n++] = fixed[i];
	for (size_t i = 0; i < WK_ADMIN_STAT_COLS; i++) {
		snprintf(names[i], sizeof(names[i]), "total_%s", wk_admin_stat_cols[i].name);
		snprintf(names[WK_ADMIN_STAT_COLS + i], sizeof(names[0]), "avg_%s",
			 wk_admin_stat_cols[i].name);
	}
	for (size_t i = 0; i < 2 * WK_ADMIN_STAT_COLS; i++)
		cols[n++] = names[i];
	pgw_put_row_description(b, cols, n);
	for (size_t i = 0; i < cnt; i++) {
		struct wk_admin_row row = { .cnt = 0 };
		uint64_t avg[SHM_STAT_CNT];

		if (ps[i].ident.state == SHM_POOL_FREE)
			continue;
		stats_averages(&ps[i], avg);
		wk_admin_ident_cells(&row, &ps[i].ident);
		for (size_t k = 0; k < WK_ADMIN_STAT_COLS; k++) {
			int st = wk_admin_stat_cols[k].stat;

			wk_admin_cell(&row, "%" PRIu64, st < 0 ? 0 : ps[i].total[st]);
		}
		for (size_t k = 0; k < WK_ADMIN_STAT_COLS; k++) {
			int st = wk_admin_stat_cols[k].stat;

			wk_admin_cell(&row, "%" PRIu64, st < 0 ? 0 : avg[st]);
		}
		pgw_put_data_row(b, row.values, row.cnt);
	}
	free(ps);
	pgw_put_command_complete(b, "SHOW");
}

/*
 * PgBouncer's per-database statistics: pools summed by database name.
 * Columns of SHOW STATS_TOTALS and SHOW STATS_AVERAGES.
 */
static const struct {
	const char *name;
	int stat;
} wk_admin_pgb_stats[] = {
	{ "server_assignment_count", SHM_STAT_ASSIGN },
	{ "xact_count", SHM_STAT_XACT },
	{ "query_count", SHM_STAT_QUERY },
	{ "bytes_received", SHM_STAT_RECV },
	{ "bytes_sent", SHM_STAT_SENT },
	{ "xact_time", SHM_STAT_XACT_US },
	{ "query_time", SHM_STAT_QUERY_US },
	{ "wait_time", SHM_STAT_WAIT_US },
	{ "client_parse_count", SHM_STAT_PARSE },
	{ "server_parse_count", SHM_STAT_SERVER_PARSE },
	{ "bind_count", SHM_STAT_BIND },
};

/* The pools of database name db summed into out. */
static void
wk_admin_sum_db(const struct stats_pool *ps, size_t cnt, const char *db, struct stats_pool *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < cnt; i++)
		if (ps[i].ident.state != SHM_POOL_FREE && strcmp(ps[i].ident.database, db) == 0)
			stats_pool_add(out, &ps[i]);
}

/* Whether pool i is the first one of its database name. */
static bool
wk_admin_first_of_db(const struct stats_pool *ps, size_t i)
{
	if (ps[i].ident.state == SHM_POOL_FREE)
		return false;
	for (size_t j = 0; j < i; j++)
		if (ps[j].ident.state != SHM_POOL_FREE &&
		    strcmp(ps[j].ident.database, ps[i].ident.database) == 0)
			return false;
	return true;
}

static void
wk_admin_show_pgb_stats(struct pgw_buf *b, bool is_avg)
{
	const char *cols[1 + ARRAY_SIZE(wk_admin_pgb_stats)];
	size_t cnt;
	struct stats_pool *ps = wk_admin_collect(b, &cnt);

	cols[0] = "database";
	for (size_t i = 0; i < ARRAY_SIZE(wk_admin_pgb_stats); i++)
		cols[i + 1] = wk_admin_pgb_stats[i].name;
	pgw_put_row_description(b, cols, ARRAY_SIZE(cols));
	for (size_t i = 0; i < cnt; i++) {
		struct wk_admin_row row = { .cnt = 0 };
		struct stats_pool sum;
		uint64_t avg[SHM_STAT_CNT];

		if (!wk_admin_first_of_db(ps, i))
			continue;
		wk_admin_sum_db(ps, cnt, ps[i].ident.database, &sum);
		stats_averages(&sum, avg);
		wk_admin_cell(&row, "%s", ps[i].ident.database);
		for (size_t k = 0; k < ARRAY_SIZE(wk_admin_pgb_stats); k++)
			wk_admin_cell(&row, "%" PRIu64,
				      is_avg ? avg[wk_admin_pgb_stats[k].stat]
					     : sum.total[wk_admin_pgb_stats[k].stat]);
		pgw_put_data_row(b, row.values, row.cnt);
	}
	free(ps);
	pgw_put_command_complete(b, "SHOW");
}

static void
wk_admin_show_stats_totals(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	(void)c;
	(void)args;
	wk_admin_show_pgb_stats(b, false);
}

static void
wk_admin_show_stats_averages(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	(void)c;
	(void)args;
	wk_admin_show_pgb_stats(b, true);
}

/* PgBouncer's SHOW TOTALS: name, value rows over every pool. */
static void
wk_admin_show_totals(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const cols[] = { "name", "value" };
	static const char *const pgb_names[] = {
		"server_assignment_count",
		"xact_count",
		"query_count",
		"received",
		"sent",
		"xact_time",
		"query_time",
		"wait_time",
		"client_parse_count",
		"server_parse_count",
		"bind_count",
	};
	size_t cnt;
	struct stats_pool *ps = wk_admin_collect(b, &cnt), sum = { 0 };
	uint64_t avg[SHM_STAT_CNT];

	_Static_assert(ARRAY_SIZE(pgb_names) == ARRAY_SIZE(wk_admin_pgb_stats), "totals");
	(void)c;
	(void)args;
	for (size_t i = 0; i < cnt; i++)
		stats_pool_add(&sum, &ps[i]);
	stats_averages(&sum, avg);
	pgw_put_row_description(b, cols, 2);
	for (int pass = 0; pass < 2; pass++) {
		for (size_t k = 0; k < ARRAY_SIZE(wk_admin_pgb_stats); k++) {
			char name[64], value[32];
			const char *vals[2] = { name, value };
			int st = wk_admin_pgb_stats[k].stat;

			snprintf(name, sizeof(name), "%s_%s", pass ? "avg" : "total", pgb_names[k]);
			snprintf(value, sizeof(value), "%" PRIu64, pass ? avg[st] : sum.total[st]);
			pgw_put_data_row(b, vals, 2);
		}
	}
	free(ps);
	pgw_put_command_complete(b, "SHOW");
}

/* ---- configuration and lists ---------------------------------------------- */

static void
wk_admin_show_config(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const cols[] = { "name", "value" };
	const char *name;
	char value[256];

	(void)c;
	(void)args;
	pgw_put_row_description(b, cols, 2);
	for (size_t i = 0; (name = config_general_key(g_cfg, i, value, sizeof(value))); i++) {
		const char *vals[2] = { name, value };

		pgw_put_data_row(b, vals, 2);
	}
	pgw_put_command_complete(b, "SHOW");
}

/* Client rows in use over every worker, and those of database db (NULL: all). */
static uint64_t
wk_admin_clients_of(const char *db, const char *user)
{
	uint64_t n = 0;

	for (uint32_t w = 0; w < g_shm->workers_cnt; w++) {
		for (uint32_t i = 0; i < g_shm->clients_per_worker; i++) {
			struct shm_client *src = shm_client(w, i), r;

			if (atomic_load_explicit(&src->state, memory_order_relaxed) ==
			    SHM_STATE_FREE)
				continue;
			if (!db && !user) {
				n++;
				continue;
			}
			if (!shm_row_read(&src->seq, src, &r, sizeof(r)) ||
			    r.state == SHM_STATE_FREE)
				continue;
			r.database[sizeof(r.database) - 1] = r.user[sizeof(r.user) - 1] = '\0';
			if ((!db || strcmp(r.database, db) == 0) &&
			    (!user || strcmp(r.user, user) == 0))
				n++;
		}
	}
	return n;
}

static void
wk_admin_show_lists(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const cols[] = { "databases",    "users",        "pools",
					    "used_clients", "free_clients", "free_servers",
					    "used_servers" };
	struct wk_admin_row row = { .cnt = 0 };
	uint64_t used = wk_admin_clients_of(NULL, NULL), cap_servers = 0, open = 0;
	uint64_t cap_clients = (uint64_t)g_cfg->max_client_conn; /* over all workers */
	uint32_t pools_cnt = g_shm->pools_cnt;

	(void)c;
	(void)args;
	/* draining pools still hold servers: count them, with their pool_size */
	for (uint32_t i = 0; i < pools_cnt; i++) {
		struct stats_ident id;

		if (!stats_ident_read(i, &id))
			continue;
		cap_servers += (uint64_t)id.pool_size;
		open += shm_pool_open_peek(i);
	}
	pgw_put_row_description(b, cols, ARRAY_SIZE(cols));
	wk_admin_cell(&row, "%zu", g_cfg->databases_cnt);
	wk_admin_cell(&row, "%zu", g_cfg->users_cnt);
	wk_admin_cell(&row, "%zu", g_cfg->pools_cnt);
	wk_admin_cell(&row, "%" PRIu64, used);
	wk_admin_cell(&row, "%" PRIu64, cap_clients > used ? cap_clients - used : 0);
	wk_admin_cell(&row, "%" PRIu64, cap_servers > open ? cap_servers - open : 0);
	wk_admin_cell(&row, "%" PRIu64, open);
	pgw_put_data_row(b, row.values, row.cnt);
	pgw_put_command_complete(b, "SHOW");
}

/* PgBouncer's SHOW DATABASES: one row per [databases.*] entry, then the admin console. */
static void
wk_admin_show_databases(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const cols[] = { "name",
					    "host",
					    "port",
					    "database",
					    "force_user",
					    "pool_size",
					    "min_pool_size",
					    "reserve_pool_size",
					    "server_lifetime",
					    "pool_mode",
					    "load_balance_hosts",
					    "max_connections",
					    "current_connections",
					    "max_client_connections",
					    "current_client_connections",
					    "paused",
					    "disabled" };
	struct wk_admin_row row;
	uint32_t pools_cnt = g_shm->pools_cnt;
	struct stats_holds h;

	(void)c;
	(void)args;
	stats_holds_read(&h, g_wk.now_us);
	pgw_put_row_description(b, cols, ARRAY_SIZE(cols));
	for (size_t d = 0; d < g_cfg->databases_cnt; d++) {
		const struct config_database *db = &g_cfg->databases[d];
		uint64_t open = 0;
		int pool_size = 0, min_pool = 0, lifetime = g_cfg->server_lifetime;
		enum config_pooler_mode mode = g_cfg->pooler_mode;
		bool has_pool = false;

		for (uint32_t i = 0; i < pools_cnt; i++) {
			struct stats_ident id;

			/* pool indexes are shm indexes: match by the section label */
			if (stats_ident_read(i, &id) && id.state == SHM_POOL_LIVE &&
			    strcmp(id.db_label, db->label) == 0)
				open += shm_pool_open_peek(i);
		}
		for (size_t i = 0; i < g_cfg->pools_cnt; i++) {
			const struct config_pool *cp = &g_cfg->pools[i];

			if ((size_t)cp->db_idx != d)
				continue;
			if (!has_pool) {
				pool_size = cp->pool_size;
				min_pool = cp->min_pool_size;
				lifetime = cp->server_lifetime;
				mode = cp->pooler_mode;
				has_pool = true;
			}
		}
		if (!has_pool) {
			pool_size = db->pool_size >= 0 ? db->pool_size : g_cfg->default_pool_size;
			min_pool =
				db->min_pool_size >= 0 ? db->min_pool_size : g_cfg->min_pool_size;
			if (db->has_pooler_mode)
				mode = db->pooler_mode;
		}
		row.cnt = 0;
		wk_admin_cell(&row, "%s", db->name);
		wk_admin_cell(&row, "%s", db->host);
		wk_admin_cell(&row, "%d", db->port);
		wk_admin_cell(&row, "%s", db->database_name);
		wk_admin_cell(&row, "%s", db->user ? db->user : "");
		wk_admin_cell(&row, "%d", pool_size);
		wk_admin_cell(&row, "%d", min_pool);
		wk_admin_cell(&row, "%d", 0);
		wk_admin_cell(&row, "%d", lifetime / 1000);
		wk_admin_cell(&row, "%s", config_pooler_mode_name(mode));
		wk_admin_cell(&row, "%s", "");
		wk_admin_cell(&row, "%d", 0);
		wk_admin_cell(&row, "%" PRIu64, open);
		wk_admin_cell(&row, "%d", 0);
		wk_admin_cell(&row, "%" PRIu64, wk_admin_clients_of(db->name, NULL));
		/* paused: new transactions held; disabled: banned for every user */
		wk_admin_cell(&row, "%d", stats_holds_is_paused(&h, db->name));
		wk_admin_cell(&row, "%d", stats_holds_is_banned(&h, db->name, NULL));
		pgw_put_data_row(b, row.values, row.cnt);
	}
	/* the admin console itself, as PgBouncer lists its "pgbouncer" database */
	row.cnt = 0;
	wk_admin_cell(&row, "%s", g_cfg->admin.name);
	wk_admin_cell(&row, "%s", "");
	wk_admin_cell(&row, "%d", g_cfg->port);
	wk_admin_cell(&row, "%s", g_cfg->admin.name);
	wk_admin_cell(&row, "%s", g_cfg->admin.user);
	wk_admin_cell(&row, "%d", 0);
	wk_admin_cell(&row, "%d", 0);
	wk_admin_cell(&row, "%d", 0);
	wk_admin_cell(&row, "%d", 0);
	wk_admin_cell(&row, "%s", "statement");
	wk_admin_cell(&row, "%s", "");
	wk_admin_cell(&row, "%d", 0);
	wk_admin_cell(&row, "%d", 0);
	wk_admin_cell(&row, "%d", 0);
	wk_admin_cell(&row, "%" PRIu64, wk_admin_clients_of(g_cfg->admin.name, NULL));
	wk_admin_cell(&row, "%d", 0);
	wk_admin_cell(&row, "%d", 0);
	pgw_put_data_row(b, row.values, row.cnt);
	pgw_put_command_complete(b, "SHOW");
}

/* PgBouncer's SHOW USERS: one row per user name (its first entry's settings). */
static void
wk_admin_show_users(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const cols[] = { "name",
					    "pool_size",
					    "reserve_pool_size",
					    "pool_mode",
					    "max_user_connections",
					    "current_connections",
					    "max_user_client_connections",
					    "current_client_connections" };
	uint32_t pools_cnt = g_shm->pools_cnt;

	(void)c;
	(void)args;
	pgw_put_row_description(b, cols, ARRAY_SIZE(cols));
	for (size_t u = 0; u < g_cfg->users_cnt; u++) {
		const struct config_user *cu = &g_cfg->users[u];
		struct wk_admin_row row = { .cnt = 0 };
		uint64_t open = 0;
		int pool_size = cu->pool_size >= 0 ? cu->pool_size : g_cfg->default_pool_size;
		enum config_pooler_mode mode =
			cu->has_pooler_mode ? cu->pooler_mode : g_cfg->pooler_mode;
		bool is_dup = false;

		for (size_t v = 0; v < u; v++)
			is_dup = is_dup || strcmp(g_cfg->users[v].name, cu->name) == 0;
		if (is_dup)
			continue;
		for (uint32_t i = 0; i < pools_cnt; i++) {
			struct stats_ident id;

			if (stats_ident_read(i, &id) && strcmp(id.user, cu->name) == 0)
				open += shm_pool_open_peek(i);
		}
		wk_admin_cell(&row, "%s", cu->name);
		wk_admin_cell(&row, "%d", pool_size);
		wk_admin_cell(&row, "%d", 0);
		wk_admin_cell(&row, "%s", config_pooler_mode_name(mode));
		wk_admin_cell(&row, "%d", 0);
		wk_admin_cell(&row, "%" PRIu64, open);
		wk_admin_cell(&row, "%d", 0);
		wk_admin_cell(&row, "%" PRIu64, wk_admin_clients_of(NULL, cu->name));
		pgw_put_data_row(b, row.values, row.cnt);
	}
	pgw_put_command_complete(b, "SHOW");
}

/* ---- process ---------------------------------------------------------------- */

/*
 * Statements of the SQL classification caches, merged over the workers by
 * their text's hash, most hits first. Only texts the classifier had to
 * parse are cached (see sql_classify.h): pgbench's plain SELECT and UPDATE
 * never appear. Each worker publishes its SHM_QC_ROWS most used every second.
 */
struct wk_admin_qc {
	struct shm_qc_row r;
	uint32_t workers_cnt;
};

static int
wk_admin_qc_cmp(const void *a, const void *b)
{
	const struct wk_admin_qc *x = a, *y = b;

	return x->r.hits < y->r.hits ? 1 : x->r.hits > y->r.hits ? -1 : 0;
}

static void
wk_admin_show_query_cache(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const cols[] = { "query",  "hits",        "direct", "multi",
					    "misses", "fingerprint", "workers" };
	struct wk_admin_qc *q = calloc((size_t)g_shm->workers_cnt * SHM_QC_ROWS, sizeof(*q));
	size_t n = 0;

	(void)c;
	(void)args;
	if (!q) {
		b->has_error = true;
		return;
	}
	for (uint32_t w = 0; w < g_shm->workers_cnt; w++) {
		struct shm_worker *sw = shm_worker(w);

		if (atomic_load(&sw->pid) <= 0)
			continue;
		for (uint32_t i = 0; i < SHM_QC_ROWS; i++) {
			struct shm_qc_row r;
			size_t k;

			if (!shm_row_read(&sw->qc_rows[i].seq, &sw->qc_rows[i], &r, sizeof(r)) ||
			    !r.text_len)
				continue;
			r.text[sizeof(r.text) - 1] = '\0';
			for (k = 0; k < n; k++)
				if (q[k].r.hash == r.hash && q[k].r.text_len == r.text_len &&
				    strcmp(q[k].r.text, r.text) == 0)
					break;
			if (k == n) {
				q[n].r = r;
				q[n++].workers_cnt = 1;
				continue;
			}
			q[k].r.hits += r.hits;
			q[k].r.misses += r.misses;
			q[k].r.direct += r.direct;
			q[k].r.multi += r.multi;
			q[k].workers_cnt++;
		}
	}
	qsort(q, n, sizeof(*q), wk_admin_qc_cmp);
	pgw_put_row_description(b, cols, ARRAY_SIZE(cols));
	for (size_t k = 0; k < n; k++) {
		const char *vals[ARRAY_SIZE(cols)];
		char nums[6][24];

		snprintf(nums[0], sizeof(nums[0]), "%" PRIu64, q[k].r.hits);
		snprintf(nums[1], sizeof(nums[1]), "%" PRIu64, q[k].r.direct);
		snprintf(nums[2], sizeof(nums[2]), "%" PRIu64, q[k].r.multi);
		snprintf(nums[3], sizeof(nums[3]), "%" PRIu64, q[k].r.misses);
		snprintf(nums[4], sizeof(nums[4]), "%016" PRIx64, q[k].r.hash);
		snprintf(nums[5], sizeof(nums[5]), "%u", q[k].workers_cnt);
		vals[0] = q[k].r.text;
		for (int i = 0; i < 6; i++)
			vals[i + 1] = nums[i];
		pgw_put_data_row(b, vals, ARRAY_SIZE(cols));
	}
	free(q);
	pgw_put_command_complete(b, "SHOW");
}

/* The workers of this instance (PgDog lists other pgdog instances here too). */
static void
wk_admin_show_peers(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const cols[] = { "addr", "last_seen", "clients", "worker",
					    "pid",  "started",   "restarts" };
	char now[32];

	(void)c;
	(void)args;
	wk_admin_time(now, sizeof(now), g_wk.now_us);
	pgw_put_row_description(b, cols, ARRAY_SIZE(cols));
	for (uint32_t w = 0; w < g_shm->workers_cnt; w++) {
		struct shm_worker *sw = shm_worker(w);
		struct wk_admin_row row = { .cnt = 0 };
		int32_t pid = atomic_load(&sw->pid);
		char started[32];

		if (pid <= 0)
			continue;
		wk_admin_time(started, sizeof(started), atomic_load(&sw->started_us));
		wk_admin_cell(&row, "%s:%d", g_cfg->host, g_cfg->port);
		wk_admin_cell(&row, "%s", now);
		wk_admin_cell(&row, "%u", atomic_load(&sw->clients_cnt));
		wk_admin_cell(&row, "%u", w);
		wk_admin_cell(&row, "%d", pid);
		wk_admin_cell(&row, "%s", started);
		wk_admin_cell(&row, "%" PRIu64, (uint64_t)atomic_load(&sw->restarts));
		pgw_put_data_row(b, row.values, row.cnt);
	}
	pgw_put_command_complete(b, "SHOW");
}

/*
 * One row per pool of the current configuration. Worker 0 checks every
 * database section every lsn_check_interval while the configuration has a
 * replica (wk_lsn.c); the figures are NULL before the first answer, and
 * always when no replica is configured or lsn_check_interval is 0.
 * replica_lag (ms) of a server in recovery: 0 when it has replayed up to the
 * position its primary (a server of the same database name and shard not in
 * recovery) reported, else the time since the last transaction it replayed
 * (its now() at the check less pg_last_xact_replay_timestamp()); NULL for a
 * server not in recovery, or without a checked primary.
 */
static bool
wk_admin_lsn_read(uint32_t pool_idx, struct shm_lsn *out)
{
	struct shm_lsn *src = &shm_pool_stats(0, pool_idx)->lsn;

	if (!shm_row_read(&src->seq, src, out, sizeof(*out)) || !out->checked_us)
		return false;
	out->lsn_text[sizeof(out->lsn_text) - 1] = '\0';
	return true;
}

static void
wk_admin_show_replication(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const cols[] = { "id",
					    "database",
					    "user",
					    "addr",
					    "port",
					    "shard",
					    "role",
					    "replica_lag",
					    "pg_lsn",
					    "lsn_age",
					    "pg_is_in_recovery" };
	uint32_t pools_cnt = g_shm->pools_cnt;

	(void)c;
	(void)args;
	pgw_put_row_description(b, cols, ARRAY_SIZE(cols));
	for (uint32_t i = 0; i < pools_cnt; i++) {
		struct wk_admin_row row = { .cnt = 0 };
		struct stats_ident id;
		struct shm_lsn r;

		if (!stats_ident_read(i, &id) || id.state != SHM_POOL_LIVE)
			continue;
		wk_admin_cell(&row, "%u", i);
		wk_admin_ident_cells(&row, &id);
		if (!wk_admin_lsn_read(i, &r)) {
			for (int k = 0; k < 4; k++)
				row.values[row.cnt++] = NULL;
			pgw_put_data_row(b, row.values, row.cnt);
			continue;
		}
		if (r.is_in_recovery) {
			bool has_primary = false;
			struct shm_lsn pr;

			for (uint32_t j = 0; j < pools_cnt && !has_primary; j++) {
				struct stats_ident pid;

				has_primary = j != i && stats_ident_read(j, &pid) &&
					      pid.state == SHM_POOL_LIVE && pid.shard == id.shard &&
					      strcmp(pid.database, id.database) == 0 &&
					      wk_admin_lsn_read(j, &pr) && !pr.is_in_recovery;
			}
			if (!has_primary)
				row.values[row.cnt++] = NULL;
			else if (r.lsn >= pr.lsn)
				wk_admin_cell(&row, "%d", 0);
			else if (r.replay_us && r.server_now_us > r.replay_us)
				wk_admin_cell(&row, "%" PRIu64,
					      (r.server_now_us - r.replay_us) / 1000);
			else
				row.values[row.cnt++] = NULL; /* nothing replayed yet: unknown */
		} else {
			row.values[row.cnt++] = NULL;
		}
		wk_admin_cell(&row, "%s", r.lsn_text);
		wk_admin_cell(&row, "%" PRIu64,
			      g_wk.now_us > r.checked_us ? (g_wk.now_us - r.checked_us) / 1000 : 0);
		wk_admin_cell(&row, "%s", wk_admin_bool(r.is_in_recovery));
		pgw_put_data_row(b, row.values, row.cnt);
	}
	pgw_put_command_complete(b, "SHOW");
}

/*
 * One row per ban. id: the banned pool (the first pool of the database,
 * user and host the ban names), -1 for a ban of every user of a database.
 */
static void
wk_admin_show_bans(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const cols[] = { "id",   "database",   "user",
					    "addr", "port",       "shard",
					    "role", "ban_reason", "ban_time_left" };

	(void)c;
	(void)args;
	pgw_put_row_description(b, cols, ARRAY_SIZE(cols));
	for (uint32_t i = 0; i < SHM_BANS_MAX; i++) {
		struct shm_ban *src = shm_ban(i), r;
		struct wk_admin_row row = { .cnt = 0 };
		struct stats_ident id, *db = NULL;
		uint32_t pools_cnt = g_shm->pools_cnt;
		long pool = -1;

		if (!src->database[0] || !shm_row_read(&src->seq, src, &r, sizeof(r)) ||
		    !r.database[0])
			continue;
		if (r.expires_at_us && r.expires_at_us <= g_wk.now_us)
			continue;
		r.database[sizeof(r.database) - 1] = r.user[sizeof(r.user) - 1] = '\0';
		r.host[sizeof(r.host) - 1] = r.reason[sizeof(r.reason) - 1] = '\0';
		for (uint32_t k = 0; k < pools_cnt && !db; k++) {
			if (!stats_ident_read(k, &id) || id.state != SHM_POOL_LIVE ||
			    strcmp(id.database, r.database) != 0 ||
			    (r.host[0] && strcmp(id.host, r.host) != 0))
				continue;
			if (r.user[0] && strcmp(id.user, r.user) != 0)
				continue;
			db = &id;
			pool = r.user[0] ? (long)k : -1;
		}
		wk_admin_cell(&row, "%ld", pool);
		wk_admin_cell(&row, "%s", r.database);
		wk_admin_cell(&row, "%s", r.user);
		wk_admin_cell(&row, "%s", r.host[0] ? r.host : db ? db->host : "");
		wk_admin_cell(&row, "%d", db ? db->port : 0);
		wk_admin_cell(&row, "%d", db ? db->shard : 0);
		wk_admin_cell(&row, "%s", db ? config_role_name((enum config_role)db->role) : "");
		wk_admin_cell(&row, "%s", r.reason);
		if (r.expires_at_us)
			wk_admin_cell(&row, "%" PRIu64, (r.expires_at_us - g_wk.now_us) / 1000);
		else
			row.values[row.cnt++] = NULL;
		pgw_put_data_row(b, row.values, row.cnt);
	}
	pgw_put_command_complete(b, "SHOW");
}

/* PgBouncer's SHOW MEM, for pgdog's fixed tables in the shared segment. */
static void
wk_admin_show_mem(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const cols[] = { "name", "size", "used", "free", "memtotal" };
	uint64_t clients = wk_admin_clients_of(NULL, NULL), servers = 0, prepared = 0, bans = 0;
	uint64_t nw = g_shm->workers_cnt;
	struct {
		const char *name;
		uint64_t size, used, total;
	} rows[] = {
		{ "shm_client", sizeof(struct shm_client), clients,
		  nw * g_shm->clients_per_worker },
		{ "shm_server", sizeof(struct shm_server), 0, nw * g_shm->servers_per_worker },
		{ "shm_prepared", sizeof(struct shm_prepared), 0, nw * g_shm->prepared_per_worker },
		{ "shm_pool_stats", sizeof(struct shm_pool_stats), 0, nw * g_shm->pools_cap },
		{ "shm_ban", sizeof(struct shm_ban), 0, SHM_BANS_MAX },
	};

	(void)c;
	(void)args;
	for (uint32_t w = 0; w < g_shm->workers_cnt; w++) {
		for (uint32_t i = 0; i < g_shm->servers_per_worker; i++)
			servers += atomic_load_explicit(&shm_server(w, i)->state,
							memory_order_relaxed) != SHM_STATE_FREE;
		for (uint32_t i = 0; i < g_shm->prepared_per_worker; i++)
			prepared += shm_prepared(w, i)->id != 0;
	}
	for (uint32_t i = 0; i < SHM_BANS_MAX; i++)
		bans += shm_ban(i)->database[0] != 0;
	/* a pool index in use has a stats row per worker */
	for (uint32_t i = 0; i < g_shm->pools_cnt; i++)
		rows[3].used += nw * (atomic_load_explicit(&shm_pool_ident(i)->state,
							   memory_order_relaxed) != SHM_POOL_FREE);
	rows[1].used = servers;
	rows[2].used = prepared;
	rows[4].used = bans;
	pgw_put_row_description(b, cols, ARRAY_SIZE(cols));
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		struct wk_admin_row row = { .cnt = 0 };

		wk_admin_cell(&row, "%s", rows[i].name);
		wk_admin_cell(&row, "%" PRIu64, rows[i].size);
		wk_admin_cell(&row, "%" PRIu64, rows[i].used);
		wk_admin_cell(&row, "%" PRIu64,
			      rows[i].total > rows[i].used ? rows[i].total - rows[i].used : 0);
		wk_admin_cell(&row, "%" PRIu64, rows[i].size * rows[i].total);
		pgw_put_data_row(b, row.values, row.cnt);
	}
	pgw_put_command_complete(b, "SHOW");
}

/* PgBouncer's SHOW STATE: key, value. */
static void
wk_admin_show_state(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const cols[] = { "key", "value" };
	char workers[16], alive[16], started[32], reloads[24], bans[16], dropped[24];
	uint64_t log_dropped = 0;
	char paused_dbs[SHM_CTL_PAUSED_MAX * (SHM_NAME_MAX + 1)] = "";
	struct stats_holds h;
	uint32_t n = 0;
	size_t len = 0;

	(void)c;
	(void)args;
	stats_holds_read(&h, g_wk.now_us);
	for (uint32_t i = 0; i < h.paused_cnt; i++)
		len += (size_t)snprintf(paused_dbs + len, sizeof(paused_dbs) - len, "%s%s",
					i ? "," : "", h.paused[i]);
	snprintf(bans, sizeof(bans), "%u", h.bans_cnt);
	for (uint32_t w = 0; w < g_shm->workers_cnt; w++) {
		n += atomic_load(&shm_worker(w)->pid) > 0;
		log_dropped += atomic_load(&shm_worker(w)->log_dropped);
	}
	snprintf(dropped, sizeof(dropped), "%" PRIu64, log_dropped);
	snprintf(workers, sizeof(workers), "%u", g_shm->workers_per_gen);
	snprintf(alive, sizeof(alive), "%u", n);
	snprintf(reloads, sizeof(reloads), "%" PRIu64, (uint64_t)atomic_load(&g_shm->reloads));
	wk_admin_time(started, sizeof(started), g_shm->started_us);
	const char *const rows[][2] = {
		{ "active", g_wk.is_shutting_down ? "no" : "yes" },
		/* PAUSE without a database; MAINTENANCE ON is the instance-wide hold */
		{ "paused", h.is_pause_all ? "yes" : "no" },
		{ "suspended", h.is_maintenance ? "yes" : "no" },
		{ "workers", workers },
		{ "workers_alive", alive },
		{ "started", started },
		{ "reloads", reloads },
		{ "maintenance", h.is_maintenance ? "on" : "off" },
		{ "paused_databases", paused_dbs },
		{ "bans", bans },
		/* the workers' (the supervisor's own are in /metrics) */
		{ "log_lines_dropped", dropped },
	};

	pgw_put_row_description(b, cols, 2);
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
		pgw_put_data_row(b, rows[i], 2);
	pgw_put_command_complete(b, "SHOW");
}

/*
 * PgBouncer's SHOW FDS lists the sockets an online restart would take over.
 * pgdog hands sockets over differently (wk_handoff.c), so here it lists the
 * live client and server sockets of every worker: fd is the descriptor in
 * the worker process that holds it (numbers repeat across workers), link
 * the descriptor of the connection it is paired with, cancel the
 * BackendKeyData secret (the client's from pgdog, the server's from
 * PostgreSQL). password and the SCRAM keys are always NULL: pgdog never
 * shows secrets. Sockets still connecting have fd -1 until they log in.
 */
struct wk_admin_fd_link {
	uint64_t id;
	int32_t fd;
};

static int32_t
wk_admin_fd_find(const struct wk_admin_fd_link *v, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].id == id)
			return v[i].fd;
	return -1;
}

/*
 * The end of a SHOW FDS row, the same for clients and servers: the session
 * settings, then password and SCRAM keys, which pgdog never shows (NULL).
 */
static void
wk_admin_fd_row_end(struct pgw_buf *b, struct wk_admin_row *row, const char *encoding,
		    const char *std_strings, const char *datestyle, const char *timezone)
{
	wk_admin_cell(row, "%s", encoding);
	wk_admin_cell(row, "%s", std_strings);
	wk_admin_cell(row, "%s", datestyle);
	wk_admin_cell(row, "%s", timezone);
	for (int k = 0; k < 3; k++)
		row->values[row->cnt++] = NULL;
	pgw_put_data_row(b, row->values, row->cnt);
}

static void
wk_admin_fd_cell(struct wk_admin_row *row, int32_t fd)
{
	if (fd >= 0)
		wk_admin_cell(row, "%d", fd);
	else
		row->values[row->cnt++] = NULL;
}

static void
wk_admin_show_fds(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const cols[] = {
		"fd",        "task",     "user",     "database",         "addr",
		"port",      "cancel",   "link",     "client_encoding",  "std_strings",
		"datestyle", "timezone", "password", "scram_client_key", "scram_server_key"
	};
	size_t cap = g_shm->clients_per_worker > g_shm->servers_per_worker
			     ? g_shm->clients_per_worker
			     : g_shm->servers_per_worker;
	struct wk_admin_fd_link *cl = calloc(cap ? cap : 1, sizeof(*cl));
	struct wk_admin_fd_link *sv = calloc(cap ? cap : 1, sizeof(*sv));

	(void)c;
	(void)args;
	if (!cl || !sv) {
		free(cl);
		free(sv);
		b->has_error = true;
		return;
	}
	pgw_put_row_description(b, cols, ARRAY_SIZE(cols));
	for (uint32_t w = 0; w < g_shm->workers_cnt; w++) {
		size_t cl_cnt = 0, sv_cnt = 0;

		/* the pairs of this worker: client id <-> fd, server id <-> fd */
		for (uint32_t i = 0; i < g_shm->clients_per_worker; i++) {
			struct shm_client *r = shm_client(w, i);

			if (atomic_load_explicit(&r->state, memory_order_relaxed) != SHM_STATE_FREE)
				cl[cl_cnt++] = (struct wk_admin_fd_link){ r->id, r->fd };
		}
		for (uint32_t i = 0; i < g_shm->servers_per_worker; i++) {
			struct shm_server *r = shm_server(w, i);

			if (atomic_load_explicit(&r->state, memory_order_relaxed) != SHM_STATE_FREE)
				sv[sv_cnt++] = (struct wk_admin_fd_link){ r->id, r->fd };
		}
		for (uint32_t i = 0; i < g_shm->clients_per_worker; i++) {
			struct shm_client *src = shm_client(w, i), r;
			struct wk_admin_row row = { .cnt = 0 };

			if (atomic_load_explicit(&src->state, memory_order_relaxed) ==
				    SHM_STATE_FREE ||
			    !shm_row_read(&src->seq, src, &r, sizeof(r)) ||
			    r.state == SHM_STATE_FREE)
				continue;
			wk_admin_fd_cell(&row, r.fd);
			wk_admin_cell(&row, "%s", "client");
			wk_admin_cell(&row, "%s", r.user);
			wk_admin_cell(&row, "%s", r.database);
			wk_admin_cell(&row, "%s", r.addr);
			wk_admin_cell(&row, "%u", r.port);
			wk_admin_cell(&row, "%u", atomic_load(&r.cancel_key));
			wk_admin_fd_cell(
				&row, r.server_id ? wk_admin_fd_find(sv, sv_cnt, r.server_id) : -1);
			wk_admin_fd_row_end(b, &row, r.client_encoding, r.std_strings, r.datestyle,
					    r.timezone);
		}
		for (uint32_t i = 0; i < g_shm->servers_per_worker; i++) {
			struct shm_server *src = shm_server(w, i), r;
			struct wk_admin_row row = { .cnt = 0 };
			struct stats_ident id;

			if (atomic_load_explicit(&src->state, memory_order_relaxed) ==
				    SHM_STATE_FREE ||
			    !shm_row_read(&src->seq, src, &r, sizeof(r)) ||
			    r.state == SHM_STATE_FREE || r.pool_idx < 0 ||
			    !stats_ident_read((uint32_t)r.pool_idx, &id))
				continue;
			wk_admin_fd_cell(&row, r.fd);
			wk_admin_cell(&row, "%s", "server");
			wk_admin_cell(&row, "%s", id.user);
			wk_admin_cell(&row, "%s", id.database);
			wk_admin_cell(&row, "%s", id.host);
			wk_admin_cell(&row, "%d", id.port);
			wk_admin_cell(&row, "%u", r.backend_key);
			wk_admin_fd_cell(
				&row, r.client_id ? wk_admin_fd_find(cl, cl_cnt, r.client_id) : -1);
			wk_admin_fd_row_end(b, &row, r.client_encoding, r.std_strings, r.datestyle,
					    r.timezone);
		}
	}
	free(cl);
	free(sv);
	pgw_put_command_complete(b, "SHOW");
}

static void
wk_admin_show_version(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	const char *cols[] = { "version" };
	const char *vals[] = { "pgdog " PACKAGE_VERSION };

	(void)c;
	(void)args;
	pgw_put_row_description(b, cols, 1);
	pgw_put_data_row(b, vals, 1);
	pgw_put_command_complete(b, "SHOW");
}

/* Every command of the admin console (issue 4), for SHOW HELP. */
static const char *const wk_admin_help[][2] = {
	{ "SHOW HELP", "this list" },
	{ "SHOW VERSION", "pgdog's version" },
	{ "SHOW CLIENTS", "client connections of every worker" },
	{ "SHOW SERVERS", "server connections of every worker" },
	{ "SHOW POOLS", "pools: clients and servers by state" },
	{ "SHOW STATS", "per pool totals and averages over stats_period" },
	{ "SHOW STATS_TOTALS", "PgBouncer: totals per database" },
	{ "SHOW STATS_AVERAGES", "PgBouncer: averages per database" },
	{ "SHOW TOTALS", "PgBouncer: totals and averages over every pool" },
	{ "SHOW CONFIG", "the [general] settings in effect" },
	{ "SHOW DATABASES", "PgBouncer: configured databases" },
	{ "SHOW USERS", "PgBouncer: configured users" },
	{ "SHOW LISTS", "counts of databases, users, pools, clients, servers" },
	{ "SHOW PREPARED", "prepared statements pgdog keeps" },
	{ "SHOW LISTENERS", "LISTEN channels of the pub/sub listener connections" },
	{ "SHOW QUERY_CACHE", "cached statements of every worker, most hits first" },
	{ "SHOW PEERS", "the workers of this pgdog instance" },
	{ "SHOW REPLICATION", "replication position and lag per pool (lsn_check_interval)" },
	{ "SHOW BANS", "banned pools" },
	{ "SHOW MEM", "PgBouncer: shared memory tables" },
	{ "SHOW STATE", "PgBouncer: active, paused, suspended; holds and bans" },
	{ "SHOW FDS", "PgBouncer: the client and server sockets of every worker" },
	{ "RELOAD", "re-read the configuration files" },
	{ "RECONNECT [db]", "replace every server connection" },
	{ "PAUSE [db]", "wait for transactions to finish, then hold new queries" },
	{ "RESUME [db]", "release held queries" },
	{ "MAINTENANCE ON|OFF", "hold new transactions of the whole instance" },
	{ "SHUTDOWN", "graceful shutdown" },
	{ "BAN id|db", "refuse new transactions of a pool or database for ban_timeout" },
	{ "UNBAN [id|db]", "lift the bans of a pool or database (all: no argument)" },
	{ "SET setting TO value", "change a setting until the next reload" },
	{ "KILL [db]", "PgBouncer: drop every connection of a database (all: no argument)" },
	{ "KILL_CLIENT id", "PgBouncer: drop one client connection" },
};

static void
wk_admin_show_help(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	static const char *const cols[] = { "command", "description" };

	(void)c;
	(void)args;
	pgw_put_row_description(b, cols, 2);
	for (size_t i = 0; i < ARRAY_SIZE(wk_admin_help); i++)
		pgw_put_data_row(b, wk_admin_help[i], 2);
	pgw_put_command_complete(b, "SHOW");
}

/*
 * Any other SHOW: one of the session parameters (GUI tools ask for
 * server_version and the like, as PostgreSQL would answer them), else the
 * unknown-command error.
 */
static void wk_admin_unknown(struct pgw_buf *b, const char *cmd);

static void
wk_admin_show_param(struct wk_client *c, const char *args, struct pgw_buf *b)
{
	char cmd[300];

	(void)c;
	for (size_t i = 0; i < ARRAY_SIZE(wk_admin_params); i++) {
		if (strcasecmp(args, wk_admin_params[i][0]) == 0) {
			pgw_put_row_description(b, &wk_admin_params[i][0], 1);
			pgw_put_data_row(b, &wk_admin_params[i][1], 1);
			pgw_put_command_complete(b, "SHOW");
			return;
		}
	}
	snprintf(cmd, sizeof(cmd), "show%s%s", *args ? " " : "", args);
	wk_admin_unknown(b, cmd);
}

static void
wk_admin_unknown(struct pgw_buf *b, const char *cmd)
{
	char msg[320];

	snprintf(msg, sizeof(msg), "unrecognized admin command \"%.200s\"", cmd);
	pgw_put_error(b, false, "ERROR", SQLSTATE_SYNTAX_ERROR, msg, NULL,
		      "Run SHOW HELP for the list of admin commands.");
}

/* ---- dispatch ------------------------------------------------------------------ */

/*
 * A command: its normalized words (lower case, single blanks); when
 * has_args, anything after them (past one blank) is passed in args. The
 * handler writes the whole reply but ReadyForQuery.
 */
typedef void wk_admin_fn(struct wk_client *c, const char *args, struct pgw_buf *b);

struct wk_admin_cmd {
	const char *name;
	bool has_args;
	wk_admin_fn *fn;
};

static const struct wk_admin_cmd wk_admin_cmds[] = {
	{ "show help", false, wk_admin_show_help },
	{ "show version", false, wk_admin_show_version },
	{ "show clients", false, wk_admin_show_clients },
	{ "show servers", false, wk_admin_show_servers },
	{ "show pools", false, wk_admin_show_pools },
	{ "show prepared", false, wk_admin_show_prepared },
	{ "show listeners", false, wk_admin_show_listeners },
	{ "show stats", false, wk_admin_show_stats },
	{ "show stats_totals", false, wk_admin_show_stats_totals },
	{ "show stats_averages", false, wk_admin_show_stats_averages },
	{ "show totals", false, wk_admin_show_totals },
	{ "show config", false, wk_admin_show_config },
	{ "show databases", false, wk_admin_show_databases },
	{ "show users", false, wk_admin_show_users },
	{ "show lists", false, wk_admin_show_lists },
	{ "show query_cache", false, wk_admin_show_query_cache },
	{ "show peers", false, wk_admin_show_peers },
	{ "show replication", false, wk_admin_show_replication },
	{ "show bans", false, wk_admin_show_bans },
	{ "show mem", false, wk_admin_show_mem },
	{ "show state", false, wk_admin_show_state },
	{ "show fds", false, wk_admin_show_fds },
	/* last: any other SHOW */
	{ "show", true, wk_admin_show_param },
};

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
	char cmd[256];
	const struct wk_admin_cmd *found = NULL;
	const char *args = "";

	wk_admin_normalize(sql, cmd, sizeof(cmd));
	log_debug(&c->lctx, "admin command: %.100s", cmd);
	{
		enum wk_rc rc;

		/* action commands (RELOAD, PAUSE, ...): wk_admin_ctl.c */
		if (wk_admin_ctl_query(c, cmd, sql, &rc))
			return rc;
	}
	pgw_buf_reset(b);
	for (size_t i = 0; i < ARRAY_SIZE(wk_admin_cmds) && cmd[0]; i++) {
		const struct wk_admin_cmd *e = &wk_admin_cmds[i];
		size_t n = strlen(e->name);

		if (strncmp(cmd, e->name, n) != 0)
			continue;
		if (cmd[n] == '\0' || (e->has_args && cmd[n] == ' ')) {
			found = e;
			args = cmd[n] ? cmd + n + 1 : "";
			break;
		}
	}
	if (cmd[0] == '\0') {
		pgw_put_empty_query(b);
	} else if (found) {
		found->fn(c, args, b);
	} else {
		wk_admin_unknown(b, cmd);
	}
	pgw_put_ready(b, 'I');
	if (b->has_error) {
		/* too large or out of memory: say so rather than send half a reply */
		pgw_buf_reset(b);
		pgw_put_error(b, false, "ERROR", SQLSTATE_OUT_OF_MEMORY,
			      "the admin reply could not be built (out of memory or too large)",
			      NULL, NULL);
		pgw_put_ready(b, 'I');
	}
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

		if (wk_client_hold_for_output(c))
			return WK_AGAIN; /* its answers are not read: the rest waits */
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
		if (wk_admin_ctl_is_waiting(c))
			return WK_AGAIN; /* the rest waits for the pending command's answer */
	}
}
