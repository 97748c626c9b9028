/*
 * wk_ctl.h: the worker's side of the shared control area (shm_ctl): the
 * configuration published by a reload, holds (PAUSE, MAINTENANCE), bans,
 * runtime overrides (SET) and the command ring (RECONNECT, KILL,
 * KILL_CLIENT). Whoever changes the control area bumps its generation and
 * wakes every worker: SIGHUP to each worker's pid (a libevent signal event),
 * or, for the worker that made the change, a deferred libevent event.
 * Runs in: a worker.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "shared/compiler.h"
#include "shared/shm.h"

struct wk_pool;

/*
 * At worker start, before any client: take the configuration (the one
 * published by the last reload, else the inherited one), register this
 * worker's pools in shm and set them up. -1 on failure (errno set).
 */
int wk_ctl_init(void) MUST_CHECK;
/* Free what wk_ctl owns (configurations, events) at worker exit. */
void wk_ctl_cleanup(void);
/* Act on everything new in the control area (SIGHUP, or wk_ctl_wake_self). */
void wk_ctl_wake(void);
/* Run wk_ctl_wake from the event loop, after the current callback. */
void wk_ctl_wake_self(void);
/* Periodic work (sweep): free configurations no longer referenced, drain removed pools. */
void wk_ctl_sweep(void);

/*
 * Change the control area: fn runs under the control lock with ctl and
 * arg; then the generation is bumped and every worker (this one included)
 * is woken. Returns the new generation.
 */
uint64_t wk_ctl_change(void (*fn)(struct shm_ctl *ctl, void *arg), void *arg);
/* Post a command for every worker (slot -1) or one; wakes them. Returns the generation. */
uint64_t wk_ctl_post(enum shm_ctl_kind kind, int32_t slot, uint64_t id, const char *arg);
/* Whether every live worker has acted on generation gen. */
bool wk_ctl_all_acked(uint64_t gen);
/* The generation of the configuration this worker runs. */
uint64_t wk_ctl_cfg_gen(void);
