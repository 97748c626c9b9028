/*
 * it_pool.c: pool sizing through pgdog against a real PostgreSQL: the global
 * pool_size cap under 50 concurrent clients over two workers,
 * checkout_timeout, max_client_conn, min_pool_size and idle_timeout, and
 * which idle server a transaction gets (server_round_robin).
 * A monitor connection straight to PostgreSQL counts the backends.
 */
#include "t/lib/it.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define APP "dbname=app user=app password=app_pw"

static void
setup_pg(const char *name)
{
	it_env_start(name);
	it_pg_start(NULL);
	it_pg_role("app", "app_pw", "scram-sha-256");
	it_pg_role("minu", "minu_pw", "scram-sha-256");
	it_pg_role("idleu", "idleu_pw", "scram-sha-256");
	it_pg_role("chk", "chk_pw", "scram-sha-256");
	it_pg_hba("host all app 127.0.0.1/32 scram-sha-256\n"
		  "host all minu 127.0.0.1/32 scram-sha-256\n"
		  "host all idleu 127.0.0.1/32 scram-sha-256\n"
		  "host all chk 127.0.0.1/32 scram-sha-256");
}

static void
teardown(void)
{
	it_env_stop();
}

/* ---- 50 clients, pool_size 5, two workers -------------------------------- */

#define CLIENTS 50
#define POOL    5

static void
setup_concurrency(void)
{
	setup_pg("concurrency");
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 2,
		.general = "checkout_timeout = 20000",
		.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 5\n",
	});
}

struct client_result {
	int ok;
	char err[256];
};

static struct client_result g_results[CLIENTS];
static atomic_bool g_stop;
static atomic_int g_max_seen;
static atomic_int g_samples;
static atomic_int g_max_sockets; /* ESTABLISHED TCP connections to PostgreSQL */

static void *
client_main(void *arg)
{
	struct client_result *r = arg;
	PGconn *c = PQconnectdb(it_pgdog_dsn(APP));
	PGresult *res;

	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(r->err, sizeof(r->err), "connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	res = PQexec(c, "SELECT pg_sleep(0.2), 'ok'");
	if (PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 1), "ok") == 0)
		r->ok = 1;
	else
		snprintf(r->err, sizeof(r->err), "query: %s", PQerrorMessage(c));
	PQclear(res);
	PQfinish(c);
	return NULL;
}

static void *
monitor_main(void *arg)
{
	PGconn *mon = arg;
	int mon_port = it_local_port(PQsocket(mon));

	while (!atomic_load(&g_stop)) {
		/*
		 * /proc/net/tcp is not read at one instant: a connection closed
		 * and another opened while it is read can both be listed. Two
		 * reads in a row: a sixth connection that really exists is in
		 * both.
		 */
		int k1 = it_tcp_established_to(g_it.pg_port, mon_port);
		int k2 = it_tcp_established_to(g_it.pg_port, mon_port);
		int k = k1 < k2 ? k1 : k2;
		int km = atomic_load(&g_max_sockets);

		while (k > km && !atomic_compare_exchange_weak(&g_max_sockets, &km, k))
			;
		PGresult *res =
			PQexec(mon, "SELECT count(*) FROM pg_stat_activity "
				    "WHERE usename = 'app' AND backend_type = 'client backend'");
		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			int n = atoi(PQgetvalue(res, 0, 0));
			int m = atomic_load(&g_max_seen);

			while (n > m && !atomic_compare_exchange_weak(&g_max_seen, &m, n))
				;
			atomic_fetch_add(&g_samples, 1);
		}
		PQclear(res);
		it_sleep_ms(10);
	}
	return NULL;
}

START_TEST(test_pool_global_cap)
{
	pthread_t th[CLIENTS], mt;
	PGconn *mon = it_pg_connect();
	int ok = 0;
	long long t0 = it_now_ms(), elapsed;

	atomic_store(&g_stop, false);
	atomic_store(&g_max_seen, 0);
	atomic_store(&g_max_sockets, 0);
	ck_assert_int_eq(pthread_create(&mt, NULL, monitor_main, mon), 0);
	for (int i = 0; i < CLIENTS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, client_main, &g_results[i]), 0);
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(th[i], NULL);
	elapsed = it_now_ms() - t0;
	atomic_store(&g_stop, true);
	pthread_join(mt, NULL);
	PQfinish(mon);

	for (int i = 0; i < CLIENTS; i++) {
		if (g_results[i].ok)
			ok++;
		else
			fprintf(stderr, "client %d failed: %s\n", i, g_results[i].err);
	}
	ck_assert_msg(ok == CLIENTS, "%d of %d clients succeeded", ok, CLIENTS);
	ck_assert_msg(atomic_load(&g_max_sockets) <= POOL,
		      "pgdog held %d TCP connections to PostgreSQL at once; pool_size is %d",
		      atomic_load(&g_max_sockets), POOL);
	ck_assert_msg(
		atomic_load(&g_max_seen) <= POOL,
		"PostgreSQL saw %d connections of user app (pgdog held at most %d sockets at "
		"once: closed servers were replaced before their backends exited); pool_size is %d",
		atomic_load(&g_max_seen), atomic_load(&g_max_sockets), POOL);
	ck_assert_msg(atomic_load(&g_max_seen) >= 2,
		      "monitor saw at most %d connections (%d samples)", atomic_load(&g_max_seen),
		      atomic_load(&g_samples));
	/* 50 x 0.2 s through 5 servers cannot take less than 2 s */
	ck_assert_msg(elapsed >= 1900, "50 sleeps finished in %lld ms: more than 5 servers?",
		      elapsed);
}
END_TEST

/* Clients on both workers still share one global cap after the burst. */
START_TEST(test_pool_cap_after_burst)
{
	PGconn *mon = it_pg_connect();
	PGconn *c[8];
	int n;

	for (int i = 0; i < 8; i++)
		c[i] = it_connect(APP);
	/* the first 5 get servers at once */
	for (int i = 0; i < POOL; i++)
		ck_assert_str_eq(it_value(c[i], "SELECT 1"), "1");
	n = it_pg_count_backends(mon, "app");
	ck_assert_msg(n <= POOL, "%d backends for pool_size %d", n, POOL);
	/* the rest wait until those disconnect */
	for (int i = POOL; i < 8; i++)
		ck_assert_int_eq(PQsendQuery(c[i], "SELECT 'late'"), 1);
	it_sleep_ms(300);
	for (int i = 0; i < POOL; i++)
		PQfinish(c[i]);
	for (int i = POOL; i < 8; i++) {
		PGresult *res = PQgetResult(c[i]);
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "late client %d: %s", i,
			      PQerrorMessage(c[i]));
		PQclear(res);
		while ((res = PQgetResult(c[i])) != NULL)
			PQclear(res);
		PQfinish(c[i]);
	}
	n = it_pg_count_backends(mon, "app");
	ck_assert_msg(n <= POOL, "%d backends for pool_size %d", n, POOL);
	PQfinish(mon);
}
END_TEST

/* ---- checkout_timeout ---------------------------------------------------- */

static void
setup_checkout(void)
{
	setup_pg("checkout");
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 2,
		.general = "checkout_timeout = 1000",
		.users = "[users.chk]\ndatabase = app\npassword = chk_pw\npool_size = 1\n",
	});
}

#define CHK "dbname=app user=chk password=chk_pw"

START_TEST(test_pool_checkout_timeout)
{
	PGconn *c1 = it_connect(CHK);
	PGconn *c2 = it_connect(CHK), *c3;
	long long t0, elapsed;
	char st[6], msg[512];
	int rc;

	ck_assert_str_eq(it_value(c1, "SELECT 1"), "1");
	t0 = it_now_ms();
	rc = it_exec_first_error(c2, "SELECT 2", st, msg, sizeof(msg));
	elapsed = it_now_ms() - t0;
	ck_assert_msg(rc == 1, "second client got no error while the only server was taken");
	ck_assert_msg(strcmp(st, "53300") == 0, "SQLSTATE '%s' (%s)", st, msg);
	ck_assert_msg(strstr(msg, "chk") != NULL && strstr(msg, "app") != NULL,
		      "message \"%s\" does not name the pool (chk, app)", msg);
	ck_assert_msg(elapsed >= 800 && elapsed <= 3000,
		      "checkout_timeout 1000 ms, error after %lld ms", elapsed);
	PQfinish(c2);

	/* the holder is unaffected, and after it leaves the next client gets the server */
	ck_assert_str_eq(it_value(c1, "SELECT 3"), "3");
	PQfinish(c1);
	c3 = it_connect(CHK);
	ck_assert_str_eq(it_value(c3, "SELECT 4"), "4");
	PQfinish(c3);
}
END_TEST

/*
 * pool_size 1 with clients on both workers: the one server connection goes
 * from worker to worker, and each serves its clients in between. (A server
 * given back to a worker whose clients were waiting was closed as soon as
 * it had logged in, before serving any of them, because the other worker
 * now waited with none: the two passed the cap back and forth, PostgreSQL
 * saw hundreds of connections a second, and the clients got 53300.)
 */
#define SHARE_CLIENTS 12

static void
setup_share(void)
{
	setup_pg("share");
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 2,
		.general = "pooler_mode = transaction\ncheckout_timeout = 1000",
		.users = "[users.chk]\ndatabase = app\npassword = chk_pw\npool_size = 1\n",
	});
}

static void
setup_starve(void)
{
	setup_pg("starve");
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 2,
		.general = "pooler_mode = transaction\ncheckout_timeout = 1000",
		.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 2\n"
			 "[users.idleu]\ndatabase = app\npassword = idleu_pw\npool_size = 1\n",
	});
}

static void
exec_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);

	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
}

struct share_arg {
	PGconn *conn;
	atomic_bool *stop;
	const char *sql; /* NULL: SELECT 1 */
	int done;
	char err[256];
};

static void *
share_client(void *p)
{
	struct share_arg *a = p;

	while (!atomic_load(a->stop) && !a->err[0]) {
		PGresult *res = PQexec(a->conn, a->sql ? a->sql : "SELECT 1");

		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			a->done++;
		else
			snprintf(a->err, sizeof(a->err), "%s", PQerrorMessage(a->conn));
		PQclear(res);
	}
	return NULL;
}

START_TEST(test_pool_cap_below_workers)
{
	PGconn *conns[SHARE_CLIENTS], *adm = it_connect("dbname=admin user=admin password=pgdog");
	struct share_arg args[SHARE_CLIENTS];
	pthread_t th[SHARE_CLIENTS];
	atomic_bool stop = false;
	unsigned long long connects0, connects;
	int n = it_connect_spread(CHK, "chk", conns, 6, SHARE_CLIENTS);

	connects0 = strtoull(it_show_value(adm, "SHOW STATS", "database", "app", NULL, NULL,
					   "total_connect_count"),
			     NULL, 10);
	for (int i = 0; i < n; i++) {
		args[i] = (struct share_arg){ .conn = conns[i], .stop = &stop };
		ck_assert_int_eq(pthread_create(&th[i], NULL, share_client, &args[i]), 0);
	}
	it_sleep_ms(3000);
	atomic_store(&stop, true);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	connects = strtoull(it_show_value(adm, "SHOW STATS", "database", "app", NULL, NULL,
					  "total_connect_count"),
			    NULL, 10) -
		   connects0;
	for (int i = 0; i < n; i++) {
		ck_assert_msg(!args[i].err[0], "client %d of %d: %s", i, n, args[i].err);
		ck_assert_msg(args[i].done >= 10, "client %d of %d ran %d transactions in 3 s", i,
			      n, args[i].done);
		PQfinish(conns[i]);
	}
	/* passed on a few times a second at most, not after every transaction */
	ck_assert_msg(connects <= 80, "%llu server connections in 3 s for pool_size 1", connects);
	PQfinish(adm);
}
END_TEST

/*
 * pool_size 2: one server held by a long transaction on worker 0, the other
 * turning over short queries on worker 1. A request on worker 0 gets a
 * server within the slice, as a shared queue would give it one. (The cap
 * moved only to a worker with no server at all: it waited until
 * checkout_timeout and got 53300.)
 */
START_TEST(test_pool_starved_worker)
{
	PGconn *adm = it_connect("dbname=admin user=admin password=pgdog");
	PGconn *h = it_connect_on(adm, APP, 0), *l = it_connect_on(adm, APP, 1);
	PGconn *w = it_connect_on(adm, APP, 0);
	atomic_bool stop = false;
	struct share_arg la = { .conn = l, .stop = &stop, .sql = "SELECT pg_sleep(0.01)" };
	pthread_t th;
	long long t0, elapsed;
	const char *v;

	exec_ok(h, "BEGIN");
	ck_assert_str_eq(it_value(h, "SELECT 'held'"), "held");
	ck_assert_int_eq(pthread_create(&th, NULL, share_client, &la), 0);
	it_sleep_ms(300);
	for (int round = 0; round < 2; round++) {
		PGresult *res;

		t0 = it_now_ms();
		res = PQexec(w, "SELECT 'served'");
		elapsed = it_now_ms() - t0;
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK,
			      "round %d: worker 0's request after %lld ms: %s", round, elapsed,
			      PQerrorMessage(w));
		v = PQgetvalue(res, 0, 0);
		ck_assert_str_eq(v, "served");
		PQclear(res);
		ck_assert_msg(elapsed < 900, "round %d: served after %lld ms", round, elapsed);
		it_sleep_ms(300);
	}
	atomic_store(&stop, true);
	pthread_join(th, NULL);
	ck_assert_msg(!la.err[0], "worker 1's client: %s", la.err);
	ck_assert_msg(la.done >= 20, "worker 1's client ran %d queries", la.done);
	exec_ok(h, "COMMIT");
	PQfinish(w);
	PQfinish(l);
	PQfinish(h);
	PQfinish(adm);
}
END_TEST

/*
 * The first login on a worker whose pool is at its cap on the other worker
 * takes the parameters that worker learned (after a start or a binary
 * upgrade it waited for a server of its own: 53300 after checkout_timeout).
 */
START_TEST(test_pool_login_cap_elsewhere)
{
	PGconn *adm = it_connect("dbname=admin user=admin password=pgdog");
	const char *dsn = "dbname=app user=idleu password=idleu_pw";
	PGconn *x = it_connect(dsn), *y;
	int wx = it_client_worker(adm, x);

	exec_ok(x, "BEGIN");
	ck_assert_str_eq(it_value(x, "SELECT 'held'"), "held");
	for (int i = 0; i < 64; i++) {
		long long t0 = it_now_ms();

		y = PQconnectdb(it_pgdog_dsn(dsn));
		ck_assert_msg(PQstatus(y) == CONNECTION_OK, "login %d after %lld ms: %s", i,
			      it_now_ms() - t0, PQerrorMessage(y));
		ck_assert_msg(it_now_ms() - t0 < 900, "login %d took %lld ms", i, it_now_ms() - t0);
		ck_assert_str_eq(PQparameterStatus(y, "server_version"),
				 PQparameterStatus(x, "server_version"));
		if (it_client_worker(adm, y) != wx)
			break;
		PQfinish(y);
		y = NULL;
	}
	ck_assert_msg(y != NULL, "64 logins and none on the other worker");
	exec_ok(x, "COMMIT");
	ck_assert_str_eq(it_value(y, "SELECT 'after'"), "after");
	PQfinish(y);
	PQfinish(x);
	PQfinish(adm);
}
END_TEST

/* ---- max_client_conn ----------------------------------------------------- */

static void
setup_maxconn(void)
{
	setup_pg("max_client_conn");
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 2,
		.general = "max_client_conn = 3\nauth_type = plain",
		.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 5\n",
	});
}

START_TEST(test_pool_max_client_conn)
{
	PGconn *c[3];
	char st[6];
	int fd, rc = 0;
	long long end;

	for (int i = 0; i < 3; i++)
		c[i] = it_connect(APP);
	fd = it_raw_connect(g_it.port);
	rc = it_raw_login(fd, "app", "app", "app_pw", st);
	close(fd);
	ck_assert_msg(rc == -1, "a 4th client logged in with max_client_conn = 3");
	ck_assert_msg(strcmp(st, "53300") == 0, "4th client: SQLSTATE '%s', expected 53300", st);
	/* the three work */
	for (int i = 0; i < 3; i++)
		ck_assert_str_eq(it_value(c[i], "SELECT 1"), "1");
	/* one leaves: a new client gets in (within 2 s) */
	PQfinish(c[0]);
	end = it_now_ms() + 2000;
	for (;;) {
		PGconn *n = PQconnectdb(it_pgdog_dsn(APP));
		bool ok = PQstatus(n) == CONNECTION_OK;

		if (ok)
			ck_assert_str_eq(it_value(n, "SELECT 1"), "1");
		PQfinish(n);
		if (ok)
			break;
		ck_assert_msg(it_now_ms() < end, "no client slot freed 2 s after a disconnect");
		it_sleep_ms(100);
	}
	PQfinish(c[1]);
	PQfinish(c[2]);
}
END_TEST

/* ---- min_pool_size and idle_timeout ------------------------------------- */

static void
setup_idle(void)
{
	setup_pg("idle");
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 2,
		.general = "idle_timeout = 1500",
		.users = "[users.app]\ndatabase = app\npassword = app_pw\n\n"
			 "[users.minu]\ndatabase = app\npassword = minu_pw\npool_size = 5\n"
			 "min_pool_size = 3\n\n"
			 "[users.idleu]\ndatabase = app\npassword = idleu_pw\npool_size = 5\n",
	});
}

START_TEST(test_pool_min_pool_size)
{
	PGconn *mon = it_pg_connect();
	long long end = it_now_ms() + 5000;
	int n = 0;

	while (it_now_ms() < end) {
		n = it_pg_count_backends(mon, "minu");
		if (n >= 3)
			break;
		it_sleep_ms(100);
	}
	ck_assert_msg(n == 3, "min_pool_size = 3: PostgreSQL has %d connections of minu after 5 s",
		      n);
	/* they stay: past idle_timeout, and never above the minimum */
	end = it_now_ms() + 2500;
	while (it_now_ms() < end) {
		n = it_pg_count_backends(mon, "minu");
		ck_assert_msg(n == 3, "min_pool_size = 3, idle_timeout = 1500: %d connections", n);
		it_sleep_ms(100);
	}
	PQfinish(mon);
}
END_TEST

START_TEST(test_pool_idle_timeout)
{
	PGconn *mon = it_pg_connect();
	PGconn *c = it_connect("dbname=app user=idleu password=idleu_pw");
	long long t0, end;
	int n;

	ck_assert_str_eq(it_value(c, "SELECT current_user"), "idleu");
	ck_assert_int_eq(it_pg_count_backends(mon, "idleu"), 1);
	PQfinish(c);
	t0 = it_now_ms();
	it_sleep_ms(400);
	n = it_pg_count_backends(mon, "idleu");
	ck_assert_msg(n == 1, "the server connection was not kept idle after the client left (%d)",
		      n);
	end = t0 + 6000;
	for (;;) {
		n = it_pg_count_backends(mon, "idleu");
		if (n == 0)
			break;
		ck_assert_msg(it_now_ms() < end,
			      "idle_timeout = 1500: server still open after 6 s");
		it_sleep_ms(100);
	}
	ck_assert_msg(it_now_ms() - t0 >= 1000, "idle server closed after only %lld ms",
		      it_now_ms() - t0);
	PQfinish(mon);
}
END_TEST

/* ---- server_lifetime and connect_timeout -------------------------------- */

/* A TCP port that completes handshakes (backlog) but never answers. */
static int g_hole_fd = -1;
static int g_hole_port;

static void
setup_lifetime(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	char dbs[256];

	setup_pg("lifetime");
	g_hole_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(g_hole_fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(g_hole_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(g_hole_fd, 16), 0);
	ck_assert_int_eq(getsockname(g_hole_fd, (struct sockaddr *)&sa, &len), 0);
	g_hole_port = ntohs(sa.sin_port);
	snprintf(dbs, sizeof(dbs),
		 "[databases.hole]\nhost = 127.0.0.1\nport = %d\ndatabase_name = postgres\n",
		 g_hole_port);
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 1,
		.general = "server_lifetime = 1000\nconnect_timeout = 1000",
		.databases = dbs,
		.users = "[users.app]\ndatabase = app\npassword = app_pw\n\n"
			 "[users.holeu]\ndatabase = hole\npassword = holeu_pw\n",
	});
}

static void
teardown_lifetime(void)
{
	if (g_hole_fd >= 0)
		close(g_hole_fd);
	g_hole_fd = -1;
	it_env_stop();
}

static char *
backend_pid(void)
{
	PGconn *c = it_connect("dbname=app user=app password=app_pw");
	char *pid = strdup(it_value(c, "SELECT pg_backend_pid()"));

	PQfinish(c);
	return pid;
}

/* A server is reused while young, and replaced once older than server_lifetime. */
START_TEST(test_pool_server_lifetime)
{
	char *p1 = backend_pid(), *p2, *p3;

	p2 = backend_pid();
	ck_assert_msg(strcmp(p1, p2) == 0, "a young server was not reused (%s, then %s)", p1, p2);
	it_sleep_ms(1500);
	p3 = backend_pid();
	ck_assert_msg(strcmp(p1, p3) != 0,
		      "server_lifetime = 1000: backend %s still served a client after 1.5 s", p1);
	free(p1);
	free(p2);
	free(p3);
}
END_TEST

/* A server that never answers the login fails the waiting client after connect_timeout. */
START_TEST(test_pool_connect_timeout)
{
	long long t0 = it_now_ms(), took;
	PGconn *c = PQconnectdb(it_pgdog_dsn("dbname=hole user=holeu password=holeu_pw"));
	const char *err = PQerrorMessage(c);

	took = it_now_ms() - t0;
	ck_assert_msg(PQstatus(c) != CONNECTION_OK,
		      "logged in through a server that never answers");
	ck_assert_msg(strstr(err, "connect_timeout (1000 ms)") != NULL, "error: %s", err);
	ck_assert_msg(strstr(err, "holeu/hole") != NULL, "error does not name the pool: %s", err);
	ck_assert_msg(took >= 900 && took < 4000, "failed after %lld ms, connect_timeout = 1000",
		      took);
	PQfinish(c);
	/* the other pool is unaffected */
	c = it_connect("dbname=app user=app password=app_pw");
	ck_assert_str_eq(it_value(c, "SELECT 1"), "1");
	PQfinish(c);
}
END_TEST

/* ---- which idle server a transaction gets -------------------------------- */

#define REUSE_POOL 3

static struct it_pgdog_conf
reuse_conf(const char *general)
{
	return (struct it_pgdog_conf){
		.workers = 1,
		.general = general,
		.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 3\n",
	};
}

static void
setup_reuse(void)
{
	struct it_pgdog_conf conf = reuse_conf("pooler_mode = transaction");

	setup_pg("reuse");
	it_pgdog_start(&conf);
}

/*
 * Open all REUSE_POOL servers (one transaction each, at once), then end the
 * transactions in order: pids[i] is the backend that went idle i-th.
 */
static void
fill_pool(long pids[REUSE_POOL])
{
	PGconn *c[REUSE_POOL];

	for (int i = 0; i < REUSE_POOL; i++) {
		c[i] = it_connect(APP);
		exec_ok(c[i], "BEGIN");
		pids[i] = atol(it_value(c[i], "SELECT pg_backend_pid()"));
	}
	for (int i = 0; i < REUSE_POOL; i++) {
		ck_assert_msg(pids[i] > 0, "no backend pid");
		for (int j = 0; j < i; j++)
			ck_assert_msg(pids[i] != pids[j],
				      "two open transactions on one backend (%ld)", pids[i]);
	}
	for (int i = 0; i < REUSE_POOL; i++) {
		exec_ok(c[i], "COMMIT");
		PQfinish(c[i]);
	}
}

/*
 * Fill the pool, then run 2 x REUSE_POOL transactions on a new client: the
 * i-th must run on backend pids[want(i)].
 */
static void
check_reuse(int (*want)(int), const char *what)
{
	long pids[REUSE_POOL];
	PGconn *c;

	fill_pool(pids);
	c = it_connect(APP);
	for (int i = 0; i < 2 * REUSE_POOL; i++) {
		long pid = atol(it_value(c, "SELECT pg_backend_pid()"));

		ck_assert_msg(pid == pids[want(i)],
			      "%s: transaction %d ran on backend %ld, not on %ld", what, i, pid,
			      pids[want(i)]);
	}
	PQfinish(c);
}

static int
want_last_idle(int i)
{
	(void)i;
	return REUSE_POOL - 1;
}

static int
want_in_turn(int i)
{
	return i % REUSE_POOL;
}

/*
 * By default the server that went idle last serves the next transaction, so
 * one client's transactions all run on the same backend.
 */
START_TEST(test_pool_reuse_lifo)
{
	check_reuse(want_last_idle, "the one idle last");
}
END_TEST

/*
 * server_round_robin, turned on by a reload: the idle servers take turns,
 * the one idle longest first.
 */
START_TEST(test_pool_reuse_round_robin)
{
	struct it_pgdog_conf conf =
		reuse_conf("pooler_mode = transaction\nserver_round_robin = true");
	PGconn *adm;
	PGresult *r;

	it_pgdog_write_config(&conf);
	adm = it_connect("dbname=admin user=admin password=pgdog");
	r = PQexec(adm, "RELOAD"); /* returns once the worker applied it */
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "RELOAD: %s", PQerrorMessage(adm));
	PQclear(r);
	ck_assert_str_eq(it_show_value(adm, "SHOW CONFIG", "name", "server_round_robin", NULL, NULL,
				       "value"),
			 "true");
	PQfinish(adm);
	check_reuse(want_in_turn, "server_round_robin, in turn");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("it_pool");
	TCase *tc;

	tc = tcase_create("concurrency");
	tcase_add_unchecked_fixture(tc, setup_concurrency, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_pool_global_cap);
	tcase_add_test(tc, test_pool_cap_after_burst);
	suite_add_tcase(s, tc);

	tc = tcase_create("checkout");
	tcase_add_unchecked_fixture(tc, setup_checkout, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pool_checkout_timeout);
	suite_add_tcase(s, tc);

	tc = tcase_create("share");
	tcase_add_unchecked_fixture(tc, setup_share, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_pool_cap_below_workers);
	suite_add_tcase(s, tc);

	tc = tcase_create("starve");
	tcase_add_unchecked_fixture(tc, setup_starve, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_pool_starved_worker);
	tcase_add_test(tc, test_pool_login_cap_elsewhere);
	suite_add_tcase(s, tc);

	tc = tcase_create("max_client_conn");
	tcase_add_unchecked_fixture(tc, setup_maxconn, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pool_max_client_conn);
	suite_add_tcase(s, tc);

	tc = tcase_create("idle");
	tcase_add_unchecked_fixture(tc, setup_idle, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pool_min_pool_size);
	tcase_add_test(tc, test_pool_idle_timeout);
	suite_add_tcase(s, tc);

	tc = tcase_create("lifetime");
	tcase_add_unchecked_fixture(tc, setup_lifetime, teardown_lifetime);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pool_server_lifetime);
	tcase_add_test(tc, test_pool_connect_timeout);
	suite_add_tcase(s, tc);

	tc = tcase_create("reuse");
	tcase_add_unchecked_fixture(tc, setup_reuse, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pool_reuse_lifo);
	tcase_add_test(tc, test_pool_reuse_round_robin);
	suite_add_tcase(s, tc);

	return it_run_suite(s);
}
