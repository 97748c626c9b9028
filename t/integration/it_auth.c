/*
 * it_auth.c: client and server authentication through pgdog against a real
 * PostgreSQL. One TCase per client auth_type (scram-sha-256, md5, plain,
 * trust), each with its own cluster and pgdog. In every TCase four roles
 * log in to PostgreSQL with a different server method (pg_hba.conf):
 * scram_user (scram-sha-256), md5_user (md5), plain_user (password), and
 * trust_user (trust). users.ini gives their passwords as plaintext, as an
 * md5 hash and as a SCRAM verifier (from `pgdog hash` and from PostgreSQL's
 * own pg_authid), with server_password where pgdog needs cleartext.
 */
#include "t/lib/it.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum auth_kind {
	AK_SCRAM,
	AK_MD5,
	AK_PLAIN,
	AK_TRUST,
};

static enum auth_kind g_kind;      /* the TCase's auth_type, set by its fixture */
static char g_hash_verifier[1024]; /* from `pgdog hash plain_pw`, or "" */

#define USERS_CNT 5
static const char *const g_users[USERS_CNT] = { "scram_user", "md5_user", "plain_user",
						"trust_user", "pgv_user" };
static const char *const g_passwords[USERS_CNT] = { "scram_pw", "md5_pw", "plain_pw", "trust_pw",
						    "pgv_pw" };

/* ---- helpers ------------------------------------------------------------ */

static void
md5_hex(const char *in, size_t len, char out[33])
{
	unsigned char d[16];
	unsigned int dl = 0;

	ck_assert(EVP_Digest(in, len, d, &dl, EVP_md5(), NULL) == 1 && dl == 16);
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* "md5" + md5hex(password || user) */
static void
md5_secret(const char *password, const char *user, char out[36])
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "%s%s", password, user);

	memcpy(out, "md5", 3);
	md5_hex(buf, (size_t)n, out + 3);
}

/*
 * Log in over a raw socket answering cleartext and MD5 requests with
 * password. Returns 0 on ReadyForQuery, 10 if pgdog asked for SASL (the
 * caller uses libpq), -1 on an ErrorResponse (sqlstate, msg filled) or an
 * I/O error (sqlstate "").
 */
static int
raw_login(const char *user, const char *db, const char *password, char sqlstate[6], char *msg,
	  size_t msg_len)
{
	int fd = it_raw_connect(g_it.port);
	char type, body[4096];
	long len;
	int rc = -1;

	sqlstate[0] = '\0';
	msg[0] = '\0';
	ck_assert(it_raw_startup(fd, 3, 0, user, db) == 0);
	for (;;) {
		len = it_raw_recv(fd, &type, body, sizeof(body), 5000);
		if (len < 0)
			break;
		if (type == 'E') {
			it_raw_field(body, len, 'C', sqlstate, 6);
			it_raw_field(body, len, 'M', msg, msg_len);
			break;
		}
		if (type == 'Z') {
			rc = 0;
			break;
		}
		if (type == 'R' && len >= 4) {
			uint32_t code = ((uint32_t)(unsigned char)body[0] << 24) |
					((uint32_t)(unsigned char)body[1] << 16) |
					((uint32_t)(unsigned char)body[2] << 8) |
					(unsigned char)body[3];
			char out[600];
			size_t ol;

			if (code == 0)
				continue;
			if (code == 10) {
				rc = 10;
				break;
			}
			if (code == 3) {
				ol = (size_t)snprintf(out + 5, sizeof(out) - 5, "%s", password) + 1;
			} else if (code == 5 && len >= 8) {
				char sec[36], buf[64], hex[33];

				md5_secret(password, user, sec);
				memcpy(buf, sec + 3, 32);
				memcpy(buf + 32, body + 4, 4);
				md5_hex(buf, 36, hex);
				ol = (size_t)snprintf(out + 5, sizeof(out) - 5, "md5%s", hex) + 1;
			} else {
				ck_abort_msg("unexpected authentication request %u", code);
			}
			out[0] = 'p';
			out[1] = (char)((ol + 4) >> 24);
			out[2] = (char)((ol + 4) >> 16);
			out[3] = (char)((ol + 4) >> 8);
			out[4] = (char)(ol + 4);
			ck_assert(it_raw_send(fd, out, ol + 5) == 0);
		}
	}
	close(fd);
	return rc;
}

static const char *
kind_name(enum auth_kind k)
{
	switch (k) {
	case AK_SCRAM:
		return "scram-sha-256";
	case AK_MD5:
		return "md5";
	case AK_PLAIN:
		return "plain";
	case AK_TRUST:
		return "trust";
	}
	return "?";
}

/* ---- fixture ------------------------------------------------------------ */

static void
setup_common(enum auth_kind k, const char *tcname)
{
	char users[8192], general[128];
	char md5sec[36];
	const char *pgv;
	const char *scram_plain_user;
	char out[1024];
	const char *argv[] = { "pgdog", "hash", "plain_pw", NULL };
	int rc;

	g_kind = k;
	it_env_start(tcname);
	it_pg_start(NULL);
	it_pg_role("scram_user", "scram_pw", "scram-sha-256");
	it_pg_role("md5_user", "md5_pw", "md5");
	it_pg_role("plain_user", "plain_pw", "scram-sha-256");
	it_pg_role("trust_user", NULL, NULL);
	it_pg_role("pgv_user", "pgv_pw", "scram-sha-256");
	it_pg_hba("host all scram_user 127.0.0.1/32 scram-sha-256\n"
		  "host all pgv_user 127.0.0.1/32 scram-sha-256\n"
		  "host all md5_user 127.0.0.1/32 md5\n"
		  "host all plain_user 127.0.0.1/32 password\n"
		  "host all trust_user 127.0.0.1/32 trust");

	/* a SCRAM verifier from pgdog itself; test_auth_hash_cli checks the command */
	g_hash_verifier[0] = '\0';
	rc = it_pgdog_run(argv, out, sizeof(out), 10000);
	if (rc == 0 && strncmp(out, "SCRAM-SHA-256$", 14) == 0) {
		out[strcspn(out, "\r\n")] = '\0';
		snprintf(g_hash_verifier, sizeof(g_hash_verifier), "%s", out);
	}
	/* PostgreSQL's own verifier for pgv_user */
	pgv = it_pg_role_secret("pgv_user");
	ck_assert_msg(strncmp(pgv, "SCRAM-SHA-256$", 14) == 0, "pg_authid: %s", pgv);
	md5_secret("md5_pw", "md5_user", md5sec);
	ck_assert_str_eq(it_pg_role_secret("md5_user"), md5sec);

	/*
	 * scram: md5 hashes cannot answer SCRAM, so md5_user is plaintext;
	 * md5: SCRAM verifiers cannot answer MD5, so plain_user/pgv_user are
	 * plaintext. Everything else uses the stored forms.
	 */
	scram_plain_user = g_hash_verifier[0] != '\0' ? g_hash_verifier : pgv;
	snprintf(users, sizeof(users),
		 "[users.scram_user]\ndatabase = app\npassword = scram_pw\n\n"
		 "[users.md5_user]\ndatabase = app\npassword = %s\nserver_password = md5_pw\n\n"
		 "[users.plain_user]\ndatabase = app\npassword = %s\nserver_password = plain_pw\n\n"
		 "[users.trust_user]\ndatabase = app\npassword = trust_pw\n\n"
		 "[users.pgv_user]\ndatabase = app\npassword = %s\nserver_password = pgv_pw\n",
		 k == AK_SCRAM ? "md5_pw" : md5sec, k == AK_MD5 ? "plain_pw" : scram_plain_user,
		 k == AK_MD5 ? "pgv_pw" : pgv);
	snprintf(general, sizeof(general), "auth_type = %s", kind_name(k));
	it_pgdog_start(&(struct it_pgdog_conf){ .general = general, .users = users });
}

static void
setup_scram(void)
{
	setup_common(AK_SCRAM, "scram");
}

static void
setup_md5(void)
{
	setup_common(AK_MD5, "md5");
}

static void
setup_plain(void)
{
	setup_common(AK_PLAIN, "plain");
}

static void
setup_trust(void)
{
	setup_common(AK_TRUST, "trust");
}

static void
teardown(void)
{
	it_env_stop();
}

/* ---- tests -------------------------------------------------------------- */

/* pgdog asks every user for the configured method. */
START_TEST(test_auth_method_requested)
{
	int want = g_kind == AK_SCRAM ? 10 : g_kind == AK_MD5 ? 5 : g_kind == AK_PLAIN ? 3 : 0;
	char st[6];
	int got = it_raw_auth_request(g_it.port, g_users[_i], "app", st);

	ck_assert_msg(got == want,
		      "auth_type %s, user %s: authentication request %d (error %s), expected %d",
		      kind_name(g_kind), g_users[_i], got, st, want);
}
END_TEST

/*
 * A SCRAM client-first-message pgdog cannot read: FATAL 08P01 with the
 * reason said once ("malformed SCRAM message: bad channel binding flag").
 */
START_TEST(test_auth_scram_malformed)
{
	static const char mech[] = "SCRAM-SHA-256";
	static const struct {
		const char *data, *sqlstate, *message;
	} cases[] = {
		{ "x,,n=,r=abcdef", "08P01", "malformed SCRAM message: bad channel binding flag" },
		/* PostgreSQL's own words and code for an authorization identity */
		{ "n,a=bob,n=,r=abcdef", "0A000",
		  "client uses authorization identity, but it is not supported" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fd = it_raw_connect(g_it.port);
		char buf[128], type, body[1024], st[6], text[256];
		size_t n = 5, dlen = strlen(cases[i].data);
		uint32_t v;
		long len;

		ck_assert_int_eq(it_raw_startup(fd, 3, 0, g_users[0], "app"), 0);
		len = it_raw_recv(fd, &type, body, sizeof(body), 5000);
		ck_assert_msg(len >= 4 && type == 'R', "first message '%c'", type);
		buf[0] = 'p';
		memcpy(buf + n, mech, sizeof(mech));
		n += sizeof(mech);
		v = htonl((uint32_t)dlen);
		memcpy(buf + n, &v, 4);
		memcpy(buf + n + 4, cases[i].data, dlen);
		n += 4 + dlen;
		v = htonl((uint32_t)(n - 1));
		memcpy(buf + 1, &v, 4);
		ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
		len = it_raw_recv(fd, &type, body, sizeof(body), 5000);
		ck_assert_msg(len > 0 && type == 'E', "after SASLInitialResponse %s: '%c'",
			      cases[i].data, type);
		ck_assert_str_eq(it_raw_field(body, len, 'C', st, sizeof(st)), cases[i].sqlstate);
		ck_assert_str_eq(it_raw_field(body, len, 'M', text, sizeof(text)),
				 cases[i].message);
		close(fd);
	}
}
END_TEST

/* The right password logs in, and pgdog logs in to PostgreSQL as that role. */
START_TEST(test_auth_login)
{
	char extra[256];
	PGconn *conn;

	snprintf(extra, sizeof(extra), "dbname=app user=%s password=%s", g_users[_i],
		 g_passwords[_i]);
	conn = it_connect(extra);
	ck_assert_str_eq(it_value(conn, "SELECT current_user"), g_users[_i]);
	ck_assert_str_eq(it_value(conn, "SELECT current_database()"), "postgres");
	PQfinish(conn);
}
END_TEST

/* A wrong password: FATAL 28P01 password authentication failed for user "x". */
START_TEST(test_auth_wrong_password)
{
	char extra[256], want[128], st[6], msg[512];
	const char *user = g_users[_i];
	int rc;

	snprintf(want, sizeof(want), "password authentication failed for user \"%s\"", user);
	if (g_kind == AK_TRUST) {
		/* trust: any password is accepted */
		snprintf(extra, sizeof(extra), "dbname=app user=%s password=wrong", user);
		PQfinish(it_connect(extra));
		return;
	}
	rc = raw_login(user, "app", "wrong_pw", st, msg, sizeof(msg));
	if (rc == 10) {
		snprintf(extra, sizeof(extra), "dbname=app user=%s password=wrong_pw", user);
		const char *err = it_connect_fail(extra);
		ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
		return;
	}
	ck_assert_msg(rc == -1, "wrong password for %s was accepted", user);
	ck_assert_str_eq(st, "28P01");
	ck_assert_str_eq(msg, want);
}
END_TEST

/* An unknown user gets exactly what a wrong password gets. */
START_TEST(test_auth_unknown_user)
{
	char st[6], msg[512];
	/*
	 * With a password method an unknown user fails exactly like a wrong
	 * password (no user enumeration). Under trust there is no password, and
	 * PostgreSQL answers 28000 "role ... does not exist": so does pgdog.
	 */
	bool is_trust = g_kind == AK_TRUST;
	const char *want = is_trust ? "role \"nosuch_user\" does not exist"
				    : "password authentication failed for user \"nosuch_user\"";
	int rc = raw_login("nosuch_user", "app", "whatever", st, msg, sizeof(msg));

	if (rc == 10) {
		const char *err = it_connect_fail("dbname=app user=nosuch_user password=whatever");
		ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
		return;
	}
	ck_assert_msg(rc == -1, "unknown user logged in");
	ck_assert_str_eq(st, is_trust ? "28000" : "28P01");
	ck_assert_str_eq(msg, want);
}
END_TEST

/* An unknown database: 3D000. */
START_TEST(test_auth_unknown_database)
{
	char st[6], msg[512];
	int rc = raw_login("scram_user", "nosuch_db", "scram_pw", st, msg, sizeof(msg));

	if (rc == 10) {
		const char *err =
			it_connect_fail("dbname=nosuch_db user=scram_user password=scram_pw");
		ck_assert_msg(strstr(err, "nosuch_db") != NULL,
			      "error \"%s\" does not name the database", err);
		return;
	}
	ck_assert_msg(rc == -1, "login to an unknown database succeeded");
	ck_assert_msg(strcmp(st, "3D000") == 0, "SQLSTATE %s (%s), expected 3D000", st, msg);
	ck_assert_msg(strstr(msg, "nosuch_db") != NULL, "message \"%s\" does not name the database",
		      msg);
}
END_TEST

/* The admin console answers the admin user and refuses everybody else. */
START_TEST(test_auth_admin_console)
{
	PGconn *conn = it_connect("dbname=admin user=admin password=pgdog");
	PGresult *res = it_exec_ok(conn, "SHOW VERSION");
	const char *err;

	ck_assert_int_ge(PQntuples(res), 1);
	ck_assert_msg(strstr(PQgetvalue(res, 0, 0), "pgdog") != NULL ||
			      strstr(PQgetvalue(res, 0, 0), "PgDog") != NULL,
		      "SHOW VERSION: %s", PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(conn);

	err = it_connect_fail("dbname=admin user=scram_user password=scram_pw");
	ck_assert_msg(strstr(err, "FATAL") != NULL, "non-admin refused without FATAL: %s", err);
	if (g_kind != AK_TRUST) {
		err = it_connect_fail("dbname=admin user=admin password=wrong");
		ck_assert_msg(strstr(err, "password authentication failed for user \"admin\"") !=
				      NULL,
			      "admin with a wrong password: %s", err);
	}
}
END_TEST

/* `pgdog hash` prints a verifier that PostgreSQL-style parsers accept. */
START_TEST(test_auth_hash_cli)
{
	unsigned iter = 0;
	char salt[128] = "", keys[256] = "";

	ck_assert_msg(g_hash_verifier[0] != '\0',
		      "`pgdog hash plain_pw` did not print a SCRAM verifier");
	ck_assert_msg(
		sscanf(g_hash_verifier, "SCRAM-SHA-256$%u:%127[^$]$%255s", &iter, salt, keys) == 3,
		"malformed verifier: %s", g_hash_verifier);
	ck_assert_uint_ge(iter, 4096);
	ck_assert_msg(strchr(keys, ':') != NULL, "no StoredKey:ServerKey in %s", g_hash_verifier);
}
END_TEST

static Suite *
auth_suite(void)
{
	Suite *s = suite_create("it_auth");
	struct {
		const char *name;
		void (*setup)(void);
	} tcs[] = { { "scram", setup_scram },
		    { "md5", setup_md5 },
		    { "plain", setup_plain },
		    { "trust", setup_trust } };

	for (size_t i = 0; i < sizeof(tcs) / sizeof(tcs[0]); i++) {
		TCase *tc = tcase_create(tcs[i].name);

		tcase_add_unchecked_fixture(tc, tcs[i].setup, teardown);
		tcase_set_timeout(tc, 60);
		tcase_add_loop_test(tc, test_auth_method_requested, 0, USERS_CNT);
		tcase_add_loop_test(tc, test_auth_login, 0, USERS_CNT);
		tcase_add_loop_test(tc, test_auth_wrong_password, 0, USERS_CNT);
		tcase_add_test(tc, test_auth_unknown_user);
		tcase_add_test(tc, test_auth_unknown_database);
		tcase_add_test(tc, test_auth_admin_console);
		if (i == 0) {
			tcase_add_test(tc, test_auth_hash_cli);
			tcase_add_test(tc, test_auth_scram_malformed);
		}
		suite_add_tcase(s, tc);
	}
	return s;
}

int
main(void)
{
	return it_run_suite(auth_suite());
}
