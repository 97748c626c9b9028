/*
 * wk_prepared.h: prepared statements in transaction mode
 * (prepared_statements = extended). A client's named statement may be needed
 * on any server connection, so pgdog keeps, per worker, one entry per
 * distinct statement (query text + parameter types) with a pgdog-wide name
 * ("__pgdog_<slot>_<id>"), maps each client's names to entries, and records
 * which entries each server connection has prepared (LRU, capped by
 * prepared_statements_limit). Parse/Bind/Describe/Close are rewritten to the
 * pgdog names; a statement missing on a server is prepared there first.
 * With prepared_statements = full, SQL PREPARE creates entries too (keyed
 * by the text after the name: "(types) AS statement"); they are prepared on
 * a server by running "PREPARE <pgdog name> ..." through the extended
 * protocol, and share the client's name space with protocol-level names.
 * SQL PREPARE/EXECUTE/DEALLOCATE are rewritten alone or among other
 * statements of a Query, and in a Parse (wk_client.c). A server also lists
 * the statements pgdog made on it under a client's own name or a throwaway
 * name (junk: for PostgreSQL's own 42P05, or a check), closed again soon.
 * Runs in: a worker.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "shared/compiler.h"
#include "worker/wk_index.h"

struct pgw_buf;

/* A distinct statement. */
struct wk_prep {
	struct wk_prep *hnext; /* hash chain; private */
	uint32_t hash;
	uint64_t id;
	char name[48]; /* the name on every server */
	uint8_t *key;  /* query text, NUL, parameter types section: owned */
	size_t key_len;
	/*
	 * What prepares it on a server under `name`: owned. A Parse message; for
	 * is_sql, Close + Parse + Bind + Execute + Close + Close of a helper
	 * statement and portal (WK_PREP_SQL_HELPER) running "PREPARE <name> <key>".
	 */
	uint8_t *parse_msg;
	size_t parse_len;
	uint32_t client_refs; /* client names mapped to it */
	uint32_t server_refs; /* server connections holding it */
	uint64_t uses;        /* Binds and Describes through it */
	bool is_valid;        /* a server accepted its Parse once */
	bool is_sql;          /* made by SQL PREPARE: key is the text after the name */
	bool is_std;          /* read with standard_conforming_strings on (else off) */
	uint32_t row;         /* its shm_prepared row, UINT32_MAX if none was free */
	uint8_t pubsub;       /* WK_PREP_PUBSUB_*: does pub/sub follow its Binds (wk_pubsub_bind) */
	uint8_t setting;      /* WK_PREP_SETTING_*: does a Bind SET something (wk_client.c) */
	uint8_t seq_read;     /* WK_PREP_SEQ_*: does its text call currval/lastval (wk_client.c) */
	/*
	 * WK_PIN_* its text makes when it runs (an advisory lock, a temporary
	 * table, a WITH HOLD cursor, set_config()): each use pins again, as a
	 * release in between (pg_advisory_unlock_all()) may have ended the pin;
	 * WK_PIN_ASK too
	 */
	uint16_t pins;
	/*
	 * The result its servers' copies describe (RowDescription or NoData,
	 * wk_prep_desc_hash), once a Describe of it has been answered; a copy
	 * prepared later that describes another result (DDL changed a table it
	 * reads) makes it stale (wk_prep_desc_seen), as does a server's 0A000
	 * "cached plan must not change result type".
	 */
	bool has_desc;
	uint64_t desc;
	/*
	 * Its result changed since clients prepared it: what they run under its
	 * names fails with 0A000 as in PostgreSQL, which keeps a statement's
	 * result type; a new Parse of its text makes a new entry.
	 */
	bool is_stale;
	/*
	 * Its result is read from the session when a server prepares it (FETCH
	 * from a cursor, SQL EXECUTE of a statement): copies describe what each
	 * session had then, so none makes it stale, and a client's Describe of
	 * it is answered by a copy prepared just then (wk_client.c).
	 */
	bool is_desc_live;
};

/* wk_prep desc of NoData: a statement that returns no rows */
#define WK_PREP_DESC_NONE 1u

/* struct wk_prep seq_read: */
#define WK_PREP_SEQ_UNKNOWN 0 /* not looked at yet */
#define WK_PREP_SEQ_NONE    1
#define WK_PREP_SEQ_READ    2

/* struct wk_prep setting: */
#define WK_PREP_SETTING_UNKNOWN 0 /* not looked at yet */
#define WK_PREP_SETTING_NONE    1 /* its text sets nothing */
#define WK_PREP_SETTING_SOME    2 /* SET, RESET or RESET ALL: tracked at each Bind */
/* COMMIT, ROLLBACK or PREPARE TRANSACTION only: tracked at a Bind while SETs are pending */
#define WK_PREP_SETTING_END 3

/* struct wk_prep pubsub: */
#define WK_PREP_PUBSUB_UNKNOWN 0 /* not looked at yet */
#define WK_PREP_PUBSUB_NONE    1 /* nothing pub/sub follows */
#define WK_PREP_PUBSUB_FOLLOW  2 /* LISTEN, UNLISTEN [*], SAVEPOINT, RELEASE, ROLLBACK TO */

/* A client's statement names. */
struct wk_prep_names {
	struct wk_prep_name {
		char *name; /* the client's name: owned */
		struct wk_prep *prep;
		bool is_unconfirmed; /* Parse or SQL PREPARE sent, the answer not seen yet */
		/*
		 * A DEALLOCATE of it sent, its outcome not seen yet: the name is
		 * gone for the client's later messages (get, put, del skip it),
		 * and comes back if PostgreSQL does not run the DEALLOCATE (an
		 * aborted transaction, an earlier statement of its Query failed).
		 */
		bool is_dropping;
		uint64_t drop_seq; /* order of the DEALLOCATEs in flight */
		/*
		 * With is_unconfirmed: the server's syncs_cnt when the Parse or
		 * PREPARE was sent. A message of a later request that names it
		 * waits for the answer (wk_prep_names_is_pending): the server
		 * may have skipped it after an error.
		 */
		uint64_t batch;
		uint64_t put_seq; /* with is_unconfirmed: order of the Parses in flight */
	} * v;
	size_t cnt, cap;
	/*
	 * The entries not being dropped, by name: a client's thousands of names
	 * do not cost a scan each.
	 */
	struct wk_index index;
	size_t unconfirmed_cnt, dropping_cnt; /* entries so marked: the scans stop early */
	/*
	 * Two of the client's names have stood for one statement (until all
	 * go): the server's error about one names the client's which only the
	 * message sent tells (the reply slot's client_names).
	 */
	bool has_alias;
};

/* The statements prepared on one server connection. */
struct wk_prep_held {
	struct wk_prep_entry {
		struct wk_prep *prep;
		uint64_t last_use; /* LRU clock */
		/* its Parse's request (the server's syncs_cnt) + 1 until answered; else 0 */
		uint64_t unsure;
	} * v;
	size_t cnt, cap;
	size_t unsure_cnt;     /* entries with unsure set */
	struct wk_index index; /* v by statement: a Bind checks its server in one look */
	uint64_t clock;
	/*
	 * Statements pgdog made on it under a client's own name, so that the
	 * client's PREPARE or Parse of a name it already has fails there with
	 * PostgreSQL's own 42P05 (wk_prep_dup): each is closed again at the
	 * next quiet moment. Owned.
	 */
	char **junk;
	size_t junk_cnt, junk_cap;
};

/*
 * Find or create the entry for a Parse body whose statement name is
 * `name_len` bytes long (the part after the name is the key). NULL on out of
 * memory or malformed body.
 */
struct wk_prep *wk_prep_register(const uint8_t *body, size_t len, size_t name_len);
/*
 * Find or create the entry for SQL PREPARE's text after the name (rest,
 * rest_len bytes: "[(types)] AS statement", trimmed). NULL on out of memory.
 */
struct wk_prep *wk_prep_register_sql(const char *rest, size_t rest_len);
/*
 * The same for a client whose standard_conforming_strings is off (is_std
 * false): the same text means another statement then, so it is another
 * entry. The two above are is_std true.
 */
struct wk_prep *wk_prep_register_std(const uint8_t *body, size_t len, size_t name_len, bool is_std);
struct wk_prep *wk_prep_register_sql_std(const char *rest, size_t rest_len, bool is_std);
/*
 * Does a statement's text (len bytes) begin with FETCH or EXECUTE, whose
 * result PostgreSQL takes from the session (the cursor, the prepared
 * statement) when it prepares the statement?
 */
bool wk_prep_text_is_desc_live(const char *text, size_t len);
/* Helper statement and portal name used by an is_sql entry's parse_msg. */
#define WK_PREP_SQL_HELPER "__pgdog_sqlprep"
/* A statement name no server holds: what a stale statement's uses name (0A000). */
#define WK_PREP_STALE_NAME "__pgdog_stale_statement"
/*
 * The fingerprint of a RowDescription body (blen bytes: the names, types and
 * type modifiers of its columns, what PostgreSQL compares when it checks that
 * a cached plan keeps its result type); 0 when malformed.
 */
uint64_t wk_prep_desc_hash(const uint8_t *body, size_t blen);
/*
 * A server described p's result as desc: the first one is p's; another one
 * makes p stale (wk_prep_make_stale). Returns false when it did.
 */
bool wk_prep_desc_seen(struct wk_prep *p, uint64_t desc);
/*
 * p's result changed (PostgreSQL answered 0A000, or a new copy described
 * another result): new Parses of its text get a new entry; p stays for the
 * names that map to it, whose uses fail with 0A000 (wk_client.c).
 */
void wk_prep_make_stale(struct wk_prep *p);
/* Publish p's counters in its SHOW PREPARED row. */
void wk_prep_publish(const struct wk_prep *p);
/* Free an entry nobody uses any more. */
void wk_prep_release_if_unused(struct wk_prep *p);
/* Counters for SHOW PREPARED: entries and total uses in this worker. */
size_t wk_prep_count(void);
/* Walk all entries (admin). */
void wk_prep_foreach(void (*fn)(const struct wk_prep *p, void *arg), void *arg);
void wk_prep_cleanup_all(void);

void wk_prep_names_init(struct wk_prep_names *n);
/* Map name to p (replacing an older mapping). -1 on out of memory. */
int wk_prep_names_put(struct wk_prep_names *n, const char *name, struct wk_prep *p) MUST_CHECK;
struct wk_prep *wk_prep_names_get(const struct wk_prep_names *n, const char *name);
/* Is name the client's, for a Parse or SQL PREPARE not answered yet? */
bool wk_prep_names_is_unconfirmed(const struct wk_prep_names *n, const char *name);
/* Is name the len bytes at v (a name quoted in a server's message)? */
static inline bool
wk_prep_name_is(const char *name, const char *v, size_t len)
{
	return strncmp(name, v, len) == 0 && name[len] == '\0';
}
/*
 * The client's name (the first not being dropped, else one being dropped)
 * for the statement pgdog calls pgdog_name (len bytes), NULL if none.
 */
const char *wk_prep_names_name_of(const struct wk_prep_names *n, const char *pgdog_name,
				  size_t len);
/*
 * Add a name for a Parse or SQL PREPARE, unconfirmed until it is answered;
 * batch: the server's syncs_cnt when it is sent. -1 on out of memory.
 */
int wk_prep_names_put_unconfirmed(struct wk_prep_names *n, const char *name, struct wk_prep *p,
				  uint64_t batch) MUST_CHECK;
/* Is a Close or DEALLOCATE of name in flight (its answer not seen yet)? */
bool wk_prep_names_is_dropping(const struct wk_prep_names *n, const char *name);
/*
 * Must a message naming name, sent when the server's syncs_cnt is batch,
 * wait for the answers to what went before it? Yes while a Close or
 * DEALLOCATE of the name is in flight, or a Parse or PREPARE of it sent in
 * an earlier request (up to its Sync): PostgreSQL skips those after an
 * error earlier in their request, and what the name means then is known
 * only from their answers. A Bind in the Parse's own request need not wait:
 * if the Parse is skipped or fails, so is the Bind.
 */
bool wk_prep_names_is_pending(const struct wk_prep_names *n, const char *name, uint64_t batch);
/*
 * The Parse or SQL PREPARE of p was answered: keep (is_ok) or drop the
 * unconfirmed name of p it was for (the oldest: each has its own). May
 * free p.
 */
void wk_prep_names_settle(struct wk_prep_names *n, struct wk_prep *p, bool is_ok);
void wk_prep_names_del(struct wk_prep_names *n, const char *name);
/*
 * A DEALLOCATE of name is sent: the name is hidden until
 * wk_prep_names_drop_end(). Returns its statement, NULL when the client
 * has no such name.
 */
struct wk_prep *wk_prep_names_drop_begin(struct wk_prep_names *n, const char *name);
/*
 * The oldest DEALLOCATE in flight of a name of p was answered: the name
 * goes (is_ok), or comes back (PostgreSQL did not run it) unless the
 * client has given the name to another statement since. May free p.
 */
void wk_prep_names_drop_end(struct wk_prep_names *n, struct wk_prep *p, bool is_ok);
void wk_prep_names_clear(struct wk_prep_names *n);
void wk_prep_names_cleanup(struct wk_prep_names *n);

void wk_prep_held_init(struct wk_prep_held *h);
bool wk_prep_held_has(struct wk_prep_held *h, struct wk_prep *p); /* also touches its LRU time */
/* Record p as prepared. -1 on out of memory. */
int wk_prep_held_add(struct wk_prep_held *h, struct wk_prep *p) MUST_CHECK;
void wk_prep_held_del(struct wk_prep_held *h, struct wk_prep *p);
/*
 * p's Parse goes to the server now, in the request numbered batch (its
 * syncs_cnt): PostgreSQL skips it after an error earlier in that request.
 * Until wk_prep_held_answered(), a message of a later request that needs p
 * must wait for the answer (wk_prep_held_is_unsure).
 */
void wk_prep_held_sent(struct wk_prep_held *h, struct wk_prep *p, uint64_t batch);
void wk_prep_held_answered(struct wk_prep_held *h, struct wk_prep *p);
/* Every answer is in, or none will come (the reply slots are cleared). */
void wk_prep_held_answered_all(struct wk_prep_held *h);
bool wk_prep_held_unsure_before(const struct wk_prep_held *h, const struct wk_prep *p,
				uint64_t batch);
/* Is p's Parse, sent in a request before batch, still unanswered? */
static inline bool
wk_prep_held_is_unsure(const struct wk_prep_held *h, const struct wk_prep *p, uint64_t batch)
{
	return UNLIKELY(h->unsure_cnt != 0) && wk_prep_held_unsure_before(h, p, batch);
}
/* The least recently used entry, or NULL. */
struct wk_prep *wk_prep_held_lru(const struct wk_prep_held *h);
void wk_prep_held_cleanup(struct wk_prep_held *h);
/* name is one of h's junk statements (made, not closed yet). */
bool wk_prep_junk_has(const struct wk_prep_held *h, const char *name);
/* Record a junk statement. -1 on out of memory. */
int wk_prep_junk_add(struct wk_prep_held *h, const char *name) MUST_CHECK;
/*
 * Append a Close of every junk statement to b (the caller sends them, then
 * a Sync, and swallows the replies: a Close of a missing statement is not an
 * error) and forget them. Returns how many; 0 leaves b as it was.
 */
size_t wk_prep_junk_take(struct wk_prep_held *h, struct pgw_buf *b);

/*
 * The server runs sql (server_reset_query): if it deallocates every
 * prepared statement (DISCARD ALL, DEALLOCATE ALL), forget what it held.
 */
void wk_prep_held_after_query(struct wk_prep_held *h, const char *sql);

struct wk_server;
struct wk_slot;
/*
 * The reply to a slot that carries a statement (sl->prep) is complete:
 * is_error when PostgreSQL refused it. Updates what the server holds and,
 * for a client's SQL PREPARE, the client's names. Called by wk_server.c.
 */
void wk_prep_slot_end(struct wk_server *s, struct wk_slot *sl, bool is_error);
