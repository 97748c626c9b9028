/*
 * sql_parse.c: the only caller of libpg_query (STYLE.md section 10). Parses a
 * SQL text with pg_query_parse_protobuf(), unpacks the protobuf tree, walks it
 * and describes each statement in a struct sql_result. Every libpg_query and
 * protobuf allocation is freed before returning.
 * Runs in: workers (and tests); single-threaded per process. libpg_query keeps
 * a per-thread memory context, released by sql_parse_cleanup().
 *
 * The tree walk is generic: it follows every message-typed field of every
 * node through the protobuf-c descriptors (singular, repeated and oneof), so
 * no node type is missed when the grammar grows. It runs on an explicit heap
 * stack, so no input nesting can overflow the C stack here. It does not
 * descend into bodies that are stored rather than run: CREATE VIEW's query,
 * CREATE FUNCTION/PROCEDURE (SQL-standard bodies), CREATE RULE actions. DO
 * blocks and string function bodies are opaque text and flag nothing.
 */
#include "sql/sql_parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

/* PostgreSQL 15 parsenodes.h: DECLARE ... WITH HOLD */
#define SQL_PARSE_CURSOR_OPT_HOLD 0x0020
/* PostgreSQL pg_class.h: relpersistence of a temporary relation */
#define SQL_PARSE_RELPERSISTENCE_TEMP 't'
/* first size of the walk stack; it grows on the heap past this */
#define SQL_PARSE_STACK_INIT 64
/*
 * Deepest message nesting we unpack. protobuf_c_message_unpack() recurses
 * once or twice per level (about 0.8 KiB of stack per level); "SELECT NOT NOT
 * ... 1" with 5000 NOTs parses fine and overflows an 8 MiB stack there.
 * Real queries nest a few dozen levels; a chain of N UNIONs nests N, of N
 * binary operators 2N.
 */
#define SQL_PARSE_DEPTH_MAX 4000

/*
 * libpg_query's copy of PostgreSQL's GUC (thread-local, exported, not in
 * pg_query.h): its scanner reads it when a parse starts, as PostgreSQL's does
 * for each query. on: a backslash in a plain '' string is an ordinary byte.
 */
extern __thread bool standard_conforming_strings;

typedef bool sql_parse_visit_fn(const ProtobufCMessage *m, void *arg);

struct sql_parse_stack {
	const ProtobufCMessage **items; /* items_init, or heap once grown */
	size_t cnt, cap;
	const ProtobufCMessage *items_init[SQL_PARSE_STACK_INIT];
};

static int
sql_parse_stack_push(struct sql_parse_stack *st, const ProtobufCMessage *m)
{
	if (m == NULL)
		return 0;
	if (st->cnt == st->cap) {
		size_t cap = st->cap * 2;
		const ProtobufCMessage **items;

		if (st->items == st->items_init) {
			items = malloc(cap * sizeof(*items));
			if (items != NULL)
				memcpy(items, st->items_init, st->cnt * sizeof(*items));
		} else {
			items = realloc(st->items, cap * sizeof(*items));
		}
		if (items == NULL) {
			errno = ENOMEM;
			return -1;
		}
		st->items = items;
		st->cap = cap;
	}
	st->items[st->cnt++] = m;
	return 0;
}

/* The message a Node wraps (its one set oneof member), or NULL. */
static const ProtobufCMessage *
sql_parse_node_inner(const PgQuery__Node *n)
{
	const ProtobufCMessageDescriptor *d = n->base.descriptor;
	uint32_t id = (uint32_t)n->node_case;
	const ProtobufCFieldDescriptor *f = NULL;

	if (id == 0)
		return NULL;
	/* field ids run 1..n in declaration order; search only if that ever changes */
	if (id <= d->n_fields && d->fields[id - 1].id == id) {
		f = &d->fields[id - 1];
	} else {
		for (unsigned i = 0; i < d->n_fields; i++) {
			if (d->fields[i].id == id) {
				f = &d->fields[i];
				break;
			}
		}
	}
	if (f == NULL || f->type != PROTOBUF_C_TYPE_MESSAGE)
		return NULL;
	return *(const ProtobufCMessage *const *)((const char *)n + f->offset);
}

/* Push every message-typed child of m. */
static int
sql_parse_push_children(struct sql_parse_stack *st, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;

	if (d == &pg_query__node__descriptor)
		return sql_parse_stack_push(st, sql_parse_node_inner((const PgQuery__Node *)m));
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			const ProtobufCMessage *const *arr =
				*(const ProtobufCMessage *const *const *)(base + f->offset);

			for (size_t j = 0; j < n && arr != NULL; j++) {
				if (sql_parse_stack_push(st, arr[j]) < 0)
					return -1;
			}
			continue;
		}
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		if (sql_parse_stack_push(st, *(const ProtobufCMessage *const *)(base + f->offset)) <
		    0)
			return -1;
	}
	return 0;
}

/*
 * Visit root and every message below it (order unspecified). visit returns
 * false to skip a message's children. Returns 0, or -1 on out of memory.
 */
static int
sql_parse_walk(const ProtobufCMessage *root, sql_parse_visit_fn *visit, void *arg)
{
	struct sql_parse_stack st;
	int rc = 0;

	st.items = st.items_init;
	st.cnt = 0;
	st.cap = SQL_PARSE_STACK_INIT;
	if (sql_parse_stack_push(&st, root) < 0)
		return -1;
	while (st.cnt > 0) {
		const ProtobufCMessage *m = st.items[--st.cnt];

		if (!visit(m, arg))
			continue;
		if (sql_parse_push_children(&st, m) < 0) {
			rc = -1;
			break;
		}
	}
	if (st.items != st.items_init)
		free(st.items);
	return rc;
}

/* The sval of a String node, or NULL for any other node. */
static const char *
sql_parse_node_str(const PgQuery__Node *n)
{
	if (n == NULL || n->node_case != PG_QUERY__NODE__NODE_STRING || n->string == NULL)
		return NULL;
	return n->string->sval;
}

/* pg_temp, or pg_temp_N (another spelling of this session's temp schema) */
static bool
sql_parse_is_temp_schema(const char *schema)
{
	return schema != NULL && strncmp(schema, "pg_temp", 7) == 0 &&
	       (schema[7] == '\0' || schema[7] == '_');
}

static bool
sql_parse_is_temp_rel(const PgQuery__RangeVar *rv)
{
	if (rv == NULL)
		return false;
	if (rv->relpersistence != NULL && rv->relpersistence[0] == SQL_PARSE_RELPERSISTENCE_TEMP)
		return true;
	return sql_parse_is_temp_schema(rv->schemaname);
}

/*
 * set_config()'s third argument (is_local) is a constant that reads as true:
 * the setting ends with the transaction. Anything else (false, NULL, an
 * expression, a missing argument) may set it for the session.
 */
static bool
sql_parse_is_const_true(const PgQuery__Node *n)
{
	const PgQuery__AConst *c;

	while (n != NULL && n->node_case == PG_QUERY__NODE__NODE_TYPE_CAST && n->type_cast != NULL)
		n = n->type_cast->arg;
	if (n == NULL || n->node_case != PG_QUERY__NODE__NODE_A_CONST || n->a_const == NULL)
		return false;
	c = n->a_const;
	if (c->isnull)
		return false;
	switch (c->val_case) {
	case PG_QUERY__A__CONST__VAL_BOOLVAL:
		return c->boolval != NULL && c->boolval->boolval;
	case PG_QUERY__A__CONST__VAL_IVAL:
		return c->ival != NULL && c->ival->ival != 0;
	case PG_QUERY__A__CONST__VAL_SVAL: {
		/* PostgreSQL's boolin: t, tr, tru, true, y, ye, yes, on, 1 (any case) */
		static const char *const yes[] = { "t",  "tr",  "tru", "true", "y",
						   "ye", "yes", "on",  "1" };
		const char *v = c->sval != NULL ? c->sval->sval : NULL;

		if (v == NULL)
			return false;
		for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
			if (strcasecmp(v, yes[i]) == 0)
				return true;
		return false;
	}
	default:
		return false;
	}
}

static unsigned
sql_parse_func_flags(const PgQuery__FuncCall *fc)
{
	const char *name;

	if (fc->n_funcname == 0 || fc->funcname == NULL)
		return 0;
	name = sql_parse_node_str(fc->funcname[fc->n_funcname - 1]);
	if (name == NULL)
		return 0;
	if (name[0] == 's' && strcmp(name, "set_config") == 0)
		return fc->n_args == 3 && fc->args != NULL && sql_parse_is_const_true(fc->args[2])
			       ? 0
			       : SQL_F_SET_CONFIG;
	if (name[0] != 'p')
		return 0;
	if (strcmp(name, "pg_advisory_lock") == 0 || strcmp(name, "pg_advisory_lock_shared") == 0 ||
	    strcmp(name, "pg_try_advisory_lock") == 0 ||
	    strcmp(name, "pg_try_advisory_lock_shared") == 0)
		return SQL_F_ADVISORY_LOCK;
	if (strcmp(name, "pg_advisory_unlock") == 0 ||
	    strcmp(name, "pg_advisory_unlock_shared") == 0)
		return SQL_F_ADVISORY_UNLOCK;
	if (strcmp(name, "pg_advisory_unlock_all") == 0)
		return SQL_F_ADVISORY_UNLOCK_ALL;
	if (strcmp(name, "pg_notify") == 0)
		return SQL_F_NOTIFY_FUNC;
	return 0;
}

/* Is body[at, at + n) a word of its own (no letter, digit or _ on either side)? */
static bool
sql_parse_is_word_at(const char *body, size_t len, size_t at, size_t n)
{
	return (at == 0 || !(isalnum((unsigned char)body[at - 1]) || body[at - 1] == '_')) &&
	       (at + n == len || !(isalnum((unsigned char)body[at + n]) || body[at + n] == '_'));
}

/*
 * Does the body of a DO block set a setting for the session, out of pgdog's
 * sight: a set_config() call, or a SET or RESET statement (at the start,
 * after ';', a quote as in EXECUTE 'SET ...', or BEGIN, THEN, ELSE, LOOP)?
 * Read as text, generously: UPDATE ... SET does not count, a SET LOCAL does.
 */
static bool
sql_parse_body_sets(const char *body)
{
	static const char *const starts[] = { "begin", "then", "else", "loop" };
	size_t len = strlen(body);

	for (size_t i = 0; i < len; i++) {
		size_t n, j, w;

		if (tolower((unsigned char)body[i]) != 's' &&
		    tolower((unsigned char)body[i]) != 'r')
			continue;
		if (len - i >= 10 && strncasecmp(body + i, "set_config", 10) == 0 &&
		    sql_parse_is_word_at(body, len, i, 10))
			return true;
		n = strncasecmp(body + i, "set", 3) == 0     ? 3
		    : strncasecmp(body + i, "reset", 5) == 0 ? 5
							     : 0;
		if (n == 0 || len - i < n || !sql_parse_is_word_at(body, len, i, n))
			continue;
		j = i;
		while (j > 0 && isspace((unsigned char)body[j - 1]))
			j--;
		if (j == 0 || body[j - 1] == ';' || body[j - 1] == '\'')
			return true;
		for (w = j; w > 0 && isalpha((unsigned char)body[w - 1]); w--)
			;
		for (size_t k = 0; k < sizeof(starts) / sizeof(starts[0]); k++)
			if (j - w == strlen(starts[k]) &&
			    strncasecmp(body + w, starts[k], j - w) == 0)
				return true;
	}
	return false;
}

/* Does body hold word (lower case) as a word of its own, in any case? */
static bool
sql_parse_body_has_word(const char *body, const char *word)
{
	size_t len = strlen(body), n = strlen(word);

	for (size_t i = 0; i + n <= len; i++)
		if (strncasecmp(body + i, word, n) == 0 && sql_parse_is_word_at(body, len, i, n))
			return true;
	return false;
}

/*
 * What the body of a DO block leaves in the session out of pgdog's sight,
 * read as text (generously: a false match only pins the server): a
 * session-level advisory lock, a temporary table, a setting, or a LISTEN.
 */
static unsigned
sql_parse_body_flags(const char *body)
{
	static const char *const locks[] = { "pg_advisory_lock", "pg_advisory_lock_shared",
					     "pg_try_advisory_lock",
					     "pg_try_advisory_lock_shared" };
	unsigned flags = 0;

	for (size_t i = 0; i < sizeof(locks) / sizeof(locks[0]); i++)
		if (sql_parse_body_has_word(body, locks[i]))
			flags |= SQL_F_ADVISORY_LOCK;
	if (sql_parse_body_has_word(body, "temp") || sql_parse_body_has_word(body, "temporary") ||
	    sql_parse_body_has_word(body, "pg_temp"))
		flags |= SQL_F_TEMP_OBJECT;
	if (sql_parse_body_sets(body))
		flags |= SQL_F_SET_CONFIG;
	if (sql_parse_body_has_word(body, "listen"))
		flags |= SQL_F_LISTEN;
	return flags;
}

/* The flag visitor: arg is the unsigned flags word of one statement. */
static bool
sql_parse_flags_visit(const ProtobufCMessage *m, void *arg)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	unsigned *flags = arg;

	if (d == &pg_query__func_call__descriptor) {
		*flags |= sql_parse_func_flags((const PgQuery__FuncCall *)m);
	} else if (d == &pg_query__create_stmt__descriptor) {
		if (sql_parse_is_temp_rel(((const PgQuery__CreateStmt *)m)->relation))
			*flags |= SQL_F_TEMP_OBJECT;
	} else if (d == &pg_query__create_seq_stmt__descriptor) {
		if (sql_parse_is_temp_rel(((const PgQuery__CreateSeqStmt *)m)->sequence))
			*flags |= SQL_F_TEMP_OBJECT;
	} else if (d == &pg_query__into_clause__descriptor) {
		/* CREATE TABLE AS, SELECT INTO */
		if (sql_parse_is_temp_rel(((const PgQuery__IntoClause *)m)->rel))
			*flags |= SQL_F_TEMP_OBJECT;
	} else if (d == &pg_query__declare_cursor_stmt__descriptor) {
		if (((const PgQuery__DeclareCursorStmt *)m)->options & SQL_PARSE_CURSOR_OPT_HOLD)
			*flags |= SQL_F_HOLD_CURSOR;
	} else if (d == &pg_query__close_portal_stmt__descriptor) {
		/* CLOSE ALL: no portal name; CLOSE name may close a WITH HOLD cursor */
		const char *name = ((const PgQuery__ClosePortalStmt *)m)->portalname;

		*flags |= name == NULL || *name == '\0' ? SQL_F_CLOSE_ALL : SQL_F_MAY_UNPIN;
	} else if (d == &pg_query__listen_stmt__descriptor) {
		*flags |= SQL_F_LISTEN;
	} else if (d == &pg_query__unlisten_stmt__descriptor) {
		/* UNLISTEN channel (UNLISTEN * has an empty one) */
		const char *ch = ((const PgQuery__UnlistenStmt *)m)->conditionname;

		if (ch != NULL && *ch != '\0')
			*flags |= SQL_F_MAY_UNPIN;
	} else if (d == &pg_query__drop_stmt__descriptor ||
		   d == &pg_query__drop_owned_stmt__descriptor) {
		*flags |= SQL_F_MAY_UNPIN;
	} else if (d == &pg_query__discard_stmt__descriptor) {
		if (((const PgQuery__DiscardStmt *)m)->target ==
		    PG_QUERY__DISCARD_MODE__DISCARD_TEMP)
			*flags |= SQL_F_MAY_UNPIN;
	} else if (d == &pg_query__view_stmt__descriptor) {
		/* the view's query is stored, not run */
		if (sql_parse_is_temp_rel(((const PgQuery__ViewStmt *)m)->view))
			*flags |= SQL_F_TEMP_OBJECT;
		return false;
	} else if (d == &pg_query__create_function_stmt__descriptor) {
		const PgQuery__CreateFunctionStmt *cf = (const PgQuery__CreateFunctionStmt *)m;

		/* CREATE FUNCTION pg_temp.f(): a temporary function */
		if (cf->n_funcname >= 2 && cf->funcname != NULL &&
		    sql_parse_is_temp_schema(sql_parse_node_str(cf->funcname[cf->n_funcname - 2])))
			*flags |= SQL_F_TEMP_OBJECT;
		return false;
	} else if (d == &pg_query__rule_stmt__descriptor) {
		return false;
	} else if (d == &pg_query__do_stmt__descriptor) {
		/*
		 * its body is run, not seen: what it leaves in the session pins as
		 * if seen, and it may end anything (an unlock, an UNLISTEN, a DROP)
		 */
		const PgQuery__DoStmt *ds = (const PgQuery__DoStmt *)m;

		*flags |= SQL_F_MAY_UNPIN;

		for (size_t i = 0; i < ds->n_args && ds->args != NULL; i++) {
			const PgQuery__DefElem *de =
				ds->args[i] != NULL ? ds->args[i]->def_elem : NULL;
			const char *body =
				de != NULL && de->defname != NULL && strcmp(de->defname, "as") == 0
					? sql_parse_node_str(de->arg)
					: NULL;

			if (body != NULL)
				*flags |= sql_parse_body_flags(body);
		}
		return false;
	}
	return true;
}

/*
 * Copy src into dst (dst_len bytes with the NUL), lower-cased if asked.
 * Sets *is_truncated when it does not fit.
 */
static void
sql_parse_copy(char *dst, size_t dst_len, const char *src, bool lower, bool *is_truncated)
{
	size_t n = src != NULL ? strlen(src) : 0;

	if (n >= dst_len) {
		n = dst_len - 1;
		*is_truncated = true;
	}
	for (size_t i = 0; i < n; i++) {
		char ch = src[i];

		if (lower && ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		dst[i] = ch;
	}
	dst[n] = '\0';
}

/*
 * The source bytes of a SET value: from the first argument to the end of the
 * statement. Only plain constants (the generic "SET name TO value" form) are
 * replayable; SET TIME ZONE INTERVAL '...' HOUR TO MINUTE is a cast and is
 * marked truncated instead.
 */
static void
sql_parse_set_span(const PgQuery__RawStmt *rs, const PgQuery__VariableSetStmt *v, size_t len,
		   struct sql_stmt *st, struct sql_parse_span *span)
{
	size_t s0, s1, vstart = SIZE_MAX;

	if (rs->stmt_location < 0 || rs->stmt_len < 0 || (size_t)rs->stmt_location > len)
		goto fail;
	s0 = (size_t)rs->stmt_location;
	s1 = rs->stmt_len == 0 ? len : s0 + (size_t)rs->stmt_len;
	if (s1 > len || v->n_args == 0 || v->args == NULL)
		goto fail;
	for (size_t i = 0; i < v->n_args; i++) {
		const PgQuery__Node *a = v->args[i];

		if (a == NULL || a->node_case != PG_QUERY__NODE__NODE_A_CONST ||
		    a->a_const == NULL || a->a_const->location < 0)
			goto fail;
		if ((size_t)a->a_const->location < vstart)
			vstart = (size_t)a->a_const->location;
	}
	if (vstart < s0 || vstart >= s1)
		goto fail;
	span->off = vstart;
	span->len = s1 - vstart;
	return;
fail:
	st->is_truncated = true;
}

/*
 * SET SESSION CHARACTERISTICS AS TRANSACTION mode: PostgreSQL sets
 * default_transaction_isolation, _read_only or _deferrable, one per mode.
 * One mode is a SET of that parameter, with a value that replays it; several
 * are one statement that sets several parameters, which pgdog does not
 * replay: marked truncated (the server is pinned).
 */
static void
sql_parse_session_characteristics(const PgQuery__VariableSetStmt *v, struct sql_stmt *st)
{
	const PgQuery__DefElem *d;
	const PgQuery__AConst *c;

	st->kind = SQL_SET;
	if (v->n_args != 1 || v->args == NULL || v->args[0] == NULL ||
	    v->args[0]->node_case != PG_QUERY__NODE__NODE_DEF_ELEM ||
	    (d = v->args[0]->def_elem) == NULL || d->defname == NULL || d->arg == NULL ||
	    d->arg->node_case != PG_QUERY__NODE__NODE_A_CONST || (c = d->arg->a_const) == NULL)
		goto fail;
	if (strcmp(d->defname, "transaction_isolation") == 0 &&
	    c->val_case == PG_QUERY__A__CONST__VAL_SVAL && c->sval != NULL &&
	    c->sval->sval != NULL && !strchr(c->sval->sval, '\'') &&
	    strlen(c->sval->sval) + 3 <= sizeof(st->value)) {
		/* "read committed": quoted, as SET default_transaction_isolation takes it */
		snprintf(st->value, sizeof(st->value), "'%s'", c->sval->sval);
	} else if ((strcmp(d->defname, "transaction_read_only") == 0 ||
		    strcmp(d->defname, "transaction_deferrable") == 0) &&
		   c->val_case == PG_QUERY__A__CONST__VAL_IVAL) {
		snprintf(st->value, sizeof(st->value), "%s",
			 c->ival != NULL && c->ival->ival ? "on" : "off");
	} else {
		goto fail;
	}
	snprintf(st->name, sizeof(st->name), "default_%s", d->defname);
	return;
fail:
	st->is_truncated = true;
}

static void
sql_parse_set(const PgQuery__RawStmt *rs, const PgQuery__VariableSetStmt *v, size_t len,
	      struct sql_stmt *st, struct sql_parse_span *span)
{
	switch (v->kind) {
	case PG_QUERY__VARIABLE_SET_KIND__VAR_SET_VALUE:
		/*
		 * SET x = $1: libpg_query reads a parameter there (for query
		 * normalisation), PostgreSQL refuses it (42601): nothing changes.
		 */
		for (size_t i = 0; i < v->n_args && v->args; i++) {
			if (v->args[i] && v->args[i]->node_case == PG_QUERY__NODE__NODE_PARAM_REF) {
				st->kind = SQL_OTHER;
				return;
			}
		}
		st->kind = v->is_local ? SQL_SET_LOCAL : SQL_SET;
		sql_parse_set_span(rs, v, len, st, span);
		break;
	case PG_QUERY__VARIABLE_SET_KIND__VAR_SET_DEFAULT:
		/* SET LOCAL x TO DEFAULT: transaction scoped, value left empty */
		st->kind = v->is_local ? SQL_SET_LOCAL : SQL_RESET;
		break;
	case PG_QUERY__VARIABLE_SET_KIND__VAR_RESET:
		st->kind = SQL_RESET;
		break;
	case PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL:
		st->kind = SQL_RESET_ALL;
		return;
	case PG_QUERY__VARIABLE_SET_KIND__VAR_SET_MULTI:
		/* SET TRANSACTION: this transaction only, nothing to track */
		if (v->name == NULL || strcmp(v->name, "SESSION CHARACTERISTICS") != 0) {
			st->kind = SQL_OTHER;
			return;
		}
		sql_parse_session_characteristics(v, st);
		return;
	case PG_QUERY__VARIABLE_SET_KIND__VAR_SET_CURRENT:
		/*
		 * SET x FROM CURRENT: the session keeps the value in force, which
		 * pgdog does not know (a SET LOCAL's, a function's): replayed as
		 * nothing, it pins the server (as a value too long would).
		 */
		st->kind = SQL_SET;
		st->is_truncated = true;
		break;
	default:
		st->kind = SQL_OTHER;
		return;
	}
	sql_parse_copy(st->name, sizeof(st->name), v->name, true, &st->is_truncated);
	if (st->kind != SQL_SET_LOCAL &&
	    (strcmp(st->name, "role") == 0 || strcmp(st->name, "session_authorization") == 0))
		st->flags |= SQL_F_SESSION_ROLE;
	/*
	 * SET seed seeds random() once; replayed on each server it would seed it
	 * again and again. Like a value pgdog cannot keep, it pins the server.
	 */
	if (st->kind == SQL_SET && strcmp(st->name, "seed") == 0)
		st->is_truncated = true;
}

static void
sql_parse_transaction(const PgQuery__TransactionStmt *t, struct sql_stmt *st)
{
	switch (t->kind) {
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN:
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START:
		st->kind = SQL_BEGIN;
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT:
		st->kind = SQL_COMMIT;
		st->is_chain = t->chain;
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK:
		st->kind = SQL_ROLLBACK;
		st->is_chain = t->chain;
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_SAVEPOINT:
		st->kind = SQL_SAVEPOINT;
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_RELEASE:
		st->kind = SQL_RELEASE;
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_TO:
		st->kind = SQL_ROLLBACK_TO;
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_PREPARE:
		st->kind = SQL_PREPARE_TX;
		return;
	default:
		/* COMMIT/ROLLBACK PREPARED */
		st->kind = SQL_OTHER;
		return;
	}
	/* savepoints: pub/sub follows them (a LISTEN rolled back to is dropped) */
	if (st->kind == SQL_SAVEPOINT || st->kind == SQL_RELEASE || st->kind == SQL_ROLLBACK_TO)
		sql_parse_copy(st->name, sizeof(st->name), t->savepoint_name, false,
			       &st->is_truncated);
}

/*
 * EXPLAIN [ANALYZE] EXECUTE name and CREATE TABLE ... AS EXECUTE name run a
 * prepared statement too: its name is read (and rewritten) as an EXECUTE's.
 */
static void
sql_parse_wrapped_execute(const PgQuery__Node *q, struct sql_stmt *st)
{
	if (q == NULL || q->node_case != PG_QUERY__NODE__NODE_EXECUTE_STMT ||
	    q->execute_stmt == NULL)
		return;
	st->kind = SQL_EXECUTE;
	st->is_wrapped = true;
	sql_parse_copy(st->name, sizeof(st->name), q->execute_stmt->name, false, &st->is_truncated);
}

/* Fill st (zeroed, flags set) from one top-level statement. */
static void
sql_parse_stmt(const PgQuery__RawStmt *rs, size_t len, struct sql_stmt *st,
	       struct sql_parse_span *span)
{
	const PgQuery__Node *n = rs->stmt;

	st->kind = SQL_OTHER;
	if (rs->stmt_location >= 0 && (size_t)rs->stmt_location <= len) {
		st->loc = (size_t)rs->stmt_location;
		st->loc_len = rs->stmt_len > 0 && (size_t)rs->stmt_len <= len - st->loc
				      ? (size_t)rs->stmt_len
				      : len - st->loc;
	}
	if (n == NULL)
		return;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
		if (n->variable_set_stmt != NULL)
			sql_parse_set(rs, n->variable_set_stmt, len, st, span);
		break;
	case PG_QUERY__NODE__NODE_DISCARD_STMT:
		if (n->discard_stmt != NULL)
			st->kind = n->discard_stmt->target == PG_QUERY__DISCARD_MODE__DISCARD_ALL
					   ? SQL_DISCARD_ALL
					   : SQL_DISCARD_OTHER;
		break;
	case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
		if (n->transaction_stmt != NULL)
			sql_parse_transaction(n->transaction_stmt, st);
		break;
	case PG_QUERY__NODE__NODE_LISTEN_STMT:
		if (n->listen_stmt != NULL) {
			st->kind = SQL_LISTEN;
			sql_parse_copy(st->name, sizeof(st->name), n->listen_stmt->conditionname,
				       false, &st->is_truncated);
		}
		break;
	case PG_QUERY__NODE__NODE_UNLISTEN_STMT:
		if (n->unlisten_stmt != NULL) {
			const char *ch = n->unlisten_stmt->conditionname;

			/* protobuf turns UNLISTEN *'s NULL channel into "" */
			st->kind = ch == NULL || ch[0] == '\0' ? SQL_UNLISTEN_ALL : SQL_UNLISTEN;
			sql_parse_copy(st->name, sizeof(st->name), ch, false, &st->is_truncated);
		}
		break;
	case PG_QUERY__NODE__NODE_NOTIFY_STMT:
		if (n->notify_stmt != NULL) {
			st->kind = SQL_NOTIFY;
			sql_parse_copy(st->name, sizeof(st->name), n->notify_stmt->conditionname,
				       false, &st->is_truncated);
			sql_parse_copy(st->value, sizeof(st->value), n->notify_stmt->payload, false,
				       &st->is_truncated);
		}
		break;
	case PG_QUERY__NODE__NODE_EXPLAIN_STMT:
		if (n->explain_stmt != NULL)
			sql_parse_wrapped_execute(n->explain_stmt->query, st);
		break;
	case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT:
		if (n->create_table_as_stmt != NULL)
			sql_parse_wrapped_execute(n->create_table_as_stmt->query, st);
		break;
	case PG_QUERY__NODE__NODE_PREPARE_STMT:
		if (n->prepare_stmt != NULL) {
			st->kind = SQL_PREPARE;
			sql_parse_copy(st->name, sizeof(st->name), n->prepare_stmt->name, false,
				       &st->is_truncated);
		}
		break;
	case PG_QUERY__NODE__NODE_EXECUTE_STMT:
		if (n->execute_stmt != NULL) {
			st->kind = SQL_EXECUTE;
			sql_parse_copy(st->name, sizeof(st->name), n->execute_stmt->name, false,
				       &st->is_truncated);
		}
		break;
	case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
		if (n->deallocate_stmt != NULL) {
			const char *name = n->deallocate_stmt->name;

			/* DEALLOCATE ALL: NULL name, "" after protobuf */
			st->kind = name == NULL || name[0] == '\0' ? SQL_DEALLOCATE_ALL
								   : SQL_DEALLOCATE;
			sql_parse_copy(st->name, sizeof(st->name), name, false, &st->is_truncated);
			/* DEALLOCATE name may drop the last SQL prepared statement */
			if (st->kind == SQL_DEALLOCATE)
				st->flags |= SQL_F_MAY_UNPIN;
		}
		break;
	case PG_QUERY__NODE__NODE_LOAD_STMT:
		/* a loaded library can change anything in the session, and stays */
		st->flags |= SQL_F_LOAD;
		break;
	default:
		break;
	}
}

/* Read a varint at *pos (before end). Returns 0, or -1 when malformed. */
static int
sql_parse_varint(const uint8_t *p, size_t end, size_t *pos, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 64 && *pos < end; shift += 7) {
		uint8_t b = p[(*pos)++];

		*v |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0)
			return 0;
	}
	return -1;
}

/*
 * Check, without recursing, that the packed ParseResult p (len bytes) nests
 * messages at most SQL_PARSE_DEPTH_MAX deep, so that unpacking it cannot
 * overflow the stack. Returns true when it may be unpacked.
 */
static bool
sql_parse_depth_ok(const uint8_t *p, size_t len)
{
	static struct {
		const ProtobufCMessageDescriptor *d;
		size_t end;
	} stack[SQL_PARSE_DEPTH_MAX];
	size_t depth = 0, pos = 0;

	stack[0].d = &pg_query__parse_result__descriptor;
	stack[0].end = len;
	for (;;) {
		const ProtobufCFieldDescriptor *f;
		uint64_t tag, n;

		while (pos == stack[depth].end) {
			if (depth == 0)
				return true;
			depth--;
		}
		if (sql_parse_varint(p, stack[depth].end, &pos, &tag) < 0)
			return false;
		switch (tag & 7) {
		case 0: /* varint */
			if (sql_parse_varint(p, stack[depth].end, &pos, &n) < 0)
				return false;
			break;
		case 1: /* 64-bit */
		case 5: /* 32-bit */
			n = (tag & 7) == 1 ? 8 : 4;
			if (stack[depth].end - pos < n)
				return false;
			pos += n;
			break;
		case 2: /* length-delimited: a message, string or packed array */
			if (sql_parse_varint(p, stack[depth].end, &pos, &n) < 0 ||
			    n > stack[depth].end - pos)
				return false;
			f = tag >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(
							     stack[depth].d, (unsigned)(tag >> 3))
						   : NULL;
			if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE && n > 0) {
				if (depth + 1 == SQL_PARSE_DEPTH_MAX)
					return false;
				depth++;
				stack[depth].d = f->descriptor;
				stack[depth].end = pos + (size_t)n;
			} else {
				pos += (size_t)n;
			}
			break;
		default:
			return false;
		}
	}
}

int
sql_parse_classify(const char *text, size_t len, bool is_std, struct sql_result *out,
		   struct sql_parse_span *spans)
{
	PgQueryProtobufParseResult pr;
	PgQuery__ParseResult *tree = NULL;
	int rc = -1;

	/* the scanner copies it when it starts; the default again for the next caller */
	standard_conforming_strings = is_std;
	pr = pg_query_parse_protobuf(text);
	standard_conforming_strings = true;
	out->is_parsed = true;
	if (pr.error != NULL) {
		if (pr.error->message != NULL && strcmp(pr.error->message, "out of memory") == 0) {
			errno = ENOMEM;
			goto done;
		}
		out->is_error = true;
		rc = 0;
		goto done;
	}
	if (!sql_parse_depth_ok((const uint8_t *)pr.parse_tree.data, pr.parse_tree.len)) {
		/* too deep to inspect safely: reported as unparsable */
		out->is_error = true;
		rc = 0;
		goto done;
	}
	tree = pg_query__parse_result__unpack(NULL, pr.parse_tree.len,
					      (const uint8_t *)pr.parse_tree.data);
	if (tree == NULL) {
		errno = ENOMEM;
		goto done;
	}
	for (size_t i = 0; i < tree->n_stmts; i++) {
		const PgQuery__RawStmt *rs = tree->stmts[i];
		unsigned flags = 0;
		struct sql_stmt *st;

		if (rs == NULL)
			continue;
		/* flags of statements past SQL_STMTS_MAX still count in out->flags */
		if (rs->stmt != NULL &&
		    sql_parse_walk(&rs->stmt->base, sql_parse_flags_visit, &flags) < 0)
			goto done;
		if (out->stmts_cnt == SQL_STMTS_MAX) {
			out->has_more = true;
			out->flags |= flags;
			continue;
		}
		st = &out->stmts[out->stmts_cnt];
		st->flags = flags;
		sql_parse_stmt(rs, len, st, &spans[out->stmts_cnt]);
		out->flags |= st->flags;
		out->stmts_cnt++;
	}
	rc = 0;
done:
	if (tree != NULL)
		pg_query__parse_result__free_unpacked(tree, NULL);
	pg_query_free_protobuf_parse_result(pr);
	return rc;
}

void
sql_parse_cleanup(void)
{
	pg_query_exit();
}
