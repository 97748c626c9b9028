/*
 * it_stream.c: the worker's socket layer (worker/wk_stream.c) against real
 * PostgreSQL: a client that stops reading a large result holds the server
 * back instead of making pgdog buffer it (backpressure, then resume when the
 * client drains), bytes arrive whole and in order, and a server connection
 * that is refused reaches the waiting client as an error naming the cause.
 */
#include "t/lib/it.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define ROWS      200000
#define ROW_BYTES 200
/* pgdog may hold WK_BACKPRESSURE_BYTES (512 kB) per direction, plus malloc slack */
#define MAX_GROWTH_KB (16 * 1024)

static int g_dead_port;

static void
setup(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	char dbs[256];

	it_env_start("stream");
	it_pg_start(NULL);
	it_pg_role("app", "app_pw", "scram-sha-256");
	it_pg_hba("host all app 127.0.0.1/32 scram-sha-256");
	/* a port nobody listens on: bind to learn a free one, then close it */
	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	g_dead_port = ntohs(sa.sin_port);
	close(fd);
	snprintf(dbs, sizeof(dbs),
		 "[databases.dead]\nhost = 127.0.0.1\nport = %d\ndatabase_name = postgres\n",
		 g_dead_port);
	it_pgdog_start(&(struct it_pgdog_conf){
		.workers = 1,
		.general = "pooler_mode = transaction\nauth_type = trust",
		.databases = dbs,
		.users = "[users.app]\ndatabase = app\npassword = app_pw\n\n"
			 "[users.deadu]\ndatabase = dead\npassword = deadu_pw\n",
	});
}

static void
teardown(void)
{
	it_env_stop();
}

/* VmRSS of pid in kB, -1 if unreadable. */
static long long
rss_kb(pid_t pid)
{
	char path[64], line[256];
	long long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void
send_query(int fd, const char *sql)
{
	char msg[512];
	uint32_t len = (uint32_t)(4 + strlen(sql) + 1), nlen = htonl(len);

	ck_assert_uint_lt(len + 1, sizeof(msg));
	msg[0] = 'Q';
	memcpy(msg + 1, &nlen, 4);
	memcpy(msg + 5, sql, strlen(sql) + 1);
	ck_assert_int_eq(it_raw_send(fd, msg, len + 1), 0);
}

/* Read up to ReadyForQuery; returns the DataRow count, *last the last row's body start. */
static long
read_result(int fd, char *last, size_t last_len)
{
	static char body[4096];
	long rows = 0, n;
	char type;

	for (long i = 0; i < 4L * ROWS; i++) {
		n = it_raw_recv(fd, &type, body, sizeof(body), 10000);
		ck_assert_msg(n >= 0, "no reply after %ld rows", rows);
		ck_assert_msg(type != 'E', "error after %ld rows", rows);
		if (type == 'D') {
			rows++;
			if (last != NULL && n > 6) {
				size_t k =
					(size_t)n - 6 < last_len - 1 ? (size_t)n - 6 : last_len - 1;

				memcpy(last, body + 6, k);
				last[k] = '\0';
			}
		}
		if (type == 'Z')
			return rows;
	}
	ck_abort_msg("no ReadyForQuery after %d messages", 4 * ROWS);
	return -1;
}

/*
 * A client that does not read a 40 MB result: pgdog stops reading the server
 * once the client's output is full (its memory stays flat), and goes on when
 * the client reads: every row arrives, then the connection serves again.
 */
START_TEST(test_stream_backpressure)
{
	int fd = it_raw_connect(g_it.port);
	char sqlstate[6], sql[256], last[64];
	pid_t workers[4];
	long long before, during;
	long rows;

	ck_assert_int_eq(it_children(g_it.pid, workers, 4), 1);
	ck_assert_int_eq(it_raw_login(fd, "app", "app", "app_pw", sqlstate), 0);
	send_query(fd, "SELECT 1");
	ck_assert_int_eq(read_result(fd, NULL, 0), 1);
	before = rss_kb(workers[0]);
	ck_assert_int_gt(before, 0);
	snprintf(sql, sizeof(sql),
		 "SELECT g || ':' || repeat('x', %d) FROM generate_series(1, %d) g", ROW_BYTES,
		 ROWS);
	send_query(fd, sql);
	/* PostgreSQL produces the 40 MB in well under this; the client reads nothing */
	it_sleep_ms(2000);
	during = rss_kb(workers[0]);
	ck_assert_msg(during - before < MAX_GROWTH_KB,
		      "the worker grew by %lld kB while the client did not read (limit %d kB)",
		      during - before, MAX_GROWTH_KB);
	rows = read_result(fd, last, sizeof(last));
	ck_assert_int_eq(rows, ROWS);
	/* the last row is the last one PostgreSQL sent: nothing lost or reordered at the end */
	snprintf(sql, sizeof(sql), "%d:x", ROWS);
	ck_assert_msg(strncmp(last, sql, strlen(sql)) == 0, "the last row is '%s'", last);
	send_query(fd, "SELECT 42");
	ck_assert_int_eq(read_result(fd, last, sizeof(last)), 1);
	ck_assert_str_eq(last, "42");
	close(fd);
}
END_TEST

/* Many queries in one write: every answer, in order (one flush per batch). */
START_TEST(test_stream_pipelined_queries)
{
	int fd = it_raw_connect(g_it.port);
	char sqlstate[6], buf[64 * 40], last[64];
	size_t off = 0;

	ck_assert_int_eq(it_raw_login(fd, "app", "app", "app_pw", sqlstate), 0);
	for (int i = 0; i < 40; i++) {
		char sql[32];
		uint32_t len, nlen;

		snprintf(sql, sizeof(sql), "SELECT %d", i);
		len = (uint32_t)(4 + strlen(sql) + 1);
		nlen = htonl(len);
		buf[off] = 'Q';
		memcpy(buf + off + 1, &nlen, 4);
		memcpy(buf + off + 5, sql, strlen(sql) + 1);
		off += len + 1;
	}
	ck_assert_int_eq(it_raw_send(fd, buf, off), 0);
	for (int i = 0; i < 40; i++) {
		char want[16];

		ck_assert_int_eq(read_result(fd, last, sizeof(last)), 1);
		snprintf(want, sizeof(want), "%d", i);
		ck_assert_str_eq(last, want);
	}
	close(fd);
}
END_TEST

/* A refused server connection: the client gets 08006 naming the cause; others go on. */
START_TEST(test_stream_connect_refused)
{
	long long t0 = it_now_ms();
	PGconn *c = PQconnectdb(it_pgdog_dsn("dbname=dead user=deadu password=deadu_pw"));
	const char *err = PQerrorMessage(c);

	ck_assert_msg(PQstatus(c) != CONNECTION_OK, "logged in through a refused server");
	ck_assert_msg(strstr(err, "could not connect to server") != NULL, "error: %s", err);
	ck_assert_msg(strstr(err, "Connection refused") != NULL, "error: %s", err);
	ck_assert_msg(it_now_ms() - t0 < 5000, "the refusal took %lld ms", it_now_ms() - t0);
	PQfinish(c);
	c = it_connect("dbname=app user=app password=app_pw");
	ck_assert_str_eq(it_value(c, "SELECT 1"), "1");
	PQfinish(c);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("it_stream");
	TCase *tc = tcase_create("stream");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_stream_backpressure);
	tcase_add_test(tc, test_stream_pipelined_queries);
	tcase_add_test(tc, test_stream_connect_refused);
	suite_add_tcase(s, tc);
	return it_run_suite(s);
}
