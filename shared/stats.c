/*
 * stats.c: summing the per-worker statistics of the shared segment (see
 * stats.h). Runs in: both processes. Reads only, except stats_snapshot()
 * which a worker runs on its own slot.
 */
#include "shared/stats.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shared/proc.h"

/* 0.1 ms to 60 s, roughly 1-2.5-5 per decade */
const uint64_t stats_hist_bounds_us[SHM_HIST_BOUNDS] = {
	100,    250,    500,    1000,    2500,    5000,    10000,    25000,    50000,
	100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};

/* Which counter divides a time total to give a per-event average. */
static int
stats_avg_per(enum shm_stat i)
{
	switch (i) {
	case SHM_STAT_XACT_US:
	case SHM_STAT_IDLE_XACT_US:
		return SHM_STAT_XACT;
	case SHM_STAT_QUERY_US:
		return SHM_STAT_QUERY;
	case SHM_STAT_WAIT_US:
		return SHM_STAT_ASSIGN;
	case SHM_STAT_CONNECT_US:
		return SHM_STAT_CONNECT;
	default:
		return -1;
	}
}

static uint64_t
stats_load(const _Atomic uint64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static uint32_t
stats_load32(const _Atomic uint32_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

/* The averaging copies of one worker's pool, consistently. */
struct stats_snap {
	uint64_t prev_us, last_us;
	uint64_t prev[SHM_STAT_CNT], last[SHM_STAT_CNT];
};

static bool
stats_snap_read(const struct shm_pool_stats *st, struct stats_snap *out)
{
	for (int i = 0; i < 100; i++) {
		uint32_t a = atomic_load_explicit(&st->snap_seq, memory_order_acquire);

		if (a & 1)
			continue;
		out->prev_us = st->prev_us;
		out->last_us = st->last_us;
		memcpy(out->prev, st->prev, sizeof(out->prev));
		memcpy(out->last, st->last, sizeof(out->last));
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&st->snap_seq, memory_order_relaxed) == a)
			return true;
	}
	return false;
}

static void
stats_collect_worker(struct stats_pool *p, const struct shm_pool_stats *st)
{
	struct stats_snap sn;
	uint64_t mw = stats_load(&st->maxwait_us);

	p->cl_active += stats_load32(&st->cl_active);
	p->cl_waiting += stats_load32(&st->cl_waiting);
	p->sv_active += stats_load32(&st->sv_active);
	p->sv_idle += stats_load32(&st->sv_idle);
	p->sv_login += stats_load32(&st->sv_login);
	if (mw > p->maxwait_us)
		p->maxwait_us = mw;
	p->checkout_timeouts += stats_load(&st->checkout_timeouts);
	p->pins += stats_load(&st->pins);
	p->connect_failed_cnt += atomic_load_explicit(&st->is_connect_failed, memory_order_relaxed);
	for (int i = 0; i < SHM_STAT_CNT; i++)
		p->total[i] += stats_load(&st->cnt[i]);
	for (int k = 0; k < SHM_HIST_KINDS; k++) {
		for (int b = 0; b < SHM_HIST_CNT; b++)
			p->hist[k][b] += stats_load(&st->hist[k][b]);
		p->hist_sum_us[k] += stats_load(&st->hist_sum_us[k]);
	}
	if (stats_snap_read(st, &sn) && sn.prev_us && sn.last_us > sn.prev_us) {
		for (int i = 0; i < SHM_STAT_CNT; i++)
			p->delta[i] += sn.last[i] >= sn.prev[i] ? sn.last[i] - sn.prev[i] : 0;
		if (sn.last_us - sn.prev_us > p->delta_us)
			p->delta_us = sn.last_us - sn.prev_us;
	}
}

bool
stats_ident_read(uint32_t i, struct stats_ident *out)
{
	struct shm_pool_ident *src, r;

	if (i >= g_shm->pools_cnt || i >= g_shm->pools_cap)
		return false;
	src = shm_pool_ident(i);
	if (atomic_load_explicit(&src->state, memory_order_relaxed) == SHM_POOL_FREE)
		return false;
	if (!shm_row_read(&src->seq, src, &r, sizeof(r)) || r.state == SHM_POOL_FREE)
		return false;
	out->state = r.state;
	/* copies of fixed arrays: terminate them whatever the row held */
	memcpy(out->user, r.user, sizeof(out->user));
	memcpy(out->database, r.database, sizeof(out->database));
	memcpy(out->user_label, r.user_label, sizeof(out->user_label));
	memcpy(out->db_label, r.db_label, sizeof(out->db_label));
	memcpy(out->host, r.host, sizeof(out->host));
	out->user[sizeof(out->user) - 1] = out->database[sizeof(out->database) - 1] = '\0';
	out->user_label[sizeof(out->user_label) - 1] = '\0';
	out->db_label[sizeof(out->db_label) - 1] = out->host[sizeof(out->host) - 1] = '\0';
	out->port = r.port;
	out->shard = r.shard;
	out->role = r.role;
	out->pool_size = r.pool_size;
	out->pooler_mode = r.pooler_mode;
	return true;
}

void
stats_collect(struct stats_pool *out, size_t pools_cnt)
{
	uint32_t workers = g_shm->workers_cnt;

	memset(out, 0, sizeof(*out) * pools_cnt);
	if (pools_cnt > g_shm->pools_cnt)
		pools_cnt = g_shm->pools_cnt;
	for (uint32_t w = 0; w < workers; w++) {
		for (size_t i = 0; i < pools_cnt; i++)
			stats_collect_worker(&out[i], shm_pool_stats(w, (uint32_t)i));
		/* idle in transaction: linked to a client, inside a transaction, no request running */
		for (uint32_t j = 0; j < g_shm->servers_per_worker; j++) {
			const struct shm_server *s = shm_server(w, j);
			int32_t pool_idx = s->pool_idx;

			if (atomic_load_explicit(&s->state, memory_order_relaxed) !=
			    SHM_STATE_ACTIVE)
				continue;
			if (pool_idx < 0 || (size_t)pool_idx >= pools_cnt)
				continue;
			if ((s->tx_status == 'T' || s->tx_status == 'E') &&
			    s->ready_us >= s->request_us)
				out[pool_idx].sv_idle_xact++;
		}
	}
	for (size_t i = 0; i < pools_cnt; i++) {
		if (!stats_ident_read((uint32_t)i, &out[i].ident))
			out[i].ident.state = SHM_POOL_FREE;
		out[i].sv_total = shm_pool_open_peek((uint32_t)i);
		/* sv_active counts idle-in-transaction servers too: they are linked */
		if (out[i].sv_active >= out[i].sv_idle_xact)
			out[i].sv_active -= out[i].sv_idle_xact;
	}
}

void
stats_pool_add(struct stats_pool *dst, const struct stats_pool *src)
{
	dst->cl_active += src->cl_active;
	dst->cl_waiting += src->cl_waiting;
	dst->sv_active += src->sv_active;
	dst->sv_idle += src->sv_idle;
	dst->sv_idle_xact += src->sv_idle_xact;
	dst->sv_login += src->sv_login;
	dst->sv_total += src->sv_total;
	if (src->maxwait_us > dst->maxwait_us)
		dst->maxwait_us = src->maxwait_us;
	dst->checkout_timeouts += src->checkout_timeouts;
	dst->pins += src->pins;
	dst->connect_failed_cnt += src->connect_failed_cnt;
	for (int i = 0; i < SHM_STAT_CNT; i++) {
		dst->total[i] += src->total[i];
		dst->delta[i] += src->delta[i];
	}
	for (int k = 0; k < SHM_HIST_KINDS; k++) {
		for (int b = 0; b < SHM_HIST_CNT; b++)
			dst->hist[k][b] += src->hist[k][b];
		dst->hist_sum_us[k] += src->hist_sum_us[k];
	}
	if (src->delta_us > dst->delta_us)
		dst->delta_us = src->delta_us;
}

void
stats_averages(const struct stats_pool *p, uint64_t avg[SHM_STAT_CNT])
{
	for (int i = 0; i < SHM_STAT_CNT; i++) {
		int per = stats_avg_per((enum shm_stat)i);

		if (per >= 0)
			avg[i] = p->delta[per] ? p->delta[i] / p->delta[per] : 0;
		else
			avg[i] = p->delta_us ? p->delta[i] * 1000000u / p->delta_us : 0;
	}
}

void
stats_snapshot(struct shm_pool_stats *st, uint64_t now_us)
{
	shm_row_write_begin(&st->snap_seq);
	st->prev_us = st->last_us;
	memcpy(st->prev, st->last, sizeof(st->prev));
	st->last_us = now_us;
	for (int i = 0; i < SHM_STAT_CNT; i++)
		st->last[i] = atomic_load_explicit(&st->cnt[i], memory_order_relaxed);
	shm_row_write_end(&st->snap_seq);
}

void
stats_holds_read(struct stats_holds *out, uint64_t now_us)
{
	const struct shm_ctl *ctl = shm_ctl();
	uint32_t n;

	out->is_maintenance = ctl->is_maintenance != 0;
	out->is_pause_all = ctl->is_pause_all != 0;
	n = ctl->paused_cnt;
	out->paused_cnt = n < SHM_CTL_PAUSED_MAX ? n : SHM_CTL_PAUSED_MAX;
	for (uint32_t i = 0; i < out->paused_cnt; i++) {
		memcpy(out->paused[i], ctl->paused[i], SHM_NAME_MAX);
		out->paused[i][SHM_NAME_MAX - 1] = '\0';
	}
	out->bans_cnt = 0;
	for (uint32_t i = 0; i < SHM_BANS_MAX; i++) {
		struct shm_ban *src = shm_ban(i), r;

		if (!src->database[0] || !shm_row_read(&src->seq, src, &r, sizeof(r)) ||
		    !r.database[0] || (r.expires_at_us && r.expires_at_us <= now_us))
			continue;
		memcpy(out->bans[out->bans_cnt].database, r.database, SHM_NAME_MAX);
		memcpy(out->bans[out->bans_cnt].user, r.user, SHM_NAME_MAX);
		out->bans[out->bans_cnt].database[SHM_NAME_MAX - 1] = '\0';
		out->bans[out->bans_cnt].user[SHM_NAME_MAX - 1] = '\0';
		out->bans_cnt++;
	}
}

bool
stats_holds_is_paused(const struct stats_holds *h, const char *db)
{
	if (h->is_maintenance || h->is_pause_all)
		return true;
	for (uint32_t i = 0; i < h->paused_cnt; i++)
		if (strcmp(h->paused[i], db) == 0)
			return true;
	return false;
}

bool
stats_holds_is_banned(const struct stats_holds *h, const char *db, const char *user)
{
	for (uint32_t i = 0; i < h->bans_cnt; i++) {
		if (strcmp(h->bans[i].database, db) != 0)
			continue;
		if (!h->bans[i].user[0] || (user && strcmp(h->bans[i].user, user) == 0))
			return true;
	}
	return false;
}

uint64_t
stats_rss_bytes(int pid)
{
	char path[64], buf[128];
	unsigned long long size = 0, resident = 0;

	snprintf(path, sizeof(path), "/proc/%d/statm", pid);
	if (proc_read_small(path, buf, sizeof(buf)) < 0)
		return 0;
	if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
		return 0;
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}
