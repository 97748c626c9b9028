/*
 * check_sql.c: unit tests for sql/sql_classify.c and sql/sql_parse.c: every
 * statement kind and flag in several spellings, SET values cut exactly from
 * the source, multi-statement texts, the prefilter (what it skips and what it
 * must not), lexing with standard_conforming_strings off, the cache, errors,
 * truncation, every prefix of a text read from an exact-size buffer, and a
 * timing sanity bound.
 * Runs in: the test process only. No network.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "sql/sql_classify.h"

#define PGBENCH_SELECT "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
#define PGBENCH_UPDATE "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2"
#define PGBENCH_INSERT                                                           \
	"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, " \
	"$2, $3, $4, CURRENT_TIMESTAMP)"

/* One single-statement case: the text and what it must classify as. */
struct sql_case {
	const char *sql;
	enum sql_kind kind;
	unsigned flags;
	const char *name;
	const char *value;
};

static struct sql_result r;

static void
classify(const char *sql)
{
	ck_assert_int_eq(sql_classify(sql, strlen(sql), &r), 0);
}

static void
check_case(const struct sql_case *c)
{
	classify(c->sql);
	ck_assert_msg(r.is_parsed, "not parsed: %s", c->sql);
	ck_assert_msg(!r.is_error, "parse error: %s", c->sql);
	ck_assert_msg(r.stmts_cnt == 1, "%zu statements: %s", r.stmts_cnt, c->sql);
	ck_assert_msg(r.stmts[0].kind == c->kind, "kind %d, want %d: %s", (int)r.stmts[0].kind,
		      (int)c->kind, c->sql);
	ck_assert_msg(r.stmts[0].flags == c->flags, "flags %#x, want %#x: %s", r.stmts[0].flags,
		      c->flags, c->sql);
	ck_assert_msg(r.flags == c->flags, "result flags %#x, want %#x: %s", r.flags, c->flags,
		      c->sql);
	ck_assert_msg(!r.stmts[0].is_truncated, "truncated: %s", c->sql);
	if (c->name != NULL)
		ck_assert_msg(strcmp(r.stmts[0].name, c->name) == 0, "name '%s', want '%s': %s",
			      r.stmts[0].name, c->name, c->sql);
	if (c->value != NULL)
		ck_assert_msg(strcmp(r.stmts[0].value, c->value) == 0, "value '%s', want '%s': %s",
			      r.stmts[0].value, c->value, c->sql);
}

static const struct sql_case set_cases[] = {
	{ "SET search_path TO public, \"$user\"", SQL_SET, 0, "search_path", "public, \"$user\"" },
	{ "SET statement_timeout = '5s'", SQL_SET, 0, "statement_timeout", "'5s'" },
	{ "set application_name='x;y'", SQL_SET, 0, "application_name", "'x;y'" },
	{ "set application_name='x;y';", SQL_SET, 0, "application_name", "'x;y'" },
	{ "SET TIME ZONE 'UTC'", SQL_SET, 0, "timezone", "'UTC'" },
	{ "set time zone 'Europe/Paris' ;", SQL_SET, 0, "timezone", "'Europe/Paris'" },
	{ "SET timezone = 'UTC'", SQL_SET, 0, "timezone", "'UTC'" },
	{ "/* c */ SET  Search_Path\n\tTO  a ,b  ;  ", SQL_SET, 0, "search_path", "a ,b" },
	{ "-- line\nSET SESSION work_mem = '64MB' -- trailing", SQL_SET, 0, "work_mem", "'64MB'" },
	{ "SET \"WORK_MEM\" TO 1024", SQL_SET, 0, "work_mem", "1024" },
	{ "SET extra_float_digits = -3", SQL_SET, 0, "extra_float_digits", "-3" },
	{ "SET NAMES 'UTF8'", SQL_SET, 0, "client_encoding", "'UTF8'" },
	{ "SET SCHEMA 'app'", SQL_SET, 0, "search_path", "'app'" },
	{ "SET myapp.user_id = 42 /* c */", SQL_SET, 0, "myapp.user_id", "42" },
	{ "SET x = $$a;b$$", SQL_SET, 0, "x", "$$a;b$$" },
	{ "SET search_path = 'a', /* mid */ 'b'", SQL_SET, 0, "search_path", "'a', /* mid */ 'b'" },
	{ "SET LOCAL lock_timeout TO '1s'", SQL_SET_LOCAL, 0, "lock_timeout", "'1s'" },
	{ "set local search_path = x", SQL_SET_LOCAL, 0, "search_path", "x" },
	{ "SET LOCAL x.y TO DEFAULT", SQL_SET_LOCAL, 0, "x.y", "" },
	{ "SET search_path TO DEFAULT", SQL_RESET, 0, "search_path", "" },
	{ "SET work_mem = default", SQL_RESET, 0, "work_mem", "" },
	/* PostgreSQL refuses a parameter there (42601): not a SET to track */
	{ "SET x = $1", SQL_OTHER, 0, NULL, NULL },
	{ "SET search_path = a, $1", SQL_OTHER, 0, NULL, NULL },
	{ "RESET search_path", SQL_RESET, 0, "search_path", "" },
	{ "reset \"Work_Mem\";", SQL_RESET, 0, "work_mem", "" },
	{ "SET TIME ZONE LOCAL", SQL_RESET, 0, "timezone", "" },
	{ "SET TIME ZONE DEFAULT", SQL_RESET, 0, "timezone", "" },
	{ "RESET ALL", SQL_RESET_ALL, 0, "", "" },
	{ "  reset   all  ", SQL_RESET_ALL, 0, "", "" },
	/* the session's transaction defaults, one parameter each */
	{ "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", SQL_SET, 0,
	  "default_transaction_read_only", "on" },
	{ "set session characteristics as transaction read write", SQL_SET, 0,
	  "default_transaction_read_only", "off" },
	{ "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ", SQL_SET, 0,
	  "default_transaction_isolation", "'repeatable read'" },
	{ "SET SESSION CHARACTERISTICS AS TRANSACTION DEFERRABLE", SQL_SET, 0,
	  "default_transaction_deferrable", "on" },
	{ "SET SESSION CHARACTERISTICS AS TRANSACTION NOT DEFERRABLE", SQL_SET, 0,
	  "default_transaction_deferrable", "off" },
	/* not tracked: this transaction only */
	{ "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", SQL_OTHER, 0, "", "" },
};

static const struct sql_case role_cases[] = {
	{ "SET ROLE admin", SQL_SET, SQL_F_SESSION_ROLE, "role", "admin" },
	{ "set role 'admin'", SQL_SET, SQL_F_SESSION_ROLE, "role", "'admin'" },
	{ "SET ROLE NONE", SQL_SET, SQL_F_SESSION_ROLE, "role", "NONE" },
	{ "SET SESSION ROLE admin", SQL_SET, SQL_F_SESSION_ROLE, "role", "admin" },
	{ "SET SESSION AUTHORIZATION 'bob'", SQL_SET, SQL_F_SESSION_ROLE, "session_authorization",
	  "'bob'" },
	{ "SET SESSION AUTHORIZATION DEFAULT", SQL_RESET, SQL_F_SESSION_ROLE,
	  "session_authorization", "" },
	{ "RESET ROLE", SQL_RESET, SQL_F_SESSION_ROLE, "role", "" },
	{ "reset session authorization", SQL_RESET, SQL_F_SESSION_ROLE, "session_authorization",
	  "" },
	{ "SET role TO admin", SQL_SET, SQL_F_SESSION_ROLE, "role", "admin" },
	/* transaction scoped: nothing to pin */
	{ "SET LOCAL ROLE admin", SQL_SET_LOCAL, 0, "role", "admin" },
	{ "LOAD 'auto_explain'", SQL_OTHER, SQL_F_LOAD, "", "" },
};

static const struct sql_case verb_cases[] = {
	{ "DISCARD ALL", SQL_DISCARD_ALL, 0, "", "" },
	{ "discard all;", SQL_DISCARD_ALL, 0, "", "" },
	{ "DISCARD PLANS", SQL_DISCARD_OTHER, 0, "", "" },
	{ "DISCARD SEQUENCES", SQL_DISCARD_OTHER, 0, "", "" },
	{ "DISCARD TEMP", SQL_DISCARD_OTHER, SQL_F_MAY_UNPIN, "", "" },
	{ "Discard Temporary", SQL_DISCARD_OTHER, SQL_F_MAY_UNPIN, "", "" },
	{ "BEGIN", SQL_BEGIN, 0, "", "" },
	{ "begin work", SQL_BEGIN, 0, "", "" },
	{ "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", SQL_BEGIN, 0, "", "" },
	{ "START TRANSACTION", SQL_BEGIN, 0, "", "" },
	{ "/* x */ start transaction read write;", SQL_BEGIN, 0, "", "" },
	{ "COMMIT", SQL_COMMIT, 0, "", "" },
	{ "commit work", SQL_COMMIT, 0, "", "" },
	{ "END", SQL_COMMIT, 0, "", "" },
	{ "end transaction", SQL_COMMIT, 0, "", "" },
	{ "COMMIT AND CHAIN", SQL_COMMIT, 0, "", "" },
	{ "ROLLBACK", SQL_ROLLBACK, 0, "", "" },
	{ "rollback transaction", SQL_ROLLBACK, 0, "", "" },
	{ "ABORT", SQL_ROLLBACK, 0, "", "" },
	{ "ROLLBACK AND CHAIN", SQL_ROLLBACK, 0, "", "" },
	{ "ROLLBACK TO SAVEPOINT a", SQL_ROLLBACK_TO, 0, "a", "" },
	{ "rollback to A", SQL_ROLLBACK_TO, 0, "a", "" },
	{ "ROLLBACK TRANSACTION TO \"Sp 1\"", SQL_ROLLBACK_TO, 0, "Sp 1", "" },
	{ "PREPARE TRANSACTION 'g1'", SQL_PREPARE_TX, 0, "", "" },
	{ "COMMIT PREPARED 'g1'", SQL_OTHER, 0, "", "" },
	{ "ROLLBACK PREPARED 'g1'", SQL_OTHER, 0, "", "" },
	{ "LISTEN chan", SQL_LISTEN, SQL_F_LISTEN, "chan", "" },
	{ "listen Chan", SQL_LISTEN, SQL_F_LISTEN, "chan", "" },
	{ "LISTEN \"Mixed Case\"", SQL_LISTEN, SQL_F_LISTEN, "Mixed Case", "" },
	{ "UNLISTEN chan", SQL_UNLISTEN, SQL_F_MAY_UNPIN, "chan", "" },
	{ "UNLISTEN *", SQL_UNLISTEN_ALL, 0, "", "" },
	{ "unlisten * ;", SQL_UNLISTEN_ALL, 0, "", "" },
	{ "NOTIFY chan", SQL_NOTIFY, 0, "chan", "" },
	{ "NOTIFY chan, 'it''s; here'", SQL_NOTIFY, 0, "chan", "it's; here" },
	{ "PREPARE p (int, text) AS SELECT $1, $2", SQL_PREPARE, 0, "p", "" },
	{ "prepare \"P1\" as select 1", SQL_PREPARE, 0, "P1", "" },
	{ "EXECUTE p (1, 'a')", SQL_EXECUTE, 0, "p", "" },
	{ "execute Q", SQL_EXECUTE, 0, "q", "" },
	{ "EXPLAIN (ANALYZE, COSTS off) EXECUTE p (1)", SQL_EXECUTE, 0, "p", "" },
	{ "create table execute as execute \"P\"", SQL_EXECUTE, 0, "P", "" },
	{ "DEALLOCATE p", SQL_DEALLOCATE, SQL_F_MAY_UNPIN, "p", "" },
	{ "DEALLOCATE PREPARE p", SQL_DEALLOCATE, SQL_F_MAY_UNPIN, "p", "" },
	{ "DEALLOCATE ALL", SQL_DEALLOCATE_ALL, 0, "", "" },
	{ "deallocate prepare all", SQL_DEALLOCATE_ALL, 0, "", "" },
	/* parsed (keyword at the start) but nothing to track */
	{ "CREATE TABLE t (a int)", SQL_OTHER, 0, "", "" },
	{ "DECLARE c CURSOR FOR SELECT 1", SQL_OTHER, 0, "", "" },
	{ "EXPLAIN SELECT 1 INTO t", SQL_OTHER, 0, "", "" },
};

static const struct sql_case flag_cases[] = {
	{ "SELECT pg_advisory_lock(1)", SQL_OTHER, SQL_F_ADVISORY_LOCK, "", "" },
	{ "select PG_ADVISORY_LOCK(1, 2)", SQL_OTHER, SQL_F_ADVISORY_LOCK, "", "" },
	{ "SELECT pg_catalog.pg_advisory_lock(1)", SQL_OTHER, SQL_F_ADVISORY_LOCK, "", "" },
	{ "SELECT \"pg_advisory_lock\"(1)", SQL_OTHER, SQL_F_ADVISORY_LOCK, "", "" },
	{ "SELECT pg_advisory_lock_shared(1)", SQL_OTHER, SQL_F_ADVISORY_LOCK, "", "" },
	{ "SELECT pg_try_advisory_lock(1)", SQL_OTHER, SQL_F_ADVISORY_LOCK, "", "" },
	{ "SELECT pg_try_advisory_lock_shared(1)", SQL_OTHER, SQL_F_ADVISORY_LOCK, "", "" },
	{ "/* lock */ SELECT 1 WHERE pg_try_advisory_lock(42)", SQL_OTHER, SQL_F_ADVISORY_LOCK, "",
	  "" },
	{ "WITH l AS (SELECT pg_advisory_lock(1)) SELECT * FROM l", SQL_OTHER, SQL_F_ADVISORY_LOCK,
	  "", "" },
	{ "SELECT * FROM (SELECT pg_advisory_lock(1)) s", SQL_OTHER, SQL_F_ADVISORY_LOCK, "", "" },
	{ "SELECT coalesce(abs(pg_advisory_lock(hashtext('k'))::int), 0)", SQL_OTHER,
	  SQL_F_ADVISORY_LOCK, "", "" },
	{ "SELECT CASE WHEN x THEN pg_advisory_lock(1) END FROM t", SQL_OTHER, SQL_F_ADVISORY_LOCK,
	  "", "" },
	{ "SELECT 1 WHERE EXISTS (SELECT pg_advisory_lock(1))", SQL_OTHER, SQL_F_ADVISORY_LOCK, "",
	  "" },
	{ "UPDATE t SET a = 1 WHERE pg_try_advisory_lock(id)", SQL_OTHER, SQL_F_ADVISORY_LOCK, "",
	  "" },
	{ "INSERT INTO t SELECT pg_advisory_lock(1)", SQL_OTHER, SQL_F_ADVISORY_LOCK, "", "" },
	{ "SELECT a FROM t JOIN u ON pg_advisory_lock(t.id) IS NOT NULL", SQL_OTHER,
	  SQL_F_ADVISORY_LOCK, "", "" },
	{ "SELECT count(*) FILTER (WHERE pg_advisory_lock(1) IS NULL) FROM t", SQL_OTHER,
	  SQL_F_ADVISORY_LOCK, "", "" },
	{ "SELECT 1 UNION SELECT 2 FROM t WHERE pg_advisory_lock(2) IS NULL", SQL_OTHER,
	  SQL_F_ADVISORY_LOCK, "", "" },
	{ "SELECT pg_advisory_xact_lock(1)", SQL_OTHER, 0, "", "" },
	{ "SELECT pg_try_advisory_xact_lock_shared(1)", SQL_OTHER, 0, "", "" },
	{ "SELECT pg_advisory_unlock(1)", SQL_OTHER, SQL_F_ADVISORY_UNLOCK, "", "" },
	{ "SELECT pg_catalog.pg_advisory_unlock_shared(1)", SQL_OTHER, SQL_F_ADVISORY_UNLOCK, "",
	  "" },
	{ "SELECT pg_advisory_unlock_all()", SQL_OTHER, SQL_F_ADVISORY_UNLOCK_ALL, "", "" },
	{ "SELECT pg_advisory_lock(1), pg_advisory_unlock(2)", SQL_OTHER,
	  SQL_F_ADVISORY_LOCK | SQL_F_ADVISORY_UNLOCK, "", "" },
	{ "SELECT pg_notify('c', 'p')", SQL_OTHER, SQL_F_NOTIFY_FUNC, "", "" },
	{ "SELECT x FROM t WHERE pg_catalog.pg_notify(c, 'p') IS NULL", SQL_OTHER,
	  SQL_F_NOTIFY_FUNC, "", "" },
	{ "PREPARE p AS SELECT pg_advisory_lock($1)", SQL_PREPARE, SQL_F_ADVISORY_LOCK, "p", "" },
	{ "EXPLAIN ANALYZE SELECT pg_advisory_lock(1)", SQL_OTHER, SQL_F_ADVISORY_LOCK, "", "" },
	/* stored, not run; or opaque text */
	{ "CREATE VIEW v AS SELECT pg_advisory_lock(1)", SQL_OTHER, 0, "", "" },
	{ "CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC SELECT pg_advisory_lock(1); END",
	  SQL_OTHER, 0, "", "" },
	/* temporary objects */
	{ "CREATE TEMP TABLE t (a int)", SQL_OTHER, SQL_F_TEMP_OBJECT, "", "" },
	{ "create temporary table t (a int) on commit drop", SQL_OTHER, SQL_F_TEMP_OBJECT, "", "" },
	{ "CREATE LOCAL TEMP TABLE IF NOT EXISTS t (a int)", SQL_OTHER, SQL_F_TEMP_OBJECT, "", "" },
	{ "CREATE TABLE pg_temp.t (a int)", SQL_OTHER, SQL_F_TEMP_OBJECT, "", "" },
	{ "CREATE TEMP VIEW v AS SELECT 1", SQL_OTHER, SQL_F_TEMP_OBJECT, "", "" },
	{ "CREATE OR REPLACE TEMPORARY VIEW v AS SELECT 1", SQL_OTHER, SQL_F_TEMP_OBJECT, "", "" },
	{ "CREATE TEMP SEQUENCE s", SQL_OTHER, SQL_F_TEMP_OBJECT, "", "" },
	{ "CREATE SEQUENCE pg_temp.s", SQL_OTHER, SQL_F_TEMP_OBJECT, "", "" },
	{ "CREATE TEMP TABLE t AS SELECT 1", SQL_OTHER, SQL_F_TEMP_OBJECT, "", "" },
	{ "CREATE TABLE pg_temp.t AS SELECT 1", SQL_OTHER, SQL_F_TEMP_OBJECT, "", "" },
	{ "SELECT 1 AS a INTO TEMP t", SQL_OTHER, SQL_F_TEMP_OBJECT, "", "" },
	{ "select * into temporary table t from u", SQL_OTHER, SQL_F_TEMP_OBJECT, "", "" },
	{ "EXPLAIN ANALYZE CREATE TEMP TABLE t AS SELECT 1", SQL_OTHER, SQL_F_TEMP_OBJECT, "", "" },
	{ "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'", SQL_OTHER,
	  SQL_F_TEMP_OBJECT, "", "" },
	{ "CREATE UNLOGGED TABLE t (a int)", SQL_OTHER, 0, "", "" },
	{ "SELECT 1 INTO t", SQL_OTHER, 0, "", "" },
	{ "SELECT * FROM pg_temp.t", SQL_OTHER, 0, "", "" },
	{ "CREATE VIEW v AS SELECT * FROM pg_temp.t", SQL_OTHER, 0, "", "" },
	/* set_config: session level unless is_local is a constant true */
	{ "SELECT set_config('a.b', '1', false)", SQL_OTHER, SQL_F_SET_CONFIG, "", "" },
	{ "select pg_catalog.SET_CONFIG('a.b', '1', 'off')", SQL_OTHER, SQL_F_SET_CONFIG, "", "" },
	{ "SELECT set_config('a.b', x, $1) FROM t", SQL_OTHER, SQL_F_SET_CONFIG, "", "" },
	{ "SELECT 1 WHERE set_config('a.b', '1', NULL) IS NOT NULL", SQL_OTHER, SQL_F_SET_CONFIG,
	  "", "" },
	{ "SELECT set_config('a.b', '1', true)", SQL_OTHER, 0, "", "" },
	{ "SELECT set_config('a.b', '1', 'on'::boolean)", SQL_OTHER, 0, "", "" },
	{ "SELECT set_config('a.b', '1', 'yes')", SQL_OTHER, 0, "", "" },
	{ "SELECT \"set_config\"('search_path', 'x', false)", SQL_OTHER, SQL_F_SET_CONFIG, "", "" },
	/* a DO block's body: what it sets for the session is not seen, so it counts as set_config */
	{ "DO $$BEGIN SET work_mem = '5MB'; END$$", SQL_OTHER, SQL_F_SET_CONFIG | SQL_F_MAY_UNPIN,
	  "", "" },
	{ "do $x$ begin perform set_config('lock_timeout', '12s', false); end $x$", SQL_OTHER,
	  SQL_F_SET_CONFIG | SQL_F_MAY_UNPIN, "", "" },
	{ "DO 'BEGIN IF true THEN reset work_mem; END IF; END'", SQL_OTHER,
	  SQL_F_SET_CONFIG | SQL_F_MAY_UNPIN, "", "" },
	{ "DO $$BEGIN EXECUTE 'SET search_path = x'; END$$", SQL_OTHER,
	  SQL_F_SET_CONFIG | SQL_F_MAY_UNPIN, "", "" },
	{ "DO LANGUAGE plpgsql $$BEGIN UPDATE t SET a = 1; END$$", SQL_OTHER, SQL_F_MAY_UNPIN, "",
	  "" },
	{ "DO $$BEGIN PERFORM offset_x FROM t; RAISE NOTICE 'asset'; END$$", SQL_OTHER,
	  SQL_F_MAY_UNPIN, "", "" },
	{ "DO $$ BEGIN PERFORM pg_advisory_lock(1); END $$", SQL_OTHER,
	  SQL_F_ADVISORY_LOCK | SQL_F_MAY_UNPIN, "", "" },
	{ "DO $$ BEGIN PERFORM pg_advisory_xact_lock(1); END $$", SQL_OTHER, SQL_F_MAY_UNPIN, "",
	  "" },
	{ "DO $$ BEGIN CREATE TEMP TABLE tt (a int); END $$", SQL_OTHER,
	  SQL_F_TEMP_OBJECT | SQL_F_MAY_UNPIN, "", "" },
	/* cursors */
	{ "DECLARE c CURSOR WITH HOLD FOR SELECT 1", SQL_OTHER, SQL_F_HOLD_CURSOR, "", "" },
	{ "declare c binary scroll cursor with hold for select * from t", SQL_OTHER,
	  SQL_F_HOLD_CURSOR, "", "" },
	{ "DECLARE c NO SCROLL CURSOR WITHOUT HOLD FOR SELECT 1", SQL_OTHER, 0, "", "" },
	{ "CLOSE ALL", SQL_OTHER, SQL_F_CLOSE_ALL, "", "" },
	{ " close  all ", SQL_OTHER, SQL_F_CLOSE_ALL, "", "" },
	{ "CLOSE c", SQL_OTHER, SQL_F_MAY_UNPIN, "", "" },
	{ "CLOSE \"all\"", SQL_OTHER, SQL_F_MAY_UNPIN, "", "" },
	/* what may end a pin by a count pgdog does not keep: its server is asked */
	{ "DROP TABLE tt", SQL_OTHER, SQL_F_MAY_UNPIN, "", "" },
	{ "  drop function if exists pg_temp.f()", SQL_OTHER, SQL_F_MAY_UNPIN, "", "" },
	{ "DROP OWNED BY CURRENT_USER", SQL_OTHER, SQL_F_MAY_UNPIN, "", "" },
	{ "DO $$ BEGIN EXECUTE 'LISTEN x'; END $$", SQL_OTHER, SQL_F_LISTEN | SQL_F_MAY_UNPIN, "",
	  "" },
	{ "DISCARD PLANS", SQL_DISCARD_OTHER, 0, "", "" },
	{ "SELECT pg_advisory_unlock(1)", SQL_OTHER, SQL_F_ADVISORY_UNLOCK, "", "" },
};

#define CASE_TEST(tname, table)           \
	START_TEST(tname)                 \
	{                                 \
		check_case(&(table)[_i]); \
	}                                 \
	END_TEST

CASE_TEST(test_sql_set_kinds, set_cases)
CASE_TEST(test_sql_session_role, role_cases)
CASE_TEST(test_sql_verbs, verb_cases)
CASE_TEST(test_sql_flags, flag_cases)

/* a statement starting with a keyword is found after any comment or space */
/* PREPARE / EXECUTE / DEALLOCATE: where each statement and its name sit in the text */
START_TEST(test_sql_name_spans)
{
	static const struct {
		const char *sql;
		size_t stmt;      /* which statement */
		const char *name; /* its name token as written */
		const char *text; /* the statement's text (loc, loc_len) */
	} cases[] = {
		{ "PREPARE p (int) AS SELECT $1", 0, "p", "PREPARE p (int) AS SELECT $1" },
		{ "  prepare \"Mixed Name\" as select 1;", 0, "\"Mixed Name\"",
		  "  prepare \"Mixed Name\" as select 1" },
		{ "SELECT 1; EXECUTE q(1, 'a'); SELECT 2", 1, "q", " EXECUTE q(1, 'a')" },
		{ "/* c */ EXECUTE /* x */ q", 0, "q", "/* c */ EXECUTE /* x */ q" },
		{ "DEALLOCATE PREPARE d", 0, "d", "DEALLOCATE PREPARE d" },
		{ "DEALLOCATE d2;", 0, "d2", "DEALLOCATE d2" },
		{ "select 1;deallocate \"x\"", 1, "\"x\"", "deallocate \"x\"" },
		{ "EXPLAIN ANALYZE EXECUTE Ex(1)", 0, "Ex", "EXPLAIN ANALYZE EXECUTE Ex(1)" },
		/* a table called execute, and a quoted name with a quote in it */
		{ "CREATE TABLE execute AS EXECUTE \"a\"\"b\"", 0, "\"a\"\"b\"",
		  "CREATE TABLE execute AS EXECUTE \"a\"\"b\"" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct sql_stmt *st;

		classify(cases[i].sql);
		ck_assert_msg(r.stmts_cnt > cases[i].stmt, "%s", cases[i].sql);
		st = &r.stmts[cases[i].stmt];
		ck_assert_msg(st->name_len == strlen(cases[i].name) &&
				      memcmp(cases[i].sql + st->name_off, cases[i].name,
					     st->name_len) == 0,
			      "name at %zu+%zu in %s", st->name_off, st->name_len, cases[i].sql);
		ck_assert_msg(st->loc_len == strlen(cases[i].text) &&
				      memcmp(cases[i].sql + st->loc, cases[i].text, st->loc_len) ==
					      0,
			      "statement at %zu+%zu in %s", st->loc, st->loc_len, cases[i].sql);
	}
	/* the cached result carries the same positions */
	classify("SELECT 1; EXECUTE q(1, 'a'); SELECT 2");
	ck_assert_int_eq(r.stmts[1].name_off, 18);
	/* DEALLOCATE ALL names nothing */
	classify("DEALLOCATE ALL");
	ck_assert_int_eq(r.stmts[0].name_len, 0);
}
END_TEST

START_TEST(test_sql_set_after_comments)
{
	static const char *const texts[] = {
		"/* a /* nested */ comment */ SET x = 1",
		"-- one\n-- two\n  SET x = 1",
		"\n\t\r\f SET x = 1",
		"/**/SET x = 1",
		"SELECT 1; /* c */ SET x = 1",
	};

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		classify(texts[i]);
		ck_assert_msg(r.is_parsed && !r.is_error, "%s", texts[i]);
		ck_assert_int_eq(r.stmts[r.stmts_cnt - 1].kind, SQL_SET);
		ck_assert_str_eq(r.stmts[r.stmts_cnt - 1].name, "x");
		ck_assert_str_eq(r.stmts[r.stmts_cnt - 1].value, "1");
	}
}
END_TEST

/* keywords inside strings, identifiers and comments are not statements */
START_TEST(test_sql_set_in_string_is_not_set)
{
	static const char *const texts[] = {
		"SELECT 'SET x=1'",
		"SELECT 'a'';SET x=1'",
		"SELECT E'\\'; SET x=1; '",
		"SELECT $$; SET x=1; $$",
		"SELECT $tag$; SET x=1; $not$ ; $tag$",
		"SELECT \"; SET x=1\" FROM t",
		"SELECT 1 /* ; SET x=1 */",
		"SELECT 1 -- ; SET x=1",
		"SELECT 1 /* /* ; */ SET x=1 */",
		"UPDATE t SET x = 1",
		"SELECT a$b FROM t",
	};
	struct sql_cache_stats before, after;

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		sql_cache_stats(&before);
		classify(texts[i]);
		sql_cache_stats(&after);
		ck_assert_msg(!r.is_parsed, "parsed: %s", texts[i]);
		ck_assert_uint_eq(r.stmts_cnt, 0);
		ck_assert_uint_eq(after.prefiltered, before.prefiltered + 1);
		ck_assert_uint_eq(after.parses, before.parses);
	}
}
END_TEST

/* sql_classify_quick() then sql_classify_lexed(), as a worker calls them. */
static void
classify_scs(const char *sql, bool is_std)
{
	if (!sql_classify_quick(sql, strlen(sql), &r))
		ck_assert_int_eq(sql_classify_lexed(sql, strlen(sql), is_std, &r), 0);
}

/*
 * standard_conforming_strings = off: a backslash escapes the next byte in a
 * plain '' string, so a statement after "\''" is real (with it on, the same
 * bytes are one string); E'' escapes in both modes, B'' and X'' in neither.
 */
START_TEST(test_sql_scs_off_hidden_statement)
{
	static const struct {
		const char *sql;
		size_t on_cnt, off_cnt; /* statements seen with it on, off (0: none tracked) */
		enum sql_kind off_kind; /* the last statement's kind, off */
	} cases[] = {
		/* on: 'a\''; SET ...; --' is one string; off: 'a\'' ends at the third quote */
		{ "SELECT 'a\\''; SET search_path = evil; --'", 0, 2, SQL_SET },
		{ "SELECT 'a\\''; PREPARE p AS SELECT 1; --'", 0, 2, SQL_PREPARE },
		{ "SELECT 'a\\''; LISTEN ch; --'", 0, 2, SQL_LISTEN },
		{ "SELECT N'a\\''; SET search_path = evil; --'", 0, 2, SQL_SET },
		{ "SELECT 'x\\\\'; SET search_path = evil", 2, 2, SQL_SET },
		/* off: '\'; SET ...; ' is one string (on: the last quote is unterminated) */
		{ "SELECT 'a\\'; SET search_path = evil; '", 0, 0, SQL_OTHER },
		/* E'' strings escape either way */
		{ "SELECT E'a\\''; SET search_path = evil; --'", 2, 2, SQL_SET },
		/* bit strings take no backslash escapes */
		{ "SELECT B'1\\'; SET search_path = evil", 2, 2, SQL_SET },
		{ "SELECT X'1\\'; SET search_path = evil", 2, 2, SQL_SET },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		classify_scs(cases[i].sql, true);
		ck_assert_msg(r.stmts_cnt == cases[i].on_cnt, "on: %zu statements: %s", r.stmts_cnt,
			      cases[i].sql);
		classify_scs(cases[i].sql, false);
		if (cases[i].off_cnt == 0) {
			/* one SELECT of a string: the prefilter sees nothing to track */
			ck_assert_msg(!r.is_parsed, "off: parsed: %s", cases[i].sql);
			continue;
		}
		ck_assert_msg(r.is_parsed && !r.is_error, "off: not parsed: %s", cases[i].sql);
		ck_assert_msg(r.stmts_cnt == cases[i].off_cnt, "off: %zu statements: %s",
			      r.stmts_cnt, cases[i].sql);
		ck_assert_msg(r.stmts[r.stmts_cnt - 1].kind == cases[i].off_kind,
			      "off: kind %d: %s", (int)r.stmts[r.stmts_cnt - 1].kind, cases[i].sql);
		/* the cache keeps both answers apart */
		classify_scs(cases[i].sql, true);
		ck_assert_msg(r.stmts_cnt == cases[i].on_cnt, "on again: %zu statements: %s",
			      r.stmts_cnt, cases[i].sql);
	}
	/* the SET's value and the PREPARE's name are cut with the same lexing */
	classify_scs("SELECT 'a\\''; SET application_name = 'x\\'y'", false);
	ck_assert_uint_eq(r.stmts_cnt, 2);
	ck_assert_str_eq(r.stmts[1].value, "'x\\'y'");
	classify_scs("SELECT 'a\\''; EXECUTE \"q\"('\\'')", false);
	ck_assert_uint_eq(r.stmts_cnt, 2);
	ck_assert_int_eq(r.stmts[1].kind, SQL_EXECUTE);
	ck_assert_str_eq(r.stmts[1].name, "q");
	ck_assert_uint_eq(r.stmts[1].name_len, 3);
	/* the quick reject does not look at quotes: plain queries stay unparsed */
	classify_scs("SELECT 'a\\'' FROM t WHERE x = 'b'", false);
	ck_assert(!r.is_parsed);
}
END_TEST

/* pgbench's statements and other plain DML never reach the parser */
START_TEST(test_sql_prefilter_negative)
{
	static const char *const texts[] = {
		PGBENCH_SELECT,
		PGBENCH_UPDATE,
		PGBENCH_INSERT,
		"UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2",
		"select * from t where a = 'into' and b = $1",
		"DELETE FROM t WHERE id = 1",
		"INSERT INTO t VALUES (1); UPDATE t SET a = 2",
		"VACUUM t",
		"SHOW search_path",
		"SAVEPOINT a",
		"RELEASE SAVEPOINT a",
		"SELECT 'pg_advisory_lock(1)'",
		"",
		"   ",
		"/* only a comment */",
	};
	struct sql_cache_stats before, after;

	sql_cache_stats(&before);
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		classify(texts[i]);
		ck_assert_msg(!r.is_parsed, "parsed: %s", texts[i]);
		ck_assert_uint_eq(r.stmts_cnt, 0);
		ck_assert_uint_eq(r.flags, 0);
		ck_assert(!r.is_error);
	}
	sql_cache_stats(&after);
	ck_assert_uint_eq(after.prefiltered - before.prefiltered, sizeof(texts) / sizeof(texts[0]));
	ck_assert_uint_eq(after.parses, before.parses);
	ck_assert_uint_eq(after.hits + after.misses, before.hits + before.misses);
}
END_TEST

/*
 * sql_classify_all() classifies what the prefilter skips: savepoints (pub/sub
 * follows them while a transaction holds a LISTEN pgdog serves).
 */
static const struct sql_case all_cases[] = {
	{ "SAVEPOINT s1", SQL_SAVEPOINT, 0, "s1", "" },
	{ "  savepoint \"S2\";", SQL_SAVEPOINT, 0, "S2", "" },
	{ "RELEASE SAVEPOINT s1", SQL_RELEASE, 0, "s1", "" },
	{ "release S1", SQL_RELEASE, 0, "s1", "" },
	{ "rollback to savepoint s1", SQL_ROLLBACK_TO, 0, "s1", "" },
	{ "PREPARE TRANSACTION 'x'", SQL_PREPARE_TX, 0, "", "" },
	{ "VACUUM t", SQL_OTHER, 0, "", "" },
};

START_TEST(test_sql_classify_all)
{
	const struct sql_case *c = &all_cases[_i];

	/* the prefilter skips SAVEPOINT and RELEASE */
	if (c->kind == SQL_SAVEPOINT || c->kind == SQL_RELEASE) {
		classify(c->sql);
		ck_assert_msg(!r.is_parsed, "parsed without _all: %s", c->sql);
	}
	ck_assert_int_eq(sql_classify_all(c->sql, strlen(c->sql), &r), 0);
	ck_assert_msg(r.is_parsed && r.stmts_cnt == 1, "%s: parsed %d, %zu statements", c->sql,
		      r.is_parsed, r.stmts_cnt);
	ck_assert_int_eq(r.stmts[0].kind, c->kind);
	ck_assert_str_eq(r.stmts[0].name, c->name);
	/* the plain entry point still skips it afterwards (the cache is not consulted first) */
	if (c->kind == SQL_SAVEPOINT) {
		classify(c->sql);
		ck_assert(!r.is_parsed);
	}
}
END_TEST

/* words the prefilter must not skip, wherever they are */
START_TEST(test_sql_prefilter_positive)
{
	static const char *const texts[] = {
		"SELECT x FROM t WHERE pg_advisory_lock(1) IS NOT NULL",
		"SELECT \"pg_advisory_lock\"(1)",
		"SELECT PG_NOTIFY('a', 'b')",
		"SELECT 1 INTO t",
		"(SELECT 1 INTO t)",
		"WITH a AS (SELECT 1) SELECT * INTO t FROM a",
		"EXPLAIN ANALYZE CREATE TEMP TABLE t AS SELECT 1",
		"SELECT 1; set x = 1",
	};
	struct sql_cache_stats before, after;

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		sql_cache_stats(&before);
		classify(texts[i]);
		sql_cache_stats(&after);
		ck_assert_msg(r.is_parsed, "not parsed: %s", texts[i]);
		ck_assert_uint_eq(after.prefiltered, before.prefiltered);
	}
}
END_TEST

START_TEST(test_sql_multi_statement)
{
	const char *sql = "BEGIN; SET LOCAL work_mem = '1MB'; SELECT pg_advisory_lock(1);\n"
			  "set application_name = 'a;b' ; LISTEN c; COMMIT;";

	classify(sql);
	ck_assert(r.is_parsed);
	ck_assert(!r.is_error);
	ck_assert(!r.has_more);
	ck_assert_uint_eq(r.stmts_cnt, 6);
	ck_assert_int_eq(r.stmts[0].kind, SQL_BEGIN);
	ck_assert_int_eq(r.stmts[1].kind, SQL_SET_LOCAL);
	ck_assert_str_eq(r.stmts[1].name, "work_mem");
	ck_assert_str_eq(r.stmts[1].value, "'1MB'");
	ck_assert_int_eq(r.stmts[2].kind, SQL_OTHER);
	ck_assert_uint_eq(r.stmts[2].flags, SQL_F_ADVISORY_LOCK);
	ck_assert_int_eq(r.stmts[3].kind, SQL_SET);
	ck_assert_str_eq(r.stmts[3].name, "application_name");
	ck_assert_str_eq(r.stmts[3].value, "'a;b'");
	ck_assert_int_eq(r.stmts[4].kind, SQL_LISTEN);
	ck_assert_str_eq(r.stmts[4].name, "c");
	ck_assert_int_eq(r.stmts[5].kind, SQL_COMMIT);
	ck_assert_uint_eq(r.stmts[4].flags, SQL_F_LISTEN);
	ck_assert_uint_eq(r.flags, SQL_F_ADVISORY_LOCK | SQL_F_LISTEN);
	for (size_t i = 0; i < r.stmts_cnt; i++) {
		if (i != 2 && i != 4)
			ck_assert_uint_eq(r.stmts[i].flags, 0);
	}
}
END_TEST

/* values of adjacent SETs stop at their own statement */
START_TEST(test_sql_multi_set_values)
{
	classify("SET a = 1;SET b TO 'x' /* c */;\nSET c = \"y\"--z\n;SET d TO e");
	ck_assert_uint_eq(r.stmts_cnt, 4);
	ck_assert_str_eq(r.stmts[0].value, "1");
	ck_assert_str_eq(r.stmts[1].value, "'x'");
	ck_assert_str_eq(r.stmts[2].value, "\"y\"");
	ck_assert_str_eq(r.stmts[3].value, "e");
	ck_assert_str_eq(r.stmts[3].name, "d");
}
END_TEST

START_TEST(test_sql_stmts_max)
{
	char sql[2048] = "";
	size_t n = 0;

	for (int i = 0; i < SQL_STMTS_MAX + 3; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "SET v%d = %d; ", i, i);
	snprintf(sql + n, sizeof(sql) - n, "SELECT pg_advisory_unlock_all()");
	classify(sql);
	ck_assert(r.is_parsed);
	ck_assert(r.has_more);
	ck_assert_uint_eq(r.stmts_cnt, SQL_STMTS_MAX);
	ck_assert_str_eq(r.stmts[SQL_STMTS_MAX - 1].name, "v15");
	ck_assert_str_eq(r.stmts[SQL_STMTS_MAX - 1].value, "15");
	/* flags of statements beyond the described ones still count */
	ck_assert_uint_eq(r.flags, SQL_F_ADVISORY_UNLOCK_ALL);

	/* exactly SQL_STMTS_MAX: no more */
	n = 0;
	for (int i = 0; i < SQL_STMTS_MAX; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "RESET v%d;", i);
	classify(sql);
	ck_assert(!r.has_more);
	ck_assert_uint_eq(r.stmts_cnt, SQL_STMTS_MAX);
}
END_TEST

START_TEST(test_sql_parse_error)
{
	static const char *const texts[] = {
		"SET",
		"SET x TO",
		"BEGIN; SELEC 1",
		"SET x = 'unterminated",
		"LISTEN",
		"CREATE TEMP TABLE (",
		"SET x = 1; SELECT (",
	};

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		classify(texts[i]);
		ck_assert_msg(r.is_parsed && r.is_error, "%s", texts[i]);
		ck_assert_uint_eq(r.stmts_cnt, 0);
		/* cached as an error too */
		classify(texts[i]);
		ck_assert(r.is_error);
	}
}
END_TEST

START_TEST(test_sql_truncation)
{
	char sql[2048], want[512];

	memset(want, 'v', 300);
	want[300] = '\0';
	snprintf(sql, sizeof(sql), "SET application_name = '%s'", want);
	classify(sql);
	ck_assert_uint_eq(r.stmts_cnt, 1);
	ck_assert_int_eq(r.stmts[0].kind, SQL_SET);
	ck_assert(r.stmts[0].is_truncated);
	ck_assert_uint_eq(strlen(r.stmts[0].value), SQL_VALUE_MAX - 1);
	ck_assert_str_eq(r.stmts[0].name, "application_name");

	/* a value of exactly SQL_VALUE_MAX - 1 bytes fits */
	memset(want, 'v', SQL_VALUE_MAX - 1);
	want[SQL_VALUE_MAX - 1] = '\0';
	snprintf(sql, sizeof(sql), "SET application_name = %s", want);
	classify(sql);
	ck_assert(!r.stmts[0].is_truncated);
	ck_assert_str_eq(r.stmts[0].value, want);

	/* a two-part name longer than SQL_NAME_MAX */
	memset(want, 'n', 60);
	want[60] = '\0';
	snprintf(sql, sizeof(sql), "SET %s.%s = 1", want, want);
	classify(sql);
	ck_assert(r.stmts[0].is_truncated);
	ck_assert_uint_eq(strlen(r.stmts[0].name), SQL_NAME_MAX - 1);

	/* a NOTIFY payload longer than SQL_VALUE_MAX */
	snprintf(sql, sizeof(sql), "NOTIFY c, '%0300d'", 7);
	classify(sql);
	ck_assert_int_eq(r.stmts[0].kind, SQL_NOTIFY);
	ck_assert(r.stmts[0].is_truncated);

	/* several transaction modes at once set several parameters: not replayed */
	classify(
		"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY");
	ck_assert_int_eq(r.stmts[0].kind, SQL_SET);
	ck_assert(r.stmts[0].is_truncated);

	/* SET x FROM CURRENT keeps a value pgdog does not know */
	classify("SET work_mem FROM CURRENT");
	ck_assert_int_eq(r.stmts[0].kind, SQL_SET);
	ck_assert_str_eq(r.stmts[0].name, "work_mem");
	ck_assert(r.stmts[0].is_truncated);

	/* SET TIME ZONE INTERVAL cannot be replayed as SET timezone TO ... */
	classify("SET TIME ZONE INTERVAL '+02:00' HOUR TO MINUTE");
	ck_assert_int_eq(r.stmts[0].kind, SQL_SET);
	ck_assert_str_eq(r.stmts[0].name, "timezone");
	ck_assert(r.stmts[0].is_truncated);

	/* SET seed seeds random() once: replayed, it would seed it again */
	classify("SET seed = 0.5");
	ck_assert_int_eq(r.stmts[0].kind, SQL_SET);
	ck_assert_str_eq(r.stmts[0].name, "seed");
	ck_assert(r.stmts[0].is_truncated);
	classify("SET LOCAL seed = 0.5");
	ck_assert(!r.stmts[0].is_truncated);
}
END_TEST

START_TEST(test_sql_cache_hit)
{
	struct sql_cache_stats a, b;
	struct sql_result first;

	sql_cache_cleanup();
	classify("SET search_path TO app, public");
	first = r;
	sql_cache_stats(&a);
	ck_assert_uint_eq(a.misses, 1);
	ck_assert_uint_eq(a.parses, 1);
	ck_assert_uint_eq(a.hits, 0);
	ck_assert_uint_eq(a.entries, 1);
	memset(&r, 0xa5, sizeof(r));
	classify("SET search_path TO app, public");
	sql_cache_stats(&b);
	ck_assert_uint_eq(b.hits, 1);
	ck_assert_uint_eq(b.parses, 1);
	ck_assert_uint_eq(b.entries, 1);
	ck_assert(r.is_parsed);
	ck_assert(!r.is_error && !r.has_more);
	ck_assert_uint_eq(r.stmts_cnt, 1);
	ck_assert_uint_eq(r.flags, first.flags);
	ck_assert_int_eq(r.stmts[0].kind, SQL_SET);
	ck_assert_str_eq(r.stmts[0].value, "app, public");
	ck_assert_str_eq(r.stmts[0].name, "search_path");
	/* a different text (one more space) is a different entry */
	classify("SET search_path TO app,  public");
	sql_cache_stats(&b);
	ck_assert_uint_eq(b.parses, 2);
	ck_assert_uint_eq(b.entries, 2);
	ck_assert_str_eq(r.stmts[0].value, "app,  public");
	/* the same bytes with a trailing NUL past the first are the same text */
	ck_assert_int_eq(sql_classify("SET search_path TO app, public\0junk", 35, &r), 0);
	sql_cache_stats(&b);
	ck_assert_uint_eq(b.hits, 2);
	ck_assert_str_eq(r.stmts[0].value, "app, public");
}
END_TEST

/* sql_cache_top: the cached texts with the most hits first, at most max of them */
START_TEST(test_sql_cache_top)
{
	struct sql_cache_query top[2];
	size_t n;

	sql_cache_cleanup();
	ck_assert_uint_eq(sql_cache_top(top, 2), 0);
	classify("SET a = 1"); /* parsed: 0 hits */
	for (int i = 0; i < 3; i++)
		classify("SET b = 2"); /* 2 hits */
	for (int i = 0; i < 2; i++)
		classify("SET c = 3"); /* 1 hit */
	n = sql_cache_top(top, 2);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(top[0].hits, 2);
	ck_assert_uint_eq(top[0].text_len, 9);
	ck_assert(memcmp(top[0].text, "SET b = 2", 9) == 0);
	ck_assert_uint_eq(top[1].hits, 1);
	ck_assert(memcmp(top[1].text, "SET c = 3", 9) == 0);
	ck_assert(top[0].hash != top[1].hash);
	/* texts classified without parsing are not cached, so never listed */
	classify("SELECT 1");
	classify("SELECT 1");
	ck_assert_uint_eq(sql_cache_top(top, 2), 2);
	ck_assert_uint_eq(top[0].hits, 2);
	sql_cache_cleanup();
}
END_TEST

START_TEST(test_sql_cache_eviction)
{
	struct sql_cache_stats st;
	char sql[64];

	sql_cache_cleanup();
	for (int i = 0; i < 1500; i++) {
		snprintf(sql, sizeof(sql), "SET v = %d", i);
		classify(sql);
		ck_assert_str_eq(r.stmts[0].value, sql + 8);
		if (i == 0) {
			/* keep the first one recently used */
			continue;
		}
		classify("SET v = 0");
	}
	sql_cache_stats(&st);
	ck_assert_uint_le(st.entries, 1024);
	ck_assert_uint_ge(st.entries, 512);
	ck_assert_uint_eq(st.parses, 1500);
	ck_assert_uint_eq(st.hits, 1499);
	/* the oldest unused one was evicted: parsed again */
	classify("SET v = 1");
	sql_cache_stats(&st);
	ck_assert_uint_eq(st.parses, 1501);
	/* texts over 64 KiB are classified, not cached */
	{
		size_t n = 70000;
		char *big = malloc(n + 1);
		size_t entries = st.entries;

		ck_assert_ptr_nonnull(big);
		memset(big, ' ', n);
		memcpy(big, "SET v = 1", 9);
		big[n] = '\0';
		classify(big);
		ck_assert_int_eq(r.stmts[0].kind, SQL_SET);
		ck_assert_str_eq(r.stmts[0].value, "1");
		classify(big);
		sql_cache_stats(&st);
		ck_assert_uint_eq(st.entries, entries);
		ck_assert_uint_eq(st.parses, 1503);
		free(big);
	}
	sql_cache_cleanup();
	sql_cache_stats(&st);
	ck_assert_uint_eq(st.entries, 0);
	ck_assert_uint_eq(st.parses, 0);
	/* parsing still works after cleanup released libpg_query's memory */
	classify("DISCARD ALL");
	ck_assert_int_eq(r.stmts[0].kind, SQL_DISCARD_ALL);
}
END_TEST

/* text after a NUL is ignored; NULL and empty texts are fine */
START_TEST(test_sql_nul_inside)
{
	ck_assert_int_eq(sql_classify("SET x = 1\0; SET y = 2", 21, &r), 0);
	ck_assert_uint_eq(r.stmts_cnt, 1);
	ck_assert_str_eq(r.stmts[0].value, "1");
	ck_assert_int_eq(sql_classify("SELECT 1\0; SET y = 2", 20, &r), 0);
	ck_assert(!r.is_parsed);
	ck_assert_int_eq(sql_classify("\0SET x = 1", 10, &r), 0);
	ck_assert(!r.is_parsed);
	ck_assert_int_eq(sql_classify(NULL, 0, &r), 0);
	ck_assert(!r.is_parsed);
	ck_assert_int_eq(sql_classify("SET", 0, &r), 0);
	ck_assert(!r.is_parsed);
}
END_TEST

/* every prefix, from a buffer of exactly that size: no read past len */
START_TEST(test_sql_every_prefix)
{
	static const char *const texts[] = {
		"/* a /* b */ */ SET search_path TO \"$user\", public; SELECT pg_advisory_lock(1) -- x",
		"SELECT $q$ SET $q$, E'\\'', 'a''b', \"i\"\"d\" INTO TEMP t",
		"NOTIFY c, 'p'; DECLARE x CURSOR WITH HOLD FOR SELECT 1",
	};

	for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
		size_t n = strlen(texts[t]);

		for (size_t i = 0; i <= n; i++) {
			char *buf = malloc(i ? i : 1);

			ck_assert_ptr_nonnull(buf);
			memcpy(buf, texts[t], i);
			ck_assert_int_eq(sql_classify(buf, i, &r), 0);
			ck_assert_uint_le(r.stmts_cnt, SQL_STMTS_MAX);
			free(buf);
		}
	}
}
END_TEST

/* nesting deeper than any sane query neither crashes nor hangs */
/* sql_starts_with: the first word after white space and (nested) comments, whole and in any case. */
START_TEST(test_sql_starts_with)
{
	static const char *const yes[] = { "FETCH 2 FROM c", " /* c /* nested */ */\tfetch c",
					   "-- x\nFetch ALL IN c", "fetch" };
	static const char *const no[] = {
		"fetched", "SELECT 1; FETCH c", "\"fetch\" c", "/* FETCH */ SELECT 1",
		"",        "-- fetch",          "fetch_x"
	};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		ck_assert_msg(sql_starts_with(yes[i], strlen(yes[i]), "fetch"), "%s", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		ck_assert_msg(!sql_starts_with(no[i], strlen(no[i]), "fetch"), "%s", no[i]);
	ck_assert(sql_starts_with("execute q(1)", 12, "execute"));
}
END_TEST

START_TEST(test_sql_deep_nesting)
{
	size_t depth = 5000;
	char *sql = malloc(3 * depth + 64);
	size_t n = 0;

	ck_assert_ptr_nonnull(sql);
	n += (size_t)sprintf(sql, "SELECT ");
	for (size_t i = 0; i < depth; i++)
		sql[n++] = '(';
	n += (size_t)sprintf(sql + n, "pg_advisory_lock(1)");
	for (size_t i = 0; i < depth; i++)
		sql[n++] = ')';
	sql[n] = '\0';
	classify(sql);
	ck_assert(r.is_parsed);
	if (!r.is_error)
		ck_assert_uint_eq(r.flags, SQL_F_ADVISORY_LOCK);

	n = (size_t)sprintf(sql, "SELECT ");
	for (size_t i = 0; i < depth; i++)
		n += (size_t)sprintf(sql + n, "- ");
	n += (size_t)sprintf(sql + n, "1 INTO t");
	classify(sql);
	ck_assert(r.is_parsed);

	/* a long left-deep operator chain is refused before libpg_query recurses on it */
	sql = realloc(sql, 3 * 30000 + 64);
	ck_assert_ptr_nonnull(sql);
	n = (size_t)sprintf(sql, "SELECT pg_advisory_lock(1)");
	for (size_t i = 0; i < 30000; i++)
		n += (size_t)sprintf(sql + n, "+1");
	classify(sql);
	ck_assert(r.is_parsed && r.is_error);
	ck_assert_uint_eq(r.stmts_cnt, 0);
	/* a shorter one is inspected */
	n = (size_t)sprintf(sql, "SELECT pg_advisory_lock(1)");
	for (size_t i = 0; i < 1000; i++)
		n += (size_t)sprintf(sql + n, " + 1");
	classify(sql);
	ck_assert(r.is_parsed && !r.is_error);
	ck_assert_uint_eq(r.flags, SQL_F_ADVISORY_LOCK);
	free(sql);
}
END_TEST

/*
 * CPU time of this thread, not wall time: the bounds below must hold on a
 * loaded machine (CI runs the suite beside PostgreSQL clusters), where wall
 * time measures the scheduler rather than the classifier.
 */
static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* sanitizers make every memory access several times dearer */
#if defined(__SANITIZE_ADDRESS__)
#define CHECK_SQL_SLOWDOWN 5.0
#else
#define CHECK_SQL_SLOWDOWN 1.0
#endif

/* sanity bounds, loose enough for sanitizer builds */
/* the quick reject in front of the lexer never hides what matters */
START_TEST(test_sql_quick_reject_keeps_tracked)
{
	static const struct {
		const char *sql;
		unsigned flag;
		enum sql_kind kind;
	} cases[] = {
		{ "SELECT pg_advisory_lock(1)", SQL_F_ADVISORY_LOCK, SQL_OTHER },
		{ "select 1; set search_path = x", 0, SQL_SET },
		{ "SELECT 1;SET x.y = 1;", 0, SQL_SET },
		{ "SELECT * INTO TEMP t FROM pg_class", SQL_F_TEMP_OBJECT, SQL_OTHER },
		{ "select * into t2 from pg_class where false", 0, SQL_OTHER },
		{ "SELECT pg_notify('c', 'x')", SQL_F_NOTIFY_FUNC, SQL_OTHER },
		{ "  UPDATE t SET x = pg_try_advisory_lock(2)", SQL_F_ADVISORY_LOCK, SQL_OTHER },
		{ "INSERT INTO t SELECT pg_advisory_unlock_all()", SQL_F_ADVISORY_UNLOCK_ALL,
		  SQL_OTHER },
	};
	struct sql_result res;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(sql_classify(cases[i].sql, strlen(cases[i].sql), &res), 0);
		ck_assert_msg(res.is_parsed, "%s: not parsed", cases[i].sql);
		ck_assert_msg((res.flags & cases[i].flag) == cases[i].flag, "%s: flags 0x%x",
			      cases[i].sql, res.flags);
		if (cases[i].kind != SQL_OTHER)
			ck_assert_int_eq(res.stmts[res.stmts_cnt - 1].kind, cases[i].kind);
	}
	/* and plain statements are not parsed */
	ck_assert_int_eq(
		sql_classify("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 7;",
			     67, &res),
		0);
	ck_assert(!res.is_parsed);
	ck_assert_int_eq(sql_classify("INSERT INTO pgbench_history VALUES (1, 2)", 41, &res), 0);
	ck_assert(!res.is_parsed);
}
END_TEST

/*
 * The quick reject scans 16 bytes at a time: a tracked word, a ';' or a NUL
 * must be caught at every offset, inside a block, across two blocks and in
 * the byte-wise tail, and an untracked look-alike ("co" in accounts, "in"
 * after INSERT) must not stop the scan.
 */
START_TEST(test_sql_quick_reject_every_offset)
{
	static const struct {
		const char *tail;
		bool is_parsed;
	} cases[] = {
		{ "pg_advisory_lock(1)", true },
		{ "pg_notify('c', 'x')", true },
		{ "* INTO t2 FROM u", true },
		{ "1 FROM pg_temp.t", true },
		{ "set_config('a', 'b', false)", true },
		{ "1; SET x = 1", true },
		{ "1 FROM pgbench_accounts", false },
		{ "1 FROM notes, coins, intervals", false },
	};
	char sql[256], pad[64];
	struct sql_result res;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		for (size_t k = 0; k < 40; k++) {
			int n;

			memset(pad, 'x', k);
			pad[k] = '\0';
			n = snprintf(sql, sizeof(sql), "SELECT %s %s", pad, cases[c].tail);
			ck_assert_int_eq(sql_classify(sql, (size_t)n, &res), 0);
			ck_assert_msg(res.is_parsed == cases[c].is_parsed, "%s: is_parsed %d", sql,
				      res.is_parsed);
		}
	}
	/* INSERT ... INTO is not tracked; INSERT ... pg_notify is */
	for (size_t k = 0; k < 40; k++) {
		int n;

		memset(pad, 'x', k);
		pad[k] = '\0';
		n = snprintf(sql, sizeof(sql), "INSERT INTO t%s SELECT 1 FROM into_t", pad);
		ck_assert_int_eq(sql_classify(sql, (size_t)n, &res), 0);
		ck_assert(!res.is_parsed);
		n = snprintf(sql, sizeof(sql), "INSERT INTO t%s SELECT pg_notify('c', 'p')", pad);
		ck_assert_int_eq(sql_classify(sql, (size_t)n, &res), 0);
		ck_assert(res.is_parsed);
	}
	/* a NUL at any offset cuts the text: what follows it is not seen */
	for (size_t k = 8; k < 60; k++) {
		size_t n = 80;

		memset(sql, ' ', n);
		memcpy(sql, "SELECT 1", 8);
		memcpy(sql + 70, "SET y = 2", 9);
		sql[k] = '\0';
		ck_assert_int_eq(sql_classify(sql, n, &res), 0);
		ck_assert_msg(!res.is_parsed, "NUL at %zu: parsed", k);
		/* the same text without the NUL has a second statement after a ';' */
		sql[k] = ';';
		ck_assert_int_eq(sql_classify(sql, n, &res), 0);
		ck_assert_msg(res.is_parsed && res.stmts_cnt == 2, "';' at %zu: not parsed", k);
	}
}
END_TEST

START_TEST(test_sql_timing)
{
	const int loops = 100000;
	const char *set = "SET search_path TO app, public";
	double t0, t_select, t_hit, t_parse;
	int parses = 200, rc = 0;
	char sql[64];

	t0 = now_ms();
	for (int i = 0; i < loops; i++)
		rc |= sql_classify(PGBENCH_SELECT, sizeof(PGBENCH_SELECT) - 1, &r);
	t_select = now_ms() - t0;
	ck_assert(!r.is_parsed);

	classify(set);
	t0 = now_ms();
	for (int i = 0; i < loops; i++)
		rc |= sql_classify(set, strlen(set), &r);
	t_hit = now_ms() - t0;
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(r.stmts[0].kind, SQL_SET);

	t0 = now_ms();
	for (int i = 0; i < parses; i++) {
		snprintf(sql, sizeof(sql), "SET application_name = 'a%d'", i);
		rc |= sql_classify(sql, strlen(sql), &r);
	}
	ck_assert_int_eq(rc, 0);
	t_parse = now_ms() - t0;
	fprintf(stderr,
		"check_sql timing: prefiltered SELECT %.0f ns, cache hit %.0f ns, parse %.1f us\n",
		t_select * 1e6 / loops, t_hit * 1e6 / loops, t_parse * 1e3 / parses);
	ck_assert_msg(t_select < 200.0 * CHECK_SQL_SLOWDOWN,
		      "100k prefiltered SELECTs took %.1f ms", t_select);
	ck_assert_msg(t_hit < 200.0 * CHECK_SQL_SLOWDOWN, "100k cache hits took %.1f ms", t_hit);
}
END_TEST

static void
teardown(void)
{
	sql_cache_cleanup();
}

static Suite *
sql_suite(void)
{
	Suite *s = suite_create("sql");
	TCase *tc;

	tc = tcase_create("kinds");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_loop_test(tc, test_sql_set_kinds, 0,
			    (int)(sizeof(set_cases) / sizeof(set_cases[0])));
	tcase_add_loop_test(tc, test_sql_session_role, 0,
			    (int)(sizeof(role_cases) / sizeof(role_cases[0])));
	tcase_add_loop_test(tc, test_sql_verbs, 0,
			    (int)(sizeof(verb_cases) / sizeof(verb_cases[0])));
	tcase_add_loop_test(tc, test_sql_flags, 0,
			    (int)(sizeof(flag_cases) / sizeof(flag_cases[0])));
	tcase_add_test(tc, test_sql_set_after_comments);
	tcase_add_test(tc, test_sql_name_spans);
	tcase_add_test(tc, test_sql_multi_statement);
	tcase_add_test(tc, test_sql_multi_set_values);
	tcase_add_test(tc, test_sql_stmts_max);
	tcase_add_test(tc, test_sql_parse_error);
	tcase_add_test(tc, test_sql_truncation);
	suite_add_tcase(s, tc);

	tc = tcase_create("prefilter");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_sql_set_in_string_is_not_set);
	tcase_add_test(tc, test_sql_scs_off_hidden_statement);
	tcase_add_test(tc, test_sql_prefilter_negative);
	tcase_add_test(tc, test_sql_prefilter_positive);
	tcase_add_loop_test(tc, test_sql_classify_all, 0,
			    (int)(sizeof(all_cases) / sizeof(all_cases[0])));
	tcase_add_test(tc, test_sql_nul_inside);
	tcase_add_test(tc, test_sql_every_prefix);
	tcase_add_test(tc, test_sql_deep_nesting);
	tcase_add_test(tc, test_sql_starts_with);
	suite_add_tcase(s, tc);

	tc = tcase_create("cache");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_sql_cache_hit);
	tcase_add_test(tc, test_sql_cache_eviction);
	tcase_add_test(tc, test_sql_cache_top);
	tcase_add_test(tc, test_sql_quick_reject_keeps_tracked);
	tcase_add_test(tc, test_sql_quick_reject_every_offset);
	tcase_add_test(tc, test_sql_timing);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(sql_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
