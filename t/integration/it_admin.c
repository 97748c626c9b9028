/*
 * it_admin.c: the admin console's SHOW commands and the OpenMetrics
 * endpoint against a real PostgreSQL, through a pgdog with two workers:
 * every command's columns, statistics that add up after a known workload
 * (transactions, queries, bytes, histograms, wait time, errors, the
 * extended protocol), averages over stats_period, idle-in-transaction
 * servers, SHOW HELP, unknown commands, the extended protocol on the admin
 * console, and /metrics scraped over HTTP and checked by a real
 * `promtool check metrics`, with values equal to SHOW STATS.
 */
#include "t/lib/it.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define APP   "dbname=app user=app password=app_pw"
#define SOLO  "dbname=app user=solo password=solo_pw"
#define ADMIN "dbname=admin user=admin password=pgdog"

static int metrics_port;
static char general[256];

static void
setup(void)
{
	it_env_start("admin");
	it_pg_start(NULL);
	it_pg_role("app", "app_pw", "scram-sha-256");
	it_pg_role("solo", "solo_pw", "scram-sha-256");
	it_pg_role("third", "third_pw", "scram-sha-256");
	it_pg_hba("host all app,solo,third 127.0.0.1/32 scram-sha-256");
	metrics_port = it_free_port();
	snprintf(general, sizeof(general),
		 "pooler_mode = transaction\nstats_period = 1000\nopenmetrics_port = %d\n"
		 "openmetrics_host = 127.0.0.1\n",
		 metrics_port);
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 2,
		.general = general,
		.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 4\n"
			 "[users.solo]\ndatabase = app\npassword = solo_pw\npool_size = 1\n",
	});
}

static void
teardown(void)
{
	it_env_stop();
}

/* ---- helpers ---------------------------------------------------------------- */

/* A number from SHOW cmd for pool app/user. */
static unsigned long long
pool_num(PGconn *adm, const char *cmd, const char *user, const char *col)
{
	return strtoull(it_show_value(adm, cmd, "database", "app", "user", user, col), NULL, 10);
}

static unsigned long long
stat_num(PGconn *adm, const char *user, const char *col)
{
	return pool_num(adm, "SHOW STATS", user, col);
}

/* SHOW cmd has exactly these columns, in this order. */
static void
check_columns(PGconn *adm, const char *cmd, const char *const *cols, int n)
{
	PGresult *res = it_exec_ok(adm, cmd);

	ck_assert_msg(PQnfields(res) == n, "%s: %d columns, expected %d", cmd, PQnfields(res), n);
	for (int i = 0; i < n; i++)
		ck_assert_msg(strcmp(PQfname(res, i), cols[i]) == 0, "%s: column %d is %s, not %s",
			      cmd, i, PQfname(res, i), cols[i]);
	PQclear(res);
}

static int
http_request(const char *request, char *body, size_t body_len)
{
	return it_http_request(metrics_port, request, body, body_len);
}

static int
http_get(const char *path, char *body, size_t body_len)
{
	char req[512];

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n",
		 path);
	return http_request(req, body, body_len);
}

/* ---- columns ------------------------------------------------------------------ */

#define COLS(...)                             \
	(const char *const[]){ __VA_ARGS__ }, \
		(int)(sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(char *))

/* Every SHOW command answers with its documented columns. */
START_TEST(test_admin_columns)
{
	PGconn *adm = it_connect(ADMIN);
	/* PgDog's counters, then pgdog's own */
	static const char *const stats[] = {
		"xact_count",
		"xact_2pc_count",
		"query_count",
		"server_assignment_count",
		"received",
		"sent",
		"xact_time",
		"idle_xact_time",
		"query_time",
		"wait_time",
		"server_parse_count",
		"bind_count",
		"close_count",
		"errors",
		"cleaned",
		"rollbacks",
		"connect_time",
		"connect_count",
		"reads",
		"writes",
		"auth_attempts",
		"rows_inserted",
		"rows_updated",
		"rows_deleted",
		"client_parse_count",
		"auth_failures",
	};
	enum {
		NSTATS = sizeof(stats) / sizeof(stats[0])
	};
	const char *stat_cols[6 + 2 * NSTATS];
	char names[2 * NSTATS][48];
	PGresult *res;

	check_columns(adm, "SHOW CLIENTS",
		      COLS("id", "user", "database", "addr", "port", "state", "replication",
			   "connect_time", "last_request", "queries", "transactions",
			   "transactions_2pc", "wait_time", "query_time", "transaction_time",
			   "bytes_received", "bytes_sent", "errors", "application_name", "locked",
			   "prepared_statements", "worker", "server_id"));
	check_columns(adm, "SHOW SERVERS",
		      COLS("pool_id", "database", "user", "addr", "port", "state", "connect_time",
			   "request_time", "remote_pid", "client_id", "transactions", "queries",
			   "rollbacks", "prepared_statements", "healthchecks", "errors",
			   "bytes_received", "bytes_sent", "last_sent", "last_received", "age",
			   "application_name", "id", "worker", "tx_status"));
	check_columns(adm, "SHOW POOLS",
		      COLS("id", "database", "user", "addr", "port", "shard", "role", "cl_waiting",
			   "sv_idle", "sv_active", "sv_idle_xact", "sv_total", "maxwait",
			   "maxwait_us", "pool_mode", "paused", "banned", "healthy", "errors",
			   "re_synced", "out_of_sync", "force_closed", "online", "schema_admin",
			   "cl_active", "sv_login", "pool_size", "checkout_timeouts", "pins"));
	/* SHOW STATS: six pool columns, then total_ and avg_ of every counter */
	stat_cols[0] = "database";
	stat_cols[1] = "user";
	stat_cols[2] = "addr";
	stat_cols[3] = "port";
	stat_cols[4] = "shard";
	stat_cols[5] = "role";
	for (int i = 0; i < NSTATS; i++) {
		snprintf(names[i], sizeof(names[i]), "total_%s", stats[i]);
		snprintf(names[NSTATS + i], sizeof(names[0]), "avg_%s", stats[i]);
	}
	for (int i = 0; i < 2 * NSTATS; i++)
		stat_cols[6 + i] = names[i];
	check_columns(adm, "SHOW STATS", stat_cols, 6 + 2 * NSTATS);
	check_columns(adm, "SHOW STATS_TOTALS",
		      COLS("database", "server_assignment_count", "xact_count", "query_count",
			   "bytes_received", "bytes_sent", "xact_time", "query_time", "wait_time",
			   "client_parse_count", "server_parse_count", "bind_count"));
	check_columns(adm, "SHOW STATS_AVERAGES",
		      COLS("database", "server_assignment_count", "xact_count", "query_count",
			   "bytes_received", "bytes_sent", "xact_time", "query_time", "wait_time",
			   "client_parse_count", "server_parse_count", "bind_count"));
	check_columns(adm, "SHOW TOTALS", COLS("name", "value"));
	check_columns(adm, "SHOW CONFIG", COLS("name", "value"));
	check_columns(adm, "SHOW LISTS",
		      COLS("databases", "users", "pools", "used_clients", "free_clients",
			   "free_servers", "used_servers"));
	check_columns(adm, "SHOW DATABASES",
		      COLS("name", "host", "port", "database", "force_user", "pool_size",
			   "min_pool_size", "reserve_pool_size", "server_lifetime", "pool_mode",
			   "load_balance_hosts", "max_connections", "current_connections",
			   "max_client_connections", "current_client_connections", "paused",
			   "disabled"));
	check_columns(adm, "SHOW USERS",
		      COLS("name", "pool_size", "reserve_pool_size", "pool_mode",
			   "max_user_connections", "current_connections",
			   "max_user_client_connections", "current_client_connections"));
	check_columns(adm, "SHOW QUERY_CACHE",
		      COLS("query", "hits", "direct", "multi", "misses", "fingerprint", "workers"));
	check_columns(adm, "SHOW PEERS",
		      COLS("addr", "last_seen", "clients", "worker", "pid", "started", "restarts"));
	check_columns(adm, "SHOW REPLICATION",
		      COLS("id", "database", "user", "addr", "port", "shard", "role", "replica_lag",
			   "pg_lsn", "lsn_age", "pg_is_in_recovery"));
	check_columns(adm, "SHOW BANS",
		      COLS("id", "database", "user", "addr", "port", "shard", "role", "ban_reason",
			   "ban_time_left"));
	check_columns(adm, "SHOW MEM", COLS("name", "size", "used", "free", "memtotal"));
	check_columns(adm, "SHOW STATE", COLS("key", "value"));
	check_columns(adm, "SHOW FDS",
		      COLS("fd", "task", "user", "database", "addr", "port", "cancel", "link",
			   "client_encoding", "std_strings", "datestyle", "timezone", "password",
			   "scram_client_key", "scram_server_key"));
	check_columns(adm, "SHOW PREPARED",
		      COLS("worker", "name", "statement", "used_by", "servers", "uses"));
	check_columns(adm, "SHOW VERSION", COLS("version"));
	check_columns(adm, "show help;", COLS("command", "description"));

	/* a few rows: both pools, both workers, no bans, one row per pool */
	res = it_exec_ok(adm, "SHOW STATS");
	ck_assert_int_eq(PQntuples(res), 2);
	PQclear(res);
	res = it_exec_ok(adm, "SHOW PEERS");
	ck_assert_int_eq(PQntuples(res), 2);
	PQclear(res);
	res = it_exec_ok(adm, "SHOW BANS");
	ck_assert_int_eq(PQntuples(res), 0);
	PQclear(res);
	res = it_exec_ok(adm, "SHOW FDS");
	ck_assert_int_ge(PQntuples(res), 1); /* this admin connection at least */
	PQclear(res);
	res = it_exec_ok(adm, "SHOW REPLICATION");
	ck_assert_int_eq(PQntuples(res), 2);
	/* no replica configured: nothing is checked */
	ck_assert(PQgetisnull(res, 0, PQfnumber(res, "replica_lag")));
	ck_assert(PQgetisnull(res, 0, PQfnumber(res, "pg_lsn")));
	ck_assert(PQgetisnull(res, 0, PQfnumber(res, "pg_is_in_recovery")));
	PQclear(res);
	res = it_exec_ok(adm, "SHOW DATABASES");
	ck_assert_int_eq(PQntuples(res), 2); /* app and the admin console */
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "app");
	ck_assert_str_eq(PQgetvalue(res, 1, 0), "admin");
	PQclear(res);
	res = it_exec_ok(adm, "SHOW USERS");
	ck_assert_int_eq(PQntuples(res), 2);
	PQclear(res);
	res = it_exec_ok(adm, "SHOW STATE");
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "active");
	ck_assert_str_eq(PQgetvalue(res, 0, 1), "yes");
	PQclear(res);
	res = it_exec_ok(adm, "SHOW TOTALS");
	ck_assert_int_eq(PQntuples(res), 22);
	ck_assert_str_eq(PQgetvalue(res, 1, 0), "total_xact_count");
	PQclear(res);
	PQfinish(adm);
}
END_TEST

/* SHOW CONFIG lists [general] as loaded, the new keys included. */
START_TEST(test_admin_config)
{
	PGconn *adm = it_connect(ADMIN);
	PGresult *res = it_exec_ok(adm, "SHOW CONFIG");
	char port[16];
	int seen = 0;

	snprintf(port, sizeof(port), "%d", metrics_port);
	ck_assert_int_ge(PQntuples(res), 30);
	for (int r = 0; r < PQntuples(res); r++) {
		const char *k = PQgetvalue(res, r, 0), *v = PQgetvalue(res, r, 1);

		if (strcmp(k, "stats_period") == 0 && strcmp(v, "1000") == 0)
			seen |= 1;
		if (strcmp(k, "openmetrics_port") == 0 && strcmp(v, port) == 0)
			seen |= 2;
		if (strcmp(k, "openmetrics_namespace") == 0 && strcmp(v, "pgdog_") == 0)
			seen |= 4;
		if (strcmp(k, "pooler_mode") == 0 && strcmp(v, "transaction") == 0)
			seen |= 8;
	}
	ck_assert_int_eq(seen, 15);
	PQclear(res);
	PQfinish(adm);
}
END_TEST

/* ---- statistics after a known workload ------------------------------------- */

#define WL_CONNS     8  /* at least this many connections... */
#define WL_CONNS_MAX 32 /* ...and more until both workers hold some */
#define WL_AUTO      5  /* autocommit SELECTs per connection */
#define WL_BLOCK     2  /* BEGIN; SELECT; COMMIT blocks per connection */

/*
 * N transactions through both workers: the totals over every worker move by
 * exactly N transactions and the right number of queries, bytes move, and
 * the histograms count every query and transaction.
 */
START_TEST(test_admin_stats_workload)
{
	PGconn *adm = it_connect(ADMIN), *conns[WL_CONNS_MAX];
	unsigned long long xact0 = stat_num(adm, "app", "total_xact_count");
	unsigned long long query0 = stat_num(adm, "app", "total_query_count");
	unsigned long long recv0 = stat_num(adm, "app", "total_received");
	unsigned long long sent0 = stat_num(adm, "app", "total_sent");
	unsigned long long qtime0 = stat_num(adm, "app", "total_query_time");
	unsigned long long xtime0 = stat_num(adm, "app", "total_xact_time");
	unsigned long long assign0 = stat_num(adm, "app", "total_server_assignment_count");
	unsigned long long solo0 = stat_num(adm, "solo", "total_xact_count");
	int n;
	static char body[4 << 20];
	double hq, hx;

	ck_assert_int_eq(http_get("/metrics", body, sizeof(body)), 200);
	hq = it_metric(body, "pgdog_query_duration_seconds_count", "app");
	hx = it_metric(body, "pgdog_xact_duration_seconds_count", "app");
	n = it_connect_spread(APP, "app", conns, WL_CONNS, WL_CONNS_MAX);
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < WL_AUTO; k++)
			ck_assert_str_eq(it_value(conns[i], "SELECT 1"), "1");
		for (int k = 0; k < WL_BLOCK; k++) {
			PQclear(it_exec_ok(conns[i], "BEGIN"));
			PQclear(it_exec_ok(conns[i], "SELECT 2"));
			PQclear(it_exec_ok(conns[i], "COMMIT"));
		}
	}
	ck_assert_uint_eq(stat_num(adm, "app", "total_xact_count") - xact0,
			  (unsigned long long)n * (WL_AUTO + WL_BLOCK));
	ck_assert_uint_eq(stat_num(adm, "app", "total_query_count") - query0,
			  (unsigned long long)n * (WL_AUTO + 3 * WL_BLOCK));
	ck_assert_uint_eq(stat_num(adm, "app", "total_server_assignment_count") - assign0,
			  (unsigned long long)n * (WL_AUTO + WL_BLOCK));
	/* Query messages: "SELECT 1" 14 bytes; BEGIN 11, "SELECT 2" 14, COMMIT 12 */
	ck_assert_uint_eq(stat_num(adm, "app", "total_received") - recv0,
			  (unsigned long long)n * (WL_AUTO * 14 + WL_BLOCK * (11 + 14 + 12)));
	ck_assert_uint_gt(stat_num(adm, "app", "total_sent") - sent0,
			  (unsigned long long)n * (WL_AUTO + 3 * WL_BLOCK) * 6);
	ck_assert_uint_gt(stat_num(adm, "app", "total_query_time"), qtime0);
	/* a transaction lasts at least as long as its queries */
	ck_assert_uint_ge(stat_num(adm, "app", "total_xact_time") - xtime0,
			  stat_num(adm, "app", "total_query_time") - qtime0);
	/* the other pool saw none of it */
	ck_assert_uint_eq(stat_num(adm, "solo", "total_xact_count"), solo0);

	ck_assert_int_eq(http_get("/metrics", body, sizeof(body)), 200);
	ck_assert_int_eq(
		(long long)(it_metric(body, "pgdog_query_duration_seconds_count", "app") - hq),
		(unsigned long long)n * (WL_AUTO + 3 * WL_BLOCK));
	ck_assert_int_eq(
		(long long)(it_metric(body, "pgdog_xact_duration_seconds_count", "app") - hx),
		(unsigned long long)n * (WL_AUTO + WL_BLOCK));
	/* the +Inf bucket is the count */
	ck_assert_msg(strstr(body, "le=\"+Inf\"") != NULL, "no +Inf bucket");
	for (int i = 0; i < n; i++)
		PQfinish(conns[i]);
	PQfinish(adm);
}
END_TEST

/* Errors, the extended protocol's steps, and per-client counters. */
START_TEST(test_admin_stats_errors_extended)
{
	PGconn *adm = it_connect(ADMIN), *c = it_connect(APP);
	unsigned long long err0 = stat_num(adm, "app", "total_errors");
	unsigned long long parse0 = stat_num(adm, "app", "total_client_parse_count");
	unsigned long long bind0 = stat_num(adm, "app", "total_bind_count");
	const char *params[1] = { "41" };
	PGresult *res;
	bool found = false;

	it_exec_error(c, "SELECT 1/0", "22012");
	it_exec_error(c, "SELECT * FROM no_such_table", "42P01");
	for (int i = 0; i < 3; i++) {
		res = PQexecParams(c, "SELECT $1::int + 1", 1, NULL, params, NULL, NULL, 0);
		ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
		ck_assert_str_eq(PQgetvalue(res, 0, 0), "42");
		PQclear(res);
	}
	ck_assert_uint_eq(stat_num(adm, "app", "total_errors") - err0, 2);
	ck_assert_uint_eq(stat_num(adm, "app", "total_client_parse_count") - parse0, 3);
	ck_assert_uint_eq(stat_num(adm, "app", "total_bind_count") - bind0, 3);
	ck_assert_uint_ge(stat_num(adm, "app", "total_server_parse_count"), 1);
	/* the client's own row: 2 errors, 5 transactions */
	res = it_exec_ok(adm, "SHOW CLIENTS");
	for (int r = 0; r < PQntuples(res); r++) {
		if (strcmp(PQgetvalue(res, r, PQfnumber(res, "user")), "app") != 0)
			continue;
		found = true;
		ck_assert_str_eq(PQgetvalue(res, r, PQfnumber(res, "errors")), "2");
		ck_assert_str_eq(PQgetvalue(res, r, PQfnumber(res, "transactions")), "5");
		ck_assert_msg(atoll(PQgetvalue(res, r, PQfnumber(res, "query_time"))) > 0,
			      "query_time of the client is 0");
	}
	ck_assert(found);
	PQclear(res);
	PQfinish(c);
	PQfinish(adm);
}
END_TEST

/*
 * pool_size 1: a client that waits while another holds the server in a
 * transaction accounts its wait; the holder's server is idle in transaction
 * (SHOW POOLS and /metrics) until it commits.
 */
START_TEST(test_admin_wait_and_idle_xact)
{
	PGconn *adm = it_connect(ADMIN), *c1 = it_connect(SOLO), *c2 = it_connect(SOLO);
	unsigned long long wait0 = stat_num(adm, "solo", "total_wait_time");
	unsigned long long idle0 = stat_num(adm, "solo", "total_idle_xact_time");
	static char body[4 << 20];
	long long end;
	PGresult *res;

	PQclear(it_exec_ok(c1, "BEGIN"));
	PQclear(it_exec_ok(c1, "SELECT 1"));
	ck_assert_uint_eq(pool_num(adm, "SHOW POOLS", "solo", "sv_idle_xact"), 1);
	ck_assert_uint_eq(pool_num(adm, "SHOW POOLS", "solo", "sv_active"), 0);
	ck_assert_int_eq(http_get("/metrics", body, sizeof(body)), 200);
	ck_assert(it_metric(body, "pgdog_sv_idle_xact", "solo") == 1);
	ck_assert_int_eq(PQsendQuery(c2, "SELECT 2"), 1);
	/* c2 waits (the only server is c1's) */
	end = it_now_ms() + 5000;
	while (pool_num(adm, "SHOW POOLS", "solo", "cl_waiting") != 1)
		ck_assert_msg(it_now_ms() < end, "the second client never waited");
	it_sleep_ms(300);
	PQclear(it_exec_ok(c1, "COMMIT"));
	res = PQgetResult(c2);
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	PQclear(res);
	while ((res = PQgetResult(c2)) != NULL)
		PQclear(res);
	ck_assert_uint_ge(stat_num(adm, "solo", "total_wait_time") - wait0, 250000);
	/* c1 was idle in its transaction for about 300 ms too */
	ck_assert_uint_ge(stat_num(adm, "solo", "total_idle_xact_time") - idle0, 250000);
	ck_assert_uint_eq(pool_num(adm, "SHOW POOLS", "solo", "sv_idle_xact"), 0);
	PQfinish(c1);
	PQfinish(c2);
	PQfinish(adm);
}
END_TEST

/*
 * connects: every server connection a pool opens counts once in
 * total_connect_count, with its time in total_connect_time. RECONNECT
 * closes the idle ones, so the next query must open (and count) a new one.
 */
START_TEST(test_admin_stats_connects)
{
	PGconn *adm = it_connect(ADMIN), *c = it_connect(APP);
	unsigned long long cnt0, time0;
	long long end;

	ck_assert_str_eq(it_value(c, "SELECT 1"), "1");
	cnt0 = stat_num(adm, "app", "total_connect_count");
	time0 = stat_num(adm, "app", "total_connect_time");
	ck_assert_uint_gt(cnt0, 0);
	ck_assert_uint_gt(time0, 0);
	PQclear(it_exec_ok(adm, "RECONNECT app"));
	ck_assert_str_eq(it_value(c, "SELECT 2"), "2");
	end = it_now_ms() + 3000;
	while (stat_num(adm, "app", "total_connect_count") == cnt0) {
		ck_assert_msg(it_now_ms() < end, "no new connect counted after RECONNECT");
		it_sleep_ms(20);
	}
	ck_assert_uint_gt(stat_num(adm, "app", "total_connect_time"), time0);
	PQfinish(c);
	PQfinish(adm);
}
END_TEST

/*
 * Averages over stats_period (1 s here): traffic through more than two
 * periods gives a positive rate and mean query time.
 */
START_TEST(test_admin_stats_averages)
{
	PGconn *adm = it_connect(ADMIN), *c = it_connect(APP);
	long long end = it_now_ms() + 2600;
	int n = 0;
	PGresult *res;

	while (it_now_ms() < end && n < 100000) {
		ck_assert_str_eq(it_value(c, "SELECT 1"), "1");
		n++;
		it_sleep_ms(5);
	}
	ck_assert_uint_gt(stat_num(adm, "app", "avg_xact_count"), 0);
	ck_assert_uint_gt(stat_num(adm, "app", "avg_query_count"), 0);
	ck_assert_uint_gt(stat_num(adm, "app", "avg_query_time"), 0);
	ck_assert_uint_gt(stat_num(adm, "app", "avg_received"), 0);
	ck_assert_uint_gt(stat_num(adm, "app", "avg_xact_time"), 0);
	res = it_exec_ok(adm, "SHOW STATS_AVERAGES");
	ck_assert_int_eq(PQntuples(res), 1);
	ck_assert_msg(atoll(PQgetvalue(res, 0, PQfnumber(res, "xact_count"))) > 0,
		      "SHOW STATS_AVERAGES xact_count is 0");
	PQclear(res);
	/* and back to 0 after two quiet periods (a loaded machine may delay the ticks) */
	it_sleep_ms(2300);
	end = it_now_ms() + 5000;
	while (stat_num(adm, "app", "avg_xact_count") != 0) {
		ck_assert_msg(it_now_ms() < end, "avg_xact_count stayed above 0 with no traffic");
		it_sleep_ms(100);
	}
	PQfinish(c);
	PQfinish(adm);
}
END_TEST

/* ---- console behaviour ------------------------------------------------------ */

START_TEST(test_admin_help_and_unknown)
{
	PGconn *adm = it_connect(ADMIN);
	PGresult *res = it_exec_ok(adm, "SHOW HELP");
	static const char *const want[] = {
		"SHOW STATS",           "SHOW POOLS",         "SHOW FDS",       "RELOAD",
		"PAUSE [db]",           "SHUTDOWN",           "BAN id|db",      "UNBAN [id|db]",
		"SET setting TO value", "KILL [db]",          "KILL_CLIENT id", "SHOW BANS",
		"SHOW PEERS",           "MAINTENANCE ON|OFF",
	};
	const char *hint;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		bool found = false;

		for (int r = 0; r < PQntuples(res); r++)
			found = found || strcmp(PQgetvalue(res, r, 0), want[i]) == 0;
		ck_assert_msg(found, "SHOW HELP does not list %s", want[i]);
	}
	PQclear(res);
	res = PQexec(adm, "SHOW NOTHING_LIKE_THIS");
	ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "42601");
	hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	ck_assert_msg(hint && strstr(hint, "SHOW HELP"), "hint: %s", hint ? hint : "(none)");
	ck_assert_msg(
		strstr(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), "show nothing_like_this"),
		"message: %s", PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
	PQclear(res);
	/* SHOW of a session parameter answers like PostgreSQL (GUI tools ask) */
	res = it_exec_ok(adm, "SHOW server_version");
	ck_assert_str_eq(PQfname(res, 0), "server_version");
	ck_assert_msg(strstr(PQgetvalue(res, 0, 0), "pgdog"), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	res = it_exec_ok(adm, "show TIMEZONE");
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "UTC");
	PQclear(res);
	res = PQexec(adm, "SHOW");
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "42601");
	PQclear(res);
	/* commands without arguments refuse one, saying so (not SET's usage), and do nothing */
	{
		static const char *const extra[][2] = {
			{ "RELOAD now", "RELOAD takes no arguments" },
			{ "shutdown now;", "shutdown takes no arguments" }
		};

		for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
			res = PQexec(adm, extra[i][0]);
			ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
			ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "42601");
			ck_assert_msg(strcmp(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
					     extra[i][1]) == 0,
				      "%s: %s", extra[i][0],
				      PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
			PQclear(res);
		}
	}
	/* the console still works (and pgdog did not shut down) */
	ck_assert_int_eq(PQntuples(res = it_exec_ok(adm, "show   version ;")), 1);
	PQclear(res);
	PQfinish(adm);
}
END_TEST

/* Whether the bold text (.B/.BR/.RB/.BI lines) of man[from, to) has the token w. */
static bool
man_has_bold(const char *from, const char *to, const char *w)
{
	size_t n = strlen(w);

	for (const char *l = from; l && l < to; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		const char *end = strchr(l, '\n');

		if (strncmp(l, ".B", 2) != 0 && strncmp(l, ".RB", 3) != 0)
			continue;
		for (const char *p = strchr(l, ' '); p && p < end && *p; p++) {
			/* a token: between blanks, quotes, commas, parentheses */
			if (strncmp(p, w, n) == 0 && strchr(" \"(", p[-1]) &&
			    strchr(" \",)\n.:;", p[n]))
				return true;
		}
	}
	return false;
}

/*
 * pgdog-admin(7) documents every column every SHOW command sends (in the
 * command's own section), and every command SHOW HELP lists.
 */
START_TEST(test_admin_man_page)
{
	static const char *const cmds[] = {
		"SHOW VERSION",  "SHOW CLIENTS",     "SHOW SERVERS",   "SHOW POOLS",
		"SHOW PREPARED", "SHOW LISTENERS",   "SHOW STATS",     "SHOW STATS_TOTALS",
		"SHOW TOTALS",   "SHOW CONFIG",      "SHOW DATABASES", "SHOW USERS",
		"SHOW LISTS",    "SHOW QUERY_CACHE", "SHOW PEERS",     "SHOW REPLICATION",
		"SHOW BANS",     "SHOW MEM",         "SHOW STATE",     "SHOW FDS",
		"SHOW HELP",
	};
	char path[IT_PATH_MAX], head[64];
	char *man;
	PGconn *adm = it_connect(ADMIN);
	PGresult *res;
	const char *help, *help_end;

	snprintf(path, sizeof(path), "%s/man/pgdog-admin.7", it_srcdir());
	man = it_read_file(path);
	ck_assert_ptr_nonnull(man);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *sec, *end;

		snprintf(head, sizeof(head), "\n.SS %s\n", cmds[i]);
		sec = strstr(man, head);
		ck_assert_msg(sec != NULL, "pgdog-admin(7) has no section %s", cmds[i]);
		end = strstr(sec + 1, "\n.SS ");
		ck_assert_ptr_nonnull(end);
		res = it_exec_ok(adm, cmds[i]);
		for (int f = 0; f < PQnfields(res); f++) {
			const char *col = PQfname(res, f);

			/* SHOW STATS documents each counter once, for its total_ and avg_ */
			if (strcmp(cmds[i], "SHOW STATS") == 0 && strncmp(col, "total_", 6) == 0)
				col += 6;
			else if (strcmp(cmds[i], "SHOW STATS") == 0 && strncmp(col, "avg_", 4) == 0)
				col += 4;
			ck_assert_msg(man_has_bold(sec, end, col),
				      "pgdog-admin(7) %s does not document the column %s", cmds[i],
				      PQfname(res, f));
		}
		PQclear(res);
	}
	/* the commands SHOW HELP lists: a SHOW has its own section, the others are named there */
	help = strstr(man, "\n.SS SHOW HELP\n");
	ck_assert_ptr_nonnull(help);
	help_end = strstr(help + 1, "\n.SS ");
	res = it_exec_ok(adm, "SHOW HELP");
	for (int r = 0; r < PQntuples(res); r++) {
		const char *cmd = PQgetvalue(res, r, 0);

		if (strncmp(cmd, "SHOW ", 5) == 0) {
			snprintf(head, sizeof(head), "\n.SS %s\n", cmd);
			ck_assert_msg(strstr(man, head) != NULL, "pgdog-admin(7) has no section %s",
				      cmd);
		} else {
			char quoted[64], plain[64];
			const char *q, *b;

			snprintf(quoted, sizeof(quoted), "\n.BR \"%s\"", cmd);
			snprintf(plain, sizeof(plain), "\n.BR %s ", cmd);
			q = strstr(help, quoted);
			b = strstr(help, plain);
			ck_assert_msg((q != NULL && q < help_end) || (b != NULL && b < help_end),
				      "pgdog-admin(7) SHOW HELP does not name %s", cmd);
		}
	}
	PQclear(res);
	free(man);
	PQfinish(adm);
}
END_TEST

/* server_version at startup (GUI tools need it); the extended protocol errors, never hangs. */
START_TEST(test_admin_extended_and_version)
{
	PGconn *adm = it_connect(ADMIN);
	const char *sv = PQparameterStatus(adm, "server_version");
	PGresult *res;

	ck_assert_msg(sv != NULL && strstr(sv, "pgdog") != NULL, "server_version: %s",
		      sv ? sv : "(none)");
	ck_assert_int_ge(PQserverVersion(adm), 150000);
	res = PQexecParams(adm, "SHOW VERSION", 0, NULL, NULL, NULL, NULL, 0);
	ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "0A000");
	PQclear(res);
	res = it_exec_ok(adm, "SHOW VERSION");
	ck_assert_int_eq(PQntuples(res), 1);
	PQclear(res);
	PQfinish(adm);
}
END_TEST

/* ---- OpenMetrics ---------------------------------------------------------------- */

/*
 * /metrics passes `promtool check metrics` (Debian's prometheus package; CI
 * installs it, so its absence fails the test), and its figures are SHOW
 * STATS's.
 */
START_TEST(test_admin_metrics_promtool)
{
	PGconn *adm = it_connect(ADMIN), *c = it_connect(APP);
	static char body[4 << 20];
	const char *path = it_path("metrics.txt");
	char cmd[IT_PATH_MAX * 2 + 64];
	FILE *f;
	int rc;

	for (int i = 0; i < 10; i++)
		ck_assert_str_eq(it_value(c, "SELECT 1"), "1");
	PQfinish(c);
	ck_assert_msg(access("/usr/bin/promtool", X_OK) == 0 ||
			      system("command -v promtool >/dev/null") == 0,
		      "promtool is missing: apt-get install prometheus (CI installs it)");
	ck_assert_int_eq(http_get("/metrics", body, sizeof(body)), 200);
	f = fopen(path, "w");
	ck_assert(f != NULL);
	ck_assert(fputs(body, f) >= 0);
	ck_assert_int_eq(fclose(f), 0);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s > %s 2>&1", path,
		 it_path("promtool.out"));
	rc = system(cmd);
	if (rc != 0) {
		snprintf(cmd, sizeof(cmd), "cat %s >&2", it_path("promtool.out"));
		(void)system(cmd);
	}
	ck_assert_msg(rc == 0, "promtool check metrics failed (status %d)", rc);

	/* labels, process figures, histograms */
	ck_assert_msg(
		strstr(body,
		       "user=\"app\",database=\"app\",shard=\"0\",role=\"primary\",host=\"127.0.0.1\""),
		"pool labels missing");
	ck_assert(it_metric_plain(body, "pgdog_workers") == 2);
	ck_assert(it_metric_plain(body, "pgdog_workers_configured") == 2);
	ck_assert(it_metric_plain(body, "pgdog_worker_restarts_total") == 0);
	ck_assert(it_metric_plain(body, "pgdog_supervisor_resident_memory_bytes") > 0);
	ck_assert_msg(strstr(body, "pgdog_worker_resident_memory_bytes{worker=\"1\"}"),
		      "no RSS for worker 1");
	ck_assert(strstr(body, "# TYPE pgdog_query_duration_seconds histogram"));
	ck_assert(strstr(body, "# TYPE pgdog_xact_total counter"));
	/* nothing ran since the scrape: the same numbers as SHOW STATS */
	ck_assert_uint_eq((unsigned long long)it_metric(body, "pgdog_xact_total", "app"),
			  stat_num(adm, "app", "total_xact_count"));
	ck_assert_uint_eq((unsigned long long)it_metric(body, "pgdog_queries_total", "app"),
			  stat_num(adm, "app", "total_query_count"));
	ck_assert_uint_eq((unsigned long long)it_metric(body, "pgdog_received_bytes_total", "app"),
			  stat_num(adm, "app", "total_received"));
	ck_assert_uint_eq((unsigned long long)it_metric(body, "pgdog_sent_bytes_total", "app"),
			  stat_num(adm, "app", "total_sent"));
	ck_assert_uint_eq(
		(unsigned long long)it_metric(body, "pgdog_query_duration_seconds_count", "app"),
		stat_num(adm, "app", "total_query_count"));
	ck_assert_uint_eq(
		(unsigned long long)(it_metric(body, "pgdog_query_time_seconds_total", "app") *
					     1e6 +
				     0.5),
		stat_num(adm, "app", "total_query_time"));
	ck_assert_uint_eq((unsigned long long)it_metric(body, "pgdog_pool_size", "solo"), 1);
	PQfinish(adm);
}
END_TEST

/* Other paths are 404, other methods 405; a HEAD has headers only. */
START_TEST(test_admin_metrics_http)
{
	static char body[1 << 20];

	ck_assert_int_eq(http_get("/nothing", body, sizeof(body)), 404);
	ck_assert_int_eq(http_get("/metrics?x=1", body, sizeof(body)), 200);
	ck_assert_int_eq(http_request("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", body,
				      sizeof(body)),
			 405);
	ck_assert_int_eq(http_request("HEAD /metrics HTTP/1.1\r\n\r\n", body, sizeof(body)), 200);
	ck_assert_str_eq(body, "");
	ck_assert_int_eq(http_request("garbage\r\n\r\n", body, sizeof(body)), 400);
	/* a silent connection does not stop the supervisor from answering others */
	{
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_port = htons((uint16_t)metrics_port) };
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		ck_assert_int_eq(write(fd, "GET /met", 8), 8);
		ck_assert_int_eq(http_get("/metrics", body, sizeof(body)), 200);
		close(fd);
	}
}
END_TEST

/*
 * The value of a Prometheus instant query with one result (NULL if the
 * result is empty), from its HTTP API on port.
 */
static const char *
prometheus_value(int port, const char *query)
{
	static char body[1 << 20], value[64];
	char req[1024], enc[512];
	size_t n = 0;
	const char *p;

	for (const char *q = query; *q && n + 4 < sizeof(enc); q++) {
		if (isalnum((unsigned char)*q) || *q == '_')
			enc[n++] = *q;
		else
			n += (size_t)snprintf(enc + n, sizeof(enc) - n, "%%%02X",
					      (unsigned char)*q);
	}
	enc[n] = '\0';
	snprintf(
		req, sizeof(req),
		"GET /api/v1/query?query=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
		enc);
	ck_assert_int_eq(it_http_request(port, req, body, sizeof(body)), 200);
	ck_assert_msg(strstr(body, "\"status\":\"success\""), "query %s: %s", query, body);
	p = strstr(body, "\"value\":[");
	if (!p)
		return NULL;
	p = strchr(p, ',');
	ck_assert_msg(p && p[1] == '"', "query %s: %s", query, body);
	snprintf(value, sizeof(value), "%.*s", (int)strcspn(p + 2, "\""), p + 2);
	return value;
}

/*
 * A real Prometheus server (Debian's prometheus package; CI installs it)
 * scrapes pgdog: the target is up, and the gauges, counters and histograms
 * arrive with pgdog's values.
 */
START_TEST(test_admin_prometheus_scrape)
{
	int port = it_free_port();
	char yml[512], listen[64], cfg_arg[IT_PATH_MAX + 32], data_arg[IT_PATH_MAX + 32];
	const char *v;
	long long end;
	pid_t pid;
	PGconn *c = it_connect(APP);
	static char body[1 << 16];

	ck_assert_msg(
		access("/usr/bin/prometheus", X_OK) == 0,
		"/usr/bin/prometheus is missing: apt-get install prometheus (CI installs it)");
	for (int i = 0; i < 5; i++)
		ck_assert_str_eq(it_value(c, "SELECT 1"), "1");
	PQfinish(c);
	snprintf(yml, sizeof(yml),
		 "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
		 "scrape_configs:\n  - job_name: pgdog\n    static_configs:\n"
		 "      - targets: ['127.0.0.1:%d']\n",
		 metrics_port);
	it_write_file(it_path("prometheus.yml"), yml);
	snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%d", port);
	snprintf(cfg_arg, sizeof(cfg_arg), "--config.file=%s", it_path("prometheus.yml"));
	snprintf(data_arg, sizeof(data_arg), "--storage.tsdb.path=%s", it_path("prometheus-data"));
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(it_path("prometheus.log"), O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl("/usr/bin/prometheus", "prometheus", cfg_arg, data_arg, listen,
		      "--log.level=warn", (char *)NULL);
		_exit(127);
	}
	it_track_pid(pid);
	/* up == 1 once prometheus has started and scraped (every 1 s) */
	end = it_now_ms() + 30000;
	for (;;) {
		ck_assert_msg(it_now_ms() < end,
			      "prometheus never scraped pgdog (see prometheus.log)");
		ck_assert_msg(it_pid_alive(pid), "prometheus exited (see prometheus.log)");
		it_sleep_ms(250);
		if (!it_wait_port(port, 100) ||
		    it_http_request(port,
				    "GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
				    body, sizeof(body)) != 200)
			continue;
		v = prometheus_value(port, "up{job=\"pgdog\"}");
		if (v && strcmp(v, "1") == 0)
			break;
	}
	v = prometheus_value(port, "pgdog_workers");
	ck_assert_msg(v && strcmp(v, "2") == 0, "pgdog_workers: %s", v ? v : "(none)");
	v = prometheus_value(port,
			     "pgdog_pool_size{user=\"solo\",database=\"app\",role=\"primary\"}");
	ck_assert_msg(v && strcmp(v, "1") == 0, "pgdog_pool_size: %s", v ? v : "(none)");
	v = prometheus_value(port, "pgdog_xact_total{user=\"app\"} >= 5");
	ck_assert_msg(v != NULL, "no pgdog_xact_total >= 5 for app");
	v = prometheus_value(
		port,
		"histogram_quantile(0.5, pgdog_query_duration_seconds_bucket{user=\"app\"}) < 60");
	ck_assert_msg(v != NULL, "no median query latency from the histogram");
	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	ck_assert_msg(it_wait_pid(pid, 10000) >= 0, "prometheus did not stop");
}
END_TEST

/*
 * Process figures follow the processes: a SIGHUP with a valid file counts a
 * reload; a killed worker counts a restart and is back. Runs last: it
 * disturbs the workers.
 */
START_TEST(test_admin_metrics_process)
{
	static char body[4 << 20];
	pid_t pids[8];
	long long end;
	PGconn *adm;
	PGresult *res;

	ck_assert_int_eq(http_get("/metrics", body, sizeof(body)), 200);
	ck_assert(it_metric_plain(body, "pgdog_reloads_total") == 0);
	ck_assert_int_eq(kill(g_it.pid, SIGHUP), 0);
	end = it_now_ms() + 10000;
	do {
		ck_assert_msg(it_now_ms() < end, "reloads_total never became 1");
		it_sleep_ms(50);
		ck_assert_int_eq(http_get("/metrics", body, sizeof(body)), 200);
	} while (it_metric_plain(body, "pgdog_reloads_total") != 1);

	ck_assert_int_eq(it_children(g_it.pid, pids, 8), 2);
	ck_assert_int_eq(kill(pids[0], SIGKILL), 0);
	end = it_now_ms() + 15000;
	do {
		ck_assert_msg(it_now_ms() < end, "no restart counted with both workers back");
		it_sleep_ms(100);
		ck_assert_int_eq(http_get("/metrics", body, sizeof(body)), 200);
	} while (it_metric_plain(body, "pgdog_worker_restarts_total") != 1 ||
		 it_metric_plain(body, "pgdog_workers") != 2);
	adm = it_connect(ADMIN);
	res = it_exec_ok(adm, "SHOW STATE");
	ck_assert_str_eq(PQgetvalue(res, 6, 0), "reloads");
	ck_assert_str_eq(PQgetvalue(res, 6, 1), "1");
	PQclear(res);
	PQfinish(adm);
}
END_TEST

/*
 * A reload that removes pool app/app (index 0) and adds third/other: solo/app
 * keeps index 1, third/other takes index 2, while the configuration lists
 * them as pools 0 and 1. Every statistic must still name the pool by its own
 * index: traffic on solo shows in solo's SHOW STATS row and /metrics samples,
 * the new pool shows none, SHOW POOLS gives each its own pool_size, and SHOW
 * DATABASES counts each database's own servers.
 */
START_TEST(test_admin_reload_shifted_indexes)
{
	static char body[4 << 20];
	char dbs[256];
	unsigned long long q0, m0;
	PGconn *adm, *solo;

	snprintf(dbs, sizeof(dbs),
		 "[databases.other]\nname = other\nhost = 127.0.0.1\nport = %d\n"
		 "database_name = postgres\n",
		 g_it.pg_port);
	it_pgdog_write_config(&(struct it_pgdog_conf){
		.workers = 2,
		.general = general,
		.databases = dbs,
		.users = "[users.solo]\ndatabase = app\npassword = solo_pw\npool_size = 1\n"
			 "[users.third]\ndatabase = other\npassword = third_pw\npool_size = 2\n",
	});
	adm = it_connect(ADMIN);
	PQclear(it_exec_ok(adm, "RELOAD"));
	q0 = strtoull(it_show_value(adm, "SHOW STATS", "database", "app", "user", "solo",
				    "total_query_count"),
		      NULL, 10);
	ck_assert_int_eq(http_get("/metrics", body, sizeof(body)), 200);
	m0 = (unsigned long long)it_metric(body, "pgdog_queries_total", "solo");
	ck_assert_msg(strstr(body, "user=\"third\",database=\"other\""), "no third/other samples");
	solo = it_connect(SOLO);
	for (int i = 0; i < 7; i++)
		ck_assert_str_eq(it_value(solo, "SELECT 1"), "1");
	ck_assert_uint_ge(strtoull(it_show_value(adm, "SHOW STATS", "database", "app", "user",
						 "solo", "total_query_count"),
				   NULL, 10),
			  q0 + 7);
	ck_assert_str_eq(it_show_value(adm, "SHOW STATS", "database", "other", "user", "third",
				       "total_query_count"),
			 "0");
	ck_assert_str_eq(
		it_show_value(adm, "SHOW POOLS", "database", "app", "user", "solo", "pool_size"),
		"1");
	ck_assert_str_eq(
		it_show_value(adm, "SHOW POOLS", "database", "other", "user", "third", "pool_size"),
		"2");
	ck_assert_str_eq(
		it_show_value(adm, "SHOW POOLS", "database", "app", "user", "solo", "sv_total"),
		"1");
	ck_assert_str_eq(
		it_show_value(adm, "SHOW POOLS", "database", "other", "user", "third", "sv_total"),
		"0");
	ck_assert_str_eq(it_show_value(adm, "SHOW DATABASES", "name", "other", NULL, NULL,
				       "current_connections"),
			 "0");
	ck_assert_str_eq(
		it_show_value(adm, "SHOW DATABASES", "name", "other", NULL, NULL, "pool_size"),
		"2");
	ck_assert_int_eq(http_get("/metrics", body, sizeof(body)), 200);
	ck_assert_uint_ge((unsigned long long)it_metric(body, "pgdog_queries_total", "solo"),
			  m0 + 7);
	ck_assert(it_metric(body, "pgdog_queries_total", "third") == 0);
	ck_assert(it_metric(body, "pgdog_pool_size", "third") == 2);
	ck_assert(it_metric(body, "pgdog_sv_open", "solo") == 1);
	PQfinish(solo);
	PQfinish(adm);
}
END_TEST

/* ---- PgDog's columns: counters from real traffic --------------------------------- */

/* Sum of numeric column col over the rows of SHOW cmd whose user is user. */
static unsigned long long
rows_sum(PGconn *adm, const char *cmd, const char *user, const char *col)
{
	PGresult *res = it_exec_ok(adm, cmd);
	int cu = PQfnumber(res, "user"), cc = PQfnumber(res, col);
	unsigned long long n = 0;

	ck_assert_msg(cu >= 0 && cc >= 0, "%s has no column %s", cmd, col);
	for (int r = 0; r < PQntuples(res); r++)
		if (strcmp(PQgetvalue(res, r, cu), user) == 0)
			n += strtoull(PQgetvalue(res, r, cc), NULL, 10);
	PQclear(res);
	return n;
}

/* Row of SHOW cmd where column k is v (the caller PQclears *res); -1 if none. */
static int
find_row(PGconn *adm, const char *cmd, const char *k, const char *v, PGresult **res)
{
	int col;

	*res = it_exec_ok(adm, cmd);
	col = PQfnumber(*res, k);
	ck_assert_msg(col >= 0, "%s has no column %s", cmd, k);
	for (int r = 0; r < PQntuples(*res); r++)
		if (!PQgetisnull(*res, r, col) && strcmp(PQgetvalue(*res, r, col), v) == 0)
			return r;
	return -1;
}

/*
 * SHOW STATS rollbacks, reads, writes, rows_*, auth_attempts / auth_failures
 * and SHOW SERVERS rollbacks count exactly what a known workload did.
 */
START_TEST(test_admin_stats_pgdog_counters)
{
	PGconn *adm = it_connect(ADMIN), *c = it_connect(APP);
	const char *names[] = { "total_rollbacks",     "total_reads",        "total_writes",
				"total_rows_inserted", "total_rows_updated", "total_rows_deleted",
				"total_auth_attempts", "total_auth_failures" };
	unsigned long long v0[8], d[8], srv_rb0;
	static char body[4 << 20];
	PGresult *res;

	PQclear(it_exec_ok(c, "DROP TABLE IF EXISTS adm2_rows"));
	PQclear(it_exec_ok(c, "CREATE TABLE adm2_rows (i int)"));
	for (int i = 0; i < 8; i++)
		v0[i] = stat_num(adm, "app", names[i]);
	srv_rb0 = rows_sum(adm, "SHOW SERVERS", "app", "rollbacks");
	/* reads: 3 (two SELECTs, one inside the rolled back transaction) */
	ck_assert_str_eq(it_value(c, "SELECT 1"), "1");
	ck_assert_str_eq(it_value(c, "SELECT 2"), "2");
	/* writes: INSERT 5 rows, UPDATE 3, DELETE 1, COPY FROM 2 rows */
	PQclear(it_exec_ok(c, "INSERT INTO adm2_rows SELECT generate_series(1, 5)"));
	PQclear(it_exec_ok(c, "UPDATE adm2_rows SET i = i WHERE i <= 3"));
	PQclear(it_exec_ok(c, "DELETE FROM adm2_rows WHERE i = 1"));
	res = PQexec(c, "COPY adm2_rows FROM STDIN");
	ck_assert_int_eq(PQresultStatus(res), PGRES_COPY_IN);
	PQclear(res);
	ck_assert_int_eq(PQputCopyData(c, "7\n8\n", 4), 1);
	ck_assert_int_eq(PQputCopyEnd(c, NULL), 1);
	res = PQgetResult(c);
	ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	while ((res = PQgetResult(c)) != NULL)
		PQclear(res);
	/* rollbacks: an explicit ROLLBACK and a COMMIT of a failed transaction */
	PQclear(it_exec_ok(c, "BEGIN"));
	ck_assert_str_eq(it_value(c, "SELECT 3"), "3");
	PQclear(it_exec_ok(c, "ROLLBACK"));
	PQclear(it_exec_ok(c, "BEGIN"));
	it_exec_error(c, "SELECT 1/0", "22012");
	res = PQexec(c, "COMMIT");
	ck_assert_str_eq(PQcmdStatus(res), "ROLLBACK");
	PQclear(res);
	/* auth: one good login, one bad password */
	PQfinish(it_connect(APP));
	ck_assert(strstr(it_connect_fail("dbname=app user=app password=wrong"),
			 "password authentication failed") != NULL);
	for (int i = 0; i < 8; i++)
		d[i] = stat_num(adm, "app", names[i]) - v0[i];
	ck_assert_uint_eq(d[0], 2);
	ck_assert_uint_eq(d[1], 3);
	ck_assert_uint_eq(d[2], 4);
	ck_assert_uint_eq(d[3], 7);
	ck_assert_uint_eq(d[4], 3);
	ck_assert_uint_eq(d[5], 1);
	ck_assert_uint_eq(d[6], 2);
	ck_assert_uint_eq(d[7], 1);
	ck_assert_uint_eq(rows_sum(adm, "SHOW SERVERS", "app", "rollbacks") - srv_rb0, 2);
	/* /metrics reports the same counters */
	ck_assert_int_eq(http_get("/metrics", body, sizeof(body)), 200);
	ck_assert_uint_eq((unsigned long long)it_metric(body, "pgdog_rows_inserted_total", "app"),
			  stat_num(adm, "app", "total_rows_inserted"));
	ck_assert_uint_eq((unsigned long long)it_metric(body, "pgdog_rollbacks_total", "app"),
			  stat_num(adm, "app", "total_rollbacks"));
	/* no 2PC in pgdog: always 0 */
	ck_assert_uint_eq(stat_num(adm, "app", "total_xact_2pc_count"), 0);
	PQclear(it_exec_ok(c, "DROP TABLE adm2_rows"));
	PQfinish(c);
	PQfinish(adm);
}
END_TEST

/*
 * SHOW CLIENTS locked and prepared_statements, SHOW SERVERS
 * prepared_statements (published within a second), and SHOW POOLS
 * re_synced, force_closed, banned, healthy, online.
 */
START_TEST(test_admin_conn_and_pool_columns)
{
	PGconn *adm = it_connect(ADMIN);
	PGconn *c = it_connect(APP " application_name=adm2_cols");
	PGconn *gone = it_connect(APP);
	unsigned long long resync0 = pool_num(adm, "SHOW POOLS", "app", "re_synced");
	unsigned long long forced0 = pool_num(adm, "SHOW POOLS", "app", "force_closed");
	long long end;
	PGresult *res;
	int r;

	ck_assert_str_eq(
		it_show_value(adm, "SHOW POOLS", "database", "app", "user", "app", "healthy"), "t");
	ck_assert_str_eq(
		it_show_value(adm, "SHOW POOLS", "database", "app", "user", "app", "online"), "t");
	ck_assert_str_eq(
		it_show_value(adm, "SHOW POOLS", "database", "app", "user", "app", "banned"), "f");
	res = PQprepare(c, "adm2_s1", "SELECT $1::int", 1, NULL);
	ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	ck_assert_str_eq(it_value(c, "SELECT pg_advisory_lock(4242)"), "");
	end = it_now_ms() + 3000;
	for (;;) {
		r = find_row(adm, "SHOW CLIENTS", "application_name", "adm2_cols", &res);
		ck_assert_int_ge(r, 0);
		if (strcmp(PQgetvalue(res, r, PQfnumber(res, "prepared_statements")), "1") == 0)
			break;
		PQclear(res);
		ck_assert_msg(it_now_ms() < end, "prepared_statements never became 1");
		it_sleep_ms(100);
	}
	ck_assert_str_eq(PQgetvalue(res, r, PQfnumber(res, "locked")), "t");
	ck_assert_str_eq(PQgetvalue(res, r, PQfnumber(res, "replication")), "none");
	ck_assert_str_eq(PQgetvalue(res, r, PQfnumber(res, "transactions_2pc")), "0");
	PQclear(res);
	ck_assert_uint_ge(rows_sum(adm, "SHOW SERVERS", "app", "prepared_statements"), 1);
	/* a client that leaves inside a transaction: its server is brought back in step */
	PQclear(it_exec_ok(gone, "BEGIN"));
	ck_assert_str_eq(it_value(gone, "SELECT 1"), "1");
	PQfinish(gone);
	end = it_now_ms() + 3000;
	while (pool_num(adm, "SHOW POOLS", "app", "re_synced") != resync0 + 1) {
		ck_assert_msg(it_now_ms() < end, "re_synced did not count the rollback");
		it_sleep_ms(50);
	}
	/*
	 * RECONNECT closes the idle servers, and one still rolling back when it
	 * comes back (re_synced counts at the client's exit, before the reply)
	 */
	PQclear(it_exec_ok(adm, "RECONNECT app"));
	end = it_now_ms() + 3000;
	while (pool_num(adm, "SHOW POOLS", "app", "force_closed") <= forced0) {
		ck_assert_msg(it_now_ms() < end, "RECONNECT closed no server");
		it_sleep_ms(50);
	}
	/* a banned pool is neither healthy nor accepting */
	PQclear(it_exec_ok(adm, "BAN app"));
	ck_assert_str_eq(
		it_show_value(adm, "SHOW POOLS", "database", "app", "user", "app", "banned"), "t");
	ck_assert_str_eq(
		it_show_value(adm, "SHOW POOLS", "database", "app", "user", "app", "healthy"), "f");
	PQclear(it_exec_ok(adm, "UNBAN app"));
	PQfinish(c);
	PQfinish(adm);
}
END_TEST

/*
 * SHOW QUERY_CACHE: one row per statement text over every worker, with the
 * lookups that found it (hits) and the parses (misses) adding up to its
 * executions; every one went to a single server (direct).
 */
START_TEST(test_admin_query_cache_rows)
{
	PGconn *adm = it_connect(ADMIN), *conns[6];
	const char *q = "SET search_path TO public, adm2_qc";
	long long end = it_now_ms() + 3000;
	PGresult *res;
	int r;

	for (int i = 0; i < 6; i++) {
		conns[i] = it_connect(APP);
		for (int k = 0; k < 5; k++)
			PQclear(it_exec_ok(conns[i], q));
	}
	for (;;) {
		r = find_row(adm, "SHOW QUERY_CACHE", "query", q, &res);
		if (r >= 0 && atoll(PQgetvalue(res, r, PQfnumber(res, "hits"))) +
					      atoll(PQgetvalue(res, r, PQfnumber(res, "misses"))) ==
				      30)
			break;
		PQclear(res);
		ck_assert_msg(it_now_ms() < end, "the statement's 30 executions never showed");
		it_sleep_ms(100);
	}
	ck_assert_str_eq(PQgetvalue(res, r, PQfnumber(res, "direct")), "30");
	ck_assert_str_eq(PQgetvalue(res, r, PQfnumber(res, "multi")), "0");
	/* one parse per worker that saw it */
	ck_assert_str_eq(PQgetvalue(res, r, PQfnumber(res, "misses")),
			 PQgetvalue(res, r, PQfnumber(res, "workers")));
	ck_assert_int_eq((int)strlen(PQgetvalue(res, r, PQfnumber(res, "fingerprint"))), 16);
	PQclear(res);
	for (int i = 0; i < 6; i++)
		PQfinish(conns[i]);
	PQfinish(adm);
}
END_TEST

/*
 * SHOW FDS: a row per live client and server socket of every worker. The
 * client's row carries the port libpq connected from, and while it holds a
 * server the two rows link to each other's descriptors.
 */
START_TEST(test_admin_fds_rows)
{
	PGconn *adm = it_connect(ADMIN), *c = it_connect(APP);
	char port[16];
	PGresult *res, *cl;
	int r, nclients;
	bool linked = false;
	long long end;

	snprintf(port, sizeof(port), "%d", it_local_port(PQsocket(c)));
	PQclear(it_exec_ok(c, "BEGIN"));
	ck_assert_str_eq(it_value(c, "SELECT 1"), "1");
	r = find_row(adm, "SHOW FDS", "port", port, &res);
	ck_assert_msg(r >= 0, "no SHOW FDS row for the client's port %s", port);
	ck_assert_str_eq(PQgetvalue(res, r, PQfnumber(res, "task")), "client");
	ck_assert_str_eq(PQgetvalue(res, r, PQfnumber(res, "user")), "app");
	ck_assert_str_eq(PQgetvalue(res, r, PQfnumber(res, "addr")), "127.0.0.1");
	ck_assert(atoi(PQgetvalue(res, r, PQfnumber(res, "fd"))) > 2);
	ck_assert(!PQgetisnull(res, r, PQfnumber(res, "link")));
	ck_assert(PQgetisnull(res, r, PQfnumber(res, "password")));
	for (int k = 0; k < PQntuples(res); k++) {
		if (strcmp(PQgetvalue(res, k, PQfnumber(res, "task")), "server") != 0 ||
		    PQgetisnull(res, k, PQfnumber(res, "link")))
			continue;
		/* the server row whose link is the client's fd names the client's link */
		if (strcmp(PQgetvalue(res, k, PQfnumber(res, "link")),
			   PQgetvalue(res, r, PQfnumber(res, "fd"))) == 0 &&
		    strcmp(PQgetvalue(res, k, PQfnumber(res, "fd")),
			   PQgetvalue(res, r, PQfnumber(res, "link"))) == 0)
			linked = true;
	}
	ck_assert_msg(linked, "no server row links to the client");
	/*
	 * as many client rows as SHOW CLIENTS has (two snapshots: the earlier
	 * tests' clients may still be leaving between them, so look again)
	 */
	end = it_now_ms() + 5000;
	for (;;) {
		nclients = 0;
		for (int k = 0; k < PQntuples(res); k++)
			nclients +=
				strcmp(PQgetvalue(res, k, PQfnumber(res, "task")), "client") == 0;
		cl = it_exec_ok(adm, "SHOW CLIENTS");
		if (nclients == PQntuples(cl) || it_now_ms() > end)
			break;
		PQclear(cl);
		PQclear(res);
		it_sleep_ms(100);
		res = it_exec_ok(adm, "SHOW FDS");
	}
	ck_assert_int_eq(nclients, PQntuples(cl));
	PQclear(cl);
	PQclear(res);
	PQclear(it_exec_ok(c, "COMMIT"));
	PQfinish(c);
	PQfinish(adm);
}
END_TEST

/*
 * A client that leaves halfway through a message it was streaming to the
 * server (a CopyData cut short) leaves a server that cannot be brought back
 * in step: pgdog closes it and SHOW POOLS counts it in out_of_sync.
 */
START_TEST(test_admin_out_of_sync)
{
	PGconn *adm = it_connect(ADMIN), *c = it_connect(APP);
	/* CopyData announcing 1000 bytes of body, of which 10 are sent */
	static const uint8_t part[] = { 'd',  0,   0,    0x03, 0xec, '1', '\n', '2',
					'\n', '3', '\n', '4',  '\n', '5', '\n' };
	unsigned long long oos0 = pool_num(adm, "SHOW POOLS", "app", "out_of_sync");
	long long end;
	PGresult *res;

	PQclear(it_exec_ok(c, "DROP TABLE IF EXISTS adm2_oos"));
	PQclear(it_exec_ok(c, "CREATE TABLE adm2_oos (i int)"));
	res = PQexec(c, "COPY adm2_oos FROM STDIN");
	ck_assert_int_eq(PQresultStatus(res), PGRES_COPY_IN);
	PQclear(res);
	ck_assert_int_eq((int)write(PQsocket(c), part, sizeof(part)), (int)sizeof(part));
	it_sleep_ms(200); /* forwarded to the server */
	PQfinish(c);
	end = it_now_ms() + 3000;
	while (pool_num(adm, "SHOW POOLS", "app", "out_of_sync") != oos0 + 1) {
		ck_assert_msg(it_now_ms() < end, "out_of_sync did not count the server");
		it_sleep_ms(50);
	}
	c = it_connect(APP);
	PQclear(it_exec_ok(c, "DROP TABLE adm2_oos"));
	PQfinish(c);
	PQfinish(adm);
}
END_TEST

/*
 * An admin client that sends commands and does not read the answers: as
 * PostgreSQL, whose writes then block, pgdog reads nothing more from it
 * once 512 KiB of answers wait, so the kernel's buffers fill and the client
 * blocks. When it reads, every answer is there and the console goes on.
 * (pgdog read on: the answers piled up in its memory without bound.)
 */
START_TEST(test_admin_unread_answers_bounded)
{
	static const char req[] = "Q\0\0\0\5\0", ans[] = "I\0\0\0\4Z\0\0\0\5I",
			  last[] = "Q\0\0\0\21SHOW VERSION\0";
	const size_t rl = sizeof(req) - 1, al = sizeof(ans) - 1;
	PGconn *adm = it_connect(ADMIN); /* libpq logs in; then raw bytes on its socket */
	int fd = PQsocket(adm);
	char type, body[512];
	long len;

	it_raw_flood_unread(fd, req, rl, ans, al, 64u << 20);
	ck_assert_int_eq(it_raw_send(fd, last, sizeof(last) - 1), 0);
	len = it_raw_recv(fd, &type, body, sizeof(body), 5000);
	ck_assert_msg(len >= 0 && type == 'T', "the command after: '%c'", type);
	PQfinish(adm);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("it_admin");
	TCase *tc = tcase_create("admin");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_admin_columns);
	tcase_add_test(tc, test_admin_config);
	tcase_add_test(tc, test_admin_stats_workload);
	tcase_add_test(tc, test_admin_stats_errors_extended);
	tcase_add_test(tc, test_admin_stats_pgdog_counters);
	tcase_add_test(tc, test_admin_conn_and_pool_columns);
	tcase_add_test(tc, test_admin_query_cache_rows);
	tcase_add_test(tc, test_admin_fds_rows);
	tcase_add_test(tc, test_admin_out_of_sync);
	tcase_add_test(tc, test_admin_unread_answers_bounded);
	tcase_add_test(tc, test_admin_wait_and_idle_xact);
	tcase_add_test(tc, test_admin_stats_averages);
	tcase_add_test(tc, test_admin_stats_connects);
	tcase_add_test(tc, test_admin_help_and_unknown);
	tcase_add_test(tc, test_admin_man_page);
	tcase_add_test(tc, test_admin_extended_and_version);
	tcase_add_test(tc, test_admin_metrics_promtool);
	tcase_add_test(tc, test_admin_metrics_http);
	tcase_add_test(tc, test_admin_prometheus_scrape);
	tcase_add_test(tc, test_admin_metrics_process);
	tcase_add_test(tc, test_admin_reload_shifted_indexes); /* last: reloads */
	suite_add_tcase(s, tc);
	return it_run_suite(s);
}
