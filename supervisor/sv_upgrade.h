/*
 * sv_upgrade.h: zero-downtime binary upgrade (SIGUSR2, pgdog --upgrade).
 * Runs in: the supervisor (old and new generation), and `pgdog --upgrade`.
 *
 * The old supervisor starts the executable it was started from (the path
 * read from /proc/self/exe at start, so a file replaced since is the one
 * run) with the same arguments and working directory. The listening
 * sockets and the shared memory segment are inherited, not re-created:
 * their fd numbers are in
 * PGDOG_INHERIT_FDS="unix:<fd>;0:<fd>;1:<fd>;...;shm:<fd>" (slot:fd), and the
 * write end of a pipe in PGDOG_UPGRADE_FD. The new supervisor checks each
 * socket (a listening socket bound to the configured address), maps the
 * segment (shm_adopt: same layout signature, workers and room for
 * max_client_conn), publishes its configuration there (pools keep their
 * indexes), forks its workers into the other bank of worker slots, writes
 * its pidfile and then writes "R" to the pipe, or "E<reason>" if it cannot
 * start. Both generations hold the same sockets meanwhile, so a connection
 * queued on a socket is accepted by whichever process still listens: none
 * is refused. The old workers then hand their clients over
 * (worker/wk_handoff.h).
 *
 * With one segment, pool_size stays a cap over both generations (the old
 * workers give their idle servers back as soon as new workers wait), a
 * CancelRequest reaches an old-generation client's query from any worker,
 * and the statistics continue: an old worker's counters are added to its
 * successor's when it exits. When the segment cannot be shared (another
 * layout: a binary with other shared structures, or other workers /
 * max_client_conn) the new generation creates its own and says so in the
 * log; then each generation enforces pool_size on its own until the old
 * one is done, and the counters start from zero.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "shared/compiler.h"
#include "shared/config.h"

struct sv_listen;

#define SV_UPGRADE_ENV_FDS       "PGDOG_INHERIT_FDS"
#define SV_UPGRADE_ENV_READY     "PGDOG_UPGRADE_FD"
#define SV_UPGRADE_TIMEOUT_MS    30000 /* the new supervisor must be ready within this */
#define SV_UPGRADE_STATUS_SUFFIX ".upgrade"

/*
 * At start, before --daemon changes directory: remember the executable, the
 * arguments (argv stays borrowed) and the working directory. -1 on error.
 */
int sv_upgrade_init(int argc, char **argv) MUST_CHECK;

/* Was this process started by an upgrade (PGDOG_INHERIT_FDS is set)? */
bool sv_upgrade_is_child(void);

/*
 * New generation: the fd to report readiness on (close-on-exec from now on),
 * or -1 when not started by an upgrade.
 */
int sv_upgrade_take_ready_fd(void);

/*
 * New generation: take the inherited sockets into l instead of binding.
 * Fails (-1, reason in err) unless there is one listening TCP socket per
 * configured worker bound to host:port and, when unix_socket_dir is set, the
 * Unix socket at its path: an upgrade cannot change host, port, workers or
 * unix_socket_dir. *shm_fd is the inherited segment's fd (close-on-exec
 * again; for shm_adopt), -1 if none was passed. Unsets PGDOG_INHERIT_FDS.
 */
int sv_upgrade_adopt(struct sv_listen *l, const struct config *cfg, int *shm_fd, char *err,
		     size_t err_len) MUST_CHECK;

/*
 * Old generation: start the new binary with l's sockets and wait (blocking,
 * at most SV_UPGRADE_TIMEOUT_MS) until it reports. Returns its pid when it
 * is ready; -1 with the reason in err when it failed (it has then exited or
 * was killed, and the caller keeps serving).
 */
pid_t sv_upgrade_spawn(const struct sv_listen *l, char *err, size_t err_len) MUST_CHECK;

/*
 * The supervisor SIGUSR2 reached: write its answer for `pgdog --upgrade`,
 * "ok <new pid>" or "failed: ...", to "<pidfile>.upgrade.<its own pid>". Each
 * process answers in its own file: the answer of a generation that was
 * signalled without `pgdog --upgrade`, late, cannot take the place of its
 * successor's.
 */
void sv_upgrade_status_write(const char *pidfile, const char *fmt, ...) PRINTF_LIKE(2, 3);

/*
 * `pgdog --upgrade --pidfile FILE`: SIGUSR2 to the supervisor FILE names,
 * then wait for its answer. Returns the exit status: 0 upgraded (the new
 * pid is printed), 1 the upgrade failed or gave no answer within
 * timeout_ms (the old generation keeps serving), 2 nothing to upgrade
 * (no running pgdog in FILE).
 */
int sv_upgrade_command(const char *pidfile, int timeout_ms);
