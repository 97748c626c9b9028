/*
 * proc.c: reading small files about processes (see proc.h).
 * Runs in: both processes.
 */
#include "shared/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

ssize_t
proc_read_small(const char *path, char *buf, size_t cap)
{
	ssize_t n;
	int fd, saved;

	if (cap < 2) {
		errno = EINVAL;
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, cap - 1);
	saved = errno;
	close(fd);
	if (n <= 0) {
		errno = n < 0 ? saved : EIO;
		return -1;
	}
	buf[n] = '\0';
	return n;
}

pid_t
proc_pidfile_read(const char *path)
{
	char buf[32], *end;
	long pid;

	if (proc_read_small(path, buf, sizeof(buf)) < 0)
		return 0;
	errno = 0;
	pid = strtol(buf, &end, 10);
	if (errno || end == buf || pid <= 0 || pid > INT_MAX)
		return 0;
	return (pid_t)pid;
}

bool
proc_pid_is_named(pid_t pid, const char *prefix)
{
	char path[64], comm[64];

	if (pid <= 0 || pid == getpid())
		return false;
	if (kill(pid, 0) < 0 && errno != EPERM)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	if (proc_read_small(path, comm, sizeof(comm)) < 0)
		return true; /* alive, name unknown */
	return strncmp(comm, prefix, strlen(prefix)) == 0;
}
