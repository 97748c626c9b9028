/*
 * log.h: leveled logging for the supervisor and the workers.
 * Runs in: both processes. Each line is written with one write() to an
 * O_APPEND fd (or sent as one syslog datagram), so processes sharing a file
 * never interleave. Lines name the process: "sv[1234]" or "wk3[1240]"; a
 * syslog line carries "ident[pid]: sv" or "ident[pid]: wk3".
 * Logging never blocks on syslog: a line the syslog socket cannot take at
 * once is dropped and counted (log_dropped_total), and "N log lines dropped"
 * goes out before the next line that is sent.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/compiler.h"

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
	LOG_LVL_NOISE,
};

/*
 * Identity of a connection for log lines: embedded in every client and server
 * object and passed as ctx. id is "w3c1872" (worker slot + per-worker counter).
 */
struct log_ctx {
	char id[24];
	char peer[64];
	const char *user; /* borrowed: owned by the configuration */
	const char *db;   /* borrowed: owned by the configuration */
};

extern enum log_level g_log_level;

/* Parse "error".."noise"; returns -1 for anything else. */
int log_level_parse(const char *s, enum log_level *out) MUST_CHECK;
const char *log_level_name(enum log_level l);

/* Set the process tag: log_set_process("sv", -1) or log_set_process("wk", 3). */
void log_set_process(const char *role, int slot);

/*
 * Also add every syslog line this process drops to *counter (a shared-memory
 * figure others read); NULL: only to log_dropped_total(). log_set_process()
 * clears it and the counts, as a new process's drops are its own.
 */
void log_set_drop_counter(_Atomic uint64_t *counter);
/* Syslog lines this process dropped because the socket could not take them. */
uint64_t log_dropped_total(void);

/*
 * Send lines to a file (opened O_APPEND|O_CLOEXEC, created 0640), to syslog
 * (an AF_UNIX datagram socket on /dev/log, or $PGDOG_SYSLOG_PATH, non-blocking;
 * reconnected at most once a second when syslogd restarted), or to stderr
 * (path NULL, use_syslog false). Returns -1 with errno if the file cannot be
 * opened; the previous destination stays in effect.
 */
/* The syslog facility log_open() uses from now on (a LOG_* value; LOG_DAEMON by default). */
void log_set_facility(int facility);
int log_open(const char *path, bool use_syslog, const char *ident) MUST_CHECK;
/* Re-open the log file (after logrotate); keeps the old fd on failure. */
int log_reopen(void);
void log_close(void);

void log_write(enum log_level l, const struct log_ctx *ctx, int err, const char *fmt, ...)
	PRINTF_LIKE(4, 5);

#define log_error(ctx, ...) log_write(LOG_LVL_ERROR, ctx, 0, __VA_ARGS__)
#define log_warn(ctx, ...)  log_write(LOG_LVL_WARN, ctx, 0, __VA_ARGS__)
#define log_info(ctx, ...)                                            \
	do {                                                          \
		if (g_log_level >= LOG_LVL_INFO)                      \
			log_write(LOG_LVL_INFO, ctx, 0, __VA_ARGS__); \
	} while (0)
#define log_debug(ctx, ...)                                            \
	do {                                                           \
		if (UNLIKELY(g_log_level >= LOG_LVL_DEBUG))            \
			log_write(LOG_LVL_DEBUG, ctx, 0, __VA_ARGS__); \
	} while (0)
#define log_noise(ctx, ...)                                            \
	do {                                                           \
		if (UNLIKELY(g_log_level >= LOG_LVL_NOISE))            \
			log_write(LOG_LVL_NOISE, ctx, 0, __VA_ARGS__); \
	} while (0)
/* An error with errno: "msg: strerror(err)". */
#define log_errno(ctx, err, ...)      log_write(LOG_LVL_ERROR, ctx, err, __VA_ARGS__)
#define log_warn_errno(ctx, err, ...) log_write(LOG_LVL_WARN, ctx, err, __VA_ARGS__)
