/*
 * wk_pubsub.h: LISTEN/NOTIFY in transaction mode (pub_sub_channel_size > 0).
 * A client's LISTEN / UNLISTEN / UNLISTEN * is served by pgdog: the worker
 * keeps a table of channels per pool and one listener connection per pool
 * (outside pool_size) that LISTENs on the union of its clients' channels;
 * the notifications it receives are written to every client of this worker
 * listening on the channel, at a message boundary between the client's
 * transactions. Sent alone, LISTEN/UNLISTEN is answered without a server;
 * among other statements it is followed through the server's replies
 * (wk_pubsub_server_reply). Registrations follow PostgreSQL's transaction
 * semantics (commit, rollback, savepoints). A lost listener disconnects its
 * clients (FATAL 08006) at their next boundary.
 * Runs in: a worker. Everything belongs to the worker's loop.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "shared/pgw.h"
#include "worker/wk_conn.h"

/*
 * Called for a client with a message header h at the front of its input:
 * idle (no server), or ACTIVE with a whole Query or Parse. When it is a
 * simple Query holding one LISTEN, UNLISTEN or UNLISTEN * (or the unnamed
 * extended-protocol equivalent, Parse to Sync) and pub/sub is on for the
 * client, and nothing is in flight, pgdog serves it: the request is
 * drained, *is_handled set, and the reply (CommandComplete, ReadyForQuery)
 * sent now or, for a LISTEN that waits for the listener connection, once
 * the listener has run it (the client's reading stops until then:
 * c->is_read_off). Inside a transaction block the operation is kept for
 * COMMIT. A Query for the client's server that holds LISTEN/UNLISTEN among
 * other statements (or comes in a transaction holding such operations) is
 * followed: it may be rewritten in place (*is_handled set, nothing drained:
 * read it again) and its replies go through wk_pubsub_server_reply().
 * Returns WK_AGAIN when the request is not whole yet, WK_CLOSED when c was
 * closed.
 */
enum wk_rc wk_pubsub_client_query(struct wk_client *c, const struct pgw_hdr *h, bool *is_handled);

/*
 * UNLISTEN channel (channel NULL: UNLISTEN * or DISCARD ALL) seen in a
 * request that goes to a server: the client's pgdog registrations go at
 * once (PostgreSQL would drop them at commit) — unless pub/sub follows that
 * Query (wk_pubsub_query_is_followed), which applies them when it commits.
 */
void wk_pubsub_client_unlisten(struct wk_client *c, const char *channel);

/*
 * Is the Query (or Parse) at the front of c's input one whose replies
 * pub/sub follows? Its LISTEN/UNLISTEN are pgdog's to serve then: they must
 * not pin the server nor drop registrations at once. Valid between
 * wk_pubsub_client_query() and the end of that message's handling.
 */
bool wk_pubsub_query_is_followed(const struct wk_client *c);

/*
 * A Sync of c (c->pubsub set) is at the front of its input, c ACTIVE: must
 * it wait (c's input stopped; read again later) because the transaction it
 * may commit LISTENs on a channel pgdog's listener has not LISTENed on yet
 * (a NOTIFY committed with it would not reach the listener)?
 */
bool wk_pubsub_sync_waits(struct wk_client *c);
/* Does pub/sub follow c's replies (wk_pubsub_server_reply must see them)? */
bool wk_pubsub_is_watching(const struct wk_client *c);
/*
 * Must wk_pubsub_server_reply see c's ReadyForQuery messages (c is
 * watched, or listens: the end of each transaction waits for the listener)?
 */
bool wk_pubsub_follows_ready(const struct wk_client *c);
/*
 * pgdog sent n messages of its own that each end in a ReadyForQuery in
 * front of the Query (or Parse) at the front of c's input (prepared
 * statement rewriting): the replies pub/sub follows for it come after
 * theirs.
 */
void wk_pubsub_query_shift(struct wk_client *c, uint32_t n);

struct wk_prep;
/*
 * A Bind of c's named prepared statement p (not made by SQL PREPARE) on its
 * way to c's server, p->pubsub not WK_PREP_PUBSUB_NONE (the first Bind of p
 * classifies it): a LISTEN, UNLISTEN or UNLISTEN *, or while
 * wk_pubsub_is_watching(c) a SAVEPOINT, RELEASE or ROLLBACK TO, is followed
 * through the reply to its Execute, as an unnamed one is. For a followed
 * LISTEN, *use is set to the statement the Bind must run instead (UNLISTEN
 * of the channel, a no-op on a pooled server; its reply is turned back into
 * "LISTEN"). Returns 0; 1 when it is a LISTEN that pub/sub cannot follow (an
 * unsynced Execute before it) and that must run on the server, which the
 * caller pins (WK_PIN_LISTEN); -1 on out of memory.
 */
int wk_pubsub_bind(struct wk_client *c, struct wk_prep *p, struct wk_prep **use) MUST_CHECK;
/*
 * Is p a statement pub/sub follows at its Bind (LISTEN, UNLISTEN [*], a
 * savepoint command)? Its text is looked at once. -1 on out of memory.
 */
int wk_pubsub_prep_follows(struct wk_prep *p) MUST_CHECK;
/*
 * Is c's ReadyForQuery held (WK_PUBSUB_HOLD)? When wk_server.c meets it
 * again it hands it to wk_pubsub_server_reply() before anything else: the
 * rest of its handling (reply slots) was done the first time.
 */
bool wk_pubsub_is_holding(const struct wk_client *c);

enum {
	WK_PUBSUB_PASS = 0,    /* forward the message (h may describe a replacement) */
	WK_PUBSUB_DROPPED = 1, /* drained: go on with the next message */
	WK_PUBSUB_HOLD = 2,    /* a ReadyForQuery that must wait: stop reading the server */
};

/*
 * Called by wk_server.c, while wk_pubsub_is_watching(c), for each
 * CommandComplete (whole), ErrorResponse and ReadyForQuery (header and
 * status at least) at the front of in that is not a reply to pgdog's
 * internal queries; is_swallowed: the reply-slot machinery drops it (it
 * answers what pgdog injected). Counts ReadyForQuery messages, applies or
 * undoes the client's LISTEN/UNLISTEN as statements complete and
 * transactions end, turns the CommandComplete of a LISTEN pgdog rewrote
 * back into "LISTEN" (in place: *h is updated) and drops the reply to its
 * PREPARE TRANSACTION guard; also, while wk_pubsub_follows_ready(c), for
 * each ReadyForQuery. A ReadyForQuery 'I' of a listening client is held
 * (WK_PUBSUB_HOLD: the caller leaves it in the input and pauses reading the
 * server) until the listener has LISTENed on its channels and answered a
 * query sent after it; wk_server_resume() then brings it back here and it
 * passes, after the notifications queued for the client meanwhile. Returns
 * WK_PUBSUB_PASS, WK_PUBSUB_DROPPED, WK_PUBSUB_HOLD, or -1 when c was closed
 * (out of memory).
 */
int wk_pubsub_server_reply(struct wk_client *c, struct evbuffer *in, struct pgw_hdr *h,
			   bool is_swallowed);

/* Does c have LISTEN/UNLISTEN waiting for its transaction to end? */
bool wk_pubsub_has_pending(const struct wk_client *c);
/*
 * c's transaction ended (ReadyForQuery 'I'): apply its pending LISTEN/UNLISTEN
 * if it committed, drop them if it rolled back. May close c (out of memory).
 */
void wk_pubsub_client_tx_end(struct wk_client *c, bool is_commit);

/* Does c have notifications queued for the next transaction boundary? */
bool wk_pubsub_has_queued(const struct wk_client *c);

/*
 * c is at a boundary between transactions: write its queued notifications,
 * or close it (FATAL 54000) when its queue overflowed pub_sub_channel_size.
 * Returns WK_CLOSED when c was closed.
 */
enum wk_rc wk_pubsub_client_deliver(struct wk_client *c);

/*
 * c's output drained below the backpressure mark: notifications held
 * because it read slowly follow now if it is at a boundary. WK_CLOSED if c
 * was closed.
 */
enum wk_rc wk_pubsub_client_drained(struct wk_client *c);

/* c is being freed: unregister it everywhere (a channel left empty is UNLISTENed). */
void wk_pubsub_client_free(struct wk_client *c);

/* Listener connection hooks, called by wk_server.c for servers with is_listener. */
void wk_pubsub_listener_ready(struct wk_server *s);  /* logged in (state IDLE) */
void wk_pubsub_listener_read(struct wk_server *s);   /* bytes arrived while IDLE */
void wk_pubsub_listener_closed(struct wk_server *s); /* wk_server_close() started */
void wk_pubsub_listener_freed(struct wk_server *s);  /* wk_server_free() */

/* Periodic work (every sweep): reconnect listeners, connect and close timeouts. */
void wk_pubsub_sweep(void);
/* Worker exit, after every client was freed: release listeners and tables. */
void wk_pubsub_cleanup(void);
