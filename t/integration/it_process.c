/*
 * it_process.c: pgdog as a set of processes: cancel requests across workers,
 * forged cancel keys, a worker killed with SIGKILL, SIGHUP with a broken and
 * a valid configuration, SIGINT (graceful) and SIGTERM (fast), the Unix
 * socket (psql), --check-config and --daemon --pidfile.
 */
#include "t/lib/it.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define APP   "dbname=app user=app password=app_pw"
#define USERS "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 20\n"

static void
setup_named(const char *name)
{
	it_env_start(name);
	it_pg_start(NULL);
	it_pg_role("app", "app_pw", "scram-sha-256");
	it_pg_role("app2", "app2_pw", "scram-sha-256");
	it_pg_hba("host all app 127.0.0.1/32 scram-sha-256\n"
		  "host all app2 127.0.0.1/32 scram-sha-256");
	it_pgdog_start(&(struct it_pgdog_conf){ .workers = 2, .users = USERS });
}

static void
setup_cancel(void)
{
	setup_named("cancel");
}

static void
setup_kill(void)
{
	setup_named("worker_kill");
}

static void
setup_signals(void)
{
	setup_named("signals");
}

static void
teardown(void)
{
	it_env_stop();
}

/*
 * Wait up to timeout_ms for the result of a query sent with PQsendQuery;
 * returns it (NULL on timeout). Drains the trailing NULL.
 */
static PGresult *
result_within(PGconn *c, int timeout_ms)
{
	long long end = it_now_ms() + timeout_ms;
	PGresult *res, *extra;

	while (PQisBusy(c)) {
		struct pollfd pfd = { .fd = PQsocket(c), .events = POLLIN };
		int left = (int)(end - it_now_ms());

		if (left <= 0)
			return NULL;
		poll(&pfd, 1, left);
		if (PQconsumeInput(c) == 0)
			break;
	}
	res = PQgetResult(c);
	while (res != NULL && (extra = PQgetResult(c)) != NULL)
		PQclear(extra);
	return res;
}

/* ---- cancel ------------------------------------------------------------- */

#define CANCELS 10

START_TEST(test_process_cancel_across_workers)
{
	PGconn *c[CANCELS];
	char err[256];

	for (int i = 0; i < CANCELS; i++) {
		c[i] = it_connect(APP);
		ck_assert_int_eq(PQsendQuery(c[i], "SELECT pg_sleep(30)"), 1);
	}
	it_sleep_ms(500);
	for (int i = 0; i < CANCELS; i++) {
		PGcancel *cn = PQgetCancel(c[i]);
		long long t0 = it_now_ms();
		PGresult *res;
		const char *st;

		ck_assert_ptr_nonnull(cn);
		ck_assert_msg(PQcancel(cn, err, sizeof(err)) == 1, "PQcancel #%d: %s", i, err);
		PQfreeCancel(cn);
		res = result_within(c[i], 5000);
		ck_assert_msg(res != NULL, "cancel #%d: the query still runs after 5 s", i);
		st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		ck_assert_msg(st != NULL && strcmp(st, "57014") == 0,
			      "cancel #%d after %lld ms: %s, SQLSTATE %s", i, it_now_ms() - t0,
			      PQresStatus(PQresultStatus(res)), st != NULL ? st : "(none)");
		PQclear(res);
	}
	/* the sessions go on */
	for (int i = 0; i < CANCELS; i++) {
		ck_assert_str_eq(it_value(c[i], "SELECT 'alive'"), "alive");
		PQfinish(c[i]);
	}
}
END_TEST

static void
send_cancel(int port, uint32_t pid, uint32_t key)
{
	int fd = it_raw_connect(port);
	uint32_t pkt[4] = { htonl(16), htonl(80877102), htonl(pid), htonl(key) };

	ck_assert_int_eq(it_raw_send(fd, pkt, sizeof(pkt)), 0);
	ck_assert_msg(it_raw_wait_closed(fd, 3000), "pgdog kept a cancel connection open");
	close(fd);
}

START_TEST(test_process_forged_cancel)
{
	PGconn *c = it_connect(APP);
	int real = atoi(it_value(c, "SELECT pg_backend_pid()"));
	int fake = PQbackendPID(c);
	PGresult *res;

	ck_assert_int_eq(PQsendQuery(c, "SELECT pg_sleep(1.5), 'finished'"), 1);
	it_sleep_ms(200);
	for (uint32_t k = 0; k < 8; k++) {
		send_cancel(g_it.port, (uint32_t)fake, 0x5eed0000u + k * 7919u);
		send_cancel(g_it.port, (uint32_t)real, 0x5eed0000u + k * 7919u);
	}
	res = result_within(c, 5000);
	ck_assert_msg(res != NULL, "no result within 5 s");
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK,
		      "a forged cancel key stopped the query: %s", PQerrorMessage(c));
	ck_assert_str_eq(PQgetvalue(res, 0, 1), "finished");
	PQclear(res);
	PQfinish(c);
}
END_TEST

/* ---- a worker killed ------------------------------------------------------ */

#define HELD     10 /* at least this many sessions... */
#define HELD_MAX 40 /* ...and more until both workers hold some */

START_TEST(test_process_kill_worker)
{
	PGconn *c[HELD_MAX];
	pid_t before[8], after[8];
	int nb, na, held, survived = 0;
	long long end;
	bool replaced = false;

	held = it_connect_spread(APP, "app", c, HELD, HELD_MAX);
	for (int i = 0; i < held; i++)
		ck_assert_str_eq(it_value(c[i], "SELECT 1"), "1");
	nb = it_children(g_it.pid, before, 8);
	ck_assert_msg(nb == 2, "pgdog has %d worker processes, expected 2", nb);
	ck_assert_int_eq(kill(before[0], SIGKILL), 0);
	it_sleep_ms(300);

	for (int i = 0; i < held; i++) {
		PGresult *res = PQexec(c[i], "SELECT 'still here'");

		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			ck_assert_str_eq(PQgetvalue(res, 0, 0), "still here");
			survived++;
		}
		PQclear(res);
		PQfinish(c[i]);
	}
	ck_assert_msg(survived >= 1 && survived < held,
		      "%d of %d sessions survived killing one of two workers", survived, held);
	ck_assert_msg(it_pid_alive(g_it.pid), "the supervisor died with its worker");

	/* new clients get in within 2 s */
	end = it_now_ms() + 2000;
	for (int ok = 0; ok < 6;) {
		PGconn *n = PQconnectdb(it_pgdog_dsn(APP));

		if (PQstatus(n) == CONNECTION_OK) {
			PGresult *res = PQexec(n, "SELECT 1");
			if (PQresultStatus(res) == PGRES_TUPLES_OK)
				ok++;
			PQclear(res);
		}
		PQfinish(n);
		ck_assert_msg(it_now_ms() < end, "only %d new clients served 2 s after the kill",
			      ok);
	}
	/* the worker is replaced (about a second) */
	end = it_now_ms() + 3000;
	while (it_now_ms() < end && !replaced) {
		na = it_children(g_it.pid, after, 8);
		replaced = na == 2 && after[0] != before[0] && after[1] != before[0];
		if (!replaced)
			it_sleep_ms(100);
	}
	ck_assert_msg(replaced, "the killed worker %d was not replaced within 3 s", (int)before[0]);
	/* and the pool recovered its capacity: 20 clients at once */
	{
		PGconn *m[20];
		for (int i = 0; i < 20; i++) {
			m[i] = it_connect(APP);
			ck_assert_str_eq(it_value(m[i], "SELECT 1"), "1");
		}
		for (int i = 0; i < 20; i++)
			PQfinish(m[i]);
	}
}
END_TEST

/* ---- signals, files ------------------------------------------------------- */

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	static char buf[16384];
	size_t n;

	ck_assert_msg(f != NULL, "open %s", path);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return strdup(buf);
}

START_TEST(test_process_sighup_broken_config)
{
	PGconn *c = it_connect(APP), *n;
	pid_t before[8], after[8];
	int nb, na;
	char *good = slurp(g_it.ini_path);

	ck_assert_str_eq(it_value(c, "SELECT 1"), "1");
	nb = it_children(g_it.pid, before, 8);
	it_write_file(g_it.ini_path,
		      "[general]\nport = not-a-number\nworkers = -3\n[databases.app\n");
	ck_assert_int_eq(kill(g_it.pid, SIGHUP), 0);
	it_sleep_ms(800);
	ck_assert_msg(it_pid_alive(g_it.pid), "pgdog died on SIGHUP with a broken config");
	ck_assert_str_eq(it_value(c, "SELECT 'kept'"), "kept");
	n = it_connect(APP);
	ck_assert_str_eq(it_value(n, "SELECT 2"), "2");
	PQfinish(n);
	na = it_children(g_it.pid, after, 8);
	ck_assert_int_eq(na, nb);
	for (int i = 0; i < na; i++)
		ck_assert_msg(after[i] == before[i], "workers were restarted by a failed reload");
	it_write_file(g_it.ini_path, good);
	free(good);
	PQfinish(c);
}
END_TEST

/*
 * SIGHUP with a valid new file: the supervisor re-reads and validates it,
 * says what changed, and the workers apply it: no connection is dropped, no
 * worker restarts, and the new user is served at once (it_reload.c tests
 * reload semantics in depth).
 */
START_TEST(test_process_sighup_reload)
{
	PGconn *c = it_connect(APP);
	char users[512];
	pid_t before[8], after[8];
	int nb, na;
	long long end;

	ck_assert_str_eq(it_value(c, "SELECT 1"), "1");
	nb = it_children(g_it.pid, before, 8);
	ck_assert_int_ge(nb, 1);
	snprintf(users, sizeof(users),
		 "%s\n[users.app2]\ndatabase = app\npassword = app2_pw\n\n"
		 "[admin]\nname = admin\nuser = admin\npassword = pgdog\n",
		 USERS);
	it_write_file(g_it.users_path, users);
	ck_assert_int_eq(kill(g_it.pid, SIGHUP), 0);
	end = it_now_ms() + 5000;
	while (!it_log_contains("configuration reloaded")) {
		ck_assert_msg(it_now_ms() < end, "no reload outcome logged 5 s after SIGHUP");
		it_sleep_ms(100);
	}
	ck_assert_msg(it_log_contains("users.app2 (added)"),
		      "the reload log does not name the change");
	ck_assert_msg(it_log_contains("applied"), "the reload log does not say it was applied");
	/* the old client was not dropped, and no worker was restarted */
	ck_assert_str_eq(it_value(c, "SELECT 'kept'"), "kept");
	na = it_children(g_it.pid, after, 8);
	ck_assert_int_eq(na, nb);
	for (int i = 0; i < nb; i++) {
		bool found = false;

		for (int j = 0; j < na; j++)
			found = found || before[i] == after[j];
		ck_assert_msg(found, "worker %d was replaced by the reload", (int)before[i]);
	}
	it_sleep_ms(300); /* the workers apply it right after the supervisor logs it */
	{
		PGconn *n = it_connect("dbname=app user=app2 password=app2_pw");

		ck_assert_str_eq(it_value(n, "SELECT 'new user'"), "new user");
		PQfinish(n);
	}
	PQfinish(c);
}
END_TEST

static const char *
psql_bin(void)
{
	static const char *cands[] = { "/usr/lib/postgresql/15/bin/psql", "/usr/bin/psql" };

	for (size_t i = 0; i < 2; i++)
		if (access(cands[i], X_OK) == 0)
			return cands[i];
	ck_abort_msg("psql not found (install postgresql-client)");
	return NULL;
}

START_TEST(test_process_unix_socket)
{
	char cmd[2048], out[256] = "";
	char sock[IT_PATH_MAX];
	FILE *p;
	int st;

	snprintf(sock, sizeof(sock), "%s/.s.PGSQL.%d", g_it.dir, g_it.port);
	ck_assert_msg(access(sock, F_OK) == 0, "no Unix socket %s", sock);
	snprintf(
		cmd, sizeof(cmd),
		"PGPASSWORD=app_pw PGCONNECT_TIMEOUT=5 %s -X -A -t -h '%s' -p %d -U app -d app "
		"-c \"SELECT 'via ' || coalesce(inet_client_addr()::text, 'unix') || ' ' || 42\" 2>&1",
		psql_bin(), g_it.dir, g_it.port);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	if (fgets(out, sizeof(out), p) == NULL)
		out[0] = '\0';
	st = pclose(p);
	out[strcspn(out, "\n")] = '\0';
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "psql over the Unix socket: %s", out);
	ck_assert_msg(strncmp(out, "via ", 4) == 0 && strstr(out, " 42") != NULL,
		      "psql printed: %s", out);
	/* the admin console is reached through the Unix socket too, and lists every worker */
	snprintf(cmd, sizeof(cmd),
		 "PGPASSWORD=pgdog PGCONNECT_TIMEOUT=5 %s -X -A -t -h '%s' -p %d -U admin -d admin "
		 "-c 'SHOW PEERS' 2>&1",
		 psql_bin(), g_it.dir, g_it.port);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	{
		int rows = 0;

		while (fgets(out, sizeof(out), p) != NULL)
			rows += strncmp(out, "127.0.0.1:", 10) == 0 && strchr(out, '|') != NULL;
		st = pclose(p);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			      "psql admin over the Unix socket: %s", out);
		ck_assert_msg(rows == g_it.workers,
			      "SHOW PEERS over the Unix socket: %d rows, want %d", rows,
			      g_it.workers);
	}
}
END_TEST

START_TEST(test_process_check_config)
{
	char out[4096], bad[IT_PATH_MAX];
	const char *ok_argv[] = { "pgdog",          "-c", g_it.ini_path, "-u", g_it.users_path,
				  "--check-config", NULL };
	const char *bad_argv[] = {
		"pgdog", "-c", bad, "-u", g_it.users_path, "--check-config", NULL
	};
	int rc;

	rc = it_pgdog_run(ok_argv, out, sizeof(out), 10000);
	ck_assert_msg(rc == 0, "--check-config on a good file: exit %d: %s", rc, out);
	snprintf(bad, sizeof(bad), "%s/bad.ini", g_it.dir);
	it_write_file(bad, "[general]\nport = 70000\n\n[databases.app]\nhost = 127.0.0.1\n");
	rc = it_pgdog_run(bad_argv, out, sizeof(out), 10000);
	ck_assert_msg(rc == 1, "--check-config on a bad file: exit %d (expected 1): %s", rc, out);
	ck_assert_msg(strstr(out, "port") != NULL, "the error does not name the key: %s", out);
}
END_TEST

static pid_t
read_pidfile(const char *path, int timeout_ms)
{
	long long end = it_now_ms() + timeout_ms;

	for (;;) {
		FILE *f = fopen(path, "r");
		int pid = 0;

		if (f != NULL) {
			if (fscanf(f, "%d", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		if (pid > 0)
			return pid;
		if (it_now_ms() >= end)
			return 0;
		it_sleep_ms(50);
	}
}

static void
stop_by_pid(pid_t pid)
{
	kill(pid, SIGTERM);
	for (int i = 0; i < 250 && it_pid_alive(pid); i++)
		it_sleep_ms(20);
	if (it_pid_alive(pid))
		kill(pid, SIGKILL);
}

START_TEST(test_process_daemon)
{
	char pidfile[IT_PATH_MAX], dsn[256];
	const char *args[] = { "--daemon", "--pidfile", pidfile, NULL };
	int port = it_free_port();
	pid_t starter, daemon_pid, kids[8];
	int st, nk;
	PGconn *c;

	snprintf(pidfile, sizeof(pidfile), "%s/daemon.pid", g_it.dir);
	starter = it_pgdog_spawn("daemon", &(struct it_pgdog_conf){ .workers = 2, .users = USERS },
				 port, args);
	st = it_wait_pid(starter, 5000);
	ck_assert_msg(st != -1, "pgdog --daemon did not return within 5 s");
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "pgdog --daemon exited with %d",
		      WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	daemon_pid = read_pidfile(pidfile, 5000);
	ck_assert_msg(daemon_pid > 0, "no pid in %s", pidfile);
	it_track_pid(daemon_pid);
	ck_assert_msg(it_pid_alive(daemon_pid), "the pid in the pidfile (%d) is not running",
		      (int)daemon_pid);
	ck_assert_int_ne(daemon_pid, starter);
	ck_assert_msg(getsid(daemon_pid) == daemon_pid || getsid(daemon_pid) != getsid(0),
		      "the daemon did not leave our session");
	ck_assert_msg(it_wait_port(port, 10000), "daemon does not listen on %d", port);
	snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%d connect_timeout=5 %s", port, APP);
	c = PQconnectdb(dsn);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "through the daemon: %s", PQerrorMessage(c));
	ck_assert_str_eq(it_value(c, "SELECT 'daemon'"), "daemon");
	PQfinish(c);
	nk = it_children(daemon_pid, kids, 8);
	ck_assert_int_eq(nk, 2);
	stop_by_pid(daemon_pid);
	for (int i = 0; i < nk; i++) {
		for (int j = 0; j < 250 && it_pid_alive(kids[i]); j++)
			it_sleep_ms(20);
		if (it_pid_alive(kids[i])) {
			kill(kids[i], SIGKILL);
			ck_abort_msg("worker %d outlived its supervisor by 5 s", (int)kids[i]);
		}
	}
}
END_TEST

/* pgdog, sent SIGINT, exits with status 0 within ms once its clients have gone. */
static void
wait_sigint_exit(pid_t pid, int ms)
{
	int st = it_wait_pid(pid, ms);

	if (st == -1) {
		kill(pid, SIGKILL);
		it_wait_pid(pid, 2000);
		ck_abort_msg("pgdog still running %d ms after SIGINT with no clients left", ms);
	}
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGINT: exit status %d",
		      WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

START_TEST(test_process_sigint_graceful)
{
	int port = it_free_port();
	pid_t pid = it_pgdog_spawn("graceful",
				   &(struct it_pgdog_conf){ .workers = 2,
							    .users = USERS,
							    .general = "shutdown_timeout = 5000" },
				   port, NULL);
	char dsn[256];
	PGconn *c;
	PGresult *res;

	ck_assert_msg(it_wait_port(port, 10000), "pgdog did not listen on %d", port);
	snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%d connect_timeout=5 %s", port, APP);
	c = PQconnectdb(dsn);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	ck_assert_int_eq(PQsendQuery(c, "SELECT pg_sleep(1), 'finished'"), 1);
	it_sleep_ms(300);
	ck_assert_int_eq(kill(pid, SIGINT), 0);
	res = result_within(c, 5000);
	ck_assert_msg(res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK,
		      "SIGINT interrupted a running query: %s", PQerrorMessage(c));
	ck_assert_str_eq(PQgetvalue(res, 0, 1), "finished");
	PQclear(res);
	PQfinish(c);
	wait_sigint_exit(pid, 8000);
}
END_TEST

/*
 * SIGINT with a request queued on one worker while the pool's only server
 * is in a transaction on the other: once that transaction ends, the queued
 * request runs, as it does when both are on one worker. (The worker that
 * queued it opened no server while shutting down: it waited until
 * checkout_timeout and got 53300.)
 */
START_TEST(test_process_sigint_queued_elsewhere)
{
	int port = it_free_port();
	pid_t pid = it_pgdog_spawn(
		"graceful_queued",
		&(struct it_pgdog_conf){
			.workers = 2,
			.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 1\n",
			.general = "shutdown_timeout = 8000\ncheckout_timeout = 3000" },
		port, NULL);
	char dsn[256];
	PGconn *adm, *x, *q;
	PGresult *res;

	ck_assert_msg(it_wait_port(port, 10000), "pgdog did not listen on %d", port);
	snprintf(dsn, sizeof(dsn), "port=%d dbname=admin user=admin password=pgdog", port);
	adm = it_connect(dsn);
	snprintf(dsn, sizeof(dsn), "port=%d %s", port, APP);
	x = it_connect_on(adm, dsn, 0);
	q = it_connect_on(adm, dsn, 1);
	PQfinish(adm);
	PQclear(it_exec_ok(x, "BEGIN"));
	PQclear(it_exec_ok(x, "SELECT 1"));
	ck_assert_int_eq(PQsendQuery(q, "SELECT 'queued'"), 1);
	it_sleep_ms(200);
	ck_assert_int_eq(kill(pid, SIGINT), 0);
	it_sleep_ms(500);
	PQclear(it_exec_ok(x, "COMMIT"));
	res = result_within(q, 2000);
	ck_assert_msg(res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK,
		      "the queued request during SIGINT: %s", PQerrorMessage(q));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "queued");
	PQclear(res);
	PQfinish(q);
	PQfinish(x);
	wait_sigint_exit(pid, 10000);
}
END_TEST

START_TEST(test_process_sigterm_fast)
{
	int port = it_free_port();
	pid_t pid = it_pgdog_spawn("fast", &(struct it_pgdog_conf){ .workers = 2, .users = USERS },
				   port, NULL);
	char dsn[256];
	PGconn *c;
	PGresult *res;
	int st;
	long long t0;

	ck_assert_msg(it_wait_port(port, 10000), "pgdog did not listen on %d", port);
	snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%d connect_timeout=5 %s", port, APP);
	c = PQconnectdb(dsn);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	ck_assert_int_eq(PQsendQuery(c, "SELECT pg_sleep(20)"), 1);
	it_sleep_ms(300);
	t0 = it_now_ms();
	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	st = it_wait_pid(pid, 3000);
	if (st == -1) {
		kill(pid, SIGKILL);
		it_wait_pid(pid, 2000);
		ck_abort_msg("pgdog still running 3 s after SIGTERM");
	}
	res = result_within(c, 3000);
	ck_assert_msg(res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK,
		      "a 20 s query completed after a fast shutdown");
	PQclear(res);
	PQfinish(c);
	ck_assert_msg(it_now_ms() - t0 < 3000, "fast shutdown took %lld ms", it_now_ms() - t0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("it_process");
	TCase *tc;

	tc = tcase_create("cancel");
	tcase_add_unchecked_fixture(tc, setup_cancel, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_process_cancel_across_workers);
	tcase_add_test(tc, test_process_forged_cancel);
	suite_add_tcase(s, tc);

	tc = tcase_create("worker_kill");
	tcase_add_unchecked_fixture(tc, setup_kill, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_process_kill_worker);
	suite_add_tcase(s, tc);

	tc = tcase_create("signals");
	tcase_add_unchecked_fixture(tc, setup_signals, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_process_sighup_broken_config);
	tcase_add_test(tc, test_process_sighup_reload);
	tcase_add_test(tc, test_process_unix_socket);
	tcase_add_test(tc, test_process_check_config);
	tcase_add_test(tc, test_process_daemon);
	tcase_add_test(tc, test_process_sigint_graceful);
	tcase_add_test(tc, test_process_sigint_queued_elsewhere);
	tcase_add_test(tc, test_process_sigterm_fast);
	suite_add_tcase(s, tc);

	return it_run_suite(s);
}
