/*
 * it_pgbench.c: pgbench through pgdog.
 * Session pooling: `pgbench -i`, then 20 clients on 2 threads for 10 s must
 * finish with no failed transaction.
 * Transaction pooling (TCase pgbench_txn): 100 pgbench clients share a pool
 * of 10 servers for TPC-B under -M simple, extended and prepared; no failed
 * transaction, the balances stay consistent with pgbench_history, every
 * transaction lands exactly once, and PostgreSQL never sees more than 10
 * backends of the user.
 */
#include "t/lib/it.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TXN_POOL_SIZE  10
#define TXN_CLIENTS    100
#define TXN_PER_CLIENT 30

static void
setup(void)
{
	it_env_start("pgbench");
	it_pg_start(NULL);
	it_pg_role("bench", "bench_pw", "scram-sha-256");
	it_pg_hba("host all bench 127.0.0.1/32 scram-sha-256");
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 2,
		.users = "[users.bench]\ndatabase = app\npassword = bench_pw\npool_size = 25\n",
	});
}

static void
setup_txn(void)
{
	it_env_start("pgbench_txn");
	it_pg_start(NULL);
	it_pg_role("bench", "bench_pw", "scram-sha-256");
	it_pg_hba("host all bench 127.0.0.1/32 scram-sha-256");
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 2,
		.general = "pooler_mode = transaction\ncheckout_timeout = 10000",
		.users = "[users.bench]\ndatabase = app\npassword = bench_pw\npool_size = 10\n",
	});
}

static void
teardown(void)
{
	it_env_stop();
}

static long
field(const char *out, const char *name)
{
	const char *p = strstr(out, name);

	if (p == NULL)
		return -1;
	return strtol(p + strlen(name), NULL, 10);
}

START_TEST(test_pgbench_tpcb)
{
	static char out[65536];
	int rc;
	long done, failed;

	rc = it_run_pgbench("-i -s 2 -q", 0, out, sizeof(out), NULL, NULL);
	ck_assert_msg(rc == 0, "pgbench -i exited %d:\n%s", rc, out);
	ck_assert_str_eq(it_pg_value("SELECT count(*) FROM pgbench_accounts"), "200000");

	rc = it_run_pgbench("-c 20 -j 2 -T 10 -n", 0, out, sizeof(out), NULL, NULL);
	ck_assert_msg(rc == 0, "pgbench exited %d:\n%s", rc, out);
	done = field(out, "number of transactions actually processed: ");
	failed = field(out, "number of failed transactions: ");
	ck_assert_msg(done > 100, "only %ld transactions:\n%s", done, out);
	ck_assert_msg(failed == 0, "%ld failed transactions:\n%s", failed, out);
	ck_assert_msg(strstr(out, "number of clients: 20") != NULL, "%s", out);
	/* the history table agrees with pgbench's count */
	{
		long hist = atol(it_pg_value("SELECT count(*) FROM pgbench_history"));

		ck_assert_msg(hist >= done && hist <= done + 20,
			      "pgbench counted %ld transactions, pgbench_history has %ld", done,
			      hist);
	}
	fprintf(stderr, "it_pgbench: %ld transactions in 10 s through pgdog\n", done);
}
END_TEST

/* The extended protocol with prepared statements (-M prepared) works in session mode. */
START_TEST(test_pgbench_prepared)
{
	static char out[65536];
	int rc =
		it_run_pgbench("-c 8 -j 2 -T 3 -n -S -M prepared", 0, out, sizeof(out), NULL, NULL);

	ck_assert_msg(rc == 0, "pgbench -M prepared exited %d:\n%s", rc, out);
	ck_assert_msg(field(out, "number of failed transactions: ") == 0, "%s", out);
	ck_assert_msg(field(out, "number of transactions actually processed: ") > 100, "%s", out);
}
END_TEST

/* A sum over a pgbench table, straight from PostgreSQL (0 for an empty table). */
static long long
pg_sum(const char *sql)
{
	return atoll(it_pg_value(sql));
}

/*
 * Transaction pooling: 100 pgbench clients over a pool of 10 servers, TPC-B,
 * in each query mode. Every committed TPC-B transaction adds the same delta
 * to an account, a teller and a branch and inserts it into pgbench_history,
 * so the four sums stay equal; a transaction split across servers, applied
 * twice or half-applied breaks them.
 */
START_TEST(test_pgbench_txn_modes)
{
	static char out[262144];
	static const char *const modes[] = { "simple", "extended", "prepared" };
	PGconn *mon;
	long long t0 = it_now_ms();
	int rc;

	rc = it_run_pgbench("-i -s 2 -q", 0, out, sizeof(out), NULL, NULL);
	ck_assert_msg(rc == 0, "pgbench -i exited %d:\n%s", rc, out);
	ck_assert_str_eq(it_pg_value("SELECT count(*) FROM pgbench_accounts"), "200000");
	mon = it_pg_connect();
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		char args[256];
		long long hist0, hist1, acc, tel, bra, delta;
		long done, failed;
		int max_backends = 0;
		long long t = it_now_ms();

		hist0 = pg_sum("SELECT count(*) FROM pgbench_history");
		/*
		 * -M prepared gets a thread per client: pgbench 15 prepares a
		 * client's statements with a blocking PQprepare(), which stalls
		 * every other client of its thread; when those hold the pool's
		 * servers mid-transaction, the Parse waits for a server that only
		 * the stalled clients could release (checkout_timeout, FATAL).
		 */
		snprintf(args, sizeof(args), "-c %d -j %d -t %d -n -M %s", TXN_CLIENTS,
			 strcmp(modes[m], "prepared") == 0 ? TXN_CLIENTS : 2, TXN_PER_CLIENT,
			 modes[m]);
		rc = it_run_pgbench(args, 0, out, sizeof(out), mon, &max_backends);
		ck_assert_msg(rc == 0, "pgbench -M %s exited %d:\n%s", modes[m], rc, out);
		failed = field(out, "number of failed transactions: ");
		done = field(out, "number of transactions actually processed: ");
		ck_assert_msg(failed == 0, "-M %s: %ld failed transactions:\n%s", modes[m], failed,
			      out);
		ck_assert_msg(done == TXN_CLIENTS * TXN_PER_CLIENT,
			      "-M %s: %ld transactions processed, expected %d:\n%s", modes[m], done,
			      TXN_CLIENTS * TXN_PER_CLIENT, out);

		hist1 = pg_sum("SELECT count(*) FROM pgbench_history");
		ck_assert_msg(hist1 - hist0 == TXN_CLIENTS * TXN_PER_CLIENT,
			      "-M %s: pgbench_history grew by %lld rows, expected %d", modes[m],
			      hist1 - hist0, TXN_CLIENTS * TXN_PER_CLIENT);
		delta = pg_sum("SELECT coalesce(sum(delta), 0) FROM pgbench_history");
		acc = pg_sum("SELECT sum(abalance) FROM pgbench_accounts");
		tel = pg_sum("SELECT sum(tbalance) FROM pgbench_tellers");
		bra = pg_sum("SELECT sum(bbalance) FROM pgbench_branches");
		ck_assert_msg(acc == delta && tel == delta && bra == delta,
			      "-M %s: sum(abalance) %lld, sum(tbalance) %lld, sum(bbalance) %lld, "
			      "sum(delta) %lld: should all be equal",
			      modes[m], acc, tel, bra, delta);
		ck_assert_msg(max_backends <= TXN_POOL_SIZE,
			      "-M %s: PostgreSQL had %d backends of user bench (pool_size %d)",
			      modes[m], max_backends, TXN_POOL_SIZE);
		ck_assert_msg(max_backends > 0, "-M %s: the monitor never saw a backend", modes[m]);
		fprintf(stderr,
			"it_pgbench: transaction mode -M %s: %ld transactions by %d clients in "
			"%lld ms, at most %d backends, sum(delta) %lld\n",
			modes[m], done, TXN_CLIENTS, it_now_ms() - t, max_backends, delta);
	}
	PQfinish(mon);
	fprintf(stderr, "it_pgbench: transaction mode total %lld ms\n", it_now_ms() - t0);
}
END_TEST

/* ---- two workers sharing one pool fairly --------------------------------- */

static void
setup_fair(void)
{
	it_env_start("pgbench_fair");
	it_pg_start(NULL);
	it_pg_role("bench", "bench_pw", "scram-sha-256");
	it_pg_hba("host all bench 127.0.0.1/32 scram-sha-256");
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 2,
		.general = "pooler_mode = transaction\ncheckout_timeout = 3000",
		.users = "[users.bench]\ndatabase = app\npassword = bench_pw\npool_size = 10\n",
	});
}

static long long
pg_sessions(void)
{
	return pg_sum("SELECT sum(sessions) FROM pg_stat_database");
}

/*
 * Both workers' clients share the cap: none waits past checkout_timeout
 * while the other worker's clients run (it used to starve), and servers are
 * not passed back and forth between the workers (every pass is a new
 * PostgreSQL connection: it used to be over a hundred a second).
 */
START_TEST(test_pgbench_two_workers_fair)
{
	static char out[262144];
	int rc;
	long long s0, s1;

	rc = it_run_pgbench("-i -s 1 -q", 0, out, sizeof(out), NULL, NULL);
	ck_assert_msg(rc == 0, "pgbench -i exited %d:\n%s", rc, out);
	for (int round = 0; round < 2; round++) {
		rc = it_run_pgbench("-c 100 -j 2 -T 6 -n -S -M extended", 0, out, sizeof(out), NULL,
				    NULL);
		ck_assert_msg(rc == 0 && strstr(out, "aborted") == NULL,
			      "100 clients, 2 workers: pgbench exited %d:\n%s", rc, out);
		ck_assert_int_eq(field(out, "number of failed transactions: "), 0);
	}
	s0 = pg_sessions();
	rc = it_run_pgbench("-c 10 -j 2 -T 5 -n -S -M extended", 0, out, sizeof(out), NULL, NULL);
	ck_assert_msg(rc == 0, "10 clients: pgbench exited %d:\n%s", rc, out);
	s1 = pg_sessions();
	fprintf(stderr,
		"it_pgbench: 10 clients on 2 workers: %lld new PostgreSQL sessions in 5 s\n",
		s1 - s0);
	ck_assert_msg(
		s1 - s0 < 60,
		"10 clients on 2 workers opened %lld PostgreSQL sessions in 5 s (pool_size 10)",
		s1 - s0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("it_pgbench");
	TCase *tc = tcase_create("pgbench");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_pgbench_tpcb);
	tcase_add_test(tc, test_pgbench_prepared);
	suite_add_tcase(s, tc);

	tc = tcase_create("pgbench_txn");
	tcase_add_unchecked_fixture(tc, setup_txn, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_pgbench_txn_modes);
	suite_add_tcase(s, tc);

	tc = tcase_create("pgbench_fair");
	tcase_add_unchecked_fixture(tc, setup_fair, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_pgbench_two_workers_fair);
	suite_add_tcase(s, tc);
	return it_run_suite(s);
}
