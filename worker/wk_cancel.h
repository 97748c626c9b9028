/*
 * wk_cancel.h: CancelRequest handling. The key pgdog gave the client names
 * a row in shared memory (any worker can read it); the row names the server
 * running the client's query, and a new connection carries PostgreSQL's own
 * CancelRequest to it.
 * Runs in: a worker.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct shm_client;
struct wk_cancel_op;
struct wk_client;
struct wk_pool;
struct wk_server;

/* Encode/decode the BackendKeyData pid pgdog issues: slot << 24 | (row + 1). */
uint32_t wk_cancel_pid(uint32_t slot, uint32_t row);
/* The row index a pid names (UINT32_MAX for 0). */
uint32_t wk_cancel_row_of(uint32_t pid);
/*
 * A CancelRequest arrived (on any worker) on connection via. Forged or stale
 * keys do nothing, nor does a client without a request running on its
 * server (PostgreSQL drops a cancel that comes while it waits for a command).
 * The pid names a row (slot, index). A client handed over by a binary
 * upgrade keeps its pid but lives in the new generation's slot of the same
 * worker index (the twin): that row, then the two slots' rows are searched
 * for the pid and key. Returns true when via stays open until PostgreSQL
 * has the cancel (wk_cancel_send); false: the caller closes it.
 */
bool wk_cancel_request(struct wk_client *via, uint32_t pid, uint32_t key);
/*
 * Send PostgreSQL's CancelRequest for backend (pid, key) of pool p's server.
 * mark: the client row whose cancel_backend the caller set to pid (cleared,
 * and wk_client_cancel_arrived() called, once PostgreSQL has it), or NULL.
 * via: the client's CancelRequest connection, closed then (NULL: none).
 * Returns true when it took via.
 */
bool wk_cancel_send(struct wk_pool *p, uint32_t server_pid, uint32_t server_key,
		    struct shm_client *mark, struct wk_client *via);
/* via (wk_cancel_send) is going: the cancel no longer closes it. */
void wk_cancel_forget_client(struct wk_cancel_op *op);
/*
 * Cancel what server s runs (its client left while its result streamed):
 * s->gone_cancel is the op until PostgreSQL has the cancel, then
 * wk_server_gone_cancel_landed(s) is called. False: none could be sent.
 */
bool wk_cancel_server(struct wk_server *s);
/* s (wk_cancel_server) is going: the cancel no longer tells it. */
void wk_cancel_forget_server(struct wk_cancel_op *op);
