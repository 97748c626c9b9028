/*
 * it_torture.c: no state leaks between clients that share server
 * connections. 200 clients (one thread each) on pool_size 5 over two
 * workers run randomized sessions for IT_TORTURE_SECONDS (20) or
 * IT_TORTURE_STEPS steps per client (3000): SET of application_name,
 * search_path and a custom GUC, unnamed extended queries, named prepared
 * statements, transactions that commit and roll back on the client's own
 * rows, errors inside transactions, pipelines with an error in the middle,
 * RESET ALL, DISCARD ALL, clients that leave in the middle of a
 * transaction, and state that pins a server (an advisory lock, LISTEN, a
 * WITH HOLD cursor, SET ROLE) kept through releases that fail or are rolled
 * back, then released or left with the client. After every step a client
 * checks that it sees exactly its own settings, rows, prepared statements
 * and results, and now and then that its server holds no lock, LISTEN,
 * cursor or role of another client's; after the run every server of the
 * pool is checked so. A monitor checks that PostgreSQL never has more than 5
 * backends of the user.
 * The pooler mode comes from PGDOG_TEST_POOLER_MODE (default transaction);
 * when this pgdog rejects that mode the program reports SKIP (exit 77).
 */
#include "t/lib/it.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CLIENTS    200
#define POOL       5
#define ROWS       4 /* rows per client */
#define STMTS      3 /* named prepared statements per client */
#define APP        "dbname=app user=app password=app_pw"
#define DEF_SEARCH "\"$user\", public"

static const char *
pooler_mode(void)
{
	const char *m = getenv("PGDOG_TEST_POOLER_MODE");

	return m != NULL && *m != '\0' ? m : "transaction";
}

static int
env_int(const char *name, int def)
{
	const char *v = getenv(name);

	return v != NULL && atoi(v) > 0 ? atoi(v) : def;
}

/* ---- one client ----------------------------------------------------------- */

enum op {
	OP_SET,
	OP_PARAMS,
	OP_PREPARED,
	OP_COMMIT,
	OP_ROLLBACK,
	OP_ERROR,
	OP_PIPELINE,
	OP_RESET_ALL,
	OP_DISCARD_ALL,
	OP_ABANDON,
	OP_PIN,
	OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
	"SET",         "PQexecParams",         "prepared",      "commit",
	"rollback",    "error in transaction", "pipeline",      "RESET ALL",
	"DISCARD ALL", "abandon transaction",  "pinning state",
};

/* how often each operation runs, in percent (the sum is 100) */
static const int op_weights[OP_COUNT] = { 12, 13, 15, 15, 10, 8, 8, 5, 4, 5, 5 };

struct client {
	int id;
	unsigned seed;
	PGconn *conn;
	bool startup_name;         /* sends application_name in its startup packet */
	char app_name[64];         /* expected application_name */
	char search_path[64];      /* expected search_path */
	char client_guc[64];       /* expected myapp.client_id ("" unset) */
	bool prepared[STMTS];      /* named statements that exist in this session */
	bool ever_prepared[STMTS]; /* ... or existed before DISCARD ALL */
	int rows[ROWS];            /* committed values of the client's rows */
	int serial;
	int steps;
	int sessions;
	_Atomic int cur_op; /* for the stuck-client report */
	_Atomic bool finished;
	bool failed;
	char err[768];
};

static struct client g_clients[CLIENTS];
static atomic_bool g_stop_monitor;
static atomic_int g_max_backends;
static atomic_int g_samples;
static atomic_int g_ops[OP_COUNT];
static long long g_deadline;
static int g_max_steps;

static bool cfail(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Record the client's first failure; returns false. */
static bool
cfail(struct client *c, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	if (c->failed)
		return false;
	c->failed = true;
	n = (size_t)snprintf(c->err, sizeof(c->err), "client %d (session %d, step %d, %s): ", c->id,
			     c->sessions, c->steps, op_names[atomic_load(&c->cur_op)]);
	va_start(ap, fmt);
	if (n < sizeof(c->err))
		vsnprintf(c->err + n, sizeof(c->err) - n, fmt, ap);
	va_end(ap);
	return false;
}

static int
rnd(struct client *c, int n)
{
	return (int)(rand_r(&c->seed) % (unsigned)n);
}

/* Run sql (no result rows expected); false after recording the failure. */
static bool
cmd(struct client *c, const char *sql)
{
	PGresult *res = PQexec(c->conn, sql);
	ExecStatusType st = PQresultStatus(res);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

	if (!ok)
		cfail(c, "%s: %s (%s)", sql, PQerrorMessage(c->conn), PQresStatus(st));
	PQclear(res);
	return ok;
}

/* Run sql, expect an error with sqlstate. */
static bool
cmd_error(struct client *c, const char *sql, const char *sqlstate)
{
	PGresult *res = PQexec(c->conn, sql);
	const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	bool ok =
		PQresultStatus(res) == PGRES_FATAL_ERROR && st != NULL && strcmp(st, sqlstate) == 0;

	if (!ok)
		cfail(c, "%s: expected error %s, got %s %s: %s", sql, sqlstate,
		      PQresStatus(PQresultStatus(res)), st != NULL ? st : "",
		      PQerrorMessage(c->conn));
	PQclear(res);
	return ok;
}

/* A one-row text query with parameters; the row's values into out[] (each 64 bytes). */
static bool
query_row(struct client *c, const char *sql, int nparams, const char *const *params, int ncols,
	  char out[][64])
{
	PGresult *res = PQexecParams(c->conn, sql, nparams, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    PQnfields(res) != ncols) {
		cfail(c, "%s: %s, %d rows, %d columns: %s", sql, PQresStatus(PQresultStatus(res)),
		      PQntuples(res), PQnfields(res), PQerrorMessage(c->conn));
		PQclear(res);
		return false;
	}
	for (int i = 0; i < ncols; i++)
		snprintf(out[i], 64, "%s", PQgetvalue(res, 0, i));
	PQclear(res);
	return true;
}

/* The client sees exactly its own settings. */
static bool
check_settings(struct client *c, const char *when)
{
	char v[4][64];

	if (!query_row(c,
		       "SELECT current_setting('application_name'), current_setting('search_path'),"
		       " coalesce(current_setting('myapp.client_id', true), ''), pg_backend_pid()",
		       0, NULL, 4, v))
		return false;
	if (strcmp(v[0], c->app_name) != 0)
		return cfail(c, "%s: application_name is '%s', expected '%s' (server pid %s)", when,
			     v[0], c->app_name, v[3]);
	if (strcmp(v[1], c->search_path) != 0)
		return cfail(c, "%s: search_path is '%s', expected '%s' (server pid %s)", when,
			     v[1], c->search_path, v[3]);
	if (strcmp(v[2], c->client_guc) != 0)
		return cfail(c, "%s: myapp.client_id is '%s', expected '%s' (server pid %s)", when,
			     v[2], c->client_guc, v[3]);
	return true;
}

/*
 * Advisory locks, LISTENs, WITH HOLD cursors and SQL prepared statements the
 * server of a query holds, and its role, as "L/N/C/P/role".
 */
#define PINS_SQL                                                                                \
	"SELECT (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = "          \
	"pg_backend_pid()) || '/' || (SELECT count(*) FROM pg_listening_channels()) || '/' || " \
	"(SELECT count(*) FROM pg_cursors WHERE is_holdable) || '/' || "                        \
	"(SELECT count(*) FROM pg_prepared_statements WHERE from_sql) || '/' || current_user, " \
	"pg_backend_pid()"

/* The client's server holds n of each and its role: its own (n = 1, OP_PIN), or nobody's. */
static bool
check_pins(struct client *c, int n, const char *when)
{
	char v[2][64], want[48];

	if (!query_row(c, PINS_SQL, 0, NULL, 2, v))
		return false;
	snprintf(want, sizeof(want), "%d/%d/%d/%d/%s", n, n, n, n, n ? "torture_role" : "app");
	if (strcmp(v[0], want) != 0)
		return cfail(
			c,
			"%s: the server holds %s advisory locks/LISTENs/cursors/statements/role,"
			" expected %s (server pid %s)",
			when, v[0], want, v[1]);
	return true;
}

/* Row k of this client has value want (read in the current transaction, if any). */
static bool
check_row(struct client *c, int k, int want, const char *when)
{
	char id[16], ks[16], v[1][64];
	const char *params[2] = { id, ks };

	snprintf(id, sizeof(id), "%d", c->id);
	snprintf(ks, sizeof(ks), "%d", k);
	if (!query_row(c, "SELECT v FROM torture_rows WHERE client = $1 AND k = $2", 2, params, 1,
		       v))
		return false;
	if (atoi(v[0]) != want)
		return cfail(c, "%s: row %d has v = %s, expected %d", when, k, v[0], want);
	return true;
}

static bool
update_row(struct client *c, int k, int value)
{
	char id[16], ks[16], vs[16], out[1][64];
	const char *params[3] = { id, ks, vs };

	snprintf(id, sizeof(id), "%d", c->id);
	snprintf(ks, sizeof(ks), "%d", k);
	snprintf(vs, sizeof(vs), "%d", value);
	if (!query_row(c, "UPDATE torture_rows SET v = $3 WHERE client = $1 AND k = $2 RETURNING v",
		       3, params, 1, out))
		return false;
	if (atoi(out[0]) != value)
		return cfail(c, "UPDATE ... RETURNING gave %s, expected %d", out[0], value);
	return true;
}

static void
reset_expected(struct client *c)
{
	if (c->startup_name)
		snprintf(c->app_name, sizeof(c->app_name), "tc%d", c->id);
	else
		c->app_name[0] = '\0';
	snprintf(c->search_path, sizeof(c->search_path), "%s", DEF_SEARCH);
	c->client_guc[0] = '\0';
}

static bool
client_connect(struct client *c)
{
	char extra[128];

	if (c->startup_name)
		snprintf(extra, sizeof(extra), "%s connect_timeout=30 application_name=tc%d", APP,
			 c->id);
	else
		snprintf(extra, sizeof(extra), "%s connect_timeout=30", APP);
	c->conn = PQconnectdb(it_pgdog_dsn(extra));
	if (PQstatus(c->conn) != CONNECTION_OK) {
		cfail(c, "connect: %s", PQerrorMessage(c->conn));
		PQfinish(c->conn);
		c->conn = NULL;
		return false;
	}
	c->sessions++;
	reset_expected(c);
	memset(c->prepared, 0, sizeof(c->prepared));
	memset(c->ever_prepared, 0, sizeof(c->ever_prepared));
	return true;
}

static bool
op_set(struct client *c)
{
	char sql[160];

	c->serial++;
	switch (rnd(c, 3)) {
	case 0:
		snprintf(c->app_name, sizeof(c->app_name), "tc%d_%d", c->id, c->serial);
		snprintf(sql, sizeof(sql), "SET application_name = '%s'", c->app_name);
		break;
	case 1:
		snprintf(c->search_path, sizeof(c->search_path), "s%d_%d, public", c->id,
			 c->serial);
		snprintf(sql, sizeof(sql), "SET search_path = s%d_%d, public", c->id, c->serial);
		break;
	default:
		snprintf(c->client_guc, sizeof(c->client_guc), "%d.%d", c->id, c->serial);
		snprintf(sql, sizeof(sql), "SET myapp.client_id = '%s'", c->client_guc);
		break;
	}
	if (!cmd(c, sql))
		return false;
	/* SHOW goes through the simple protocol */
	{
		PGresult *res = PQexec(c->conn, "SHOW application_name");
		bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
			  strcmp(PQgetvalue(res, 0, 0), c->app_name) == 0;

		if (!ok)
			cfail(c, "SHOW application_name: '%s', expected '%s' (%s)",
			      PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "?", c->app_name,
			      PQerrorMessage(c->conn));
		PQclear(res);
		return ok;
	}
}

static bool
op_params(struct client *c)
{
	char a[16], b[32], want[40], v[2][64];
	const char *params[2] = { a, b };
	int x = rnd(c, 100000);

	snprintf(a, sizeof(a), "%d", x);
	snprintf(b, sizeof(b), "c%d", c->id);
	snprintf(want, sizeof(want), "c%d!", c->id);
	if (!query_row(c, "SELECT $1::int * 2, $2::text || '!'", 2, params, 2, v))
		return false;
	if (atoi(v[0]) != 2 * x || strcmp(v[1], want) != 0)
		return cfail(c, "SELECT $1 * 2, $2 || '!' with (%d, %s) gave (%s, %s)", x, b, v[0],
			     v[1]);
	return true;
}

/*
 * The unnamed statement: PQprepare() and PQexecPrepared() are two requests,
 * which other clients' requests may come between (on the server, or moving
 * the client to another one): the client must still run its own statement.
 */
static bool
prepared_unnamed(struct client *c, int k, const char *a, int x)
{
	const char *params[1] = { a };
	char sql[128], tag[32];
	PGresult *res;

	snprintf(tag, sizeof(tag), "tu%d_%d", c->id, k);
	snprintf(sql, sizeof(sql), "SELECT $1::int + %d, '%s'::text", c->id * 100 + k, tag);
	res = PQprepare(c->conn, "", sql, 1, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		cfail(c, "PQprepare of the unnamed statement: %s", PQerrorMessage(c->conn));
		PQclear(res);
		return false;
	}
	PQclear(res);
	res = PQexecPrepared(c->conn, "", 1, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		cfail(c, "PQexecPrepared of the unnamed statement: %s %s",
		      PQresStatus(PQresultStatus(res)), PQerrorMessage(c->conn));
		PQclear(res);
		return false;
	}
	if (atoi(PQgetvalue(res, 0, 0)) != x + c->id * 100 + k ||
	    strcmp(PQgetvalue(res, 0, 1), tag) != 0) {
		cfail(c, "the unnamed statement (%s) gave (%s, %s), expected (%d, %s)", a,
		      PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), x + c->id * 100 + k, tag);
		PQclear(res);
		return false;
	}
	PQclear(res);
	return true;
}

static bool
op_prepared(struct client *c)
{
	int k = rnd(c, STMTS), x = rnd(c, 100000);
	char name[32], a[16];
	const char *params[1] = { a };
	PGresult *res;

	if (rnd(c, 4) == 0) {
		/* the unnamed statement, prepared in one request and run in the next */
		snprintf(a, sizeof(a), "%d", x);
		return prepared_unnamed(c, k, a, x);
	}
	snprintf(name, sizeof(name), "tp%d_%d", c->id, k);
	if (!c->prepared[k]) {
		char sql[128];

		snprintf(sql, sizeof(sql), "SELECT $1::int + %d, '%s'::text", c->id * 100 + k,
			 name);
		res = PQprepare(c->conn, name, sql, 1, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			cfail(c, "PQprepare %s: %s", name, PQerrorMessage(c->conn));
			PQclear(res);
			return false;
		}
		PQclear(res);
		c->prepared[k] = true;
		c->ever_prepared[k] = true;
	}
	snprintf(a, sizeof(a), "%d", x);
	res = PQexecPrepared(c->conn, name, 1, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		cfail(c, "PQexecPrepared %s: %s %s", name, PQresStatus(PQresultStatus(res)),
		      PQerrorMessage(c->conn));
		PQclear(res);
		return false;
	}
	if (atoi(PQgetvalue(res, 0, 0)) != x + c->id * 100 + k ||
	    strcmp(PQgetvalue(res, 0, 1), name) != 0) {
		cfail(c, "PQexecPrepared %s(%d) gave (%s, %s), expected (%d, %s)", name, x,
		      PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), x + c->id * 100 + k, name);
		PQclear(res);
		return false;
	}
	PQclear(res);
	return true;
}

static bool
op_commit(struct client *c)
{
	int k = rnd(c, ROWS), v = 1 + rnd(c, 1000000);

	if (!cmd(c, "BEGIN") || !update_row(c, k, v) || !check_row(c, k, v, "in the transaction"))
		return false;
	if (rnd(c, 3) == 0 && !check_settings(c, "in a transaction"))
		return false;
	if (!cmd(c, "COMMIT"))
		return false;
	c->rows[k] = v;
	return check_row(c, k, v, "after COMMIT");
}

static bool
op_rollback(struct client *c)
{
	int k = rnd(c, ROWS), v = 1 + rnd(c, 1000000);
	bool set_inside = rnd(c, 2) == 0;

	if (!cmd(c, "BEGIN") || !update_row(c, k, v))
		return false;
	if (set_inside) {
		/* a SET in a transaction that rolls back is undone */
		char sql[96];

		snprintf(sql, sizeof(sql), "SET application_name = 'rolled_back_%d'", c->id);
		if (!cmd(c, sql) || !cmd(c, "SET myapp.client_id = 'rolled_back'"))
			return false;
	}
	if (!check_row(c, k, v, "in the transaction") || !cmd(c, "ROLLBACK"))
		return false;
	return check_row(c, k, c->rows[k], "after ROLLBACK");
}

static bool
op_error(struct client *c)
{
	int k = rnd(c, ROWS), v = 1 + rnd(c, 1000000);

	if (!cmd(c, "BEGIN") || !update_row(c, k, v))
		return false;
	if (!cmd_error(c, "SELECT 1 / 0", "22012"))
		return false;
	if (!cmd_error(c, "SELECT 1", "25P02"))
		return false;
	if (!cmd(c, "ROLLBACK"))
		return false;
	return check_row(c, k, c->rows[k], "after the error and ROLLBACK");
}

/* The next pipeline result must have status want (and, for tuples, value). */
static bool
pipe_expect(struct client *c, ExecStatusType want, const char *value, const char *what)
{
	PGresult *res = PQgetResult(c->conn);
	ExecStatusType st = PQresultStatus(res);
	bool ok = res != NULL && st == want;

	if (ok && value != NULL)
		ok = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), value) == 0;
	if (!ok)
		cfail(c, "pipeline, %s: got %s%s%s, expected %s %s: %s", what,
		      res != NULL ? PQresStatus(st) : "no result",
		      res != NULL && st == PGRES_TUPLES_OK ? " " : "",
		      res != NULL && st == PGRES_TUPLES_OK && PQntuples(res) > 0
			      ? PQgetvalue(res, 0, 0)
			      : "",
		      PQresStatus(want), value != NULL ? value : "", PQerrorMessage(c->conn));
	PQclear(res);
	if (ok && want != PGRES_PIPELINE_SYNC) {
		/* each query's results end with NULL */
		res = PQgetResult(c->conn);
		if (res != NULL) {
			cfail(c, "pipeline, %s: a second result %s", what,
			      PQresStatus(PQresultStatus(res)));
			PQclear(res);
			return false;
		}
	}
	return ok;
}

static bool
op_pipeline(struct client *c)
{
	char a[16], zero[] = "0", b[16];
	const char *pa[1] = { a }, *pz[1] = { zero }, *pb[1] = { b };
	int x = rnd(c, 100000);

	snprintf(a, sizeof(a), "%d", x);
	snprintf(b, sizeof(b), "%d", x + 1);
	if (PQenterPipelineMode(c->conn) != 1)
		return cfail(c, "PQenterPipelineMode: %s", PQerrorMessage(c->conn));
	if (PQsendQueryParams(c->conn, "SELECT $1::int", 1, NULL, pa, NULL, NULL, 0) != 1 ||
	    PQsendQueryParams(c->conn, "SELECT 1 / $1::int", 1, NULL, pz, NULL, NULL, 0) != 1 ||
	    PQsendQueryParams(c->conn, "SELECT $1::int", 1, NULL, pb, NULL, NULL, 0) != 1 ||
	    PQpipelineSync(c->conn) != 1 ||
	    PQsendQueryParams(c->conn,
			      "SELECT coalesce(current_setting('myapp.client_id', true), '')", 0,
			      NULL, NULL, NULL, NULL, 0) != 1 ||
	    PQsendQueryParams(c->conn, "SELECT $1::int", 1, NULL, pb, NULL, NULL, 0) != 1 ||
	    PQpipelineSync(c->conn) != 1)
		return cfail(c, "sending the pipeline: %s", PQerrorMessage(c->conn));
	if (!pipe_expect(c, PGRES_TUPLES_OK, a, "query 1") ||
	    !pipe_expect(c, PGRES_FATAL_ERROR, NULL, "query 2 (1 / 0)") ||
	    !pipe_expect(c, PGRES_PIPELINE_ABORTED, NULL, "query 3 (after the error)") ||
	    !pipe_expect(c, PGRES_PIPELINE_SYNC, NULL, "sync 1") ||
	    !pipe_expect(c, PGRES_TUPLES_OK, c->client_guc, "query 4 (own myapp.client_id)") ||
	    !pipe_expect(c, PGRES_TUPLES_OK, b, "query 5") ||
	    !pipe_expect(c, PGRES_PIPELINE_SYNC, NULL, "sync 2"))
		return false;
	if (PQexitPipelineMode(c->conn) != 1)
		return cfail(c, "PQexitPipelineMode: %s", PQerrorMessage(c->conn));
	return true;
}

/* After DISCARD ALL the statements this session prepared are gone. */
static bool
check_deallocated(struct client *c)
{
	for (int k = 0; k < STMTS; k++) {
		char name[32];
		PGresult *res;
		const char *st;
		bool ok;

		if (!c->ever_prepared[k] || c->prepared[k])
			continue;
		snprintf(name, sizeof(name), "tp%d_%d", c->id, k);
		res = PQdescribePrepared(c->conn, name);
		st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		ok = PQresultStatus(res) == PGRES_FATAL_ERROR && st != NULL &&
		     strcmp(st, "26000") == 0;
		if (!ok)
			cfail(c, "statement %s still exists after DISCARD ALL (%s %s)", name,
			      PQresStatus(PQresultStatus(res)), st != NULL ? st : "");
		PQclear(res);
		if (!ok)
			return false;
		c->ever_prepared[k] = false;
	}
	return true;
}

static bool
op_reset(struct client *c, bool discard)
{
	if (!cmd(c, discard ? "DISCARD ALL" : "RESET ALL"))
		return false;
	reset_expected(c);
	if (discard) {
		memset(c->prepared, 0, sizeof(c->prepared));
		return check_settings(c, "after DISCARD ALL") && check_deallocated(c);
	}
	return true;
}

/* Leave in the middle of a transaction; the next session must not see it nor wait for it. */
static bool
op_abandon(struct client *c)
{
	int k = rnd(c, ROWS), v = 1 + rnd(c, 1000000);
	long long end;

	if (!cmd(c, "BEGIN") || !update_row(c, k, v))
		return false;
	PQfinish(c->conn);
	c->conn = NULL;
	if (!client_connect(c))
		return false;
	if (!check_row(c, k, c->rows[k], "after a client left in a transaction"))
		return false;
	/* its row lock is released soon (pgdog rolls the transaction back) */
	end = it_now_ms() + 5000;
	for (;;) {
		char id[16], ks[16];
		const char *params[2] = { id, ks };
		PGresult *res;
		const char *st;

		snprintf(id, sizeof(id), "%d", c->id);
		snprintf(ks, sizeof(ks), "%d", k);
		res = PQexecParams(
			c->conn,
			"SELECT v FROM torture_rows WHERE client = $1 AND k = $2 FOR UPDATE NOWAIT",
			2, NULL, params, NULL, NULL, 0);
		st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			PQclear(res);
			return true;
		}
		if (st == NULL || strcmp(st, "55P03") != 0 || it_now_ms() > end) {
			cfail(c,
			      "row %d still locked 5 s after its client left in a transaction: %s",
			      k, PQerrorMessage(c->conn));
			PQclear(res);
			return false;
		}
		PQclear(res);
		it_sleep_ms(20);
	}
}

/*
 * State that pins the server to the client: an advisory lock, a LISTEN, a
 * WITH HOLD cursor, an SQL prepared statement and a role of its own, kept through an UNLISTEN * and a
 * RESET ROLE that fail or are rolled back, then released, or left with the
 * client (the next session finds none of it).
 */
static bool
op_pin(struct client *c)
{
	char sql[256];

	snprintf(
		sql, sizeof(sql),
		"SELECT pg_advisory_lock(%d); LISTEN torture_%d; "
		"DECLARE torture_c CURSOR WITH HOLD FOR SELECT %d; PREPARE torture_p AS SELECT %d; "
		"SET ROLE torture_role",
		100000 + c->id, c->id, c->id, c->id);
	if (!cmd(c, sql) || !check_pins(c, 1, "after taking them"))
		return false;
	switch (rnd(c, 3)) {
	case 0:
		if (!cmd_error(c, "UNLISTEN *; RESET ROLE; SELECT 1/0", "22012"))
			return false;
		break;
	case 1:
		if (!cmd(c, "BEGIN") || !cmd(c, "UNLISTEN *") || !cmd(c, "RESET ROLE") ||
		    !cmd(c, "ROLLBACK"))
			return false;
		break;
	default:
		break;
	}
	if (!check_pins(c, 1, "after a release that did not commit"))
		return false;
	if (rnd(c, 4) == 0) {
		PQfinish(c->conn);
		c->conn = NULL;
		if (!client_connect(c))
			return false;
		return check_pins(c, 0, "after a client left holding them");
	}
	if (rnd(c, 2) == 0)
		return cmd(c, "SELECT pg_advisory_unlock_all(); UNLISTEN *; CLOSE ALL; RESET ROLE; "
			      "DEALLOCATE torture_p") &&
		       check_pins(c, 0, "after releasing them");
	/* one by one: pgdog asks the server what is left after each */
	snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock(%d)", 100000 + c->id);
	if (!cmd(c, sql))
		return false;
	snprintf(sql, sizeof(sql), "UNLISTEN torture_%d", c->id);
	return cmd(c, sql) && cmd(c, "CLOSE torture_c") && cmd(c, "RESET ROLE") &&
	       cmd(c, "DEALLOCATE torture_p") &&
	       check_pins(c, 0, "after releasing them one by one");
}

static bool
run_step(struct client *c)
{
	int w = rnd(c, 100), acc = 0, op = OP_COUNT - 1;
	bool ok;

	for (int i = 0; i < OP_COUNT; i++) {
		acc += op_weights[i];
		if (w < acc) {
			op = i;
			break;
		}
	}
	atomic_store(&c->cur_op, op);
	atomic_fetch_add(&g_ops[op], 1);
	switch (op) {
	case OP_SET:
		ok = op_set(c);
		break;
	case OP_PARAMS:
		ok = op_params(c);
		break;
	case OP_PREPARED:
		ok = op_prepared(c);
		break;
	case OP_COMMIT:
		ok = op_commit(c);
		break;
	case OP_ROLLBACK:
		ok = op_rollback(c);
		break;
	case OP_ERROR:
		ok = op_error(c);
		break;
	case OP_PIPELINE:
		ok = op_pipeline(c);
		break;
	case OP_RESET_ALL:
		ok = op_reset(c, false);
		break;
	case OP_DISCARD_ALL:
		ok = op_reset(c, true);
		break;
	case OP_ABANDON:
		ok = op_abandon(c);
		break;
	default:
		ok = op_pin(c);
		break;
	}
	/* after every step: own settings, and now and then own rows and statements */
	if (ok)
		ok = check_settings(c, "after the step");
	if (ok && rnd(c, 4) == 0) {
		int k = rnd(c, ROWS);
		ok = check_row(c, k, c->rows[k], "own row");
	}
	if (ok && rnd(c, 4) == 0)
		ok = check_pins(c, 0, "after the step");
	if (ok && rnd(c, 4) == 0) {
		for (int k = 0; k < STMTS && ok; k++) {
			if (c->prepared[k]) {
				atomic_store(&c->cur_op, OP_PREPARED);
				ok = op_prepared(c);
			}
		}
	}
	if (ok && PQtransactionStatus(c->conn) != PQTRANS_IDLE)
		ok = cfail(c, "transaction status %d after the step, expected idle",
			   (int)PQtransactionStatus(c->conn));
	return ok;
}

static void *
client_main(void *arg)
{
	struct client *c = arg;
	/* session mode: a client holds a server while connected, so sessions are short */
	bool session = strcmp(pooler_mode(), "session") == 0;

	while (!c->failed && c->steps < g_max_steps && it_now_ms() < g_deadline) {
		int len = session ? 3 + rnd(c, 20) : 30 + rnd(c, 300);

		if (!client_connect(c))
			break;
		for (int i = 0; i < len && c->steps < g_max_steps && it_now_ms() < g_deadline;
		     i++) {
			c->steps++;
			if (!run_step(c))
				break;
		}
		if (c->conn != NULL)
			PQfinish(c->conn);
		c->conn = NULL;
	}
	atomic_store(&c->finished, true);
	return NULL;
}

/* ---- monitor: backends of "app" in pg_stat_activity ------------------------- */

static void *
monitor_main(void *arg)
{
	PGconn *mon = arg;

	while (!atomic_load(&g_stop_monitor)) {
		PGresult *res =
			PQexec(mon, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'"
				    " AND backend_type = 'client backend'");

		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			int n = atoi(PQgetvalue(res, 0, 0));

			if (n > atomic_load(&g_max_backends))
				atomic_store(&g_max_backends, n);
			atomic_fetch_add(&g_samples, 1);
		}
		PQclear(res);
		it_sleep_ms(20);
	}
	return NULL;
}

/* ---- the test --------------------------------------------------------------- */

static void
setup(void)
{
	char general[256];

	it_env_start("torture");
	it_pg_start(NULL);
	it_pg_role("app", "app_pw", "scram-sha-256");
	it_pg_hba("host all app 127.0.0.1/32 scram-sha-256");
	it_pg_exec("CREATE TABLE torture_rows (client int, k int, v int NOT NULL,"
		   " PRIMARY KEY (client, k));"
		   "INSERT INTO torture_rows SELECT c, k, 0 FROM generate_series(0, 199) c,"
		   " generate_series(0, 3) k;"
		   "GRANT ALL ON torture_rows TO app;"
		   "CREATE ROLE torture_role; GRANT torture_role TO app");
	/*
	 * generous timeouts: this test is about leaks, and 200 logins at once in
	 * a sanitizer build on a loaded 2-core machine can hold up the first
	 * server logins for seconds
	 */
	snprintf(general, sizeof(general),
		 "pooler_mode = %s\ncheckout_timeout = 30000\nconnect_timeout = 30000\n"
		 "max_client_conn = 1000",
		 pooler_mode());
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 2,
		.general = general,
		.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 5\n",
	});
}

static void
teardown(void)
{
	it_env_stop();
}

START_TEST(test_torture_no_leaks)
{
	int seconds = env_int("IT_TORTURE_SECONDS", 20);
	pthread_t th[CLIENTS], mt;
	pthread_attr_t attr;
	PGconn *mon = it_pg_connect();
	int failed = 0, stuck = 0, steps = 0, sessions = 0;
	const char *first = NULL;
	long long t0 = it_now_ms();

	g_max_steps = env_int("IT_TORTURE_STEPS", 3000);
	g_deadline = t0 + (long long)seconds * 1000;
	ck_assert_int_eq(pthread_create(&mt, NULL, monitor_main, mon), 0);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 512 * 1024);
	for (int i = 0; i < CLIENTS; i++) {
		struct client *c = &g_clients[i];

		memset(c, 0, sizeof(*c));
		c->id = i;
		c->seed = (unsigned)(i * 7919 + 17) ^ (unsigned)time(NULL);
		c->startup_name = i % 2 == 0;
		ck_assert_int_eq(pthread_create(&th[i], &attr, client_main, c), 0);
	}
	pthread_attr_destroy(&attr);
	for (int i = 0; i < CLIENTS; i++) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		/* a client finishes its step after the deadline: give it 30 s more */
		ts.tv_sec += (time_t)((g_deadline - it_now_ms()) / 1000) + 30;
		if (pthread_timedjoin_np(th[i], NULL, &ts) != 0) {
			struct client *c = &g_clients[i];

			fprintf(stderr, "client %d stuck in %s (session %d, step %d)\n", i,
				op_names[atomic_load(&c->cur_op)], c->sessions, c->steps);
			stuck++;
		}
	}
	atomic_store(&g_stop_monitor, true);
	pthread_join(mt, NULL);
	PQfinish(mon);

	for (int i = 0; i < CLIENTS; i++) {
		struct client *c = &g_clients[i];

		steps += c->steps;
		sessions += c->sessions;
		if (c->failed) {
			if (failed < 20)
				fprintf(stderr, "%s\n", c->err);
			if (first == NULL)
				first = c->err;
			failed++;
		}
	}
	fprintf(stderr,
		"torture (%s): %d clients, %d sessions, %d steps in %lld ms; most backends %d"
		" (%d samples); ops:",
		pooler_mode(), CLIENTS, sessions, steps, it_now_ms() - t0,
		atomic_load(&g_max_backends), atomic_load(&g_samples));
	for (int i = 0; i < OP_COUNT; i++)
		fprintf(stderr, " %s %d%s", op_names[i], atomic_load(&g_ops[i]),
			i + 1 < OP_COUNT ? "," : "\n");
	ck_assert_msg(stuck == 0, "%d clients did not finish 30 s after the deadline", stuck);
	ck_assert_msg(failed == 0, "%d of %d clients failed; the first: %s", failed, CLIENTS,
		      first);
	ck_assert_msg(steps >= CLIENTS, "only %d steps ran", steps);
	ck_assert_msg(atomic_load(&g_max_backends) <= POOL,
		      "PostgreSQL had %d backends of app, pool_size is %d",
		      atomic_load(&g_max_backends), POOL);
}
END_TEST

/* After the storm: pgdog serves, and no server was left inside a transaction. */
START_TEST(test_torture_after)
{
	PGconn *c = it_connect(APP);
	PGconn *mon = it_pg_connect();
	long long end = it_now_ms() + 5000;
	const char *busy;

	ck_assert_str_eq(it_value(c, "SELECT 6 * 7"), "42");
	ck_assert_str_eq(it_value(c, "SELECT count(*) FROM torture_rows"), "800");
	PQfinish(c);
	for (;;) {
		busy = it_value(mon, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'"
				     " AND state <> 'idle'");
		if (strcmp(busy, "0") == 0 || it_now_ms() > end)
			break;
		it_sleep_ms(100);
	}
	ck_assert_msg(strcmp(busy, "0") == 0, "%s server connections of app are not idle", busy);
	ck_assert_int_le(it_pg_count_backends(mon, "app"), POOL);
	PQfinish(mon);
	/*
	 * every server of the pool at once (each held in a block): nobody's lock, LISTEN, cursor,
	 * SQL prepared statement, role
	 */
	{
		PGconn *p[POOL];

		for (int i = 0; i < POOL; i++) {
			p[i] = it_connect(APP);
			PQclear(it_exec_ok(p[i], "BEGIN"));
		}
		for (int i = 0; i < POOL; i++) {
			PGresult *res = PQexec(p[i], PINS_SQL);

			ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
			ck_assert_msg(
				strcmp(PQgetvalue(res, 0, 0), "0/0/0/0/app") == 0,
				"server pid %s holds %s advisory locks/LISTENs/cursors/statements/role "
				"after the run",
				PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 0));
			PQclear(res);
			PQfinish(p[i]);
		}
	}
}
END_TEST

/*
 * Whether this pgdog accepts the pooler mode (its --check-config); runs
 * before the suite, so no Check macros (and no it_pgdog_run) here.
 */
static bool
mode_supported(char *why, size_t why_len)
{
	char path[] = "/tmp/pgdog-torture-XXXXXX";
	char ini[256], cmdline[1024];
	int fd = mkstemp(path);
	FILE *p;
	size_t n = 0;
	int rc;

	why[0] = '\0';
	if (fd < 0)
		return true; /* let the test itself fail */
	snprintf(ini, sizeof(ini),
		 "[general]\nport = 6432\npooler_mode = %s\n[databases.app]\nhost = 127.0.0.1\n",
		 pooler_mode());
	if (write(fd, ini, strlen(ini)) < 0) {
		close(fd);
		unlink(path);
		return true;
	}
	close(fd);
	snprintf(cmdline, sizeof(cmdline), "'%s' -c '%s' --check-config 2>&1", it_pgdog_bin(),
		 path);
	p = popen(cmdline, "r");
	if (p == NULL) {
		unlink(path);
		return true;
	}
	while (n + 1 < why_len) {
		size_t r = fread(why + n, 1, why_len - n - 1, p);
		if (r == 0)
			break;
		n += r;
	}
	why[n] = '\0';
	rc = pclose(p);
	unlink(path);
	return !(rc != 0 && strstr(why, "pooler_mode") != NULL);
}

int
main(void)
{
	Suite *s = suite_create("torture");
	TCase *tc = tcase_create("torture");
	char why[1024];

	if (strcmp(pooler_mode(), "session") != 0 && !mode_supported(why, sizeof(why))) {
		printf("SKIP: pgdog does not accept pooler_mode = %s: %s\n", pooler_mode(), why);
		return 77;
	}
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, env_int("IT_TORTURE_SECONDS", 20) + 90);
	tcase_add_test(tc, test_torture_no_leaks);
	tcase_add_test(tc, test_torture_after);
	suite_add_tcase(s, tc);
	return it_run_suite(s);
}
