/*
 * wk_pubsub_int.h: what wk_pubsub.c (channels, listener connections,
 * delivery) and wk_pubsub_tx.c (transaction semantics: operations of an
 * open transaction, Queries followed reply by reply) share. Private to
 * those two files; everyone else uses wk_pubsub.h.
 * Runs in: a worker.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/list.h"
#include "shared/pgw.h"
#include "sql/sql_classify.h"
#include "worker/wk_conn.h"

struct wk_pubsub_pool;

#define WK_PUBSUB_QUERY_MAX 1024 /* longer Queries are not LISTEN alone: a server runs them */

struct wk_pubsub_chan {
	struct list node;             /* in its pool's chans */
	struct wk_pubsub_chan *hnext; /* next in its hash bucket */
	struct wk_pubsub_pool *pp;    /* borrowed */
	struct wk_client **clients;   /* owned array of borrowed clients */
	size_t clients_cnt, clients_cap;
	uint64_t listen_seq; /* the listener query that LISTENs it */
	uint64_t received, delivered;
	uint32_t pending_cnt; /* LISTENs in open transactions (kept until they end) */
	uint32_t row;         /* its shm_listener row, or WK_PUBSUB_NO_ROW */
	uint64_t id;
	char name[SQL_NAME_MAX];
};

struct wk_pubsub_pool {
	struct wk_pool *pool;       /* borrowed */
	struct wk_server *listener; /* owned by the worker's reap machinery; NULL: none */
	struct wk_server *old;      /* a listener closing (waiting for its backend to go) */
	bool is_ready;              /* listener logged in */
	struct list chans;
	size_t chans_cnt;
	struct wk_pubsub_chan *
		*buckets; /* owned: channels by name hash (chans_cnt <= 2 x buckets) */
	size_t buckets_cnt;
	struct list waiters; /* clients owed a LISTEN reply */
	struct list holders; /* clients whose ReadyForQuery waits for their channels (is_holding) */
	uint64_t sent_seq, done_seq;
	bool is_sync_wanted; /* a client waits for a query sent after the one in flight */
	uint64_t retry_after_us;
};

/*
 * A simple Query whose replies pub/sub follows statement by statement (see
 * wk_pubsub_watch_query): the statements as the server runs them, in order;
 * each CommandComplete answers the next one.
 */
#define WK_PUBSUB_GUARD 0xffu /* pgdog's LISTEN before a PREPARE TRANSACTION: its reply dropped */

struct wk_pubsub_wstmt {
	uint8_t kind; /* enum sql_kind, or WK_PUBSUB_GUARD */
	char name[SQL_NAME_MAX];
};

struct wk_pubsub_watch {
	uint64_t
		rfq_no; /* the client-visible ReadyForQuery (wk_pubsub_client rfq_seen) ending it */
	uint8_t cnt, next;
	bool is_failed; /* an ErrorResponse: the statements after it did not run */
	/* each statement, and a guard in front of each PREPARE TRANSACTION at most */
	struct wk_pubsub_wstmt stmts[2 * SQL_STMTS_MAX];
};

struct wk_pubsub_client {
	struct wk_client *c;           /* borrowed: the client owning this */
	struct wk_pubsub_chan **chans; /* owned array of borrowed channels */
	size_t chans_cnt, chans_cap;
	struct wk_pubsub_pool *pp;        /* borrowed: the client's pool */
	struct wk_pubsub_chan *wait_chan; /* its LISTEN reply waits for this channel */
	char wait_prefix[8];              /* extended protocol: replies owed before it */
	struct list wait_node;            /* in pp->waiters while wait_chan */
	struct list hold_node;            /* in pp->holders while is_holding */
	/*
	 * The ReadyForQuery ending a transaction of a listening client is held
	 * (its server's reading stopped) until the listener has LISTENed on
	 * each of its channels, so that a NOTIFY committed after the client saw
	 * the commit reaches it, and has answered a query sent after the commit
	 * (sync_seq), so that the notifications the transaction committed reach
	 * the client before that ReadyForQuery, as PostgreSQL sends its own.
	 */
	bool is_holding;
	uint64_t sync_seq;
	/*
	 * Channels a Query LISTENs on, LISTENed by the listener before the Query
	 * goes to the server (is_query_wait: its input stops until then), so
	 * that a NOTIFY committed with it reaches the listener; held
	 * (pending_cnt) until the Query's replies are followed.
	 */
	struct wk_pubsub_chan **pre; /* owned array of borrowed channels */
	size_t pre_cnt, pre_cap;
	bool is_query_wait;
	struct pgw_buf queue; /* NotificationResponses for the next boundary */
	uint32_t queued_cnt;
	bool is_overflow;
	/* its listener connection was lost: FATAL at its next boundary (never a silent gap) */
	bool is_lost;
	bool has_listened; /* a LISTEN through pgdog once: its UNLISTEN blocks PREPARE TRANSACTION */
	/*
	 * LISTEN/UNLISTEN of its open transaction (a block, or the implicit one
	 * of a multi-statement Query): applied at COMMIT, dropped on ROLLBACK;
	 * SAVEPOINT markers between them (ROLLBACK TO drops what follows one).
	 */
	struct wk_pubsub_op *ops; /* owned */
	size_t ops_cnt, ops_cap;
	/* Queries in flight whose replies are followed, oldest first */
	struct wk_pubsub_watch *watches; /* owned */
	size_t watch_cnt, watch_cap;
	uint64_t rfq_seen; /* client-visible ReadyForQuery messages counted while watching */
	/* replies not followed statement by statement: how the last request went */
	bool fb_error, fb_rollback;
	bool is_rewritten; /* the Query at the front of its input is pgdog's rewrite */
	bool has_cur_watch; /* the newest watch is that Query's (or Parse's): see wk_pubsub_query_shift */
	bool is_query_watched; /* ... and its UNLISTENs are applied by the watch, not at once */
};

struct wk_pubsub_op {
	enum sql_kind kind; /* SQL_LISTEN, SQL_UNLISTEN, SQL_UNLISTEN_ALL, SQL_SAVEPOINT (marker) */
	bool blocks_prepare;       /* PostgreSQL refuses PREPARE TRANSACTION after it */
	struct wk_pubsub_chan *ch; /* LISTEN: the channel, held (pending_cnt) until the end */
	char name[SQL_NAME_MAX];
};

/* ---- wk_pubsub.c ---------------------------------------------------------- */

/* The pub/sub state of c's pool, created on first use. NULL on out of memory. */
struct wk_pubsub_pool *wk_pubsub_pool_of(struct wk_client *c);
/* c's pub/sub state (pool pp), created on first use. NULL on out of memory. */
struct wk_pubsub_client *wk_pubsub_client_get(struct wk_client *c, struct wk_pubsub_pool *pp);
/*
 * The channel name of pp, created (and LISTENed by the listener, which is
 * opened if needed) when new. NULL on out of memory.
 */
struct wk_pubsub_chan *wk_pubsub_chan_get(struct wk_pubsub_pool *pp, const char *name);
/* Free ch if nobody listens and no open transaction is about to. */
void wk_pubsub_chan_release(struct wk_pubsub_chan *ch);
/*
 * Register c on name. Returns 1 when the reply can go now, 0 when c waits
 * for the listener (only with can_wait), -1 on out of memory.
 */
int wk_pubsub_listen(struct wk_client *c, struct wk_pubsub_pool *pp, const char *name,
		     bool can_wait);
/* Drop c's registration on channel (NULL: all of them) now. */
void wk_pubsub_drop(struct wk_client *c, const char *channel);
/* Grow an array of elem-byte elements to hold one more. -1 on out of memory. */
int wk_pubsub_grow_n(void **arr, size_t elem, size_t cnt, size_t *cap);
/*
 * The transaction status c's server is at with nothing in flight ('I' or
 * 'T'), 0 otherwise (replies of its own would pass pgdog's).
 */
char wk_pubsub_quiet_status(const struct wk_client *c);

/* ---- wk_pubsub_tx.c ------------------------------------------------------- */

/*
 * Record kind/name (SQL_LISTEN, SQL_UNLISTEN, SQL_UNLISTEN_ALL, or a
 * SQL_SAVEPOINT marker) in c's open transaction; a LISTEN makes the
 * listener LISTEN on the channel now. -1 on out of memory.
 */
int wk_pubsub_op_add(struct wk_client *c, struct wk_pubsub_pool *pp, enum sql_kind kind,
		     const char *name);
/*
 * A Query for c's server (c ACTIVE, the Query whole at the front of its
 * input): follow it when it holds LISTEN/UNLISTEN or comes while c's
 * transaction holds operations; see wk_pubsub_tx.c.
 */
enum wk_rc wk_pubsub_watch_query(struct wk_client *c, const struct pgw_hdr *h, bool *is_handled);
/*
 * The unnamed Parse (parse_size bytes at the front of c's input) of st, with
 * Bind, Execute and Sync of it buffered and nothing unsynced before it: a
 * LISTEN/UNLISTEN behind requests still in flight, or a SAVEPOINT, RELEASE,
 * ROLLBACK [TO] or COMMIT of a transaction holding operations. Follow its
 * reply like a Query's (a LISTEN's Parse is rewritten to UNLISTEN in place:
 * *is_handled, read it again).
 */
enum wk_rc wk_pubsub_watch_parse(struct wk_client *c, const struct sql_stmt *st, size_t parse_size,
				 bool *is_handled);
/*
 * A named Parse (whole, header h, at the front of c's input, c ACTIVE on a
 * server that rewrites statement names) of LISTEN, UNLISTEN or UNLISTEN *:
 * preparing it changes nothing, it neither pins nor unlistens (each run is
 * followed from its Bind: wk_pubsub_bind); wk_pubsub_query_is_followed(c)
 * tells. WK_CLOSED when c was closed (out of memory).
 */
enum wk_rc wk_pubsub_parse_named(struct wk_client *c, const struct pgw_hdr *h);
/*
 * Would an Execute sent to s since its last Sync (its reply not seen yet)
 * answer before a statement sent now? Then the statement's CommandComplete
 * cannot be told apart (without reply slots: any unsynced message counts).
 */
bool wk_pubsub_execute_unsynced(const struct wk_server *s);
/* Must pc's ReadyForQuery wait for the listener (see is_holding)? */
bool wk_pubsub_hold_pending(const struct wk_pubsub_client *pc);
/*
 * The number of a listener query sent after now (sent at once, or when the
 * one in flight is answered); 0 when pp's listener has not logged in (its
 * login query comes after now).
 */
uint64_t wk_pubsub_sync_seq(struct wk_pubsub_pool *pp);
/* Is channel ch LISTENed by pp's listener on the server? */
bool wk_pubsub_chan_confirmed(const struct wk_pubsub_chan *ch);
/*
 * Have pc's listener LISTEN on each channel that one of the cnt statements
 * LISTENs on before they go to c's server (see pre), and wait for those of
 * c's open transaction too (a NOTIFY committed with them reaches the
 * listener). 0: they can go; 1: c waits, its input stopped (the message at
 * its front is read again once the listener has); -1 on out of memory.
 */
int wk_pubsub_prelisten(struct wk_client *c, struct wk_pubsub_client *pc,
			const struct sql_stmt *stmts, size_t cnt);
/* Have pc's listener LISTEN on name now; pc holds it in pre. -1 on out of memory. */
int wk_pubsub_pre_add(struct wk_pubsub_client *pc, const char *name);
/* Release the channels pc LISTENed ahead of its Query (pre). */
void wk_pubsub_pre_release(struct wk_pubsub_client *pc);
/* pc's held ReadyForQuery may go (pc leaves its pool's holders). */
void wk_pubsub_unhold(struct wk_pubsub_client *pc);
