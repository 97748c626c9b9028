/*
 * check_shm.c: unit tests for shared/shm.c: layout, the global pool cap
 * across worker slots, recovery of a dead worker's slot, row snapshots.
 * Forked workers stand in for worker processes; no network.
 */
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared/config.h"
#include "shared/shm.h"

static const char *const shm_ini = "[general]\n"
				   "workers = 3\n"
				   "max_client_conn = 50\n"
				   "[databases.app]\n"
				   "host = 127.0.0.1\n";
static const char *const shm_users = "[users.a]\n"
				     "database = app\n"
				     "password = x\n"
				     "pool_size = 4\n";

static struct config *shm_cfg;

static void
shm_setup(void)
{
	char err[512];

	shm_cfg = config_new();
	ck_assert_ptr_nonnull(shm_cfg);
	ck_assert_msg(config_load_strings(shm_cfg, "pgdog.ini", shm_ini, "users.ini", shm_users,
					  err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_int_eq(shm_create(shm_cfg, err, sizeof(err)), 0);
}

static void
shm_teardown(void)
{
	shm_destroy();
	config_free(shm_cfg);
}

START_TEST(test_shm_layout)
{
	ck_assert_uint_eq(g_shm->magic, SHM_MAGIC);
	ck_assert_uint_eq(g_shm->version, SHM_VERSION);
	/* two banks of 3 worker slots: the serving generation's and an upgrade's */
	ck_assert_uint_eq(g_shm->workers_cnt, 6);
	ck_assert_uint_eq(g_shm->workers_per_gen, 3);
	ck_assert_uint_eq(shm_slot_base(), 0);
	ck_assert_uint_eq(shm_slot_twin(1), 4);
	ck_assert_uint_eq(shm_slot_twin(4), 1);
	ck_assert_uint_eq(g_shm->layout_sig, shm_layout_sig());
	ck_assert_uint_eq(g_shm->pools_cnt, 1);
	ck_assert_uint_eq(g_shm->clients_per_worker, 50);
	/* room for reloads: reserved pool indexes and server rows */
	ck_assert_uint_eq(g_shm->pools_cap, SHM_POOLS_RESERVE);
	ck_assert_uint_eq(g_shm->servers_per_worker, SHM_SERVERS_RESERVE);
	/* every region lies inside the segment and is cache-line aligned */
	ck_assert_uint_eq(g_shm->off_servers % CACHELINE, 0);
	ck_assert_uint_le(g_shm->off_servers + 6 * SHM_SERVERS_RESERVE * sizeof(struct shm_server),
			  g_shm->size);
	ck_assert_uint_le(g_shm->off_cfg_blob + sizeof(struct shm_cfg_blob) + SHM_CFG_BLOB_MAX,
			  g_shm->size);
	ck_assert_ptr_eq(shm_client(1, 0), shm_client(0, 49) + 1);
}
END_TEST

/* pool_size is a cap over all slots together */
START_TEST(test_shm_pool_cap_global)
{
	ck_assert(shm_pool_reserve(0, 0, 4));
	ck_assert(shm_pool_reserve(0, 1, 4));
	ck_assert(shm_pool_reserve(0, 2, 4));
	ck_assert(shm_pool_reserve(0, 1, 4));
	ck_assert(!shm_pool_reserve(0, 0, 4));
	ck_assert(!shm_pool_reserve(0, 2, 4));
	ck_assert_uint_eq(shm_pool_open_total(0), 4);
	shm_pool_release(0, 1);
	ck_assert(shm_pool_reserve(0, 2, 4));
	ck_assert(!shm_pool_reserve(0, 0, 4));
}
END_TEST

/* reservations from concurrently running processes never pass the cap */
START_TEST(test_shm_pool_cap_processes)
{
	pid_t pids[3];
	int got = 0;

	for (int w = 0; w < 3; w++) {
		pids[w] = fork();
		ck_assert_int_ge(pids[w], 0);
		if (pids[w] == 0) {
			int n = 0;

			for (int i = 0; i < 100000; i++) {
				if (shm_pool_reserve(0, (uint32_t)w, 4)) {
					n++;
					if (i % 3 == 0) {
						shm_pool_release(0, (uint32_t)w);
						n--;
					}
				}
			}
			_exit(n);
		}
	}
	for (int w = 0; w < 3; w++) {
		int st;

		ck_assert_int_eq(waitpid(pids[w], &st, 0), pids[w]);
		ck_assert(WIFEXITED(st));
		got += WEXITSTATUS(st);
	}
	ck_assert_int_eq(got, 4);
	ck_assert_uint_eq(shm_pool_open_total(0), 4);
}
END_TEST

/* a worker killed while holding the pool lock does not wedge the others */
START_TEST(test_shm_recover_dead_lock_holder)
{
	pid_t pid = fork();
	int st;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct shm_pool *p = shm_pool(0);

		p->open[1] = 2;
		atomic_store(&p->lock, (int32_t)getpid());
		pause(); /* killed while "holding" the lock */
		_exit(0);
	}
	while (atomic_load(&shm_pool(0)->lock) != pid)
		usleep(1000);
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	shm_recover_slot(1, pid);
	ck_assert_int_eq(atomic_load(&shm_pool(0)->lock), 0);
	ck_assert_uint_eq(shm_pool_open_total(0), 0);
	ck_assert(shm_pool_reserve(0, 0, 4));
	/* restarts are counted once, by the supervisor when it starts the replacement */
	ck_assert_uint_eq(atomic_load(&shm_worker(1)->restarts), 0);
}
END_TEST

/* recovery clears only the dead slot's rows and counts */
START_TEST(test_shm_recover_slot_rows)
{
	shm_client(0, 3)->id = 7;
	atomic_store(&shm_client(0, 3)->cancel_key, 99);
	shm_client(2, 5)->id = 8;
	atomic_store(&shm_client(2, 5)->cancel_key, 42);
	atomic_store(&shm_worker(2)->clients_cnt, 5);
	atomic_store(&shm_worker(0)->clients_cnt, 1);
	ck_assert_uint_eq(shm_clients_total(), 6);
	ck_assert(shm_pool_reserve(0, 2, 4));
	atomic_store(&shm_pool(0)->waiting[2], 3);
	ck_assert_uint_eq(shm_pool_waiting_elsewhere(0, 0), 3);
	ck_assert_uint_eq(shm_pool_waiting_elsewhere(0, 2), 0);
	shm_recover_slot(2, 12345);
	ck_assert_uint_eq(atomic_load(&shm_client(2, 5)->cancel_key), 0);
	ck_assert_uint_eq(atomic_load(&shm_client(0, 3)->cancel_key), 99);
	ck_assert_uint_eq(shm_clients_total(), 1);
	ck_assert_uint_eq(shm_pool_open_total(0), 0);
	ck_assert_uint_eq(shm_pool_waiting_elsewhere(0, 0), 0);
}
END_TEST

/* a dead slot's tables read as zeros afterwards, and their whole pages go back to the kernel */
START_TEST(test_shm_recover_frees_pages)
{
	size_t n = sizeof(struct shm_client) * g_shm->clients_per_worker;
	uint8_t *rows = (uint8_t *)shm_client(1, 0);
	long page = sysconf(_SC_PAGESIZE);
	uintptr_t lo = ((uintptr_t)rows + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
	unsigned char vec = 1;

	memset(rows, 0xab, n);
	ck_assert(n > 2 * (size_t)page);
	shm_recover_slot(1, 4242);
	/* first: reading a hole of a shared mapping allocates a page again */
	ck_assert_int_eq(mincore((void *)lo, (size_t)page, &vec), 0);
	ck_assert_msg((vec & 1) == 0, "a cleared page of the segment is still resident");
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(rows[i], 0);
}
END_TEST

/* a reader never sees a row half written */
START_TEST(test_shm_row_snapshot)
{
	struct shm_client *r = shm_client(0, 0), copy;
	pid_t pid = fork();
	int st, torn = 0;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		for (uint64_t i = 1; i < 200000; i++) {
			shm_row_write_begin(&r->seq);
			r->queries = i;
			r->transactions = i;
			shm_row_write_end(&r->seq);
		}
		_exit(0);
	}
	for (int i = 0; i < 200000; i++)
		if (shm_row_read(&r->seq, r, &copy, sizeof(copy)) &&
		    copy.queries != copy.transactions)
			torn++;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_int_eq(torn, 0);
	ck_assert(shm_row_read(&r->seq, r, &copy, sizeof(copy)));
	ck_assert_uint_eq(copy.queries, 199999);
}
END_TEST

static struct config *
shm_cfg_with(const char *users)
{
	struct config *cfg = config_new();
	char err[512];

	ck_assert_ptr_nonnull(cfg);
	ck_assert_msg(config_load_strings(cfg, "pgdog.ini",
					  "[databases.app]\nhost = 127.0.0.1\n"
					  "[databases.other]\nhost = 127.0.0.1\n",
					  "users.ini", users, err, sizeof(err)) == 0,
		      "%s", err);
	return cfg;
}

/* a reload keeps each pool's index; a removed pool's index is reused only once nobody holds it */
START_TEST(test_shm_pools_assign_stable)
{
	struct config *b = shm_cfg_with("[users.b]\ndatabase = other\npassword = x\n"
					"[users.a]\ndatabase = app\npassword = y\npool_size = 9\n");
	struct config *c = shm_cfg_with("[users.c]\ndatabase = other\npassword = x\n");
	uint32_t map[4];
	char err[256];

	shm_pools_init(shm_cfg);
	atomic_store(&shm_pool_ident(0)->refs[1], 1); /* worker 1 has pool a/app */
	ck_assert_int_eq(shm_pools_assign(b, 1, map, err, sizeof(err)), 0);
	ck_assert_uint_eq(map[1], 0); /* a/app: same labels, same index, new settings */
	ck_assert_uint_eq(map[0], 1); /* b/other: new */
	ck_assert_int_eq(shm_pool_ident(0)->pool_size, 9);
	ck_assert_str_eq(shm_pool_ident(1)->user, "b");
	ck_assert_uint_eq(g_shm->pools_cnt, 2);
	/* a removed while worker 1 still has it: its index is not given to c */
	ck_assert_int_eq(shm_pools_assign(c, 2, map, err, sizeof(err)), 0);
	ck_assert_uint_eq(atomic_load(&shm_pool_ident(0)->state), SHM_POOL_REMOVED);
	ck_assert_uint_eq(map[0], 2);
	ck_assert_str_eq(shm_pool_ident(2)->user, "c");
	/* b/other was in no worker: its index is free at once */
	ck_assert_uint_eq(atomic_load(&shm_pool_ident(1)->state), SHM_POOL_FREE);
	/* worker 1 drained it: now it is reusable */
	atomic_store(&shm_pool_ident(0)->refs[1], 0);
	ck_assert_int_eq(shm_pools_assign(b, 3, map, err, sizeof(err)), 0);
	ck_assert_uint_eq(map[1], 0); /* a again: the removed identity comes back at its index */
	ck_assert_uint_eq(map[0], 1);
	ck_assert_uint_eq(atomic_load(&shm_pool_ident(2)->state), SHM_POOL_FREE);
	config_free(b);
	config_free(c);
}
END_TEST

/* reloads beyond the segment's room fail with a reason and change nothing */
START_TEST(test_shm_pools_assign_limits)
{
	struct config *b = shm_cfg_with("[users.b]\ndatabase = other\npassword = x\n"
					"[users.a]\ndatabase = app\npassword = y\n");
	struct config *big = shm_cfg_with("[users.a]\ndatabase = app\npassword = y\n"
					  "pool_size = 9000\n");
	uint32_t map[4], cap = g_shm->pools_cap;
	char err[512];

	shm_pools_init(shm_cfg);
	ck_assert_int_eq(shm_pools_assign(big, 1, map, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "add up to 9000 server connections") != NULL, "%s", err);
	ck_assert_int_eq(shm_pool_ident(0)->pool_size, 4);
	g_shm->pools_cap = 1; /* as if the start-up reserve were used up */
	ck_assert_int_eq(shm_pools_assign(b, 1, map, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "room for 1") != NULL, "%s", err);
	g_shm->pools_cap = cap;
	ck_assert_int_eq(shm_pools_assign(b, 1, map, err, sizeof(err)), 0);
	ck_assert_uint_eq(g_shm->pools_cnt, 2);
	config_free(b);
	config_free(big);
}
END_TEST

/* The segment a binary upgrade passes on: the same memory, the other bank of slots. */
START_TEST(test_shm_adopt_shares)
{
	struct shm_header *old = g_shm;
	int old_fd = g_shm_fd, fd = dup(g_shm_fd);
	char err[512];

	ck_assert_int_ge(fd, 0);
	atomic_store(&shm_worker(0)->pid, (int32_t)getpid()); /* the old generation runs */
	ck_assert(shm_pool_reserve(0, 0, 4));
	g_shm = NULL;
	g_shm_fd = -1;
	ck_assert_msg(shm_adopt(fd, shm_cfg, err, sizeof(err)) == 0, "%s", err);
	ck_assert_ptr_ne(g_shm, old);
	ck_assert_int_eq(g_shm_fd, fd);
	ck_assert_uint_eq(shm_slot_base(), 3);
	ck_assert_uint_eq(atomic_load(&g_shm->handovers), 1);
	/* the cap covers both generations: one open in slot 0, three left */
	ck_assert_uint_eq(shm_pool_open_total(0), 1);
	ck_assert(shm_pool_reserve(0, 3, 4));
	ck_assert(shm_pool_reserve(0, 4, 4));
	ck_assert(shm_pool_reserve(0, 5, 4));
	ck_assert(!shm_pool_reserve(0, 3, 4));
	ck_assert_uint_eq(old->bank, 1);
	ck_assert_uint_eq(shm_pool(0)->open[4], 1);
	/* another upgrade now would need bank 0, where worker 0 still runs */
	{
		pid_t busy = 0;

		ck_assert(shm_other_bank_busy(&busy));
		ck_assert_int_eq(busy, getpid());
	}
	munmap(old, old->size);
	close(old_fd);
}
END_TEST

/* an incompatible segment is refused with a reason, and left as it was */
START_TEST(test_shm_adopt_refuses)
{
	struct shm_header *old = g_shm;
	int fd = dup(g_shm_fd);
	struct config *more;
	char err[512];

	ck_assert_int_ge(fd, 0);
	g_shm = NULL;
	old->layout_sig ^= 1; /* another binary's structures */
	ck_assert_int_eq(shm_adopt(fd, shm_cfg, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "another layout") != NULL, "%s", err);
	ck_assert_ptr_null(g_shm);
	old->layout_sig ^= 1;
	more = config_new();
	ck_assert_ptr_nonnull(more);
	ck_assert(config_load_strings(more, "pgdog.ini",
				      "[general]\nworkers = 4\n[databases.app]\nhost = x\n",
				      "users.ini", shm_users, err, sizeof(err)) == 0);
	ck_assert_int_eq(shm_adopt(fd, more, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "room for 3 workers") != NULL, "%s", err);
	config_free(more);
	/* a worker of the bank the upgrade would take still runs */
	atomic_store(&old->bank, 0);
	{
		struct shm_worker *w = (struct shm_worker *)((char *)old + old->off_workers) + 4;

		atomic_store(&w->pid, (int32_t)getpid());
		ck_assert_int_eq(shm_adopt(fd, shm_cfg, err, sizeof(err)), -1);
		ck_assert_msg(strstr(err, "still running") != NULL, "%s", err);
		atomic_store(&w->pid, 0);
	}
	ck_assert_uint_eq(old->bank, 0);
	ck_assert_uint_eq(old->handovers, 0);
	g_shm = old;
	close(fd);
}
END_TEST

/* an old-generation worker's counters are added to its successor's, not lost */
START_TEST(test_shm_retire_fold)
{
	struct shm_pool_stats *a = shm_pool_stats(1, 0), *b = shm_pool_stats(4, 0);

	atomic_store(&g_shm->bank, 1); /* the new generation serves from slots 3-5 */
	atomic_store(&a->cnt[SHM_STAT_XACT], 100);
	atomic_store(&a->hist[SHM_HIST_XACT][3], 7);
	atomic_store(&a->cl_active, 5);
	atomic_store(&shm_worker(1)->accepted_total, 30);
	atomic_store(&b->cnt[SHM_STAT_XACT], 20);
	b->last_us = 1;
	b->last[SHM_STAT_XACT] = 15;
	atomic_store(&shm_worker(1)->pid, 4242);
	/* the successor waits while the old worker lives */
	shm_slot_fold(4);
	ck_assert_uint_eq(atomic_load(&b->cnt[SHM_STAT_XACT]), 20);
	shm_retire_slot(1, 4242);
	ck_assert_uint_eq(atomic_load(&shm_worker(1)->pid), 0);
	ck_assert_uint_eq(atomic_load(&a->cl_active), 0); /* gauges are what it had now: nothing */
	ck_assert_uint_eq(atomic_load(&a->cnt[SHM_STAT_XACT]), 100);
	shm_slot_fold(4);
	ck_assert_uint_eq(atomic_load(&b->cnt[SHM_STAT_XACT]), 120);
	ck_assert_uint_eq(b->last[SHM_STAT_XACT], 115); /* no burst in the averages */
	ck_assert_uint_eq(atomic_load(&b->hist[SHM_HIST_XACT][3]), 7);
	ck_assert_uint_eq(atomic_load(&a->cnt[SHM_STAT_XACT]), 0);
	ck_assert_uint_eq(atomic_load(&shm_worker(4)->accepted_total), 30);
	ck_assert_uint_eq(atomic_load(&shm_worker(1)->is_fold_pending), 0);
	/* once only */
	shm_slot_fold(4);
	ck_assert_uint_eq(atomic_load(&b->cnt[SHM_STAT_XACT]), 120);
}
END_TEST

static Suite *
shm_suite(void)
{
	Suite *s = suite_create("shm");
	TCase *tc = tcase_create("segment");

	tcase_add_checked_fixture(tc, shm_setup, shm_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_shm_layout);
	tcase_add_test(tc, test_shm_pool_cap_global);
	tcase_add_test(tc, test_shm_pool_cap_processes);
	tcase_add_test(tc, test_shm_recover_dead_lock_holder);
	tcase_add_test(tc, test_shm_recover_slot_rows);
	tcase_add_test(tc, test_shm_recover_frees_pages);
	tcase_add_test(tc, test_shm_row_snapshot);
	tcase_add_test(tc, test_shm_pools_assign_stable);
	tcase_add_test(tc, test_shm_pools_assign_limits);
	tcase_add_test(tc, test_shm_adopt_shares);
	tcase_add_test(tc, test_shm_adopt_refuses);
	tcase_add_test(tc, test_shm_retire_fold);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(shm_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
