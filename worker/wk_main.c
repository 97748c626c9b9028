/*
 * wk_main.c: a worker process: the event base, accepting clients on this
 * slot's SO_REUSEPORT socket (and the shared Unix socket), signals, the
 * 100 ms sweep that enforces every timeout, deferred freeing and shutdown.
 * Runs in: a worker. Nothing a client or server sends may stop this loop.
 *
 * Binary upgrade (SIGUSR2 from the old supervisor once the new generation
 * serves): the worker stops accepting (the new workers hold the same
 * listening sockets, so queued connections are theirs) and, every sweep,
 * hands each client that is between transactions over to the new worker of
 * its slot with its session (wk_handoff.c). A client that cannot be handed
 * over (a server pinned to it, session pooling, no receiver) keeps being
 * served here and is closed only between transactions once it has been
 * idle for WK_DRAIN_IDLE_MS; after shutdown_timeout the rest are closed as
 * in a graceful shutdown.
 */
#include "worker/wk_main.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "shared/config.h"
#include "shared/log.h"
#include "shared/secret.h"
#include "shared/shm.h"
#include "worker/wk_client.h"
#include "worker/wk_conn.h"
#include "worker/wk_ctl.h"
#include "worker/wk_handoff.h"
#include "worker/wk_pool.h"
#include "worker/wk_lsn.h"
#include "worker/wk_pubsub.h"
#include "worker/wk_server.h"

#define WK_SWEEP_MS           100
#define WK_ACCEPT_BATCH       32
#define WK_FAST_EXIT_FLUSH_MS 300
#define WK_DRAIN_IDLE_MS      1000 /* upgrade: close a client idle this long */
#define WK_DRAIN_TICK_MS      5    /* upgrade: look for clients between transactions this often */
#define WK_DRAIN_HANDOFF_MS   5000 /* upgrade: wait this long for the receiver before closing */

static struct event *wk_listen_ev[2];
static int wk_listen_fd[2] = { -1, -1 };
static struct event *wk_sweep_ev;
static struct event *wk_sig_ev[5];
static uint64_t wk_accept_err_last_us;
static uint64_t wk_accept_err_cnt;
/*
 * A descriptor kept for the moment the process has none left: closed to
 * accept one waiting connection, refuse it with 53300, and reopened. Without
 * it the listening socket stays readable and the loop spins on EMFILE.
 */
static int wk_spare_fd = -1;
static bool wk_exit_scheduled;
static bool wk_is_draining;           /* binary upgrade: not accepting, finishing clients */
static uint64_t wk_drain_deadline_us; /* monotonic: then close the rest */
static uint64_t wk_drain_started_us;  /* monotonic */
static uint64_t wk_drain_closed_cnt;  /* clients closed while idle during the drain */
static struct event *wk_drain_ev;     /* WK_DRAIN_TICK_MS while draining */

static void
wk_main_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	/* new entries may be appended while freeing: loop by index */
	for (size_t i = 0; i < g_wk.reap_clients_cnt; i++)
		wk_client_free(g_wk.reap_clients[i]);
	g_wk.reap_clients_cnt = 0;
	for (size_t i = 0; i < g_wk.reap_servers_cnt; i++)
		wk_server_free(g_wk.reap_servers[i]);
	g_wk.reap_servers_cnt = 0;
}

/* Out of descriptors: take one waiting connection with the spare and refuse it. */
static void
wk_main_refuse_one(int lfd)
{
	struct pgw_buf *b = &g_wk.scratch;
	int fd;

	close(wk_spare_fd);
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd >= 0) {
		/* before its startup packet, as PostgreSQL answers when it cannot fork */
		pgw_buf_reset(b);
		pgw_put_error(b, false, "FATAL", SQLSTATE_TOO_MANY_CONNECTIONS,
			      "sorry, too many clients already", NULL, NULL);
		if (!b->has_error && send(fd, b->data, b->len, MSG_NOSIGNAL) < 0)
			log_debug(NULL, "cannot send the refusal: %s", strerror(errno));
		close(fd);
		atomic_fetch_add_explicit(&shm_worker((uint32_t)g_wk.slot)->accepted_total, 1,
					  memory_order_relaxed);
	}
	wk_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	wk_accept_err_cnt++;
	if (g_wk.mono_us - wk_accept_err_last_us >= 1000000) {
		log_warn(NULL,
			 "out of file descriptors: %llu connections refused with 53300 since last "
			 "report",
			 (unsigned long long)wk_accept_err_cnt);
		wk_accept_err_last_us = g_wk.mono_us;
		wk_accept_err_cnt = 0;
	}
}

static void
wk_main_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	bool is_unix = arg != NULL;

	wk_clock_update();
	for (int i = 0; i < WK_ACCEPT_BATCH && !g_wk.is_shutting_down; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
			    errno == ECONNABORTED)
				return;
			if ((errno == EMFILE || errno == ENFILE) && wk_spare_fd >= 0) {
				wk_main_refuse_one(lfd);
				continue;
			}
			/* EMFILE and friends: one line per second with a count */
			wk_accept_err_cnt++;
			if (g_wk.mono_us - wk_accept_err_last_us >= 1000000) {
				log_warn_errno(NULL, errno,
					       "accept failed (%llu times since last report)",
					       (unsigned long long)wk_accept_err_cnt);
				wk_accept_err_last_us = g_wk.mono_us;
				wk_accept_err_cnt = 0;
			}
			return;
		}
		atomic_fetch_add_explicit(&shm_worker((uint32_t)g_wk.slot)->accepted_total, 1,
					  memory_order_relaxed);
		wk_client_accept(fd, (struct sockaddr *)&ss, len, is_unix);
	}
}

static void
wk_main_stop_listening(void)
{
	for (int i = 0; i < 2; i++) {
		if (wk_listen_ev[i]) {
			event_free(wk_listen_ev[i]);
			wk_listen_ev[i] = NULL;
		}
		if (wk_listen_fd[i] >= 0) {
			close(wk_listen_fd[i]);
			wk_listen_fd[i] = -1;
		}
	}
}

static void
wk_main_schedule_exit(unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (wk_exit_scheduled)
		return;
	wk_exit_scheduled = true;
	event_base_loopexit(g_wk.base, &tv);
}

/* Close everything now: clients get 57P01, servers a Terminate. */
static void
wk_main_fast_close(void)
{
	struct list *pos, *tmp;

	g_wk.is_fast_shutdown = true;
	list_foreach_safe (pos, tmp, &g_wk.clients) {
		struct wk_client *c = list_entry(pos, struct wk_client, node);

		if (c->state != WK_CLIENT_CLOSING)
			wk_client_fatal(c, SQLSTATE_ADMIN_SHUTDOWN,
					"terminating connection due to administrator command");
	}
	wk_pool_close_idle();
	wk_main_schedule_exit(WK_FAST_EXIT_FLUSH_MS);
}

/* Graceful shutdown: close each client once it is between transactions. */
static void
wk_main_graceful_step(void)
{
	struct list *pos, *tmp;

	list_foreach_safe (pos, tmp, &g_wk.clients) {
		struct wk_client *c = list_entry(pos, struct wk_client, node);

		(void)wk_client_close_if_idle(c);
	}
	wk_pool_close_idle();
	if (g_wk.clients_cnt == 0) {
		log_info(NULL, "all clients gone: exiting");
		wk_main_schedule_exit(WK_FAST_EXIT_FLUSH_MS);
	} else if (g_wk.mono_us >= g_wk.shutdown_deadline_us) {
		log_warn(NULL, "shutdown_timeout reached with %u clients: closing them",
			 g_wk.clients_cnt);
		wk_main_fast_close();
	}
}

/*
 * Upgrade drain, each sweep: close the clients idle for WK_DRAIN_IDLE_MS
 * (between transactions only), exit when none is left, and hand the rest
 * to the graceful shutdown once shutdown_timeout has passed.
 */
static void
wk_main_drain_step(void)
{
	struct list *pos, *tmp;

	list_foreach_safe (pos, tmp, &g_wk.clients) {
		struct wk_client *c = list_entry(pos, struct wk_client, node);

		if (wk_handoff_try(c))
			continue;
		/* an idle client that can move waits for the receiver (it binds within ~100 ms) */
		if (g_wk.mono_us - wk_drain_started_us < (uint64_t)WK_DRAIN_HANDOFF_MS * 1000 &&
		    wk_handoff_may_take(c))
			continue;
		/*
		 * ACTIVE: a session-mode or pinned client, which keeps its server
		 * and cannot move, closed between transactions (not one that holds
		 * its server a moment longer, for a cancel on its way)
		 */
		if ((c->state == WK_CLIENT_IDLE || c->state == WK_CLIENT_ADMIN ||
		     (c->state == WK_CLIENT_ACTIVE && (wk_client_is_session(c) || c->pins))) &&
		    g_wk.mono_us - c->last_request_us >= (uint64_t)WK_DRAIN_IDLE_MS * 1000 &&
		    wk_client_close_if_idle(c))
			wk_drain_closed_cnt++;
	}
	if (g_wk.clients_cnt == 0) {
		log_info(
			NULL,
			"binary upgrade: all clients gone (%llu handed over, %llu closed while idle, the others left by themselves): exiting",
			(unsigned long long)wk_handoff_sent_cnt(),
			(unsigned long long)wk_drain_closed_cnt);
		wk_is_draining = false;
		wk_main_schedule_exit(WK_FAST_EXIT_FLUSH_MS);
	} else if (g_wk.mono_us >= wk_drain_deadline_us) {
		log_warn(
			NULL,
			"binary upgrade: shutdown_timeout reached with %u clients (%llu handed over so far): closing each between transactions",
			g_wk.clients_cnt, (unsigned long long)wk_handoff_sent_cnt());
		wk_is_draining = false;
		g_wk.is_shutting_down = true;
		g_wk.shutdown_deadline_us = g_wk.mono_us + WK_DRAIN_IDLE_MS * 1000;
		wk_main_graceful_step();
	}
	if (!wk_is_draining && wk_drain_ev)
		event_del(wk_drain_ev);
}

/*
 * A busy client is between transactions for a few microseconds at a time:
 * look often while draining (the 100 ms sweep alone would catch few).
 */
static void
wk_main_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	wk_clock_update();
	if (wk_is_draining)
		wk_main_drain_step();
}

static void
wk_main_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	wk_clock_update();
	switch (sig) {
	case SIGINT:
		if (g_wk.is_shutting_down) {
			wk_main_fast_close();
			return;
		}
		log_info(NULL, "graceful shutdown: waiting up to %d ms for %u clients",
			 g_cfg->shutdown_timeout, g_wk.clients_cnt);
		g_wk.is_shutting_down = true;
		g_wk.shutdown_deadline_us = g_wk.mono_us + (uint64_t)g_cfg->shutdown_timeout * 1000;
		wk_main_stop_listening();
		wk_handoff_stop_receiving();
		wk_main_graceful_step();
		break;
	case SIGTERM:
		log_info(NULL, "fast shutdown: closing %u clients", g_wk.clients_cnt);
		g_wk.is_shutting_down = true;
		wk_main_stop_listening();
		wk_handoff_stop_receiving();
		wk_main_fast_close();
		break;
	case SIGUSR1:
		if (log_reopen() < 0)
			log_errno(NULL, errno, "cannot reopen the log file");
		break;
	case SIGUSR2:
		if (g_wk.is_shutting_down || wk_is_draining)
			break;
		log_info(
			NULL,
			"binary upgrade: no longer accepting; handing %u clients over to the new generation between transactions (those that cannot be are closed when idle %d ms, at most after shutdown_timeout %d ms)",
			g_wk.clients_cnt, WK_DRAIN_IDLE_MS, g_cfg->shutdown_timeout);
		wk_is_draining = true;
		wk_drain_started_us = g_wk.mono_us;
		/* the next generation's worker of this slot takes the handoff name */
		wk_handoff_stop_receiving();
		wk_handoff_start_sending();
		{
			struct timeval tick = { 0, WK_DRAIN_TICK_MS * 1000 };

			wk_drain_ev = event_new(g_wk.base, -1, EV_PERSIST, wk_main_drain_cb, NULL);
			if (!wk_drain_ev || event_add(wk_drain_ev, &tick) < 0)
				log_warn(NULL,
					 "binary upgrade: no drain timer: looking every %d ms",
					 WK_SWEEP_MS);
		}
		wk_drain_deadline_us = g_wk.mono_us + (uint64_t)g_cfg->shutdown_timeout * 1000;
		wk_main_stop_listening();
		wk_main_drain_step();
		break;
	default:
		/* SIGHUP: the control area changed (reload published, admin command) */
		wk_ctl_wake();
		break;
	}
}

static void
wk_main_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	wk_clock_update();
	wk_client_sweep();
	wk_pool_sweep();
	wk_ctl_sweep();
	wk_pubsub_sweep();
	wk_handoff_sweep();
	/* after a binary upgrade: the older worker of our index exited, its counters become ours */
	shm_slot_fold((uint32_t)g_wk.slot);
	if (wk_is_draining)
		wk_main_drain_step();
	else if (g_wk.is_shutting_down && !g_wk.is_fast_shutdown)
		wk_main_graceful_step();
}

static int
wk_main_init_rows(void)
{
	uint32_t n = g_shm->clients_per_worker, m = g_shm->servers_per_worker;

	g_wk.free_client_rows = malloc(sizeof(uint32_t) * n);
	g_wk.free_server_rows = malloc(sizeof(uint32_t) * m);
	if (!g_wk.free_client_rows || !g_wk.free_server_rows)
		return -1;
	/* a stack: row 0 is handed out first */
	for (uint32_t i = 0; i < n; i++)
		g_wk.free_client_rows[i] = n - 1 - i;
	for (uint32_t i = 0; i < m; i++)
		g_wk.free_server_rows[i] = m - 1 - i;
	g_wk.free_client_rows_cnt = n;
	g_wk.free_server_rows_cnt = m;
	return 0;
}

static int
wk_main_listen(int idx, int fd, bool is_unix)
{
	if (fd < 0)
		return 0;
	wk_listen_fd[idx] = fd;
	wk_listen_ev[idx] = event_new(g_wk.base, fd, EV_READ | EV_PERSIST, wk_main_accept_cb,
				      is_unix ? (void *)1 : NULL);
	if (!wk_listen_ev[idx] || event_add(wk_listen_ev[idx], NULL) < 0)
		return -1;
	return 0;
}

static void
wk_main_cleanup(void)
{
	struct list *pos, *tmp;

	wk_main_stop_listening();
	wk_handoff_cleanup();
	if (wk_drain_ev)
		event_free(wk_drain_ev);
	list_foreach_safe (pos, tmp, &g_wk.clients) {
		struct wk_client *c = list_entry(pos, struct wk_client, node);

		if (!c->is_free_later)
			wk_client_free(c);
	}
	wk_main_reap_cb(-1, 0, NULL);
	wk_lsn_cleanup();    /* replication check connections */
	wk_pubsub_cleanup(); /* after every client is freed: listeners go with the pools */
	wk_pool_close_all();
	wk_main_reap_cb(-1, 0, NULL);
	wk_pool_cleanup_all();
	wk_ctl_cleanup();
	for (size_t i = 0; i < ARRAY_SIZE(wk_sig_ev); i++)
		if (wk_sig_ev[i])
			event_free(wk_sig_ev[i]);
	if (wk_sweep_ev)
		event_free(wk_sweep_ev);
	if (g_wk.reap_ev)
		event_free(g_wk.reap_ev);
	wk_stream_cleanup_all();
	free(g_wk.reap_clients);
	free(g_wk.reap_servers);
	free(g_wk.free_client_rows);
	free(g_wk.free_server_rows);
	pgw_buf_cleanup(&g_wk.scratch);
	event_base_free(g_wk.base);
	wk_stream_mem_cleanup();
}

void
wk_main_run(int slot, int tcp_fd, int unix_fd)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2 };
	struct timeval sweep = { 0, WK_SWEEP_MS * 1000 };
	struct event_config *ecfg;
	struct shm_worker *w = shm_worker((uint32_t)slot);

	wk_stream_mem_init(); /* before any other libevent call */
	memset(&g_wk, 0, sizeof(g_wk));
	g_wk.slot = slot;
	list_init(&g_wk.clients);
	pgw_buf_init(&g_wk.scratch);
	secret_random(g_wk.instance_key, sizeof(g_wk.instance_key));
	wk_clock_update();
	signal(SIGPIPE, SIG_IGN);

	atomic_store(&w->started_us, g_wk.now_us);
	atomic_store(&w->clients_cnt, 0);
	/* syslog lines we cannot send at once are dropped; SHOW STATE and /metrics count them */
	log_set_drop_counter(&w->log_dropped);

	ecfg = event_config_new();
	if (!ecfg)
		goto fail;
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK);
	g_wk.base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (!g_wk.base)
		goto fail;
	g_wk.reap_ev = event_new(g_wk.base, -1, 0, wk_main_reap_cb, NULL);
	wk_sweep_ev = event_new(g_wk.base, -1, EV_PERSIST, wk_main_sweep_cb, NULL);
	if (!g_wk.reap_ev || !wk_sweep_ev || event_add(wk_sweep_ev, &sweep) < 0 ||
	    wk_stream_init_all(g_wk.base) < 0)
		goto fail;
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++) {
		wk_sig_ev[i] = evsignal_new(g_wk.base, sigs[i], wk_main_signal_cb, NULL);
		if (!wk_sig_ev[i] || event_add(wk_sig_ev[i], NULL) < 0)
			goto fail;
	}
	/* published only now: SIGHUP (control wake-up) is handled from here on */
	atomic_store(&w->pid, (int32_t)getpid());
	if (wk_main_init_rows() < 0 || wk_ctl_init() < 0)
		goto fail;
	if (wk_main_listen(0, tcp_fd, false) < 0 || wk_main_listen(1, unix_fd, true) < 0)
		goto fail;
	if (wk_handoff_init(tcp_fd) < 0)
		goto fail;

	wk_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	log_info(NULL, "worker %d started", slot);
	event_base_dispatch(g_wk.base);
	g_wk.is_loop_done = true;
	log_info(NULL, "worker %d stopped", slot);
	wk_main_cleanup();
	log_close();
	exit(EXIT_OK);
fail:
	log_errno(NULL, errno, "worker %d cannot start", slot);
	exit(EXIT_RESPAWN);
}
