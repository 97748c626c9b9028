/*
 * shm.c: the shared memory segment (see shm.h).
 * Runs in: the supervisor creates and repairs; workers read and write their
 * own rows. Never touches sockets, never exits.
 */
#include "shared/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shared/secret.h"

struct shm_header *g_shm;
int g_shm_fd = -1;
const uint32_t *g_shm_own_map;

_Static_assert(sizeof(struct shm_worker) % CACHELINE == 0, "shm_worker alignment");
_Static_assert(sizeof(struct shm_pool) % CACHELINE == 0, "shm_pool alignment");
_Static_assert(sizeof(struct shm_pool_stats) % CACHELINE == 0, "shm_pool_stats alignment");
_Static_assert(sizeof(struct shm_client) % CACHELINE == 0, "shm_client alignment");
_Static_assert(sizeof(struct shm_server) % CACHELINE == 0, "shm_server alignment");
_Static_assert(sizeof(struct shm_prepared) % CACHELINE == 0, "shm_prepared alignment");
_Static_assert(sizeof(struct shm_ban) % CACHELINE == 0, "shm_ban alignment");
_Static_assert(sizeof(struct shm_listener) % CACHELINE == 0, "shm_listener alignment");
_Static_assert(sizeof(struct shm_header) <= CACHELINE * 4, "shm_header size");
_Static_assert(((SHM_SLOTS_MAX - 1ull) << 24 | 0xffffffull) <= 0x7fffffffull,
	       "cancel pids (slot << 24 | row + 1) stay positive");
_Static_assert(sizeof(struct shm_pool_ident) % CACHELINE == 0, "shm_pool_ident alignment");
_Static_assert(sizeof(struct shm_ban) % CACHELINE == 0, "shm_ban alignment");
_Static_assert(sizeof(struct shm_ctl) % CACHELINE == 0, "shm_ctl alignment");

static uint64_t
shm_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t
shm_align(uint64_t n)
{
	return (n + CACHELINE - 1) & ~(uint64_t)(CACHELINE - 1);
}

uint64_t
shm_layout_sig(void)
{
	static const uint64_t parts[] = {
		SHM_VERSION,
		CACHELINE,
		SHM_SLOTS_MAX,
		sizeof(struct shm_header),
		sizeof(struct shm_worker),
		sizeof(struct shm_pool),
		sizeof(struct shm_pool_stats),
		sizeof(struct shm_client),
		sizeof(struct shm_server),
		sizeof(struct shm_prepared),
		sizeof(struct shm_listener),
		sizeof(struct shm_pool_ident),
		sizeof(struct shm_ban),
		sizeof(struct shm_ctl),
		sizeof(struct shm_cfg_blob),
		SHM_STAT_CNT,
		SHM_HIST_CNT,
		SHM_CFG_BLOB_MAX,
		SHM_CTL_CMDS,
		SHM_CTL_OVERRIDES,
		SHM_BANS_MAX,
		SHM_PREPARED_PER_WORKER,
		SHM_LISTENERS_PER_WORKER,
	};
	uint64_t h = 1469598103934665603ull; /* FNV-1a over the values */

	for (size_t i = 0; i < ARRAY_SIZE(parts); i++)
		h = (h ^ parts[i]) * 1099511628211ull;
	return h;
}

int
shm_create(const struct config *cfg, char *err, size_t err_len)
{
	uint64_t off, size, slots = 2 * (uint64_t)cfg->workers;
	uint32_t servers = 0, cap;
	int fd = -1;
	void *p = MAP_FAILED;

	/*
	 * Room for pools added by reloads (see shm_pool_ident) and for the
	 * servers they may open: reserved, not allocated, see SHM_POOLS_RESERVE.
	 */
	cap = (uint32_t)cfg->pools_cnt * 2;
	if (cap < SHM_POOLS_RESERVE)
		cap = SHM_POOLS_RESERVE;
	for (size_t i = 0; i < cfg->pools_cnt; i++)
		servers += (uint32_t)cfg->pools[i].pool_size;
	servers *= 2;
	if (servers < SHM_SERVERS_RESERVE)
		servers = SHM_SERVERS_RESERVE;
	off = shm_align(sizeof(struct shm_header));
	uint64_t off_workers = off;
	off += shm_align(sizeof(struct shm_worker) * slots);
	uint64_t off_pools = off;
	off += shm_align(sizeof(struct shm_pool) * (uint64_t)cap);
	uint64_t off_pool_stats = off;
	off += shm_align(sizeof(struct shm_pool_stats) * slots * (uint64_t)cap);
	uint64_t off_clients = off;
	off += shm_align(sizeof(struct shm_client) * slots * (uint64_t)cfg->max_client_conn);
	uint64_t off_servers = off;
	off += shm_align(sizeof(struct shm_server) * slots * servers);
	uint64_t off_prepared = off;
	off += shm_align(sizeof(struct shm_prepared) * slots * SHM_PREPARED_PER_WORKER);
	uint64_t off_pool_idents = off;
	off += shm_align(sizeof(struct shm_pool_ident) * (uint64_t)cap);
	uint64_t off_bans = off;
	off += shm_align(sizeof(struct shm_ban) * SHM_BANS_MAX);
	uint64_t off_ctl = off;
	off += shm_align(sizeof(struct shm_ctl));
	uint64_t off_cfg_blob = off;
	off += shm_align(sizeof(struct shm_cfg_blob) + SHM_CFG_BLOB_MAX);
	uint64_t off_listeners = off;
	off += shm_align(sizeof(struct shm_listener) * slots * SHM_LISTENERS_PER_WORKER);
	size = off;

	fd = memfd_create("pgdog-shm", MFD_CLOEXEC);
	if (fd < 0)
		goto fail;
	if (ftruncate(fd, (off_t)size) < 0)
		goto fail;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		goto fail;
	g_shm = p;
	g_shm_fd = fd;
	g_shm->magic = SHM_MAGIC;
	g_shm->version = SHM_VERSION;
	g_shm->layout_sig = shm_layout_sig();
	g_shm->size = size;
	g_shm->workers_cnt = (uint32_t)slots;
	g_shm->workers_per_gen = (uint32_t)cfg->workers;
	g_shm->pools_cnt = (uint32_t)cfg->pools_cnt;
	g_shm->pools_cap = cap;
	g_shm->clients_per_worker = (uint32_t)cfg->max_client_conn;
	g_shm->servers_per_worker = servers;
	g_shm->off_workers = off_workers;
	g_shm->off_pools = off_pools;
	g_shm->off_pool_stats = off_pool_stats;
	g_shm->off_clients = off_clients;
	g_shm->off_servers = off_servers;
	g_shm->off_prepared = off_prepared;
	g_shm->prepared_per_worker = SHM_PREPARED_PER_WORKER;
	g_shm->off_pool_idents = off_pool_idents;
	g_shm->off_bans = off_bans;
	g_shm->off_ctl = off_ctl;
	g_shm->off_cfg_blob = off_cfg_blob;
	atomic_store(&shm_ctl()->sv_pid, (int32_t)getpid());
	for (int i = 0; i < SHM_CTL_OVERRIDES; i++)
		shm_ctl()->overrides[i] = SHM_CTL_UNSET;
	g_shm->off_listeners = off_listeners;
	g_shm->listeners_per_worker = SHM_LISTENERS_PER_WORKER;
	g_shm->started_us = shm_now_us();
	secret_random(g_shm->mock_key, sizeof(g_shm->mock_key));
	return 0;
fail:
	snprintf(err, err_len, "shared memory segment of %llu bytes: %s", (unsigned long long)size,
		 strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Is pid gone for good (not even a zombie waiting for its parent)? */
static bool
shm_pid_is_gone(int32_t pid)
{
	return pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

uint32_t
shm_slot_base(void)
{
	return atomic_load(&g_shm->bank) * g_shm->workers_per_gen;
}

uint32_t
shm_slot_twin(uint32_t slot)
{
	uint32_t w = g_shm->workers_per_gen;

	return slot < w ? slot + w : slot - w;
}

bool
shm_other_bank_busy(pid_t *pid)
{
	uint32_t w = g_shm->workers_per_gen, base = (1 - atomic_load(&g_shm->bank)) * w;

	for (uint32_t i = 0; i < w; i++) {
		struct shm_worker *sw = shm_worker(base + i);
		int32_t p = atomic_load(&sw->pid);

		if ((p > 0 && !shm_pid_is_gone(p)) || atomic_load(&sw->is_fold_pending)) {
			*pid = p;
			return true;
		}
	}
	return false;
}

int
shm_adopt(int fd, const struct config *cfg, char *err, size_t err_len)
{
	struct shm_header *h;
	struct stat st;
	void *p;
	uint32_t w, base;

	if (fstat(fd, &st) < 0) {
		snprintf(err, err_len, "fstat of the inherited segment: %s", strerror(errno));
		return -1;
	}
	if ((size_t)st.st_size < sizeof(struct shm_header)) {
		snprintf(err, err_len, "the inherited segment has %lld bytes, not a header",
			 (long long)st.st_size);
		return -1;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, err_len, "mmap of the inherited segment: %s", strerror(errno));
		return -1;
	}
	h = p;
	if (h->magic != SHM_MAGIC || h->version != SHM_VERSION ||
	    h->layout_sig != shm_layout_sig() || h->size != (uint64_t)st.st_size) {
		snprintf(
			err, err_len,
			"the running pgdog's segment has another layout (version %u, ours %u; signature %s)",
			h->magic == SHM_MAGIC ? h->version : 0, SHM_VERSION,
			h->magic == SHM_MAGIC && h->layout_sig == shm_layout_sig() ? "equal"
										   : "differs");
		goto fail;
	}
	if (h->workers_per_gen != (uint32_t)cfg->workers ||
	    h->clients_per_worker < (uint32_t)cfg->max_client_conn) {
		snprintf(
			err, err_len,
			"the running pgdog's segment has room for %u workers and %u clients each, the configuration needs %d and %d",
			h->workers_per_gen, h->clients_per_worker, cfg->workers,
			cfg->max_client_conn);
		goto fail;
	}
	g_shm = h;
	/* the bank we take: its older workers must be gone and their counters folded */
	w = h->workers_per_gen;
	base = (1 - atomic_load(&h->bank)) * w;
	for (uint32_t i = 0; i < w; i++) {
		int32_t pid = atomic_load(&shm_worker(base + i)->pid);

		if (pid > 0 && shm_pid_is_gone(pid))
			shm_retire_slot(base + i, (pid_t)pid);
	}
	for (int tries = 0;; tries++) {
		pid_t busy = 0;
		struct timespec ts = { 0, 20 * 1000000L };

		if (!shm_other_bank_busy(&busy))
			break;
		if (tries == 50) {
			snprintf(
				err, err_len,
				"a worker of an older generation (pid %d) is still running: the previous upgrade has not finished",
				(int)busy);
			g_shm = NULL;
			goto fail;
		}
		nanosleep(&ts, NULL);
	}
	atomic_store(&h->bank, 1 - atomic_load(&h->bank));
	atomic_fetch_add(&h->handovers, 1);
	g_shm_fd = fd;
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	return 0;
fail:
	munmap(p, (size_t)st.st_size);
	return -1;
}

void
shm_destroy(void)
{
	if (g_shm)
		munmap(g_shm, g_shm->size);
	if (g_shm_fd >= 0)
		close(g_shm_fd);
	g_shm = NULL;
	g_shm_fd = -1;
	free((void *)g_shm_own_map);
	g_shm_own_map = NULL;
}

struct shm_listener *
shm_listener(uint32_t slot, uint32_t idx)
{
	return (struct shm_listener *)shm_at(g_shm->off_listeners) +
	       (size_t)slot * g_shm->listeners_per_worker + idx;
}

bool
shm_row_read(const _Atomic uint32_t *seq, const void *row, void *copy, size_t size)
{
	for (int i = 0; i < 100; i++) {
		uint32_t a = atomic_load_explicit(seq, memory_order_acquire);

		if (a & 1) {
			sched_yield();
			continue;
		}
		memcpy(copy, row, size);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(seq, memory_order_relaxed) == a)
			return true;
	}
	return false;
}

/* The pool lock: a spin lock whose word holds the owner's pid. */
static void
shm_pool_lock(struct shm_pool *p)
{
	int32_t me = (int32_t)getpid();

	for (;;) {
		int32_t expected = 0;

		if (atomic_compare_exchange_weak_explicit(
			    &p->lock, &expected, me, memory_order_acquire, memory_order_relaxed))
			return;
		sched_yield();
	}
}

static void
shm_pool_unlock(struct shm_pool *p)
{
	atomic_store_explicit(&p->lock, 0, memory_order_release);
}

static uint32_t
shm_pool_sum(const struct shm_pool *p)
{
	uint32_t n = 0;

	for (uint32_t w = 0; w < g_shm->workers_cnt; w++)
		n += p->open[w];
	return n;
}

bool
shm_pool_reserve(uint32_t pool_idx, uint32_t slot, uint32_t cap)
{
	struct shm_pool *p = shm_pool(pool_idx);
	bool ok = false;

	/* full (the common answer while clients queue): no lock, no getpid() */
	if (shm_pool_open_peek(pool_idx) >= cap)
		return false;
	shm_pool_lock(p);
	if (shm_pool_sum(p) < cap) {
		p->open[slot]++;
		ok = true;
	}
	shm_pool_unlock(p);
	return ok;
}

void
shm_pool_release(uint32_t pool_idx, uint32_t slot)
{
	struct shm_pool *p = shm_pool(pool_idx);

	shm_pool_lock(p);
	if (p->open[slot] > 0)
		p->open[slot]--;
	shm_pool_unlock(p);
}

uint32_t
shm_pool_open_total(uint32_t pool_idx)
{
	struct shm_pool *p = shm_pool(pool_idx);
	uint32_t n;

	shm_pool_lock(p);
	n = shm_pool_sum(p);
	shm_pool_unlock(p);
	return n;
}

bool
shm_pool_params_put(uint32_t pool_idx, const char *pairs, size_t len)
{
	struct shm_pool *p = shm_pool(pool_idx);
	uint32_t none = SHM_PARAMS_NONE;

	if (len > sizeof(p->params) ||
	    !atomic_compare_exchange_strong(&p->params_state, &none, SHM_PARAMS_WRITING))
		return atomic_load_explicit(&p->params_state, memory_order_acquire) ==
		       SHM_PARAMS_SET;
	memcpy(p->params, pairs, len);
	p->params_len = (uint32_t)len;
	atomic_store_explicit(&p->params_state, SHM_PARAMS_SET, memory_order_release);
	return true;
}

const char *
shm_pool_params_get(uint32_t pool_idx, size_t *len)
{
	struct shm_pool *p = shm_pool(pool_idx);

	if (atomic_load_explicit(&p->params_state, memory_order_acquire) != SHM_PARAMS_SET)
		return NULL;
	*len = p->params_len;
	return p->params;
}

uint32_t
shm_pool_open_peek(uint32_t pool_idx)
{
	struct shm_pool *p = shm_pool(pool_idx);
	uint32_t n = 0;

	for (uint32_t w = 0; w < g_shm->workers_cnt; w++)
		n += __atomic_load_n(&p->open[w], __ATOMIC_RELAXED);
	return n;
}

uint32_t
shm_pool_waiting_elsewhere(uint32_t pool_idx, uint32_t slot)
{
	struct shm_pool *p = shm_pool(pool_idx);
	uint32_t n = 0;

	for (uint32_t w = 0; w < g_shm->workers_cnt; w++)
		if (w != slot)
			n += atomic_load_explicit(&p->waiting[w], memory_order_relaxed);
	return n;
}

uint32_t
shm_clients_total(void)
{
	uint32_t n = 0;

	for (uint32_t w = 0; w < g_shm->workers_cnt; w++)
		n += atomic_load_explicit(&shm_worker(w)->clients_cnt, memory_order_relaxed);
	return n;
}

/* Zero the gauges of a pool row (what a dead worker had now), keep its counters. */
static void
shm_pool_stats_zero_gauges(struct shm_pool_stats *st)
{
	atomic_store(&st->cl_active, 0);
	atomic_store(&st->cl_waiting, 0);
	atomic_store(&st->sv_active, 0);
	atomic_store(&st->sv_idle, 0);
	atomic_store(&st->sv_login, 0);
	atomic_store(&st->maxwait_us, 0);
}

/*
 * Zero n bytes of the segment at p. Whole pages are given back to the
 * kernel (MADV_REMOVE: they read as zeros and cost no memory until used
 * again), so clearing a dead worker's tables does not make the reserve
 * resident; the partial pages at the ends are cleared by hand.
 */
static void
shm_zero(void *p, size_t n)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)p, b = a + n;
	uintptr_t lo = (a + page - 1) & ~(page - 1), hi = b & ~(page - 1);

	if (hi <= lo || madvise((void *)lo, hi - lo, MADV_REMOVE) < 0) {
		memset(p, 0, n);
		return;
	}
	memset(p, 0, lo - a);
	memset((void *)hi, 0, b - hi);
}

/* Release what slot (pid) held; keep_counters: leave its pool counters for shm_slot_fold. */
static void
shm_slot_clear(uint32_t slot, pid_t pid, bool keep_counters)
{
	struct shm_worker *w = shm_worker(slot);
	/* indexes at and above the high-water mark were never used since their reset */
	uint32_t pools = g_shm->pools_cnt < g_shm->pools_cap ? g_shm->pools_cnt : g_shm->pools_cap;
	int32_t ctl_owner = (int32_t)pid;

	/* a control lock the dead worker held is released; it references no pool any more */
	atomic_compare_exchange_strong(&shm_ctl()->lock, &ctl_owner, 0);
	for (uint32_t i = 0; i < pools; i++)
		atomic_store(&shm_pool_ident(i)->refs[slot], 0);
	atomic_store(&shm_ctl()->acked[slot], 0);
	for (uint32_t i = 0; i < pools; i++) {
		struct shm_pool *p = shm_pool(i);
		int32_t owner = (int32_t)pid;

		/* a lock the dead worker held is released; then its counts are zeroed */
		atomic_compare_exchange_strong(&p->lock, &owner, 0);
		shm_pool_lock(p);
		p->open[slot] = 0;
		shm_pool_unlock(p);
		atomic_store(&p->waiting[slot], 0);
		atomic_store(&p->wait_since_us[slot], 0);
		if (keep_counters)
			shm_pool_stats_zero_gauges(shm_pool_stats(slot, i));
		else
			memset(shm_pool_stats(slot, i), 0, sizeof(struct shm_pool_stats));
	}
	shm_zero(shm_client(slot, 0), sizeof(struct shm_client) * g_shm->clients_per_worker);
	shm_zero(shm_server(slot, 0), sizeof(struct shm_server) * g_shm->servers_per_worker);
	shm_zero(shm_prepared(slot, 0), sizeof(struct shm_prepared) * g_shm->prepared_per_worker);
	shm_zero(shm_listener(slot, 0), sizeof(struct shm_listener) * g_shm->listeners_per_worker);
	atomic_store(&w->clients_cnt, 0);
	if (keep_counters)
		atomic_store(&w->is_fold_pending, 1);
	/* last: a reader that sees pid 0 sees the rest done */
	atomic_store(&w->pid, 0);
	/* restarts: counted by the supervisor when it starts the replacement */
}

void
shm_recover_slot(uint32_t slot, pid_t pid)
{
	shm_slot_clear(slot, pid, false);
}

void
shm_retire_slot(uint32_t slot, pid_t pid)
{
	shm_slot_clear(slot, pid, true);
}

void
shm_retire_orphans(void)
{
	uint32_t w = g_shm->workers_per_gen, base = (1 - atomic_load(&g_shm->bank)) * w;

	for (uint32_t i = 0; i < w; i++) {
		int32_t pid = atomic_load(&shm_worker(base + i)->pid);

		if (shm_pid_is_gone(pid))
			shm_retire_slot(base + i, (pid_t)pid);
	}
}

/* Add a counter of a dead worker's row to ours (we are its only writer). */
static void
shm_fold_add(_Atomic uint64_t *to, _Atomic uint64_t *from)
{
	uint64_t v = atomic_load_explicit(from, memory_order_relaxed);

	if (v)
		shm_stat_add(to, v);
	atomic_store_explicit(from, 0, memory_order_relaxed);
}

void
shm_slot_fold(uint32_t slot)
{
	uint32_t twin = shm_slot_twin(slot);
	struct shm_worker *tw = shm_worker(twin), *me = shm_worker(slot);
	uint32_t pools = g_shm->pools_cnt < g_shm->pools_cap ? g_shm->pools_cnt : g_shm->pools_cap;

	if (!atomic_load_explicit(&tw->is_fold_pending, memory_order_acquire) ||
	    atomic_load(&tw->pid) != 0)
		return;
	for (uint32_t i = 0; i < pools; i++) {
		struct shm_pool_stats *a = shm_pool_stats(twin, i), *b = shm_pool_stats(slot, i);
		uint64_t add[SHM_STAT_CNT];

		for (int k = 0; k < SHM_STAT_CNT; k++)
			add[k] = atomic_load_explicit(&a->cnt[k], memory_order_relaxed);
		/*
		 * The averages are differences between two copies of cnt[]: raise
		 * the copies by the same amounts, so the fold is no burst of traffic.
		 */
		shm_row_write_begin(&b->snap_seq);
		for (int k = 0; k < SHM_STAT_CNT; k++) {
			if (b->last_us)
				b->last[k] += add[k];
			if (b->prev_us)
				b->prev[k] += add[k];
		}
		shm_row_write_end(&b->snap_seq);
		for (int k = 0; k < SHM_STAT_CNT; k++)
			shm_fold_add(&b->cnt[k], &a->cnt[k]);
		for (int h = 0; h < SHM_HIST_KINDS; h++) {
			for (int k = 0; k < SHM_HIST_CNT; k++)
				shm_fold_add(&b->hist[h][k], &a->hist[h][k]);
			shm_fold_add(&b->hist_sum_us[h], &a->hist_sum_us[h]);
		}
		shm_fold_add(&b->checkout_timeouts, &a->checkout_timeouts);
		shm_fold_add(&b->pins, &a->pins);
		memset(a, 0, sizeof(*a));
	}
	atomic_fetch_add(&me->accepted_total, atomic_exchange(&tw->accepted_total, 0));
	atomic_fetch_add(&me->restarts, atomic_exchange(&tw->restarts, 0));
	atomic_store_explicit(&tw->is_fold_pending, 0, memory_order_release);
}

int
shm_own_map_set(const uint32_t *map, size_t cnt)
{
	uint32_t *m = malloc(sizeof(*m) * (cnt ? cnt : 1));

	if (!m)
		return -1;
	memcpy(m, map, sizeof(*m) * cnt);
	free((void *)g_shm_own_map);
	g_shm_own_map = m;
	return 0;
}

struct shm_pool_ident *
shm_pool_ident(uint32_t pool_idx)
{
	return (struct shm_pool_ident *)shm_at(g_shm->off_pool_idents) + pool_idx;
}

struct shm_ban *
shm_ban(uint32_t idx)
{
	return (struct shm_ban *)shm_at(g_shm->off_bans) + idx;
}

struct shm_ctl *
shm_ctl(void)
{
	return shm_at(g_shm->off_ctl);
}

struct shm_cfg_blob *
shm_cfg_blob(void)
{
	return shm_at(g_shm->off_cfg_blob);
}

/* Gone, or a zombie its parent has not reaped yet (the supervisor, spinning here). */
static bool
shm_pid_is_dead(pid_t pid)
{
	char path[64], buf[256];
	const char *p;
	FILE *f;
	size_t n;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] == 'Z';
}

void
shm_ctl_lock(void)
{
	struct shm_ctl *ctl = shm_ctl();
	int32_t me = (int32_t)getpid();

	for (unsigned spins = 1;; spins++) {
		int32_t expected = 0;

		if (atomic_compare_exchange_weak_explicit(
			    &ctl->lock, &expected, me, memory_order_acquire, memory_order_relaxed))
			return;
		/*
		 * A holder that died mid-copy would wedge everyone (the supervisor
		 * too, before it could reap and repair): take over a dead pid's lock.
		 */
		if (spins % 4096 == 0) {
			int32_t owner = atomic_load_explicit(&ctl->lock, memory_order_relaxed);

			if (owner > 0 && shm_pid_is_dead((pid_t)owner))
				atomic_compare_exchange_strong(&ctl->lock, &owner, 0);
		}
		sched_yield();
	}
}

void
shm_ctl_unlock(void)
{
	atomic_store_explicit(&shm_ctl()->lock, 0, memory_order_release);
}

static void
shm_pool_ident_write(uint32_t idx, const struct config *cfg, size_t i, uint64_t gen)
{
	struct shm_pool_ident *id = shm_pool_ident(idx);
	const struct config_pool *cp = &cfg->pools[i];
	const struct config_user *u = &cfg->users[cp->user_idx];
	const struct config_database *db = &cfg->databases[cp->db_idx];

	shm_row_write_begin(&id->seq);
	snprintf(id->user, sizeof(id->user), "%s", u->name);
	snprintf(id->database, sizeof(id->database), "%s", db->name);
	snprintf(id->user_label, sizeof(id->user_label), "%s", u->label ? u->label : u->name);
	snprintf(id->db_label, sizeof(id->db_label), "%s", db->label ? db->label : db->name);
	snprintf(id->host, sizeof(id->host), "%s", db->host ? db->host : "");
	id->port = db->port;
	id->shard = db->shard;
	id->role = (int32_t)db->role;
	id->pool_size = cp->pool_size;
	id->pooler_mode = (int32_t)cp->pooler_mode;
	id->cfg_gen = gen;
	atomic_store_explicit(&id->state, SHM_POOL_LIVE, memory_order_relaxed);
	shm_row_write_end(&id->seq);
}

void
shm_pools_init(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->pools_cnt && i < g_shm->pools_cap; i++)
		shm_pool_ident_write((uint32_t)i, cfg, i, 0);
	g_shm->pools_cnt = (uint32_t)cfg->pools_cnt;
}

static bool
shm_pool_ident_is(const struct shm_pool_ident *id, const struct config *cfg, size_t i)
{
	const struct config_pool *cp = &cfg->pools[i];
	const struct config_user *u = &cfg->users[cp->user_idx];
	const struct config_database *db = &cfg->databases[cp->db_idx];

	return strncmp(id->user_label, u->label ? u->label : u->name, SHM_NAME_MAX - 1) == 0 &&
	       strncmp(id->db_label, db->label ? db->label : db->name, SHM_NAME_MAX - 1) == 0;
}

/* No worker has the pool and it holds no server: its index may serve another pool. */
static bool
shm_pool_is_reusable(uint32_t idx)
{
	struct shm_pool_ident *id = shm_pool_ident(idx);

	if (atomic_load(&id->state) == SHM_POOL_LIVE)
		return false;
	for (uint32_t w = 0; w < SHM_SLOTS_MAX; w++)
		if (atomic_load(&id->refs[w]))
			return false;
	return shm_pool_open_total(idx) == 0;
}

int
shm_pools_assign(const struct config *next, uint64_t gen, uint32_t *map, char *err, size_t err_len)
{
	uint32_t cap = g_shm->pools_cap, used = g_shm->pools_cnt, hw = 0, lim;
	uint64_t servers = 0;
	size_t need = 0;
	uint8_t *taken;

	for (size_t i = 0; i < next->pools_cnt; i++)
		servers += (uint64_t)next->pools[i].pool_size;
	if (servers > g_shm->servers_per_worker) {
		snprintf(
			err, err_len,
			"the configuration's pool sizes add up to %llu server connections; the shared memory segment has room for %u per worker (sized at start as max(2 x the start-up pool sizes, %d)); restart pgdog to grow it",
			(unsigned long long)servers, g_shm->servers_per_worker,
			SHM_SERVERS_RESERVE);
		return -1;
	}
	if (next->pools_cnt > cap) {
		snprintf(
			err, err_len,
			"the configuration has %zu pools; the shared memory segment has room for %u (sized at start as max(2 x start-up pools, %d)); restart pgdog to grow it",
			next->pools_cnt, cap, SHM_POOLS_RESERVE);
		return -1;
	}
	taken = calloc(cap, 1);
	if (!taken) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	/* same labels (live, or removed and still draining): same index */
	for (size_t i = 0; i < next->pools_cnt; i++) {
		map[i] = UINT32_MAX;
		for (uint32_t k = 0; k < used; k++) {
			struct shm_pool_ident *id = shm_pool_ident(k);

			if (!taken[k] && atomic_load(&id->state) != SHM_POOL_FREE &&
			    shm_pool_ident_is(id, next, i)) {
				map[i] = k;
				taken[k] = 1;
				break;
			}
		}
		if (map[i] == UINT32_MAX)
			need++;
	}
	/* new pools: indexes nobody references */
	for (size_t i = 0, k = 0; i < next->pools_cnt && need; i++) {
		if (map[i] != UINT32_MAX)
			continue;
		while (k < cap && (taken[k] || !shm_pool_is_reusable((uint32_t)k)))
			k++;
		if (k == cap) {
			snprintf(
				err, err_len,
				"the configuration's pools and those still draining after earlier reloads need more than the %u pool slots of the shared memory segment (sized at start as max(2 x start-up pools, %d)); retry once they drained, or restart pgdog to grow it",
				cap, SHM_POOLS_RESERVE);
			free(taken);
			return -1;
		}
		map[i] = (uint32_t)k;
		taken[k] = 1;
		/* another pool's login parameters are not this one's */
		shm_pool(k)->params_len = 0;
		atomic_store_explicit(&shm_pool(k)->params_state, SHM_PARAMS_NONE,
				      memory_order_release);
	}
	/* indexes at and above lim were never used: do not touch their pages */
	lim = used;
	for (size_t i = 0; i < next->pools_cnt; i++)
		if (map[i] + 1 > lim)
			lim = map[i] + 1;
	for (uint32_t k = 0; k < lim; k++) {
		struct shm_pool_ident *id = shm_pool_ident(k);

		if (!taken[k] && atomic_load(&id->state) == SHM_POOL_LIVE) {
			shm_row_write_begin(&id->seq);
			atomic_store(&id->state, SHM_POOL_REMOVED);
			shm_row_write_end(&id->seq);
		}
		if (!taken[k] && atomic_load(&id->state) == SHM_POOL_REMOVED &&
		    shm_pool_is_reusable(k))
			atomic_store(&id->state, SHM_POOL_FREE);
	}
	for (size_t i = 0; i < next->pools_cnt; i++)
		shm_pool_ident_write(map[i], next, i, gen);
	for (uint32_t k = 0; k < lim; k++)
		if (atomic_load(&shm_pool_ident(k)->state) != SHM_POOL_FREE)
			hw = k + 1;
	g_shm->pools_cnt = hw;
	free(taken);
	return 0;
}

void
shm_ctl_wake_workers(pid_t skip_pid)
{
	for (uint32_t w = 0; w < g_shm->workers_cnt; w++) {
		pid_t pid = (pid_t)atomic_load(&shm_worker(w)->pid);

		if (pid > 0 && pid != skip_pid)
			(void)kill(pid, SIGHUP);
	}
}
