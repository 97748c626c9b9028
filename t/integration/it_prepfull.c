/*
 * it_prepfull.c: prepared statements in transaction mode against a real
 * PostgreSQL: prepared_statements = full (SQL PREPARE / EXECUTE / DEALLOCATE
 * [ALL] handled by pgdog, alone or among other statements of a query,
 * sharing names with the extended protocol, errors as PostgreSQL sends them
 * (compared field by field with a connection straight to the cluster),
 * statements shared between clients, eviction by prepared_statements_limit),
 * the 42P05 of a second Parse of the same name (full and extended),
 * set_config(..., false) pinning the server, and the classifier following
 * the client's standard_conforming_strings.
 * Every pgdog runs one worker and gives user "app" a pool of one server, so
 * clients share that server: the tests compare pg_backend_pid() to prove it.
 */
#include "t/lib/it.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define APP   "dbname=app user=app password=app_pw"
#define ADMIN "dbname=admin user=admin password=pgdog"

static void
setup_pg(const char *name)
{
	it_env_start(name);
	it_pg_start(NULL);
	it_pg_role("app", "app_pw", "scram-sha-256");
	it_pg_hba("host all app 127.0.0.1/32 scram-sha-256");
	it_pg_exec("CREATE TABLE pf_t (id int PRIMARY KEY, v text);"
		   "INSERT INTO pf_t SELECT g, 'v' || g FROM generate_series(1, 100) g;"
		   "GRANT ALL ON pf_t TO app");
}

/* pgdog with one worker and a pool of one server for "app". */
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
setup_full(void)
{
	setup_pg("full");
	start_pgdog("pooler_mode = transaction\nprepared_statements = full");
}

static void
setup_full_limit(void)
{
	setup_pg("full_limit");
	start_pgdog("pooler_mode = transaction\nprepared_statements = full\n"
		    "prepared_statements_limit = 2");
}

static void
setup_disabled(void)
{
	setup_pg("disabled");
	start_pgdog("pooler_mode = transaction\nprepared_statements = disabled");
}

static void
setup_extended(void)
{
	setup_pg("extended");
	start_pgdog("pooler_mode = transaction\nprepared_statements = extended");
}

static void
teardown(void)
{
	it_env_stop();
}

/* ---- helpers ------------------------------------------------------------ */

static void
exec_ok(PGconn *c, const char *sql)
{
	PQclear(it_exec_ok(c, sql));
}

/* Run sql, expect success with command tag `tag`. */
static void
exec_tag(PGconn *c, const char *sql, const char *tag)
{
	PGresult *res = PQexec(c, sql);

	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", sql,
		      PQresultErrorMessage(res));
	ck_assert_msg(strcmp(PQcmdStatus(res), tag) == 0, "%s: tag %s, expected %s", sql,
		      PQcmdStatus(res), tag);
	PQclear(res);
}

/* PQprepare of name (sql, nparams parameters of types PostgreSQL infers) on c succeeds. */
static void
prepare_ok(PGconn *c, const char *name, const char *sql, int nparams)
{
	PGresult *res = PQprepare(c, name, sql, nparams, NULL);

	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", name, PQerrorMessage(c));
	PQclear(res);
}

/* Run sql, expect an error with sqlstate and exactly the primary message msg. */
static void
exec_err(PGconn *c, const char *sql, const char *sqlstate, const char *msg)
{
	const char *got = it_exec_error(c, sql, sqlstate);

	if (msg)
		ck_assert_msg(strcmp(got, msg) == 0, "%s: message \"%s\", expected \"%s\"", sql,
			      got, msg);
}

/*
 * Close a prepared statement on c's connection (libpq 15 has no
 * PQclosePrepared): Close 'S' + Sync written to its socket while libpq is
 * idle, and CloseComplete + ReadyForQuery read back from it.
 */
static void
close_prepared(PGconn *c, const char *name)
{
	unsigned char msg[128], in[16];
	size_t n = strlen(name), len = 4 + 1 + n + 1, got = 0;
	int fd = PQsocket(c);
	long long end = it_now_ms() + 3000;

	ck_assert(n < 64);
	msg[0] = 'C';
	msg[1] = (unsigned char)(len >> 24);
	msg[2] = (unsigned char)(len >> 16);
	msg[3] = (unsigned char)(len >> 8);
	msg[4] = (unsigned char)len;
	msg[5] = 'S';
	memcpy(msg + 6, name, n + 1);
	memcpy(msg + 1 + len, (const unsigned char[]){ 'S', 0, 0, 0, 4 }, 5);
	ck_assert_int_eq(write(fd, msg, 1 + len + 5), (ssize_t)(1 + len + 5));
	while (got < 11) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		ck_assert_msg(it_now_ms() < end, "no answer to Close");
		poll(&pfd, 1, 100);
		r = read(fd, in + got, 11 - got);
		if (r > 0)
			got += (size_t)r;
		else
			ck_assert_msg(r < 0, "connection closed");
	}
	ck_assert_msg(in[0] == '3' && in[5] == 'Z', "Close answered with '%c', then '%c'", in[0],
		      in[5]);
}

/*
 * Read c's replies (libpq idle) up to the n-th ReadyForQuery and describe
 * them in out: "C:<tag>" for CommandComplete, "E:<sqlstate>" for an error
 * (with_msg: "E:<sqlstate>:<message>"), "D:<first value>" for a row, the
 * type letter for anything else, space separated (ParameterStatus and
 * notices left out). Nothing may follow the last ReadyForQuery.
 */
static void
replies(PGconn *c, int n, bool with_msg, char *out, size_t out_len)
{
	static unsigned char buf[65536];
	size_t got = 0, at = 0, o = 0;
	int fd = PQsocket(c), ready = 0;
	long long end = it_now_ms() + 5000;

	out[0] = '\0';
	while (ready < n) {
		size_t mlen;
		unsigned char type;

		while (got - at < 5 ||
		       got - at < 1 + ((size_t)buf[at + 1] << 24 | (size_t)buf[at + 2] << 16 |
				       (size_t)buf[at + 3] << 8 | buf[at + 4])) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			ssize_t r;

			ck_assert_msg(it_now_ms() < end, "pipeline: no answer (%s)", out);
			ck_assert(got < sizeof(buf));
			poll(&pfd, 1, 100);
			r = read(fd, buf + got, sizeof(buf) - got);
			ck_assert_msg(r != 0, "pipeline: connection closed (%s)", out);
			if (r > 0)
				got += (size_t)r;
		}
		type = buf[at];
		mlen = (size_t)buf[at + 1] << 24 | (size_t)buf[at + 2] << 16 |
		       (size_t)buf[at + 3] << 8 | buf[at + 4];
		switch (type) {
		case 'C':
			o += (size_t)snprintf(out + o, out_len - o, "%sC:%s", o ? " " : "",
					      (const char *)buf + at + 5);
			break;
		case 'E': {
			const char *f = (const char *)buf + at + 5, *m = f;

			while (*f && *f != 'C')
				f += strlen(f) + 1;
			while (*m && *m != 'M')
				m += strlen(m) + 1;
			o += (size_t)snprintf(out + o, out_len - o, "%sE:%s%s%s", o ? " " : "",
					      *f ? f + 1 : "?", with_msg ? ":" : "",
					      with_msg && *m ? m + 1 : "");
			break;
		}
		case 'D': {
			int vlen = (int)((unsigned)buf[at + 7] << 24 | (unsigned)buf[at + 8] << 16 |
					 (unsigned)buf[at + 9] << 8 | buf[at + 10]);

			o += (size_t)snprintf(out + o, out_len - o, "%sD:%.*s", o ? " " : "",
					      vlen > 0 ? vlen : 0, (const char *)buf + at + 11);
			break;
		}
		case 'S':
		case 'N':
			break;
		default:
			o += (size_t)snprintf(out + o, out_len - o, "%s%c", o ? " " : "", type);
			if (type == 'Z')
				ready++;
			break;
		}
		ck_assert(o < out_len);
		at += 1 + mlen;
	}
	ck_assert_msg(at == got, "pipeline: %zu bytes after the last ReadyForQuery", got - at);
}

/*
 * Pipelined simple queries: write every Query of sqls to c's socket at once
 * (libpq idle), read the replies up to the last ReadyForQuery and describe
 * them in out (replies()).
 */
static void
pipeline(PGconn *c, const char *const *sqls, int n, char *out, size_t out_len)
{
	ck_assert_int_eq(it_raw_send_queries(PQsocket(c), sqls, n), 0);
	replies(c, n, false, out, out_len);
}

/* ---- raw extended-protocol requests ------------------------------------- */

/* Frontend messages built up to be written at once. */
struct raw {
	char buf[4096];
	size_t n;
};

/* Append a message of type with body (len bytes). */
static void
raw_put(struct raw *r, char type, const void *body, size_t len)
{
	uint32_t l = (uint32_t)len + 4;

	ck_assert(r->n + 5 + len <= sizeof(r->buf));
	r->buf[r->n++] = type;
	r->buf[r->n++] = (char)(l >> 24);
	r->buf[r->n++] = (char)(l >> 16);
	r->buf[r->n++] = (char)(l >> 8);
	r->buf[r->n++] = (char)l;
	memcpy(r->buf + r->n, body, len);
	r->n += len;
}

/* Parse of statement name with sql, no parameter types. */
static void
raw_parse(struct raw *r, const char *name, const char *sql)
{
	char body[512];
	size_t a = strlen(name) + 1, b = strlen(sql) + 1;

	ck_assert(a + b + 2 <= sizeof(body));
	memcpy(body, name, a);
	memcpy(body + a, sql, b);
	memset(body + a + b, 0, 2);
	raw_put(r, 'P', body, a + b + 2);
}

/* Bind of statement name to portal (no parameters). */
static void
raw_bind(struct raw *r, const char *portal, const char *name)
{
	char body[128];
	size_t p = strlen(portal) + 1, a = strlen(name) + 1;

	ck_assert(p + a + 6 <= sizeof(body));
	memcpy(body, portal, p);
	memcpy(body + p, name, a);
	memset(body + p + a, 0, 6);
	raw_put(r, 'B', body, p + a + 6);
}

/* Execute of portal, all rows. */
static void
raw_exec(struct raw *r, const char *portal)
{
	char body[128];
	size_t p = strlen(portal) + 1;

	ck_assert(p + 4 <= sizeof(body));
	memcpy(body, portal, p);
	memset(body + p, 0, 4);
	raw_put(r, 'E', body, p + 4);
}

/* Bind of statement name to the unnamed portal (no parameters), then Execute of it. */
static void
raw_run(struct raw *r, const char *name)
{
	raw_bind(r, "", name);
	raw_exec(r, "");
}

/* A message of type ('C' Close, 'D' Describe) about statement name. */
static void
raw_statement_msg(struct raw *r, char type, const char *name)
{
	char body[128];
	size_t a = strlen(name) + 1;

	ck_assert(1 + a <= sizeof(body));
	body[0] = 'S';
	memcpy(body + 1, name, a);
	raw_put(r, type, body, 1 + a);
}

/* Close of statement name. */
static void
raw_close(struct raw *r, const char *name)
{
	raw_statement_msg(r, 'C', name);
}

static void
raw_sync(struct raw *r)
{
	raw_put(r, 'S', "", 0);
}

static void
raw_query(struct raw *r, const char *sql)
{
	raw_put(r, 'Q', sql, strlen(sql) + 1);
}

/*
 * Write r at once to the direct connection and to c (libpq idle on both),
 * read each one's replies up to the readies-th ReadyForQuery: the same,
 * error messages included (replies()); and want, when not NULL. r is
 * emptied.
 */
static void
same_raw(PGconn *direct, PGconn *c, struct raw *r, int readies, const char *want)
{
	char got_d[2048], got[2048];

	ck_assert_int_eq(it_raw_send(PQsocket(direct), r->buf, r->n), 0);
	replies(direct, readies, true, got_d, sizeof(got_d));
	ck_assert_int_eq(it_raw_send(PQsocket(c), r->buf, r->n), 0);
	replies(c, readies, true, got, sizeof(got));
	r->n = 0;
	ck_assert_msg(strcmp(got, got_d) == 0, "pgdog: %s\nPostgreSQL: %s", got, got_d);
	if (want)
		ck_assert_str_eq(got, want);
}

/* pgdog's statements on the server (a query through c). */
static int
pgdog_statements(PGconn *c)
{
	return atoi(it_value(c, "SELECT count(*) FROM pg_prepared_statements "
				"WHERE name LIKE '\\_\\_pgdog%'"));
}

/*
 * The same statement text from a client with standard_conforming_strings
 * off and one with it on means two statements ('a\\b' is a\b for the one,
 * a\\b for the other): each client gets its own reading, on one server.
 */
START_TEST(test_scs_statements_apart)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;

	exec_tag(a, "SET standard_conforming_strings = off", "SET");
	for (int i = 0; i < 2; i++) {
		PGconn *c = i ? b : a;

		res = PQprepare(c, "bs", "SELECT 'a\\\\b'", 0, NULL);
		ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s",
			      PQresultErrorMessage(res));
		PQclear(res);
		exec_tag(c, "PREPARE bq AS SELECT 'x\\\\y'", "PREPARE");
	}
	for (int i = 0; i < 6; i++) {
		PGconn *c = i % 2 ? b : a;

		res = PQexecPrepared(c, "bs", 0, NULL, NULL, NULL, 0);
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s",
			      PQresultErrorMessage(res));
		ck_assert_msg(strcmp(PQgetvalue(res, 0, 0), i % 2 ? "a\\\\b" : "a\\b") == 0,
			      "round %d: bs gave %s", i, PQgetvalue(res, 0, 0));
		PQclear(res);
		ck_assert_msg(strcmp(it_value(c, "EXECUTE bq"), i % 2 ? "x\\\\y" : "x\\y") == 0,
			      "round %d: bq gave %s", i, it_value(c, "EXECUTE bq"));
	}
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* A connection straight to the cluster, as "app", to the database pgdog serves. */
static PGconn *
connect_direct(void)
{
	char dsn[256];
	PGconn *c;

	/* pgdog's database "app" is the cluster's "postgres" */
	snprintf(
		dsn, sizeof(dsn),
		"host=127.0.0.1 port=%d connect_timeout=5 dbname=postgres user=app password=app_pw",
		g_it.pg_port);
	c = PQconnectdb(dsn);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "direct: %s", PQerrorMessage(c));
	return c;
}

/* got (through pgdog) is the same error as want (from PostgreSQL), field by field. */
static void
same_error(PGresult *want, PGresult *got, const char *what)
{
	static const struct {
		int code;
		const char *name;
	} fields[] = {
		{ PG_DIAG_SEVERITY, "severity" },
		{ PG_DIAG_SEVERITY_NONLOCALIZED, "severity (V)" },
		{ PG_DIAG_SQLSTATE, "sqlstate" },
		{ PG_DIAG_MESSAGE_PRIMARY, "message" },
		{ PG_DIAG_MESSAGE_DETAIL, "detail" },
		{ PG_DIAG_MESSAGE_HINT, "hint" },
		{ PG_DIAG_STATEMENT_POSITION, "position" },
		{ PG_DIAG_CONTEXT, "context" },
		{ PG_DIAG_SOURCE_FILE, "file" },
		{ PG_DIAG_SOURCE_FUNCTION, "routine" },
	};

	ck_assert_msg(PQresultStatus(want) == PGRES_FATAL_ERROR, "%s: PostgreSQL said %s", what,
		      PQresStatus(PQresultStatus(want)));
	ck_assert_msg(PQresultStatus(got) == PGRES_FATAL_ERROR, "%s: pgdog said %s", what,
		      PQresStatus(PQresultStatus(got)));
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *w = PQresultErrorField(want, fields[i].code);
		const char *g = PQresultErrorField(got, fields[i].code);

		ck_assert_msg((w == NULL) == (g == NULL) && (w == NULL || strcmp(w, g) == 0),
			      "%s: %s \"%s\" through pgdog, \"%s\" from PostgreSQL", what,
			      fields[i].name, g ? g : "(none)", w ? w : "(none)");
	}
}

/* Run sql on both connections; both must fail the same way. */
static void
same_exec_error(PGconn *direct, PGconn *c, const char *sql)
{
	PGresult *want = PQexec(direct, sql), *got = PQexec(c, sql);

	same_error(want, got, sql);
	PQclear(want);
	PQclear(got);
}

/* Both connections: PQprepare(name, sql) must fail the same way. */
static void
same_prepare_error(PGconn *direct, PGconn *c, const char *name, const char *sql)
{
	PGresult *want = PQprepare(direct, name, sql, 0, NULL),
		 *got = PQprepare(c, name, sql, 0, NULL);

	same_error(want, got, sql);
	PQclear(want);
	PQclear(got);
}

/* Both connections: the same command tag. */
static void
same_tag(PGconn *direct, PGconn *c, const char *sql, const char *tag)
{
	exec_tag(direct, sql, tag);
	exec_tag(c, sql, tag);
}

/* ---- prepared_statements = full ----------------------------------------- */

/*
 * Two clients on one server, each with its own statement called "s": over
 * many transactions, each always gets its own statement's results.
 */
START_TEST(test_full_prepare_execute)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	char pa[32], sql[128], want[32];

	snprintf(pa, sizeof(pa), "%s", it_value(a, "SELECT pg_backend_pid()"));
	ck_assert_str_eq(it_value(b, "SELECT pg_backend_pid()"), pa);
	exec_tag(a, "PREPARE s (int) AS SELECT $1 + 1", "PREPARE");
	exec_tag(b, "prepare S(int) as select $1 * 2", "PREPARE");
	for (int i = 0; i < 50; i++) {
		PGconn *c = i % 2 ? a : b;

		snprintf(sql, sizeof(sql), "EXECUTE s(%d)", i);
		snprintf(want, sizeof(want), "%d", i % 2 ? i + 1 : i * 2);
		ck_assert_str_eq(it_value(c, sql), want);
		if (i % 5 == 0) {
			/* inside a transaction block, with other statements around */
			exec_ok(c, "BEGIN");
			ck_assert_str_eq(it_value(c, "SELECT count(*) FROM pf_t"), "100");
			ck_assert_str_eq(it_value(c, sql), want);
			exec_ok(c, "COMMIT");
		}
	}
	/* a multi-statement Query with EXECUTE in it */
	{
		PGresult *res = PQexec(a, "SELECT 1; EXECUTE s(41)");

		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s",
			      PQresultErrorMessage(res));
		ck_assert_str_eq(PQgetvalue(res, 0, 0), "42");
		PQclear(res);
	}
	/* still one server for both */
	ck_assert_str_eq(it_value(a, "SELECT pg_backend_pid()"), pa);
	exec_tag(a, "DEALLOCATE s", "DEALLOCATE");
	exec_err(a, "EXECUTE s(1)", "26000", "prepared statement \"s\" does not exist");
	/* b's statement of the same name is untouched */
	ck_assert_str_eq(it_value(b, "EXECUTE s(21)"), "42");
	exec_tag(b, "DEALLOCATE PREPARE s", "DEALLOCATE");
	exec_err(b, "EXECUTE s(1)", "26000", "prepared statement \"s\" does not exist");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* The same text from two clients is one statement on the server (SHOW PREPARED). */
START_TEST(test_full_shared)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP), *adm;
	PGresult *res;
	int found = 0;

	exec_tag(a, "PREPARE one_a (int) AS SELECT v FROM pf_t WHERE id = $1", "PREPARE");
	exec_tag(b, "PREPARE one_b (int) AS SELECT v FROM pf_t WHERE id = $1", "PREPARE");
	ck_assert_str_eq(it_value(a, "EXECUTE one_a(7)"), "v7");
	ck_assert_str_eq(it_value(b, "EXECUTE one_b(8)"), "v8");
	ck_assert_str_eq(it_value(a, "SELECT count(*) FROM pg_prepared_statements WHERE "
				     "statement LIKE '%pf_t WHERE id = $1'"),
			 "1");
	adm = it_connect(ADMIN);
	res = it_exec_ok(adm, "SHOW PREPARED");
	for (int r = 0; r < PQntuples(res); r++) {
		if (!strstr(PQgetvalue(res, r, 2), "SELECT v FROM pf_t WHERE id = $1"))
			continue;
		found++;
		ck_assert_str_eq(PQgetvalue(res, r, 3), "2"); /* used_by */
		ck_assert_int_ge(atoi(PQgetvalue(res, r, 5)), 2);
	}
	ck_assert_int_eq(found, 1);
	PQclear(res);
	PQfinish(adm);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* Errors are PostgreSQL's: unknown name, duplicate, syntax error, unknown table. */
/*
 * EXPLAIN [ANALYZE] EXECUTE and CREATE TABLE ... AS EXECUTE run the client's
 * statement, SQL-prepared or protocol-level, as in PostgreSQL. (pgdog did
 * not rewrite the name inside them: 26000.)
 */
START_TEST(test_full_wrapped_execute)
{
	PGconn *a = it_connect(APP);
	PGresult *res;

	exec_tag(a, "PREPARE wx(int) AS SELECT v FROM pf_t WHERE id = $1", "PREPARE");
	res = PQexec(a, "EXPLAIN (COSTS off) EXECUTE wx(3)");
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(a));
	ck_assert_int_ge(PQntuples(res), 1);
	PQclear(res);
	res = PQexec(a, "explain analyze execute \"wx\"(4)");
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(a));
	PQclear(res);
	prepare_ok(a, "WxP", "SELECT 7 AS seven", 0);
	exec_tag(a, "CREATE TEMP TABLE wx_t AS EXECUTE \"WxP\"", "SELECT 1");
	ck_assert_str_eq(it_value(a, "SELECT seven FROM wx_t"), "7");
	exec_err(a, "EXPLAIN EXECUTE nope", "26000", "prepared statement \"nope\" does not exist");
	/* a quoted name right after the word (pgdog's name was glued to it: 42601) */
	exec_tag(a, "prepare \"sel\" as select 42", "PREPARE");
	ck_assert_str_eq(it_value(a, "execute\"sel\""), "42");
	res = PQexec(a, "explain execute\"sel\"");
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(a));
	PQclear(res);
	PQfinish(a);
}
END_TEST

START_TEST(test_full_errors)
{
	PGconn *a = it_connect(APP);

	exec_err(a, "EXECUTE nope", "26000", "prepared statement \"nope\" does not exist");
	exec_err(a, "DEALLOCATE nope", "26000", "prepared statement \"nope\" does not exist");
	exec_tag(a, "PREPARE d AS SELECT 1", "PREPARE");
	exec_err(a, "PREPARE d AS SELECT 2", "42P05", "prepared statement \"d\" already exists");
	{
		/* between transactions pgdog answers it exactly as PostgreSQL: no CONTEXT */
		PGresult *res = PQexec(a, "PREPARE d AS SELECT 2");

		ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SEVERITY), "ERROR");
		ck_assert_ptr_null(PQresultErrorField(res, PG_DIAG_CONTEXT));
		PQclear(res);
	}
	ck_assert_str_eq(it_value(a, "EXECUTE d"), "1");
	/* PostgreSQL's errors name the client's statement, not pgdog's copy of it */
	exec_tag(a, "PREPARE np(int) AS SELECT $1", "PREPARE");
	exec_err(a, "EXECUTE np(1, 2)", "42601",
		 "wrong number of parameters for prepared statement \"np\"");
	/* the name the client used when it has two for one text (pgdog said the first's) */
	exec_tag(a, "PREPARE np2(int) AS SELECT $1", "PREPARE");
	exec_err(a, "EXECUTE np2(1, 2)", "42601",
		 "wrong number of parameters for prepared statement \"np2\"");
	exec_err(a, "SELECT 1; EXECUTE np2(1, 2)", "42601",
		 "wrong number of parameters for prepared statement \"np2\"");
	exec_err(a, "EXECUTE np(1, 2)", "42601",
		 "wrong number of parameters for prepared statement \"np\"");
	/* a name as long as pgdog's own */
	exec_tag(a, "PREPARE np_twelve_ch(int) AS SELECT $1 + 0", "PREPARE");
	exec_err(a, "EXECUTE np_twelve_ch(1, 2)", "42601",
		 "wrong number of parameters for prepared statement \"np_twelve_ch\"");
	{
		const char *two[] = { "1", "2" };
		PGresult *res;

		ck_assert_int_eq(
			PQresultStatus(res = PQprepare(a, "pd", "SELECT $1::int", 0, NULL)),
			PGRES_COMMAND_OK);
		PQclear(res);
		res = PQexecPrepared(a, "pd", 2, two, NULL, NULL, 0);
		ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "08P01");
		ck_assert_str_eq(
			PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
			"bind message supplies 2 parameters, but prepared statement \"pd\" "
			"requires 1");
		PQclear(res);
	}
	/* a syntax error: the name is not taken */
	exec_err(a, "PREPARE bad AS SELEC 1", "42601", NULL);
	exec_err(a, "EXECUTE bad", "26000", "prepared statement \"bad\" does not exist");
	/* PostgreSQL's own check: an unknown table */
	exec_err(a, "PREPARE nt AS SELECT * FROM no_such_table", "42P01",
		 "relation \"no_such_table\" does not exist");
	exec_err(a, "EXECUTE nt", "26000", "prepared statement \"nt\" does not exist");
	exec_tag(a, "PREPARE nt AS SELECT 3", "PREPARE");
	ck_assert_str_eq(it_value(a, "EXECUTE nt"), "3");
	/* in a transaction block the duplicate aborts it, as in PostgreSQL */
	exec_ok(a, "BEGIN");
	exec_err(a, "PREPARE d AS SELECT 2", "42P05", "prepared statement \"d\" already exists");
	exec_err(a, "SELECT 1", "25P02", NULL);
	exec_ok(a, "ROLLBACK");
	ck_assert_str_eq(it_value(a, "EXECUTE d"), "1");
	/* DEALLOCATE in an aborted transaction fails and keeps the name; in a live one it works */
	exec_ok(a, "BEGIN");
	exec_err(a, "SELECT 1/0", "22012", NULL);
	exec_err(a, "DEALLOCATE d", "25P02", NULL);
	exec_ok(a, "ROLLBACK");
	exec_ok(a, "BEGIN");
	ck_assert_str_eq(it_value(a, "EXECUTE d"), "1");
	exec_tag(a, "DEALLOCATE d", "DEALLOCATE");
	exec_err(a, "EXECUTE d", "26000", "prepared statement \"d\" does not exist");
	exec_ok(a, "ROLLBACK");
	exec_err(a, "EXECUTE d", "26000", NULL);
	exec_tag(a, "PREPARE d AS SELECT 1", "PREPARE");
	/* the same text checked again while the server holds it */
	exec_tag(a, "PREPARE d2 AS SELECT 1", "PREPARE");
	ck_assert_str_eq(it_value(a, "EXECUTE d2"), "1");
	exec_err(a, "PREPARE d3 AS SELECT 1 FROM no_such_table", "42P01", NULL);
	exec_err(a, "EXECUTE d3", "26000", "prepared statement \"d3\" does not exist");
	PQfinish(a);
}
END_TEST

/* DEALLOCATE ALL and DISCARD ALL forget SQL-prepared names; the names can be used again. */
START_TEST(test_full_deallocate_all)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);

	exec_tag(a, "PREPARE x1 AS SELECT 'x1'", "PREPARE");
	exec_tag(a, "PREPARE x2 AS SELECT 'x2'", "PREPARE");
	exec_tag(b, "PREPARE x1 AS SELECT 'x1'", "PREPARE");
	exec_tag(a, "DEALLOCATE ALL", "DEALLOCATE ALL");
	exec_err(a, "EXECUTE x1", "26000", "prepared statement \"x1\" does not exist");
	exec_err(a, "EXECUTE x2", "26000", "prepared statement \"x2\" does not exist");
	/* another client's statement of the same text still works */
	ck_assert_str_eq(it_value(b, "EXECUTE x1"), "x1");
	exec_tag(a, "PREPARE x1 AS SELECT 'again'", "PREPARE");
	ck_assert_str_eq(it_value(a, "EXECUTE x1"), "again");
	/* in an aborted transaction block: PostgreSQL's 25P02, the names stay */
	exec_ok(a, "BEGIN");
	exec_err(a, "SELECT 1/0", "22012", NULL);
	exec_err(a, "DEALLOCATE ALL", "25P02",
		 "current transaction is aborted, commands ignored until end of transaction block");
	exec_ok(a, "ROLLBACK");
	ck_assert_str_eq(it_value(a, "EXECUTE x1"), "again");
	/* in a transaction block; the server keeps what b uses */
	exec_ok(a, "BEGIN");
	exec_tag(a, "DEALLOCATE ALL", "DEALLOCATE ALL");
	exec_err(a, "EXECUTE x1", "26000", NULL);
	exec_ok(a, "ROLLBACK");
	exec_err(a, "EXECUTE x1", "26000", NULL);
	ck_assert_int_ge(atoi(it_value(b, "SELECT count(*) FROM pg_prepared_statements")), 1);
	ck_assert_str_eq(it_value(b, "EXECUTE x1"), "x1");
	exec_tag(a, "PREPARE y AS SELECT 'y'", "PREPARE");
	exec_tag(a, "DISCARD ALL", "DISCARD ALL");
	exec_err(a, "EXECUTE y", "26000", "prepared statement \"y\" does not exist");
	ck_assert_str_eq(it_value(b, "EXECUTE x1"), "x1");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * DEALLOCATE ALL in the same write as Parses whose answers pgdog gives
 * itself (the server holds the text already): forgetting the client's
 * statements freed one that such a reply still pointed to (heap use after
 * free: the worker aborted under ASan and dropped its clients). Compared
 * with PostgreSQL; the connection must work afterwards.
 */
START_TEST(test_deallocate_all_pipelined)
{
	PGconn *d = connect_direct(), *a = it_connect(APP);
	struct raw r = { .n = 0 };

	raw_parse(&r, "ua", "SELECT 1");
	raw_sync(&r);
	raw_query(&r, "SELECT 1");
	raw_parse(&r, "ub", "SELECT 1");
	raw_sync(&r);
	raw_query(&r, "DEALLOCATE ALL");
	same_raw(d, a, &r, 4, "1 Z T D:1 C:SELECT 1 Z 1 Z C:DEALLOCATE ALL Z");
	ck_assert_str_eq(it_value(a, "SELECT 'alive'"), "alive");
	raw_query(&r, "PREPARE up3 AS SELECT 3");
	raw_parse(&r, "ux", "SELECT 4");
	raw_sync(&r);
	raw_query(&r, "DEALLOCATE ALL");
	same_raw(d, a, &r, 3, "C:PREPARE Z 1 Z C:DEALLOCATE ALL Z");
	ck_assert_str_eq(it_value(a, "SELECT 'alive'"), "alive");
	PQfinish(d);
	PQfinish(a);
}
END_TEST

/*
 * DISCARD ALL sent after an Execute of the same unsynced request, in a
 * simple Query or (is_stmt) prepared as a named statement and run by an
 * Execute: PostgreSQL refuses it (25001, "within a pipeline") unless that
 * Execute ended the transaction (a COMMIT), after which it runs and drops
 * every statement of the server's session. The other client's statement
 * on the same server must still be prepared where it runs next.
 */
static void
check_discard_after_exec(bool is_stmt)
{
	PGconn *da = connect_direct(), *db = connect_direct();
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	struct raw r = { .n = 0 };
	int n = is_stmt ? 1 : 2;
	const char *refused =
		is_stmt ? "1 2 D:2 C:SELECT 1 2 "
			  "E:25001:DISCARD ALL cannot be executed within a pipeline Z"
			: "1 2 D:2 C:SELECT 1 "
			  "E:25001:DISCARD ALL cannot be executed within a pipeline Z Z";

	raw_parse(&r, "bs", "SELECT 'after commit'");
	raw_run(&r, "bs");
	raw_sync(&r);
	same_raw(db, b, &r, 1, "1 2 D:after commit C:SELECT 1 Z");
	if (is_stmt)
		raw_parse(&r, "dx", "DISCARD ALL");
	raw_parse(&r, "ak", "SELECT 'ak'");
	raw_sync(&r);
	same_raw(da, a, &r, 1, is_stmt ? "1 1 Z" : "1 Z");
	for (int commit = 0; commit < 2; commit++) {
		raw_parse(&r, "", commit ? "COMMIT" : "SELECT 2");
		raw_bind(&r, "p1", "");
		raw_exec(&r, "p1");
		if (is_stmt)
			raw_run(&r, "dx");
		else
			raw_query(&r, "DISCARD ALL");
		raw_sync(&r);
		/* refused after a SELECT's Execute */
		same_raw(da, a, &r, n, commit ? NULL : refused);
		raw_run(&r, "ak");
		raw_sync(&r);
		same_raw(da, a, &r, 1,
			 commit ? "E:26000:prepared statement \"ak\" does not exist Z"
				: "2 D:ak C:SELECT 1 Z");
		raw_run(&r, "bs");
		raw_sync(&r);
		same_raw(db, b, &r, 1, "2 D:after commit C:SELECT 1 Z");
	}
	PQfinish(a);
	PQfinish(b);
	PQfinish(da);
	PQfinish(db);
}

/*
 * In a simple Query. (pgdog took both for refused: after the COMMIT the
 * server's statements were gone while pgdog counted them, and the next
 * client's statement got 26000. Found by the differential fuzzer.)
 */
START_TEST(test_discard_after_exec_commit)
{
	check_discard_after_exec(false);
}
END_TEST

/* Prepared as a named statement: the same mistake (26000), and now its fix. */
START_TEST(test_discard_stmt_after_exec_commit)
{
	check_discard_after_exec(true);
}
END_TEST

/*
 * DEALLOCATE ALL among other statements of a Query, pipelined behind a
 * request whose answers have not come: the client's next message waits for
 * its outcome, so a Describe of a statement it dropped gets PostgreSQL's
 * 26000 naming the client's statement. (The wait ended when the Parse
 * before it was answered: the Describe went with pgdog's name for the
 * statement, and the error named "__pgdog_...". Found by the differential
 * fuzzer.)
 */
START_TEST(test_dealloc_multi_then_describe)
{
	PGconn *d = connect_direct(), *a = it_connect(APP);
	struct raw r = { .n = 0 };

	raw_parse(&r, "s2", "SELECT 'dealloc multi'");
	raw_sync(&r);
	raw_query(&r, "SELECT 1; DEALLOCATE ALL");
	raw_statement_msg(&r, 'D', "s2");
	raw_sync(&r);
	same_raw(d, a, &r, 3,
		 "1 Z T D:1 C:SELECT 1 C:DEALLOCATE ALL Z "
		 "E:26000:prepared statement \"s2\" does not exist Z");
	ck_assert_str_eq(it_value(a, "SELECT 'alive'"), "alive");
	PQfinish(d);
	PQfinish(a);
}
END_TEST

/*
 * A simple Query inside an extended-protocol request that failed before it
 * (PostgreSQL skips it and owes it no ReadyForQuery), then the client goes:
 * the pool's one server serves the next client. (pgdog counted a
 * ReadyForQuery for it where it follows no reply slots, prepared_statements
 * = full or disabled, waited for it when the client sent Terminate, and
 * kept the server for the gone client: the pool was stuck for good.)
 */
START_TEST(test_skipped_query_client_gone)
{
	PGconn *d = connect_direct(), *a = it_connect(APP), *b;
	struct raw r = { .n = 0 };

	raw_run(&r, "nonexist");
	raw_query(&r, "PREPARE q2 AS SELECT 2");
	raw_sync(&r);
	same_raw(d, a, &r, 1, "E:26000:prepared statement \"nonexist\" does not exist Z");
	raw_parse(&r, "", "SELEC 1");
	raw_query(&r, "SELECT 1");
	raw_sync(&r);
	same_raw(d, a, &r, 1, "E:42601:syntax error at or near \"SELEC\" Z");
	PQfinish(a);
	b = it_connect(APP);
	ck_assert_int_eq(PQsendQuery(b, "SELECT 'next'"), 1);
	ck_assert_str_eq(it_value_within(b, 5000, "the next client's query"), "next");
	PQfinish(b);
	PQfinish(d);
}
END_TEST

/*
 * prepared_statements = full, SQL PREPARE and EXECUTE sent through the
 * extended protocol, replies compared with PostgreSQL's. Before:
 * - an unnamed PREPARE run twice: the second run's 42P05 named pgdog's
 *   throwaway statement (__pgdog_check_*), not the client's name, and in
 *   a later request it succeeded (pgdog had closed the throwaway);
 * - an EXECUTE sent as a Parse: its errors named pgdog's statement
 *   (__pgdog_*), and with two names for one text, the first of them.
 * A PREPARE's portal executed again in the same request (55000) still
 * prepares the name.
 */
START_TEST(test_full_sql_names)
{
	PGconn *d = connect_direct(), *a = it_connect(APP);
	struct raw r = { .n = 0 };

	raw_parse(&r, "", "PREPARE x57 AS SELECT 1");
	raw_bind(&r, "p1", "");
	raw_exec(&r, "p1");
	raw_bind(&r, "p2", "");
	raw_exec(&r, "p2");
	raw_sync(&r);
	same_raw(d, a, &r, 1,
		 "1 2 C:PREPARE 2 E:42P05:prepared statement \"x57\" already exists Z");
	/* again in a later request: pgdog had closed its throwaway, and it ran */
	raw_bind(&r, "p3", "");
	raw_exec(&r, "p3");
	raw_sync(&r);
	same_raw(d, a, &r, 1, "2 E:42P05:prepared statement \"x57\" already exists Z");
	raw_query(&r, "EXECUTE x57");
	same_raw(d, a, &r, 1, "T D:1 C:SELECT 1 Z");
	/* executed again in the same request: 55000, and the name stays */
	raw_parse(&r, "", "PREPARE x55 AS SELECT 2");
	raw_bind(&r, "", "");
	raw_exec(&r, "");
	raw_exec(&r, "");
	raw_sync(&r);
	same_raw(d, a, &r, 1, "1 2 C:PREPARE E:55000:portal \"\" cannot be run Z");
	raw_query(&r, "PREPARE x55 AS SELECT 2");
	same_raw(d, a, &r, 1, "E:42P05:prepared statement \"x55\" already exists Z");
	/* SQL EXECUTE sent as a Parse: its errors name the client's statement */
	raw_query(&r, "PREPARE n1(int) AS SELECT $1");
	same_raw(d, a, &r, 1, "C:PREPARE Z");
	raw_parse(&r, "", "EXECUTE n1(1, 2)");
	raw_run(&r, "");
	raw_sync(&r);
	same_raw(d, a, &r, 1,
		 "1 2 E:42601:wrong number of parameters for prepared statement \"n1\" Z");
	/* and the one it used when the client has two names for it */
	raw_query(&r, "PREPARE n2(int) AS SELECT $1");
	raw_parse(&r, "", "EXECUTE n2(1, 2)");
	raw_run(&r, "");
	raw_sync(&r);
	raw_query(&r, "EXECUTE n1(1); EXECUTE n2(1, 2)");
	same_raw(d, a, &r, 3,
		 "C:PREPARE Z 1 2 E:42601:wrong number of parameters for prepared statement "
		 "\"n2\" Z T D:1 C:SELECT 1 E:42601:wrong number of parameters for prepared "
		 "statement \"n2\" Z");
	PQfinish(a);
	PQfinish(d);
}
END_TEST

/*
 * A DISCARD ALL through the extended protocol, in a transaction block begun
 * by a Query pipelined in front of it: PostgreSQL refuses it (25001) and the
 * temporary table stays. pgdog took it as run (the transaction was not
 * known while Parse and Bind were in flight), dropped the pin, and gave the
 * server to the next client after the ROLLBACK.
 */
START_TEST(test_discard_in_block_keeps_pin)
{
	PGconn *d = connect_direct(), *a = it_connect(APP), *b;
	struct raw r = { .n = 0 };

	exec_ok(a, "CREATE TEMP TABLE tt_block (x int)");
	exec_ok(d, "CREATE TEMP TABLE tt_block (x int)");
	raw_query(&r, "BEGIN");
	raw_parse(&r, "", "DISCARD ALL");
	raw_run(&r, "");
	raw_sync(&r);
	raw_query(&r, "ROLLBACK");
	same_raw(d, a, &r, 3,
		 "C:BEGIN Z 1 2 E:25001:DISCARD ALL cannot run inside a transaction block Z "
		 "C:ROLLBACK Z");
	b = it_connect(APP);
	ck_assert_int_eq(PQsendQuery(b, "SELECT 1"), 1);
	ck_assert_msg(it_busy_for(b, 300), "B got the server while A had a temporary table on it");
	ck_assert_str_eq(it_value(a, "SELECT count(*) FROM tt_block"), "0");
	exec_ok(a, "DISCARD ALL");
	ck_assert_str_eq(it_value_within(b, 3000, "B after A's DISCARD ALL"), "1");
	PQfinish(b);
	PQfinish(a);
	PQfinish(d);
}
END_TEST

/*
 * PostgreSQL's error about a statement names it as the client's message did.
 * With two names for one text, pgdog named the first the client had (p1
 * for a Bind of p2); with a Close of it behind the failed Bind, pgdog's own
 * name (__pgdog_*). Replies compared with PostgreSQL's.
 */
START_TEST(test_alias_error_name)
{
	PGconn *d = connect_direct(), *a = it_connect(APP);
	struct raw r = { .n = 0 };
	const char *e1 = "E:08P01:bind message supplies 0 parameters, but prepared statement "
			 "\"p1\" requires 1 Z",
		   *e2 = "E:08P01:bind message supplies 0 parameters, but prepared statement "
			 "\"p2\" requires 1 Z";

	raw_parse(&r, "p1", "SELECT $1::int");
	raw_parse(&r, "p2", "SELECT $1::int");
	raw_sync(&r);
	same_raw(d, a, &r, 1, "1 1 Z");
	raw_bind(&r, "", "p2");
	raw_sync(&r);
	same_raw(d, a, &r, 1, e2);
	raw_bind(&r, "", "p1");
	raw_sync(&r);
	same_raw(d, a, &r, 1, e1);
	/* a Close behind the failed Bind is skipped: the name stays */
	raw_bind(&r, "", "p2");
	raw_close(&r, "p2");
	raw_sync(&r);
	same_raw(d, a, &r, 1, e2);
	raw_bind(&r, "", "p2");
	raw_sync(&r);
	same_raw(d, a, &r, 1, e2);
	raw_close(&r, "p1");
	raw_sync(&r);
	raw_bind(&r, "", "p2");
	raw_sync(&r);
	same_raw(d, a, &r, 2,
		 "3 Z E:08P01:bind message supplies 0 parameters, but prepared "
		 "statement \"p2\" requires 1 Z");
	PQfinish(a);
	PQfinish(d);
}
END_TEST

/*
 * A simple Query, or a Close of the unnamed statement, sent behind
 * extended-protocol messages in one request is skipped by PostgreSQL when
 * one of those fails. pgdog took them as run: it forgot the client's
 * unnamed statement (26000 at its next Bind, where PostgreSQL runs it) and,
 * after a skipped DEALLOCATE ALL, its named ones. It now holds such a
 * message until the server has answered those before it. Each request
 * goes in one write; replies compared with PostgreSQL's.
 */
START_TEST(test_skipped_query_unnamed)
{
	PGconn *d = connect_direct(), *a = it_connect(APP);
	struct raw r = { .n = 0 };

	raw_parse(&r, "", "SELECT 7 AS seven");
	raw_sync(&r);
	raw_bind(&r, "", "nonexist");
	raw_query(&r, "SELECT 1");
	raw_sync(&r);
	raw_run(&r, "");
	raw_sync(&r);
	same_raw(d, a, &r, 3,
		 "1 Z E:26000:prepared statement \"nonexist\" does not exist Z 2 D:7 C:SELECT 1 Z");
	/* a skipped Close of the unnamed statement */
	raw_bind(&r, "", "nonexist");
	raw_close(&r, "");
	raw_sync(&r);
	raw_run(&r, "");
	raw_sync(&r);
	same_raw(d, a, &r, 2,
		 "E:26000:prepared statement \"nonexist\" does not exist Z 2 D:7 C:SELECT 1 Z");
	/* a skipped DEALLOCATE ALL */
	raw_parse(&r, "s8", "SELECT 8");
	raw_sync(&r);
	raw_bind(&r, "", "nonexist");
	raw_query(&r, "DEALLOCATE ALL");
	raw_sync(&r);
	raw_run(&r, "s8");
	raw_sync(&r);
	same_raw(d, a, &r, 3,
		 "1 Z E:26000:prepared statement \"nonexist\" does not exist Z 2 D:8 C:SELECT 1 Z");
	/* run when nothing before it fails: the unnamed statement is gone */
	raw_run(&r, "");
	raw_query(&r, "SELECT 2");
	raw_sync(&r);
	raw_run(&r, "");
	raw_sync(&r);
	same_raw(d, a, &r, 3, NULL);
	PQfinish(a);
	PQfinish(d);
}
END_TEST

/*
 * A SET, or a DISCARD ALL, prepared and bound but never executed changes
 * nothing in PostgreSQL. pgdog took it as run at its Bind (at its Parse
 * with prepared_statements = disabled): it replayed the SET on the server
 * of the client's next transaction, and for the DISCARD ALL it took the
 * server for reset, so the next client got the first one's settings. A
 * DISCARD ALL that runs stands even when the request fails after it
 * (PostgreSQL commits it on its own); pgdog undid it. The unnamed
 * statement, in every mode; b shares the one server.
 */
START_TEST(test_set_bound_unnamed)
{
	PGconn *d = connect_direct(), *a = it_connect(APP), *b = it_connect(APP);
	struct raw r = { .n = 0 };

	for (int i = 0; i < 2; i++)
		exec_tag(i ? a : d, "SET application_name = 'pf_app'", "SET");
	raw_parse(&r, "", "SET intervalstyle = 'iso_8601'");
	raw_bind(&r, "", "");
	raw_sync(&r);
	raw_parse(&r, "", "DISCARD ALL");
	raw_bind(&r, "", "");
	raw_sync(&r);
	same_raw(d, a, &r, 2, "1 2 Z 1 2 Z");
	ck_assert_str_eq(it_value(b, "SHOW application_name"), "");
	ck_assert_str_eq(it_value(b, "SHOW intervalstyle"), "postgres");
	ck_assert_str_eq(it_value(a, "SHOW intervalstyle"), "postgres");
	ck_assert_str_eq(it_value(a, "SHOW application_name"), "pf_app");
	/* bound again to another statement before its Execute */
	raw_parse(&r, "", "SET intervalstyle = 'iso_8601'");
	raw_bind(&r, "", "");
	raw_parse(&r, "", "SELECT 4");
	raw_bind(&r, "", "");
	raw_exec(&r, "");
	raw_sync(&r);
	same_raw(d, a, &r, 1, "1 2 1 2 D:4 C:SELECT 1 Z");
	ck_assert_str_eq(it_value(b, "SELECT 'b'"), "b");
	ck_assert_str_eq(it_value(a, "SHOW intervalstyle"), "postgres");
	/* executed, it takes effect */
	raw_parse(&r, "", "SET intervalstyle = 'iso_8601'");
	raw_bind(&r, "", "");
	raw_exec(&r, "");
	raw_sync(&r);
	same_raw(d, a, &r, 1, "1 2 C:SET Z");
	ck_assert_str_eq(it_value(b, "SHOW intervalstyle"), "postgres");
	ck_assert_str_eq(it_value(a, "SHOW intervalstyle"), "iso_8601");
	/* a DISCARD ALL that ran, then an error before the Sync */
	raw_parse(&r, "", "DISCARD ALL");
	raw_bind(&r, "", "");
	raw_exec(&r, "");
	raw_parse(&r, "", "SELECT 1/0");
	raw_bind(&r, "", "");
	raw_exec(&r, "");
	raw_sync(&r);
	same_raw(d, a, &r, 1, "1 2 C:DISCARD ALL 1 E:22012:division by zero Z");
	ck_assert_str_eq(it_value(b, "SHOW application_name"), "");
	ck_assert_str_eq(it_value(d, "SHOW application_name"), "");
	ck_assert_str_eq(it_value(a, "SHOW application_name"), "");
	ck_assert_str_eq(it_value(a, "SHOW intervalstyle"), "postgres");
	PQfinish(a);
	PQfinish(b);
	PQfinish(d);
}
END_TEST

/*
 * A DISCARD ALL or DEALLOCATE ALL that PostgreSQL skips after an error
 * earlier in its request drops nothing: pgdog took the server's statements
 * for gone, prepared another client's statement there again and that
 * client got 42P05 naming pgdog's statement, on every use after.
 */
START_TEST(test_skipped_discard_other_client)
{
	PGconn *da = connect_direct(), *db = connect_direct(), *dc = connect_direct();
	PGconn *a = it_connect(APP), *b = it_connect(APP), *b2;
	struct raw r = { .n = 0 };

	raw_parse(&r, "bs", "SELECT 'bgx'");
	raw_run(&r, "bs");
	raw_sync(&r);
	same_raw(db, b, &r, 1, "1 2 D:bgx C:SELECT 1 Z");
	raw_bind(&r, "", "nonexist");
	raw_parse(&r, "", "DISCARD ALL");
	raw_run(&r, "");
	raw_sync(&r);
	raw_parse(&r, "as", "DEALLOCATE ALL");
	raw_bind(&r, "", "nonexist");
	raw_run(&r, "as");
	raw_sync(&r);
	raw_bind(&r, "", "nonexist");
	raw_query(&r, "DISCARD ALL");
	raw_sync(&r);
	same_raw(da, a, &r, 3,
		 "E:26000:prepared statement \"nonexist\" does not exist Z "
		 "1 E:26000:prepared statement \"nonexist\" does not exist Z "
		 "E:26000:prepared statement \"nonexist\" does not exist Z");
	b2 = it_connect(APP);
	raw_parse(&r, "bs", "SELECT 'bgx'");
	raw_run(&r, "bs");
	raw_sync(&r);
	same_raw(dc, b2, &r, 1, "1 2 D:bgx C:SELECT 1 Z");
	raw_run(&r, "bs");
	raw_sync(&r);
	same_raw(db, b, &r, 1, "2 D:bgx C:SELECT 1 Z");
	PQfinish(a);
	PQfinish(b);
	PQfinish(b2);
	PQfinish(da);
	PQfinish(db);
	PQfinish(dc);
}
END_TEST

/*
 * A DEALLOCATE ALL that goes to the server (the client's own SQL statement,
 * prepared by a named Parse, pins it there) and that PostgreSQL refuses --
 * in an aborted transaction, or pipelined behind the Query that aborts it --
 * drops nothing. pgdog took the server's statements for gone at once:
 * another client's statement was prepared there again and got 42P05
 * (found by the differential fuzzer).
 */
START_TEST(test_full_dealloc_all_refused)
{
	PGconn *db = connect_direct(), *b = it_connect(APP);
	struct raw r = { .n = 0 };

	raw_parse(&r, "bs", "SELECT 'bgx'");
	raw_run(&r, "bs");
	raw_sync(&r);
	same_raw(db, b, &r, 1, "1 2 D:bgx C:SELECT 1 Z");
	for (int round = 0; round < 2; round++) {
		PGconn *da = connect_direct(), *a = it_connect(APP);

		raw_parse(&r, "p1", "PREPARE q1 AS SELECT 1"); /* pins the server to a */
		raw_sync(&r);
		same_raw(da, a, &r, 1, "1 Z");
		if (round == 0) {
			raw_query(&r, "BEGIN; SELECT 1/0");
			same_raw(da, a, &r, 1, NULL);
			raw_query(&r, "DEALLOCATE ALL");
			same_raw(da, a, &r, 1, NULL);
			raw_query(&r, "ROLLBACK");
			same_raw(da, a, &r, 1, NULL);
		} else {
			/* the transaction it meets is not known yet when it goes */
			raw_query(&r, "BEGIN; SELECT 1/0");
			raw_query(&r, "DEALLOCATE ALL");
			raw_query(&r, "ROLLBACK");
			same_raw(da, a, &r, 3, NULL);
		}
		PQfinish(a); /* the server is b's again */
		PQfinish(da);
		raw_run(&r, "bs");
		raw_sync(&r);
		same_raw(db, b, &r, 1, "2 D:bgx C:SELECT 1 Z");
	}
	PQfinish(b);
	PQfinish(db);
}
END_TEST

/*
 * a holds the one server of the pool (pinned): b's query b_sql waits while
 * a runs a_sql (its value: a_want), and gets 0 once a has left (what pinned
 * the server went with a). Both connections are closed.
 */
static void
server_kept(PGconn *a, PGconn *b, const char *b_sql, const char *a_sql, const char *a_want)
{
	ck_assert_int_eq(PQsendQuery(b, b_sql), 1);
	ck_assert_msg(it_busy_for(b, 700), "b got a's server while a holds it");
	ck_assert_str_eq(it_value(a, a_sql), a_want);
	PQfinish(a);
	ck_assert_str_eq(it_value_within(b, 5000, "b after a left"), "0");
	PQfinish(b);
}

/*
 * A named statement that takes an advisory lock, run again after a
 * pg_advisory_unlock_all() released the server, pins it again; and a
 * RESET ALL that fails (or is rolled back) leaves a set_config() value and
 * its pin. The server went back to the pool with the lock, or the value,
 * on it, for the next client to find.
 */
START_TEST(test_pins_come_back_with_use)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;

	prepare_ok(a, "pf_lock", "SELECT pg_advisory_lock(4711)", 0);
	for (int i = 0; i < 2; i++) {
		res = PQexecPrepared(a, "pf_lock", 0, NULL, NULL, NULL, 0);
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(a));
		PQclear(res);
		ck_assert_str_eq(it_value(a, "SELECT pg_advisory_unlock_all()"), "");
	}
	res = PQexecPrepared(a, "pf_lock", 0, NULL, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(a));
	PQclear(res);
	server_kept(a, b,
		    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
		    "AND pid = pg_backend_pid()",
		    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
		    "AND pid = pg_backend_pid()",
		    "1");
	a = it_connect(APP);
	b = it_connect(APP);
	ck_assert_str_eq(it_value(a, "SELECT set_config('work_mem', '77kB', false)"), "77kB");
	it_exec_error(a, "RESET ALL; SELECT 1/0", "22012");
	exec_tag(a, "BEGIN", "BEGIN");
	exec_tag(a, "RESET ALL", "RESET");
	exec_tag(a, "ROLLBACK", "ROLLBACK");
	ck_assert_int_eq(PQsendQuery(b, "SELECT count(*) FROM pg_settings WHERE "
					"name = 'work_mem' AND setting = '77'"),
			 1);
	ck_assert_msg(it_busy_for(b, 500), "b got a's server with a's work_mem on it");
	ck_assert_str_eq(it_value(a, "SHOW work_mem"), "77kB");
	/* a RESET ALL that commits releases it */
	exec_tag(a, "RESET ALL", "RESET");
	ck_assert_str_eq(it_value_within(b, 3000, "b after a's RESET ALL"), "0");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* PQexecPrepared of name with no parameters or one (v): its status is want. */
static void
run_named(PGconn *a, const char *name, const char *v, ExecStatusType want)
{
	PGresult *res = PQexecPrepared(a, name, v ? 1 : 0, v ? &v : NULL, NULL, NULL, 0);

	ck_assert_msg(PQresultStatus(res) == want, "%s: %s", name, PQerrorMessage(a));
	PQclear(res);
}

/*
 * Named statements that end pins by a count pgdog does not keep
 * (pg_advisory_unlock(), UNLISTEN channel) have the server asked what it
 * still holds, as their Query does (it_txn test_pin_release_asked); a named
 * LISTEN pins again each time it runs. That LISTEN, run after an UNLISTEN *
 * released the server, went back to the pool listening.
 */
START_TEST(test_pins_asked_named)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	static const char listening[] = "SELECT count(*) FROM pg_listening_channels()";
	char pa[32];

	snprintf(pa, sizeof(pa), "%s", it_value(a, "SELECT pg_backend_pid()"));
	prepare_ok(a, "pf_unlock", "SELECT pg_advisory_unlock($1::bigint)", 1);
	prepare_ok(a, "pf_lis", "LISTEN pf_three", 0);
	prepare_ok(a, "pf_unlis", "UNLISTEN pf_three", 0);
	exec_tag(a, "UNLISTEN *", "UNLISTEN");
	it_server_gone(b, pa, "b after a's UNLISTEN *");
	run_named(a, "pf_lis", NULL, PGRES_COMMAND_OK);
	it_server_held(b, "a listens (a named LISTEN run after a release)");
	ck_assert_str_eq(it_value(a, listening), "1");
	run_named(a, "pf_unlis", NULL, PGRES_COMMAND_OK);
	it_server_gone(b, pa, "b after a's named UNLISTEN");
	ck_assert_str_eq(it_value(b, listening), "0");
	ck_assert_str_eq(it_value(a, "SELECT pg_advisory_lock(47); SELECT pg_advisory_lock(47)"),
			 "");
	it_server_held(b, "a holds a lock");
	run_named(a, "pf_unlock", "47", PGRES_TUPLES_OK);
	it_server_held(b, "a holds the lock once more");
	run_named(a, "pf_unlock", "47", PGRES_TUPLES_OK);
	it_server_gone(b, pa, "b after a's last unlock");
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
				     "AND pid = pg_backend_pid()"),
			 "0");
	/* a role, set and reset by named statements, each run after a release */
	it_pg_exec("DROP ROLE IF EXISTS pf_role; CREATE ROLE pf_role; GRANT pf_role TO app");
	prepare_ok(a, "pf_role", "SET ROLE pf_role", 0);
	prepare_ok(a, "pf_norole", "RESET ROLE", 0);
	for (int i = 0; i < 2; i++) {
		run_named(a, "pf_role", NULL, PGRES_COMMAND_OK);
		it_server_held(b, "a set a role (a named statement)");
		ck_assert_str_eq(it_value(a, "SELECT current_user"), "pf_role");
		run_named(a, "pf_norole", NULL, PGRES_COMMAND_OK);
		it_server_gone(b, pa, "b after a's named RESET ROLE");
		ck_assert_str_eq(it_value(b, "SELECT current_user"), "app");
	}
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * A Parse of a name the client has, skipped after an error in its request:
 * the statement pgdog makes under that name so that PostgreSQL refuses it
 * (42P05) was skipped too, but pgdog counted it as made, and the client's
 * next Parse of that name, behind the Sync in the same write, succeeded
 * where PostgreSQL says 42P05 (pgdiff, seed 1795487192).
 */
START_TEST(test_dup_parse_skipped)
{
	PGconn *da = connect_direct(), *a = it_connect(APP);
	struct raw r = { .n = 0 };

	/* as pgdiff sent them: three writes, pgdog reading each on its own */
	raw_parse(&r, "pf_d1", "SELECT 5");
	same_raw(da, a, &r, 0, NULL);
	it_sleep_ms(50);
	raw_parse(&r, "", "SET LOCAL work_mem = '4MB'");
	raw_exec(&r, "");
	raw_parse(&r, "pf_d1", "CLOSE c1");
	same_raw(da, a, &r, 0, NULL);
	it_sleep_ms(50);
	raw_sync(&r);
	raw_statement_msg(&r, 'D', "");
	raw_parse(&r, "pf_d1", "DISCARD TEMP");
	raw_sync(&r);
	same_raw(da, a, &r, 2, NULL);
	PQfinish(a);
	PQfinish(da);
}
END_TEST

/*
 * prepared_statements = disabled: pgdog does not follow which message
 * PostgreSQL skips after an error, so a DISCARD ALL sent behind unsynced
 * messages leaves the pins in place. pgdog took it as run: the server went
 * back to the pool with the client's temporary table, for the next client
 * to see.
 */
START_TEST(test_skipped_discard_keeps_pin)
{
	PGconn *da = connect_direct(), *a = it_connect(APP), *b = it_connect(APP);
	struct raw r = { .n = 0 };

	exec_tag(da, "CREATE TEMP TABLE pf_tmp (x int)", "CREATE TABLE");
	exec_tag(a, "CREATE TEMP TABLE pf_tmp (x int)", "CREATE TABLE");
	raw_bind(&r, "", "nonexist");
	raw_parse(&r, "", "DISCARD ALL");
	raw_run(&r, "");
	raw_sync(&r);
	same_raw(da, a, &r, 1, "E:26000:prepared statement \"nonexist\" does not exist Z");
	server_kept(a, b,
		    "SELECT count(*) FROM pg_class WHERE relname = 'pf_tmp' "
		    "AND relnamespace = pg_my_temp_schema()",
		    "SELECT count(*) FROM pf_tmp", "0");
	PQfinish(da);
}
END_TEST

/*
 * prepared_statements = disabled: a DISCARD ALL whose outcome counts from
 * its CommandComplete (pipelined behind a Query not answered yet) drops
 * what pinned the server before it, not the pin of an SQL PREPARE sent
 * after it (pgdog goes on with what follows there): the client keeps its
 * server and its statement, and the next client waits. (The pin went at
 * the DISCARD ALL's CommandComplete: the server went back to the pool with
 * the client's statement on it, and the client lost it. Found by
 * t/fuzz/pgdiff.py.)
 */
START_TEST(test_discard_then_prepare_keeps_pin)
{
	PGconn *da = connect_direct(), *a = it_connect(APP), *b = it_connect(APP);
	struct raw r = { .n = 0 };

	raw_query(&r, "SELECT 1");
	raw_query(&r, "DISCARD ALL");
	raw_parse(&r, "", "PREPARE pf_dq AS SELECT 41");
	raw_run(&r, "");
	raw_sync(&r);
	same_raw(da, a, &r, 3, "T D:1 C:SELECT 1 Z C:DISCARD ALL Z 1 2 C:PREPARE Z");
	server_kept(a, b, "SELECT count(*) FROM pg_prepared_statements WHERE name = 'pf_dq'",
		    "EXECUTE pf_dq", "41");
	PQfinish(da);
}
END_TEST

/*
 * The unnamed statement stays through a DISCARD ALL run from a named
 * statement: a WITH HOLD cursor it declares afterwards pins the server as
 * before. And a Parse of pg_advisory_unlock_all() that never runs leaves
 * the lock's pin. (In both, the server went back to the pool holding the
 * client's cursor or lock, where the next client found it.)
 */
START_TEST(test_pins_outlive_discard_and_unlock_parse)
{
	PGconn *da = connect_direct(), *a = it_connect(APP), *b = it_connect(APP);
	struct raw r = { .n = 0 };

	raw_parse(&r, "", "DECLARE pf_c CURSOR WITH HOLD FOR SELECT 7");
	raw_parse(&r, "pf_disc", "DISCARD ALL");
	raw_run(&r, "pf_disc");
	raw_sync(&r);
	same_raw(da, a, &r, 1, "1 1 2 C:DISCARD ALL Z");
	raw_run(&r, "");
	raw_sync(&r);
	same_raw(da, a, &r, 1, "2 C:DECLARE CURSOR Z");
	server_kept(a, b, "SELECT count(*) FROM pg_cursors WHERE name = 'pf_c'",
		    "FETCH 1 FROM pf_c", "7");
	a = it_connect(APP);
	b = it_connect(APP);
	ck_assert_str_eq(it_value(a, "SELECT pg_advisory_lock(4243)::text"), "");
	raw_parse(&r, "pf_unl", "SELECT pg_advisory_unlock_all()");
	raw_sync(&r);
	same_raw(da, a, &r, 1, "1 Z");
	server_kept(a, b,
		    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
		    "AND pid = pg_backend_pid()",
		    "SELECT pg_advisory_unlock(4243)", "t");
	PQfinish(da);
}
END_TEST

/*
 * prepared_statements = extended: a Query whose DEALLOCATE ALL comes before
 * an SQL PREPARE drops what was prepared before it, not that statement's
 * pin. (At the DEALLOCATE ALL's CommandComplete the server went back to
 * the pool with the statement on it: the next client saw it in
 * pg_prepared_statements, and the client got 26000 for it.)
 */
START_TEST(test_dealloc_all_then_prepare_pins)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);

	exec_tag(a, "PREPARE pf_before AS SELECT 1", "PREPARE");
	exec_tag(a, "DEALLOCATE ALL; PREPARE pf_after AS SELECT 6", "PREPARE");
	server_kept(a, b, "SELECT count(*) FROM pg_prepared_statements WHERE name = 'pf_after'",
		    "EXECUTE pf_after", "6");
}
END_TEST

/*
 * A client's unnamed statement, bound again after another client used the
 * server: pgdog prepares it there first. When that Parse was skipped (an
 * error earlier in the request), pgdog still took it for prepared, and a
 * Bind of it after the Sync got 26000 where PostgreSQL runs it. So did a
 * client's own new Parse of it skipped the same way (the one before it
 * stays in PostgreSQL).
 */
START_TEST(test_unnamed_copy_skipped)
{
	PGconn *da = connect_direct(), *db = connect_direct();
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	struct raw r = { .n = 0 };

	raw_parse(&r, "", "SELECT 41");
	raw_sync(&r);
	same_raw(da, a, &r, 1, "1 Z");
	raw_parse(&r, "", "SELECT 'b'");
	raw_run(&r, "");
	raw_sync(&r);
	same_raw(db, b, &r, 1, "1 2 D:b C:SELECT 1 Z");
	raw_bind(&r, "p1", "nonexist");
	raw_bind(&r, "", "");
	raw_sync(&r);
	raw_run(&r, "");
	raw_sync(&r);
	same_raw(da, a, &r, 2,
		 "E:26000:prepared statement \"nonexist\" does not exist Z 2 D:41 C:SELECT 1 Z");
	/* a new Parse of it skipped the same way: the one before it stays */
	raw_parse(&r, "", "SELECT 'b'");
	raw_run(&r, "");
	raw_sync(&r);
	same_raw(db, b, &r, 1, "1 2 D:b C:SELECT 1 Z");
	raw_bind(&r, "p1", "nonexist");
	raw_parse(&r, "", "SELECT 8");
	raw_sync(&r);
	raw_run(&r, "");
	raw_sync(&r);
	same_raw(da, a, &r, 2,
		 "E:26000:prepared statement \"nonexist\" does not exist Z 2 D:41 C:SELECT 1 Z");
	PQfinish(a);
	PQfinish(b);
	PQfinish(da);
	PQfinish(db);
}
END_TEST

/*
 * A Parse of a name the client already has, in an aborted transaction:
 * PostgreSQL reads the text first (42601 for a syntax error or several
 * statements), then refuses anything but a statement that ends the
 * transaction (25P02), then the name (42P05). pgdog answered 25P02 to all.
 */
START_TEST(test_dup_parse_aborted)
{
	PGconn *d = connect_direct(), *a = it_connect(APP);
	struct raw r = { .n = 0 };

	raw_parse(&r, "s1", "SELECT 1");
	raw_sync(&r);
	raw_query(&r, "BEGIN");
	raw_query(&r, "SELECT 1/0");
	same_raw(d, a, &r, 3, "1 Z C:BEGIN Z E:22012:division by zero Z");
	raw_parse(&r, "s1", "SELECT 1; SELECT 2");
	raw_sync(&r);
	raw_parse(&r, "s1", "SELEC 1");
	raw_sync(&r);
	raw_parse(&r, "s1", "ROLLBACK");
	raw_sync(&r);
	raw_parse(&r, "s1", "SELECT 3");
	raw_sync(&r);
	same_raw(d, a, &r, 4,
		 "E:42601:cannot insert multiple commands into a prepared statement Z "
		 "E:42601:syntax error at or near \"SELEC\" Z "
		 "E:42P05:prepared statement \"s1\" already exists Z "
		 "E:25P02:current transaction is aborted, commands ignored until end of "
		 "transaction block Z");
	raw_query(&r, "ROLLBACK");
	raw_run(&r, "s1");
	raw_sync(&r);
	same_raw(d, a, &r, 2, "C:ROLLBACK Z 2 D:1 C:SELECT 1 Z");
	PQfinish(a);
	PQfinish(d);
}
END_TEST

/*
 * A Parse of a text the server holds, pipelined behind a request that
 * aborts the transaction: PostgreSQL refuses it (25P02), and the name is
 * not the client's. (pgdog answered it itself, from the state before that
 * request: the client had a statement PostgreSQL never made.)
 */
START_TEST(test_parse_behind_abort)
{
	PGconn *d = connect_direct(), *a = it_connect(APP);
	struct raw r = { .n = 0 };

	for (int round = 0; round < 2; round++) {
		raw_parse(&r, "s0", "SELECT 7");
		raw_sync(&r);
		raw_query(&r, "BEGIN");
		same_raw(d, a, &r, 2, "1 Z C:BEGIN Z");
		raw_query(&r, "SELECT 1/0");
		raw_parse(&r, "s2", "SELECT 7");
		raw_sync(&r);
		same_raw(d, a, &r, 2,
			 "E:22012:division by zero Z E:25P02:current transaction is aborted, "
			 "commands ignored until end of transaction block Z");
		raw_query(&r, "ROLLBACK");
		raw_run(&r, "s2");
		raw_sync(&r);
		raw_run(&r, "s0");
		raw_close(&r, "s0");
		raw_sync(&r);
		same_raw(d, a, &r, 3,
			 "C:ROLLBACK Z E:26000:prepared statement \"s2\" does not exist Z "
			 "2 D:7 C:SELECT 1 3 Z");
	}
	PQfinish(a);
	PQfinish(d);
}
END_TEST

/*
 * Two names for one text parsed in one request, an error between them:
 * PostgreSQL skips the second Parse, so only the first name exists. (The
 * first one's ParseComplete confirmed both: the client's Bind of the
 * second ran.)
 */
START_TEST(test_parse_skipped_same_text)
{
	PGconn *d = connect_direct(), *a = it_connect(APP);
	struct raw r = { .n = 0 };

	for (int round = 0; round < 2; round++) {
		raw_parse(&r, "t1", "SELECT 8");
		raw_exec(&r, "no_such_portal");
		raw_parse(&r, "t2", "SELECT 8");
		raw_sync(&r);
		same_raw(d, a, &r, 1, "1 E:34000:portal \"no_such_portal\" does not exist Z");
		raw_run(&r, "t2");
		raw_sync(&r);
		raw_run(&r, "t1");
		raw_close(&r, "t1");
		raw_sync(&r);
		same_raw(d, a, &r, 2,
			 "E:26000:prepared statement \"t2\" does not exist Z 2 D:8 C:SELECT 1 3 Z");
	}
	PQfinish(a);
	PQfinish(d);
}
END_TEST

/*
 * A DISCARD ALL run as the unnamed statement, then a Bind of a named
 * statement in the same request, sent in one write: the worker read it as
 * one request, freed the statement at the Execute and then wrote its name
 * (a use after free under ASan; the worker died).
 */
START_TEST(test_discard_then_bind)
{
	PGconn *d = connect_direct(), *a = it_connect(APP);
	struct raw r = { .n = 0 };

	raw_parse(&r, "s2", "SELECT 2");
	raw_run(&r, "s2");
	raw_sync(&r);
	same_raw(d, a, &r, 1, "1 2 D:2 C:SELECT 1 Z");
	raw_parse(&r, "", "DISCARD ALL");
	raw_bind(&r, "p1", "");
	raw_exec(&r, "p1");
	raw_bind(&r, "p1", "s2");
	raw_sync(&r);
	same_raw(d, a, &r, 1,
		 "1 2 C:DISCARD ALL E:26000:prepared statement \"s2\" does not exist Z");
	raw_parse(&r, "s2", "SELECT 3");
	raw_run(&r, "s2");
	raw_sync(&r);
	same_raw(d, a, &r, 1, "1 2 D:3 C:SELECT 1 Z");
	PQfinish(a);
	PQfinish(d);
}
END_TEST

/*
 * DISCARD ALL and DEALLOCATE ALL that PostgreSQL does not run although
 * nothing before them failed: a DISCARD ALL after an Execute not yet ended
 * by a Sync (25001, in a Query or through the extended protocol), and a
 * DEALLOCATE ALL behind a failed statement of its Query. pgdog took them
 * as run: it forgot the client's statements (26000) and its SETs.
 */
START_TEST(test_discard_not_run)
{
	PGconn *d = connect_direct(), *a = it_connect(APP);
	struct raw r = { .n = 0 };

	for (int i = 0; i < 2; i++)
		exec_tag(i ? a : d, "SET application_name = 'pf_app'", "SET");
	raw_parse(&r, "s9", "SELECT 9");
	raw_sync(&r);
	raw_parse(&r, "", "SELECT 1");
	raw_run(&r, "");
	raw_query(&r, "DISCARD ALL");
	raw_sync(&r);
	raw_parse(&r, "", "SELECT 1");
	raw_run(&r, "");
	raw_parse(&r, "", "DISCARD ALL");
	raw_run(&r, "");
	raw_sync(&r);
	raw_query(&r, "SELECT 1/0; DEALLOCATE ALL");
	raw_run(&r, "s9");
	raw_sync(&r);
	same_raw(
		d, a, &r, 6,
		"1 Z 1 2 D:1 C:SELECT 1 "
		"E:25001:DISCARD ALL cannot be executed within a pipeline Z Z "
		"1 2 D:1 C:SELECT 1 1 2 E:25001:DISCARD ALL cannot be executed within a pipeline Z "
		"E:22012:division by zero Z 2 D:9 C:SELECT 1 Z");
	ck_assert_str_eq(it_value(a, "SHOW application_name"), "pf_app");
	/* run, it drops them */
	raw_query(&r, "SELECT 1; DEALLOCATE ALL");
	raw_run(&r, "s9");
	raw_sync(&r);
	same_raw(d, a, &r, 2,
		 "T D:1 C:SELECT 1 C:DEALLOCATE ALL Z "
		 "E:26000:prepared statement \"s9\" does not exist Z");
	raw_parse(&r, "s9", "SELECT 10");
	raw_run(&r, "s9");
	raw_sync(&r);
	same_raw(d, a, &r, 1, "1 2 D:10 C:SELECT 1 Z");
	PQfinish(a);
	PQfinish(d);
}
END_TEST

/* test_set_bound_unnamed with named statements and portals (tracked modes). */
START_TEST(test_set_bound_not_run)
{
	PGconn *d = connect_direct(), *a = it_connect(APP), *b = it_connect(APP);
	struct raw r = { .n = 0 };

	raw_parse(&r, "sx", "SET DateStyle = 'German'");
	raw_sync(&r);
	raw_bind(&r, "", "sx");
	raw_sync(&r);
	same_raw(d, a, &r, 2, "1 Z 2 Z");
	/* bound to a named portal, then that name bound again: 42P03 */
	raw_bind(&r, "p1", "sx");
	raw_bind(&r, "p1", "");
	raw_exec(&r, "p1");
	raw_sync(&r);
	same_raw(d, a, &r, 1, NULL);
	raw_parse(&r, "s9", "SELECT 9");
	raw_sync(&r);
	raw_parse(&r, "sd", "DISCARD ALL");
	raw_bind(&r, "", "sd");
	raw_sync(&r);
	same_raw(d, a, &r, 2, "1 Z 1 2 Z");
	ck_assert_str_eq(it_value(b, "SHOW DateStyle"), "ISO, MDY");
	ck_assert_str_eq(it_value(a, "SHOW DateStyle"), "ISO, MDY");
	raw_run(&r, "s9");
	raw_sync(&r);
	same_raw(d, a, &r, 1, "2 D:9 C:SELECT 1 Z");
	/* executed through a named portal, it takes effect */
	raw_bind(&r, "p2", "sx");
	raw_exec(&r, "p2");
	raw_sync(&r);
	same_raw(d, a, &r, 1, "2 C:SET Z");
	ck_assert_str_eq(it_value(b, "SHOW DateStyle"), "ISO, MDY");
	ck_assert_str_eq(it_value(a, "SHOW DateStyle"), "German, DMY");
	/* the named DISCARD ALL run, then an error before the Sync */
	raw_run(&r, "sd");
	raw_run(&r, "nonexist");
	raw_sync(&r);
	same_raw(d, a, &r, 1,
		 "2 C:DISCARD ALL E:26000:prepared statement \"nonexist\" does not exist Z");
	ck_assert_str_eq(it_value(b, "SHOW DateStyle"), "ISO, MDY");
	ck_assert_str_eq(it_value(a, "SHOW DateStyle"), "ISO, MDY");
	PQfinish(a);
	PQfinish(b);
	PQfinish(d);
}
END_TEST

/*
 * After an error PostgreSQL skips every message up to the Sync: a Close or
 * Parse among them changes nothing. pgdog hid a name once its Close was
 * sent and gave it to the next Parse of it at once, so what came after
 * went wrong when the Close was skipped: a later Bind of the name ran the
 * skipped Parse's text when the server held it for another name (two=2
 * where PostgreSQL answers one=1), or failed with 26000 (the statement
 * still exists in PostgreSQL), and a Bind of a name whose Parse was
 * skipped failed naming pgdog's own statement ("__pgdog_0_3") instead of
 * the client's name. Each request goes in one write, replies compared
 * with PostgreSQL's, messages included.
 */
START_TEST(test_skipped_close_parse)
{
	PGconn *d = connect_direct(), *a = it_connect(APP);
	struct raw r = { .n = 0 };

	/* the server holds "SELECT 2 AS two" (closed again for the client) */
	raw_parse(&r, "sx", "SELECT 2 AS two");
	raw_run(&r, "sx");
	raw_sync(&r);
	raw_close(&r, "sx");
	raw_sync(&r);
	raw_parse(&r, "sa", "SELECT 1 AS one");
	raw_sync(&r);
	/* 26000 first: the Close and the Parse are skipped */
	raw_run(&r, "nonexist");
	raw_close(&r, "sa");
	raw_parse(&r, "sa", "SELECT 2 AS two");
	raw_sync(&r);
	raw_run(&r, "sa");
	raw_sync(&r);
	same_raw(d, a, &r, 5,
		 "1 2 D:2 C:SELECT 1 Z 3 Z 1 Z "
		 "E:26000:prepared statement \"nonexist\" does not exist Z 2 D:1 C:SELECT 1 Z");
	/* a Close skipped after an error at Bind */
	raw_parse(&r, "", "SELECT 1/0");
	raw_run(&r, "");
	raw_close(&r, "sa");
	raw_sync(&r);
	raw_run(&r, "sa");
	raw_sync(&r);
	same_raw(d, a, &r, 2, "1 E:22012:division by zero Z 2 D:1 C:SELECT 1 Z");
	/* a Close skipped after a 42P05 */
	raw_parse(&r, "sb", "SELECT 2");
	raw_sync(&r);
	raw_parse(&r, "sb", "SELECT 3");
	raw_close(&r, "sa");
	raw_sync(&r);
	raw_run(&r, "sa");
	raw_sync(&r);
	same_raw(d, a, &r, 3,
		 "1 Z E:42P05:prepared statement \"sb\" already exists Z 2 D:1 C:SELECT 1 Z");
	/* a Parse skipped: the name does not exist, and the error says so in the client's words */
	raw_parse(&r, "", "SELECT 1/0");
	raw_run(&r, "");
	raw_parse(&r, "sc", "SELECT 2 AS two");
	raw_sync(&r);
	raw_run(&r, "sc");
	raw_sync(&r);
	same_raw(d, a, &r, 2,
		 "1 E:22012:division by zero Z E:26000:prepared statement \"sc\" does not exist Z");
	/* the same with a Close of the name first, both skipped: the name keeps its statement */
	raw_parse(&r, "", "SELECT 1/0");
	raw_run(&r, "");
	raw_close(&r, "sa");
	raw_parse(&r, "sa", "SELECT 2 AS two");
	raw_sync(&r);
	raw_run(&r, "sa");
	raw_sync(&r);
	same_raw(d, a, &r, 2, "1 E:22012:division by zero Z 2 D:1 C:SELECT 1 Z");
	/* not skipped: Close and Parse in one request, then the new text */
	raw_close(&r, "sa");
	raw_parse(&r, "sa", "SELECT 2 AS two");
	raw_sync(&r);
	raw_run(&r, "sa");
	raw_sync(&r);
	same_raw(d, a, &r, 2, "3 1 Z 2 D:2 C:SELECT 1 Z");
	ck_assert_str_eq(it_value(a, "SELECT 'alive'"), "alive");
	PQfinish(d);
	PQfinish(a);
}
END_TEST

/* Protocol-level and SQL names are one name space, as in PostgreSQL. */
START_TEST(test_full_mixed_names)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;

	exec_tag(a, "PREPARE foo (int) AS SELECT $1 * 10", "PREPARE");
	res = PQexecPrepared(a, "foo", 1, (const char *[]){ "4" }, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "40");
	PQclear(res);
	res = PQdescribePrepared(a, "foo");
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	ck_assert_int_eq(PQnparams(res), 1);
	PQclear(res);
	res = PQprepare(a, "bar", "SELECT $1::int * 100", 1, NULL);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	ck_assert_str_eq(it_value(a, "EXECUTE bar(2)"), "200");
	/* b uses the server in between: a's statements follow a to whatever server */
	exec_tag(b, "PREPARE foo AS SELECT 'b'", "PREPARE");
	ck_assert_str_eq(it_value(b, "EXECUTE foo"), "b");
	ck_assert_str_eq(it_value(a, "EXECUTE foo(5)"), "50");
	/* each name taken either way */
	res = PQprepare(a, "foo", "SELECT 1", 0, NULL);
	ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR, "re-Parse of foo accepted");
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "42P05");
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
			 "prepared statement \"foo\" already exists");
	PQclear(res);
	exec_err(a, "PREPARE bar AS SELECT 1", "42P05",
		 "prepared statement \"bar\" already exists");
	/* DEALLOCATE of a protocol-level name; Close of an SQL one */
	exec_tag(a, "DEALLOCATE bar", "DEALLOCATE");
	res = PQexecPrepared(a, "bar", 1, (const char *[]){ "1" }, NULL, NULL, 0);
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "26000");
	PQclear(res);
	close_prepared(a, "foo");
	exec_err(a, "EXECUTE foo(1)", "26000", "prepared statement \"foo\" does not exist");
	ck_assert_str_eq(it_value(b, "EXECUTE foo"), "b");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * PREPARE of new names among other statements in one Query: served without
 * pinning the server, with PostgreSQL's replies (compared with a connection
 * straight to the cluster): a statement prepared before a later one fails
 * stays, a duplicate fails with 42P05 in its place, names made in the Query
 * are used by the statements after them.
 */
START_TEST(test_full_multi_prepare)
{
	PGconn *d = connect_direct(), *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;
	char pa[32], want[2048], got[2048];
	static const char *const q[] = {
		"PREPARE m1 AS SELECT 1; PREPARE m2 (int) AS SELECT $1 * 2; EXECUTE m2(21); "
		"SELECT 'x'",
		"EXECUTE m1; EXECUTE m2(2)",
		"PREPARE m3 AS SELECT 3; PREPARE m1 AS SELECT 9; EXECUTE m3",
		"EXECUTE m3",
		"PREPARE m4 AS SELECT 4; SELECT 1/0; PREPARE m4b AS SELECT 5",
		"EXECUTE m4",
		"EXECUTE m4b",
		"PREPARE m5 AS SELECT * FROM no_such_table; EXECUTE m5",
		"EXECUTE m5",
		"BEGIN; PREPARE m6 AS SELECT 6; COMMIT",
		"EXECUTE m6",
		"PREPARE m7 AS SELECT 7; DEALLOCATE m1; EXECUTE m7",
		"EXECUTE m1",
		"PREPARE m8 AS SELECT 1; PREPARE m9 AS SELECT 1; EXECUTE m8; EXECUTE m9",
		"BEGIN",
		"SELECT 1; PREPARE m10 AS SELECT 10; PREPARE m2 AS SELECT 0",
		"EXECUTE m10",
		"ROLLBACK",
		"EXECUTE m10; EXECUTE m2(4)",
	};
	int n = (int)(sizeof(q) / sizeof(q[0]));

	snprintf(pa, sizeof(pa), "%s", it_value(a, "SELECT pg_backend_pid()"));
	res = PQexec(a, "PREPARE m AS SELECT 7; EXECUTE m");
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "7");
	PQclear(res);
	/* not pinned: b gets the one server at once, and has no m */
	ck_assert_int_eq(PQsendQuery(b, "SELECT pg_backend_pid()"), 1);
	ck_assert_str_eq(it_value_within(b, 3000, "b after a's PREPARE m; EXECUTE m"), pa);
	exec_err(b, "EXECUTE m", "26000", "prepared statement \"m\" does not exist");
	ck_assert_str_eq(it_value(a, "EXECUTE m"), "7");
	/* PostgreSQL's replies, message for message */
	pipeline(d, q, n, want, sizeof(want));
	pipeline(a, q, n, got, sizeof(got));
	ck_assert_str_eq(got, want);
	/* one at a time too, b in between (outside a's transaction block) */
	for (int i = 0, in_block = 0; i < n; i++) {
		char one_want[512], one_got[512];

		if (strstr(q[i], "PREPARE"))
			continue; /* names are taken now: only what runs again */
		pipeline(d, &q[i], 1, one_want, sizeof(one_want));
		pipeline(a, &q[i], 1, one_got, sizeof(one_got));
		ck_assert_str_eq(one_got, one_want);
		in_block =
			strcmp(q[i], "BEGIN") == 0 || (in_block && strcmp(q[i], "ROLLBACK") != 0);
		if (!in_block)
			ck_assert_str_eq(it_value(b, "SELECT pg_backend_pid()"), pa);
	}
	/* nothing pgdog made for checks or errors stays on the server */
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_prepared_statements WHERE name "
				     "NOT LIKE '\\_\\_pgdog%' OR name LIKE '\\_\\_pgdog\\_check%'"),
			 "0");
	PQfinish(d);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* PQexecParams without parameters (PostgreSQL takes none for utility statements). */
static PGresult *
exec_params(PGconn *c, const char *sql, const char *param)
{
	ck_assert(param == NULL);
	return PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0);
}

/* Through c with the extended protocol: one row, one value. */
static void
params_value(PGconn *c, const char *sql, const char *param, const char *want)
{
	PGresult *res = exec_params(c, sql, param);

	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
		      PQresultErrorMessage(res));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), want);
	PQclear(res);
}

/* Through c with the extended protocol: a command with this tag. */
static void
params_tag(PGconn *c, const char *sql, const char *tag)
{
	PGresult *res = exec_params(c, sql, NULL);

	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", sql,
		      PQresultErrorMessage(res));
	ck_assert_str_eq(PQcmdStatus(res), tag);
	PQclear(res);
}

/* Both connections, extended protocol: the same error. */
static void
same_params_error(PGconn *direct, PGconn *c, const char *sql)
{
	PGresult *want = exec_params(direct, sql, NULL), *got = exec_params(c, sql, NULL);

	same_error(want, got, sql);
	PQclear(want);
	PQclear(got);
}

/*
 * SQL PREPARE / EXECUTE / DEALLOCATE sent through the extended protocol
 * (PQexecParams, PQprepare): rewritten like the simple-protocol case, in the
 * same name space, without pinning the server; errors as PostgreSQL's
 * (compared with a connection straight to the cluster).
 */
START_TEST(test_full_extended_sql)
{
	PGconn *d = connect_direct(), *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;
	char pa[32];

	snprintf(pa, sizeof(pa), "%s", it_value(a, "SELECT pg_backend_pid()"));
	params_tag(a, "PREPARE xs (int) AS SELECT $1 + 1", "PREPARE");
	/* not pinned: b gets the one server at once, and has no xs */
	ck_assert_int_eq(PQsendQuery(b, "SELECT pg_backend_pid()"), 1);
	ck_assert_str_eq(it_value_within(b, 3000, "b after a's extended PREPARE"), pa);
	exec_err(b, "EXECUTE xs(1)", "26000", "prepared statement \"xs\" does not exist");
	params_tag(b, "PREPARE xs AS SELECT 'b'", "PREPARE");
	for (int i = 0; i < 4; i++) {
		params_value(a, "EXECUTE xs(41)", NULL, "42");
		ck_assert_str_eq(it_value(a, "EXECUTE xs(1)"), "2");
		params_value(b, "EXECUTE xs", NULL, "b");
	}
	/* a named Parse of EXECUTE: a statement like any other (utility: no parameters) */
	res = PQprepare(a, "ex_named", "EXECUTE xs(5)", 0, NULL);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	for (int i = 0; i < 3; i++) {
		res = PQexecPrepared(a, "ex_named", 0, NULL, NULL, NULL, 0);
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s",
			      PQresultErrorMessage(res));
		ck_assert_str_eq(PQgetvalue(res, 0, 0), "6");
		PQclear(res);
		params_value(b, "EXECUTE xs", NULL, "b");
	}
	/* a protocol-level statement run with SQL EXECUTE through the extended protocol */
	res = PQprepare(a, "pl", "SELECT $1::int * 3", 1, NULL);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	params_value(b, "SELECT 1", NULL, "1");
	params_value(a, "EXECUTE pl(3)", NULL, "9");
	/* DEALLOCATE: a's name goes, b's statement of the same name stays */
	params_tag(a, "DEALLOCATE xs", "DEALLOCATE");
	res = exec_params(a, "EXECUTE xs(1)", NULL);
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "26000");
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
			 "prepared statement \"xs\" does not exist");
	PQclear(res);
	params_value(b, "EXECUTE xs", NULL, "b");
	/* errors as PostgreSQL gives them */
	same_params_error(d, a, "EXECUTE nope");
	same_params_error(d, a, "DEALLOCATE nope");
	params_tag(d, "PREPARE dd AS SELECT 1", "PREPARE");
	params_tag(a, "PREPARE dd AS SELECT 1", "PREPARE");
	same_params_error(d, a, "PREPARE dd AS SELECT 2");
	/* (its position counts in the text PostgreSQL ran, under pgdog's name: not compared) */
	res = exec_params(a, "PREPARE bad AS SELECT * FROM no_such_table", NULL);
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "42P01");
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
			 "relation \"no_such_table\" does not exist");
	PQclear(res);
	PQclear(exec_params(d, "PREPARE bad AS SELECT * FROM no_such_table", NULL));
	same_params_error(d, a, "EXECUTE bad");
	same_tag(d, a, "BEGIN", "BEGIN");
	same_params_error(d, a, "PREPARE dd AS SELECT 3");
	same_params_error(d, a, "SELECT 1");
	same_tag(d, a, "ROLLBACK", "ROLLBACK");
	params_value(a, "EXECUTE dd", NULL, "1");
	/* the same text prepared again under another name: checked, shared */
	params_tag(a, "PREPARE dd2 AS SELECT 1", "PREPARE");
	params_value(a, "EXECUTE dd2", NULL, "1");
	/* nothing pgdog made stays on the server */
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_prepared_statements WHERE name "
				     "NOT LIKE '\\_\\_pgdog%' OR name LIKE '\\_\\_pgdog\\_check%' "
				     "OR name LIKE '\\_\\_pgdog\\_drop%'"),
			 "0");
	ck_assert_str_eq(it_value(b, "SELECT pg_backend_pid()"), pa);
	PQfinish(d);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* Both connections: the unnamed statement run (PQexecPrepared "") gives this tag or value. */
static void
same_unnamed_run(PGconn *direct, PGconn *c, const char *want)
{
	PGconn *conns[] = { direct, c };

	for (int i = 0; i < 2; i++) {
		PGresult *res = PQexecPrepared(conns[i], "", 0, NULL, NULL, NULL, 0);

		ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK ||
				      PQresultStatus(res) == PGRES_TUPLES_OK,
			      "%s: %s", i ? "pgdog" : "PostgreSQL", PQresultErrorMessage(res));
		ck_assert_str_eq(PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0)
									: PQcmdStatus(res),
				 want);
		PQclear(res);
	}
}

/* Both connections: PQprepare of the unnamed statement succeeds. */
static void
same_unnamed_parse(PGconn *direct, PGconn *c, const char *sql)
{
	PGconn *conns[] = { direct, c };

	for (int i = 0; i < 2; i++) {
		PGresult *res = PQprepare(conns[i], "", sql, 0, NULL);

		ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", sql,
			      PQresultErrorMessage(res));
		PQclear(res);
	}
}

/*
 * SQL PREPARE as the unnamed statement, bound, then a simple Query before
 * its Execute: the Query drops the unnamed portal, so the Execute finds
 * none and the statement is never made (PostgreSQL: 26000 on EXECUTE). A
 * named portal in a transaction block outlives the Query: its Execute makes
 * the statement. (pgdog counted the first as run: its EXECUTE ran and its
 * DEALLOCATE succeeded. Found by the differential fuzzer.)
 */
START_TEST(test_full_sql_bind_query_between)
{
	PGconn *d = connect_direct(), *a = it_connect(APP);
	struct raw r = { .n = 0 };

	raw_parse(&r, "", "PREPARE q_held AS SELECT 6");
	raw_bind(&r, "", "");
	raw_query(&r, "SELECT 5");
	raw_exec(&r, "");
	raw_sync(&r);
	same_raw(d, a, &r, 2, "1 2 T D:5 C:SELECT 1 Z E:34000:portal \"\" does not exist Z");
	raw_query(&r, "EXECUTE q_held");
	same_raw(d, a, &r, 1, "E:26000:prepared statement \"q_held\" does not exist Z");
	raw_query(&r, "BEGIN");
	raw_parse(&r, "", "PREPARE q_held AS SELECT 6");
	raw_bind(&r, "pp", "");
	raw_query(&r, "SELECT 5");
	raw_exec(&r, "pp");
	raw_sync(&r);
	raw_query(&r, "COMMIT");
	same_raw(d, a, &r, 4, "C:BEGIN Z 1 2 T D:5 C:SELECT 1 Z C:PREPARE Z C:COMMIT Z");
	raw_query(&r, "EXECUTE q_held");
	same_raw(d, a, &r, 1, "T D:6 C:SELECT 1 Z");
	raw_query(&r, "DEALLOCATE q_held");
	same_raw(d, a, &r, 1, "C:DEALLOCATE Z");
	PQfinish(d);
	PQfinish(a);
}
END_TEST

/*
 * SQL PREPARE as the unnamed statement counts when it runs, as in
 * PostgreSQL: not when its Bind fails, nor when it is only parsed; run in a
 * later request, after another client's query on the one server, it runs
 * there (prepared again), and so does an unnamed EXECUTE or a PREPARE of a
 * name the client has (42P05). DEALLOCATE in a
 * transaction block takes its snapshot (SET TRANSACTION after it: 25001).
 */
START_TEST(test_full_extended_sql_runs)
{
	PGconn *d = connect_direct(), *a = it_connect(APP), *b = it_connect(APP);

	/* a parameter the statement does not take (its $1 is PREPARE's): 08P01, and no statement */
	{
		const char *one = "1";
		const char *sql = "PREPARE ur AS SELECT $1::int";
		PGresult *want = PQexecParams(d, sql, 1, NULL, &one, NULL, NULL, 0),
			 *got = PQexecParams(a, sql, 1, NULL, &one, NULL, NULL, 0);

		same_error(want, got, sql);
		ck_assert_str_eq(PQresultErrorField(got, PG_DIAG_SQLSTATE), "08P01");
		PQclear(want);
		PQclear(got);
	}
	same_params_error(d, a, "EXECUTE ur(1)");
	/* parsed, not run: no statement yet */
	same_unnamed_parse(d, a, "PREPARE ur AS SELECT 7");
	same_params_error(d, a, "EXECUTE ur");
	same_unnamed_parse(d, a, "PREPARE ur AS SELECT 7");
	ck_assert_str_eq(it_value(b, "SELECT 1"), "1");
	same_unnamed_run(d, a, "PREPARE");
	params_value(a, "EXECUTE ur", NULL, "7");
	params_value(d, "EXECUTE ur", NULL, "7");
	/* a PREPARE of a name the client has, run after another client's query */
	same_unnamed_parse(d, a, "PREPARE ur AS SELECT 8");
	ck_assert_str_eq(it_value(b, "SELECT 1"), "1");
	{
		PGresult *want = PQexecPrepared(d, "", 0, NULL, NULL, NULL, 0),
			 *got = PQexecPrepared(a, "", 0, NULL, NULL, NULL, 0);

		same_error(want, got, "PREPARE ur again, unnamed");
		PQclear(want);
		PQclear(got);
	}
	/* an unnamed EXECUTE, run again after another client's query */
	same_unnamed_parse(d, a, "EXECUTE ur");
	same_unnamed_run(d, a, "7");
	ck_assert_str_eq(it_value(b, "SELECT 1"), "1");
	same_unnamed_run(d, a, "7");
	/* DEALLOCATE takes the transaction's snapshot */
	same_tag(d, a, "BEGIN", "BEGIN");
	same_tag(d, a, "DEALLOCATE ur", "DEALLOCATE");
	same_exec_error(d, a, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE");
	same_tag(d, a, "ROLLBACK", "ROLLBACK");
	same_params_error(d, a, "EXECUTE ur"); /* not transactional: gone */
	PQfinish(d);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * Simple queries sent at once, without waiting for each answer: replies come
 * in order, pgdog's own messages stay invisible, errors are PostgreSQL's.
 */
START_TEST(test_full_pipelined)
{
	PGconn *a = it_connect(APP);
	char got[1024];
	static const char *const q1[] = {
		"PREPARE pp (int) AS SELECT $1 + 100",
		"EXECUTE pp(1)",
		"SELECT 'mid'",
		"DEALLOCATE pp",
		"EXECUTE pp(2)",
		"PREPARE pp AS SELECT 'new'",
		"EXECUTE pp",
		"PREPARE pp AS SELECT 'dup'",
	};
	static const char *const q2[] = {
		"BEGIN", "EXECUTE pp", "DEALLOCATE ALL", "EXECUTE pp", "COMMIT",
	};

	pipeline(a, q1, 8, got, sizeof(got));
	ck_assert_str_eq(got, "C:PREPARE Z T D:101 C:SELECT 1 Z T D:mid C:SELECT 1 Z "
			      "C:DEALLOCATE Z E:26000 Z C:PREPARE Z T D:new C:SELECT 1 Z "
			      "E:42P05 Z");
	pipeline(a, q2, 5, got, sizeof(got));
	ck_assert_str_eq(got, "C:BEGIN Z T D:new C:SELECT 1 Z C:DEALLOCATE ALL Z E:26000 Z "
			      "C:ROLLBACK Z");
	/* libpq still in step */
	ck_assert_str_eq(it_value(a, "SELECT 'after'"), "after");
	exec_err(a, "EXECUTE pp", "26000", NULL);
	PQfinish(a);
}
END_TEST

/* Three clients, many transactions, statements prepared and dropped all along. */
START_TEST(test_full_many_clients)
{
	PGconn *c[3];
	char sql[128], want[64];

	for (int i = 0; i < 3; i++) {
		c[i] = it_connect(APP);
		snprintf(sql, sizeof(sql),
			 "PREPARE q (int) AS SELECT v || '-%d' FROM pf_t WHERE id = $1", i);
		exec_tag(c[i], sql, "PREPARE");
	}
	for (int round = 0; round < 60; round++) {
		int i = (round * 7) % 3, id = round % 100 + 1;

		snprintf(sql, sizeof(sql), "EXECUTE q(%d)", id);
		snprintf(want, sizeof(want), "v%d-%d", id, i);
		ck_assert_str_eq(it_value(c[i], sql), want);
		if (round % 10 == 9) {
			exec_tag(c[i], "DEALLOCATE q", "DEALLOCATE");
			snprintf(sql, sizeof(sql),
				 "PREPARE q (int) AS SELECT v || '-%d' FROM pf_t WHERE id = $1", i);
			exec_tag(c[i], sql, "PREPARE");
		}
	}
	for (int i = 0; i < 3; i++)
		PQfinish(c[i]);
}
END_TEST

/* A second Parse of a name the client has: 42P05; the first statement stays. */
START_TEST(test_reparse_42p05)
{
	PGconn *a = it_connect(APP);
	PGresult *res;

	res = PQprepare(a, "r1", "SELECT $1::int + 1", 1, NULL);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	res = PQprepare(a, "r1", "SELECT $1::int + 2", 1, NULL);
	ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR, "second Parse of r1 accepted");
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "42P05");
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
			 "prepared statement \"r1\" already exists");
	PQclear(res);
	res = PQexecPrepared(a, "r1", 1, (const char *[]){ "1" }, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "2");
	PQclear(res);
	/* after Close the name is free again */
	close_prepared(a, "r1");
	res = PQprepare(a, "r1", "SELECT $1::int + 3", 1, NULL);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	res = PQexecPrepared(a, "r1", 1, (const char *[]){ "1" }, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "4");
	PQclear(res);
	PQfinish(a);
}
END_TEST

/*
 * set_config(..., false) sets a value for the session that pgdog cannot
 * replay: the client keeps its server (counted in SHOW POOLS pins), and the
 * value never reaches another client. set_config(..., true) pins nothing.
 */
START_TEST(test_set_config_pins)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	long pins = atol(it_pool_field("app", "app", "pins"));
	char pa[32];

	snprintf(pa, sizeof(pa), "%s", it_value(a, "SELECT pg_backend_pid()"));
	/* transaction scoped: no pin */
	exec_ok(a, "BEGIN");
	ck_assert_str_eq(it_value(a, "SELECT set_config('pf.x', 'local', true)"), "local");
	exec_ok(a, "COMMIT");
	ck_assert_str_eq(it_value(b, "SELECT pg_backend_pid()"), pa);
	ck_assert_int_eq(atol(it_pool_field("app", "app", "pins")), pins);
	/* session level: pinned */
	ck_assert_str_eq(it_value(a, "SELECT set_config('pf.x', '42', false)"), "42");
	ck_assert_int_eq(atol(it_pool_field("app", "app", "pins")), pins + 1);
	ck_assert_int_eq(PQsendQuery(b, "SELECT coalesce(current_setting('pf.x', true), '')"), 1);
	ck_assert_msg(it_busy_for(b, 300), "b got the server a set pf.x on");
	for (int i = 0; i < 5; i++)
		ck_assert_str_eq(it_value(a, "SELECT current_setting('pf.x')"), "42");
	/* RESET ALL resets it: the server is free again */
	exec_ok(a, "RESET ALL");
	ck_assert_str_eq(it_value_within(b, 3000, "b after a's RESET ALL"), "");
	/* pinned again; a leaves: b gets the server, reset */
	ck_assert_str_eq(it_value(a, "SELECT set_config('pf.x', '43', false)"), "43");
	ck_assert_int_eq(PQsendQuery(b, "SELECT coalesce(current_setting('pf.x', true), '')"), 1);
	ck_assert_msg(it_busy_for(b, 300), "b got the server a set pf.x on");
	PQfinish(a);
	ck_assert_str_eq(it_value_within(b, 3000, "b after a left"), "");
	PQfinish(b);
}
END_TEST

/*
 * A pinned client leaves: its server is reset with DISCARD ALL, which drops
 * pgdog's statements too; the next client using one of them on that server
 * gets it prepared again instead of "does not exist".
 */
START_TEST(test_reset_forgets_held)
{
	PGconn *a = it_connect(APP), *b;
	PGresult *res;

	res = PQprepare(a, "h1", "SELECT 'held' || $1::text", 1, NULL);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	res = PQexecPrepared(a, "h1", 1, (const char *[]){ "1" }, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	ck_assert_str_eq(it_value(a, "SELECT pg_advisory_lock(4242)"), "");
	PQfinish(a);
	b = it_connect(APP);
	res = PQprepare(b, "h2", "SELECT 'held' || $1::text", 1, NULL);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	res = PQexecPrepared(b, "h2", 1, (const char *[]){ "2" }, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "held2");
	PQclear(res);
	PQfinish(b);
}
END_TEST

/* prepared_statements = extended: SQL PREPARE still pins the server (today's behaviour). */
START_TEST(test_extended_sql_prepare_pins)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	char pa[32];

	snprintf(pa, sizeof(pa), "%s", it_value(a, "SELECT pg_backend_pid()"));
	exec_tag(a, "PREPARE ex AS SELECT 'ex'", "PREPARE");
	ck_assert_int_eq(PQsendQuery(b, "SELECT pg_backend_pid()"), 1);
	ck_assert_msg(it_busy_for(b, 300), "b got the server a prepared ex on");
	ck_assert_str_eq(it_value(a, "EXECUTE ex"), "ex");
	PQfinish(a);
	ck_assert_str_eq(it_value_within(b, 3000, "b after a left"), pa);
	PQfinish(b);
}
END_TEST

/*
 * standard_conforming_strings = off: "'a\''" is a string holding a quote, so
 * the SET after it runs. pgdog must read the Query the same way (with the
 * setting on it would see one long string): the SET is tracked, another
 * client on the same server does not inherit it, and the client keeps it.
 */
START_TEST(test_scs_off_hidden_set)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;
	char pa[32];

	snprintf(pa, sizeof(pa), "%s", it_value(a, "SELECT pg_backend_pid()"));
	ck_assert_str_eq(it_value(b, "SELECT pg_backend_pid()"), pa);
	exec_tag(a, "SET standard_conforming_strings = off", "SET");
	res = PQexec(a, "SELECT 'a\\''; SET statement_timeout = '4321'; --'");
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	ck_assert_str_eq(PQcmdStatus(res), "SET");
	PQclear(res);
	/* the same server, b's own settings */
	ck_assert_str_eq(it_value(b, "SELECT pg_backend_pid()"), pa);
	ck_assert_str_eq(it_value(b, "SHOW statement_timeout"), "0");
	ck_assert_str_eq(it_value(b, "SHOW standard_conforming_strings"), "on");
	ck_assert_str_eq(it_value(b, "SELECT 'b\\'"), "b\\");
	/* a's come back with it */
	ck_assert_str_eq(it_value(a, "SHOW statement_timeout"), "4321ms");
	ck_assert_str_eq(it_value(a, "SHOW standard_conforming_strings"), "off");
	ck_assert_str_eq(it_value(a, "SELECT 'a\\''"), "a'");
	/* SET LOCAL in a transaction block: the same reading at once, until it ends */
	exec_tag(b, "BEGIN", "BEGIN");
	exec_tag(b, "SET LOCAL standard_conforming_strings = off", "SET");
	res = PQexec(b, "SELECT 'b\\''; SET statement_timeout = '1234'; --'");
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	exec_tag(b, "COMMIT", "COMMIT");
	ck_assert_str_eq(it_value(a, "SHOW statement_timeout"), "4321ms");
	ck_assert_str_eq(it_value(b, "SHOW statement_timeout"), "1234ms");
	ck_assert_str_eq(it_value(b, "SHOW standard_conforming_strings"), "on");
	exec_tag(b, "RESET statement_timeout", "RESET");
	/* pipelined right behind the SET that turns it off: read with the new value at once */
	{
		static const char *const q[] = {
			"SET standard_conforming_strings = off",
			"SELECT 'c\\''; SET lock_timeout = '777'; --'",
		};
		char got[256];

		pipeline(b, q, 2, got, sizeof(got));
		ck_assert_str_eq(got, "C:SET Z T D:c' C:SELECT 1 C:SET Z");
		ck_assert_str_eq(it_value(a, "SHOW lock_timeout"), "0");
		ck_assert_str_eq(it_value(b, "SHOW lock_timeout"), "777ms");
		exec_tag(b, "RESET ALL", "RESET");
	}
	/* a startup value (options=-c) counts too */
	{
		PGconn *e = it_connect(APP " options='-c standard_conforming_strings=off'");
		PGresult *r2 = PQexec(e, "SELECT 'e\\''; SET lock_timeout = '555'; --'");

		ck_assert_msg(PQresultStatus(r2) == PGRES_COMMAND_OK, "%s",
			      PQresultErrorMessage(r2));
		PQclear(r2);
		ck_assert_str_eq(it_value(a, "SHOW lock_timeout"), "0");
		ck_assert_str_eq(it_value(e, "SHOW lock_timeout"), "555ms");
		PQfinish(e);
	}
	/* and back on: the same bytes are one string again, nothing to track */
	exec_tag(a, "SET standard_conforming_strings = on", "SET");
	ck_assert_str_eq(it_value(a, "SELECT 'a\\''; SET statement_timeout = 99; --'"),
			 "a\\'; SET statement_timeout = 99; --");
	ck_assert_str_eq(it_value(a, "SHOW statement_timeout"), "4321ms");
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * A PREPARE or Parse of a name the client has, inside a transaction block:
 * the error is PostgreSQL's own, field for field (no CONTEXT), and the
 * transaction is aborted as in PostgreSQL until ROLLBACK. Compared with a
 * connection straight to the cluster. Nothing pgdog made for it stays on
 * the server.
 */
START_TEST(test_full_dup_like_postgres)
{
	PGconn *d = connect_direct(), *a = it_connect(APP), *b = it_connect(APP);
	PGresult *res;
	char pa[32];

	snprintf(pa, sizeof(pa), "%s", it_value(a, "SELECT pg_backend_pid()"));
	same_tag(d, a, "PREPARE dup AS SELECT 1", "PREPARE");
	res = PQprepare(d, "pdup", "SELECT 10", 0, NULL);
	ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	res = PQprepare(a, "pdup", "SELECT 10", 0, NULL);
	ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	for (int round = 0; round < 3; round++) {
		/* SQL PREPARE in a block */
		same_tag(d, a, "BEGIN", "BEGIN");
		ck_assert_str_eq(it_value(d, "SELECT 1"), "1");
		ck_assert_str_eq(it_value(a, "SELECT 1"), "1");
		same_exec_error(d, a, "PREPARE dup AS SELECT 2");
		same_exec_error(d, a, "SELECT 1");
		same_exec_error(d, a, "EXECUTE dup");
		same_tag(d, a, "ROLLBACK", "ROLLBACK");
		ck_assert_str_eq(it_value(a, "EXECUTE dup"), "1");
		/* a Parse of a protocol-level name, and of an SQL one, in a block */
		same_tag(d, a, "BEGIN", "BEGIN");
		same_prepare_error(d, a, "pdup", "SELECT 11");
		same_exec_error(d, a, "SELECT 1");
		same_tag(d, a, "ROLLBACK", "ROLLBACK");
		same_tag(d, a, "BEGIN", "BEGIN");
		same_prepare_error(d, a, "dup", "SELECT 12");
		same_exec_error(d, a, "SELECT 1");
		same_tag(d, a, "ROLLBACK", "ROLLBACK");
		/* a Parse of a name it has, outside a block */
		same_prepare_error(d, a, "pdup", "SELECT 13");
		/* quoted, mixed case */
		same_tag(d, a, "PREPARE \"Dup X\" AS SELECT 3", "PREPARE");
		same_tag(d, a, "BEGIN", "BEGIN");
		same_exec_error(d, a, "PREPARE \"Dup X\" AS SELECT 4");
		same_tag(d, a, "ROLLBACK", "ROLLBACK");
		same_tag(d, a, "DEALLOCATE \"Dup X\"", "DEALLOCATE");
		/* the statements made for the errors are gone; b shares the server */
		ck_assert_str_eq(it_value(b, "SELECT pg_backend_pid()"), pa);
		ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_prepared_statements "
					     "WHERE name NOT LIKE '\\_\\_pgdog%'"),
				 "0");
		res = PQexecPrepared(a, "pdup", 0, NULL, NULL, NULL, 0);
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s",
			      PQresultErrorMessage(res));
		ck_assert_str_eq(PQgetvalue(res, 0, 0), "10");
		PQclear(res);
		ck_assert_str_eq(it_value(a, "EXECUTE dup"), "1");
	}
	PQfinish(d);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * An error with a position in a Query pgdog rewrote (the statement names
 * replaced by pgdog's, of another length) points where PostgreSQL points in
 * the client's text, in characters: compared field by field with a
 * connection straight to the cluster.
 */
START_TEST(test_full_error_position)
{
	PGconn *d = connect_direct(), *a = it_connect(APP);

	same_exec_error(d, a, "PREPARE ep1 AS SELECT nosuch1 FROM pf_t");
	same_tag(d, a, "PREPARE ep2 (int) AS SELECT v FROM pf_t WHERE id = $1", "PREPARE");
	same_exec_error(d, a, "EXECUTE ep2('x')");
	same_exec_error(d, a, "SELECT 1; EXECUTE ep2(2);  SELECT nosuch3");
	same_exec_error(d, a,
			"PREPARE a_much_longer_name_than_pgdog_gives_statements AS SELECT nosuch4");
	/* the characters before the error count, not the bytes (UTF-8) */
	same_exec_error(d, a, "PREPARE \"\xc3\x9cn\xc3\xaf\" AS SELECT '\xc3\xa9' || nosuch5");
	same_exec_error(d, a,
			"EXECUTE ep2(1); PREPARE ep6 AS SELECT 1; EXECUTE ep6; DEALLOCATE ep6; "
			"SELECT '\xc3\x9f', nosuch6");
	/* a PREPARE of a statement the server holds: checked under a throwaway name */
	same_exec_error(d, a, "PREPARE ep7 (int) AS SELECT v FROM pf_t WHERE id = $1 + nosuch7");
	same_tag(d, a, "PREPARE ep8 AS SELECT v FROM pf_t WHERE id = 1", "PREPARE");
	same_tag(d, a, "DEALLOCATE ep8", "DEALLOCATE");
	same_tag(d, a, "PREPARE ep8 AS SELECT v FROM pf_t WHERE id = 1", "PREPARE");
	same_exec_error(d, a, "EXECUTE ep8; SELECT nosuch8");
	same_tag(d, a, "DEALLOCATE ALL", "DEALLOCATE ALL");
	PQfinish(d);
	PQfinish(a);
}
END_TEST

/*
 * What an SQL name means while the PREPARE that makes it has no answer yet
 * (pipelined in an earlier request, where an error before it may stop it):
 * an EXECUTE or PREPARE of the name sent as a Parse, or a Bind that runs an
 * unnamed statement's PREPARE of it, waits for that answer, and the client
 * gets what PostgreSQL says. (pgdog took the name as made: the EXECUTE
 * named pgdog's statement in its 26000, and ran on a server where pgdog
 * prepared it again; the PREPARE's Bind got 42P05 after its first Bind
 * failed; an unnamed PREPARE of a name the client had ran when bound again
 * in a later request. Found by t/fuzz/pgdiff.py.)
 */
START_TEST(test_full_sql_name_pending)
{
	PGconn *d = connect_direct(), *a = it_connect(APP);
	struct raw r = { .n = 0 };
	/* a Bind of the unnamed statement to the unnamed portal, one parameter: 9 */
	static const char bind_one[] = "\0\0\0\0\0\1\0\0\0\1"
				       "9\0\0";

	/* the PREPARE does not run: the EXECUTE behind it fails as in PostgreSQL */
	raw_query(&r, "DISCARD ALL; PREPARE pend_q AS SELECT $1::int * 2");
	raw_parse(&r, "", "EXECUTE pend_q(4)");
	raw_run(&r, "");
	raw_sync(&r);
	same_raw(d, a, &r, 2,
		 "E:25001:DISCARD ALL cannot run inside a transaction block Z 1 2 "
		 "E:26000:prepared statement \"pend_q\" does not exist Z");
	raw_query(&r, "EXECUTE pend_q(4)");
	same_raw(d, a, &r, 1, "E:26000:prepared statement \"pend_q\" does not exist Z");
	/* an unnamed PREPARE whose first Bind failed runs at its next one */
	raw_parse(&r, "", "PREPARE pend_r AS SELECT 7");
	raw_put(&r, 'B', bind_one, sizeof(bind_one) - 1);
	raw_sync(&r);
	raw_run(&r, "");
	raw_sync(&r);
	same_raw(d, a, &r, 2,
		 "1 E:08P01:bind message supplies 1 parameters, but prepared statement \"\" "
		 "requires 0 Z 2 C:PREPARE Z");
	raw_query(&r, "EXECUTE pend_r");
	same_raw(d, a, &r, 1, "T D:7 C:SELECT 1 Z");
	/*
	 * An unnamed PREPARE of a name the client has fails again when run in a
	 * later request on the same server (kept by an advisory lock), after
	 * another request in between
	 */
	raw_query(&r, "PREPARE pend_s AS SELECT 5; SELECT pg_advisory_lock_shared(71)");
	raw_parse(&r, "", "PREPARE pend_s AS SELECT 5");
	raw_exec(&r, "no_such_portal");
	raw_sync(&r);
	same_raw(
		d, a, &r, 2,
		"C:PREPARE T D: C:SELECT 1 Z 1 E:34000:portal \"no_such_portal\" does not exist Z");
	raw_parse(&r, "pend_a", "SELECT 1");
	raw_run(&r, "pend_a");
	raw_sync(&r);
	same_raw(d, a, &r, 1, "1 2 D:1 C:SELECT 1 Z");
	raw_run(&r, "");
	raw_sync(&r);
	same_raw(d, a, &r, 1, "2 E:42P05:prepared statement \"pend_s\" already exists Z");
	raw_query(&r, "SELECT pg_advisory_unlock_shared(71)");
	same_raw(d, a, &r, 1, "T D:t C:SELECT 1 Z");
	PQfinish(a);
	PQfinish(d);
}
END_TEST

/*
 * In an aborted block an unnamed Parse of SQL PREPARE is refused (25P02), as
 * PostgreSQL refuses it after dropping the unnamed statement before it: its
 * Bind in the next request gets 26000, though the server still holds the
 * client's earlier unnamed statement (pgdog's Parse of the PREPARE's own
 * statement, sent ahead, is what failed there; the client's Close of it
 * was skipped). It got 25P02 from that statement's Bind.
 */
START_TEST(test_full_sql_prepare_refused_aborted)
{
	PGconn *d = connect_direct(), *a = it_connect(APP);
	struct raw r = { .n = 0 };

	raw_parse(&r, "", "BEGIN");
	raw_run(&r, "");
	raw_exec(&r, "");
	raw_close(&r, "");
	raw_sync(&r);
	same_raw(d, a, &r, 1, "1 2 C:BEGIN E:55000:portal \"\" cannot be run Z");
	raw_parse(&r, "", "PREPARE ab_p AS SELECT 1");
	raw_run(&r, "");
	raw_sync(&r);
	raw_run(&r, "");
	raw_sync(&r);
	same_raw(d, a, &r, 2,
		 "E:25P02:current transaction is aborted, commands ignored until end of "
		 "transaction block Z E:26000:unnamed prepared statement does not exist Z");
	raw_query(&r, "ROLLBACK");
	same_raw(d, a, &r, 1, "C:ROLLBACK Z");
	/* and the client's name is not taken */
	raw_query(&r, "PREPARE ab_p AS SELECT 2");
	same_raw(d, a, &r, 1, "C:PREPARE Z");
	raw_query(&r, "DEALLOCATE ab_p");
	same_raw(d, a, &r, 1, "C:DEALLOCATE Z");
	PQfinish(a);
	PQfinish(d);
}
END_TEST

/*
 * An unnamed SQL PREPARE bound and executed in a request pipelined behind
 * its Parse's, then executed again: 42P05 at the Execute, after the Bind's
 * BindComplete, as in PostgreSQL. The statement its first Execute made on
 * the server was left out of the ones pgdog closes later, so the one pgdog
 * makes for the 42P05 failed first, in place of the BindComplete.
 */
START_TEST(test_full_sql_prepare_pipelined_twice)
{
	PGconn *d = connect_direct(), *a = it_connect(APP);
	struct raw r = { .n = 0 };

	raw_parse(&r, "", "PREPARE pp_twice AS SELECT 1");
	raw_sync(&r);
	raw_run(&r, "");
	raw_sync(&r);
	same_raw(d, a, &r, 2, "1 Z 2 C:PREPARE Z");
	raw_run(&r, "");
	raw_sync(&r);
	same_raw(d, a, &r, 1, "2 E:42P05:prepared statement \"pp_twice\" already exists Z");
	raw_query(&r, "EXECUTE pp_twice");
	same_raw(d, a, &r, 1, "T D:1 C:SELECT 1 Z");
	raw_query(&r, "DEALLOCATE pp_twice");
	same_raw(d, a, &r, 1, "C:DEALLOCATE Z");
	PQfinish(a);
	PQfinish(d);
}
END_TEST

/* The same pipeline on a direct connection and through pgdog: the same replies. */
static void
same_pipeline(PGconn *direct, PGconn *c, const char *const *sqls, int n, const char *want)
{
	char got_d[1024], got[1024];

	pipeline(direct, sqls, n, got_d, sizeof(got_d));
	pipeline(c, sqls, n, got, sizeof(got));
	ck_assert_msg(strcmp(got, got_d) == 0, "pgdog: %s\nPostgreSQL: %s", got, got_d);
	if (want)
		ck_assert_str_eq(got, want);
}

/* Each query of sqls alone (its replies read before the next goes), both ways: the same replies. */
static void
same_each(PGconn *direct, PGconn *c, const char *const *sqls, int n, const char *want)
{
	char got_d[2048], got[2048], one_d[1024], one[1024];
	size_t o_d = 0, o = 0;

	for (int i = 0; i < n; i++) {
		pipeline(direct, sqls + i, 1, one_d, sizeof(one_d));
		pipeline(c, sqls + i, 1, one, sizeof(one));
		o_d += (size_t)snprintf(got_d + o_d, sizeof(got_d) - o_d, "%s%s", i ? " " : "",
					one_d);
		o += (size_t)snprintf(got + o, sizeof(got) - o, "%s%s", i ? " " : "", one);
		ck_assert(o < sizeof(got) && o_d < sizeof(got_d));
	}
	ck_assert_msg(strcmp(got, got_d) == 0, "pgdog: %s\nPostgreSQL: %s", got, got_d);
	if (want)
		ck_assert_str_eq(got, want);
}

/*
 * DEALLOCATE is not transactional in PostgreSQL: one that ran stays done
 * when its transaction rolls back, and one that did not run (the
 * transaction had failed before it, or an earlier statement of its Query
 * failed) leaves the statement in place. A Query that prepares and
 * deallocates a name is rewritten like any other: the server is not pinned.
 */
START_TEST(test_full_deallocate_outcome)
{
	PGconn *d = connect_direct(), *a = it_connect(APP), *b = it_connect(APP);
	long pins = atol(it_pool_field("app", "app", "pins"));
	static const char *const aborted[] = {
		"BEGIN",
		"SELECT 1/0",
		"DEALLOCATE dn",
		"ROLLBACK",
	};
	static const char *const rolled_back[] = {
		"BEGIN",
		"DEALLOCATE dn",
		"ROLLBACK",
		"EXECUTE dn",
	};
	static const char *const multi[] = {
		"SELECT 1/0; DEALLOCATE dn",
		"EXECUTE dn",
		"DEALLOCATE dn; SELECT 1/0",
		"EXECUTE dn",
	};
	static const char *const prep_dealloc[] = {
		"PREPARE pd AS SELECT 'pd'; EXECUTE pd; DEALLOCATE pd; EXECUTE pd",
		"EXECUTE pd",
		"PREPARE pd AS SELECT 'one'; DEALLOCATE pd; PREPARE pd AS SELECT 'two'; EXECUTE pd",
		"EXECUTE pd",
		"PREPARE pe AS SELECT 'pe'; DEALLOCATE pe; SELECT 1/0",
		"EXECUTE pe",
		"PREPARE pe AS SELECT 'pe'; SELECT 1/0; DEALLOCATE pe",
		"EXECUTE pe",
		"DEALLOCATE pd; DEALLOCATE pe",
	};

	same_tag(d, a, "PREPARE dn AS SELECT 'dn'", "PREPARE");
	/* pipelined behind the failed statement: 25P02, dn stays */
	same_pipeline(d, a, aborted, 4, "C:BEGIN Z E:22012 Z E:25P02 Z C:ROLLBACK Z");
	ck_assert_str_eq(it_value(d, "EXECUTE dn"), "dn");
	ck_assert_str_eq(it_value(a, "EXECUTE dn"), "dn");
	/* not run: an earlier statement of the Query failed */
	same_each(d, a, multi, 4, "E:22012 Z T D:dn C:SELECT 1 Z C:DEALLOCATE E:22012 Z E:26000 Z");
	same_tag(d, a, "PREPARE dn AS SELECT 'dn'", "PREPARE");
	/* run, then rolled back: gone all the same */
	same_each(d, a, rolled_back, 4, "C:BEGIN Z C:DEALLOCATE Z C:ROLLBACK Z E:26000 Z");
	same_each(d, a, prep_dealloc, 9,
		  "C:PREPARE T D:pd C:SELECT 1 C:DEALLOCATE E:26000 Z E:26000 Z "
		  "C:PREPARE C:DEALLOCATE C:PREPARE T D:two C:SELECT 1 Z T D:two C:SELECT 1 Z "
		  "C:PREPARE C:DEALLOCATE E:22012 Z E:26000 Z "
		  "C:PREPARE E:22012 Z T D:pe C:SELECT 1 Z "
		  "C:DEALLOCATE C:DEALLOCATE Z");
	/* nothing pinned: b shares the one server while a is idle */
	ck_assert_int_eq(atol(it_pool_field("app", "app", "pins")), pins);
	ck_assert_str_eq(it_value(b, "SELECT 'b'"), "b");
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_prepared_statements "
				     "WHERE name LIKE '\\_\\_pgdog\\_drop%'"),
			 "0");
	PQfinish(d);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* ---- pool_size 2, several clients ----------------------------------------- */

static void
setup_full_two(void)
{
	setup_pg("full_two");
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 1,
		/* idle servers in turn: every client moves between the two */
		.general = "pooler_mode = transaction\nprepared_statements = full\n"
			   "server_round_robin = true",
		.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 2\n",
	});
}

/* c's statement name described: "name:type" of each column, or "no data"; out has 128 bytes. */
static const char *
described(PGconn *c, const char *name, char *out)
{
	PGresult *res = PQdescribePrepared(c, name);
	size_t n = 0;

	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	out[0] = '\0';
	for (int i = 0; i < PQnfields(res); i++)
		n += (size_t)snprintf(out + n, 128 - n, "%s%s:%u", i ? "," : "", PQfname(res, i),
				      PQftype(res, i));
	PQclear(res);
	return n ? out : "no data";
}

/* c's statement name (no parameters) run: its first value. */
static void
run_prepared_value(PGconn *c, const char *name, const char *want)
{
	PGresult *res = PQexecPrepared(c, name, 0, NULL, NULL, NULL, 0);

	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), want);
	PQclear(res);
}

/*
 * A FETCH prepared as a named statement takes its result from the cursor
 * the session has when it is prepared, and clients share pgdog's statement
 * for the text: each client's Describe tells its own cursor's columns, and
 * a copy prepared for another client's cursor of another shape does not
 * make the statement "change result type". pgdog answered the Describe
 * with whatever cursor the server's copy was prepared with (no data: none),
 * and the first client's later run failed with 0A000.
 */
START_TEST(test_full_two_fetch_described)
{
	PGconn *x = it_connect(APP), *y = it_connect(APP), *z = it_connect(APP);
	char buf[128];
	PGresult *res;

	exec_ok(x, "BEGIN");
	exec_ok(x, "DECLARE c1 CURSOR FOR SELECT 1::int AS a");
	res = PQprepare(x, "f", "FETCH 1 FROM c1", 0, NULL);
	PQclear(res);
	ck_assert_str_eq(described(x, "f", buf), "a:23");
	run_prepared_value(x, "f", "1");
	/* x holds one server: y gets the other, where f is prepared again */
	exec_ok(y, "BEGIN");
	exec_ok(y, "DECLARE c1 CURSOR FOR SELECT 'x'::text AS b");
	res = PQprepare(y, "f", "FETCH 1 FROM c1", 0, NULL);
	PQclear(res);
	ck_assert_str_eq(described(y, "f", buf), "b:25");
	run_prepared_value(y, "f", "x");
	exec_ok(x, "COMMIT");
	exec_ok(y, "COMMIT");
	for (int i = 0; i < 2; i++) {
		PGconn *c = i ? y : x;

		exec_ok(c, "BEGIN");
		exec_ok(c, i ? "DECLARE c1 CURSOR FOR SELECT 'y'::text AS b"
			     : "DECLARE c1 CURSOR FOR SELECT 5::int AS a");
		run_prepared_value(c, "f", i ? "y" : "5");
	}
	exec_ok(x, "COMMIT");
	exec_ok(y, "COMMIT");
	/* prepared where no cursor c2 exists, on both servers (x holds one the second time) */
	res = PQprepare(z, "g", " /* c2 */\tfetch 2 FROM c2", 0, NULL);
	PQclear(res);
	ck_assert_str_eq(described(z, "g", buf), "no data");
	exec_ok(x, "BEGIN");
	ck_assert_str_eq(described(z, "g", buf), "no data");
	exec_ok(x, "COMMIT");
	exec_ok(x, "DECLARE c2 CURSOR WITH HOLD FOR SELECT generate_series(1, 4) AS n");
	res = PQprepare(x, "g", " /* c2 */\tfetch 2 FROM c2", 0, NULL);
	PQclear(res);
	ck_assert_str_eq(described(x, "g", buf), "n:23");
	run_prepared_value(x, "g", "1");
	exec_ok(x, "CLOSE c2");
	PQfinish(x);
	PQfinish(y);
	PQfinish(z);
}
END_TEST

/*
 * Four clients on two servers, transactions held open and the idle servers
 * taken in turn (server_round_robin) so that each client moves between them: SQL and protocol-level statements follow every
 * client, and each sees only its own results.
 */
START_TEST(test_full_two_servers)
{
	PGconn *c[4];
	char sql[160], want[64], pids[2][32] = { "", "" };
	int seen = 0;

	for (int i = 0; i < 4; i++) {
		PGresult *res;

		c[i] = it_connect(APP);
		snprintf(sql, sizeof(sql),
			 "PREPARE mine (int) AS SELECT '%d:' || v FROM pf_t WHERE id = $1", i);
		exec_tag(c[i], sql, "PREPARE");
		snprintf(sql, sizeof(sql), "SELECT '%d/' || $1::text", i);
		res = PQprepare(c[i], "proto", sql, 1, NULL);
		ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s",
			      PQresultErrorMessage(res));
		PQclear(res);
	}
	for (int round = 0; round < 40; round++) {
		int i = round % 4, holder = (round + 1) % 4, id = round + 1;
		char arg[16], pid[32];
		PGresult *res;

		/* another client holds one server in a transaction: i gets the other one */
		exec_ok(c[holder], "BEGIN");
		ck_assert_str_eq(it_value(c[holder], "SELECT count(*) FROM pf_t"), "100");
		snprintf(pid, sizeof(pid), "%s", it_value(c[i], "SELECT pg_backend_pid()"));
		for (int k = 0; k < 2; k++) {
			if (strcmp(pids[k], pid) == 0)
				break;
			if (pids[k][0] == '\0') {
				snprintf(pids[k], sizeof(pids[k]), "%s", pid);
				seen++;
				break;
			}
		}
		snprintf(sql, sizeof(sql), "EXECUTE mine(%d)", id);
		snprintf(want, sizeof(want), "%d:v%d", i, id);
		ck_assert_str_eq(it_value(c[i], sql), want);
		snprintf(arg, sizeof(arg), "%d", id);
		res = PQexecPrepared(c[i], "proto", 1, (const char *[]){ arg }, NULL, NULL, 0);
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s",
			      PQresultErrorMessage(res));
		snprintf(want, sizeof(want), "%d/%d", i, id);
		ck_assert_str_eq(PQgetvalue(res, 0, 0), want);
		PQclear(res);
		snprintf(want, sizeof(want), "%d/%d", holder, id);
		snprintf(sql, sizeof(sql), "EXECUTE proto('%d')", id);
		ck_assert_str_eq(it_value(c[holder], sql), want);
		exec_ok(c[holder], "COMMIT");
	}
	ck_assert_int_eq(seen, 2);
	for (int i = 0; i < 4; i++)
		PQfinish(c[i]);
}
END_TEST

/* ---- a randomized model check ---------------------------------------------- */

#define MODEL_CLIENTS 6
#define MODEL_NAMES   5

/* What one client has prepared, by name n0..n4: the value its statement returns, or -1. */
struct model {
	PGconn *conn;
	int val[MODEL_NAMES];
	bool in_tx, is_aborted;
	bool is_proto_only; /* extended mode: protocol-level statements, Close instead of DEALLOCATE */
};

/* Expect res to be an error with sqlstate; the transaction, if any, is aborted. */
static void
model_expect_error(struct model *m, PGresult *res, const char *sqlstate, const char *what)
{
	const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR && st && strcmp(st, sqlstate) == 0,
		      "%s: expected %s, got %s %s", what, sqlstate,
		      PQresStatus(PQresultStatus(res)), PQresultErrorMessage(res));
	if (m->in_tx)
		m->is_aborted = true;
}

/* One random operation on m's names, checked against the model. */
static void
model_step(struct model *m, int who, unsigned *seed)
{
	int op = (int)(rand_r(seed) % 7), n = (int)(rand_r(seed) % MODEL_NAMES);
	int v = (int)(rand_r(seed) % 4);
	char name[8], sql[128], what[160], want[16];
	bool is_proto = rand_r(seed) % 2 || m->is_proto_only;
	PGresult *res;

	snprintf(name, sizeof(name), "n%d", n);
	switch (op) {
	case 0:
	case 1: /* prepare */
		snprintf(sql, sizeof(sql), "SELECT 'v%d'::text", v);
		snprintf(what, sizeof(what), "client %d %s %s", who, is_proto ? "Parse" : "PREPARE",
			 name);
		if (is_proto) {
			res = PQprepare(m->conn, name, sql, 0, NULL);
		} else {
			char q[160];

			snprintf(q, sizeof(q), "PREPARE %s AS %s", name, sql);
			res = PQexec(m->conn, q);
		}
		if (m->is_aborted)
			model_expect_error(m, res, "25P02", what);
		else if (m->val[n] >= 0)
			model_expect_error(m, res, "42P05", what);
		else {
			ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", what,
				      PQresultErrorMessage(res));
			m->val[n] = v;
		}
		break;
	case 2:
	case 3:
	case 4: /* execute */
		snprintf(what, sizeof(what), "client %d %s %s", who, is_proto ? "Bind" : "EXECUTE",
			 name);
		if (is_proto) {
			res = PQexecPrepared(m->conn, name, 0, NULL, NULL, NULL, 0);
		} else {
			snprintf(sql, sizeof(sql), "EXECUTE %s", name);
			res = PQexec(m->conn, sql);
		}
		/* Bind looks the statement up before it checks the transaction */
		if (m->is_aborted && !(is_proto && m->val[n] < 0))
			model_expect_error(m, res, "25P02", what);
		else if (m->val[n] < 0)
			model_expect_error(m, res, "26000", what);
		else {
			ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", what,
				      PQresultErrorMessage(res));
			snprintf(want, sizeof(want), "v%d", m->val[n]);
			ck_assert_msg(strcmp(PQgetvalue(res, 0, 0), want) == 0, "%s: %s, want %s",
				      what, PQgetvalue(res, 0, 0), want);
		}
		break;
	case 5: /* deallocate */
		if (m->is_proto_only) {
			/* Close: no error for an unknown name, and none in an aborted transaction */
			close_prepared(m->conn, name);
			m->val[n] = -1;
			return;
		}
		snprintf(sql, sizeof(sql), "DEALLOCATE %s", name);
		snprintf(what, sizeof(what), "client %d %s", who, sql);
		res = PQexec(m->conn, sql);
		if (m->is_aborted)
			model_expect_error(m, res, "25P02", what);
		else if (m->val[n] < 0)
			model_expect_error(m, res, "26000", what);
		else {
			ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", what,
				      PQresultErrorMessage(res));
			m->val[n] = -1;
		}
		break;
	default: /* deallocate all or discard all, now and then */
		if (rand_r(seed) % 3 == 0) {
			res = PQexec(m->conn, "DISCARD ALL");
			if (m->is_aborted) {
				model_expect_error(m, res, "25P02", "DISCARD ALL");
			} else if (m->in_tx) {
				model_expect_error(m, res, "25001", "DISCARD ALL");
			} else {
				ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK,
					      "DISCARD ALL: %s", PQresultErrorMessage(res));
				for (int i = 0; i < MODEL_NAMES; i++)
					m->val[i] = -1;
			}
			break;
		}
		if (rand_r(seed) % 2) {
			res = PQexec(m->conn, "SELECT 1");
			if (m->is_aborted)
				model_expect_error(m, res, "25P02", "SELECT 1");
			break;
		}
		res = PQexec(m->conn, "DEALLOCATE ALL");
		if (m->is_aborted) {
			model_expect_error(m, res, "25P02", "DEALLOCATE ALL");
		} else {
			ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "DEALLOCATE ALL: %s",
				      PQresultErrorMessage(res));
			for (int i = 0; i < MODEL_NAMES; i++)
				m->val[i] = -1;
		}
		break;
	}
	PQclear(res);
}

/*
 * Six clients on two servers (prepared_statements_limit 3) prepare, run and
 * drop SQL and protocol-level statements of overlapping names and texts at
 * random, alone or in transaction blocks that commit or roll back; each
 * checks every answer against its own model of what PostgreSQL would say.
 */
static void
model_run(bool is_proto_only)
{
	struct model m[MODEL_CLIENTS];
	unsigned seed = 20261121;
	long long end = it_now_ms() + 20000;

	for (int i = 0; i < MODEL_CLIENTS; i++) {
		m[i].conn = it_connect(APP);
		m[i].is_proto_only = is_proto_only;
		m[i].in_tx = m[i].is_aborted = false;
		for (int k = 0; k < MODEL_NAMES; k++)
			m[i].val[k] = -1;
	}
	for (int turn = 0; turn < 600 && it_now_ms() < end; turn++) {
		int who = (int)(rand_r(&seed) % MODEL_CLIENTS);
		struct model *c = &m[who];

		if (rand_r(&seed) % 4 == 0) {
			/* a transaction block, finished within the turn: no server stays held */
			int steps = 1 + (int)(rand_r(&seed) % 4);
			bool is_commit = rand_r(&seed) % 2;

			exec_ok(c->conn, "BEGIN");
			c->in_tx = true;
			for (int k = 0; k < steps; k++)
				model_step(c, who, &seed);
			exec_tag(c->conn, is_commit ? "COMMIT" : "ROLLBACK",
				 is_commit && !c->is_aborted ? "COMMIT" : "ROLLBACK");
			c->in_tx = c->is_aborted = false;
		} else {
			model_step(c, who, &seed);
		}
	}
	for (int i = 0; i < MODEL_CLIENTS; i++)
		PQfinish(m[i].conn);
}

START_TEST(test_full_model)
{
	model_run(false);
}
END_TEST

/* The same with prepared_statements = extended, protocol-level statements only. */
START_TEST(test_extended_model)
{
	model_run(true);
}
END_TEST

static void
setup_extended_model(void)
{
	setup_pg("extended_model");
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 1,
		.general = "pooler_mode = transaction\nprepared_statements = extended\n"
			   "prepared_statements_limit = 3",
		.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 2\n",
	});
}

static void
setup_full_model(void)
{
	setup_pg("full_model");
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 1,
		.general = "pooler_mode = transaction\nprepared_statements = full\n"
			   "prepared_statements_limit = 3",
		.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 2\n",
	});
}

/* ---- prepared_statements_limit with SQL statements ----------------------- */

/*
 * Four SQL-prepared statements on a server that keeps two: every EXECUTE
 * works, pgdog prepares again what it evicted, and the server never holds
 * more than two of pgdog's statements.
 */
START_TEST(test_full_limit_eviction)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP);
	char sql[96], want[16];

	for (int i = 0; i < 4; i++) {
		snprintf(sql, sizeof(sql), "PREPARE e%d (int) AS SELECT %d + $1", i, i * 100);
		exec_tag(a, sql, "PREPARE");
	}
	exec_tag(b, "PREPARE other AS SELECT 'other'", "PREPARE");
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 4; i++) {
			int k = (i * 3 + round) % 4;

			snprintf(sql, sizeof(sql), "EXECUTE e%d(%d)", k, round);
			snprintf(want, sizeof(want), "%d", k * 100 + round);
			ck_assert_str_eq(it_value(a, sql), want);
			ck_assert_int_le(pgdog_statements(a), 2);
		}
		ck_assert_str_eq(it_value(b, "EXECUTE other"), "other");
	}
	/* Bind to an SQL-prepared name the server lost: prepared again first */
	for (int i = 0; i < 4; i++) {
		char name[8], arg[8];
		PGresult *res;

		snprintf(name, sizeof(name), "e%d", i);
		snprintf(arg, sizeof(arg), "%d", i);
		snprintf(want, sizeof(want), "%d", i * 101);
		res = PQexecPrepared(a, name, 1, (const char *[]){ arg }, NULL, NULL, 0);
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", name,
			      PQresultErrorMessage(res));
		ck_assert_str_eq(PQgetvalue(res, 0, 0), want);
		PQclear(res);
	}
	/* EXECUTE of a protocol-level name the server lost */
	{
		PGresult *res = PQprepare(a, "pl", "SELECT $1::int * 3", 1, NULL);

		ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s",
			      PQresultErrorMessage(res));
		PQclear(res);
		for (int i = 0; i < 3; i++) {
			ck_assert_str_eq(it_value(a, "EXECUTE e1(1)"), "101");
			ck_assert_str_eq(it_value(a, "EXECUTE e2(1)"), "201");
			ck_assert_str_eq(it_value(a, "EXECUTE pl(5)"), "15");
			ck_assert_int_le(pgdog_statements(a), 2);
		}
	}
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * An SQL-prepared statement pgdog must prepare again after its table was
 * dropped: the client gets PostgreSQL's error; once the table is back, the
 * statement works again on that server.
 */
/*
 * prepared_statements_limit = 2. The Close pgdog sent to make room for a
 * statement went behind the client's messages of the request, so after an
 * error earlier in it PostgreSQL skipped the Close, while pgdog took the
 * statement as gone: its next Parse of it on that server failed with 42P05
 * naming pgdog's statement ("__pgdog_0_1"), for this client and any other
 * that got the server. Now statements are closed only at the start of a
 * request; one that prepares more than the limit leaves the server over
 * it until the next request starts. Replies compared with PostgreSQL's.
 */
START_TEST(test_full_limit_close_skipped)
{
	PGconn *d = connect_direct(), *a = it_connect(APP), *b = it_connect(APP);
	struct raw r = { .n = 0 };

	raw_parse(&r, "la", "SELECT 1 AS a");
	raw_run(&r, "la");
	raw_sync(&r);
	raw_parse(&r, "lb", "SELECT 2 AS b");
	raw_run(&r, "lb");
	raw_sync(&r);
	/* the error comes first: Parse lc, and a Close to make room for it, are skipped */
	raw_parse(&r, "", "SELECT 1/0");
	raw_run(&r, "");
	raw_parse(&r, "lc", "SELECT 3 AS c");
	raw_run(&r, "lc");
	raw_sync(&r);
	raw_parse(&r, "lc", "SELECT 3 AS c");
	raw_run(&r, "lc");
	raw_sync(&r);
	raw_run(&r, "la");
	raw_sync(&r);
	raw_run(&r, "lb");
	raw_sync(&r);
	same_raw(d, a, &r, 6,
		 "1 2 D:1 C:SELECT 1 Z 1 2 D:2 C:SELECT 1 Z 1 E:22012:division by zero Z "
		 "1 2 D:3 C:SELECT 1 Z 2 D:1 C:SELECT 1 Z 2 D:2 C:SELECT 1 Z");
	/* another client on that server, the same texts */
	raw_parse(&r, "q1", "SELECT 1 AS a");
	raw_run(&r, "q1");
	raw_sync(&r);
	raw_parse(&r, "q2", "SELECT 2 AS b");
	raw_run(&r, "q2");
	raw_sync(&r);
	raw_parse(&r, "q3", "SELECT 3 AS c");
	raw_run(&r, "q3");
	raw_sync(&r);
	same_raw(d, b, &r, 3, "1 2 D:1 C:SELECT 1 Z 1 2 D:2 C:SELECT 1 Z 1 2 D:3 C:SELECT 1 Z");
	/* three new statements in one request: over the limit until the next one starts */
	raw_parse(&r, "n1", "SELECT 11");
	raw_parse(&r, "n2", "SELECT 12");
	raw_parse(&r, "n3", "SELECT 13");
	raw_run(&r, "n3");
	raw_sync(&r);
	same_raw(d, b, &r, 1, "1 1 1 2 D:13 C:SELECT 1 Z");
	ck_assert_int_le(pgdog_statements(b), 2);
	raw_run(&r, "n1");
	raw_sync(&r);
	same_raw(d, b, &r, 1, "2 D:11 C:SELECT 1 Z");
	raw_run(&r, "la");
	raw_sync(&r);
	same_raw(d, a, &r, 1, "2 D:1 C:SELECT 1 Z");
	ck_assert_int_le(pgdog_statements(a), 2);
	PQfinish(d);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/*
 * A statement the server lost (evicted) is prepared again in front of the
 * client's text, in the same Query: the position of an error after it still
 * points into the client's text.
 */
START_TEST(test_full_limit_error_position)
{
	PGconn *d = connect_direct(), *a = it_connect(APP);
	char sql[96];

	for (int i = 0; i < 3; i++) {
		snprintf(sql, sizeof(sql), "PREPARE lp%d (int) AS SELECT %d + $1", i, i);
		same_tag(d, a, sql, "PREPARE");
	}
	ck_assert_int_le(pgdog_statements(a), 2); /* lp0 was evicted */
	same_exec_error(d, a, "SELECT 1; EXECUTE lp0(1); SELECT nosuch_lp");
	same_tag(d, a, "DEALLOCATE ALL", "DEALLOCATE ALL");
	PQfinish(d);
	PQfinish(a);
}
END_TEST

START_TEST(test_full_limit_reprepare_fails)
{
	PGconn *a = it_connect(APP);
	PGresult *res;

	it_pg_exec("CREATE TABLE pf_gone (x int); INSERT INTO pf_gone VALUES (1);"
		   "GRANT ALL ON pf_gone TO app");
	exec_tag(a, "PREPARE g AS SELECT count(*) FROM pf_gone", "PREPARE");
	ck_assert_str_eq(it_value(a, "EXECUTE g"), "1");
	/* push it out of the server (limit 2) */
	exec_tag(a, "PREPARE g1 AS SELECT 'g1'", "PREPARE");
	exec_tag(a, "PREPARE g2 AS SELECT 'g2'", "PREPARE");
	ck_assert_str_eq(it_value(a, "EXECUTE g1"), "g1");
	ck_assert_str_eq(it_value(a, "EXECUTE g2"), "g2");
	it_pg_exec("DROP TABLE pf_gone");
	res = PQexec(a, "EXECUTE g");
	ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR, "EXECUTE g: %s",
		      PQresStatus(PQresultStatus(res)));
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "42P01");
	PQclear(res);
	it_pg_exec("CREATE TABLE pf_gone (x int); INSERT INTO pf_gone VALUES (1), (2);"
		   "GRANT ALL ON pf_gone TO app");
	ck_assert_str_eq(it_value(a, "EXECUTE g"), "2");
	ck_assert_str_eq(it_value(a, "EXECUTE g1"), "g1");
	ck_assert_str_eq(it_value(a, "SELECT count(*) FROM pg_prepared_statements WHERE name = "
				     "'__pgdog_sqlprep'"),
			 "0");
	/* a statement ending in a -- comment, prepared again in front of an EXECUTE */
	exec_tag(a, "PREPARE cm (int) AS SELECT $1 * 7 -- seven", "PREPARE");
	exec_tag(a, "PREPARE g3 AS SELECT 'g3'", "PREPARE");
	ck_assert_str_eq(it_value(a, "EXECUTE g3"), "g3");
	ck_assert_str_eq(it_value(a, "EXECUTE g2"), "g2");
	ck_assert_str_eq(it_value(a, "EXECUTE cm(6); -- after"), "42");
	ck_assert_str_eq(it_value(a, "SELECT 0; EXECUTE g; EXECUTE cm(2)"), "14");
	PQfinish(a);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("it_prepfull");
	TCase *tc;

	tc = tcase_create("full");
	tcase_add_unchecked_fixture(tc, setup_full, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_full_prepare_execute);
	tcase_add_test(tc, test_full_shared);
	tcase_add_test(tc, test_full_errors);
	tcase_add_test(tc, test_full_wrapped_execute);
	tcase_add_test(tc, test_full_deallocate_all);
	tcase_add_test(tc, test_deallocate_all_pipelined);
	tcase_add_test(tc, test_dealloc_multi_then_describe);
	tcase_add_test(tc, test_discard_after_exec_commit);
	tcase_add_test(tc, test_discard_stmt_after_exec_commit);
	tcase_add_test(tc, test_skipped_close_parse);
	tcase_add_test(tc, test_skipped_query_client_gone);
	tcase_add_test(tc, test_full_sql_names);
	tcase_add_test(tc, test_discard_in_block_keeps_pin);
	tcase_add_test(tc, test_alias_error_name);
	tcase_add_test(tc, test_skipped_query_unnamed);
	tcase_add_test(tc, test_unnamed_copy_skipped);
	tcase_add_test(tc, test_dup_parse_aborted);
	tcase_add_test(tc, test_parse_behind_abort);
	tcase_add_test(tc, test_parse_skipped_same_text);
	tcase_add_test(tc, test_discard_then_bind);
	tcase_add_test(tc, test_discard_not_run);
	tcase_add_test(tc, test_skipped_discard_other_client);
	tcase_add_test(tc, test_full_dealloc_all_refused);
	tcase_add_test(tc, test_set_bound_unnamed);
	tcase_add_test(tc, test_set_bound_not_run);
	tcase_add_test(tc, test_full_mixed_names);
	tcase_add_test(tc, test_full_multi_prepare);
	tcase_add_test(tc, test_full_extended_sql);
	tcase_add_test(tc, test_full_extended_sql_runs);
	tcase_add_test(tc, test_full_sql_bind_query_between);
	tcase_add_test(tc, test_full_many_clients);
	tcase_add_test(tc, test_full_pipelined);
	tcase_add_test(tc, test_reparse_42p05);
	tcase_add_test(tc, test_set_config_pins);
	tcase_add_test(tc, test_reset_forgets_held);
	tcase_add_test(tc, test_scs_off_hidden_set);
	tcase_add_test(tc, test_scs_statements_apart);
	tcase_add_test(tc, test_full_dup_like_postgres);
	tcase_add_test(tc, test_full_deallocate_outcome);
	tcase_add_test(tc, test_full_error_position);
	tcase_add_test(tc, test_full_sql_name_pending);
	tcase_add_test(tc, test_full_sql_prepare_refused_aborted);
	tcase_add_test(tc, test_full_sql_prepare_pipelined_twice);
	suite_add_tcase(s, tc);

	tc = tcase_create("full_limit");
	tcase_add_unchecked_fixture(tc, setup_full_limit, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_full_limit_eviction);
	tcase_add_test(tc, test_full_limit_reprepare_fails);
	tcase_add_test(tc, test_full_limit_error_position);
	tcase_add_test(tc, test_full_limit_close_skipped);
	suite_add_tcase(s, tc);

	tc = tcase_create("full_two");
	tcase_add_unchecked_fixture(tc, setup_full_two, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_full_two_servers);
	tcase_add_test(tc, test_full_two_fetch_described);
	suite_add_tcase(s, tc);

	tc = tcase_create("full_model");
	tcase_add_unchecked_fixture(tc, setup_full_model, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_full_model);
	suite_add_tcase(s, tc);

	tc = tcase_create("extended_model");
	tcase_add_unchecked_fixture(tc, setup_extended_model, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_extended_model);
	suite_add_tcase(s, tc);

	tc = tcase_create("extended");
	tcase_add_unchecked_fixture(tc, setup_extended, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_reparse_42p05);
	tcase_add_test(tc, test_set_config_pins);
	tcase_add_test(tc, test_reset_forgets_held);
	tcase_add_test(tc, test_extended_sql_prepare_pins);
	tcase_add_test(tc, test_dealloc_all_then_prepare_pins);
	tcase_add_test(tc, test_pins_outlive_discard_and_unlock_parse);
	tcase_add_test(tc, test_pins_come_back_with_use);
	tcase_add_test(tc, test_pins_asked_named);
	tcase_add_test(tc, test_dup_parse_skipped);
	tcase_add_test(tc, test_deallocate_all_pipelined);
	tcase_add_test(tc, test_dealloc_multi_then_describe);
	tcase_add_test(tc, test_discard_after_exec_commit);
	tcase_add_test(tc, test_discard_stmt_after_exec_commit);
	tcase_add_test(tc, test_skipped_close_parse);
	tcase_add_test(tc, test_skipped_query_client_gone);
	tcase_add_test(tc, test_discard_in_block_keeps_pin);
	tcase_add_test(tc, test_alias_error_name);
	tcase_add_test(tc, test_skipped_query_unnamed);
	tcase_add_test(tc, test_unnamed_copy_skipped);
	tcase_add_test(tc, test_dup_parse_aborted);
	tcase_add_test(tc, test_parse_behind_abort);
	tcase_add_test(tc, test_parse_skipped_same_text);
	tcase_add_test(tc, test_discard_then_bind);
	tcase_add_test(tc, test_discard_not_run);
	tcase_add_test(tc, test_skipped_discard_other_client);
	tcase_add_test(tc, test_set_bound_unnamed);
	tcase_add_test(tc, test_set_bound_not_run);
	suite_add_tcase(s, tc);

	tc = tcase_create("disabled");
	tcase_add_unchecked_fixture(tc, setup_disabled, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_skipped_query_client_gone);
	tcase_add_test(tc, test_set_bound_unnamed);
	tcase_add_test(tc, test_skipped_discard_keeps_pin);
	tcase_add_test(tc, test_discard_then_prepare_keeps_pin);
	suite_add_tcase(s, tc);

	return it_run_suite(s);
}
