/*
 * it_pubsub.c: LISTEN/NOTIFY in transaction mode with pub_sub_channel_size >
 * 0, through pgdog against a real PostgreSQL, with libpq clients
 * (PQnotifies, PQconsumeInput): fan-out to several clients and channels on
 * both workers, NOTIFY and pg_notify() delivered at commit and not on
 * rollback, UNLISTEN / UNLISTEN * / DISCARD ALL, listening clients that keep
 * using the pool without pinning a server, delivery held until the
 * listening client's transaction ends, LISTEN/UNLISTEN among other
 * statements and with the extended protocol in a transaction, savepoints,
 * PREPARE TRANSACTION refused as PostgreSQL refuses it, SHOW LISTENERS,
 * listening clients disconnected when their listener is lost
 * (pg_terminate_backend()), and the queue limit.
 * One pgdog with two workers, pool_size 1 for user "app" (so a pinned server
 * would stop every other client), checkout_timeout 3 s.
 */
#include "t/lib/it.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
setup_statement(void)
{
	start("pubsub_statement", "pooler_mode = statement\ncheckout_timeout = 3000\n"
				  "pub_sub_channel_size = 100");
}

static void
setup_full(void)
{
	/* one statement per server: EXECUTE often prepares again, in front of the client's Query */
	start("pubsub_full", "pooler_mode = transaction\ncheckout_timeout = 3000\n"
			     "pub_sub_channel_size = 100\nprepared_statements = full\n"
			     "prepared_statements_limit = 1");
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

/* Another client o is served at once (nothing pinned its server). */
static void
other_client_ok(PGconn *o)
{
	ck_assert_str_eq(it_value(o, "SELECT 1"), "1");
}

/* res, what c answered to what, is a command that succeeded (with tag, unless NULL); cleared. */
static void
command_tag(PGconn *c, PGresult *res, const char *what, const char *tag)
{
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", what, PQerrorMessage(c));
	if (tag)
		ck_assert_str_eq(PQcmdStatus(res), tag);
	PQclear(res);
}

/* Run notify_sql on sender, then expect_one(c, channel, payload). */
static void
notify_expect(PGconn *sender, const char *notify_sql, PGconn *c, const char *channel,
	      const char *payload)
{
	PQclear(it_exec_ok(sender, notify_sql));
	expect_one(c, channel, payload);
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
	notify_expect(n, "NOTIFY un_2, 'y'", a, "un_2", "y");
	expect_none(b, 300);
	expect_none(d, 100);
	/* listening again works */
	PQclear(it_exec_ok(b, "LISTEN un_1"));
	notify_expect(n, "NOTIFY un_1, 'z'", b, "un_1", "z");
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

	PQclear(it_exec_ok(l, "LISTEN pin_ch"));
	PQclear(it_exec_ok(l, "CREATE TABLE IF NOT EXISTS pubsub_t (v int)"));
	PQclear(it_exec_ok(l, "BEGIN"));
	PQclear(it_exec_ok(l, "INSERT INTO pubsub_t VALUES (1)"));
	PQclear(it_exec_ok(l, "COMMIT"));
	ck_assert_str_eq(it_value(l, "SELECT 41 + 1"), "42");
	/* l is idle and holds nothing: o gets the single server within checkout_timeout */
	other_client_ok(o);
	ck_assert_int_eq(pools_sum("pins"), pins);
	notify_expect(n, "NOTIFY pin_ch, 'still here'", l, "pin_ch", "still here");
	PQfinish(l);
	PQfinish(o);
	PQfinish(n);
}
END_TEST

/*
 * A LISTEN that a DO block's body runs is on the server itself, out of
 * pub/sub's sight: it pins the server, which goes back to the pool when it
 * listens no more (an UNLISTEN * run the same way). It went back to the pool
 * listening, where the next client got the notifications.
 */
START_TEST(test_pubsub_do_listen_pins)
{
	PGconn *adm = it_connect(ADMIN), *a = it_connect(APP);
	PGconn *b = it_connect_on(adm, APP, it_client_worker(adm, a)); /* the same pool */
	char pa[32];

	snprintf(pa, sizeof(pa), "%s", it_value(a, "SELECT pg_backend_pid()"));
	PQclear(it_exec_ok(a, "DO $$BEGIN EXECUTE 'LISTEN do_ch'; END$$"));
	it_server_held(b, "a listens on its server");
	ck_assert_str_eq(it_value(a, "SELECT count(*) FROM pg_listening_channels()"), "1");
	PQclear(it_exec_ok(a, "DO $$BEGIN EXECUTE 'UNLISTEN *'; END$$"));
	it_server_gone(b, pa, "b after a's UNLISTEN *");
	ck_assert_str_eq(it_value(b, "SELECT count(*) FROM pg_listening_channels()"), "0");
	PQfinish(a);
	PQfinish(b);
	PQfinish(adm);
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

/* The notification on channel with payload is there already, and no other (libpq parsed it). */
static void
self_now(PGconn *c, const char *what, const char *channel, const char *payload)
{
	PGnotify *n = PQnotifies(c);

	ck_assert_msg(n != NULL, "%s: no notification on %s when the command returned", what,
		      channel);
	ck_assert_str_eq(n->relname, channel);
	ck_assert_str_eq(n->extra, payload);
	PQfreemem(n);
	n = PQnotifies(c);
	ck_assert_msg(n == NULL, "%s: a second notification: %s '%s'", what, n ? n->relname : "",
		      n ? n->extra : "");
}

/*
 * A client's own notification is there when its command returns, as in
 * PostgreSQL, which sends it before the ReadyForQuery: LISTEN and NOTIFY
 * in one Query on a new channel, in one block, a NOTIFY or pg_notify()
 * (extended protocol) after the LISTEN, a named LISTEN and a NOTIFY in one
 * pipeline. Each round uses new channels, so
 * that pgdog's listener has not LISTENed on them yet.
 */
START_TEST(test_pubsub_self_notify)
{
	PGconn *l = it_connect(APP), *o = it_connect(APP);
	long pins = pools_sum("pins");

	for (int i = 0; i < 10; i++) {
		char sql[256], q[32], b[32], name[32];
		const char *params[1] = { q };
		PGresult *res;

		snprintf(q, sizeof(q), "self_q%d", i);
		snprintf(b, sizeof(b), "self_b%d", i);
		snprintf(sql, sizeof(sql), "LISTEN %s; NOTIFY %s, 'q'", q, q);
		PQclear(it_exec_ok(l, sql));
		self_now(l, "LISTEN; NOTIFY", q, "q");
		PQclear(it_exec_ok(l, "BEGIN"));
		snprintf(sql, sizeof(sql), "LISTEN %s", b);
		PQclear(it_exec_ok(l, sql));
		snprintf(sql, sizeof(sql), "NOTIFY %s, 'b'", b);
		PQclear(it_exec_ok(l, sql));
		ck_assert_ptr_null(PQnotifies(l));
		PQclear(it_exec_ok(l, "COMMIT"));
		self_now(l, "BEGIN; LISTEN; NOTIFY; COMMIT", b, "b");
		snprintf(sql, sizeof(sql), "NOTIFY %s, 'n'", q);
		PQclear(it_exec_ok(l, sql));
		self_now(l, "NOTIFY", q, "n");
		res = PQexecParams(l, "SELECT pg_notify($1, 'e')", 1, NULL, params, NULL, NULL, 0);
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "pg_notify: %s",
			      PQerrorMessage(l));
		PQclear(res);
		self_now(l, "pg_notify", q, "e");
		/* a named LISTEN and a NOTIFY in one pipeline (one implicit transaction) */
		snprintf(name, sizeof(name), "self_l%d", i);
		snprintf(sql, sizeof(sql), "LISTEN self_n%d", i);
		res = PQprepare(l, name, sql, 0, NULL);
		ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "prepare: %s",
			      PQerrorMessage(l));
		PQclear(res);
		ck_assert_int_eq(PQenterPipelineMode(l), 1);
		ck_assert_int_eq(PQsendQueryPrepared(l, name, 0, NULL, NULL, NULL, 0), 1);
		snprintf(sql, sizeof(sql), "NOTIFY self_n%d, 'p'", i);
		ck_assert_int_eq(PQsendQueryParams(l, sql, 0, NULL, NULL, NULL, NULL, 0), 1);
		ck_assert_int_eq(PQpipelineSync(l), 1);
		it_pipeline_next(l, PGRES_COMMAND_OK, NULL);
		it_pipeline_next(l, PGRES_COMMAND_OK, NULL);
		it_pipeline_next(l, PGRES_PIPELINE_SYNC, NULL);
		ck_assert_int_eq(PQexitPipelineMode(l), 1);
		snprintf(sql, sizeof(sql), "self_n%d", i);
		self_now(l, "named LISTEN; NOTIFY in a pipeline", sql, "p");
		/* another client's notification still comes */
		snprintf(sql, sizeof(sql), "NOTIFY %s, 'o'", b);
		notify_expect(o, sql, l, b, "o");
	}
	PQclear(it_exec_ok(l, "UNLISTEN *"));
	ck_assert_int_eq(pools_sum("pins"), pins);
	other_client_ok(o);
	PQfinish(l);
	PQfinish(o);
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

	/* committed: notifications committed after the COMMIT arrive, earlier ones do not */
	PQclear(it_exec_ok(l, "BEGIN"));
	PQclear(it_exec_ok(l, "LISTEN txl_c"));
	PQclear(it_exec_ok(l, "SELECT 1"));
	PQclear(it_exec_ok(direct, "NOTIFY txl_c, 'before'"));
	PQclear(it_exec_ok(l, "COMMIT"));
	expect_none(l, 300);
	notify_expect(direct, "NOTIFY txl_c, 'after'", l, "txl_c", "after");
	/* the single server is free for another client */
	other_client_ok(o);
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
	notify_expect(direct, "NOTIFY txl_c, 'kept'", l, "txl_c", "kept");
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

	command_tag(l, PQexecParams(l, "LISTEN ext_ch", 0, NULL, NULL, NULL, NULL, 0),
		    "LISTEN ext_ch", "LISTEN");
	/* not pinned: the single server serves another client at once */
	other_client_ok(o);
	notify_expect(n, "NOTIFY ext_ch, 'extended'", l, "ext_ch", "extended");
	command_tag(l, PQexecParams(l, "UNLISTEN ext_ch", 0, NULL, NULL, NULL, NULL, 0),
		    "UNLISTEN ext_ch", NULL);
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
 * Run sql with PQsendQuery and describe every result: "CMDSTATUS" for a
 * command, "rows:CMDSTATUS" for rows, "ERR:SQLSTATE" for an error, joined
 * with '|'; then the transaction status letter (I, T, E).
 */
static const char *
describe(PGconn *c, const char *sql)
{
	static char out[512];
	PGresult *res;
	size_t n = 0;

	out[0] = '\0';
	ck_assert_msg(PQsendQuery(c, sql), "%s", PQerrorMessage(c));
	while ((res = PQgetResult(c)) != NULL) {
		switch (PQresultStatus(res)) {
		case PGRES_COMMAND_OK:
			n += (size_t)snprintf(out + n, sizeof(out) - n, "%s|", PQcmdStatus(res));
			break;
		case PGRES_TUPLES_OK:
			n += (size_t)snprintf(out + n, sizeof(out) - n, "rows:%s|",
					      PQcmdStatus(res));
			break;
		default:
			n += (size_t)snprintf(out + n, sizeof(out) - n, "ERR:%s|",
					      PQresultErrorField(res, PG_DIAG_SQLSTATE)
						      ? PQresultErrorField(res, PG_DIAG_SQLSTATE)
						      : "?");
			break;
		}
		PQclear(res);
	}
	switch (PQtransactionStatus(c)) {
	case PQTRANS_IDLE:
		snprintf(out + n, sizeof(out) - n, "I");
		break;
	case PQTRANS_INTRANS:
		snprintf(out + n, sizeof(out) - n, "T");
		break;
	case PQTRANS_INERROR:
		snprintf(out + n, sizeof(out) - n, "E");
		break;
	default:
		snprintf(out + n, sizeof(out) - n, "?");
		break;
	}
	return out;
}

/* sql gives the same results (and transaction status) through pgdog and from PostgreSQL. */
static void
same_as_postgres(PGconn *l, PGconn *direct, const char *sql)
{
	char via[512], pg[512];

	snprintf(via, sizeof(via), "%s", describe(l, sql));
	snprintf(pg, sizeof(pg), "%s", describe(direct, sql));
	ck_assert_msg(strcmp(via, pg) == 0, "%s: pgdog %s, PostgreSQL %s", sql, via, pg);
}

/*
 * LISTEN/UNLISTEN among other statements of one Query are served by pgdog:
 * the results are PostgreSQL's (CommandComplete "LISTEN" in its place), the
 * registration counts only if the Query's transaction commits, and no
 * server is pinned (pool_size 1: another client gets the server at once).
 */
START_TEST(test_pubsub_multi_statement)
{
	PGconn *l = it_connect(APP), *o = it_connect(APP), *direct = it_pg_connect();
	PGconn *ref = it_pg_connect();
	long pins = pools_sum("pins");

	/* the same replies as PostgreSQL, statement by statement */
	same_as_postgres(l, ref, "LISTEN mix_a; SELECT 1");
	same_as_postgres(l, ref, "SELECT 1; LISTEN mix_b; SELECT 2");
	same_as_postgres(l, ref, "LISTEN mix_c; SELECT 1/0");
	same_as_postgres(l, ref, "BEGIN; LISTEN mix_d; ROLLBACK");
	same_as_postgres(l, ref, "BEGIN; /* c */ listen \"Mix E\"; COMMIT; SELECT 1");
	same_as_postgres(l, ref, "BEGIN; LISTEN mix_f");
	same_as_postgres(l, ref, "SELECT 3; LISTEN mix_g");
	same_as_postgres(l, ref, "COMMIT");
	PQclear(it_exec_ok(ref, "UNLISTEN *"));
	/* the single server is free: nothing pinned */
	other_client_ok(o);
	ck_assert_int_eq(pools_sum("pins"), pins);
	/* committed: a, b, Mix E, f, g; failed or rolled back: c, d */
	notify_expect(direct, "NOTIFY mix_c, 'no'; NOTIFY mix_d, 'no'; NOTIFY mix_a, 'a'", l,
		      "mix_a", "a");
	notify_expect(direct, "NOTIFY mix_b, 'b'", l, "mix_b", "b");
	notify_expect(direct, "NOTIFY \"Mix E\", 'e'", l, "Mix E", "e");
	notify_expect(direct, "NOTIFY mix_f, 'f'", l, "mix_f", "f");
	notify_expect(direct, "NOTIFY mix_g, 'g'", l, "mix_g", "g");
	/*
	 * UNLISTEN among others: at commit, not before; as in PostgreSQL, what
	 * arrived during the transaction is not delivered after it either (the
	 * session reads notifications after its commit, no longer listening)
	 */
	PQclear(it_exec_ok(l, "BEGIN"));
	PQclear(it_exec_ok(l, "SELECT 1; UNLISTEN mix_a; SELECT 2"));
	PQclear(it_exec_ok(direct, "NOTIFY mix_a, 'in the transaction'"));
	it_sleep_ms(300);
	PQclear(it_exec_ok(l, "COMMIT"));
	expect_none(l, 300);
	PQclear(it_exec_ok(direct, "NOTIFY mix_a, 'gone'"));
	expect_none(l, 300);
	/* rolled back: still listening */
	PQclear(it_exec_ok(l, "BEGIN; UNLISTEN mix_b; SELECT 1; ROLLBACK"));
	notify_expect(direct, "NOTIFY mix_b, 'kept'", l, "mix_b", "kept");
	/* a LISTEN in a Query, then at once a NOTIFY from elsewhere: it arrives */
	for (int i = 0; i < 5; i++) {
		char sql[64], ch[16];

		snprintf(ch, sizeof(ch), "mix_q%d", i);
		snprintf(sql, sizeof(sql), "LISTEN %s; SELECT 1", ch);
		PQclear(it_exec_ok(l, sql));
		snprintf(sql, sizeof(sql), "NOTIFY %s, 'now'", ch);
		PQclear(it_exec_ok(direct, sql));
		expect_one(l, ch, "now");
	}
	ck_assert_int_eq(pools_sum("pins"), pins);
	PQfinish(ref);
	PQfinish(direct);
	PQfinish(o);
	PQfinish(l);
}
END_TEST

/*
 * The extended protocol inside a transaction block (PQexecParams) is served
 * like the simple one: at COMMIT, nothing pinned. So are LISTEN and
 * UNLISTEN prepared as named statements: each counts when it runs (and its
 * transaction commits), never when it is prepared.
 */
START_TEST(test_pubsub_extended_in_transaction)
{
	PGconn *l = it_connect(APP), *o = it_connect(APP), *direct = it_pg_connect();
	long pins = pools_sum("pins");
	PGresult *res;

	PQclear(it_exec_ok(l, "BEGIN"));
	command_tag(l, PQexecParams(l, "LISTEN ext_tx", 0, NULL, NULL, NULL, NULL, 0),
		    "LISTEN ext_tx", "LISTEN");
	ck_assert_int_eq(PQtransactionStatus(l), PQTRANS_INTRANS);
	PQclear(it_exec_ok(direct, "NOTIFY ext_tx, 'before'"));
	PQclear(it_exec_ok(l, "COMMIT"));
	expect_none(l, 300);
	notify_expect(direct, "NOTIFY ext_tx, 'after'", l, "ext_tx", "after");
	/* rolled back: the UNLISTEN does not count */
	PQclear(it_exec_ok(l, "BEGIN"));
	command_tag(l, PQexecParams(l, "UNLISTEN ext_tx", 0, NULL, NULL, NULL, NULL, 0),
		    "UNLISTEN ext_tx", NULL);
	PQclear(it_exec_ok(l, "ROLLBACK"));
	notify_expect(direct, "NOTIFY ext_tx, 'kept'", l, "ext_tx", "kept");
	other_client_ok(o);
	ck_assert_int_eq(pools_sum("pins"), pins);
	/* named prepared statements: served, nothing pinned */
	command_tag(l, PQprepare(l, "lst", "LISTEN ext_named", 0, NULL), "lst", NULL);
	command_tag(l, PQprepare(l, "ulst", "UNLISTEN ext_named", 0, NULL), "ulst", NULL);
	/* prepared, not run: not listening */
	PQclear(it_exec_ok(direct, "NOTIFY ext_named, 'not yet'"));
	expect_none(l, 300);
	/* run in a block rolled back: not listening */
	PQclear(it_exec_ok(l, "BEGIN"));
	command_tag(l, PQexecPrepared(l, "lst", 0, NULL, NULL, NULL, 0), "lst", "LISTEN");
	PQclear(it_exec_ok(l, "ROLLBACK"));
	PQclear(it_exec_ok(direct, "NOTIFY ext_named, 'rolled back'"));
	expect_none(l, 300);
	/* run between transactions: listening, the server shared */
	command_tag(l, PQexecPrepared(l, "lst", 0, NULL, NULL, NULL, 0), "lst", "LISTEN");
	other_client_ok(o);
	notify_expect(direct, "NOTIFY ext_named, 'named'", l, "ext_named", "named");
	/* the UNLISTEN, prepared again (it was prepared while not listening), rolled back */
	command_tag(l, PQprepare(l, "ulst2", "UNLISTEN ext_named", 0, NULL), "ulst2", NULL);
	notify_expect(direct, "NOTIFY ext_named, 'still'", l, "ext_named", "still");
	PQclear(it_exec_ok(l, "BEGIN"));
	command_tag(l, PQexecPrepared(l, "ulst", 0, NULL, NULL, NULL, 0), "ulst", "UNLISTEN");
	PQclear(it_exec_ok(l, "ROLLBACK"));
	notify_expect(direct, "NOTIFY ext_named, 'kept'", l, "ext_named", "kept");
	command_tag(l, PQexecPrepared(l, "ulst2", 0, NULL, NULL, NULL, 0), "ulst2", NULL);
	PQclear(it_exec_ok(direct, "NOTIFY ext_named, 'gone'"));
	expect_none(l, 300);
	ck_assert_int_eq(pools_sum("pins"), pins);
	/* no pooled server listens: the server never ran a LISTEN */
	ck_assert_str_eq(it_value(o, "SELECT count(*) FROM pg_listening_channels()"), "0");
	/*
	 * Behind an Execute of the same Sync (pipeline mode): its reply cannot be
	 * told apart, so the LISTEN runs on the server, which stays pinned.
	 */
	ck_assert(PQenterPipelineMode(l));
	ck_assert(PQsendQueryParams(l, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0));
	ck_assert(PQsendQueryPrepared(l, "lst", 0, NULL, NULL, NULL, 0));
	ck_assert(PQpipelineSync(l));
	res = PQgetResult(l);
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	PQclear(res);
	ck_assert(PQgetResult(l) == NULL);
	res = PQgetResult(l);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(l));
	ck_assert_str_eq(PQcmdStatus(res), "LISTEN");
	PQclear(res);
	ck_assert(PQgetResult(l) == NULL);
	res = PQgetResult(l);
	ck_assert_int_eq(PQresultStatus(res), PGRES_PIPELINE_SYNC);
	PQclear(res);
	ck_assert(PQexitPipelineMode(l));
	ck_assert_int_eq(pools_sum("pins"), pins + 1);
	notify_expect(direct, "NOTIFY ext_named, 'pinned'", l, "ext_named", "pinned");
	/*
	 * A named UNLISTEN * rolled back leaves the server listening: it stays
	 * pinned (the pin went at its Bind, and o got the server, LISTEN and all)
	 */
	command_tag(l, PQprepare(l, "ulst_all", "UNLISTEN *", 0, NULL), "ulst_all", NULL);
	PQclear(it_exec_ok(l, "BEGIN"));
	command_tag(l, PQexecPrepared(l, "ulst_all", 0, NULL, NULL, NULL, 0), "ulst_all",
		    "UNLISTEN");
	PQclear(it_exec_ok(l, "ROLLBACK"));
	ck_assert_int_eq(PQsendQuery(o, "SELECT count(*) FROM pg_listening_channels()"), 1);
	ck_assert_msg(it_busy_for(o, 300), "o got the server l listens on");
	notify_expect(direct, "NOTIFY ext_named, 'still pinned'", l, "ext_named", "still pinned");
	PQclear(it_exec_ok(l, "UNLISTEN *"));
	ck_assert_str_eq(it_value_within(o, 3000, "o after l's UNLISTEN *"), "0");
	PQclear(it_exec_ok(l, "DEALLOCATE ALL"));
	other_client_ok(o);
	PQfinish(direct);
	PQfinish(o);
	PQfinish(l);
}
END_TEST

/*
 * With the extended protocol behind requests still running (libpq pipeline
 * mode), LISTEN/UNLISTEN go to the server with the rest and are followed
 * through its replies: "LISTEN" in its place, nothing pinned.
 */
START_TEST(test_pubsub_pipelined)
{
	PGconn *l = it_connect(APP), *o = it_connect(APP), *direct = it_pg_connect();
	static const char *const sqls[] = { "SELECT pg_sleep(0.2)", "LISTEN pipe_ch", "SELECT 2",
					    "UNLISTEN pipe_gone" };
	char got[256];
	size_t n = 0;
	int syncs = 0;
	long pins = pools_sum("pins");
	PGresult *res;

	got[0] = '\0';
	ck_assert(PQenterPipelineMode(l));
	for (size_t i = 0; i < sizeof(sqls) / sizeof(sqls[0]); i++) {
		ck_assert(PQsendQueryParams(l, sqls[i], 0, NULL, NULL, NULL, NULL, 0));
		ck_assert(PQpipelineSync(l));
	}
	for (long long end = it_now_ms() + 5000; syncs < 4 && it_now_ms() < end;) {
		res = PQgetResult(l);
		if (!res)
			continue;
		switch (PQresultStatus(res)) {
		case PGRES_PIPELINE_SYNC:
			syncs++;
			break;
		case PGRES_COMMAND_OK:
		case PGRES_TUPLES_OK:
			n += (size_t)snprintf(got + n, sizeof(got) - n, "%s|", PQcmdStatus(res));
			break;
		default:
			n += (size_t)snprintf(got + n, sizeof(got) - n, "ERR %s|",
					      PQresultErrorMessage(res));
			break;
		}
		PQclear(res);
	}
	ck_assert_int_eq(syncs, 4);
	ck_assert_str_eq(got, "SELECT 1|LISTEN|SELECT 1|UNLISTEN|");
	ck_assert(PQexitPipelineMode(l));
	other_client_ok(o);
	ck_assert_int_eq(pools_sum("pins"), pins);
	notify_expect(direct, "NOTIFY pipe_ch, 'piped'", l, "pipe_ch", "piped");
	PQfinish(direct);
	PQfinish(o);
	PQfinish(l);
}
END_TEST

/*
 * A LISTEN sent in the same Sync as extended-protocol messages before it
 * (a statement prepared, described, in libpq's pipeline mode) is followed:
 * nothing pinned. So is one behind pgdog's own Close and Sync.
 */
START_TEST(test_pubsub_pipelined_unsynced)
{
	PGconn *l = it_connect(APP), *o = it_connect(APP), *direct = it_pg_connect();
	long pins = pools_sum("pins");
	PGresult *res;
	char got[256];
	size_t n = 0;

	got[0] = '\0';
	ck_assert(PQenterPipelineMode(l));
	ck_assert(PQsendPrepare(l, "pu1", "SELECT 1", 0, NULL));
	ck_assert(PQsendDescribePrepared(l, "pu1"));
	ck_assert(PQsendQueryParams(l, "LISTEN unsync_ch", 0, NULL, NULL, NULL, NULL, 0));
	ck_assert(PQpipelineSync(l));
	for (long long end = it_now_ms() + 5000; it_now_ms() < end;) {
		res = PQgetResult(l);
		if (!res)
			continue;
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			break;
		}
		n += (size_t)snprintf(got + n, sizeof(got) - n, "%s:%s|",
				      PQresStatus(PQresultStatus(res)), PQcmdStatus(res));
		PQclear(res);
	}
	ck_assert_str_eq(got, "PGRES_COMMAND_OK:|PGRES_COMMAND_OK:|PGRES_COMMAND_OK:LISTEN|");
	ck_assert(PQexitPipelineMode(l));
	other_client_ok(o);
	ck_assert_int_eq(pools_sum("pins"), pins);
	ck_assert_str_eq(it_value(o, "SELECT count(*) FROM pg_listening_channels()"), "0");
	notify_expect(direct, "NOTIFY unsync_ch, 'followed'", l, "unsync_ch", "followed");
	/*
	 * The statement pgdog made for a 42P05 in a block is closed (Close and
	 * Sync of its own) in front of the next request: a LISTEN in it is
	 * still followed.
	 */
	PQclear(it_exec_ok(l, "BEGIN"));
	command_tag(l, PQprepare(l, "jd", "SELECT 1", 0, NULL), "jd", NULL);
	res = PQprepare(l, "jd", "SELECT 2", 0, NULL);
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "42P05");
	PQclear(res);
	ck_assert_str_eq(describe(l, "ROLLBACK; LISTEN junk_ch; SELECT 1"),
			 "ROLLBACK|LISTEN|rows:SELECT 1|I");
	notify_expect(direct, "NOTIFY junk_ch, 'after junk'", l, "junk_ch", "after junk");
	ck_assert_int_eq(pools_sum("pins"), pins);
	PQclear(it_exec_ok(l, "UNLISTEN *"));
	PQfinish(direct);
	PQfinish(o);
	PQfinish(l);
}
END_TEST

/*
 * Write the n Queries of sqls to c's socket at once (libpq idle) and read
 * the replies up to the n-th ReadyForQuery; returns how many came (n, or
 * fewer when the connection broke or 5 s passed).
 */
static int
raw_queries(PGconn *c, const char *const *sqls, int n)
{
	static unsigned char buf[65536];
	size_t got = 0, at = 0;
	int fd = PQsocket(c), ready = 0;
	long long end = it_now_ms() + 5000;

	ck_assert_int_eq(it_raw_send_queries(fd, sqls, n), 0);
	while (ready < n && it_now_ms() < end) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		while (got - at >= 5) {
			size_t mlen = (size_t)buf[at + 1] << 24 | (size_t)buf[at + 2] << 16 |
				      (size_t)buf[at + 3] << 8 | buf[at + 4];

			if (got - at < 1 + mlen)
				break;
			if (buf[at] == 'Z')
				ready++;
			at += 1 + mlen;
		}
		if (ready == n)
			break;
		if (at == got)
			at = got = 0;
		ck_assert(got < sizeof(buf));
		poll(&pfd, 1, 100);
		r = read(fd, buf + got, sizeof(buf) - got);
		if (r == 0)
			break;
		if (r > 0)
			got += (size_t)r;
	}
	return ready;
}

/*
 * A Query of LISTENs and PREPARE TRANSACTIONs, each of which gets pgdog's
 * guard in front: as many followed statements as the Query has, plus the
 * guards (never more than pgdog keeps room for), and PostgreSQL's answer.
 */
START_TEST(test_pubsub_many_guards)
{
	PGconn *l = it_connect(APP), *direct = it_pg_connect();
	char sql[1024];
	size_t n = 0;

	for (int i = 0; i < 8; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n,
				      "%sLISTEN mg_%d; PREPARE TRANSACTION 'mg_%d'", i ? "; " : "",
				      i, i);
	ck_assert_str_eq(describe(direct, sql), "LISTEN|ERR:0A000|I");
	ck_assert_str_eq(describe(l, sql), "LISTEN|ERR:0A000|I");
	/* behind three Queries pub/sub follows too: four followed at once */
	ck_assert_int_eq(
		raw_queries(l,
			    (const char *const[]){ "LISTEN mg_a; SELECT 1", "LISTEN mg_b; SELECT 2",
						   "LISTEN mg_c; SELECT 3", sql },
			    4),
		4);
	notify_expect(direct, "NOTIFY mg_0, 'no'; NOTIFY mg_b, 'b'", l, "mg_b", "b");
	ck_assert_str_eq(it_value(l, "SELECT 'alive'"), "alive");
	PQclear(it_exec_ok(l, "UNLISTEN *"));
	PQfinish(direct);
	PQfinish(l);
}
END_TEST

/* Run sql with the extended protocol (unnamed statement, no parameters); it must succeed. */
static void
params_ok(PGconn *c, const char *sql)
{
	command_tag(c, PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0), sql, NULL);
}

/*
 * Savepoints: a LISTEN rolled back to (ROLLBACK TO SAVEPOINT) does not take
 * effect at COMMIT; RELEASE keeps it; an UNLISTEN rolled back to leaves the
 * registration. Whether sent as separate Queries or in one.
 */
START_TEST(test_pubsub_savepoint)
{
	PGconn *l = it_connect(APP), *direct = it_pg_connect();
	long pins = pools_sum("pins");

	PQclear(it_exec_ok(l, "BEGIN"));
	PQclear(it_exec_ok(l, "SAVEPOINT s1"));
	PQclear(it_exec_ok(l, "LISTEN sp_a"));
	PQclear(it_exec_ok(l, "ROLLBACK TO SAVEPOINT s1"));
	PQclear(it_exec_ok(l, "LISTEN sp_b"));
	PQclear(it_exec_ok(l, "SAVEPOINT s2"));
	PQclear(it_exec_ok(l, "LISTEN sp_c"));
	PQclear(it_exec_ok(l, "SAVEPOINT s3"));
	PQclear(it_exec_ok(l, "LISTEN sp_d"));
	PQclear(it_exec_ok(l, "RELEASE SAVEPOINT s2")); /* s3 goes too; sp_c and sp_d stay */
	PQclear(it_exec_ok(l, "SAVEPOINT s4"));
	PQclear(it_exec_ok(l, "LISTEN sp_e"));
	PQclear(it_exec_ok(l, "ROLLBACK TO s4"));
	PQclear(it_exec_ok(l, "COMMIT"));
	notify_expect(direct, "NOTIFY sp_a, 'a'; NOTIFY sp_e, 'e'; NOTIFY sp_b, 'b'", l, "sp_b",
		      "b");
	notify_expect(direct, "NOTIFY sp_c, 'c'", l, "sp_c", "c");
	notify_expect(direct, "NOTIFY sp_d, 'd'", l, "sp_d", "d");
	/* an UNLISTEN rolled back to: still registered */
	PQclear(it_exec_ok(l, "BEGIN; SAVEPOINT u; UNLISTEN sp_b; ROLLBACK TO u; COMMIT"));
	notify_expect(direct, "NOTIFY sp_b, 'kept'", l, "sp_b", "kept");
	/* in one Query, with an error rolled back to in between */
	PQclear(it_exec_ok(l, "BEGIN"));
	PQclear(it_exec_ok(l, "LISTEN sp_f"));
	PQclear(it_exec_ok(l, "SAVEPOINT x; LISTEN sp_g"));
	PQclear(PQexec(l, "SELECT 1/0"));
	PQclear(it_exec_ok(l, "ROLLBACK TO x; LISTEN sp_h; COMMIT"));
	notify_expect(direct, "NOTIFY sp_g, 'g'; NOTIFY sp_f, 'f'", l, "sp_f", "f");
	notify_expect(direct, "NOTIFY sp_h, 'h'", l, "sp_h", "h");
	/* savepoints sent with the extended protocol (PQexecParams) are followed too */
	PQclear(it_exec_ok(l, "BEGIN"));
	PQclear(it_exec_ok(l, "LISTEN sp_x"));
	params_ok(l, "SAVEPOINT e1");
	params_ok(l, "LISTEN sp_y");
	params_ok(l, "ROLLBACK TO SAVEPOINT e1");
	params_ok(l, "SAVEPOINT e2");
	params_ok(l, "LISTEN sp_z");
	params_ok(l, "RELEASE e2");
	params_ok(l, "COMMIT");
	notify_expect(direct, "NOTIFY sp_y, 'y'; NOTIFY sp_x, 'x'", l, "sp_x", "x");
	notify_expect(direct, "NOTIFY sp_z, 'z'", l, "sp_z", "z");
	ck_assert_int_eq(pools_sum("pins"), pins);
	PQfinish(direct);
	PQfinish(l);
}
END_TEST

/* Prepare name as sql (extended protocol, named statement); it must succeed. */
static void
prepare_ok(PGconn *c, const char *name, const char *sql)
{
	command_tag(c, PQprepare(c, name, sql, 0, NULL), sql, NULL);
}

/* Run the named prepared statement name; it must succeed. */
static void
prepared_ok(PGconn *c, const char *name)
{
	command_tag(c, PQexecPrepared(c, name, 0, NULL, NULL, NULL, 0), name, NULL);
}

/*
 * Savepoint commands run as named prepared statements (as drivers do once
 * they prepare what they run often) are followed like the others: a LISTEN
 * rolled back to does not take effect, one released does; nothing pinned.
 */
START_TEST(test_pubsub_savepoint_named)
{
	PGconn *l = it_connect(APP), *direct = it_pg_connect();
	long pins = pools_sum("pins");

	PQclear(it_exec_ok(l, "BEGIN"));
	PQclear(it_exec_ok(l, "LISTEN spn_a"));
	prepare_ok(l, "sv1", "SAVEPOINT n1");
	prepare_ok(l, "rb1", "ROLLBACK TO SAVEPOINT n1");
	prepare_ok(l, "sv2", "SAVEPOINT n2");
	prepare_ok(l, "rl2", "RELEASE SAVEPOINT n2");
	prepared_ok(l, "sv1");
	PQclear(it_exec_ok(l, "LISTEN spn_b"));
	prepared_ok(l, "rb1");
	prepared_ok(l, "sv2");
	params_ok(l, "LISTEN spn_c");
	prepared_ok(l, "rl2");
	/* a new savepoint of the same name, rolled back to: the newest counts */
	prepared_ok(l, "sv1");
	PQclear(it_exec_ok(l, "LISTEN spn_d"));
	prepared_ok(l, "rb1");
	PQclear(it_exec_ok(l, "COMMIT"));
	notify_expect(direct, "NOTIFY spn_b, 'b'; NOTIFY spn_d, 'd'; NOTIFY spn_a, 'a'", l, "spn_a",
		      "a");
	notify_expect(direct, "NOTIFY spn_c, 'c'", l, "spn_c", "c");
	/* an UNLISTEN rolled back to by a named statement: still registered */
	PQclear(it_exec_ok(l, "BEGIN"));
	prepared_ok(l, "sv1");
	PQclear(it_exec_ok(l, "UNLISTEN spn_a"));
	prepared_ok(l, "rb1");
	PQclear(it_exec_ok(l, "COMMIT"));
	notify_expect(direct, "NOTIFY spn_a, 'kept'", l, "spn_a", "kept");
	ck_assert_int_eq(pools_sum("pins"), pins);
	PQclear(it_exec_ok(l, "UNLISTEN *"));
	PQfinish(direct);
	PQfinish(l);
}
END_TEST

/*
 * PREPARE TRANSACTION of a transaction with a LISTEN or UNLISTEN pgdog
 * served fails as in PostgreSQL (0A000, its message, the transaction rolled
 * back); other transactions still prepare.
 */
START_TEST(test_pubsub_prepare_transaction)
{
	PGconn *l = it_connect(APP), *ref = it_pg_connect(), *direct = it_pg_connect();
	char via[128];
	const char *msg;

	/* PostgreSQL's own answer, for comparison */
	PQclear(it_exec_ok(ref, "BEGIN"));
	PQclear(it_exec_ok(ref, "LISTEN pt_ref"));
	snprintf(via, sizeof(via), "%s",
		 it_exec_error(ref, "PREPARE TRANSACTION 'pt_ref'", "0A000"));
	ck_assert_int_eq(PQtransactionStatus(ref), PQTRANS_IDLE);
	/* a lone LISTEN in the block */
	PQclear(it_exec_ok(l, "BEGIN"));
	PQclear(it_exec_ok(l, "LISTEN pt_a"));
	msg = it_exec_error(l, "PREPARE TRANSACTION 'pt_1'", "0A000");
	ck_assert_str_eq(msg, via);
	ck_assert_str_eq(
		msg, "cannot PREPARE a transaction that has executed LISTEN, UNLISTEN, or NOTIFY");
	ck_assert_int_eq(PQtransactionStatus(l), PQTRANS_IDLE);
	/* in one Query, in a block or in the implicit one (which PREPARE TRANSACTION prepares) */
	same_as_postgres(l, ref, "BEGIN; SELECT 1; LISTEN pt_b; PREPARE TRANSACTION 'pt_2'");
	same_as_postgres(l, ref, "LISTEN pt_d; PREPARE TRANSACTION 'pt_4'");
	/* in an aborted block PostgreSQL answers ROLLBACK: so does pgdog */
	same_as_postgres(l, ref, "BEGIN");
	same_as_postgres(l, ref, "LISTEN pt_e");
	same_as_postgres(l, ref, "SELECT 1/0");
	same_as_postgres(l, ref, "PREPARE TRANSACTION 'pt_5'");
	/* an UNLISTEN of a session that listened before */
	PQclear(it_exec_ok(l, "BEGIN"));
	PQclear(it_exec_ok(l, "UNLISTEN pt_c"));
	ck_assert_str_eq(it_exec_error(l, "PREPARE TRANSACTION 'pt_3'", "0A000"), via);
	/* nothing was prepared, nothing registered */
	ck_assert_str_eq(
		it_pg_value("SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'pt_%'"), "0");
	PQclear(it_exec_ok(direct, "NOTIFY pt_a, 'no'; NOTIFY pt_b, 'no'; NOTIFY pt_d, 'no'; "
				   "NOTIFY pt_e, 'no'"));
	expect_none(l, 300);
	/* the guard does not get in the way of other transactions */
	PQclear(it_exec_ok(l, "BEGIN"));
	PQclear(it_exec_ok(l, "SELECT 1"));
	PQclear(it_exec_ok(l, "PREPARE TRANSACTION 'pt_ok'"));
	PQclear(it_exec_ok(l, "COMMIT PREPARED 'pt_ok'"));
	/* nor does an UNLISTEN of a session that never listened (PostgreSQL allows it) */
	{
		PGconn *f = it_connect(APP), *fref = it_pg_connect();
		char pg[128];

		snprintf(pg, sizeof(pg), "%s",
			 describe(fref, "BEGIN; UNLISTEN never_ch; PREPARE TRANSACTION 'pt_ok3'"));
		ck_assert_str_eq(pg, "BEGIN|UNLISTEN|PREPARE TRANSACTION|I");
		ck_assert_str_eq(
			describe(f, "BEGIN; UNLISTEN never_ch; PREPARE TRANSACTION 'pt_ok2'"), pg);
		PQclear(it_exec_ok(direct, "COMMIT PREPARED 'pt_ok2'"));
		PQclear(it_exec_ok(direct, "COMMIT PREPARED 'pt_ok3'"));
		PQfinish(fref);
		PQfinish(f);
	}
	PQfinish(direct);
	PQfinish(ref);
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
 * Read c until it is closed (at most ms); true when it was. PQisBusy parses
 * what was read (an ErrorResponse while idle goes to the notice receiver),
 * also what arrived together with the end of the connection.
 */
static bool
wait_closed(PGconn *c, int ms)
{
	for (long long end = it_now_ms() + ms; it_now_ms() < end; it_sleep_ms(20)) {
		int ok = PQconsumeInput(c);

		(void)PQisBusy(c);
		if (!ok)
			return true;
	}
	return PQstatus(c) == CONNECTION_BAD;
}

/*
 * The listener's backend is terminated: notifications sent until pgdog
 * LISTENs again would be lost, so its listening clients are disconnected
 * (FATAL 08006) at their next boundary — an idle one at once, one in a
 * transaction right after its COMMIT — and reconnect as after any lost
 * connection; a client that LISTENs then is served by a new listener.
 */
START_TEST(test_pubsub_listener_lost)
{
	PGconn *l = it_connect(APP), *t = it_connect(APP), *adm = it_connect(ADMIN);
	PGconn *direct = it_pg_connect(), *l2;
	PGresult *res;
	int w = worker_of(l), old_pid = 0, new_pid = 0;
	char sql[160];

	PQclear(it_exec_ok(l, "LISTEN re_ch"));
	PQclear(it_exec_ok(t, "LISTEN re_ch"));
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
	PQclear(it_exec_ok(t, "BEGIN"));
	PQclear(it_exec_ok(t, "SELECT 1"));
	fatal_sqlstate[0] = fatal_msg[0] = '\0';
	PQsetNoticeReceiver(l, keep_fatal, NULL);
	/* every listener (one per worker), so t loses its own too */
	it_pg_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
		   "WHERE application_name = 'pgdog_listener'");
	/* the idle client: FATAL 08006 at once, then the connection closes */
	ck_assert_msg(wait_closed(l, 3000), "the idle listening client was not disconnected");
	ck_assert_msg(strcmp(fatal_sqlstate, "08006") == 0 && strstr(fatal_msg, "LISTEN") != NULL,
		      "idle client: %s %s (%s)", fatal_sqlstate, fatal_msg, PQerrorMessage(l));
	/* the client in a transaction finishes it, then gets the FATAL */
	fatal_sqlstate[0] = fatal_msg[0] = '\0';
	PQsetNoticeReceiver(t, keep_fatal, NULL);
	ck_assert_str_eq(it_value(t, "SELECT 'still in the transaction'"),
			 "still in the transaction");
	command_tag(t, PQexec(t, "COMMIT"), "COMMIT", NULL);
	ck_assert_msg(wait_closed(t, 3000), "the client in a transaction was not disconnected");
	ck_assert_str_eq(fatal_sqlstate, "08006");
	ck_assert(it_log_contains("listener connection of pool"));
	/* a client that LISTENs now is served by a new listener */
	l2 = it_connect(APP);
	PQclear(it_exec_ok(l2, "LISTEN re_ch"));
	notify_expect(direct, "NOTIFY re_ch, 'again'", l2, "re_ch", "again");
	res = it_exec_ok(adm, "SHOW LISTENERS");
	for (int i = 0; i < PQntuples(res); i++)
		if (strcmp(PQgetvalue(res, i, PQfnumber(res, "channel")), "re_ch") == 0)
			new_pid = atoi(PQgetvalue(res, i, PQfnumber(res, "backend_pid")));
	PQclear(res);
	ck_assert_int_gt(new_pid, 0);
	ck_assert_int_ne(new_pid, old_pid);
	PQfinish(l2);
	PQfinish(direct);
	PQfinish(adm);
	PQfinish(t);
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
	notify_expect(n, "NOTIFY show_ch, 'counted'", a, "show_ch", "counted");
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
	notify_expect(hold, "NOTIFY lf_ch, 'works'", l, "lf_ch", "works");
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
	command_tag(l, PQexec(l, "COMMIT"), "COMMIT", NULL);
	/* read as a client does: what PQconsumeInput reads is parsed (PQisBusy) */
	(void)wait_closed(l, 3000);
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

/*
 * Statement mode: LISTEN among other statements is served the same way; a
 * Query that statement mode refuses (a transaction block) leaves nothing
 * behind, and the next ones get their own replies.
 */
START_TEST(test_pubsub_statement_mode)
{
	PGconn *l = it_connect(APP), *direct = it_pg_connect();

	ck_assert_str_eq(describe(l, "LISTEN st_a; SELECT 1"), "LISTEN|rows:SELECT 1|I");
	ck_assert_str_eq(describe(l, "BEGIN; LISTEN st_b; COMMIT"), "ERR:0A000|I");
	ck_assert_str_eq(describe(l, "SELECT 2; LISTEN st_c"), "rows:SELECT 1|LISTEN|I");
	ck_assert_str_eq(describe(l, "SELECT 3"), "rows:SELECT 1|I");
	notify_expect(direct, "NOTIFY st_b, 'no'; NOTIFY st_a, 'a'", l, "st_a", "a");
	notify_expect(direct, "NOTIFY st_c, 'c'", l, "st_c", "c");
	PQfinish(direct);
	PQfinish(l);
}
END_TEST

/*
 * prepared_statements = full: LISTEN among SQL PREPARE / EXECUTE /
 * DEALLOCATE in one Query is followed as among other statements, also when
 * pgdog puts statements of its own in front (a statement prepared again, a
 * name PREPAREd twice): PostgreSQL's replies, the LISTEN counting only when
 * its transaction commits, nothing pinned.
 */
START_TEST(test_pubsub_full_prepare)
{
	PGconn *l = it_connect(APP), *o = it_connect(APP), *direct = it_pg_connect();
	long pins = pools_sum("pins");

	ck_assert_str_eq(describe(l, "PREPARE fp AS SELECT 'fp'; LISTEN pf_a; EXECUTE fp"),
			 "PREPARE|LISTEN|rows:SELECT 1|I");
	notify_expect(direct, "NOTIFY pf_a, 'a'", l, "pf_a", "a");
	/* a name the client has: 42P05, and the implicit transaction (its LISTEN) rolled back */
	ck_assert_str_eq(describe(l, "LISTEN pf_b; PREPARE fp AS SELECT 2"), "LISTEN|ERR:42P05|I");
	PQclear(it_exec_ok(direct, "NOTIFY pf_b, 'b'"));
	expect_none(l, 300);
	/* fp evicted by fq, prepared again in front of the EXECUTE, in a block */
	ck_assert_str_eq(describe(l, "PREPARE fq AS SELECT 'fq'"), "PREPARE|I");
	ck_assert_str_eq(describe(l, "BEGIN; LISTEN pf_c; EXECUTE fp; COMMIT"),
			 "BEGIN|LISTEN|rows:SELECT 1|COMMIT|I");
	ck_assert_str_eq(describe(l, "BEGIN; LISTEN pf_d; EXECUTE fq"),
			 "BEGIN|LISTEN|rows:SELECT 1|T");
	ck_assert_str_eq(describe(l, "ROLLBACK"), "ROLLBACK|I");
	notify_expect(direct, "NOTIFY pf_d, 'd'; NOTIFY pf_c, 'c'", l, "pf_c", "c");
	/* a protocol-level statement run by EXECUTE: its Parse and a Sync in front */
	command_tag(l, PQprepare(l, "pp", "SELECT 'pp'", 0, NULL), "pp", NULL);
	ck_assert_str_eq(describe(l, "EXECUTE fp"), "rows:SELECT 1|I");
	ck_assert_str_eq(describe(l, "LISTEN pf_e; EXECUTE pp; UNLISTEN pf_a"),
			 "LISTEN|rows:SELECT 1|UNLISTEN|I");
	ck_assert_str_eq(describe(l, "DEALLOCATE fp; LISTEN pf_f; EXECUTE fq"),
			 "DEALLOCATE|LISTEN|rows:SELECT 1|I");
	ck_assert_str_eq(describe(l, "EXECUTE fp"), "ERR:26000|I");
	notify_expect(direct, "NOTIFY pf_a, 'gone'; NOTIFY pf_e, 'e'", l, "pf_e", "e");
	notify_expect(direct, "NOTIFY pf_f, 'f'", l, "pf_f", "f");
	other_client_ok(o);
	ck_assert_int_eq(pools_sum("pins"), pins);
	ck_assert_str_eq(it_value(o, "SELECT count(*) FROM pg_listening_channels()"), "0");
	PQfinish(direct);
	PQfinish(o);
	PQfinish(l);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("it_pubsub");
	TCase *tc = tcase_create("pubsub");
	TCase *small = tcase_create("pubsub_small");
	TCase *statement = tcase_create("pubsub_statement");
	TCase *full = tcase_create("pubsub_full");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pubsub_fanout);
	tcase_add_test(tc, test_pubsub_commit_rollback);
	tcase_add_test(tc, test_pubsub_both_workers);
	tcase_add_test(tc, test_pubsub_unlisten);
	tcase_add_test(tc, test_pubsub_not_pinned);
	tcase_add_test(tc, test_pubsub_do_listen_pins);
	tcase_add_test(tc, test_pubsub_held_in_transaction);
	tcase_add_test(tc, test_pubsub_sender_pid);
	tcase_add_test(tc, test_pubsub_self_notify);
	tcase_add_test(tc, test_pubsub_listen_in_transaction);
	tcase_add_test(tc, test_pubsub_extended);
	tcase_add_test(tc, test_pubsub_multi_statement);
	tcase_add_test(tc, test_pubsub_savepoint);
	tcase_add_test(tc, test_pubsub_savepoint_named);
	tcase_add_test(tc, test_pubsub_prepare_transaction); /* before any server LISTENs */
	tcase_add_test(tc, test_pubsub_extended_in_transaction);
	tcase_add_test(tc, test_pubsub_pipelined);
	tcase_add_test(tc, test_pubsub_pipelined_unsynced);
	tcase_add_test(tc, test_pubsub_many_guards);
	tcase_add_test(tc, test_pubsub_many_channels);
	tcase_add_test(tc, test_pubsub_show_listeners);
	tcase_add_test(tc, test_pubsub_listener_lost);
	tcase_add_test(tc, test_pubsub_listener_login_fails); /* last: changes the role */
	suite_add_tcase(s, tc);
	tcase_add_unchecked_fixture(small, setup_small, teardown);
	tcase_set_timeout(small, 60);
	tcase_add_test(small, test_pubsub_overflow);
	tcase_add_test(small, test_pubsub_slow_reader);
	suite_add_tcase(s, small);
	tcase_add_unchecked_fixture(statement, setup_statement, teardown);
	tcase_set_timeout(statement, 60);
	tcase_add_test(statement, test_pubsub_statement_mode);
	suite_add_tcase(s, statement);
	tcase_add_unchecked_fixture(full, setup_full, teardown);
	tcase_set_timeout(full, 60);
	tcase_add_test(full, test_pubsub_full_prepare);
	suite_add_tcase(s, full);
	return it_run_suite(s);
}
