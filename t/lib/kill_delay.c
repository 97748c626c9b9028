/*
 * kill_delay.c: an LD_PRELOAD library for PostgreSQL in tests. A kill() of
 * SIGINT to a process group (pid < 0) waits PGDOG_TEST_KILL_DELAY_MS first.
 * PostgreSQL signals a cancelled backend twice, its process and then its
 * process group (postmaster.c signal_child): under load the second can come
 * late, which this makes happen every time.
 * Runs in: PostgreSQL processes started by a test (it_txn.c), nowhere else.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

int kill(pid_t pid, int sig);

int
kill(pid_t pid, int sig)
{
	const char *ms = getenv("PGDOG_TEST_KILL_DELAY_MS");

	if (pid < 0 && sig == SIGINT && ms) {
		long n = strtol(ms, NULL, 10);
		struct timespec ts = { n / 1000, (n % 1000) * 1000000L };

		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	return (int)syscall(SYS_kill, pid, sig);
}
