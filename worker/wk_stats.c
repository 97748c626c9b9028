/*
 * wk_stats.c: the worker's statistics hooks (see wk_stats.h).
 * Runs in: a worker. Writes only this worker's slot of the shared segment.
 *
 * Times: a request runs from the later of its first message being forwarded
 * (s->request_start_us) and the previous ReadyForQuery (pipelined requests)
 * to its ReadyForQuery. A transaction runs from the start of its first
 * request to the ReadyForQuery with status 'I'; the part of it when no
 * request was running is idle-in-transaction time.
 */
#include "worker/wk_stats.h"

#include <unistd.h>

#include "shared/stats.h"
#include "sql/sql_classify.h"

static uint64_t wk_stats_next_snap_us;

void
wk_stats_ready(struct wk_server *s, struct wk_client *c, char st)
{
	struct wk_pool *p = s->pool;
	uint64_t now = g_wk.mono_us;
	uint64_t start =
		s->request_start_us > s->stat_ready_us ? s->request_start_us : s->stat_ready_us;
	uint64_t qt = now > start ? now - start : 0;
	struct shm_server *r = shm_server((uint32_t)g_wk.slot, s->row);
	struct shm_client *cr = c ? shm_client((uint32_t)g_wk.slot, c->row) : NULL;

	wk_stats_add(p, SHM_STAT_QUERY, 1);
	wk_stats_add(p, SHM_STAT_QUERY_US, qt);
	stats_hist_add(p->stats, SHM_HIST_QUERY, qt);
	if (!s->stat_in_tx) {
		s->stat_tx_start_us = start;
		s->stat_tx_query_us = 0;
	}
	s->stat_tx_query_us += qt;
	if (cr)
		cr->query_time_us += qt;
	if (st == 'I') {
		uint64_t xt = now > s->stat_tx_start_us ? now - s->stat_tx_start_us : 0;

		wk_stats_add(p, SHM_STAT_XACT, 1);
		wk_stats_add(p, SHM_STAT_XACT_US, xt);
		wk_stats_add(p, SHM_STAT_IDLE_XACT_US,
			     xt > s->stat_tx_query_us ? xt - s->stat_tx_query_us : 0);
		stats_hist_add(p->stats, SHM_HIST_XACT, xt);
		if (cr)
			cr->xact_time_us += xt;
		s->stat_in_tx = false;
	} else {
		s->stat_in_tx = true;
	}
	s->stat_ready_us = now;
	r->tx_status = (uint8_t)st;
	r->ready_us = g_wk.now_us;
}

void
wk_stats_assign(struct wk_pool *p, struct wk_client *c)
{
	uint64_t w = g_wk.mono_us > c->wait_start_us ? g_wk.mono_us - c->wait_start_us : 0;

	wk_stats_add(p, SHM_STAT_ASSIGN, 1);
	wk_stats_add(p, SHM_STAT_WAIT_US, w);
	shm_client((uint32_t)g_wk.slot, c->row)->wait_time_us += w;
}

void
wk_stats_connected(struct wk_server *s)
{
	wk_stats_add(s->pool, SHM_STAT_CONNECT, 1);
	wk_stats_add(s->pool, SHM_STAT_CONNECT_US,
		     g_wk.mono_us > s->connect_us ? g_wk.mono_us - s->connect_us : 0);
	s->stat_ready_us = g_wk.mono_us;
}

void
wk_stats_server_unlinked(struct wk_server *s)
{
	s->stat_in_tx = false;
}

void
wk_stats_error(struct wk_server *s, struct wk_client *c)
{
	wk_stats_add(s->pool, SHM_STAT_ERRORS, 1);
	if (c)
		shm_client((uint32_t)g_wk.slot, c->row)->errors++;
}

void
wk_stats_tick(void)
{
	struct shm_worker *w = shm_worker((uint32_t)g_wk.slot);
	struct sql_cache_stats qc;

	sql_cache_stats(&qc);
	atomic_store_explicit(&w->qc_hits, qc.hits, memory_order_relaxed);
	atomic_store_explicit(&w->qc_misses, qc.misses, memory_order_relaxed);
	atomic_store_explicit(&w->qc_parses, qc.parses, memory_order_relaxed);
	atomic_store_explicit(&w->qc_prefiltered, qc.prefiltered, memory_order_relaxed);
	atomic_store_explicit(&w->qc_entries, qc.entries, memory_order_relaxed);
	if (g_wk.mono_us < wk_stats_next_snap_us)
		return;
	wk_stats_next_snap_us = g_wk.mono_us + (uint64_t)g_cfg->stats_period * 1000;
	for (uint32_t i = 0; i < wk_pool_count(); i++) {
		struct wk_pool *p = wk_pool_get(i);

		/* pool indexes run to the segment's capacity: unused ones have no stats */
		if (p->stats)
			stats_snapshot(p->stats, g_wk.mono_us);
	}
	atomic_store_explicit(&w->rss_bytes, stats_rss_bytes((int)getpid()), memory_order_relaxed);
}
