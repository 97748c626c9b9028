/*
 * stats.h: the statistics that the admin console (SHOW STATS, SHOW POOLS,
 * ...) and the OpenMetrics endpoint report, summed over every worker slot
 * of the shared segment, and the latency histogram buckets the workers fill.
 * Runs in: both processes (readers: the admin console in a worker, the
 * metrics endpoint in the supervisor; the bucket helpers in workers).
 *
 * Averages over stats_period: each worker copies its running totals into its
 * slot every stats_period (shm_pool_stats last/prev). A reader takes, for
 * each worker, the difference between its two latest copies, and divides by
 * the time between them. Rates are per second; time averages are per event
 * (xact_time per transaction, query_time per query, wait_time per
 * assignment), as PgBouncer and PgDog report them. Nobody computes anything
 * on the request path: a worker only adds to counters.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/compiler.h"
#include "shared/shm.h"

/* Upper bounds of the histogram buckets, microseconds (the last bucket is +Inf). */
extern const uint64_t stats_hist_bounds_us[SHM_HIST_BOUNDS];

/* The bucket a latency falls in: the first bound >= us, or the +Inf bucket. */
static inline uint32_t
stats_hist_bucket(uint64_t us)
{
	uint32_t i = 0;

	while (i < SHM_HIST_BOUNDS && us > stats_hist_bounds_us[i])
		i++;
	return i;
}

/* Record one latency into a worker's pool histogram (single writer). */
static inline void
stats_hist_add(struct shm_pool_stats *st, enum shm_hist kind, uint64_t us)
{
	shm_stat_add(&st->hist[kind][stats_hist_bucket(us)], 1);
	shm_stat_add(&st->hist_sum_us[kind], us);
}

/*
 * A pool as the statistics name it, copied from its shm_pool_ident row. A
 * pool index is the stable shm index (see shm_pool_ident), not an index
 * into a configuration's pools: after a reload that adds or removes a pool
 * the two differ, so readers name a pool only through this.
 */
struct stats_ident {
	uint32_t state; /* enum shm_pool_state: LIVE, or REMOVED (draining) */
	char user[SHM_NAME_MAX];
	char database[SHM_NAME_MAX];
	char user_label[SHM_NAME_MAX];
	char db_label[SHM_NAME_MAX];
	char host[SHM_HOST_MAX];
	int32_t port, shard, role, pool_size, pooler_mode;
};

/*
 * Read the identity of pool index i (< g_shm->pools_cnt) consistently.
 * false: no pool there (SHM_POOL_FREE), or the row was being rewritten.
 */
bool stats_ident_read(uint32_t i, struct stats_ident *out) MUST_CHECK;

/* One pool over every worker. */
struct stats_pool {
	struct stats_ident ident; /* state SHM_POOL_FREE: no pool at this index, skip it */
	/* gauges */
	uint64_t cl_active, cl_waiting, sv_active, sv_idle, sv_idle_xact, sv_login, sv_total;
	uint64_t maxwait_us; /* the longest wait of any worker */
	uint64_t checkout_timeouts, pins;
	uint64_t connect_failed_cnt; /* workers whose last connect to the server failed */
	uint64_t total[SHM_STAT_CNT];
	uint64_t hist[SHM_HIST_KINDS][SHM_HIST_CNT]; /* per bucket, not cumulative */
	uint64_t hist_sum_us[SHM_HIST_KINDS];
	/* averages over the last stats_period (see above) */
	uint64_t delta[SHM_STAT_CNT]; /* summed differences between the last two copies */
	uint64_t delta_us;            /* the longest period among the workers that had one */
};

/*
 * Sum every pool (out has pools_cnt entries, normally g_shm->pools_cnt; out[i]
 * is pool index i, named by out[i].ident) over every worker slot, including
 * the idle-in-transaction count from the server rows. Reads only, takes no lock: never waits, even on a dead worker.
 */
void stats_collect(struct stats_pool *out, size_t pools_cnt);

/* Add one pool's figures into another (totals over pools: SHOW TOTALS). */
void stats_pool_add(struct stats_pool *dst, const struct stats_pool *src);

/*
 * Averages of one pool: avg[i] is per second for counts and bytes, per event
 * for times (XACT_US per XACT, IDLE_XACT_US per XACT, QUERY_US per QUERY,
 * WAIT_US per ASSIGN, CONNECT_US per CONNECT). All 0 before the first full
 * stats_period.
 */
void stats_averages(const struct stats_pool *p, uint64_t avg[SHM_STAT_CNT]);

/* Worker side: copy a pool's totals for the averages (every stats_period). */
void stats_snapshot(struct shm_pool_stats *st, uint64_t now_us);

/*
 * The holds and bans of the control area (shm_ctl, shm_ban), as SHOW STATE,
 * SHOW DATABASES and /metrics report them. Read without the control lock:
 * the supervisor must never wait on a lock a dead worker holds, so a copy
 * may be a moment old (never torn: names are re-terminated).
 */
struct stats_holds {
	bool is_maintenance; /* MAINTENANCE ON: every new transaction held */
	bool is_pause_all;   /* PAUSE without a database */
	uint32_t paused_cnt; /* PAUSE db: these databases */
	char paused[SHM_CTL_PAUSED_MAX][SHM_NAME_MAX];
	uint32_t bans_cnt; /* bans in force (not expired) */
	struct {
		char database[SHM_NAME_MAX];
		char user[SHM_NAME_MAX]; /* "": every user of database */
	} bans[SHM_BANS_MAX];
};

/* Copy the holds and the bans in force at now_us (wall clock, microseconds). */
void stats_holds_read(struct stats_holds *out, uint64_t now_us);
/* Whether new transactions on database db are held (MAINTENANCE, PAUSE, PAUSE db). */
bool stats_holds_is_paused(const struct stats_holds *h, const char *db);
/*
 * Whether a ban refuses pool (db, user), as the workers apply them (host is
 * not compared); user NULL: only a ban of every user of db counts.
 */
bool stats_holds_is_banned(const struct stats_holds *h, const char *db, const char *user);

/* Resident set size of a process from /proc/<pid>/statm, bytes; 0 if unknown. */
uint64_t stats_rss_bytes(int pid);
