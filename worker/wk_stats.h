/*
 * wk_stats.h: the worker's statistics hooks. Each adds to this worker's own
 * counters in the shared segment (shm_pool_stats, the connection rows):
 * single writer, no locked instruction, no syscall, no clock read (the loop's
 * g_wk.mono_us). Called at the few places where a request or a transaction
 * ends, bytes move (once per batch), a client gets a server, a server
 * connects. The averages' copies and the query cache counts are published by
 * wk_stats_tick() from the periodic sweep.
 * Runs in: a worker.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/pgw.h"
#include "shared/shm.h"
#include "worker/wk_conn.h"
#include "worker/wk_pool.h"

/*
 * This worker's own connection rows (its slot's), fixed for the life of the
 * process: the request path finds a row several times per transaction, and
 * shm_client()/shm_server() recompute the slot's base every time.
 */
extern struct shm_client *g_wk_client_rows;
extern struct shm_server *g_wk_server_rows;

/* Point g_wk_client_rows / g_wk_server_rows at g_wk.slot's rows (worker start, once). */
void wk_stats_init(void);

static inline struct shm_client *
wk_stats_client_row(uint32_t row)
{
	return g_wk_client_rows + row;
}

static inline struct shm_server *
wk_stats_server_row_at(uint32_t row)
{
	return g_wk_server_rows + row;
}

static inline void
wk_stats_add(struct wk_pool *p, enum shm_stat i, uint64_t n)
{
	shm_stat_add(&p->stats->cnt[i], n);
}

/* A client message forwarded to a server: count the extended-protocol steps. */
static inline void
wk_stats_client_msg(struct wk_pool *p, uint8_t type)
{
	switch (type) {
	case PGW_MSG_PARSE:
		wk_stats_add(p, SHM_STAT_PARSE, 1);
		break;
	case PGW_MSG_BIND:
		wk_stats_add(p, SHM_STAT_BIND, 1);
		break;
	case PGW_MSG_CLOSE:
		wk_stats_add(p, SHM_STAT_CLOSE, 1);
		break;
	default:
		break;
	}
}

/*
 * A ReadyForQuery owed to the client (status st) arrived on s: one request
 * ended, and with status 'I' the transaction too. c may be NULL (the client
 * left while its reply was in flight).
 */
void wk_stats_ready(struct wk_server *s, struct wk_client *c, char st);
/* A waiting client c gets a server of p: its wait ends. */
void wk_stats_assign(struct wk_pool *p, struct wk_client *c);
/* s logged in (connect time) */
void wk_stats_connected(struct wk_server *s);
/* s leaves its client: a transaction left open is not this pool's next one. */
static inline void
wk_stats_server_unlinked(struct wk_server *s)
{
	s->stat_in_tx = false;
}
/* An ErrorResponse from s reached its client c (may be NULL). */
void wk_stats_error(struct wk_server *s, struct wk_client *c);

/* Longest CommandComplete tag the statistics read ("INSERT 0 4294967295" fits). */
#define WK_STATS_TAG_MAX 48
/*
 * A CommandComplete from s: tag_len bytes of tag (NUL included) start off
 * bytes into cur's buffer. Counts rollbacks (pgdog's own ROLLBACK too), and
 * for the client's statements reads, writes and rows by the tag.
 */
void wk_stats_command(struct wk_server *s, struct wk_cursor *cur, size_t off, size_t tag_len);
/* A login for pool p reached the password check: is_ok tells how it ended. */
void wk_stats_auth(struct wk_pool *p, bool is_ok);
/* A connect to p's server failed (is_failed) or logged in: SHOW POOLS healthy. */
void wk_stats_connect_result(struct wk_pool *p, bool is_failed);

/*
 * Periodic (the sweep, every 100 ms): copy the totals for the averages every
 * stats_period, publish the SQL cache counts and this process's RSS; every
 * second the most used cached statements (SHOW QUERY_CACHE) and what the
 * connection rows show beyond the counters (prepared statements, pins,
 * encoding and date/time settings: SHOW CLIENTS, SHOW SERVERS, SHOW FDS).
 */
void wk_stats_tick(void);
