/*
 * sv_signal.c: supervisor signal handling (see sv_signal.h).
 * Runs in: the supervisor.
 *
 * Invariant: a handler does nothing but increment its counter. Handled
 * signals are blocked outside ppoll(), so sv_signal_take() may read and
 * clear a counter without masking anything.
 */
#include "supervisor/sv_signal.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "shared/compiler.h"

static const int sv_signal_handled[] = { SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2 };

/* Indexed by signal number; only the handled ones ever move. */
static volatile sig_atomic_t sv_signal_cnt[65];

/* The mask in effect while sleeping: the original one minus the handled signals. */
static sigset_t sv_signal_wait_mask;

static void
sv_signal_handler(int signo)
{
	if (signo > 0 && (size_t)signo < ARRAY_SIZE(sv_signal_cnt))
		sv_signal_cnt[signo]++;
}

int
sv_signal_init(void)
{
	struct sigaction sa;
	sigset_t block, old;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPIPE, &sa, NULL) < 0)
		return -1;

	sigemptyset(&block);
	for (size_t i = 0; i < ARRAY_SIZE(sv_signal_handled); i++)
		sigaddset(&block, sv_signal_handled[i]);
	if (sigprocmask(SIG_BLOCK, &block, &old) < 0)
		return -1;
	sv_signal_wait_mask = old;
	for (size_t i = 0; i < ARRAY_SIZE(sv_signal_handled); i++)
		sigdelset(&sv_signal_wait_mask, sv_signal_handled[i]);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sv_signal_handler;
	/* block the others while one runs; no SA_RESTART: ppoll must return */
	sa.sa_mask = block;
	sa.sa_flags = SA_NOCLDSTOP;
	for (size_t i = 0; i < ARRAY_SIZE(sv_signal_handled); i++) {
		if (sigaction(sv_signal_handled[i], &sa, NULL) < 0)
			return -1;
	}
	return 0;
}

void
sv_signal_wait(int timeout_ms)
{
	struct timespec ts;

	if (timeout_ms < 0) {
		(void)ppoll(NULL, 0, NULL, &sv_signal_wait_mask);
		return;
	}
	ts.tv_sec = timeout_ms / 1000;
	ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
	/* 0 on timeout, -1/EINTR after a handler ran: both mean "look at the flags" */
	(void)ppoll(NULL, 0, &ts, &sv_signal_wait_mask);
}

int
sv_signal_poll(struct pollfd *fds, unsigned long fds_cnt, int timeout_ms)
{
	struct timespec ts;

	if (timeout_ms < 0)
		return ppoll(fds, (nfds_t)fds_cnt, NULL, &sv_signal_wait_mask);
	ts.tv_sec = timeout_ms / 1000;
	ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
	return ppoll(fds, (nfds_t)fds_cnt, &ts, &sv_signal_wait_mask);
}

unsigned
sv_signal_take(int signo)
{
	unsigned n;

	if (signo <= 0 || (size_t)signo >= ARRAY_SIZE(sv_signal_cnt))
		return 0;
	n = (unsigned)sv_signal_cnt[signo];
	sv_signal_cnt[signo] = 0;
	return n;
}

void
sv_signal_child_reset(void)
{
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (int signo = 1; signo < NSIG; signo++) {
		if (signo == SIGKILL || signo == SIGSTOP)
			continue;
		/* EINVAL for the numbers glibc reserves for itself: nothing to reset */
		(void)sigaction(signo, &sa, NULL);
	}
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	for (size_t i = 0; i < ARRAY_SIZE(sv_signal_cnt); i++)
		sv_signal_cnt[i] = 0;
}
