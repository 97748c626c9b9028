/*
 * sv_main.c: the pgdog program (see sv_main.h).
 * Runs in: the supervisor.
 *
 * Start-up, in this order: libsodium, the command line, the configuration
 * (exit EXIT_FATAL on any error; --check-config stops here), logging, the
 * listening sockets, the shared memory segment, --daemon, the pidfile, the
 * signal handlers, then one worker per slot. After that the supervisor only
 * waits for signals and handles them in a fixed order (child exits,
 * shutdown, reload, log reopen, missing workers), one function each.
 *
 * Invariants: a reload publishes to the workers only a configuration this
 * process validated, as the very bytes it parsed (see sv_main_reload). Every path the
 * supervisor touches after start (configuration files on SIGHUP, log file,
 * pidfile, Unix socket) is absolute, because --daemon does chdir("/").
 */
#include "supervisor/sv_main.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h" /* autoconf: PACKAGE_VERSION */
#include "shared/auth.h"
#include "shared/compiler.h"
#include "shared/config.h"
#include "shared/log.h"
#include "shared/proc.h"
#include "shared/secret.h"
#include "shared/shm.h"
#include "supervisor/sv_child.h"
#include "supervisor/sv_listen.h"
#include "supervisor/sv_metrics.h"
#include "supervisor/sv_notify.h"
#include "supervisor/sv_signal.h"
#include "supervisor/sv_upgrade.h"

enum sv_phase {
	SV_RUNNING = 0,
	SV_GRACEFUL, /* SIGINT: workers finish their clients' work */
	SV_FAST,     /* SIGTERM (or escalation): workers close everything now */
	SV_UPGRADED, /* a new supervisor serves; our workers finish their clients */
};

/* The supervisor's state; one per process. */
static struct {
	struct sv_opts opts;
	char *config_abs;  /* absolute -c path (or the default's), NULL: none */
	char *users_abs;   /* absolute -u path (or the default's), NULL: none */
	char *pidfile_abs; /* absolute --pidfile, NULL: none */
	char *log_file_abs;
	struct config *cfg; /* owned; g_cfg points here */
	struct sv_listen listen;
	enum sv_phase phase;
	int exit_code;
	int64_t deadline_ms; /* graceful: escalate to fast; fast: SIGKILL */
	bool has_killed;
	bool has_pidfile; /* we wrote it: remove it at exit */
	bool is_log_stderr;
	int ready_fd;          /* --daemon or upgrade: tells the waiting parent how start-up went */
	bool is_upgrade_child; /* started by a binary upgrade: sockets inherited */
	pid_t successor;       /* SV_UPGRADED: the new supervisor's pid */
	/* upgrade child: the texts the configuration was parsed from, published at adoption */
	char *start_config_text, *start_users_text;
	const char *start_config_name, *start_users_name;
	bool is_adopted_unready;  /* took the old generation's segment, not serving yet */
	int32_t adopted_from_pid; /* the old supervisor: the segment goes back to it if we fail */
} sv = { .ready_fd = -1 };

static const char sv_usage_text[] =
	"Usage: pgdog [OPTION]...\n"
	"       pgdog hash [PASSWORD]\n"
	"\n"
	"PostgreSQL connection pooler, load balancer and sharder.\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE        general settings and databases (default: ./pgdog.ini, if it exists)\n"
	"  -u, --users FILE         users and passwords (default: ./users.ini, if it exists)\n"
	"  -d, --database-url URL   add a database: postgres://user:password@host:port/dbname\n"
	"                           (may be given several times)\n"
	"      --daemon             run in the background; log to syslog unless log_file is set\n"
	"      --pidfile FILE       write the supervisor's pid to FILE, remove it at exit;\n"
	"                           refuse to start while FILE names a running process\n"
	"      --check-config       validate the configuration, print the result and exit\n"
	"                           (0: valid, 1: invalid)\n"
	"      --upgrade            binary upgrade of the pgdog named by --pidfile: send it\n"
	"                           SIGUSR2 and wait for the new binary (exit 0: upgraded,\n"
	"                           1: failed, the old one keeps serving, 2: none running)\n"
	"  -V, --version            print the version and exit\n"
	"  -h, --help               print this help and exit\n"
	"\n"
	"Commands:\n"
	"  hash [PASSWORD]          print a SCRAM-SHA-256 verifier of PASSWORD for users.ini\n"
	"                           (read from the first line of stdin when omitted)\n"
	"\n"
	"Signals: SIGINT graceful shutdown, SIGTERM fast shutdown, SIGHUP reload the\n"
	"configuration and reopen the log file, SIGUSR1 reopen the log file, SIGUSR2\n"
	"binary upgrade (start the binary again on the same sockets).\n";

static void
sv_main_usage(FILE *f)
{
	fputs(sv_usage_text, f);
}

int
sv_main_parse_options(struct sv_opts *o, int argc, char **argv)
{
	enum {
		OPT_DAEMON = 256,
		OPT_PIDFILE,
		OPT_CHECK_CONFIG,
		OPT_UPGRADE
	};
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "users", required_argument, NULL, 'u' },
		{ "database-url", required_argument, NULL, 'd' },
		{ "daemon", no_argument, NULL, OPT_DAEMON },
		{ "pidfile", required_argument, NULL, OPT_PIDFILE },
		{ "check-config", no_argument, NULL, OPT_CHECK_CONFIG },
		{ "upgrade", no_argument, NULL, OPT_UPGRADE },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	memset(o, 0, sizeof(*o));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+c:u:d:Vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->config_path = optarg;
			break;
		case 'u':
			o->users_path = optarg;
			break;
		case 'd':
			if (o->urls_cnt >= SV_MAIN_URLS_MAX) {
				fprintf(stderr, "pgdog: at most %d -d/--database-url options\n",
					SV_MAIN_URLS_MAX);
				return -1;
			}
			o->urls[o->urls_cnt++] = optarg;
			break;
		case OPT_DAEMON:
			o->is_daemon = true;
			break;
		case OPT_PIDFILE:
			o->pidfile = optarg;
			break;
		case OPT_CHECK_CONFIG:
			o->is_check_config = true;
			break;
		case OPT_UPGRADE:
			o->is_upgrade = true;
			break;
		case 'V':
			o->is_version = true;
			break;
		case 'h':
			o->is_help = true;
			break;
		default:
			/* getopt_long has named the bad option on stderr */
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pgdog: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (o->pidfile && !*o->pidfile) {
		fprintf(stderr, "pgdog: --pidfile needs a file name\n");
		return -1;
	}
	return 0;
}

/* ---- paths ---------------------------------------------------------------- */

/*
 * path made absolute against the current directory, without resolving
 * symbolic links: configuration directories swapped through a symlink (as
 * Kubernetes mounts ConfigMaps) must be re-read through the link on SIGHUP.
 * NULL on ENOMEM or when the current directory is unknown.
 */
static char *
sv_main_path_absolute(const char *path)
{
	char cwd[PATH_MAX];
	char *out;
	size_t n;

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	n = strlen(cwd) + 1 + strlen(path) + 1;
	out = malloc(n);
	if (out)
		snprintf(out, n, "%s/%s", cwd, path);
	return out;
}

/* Which file to load: an explicit one always, a default one only if it exists. */
static const char *
sv_main_path_to_load(const char *abs, bool is_default)
{
	if (!abs)
		return NULL;
	if (is_default && access(abs, F_OK) < 0)
		return NULL;
	return abs;
}

/* ---- fatal start-up errors ------------------------------------------------- */

/* Tell the --daemon parent how start-up ended: "" is success. */
static void
sv_main_ready(const char *msg)
{
	char buf[1024];
	int n;

	if (sv.ready_fd < 0)
		return;
	n = snprintf(buf, sizeof(buf), "%c%s", msg[0] ? 'E' : 'R', msg);
	if (n > (int)sizeof(buf) - 1)
		n = (int)sizeof(buf) - 1;
	while (write(sv.ready_fd, buf, (size_t)n) < 0 && errno == EINTR)
		;
	close(sv.ready_fd);
	sv.ready_fd = -1;
}

/* Remove what start-up created so far; no worker exists yet. */
static void
sv_main_cleanup(void)
{
	sv_listen_close(&sv.listen);
	sv_listen_unlink(&sv.listen);
	sv_metrics_close();
	if (sv.has_pidfile) {
		/* only our own: a successor may have written its pid meanwhile */
		FILE *f = fopen(sv.pidfile_abs, "re");
		long pid = 0;

		if (f) {
			if (fscanf(f, "%ld", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		if (pid == (long)getpid())
			(void)unlink(sv.pidfile_abs);
		sv.has_pidfile = false;
	}
	if (g_shm && sv.is_adopted_unready) {
		/* start-up failed after taking the segment: the old generation keeps it */
		atomic_store(&shm_ctl()->sv_pid, sv.adopted_from_pid);
		atomic_store(&g_shm->bank, 1 - atomic_load(&g_shm->bank));
		atomic_fetch_sub(&g_shm->handovers, 1);
		sv.is_adopted_unready = false;
	}
	if (g_shm)
		shm_destroy();
}

/* Start-up failed after the configuration was read: say why, undo, exit 2. */
static void PRINTF_LIKE(1, 2) NORETURN sv_main_fatal(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!sv.is_log_stderr)
		log_error(NULL, "%s", msg);
	if (sv.ready_fd >= 0)
		sv_main_ready(msg);
	else
		fprintf(stderr, "pgdog: %s\n", msg);
	sv_main_cleanup();
	exit(EXIT_FATAL);
}

/* ---- pidfile ---------------------------------------------------------------- */

/* Refuse to start while the pidfile names a live pgdog. */
static void
sv_main_pidfile_check(void)
{
	pid_t pid;

	/* an upgrade replaces the pid of the running pgdog, which is our parent */
	if (!sv.pidfile_abs || sv.is_upgrade_child)
		return;
	pid = proc_pidfile_read(sv.pidfile_abs);
	/* a pid reused by an unrelated process (reboot, container) does not count */
	if (proc_pid_is_named(pid, "pgdog"))
		sv_main_fatal("pidfile %s: pgdog is already running with pid %d", sv.pidfile_abs,
			      (int)pid);
}

/*
 * After a binary upgrade: put our pid in the pidfile in one step (write a
 * temporary file, rename it over), so a reader sees the old or the new pid,
 * never an empty file.
 */
static void
sv_main_pidfile_replace(void)
{
	char buf[32], tmp[PATH_MAX + 16];
	int fd, n;

	snprintf(tmp, sizeof(tmp), "%s.new", sv.pidfile_abs);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		sv_main_fatal("pidfile %s: %s", tmp, strerror(errno));
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)n) != n || close(fd) < 0 || rename(tmp, sv.pidfile_abs) < 0) {
		int err = errno;

		(void)unlink(tmp);
		sv_main_fatal("pidfile %s: %s", sv.pidfile_abs, strerror(err));
	}
	sv.has_pidfile = true;
}

/* Create the pidfile with our pid; a stale one is replaced. */
static void
sv_main_pidfile_write(void)
{
	char buf[32];
	int fd, n;

	if (!sv.pidfile_abs)
		return;
	if (sv.is_upgrade_child) {
		sv_main_pidfile_replace();
		return;
	}
	sv_main_pidfile_check();
	if (unlink(sv.pidfile_abs) < 0 && errno != ENOENT)
		sv_main_fatal("pidfile %s: cannot remove the stale file: %s", sv.pidfile_abs,
			      strerror(errno));
	/* O_EXCL: of two instances started at once, one fails here */
	fd = open(sv.pidfile_abs, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		sv_main_fatal("pidfile %s: %s", sv.pidfile_abs, strerror(errno));
	sv.has_pidfile = true;
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		int err = errno;

		close(fd);
		sv_main_fatal("pidfile %s: write: %s", sv.pidfile_abs, strerror(err));
	}
	if (close(fd) < 0)
		sv_main_fatal("pidfile %s: close: %s", sv.pidfile_abs, strerror(errno));
}

/* ---- daemon ------------------------------------------------------------------ */

/*
 * The parent of --daemon: wait until the daemon reports that it listens and
 * wrote its pidfile ("R"), or why it failed ("E<message>"), then exit with
 * the matching status, so `pgdog --daemon` and systemd's Type=forking see
 * start-up errors.
 */
static void NORETURN
sv_main_daemon_parent(int fd, pid_t child)
{
	char buf[1024] = "";
	size_t len = 0;
	ssize_t n;
	int st;

	while (waitpid(child, &st, 0) < 0 && errno == EINTR)
		;
	/* stop at "R": the workers forked before it hold copies of the pipe */
	while (len < sizeof(buf) - 1 && !(len > 0 && buf[0] == 'R')) {
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (len > 0 && buf[0] == 'R')
		_exit(EXIT_OK);
	if (len > 1)
		fprintf(stderr, "pgdog: %s\n", buf + 1);
	else
		fprintf(stderr, "pgdog: the daemon exited during start-up\n");
	_exit(EXIT_FATAL);
}

/* Detach: fork, setsid, fork again (never reacquire a terminal), chdir("/"). */
static void
sv_main_daemonize(void)
{
	int pipefd[2], devnull;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		sv_main_fatal("--daemon: pipe: %s", strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		sv_main_fatal("--daemon: fork: %s", strerror(errno));
	if (pid > 0) {
		close(pipefd[1]);
		sv_main_daemon_parent(pipefd[0], pid);
	}
	close(pipefd[0]);
	sv.ready_fd = pipefd[1];
	if (setsid() < 0)
		sv_main_fatal("--daemon: setsid: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		sv_main_fatal("--daemon: fork: %s", strerror(errno));
	if (pid > 0)
		_exit(EXIT_OK); /* the first parent reaps us and waits on the pipe */
	log_set_process("sv", -1);
	if (chdir("/") < 0)
		sv_main_fatal("--daemon: chdir /: %s", strerror(errno));
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		sv_main_fatal("--daemon: /dev/null: %s", strerror(errno));
	/* dup2 clears close-on-exec on 0, 1, 2, as it should */
	if (dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0)
		sv_main_fatal("--daemon: dup2: %s", strerror(errno));
	close(devnull);
}

/* ---- configuration ------------------------------------------------------------ */

/* "a.ini and b.ini and 2 -d URLs": where the configuration comes from. */
static void
sv_main_sources(char *out, size_t out_len, const char *config_path, const char *users_path)
{
	int n = 0;

	out[0] = '\0';
	if (config_path)
		n += snprintf(out + n, out_len - (size_t)n, "%s", config_path);
	if (users_path && (size_t)n < out_len)
		n += snprintf(out + n, out_len - (size_t)n, "%s%s", n ? " and " : "", users_path);
	if (sv.opts.urls_cnt && (size_t)n < out_len)
		n += snprintf(out + n, out_len - (size_t)n, "%s%zu -d URL%s", n ? " and " : "",
			      sv.opts.urls_cnt, sv.opts.urls_cnt > 1 ? "s" : "");
	if (n == 0)
		snprintf(out, out_len, "defaults only");
}

/* Append name to a ", "-separated list in buf (truncated with "..."). */
static void
sv_main_diff_add(char *buf, size_t len, const char *name)
{
	size_t n = strlen(buf);

	if (n + 8 >= len)
		return;
	if (n + strlen(name) + 2 + 4 >= len) {
		if (n < 3 || strcmp(buf + n - 3, "...") != 0)
			snprintf(buf + n, len - n, "%s...", n ? ", " : "");
		return;
	}
	snprintf(buf + n, len - n, "%s%s", n ? ", " : "", name);
}

static bool
sv_main_str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

#define SV_DIFF_INT(a, b, k, prefix, buf, len)                 \
	do {                                                   \
		if ((a)->k != (b)->k)                          \
			sv_main_diff_add(buf, len, prefix #k); \
	} while (0)
#define SV_DIFF_STR(a, b, k, prefix, buf, len)                 \
	do {                                                   \
		if (!sv_main_str_eq((a)->k, (b)->k))           \
			sv_main_diff_add(buf, len, prefix #k); \
	} while (0)

static bool
sv_main_db_differs(const struct config_database *a, const struct config_database *b)
{
	return !sv_main_str_eq(a->name, b->name) || !sv_main_str_eq(a->host, b->host) ||
	       a->port != b->port || !sv_main_str_eq(a->database_name, b->database_name) ||
	       a->role != b->role || a->shard != b->shard || !sv_main_str_eq(a->user, b->user) ||
	       !sv_main_str_eq(a->password, b->password) || a->pool_size != b->pool_size ||
	       a->min_pool_size != b->min_pool_size || a->idle_timeout != b->idle_timeout ||
	       a->server_lifetime != b->server_lifetime ||
	       a->server_lifetime_jitter != b->server_lifetime_jitter ||
	       a->has_pooler_mode != b->has_pooler_mode || a->pooler_mode != b->pooler_mode;
}

static bool
sv_main_user_differs(const struct config_user *a, const struct config_user *b)
{
	return !sv_main_str_eq(a->name, b->name) || !sv_main_str_eq(a->database, b->database) ||
	       !sv_main_str_eq(a->password, b->password) || a->pool_size != b->pool_size ||
	       a->min_pool_size != b->min_pool_size ||
	       !sv_main_str_eq(a->server_user, b->server_user) ||
	       !sv_main_str_eq(a->server_password, b->server_password) ||
	       a->has_pooler_mode != b->has_pooler_mode || a->pooler_mode != b->pooler_mode;
}

/* Sections added, removed or changed, by label: "databases.app (added)". */
static void
sv_main_diff_sections(const struct config *a, const struct config *b, char *buf, size_t len)
{
	char name[160];

	for (size_t i = 0; i < b->databases_cnt; i++) {
		const struct config_database *nb = &b->databases[i], *old = NULL;

		for (size_t j = 0; j < a->databases_cnt && !old; j++)
			if (sv_main_str_eq(a->databases[j].label, nb->label))
				old = &a->databases[j];
		if (!old || sv_main_db_differs(old, nb)) {
			snprintf(name, sizeof(name), "databases.%s%s", nb->label,
				 old ? "" : " (added)");
			sv_main_diff_add(buf, len, name);
		}
	}
	for (size_t j = 0; j < a->databases_cnt; j++) {
		bool is_kept = false;

		for (size_t i = 0; i < b->databases_cnt && !is_kept; i++)
			is_kept = sv_main_str_eq(a->databases[j].label, b->databases[i].label);
		if (!is_kept) {
			snprintf(name, sizeof(name), "databases.%s (removed)",
				 a->databases[j].label);
			sv_main_diff_add(buf, len, name);
		}
	}
	for (size_t i = 0; i < b->users_cnt; i++) {
		const struct config_user *nb = &b->users[i], *old = NULL;

		for (size_t j = 0; j < a->users_cnt && !old; j++)
			if (sv_main_str_eq(a->users[j].label, nb->label))
				old = &a->users[j];
		if (!old || sv_main_user_differs(old, nb)) {
			snprintf(name, sizeof(name), "users.%s%s", nb->label,
				 old ? "" : " (added)");
			sv_main_diff_add(buf, len, name);
		}
	}
	for (size_t j = 0; j < a->users_cnt; j++) {
		bool is_kept = false;

		for (size_t i = 0; i < b->users_cnt && !is_kept; i++)
			is_kept = sv_main_str_eq(a->users[j].label, b->users[i].label);
		if (!is_kept) {
			snprintf(name, sizeof(name), "users.%s (removed)", a->users[j].label);
			sv_main_diff_add(buf, len, name);
		}
	}
	if (!sv_main_str_eq(a->admin.name, b->admin.name) ||
	    !sv_main_str_eq(a->admin.user, b->admin.user) ||
	    !sv_main_str_eq(a->admin.password, b->admin.password))
		sv_main_diff_add(buf, len, "admin");
}

/* Names of everything that differs between a and b (never values: passwords). */
static void
sv_main_diff(const struct config *a, const struct config *b, char *buf, size_t len)
{
	buf[0] = '\0';
	SV_DIFF_STR(a, b, host, "", buf, len);
	SV_DIFF_INT(a, b, port, "", buf, len);
	SV_DIFF_INT(a, b, workers, "", buf, len);
	SV_DIFF_STR(a, b, unix_socket_dir, "", buf, len);
	SV_DIFF_INT(a, b, default_pool_size, "", buf, len);
	SV_DIFF_INT(a, b, min_pool_size, "", buf, len);
	SV_DIFF_INT(a, b, pooler_mode, "", buf, len);
	SV_DIFF_INT(a, b, auth_type, "", buf, len);
	SV_DIFF_INT(a, b, checkout_timeout, "", buf, len);
	SV_DIFF_INT(a, b, connect_timeout, "", buf, len);
	SV_DIFF_INT(a, b, idle_timeout, "", buf, len);
	SV_DIFF_INT(a, b, server_lifetime, "", buf, len);
	SV_DIFF_INT(a, b, client_login_timeout, "", buf, len);
	SV_DIFF_INT(a, b, shutdown_timeout, "", buf, len);
	SV_DIFF_INT(a, b, max_client_conn, "", buf, len);
	SV_DIFF_INT(a, b, max_message_len, "", buf, len);
	SV_DIFF_STR(a, b, server_reset_query, "", buf, len);
	SV_DIFF_INT(a, b, log_level, "", buf, len);
	SV_DIFF_STR(a, b, log_file, "", buf, len);
	SV_DIFF_INT(a, b, syslog, "", buf, len);
	SV_DIFF_STR(a, b, syslog_ident, "", buf, len);
	SV_DIFF_INT(a, b, log_connections, "", buf, len);
	SV_DIFF_INT(a, b, log_disconnections, "", buf, len);
	SV_DIFF_INT(a, b, log_pooler_errors, "", buf, len);
	SV_DIFF_INT(a, b, syslog_facility, "", buf, len);
	SV_DIFF_INT(a, b, server_lifetime_jitter, "", buf, len);
	SV_DIFF_INT(a, b, server_round_robin, "", buf, len);
	SV_DIFF_INT(a, b, server_reset_query_always, "", buf, len);
	SV_DIFF_INT(a, b, prepared_statements, "", buf, len);
	SV_DIFF_INT(a, b, prepared_statements_limit, "", buf, len);
	SV_DIFF_INT(a, b, query_timeout, "", buf, len);
	SV_DIFF_INT(a, b, client_idle_timeout, "", buf, len);
	SV_DIFF_INT(a, b, client_idle_in_transaction_timeout, "", buf, len);
	SV_DIFF_INT(a, b, rollback_timeout, "", buf, len);
	SV_DIFF_INT(a, b, pub_sub_channel_size, "", buf, len);
	SV_DIFF_INT(a, b, query_cache_limit, "", buf, len);
	sv_main_diff_sections(a, b, buf, len);
}

/*
 * Publish a validated configuration to the workers: pool indexes, then the
 * exact texts the supervisor parsed (see struct shm_cfg_blob), under the
 * control lock. Runtime overrides (SET) are cleared: the files are the truth
 * again; their names go to cleared (may be NULL), so that RELOAD says so.
 * -1 with a reason (capacity, size) and nothing published.
 */
static int
sv_main_publish(const struct config *next, const char *config_name, const char *config_text,
		const char *users_name, const char *users_text, bool is_upgrade, char *cleared,
		size_t cleared_len, char *err, size_t err_len)
{
	struct shm_ctl *ctl = shm_ctl();
	struct shm_cfg_blob *blob = shm_cfg_blob();
	const char *parts[4 + SV_MAIN_URLS_MAX];
	size_t parts_cnt = 0, len;
	uint32_t *map;
	char *out;
	int rc = -1;

	parts[parts_cnt++] = config_name ? config_name : "";
	parts[parts_cnt++] = users_name ? users_name : "";
	if (config_text)
		parts[parts_cnt++] = config_text;
	if (users_text)
		parts[parts_cnt++] = users_text;
	for (size_t i = 0; i < sv.opts.urls_cnt; i++)
		parts[parts_cnt++] = sv.opts.urls[i];
	len = sizeof(uint32_t) * next->pools_cnt;
	for (size_t i = 0; i < parts_cnt; i++)
		len += strlen(parts[i]) + 1;
	if (len > SHM_CFG_BLOB_MAX) {
		snprintf(
			err, err_len,
			"the configuration is %zu bytes; a reload can publish at most %d (restart pgdog to apply it)",
			len, SHM_CFG_BLOB_MAX);
		return -1;
	}
	shm_ctl_lock();
	map = (uint32_t *)(blob + 1);
	if (shm_pools_assign(next, ctl->cfg_gen + 1, map, err, err_len) < 0)
		goto out;
	out = (char *)(map + next->pools_cnt);
	for (size_t i = 0; i < parts_cnt; i++) {
		size_t n = strlen(parts[i]) + 1;

		memcpy(out, parts[i], n);
		out += n;
	}
	blob->len = (uint32_t)len;
	blob->pools_cnt = (uint32_t)next->pools_cnt;
	blob->has_config = config_text != NULL;
	blob->has_users = users_text != NULL;
	blob->urls_cnt = (uint32_t)sv.opts.urls_cnt;
	blob->publisher_pid = (int32_t)getpid();
	/* workers forked from now on start with this configuration and these indexes */
	if (shm_own_map_set(map, next->pools_cnt) < 0) {
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	ctl->cfg_gen++;
	/* a reload makes the files the truth again; an upgrade keeps the running SETs */
	if (cleared && cleared_len)
		cleared[0] = '\0';
	for (int i = 0; i < SHM_CTL_OVERRIDES && !is_upgrade; i++) {
		if (ctl->overrides[i] != SHM_CTL_UNSET && cleared &&
		    (size_t)i < config_live_cnt()) {
			size_t n = strlen(cleared);

			snprintf(cleared + n, cleared_len - n, "%s%s", n ? ", " : "",
				 config_live_name((size_t)i));
		}
		ctl->overrides[i] = SHM_CTL_UNSET;
	}
	rc = 0;
out:
	shm_ctl_unlock();
	return rc;
}

/* Tell the admin client(s) waiting on RELOAD how it went, and wake every worker. */
static void
sv_main_reload_answer(uint64_t req, bool ok, const char *msg)
{
	struct shm_ctl *ctl = shm_ctl();

	shm_ctl_lock();
	ctl->reload_done = req;
	ctl->reload_ok = ok;
	{
		/* cut a long verdict to the area's size (the log has it whole) */
		size_t n = strnlen(msg, sizeof(ctl->reload_msg) - 1);

		memcpy(ctl->reload_msg, msg, n);
		ctl->reload_msg[n] = '\0';
	}
	atomic_fetch_add(&ctl->gen, 1);
	shm_ctl_unlock();
	shm_ctl_wake_workers(0);
}

/*
 * SIGHUP (or RELOAD on the admin console): read both files once, validate
 * those bytes, and publish them to the workers, which apply the same bytes
 * (pgdog.8, RELOAD). A bad file is reported, in the log and to the admin
 * client, and changes nothing. Settings that need a restart keep their
 * running values and are reported.
 */
static void
sv_main_reload(void)
{
	const char *config_path = sv_main_path_to_load(sv.config_abs, !sv.opts.config_path);
	const char *users_path = sv_main_path_to_load(sv.users_abs, !sv.opts.users_path);
	struct config *next = NULL;
	char *config_text = NULL, *users_text = NULL;
	char err[1024], src[2048], changed[1024], restart[512], cleared[512], msg[5400];
	uint64_t req;

	shm_ctl_lock();
	req = shm_ctl()->reload_req;
	shm_ctl_unlock();
	sv_main_sources(src, sizeof(src), config_path, users_path);
	if ((config_path && config_file_read(config_path, &config_text, err, sizeof(err)) < 0) ||
	    (users_path && config_file_read(users_path, &users_text, err, sizeof(err)) < 0))
		goto fail;
	next = config_new();
	if (!next) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	if (config_load_texts(next, config_path, config_text, users_path, users_text, sv.opts.urls,
			      sv.opts.urls_cnt, err, sizeof(err)) < 0)
		goto fail;
	if (config_keep_restart_only(next, sv.cfg, restart, sizeof(restart)) < 0) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	sv_main_diff(sv.cfg, next, changed, sizeof(changed));
	if (sv_main_publish(next, config_path, config_text, users_path, users_text, false, cleared,
			    sizeof(cleared), err, sizeof(err)) < 0)
		goto fail;
	atomic_fetch_add(&g_shm->reloads, 1);
	config_free(sv.cfg);
	sv.cfg = next;
	g_cfg = next;
	g_log_level = next->log_level;
	snprintf(msg, sizeof(msg), "configuration reloaded from %s: applied; changed: %s%s%s%s%s%s",
		 src, changed[0] ? changed : "nothing",
		 cleared[0] ? "; runtime SET values replaced by the files': " : "", cleared,
		 restart[0] ? "; needs a restart, not applied: " : "", restart,
		 restart[0] ? " (running values kept)" : "");
	log_info(NULL, "%s", msg);
	config_file_free(config_text);
	config_file_free(users_text);
	sv_main_reload_answer(req, true, msg);
	return;
fail:
	snprintf(msg, sizeof(msg), "reload failed, keeping the current configuration: %s", err);
	log_error(NULL, "%s", msg);
	config_free(next);
	config_file_free(config_text);
	config_file_free(users_text);
	sv_main_reload_answer(req, false, msg);
}

/* ---- the supervision loop ------------------------------------------------------- */

static void
sv_main_begin_fast(const char *why)
{
	sv.phase = SV_FAST;
	sv.deadline_ms = sv_child_now_ms() + SV_MAIN_KILL_AFTER_MS;
	sv_child_stop_respawn();
	sv_listen_close(&sv.listen);
	sv_notify_send("STOPPING=1\nSTATUS=fast shutdown (%s)", why);
	log_info(NULL, "fast shutdown (%s): closing every connection, %d worker%s running", why,
		 sv_child_alive_cnt(), sv_child_alive_cnt() == 1 ? "" : "s");
	sv_child_signal_all(SIGTERM);
}

static void
sv_main_begin_graceful(void)
{
	sv.phase = SV_GRACEFUL;
	/* workers stop by themselves after shutdown_timeout; this is a safety net */
	sv.deadline_ms = sv_child_now_ms() + sv.cfg->shutdown_timeout + SV_MAIN_KILL_AFTER_MS;
	sv_child_stop_respawn();
	/* with our copies closed too, new connections are refused, not queued */
	sv_listen_close(&sv.listen);
	sv_notify_send("STOPPING=1\nSTATUS=graceful shutdown");
	log_info(
		NULL,
		"graceful shutdown (SIGINT): no new connections, waiting up to %d ms for clients to finish; SIGINT again or SIGTERM for a fast shutdown",
		sv.cfg->shutdown_timeout);
	sv_child_signal_all(SIGINT);
}

/* 1. child exits */
static void
sv_main_on_children(void)
{
	(void)sv_signal_take(SIGCHLD);
	/* reap even without the flag: waitpid(WNOHANG) is cheap and never misses */
	if (sv_child_reap(sv.phase == SV_RUNNING) == EXIT_FATAL && sv.phase == SV_RUNNING) {
		sv.exit_code = EXIT_FATAL;
		sv_main_begin_fast("a worker failed fatally");
	}
}

/* 2. shutdown: SIGINT, SIGTERM, and the deadlines of a shutdown under way */
static void
sv_main_on_shutdown(void)
{
	unsigned ints = sv_signal_take(SIGINT);
	unsigned terms = sv_signal_take(SIGTERM);
	int64_t now;

	for (; ints > 0; ints--) {
		if (sv.phase == SV_RUNNING)
			sv_main_begin_graceful();
		else if (sv.phase == SV_GRACEFUL || sv.phase == SV_UPGRADED)
			sv_main_begin_fast("second SIGINT");
	}
	if (terms > 0 && sv.phase != SV_FAST)
		sv_main_begin_fast("SIGTERM");
	if (sv.phase == SV_RUNNING)
		return;
	now = sv_child_now_ms();
	if (now < sv.deadline_ms || sv_child_alive_cnt() == 0)
		return;
	if (sv.phase == SV_GRACEFUL || sv.phase == SV_UPGRADED) {
		log_warn(NULL, "workers still running %d ms after the %s began",
			 sv.cfg->shutdown_timeout + SV_MAIN_KILL_AFTER_MS,
			 sv.phase == SV_GRACEFUL ? "graceful shutdown" : "binary upgrade");
		sv_main_begin_fast("graceful shutdown took too long");
	} else if (!sv.has_killed) {
		log_warn(NULL, "%d worker%s still running %d ms after SIGTERM: sending SIGKILL",
			 sv_child_alive_cnt(), sv_child_alive_cnt() == 1 ? "" : "s",
			 SV_MAIN_KILL_AFTER_MS);
		sv_child_signal_all(SIGKILL);
		sv.has_killed = true;
	}
}

/* 3. reload */
static void
sv_main_on_reload(bool is_hup)
{
	if (!is_hup)
		return;
	if (sv.phase != SV_RUNNING) {
		log_info(NULL, "SIGHUP during shutdown: configuration not reloaded");
		return;
	}
	sv_notify_reloading("reloading the configuration");
	sv_main_reload();
	sv_notify_send("READY=1\nSTATUS=serving");
}

/* 4. log reopen (logrotate): ours, then the workers' */
static void
sv_main_on_log_reopen(bool is_hup)
{
	bool is_usr1 = sv_signal_take(SIGUSR1) > 0;

	if (!is_hup && !is_usr1)
		return;
	if (log_reopen() < 0)
		log_errno(NULL, errno, "reopen log file %s, still writing to the old one",
			  sv.log_file_abs ? sv.log_file_abs : "?");
	sv_child_signal_all(SIGUSR1);
}

/*
 * 5. binary upgrade (SIGUSR2, pgdog --upgrade): start the new binary on our
 * sockets and wait until it serves. Then our workers stop accepting and
 * finish their clients (sv_upgrade.h says how), and we exit when they are
 * done; the new supervisor owns the pidfile, the Unix socket file and the
 * service manager's attention from now on. If it fails, nothing changes.
 */
static void
sv_main_on_upgrade(void)
{
	char err[1024];
	pid_t child;

	if (sv.phase != SV_RUNNING) {
		log_warn(NULL, "SIGUSR2 during %s: no binary upgrade",
			 sv.phase == SV_UPGRADED ? "an upgrade" : "shutdown");
		return;
	}
	{
		pid_t busy = 0;

		bool is_busy = g_shm && shm_other_bank_busy(&busy);

		/*
		 * The new workers take the other bank of slots: the previous
		 * generation must be gone. Its counters are taken over within a
		 * sweep (100 ms) of its exit: wait for that, not for its clients.
		 */
		for (int i = 0; i < 50 && is_busy && busy <= 0; i++) {
			struct timespec ts = { 0, 20 * 1000000L };

			nanosleep(&ts, NULL);
			is_busy = shm_other_bank_busy(&busy);
		}
		if (is_busy) {
			if (busy > 0)
				snprintf(
					err, sizeof(err),
					"the previous binary upgrade has not finished: a worker of the older generation (pid %d) still serves clients; retry once it has exited",
					(int)busy);
			else
				snprintf(
					err, sizeof(err),
					"the previous binary upgrade has not finished: a worker has not taken over the counters of its predecessor yet; retry in a moment");
			log_error(NULL, "binary upgrade refused, this generation keeps serving: %s",
				  err);
			sv_notify_send("STATUS=binary upgrade refused: %s", err);
			sv_upgrade_status_write(sv.pidfile_abs, "failed: %s", err);
			return;
		}
	}
	log_info(NULL, "binary upgrade (SIGUSR2): starting the new binary on the same sockets");
	sv_notify_send("STATUS=binary upgrade: starting the new binary");
	child = sv_upgrade_spawn(&sv.listen, err, sizeof(err));
	if (child < 0) {
		log_error(NULL, "binary upgrade failed, this generation keeps serving: %s", err);
		sv_notify_send("STATUS=binary upgrade failed: %s", err);
		sv_upgrade_status_write(sv.pidfile_abs, "failed: %s", err);
		return;
	}
	sv.phase = SV_UPGRADED;
	sv.successor = child;
	sv.deadline_ms = sv_child_now_ms() + sv.cfg->shutdown_timeout + SV_MAIN_KILL_AFTER_MS;
	sv_child_stop_respawn();
	/* the new generation holds the same sockets: closing ours refuses nothing */
	sv_listen_close(&sv.listen);
	sv.listen.has_unix_file = false;
	/* the new supervisor is the main process now: it talks to the service manager */
	sv_notify_close();
	log_info(
		NULL,
		"binary upgrade: new supervisor pid %d is serving; %d old worker%s stop accepting and finish their clients (up to shutdown_timeout %d ms)",
		(int)child, sv_child_alive_cnt(), sv_child_alive_cnt() == 1 ? "" : "s",
		sv.cfg->shutdown_timeout);
	sv_child_signal_all(SIGUSR2);
	sv_upgrade_status_write(sv.pidfile_abs, "ok %d", (int)child);
}

/* How long the loop may sleep: until the next restart or deadline, at most 1 s. */
static int
sv_main_sleep_ms(void)
{
	int64_t ms = 1000, next = sv_child_next_start_in_ms();

	if (next >= 0 && next < ms)
		ms = next;
	/* after SIGKILL nothing is left to time: SIGCHLD wakes us */
	if (sv.phase == SV_GRACEFUL || sv.phase == SV_UPGRADED ||
	    (sv.phase == SV_FAST && !sv.has_killed)) {
		int64_t left = sv.deadline_ms - sv_child_now_ms();

		if (left < ms)
			ms = left;
	}
	return ms < 0 ? 0 : (int)ms;
}

static void NORETURN
sv_main_loop(void)
{
	for (;;) {
		bool is_hup;

		sv_main_on_children();
		sv_main_on_shutdown();
		if (sv.phase != SV_RUNNING && sv_child_alive_cnt() == 0)
			break;
		is_hup = sv_signal_take(SIGHUP) > 0;
		sv_main_on_reload(is_hup);
		sv_main_on_log_reopen(is_hup);
		if (sv_signal_take(SIGUSR2) > 0)
			sv_main_on_upgrade();
		if (sv.phase == SV_RUNNING)
			sv_child_start_missing();
		/* workers of an older generation whose supervisor died without reaping them */
		if (sv.phase == SV_RUNNING)
			shm_retire_orphans();
		sv_metrics_wait(sv_main_sleep_ms()); /* serves /metrics while it waits */
	}
	sv_main_cleanup();
	if (sv.phase == SV_UPGRADED)
		log_info(NULL, "old generation done: pgdog continues as pid %d", (int)sv.successor);
	else
		log_info(NULL, "pgdog stopped (exit status %d)", sv.exit_code);
	sv_notify_close();
	log_close();
	config_free(sv.cfg);
	g_cfg = NULL;
	free(sv.config_abs);
	free(sv.users_abs);
	free(sv.pidfile_abs);
	free(sv.log_file_abs);
	exit(sv.exit_code);
}

/* ---- start-up ------------------------------------------------------------------ */

/* `pgdog hash [PASSWORD]`: print a SCRAM-SHA-256 verifier. */
static int
sv_main_hash(int argc, char **argv)
{
	char out[512];
	char *line = NULL;
	size_t cap = 0;
	const char *pw;
	ssize_t n;
	int rc = EXIT_OK;

	if (argc > 3) {
		sv_main_usage(stderr);
		return EXIT_FATAL;
	}
	if (argc == 3) {
		pw = argv[2];
	} else {
		n = getline(&line, &cap, stdin);
		if (n < 0) {
			fprintf(stderr, "pgdog hash: no password given (argument or stdin)\n");
			free(line);
			return EXIT_FATAL;
		}
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		pw = line;
	}
	if (!*pw) {
		fprintf(stderr, "pgdog hash: the password must not be empty\n");
		rc = EXIT_FATAL;
	} else if (strlen(pw) > AUTH_PASSWORD_MAX) {
		fprintf(stderr, "pgdog hash: the password is longer than %d bytes\n",
			AUTH_PASSWORD_MAX);
		rc = EXIT_FATAL;
	} else if (auth_scram_verifier(pw, AUTH_SCRAM_ITERATIONS, out, sizeof(out)) < 0) {
		fprintf(stderr, "pgdog hash: cannot compute the verifier\n");
		rc = EXIT_FATAL;
	} else {
		printf("%s\n", out);
	}
	if (line) {
		secret_wipe(line, cap);
		free(line);
	}
	return rc;
}

/* Absolute paths of everything we may touch after chdir("/"). */
static void
sv_main_resolve_paths(void)
{
	const char *c = sv.opts.config_path ? sv.opts.config_path : SV_MAIN_DEFAULT_INI;
	const char *u = sv.opts.users_path ? sv.opts.users_path : SV_MAIN_DEFAULT_USERS;

	sv.config_abs = sv_main_path_absolute(c);
	sv.users_abs = sv_main_path_absolute(u);
	if (!sv.config_abs || !sv.users_abs) {
		fprintf(stderr, "pgdog: cannot make %s and %s absolute: %s\n", c, u,
			strerror(errno));
		exit(EXIT_FATAL);
	}
	if (sv.opts.pidfile) {
		sv.pidfile_abs = sv_main_path_absolute(sv.opts.pidfile);
		if (!sv.pidfile_abs) {
			fprintf(stderr, "pgdog: cannot make %s absolute: %s\n", sv.opts.pidfile,
				strerror(errno));
			exit(EXIT_FATAL);
		}
	}
}

/*
 * Load the configuration named on the command line. Messages name the
 * files as the user wrote them. --check-config ends here.
 */
static void
sv_main_load_config(void)
{
	const char *config_path =
		sv.opts.config_path
			? sv.opts.config_path
			: (sv_main_path_to_load(sv.config_abs, true) ? SV_MAIN_DEFAULT_INI : NULL);
	const char *users_path =
		sv.opts.users_path
			? sv.opts.users_path
			: (sv_main_path_to_load(sv.users_abs, true) ? SV_MAIN_DEFAULT_USERS : NULL);
	char err[1024];

	sv.cfg = config_new();
	if (!sv.cfg) {
		fprintf(stderr, "pgdog: out of memory\n");
		exit(EXIT_FATAL);
	}
	if (sv.is_upgrade_child) {
		/* the bytes parsed here are the ones published to the shared segment */
		sv.start_config_name = config_path;
		sv.start_users_name = users_path;
		if ((config_path &&
		     config_file_read(config_path, &sv.start_config_text, err, sizeof(err)) < 0) ||
		    (users_path &&
		     config_file_read(users_path, &sv.start_users_text, err, sizeof(err)) < 0) ||
		    config_load_texts(sv.cfg, config_path, sv.start_config_text, users_path,
				      sv.start_users_text, sv.opts.urls, sv.opts.urls_cnt, err,
				      sizeof(err)) < 0) {
			fprintf(stderr, "pgdog: %s\n", err);
			sv_main_ready(err);
			config_free(sv.cfg);
			exit(EXIT_FATAL);
		}
	} else if (config_load(sv.cfg, config_path, users_path, sv.opts.urls, sv.opts.urls_cnt, err,
			       sizeof(err)) < 0) {
		fprintf(stderr, "pgdog: %s\n", err);
		/* a binary upgrade: the old supervisor logs why and keeps serving */
		sv_main_ready(err);
		config_free(sv.cfg);
		exit(sv.opts.is_check_config ? 1 : EXIT_FATAL);
	}
	if (sv.opts.is_check_config) {
		printf("configuration OK\n");
		config_free(sv.cfg);
		exit(EXIT_OK);
	}
	g_cfg = sv.cfg;
}

/* log_level, and log_file / syslog / stderr; a daemon without either uses syslog. */
static void
sv_main_open_log(void)
{
	const struct config *cfg = sv.cfg;
	bool has_file = cfg->log_file && *cfg->log_file;
	bool use_syslog = cfg->syslog || (sv.opts.is_daemon && !has_file);

	g_log_level = cfg->log_level;
	if (has_file && !use_syslog) {
		sv.log_file_abs = sv_main_path_absolute(cfg->log_file);
		if (!sv.log_file_abs) {
			fprintf(stderr, "pgdog: log_file %s: %s\n", cfg->log_file, strerror(errno));
			exit(EXIT_FATAL);
		}
	}
	log_set_facility(cfg->syslog_facility);
	if (log_open(sv.log_file_abs, use_syslog, cfg->syslog_ident) < 0) {
		fprintf(stderr, "pgdog: log_file %s: %s\n", sv.log_file_abs, strerror(errno));
		exit(EXIT_FATAL);
	}
	sv.is_log_stderr = !use_syslog && !sv.log_file_abs;
}

/*
 * Binary upgrade: take over the old generation's segment (shm_adopt) and
 * publish our configuration there, so pools keep their indexes (the global
 * cap, cancel keys and counters carry over). When the segment cannot be
 * shared, say why and leave g_shm NULL: the caller creates a fresh one.
 */
static void
sv_main_adopt_segment(int fd)
{
	char err[1024];
	int32_t old_sv;

	if (shm_adopt(fd, sv.cfg, err, sizeof(err)) < 0) {
		log_warn(
			NULL,
			"binary upgrade: not sharing the running pgdog's shared memory segment (%s): starting with a fresh one; until the old generation is done each generation enforces pool_size on its own, cancel requests reach only its own clients and the statistics start from zero",
			err);
		close(fd);
		return;
	}
	/*
	 * First the pid, then the configuration: an old worker applies only
	 * what its own supervisor published (wk_ctl.c), so it never takes ours.
	 */
	old_sv = atomic_exchange(&shm_ctl()->sv_pid, (int32_t)getpid());
	if (sv_main_publish(sv.cfg, sv.start_config_name, sv.start_config_text, sv.start_users_name,
			    sv.start_users_text, true, NULL, 0, err, sizeof(err)) < 0) {
		log_warn(
			NULL,
			"binary upgrade: the configuration does not fit the running pgdog's shared memory segment (%s): starting with a fresh one",
			err);
		/* give the bank back: the old generation keeps serving from it */
		atomic_store(&shm_ctl()->sv_pid, old_sv);
		atomic_store(&g_shm->bank, 1 - atomic_load(&g_shm->bank));
		atomic_fetch_sub(&g_shm->handovers, 1);
		shm_destroy();
		return;
	}
	sv.is_adopted_unready = true;
	sv.adopted_from_pid = old_sv;
	log_info(
		NULL,
		"binary upgrade: sharing the running pgdog's shared memory segment (handover %llu): workers take slots %u-%u",
		(unsigned long long)atomic_load(&g_shm->handovers), shm_slot_base(),
		shm_slot_base() + g_shm->workers_per_gen - 1);
}

int
main(int argc, char **argv)
{
	char err[1024], where[256];
	int shm_fd = -1;

	log_set_process("sv", -1);
	sv_listen_init(&sv.listen);
	if (secret_init() < 0) {
		fprintf(stderr, "pgdog: cannot initialise libsodium\n");
		return EXIT_FATAL;
	}
	if (argc >= 2 && strcmp(argv[1], "hash") == 0)
		return sv_main_hash(argc, argv);
	if (sv_main_parse_options(&sv.opts, argc, argv) < 0) {
		sv_main_usage(stderr);
		return EXIT_FATAL;
	}
	if (sv.opts.is_help) {
		sv_main_usage(stdout);
		return EXIT_OK;
	}
	if (sv.opts.is_version) {
		printf("pgdog %s\n", PACKAGE_VERSION);
		return EXIT_OK;
	}
	if (sv.opts.is_upgrade)
		return sv_upgrade_command(sv.opts.pidfile, SV_UPGRADE_TIMEOUT_MS + 5000);
	if (sv_upgrade_init(argc, argv) < 0) {
		fprintf(stderr, "pgdog: cannot read /proc/self/exe or the working directory: %s\n",
			strerror(errno));
		return EXIT_FATAL;
	}
	sv.is_upgrade_child = sv_upgrade_is_child();
	if (sv.is_upgrade_child)
		sv.ready_fd = sv_upgrade_take_ready_fd();

	sv_main_resolve_paths();
	sv_main_load_config();
	sv_main_open_log();
	if (sv_notify_init(err, sizeof(err)) < 0)
		sv_main_fatal("%s", err);
	sv_main_pidfile_check();
	if (sv.is_upgrade_child) {
		if (sv_upgrade_adopt(&sv.listen, sv.cfg, &shm_fd, err, sizeof(err)) < 0)
			sv_main_fatal("binary upgrade: %s", err);
	} else if (sv_listen_open(&sv.listen, sv.cfg, err, sizeof(err)) < 0) {
		sv_main_fatal("%s", err);
	}
	/* before the segment: an upgrade that fails here leaves it to the old generation */
	if (sv_metrics_open(sv.cfg, err, sizeof(err)) < 0)
		sv_main_fatal("%s", err);
	if (shm_fd >= 0)
		sv_main_adopt_segment(shm_fd);
	else if (sv.is_upgrade_child)
		log_warn(
			NULL,
			"binary upgrade: the running pgdog passed no shared memory segment (an older binary): starting with a fresh one; until the old generation is done each generation enforces pool_size on its own");
	if (!g_shm) {
		if (shm_create(sv.cfg, err, sizeof(err)) < 0)
			sv_main_fatal("shared memory: %s", err);
		shm_pools_init(sv.cfg);
	}
	config_file_free(sv.start_config_text);
	config_file_free(sv.start_users_text);
	sv.start_config_text = sv.start_users_text = NULL;
	/* after an upgrade we are already detached: the old daemon's child */
	if (sv.opts.is_daemon && !sv.is_upgrade_child)
		sv_main_daemonize();
	sv_main_pidfile_write();
	/* after --daemon forked: RELOAD and SHUTDOWN on the admin console signal this pid */
	atomic_store(&shm_ctl()->sv_pid, (int32_t)getpid());
	if (sv_signal_init() < 0)
		sv_main_fatal("signal handlers: %s", strerror(errno));
	sv_child_init(sv.cfg->workers, &sv.listen);

	snprintf(where, sizeof(where), "%s%s%s", sv.listen.tcp_name,
		 sv.listen.unix_path[0] ? " and " : "", sv.listen.unix_path);
	log_info(NULL, "pgdog %s starting%s: pid %d, listening on %s, %d worker%s", PACKAGE_VERSION,
		 sv.is_upgrade_child ? " (binary upgrade, inherited sockets)" : "", (int)getpid(),
		 where, sv.cfg->workers, sv.cfg->workers == 1 ? "" : "s");
	/* ready means serving: the workers exist before anyone is told */
	sv_child_start_missing();
	sv_main_ready("");
	sv.is_adopted_unready = false;
	if (sv.is_upgrade_child)
		sv_notify_send("MAINPID=%d\nREADY=1\nSTATUS=serving on %s (after a binary upgrade)",
			       (int)getpid(), where);
	else
		sv_notify_send("READY=1\nSTATUS=serving on %s", where);
	sv_main_loop();
}
