/*
 * it_session.c: session pooling through pgdog against a real PostgreSQL:
 * server reuse and reset (DISCARD ALL), ParameterStatus and BackendKeyData,
 * simple and extended protocol, pipelining, notices, LISTEN/NOTIFY, COPY in
 * both directions, and recovery after errors.
 * One pgdog with one worker (so sequential clients meet the same idle
 * server) and pool_size 1 for user "app".
 */
#include "t/lib/it.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define APP "dbname=app user=app password=app_pw"

static void
setup(void)
{
	it_env_start("session");
	it_pg_start(NULL);
	it_pg_role("app", "app_pw", "scram-sha-256");
	it_pg_hba("host all app 127.0.0.1/32 scram-sha-256");
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 1,
		.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 1\n",
	});
}

static void
teardown(void)
{
	it_env_stop();
}

/* Two sequential clients share the one server connection. */
START_TEST(test_session_reuse)
{
	PGconn *c1 = it_connect(APP), *c2;
	char pid1[32];
	PGconn *mon = it_pg_connect();

	snprintf(pid1, sizeof(pid1), "%s", it_value(c1, "SELECT pg_backend_pid()"));
	ck_assert_int_eq(it_pg_count_backends(mon, "app"), 1);
	PQfinish(c1);
	c2 = it_connect(APP);
	ck_assert_str_eq(it_value(c2, "SELECT pg_backend_pid()"), pid1);
	ck_assert_int_eq(it_pg_count_backends(mon, "app"), 1);
	PQfinish(c2);
	PQfinish(mon);
}
END_TEST

/* What client 1 leaves in the session is gone for client 2. */
START_TEST(test_session_discard_all)
{
	PGconn *c1 = it_connect(APP), *c2;
	char pid1[32];

	snprintf(pid1, sizeof(pid1), "%s", it_value(c1, "SELECT pg_backend_pid()"));
	PQclear(it_exec_ok(c1, "SET statement_timeout = '12345ms'"));
	PQclear(it_exec_ok(c1, "CREATE TEMP TABLE leak_tmp (x int)"));
	PQclear(it_exec_ok(c1, "PREPARE leak_stmt AS SELECT 1"));
	PQclear(it_exec_ok(c1, "SELECT pg_advisory_lock(4242)"));
	PQclear(it_exec_ok(c1, "LISTEN leak_channel"));
	ck_assert_str_eq(it_value(c1, "SHOW statement_timeout"), "12345ms");
	PQfinish(c1);

	c2 = it_connect(APP);
	ck_assert_str_eq(it_value(c2, "SELECT pg_backend_pid()"), pid1);
	ck_assert_str_eq(it_value(c2, "SHOW statement_timeout"), "0");
	ck_assert_str_eq(it_value(c2, "SELECT to_regclass('pg_temp.leak_tmp') IS NULL"), "t");
	ck_assert_str_eq(it_value(c2, "SELECT count(*) FROM pg_prepared_statements"), "0");
	ck_assert_str_eq(it_value(c2, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"),
			 "0");
	ck_assert_str_eq(it_value(c2, "SELECT count(*) FROM pg_listening_channels()"), "0");
	PQfinish(c2);
}
END_TEST

/*
 * A library a client LOADs stays in its server process, which DISCARD ALL
 * does not change: that server connection is closed when the client leaves,
 * and the next client gets a new one. Before, it got the same process.
 */
START_TEST(test_session_load_closes)
{
	PGconn *c1 = it_connect(APP), *c2;
	static const char loaded[] = "SELECT coalesce(current_setting("
				     "'auto_explain.log_min_duration', true), 'none')";
	char pid1[32];

	it_pg_exec("ALTER ROLE app SUPERUSER"); /* auto_explain is not in $libdir/plugins */
	snprintf(pid1, sizeof(pid1), "%s", it_value(c1, "SELECT pg_backend_pid()"));
	PQclear(it_exec_ok(c1, "LOAD 'auto_explain'"));
	ck_assert_str_eq(it_value(c1, loaded), "-1");
	PQfinish(c1);
	it_pg_exec("ALTER ROLE app NOSUPERUSER");
	c2 = it_connect(APP);
	ck_assert_str_ne(it_value(c2, "SELECT pg_backend_pid()"), pid1);
	ck_assert_str_eq(it_value(c2, loaded), "none");
	PQfinish(c2);
	/* the one after it gets the same (new) server again */
	c1 = it_connect(APP);
	ck_assert_str_eq(it_value(c1, loaded), "none");
	PQfinish(c1);
}
END_TEST

/* The client sees PostgreSQL's ParameterStatus messages. */
START_TEST(test_session_parameter_status)
{
	PGconn *c = it_connect(APP);
	const char *names[] = { "server_version",
				"client_encoding",
				"server_encoding",
				"DateStyle",
				"TimeZone",
				"integer_datetimes",
				"standard_conforming_strings" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		ck_assert_msg(PQparameterStatus(c, names[i]) != NULL, "no ParameterStatus %s",
			      names[i]);
	ck_assert_msg(strncmp(PQparameterStatus(c, "server_version"), "15", 2) == 0,
		      "server_version %s", PQparameterStatus(c, "server_version"));
	ck_assert_str_eq(PQparameterStatus(c, "client_encoding"), "UTF8");
	ck_assert_str_eq(PQparameterStatus(c, "integer_datetimes"), "on");
	ck_assert_int_eq(PQserverVersion(c) / 10000, 15);
	/* a SET reported by the server reaches the client */
	PQclear(it_exec_ok(c, "SET DateStyle = 'SQL, DMY'"));
	ck_assert_str_eq(PQparameterStatus(c, "DateStyle"), "SQL, DMY");
	PQfinish(c);
}
END_TEST

/* pgdog hands out its own BackendKeyData. */
START_TEST(test_session_backend_key)
{
	PGconn *c = it_connect(APP);
	int fake = PQbackendPID(c);
	int real = atoi(it_value(c, "SELECT pg_backend_pid()"));

	ck_assert_int_ne(fake, 0);
	ck_assert_int_gt(real, 0);
	ck_assert_msg(fake != real, "client sees the server's pid %d as its BackendKeyData", real);
	PQfinish(c);
}
END_TEST

START_TEST(test_session_extended_protocol)
{
	PGconn *c = it_connect(APP);
	const char *params[2] = { "2", "3" };
	PGresult *res;

	res = PQexecParams(c, "SELECT $1::int + $2::int, 'x' || $1", 2, NULL, params, NULL, NULL,
			   0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "5");
	ck_assert_str_eq(PQgetvalue(res, 0, 1), "x2");
	PQclear(res);

	/* binary result */
	res = PQexecParams(c, "SELECT $1::int4", 1, NULL, params, NULL, NULL, 1);
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	ck_assert_int_eq(PQgetlength(res, 0, 0), 4);
	ck_assert_int_eq((unsigned char)PQgetvalue(res, 0, 0)[3], 2);
	PQclear(res);

	res = PQprepare(c, "s1", "SELECT $1::int * 10", 1, NULL);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
	PQclear(res);
	res = PQdescribePrepared(c, "s1");
	ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
	ck_assert_int_eq(PQnparams(res), 1);
	ck_assert_int_eq(PQnfields(res), 1);
	PQclear(res);
	for (int i = 0; i < 3; i++) {
		char v[16], want[16];
		const char *p[1] = { v };

		snprintf(v, sizeof(v), "%d", i + 1);
		snprintf(want, sizeof(want), "%d", (i + 1) * 10);
		res = PQexecPrepared(c, "s1", 1, p, NULL, NULL, 0);
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
		ck_assert_str_eq(PQgetvalue(res, 0, 0), want);
		PQclear(res);
	}
	/* an error in the extended protocol, then the session goes on */
	res = PQexecParams(c, "SELECT 1 / $1::int", 1, NULL, (const char *[]){ "0" }, NULL, NULL,
			   0);
	ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "22012");
	PQclear(res);
	ck_assert_str_eq(it_value(c, "SELECT 7"), "7");
	PQfinish(c);
}
END_TEST

START_TEST(test_session_pipeline)
{
	PGconn *c = it_connect(APP);
	PGresult *res;
	const char *p1[1] = { "1" }, *p0[1] = { "0" };

	ck_assert_int_eq(PQenterPipelineMode(c), 1);
	ck_assert_int_eq(PQsendQueryParams(c, "SELECT 10 / $1::int", 1, NULL, p1, NULL, NULL, 0),
			 1);
	ck_assert_int_eq(PQsendQueryParams(c, "SELECT 10 / $1::int", 1, NULL, p0, NULL, NULL, 0),
			 1);
	ck_assert_int_eq(PQsendQueryParams(c, "SELECT 99", 0, NULL, NULL, NULL, NULL, 0), 1);
	ck_assert_int_eq(PQpipelineSync(c), 1);
	ck_assert_int_eq(PQsendQueryParams(c, "SELECT 'after'", 0, NULL, NULL, NULL, NULL, 0), 1);
	ck_assert_int_eq(PQpipelineSync(c), 1);

	res = PQgetResult(c);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "first: %s", PQerrorMessage(c));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "10");
	PQclear(res);
	ck_assert_ptr_null(PQgetResult(c));

	it_pipeline_next(c, PGRES_FATAL_ERROR, "22012");
	it_pipeline_next(c, PGRES_PIPELINE_ABORTED, NULL);
	it_pipeline_next(c, PGRES_PIPELINE_SYNC, NULL);

	res = PQgetResult(c);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "after sync: %s", PQerrorMessage(c));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "after");
	PQclear(res);
	ck_assert_ptr_null(PQgetResult(c));
	res = PQgetResult(c);
	ck_assert_int_eq(PQresultStatus(res), PGRES_PIPELINE_SYNC);
	PQclear(res);
	ck_assert_int_eq(PQexitPipelineMode(c), 1);

	/* many small queries in one pipeline */
	ck_assert_int_eq(PQenterPipelineMode(c), 1);
	for (int i = 0; i < 500; i++)
		ck_assert_int_eq(PQsendQueryParams(c, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0), 1);
	ck_assert_int_eq(PQpipelineSync(c), 1);
	for (int i = 0; i < 500; i++) {
		res = PQgetResult(c);
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "#%d: %s", i,
			      PQerrorMessage(c));
		PQclear(res);
		ck_assert_ptr_null(PQgetResult(c));
	}
	res = PQgetResult(c);
	ck_assert_int_eq(PQresultStatus(res), PGRES_PIPELINE_SYNC);
	PQclear(res);
	ck_assert_int_eq(PQexitPipelineMode(c), 1);
	ck_assert_str_eq(it_value(c, "SELECT 'done'"), "done");
	PQfinish(c);
}
END_TEST

struct notice_seen {
	int cnt;
	char msg[256];
	char sqlstate[8];
	char severity[16];
};

static void
notice_cb(void *arg, const PGresult *res)
{
	struct notice_seen *n = arg;
	const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *v = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);

	n->cnt++;
	snprintf(n->msg, sizeof(n->msg), "%s", m != NULL ? m : "");
	snprintf(n->sqlstate, sizeof(n->sqlstate), "%s", s != NULL ? s : "");
	snprintf(n->severity, sizeof(n->severity), "%s", v != NULL ? v : "");
}

START_TEST(test_session_notice)
{
	PGconn *c = it_connect(APP);
	struct notice_seen n = { 0 };

	PQsetNoticeReceiver(c, notice_cb, &n);
	PQclear(it_exec_ok(c, "DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$"));
	ck_assert_int_eq(n.cnt, 1);
	ck_assert_str_eq(n.msg, "hello 42");
	ck_assert_str_eq(n.sqlstate, "00000");
	ck_assert_str_eq(n.severity, "NOTICE");
	PQclear(it_exec_ok(c,
			   "DO $$ BEGIN RAISE WARNING 'careful' USING ERRCODE = '01000'; END $$"));
	ck_assert_int_eq(n.cnt, 2);
	ck_assert_str_eq(n.msg, "careful");
	ck_assert_str_eq(n.severity, "WARNING");
	PQfinish(c);
}
END_TEST

START_TEST(test_session_listen_notify)
{
	PGconn *c = it_connect(APP);
	PGconn *direct = it_pg_connect();
	PGnotify *n;
	char pid[32];

	snprintf(pid, sizeof(pid), "%s", it_value(c, "SELECT pg_backend_pid()"));
	PQclear(it_exec_ok(c, "LISTEN it_channel"));
	/* from another session, straight to PostgreSQL */
	PQclear(it_exec_ok(direct, "NOTIFY it_channel, 'from outside'"));
	n = it_wait_notify(c, 3000);
	ck_assert_msg(n != NULL, "no notification within 3 s");
	ck_assert_str_eq(n->relname, "it_channel");
	ck_assert_str_eq(n->extra, "from outside");
	PQfreemem(n);
	/* and from itself: the notifying pid is the server's, not pgdog's key */
	PQclear(it_exec_ok(c, "NOTIFY it_channel, 'self'"));
	n = it_wait_notify(c, 3000);
	ck_assert_msg(n != NULL, "no self-notification within 3 s");
	ck_assert_str_eq(n->extra, "self");
	ck_assert_int_eq(n->be_pid, atoi(pid));
	PQfreemem(n);
	PQfinish(direct);
	PQfinish(c);
}
END_TEST

#define COPY_ROWS 20000

START_TEST(test_session_copy)
{
	PGconn *c = it_connect(APP);
	PGresult *res;
	char line[128];
	int rows = 0;
	long long sum = 0;
	char *buf;
	int n;

	PQclear(it_exec_ok(c, "CREATE TEMP TABLE copy_t (a int, b text)"));
	res = PQexec(c, "COPY copy_t FROM STDIN");
	ck_assert_msg(PQresultStatus(res) == PGRES_COPY_IN, "%s", PQerrorMessage(c));
	PQclear(res);
	for (int i = 1; i <= COPY_ROWS; i++) {
		n = snprintf(line, sizeof(line), "%d\trow %d with some padding text\n", i, i);
		ck_assert_int_eq(PQputCopyData(c, line, n), 1);
	}
	ck_assert_int_eq(PQputCopyEnd(c, NULL), 1);
	res = PQgetResult(c);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "COPY IN: %s", PQerrorMessage(c));
	ck_assert_str_eq(PQcmdTuples(res), "20000");
	PQclear(res);
	ck_assert_ptr_null(PQgetResult(c));
	ck_assert_str_eq(it_value(c, "SELECT count(*) || ' ' || sum(a) FROM copy_t"),
			 "20000 200010000");
	ck_assert_str_eq(it_value(c, "SELECT b FROM copy_t WHERE a = 777"),
			 "row 777 with some padding text");

	res = PQexec(c, "COPY (SELECT a, b FROM copy_t ORDER BY a) TO STDOUT");
	ck_assert_msg(PQresultStatus(res) == PGRES_COPY_OUT, "%s", PQerrorMessage(c));
	PQclear(res);
	while ((n = PQgetCopyData(c, &buf, 0)) > 0) {
		rows++;
		snprintf(line, sizeof(line), "%d\trow %d with some padding text\n", rows, rows);
		ck_assert_msg(strlen(line) == (size_t)n && memcmp(buf, line, (size_t)n) == 0,
			      "COPY OUT row %d: %.*s", rows, n, buf);
		sum += atoi(buf);
		PQfreemem(buf);
	}
	ck_assert_int_eq(n, -1);
	res = PQgetResult(c);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "COPY OUT: %s", PQerrorMessage(c));
	PQclear(res);
	ck_assert_int_eq(rows, COPY_ROWS);
	ck_assert_int_eq(sum, 200010000LL);

	/* a COPY IN the client aborts: 57014, then the session goes on */
	res = PQexec(c, "COPY copy_t FROM STDIN");
	ck_assert_int_eq(PQresultStatus(res), PGRES_COPY_IN);
	PQclear(res);
	ck_assert_int_eq(PQputCopyData(c, "1\tx\n", 4), 1);
	ck_assert_int_eq(PQputCopyEnd(c, "client gave up"), 1);
	res = PQgetResult(c);
	ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "57014");
	PQclear(res);
	ck_assert_ptr_null(PQgetResult(c));
	/* a COPY IN with bad data: 22P02 */
	res = PQexec(c, "COPY copy_t FROM STDIN");
	ck_assert_int_eq(PQresultStatus(res), PGRES_COPY_IN);
	PQclear(res);
	ck_assert_int_eq(PQputCopyData(c, "notanumber\tx\n", 13), 1);
	ck_assert_int_eq(PQputCopyEnd(c, NULL), 1);
	res = PQgetResult(c);
	ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "22P02");
	PQclear(res);
	ck_assert_ptr_null(PQgetResult(c));
	ck_assert_str_eq(it_value(c, "SELECT count(*) FROM copy_t"), "20000");
	PQfinish(c);
}
END_TEST

START_TEST(test_session_error_recovery)
{
	PGconn *c = it_connect(APP);

	it_exec_error(c, "SELECT 1/0", "22012");
	ck_assert_str_eq(it_value(c, "SELECT 1"), "1");
	it_exec_error(c, "SELECT * FROM no_such_table", "42P01");
	it_exec_error(c, "SELEC 1", "42601");
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_IDLE);

	PQclear(it_exec_ok(c, "BEGIN"));
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_INTRANS);
	it_exec_error(c, "SELECT 1/0", "22012");
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_INERROR);
	it_exec_error(c, "SELECT 1", "25P02");
	PQclear(it_exec_ok(c, "ROLLBACK"));
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_IDLE);
	ck_assert_str_eq(it_value(c, "SELECT 2"), "2");
	/* a multi-statement simple query that fails half-way */
	{
		PGresult *res = PQexec(c, "SELECT 1; SELECT 1/0; SELECT 3");
		ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
		PQclear(res);
	}
	ck_assert_str_eq(it_value(c, "SELECT 4"), "4");
	PQfinish(c);
}
END_TEST

/* A client that disconnects inside a transaction leaves nothing open. */
START_TEST(test_session_disconnect_in_transaction)
{
	PGconn *c1 = it_connect(APP), *c2;

	PQclear(it_exec_ok(c1, "BEGIN"));
	PQclear(it_exec_ok(c1, "CREATE TABLE tx_left_open (x int)"));
	PQfinish(c1);
	c2 = it_connect(APP);
	ck_assert_int_eq(PQtransactionStatus(c2), PQTRANS_IDLE);
	ck_assert_str_eq(it_value(c2, "SELECT to_regclass('tx_left_open') IS NULL"), "t");
	ck_assert_str_eq(it_value(c2, "SELECT 1"), "1");
	PQfinish(c2);
}
END_TEST

/*
 * A cancel sent while the client runs nothing is dropped, as PostgreSQL
 * drops one that comes while it waits for a command; one sent while a
 * query runs cancels that query only.
 */
START_TEST(test_session_cancel_idle)
{
	PGconn *c = it_connect(APP);
	char err[256];

	for (int i = 0; i < 20; i++) {
		PGcancel *cancel = PQgetCancel(c);

		ck_assert_ptr_nonnull(cancel);
		ck_assert_msg(PQcancel(cancel, err, sizeof(err)) == 1, "PQcancel: %s", err);
		PQfreeCancel(cancel);
		ck_assert_str_eq(it_value(c, "SELECT pg_sleep(0.02)::text || 'x'"), "x");
	}
	PQfinish(c);
}
END_TEST

/* The admin console reports the pool a client is using. */
START_TEST(test_session_admin_show)
{
	PGconn *c = it_connect(APP);
	PGconn *adm = it_connect("dbname=admin user=admin password=pgdog");
	PGresult *res;
	const char *cols[] = { "database", "user",     "cl_active", "cl_waiting", "sv_active",
			       "sv_idle",  "sv_login", "maxwait",   "pool_mode" };
	int row = -1;

	ck_assert_str_eq(it_value(c, "SELECT 1"), "1");
	res = it_exec_ok(adm, "SHOW POOLS");
	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
		ck_assert_msg(PQfnumber(res, cols[i]) >= 0, "SHOW POOLS has no column %s", cols[i]);
	for (int r = 0; r < PQntuples(res); r++) {
		if (strcmp(PQgetvalue(res, r, PQfnumber(res, "database")), "app") == 0 &&
		    strcmp(PQgetvalue(res, r, PQfnumber(res, "user")), "app") == 0)
			row = r;
	}
	ck_assert_msg(row >= 0, "SHOW POOLS has no row for app/app");
	ck_assert_int_eq(atoi(PQgetvalue(res, row, PQfnumber(res, "cl_active"))), 1);
	ck_assert_int_eq(atoi(PQgetvalue(res, row, PQfnumber(res, "sv_active"))), 1);
	ck_assert_int_eq(atoi(PQgetvalue(res, row, PQfnumber(res, "cl_waiting"))), 0);
	ck_assert_str_eq(PQgetvalue(res, row, PQfnumber(res, "pool_mode")), "session");
	PQclear(res);

	res = it_exec_ok(adm, "SHOW CLIENTS");
	ck_assert_msg(PQntuples(res) >= 1, "SHOW CLIENTS: no rows with a client connected");
	PQclear(res);
	res = it_exec_ok(adm, "SHOW SERVERS");
	ck_assert_msg(PQntuples(res) == 1, "SHOW SERVERS: %d rows, pool_size 1", PQntuples(res));
	PQclear(res);
	res = it_exec_ok(adm, "SHOW VERSION");
	ck_assert_int_eq(PQntuples(res), 1);
	PQclear(res);
	PQfinish(adm);
	PQfinish(c);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("it_session");
	TCase *tc = tcase_create("session");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_session_reuse);
	tcase_add_test(tc, test_session_discard_all);
	tcase_add_test(tc, test_session_load_closes);
	tcase_add_test(tc, test_session_parameter_status);
	tcase_add_test(tc, test_session_backend_key);
	tcase_add_test(tc, test_session_extended_protocol);
	tcase_add_test(tc, test_session_pipeline);
	tcase_add_test(tc, test_session_notice);
	tcase_add_test(tc, test_session_listen_notify);
	tcase_add_test(tc, test_session_copy);
	tcase_add_test(tc, test_session_error_recovery);
	tcase_add_test(tc, test_session_disconnect_in_transaction);
	tcase_add_test(tc, test_session_admin_show);
	tcase_add_test(tc, test_session_cancel_idle);
	suite_add_tcase(s, tc);
	return it_run_suite(s);
}
