/*
 * wk_main.h: a worker process: one libevent loop serving clients.
 * Runs in: a worker (forked by the supervisor).
 */
#pragma once

#include "shared/compiler.h"

/*
 * Run worker `slot` until it shuts down; never returns (exits EXIT_OK after a
 * shutdown, EXIT_RESPAWN when an invariant breaks). Called in the child right
 * after fork() with g_cfg and g_shm inherited, signal dispositions reset to
 * default and all signals unblocked. tcp_fd is this slot's SO_REUSEPORT
 * listening socket, unix_fd the shared Unix listening socket (or -1). The
 * caller has closed every other slot's socket.
 *
 * Signals (handled as libevent events): SIGINT graceful shutdown (stop
 * accepting, let clients finish their transactions for shutdown_timeout),
 * SIGTERM fast shutdown (close everything now), SIGHUP the control area
 * changed: apply a published reload, holds, bans, SET and commands
 * (wk_ctl.h), SIGUSR1 reopens the log file.
 */
void wk_main_run(int slot, int tcp_fd, int unix_fd) NORETURN;
