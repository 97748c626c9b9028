/*
 * log.c: leveled logging (see log.h).
 * Runs in: both processes. Never allocates; formats into a stack buffer and
 * writes the whole line at once.
 *
 * syslog: we do not use libc's syslog(), whose send() on /dev/log blocks
 * while the syslog daemon is not reading, and so would stop a worker's event
 * loop (and its SIGTERM handling) for as long as syslogd stalls. We send the
 * same RFC 3164 datagrams ourselves on a non-blocking socket; a line that
 * cannot go out at once is dropped and counted, and the count goes out
 * before the next line that does.
 */
#include "shared/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LOG_SYSLOG_PATH_DEFAULT "/dev/log"

enum log_level g_log_level = LOG_LVL_INFO;

static char log_tag[32] = "pgdog";
static int log_fd = 2;
static bool log_use_syslog;
static int log_facility = LOG_DAEMON;
static char log_path[4096];

/* our syslog socket: fd -1 until log_open(); may be unconnected (retried) */
static int log_sys_fd = -1;
static struct sockaddr_un log_sys_addr;
static char log_ident[64] = "pgdog";
static char log_role[16] = "pgdog"; /* "sv" or "wk3": the role of log_tag */
static int log_pid;
static time_t log_sys_retry_s;           /* CLOCK_MONOTONIC second of the last connect */
static uint64_t log_sys_pending;         /* dropped since the last line that went out */
static uint64_t log_sys_dropped;         /* dropped by this process, ever */
static bool log_sys_is_full;             /* the last drop was EAGAIN, not a dead socket */
static _Atomic uint64_t *log_sys_shared; /* where to count drops for others to see */

static const char *const log_names[] = { "ERROR", "WARN", "INFO", "DEBUG", "NOISE" };
static const char *const log_parse_names[] = { "error", "warn", "info", "debug", "noise" };

int
log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(log_parse_names); i++) {
		if (strcasecmp(s, log_parse_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = LOG_LVL_WARN;
		return 0;
	}
	return -1;
}

const char *
log_level_name(enum log_level l)
{
	return (unsigned)l < ARRAY_SIZE(log_names) ? log_names[l] : "?";
}

void
log_set_process(const char *role, int slot)
{
	log_pid = (int)getpid();
	if (slot >= 0) {
		snprintf(log_tag, sizeof(log_tag), "%s%d[%d]", role, slot, log_pid);
		snprintf(log_role, sizeof(log_role), "%s%d", role, slot);
	} else {
		snprintf(log_tag, sizeof(log_tag), "%s[%d]", role, log_pid);
		snprintf(log_role, sizeof(log_role), "%s", role);
	}
	/* a new process (worker, daemon child): the parent's drops are not ours */
	log_sys_pending = 0;
	log_sys_dropped = 0;
	log_sys_shared = NULL;
}

void
log_set_drop_counter(_Atomic uint64_t *counter)
{
	log_sys_shared = counter;
}

uint64_t
log_dropped_total(void)
{
	return log_sys_dropped;
}

static time_t
log_mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/*
 * (Re)create the socket and connect it. A failed connect keeps the fd: the
 * next send fails with ENOTCONN/EDESTADDRREQ and we try again a second later.
 */
static void
log_sys_connect(void)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	log_sys_retry_s = log_mono_s();
	if (fd < 0)
		return; /* keep the old one, if any; retried a second later */
	if (log_sys_fd >= 0)
		close(log_sys_fd);
	log_sys_fd = fd;
	(void)connect(fd, (struct sockaddr *)&log_sys_addr, sizeof(log_sys_addr));
}

static void
log_sys_open(const char *ident)
{
	const char *path = getenv("PGDOG_SYSLOG_PATH");

	if (!path || !*path)
		path = LOG_SYSLOG_PATH_DEFAULT;
	memset(&log_sys_addr, 0, sizeof(log_sys_addr));
	log_sys_addr.sun_family = AF_UNIX;
	snprintf(log_sys_addr.sun_path, sizeof(log_sys_addr.sun_path), "%s", path);
	snprintf(log_ident, sizeof(log_ident), "%s", ident && *ident ? ident : "pgdog");
	if (!log_pid)
		log_pid = (int)getpid();
	log_sys_connect();
}

/* One datagram, never waiting: true if the kernel took it. */
static bool
log_sys_send(const char *buf, size_t len)
{
	for (int tries = 0; tries < 3; tries++) {
		int e;

		if (log_sys_fd >= 0 && send(log_sys_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
			return true;
		e = log_sys_fd >= 0 ? errno : ENOTCONN;
		if (e == EINTR)
			continue;
		if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
			log_sys_is_full = true;
			return false;
		}
		log_sys_is_full = false;
		/* syslogd restarted (or is not up yet): reconnect, at most once a second */
		if (log_mono_s() == log_sys_retry_s)
			return false;
		log_sys_connect();
	}
	return false;
}

/* "<PRI>Mmm dd hh:mm:ss ident[pid]: " as libc's syslog() writes it (local time). */
static size_t
log_sys_header(char *buf, size_t cap, int pri)
{
	time_t now = time(NULL);
	struct tm tm;
	size_t n;
	int r;

	r = snprintf(buf, cap, "<%d>", pri);
	n = r > 0 ? (size_t)r : 0;
	localtime_r(&now, &tm);
	n += strftime(buf + n, cap - n, "%h %e %T ", &tm);
	r = snprintf(buf + n, cap - n, "%s[%d]: %s ", log_ident, log_pid, log_role);
	n += r > 0 ? (size_t)r : 0;
	return n < cap ? n : cap - 1;
}

static void
log_sys_drop(void)
{
	log_sys_pending++;
	log_sys_dropped++;
	if (log_sys_shared)
		atomic_fetch_add_explicit(log_sys_shared, 1, memory_order_relaxed);
}

/* The line (already prefixed by log_sys_header) goes out, or is counted. */
static void
log_sys_line(const char *line, size_t len)
{
	if (log_sys_pending) {
		char note[256];
		size_t n = log_sys_header(note, sizeof(note), log_facility | LOG_WARNING);
		int r = snprintf(note + n, sizeof(note) - n,
				 "WARN: %llu log lines dropped: syslog socket %s",
				 (unsigned long long)log_sys_pending,
				 log_sys_is_full ? "full" : "unavailable");

		n += r > 0 ? (size_t)r : 0;
		if (n >= sizeof(note))
			n = sizeof(note) - 1;
		if (!log_sys_send(note, n)) {
			log_sys_drop();
			return;
		}
		log_sys_pending = 0;
	}
	if (!log_sys_send(line, len))
		log_sys_drop();
}

static int
log_open_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

void
log_set_facility(int facility)
{
	log_facility = facility;
}

int
log_open(const char *path, bool use_syslog, const char *ident)
{
	if (use_syslog) {
		log_sys_open(ident);
		log_use_syslog = true;
		return 0;
	}
	if (path && *path) {
		int fd = log_open_file(path);

		if (fd < 0)
			return -1;
		if (log_fd > 2)
			close(log_fd);
		log_fd = fd;
		snprintf(log_path, sizeof(log_path), "%s", path);
	}
	log_use_syslog = false;
	return 0;
}

int
log_reopen(void)
{
	int fd;

	if (log_use_syslog || !log_path[0])
		return 0;
	fd = log_open_file(log_path);
	if (fd < 0)
		return -1;
	if (log_fd > 2)
		close(log_fd);
	log_fd = fd;
	return 0;
}

void
log_close(void)
{
	if (log_sys_fd >= 0)
		close(log_sys_fd);
	log_sys_fd = -1;
	if (log_fd > 2)
		close(log_fd);
	log_fd = 2;
	log_use_syslog = false;
}

void
log_write(enum log_level l, const struct log_ctx *ctx, int err, const char *fmt, ...)
{
	char line[2048];
	size_t n = 0;
	int r;
	va_list ap;

	if (l > g_log_level)
		return;
	if (log_use_syslog) {
		static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG };

		n = log_sys_header(line, sizeof(line), log_facility | prio[l]);
	} else {
		struct timeval tv;
		struct tm tm;

		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
		r = snprintf(line + n, sizeof(line) - n, ".%03d UTC %s ", (int)(tv.tv_usec / 1000),
			     log_tag);
		n += r > 0 ? (size_t)r : 0;
	}
	r = snprintf(line + n, sizeof(line) - n, "%s: ", log_names[l]);
	n += r > 0 ? (size_t)r : 0;
	if (ctx && n < sizeof(line)) {
		r = snprintf(line + n, sizeof(line) - n, "%s %s/%s %s: ", ctx->id,
			     ctx->user ? ctx->user : "-", ctx->db ? ctx->db : "-",
			     ctx->peer[0] ? ctx->peer : "-");
		n += r > 0 ? (size_t)r : 0;
	}
	if (n < sizeof(line)) {
		va_start(ap, fmt);
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
		n += r > 0 ? (size_t)r : 0;
	}
	if (err && n < sizeof(line)) {
		r = snprintf(line + n, sizeof(line) - n, ": %s", strerror(err));
		n += r > 0 ? (size_t)r : 0;
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	if (log_use_syslog) {
		log_sys_line(line, n);
		return;
	}
	line[n++] = '\n';
	while (write(log_fd, line, n) < 0 && errno == EINTR)
		;
}

void
compiler_assert_fail(const char *expr, const char *file, int line)
{
	log_write(LOG_LVL_ERROR, NULL, 0, "assertion failed: %s at %s:%d", expr, file, line);
#ifdef PGDOG_DEBUG
	abort();
#endif
}
