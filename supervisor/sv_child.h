/*
 * sv_child.h: worker processes: fork, reap, respawn with backoff.
 * Runs in: the supervisor.
 *
 * One entry per worker slot. A dead worker's slot is repaired in shared
 * memory (shm_recover_slot) and the worker restarted; only that slot is
 * touched. A worker that keeps dying soon after its start is restarted
 * with an exponential delay (1 s, 2 s, 4 s ... 30 s), reset once a worker
 * stays up SV_CHILD_STABLE_MS.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "shared/compiler.h"

#define SV_CHILD_FAST_DEATH_MS 5000  /* died this soon after its start: back off */
#define SV_CHILD_STABLE_MS     30000 /* up this long: forget earlier deaths */
#define SV_CHILD_BACKOFF_MS    1000
#define SV_CHILD_BACKOFF_MAX   30000

struct sv_listen;

/* Monotonic milliseconds. */
int64_t sv_child_now_ms(void);

/*
 * Prepare workers_cnt slots; l stays borrowed for fork()s to come (a child
 * keeps only its own slot's socket from it).
 */
void sv_child_init(int workers_cnt, struct sv_listen *l);

/*
 * Fork worker `slot`. The child never returns from here (it runs
 * wk_main_run()). -1 with errno if fork() failed; the slot is then retried
 * with backoff by sv_child_start_missing().
 */
int sv_child_start(int slot) MUST_CHECK;

/*
 * Reap every exited child (waitpid WNOHANG until none is left), repair its
 * shared memory slot and log how it ended. When respawn is true, schedule
 * the restart. Returns EXIT_FATAL if a worker exited with EXIT_FATAL
 * (the caller shuts down and does not restart it), else EXIT_OK.
 */
int sv_child_reap(bool respawn);

/* Start every worker whose restart time has come. */
void sv_child_start_missing(void);

/* Milliseconds until the next scheduled restart; -1 if none is due. */
int64_t sv_child_next_start_in_ms(void);

/* Number of workers still running. */
int sv_child_alive_cnt(void);

/* Send signo to every running worker. */
void sv_child_signal_all(int signo);

/* Do not restart anything any more (shutdown). */
void sv_child_stop_respawn(void);
