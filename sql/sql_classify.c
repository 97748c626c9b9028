/*
 * sql_classify.c: tells the worker which statements of a SQL text change
 * session state, open or close transactions, or pin the session to its
 * server connection (see sql_classify.h).
 * Runs in: workers (and tests). Each process has its own cache; no locking
 * (workers are single-threaded).
 *
 * Three stages, cheapest first:
 * 1. The prefilter lexes the bytes once, skipping whitespace, comments
 *    (nested block comments as PostgreSQL allows), string literals (including
 *    E'' escapes), quoted identifiers and dollar quotes. It returns "parse"
 *    when a statement starts with a tracked keyword, when a SELECT/WITH/
 *    EXPLAIN statement says INTO, or when any word or quoted identifier
 *    contains "advisory", "notify", "temp" or "config" (set_config). Anything else (pgbench's SELECT
 *    and UPDATE, INSERT ... INTO) returns without parsing or touching the
 *    cache. It may say "parse" needlessly (a column named "temperature"); it
 *    must never miss. Plain '' strings are lexed with the client's
 *    standard_conforming_strings (the caller says which): off, a backslash
 *    escapes the next byte, so "'a\''; SET ..." is one string followed by
 *    a SET, where with it on the SET is inside the string. libpg_query is
 *    told the same. The quick reject in front ignores quotes, so it needs
 *    no mode.
 * 2. The cache: results keyed by the exact text and the lexing mode
 *    (FNV-1a hash, then a full compare), at most SQL_CACHE_ENTRIES_MAX
 *    entries and SQL_CACHE_BYTES_MAX bytes, least recently used evicted first. Texts over SQL_CACHE_TEXT_MAX
 *    are classified but not cached. Parse errors are cached too.
 * 3. sql_parse.c parses with libpg_query; this file then cuts SET values out
 *    of the source and trims them.
 * Text after a NUL byte is ignored, as PostgreSQL reads a Query's text as a
 * C string.
 */
#include "sql/sql_classify.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/hash.h"
#include "sql/sql_parse.h"

#define SQL_CACHE_ENTRIES_MAX 1024
#define SQL_CACHE_BYTES_MAX   ((size_t)8 << 20)
#define SQL_CACHE_TEXT_MAX    ((size_t)64 << 10)
#define SQL_CACHE_BUCKETS     2048 /* power of two */
/*
 * libpg_query converts and packs its tree recursively: a left-deep chain of
 * about 24000 binary operators ("1+1+1...") overflows an 8 MiB stack inside
 * pg_query_parse_protobuf(), where no depth check of ours can help. Texts
 * with more operator tokens than this are reported as errors unparsed
 * (PostgreSQL itself refuses such nesting: "stack depth limit exceeded").
 * Only texts of at least twice as many bytes can reach the limit.
 */
#define SQL_PARSE_OPS_MAX 5000

/* A token of the lexer both the prefilter and the value trimmer use. */
enum sql_tok {
	SQL_TOK_END = 0,
	SQL_TOK_SPACE,  /* whitespace or a comment */
	SQL_TOK_WORD,   /* keyword or identifier, digits included */
	SQL_TOK_QIDENT, /* "quoted identifier" */
	SQL_TOK_STRING, /* '...', E'...', $tag$...$tag$ */
	SQL_TOK_SEMI,
	SQL_TOK_LPAREN,
	SQL_TOK_OTHER, /* any other single byte */
};

struct sql_cache_entry {
	struct sql_cache_entry *hnext;       /* hash bucket chain */
	struct sql_cache_entry *prev, *next; /* LRU list, most recent first */
	uint64_t hash;
	size_t text_len;
	size_t alloc_len; /* counted in sql_cache.bytes */
	size_t stmts_cnt;
	unsigned flags;
	bool has_more, is_error;
	uint64_t hits;           /* lookups that found it (SHOW QUERY_CACHE) */
	bool is_std;             /* lexed with standard_conforming_strings on */
	struct sql_stmt stmts[]; /* stmts_cnt, then the text (not NUL-terminated) */
};

static struct {
	struct sql_cache_entry *buckets[SQL_CACHE_BUCKETS];
	struct sql_cache_entry *head, *tail;
	size_t entries, bytes;
	struct sql_cache_stats stats;
} sql_cache;

static inline bool
sql_classify_is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static inline bool
sql_classify_is_ident_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static inline bool
sql_classify_is_word(unsigned char c)
{
	return sql_classify_is_ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/* Skip a quoted run opened at s[i] by q, where q is escaped by doubling it. */
static size_t
sql_classify_skip_quoted(const char *s, size_t n, size_t i, char q, bool has_backslash)
{
	i++;
	while (i < n) {
		char c = s[i];

		if (has_backslash && c == '\\') {
			i += 2;
			continue;
		}
		i++;
		if (c == q) {
			if (i < n && s[i] == q) {
				i++;
				continue;
			}
			return i;
		}
	}
	return n;
}

/*
 * At s[i] == '$': the end of a dollar-quoted string starting there, or 0 when
 * it is not one ($1, or a lone $).
 */
static size_t
sql_classify_skip_dollar(const char *s, size_t n, size_t i)
{
	size_t j = i + 1, tag_len;

	if (j < n && sql_classify_is_ident_start((unsigned char)s[j])) {
		while (j < n && sql_classify_is_word((unsigned char)s[j]) && s[j] != '$')
			j++;
	}
	if (j >= n || s[j] != '$')
		return 0;
	tag_len = j + 1 - i; /* "$tag$" */
	for (j++; j + tag_len <= n; j++) {
		if (s[j] == '$' && memcmp(s + j, s + i, tag_len) == 0)
			return j + tag_len;
	}
	return n; /* unterminated: the rest is the string */
}

/*
 * A quote right after the one-letter word c opens a string whose backslash
 * rule does not follow standard_conforming_strings: E'' (backslash escapes
 * always) or B'' / X'' (bit strings: never). 0 for any other byte; then the
 * quote is a plain '' string (N'' is one too).
 */
static inline int
sql_classify_quote_prefix(unsigned char c)
{
	switch (c | 0x20) {
	case 'e':
		return 'e';
	case 'b':
	case 'x':
		return 'b';
	default:
		return 0;
	}
}

/* Skip a block comment at s[i] == '/', s[i + 1] == '*'; they nest. */
static size_t
sql_classify_skip_comment(const char *s, size_t n, size_t i)
{
	size_t depth = 0;

	while (i + 1 < n) {
		if (s[i] == '/' && s[i + 1] == '*') {
			depth++;
			i += 2;
		} else if (s[i] == '*' && s[i + 1] == '/') {
			i += 2;
			if (--depth == 0)
				return i;
		} else {
			i++;
		}
	}
	return n;
}

/*
 * Lex the token at *pos: sets *start, advances *pos past it and returns its
 * type. is_std: standard_conforming_strings is on (a backslash in a plain
 * '' string is an ordinary character); off, it escapes the next byte there
 * as in E'' strings. B'' and X'' strings never take backslash escapes.
 */
static enum sql_tok
sql_classify_next(const char *s, size_t n, bool is_std, size_t *pos, size_t *start)
{
	size_t i = *pos, j;
	unsigned char c;

	*start = i;
	if (i >= n)
		return SQL_TOK_END;
	c = (unsigned char)s[i];
	if (sql_classify_is_space(c)) {
		while (i < n && sql_classify_is_space((unsigned char)s[i]))
			i++;
		*pos = i;
		return SQL_TOK_SPACE;
	}
	if (sql_classify_is_ident_start(c) || (c >= '0' && c <= '9')) {
		for (j = i + 1; j < n && sql_classify_is_word((unsigned char)s[j]); j++)
			;
		if (j == i + 1 && j < n && s[j] == '\'' && sql_classify_quote_prefix(c)) {
			*pos = sql_classify_skip_quoted(s, n, j, '\'',
							sql_classify_quote_prefix(c) == 'e');
			return SQL_TOK_STRING;
		}
		*pos = j;
		return SQL_TOK_WORD;
	}
	switch (c) {
	case '-':
		if (i + 1 < n && s[i + 1] == '-') {
			const char *nl = memchr(s + i, '\n', n - i);

			*pos = nl != NULL ? (size_t)(nl - s) + 1 : n;
			return SQL_TOK_SPACE;
		}
		break;
	case '/':
		if (i + 1 < n && s[i + 1] == '*') {
			*pos = sql_classify_skip_comment(s, n, i);
			return SQL_TOK_SPACE;
		}
		break;
	case '\'':
		*pos = sql_classify_skip_quoted(s, n, i, '\'', !is_std);
		return SQL_TOK_STRING;
	case '"':
		*pos = sql_classify_skip_quoted(s, n, i, '"', false);
		return SQL_TOK_QIDENT;
	case '$':
		j = sql_classify_skip_dollar(s, n, i);
		if (j > 0) {
			*pos = j;
			return SQL_TOK_STRING;
		}
		break;
	case ';':
		*pos = i + 1;
		return SQL_TOK_SEMI;
	case '(':
		*pos = i + 1;
		return SQL_TOK_LPAREN;
	default:
		break;
	}
	*pos = i + 1;
	return SQL_TOK_OTHER;
}

/* Byte classes for the prefilter's inner loop. */
#define SQL_CC_SPACE 0x01
#define SQL_CC_IDENT 0x02 /* can start an identifier: letters, '_', bytes >= 0x80 */
#define SQL_CC_DIGIT 0x04
#define SQL_CC_WORD  0x08 /* can continue a word: the above and '$' */

#define SQL_CC_ID (SQL_CC_IDENT | SQL_CC_WORD)
#define SQL_CC_ROW16                                                                            \
	SQL_CC_ID, SQL_CC_ID, SQL_CC_ID, SQL_CC_ID, SQL_CC_ID, SQL_CC_ID, SQL_CC_ID, SQL_CC_ID, \
		SQL_CC_ID, SQL_CC_ID, SQL_CC_ID, SQL_CC_ID, SQL_CC_ID, SQL_CC_ID, SQL_CC_ID,    \
		SQL_CC_ID

static const unsigned char sql_cc[256] = {
	['\t'] = SQL_CC_SPACE,
	['\n'] = SQL_CC_SPACE,
	['\v'] = SQL_CC_SPACE,
	['\f'] = SQL_CC_SPACE,
	['\r'] = SQL_CC_SPACE,
	[' '] = SQL_CC_SPACE,
	['$'] = SQL_CC_WORD,
	['0'] = SQL_CC_DIGIT | SQL_CC_WORD,
	['1'] = SQL_CC_DIGIT | SQL_CC_WORD,
	['2'] = SQL_CC_DIGIT | SQL_CC_WORD,
	['3'] = SQL_CC_DIGIT | SQL_CC_WORD,
	['4'] = SQL_CC_DIGIT | SQL_CC_WORD,
	['5'] = SQL_CC_DIGIT | SQL_CC_WORD,
	['6'] = SQL_CC_DIGIT | SQL_CC_WORD,
	['7'] = SQL_CC_DIGIT | SQL_CC_WORD,
	['8'] = SQL_CC_DIGIT | SQL_CC_WORD,
	['9'] = SQL_CC_DIGIT | SQL_CC_WORD,
	['A'] = SQL_CC_ID,
	['B'] = SQL_CC_ID,
	['C'] = SQL_CC_ID,
	['D'] = SQL_CC_ID,
	['E'] = SQL_CC_ID,
	['F'] = SQL_CC_ID,
	['G'] = SQL_CC_ID,
	['H'] = SQL_CC_ID,
	['I'] = SQL_CC_ID,
	['J'] = SQL_CC_ID,
	['K'] = SQL_CC_ID,
	['L'] = SQL_CC_ID,
	['M'] = SQL_CC_ID,
	['N'] = SQL_CC_ID,
	['O'] = SQL_CC_ID,
	['P'] = SQL_CC_ID,
	['Q'] = SQL_CC_ID,
	['R'] = SQL_CC_ID,
	['S'] = SQL_CC_ID,
	['T'] = SQL_CC_ID,
	['U'] = SQL_CC_ID,
	['V'] = SQL_CC_ID,
	['W'] = SQL_CC_ID,
	['X'] = SQL_CC_ID,
	['Y'] = SQL_CC_ID,
	['Z'] = SQL_CC_ID,
	['_'] = SQL_CC_ID,
	['a'] = SQL_CC_ID,
	['b'] = SQL_CC_ID,
	['c'] = SQL_CC_ID,
	['d'] = SQL_CC_ID,
	['e'] = SQL_CC_ID,
	['f'] = SQL_CC_ID,
	['g'] = SQL_CC_ID,
	['h'] = SQL_CC_ID,
	['i'] = SQL_CC_ID,
	['j'] = SQL_CC_ID,
	['k'] = SQL_CC_ID,
	['l'] = SQL_CC_ID,
	['m'] = SQL_CC_ID,
	['n'] = SQL_CC_ID,
	['o'] = SQL_CC_ID,
	['p'] = SQL_CC_ID,
	['q'] = SQL_CC_ID,
	['r'] = SQL_CC_ID,
	['s'] = SQL_CC_ID,
	['t'] = SQL_CC_ID,
	['u'] = SQL_CC_ID,
	['v'] = SQL_CC_ID,
	['w'] = SQL_CC_ID,
	['x'] = SQL_CC_ID,
	['y'] = SQL_CC_ID,
	['z'] = SQL_CC_ID,
	[0x80] = SQL_CC_ROW16,
	[0x90] = SQL_CC_ROW16,
	[0xa0] = SQL_CC_ROW16,
	[0xb0] = SQL_CC_ROW16,
	[0xc0] = SQL_CC_ROW16,
	[0xd0] = SQL_CC_ROW16,
	[0xe0] = SQL_CC_ROW16,
	[0xf0] = SQL_CC_ROW16,
};

/* w (n bytes) equals the lower-case ASCII word kw (NUL-terminated), ignoring case. */
static bool
sql_classify_word_is(const char *w, size_t n, const char *kw)
{
	size_t i = 0;

	for (; i < n && kw[i] != '\0'; i++) {
		if (((unsigned char)w[i] | 0x20) != (unsigned char)kw[i])
			return false;
	}
	return i == n && kw[i] == '\0';
}

bool
sql_starts_with(const char *sql, size_t len, const char *kw)
{
	size_t pos = 0, start;
	enum sql_tok t;

	/* the first word comes before any string: how strings are lexed does not matter */
	while ((t = sql_classify_next(sql, len, true, &pos, &start)) == SQL_TOK_SPACE)
		;
	return t == SQL_TOK_WORD && sql_classify_word_is(sql + start, pos - start, kw);
}

/*
 * A statement starting with this word may be tracked: SET, RESET, DISCARD,
 * BEGIN, START, COMMIT, END, ROLLBACK, ABORT, LISTEN, UNLISTEN, NOTIFY,
 * PREPARE, EXECUTE, DEALLOCATE, CREATE, DECLARE, CLOSE, DROP, LOAD, DO (its
 * body may set something for the session).
 */
static bool
sql_classify_is_start_kw(const char *w, size_t n)
{
	if (n == 2)
		return sql_classify_word_is(w, n, "do");
	if (n < 3 || n > 10)
		return false;
	switch ((unsigned char)w[0] | 0x20) {
	case 'a':
		return sql_classify_word_is(w, n, "abort");
	case 'b':
		return sql_classify_word_is(w, n, "begin");
	case 'c':
		return sql_classify_word_is(w, n, "commit") ||
		       sql_classify_word_is(w, n, "create") || sql_classify_word_is(w, n, "close");
	case 'd':
		return sql_classify_word_is(w, n, "discard") ||
		       sql_classify_word_is(w, n, "deallocate") ||
		       sql_classify_word_is(w, n, "declare") || sql_classify_word_is(w, n, "drop");
	case 'e':
		return sql_classify_word_is(w, n, "end") || sql_classify_word_is(w, n, "execute");
	case 'l':
		return sql_classify_word_is(w, n, "listen") || sql_classify_word_is(w, n, "load");
	case 'n':
		return sql_classify_word_is(w, n, "notify");
	case 'p':
		return sql_classify_word_is(w, n, "prepare");
	case 'r':
		return sql_classify_word_is(w, n, "reset") ||
		       sql_classify_word_is(w, n, "rollback");
	case 's':
		return sql_classify_word_is(w, n, "set") || sql_classify_word_is(w, n, "start");
	case 'u':
		return sql_classify_word_is(w, n, "unlisten");
	default:
		return false;
	}
}

/*
 * A word (or a quoted identifier's text) anywhere that may name a tracked
 * function or object: it contains "advisory", "notify", "temp" or "config" (set_config).
 */
static bool
sql_classify_word_matters(const char *w, size_t n)
{
	for (size_t i = 0; i + 4 <= n; i++) {
		const char *pat;
		size_t k, pat_len;

		switch ((unsigned char)w[i] | 0x20) {
		case 'a':
			pat = "advisory";
			pat_len = 8;
			break;
		case 'n':
			pat = "notify";
			pat_len = 6;
			break;
		case 't':
			pat = "temp";
			pat_len = 4;
			break;
		case 'c':
			/* set_config (letters only: the comparison folds case by OR 0x20) */
			pat = "config";
			pat_len = 6;
			break;
		default:
			continue;
		}
		if (i + pat_len > n)
			continue;
		for (k = 1; k < pat_len; k++) {
			if (((unsigned char)w[i + k] | 0x20) != (unsigned char)pat[k])
				break;
		}
		if (k == pat_len)
			return true;
	}
	return false;
}

/* Case-insensitive: does s[i..] start with the lower-case word w? */
static bool
sql_classify_has_at(const char *s, size_t n, size_t i, const char *w, size_t wn)
{
	if (i + wn > n)
		return false;
	for (size_t k = 0; k < wn; k++)
		if (((unsigned char)s[i + k] | 0x20) != (unsigned char)w[k])
			return false;
	return true;
}

/*
 * For sql_classify_quick_reject: ';' and NUL mark themselves; the first
 * letters of its words map to their second letter (lower case), 0 for every
 * other byte.
 */
static const unsigned char sql_qr_next[256] = {
	[';'] = ';', ['a'] = 'd', ['A'] = 'd', ['n'] = 'o', ['N'] = 'o', ['t'] = 'e',
	['T'] = 'e', ['i'] = 'n', ['I'] = 'n', ['c'] = 'o', ['C'] = 'o',
};

/*
 * The byte at s[i] (i + 1 < end, or the last byte) may start something the
 * quick reject must not pass: false when it does (';', NUL, or one of the
 * words), true when the text can go on being scanned.
 */
static inline bool
sql_classify_qr_byte_ok(const char *s, size_t end, size_t i, bool is_insert)
{
	unsigned char c = (unsigned char)s[i], next = sql_qr_next[c];

	if (c == '\0' || c == ';')
		return false;
	if (!next || i + 1 >= end || ((unsigned char)s[i + 1] | 0x20) != next)
		return true;
	switch (c | 0x20) {
	case 'a':
		return !sql_classify_has_at(s, end, i, "advisory", 8);
	case 'n':
		return !sql_classify_has_at(s, end, i, "notify", 6);
	case 't':
		return !sql_classify_has_at(s, end, i, "temp", 4);
	case 'c':
		return !sql_classify_has_at(s, end, i, "config", 6);
	case 'i':
		return is_insert || !sql_classify_has_at(s, end, i, "into", 4);
	default:
		return true;
	}
}

/*
 * 16 bytes at a time (GCC/Clang vector extensions: SSE2 on x86-64, NEON on
 * arm64, plain code elsewhere). A lane is set where the byte and the one
 * after it could begin a word sql_classify_qr_byte_ok() looks at ("ad",
 * "no", "te", "in", "co", either case), or where the byte is ';' or NUL;
 * only those lanes get the byte-wise check. pgbench's
 * "SELECT abalance FROM pgbench_accounts WHERE aid = ...;" has one such
 * lane ("co" of accounts) in 50 bytes, where the byte-wise loop cost about
 * ten instructions a byte.
 */
typedef unsigned char sql_v16 __attribute__((vector_size(16)));
typedef signed char sql_v16_mask __attribute__((vector_size(16)));

static inline sql_v16
sql_v16_load(const char *p)
{
	sql_v16 v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* Lanes of the 16 bytes at s (17 readable) that need a closer look. */
static inline sql_v16_mask
sql_classify_qr_lanes(const char *s)
{
	sql_v16 raw = sql_v16_load(s), v = raw | 0x20, w = sql_v16_load(s + 1) | 0x20;

	return (raw == 0) | (raw == ';') | ((v == 'a') & (w == 'd')) | ((v == 'n') & (w == 'o')) |
	       ((v == 't') & (w == 'e')) | ((v == 'i') & (w == 'n')) | ((v == 'c') & (w == 'o'));
}

/*
 * The quick reject, in front of the lexer: a single statement (no ';' but a
 * trailing one, no NUL byte) that starts with SELECT, INSERT, UPDATE or
 * DELETE and holds none of the words the lexer looks for anywhere (advisory,
 * notify, temp, config for set_config, and into after anything but INSERT)
 * cannot matter. Quotes and comments are not parsed here: a word inside one
 * only sends the text on to the lexer. A NUL byte sends it on too (the text
 * is cut there first). This is the hot path of every application query in
 * transaction mode.
 */
static bool
sql_classify_quick_reject(const char *s, size_t n)
{
	size_t i = 0, end = n;
	bool is_insert;

	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	while (end > i && (s[end - 1] == ' ' || s[end - 1] == '\t' || s[end - 1] == '\n' ||
			   s[end - 1] == '\r' || s[end - 1] == ';'))
		end--;
	is_insert = sql_classify_has_at(s, end, i, "insert", 6);
	if (!is_insert && !sql_classify_has_at(s, end, i, "select", 6) &&
	    !sql_classify_has_at(s, end, i, "update", 6) &&
	    !sql_classify_has_at(s, end, i, "delete", 6))
		return false;
	/* the bytes trimmed at either end hold no NUL: any NUL is in [i, end) */
	for (i += 6; i + 17 <= end; i += 16) {
		sql_v16_mask m = sql_classify_qr_lanes(s + i);
		uint64_t lo, hi;

		memcpy(&lo, &m, 8);
		memcpy(&hi, (char *)&m + 8, 8);
		if ((lo | hi) == 0)
			continue;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		/* lane k is byte k of lo (k < 8) or of hi: visit the set ones only */
		for (size_t half = 0; half < 2; half++) {
			uint64_t x = half == 0 ? lo : hi;

			while (x != 0) {
				size_t k = (size_t)__builtin_ctzll(x) >> 3;

				if (!sql_classify_qr_byte_ok(s, end, i + half * 8 + k, is_insert))
					return false;
				x &= ~((uint64_t)0xff << (k * 8));
			}
		}
#else
		for (size_t k = 0; k < 16; k++) {
			if (((const signed char *)&m)[k] != 0 &&
			    !sql_classify_qr_byte_ok(s, end, i + k, is_insert))
				return false;
		}
#endif
	}
	for (; i < end; i++) {
		if (sql_qr_next[(unsigned char)s[i]] == 0 && s[i] != '\0')
			continue;
		if (!sql_classify_qr_byte_ok(s, end, i, is_insert))
			return false;
	}
	return true;
}

/*
 * The prefilter: true when s (n bytes) may hold anything sql_classify tracks.
 * Spaces and words are lexed inline (the hot path); everything else goes
 * through sql_classify_next().
 */
static bool
sql_classify_prefilter(const char *s, size_t n, bool is_std)
{
	size_t i = 0, start;
	bool at_start = true, into_counts = false, is_explain = false;

	while (i < n) {
		unsigned char cc = sql_cc[(unsigned char)s[i]];
		const char *w = s + i;
		size_t wn;

		if (cc & SQL_CC_SPACE) {
			i++;
			continue;
		}
		if (cc & (SQL_CC_IDENT | SQL_CC_DIGIT)) {
			size_t j = i + 1;

			while (j < n && (sql_cc[(unsigned char)s[j]] & SQL_CC_WORD))
				j++;
			wn = j - i;
			if (wn == 1 && j < n && s[j] == '\'' &&
			    sql_classify_quote_prefix((unsigned char)w[0])) {
				i = sql_classify_skip_quoted(
					s, n, j, '\'',
					sql_classify_quote_prefix((unsigned char)w[0]) == 'e');
				at_start = false;
				continue;
			}
			i = j;
			if (at_start) {
				if (sql_classify_is_start_kw(w, wn))
					return true;
				is_explain = sql_classify_word_is(w, wn, "explain");
				into_counts = sql_classify_word_is(w, wn, "select") ||
					      sql_classify_word_is(w, wn, "with") || is_explain;
				at_start = false;
			} else if (into_counts && wn == 4 && sql_classify_word_is(w, wn, "into")) {
				return true;
			} else if (is_explain && wn == 7 &&
				   sql_classify_word_is(w, wn, "execute")) {
				return true; /* EXPLAIN EXECUTE name: a prepared statement's name */
			}
			if (wn >= 4 && sql_classify_word_matters(w, wn))
				return true;
			continue;
		}
		switch (sql_classify_next(s, n, is_std, &i, &start)) {
		case SQL_TOK_SPACE:
			continue;
		case SQL_TOK_SEMI:
			at_start = true;
			into_counts = is_explain = false;
			continue;
		case SQL_TOK_LPAREN:
			if (at_start)
				into_counts = true; /* (SELECT ... INTO ...) */
			break;
		case SQL_TOK_QIDENT:
			if (sql_classify_word_matters(s + start, i - start))
				return true;
			break;
		default:
			break;
		}
		at_start = false;
	}
	return false;
}

/* The end of the last token of s[off, end) that is not space, a comment or ';'. */
static size_t
sql_classify_trim_end(const char *s, size_t off, size_t end, bool is_std)
{
	size_t pos = off, start, last = off;

	for (;;) {
		enum sql_tok t = sql_classify_next(s, end, is_std, &pos, &start);

		if (t == SQL_TOK_END)
			return last;
		if (t != SQL_TOK_SPACE && t != SQL_TOK_SEMI)
			last = pos;
	}
}

/* Cut each SET value out of text as sql_parse_classify() located it. */
static void
sql_classify_set_values(const char *text, struct sql_result *out,
			const struct sql_parse_span *spans, bool is_std)
{
	for (size_t i = 0; i < out->stmts_cnt; i++) {
		struct sql_stmt *st = &out->stmts[i];
		size_t end, n;

		if (spans[i].len == 0)
			continue;
		end = sql_classify_trim_end(text, spans[i].off, spans[i].off + spans[i].len,
					    is_std);
		n = end - spans[i].off;
		if (n >= sizeof(st->value)) {
			n = sizeof(st->value) - 1;
			st->is_truncated = true;
		}
		memcpy(st->value, text + spans[i].off, n);
		st->value[n] = '\0';
	}
}

/* The next token of s[*pos, end) that is not space or a comment. */
static enum sql_tok
sql_classify_next_solid(const char *s, size_t end, bool is_std, size_t *pos, size_t *start)
{
	enum sql_tok t;

	do
		t = sql_classify_next(s, end, is_std, pos, start);
	while (t == SQL_TOK_SPACE);
	return t;
}

/*
 * Whether the token text[start, start + n) (a word or a "quoted
 * identifier") names name, as PostgreSQL reads it: a word folded to lower
 * case, a quoted identifier as it is, "" standing for ".
 */
static bool
sql_classify_token_is_name(const char *text, size_t start, size_t n, enum sql_tok t,
			   const char *name)
{
	size_t k = 0;

	if (t == SQL_TOK_WORD) {
		for (size_t i = 0; i < n; i++, k++) {
			char ch = text[start + i];

			if (ch >= 'A' && ch <= 'Z')
				ch = (char)(ch - 'A' + 'a');
			if (name[k] != ch)
				return false;
		}
		return name[k] == '\0';
	}
	if (t != SQL_TOK_QIDENT || n < 2)
		return false;
	for (size_t i = start + 1; i < start + n - 1; i++, k++) {
		if (name[k] != text[i])
			return false;
		if (text[i] == '"')
			i++; /* "" */
	}
	return name[k] == '\0';
}

/*
 * The name of an EXPLAIN's or CREATE TABLE AS's EXECUTE: the token after a
 * word EXECUTE that names the statement (a table may be called execute).
 */
static void
sql_classify_wrapped_name(const char *text, struct sql_stmt *st, bool is_std)
{
	size_t pos = st->loc, end = st->loc + st->loc_len, start;
	enum sql_tok t = sql_classify_next_solid(text, end, is_std, &pos, &start);

	while (t != SQL_TOK_END) {
		bool is_execute = t == SQL_TOK_WORD &&
				  sql_classify_word_is(text + start, pos - start, "execute");

		t = sql_classify_next_solid(text, end, is_std, &pos, &start);
		if (is_execute && (t == SQL_TOK_WORD || t == SQL_TOK_QIDENT) &&
		    sql_classify_token_is_name(text, start, pos - start, t, st->name)) {
			st->name_off = start;
			st->name_len = pos - start;
			return;
		}
	}
}

/*
 * Find the name token of each PREPARE / EXECUTE / DEALLOCATE [PREPARE]
 * statement: the word or quoted identifier after the keyword(s).
 */
static void
sql_classify_name_spans(const char *text, struct sql_result *out, bool is_std)
{
	for (size_t i = 0; i < out->stmts_cnt; i++) {
		struct sql_stmt *st = &out->stmts[i];
		size_t pos = st->loc, end = st->loc + st->loc_len, start;
		enum sql_tok t;

		if (st->kind != SQL_PREPARE && st->kind != SQL_EXECUTE &&
		    st->kind != SQL_DEALLOCATE)
			continue;
		if (st->is_wrapped) {
			sql_classify_wrapped_name(text, st, is_std);
			continue;
		}
		if (sql_classify_next_solid(text, end, is_std, &pos, &start) != SQL_TOK_WORD)
			continue;
		t = sql_classify_next_solid(text, end, is_std, &pos, &start);
		if (st->kind == SQL_DEALLOCATE && t == SQL_TOK_WORD &&
		    sql_classify_word_is(text + start, pos - start, "prepare")) {
			size_t save_pos = pos, save_start = start;

			/* DEALLOCATE PREPARE name, or a statement named "prepare" */
			t = sql_classify_next_solid(text, end, is_std, &pos, &start);
			if (t == SQL_TOK_END) {
				pos = save_pos;
				start = save_start;
				t = SQL_TOK_WORD;
			}
		}
		if (t != SQL_TOK_WORD && t != SQL_TOK_QIDENT)
			continue;
		st->name_off = start;
		st->name_len = pos - start;
	}
}

static inline bool
sql_classify_is_op_char(char c)
{
	return c != '\0' && strchr("+-*/<>=~!@#%^&|`?:", c) != NULL;
}

/*
 * More than SQL_PARSE_OPS_MAX operator tokens (runs of operator characters,
 * UNION, INTERSECT, EXCEPT) outside strings and comments: too deep a chain
 * to hand to libpg_query.
 */
static bool
sql_classify_too_many_ops(const char *s, size_t n, bool is_std)
{
	size_t pos = 0, start, ops = 0;
	bool in_op = false;

	if (n < 2 * SQL_PARSE_OPS_MAX)
		return false;
	for (;;) {
		enum sql_tok t = sql_classify_next(s, n, is_std, &pos, &start);

		if (t == SQL_TOK_END)
			return false;
		if (t == SQL_TOK_OTHER && sql_classify_is_op_char(s[start])) {
			if (!in_op)
				ops++;
			in_op = true;
			continue;
		}
		in_op = false;
		if (t == SQL_TOK_WORD &&
		    (sql_classify_word_is(s + start, pos - start, "union") ||
		     sql_classify_word_is(s + start, pos - start, "intersect") ||
		     sql_classify_word_is(s + start, pos - start, "except")))
			ops++;
		if (ops > SQL_PARSE_OPS_MAX)
			return true;
	}
}

static uint64_t
sql_cache_hash(const char *s, size_t n)
{
	return fnv1a64(FNV1A64_INIT, s, n);
}

static inline const char *
sql_cache_text(const struct sql_cache_entry *e)
{
	return (const char *)(e->stmts + e->stmts_cnt);
}

static void
sql_cache_lru_unlink(struct sql_cache_entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		sql_cache.head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		sql_cache.tail = e->prev;
	e->prev = e->next = NULL;
}

static void
sql_cache_lru_push(struct sql_cache_entry *e)
{
	e->prev = NULL;
	e->next = sql_cache.head;
	if (sql_cache.head != NULL)
		sql_cache.head->prev = e;
	sql_cache.head = e;
	if (sql_cache.tail == NULL)
		sql_cache.tail = e;
}

static struct sql_cache_entry *
sql_cache_find(const char *s, size_t n, uint64_t h, bool is_std)
{
	struct sql_cache_entry *e = sql_cache.buckets[h & (SQL_CACHE_BUCKETS - 1)];

	for (; e != NULL; e = e->hnext) {
		if (e->hash == h && e->text_len == n && e->is_std == is_std &&
		    memcmp(sql_cache_text(e), s, n) == 0)
			return e;
	}
	return NULL;
}

static void
sql_cache_remove(struct sql_cache_entry *e)
{
	struct sql_cache_entry **pp = &sql_cache.buckets[e->hash & (SQL_CACHE_BUCKETS - 1)];

	while (*pp != NULL && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp == e)
		*pp = e->hnext;
	sql_cache_lru_unlink(e);
	sql_cache.entries--;
	sql_cache.bytes -= e->alloc_len;
	free(e);
}

/* Remember r for text s. Failure to allocate only means no caching. */
static void
sql_cache_insert(const char *s, size_t n, uint64_t h, bool is_std, const struct sql_result *r)
{
	size_t alloc_len =
		sizeof(struct sql_cache_entry) + r->stmts_cnt * sizeof(struct sql_stmt) + n;
	struct sql_cache_entry *e;

	while (sql_cache.tail != NULL && (sql_cache.entries >= SQL_CACHE_ENTRIES_MAX ||
					  sql_cache.bytes + alloc_len > SQL_CACHE_BYTES_MAX))
		sql_cache_remove(sql_cache.tail);
	e = malloc(alloc_len);
	if (e == NULL)
		return;
	e->hash = h;
	e->text_len = n;
	e->alloc_len = alloc_len;
	e->stmts_cnt = r->stmts_cnt;
	e->flags = r->flags;
	e->has_more = r->has_more;
	e->is_error = r->is_error;
	e->hits = 0;
	e->is_std = is_std;
	memcpy(e->stmts, r->stmts, r->stmts_cnt * sizeof(struct sql_stmt));
	memcpy((char *)sql_cache_text(e), s, n);
	e->hnext = sql_cache.buckets[h & (SQL_CACHE_BUCKETS - 1)];
	sql_cache.buckets[h & (SQL_CACHE_BUCKETS - 1)] = e;
	sql_cache_lru_push(e);
	sql_cache.entries++;
	sql_cache.bytes += alloc_len;
}

/* The scalar fields and first statement of an empty result; stmts past it are left as they were. */
static void
sql_classify_clear(struct sql_result *out)
{
	out->stmts_cnt = 0;
	out->has_more = false;
	out->flags = 0;
	out->is_parsed = false;
	out->is_error = false;
	memset(&out->stmts[0], 0, sizeof(out->stmts[0]));
}

bool
sql_classify_quick(const char *sql, size_t len, struct sql_result *out)
{
	if (sql == NULL)
		len = 0;
	sql_classify_clear(out);
	/* the quick reject passes no text with a NUL: no need to look for one first */
	if (sql_classify_quick_reject(sql, len)) {
		sql_cache.stats.prefiltered++;
		return true;
	}
	return false;
}

/* sql_classify_lexed(); is_all: no prefilter (for sql_classify_all) */
static int
sql_classify_run(const char *sql, size_t len, bool is_std, bool is_all, struct sql_result *out)
{
	struct sql_parse_span spans[SQL_STMTS_MAX];
	struct sql_cache_entry *e;
	const char *nul;
	char *buf = NULL;
	uint64_t h = 0;
	bool is_cacheable;

	if (sql == NULL)
		len = 0;
	sql_classify_clear(out);
	nul = len > 0 ? memchr(sql, '\0', len) : NULL;
	if (nul != NULL)
		len = (size_t)(nul - sql);
	if (!is_all && !sql_classify_prefilter(sql, len, is_std)) {
		sql_cache.stats.prefiltered++;
		return 0;
	}

	is_cacheable = len <= SQL_CACHE_TEXT_MAX;
	if (is_cacheable) {
		/* the same text lexes differently with standard_conforming_strings off */
		h = sql_cache_hash(sql, len) ^ (is_std ? 0 : 0x9e3779b97f4a7c15ull);
		e = sql_cache_find(sql, len, h, is_std);
		if (e != NULL) {
			sql_cache.stats.hits++;
			e->hits++;
			sql_cache_lru_unlink(e);
			sql_cache_lru_push(e);
			memcpy(out->stmts, e->stmts, e->stmts_cnt * sizeof(struct sql_stmt));
			out->stmts_cnt = e->stmts_cnt;
			out->has_more = e->has_more;
			out->flags = e->flags;
			out->is_error = e->is_error;
			out->is_parsed = true;
			return 0;
		}
		sql_cache.stats.misses++;
	}

	buf = malloc(len + 1);
	if (buf == NULL)
		goto fail;
	memcpy(buf, sql, len);
	buf[len] = '\0';
	memset(out, 0, sizeof(*out));
	memset(spans, 0, sizeof(spans));
	if (sql_classify_too_many_ops(buf, len, is_std)) {
		out->is_parsed = true;
		out->is_error = true;
	} else {
		sql_cache.stats.parses++;
		if (sql_parse_classify(buf, len, is_std, out, spans) < 0)
			goto fail;
	}
	sql_classify_set_values(buf, out, spans, is_std);
	sql_classify_name_spans(buf, out, is_std);
	if (is_cacheable)
		sql_cache_insert(buf, len, h, is_std, out);
	free(buf);
	return 0;
fail:
	free(buf);
	memset(out, 0, sizeof(*out));
	return -1;
}

int
sql_classify(const char *sql, size_t len, struct sql_result *out)
{
	if (sql_classify_quick(sql, len, out))
		return 0;
	return sql_classify_lexed(sql, len, true, out);
}

int
sql_classify_lexed(const char *sql, size_t len, bool is_std, struct sql_result *out)
{
	return sql_classify_run(sql, len, is_std, false, out);
}

int
sql_classify_all(const char *sql, size_t len, struct sql_result *out)
{
	/* pub/sub's statements hold no '' string whose lexing could matter: on */
	if (sql_classify_quick(sql, len, out))
		return 0;
	return sql_classify_run(sql, len, true, true, out);
}

void
sql_cache_stats(struct sql_cache_stats *st)
{
	*st = sql_cache.stats;
	st->entries = sql_cache.entries;
}

size_t
sql_cache_top(struct sql_cache_query *out, size_t max)
{
	size_t n = 0;

	/* insertion into a short array sorted by hits, most first: max is small */
	for (const struct sql_cache_entry *e = sql_cache.head; e != NULL && max > 0; e = e->next) {
		size_t i;

		if (n == max && e->hits <= out[n - 1].hits)
			continue;
		i = n < max ? n++ : n - 1;
		while (i > 0 && out[i - 1].hits < e->hits) {
			out[i] = out[i - 1];
			i--;
		}
		out[i].text = sql_cache_text(e);
		out[i].text_len = e->text_len;
		out[i].hash = e->hash;
		out[i].hits = e->hits;
	}
	return n;
}

void
sql_cache_cleanup(void)
{
	while (sql_cache.tail != NULL)
		sql_cache_remove(sql_cache.tail);
	memset(&sql_cache, 0, sizeof(sql_cache));
}
