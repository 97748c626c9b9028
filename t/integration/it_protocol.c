/*
 * it_protocol.c: malformed and unusual client input over raw sockets. After
 * each case the same workers (no crash, no respawn) still serve a normal
 * libpq client. auth_type = plain so raw sockets can log in.
 */
#include "t/lib/it.h"

#include <arpa/inet.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define APP "dbname=app user=app password=app_pw"

static pid_t g_workers[8];
static int g_workers_cnt;

static void
setup(void)
{
	it_env_start("protocol");
	it_pg_start(NULL);
	it_pg_role("app", "app_pw", "scram-sha-256");
	it_pg_hba("host all app 127.0.0.1/32 scram-sha-256");
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 2,
		.general = "auth_type = plain\nmax_message_len = 4096\nclient_login_timeout = 1000",
		.users = "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 5\n",
	});
	g_workers_cnt = it_children(g_it.pid, g_workers, 8);
}

static void
teardown(void)
{
	it_env_stop();
}

/* The workers are those of the start, and a libpq client is served (several, to hit both). */
static void
assert_pool_serves(void)
{
	pid_t now[8];
	int n = it_children(g_it.pid, now, 8);

	ck_assert_msg(n == g_workers_cnt, "%d workers, %d at start", n, g_workers_cnt);
	for (int i = 0; i < g_workers_cnt; i++) {
		bool found = false;

		for (int j = 0; j < n; j++)
			found = found || now[j] == g_workers[i];
		ck_assert_msg(found, "worker %d is gone (crashed and replaced)", (int)g_workers[i]);
	}
	for (int i = 0; i < 4; i++) {
		PGconn *c = it_connect(APP);

		ck_assert_str_eq(it_value(c, "SELECT 'served'"), "served");
		PQfinish(c);
	}
}

static void
put32(char *p, uint32_t v)
{
	uint32_t n = htonl(v);

	memcpy(p, &n, 4);
}

/* Log in over fd; ck_abort unless it works. */
static void
raw_login_ok(int fd)
{
	char st[6];

	ck_assert_msg(it_raw_login(fd, "app", "app", "app_pw", st) == 0, "raw login failed: %s",
		      st);
}

/* Read messages until an ErrorResponse; its SQLSTATE and severity, or "" on EOF. */
static void
read_error(int fd, char st[6], char sev[16], char *msg, size_t msg_len)
{
	char type, body[8192];
	long len;

	st[0] = sev[0] = '\0';
	if (msg_len > 0)
		msg[0] = '\0';
	for (;;) {
		len = it_raw_recv(fd, &type, body, sizeof(body), 5000);
		if (len < 0)
			return;
		if (type == 'E') {
			it_raw_field(body, len, 'C', st, 6);
			it_raw_field(body, len, 'V', sev, 16);
			if (sev[0] == '\0')
				it_raw_field(body, len, 'S', sev, 16);
			if (msg_len > 0)
				it_raw_field(body, len, 'M', msg, msg_len);
			return;
		}
	}
}

START_TEST(test_protocol_garbage_startup)
{
	int fd = it_raw_connect(g_it.port);
	const char http[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	char pkt[8];

	/* "GET " read as a length of 1195725856 */
	ck_assert_int_eq(it_raw_send(fd, http, sizeof(http) - 1), 0);
	ck_assert_msg(it_raw_wait_closed(fd, 3000), "an HTTP request was not refused");
	close(fd);

	/* a well-formed length with an unknown request code */
	fd = it_raw_connect(g_it.port);
	put32(pkt, 8);
	put32(pkt + 4, 0x12345678);
	ck_assert_int_eq(it_raw_send(fd, pkt, 8), 0);
	ck_assert_msg(it_raw_wait_closed(fd, 3000), "an unknown request code was not refused");
	close(fd);

	/* a length below the minimum */
	fd = it_raw_connect(g_it.port);
	put32(pkt, 3);
	put32(pkt + 4, 0x00030000);
	ck_assert_int_eq(it_raw_send(fd, pkt, 8), 0);
	ck_assert_msg(it_raw_wait_closed(fd, 3000), "a 3-byte startup packet was not refused");
	close(fd);

	/* a startup packet without the terminating NUL */
	fd = it_raw_connect(g_it.port);
	{
		char p[32] = { 0 };
		memcpy(p + 8, "user\0app\0database", 17);
		put32(p, 25);
		put32(p + 4, 0x00030000);
		ck_assert_int_eq(it_raw_send(fd, p, 25), 0);
	}
	ck_assert_msg(it_raw_wait_closed(fd, 3000), "a truncated parameter list was not refused");
	close(fd);
	assert_pool_serves();
}
END_TEST

START_TEST(test_protocol_short_length)
{
	int fd = it_raw_connect(g_it.port);
	char msg[5] = { 'Q', 0, 0, 0, 2 };
	char st[6], sev[16], text[256];

	raw_login_ok(fd);
	ck_assert_int_eq(it_raw_send(fd, msg, sizeof(msg)), 0);
	read_error(fd, st, sev, text, sizeof(text));
	ck_assert_msg(strcmp(st, "08P01") == 0, "length 2: SQLSTATE '%s' (%s)", st, text);
	ck_assert_str_eq(sev, "FATAL");
	ck_assert_msg(it_raw_wait_closed(fd, 3000), "connection left open after a bad length");
	close(fd);
	assert_pool_serves();
}
END_TEST

START_TEST(test_protocol_message_too_long)
{
	int fd = it_raw_connect(g_it.port);
	size_t qlen = 10 * 1024;
	char *msg = malloc(qlen + 6);
	char st[6], sev[16], text[256];

	ck_assert_ptr_nonnull(msg);
	raw_login_ok(fd);
	msg[0] = 'Q';
	put32(msg + 1, (uint32_t)(4 + qlen + 1));
	memcpy(msg + 5, "SELECT '", 8);
	memset(msg + 13, 'x', qlen - 9);
	msg[5 + qlen - 1] = '\'';
	msg[5 + qlen] = '\0';
	ck_assert_int_eq(it_raw_send(fd, msg, qlen + 6), 0);
	free(msg);
	read_error(fd, st, sev, text, sizeof(text));
	ck_assert_msg(strcmp(st, "08P01") == 0,
		      "10 KB query, max_message_len 4096: SQLSTATE '%s' (%s)", st, text);
	ck_assert_str_eq(sev, "FATAL");
	ck_assert_msg(it_raw_wait_closed(fd, 3000),
		      "connection left open after an oversized message");
	close(fd);

	/* a length word announcing 1 GB is refused before anything is buffered */
	fd = it_raw_connect(g_it.port);
	raw_login_ok(fd);
	{
		char hdr[5] = { 'Q' };
		put32(hdr + 1, 0x3fffffff);
		ck_assert_int_eq(it_raw_send(fd, hdr, 5), 0);
	}
	read_error(fd, st, sev, text, sizeof(text));
	ck_assert_msg(strcmp(st, "08P01") == 0, "1 GB length: SQLSTATE '%s' (%s)", st, text);
	ck_assert_msg(it_raw_wait_closed(fd, 3000), "connection left open after a 1 GB length");
	close(fd);
	assert_pool_serves();
}
END_TEST

START_TEST(test_protocol_half_message_then_gone)
{
	PGconn *mon = it_pg_connect();

	for (int i = 0; i < 10; i++) {
		int fd = it_raw_connect(g_it.port);
		char msg[20] = { 'Q' };

		raw_login_ok(fd);
		put32(msg + 1, 100);
		memcpy(msg + 5, "SELECT 1; ", 10);
		ck_assert_int_eq(it_raw_send(fd, msg, 15), 0);
		it_sleep_ms(20);
		close(fd);
	}
	/* half a startup packet, then gone */
	for (int i = 0; i < 5; i++) {
		int fd = it_raw_connect(g_it.port);
		char p[6] = { 0, 0, 0, 40, 0, 3 };

		ck_assert_int_eq(it_raw_send(fd, p, sizeof(p)), 0);
		close(fd);
	}
	it_sleep_ms(300);
	assert_pool_serves();
	ck_assert_int_le(it_pg_count_backends(mon, "app"), 5);
	PQfinish(mon);
}
END_TEST

START_TEST(test_protocol_login_timeout)
{
	int fd = it_raw_connect(g_it.port);
	int fd2 = it_raw_connect(g_it.port);
	char type, body[1024];
	long len;
	long long t0 = it_now_ms(), elapsed;

	/*
	 * startup, then never answer the password request: closed without a
	 * message, as PostgreSQL closes at authentication_timeout (pgdog sent
	 * FATAL 08P01)
	 */
	ck_assert_int_eq(it_raw_startup(fd, 3, 0, "app", "app"), 0);
	len = it_raw_recv(fd, &type, body, sizeof(body), 3000);
	ck_assert_msg(len >= 4 && type == 'R', "no authentication request");
	len = it_raw_recv(fd, &type, body, sizeof(body), 4000);
	elapsed = it_now_ms() - t0;
	ck_assert_msg(len < 0, "login timeout: message '%c' after %lld ms", type, elapsed);
	ck_assert_msg(elapsed >= 700 && elapsed <= 4000,
		      "client_login_timeout = 1000: closed after %lld ms", elapsed);
	close(fd);
	/* a client that sends nothing at all is closed too */
	ck_assert_msg(it_raw_wait_closed(fd2, 4000), "a silent client was not closed within 4 s");
	close(fd2);
	assert_pool_serves();
}
END_TEST

START_TEST(test_protocol_ssl_request)
{
	int fd = it_raw_connect(g_it.port);
	char pkt[8];
	PGconn *c;

	put32(pkt, 8);
	put32(pkt + 4, 80877103);
	ck_assert_int_eq(it_raw_send(fd, pkt, 8), 0);
	ck_assert_int_eq(it_raw_recv_byte(fd, 3000), 'N');
	raw_login_ok(fd);
	close(fd);

	c = it_connect(APP " sslmode=prefer");
	ck_assert_int_eq(PQsslInUse(c), 0);
	ck_assert_str_eq(it_value(c, "SELECT 'plain'"), "plain");
	PQfinish(c);
	/* sslmode=require must fail cleanly */
	it_connect_fail(APP " sslmode=require");
	assert_pool_serves();
}
END_TEST

START_TEST(test_protocol_gssenc_request)
{
	int fd = it_raw_connect(g_it.port);
	char pkt[8];

	put32(pkt, 8);
	put32(pkt + 4, 80877104);
	ck_assert_int_eq(it_raw_send(fd, pkt, 8), 0);
	ck_assert_int_eq(it_raw_recv_byte(fd, 3000), 'N');
	raw_login_ok(fd);
	close(fd);
	assert_pool_serves();
}
END_TEST

/*
 * One SSLRequest and one GSSENCRequest, in either order, are answered; a
 * second of either is taken, as by PostgreSQL, for an unknown protocol
 * version (pgdog answered every one with N).
 */
START_TEST(test_protocol_ssl_request_twice)
{
	for (int k = 0; k < 2; k++) {
		int fd = it_raw_connect(g_it.port);
		char pkt[8], type, body[512], out[128];
		long len;

		put32(pkt, 8);
		put32(pkt + 4, 80877104);
		ck_assert_int_eq(it_raw_send(fd, pkt, 8), 0);
		ck_assert_int_eq(it_raw_recv_byte(fd, 3000), 'N');
		put32(pkt + 4, 80877103);
		ck_assert_int_eq(it_raw_send(fd, pkt, 8), 0);
		ck_assert_int_eq(it_raw_recv_byte(fd, 3000), 'N');
		put32(pkt + 4, k ? 80877103 : 80877104);
		ck_assert_int_eq(it_raw_send(fd, pkt, 8), 0);
		len = it_raw_recv(fd, &type, body, sizeof(body), 3000);
		ck_assert_msg(len > 0 && type == 'E', "a second request: '%c'", type);
		ck_assert_str_eq(it_raw_field(body, len, 'C', out, sizeof(out)), "0A000");
		ck_assert_str_eq(
			it_raw_field(body, len, 'M', out, sizeof(out)),
			k ? "unsupported frontend protocol 1234.5679: server supports 3.0 to 3.0"
			  : "unsupported frontend protocol 1234.5680: server supports 3.0 to 3.0");
		ck_assert_msg(it_raw_wait_closed(fd, 2000), "connection left open");
		close(fd);
	}
	assert_pool_serves();
}
END_TEST

/*
 * Special packets of another length, as PostgreSQL 15 takes them: a
 * CancelRequest that is not 16 bytes is closed without a reply (pgdog sent
 * FATAL 08P01); an SSLRequest or GSSENCRequest with bytes after its code is
 * answered, those bytes skipped (pgdog refused it with 08P01).
 */
START_TEST(test_protocol_special_length)
{
	static const uint32_t codes[] = { 80877102, 80877102, 80877103, 80877104 };
	static const uint32_t lens[] = { 12, 20, 12, 16 };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		int fd = it_raw_connect(g_it.port);
		char pkt[20] = { 0 };

		put32(pkt, lens[i]);
		put32(pkt + 4, codes[i]);
		ck_assert_int_eq(it_raw_send(fd, pkt, lens[i]), 0);
		if (codes[i] == 80877102) {
			char byte;
			long long end = it_now_ms() + 3000;
			ssize_t n = -1;

			while (it_now_ms() < end) {
				struct pollfd pfd = { .fd = fd, .events = POLLIN };

				if (poll(&pfd, 1, 100) > 0) {
					n = recv(fd, &byte, 1, 0);
					break;
				}
			}
			ck_assert_msg(n == 0, "cancel of %u bytes: recv %zd, first byte %c",
				      lens[i], n, n > 0 ? byte : '-');
		} else {
			ck_assert_int_eq(it_raw_recv_byte(fd, 3000), 'N');
			raw_login_ok(fd);
		}
		close(fd);
	}
	assert_pool_serves();
}
END_TEST

START_TEST(test_protocol_minor_version)
{
	int fd = it_raw_connect(g_it.port);
	char type, body[1024];
	long len;
	char st[6];

	ck_assert_int_eq(it_raw_startup(fd, 3, 1, "app", "app"), 0);
	len = it_raw_recv(fd, &type, body, sizeof(body), 3000);
	ck_assert_msg(
		len >= 8 && type == 'v',
		"protocol 3.1: first message '%c' (len %ld), expected NegotiateProtocolVersion",
		type, len);
	{
		uint32_t version, cnt;

		/* as PostgreSQL 15: the newest version it speaks, 3.0, whole (libpq 18 checks it) */
		memcpy(&version, body, 4);
		memcpy(&cnt, body + 4, 4);
		ck_assert_uint_eq(ntohl(version), 0x00030000u);
		ck_assert_uint_eq(ntohl(cnt), 0);
	}
	/* then the login goes on: password request */
	len = it_raw_recv(fd, &type, body, sizeof(body), 3000);
	ck_assert_msg(len >= 4 && type == 'R', "after NegotiateProtocolVersion: '%c'", type);
	{
		const char pw[] = "app_pw";
		char msg[16] = { 'p' };

		put32(msg + 1, 4 + sizeof(pw));
		memcpy(msg + 5, pw, sizeof(pw));
		ck_assert_int_eq(it_raw_send(fd, msg, 5 + sizeof(pw)), 0);
	}
	for (;;) {
		len = it_raw_recv(fd, &type, body, sizeof(body), 5000);
		ck_assert_msg(len >= 0, "connection closed during a 3.1 login");
		if (type == 'E') {
			it_raw_field(body, len, 'C', st, 6);
			ck_abort_msg("protocol 3.1 login failed: %s", st);
		}
		if (type == 'Z')
			break;
	}
	/* a query works on it */
	{
		const char q[] = "SELECT 31";
		char msg[32] = { 'Q' };

		put32(msg + 1, 4 + sizeof(q));
		memcpy(msg + 5, q, sizeof(q));
		ck_assert_int_eq(it_raw_send(fd, msg, 5 + sizeof(q)), 0);
		for (;;) {
			len = it_raw_recv(fd, &type, body, sizeof(body), 5000);
			ck_assert_msg(len >= 0 && type != 'E', "query on a 3.1 connection failed");
			if (type == 'D')
				ck_assert_msg(len >= 8 && memcmp(body + 6, "31", 2) == 0,
					      "DataRow");
			if (type == 'Z')
				break;
		}
	}
	close(fd);
	assert_pool_serves();
}
END_TEST

START_TEST(test_protocol_major_version)
{
	int fd = it_raw_connect(g_it.port);
	char st[6], sev[16], text[256];

	ck_assert_int_eq(it_raw_startup(fd, 4, 0, "app", "app"), 0);
	read_error(fd, st, sev, text, sizeof(text));
	ck_assert_msg(sev[0] != '\0', "protocol 4.0: no ErrorResponse");
	ck_assert_msg(strcmp(sev, "FATAL") == 0, "protocol 4.0: severity %s (%s %s)", sev, st,
		      text);
	ck_assert_msg(strcmp(st, "0A000") == 0 || strcmp(st, "08P01") == 0,
		      "protocol 4.0: SQLSTATE %s (%s)", st, text);
	ck_assert_msg(it_raw_wait_closed(fd, 3000), "connection left open after protocol 4.0");
	close(fd);

	/* protocol 2.0 is gone too */
	fd = it_raw_connect(g_it.port);
	ck_assert_int_eq(it_raw_startup(fd, 2, 0, "app", "app"), 0);
	read_error(fd, st, sev, text, sizeof(text));
	ck_assert_msg(strcmp(sev, "FATAL") == 0, "protocol 2.0: severity '%s' (%s %s)", sev, st,
		      text);
	ck_assert_msg(it_raw_wait_closed(fd, 3000), "connection left open after protocol 2.0");
	close(fd);
	assert_pool_serves();
}
END_TEST

/* A startup packet without a user: FATAL 28000, as from PostgreSQL (not 08P01). */
START_TEST(test_protocol_no_user)
{
	int fd = it_raw_connect(g_it.port);
	char st[6], sev[16], text[256];

	ck_assert_int_eq(it_raw_startup(fd, 3, 0, "", "app"), 0);
	read_error(fd, st, sev, text, sizeof(text));
	ck_assert_msg(strcmp(st, "28000") == 0, "no user: SQLSTATE '%s' (%s)", st, text);
	ck_assert_str_eq(sev, "FATAL");
	ck_assert_str_eq(text, "no PostgreSQL user name specified in startup packet");
	close(fd);
	assert_pool_serves();
}
END_TEST

/* A StartupMessage for app/app into buf; its length. */
static size_t
startup_bytes(char *buf)
{
	static const char params[] = "user\0app\0database\0app\0";
	size_t n = 8 + sizeof(params); /* the last NUL ends the list */

	put32(buf, (uint32_t)n);
	put32(buf + 4, 196608);
	memcpy(buf + 8, params, sizeof(params));
	return n;
}

/*
 * A startup packet takes as many parameters as it holds, as in PostgreSQL
 * (pgdog refused more than 64 with 08P01); a repeated name's last value wins.
 */
START_TEST(test_protocol_many_params)
{
	static char buf[10000];
	char type, body[8192], app[64] = "", style[64] = "";
	size_t n = 8;
	int fd = it_raw_connect(g_it.port);
	long len;

	memcpy(buf + n, "user\0app\0database\0app\0DateStyle\0German\0", 39);
	n += 39;
	for (int i = 0; i < 400; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "application_name%ca%d%c", 0, i, 0);
	buf[n++] = '\0';
	put32(buf, (uint32_t)n);
	put32(buf + 4, 196608);
	buf[n] = 'p';
	put32(buf + n + 1, 4 + 7);
	memcpy(buf + n + 5, "app_pw", 7);
	n += 5 + 7;
	ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
	for (;;) {
		len = it_raw_recv(fd, &type, body, sizeof(body), 5000);
		ck_assert_msg(len >= 0 && type != 'E', "login: %c %.*s", len < 0 ? '-' : type,
			      (int)(len > 0 ? len : 0), body);
		if (type == 'S' && strcmp(body, "application_name") == 0)
			snprintf(app, sizeof(app), "%s", body + strlen(body) + 1);
		if (type == 'S' && strcmp(body, "DateStyle") == 0)
			snprintf(style, sizeof(style), "%s", body + strlen(body) + 1);
		if (type == 'Z')
			break;
	}
	ck_assert_str_eq(app, "a399");
	ck_assert_str_eq(style, "German, DMY");
	close(fd);
	assert_pool_serves();
}
END_TEST

/* A message sent in the same write as the StartupMessage, and the replies it must get. */
struct startup_then {
	char type;
	const char *body;
	size_t len;
};

static void
startup_then(const struct startup_then *m, const char *want)
{
	char buf[256], got[256];
	int fd = it_raw_connect(g_it.port);
	size_t n = startup_bytes(buf);

	buf[n] = m->type;
	put32(buf + n + 1, (uint32_t)(4 + m->len));
	memcpy(buf + n + 5, m->body, m->len);
	n += 5 + m->len;
	ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
	it_raw_types(fd, 1, IT_RAW_STATES | IT_RAW_NO_PARAMS, got, sizeof(got));
	ck_assert_str_eq(got, want);
	close(fd);
}

/*
 * What a client sends in the same write as its StartupMessage is read as
 * PostgreSQL reads it: a password message goes on with the login (pgdog
 * asked for the password and then waited until client_login_timeout), a
 * Query in its place is refused at once (08P01), and anything after an
 * SSLRequest's answer was sent is refused (PostgreSQL: it could be a man in
 * the middle's; pgdog went on with the login).
 */
START_TEST(test_protocol_pipelined_login)
{
	char buf[256], got[256];
	size_t n;
	int fd;

	startup_then(&(const struct startup_then){ 'p', "app_pw", 7 }, "R R K Z");
	startup_then(&(const struct startup_then){ 'Q', "SELECT 1", 9 }, "R E(08P01)");

	fd = it_raw_connect(g_it.port);
	put32(buf, 8);
	put32(buf + 4, 80877103);
	n = 8 + startup_bytes(buf + 8);
	ck_assert_int_eq(it_raw_send(fd, buf, n), 0);
	ck_assert_int_eq(it_raw_recv_byte(fd, 3000), 'N');
	it_raw_types(fd, 1, IT_RAW_STATES | IT_RAW_NO_PARAMS, got, sizeof(got));
	ck_assert_str_eq(got, "E(08P01)");
	close(fd);
	assert_pool_serves();
}
END_TEST

/* An unknown message type after login: FATAL 08P01. */
START_TEST(test_protocol_unknown_message)
{
	int fd = it_raw_connect(g_it.port);
	char msg[5] = { '~', 0, 0, 0, 4 };
	char st[6], sev[16], text[256];

	raw_login_ok(fd);
	ck_assert_int_eq(it_raw_send(fd, msg, sizeof(msg)), 0);
	read_error(fd, st, sev, text, sizeof(text));
	ck_assert_msg(strcmp(st, "08P01") == 0, "message '~': SQLSTATE '%s' (%s)", st, text);
	ck_assert_msg(it_raw_wait_closed(fd, 3000), "connection left open after message '~'");
	close(fd);
	assert_pool_serves();
}
END_TEST

/* Random bytes after login never crash a worker. */
START_TEST(test_protocol_random_bytes)
{
	unsigned seed = 12345;

	for (int round = 0; round < 20; round++) {
		int fd = it_raw_connect(g_it.port);
		char junk[512];

		raw_login_ok(fd);
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (char)(rand_r(&seed) & 0xff);
		it_raw_send(fd, junk, sizeof(junk));
		it_raw_wait_closed(fd, 2000);
		close(fd);
	}
	assert_pool_serves();
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("it_protocol");
	TCase *tc = tcase_create("protocol");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_protocol_garbage_startup);
	tcase_add_test(tc, test_protocol_short_length);
	tcase_add_test(tc, test_protocol_message_too_long);
	tcase_add_test(tc, test_protocol_half_message_then_gone);
	tcase_add_test(tc, test_protocol_login_timeout);
	tcase_add_test(tc, test_protocol_ssl_request);
	tcase_add_test(tc, test_protocol_gssenc_request);
	tcase_add_test(tc, test_protocol_ssl_request_twice);
	tcase_add_test(tc, test_protocol_special_length);
	tcase_add_test(tc, test_protocol_many_params);
	tcase_add_test(tc, test_protocol_minor_version);
	tcase_add_test(tc, test_protocol_major_version);
	tcase_add_test(tc, test_protocol_unknown_message);
	tcase_add_test(tc, test_protocol_pipelined_login);
	tcase_add_test(tc, test_protocol_no_user);
	tcase_add_test(tc, test_protocol_random_bytes);
	suite_add_tcase(s, tc);
	return it_run_suite(s);
}
