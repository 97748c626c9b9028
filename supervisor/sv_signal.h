/*
 * sv_signal.h: signals in the supervisor.
 * Runs in: the supervisor (sv_signal_child_reset() in a freshly forked worker).
 *
 * The handlers only count deliveries in volatile sig_atomic_t variables. The
 * signals we handle stay blocked except inside sv_signal_wait(), which
 * unblocks them atomically while it sleeps (ppoll), so a signal can never
 * arrive between "check the flags" and "go to sleep", and the main loop
 * reads and clears the counters without racing a handler.
 */
#pragma once

#include "shared/compiler.h"

/*
 * Install the handlers (SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2),
 * ignore SIGPIPE and block the handled signals. -1 with errno on failure.
 */
int sv_signal_init(void) MUST_CHECK;

/*
 * Sleep until a handled signal arrives or timeout_ms passes (-1: no limit).
 * Returns when either happens; never fails.
 */
void sv_signal_wait(int timeout_ms);

struct pollfd;
/*
 * sv_signal_wait() that also returns when one of fds is ready: ppoll's
 * result (-1/EINTR after a signal, 0 on timeout, else ready fds).
 */
int sv_signal_poll(struct pollfd *fds, unsigned long fds_cnt, int timeout_ms);

/* How many times signo arrived since the last call (and reset to 0). */
unsigned sv_signal_take(int signo);

/*
 * In a child right after fork(): every signal back to SIG_DFL, the signal
 * mask empty, as worker/wk_main.h expects.
 */
void sv_signal_child_reset(void);
