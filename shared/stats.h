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

/* One pool over every worker. */
struct stats_pool {
	/* gauges */
	uint64_t cl_active, cl_waiting, sv_active, sv_idle, sv_idle_xact, sv_login, sv_total;
	uint64_t maxwait_us; /* the longest wait of any worker */
	uint64_t checkout_timeouts, pins;
	uint64_t total[SHM_STAT_CNT];
	uint64_t hist[SHM_HIST_KINDS][SHM_HIST_CNT]; /* per bucket, not cumulative */
	uint64_t hist_sum_us[SHM_HIST_KINDS];
	/* averages over the last stats_period (see above) */
	uint64_t delta[SHM_STAT_CNT]; /* summed differences between the last two copies */
	uint64_t delta_us;            /* the longest period among the workers that had one */
};

/*
 * Sum every pool (out has pools_cnt entries, pools_cnt <= g_shm->pools_cnt)
 * over every worker slot, including the idle-in-transaction count from the
 * server rows. Reads only, takes no lock: never waits, even on a dead worker.
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

/* Resident set size of a process from /proc/<pid>/statm, bytes; 0 if unknown. */
uint64_t stats_rss_bytes(int pid);
