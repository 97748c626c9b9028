/*
 * wk_client.h: a client connection: startup, authentication, then session
 * pooling: it gets a server at its first request and keeps it until it
 * disconnects.
 * Runs in: a worker.
 */
#pragma once

#include "worker/wk_conn.h"

struct shm_client;

/* Take an accepted socket. Closes fd on failure. */
void wk_client_accept(int fd, const struct sockaddr *sa, socklen_t sa_len, bool is_unix);

struct wk_handoff_state;
/*
 * Binary upgrade: re-create a client handed over by the previous
 * generation (wk_handoff.c) on its socket fd, logged in and idle; nothing is
 * sent to it. st->session is moved into the client. NULL if it was refused
 * (fd closed after an ErrorResponse).
 */
struct wk_client *wk_client_adopt(int fd, struct wk_handoff_state *st);
/* Move c to state st (checks the transition, updates counters and shm). */
void wk_client_set_state(struct wk_client *c, enum wk_client_state st);
/* The pool linked server s to c (c was waiting). Returns WK_CLOSED if c closed. */
enum wk_rc wk_client_attach(struct wk_client *c, struct wk_server *s);
/*
 * End a login: draw the client's cancel key, append BackendKeyData and
 * ReadyForQuery to b (which holds the ParameterStatus set) and send it.
 */
enum wk_rc wk_client_send_ready(struct wk_client *c, struct pgw_buf *b);
/* The pool has parameters now: finish a login that waited for them. */
enum wk_rc wk_client_finish_login(struct wk_client *c);
/* Its startup values went through on its server: the login ends (see is_login_check). */
enum wk_rc wk_client_login_checked(struct wk_client *c);
/* Its end_due, now that its server owes it nothing more (see wk_client_end_at). */
enum wk_rc wk_client_end(struct wk_client *c);
/* Session mode (or no pool yet): the client keeps its server until it leaves. */
bool wk_client_is_session(const struct wk_client *c);
/* Transaction done: give c's server back to the pool; c goes back to IDLE. */
void wk_client_detach(struct wk_client *c);
/*
 * The client is told value for name (ParameterStatus; is_ours: one that
 * pgdog's own SETs for it brought). 1: send it, and it is recorded; 0: do
 * not (is_ours, and the client knows that value); -1: out of memory.
 */
int wk_client_param_status(struct wk_client *c, const char *name, const char *value, bool is_ours)
	MUST_CHECK;
/* Close c now (after flushing what it has queued). reason may be NULL. */
enum wk_rc wk_client_close(struct wk_client *c, const char *reason);
/* The linked server died: tell the client and close it. */
void wk_client_server_lost(struct wk_client *c, const char *sqlstate, const char *message);
/* Resume reading (backpressure). */
void wk_client_resume(struct wk_client *c);
/*
 * More than WK_BACKPRESSURE_BYTES of pgdog's answers wait unread: stop reading
 * c until they drain (is_out_full; see wk_client.c) and return true.
 */
bool wk_client_hold_for_output(struct wk_client *c);
/* Stop reading c until wk_client_read_start() (is_read_off; see wk_client.c). */
void wk_client_read_stop(struct wk_client *c);
/* Read c again after wk_client_read_stop(), unless backpressure holds it. */
void wk_client_read_start(struct wk_client *c);
/* Handle what the client has buffered (after its server was given back). */
enum wk_rc wk_client_resume_input(struct wk_client *c);
/* Shutdown: close c if it is between transactions. true if closed. */
bool wk_client_close_if_idle(struct wk_client *c);
/* Periodic work: login timeouts, flush timeouts. */
void wk_client_sweep(void);
void wk_client_free(struct wk_client *c);
/* Update the client's shm row with its server (for cancel) or none. */
void wk_client_row_server(struct wk_client *c);
/* Publish whether a request of c's is on its server (shm is_running, for cancels). */
void wk_client_running(struct wk_client *c, bool is_running);
/*
 * At a transaction's end: is a CancelRequest for s's backend on its way
 * (c's shm cancel_backend)? Then c keeps s (is_cancel_hold) until it has
 * arrived. Call after wk_client_running(c, false).
 */
bool wk_client_cancel_due(struct wk_client *c, struct wk_server *s);
/*
 * The CancelRequest marked in client row r has arrived (or was dropped):
 * a client of this worker holding its server for it gives it back.
 */
void wk_client_cancel_arrived(struct shm_client *r);
/*
 * A ReadyForQuery 'I' of the client's came with c->unpin_due set: a
 * transaction that did not commit (is_commit false) keeps the pins; one that
 * ends the last request that scheduled a release (wk_client_unpin_after)
 * and committed releases them.
 */
void wk_client_unpin_settle(struct wk_client *c, bool is_commit);
/*
 * s answered an ErrorResponse where a client's Parse of its unnamed statement
 * (the slot sl, with its unnamed_tag) was due: refused it (is_refused), or
 * skipped it after an earlier message's error.
 */
void wk_client_unnamed_lost(struct wk_server *s, const struct wk_slot *sl, bool is_refused);
/* s answered ParseComplete to that Parse: the statements before it are gone. */
void wk_client_unnamed_parsed(struct wk_server *s, const struct wk_slot *sl);
/*
 * The client's DISCARD ALL (is_discard) or DEALLOCATE ALL whose outcome
 * was not known when it was sent ran (its CommandComplete came;
 * is_dealloc_tag_due): its statements, and the server's, are gone; they no
 * longer pin the server (nor, after DISCARD ALL, does anything else).
 */
void wk_client_tag_ran(struct wk_client *c, bool is_discard);
/*
 * pgdog's copy of the client's unnamed statement (the slot sl, with its
 * unnamed_tag and is_unnamed_copy) is prepared on s: s holds the client's
 * unnamed statement, if it is still that one.
 */
void wk_client_unnamed_copied(struct wk_server *s, const struct wk_slot *sl);
