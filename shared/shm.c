/*
 * shm.c: the shared memory segment (see shm.h).
 * Runs in: the supervisor creates and repairs; workers read and write their
 * own rows. Never touches sockets, never exits.
 */
#include "shared/shm.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "shared/secret.h"

struct shm_header *g_shm;
int g_shm_fd = -1;

_Static_assert(sizeof(struct shm_worker) % CACHELINE == 0, "shm_worker alignment");
_Static_assert(sizeof(struct shm_pool) % CACHELINE == 0, "shm_pool alignment");
_Static_assert(sizeof(struct shm_pool_stats) % CACHELINE == 0, "shm_pool_stats alignment");
_Static_assert(sizeof(struct shm_client) % CACHELINE == 0, "shm_client alignment");
_Static_assert(sizeof(struct shm_server) % CACHELINE == 0, "shm_server alignment");
_Static_assert(sizeof(struct shm_prepared) % CACHELINE == 0, "shm_prepared alignment");
_Static_assert(sizeof(struct shm_listener) % CACHELINE == 0, "shm_listener alignment");
_Static_assert(sizeof(struct shm_header) <= CACHELINE * 3, "shm_header size");

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

int
shm_create(const struct config *cfg, char *err, size_t err_len)
{
	uint64_t off, size;
	uint32_t servers = 0;
	int fd = -1;
	void *p = MAP_FAILED;

	for (size_t i = 0; i < cfg->pools_cnt; i++)
		servers += (uint32_t)cfg->pools[i].pool_size;
	if (servers == 0)
		servers = 1;
	off = shm_align(sizeof(struct shm_header));
	uint64_t off_workers = off;
	off += shm_align(sizeof(struct shm_worker) * (uint64_t)cfg->workers);
	uint64_t off_pools = off;
	off += shm_align(sizeof(struct shm_pool) * (uint64_t)(cfg->pools_cnt + 1));
	uint64_t off_pool_stats = off;
	off += shm_align(sizeof(struct shm_pool_stats) * (uint64_t)cfg->workers *
			 (uint64_t)(cfg->pools_cnt + 1));
	uint64_t off_clients = off;
	off += shm_align(sizeof(struct shm_client) * (uint64_t)cfg->workers *
			 (uint64_t)cfg->max_client_conn);
	uint64_t off_servers = off;
	off += shm_align(sizeof(struct shm_server) * (uint64_t)cfg->workers * servers);
	uint64_t off_prepared = off;
	off += shm_align(sizeof(struct shm_prepared) * (uint64_t)cfg->workers *
			 SHM_PREPARED_PER_WORKER);
	uint64_t off_listeners = off;
	off += shm_align(sizeof(struct shm_listener) * (uint64_t)cfg->workers *
			 SHM_LISTENERS_PER_WORKER);
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
	g_shm->size = size;
	g_shm->workers_cnt = (uint32_t)cfg->workers;
	g_shm->pools_cnt = (uint32_t)cfg->pools_cnt;
	g_shm->clients_per_worker = (uint32_t)cfg->max_client_conn;
	g_shm->servers_per_worker = servers;
	g_shm->off_workers = off_workers;
	g_shm->off_pools = off_pools;
	g_shm->off_pool_stats = off_pool_stats;
	g_shm->off_clients = off_clients;
	g_shm->off_servers = off_servers;
	g_shm->off_prepared = off_prepared;
	g_shm->prepared_per_worker = SHM_PREPARED_PER_WORKER;
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

void
shm_destroy(void)
{
	if (g_shm)
		munmap(g_shm, g_shm->size);
	if (g_shm_fd >= 0)
		close(g_shm_fd);
	g_shm = NULL;
	g_shm_fd = -1;
}

static void *
shm_at(uint64_t off)
{
	return (char *)g_shm + off;
}

struct shm_worker *
shm_worker(uint32_t slot)
{
	return (struct shm_worker *)shm_at(g_shm->off_workers) + slot;
}

struct shm_pool *
shm_pool(uint32_t pool_idx)
{
	return (struct shm_pool *)shm_at(g_shm->off_pools) + pool_idx;
}

struct shm_pool_stats *
shm_pool_stats(uint32_t slot, uint32_t pool_idx)
{
	return (struct shm_pool_stats *)shm_at(g_shm->off_pool_stats) +
	       (size_t)slot * (g_shm->pools_cnt + 1) + pool_idx;
}

struct shm_client *
shm_client(uint32_t slot, uint32_t idx)
{
	return (struct shm_client *)shm_at(g_shm->off_clients) +
	       (size_t)slot * g_shm->clients_per_worker + idx;
}

struct shm_server *
shm_server(uint32_t slot, uint32_t idx)
{
	return (struct shm_server *)shm_at(g_shm->off_servers) +
	       (size_t)slot * g_shm->servers_per_worker + idx;
}

struct shm_prepared *
shm_prepared(uint32_t slot, uint32_t idx)
{
	return (struct shm_prepared *)shm_at(g_shm->off_prepared) +
	       (size_t)slot * g_shm->prepared_per_worker + idx;
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

void
shm_recover_slot(uint32_t slot, pid_t pid)
{
	struct shm_worker *w = shm_worker(slot);

	for (uint32_t i = 0; i < g_shm->pools_cnt; i++) {
		struct shm_pool *p = shm_pool(i);
		int32_t owner = (int32_t)pid;

		/* a lock the dead worker held is released; then its counts are zeroed */
		atomic_compare_exchange_strong(&p->lock, &owner, 0);
		shm_pool_lock(p);
		p->open[slot] = 0;
		shm_pool_unlock(p);
		atomic_store(&p->waiting[slot], 0);
		memset(shm_pool_stats(slot, i), 0, sizeof(struct shm_pool_stats));
	}
	memset(shm_client(slot, 0), 0, sizeof(struct shm_client) * g_shm->clients_per_worker);
	memset(shm_server(slot, 0), 0, sizeof(struct shm_server) * g_shm->servers_per_worker);
	memset(shm_prepared(slot, 0), 0, sizeof(struct shm_prepared) * g_shm->prepared_per_worker);
	memset(shm_listener(slot, 0), 0, sizeof(struct shm_listener) * g_shm->listeners_per_worker);
	atomic_store(&w->pid, 0);
	atomic_store(&w->clients_cnt, 0);
	atomic_fetch_add(&w->restarts, 1);
}
