/*
 * it_daemon.c: pgdog as a Unix daemon: the sd_notify messages a service
 * manager receives (start, SIGHUP, binary upgrade, SIGTERM, SIGINT; path
 * and abstract socket names), the logging options (log_connections,
 * log_disconnections, log_pooler_errors, syslog_facility), syslog lines
 * sent without ever blocking (format; a stalled syslog socket: pgdog keeps
 * serving, stops on SIGTERM, and reports the lines it dropped), log_file
 * reopened on SIGUSR1 and by conf/pgdog.logrotate run through logrotate, and the SysV
 * init script conf/pgdog.init run for real against a throwaway
 * configuration (start, status, reload, force-reload, restart, upgrade,
 * stop, and the LSB status codes 0, 1 and 3).
 */
#include "t/lib/it.h"

#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define APP   "dbname=app user=app password=app_pw"
#define USERS "[users.app]\ndatabase = app\npassword = app_pw\npool_size = 5\n"

static void
setup(void)
{
	it_env_start("daemon");
	it_pg_start(NULL);
	it_pg_role("app", "app_pw", "scram-sha-256");
	it_pg_hba("host all app 127.0.0.1/32 scram-sha-256");
}

static void
teardown(void)
{
	it_env_stop();
}

/* ---- helpers ------------------------------------------------------------ */

/* An AF_UNIX datagram socket bound to name ("@x": abstract). */
static int
notify_bind(const char *name)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_uint_lt(strlen(name), sizeof(sun.sun_path));
	memcpy(sun.sun_path, name, strlen(name));
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
	if (name[0] == '@')
		sun.sun_path[0] = '\0';
	else
		len++;
	ck_assert_msg(bind(fd, (struct sockaddr *)&sun, len) == 0, "bind %s: %s", name,
		      strerror(errno));
	return fd;
}

/* The next datagram within timeout_ms into buf; false if none came. */
static bool
notify_recv(int fd, char *buf, size_t cap, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, timeout_ms) <= 0)
		return false;
	n = recv(fd, buf, cap - 1, 0);
	if (n < 0)
		return false;
	buf[n] = '\0';
	return true;
}

static void
expect_msg(int fd, const char *prefix, char *buf, size_t cap)
{
	ck_assert_msg(notify_recv(fd, buf, cap, 10000),
		      "no sd_notify message within 10 s (want %s)", prefix);
	ck_assert_msg(strncmp(buf, prefix, strlen(prefix)) == 0,
		      "sd_notify message \"%s\" does not start with \"%s\"", buf, prefix);
}

static unsigned long long
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000;
}

static void
select_through(int port, const char *what)
{
	char dsn[256];
	PGconn *c;

	snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%d connect_timeout=5 %s", port, APP);
	c = PQconnectdb(dsn);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s: %s", what, PQerrorMessage(c));
	ck_assert_str_eq(it_value(c, "SELECT 7"), "7");
	PQfinish(c);
}

/* ---- sd_notify ----------------------------------------------------------- */

START_TEST(test_daemon_notify_sequence)
{
	char sock[IT_PATH_MAX], pidfile[IT_PATH_MAX], buf[1024], want[256];
	const char *args[] = { "--pidfile", pidfile, NULL };
	int port = it_free_port(), fd;
	unsigned long long before, after, stamp;
	pid_t pid, next;

	snprintf(sock, sizeof(sock), "%s/notify.sock", g_it.dir);
	snprintf(pidfile, sizeof(pidfile), "%s/notify.pid", g_it.dir);
	fd = notify_bind(sock);
	setenv("NOTIFY_SOCKET", sock, 1);
	pid = it_pgdog_spawn("notify", &(struct it_pgdog_conf){ .workers = 2, .users = USERS },
			     port, args);
	unsetenv("NOTIFY_SOCKET");

	/* start: READY=1 only once it listens and its workers exist */
	snprintf(want, sizeof(want), "READY=1\nSTATUS=serving on 127.0.0.1:%d", port);
	expect_msg(fd, want, buf, sizeof(buf));
	ck_assert_msg(it_wait_port(port, 1000), "READY=1 came before the port accepts");
	{
		pid_t kids[8];

		ck_assert_int_eq(it_children(pid, kids, 8), 2);
	}
	select_through(port, "after READY=1");

	/* SIGHUP: RELOADING=1 with a CLOCK_MONOTONIC stamp, then READY=1 */
	before = mono_us();
	kill(pid, SIGHUP);
	expect_msg(fd, "RELOADING=1\nMONOTONIC_USEC=", buf, sizeof(buf));
	after = mono_us();
	stamp = strtoull(buf + strlen("RELOADING=1\nMONOTONIC_USEC="), NULL, 10);
	ck_assert_msg(stamp >= before && stamp <= after,
		      "MONOTONIC_USEC=%llu is not between %llu and %llu", stamp, before, after);
	expect_msg(fd, "READY=1\nSTATUS=serving", buf, sizeof(buf));

	/* SIGUSR2: the new supervisor announces itself as the main process */
	kill(pid, SIGUSR2);
	expect_msg(fd, "STATUS=binary upgrade: starting the new binary", buf, sizeof(buf));
	expect_msg(fd, "MAINPID=", buf, sizeof(buf));
	next = (pid_t)atoi(buf + strlen("MAINPID="));
	it_track_pid(next);
	ck_assert_int_gt(next, 0);
	ck_assert_int_ne(next, pid);
	ck_assert_msg(strstr(buf, "\nREADY=1\n") != NULL, "no READY=1 with MAINPID: \"%s\"", buf);
	ck_assert_int_eq(it_pidfile_pid(pidfile), next);
	/* the old supervisor leaves without a word to the service manager */
	ck_assert_msg(it_wait_pid(pid, 10000) != -1, "old supervisor still running after 10 s");
	ck_assert_msg(!notify_recv(fd, buf, sizeof(buf), 300),
		      "unexpected sd_notify message after the upgrade: \"%s\"", buf);
	select_through(port, "after the upgrade");

	/* SIGTERM to the new main process: STOPPING=1 */
	kill(next, SIGTERM);
	expect_msg(fd, "STOPPING=1\nSTATUS=fast shutdown (SIGTERM)", buf, sizeof(buf));
	for (int i = 0; i < 250 && it_pid_alive(next); i++)
		it_sleep_ms(20);
	ck_assert_msg(!it_pid_alive(next), "new supervisor still running 5 s after SIGTERM");
	close(fd);
}
END_TEST

START_TEST(test_daemon_notify_abstract)
{
	char name[64], buf[1024];
	int port = it_free_port(), fd;
	pid_t pid;

	snprintf(name, sizeof(name), "@pgdog-it-notify-%d", (int)getpid());
	fd = notify_bind(name);
	setenv("NOTIFY_SOCKET", name, 1);
	pid = it_pgdog_spawn("abstract", &(struct it_pgdog_conf){ .workers = 1, .users = USERS },
			     port, NULL);
	unsetenv("NOTIFY_SOCKET");
	expect_msg(fd, "READY=1\nSTATUS=serving on", buf, sizeof(buf));
	kill(pid, SIGINT);
	expect_msg(fd, "STOPPING=1\nSTATUS=graceful shutdown", buf, sizeof(buf));
	ck_assert_msg(it_wait_pid(pid, 10000) != -1, "pgdog did not stop after SIGINT");
	close(fd);
}
END_TEST

/* Without NOTIFY_SOCKET nothing is sent; a bad one is a start-up error. */
START_TEST(test_daemon_notify_bad_socket)
{
	char out[4096];
	const char *argv[] = { "pgdog", "-c", NULL, "-u", NULL, NULL };
	int port = it_free_port(), st;
	char ini[IT_PATH_MAX], users[IT_PATH_MAX];

	/* write the files through a spawn that we stop at once */
	pid_t pid = it_pgdog_spawn(
		"badnotify", &(struct it_pgdog_conf){ .workers = 1, .users = USERS }, port, NULL);

	ck_assert_msg(it_wait_port(port, 10000), "pgdog did not listen");
	kill(pid, SIGTERM);
	ck_assert(it_wait_pid(pid, 10000) != -1);
	snprintf(ini, sizeof(ini), "%s/badnotify.ini", g_it.dir);
	snprintf(users, sizeof(users), "%s/badnotify-users.ini", g_it.dir);
	argv[2] = ini;
	argv[4] = users;
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	st = it_pgdog_run(argv, out, sizeof(out), 10000);
	unsetenv("NOTIFY_SOCKET");
	ck_assert_msg(st == 2, "pgdog with NOTIFY_SOCKET=relative/path exited %d: %s", st, out);
	ck_assert_msg(strstr(out, "NOTIFY_SOCKET=relative/path") != NULL, "%s", out);
}
END_TEST

/* ---- logging options --------------------------------------------------- */

/* One session, one failed login (unknown database), one error pgdog sends itself. */
static void
logging_workload(int port)
{
	char dsn[256];
	PGconn *c;

	select_through(port, "logging");
	snprintf(
		dsn, sizeof(dsn),
		"host=127.0.0.1 port=%d connect_timeout=5 dbname=nosuchdb user=app password=app_pw",
		port);
	c = PQconnectdb(dsn);
	ck_assert_int_ne(PQstatus(c), CONNECTION_OK);
	ck_assert_msg(strstr(PQerrorMessage(c), "nosuchdb") != NULL, "%s", PQerrorMessage(c));
	PQfinish(c);
}

START_TEST(test_daemon_logging_defaults_on)
{
	char log[IT_PATH_MAX];
	int port = it_free_port();
	pid_t pid = it_pgdog_spawn("logon", &(struct it_pgdog_conf){ .workers = 1, .users = USERS },
				   port, NULL);

	snprintf(log, sizeof(log), "%s/pgdog-logon.log", g_it.dir);
	ck_assert_msg(it_wait_port(port, 10000), "pgdog did not listen");
	logging_workload(port);
	/* log_connections: address, user, database, worker (w0c...) on one line */
	ck_assert_msg(it_file_wait_for(log, "app/app 127.0.0.1:", 5000), "no connection line");
	ck_assert_msg(it_file_wait_for(log, "login: user=app database=app", 5000),
		      "no log_connections line");
	/* log_disconnections: duration and reason */
	ck_assert_msg(it_file_wait_for(log, "closing client connection after ", 5000),
		      "no log_disconnections line");
	ck_assert_msg(it_file_wait_for(log, " s: client left", 5000),
		      "no reason on the disconnection line");
	/* log_pooler_errors: the FATAL pgdog sent for the unknown database */
	ck_assert_msg(
		it_file_wait_for(log, "pooler error: FATAL 3D000: database \"nosuchdb\"", 5000),
		"no log_pooler_errors line");
	/* the worker restart line */
	{
		pid_t kids[4];

		ck_assert_int_eq(it_children_wait(pid, kids, 4, 1, 5000), 1);
		kill(kids[0], SIGKILL);
		ck_assert_msg(it_file_wait_for(log, "worker 0 (pid ", 5000), "no worker exit line");
		ck_assert_msg(it_file_wait_for(log, "restarting it", 5000),
			      "no worker restart line");
	}
	kill(pid, SIGTERM);
	ck_assert(it_wait_pid(pid, 10000) != -1);
}
END_TEST

START_TEST(test_daemon_logging_off)
{
	char log[IT_PATH_MAX];
	int port = it_free_port();
	pid_t pid =
		it_pgdog_spawn("logoff",
			       &(struct it_pgdog_conf){ .workers = 1,
							.users = USERS,
							.general = "log_connections = false\n"
								   "log_disconnections = false\n"
								   "log_pooler_errors = false\n" },
			       port, NULL);

	snprintf(log, sizeof(log), "%s/pgdog-logoff.log", g_it.dir);
	ck_assert_msg(it_wait_port(port, 10000), "pgdog did not listen");
	logging_workload(port);
	it_sleep_ms(300);
	ck_assert_msg(!it_file_contains(log, "login: user=app"), "log_connections = false logged");
	ck_assert_msg(!it_file_contains(log, "closing client connection"),
		      "log_disconnections = false logged");
	ck_assert_msg(!it_file_contains(log, "pooler error"), "log_pooler_errors = false logged");
	kill(pid, SIGTERM);
	ck_assert(it_wait_pid(pid, 10000) != -1);
}
END_TEST

START_TEST(test_daemon_syslog_settings)
{
	char out[4096], ini[IT_PATH_MAX];
	const char *argv[] = { "pgdog", "--check-config", "-c", ini, NULL };
	int st;

	snprintf(ini, sizeof(ini), "%s/syslog.ini", g_it.dir);
	it_write_file(ini, "[general]\nsyslog = true\nsyslog_ident = pgdog-it\n"
			   "syslog_facility = local3\n[databases.app]\nhost = 127.0.0.1\n");
	st = it_pgdog_run(argv, out, sizeof(out), 10000);
	ck_assert_msg(st == 0, "syslog_facility = local3 refused (%d): %s", st, out);
	it_write_file(ini,
		      "[general]\nsyslog_facility = kern\n[databases.app]\nhost = 127.0.0.1\n");
	st = it_pgdog_run(argv, out, sizeof(out), 10000);
	ck_assert_msg(st == 1, "syslog_facility = kern accepted (%d): %s", st, out);
	ck_assert_msg(strstr(out, "syslog_facility = kern: must be one of: daemon, user, local0") !=
			      NULL,
		      "%s", out);
}
END_TEST

/* ---- syslog that never blocks ----------------------------------------------- */

/*
 * Append to acc every datagram that arrives on fd within ms, one per line.
 * Returns how many came.
 */
static int
syslog_collect(int fd, char *acc, size_t cap, int ms)
{
	long long deadline = it_now_ms() + ms;
	char buf[4096];
	int n = 0;

	for (;;) {
		long long left = deadline - it_now_ms();
		size_t len = strlen(acc);

		if (!notify_recv(fd, buf, sizeof(buf), left > 0 ? (int)left : 0))
			return n;
		n++;
		if (len + strlen(buf) + 2 < cap)
			snprintf(acc + len, cap - len, "%s\n", buf);
	}
}

/* The first line of text that contains s (copied into out), or NULL. */
static const char *
syslog_line_with(const char *text, const char *s, char *out, size_t cap)
{
	const char *at = strstr(text, s), *start, *end;

	if (!at)
		return NULL;
	for (start = at; start > text && start[-1] != '\n'; start--)
		;
	end = strchr(at, '\n');
	snprintf(out, cap, "%.*s", (int)(end ? end - start : (long)strlen(start)), start);
	return out;
}

/* line must be "<pri>Mmm dd hh:mm:ss ident[pid]: role LEVEL: " ... */
static void
syslog_check_format(const char *line, int pri, pid_t pid, const char *role, const char *level)
{
	char want[128], re_text[256];
	regex_t re;

	snprintf(re_text, sizeof(re_text),
		 "^<%d>(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 1-3][0-9] "
		 "[0-2][0-9]:[0-5][0-9]:[0-6][0-9] pgdog-it\\[%d\\]: ",
		 pri, (int)pid);
	ck_assert_int_eq(regcomp(&re, re_text, REG_EXTENDED | REG_NOSUB), 0);
	ck_assert_msg(regexec(&re, line, 0, NULL, 0) == 0, "syslog line \"%s\" does not match %s",
		      line, re_text);
	regfree(&re);
	snprintf(want, sizeof(want), "]: %s %s: ", role, level);
	ck_assert_msg(strstr(line, want) != NULL, "syslog line \"%s\" lacks \"%s\"", line, want);
}

/*
 * Connections (log_connections/log_disconnections lines) that each answer
 * within 4 s (a blocked worker never answers; the bound leaves room for a
 * loaded machine: SCRAM costs CPU).
 */
static void
syslog_traffic(int port, int cnt)
{
	long long worst = 0;

	for (int i = 0; i < cnt; i++) {
		long long t0 = it_now_ms();

		select_through(port, "while the syslog socket is full");
		if (it_now_ms() - t0 > worst)
			worst = it_now_ms() - t0;
		ck_assert_msg(worst < 4000,
			      "a connection and a SELECT took %lld ms with syslog stalled", worst);
	}
	fprintf(stderr, "syslog stalled: %d connections, the slowest %lld ms\n", cnt, worst);
}

/*
 * syslog = on sends RFC 3164 datagrams (priority from syslog_facility and
 * the level, ident[pid], the process's role) to $PGDOG_SYSLOG_PATH. When the
 * socket stops being read, pgdog drops lines instead of waiting: connections
 * are still served at once, SHOW STATE counts the dropped lines, the next
 * line that goes through is preceded by "N log lines dropped", and SIGTERM
 * still stops it promptly. (With libc's blocking syslog() the workers froze.)
 */
START_TEST(test_daemon_syslog_never_blocks)
{
	char sock[IT_PATH_MAX], admin[256], line[1024], general[512];
	static char acc[1 << 16], body[1 << 17];
	int port = it_free_port(), mport = it_free_port(), fd, rcv = 4096;
	const char *v;
	pid_t pid, kids[2];
	PGconn *adm;

	snprintf(sock, sizeof(sock), "%s/syslog.sock", g_it.dir);
	fd = notify_bind(sock);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)), 0);
	snprintf(general, sizeof(general),
		 "syslog = on\nsyslog_ident = pgdog-it\nsyslog_facility = local3\n"
		 "log_connections = on\nlog_disconnections = on\nopenmetrics_port = %d\n",
		 mport);
	setenv("PGDOG_SYSLOG_PATH", sock, 1);
	pid = it_pgdog_spawn(
		"syslog",
		&(struct it_pgdog_conf){ .workers = 1, .users = USERS, .general = general }, port,
		NULL);
	unsetenv("PGDOG_SYSLOG_PATH");

	/* (1) the format, read as it comes (the queue holds few datagrams) */
	acc[0] = '\0';
	for (int i = 0; i < 100 && !it_wait_port(port, 20); i++)
		syslog_collect(fd, acc, sizeof(acc), 100);
	ck_assert_msg(it_wait_port(port, 1000), "pgdog did not listen: %s", acc);
	ck_assert_int_eq(it_children_wait(pid, kids, 2, 1, 5000), 1);
	syslog_collect(fd, acc, sizeof(acc), 300);
	select_through(port, "syslog format");
	syslog_collect(fd, acc, sizeof(acc), 500);
	/* local3 (19) * 8 + info (6) */
	ck_assert_msg(syslog_line_with(acc, "]: sv INFO: ", line, sizeof(line)),
		      "no supervisor line in: %s", acc);
	syslog_check_format(line, 19 * 8 + 6, pid, "sv", "INFO");
	ck_assert_msg(syslog_line_with(acc, "login: user=app database=app", line, sizeof(line)),
		      "no log_connections line in: %s", acc);
	syslog_check_format(line, 19 * 8 + 6, kids[0], "wk0", "INFO");

	/* (2) nobody reads: pgdog keeps serving and counts what it drops */
	syslog_traffic(port, 40);
	snprintf(admin, sizeof(admin),
		 "host=127.0.0.1 port=%d connect_timeout=5 dbname=admin user=admin password=pgdog",
		 port);
	adm = PQconnectdb(admin);
	ck_assert_msg(PQstatus(adm) == CONNECTION_OK, "admin: %s", PQerrorMessage(adm));
	v = it_show_value(adm, "SHOW STATE", "key", "log_lines_dropped", NULL, NULL, "value");
	ck_assert_msg(atol(v) > 0, "SHOW STATE log_lines_dropped = %s after 40 logins", v);
	PQfinish(adm);
	ck_assert_int_eq(
		it_http_request(mport,
				"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
				body, sizeof(body)),
		200);
	ck_assert_msg(it_metric_plain(body, "pgdog_log_lines_dropped_total") >= atof(v),
		      "pgdog_log_lines_dropped_total below SHOW STATE's %s", v);

	/*
	 * (3) reading again: the next line that goes out (the admin's
	 * disconnection, or the login below) is preceded by the count
	 */
	acc[0] = '\0';
	syslog_collect(fd, acc, sizeof(acc), 300);
	select_through(port, "syslog resumed");
	syslog_collect(fd, acc, sizeof(acc), 1000);
	ck_assert_msg(
		syslog_line_with(acc, " log lines dropped: syslog socket full", line, sizeof(line)),
		"no dropped-lines line after reading resumed: %s", acc);
	/* local3 * 8 + warning (4) */
	syslog_check_format(line, 19 * 8 + 4, kids[0], "wk0", "WARN");
	ck_assert_msg(atol(strstr(line, "WARN: ") + 6) > 0, "%s", line);
	ck_assert_msg(strstr(strstr(acc, " log lines dropped: "), "login: user=app database=app"),
		      "no login line after the dropped-lines line: %s", acc);

	/*
	 * syslogd restarts (a new socket at the same path): the next line finds
	 * the old peer gone (ECONNREFUSED) and pgdog reconnects
	 */
	close(fd);
	ck_assert_int_eq(unlink(sock), 0);
	fd = notify_bind(sock);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)), 0);
	acc[0] = '\0';
	for (int i = 0; i < 30 && !strstr(acc, "login: user=app database=app"); i++) {
		select_through(port, "syslogd restarted");
		syslog_collect(fd, acc, sizeof(acc), 100);
	}
	ck_assert_msg(syslog_line_with(acc, "login: user=app database=app", line, sizeof(line)),
		      "no line after syslogd restarted: %s", acc);
	syslog_check_format(line, 19 * 8 + 6, kids[0], "wk0", "INFO");

	/* SIGTERM with the socket full again: pgdog stops promptly */
	syslog_traffic(port, 20);
	kill(pid, SIGTERM);
	ck_assert_msg(it_wait_pid(pid, 5000) != -1, "pgdog still running 5 s after SIGTERM");
	ck_assert_msg(!it_pid_alive(kids[0]), "worker still running after the supervisor exited");
	close(fd);
}
END_TEST

/* ---- SysV init script ---------------------------------------------------- */

/* ---- log_file rotation ----------------------------------------------------- */

/* How many times s occurs in the file at path (0 if it cannot be read). */
static int
file_count(const char *path, const char *s)
{
	char *text = it_read_file(path);
	int n = 0;

	for (const char *p = text; p && (p = strstr(p, s)) != NULL; p += strlen(s))
		n++;
	free(text);
	return n;
}

/*
 * Logins until one is logged in path (the workers reopened log_file), then
 * `more` logins, which must all go to path and none to old.
 */
static void
logins_go_to(int port, const char *path, const char *old, int more)
{
	int before_old, before_new;
	long long deadline = it_now_ms() + 5000;

	while (file_count(path, "login: user=app") == 0) {
		ck_assert_msg(it_now_ms() < deadline, "no login line in %s after the reopen", path);
		select_through(port, "log reopen");
		it_sleep_ms(50);
	}
	it_sleep_ms(200); /* the other worker's SIGUSR1 (sent with the first) */
	before_old = file_count(old, "login: user=app");
	before_new = file_count(path, "login: user=app");
	/* several logins, so that both workers (SO_REUSEPORT picks) most likely log */
	for (int i = 0; i < more; i++)
		select_through(port, "log reopen");
	ck_assert_msg(it_file_wait_for(path, "closing client connection", 5000),
		      "no disconnection");
	for (int i = 0; i < 100 && file_count(path, "login: user=app") < before_new + more; i++)
		it_sleep_ms(20);
	ck_assert_int_eq(file_count(path, "login: user=app"), before_new + more);
	ck_assert_int_eq(file_count(old, "login: user=app"), before_old);
}

/*
 * SIGUSR1 reopens log_file in the supervisor and every worker (after a
 * rename, lines go to the new file); then conf/pgdog.logrotate itself, run by
 * logrotate(8) with its paths pointed at this pgdog, rotates the file and
 * its postrotate signal makes pgdog write to the new one, without a reload.
 */
START_TEST(test_daemon_log_reopen)
{
	char dir[IT_PATH_MAX], log[IT_PATH_MAX + 16], old[IT_PATH_MAX + 16], pidfile[IT_PATH_MAX];
	char general[IT_PATH_MAX + 32], snippet[IT_PATH_MAX], cmd[IT_PATH_MAX * 4];
	const char *args[] = { "--pidfile", pidfile, NULL };
	char *conf, *text, *at;
	int port = it_free_port(), rc;
	pid_t pid;

	snprintf(dir, sizeof(dir), "%s/logs", g_it.dir);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	snprintf(log, sizeof(log), "%s/pgdog.log", dir);
	snprintf(old, sizeof(old), "%s/pgdog.log.1", dir);
	snprintf(pidfile, sizeof(pidfile), "%s/rot.pid", g_it.dir);
	snprintf(general, sizeof(general), "log_file = %s\n", log);
	pid = it_pgdog_spawn(
		"rot", &(struct it_pgdog_conf){ .workers = 2, .users = USERS, .general = general },
		port, args);
	ck_assert_msg(it_wait_port(port, 10000), "pgdog did not listen");
	select_through(port, "before the rotation");
	ck_assert_msg(it_file_wait_for(log, "login: user=app", 5000), "no login line in log_file");

	/* by hand: rename, SIGUSR1 */
	ck_assert_int_eq(rename(log, old), 0);
	ck_assert_int_eq(kill(pid, SIGUSR1), 0);
	logins_go_to(port, log, old, 8);
	ck_assert_msg(it_pid_alive(pid), "pgdog died on SIGUSR1");
	ck_assert_msg(!it_file_contains(log, "configuration reloaded"),
		      "SIGUSR1 reloaded the configuration");

	/* the shipped snippet, run by logrotate for real */
	ck_assert_msg(access("/usr/sbin/logrotate", X_OK) == 0,
		      "/usr/sbin/logrotate is missing: apt-get install logrotate (CI installs it)");
	ck_assert_int_eq(unlink(old), 0);
	snprintf(cmd, sizeof(cmd), "%s/conf/pgdog.logrotate", it_srcdir());
	text = it_read_file(cmd);
	ck_assert_ptr_nonnull(text);
	conf = calloc(1, strlen(text) + 4 * IT_PATH_MAX);
	ck_assert_ptr_nonnull(conf);
	/* the same snippet with this test's paths; no chown (tests may not run as root) */
	for (const char *p = text; *p;) {
		if (strncmp(p, "/var/log/pgdog/pgdog.log", 24) == 0) {
			strcat(conf, log);
			p += 24;
		} else if (strncmp(p, "/run/pgdog/pgdog.pid", 20) == 0) {
			strcat(conf, pidfile);
			p += 20;
		} else if (strncmp(p, " postgres postgres", 18) == 0) {
			p += 18;
		} else {
			at = conf + strlen(conf);
			at[0] = *p++;
			at[1] = '\0';
		}
	}
	ck_assert_msg(strstr(conf, pidfile) && strstr(conf, log), "snippet paths not replaced");
	free(text);
	snprintf(snippet, sizeof(snippet), "%s/pgdog.logrotate", g_it.dir);
	it_write_file(snippet, conf);
	free(conf);
	snprintf(cmd, sizeof(cmd), "/usr/sbin/logrotate -f -s '%s/logrotate.state' '%s' >&2",
		 g_it.dir, snippet);
	rc = system(cmd);
	ck_assert_msg(rc == 0, "logrotate failed: %d", rc);
	ck_assert_msg(access(old, F_OK) == 0, "logrotate did not rotate %s", log);
	logins_go_to(port, log, old, 8);
	ck_assert_msg(it_pid_alive(pid), "pgdog died on logrotate's signal");
	ck_assert_msg(!it_file_contains(log, "configuration reloaded") &&
			      !it_file_contains(old, "configuration reloaded"),
		      "the logrotate snippet reloaded the configuration");
	kill(pid, SIGTERM);
	ck_assert(it_wait_pid(pid, 10000) != -1);
}
END_TEST

/* Run conf/pgdog.init ACTION with PGDOG_DEFAULTS=defaults; output into out. */
static int
run_init(const char *defaults, const char *action, char *out, size_t cap)
{
	char cmd[IT_PATH_MAX * 3];
	FILE *p;
	size_t n = 0;
	int st;

	snprintf(cmd, sizeof(cmd), "PGDOG_DEFAULTS='%s' sh '%s/conf/pgdog.init' %s 2>&1", defaults,
		 it_srcdir(), action);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while (n < cap - 1) {
		size_t r = fread(out + n, 1, cap - 1 - n, p);

		if (r == 0)
			break;
		n += r;
	}
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

START_TEST(test_daemon_init_script)
{
	char defaults[IT_PATH_MAX], pidfile[IT_PATH_MAX + 16], rundir[IT_PATH_MAX], text[4096];
	char out[4096], ini[IT_PATH_MAX], users[IT_PATH_MAX], log[IT_PATH_MAX], bin[IT_PATH_MAX];
	struct passwd *pw = getpwuid(getuid());
	int port = it_free_port(), rc;
	pid_t pid, pid2, kids[8];

	ck_assert_ptr_nonnull(pw);
	/* the harness writes the files; the script starts pgdog from them */
	pid = it_pgdog_spawn("init", &(struct it_pgdog_conf){ .workers = 2, .users = USERS }, port,
			     NULL);
	ck_assert_msg(it_wait_port(port, 10000), "pgdog did not listen");
	kill(pid, SIGTERM);
	ck_assert(it_wait_pid(pid, 10000) != -1);
	snprintf(ini, sizeof(ini), "%s/init.ini", g_it.dir);
	snprintf(users, sizeof(users), "%s/init-users.ini", g_it.dir);
	snprintf(log, sizeof(log), "%s/init-daemon.log", g_it.dir);
	snprintf(rundir, sizeof(rundir), "%s/run", g_it.dir);
	snprintf(pidfile, sizeof(pidfile), "%s/pgdog.pid", rundir);
	snprintf(defaults, sizeof(defaults), "%s/defaults", g_it.dir);
	/* a daemon logs to syslog unless log_file is set: keep the log here */
	{
		char *body = it_read_file(ini);
		char *sec = body ? strstr(body, "[general]\n") : NULL;
		FILE *f;

		ck_assert_ptr_nonnull(sec);
		f = fopen(ini, "w");
		ck_assert_ptr_nonnull(f);
		fprintf(f, "%.*s[general]\nlog_file = %s\n%s", (int)(sec - body), body, log,
			sec + strlen("[general]\n"));
		fclose(f);
		free(body);
	}
	snprintf(bin, sizeof(bin), "%s", it_pgdog_bin());
	if (bin[0] != '/') {
		char cwd[IT_PATH_MAX / 2];

		ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
		snprintf(bin, sizeof(bin), "%s/%s", cwd, it_pgdog_bin());
	}
	snprintf(text, sizeof(text),
		 "DAEMON='%s'\nCONFIG='%s'\nUSERS='%s'\nRUNDIR='%s'\nPIDFILE='%s'\nRUN_AS='%s'\n"
		 "STOP_TIMEOUT=20\n",
		 bin, ini, users, rundir, pidfile, pw->pw_name);
	it_write_file(defaults, text);

	rc = run_init(defaults, "status", out, sizeof(out));
	ck_assert_msg(rc == 3, "status before start: %d (%s)", rc, out);

	rc = run_init(defaults, "start", out, sizeof(out));
	ck_assert_msg(rc == 0, "start: %d (%s)", rc, out);
	pid = it_pidfile_pid(pidfile);
	ck_assert_int_gt(pid, 0);
	it_track_pid(pid);
	ck_assert_msg(it_wait_port(port, 5000), "not listening after start");
	select_through(port, "after init start");
	rc = run_init(defaults, "start", out, sizeof(out));
	ck_assert_msg(rc == 0 && strstr(out, "already running"), "second start: %d (%s)", rc, out);

	rc = run_init(defaults, "status", out, sizeof(out));
	ck_assert_msg(rc == 0, "status while running: %d (%s)", rc, out);

	rc = run_init(defaults, "reload", out, sizeof(out));
	ck_assert_msg(rc == 0, "reload: %d (%s)", rc, out);
	ck_assert_msg(it_file_wait_for(log, "configuration reloaded from", 5000), "no reload line");
	rc = run_init(defaults, "force-reload", out, sizeof(out));
	ck_assert_msg(rc == 0, "force-reload: %d (%s)", rc, out);

	/* upgrade through the script: pgdog --upgrade, a new pid in the pidfile */
	rc = run_init(defaults, "upgrade", out, sizeof(out));
	ck_assert_msg(rc == 0, "upgrade: %d (%s)", rc, out);
	pid2 = it_pidfile_pid(pidfile);
	ck_assert_int_ne(pid2, pid);
	it_track_pid(pid2);
	for (int i = 0; i < 250 && it_pid_alive(pid); i++)
		it_sleep_ms(20);
	ck_assert_msg(!it_pid_alive(pid), "old supervisor still alive after the upgrade");
	select_through(port, "after init upgrade");

	rc = run_init(defaults, "restart", out, sizeof(out));
	ck_assert_msg(rc == 0, "restart: %d (%s)", rc, out);
	pid = it_pidfile_pid(pidfile);
	ck_assert_int_ne(pid, pid2);
	it_track_pid(pid);
	select_through(port, "after init restart");

	rc = run_init(defaults, "stop", out, sizeof(out));
	ck_assert_msg(rc == 0, "stop: %d (%s)", rc, out);
	ck_assert_msg(!it_pid_alive(pid), "still running after stop");
	rc = run_init(defaults, "status", out, sizeof(out));
	ck_assert_msg(rc == 3, "status after stop: %d (%s)", rc, out);
	rc = run_init(defaults, "reload", out, sizeof(out));
	ck_assert_msg(rc == 7, "reload while stopped: %d (%s)", rc, out);

	/* dead with a pidfile left: status 1 */
	rc = run_init(defaults, "start", out, sizeof(out));
	ck_assert_msg(rc == 0, "start again: %d (%s)", rc, out);
	pid = it_pidfile_pid(pidfile);
	it_track_pid(pid);
	{
		int nk = it_children(pid, kids, 8);

		kill(pid, SIGKILL);
		for (int i = 0; i < 250 && it_pid_alive(pid); i++)
			it_sleep_ms(20);
		/* its workers drain and exit by themselves (parent-death signal) */
		for (int k = 0; k < nk; k++) {
			for (int i = 0; i < 250 && it_pid_alive(kids[k]); i++)
				it_sleep_ms(20);
			if (it_pid_alive(kids[k]))
				kill(kids[k], SIGKILL);
		}
	}
	rc = run_init(defaults, "status", out, sizeof(out));
	ck_assert_msg(rc == 1, "status of a killed pgdog with its pidfile: %d (%s)", rc, out);
	rc = run_init(defaults, "bogus", out, sizeof(out));
	ck_assert_msg(rc == 2, "unknown action: %d (%s)", rc, out);

	/* a broken configuration: start fails with 6, nothing runs */
	it_write_file(ini, "[general]\nworkers = lots\n");
	rc = run_init(defaults, "start", out, sizeof(out));
	ck_assert_msg(rc == 6, "start with a broken configuration: %d (%s)", rc, out);
}
END_TEST

static Suite *
daemon_suite(void)
{
	Suite *s = suite_create("daemon");
	TCase *tc = tcase_create("daemon");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_daemon_notify_sequence);
	tcase_add_test(tc, test_daemon_notify_abstract);
	tcase_add_test(tc, test_daemon_notify_bad_socket);
	tcase_add_test(tc, test_daemon_logging_defaults_on);
	tcase_add_test(tc, test_daemon_logging_off);
	tcase_add_test(tc, test_daemon_syslog_settings);
	tcase_add_test(tc, test_daemon_syslog_never_blocks);
	tcase_add_test(tc, test_daemon_log_reopen);
	tcase_add_test(tc, test_daemon_init_script);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return it_run_suite(daemon_suite());
}
