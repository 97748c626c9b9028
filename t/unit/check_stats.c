/*
 * check_stats.c: unit tests for shared/stats.c: histogram buckets, the sums
 * over worker slots that SHOW STATS, SHOW POOLS and /metrics share, the
 * idle-in-transaction count from the server rows, and the averages over
 * stats_period from the workers' copies. No network.
 */
#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/config.h"
#include "shared/proc.h"
#include "shared/shm.h"
#include "shared/stats.h"

static const char *const stats_ini = "[general]\n"
				     "workers = 3\n"
				     "max_client_conn = 10\n"
				     "[databases.app]\n"
				     "host = 127.0.0.1\n";
static const char *const stats_users = "[users.a]\n"
				       "database = app\n"
				       "password = x\n"
				       "pool_size = 4\n"
				       "[users.b]\n"
				       "database = app\n"
				       "password = y\n"
				       "pool_size = 2\n";

static struct config *stats_cfg;

static void
stats_setup(void)
{
	char err[512];

	stats_cfg = config_new();
	ck_assert_ptr_nonnull(stats_cfg);
	ck_assert_msg(config_load_strings(stats_cfg, "pgdog.ini", stats_ini, "users.ini",
					  stats_users, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_int_eq(shm_create(stats_cfg, err, sizeof(err)), 0);
}

static void
stats_teardown(void)
{
	shm_destroy();
	config_free(stats_cfg);
}

/* Bounds are inclusive upper limits; past the last one is +Inf. */
START_TEST(test_stats_hist_bucket)
{
	ck_assert_uint_eq(stats_hist_bucket(0), 0);
	ck_assert_uint_eq(stats_hist_bucket(100), 0);
	ck_assert_uint_eq(stats_hist_bucket(101), 1);
	ck_assert_uint_eq(stats_hist_bucket(1000), 3);
	ck_assert_uint_eq(stats_hist_bucket(1001), 4);
	ck_assert_uint_eq(stats_hist_bucket(60000000), SHM_HIST_BOUNDS - 1);
	ck_assert_uint_eq(stats_hist_bucket(60000001), SHM_HIST_BOUNDS);
	ck_assert_uint_eq(stats_hist_bucket(UINT64_MAX), SHM_HIST_BOUNDS);
	/* increasing, 0.1 ms to 60 s */
	ck_assert_uint_eq(stats_hist_bounds_us[0], 100);
	ck_assert_uint_eq(stats_hist_bounds_us[SHM_HIST_BOUNDS - 1], 60000000);
	for (int i = 1; i < SHM_HIST_BOUNDS; i++)
		ck_assert_uint_gt(stats_hist_bounds_us[i], stats_hist_bounds_us[i - 1]);
}
END_TEST

/* Counters, gauges and histograms of every worker add up; maxwait is the largest. */
START_TEST(test_stats_collect_sums)
{
	struct stats_pool ps[2];

	for (uint32_t w = 0; w < 3; w++) {
		struct shm_pool_stats *st = shm_pool_stats(w, 1);

		shm_stat_add(&st->cnt[SHM_STAT_XACT], w + 1);
		shm_stat_add(&st->cnt[SHM_STAT_RECV], 100 * (w + 1));
		atomic_store(&st->cl_active, 2);
		atomic_store(&st->sv_idle, w);
		atomic_store(&st->maxwait_us, 1000 * (w + 1));
		stats_hist_add(st, SHM_HIST_QUERY, 50);      /* bucket 0 */
		stats_hist_add(st, SHM_HIST_QUERY, 2000000); /* 2.5 s bucket */
		stats_hist_add(st, SHM_HIST_XACT, 100000000);
	}
	shm_stat_add(&shm_pool_stats(0, 0)->cnt[SHM_STAT_XACT], 7);
	stats_collect(ps, 2);
	ck_assert_uint_eq(ps[1].total[SHM_STAT_XACT], 6);
	ck_assert_uint_eq(ps[1].total[SHM_STAT_RECV], 600);
	ck_assert_uint_eq(ps[0].total[SHM_STAT_XACT], 7);
	ck_assert_uint_eq(ps[1].cl_active, 6);
	ck_assert_uint_eq(ps[1].sv_idle, 3);
	ck_assert_uint_eq(ps[1].maxwait_us, 3000);
	ck_assert_uint_eq(ps[1].hist[SHM_HIST_QUERY][0], 3);
	ck_assert_uint_eq(ps[1].hist[SHM_HIST_QUERY][stats_hist_bucket(2000000)], 3);
	ck_assert_uint_eq(ps[1].hist[SHM_HIST_XACT][SHM_HIST_BOUNDS], 3);
	ck_assert_uint_eq(ps[1].hist_sum_us[SHM_HIST_QUERY], 3 * 2000050);
	/* a total over pools */
	stats_pool_add(&ps[0], &ps[1]);
	ck_assert_uint_eq(ps[0].total[SHM_STAT_XACT], 13);
	ck_assert_uint_eq(ps[0].maxwait_us, 3000);
}
END_TEST

/* A linked server whose last ReadyForQuery said 'T' and has no request running is idle in transaction. */
START_TEST(test_stats_idle_xact)
{
	struct stats_pool ps[2];
	struct shm_server *a = shm_server(1, 0), *b = shm_server(2, 1), *c = shm_server(2, 2);

	atomic_store(&a->state, SHM_STATE_ACTIVE);
	a->pool_idx = 0;
	a->tx_status = 'T';
	a->request_us = 10;
	a->ready_us = 20; /* answered after the request: idle */
	atomic_store(&b->state, SHM_STATE_ACTIVE);
	b->pool_idx = 0;
	b->tx_status = 'T';
	b->request_us = 30;
	b->ready_us = 20; /* a request is running */
	atomic_store(&c->state, SHM_STATE_ACTIVE);
	c->pool_idx = 0;
	c->tx_status = 'I';
	atomic_store(&shm_pool_stats(1, 0)->sv_active, 1);
	atomic_store(&shm_pool_stats(2, 0)->sv_active, 2);
	stats_collect(ps, 2);
	ck_assert_uint_eq(ps[0].sv_idle_xact, 1);
	ck_assert_uint_eq(ps[0].sv_active, 2); /* idle-in-transaction ones are not active */
	ck_assert_uint_eq(ps[1].sv_idle_xact, 0);
}
END_TEST

/* Averages: differences of the two latest copies, per second or per event. */
START_TEST(test_stats_averages)
{
	struct stats_pool ps[2];
	uint64_t avg[SHM_STAT_CNT];
	struct shm_pool_stats *s0 = shm_pool_stats(0, 0), *s1 = shm_pool_stats(1, 0);

	/* one copy only: no period yet */
	shm_stat_add(&s0->cnt[SHM_STAT_XACT], 5);
	stats_snapshot(s0, 1000000);
	stats_collect(ps, 2);
	stats_averages(&ps[0], avg);
	ck_assert_uint_eq(avg[SHM_STAT_XACT], 0);

	/* worker 0: 20 transactions, 2 s of them in 2 s; worker 1: 10 in 2 s, 1 s */
	shm_stat_add(&s0->cnt[SHM_STAT_XACT], 20);
	shm_stat_add(&s0->cnt[SHM_STAT_XACT_US], 2000000);
	shm_stat_add(&s0->cnt[SHM_STAT_RECV], 4000);
	stats_snapshot(s0, 3000000);
	stats_snapshot(s1, 5000000);
	shm_stat_add(&s1->cnt[SHM_STAT_XACT], 10);
	shm_stat_add(&s1->cnt[SHM_STAT_XACT_US], 1000000);
	stats_snapshot(s1, 7000000);
	/* later traffic is not in the averages until the next copy */
	shm_stat_add(&s1->cnt[SHM_STAT_XACT], 1000);
	stats_collect(ps, 2);
	ck_assert_uint_eq(ps[0].delta[SHM_STAT_XACT], 30);
	ck_assert_uint_eq(ps[0].delta_us, 2000000);
	stats_averages(&ps[0], avg);
	ck_assert_uint_eq(avg[SHM_STAT_XACT], 15);        /* per second */
	ck_assert_uint_eq(avg[SHM_STAT_RECV], 2000);      /* bytes per second */
	ck_assert_uint_eq(avg[SHM_STAT_XACT_US], 100000); /* per transaction */
	ck_assert_uint_eq(avg[SHM_STAT_QUERY_US], 0);     /* no queries: 0, not a division by 0 */
	ck_assert_uint_eq(ps[0].total[SHM_STAT_XACT], 1035);
}
END_TEST

/* A dead worker's statistics go with its slot. */
START_TEST(test_stats_recover_slot)
{
	struct stats_pool ps[2];

	shm_stat_add(&shm_pool_stats(2, 0)->cnt[SHM_STAT_QUERY], 9);
	shm_stat_add(&shm_pool_stats(1, 0)->cnt[SHM_STAT_QUERY], 1);
	shm_recover_slot(2, 12345);
	stats_collect(ps, 2);
	ck_assert_uint_eq(ps[0].total[SHM_STAT_QUERY], 1);
}
END_TEST

/* Resident memory of this process is known and non-zero; of no process, 0. */
START_TEST(test_stats_rss)
{
	ck_assert_uint_gt(stats_rss_bytes((int)getpid()), 0);
	ck_assert_uint_eq(stats_rss_bytes(-1), 0);
}
END_TEST

/* A pidfile's pid (shared/proc.c: the pidfile check and pgdog --upgrade read it). */
START_TEST(test_proc_pidfile)
{
	char path[] = "/tmp/check_proc_XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "4242\n", 5), 5);
	close(fd);
	ck_assert_int_eq(proc_pidfile_read(path), 4242);
	fd = open(path, O_WRONLY | O_TRUNC);
	ck_assert_int_eq(write(fd, "pgdog", 5), 5);
	close(fd);
	ck_assert_int_eq(proc_pidfile_read(path), 0);
	fd = open(path, O_WRONLY | O_TRUNC);
	close(fd);
	ck_assert_int_eq(proc_pidfile_read(path), 0); /* empty */
	unlink(path);
	ck_assert_int_eq(proc_pidfile_read(path), 0); /* missing */
	/* the caller itself never counts; the parent is alive, with some name */
	ck_assert(!proc_pid_is_named(getpid(), ""));
	ck_assert(proc_pid_is_named(getppid(), ""));
	ck_assert(!proc_pid_is_named(getppid(), "no-such-program-name"));
	ck_assert(!proc_pid_is_named(0, ""));
}
END_TEST

static Suite *
stats_suite(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = tcase_create("stats");

	tcase_add_checked_fixture(tc, stats_setup, stats_teardown);
	tcase_add_test(tc, test_stats_hist_bucket);
	tcase_add_test(tc, test_stats_collect_sums);
	tcase_add_test(tc, test_stats_idle_xact);
	tcase_add_test(tc, test_stats_averages);
	tcase_add_test(tc, test_stats_recover_slot);
	tcase_add_test(tc, test_stats_rss);
	tcase_add_test(tc, test_proc_pidfile);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(stats_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
