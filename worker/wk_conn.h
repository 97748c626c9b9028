/*
 * wk_conn.h: the worker's connection objects (clients and servers), the
 * worker-wide state, and the helpers every state machine shares: sending
 * built messages, closing after a flush, deferred freeing, framing.
 * Runs in: a worker. Single-threaded: everything here belongs to the loop.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "shared/auth.h"
#include "shared/compiler.h"
#include "shared/list.h"
#include "shared/log.h"
#include "shared/pgw.h"
#include "sql/sql_classify.h"
#include "worker/wk_prepared.h"
#include "worker/wk_session.h"
#include "worker/wk_stream.h"

/* What a client's unnamed statement is when pgdog rewrote its SQL (struct wk_client sql_kind). */
enum wk_sql_kind {
	WK_SQL_NONE = 0,
	WK_SQL_PREPARE,
	WK_SQL_PREPARE_DUP,
	WK_SQL_EXECUTE,
};

struct wk_pool;
struct wk_pubsub_client;
struct wk_server;

/* Handlers return: keep going, need more bytes, or the connection is gone. */
enum wk_rc {
	WK_OK = 0,
	WK_AGAIN,  /* need more bytes */
	WK_CLOSED, /* gone (closing): do not touch it */
};

/* Output above this stops reading from the peer until it drains to half. */
#define WK_BACKPRESSURE_BYTES (512 * 1024)
_Static_assert(WK_STREAM_DRAINED_BYTES * 2 == WK_BACKPRESSURE_BYTES,
	       "a paused peer resumes when the output has drained to half the limit");

/* Session state that only exists on one server connection (transaction mode). */
#define WK_PIN_ADVISORY 0x01u /* session advisory lock */
#define WK_PIN_TEMP     0x02u /* temporary table, view or sequence */
#define WK_PIN_CURSOR   0x04u /* WITH HOLD cursor */
#define WK_PIN_LISTEN   0x08u /* LISTEN */
#define WK_PIN_ROLE     0x10u /* SET ROLE / SESSION AUTHORIZATION (asked after each) */
#define WK_PIN_PREPARED 0x20u /* named prepared statement (Parse or SQL PREPARE) */
#define WK_PIN_CONFIG   0x40u /* set_config(..., false): a session-level setting */
/*
 * A SET or RESET whose fate pgdog cannot tell from its transaction's end:
 * pending at a ROLLBACK TO or a chained COMMIT/ROLLBACK, or in a Query that
 * goes on after ending a transaction (until DISCARD ALL)
 */
#define WK_PIN_SETTINGS 0x80u
/* a FunctionCall message (libpq's PQfn) other than the large-object API's: its effects are unseen */
#define WK_PIN_FUNCTION 0x100u
/*
 * Not a pin: a mark that travels with a statement's pins (wk_prep pins,
 * unnamed_pins) saying that running it may end some of them, by a count
 * pgdog does not keep (pg_advisory_unlock(), UNLISTEN channel, CLOSE cursor,
 * DROP, DISCARD TEMP), or may leave nothing (a temporary table created ON
 * COMMIT DROP or rolled back, a WITH HOLD cursor or LISTEN rolled back).
 * The client's server is then asked what it still holds once the client is
 * idle (wk_server_pin_probe): c->is_pin_ask_due.
 */
#define WK_PIN_ASK 0x200u
/*
 * A SET pgdog cannot replay (SET ... FROM CURRENT, SET seed, a value too long
 * to keep) or a text it could not read to the end: until DISCARD ALL
 */
#define WK_PIN_OPAQUE 0x400u
/*
 * LOAD: the library stays in the server process, DISCARD ALL or not. The
 * server is closed when its client ends (wk_client_close), never reused.
 */
#define WK_PIN_LOAD 0x800u
/*
 * The pins the server can be asked about: all of a client's pins must be
 * among these. WK_PIN_PREPARED only where the client's protocol-level
 * statements are pgdog's (wk_server_pin_probe): the server is asked about
 * SQL PREPAREd ones.
 */
#define WK_PINS_ASKABLE                                                                \
	(WK_PIN_ADVISORY | WK_PIN_TEMP | WK_PIN_CURSOR | WK_PIN_LISTEN | WK_PIN_ROLE | \
	 WK_PIN_PREPARED)

enum wk_client_state {
	WK_CLIENT_STARTUP = 0, /* reading the startup packet */
	WK_CLIENT_AUTH,        /* password / SASL exchange */
	WK_CLIENT_LOGIN_WAIT,  /* authenticated; waiting for the pool's parameters */
	WK_CLIENT_IDLE,        /* logged in, no server */
	WK_CLIENT_WAIT_SERVER, /* a request is buffered; waiting for a server */
	WK_CLIENT_ACTIVE,      /* linked to a server: bytes flow both ways */
	WK_CLIENT_ADMIN,       /* the admin console */
	WK_CLIENT_CLOSING,     /* flushing its last bytes, then freed */
	WK_CLIENT_STATE_CNT
};

enum wk_auth_step {
	WK_AUTH_NONE = 0,
	WK_AUTH_PASSWORD,   /* waiting for a PasswordMessage (plain or md5) */
	WK_AUTH_SASL_FIRST, /* waiting for SASLInitialResponse */
	WK_AUTH_SASL_FINAL, /* waiting for SASLResponse */
};

/* A portal bound to a statement that changes the session (wk_client bound). */
struct wk_bound {
	char *portal; /* owned, portal_len bytes and a NUL */
	char *sql;    /* owned, sql_len bytes and a NUL */
	size_t portal_len, sql_len;
	uint64_t rfq;     /* the ReadyForQuery ending its Bind's request (rfq_seen's count) */
	bool may_dealloc; /* its text says DISCARD or DEALLOCATE */
};

/* A client's unnamed statement before its last Parse (wk_client unnamed_old). */
struct wk_unnamed_old {
	uint64_t id;
	uint8_t *msg; /* owned */
	size_t len, cap;
	unsigned pins; /* its unnamed_pins */
};

struct wk_client {
	struct list node;      /* in g_wk.clients */
	struct list wait_node; /* in pool->waiters while WAIT_SERVER */
	enum wk_client_state state;
	struct log_ctx lctx;
	struct wk_stream io; /* its socket and buffers */
	uint64_t id;
	uint32_t row; /* index of its shm_client row */
	uint32_t cancel_key;
	bool is_unix;
	bool is_ssl_asked; /* SSLRequest answered: another is a protocol error */
	bool is_gss_asked; /* GSSENCRequest answered */
	bool is_admin;
	bool is_free_later; /* on the reap list */
	bool read_paused;   /* backpressure: its server's output, or its held input, is full */
	bool is_read_off;   /* reading stopped while it waits for a server or parameters */
	bool is_out_full;   /* its own output is full (it does not read pgdog's answers) */
	/*
	 * Login: its startup values are being tried on a server before the
	 * ReadyForQuery (wk_client_login_check); is_login_checked once done.
	 */
	bool is_login_check;
	bool is_login_checked;
	/* its request is on its server: published in its shm row's is_running (for cancels) */
	bool is_running;
	/*
	 * A CancelRequest sent to its server's backend has not arrived yet (shm
	 * cancel_backend): it keeps that server, so that the cancel cannot hit
	 * another client's query, and its next request waits, as PostgreSQL
	 * signals the backend twice, its process and then its process group, and
	 * the second could cancel that request (wk_client_cancel_arrived).
	 */
	bool is_cancel_hold;
	bool is_cancel_read_off; /* reading is off while its next request waits for that */
	uint64_t cancel_hold_us; /* monotonic: when is_cancel_hold began */
	/* a CancelRequest connection kept open until PostgreSQL has the cancel */
	struct wk_cancel_op *cancel_op;
	bool is_skip_to_sync; /* statement mode refused a Parse: drop up to the Sync */
	/*
	 * What ends it once the replies to what it sent before are out, as
	 * PostgreSQL reads its next message only then (WK_END_*): a Terminate,
	 * or a message of an invalid type (end_type), which gets FATAL 08P01.
	 */
	uint8_t end_due;
#define WK_END_TERMINATE 1
#define WK_END_BAD_TYPE  2
	uint8_t end_type;
	size_t drop_remaining; /* idle: bytes of CopyData (outside a COPY) still to drop */
	/*
	 * Cancelled while queued for a server: drop its request as PostgreSQL
	 * skips after an error, without a server (WK_CANCEL_SKIP_*).
	 */
	uint8_t cancel_skip;
#define WK_CANCEL_SKIP_ONE     1  /* a Query or FunctionCall: that message */
#define WK_CANCEL_SKIP_TO_SYNC 2  /* extended protocol: up to and with the Sync */
	bool admin_skip_to_sync;  /* admin: an extended-protocol error was sent */
	int pool_idx;             /* -1 until known */
	uint8_t pooler_mode;      /* enum config_pooler_mode at login: reloads do not change it */
	struct wk_pool *pool;     /* borrowed: owned by the worker */
	struct wk_server *server; /* borrowed: linked while ACTIVE */
	const struct config_user *user; /* borrowed from g_cfg, NULL for unknown/admin */
	char user_name[64];
	char db_name[64];
	/* authentication */
	enum wk_auth_step auth_step;
	bool auth_user_ok; /* the user exists for this database */
	uint8_t md5_salt[4];
	struct auth_scram_server *scram; /* owned, during SCRAM only */
	struct auth_secret *fake_secret; /* owned: unknown users go through SCRAM too */
	char *login_notice;              /* owned: a NOTICE for the end of the login, or NULL */
	/* session state: startup parameters, SETs, what pins a server to it */
	struct wk_session session;
	/*
	 * ParameterStatus values the client was last told that differ from its
	 * pool's (most clients: none): pgdog's own SETs for it do not tell it
	 * again what it knows (wk_client_param_status).
	 */
	struct wk_settings told;
	unsigned pins;                   /* WK_PIN_*: state that lives on its server connection */
	struct wk_prep_names prep_names; /* its named prepared statements (transaction mode) */
	uint64_t seq_server_id;          /* the server of its last checkout (wk_client_attach) */
	/*
	 * Its unnamed statement (transaction mode, prepared_statements not
	 * disabled): unnamed_id numbers its last Parse of it (per worker; 0: it
	 * has none), unnamed_msg holds that Parse so that a later request on
	 * another server can prepare it there first (unnamed_len 0: it cannot).
	 */
	uint64_t unnamed_id;
	uint8_t *unnamed_msg; /* owned */
	size_t unnamed_len, unnamed_cap;
	/* its text has a SET, RESET [ALL], ROLLBACK TO or chain: looked at each Bind */
	bool unnamed_setting;
	/*
	 * Portals bound to such a statement (named or not) and not executed
	 * yet: what the statement does to the session is followed at their
	 * Execute, as PostgreSQL runs it then, not at a Bind that may never
	 * run (wk_client_bound_msg). Cleared when its server goes back to the
	 * pool: portals end with their transaction (a pinned server stays:
	 * idle_rfq tells then).
	 */
	struct wk_bound *bound; /* owned */
	size_t bound_cnt, bound_cap;
	/* the last ReadyForQuery 'I' of its requests (session.rfq_seen's count) */
	uint64_t idle_rfq;
	/*
	 * A DEALLOCATE ALL or DISCARD ALL that may not run (among other
	 * statements of a Query, or sent while the transaction it meets is not
	 * known: an aborted one refuses it): the statements, and pins, go when
	 * its CommandComplete comes (wk_client_tag_ran).
	 */
	bool is_dealloc_tag_due;
	/* the ReadyForQuery ending its request: refused or skipped if no tag came by then */
	uint64_t dealloc_tag_rfq;
	/*
	 * With is_dealloc_tag_due: an SQL PREPARE pinned the server after that
	 * statement (later in its Query), and stays when it runs
	 */
	bool is_pin_after_tag;
	/*
	 * The pins its unnamed statement's text makes (WK_PIN_*): a DISCARD ALL
	 * run from a named statement leaves that statement in place, and its
	 * Execute would make them again
	 */
	unsigned unnamed_pins;
	/*
	 * unnamed_pins of the statement a Parse of the unnamed one replaces,
	 * until wk_client_unnamed_push keeps them with it: that Parse may be
	 * skipped, and the statement before it run again
	 */
	unsigned unnamed_pins_prev;
	/*
	 * Pins that a simple Query's UNLISTEN * or pg_advisory_unlock_all(), or
	 * a RESET ALL that runs (set_config() values), ends: released at the
	 * ReadyForQuery 'I' that ends its transaction if it committed (a failed
	 * Query or a ROLLBACK undoes an UNLISTEN or RESET ALL; an error before
	 * the unlock left the locks), dropped at a ROLLBACK TO SAVEPOINT, at a
	 * later LISTEN, lock or set_config() in its text, or if it did not
	 * commit: the server stays with the client then.
	 */
	unsigned unpin_due;
	uint64_t unpin_rfq; /* the ReadyForQuery ending its request */
	/*
	 * A statement that may have ended its pins ran (WK_PIN_ASK): its server
	 * is asked at the next ReadyForQuery 'I' that leaves nothing pending.
	 */
	bool is_pin_ask_due;
	/*
	 * Counts the statements that pinned (wk_client_pins_add): a probe's
	 * answer is stale if one came after it was asked (s->probe_gen).
	 */
	uint32_t pin_gen;
	/*
	 * The Execute being forwarded runs a COMMIT or ROLLBACK while SETs are
	 * pending: its reply slot gets is_end_mark (wk_client_slot)
	 */
	bool is_end_mark_due;
	/*
	 * The ones before its last Parse, the same way, oldest first, while
	 * Parses of it are not answered: the newest that the server did not
	 * skip (an error earlier in their request) is back in place
	 * (wk_client_unnamed_lost). Entries from unnamed_old_cnt to
	 * unnamed_old_cap are spare buffers.
	 */
	struct wk_unnamed_old *unnamed_old; /* owned */
	size_t unnamed_old_cnt, unnamed_old_cap;
	/* one of them was skipped: whether a server holds the one back is unsure */
	bool is_unnamed_here_unsure;
	/*
	 * prepared_statements = full: its unnamed statement numbered sql_id is
	 * a SQL PREPARE or EXECUTE pgdog rewrote (wk_client_prep_parse_sql),
	 * kept in unnamed_msg to be prepared again on another server:
	 * - WK_SQL_PREPARE of sql_name, for pgdog's statement sql_prep: the
	 *   name is the client's once PostgreSQL runs it (its Execute), not
	 *   when it is parsed; its text prepares the throwaway sql_junk;
	 * - WK_SQL_PREPARE_DUP of sql_junk, a name the client has: a statement
	 *   of that name makes it fail with PostgreSQL's 42P05;
	 * - WK_SQL_EXECUTE of sql_prep: the server must hold it.
	 * sql_prep: a reference held. is_sql_bind_due: the Bind that runs the
	 * PREPARE is on its way to the server (wk_client_slot).
	 */
	uint8_t sql_kind; /* enum wk_sql_kind */
	bool is_sql_bind_due;
	uint64_t sql_id;
	struct wk_prep *sql_prep;
	char sql_name[SQL_NAME_MAX], sql_junk[SQL_NAME_MAX];
	struct wk_pubsub_client *pubsub; /* owned: NULL until it LISTENs through pgdog (pub/sub) */
	/* forwarding */
	size_t fwd_remaining; /* bytes of a partly forwarded message still to move */
	/*
	 * The header wk_client_on_idle() read at the front of front_in while
	 * it held front_len bytes: wk_client_forward() takes it instead of
	 * reading it again, within that one call (front_in NULL: none).
	 */
	struct pgw_hdr front_hdr;
	const struct evbuffer *front_in;
	size_t front_len;
	uint64_t connect_us, wait_start_us, last_request_us;
	uint64_t closing_since_us;
};

/*
 * What a server will answer, message by message, while prepared statements
 * are rewritten (transaction mode, prepared_statements = extended): lets
 * pgdog swallow the replies to what it injected and put its own replies in
 * the right place.
 */
enum wk_slot_kind {
	WK_SLOT_PARSE = 0,   /* ParseComplete */
	WK_SLOT_BIND,        /* BindComplete */
	WK_SLOT_CLOSE,       /* CloseComplete */
	WK_SLOT_DESCRIBE_S,  /* ParameterDescription, then RowDescription or NoData */
	WK_SLOT_DESCRIBE_P,  /* RowDescription or NoData */
	WK_SLOT_EXECUTE,     /* rows, then CommandComplete, EmptyQuery or PortalSuspended */
	WK_SLOT_SYNC,        /* ReadyForQuery */
	WK_SLOT_QUERY,       /* everything up to ReadyForQuery (simple Query, FunctionCall) */
	WK_SLOT_SYNTH_PARSE, /* pgdog answers ParseComplete itself */
	WK_SLOT_SYNTH_CLOSE, /* pgdog answers CloseComplete itself */
};

/* What the end of a slot with a statement means (wk_prep_slot_end). */
enum wk_slot_prep_role {
	WK_SLOT_PREP_HOLD = 0, /* it prepares prep on the server: forget it if refused */
	WK_SLOT_PREP_SQL,      /* a client's Parse or SQL PREPARE under prep's name */
	WK_SLOT_PREP_CHECK,    /* a client's name for a statement the server holds already */
	WK_SLOT_PREP_DROP, /* a client's DEALLOCATE of a name of prep (wk_prep_names_drop_end) */
	/* a client's Bind of its unnamed SQL PREPARE: the Execute after it settles the name */
	WK_SLOT_PREP_EXEC,
	/*
	 * A client's Bind or Describe of its statement prep, under pgdog's name:
	 * a 0A000 "cached plan must not change result type" makes prep stale, a
	 * RowDescription or NoData is prep's result (wk_prep_desc_seen).
	 */
	WK_SLOT_PREP_USE,
	/*
	 * The same for a stale prep, sent under a name no server holds
	 * (WK_PREP_STALE_NAME): the server's 26000 reaches the client as
	 * PostgreSQL's 0A000 (and the server's transaction fails, as it would).
	 */
	WK_SLOT_PREP_STALE,
	/*
	 * pgdog's Describe of prep right after preparing it (reply swallowed):
	 * the result it gets is compared with prep's; ends a client's wait for
	 * that answer (wk_server is_verify_wait).
	 */
	WK_SLOT_PREP_VERIFY,
};

/*
 * Where pgdog's rewriting moved the text of a client's Query (statement
 * names replaced, statements put in front), in characters: seg[i] is
 * [start, end) of the server's text and stood for client_len characters of
 * the client's. Lets an ErrorResponse's position point into the client's
 * text (wk_pos_map_apply).
 */
struct wk_pos_seg {
	uint32_t start, end, client_len;
};
#define WK_POS_SEGS_MAX 17 /* a name for each of SQL_STMTS_MAX statements, and a front */
struct wk_pos_map {
	struct wk_pos_map *next_spare; /* on the worker's list of spare maps */
	bool is_ascii; /* both texts: then characters are bytes in any client_encoding */
	uint32_t cnt;
	struct wk_pos_seg seg[WK_POS_SEGS_MAX];
};

/* An empty map, reused from the worker's spares when it has one; NULL on out of memory. */
struct wk_pos_map *wk_pos_map_new(void);
/* Give m (NULL: nothing) back to the spares, or free it when they are many. */
void wk_pos_map_free(struct wk_pos_map *m);

/*
 * The client's position (1-based) for the server's pos: 0 when it is in text
 * pgdog put in front (none of the client's), pos itself when beyond the text.
 */
long wk_pos_map_apply(const struct wk_pos_map *m, long pos);

/* A slot's unnamed_tag for a client's unnamed_id (never 0). */
static inline uint32_t
wk_unnamed_tag(uint64_t id)
{
	return (uint32_t)id | 0x80000000u;
}

struct wk_slot {
	uint8_t kind;      /* enum wk_slot_kind */
	bool is_swallow;   /* pgdog's own message: the client must not see the reply */
	uint8_t prep_role; /* enum wk_slot_prep_role, when prep is set */
	/* with unnamed_tag: the server held the client's unnamed statement before this Parse */
	bool is_unnamed_prev_here;
	/*
	 * with unnamed_tag: pgdog's copy of the client's unnamed statement
	 * (wk_client_unnamed_ensure); failed or skipped, the server has none
	 */
	bool is_unnamed_copy;
	/*
	 * A client's Query or FunctionCall sent behind extended-protocol
	 * messages not ended by a Sync: an error among those makes the server
	 * skip it too, without a ReadyForQuery.
	 */
	bool is_skippable;
	bool is_unnamed_portal; /* WK_SLOT_PREP_EXEC: the Bind is to the unnamed portal */
	/*
	 * WK_SLOT_EXECUTE of a COMMIT or ROLLBACK with SETs pending before it:
	 * its CommandComplete settles them (a WK_OP_END marks where they end)
	 */
	bool is_end_mark;
	/*
	 * pgdog's message sent ahead of the client's Parse that follows it, for
	 * it (the statement an SQL PREPARE or EXECUTE names): its error is that
	 * Parse's refusal, as PostgreSQL refuses the Parse itself (25P02 in an
	 * aborted block), not a skip leaving the unnamed statement before it
	 */
	bool is_for_next;
	/*
	 * A client's Parse of its unnamed statement, sent as it is: the low
	 * bits of the unnamed_id it got (wk_client_unnamed_parse); 0: other
	 */
	uint32_t unnamed_tag;
	/*
	 * The statement the reply is about (wk_prep_slot_end): a reference
	 * (one of its client_refs), dropped when the slot ends or is cleared,
	 * so that nothing the client does meanwhile (DEALLOCATE ALL, DISCARD
	 * ALL, a Close) frees it under the slot.
	 */
	struct wk_prep *prep;
	struct wk_pos_map *pos_map; /* WK_SLOT_QUERY of a rewritten Query: owned, or NULL */
	/*
	 * When the client has two names for one statement (wk_prep_names
	 * has_alias): the names the message used (a Bind's, a Describe's, a
	 * Query's EXECUTEs), as pairs of strings "<pgdog's>\0<client's>\0"
	 * ended by an empty one; owned, or NULL.
	 */
	char *client_names;
};

enum wk_server_state {
	WK_SERVER_CONNECTING = 0, /* TCP connect in progress */
	WK_SERVER_LOGIN,          /* startup and authentication */
	WK_SERVER_IDLE,           /* in the pool */
	WK_SERVER_ACTIVE,         /* linked to a client */
	WK_SERVER_RESET,          /* running the reset query after a client left */
	WK_SERVER_CLOSING,
	WK_SERVER_STATE_CNT
};

#define WK_SERVER_PARAMS_MAX 32

struct wk_server_param {
	char name[64];
	char value[256];
};

struct wk_server {
	struct list node; /* in the pool list for its state */
	enum wk_server_state state;
	struct log_ctx lctx;
	struct wk_stream io; /* its socket and buffers */
	uint64_t id;
	uint32_t row;             /* index of its shm_server row */
	struct wk_pool *pool;     /* borrowed */
	struct wk_client *client; /* borrowed: linked while ACTIVE */
	bool is_free_later;
	bool read_paused;
	bool is_reserved; /* holds one reservation of the pool's global cap */
	uint32_t epoch;   /* its pool's epoch when it connected (reload, RECONNECT) */
	uint32_t backend_pid, backend_key;
	char tx_status;          /* last ReadyForQuery status: 'I', 'T', 'E' */
	uint32_t expect_ready;   /* ReadyForQuery messages still owed to the client */
	uint32_t internal_ready; /* ReadyForQuery owed to pgdog's own queries (swallowed) */
	bool has_unsynced;       /* extended-protocol messages sent without a Sync */
	/*
	 * an Execute among them: PostgreSQL refuses a DISCARD ALL after it,
	 * up to the Sync (25001, "cannot be executed within a pipeline")
	 */
	bool has_exec_unsynced;
	bool internal_failed;      /* one of pgdog's own queries failed */
	uint8_t reset_after_drain; /* 1: roll back and reset once drained; 2: and the session ended */
	/*
	 * Its client left while a result streamed: pgdog cancels the query, as
	 * PostgreSQL ends one whose rows cannot reach its client (the backend's
	 * write fails, the transaction aborts). gone_cancel is that
	 * CancelRequest until PostgreSQL has it; nothing of pgdog's is sent
	 * before (is_gone_cancel_wait: the drain is over, the reset waits).
	 */
	bool is_gone_cancel_sent;
	bool is_gone_cancel_wait;
	struct wk_cancel_op *gone_cancel;
	struct auth_scram_client *scram; /* owned, during login only */
	size_t fwd_remaining;
	struct wk_server_param params[WK_SERVER_PARAMS_MAX]; /* latest ParameterStatus values */
	size_t params_cnt;
	uint64_t params_gen;           /* changes with every ParameterStatus value */
	struct wk_settings applied;    /* values set on it beyond its defaults */
	struct wk_sync_memo sync_memo; /* the session shape it is in step with */
	bool is_dirty;                 /* its settings are unknown: RESET ALL before reuse */
	bool has_tx_error;             /* an ErrorResponse in the open transaction */
	/*
	 * An ErrorResponse came and pgdog has sent no Sync since: the server
	 * skips what pgdog sends now, up to the next Sync.
	 */
	bool has_error_unsynced;
	/*
	 * The client's next message waits until the server has described a
	 * statement pgdog has just prepared for it (WK_SLOT_PREP_VERIFY); then
	 * is_verify_resume makes the server's reader run the client's input.
	 */
	bool is_verify_wait, is_verify_resume;
	/*
	 * The wait is for every reply slot: the client's simple Query or
	 * FunctionCall behind unsynced messages goes once the server has
	 * answered them, or skipped their rest after an error (wk_client_prep).
	 */
	bool is_unsynced_wait;
	/*
	 * A Flush goes after what the client's input sends now: the wait is
	 * for the answer to its unsynced Execute (wk_client_prep)
	 */
	bool is_flush_due;
	bool is_tag_rollback; /* the last CommandComplete was ROLLBACK */
	/*
	 * A CommandComplete of the transaction was DISCARD ALL: PostgreSQL
	 * committed it at once, it stands even if the transaction fails
	 */
	bool is_tag_discard;
	/* the CommandComplete being read ends an Execute with is_end_mark */
	bool is_end_mark_ran;
	bool is_copy_in; /* the server waits for COPY data */
	/*
	 * PostgreSQL ignores a Sync (or Flush) that comes during COPY FROM STDIN
	 * (libpq sends one right behind an extended-protocol COPY's Execute,
	 * and another after CopyDone): such Syncs owe no ReadyForQuery. pgdog
	 * counts the Syncs sent since the last Execute or Query
	 * (syncs_since_exec, is_last_exec_query) to take back those that went
	 * before the CopyInResponse, and does not count those sent after it
	 * until the client's CopyDone or CopyFail (is_copy_client_done).
	 */
	bool is_copy_client_done;
	bool is_last_exec_query;
	uint32_t syncs_since_exec;
	/*
	 * A CopyDone or CopyFail went after the last Execute: the Syncs after it
	 * are answered (is_synced_after_copy_end: there was one).
	 */
	bool is_copy_end_since_exec;
	bool is_synced_after_copy_end;
	bool is_broken_request; /* the client left halfway through a message to it */
	bool is_release_due;
	bool is_unreusable;   /* closed, not reset, when its client ends (WK_PIN_LOAD) */
	bool is_end_due;      /* its client's end_due comes after this ReadyForQuery */
	bool needs_resync;    /* a RESET left server defaults where the client has startup values */
	bool is_fwd_internal; /* this message of pgdog's own query is passed to the client */
	/*
	 * pgdog asked the server which pins of its client's are still there
	 * (wk_server_pin_probe): its reply comes after probe_skip more of
	 * pgdog's own ReadyForQuery; probe_held is what it found (WK_PIN_*),
	 * all the client's pins until its row is read.
	 */
	bool is_probe_running;
	uint32_t probe_skip;
	unsigned probe_held;
	uint32_t probe_gen; /* the client's pin_gen when it was asked */
	bool is_tracked;    /* replies follow the slot queue (prepared statement rewriting) */
	/*
	 * A Query or FunctionCall went behind unsynced extended-protocol
	 * messages where the slot queue does not follow it (untracked, or
	 * prepared_statements = full): PostgreSQL skips it after an error
	 * before it, so expect_ready may be one too high. The client's end
	 * does not wait for replies, and the server is closed, not reused.
	 */
	bool is_ready_unsure;
	/*
	 * Sequence values the server's session remembers (currval, lastval):
	 * seq_client_id is the client whose checkout last ran here;
	 * is_seq_foreign, set at each checkout, says they may not be the
	 * client's own (see wk_client_attach).
	 */
	uint64_t seq_client_id;
	bool is_seq_foreign;
	bool is_discarding;    /* the message being moved is swallowed */
	struct wk_slot *slots; /* ring of expected replies: owned */
	/*
	 * Sync and Query slots pushed (never reset): a request's number, which
	 * tells whether a client's later message is in the same request as its
	 * Parse (wk_prep_names_is_pending).
	 */
	uint64_t syncs_cnt;
	size_t slots_head, slots_cnt, slots_cap; /* slots_cap: 0 or a power of two */
	uint32_t pos_maps_cnt;                   /* slots with a pos_map */
	uint64_t unnamed_id;     /* the client unnamed_id its unnamed statement is; 0: none known */
	bool is_unnamed_tag_due; /* the next Parse slot is the client's unnamed_id's (unnamed_tag) */
	/*
	 * A Parse of the client's unnamed statement went behind messages not
	 * answered yet (in the request syncs_cnt numbered unnamed_unsure_syncs):
	 * skipped if one of them fails. A Bind or Describe of it after a Sync
	 * waits until every reply is in (wk_client_unnamed_wait).
	 */
	bool is_unnamed_unsure;
	uint64_t unnamed_unsure_syncs;
	bool is_unnamed_prev_here_due; /* its is_unnamed_prev_here */
	struct wk_prep_held held;      /* statements prepared on it */
	bool is_cancel_sent; /* query_timeout: a CancelRequest went out for this request */
	/* and the 57014 it causes is not in yet: worded as query_timeout's */
	bool is_cancel_text_due;
	uint8_t error_slot_kind; /* the reply slot the last error ended (enum wk_slot_kind) */
	bool has_fatal;         /* a FATAL (or PANIC) went to the client: it is told nothing more */
	uint64_t cancel_for_us; /* with is_cancel_sent: the start it was for, and when it went */
	uint64_t cancel_sent_us;
	bool is_listener;   /* pub/sub listener connection: outside the pool's lists and cap */
	bool is_monitor;    /* with is_listener: the replication check connection (wk_lsn.c) */
	bool is_notify_due; /* deliver the client's queued notifications after this ReadyForQuery */
	uint64_t ready_us;
	/* monotonic: its last ReadyForQuery */ /* give it back once the ReadyForQuery has moved */
	uint64_t request_start_us;              /* monotonic: when the running request was sent */
	uint64_t lifetime_us;                   /* server_lifetime with jitter, 0 = forever */
	uint64_t connect_us, state_since_us, request_us;
	uint64_t closing_since_us;
	/* statistics (wk_stats.c), monotonic */
	uint64_t stat_ready_us;    /* its last ReadyForQuery or login */
	uint64_t stat_tx_start_us; /* start of the open transaction's first request */
	uint64_t stat_tx_query_us; /* request time inside the open transaction */
	bool stat_in_tx;
	char error[256]; /* why the login failed, for the waiting client */
	char error_sqlstate[6];
};

/* Worker-wide state. */
struct wk_worker {
	struct event_base *base;
	int slot;
	uint64_t now_us;     /* wall clock, read once per callback batch */
	uint64_t mono_us;    /* monotonic clock */
	struct list clients; /* every client */
	struct event *reap_ev;
	struct wk_client **reap_clients;
	size_t reap_clients_cnt, reap_clients_cap;
	struct wk_server **reap_servers;
	size_t reap_servers_cnt, reap_servers_cap;
	uint64_t next_client_id, next_server_id;
	uint32_t *free_client_rows; /* stack of free shm_client row indexes */
	size_t free_client_rows_cnt;
	uint32_t *free_server_rows;
	size_t free_server_rows_cnt;
	uint32_t clients_cnt;
	bool is_shutting_down;
	bool is_fast_shutdown;
	bool is_loop_done; /* the event loop has ended: cleanup sends nothing new */
	uint64_t shutdown_deadline_us;
	struct pgw_buf scratch;   /* for building messages; reset before each use */
	uint8_t instance_key[32]; /* per-process secret for fake SCRAM salts */
};

extern struct wk_worker g_wk;

/*
 * strnlen through memchr: libpg_query exports a byte-at-a-time strnlen that
 * the dynamic linker binds before glibc's for the whole process.
 */
static inline size_t
wk_strnlen(const char *s, size_t max_len)
{
	const char *z = memchr(s, '\0', max_len);

	return z ? (size_t)(z - s) : max_len;
}

/*
 * Does text (len bytes) hold word (lower-case ASCII letters) anywhere, in
 * any case? A cheap first look before a statement is classified.
 */
static inline bool
wk_text_has_word(const char *text, size_t len, const char *word)
{
	size_t n = strlen(word);

	for (size_t i = 0; i + n <= len; i++)
		if ((text[i] | 0x20) == word[0] && strncasecmp(text + i, word, n) == 0)
			return true;
	return false;
}

/*
 * Does text (len bytes) call currval or lastval, in any case, as far as the
 * letters tell (a column named "lastval" counts too)? It runs on most
 * checkouts (wk_client_attach), so rather than wk_text_has_word() twice (a
 * byte loop per word) it finds each 'v' of their common "val" with memchr: a
 * text without one costs two scans of it.
 */
static inline bool
wk_text_reads_seq(const char *text, size_t len)
{
	const char *end = text + len;

	for (int k = 0; k < 2; k++) {
		for (const char *p = memchr(text, k ? 'V' : 'v', len); p;
		     p = memchr(p + 1, k ? 'V' : 'v', (size_t)(end - p - 1))) {
			if (p - text >= 4 && end - p >= 3 && (p[1] | 0x20) == 'a' &&
			    (p[2] | 0x20) == 'l' &&
			    (strncasecmp(p - 4, "curr", 4) == 0 ||
			     strncasecmp(p - 4, "last", 4) == 0))
				return true;
			if (end - p <= 1)
				break;
		}
	}
	return false;
}

/*
 * Is a Sync the client sends now one PostgreSQL ignores, sent in the middle
 * of COPY FROM STDIN (see wk_server is_copy_client_done)?
 */
static inline bool
wk_client_sync_is_copy(const struct wk_server *s)
{
	return s->is_copy_in && !s->is_copy_client_done;
}

/*
 * A Query message's body (blen bytes) is one NUL-terminated string, as
 * PostgreSQL requires (else it answers 08P01): only such a Query may pgdog
 * answer or rewrite itself; a malformed one goes to a server as it is.
 */
static inline bool
wk_query_is_wellformed(const uint8_t *body, size_t blen)
{
	return blen > 0 && memchr(body, '\0', blen) == body + blen - 1;
}

/* Refresh g_wk.now_us / mono_us (once per callback). */
void wk_clock_update(void);

/*
 * Append built bytes to a connection's output; they are written when the
 * current callback batch ends. -1 on allocation failure.
 */
int wk_conn_send(struct wk_stream *io, const struct pgw_buf *b) MUST_CHECK;

/*
 * Send a FATAL ErrorResponse to a client (if it can still read) and close it
 * after the bytes are flushed. Always returns WK_CLOSED.
 */
enum wk_rc wk_client_fatal(struct wk_client *c, const char *sqlstate, const char *fmt, ...)
	PRINTF_LIKE(3, 4);

/* Defer freeing to after the current callback. */
void wk_reap_client(struct wk_client *c);
void wk_reap_server(struct wk_server *s);

/* Write what is queued on io straight to its socket (before freeing it). */
void wk_conn_flush_now(struct wk_stream *io);

/*
 * The last few Query or Parse texts sql_classify found nothing to track in
 * (its answer depends on the text alone, and clients send the same texts
 * again and again: unnamed statements of the extended protocol, simple
 * queries that differ in their numbers only). known: sql (len bytes) is one
 * of them, or differs from one in the digits of stand-alone numbers only;
 * note: remember it.
 */
bool wk_conn_sql_is_known_plain(const char *sql, size_t len);
void wk_conn_sql_note_plain(const char *sql, size_t len);

/* TCP_NODELAY and keepalive on an accepted or connecting socket. */
int wk_conn_bind_socket_opts(int fd);

/* Names for SHOW. */
const char *wk_client_state_name(enum wk_client_state st);
const char *wk_server_state_name(enum wk_server_state st);

/* Result of wk_conn_peek. */
enum wk_peek {
	WK_PEEK_MORE = 0, /* not enough bytes yet */
	WK_PEEK_HEADER,   /* header read; the body may still be incomplete */
	WK_PEEK_WHOLE,    /* header read and the whole message is buffered (and contiguous) */
	WK_PEEK_BAD_LEN,  /* length field below 4 */
	WK_PEEK_TOO_LONG, /* length field above max_len */
};

/*
 * Look at the typed message at the start of b. With want_body, a message
 * that is whole is made contiguous and *msg points at its first byte (type);
 * the caller drains pgw_msg_size(h) bytes when done with it.
 */
enum wk_peek wk_conn_peek(struct evbuffer *b, uint32_t max_len, bool want_body, struct pgw_hdr *h,
			  const uint8_t **msg);

/*
 * A read cursor over an evbuffer's chains (evbuffer_peek once), for reading
 * headers at increasing offsets without walking the chain each time. Any
 * change to the buffer (drain, remove, pullup, read) invalidates it.
 */
#define WK_CURSOR_VECS 32

struct wk_cursor {
	struct evbuffer *buf;
	struct evbuffer_iovec v[WK_CURSOR_VECS];
	int n;       /* vectors filled */
	int i;       /* vector holding the last offset read */
	size_t base; /* offset of v[i] in the buffer */
};

void wk_cursor_init(struct wk_cursor *cur, struct evbuffer *buf);

/* A cursor over len contiguous bytes outside any evbuffer (the worker's read buffer). */
static inline void
wk_cursor_flat(struct wk_cursor *cur, const uint8_t *buf, size_t len)
{
	cur->buf = NULL;
	cur->v[0].iov_base = (void *)(uintptr_t)buf;
	cur->v[0].iov_len = len;
	cur->n = 1;
	cur->i = 0;
	cur->base = 0;
}
size_t wk_cursor_copy_slow(struct wk_cursor *cur, size_t off, void *dst, size_t len);

/*
 * Read a typed message header at p (PGW_HDR_LEN bytes there) without a call:
 * the forwarding loops do it for every message. false: length field below 4.
 */
static inline bool
wk_hdr_parse(const uint8_t *p, struct pgw_hdr *h)
{
	h->type = p[0];
	h->len = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
	return h->len >= 4;
}

/*
 * The len bytes at offset off (not before the last offset read): a pointer
 * into the buffer when they lie in one vector (the usual case: no copy),
 * else copied to tmp (len bytes) and tmp; NULL when fewer are buffered.
 */
const uint8_t *wk_cursor_at_slow(struct wk_cursor *cur, size_t off, size_t len, uint8_t *tmp);

static inline const uint8_t *
wk_cursor_at(struct wk_cursor *cur, size_t off, size_t len, uint8_t *tmp)
{
	if (cur->i < cur->n && off >= cur->base && off - cur->base + len <= cur->v[cur->i].iov_len)
		return (const uint8_t *)cur->v[cur->i].iov_base + (off - cur->base);
	return wk_cursor_at_slow(cur, off, len, tmp);
}

/* Copy len bytes from offset off (not before the last offset read). Returns bytes copied. */
static inline size_t
wk_cursor_copy(struct wk_cursor *cur, size_t off, void *dst, size_t len)
{
	/* the usual case, inline: the bytes lie in the vector of the last read */
	if (cur->i < cur->n && off >= cur->base &&
	    off - cur->base + len <= cur->v[cur->i].iov_len) {
		memcpy(dst, (const uint8_t *)cur->v[cur->i].iov_base + (off - cur->base), len);
		return len;
	}
	return wk_cursor_copy_slow(cur, off, dst, len);
}
