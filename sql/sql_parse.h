/*
 * sql_parse.h: the one module that calls libpg_query. It parses a SQL text
 * into PostgreSQL's raw parse tree (via protobuf), walks the tree and fills a
 * struct sql_result; nothing of libpg_query outlives a call.
 * Runs in: workers (and tests), called by sql_classify.c only; callers use
 * sql_classify() instead.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "shared/compiler.h"
#include "sql/sql_classify.h"

/*
 * Where a statement's value sits in the text, for the caller to copy and
 * trim (SET values are cut from the source, not rebuilt from the tree).
 * len 0: no source value (the statement's value field is already final).
 */
struct sql_parse_span {
	size_t off, len;
};

/*
 * Parse text (len bytes, text[len] must be '\0', no NUL before it), with
 * standard_conforming_strings on (is_std) or off, and describe it in *out,
 * which the caller has zeroed. On a syntax error sets out->is_error and
 * returns 0 with no statements. For statements whose value
 * comes from the source (SET), spans[i] gives its bytes in text, untrimmed;
 * spans has SQL_STMTS_MAX entries, zeroed by the caller.
 * Returns 0, or -1 on out of memory.
 */
int sql_parse_classify(const char *text, size_t len, bool is_std, struct sql_result *out,
		       struct sql_parse_span *spans) MUST_CHECK;

/* Free libpg_query's per-thread memory (worker exit, tests). Parsing later still works. */
void sql_parse_cleanup(void);
