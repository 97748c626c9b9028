/*
 * wk_pool.h: this worker's share of each pool (user, database entry): its
 * server connections by state, the FIFO of clients waiting for one, and the
 * global cap (pool_size over all workers, through shm_pool_reserve).
 * Runs in: a worker.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "shared/config.h"
#include "shared/list.h"
#include "shared/shm.h"
#include "worker/wk_conn.h"

struct wk_pool {
	uint32_t idx;                     /* stable shm pool index (shm_pool_ident) */
	const struct config_pool *cfg;    /* borrowed from owner; NULL: slot unused */
	const struct config_user *user;   /* borrowed from owner */
	const struct config_database *db; /* borrowed from owner */
	const struct config *owner;       /* the configuration those point into */
	bool is_draining;                 /* removed by a reload: no new work */
	bool is_held;                     /* PAUSE / MAINTENANCE: no checkout */
	bool is_banned;                   /* BAN: checkouts refused */
	bool is_handing_out; /* in wk_pool_hand_out(), whose loop sees what a nested call would */
	uint32_t epoch;      /* servers of an older epoch close at check-in */
	char name[160];      /* "user@database (host:port)" for messages */
	struct list servers[WK_SERVER_STATE_CNT]; /* by state */
	uint32_t servers_cnt[WK_SERVER_STATE_CNT];
	struct list waiters; /* clients in WAIT_SERVER, oldest first */
	uint32_t waiters_cnt;
	uint32_t min_share; /* min_pool_size servers this worker keeps */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	/* ParameterStatus values from the first server login: sent to clients at login */
	struct wk_server_param params[WK_SERVER_PARAMS_MAX];
	size_t params_cnt;
	bool has_params;
	/* ClientKey proven by a client against a SCRAM verifier: logs in to PostgreSQL */
	uint8_t client_key[AUTH_KEY_LEN];
	bool has_client_key;
	uint64_t retry_after_us; /* no new connection before this after a failure */
	uint64_t yield_until_us; /* gave the cap to a starving worker: none opened before this */
	struct shm_pool_stats *stats;
	struct shm_pool *shm; /* shm_pool(idx): the global counts, cached */
};

/*
 * Set up every pool of g_cfg: the array has room for g_shm->pools_cap pools,
 * indexed by shm pool index; map[i] is the index of g_cfg's pool i (NULL:
 * i). -1 on allocation failure.
 */
int wk_pool_init_all(const uint32_t *map) MUST_CHECK;
/*
 * Apply a new configuration (g_cfg is still the old one; the caller sets
 * g_cfg = next afterwards): pools in next keep their index; unchanged ones
 * keep everything, changed ones are rebuilt (idle servers closed now,
 * active ones at check-in), pools not in next drain, new ones appear.
 */
void wk_pool_apply(const struct config *next, const uint32_t *map);
/* Whether a pool still points into cfg (a draining pool keeps its configuration). */
bool wk_pool_uses_config(const struct config *cfg);
/* The pool of the configuration's pool cfg_idx (-1: none), or -1. */
int wk_pool_index_of(int cfg_idx);
/*
 * Re-read holds (PAUSE, MAINTENANCE) and bans for every pool; release
 * waiters of pools no longer held. Called after a control wake-up.
 */
void wk_pool_update_holds(bool (*is_held)(const struct wk_pool *p),
			  bool (*is_banned)(const struct wk_pool *p));
/* RECONNECT: servers of pools of database db (NULL: all) close at check-in; idle ones now. */
void wk_pool_reconnect(const char *db);
/* KILL: close every server of pools of database db (NULL: all) that has no client. */
void wk_pool_kill_servers(const char *db);
/* Periodic work for removed pools: close their clients between transactions, then forget them. */
void wk_pool_drain_sweep(void);
/* Close every server (worker exit); they are freed by the next reap. */
void wk_pool_close_all(void);
/* Free the pools: only after every server has been freed. */
void wk_pool_cleanup_all(void);
struct wk_pool *wk_pool_get(uint32_t idx);
uint32_t wk_pool_count(void);

/*
 * Find a server for c (IDLE with a request, or LOGIN_WAIT). Links one at
 * once when idle (an IDLE client goes straight to ACTIVE), else queues c
 * (an IDLE one in WAIT_SERVER) and opens a connection if the global cap
 * allows.
 * Returns WK_CLOSED if c was closed.
 */
enum wk_rc wk_pool_checkout(struct wk_pool *p, struct wk_client *c);

/* wk_pool_checkout() would link an idle client to a server at once, without queueing. */
static inline bool
wk_pool_is_checkout_now(const struct wk_pool *p)
{
	return !p->is_draining && !p->is_banned && !p->is_held && list_empty(&p->waiters) &&
	       !list_empty(&p->servers[WK_SERVER_IDLE]);
}
/* Remove c from the waiters (it disconnected or was closed). */
void wk_pool_unwait(struct wk_pool *p, struct wk_client *c);
/* A server became usable (login done, reset done, client left cleanly). */
void wk_pool_server_ready(struct wk_pool *p, struct wk_server *s);
/* A server is about to be freed: give back its reservation, wake a waiter. */
void wk_pool_server_gone(struct wk_pool *p, struct wk_server *s);
/* A server's login failed: tell the oldest waiter why. */
void wk_pool_server_failed(struct wk_pool *p, const char *sqlstate, const char *message);
/* Periodic work: timeouts, min_pool_size, idle_timeout, cross-worker fairness. */
void wk_pool_sweep(void);
/* Close every idle server (shutdown). */
void wk_pool_close_idle(void);
/* Move a server between the pool's state lists (wk_server_set_state uses it). */
void wk_pool_move(struct wk_pool *p, struct wk_server *s, enum wk_server_state from,
		  enum wk_server_state to);
/* Take a server off the pool's lists (it is being freed). */
void wk_pool_forget(struct wk_pool *p, struct wk_server *s);
/* Record the ParameterStatus set of a freshly logged-in server (and publish it in shm). */
void wk_pool_learn_params(struct wk_pool *p, const struct wk_server *s);
/*
 * Whether p knows the ParameterStatus values a login gets: learned from a
 * server of its own, or from another worker's (taken from shm here).
 */
bool wk_pool_has_params(struct wk_pool *p);
