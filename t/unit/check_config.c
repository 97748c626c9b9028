/*
 * check_config.c: unit tests for shared/config.c: defaults, every key, the
 * samples in conf/, -d URLs, pool resolution, and one test per class of
 * error message, each checked word for word including FILE:LINE.
 * Runs in: the test process only. No network; temp files only in TMPDIR.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <check.h>

#include "shared/config.h"
#include "shared/shm.h"

#define SCRAM_VERIFIER \
	"SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$bpSY5Ze9NUH+I35LC3gVq+DpBfK46iXBxvhAKqVu9pE=:VpYlBuxyzeCI1KnctrefdljpB1mk3Gp7sBI/t11+NkQ="
#define MD5_HASH "md54a0a68b43b6cd5cf266fa02f196e2371"

/* The smallest valid pgdog.ini. */
#define MIN_INI "[databases.prod]\nhost = 127.0.0.1\n"

static struct config *
load_ok(const char *ini, const char *users)
{
	char err[512] = "";
	struct config *cfg = config_new();

	ck_assert_ptr_nonnull(cfg);
	ck_assert_msg(config_load_strings(cfg, "pgdog.ini", ini, "users.ini", users, err,
					  sizeof(err)) == 0,
		      "unexpected error: %s", err);
	return cfg;
}

static void
load_fails(const char *ini, const char *users, const char *expected)
{
	char err[512] = "";
	struct config *cfg = config_new();

	ck_assert_ptr_nonnull(cfg);
	ck_assert_int_eq(
		config_load_strings(cfg, "pgdog.ini", ini, "users.ini", users, err, sizeof(err)),
		-1);
	ck_assert_str_eq(err, expected);
	config_free(cfg);
}

static void
urls_fail(const char *ini, const char *url, const char *expected)
{
	char err[512] = "";
	struct config *cfg = config_new();
	char path[] = "/tmp/check_config_XXXXXX";
	int fd = -1;

	ck_assert_ptr_nonnull(cfg);
	if (ini != NULL) {
		fd = mkstemp(path);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, ini, strlen(ini)), (ssize_t)strlen(ini));
		close(fd);
	}
	ck_assert_int_eq(
		config_load(cfg, ini != NULL ? path : NULL, NULL, &url, 1, err, sizeof(err)), -1);
	ck_assert_str_eq(err, expected);
	if (fd >= 0)
		unlink(path);
	config_free(cfg);
}

/* ---- good files ----------------------------------------------------------- */

START_TEST(test_config_defaults)
{
	struct config *cfg = load_ok(MIN_INI, NULL);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	const struct config_database *d;

	ck_assert_str_eq(cfg->host, "0.0.0.0");
	ck_assert_int_eq(cfg->port, 6432);
	ck_assert_int_eq(cfg->workers, cpus < 1 ? 1 : cpus > 64 ? 64 : cpus);
	ck_assert_str_eq(cfg->unix_socket_dir, "/tmp");
	ck_assert_int_eq(cfg->default_pool_size, 10);
	ck_assert_int_eq(cfg->min_pool_size, 1);
	ck_assert_int_eq(cfg->pooler_mode, CONFIG_POOLER_TRANSACTION);
	ck_assert_int_eq(cfg->prepared_statements, CONFIG_PREPARED_EXTENDED);
	ck_assert_int_eq(cfg->prepared_statements_limit, 0);
	ck_assert_int_eq(cfg->auth_type, CONFIG_AUTH_SCRAM);
	ck_assert_int_eq(cfg->checkout_timeout, 5000);
	ck_assert_int_eq(cfg->connect_timeout, 5000);
	ck_assert_int_eq(cfg->idle_timeout, 60000);
	ck_assert_int_eq(cfg->server_lifetime, 86400000);
	ck_assert_int_eq(cfg->server_lifetime_jitter, 0);
	ck_assert_int_eq(cfg->client_login_timeout, 60000);
	ck_assert_int_eq(cfg->shutdown_timeout, 60000);
	ck_assert_int_eq(cfg->query_timeout, 0);
	ck_assert_int_eq(cfg->client_idle_timeout, 0);
	ck_assert_int_eq(cfg->client_idle_in_transaction_timeout, 0);
	ck_assert_int_eq(cfg->rollback_timeout, 5000);
	ck_assert_int_eq(cfg->pub_sub_channel_size, 0);
	ck_assert_int_eq(cfg->query_cache_limit, 1024);
	ck_assert_int_eq(cfg->stats_period, 15000);
	ck_assert_int_eq(cfg->openmetrics_port, 0);
	ck_assert_str_eq(cfg->openmetrics_host, "0.0.0.0");
	ck_assert_str_eq(cfg->openmetrics_namespace, "pgdog_");
	ck_assert_int_eq(cfg->max_client_conn, 10000);
	ck_assert_int_eq(cfg->max_message_len, 1073741823);
	ck_assert_str_eq(cfg->server_reset_query, "DISCARD ALL");
	ck_assert(!cfg->server_reset_query_always);
	ck_assert(!cfg->server_round_robin);
	ck_assert_int_eq(cfg->log_level, LOG_LVL_INFO);
	ck_assert_ptr_null(cfg->log_file);
	ck_assert(!cfg->syslog);
	ck_assert_str_eq(cfg->syslog_ident, "pgdog");
	ck_assert(cfg->log_connections);
	ck_assert(cfg->log_disconnections);
	ck_assert(cfg->log_pooler_errors);
	ck_assert_int_eq(cfg->syslog_facility, LOG_DAEMON);
	ck_assert_str_eq(cfg->admin.name, "admin");
	ck_assert_str_eq(cfg->admin.user, "admin");
	ck_assert_ptr_null(cfg->admin.password);
	ck_assert_int_eq(cfg->admin.secret.kind, AUTH_SECRET_NONE);

	ck_assert_uint_eq(cfg->databases_cnt, 1);
	d = &cfg->databases[0];
	ck_assert_str_eq(d->label, "prod");
	ck_assert_str_eq(d->name, "prod");
	ck_assert_str_eq(d->host, "127.0.0.1");
	ck_assert_int_eq(d->port, 5432);
	ck_assert_str_eq(d->database_name, "prod");
	ck_assert_int_eq(d->role, CONFIG_ROLE_PRIMARY);
	ck_assert_int_eq(d->shard, 0);
	ck_assert_ptr_null(d->user);
	ck_assert_ptr_null(d->password);
	ck_assert_int_eq(d->pool_size, -1);
	ck_assert_int_eq(d->min_pool_size, -1);
	ck_assert_int_eq(d->idle_timeout, -1);
	ck_assert_int_eq(d->server_lifetime, -1);
	ck_assert_int_eq(d->server_lifetime_jitter, -1);
	ck_assert(!d->has_pooler_mode);
	ck_assert_int_eq(d->line, 1);
	ck_assert_uint_eq(cfg->users_cnt, 0);
	ck_assert_uint_eq(cfg->pools_cnt, 0);
	config_free(cfg);
}
END_TEST

START_TEST(test_config_every_key)
{
	static const char ini[] = "[general]\n"
				  "host = 127.0.0.2\n"
				  "port = 7432\n"
				  "workers = 3\n"
				  "unix_socket_dir =\n"
				  "default_pool_size = 20\n"
				  "min_pool_size = 2\n"
				  "pooler_mode = session\n"
				  "prepared_statements = disabled\n"
				  "prepared_statements_limit = 1000000\n"
				  "auth_type = md5\n"
				  "checkout_timeout = 1\n"
				  "connect_timeout = 2\n"
				  "idle_timeout = 0\n"
				  "server_lifetime = 0\n"
				  "server_lifetime_jitter = 2147483647\n"
				  "client_login_timeout = 3\n"
				  "shutdown_timeout = 0\n"
				  "query_timeout = 4\n"
				  "client_idle_timeout = 5\n"
				  "client_idle_in_transaction_timeout = 6\n"
				  "rollback_timeout = 1\n"
				  "pub_sub_channel_size = 0\n"
				  "query_cache_limit = 16\n"
				  "max_client_conn = 1000000\n"
				  "max_message_len = 1024\n"
				  "server_reset_query =\n"
				  "server_reset_query_always = true\n"
				  "server_round_robin = on\n"
				  "log_level = noise\n"
				  "log_file = /var/log/pgdog.log\n"
				  "syslog = yes\n"
				  "syslog_ident = dog\n"
				  "log_connections = off\n"
				  "log_disconnections = 0\n"
				  "log_pooler_errors = no\n"
				  "syslog_facility = LOCAL5\n"
				  "\n"
				  "[databases.main]\n"
				  "name = app\n"
				  "host = db1\n"
				  "port = 5433\n"
				  "database_name = app_prod\n"
				  "role = replica\n"
				  "shard = 1023\n"
				  "user = srv\n"
				  "password = srvpass\n"
				  "pool_size = 30\n"
				  "min_pool_size = 3\n"
				  "idle_timeout = 100\n"
				  "server_lifetime = 200\n"
				  "server_lifetime_jitter = 199\n"
				  "pooler_mode = statement\n"
				  "\n"
				  "[admin]\n"
				  "name = console\n"
				  "user = root\n"
				  "password = adminpw\n";
	static const char users[] = "[users.a]\n"
				    "name = alice\n"
				    "database = app\n"
				    "password = " MD5_HASH "\n"
				    "pool_size = 5\n"
				    "min_pool_size = 4\n"
				    "server_user = alice_srv\n"
				    "server_password = pw2\n"
				    "pooler_mode = transaction\n";
	struct config *cfg = load_ok(ini, users);
	const struct config_database *d = &cfg->databases[0];
	const struct config_user *u = &cfg->users[0];

	ck_assert_str_eq(cfg->host, "127.0.0.2");
	ck_assert_int_eq(cfg->port, 7432);
	ck_assert_int_eq(cfg->workers, 3);
	ck_assert_str_eq(cfg->unix_socket_dir, "");
	ck_assert_int_eq(cfg->default_pool_size, 20);
	ck_assert_int_eq(cfg->min_pool_size, 2);
	ck_assert_int_eq(cfg->pooler_mode, CONFIG_POOLER_SESSION);
	ck_assert_int_eq(cfg->prepared_statements, CONFIG_PREPARED_DISABLED);
	ck_assert_int_eq(cfg->prepared_statements_limit, 1000000);
	ck_assert_int_eq(cfg->auth_type, CONFIG_AUTH_MD5);
	ck_assert_int_eq(cfg->checkout_timeout, 1);
	ck_assert_int_eq(cfg->connect_timeout, 2);
	ck_assert_int_eq(cfg->idle_timeout, 0);
	ck_assert_int_eq(cfg->server_lifetime, 0);
	ck_assert_int_eq(cfg->server_lifetime_jitter, 2147483647);
	ck_assert_int_eq(cfg->client_login_timeout, 3);
	ck_assert_int_eq(cfg->shutdown_timeout, 0);
	ck_assert_int_eq(cfg->query_timeout, 4);
	ck_assert_int_eq(cfg->client_idle_timeout, 5);
	ck_assert_int_eq(cfg->client_idle_in_transaction_timeout, 6);
	ck_assert_int_eq(cfg->rollback_timeout, 1);
	ck_assert_int_eq(cfg->pub_sub_channel_size, 0);
	ck_assert_int_eq(cfg->query_cache_limit, 16);
	ck_assert_int_eq(cfg->max_client_conn, 1000000);
	ck_assert_int_eq(cfg->max_message_len, 1024);
	ck_assert_str_eq(cfg->server_reset_query, "");
	ck_assert(cfg->server_reset_query_always);
	ck_assert(cfg->server_round_robin);
	ck_assert_int_eq(cfg->log_level, LOG_LVL_NOISE);
	ck_assert_str_eq(cfg->log_file, "/var/log/pgdog.log");
	ck_assert(cfg->syslog);
	ck_assert_str_eq(cfg->syslog_ident, "dog");
	ck_assert(!cfg->log_connections);
	ck_assert(!cfg->log_disconnections);
	ck_assert(!cfg->log_pooler_errors);
	ck_assert_int_eq(cfg->syslog_facility, LOG_LOCAL5);

	ck_assert_str_eq(d->label, "main");
	ck_assert_str_eq(d->name, "app");
	ck_assert_str_eq(d->host, "db1");
	ck_assert_int_eq(d->port, 5433);
	ck_assert_str_eq(d->database_name, "app_prod");
	ck_assert_int_eq(d->role, CONFIG_ROLE_REPLICA);
	ck_assert_int_eq(d->shard, 1023);
	ck_assert_str_eq(d->user, "srv");
	ck_assert_str_eq(d->password, "srvpass");
	ck_assert_int_eq(d->pool_size, 30);
	ck_assert_int_eq(d->min_pool_size, 3);
	ck_assert_int_eq(d->idle_timeout, 100);
	ck_assert_int_eq(d->server_lifetime, 200);
	ck_assert_int_eq(d->server_lifetime_jitter, 199);
	ck_assert(d->has_pooler_mode);
	ck_assert_int_eq(d->pooler_mode, CONFIG_POOLER_STATEMENT);

	ck_assert_str_eq(cfg->admin.name, "console");
	ck_assert_str_eq(cfg->admin.user, "root");
	ck_assert_str_eq(cfg->admin.password, "adminpw");
	ck_assert_int_eq(cfg->admin.secret.kind, AUTH_SECRET_PLAIN);

	ck_assert_uint_eq(cfg->users_cnt, 1);
	ck_assert_str_eq(u->label, "a");
	ck_assert_str_eq(u->name, "alice");
	ck_assert_str_eq(u->database, "app");
	ck_assert_str_eq(u->password, MD5_HASH);
	ck_assert_int_eq(u->secret.kind, AUTH_SECRET_MD5);
	ck_assert_int_eq(u->pool_size, 5);
	ck_assert_int_eq(u->min_pool_size, 4);
	ck_assert_str_eq(u->server_user, "alice_srv");
	ck_assert_str_eq(u->server_password, "pw2");
	ck_assert(u->has_pooler_mode);
	ck_assert_int_eq(u->pooler_mode, CONFIG_POOLER_TRANSACTION);
	ck_assert_int_eq(u->line, 1);

	ck_assert_uint_eq(cfg->pools_cnt, 1);
	ck_assert_int_eq(cfg->pools[0].pool_size, 5);
	ck_assert_int_eq(cfg->pools[0].min_pool_size, 4);
	ck_assert_int_eq(cfg->pools[0].idle_timeout, 100);
	ck_assert_int_eq(cfg->pools[0].server_lifetime, 200);
	ck_assert_int_eq(cfg->pools[0].server_lifetime_jitter, 199);
	ck_assert_int_eq(cfg->pools[0].pooler_mode, CONFIG_POOLER_TRANSACTION);
	config_free(cfg);
}
END_TEST

START_TEST(test_config_user_defaults)
{
	struct config *cfg =
		load_ok(MIN_INI, "[users.alice]\ndatabase = prod\npassword = secret\n"
				 "[users.bob]\ndatabase = prod\n"
				 "[users.carol]\ndatabase = prod\npassword = " SCRAM_VERIFIER "\n");
	const struct config_user *u;

	ck_assert_uint_eq(cfg->users_cnt, 3);
	u = config_find_user(cfg, "alice");
	ck_assert_ptr_nonnull(u);
	ck_assert_str_eq(u->name, "alice");
	ck_assert_int_eq(u->secret.kind, AUTH_SECRET_PLAIN);
	ck_assert_int_eq(u->pool_size, -1);
	ck_assert_int_eq(u->min_pool_size, -1);
	ck_assert_str_eq(u->server_user, "alice");
	ck_assert_str_eq(u->server_password, "secret");
	ck_assert(!u->has_pooler_mode);
	u = config_find_user(cfg, "bob");
	ck_assert_ptr_nonnull(u);
	ck_assert_ptr_null(u->password);
	ck_assert_int_eq(u->secret.kind, AUTH_SECRET_NONE);
	ck_assert_ptr_null(u->server_password);
	u = config_find_user(cfg, "carol");
	ck_assert_ptr_nonnull(u);
	ck_assert_int_eq(u->secret.kind, AUTH_SECRET_SCRAM);
	ck_assert_uint_eq(u->secret.iterations, 4096);
	ck_assert_ptr_null(u->server_password);
	ck_assert_ptr_null(config_find_user(cfg, "dave"));
	ck_assert(config_has_database(cfg, "prod"));
	ck_assert(!config_has_database(cfg, "test"));
	config_free(cfg);
}
END_TEST

START_TEST(test_config_pool_precedence)
{
	static const char ini[] =
		"[general]\ndefault_pool_size = 7\nmin_pool_size = 2\n"
		"idle_timeout = 111\nserver_lifetime = 222\n"
		"[databases.a]\nname = app\nhost = h1\npool_size = 9\nmin_pool_size = 3\n"
		"idle_timeout = 5\n"
		"[databases.b]\nname = app\nhost = h2\nrole = replica\nserver_lifetime = 6\n"
		"[databases.c]\nname = other\nhost = h3\n";
	static const char users[] = "[users.u1]\ndatabase = app\npool_size = 4\n"
				    "[users.u2]\ndatabase = app\nmin_pool_size = 0\n"
				    "[users.u3]\ndatabase = other\n";
	struct config *cfg = load_ok(ini, users);
	const struct config_pool *p;

	ck_assert_uint_eq(cfg->pools_cnt, 5);
	/* u1 x a: user pool_size, database min_pool_size and idle_timeout */
	p = &cfg->pools[0];
	ck_assert_int_eq(p->user_idx, 0);
	ck_assert_int_eq(p->db_idx, 0);
	ck_assert_int_eq(p->pool_size, 4);
	ck_assert_int_eq(p->min_pool_size, 3);
	ck_assert_int_eq(p->idle_timeout, 5);
	ck_assert_int_eq(p->server_lifetime, 222);
	/* u1 x b: general min_pool_size, database server_lifetime */
	p = &cfg->pools[1];
	ck_assert_int_eq(p->db_idx, 1);
	ck_assert_int_eq(p->pool_size, 4);
	ck_assert_int_eq(p->min_pool_size, 2);
	ck_assert_int_eq(p->idle_timeout, 111);
	ck_assert_int_eq(p->server_lifetime, 6);
	/* u2 x a: database pool_size, user min_pool_size */
	p = &cfg->pools[2];
	ck_assert_int_eq(p->user_idx, 1);
	ck_assert_int_eq(p->pool_size, 9);
	ck_assert_int_eq(p->min_pool_size, 0);
	/* u3 x c: general defaults */
	p = &cfg->pools[4];
	ck_assert_int_eq(p->user_idx, 2);
	ck_assert_int_eq(p->db_idx, 2);
	ck_assert_int_eq(p->pool_size, 7);
	ck_assert_int_eq(p->min_pool_size, 2);
	config_free(cfg);
}
END_TEST

/* pooler_mode: user > database > general; server_lifetime_jitter: database > general */
START_TEST(test_config_pooler_mode_precedence)
{
	static const char ini[] =
		"[general]\npooler_mode = transaction\nserver_lifetime_jitter = 10\n"
		"[databases.a]\nname = app\nhost = h1\npooler_mode = session\n"
		"server_lifetime_jitter = 20\n"
		"[databases.b]\nname = app\nhost = h2\nrole = replica\n"
		"[databases.c]\nname = other\nhost = h3\npooler_mode = statement\n";
	static const char users[] = "[users.u1]\ndatabase = app\npooler_mode = statement\n"
				    "[users.u2]\ndatabase = app\n"
				    "[users.u3]\ndatabase = other\n"
				    "[users.u4]\ndatabase = other\npooler_mode = session\n";
	struct config *cfg = load_ok(ini, users);
	const struct config_pool *p;

	ck_assert_uint_eq(cfg->pools_cnt, 6);
	ck_assert_int_eq(cfg->pooler_mode, CONFIG_POOLER_TRANSACTION);
	/* u1 x a: general transaction, database session, user statement */
	p = &cfg->pools[0];
	ck_assert_int_eq(p->user_idx, 0);
	ck_assert_int_eq(p->db_idx, 0);
	ck_assert_int_eq(p->pooler_mode, CONFIG_POOLER_STATEMENT);
	ck_assert_int_eq(p->server_lifetime_jitter, 20);
	/* u1 x b: the user's mode over general */
	p = &cfg->pools[1];
	ck_assert_int_eq(p->db_idx, 1);
	ck_assert_int_eq(p->pooler_mode, CONFIG_POOLER_STATEMENT);
	ck_assert_int_eq(p->server_lifetime_jitter, 10);
	/* u2 x a: user unset: the database's */
	p = &cfg->pools[2];
	ck_assert_int_eq(p->user_idx, 1);
	ck_assert_int_eq(p->db_idx, 0);
	ck_assert_int_eq(p->pooler_mode, CONFIG_POOLER_SESSION);
	/* u2 x b: both unset: general */
	p = &cfg->pools[3];
	ck_assert_int_eq(p->db_idx, 1);
	ck_assert_int_eq(p->pooler_mode, CONFIG_POOLER_TRANSACTION);
	/* u3 x c: the database's statement */
	p = &cfg->pools[4];
	ck_assert_int_eq(p->user_idx, 2);
	ck_assert_int_eq(p->pooler_mode, CONFIG_POOLER_STATEMENT);
	/* u4 x c: the user's session over the database's statement */
	p = &cfg->pools[5];
	ck_assert_int_eq(p->user_idx, 3);
	ck_assert_int_eq(p->pooler_mode, CONFIG_POOLER_SESSION);
	config_free(cfg);

	/* nothing set anywhere: the default, transaction */
	cfg = load_ok(MIN_INI, "[users.u]\ndatabase = prod\n");
	ck_assert_int_eq(cfg->pools[0].pooler_mode, CONFIG_POOLER_TRANSACTION);
	ck_assert_int_eq(cfg->pools[0].server_lifetime_jitter, 0);
	config_free(cfg);
	/* general session only */
	cfg = load_ok("[general]\npooler_mode = session\n" MIN_INI, "[users.u]\ndatabase = prod\n");
	ck_assert_int_eq(cfg->pools[0].pooler_mode, CONFIG_POOLER_SESSION);
	config_free(cfg);
}
END_TEST

/* pub_sub_channel_size > 0 turns on LISTEN/NOTIFY fan-out (transaction mode) */
START_TEST(test_config_pub_sub)
{
	struct config *cfg = load_ok("[general]\npub_sub_channel_size = 64\n" MIN_INI, NULL);

	ck_assert_int_eq(cfg->pub_sub_channel_size, 64);
	config_free(cfg);
}
END_TEST

/* stats_period and the OpenMetrics keys: ranges, names, and SHOW CONFIG's view of them */
START_TEST(test_config_metrics_keys)
{
	struct config *cfg =
		load_ok("[general]\nstats_period = 1000\nopenmetrics_port = 9930\n"
			"openmetrics_host = 127.0.0.1\nopenmetrics_namespace = db_1\n" MIN_INI,
			NULL);
	char value[64];
	const char *name;
	int seen = 0;

	ck_assert_int_eq(cfg->stats_period, 1000);
	ck_assert_int_eq(cfg->openmetrics_port, 9930);
	ck_assert_str_eq(cfg->openmetrics_host, "127.0.0.1");
	ck_assert_str_eq(cfg->openmetrics_namespace, "db_1");
	for (size_t i = 0; (name = config_general_key(cfg, i, value, sizeof(value))); i++) {
		if (strcmp(name, "stats_period") == 0 && strcmp(value, "1000") == 0)
			seen |= 1;
		if (strcmp(name, "openmetrics_namespace") == 0 && strcmp(value, "db_1") == 0)
			seen |= 2;
		if (strcmp(name, "pooler_mode") == 0 && strcmp(value, "transaction") == 0)
			seen |= 4;
		if (strcmp(name, "log_connections") == 0 && strcmp(value, "true") == 0)
			seen |= 8;
	}
	ck_assert_int_eq(seen, 15);
	config_free(cfg);
	cfg = load_ok("[general]\nopenmetrics_namespace =\n" MIN_INI, NULL);
	ck_assert_str_eq(cfg->openmetrics_namespace, "");
	config_free(cfg);
	load_fails(
		"[general]\nstats_period = 999\n" MIN_INI, NULL,
		"pgdog.ini:2: [general] stats_period = 999: must be an integer between 1000 and 3600000");
	load_fails(
		"[general]\nopenmetrics_namespace = pgdog.\n" MIN_INI, NULL,
		"pgdog.ini:2: [general] openmetrics_namespace = \"pgdog.\": use letters, digits and '_' only, not starting with a digit (it prefixes Prometheus metric names)");
	load_fails(
		"[general]\nopenmetrics_namespace = 1x\n" MIN_INI, NULL,
		"pgdog.ini:2: [general] openmetrics_namespace = \"1x\": use letters, digits and '_' only, not starting with a digit (it prefixes Prometheus metric names)");
	load_fails(
		"[general]\nport = 6432\nopenmetrics_port = 6432\n" MIN_INI, NULL,
		"pgdog.ini:3: [general] openmetrics_port = 6432 is also the PostgreSQL port: choose another");
}
END_TEST

/* prepared_statements = full (SQL PREPARE/EXECUTE/DEALLOCATE) is accepted */
START_TEST(test_config_prepared_full)
{
	struct config *cfg = load_ok("[general]\nprepared_statements = full\n" MIN_INI, NULL);

	ck_assert_int_eq(cfg->prepared_statements, CONFIG_PREPARED_FULL);
	config_free(cfg);
}
END_TEST

/* every pooler_mode goes with every prepared_statements mode */
START_TEST(test_config_mode_combinations)
{
	static const char *const modes[] = { "transaction", "session", "statement" };
	static const char *const prepared[] = { "extended", "disabled", "full" };
	char ini[256];
	struct config *cfg;

	for (size_t m = 0; m < 3; m++) {
		for (size_t ps = 0; ps < 3; ps++) {
			snprintf(
				ini, sizeof(ini),
				"[general]\npooler_mode = %s\nprepared_statements = %s\n"
				"prepared_statements_limit = 10\nserver_reset_query_always = on\n" MIN_INI,
				modes[m], prepared[ps]);
			cfg = load_ok(ini, NULL);
			ck_assert_str_eq(config_pooler_mode_name(cfg->pooler_mode), modes[m]);
			ck_assert_str_eq(config_prepared_statements_name(cfg->prepared_statements),
					 prepared[ps]);
			config_free(cfg);
		}
	}
	/* a jitter below the lifetime, or with lifetime 0 (never), is fine */
	cfg = load_ok("[general]\nserver_lifetime = 0\nserver_lifetime_jitter = 5\n" MIN_INI
		      "server_lifetime = 1000\nserver_lifetime_jitter = 999\n",
		      NULL);
	ck_assert_int_eq(cfg->databases[0].server_lifetime_jitter, 999);
	config_free(cfg);
}
END_TEST

START_TEST(test_config_find_pool)
{
	static const char ini[] =
		"[databases.r]\nname = app\nhost = h1\nrole = replica\n"
		"[databases.s1]\nname = app\nhost = h2\nshard = 1\n"
		"[databases.p]\nname = app\nhost = h3\nrole = auto\n"
		"[databases.x]\nname = solo\nhost = h4\nrole = replica\nshard = 3\n";
	static const char users[] = "[users.u]\ndatabase = app\n[users.v]\ndatabase = solo\n";
	struct config *cfg = load_ok(ini, users);
	int i;

	i = config_find_pool(cfg, "u", "app");
	ck_assert_int_ge(i, 0);
	ck_assert_str_eq(cfg->databases[cfg->pools[i].db_idx].label, "p");
	i = config_find_pool(cfg, "v", "solo");
	ck_assert_int_ge(i, 0);
	ck_assert_str_eq(cfg->databases[cfg->pools[i].db_idx].label, "x");
	ck_assert_int_eq(config_find_pool(cfg, "u", "solo"), -1);
	ck_assert_int_eq(config_find_pool(cfg, "nobody", "app"), -1);
	config_free(cfg);
}
END_TEST

START_TEST(test_config_bool_spellings)
{
	static const char *const spellings[][2] = {
		{ "true", "1" },  { "TRUE", "1" }, { "on", "1" }, { "yes", "1" }, { "1", "1" },
		{ "false", "0" }, { "off", "0" },  { "No", "0" }, { "0", "0" },
	};
	char ini[256];
	struct config *cfg;

	snprintf(ini, sizeof(ini), "[general]\nsyslog = %s\n" MIN_INI, spellings[_i][0]);
	cfg = load_ok(ini, NULL);
	ck_assert_int_eq(cfg->syslog, spellings[_i][1][0] == '1');
	config_free(cfg);
}
END_TEST

START_TEST(test_config_enum_spellings)
{
	struct config *cfg;

	cfg = load_ok("[general]\nauth_type = scram\nlog_level = warning\n" MIN_INI, NULL);
	ck_assert_int_eq(cfg->auth_type, CONFIG_AUTH_SCRAM);
	ck_assert_int_eq(cfg->log_level, LOG_LVL_WARN);
	config_free(cfg);
	cfg = load_ok("[general]\nauth_type = trust\nlog_level = error\n" MIN_INI, NULL);
	ck_assert_int_eq(cfg->auth_type, CONFIG_AUTH_TRUST);
	ck_assert_int_eq(cfg->log_level, LOG_LVL_ERROR);
	config_free(cfg);
	cfg = load_ok("[general]\nauth_type = plain\n" MIN_INI, NULL);
	ck_assert_int_eq(cfg->auth_type, CONFIG_AUTH_PLAIN);
	config_free(cfg);
	cfg = load_ok(
		"[general]\npooler_mode = Statement\nprepared_statements = DISABLED\n" MIN_INI,
		NULL);
	ck_assert_int_eq(cfg->pooler_mode, CONFIG_POOLER_STATEMENT);
	ck_assert_int_eq(cfg->prepared_statements, CONFIG_PREPARED_DISABLED);
	config_free(cfg);
}
END_TEST

/* comments, blank lines, indentation, CRLF and a BOM are all fine */
START_TEST(test_config_syntax_variants)
{
	static const char ini[] = "\xEF\xBB\xBF; a comment\r\n"
				  "# another comment\r\n"
				  "\r\n"
				  "  [general]  ; trailing comment\r\n"
				  "\tport = 7000 ; inline comment\r\n"
				  "    server_reset_query = SELECT 1;2\r\n"
				  "    syslog_ident = a#b\r\n"
				  "[databases.prod]\r\n"
				  "  host = h\r\n"
				  "  port = 5000\r\n";
	struct config *cfg = load_ok(ini, "");

	ck_assert_int_eq(cfg->port, 7000);
	ck_assert_str_eq(cfg->server_reset_query, "SELECT 1;2");
	ck_assert_str_eq(cfg->syslog_ident, "a#b");
	ck_assert_str_eq(cfg->databases[0].host, "h");
	ck_assert_int_eq(cfg->databases[0].port, 5000);
	ck_assert_int_eq(cfg->databases[0].line, 8);
	config_free(cfg);
}
END_TEST

START_TEST(test_config_line_limit_ok)
{
	char ini[512];
	char value[200];
	struct config *cfg;

	/* "server_reset_query = " is 21 characters: 199 in all */
	memset(value, 'x', 178);
	value[178] = '\0';
	snprintf(ini, sizeof(ini), "[general]\nserver_reset_query = %s\n" MIN_INI, value);
	cfg = load_ok(ini, NULL);
	ck_assert_uint_eq(strlen(cfg->server_reset_query), 178);
	config_free(cfg);
}
END_TEST

START_TEST(test_config_admin_in_users_file)
{
	struct config *cfg = load_ok(MIN_INI, "[admin]\npassword = " SCRAM_VERIFIER "\n");

	ck_assert_int_eq(cfg->admin.secret.kind, AUTH_SECRET_SCRAM);
	config_free(cfg);
}
END_TEST

START_TEST(test_config_load_files)
{
	char ini_path[] = "/tmp/check_config_ini_XXXXXX";
	char users_path[] = "/tmp/check_config_users_XXXXXX";
	static const char ini[] = "[general]\nport = 7777\n" MIN_INI;
	static const char users[] = "[users.alice]\ndatabase = prod\npassword = pw\n";
	int fd_ini = mkstemp(ini_path), fd_users = mkstemp(users_path);
	struct config *cfg = config_new();
	char err[512] = "";

	ck_assert_int_ge(fd_ini, 0);
	ck_assert_int_ge(fd_users, 0);
	ck_assert_int_eq(write(fd_ini, ini, strlen(ini)), (ssize_t)strlen(ini));
	ck_assert_int_eq(write(fd_users, users, strlen(users)), (ssize_t)strlen(users));
	close(fd_ini);
	close(fd_users);
	ck_assert_msg(config_load(cfg, ini_path, users_path, NULL, 0, err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert_int_eq(cfg->port, 7777);
	ck_assert_str_eq(cfg->config_path, ini_path);
	ck_assert_str_eq(cfg->users_path, users_path);
	ck_assert_uint_eq(cfg->pools_cnt, 1);
	ck_assert_int_eq(config_find_pool(cfg, "alice", "prod"), 0);
	config_free(cfg);

	/* messages name the path as given */
	cfg = config_new();
	ck_assert_int_eq(config_load(cfg, users_path, NULL, NULL, 0, err, sizeof(err)), -1);
	ck_assert_int_eq(strncmp(err, users_path, strlen(users_path)), 0);
	ck_assert_str_eq(
		err + strlen(users_path),
		":1: unknown section [users.alice]: allowed are [general], [databases.NAME] and [admin]");
	config_free(cfg);
	unlink(ini_path);
	unlink(users_path);
}
END_TEST

START_TEST(test_config_load_unreadable)
{
	struct config *cfg = config_new();
	char err[512] = "";

	ck_assert_int_eq(
		config_load(cfg, "/nonexistent/pgdog.ini", NULL, NULL, 0, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "cannot read /nonexistent/pgdog.ini: No such file or directory");
	ck_assert_int_eq(config_load(cfg, NULL, "/", NULL, 0, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "cannot read /: Is a directory");
	config_free(cfg);
}
END_TEST

START_TEST(test_config_load_nul_byte)
{
	char path[] = "/tmp/check_config_nul_XXXXXX";
	static const char ini[] = "[general]\nport = 1\0\n";
	int fd = mkstemp(path);
	struct config *cfg = config_new();
	char err[512] = "";

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, ini, sizeof(ini) - 1), (ssize_t)sizeof(ini) - 1);
	close(fd);
	ck_assert_int_eq(config_load(cfg, path, NULL, NULL, 0, err, sizeof(err)), -1);
	ck_assert_str_eq(err + strlen(path), ":2: line contains a NUL byte");
	unlink(path);
	config_free(cfg);
}
END_TEST

/* conf/pgdog.ini and conf/users.ini must stay loadable */
START_TEST(test_config_samples_load)
{
	const char *src = getenv("PGDOG_SRCDIR");
	char ini[4096], users[4096], err[512] = "";
	struct config *cfg = config_new();
	int i;

	if (src == NULL || src[0] == '\0')
		src = "../..";
	snprintf(ini, sizeof(ini), "%s/conf/pgdog.ini", src);
	snprintf(users, sizeof(users), "%s/conf/users.ini", src);
	ck_assert_msg(config_load(cfg, ini, users, NULL, 0, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(cfg->port, 6432);
	ck_assert(config_has_database(cfg, "prod"));
	ck_assert_ptr_nonnull(config_find_user(cfg, "alice"));
	i = config_find_pool(cfg, "alice", "prod");
	ck_assert_int_ge(i, 0);
	ck_assert_ptr_nonnull(cfg->admin.password);
	config_free(cfg);
}
END_TEST

/* Read SRCDIR/rel into a new string. */
static char *
read_src_file(const char *rel)
{
	const char *src = getenv("PGDOG_SRCDIR");
	char path[4096];
	char *buf;
	FILE *f;
	long n;

	if (src == NULL || src[0] == '\0')
		src = "../..";
	snprintf(path, sizeof(path), "%s/%s", src, rel);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* true if text has a line starting with start (after an optional ';') */
static bool
has_line(const char *text, const char *start)
{
	size_t n = strlen(start);

	for (const char *s = text; s != NULL && *s != '\0';) {
		const char *l = *s == ';' ? s + 1 : s;
		const char *nl = strchr(s, '\n');

		if (strncmp(l, start, n) == 0)
			return true;
		s = nl != NULL ? nl + 1 : NULL;
	}
	return false;
}

/* every key appears in the sample files (with its default) and in the man page */
START_TEST(test_config_keys_documented)
{
	static const char *const general[] = {
		"host",
		"port",
		"workers",
		"unix_socket_dir",
		"default_pool_size",
		"min_pool_size",
		"pooler_mode",
		"prepared_statements",
		"prepared_statements_limit",
		"auth_type",
		"checkout_timeout",
		"connect_timeout",
		"idle_timeout",
		"server_lifetime",
		"server_lifetime_jitter",
		"server_round_robin",
		"client_login_timeout",
		"shutdown_timeout",
		"query_timeout",
		"client_idle_timeout",
		"client_idle_in_transaction_timeout",
		"rollback_timeout",
		"pub_sub_channel_size",
		"query_cache_limit",
		"max_client_conn",
		"max_message_len",
		"server_reset_query",
		"server_reset_query_always",
		"log_level",
		"log_file",
		"syslog",
		"syslog_ident",
		"log_connections",
		"log_disconnections",
		"ban_timeout",
		"lsn_check_interval",
	};
	static const char *const databases[] = {
		"name",
		"host",
		"port",
		"database_name",
		"role",
		"shard",
		"user",
		"password",
		"pool_size",
		"min_pool_size",
		"idle_timeout",
		"server_lifetime",
		"server_lifetime_jitter",
		"pooler_mode",
	};
	static const char *const users[] = {
		"name",          "database",    "password",        "pool_size",
		"min_pool_size", "server_user", "server_password", "pooler_mode"
	};
	static const struct {
		const char *key, *value;
	} defaults[] = {
		{ "pooler_mode", "transaction" },
		{ "prepared_statements", "extended" },
		{ "prepared_statements_limit", "0" },
		{ "server_lifetime_jitter", "0" },
		{ "query_timeout", "0" },
		{ "client_idle_timeout", "0" },
		{ "client_idle_in_transaction_timeout", "0" },
		{ "rollback_timeout", "5000" },
		{ "pub_sub_channel_size", "0" },
		{ "query_cache_limit", "1024" },
		{ "server_reset_query_always", "false" },
		{ "server_round_robin", "false" },
		{ "ban_timeout", "300000" },
		{ "lsn_check_interval", "5000" },
	};
	char *ini = read_src_file("conf/pgdog.ini");
	char *uini = read_src_file("conf/users.ini");
	char *man = read_src_file("man/pgdog.ini.5");
	const char *db_section = strstr(ini, "[databases.prod]");
	const char *user_section = strstr(uini, "[users.alice]");
	char want[128];

	ck_assert_ptr_nonnull(db_section);
	ck_assert_ptr_nonnull(user_section);

	for (size_t i = 0; i < sizeof(general) / sizeof(general[0]); i++) {
		snprintf(want, sizeof(want), "%s = ", general[i]);
		ck_assert_msg(has_line(ini, want), "conf/pgdog.ini lacks %s", general[i]);
		snprintf(want, sizeof(want), ".BR %s \"", general[i]);
		ck_assert_msg(strstr(man, want) != NULL, "man/pgdog.ini.5 lacks %s", general[i]);
	}
	/*
	 * Every [general] key of the parser's own table (the list above may lag
	 * behind it), with the value a default configuration has for it, and the
	 * reverse: every key the man page's [general] section documents exists.
	 */
	{
		struct config *cfg = load_ok(MIN_INI, NULL);
		const char *sec = strstr(man, "\n.SH [general]\n");
		const char *end = sec ? strstr(sec + 1, "\n.SH ") : NULL;
		char value[256];
		const char *name;
		size_t cnt = 0;

		ck_assert_ptr_nonnull(end);
		for (size_t i = 0; (name = config_general_key(cfg, i, value, sizeof(value))); i++) {
			snprintf(want, sizeof(want), "%s = ", name);
			ck_assert_msg(has_line(ini, want), "conf/pgdog.ini lacks %s", name);
			snprintf(want, sizeof(want), "\n.TP\n.BR %s \"", name);
			ck_assert_msg(strstr(sec, want) != NULL && strstr(sec, want) < end,
				      "man/pgdog.ini.5 [general] lacks %s", name);
			cnt++;
		}
		for (const char *p = sec; (p = strstr(p, "\n.TP\n.BR ")) != NULL && p < end; p++) {
			char key[64];
			bool found = false;

			ck_assert_int_eq(sscanf(p + 9, "%63[a-z_]", key), 1);
			for (size_t i = 0;
			     (name = config_general_key(cfg, i, value, sizeof(value))); i++)
				found = found || strcmp(name, key) == 0;
			ck_assert_msg(found,
				      "man/pgdog.ini.5 documents [general] %s, which is no key",
				      key);
		}
		ck_assert_uint_ge(cnt, sizeof(general) / sizeof(general[0]));
		config_free(cfg);
	}
	for (size_t i = 0; i < sizeof(databases) / sizeof(databases[0]); i++) {
		snprintf(want, sizeof(want), "%s = ", databases[i]);
		ck_assert_msg(has_line(db_section, want), "[databases.prod] lacks %s",
			      databases[i]);
	}
	for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
		snprintf(want, sizeof(want), "%s = ", users[i]);
		ck_assert_msg(has_line(user_section, want), "[users.alice] lacks %s", users[i]);
	}
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		snprintf(want, sizeof(want), "%s = %s\n", defaults[i].key, defaults[i].value);
		ck_assert_msg(has_line(ini, want), "conf/pgdog.ini: want ;%s", want);
	}
	free(ini);
	free(uini);
	free(man);
}
END_TEST

START_TEST(test_config_free_null)
{
	config_free(NULL);
}
END_TEST

START_TEST(test_config_value_names)
{
	ck_assert_str_eq(config_auth_type_name(CONFIG_AUTH_SCRAM), "scram-sha-256");
	ck_assert_str_eq(config_auth_type_name(CONFIG_AUTH_MD5), "md5");
	ck_assert_str_eq(config_auth_type_name(CONFIG_AUTH_PLAIN), "plain");
	ck_assert_str_eq(config_auth_type_name(CONFIG_AUTH_TRUST), "trust");
	ck_assert_str_eq(config_role_name(CONFIG_ROLE_PRIMARY), "primary");
	ck_assert_str_eq(config_role_name(CONFIG_ROLE_REPLICA), "replica");
	ck_assert_str_eq(config_role_name(CONFIG_ROLE_AUTO), "auto");
	ck_assert_str_eq(config_pooler_mode_name(CONFIG_POOLER_SESSION), "session");
	ck_assert_str_eq(config_pooler_mode_name(CONFIG_POOLER_TRANSACTION), "transaction");
	ck_assert_str_eq(config_pooler_mode_name(CONFIG_POOLER_STATEMENT), "statement");
	ck_assert_str_eq(config_prepared_statements_name(CONFIG_PREPARED_EXTENDED), "extended");
	ck_assert_str_eq(config_prepared_statements_name(CONFIG_PREPARED_DISABLED), "disabled");
	ck_assert_str_eq(config_prepared_statements_name(CONFIG_PREPARED_FULL), "full");
}
END_TEST

/* ---- -d URLs -------------------------------------------------------------- */

START_TEST(test_config_url_full)
{
	const char *urls[] = {
		"postgres://alice:p%40ss%3Aw@db.example:5433/app?pool_size=5&min_pool_size=1&role=replica&shard=2&database_name=real",
	};
	struct config *cfg = config_new();
	const struct config_database *d;
	const struct config_user *u;
	char err[512] = "";

	ck_assert_msg(config_load(cfg, NULL, NULL, urls, 1, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(cfg->databases_cnt, 1);
	d = &cfg->databases[0];
	ck_assert_str_eq(d->name, "app");
	ck_assert_str_eq(d->host, "db.example");
	ck_assert_int_eq(d->port, 5433);
	ck_assert_str_eq(d->database_name, "real");
	ck_assert_int_eq(d->role, CONFIG_ROLE_REPLICA);
	ck_assert_int_eq(d->shard, 2);
	ck_assert_int_eq(d->pool_size, 5);
	ck_assert_int_eq(d->min_pool_size, 1);
	u = config_find_user(cfg, "alice");
	ck_assert_ptr_nonnull(u);
	ck_assert_str_eq(u->database, "app");
	ck_assert_str_eq(u->password, "p@ss:w");
	ck_assert_int_eq(u->secret.kind, AUTH_SECRET_PLAIN);
	ck_assert_str_eq(u->server_password, "p@ss:w");
	ck_assert_int_eq(config_find_pool(cfg, "alice", "app"), 0);
	config_free(cfg);
}
END_TEST

START_TEST(test_config_url_forms)
{
	const char *urls[] = {
		"postgresql://bob@[::1]/db1",
		"postgres://h2:6000/db2",
		"postgres://carol:x@[fe80::1]:7000/db%20three",
	};
	struct config *cfg = config_new();
	char err[512] = "";

	ck_assert_msg(config_load(cfg, NULL, NULL, urls, 3, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(cfg->databases_cnt, 3);
	ck_assert_str_eq(cfg->databases[0].host, "::1");
	ck_assert_int_eq(cfg->databases[0].port, 5432);
	ck_assert_str_eq(cfg->databases[0].name, "db1");
	ck_assert_str_eq(cfg->databases[1].host, "h2");
	ck_assert_int_eq(cfg->databases[1].port, 6000);
	ck_assert_str_eq(cfg->databases[2].host, "fe80::1");
	ck_assert_int_eq(cfg->databases[2].port, 7000);
	ck_assert_str_eq(cfg->databases[2].name, "db three");
	ck_assert_uint_eq(cfg->users_cnt, 2);
	ck_assert_ptr_null(cfg->users[0].password);
	ck_assert_str_eq(cfg->users[1].name, "carol");
	config_free(cfg);
}
END_TEST

/* a URL for an existing database and user adds nothing */
START_TEST(test_config_url_existing)
{
	char path[] = "/tmp/check_config_url_XXXXXX";
	static const char ini[] = "[databases.prod]\nhost = h\nport = 5433\n";
	const char *urls[] = { "postgres://alice:pw@h:5433/prod", "postgres://alice:pw@h:5433/prod",
			       "postgres://bob@other/prod?role=replica" };
	int fd = mkstemp(path);
	struct config *cfg = config_new();
	char err[512] = "";

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, ini, strlen(ini)), (ssize_t)strlen(ini));
	close(fd);
	ck_assert_msg(config_load(cfg, path, NULL, urls, 3, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(cfg->databases_cnt, 2);
	ck_assert_str_eq(cfg->databases[1].host, "other");
	ck_assert_uint_eq(cfg->users_cnt, 2);
	ck_assert_uint_eq(cfg->pools_cnt, 4);
	unlink(path);
	config_free(cfg);
}
END_TEST

static const struct {
	const char *url;
	const char *err;
} bad_urls[] = {
	{ "mysql://alice:hunter2@h/db",
	  "-d mysql://alice:***@h/db: must start with postgres:// or postgresql://" },
	{ "postgres://alice:hunter2@h",
	  "-d postgres://alice:***@h: no database name: expected postgres://user:password@host:port/db" },
	{ "postgres://alice:hunter2@h/",
	  "-d postgres://alice:***@h/: no database name: expected postgres://user:password@host:port/db" },
	{ "postgres://alice:hunter2@/db", "-d postgres://alice:***@/db: the host is empty" },
	{ "postgres://alice:hunter2@h:99999/db",
	  "-d postgres://alice:***@h:99999/db: port 99999: must be an integer between 1 and 65535" },
	{ "postgres://alice:hunter2@h:/db",
	  "-d postgres://alice:***@h:/db: port must be an integer between 1 and 65535" },
	{ "postgres://alice:hun%zzter2@h/db",
	  "-d postgres://alice:***@h/db: bad percent-encoding in the password" },
	{ "postgres://al%ice:hunter2@h/db",
	  "-d postgres://al%ice:***@h/db: bad percent-encoding (use %XX with two hex digits, not %00)" },
	{ "postgres://:hunter2@h/db", "-d postgres://:***@h/db: the user name is empty" },
	{ "postgres://alice:hunter2@[::1/db",
	  "-d postgres://alice:***@[::1/db: missing ] after the IPv6 address" },
	{ "postgres://alice:hunter2@h/db?pool_size=0",
	  "-d postgres://alice:***@h/db?pool_size=0: pool_size = 0: must be an integer between 1 and 10000" },
	{ "postgres://alice:hunter2@h/db?role=leader",
	  "-d postgres://alice:***@h/db?role=leader: role = leader: must be one of: primary, replica, auto" },
	{ "postgres://alice:hunter2@h/db?host=x",
	  "-d postgres://alice:***@h/db?host=x: unknown parameter \"host\": allowed are pool_size, min_pool_size, role, shard, database_name" },
	{ "postgres://alice:hunter2@h/db?shard",
	  "-d postgres://alice:***@h/db?shard: parameter \"shard\" has no value" },
	{ "postgres://alice:hunter2@h/db?pool_size=2&min_pool_size=3",
	  "-d postgres://alice:***@h/db?pool_size=2&min_pool_size=3: [databases.db] min_pool_size = 3 is larger than pool_size = 2" },
	{ "postgres://alice:SCRAM-SHA-256$x@h/db",
	  "-d postgres://alice:***@h/db: password: SCRAM verifier: bad iteration count" },
};

START_TEST(test_config_url_bad)
{
	urls_fail(NULL, bad_urls[_i].url, bad_urls[_i].err);
}
END_TEST

/* one user name may connect to several databases, each with its own entry */
START_TEST(test_config_url_user_two_databases)
{
	const char *urls[] = { "postgres://alice:pw@h/prod", "postgres://alice:pw2@h/test" };
	struct config *cfg = config_new();
	char err[512] = "";

	ck_assert_msg(config_load(cfg, NULL, NULL, urls, 2, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(cfg->users_cnt, 2);
	ck_assert_uint_eq(cfg->pools_cnt, 2);
	ck_assert_int_ge(config_find_pool(cfg, "alice", "prod"), 0);
	ck_assert_int_ge(config_find_pool(cfg, "alice", "test"), 0);
	ck_assert_int_ne(config_find_pool(cfg, "alice", "prod"),
			 config_find_pool(cfg, "alice", "test"));
	ck_assert_str_eq(cfg->users[cfg->pools[config_find_pool(cfg, "alice", "test")].user_idx]
				 .secret.plain,
			 "pw2");
	config_free(cfg);
}
END_TEST

/* ---- bad files: one test per class of message ----------------------------- */

START_TEST(test_config_unknown_key)
{
	load_fails("[general]\nport = 6432\nprot = 6432\n" MIN_INI, NULL,
		   "pgdog.ini:3: [general] unknown key \"prot\"");
	load_fails(MIN_INI "hots = x\n", NULL,
		   "pgdog.ini:3: [databases.prod] unknown key \"hots\"");
	load_fails(MIN_INI, "[users.a]\ndatabase = prod\npool = 1\n",
		   "users.ini:3: [users.a] unknown key \"pool\"");
}
END_TEST

START_TEST(test_config_out_of_range)
{
	load_fails("[general]\n\n\nport = 70000\n" MIN_INI, NULL,
		   "pgdog.ini:4: [general] port = 70000: must be an integer between 1 and 65535");
	load_fails("[general]\nworkers = 65\n" MIN_INI, NULL,
		   "pgdog.ini:2: [general] workers = 65: must be an integer between 1 and 64");
	load_fails(
		"[general]\ncheckout_timeout = 0\n" MIN_INI, NULL,
		"pgdog.ini:2: [general] checkout_timeout = 0: must be an integer between 1 and 2147483647");
	load_fails(
		"[general]\nidle_timeout = 2147483648\n" MIN_INI, NULL,
		"pgdog.ini:2: [general] idle_timeout = 2147483648: must be an integer between 0 and 2147483647");
	load_fails(
		"[general]\nmax_message_len = 1023\n" MIN_INI, NULL,
		"pgdog.ini:2: [general] max_message_len = 1023: must be an integer between 1024 and 1073741823");
	load_fails(
		MIN_INI "shard = 1024\n", NULL,
		"pgdog.ini:3: [databases.prod] shard = 1024: must be an integer between 0 and 1023");
}
END_TEST

/* the ranges of the transaction pooling keys */
static const struct {
	const char *ini;
	const char *err;
} bad_tx_values[] = {
	{ "[general]\nprepared_statements_limit = -1\n",
	  "pgdog.ini:2: [general] prepared_statements_limit = -1: must be an integer between 0 and 1000000" },
	{ "[general]\nprepared_statements_limit = 1000001\n",
	  "pgdog.ini:2: [general] prepared_statements_limit = 1000001: must be an integer between 0 and 1000000" },
	{ "[general]\nquery_timeout = -1\n",
	  "pgdog.ini:2: [general] query_timeout = -1: must be an integer between 0 and 2147483647" },
	{ "[general]\nquery_timeout = 2147483648\n",
	  "pgdog.ini:2: [general] query_timeout = 2147483648: must be an integer between 0 and 2147483647" },
	{ "[general]\nclient_idle_timeout = 1s\n",
	  "pgdog.ini:2: [general] client_idle_timeout = 1s: must be an integer between 0 and 2147483647" },
	{ "[general]\nclient_idle_in_transaction_timeout = -5\n",
	  "pgdog.ini:2: [general] client_idle_in_transaction_timeout = -5: must be an integer between 0 and 2147483647" },
	{ "[general]\nrollback_timeout = 0\n",
	  "pgdog.ini:2: [general] rollback_timeout = 0: must be an integer between 1 and 2147483647" },
	{ "[general]\nserver_lifetime_jitter = -1\n",
	  "pgdog.ini:2: [general] server_lifetime_jitter = -1: must be an integer between 0 and 2147483647" },
	{ "[general]\npub_sub_channel_size = 1000001\n",
	  "pgdog.ini:2: [general] pub_sub_channel_size = 1000001: must be an integer between 0 and 1000000" },
	{ "[general]\nquery_cache_limit = 15\n",
	  "pgdog.ini:2: [general] query_cache_limit = 15: must be an integer between 16 and 1000000" },
	{ "[general]\nquery_cache_limit = 1000001\n",
	  "pgdog.ini:2: [general] query_cache_limit = 1000001: must be an integer between 16 and 1000000" },
	{ "[general]\nserver_reset_query_always = sometimes\n",
	  "pgdog.ini:2: [general] server_reset_query_always = sometimes: must be a boolean (true, false, on, off, yes, no, 1, 0)" },
	{ "[general]\n" MIN_INI "server_lifetime_jitter = -1\n",
	  "pgdog.ini:4: [databases.prod] server_lifetime_jitter = -1: must be an integer between 0 and 2147483647" },
	{ "[general]\n" MIN_INI "query_timeout = 1\n",
	  "pgdog.ini:4: [databases.prod] unknown key \"query_timeout\"" },
	{ "[general]\npooler_mode = session\n\npooler_mode = session\n",
	  "pgdog.ini:4: [general] pooler_mode is set twice (first on line 2)" },
	/* a jitter must stay below the lifetime it varies, unless that is 0 */
	{ "[general]\nserver_lifetime = 1000\nserver_lifetime_jitter = 1000\n",
	  "pgdog.ini:3: [general] server_lifetime_jitter = 1000: must be less than server_lifetime = 1000" },
	{ "[general]\nserver_lifetime_jitter = 1000\n" MIN_INI "server_lifetime = 500\n",
	  "pgdog.ini:5: [databases.prod] server_lifetime_jitter = 1000: must be less than server_lifetime = 500" },
	{ "[general]\n" MIN_INI "server_lifetime = 500\nserver_lifetime_jitter = 600\n",
	  "pgdog.ini:5: [databases.prod] server_lifetime_jitter = 600: must be less than server_lifetime = 500" },
};

START_TEST(test_config_bad_tx_values)
{
	char ini[512];

	/* MIN_INI last unless the case puts it somewhere itself */
	snprintf(ini, sizeof(ini), "%s%s", bad_tx_values[_i].ini,
		 strstr(bad_tx_values[_i].ini, "[databases.") != NULL ? "" : MIN_INI);
	load_fails(ini, NULL, bad_tx_values[_i].err);
}
END_TEST

START_TEST(test_config_user_pooler_mode_only)
{
	/* the other transaction pooling keys are [general] only */
	load_fails(MIN_INI, "[users.a]\ndatabase = prod\nprepared_statements = full\n",
		   "users.ini:3: [users.a] unknown key \"prepared_statements\"");
	load_fails(MIN_INI "rollback_timeout = 5\n", NULL,
		   "pgdog.ini:3: [databases.prod] unknown key \"rollback_timeout\"");
}
END_TEST

START_TEST(test_config_not_an_integer)
{
	load_fails("[general]\nport = 64x\n" MIN_INI, NULL,
		   "pgdog.ini:2: [general] port = 64x: must be an integer between 1 and 65535");
	load_fails("[general]\nport =\n" MIN_INI, NULL,
		   "pgdog.ini:2: [general] port = : must be an integer between 1 and 65535");
	load_fails("[general]\nport = +5\n" MIN_INI, NULL,
		   "pgdog.ini:2: [general] port = +5: must be an integer between 1 and 65535");
}
END_TEST

START_TEST(test_config_bad_bool)
{
	load_fails(
		"[general]\nsyslog = maybe\n" MIN_INI, NULL,
		"pgdog.ini:2: [general] syslog = maybe: must be a boolean (true, false, on, off, yes, no, 1, 0)");
}
END_TEST

START_TEST(test_config_bad_enum)
{
	load_fails(
		"[general]\npooler_mode = pool\n" MIN_INI, NULL,
		"pgdog.ini:2: [general] pooler_mode = pool: must be one of: transaction, session, statement");
	load_fails(
		MIN_INI "pooler_mode = transactions\n", NULL,
		"pgdog.ini:3: [databases.prod] pooler_mode = transactions: must be one of: transaction, session, statement");
	load_fails(
		MIN_INI, "[users.a]\ndatabase = prod\npooler_mode =\n",
		"users.ini:3: [users.a] pooler_mode = : must be one of: transaction, session, statement");
	load_fails(
		"[general]\nprepared_statements = on\n" MIN_INI, NULL,
		"pgdog.ini:2: [general] prepared_statements = on: must be one of: extended, disabled, full");
	load_fails(
		"[general]\nauth_type = ldap\n" MIN_INI, NULL,
		"pgdog.ini:2: [general] auth_type = ldap: must be one of: scram-sha-256, md5, plain, trust");
	load_fails(
		"[general]\nlog_level = loud\n" MIN_INI, NULL,
		"pgdog.ini:2: [general] log_level = loud: must be one of: error, warn, info, debug, noise");
	load_fails(
		MIN_INI "role = standby\n", NULL,
		"pgdog.ini:3: [databases.prod] role = standby: must be one of: primary, replica, auto");
}
END_TEST

START_TEST(test_config_empty_string)
{
	load_fails("[general]\nhost =\n" MIN_INI, NULL,
		   "pgdog.ini:2: [general] host must not be empty");
	load_fails(MIN_INI "name = ; none\n", NULL,
		   "pgdog.ini:3: [databases.prod] name must not be empty");
}
END_TEST

START_TEST(test_config_missing_host)
{
	load_fails("[databases.prod]\nport = 5433\n[databases.test]\nport = 1\n", NULL,
		   "pgdog.ini:1: [databases.prod] host is required");
	/* an empty section is seen too */
	load_fails(MIN_INI "[databases.empty]\n", NULL,
		   "pgdog.ini:3: [databases.empty] host is required");
}
END_TEST

START_TEST(test_config_missing_database)
{
	load_fails(MIN_INI, "[users.alice]\npassword = x\n",
		   "users.ini:1: [users.alice] database is required");
}
END_TEST

START_TEST(test_config_unknown_database)
{
	load_fails(
		MIN_INI, "[users.alice]\n\ndatabase = nope\n",
		"users.ini:3: [users.alice] database \"nope\" is not defined in any [databases.*] section");
}
END_TEST

START_TEST(test_config_long_line)
{
	char ini[512];
	char value[200];

	memset(value, 'x', 179);
	value[179] = '\0';
	snprintf(ini, sizeof(ini), MIN_INI "[general]\nserver_reset_query = %s\n", value);
	load_fails(ini, NULL, "pgdog.ini:4: line is longer than 199 characters");
	/* checked before anything else is parsed */
	snprintf(ini, sizeof(ini), "[bogus]\n;%s%s\n", value, value + 150);
	load_fails(ini, NULL, "pgdog.ini:2: line is longer than 199 characters");
}
END_TEST

START_TEST(test_config_duplicate_section)
{
	load_fails(MIN_INI "[general]\nport = 1\n[databases.prod]\nhost = h\n", NULL,
		   "pgdog.ini:5: section [databases.prod] appears twice");
	load_fails("[general]\n[general]\n" MIN_INI, NULL,
		   "pgdog.ini:2: section [general] appears twice");
	load_fails("[admin]\n" MIN_INI, "[admin]\npassword = x\n",
		   "users.ini:1: section [admin] appears twice");
}
END_TEST

START_TEST(test_config_unknown_section)
{
	load_fails(
		MIN_INI "[pools]\n", NULL,
		"pgdog.ini:3: unknown section [pools]: allowed are [general], [databases.NAME] and [admin]");
	load_fails(
		MIN_INI, "[databases.x]\nhost = h\n",
		"users.ini:1: unknown section [databases.x]: allowed are [users.NAME] and [admin]");
	load_fails(
		"[users.alice]\n" MIN_INI, NULL,
		"pgdog.ini:1: unknown section [users.alice]: allowed are [general], [databases.NAME] and [admin]");
	load_fails("[databases.]\nhost = h\n", NULL,
		   "pgdog.ini:1: section [databases.] needs a name after the dot");
}
END_TEST

START_TEST(test_config_bad_section_header)
{
	load_fails("[general\nport = 1\n", NULL,
		   "pgdog.ini:1: section header [general has no closing ]");
	load_fails("[general] port = 1\n", NULL, "pgdog.ini:1: unexpected text after ]: port = 1");
}
END_TEST

START_TEST(test_config_syntax_error)
{
	load_fails("[general]\nport 6432\n" MIN_INI "bogus = 1\n", NULL,
		   "pgdog.ini:2: expected [section], key = value or a ; comment");
}
END_TEST

START_TEST(test_config_key_outside_section)
{
	load_fails("port = 6432\n" MIN_INI, NULL,
		   "pgdog.ini:1: key \"port\" is outside any section");
}
END_TEST

START_TEST(test_config_key_twice)
{
	load_fails("[general]\nport = 1\n\nport = 2\n" MIN_INI, NULL,
		   "pgdog.ini:4: [general] port is set twice (first on line 2)");
}
END_TEST

START_TEST(test_config_md5_scram_mismatch)
{
	load_fails(
		"[general]\nauth_type = md5\n" MIN_INI,
		"[users.alice]\ndatabase = prod\npassword = " SCRAM_VERIFIER "\n",
		"users.ini:3: [users.alice] password is a SCRAM verifier, which auth_type md5 cannot check: use a plain password or an md5 hash");
	load_fails(
		MIN_INI, "[users.alice]\ndatabase = prod\npassword = " MD5_HASH "\n",
		"users.ini:3: [users.alice] password is an md5 hash, which auth_type scram-sha-256 cannot check: use a plain password or a SCRAM verifier");
	load_fails(
		MIN_INI, "[admin]\npassword = " MD5_HASH "\n",
		"users.ini:2: [admin] password is an md5 hash, which auth_type scram-sha-256 cannot check: use a plain password or a SCRAM verifier");
}
END_TEST

START_TEST(test_config_bad_verifier)
{
	load_fails(MIN_INI, "[users.alice]\ndatabase = prod\npassword = SCRAM-SHA-256$abc:x$y:z\n",
		   "users.ini:3: [users.alice] password: SCRAM verifier: bad iteration count");
}
END_TEST

START_TEST(test_config_min_pool_size_too_large)
{
	load_fails("[general]\ndefault_pool_size = 5\nmin_pool_size = 6\n" MIN_INI, NULL,
		   "pgdog.ini:3: [general] min_pool_size = 6 is larger than default_pool_size = 5");
	load_fails(MIN_INI "min_pool_size = 4\npool_size = 3\n", NULL,
		   "pgdog.ini:3: [databases.prod] min_pool_size = 4 is larger than pool_size = 3");
	load_fails(MIN_INI, "[users.a]\ndatabase = prod\npool_size = 2\nmin_pool_size = 3\n",
		   "users.ini:4: [users.a] min_pool_size = 3 is larger than pool_size = 2");
	/* only after resolution: the user's pool_size against the database's minimum */
	load_fails(
		MIN_INI "min_pool_size = 4\n", "[users.a]\ndatabase = prod\npool_size = 2\n",
		"users.ini:1: [users.a] with [databases.prod]: min_pool_size 4 is larger than pool_size 2");
}
END_TEST

START_TEST(test_config_duplicate_primary)
{
	load_fails(
		"[databases.a]\nname = app\nhost = h1\n"
		"[databases.b]\nname = app\nhost = h2\nrole = replica\n"
		"[databases.c]\nname = app\nhost = h3\nshard = 1\n"
		"[databases.d]\nname = app\nhost = h4\n",
		NULL,
		"pgdog.ini:12: [databases.d] name \"app\" already has a primary for shard 0 in [databases.a]");
}
END_TEST

START_TEST(test_config_duplicate_user)
{
	load_fails(
		MIN_INI,
		"[users.alice]\ndatabase = prod\n[users.a2]\nname = alice\ndatabase = prod\n",
		"users.ini:4: [users.a2] user \"alice\" for database \"prod\" is already defined by [users.alice]");
}
END_TEST

START_TEST(test_config_admin_name_collision)
{
	load_fails(
		"[databases.admin]\nhost = h\n", NULL,
		"[admin] name \"admin\" is also the name of a [databases.*] entry: choose another admin name");
	load_fails(
		MIN_INI "[admin]\nuser = root\nname = prod\n", NULL,
		"pgdog.ini:5: [admin] name \"prod\" is also the name of a [databases.*] entry: choose another admin name");
}
END_TEST

START_TEST(test_config_no_databases)
{
	load_fails(
		"[general]\nport = 1\n", "[admin]\npassword = x\n",
		"no databases configured: add a [databases.NAME] section or pass -d postgres://...");
	load_fails(
		NULL, NULL,
		"no databases configured: add a [databases.NAME] section or pass -d postgres://...");
}
END_TEST

static struct config *
reload_cfg(const char *ini, const char *users)
{
	struct config *cfg = config_new();
	char err[512];

	ck_assert_ptr_nonnull(cfg);
	ck_assert_msg(config_load_strings(cfg, "pgdog.ini", ini, "users.ini", users, err,
					  sizeof(err)) == 0,
		      "%s", err);
	return cfg;
}

/* settings that need a restart keep the running values and are named */
START_TEST(test_config_reload_restart_only)
{
	struct config *run = reload_cfg("[general]\nport = 6000\nworkers = 2\n"
					"[databases.app]\nhost = h\n",
					"[users.u]\ndatabase = app\npassword = p\n");
	struct config *next = reload_cfg("[general]\nport = 7000\nworkers = 2\n"
					 "checkout_timeout = 42\nhost = 127.0.0.2\n"
					 "syslog_facility = local3\n"
					 "[databases.app]\nhost = h\n",
					 "[users.u]\ndatabase = app\npassword = p\n");
	char changed[256];

	ck_assert_int_eq(config_keep_restart_only(next, run, changed, sizeof(changed)), 0);
	ck_assert_str_eq(changed, "host, port, syslog_facility");
	ck_assert_int_eq(next->port, 6000);
	ck_assert_str_eq(next->host, "0.0.0.0");
	ck_assert_int_eq(next->checkout_timeout, 42); /* live */
	ck_assert_int_eq(config_keep_restart_only(next, run, changed, sizeof(changed)), 0);
	ck_assert_str_eq(changed, "");
	config_free(run);
	config_free(next);
}
END_TEST

/* a pool differs when its server connections would: size, password, host */
START_TEST(test_config_reload_pool_differs)
{
	const char *ini = "[databases.app]\nhost = h\n[databases.b]\nname = b\nhost = h\n";
	struct config *a = reload_cfg(ini, "[users.u]\ndatabase = app\npassword = p\n"
					   "[users.v]\ndatabase = b\npassword = p\n");
	struct config *same = reload_cfg(ini, "[users.v]\ndatabase = b\npassword = p\n"
					      "[users.u]\ndatabase = app\npassword = p\n");
	struct config *pw = reload_cfg(ini, "[users.u]\ndatabase = app\npassword = q\n"
					    "[users.v]\ndatabase = b\npassword = p\n");
	struct config *sz =
		reload_cfg(ini, "[users.u]\ndatabase = app\npassword = p\n"
				"[users.v]\ndatabase = b\npassword = p\npool_size = 3\n");

	/* order in the file does not matter: u/app is pool 0 in a, pool 1 in same */
	ck_assert(!config_pool_differs(a, 0, same, (size_t)config_find_pool(same, "u", "app")));
	ck_assert(config_pool_differs(a, 0, pw, (size_t)config_find_pool(pw, "u", "app")));
	ck_assert(!config_pool_differs(a, 1, pw, (size_t)config_find_pool(pw, "v", "b")));
	ck_assert(config_pool_differs(a, 1, sz, (size_t)config_find_pool(sz, "v", "b")));
	config_free(a);
	config_free(same);
	config_free(pw);
	config_free(sz);
}
END_TEST

/* SET's settings: found case-insensitively, checked like the INI file, applied */
/* Whether the man page paragraph at par (up to the next .PP/.SS/.SH) names key in bold. */
static bool
man_par_names(const char *par, const char *key)
{
	const char *end = par + strlen(par);
	static const char *const marks[] = { "\n.PP", "\n.SS ", "\n.SH " };
	char want[128];

	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
		const char *m = strstr(par + 1, marks[i]);

		if (m != NULL && m < end)
			end = m;
	}
	for (int i = 0; i < 4; i++) {
		const char *f;

		if (i == 0)
			snprintf(want, sizeof(want), "\n.B %s\n", key);
		else if (i == 1)
			snprintf(want, sizeof(want), "\n.BR %s ,", key);
		else if (i == 2)
			snprintf(want, sizeof(want), "\n.BR %s .", key);
		else
			snprintf(want, sizeof(want), "\n.BR %s \"", key);
		f = strstr(par, want);
		if (f != NULL && f < end)
			return true;
	}
	return false;
}

START_TEST(test_config_live_settings)
{
	struct config *cfg = config_new();
	char err[256];
	int v, i = config_live_find("CHECKOUT_TIMEOUT");

	ck_assert_int_ge(i, 0);
	ck_assert_int_eq(config_live_parse((size_t)i, "1500", &v, err, sizeof(err)), 0);
	config_live_apply(cfg, (size_t)i, v);
	ck_assert_int_eq(cfg->checkout_timeout, 1500);
	ck_assert_int_eq(config_live_get(cfg, (size_t)i), 1500);
	ck_assert_int_eq(config_live_parse((size_t)i, "0", &v, err, sizeof(err)), -1);
	ck_assert_int_eq(config_live_parse((size_t)i, "soon", &v, err, sizeof(err)), -1);
	i = config_live_find("log_connections");
	ck_assert_int_eq(config_live_parse((size_t)i, "off", &v, err, sizeof(err)), 0);
	config_live_apply(cfg, (size_t)i, v);
	ck_assert(!cfg->log_connections);
	i = config_live_find("log_pooler_errors");
	ck_assert_int_ge(i, 0);
	ck_assert_int_eq(config_live_parse((size_t)i, "false", &v, err, sizeof(err)), 0);
	config_live_apply(cfg, (size_t)i, v);
	ck_assert(!cfg->log_pooler_errors);
	/* both man pages list every setting SET changes */
	{
		char *ini5 = read_src_file("man/pgdog.ini.5");
		char *adm7 = read_src_file("man/pgdog-admin.7");
		const char *set5 = strstr(ini5, "The admin command\n.B SET\n");
		const char *set7 = strstr(adm7, "\n.SS SET ");

		ck_assert_ptr_nonnull(set5);
		ck_assert_ptr_nonnull(set7);
		for (size_t k = 0; k < config_live_cnt(); k++) {
			ck_assert_msg(man_par_names(set5, config_live_name(k)),
				      "pgdog.ini(5) SET list lacks %s", config_live_name(k));
			ck_assert_msg(man_par_names(set7, config_live_name(k)),
				      "pgdog-admin(7) SET lacks %s", config_live_name(k));
		}
		free(ini5);
		free(adm7);
	}
	/* every live setting has a slot in the shared segment's override table */
	ck_assert_uint_le(config_live_cnt(), SHM_CTL_OVERRIDES);
	ck_assert_int_eq(config_live_find("port"), -1);
	ck_assert_int_eq(config_live_find("workers"), -1);
	config_free(cfg);
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("good");
	tcase_add_test(tc, test_config_defaults);
	tcase_add_test(tc, test_config_every_key);
	tcase_add_test(tc, test_config_user_defaults);
	tcase_add_test(tc, test_config_pool_precedence);
	tcase_add_test(tc, test_config_pooler_mode_precedence);
	tcase_add_test(tc, test_config_mode_combinations);
	tcase_add_test(tc, test_config_find_pool);
	tcase_add_test(tc, test_config_reload_restart_only);
	tcase_add_test(tc, test_config_reload_pool_differs);
	tcase_add_test(tc, test_config_live_settings);
	tcase_add_loop_test(tc, test_config_bool_spellings, 0, 9);
	tcase_add_test(tc, test_config_enum_spellings);
	tcase_add_test(tc, test_config_syntax_variants);
	tcase_add_test(tc, test_config_line_limit_ok);
	tcase_add_test(tc, test_config_admin_in_users_file);
	tcase_add_test(tc, test_config_load_files);
	tcase_add_test(tc, test_config_load_unreadable);
	tcase_add_test(tc, test_config_load_nul_byte);
	tcase_add_test(tc, test_config_samples_load);
	tcase_add_test(tc, test_config_keys_documented);
	tcase_add_test(tc, test_config_free_null);
	tcase_add_test(tc, test_config_value_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("url");
	tcase_add_test(tc, test_config_url_full);
	tcase_add_test(tc, test_config_prepared_full);
	tcase_add_test(tc, test_config_metrics_keys);
	tcase_add_test(tc, test_config_pub_sub);
	tcase_add_test(tc, test_config_url_forms);
	tcase_add_test(tc, test_config_url_existing);
	tcase_add_loop_test(tc, test_config_url_bad, 0,
			    (int)(sizeof(bad_urls) / sizeof(bad_urls[0])));
	tcase_add_test(tc, test_config_url_user_two_databases);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad");
	tcase_add_test(tc, test_config_unknown_key);
	tcase_add_test(tc, test_config_out_of_range);
	tcase_add_loop_test(tc, test_config_bad_tx_values, 0,
			    (int)(sizeof(bad_tx_values) / sizeof(bad_tx_values[0])));
	tcase_add_test(tc, test_config_user_pooler_mode_only);
	tcase_add_test(tc, test_config_not_an_integer);
	tcase_add_test(tc, test_config_bad_bool);
	tcase_add_test(tc, test_config_bad_enum);
	tcase_add_test(tc, test_config_empty_string);
	tcase_add_test(tc, test_config_missing_host);
	tcase_add_test(tc, test_config_missing_database);
	tcase_add_test(tc, test_config_unknown_database);
	tcase_add_test(tc, test_config_long_line);
	tcase_add_test(tc, test_config_duplicate_section);
	tcase_add_test(tc, test_config_unknown_section);
	tcase_add_test(tc, test_config_bad_section_header);
	tcase_add_test(tc, test_config_syntax_error);
	tcase_add_test(tc, test_config_key_outside_section);
	tcase_add_test(tc, test_config_key_twice);
	tcase_add_test(tc, test_config_md5_scram_mismatch);
	tcase_add_test(tc, test_config_bad_verifier);
	tcase_add_test(tc, test_config_min_pool_size_too_large);
	tcase_add_test(tc, test_config_duplicate_primary);
	tcase_add_test(tc, test_config_duplicate_user);
	tcase_add_test(tc, test_config_admin_name_collision);
	tcase_add_test(tc, test_config_no_databases);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
