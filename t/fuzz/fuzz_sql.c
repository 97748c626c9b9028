/*
 * fuzz_sql.c: libFuzzer target for sql/sql_classify.c and sql/sql_parse.c.
 * Runs in: the fuzzer (clang -fsanitize=fuzzer) or t/fuzz/replay.c.
 *
 * The input is classified twice: as len bytes exactly (the buffer ends at
 * size, so a read past len trips ASan), then as a NUL-terminated copy, whose
 * second call should come from the cache, and once more lexed with
 * standard_conforming_strings off. Each result is checked for the
 * invariants sql_classify.h promises; a broken one aborts. The cache is
 * freed every 256 inputs so eviction and cleanup run too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sql/sql_classify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_sql_check(const struct sql_result *r)
{
	if (r->stmts_cnt > SQL_STMTS_MAX || (r->has_more && r->stmts_cnt != SQL_STMTS_MAX))
		abort();
	if (!r->is_parsed && (r->stmts_cnt != 0 || r->is_error))
		abort();
	for (size_t i = 0; i < r->stmts_cnt; i++) {
		const struct sql_stmt *st = &r->stmts[i];

		if (memchr(st->name, '\0', sizeof(st->name)) == NULL ||
		    memchr(st->value, '\0', sizeof(st->value)) == NULL)
			abort();
		if ((st->flags & ~r->flags) != 0)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned calls;
	struct sql_result r1, r2;
	char *copy;

	if (sql_classify((const char *)data, size, &r1) == 0)
		fuzz_sql_check(&r1);
	copy = malloc(size + 1);
	if (copy != NULL) {
		memcpy(copy, data, size);
		copy[size] = '\0';
		if (sql_classify(copy, strlen(copy), &r2) == 0)
			fuzz_sql_check(&r2);
		/* as a client with standard_conforming_strings = off has it read */
		if (!sql_classify_quick(copy, strlen(copy), &r2) &&
		    sql_classify_lexed(copy, strlen(copy), false, &r2) == 0)
			fuzz_sql_check(&r2);
		free(copy);
	}
	if (++calls % 256 == 0)
		sql_cache_cleanup();
	return 0;
}
