/*
 * upgrade_delay.c: an LD_PRELOAD library for pgdog in it_upgrade.c.
 * With PGDOG_TEST_UPGRADE_OK_DELAY_MS set when a process starts (and taken
 * out of its environment, so that the binary an upgrade starts has not), a
 * rename() that puts an upgrade answer starting "ok " in place
 * (sv_upgrade_status_write, in the supervisor an upgrade replaces) returns
 * at once, and a child process writes that answer that much later. With
 * PGDOG_TEST_UPGRADE_POLL_MS set, a kill() of SIGUSR2 is followed by a
 * sleep that long, and every nanosleep() lasts that long instead (`pgdog
 * --upgrade` waiting for its answer). Together they make the late answer of
 * an older generation come between the answer of the supervisor `pgdog
 * --upgrade` signalled and the reading of it, as it did by chance under load
 * in CI.
 * Runs in: pgdog processes started by test_upgrade_late_answer, nowhere else.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int rename(const char *from, const char *to);
int nanosleep(const struct timespec *req, struct timespec *rem);
int kill(pid_t pid, int sig);

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &ts, &ts) != 0 && errno == EINTR)
		;
}

/* PGDOG_TEST_UPGRADE_OK_DELAY_MS of this process, -1: none (its successor does not inherit it) */
static long ok_delay_ms = -1;

__attribute__((constructor)) static void
upgrade_delay_init(void)
{
	const char *ms = getenv("PGDOG_TEST_UPGRADE_OK_DELAY_MS");

	if (ms) {
		ok_delay_ms = strtol(ms, NULL, 10);
		unsetenv("PGDOG_TEST_UPGRADE_OK_DELAY_MS");
	}
}

int
rename(const char *from, const char *to)
{
	char text[512], late[4096];
	ssize_t n = 0;
	int fd;

	if (ok_delay_ms < 0 || !strstr(to, ".upgrade"))
		return (int)syscall(SYS_renameat, AT_FDCWD, from, AT_FDCWD, to);
	fd = open(from, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, text, sizeof(text));
		close(fd);
	}
	if (n < 3 || memcmp(text, "ok ", 3) != 0 ||
	    snprintf(late, sizeof(late), "%s.late", to) >= (int)sizeof(late))
		return (int)syscall(SYS_renameat, AT_FDCWD, from, AT_FDCWD, to);
	/*
	 * The whole answer is written later, by a child: the supervisor goes on
	 * (its successor may wait for it), and the temporary file it wrote is
	 * left as it is (a later answer in the same file writes over it).
	 */
	if (fork() == 0) {
		sleep_ms(ok_delay_ms);
		fd = open(late, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0 && write(fd, text, (size_t)n) == n && close(fd) == 0)
			syscall(SYS_renameat, AT_FDCWD, late, AT_FDCWD, to);
		_exit(0);
	}
	return 0;
}

int
nanosleep(const struct timespec *req, struct timespec *rem)
{
	const char *ms = getenv("PGDOG_TEST_UPGRADE_POLL_MS");

	if (ms) {
		sleep_ms(strtol(ms, NULL, 10));
		return 0;
	}
	return (int)syscall(SYS_clock_nanosleep, CLOCK_REALTIME, 0, req, rem);
}

int
kill(pid_t pid, int sig)
{
	const char *ms = getenv("PGDOG_TEST_UPGRADE_POLL_MS");
	int rc = (int)syscall(SYS_kill, pid, sig);

	if (ms && sig == SIGUSR2)
		sleep_ms(strtol(ms, NULL, 10));
	return rc;
}
