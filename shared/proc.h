/*
 * proc.h: small files the processes read about themselves and each other:
 * /proc/<pid>/statm (stats_rss_bytes), /proc/<pid>/comm, and the pid in a
 * pidfile. One
 * place for the open/read/terminate dance that the statistics, the pidfile
 * check and the upgrade command all need.
 * Runs in: both processes (no sockets, no logging).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shared/compiler.h"

/*
 * Read at most cap - 1 bytes of path into buf and NUL-terminate them.
 * Returns the bytes read (> 0), or -1 if the file cannot be opened, read, or
 * is empty (errno set, EIO for empty).
 */
ssize_t proc_read_small(const char *path, char *buf, size_t cap) MUST_CHECK;

/* The pid written in a pidfile (decimal, optional newline); 0 if none can be read. */
pid_t proc_pidfile_read(const char *path) MUST_CHECK;

/*
 * Whether pid is a running process other than the caller whose name
 * (/proc/<pid>/comm) starts with prefix. A live pid whose name cannot be
 * read counts as a match (better safe); a pid reused by an unrelated
 * program does not.
 */
bool proc_pid_is_named(pid_t pid, const char *prefix);
