/*
 * it.c: the integration-test harness (see it.h).
 * Runs in: test programs. The unchecked fixture runs in the Check runner
 * process; tests run in forked children that inherit g_it. Only the process
 * that started something stops it (g_it.owner), so a forked test exiting
 * never tears down the runner's pgdog; processes a test starts itself are
 * listed in dir/pids and killed by the runner's teardown if still alive.
 */
#include "t/lib/it.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct it_env g_it;

static pid_t g_it_env_owner; /* process that created dir (runner) */
static bool g_it_atexit_done;

/* Saved pgdog logs (and the end of PostgreSQL's), by TCase name, for it_run_suite(). */
struct it_saved_log {
	char name[64];
	char *text;
	char *pg_text;
	struct it_saved_log *next;
};
static struct it_saved_log *g_it_logs;

long long
it_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
it_sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static char *
it_tls_buf(size_t *cap)
{
	static _Thread_local char bufs[8][2048];
	static _Thread_local unsigned idx;

	*cap = sizeof(bufs[0]);
	return bufs[idx++ % 8];
}

const char *
it_path(const char *file)
{
	size_t cap;
	char *b = it_tls_buf(&cap);

	snprintf(b, cap, "%s/%s", g_it.dir, file);
	return b;
}

char *
it_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			char *t = realloc(text, cap + 65536);
			if (t == NULL)
				break;
			text = t;
			cap += 65536;
		}
		n = fread(text + len, 1, cap - len - 1, f);
		if (n == 0)
			break;
		len += n;
	}
	fclose(f);
	if (text != NULL)
		text[len] = '\0';
	return text;
}

void
it_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
	ck_assert_msg(fputs(text, f) >= 0, "write %s: %s", path, strerror(errno));
	ck_assert_msg(fclose(f) == 0, "close %s: %s", path, strerror(errno));
}

/*
 * Test ports come from IT_PORT_LO..IT_PORT_HI-1, below the kernel's ephemeral range (32768
 * and up by default), so no outgoing connection of a test takes one. Each is reserved by an
 * exclusive flock on IT_PORT_DIR/<port>.lock held until this process exits, so parallel test
 * programs, t/drivers/run.sh and t/fuzz/pgdiff.py (which lock the same files) never hand out
 * the same port. A bound-then-closed ephemeral port was the old way, and under make -j2
 * another test's server once listened there before the first one started.
 */
#define IT_PORT_DIR "/tmp/pgdog-test-ports"
#define IT_PORT_LO  20000
#define IT_PORT_HI  30000

static bool
it_port_bindable(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

int
it_free_port(void)
{
	const int span = IT_PORT_HI - IT_PORT_LO;
	struct timespec ts;
	unsigned start;

	if (mkdir(IT_PORT_DIR, 01777) == 0)
		(void)chmod(IT_PORT_DIR, 01777); /* past the umask: other users' tests share it */
	else
		ck_assert_msg(errno == EEXIST, "mkdir %s: %s", IT_PORT_DIR, strerror(errno));
	clock_gettime(CLOCK_MONOTONIC, &ts);
	start = ((unsigned)getpid() * 2654435761u) ^ (unsigned)ts.tv_nsec;
	for (int i = 0; i < span; i++) {
		int port = IT_PORT_LO + (int)((start + (unsigned)i) % (unsigned)span);
		char path[64];
		int fd;

		snprintf(path, sizeof(path), "%s/%d.lock", IT_PORT_DIR, port);
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
		ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
		/* The descriptor stays open (and locked) for the rest of this process. */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 && it_port_bindable(port))
			return port;
		close(fd);
	}
	ck_abort_msg("no free port in %d..%d", IT_PORT_LO, IT_PORT_HI - 1);
	return -1;
}

const char *
it_srcdir(void)
{
	const char *s = getenv("PGDOG_SRCDIR");

	return s != NULL && *s != '\0' ? s : "../..";
}

const char *
it_pgdog_bin(void)
{
	const char *s = getenv("PGDOG_BIN");

	return s != NULL && *s != '\0' ? s : "../../pgdog";
}

/* ---- processes ---------------------------------------------------------- */

/* Run argv (a real program path in argv[0]) with output to out_path; wait. Exit status or -1. */
static int
it_spawn_wait(const char *const *argv, const char *out_path)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(out_path != NULL ? out_path : "/dev/null",
			      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int
it_wait_pid(pid_t pid, int timeout_ms)
{
	long long end = it_now_ms() + timeout_ms;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return st;
		if (r < 0 && errno != EINTR)
			return -1;
		if (it_now_ms() >= end)
			return -1;
		it_sleep_ms(20);
	}
}

bool
it_pid_alive(pid_t pid)
{
	char path[64], buf[512];
	FILE *f;
	char *p;
	bool alive = false;

	if (pid <= 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	if (fgets(buf, sizeof(buf), f) != NULL) {
		p = strrchr(buf, ')');
		alive = p != NULL && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
	}
	fclose(f);
	return alive;
}

/* Whether pid's executable is pgdog's binary (guards against pid reuse). */
static bool
it_pid_is_pgdog(pid_t pid)
{
	char path[64], exe[IT_PATH_MAX], want[IT_PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	if (n < 0)
		return false;
	exe[n] = '\0';
	if (realpath(it_pgdog_bin(), want) == NULL)
		return strstr(exe, "pgdog") != NULL;
	return strncmp(exe, want, strlen(want)) == 0;
}

static int
it_ppid_of(pid_t pid)
{
	char path[64], buf[512];
	FILE *f;
	char *p;
	int ppid = -1;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	if (fgets(buf, sizeof(buf), f) != NULL) {
		p = strrchr(buf, ')');
		if (p != NULL && sscanf(p + 2, "%*c %d", &ppid) != 1)
			ppid = -1;
	}
	fclose(f);
	return ppid;
}

int
it_children(pid_t pid, pid_t *out, int max)
{
	char path[128];
	FILE *f;
	int n = 0, c;
	DIR *d;
	struct dirent *de;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	f = fopen(path, "r");
	if (f != NULL) {
		while (n < max && fscanf(f, "%d", &c) == 1) {
			if (it_pid_alive(c))
				out[n++] = c;
		}
		fclose(f);
		return n;
	}
	d = opendir("/proc");
	if (d == NULL)
		return 0;
	while (n < max && (de = readdir(d)) != NULL) {
		c = atoi(de->d_name);
		if (c > 0 && it_ppid_of(c) == pid && it_pid_alive(c))
			out[n++] = c;
	}
	closedir(d);
	return n;
}

int
it_children_wait(pid_t pid, pid_t *out, int max, int want, int ms)
{
	long long end = it_now_ms() + ms;
	int n;

	while ((n = it_children(pid, out, max)) < want && it_now_ms() < end)
		it_sleep_ms(20);
	return n;
}

void
it_track_pid(pid_t pid)
{
	char line[32];
	int fd;

	if (g_it.dir[0] == '\0')
		return;
	fd = open(it_path("pids"), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	snprintf(line, sizeof(line), "%d\n", (int)pid);
	if (write(fd, line, strlen(line)) < 0) {
		/* best effort */
	}
	close(fd);
}

/* Kill every tracked pgdog pid still alive (runner teardown). */
static void
it_kill_tracked(void)
{
	FILE *f = fopen(it_path("pids"), "r");
	int pid;

	if (f == NULL)
		return;
	while (fscanf(f, "%d", &pid) == 1) {
		if (!it_pid_alive(pid) || !it_pid_is_pgdog(pid))
			continue;
		kill(pid, SIGTERM);
		for (int i = 0; i < 250 && it_pid_alive(pid); i++)
			it_sleep_ms(20);
		if (it_pid_alive(pid))
			kill(pid, SIGKILL);
	}
	fclose(f);
}

/* ---- environment -------------------------------------------------------- */

static int
it_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static void
it_rm_rf(const char *dir)
{
	nftw(dir, it_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void
it_atexit(void)
{
	/* a forked test must not stop what the runner started */
	if (g_it.pid > 0 && g_it.owner == getpid())
		it_pgdog_stop();
	if (g_it_env_owner == getpid())
		it_env_stop();
}

/* At most this much of the end of PostgreSQL's log is kept for a failing TCase. */
#define IT_PG_LOG_TAIL 16384

/* The last max bytes of the cluster's log (from a line start), with a header; or NULL. */
static char *
it_pg_log_tail(size_t max)
{
	char path[IT_PATH_MAX + 8], head[IT_PATH_MAX + 64], *text, *from, *out;
	size_t n, hn;

	snprintf(path, sizeof(path), "%s/log", g_it.pg_dir);
	text = it_read_file(path);
	if (text == NULL)
		return NULL;
	n = strlen(text);
	from = text;
	if (n > max) {
		from = strchr(text + n - max, '\n');
		from = from != NULL ? from + 1 : text + n;
	}
	hn = (size_t)snprintf(head, sizeof(head),
			      "---- %s/postgresql.log (last %zu of %zu bytes) ----\n", g_it.name,
			      strlen(from), n);
	out = malloc(hn + strlen(from) + 1);
	if (out != NULL) {
		memcpy(out, head, hn);
		memcpy(out + hn, from, strlen(from) + 1);
	}
	free(text);
	return out;
}

static void
it_save_log(void)
{
	struct it_saved_log *l;
	char *text;
	DIR *d = opendir(g_it.dir);
	struct dirent *de;
	size_t total = 0;
	char *all = NULL;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		size_t n, hn;
		char head[IT_PATH_MAX + 64];
		char *t;

		if (strncmp(de->d_name, "pgdog", 5) != 0 || strstr(de->d_name, ".log") == NULL)
			continue;
		text = it_read_file(it_path(de->d_name));
		if (text == NULL)
			continue;
		n = strlen(text);
		hn = (size_t)snprintf(head, sizeof(head), "---- %s/%s (%zu bytes) ----\n",
				      g_it.name, de->d_name, n);
		t = realloc(all, total + hn + n + 1);
		if (t == NULL) {
			free(text);
			break;
		}
		all = t;
		memcpy(all + total, head, hn);
		memcpy(all + total + hn, text, n);
		total += hn + n;
		all[total] = '\0';
		free(text);
	}
	closedir(d);
	if (all == NULL)
		return;
	if (getenv("IT_VERBOSE") != NULL)
		fprintf(stderr, "%s", all);
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		free(all);
		return;
	}
	snprintf(l->name, sizeof(l->name), "%s", g_it.name);
	l->text = all;
	if (g_it.pg_port != 0)
		l->pg_text = it_pg_log_tail(IT_PG_LOG_TAIL);
	l->next = g_it_logs;
	g_it_logs = l;
}

/*
 * As root the cluster runs as "postgres", which must reach dir/pg: give
 * o+rx to dir and to every parent that lacks it.
 */
static void
it_make_traversable(const char *dir)
{
	char path[IT_PATH_MAX];
	char *slash;
	struct stat st;

	snprintf(path, sizeof(path), "%s", dir);
	for (;;) {
		if (path[0] != '\0' && stat(path, &st) == 0 &&
		    (st.st_mode & (S_IROTH | S_IXOTH)) != (S_IROTH | S_IXOTH))
			chmod(path, (st.st_mode & 07777) | S_IROTH | S_IXOTH | S_IRGRP | S_IXGRP);
		slash = strrchr(path, '/');
		if (slash == NULL || slash == path)
			break;
		*slash = '\0';
	}
}

void
it_env_start(const char *name)
{
	const char *tmp = getenv("TMPDIR");
	char tmpl[sizeof(g_it.dir)];

	if (g_it_env_owner == getpid())
		it_env_stop(); /* left over from a failed setup */
	memset(&g_it, 0, sizeof(g_it));
	snprintf(g_it.name, sizeof(g_it.name), "%s", name);
	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	if (geteuid() == 0)
		it_make_traversable(tmp);
	snprintf(tmpl, sizeof(tmpl), "%s/pgdog-it-XXXXXX", tmp);
	ck_assert_msg(mkdtemp(tmpl) != NULL, "mkdtemp %s: %s", tmpl, strerror(errno));
	ck_assert_msg(chmod(tmpl, 0755) == 0, "chmod %s: %s", tmpl, strerror(errno));
	snprintf(g_it.dir, sizeof(g_it.dir), "%s", tmpl);
	g_it_env_owner = getpid();
	if (!g_it_atexit_done) {
		atexit(it_atexit);
		g_it_atexit_done = true;
	}
	/* a test that dies must not take the runner with it via SIGPIPE */
	signal(SIGPIPE, SIG_IGN);
}

void
it_env_stop(void)
{
	if (g_it.dir[0] == '\0')
		return;
	if (g_it.pid > 0 && g_it.owner == getpid())
		it_pgdog_stop();
	it_kill_tracked();
	it_save_log();
	if (g_it.pg_port != 0)
		it_pg_stop();
	it_rm_rf(g_it.dir);
	g_it.dir[0] = '\0';
}

int
it_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed, n;
	TestResult **trs;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	n = srunner_ntests_run(sr);
	trs = srunner_results(sr);
	for (struct it_saved_log *l = g_it_logs; l != NULL; l = l->next) {
		bool bad = false;

		for (int i = 0; i < n && !bad; i++) {
			if (tr_rtype(trs[i]) != CK_PASS && strcmp(tr_tcname(trs[i]), l->name) == 0)
				bad = true;
		}
		/* a sanitizer report from pgdog fails the program, whatever the checks said */
		if (strstr(l->text, "Sanitizer") != NULL ||
		    strstr(l->text, "runtime error:") != NULL) {
			fprintf(stderr, "pgdog reported a sanitizer error in TCase %s\n", l->name);
			failed++;
			bad = true;
		}
		/* PostgreSQL's first, so that the output still ends with pgdog's log */
		if (bad && l->pg_text != NULL)
			fprintf(stderr, "%s", l->pg_text);
		if (bad && getenv("IT_VERBOSE") == NULL)
			fprintf(stderr, "%s", l->text);
	}
	free(trs);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ---- PostgreSQL ------------------------------------------------------- */

static const char *
it_pgenv(void)
{
	static char path[IT_PATH_MAX];

	snprintf(path, sizeof(path), "%s/t/pgenv.sh", it_srcdir());
	return path;
}

void
it_pg_start(const char *const *conf)
{
	const char *argv[40];
	char port[16];
	int argc = 0, rc;
	char *text;

	ck_assert_msg(access(it_pgenv(), R_OK) == 0, "%s is missing (set PGDOG_SRCDIR)",
		      it_pgenv());
	snprintf(g_it.pg_dir, sizeof(g_it.pg_dir), "%s/pg", g_it.dir);
	for (int attempt = 0; attempt < 3; attempt++) {
		int p = it_free_port();

		snprintf(port, sizeof(port), "%d", p);
		argc = 0;
		argv[argc++] = "/bin/sh";
		argv[argc++] = it_pgenv();
		argv[argc++] = "start";
		argv[argc++] = g_it.pg_dir;
		argv[argc++] = port;
		for (int i = 0; conf != NULL && conf[i] != NULL && argc < 38; i++)
			argv[argc++] = conf[i];
		argv[argc] = NULL;
		rc = it_spawn_wait(argv, it_path("pgenv.out"));
		if (rc == 0) {
			g_it.pg_port = p;
			return;
		}
		/* the port may have been taken meanwhile: clean up and retry */
		{
			const char *stop[] = { "/bin/sh", it_pgenv(), "stop", g_it.pg_dir, NULL };
			it_spawn_wait(stop, NULL);
		}
	}
	text = it_read_file(it_path("pgenv.out"));
	ck_abort_msg("t/pgenv.sh start failed (exit %d): %s", rc, text != NULL ? text : "");
}

void
it_pg_stop(void)
{
	const char *argv[] = { "/bin/sh", it_pgenv(), "stop", g_it.pg_dir, NULL };

	if (g_it.pg_port == 0)
		return;
	it_spawn_wait(argv, NULL);
	g_it.pg_port = 0;
}

static void
it_notice_quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

PGconn *
it_pg_connect(void)
{
	char dsn[256];
	PGconn *conn;

	snprintf(dsn, sizeof(dsn),
		 "host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=15",
		 g_it.pg_port);
	conn = PQconnectdb(dsn);
	if (PQstatus(conn) != CONNECTION_OK) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
		PQfinish(conn);
		ck_abort_msg("connect to PostgreSQL on port %d: %s", g_it.pg_port, msg);
	}
	PQsetNoticeProcessor(conn, it_notice_quiet, NULL);
	return conn;
}

void
it_pg_exec(const char *sql)
{
	PGconn *conn = it_pg_connect();
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
		PQclear(res);
		PQfinish(conn);
		ck_abort_msg("PostgreSQL: %s: %s", sql, msg);
	}
	PQclear(res);
	PQfinish(conn);
}

const char *
it_pg_value(const char *sql)
{
	PGconn *conn = it_pg_connect();
	const char *v = it_value(conn, sql);

	PQfinish(conn);
	return v;
}

int
it_pg_count_backends(PGconn *mon, const char *user)
{
	const char *params[1] = { user };
	PGresult *res = PQexecParams(
		mon,
		"SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend'",
		1, NULL, params, NULL, NULL, 0);
	int n;

	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "pg_stat_activity: %s",
		      PQerrorMessage(mon));
	n = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return n;
}

int
it_tcp_established_to(int port, int exclude_local_port)
{
	FILE *f = fopen("/proc/net/tcp", "r");
	char line[512];
	unsigned seen[4096];
	int n = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned la, lp, ra, rp, st;
		bool is_dup = false;

		if (sscanf(line, " %*d: %x:%x %x:%x %x", &la, &lp, &ra, &rp, &st) != 5)
			continue;
		if (st != 1 || (int)rp != port || (int)lp == exclude_local_port)
			continue;
		/*
		 * The kernel lists the table in chunks, resuming by position: with
		 * sockets coming and going meanwhile, one may be listed twice (and
		 * one closed and another opened meanwhile both: callers read twice).
		 */
		for (int i = 0; i < n && !is_dup; i++)
			is_dup = seen[i] == lp;
		if (!is_dup && n < (int)(sizeof(seen) / sizeof(seen[0])))
			seen[n++] = lp;
	}
	fclose(f);
	return n;
}

int
it_local_port(int fd)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	if (getsockname(fd, (struct sockaddr *)&sa, &sl) < 0 || sa.sin_family != AF_INET)
		return -1;
	return ntohs(sa.sin_port);
}

void
it_pg_hba(const char *lines)
{
	char path[IT_PATH_MAX + 32];
	char *text;
	size_t cap = 4096 + (lines != NULL ? strlen(lines) : 0);

	text = malloc(cap);
	ck_assert(text != NULL);
	snprintf(text, cap,
		 "local all all trust\n"
		 "host all postgres 127.0.0.1/32 trust\n"
		 "%s\n"
		 "host all all 127.0.0.1/32 trust\n",
		 lines != NULL ? lines : "");
	snprintf(path, sizeof(path), "%s/data/pg_hba.conf", g_it.pg_dir);
	it_write_file(path, text);
	free(text);
	it_pg_exec("SELECT pg_reload_conf()");
	/* the postmaster rereads pg_hba.conf asynchronously after the signal */
	it_sleep_ms(300);
}

static void
it_pg_quote(char *out, size_t cap, const char *s, char q)
{
	size_t n = 0;

	if (n + 1 < cap)
		out[n++] = q;
	for (; *s != '\0' && n + 3 < cap; s++) {
		if (*s == q)
			out[n++] = q;
		out[n++] = *s;
	}
	out[n++] = q;
	out[n] = '\0';
}

void
it_pg_role(const char *name, const char *password, const char *encryption)
{
	char sql[2048], qn[256], qp[512];
	PGconn *conn = it_pg_connect();
	PGresult *res;

	it_pg_quote(qn, sizeof(qn), name, '"');
	if (password != NULL)
		it_pg_quote(qp, sizeof(qp), password, '\'');
	snprintf(sql, sizeof(sql),
		 "SET password_encryption = '%s';"
		 "DROP ROLE IF EXISTS %s;"
		 "CREATE ROLE %s LOGIN %s%s;"
		 "GRANT ALL ON SCHEMA public TO %s",
		 encryption != NULL ? encryption : "scram-sha-256", qn, qn,
		 password != NULL ? "PASSWORD " : "", password != NULL ? qp : "", qn);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
		PQclear(res);
		PQfinish(conn);
		ck_abort_msg("create role %s: %s", name, msg);
	}
	PQclear(res);
	PQfinish(conn);
}

const char *
it_pg_role_secret(const char *name)
{
	char sql[512], q[256];

	it_pg_quote(q, sizeof(q), name, '\'');
	snprintf(sql, sizeof(sql), "SELECT rolpassword FROM pg_authid WHERE rolname = %s", q);
	return it_pg_value(sql);
}

/* ---- pgdog -------------------------------------------------------------- */

/* Whether key (up to '=' or space) is set in the newline-separated "k = v" list. */
static bool
it_conf_has_key(const char *list, const char *key)
{
	size_t kl = strlen(key);
	const char *p = list;

	while (p != NULL && *p != '\0') {
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, key, kl) == 0 && (p[kl] == ' ' || p[kl] == '=' || p[kl] == '\t'))
			return true;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return false;
}

/* Write ini_path and users_path for conf with port; returns the worker count. */
static int
it_write_config_to(const struct it_pgdog_conf *conf, int port, const char *ini_path,
		   const char *users_path)
{
	struct it_pgdog_conf def = { 0 };
	char *ini;
	size_t cap;
	size_t n = 0;
	char defaults[16][IT_PATH_MAX + 64];
	int nd = 0;
	const char *log_level = getenv("IT_LOG_LEVEL");

	int workers;

	if (conf == NULL)
		conf = &def;
	workers = conf->workers > 0 ? conf->workers : 2;
	snprintf(defaults[nd++], sizeof(defaults[0]), "host = 127.0.0.1");
	snprintf(defaults[nd++], sizeof(defaults[0]), "port = %d", port);
	snprintf(defaults[nd++], sizeof(defaults[0]), "workers = %d", workers);
	snprintf(defaults[nd++], sizeof(defaults[0]), "default_pool_size = 10");
	snprintf(defaults[nd++], sizeof(defaults[0]), "min_pool_size = 0");
	snprintf(defaults[nd++], sizeof(defaults[0]), "unix_socket_dir = %s", g_it.dir);
	snprintf(defaults[nd++], sizeof(defaults[0]), "auth_type = scram-sha-256");
	snprintf(defaults[nd++], sizeof(defaults[0]), "checkout_timeout = 5000");
	snprintf(defaults[nd++], sizeof(defaults[0]), "connect_timeout = 5000");
	snprintf(defaults[nd++], sizeof(defaults[0]), "server_reset_query = DISCARD ALL");
	/* the foundation tests check session pooling; others set pooler_mode themselves */
	snprintf(defaults[nd++], sizeof(defaults[0]), "pooler_mode = session");
	snprintf(defaults[nd++], sizeof(defaults[0]), "log_level = %s",
		 log_level != NULL ? log_level : "info");

	cap = 8192 + (conf->general ? strlen(conf->general) : 0) +
	      (conf->databases ? strlen(conf->databases) : 0);
	ini = malloc(cap);
	ck_assert(ini != NULL);
	n += (size_t)snprintf(ini + n, cap - n, "; generated by t/lib/it.c for %s\n[general]\n",
			      g_it.name);
	for (int i = 0; i < nd; i++) {
		char key[64];

		sscanf(defaults[i], "%63s", key);
		if (conf->general != NULL && it_conf_has_key(conf->general, key))
			continue;
		n += (size_t)snprintf(ini + n, cap - n, "%s\n", defaults[i]);
	}
	if (conf->general != NULL)
		n += (size_t)snprintf(ini + n, cap - n, "%s\n", conf->general);
	n += (size_t)snprintf(ini + n, cap - n,
			      "\n[databases.app]\nhost = 127.0.0.1\nport = %d\n"
			      "database_name = postgres\n\n%s\n",
			      g_it.pg_port, conf->databases != NULL ? conf->databases : "");
	ck_assert(n < cap);
	it_write_file(ini_path, ini);
	free(ini);

	cap = 4096 + (conf->users ? strlen(conf->users) : 0);
	ini = malloc(cap);
	ck_assert(ini != NULL);
	snprintf(ini, cap, "; generated by t/lib/it.c for %s\n%s\n%s", g_it.name,
		 conf->users != NULL ? conf->users
				     : "[users.app]\ndatabase = app\npassword = app_pw\n",
		 conf->has_admin ? ""
				 : "\n[admin]\nname = admin\nuser = admin\npassword = pgdog\n");
	it_write_file(users_path, ini);
	free(ini);
	return workers;
}

void
it_pgdog_write_config(const struct it_pgdog_conf *conf)
{
	if (g_it.port == 0)
		g_it.port = it_free_port();
	snprintf(g_it.ini_path, sizeof(g_it.ini_path), "%s/pgdog.ini", g_it.dir);
	snprintf(g_it.users_path, sizeof(g_it.users_path), "%s/users.ini", g_it.dir);
	g_it.workers = it_write_config_to(conf, g_it.port, g_it.ini_path, g_it.users_path);
}

static bool
it_port_accepts(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

void
it_log_mark(const char *fmt, ...)
{
	struct timespec ts;
	struct tm tm;
	char when[32], line[512];
	ssize_t w = 0;
	va_list ap;
	int fd, n;

	if (g_it.dir[0] == '\0')
		return;
	/* the same clock and format as pgdog's lines, appended as pgdog appends */
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s.%03ld UTC === ", when, ts.tv_nsec / 1000000);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	fd = open(it_path("pgdog.log"), O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0)
		return;
	w = write(fd, line, (size_t)n); /* a marker only: a short write does no harm */
	(void)w;
	close(fd);
}

void
it_test_begin(const char *name)
{
	it_log_mark("test %s begins", name);
}

void
it_dump_log(void)
{
	char *text = it_read_file(g_it.log_path);

	fprintf(stderr, "---- %s: %s ----\n%s---- end of log ----\n", g_it.name, g_it.log_path,
		text != NULL ? text : "(none)\n");
	free(text);
}

bool
it_log_contains(const char *s)
{
	return it_file_contains(g_it.log_path, s);
}

bool
it_file_contains(const char *path, const char *s)
{
	char *text = it_read_file(path);
	bool found = text != NULL && strstr(text, s) != NULL;

	free(text);
	return found;
}

bool
it_file_wait_for(const char *path, const char *s, int timeout_ms)
{
	long long end = it_now_ms() + timeout_ms;

	while (!it_file_contains(path, s)) {
		if (it_now_ms() >= end)
			return false;
		it_sleep_ms(50);
	}
	return true;
}

pid_t
it_pidfile_pid(const char *path)
{
	char *text = it_read_file(path);
	int pid = text ? atoi(text) : 0;

	free(text);
	return (pid_t)pid;
}

/* fork and exec pgdog with args (NULL-terminated, without argv[0]), output to log. */
static pid_t
it_exec_pgdog(const char *const *args, const char *log_path)
{
	const char *argv[32];
	int argc = 0;
	pid_t pid;

	argv[argc++] = it_pgdog_bin();
	for (int i = 0; args[i] != NULL && argc < 31; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	pid = fork();
	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
		int nul = open("/dev/null", O_RDONLY);

		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
		}
		if (nul >= 0)
			dup2(nul, 0);
		setpgid(0, 0);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	it_track_pid(pid);
	return pid;
}

pid_t
it_pgdog_spawn(const char *tag, const struct it_pgdog_conf *conf, int port,
	       const char *const *extra_args)
{
	char ini[IT_PATH_MAX], users[IT_PATH_MAX], log[IT_PATH_MAX];
	const char *args[32];
	int argc = 0;

	ck_assert_msg(access(it_pgdog_bin(), X_OK) == 0,
		      "pgdog binary %s is missing or not executable (set PGDOG_BIN)",
		      it_pgdog_bin());
	snprintf(ini, sizeof(ini), "%s/%s.ini", g_it.dir, tag);
	snprintf(users, sizeof(users), "%s/%s-users.ini", g_it.dir, tag);
	snprintf(log, sizeof(log), "%s/pgdog-%s.log", g_it.dir, tag);
	it_write_config_to(conf, port, ini, users);
	args[argc++] = "-c";
	args[argc++] = ini;
	args[argc++] = "-u";
	args[argc++] = users;
	for (int i = 0; extra_args != NULL && extra_args[i] != NULL && argc < 31; i++)
		args[argc++] = extra_args[i];
	args[argc] = NULL;
	return it_exec_pgdog(args, log);
}

bool
it_wait_port(int port, int timeout_ms)
{
	long long end = it_now_ms() + timeout_ms;

	for (;;) {
		if (it_port_accepts(port))
			return true;
		if (it_now_ms() >= end)
			return false;
		it_sleep_ms(50);
	}
}

void
it_pgdog_start(const struct it_pgdog_conf *conf)
{
	pid_t pid;
	long long end;
	pid_t kids[64];
	bool up = false;

	ck_assert_msg(access(it_pgdog_bin(), X_OK) == 0,
		      "pgdog binary %s is missing or not executable (set PGDOG_BIN)",
		      it_pgdog_bin());
	it_pgdog_write_config(conf);
	snprintf(g_it.log_path, sizeof(g_it.log_path), "%s/pgdog.log", g_it.dir);
	{
		const char *args[] = { "-c", g_it.ini_path, "-u", g_it.users_path, NULL };

		pid = it_exec_pgdog(args, g_it.log_path);
	}
	g_it.pid = pid;
	g_it.owner = getpid();

	end = it_now_ms() + 10000;
	while (it_now_ms() < end) {
		int st;

		if (waitpid(pid, &st, WNOHANG) == pid) {
			g_it.pid = 0;
			it_dump_log();
			ck_abort_msg("pgdog exited during start-up (status %d, see log above)",
				     WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		}
		if (it_port_accepts(g_it.port) && it_children(pid, kids, 64) >= g_it.workers) {
			up = true;
			break;
		}
		it_sleep_ms(50);
	}
	if (!up) {
		it_dump_log();
		it_pgdog_stop();
		ck_abort_msg("pgdog did not accept connections on port %d within 10 s", g_it.port);
	}
}

int
it_pgdog_stop(void)
{
	int st;
	pid_t pid = g_it.pid;

	if (pid <= 0)
		return -1;
	if (g_it.owner != getpid())
		return -1;
	g_it.pid = 0;
	kill(pid, SIGTERM);
	st = it_wait_pid(pid, 5000);
	if (st == -1) {
		fprintf(stderr, "%s: pgdog %d ignored SIGTERM for 5 s: SIGKILL\n", g_it.name,
			(int)pid);
		kill(pid, SIGKILL);
		st = it_wait_pid(pid, 5000);
	}
	return st;
}

void
it_pgdog_restart(const struct it_pgdog_conf *conf)
{
	it_pgdog_stop();
	it_pgdog_start(conf);
}

int
it_pgdog_run(const char *const *argv, char *out, size_t out_len, int timeout_ms)
{
	const char *args[32];
	int pipefd[2];
	pid_t pid;
	size_t n = 0;
	long long end = it_now_ms() + timeout_ms;
	int argc = 0, st = -1;
	bool exited = false;

	args[argc++] = it_pgdog_bin();
	for (int i = 1; argv[i] != NULL && argc < 31; i++)
		args[argc++] = argv[i];
	args[argc] = NULL;
	ck_assert_msg(access(it_pgdog_bin(), X_OK) == 0, "pgdog binary %s is missing",
		      it_pgdog_bin());
	ck_assert(pipe2(pipefd, O_CLOEXEC) == 0);
	pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		execv(args[0], (char *const *)args);
		_exit(127);
	}
	close(pipefd[1]);
	it_track_pid(pid);
	for (;;) {
		struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };
		int left = (int)(end - it_now_ms());
		ssize_t r;

		if (left <= 0)
			break;
		if (poll(&pfd, 1, left) <= 0)
			continue;
		if (n + 1 < out_len)
			r = read(pipefd[0], out + n, out_len - n - 1);
		else {
			char sink[512];
			r = read(pipefd[0], sink, sizeof(sink));
			if (r > 0)
				continue;
		}
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(pipefd[0]);
	if (out_len > 0)
		out[n < out_len ? n : out_len - 1] = '\0';
	{
		int left = (int)(end - it_now_ms());
		int s = it_wait_pid(pid, left > 0 ? left : 1);
		if (s != -1) {
			exited = true;
			st = WIFEXITED(s) ? WEXITSTATUS(s) : 128 + WTERMSIG(s);
		}
	}
	if (!exited) {
		kill(pid, SIGKILL);
		it_wait_pid(pid, 5000);
		return -1;
	}
	return st;
}

/* ---- clients ------------------------------------------------------------ */

const char *
it_pgdog_dsn(const char *extra)
{
	size_t cap;
	char *b = it_tls_buf(&cap);

	snprintf(b, cap, "host=127.0.0.1 port=%d connect_timeout=5 %s", g_it.port,
		 extra != NULL ? extra : "");
	return b;
}

PGconn *
it_connect(const char *extra)
{
	PGconn *conn = PQconnectdb(it_pgdog_dsn(extra));

	if (PQstatus(conn) != CONNECTION_OK) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
		PQfinish(conn);
		ck_abort_msg("connect through pgdog (%s): %s", extra, msg);
	}
	return conn;
}

PGresult *
it_exec_ok(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);

	ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s (%s)", sql,
		      PQerrorMessage(conn), PQresStatus(st));
	return res;
}

const char *
it_value(PGconn *conn, const char *sql)
{
	size_t cap;
	char *b = it_tls_buf(&cap);
	PGresult *res = PQexec(conn, sql);

	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) >= 1, "%s: %s", sql,
		      PQerrorMessage(conn));
	snprintf(b, cap, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return b;
}

const char *
it_exec_error(PGconn *conn, const char *sql, const char *sqlstate)
{
	size_t cap;
	char *b = it_tls_buf(&cap);
	PGresult *res = PQexec(conn, sql);
	const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR, "%s: expected an error %s, got %s",
		      sql, sqlstate, PQresStatus(PQresultStatus(res)));
	ck_assert_msg(st != NULL && strcmp(st, sqlstate) == 0, "%s: SQLSTATE %s, expected %s (%s)",
		      sql, st != NULL ? st : "(none)", sqlstate, PQerrorMessage(conn));
	snprintf(b, cap, "%s", msg != NULL ? msg : "");
	PQclear(res);
	return b;
}

int
it_exec_first_error(PGconn *conn, const char *sql, char *sqlstate, char *msg, size_t msg_len)
{
	PGresult *res;
	int rc = -1;

	sqlstate[0] = '\0';
	if (msg_len > 0)
		msg[0] = '\0';
	if (PQsendQuery(conn, sql) != 1) {
		snprintf(msg, msg_len, "%s", PQerrorMessage(conn));
		return -1;
	}
	while ((res = PQgetResult(conn)) != NULL) {
		ExecStatusType st = PQresultStatus(res);
		const char *c = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		if (st == PGRES_FATAL_ERROR && rc != 1) {
			rc = 1;
			snprintf(sqlstate, 6, "%s", c != NULL ? c : "");
			snprintf(msg, msg_len, "%s", m != NULL ? m : PQresultErrorMessage(res));
		} else if ((st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) && rc == -1) {
			rc = 0;
		}
		PQclear(res);
		if (PQstatus(conn) == CONNECTION_BAD)
			break;
	}
	return rc;
}

const char *
it_connect_fail(const char *extra)
{
	size_t cap;
	char *b = it_tls_buf(&cap);
	PGconn *conn = PQconnectdb(it_pgdog_dsn(extra));

	ck_assert_msg(PQstatus(conn) != CONNECTION_OK, "connection (%s) should have failed", extra);
	snprintf(b, cap, "%s", PQerrorMessage(conn));
	PQfinish(conn);
	return b;
}

/* ---- pgbench ----------------------------------------------------------- */

const char *
it_pgbench_bin(void)
{
	const char *env = getenv("PGBENCH");
	static const char *cands[] = { "/usr/lib/postgresql/15/bin/pgbench", "/usr/bin/pgbench" };

	if (env != NULL && *env != '\0')
		return env;
	for (size_t i = 0; i < 2; i++)
		if (access(cands[i], X_OK) == 0)
			return cands[i];
	ck_abort_msg(
		"pgbench not found (install postgresql-contrib / postgresql-15, or set PGBENCH)");
	return NULL;
}

int
it_run_pgbench(const char *args, int timeout_s, char *out, size_t out_len, PGconn *mon,
	       int *max_backends)
{
	char cmd[1024], limit[64] = "";
	FILE *p;
	size_t n = 0;
	int st, fd;
	bool eof = false;

	if (timeout_s > 0)
		snprintf(limit, sizeof(limit), "timeout -k 5 %d ", timeout_s);
	snprintf(cmd, sizeof(cmd),
		 "PGPASSWORD=bench_pw PGCONNECT_TIMEOUT=10 %s%s -h 127.0.0.1 -p %d -U bench %s app "
		 "2>&1",
		 limit, it_pgbench_bin(), g_it.port, args);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	fd = fileno(p);
	while (!eof) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int r = poll(&pfd, 1, 20);

		if (r > 0) {
			char sink[4096];
			ssize_t got;

			if (n + 1 < out_len)
				got = read(fd, out + n, out_len - n - 1);
			else
				got = read(fd, sink, sizeof(sink));
			if (got == 0 || (got < 0 && errno != EINTR))
				eof = true;
			else if (got > 0 && n + 1 < out_len)
				n += (size_t)got;
		}
		if (mon != NULL) {
			int b = it_pg_count_backends(mon, "bench");

			if (b > *max_backends)
				*max_backends = b;
		}
	}
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- raw protocol ------------------------------------------------------ */

static int it_raw_read_full(int fd, char *buf, size_t len, long long end);

int
it_raw_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;

	ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
		      "connect to 127.0.0.1:%d: %s", port, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

int
it_raw_recv_byte(int fd, int timeout_ms)
{
	char c;

	if (it_raw_read_full(fd, &c, 1, it_now_ms() + timeout_ms) < 0)
		return -1;
	return (unsigned char)c;
}

int
it_raw_send(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

size_t
it_raw_send_until_blocked(int fd, const char *pat, size_t plen, size_t max, int ms, bool *blocked)
{
	static char chunk[256 * 1024];
	size_t sent = 0, per = sizeof(chunk) / plen * plen - plen;
	long long end = it_now_ms() + ms, last = it_now_ms();

	for (size_t i = 0; i + plen <= sizeof(chunk); i += plen)
		memcpy(chunk + i, pat, plen);
	*blocked = false;
	while (it_now_ms() < end && sent < max && !*blocked) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		ssize_t w = 0;

		if (poll(&pfd, 1, 50) > 0) {
			w = send(fd, chunk + sent % plen, per, MSG_DONTWAIT | MSG_NOSIGNAL);
			ck_assert_msg(w >= 0 || errno == EAGAIN || errno == EWOULDBLOCK ||
					      errno == EINTR,
				      "send: %s", strerror(errno));
		}
		if (w > 0) {
			sent += (size_t)w;
			last = it_now_ms();
		}
		*blocked = it_now_ms() - last >= 1000;
	}
	return sent;
}

static void
it_raw_recv_repeated(int fd, const char *pat, size_t plen, size_t want, int timeout_ms)
{
	static char got[65536];
	long long end = it_now_ms() + timeout_ms;
	size_t have = 0;

	while (have < want) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		ck_assert_msg(it_now_ms() < end, "%zu of %zu bytes", have, want);
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		r = recv(fd, got, sizeof(got) < want - have ? sizeof(got) : want - have, 0);
		ck_assert_msg(r > 0, "recv: %zd after %zu of %zu bytes", r, have, want);
		for (ssize_t i = 0; i < r; i++) {
			/* a plain test: ck_assert costs a write() to Check's log each time */
			if (got[i] != pat[(have + (size_t)i) % plen])
				ck_abort_msg("byte %zu of %zu", have + (size_t)i, want);
		}
		have += (size_t)r;
	}
}

void
it_raw_flood_unread(int fd, const char *req, size_t rl, const char *ans, size_t al, size_t max)
{
	bool blocked;
	size_t sent = it_raw_send_until_blocked(fd, req, rl, max, 10000, &blocked);

	it_log_mark("%zu KiB of requests taken, blocked: %d", sent >> 10, blocked);
	ck_assert_msg(blocked, "pgdog took %zu MiB of requests while their answers were not read",
		      sent >> 20);
	/* the rest of the last request, then every answer */
	if (sent % rl)
		ck_assert_int_eq(it_raw_send(fd, req + sent % rl, rl - sent % rl), 0);
	it_raw_recv_repeated(fd, ans, al, (sent + rl - 1) / rl * al, 20000);
}

int
it_raw_send_queries(int fd, const char *const *sqls, int n)
{
	size_t len = 0, cap = 0;
	unsigned char *buf;
	int rc;

	for (int i = 0; i < n; i++)
		cap += 1 + 4 + strlen(sqls[i]) + 1;
	buf = malloc(cap ? cap : 1);
	ck_assert_ptr_nonnull(buf);
	for (int i = 0; i < n; i++) {
		size_t q = strlen(sqls[i]) + 1, m = 4 + q;

		buf[len] = 'Q';
		buf[len + 1] = (unsigned char)(m >> 24);
		buf[len + 2] = (unsigned char)(m >> 16);
		buf[len + 3] = (unsigned char)(m >> 8);
		buf[len + 4] = (unsigned char)m;
		memcpy(buf + len + 5, sqls[i], q);
		len += 1 + m;
	}
	rc = it_raw_send(fd, buf, len);
	free(buf);
	return rc;
}

/* Read exactly len bytes before the deadline; 0, or -1 on EOF/error/timeout. */
static int
it_raw_read_full(int fd, char *buf, size_t len, long long end)
{
	while (len > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int left = (int)(end - it_now_ms());
		ssize_t n;

		if (left <= 0)
			return -1;
		if (poll(&pfd, 1, left) <= 0)
			continue;
		n = recv(fd, buf, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

long
it_raw_recv(int fd, char *type, char *buf, size_t cap, int timeout_ms)
{
	long long end = it_now_ms() + timeout_ms;
	unsigned char hdr[5];
	uint32_t len;
	size_t body, got = 0;

	if (it_raw_read_full(fd, (char *)hdr, 1, end) < 0)
		return -1;
	*type = (char)hdr[0];
	if (it_raw_read_full(fd, (char *)hdr + 1, 4, end) < 0)
		return -1;
	len = ((uint32_t)hdr[1] << 24) | ((uint32_t)hdr[2] << 16) | ((uint32_t)hdr[3] << 8) |
	      hdr[4];
	if (len < 4 || len > 64 * 1024 * 1024)
		return -1;
	body = len - 4;
	while (got < body) {
		char sink[4096];
		size_t want = body - got;
		char *dst;

		if (got < cap) {
			dst = buf + got;
			if (want > cap - got)
				want = cap - got;
		} else {
			dst = sink;
			if (want > sizeof(sink))
				want = sizeof(sink);
		}
		if (it_raw_read_full(fd, dst, want, end) < 0)
			return -1;
		got += want;
	}
	if (body < cap)
		buf[body] = '\0';
	return (long)body;
}

static void
it_put32(char *p, uint32_t v)
{
	p[0] = (char)(v >> 24);
	p[1] = (char)(v >> 16);
	p[2] = (char)(v >> 8);
	p[3] = (char)v;
}

int
it_raw_startup(int fd, int major, int minor, const char *user, const char *db)
{
	char buf[1024];
	size_t n = 8;

	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "user%c%s%c", 0, user, 0);
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "database%c%s%c", 0, db, 0);
	buf[n++] = '\0';
	it_put32(buf, (uint32_t)n);
	it_put32(buf + 4, ((uint32_t)major << 16) | (uint32_t)minor);
	return it_raw_send(fd, buf, n);
}

const char *
it_raw_field(const char *body, long len, char f, char *out, size_t out_len)
{
	long i = 0;

	out[0] = '\0';
	while (i < len && body[i] != '\0') {
		char code = body[i++];
		const char *v = body + i;
		size_t vl = strnlen(v, (size_t)(len - i));

		if (code == f) {
			snprintf(out, out_len, "%.*s", (int)vl, v);
			return out;
		}
		i += (long)vl + 1;
	}
	return out;
}

int
it_raw_login(int fd, const char *user, const char *db, const char *password, char *sqlstate)
{
	return it_raw_login_key(fd, user, db, password, sqlstate, NULL);
}

int
it_raw_login_key(int fd, const char *user, const char *db, const char *password, char *sqlstate,
		 char *key)
{
	char type, body[8192];
	long len;

	if (sqlstate != NULL)
		sqlstate[0] = '\0';
	if (it_raw_startup(fd, 3, 0, user, db) < 0)
		return -1;
	for (;;) {
		len = it_raw_recv(fd, &type, body, sizeof(body), 5000);
		if (len < 0)
			return -1;
		if (type == 'E') {
			if (sqlstate != NULL)
				it_raw_field(body, len, 'C', sqlstate, 6);
			return -1;
		}
		if (type == 'Z')
			return 0;
		if (type == 'K' && len == 8 && key != NULL)
			memcpy(key, body, 8);
		if (type == 'R' && len >= 4) {
			uint32_t code = ((uint32_t)(unsigned char)body[0] << 24) |
					((uint32_t)(unsigned char)body[1] << 16) |
					((uint32_t)(unsigned char)body[2] << 8) |
					(unsigned char)body[3];
			if (code == 3) {
				char msg[1100];
				size_t pl = strlen(password != NULL ? password : "");

				if (pl > 1000)
					return -1;
				msg[0] = 'p';
				it_put32(msg + 1, (uint32_t)(4 + pl + 1));
				memcpy(msg + 5, password != NULL ? password : "", pl + 1);
				if (it_raw_send(fd, msg, 5 + pl + 1) < 0)
					return -1;
			} else if (code != 0) {
				return -1; /* MD5/SASL: use libpq */
			}
		}
	}
}

void
it_raw_cancel(int port, const char *key)
{
	int fd = it_raw_connect(port);
	char pkt[16];

	it_put32(pkt, 16);
	it_put32(pkt + 4, 80877102);
	memcpy(pkt + 8, key, 8);
	ck_assert_int_eq(it_raw_send(fd, pkt, sizeof(pkt)), 0);
	ck_assert_msg(it_raw_wait_closed(fd, 5000), "the cancel connection stayed open");
	close(fd);
}

int
it_raw_auth_request(int port, const char *user, const char *db, char *sqlstate)
{
	int fd = it_raw_connect(port);
	char type, body[4096];
	long len;
	int code = -1;

	if (sqlstate != NULL)
		sqlstate[0] = '\0';
	if (it_raw_startup(fd, 3, 0, user, db) == 0) {
		len = it_raw_recv(fd, &type, body, sizeof(body), 5000);
		if (len >= 4 && type == 'R')
			code = (int)(((uint32_t)(unsigned char)body[0] << 24) |
				     ((uint32_t)(unsigned char)body[1] << 16) |
				     ((uint32_t)(unsigned char)body[2] << 8) |
				     (unsigned char)body[3]);
		else if (len >= 0 && type == 'E' && sqlstate != NULL)
			it_raw_field(body, len, 'C', sqlstate, 6);
	}
	close(fd);
	return code;
}

void
it_raw_types(int fd, int readies, unsigned flags, char *out, size_t out_len)
{
	char type, body[2048];
	size_t o = 0;
	long len;

	out[0] = '\0';
	while (readies != 0 && o + 24 < out_len &&
	       (len = it_raw_recv(fd, &type, body, sizeof(body), 5000)) >= 0) {
		if (type == 'D' && (flags & IT_RAW_VALUES) && len >= 6) {
			uint32_t vl;

			memcpy(&vl, body + 2, 4);
			vl = ntohl(vl);
			o += (size_t)snprintf(out + o, out_len - o, "D(%.*s) ",
					      (int)(vl < 64 ? vl : 64), body + 6);
		} else if (type == 'E' && (flags & IT_RAW_STATES)) {
			char st[8];

			it_raw_field(body, len, 'C', st, sizeof(st));
			o += (size_t)snprintf(out + o, out_len - o, "E(%s) ", st);
		} else if (type != 'S' || !(flags & IT_RAW_NO_PARAMS)) {
			o += (size_t)snprintf(out + o, out_len - o, "%c ", type);
		}
		if (type == 'Z' && readies > 0)
			readies--;
	}
	if (o && out[o - 1] == ' ')
		out[o - 1] = '\0';
}

bool
it_raw_wait_closed(int fd, int timeout_ms)
{
	long long end = it_now_ms() + timeout_ms;
	char sink[4096];

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int left = (int)(end - it_now_ms());
		ssize_t n;

		if (left <= 0)
			return false;
		if (poll(&pfd, 1, left) <= 0)
			continue;
		n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n == 0)
			return true;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return errno == ECONNRESET || errno == EPIPE;
	}
}

/* ---- HTTP (the OpenMetrics endpoint) ---------------------------------------- */

/*
 * One HTTP request to the metrics port; returns the status code and copies
 * the body (NUL-terminated) into body. Fails the test on a connection
 * error, on no answer within 5 s, or on an answer over 4 MiB.
 */
int
it_http_request(int port, const char *request, char *body, size_t body_len)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	static char buf[4 << 20];
	size_t n = 0, req_len = strlen(request);
	long long end = it_now_ms() + 5000;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), code = 0;
	char *p;

	ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
		      "connect to port %d: %s", port, strerror(errno));
	ck_assert(write(fd, request, req_len) == (ssize_t)req_len);
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		ck_assert_msg(it_now_ms() < end, "metrics answer did not end within 5 s");
		if (poll(&pfd, 1, 1000) <= 0)
			continue;
		r = read(fd, buf + n, sizeof(buf) - 1 - n);
		ck_assert_msg(r >= 0, "read: %s", strerror(errno));
		if (r == 0)
			break;
		n += (size_t)r;
		ck_assert_msg(n < sizeof(buf) - 1, "metrics answer too large");
	}
	close(fd);
	buf[n] = '\0';
	ck_assert_msg(sscanf(buf, "HTTP/1.1 %d", &code) == 1, "not an HTTP answer: %.100s", buf);
	p = strstr(buf, "\r\n\r\n");
	ck_assert_msg(p != NULL, "no end of headers");
	snprintf(body, body_len, "%s", p + 4);
	return code;
}

/* The value of the sample "name{labels...}" whose labels contain user="user". */
double
it_metric(const char *text, const char *name, const char *user)
{
	char key[256], label[96];
	const char *p = text;

	snprintf(key, sizeof(key), "\n%s{", name);
	snprintf(label, sizeof(label), "user=\"%s\"", user);
	while ((p = strstr(p, key)) != NULL) {
		const char *eol = strchr(p + 1, '\n'), *sp;

		p += strlen(key);
		sp = strchr(p, '}');
		if (sp && eol && sp < eol && memmem(p, (size_t)(sp - p), label, strlen(label)))
			return strtod(sp + 2, NULL);
	}
	ck_abort_msg("no sample %s for user %s", name, user);
	return -1;
}

double
it_metric_plain(const char *text, const char *name)
{
	char key[256];
	const char *p;

	snprintf(key, sizeof(key), "\n%s ", name);
	p = strstr(text, key);
	ck_assert_msg(p != NULL, "no sample %s", name);
	return strtod(p + strlen(key), NULL);
}

/* ---- the admin console, LISTEN/NOTIFY, command output ------------------------ */

const char *
it_show_value(PGconn *adm, const char *cmd, const char *k1, const char *v1, const char *k2,
	      const char *v2, const char *col)
{
	static char out[256];
	PGresult *res = it_exec_ok(adm, cmd);
	int f1 = PQfnumber(res, k1), f2 = k2 ? PQfnumber(res, k2) : -1, f = PQfnumber(res, col);
	int rows = 0;

	ck_assert_msg(f1 >= 0 && (!k2 || f2 >= 0) && f >= 0, "%s has no column %s, %s or %s", cmd,
		      k1, k2 ? k2 : "-", col);
	out[0] = '\0';
	for (int r = 0; r < PQntuples(res); r++) {
		if (strcmp(PQgetvalue(res, r, f1), v1) != 0 ||
		    (k2 && strcmp(PQgetvalue(res, r, f2), v2) != 0))
			continue;
		snprintf(out, sizeof(out), "%s", PQgetvalue(res, r, f));
		rows++;
	}
	PQclear(res);
	ck_assert_msg(rows == 1, "%s: %d rows with %s = %s%s%s%s%s", cmd, rows, k1, v1,
		      k2 ? " and " : "", k2 ? k2 : "", k2 ? " = " : "", k2 ? v2 : "");
	return out;
}

int
it_connect_spread(const char *conninfo, const char *user, PGconn **conns, int min, int max)
{
	PGconn *adm = it_connect("dbname=admin user=admin password=pgdog");
	bool seen[2] = { false, false };
	int n = 0;

	while (n < max && (n < min || !seen[0] || !seen[1])) {
		PGresult *res;
		int fu, fw;

		conns[n++] = it_connect(conninfo);
		res = it_exec_ok(adm, "SHOW CLIENTS");
		fu = PQfnumber(res, "user");
		fw = PQfnumber(res, "worker");
		ck_assert_msg(fu >= 0 && fw >= 0, "SHOW CLIENTS has no user or worker column");
		for (int r = 0; r < PQntuples(res); r++) {
			if (strcmp(PQgetvalue(res, r, fu), user) == 0)
				seen[atoi(PQgetvalue(res, r, fw)) & 1] = true;
		}
		PQclear(res);
	}
	PQfinish(adm);
	ck_assert_msg(seen[0] && seen[1],
		      "%d connections all went to one worker: the test needs both", n);
	return n;
}

int
it_client_worker(PGconn *adm, PGconn *c)
{
	char port[16];

	snprintf(port, sizeof(port), "%d", it_local_port(PQsocket(c)));
	return atoi(it_show_value(adm, "SHOW CLIENTS", "port", port, NULL, NULL, "worker"));
}

PGconn *
it_connect_on(PGconn *adm, const char *conninfo, int w)
{
	for (int i = 0; i < 64; i++) {
		PGconn *c = it_connect(conninfo);

		if (it_client_worker(adm, c) == w)
			return c;
		PQfinish(c);
	}
	ck_abort_msg("64 connections and none on worker %d", w);
	return NULL;
}

const char *
it_pool_field(const char *db, const char *user, const char *col)
{
	static char out[256];
	PGconn *adm = it_connect("dbname=admin user=admin password=pgdog");

	snprintf(out, sizeof(out), "%s",
		 it_show_value(adm, "SHOW POOLS", "database", db, "user", user, col));
	PQfinish(adm);
	return out;
}

PGnotify *
it_wait_notify(PGconn *c, int timeout_ms)
{
	long long end = it_now_ms() + timeout_ms;
	PGnotify *n;

	for (;;) {
		struct pollfd pfd = { .fd = PQsocket(c), .events = POLLIN };
		int left;

		ck_assert_msg(PQconsumeInput(c) == 1, "%s", PQerrorMessage(c));
		n = PQnotifies(c);
		if (n != NULL)
			return n;
		left = (int)(end - it_now_ms());
		if (left <= 0)
			return NULL;
		poll(&pfd, 1, left);
	}
}

long
it_number_after(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

/* ---- queries sent with PQsendQuery ------------------------------------------- */

bool
it_busy_for(PGconn *c, int ms)
{
	long long end = it_now_ms() + ms;

	for (;;) {
		struct pollfd pfd = { .fd = PQsocket(c), .events = POLLIN };
		int left;

		if (PQconsumeInput(c) == 0 || !PQisBusy(c))
			return false;
		left = (int)(end - it_now_ms());
		if (left <= 0)
			return true;
		poll(&pfd, 1, left);
	}
}

PGresult *
it_result_within(PGconn *c, int ms)
{
	long long end = it_now_ms() + ms;

	for (;;) {
		struct pollfd pfd = { .fd = PQsocket(c), .events = POLLIN };
		int left;

		if (PQconsumeInput(c) == 0 || !PQisBusy(c))
			return PQgetResult(c);
		left = (int)(end - it_now_ms());
		if (left <= 0)
			return NULL;
		poll(&pfd, 1, left);
	}
}

void
it_drain(PGconn *c)
{
	PGresult *res;

	while ((res = PQgetResult(c)) != NULL)
		PQclear(res);
}

void
it_pipeline_next(PGconn *c, ExecStatusType want, const char *sqlstate)
{
	PGresult *res = PQgetResult(c);
	const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	ck_assert_msg(res && PQresultStatus(res) == want, "pipeline result %s, expected %s: %s",
		      res ? PQresStatus(PQresultStatus(res)) : "(none)", PQresStatus(want),
		      PQerrorMessage(c));
	if (sqlstate)
		ck_assert_msg(st && strcmp(st, sqlstate) == 0, "SQLSTATE %s, expected %s",
			      st ? st : "(none)", sqlstate);
	PQclear(res);
	if (want != PGRES_PIPELINE_SYNC)
		ck_assert_ptr_null(PQgetResult(c));
}

const char *
it_value_within(PGconn *c, int ms, const char *what)
{
	static char buf[256];
	PGresult *res = it_result_within(c, ms);

	ck_assert_msg(res != NULL, "%s: no answer within %d ms", what, ms);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1, "%s: %s (%s)",
		      what, PQresultErrorMessage(res), PQresStatus(PQresultStatus(res)));
	snprintf(buf, sizeof(buf), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	it_drain(c);
	return buf;
}

void
it_server_held(PGconn *b, const char *what)
{
	if (!PQisBusy(b))
		ck_assert_int_eq(PQsendQuery(b, "SELECT pg_backend_pid()"), 1);
	ck_assert_msg(it_busy_for(b, 150), "the waiting client got the server: %s", what);
}

void
it_server_gone(PGconn *b, const char *pid, const char *what)
{
	if (!PQisBusy(b))
		ck_assert_int_eq(PQsendQuery(b, "SELECT pg_backend_pid()"), 1);
	ck_assert_str_eq(it_value_within(b, 2000, what), pid);
}
