/*
 * it_control.c: the admin console's action commands with two workers and
 * clients on both: PAUSE (waits for a running transaction, then holds new
 * queries until RESUME; PAUSE db holds only db), MAINTENANCE ON/OFF, a held
 * client failing with 53300 only after checkout_timeout, SET checkout_timeout
 * acting in both workers, RECONNECT (new backends), KILL db, KILL_CLIENT,
 * BAN/UNBAN, RELOAD's replies, the holds and bans as SHOW STATE, SHOW
 * DATABASES and /metrics report them, and SHUTDOWN (TCase control_shutdown).
 */
#include "t/lib/it.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADMIN "dbname=admin user=admin password=pgdog"
#define APP   "dbname=app user=app password=app_pw"
#define OTHER "dbname=other user=app2 password=app2_pw"

static const char *const users_ini =
	"[users.app]\ndatabase = app\npassword = app_pw\n"
	"pool_size = 10\n"
	"[users.app2]\nname = app2\ndatabase = other\npassword = app2_pw\n"
	"pool_size = 4\n";

static int metrics_port;

static void
setup_name(const char *name)
{
	static char dbs[256], general[256];

	it_env_start(name);
	metrics_port = it_free_port();
	snprintf(general, sizeof(general),
		 "pooler_mode = transaction\ncheckout_timeout = 5000\nopenmetrics_port = %d\n"
		 "openmetrics_host = 127.0.0.1",
		 metrics_port);
	it_pg_start(NULL);
	it_pg_role("app", NULL, NULL);
	it_pg_role("app2", NULL, NULL);
	snprintf(dbs, sizeof(dbs),
		 "[databases.other]\nname = other\nhost = 127.0.0.1\nport = %d\n"
		 "database_name = postgres\n",
		 g_it.pg_port);
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 2,
		.general = general,
		.databases = dbs,
		.users = users_ini,
	});
}

static void
setup(void)
{
	setup_name("control");
}

static void
setup_shutdown(void)
{
	setup_name("control_shutdown");
}

static void
teardown(void)
{
	it_env_stop();
}

/* The worker slot that serves conn (pgdog's BackendKeyData pid is slot << 24 | row). */
static int
slot_of(PGconn *c)
{
	return PQbackendPID(c) >> 24;
}

/* Connect until one client sits on worker `slot` (SO_REUSEPORT spreads them). */
static PGconn *
connect_on(const char *conninfo, int slot)
{
	PGconn *spare[64];
	int n = 0;
	PGconn *found = NULL;

	while (n < 64) {
		PGconn *c = it_connect(conninfo);

		if (slot_of(c) == slot) {
			found = c;
			break;
		}
		spare[n++] = c;
	}
	for (int i = 0; i < n; i++)
		PQfinish(spare[i]);
	ck_assert_msg(found, "no connection landed on worker %d in 64 tries", slot);
	return found;
}

static char last_notice[2048];

static void
notice_cb(void *arg, const PGresult *res)
{
	const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	snprintf(last_notice, sizeof(last_notice), "%s", m ? m : "");
}

static PGconn *
admin(void)
{
	PGconn *a = it_connect(ADMIN);

	PQsetNoticeReceiver(a, notice_cb, NULL);
	return a;
}

/* Run an admin command that must succeed; its CommandComplete tag is checked. */
static void
admin_ok(PGconn *a, const char *sql, const char *tag)
{
	PGresult *r = PQexec(a, sql);

	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(a));
	ck_assert_str_eq(PQcmdStatus(r), tag);
	PQclear(r);
}

/* Wait for the answer of a query sent with PQsendQuery; it must succeed. */
static void
finish_ok(PGconn *c, int timeout_ms)
{
	PGresult *r;
	long long end = it_now_ms() + timeout_ms;

	while (PQisBusy(c)) {
		ck_assert_msg(it_now_ms() < end, "no answer within %d ms", timeout_ms);
		ck_assert_int_eq(PQconsumeInput(c), 1);
		it_sleep_ms(10);
	}
	while ((r = PQgetResult(c)) != NULL) {
		ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK ||
				      PQresultStatus(r) == PGRES_COMMAND_OK,
			      "query failed: %s", PQerrorMessage(c));
		PQclear(r);
	}
}

/* PAUSE waits for a running transaction, then holds new queries of both workers until RESUME. */
START_TEST(test_control_pause_resume)
{
	PGconn *c0 = connect_on(APP, 0), *c1 = connect_on(APP, 1), *tx = it_connect(APP);
	PGconn *a = admin();

	PQclear(it_exec_ok(tx, "BEGIN"));
	PQclear(it_exec_ok(tx, "SELECT 1"));
	ck_assert_int_eq(PQsendQuery(a, "PAUSE"), 1);
	ck_assert_msg(it_busy_for(a, 600), "PAUSE returned while a transaction was running");
	/* the running transaction goes on and ends normally */
	PQclear(it_exec_ok(tx, "SELECT 2"));
	PQclear(it_exec_ok(tx, "COMMIT"));
	finish_ok(a, 3000);
	ck_assert(it_log_contains("PAUSE (all)"));
	/* new queries of clients on both workers are held, without an error */
	ck_assert_int_eq(PQsendQuery(c0, "SELECT 'w0'"), 1);
	ck_assert_int_eq(PQsendQuery(c1, "SELECT 'w1'"), 1);
	ck_assert_msg(it_busy_for(c0, 800), "worker 0 ran a query while paused");
	ck_assert_msg(it_busy_for(c1, 100), "worker 1 ran a query while paused");
	admin_ok(a, "RESUME", "RESUME");
	finish_ok(c0, 3000);
	finish_ok(c1, 3000);
	ck_assert_str_eq(it_value(c0, "SELECT 'after'"), "after");
	PQfinish(a);
	PQfinish(tx);
	PQfinish(c0);
	PQfinish(c1);
}
END_TEST

/* PAUSE db holds only that database. */
START_TEST(test_control_pause_db)
{
	PGconn *app = it_connect(APP), *other = it_connect(OTHER), *a = admin();

	admin_ok(a, "PAUSE other", "PAUSE");
	ck_assert_str_eq(it_value(app, "SELECT 'app runs'"), "app runs");
	ck_assert_int_eq(PQsendQuery(other, "SELECT 'other'"), 1);
	ck_assert_msg(it_busy_for(other, 600), "a query of the paused database ran");
	ck_assert_str_eq(it_value(app, "SELECT 'still runs'"), "still runs");
	admin_ok(a, "RESUME other", "RESUME");
	finish_ok(other, 3000);
	it_exec_error(a, "PAUSE nosuchdb", "3D000");
	PQfinish(a);
	PQfinish(app);
	PQfinish(other);
}
END_TEST

/* MAINTENANCE ON holds every database on every worker; OFF releases them. */
START_TEST(test_control_maintenance)
{
	PGconn *c0 = connect_on(APP, 0), *c1 = connect_on(OTHER, 1), *a = admin();
	PGconn *tx = it_connect(APP);

	PQclear(it_exec_ok(tx, "BEGIN"));
	PQclear(it_exec_ok(tx, "SELECT 1"));
	admin_ok(a, "MAINTENANCE ON", "MAINTENANCE");
	/* a transaction under way is not held: it goes on and ends; its next one is held */
	PQclear(it_exec_ok(tx, "SELECT 'in flight'"));
	PQclear(it_exec_ok(tx, "COMMIT"));
	ck_assert_int_eq(PQsendQuery(tx, "SELECT 'next'"), 1);
	ck_assert_msg(it_busy_for(tx, 300), "a new transaction ran during maintenance");
	ck_assert_int_eq(PQsendQuery(c0, "SELECT 1"), 1);
	ck_assert_int_eq(PQsendQuery(c1, "SELECT 1"), 1);
	ck_assert_msg(it_busy_for(c0, 700), "worker 0 ran a query during maintenance");
	ck_assert_msg(it_busy_for(c1, 100), "worker 1 ran a query during maintenance");
	admin_ok(a, "maintenance off;", "MAINTENANCE");
	finish_ok(c0, 3000);
	finish_ok(c1, 3000);
	finish_ok(tx, 3000);
	it_exec_error(a, "MAINTENANCE maybe", "42601");
	PQfinish(tx);
	PQfinish(a);
	PQfinish(c0);
	PQfinish(c1);
}
END_TEST

/* Lines of pgdog's log containing s. */
static int
log_count(const char *s)
{
	char *text = it_read_file(g_it.log_path);
	int n = 0;

	for (const char *p = text; p && (p = strstr(p, s)) != NULL; p += strlen(s))
		n++;
	free(text);
	return n;
}

/*
 * A held client waits checkout_timeout, then gets 53300 (as when the pool is
 * exhausted). SET checkout_timeout changes it in both workers.
 */
START_TEST(test_control_held_timeout_and_set)
{
	PGconn *c0 = connect_on(APP, 0), *c1 = connect_on(APP, 1), *a = admin();
	char st[6], msg[512];
	long long t0, ms;

	admin_ok(a, "SET checkout_timeout TO 1200", "SET");
	admin_ok(a, "MAINTENANCE ON", "MAINTENANCE");
	for (int i = 0; i < 2; i++) {
		PGconn *c = i ? c1 : c0;
		int logged = log_count("pooler error: FATAL 53300");

		/* log_pooler_errors changes live too: off for worker 0's error, on for worker 1's */
		admin_ok(a, i ? "SET log_pooler_errors TO on" : "SET log_pooler_errors TO off",
			 "SET");
		t0 = it_now_ms();
		ck_assert_int_eq(it_exec_first_error(c, "SELECT 1", st, msg, sizeof(msg)), 1);
		ms = it_now_ms() - t0;
		ck_assert_msg(strcmp(st, "53300") == 0, "worker %d: %s %s", i, st, msg);
		ck_assert_msg(strstr(msg, "checkout_timeout (1200 ms)") != NULL, "%s", msg);
		/* why: the servers are idle, not in use */
		ck_assert_msg(strstr(msg, "the pool is paused") != NULL, "%s", msg);
		ck_assert_msg(ms >= 1100 && ms < 4000, "worker %d failed after %lld ms", i, ms);
		for (int k = 0; i && k < 100 && log_count("pooler error: FATAL 53300") == logged;
		     k++)
			it_sleep_ms(20);
		ck_assert_int_eq(log_count("pooler error: FATAL 53300"), logged + i);
	}
	admin_ok(a, "MAINTENANCE OFF", "MAINTENANCE");
	admin_ok(a, "SET checkout_timeout = 5000", "SET");
	it_exec_error(a, "SET port TO 7000", "55P02");
	it_exec_error(a, "SET checkout_timeout TO soon", "22023");
	it_exec_error(a, "SET checkout_timeout TO 0", "22023");
	ck_assert(it_log_contains("SET checkout_timeout TO 1200"));
	PQfinish(a);
	PQfinish(c0);
	PQfinish(c1);
}
END_TEST

/* RECONNECT: the pool's backends are replaced; clients keep working. */
START_TEST(test_control_reconnect)
{
	PGconn *c0 = connect_on(APP, 0), *c1 = connect_on(APP, 1), *a = admin();
	char before[4096], pid0[32], pid1[32];
	long long end;

	/*
	 * both clients' servers open at once: between transactions a worker may
	 * give an idle server back (cap sharing), so sample until the snapshot
	 * holds both (a loaded machine can be slow between the two queries)
	 */
	end = it_now_ms() + 5000;
	for (;;) {
		snprintf(pid0, sizeof(pid0), "%s", it_value(c0, "SELECT pg_backend_pid()"));
		snprintf(pid1, sizeof(pid1), "%s", it_value(c1, "SELECT pg_backend_pid()"));
		snprintf(before, sizeof(before), "%s",
			 it_pg_value("SELECT string_agg(pid::text, ',') FROM pg_stat_activity "
				     "WHERE usename = 'app'"));
		if (strstr(before, pid0) && strstr(before, pid1))
			break;
		ck_assert_msg(it_now_ms() < end, "%s / %s %s", before, pid0, pid1);
		it_sleep_ms(20);
	}
	admin_ok(a, "RECONNECT app", "RECONNECT");
	/* the old backends go away (they were idle) */
	end = it_now_ms() + 3000;
	for (;;) {
		char q[4200];

		snprintf(q, sizeof(q), "SELECT count(*) FROM pg_stat_activity WHERE pid IN (%s)",
			 before);
		if (strcmp(it_pg_value(q), "0") == 0)
			break;
		ck_assert_msg(it_now_ms() < end, "old backends still there 3 s after RECONNECT");
		it_sleep_ms(50);
	}
	ck_assert_str_ne(it_value(c0, "SELECT pg_backend_pid()"), pid0);
	ck_assert_str_ne(it_value(c1, "SELECT pg_backend_pid()"), pid1);
	ck_assert(it_log_contains("RECONNECT app"));
	PQfinish(a);
	PQfinish(c0);
	PQfinish(c1);
}
END_TEST

/* KILL db drops that database's clients on both workers, and nobody else's. */
START_TEST(test_control_kill_db)
{
	PGconn *c0 = connect_on(APP, 0), *c1 = connect_on(APP, 1), *other = it_connect(OTHER);
	PGconn *a = admin(), *n;
	char st[6], msg[512];

	PQclear(it_exec_ok(c0, "SELECT 1"));
	PQclear(it_exec_ok(c1, "SELECT 1"));
	admin_ok(a, "KILL app", "KILL");
	for (int i = 0; i < 2; i++) {
		PGconn *c = i ? c1 : c0;

		ck_assert_msg(it_exec_first_error(c, "SELECT 1", st, msg, sizeof(msg)) != 0,
			      "worker %d: client of the killed database still works", i);
		ck_assert_int_eq(PQstatus(c), CONNECTION_BAD);
	}
	ck_assert_str_eq(it_value(other, "SELECT 'alive'"), "alive");
	/* unlike PgBouncer, the database is not left paused */
	n = it_connect(APP);
	ck_assert_str_eq(it_value(n, "SELECT 'new'"), "new");
	PQfinish(n);
	it_exec_error(a, "KILL nosuchdb", "3D000");
	PQfinish(a);
	PQfinish(c0);
	PQfinish(c1);
	PQfinish(other);
}
END_TEST

/* KILL_CLIENT closes the client SHOW CLIENTS names, on whichever worker it is. */
START_TEST(test_control_kill_client)
{
	PGconn *a = admin(), *keep = it_connect(APP);
	PGconn *victim = it_connect("dbname=app user=app password=app_pw application_name=victim");
	PGresult *r = PQexec(a, "SHOW CLIENTS");
	int col_id = PQfnumber(r, "id"), col_app = PQfnumber(r, "application_name");
	char id[64] = "", sql[128], st[6], msg[256];

	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	for (int i = 0; i < PQntuples(r); i++)
		if (strcmp(PQgetvalue(r, i, col_app), "victim") == 0)
			snprintf(id, sizeof(id), "%s", PQgetvalue(r, i, col_id));
	PQclear(r);
	ck_assert_msg(id[0], "SHOW CLIENTS does not list the victim");
	snprintf(sql, sizeof(sql), "KILL_CLIENT %s", id);
	admin_ok(a, sql, "KILL_CLIENT");
	ck_assert(it_exec_first_error(victim, "SELECT 1", st, msg, sizeof(msg)) != 0);
	ck_assert_int_eq(PQstatus(victim), CONNECTION_BAD);
	ck_assert_str_eq(it_value(keep, "SELECT 'kept'"), "kept");
	it_exec_error(a, "KILL_CLIENT w0c999999", "42704");
	it_exec_error(a, "KILL_CLIENT nonsense", "42601");
	PQfinish(a);
	PQfinish(keep);
	PQfinish(victim);
}
END_TEST

/* BAN refuses new transactions of the pool with a clear error; UNBAN lifts it. */
START_TEST(test_control_ban)
{
	PGconn *a = admin(), *c0 = connect_on(OTHER, 0), *c1 = connect_on(OTHER, 1), *app;
	PGresult *r;
	char st[6], msg[512], sql[64] = "";
	int col_db, col_id;

	r = PQexec(a, "SHOW POOLS");
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	col_db = PQfnumber(r, "database");
	col_id = PQfnumber(r, "id");
	for (int i = 0; i < PQntuples(r); i++)
		if (strcmp(PQgetvalue(r, i, col_db), "other") == 0)
			snprintf(sql, sizeof(sql), "BAN %s", PQgetvalue(r, i, col_id));
	PQclear(r);
	ck_assert(sql[0]);
	admin_ok(a, sql, "BAN");
	for (int i = 0; i < 2; i++) {
		PGconn *c = i ? c1 : c0;

		ck_assert_int_eq(it_exec_first_error(c, "SELECT 1", st, msg, sizeof(msg)), 1);
		ck_assert_msg(strstr(msg, "banned") != NULL, "worker %d: %s", i, msg);
	}
	app = it_connect(APP);
	ck_assert_str_eq(it_value(app, "SELECT 'not banned'"), "not banned");
	ck_assert(it_log_contains("BAN other user app2"));
	admin_ok(a, "UNBAN other", "UNBAN");
	PQfinish(c0);
	c0 = it_connect(OTHER);
	ck_assert_str_eq(it_value(c0, "SELECT 'unbanned'"), "unbanned");
	/* a ban by database name, and UNBAN without a name */
	admin_ok(a, "BAN other", "BAN");
	ck_assert_int_eq(it_exec_first_error(c0, "SELECT 1", st, msg, sizeof(msg)), 1);
	admin_ok(a, "UNBAN", "UNBAN");
	PQfinish(c0);
	c0 = it_connect(OTHER);
	ck_assert_str_eq(it_value(c0, "SELECT 'again'"), "again");
	it_exec_error(a, "BAN 999", "42704");
	PQfinish(a);
	PQfinish(app);
	PQfinish(c0);
	PQfinish(c1);
}
END_TEST

/*
 * ban_timeout: a BAN lifts by itself once it runs out (SHOW BANS counts the
 * milliseconds down), in every worker; with ban_timeout 0 it has no end.
 */
START_TEST(test_control_ban_timeout)
{
	PGconn *a = admin(), *c;
	PGresult *r;
	char st[6], msg[512];
	const char *left;
	long long end;
	bool is_lifted[2] = { false, false };

	admin_ok(a, "SET ban_timeout TO 1500", "SET");
	admin_ok(a, "BAN other", "BAN");
	left = it_show_value(a, "SHOW BANS", "database", "other", NULL, NULL, "ban_time_left");
	ck_assert_msg(atoi(left) > 0 && atoi(left) <= 1500, "ban_time_left %s", left);
	for (int i = 0; i < 2; i++) {
		c = connect_on(OTHER, i);
		ck_assert_int_eq(it_exec_first_error(c, "SELECT 1", st, msg, sizeof(msg)), 1);
		ck_assert_msg(strstr(msg, "banned") != NULL, "worker %d: %s", i, msg);
		PQfinish(c);
	}
	/* both workers take the pool again after 1.5 s (+ one 100 ms sweep) */
	end = it_now_ms() + 4000;
	while (!is_lifted[0] || !is_lifted[1]) {
		for (int i = 0; i < 2; i++) {
			if (is_lifted[i])
				continue;
			c = connect_on(OTHER, i);
			is_lifted[i] =
				it_exec_first_error(c, "SELECT 1", st, msg, sizeof(msg)) == 0;
			PQfinish(c);
		}
		ck_assert_msg(it_now_ms() < end, "the ban did not expire (worker 0 %d, 1 %d)",
			      is_lifted[0], is_lifted[1]);
		it_sleep_ms(100);
	}
	ck_assert_msg(it_now_ms() > end - 4000 + 1000, "the ban lifted too early");
	r = it_exec_ok(a, "SHOW BANS");
	ck_assert_int_eq(PQntuples(r), 0);
	PQclear(r);
	ck_assert(it_log_contains("ban_timeout reached"));
	/* 0: until UNBAN, shown as NULL */
	admin_ok(a, "SET ban_timeout TO 0", "SET");
	admin_ok(a, "BAN other", "BAN");
	r = it_exec_ok(a, "SHOW BANS");
	ck_assert_int_eq(PQntuples(r), 1);
	ck_assert(PQgetisnull(r, 0, PQfnumber(r, "ban_time_left")));
	PQclear(r);
	admin_ok(a, "UNBAN", "UNBAN");
	admin_ok(a, "SET ban_timeout TO 300000", "SET");
	PQfinish(a);
}
END_TEST

/* SHOW STATE's value of key. */
static const char *
state_of(PGconn *a, const char *key)
{
	return it_show_value(a, "SHOW STATE", "key", key, NULL, NULL, "value");
}

/* SHOW DATABASES' paused or disabled for database db. */
static const char *
db_flag(PGconn *a, const char *db, const char *col)
{
	return it_show_value(a, "SHOW DATABASES", "name", db, NULL, NULL, col);
}

static char metrics[4 << 20];

/* Scrape /metrics into metrics. */
static void
scrape(void)
{
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

	ck_assert_int_eq(it_http_request(metrics_port, req, metrics, sizeof(metrics)), 200);
}

/*
 * PAUSE db, PAUSE, MAINTENANCE ON and BAN show in SHOW STATE (paused,
 * suspended, maintenance, paused_databases, bans), SHOW DATABASES (paused,
 * disabled) and the /metrics gauges, and go back to 0 when lifted.
 */
START_TEST(test_control_state_reported)
{
	PGconn *a = admin();

	ck_assert_str_eq(state_of(a, "paused"), "no");
	ck_assert_str_eq(state_of(a, "suspended"), "no");
	ck_assert_str_eq(db_flag(a, "other", "paused"), "0");
	ck_assert_str_eq(db_flag(a, "other", "disabled"), "0");
	scrape();
	ck_assert(it_metric_plain(metrics, "pgdog_paused") == 0);
	ck_assert(it_metric_plain(metrics, "pgdog_maintenance") == 0);
	ck_assert(it_metric_plain(metrics, "pgdog_bans") == 0);
	ck_assert(it_metric(metrics, "pgdog_pool_paused", "app2") == 0);

	admin_ok(a, "PAUSE other", "PAUSE");
	ck_assert_str_eq(db_flag(a, "other", "paused"), "1");
	ck_assert_str_eq(db_flag(a, "app", "paused"), "0");
	ck_assert_str_eq(state_of(a, "paused"), "no");
	ck_assert_str_eq(state_of(a, "paused_databases"), "other");
	scrape();
	ck_assert(it_metric(metrics, "pgdog_pool_paused", "app2") == 1);
	ck_assert(it_metric(metrics, "pgdog_pool_paused", "app") == 0);
	ck_assert(it_metric_plain(metrics, "pgdog_paused_databases") == 1);
	admin_ok(a, "RESUME other", "RESUME");
	ck_assert_str_eq(db_flag(a, "other", "paused"), "0");

	admin_ok(a, "PAUSE", "PAUSE");
	ck_assert_str_eq(state_of(a, "paused"), "yes");
	ck_assert_str_eq(db_flag(a, "app", "paused"), "1");
	scrape();
	ck_assert(it_metric_plain(metrics, "pgdog_paused") == 1);
	admin_ok(a, "RESUME", "RESUME");
	ck_assert_str_eq(state_of(a, "paused"), "no");

	admin_ok(a, "MAINTENANCE ON", "MAINTENANCE");
	ck_assert_str_eq(state_of(a, "suspended"), "yes");
	ck_assert_str_eq(state_of(a, "maintenance"), "on");
	ck_assert_str_eq(db_flag(a, "other", "paused"), "1");
	scrape();
	ck_assert(it_metric_plain(metrics, "pgdog_maintenance") == 1);
	ck_assert(it_metric(metrics, "pgdog_pool_paused", "app") == 1);
	admin_ok(a, "MAINTENANCE OFF", "MAINTENANCE");
	ck_assert_str_eq(state_of(a, "suspended"), "no");

	admin_ok(a, "BAN other", "BAN");
	ck_assert_str_eq(db_flag(a, "other", "disabled"), "1");
	ck_assert_str_eq(db_flag(a, "app", "disabled"), "0");
	ck_assert_str_eq(state_of(a, "bans"), "1");
	scrape();
	ck_assert(it_metric_plain(metrics, "pgdog_bans") == 1);
	ck_assert(it_metric(metrics, "pgdog_pool_banned", "app2") == 1);
	ck_assert(it_metric(metrics, "pgdog_pool_banned", "app") == 0);
	admin_ok(a, "UNBAN other", "UNBAN");
	ck_assert_str_eq(db_flag(a, "other", "disabled"), "0");
	scrape();
	ck_assert(it_metric_plain(metrics, "pgdog_bans") == 0);
	PQfinish(a);
}
END_TEST

/* RELOAD answers with the outcome: success (every worker applied it) or the rejection reason. */
START_TEST(test_control_reload_reply)
{
	PGconn *a = admin(), *c = it_connect(APP);
	char users[1024];
	PGresult *r;
	const char *msg;

	last_notice[0] = '\0';
	admin_ok(a, "RELOAD", "RELOAD");
	ck_assert_msg(strstr(last_notice, "applied") != NULL, "notice: %s", last_notice);
	/* a reload replaces runtime SET values by the files' and says so */
	admin_ok(a, "SET query_timeout TO 4321", "SET");
	admin_ok(a, "SET client_idle_timeout TO 98765", "SET");
	last_notice[0] = '\0';
	admin_ok(a, "RELOAD", "RELOAD");
	ck_assert_msg(strstr(last_notice, "runtime SET values replaced by the files': ") &&
			      strstr(last_notice, "query_timeout") &&
			      strstr(last_notice, "client_idle_timeout"),
		      "notice: %s", last_notice);
	last_notice[0] = '\0';
	admin_ok(a, "RELOAD", "RELOAD");
	ck_assert_msg(strstr(last_notice, "runtime SET") == NULL, "notice: %s", last_notice);
	it_write_file(g_it.users_path, "[users.app]\ndatabase = app\npassword = app_pw\n"
				       "pool_size = nope\n");
	r = PQexec(a, "RELOAD");
	ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "F0000");
	msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	ck_assert_msg(strstr(msg, "users.ini:4") && strstr(msg, "pool_size"), "%s", msg);
	PQclear(r);
	ck_assert_str_eq(it_value(c, "SELECT 'still here'"), "still here");
	snprintf(users, sizeof(users), "%s[admin]\nname = admin\nuser = admin\npassword = pgdog\n",
		 users_ini);
	it_write_file(g_it.users_path, users);
	admin_ok(a, "RELOAD", "RELOAD");
	PQfinish(a);
	PQfinish(c);
}
END_TEST

/* SHUTDOWN: a graceful shutdown of the whole pgdog. */
START_TEST(test_control_shutdown)
{
	PGconn *a = admin();
	long long end = it_now_ms() + 10000;

	admin_ok(a, "SHUTDOWN", "SHUTDOWN");
	PQfinish(a);
	/* pgdog is the runner's child: from this forked test it turns into a zombie */
	while (it_pid_alive(g_it.pid))
		ck_assert_msg(it_now_ms() < end, "pgdog still runs 10 s after SHUTDOWN"),
			it_sleep_ms(50);
	ck_assert(it_log_contains("SHUTDOWN: graceful shutdown"));
	ck_assert(!it_wait_port(g_it.port, 200));
	ck_assert(it_log_contains("pgdog stopped"));
}
END_TEST

static Suite *
control_suite(void)
{
	Suite *s = suite_create("control");
	TCase *tc = tcase_create("control");
	TCase *sd = tcase_create("control_shutdown");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_control_pause_resume);
	tcase_add_test(tc, test_control_pause_db);
	tcase_add_test(tc, test_control_maintenance);
	tcase_add_test(tc, test_control_held_timeout_and_set);
	tcase_add_test(tc, test_control_reconnect);
	tcase_add_test(tc, test_control_kill_db);
	tcase_add_test(tc, test_control_kill_client);
	tcase_add_test(tc, test_control_ban);
	tcase_add_test(tc, test_control_ban_timeout);
	tcase_add_test(tc, test_control_reload_reply);
	tcase_add_test(tc, test_control_state_reported);
	suite_add_tcase(s, tc);
	tcase_add_unchecked_fixture(sd, setup_shutdown, teardown);
	tcase_set_timeout(sd, 30);
	tcase_add_test(sd, test_control_shutdown);
	suite_add_tcase(s, sd);
	return s;
}

int
main(void)
{
	return it_run_suite(control_suite());
}
