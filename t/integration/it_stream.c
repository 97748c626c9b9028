/*
 * it_stream.c: the worker's socket layer (worker/wk_stream.c) against real
 * PostgreSQL: a client that stops reading a large result holds the server
 * back instead of making pgdog buffer it (backpressure, then resume when the
 * client drains), bytes arrive whole and in order (a large result read
 * slowly, simple queries, and
 * extended-protocol pipelines whole or cut into pieces), and a server connection
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
/*
 * Bound to g_dead_port and not listening, for the whole test case:
 * connections there are refused, and no other process (another test's
 * PostgreSQL or pgdog, under make -j) can listen there meanwhile. Closed
 * after the bind, the port was once taken by one of those, which answered
 * "database "postgres" does not exist" (CI, cbb47eb).
 */
static int g_dead_fd = -1;

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
	/* a port nobody listens on: bound here, never listened on */
	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	g_dead_port = ntohs(sa.sin_port);
	g_dead_fd = fd;
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
	if (g_dead_fd >= 0)
		close(g_dead_fd);
	g_dead_fd = -1;
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
	ck_assert_int_eq(it_raw_send_queries(fd, &sql, 1), 0);
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

/*
 * A client that reads a 10 MB result slowly: the reply moves partly from
 * pgdog's read buffer straight to the client (wk_server_read_flat) and
 * partly through the output buffer when the client's socket is full; every
 * row arrives once and in order, and the replies to the short queries that
 * follow (the read-buffer path again) too.
 */
START_TEST(test_stream_rows_in_order)
{
	static char body[4096];
	int fd = it_raw_connect(g_it.port);
	char sqlstate[6], type, want[32], last[64];
	long next = 1, n;

	ck_assert_int_eq(it_raw_login(fd, "app", "app", "app_pw", sqlstate), 0);
	send_query(fd, "SELECT g || ':' || repeat('y', 100) FROM generate_series(1, 100000) g");
	it_sleep_ms(300); /* the client's socket fills up before it reads anything */
	for (;;) {
		n = it_raw_recv(fd, &type, body, sizeof(body), 10000);
		ck_assert_msg(n >= 0, "no reply after row %ld", next - 1);
		ck_assert_msg(type != 'E', "error after row %ld", next - 1);
		if (type == 'Z')
			break;
		if (type != 'D')
			continue;
		/* one column: count (2), length (4), then "g:yyy..." */
		snprintf(want, sizeof(want), "%ld:y", next);
		ck_assert_msg(n > 6 && (size_t)n - 6 >= strlen(want) &&
				      memcmp(body + 6, want, strlen(want)) == 0,
			      "row %ld is out of order or damaged", next);
		if (next % 5000 == 0)
			it_sleep_ms(1); /* a slow reader: pgdog's sends to it stay partial */
		next++;
	}
	ck_assert_int_eq(next - 1, 100000);
	for (int i = 0; i < 50; i++) {
		char sql[64];

		snprintf(sql, sizeof(sql), "SELECT %d", i);
		send_query(fd, sql);
		ck_assert_int_eq(read_result(fd, last, sizeof(last)), 1);
		snprintf(sql, sizeof(sql), "%d", i);
		ck_assert_str_eq(last, sql);
	}
	close(fd);
}
END_TEST

/* Many queries in one write: every answer, in order (one flush per batch). */
START_TEST(test_stream_pipelined_queries)
{
	int fd = it_raw_connect(g_it.port);
	char sqlstate[6], texts[40][32], last[64];
	const char *sqls[40];

	ck_assert_int_eq(it_raw_login(fd, "app", "app", "app_pw", sqlstate), 0);
	for (int i = 0; i < 40; i++) {
		snprintf(texts[i], sizeof(texts[i]), "SELECT %d", i);
		sqls[i] = texts[i];
	}
	ck_assert_int_eq(it_raw_send_queries(fd, sqls, 40), 0);
	for (int i = 0; i < 40; i++) {
		char want[16];

		ck_assert_int_eq(read_result(fd, last, sizeof(last)), 1);
		snprintf(want, sizeof(want), "%d", i);
		ck_assert_str_eq(last, want);
	}
	close(fd);
}
END_TEST

/* Append a message: type, then its length, then body (n bytes). */
static size_t
put_msg(char *buf, size_t off, char type, const void *body, size_t n)
{
	uint32_t nlen = htonl((uint32_t)(4 + n));

	buf[off] = type;
	memcpy(buf + off + 1, &nlen, 4);
	if (n)
		memcpy(buf + off + 5, body, n);
	return off + 5 + n;
}

/*
 * Parse (unnamed), Bind with one text parameter of plen bytes, [Describe],
 * Execute, Sync: pgdog reads Parse and Bind, and forwards Describe, Execute
 * and Sync in one run behind them (read through a cursor behind a Bind of
 * more than 4 kB).
 */
static size_t
put_pipeline(char *buf, size_t off, size_t plen, bool with_describe)
{
	static const char parse[] = "\0SELECT length($1::text)\0\0\0";
	char *bind = malloc(plen + 32);
	size_t n = 0;
	uint32_t nplen = htonl((uint32_t)plen);

	ck_assert_ptr_nonnull(bind);
	off = put_msg(buf, off, 'P', parse, sizeof(parse) - 1);
	bind[n++] = '\0';       /* portal */
	bind[n++] = '\0';       /* statement */
	memset(bind + n, 0, 2); /* no format codes */
	n += 2;
	bind[n++] = 0;
	bind[n++] = 1; /* one parameter */
	memcpy(bind + n, &nplen, 4);
	n += 4;
	memset(bind + n, 'x', plen);
	n += plen;
	memset(bind + n, 0, 2); /* no result format codes */
	n += 2;
	off = put_msg(buf, off, 'B', bind, n);
	free(bind);
	if (with_describe)
		off = put_msg(buf, off, 'D', "P", 2);
	off = put_msg(buf, off, 'E', "\0\0\0\0", 5);
	return put_msg(buf, off, 'S', NULL, 0);
}

/* The replies to put_pipeline(): the DataRow's value must be plen. */
static void
read_pipeline(int fd, size_t plen, bool with_describe)
{
	static const char with_d[] = "12TDCZ", without_d[] = "12DCZ";
	const char *want = with_describe ? with_d : without_d;
	char type, body[256], value[32];

	for (size_t i = 0; want[i]; i++) {
		long n = it_raw_recv(fd, &type, body, sizeof(body), 10000);

		ck_assert_msg(n >= 0, "no reply %zu for a parameter of %zu bytes", i, plen);
		ck_assert_msg(type == want[i],
			      "reply %zu is '%c', not '%c' (parameter of %zu bytes)", i, type,
			      want[i], plen);
		if (type == 'D') {
			ck_assert_int_gt(n, 6);
			snprintf(value, sizeof(value), "%.*s", (int)(n - 6), body + 6);
			ck_assert_uint_eq(strtoul(value, NULL, 10), plen);
		}
	}
}

/*
 * Extended-protocol pipelines, whole and cut into small writes at every
 * boundary: pgdog forwards Describe/Execute/Sync behind a Parse and a Bind
 * it reads (short and long runs, a header cut in two) byte for byte and in
 * order.
 */
START_TEST(test_stream_pipeline_runs)
{
	static const size_t sizes[] = { 10, 3000, 6000, 200000 };
	size_t cap = 4 * (200000 + 256), off = 0;
	char *buf = malloc(cap), sqlstate[6];
	int fd = it_raw_connect(g_it.port);

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(it_raw_login(fd, "app", "app", "app_pw", sqlstate), 0);
	/* all of them in one write */
	for (size_t i = 0; i < 4; i++)
		off = put_pipeline(buf, off, sizes[i], i % 2 == 0);
	ck_assert_int_eq(it_raw_send(fd, buf, off), 0);
	for (size_t i = 0; i < 4; i++)
		read_pipeline(fd, sizes[i], i % 2 == 0);
	/* each one in pieces of 1, 3 and 7 bytes (the short ones) or 4001 bytes */
	for (size_t i = 0; i < 4; i++) {
		size_t len = put_pipeline(buf, 0, sizes[i], i % 2 == 1), step;

		step = sizes[i] > 3000 ? 4001 : (size_t)(1 + 2 * (i % 4));
		for (size_t at = 0; at < len; at += step) {
			ck_assert_int_eq(
				it_raw_send(fd, buf + at, len - at < step ? len - at : step), 0);
			if (step < 10)
				it_sleep_ms(1); /* let pgdog see the cut */
		}
		read_pipeline(fd, sizes[i], i % 2 == 1);
	}
	free(buf);
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
	tcase_add_test(tc, test_stream_rows_in_order);
	tcase_add_test(tc, test_stream_pipelined_queries);
	tcase_add_test(tc, test_stream_pipeline_runs);
	tcase_add_test(tc, test_stream_connect_refused);
	suite_add_tcase(s, tc);
	return it_run_suite(s);
}
