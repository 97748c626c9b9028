/*
 * sv_child.c: worker processes (see sv_child.h).
 * Runs in: the supervisor; the code after fork() in sv_child_start() runs in
 * the new worker until it enters wk_main_run().
 *
 * Invariant: sv_children[slot].pid > 0 exactly while that worker has not
 * been reaped; a slot with pid 0 and is_pending has a restart scheduled.
 */
#include "supervisor/sv_child.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shared/compiler.h"
#include "shared/config.h"
#include "shared/log.h"
#include "shared/shm.h"
#include "supervisor/sv_listen.h"
#include "supervisor/sv_metrics.h"
#include "supervisor/sv_signal.h"
#include "worker/wk_main.h"

struct sv_child {
	pid_t pid;           /* 0: not running */
	bool is_pending;     /* a (re)start is scheduled at start_at_ms */
	bool has_started;    /* started at least once (later starts are restarts) */
	int64_t started_ms;  /* when the current/last process was forked */
	int64_t start_at_ms; /* when to start it again */
	uint32_t backoff_ms; /* the delay after the next fast death; 0: none yet */
};

static struct sv_child sv_children[CONFIG_MAX_WORKERS];
static int sv_children_cnt;
static struct sv_listen *sv_child_listen; /* borrowed: owned by sv_main.c */
static bool sv_child_is_respawning = true;
static uint32_t sv_child_base; /* shm slot of worker 0: our generation's bank */

int64_t
sv_child_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
sv_child_init(int workers_cnt, struct sv_listen *l)
{
	ASSERT(workers_cnt >= 1 && workers_cnt <= CONFIG_MAX_WORKERS);
	if (workers_cnt > CONFIG_MAX_WORKERS)
		workers_cnt = CONFIG_MAX_WORKERS;
	memset(sv_children, 0, sizeof(sv_children));
	sv_children_cnt = workers_cnt;
	sv_child_listen = l;
	sv_child_is_respawning = true;
	/* fixed for our life: after an upgrade the serving bank is the other one */
	sv_child_base = g_shm ? shm_slot_base() : 0;
	for (int i = 0; i < workers_cnt; i++)
		sv_children[i].is_pending = true;
}

/* In the new process: become worker `slot`. Never returns. */
static void NORETURN
sv_child_become_worker(int slot)
{
	pid_t parent = getppid();

	log_set_process("wk", (int)sv_child_base + slot);
	sv_signal_child_reset();
	sv_listen_keep_slot(sv_child_listen, slot);
	sv_metrics_child_close();
	/*
	 * If the supervisor dies (SIGKILL, OOM), drain and exit rather than
	 * keep the port while nobody supervises us and a restarted pgdog
	 * cannot bind it.
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGINT) < 0)
		log_warn_errno(NULL, errno, "prctl(PR_SET_PDEATHSIG)");
	else if (getppid() != parent)
		raise(SIGINT);
	/* the worker is known by its shm slot: its rows, its log name, its cancel keys */
	wk_main_run((int)sv_child_base + slot, sv_child_listen->tcp_fd[slot],
		    sv_child_listen->unix_fd);
}

int
sv_child_start(int slot)
{
	struct sv_child *c;
	pid_t pid;

	ASSERT(slot >= 0 && slot < sv_children_cnt);
	c = &sv_children[slot];
	ASSERT(c->pid == 0);
	/* nothing buffered may be written twice */
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0)
		sv_child_become_worker(slot);
	if (c->has_started && g_shm)
		atomic_fetch_add_explicit(&shm_worker(sv_child_base + (uint32_t)slot)->restarts, 1,
					  memory_order_relaxed);
	c->pid = pid;
	c->is_pending = false;
	c->has_started = true;
	c->started_ms = sv_child_now_ms();
	log_info(NULL, "worker %d started (pid %d)", slot, (int)pid);
	return 0;
}

/* Schedule slot's restart after a death (or failed fork) at now. */
static int64_t
sv_child_schedule(struct sv_child *c, int64_t now)
{
	int64_t up = now - c->started_ms;
	int64_t delay;

	if (up >= SV_CHILD_STABLE_MS)
		c->backoff_ms = 0;
	delay = c->backoff_ms;
	if (up < SV_CHILD_FAST_DEATH_MS) {
		if (c->backoff_ms == 0)
			c->backoff_ms = SV_CHILD_BACKOFF_MS;
		else if (c->backoff_ms < SV_CHILD_BACKOFF_MAX)
			c->backoff_ms = c->backoff_ms * 2 > SV_CHILD_BACKOFF_MAX
						? SV_CHILD_BACKOFF_MAX
						: c->backoff_ms * 2;
	}
	c->is_pending = true;
	c->start_at_ms = now + delay;
	return delay;
}

static int
sv_child_slot_of(pid_t pid)
{
	for (int i = 0; i < sv_children_cnt; i++) {
		if (sv_children[i].pid == pid)
			return i;
	}
	return -1;
}

/* One reaped worker: log, repair its slot, maybe schedule its restart. */
static int
sv_child_exited(int slot, pid_t pid, int st, bool respawn, int64_t now)
{
	struct sv_child *c = &sv_children[slot];
	char how[96], next[64] = "";
	int64_t delay;
	bool is_fatal = WIFEXITED(st) && WEXITSTATUS(st) == EXIT_FATAL;

	c->pid = 0;
	c->is_pending = false;
	/*
	 * After a binary upgrade that shared the segment our bank is no longer
	 * the serving one: the slot's counters wait for the new worker of the
	 * same index to take them over (shm_slot_fold).
	 */
	if (g_shm && shm_slot_base() == sv_child_base)
		shm_recover_slot(sv_child_base + (uint32_t)slot, pid);
	else if (g_shm)
		shm_retire_slot(sv_child_base + (uint32_t)slot, pid);

	if (WIFEXITED(st))
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(how, sizeof(how), "was killed by signal %d (%s)%s", WTERMSIG(st),
			 strsignal(WTERMSIG(st)), WCOREDUMP(st) ? ", core dumped" : "");
	else
		snprintf(how, sizeof(how), "ended with wait status 0x%x", (unsigned)st);

	if (is_fatal && respawn) {
		log_error(NULL,
			  "worker %d (pid %d) %s (fatal error): not restarting it, shutting down",
			  slot, (int)pid, how);
		return EXIT_FATAL;
	}
	if (!respawn || !sv_child_is_respawning) {
		log_info(NULL, "worker %d (pid %d) %s", slot, (int)pid, how);
		return is_fatal ? EXIT_FATAL : EXIT_OK;
	}
	delay = sv_child_schedule(c, now);
	if (delay > 0)
		snprintf(next, sizeof(next), "restarting it in %lld ms", (long long)delay);
	else
		snprintf(next, sizeof(next), "restarting it");
	log_warn(NULL, "worker %d (pid %d) %s after %lld ms; %s", slot, (int)pid, how,
		 (long long)(now - c->started_ms), next);
	return EXIT_OK;
}

int
sv_child_reap(bool respawn)
{
	int rc = EXIT_OK;
	int st, slot;
	pid_t pid;

	for (;;) {
		pid = waitpid(-1, &st, WNOHANG);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			break; /* 0: children left, none exited; -1/ECHILD: none left */
		slot = sv_child_slot_of(pid);
		if (slot < 0)
			continue; /* not a worker (e.g. the --daemon intermediate) */
		if (sv_child_exited(slot, pid, st, respawn, sv_child_now_ms()) == EXIT_FATAL)
			rc = EXIT_FATAL;
	}
	return rc;
}

void
sv_child_start_missing(void)
{
	int64_t now;

	if (!sv_child_is_respawning)
		return;
	now = sv_child_now_ms();
	for (int i = 0; i < sv_children_cnt; i++) {
		struct sv_child *c = &sv_children[i];

		if (c->pid != 0 || !c->is_pending || c->start_at_ms > now)
			continue;
		if (sv_child_start(i) < 0) {
			int err = errno;

			c->started_ms = now;
			log_errno(NULL, err, "fork worker %d, retrying in %lld ms", i,
				  (long long)sv_child_schedule(c, now));
		}
	}
}

int64_t
sv_child_next_start_in_ms(void)
{
	int64_t now = sv_child_now_ms(), best = -1;

	if (!sv_child_is_respawning)
		return -1;
	for (int i = 0; i < sv_children_cnt; i++) {
		const struct sv_child *c = &sv_children[i];
		int64_t in;

		if (c->pid != 0 || !c->is_pending)
			continue;
		in = c->start_at_ms > now ? c->start_at_ms - now : 0;
		if (best < 0 || in < best)
			best = in;
	}
	return best;
}

int
sv_child_alive_cnt(void)
{
	int n = 0;

	for (int i = 0; i < sv_children_cnt; i++)
		n += sv_children[i].pid > 0;
	return n;
}

void
sv_child_signal_all(int signo)
{
	for (int i = 0; i < sv_children_cnt; i++) {
		if (sv_children[i].pid > 0 && kill(sv_children[i].pid, signo) < 0 && errno != ESRCH)
			log_warn_errno(NULL, errno, "kill(worker %d, pid %d, %s)", i,
				       (int)sv_children[i].pid, strsignal(signo));
	}
}

void
sv_child_stop_respawn(void)
{
	sv_child_is_respawning = false;
	for (int i = 0; i < sv_children_cnt; i++)
		sv_children[i].is_pending = false;
}
