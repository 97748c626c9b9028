/*
 * sql_classify.h: what pgdog needs to know about a SQL string (a simple
 * Query or a Parse), without running it: which statements change session
 * state (SET, RESET, DISCARD), open or close transactions, listen for
 * notifications, prepare statements, or create state that ties the session
 * to one server connection (session advisory locks, temporary tables,
 * WITH HOLD cursors).
 * Runs in: workers (and tests). Pure: bytes in, result out. The only
 * caller of libpg_query is sql_parse.c; results are cached per text.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/compiler.h"

#define SQL_STMTS_MAX 16
#define SQL_NAME_MAX  64
#define SQL_VALUE_MAX 256

enum sql_kind {
	SQL_OTHER = 0,      /* anything pgdog does not track */
	SQL_SET,            /* SET [SESSION] name {TO|=} value, SET TIME ZONE value */
	SQL_SET_LOCAL,      /* SET LOCAL ...: lasts until the end of the transaction */
	SQL_RESET,          /* RESET name, SET name {TO|=} DEFAULT */
	SQL_RESET_ALL,      /* RESET ALL */
	SQL_DISCARD_ALL,    /* DISCARD ALL */
	SQL_DISCARD_OTHER,  /* DISCARD PLANS | SEQUENCES | TEMP */
	SQL_BEGIN,          /* BEGIN, START TRANSACTION */
	SQL_COMMIT,         /* COMMIT, END, COMMIT AND CHAIN */
	SQL_ROLLBACK,       /* ROLLBACK, ABORT */
	SQL_LISTEN,         /* LISTEN channel */
	SQL_UNLISTEN,       /* UNLISTEN channel */
	SQL_UNLISTEN_ALL,   /* UNLISTEN * */
	SQL_NOTIFY,         /* NOTIFY channel [, payload] */
	SQL_PREPARE,        /* PREPARE name [(types)] AS ... */
	SQL_EXECUTE,        /* EXECUTE name [(args)] */
	SQL_DEALLOCATE,     /* DEALLOCATE [PREPARE] name */
	SQL_DEALLOCATE_ALL, /* DEALLOCATE [PREPARE] ALL */
	SQL_SAVEPOINT,      /* SAVEPOINT name */
	SQL_RELEASE,        /* RELEASE [SAVEPOINT] name */
	SQL_ROLLBACK_TO,    /* ROLLBACK [WORK|TRANSACTION] TO [SAVEPOINT] name */
	SQL_PREPARE_TX,     /* PREPARE TRANSACTION 'gid' */
};

/* Properties of a statement that tie session state to the server connection. */
#define SQL_F_ADVISORY_LOCK \
	0x01u /* calls pg_advisory_lock*, pg_try_advisory_lock* (session level, not _xact_) */
#define SQL_F_ADVISORY_UNLOCK     0x02u /* calls pg_advisory_unlock / pg_advisory_unlock_shared */
#define SQL_F_ADVISORY_UNLOCK_ALL 0x04u /* calls pg_advisory_unlock_all */
#define SQL_F_TEMP_OBJECT \
	0x08u /* creates a temporary table, view or sequence (TEMP/TEMPORARY, pg_temp.x, CREATE TEMP TABLE AS, SELECT INTO TEMP) */
#define SQL_F_HOLD_CURSOR  0x10u /* DECLARE ... WITH HOLD */
#define SQL_F_NOTIFY_FUNC  0x20u /* calls pg_notify() */
#define SQL_F_SESSION_ROLE 0x40u /* SET or RESET of ROLE or SESSION AUTHORIZATION (not LOCAL) */
#define SQL_F_SET_CONFIG \
	0x80u /* calls set_config() with is_local not a constant true, or a DO block whose body sets or resets something (or calls set_config): a session-level setting pgdog cannot replay */
#define SQL_F_CLOSE_ALL 0x100u /* CLOSE ALL: closes every cursor, WITH HOLD ones too */
/*
 * May end state that pins the session's server, by a count pgdog cannot
 * keep: UNLISTEN channel, CLOSE cursor, DROP (of anything, DROP OWNED too),
 * DISCARD TEMP, a DO block. (pg_advisory_unlock() has SQL_F_ADVISORY_UNLOCK.)
 */
#define SQL_F_MAY_UNPIN 0x200u
/* LISTEN channel (or a DO block whose body may LISTEN) */
#define SQL_F_LISTEN 0x400u
/* LOAD: a library stays in the server process for the rest of its life */
#define SQL_F_LOAD 0x800u

struct sql_stmt {
	enum sql_kind kind;
	unsigned flags;
	/*
	 * SET/SET_LOCAL/RESET: the parameter name, lower-cased ("timezone" for
	 * SET TIME ZONE). LISTEN/UNLISTEN/NOTIFY: the channel as PostgreSQL
	 * stores it (unquoted identifiers lower-cased). PREPARE/EXECUTE/
	 * DEALLOCATE: the statement name, likewise. SAVEPOINT/RELEASE/
	 * ROLLBACK_TO: the savepoint name, likewise.
	 */
	char name[SQL_NAME_MAX];
	/*
	 * SET: the value exactly as written after TO/= (or after TIME ZONE),
	 * trimmed, so that "SET name TO <value>" replays it. NOTIFY: the payload.
	 */
	char value[SQL_VALUE_MAX];
	bool is_truncated; /* name or value did not fit: pgdog must not replay it */
	bool is_chain;     /* COMMIT / ROLLBACK AND CHAIN: a new transaction begins at once */
	/* SQL_EXECUTE inside EXPLAIN or CREATE TABLE ... AS: its name comes after the word EXECUTE */
	bool is_wrapped;
	/*
	 * Where the statement is in the text: [loc, loc + loc_len), from just
	 * after the previous ';' (leading spaces and comments included) to its
	 * last byte, its own ';' excluded.
	 */
	size_t loc, loc_len;
	/*
	 * PREPARE / EXECUTE / DEALLOCATE name: the name's token in the text
	 * (a word or a "quoted identifier"), so that it can be replaced.
	 * name_len 0: not found (the statement must not be rewritten).
	 */
	size_t name_off, name_len;
};

struct sql_result {
	struct sql_stmt stmts[SQL_STMTS_MAX];
	size_t stmts_cnt; /* statements described in stmts */
	bool has_more;    /* the text holds more than SQL_STMTS_MAX statements */
	unsigned flags;   /* OR of every statement's flags */
	bool is_parsed;   /* false: the prefilter showed nothing to track (stmts_cnt 0) */
	/*
	 * The text does not parse: PostgreSQL will reject it. Also set, with no
	 * statements, when it nests too deeply for pgdog to inspect (over 4000
	 * tree levels, or over 5000 chained operators).
	 */
	bool is_error;
};

/*
 * Classify every statement of sql (len bytes, need not be NUL-terminated).
 * A prefilter over the bytes (keywords SET, RESET, DISCARD, BEGIN, START,
 * COMMIT, END, ROLLBACK, ABORT, LISTEN, UNLISTEN, NOTIFY, PREPARE, EXECUTE,
 * DEALLOCATE, CREATE, DECLARE, CLOSE, DROP, SELECT ... INTO, LOAD at a statement start,
 * or "advisory"/"notify"/"config" anywhere, case-insensitively, outside comments)
 * returns without parsing when nothing can matter; otherwise the text is
 * parsed with libpg_query and the result cached (LRU, bounded) by text.
 * Strings are lexed as with standard_conforming_strings = on.
 * Returns 0, or -1 on out of memory (out is then all SQL_OTHER).
 */
int sql_classify(const char *sql, size_t len, struct sql_result *out) MUST_CHECK;
/*
 * Does sql (len bytes) begin, after white space and comments, with the
 * keyword kw (lower case), as a whole word? Case-insensitive.
 */
bool sql_starts_with(const char *sql, size_t len, const char *kw);
/*
 * As sql_classify(), without the prefilter (only the quick reject of a lone
 * SELECT/INSERT/UPDATE/DELETE): SAVEPOINT, RELEASE, ROLLBACK TO and PREPARE
 * TRANSACTION, which the prefilter lets pass as nothing to track, are
 * classified too. For pub/sub, while a transaction holds a LISTEN pgdog
 * serves (rare: the common path keeps the prefilter).
 */
int sql_classify_all(const char *sql, size_t len, struct sql_result *out) MUST_CHECK;
/*
 * sql_classify() in two steps, for a caller whose lexing mode costs a lookup:
 * sql_classify_quick() clears *out and runs the quick reject alone (quotes
 * play no part in it); true means *out is final (nothing to track). Else
 * sql_classify_lexed() classifies the text as PostgreSQL reads it with
 * standard_conforming_strings = on (is_std) or off (a backslash in a plain
 * '' string escapes the next byte, as it always does in E''). Returns as
 * sql_classify().
 */
bool sql_classify_quick(const char *sql, size_t len, struct sql_result *out);
int sql_classify_lexed(const char *sql, size_t len, bool is_std, struct sql_result *out) MUST_CHECK;

/* Cache statistics for the admin console. */
struct sql_cache_stats {
	unsigned long long hits, misses, parses, prefiltered;
	size_t entries;
};
void sql_cache_stats(struct sql_cache_stats *st);

/* One cached text, for SHOW QUERY_CACHE. */
struct sql_cache_query {
	const char *text; /* borrowed from the cache: valid until the next sql_classify() */
	size_t text_len;  /* not NUL-terminated */
	uint64_t hash;    /* FNV-1a of the text: the same in every process */
	uint64_t hits;    /* lookups that found it since it was (last) parsed */
};
/*
 * The cached texts with the most hits, most first: at most max of them into
 * out. Returns how many.
 */
size_t sql_cache_top(struct sql_cache_query *out, size_t max);
/*
 * Free the cache (worker exit, tests); sql_classify() may still be called.
 * libpg_query's per-thread memory is not released (pg_query_exit() would
 * break every later parse); it stays reachable, so no leak is reported.
 */
void sql_cache_cleanup(void);
