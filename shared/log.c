/*
 * log.c: leveled logging (see log.h).
 * Runs in: both processes. Never allocates; formats into a stack buffer and
 * writes the whole line at once.
 */
#include "shared/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum log_level g_log_level = LOG_LVL_INFO;

static char log_tag[32] = "pgdog";
static int log_fd = 2;
static bool log_use_syslog;
static int log_facility = LOG_DAEMON;
static char log_path[4096];

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
	if (slot >= 0)
		snprintf(log_tag, sizeof(log_tag), "%s%d[%d]", role, slot, (int)getpid());
	else
		snprintf(log_tag, sizeof(log_tag), "%s[%d]", role, (int)getpid());
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
		openlog(ident ? ident : "pgdog", LOG_PID | LOG_NDELAY, log_facility);
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
	if (log_use_syslog)
		closelog();
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
	if (!log_use_syslog) {
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
		static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG };

		line[n] = '\0';
		syslog(prio[l], "%s", line);
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
