/*
 * it_replication.c: SHOW REPLICATION against a real streaming replica. The
 * test's primary cluster gets a replica made with pg_basebackup -R on a
 * second port; pgdog has both as [databases.*] sections of database "app"
 * (roles primary and replica) and checks them every 300 ms. The replica's
 * lag is 0 while it keeps up, grows while its replay is paused and the
 * primary writes, and goes back to 0 when replay resumes.
 */
#include "t/lib/it.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADMIN "dbname=admin user=admin password=pgdog"

static int replica_port;
static char replica_dir[IT_PATH_MAX];

/* Run t/pgenv.sh with args; its output goes to DIR/pgenv-replica.out. */
static int
pgenv(const char *args)
{
	char cmd[IT_PATH_MAX * 3];

	snprintf(cmd, sizeof(cmd), "/bin/sh '%s/t/pgenv.sh' %s >'%s' 2>&1", it_srcdir(), args,
		 it_path("pgenv-replica.out"));
	return system(cmd);
}

static void
setup(void)
{
	static char dbs[256];
	char args[IT_PATH_MAX * 2];

	it_env_start("replication");
	it_pg_start(NULL); /* initdb's pg_hba.conf: replication connections over TCP are trusted */
	it_pg_role("app", "app_pw", "scram-sha-256");
	snprintf(replica_dir, sizeof(replica_dir), "%s/replica", g_it.dir);
	replica_port = it_free_port();
	snprintf(args, sizeof(args), "replica '%s' %d %d", replica_dir, g_it.pg_port, replica_port);
	ck_assert_msg(pgenv(args) == 0, "pgenv.sh replica failed: %s",
		      it_read_file(it_path("pgenv-replica.out")));
	snprintf(dbs, sizeof(dbs),
		 "[databases.app_replica]\nname = app\nhost = 127.0.0.1\nport = %d\n"
		 "database_name = postgres\nrole = replica\n",
		 replica_port);
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 2,
		.general = "lsn_check_interval = 300\n",
		.databases = dbs,
	});
}

static void
teardown(void)
{
	char args[IT_PATH_MAX + 16];

	snprintf(args, sizeof(args), "stop '%s'", replica_dir);
	(void)pgenv(args);
	it_env_stop();
}

/* Column col of SHOW REPLICATION for the server on port; NULL if NULL. */
static const char *
repl_value(PGconn *adm, int port, const char *col)
{
	static char out[64];
	PGresult *res = it_exec_ok(adm, "SHOW REPLICATION");
	int cp = PQfnumber(res, "port"), cc = PQfnumber(res, col), rows = 0;
	const char *v = NULL;
	char p[16];

	ck_assert(cp >= 0 && cc >= 0);
	snprintf(p, sizeof(p), "%d", port);
	for (int r = 0; r < PQntuples(res); r++) {
		if (strcmp(PQgetvalue(res, r, cp), p) != 0)
			continue;
		rows++;
		if (!PQgetisnull(res, r, cc)) {
			snprintf(out, sizeof(out), "%s", PQgetvalue(res, r, cc));
			v = out;
		}
	}
	PQclear(res);
	ck_assert_int_eq(rows, 1);
	return v;
}

/* Wait up to timeout_ms for the replica's lag to satisfy ok(lag); returns the lag. */
static long long
wait_lag(PGconn *adm, bool (*ok)(long long lag), int timeout_ms, const char *what)
{
	long long end = it_now_ms() + timeout_ms;

	for (;;) {
		const char *v = repl_value(adm, replica_port, "replica_lag");

		if (v && ok(atoll(v)))
			return atoll(v);
		ck_assert_msg(it_now_ms() < end, "replica_lag never %s (last %s)", what,
			      v ? v : "NULL");
		it_sleep_ms(100);
	}
}

static bool
is_zero(long long lag)
{
	return lag == 0;
}

static bool
is_over_a_second(long long lag)
{
	return lag >= 1000;
}

/* Wait until the replica rep has replayed everything the primary has written. */
static void
wait_replayed(PGconn *rep)
{
	long long end = it_now_ms() + 5000;
	char sql[160];

	snprintf(sql, sizeof(sql),
		 "SELECT pg_last_xact_replay_timestamp() IS NOT NULL AND "
		 "pg_last_wal_replay_lsn() >= '%s'",
		 it_pg_value("SELECT pg_current_wal_lsn()"));
	while (strcmp(it_value(rep, sql), "t") != 0) {
		ck_assert_msg(it_now_ms() < end, "the replica did not replay the primary's WAL");
		it_sleep_ms(50);
	}
}

START_TEST(test_replication_lag)
{
	PGconn *adm = it_connect(ADMIN), *rep;
	char conninfo[128];
	long long end = it_now_ms() + 5000, lag;
	const char *v;

	/* both servers checked: the primary is not in recovery, the replica is */
	while (!repl_value(adm, g_it.pg_port, "pg_is_in_recovery") ||
	       !repl_value(adm, replica_port, "pg_is_in_recovery")) {
		ck_assert_msg(it_now_ms() < end, "SHOW REPLICATION never had figures");
		it_sleep_ms(100);
	}
	ck_assert_str_eq(repl_value(adm, g_it.pg_port, "pg_is_in_recovery"), "f");
	ck_assert_str_eq(repl_value(adm, replica_port, "pg_is_in_recovery"), "t");
	ck_assert_ptr_null(repl_value(adm, g_it.pg_port, "replica_lag"));
	ck_assert_ptr_nonnull(strchr(repl_value(adm, g_it.pg_port, "pg_lsn"), '/'));
	v = repl_value(adm, replica_port, "lsn_age");
	ck_assert_msg(atoll(v) < 2000, "lsn_age %s ms: the checks are not every 300 ms", v);

	/* a write the replica replays (seen on the replica itself): caught up again */
	snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%d user=postgres dbname=postgres",
		 replica_port);
	rep = PQconnectdb(conninfo);
	ck_assert_msg(PQstatus(rep) == CONNECTION_OK, "%s", PQerrorMessage(rep));
	it_pg_exec("CREATE TABLE repl_t (i int); INSERT INTO repl_t VALUES (1)");
	wait_replayed(rep);
	wait_lag(adm, is_zero, 5000, "0 after the replica caught up");
	ck_assert_ptr_nonnull(strchr(repl_value(adm, replica_port, "pg_lsn"), '/'));

	/* replay paused, the primary writes: the lag is the time since the last replay */
	PQclear(it_exec_ok(rep, "SELECT pg_wal_replay_pause()"));
	it_sleep_ms(1200);
	it_pg_exec("INSERT INTO repl_t VALUES (2)");
	lag = wait_lag(adm, is_over_a_second, 5000, ">= 1000 ms while replay is paused");
	ck_assert_msg(lag < 60000, "replica_lag %lld ms", lag);
	/* one check connection to each server, from worker 0 only */
	ck_assert_str_eq(it_value(rep, "SELECT count(*) FROM pg_stat_activity "
				       "WHERE application_name = 'pgdog_lsn_check'"),
			 "1");

	PQclear(it_exec_ok(rep, "SELECT pg_wal_replay_resume()"));
	wait_replayed(rep);
	wait_lag(adm, is_zero, 5000, "0 after replay resumed");
	PQfinish(rep);
	PQfinish(adm);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("it_replication");
	TCase *tc = tcase_create("replication");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_replication_lag);
	suite_add_tcase(s, tc);
	return it_run_suite(s);
}
