/*
 * wk_server.h: a connection to PostgreSQL: connect, log in with whatever the
 * server asks for, then forward to the linked client; reset and return to
 * the pool when the client leaves.
 * Runs in: a worker.
 */
#pragma once

#include "worker/wk_conn.h"
#include "worker/wk_pool.h"

/* Open a new connection for p (the caller holds a reservation). NULL on failure. */
struct wk_server *wk_server_connect(struct wk_pool *p);
/*
 * Open a pub/sub listener connection for p: logged in like a pool server,
 * but not reserved, not on the pool's lists, no shm row; wk_pubsub.c gets
 * its events (wk_pubsub_listener_*). NULL on failure.
 */
struct wk_server *wk_server_connect_listener(struct wk_pool *p);
/* Move s to state st (checks the transition, updates the pool lists and shm). */
void wk_server_set_state(struct wk_server *s, enum wk_server_state st);
/*
 * Close s: send Terminate when it is logged in, then wait (in CLOSING, still
 * counted against the pool's cap) until PostgreSQL closes its end.
 */
void wk_server_close(struct wk_server *s, const char *reason);

/*
 * The next whole message at the front of s's input (*h, *msg, at most max
 * bytes), for pgdog's own connections (pub/sub listener, replication
 * check). false: wait for more bytes, or s was closed (why) for an invalid
 * or oversized message.
 */
bool wk_server_next_msg(struct wk_server *s, uint32_t max, struct pgw_hdr *h, const uint8_t **msg,
			const char *why);
/* The backend of a CLOSING server is gone (or took too long): free the slot. */
void wk_server_gone(struct wk_server *s);
/*
 * The client left: roll back s (and run server_reset_query when the
 * session ends with it: session mode, or state pinned in transaction mode)
 * and return it to the pool, or close it when its state is unknown or a
 * cancel is on its way to its backend (is_cancel_due: it could hit the
 * next client's query).
 */
void wk_server_release(struct wk_server *s, bool is_session_end, bool is_cancel_due);
/* pgdog's cancel for s's left client (wk_cancel_server) has reached PostgreSQL. */
void wk_server_gone_cancel_landed(struct wk_server *s);
/* Transaction mode: the client's transaction is over; s goes back to the pool. */
void wk_server_checkin(struct wk_server *s);
/*
 * Start sending pgdog's own queries (SET for the client's parameters) on a
 * freshly linked server; their results are swallowed. -1 on allocation failure.
 */
int wk_server_send_internal(struct wk_server *s, const struct pgw_buf *b, uint32_t queries_cnt);
/*
 * Send s the SETs and RESETs (wk_session_sync_memo) that make it match c's
 * session, their replies swallowed. -1 on out of memory (s is then reset
 * before it is reused).
 */
int wk_server_sync_session(struct wk_server *s, struct wk_client *c);
/* Forward what the server sent to its client. */
enum wk_rc wk_server_forward(struct wk_server *s);
/* Resume reading (backpressure). */
void wk_server_resume(struct wk_server *s);
void wk_server_free(struct wk_server *s);
/* Write this server's shm row identity. */
void wk_server_row_update(struct wk_server *s);

/* Double the reply slot ring (its capacity stays a power of two). -1 on out of memory. */
int wk_server_slots_grow(struct wk_server *s) MUST_CHECK;

/*
 * Reply slots (transaction mode with prepared statement rewriting). A slot
 * with prep takes a reference on it. -1 on out of memory. Always inline: a
 * forwarded extended-protocol message pushes one each (GCC stopped
 * inlining it into the client's read path once that path grew: +22
 * instructions per extended-protocol transaction).
 */
static ALWAYS_INLINE MUST_CHECK int
wk_server_slot_push(struct wk_server *s, enum wk_slot_kind kind, bool is_swallow,
		    struct wk_prep *prep)
{
	struct wk_slot *sl;

	if (s->slots_cnt == s->slots_cap && wk_server_slots_grow(s) < 0)
		return -1;
	sl = &s->slots[(s->slots_head + s->slots_cnt) & (s->slots_cap - 1)];
	sl->kind = (uint8_t)kind;
	sl->is_swallow = is_swallow;
	sl->prep_role = WK_SLOT_PREP_HOLD;
	sl->unnamed_tag = 0;
	sl->is_unnamed_prev_here = false;
	sl->is_unnamed_copy = false;
	sl->is_skippable = false;
	sl->is_end_mark = false;
	sl->is_for_next = false;
	sl->prep = prep;
	if (prep)
		prep->client_refs++; /* the slot's reference, dropped at its end */
	sl->pos_map = NULL;
	sl->client_names = NULL;
	s->slots_cnt++;
	if (kind == WK_SLOT_SYNC)
		s->has_error_unsynced = false; /* what follows this Sync runs again */
	if (kind == WK_SLOT_SYNC || kind == WK_SLOT_QUERY)
		s->syncs_cnt++;
	return 0;
}
void wk_server_slots_clear(struct wk_server *s);
/*
 * Is a message sent to s now skipped if one sent before it fails: are
 * unsynced messages out whose answers are not all in (reply slots)?
 */
static inline bool
wk_server_is_unanswered(const struct wk_server *s)
{
	return s->has_unsynced && s->slots_cnt;
}
/* Is a reply pgdog gives itself next in line? */
bool wk_server_synth_due(struct wk_server *s);
/* Send the client the replies pgdog gives itself that are due now. -1 on out of memory. */
int wk_server_emit_synth(struct wk_server *s) MUST_CHECK;
