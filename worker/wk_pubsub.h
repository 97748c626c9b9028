/*
 * wk_pubsub.h: LISTEN/NOTIFY in transaction mode (pub_sub_channel_size > 0).
 * A client's LISTEN / UNLISTEN / UNLISTEN * sent between transactions is
 * served by pgdog: the worker keeps a table of channels per pool and one
 * listener connection per pool (outside pool_size) that LISTENs on the union
 * of its clients' channels; the notifications it receives are written to
 * every client of this worker listening on the channel, at a message
 * boundary between the client's transactions.
 * Runs in: a worker. Everything belongs to the worker's loop.
 */
#pragma once

#include <stdbool.h>

#include "shared/pgw.h"
#include "worker/wk_conn.h"

/*
 * Called for a client with a message header h at the front of its input:
 * idle (no server), or ACTIVE with a whole message and nothing in flight on
 * its server. When it is a simple Query holding one LISTEN, UNLISTEN or
 * UNLISTEN * and pub/sub is on for the client, pgdog serves it: the message
 * is drained, *is_handled set, and the reply (CommandComplete,
 * ReadyForQuery) sent now or, for a LISTEN that waits for the listener
 * connection, once the listener has run it (the client's reading stops
 * until then: c->is_read_off). Inside a transaction block the operation is
 * kept for COMMIT (wk_pubsub_client_tx_end). Returns WK_AGAIN when a short
 * Query is not whole yet, WK_CLOSED when c was closed.
 */
enum wk_rc wk_pubsub_client_query(struct wk_client *c, const struct pgw_hdr *h, bool *is_handled);

/*
 * UNLISTEN channel (channel NULL: UNLISTEN * or DISCARD ALL) seen in a
 * request that goes to a server: the client's pgdog registrations go at
 * once (PostgreSQL would drop them at commit).
 */
void wk_pubsub_client_unlisten(struct wk_client *c, const char *channel);

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
