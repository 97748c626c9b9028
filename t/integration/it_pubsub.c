/*
 * it_pubsub.c: LISTEN/NOTIFY in transaction mode with pub_sub_channel_size >
 * 0, through pgdog against a real PostgreSQL, with libpq clients
 * (PQnotifies, PQconsumeInput): fan-out to several clients and channels on
 * both workers, NOTIFY and pg_notify() delivered at commit and not on
 * rollback, UNLISTEN / UNLISTEN * / DISCARD ALL, listening clients that keep
 * using the pool without pinning a server, delivery held until the
 * listening client's transaction ends, SHOW LISTENERS, the listener
 * reconnecting after pg_terminate_backend(), and the queue limit.
 * One pgdog with two workers, pool_size 1 for user "app" (so a pinned server
 * would stop every other client), checkout_timeout 3 s.
 */
#include "t/lib/it.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define APP   "dbname=app user=app password=app_pw"
#define ADMIN "dbname=admin user=admin password=pgdog"

static void
start(const char *name, const char *general)
{
	it_env_start(name);
	it_pg_start(NULL);
	it_pg_role("app", "app_pw", "scram-sha-256");
	it_pg_hba("host all app 127.0.0.1/32 scram-sha-256");
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 2,
		.general = general,
		.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 1\n",
	});
}

static void
setup(void)
{
	start("pubsub", "pooler_mode = transaction\ncheckout_timeout = 3000\n"
			"pub_sub_channel_size = 100");
}

static void
setup_small(void)
{
	start("pubsub_small", "pooler_mode = transaction\ncheckout_timeout = 3000\n"
			      "pub_sub_channel_size = 2");
}

static void
teardown(void)
{
	it_env_stop();
}

/* Expect exactly one notification on channel with payload within 3 s, then none for 300 ms. */
static void
expect_one(PGconn *c, const char *channel, const char *payload)
{
	PGnotify *n = it_wait_notify(c, 3000);

	ck_assert_msg(n != NULL, "no notification on %s within 3 s", channel);
	ck_assert_str_eq(n->relname, channel);
	ck_assert_str_eq(n->extra, payload);
	PQfreemem(n);
	n = it_wait_notify(c, 300);
	ck_assert_msg(n == NULL, "a second notification: %s '%s'", n ? n->relname : "",
		      n ? n->extra : "");
}

static void
expect_none(PGconn *c, int ms)
{
	PGnotify *n = it_wait_notify(c, ms);

	ck_assert_msg(n == NULL, "unexpected notification: %s '%s'", n ? n->relname : "",
		      n ? n->extra : "");
}

/* The worker slot a pgdog client is on (pgdog's BackendKeyData pid: slot << 24 | row + 1). */
static int
worker_of(PGconn *c)
{
	return PQbackendPID(c) >> 24;
}

/* Sum of a numeric column over SHOW POOLS rows. */
static long
pools_sum(const char *col)
{
	PGconn *adm = it_connect(ADMIN);
	PGresult *res = it_exec_ok(adm, "SHOW POOLS");
	long sum = 0;
	int f = PQfnumber(res, col);

	ck_assert_int_ge(f, 0);
	for (int i = 0; i < PQntuples(res); i++)
		sum += atol(PQgetvalue(res, i, f));
	PQclear(res);
	PQfinish(adm);
	return sum;
}

/* Several clients, several channels: a committed NOTIFY reaches each listener once. */
START_TEST(test_pubsub_fanout)
{
	PGconn *l[3], *n = it_connect(APP);

	for (int i = 0; i < 3; i++) {
		l[i] = it_connect(APP);
		PQclear(it_exec_ok(l[i], "LISTEN fan_a"));
	}
	PQclear(it_exec_ok(l[0], "LISTEN \"Fan B\""));
	PQclear(it_exec_ok(l[1], "listen \"Fan B\""));
	PQclear(it_exec_ok(n, "NOTIFY fan_a, 'one'"));
	for (int i = 0; i < 3; i++)
		expect_one(l[i], "fan_a", "one");
	/* pg_notify with a payload, on a quoted (case-kept) channel name */
	PQclear(it_exec_ok(n, "SELECT pg_notify('Fan B', 'payload two')"));
	expect_one(l[0], "Fan B", "payload two");
	expect_one(l[1], "Fan B", "payload two");
	expect_none(l[2], 300);
	/* unquoted names fold to lower case, as in PostgreSQL */
	PQclear(it_exec_ok(l[2], "LISTEN FAN_C"));
	PQclear(it_exec_ok(n, "NOTIFY fan_c"));
	expect_one(l[2], "fan_c", "");
	for (int i = 0; i < 3; i++)
		PQfinish(l[i]);
	PQfinish(n);
}
END_TEST

/* NOTIFY in a transaction: delivered at COMMIT, never after ROLLBACK. */
START_TEST(test_pubsub_commit_rollback)
{
	PGconn *l = it_connect(APP), *n = it_connect(APP);

	PQclear(it_exec_ok(l, "LISTEN tx_ch"));
	PQclear(it_exec_ok(n, "BEGIN"));
	PQclear(it_exec_ok(n, "NOTIFY tx_ch, 'rolled back'"));
	PQclear(it_exec_ok(n, "SELECT pg_notify('tx_ch', 'also rolled back')"));
	PQclear(it_exec_ok(n, "ROLLBACK"));
	expect_none(l, 500);
	PQclear(it_exec_ok(n, "BEGIN"));
	PQclear(it_exec_ok(n, "NOTIFY tx_ch, 'committed'"));
	expect_none(l, 300); /* not before the commit */
	PQclear(it_exec_ok(n, "COMMIT"));
	expect_one(l, "tx_ch", "committed");
	PQfinish(l);
	PQfinish(n);
}
END_TEST

/* Listening clients on both workers each get the notification. */
START_TEST(test_pubsub_both_workers)
{
	PGconn *c[16], *n;
	int cnt = 0, on[2] = { 0, 0 };

	/* the kernel spreads connections over the workers' sockets: open until both have one */
	while (cnt < 16 && (!on[0] || !on[1])) {
		c[cnt] = it_connect(APP);
		on[worker_of(c[cnt]) & 1]++;
		PQclear(it_exec_ok(c[cnt], "LISTEN both_ch"));
		cnt++;
	}
	ck_assert_msg(on[0] && on[1], "no client on one of the two workers in %d connections", cnt);
	n = it_connect(APP);
	PQclear(it_exec_ok(n, "NOTIFY both_ch, 'everyone'"));
	for (int i = 0; i < cnt; i++)
		expect_one(c[i], "both_ch", "everyone");
	/* SHOW LISTENERS has a row for the channel on each worker */
	{
		PGconn *adm = it_connect(ADMIN);
		PGresult *res = it_exec_ok(adm, "SHOW LISTENERS");
		int fch = PQfnumber(res, "channel"), fw = PQfnumber(res, "worker");
		int fcl = PQfnumber(res, "clients");
		int rows[2] = { 0, 0 }, clients = 0;

		for (int i = 0; i < PQntuples(res); i++) {
			if (strcmp(PQgetvalue(res, i, fch), "both_ch") != 0)
				continue;
			rows[atoi(PQgetvalue(res, i, fw)) & 1]++;
			clients += atoi(PQgetvalue(res, i, fcl));
		}
		ck_assert_msg(rows[0] == 1 && rows[1] == 1, "both_ch rows per worker: %d, %d",
			      rows[0], rows[1]);
		ck_assert_int_eq(clients, cnt);
		PQclear(res);
		PQfinish(adm);
	}
	for (int i = 0; i < cnt; i++)
		PQfinish(c[i]);
	PQfinish(n);
}
END_TEST

/* UNLISTEN ch, UNLISTEN * and DISCARD ALL stop delivery. */
START_TEST(test_pubsub_unlisten)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP), *d = it_connect(APP);
	PGconn *n = it_connect(APP);

	PQclear(it_exec_ok(a, "LISTEN un_1"));
	PQclear(it_exec_ok(a, "LISTEN un_2"));
	PQclear(it_exec_ok(b, "LISTEN un_1"));
	PQclear(it_exec_ok(b, "LISTEN un_2"));
	PQclear(it_exec_ok(d, "LISTEN un_1"));
	PQclear(it_exec_ok(a, "UNLISTEN un_1"));
	PQclear(it_exec_ok(b, "UNLISTEN *"));
	PQclear(it_exec_ok(d, "DISCARD ALL"));
	PQclear(it_exec_ok(n, "NOTIFY un_1, 'x'"));
	PQclear(it_exec_ok(n, "NOTIFY un_2, 'y'"));
	expect_one(a, "un_2", "y");
	expect_none(b, 300);
	expect_none(d, 100);
	/* listening again works */
	PQclear(it_exec_ok(b, "LISTEN un_1"));
	PQclear(it_exec_ok(n, "NOTIFY un_1, 'z'"));
	expect_one(b, "un_1", "z");
	expect_none(a, 100);
	PQfinish(a);
	PQfinish(b);
	PQfinish(d);
	PQfinish(n);
}
END_TEST

/*
 * A listening client keeps using the pool (queries, transactions) and pins
 * nothing: with pool_size 1 another client still gets the server at once.
 */
START_TEST(test_pubsub_not_pinned)
{
	PGconn *l = it_connect(APP), *o = it_connect(APP), *n = it_connect(APP);
	long pins = pools_sum("pins");
	PGresult *res;

	PQclear(it_exec_ok(l, "LISTEN pin_ch"));
	PQclear(it_exec_ok(l, "CREATE TABLE IF NOT EXISTS pubsub_t (v int)"));
	PQclear(it_exec_ok(l, "BEGIN"));
	PQclear(it_exec_ok(l, "INSERT INTO pubsub_t VALUES (1)"));
	PQclear(it_exec_ok(l, "COMMIT"));
	ck_assert_str_eq(it_value(l, "SELECT 41 + 1"), "42");
	/* l is idle and holds nothing: o gets the single server within checkout_timeout */
	res = PQexec(o, "SELECT 1");
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "other client: %s",
		      PQerrorMessage(o));
	PQclear(res);
	ck_assert_int_eq(pools_sum("pins"), pins);
	PQclear(it_exec_ok(n, "NOTIFY pin_ch, 'still here'"));
	expect_one(l, "pin_ch", "still here");
	PQfinish(l);
	PQfinish(o);
	PQfinish(n);
}
END_TEST

/* A notification for a client in a transaction arrives after its COMMIT. */
START_TEST(test_pubsub_held_in_transaction)
{
	PGconn *l = it_connect(APP), *direct = it_pg_connect();
	PGnotify *nt;
	PGresult *res;
	long pins = pools_sum("pins");

	PQclear(it_exec_ok(l, "LISTEN held_ch"));
	PQclear(it_exec_ok(l, "BEGIN"));
	PQclear(it_exec_ok(l, "SELECT 1"));
	PQclear(it_exec_ok(direct, "NOTIFY held_ch, 'after commit'"));
	expect_none(l, 500); /* PostgreSQL delivers between transactions */
	PQclear(it_exec_ok(l, "SELECT 2"));
	ck_assert_ptr_null(PQnotifies(l));
	res = it_exec_ok(l, "COMMIT");
	PQclear(res);
	nt = it_wait_notify(l, 3000);
	ck_assert_msg(nt != NULL, "no notification after COMMIT");
	ck_assert_str_eq(nt->extra, "after commit");
	PQfreemem(nt);
	ck_assert_int_eq(pools_sum("pins"), pins); /* served by the listener, not a pinned server */
	PQfinish(direct);
	PQfinish(l);
}
END_TEST

/*
 * A client's own NOTIFY: the sender pid is the pooled server's backend pid,
 * as PostgreSQL sends it (not the pid in pgdog's BackendKeyData).
 */
START_TEST(test_pubsub_sender_pid)
{
	PGconn *l = it_connect(APP);
	PGnotify *nt;
	char pid[32];
	long pins = pools_sum("pins");

	PQclear(it_exec_ok(l, "LISTEN self_ch"));
	PQclear(it_exec_ok(l, "BEGIN"));
	snprintf(pid, sizeof(pid), "%s", it_value(l, "SELECT pg_backend_pid()"));
	PQclear(it_exec_ok(l, "NOTIFY self_ch, 'me'"));
	PQclear(it_exec_ok(l, "COMMIT"));
	nt = it_wait_notify(l, 3000);
	ck_assert_msg(nt != NULL, "no self notification");
	ck_assert_int_eq(nt->be_pid, atoi(pid));
	ck_assert_int_ne(nt->be_pid, PQbackendPID(l));
	PQfreemem(nt);
	ck_assert_int_eq(pools_sum("pins"), pins);
	PQfinish(l);
}
END_TEST

/*
 * LISTEN / UNLISTEN inside a transaction block take effect at COMMIT and
 * not after ROLLBACK, as in PostgreSQL, and pin nothing.
 */
START_TEST(test_pubsub_listen_in_transaction)
{
	PGconn *l = it_connect(APP), *o = it_connect(APP), *direct = it_pg_connect();
	long pins = pools_sum("pins");
	PGresult *res;

	/* committed: notifications committed after the COMMIT arrive, earlier ones do not */
	PQclear(it_exec_ok(l, "BEGIN"));
	PQclear(it_exec_ok(l, "LISTEN txl_c"));
	PQclear(it_exec_ok(l, "SELECT 1"));
	PQclear(it_exec_ok(direct, "NOTIFY txl_c, 'before'"));
	PQclear(it_exec_ok(l, "COMMIT"));
	expect_none(l, 300);
	PQclear(it_exec_ok(direct, "NOTIFY txl_c, 'after'"));
	expect_one(l, "txl_c", "after");
	/* the single server is free for another client */
	res = PQexec(o, "SELECT 1");
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "other client: %s",
		      PQerrorMessage(o));
	PQclear(res);
	ck_assert_int_eq(pools_sum("pins"), pins);
	/* rolled back: no registration */
	PQclear(it_exec_ok(l, "BEGIN"));
	PQclear(it_exec_ok(l, "LISTEN txl_r"));
	PQclear(it_exec_ok(l, "ROLLBACK"));
	PQclear(it_exec_ok(direct, "NOTIFY txl_r, 'never'"));
	expect_none(l, 500);
	/* a failed transaction ends in ROLLBACK even when the client says COMMIT */
	PQclear(it_exec_ok(l, "BEGIN"));
	PQclear(it_exec_ok(l, "LISTEN txl_e"));
	PQclear(PQexec(l, "SELECT 1/0"));
	PQclear(PQexec(l, "COMMIT"));
	PQclear(it_exec_ok(direct, "NOTIFY txl_e, 'never'"));
	expect_none(l, 300);
	/* UNLISTEN in a rolled-back transaction keeps the registration; committed drops it */
	PQclear(it_exec_ok(l, "BEGIN"));
	PQclear(it_exec_ok(l, "UNLISTEN txl_c"));
	PQclear(it_exec_ok(l, "ROLLBACK"));
	PQclear(it_exec_ok(direct, "NOTIFY txl_c, 'kept'"));
	expect_one(l, "txl_c", "kept");
	PQclear(it_exec_ok(l, "BEGIN"));
	PQclear(it_exec_ok(l, "UNLISTEN *"));
	PQclear(it_exec_ok(l, "COMMIT"));
	PQclear(it_exec_ok(direct, "NOTIFY txl_c, 'gone'"));
	expect_none(l, 300);
	PQfinish(direct);
	PQfinish(o);
	PQfinish(l);
}
END_TEST

/* LISTEN / UNLISTEN with the extended protocol (PQexecParams) are served the same way. */
START_TEST(test_pubsub_extended)
{
	PGconn *l = it_connect(APP), *o = it_connect(APP), *n = it_connect(APP);
	long pins = pools_sum("pins");
	PGresult *res;

	res = PQexecParams(l, "LISTEN ext_ch", 0, NULL, NULL, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "LISTEN: %s", PQerrorMessage(l));
	ck_assert_str_eq(PQcmdStatus(res), "LISTEN");
	PQclear(res);
	/* not pinned: the single server serves another client at once */
	res = PQexec(o, "SELECT 1");
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "other client: %s",
		      PQerrorMessage(o));
	PQclear(res);
	PQclear(it_exec_ok(n, "NOTIFY ext_ch, 'extended'"));
	expect_one(l, "ext_ch", "extended");
	res = PQexecParams(l, "UNLISTEN ext_ch", 0, NULL, NULL, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "UNLISTEN: %s", PQerrorMessage(l));
	PQclear(res);
	PQclear(it_exec_ok(n, "NOTIFY ext_ch, 'gone'"));
	expect_none(l, 300);
	ck_assert_int_eq(pools_sum("pins"), pins);
	/* the connection still runs ordinary extended queries */
	res = PQexecParams(l, "SELECT $1::int + 1", 1, NULL, (const char *const[]){ "41" }, NULL,
			   NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(l));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "42");
	PQclear(res);
	PQfinish(l);
	PQfinish(o);
	PQfinish(n);
}
END_TEST

/*
 * A LISTEN among other statements still goes to the server and pins it (the
 * documented fallback); UNLISTEN * then goes there too and frees it.
 */
START_TEST(test_pubsub_pinned_fallback)
{
	PGconn *l = it_connect(APP), *o = it_connect(APP), *direct = it_pg_connect();
	PGnotify *nt;
	PGresult *res;

	PQclear(it_exec_ok(l, "LISTEN mix_a; SELECT 1"));
	PQclear(it_exec_ok(direct, "NOTIFY mix_a, 'via the server'"));
	nt = it_wait_notify(l, 3000);
	ck_assert_msg(nt != NULL, "no notification through the pinned server");
	ck_assert_str_eq(nt->extra, "via the server");
	PQfreemem(nt);
	PQclear(it_exec_ok(l, "UNLISTEN *"));
	/* the server is free again */
	res = PQexec(o, "SELECT 1");
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "other client: %s",
		      PQerrorMessage(o));
	PQclear(res);
	PQclear(it_exec_ok(direct, "NOTIFY mix_a, 'after unlisten'"));
	expect_none(l, 300);
	PQfinish(direct);
	PQfinish(o);
	PQfinish(l);
}
END_TEST

/*
 * Many channels on one client: each reaches it, SHOW LISTENERS lists at most
 * 256 per worker (the rest still work), UNLISTEN * drops them all.
 */
START_TEST(test_pubsub_many_channels)
{
	PGconn *l = it_connect(APP), *n = it_connect(APP), *adm = it_connect(ADMIN);
	PGresult *res;
	int rows = 0;
	char sql[64];

	for (int i = 1; i <= 300; i++) {
		snprintf(sql, sizeof(sql), "LISTEN many_%d", i);
		PQclear(it_exec_ok(l, sql));
	}
	for (int i = 1; i <= 300; i += 299 / 3) {
		snprintf(sql, sizeof(sql), "NOTIFY many_%d, '%d'", i, i);
		PQclear(it_exec_ok(n, sql));
		snprintf(sql, sizeof(sql), "many_%d", i);
		{
			char want[16];

			snprintf(want, sizeof(want), "%d", i);
			expect_one(l, sql, want);
		}
	}
	res = it_exec_ok(adm, "SHOW LISTENERS");
	for (int i = 0; i < PQntuples(res); i++)
		rows += strncmp(PQgetvalue(res, i, PQfnumber(res, "channel")), "many_", 5) == 0;
	PQclear(res);
	ck_assert_msg(rows > 0 && rows <= 256, "%d rows", rows);
	PQclear(it_exec_ok(l, "UNLISTEN *"));
	PQclear(it_exec_ok(n, "NOTIFY many_300, 'none'"));
	expect_none(l, 300);
	rows = 0;
	res = it_exec_ok(adm, "SHOW LISTENERS");
	for (int i = 0; i < PQntuples(res); i++)
		rows += strncmp(PQgetvalue(res, i, PQfnumber(res, "channel")), "many_", 5) == 0;
	PQclear(res);
	ck_assert_int_eq(rows, 0);
	PQfinish(adm);
	PQfinish(n);
	PQfinish(l);
}
END_TEST

/* SHOW LISTENERS: database, user, channel, clients, received, delivered, worker. */
START_TEST(test_pubsub_show_listeners)
{
	PGconn *a = it_connect(APP), *b = it_connect(APP), *n = it_connect(APP);
	PGconn *adm = it_connect(ADMIN);
	PGresult *res;
	int found = 0;
	long clients = 0, received = 0, delivered = 0;

	PQclear(it_exec_ok(a, "LISTEN show_ch"));
	PQclear(it_exec_ok(b, "LISTEN show_ch"));
	PQclear(it_exec_ok(n, "NOTIFY show_ch, 'counted'"));
	expect_one(a, "show_ch", "counted");
	expect_one(b, "show_ch", "counted");
	res = it_exec_ok(adm, "SHOW LISTENERS");
	for (int i = 0; i < PQntuples(res); i++) {
		if (strcmp(PQgetvalue(res, i, PQfnumber(res, "channel")), "show_ch") != 0)
			continue;
		found++;
		ck_assert_str_eq(PQgetvalue(res, i, PQfnumber(res, "database")), "app");
		ck_assert_str_eq(PQgetvalue(res, i, PQfnumber(res, "user")), "app");
		ck_assert_int_ge(atoi(PQgetvalue(res, i, PQfnumber(res, "worker"))), 0);
		ck_assert_int_gt(atoi(PQgetvalue(res, i, PQfnumber(res, "backend_pid"))), 0);
		clients += atol(PQgetvalue(res, i, PQfnumber(res, "clients")));
		received += atol(PQgetvalue(res, i, PQfnumber(res, "received")));
		delivered += atol(PQgetvalue(res, i, PQfnumber(res, "delivered")));
	}
	PQclear(res);
	ck_assert_msg(found >= 1, "no SHOW LISTENERS row for show_ch");
	ck_assert_int_eq(clients, 2);
	ck_assert_int_eq(delivered, 2);
	ck_assert_int_ge(received, 1);
	/* the last client leaving removes the channel */
	PQfinish(a);
	PQfinish(b);
	for (long long end = it_now_ms() + 3000; it_now_ms() < end; it_sleep_ms(50)) {
		found = 0;
		res = it_exec_ok(adm, "SHOW LISTENERS");
		for (int i = 0; i < PQntuples(res); i++)
			found += strcmp(PQgetvalue(res, i, PQfnumber(res, "channel")), "show_ch") ==
				 0;
		PQclear(res);
		if (!found)
			break;
	}
	ck_assert_msg(found == 0, "show_ch still listed after its clients left");
	PQfinish(n);
	PQfinish(adm);
}
END_TEST

/* The listener's backend is terminated: pgdog reconnects and LISTENs again. */
START_TEST(test_pubsub_listener_reconnect)
{
	PGconn *l = it_connect(APP), *n = it_connect(APP), *adm = it_connect(ADMIN);
	PGconn *direct = it_pg_connect();
	PGresult *res;
	int w = worker_of(l), old_pid = 0, new_pid = 0;
	char sql[128];

	PQclear(it_exec_ok(l, "LISTEN re_ch"));
	res = it_exec_ok(adm, "SHOW LISTENERS");
	for (int i = 0; i < PQntuples(res); i++)
		if (strcmp(PQgetvalue(res, i, PQfnumber(res, "channel")), "re_ch") == 0 &&
		    atoi(PQgetvalue(res, i, PQfnumber(res, "worker"))) == w)
			old_pid = atoi(PQgetvalue(res, i, PQfnumber(res, "backend_pid")));
	PQclear(res);
	ck_assert_int_gt(old_pid, 0);
	/* the listener is named in pg_stat_activity */
	snprintf(sql, sizeof(sql), "SELECT application_name FROM pg_stat_activity WHERE pid = %d",
		 old_pid);
	ck_assert_str_eq(it_pg_value(sql), "pgdog_listener");
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", old_pid);
	ck_assert_str_eq(it_pg_value(sql), "t");
	for (long long end = it_now_ms() + 5000; it_now_ms() < end && !new_pid; it_sleep_ms(50)) {
		res = it_exec_ok(adm, "SHOW LISTENERS");
		for (int i = 0; i < PQntuples(res); i++) {
			int pid = atoi(PQgetvalue(res, i, PQfnumber(res, "backend_pid")));

			if (strcmp(PQgetvalue(res, i, PQfnumber(res, "channel")), "re_ch") == 0 &&
			    pid > 0 && pid != old_pid)
				new_pid = pid;
		}
		PQclear(res);
	}
	ck_assert_msg(new_pid > 0, "the listener did not reconnect within 5 s");
	ck_assert(it_log_contains("listener connection of pool"));
	/* the new listener is LISTENing: notifications from pgdog and from outside arrive */
	PQclear(it_exec_ok(n, "NOTIFY re_ch, 'again'"));
	expect_one(l, "re_ch", "again");
	PQclear(it_exec_ok(direct, "NOTIFY re_ch, 'outside'"));
	expect_one(l, "re_ch", "outside");
	PQfinish(direct);
	PQfinish(adm);
	PQfinish(n);
	PQfinish(l);
}
END_TEST

static char fatal_sqlstate[6], fatal_msg[256];

static void
keep_fatal(void *arg, const PGresult *res)
{
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	(void)arg;
	if (!sev || strcmp(sev, "FATAL") != 0)
		return;
	snprintf(fatal_sqlstate, sizeof(fatal_sqlstate), "%s", st ? st : "");
	snprintf(fatal_msg, sizeof(fatal_msg), "%s", m ? m : "");
}

/*
 * The listener cannot log in (the role's connection limit is taken by the
 * pool's server): the LISTEN gets an ErrorResponse naming the listener, the
 * client stays usable, and a later LISTEN works once logins succeed again.
 */
START_TEST(test_pubsub_listener_login_fails)
{
	PGconn *hold = it_connect(APP), *l, *mon = it_pg_connect();
	const char *msg;
	int backends = -1;

	/* hold the pool's single server, then allow no second connection for the role */
	PQclear(it_exec_ok(hold, "BEGIN"));
	PQclear(it_exec_ok(hold, "SELECT 1"));
	it_pg_exec("ALTER ROLE app CONNECTION LIMIT 1");
	for (long long end = it_now_ms() + 5000; it_now_ms() < end; it_sleep_ms(50)) {
		backends = it_pg_count_backends(mon, "app");
		if (backends == 1)
			break;
	}
	ck_assert_int_eq(backends, 1);
	l = it_connect(APP);
	msg = it_exec_error(l, "LISTEN lf_ch", "08006");
	ck_assert_msg(strstr(msg, "listener") != NULL, "message: %s", msg);
	it_pg_exec("ALTER ROLE app CONNECTION LIMIT -1");
	PQclear(it_exec_ok(hold, "COMMIT"));
	ck_assert_str_eq(it_value(l, "SELECT 'still usable'"), "still usable");
	/* retried after a second: the LISTEN waits for the listener, then works */
	PQclear(it_exec_ok(l, "LISTEN lf_ch"));
	PQclear(it_exec_ok(hold, "NOTIFY lf_ch, 'works'"));
	expect_one(l, "lf_ch", "works");
	PQfinish(mon);
	PQfinish(hold);
	PQfinish(l);
}
END_TEST

/*
 * More than pub_sub_channel_size notifications wait for a client in a
 * transaction: it is disconnected with 54000 right after the transaction,
 * never left with a silent gap; the other listeners are not affected.
 */
START_TEST(test_pubsub_overflow)
{
	PGconn *l = it_connect(APP), *ok = it_connect(APP), *direct = it_pg_connect();
	PGresult *res;

	PQclear(it_exec_ok(l, "LISTEN ov_ch"));
	PQclear(it_exec_ok(ok, "LISTEN ov_ch"));
	PQclear(it_exec_ok(l, "BEGIN"));
	PQclear(it_exec_ok(l, "SELECT 1"));
	for (int i = 0; i < 3; i++) {
		char sql[64];

		snprintf(sql, sizeof(sql), "NOTIFY ov_ch, '%d'", i);
		PQclear(it_exec_ok(direct, sql));
	}
	/* the idle listener got all three */
	for (int i = 0; i < 3; i++) {
		PGnotify *nt = it_wait_notify(ok, 3000);
		char want[8];

		snprintf(want, sizeof(want), "%d", i);
		ck_assert_msg(nt != NULL, "idle client: notification %d missing", i);
		ck_assert_str_eq(nt->extra, want);
		PQfreemem(nt);
	}
	it_sleep_ms(300);
	/* the COMMIT completes; the FATAL follows it, then the connection closes */
	PQsetNoticeReceiver(l, keep_fatal, NULL);
	res = PQexec(l, "COMMIT");
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "COMMIT: %s", PQerrorMessage(l));
	PQclear(res);
	for (long long end = it_now_ms() + 3000; it_now_ms() < end; it_sleep_ms(20))
		if (!PQconsumeInput(l))
			break;
	/* libpq hands an ErrorResponse that arrives while idle to the notice receiver */
	ck_assert_msg(strcmp(fatal_sqlstate, "54000") == 0 &&
			      strstr(fatal_msg, "pub_sub_channel_size") != NULL,
		      "error: %s %s (%s)", fatal_sqlstate, fatal_msg, PQerrorMessage(l));
	ck_assert_int_eq(PQstatus(l), CONNECTION_BAD);
	PQfinish(l);
	PQfinish(direct);
	PQfinish(ok);
}
END_TEST

/*
 * A client that stops reading: pgdog's buffer for it stays bounded (its
 * notifications queue up to pub_sub_channel_size once its output passes the
 * backpressure mark), and when it reads again it gets what was written, then
 * FATAL 54000 instead of a silent gap.
 */
START_TEST(test_pubsub_slow_reader)
{
	PGconn *l = it_connect(APP), *direct = it_pg_connect();
	char payload[7001], sql[7100];
	int got = 0;

	memset(payload, 'p', sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = '\0';
	fatal_sqlstate[0] = fatal_msg[0] = '\0';
	PQsetNoticeReceiver(l, keep_fatal, NULL);
	PQclear(it_exec_ok(l, "LISTEN slow_ch"));
	/* distinct payloads: PostgreSQL folds identical notifications of one transaction */
	snprintf(sql, sizeof(sql),
		 "SELECT pg_notify('slow_ch', g || '%s') FROM generate_series(1, 20) g", payload);
	/* 2000 x 7 KB = 14 MB: more than the loopback socket buffers and 512 KiB */
	for (int i = 0; i < 100; i++)
		PQclear(it_exec_ok(direct, sql));
	it_sleep_ms(500);
	for (long long end = it_now_ms() + 10000; it_now_ms() < end;) {
		struct pollfd pfd = { .fd = PQsocket(l), .events = POLLIN };
		PGnotify *nt;

		if (!PQconsumeInput(l))
			break;
		while ((nt = PQnotifies(l)) != NULL) {
			got++;
			PQfreemem(nt);
		}
		poll(&pfd, 1, 100);
	}
	ck_assert_msg(got > 0 && got < 2000, "%d notifications", got);
	ck_assert_msg(strcmp(fatal_sqlstate, "54000") == 0, "error after %d: %s %s (%s)", got,
		      fatal_sqlstate, fatal_msg, PQerrorMessage(l));
	ck_assert_int_eq(PQstatus(l), CONNECTION_BAD);
	PQfinish(direct);
	PQfinish(l);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("it_pubsub");
	TCase *tc = tcase_create("pubsub");
	TCase *small = tcase_create("pubsub_small");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pubsub_fanout);
	tcase_add_test(tc, test_pubsub_commit_rollback);
	tcase_add_test(tc, test_pubsub_both_workers);
	tcase_add_test(tc, test_pubsub_unlisten);
	tcase_add_test(tc, test_pubsub_not_pinned);
	tcase_add_test(tc, test_pubsub_held_in_transaction);
	tcase_add_test(tc, test_pubsub_sender_pid);
	tcase_add_test(tc, test_pubsub_listen_in_transaction);
	tcase_add_test(tc, test_pubsub_extended);
	tcase_add_test(tc, test_pubsub_pinned_fallback);
	tcase_add_test(tc, test_pubsub_many_channels);
	tcase_add_test(tc, test_pubsub_show_listeners);
	tcase_add_test(tc, test_pubsub_listener_reconnect);
	tcase_add_test(tc, test_pubsub_listener_login_fails); /* last: changes the role */
	suite_add_tcase(s, tc);
	tcase_add_unchecked_fixture(small, setup_small, teardown);
	tcase_set_timeout(small, 60);
	tcase_add_test(small, test_pubsub_overflow);
	tcase_add_test(small, test_pubsub_slow_reader);
	suite_add_tcase(s, small);
	return it_run_suite(s);
}
