/*
 * wk_cancel.h: CancelRequest handling. The key pgdog gave the client names
 * a row in shared memory (any worker can read it); the row names the server
 * running the client's query, and a new connection carries PostgreSQL's own
 * CancelRequest to it.
 * Runs in: a worker.
 */
#pragma once

#include <stdint.h>

struct wk_pool;

/* Encode/decode the BackendKeyData pid pgdog issues: slot << 24 | (row + 1). */
uint32_t wk_cancel_pid(uint32_t slot, uint32_t row);
/* The row index a pid names (UINT32_MAX for 0). */
uint32_t wk_cancel_row_of(uint32_t pid);
/*
 * A CancelRequest arrived (on any worker). Forged or stale keys do nothing.
 * The pid names a row (slot, index). A client handed over by a binary
 * upgrade keeps its pid but lives in the new generation's slot of the same
 * worker index (the twin): that row, then the two slots' rows are searched
 * for the pid and key.
 */
void wk_cancel_request(uint32_t pid, uint32_t key);
/* Send PostgreSQL's CancelRequest for backend (pid, key) of pool p's server. */
void wk_cancel_send(struct wk_pool *p, uint32_t server_pid, uint32_t server_key);
