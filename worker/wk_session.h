/*
 * wk_session.h: a client's session state in transaction mode, and how to
 * make a server connection match it.
 * Runs in: a worker.
 *
 * A client's setting of a parameter is its startup value (startup packet,
 * options=-c) unless a committed SET overrides it; RESET goes back to the
 * startup value, RESET ALL and DISCARD ALL drop every override. SETs seen
 * inside a transaction wait in a pending list until the transaction ends:
 * kept on commit, dropped on rollback. A server connection remembers the
 * values pgdog or its clients applied to it; on checkout pgdog sends the
 * SETs and RESETs that make it match the new client, as one Query whose
 * replies are swallowed (a change of client_encoding in a Query of its own
 * before it).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/compiler.h"
#include "shared/pgw.h"

struct wk_server_param;

/* One parameter value. is_raw: SQL text to replay verbatim after TO; else a plain string. */
struct wk_setting {
	char *name;  /* lower-case; owned */
	char *value; /* owned */
	bool is_raw;
};

struct wk_settings {
	struct wk_setting *v; /* owned */
	size_t cnt, cap;
	uint64_t gen; /* changes with every put, del and clear (wk_sync_memo) */
};

enum wk_op_kind {
	WK_OP_SET = 0,
	WK_OP_RESET,
	WK_OP_RESET_ALL, /* RESET ALL, DISCARD ALL */
	/*
	 * A COMMIT or ROLLBACK executed in the middle of a request: its
	 * CommandComplete settles the ops before it (wk_session_end_at_mark)
	 */
	WK_OP_END,
};

struct wk_op {
	enum wk_op_kind kind;
	char *name;   /* owned; NULL for RESET_ALL and END */
	char *value;  /* owned; SET only (raw SQL text) */
	uint64_t rfq; /* the ReadyForQuery (rfq_seen's count) that ends its request */
};

struct wk_session {
	struct wk_settings startup;   /* from the startup packet; never changes */
	struct wk_settings overrides; /* committed SET values */
	struct wk_op *pending;        /* SET/RESET of the open transaction; owned */
	size_t pending_cnt, pending_cap;
	/*
	 * ReadyForQuery messages seen in reply to the client's requests: with
	 * requests pipelined, a transaction's end settles only the ops of the
	 * requests it answers (a later one's may still fail).
	 */
	uint64_t rfq_seen;
	/* private: the startup values' shape (wk_session_sync_memo), for startup.gen */
	uint64_t shape, shape_gen;
};

/*
 * What a server connection was last found (or made) in step with: a
 * session shape (the same startup values, no overrides), the server's
 * applied values and its ParameterStatus values, each by generation.
 */
struct wk_sync_memo {
	uint64_t shape; /* 0: nothing remembered */
	uint64_t applied_gen, reported_gen;
};

void wk_settings_init(struct wk_settings *s);
void wk_settings_cleanup(struct wk_settings *s);
void wk_settings_clear(struct wk_settings *s);
const struct wk_setting *wk_settings_get(const struct wk_settings *s, const char *name);
/* Add or replace. -1 on out of memory. */
int wk_settings_put(struct wk_settings *s, const char *name, const char *value, bool is_raw)
	MUST_CHECK;
void wk_settings_del(struct wk_settings *s, const char *name);

void wk_session_init(struct wk_session *se);
void wk_session_cleanup(struct wk_session *se);
/* The value the client should see for name, or NULL (the server default). */
const struct wk_setting *wk_session_get(const struct wk_session *se, const char *name);
/*
 * Whether PostgreSQL lexes the client's next query with
 * standard_conforming_strings on. reported: the ParameterStatus values of
 * the client's server (may be NULL); is_current: nothing is in flight there,
 * so the reported value is the one in force (SET LOCAL and set_config()
 * included). Otherwise: the client's latest SET or RESET in the open
 * transaction, else its committed or startup value, else the server's
 * reported value, else on.
 */
bool wk_session_is_std_strings(const struct wk_session *se, const struct wk_server_param *reported,
			       size_t reported_cnt, bool is_current);
/*
 * The value the client has for name (lower case) now: its open
 * transaction's latest SET or RESET, else its committed or startup value,
 * else server_value (the server's default, as reported; may be NULL).
 */
const char *wk_session_current(const struct wk_session *se, const char *name,
			       const char *server_value);
/*
 * A SET's value text read with standard_conforming_strings off, written so
 * that it means the same whatever the setting: each plain string literal
 * becomes an E'' one (which reads backslashes as such a literal does). -1
 * when it cannot be (other literal forms, no room in out_len).
 */
int wk_session_escape_literals(const char *v, char *out, size_t out_len);

/*
 * SET DateStyle keeps the part of the current value its text does not name
 * (the output style or the field order): out gets the whole value as SQL
 * text ('ISO, DMY') so that it means the same on another server. 0 when it
 * cannot be worked out (DEFAULT, a word PostgreSQL refuses): the text stays.
 */
int wk_session_datestyle_merge(const char *current, const char *set_value, char *out,
			       size_t out_len);

/*
 * Record a SET/RESET of the open transaction, in the request that the
 * ReadyForQuery numbered rfq ends. -1 on out of memory.
 */
int wk_session_add_op(struct wk_session *se, enum wk_op_kind kind, const char *name,
		      const char *value, uint64_t rfq) MUST_CHECK;
/*
 * The transaction ended with the ReadyForQuery numbered upto: apply its
 * pending ops (those up to upto; commit) or drop them. -1 on out of memory:
 * the session's values are then not known, and the caller must end the
 * session.
 */
int wk_session_end_tx(struct wk_session *se, bool is_commit, uint64_t upto) MUST_CHECK;
/*
 * The open transaction committed on a server whose applied values are
 * `applied`: record what the pending ops did to it (a RESET returns the
 * server to its own default). *has_reset: some value went back to a server
 * default, so the client's startup values may need applying again.
 */
int wk_session_apply_ops(const struct wk_session *se, struct wk_settings *applied, bool *has_reset,
			 uint64_t upto) MUST_CHECK;
/*
 * The transaction end that the first WK_OP_END stands for ran: the ops
 * before it are applied to `applied` (the server's values, as
 * wk_session_apply_ops) and to the client's values if it committed
 * (is_commit), else dropped; they and the mark leave the pending list.
 * *has_reset as for wk_session_apply_ops. Nothing happens without a mark.
 * -1 on out of memory: as for wk_session_end_tx.
 */
int wk_session_end_at_mark(struct wk_session *se, struct wk_settings *applied, bool is_commit,
			   bool *has_reset) MUST_CHECK;
/*
 * pgdog put n ReadyForQuery messages of its own (replies swallowed) in
 * front of the end of the request the client is sending: the pending ops
 * from index `from` on (that request's) are ended n later.
 */
void wk_session_shift_ops(struct wk_session *se, size_t from, uint32_t n);
/* DISCARD ALL / RESET ALL committed at once (outside the pending list). */
void wk_session_reset_all(struct wk_session *se);

/*
 * Append to b the Queries that make a server whose applied values are
 * `applied` (and whose reported ParameterStatus values are `reported`)
 * match the client's session, and update `applied` to the client's values:
 * a change of client_encoding in a Query of its own, first, then one with
 * the other SETs and RESETs. Returns the number of Queries (0: b is
 * untouched), or -1 on out of memory (applied is then cleared: the caller
 * must not reuse the server without a full reset).
 */
int wk_session_sync(const struct wk_session *se, struct wk_settings *applied,
		    const struct wk_server_param *reported, size_t reported_cnt, struct pgw_buf *b)
	MUST_CHECK;

/*
 * wk_session_sync() for a check-out, skipping the comparison when memo says
 * the server is in step with a session of se's shape already and neither
 * its applied values nor its reported ones (reported_gen) changed since:
 * the usual case, a server going from client to client with the same
 * startup values and no SET. Updates memo.
 */
int wk_session_sync_memo(struct wk_session *se, struct wk_settings *applied,
			 const struct wk_server_param *reported, size_t reported_cnt,
			 uint64_t reported_gen, struct wk_sync_memo *memo, struct pgw_buf *b)
	MUST_CHECK;
