/*
 * wk_session.c: session state tracking for transaction pooling (see
 * wk_session.h).
 * Runs in: a worker. Small arrays, linear search: a session has a handful
 * of parameters.
 */
#include "worker/wk_session.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "worker/wk_conn.h"

static char *
wk_session_strdup_lower(const char *s)
{
	char *d = strdup(s);

	if (d)
		for (char *p = d; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	return d;
}

void
wk_settings_init(struct wk_settings *s)
{
	s->v = NULL;
	s->cnt = s->cap = 0;
	s->gen++;
}

void
wk_settings_clear(struct wk_settings *s)
{
	for (size_t i = 0; i < s->cnt; i++) {
		free(s->v[i].name);
		free(s->v[i].value);
	}
	s->cnt = 0;
	s->gen++;
}

void
wk_settings_cleanup(struct wk_settings *s)
{
	wk_settings_clear(s);
	free(s->v);
	wk_settings_init(s);
}

const struct wk_setting *
wk_settings_get(const struct wk_settings *s, const char *name)
{
	for (size_t i = 0; i < s->cnt; i++)
		if (strcasecmp(s->v[i].name, name) == 0)
			return &s->v[i];
	return NULL;
}

int
wk_settings_put(struct wk_settings *s, const char *name, const char *value, bool is_raw)
{
	char *v = strdup(value);
	size_t i;

	if (!v)
		return -1;
	s->gen++;
	for (i = 0; i < s->cnt; i++) {
		if (strcasecmp(s->v[i].name, name) == 0) {
			free(s->v[i].value);
			s->v[i].value = v;
			s->v[i].is_raw = is_raw;
			return 0;
		}
	}
	if (s->cnt == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct wk_setting *nv = realloc(s->v, cap * sizeof(*nv));

		if (!nv) {
			free(v);
			return -1;
		}
		s->v = nv;
		s->cap = cap;
	}
	s->v[s->cnt].name = wk_session_strdup_lower(name);
	if (!s->v[s->cnt].name) {
		free(v);
		return -1;
	}
	s->v[s->cnt].value = v;
	s->v[s->cnt].is_raw = is_raw;
	s->cnt++;
	return 0;
}

void
wk_settings_del(struct wk_settings *s, const char *name)
{
	s->gen++;
	for (size_t i = 0; i < s->cnt; i++) {
		if (strcasecmp(s->v[i].name, name) == 0) {
			free(s->v[i].name);
			free(s->v[i].value);
			s->v[i] = s->v[--s->cnt];
			return;
		}
	}
}

void
wk_session_init(struct wk_session *se)
{
	memset(se, 0, sizeof(*se));
	wk_settings_init(&se->startup);
	wk_settings_init(&se->overrides);
}

static void
wk_session_clear_pending(struct wk_session *se)
{
	for (size_t i = 0; i < se->pending_cnt; i++) {
		free(se->pending[i].name);
		free(se->pending[i].value);
	}
	se->pending_cnt = 0;
}

void
wk_session_cleanup(struct wk_session *se)
{
	wk_session_clear_pending(se);
	free(se->pending);
	wk_settings_cleanup(&se->startup);
	wk_settings_cleanup(&se->overrides);
}

const struct wk_setting *
wk_session_get(const struct wk_session *se, const char *name)
{
	const struct wk_setting *v = wk_settings_get(&se->overrides, name);

	return v ? v : wk_settings_get(&se->startup, name);
}

/*
 * PostgreSQL's reading of a boolean setting (parse_bool): on, off (or "of"),
 * true, false, yes, no and their prefixes, 1, 0; quotes around it allowed.
 * -1 when it is none of these (the server refuses such a SET).
 */
static int
wk_session_bool(const char *v)
{
	char w[8];
	size_t n = 0;

	while (*v == ' ' || *v == '\'' || *v == '"')
		v++;
	while (*v && *v != '\'' && *v != '"' && *v != ' ' && n < sizeof(w) - 1)
		w[n++] = (char)tolower((unsigned char)*v++);
	w[n] = '\0';
	if (n == 0)
		return -1;
	if (n >= 2 && strncmp(w, "on", n) == 0)
		return 1;
	if (n >= 2 && strncmp(w, "off", n) == 0)
		return 0;
	if (strncmp(w, "true", n) == 0 || strncmp(w, "yes", n) == 0 || strcmp(w, "1") == 0)
		return 1;
	if (strncmp(w, "false", n) == 0 || strncmp(w, "no", n) == 0 || strcmp(w, "0") == 0)
		return 0;
	return -1;
}

bool
wk_session_is_std_strings(const struct wk_session *se, const struct wk_server_param *reported,
			  size_t reported_cnt, bool is_current)
{
	static const char name[] = "standard_conforming_strings";
	const struct wk_setting *v = NULL;
	bool is_reset = false;
	int b;

	for (size_t i = 0; is_current && i < reported_cnt; i++)
		if (strcmp(reported[i].name, name) == 0)
			return strcmp(reported[i].value, "off") != 0;

	/* the open transaction's latest SET or RESET of it: the server has it by now */
	for (size_t i = se->pending_cnt; i-- > 0 && !is_reset;) {
		const struct wk_op *op = &se->pending[i];

		if (op->kind == WK_OP_RESET_ALL || (op->name && strcmp(op->name, name) == 0)) {
			if (op->kind == WK_OP_SET && (b = wk_session_bool(op->value)) >= 0)
				return b;
			is_reset = op->kind != WK_OP_SET;
		}
	}
	if (!is_reset)
		v = wk_settings_get(&se->overrides, name);
	if (!v)
		v = wk_settings_get(&se->startup, name);
	if (v && (b = wk_session_bool(v->value)) >= 0)
		return b;
	/* the server's own setting (postgresql.conf, ALTER ROLE ...), as it reported it */
	for (size_t i = 0; !is_reset && i < reported_cnt; i++)
		if (strcmp(reported[i].name, name) == 0)
			return strcmp(reported[i].value, "off") != 0;
	return true;
}

/* DateStyle's words as PostgreSQL reports them */
static const char *const wk_datestyle_styles[] = { "ISO", "SQL", "Postgres", "German" };
static const char *const wk_datestyle_orders[] = { "YMD", "DMY", "MDY" };

/*
 * DateStyle's output style and field order in v (a value as reported, or
 * SET's text: quotes, commas and spaces between the words), as
 * PostgreSQL's check_datestyle reads them; -1 when absent. False for a word
 * it does not know, or DEFAULT (resolved by the server).
 */

static bool
wk_session_datestyle_parse(const char *v, int *style, int *order)
{
	char word[32];
	size_t n = 0;

	*style = *order = -1;
	for (const char *p = v;; p++) {
		if (*p && *p != '\'' && *p != '"' && *p != ',' && *p != ' ' && *p != '\t') {
			if (n + 1 >= sizeof(word))
				return false;
			word[n++] = *p;
			continue;
		}
		if (n) {
			int st = -1;

			word[n] = '\0';
			for (int i = 0; i < 4; i++)
				if (strcasecmp(word, wk_datestyle_styles[i]) == 0)
					st = i;
			if (st >= 0) {
				/* German implies DMY unless an order is given */
				*style = st;
				if (st == 3 && *order < 0)
					*order = 1;
			} else if (strcasecmp(word, "YMD") == 0) {
				*order = 0;
			} else if (strcasecmp(word, "DMY") == 0 ||
				   strncasecmp(word, "EURO", 4) == 0) {
				*order = 1;
			} else if (strcasecmp(word, "MDY") == 0 || strcasecmp(word, "US") == 0 ||
				   strncasecmp(word, "NONEURO", 7) == 0) {
				*order = 2;
			} else {
				return false;
			}
			n = 0;
		}
		if (!*p)
			return true;
	}
}

int
wk_session_escape_literals(const char *v, char *out, size_t out_len)
{
	size_t n = 0;

	for (const char *p = v; *p;) {
		char c = *p;

		if (c == '"') {
			/* a quoted identifier: as it is */
			const char *q = strchr(p + 1, '"');

			if (!q)
				return -1;
			while (q[1] == '"' && (q = strchr(q + 2, '"')))
				;
			if (!q || n + (size_t)(q + 1 - p) >= out_len)
				return -1;
			memcpy(out + n, p, (size_t)(q + 1 - p));
			n += (size_t)(q + 1 - p);
			p = q + 1;
			continue;
		}
		if (c == '$')
			return -1; /* a dollar-quoted string: not rewritten */
		if (c == '\'' &&
		    (p == v || !(isalnum((unsigned char)p[-1]) || p[-1] == '_' || p[-1] == '&'))) {
			/* a plain literal, read with standard_conforming_strings off */
			if (n + 2 >= out_len)
				return -1;
			out[n++] = 'E';
			out[n++] = *p++;
			for (;;) {
				if (!*p || n + 2 >= out_len)
					return -1;
				if (*p == '\\') {
					if (!p[1])
						return -1;
					out[n++] = *p++;
					out[n++] = *p++;
					continue;
				}
				if (*p == '\'' && p[1] == '\'') {
					out[n++] = *p++;
					out[n++] = *p++;
					continue;
				}
				out[n++] = *p;
				if (*p++ == '\'')
					break;
			}
			continue;
		}
		if (c == '\'') {
			/* E'...', U&'...', B'...', X'...', N'...': not rewritten */
			return -1;
		}
		if (n + 1 >= out_len)
			return -1;
		out[n++] = *p++;
	}
	out[n] = '\0';
	return 0;
}

int
wk_session_datestyle_merge(const char *current, const char *set_value, char *out, size_t out_len)
{
	int cs, co, ns, no;

	if (!current || !wk_session_datestyle_parse(current, &cs, &co) || cs < 0 || co < 0 ||
	    !wk_session_datestyle_parse(set_value, &ns, &no) || (ns < 0 && no < 0))
		return 0;
	snprintf(out, out_len, "'%s, %s'", wk_datestyle_styles[ns >= 0 ? ns : cs],
		 wk_datestyle_orders[no >= 0 ? no : co]);
	return 1;
}

const char *
wk_session_current(const struct wk_session *se, const char *name, const char *server_value)
{
	const struct wk_setting *v = NULL;

	for (size_t i = se->pending_cnt; i-- > 0;) {
		const struct wk_op *op = &se->pending[i];

		if (op->kind == WK_OP_RESET_ALL || (op->name && strcmp(op->name, name) == 0)) {
			if (op->kind == WK_OP_SET)
				return op->value;
			v = wk_settings_get(&se->startup, name); /* RESET: the startup value */
			return v ? v->value : server_value;
		}
	}
	v = wk_session_get(se, name);
	return v ? v->value : server_value;
}

int
wk_session_add_op(struct wk_session *se, enum wk_op_kind kind, const char *name, const char *value,
		  uint64_t rfq)
{
	struct wk_op *op;

	if (se->pending_cnt == se->pending_cap) {
		size_t cap = se->pending_cap ? se->pending_cap * 2 : 4;
		struct wk_op *n = realloc(se->pending, cap * sizeof(*n));

		if (!n)
			return -1;
		se->pending = n;
		se->pending_cap = cap;
	}
	op = &se->pending[se->pending_cnt];
	op->kind = kind;
	op->rfq = rfq;
	op->name = name ? wk_session_strdup_lower(name) : NULL;
	op->value = value ? strdup(value) : NULL;
	if ((name && !op->name) || (value && !op->value)) {
		free(op->name);
		free(op->value);
		return -1;
	}
	se->pending_cnt++;
	return 0;
}

void
wk_session_shift_ops(struct wk_session *se, size_t from, uint32_t n)
{
	for (size_t i = from; i < se->pending_cnt; i++)
		se->pending[i].rfq += n;
}

void
wk_session_reset_all(struct wk_session *se)
{
	wk_settings_clear(&se->overrides);
}

/* What op does to the values `to`; *has_reset when one goes back to a server default. */
static int
wk_session_op_apply(const struct wk_op *op, struct wk_settings *to, bool *has_reset)
{
	switch (op->kind) {
	case WK_OP_SET:
		return wk_settings_put(to, op->name, op->value, true);
	case WK_OP_RESET:
		wk_settings_del(to, op->name);
		*has_reset = true;
		break;
	case WK_OP_RESET_ALL:
		wk_settings_clear(to);
		*has_reset = true;
		break;
	case WK_OP_END:
		break;
	}
	return 0;
}

int
wk_session_end_tx(struct wk_session *se, bool is_commit, uint64_t upto)
{
	int rc = 0;
	size_t kept = 0;
	bool has_reset;

	for (size_t i = 0; is_commit && rc == 0 && i < se->pending_cnt; i++) {
		struct wk_op *op = &se->pending[i];

		if (op->rfq <= upto) /* not a later request's, pipelined */
			rc = wk_session_op_apply(op, &se->overrides, &has_reset);
	}
	/* the later requests' ops stay pending, in order */
	for (size_t i = 0; i < se->pending_cnt; i++) {
		struct wk_op *op = &se->pending[i];

		if (op->rfq > upto && rc == 0) {
			se->pending[kept++] = *op;
		} else {
			free(op->name);
			free(op->value);
		}
	}
	se->pending_cnt = kept;
	return rc;
}

/* Quote s for SQL: "ident" (q = '"') or E'literal' (q = '\''). */
static void
wk_session_put_quoted(struct pgw_buf *b, const char *s, char q)
{
	for (; *s; s++) {
		if (*s == q || (q == '\'' && *s == '\\'))
			pgw_put_u8(b, (uint8_t)*s);
		pgw_put_u8(b, (uint8_t)*s);
	}
}

static bool
wk_session_same(const struct wk_setting *a, const struct wk_setting *b)
{
	return a->is_raw == b->is_raw && strcmp(a->value, b->value) == 0;
}

static const char *
wk_session_reported(const struct wk_server_param *reported, size_t cnt, const char *name)
{
	for (size_t i = 0; i < cnt; i++)
		if (strcasecmp(reported[i].name, name) == 0)
			return reported[i].value;
	return NULL;
}

/*
 * Lists whose SET quotes a literal as one name (GUC_LIST_QUOTE): SET
 * search_path TO 'a,b' is the one schema "a,b", where a startup value or
 * set_config() takes a,b as a list, unquoted names folded to lower case.
 */
static bool
wk_session_is_list_quote(const char *name)
{
	return strcasecmp(name, "search_path") == 0 || strcasecmp(name, "temp_tablespaces") == 0 ||
	       strcasecmp(name, "session_preload_libraries") == 0 ||
	       strcasecmp(name, "local_preload_libraries") == 0;
}

static void
wk_session_put_set(struct pgw_buf *b, const struct wk_setting *want)
{
	if (!want->is_raw && wk_session_is_list_quote(want->name)) {
		/* the value as PostgreSQL reads it from a startup packet */
		pgw_put_bytes(b, "SELECT pg_catalog.set_config(E'", 31);
		wk_session_put_quoted(b, want->name, '\'');
		pgw_put_bytes(b, "', E'", 5);
		wk_session_put_quoted(b, want->value, '\'');
		pgw_put_bytes(b, "', false);", 10);
		return;
	}
	pgw_put_bytes(b, "SET \"", 5);
	wk_session_put_quoted(b, want->name, '"');
	if (want->is_raw) {
		pgw_put_bytes(b, "\" TO ", 5);
		pgw_put_bytes(b, want->value, strlen(want->value));
	} else {
		pgw_put_bytes(b, "\" TO E'", 7);
		wk_session_put_quoted(b, want->value, '\'');
		pgw_put_u8(b, '\'');
	}
	pgw_put_bytes(b, ";", 1);
}

/* Does the server already have what the client wants? */
static bool
wk_session_has(const struct wk_settings *applied, const struct wk_server_param *reported,
	       size_t reported_cnt, const struct wk_setting *want)
{
	const struct wk_setting *have = wk_settings_get(applied, want->name);
	const char *rep;

	if (have)
		return wk_session_same(have, want);
	rep = wk_session_reported(reported, reported_cnt, want->name);
	return !want->is_raw && rep && strcmp(rep, want->value) == 0;
}

/* Does the server have every value the client wants, and no value the client does not? */
static bool
wk_session_in_step(const struct wk_session *se, const struct wk_settings *applied,
		   const struct wk_server_param *reported, size_t reported_cnt)
{
	for (size_t i = 0; i < se->overrides.cnt; i++) {
		if (!wk_session_has(applied, reported, reported_cnt, &se->overrides.v[i]))
			return false;
	}
	for (size_t i = 0; i < se->startup.cnt; i++) {
		const struct wk_setting *want = &se->startup.v[i];

		if (se->overrides.cnt && wk_settings_get(&se->overrides, want->name))
			continue;
		if (!wk_session_has(applied, reported, reported_cnt, want))
			return false;
	}
	for (size_t i = 0; i < applied->cnt; i++) {
		if (!wk_session_get(se, applied->v[i].name))
			return false;
	}
	return true;
}

int
wk_session_sync(const struct wk_session *se, struct wk_settings *applied,
		const struct wk_server_param *reported, size_t reported_cnt, struct pgw_buf *b)
{
	const struct wk_settings *lists[2] = { &se->overrides, &se->startup };
	size_t start = b->len;
	int n = 0;

	/*
	 * Almost every check-out finds the server in step (the same settings as
	 * the client's): decide that before building a message that would be
	 * thrown away.
	 */
	const struct wk_setting *enc;
	size_t rest;
	int queries = 0;

	if (wk_session_in_step(se, applied, reported, reported_cnt))
		return 0;
	/*
	 * client_encoding first, in a Query of its own: PostgreSQL converts a
	 * whole Query from the encoding in force when it arrives, and the other
	 * values are in the client's encoding.
	 */
	enc = wk_session_get(se, "client_encoding");
	if ((enc && !wk_session_has(applied, reported, reported_cnt, enc)) ||
	    (!enc && wk_settings_get(applied, "client_encoding"))) {
		pgw_begin(b, PGW_MSG_QUERY);
		if (enc)
			wk_session_put_set(b, enc);
		else
			pgw_put_bytes(b, "RESET client_encoding;", 22);
		pgw_put_u8(b, 0);
		pgw_end(b);
		queries++;
	}
	rest = b->len;
	pgw_begin(b, PGW_MSG_QUERY);
	/* values the client wants (an override hides the startup value of its name) */
	for (int l = 0; l < 2; l++) {
		for (size_t i = 0; i < lists[l]->cnt; i++) {
			const struct wk_setting *want = &lists[l]->v[i];

			if (l == 1 && wk_settings_get(&se->overrides, want->name))
				continue;
			if (strcmp(want->name, "client_encoding") == 0 ||
			    wk_session_has(applied, reported, reported_cnt, want))
				continue;
			wk_session_put_set(b, want);
			n++;
		}
	}
	/* values another client left that this one does not have */
	for (size_t i = 0; i < applied->cnt; i++) {
		if (strcmp(applied->v[i].name, "client_encoding") == 0 ||
		    wk_session_get(se, applied->v[i].name))
			continue;
		pgw_put_bytes(b, "RESET \"", 7);
		wk_session_put_quoted(b, applied->v[i].name, '"');
		pgw_put_bytes(b, "\";", 2);
		n++;
	}
	pgw_put_u8(b, 0);
	pgw_end(b);
	if (n == 0)
		b->len = rest;
	else
		queries++;
	if (queries == 0) {
		b->len = start;
		return 0;
	}
	/* the server will have exactly the client's values */
	wk_settings_clear(applied);
	for (int l = 0; l < 2; l++) {
		for (size_t i = 0; i < lists[l]->cnt; i++) {
			const struct wk_setting *want = &lists[l]->v[i];

			if (l == 1 && wk_settings_get(&se->overrides, want->name))
				continue;
			if (wk_settings_put(applied, want->name, want->value, want->is_raw) < 0) {
				wk_settings_clear(applied);
				return -1;
			}
		}
	}
	return b->has_error ? -1 : queries;
}

int
wk_session_apply_ops(const struct wk_session *se, struct wk_settings *applied, bool *has_reset,
		     uint64_t upto)
{
	*has_reset = false;
	for (size_t i = 0; i < se->pending_cnt; i++) {
		const struct wk_op *op = &se->pending[i];

		/* a RESET: the server went back to its own default, not the client's startup value */
		if (op->rfq <= upto && wk_session_op_apply(op, applied, has_reset) < 0)
			return -1;
	}
	return 0;
}

int
wk_session_end_at_mark(struct wk_session *se, struct wk_settings *applied, bool is_commit,
		       bool *has_reset)
{
	size_t m = 0;
	bool ignored;
	int rc = 0;

	*has_reset = false;
	while (m < se->pending_cnt && se->pending[m].kind != WK_OP_END)
		m++;
	if (m == se->pending_cnt)
		return 0;
	for (size_t i = 0; is_commit && rc == 0 && i < m; i++) {
		rc = wk_session_op_apply(&se->pending[i], applied, has_reset);
		if (rc == 0)
			rc = wk_session_op_apply(&se->pending[i], &se->overrides, &ignored);
	}
	for (size_t i = 0; i <= m; i++) {
		free(se->pending[i].name);
		free(se->pending[i].value);
	}
	se->pending_cnt -= m + 1;
	memmove(se->pending, se->pending + m + 1, se->pending_cnt * sizeof(*se->pending));
	return rc;
}

/*
 * Session shapes: startup value lists, told apart by their whole text (names,
 * values, rawness, in order), numbered per worker. Clients with the same
 * startup values share a number; lists that do not fit the table get a
 * number of their own (never shared: correct, only not remembered).
 */
#define WK_SHAPE_CNT      32
#define WK_SHAPE_TEXT_MAX 512

struct wk_shape {
	uint64_t id;
	size_t len;
	char text[WK_SHAPE_TEXT_MAX];
};

static struct wk_shape wk_shapes[WK_SHAPE_CNT];
static size_t wk_shapes_cnt;
static uint64_t wk_shape_next_id;

static uint64_t
wk_session_shape(const struct wk_settings *startup)
{
	char text[WK_SHAPE_TEXT_MAX];
	size_t len = 0;

	for (size_t i = 0; i < startup->cnt; i++) {
		const struct wk_setting *v = &startup->v[i];
		size_t nl = strlen(v->name) + 1, vl = strlen(v->value) + 1;

		if (len + nl + vl + 1 > sizeof(text))
			return ++wk_shape_next_id;
		memcpy(text + len, v->name, nl);
		len += nl;
		memcpy(text + len, v->value, vl);
		len += vl;
		text[len++] = v->is_raw ? 'r' : 's';
	}
	for (size_t i = 0; i < wk_shapes_cnt; i++)
		if (wk_shapes[i].len == len && memcmp(wk_shapes[i].text, text, len) == 0)
			return wk_shapes[i].id;
	if (wk_shapes_cnt == WK_SHAPE_CNT)
		return ++wk_shape_next_id;
	wk_shapes[wk_shapes_cnt].id = ++wk_shape_next_id;
	wk_shapes[wk_shapes_cnt].len = len;
	memcpy(wk_shapes[wk_shapes_cnt].text, text, len);
	return wk_shapes[wk_shapes_cnt++].id;
}

int
wk_session_sync_memo(struct wk_session *se, struct wk_settings *applied,
		     const struct wk_server_param *reported, size_t reported_cnt,
		     uint64_t reported_gen, struct wk_sync_memo *memo, struct pgw_buf *b)
{
	uint64_t shape = 0;
	int n;

	/* overrides are the client's own: compare those every time */
	if (se->overrides.cnt == 0) {
		if (se->shape == 0 || se->shape_gen != se->startup.gen) {
			se->shape = wk_session_shape(&se->startup);
			se->shape_gen = se->startup.gen;
		}
		shape = se->shape;
		if (memo->shape == shape && memo->applied_gen == applied->gen &&
		    memo->reported_gen == reported_gen)
			return 0;
	}
	n = wk_session_sync(se, applied, reported, reported_cnt, b);
	/* in step now, or once the SETs in b have run (a failure resets the server) */
	memo->shape = n < 0 ? 0 : shape;
	memo->applied_gen = applied->gen;
	memo->reported_gen = reported_gen;
	return n;
}
