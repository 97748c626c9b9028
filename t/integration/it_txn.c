/*
 * it_txn.c: transaction and statement pooling through pgdog against a real
 * PostgreSQL: a server per transaction, waiting for a server held by an open
 * transaction, SET tracking and ParameterStatus, the extended protocol and
 * pipelines, pinning (advisory locks, temporary tables, named prepared
 * statements, LISTEN), recovery after a client leaves mid-transaction or
 * mid-query, query_timeout and the client idle timeouts, cancelling a client
 * that waits for a server, statement mode, per-user pooler_mode, and named
 * statements whose result type DDL changed.
 * Every pgdog runs one worker and gives user "app" a pool of one server (two
 * for the DDL tests), so clients share servers deterministically: the tests
 * compare pg_backend_pid() to prove it.
 */
#include "t/lib/it.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define APP   "dbname=app user=app password=app_pw"
#define SESS  "dbname=app user=sess password=sess_pw"
#define ADMIN "dbname=admin user=admin password=pgdog"

/* PostgreSQL's defaults, as SHOW prints them */
#define DEF_SEARCH_PATH "\"$user\", public"
#define DEF_WORK_MEM    "4MB"

static void
setup_pg(const char *name)
{
	it_env_start(name);
	it_pg_start(NULL);
	it_pg_role("app", "app_pw", "scram-sha-256");
	it_pg_role("sess", "sess_pw", "scram-sha-256");
	it_pg_hba("host all app 127.0.0.1/32 scram-sha-256\n"
		  "host all sess 127.0.0.1/32 scram-sha-256");
}

/* pgdog with one worker and a pool of one server for "app"; general: extra [general] lines. */
static void
start_pgdog(const char *general)
{
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 1,
		.general = general,
		.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 1\n",
	});
}

static void
teardown(void)
{
	it_env_stop();
}

/* ---- helpers ------------------------------------------------------------ */

/* pg_backend_pid() of the server c's next transaction runs on, into out. */
static void
backend_pid(PGconn *c, char *out, size_t len)
{
	snprintf(out, len, "%s", it_value(c, "SELECT pg_backend_pid()"));
}

/* Run sql on c and discard the result; ck_abort unless it succeeds. */
static void
exec_ok(PGconn *c, const char *sql)
{
	PQclear(it_exec_ok(c, sql));
}

/* res is an error with SQLSTATE sqlstate. */
static void
assert_sqlstate(const PGresult *res, const char *sqlstate)
{
	const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR, "got %s, expected error %s",
		      PQresStatus(PQresultStatus(res)), sqlstate);
	ck_assert_msg(st != NULL && strcmp(st, sqlstate) == 0, "SQLSTATE %s, expected %s: %s",
		      st != NULL ? st : "(none)", sqlstate, PQresultErrorMessage(res));
}

/* PQprepare(c, name, sql) with nparams untyped parameters; ck_abort unless it succeeds. */
static void
prepare_ok(PGconn *c, const char *name, const char *sql, int nparams)
{
	PGresult *res = PQprepare(c, name, sql, nparams, NULL);

	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "PREPARE \"%s\": %s", name,
		      PQresultErrorMessage(res));
	PQclear(res);
}

/*
 * PQexecPrepared(c, name) with param (NULL: no parameter): a row whose
 * first value is want, or, want NULL, a command; ck_abort otherwise.
 */
static void
exec_prepared_ok(PGconn *c, const char *name, const char *param, const char *want)
{
	PGresult *res = PQexecPrepared(c, name, param ? 1 : 0, &param, NULL, NULL, 0);

	ck_assert_msg(PQresultStatus(res) == (want ? PGRES_TUPLES_OK : PGRES_COMMAND_OK),
		      "EXECUTE \"%s\": %s", name, PQresultErrorMessage(res));
	if (want)
		ck_assert_str_eq(PQgetvalue(res, 0, 0), want);
	PQclear(res);
}

/* PQexecPrepared(c, name) with param (NULL: none) fails with sqlstate. */
static void
exec_prepared_error(PGconn *c, const char *name, const char *param, const char *sqlstate)
{
	PGresult *res = PQexecPrepared(c, name, param ? 1 : 0, &param, NULL, NULL, 0);

	assert_sqlstate(res, sqlstate);
	PQclear(res);
}

/* ---- transaction mode: a server per transaction ------------------------- */

static void
setup_transaction(void)
{
	setup_pg("transaction");
	it_pg_exec("CREATE TABLE rec_t (x int); GRANT ALL ON rec_t TO app");
	/* above rollback_timeout (5000): recovery tests wait for a server that is drained */
	start_pgdog("pooler_mode = transaction\ncheckout_timeout = 8000");
}

/* Two connected clients take turns on the one server. */
START_TEST(test_txn_alternate)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	char pa[32], pb[32], q[64], want[32];

	for (int i = 0; i < 10; i++) {
		snprintf(q, sizeof(q), "SELECT 'a%d'", i);
		snprintf(want, sizeof(want), "a%d", i);
		ck_assert_str_eq(it_value(a, q), want);
		snprintf(q, sizeof(q), "SELECT 'b%d'", i);
		snprintf(want, sizeof(want), "b%d", i);
		ck_assert_str_eq(it_value(b, q), want);
	}
	backend_pid(a, pa, sizeof(pa));
	backend_pid(b, pb, sizeof(pb));
	ck_assert_msg(strcmp(pa, pb) == 0,
		      "pool_size 1: client A ran on backend %s, client B on backend %s", pa, pb);
	ck_assert_int_eq(PQtransactionStatus(a), PQTRANS_IDLE);
	ck_assert_int_eq(PQtransactionStatus(b), PQTRANS_IDLE);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* Connected clients that are not in a transaction hold no server. */
START_TEST(test_txn_idle_clients_hold_no_server)
{
	PGconn *mon = it_pg_connect();
	PGconn *c[10];
	char first[32], pid[32];
	int n;

	for (int i = 0; i < 10; i++)
		c[i] = it_connect(APP);
	ck_assert_str_eq(it_pool_field("app", "app", "sv_active"), "0");
	n = it_pg_count_backends(mon, "app");
	ck_assert_msg(n <= 1, "10 idle clients, pool_size 1: PostgreSQL has %d backends of app", n);
	/* each runs a query in turn on the one server and gives it back */
	backend_pid(c[0], first, sizeof(first));
	for (int i = 1; i < 10; i++) {
		backend_pid(c[i], pid, sizeof(pid));
		ck_assert_msg(strcmp(pid, first) == 0,
			      "client %d ran on backend %s, client 0 on %s", i, pid, first);
	}
	ck_assert_str_eq(it_pool_field("app", "app", "sv_active"), "0");
	ck_assert_str_eq(it_pool_field("app", "app", "sv_idle"), "1");
	n = it_pg_count_backends(mon, "app");
	ck_assert_msg(n == 1, "pool_size 1: PostgreSQL has %d backends of app", n);
	for (int i = 0; i < 10; i++)
		PQfinish(c[i]);
	PQfinish(mon);
}
END_TEST

/* An open transaction keeps the server: the other client waits for COMMIT. */
START_TEST(test_txn_begin_holds_server)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	char pa[32];

	exec_ok(a, "BEGIN");
	backend_pid(a, pa, sizeof(pa));
	ck_assert_int_eq(PQsendQuery(b, "SELECT pg_backend_pid()"), 1);
	ck_assert_msg(it_busy_for(b, 300),
		      "B's query completed while A's transaction held the only server");
	/* A's transaction goes on, on the same server */
	ck_assert_str_eq(it_value(a, "SELECT pg_backend_pid()"), pa);
	ck_assert_int_eq(PQtransactionStatus(a), PQTRANS_INTRANS);
	ck_assert_msg(it_busy_for(b, 100), "B's query completed before A committed");
	exec_ok(a, "COMMIT");
	ck_assert_str_eq(it_value_within(b, 2000, "B after A's COMMIT"), pa);
	ck_assert_str_eq(it_value(a, "SELECT 'a again'"), "a again");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* The extended protocol on two clients taking turns. */
START_TEST(test_txn_extended_alternate)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	char pa[32], pb[32];

	for (int i = 0; i < 50; i++) {
		PGconn *c = (i % 2 == 0) ? a : b;
		const char *tag = (i % 2 == 0) ? "a" : "b";
		char v[16], want[16];
		const char *params[2] = { v, tag };
		PGresult *res;

		snprintf(v, sizeof(v), "%d", i);
		snprintf(want, sizeof(want), "%d", i * 2);
		res = PQexecParams(c, "SELECT $1::int * 2, $2::text", 2, NULL, params, NULL, NULL,
				   0);
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "#%d (%s): %s", i, tag,
			      PQerrorMessage(c));
		ck_assert_int_eq(PQntuples(res), 1);
		ck_assert_str_eq(PQgetvalue(res, 0, 0), want);
		ck_assert_str_eq(PQgetvalue(res, 0, 1), tag);
		PQclear(res);
	}
	/* an error in the extended protocol, then both go on */
	{
		const char *zero[1] = { "0" };
		PGresult *res = PQexecParams(a, "SELECT 1 / $1::int", 1, NULL, zero, NULL, NULL, 0);

		ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
		ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "22012");
		PQclear(res);
	}
	ck_assert_str_eq(it_value(b, "SELECT 'b ok'"), "b ok");
	ck_assert_str_eq(it_value(a, "SELECT 'a ok'"), "a ok");
	backend_pid(a, pa, sizeof(pa));
	backend_pid(b, pb, sizeof(pb));
	ck_assert_str_eq(pa, pb);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* A pipeline of 10 queries that fails in the middle leaves nothing behind. */
START_TEST(test_txn_pipeline_error)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;
	char v[16];

	ck_assert_int_eq(PQenterPipelineMode(a), 1);
	for (int i = 1; i <= 10; i++) {
		const char *p[1] = { v };

		snprintf(v, sizeof(v), "%d", i == 5 ? 0 : i);
		ck_assert_int_eq(PQsendQueryParams(a,
						   i == 5 ? "SELECT 1 / $1::int" : "SELECT $1::int",
						   1, NULL, p, NULL, NULL, 0),
				 1);
	}
	ck_assert_int_eq(PQpipelineSync(a), 1);
	for (int i = 1; i <= 10; i++) {
		res = PQgetResult(a);
		if (i < 5) {
			ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "#%d: %s (%s)", i,
				      PQresultErrorMessage(res), PQresStatus(PQresultStatus(res)));
			snprintf(v, sizeof(v), "%d", i);
			ck_assert_str_eq(PQgetvalue(res, 0, 0), v);
		} else if (i == 5) {
			ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR, "#5: %s",
				      PQresStatus(PQresultStatus(res)));
			ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "22012");
		} else {
			ck_assert_msg(PQresultStatus(res) == PGRES_PIPELINE_ABORTED, "#%d: %s", i,
				      PQresStatus(PQresultStatus(res)));
		}
		PQclear(res);
		ck_assert_ptr_null(PQgetResult(a));
	}
	res = PQgetResult(a);
	ck_assert_int_eq(PQresultStatus(res), PGRES_PIPELINE_SYNC);
	PQclear(res);
	ck_assert_int_eq(PQexitPipelineMode(a), 1);
	ck_assert_int_eq(PQtransactionStatus(a), PQTRANS_IDLE);

	/* the other client, then A again: each gets its own answer and nothing else */
	ck_assert_str_eq(it_value(b, "SELECT 'b after'"), "b after");
	ck_assert_str_eq(it_value(a, "SELECT 'a after'"), "a after");
	res = it_exec_ok(b, "SELECT generate_series(1, 3)");
	ck_assert_int_eq(PQntuples(res), 3);
	PQclear(res);
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_stat_activity WHERE "
				     "pid = pg_backend_pid() AND state LIKE 'idle in%'"),
			 "0");

	/* a second pipeline, all good, one Sync per query */
	ck_assert_int_eq(PQenterPipelineMode(a), 1);
	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(PQsendQueryParams(a, "SELECT 'p'", 0, NULL, NULL, NULL, NULL, 0),
				 1);
		ck_assert_int_eq(PQpipelineSync(a), 1);
	}
	for (int i = 0; i < 10; i++) {
		res = PQgetResult(a);
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "#%d: %s", i,
			      PQresultErrorMessage(res));
		ck_assert_str_eq(PQgetvalue(res, 0, 0), "p");
		PQclear(res);
		ck_assert_ptr_null(PQgetResult(a));
		res = PQgetResult(a);
		ck_assert_int_eq(PQresultStatus(res), PGRES_PIPELINE_SYNC);
		PQclear(res);
	}
	ck_assert_int_eq(PQexitPipelineMode(a), 1);
	ck_assert_str_eq(it_value(b, "SELECT 'b last'"), "b last");
	ck_assert_str_eq(it_value(a, "SELECT 'a last'"), "a last");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * Named statements in the middle of a pipeline, behind an unnamed query's
 * Execute: each Bind and Describe of a client's name still reaches the server
 * as pgdog's name (the rest of the pipeline moves as it is).
 */
START_TEST(test_txn_pipeline_named)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;
	const char *p[1] = { "7" };

	res = PQprepare(a, "s1", "SELECT $1::int", 1, NULL);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	ck_assert_str_eq(it_value(b, "SELECT 'b'"), "b");
	ck_assert_int_eq(PQenterPipelineMode(a), 1);
	ck_assert_int_eq(PQsendQueryParams(a, "SELECT 'u'", 0, NULL, NULL, NULL, NULL, 0), 1);
	ck_assert_int_eq(PQsendQueryPrepared(a, "s1", 1, p, NULL, NULL, 0), 1);
	ck_assert_int_eq(PQsendQueryParams(a, "SELECT 'v'", 0, NULL, NULL, NULL, NULL, 0), 1);
	ck_assert_int_eq(PQsendDescribePrepared(a, "s1"), 1);
	ck_assert_int_eq(PQsendQueryPrepared(a, "s1", 1, p, NULL, NULL, 0), 1);
	ck_assert_int_eq(PQpipelineSync(a), 1);
	for (int i = 0; i < 5; i++) {
		static const char *const want[5] = { "u", "7", "v", NULL, "7" };

		res = PQgetResult(a);
		if (want[i]) {
			ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "#%d: %s", i,
				      PQresultErrorMessage(res));
			ck_assert_str_eq(PQgetvalue(res, 0, 0), want[i]);
		} else {
			ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "#%d: %s", i,
				      PQresultErrorMessage(res));
			ck_assert_int_eq(PQnparams(res), 1);
			ck_assert_int_eq(PQnfields(res), 1);
		}
		PQclear(res);
		ck_assert_ptr_null(PQgetResult(a));
	}
	res = PQgetResult(a);
	ck_assert_int_eq(PQresultStatus(res), PGRES_PIPELINE_SYNC);
	PQclear(res);
	ck_assert_int_eq(PQexitPipelineMode(a), 1);
	ck_assert_str_eq(it_value(a, "SELECT 'a last'"), "a last");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * The unnamed statement prepared in one request and run in a later one
 * (PQprepare, then PQexecPrepared): another client's unnamed statement or
 * query may have replaced it on the server in between, and A must still run
 * its own; a client's own simple query drops it, as in PostgreSQL.
 */
START_TEST(test_txn_unnamed_across_requests)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;

	for (int round = 0; round < 3; round++) {
		prepare_ok(a, "", "SELECT 'a:' || $1::text", 1);
		prepare_ok(b, "", "SELECT 'b:' || $1::text", 1);
		exec_prepared_ok(a, "", "5", "a:5");
		ck_assert_str_eq(it_value(b, "SELECT 'b simple'"), "b simple");
		exec_prepared_error(b, "", "5", "26000");
		res = PQdescribePrepared(a, "");
		ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s",
			      PQresultErrorMessage(res));
		ck_assert_int_eq(PQnparams(res), 1);
		PQclear(res);
		exec_prepared_ok(a, "", "6", "a:6");
	}
	/* pgdog's own SET for B (its own settings) drops A's unnamed statement on the server */
	exec_ok(b, "SET application_name = 'b_unnamed'");
	prepare_ok(b, "b_named", "SELECT 'b named'", 0);
	prepare_ok(a, "", "SELECT 'a:' || $1::text", 1);
	exec_prepared_ok(b, "b_named", NULL, "b named");
	exec_prepared_ok(a, "", "7", "a:7");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * One pipelined request: a Bind of an unknown statement (26000), then a
 * Parse of the unnamed statement that PostgreSQL skips for that error.
 */
static void
pipeline_skipped_parse(PGconn *a)
{
	const char *param = "9";

	ck_assert_int_eq(PQenterPipelineMode(a), 1);
	ck_assert_int_eq(PQsendQueryPrepared(a, "no_such_statement", 1, &param, NULL, NULL, 0), 1);
	ck_assert_int_eq(PQsendPrepare(a, "", "SELECT 'skipped'", 0, NULL), 1);
	ck_assert_int_eq(PQpipelineSync(a), 1);
	it_pipeline_next(a, PGRES_FATAL_ERROR, "26000");
	it_pipeline_next(a, PGRES_PIPELINE_ABORTED, NULL);
	it_pipeline_next(a, PGRES_PIPELINE_SYNC, NULL);
	ck_assert_int_eq(PQexitPipelineMode(a), 1);
}

/*
 * A Parse of the unnamed statement that PostgreSQL refuses leaves the client
 * no unnamed statement (PostgreSQL drops the one before it first): its next
 * Bind gets 26000 wherever it runs, also after another client's query, and
 * the refused text is not prepared again. One skipped after an error earlier
 * in its request leaves the statement before it, as on PostgreSQL, and that
 * one is what pgdog prepares again.
 */
START_TEST(test_txn_unnamed_failed_parse)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;

	for (int round = 0; round < 3; round++) {
		prepare_ok(a, "", "SELECT 'a:' || $1::text", 1);
		res = PQprepare(a, "", "SELEC 'a refused'", 0, NULL);
		assert_sqlstate(res, "42601");
		PQclear(res);
		if (round > 0)
			ck_assert_str_eq(it_value(b, "SELECT 'b between'"), "b between");
		exec_prepared_error(a, "", "5", "26000");
		prepare_ok(b, "", "SELECT 'b:' || $1::text", 1);
		exec_prepared_error(a, "", "6", "26000");
		exec_prepared_ok(b, "", "7", "b:7");
	}
	/* skipped: the unnamed statement before it runs */
	prepare_ok(a, "", "SELECT 'a:' || $1::text", 1);
	pipeline_skipped_parse(a);
	exec_prepared_ok(a, "", "8", "a:8");
	/* and is prepared again after another client's query, not the skipped one */
	ck_assert_str_eq(it_value(b, "SELECT 'b after'"), "b after");
	exec_prepared_ok(a, "", "9", "a:9");
	/*
	 * In a block the error aborted: the statement is still on the server,
	 * not prepared again (a Parse would get 25P02); PostgreSQL judges the
	 * Bind (one parameter short: 08P01)
	 */
	exec_ok(a, "BEGIN");
	prepare_ok(a, "", "SELECT 'a:' || $1::text", 1); /* BEGIN, a Query, dropped it */
	pipeline_skipped_parse(a);
	exec_prepared_error(a, "", NULL, "08P01");
	exec_ok(a, "ROLLBACK");
	exec_prepared_error(a, "", "10", "26000"); /* ROLLBACK, a Query, dropped it */
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * Several Parses of the unnamed statement skipped after an error in one
 * request (first_ok: one that runs before the error): the statement before
 * them stays, on PostgreSQL and wherever pgdog prepares it again. (pgdog
 * kept only the one before the last Parse: 26000 after two skipped.)
 */
static void
pipeline_skipped_parses(PGconn *a, int skipped, bool first_ok)
{
	const char *param = "9";

	ck_assert_int_eq(PQenterPipelineMode(a), 1);
	if (first_ok)
		ck_assert_int_eq(PQsendPrepare(a, "", "SELECT 'ok:' || $1::text", 1, NULL), 1);
	ck_assert_int_eq(PQsendQueryPrepared(a, "no_such_statement", 1, &param, NULL, NULL, 0), 1);
	for (int i = 0; i < skipped; i++)
		ck_assert_int_eq(
			PQsendPrepare(a, "", i % 2 ? "SELECT 'skipped'" : "SELECT 1", 0, NULL), 1);
	ck_assert_int_eq(PQpipelineSync(a), 1);
	if (first_ok)
		it_pipeline_next(a, PGRES_COMMAND_OK, NULL);
	it_pipeline_next(a, PGRES_FATAL_ERROR, "26000");
	for (int i = 0; i < skipped; i++)
		it_pipeline_next(a, PGRES_PIPELINE_ABORTED, NULL);
	it_pipeline_next(a, PGRES_PIPELINE_SYNC, NULL);
	ck_assert_int_eq(PQexitPipelineMode(a), 1);
}

START_TEST(test_txn_unnamed_skipped_many)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);

	for (int skipped = 2; skipped <= 4; skipped++) {
		prepare_ok(a, "", "SELECT 'a:' || $1::text", 1);
		pipeline_skipped_parses(a, skipped, false);
		exec_prepared_ok(a, "", "1", "a:1");
		/* prepared again after another client's query replaced it */
		ck_assert_str_eq(it_value(b, "SELECT 'b'"), "b");
		exec_prepared_ok(a, "", "2", "a:2");
		/* the one that ran before the error is the unnamed statement */
		pipeline_skipped_parses(a, skipped, true);
		exec_prepared_ok(a, "", "3", "ok:3");
		ck_assert_str_eq(it_value(b, "SELECT 'b'"), "b");
		exec_prepared_ok(a, "", "4", "ok:4");
	}
	/* none before them: 26000, as from PostgreSQL */
	ck_assert_str_eq(it_value(a, "SELECT 'drops it'"), "drops it");
	pipeline_skipped_parses(a, 3, false);
	exec_prepared_error(a, "", "5", "26000");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * prepared_statements = extended: SQL DEALLOCATE of a statement the client
 * prepared with a Parse (psycopg 3 sends DEALLOCATE _pg3_N when its cache is
 * full, as a Query or through the extended protocol) forgets it, as
 * PostgreSQL does; B's statement of the same text stays.
 */
START_TEST(test_txn_deallocate_protocol_statement)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;

	for (int round = 0; round < 2; round++) {
		prepare_ok(a, "d1", "SELECT 'd:' || $1::text", 1);
		prepare_ok(a, "d2", "SELECT 'd:' || $1::text", 1);
		prepare_ok(b, "d1", "SELECT 'd:' || $1::text", 1);
		exec_ok(a, "DEALLOCATE d1");
		exec_prepared_error(a, "d1", "1", "26000");
		exec_prepared_ok(b, "d1", "2", "d:2");
		exec_prepared_ok(a, "d2", "3", "d:3");
		/* through the extended protocol */
		res = PQexecParams(a, "DEALLOCATE d2", 0, NULL, NULL, NULL, NULL, 0);
		ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s",
			      PQresultErrorMessage(res));
		ck_assert_str_eq(PQcmdStatus(res), "DEALLOCATE");
		PQclear(res);
		exec_prepared_error(a, "d2", "4", "26000");
		/* in a transaction block; then an unknown name, as PostgreSQL says it */
		prepare_ok(a, "d3", "SELECT 'd:' || $1::text", 1);
		exec_ok(a, "BEGIN");
		exec_prepared_ok(a, "d3", "5", "d:5");
		exec_ok(a, "DEALLOCATE d3");
		exec_ok(a, "COMMIT");
		exec_prepared_error(a, "d3", "6", "26000");
		it_exec_error(a, "DEALLOCATE d3", "26000");
		exec_prepared_ok(b, "d1", "7", "d:7");
		exec_ok(b, "DEALLOCATE d1");
	}
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* A client that leaves inside a transaction: rolled back, the server is reused. */
START_TEST(test_txn_disconnect_in_transaction)
{
	PGconn *a = it_connect(APP), *b;
	char pa[32], pb[32];
	long long t0, took;

	exec_ok(a, "BEGIN");
	exec_ok(a, "INSERT INTO rec_t VALUES (1)");
	backend_pid(a, pa, sizeof(pa));
	PQfinish(a);
	t0 = it_now_ms();
	b = it_connect(APP);
	backend_pid(b, pb, sizeof(pb));
	took = it_now_ms() - t0;
	ck_assert_msg(strcmp(pa, pb) == 0,
		      "the server of a client that left mid-transaction was not reused "
		      "(backend %s, then %s)",
		      pa, pb);
	ck_assert_msg(took <= 2000, "the next client got the server after %lld ms", took);
	ck_assert_int_eq(PQtransactionStatus(b), PQTRANS_IDLE);
	/* inside A's transaction, B would see its row */
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM rec_t"), "0");
	ck_assert_str_eq(it_pg_value("SELECT count(*) FROM rec_t"), "0");
	PQfinish(b);
}
END_TEST

/*
 * SHOW SERVERS tx_status of a server pgdog rolled back after its client left
 * mid-transaction: 'I', as the server is (it said 'T' until the next client).
 */
START_TEST(test_txn_disconnect_tx_status)
{
	PGconn *a = it_connect(APP), *adm = it_connect(ADMIN);
	char pa[32];
	long long t0;

	exec_ok(a, "BEGIN");
	backend_pid(a, pa, sizeof(pa));
	ck_assert_str_eq(
		it_show_value(adm, "SHOW SERVERS", "remote_pid", pa, NULL, NULL, "tx_status"), "T");
	PQfinish(a);
	t0 = it_now_ms();
	while (strcmp(it_show_value(adm, "SHOW SERVERS", "remote_pid", pa, NULL, NULL, "state"),
		      "idle") != 0) {
		ck_assert_msg(it_now_ms() - t0 < 3000, "server still not idle after 3 s");
		it_sleep_ms(20);
	}
	ck_assert_str_eq(
		it_show_value(adm, "SHOW SERVERS", "remote_pid", pa, NULL, NULL, "tx_status"), "I");
	PQfinish(adm);
}
END_TEST

/*
 * A new server connection shows nothing of the last one in its row: a
 * connection closed in a transaction left tx_status T (and its last
 * ReadyForQuery time) to the next one, idle and new.
 */
START_TEST(test_txn_new_server_row)
{
	PGconn *a = it_connect(APP), *b, *adm = it_connect(ADMIN);
	char pa[32], sql[96];
	PGresult *res;
	long long t0;

	exec_ok(a, "BEGIN");
	backend_pid(a, pa, sizeof(pa));
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%s, 5000)", pa);
	it_pg_exec(sql);
	res = PQexec(a, "SELECT 1");
	PQclear(res);
	PQfinish(a);
	b = it_connect(APP);
	ck_assert_int_eq(PQsendQuery(b, "SELECT pg_sleep(0.8)"), 1);
	t0 = it_now_ms();
	for (;;) {
		PGresult *r = PQexec(adm, "SHOW SERVERS");
		int st = PQfnumber(r, "state"), tx = PQfnumber(r, "tx_status"),
		    pid = PQfnumber(r, "remote_pid");
		bool seen = false;

		ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
		for (int i = 0; i < PQntuples(r); i++) {
			if (strcmp(PQgetvalue(r, i, st), "active") != 0 ||
			    strcmp(PQgetvalue(r, i, pid), pa) == 0)
				continue;
			ck_assert_str_eq(PQgetvalue(r, i, tx), "I");
			seen = true;
		}
		PQclear(r);
		if (seen)
			break;
		ck_assert_msg(it_now_ms() - t0 < 700, "no active server in SHOW SERVERS");
		it_sleep_ms(20);
	}
	while ((res = PQgetResult(b)) != NULL)
		PQclear(res);
	PQfinish(b);
	PQfinish(adm);
}
END_TEST

/* How many lines of PostgreSQL's log contain text. */
static int
pg_log_count(const char *text)
{
	char path[IT_PATH_MAX + 8], line[4096];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "%s/log", g_it.pg_dir);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		n += strstr(line, text) != NULL;
	fclose(f);
	return n;
}

/*
 * A client that leaves while its query runs: once the reply is drained,
 * pgdog rolls back only a block that is open, so PostgreSQL does not warn
 * "there is no transaction in progress" for every such client; a block that
 * is open is rolled back.
 */
START_TEST(test_txn_left_mid_query_rollback)
{
	const char *warn = "there is no transaction in progress";
	int before = pg_log_count(warn);
	PGconn *a = it_connect(APP), *b;

	it_pg_exec("CREATE TABLE IF NOT EXISTS left_mid (x int); GRANT ALL ON left_mid TO app");
	ck_assert_int_eq(PQsendQuery(a, "SELECT pg_sleep(0.3)"), 1);
	ck_assert_int_eq(PQflush(a), 0);
	it_sleep_ms(50);
	PQfinish(a);
	a = it_connect(APP);
	exec_ok(a, "BEGIN");
	exec_ok(a, "INSERT INTO left_mid VALUES (1)");
	ck_assert_int_eq(PQsendQuery(a, "SELECT pg_sleep(0.3)"), 1);
	ck_assert_int_eq(PQflush(a), 0);
	it_sleep_ms(50);
	PQfinish(a);
	b = it_connect(APP);
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM left_mid"), "0");
	ck_assert_int_eq(PQtransactionStatus(b), PQTRANS_IDLE);
	PQfinish(b);
	it_sleep_ms(200); /* the server's log is written a little later */
	ck_assert_int_eq(pg_log_count(warn), before);
}
END_TEST

/*
 * The unnamed statement runs again when it is bound again, and what it makes
 * pins again. An SQL PREPARE in it, run again after a DISCARD ALL (a named
 * statement's, which leaves the unnamed one in place), left its statement on
 * a server that went back to the pool; and a Parse of the unnamed statement
 * that PostgreSQL skipped after an error took away the pins of the one still
 * in place there, so that its advisory lock, taken again, went back to the
 * pool too (pgdiff, seed 1795493961).
 */
START_TEST(test_txn_unnamed_pins_kept)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	static const char locks[] = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
				    "AND pid = pg_backend_pid()";
	PGresult *res;
	char pa[32];

	backend_pid(a, pa, sizeof(pa));
	prepare_ok(a, "", "PREPARE tu_q AS SELECT 1", 0);
	exec_prepared_ok(a, "", NULL, NULL);
	it_server_held(b, "A prepared tu_q");
	for (int i = 0; i < 2; i++) {
		prepare_ok(a, "tu_discard", "DISCARD ALL", 0);
		exec_prepared_ok(a, "tu_discard", NULL, NULL);
		it_server_gone(b, pa, "B after A's DISCARD ALL");
		ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_prepared_statements"), "0");
		if (i == 0) {
			exec_prepared_ok(a, "", NULL, NULL); /* PREPARE tu_q again */
			it_server_held(b,
				       "A prepared tu_q again (its unnamed statement run again)");
		}
	}

	res = PQexecParams(a, "SELECT pg_advisory_lock(49)", 0, NULL, NULL, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(a));
	PQclear(res);
	it_server_held(b, "A holds a lock");
	prepare_ok(a, "tu_unlock", "SELECT pg_advisory_unlock(49)", 0);
	exec_prepared_ok(a, "tu_unlock", NULL, "t");
	it_server_gone(b, pa, "B after A's unlock");
	/* an error, then a Parse of the unnamed statement that PostgreSQL skips */
	prepare_ok(a, "tu_fail", "SELECT 1/0", 0);
	ck_assert_int_eq(PQenterPipelineMode(a), 1);
	ck_assert_int_eq(PQsendQueryPrepared(a, "tu_fail", 0, NULL, NULL, NULL, 0), 1);
	ck_assert_int_eq(PQsendPrepare(a, "", "SELECT 2", 0, NULL), 1);
	ck_assert_int_eq(PQpipelineSync(a), 1);
	res = PQgetResult(a);
	assert_sqlstate(res, "22012");
	PQclear(res);
	ck_assert(PQgetResult(a) == NULL);
	res = PQgetResult(a);
	ck_assert_int_eq(PQresultStatus(res), PGRES_PIPELINE_ABORTED);
	PQclear(res);
	ck_assert(PQgetResult(a) == NULL);
	res = PQgetResult(a);
	ck_assert_int_eq(PQresultStatus(res), PGRES_PIPELINE_SYNC);
	PQclear(res);
	ck_assert_int_eq(PQexitPipelineMode(a), 1);
	/* the unnamed statement is still the lock's */
	exec_prepared_ok(a, "", NULL, "");
	it_server_held(b, "A holds the lock again (its unnamed statement, after a skipped Parse)");
	ck_assert_str_eq(it_value(a, locks), "1");
	exec_prepared_ok(a, "tu_unlock", NULL, "t");
	it_server_gone(b, pa, "B after A's second unlock");
	ck_assert_str_eq(it_value(b, locks), "0");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * A client that leaves while its query streams rows: the query is cancelled
 * (test_txn_left_mid_result_aborts), the rest drained, and the server
 * reused. (1,000,000 rows take PostgreSQL about 0.3 s here, and the client
 * leaves after 0.1 s. With 5,000,000, before the cancel, what was left once
 * took more than rollback_timeout to drain in CI, on a loaded machine.)
 */
START_TEST(test_txn_disconnect_mid_query)
{
	PGconn *a = it_connect(APP), *b;
	char pa[32], pb[32];
	long long t0, took;
	PGresult *res;

	backend_pid(a, pa, sizeof(pa));
	ck_assert_int_eq(PQsendQuery(a, "SELECT generate_series(1, 1000000)"), 1);
	ck_assert_int_eq(PQflush(a), 0);
	it_sleep_ms(100);
	/* rows have come, the result has not ended */
	ck_assert_int_eq(PQconsumeInput(a), 1);
	ck_assert_msg(PQisBusy(a), "the result ended before the client left: the test proves "
				   "nothing");
	PQfinish(a);
	t0 = it_now_ms();
	b = it_connect(APP);
	backend_pid(b, pb, sizeof(pb));
	took = it_now_ms() - t0;
	ck_assert_msg(strcmp(pa, pb) == 0,
		      "the server of a client that left mid-query was not reused "
		      "(backend %s, then %s)",
		      pa, pb);
	ck_assert_msg(took <= 6000,
		      "the next client got the server after %lld ms (rollback_timeout 5000)", took);
	ck_assert_str_eq(it_value(b, "SELECT 'fresh'"), "fresh");
	res = it_exec_ok(b, "SELECT generate_series(1, 3)");
	ck_assert_int_eq(PQntuples(res), 3);
	ck_assert_str_eq(PQgetvalue(res, 2, 0), "3");
	PQclear(res);
	ck_assert_int_eq(PQtransactionStatus(b), PQTRANS_IDLE);
	PQfinish(b);
}
END_TEST

/*
 * With prepared_statements = extended an SQL PREPARE pins the server, and a
 * DEALLOCATE that leaves none gives it back (the server is asked, as after a
 * RESET ROLE). Before, it stayed with the client until DISCARD ALL or its end.
 */
START_TEST(test_txn_deallocate_unpins)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;
	char pa[32];

	backend_pid(a, pa, sizeof(pa));
	exec_ok(a, "PREPARE dq1 AS SELECT 1");
	exec_ok(a, "PREPARE dq2 AS SELECT 2");
	it_server_held(b, "A prepared dq1 and dq2");
	exec_ok(a, "DEALLOCATE dq1");
	it_server_held(b, "A deallocated dq1, not dq2");
	ck_assert_str_eq(it_value(a, "EXECUTE dq2"), "2");
	res = PQexecParams(a, "DEALLOCATE dq2", 0, NULL, NULL, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(a));
	PQclear(res);
	it_server_gone(b, pa, "B after A's last DEALLOCATE (extended protocol)");
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_prepared_statements WHERE from_sql"),
			 "0");
	exec_ok(a, "PREPARE dq3 AS SELECT 3");
	it_server_held(b, "A prepared dq3");
	exec_ok(a, "BEGIN; DEALLOCATE dq3; COMMIT");
	it_server_gone(b, pa, "B after A's DEALLOCATE in a transaction block");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * An SQL PREPARE that comes while pgdog asks the client's server what still
 * pins it (after a temporary table dropped ON COMMIT) is not released by
 * that answer, which comes from before it. (It was: the statement went back
 * to the pool with the server. pgdiff, seed 1795507586.)
 */
START_TEST(test_txn_prepare_during_probe)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	char pa[32], q[64];

	backend_pid(a, pa, sizeof(pa));
	for (int i = 0; i < 5; i++) {
		exec_ok(a, "CREATE TEMP TABLE lp_t (x int) ON COMMIT DROP");
		snprintf(q, sizeof(q), "PREPARE lp_%d AS SELECT %d", i, i);
		exec_ok(a, q);
		it_server_held(b, "A prepared a statement while its server was asked");
		snprintf(q, sizeof(q), "DEALLOCATE lp_%d", i);
		exec_ok(a, q);
		it_server_gone(b, pa, "B after A's DEALLOCATE");
	}
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * A client leaves while the rows of its autocommitted statement stream (a
 * query's, then a COPY TO STDOUT's). PostgreSQL, failing to write the rest,
 * would end the statement and abort its transaction: pgdog cancels it, so
 * that what it wrote does not commit, and the server is reused. (pgdog
 * drained the rest, and the 300,000 rows the function wrote committed.)
 */
START_TEST(test_txn_left_mid_result_aborts)
{
	static const char *const parts[] = { "SELECT lm_f(g) FROM lm_src",
					     "COPY (SELECT lm_f(g) FROM lm_src) TO STDOUT" };
	PGconn *mon = it_pg_connect();

	it_pg_exec("CREATE TABLE lm_src AS SELECT g FROM generate_series(1, 300000) g;"
		   "CREATE TABLE lm_log (x int);"
		   "CREATE FUNCTION lm_f(int) RETURNS int LANGUAGE sql VOLATILE AS "
		   "'INSERT INTO lm_log VALUES ($1) RETURNING $1';"
		   "GRANT ALL ON lm_src, lm_log TO app");
	for (int part = 0; part < 2; part++) {
		PGconn *a = it_connect(APP), *b;
		char pa[32], pb[32], q[160];
		PGresult *res;
		char *buf;

		backend_pid(a, pa, sizeof(pa));
		if (part == 0) {
			ck_assert_int_eq(PQsendQuery(a, parts[part]), 1);
			ck_assert_int_eq(PQsetSingleRowMode(a), 1);
			for (int i = 0; i < 10; i++) {
				res = PQgetResult(a);
				ck_assert_int_eq(PQresultStatus(res), PGRES_SINGLE_TUPLE);
				PQclear(res);
			}
		} else {
			res = PQexec(a, parts[part]);
			ck_assert_int_eq(PQresultStatus(res), PGRES_COPY_OUT);
			PQclear(res);
			for (int i = 0; i < 10; i++) {
				ck_assert_int_gt(PQgetCopyData(a, &buf, 0), 0);
				PQfreemem(buf);
			}
		}
		snprintf(q, sizeof(q),
			 "SELECT state FROM pg_stat_activity WHERE pid = %s AND query = '%s'", pa,
			 parts[part]);
		ck_assert_msg(strcmp(it_value(mon, q), "active") == 0,
			      "%s ended before the client left: the test proves nothing",
			      parts[part]);
		PQfinish(a);
		b = it_connect(APP);
		backend_pid(b, pb, sizeof(pb));
		ck_assert_msg(strcmp(pa, pb) == 0,
			      "%s: the server was not reused (backend %s, then %s)", parts[part],
			      pa, pb);
		ck_assert_msg(
			strcmp(it_value(b, "SELECT count(*) FROM lm_log"), "0") == 0,
			"%s: what the statement of a client that left wrote committed (%s rows)",
			parts[part], it_value(b, "SELECT count(*) FROM lm_log"));
		ck_assert_int_eq(PQtransactionStatus(b), PQTRANS_IDLE);
		PQfinish(b);
	}
	PQfinish(mon);
}
END_TEST

/* A client waiting for a server is cancelled: 57014 at once, and it goes on later. */
START_TEST(test_txn_cancel_waiting)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGcancel *cancel;
	PGresult *res;
	char err[256], pa[32];
	long long t0, took;

	exec_ok(a, "BEGIN");
	backend_pid(a, pa, sizeof(pa));
	t0 = it_now_ms();
	ck_assert_int_eq(PQsendQuery(b, "SELECT 'b'"), 1);
	ck_assert_msg(it_busy_for(b, 150), "B's query completed while A held the only server");
	cancel = PQgetCancel(b);
	ck_assert_ptr_nonnull(cancel);
	ck_assert_msg(PQcancel(cancel, err, sizeof(err)) == 1, "PQcancel: %s", err);
	PQfreeCancel(cancel);
	res = it_result_within(b, (int)(t0 + 2000 - it_now_ms()));
	took = it_now_ms() - t0;
	ck_assert_msg(res != NULL, "B was cancelled while waiting for a server: no answer in 2 s");
	assert_sqlstate(res, "57014");
	PQclear(res);
	it_drain(b);
	ck_assert_msg(took < 2000, "cancel answered after %lld ms", took);
	ck_assert_int_eq(PQtransactionStatus(b), PQTRANS_IDLE);
	/* A's transaction was not touched */
	ck_assert_int_eq(PQtransactionStatus(a), PQTRANS_INTRANS);
	ck_assert_str_eq(it_value(a, "SELECT pg_backend_pid()"), pa);
	exec_ok(a, "COMMIT");
	ck_assert_str_eq(it_value(b, "SELECT 'b later'"), "b later");
	ck_assert_str_eq(it_value(b, "SELECT pg_backend_pid()"), pa);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* A cancel of a running query reaches PostgreSQL; the client goes on. */
START_TEST(test_txn_cancel_running)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGcancel *cancel;
	PGresult *res;
	char err[256];
	long long t0;

	t0 = it_now_ms();
	ck_assert_int_eq(PQsendQuery(a, "SELECT pg_sleep(10)"), 1);
	ck_assert(it_busy_for(a, 300));
	cancel = PQgetCancel(a);
	ck_assert_ptr_nonnull(cancel);
	ck_assert_msg(PQcancel(cancel, err, sizeof(err)) == 1, "PQcancel: %s", err);
	PQfreeCancel(cancel);
	res = it_result_within(a, 3000);
	ck_assert_msg(res != NULL, "pg_sleep(10) still running 3 s after the cancel");
	assert_sqlstate(res, "57014");
	PQclear(res);
	it_drain(a);
	ck_assert_msg(it_now_ms() - t0 < 3000, "cancel took %lld ms", it_now_ms() - t0);
	ck_assert_str_eq(it_value(b, "SELECT 'b'"), "b");
	ck_assert_str_eq(it_value(a, "SELECT 'a'"), "a");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * DEALLOCATE ALL and DISCARD ALL prepared as named statements (psycopg 3
 * with prepare_threshold=0 runs everything so) drop the server's statements
 * when they run, not when they are prepared: pgdog forgets what the server
 * held then, for every client of that server. (It forgot at the Parse and
 * not at the run: the next client's statement got 26000 naming pgdog's
 * statement, or its Parse 42P05.)
 */
START_TEST(test_txn_deallocate_all_named)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP), *c;

	prepare_ok(a, "da", "DEALLOCATE ALL", 0);
	prepare_ok(b, "db", "DEALLOCATE ALL", 0);
	prepare_ok(a, "s", "SELECT 12345", 0);
	exec_prepared_ok(a, "s", NULL, "12345");
	exec_prepared_ok(a, "da", NULL, NULL);
	/* as in PostgreSQL: the client's statements are gone, "da" too */
	exec_prepared_error(a, "s", NULL, "26000");
	exec_prepared_error(a, "da", NULL, "26000");
	c = it_connect(APP);
	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "mine%d", i);
		prepare_ok(c, name, "SELECT 12345", 0);
		exec_prepared_ok(c, name, NULL, "12345");
		exec_prepared_ok(c, name, NULL, "12345");
	}
	exec_prepared_ok(b, "db", NULL, NULL);
	exec_prepared_ok(c, "mine2", NULL, "12345");
	/* DISCARD ALL: settings back to the defaults, statements gone */
	exec_ok(a, "SET work_mem = '64MB'");
	prepare_ok(a, "dd", "DISCARD ALL", 0);
	prepare_ok(a, "t", "SELECT 678", 0);
	exec_prepared_ok(a, "t", NULL, "678");
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), "64MB");
	exec_prepared_ok(a, "dd", NULL, NULL);
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), DEF_WORK_MEM);
	exec_prepared_error(a, "t", NULL, "26000");
	prepare_ok(a, "t", "SELECT 678", 0);
	exec_prepared_ok(a, "t", NULL, "678");
	exec_prepared_ok(c, "mine1", NULL, "12345");
	PQfinish(a);
	PQfinish(b);
	PQfinish(c);
}
END_TEST

/*
 * COPY FROM STDIN through the extended protocol (PQexecParams), as libpq
 * sends it: a Sync right behind the Execute, which PostgreSQL ignores in
 * copy-in mode, and one after CopyDone. The transaction ends at the second:
 * the server goes back to the pool. (pgdog waited for a reply to the first:
 * the client kept the server, and another client waited for
 * checkout_timeout.) A client that leaves in the middle of such a COPY has
 * its server back in the pool at once, not after rollback_timeout.
 */
START_TEST(test_txn_copy_extended)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;
	long long t0;

	for (int i = 0; i < 3; i++) {
		res = PQexecParams(a, "COPY rec_t FROM STDIN", 0, NULL, NULL, NULL, NULL, 0);
		ck_assert_msg(PQresultStatus(res) == PGRES_COPY_IN, "%s",
			      PQresultErrorMessage(res));
		PQclear(res);
		ck_assert_int_eq(PQputCopyData(a, "7\n8\n", 4), 1);
		ck_assert_int_eq(PQputCopyEnd(a, NULL), 1);
		res = PQgetResult(a);
		ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s",
			      PQresultErrorMessage(res));
		ck_assert_str_eq(PQcmdTuples(res), "2");
		PQclear(res);
		it_drain(a);
		ck_assert_int_eq(PQtransactionStatus(a), PQTRANS_IDLE);
		t0 = it_now_ms();
		ck_assert_str_eq(it_value(b, "SELECT count(*) FROM rec_t WHERE x IN (7, 8)"),
				 i == 0 ? "2" : (i == 1 ? "4" : "6"));
		ck_assert_msg(it_now_ms() - t0 < 2000,
			      "the other client waited %lld ms for the server", it_now_ms() - t0);
	}
	/* left in the middle of one */
	res = PQexecParams(a, "COPY rec_t FROM STDIN", 0, NULL, NULL, NULL, NULL, 0);
	ck_assert_int_eq(PQresultStatus(res), PGRES_COPY_IN);
	PQclear(res);
	ck_assert_int_eq(PQputCopyData(a, "9\n", 2), 1);
	ck_assert_int_eq(PQflush(a), 0);
	it_sleep_ms(100);
	PQfinish(a);
	t0 = it_now_ms();
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM rec_t WHERE x = 9"), "0");
	ck_assert_msg(it_now_ms() - t0 < 2000, "the server came back after %lld ms",
		      it_now_ms() - t0);
	exec_ok(b, "DELETE FROM rec_t");
	PQfinish(b);
}
END_TEST

/* ---- messages PostgreSQL skips after an error (raw protocol) -------------- */

static void
setup_skip(void)
{
	setup_pg("skip");
	/* the raw client logs in with a cleartext password */
	/* debug: the log of a failed run shows each link and release */
	/*
	 * checkout_timeout: clients queue behind one server here, and a loaded
	 * CI machine once took over 3 s to answer the COMMIT they waited for
	 * (every waiter got 53300 before it came; the same log replayed with
	 * the backend stopped for 3 s)
	 */
	start_pgdog("pooler_mode = transaction\nauth_type = plain\ncheckout_timeout = 10000\n"
		    "log_level = debug");
}

/* Big-endian 32 bits at p. */
static void
put32(char *p, uint32_t v)
{
	uint32_t be = htonl(v);

	memcpy(p, &be, 4);
}

/* Append message type with body (len bytes) to buf at *n. */
static void
raw_put(char *buf, size_t *n, char type, const char *body, size_t len)
{
	uint32_t l = htonl((uint32_t)(len + 4));

	buf[(*n)++] = type;
	memcpy(buf + *n, &l, 4);
	memcpy(buf + *n + 4, body, len);
	*n += 4 + len;
}

/* Append a Sync. */
static void
raw_sync(char *buf, size_t *n)
{
	raw_put(buf, n, 'S', "", 0);
}

/* Append a simple Query of sql. */
static void
raw_query(char *buf, size_t *n, const char *sql)
{
	raw_put(buf, n, 'Q', sql, strlen(sql) + 1);
}

/* Append a Parse of name with sql, no parameter types. */
static void
raw_parse(char *buf, size_t *n, const char *name, const char *sql)
{
	char body[256];
	size_t a = strlen(name) + 1, b = strlen(sql) + 1;

	memcpy(body, name, a);
	memcpy(body + a, sql, b);
	memset(body + a + b, 0, 2);
	raw_put(buf, n, 'P', body, a + b + 2);
}

/* Append Bind of statement to the unnamed portal (no parameters), Execute, and Sync. */
static void
raw_bind_run(char *buf, size_t *n, const char *stmt)
{
	char body[128];
	size_t a = strlen(stmt) + 1;

	body[0] = '\0';
	memcpy(body + 1, stmt, a);
	memset(body + 1 + a, 0, 6);
	raw_put(buf, n, 'B', body, 1 + a + 6);
	raw_put(buf, n, 'E', "\0\0\0\0", 5);
	raw_sync(buf, n);
}

/*
 * Send buf[0, n) on fd and read replies until `readies` ReadyForQuery:
 * their types in order, a DataRow as D(value), into out.
 */
static void
raw_exchange(int fd, const char *buf, size_t n, int readies, char *out, size_t out_len)
{
	if (n)
		ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
	it_raw_types(fd, readies, IT_RAW_VALUES, out, out_len);
}

/* A new empty table name (x int) that user app may use. */
static void
fresh_table(const char *name)
{
	char sql[256];

	snprintf(sql, sizeof(sql),
		 "DROP TABLE IF EXISTS %s; CREATE TABLE %s (x int); GRANT ALL ON %s TO app", name,
		 name, name);
	it_pg_exec(sql);
}

/* raw_exchange(), then the replies must read want; the buffer is emptied. */
static void
raw_expect(int fd, char *buf, size_t *n, int readies, const char *want)
{
	char got[512];

	raw_exchange(fd, buf, *n, readies, got, sizeof(got));
	*n = 0;
	ck_assert_str_eq(got, want);
}

/* A simple Query alone in its request (sql is short): its replies must read want. */
static void
raw_sql(int fd, const char *sql, const char *want)
{
	char buf[512];
	size_t n = 0;

	raw_query(buf, &n, sql);
	raw_expect(fd, buf, &n, 1, want);
}

/* A raw connection to pgdog, logged in as app. */
static int
raw_app(void)
{
	int fd = it_raw_connect(g_it.port);
	char st[6];

	ck_assert_msg(it_raw_login(fd, "app", "app", "app_pw", st) == 0, "login: %s", st);
	return fd;
}

/*
 * After an error in an extended-protocol request PostgreSQL skips every
 * message up to the next Sync, without replies, simple Queries included.
 * pgdog must neither answer nor act on them (nor wait for replies that do
 * not come): a skipped Close keeps the statement, a skipped Query owes no
 * ReadyForQuery (the server goes back to the pool), a failed Parse leaves
 * its name free. (Each failed before: 26000 for the kept statement, the
 * server held by the idle client until it left, 42P05 for the free name.)
 */
START_TEST(test_txn_skipped_after_error)
{
	int fd = it_raw_connect(g_it.port);
	char buf[1024];
	size_t n = 0;
	PGconn *b;
	char st[6];

	ck_assert_msg(it_raw_login(fd, "app", "app", "app_pw", st) == 0, "login: %s", st);
	/* a Close skipped after an error: the statement stays */
	raw_parse(buf, &n, "c1", "SELECT 5");
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 1, "1 Z");
	raw_parse(buf, &n, "", "selec");
	raw_put(buf, &n, 'C', "Sc1", 4);
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 1, "E Z");
	raw_bind_run(buf, &n, "c1");
	raw_expect(fd, buf, &n, 1, "2 D(5) C Z");
	/* a Query skipped after an error: one ReadyForQuery, and the server is free */
	raw_parse(buf, &n, "", "selec 1");
	raw_put(buf, &n, 'Q', "SELECT 1", 9);
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 1, "E Z");
	b = it_connect(APP);
	ck_assert_str_eq(it_value(b, "SELECT 'b'"), "b");
	PQfinish(b);
	raw_put(buf, &n, 'Q', "SELECT 42", 10);
	raw_expect(fd, buf, &n, 1, "T D(42) C Z");
	/* after the error came back, messages sent alone: no reply until the Sync's */
	raw_put(buf, &n, 'E', "nosuch\0\0\0\0", 11);
	raw_put(buf, &n, 'H', "", 0);
	ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
	n = 0;
	{
		char type, body[256];

		ck_assert_int_ge(it_raw_recv(fd, &type, body, sizeof(body), 5000), 0);
		ck_assert_int_eq(type, 'E');
	}
	raw_put(buf, &n, 'C', "Sc1", 4);
	raw_expect(fd, buf, &n, 0, "");
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 1, "Z");
	raw_bind_run(buf, &n, "c1");
	raw_expect(fd, buf, &n, 1, "2 D(5) C Z");
	/* a name whose Parse failed is free for the next Parse, in the same write */
	raw_parse(buf, &n, "pb", "selec x");
	raw_sync(buf, &n);
	raw_parse(buf, &n, "pb", "SELECT 7");
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 2, "E Z 1 Z");
	raw_bind_run(buf, &n, "pb");
	raw_expect(fd, buf, &n, 1, "2 D(7) C Z");
	/* two Parses of one name in one request: the second fails, as in PostgreSQL */
	raw_parse(buf, &n, "dup", "SELECT 7");
	raw_parse(buf, &n, "dup", "SELECT 7");
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 1, "1 E Z");
	close(fd);
}
END_TEST

/*
 * A Query message whose text lacks its NUL, or has bytes after it, is
 * refused by PostgreSQL (08P01); pgdog must not answer it itself (it
 * answered a DEALLOCATE of a protocol-level statement with success).
 */
START_TEST(test_txn_malformed_query)
{
	int fd = it_raw_connect(g_it.port);
	char buf[256], st[6], type, body[512], code[6];
	size_t n = 0;
	long len;

	ck_assert_msg(it_raw_login(fd, "app", "app", "app_pw", st) == 0, "login: %s", st);
	raw_parse(buf, &n, "m1", "SELECT 3");
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 1, "1 Z");
	for (int k = 0; k < 2; k++) {
		/* no NUL at all; then the text, its NUL and more */
		raw_put(buf, &n, 'Q', k ? "DEALLOCATE m1\0x" : "DEALLOCATE m1", k ? 15 : 13);
		ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
		n = 0;
		len = it_raw_recv(fd, &type, body, sizeof(body), 5000);
		ck_assert_msg(len > 0 && type == 'E', "malformed Query %d: '%c'", k, type);
		ck_assert_str_eq(it_raw_field(body, len, 'C', code, sizeof(code)), "08P01");
		raw_expect(fd, buf, &n, 1, "Z");
		raw_bind_run(buf, &n, "m1");
		raw_expect(fd, buf, &n, 1, "2 D(3) C Z");
	}
	close(fd);
}
END_TEST

/*
 * A client whose next message waits for an answer (here, for the
 * DEALLOCATE ALL of a Query that is still running) and that keeps sending:
 * pgdog stops reading it once 512 KiB are held, as PostgreSQL reads nothing
 * more while it runs a query, so the kernel's buffers fill and the client
 * blocks. (pgdog read on: the client's bytes piled up in its memory without
 * bound.) The client then leaves in the middle of its message: the server
 * is closed, and the pool serves the next client.
 */
START_TEST(test_txn_held_input_bounded)
{
	const size_t body = 64u << 20;
	int fd = it_raw_connect(g_it.port);
	char buf[256], st[6];
	size_t n = 0, sent;
	uint32_t len = htonl((uint32_t)body + 4);
	bool blocked;
	PGconn *c;

	ck_assert_msg(it_raw_login(fd, "app", "app", "app_pw", st) == 0, "login: %s", st);
	raw_query(buf, &n, "SELECT pg_sleep(2.5); DEALLOCATE ALL");
	/* then a Query of 64 MiB, sent as fast as pgdog takes it */
	buf[n] = 'Q';
	memcpy(buf + n + 1, &len, 4);
	ck_assert_int_eq(it_raw_send(fd, buf, n + 5), 0);
	sent = it_raw_send_until_blocked(fd, " ", 1, body, 2000, &blocked);
	it_log_mark("%zu KiB of the 64 MiB Query taken, blocked: %d", sent >> 10, blocked);
	ck_assert_msg(blocked, "pgdog took %zu MiB while the client's next message waited",
		      sent >> 20);
	close(fd);
	c = it_connect(APP);
	ck_assert_int_eq(PQsendQuery(c, "SELECT 'after'"), 1);
	ck_assert_str_eq(it_value_within(c, 5000, "the next client"), "after");
	PQfinish(c);
}
END_TEST

/*
 * A client that sends requests pgdog answers itself (the Close of a
 * statement and a Sync, between transactions: CloseComplete and
 * ReadyForQuery) and reads none of the answers: pgdog reads nothing more
 * once 512 KiB of answers wait, as PostgreSQL, whose writes then block; the
 * kernel's buffers fill and the client blocks. (pgdog read on and piled the
 * answers up in its memory without bound.) Then the client reads them all,
 * and its query runs; no server was needed for any of them.
 */
START_TEST(test_txn_unread_answers_bounded)
{
	static const char req[] = "C\0\0\0\10Ss1\0S\0\0\0\4", ans[] = "3\0\0\0\4Z\0\0\0\5I";
	const size_t rl = sizeof(req) - 1, al = sizeof(ans) - 1;
	int fd = it_raw_connect(g_it.port);
	char buf[256], st[6], type, body[256];
	size_t n = 0;
	long len;

	ck_assert_msg(it_raw_login(fd, "app", "app", "app_pw", st) == 0, "login: %s", st);
	it_raw_flood_unread(fd, req, rl, ans, al, 256u << 20);
	raw_query(buf, &n, "SELECT 'after'");
	ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
	len = it_raw_recv(fd, &type, body, sizeof(body), 5000);
	ck_assert_msg(len >= 0 && type == 'T', "the query after: '%c'", type);
	close(fd);
}
END_TEST

/*
 * Clients that send a request while every server is busy and close their
 * end before one is free: as with PostgreSQL, which reads the end of the
 * input only after what came before it, their whole requests run (they may
 * have shut down only their writing side and still read), in turn, and the
 * client queued behind them is served after them. (pgdog dropped them: a
 * client that half-closed lost its request whenever it had to queue, even
 * for a server being opened.) A client that leaves halfway through a
 * message leaves the queue at once, its request dropped, as PostgreSQL
 * drops an unfinished message.
 */
START_TEST(test_txn_queued_client_left)
{
	static const char ghost[] = "INSERT INTO left_t VALUES (7)";
	PGconn *a = it_connect(APP), *c = it_connect(APP), *d;
	char buf[256], st[6];
	long long end;

	fresh_table("left_t");
	exec_ok(a, "BEGIN");
	exec_ok(a, "SELECT 1"); /* a holds the only server */
	for (int i = 0; i < 5; i++) {
		int fd = it_raw_connect(g_it.port);
		size_t n = 0;

		ck_assert_msg(it_raw_login(fd, "app", "app", "app_pw", st) == 0, "login: %s", st);
		if (i < 4)
			raw_put(buf, &n, 'Q', ghost, sizeof(ghost));
		else
			memcpy(buf, "Q\0\0\0\x40SELECT", n = 11); /* half a message */
		ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
		close(fd);
	}
	ck_assert_int_eq(PQsendQuery(c, "SELECT 'c'"), 1);
	it_sleep_ms(300);
	end = it_now_ms();
	exec_ok(a, "COMMIT");
	it_log_mark("a's COMMIT answered after %lld ms", it_now_ms() - end);
	ck_assert_str_eq(it_value_within(c, 3000, "the client queued behind them"), "c");
	end = it_now_ms() + 3000;
	while (strcmp(it_pg_value("SELECT count(*) FROM left_t"), "4") != 0)
		ck_assert_msg(it_now_ms() < end, "%s of the 4 whole requests ran",
			      it_pg_value("SELECT count(*) FROM left_t"));
	d = it_connect(APP);
	ck_assert_str_eq(it_value(d, "SELECT 'next'"), "next");
	PQfinish(d);
	PQfinish(c);
	PQfinish(a);
}
END_TEST

/*
 * A client whose query needs pgdog's SETs first (another client used the
 * server in between) leaves right after sending it: the server goes back
 * to the pool only after every reply, pgdog's own included. (pgdog forgot
 * its SET's reply: the next client got "RESET" as its answer, or another
 * client's rows.)
 */
START_TEST(test_txn_left_during_set_replay)
{
	static const char set[] = "SET work_mem = '11MB'",
			  leaver[] = "SELECT 'leaver', pg_sleep(0.01)";
	PGconn *c = it_connect(APP);
	char buf[256], st[6];
	int bad = 0;

	for (int i = 0; i < 150; i++) {
		int fd = it_raw_connect(g_it.port);
		size_t n = 0;
		char sql[64], want[32];
		const char *got;

		ck_assert_msg(it_raw_login(fd, "app", "app", "app_pw", st) == 0, "login: %s", st);
		raw_put(buf, &n, 'Q', set, sizeof(set));
		raw_expect(fd, buf, &n, 1, "C Z");
		ck_assert_str_eq(it_value(c, "SELECT 'pre'"),
				 "pre"); /* c's settings on the server */
		raw_put(buf, &n, 'Q', leaver, sizeof(leaver));
		ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
		close(fd);
		snprintf(sql, sizeof(sql), "SELECT 'c %d'", i);
		snprintf(want, sizeof(want), "c %d", i);
		got = it_value(c, sql);
		if (strcmp(got, want) != 0 && bad++ == 0)
			fprintf(stderr, "round %d: got '%s'\n", i, got);
	}
	ck_assert_msg(bad == 0, "%d of 150 answers were not c's own", bad);
	ck_assert_str_eq(it_value(c, "SHOW work_mem"), DEF_WORK_MEM);
	PQfinish(c);
}
END_TEST

/*
 * A message of an invalid type, or a Terminate, sent while the client's
 * query runs: PostgreSQL reads it only after answering the query, so the
 * client gets its rows, then FATAL 08P01 (or the end of the connection).
 * pgdog passed the invalid message on to the server: the backend died of
 * it after its ReadyForQuery, when it was already back in the pool, and
 * the FATAL went to the next client of that server; and on a Terminate
 * it closed at once, the query's rows unsent.
 */
START_TEST(test_txn_end_after_replies)
{
	static const char types[] = { 'x', 'v', 'X' };
	char buf[256], got[256], st[6];

	for (size_t i = 0; i < sizeof(types); i++) {
		int fd = it_raw_connect(g_it.port);
		PGconn *b;
		PGresult *res;
		size_t n = 0;

		ck_assert_msg(it_raw_login(fd, "app", "app", "app_pw", st) == 0, "login: %s", st);
		raw_query(buf, &n, "SELECT pg_sleep(0.3)::text || 'a'");
		raw_put(buf, &n, types[i], "", 0);
		ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
		/* the next client waits for the one server meanwhile */
		it_sleep_ms(50);
		b = it_connect(APP);
		ck_assert_int_eq(PQsendQuery(b, "SELECT 'b'"), 1);
		it_raw_types(fd, -1, IT_RAW_STATES, got, sizeof(got));
		ck_assert_str_eq(got, types[i] == 'X' ? "T D C Z" : "T D C Z E(08P01)");
		close(fd);
		res = PQgetResult(b);
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "next client, after '%c': %s",
			      types[i], PQerrorMessage(b));
		PQclear(res);
		while ((res = PQgetResult(b)) != NULL)
			PQclear(res);
		ck_assert_str_eq(it_value(b, "SELECT 'b2'"), "b2");
		PQfinish(b);
	}
}
END_TEST

/*
 * A client that shuts down its writing side after sending (shutdown(SHUT_WR),
 * as some tools and proxies do) and reads on gets every reply, as from
 * PostgreSQL, which reads the end of the input only after the messages
 * before it; then the connection ends. (pgdog closed the client at once:
 * the statements ran, their replies were dropped.) An unfinished message at
 * the end is dropped, as PostgreSQL drops it.
 */
START_TEST(test_txn_half_close)
{
	char buf[512], got[256], st[6];
	size_t n = 0;
	int fd = it_raw_connect(g_it.port);

	fresh_table("half_t");
	ck_assert_msg(it_raw_login(fd, "app", "app", "app_pw", st) == 0, "login: %s", st);
	raw_query(buf, &n, "SELECT pg_sleep(0.2)");
	raw_query(buf, &n, "INSERT INTO half_t VALUES (1)");
	raw_parse(buf, &n, "", "SELECT 5");
	raw_bind_run(buf, &n, "");
	raw_query(buf, &n, "BEGIN");
	raw_query(buf, &n, "INSERT INTO half_t VALUES (2)");
	memcpy(buf + n,
	       "Q\0\0\0\x40"
	       "COMMIT",
	       11); /* never finished */
	n += 11;
	ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
	ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
	it_raw_types(fd, -1, IT_RAW_STATES, got, sizeof(got));
	ck_assert_str_eq(got, "T D C Z C Z 1 2 D C Z C Z C Z");
	close(fd);
	/* the block it left open was rolled back; the server serves the next client */
	ck_assert_str_eq(it_pg_value("SELECT string_agg(x::text, ',') FROM half_t"), "1");
	{
		PGconn *b = it_connect(APP);

		ck_assert_str_eq(it_value(b, "SELECT 'b'"), "b");
		PQfinish(b);
	}
}
END_TEST

/* The raw client on fd runs a query answered at once, then both clients go. */
static void
raw_done(int fd, PGconn *b)
{
	char buf[64], got[64];
	size_t n = 0;

	raw_query(buf, &n, "SELECT 'a'");
	raw_exchange(fd, buf, n, 1, got, sizeof(got));
	ck_assert_str_eq(got, "T D(a) C Z");
	close(fd);
	PQfinish(b);
}

/*
 * CopyData, CopyDone and CopyFail outside a COPY (the rest of the data of
 * one that failed at once) are dropped without a reply, as PostgreSQL drops
 * them, and take no server. (pgdog took the pool's one server for them and
 * kept it, as no ReadyForQuery came to end that request: other clients
 * waited until this one sent a query.)
 */
START_TEST(test_txn_copy_data_outside_copy)
{
	char buf[8192], st[6];
	size_t n = 0;
	int fd = it_raw_connect(g_it.port);
	PGconn *b = it_connect(APP);

	ck_assert_msg(it_raw_login(fd, "app", "app", "app_pw", st) == 0, "login: %s", st);
	raw_sql(fd, "COPY no_such_table_c FROM STDIN", "E Z");
	for (int i = 0; i < 100; i++)
		raw_put(buf, &n, 'd', "1\t2\n", 4);
	raw_put(buf, &n, 'c', "", 0);
	raw_put(buf, &n, 'f', "gone\0", 5);
	ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
	n = 0;
	it_sleep_ms(200);
	/* the server is free for another client at once */
	ck_assert_int_eq(PQsendQuery(b, "SELECT 'b'"), 1);
	ck_assert_str_eq(it_value_within(b, 1000, "the next client"), "b");
	/* a large CopyData that comes in two parts is dropped whole */
	{
		static char big[100000];
		char hdr[5] = { 'd' };

		memset(big, 'Q', sizeof(big)); /* what would read as messages, if not dropped */
		put32(hdr + 1, sizeof(big) + 4);
		ck_assert_int_eq(it_raw_send(fd, hdr, sizeof(hdr)), 0);
		ck_assert_int_eq(it_raw_send(fd, big, sizeof(big) / 2), 0);
		it_sleep_ms(100);
		ck_assert_int_eq(it_raw_send(fd, big + sizeof(big) / 2, sizeof(big) / 2), 0);
	}
	/* and the sender goes on, its next query answered (nothing else before it) */
	raw_done(fd, b);
}
END_TEST

/*
 * An extended-protocol request without its Sync is rolled back when its
 * client goes, as PostgreSQL rolls it back: whether the client closes, sends
 * a Terminate or a message of an invalid type (which still gets the replies
 * to the Query before it, then FATAL 08P01), even after a Flush showed it
 * CommandComplete. (pgdog ended it with a Sync, which committed it.) A
 * message of an invalid type during COPY FROM STDIN ends the connection at
 * once with 08P01, as in PostgreSQL (pgdog waited for the COPY, which
 * waited for data: the client and the server hung).
 */
START_TEST(test_txn_unsynced_rolled_back)
{
	char buf[512], got[256], st[6];

	fresh_table("unsynced_t");
	for (int round = 0; round < 4; round++) {
		int fd = it_raw_connect(g_it.port);
		size_t n = 0;

		ck_assert_msg(it_raw_login(fd, "app", "app", "app_pw", st) == 0, "login: %s", st);
		if (round == 3)
			raw_query(buf, &n, "INSERT INTO unsynced_t VALUES (1)");
		raw_parse(buf, &n, "", "INSERT INTO unsynced_t VALUES (2)");
		raw_put(buf, &n, 'B', "\0\0\0\0\0\0\0\0", 8);
		raw_put(buf, &n, 'E', "\0\0\0\0\0", 5);
		if (round == 1)
			raw_put(buf, &n, 'H', "", 0);
		if (round == 2)
			raw_put(buf, &n, 'X', "", 0);
		if (round == 3)
			raw_put(buf, &n, 'v', "", 0);
		ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
		if (round == 1) {
			/* the Flush shows it the INSERT done; it goes without a Sync */
			char type, body[256];

			for (int k = 0; k < 3; k++)
				ck_assert_int_ge(it_raw_recv(fd, &type, body, sizeof(body), 5000),
						 0);
			ck_assert_int_eq(type, 'C');
		}
		if (round == 3) {
			it_raw_types(fd, -1, IT_RAW_STATES, got, sizeof(got));
			ck_assert_str_eq(got, "C Z E(08P01)");
		} else {
			it_sleep_ms(200);
		}
		close(fd);
	}
	it_sleep_ms(300);
	ck_assert_str_eq(
		it_pg_value("SELECT coalesce(string_agg(x::text, ','), '') FROM unsynced_t"), "1");
	/* an invalid message during COPY FROM STDIN */
	{
		int fd = it_raw_connect(g_it.port);
		size_t n = 0;
		PGconn *b;

		ck_assert_msg(it_raw_login(fd, "app", "app", "app_pw", st) == 0, "login: %s", st);
		raw_query(buf, &n, "COPY unsynced_t FROM STDIN");
		raw_put(buf, &n, 'd', "5\n", 2);
		raw_put(buf, &n, 'x', "", 0);
		ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
		it_raw_types(fd, -1, IT_RAW_STATES, got, sizeof(got));
		ck_assert_str_eq(got, "G E(08P01)");
		close(fd);
		b = it_connect(APP);
		ck_assert_str_eq(it_value(b, "SELECT count(*) FROM unsynced_t"), "1");
		PQfinish(b);
	}
}
END_TEST

/*
 * An extended-protocol COPY FROM STDIN sent in one write with its data and
 * a Sync before and after it: PostgreSQL ignores the Sync that comes during
 * the COPY and answers the one after CopyDone. (pgdog took both back when
 * the CopyInResponse came, and kept the server after the ReadyForQuery:
 * other clients waited until this one left.)
 */
START_TEST(test_txn_ext_copy_pipelined)
{
	char buf[512], got[256], st[6];
	size_t n = 0;
	int fd = it_raw_connect(g_it.port);
	PGconn *b = it_connect(APP);

	fresh_table("extcopy_t");
	ck_assert_msg(it_raw_login(fd, "app", "app", "app_pw", st) == 0, "login: %s", st);
	raw_parse(buf, &n, "", "COPY extcopy_t FROM STDIN");
	raw_put(buf, &n, 'B', "\0\0\0\0\0\0\0\0", 8);
	raw_put(buf, &n, 'E', "\0\0\0\0\0", 5);
	raw_sync(buf, &n);
	raw_put(buf, &n, 'd', "41\n", 3);
	raw_put(buf, &n, 'c', "", 0);
	raw_sync(buf, &n);
	raw_exchange(fd, buf, n, 1, got, sizeof(got));
	ck_assert_str_eq(got, "1 2 G C Z");
	ck_assert_int_eq(PQsendQuery(b, "SELECT count(*) FROM extcopy_t"), 1);
	ck_assert_str_eq(it_value_within(b, 1000, "the next client"), "1");
	raw_done(fd, b);
}
END_TEST

/*
 * A FunctionCall (libpq's PQfn) runs a function pgdog cannot see into: one
 * that sets a session value (set_config(..., false), oid 2078) pins the
 * server as the same SQL does. (pgdog gave the server back after it, and
 * the next client found the other's work_mem there.)
 */
START_TEST(test_txn_function_call_pins)
{
	PGconn *a = it_connect(APP), *b, *pg = it_pg_connect();
	char want[64], out[64];
	int out_len = 0;
	const char falsebyte = 0;
	PQArgBlock args[3] = {
		{ .len = 8, .isint = 0, .u.ptr = (int *)"work_mem" },
		{ .len = 4, .isint = 0, .u.ptr = (int *)"77kB" },
		{ .len = 1, .isint = 0, .u.ptr = (int *)&falsebyte },
	};
	PGresult *res;

	snprintf(want, sizeof(want), "%s", it_value(pg, "SHOW work_mem"));
	res = PQfn(a, 2078, (int *)out, &out_len, 0, args, 3);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "PQfn: %s", PQerrorMessage(a));
	PQclear(res);
	ck_assert_int_eq(out_len, 4);
	ck_assert_int_eq(memcmp(out, "77kB", 4), 0);
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), "77kB");
	/* the next client waits for the one server, and finds it reset */
	b = it_connect(APP);
	ck_assert_int_eq(PQsendQuery(b, "SHOW work_mem"), 1);
	it_sleep_ms(200);
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), "77kB");
	PQfinish(a);
	res = PQgetResult(b);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(b));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), want);
	PQclear(res);
	while ((res = PQgetResult(b)) != NULL)
		PQclear(res);
	PQfinish(b);
	PQfinish(pg);
}
END_TEST

/*
 * A client cancelled while queued for a server gets 57014 for the request
 * at the front, and the rest of its input keeps its framing: a Query is
 * dropped alone, an extended-protocol request up to its Sync, which gets
 * the one ReadyForQuery. What follows runs once a server is free. (pgdog
 * dropped whatever it had read, possibly half a message: the bytes of a
 * Bind parameter were then read as messages, and a Query hidden in them
 * ran; a request without its Sync got a ReadyForQuery, its Sync another.)
 */
START_TEST(test_txn_cancel_waiting_framing)
{
	enum {
		DATA = 90 * 1024
	};
	static const char hidden[] = "CREATE TABLE injected_by_split (a int)";
	PGconn *a = it_connect(APP);
	int fd = it_raw_connect(g_it.port);
	char key[8], st[6], *buf = malloc(DATA + 4096), *p;
	size_t n = 0;

	ck_assert_ptr_nonnull(buf);
	ck_assert_msg(it_raw_login_key(fd, "app", "app", "app_pw", st, key) == 0, "login: %s", st);
	exec_ok(a, "BEGIN");
	exec_ok(a, "SELECT 1"); /* a holds the only server */
	/* a Query, then a request whose parameter is full of Query messages */
	raw_put(buf, &n, 'Q', "SELECT 'first'", 15);
	raw_parse(buf, &n, "", "SELECT length($1::bytea)");
	buf[n++] = 'B';
	put32(buf + n, (uint32_t)(4 + 2 + 4 + 2 + 4 + DATA + 2));
	n += 4;
	/* unnamed portal and statement, one binary parameter */
	memcpy(buf + n, "\0\0\0\1\0\1\0\1", 8);
	n += 8;
	put32(buf + n, DATA);
	n += 4;
	for (p = buf + n; p + 5 + sizeof(hidden) <= buf + n + DATA; p += 5 + sizeof(hidden)) {
		p[0] = 'Q';
		put32(p + 1, (uint32_t)(4 + sizeof(hidden)));
		memcpy(p + 5, hidden, sizeof(hidden));
	}
	memset(p, 'x', (size_t)(buf + n + DATA - p));
	n += DATA;
	memcpy(buf + n, "\0\0", 2);
	n += 2;
	raw_put(buf, &n, 'E', "\0\0\0\0", 5);
	raw_sync(buf, &n);
	ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
	it_sleep_ms(200);
	it_raw_cancel(g_it.port, key);
	n = 0;
	raw_expect(fd, buf, &n, 1, "E Z");
	exec_ok(a, "COMMIT");
	{
		char want[64];

		snprintf(want, sizeof(want), "1 2 D(%d) C Z", DATA);
		raw_expect(fd, buf, &n, 1, want);
	}
	ck_assert_str_eq(it_pg_value("SELECT to_regclass('injected_by_split') IS NULL"), "t");
	/* extended protocol without its Sync yet: no ReadyForQuery until the Sync */
	exec_ok(a, "BEGIN");
	exec_ok(a, "SELECT 1");
	raw_parse(buf, &n, "", "SELECT 'queued'");
	raw_put(buf, &n, 'D', "S", 2);
	raw_put(buf, &n, 'H', "", 0);
	ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
	n = 0;
	it_sleep_ms(200);
	it_raw_cancel(g_it.port, key);
	{
		char type, body[256];
		long len = it_raw_recv(fd, &type, body, sizeof(body), 3000);

		ck_assert_msg(len > 0 && type == 'E', "after the cancel: '%c'", type);
		ck_assert_int_eq(it_raw_recv(fd, &type, body, sizeof(body), 300), -1);
	}
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 1, "Z");
	exec_ok(a, "COMMIT");
	raw_put(buf, &n, 'Q', "SELECT 'after'", 15);
	raw_expect(fd, buf, &n, 1, "T D(after) C Z");
	close(fd);
	free(buf);
	PQfinish(a);
}
END_TEST

/*
 * A backend terminated under its client: the client gets PostgreSQL's FATAL
 * and the end of the connection, as from PostgreSQL. (pgdog added its own
 * FATAL 08006 after it.)
 */
START_TEST(test_txn_server_fatal_once)
{
	int fd = it_raw_connect(g_it.port);
	char buf[256], st[6], type, body[512], code[8], pid[32], sql[96];
	size_t n = 0;
	long len;
	int errors = 0;

	ck_assert_msg(it_raw_login(fd, "app", "app", "app_pw", st) == 0, "login: %s", st);
	raw_put(buf, &n, 'Q', "BEGIN", 6);
	raw_expect(fd, buf, &n, 1, "C Z");
	raw_put(buf, &n, 'Q', "SELECT pg_backend_pid()::text", 30);
	raw_exchange(fd, buf, n, 1, body, sizeof(body));
	n = 0;
	ck_assert_msg(sscanf(body, "T D(%31[0-9])", pid) == 1, "pid: %s", body);
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%s, 5000)", pid);
	it_pg_exec(sql);
	while ((len = it_raw_recv(fd, &type, body, sizeof(body), 3000)) >= 0) {
		ck_assert_msg(type == 'E', "message '%c'", type);
		ck_assert_str_eq(it_raw_field(body, len, 'C', code, sizeof(code)), "57P01");
		errors++;
	}
	ck_assert_int_eq(errors, 1);
	close(fd);
}
END_TEST

/*
 * pgdog's SETs that make a server match its client do not tell the client
 * what it knows: PostgreSQL sends ParameterStatus only when a value changes.
 * (The client got application_name again before each reply on a server
 * another client had used.)
 */
START_TEST(test_txn_param_status_once)
{
	int fd = it_raw_connect(g_it.port);
	char buf[256], st[6];
	size_t n = 0;
	PGconn *b = it_connect(APP);

	ck_assert_msg(it_raw_login(fd, "app", "app", "app_pw", st) == 0, "login: %s", st);
	raw_sql(fd, "SET application_name = 'a'", "C S Z");
	for (int i = 0; i < 3; i++) {
		ck_assert_str_eq(it_value(b, "SHOW application_name"), "");
		raw_query(buf, &n, "SHOW application_name");
		raw_expect(fd, buf, &n, 1, "T D(a) C Z");
	}
	raw_sql(fd, "SET TimeZone = 'utc'", "C S Z");
	ck_assert_str_eq(it_value(b, "SELECT 1"), "1");
	raw_sql(fd, "SHOW TimeZone", "T D(UTC) C Z");
	close(fd);
	PQfinish(b);
}
END_TEST

/*
 * A SET in a Query pipelined behind a Parse of a name the client has (pgdog
 * makes a statement of that name for PostgreSQL's 42P05, and closes it
 * with a Sync of its own before the Query) is settled by the Query's own
 * outcome: rolled back with its implicit transaction, it is gone, as in
 * PostgreSQL; committed, it stands. (The Sync of pgdog's Closes was taken
 * as the end of the Query's request: the SET counted as committed, and the
 * client's next request was told application_name = 'x' and ran with it.
 * Found by t/fuzz/pgdiff.py.)
 */
START_TEST(test_txn_set_behind_own_sync)
{
	int fd = raw_app();
	char buf[512];
	size_t n = 0;

	raw_parse(buf, &n, "own_sync", "SELECT 2");
	raw_parse(buf, &n, "own_sync", "SELECT 1");
	raw_sync(buf, &n);
	raw_query(buf, &n, "SET application_name = 'x'; SAVEPOINT s1");
	raw_expect(fd, buf, &n, 2, "1 E Z C E Z");
	raw_sql(fd, "SHOW application_name", "T D() C Z");
	/* and one that commits stands */
	raw_parse(buf, &n, "own_sync", "SELECT 3");
	raw_sync(buf, &n);
	raw_query(buf, &n, "SET application_name = 'y'; SELECT 1");
	raw_expect(fd, buf, &n, 2, "E Z C T D(1) C S Z");
	raw_sql(fd, "SHOW application_name", "T D(y) C Z");
	close(fd);
}
END_TEST

/*
 * A Parse that PostgreSQL skips after an error earlier in its request
 * leaves the server without the statement: a Parse of the same text under
 * another name in the next request, pipelined behind it, gets it prepared
 * there (pgdog waits for the first one's answer), and its Bind runs. (The
 * server was taken to hold it from the first Parse on: the Bind got 26000,
 * "prepared statement "a" does not exist". Found by t/fuzz/pgdiff.py.)
 */
START_TEST(test_txn_parse_skipped_same_text)
{
	int fd = raw_app();
	char buf[512];
	size_t n = 0;

	raw_parse(buf, &n, "", "SELECT 1/0");
	raw_put(buf, &n, 'B', "\0\0\0\0\0\0\0\0", 8); /* 22012 here: folded when planned */
	raw_put(buf, &n, 'E', "\0\0\0\0", 5);
	raw_parse(buf, &n, "skip_b", "SELECT 42 AS parse_skipped_same_text");
	raw_sync(buf, &n);
	raw_parse(buf, &n, "skip_a", "SELECT 42 AS parse_skipped_same_text");
	raw_bind_run(buf, &n, "skip_a");
	raw_expect(fd, buf, &n, 2, "1 E Z 1 2 D(42) C Z");
	close(fd);
}
END_TEST

/*
 * A portal ends with its transaction: an Execute of one bound to DISCARD
 * ALL in an earlier transaction fails (34000) and drops nothing, also when
 * the client's server is pinned (by SQL PREPARE here) and so stays with it
 * between transactions. (pgdog took it as run: it forgot the client's
 * statements, whose next Bind got 26000, and its pins, and the server went
 * back to the pool with the client's SQL statement on it. Found by
 * t/fuzz/pgdiff.py.)
 */
START_TEST(test_txn_stale_portal_discard)
{
	int fd = raw_app();
	char buf[512];
	size_t n = 0;

	raw_sql(fd, "PREPARE stale_q AS SELECT 1", "C Z");
	/* the Bind is skipped after the error; the portal would end with the request anyway */
	raw_put(buf, &n, 'E', "\0\0\0\0\0", 5);
	raw_parse(buf, &n, "stale_a", "DISCARD ALL");
	raw_put(buf, &n, 'B', "\0stale_a\0\0\0\0\0\0\0", 15);
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 1, "E Z");
	/* one request at a time: nothing is left to wait for at the Execute */
	raw_parse(buf, &n, "stale_x", "SELECT 5");
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 1, "1 Z");
	raw_put(buf, &n, 'E', "\0\0\0\0\0", 5);
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 1, "E Z");
	raw_bind_run(buf, &n, "stale_x");
	raw_expect(fd, buf, &n, 1, "2 D(5) C Z");
	raw_sql(fd, "EXECUTE stale_q", "T D(1) C Z");
	close(fd);
}
END_TEST

/*
 * A DISCARD ALL whose outcome waits for its CommandComplete (pipelined
 * behind a Sync not answered yet) and that PostgreSQL refuses (25001 in a
 * transaction block) drops nothing, and leaves nothing due: the next
 * DISCARD ALL's CommandComplete does not drop the statement the client
 * parsed after that one ran. (The first one stayed due until the server
 * went back to the pool, here kept by an advisory lock: the Bind got 26000.
 * Found by t/fuzz/pgdiff.py.)
 */
START_TEST(test_txn_refused_discard_not_due)
{
	int fd = raw_app();
	char buf[512];
	size_t n = 0;

	raw_sql(fd, "SELECT pg_advisory_lock(4243)", "T D() C Z");
	raw_sql(fd, "BEGIN", "C Z");
	raw_sync(buf, &n);
	raw_query(buf, &n, "DISCARD ALL");
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 3, "Z E Z Z");
	raw_sql(fd, "ROLLBACK", "C Z");
	raw_query(buf, &n, "DISCARD ALL");
	raw_parse(buf, &n, "refused_a", "SELECT 2");
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 2, "C Z 1 Z");
	raw_bind_run(buf, &n, "refused_a");
	raw_expect(fd, buf, &n, 1, "2 D(2) C Z");
	close(fd);
}
END_TEST

/* Append a Parse of the unnamed statement with sql, its Bind and its Execute (no Sync). */
static void
raw_unnamed_run(char *buf, size_t *n, const char *sql)
{
	raw_parse(buf, n, "", sql);
	raw_put(buf, n, 'B', "\0\0\0\0\0\0\0\0", 8);
	raw_put(buf, n, 'E', "\0\0\0\0", 5);
}

/*
 * A COMMIT executed in the middle of an extended-protocol request commits
 * the SETs before it, whatever comes after it: a SET after it, and an error
 * after that, are rolled back, not the first SET. (pgdog settled them all
 * at the ReadyForQuery: after the error it dropped the committed SET too,
 * and the client's next request ran without it, although PostgreSQL had
 * just reported it. Found by t/fuzz/pgdiff.py.) The same with a ROLLBACK
 * in the middle: the SET before it is dropped, the one after it stands.
 */
START_TEST(test_txn_set_before_commit_execute)
{
	int fd = raw_app();
	char buf[512];
	size_t n = 0;

	raw_unnamed_run(buf, &n, "SET application_name = 'before_commit'");
	raw_unnamed_run(buf, &n, "COMMIT");
	raw_unnamed_run(buf, &n, "SET application_name = 'after_commit'");
	raw_unnamed_run(buf, &n, "SELECT 1/0");
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 1, "1 2 C 1 2 N C 1 2 C 1 E S Z");
	raw_sql(fd, "SHOW application_name", "T D(before_commit) C Z");
	/* a named COMMIT, and a transaction block, behave the same */
	raw_parse(buf, &n, "commit_c", "COMMIT");
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 1, "1 Z");
	raw_unnamed_run(buf, &n, "BEGIN");
	raw_unnamed_run(buf, &n, "SET application_name = 'in_block'");
	raw_put(buf, &n, 'B', "\0commit_c\0\0\0\0\0\0\0", 16);
	raw_put(buf, &n, 'E', "\0\0\0\0", 5);
	raw_unnamed_run(buf, &n, "SELECT 1/0");
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 1, "1 2 C 1 2 C 2 C 1 E S Z");
	raw_sql(fd, "SHOW application_name", "T D(in_block) C Z");
	/* a SET of an earlier request in the block */
	raw_sql(fd, "BEGIN; SET application_name = 'earlier'", "C C S Z");
	raw_unnamed_run(buf, &n, "COMMIT");
	raw_unnamed_run(buf, &n, "SELECT 1/0");
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 1, "1 2 C 1 E Z");
	raw_sql(fd, "SHOW application_name", "T D(earlier) C Z");
	/* a chained COMMIT: the SET after it is the next transaction's, which fails */
	raw_unnamed_run(buf, &n, "BEGIN");
	raw_unnamed_run(buf, &n, "SET application_name = 'chained'");
	raw_unnamed_run(buf, &n, "COMMIT AND CHAIN");
	raw_unnamed_run(buf, &n, "SET application_name = 'in_chain'");
	raw_unnamed_run(buf, &n, "SELECT 1/0");
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 1, "1 2 C 1 2 C 1 2 C 1 2 C 1 E S Z");
	raw_sql(fd, "ROLLBACK", "C Z");
	raw_sql(fd, "SHOW application_name", "T D(chained) C Z");
	/* a ROLLBACK in the middle drops what came before it, not what comes after */
	raw_unnamed_run(buf, &n, "BEGIN");
	raw_unnamed_run(buf, &n, "SET application_name = 'rolled_back'");
	raw_unnamed_run(buf, &n, "ROLLBACK");
	raw_unnamed_run(buf, &n, "SET application_name = 'after_rollback'");
	raw_sync(buf, &n);
	raw_expect(fd, buf, &n, 1, "1 2 C 1 2 C 1 2 C 1 2 C S Z");
	raw_sql(fd, "SHOW application_name", "T D(after_rollback) C Z");
	close(fd);
}
END_TEST

/*
 * A client queued for a server keeps sending: pgdog buffers what it sends
 * up to a limit and then stops reading it; once it has a server, every
 * request runs, in order.
 */
START_TEST(test_txn_queued_pipeline)
{
	enum {
		QUERIES = 6000
	};
	PGconn *a = it_connect(APP);
	char *buf = malloc(QUERIES * 32), st[6], type, body[256];
	size_t n = 0;
	int fd, readies = 0, rows = 0;
	long len;

	ck_assert_ptr_nonnull(buf);
	exec_ok(a, "BEGIN");
	exec_ok(a, "SELECT 1");
	fd = it_raw_connect(g_it.port);
	ck_assert_msg(it_raw_login(fd, "app", "app", "app_pw", st) == 0, "login: %s", st);
	for (int i = 0; i < QUERIES; i++) {
		char q[32];
		int ql = snprintf(q, sizeof(q), "SELECT %d", i);

		raw_put(buf, &n, 'Q', q, (size_t)ql + 1);
	}
	/* over 64 KiB: more than pgdog takes while the client is queued */
	ck_assert_uint_gt(n, 64 * 1024);
	ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
	it_sleep_ms(200);
	exec_ok(a, "COMMIT");
	while (readies < QUERIES && (len = it_raw_recv(fd, &type, body, sizeof(body), 5000)) >= 0) {
		if (type == 'D') {
			char want[16];
			uint32_t vl;

			memcpy(&vl, body + 2, 4);
			vl = ntohl(vl);
			snprintf(want, sizeof(want), "%d", rows);
			ck_assert_msg(vl == strlen(want) && memcmp(body + 6, want, vl) == 0,
				      "row %d: %.*s", rows, (int)vl, body + 6);
			rows++;
		}
		readies += type == 'Z';
	}
	ck_assert_int_eq(readies, QUERIES);
	ck_assert_int_eq(rows, QUERIES);
	close(fd);
	free(buf);
	PQfinish(a);
}
END_TEST

/* PQcancel on c (synchronous: returns once the server has the cancel). */
static void
cancel_now(PGconn *c)
{
	PGcancel *cancel = PQgetCancel(c);
	char err[256];

	ck_assert_ptr_nonnull(cancel);
	ck_assert_msg(PQcancel(cancel, err, sizeof(err)) == 1, "PQcancel: %s", err);
	PQfreeCancel(cancel);
}

/*
 * A cancel sent while the client runs nothing (idle in its transaction)
 * is dropped, as PostgreSQL drops one that comes while it waits for a
 * command: the next statement runs. (pgdog passed it on, late: the next
 * statement was cancelled.)
 */
START_TEST(test_txn_cancel_idle)
{
	PGconn *a = it_connect(APP);

	for (int i = 0; i < 20; i++) {
		exec_ok(a, "BEGIN");
		exec_ok(a, "SELECT 1");
		cancel_now(a);
		exec_ok(a, "SELECT pg_sleep(0.02)");
		exec_ok(a, "COMMIT");
	}
	/* between transactions too */
	for (int i = 0; i < 5; i++) {
		cancel_now(a);
		exec_ok(a, "SELECT pg_sleep(0.02)");
	}
	PQfinish(a);
}
END_TEST

struct cancel_victim {
	int ok, cancelled, other;
	long long stop_ms;
};

/* Client B: short queries on the shared server until stop_ms; it never cancels. */
static void *
cancel_victim_main(void *arg)
{
	struct cancel_victim *v = arg;
	PGconn *b = PQconnectdb(it_pgdog_dsn(APP));

	if (PQstatus(b) != CONNECTION_OK) {
		v->other++;
		PQfinish(b);
		return NULL;
	}
	while (it_now_ms() < v->stop_ms) {
		PGresult *res = PQexec(b, "SELECT pg_sleep(0.002)");
		const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			v->ok++;
		else if (st && strcmp(st, "57014") == 0)
			v->cancelled++;
		else
			v->other++;
		PQclear(res);
	}
	PQfinish(b);
	return NULL;
}

/*
 * A cancels its own short queries, the cancel often arriving as the query
 * ends; B shares the one server and never cancels. A cancel must reach only
 * the query it was sent for: the server is not given to B until it has
 * arrived. (pgdog gave the server to B first: B's queries were cancelled.)
 */
START_TEST(test_txn_cancel_other_client)
{
	PGconn *a = it_connect(APP);
	struct cancel_victim v = { .stop_ms = it_now_ms() + 3000 };
	pthread_t th;
	int sent = 0;

	ck_assert_int_eq(pthread_create(&th, NULL, cancel_victim_main, &v), 0);
	while (it_now_ms() < v.stop_ms) {
		PGresult *res;

		ck_assert_int_eq(PQsendQuery(a, "SELECT pg_sleep(0.005)"), 1);
		it_sleep_ms(4 + sent % 3);
		cancel_now(a);
		sent++;
		while ((res = PQgetResult(a)) != NULL)
			PQclear(res);
	}
	pthread_join(th, NULL);
	ck_assert_msg(v.cancelled == 0 && v.other == 0,
		      "B never cancelled: %d ok, %d cancelled, %d other errors (A sent %d cancels)",
		      v.ok, v.cancelled, v.other, sent);
	ck_assert_msg(v.ok > 20, "B ran %d queries in 3 s", v.ok);
	ck_assert_str_eq(it_value(a, "SELECT 'a'"), "a");
	PQfinish(a);
}
END_TEST

static void *
cancel_thread_main(void *arg)
{
	char err[256];

	/* its result is not checked: the cancel may come after its query ended */
	(void)PQcancel(arg, err, sizeof(err));
	return NULL;
}

/*
 * As above, but A leaves right after sending its cancel, while the cancel
 * may still be on its way: the server A leaves behind must not run B's
 * query before the cancel has arrived. (pgdog cleaned it up and gave it to
 * B at once: B's queries were cancelled.)
 */
START_TEST(test_txn_cancel_client_left)
{
	struct cancel_victim v = { .stop_ms = it_now_ms() + 3000 };
	pthread_t th, ct;
	int sent = 0;

	ck_assert_int_eq(pthread_create(&th, NULL, cancel_victim_main, &v), 0);
	while (it_now_ms() < v.stop_ms) {
		PGconn *a = it_connect(APP);
		PGcancel *cancel = PQgetCancel(a);

		ck_assert_ptr_nonnull(cancel);
		ck_assert_int_eq(PQsendQuery(a, "SELECT pg_sleep(0.005)"), 1);
		it_sleep_ms(4 + sent % 3);
		ck_assert_int_eq(pthread_create(&ct, NULL, cancel_thread_main, cancel), 0);
		it_sleep_ms(sent % 2);
		/* gone without waiting for the cancel or the query's reply */
		shutdown(PQsocket(a), SHUT_RDWR);
		pthread_join(ct, NULL);
		PQfreeCancel(cancel);
		PQfinish(a);
		sent++;
	}
	pthread_join(th, NULL);
	ck_assert_msg(v.cancelled == 0 && v.other == 0,
		      "B never cancelled: %d ok, %d cancelled, %d other errors (A sent %d cancels)",
		      v.ok, v.cancelled, v.other, sent);
	ck_assert_msg(v.ok > 20, "B ran %d queries in 3 s", v.ok);
}
END_TEST

/* ---- checkout_timeout while the server is held -------------------------- */

static void
setup_checkout(void)
{
	setup_pg("checkout");
	start_pgdog("pooler_mode = transaction\ncheckout_timeout = 1000");
}

START_TEST(test_txn_checkout_timeout)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP), *c;
	char st[6], msg[512];
	long long t0, took;
	int rc;

	/* outside a transaction A holds nothing: B does not wait */
	ck_assert_str_eq(it_value(a, "SELECT 1"), "1");
	t0 = it_now_ms();
	ck_assert_str_eq(it_value(b, "SELECT 2"), "2");
	ck_assert_msg(it_now_ms() - t0 < 500, "B waited %lld ms for an idle server",
		      it_now_ms() - t0);
	/* inside one it holds the server longer than checkout_timeout */
	exec_ok(a, "BEGIN");
	ck_assert_str_eq(it_value(a, "SELECT 3"), "3");
	t0 = it_now_ms();
	rc = it_exec_first_error(b, "SELECT 4", st, msg, sizeof(msg));
	took = it_now_ms() - t0;
	ck_assert_msg(rc == 1, "B got no error while A's transaction held the only server");
	ck_assert_msg(strcmp(st, "53300") == 0, "SQLSTATE '%s' (%s), expected 53300", st, msg);
	ck_assert_msg(took >= 800 && took <= 3000, "checkout_timeout 1000 ms, error after %lld ms",
		      took);
	/* A's transaction is intact */
	ck_assert_int_eq(PQtransactionStatus(a), PQTRANS_INTRANS);
	ck_assert_str_eq(it_value(a, "SELECT 5"), "5");
	exec_ok(a, "COMMIT");
	c = it_connect(APP);
	ck_assert_str_eq(it_value(c, "SELECT 6"), "6");
	PQfinish(c);
	PQfinish(b);
	PQfinish(a);
}
END_TEST

/* A session advisory lock keeps the server with its client past checkout_timeout. */
START_TEST(test_txn_checkout_timeout_pinned)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP), *c;
	char st[6], msg[512];
	long long t0;
	int rc;

	ck_assert_str_eq(it_value(a, "SELECT pg_advisory_lock(42)"), "");
	rc = it_exec_first_error(b, "SELECT 1", st, msg, sizeof(msg));
	ck_assert_msg(rc == 1, "B got the server while A held an advisory lock on it");
	ck_assert_msg(strcmp(st, "53300") == 0, "SQLSTATE '%s' (%s), expected 53300", st, msg);
	ck_assert_str_eq(it_value(a, "SELECT pg_advisory_unlock_all()"), "");
	t0 = it_now_ms();
	c = it_connect(APP);
	ck_assert_str_eq(it_value(c, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"),
			 "0");
	ck_assert_msg(it_now_ms() - t0 < 900, "the server was released %lld ms after the unlock",
		      it_now_ms() - t0);
	PQfinish(c);
	PQfinish(b);
	PQfinish(a);
}
END_TEST

/* ---- SET tracking -------------------------------------------------------- */

static void
setup_set(void)
{
	setup_pg("set");
	it_pg_exec("CREATE SCHEMA a_schema; CREATE TABLE a_schema.only_a (x int);"
		   "CREATE SCHEMA opt_schema; CREATE TABLE opt_schema.only_opt (x int);"
		   "GRANT USAGE ON SCHEMA a_schema, opt_schema TO app;"
		   "GRANT SELECT ON a_schema.only_a, opt_schema.only_opt TO app");
	start_pgdog("pooler_mode = transaction");
}

/* A's SETs follow A from transaction to transaction and never reach B. */
START_TEST(test_set_isolation)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	char b_app[256], pa[32], pb[32];

	snprintf(b_app, sizeof(b_app), "%s",
		 it_value(b, "SELECT current_setting('application_name')"));
	ck_assert_str_ne(b_app, "client_a");
	exec_ok(a, "SET application_name = 'client_a'");
	exec_ok(a, "SET search_path = a_schema, public");
	exec_ok(a, "SET statement_timeout = '1234ms'");
	for (int round = 0; round < 3; round++) {
		ck_assert_str_eq(it_value(b, "SELECT current_setting('application_name')"), b_app);
		ck_assert_str_eq(it_value(b, "SELECT current_setting('search_path')"),
				 DEF_SEARCH_PATH);
		ck_assert_str_eq(it_value(b, "SELECT current_setting('statement_timeout')"), "0");
		it_exec_error(b, "SELECT count(*) FROM only_a", "42P01");

		ck_assert_str_eq(it_value(a, "SELECT current_setting('application_name')"),
				 "client_a");
		ck_assert_str_eq(it_value(a, "SELECT current_setting('search_path')"),
				 "a_schema, public");
		ck_assert_str_eq(it_value(a, "SELECT current_setting('statement_timeout')"),
				 "1234ms");
		ck_assert_str_eq(it_value(a, "SELECT count(*) FROM only_a"), "0");
	}
	/* the same server served both */
	backend_pid(a, pa, sizeof(pa));
	backend_pid(b, pb, sizeof(pb));
	ck_assert_msg(strcmp(pa, pb) == 0, "A on backend %s, B on %s: the test proves nothing", pa,
		      pb);
	ck_assert_str_eq(PQparameterStatus(a, "application_name"), "client_a");
	ck_assert_str_eq(PQparameterStatus(b, "application_name"), b_app);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* SET LOCAL lasts for its transaction only. */
START_TEST(test_set_local)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);

	exec_ok(a, "BEGIN");
	exec_ok(a, "SET LOCAL work_mem = '3MB'");
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), "3MB");
	exec_ok(a, "COMMIT");
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), DEF_WORK_MEM);
	ck_assert_str_eq(it_value(b, "SHOW work_mem"), DEF_WORK_MEM);
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), DEF_WORK_MEM);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* A SET in a transaction that rolls back (or fails and "commits") is not kept. */
START_TEST(test_set_rollback)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;

	exec_ok(a, "BEGIN");
	exec_ok(a, "SET work_mem = '7MB'");
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), "7MB");
	exec_ok(a, "ROLLBACK");
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), DEF_WORK_MEM);
	ck_assert_str_eq(it_value(b, "SHOW work_mem"), DEF_WORK_MEM);
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), DEF_WORK_MEM);

	/* a failed transaction: COMMIT answers ROLLBACK */
	exec_ok(a, "BEGIN");
	exec_ok(a, "SET work_mem = '8MB'");
	it_exec_error(a, "SELECT 1 / 0", "22012");
	res = it_exec_ok(a, "COMMIT");
	ck_assert_str_eq(PQcmdStatus(res), "ROLLBACK");
	PQclear(res);
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), DEF_WORK_MEM);
	ck_assert_str_eq(it_value(b, "SHOW work_mem"), DEF_WORK_MEM);
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), DEF_WORK_MEM);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * SETs in a transaction with a savepoint rolled back to, chained
 * transactions, or several transactions in one Query end as PostgreSQL ends
 * them. Where the transaction's end alone does not tell (a SET pending at a
 * ROLLBACK TO, a chain, or a Query going on after a COMMIT), the server is
 * pinned and A sees its values; an error rolled back to a savepoint, or
 * ended by ROLLBACK AND CHAIN, leaves a block whose later SETs commit, and
 * those follow A to the server B shares.
 */
START_TEST(test_set_savepoint)
{
	static const struct {
		const char *sql[7];
		const char *want;
		bool is_pinned;
	} cases[] = {
		{ { "BEGIN", "SET work_mem = '11MB'", "SAVEPOINT sp", "SET work_mem = '12MB'",
		    "ROLLBACK TO sp", "COMMIT" },
		  "11MB",
		  true },
		{ { "BEGIN; SET work_mem = '11MB'; SAVEPOINT sp; SET work_mem = '12MB'; "
		    "ROLLBACK TO sp; COMMIT" },
		  "11MB",
		  true },
		{ { "BEGIN; SET work_mem = '13MB'; COMMIT; BEGIN; SET work_mem = '14MB'; ROLLBACK" },
		  "13MB",
		  true },
		{ { "BEGIN", "SET work_mem = '15MB'", "COMMIT AND CHAIN", "SET work_mem = '16MB'",
		    "ROLLBACK" },
		  "15MB",
		  true },
		{ { "BEGIN", "SET work_mem = '18MB'", "SAVEPOINT sp", "SELECT 1 / 0",
		    "ROLLBACK TO sp", "COMMIT" },
		  "18MB",
		  true },
		{ { "BEGIN", "SELECT 1 / 0", "ROLLBACK AND CHAIN", "SET work_mem = '17MB'",
		    "COMMIT" },
		  "17MB",
		  false },
		{ { "BEGIN", "SAVEPOINT sp", "SELECT 1 / 0", "ROLLBACK TO sp",
		    "SET work_mem = '19MB'", "COMMIT" },
		  "19MB",
		  false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		PGconn *a = it_connect(APP), *b = it_connect(APP);

		for (size_t k = 0; k < 7 && cases[i].sql[k]; k++)
			PQclear(PQexec(a, cases[i].sql[k])); /* SELECT 1 / 0 fails: 22012 */
		ck_assert_int_eq(PQtransactionStatus(a), PQTRANS_IDLE);
		ck_assert_msg(strcmp(it_value(a, "SHOW work_mem"), cases[i].want) == 0,
			      "case %zu: A has work_mem %s, expected %s", i,
			      it_value(a, "SHOW work_mem"), cases[i].want);
		if (!cases[i].is_pinned) {
			/* the one server goes to B, with B's values, and back to A */
			ck_assert_str_eq(it_value(b, "SHOW work_mem"), DEF_WORK_MEM);
			ck_assert_str_eq(it_value(a, "SHOW work_mem"), cases[i].want);
		}
		PQfinish(a);
		ck_assert_str_eq(it_value(b, "SHOW work_mem"), DEF_WORK_MEM);
		PQfinish(b);
	}
}
END_TEST

/*
 * A ROLLBACK TO prepared as a named statement, or as the unnamed one, and
 * bound in a later transaction pins the server as the same text in a Query
 * does: A sees the SET it undid undone, and so does B after A.
 */
START_TEST(test_set_savepoint_prepared)
{
	for (int round = 0; round < 2; round++) {
		/* round 1: the unnamed statement, bound again without its Parse */
		const char *rb = round == 0 ? "rb" : "";
		PGconn *a = it_connect(APP), *b = it_connect(APP);
		long pins;

		prepare_ok(a, "b", "BEGIN", 0);
		prepare_ok(a, "s", "SAVEPOINT sp", 0);
		prepare_ok(a, "w", "SET work_mem = '21MB'", 0);
		prepare_ok(a, "c", "COMMIT", 0);
		prepare_ok(a, rb, "ROLLBACK TO SAVEPOINT sp", 0);
		pins = atol(it_pool_field("app", "app", "pins"));
		exec_prepared_ok(a, "b", NULL, NULL);
		exec_prepared_ok(a, "s", NULL, NULL);
		exec_prepared_ok(a, "w", NULL, NULL);
		exec_prepared_ok(a, rb, NULL, NULL);
		exec_prepared_ok(a, "c", NULL, NULL);
		ck_assert_str_eq(it_value(a, "SHOW work_mem"), DEF_WORK_MEM);
		ck_assert_int_eq(atol(it_pool_field("app", "app", "pins")), pins + 1);
		PQfinish(a);
		ck_assert_str_eq(it_value(b, "SHOW work_mem"), DEF_WORK_MEM);
		PQfinish(b);
	}
}
END_TEST

/* A SET in a transaction that commits is kept. */
START_TEST(test_set_commit)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);

	exec_ok(a, "BEGIN");
	exec_ok(a, "SET work_mem = '9MB'");
	exec_ok(a, "COMMIT");
	for (int i = 0; i < 2; i++) {
		ck_assert_str_eq(it_value(b, "SHOW work_mem"), DEF_WORK_MEM);
		ck_assert_str_eq(it_value(a, "SHOW work_mem"), "9MB");
	}
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* RESET, RESET ALL and DISCARD ALL go back to the startup values. */
START_TEST(test_set_reset)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	char a_app[256];

	snprintf(a_app, sizeof(a_app), "%s",
		 it_value(a, "SELECT current_setting('application_name')"));
	exec_ok(a, "SET work_mem = '5MB'");
	exec_ok(a, "SET application_name = 'client_a'");
	exec_ok(a, "SET statement_timeout = '1234ms'");
	ck_assert_str_eq(it_value(b, "SHOW work_mem"), DEF_WORK_MEM);
	exec_ok(a, "RESET work_mem");
	ck_assert_str_eq(it_value(b, "SHOW statement_timeout"), "0");
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), DEF_WORK_MEM);
	ck_assert_str_eq(it_value(a, "SHOW application_name"), "client_a");
	ck_assert_str_eq(it_value(a, "SHOW statement_timeout"), "1234ms");

	exec_ok(a, "RESET ALL");
	ck_assert_str_eq(it_value(b, "SHOW work_mem"), DEF_WORK_MEM);
	ck_assert_str_eq(it_value(a, "SHOW application_name"), a_app);
	ck_assert_str_eq(it_value(a, "SHOW statement_timeout"), "0");
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), DEF_WORK_MEM);

	exec_ok(a, "SET statement_timeout = '2s'");
	exec_ok(a, "SET work_mem = '6MB'");
	ck_assert_str_eq(it_value(b, "SHOW work_mem"), DEF_WORK_MEM);
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), "6MB");
	exec_ok(a, "DISCARD ALL");
	ck_assert_str_eq(it_value(b, "SHOW work_mem"), DEF_WORK_MEM);
	ck_assert_str_eq(it_value(a, "SHOW statement_timeout"), "0");
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), DEF_WORK_MEM);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* Startup options are in effect in every transaction of their client only. */
START_TEST(test_set_startup_options)
{
	PGconn *a = it_connect(APP " options='-c search_path=opt_schema'");
	PGconn *b = it_connect(APP);

	for (int round = 0; round < 3; round++) {
		ck_assert_str_eq(it_value(a, "SELECT current_setting('search_path')"),
				 "opt_schema");
		ck_assert_str_eq(it_value(a, "SELECT count(*) FROM only_opt"), "0");
		ck_assert_str_eq(it_value(b, "SELECT current_setting('search_path')"),
				 DEF_SEARCH_PATH);
		it_exec_error(b, "SELECT count(*) FROM only_opt", "42P01");
	}
	exec_ok(a, "BEGIN");
	ck_assert_str_eq(it_value(a, "SHOW search_path"), "opt_schema");
	exec_ok(a, "COMMIT");

	exec_ok(a, "SET search_path = a_schema");
	ck_assert_str_eq(it_value(b, "SHOW search_path"), DEF_SEARCH_PATH);
	ck_assert_str_eq(it_value(a, "SHOW search_path"), "a_schema");
	exec_ok(a, "RESET search_path");
	ck_assert_str_eq(it_value(b, "SHOW search_path"), DEF_SEARCH_PATH);
	ck_assert_str_eq(it_value(a, "SHOW search_path"), "opt_schema");

	exec_ok(a, "SET search_path = public");
	exec_ok(a, "RESET ALL");
	ck_assert_str_eq(it_value(b, "SHOW search_path"), DEF_SEARCH_PATH);
	ck_assert_str_eq(it_value(a, "SHOW search_path"), "opt_schema");

	exec_ok(a, "SET search_path = public");
	exec_ok(a, "DISCARD ALL");
	ck_assert_str_eq(it_value(b, "SHOW search_path"), DEF_SEARCH_PATH);
	ck_assert_str_eq(it_value(a, "SHOW search_path"), "opt_schema");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * A list value in a startup option is read as PostgreSQL reads it: a,b is
 * two names, unquoted names folded to lower case. (pgdog applied it with a
 * SET of one quoted literal: the one schema "opt_schema,Public".) Options
 * are refused with PostgreSQL's messages, and a long value is taken whole.
 */
START_TEST(test_set_startup_list)
{
	PGconn *a = it_connect(APP " options='-c search_path=opt_schema,Public'");
	PGconn *b = it_connect(APP);
	char opt[1600];

	for (int round = 0; round < 3; round++) {
		ck_assert_str_eq(it_value(a, "SELECT current_schemas(false)"),
				 "{opt_schema,public}");
		ck_assert_str_eq(it_value(a, "SHOW search_path"), "opt_schema,Public");
		ck_assert_str_eq(it_value(b, "SHOW search_path"), DEF_SEARCH_PATH);
	}
	PQfinish(a);
	ck_assert_ptr_nonnull(strstr(it_connect_fail("options='-c'"),
				     "invalid command-line argument for server process: -c"));
	ck_assert_ptr_nonnull(strstr(it_connect_fail("options='-c work_mem=1MB -c'"),
				     "invalid command-line argument for server process: -c"));
	ck_assert_ptr_nonnull(
		strstr(it_connect_fail("options='-c work_mem'"), "-c work_mem requires a value"));
	ck_assert_ptr_nonnull(
		strstr(it_connect_fail("options='--work-mem'"), "--work-mem requires a value"));
	ck_assert_ptr_nonnull(strstr(it_connect_fail("options='-c =1'"),
				     "unrecognized configuration parameter \"\""));
	/* the packet's own parameter wins over the same one in options */
	a = it_connect(APP " application_name=x options='-c application_name=y'");
	ck_assert_str_eq(it_value(b, "SELECT 1"), "1");
	ck_assert_str_eq(it_value(a, "SHOW application_name"), "x");
	PQfinish(a);
	/* a value longer than 1 KiB */
	snprintf(opt, sizeof(opt), APP " options='-c myapp.long=%01400d'", 7);
	a = it_connect(opt);
	ck_assert_str_eq(it_value(b, "SELECT 1"), "1");
	ck_assert_str_eq(it_value(a, "SELECT length(current_setting('myapp.long'))"), "1400");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* A login in a thread: when it ended, and its connection. */
struct login_arg {
	char conninfo[512];
	PGconn *conn;
	long long done_ms;
};

static void *
login_thread(void *p)
{
	struct login_arg *a = p;

	a->conn = PQconnectdb(a->conninfo);
	a->done_ms = it_now_ms();
	return NULL;
}

/*
 * Startup values are tried at login, as PostgreSQL checks them: an invalid
 * one refuses the login with PostgreSQL's error (pgdog logged it in, and
 * the client's first request got the FATAL), and the login's ParameterStatus
 * spells each value as the server does (German, DMY for german; pgdog
 * passed on the client's spelling). Values a server has taken need no
 * server at the next login: it goes through while the pool's one server is
 * held; a login with a new value waits for the server.
 */
START_TEST(test_set_startup_checked)
{
	PGconn *a, *pg = it_pg_connect(), *hold;
	struct login_arg la = { .conn = NULL };
	pthread_t th;
	const char *err;

	err = it_connect_fail(APP " options='-c work_mem=bogus'");
	ck_assert_msg(strstr(err, "invalid value for parameter \"work_mem\": \"bogus\""), "%s",
		      err);
	err = it_connect_fail(APP " options='-c DateStyle=iso -c no_such_setting=1'");
	ck_assert_msg(strstr(err, "unrecognized configuration parameter \"no_such_setting\""), "%s",
		      err);
	/* the server that refused them is not another client's problem */
	a = it_connect(APP);
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), it_value(pg, "SHOW work_mem"));
	PQfinish(a);
	for (int round = 0; round < 2; round++) {
		a = it_connect(APP " options='-c DateStyle=german -c TimeZone=utc'");
		ck_assert_str_eq(PQparameterStatus(a, "DateStyle"), "German, DMY");
		ck_assert_str_eq(PQparameterStatus(a, "TimeZone"), "UTC");
		ck_assert_str_eq(it_value(a, "SHOW DateStyle"), "German, DMY");
		PQfinish(a);
	}
	hold = it_connect(APP);
	exec_ok(hold, "BEGIN");
	ck_assert_str_eq(it_value(hold, "SELECT 1"), "1");
	a = it_connect(APP " options='-c DateStyle=german -c TimeZone=utc'");
	ck_assert_str_eq(PQparameterStatus(a, "DateStyle"), "German, DMY");
	snprintf(la.conninfo, sizeof(la.conninfo), "%s",
		 it_pgdog_dsn(APP " options='-c DateStyle=sql'"));
	ck_assert_int_eq(pthread_create(&th, NULL, login_thread, &la), 0);
	it_sleep_ms(400);
	long long released = it_now_ms();

	exec_ok(hold, "COMMIT");
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(PQstatus(la.conn), CONNECTION_OK);
	ck_assert_msg(la.done_ms >= released,
		      "a login with a new value did not wait for the server");
	ck_assert_str_eq(PQparameterStatus(la.conn, "DateStyle"), "SQL, MDY");
	ck_assert_str_eq(it_value(la.conn, "SHOW DateStyle"), "SQL, MDY");
	ck_assert_str_eq(it_value(a, "SHOW DateStyle"), "German, DMY");
	ck_assert_str_eq(it_value(hold, "SHOW DateStyle"), it_value(pg, "SHOW DateStyle"));
	PQfinish(la.conn);
	PQfinish(a);
	PQfinish(hold);
	PQfinish(pg);
}
END_TEST

static void
notice_keep(void *arg, const PGresult *res)
{
	char *out = arg;
	const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	snprintf(out + strlen(out), 512 - strlen(out), "%s %s|", code ? code : "-",
		 PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
}

/*
 * A startup application_name reaches the client as PostgreSQL takes it:
 * cut to 63 bytes at a character's start (with its NOTICE 42622 at login),
 * each byte outside printable ASCII as '?'. (pgdog reported it whole at
 * login and cut from the first request on.)
 */
START_TEST(test_set_startup_app_name)
{
	static const char *const names[] = {
		"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\xc3\xa9x",
		"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\xc3\xa9",
		"h\xc3\xa9llo\xe2\x82\xac",
		"plain",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char want[512] = "", got[512] = "", app[64];
		const char *info[] = { "host",   "port",     "user",
				       "dbname", "password", "application_name",
				       NULL };
		char port[16];
		const char *vals[7];
		PGconn *conns[2];

		for (int k = 0; k < 2; k++) {
			snprintf(port, sizeof(port), "%d", k ? g_it.port : g_it.pg_port);
			vals[0] = "127.0.0.1";
			vals[1] = port;
			vals[2] = k ? "app" : "postgres";
			vals[3] = k ? "app" : "postgres";
			vals[4] = k ? "app_pw" : "";
			vals[5] = names[i];
			vals[6] = NULL;
			/* the notices of the login itself: a processor set before it */
			conns[k] = PQconnectStartParams(info, vals, 0);
			PQsetNoticeReceiver(conns[k], notice_keep, k ? got : want);
			while (PQstatus(conns[k]) != CONNECTION_BAD) {
				PostgresPollingStatusType st = PQconnectPoll(conns[k]);

				if (st == PGRES_POLLING_OK || st == PGRES_POLLING_FAILED)
					break;
				it_sleep_ms(1);
			}
			ck_assert_msg(PQstatus(conns[k]) == CONNECTION_OK, "%s",
				      PQerrorMessage(conns[k]));
		}
		snprintf(app, sizeof(app), "%s", PQparameterStatus(conns[0], "application_name"));
		ck_assert_str_eq(PQparameterStatus(conns[1], "application_name"), app);
		ck_assert_str_eq(got, want);
		ck_assert_int_eq(strstr(want, "42622 identifier") != NULL, strlen(names[i]) > 63);
		ck_assert_str_eq(it_value(conns[1], "SHOW application_name"), app);
		ck_assert_str_eq(got, want); /* no second NOTICE when pgdog sets it */
		PQfinish(conns[0]);
		PQfinish(conns[1]);
	}
	ck_assert_str_eq(it_pg_value("SELECT 1"), "1");
}
END_TEST

/*
 * SET DateStyle naming only the output style (or only the field order)
 * keeps the other half of the current value: replayed on a server another
 * client used in between, the value is the client's whole one. (pgdog
 * replayed the SET's text: 'SQL, DMY' then 'ISO' came back as ISO, MDY,
 * and '01/02/2024' was read as 2 January.)
 */
START_TEST(test_set_datestyle_halves)
{
	static const char *const cases[][3] = {
		/* startup options, first SET, second SET */
		{ "", "SET DateStyle = 'SQL, DMY'", "SET DateStyle = 'ISO'" },
		{ "", "SET DateStyle = German", "SET DateStyle = YMD" },
		{ "", "SET DateStyle = 'SQL, DMY'", "SET DateStyle = US" },
		{ " options='-c DateStyle=SQL,DMY'", "SELECT 1", "SET DateStyle = ISO" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char dsn[256], want_style[64], want_date[64];
		PGconn *pg, *a, *b = it_connect(APP);

		snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%d user=postgres dbname=postgres%s",
			 g_it.pg_port, cases[i][0]);
		pg = PQconnectdb(dsn);
		ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "%s", PQerrorMessage(pg));
		snprintf(dsn, sizeof(dsn), "%s%s", APP, cases[i][0]);
		a = it_connect(dsn);
		for (int k = 1; k < 3; k++) {
			PQclear(it_exec_ok(pg, cases[i][k]));
			PQclear(it_exec_ok(a, cases[i][k]));
		}
		snprintf(want_style, sizeof(want_style), "%s", it_value(pg, "SHOW DateStyle"));
		snprintf(want_date, sizeof(want_date), "%s",
			 it_value(pg, "SELECT '01/02/03'::date::text"));
		/* another client's transaction on the one server, with the default DateStyle */
		ck_assert_str_eq(it_value(b, "SELECT 1"), "1");
		ck_assert_msg(strcmp(it_value(a, "SHOW DateStyle"), want_style) == 0,
			      "case %zu: DateStyle %s, PostgreSQL %s", i,
			      it_value(a, "SHOW DateStyle"), want_style);
		ck_assert_str_eq(it_value(a, "SELECT '01/02/03'::date::text"), want_date);
		ck_assert_str_eq(PQparameterStatus(a, "DateStyle"), want_style);
		PQfinish(a);
		PQfinish(b);
		PQfinish(pg);
	}
}
END_TEST

/*
 * A client whose client_encoding is not the server's, with non-ASCII SET
 * values, on a server another client used in between: pgdog sets
 * client_encoding in a Query of its own before the values (PostgreSQL
 * converts a whole Query from the encoding in force when it arrives: the
 * LATIN1 value failed as UTF8 and the client was disconnected).
 */
START_TEST(test_set_encoding_replay)
{
	PGconn *a = it_connect(APP " client_encoding=LATIN1"), *b = it_connect(APP);

	PQclear(it_exec_ok(a, "SET myapp.x = 'caf\xe9'"));
	PQclear(it_exec_ok(b, "SET myapp.y = 'b\xc3\xa9'"));
	for (int round = 0; round < 2; round++) {
		ck_assert_str_eq(it_value(a, "SHOW myapp.x"), "caf\xe9");
		ck_assert_str_eq(it_value(a, "SHOW client_encoding"), "LATIN1");
		ck_assert_str_eq(it_value(b, "SHOW myapp.y"), "b\xc3\xa9");
		ck_assert_str_eq(it_value(b, "SHOW client_encoding"), "UTF8");
	}
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * SET x = $1, which PostgreSQL refuses (42601), changes nothing and keeps
 * no server (libpg_query reads a parameter there, and pgdog took it for a
 * SET it could not replay: the client kept the pool's one server).
 */
START_TEST(test_set_param_refused)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;

	it_exec_error(a, "SET work_mem = $1", "42601");
	res = PQprepare(a, "s_param", "SET work_mem = $1", 0, NULL);
	ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "42601");
	PQclear(res);
	ck_assert_int_eq(PQsendQuery(b, "SELECT 'not pinned'"), 1);
	ck_assert_str_eq(it_value_within(b, 2000, "the other client"), "not pinned");
	ck_assert_str_eq(it_value(a, "SELECT 'a'"), "a");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * SETs made while standard_conforming_strings is off, replayed on a server
 * another client used in between (where it is on): the values are the
 * client's. (pgdog replayed the text as it was: 'a\\b' became two
 * backslashes, and 'a\'b' a syntax error that closed the connection.)
 */
START_TEST(test_set_scs_off_replay)
{
	static const char *const sets[] = {
		"SET standard_conforming_strings = off",
		"SET myapp.x = 'a\\\\b'",
		"SET myapp.y = 'a\\'b'",
		"SET search_path = 'c''d', \"e\"\"f\"",
	};
	static const char *const shows[] = { "SHOW myapp.x", "SHOW myapp.y", "SHOW search_path" };
	PGconn *pg = it_pg_connect(), *a = it_connect(APP), *b = it_connect(APP);

	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		PQclear(it_exec_ok(pg, sets[i]));
		PQclear(it_exec_ok(a, sets[i]));
	}
	for (int round = 0; round < 2; round++) {
		ck_assert_str_eq(it_value(b, "SHOW standard_conforming_strings"), "on");
		for (size_t i = 0; i < sizeof(shows) / sizeof(shows[0]); i++) {
			char want[64];

			snprintf(want, sizeof(want), "%s", it_value(pg, shows[i]));
			ck_assert_str_eq(it_value(a, shows[i]), want);
		}
	}
	PQfinish(a);
	PQfinish(b);
	PQfinish(pg);
}
END_TEST

/*
 * SET seed seeds random() once: the client's next values follow from it,
 * as in PostgreSQL, whoever else uses the pool. (pgdog replayed the SET on
 * every server it gave the client, and random() kept repeating its first
 * value.)
 */
START_TEST(test_set_seed)
{
	PGconn *a = it_connect(APP), *pg = it_pg_connect(), *adm = it_connect(ADMIN);

	exec_ok(pg, "SET seed = 0.5");
	exec_ok(a, "SET seed = 0.5");
	for (int i = 0; i < 4; i++) {
		char want[64];

		snprintf(want, sizeof(want), "%s", it_value(pg, "SELECT random()::text"));
		ck_assert_str_eq(it_value(a, "SELECT random()::text"), want);
		/* idle servers are closed: a's next transaction could land on a new one */
		PQclear(PQexec(adm, "RECONNECT app"));
	}
	PQfinish(adm);
	PQfinish(pg);
	PQfinish(a);
}
END_TEST

/*
 * Clients with the same startup values share the server without a SET
 * between them (pgdog remembers the server is in step with that set of
 * values); a client's own SET, RESET and another client's different
 * values must still be applied and undone at every change of client.
 */
START_TEST(test_set_same_startup_shared)
{
	PGconn *a1 = it_connect(APP " options='-c search_path=opt_schema'");
	PGconn *a2 = it_connect(APP " options='-c search_path=opt_schema'");
	PGconn *b = it_connect(APP);

	for (int round = 0; round < 3; round++) {
		ck_assert_str_eq(it_value(a1, "SHOW search_path"), "opt_schema");
		ck_assert_str_eq(it_value(a2, "SHOW search_path"), "opt_schema");
		ck_assert_str_eq(it_value(a1, "SHOW search_path"), "opt_schema");
		ck_assert_str_eq(it_value(b, "SHOW search_path"), DEF_SEARCH_PATH);
	}
	exec_ok(a1, "SET search_path = a_schema");
	ck_assert_str_eq(it_value(a2, "SHOW search_path"), "opt_schema");
	ck_assert_str_eq(it_value(a1, "SHOW search_path"), "a_schema");
	ck_assert_str_eq(it_value(a2, "SHOW search_path"), "opt_schema");
	ck_assert_str_eq(it_value(b, "SHOW search_path"), DEF_SEARCH_PATH);
	ck_assert_str_eq(it_value(a1, "SHOW search_path"), "a_schema");
	exec_ok(a1, "RESET search_path");
	ck_assert_str_eq(it_value(a1, "SHOW search_path"), "opt_schema");
	ck_assert_str_eq(it_value(a2, "SHOW search_path"), "opt_schema");
	exec_ok(a2, "SET work_mem = '5MB'");
	ck_assert_str_eq(it_value(a1, "SHOW work_mem"), DEF_WORK_MEM);
	ck_assert_str_eq(it_value(a2, "SHOW work_mem"), "5MB");
	ck_assert_str_eq(it_value(a1, "SHOW work_mem"), DEF_WORK_MEM);
	exec_ok(a2, "RESET ALL");
	ck_assert_str_eq(it_value(a2, "SHOW search_path"), "opt_schema");
	ck_assert_str_eq(it_value(a2, "SHOW work_mem"), DEF_WORK_MEM);
	ck_assert_str_eq(it_value(b, "SHOW search_path"), DEF_SEARCH_PATH);
	ck_assert_str_eq(it_value(a1, "SHOW search_path"), "opt_schema");
	PQfinish(a1);
	PQfinish(a2);
	PQfinish(b);
}
END_TEST

/*
 * pgdog takes a simple query that differs from the last one it found
 * nothing to track in only in the digits of its numbers for plain too.
 * Digits inside a $tag$ are not a number: here changing two of them moves a
 * SET out of a dollar-quoted string, and it must be tracked.
 */
START_TEST(test_set_hidden_by_digits)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);

	/* one string: plain */
	ck_assert_str_eq(
		it_value(a, "SELECT $a1$ $a2$; SET work_mem = '1MB'; SELECT $a2$ $a1$ AS v"),
		" $a2$; SET work_mem = '1MB'; SELECT $a2$ ");
	ck_assert_str_eq(it_value(a, "SELECT 10 + 1"), "11");
	ck_assert_str_eq(it_value(a, "SELECT 20 + 2"), "22");
	ck_assert_str_eq(
		it_value(a, "SELECT $a1$ $a2$; SET work_mem = '1MB'; SELECT $a2$ $a1$ AS v"),
		" $a2$; SET work_mem = '1MB'; SELECT $a2$ ");
	/* the same bytes but for two tag digits: three statements, a SET among them */
	ck_assert_str_eq(
		it_value(a, "SELECT $a2$ $a2$; SET work_mem = '1MB'; SELECT $a1$ $a1$ AS v"), " ");
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), "1MB");
	ck_assert_str_eq(it_value(b, "SHOW work_mem"), DEF_WORK_MEM);
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), "1MB");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * SET SESSION CHARACTERISTICS AS TRANSACTION sets the session's transaction
 * defaults: they follow A and never reach B. Several modes at once, which
 * pgdog does not replay, pin A's server until DISCARD ALL.
 */
START_TEST(test_set_session_characteristics)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);

	exec_ok(a, "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE");
	exec_ok(a, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY");
	for (int round = 0; round < 2; round++) {
		ck_assert_str_eq(it_value(b, "SHOW transaction_isolation"), "read committed");
		ck_assert_str_eq(it_value(b, "SHOW default_transaction_read_only"), "off");
		ck_assert_str_eq(it_value(a, "SHOW transaction_isolation"), "serializable");
		it_exec_error(a, "CREATE TABLE ro_t (x int)", "25006");
	}
	exec_ok(a, "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE");
	ck_assert_str_eq(it_value(b, "SHOW default_transaction_isolation"), "read committed");
	ck_assert_str_eq(it_value(a, "SHOW default_transaction_read_only"), "off");
	ck_assert_str_eq(it_value(a, "SHOW default_transaction_isolation"), "serializable");

	exec_ok(a, "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, "
		   "READ ONLY");
	ck_assert_int_eq(PQsendQuery(b, "SHOW default_transaction_isolation"), 1);
	ck_assert_msg(it_busy_for(b, 300), "B got A's server after several transaction modes");
	ck_assert_str_eq(it_value(a, "SHOW transaction_isolation"), "repeatable read");
	exec_ok(a, "DISCARD ALL");
	ck_assert_str_eq(it_value_within(b, 2000, "B after A's DISCARD ALL"), "read committed");
	ck_assert_str_eq(it_value(b, "SHOW default_transaction_read_only"), "off");
	ck_assert_str_eq(it_value(a, "SHOW transaction_isolation"), "read committed");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * A Query of more statements than one classification holds (16): the SETs
 * among the later ones are tracked too, and the server is not kept.
 */
START_TEST(test_set_long_query)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	char sql[4096];
	size_t n = 0;

	for (int i = 0; i < 40; i++) {
		if (i == 25)
			n += (size_t)snprintf(sql + n, sizeof(sql) - n, "SET work_mem = '3MB'; ");
		else if (i == 38)
			n += (size_t)snprintf(sql + n, sizeof(sql) - n,
					      "SET search_path = a_schema, public; ");
		else
			n += (size_t)snprintf(sql + n, sizeof(sql) - n, "SELECT %d; ", i);
	}
	exec_ok(a, sql);
	for (int round = 0; round < 2; round++) {
		ck_assert_str_eq(it_value(b, "SHOW work_mem"), DEF_WORK_MEM);
		ck_assert_str_eq(it_value(b, "SHOW search_path"), DEF_SEARCH_PATH);
		ck_assert_str_eq(it_value(a, "SHOW work_mem"), "3MB");
		ck_assert_str_eq(it_value(a, "SHOW search_path"), "a_schema, public");
	}
	/* RESET ALL among them, late */
	n = 0;
	for (int i = 0; i < 20; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "SELECT %d; ", i);
	snprintf(sql + n, sizeof(sql) - n, "RESET ALL");
	exec_ok(a, sql);
	ck_assert_str_eq(it_value(b, "SHOW work_mem"), DEF_WORK_MEM);
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), DEF_WORK_MEM);
	ck_assert_str_eq(it_value(a, "SHOW search_path"), DEF_SEARCH_PATH);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * A pipeline of requests: the SET of a later request whose implicit
 * transaction fails is not kept, although its messages came in before the
 * first request's ReadyForQuery; the SET of a request that commits is.
 */
START_TEST(test_set_pipeline)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;
	static const ExecStatusType want[] = { PGRES_TUPLES_OK,     PGRES_PIPELINE_SYNC,
					       PGRES_COMMAND_OK,    PGRES_FATAL_ERROR,
					       PGRES_PIPELINE_SYNC, PGRES_COMMAND_OK,
					       PGRES_PIPELINE_SYNC };

	ck_assert_int_eq(PQenterPipelineMode(a), 1);
	ck_assert_int_eq(PQsendQueryParams(a, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0), 1);
	ck_assert_int_eq(PQpipelineSync(a), 1);
	ck_assert_int_eq(PQsendQueryParams(a, "SET work_mem = '7MB'", 0, NULL, NULL, NULL, NULL, 0),
			 1);
	ck_assert_int_eq(PQsendQueryParams(a, "SELECT 1 / 0", 0, NULL, NULL, NULL, NULL, 0), 1);
	ck_assert_int_eq(PQpipelineSync(a), 1);
	ck_assert_int_eq(
		PQsendQueryParams(a, "SET statement_timeout = '77s'", 0, NULL, NULL, NULL, NULL, 0),
		1);
	ck_assert_int_eq(PQpipelineSync(a), 1);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		res = PQgetResult(a);
		ck_assert_msg(res && PQresultStatus(res) == want[i], "result %zu: %s", i,
			      res ? PQresStatus(PQresultStatus(res)) : "none");
		PQclear(res);
		if (want[i] != PGRES_PIPELINE_SYNC)
			ck_assert_ptr_null(PQgetResult(a));
	}
	ck_assert_int_eq(PQexitPipelineMode(a), 1);
	for (int round = 0; round < 2; round++) {
		ck_assert_str_eq(it_value(b, "SHOW statement_timeout"), "0");
		ck_assert_str_eq(it_value(a, "SHOW work_mem"), DEF_WORK_MEM);
		ck_assert_str_eq(it_value(a, "SHOW statement_timeout"), "77s");
	}
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* Each client's ParameterStatus values are its own. */
START_TEST(test_set_parameter_status)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	char pa[32], pb[32];

	ck_assert_str_eq(PQparameterStatus(a, "DateStyle"), "ISO, MDY");
	ck_assert_str_eq(PQparameterStatus(b, "DateStyle"), "ISO, MDY");
	exec_ok(a, "SET DateStyle = 'German, DMY'");
	ck_assert_str_eq(PQparameterStatus(a, "DateStyle"), "German, DMY");
	for (int round = 0; round < 2; round++) {
		ck_assert_str_eq(it_value(b, "SHOW DateStyle"), "ISO, MDY");
		ck_assert_str_eq(it_value(b, "SELECT '2024-03-05'::date::text"), "2024-03-05");
		ck_assert_str_eq(PQparameterStatus(b, "DateStyle"), "ISO, MDY");
		ck_assert_str_eq(it_value(a, "SHOW DateStyle"), "German, DMY");
		ck_assert_str_eq(it_value(a, "SELECT '2024-03-05'::date::text"), "05.03.2024");
		ck_assert_str_eq(PQparameterStatus(a, "DateStyle"), "German, DMY");
	}
	backend_pid(a, pa, sizeof(pa));
	backend_pid(b, pb, sizeof(pb));
	ck_assert_msg(strcmp(pa, pb) == 0, "A on backend %s, B on %s: the test proves nothing", pa,
		      pb);
	ck_assert_str_eq(PQparameterStatus(b, "DateStyle"), "ISO, MDY");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * A SET prepared as a named statement (drivers that cache statements,
 * asyncpg's fetch() among them) takes effect each time it runs, not when it
 * is prepared: B's turn in between makes pgdog set A's values again.
 */
START_TEST(test_set_prepared)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	char a_app[256];

	snprintf(a_app, sizeof(a_app), "%s", PQparameterStatus(a, "application_name"));
	prepare_ok(a, "set_a", "SET search_path = a_schema, public", 0);
	prepare_ok(a, "set_opt", "SET search_path = opt_schema", 0);
	prepare_ok(a, "reset_sp", "RESET search_path", 0);
	prepare_ok(a, "set_app", "SET application_name = 'prepared_app'", 0);
	prepare_ok(a, "reset_all", "RESET ALL", 0);
	/* prepared, not run: nothing changed */
	ck_assert_str_eq(it_value(b, "SHOW search_path"), DEF_SEARCH_PATH);
	ck_assert_str_eq(it_value(a, "SHOW search_path"), DEF_SEARCH_PATH);
	ck_assert_str_eq(it_value(a, "SHOW application_name"), a_app);
	ck_assert_str_eq(PQparameterStatus(a, "application_name"), a_app);

	exec_prepared_ok(a, "set_a", NULL, NULL);
	ck_assert_str_eq(it_value(b, "SHOW search_path"), DEF_SEARCH_PATH);
	ck_assert_str_eq(it_value(a, "SHOW search_path"), "a_schema, public");
	ck_assert_str_eq(it_value(a, "SELECT count(*) FROM only_a"), "0");

	/* run again after a RESET: in effect again */
	exec_ok(a, "RESET search_path");
	ck_assert_str_eq(it_value(b, "SHOW search_path"), DEF_SEARCH_PATH);
	ck_assert_str_eq(it_value(a, "SHOW search_path"), DEF_SEARCH_PATH);
	exec_prepared_ok(a, "set_opt", NULL, NULL);
	exec_prepared_ok(a, "set_a", NULL, NULL);
	ck_assert_str_eq(it_value(b, "SHOW search_path"), DEF_SEARCH_PATH);
	ck_assert_str_eq(it_value(a, "SHOW search_path"), "a_schema, public");
	exec_prepared_ok(a, "reset_sp", NULL, NULL);
	ck_assert_str_eq(it_value(b, "SHOW search_path"), DEF_SEARCH_PATH);
	ck_assert_str_eq(it_value(a, "SHOW search_path"), DEF_SEARCH_PATH);

	/* in a transaction that rolls back: not kept */
	exec_ok(a, "BEGIN");
	exec_prepared_ok(a, "set_opt", NULL, NULL);
	ck_assert_str_eq(it_value(a, "SHOW search_path"), "opt_schema");
	exec_ok(a, "ROLLBACK");
	ck_assert_str_eq(it_value(b, "SHOW search_path"), DEF_SEARCH_PATH);
	ck_assert_str_eq(it_value(a, "SHOW search_path"), DEF_SEARCH_PATH);

	/* a reported parameter: ParameterStatus follows the run, not the Parse */
	exec_prepared_ok(a, "set_app", NULL, NULL);
	ck_assert_str_eq(PQparameterStatus(a, "application_name"), "prepared_app");
	ck_assert_str_ne(it_value(b, "SHOW application_name"), "prepared_app");
	ck_assert_str_eq(it_value(a, "SHOW application_name"), "prepared_app");
	exec_prepared_ok(a, "set_opt", NULL, NULL);
	exec_prepared_ok(a, "reset_all", NULL, NULL);
	ck_assert_str_eq(it_value(b, "SHOW search_path"), DEF_SEARCH_PATH);
	ck_assert_str_eq(it_value(a, "SHOW search_path"), DEF_SEARCH_PATH);
	ck_assert_str_eq(it_value(a, "SHOW application_name"), a_app);
	ck_assert_str_eq(PQparameterStatus(a, "application_name"), a_app);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* ---- pinning ------------------------------------------------------------- */

static void
setup_pin(void)
{
	setup_pg("pin");
	/* named prepared statements pin only when pgdog does not track them */
	start_pgdog("pooler_mode = transaction\nprepared_statements = disabled");
}

/* A session advisory lock keeps the server until pg_advisory_unlock_all(). */
START_TEST(test_pin_advisory_lock)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	char pa[32];

	backend_pid(a, pa, sizeof(pa));
	ck_assert_str_eq(it_value(a, "SELECT pg_advisory_lock(42)"), "");
	ck_assert_int_eq(PQsendQuery(b, "SELECT pg_backend_pid()"), 1);
	ck_assert_msg(it_busy_for(b, 300), "B got the server while A held an advisory lock on it");
	for (int i = 0; i < 3; i++)
		ck_assert_str_eq(it_value(a, "SELECT count(*) FROM pg_locks WHERE locktype = "
					     "'advisory' AND pid = pg_backend_pid()"),
				 "1");
	ck_assert_msg(it_busy_for(b, 100), "B got the server while A held an advisory lock on it");
	ck_assert_str_eq(it_value(a, "SELECT pg_advisory_unlock_all()"), "");
	ck_assert_str_eq(it_value_within(b, 2000, "B after A's pg_advisory_unlock_all()"), pa);
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"),
			 "0");
	ck_assert_str_eq(it_value(a, "SELECT 'a'"), "a");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * What a DO block's body leaves in the session (a SET, set_config(), an
 * advisory lock) is not seen by pgdog: the server stays with the client,
 * which keeps its setting, and no other client gets that server with it.
 * (The setting went to the next client on that server, and the client
 * that made it lost it on another server.)
 */
START_TEST(test_pin_do_block)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	char pa[32];

	exec_ok(a, "DO $$BEGIN SET work_mem = '5MB'; "
		   "PERFORM set_config('lock_timeout', '12s', false); END$$");
	backend_pid(a, pa, sizeof(pa));
	ck_assert_int_eq(PQsendQuery(b, "SELECT current_setting('work_mem')"), 1);
	ck_assert_msg(it_busy_for(b, 300), "B got the server A's DO block set work_mem on");
	for (int i = 0; i < 3; i++) {
		ck_assert_str_eq(it_value(a, "SHOW work_mem"), "5MB");
		ck_assert_str_eq(it_value(a, "SHOW lock_timeout"), "12s");
	}
	PQfinish(a);
	/* the server comes back reset */
	ck_assert_str_eq(it_value_within(b, 3000, "B after A left"), DEF_WORK_MEM);
	ck_assert_str_eq(it_value(b, "SHOW lock_timeout"), "0");
	/* a DO block that sets nothing for the session does not pin */
	exec_ok(b, "DO $$DECLARE v int; BEGIN SELECT 1 INTO v; END$$");
	a = it_connect(APP);
	ck_assert_str_eq(it_value(a, "SELECT 'a'"), "a");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* A temporary table works across transactions; the next client does not see it. */
START_TEST(test_pin_temp_table)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	char pa[32], want[16];

	backend_pid(a, pa, sizeof(pa));
	exec_ok(a, "CREATE TEMP TABLE t (x int)");
	for (int i = 1; i <= 3; i++) {
		exec_ok(a, "INSERT INTO t VALUES (1)");
		snprintf(want, sizeof(want), "%d", i);
		ck_assert_str_eq(it_value(a, "SELECT count(*) FROM t"), want);
	}
	ck_assert_int_eq(PQsendQuery(b, "SELECT pg_backend_pid()"), 1);
	ck_assert_msg(it_busy_for(b, 300), "B got the server while A had a temporary table on it");
	exec_ok(a, "INSERT INTO t VALUES (1)");
	ck_assert_str_eq(it_value(a, "SELECT count(*) FROM t"), "4");
	PQfinish(a);
	ck_assert_str_eq(it_value_within(b, 3000, "B after A left"), pa);
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_tables WHERE tablename = 't' AND "
				     "schemaname LIKE 'pg_temp%'"),
			 "0");
	PQfinish(b);
}
END_TEST

/*
 * A DISCARD ALL pipelined behind a request whose failure aborts the
 * transaction is refused by PostgreSQL (25P02): the temporary table stays,
 * and so does the pin. pgdog took it as run, released the server after the
 * ROLLBACK, and the next client saw the table.
 */
START_TEST(test_pin_discard_refused)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	const char *sqls[] = { "BEGIN", "SELECT 1/0", "DISCARD ALL", "ROLLBACK" };
	char pa[32], got[256];

	backend_pid(a, pa, sizeof(pa));
	exec_ok(a, "CREATE TEMP TABLE t (x int)");
	ck_assert_int_eq(it_raw_send_queries(PQsocket(a), sqls, 4), 0);
	it_raw_types(PQsocket(a), 4, IT_RAW_STATES | IT_RAW_NO_PARAMS, got, sizeof(got));
	ck_assert_str_eq(got, "C Z E(22012) Z E(25P02) Z C Z");
	ck_assert_int_eq(PQsendQuery(b, "SELECT pg_backend_pid()"), 1);
	ck_assert_msg(it_busy_for(b, 300), "B got the server while A had a temporary table on it");
	ck_assert_str_eq(it_value(a, "SELECT count(*) FROM t"), "0");
	/* one that runs drops it: the server is free */
	exec_ok(a, "DISCARD ALL");
	ck_assert_str_eq(it_value_within(b, 3000, "B after A's DISCARD ALL"), pa);
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_tables WHERE tablename = 't' AND "
				     "schemaname LIKE 'pg_temp%'"),
			 "0");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* A named prepared statement (prepared_statements = disabled) keeps the server. */
START_TEST(test_pin_prepared)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;
	char pa[32];

	backend_pid(a, pa, sizeof(pa));
	res = PQprepare(a, "s1", "SELECT $1::int + 1", 1, NULL);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(a));
	PQclear(res);
	for (int i = 0; i < 20; i++) {
		char v[16], want[16];
		const char *p[1] = { v };

		snprintf(v, sizeof(v), "%d", i);
		snprintf(want, sizeof(want), "%d", i + 1);
		res = PQexecPrepared(a, "s1", 1, p, NULL, NULL, 0);
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "#%d: %s", i,
			      PQerrorMessage(a));
		ck_assert_str_eq(PQgetvalue(res, 0, 0), want);
		PQclear(res);
	}
	ck_assert_int_eq(PQsendQuery(b, "SELECT pg_backend_pid()"), 1);
	ck_assert_msg(it_busy_for(b, 300),
		      "B got the server while A had a prepared statement on it");
	res = PQexecPrepared(a, "s1", 1, (const char *[]){ "41" }, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(a));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "42");
	PQclear(res);
	PQfinish(a);
	ck_assert_str_eq(it_value_within(b, 3000, "B after A left"), pa);
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_prepared_statements"), "0");
	PQfinish(b);
}
END_TEST

/*
 * prepared_statements = disabled: the unnamed statement passes as it is, and
 * is not prepared again elsewhere. A request that binds the unnamed
 * statement of an earlier one on a server whose unnamed statement is now
 * another client's gets 26000, never the other client's rows.
 */
START_TEST(test_pin_unnamed_other_client)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;

	for (int round = 0; round < 2; round++) {
		prepare_ok(a, "", "SELECT 'a'", 0);
		exec_prepared_ok(a, "", NULL, "a"); /* nobody in between: its own */
		prepare_ok(b, "", "SELECT 'b'", 0);
		exec_prepared_error(a, "", NULL, "26000");
		res = PQdescribePrepared(a, "");
		assert_sqlstate(res, "26000");
		PQclear(res);
		/* in a transaction block: the block is aborted, as PostgreSQL does */
		exec_ok(a, "BEGIN");
		exec_prepared_error(a, "", NULL, "26000");
		it_exec_error(a, "SELECT 1", "25P02");
		exec_ok(a, "ROLLBACK");
		/* A's queries on the one server dropped B's unnamed statement there */
		exec_prepared_error(b, "", NULL, "26000");
		prepare_ok(b, "", "SELECT 'b'", 0);
		exec_prepared_ok(b, "", NULL, "b");
	}
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* LISTEN keeps the server; notifications reach the client while it is idle. */
START_TEST(test_pin_listen)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGconn *direct = it_pg_connect();
	PGnotify *n;
	char pa[32];

	backend_pid(a, pa, sizeof(pa));
	exec_ok(a, "LISTEN chan");
	exec_ok(direct, "NOTIFY chan, 'one'");
	n = it_wait_notify(a, 3000);
	ck_assert_msg(n != NULL, "no notification within 3 s");
	ck_assert_str_eq(n->relname, "chan");
	ck_assert_str_eq(n->extra, "one");
	PQfreemem(n);
	ck_assert_int_eq(PQsendQuery(b, "SELECT pg_backend_pid()"), 1);
	ck_assert_msg(it_busy_for(b, 300), "B got the server while A listened on it");
	exec_ok(direct, "NOTIFY chan, 'two'");
	n = it_wait_notify(a, 3000);
	ck_assert_msg(n != NULL, "no second notification within 3 s");
	ck_assert_str_eq(n->extra, "two");
	ck_assert_int_eq(n->be_pid, atoi(it_value(direct, "SELECT pg_backend_pid()")));
	PQfreemem(n);
	PQfinish(a);
	ck_assert_str_eq(it_value_within(b, 3000, "B after A left"), pa);
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_listening_channels()"), "0");
	PQfinish(direct);
	PQfinish(b);
}
END_TEST

/*
 * UNLISTEN * and pg_advisory_unlock_all() give the server back only when
 * they ran and their transaction committed: a failed Query, a ROLLBACK, a
 * ROLLBACK TO SAVEPOINT keep the LISTEN (PostgreSQL undoes the UNLISTEN),
 * an error before the unlock keeps the lock, a lock taken after it in the
 * same Query stays, and a Parse of UNLISTEN * runs nothing. Each of these
 * released the pin, and the next client got the server with the LISTEN or
 * the lock on it.
 */
START_TEST(test_pin_release_needs_commit)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	static const char listening[] = "SELECT count(*) FROM pg_listening_channels()";
	static const char locks[] = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
				    "AND pid = pg_backend_pid()";
	PGresult *res;
	char pa[32];

	backend_pid(a, pa, sizeof(pa));
	exec_ok(a, "LISTEN chan");
	ck_assert_int_eq(PQsendQuery(b, "SELECT pg_backend_pid()"), 1);
	ck_assert_msg(it_busy_for(b, 300), "B got the server while A listened on it");
	it_exec_error(a, "UNLISTEN *; SELECT 1/0", "22012");
	ck_assert_str_eq(it_value(a, listening), "1");
	ck_assert_msg(it_busy_for(b, 100), "B got the server after a failed UNLISTEN *");
	exec_ok(a, "BEGIN");
	exec_ok(a, "UNLISTEN *");
	exec_ok(a, "ROLLBACK");
	ck_assert_str_eq(it_value(a, listening), "1");
	ck_assert_msg(it_busy_for(b, 100), "B got the server after UNLISTEN * rolled back");
	exec_ok(a, "BEGIN; SAVEPOINT s; UNLISTEN *; ROLLBACK TO SAVEPOINT s; COMMIT");
	ck_assert_str_eq(it_value(a, listening), "1");
	ck_assert_msg(it_busy_for(b, 100), "B got the server after UNLISTEN * rolled back to a "
					   "savepoint");
	res = PQprepare(a, "", "UNLISTEN *", 0, NULL);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(a));
	PQclear(res);
	ck_assert_str_eq(it_value(a, listening), "1");
	ck_assert_msg(it_busy_for(b, 100), "B got the server after a Parse of UNLISTEN *");
	exec_ok(a, "UNLISTEN *; SELECT pg_advisory_lock(43)");
	it_exec_error(a, "SELECT 1/0; SELECT pg_advisory_unlock_all()", "22012");
	ck_assert_str_eq(it_value(a, locks), "1");
	ck_assert_msg(it_busy_for(b, 100), "B got the server after an unlock that did not run");
	exec_ok(a, "SELECT pg_advisory_unlock_all(); SELECT pg_advisory_lock(44)");
	ck_assert_str_eq(it_value(a, locks), "1");
	ck_assert_msg(it_busy_for(b, 100), "B got the server with a lock taken after the unlock");
	exec_ok(a, "SELECT pg_advisory_unlock_all()");
	ck_assert_str_eq(it_value_within(b, 2000, "B after A's unlock"), pa);
	ck_assert_str_eq(it_value(b, listening), "0");
	ck_assert_str_eq(it_value(b, locks), "0");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * What pgdog cannot count (pg_advisory_unlock() of a lock taken twice, one
 * UNLISTEN of two LISTENs, CLOSE of one cursor, DROP of one temporary
 * object, a temporary table dropped at commit or rolled back) is asked of
 * the server once the client is idle: the server goes back to the pool when
 * it holds none of it, and stays while it holds some. Before, any of these
 * kept the server pinned until the client left. (Named statements: it_prepfull
 * test_pins_asked_named.)
 */
START_TEST(test_pin_release_asked)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP), *pg = it_pg_connect();
	static const char listening[] = "SELECT count(*) FROM pg_listening_channels()";
	static const char locks[] = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
				    "AND pid = pg_backend_pid()";
	const char *params[1] = { "46" };
	PGresult *res;
	PGnotify *n;
	char pa[32];

	backend_pid(a, pa, sizeof(pa));
	exec_ok(a, "SELECT pg_advisory_lock(46); SELECT pg_advisory_lock(46)");
	it_server_held(b, "A holds a lock");
	exec_ok(a, "SELECT pg_advisory_unlock(46)");
	it_server_held(b, "A holds the lock once more");
	ck_assert_str_eq(it_value(a, locks), "1");
	/* extended protocol, unnamed */
	res = PQexecParams(a, "SELECT pg_advisory_unlock($1::bigint)", 1, NULL, params, NULL, NULL,
			   0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(a));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "t");
	PQclear(res);
	it_server_gone(b, pa, "B after A's last unlock");
	ck_assert_str_eq(it_value(b, locks), "0");

	exec_ok(a, "LISTEN one; LISTEN two");
	it_server_held(b, "A listens");
	exec_ok(a, "UNLISTEN one");
	it_server_held(b, "A still listens on two");
	PQclear(PQexec(pg, "NOTIFY two, 'n1'"));
	n = it_wait_notify(a, 2000);
	ck_assert_msg(n != NULL, "A did not get its notification");
	ck_assert_str_eq(n->relname, "two");
	PQfreemem(n);
	exec_ok(a, "BEGIN; UNLISTEN two; ROLLBACK");
	it_server_held(b, "A's UNLISTEN was rolled back");
	exec_ok(a, "UNLISTEN two");
	it_server_gone(b, pa, "B after A's last UNLISTEN");
	ck_assert_str_eq(it_value(b, listening), "0");

	exec_ok(a, "DECLARE c1 CURSOR WITH HOLD FOR SELECT 1; "
		   "DECLARE c2 CURSOR WITH HOLD FOR SELECT 2");
	it_server_held(b, "A holds cursors");
	exec_ok(a, "CLOSE c1");
	it_server_held(b, "A holds a cursor");
	exec_ok(a, "CLOSE c2");
	it_server_gone(b, pa, "B after A closed its cursors");
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_cursors"), "0");

	exec_ok(a, "CREATE TEMP TABLE tt1 (a int); CREATE FUNCTION pg_temp.tf() RETURNS int "
		   "LANGUAGE sql AS 'SELECT 1'");
	it_server_held(b, "A has a temporary table and function");
	exec_ok(a, "DROP TABLE tt1");
	it_server_held(b, "A has a temporary function");
	exec_ok(a, "DROP FUNCTION pg_temp.tf()");
	it_server_gone(b, pa, "B after A dropped its temporary objects");
	exec_ok(a, "BEGIN; CREATE TEMP TABLE tt2 (a int) ON COMMIT DROP; COMMIT");
	it_server_gone(b, pa, "B after A's temporary table was dropped at commit");
	exec_ok(a, "BEGIN; CREATE TEMP TABLE tt3 (a int); ROLLBACK");
	it_server_gone(b, pa, "B after A's temporary table was rolled back");
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_class WHERE relnamespace = "
				     "pg_my_temp_schema()"),
			 "0");
	/* A leaves while pgdog asks its server: its Terminate is not lost in between */
	exec_ok(a, "CREATE TEMP TABLE tt4 (a int)");
	PQfinish(a);
	it_server_gone(b, pa, "B after A left");
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_class WHERE relnamespace = "
				     "pg_my_temp_schema()"),
			 "0");
	PQfinish(b);
	PQfinish(pg);
}
END_TEST

/*
 * a runs set (B, waiting with its query, must not get the server), ask
 * answers as on a, a runs reset, and B gets a's server (pid pa), where ask
 * answers base.
 */
static void
role_set_reset(PGconn *a, PGconn *b, const char *pa, const char *set, const char *ask,
	       const char *as, const char *reset, const char *base)
{
	exec_ok(a, set);
	it_server_held(b, set);
	ck_assert_str_eq(it_value(a, ask), as);
	exec_ok(a, "SELECT 1");
	it_server_held(b, set);
	exec_ok(a, reset);
	it_server_gone(b, pa, reset);
	ck_assert_str_eq(it_value(b, ask), base);
}

/*
 * SET ROLE and SET SESSION AUTHORIZATION pin the server while a role is in
 * force there: RESET ROLE, SET ROLE NONE, RESET SESSION AUTHORIZATION or a
 * rolled-back SET ROLE give it back (the server is asked, as for
 * test_pin_release_asked). A SET made while a role may be in force keeps it
 * (pgdog's SET on another server would be the login role's) until DISCARD
 * ALL. Before, SET ROLE kept the server until the client left.
 */
START_TEST(test_pin_role_asked)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP), *adm;
	PGresult *res;
	char pa[32];

	it_pg_exec("DROP ROLE IF EXISTS pin_role; CREATE ROLE pin_role; GRANT pin_role TO app");
	backend_pid(a, pa, sizeof(pa));
	role_set_reset(a, b, pa, "SET ROLE pin_role", "SELECT current_user", "pin_role",
		       "RESET ROLE", "app");
	exec_ok(a, "SELECT 1; SET ROLE pin_role");
	it_server_held(b, "A set a role in a Query of two statements");
	exec_ok(a, "BEGIN; RESET ROLE; ROLLBACK");
	it_server_held(b, "A's RESET ROLE was rolled back");
	ck_assert_str_eq(it_value(a, "SELECT current_user"), "pin_role");
	exec_ok(a, "SET ROLE NONE");
	it_server_gone(b, pa, "B after A's SET ROLE NONE");
	exec_ok(a, "BEGIN; SET ROLE pin_role; ROLLBACK");
	it_server_gone(b, pa, "B after A's SET ROLE was rolled back");
	ck_assert_str_eq(it_value(b, "SELECT current_user"), "app");

	/* extended protocol, unnamed; SET role TO: the GUC's own spelling */
	res = PQexecParams(a, "SET role TO pin_role", 0, NULL, NULL, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(a));
	PQclear(res);
	it_server_held(b, "A set a role (extended protocol)");
	res = PQexecParams(a, "RESET ROLE", 0, NULL, NULL, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(a));
	PQclear(res);
	it_server_gone(b, pa, "B after A's RESET ROLE (extended protocol)");

	/* a SET under the role stays with that server */
	exec_ok(a, "SET ROLE pin_role; SET work_mem = '5MB'; RESET ROLE");
	it_server_held(b, "A set work_mem while a role was in force");
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), "5MB");
	exec_ok(a, "DISCARD ALL");
	it_server_gone(b, pa, "B after A's DISCARD ALL");
	ck_assert_str_eq(it_value(b, "SHOW work_mem"), DEF_WORK_MEM);

	/* SET SESSION AUTHORIZATION: a superuser's, known to a backend when it logs in */
	it_pg_exec("ALTER ROLE app SUPERUSER");
	adm = it_connect(ADMIN);
	PQclear(it_exec_ok(adm, "RECONNECT app"));
	PQfinish(adm);
	backend_pid(a, pa, sizeof(pa));
	role_set_reset(a, b, pa, "SET SESSION AUTHORIZATION pin_role", "SELECT session_user",
		       "pin_role", "RESET SESSION AUTHORIZATION", "app");
	it_pg_exec("ALTER ROLE app NOSUPERUSER");
	ck_assert_str_eq(it_value(a, "SELECT current_user"), "app");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * LOAD pins the server, DISCARD ALL or not, and the server is closed when
 * its client leaves: no reset unloads a library. Before, LOAD pinned
 * nothing: the next client's transaction ran in a process with it loaded.
 */
START_TEST(test_pin_load)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	static const char loaded[] = "SELECT coalesce(current_setting("
				     "'auto_explain.log_min_duration', true), 'none')";
	char pa[32];

	it_pg_exec("ALTER ROLE app SUPERUSER"); /* auto_explain is not in $libdir/plugins */
	backend_pid(a, pa, sizeof(pa));
	exec_ok(a, "LOAD 'auto_explain'");
	it_server_held(b, "A loaded a library");
	ck_assert_str_eq(it_value(a, loaded), "-1");
	exec_ok(a, "DISCARD ALL");
	it_server_held(b, "A loaded a library (DISCARD ALL does not unload it)");
	ck_assert_str_eq(it_value(a, "SELECT pg_backend_pid()"), pa);
	PQfinish(a);
	ck_assert_str_ne(it_value_within(b, 3000, "B after A left"), pa);
	ck_assert_str_eq(it_value(b, loaded), "none");
	it_pg_exec("ALTER ROLE app NOSUPERUSER");
	PQfinish(b);
}
END_TEST

/*
 * A client pinned to its server, whose startup value (application_name) a
 * RESET ALL or RESET changes there, gets that command's ReadyForQuery:
 * pgdog sets the startup value again behind it. That ReadyForQuery went
 * with the replies of pgdog's own SET, and the client waited for ever.
 */
START_TEST(test_pin_reset_startup_value)
{
	PGconn *a = it_connect(APP " application_name=pin_app");
	static const char *const resets[] = { "RESET ALL", "RESET application_name",
					      "SET application_name TO DEFAULT" };

	ck_assert_str_eq(it_value(a, "SELECT pg_advisory_lock(45)"), "");
	for (size_t i = 0; i < sizeof(resets) / sizeof(resets[0]); i++) {
		PGresult *res;

		exec_ok(a, "SET application_name = 'changed'");
		ck_assert_int_eq(PQsendQuery(a, resets[i]), 1);
		res = it_result_within(a, 3000);
		ck_assert_msg(res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s",
			      resets[i], PQerrorMessage(a));
		PQclear(res);
		ck_assert_msg(!it_busy_for(a, 2000), "%s: no ReadyForQuery within 2 s", resets[i]);
		ck_assert(PQgetResult(a) == NULL);
		ck_assert_str_eq(it_value(a, "SHOW application_name"), "pin_app");
	}
	ck_assert_str_eq(it_value(a, "SELECT pg_advisory_unlock_all()"), "");
	/*
	 * It leaves right after such a RESET, while pgdog's SET runs: its
	 * Terminate waited for that SET's reply, and nothing ended the client
	 * when it came (the server stayed with it, the next client waited).
	 */
	ck_assert_str_eq(it_value(a, "SELECT pg_advisory_lock(45)"), "");
	exec_ok(a, "SET application_name = 'changed'");
	exec_ok(a, "RESET ALL");
	PQfinish(a);
	a = it_connect(APP);
	ck_assert_int_eq(PQsendQuery(a, "SELECT count(*) FROM pg_locks WHERE locktype = "
					"'advisory' AND pid = pg_backend_pid()"),
			 1);
	ck_assert_str_eq(it_value_within(a, 2000, "the next client"), "0");
	PQfinish(a);
}
END_TEST

/* Everything a client pinned the server with is gone for the next client. */
START_TEST(test_pin_released_on_disconnect)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;
	char pa[32];

	backend_pid(a, pa, sizeof(pa));
	ck_assert_str_eq(it_value(a, "SELECT pg_advisory_lock(42)"), "");
	exec_ok(a, "CREATE TEMP TABLE t (x int)");
	res = PQprepare(a, "s1", "SELECT 1", 0, NULL);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(a));
	PQclear(res);
	exec_ok(a, "LISTEN chan");
	ck_assert_int_eq(PQsendQuery(b, "SELECT pg_backend_pid()"), 1);
	ck_assert_msg(it_busy_for(b, 300), "B got the server while A had pinned it");
	PQfinish(a);
	ck_assert_msg(strcmp(it_value_within(b, 3000, "B after A left"), pa) == 0,
		      "B did not get A's server (backend %s) after A left", pa);
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_tables WHERE tablename = 't' AND "
				     "schemaname LIKE 'pg_temp%'"),
			 "0");
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_prepared_statements"), "0");
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"),
			 "0");
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_listening_channels()"), "0");
	ck_assert_str_eq(it_pg_value("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"),
			 "0");
	PQfinish(b);
}
END_TEST

/* ---- out of file descriptors ------------------------------------------ */

static void
setup_fdlimit(void)
{
	struct rlimit was, low;

	setup_pg("fdlimit");
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &was), 0);
	low = was;
	low.rlim_cur = 64; /* pgdog inherits it; this process gets its own back */
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	start_pgdog("pooler_mode = transaction\nauth_type = plain");
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &was), 0);
}

/*
 * More connections than pgdog has descriptors for: each one it cannot take
 * is refused at once with 53300, as PostgreSQL refuses one it cannot serve,
 * and the connected clients keep working. (They waited unanswered in the
 * listen queue while the worker spun on EMFILE.)
 */
START_TEST(test_fd_exhausted)
{
	enum {
		N = 100
	};
	int fds[N], refused = 0, st_ok = 0;
	PGconn *c = it_connect(APP);

	ck_assert_str_eq(it_value(c, "SELECT 'before'"), "before");
	for (int i = 0; i < N; i++)
		fds[i] = it_raw_connect(g_it.port);
	it_sleep_ms(1000); /* the refusals are sent at once */
	for (int i = 0; i < N; i++) {
		char type, body[256], code[8];
		long len = it_raw_recv(fds[i], &type, body, sizeof(body), 1);

		if (len > 0 && type == 'E') {
			refused++;
			st_ok += strcmp(it_raw_field(body, len, 'C', code, sizeof(code)),
					"53300") == 0;
		}
	}
	ck_assert_msg(refused > 0 && refused == st_ok, "%d refused, %d with 53300", refused, st_ok);
	ck_assert_str_eq(it_value(c, "SELECT 'during'"), "during");
	for (int i = 0; i < N; i++)
		close(fds[i]);
	it_sleep_ms(200);
	PQfinish(c);
	c = it_connect(APP);
	ck_assert_str_eq(it_value(c, "SELECT 'after'"), "after");
	PQfinish(c);
}
END_TEST

/* ---- timeouts ------------------------------------------------------------ */

static void
setup_timeouts(void)
{
	setup_pg("timeouts");
	it_pg_exec("CREATE TABLE idle_t (x int); GRANT ALL ON idle_t TO app");
	/* connect_timeout 2 s: 1 s was once too short for a new server in a loaded ASan run */
	start_pgdog("pooler_mode = transaction\nquery_timeout = 500\nconnect_timeout = 2000\n"
		    "client_idle_in_transaction_timeout = 800\nclient_idle_timeout = 800\n"
		    "rollback_timeout = 300");
}

START_TEST(test_timeout_query)
{
	PGconn *c = it_connect(APP);
	PGconn *mon = it_pg_connect();
	PGcancel *cancel;
	PGresult *res;
	char st[6], msg[512], err[256];
	long long t0 = it_now_ms(), took, end;
	int rc;

	rc = it_exec_first_error(c, "SELECT pg_sleep(5)", st, msg, sizeof(msg));
	took = it_now_ms() - t0;
	ck_assert_msg(rc == 1, "pg_sleep(5) with query_timeout 500 did not fail");
	ck_assert_msg(strcmp(st, "57014") == 0, "SQLSTATE '%s' (%s), expected 57014", st, msg);
	/* as PostgreSQL words statement_timeout's, not "user request" */
	ck_assert_msg(strstr(msg, "canceling statement due to query_timeout"),
		      "query_timeout's error says: %s", msg);
	ck_assert_msg(took >= 400 && took < 3000, "query_timeout 500 ms: error after %lld ms",
		      took);
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_IDLE);
	ck_assert_str_eq(it_value(c, "SELECT 'next'"), "next");
	/* the same through the extended protocol */
	res = PQexecParams(c, "SELECT pg_sleep(5)", 0, NULL, NULL, NULL, NULL, 0);
	assert_sqlstate(res, "57014");
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
			 "canceling statement due to query_timeout");
	PQclear(res);
	/* a client's own cancel is still the user's request */
	ck_assert_int_eq(PQsendQuery(c, "SELECT pg_sleep(0.3)"), 1);
	ck_assert_msg(it_busy_for(c, 100), "pg_sleep(0.3) ended within 100 ms: %s",
		      PQerrorMessage(c));
	cancel = PQgetCancel(c);
	ck_assert_msg(PQcancel(cancel, err, sizeof(err)) == 1, "PQcancel: %s", err);
	PQfreeCancel(cancel);
	res = it_result_within(c, 2000);
	assert_sqlstate(res, "57014");
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
			 "canceling statement due to user request");
	PQclear(res);
	it_drain(c);
	ck_assert_str_eq(it_value(c, "SELECT 'next'"), "next");
	/* the query was cancelled on PostgreSQL, not only answered */
	end = it_now_ms() + 1000;
	for (;;) {
		const char *n = it_value(mon, "SELECT count(*) FROM pg_stat_activity WHERE "
					      "query = 'SELECT pg_sleep(5)' AND state = 'active'");
		if (strcmp(n, "0") == 0)
			break;
		ck_assert_msg(it_now_ms() < end, "pg_sleep(5) still runs on PostgreSQL");
		it_sleep_ms(50);
	}
	PQfinish(mon);
	PQfinish(c);
}
END_TEST

/*
 * PostgreSQL signals a cancelled backend twice: its process, then its
 * process group (the same backend). Here the second comes 300 ms late
 * (t/lib/kill_delay.c), as it may under load: the query after a
 * query_timeout cancel must wait for it, not be cancelled by it. (It was
 * sent at once and ended with 57014 "user request", once in CI.)
 */
/*
 * The environment `name` with PostgreSQL running t/lib/kill_delay.c: a
 * SIGINT to a process group (the second of a cancel's two) comes ms late.
 */
static void
setup_pg_kill_delay(const char *name, const char *ms)
{
	char so[IT_PATH_MAX], buf[8192];
	const char *dir = getenv("PGDOG_BUILDDIR");
	int in, out;
	ssize_t n;

	snprintf(so, sizeof(so), "%s/t/lib/kill_delay.so", dir ? dir : ".");
	in = open(so, O_RDONLY);
	ck_assert_msg(in >= 0, "%s: %s (make builds it)", so, strerror(errno));
	it_env_start(name);
	/* where the cluster's owner can read it, whoever owns the build directory */
	out = open(it_path("kill_delay.so"), O_WRONLY | O_CREAT | O_TRUNC, 0755);
	ck_assert_msg(out >= 0, "%s: %s", it_path("kill_delay.so"), strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ck_assert_int_eq(write(out, buf, (size_t)n), n);
	ck_assert_int_eq(n, 0);
	close(in);
	ck_assert_int_eq(close(out), 0);
	setenv("LD_PRELOAD", it_path("kill_delay.so"), 1);
	setenv("PGDOG_TEST_KILL_DELAY_MS", ms, 1);
	it_pg_start(NULL);
	unsetenv("LD_PRELOAD");
	unsetenv("PGDOG_TEST_KILL_DELAY_MS");
	it_pg_role("app", "app_pw", "scram-sha-256");
	it_pg_hba("host all app 127.0.0.1/32 scram-sha-256");
}

static void
setup_cancel_late(void)
{
	setup_pg_kill_delay("cancel_late", "300");
	start_pgdog("pooler_mode = transaction\nquery_timeout = 1000\nconnect_timeout = 3000");
}

/* Two workers; a cancel's connection stays open 1.5 s, connect_timeout is 1 s. */
static void
setup_cancel_lost(void)
{
	setup_pg_kill_delay("cancel_lost", "1500");
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 2,
		/* noise: a CI-only failure (the request after the mark cleared did not run) */
		.general = "pooler_mode = transaction\nauth_type = plain\nconnect_timeout = 1000\n"
			   "log_level = noise",
		.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 1\n",
	});
}

/*
 * The worker that logged the n-th (from 0) "cancel request forwarded" line,
 * its pid into pid; -1 if there is no such line yet.
 */
static int
cancel_forwarded_by(int n, pid_t *pid)
{
	char *text = it_read_file(g_it.log_path);
	const char *p = text;
	int slot = -1, wpid = 0;

	while (p && (p = strstr(p, "cancel request forwarded")) != NULL && n-- > 0)
		p++;
	if (p) {
		const char *line = p;

		while (line > text && line[-1] != '\n')
			line--;
		if ((line = strstr(line, " wk")) != NULL && line < p &&
		    sscanf(line, " wk%d[%d]", &slot, &wpid) == 2)
			*pid = (pid_t)wpid;
		else
			slot = -1;
	}
	free(text);
	return slot;
}

/*
 * A cancel whose worker dies (or hangs) after PostgreSQL has it and before
 * PostgreSQL closes its connection: the worker of the cancelled client
 * clears the mark that worker would have cleared, about twice
 * connect_timeout after the cancel, and the client's next request runs.
 * (It kept its server, and its next request waited, until it disconnected.)
 */
START_TEST(test_cancel_worker_lost)
{
	char buf[256], key[8], st[6], got[256];
	uint32_t pid_be;
	pid_t lost = 0;
	int fd = -1, found = 0;
	long long t0, end;
	size_t n = 0;

	/* a raw client on worker 0 (its BackendKeyData pid is slot << 24 | row) */
	for (int i = 0; i < 64 && fd < 0; i++) {
		fd = it_raw_connect(g_it.port);
		ck_assert_msg(it_raw_login_key(fd, "app", "app", "app_pw", st, key) == 0,
			      "login: %s", st);
		memcpy(&pid_be, key, 4);
		if (ntohl(pid_be) >> 24 != 0) {
			close(fd);
			fd = -1;
		}
	}
	ck_assert_msg(fd >= 0, "no client landed on worker 0 in 64 tries");
	/* until a cancel goes through worker 1 (SO_REUSEPORT picks the worker) */
	for (int attempt = 0; attempt < 10 && !lost; attempt++) {
		int cfd, slot;
		pid_t wpid = 0;
		char pkt[16];
		uint32_t v;

		raw_put(buf, &n, 'Q', "SELECT pg_sleep(30)", sizeof("SELECT pg_sleep(30)"));
		ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
		n = 0;
		/* running on its server (the first one may have to be opened first) */
		end = it_now_ms() + 5000;
		while (strcmp(it_pg_value("SELECT count(*) FROM pg_stat_activity WHERE state = "
					  "'active' AND query = 'SELECT pg_sleep(30)'"),
			      "1") != 0) {
			ck_assert_msg(it_now_ms() < end, "the query does not run");
			it_sleep_ms(20);
		}
		cfd = it_raw_connect(g_it.port);
		v = htonl(16);
		memcpy(pkt, &v, 4);
		v = htonl(80877102);
		memcpy(pkt + 4, &v, 4);
		memcpy(pkt + 8, key, 8);
		ck_assert_int_eq(it_raw_send(cfd, pkt, sizeof(pkt)), 0);
		/* the first signal comes at once: the query ends, the connection stays 1.5 s */
		it_raw_types(fd, 1, IT_RAW_STATES, got, sizeof(got));
		ck_assert_str_eq(got, "T E(57014) Z");
		slot = cancel_forwarded_by(found++, &wpid);
		ck_assert_msg(slot >= 0, "no \"cancel request forwarded\" line in the log");
		if (slot == 1) {
			ck_assert_int_eq(kill(wpid, SIGKILL), 0);
			lost = wpid;
		} else {
			/* through the client's own worker: wait for the late signal to pass */
			ck_assert(it_raw_wait_closed(cfd, 5000));
			it_sleep_ms(700);
		}
		close(cfd);
	}
	ck_assert_msg(lost, "no cancel went through worker 1 in 10 tries");
	t0 = it_now_ms();
	raw_query(buf, &n, "SELECT 'after'");
	ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
	n = 0;
	it_raw_types(fd, 1, IT_RAW_VALUES, got, sizeof(got));
	ck_assert_msg(strcmp(got, "T D(after) C Z") == 0,
		      "the request after a cancel whose worker died: '%s' after %lld ms", got,
		      it_now_ms() - t0);
	/* not before the late signal (1.5 s after the first): it would have been cancelled */
	ck_assert_msg(it_log_contains("did not end within"), "no warning in the log");
	close(fd);
}
END_TEST

START_TEST(test_timeout_query_cancel_late)
{
	PGconn *c = it_connect(APP);
	PGconn *mon = it_pg_connect(), *idle = it_pg_connect();
	PGresult *res;
	char st[6], msg[512], sql[128];
	long long t0;

	/* the library is in PostgreSQL: cancelling an idle backend takes 300 ms */
	snprintf(sql, sizeof(sql), "SELECT pg_cancel_backend(%d)", PQbackendPID(idle));
	t0 = it_now_ms();
	ck_assert_str_eq(it_value(mon, sql), "t");
	ck_assert_msg(it_now_ms() - t0 >= 250,
		      "pg_cancel_backend took %lld ms: kill_delay.so "
		      "is not in PostgreSQL",
		      it_now_ms() - t0);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(it_exec_first_error(c, "SELECT pg_sleep(5)", st, msg, sizeof(msg)),
				 1);
		ck_assert_msg(strcmp(st, "57014") == 0 &&
				      strstr(msg, "canceling statement due to query_timeout"),
			      "round %d: %s %s", i, st, msg);
		/* sent at once: it runs past the second signal, 300 ms after the first */
		t0 = it_now_ms();
		if (i == 0) {
			ck_assert_msg(it_exec_first_error(c, "SELECT pg_sleep(0.5)", st, msg,
							  sizeof(msg)) == 0,
				      "the query after query_timeout's cancel: %s %s", st, msg);
		} else {
			/* the extended protocol */
			res = PQexecParams(c, "SELECT pg_sleep(0.5)", 0, NULL, NULL, NULL, NULL, 0);
			ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK,
				      "the Bind/Execute after query_timeout's cancel: %s",
				      PQresultErrorMessage(res));
			PQclear(res);
		}
		ck_assert_msg(it_now_ms() - t0 < 3000, "round %d: %lld ms", i, it_now_ms() - t0);
	}
	PQfinish(idle);
	PQfinish(mon);
	PQfinish(c);
}
END_TEST

/*
 * The cancel pgdog sends for a client that left mid-result has its second
 * signal 300 ms late (kill_delay.so): the server is reused only once
 * PostgreSQL has closed the cancel's connection, so the next client's query
 * is not the one it hits.
 */
START_TEST(test_left_mid_result_cancel_late)
{
	PGconn *a = it_connect(APP), *b;
	char pa[32], pb[32], st[6], msg[512];
	PGresult *res;

	it_pg_exec("CREATE TABLE lc_src AS SELECT g FROM generate_series(1, 2000000) g;"
		   "GRANT ALL ON lc_src TO app");
	backend_pid(a, pa, sizeof(pa));
	ck_assert_int_eq(PQsendQuery(a, "SELECT g FROM lc_src"), 1);
	ck_assert_int_eq(PQsetSingleRowMode(a), 1);
	for (int i = 0; i < 10; i++) {
		res = PQgetResult(a);
		ck_assert_int_eq(PQresultStatus(res), PGRES_SINGLE_TUPLE);
		PQclear(res);
	}
	PQfinish(a);
	b = it_connect(APP);
	backend_pid(b, pb, sizeof(pb));
	ck_assert_msg(strcmp(pa, pb) == 0,
		      "the server was not reused (backend %s, then %s): the test proves nothing",
		      pa, pb);
	ck_assert_msg(it_exec_first_error(b, "SELECT pg_sleep(0.6)", st, msg, sizeof(msg)) == 0,
		      "the next client's query got the cancel meant for the one that left: %s %s",
		      st, msg);
	PQfinish(b);
}
END_TEST

/*
 * Pipelined requests each get query_timeout from the ReadyForQuery before
 * them, as each runs only then. (pgdog timed them all from the first: the
 * second was cancelled after 150 ms of its own.)
 */
START_TEST(test_timeout_query_pipeline)
{
	PGconn *c = it_connect(APP);
	PGresult *res;
	int ok = 0;

	ck_assert_int_eq(PQenterPipelineMode(c), 1);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(
			PQsendQueryParams(c, "SELECT pg_sleep(0.35)", 0, NULL, NULL, NULL, NULL, 0),
			1);
		ck_assert_int_eq(PQpipelineSync(c), 1);
	}
	for (int i = 0; i < 4; i++) {
		while ((res = PQgetResult(c)) != NULL) {
			ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "request %d: %s", i,
				      PQresultErrorMessage(res));
			ok++;
			PQclear(res);
		}
		res = PQgetResult(c);
		ck_assert_int_eq(PQresultStatus(res), PGRES_PIPELINE_SYNC);
		PQclear(res);
	}
	ck_assert_int_eq(ok, 4);
	ck_assert_int_eq(PQexitPipelineMode(c), 1);
	PQfinish(c);
}
END_TEST

/*
 * A backend that answers neither the query nor its cancel (stopped here):
 * past query_timeout and the cancel's connect_timeout, the client gets
 * 08006 and the server is closed. (The client waited for good.)
 */
START_TEST(test_timeout_query_no_answer)
{
	PGconn *c = it_connect(APP), *d;
	char pid_s[32], st[6], msg[512];
	long long t0;
	int rc;
	pid_t watchdog;

	backend_pid(c, pid_s, sizeof(pid_s));
	/* the backend goes on in 8 s whatever happens to this test */
	watchdog = fork();
	ck_assert_int_ge(watchdog, 0);
	if (watchdog == 0) {
		sleep(8);
		kill((pid_t)atoi(pid_s), SIGCONT);
		_exit(0);
	}
	ck_assert_int_eq(kill((pid_t)atoi(pid_s), SIGSTOP), 0);
	t0 = it_now_ms();
	rc = it_exec_first_error(c, "SELECT 1", st, msg, sizeof(msg));
	ck_assert_int_eq(kill((pid_t)atoi(pid_s), SIGCONT), 0);
	kill(watchdog, SIGKILL);
	waitpid(watchdog, NULL, 0);
	ck_assert_msg(rc == 1, "no error from a stopped backend");
	ck_assert_msg(strcmp(st, "08006") == 0, "SQLSTATE '%s' (%s), expected 08006", st, msg);
	/* 500 ms, then connect_timeout + query_timeout after the cancel: about 3 s */
	ck_assert_msg(it_now_ms() - t0 < 5000, "the error came after %lld ms", it_now_ms() - t0);
	d = it_connect(APP);
	ck_assert_str_eq(it_value(d, "SELECT 'next'"), "next");
	ck_assert_str_ne(it_value(d, "SELECT pg_backend_pid()::text"), pid_s);
	PQfinish(d);
	PQfinish(c);
}
END_TEST

/*
 * A client leaves while its query runs longer than rollback_timeout: the
 * server is closed, and its backend's query cancelled, so that PostgreSQL
 * never has more of the pool's connections than pool_size. (The backend ran
 * on after pgdog had closed it and opened another.) query_timeout is the
 * client's: it no longer applies once the client has left.
 */
START_TEST(test_timeout_rollback_cancels)
{
	static const char sleeper[] = "SELECT pg_sleep(20) /* left */";
	PGconn *c = it_connect(APP), *d, *mon = it_pg_connect();
	long long end;

	ck_assert_int_eq(PQsendQuery(c, sleeper), 1);
	ck_assert_int_eq(PQflush(c), 0);
	it_sleep_ms(100);
	PQfinish(c);
	end = it_now_ms() + 3000;
	for (;;) {
		const char *n = it_value(mon, "SELECT count(*) FROM pg_stat_activity WHERE "
					      "query LIKE '%/* left */' AND state = 'active' AND "
					      "pid <> pg_backend_pid()");
		if (strcmp(n, "0") == 0)
			break;
		ck_assert_msg(it_now_ms() < end, "the left query still runs after 3 s");
		it_sleep_ms(50);
	}
	d = it_connect(APP);
	ck_assert_str_eq(it_value(d, "SELECT 'next'"), "next");
	ck_assert_str_eq(
		it_value(mon, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'"), "1");
	PQfinish(d);
	PQfinish(mon);
}
END_TEST

START_TEST(test_timeout_idle_in_transaction)
{
	PGconn *a = it_connect(APP), *b;
	char pa[32], pb[32], st[6], msg[512];
	int rc;

	PQsetErrorVerbosity(a, PQERRORS_VERBOSE);
	exec_ok(a, "BEGIN");
	exec_ok(a, "INSERT INTO idle_t VALUES (1)");
	backend_pid(a, pa, sizeof(pa));
	it_sleep_ms(2000);
	rc = it_exec_first_error(a, "SELECT 1", st, msg, sizeof(msg));
	ck_assert_msg(rc != 0, "a client idle in a transaction for 2 s could still run a query");
	ck_assert_msg(strcmp(st, "25P03") == 0 || strstr(PQerrorMessage(a), "25P03") != NULL,
		      "SQLSTATE '%s', expected 25P03 (%s / %s)", st, msg, PQerrorMessage(a));
	ck_assert_msg(
		strstr(msg, "terminating connection due to idle-in-transaction timeout") != NULL ||
			strstr(PQerrorMessage(a),
			       "terminating connection due to idle-in-transaction timeout") != NULL,
		"message: %s / %s", msg, PQerrorMessage(a));
	PQconsumeInput(a);
	ck_assert_msg(PQstatus(a) == CONNECTION_BAD, "the connection was not closed");
	PQfinish(a);

	b = it_connect(APP);
	backend_pid(b, pb, sizeof(pb));
	ck_assert_msg(strcmp(pa, pb) == 0,
		      "the server of the timed-out client was not reused (backend %s, then %s)", pa,
		      pb);
	ck_assert_int_eq(PQtransactionStatus(b), PQTRANS_IDLE);
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM idle_t"), "0");
	ck_assert_str_eq(it_pg_value("SELECT count(*) FROM idle_t"), "0");
	PQfinish(b);
}
END_TEST

struct notice_seen {
	int cnt;
	char sqlstate[8];
	char msg[256];
};

static void
notice_cb(void *arg, const PGresult *res)
{
	struct notice_seen *n = arg;
	const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	n->cnt++;
	snprintf(n->sqlstate, sizeof(n->sqlstate), "%s", s != NULL ? s : "");
	snprintf(n->msg, sizeof(n->msg), "%s", m != NULL ? m : "");
}

START_TEST(test_timeout_client_idle)
{
	PGconn *c = it_connect(APP);
	struct notice_seen n = { 0 };
	long long t0, end, took = -1;

	/* libpq hands an ErrorResponse that arrives while idle to the notice receiver */
	PQsetNoticeReceiver(c, notice_cb, &n);
	ck_assert_str_eq(it_value(c, "SELECT 1"), "1");
	t0 = it_now_ms();
	end = t0 + 3000;
	while (it_now_ms() < end) {
		struct pollfd pfd = { .fd = PQsocket(c), .events = POLLIN };

		int ok;

		poll(&pfd, 1, (int)(end - it_now_ms()));
		ok = PQconsumeInput(c);
		(void)PQisBusy(c); /* parses what arrived: the ErrorResponse goes to notice_cb */
		if (!ok || PQstatus(c) == CONNECTION_BAD) {
			took = it_now_ms() - t0;
			break;
		}
	}
	ck_assert_msg(took >= 0, "client_idle_timeout 800: an idle client still open after 3 s");
	ck_assert_msg(took >= 600 && took <= 2500, "idle client closed after %lld ms", took);
	ck_assert_msg(n.cnt >= 1, "closed without an error message");
	ck_assert_str_eq(n.sqlstate, "57P05");
	ck_assert_str_eq(n.msg, "terminating connection due to idle-session timeout");
	PQfinish(c);
}
END_TEST

/* Pinning is counted in SHOW POOLS (pins), once per client that pins. */
START_TEST(test_pin_counted)
{
	PGconn *a = it_connect(APP);
	long before = atol(it_pool_field("app", "app", "pins"));

	ck_assert_str_eq(it_value(a, "SELECT pg_advisory_lock(7)"), "");
	ck_assert_str_eq(it_value(a, "SELECT pg_advisory_lock(8)"), "");
	ck_assert_int_eq(atol(it_pool_field("app", "app", "pins")), before + 1);
	ck_assert_str_eq(it_value(a, "SELECT pg_advisory_unlock_all()"), "");
	PQfinish(a);
}
END_TEST

/* ---- prepared_statements_limit ----------------------------------------------- */

static void
setup_limit(void)
{
	setup_pg("limit");
	start_pgdog("pooler_mode = transaction\nprepared_statements_limit = 2");
}

/*
 * Five named statements on a server that may keep two: every execution
 * works (pgdog prepares them again as needed) and the server never holds
 * more than two of pgdog's statements.
 */
START_TEST(test_limit_lru)
{
	PGconn *c = it_connect(APP);
	char name[16], sql[64], want[16];
	PGresult *res;

	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "q%d", i);
		snprintf(sql, sizeof(sql), "SELECT %d + $1::int", i * 10);
		res = PQprepare(c, name, sql, 1, NULL);
		ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s",
			      PQresultErrorMessage(res));
		PQclear(res);
	}
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 5; i++) {
			const char *p[1] = { "1" };

			snprintf(name, sizeof(name), "q%d", (i * 3 + round) % 5);
			res = PQexecPrepared(c, name, 1, p, NULL, NULL, 0);
			ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", name,
				      PQresultErrorMessage(res));
			snprintf(want, sizeof(want), "%d", ((i * 3 + round) % 5) * 10 + 1);
			ck_assert_str_eq(PQgetvalue(res, 0, 0), want);
			PQclear(res);
			ck_assert_int_le(
				atoi(it_value(c, "SELECT count(*) FROM pg_prepared_statements "
						 "WHERE name LIKE '\\_\\_pgdog%'")),
				2);
		}
	}
	PQfinish(c);
}
END_TEST

/* SHOW PREPARED lists pgdog's statements with their users and uses, from every worker. */
START_TEST(test_limit_show_prepared)
{
	PGconn *c = it_connect(APP), *adm;
	PGresult *res;
	const char *p[1] = { "5" };
	int rows, found = 0;

	res = PQprepare(c, "shown", "SELECT 'show me' || $1::text", 1, NULL);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	for (int i = 0; i < 3; i++) {
		res = PQexecPrepared(c, "shown", 1, p, NULL, NULL, 0);
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s",
			      PQresultErrorMessage(res));
		ck_assert_str_eq(PQgetvalue(res, 0, 0), "show me5");
		PQclear(res);
	}
	adm = it_connect(ADMIN);
	res = it_exec_ok(adm, "SHOW PREPARED");
	ck_assert_int_eq(PQnfields(res), 6);
	ck_assert_str_eq(PQfname(res, 2), "statement");
	rows = PQntuples(res);
	for (int r = 0; r < rows; r++) {
		if (strcmp(PQgetvalue(res, r, 2), "SELECT 'show me' || $1::text") != 0)
			continue;
		found++;
		ck_assert_msg(strncmp(PQgetvalue(res, r, 1), "__pgdog_", 8) == 0, "name %s",
			      PQgetvalue(res, r, 1));
		ck_assert_str_eq(PQgetvalue(res, r, 3), "1");     /* used_by */
		ck_assert_int_ge(atoi(PQgetvalue(res, r, 5)), 3); /* uses */
	}
	ck_assert_int_eq(found, 1);
	PQclear(res);
	PQfinish(c);
	/* the client is gone: nobody uses it any more (its close is asynchronous: poll) */
	for (int tries = 0;; tries++) {
		bool is_released = true;

		res = it_exec_ok(adm, "SHOW PREPARED");
		for (int r = 0; r < PQntuples(res); r++)
			if (strcmp(PQgetvalue(res, r, 2), "SELECT 'show me' || $1::text") == 0 &&
			    strcmp(PQgetvalue(res, r, 3), "0") != 0)
				is_released = false;
		PQclear(res);
		if (is_released)
			break;
		ck_assert_msg(tries < 20, "used_by still counts a closed client after 2 s");
		it_sleep_ms(100);
	}
	PQfinish(adm);
}
END_TEST

/* ---- statement mode ------------------------------------------------------ */

static void
setup_statement(void)
{
	setup_pg("statement");
	start_pgdog("pooler_mode = statement");
}

START_TEST(test_stmt_begin_refused)
{
	PGconn *c = it_connect(APP);

	ck_assert_str_eq(it_exec_error(c, "BEGIN", "0A000"),
			 "transaction blocks are not allowed in statement pooling mode");
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_IDLE);
	ck_assert_str_eq(it_value(c, "SELECT 'still here'"), "still here");
	ck_assert_str_eq(it_exec_error(c, "begin", "0A000"),
			 "transaction blocks are not allowed in statement pooling mode");
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_IDLE);
	ck_assert_str_eq(it_value(c, "SELECT 'again'"), "again");
	PQfinish(c);
}
END_TEST

/* A BEGIN prepared with the extended protocol is refused too, up to its Sync. */
START_TEST(test_stmt_extended_begin_refused)
{
	PGconn *c = it_connect(APP);
	PGresult *res = PQprepare(c, "b", "BEGIN", 0, NULL);
	const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	ck_assert_msg(st && strcmp(st, "0A000") == 0, "PQprepare(BEGIN): %s",
		      PQresultErrorMessage(res));
	PQclear(res);
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_IDLE);
	res = PQexecParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
	st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	ck_assert_msg(st && strcmp(st, "0A000") == 0, "PQexecParams(BEGIN): %s",
		      PQresultErrorMessage(res));
	PQclear(res);
	ck_assert_str_eq(it_value(c, "SELECT 'usable'"), "usable");
	PQfinish(c);
}
END_TEST

/*
 * A BEGIN that pgdog's check does not see (here: after another Execute in
 * the same request) still cannot open a block: the ReadyForQuery that
 * reports one ends the client with 0A000, and the block is rolled back.
 * (The client went on and committed a transaction of several statements.)
 */
START_TEST(test_stmt_hidden_begin)
{
	PGconn *c = it_connect(APP), *d;
	PGresult *res;
	char st[6] = "";

	ck_assert_int_eq(PQenterPipelineMode(c), 1);
	ck_assert_int_eq(PQsendQueryParams(c, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0), 1);
	ck_assert_int_eq(PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0), 1);
	ck_assert_int_eq(PQpipelineSync(c), 1);
	for (int i = 0; i < 6; i++) {
		res = PQgetResult(c);
		if (res && PQresultStatus(res) == PGRES_FATAL_ERROR)
			snprintf(st, sizeof(st), "%s",
				 PQresultErrorField(res, PG_DIAG_SQLSTATE)
					 ? PQresultErrorField(res, PG_DIAG_SQLSTATE)
					 : "");
		PQclear(res);
		if (st[0])
			break;
	}
	ck_assert_str_eq(st, "0A000");
	PQfinish(c);
	d = it_connect(APP);
	ck_assert_int_eq(PQtransactionStatus(d), PQTRANS_IDLE);
	ck_assert_str_eq(it_value(d, "SELECT now() = statement_timestamp()"), "t");
	PQfinish(d);
}
END_TEST

START_TEST(test_stmt_start_transaction_refused)
{
	PGconn *c = it_connect(APP);

	ck_assert_str_eq(it_exec_error(c, "START TRANSACTION", "0A000"),
			 "transaction blocks are not allowed in statement pooling mode");
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_IDLE);
	ck_assert_str_eq(it_value(c, "SELECT 1"), "1");
	PQfinish(c);
}
END_TEST

START_TEST(test_stmt_single_statements)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	char pa[32], pb[32];
	const char *p[1] = { "21" };
	PGresult *res;

	for (int i = 0; i < 5; i++) {
		ck_assert_str_eq(it_value(a, "SELECT 'a'"), "a");
		ck_assert_str_eq(it_value(b, "SELECT 'b'"), "b");
	}
	res = PQexecParams(b, "SELECT $1::int * 2", 1, NULL, p, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(b));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "42");
	PQclear(res);
	backend_pid(a, pa, sizeof(pa));
	backend_pid(b, pb, sizeof(pb));
	ck_assert_msg(strcmp(pa, pb) == 0, "pool_size 1: A on backend %s, B on %s", pa, pb);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* ---- per-user pooler_mode ------------------------------------------------ */

static void
setup_mode(void)
{
	setup_pg("mode");
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 1,
		.general = "pooler_mode = transaction",
		.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 1\n\n"
			 "[users.sess]\ndatabase = app\npassword = sess_pw\npool_size = 1\n"
			 "pooler_mode = session\n",
	});
}

START_TEST(test_mode_per_user)
{
	PGconn *s1 = it_connect(SESS), *s2 = it_connect(SESS);
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	char p1[32], pa[32], pb[32];

	backend_pid(s1, p1, sizeof(p1));
	/* s1 is idle between transactions but keeps its server: s2 waits */
	ck_assert_int_eq(PQsendQuery(s2, "SELECT pg_backend_pid()"), 1);
	ck_assert_msg(it_busy_for(s2, 300),
		      "user sess (pooler_mode = session): a second client got the server while "
		      "the first was idle between transactions");
	exec_ok(s1, "BEGIN");
	ck_assert_str_eq(it_value(s1, "SELECT pg_backend_pid()"), p1);
	exec_ok(s1, "COMMIT");
	ck_assert_str_eq(it_value(s1, "SELECT pg_backend_pid()"), p1);
	/* app stays in transaction mode meanwhile */
	for (int i = 0; i < 3; i++) {
		backend_pid(a, pa, sizeof(pa));
		backend_pid(b, pb, sizeof(pb));
		ck_assert_msg(strcmp(pa, pb) == 0, "user app (transaction): A on %s, B on %s", pa,
			      pb);
	}
	ck_assert_str_eq(it_pool_field("app", "sess", "pool_mode"), "session");
	ck_assert_str_eq(it_pool_field("app", "app", "pool_mode"), "transaction");
	ck_assert_msg(it_busy_for(s2, 100), "s2 got the server while s1 was connected");
	PQfinish(s1);
	ck_assert_str_eq(it_value_within(s2, 3000, "s2 after s1 left"), p1);
	PQfinish(s2);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* res (cleared) is PostgreSQL's 55000: a sequence value not defined in the session. */
static void
seq_undefined(PGresult *res, const char *what)
{
	ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR, "%s: %s", what,
		      PQresStatus(PQresultStatus(res)));
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "55000");
	PQclear(res);
}

/* b prepares sql as name; a calls nextval; b's run of name gets 55000. */
static void
seq_prepared_undefined(PGconn *a, PGconn *b, const char *name, const char *sql)
{
	PGresult *res = PQprepare(b, name, sql, 0, NULL);

	ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	(void)it_value(a, "SELECT nextval('txn_seq')");
	seq_undefined(PQexecPrepared(b, name, 0, NULL, NULL, NULL, 0), sql);
}

/*
 * currval() and lastval() never show another client's sequence value: on a
 * server another client used since, a client's first request that reads
 * them gets 55000 as on PostgreSQL (pgdog runs DISCARD SEQUENCES there
 * first), as a Query, through PQexecParams, as a named statement, as the
 * unnamed statement bound again, and waiting in the queue; its own
 * values in one statement, in its transaction, and in its next transaction
 * with nobody on the server in between are its own.
 */
START_TEST(test_txn_sequence_values)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	const char *params[1] = { "txn_seq" };
	PGresult *res;
	char v[32];

	PQclear(it_exec_ok(a, "CREATE SEQUENCE IF NOT EXISTS txn_seq"));
	/* a's value, then b on the same (only) server */
	snprintf(v, sizeof(v), "%s", it_value(a, "SELECT nextval('txn_seq')"));
	it_exec_error(b, "SELECT currval('txn_seq')", "55000");
	ck_assert_str_eq(it_value(a, "SELECT nextval('txn_seq') = currval('txn_seq')"), "t");
	it_exec_error(b, "SELECT LastVal()", "55000");
	(void)it_value(a, "SELECT nextval('txn_seq')");
	res = PQexecParams(b, "SELECT currval($1)", 1, NULL, params, NULL, NULL, 0);
	seq_undefined(res, "PQexecParams currval");
	/* a named statement; the unnamed one bound again without its Parse */
	seq_prepared_undefined(a, b, "seq_read", "SELECT lastval()");
	seq_prepared_undefined(a, b, "", "SELECT currval('txn_seq')");
	/* b waiting for the server while a's transaction calls nextval */
	PQclear(it_exec_ok(a, "BEGIN"));
	(void)it_value(a, "SELECT nextval('txn_seq')");
	ck_assert_int_eq(PQsendQuery(b, "SELECT currval('txn_seq')"), 1);
	ck_assert_msg(it_busy_for(b, 300), "b ran while a held the only server");
	PQclear(it_exec_ok(a, "COMMIT"));
	res = it_result_within(b, 3000);
	ck_assert_msg(res != NULL, "queued currval: no result");
	seq_undefined(res, "queued currval");
	it_drain(b);
	/* a's own: in its transaction, and in the next one, nobody in between */
	PQclear(it_exec_ok(a, "BEGIN"));
	snprintf(v, sizeof(v), "%s", it_value(a, "SELECT nextval('txn_seq')"));
	ck_assert_str_eq(it_value(a, "SELECT currval('txn_seq')"), v);
	PQclear(it_exec_ok(a, "COMMIT"));
	ck_assert_str_eq(it_value(a, "SELECT lastval()"), v);
	PQclear(it_exec_ok(a, "DROP SEQUENCE txn_seq"));
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* ---- a prepared statement whose result type changed (DDL) ---------------- */

static void
setup_ddl(void)
{
	setup_pg("ddl");
	it_pg_exec("CREATE TABLE ddl_t (a int); INSERT INTO ddl_t VALUES (42);"
		   "CREATE TABLE ddl_u (a int); INSERT INTO ddl_u VALUES (7);"
		   "CREATE TABLE ddl_v (a int); INSERT INTO ddl_v VALUES (5);"
		   "GRANT ALL ON ddl_t, ddl_u, ddl_v TO app");
	/* two servers: a statement can be needed on one that never prepared it */
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 1,
		.general = "pooler_mode = transaction",
		.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 2\n",
	});
}

/* Run name on c in a transaction; the pg_backend_pid() of its server into pid. */
static void
exec_prepared_on(PGconn *c, const char *name, const char *want, char *pid, size_t len)
{
	exec_ok(c, "BEGIN");
	backend_pid(c, pid, len);
	exec_prepared_ok(c, name, NULL, want);
	exec_ok(c, "COMMIT");
}

/*
 * Both servers in open transactions of h1 and h2, then the one that is not
 * on backend pid busy ends: the next transaction of anyone else runs on the
 * other server. Returns the client holding busy (end its transaction later).
 */
static PGconn *
hold_server(PGconn *h1, PGconn *h2, const char *busy)
{
	char p1[32], p2[32];

	exec_ok(h1, "BEGIN");
	backend_pid(h1, p1, sizeof(p1));
	exec_ok(h2, "BEGIN");
	backend_pid(h2, p2, sizeof(p2));
	ck_assert_msg(strcmp(p1, p2) != 0, "two open transactions on one server (%s)", p1);
	if (strcmp(p1, busy) == 0) {
		exec_ok(h2, "COMMIT");
		return h1;
	}
	ck_assert_str_eq(p2, busy);
	exec_ok(h1, "COMMIT");
	return h2;
}

/* PQdescribePrepared(c, name) fails with sqlstate. */
static void
describe_prepared_error(PGconn *c, const char *name, const char *sqlstate)
{
	PGresult *res = PQdescribePrepared(c, name);

	assert_sqlstate(res, sqlstate);
	PQclear(res);
}

/*
 * PostgreSQL keeps a prepared statement's result type: once DDL changed it,
 * running or describing the statement fails with 0A000 "cached plan must not
 * change result type", and drivers prepare it again. pgdog prepares a
 * client's statement again on each server that needs it; there it must fail
 * the same way, never return the new type under the old description.
 */
START_TEST(test_prep_result_changed)
{
	PGconn *a = it_connect(APP), *h1 = it_connect(APP), *h2 = it_connect(APP);
	PGconn *c, *holder;
	char px[32], py[32];
	PGresult *res;

	prepare_ok(a, "s", "SELECT a FROM ddl_t", 0);
	exec_prepared_on(a, "s", "42", px, sizeof(px));
	it_pg_exec("ALTER TABLE ddl_t ALTER a TYPE text USING 'forty-two'");

	/* on the server that never had it: prepared there now, it must not run */
	holder = hold_server(h1, h2, px);
	exec_ok(a, "BEGIN");
	backend_pid(a, py, sizeof(py));
	ck_assert_str_ne(px, py);
	res = PQexecPrepared(a, "s", 0, NULL, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR,
		      "EXECUTE after the ALTER on another server: %s, first value %s",
		      PQresStatus(PQresultStatus(res)),
		      PQntuples(res) ? PQgetvalue(res, 0, 0) : "(no row)");
	assert_sqlstate(res, "0A000");
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
			 "cached plan must not change result type");
	PQclear(res);
	/* the transaction failed, as in PostgreSQL */
	(void)it_exec_error(a, "SELECT 1", "25P02");
	exec_ok(a, "ROLLBACK");
	describe_prepared_error(a, "s", "0A000");
	exec_prepared_error(a, "s", NULL, "0A000");
	exec_ok(holder, "COMMIT");
	/* on the server that had it before the ALTER too */
	holder = hold_server(h1, h2, py);
	exec_prepared_error(a, "s", NULL, "0A000");
	exec_ok(holder, "COMMIT");

	/* prepared again, under a new name as drivers do, it runs with the new type */
	prepare_ok(a, "s2", "SELECT a FROM ddl_t", 0);
	for (int i = 0; i < 4; i++)
		exec_prepared_ok(a, "s2", NULL, "forty-two");
	/* so does a new client's statement of that text */
	c = it_connect(APP);
	prepare_ok(c, "s", "SELECT a FROM ddl_t", 0);
	for (int i = 0; i < 4; i++)
		exec_prepared_ok(c, "s", NULL, "forty-two");
	PQfinish(c);
	PQfinish(a);
	PQfinish(h1);
	PQfinish(h2);
}
END_TEST

/*
 * After DDL, a server that prepared a statement before it answers its use
 * with 0A000; the statement is then stale for pgdog: clients that prepare
 * its text afterwards get a new one (before, every later Parse of the text
 * was answered with the stale copy and failed again, for every client, until
 * the servers were closed).
 */
START_TEST(test_prep_result_changed_everywhere)
{
	PGconn *a = it_connect(APP), *h1 = it_connect(APP), *h2 = it_connect(APP);
	PGconn *holder, *c;
	char px[32], py[32];

	/* prepared on both servers */
	prepare_ok(a, "u", "SELECT * FROM ddl_u", 0);
	exec_prepared_on(a, "u", "7", px, sizeof(px));
	holder = hold_server(h1, h2, px);
	exec_prepared_on(a, "u", "7", py, sizeof(py));
	ck_assert_str_ne(px, py);
	exec_ok(holder, "COMMIT");
	it_pg_exec("ALTER TABLE ddl_u ADD COLUMN b int DEFAULT 8");

	exec_prepared_error(a, "u", NULL, "0A000");
	exec_prepared_error(a, "u", NULL, "0A000");
	for (int i = 0; i < 3; i++) {
		PGresult *res;

		c = it_connect(APP);
		prepare_ok(c, "u", "SELECT * FROM ddl_u", 0);
		for (int k = 0; k < 3; k++) {
			res = PQexecPrepared(c, "u", 0, NULL, NULL, NULL, 0);
			ck_assert_msg(
				PQresultStatus(res) == PGRES_TUPLES_OK,
				"client %d, run %d of a statement prepared after the ALTER: %s", i,
				k, PQresultErrorMessage(res));
			ck_assert_int_eq(PQnfields(res), 2);
			ck_assert_str_eq(PQgetvalue(res, 0, 1), "8");
			PQclear(res);
		}
		PQfinish(c);
	}
	PQfinish(a);
	PQfinish(h1);
	PQfinish(h2);
}
END_TEST

/*
 * The check that holds a client's message while a server describes the
 * statement pgdog has just prepared for it must not stall a pipeline: after
 * an error earlier in it the server answers nothing up to the Sync.
 */
START_TEST(test_prep_result_check_pipeline)
{
	PGconn *a = it_connect(APP), *h1 = it_connect(APP), *h2 = it_connect(APP);
	PGconn *holder;
	char px[32];
	PGresult *res;
	const ExecStatusType want[] = { PGRES_FATAL_ERROR,   PGRES_PIPELINE_ABORTED,
					PGRES_PIPELINE_SYNC, PGRES_TUPLES_OK,
					PGRES_TUPLES_OK,     PGRES_PIPELINE_SYNC };

	prepare_ok(a, "v", "SELECT a FROM ddl_v", 0);
	exec_prepared_on(a, "v", "5", px, sizeof(px));
	holder = hold_server(h1, h2, px);
	ck_assert_int_eq(PQenterPipelineMode(a), 1);
	/* an error first: the check's Describe is skipped, the rest too */
	ck_assert_int_eq(PQsendQueryParams(a, "SELECT 1/0", 0, NULL, NULL, NULL, NULL, 0), 1);
	ck_assert_int_eq(PQsendQueryPrepared(a, "v", 0, NULL, NULL, NULL, 0), 1);
	ck_assert_int_eq(PQpipelineSync(a), 1);
	/* then twice, the second time on a server that holds it already */
	ck_assert_int_eq(PQsendQueryPrepared(a, "v", 0, NULL, NULL, NULL, 0), 1);
	ck_assert_int_eq(PQsendQueryPrepared(a, "v", 0, NULL, NULL, NULL, 0), 1);
	ck_assert_int_eq(PQpipelineSync(a), 1);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		res = PQgetResult(a);
		ck_assert_msg(res != NULL, "result %zu missing", i);
		ck_assert_msg(PQresultStatus(res) == want[i], "result %zu: %s, expected %s: %s", i,
			      PQresStatus(PQresultStatus(res)), PQresStatus(want[i]),
			      PQresultErrorMessage(res));
		if (want[i] == PGRES_TUPLES_OK)
			ck_assert_str_eq(PQgetvalue(res, 0, 0), "5");
		PQclear(res);
		if (want[i] != PGRES_PIPELINE_SYNC)
			ck_assert_ptr_null(PQgetResult(a));
	}
	ck_assert_int_eq(PQexitPipelineMode(a), 1);
	exec_ok(holder, "COMMIT");
	exec_prepared_ok(a, "v", NULL, "5");
	PQfinish(a);
	PQfinish(h1);
	PQfinish(h2);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("it_txn");
	TCase *tc;

	tc = tcase_create("transaction");
	tcase_add_unchecked_fixture(tc, setup_transaction, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_txn_alternate);
	tcase_add_test(tc, test_txn_sequence_values);
	tcase_add_test(tc, test_txn_idle_clients_hold_no_server);
	tcase_add_test(tc, test_txn_begin_holds_server);
	tcase_add_test(tc, test_txn_extended_alternate);
	tcase_add_test(tc, test_txn_pipeline_error);
	tcase_add_test(tc, test_txn_pipeline_named);
	tcase_add_test(tc, test_txn_unnamed_across_requests);
	tcase_add_test(tc, test_txn_unnamed_failed_parse);
	tcase_add_test(tc, test_txn_unnamed_skipped_many);
	tcase_add_test(tc, test_txn_deallocate_protocol_statement);
	tcase_add_test(tc, test_txn_disconnect_in_transaction);
	tcase_add_test(tc, test_txn_disconnect_mid_query);
	tcase_add_test(tc, test_txn_left_mid_result_aborts);
	tcase_add_test(tc, test_txn_deallocate_unpins);
	tcase_add_test(tc, test_txn_prepare_during_probe);
	tcase_add_test(tc, test_txn_unnamed_pins_kept);
	tcase_add_test(tc, test_txn_left_mid_query_rollback);
	tcase_add_test(tc, test_txn_disconnect_tx_status);
	tcase_add_test(tc, test_txn_new_server_row);
	tcase_add_test(tc, test_txn_cancel_waiting);
	tcase_add_test(tc, test_txn_cancel_running);
	tcase_add_test(tc, test_txn_cancel_idle);
	tcase_add_test(tc, test_txn_deallocate_all_named);
	tcase_add_test(tc, test_txn_copy_extended);
	tcase_add_test(tc, test_txn_cancel_other_client);
	tcase_add_test(tc, test_txn_cancel_client_left);
	suite_add_tcase(s, tc);

	tc = tcase_create("skip");
	tcase_add_unchecked_fixture(tc, setup_skip, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_txn_skipped_after_error);
	tcase_add_test(tc, test_txn_malformed_query);
	tcase_add_test(tc, test_txn_queued_client_left);
	tcase_add_test(tc, test_txn_held_input_bounded);
	tcase_add_test(tc, test_txn_unread_answers_bounded);
	tcase_add_test(tc, test_txn_left_during_set_replay);
	tcase_add_test(tc, test_txn_queued_pipeline);
	tcase_add_test(tc, test_txn_cancel_waiting_framing);
	tcase_add_test(tc, test_txn_end_after_replies);
	tcase_add_test(tc, test_txn_function_call_pins);
	tcase_add_test(tc, test_txn_half_close);
	tcase_add_test(tc, test_txn_unsynced_rolled_back);
	tcase_add_test(tc, test_txn_ext_copy_pipelined);
	tcase_add_test(tc, test_txn_copy_data_outside_copy);
	tcase_add_test(tc, test_txn_server_fatal_once);
	tcase_add_test(tc, test_txn_param_status_once);
	tcase_add_test(tc, test_txn_set_behind_own_sync);
	tcase_add_test(tc, test_txn_parse_skipped_same_text);
	tcase_add_test(tc, test_txn_stale_portal_discard);
	tcase_add_test(tc, test_txn_refused_discard_not_due);
	tcase_add_test(tc, test_txn_set_before_commit_execute);
	suite_add_tcase(s, tc);

	tc = tcase_create("fdlimit");
	tcase_add_unchecked_fixture(tc, setup_fdlimit, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_fd_exhausted);
	suite_add_tcase(s, tc);

	tc = tcase_create("ddl");
	tcase_add_unchecked_fixture(tc, setup_ddl, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_prep_result_changed);
	tcase_add_test(tc, test_prep_result_changed_everywhere);
	tcase_add_test(tc, test_prep_result_check_pipeline);
	suite_add_tcase(s, tc);

	tc = tcase_create("checkout");
	tcase_add_unchecked_fixture(tc, setup_checkout, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_txn_checkout_timeout);
	tcase_add_test(tc, test_txn_checkout_timeout_pinned);
	suite_add_tcase(s, tc);

	tc = tcase_create("set");
	tcase_add_unchecked_fixture(tc, setup_set, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_set_isolation);
	tcase_add_test(tc, test_set_local);
	tcase_add_test(tc, test_set_rollback);
	tcase_add_test(tc, test_set_commit);
	tcase_add_test(tc, test_set_reset);
	tcase_add_test(tc, test_set_startup_options);
	tcase_add_test(tc, test_set_startup_list);
	tcase_add_test(tc, test_set_startup_checked);
	tcase_add_test(tc, test_set_startup_app_name);
	tcase_add_test(tc, test_set_datestyle_halves);
	tcase_add_test(tc, test_set_encoding_replay);
	tcase_add_test(tc, test_set_param_refused);
	tcase_add_test(tc, test_set_scs_off_replay);
	tcase_add_test(tc, test_set_seed);
	tcase_add_test(tc, test_set_same_startup_shared);
	tcase_add_test(tc, test_set_hidden_by_digits);
	tcase_add_test(tc, test_set_parameter_status);
	tcase_add_test(tc, test_set_prepared);
	tcase_add_test(tc, test_set_session_characteristics);
	tcase_add_test(tc, test_set_long_query);
	tcase_add_test(tc, test_set_pipeline);
	tcase_add_test(tc, test_set_savepoint);
	tcase_add_test(tc, test_set_savepoint_prepared);
	suite_add_tcase(s, tc);

	tc = tcase_create("pin");
	tcase_add_unchecked_fixture(tc, setup_pin, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_pin_advisory_lock);
	tcase_add_test(tc, test_pin_do_block);
	tcase_add_test(tc, test_pin_discard_refused);
	tcase_add_test(tc, test_pin_temp_table);
	tcase_add_test(tc, test_pin_prepared);
	tcase_add_test(tc, test_pin_unnamed_other_client);
	tcase_add_test(tc, test_pin_listen);
	tcase_add_test(tc, test_pin_release_needs_commit);
	tcase_add_test(tc, test_pin_release_asked);
	tcase_add_test(tc, test_pin_reset_startup_value);
	tcase_add_test(tc, test_pin_role_asked);
	tcase_add_test(tc, test_pin_load);
	tcase_add_test(tc, test_pin_released_on_disconnect);
	tcase_add_test(tc, test_pin_counted);
	suite_add_tcase(s, tc);

	tc = tcase_create("limit");
	tcase_add_unchecked_fixture(tc, setup_limit, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_limit_lru);
	tcase_add_test(tc, test_limit_show_prepared);
	suite_add_tcase(s, tc);

	tc = tcase_create("timeouts");
	tcase_add_unchecked_fixture(tc, setup_timeouts, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_timeout_query);
	tcase_add_test(tc, test_timeout_query_pipeline);
	tcase_add_test(tc, test_timeout_query_no_answer);
	tcase_add_test(tc, test_timeout_rollback_cancels);
	tcase_add_test(tc, test_timeout_idle_in_transaction);
	tcase_add_test(tc, test_timeout_client_idle);
	suite_add_tcase(s, tc);

	tc = tcase_create("cancel_late");
	tcase_add_unchecked_fixture(tc, setup_cancel_late, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_timeout_query_cancel_late);
	tcase_add_test(tc, test_left_mid_result_cancel_late);
	suite_add_tcase(s, tc);

	tc = tcase_create("cancel_lost");
	tcase_add_unchecked_fixture(tc, setup_cancel_lost, teardown);
	tcase_set_timeout(tc, 40);
	tcase_add_test(tc, test_cancel_worker_lost);
	suite_add_tcase(s, tc);

	tc = tcase_create("statement");
	tcase_add_unchecked_fixture(tc, setup_statement, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_stmt_begin_refused);
	tcase_add_test(tc, test_stmt_extended_begin_refused);
	tcase_add_test(tc, test_stmt_hidden_begin);
	tcase_add_test(tc, test_stmt_start_transaction_refused);
	tcase_add_test(tc, test_stmt_single_statements);
	suite_add_tcase(s, tc);

	tc = tcase_create("mode");
	tcase_add_unchecked_fixture(tc, setup_mode, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_mode_per_user);
	suite_add_tcase(s, tc);

	return it_run_suite(s);
}
