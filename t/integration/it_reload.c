/*
 * it_reload.c: live reload applied by the workers.
 * Under load: 20 reloads (admin RELOAD and SIGHUP, alternating) between two
 * valid configurations that change an unrelated pool and add/remove a pool,
 * while `pgbench -c 20 -T 10` runs in transaction mode on an unchanged pool:
 * no failed transaction, no dropped client, and none of the unchanged pool's
 * PostgreSQL backends is closed (no reconnect).
 * Then: a bad file is refused with its reason and changes nothing; a new
 * database is served after a reload; a removed one is refused (3D000), its
 * idle client is closed (57P01) and a client in a transaction finishes it
 * first; a changed password is the one that works; a port change is
 * reported as needing a restart and not applied; a worker restarted after a
 * reload serves the reloaded configuration; a pool shrunk under load keeps
 * its new global size.
 * Started with one pool: a reload to 200 more pools works (the segment
 * reserves the room; memory use is printed), one beyond the segment's room
 * is refused by RELOAD with the reason; a pooler_mode change applies to new
 * clients only, a session client keeps its session.
 */
#include "t/lib/it.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADMIN   "dbname=admin user=admin password=pgdog"
#define RELOADS 20

static char dbs_base[512];
static int bench_pool_size = 20;

/* users.ini: app, bench (the pool under load), other (changed by the loop), extra lines */
static void
write_users(const char *app_pw, int other_pool_size, const char *extra)
{
	char text[2048];

	snprintf(text, sizeof(text),
		 "[users.app]\ndatabase = app\npassword = %s\n"
		 "[users.bench]\ndatabase = app\npassword = bench_pw\npool_size = %d\n"
		 "[users.other]\nname = app2\ndatabase = other\npassword = app2_pw\n"
		 "pool_size = %d\n%s"
		 "[admin]\nname = admin\nuser = admin\npassword = pgdog\n",
		 app_pw, bench_pool_size, other_pool_size, extra ? extra : "");
	it_write_file(g_it.users_path, text);
}

static struct it_pgdog_conf conf = {
	.workers = 2,
	.general = "pooler_mode = transaction\ncheckout_timeout = 10000",
	.has_admin = true,
};

/* pgdog.ini with extra database sections (the port stays g_it.port unless port > 0) */
static void
write_ini(const char *extra_dbs, int port)
{
	char dbs[1024];
	int keep = g_it.port;

	snprintf(dbs, sizeof(dbs), "%s%s", dbs_base, extra_dbs ? extra_dbs : "");
	conf.databases = dbs;
	if (port > 0)
		g_it.port = port;
	/* it_pgdog_write_config writes users.ini too: rewrite ours after it */
	it_pgdog_write_config(&conf);
	g_it.port = keep;
	conf.databases = dbs_base;
}

static void
setup(void)
{
	it_env_start("reload");
	it_pg_start(NULL);
	it_pg_role("app", NULL, NULL);
	it_pg_role("app2", NULL, NULL);
	it_pg_role("app3", NULL, NULL);
	it_pg_role("bench", "bench_pw", "scram-sha-256");
	it_pg_hba("host all bench 127.0.0.1/32 scram-sha-256");
	snprintf(dbs_base, sizeof(dbs_base),
		 "[databases.other]\nname = other\nhost = 127.0.0.1\nport = %d\n"
		 "database_name = postgres\n",
		 g_it.pg_port);
	conf.databases = dbs_base;
	conf.users = "[users.app]\ndatabase = app\npassword = app_pw\n"
		     "[users.bench]\ndatabase = app\npassword = bench_pw\npool_size = 20\n"
		     "[users.other]\nname = app2\ndatabase = other\npassword = app2_pw\n"
		     "pool_size = 3\n"
		     "[admin]\nname = admin\nuser = admin\npassword = pgdog\n";
	it_pgdog_start(&conf);
}

static void
teardown(void)
{
	it_env_stop();
}

static char last_notice[2048];

static void
notice_cb(void *arg, const PGresult *res)
{
	const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	snprintf(last_notice, sizeof(last_notice), "%s", m ? m : "");
}

/* RELOAD on the admin console; returns once every worker applied it. */
static void
reload_ok(void)
{
	PGconn *a = it_connect(ADMIN);
	PGresult *r;

	PQsetNoticeReceiver(a, notice_cb, NULL);
	last_notice[0] = '\0';
	r = PQexec(a, "RELOAD");
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "RELOAD: %s", PQerrorMessage(a));
	PQclear(r);
	PQfinish(a);
}

/* SIGHUP, then wait until the log shows n "configuration generation" lines per worker. */
static int
count_in_log(const char *s)
{
	FILE *f = fopen(g_it.log_path, "r");
	char line[4096];
	int n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, s) != NULL;
	fclose(f);
	return n;
}

static void
sighup_and_wait(void)
{
	int before = count_in_log(" applied (was ");
	long long end = it_now_ms() + 5000;

	ck_assert_int_eq(kill(g_it.pid, SIGHUP), 0);
	while (count_in_log(" applied (was ") < before + g_it.workers) {
		ck_assert_msg(it_now_ms() < end, "workers did not apply the reload within 5 s");
		it_sleep_ms(20);
	}
}

struct bench_run {
	char out[65536];
	int rc;
};

static void *
bench_thread(void *arg)
{
	struct bench_run *b = arg;

	b->rc = it_run_pgbench("-c 20 -j 2 -T 10 -n", 60, b->out, sizeof(b->out), NULL, NULL);
	return NULL;
}

static const char *
bench_pids(void)
{
	return it_pg_value("SELECT coalesce(string_agg(pid::text, ',' ORDER BY pid), '') "
			   "FROM pg_stat_activity WHERE usename = 'bench'");
}

/* ",a,b," so that ",pid," finds whole pids only (static buffer) */
static const char *
after_wrapped(const char *list)
{
	static char buf[4200];

	snprintf(buf, sizeof(buf), ",%s,", list);
	return buf;
}

START_TEST(test_reload_under_load)
{
	static struct bench_run b;
	pthread_t th;
	char before[4096], after[4096];
	long done, failed;
	int i;

	ck_assert_int_eq(it_run_pgbench("-i -s 1 -q", 60, b.out, sizeof(b.out), NULL, NULL), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, bench_thread, &b), 0);
	/* the pool warms up to 20 servers (pool_size = clients: nobody waits, nothing moves) */
	{
		PGconn *mon = it_pg_connect();
		long long end = it_now_ms() + 6000;

		it_sleep_ms(1000);
		while (it_pg_count_backends(mon, "bench") < 20 && it_now_ms() < end)
			it_sleep_ms(50);
		PQfinish(mon);
	}
	snprintf(before, sizeof(before), "%s", bench_pids());
	for (i = 0; i < RELOADS; i++) {
		bool odd = i % 2 == 0;
		PGconn *o;

		/* odd: pool "other" changes size and pool app3/other appears; even: back */
		write_users("app_pw", odd ? 4 : 3,
			    odd ? "[users.app3]\ndatabase = other\npassword = app3_pw\n" : NULL);
		if (i % 4 < 2)
			reload_ok();
		else
			sighup_and_wait();
		o = it_connect("dbname=other user=app2 password=app2_pw");
		ck_assert_str_eq(it_value(o, "SELECT 'other'"), "other");
		PQfinish(o);
		if (odd) {
			PGconn *n = it_connect("dbname=other user=app3 password=app3_pw");

			ck_assert_str_eq(it_value(n, "SELECT 'added'"), "added");
			PQfinish(n);
		} else {
			ck_assert_ptr_nonnull(
				it_connect_fail("dbname=other user=app3 password=app3_pw"));
		}
		it_sleep_ms(200);
	}
	snprintf(after, sizeof(after), "%s", bench_pids());
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_msg(b.rc == 0, "pgbench exited %d:\n%s", b.rc, b.out);
	done = it_number_after(b.out, "number of transactions actually processed: ");
	failed = it_number_after(b.out, "number of failed transactions: ");
	ck_assert_msg(done > 1000, "only %ld transactions:\n%s", done, b.out);
	ck_assert_msg(failed == 0, "%ld failed transactions:\n%s", failed, b.out);
	ck_assert_msg(strstr(b.out, "number of clients: 20") != NULL, "%s", b.out);
	fprintf(stderr, "reload under load: %d reloads, %ld transactions, 0 failed\n", RELOADS,
		done);
	/* no backend of the unchanged pool went away (the pool may still have grown) */
	ck_assert(before[0]);
	for (char *p = before, *tok; (tok = strtok_r(p, ",", &p)) != NULL;) {
		char pat[32];

		snprintf(pat, sizeof(pat), ",%s,", tok);
		ck_assert_msg(
			strstr(after_wrapped(after), pat) != NULL,
			"backend %s of the unchanged pool was closed during the reloads:\nafter %s",
			tok, after);
	}
	ck_assert(!it_log_contains("pool bench/app changed"));
	ck_assert(it_log_contains("pool app2/other changed: rebuilt"));
	ck_assert(it_log_contains("pool app3/other removed"));
	write_users("app_pw", 3, NULL);
	reload_ok();
}
END_TEST

/* A bad file: refused with the reason (admin reply and log); nothing changes. */
START_TEST(test_reload_bad_file)
{
	PGconn *c = it_connect("dbname=app user=app password=app_pw"), *a = it_connect(ADMIN);
	PGresult *r;
	const char *msg;

	ck_assert_str_eq(it_value(c, "SELECT 1"), "1");
	write_users("app_pw", 3, "[users.app4]\ndatabase = nosuchdb\npassword = x\n");
	r = PQexec(a, "RELOAD");
	ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
	msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	ck_assert_msg(strstr(msg, "users.ini:") && strstr(msg, "nosuchdb"), "%s", msg);
	ck_assert(it_log_contains("reload failed, keeping the current configuration"));
	PQclear(r);
	/* everything runs as before */
	ck_assert_str_eq(it_value(c, "SELECT 'kept'"), "kept");
	PQfinish(c);
	c = it_connect("dbname=app user=app password=app_pw");
	ck_assert_str_eq(it_value(c, "SELECT 2"), "2");
	write_users("app_pw", 3, NULL);
	PQfinish(a);
	PQfinish(c);
}
END_TEST

/* A database added by a reload is served; removed again, it is refused and its client closed. */
START_TEST(test_reload_add_remove_database)
{
	char db[256], st[6], msg[512];
	PGconn *n, *other, *tx;
	const char *err;

	snprintf(db, sizeof(db),
		 "[databases.newdb]\nname = newdb\nhost = 127.0.0.1\nport = %d\n"
		 "database_name = postgres\n",
		 g_it.pg_port);
	/* user app exists, the database not: 3D000's message */
	err = it_connect_fail("dbname=newdb user=app password=app_pw");
	ck_assert_msg(strstr(err, "database \"newdb\" does not exist"), "%s", err);
	write_ini(db, 0);
	write_users("app_pw", 3, "[users.app3]\ndatabase = newdb\npassword = app3_pw\n");
	reload_ok();
	ck_assert_msg(strstr(last_notice, "databases.newdb (added)"), "%s", last_notice);
	n = it_connect("dbname=newdb user=app3 password=app3_pw");
	ck_assert_str_eq(it_value(n, "SELECT 'new database'"), "new database");
	other = it_connect("dbname=other user=app2 password=app2_pw");
	tx = it_connect("dbname=newdb user=app3 password=app3_pw");
	PQclear(it_exec_ok(tx, "BEGIN"));
	PQclear(it_exec_ok(tx, "SELECT 1"));
	write_ini(NULL, 0);
	write_users("app_pw", 3, NULL);
	reload_ok();
	/* a client in a transaction finishes it, then is disconnected (57P01) */
	ck_assert_str_eq(it_value(tx, "SELECT 'in transaction'"), "in transaction");
	PQclear(it_exec_ok(tx, "COMMIT"));
	ck_assert_int_eq(it_exec_first_error(tx, "SELECT 1", st, msg, sizeof(msg)), 1);
	ck_assert_msg(strcmp(st, "57P01") == 0, "%s %s", st, msg);
	PQfinish(tx);
	/* its idle client is closed (57P01); new connections get 3D000's message */
	ck_assert(it_exec_first_error(n, "SELECT 1", st, msg, sizeof(msg)) != 0);
	ck_assert_int_eq(PQstatus(n), CONNECTION_BAD);
	err = it_connect_fail("dbname=newdb user=app password=app_pw");
	ck_assert_msg(strstr(err, "database \"newdb\" does not exist"), "%s", err);
	ck_assert(it_log_contains("pool app3/newdb removed"));
	{
		/* each worker forgets it once its clients and servers are gone */
		long long end = it_now_ms() + 5000;

		while (count_in_log("pool app3/newdb drained") < g_it.workers) {
			ck_assert_msg(it_now_ms() < end, "the removed pool did not drain in 5 s");
			it_sleep_ms(50);
		}
	}
	ck_assert_str_eq(it_value(other, "SELECT 'untouched'"), "untouched");
	PQfinish(n);
	PQfinish(other);
}
END_TEST

/* A changed password is the one that authenticates after the reload. */
START_TEST(test_reload_password_change)
{
	PGconn *c;

	write_users("app_pw_2", 3, NULL);
	reload_ok();
	c = it_connect("dbname=app user=app password=app_pw_2");
	ck_assert_str_eq(it_value(c, "SELECT 'new password'"), "new password");
	PQfinish(c);
	ck_assert_ptr_nonnull(strstr(it_connect_fail("dbname=app user=app password=app_pw"),
				     "password authentication failed"));
	write_users("app_pw", 3, NULL);
	reload_ok();
	c = it_connect("dbname=app user=app password=app_pw");
	PQfinish(c);
}
END_TEST

/* A port change needs a restart: reported (reply and log), not applied. */
START_TEST(test_reload_port_needs_restart)
{
	int port = it_free_port();
	PGconn *c;

	write_ini(NULL, port);
	write_users("app_pw", 3, NULL);
	reload_ok();
	ck_assert_msg(strstr(last_notice, "needs a restart, not applied: port"), "%s", last_notice);
	ck_assert(it_log_contains("needs a restart, not applied: port"));
	c = it_connect("dbname=app user=app password=app_pw");
	ck_assert_str_eq(it_value(c, "SELECT 'old port'"), "old port");
	PQfinish(c);
	ck_assert(!it_wait_port(port, 300));
	write_ini(NULL, 0);
	write_users("app_pw", 3, NULL);
	reload_ok();
}
END_TEST

/* A worker restarted after a reload runs the reloaded configuration, not the start-up one. */
START_TEST(test_reload_worker_respawn)
{
	pid_t before[8], after[8];
	int nb, na, seen[2] = { 0, 0 };
	long long end;

	write_users("app_pw", 3, "[users.app3]\ndatabase = other\npassword = app3_pw\n");
	reload_ok();
	nb = it_children(g_it.pid, before, 8);
	ck_assert_int_eq(nb, 2);
	ck_assert_int_eq(kill(before[0], SIGKILL), 0);
	end = it_now_ms() + 10000;
	for (;;) {
		bool is_new = false;

		na = it_children(g_it.pid, after, 8);
		for (int i = 0; i < na; i++)
			is_new = is_new || (after[i] != before[0] && after[i] != before[1]);
		if (na == 2 && is_new)
			break;
		ck_assert_msg(it_now_ms() < end, "the killed worker was not restarted in 10 s");
		it_sleep_ms(50);
	}
	it_sleep_ms(300);
	for (int i = 0; i < 40 && !(seen[0] && seen[1]); i++) {
		PGconn *c = it_connect("dbname=other user=app3 password=app3_pw");

		ck_assert_str_eq(it_value(c, "SELECT 'reloaded'"), "reloaded");
		seen[(PQbackendPID(c) >> 24) & 1] = 1;
		PQfinish(c);
	}
	ck_assert_msg(seen[0] && seen[1], "the new pool was not served by both workers");
	write_users("app_pw", 3, NULL);
	reload_ok();
}
END_TEST

/*
 * Pool sizes stay global across a reload: pgbench's pool shrinks from 20 to
 * 5 while 20 clients run; the old servers close as they are checked in, and
 * from then on PostgreSQL never sees more than 5 backends of the pool (over
 * both workers); no transaction fails.
 */
START_TEST(test_reload_pool_size_cap)
{
	static struct bench_run b;
	pthread_t th;
	PGconn *mon = it_pg_connect();
	long long end;
	int max = 0, n;
	long failed;

	ck_assert_int_eq(pthread_create(&th, NULL, bench_thread, &b), 0);
	end = it_now_ms() + 8000;
	while ((n = it_pg_count_backends(mon, "bench")) <= 5) {
		ck_assert_msg(it_now_ms() < end, "pgbench did not get beyond %d backends", n);
		it_sleep_ms(50);
	}
	bench_pool_size = 5;
	write_users("app_pw", 3, NULL);
	reload_ok();
	/* busy servers of the old size close at check-in: wait for that */
	end = it_now_ms() + 5000;
	while ((n = it_pg_count_backends(mon, "bench")) > 5) {
		ck_assert_msg(it_now_ms() < end, "still %d backends 5 s after shrinking to 5", n);
		it_sleep_ms(20);
	}
	end = it_now_ms() + 3000;
	while (it_now_ms() < end) {
		n = it_pg_count_backends(mon, "bench");
		if (n > max)
			max = n;
		it_sleep_ms(20);
	}
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_msg(max <= 5, "%d backends with pool_size = 5", max);
	ck_assert_msg(b.rc == 0, "pgbench exited %d:\n%s", b.rc, b.out);
	failed = it_number_after(b.out, "number of failed transactions: ");
	ck_assert_msg(failed == 0, "%ld failed transactions:\n%s", failed, b.out);
	fprintf(stderr, "pool shrunk 20 -> 5 under load: at most %d backends afterwards\n", max);
	bench_pool_size = 20;
	write_users("app_pw", 3, NULL);
	reload_ok();
	PQfinish(mon);
}
END_TEST

/* ---- a pgdog started with one pool, in session mode ------------------------------ */

#define GROW_POOLS 200

static struct it_pgdog_conf grow_conf = {
	.workers = 2,
	.general = "pooler_mode = session\ncheckout_timeout = 2000",
	.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 2\n"
		 "[admin]\nname = admin\nuser = admin\npassword = pgdog\n",
	.has_admin = true,
};

static void
grow_setup(void)
{
	it_env_start("reload-grow");
	it_pg_start(NULL);
	it_pg_role("app", NULL, NULL);
	it_pgdog_start(&grow_conf);
}

/* RELOAD on the admin console: NULL when it was applied, else its error (static). */
static const char *
reload_result(void)
{
	static char msg[2048];
	PGconn *a = it_connect(ADMIN);
	PGresult *r = PQexec(a, "RELOAD");
	const char *m = NULL;

	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(a));
		m = msg;
	}
	PQclear(r);
	PQfinish(a);
	return m;
}

/* kB of "Rss:" / "Pss:" in /proc/pid/smaps_rollup, -1 if unreadable. */
static long
mem_kb(pid_t pid, const char *key)
{
	char path[64], line[256];
	FILE *f;
	long v = -1;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, strlen(key)) == 0)
			v = strtol(line + strlen(key), NULL, 10);
	fclose(f);
	return v;
}

/* "sv rss/pss, wk rss/pss, ..." of pgdog's processes; the largest Pss of them in *max_pss. */
static void
mem_report(char *out, size_t len, long *max_pss)
{
	pid_t pids[9];
	int n = 0;
	size_t k = 0;

	pids[n++] = g_it.pid;
	n += it_children(g_it.pid, pids + 1, 8);
	*max_pss = 0;
	for (int i = 0; i < n; i++) {
		long rss = mem_kb(pids[i], "Rss:"), pss = mem_kb(pids[i], "Pss:");

		if (pss > *max_pss)
			*max_pss = pss;
		k += (size_t)snprintf(out + k, len - k, "%s%s %ld/%ld kB", i ? ", " : "",
				      i ? "worker" : "supervisor", rss, pss);
		if (k >= len)
			break;
	}
}

/*
 * Started with one pool, a reload brings 200 more (more than 2 x the pools
 * at start, and more than the 64 of the former fixed minimum): every one
 * is served. The reserved capacity costs address space, not memory: the
 * processes' resident and proportional sizes are printed and stay small.
 * A configuration beyond what the segment can hold is refused by RELOAD
 * with the reason (and changes nothing).
 */
START_TEST(test_reload_grow_pools)
{
	size_t cap = (size_t)GROW_POOLS * 200 + 1024, n = 0, m = 0;
	char *dbs = malloc(cap), *users = malloc(cap), before[512], after[512];
	const char *err;
	long pss_before, pss_after;
	PGconn *c, *a;
	PGresult *r;

	ck_assert(dbs && users);
	mem_report(before, sizeof(before), &pss_before);
	for (int i = 1; i <= GROW_POOLS; i++) {
		n += (size_t)snprintf(dbs + n, cap - n,
				      "[databases.d%d]\nname = d%d\nhost = 127.0.0.1\nport = %d\n"
				      "database_name = postgres\n",
				      i, i, g_it.pg_port);
		m += (size_t)snprintf(users + m, cap - m,
				      "[users.u%d]\nname = app\ndatabase = d%d\npassword = app_pw\n"
				      "pool_size = 1\n",
				      i, i);
	}
	m += (size_t)snprintf(users + m, cap - m,
			      "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 2\n"
			      "[admin]\nname = admin\nuser = admin\npassword = pgdog\n");
	grow_conf.databases = dbs;
	grow_conf.users = users;
	it_pgdog_write_config(&grow_conf);
	err = reload_result();
	ck_assert_msg(err == NULL, "RELOAD to %d pools: %s", GROW_POOLS + 1, err);
	for (int i = 1; i <= GROW_POOLS; i += 33) {
		char dsn[128];

		snprintf(dsn, sizeof(dsn), "dbname=d%d user=app password=app_pw", i);
		c = it_connect(dsn);
		ck_assert_str_eq(it_value(c, "SELECT current_database()"), "postgres");
		PQfinish(c);
	}
	c = it_connect("dbname=d200 user=app password=app_pw");
	ck_assert_str_eq(it_value(c, "SELECT 200"), "200");
	PQfinish(c);
	a = it_connect(ADMIN);
	r = PQexec(a, "SHOW POOLS");
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	ck_assert_int_ge(PQntuples(r), GROW_POOLS + 1);
	PQclear(r);
	PQfinish(a);
	mem_report(after, sizeof(after), &pss_after);
	fprintf(stderr,
		"reload from 1 to %d pools: memory (Rss/Pss) before: %s; after (and SHOW POOLS): %s\n",
		GROW_POOLS + 1, before, after);
	fflush(stderr);
	/* the segment reserves room for 4096 pools; none of it is touched beyond what is used */
	ck_assert_msg(pss_after < 64 * 1024, "a pgdog process has a Pss of %ld kB", pss_after);

	/* beyond the segment's room: refused with the reason, nothing changes */
	m = (size_t)snprintf(users, cap,
			     "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 9000\n"
			     "[admin]\nname = admin\nuser = admin\npassword = pgdog\n");
	grow_conf.users = users;
	it_pgdog_write_config(&grow_conf);
	err = reload_result();
	ck_assert_msg(err && strstr(err, "restart pgdog"), "RELOAD beyond capacity: %s",
		      err ? err : "accepted");
	ck_assert(it_log_contains("reload failed, keeping the current configuration"));
	c = it_connect("dbname=d150 user=app password=app_pw");
	ck_assert_str_eq(it_value(c, "SELECT 150"), "150");
	PQfinish(c);

	grow_conf.databases = NULL;
	grow_conf.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 2\n"
			  "[admin]\nname = admin\nuser = admin\npassword = pgdog\n";
	it_pgdog_write_config(&grow_conf);
	err = reload_result();
	ck_assert_msg(err == NULL, "RELOAD back to 1 pool: %s", err);
	free(dbs);
	free(users);
}
END_TEST

/*
 * pooler_mode session -> transaction by a reload: the client connected in
 * session mode keeps its server (its backend, so all its session state)
 * as PostgreSQL promised it; clients connecting afterwards get transaction
 * pooling: two of them share the pool's one remaining server (in session
 * mode the second would wait for the first and fail after checkout_timeout).
 */
START_TEST(test_reload_pooler_mode_kept)
{
	PGconn *s = it_connect("dbname=app user=app password=app_pw"), *t1, *t2;
	char pid_s[32];
	const char *err;

	/* nothing that pins a server in transaction mode: only the mode keeps it */
	snprintf(pid_s, sizeof(pid_s), "%s", it_value(s, "SELECT pg_backend_pid()"));

	grow_conf.general = "pooler_mode = transaction\ncheckout_timeout = 2000";
	it_pgdog_write_config(&grow_conf);
	err = reload_result();
	ck_assert_msg(err == NULL, "RELOAD: %s", err);

	t1 = it_connect("dbname=app user=app password=app_pw");
	t2 = it_connect("dbname=app user=app password=app_pw");
	for (int i = 0; i < 5; i++) {
		ck_assert_str_ne(it_value(t1, "SELECT pg_backend_pid()"), pid_s);
		ck_assert_str_ne(it_value(t2, "SELECT pg_backend_pid()"), pid_s);
		/* the session client: its own backend (and so its session state), every time */
		ck_assert_str_eq(it_value(s, "SELECT pg_backend_pid()"), pid_s);
	}
	PQfinish(t1);
	PQfinish(t2);
	PQfinish(s);
	grow_conf.general = "pooler_mode = session\ncheckout_timeout = 2000";
	it_pgdog_write_config(&grow_conf);
	err = reload_result();
	ck_assert_msg(err == NULL, "RELOAD: %s", err);
}
END_TEST

static Suite *
reload_suite(void)
{
	Suite *s = suite_create("reload");
	TCase *tc = tcase_create("reload");
	TCase *grow = tcase_create("reload-grow");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_reload_under_load);
	tcase_add_test(tc, test_reload_bad_file);
	tcase_add_test(tc, test_reload_add_remove_database);
	tcase_add_test(tc, test_reload_password_change);
	tcase_add_test(tc, test_reload_port_needs_restart);
	tcase_add_test(tc, test_reload_worker_respawn);
	tcase_add_test(tc, test_reload_pool_size_cap);
	suite_add_tcase(s, tc);
	tcase_add_unchecked_fixture(grow, grow_setup, teardown);
	tcase_set_timeout(grow, 120);
	tcase_add_test(grow, test_reload_grow_pools);
	tcase_add_test(grow, test_reload_pooler_mode_kept);
	suite_add_tcase(s, grow);
	return s;
}

int
main(void)
{
	return it_run_suite(reload_suite());
}
