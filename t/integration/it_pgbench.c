/*
 * it_pgbench.c: pgbench through pgdog (session pooling): `pgbench -i`, then
 * 20 clients on 2 threads for 10 s must finish with no failed transaction.
 */
#include "t/lib/it.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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
teardown(void)
{
	it_env_stop();
}

static const char *
pgbench_bin(void)
{
	const char *env = getenv("PGBENCH");
	static const char *cands[] = { "/usr/lib/postgresql/15/bin/pgbench", "/usr/bin/pgbench" };

	if (env != NULL && *env != '\0')
		return env;
	for (size_t i = 0; i < 2; i++)
		if (access(cands[i], X_OK) == 0)
			return cands[i];
	ck_abort_msg(
		"pgbench not found (install postgresql-contrib / postgresql-15, or set PGBENCH)");
	return NULL;
}

/* Run pgbench with args through pgdog; output into out; returns its exit status. */
static int
run_pgbench(const char *args, char *out, size_t out_len)
{
	char cmd[1024];
	FILE *p;
	size_t n = 0, r;
	int st;

	snprintf(
		cmd, sizeof(cmd),
		"PGPASSWORD=bench_pw PGCONNECT_TIMEOUT=10 %s -h 127.0.0.1 -p %d -U bench %s app 2>&1",
		pgbench_bin(), g_it.port, args);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while (n + 1 < out_len && (r = fread(out + n, 1, out_len - n - 1, p)) > 0)
		n += r;
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
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

	rc = run_pgbench("-i -s 2 -q", out, sizeof(out));
	ck_assert_msg(rc == 0, "pgbench -i exited %d:\n%s", rc, out);
	ck_assert_str_eq(it_pg_value("SELECT count(*) FROM pgbench_accounts"), "200000");

	rc = run_pgbench("-c 20 -j 2 -T 10 -n", out, sizeof(out));
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
	int rc = run_pgbench("-c 8 -j 2 -T 3 -n -S -M prepared", out, sizeof(out));

	ck_assert_msg(rc == 0, "pgbench -M prepared exited %d:\n%s", rc, out);
	ck_assert_msg(field(out, "number of failed transactions: ") == 0, "%s", out);
	ck_assert_msg(field(out, "number of transactions actually processed: ") > 100, "%s", out);
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
	return it_run_suite(s);
}
