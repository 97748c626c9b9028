/*
 * wk_pubsub_tx.c: LISTEN/UNLISTEN with PostgreSQL's transaction semantics
 * (see wk_pubsub.h). Runs in: a worker.
 *
 * A client's LISTEN/UNLISTEN inside a transaction (a block, or the implicit
 * transaction of a multi-statement Query) is an operation kept until the
 * transaction ends: applied in order at COMMIT, undone at ROLLBACK or when
 * the transaction fails, and undone back to a SAVEPOINT marker by ROLLBACK
 * TO. What pgdog answers itself (LISTEN alone in a block) is recorded at
 * once; what runs on the server among other statements is followed reply by
 * reply:
 * - a followed Query (a watch) lists its statements as the server runs
 *   them; each CommandComplete answers the next statement of the oldest
 *   watch, an ErrorResponse ends the watch's statements, and the
 *   client-visible ReadyForQuery numbered rfq_no ends the watch (numbers
 *   count from when the watch was pushed: rfq_seen + the server's
 *   expect_ready, so requests in flight before it are skipped);
 * - a LISTEN runs on the pooled server as UNLISTEN of the same channel (a
 *   no-op: pooled servers listen on nothing) and its CommandComplete is
 *   turned back into "LISTEN"; the server never listens for a client;
 * - PREPARE TRANSACTION of a block holding such operations gets a LISTEN
 *   of pgdog's own in front of it (its reply dropped), so that PostgreSQL
 *   refuses it with its own error and rolls the block back;
 * - replies not followed statement by statement (the extended protocol,
 *   Queries pgdog cannot follow) are judged by their tags: COMMIT applies,
 *   a ROLLBACK or an error before ReadyForQuery 'I' undoes.
 * Invariant: while a client has operations, watches or a held
 * ReadyForQuery (wk_pubsub_is_watching), wk_server.c hands every reply it
 * may see to wk_pubsub_server_reply().
 */
#include "worker/wk_pubsub.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "shared/config.h"
#include "shared/log.h"
#include "sql/sql_classify.h"
#include "worker/wk_client.h"
#include "worker/wk_pool.h"
#include "worker/wk_prepared.h"
#include "worker/wk_pubsub_int.h"

/* ---- operations of an open transaction ---------------------------------- */

/* Record kind/name in c's open transaction (see struct wk_pubsub_client ops). -1 on out of memory. */
int
wk_pubsub_op_add(struct wk_client *c, struct wk_pubsub_pool *pp, enum sql_kind kind,
		 const char *name)
{
	struct wk_pubsub_client *pc = wk_pubsub_client_get(c, pp);
	struct wk_pubsub_op *op;

	if (!pc ||
	    wk_pubsub_grow_n((void **)&pc->ops, sizeof(*pc->ops), pc->ops_cnt, &pc->ops_cap) < 0)
		return -1;
	op = &pc->ops[pc->ops_cnt];
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	snprintf(op->name, sizeof(op->name), "%s", name);
	switch (kind) {
	case SQL_LISTEN:
		/*
		 * The listener LISTENs now, so that the channel is live on the
		 * server by the time the client commits; the client joins it then.
		 */
		op->ch = wk_pubsub_chan_get(pc->pp, name);
		if (!op->ch)
			return -1;
		op->ch->pending_cnt++;
		op->blocks_prepare = true;
		pc->has_listened = true;
		break;
	case SQL_UNLISTEN:
	case SQL_UNLISTEN_ALL:
		/* PostgreSQL skips the UNLISTEN of a session that never listened */
		op->blocks_prepare = pc->has_listened;
		break;
	default:
		break;
	}
	pc->ops_cnt++;
	return 0;
}

/* Undo the operations from index from on (rolled back). */
static void
wk_pubsub_ops_drop(struct wk_pubsub_client *pc, size_t from)
{
	while (pc->ops_cnt > from) {
		struct wk_pubsub_op *op = &pc->ops[--pc->ops_cnt];

		if (op->ch) {
			op->ch->pending_cnt--;
			wk_pubsub_chan_release(op->ch);
		}
	}
}

/* Index of the newest SAVEPOINT marker called name, or -1. */
static ssize_t
wk_pubsub_marker_find(const struct wk_pubsub_client *pc, const char *name)
{
	for (size_t i = pc->ops_cnt; i-- > 0;)
		if (pc->ops[i].kind == SQL_SAVEPOINT && strcmp(pc->ops[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

/*
 * ROLLBACK TO name: what followed the savepoint is undone. A savepoint pgdog
 * did not record was set before the transaction's first operation (markers
 * are recorded from then on), so then everything goes.
 */
static void
wk_pubsub_ops_rollback_to(struct wk_pubsub_client *pc, const char *name)
{
	ssize_t i = wk_pubsub_marker_find(pc, name);

	wk_pubsub_ops_drop(pc, i < 0 ? 0 : (size_t)i + 1);
}

/* RELEASE name: that savepoint and the later ones go; their operations stay. */
static void
wk_pubsub_ops_release(struct wk_pubsub_client *pc, const char *name)
{
	ssize_t i = wk_pubsub_marker_find(pc, name);
	size_t j = i < 0 ? 0 : (size_t)i;

	for (size_t k = j; k < pc->ops_cnt; k++)
		if (pc->ops[k].kind != SQL_SAVEPOINT)
			pc->ops[j++] = pc->ops[k];
	pc->ops_cnt = j;
}

/* Does c's open transaction hold an operation PostgreSQL refuses to PREPARE? */
static bool
wk_pubsub_ops_block_prepare(const struct wk_pubsub_client *pc)
{
	for (size_t i = 0; pc && i < pc->ops_cnt; i++)
		if (pc->ops[i].blocks_prepare)
			return true;
	return false;
}

/*
 * c's transaction ended: apply its operations in order if it committed,
 * undo them if not. WK_CLOSED when c was closed (out of memory).
 */
static enum wk_rc
wk_pubsub_ops_end(struct wk_client *c, bool is_commit)
{
	struct wk_pubsub_client *pc = c->pubsub;
	bool is_oom = false;
	size_t n;

	if (!pc || !pc->ops_cnt)
		return WK_OK;
	if (!is_commit) {
		log_debug(&c->lctx, "pub/sub: transaction rolled back: LISTEN/UNLISTEN dropped");
		wk_pubsub_ops_drop(pc, 0);
		return WK_OK;
	}
	n = pc->ops_cnt;
	pc->ops_cnt = 0; /* applying adds none */
	for (size_t i = 0; i < n; i++) {
		const struct wk_pubsub_op *op = &pc->ops[i];

		switch (op->kind) {
		case SQL_LISTEN:
			/* joined first, released after: the channel never disappears in between */
			if (!is_oom && wk_pubsub_listen(c, pc->pp, op->name, false) < 0)
				is_oom = true;
			op->ch->pending_cnt--;
			wk_pubsub_chan_release(op->ch);
			break;
		case SQL_UNLISTEN:
			wk_pubsub_drop(c, op->name);
			break;
		case SQL_UNLISTEN_ALL:
			wk_pubsub_drop(c, NULL);
			break;
		default:
			break; /* savepoint markers */
		}
	}
	if (is_oom)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	return WK_OK;
}

bool
wk_pubsub_has_pending(const struct wk_client *c)
{
	return c->pubsub && c->pubsub->ops_cnt;
}

void
wk_pubsub_client_tx_end(struct wk_client *c, bool is_commit)
{
	(void)wk_pubsub_ops_end(c, is_commit);
}

/* ---- Queries whose replies pub/sub follows ------------------------------- */

/*
 * The offset of the first word of the statement at loc (end: the end of
 * the text), past blanks and comments; the word must be kw (lower case,
 * any case in the text). (size_t)-1 when it is not.
 */
static size_t
wk_pubsub_stmt_word(const char *sql, size_t loc, size_t end, const char *kw)
{
	size_t i = loc, n = strlen(kw);

	while (i < end) {
		if (sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\n' || sql[i] == '\r' ||
		    sql[i] == '\f' || sql[i] == '\v') {
			i++;
		} else if (sql[i] == '-' && i + 1 < end && sql[i + 1] == '-') {
			while (i < end && sql[i] != '\n')
				i++;
		} else if (sql[i] == '/' && i + 1 < end && sql[i + 1] == '*') {
			unsigned depth = 1; /* comments nest in PostgreSQL */

			for (i += 2; i < end && depth;) {
				if (sql[i] == '/' && i + 1 < end && sql[i + 1] == '*') {
					depth++;
					i += 2;
				} else if (sql[i] == '*' && i + 1 < end && sql[i + 1] == '/') {
					depth--;
					i += 2;
				} else {
					i++;
				}
			}
		} else {
			break;
		}
	}
	if (i + n > end)
		return (size_t)-1;
	for (size_t k = 0; k < n; k++)
		if ((sql[i + k] | 0x20) != kw[k])
			return (size_t)-1;
	return i;
}

static bool
wk_pubsub_is_watching_pc(const struct wk_pubsub_client *pc)
{
	return pc && (pc->ops_cnt || pc->watch_cnt || pc->is_holding);
}

bool
wk_pubsub_is_watching(const struct wk_client *c)
{
	return wk_pubsub_is_watching_pc(c->pubsub);
}

bool
wk_pubsub_follows_ready(const struct wk_client *c)
{
	const struct wk_pubsub_client *pc = c->pubsub;

	return pc && (pc->chans_cnt || wk_pubsub_is_watching_pc(pc));
}

bool
wk_pubsub_is_holding(const struct wk_client *c)
{
	return c->pubsub && c->pubsub->is_holding;
}

/* Is s quiet (nothing in flight) with transaction status st? */
static bool
wk_pubsub_server_idle_in(const struct wk_server *s, char st)
{
	return s->expect_ready == 0 && !s->has_unsynced && s->internal_ready == 0 &&
	       s->slots_cnt == 0 && s->fwd_remaining == 0 && s->tx_status == st;
}

/* The channel pgdog's own LISTEN before a PREPARE TRANSACTION uses (never committed). */
#define WK_PUBSUB_GUARD_SQL "LISTEN pgdog_prepare_guard; "

/*
 * A Query for c's server (c ACTIVE, the Query whole at the front of its
 * input) that holds LISTEN/UNLISTEN among other statements, or comes while
 * c's transaction holds operations (or such Queries are in flight): pgdog
 * follows its replies statement by statement (wk_pubsub_server_reply), so
 * that each LISTEN/UNLISTEN counts only if it ran and its transaction
 * committed, with savepoints rolled back to, as PostgreSQL does.
 * The text is rewritten where needed: a LISTEN becomes UNLISTEN of the same
 * channel on the server (a no-op there: pooled servers listen on nothing),
 * its CommandComplete is turned back into "LISTEN"; a PREPARE TRANSACTION of
 * a transaction that holds a LISTEN/UNLISTEN pgdog serves gets pgdog's own
 * LISTEN in front of it (reply dropped), so that the server refuses it with
 * PostgreSQL's own error and rolls the transaction back. The rewritten
 * message replaces the original at the front of the input (*is_handled:
 * read it again). Anything it cannot follow goes on as it is (a LISTEN
 * there pins the server, as before).
 */
enum wk_rc
wk_pubsub_watch_query(struct wk_client *c, const struct pgw_hdr *h, bool *is_handled)
{
	struct evbuffer *in = c->io.in;
	struct wk_pubsub_client *pc = c->pubsub;
	bool is_watching = wk_pubsub_is_watching_pc(pc), is_relevant = false, has_rewrite = false;
	bool in_block, blocks, is_aborted;
	const uint8_t *msg = evbuffer_pullup(in, (ev_ssize_t)pgw_msg_size(h));
	struct wk_pubsub_pool *pp;
	struct wk_pubsub_watch *w;
	struct sql_result res;
	struct pgw_buf *b = &g_wk.scratch;
	const char *sql;
	size_t len, pos = 0;
	char quiet;
	int rc;

	if (!msg)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	sql = (const char *)msg + PGW_HDR_LEN;
	len = wk_strnlen(sql, h->len - 4);
	/* a LISTEN or UNLISTEN has the letters "listen" somewhere */
	if (!is_watching && !wk_text_has_word(sql, len, "listen"))
		return WK_OK;
	/* savepoints matter only while the transaction holds operations */
	rc = is_watching ? sql_classify_all(sql, len, &res) : sql_classify(sql, len, &res);
	if (rc < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	if (!res.is_parsed || res.is_error || res.has_more || !res.stmts_cnt)
		return WK_OK;
	for (size_t i = 0; i < res.stmts_cnt; i++) {
		const struct sql_stmt *st = &res.stmts[i];

		switch (st->kind) {
		case SQL_LISTEN:
			if (st->is_truncated ||
			    wk_pubsub_stmt_word(sql, st->loc, len, "listen") == (size_t)-1)
				return WK_OK;
			is_relevant = has_rewrite = true;
			break;
		case SQL_UNLISTEN:
		case SQL_UNLISTEN_ALL:
			if (st->is_truncated)
				return WK_OK;
			is_relevant = true;
			break;
		case SQL_COMMIT:
		case SQL_ROLLBACK:
		case SQL_SAVEPOINT:
		case SQL_RELEASE:
		case SQL_ROLLBACK_TO:
		case SQL_PREPARE_TX:
		case SQL_DISCARD_ALL:
			is_relevant |= is_watching;
			break;
		case SQL_BEGIN:
			/* statement mode refuses the Query: no server reply to follow */
			if (c->pool->cfg->pooler_mode == CONFIG_POOLER_STATEMENT)
				return WK_OK;
			break;
		default:
			break;
		}
	}
	if (!is_relevant)
		return WK_OK;
	pp = wk_pubsub_pool_of(c);
	pc = pp ? wk_pubsub_client_get(c, pp) : NULL;
	if (!pc || wk_pubsub_grow_n((void **)&pc->watches, sizeof(*pc->watches), pc->watch_cnt,
				    &pc->watch_cap) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	/* the listener LISTENs first, so that a NOTIFY committed with the Query reaches it */
	rc = wk_pubsub_prelisten(c, pc, res.stmts, res.stmts_cnt);
	if (rc < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	if (rc > 0) {
		*is_handled = true; /* read again when it has */
		return WK_OK;
	}
	w = &pc->watches[pc->watch_cnt];
	memset(w, 0, offsetof(struct wk_pubsub_watch, stmts));
	/* its ReadyForQuery comes after those owed for what is in flight */
	w->rfq_no = pc->rfq_seen + c->server->expect_ready + 1;
	/*
	 * PREPARE TRANSACTION needs pgdog's guard when the transaction block it
	 * ends holds a LISTEN/UNLISTEN pgdog serves (not in an aborted block:
	 * PostgreSQL answers ROLLBACK there, and the guard would fail instead).
	 */
	quiet = wk_pubsub_quiet_status(c);
	is_aborted = !quiet && wk_pubsub_server_idle_in(c->server, 'E');
	in_block = quiet ? quiet == 'T' : (pc->ops_cnt > 0 || c->server->tx_status == 'T');
	blocks = in_block && !is_aborted && wk_pubsub_ops_block_prepare(pc);
	/*
	 * Several statements run in one implicit block, which PREPARE
	 * TRANSACTION prepares (alone, outside a block, it prepares nothing).
	 */
	in_block |= res.stmts_cnt > 1;
	pgw_buf_reset(b);
	pgw_begin(b, PGW_MSG_QUERY);
	for (size_t i = 0; i < res.stmts_cnt; i++) {
		const struct sql_stmt *st = &res.stmts[i];
		size_t at;

		if (st->kind == SQL_PREPARE_TX && blocks && in_block && !is_aborted &&
		    (at = wk_pubsub_stmt_word(sql, st->loc, len, "prepare")) != (size_t)-1) {
			pgw_put_bytes(b, sql + pos, at - pos);
			pgw_put_bytes(b, WK_PUBSUB_GUARD_SQL, strlen(WK_PUBSUB_GUARD_SQL));
			pos = at;
			has_rewrite = true;
			w->stmts[w->cnt++].kind = WK_PUBSUB_GUARD;
		}
		if (st->kind == SQL_LISTEN) {
			at = wk_pubsub_stmt_word(sql, st->loc, len, "listen");
			pgw_put_bytes(b, sql + pos, at - pos);
			pgw_put_bytes(b, "UN", 2);
			pos = at;
		}
		w->stmts[w->cnt].kind = (uint8_t)st->kind;
		snprintf(w->stmts[w->cnt].name, sizeof(w->stmts[0].name), "%s", st->name);
		w->cnt++;
		switch (st->kind) {
		case SQL_BEGIN:
			in_block = true;
			break;
		case SQL_LISTEN:
			blocks = true;
			break;
		case SQL_UNLISTEN:
		case SQL_UNLISTEN_ALL:
			blocks |= pc->has_listened;
			break;
		case SQL_COMMIT:
		case SQL_ROLLBACK:
		case SQL_PREPARE_TX:
			/* a new transaction: implicit when more statements follow */
			blocks = is_aborted = false;
			in_block = res.stmts_cnt > 1;
			break;
		default:
			break;
		}
	}
	pc->watch_cnt++;
	pc->is_query_watched = true;
	pc->has_cur_watch = true;
	log_debug(&c->lctx, "pub/sub: following the replies of a Query of %zu statements",
		  res.stmts_cnt);
	if (!has_rewrite)
		return WK_OK;
	pgw_put_bytes(b, sql + pos, len - pos);
	pgw_put_u8(b, 0);
	pgw_end(b);
	if (b->has_error)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	evbuffer_drain(in, pgw_msg_size(h));
	if (evbuffer_prepend(in, b->data, b->len) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	pc->is_rewritten = true;
	*is_handled = true;
	return WK_OK;
}

enum wk_rc
wk_pubsub_watch_parse(struct wk_client *c, const struct sql_stmt *st, size_t parse_size,
		      bool *is_handled)
{
	struct evbuffer *in = c->io.in;
	struct wk_pubsub_pool *pp = wk_pubsub_pool_of(c);
	struct wk_pubsub_client *pc = pp ? wk_pubsub_client_get(c, pp) : NULL;
	const uint8_t *msg = evbuffer_pullup(in, (ev_ssize_t)parse_size);
	struct pgw_buf *b = &g_wk.scratch;
	struct wk_pubsub_watch *w;
	const char *sql;
	size_t len, at = 0;

	if (!pc || !msg ||
	    wk_pubsub_grow_n((void **)&pc->watches, sizeof(*pc->watches), pc->watch_cnt,
			     &pc->watch_cap) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	/* name (empty: checked), query, parameter types (none: checked) */
	sql = (const char *)msg + PGW_HDR_LEN + 1;
	len = wk_strnlen(sql, parse_size - PGW_HDR_LEN - 1);
	if (st->kind == SQL_LISTEN &&
	    (at = wk_pubsub_stmt_word(sql, st->loc, len, "listen")) == (size_t)-1)
		return WK_OK; /* not followed: the server pins */
	switch (wk_pubsub_prelisten(c, pc, st, 1)) {
	case 0:
		break;
	case 1:
		*is_handled = true; /* read again once the listener has LISTENed */
		return WK_OK;
	default:
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	}
	w = &pc->watches[pc->watch_cnt];
	memset(w, 0, offsetof(struct wk_pubsub_watch, stmts));
	/* its Sync's ReadyForQuery comes after those owed for what is in flight */
	w->rfq_no = pc->rfq_seen + c->server->expect_ready + 1;
	w->stmts[0].kind = (uint8_t)st->kind;
	snprintf(w->stmts[0].name, sizeof(w->stmts[0].name), "%s", st->name);
	w->cnt = 1;
	pc->watch_cnt++;
	pc->is_query_watched = true;
	pc->has_cur_watch = true;
	log_debug(&c->lctx, "pub/sub: following the reply of an extended-protocol statement (%d)",
		  (int)st->kind);
	if (st->kind != SQL_LISTEN)
		return WK_OK;
	pgw_buf_reset(b);
	pgw_begin(b, PGW_MSG_PARSE);
	pgw_put_u8(b, 0);
	pgw_put_bytes(b, sql, at);
	pgw_put_bytes(b, "UN", 2);
	pgw_put_bytes(b, sql + at, len - at);
	pgw_put_u8(b, 0);
	pgw_put_u16(b, 0);
	pgw_end(b);
	if (b->has_error)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	evbuffer_drain(in, parse_size);
	if (evbuffer_prepend(in, b->data, b->len) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	pc->is_rewritten = true;
	*is_handled = true;
	return WK_OK;
}

enum wk_rc
wk_pubsub_parse_named(struct wk_client *c, const struct pgw_hdr *h)
{
	struct evbuffer *in = c->io.in;
	const uint8_t *msg;
	const char *body, *sql;
	size_t blen = h->len - 4, nlen, qlen;
	struct sql_result res;
	struct wk_pubsub_pool *pp;
	struct wk_pubsub_client *pc;
	enum sql_kind kind;

	/* a server that does not rewrite names is pinned by the statement anyway */
	if (c->state != WK_CLIENT_ACTIVE || !c->server || !c->server->is_tracked ||
	    h->len > WK_PUBSUB_QUERY_MAX || evbuffer_get_length(in) < pgw_msg_size(h))
		return WK_OK;
	msg = evbuffer_pullup(in, (ev_ssize_t)pgw_msg_size(h));
	if (!msg)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	body = (const char *)msg + PGW_HDR_LEN;
	nlen = wk_strnlen(body, blen);
	if (nlen == 0 || nlen >= blen)
		return WK_OK;
	sql = body + nlen + 1;
	qlen = wk_strnlen(sql, blen - nlen - 1);
	if (nlen + 1 + qlen >= blen || !wk_text_has_word(sql, qlen, "listen"))
		return WK_OK;
	if (sql_classify(sql, qlen, &res) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	if (!res.is_parsed || res.is_error || res.stmts_cnt != 1 || res.stmts[0].is_truncated)
		return WK_OK;
	kind = res.stmts[0].kind;
	if (kind != SQL_LISTEN && kind != SQL_UNLISTEN && kind != SQL_UNLISTEN_ALL)
		return WK_OK;
	pp = wk_pubsub_pool_of(c);
	pc = pp ? wk_pubsub_client_get(c, pp) : NULL;
	if (!pc)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	/* preparing it does nothing: each run is followed from its Bind (wk_pubsub_bind) */
	pc->is_query_watched = true;
	log_debug(&c->lctx, "pub/sub: %s prepared as a named statement, followed where it runs",
		  kind == SQL_LISTEN ? "LISTEN" : "UNLISTEN");
	return WK_OK;
}

/*
 * The statement a followed LISTEN runs on the server instead: UNLISTEN of
 * the same channel (a no-op there: pooled servers listen on nothing), as a
 * simple Query's LISTEN is rewritten. NULL on out of memory.
 */
static struct wk_prep *
wk_pubsub_unlisten_prep(const char *channel)
{
	struct pgw_buf b;
	struct wk_prep *p = NULL;

	pgw_buf_init(&b);
	pgw_put_u8(&b, 0); /* the name: none, the key is what follows */
	/* the identifier quoted: PostgreSQL keeps it as it is */
	pgw_put_bytes(&b, "UNLISTEN \"", 10);
	for (const char *q = channel; *q; q++) {
		if (*q == '"')
			pgw_put_u8(&b, '"');
		pgw_put_u8(&b, (uint8_t)*q);
	}
	pgw_put_u8(&b, '"');
	pgw_put_u8(&b, 0);
	pgw_put_u16(&b, 0); /* no parameter types */
	if (!b.has_error)
		p = wk_prep_register(b.data, b.len, 0);
	pgw_buf_cleanup(&b);
	return p;
}

/*
 * What p's text is for pub/sub (res: its classification): a LISTEN,
 * UNLISTEN [*] or savepoint command sets p->pubsub to WK_PREP_PUBSUB_FOLLOW,
 * anything else to WK_PREP_PUBSUB_NONE. -1 on out of memory.
 */
static int
wk_pubsub_prep_kind(struct wk_prep *p, struct sql_result *res, enum sql_kind *kind)
{
	const char *sql = (const char *)p->key;

	if (sql_classify_all(sql, wk_strnlen(sql, p->key_len), res) < 0)
		return -1;
	*kind = res->is_parsed && !res->is_error && res->stmts_cnt == 1 &&
				!res->stmts[0].is_truncated
			? res->stmts[0].kind
			: SQL_OTHER;
	switch (*kind) {
	case SQL_SAVEPOINT:
	case SQL_RELEASE:
	case SQL_ROLLBACK_TO:
	case SQL_LISTEN:
	case SQL_UNLISTEN:
	case SQL_UNLISTEN_ALL:
		p->pubsub = WK_PREP_PUBSUB_FOLLOW;
		break;
	default:
		p->pubsub = WK_PREP_PUBSUB_NONE;
		break;
	}
	return 0;
}

int
wk_pubsub_prep_follows(struct wk_prep *p)
{
	struct sql_result res;
	enum sql_kind kind;

	if (p->pubsub == WK_PREP_PUBSUB_UNKNOWN && wk_pubsub_prep_kind(p, &res, &kind) < 0)
		return -1;
	return p->pubsub == WK_PREP_PUBSUB_FOLLOW;
}

int
wk_pubsub_bind(struct wk_client *c, struct wk_prep *p, struct wk_prep **use)
{
	const struct wk_server *s = c->server;
	struct wk_pubsub_pool *pp;
	struct wk_pubsub_client *pc;
	struct wk_pubsub_watch *w;
	struct sql_result res;
	enum sql_kind kind;
	bool is_followable;

	if (wk_pubsub_prep_kind(p, &res, &kind) < 0)
		return -1;
	switch (kind) {
	case SQL_SAVEPOINT:
	case SQL_RELEASE:
	case SQL_ROLLBACK_TO:
		/* they matter only while the transaction holds operations */
		if (!wk_pubsub_is_watching(c))
			return 0;
		break;
	case SQL_LISTEN:
	case SQL_UNLISTEN:
	case SQL_UNLISTEN_ALL:
		/*
		 * A LISTEN that went to its server (pinned) is undone there, not
		 * here; the pin stays (its Execute may not run, or be rolled
		 * back): a simple Query's UNLISTEN * releases it
		 */
		if (wk_client_is_session(c) || (c->pins & WK_PIN_LISTEN))
			return kind == SQL_LISTEN ? 1 : 0;
		break;
	default:
		return 0;
	}
	/* its CommandComplete must be the first of its Sync */
	is_followable = s && !wk_pubsub_execute_unsynced(s);
	if (!is_followable) {
		/* not followed: as an unfollowed Query, a LISTEN pins, an UNLISTEN counts now */
		if (kind == SQL_LISTEN)
			return 1;
		if (kind == SQL_UNLISTEN || kind == SQL_UNLISTEN_ALL)
			wk_pubsub_drop(c, kind == SQL_UNLISTEN ? res.stmts[0].name : NULL);
		return 0;
	}
	if (kind == SQL_LISTEN) {
		*use = wk_pubsub_unlisten_prep(res.stmts[0].name);
		if (!*use)
			return -1;
	}
	pp = wk_pubsub_pool_of(c);
	pc = pp ? wk_pubsub_client_get(c, pp) : NULL;
	if (!pc || wk_pubsub_grow_n((void **)&pc->watches, sizeof(*pc->watches), pc->watch_cnt,
				    &pc->watch_cap) < 0)
		return -1;
	/* the listener LISTENs now; the Sync that may commit it waits for that (sync_waits) */
	if (kind == SQL_LISTEN && wk_pubsub_pre_add(pc, res.stmts[0].name) < 0)
		return -1;
	w = &pc->watches[pc->watch_cnt];
	memset(w, 0, offsetof(struct wk_pubsub_watch, stmts));
	/* its Sync's ReadyForQuery comes after those owed for what is in flight */
	w->rfq_no = pc->rfq_seen + s->expect_ready + 1;
	w->stmts[0].kind = (uint8_t)kind;
	snprintf(w->stmts[0].name, sizeof(w->stmts[0].name), "%s", res.stmts[0].name);
	w->cnt = 1;
	pc->watch_cnt++;
	log_debug(&c->lctx, "pub/sub: following the reply of a named statement (%d)", (int)kind);
	return 0;
}

bool
wk_pubsub_execute_unsynced(const struct wk_server *s)
{
	if (!s->has_unsynced)
		return false;
	if (!s->is_tracked)
		return true; /* no reply slots to tell */
	/* an Execute whose reply has come is popped already: it answers nothing more */
	for (size_t k = s->slots_cnt; k-- > 0;) {
		const struct wk_slot *sl = &s->slots[(s->slots_head + k) & (s->slots_cap - 1)];

		if (sl->kind == WK_SLOT_SYNC || sl->kind == WK_SLOT_QUERY)
			break;
		if (sl->kind == WK_SLOT_EXECUTE)
			return true;
	}
	return false;
}

void
wk_pubsub_query_shift(struct wk_client *c, uint32_t n)
{
	struct wk_pubsub_client *pc = c->pubsub;

	if (pc && pc->has_cur_watch && pc->watch_cnt)
		pc->watches[pc->watch_cnt - 1].rfq_no += n;
}

/* Replace the CommandComplete at the front of in (header h) by one with tag; h follows. */
static int
wk_pubsub_retag(struct evbuffer *in, struct pgw_hdr *h, const char *tag)
{
	struct pgw_buf *b = &g_wk.scratch;

	pgw_buf_reset(b);
	pgw_put_command_complete(b, tag);
	if (b->has_error)
		return -1;
	evbuffer_drain(in, pgw_msg_size(h));
	if (evbuffer_prepend(in, b->data, b->len) < 0)
		return -1;
	h->len = (uint32_t)b->len - 1;
	return 0;
}

/* The CommandComplete at the front of in ends a statement; tag: its text (NUL-terminated). */
static int
wk_pubsub_on_command(struct wk_client *c, struct wk_pubsub_client *pc, struct wk_pubsub_watch *w,
		     struct evbuffer *in, struct pgw_hdr *h, const char *tag)
{
	const struct wk_pubsub_wstmt *st;

	if (!w || w->next >= w->cnt) {
		/* not followed statement by statement: the tags tell what they can */
		if (strcmp(tag, "COMMIT") == 0)
			return wk_pubsub_ops_end(c, true) == WK_CLOSED ? -1 : WK_PUBSUB_PASS;
		if (strcmp(tag, "ROLLBACK") == 0)
			pc->fb_rollback = true; /* or ROLLBACK TO: told apart by the status */
		return WK_PUBSUB_PASS;
	}
	st = &w->stmts[w->next++];
	switch (st->kind) {
	case WK_PUBSUB_GUARD:
		evbuffer_drain(in, pgw_msg_size(h));
		return WK_PUBSUB_DROPPED;
	case SQL_LISTEN:
	case SQL_UNLISTEN:
	case SQL_UNLISTEN_ALL:
		if (wk_pubsub_op_add(c, pc->pp, (enum sql_kind)st->kind, st->name) < 0 ||
		    (st->kind == SQL_LISTEN && wk_pubsub_retag(in, h, "LISTEN") < 0)) {
			wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
			return -1;
		}
		return WK_PUBSUB_PASS;
	case SQL_COMMIT:
		/* COMMIT of a failed transaction answers ROLLBACK */
		return wk_pubsub_ops_end(c, strcmp(tag, "COMMIT") == 0) == WK_CLOSED
			       ? -1
			       : WK_PUBSUB_PASS;
	case SQL_ROLLBACK:
	case SQL_PREPARE_TX:
		wk_pubsub_ops_drop(pc, 0);
		return WK_PUBSUB_PASS;
	case SQL_SAVEPOINT:
		if (pc->ops_cnt && wk_pubsub_op_add(c, pc->pp, SQL_SAVEPOINT, st->name) < 0) {
			wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
			return -1;
		}
		return WK_PUBSUB_PASS;
	case SQL_RELEASE:
		wk_pubsub_ops_release(pc, st->name);
		return WK_PUBSUB_PASS;
	case SQL_ROLLBACK_TO:
		wk_pubsub_ops_rollback_to(pc, st->name);
		return WK_PUBSUB_PASS;
	case SQL_DISCARD_ALL:
		wk_pubsub_ops_drop(pc, 0);
		wk_pubsub_drop(c, NULL);
		return WK_PUBSUB_PASS;
	default:
		return WK_PUBSUB_PASS;
	}
}

bool
wk_pubsub_hold_pending(const struct wk_pubsub_client *pc)
{
	if (pc->is_lost)
		return false;
	for (size_t i = 0; i < pc->chans_cnt; i++)
		if (!wk_pubsub_chan_confirmed(pc->chans[i]))
			return true;
	return pc->sync_seq > pc->pp->done_seq;
}

void
wk_pubsub_unhold(struct wk_pubsub_client *pc)
{
	pc->is_holding = false;
	pc->sync_seq = 0;
	list_del(&pc->hold_node);
	list_init(&pc->hold_node);
}

int
wk_pubsub_server_reply(struct wk_client *c, struct evbuffer *in, struct pgw_hdr *h,
		       bool is_swallowed)
{
	struct wk_pubsub_client *pc = c->pubsub;
	struct wk_pubsub_watch *w = NULL;
	uint8_t buf[PGW_HDR_LEN + SQL_NAME_MAX + 1];
	/* CommandComplete: whole (its tag); ReadyForQuery: its status; ErrorResponse: its type */
	size_t n = h->type == PGW_MSG_ERROR ? 1 : pgw_msg_size(h);
	int rc = WK_PUBSUB_PASS;

	if (!pc || c->state == WK_CLIENT_CLOSING)
		return WK_PUBSUB_PASS;
	if (n > sizeof(buf))
		n = sizeof(buf);
	if (evbuffer_copyout(in, buf, n) != (ev_ssize_t)n)
		return WK_PUBSUB_PASS;
	/* the Query being answered, if it is one pgdog follows */
	if (pc->watch_cnt && pc->watches[0].rfq_no == pc->rfq_seen + 1)
		w = &pc->watches[0];
	switch (h->type) {
	case PGW_MSG_COMMAND_COMPLETE: {
		char tag[SQL_NAME_MAX + 1];
		size_t tlen = n > PGW_HDR_LEN ? n - PGW_HDR_LEN : 0;

		if (is_swallowed)
			break; /* pgdog's own */
		memcpy(tag, buf + PGW_HDR_LEN, tlen);
		tag[tlen < sizeof(tag) ? tlen : sizeof(tag) - 1] = '\0';
		rc = wk_pubsub_on_command(c, pc, w, in, h, tag);
		break;
	}
	case PGW_MSG_ERROR:
		if (is_swallowed)
			break;
		/* the statements after it do not run; an implicit transaction is rolled back */
		if (w)
			w->is_failed = true;
		else
			pc->fb_error = true;
		break;
	case PGW_MSG_READY: {
		char st = n > PGW_HDR_LEN ? (char)buf[PGW_HDR_LEN] : 0;
		bool is_failed = w ? w->is_failed : pc->fb_error;
		bool is_rollback = !w && pc->fb_rollback;

		if (pc->is_holding) {
			/* this ReadyForQuery was counted already: it waits for the listener */
			if (wk_pubsub_hold_pending(pc))
				return WK_PUBSUB_HOLD;
			wk_pubsub_unhold(pc);
			/* what the transaction committed for the client goes before it */
			if (pc->queued_cnt && !pc->is_overflow && !pc->is_lost &&
			    wk_pubsub_client_deliver(c) == WK_CLOSED)
				return -1;
			return WK_PUBSUB_PASS;
		}
		pc->rfq_seen++;
		if (w) {
			/* a few at most (pipelined Queries): shift them down */
			pc->watch_cnt--;
			memmove(pc->watches, pc->watches + 1, pc->watch_cnt * sizeof(*pc->watches));
			w = NULL;
		}
		pc->fb_error = pc->fb_rollback = false;
		if (st == 'I' && !is_swallowed && pc->ops_cnt &&
		    wk_pubsub_ops_end(c, !is_failed && !is_rollback) == WK_CLOSED)
			return -1;
		if (pc->pre_cnt && !pc->watch_cnt && !pc->is_query_wait)
			wk_pubsub_pre_release(pc); /* the LISTENs they were for hold them now */
		if (st == 'I' && !is_swallowed && pc->chans_cnt && !pc->is_lost) {
			/*
			 * A transaction ended: what it notified is delivered before
			 * its ReadyForQuery once the listener answers a query sent
			 * now (PostgreSQL sends pending notifications before that).
			 */
			pc->sync_seq = wk_pubsub_sync_seq(pc->pp);
			if (wk_pubsub_hold_pending(pc)) {
				log_noise(&c->lctx,
					  "pub/sub: the ReadyForQuery waits for the listener");
				pc->is_holding = true;
				list_append(&pc->pp->holders, &pc->hold_node);
				return WK_PUBSUB_HOLD;
			}
		}
		break;
	}
	default:
		break;
	}
	return rc;
}
