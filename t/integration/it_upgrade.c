/*
 * it_upgrade.c: zero-downtime binary upgrade.
 * Under load: pgbench -M extended with 50 clients in transaction mode for
 * 10 s, SIGUSR2 in the middle, while another process opens a new
 * connection (login + SELECT 1) every few ms: no failed transaction, no
 * failed connection attempt, the pidfile names the new supervisor, and the
 * old one exits once its clients are done. The counts of clients handed
 * over, closed by pgdog and finished on the old generation are printed.
 * Shared segment: the same load with pool_size 8: PostgreSQL never sees
 * more than 8 backends of the pool over both generations, a long query on
 * the old generation is cancelled through the new one, and SHOW STATS goes
 * on counting from the old generation's totals.
 * Failure: an upgrade to a configuration the new binary refuses keeps the
 * old generation serving (SIGUSR2 and pgdog --upgrade, exit 1); a valid
 * one then succeeds (exit 0), and the Unix socket outlives the old
 * supervisor.
 */
#include "t/lib/it.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BENCH_USERS      "[users.bench]\ndatabase = app\npassword = bench_pw\npool_size = 20\n"
#define BENCH_DSN        "dbname=app user=bench password=bench_pw"
#define SHARED_POOL_SIZE 8
#define SHARED_USERS     "[users.bench]\ndatabase = app\npassword = bench_pw\npool_size = 8\n"

static void
setup(void)
{
	it_env_start("upgrade");
	it_pg_start(NULL);
	it_pg_role("bench", "bench_pw", "scram-sha-256");
	it_pg_hba("host all bench 127.0.0.1/32 scram-sha-256");
}

static void
teardown(void)
{
	it_env_stop();
}

/* Sum of the numbers that follow each occurrence of key in text. */
static long
sum_after(const char *text, const char *key)
{
	long sum = 0;

	for (const char *p = text; p && (p = strstr(p, key)) != NULL; p += strlen(key))
		sum += strtol(p + strlen(key), NULL, 10);
	return sum;
}

static long
count_of(const char *text, const char *key)
{
	long n = 0;

	for (const char *p = text; p && (p = strstr(p, key)) != NULL; p += strlen(key))
		n++;
	return n;
}

static void
select_through(const char *dsn_extra, const char *what)
{
	PGconn *c = PQconnectdb(it_pgdog_dsn(dsn_extra));

	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s: %s", what, PQerrorMessage(c));
	ck_assert_str_eq(it_value(c, "SELECT 7"), "7");
	PQfinish(c);
}

/*
 * In a child: a new connection (login and SELECT 1) every 5 ms for
 * duration_ms, at most 3000. Writes "ok <n> failed <m> <first error>".
 */
static pid_t
connect_loop_start(const char *result_path, int duration_ms)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		long long end = it_now_ms() + duration_ms;
		int ok = 0, failed = 0;
		char first[512] = "";
		FILE *f;

		for (int i = 0; i < 3000 && it_now_ms() < end; i++) {
			PGconn *c = PQconnectdb(it_pgdog_dsn(BENCH_DSN));
			PGresult *r = NULL;

			if (PQstatus(c) == CONNECTION_OK)
				r = PQexec(c, "SELECT 1");
			if (r && PQresultStatus(r) == PGRES_TUPLES_OK) {
				ok++;
			} else {
				if (!failed)
					snprintf(first, sizeof(first), "%s", PQerrorMessage(c));
				failed++;
			}
			PQclear(r);
			PQfinish(c);
			it_sleep_ms(5);
		}
		f = fopen(result_path, "w");
		if (f) {
			fprintf(f, "ok %d failed %d %s\n", ok, failed, first);
			fclose(f);
		}
		_exit(0);
	}
	return pid;
}

/* In a child: it_run_pgbench(args) with its output in out_path; exits with its status. */
static pid_t
pgbench_start(const char *args, const char *out_path)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		static char out[65536];
		int rc = it_run_pgbench(args, 60, out, sizeof(out), NULL, NULL);
		FILE *f = fopen(out_path, "w");

		if (f) {
			fputs(out, f);
			fclose(f);
		}
		_exit(rc & 0xff);
	}
	return pid;
}

/* SIGTERM to a supervisor this test started; it must be gone within 5 s. */
static void
stop_supervisor(pid_t pid)
{
	kill(pid, SIGTERM);
	for (int i = 0; i < 250 && it_pid_alive(pid); i++)
		it_sleep_ms(20);
	ck_assert_msg(!it_pid_alive(pid), "pgdog %d still runs 5 s after SIGTERM", (int)pid);
}

/* The supervisor a binary upgrade of old started: its pid in the pidfile (up to 10 s), or 0. */
static pid_t
next_supervisor(const char *pidfile, pid_t old)
{
	for (int i = 0; i < 200; i++) {
		pid_t next = it_pidfile_pid(pidfile);

		if (next > 0 && next != old)
			return next;
		it_sleep_ms(50);
	}
	return 0;
}

START_TEST(test_upgrade_under_load)
{
	char pidfile[IT_PATH_MAX], log[IT_PATH_MAX], bench_out[IT_PATH_MAX], loop_out[IT_PATH_MAX];
	const char *args[] = { "--pidfile", pidfile, NULL };
	static char out[65536];
	int port = it_free_port(), st, rc, ok = 0, failed = -1;
	pid_t pid, next = 0, bench, loop;
	long done, tx_failed, closed_idle, handed, adopted;
	char *text;

	snprintf(pidfile, sizeof(pidfile), "%s/up.pid", g_it.dir);
	snprintf(log, sizeof(log), "%s/pgdog-up.log", g_it.dir);
	snprintf(bench_out, sizeof(bench_out), "%s/bench.out", g_it.dir);
	snprintf(loop_out, sizeof(loop_out), "%s/loop.out", g_it.dir);
	pid = it_pgdog_spawn("up",
			     &(struct it_pgdog_conf){ .workers = 2,
						      .users = BENCH_USERS,
						      .general = "pooler_mode = transaction\n"
								 "checkout_timeout = 10000\n"
								 "shutdown_timeout = 30000\n" },
			     port, args);
	g_it.port = port;
	ck_assert_msg(it_wait_port(port, 10000), "pgdog did not listen");
	ck_assert_msg(it_file_wait_for(pidfile, "\n", 5000), "no pidfile");
	ck_assert_int_eq(it_pidfile_pid(pidfile), pid);
	/* pgbench's tables, generated on the server (no COPY) */
	rc = it_run_pgbench("-i -I dtGp -s 1 -q", 120, out, sizeof(out), NULL, NULL);
	ck_assert_msg(rc == 0, "pgbench -i exited %d:\n%s", rc, out);

	bench = pgbench_start("-M extended -c 50 -j 2 -T 10 -n", bench_out);
	it_sleep_ms(3000);
	loop = connect_loop_start(loop_out, 4000);
	it_sleep_ms(1000);
	ck_assert_int_eq(kill(pid, SIGUSR2), 0);
	next = next_supervisor(pidfile, pid);
	ck_assert_msg(next > 0 && next != pid, "the pidfile still names %d 10 s after SIGUSR2",
		      (int)pid);
	it_track_pid(next);

	st = it_wait_pid(loop, 30000);
	ck_assert_msg(st != -1, "connection loop did not finish");
	st = it_wait_pid(bench, 60000);
	ck_assert_msg(st != -1, "pgbench did not finish");
	text = it_read_file(bench_out);
	ck_assert_ptr_nonnull(text);
	done = it_number_after(text, "number of transactions actually processed: ");
	tx_failed = it_number_after(text, "number of failed transactions: ");
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "pgbench exited %d:\n%s",
		      WIFEXITED(st) ? WEXITSTATUS(st) : -1, text);
	ck_assert_msg(done > 100, "only %ld transactions:\n%s", done, text);
	ck_assert_msg(tx_failed == 0, "%ld failed transactions:\n%s", tx_failed, text);
	free(text);
	text = it_read_file(loop_out);
	ck_assert_ptr_nonnull(text);
	ck_assert_int_eq(sscanf(text, "ok %d failed %d", &ok, &failed), 2);
	ck_assert_msg(failed == 0, "%d of %d new connections failed during the upgrade: %s", failed,
		      ok + failed, text);
	/* SCRAM logins compete with pgbench for 2 cores: tens per second */
	ck_assert_msg(ok > 20, "only %d new connections in 4 s: %s", ok, text);
	free(text);

	/* the old generation is done once pgbench's clients left; the new one serves */
	ck_assert_msg(it_wait_pid(pid, 30000) != -1, "old supervisor %d still running", (int)pid);
	ck_assert_int_eq(it_pidfile_pid(pidfile), next);
	ck_assert_msg(it_pid_alive(next), "new supervisor %d is not running", (int)next);
	select_through(BENCH_DSN, "after the upgrade");

	ck_assert_msg(it_file_wait_for(log, "old generation done: pgdog continues as pid", 5000),
		      "no line for the end of the old generation");
	text = it_read_file(log);
	handed = sum_after(text, "binary upgrade: all clients gone (");
	closed_idle = sum_after(text, " handed over, ");
	adopted = count_of(text, "login handed over from the previous generation");
	fprintf(stderr,
		"upgrade under load: %ld transactions, %ld failed; %d new connections during the "
		"upgrade, %d failed; of 50 pgbench clients: %ld handed over to the new generation "
		"(%ld adopted there), %ld closed by pgdog while idle, %ld finished on the old one\n",
		done, tx_failed, ok + failed, failed, handed, adopted, closed_idle,
		50 - handed - closed_idle);
	fflush(stderr);
	ck_assert_int_eq(adopted, handed);
	/* each client moves as soon as a reply of its is out: nearly all, in practice all */
	ck_assert_msg(handed >= 40, "only %ld of 50 busy clients were handed over", handed);
	free(text);
	kill(next, SIGTERM);
	for (int i = 0; i < 250 && it_pid_alive(next); i++)
		it_sleep_ms(20);
	ck_assert_msg(!it_pid_alive(next), "new supervisor still running 5 s after SIGTERM");
}
END_TEST

START_TEST(test_upgrade_refused_config)
{
	char pidfile[IT_PATH_MAX], log[IT_PATH_MAX], ini[IT_PATH_MAX], out[4096];
	const char *args[] = { "--pidfile", pidfile, NULL };
	const char *cmd[] = { "pgdog", "--upgrade", "--pidfile", pidfile, NULL };
	int port = it_free_port(), rc;
	pid_t pid, next, kids[8];
	char *good;

	snprintf(pidfile, sizeof(pidfile), "%s/refused.pid", g_it.dir);
	snprintf(log, sizeof(log), "%s/pgdog-refused.log", g_it.dir);
	snprintf(ini, sizeof(ini), "%s/refused.ini", g_it.dir);
	pid = it_pgdog_spawn("refused",
			     &(struct it_pgdog_conf){ .workers = 2, .users = BENCH_USERS }, port,
			     args);
	g_it.port = port;
	ck_assert_msg(it_wait_port(port, 10000), "pgdog did not listen");
	ck_assert_msg(it_file_wait_for(pidfile, "\n", 5000), "no pidfile");
	good = it_read_file(ini);
	ck_assert_ptr_nonnull(good);

	/* a configuration the new binary refuses: the old generation keeps serving */
	it_write_file(ini, "[general]\nworkers = many\n");
	kill(pid, SIGUSR2);
	ck_assert_msg(it_file_wait_for(
			      log, "binary upgrade failed, this generation keeps serving:", 10000),
		      "no failure line after SIGUSR2 with a broken configuration");
	ck_assert_msg(it_file_wait_for(log, "workers = many", 1000), "the reason is not logged");
	ck_assert_int_eq(it_pidfile_pid(pidfile), pid);
	ck_assert_int_eq(it_children(pid, kids, 8), 2);
	select_through(BENCH_DSN, "after a failed upgrade");

	/* pgdog --upgrade reports the failure with exit status 1 */
	rc = it_pgdog_run(cmd, out, sizeof(out), 40000);
	ck_assert_msg(rc == 1, "pgdog --upgrade with a broken configuration exited %d: %s", rc,
		      out);
	ck_assert_msg(strstr(out, "workers = many") != NULL, "no reason: %s", out);
	ck_assert_int_eq(it_pidfile_pid(pidfile), pid);

	/* a change an upgrade cannot make (workers) is refused too */
	{
		char *more = strdup(good);
		char *w;

		ck_assert_ptr_nonnull(more);
		w = strstr(more, "workers = 2\n");
		ck_assert_ptr_nonnull(w);
		w[strlen("workers = ")] = '3';
		it_write_file(ini, more);
		free(more);
	}
	rc = it_pgdog_run(cmd, out, sizeof(out), 40000);
	ck_assert_msg(rc == 1 && strstr(out, "cannot change workers") != NULL,
		      "upgrade changing workers: %d: %s", rc, out);
	ck_assert_int_eq(it_pidfile_pid(pidfile), pid);
	select_through(BENCH_DSN, "after a refused upgrade");

	/* nothing running: exit status 2 */
	{
		char none[IT_PATH_MAX];
		const char *cmd2[] = { "pgdog", "--upgrade", "--pidfile", none, NULL };

		snprintf(none, sizeof(none), "%s/none.pid", g_it.dir);
		rc = it_pgdog_run(cmd2, out, sizeof(out), 10000);
		ck_assert_msg(rc == 2, "--upgrade without a running pgdog: %d: %s", rc, out);
	}

	/* the valid configuration again: pgdog --upgrade succeeds */
	it_write_file(ini, good);
	free(good);
	rc = it_pgdog_run(cmd, out, sizeof(out), 40000);
	ck_assert_msg(rc == 0, "pgdog --upgrade exited %d: %s", rc, out);
	next = it_pidfile_pid(pidfile);
	it_track_pid(next);
	ck_assert_int_ne(next, pid);
	ck_assert_msg(strstr(out, "replaced by pid") != NULL, "%s", out);
	ck_assert_msg(it_wait_pid(pid, 10000) != -1, "old supervisor still running");
	/* the Unix socket file belongs to the new generation now */
	{
		char dsn[IT_PATH_MAX + 128];
		PGconn *c;

		snprintf(dsn, sizeof(dsn), "host=%s port=%d %s", g_it.dir, port, BENCH_DSN);
		c = PQconnectdb(dsn);
		ck_assert_msg(PQstatus(c) == CONNECTION_OK,
			      "Unix socket after the old supervisor exited: %s", PQerrorMessage(c));
		PQfinish(c);
	}
	select_through(BENCH_DSN, "after the upgrade");
	stop_supervisor(next);
}
END_TEST

/* SHOW STATS total_xact_count of user bench's pool (admin console), -1 if none. */
static long
bench_xacts(void)
{
	PGconn *a = it_connect("dbname=admin user=admin password=pgdog");
	PGresult *r = PQexec(a, "SHOW STATS");
	long n = -1;
	int cu, cx;

	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "SHOW STATS: %s", PQerrorMessage(a));
	cu = PQfnumber(r, "user");
	cx = PQfnumber(r, "total_xact_count");
	ck_assert(cu >= 0 && cx >= 0);
	for (int i = 0; i < PQntuples(r); i++)
		if (strcmp(PQgetvalue(r, i, cu), "bench") == 0)
			n = strtol(PQgetvalue(r, i, cx), NULL, 10);
	PQclear(r);
	PQfinish(a);
	return n;
}

/*
 * In a child: the highest number of user bench's backends PostgreSQL shows,
 * sampled every 10 ms for duration_ms (at most 3000 samples), written to path.
 */
static pid_t
backend_monitor_start(const char *path, int duration_ms)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		PGconn *mon = it_pg_connect();
		long long end = it_now_ms() + duration_ms;
		int max = 0, samples = 0;
		FILE *f;

		for (; samples < 3000 && it_now_ms() < end; samples++) {
			int n = it_pg_count_backends(mon, "bench");

			if (n > max)
				max = n;
			it_sleep_ms(10);
		}
		PQfinish(mon);
		f = fopen(path, "w");
		if (f) {
			fprintf(f, "max %d samples %d\n", max, samples);
			fclose(f);
		}
		_exit(0);
	}
	return pid;
}

/*
 * The upgrade shares the segment: while 50 pgbench clients (-M extended)
 * move to the new generation, PostgreSQL never sees more than pool_size
 * backends of the pool over both generations (with a segment per
 * generation it saw up to twice as many); no transaction and no new
 * connection fails; a long query of a client that stayed on the old
 * generation is cancelled through the new one (its workers read the old
 * workers' cancel keys); and the pool's transaction count goes on from the
 * old generation's (its workers' counters are taken over when they exit).
 */
START_TEST(test_upgrade_shared_segment)
{
	char pidfile[IT_PATH_MAX], log[IT_PATH_MAX], bench_out[IT_PATH_MAX], loop_out[IT_PATH_MAX];
	char mon_out[IT_PATH_MAX];
	const char *args[] = { "--pidfile", pidfile, NULL };
	static char out[65536];
	int port = it_free_port(), st, rc, ok = 0, failed = -1, max = -1, samples = 0;
	pid_t pid, next = 0, bench, loop, mon;
	long done, tx_failed, xacts_before, xacts_after;
	PGconn *slow;
	PGcancel *cancel;
	PGresult *res;
	char errbuf[256], *text, cancel_state[8];
	bool is_slow_ok;
	long long t0, cancel_ms;

	snprintf(pidfile, sizeof(pidfile), "%s/shared.pid", g_it.dir);
	snprintf(log, sizeof(log), "%s/pgdog-shared.log", g_it.dir);
	snprintf(bench_out, sizeof(bench_out), "%s/shared-bench.out", g_it.dir);
	snprintf(loop_out, sizeof(loop_out), "%s/shared-loop.out", g_it.dir);
	snprintf(mon_out, sizeof(mon_out), "%s/shared-mon.out", g_it.dir);
	pid = it_pgdog_spawn("shared",
			     &(struct it_pgdog_conf){ .workers = 2,
						      .users = SHARED_USERS,
						      .general = "pooler_mode = transaction\n"
								 "checkout_timeout = 10000\n"
								 "shutdown_timeout = 30000\n" },
			     port, args);
	g_it.port = port;
	ck_assert_msg(it_wait_port(port, 10000), "pgdog did not listen");
	ck_assert_msg(it_file_wait_for(pidfile, "\n", 5000), "no pidfile");
	rc = it_run_pgbench("-i -I dtGp -s 1 -q", 120, out, sizeof(out), NULL, NULL);
	ck_assert_msg(rc == 0, "pgbench -i exited %d:\n%s", rc, out);

	/* a client busy in a long query: it cannot move, it stays on the old generation */
	slow = PQconnectdb(it_pgdog_dsn(BENCH_DSN));
	ck_assert_msg(PQstatus(slow) == CONNECTION_OK, "%s", PQerrorMessage(slow));
	ck_assert_int_eq(PQsendQuery(slow, "SELECT pg_sleep(60)"), 1);

	mon = backend_monitor_start(mon_out, 9000);
	bench = pgbench_start("-M extended -c 50 -j 2 -T 8 -n", bench_out);
	it_sleep_ms(2500);
	loop = connect_loop_start(loop_out, 3000);
	xacts_before = bench_xacts();
	ck_assert_msg(xacts_before > 0, "SHOW STATS counted %ld transactions", xacts_before);
	ck_assert_int_eq(kill(pid, SIGUSR2), 0);
	next = next_supervisor(pidfile, pid);
	ck_assert_msg(next > 0 && next != pid, "the pidfile still names %d 10 s after SIGUSR2",
		      (int)pid);
	it_track_pid(next);

	/* the old generation no longer accepts: the cancel request reaches a new worker */
	it_sleep_ms(500);
	cancel = PQgetCancel(slow);
	ck_assert_ptr_nonnull(cancel);
	ck_assert_msg(PQcancel(cancel, errbuf, sizeof(errbuf)) == 1, "%s", errbuf);
	PQfreeCancel(cancel);
	/* checked at the end, after the figures of the whole run are printed */
	t0 = it_now_ms();
	res = PQgetResult(slow);
	cancel_ms = it_now_ms() - t0;
	snprintf(cancel_state, sizeof(cancel_state), "%s",
		 res && PQresultErrorField(res, PG_DIAG_SQLSTATE)
			 ? PQresultErrorField(res, PG_DIAG_SQLSTATE)
			 : "none");
	PQclear(res);
	while ((res = PQgetResult(slow)) != NULL)
		PQclear(res);

	st = it_wait_pid(loop, 30000);
	ck_assert_msg(st != -1, "connection loop did not finish");
	st = it_wait_pid(bench, 60000);
	ck_assert_msg(st != -1, "pgbench did not finish");
	text = it_read_file(bench_out);
	ck_assert_ptr_nonnull(text);
	done = it_number_after(text, "number of transactions actually processed: ");
	tx_failed = it_number_after(text, "number of failed transactions: ");
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "pgbench exited %d:\n%s",
		      WIFEXITED(st) ? WEXITSTATUS(st) : -1, text);
	ck_assert_msg(tx_failed == 0, "%ld failed transactions:\n%s", tx_failed, text);
	free(text);
	text = it_read_file(loop_out);
	ck_assert_ptr_nonnull(text);
	ck_assert_int_eq(sscanf(text, "ok %d failed %d", &ok, &failed), 2);
	ck_assert_msg(failed == 0, "%d of %d new connections failed during the upgrade: %s", failed,
		      ok + failed, text);
	free(text);
	ck_assert_msg(it_wait_pid(mon, 30000) != -1, "backend monitor did not finish");
	text = it_read_file(mon_out);
	ck_assert_ptr_nonnull(text);
	ck_assert_int_eq(sscanf(text, "max %d samples %d", &max, &samples), 2);
	free(text);

	/* the old generation is gone: its counters live on in the new one's */
	res = PQexec(slow, "SELECT 'after the cancel'");
	is_slow_ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	PQclear(res);
	PQfinish(slow);
	ck_assert_msg(it_wait_pid(pid, 30000) != -1, "old supervisor %d still running", (int)pid);
	for (int i = 0; i < 50; i++) {
		xacts_after = bench_xacts();
		if (xacts_after >= done)
			break;
		it_sleep_ms(100);
	}
	fprintf(stderr,
		"upgrade with a shared segment: pool_size %d, at most %d backends of the pool in %d samples during the upgrade; %ld transactions, %ld failed; %d new connections, %d failed; cancel through the new generation: SQLSTATE %s after %lld ms; SHOW STATS total_xact_count %ld before the upgrade, %ld after the old generation exited (pgbench counted %ld)\n",
		SHARED_POOL_SIZE, max, samples, done, tx_failed, ok + failed, failed, cancel_state,
		cancel_ms, xacts_before, xacts_after, done);
	fflush(stderr);
	ck_assert_msg(max <= SHARED_POOL_SIZE, "%d backends with pool_size = %d during the upgrade",
		      max, SHARED_POOL_SIZE);
	ck_assert_msg(max >= SHARED_POOL_SIZE - 2,
		      "only %d backends: pgbench did not fill the pool", max);
	ck_assert_msg(
		cancel_ms < 5000 && strcmp(cancel_state, "57014") == 0,
		"the cancel sent to the new generation did not reach the old one's query (%s after %lld ms)",
		cancel_state, cancel_ms);
	ck_assert_msg(is_slow_ok, "the cancelled client cannot run a query afterwards");
	ck_assert_msg(xacts_after >= done && xacts_after >= xacts_before,
		      "SHOW STATS: %ld transactions before the upgrade, %ld after; pgbench ran %ld",
		      xacts_before, xacts_after, done);
	ck_assert_msg(it_file_contains(log, "sharing the running pgdog's shared memory segment"),
		      "the new generation did not say it took the segment over");
	kill(next, SIGTERM);
	for (int i = 0; i < 250 && it_pid_alive(next); i++)
		it_sleep_ms(20);
	ck_assert_msg(!it_pid_alive(next), "new supervisor still running 5 s after SIGTERM");
}
END_TEST

/*
 * An idle client with session state crosses the upgrade on the same
 * connection: the old supervisor can only exit once its workers have no
 * client, so its exit while this connection still works proves the
 * handoff; the SET, the startup parameter, the named prepared statement and
 * the cancel key all work on the new generation.
 */
START_TEST(test_upgrade_session_handoff)
{
	char pidfile[IT_PATH_MAX], log[IT_PATH_MAX];
	const char *args[] = { "--pidfile", pidfile, NULL };
	int port = it_free_port();
	pid_t pid, next = 0;
	PGconn *c, *adm;
	PGresult *res;
	const char *vals[1] = { "41" };
	char errbuf[256];
	PGcancel *cancel;

	char general[128];

	/* with the metrics endpoint on: the next supervisor binds it while this one listens */
	snprintf(general, sizeof(general),
		 "pooler_mode = transaction\nopenmetrics_port = %d\nopenmetrics_host = 127.0.0.1\n",
		 it_free_port());
	snprintf(pidfile, sizeof(pidfile), "%s/session.pid", g_it.dir);
	snprintf(log, sizeof(log), "%s/pgdog-session.log", g_it.dir);
	pid = it_pgdog_spawn(
		"session",
		&(struct it_pgdog_conf){ .workers = 1, .users = BENCH_USERS, .general = general },
		port, args);
	g_it.port = port;
	ck_assert_msg(it_wait_port(port, 10000), "pgdog did not listen");
	ck_assert_msg(it_file_wait_for(pidfile, "\n", 5000), "no pidfile");

	c = PQconnectdb(it_pgdog_dsn(BENCH_DSN " application_name=handoff_app"));
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	PQclear(it_exec_ok(c, "SET work_mem = '3MB'"));
	res = PQprepare(c, "plus_one", "SELECT $1::int + 1", 1, NULL);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
	PQclear(res);

	adm = PQconnectdb(it_pgdog_dsn("dbname=admin user=admin password=pgdog"));
	ck_assert_msg(PQstatus(adm) == CONNECTION_OK, "%s", PQerrorMessage(adm));
	ck_assert_int_eq(strncmp(it_value(adm, "SHOW VERSION"), "pgdog ", 6), 0);

	kill(pid, SIGUSR2);
	ck_assert_msg(it_wait_pid(pid, 10000) != -1,
		      "the old supervisor did not exit: the idle client was not handed over");
	next = it_pidfile_pid(pidfile);
	it_track_pid(next);
	ck_assert_int_ne(next, pid);
	ck_assert_msg(it_file_wait_for(log, "login handed over from the previous generation", 2000),
		      "no adoption line");
	/*
	 * An admin console connection is not handed over (pgdog(8)): the old
	 * worker closed it (57P01) before it exited; a new one reaches the new
	 * generation.
	 */
	res = PQexec(adm, "SHOW VERSION");
	ck_assert_int_ne(PQresultStatus(res), PGRES_TUPLES_OK);
	PQclear(res);
	ck_assert_int_eq(PQstatus(adm), CONNECTION_BAD);
	PQfinish(adm);
	adm = PQconnectdb(it_pgdog_dsn("dbname=admin user=admin password=pgdog"));
	ck_assert_msg(PQstatus(adm) == CONNECTION_OK, "%s", PQerrorMessage(adm));
	ck_assert_int_eq(strncmp(it_value(adm, "SHOW VERSION"), "pgdog ", 6), 0);
	PQfinish(adm);

	/* the same connection, now served by the new generation */
	ck_assert_str_eq(it_value(c, "SHOW work_mem"), "3MB");
	ck_assert_str_eq(it_value(c, "SHOW application_name"), "handoff_app");
	res = PQexecPrepared(c, "plus_one", 1, vals, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK,
		      "prepared statement after the "
		      "handoff: %s",
		      PQerrorMessage(c));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "42");
	PQclear(res);

	/* its BackendKeyData from the old generation still cancels */
	ck_assert_int_eq(PQsendQuery(c, "SELECT pg_sleep(20)"), 1);
	it_sleep_ms(300);
	cancel = PQgetCancel(c);
	ck_assert_ptr_nonnull(cancel);
	ck_assert_msg(PQcancel(cancel, errbuf, sizeof(errbuf)) == 1, "%s", errbuf);
	PQfreeCancel(cancel);
	{
		long long t0 = it_now_ms();

		res = PQgetResult(c);
		ck_assert_msg(it_now_ms() - t0 < 5000, "the cancel did not reach the query");
		ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
		ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "57014");
		PQclear(res);
		while ((res = PQgetResult(c)) != NULL)
			PQclear(res);
	}
	ck_assert_str_eq(it_value(c, "SELECT 'still here'"), "still here");
	PQfinish(c);
	stop_supervisor(next);
}
END_TEST

/*
 * A session-mode client cannot be handed over: idle WK_DRAIN_IDLE_MS (1 s)
 * after the upgrade began it is closed with 57P01 and the old generation
 * exits, as pgdog(8) says (it stayed until shutdown_timeout, 10 s here).
 */
START_TEST(test_upgrade_session_mode_closed_idle)
{
	char pidfile[IT_PATH_MAX];
	const char *args[] = { "--pidfile", pidfile, NULL };
	int port = it_free_port();
	pid_t pid, next;
	PGconn *c;
	PGresult *res;
	long long t0;

	snprintf(pidfile, sizeof(pidfile), "%s/sessmode.pid", g_it.dir);
	pid = it_pgdog_spawn("sessmode",
			     &(struct it_pgdog_conf){ .workers = 1,
						      .users = BENCH_USERS,
						      .general = "pooler_mode = session\n"
								 "shutdown_timeout = 10000" },
			     port, args);
	g_it.port = port;
	ck_assert_msg(it_wait_port(port, 10000), "pgdog did not listen");
	ck_assert_msg(it_file_wait_for(pidfile, "\n", 5000), "no pidfile");
	c = PQconnectdb(it_pgdog_dsn(BENCH_DSN));
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	ck_assert_str_eq(it_value(c, "SELECT 'before'"), "before");
	t0 = it_now_ms();
	kill(pid, SIGUSR2);
	next = next_supervisor(pidfile, pid);
	ck_assert_msg(next > 0, "the pidfile still names %d 10 s after SIGUSR2", (int)pid);
	it_track_pid(next); /* stopped at the end even when the test fails */
	ck_assert_msg(
		it_wait_pid(pid, 6000) != -1,
		"the old supervisor still ran 6 s after SIGUSR2 with one idle session client");
	ck_assert_msg(it_now_ms() - t0 >= 900, "the idle client was closed after %lld ms",
		      it_now_ms() - t0);
	res = PQexec(c, "SELECT 1");
	ck_assert_int_ne(PQresultStatus(res), PGRES_TUPLES_OK);
	ck_assert_msg(strstr(PQerrorMessage(c), "administrator command") != NULL, "%s",
		      PQerrorMessage(c));
	PQclear(res);
	PQfinish(c);
	c = PQconnectdb(it_pgdog_dsn(BENCH_DSN));
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	ck_assert_str_eq(it_value(c, "SELECT 'after'"), "after");
	PQfinish(c);
	stop_supervisor(next);
}
END_TEST

/*
 * A client handed over to a new worker whose row of the same number is
 * taken (a client that logged in to the new generation first): it gets
 * another row but keeps its BackendKeyData, and a cancel request with it
 * still reaches its query (found by searching the rows for the key).
 */
START_TEST(test_upgrade_cancel_moved_row)
{
	char pidfile[IT_PATH_MAX], log[IT_PATH_MAX], errbuf[256];
	const char *args[] = { "--pidfile", pidfile, NULL };
	int port = it_free_port();
	pid_t pid, next = 0;
	PGconn *c, *d[4];
	PGresult *res;
	PGcancel *cancel;
	long long t0;

	snprintf(pidfile, sizeof(pidfile), "%s/moved.pid", g_it.dir);
	snprintf(log, sizeof(log), "%s/pgdog-moved.log", g_it.dir);
	pid = it_pgdog_spawn("moved",
			     &(struct it_pgdog_conf){ .workers = 1,
						      .users = BENCH_USERS,
						      .general = "pooler_mode = transaction\n" },
			     port, args);
	g_it.port = port;
	ck_assert_msg(it_wait_port(port, 10000), "pgdog did not listen");
	ck_assert_msg(it_file_wait_for(pidfile, "\n", 5000), "no pidfile");
	/* in a transaction: it cannot move until COMMIT */
	c = it_connect(BENCH_DSN);
	PQclear(it_exec_ok(c, "BEGIN"));
	kill(pid, SIGUSR2);
	next = next_supervisor(pidfile, pid);
	ck_assert_msg(next > 0 && next != pid, "no new supervisor in the pidfile");
	it_track_pid(next);
	/* once the old worker stopped accepting, the new worker's first row goes to a new client */
	ck_assert_msg(it_file_wait_for(log, "binary upgrade: no longer accepting", 5000),
		      "the old worker did not stop accepting");
	for (int i = 0; i < 4; i++) {
		/* rows 0-3: whichever c had in the old worker (the port probe may have had one) */
		d[i] = it_connect(BENCH_DSN);
		ck_assert_str_eq(it_value(d[i], "SELECT 1"), "1");
	}
	PQclear(it_exec_ok(c, "COMMIT"));
	ck_assert_msg(it_wait_pid(pid, 10000) != -1,
		      "the old supervisor did not exit: the client was not handed over");
	ck_assert_int_eq(PQsendQuery(c, "SELECT pg_sleep(20)"), 1);
	it_sleep_ms(300);
	cancel = PQgetCancel(c);
	ck_assert_ptr_nonnull(cancel);
	ck_assert_msg(PQcancel(cancel, errbuf, sizeof(errbuf)) == 1, "%s", errbuf);
	PQfreeCancel(cancel);
	t0 = it_now_ms();
	res = PQgetResult(c);
	ck_assert_msg(it_now_ms() - t0 < 5000, "the cancel did not reach the handed-over client");
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "57014");
	PQclear(res);
	while ((res = PQgetResult(c)) != NULL)
		PQclear(res);
	ck_assert_str_eq(it_value(c, "SELECT 'still here'"), "still here");
	PQfinish(c);
	for (int i = 0; i < 4; i++)
		PQfinish(d[i]);
	stop_supervisor(next);
}
END_TEST

/*
 * Upgrades alternate between the segment's two banks of worker slots: one
 * while the generation before last still finishes a client (in a
 * transaction) is refused with the reason (pgdog --upgrade exits 1) and
 * the serving generation goes on; once that client is done, the next one
 * works, back in the first bank (slots 0-0 with one worker).
 */
START_TEST(test_upgrade_refused_while_draining)
{
	char pidfile[IT_PATH_MAX], log[IT_PATH_MAX], out[4096];
	const char *args[] = { "--pidfile", pidfile, NULL };
	const char *cmd[] = { "pgdog", "--upgrade", "--pidfile", pidfile, NULL };
	int port = it_free_port(), rc;
	pid_t gen1, gen2 = 0, gen3;
	PGconn *c;

	snprintf(pidfile, sizeof(pidfile), "%s/draining.pid", g_it.dir);
	snprintf(log, sizeof(log), "%s/pgdog-draining.log", g_it.dir);
	gen1 = it_pgdog_spawn("draining",
			      &(struct it_pgdog_conf){ .workers = 1,
						       .users = BENCH_USERS,
						       .general = "pooler_mode = transaction\n" },
			      port, args);
	g_it.port = port;
	ck_assert_msg(it_wait_port(port, 10000), "pgdog did not listen");
	ck_assert_msg(it_file_wait_for(pidfile, "\n", 5000), "no pidfile");
	c = it_connect(BENCH_DSN);
	PQclear(it_exec_ok(c, "BEGIN"));
	kill(gen1, SIGUSR2);
	gen2 = next_supervisor(pidfile, gen1);
	ck_assert_msg(gen2 > 0 && gen2 != gen1, "no second generation");
	it_track_pid(gen2);
	ck_assert(it_file_contains(log, "workers take slots 1-1"));
	/* gen1's worker still runs the transaction: bank 0 is not free */
	rc = it_pgdog_run(cmd, out, sizeof(out), 40000);
	ck_assert_msg(rc == 1 && strstr(out, "the previous binary upgrade has not finished"),
		      "upgrade while the generation before last drains: %d: %s", rc, out);
	ck_assert_int_eq(it_pidfile_pid(pidfile), gen2);
	ck_assert(it_file_contains(log, "binary upgrade refused, this generation keeps serving"));
	PQclear(it_exec_ok(c, "COMMIT"));
	ck_assert_msg(it_wait_pid(gen1, 10000) != -1, "the first generation did not exit");
	rc = it_pgdog_run(cmd, out, sizeof(out), 40000);
	gen3 = it_pidfile_pid(pidfile);
	if (gen3 > 0 && gen3 != gen2)
		it_track_pid(gen3); /* stopped at the end, also when the checks below fail */
	ck_assert_msg(rc == 0, "third generation: %d: %s", rc, out);
	ck_assert_int_ne(gen3, gen2);
	ck_assert(it_file_contains(log, "workers take slots 0-0"));
	/* the client moved twice and still works */
	for (int i = 0; i < 500 && it_pid_alive(gen2); i++)
		it_sleep_ms(20);
	ck_assert_msg(!it_pid_alive(gen2), "the second generation did not exit");
	ck_assert_str_eq(it_value(c, "SELECT 'third'"), "third");
	PQfinish(c);
	stop_supervisor(gen3);
}
END_TEST

/*
 * A generation that SIGUSR2 reached without `pgdog --upgrade` answers after
 * the pidfile names its successor. That late answer ("ok <successor>") took
 * the place of the successor's own answer to a `pgdog --upgrade` run right
 * then, which waited its 35 s and failed with "no answer" (seen once under
 * load in test_upgrade_refused_while_draining). t/lib/upgrade_delay.c makes
 * the old answer 3 s late, and the command look for its answer 5 s after its
 * SIGUSR2 and every 5 s.
 * Unread answers of generations that have exited are removed by the next
 * `pgdog --upgrade`.
 */
START_TEST(test_upgrade_late_answer)
{
	char pidfile[IT_PATH_MAX], log[IT_PATH_MAX], so[IT_PATH_MAX], old_answer[IT_PATH_MAX + 32];
	char out[4096];
	char asan[1088], asan_was[1024];
	const char *args[] = { "--pidfile", pidfile, NULL };
	const char *cmd[] = { "pgdog", "--upgrade", "--pidfile", pidfile, NULL };
	const char *dir = getenv("PGDOG_BUILDDIR");
	int port = it_free_port(), rc;
	bool had_asan = getenv("ASAN_OPTIONS") != NULL;
	long long t0;
	pid_t gen1, gen2, gen3;
	PGconn *c;

	snprintf(pidfile, sizeof(pidfile), "%s/late.pid", g_it.dir);
	snprintf(log, sizeof(log), "%s/pgdog-late.log", g_it.dir);
	snprintf(so, sizeof(so), "%s/t/lib/upgrade_delay.so", dir ? dir : ".");
	ck_assert_msg(access(so, R_OK) == 0, "%s: %s (make builds it)", so, strerror(errno));
	snprintf(asan_was, sizeof(asan_was), "%s", had_asan ? getenv("ASAN_OPTIONS") : "");
	/* a sanitizer build wants its runtime first in the list: this library comes before it */
	snprintf(asan, sizeof(asan), "%s%sverify_asan_link_order=0", asan_was, had_asan ? ":" : "");
	setenv("ASAN_OPTIONS", asan, 1);
	setenv("LD_PRELOAD", so, 1);
	setenv("PGDOG_TEST_UPGRADE_OK_DELAY_MS", "3000", 1);
	gen1 = it_pgdog_spawn("late",
			      &(struct it_pgdog_conf){ .workers = 1,
						       .users = BENCH_USERS,
						       .general = "pooler_mode = transaction\n" },
			      port, args);
	unsetenv("PGDOG_TEST_UPGRADE_OK_DELAY_MS");
	g_it.port = port;
	ck_assert_msg(it_wait_port(port, 10000), "pgdog did not listen");
	ck_assert_msg(it_file_wait_for(pidfile, "\n", 5000), "no pidfile");
	c = it_connect(BENCH_DSN);
	PQclear(it_exec_ok(c, "BEGIN")); /* gen1 drains: gen2 refuses the next upgrade */
	kill(gen1, SIGUSR2);
	gen2 = next_supervisor(pidfile, gen1);
	ck_assert_msg(gen2 > 0 && gen2 != gen1, "no second generation");
	it_track_pid(gen2);
	/* gen2 is ready (gen1's answer comes 3 s after this) */
	ck_assert_msg(it_file_wait_for(log, "workers take slots 1-1", 5000), "gen2 not ready");
	setenv("PGDOG_TEST_UPGRADE_POLL_MS", "5000", 1);
	t0 = it_now_ms();
	rc = it_pgdog_run(cmd, out, sizeof(out), 40000);
	unsetenv("PGDOG_TEST_UPGRADE_POLL_MS");
	unsetenv("LD_PRELOAD");
	if (had_asan)
		setenv("ASAN_OPTIONS", asan_was, 1);
	else
		unsetenv("ASAN_OPTIONS");
	ck_assert_msg(rc == 1 && strstr(out, "the previous binary upgrade has not finished"),
		      "upgrade while gen1's late answer comes: %d after %lld ms: %s", rc,
		      it_now_ms() - t0, out);
	PQclear(it_exec_ok(c, "COMMIT"));
	ck_assert_msg(it_wait_pid(gen1, 10000) != -1, "the first generation did not exit");
	snprintf(old_answer, sizeof(old_answer), "%s.upgrade.%d", pidfile, (int)gen1);
	ck_assert_msg(access(old_answer, F_OK) == 0, "%s: gen1's answer is not there", old_answer);
	rc = it_pgdog_run(cmd, out, sizeof(out), 40000);
	gen3 = it_pidfile_pid(pidfile);
	if (gen3 > 0 && gen3 != gen2)
		it_track_pid(gen3); /* stopped at the end, also when the checks below fail */
	ck_assert_msg(rc == 0, "third generation: %d: %s", rc, out);
	ck_assert_msg(access(old_answer, F_OK) != 0, "%s: gen1's answer is still there",
		      old_answer);
	for (int i = 0; i < 500 && it_pid_alive(gen2); i++)
		it_sleep_ms(20);
	ck_assert_str_eq(it_value(c, "SELECT 'third'"), "third");
	PQfinish(c);
	stop_supervisor(gen3);
}
END_TEST

/*
 * The upgrade runs the file now at the path pgdog was started from: a
 * package manager renames the new binary over the old one.
 */
START_TEST(test_upgrade_replaced_binary)
{
	char bin[IT_PATH_MAX], real[IT_PATH_MAX * 2], pidfile[IT_PATH_MAX], marker[IT_PATH_MAX];
	char script[IT_PATH_MAX * 6], tmp[IT_PATH_MAX], cmd[IT_PATH_MAX * 4];
	const char *args[] = { "--pidfile", pidfile, NULL };
	int port = it_free_port();
	pid_t pid, next = 0;

	snprintf(bin, sizeof(bin), "%s/bin", g_it.dir);
	ck_assert_int_eq(mkdir(bin, 0755), 0);
	snprintf(bin, sizeof(bin), "%s/bin/pgdog", g_it.dir);
	snprintf(tmp, sizeof(tmp), "%s/bin/pgdog.new", g_it.dir);
	snprintf(pidfile, sizeof(pidfile), "%s/replaced.pid", g_it.dir);
	snprintf(marker, sizeof(marker), "%s/replaced.marker", g_it.dir);
	if (it_pgdog_bin()[0] == '/') {
		snprintf(real, sizeof(real), "%s", it_pgdog_bin());
	} else {
		char cwd[IT_PATH_MAX];

		ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
		snprintf(real, sizeof(real), "%s/%s", cwd, it_pgdog_bin());
	}
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", real, bin);
	ck_assert_int_eq(system(cmd), 0);
	setenv("PGDOG_BIN", bin, 1);
	pid = it_pgdog_spawn("replaced",
			     &(struct it_pgdog_conf){ .workers = 1, .users = BENCH_USERS }, port,
			     args);
	unsetenv("PGDOG_BIN");
	g_it.port = port;
	ck_assert_msg(it_wait_port(port, 10000), "pgdog did not listen");
	ck_assert_msg(it_file_wait_for(pidfile, "\n", 5000), "no pidfile");

	/* "the new version": a wrapper that leaves a mark, then runs pgdog */
	snprintf(script, sizeof(script), "#!/bin/sh\necho replaced > '%s'\nexec '%s' \"$@\"\n",
		 marker, real);
	it_write_file(tmp, script);
	ck_assert_int_eq(chmod(tmp, 0755), 0);
	ck_assert_int_eq(rename(tmp, bin), 0);

	kill(pid, SIGUSR2);
	next = next_supervisor(pidfile, pid);
	ck_assert_msg(next > 0 && next != pid, "no new supervisor in the pidfile");
	it_track_pid(next);
	ck_assert_msg(access(marker, F_OK) == 0, "the upgrade did not run the replaced file");
	ck_assert_msg(it_wait_pid(pid, 10000) != -1, "old supervisor still running");
	select_through(BENCH_DSN, "after upgrading to the replaced binary");
	stop_supervisor(next);
}
END_TEST

static Suite *
upgrade_suite(void)
{
	Suite *s = suite_create("upgrade");
	TCase *tc = tcase_create("upgrade");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_upgrade_under_load);
	tcase_add_test(tc, test_upgrade_shared_segment);
	tcase_add_test(tc, test_upgrade_session_handoff);
	tcase_add_test(tc, test_upgrade_session_mode_closed_idle);
	tcase_add_test(tc, test_upgrade_cancel_moved_row);
	tcase_add_test(tc, test_upgrade_refused_while_draining);
	tcase_add_test(tc, test_upgrade_late_answer);
	tcase_add_test(tc, test_upgrade_replaced_binary);
	tcase_add_test(tc, test_upgrade_refused_config);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return it_run_suite(upgrade_suite());
}
