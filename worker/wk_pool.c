/*
 * wk_pool.c: this worker's share of every pool (see wk_pool.h).
 * Runs in: a worker.
 *
 * A client that needs a server takes an idle one, or queues (FIFO). A new
 * connection opens only when the global count for the pool (all workers,
 * in shared memory) is below pool_size. A worker holding idle servers that
 * no local client wants closes them when another worker has clients
 * waiting, so the cap is shared rather than hoarded.
 *
 * Pools live in an array indexed by their shm pool index (stable across
 * reloads, so clients' pool pointers stay valid). A reload re-points a pool
 * at the new configuration; a changed pool bumps its epoch, and a server of
 * an older epoch is closed instead of reused (idle ones at once, busy ones at
 * check-in) — RECONNECT and KILL do the same. A removed pool drains: no new
 * server, no new transaction, its clients closed between transactions; once
 * nothing of it is left, its slot and shm reference are released. A held
 * pool (PAUSE, MAINTENANCE) queues requests without handing out servers; a
 * banned one refuses them.
 */
#include "worker/wk_pool.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "shared/log.h"
#include "shared/secret.h"
#include "worker/wk_client.h"
#include "worker/wk_handoff.h"
#include "worker/wk_server.h"
#include "worker/wk_stats.h"

#define WK_POOL_RETRY_US      (1000 * 1000) /* after a failed connection */
#define WK_POOL_CLOSE_WAIT_US (1000 * 1000) /* for a backend to hang up */
#define WK_POOL_GIVE_BACK_US  (50 * 1000) /* idle this long with no local waiter: free for others */
/* a server serves its worker's clients this long before a starving worker gets the cap */
#define WK_POOL_SHARE_SLICE_US (250 * 1000)
/* after giving the cap to a starving worker, open none while it still has none (its sweep takes it) */
#define WK_POOL_YIELD_US (250 * 1000)

/*
 * By shm pool index: room for g_shm->pools_cap, of which the first
 * wk_pools_cnt (1 + the highest index this worker has used) are set up. The
 * reserve is untouched address space until a reload reaches it: loops stop
 * at wk_pools_cnt.
 */
static struct wk_pool *wk_pools;
static uint32_t wk_pools_cnt, wk_pools_cap;

static void wk_pool_hand_out(struct wk_pool *p);
static void wk_pool_grow(struct wk_pool *p);
static uint32_t wk_pool_local_total_all(const struct wk_pool *p);

struct wk_pool *
wk_pool_get(uint32_t idx)
{
	return idx < wk_pools_cnt ? &wk_pools[idx] : NULL;
}

uint32_t
wk_pool_count(void)
{
	return wk_pools_cnt;
}

static int
wk_pool_resolve(struct wk_pool *p)
{
	struct addrinfo hints, *res = NULL;
	char port[16];
	int rc;

	if (p->db->host[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)&p->addr;

		memset(un, 0, sizeof(*un));
		un->sun_family = AF_UNIX;
		if ((size_t)snprintf(un->sun_path, sizeof(un->sun_path), "%s/.s.PGSQL.%d",
				     p->db->host, p->db->port) >= sizeof(un->sun_path))
			return -1;
		p->addr_len = sizeof(*un);
		return 0;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", p->db->port);
	rc = getaddrinfo(p->db->host, port, &hints, &res);
	if (rc != 0 || !res) {
		log_warn(NULL, "pool %s: cannot resolve %s: %s", p->name, p->db->host,
			 gai_strerror(rc));
		return -1;
	}
	memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
	p->addr_len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Point p at pool i of cfg (pointers, name, share of min_pool_size). */
static void
wk_pool_point(struct wk_pool *p, const struct config *cfg, size_t i)
{
	uint32_t workers = (uint32_t)cfg->workers, slot = (uint32_t)g_wk.slot, min;

	p->owner = cfg;
	p->cfg = &cfg->pools[i];
	p->user = &cfg->users[p->cfg->user_idx];
	p->db = &cfg->databases[p->cfg->db_idx];
	snprintf(p->name, sizeof(p->name), "%s/%s", p->user->name, p->db->name);
	min = (uint32_t)p->cfg->min_pool_size;
	slot %= workers; /* the same share in either bank of slots */
	p->min_share = min / workers + (slot < min % workers ? 1 : 0);
	/* log contexts of its servers point into the configuration too, and rows show its index */
	for (int st = 0; st < WK_SERVER_STATE_CNT; st++) {
		struct list *pos;

		list_foreach (pos, &p->servers[st]) {
			struct wk_server *s = list_entry(pos, struct wk_server, node);

			s->lctx.user = p->user->name;
			s->lctx.db = p->db->name;
			wk_server_row_update(s); /* db_idx: the database's index in cfg */
		}
	}
}

/* A pool appears in this worker (start or reload). */
static void
wk_pool_create(struct wk_pool *p, const struct config *cfg, size_t i)
{
	uint32_t idx = p->idx;

	memset(p, 0, sizeof(*p));
	p->idx = idx;
	for (int st = 0; st < WK_SERVER_STATE_CNT; st++)
		list_init(&p->servers[st]);
	list_init(&p->waiters);
	wk_pool_point(p, cfg, i);
	p->stats = shm_pool_stats((uint32_t)g_wk.slot, idx);
	p->shm = shm_pool(idx);
	memset(p->stats, 0, sizeof(*p->stats));
	(void)wk_pool_resolve(p);
}

/* Set up the entries below n (n <= wk_pools_cap) as unused pools. */
static void
wk_pool_extend(uint32_t n)
{
	for (; wk_pools_cnt < n && wk_pools_cnt < wk_pools_cap; wk_pools_cnt++) {
		struct wk_pool *p = &wk_pools[wk_pools_cnt];

		p->idx = wk_pools_cnt;
		p->shm = shm_pool(wk_pools_cnt);
		for (int st = 0; st < WK_SERVER_STATE_CNT; st++)
			list_init(&p->servers[st]);
		list_init(&p->waiters);
	}
}

int
wk_pool_init_all(const uint32_t *map)
{
	wk_stats_init(); /* the slot is known: the request path's rows */
	wk_pools_cap = g_shm->pools_cap;
	wk_pools_cnt = 0;
	/* calloc of this size maps fresh zero pages: only entries set up cost memory */
	wk_pools = calloc(wk_pools_cap ? wk_pools_cap : 1, sizeof(*wk_pools));
	if (!wk_pools)
		return -1;
	for (size_t i = 0; i < g_cfg->pools_cnt; i++) {
		uint32_t idx = map ? map[i] : (uint32_t)i;

		if (idx < wk_pools_cap) {
			wk_pool_extend(idx + 1);
			wk_pool_create(&wk_pools[idx], g_cfg, i);
		}
	}
	return 0;
}

int
wk_pool_index_of(int cfg_idx)
{
	if (cfg_idx < 0)
		return -1;
	for (uint32_t i = 0; i < wk_pools_cnt; i++)
		if (wk_pools[i].cfg && !wk_pools[i].is_draining && wk_pools[i].owner == g_cfg &&
		    wk_pools[i].cfg == &g_cfg->pools[cfg_idx])
			return (int)i;
	return -1;
}

bool
wk_pool_uses_config(const struct config *cfg)
{
	for (uint32_t i = 0; i < wk_pools_cnt; i++)
		if (wk_pools[i].cfg && wk_pools[i].owner == cfg)
			return true;
	return false;
}

static void
wk_pool_close_idle_of(struct wk_pool *p, const char *why)
{
	struct list *pos, *tmp;

	list_foreach_safe (pos, tmp, &p->servers[WK_SERVER_IDLE]) {
		if (p->stats)
			wk_stats_add(p, SHM_STAT_FORCE_CLOSED, 1);
		wk_server_close(list_entry(pos, struct wk_server, node), why);
	}
}

/* Fail every client queued on p (it was removed). */
static void
wk_pool_fail_waiters(struct wk_pool *p)
{
	struct list *pos, *tmp;

	list_foreach_safe (pos, tmp, &p->waiters) {
		struct wk_client *c = list_entry(pos, struct wk_client, wait_node);

		wk_pool_unwait(p, c);
		wk_client_fatal(
			c, SQLSTATE_ADMIN_SHUTDOWN,
			"terminating connection: database \"%s\" was removed from the configuration",
			p->db->name);
	}
}

void
wk_pool_apply(const struct config *next, const uint32_t *map)
{
	int32_t *from = malloc(sizeof(*from) * (wk_pools_cap ? wk_pools_cap : 1));

	if (!from) {
		log_error(NULL, "reload: out of memory applying the configuration");
		return;
	}
	for (size_t i = 0; i < next->pools_cnt; i++)
		if (map[i] < wk_pools_cap)
			wk_pool_extend(map[i] + 1);
	for (uint32_t k = 0; k < wk_pools_cnt; k++)
		from[k] = -1;
	for (size_t i = 0; i < next->pools_cnt; i++)
		if (map[i] < wk_pools_cnt)
			from[map[i]] = (int32_t)i;
	for (uint32_t k = 0; k < wk_pools_cnt; k++) {
		struct wk_pool *p = &wk_pools[k];
		size_t i = (size_t)from[k];

		if (from[k] >= 0 && !p->cfg) {
			wk_pool_create(p, next, i);
			log_info(NULL, "reload: pool %s added (id %u)", p->name, k);
		} else if (from[k] >= 0) {
			bool differs =
				p->is_draining ||
				config_pool_differs(p->owner, (size_t)(p->cfg - p->owner->pools),
						    next, i);

			wk_pool_point(p, next, i);
			if (!differs)
				continue;
			/* rebuilt: servers with the old settings go, at check-in for busy ones */
			p->is_draining = false;
			p->epoch++;
			p->retry_after_us = 0;
			p->has_client_key = false;
			secret_wipe(p->client_key, sizeof(p->client_key));
			wk_pool_close_idle_of(p, "pool settings changed by a reload");
			(void)wk_pool_resolve(p);
			log_info(
				NULL,
				"reload: pool %s changed: rebuilt (busy servers close at check-in)",
				p->name);
		} else if (p->cfg && !p->is_draining) {
			p->is_draining = true;
			p->epoch++;
			wk_pool_fail_waiters(p);
			wk_pool_close_idle_of(p, "pool removed by a reload");
			log_info(
				NULL,
				"reload: pool %s removed: its clients are closed when their transaction ends",
				p->name);
		}
	}
	free(from);
}

void
wk_pool_drain_sweep(void)
{
	for (uint32_t k = 0; k < wk_pools_cnt; k++) {
		struct wk_pool *p = &wk_pools[k];
		struct list *pos, *tmp;
		bool has_clients = false;

		if (!p->cfg || !p->is_draining)
			continue;
		list_foreach_safe (pos, tmp, &g_wk.clients) {
			struct wk_client *c = list_entry(pos, struct wk_client, node);

			if (c->pool != p && c->pool_idx != (int)k)
				continue;
			if (c->state == WK_CLIENT_CLOSING || !wk_client_close_if_idle(c))
				has_clients = true;
		}
		wk_pool_close_idle_of(p, "pool removed by a reload");
		if (has_clients || wk_pool_local_total_all(p))
			continue;
		/* nothing of it left here: its index may serve another pool later */
		log_info(NULL, "reload: pool %s drained in this worker", p->name);
		p->cfg = NULL;
		p->user = NULL;
		p->db = NULL;
		p->owner = NULL;
		p->is_draining = false;
		shm_ctl_lock();
		atomic_store(&shm_pool_ident(k)->refs[g_wk.slot], 0);
		shm_ctl_unlock();
	}
}

void
wk_pool_update_holds(bool (*is_held)(const struct wk_pool *p),
		     bool (*is_banned)(const struct wk_pool *p))
{
	for (uint32_t k = 0; k < wk_pools_cnt; k++) {
		struct wk_pool *p = &wk_pools[k];
		bool was_held;

		if (!p->cfg)
			continue;
		was_held = p->is_held;
		p->is_held = is_held(p);
		p->is_banned = is_banned(p);
		if (p->is_banned) {
			struct list *pos, *tmp;

			list_foreach_safe (pos, tmp, &p->waiters) {
				struct wk_client *c = list_entry(pos, struct wk_client, wait_node);

				if (c->state == WK_CLIENT_LOGIN_WAIT)
					continue;
				wk_pool_unwait(p, c);
				wk_client_fatal(
					c, SQLSTATE_CONNECTION_FAILURE,
					"pool \"%s\" is banned (BAN on the admin console): no new transactions until UNBAN or ban_timeout",
					p->name);
			}
		}
		if (was_held && !p->is_held && p->waiters_cnt) {
			wk_pool_hand_out(p);
			wk_pool_grow(p);
		}
	}
}

static bool
wk_pool_is_of(const struct wk_pool *p, const char *db)
{
	return p->cfg && (!db || strcmp(p->db->name, db) == 0);
}

void
wk_pool_reconnect(const char *db)
{
	for (uint32_t k = 0; k < wk_pools_cnt; k++) {
		struct wk_pool *p = &wk_pools[k];

		if (!wk_pool_is_of(p, db))
			continue;
		p->epoch++;
		wk_pool_close_idle_of(p, "RECONNECT");
	}
}

void
wk_pool_kill_servers(const char *db)
{
	for (uint32_t k = 0; k < wk_pools_cnt; k++) {
		struct wk_pool *p = &wk_pools[k];

		if (!wk_pool_is_of(p, db))
			continue;
		p->epoch++;
		wk_pool_close_idle_of(p, "KILL");
	}
}

void
wk_pool_close_all(void)
{
	for (uint32_t i = 0; i < wk_pools_cnt; i++) {
		struct wk_pool *p = &wk_pools[i];

		if (!p->cfg)
			continue;
		for (int st = 0; st < WK_SERVER_STATE_CNT; st++) {
			struct list *pos, *tmp;

			list_foreach_safe (pos, tmp, &p->servers[st]) {
				struct wk_server *s = list_entry(pos, struct wk_server, node);

				if (s->state != WK_SERVER_CLOSING)
					wk_server_close(s, "worker exit");
				wk_server_gone(s);
			}
		}
	}
}

void
wk_pool_cleanup_all(void)
{
	for (uint32_t i = 0; i < wk_pools_cnt; i++)
		secret_wipe(wk_pools[i].client_key, sizeof(wk_pools[i].client_key));
	free(wk_pools);
	wk_pools = NULL;
	wk_pools_cnt = wk_pools_cap = 0;
}

static uint32_t
wk_pool_local_total(const struct wk_pool *p)
{
	uint32_t n = 0;

	for (int st = 0; st < WK_SERVER_STATE_CNT; st++)
		if (st != WK_SERVER_CLOSING)
			n += p->servers_cnt[st];
	return n;
}

/* Every server, closing ones too. */
static uint32_t
wk_pool_local_total_all(const struct wk_pool *p)
{
	uint32_t n = 0;

	for (int st = 0; st < WK_SERVER_STATE_CNT; st++)
		n += p->servers_cnt[st];
	return n;
}

/*
 * Publish the gauge SHOW POOLS shows for servers in state st (CLOSING ones
 * are not shown). A move touches two states: only their gauges are stored.
 */
static inline void
wk_pool_gauge(struct wk_pool *p, enum wk_server_state st)
{
	if (st == WK_SERVER_IDLE)
		atomic_store_explicit(&p->stats->sv_idle, p->servers_cnt[WK_SERVER_IDLE],
				      memory_order_relaxed);
	else if (st == WK_SERVER_ACTIVE)
		atomic_store_explicit(&p->stats->sv_active, p->servers_cnt[WK_SERVER_ACTIVE],
				      memory_order_relaxed);
	else if (st != WK_SERVER_CLOSING)
		atomic_store_explicit(&p->stats->sv_login,
				      p->servers_cnt[WK_SERVER_CONNECTING] +
					      p->servers_cnt[WK_SERVER_LOGIN] +
					      p->servers_cnt[WK_SERVER_RESET],
				      memory_order_relaxed);
}

static void
wk_pool_waiting_gauge(struct wk_pool *p)
{
	atomic_store_explicit(&p->stats->cl_waiting, p->waiters_cnt, memory_order_relaxed);
}

void
wk_pool_move(struct wk_pool *p, struct wk_server *s, enum wk_server_state from,
	     enum wk_server_state to)
{
	if (from == to && !list_empty(&s->node))
		return;
	if (!list_empty(&s->node)) {
		list_del(&s->node);
		p->servers_cnt[from]--;
		wk_pool_gauge(p, from);
	}
	/*
	 * Checkout takes the first idle server. By default that is the one used
	 * last: the same few connections (warm caches, statements already
	 * prepared, backends the scheduler keeps in place) carry the load and the
	 * rest reach idle_timeout. server_round_robin spreads it evenly instead.
	 */
	if (to == WK_SERVER_IDLE && !g_cfg->server_round_robin)
		list_prepend(&p->servers[to], &s->node);
	else
		list_append(&p->servers[to], &s->node);
	p->servers_cnt[to]++;
	wk_pool_gauge(p, to);
}

void
wk_pool_forget(struct wk_pool *p, struct wk_server *s)
{
	if (list_empty(&s->node))
		return;
	list_del(&s->node);
	p->servers_cnt[s->state]--;
	wk_pool_gauge(p, s->state);
}

/*
 * Sharing the cap between workers. While clients of other workers wait for
 * this pool, a worker's share is ceil(pool_size / workers with demand
 * (servers or waiters)): it opens no server beyond its share, and when one
 * of its servers comes free it gives it back (closes it) instead of serving
 * its own next client if it holds more than its share, or if another worker
 * is starving: it has clients waiting and no server at all (with pool_size
 * below the number of workers the cap then alternates), or its oldest
 * client has waited WK_POOL_SHARE_SLICE_US (its servers are held by long
 * transactions while this worker's turn over) and began to wait at least
 * that long before this worker's oldest waiting client, if any. Given back
 * only once its own clients have had the server for WK_POOL_SHARE_SLICE_US
 * since it connected; and then it opens no new one for WK_POOL_YIELD_US
 * while the other worker still starves, so that it takes the cap (at its
 * next sweep). (Given back at once, a server that connected for a worker's
 * clients served one transaction or none, and the worker that gave it back
 * took the cap again before the starving one looked: hundreds of
 * connections a second, and nobody served.) The starving worker, for its
 * part, may open one beyond its share (and keeps it while it starves). The
 * sweep also gives back servers idle for a while with no client of their
 * own waiting. Nothing moves while nobody else waits, so the cap is not
 * passed back and forth on every transaction (each pass costs PostgreSQL a
 * new connection).
 */
struct wk_pool_demand {
	uint32_t waiting_elsewhere; /* clients waiting in other workers */
	uint32_t share;             /* servers this worker may hold */
	bool is_other_starving;     /* another worker starves (see above) */
	/* this worker's oldest client has waited the slice, longer than any other's */
	bool is_self_starving;
};

static void
wk_pool_demand(struct wk_pool *p, struct wk_pool_demand *d)
{
	struct shm_pool *sp = p->shm;
	uint32_t slot = (uint32_t)g_wk.slot, workers = 0;
	uint64_t mine = 0; /* when this worker's oldest waiter began to wait */

	if (p->waiters_cnt)
		mine = list_entry(list_first(&p->waiters), struct wk_client, wait_node)
			       ->wait_start_us;
	memset(d, 0, sizeof(*d));
	d->is_self_starving = mine && g_wk.mono_us - mine >= WK_POOL_SHARE_SLICE_US;
	for (uint32_t w = 0; w < g_shm->workers_cnt; w++) {
		uint32_t wt = atomic_load_explicit(&sp->waiting[w], memory_order_relaxed);
		uint32_t open = sp->open[w]; /* racy read: a hint, checked again later */
		uint64_t since;

		if (w == slot || wt || open)
			workers++;
		if (w == slot || !wt)
			continue;
		d->waiting_elsewhere += wt;
		/*
		 * A queue counts as starving when its oldest client has waited
		 * the slice and began to wait a slice before the other's oldest:
		 * under a load that keeps both queues long, nothing moves.
		 */
		since = atomic_load_explicit(&sp->wait_since_us[w], memory_order_relaxed);
		if (!since || since < mine + WK_POOL_SHARE_SLICE_US)
			d->is_self_starving = false;
		if (!open || (since && g_wk.mono_us - since >= WK_POOL_SHARE_SLICE_US &&
			      (!mine || mine >= since + WK_POOL_SHARE_SLICE_US)))
			d->is_other_starving = true;
	}
	d->share = ((uint32_t)p->cfg->pool_size + workers - 1) / workers;
}

/* Whether clients of other workers wait for p: the common answer, no, settles the demand. */
static bool
wk_pool_others_wait(const struct wk_pool *p)
{
	const struct shm_pool *sp = p->shm;
	uint32_t slot = (uint32_t)g_wk.slot, n = g_shm->workers_cnt;

	for (uint32_t w = 0; w < n; w++)
		if (w != slot && atomic_load_explicit(&sp->waiting[w], memory_order_relaxed))
			return true;
	return false;
}

static bool
wk_pool_is_over_share(struct wk_pool *p, const struct wk_server *s)
{
	struct wk_pool_demand d;

	if (!wk_pool_others_wait(p))
		return false;
	wk_pool_demand(p, &d);
	if (!d.waiting_elsewhere || d.is_self_starving)
		return false;
	if (wk_pool_local_total(p) > d.share)
		return true;
	return d.is_other_starving && g_wk.mono_us - s->connect_us >= WK_POOL_SHARE_SLICE_US;
}

/* Close s for another worker's waiters, and let them have the cap before opening again. */
static void
wk_pool_give_back(struct wk_pool *p, struct wk_server *s)
{
	p->yield_until_us = g_wk.mono_us + WK_POOL_YIELD_US;
	wk_server_close(s, "another worker has clients waiting for this pool");
}

/*
 * Binary upgrade, old worker: a server nobody here waits for goes back at
 * once when another worker (the new generation) waits for the pool's cap,
 * so the handed-over clients never wait on servers this worker keeps idle.
 */
static bool
wk_pool_is_upgrade_surplus(struct wk_pool *p)
{
	return wk_handoff_is_sending() && p->waiters_cnt == 0 &&
	       shm_pool_waiting_elsewhere(p->idx, (uint32_t)g_wk.slot) > 0;
}

static bool
wk_pool_may_grow(struct wk_pool *p)
{
	struct wk_pool_demand d;

	wk_pool_demand(p, &d);
	if (d.is_other_starving && g_wk.mono_us < p->yield_until_us)
		return false;
	return !d.waiting_elsewhere || wk_pool_local_total(p) < d.share || d.is_self_starving;
}

/*
 * Open one more connection if the global cap allows. While shutting down
 * only for clients waiting (their requests run, as on a server this worker
 * still has).
 */
static bool
wk_pool_open_one(struct wk_pool *p)
{
	struct wk_server *s;

	if ((g_wk.is_shutting_down && !p->waiters_cnt) || g_wk.mono_us < p->retry_after_us ||
	    !wk_pool_may_grow(p))
		return false;
	if (p->is_draining || p->is_banned) /* removed by a reload, or BAN: no new servers */
		return false;
	if (!shm_pool_reserve(p->idx, (uint32_t)g_wk.slot, (uint32_t)p->cfg->pool_size))
		return false;
	s = wk_server_connect(p);
	if (s)
		s->epoch = p->epoch;
	if (!s && (errno == EMFILE || errno == ENFILE)) {
		/* this process is out of descriptors: its waiters wait for a server to free up */
		log_warn(NULL, "pool %s: cannot open a server connection: %s", p->name,
			 strerror(errno));
		shm_pool_release(p->idx, (uint32_t)g_wk.slot);
		p->retry_after_us = g_wk.mono_us + WK_POOL_RETRY_US;
		return false;
	}
	if (!s) {
		char msg[256];

		snprintf(msg, sizeof(msg), "could not open a connection to server \"%s:%d\": %s",
			 p->db->host, p->db->port, strerror(errno));
		shm_pool_release(p->idx, (uint32_t)g_wk.slot);
		p->retry_after_us = g_wk.mono_us + WK_POOL_RETRY_US;
		wk_pool_server_failed(p, SQLSTATE_CONNECTION_FAILURE, msg);
		return false;
	}
	return true;
}

/* Open connections for waiters that no pending connection will serve. */
static void
wk_pool_grow(struct wk_pool *p)
{
	uint32_t pending = p->servers_cnt[WK_SERVER_CONNECTING] + p->servers_cnt[WK_SERVER_LOGIN] +
			   p->servers_cnt[WK_SERVER_RESET];

	if (p->is_held || p->is_draining || p->is_banned)
		return;
	while (p->waiters_cnt > pending && wk_pool_open_one(p))
		pending++;
}

static void
wk_pool_wait_add(struct wk_pool *p, struct wk_client *c)
{
	list_append(&p->waiters, &c->wait_node);
	p->waiters_cnt++;
	c->wait_start_us = g_wk.mono_us;
	if (p->waiters_cnt == 1) /* the oldest now (the queue is FIFO) */
		atomic_store_explicit(&p->shm->wait_since_us[g_wk.slot], c->wait_start_us,
				      memory_order_relaxed);
	atomic_fetch_add_explicit(&p->shm->waiting[g_wk.slot], 1, memory_order_relaxed);
	wk_pool_waiting_gauge(p);
}

void
wk_pool_unwait(struct wk_pool *p, struct wk_client *c)
{
	bool was_first;

	if (list_empty(&c->wait_node))
		return;
	was_first = list_first(&p->waiters) == &c->wait_node;
	list_del(&c->wait_node);
	p->waiters_cnt--;
	if (was_first)
		atomic_store_explicit(&p->shm->wait_since_us[g_wk.slot],
				      p->waiters_cnt ? list_entry(list_first(&p->waiters),
								  struct wk_client, wait_node)
							       ->wait_start_us
						     : 0,
				      memory_order_relaxed);
	atomic_fetch_sub_explicit(&p->shm->waiting[g_wk.slot], 1, memory_order_relaxed);
	wk_pool_waiting_gauge(p);
}

/* PAUSE / MAINTENANCE: only logins that need no server go on; requests stay queued. */
static void
wk_pool_hand_out_held(struct wk_pool *p)
{
	struct list *pos, *tmp;

	if (!wk_pool_has_params(p))
		return;
	list_foreach_safe (pos, tmp, &p->waiters) {
		struct wk_client *c = list_entry(pos, struct wk_client, wait_node);

		if (c->state != WK_CLIENT_LOGIN_WAIT)
			continue;
		wk_pool_unwait(p, c);
		(void)wk_client_finish_login(c);
	}
}

static void wk_pool_hand_out_free(struct wk_pool *p);

/*
 * Give idle servers to waiters, oldest first. Not nested: a login that ends
 * in the loop may queue again for a server (wk_client_finish_login), and a
 * server may come back while a waiter is linked; the loop looks at the
 * queue and the idle list afresh each time round.
 */
static void
wk_pool_hand_out(struct wk_pool *p)
{
	if (p->is_handing_out)
		return;
	p->is_handing_out = true;
	if (p->is_held)
		wk_pool_hand_out_held(p);
	else
		wk_pool_hand_out_free(p);
	p->is_handing_out = false;
}

static void
wk_pool_hand_out_free(struct wk_pool *p)
{
	while (!list_empty(&p->waiters)) {
		struct wk_client *c =
			list_entry(list_first(&p->waiters), struct wk_client, wait_node);

		if (c->state == WK_CLIENT_LOGIN_WAIT) {
			if (!wk_pool_has_params(p))
				break;
			wk_pool_unwait(p, c);
			(void)wk_client_finish_login(c);
			continue;
		}
		if (list_empty(&p->servers[WK_SERVER_IDLE]))
			break;
		wk_pool_unwait(p, c);
		wk_stats_assign(p, c);
		(void)wk_client_attach(c, list_entry(list_first(&p->servers[WK_SERVER_IDLE]),
						     struct wk_server, node));
	}
}

enum wk_rc
wk_pool_checkout(struct wk_pool *p, struct wk_client *c)
{
	if (p->is_draining)
		return wk_client_fatal(
			c, SQLSTATE_ADMIN_SHUTDOWN,
			"terminating connection: database \"%s\" was removed from the configuration",
			p->db->name);
	if (p->is_banned && c->state != WK_CLIENT_LOGIN_WAIT)
		return wk_client_fatal(
			c, SQLSTATE_CONNECTION_FAILURE,
			"pool \"%s\" is banned (BAN on the admin console): no new transactions until UNBAN or ban_timeout",
			p->name);
	if (c->state != WK_CLIENT_LOGIN_WAIT && wk_pool_is_checkout_now(p)) {
		/*
		 * The common case, nobody queued and a server idle: what queueing
		 * and wk_pool_hand_out() would do at once, without the queue's
		 * counters going up and down (the same totals: a wait of 0 µs).
		 */
		wk_stats_add(p, SHM_STAT_ASSIGN, 1); /* wk_stats_assign with a wait of 0 */
		(void)wk_client_attach(c, list_entry(list_first(&p->servers[WK_SERVER_IDLE]),
						     struct wk_server, node));
		return c->state == WK_CLIENT_CLOSING ? WK_CLOSED : WK_OK;
	}
	/* an idle client's request waits (it went straight to ACTIVE above) */
	if (c->state == WK_CLIENT_IDLE)
		wk_client_set_state(c, WK_CLIENT_WAIT_SERVER);
	wk_pool_wait_add(p, c);
	wk_pool_hand_out(p);
	if (c->state == WK_CLIENT_CLOSING)
		return WK_CLOSED;
	if (!list_empty(&c->wait_node))
		wk_pool_grow(p);
	return c->state == WK_CLIENT_CLOSING ? WK_CLOSED : WK_OK;
}

void
wk_pool_learn_params(struct wk_pool *p, const struct wk_server *s)
{
	char pairs[SHM_POOL_PARAMS_MAX];
	size_t len = 0;

	memcpy(p->params, s->params, sizeof(s->params[0]) * s->params_cnt);
	p->params_cnt = s->params_cnt;
	p->has_params = true;
	/* for logins on the other workers, which may have no server of the pool to ask */
	for (size_t i = 0; i < s->params_cnt; i++) {
		size_t n = strlen(s->params[i].name) + 1, v = strlen(s->params[i].value) + 1;

		if (len + n + v > sizeof(pairs))
			return; /* does not fit: each worker learns them from a server of its own */
		memcpy(pairs + len, s->params[i].name, n);
		memcpy(pairs + len + n, s->params[i].value, v);
		len += n + v;
	}
	(void)shm_pool_params_put(p->idx, pairs, len);
}

bool
wk_pool_has_params(struct wk_pool *p)
{
	const char *pairs;
	size_t len, off = 0, cnt = 0;

	if (p->has_params)
		return true;
	pairs = shm_pool_params_get(p->idx, &len);
	if (!pairs)
		return false;
	/* "name\0value\0" pairs, each string ended inside the len bytes (wk_pool_learn_params) */
	while (off < len && cnt < WK_SERVER_PARAMS_MAX) {
		const char *name = pairs + off, *value;

		off += strnlen(name, len - off) + 1;
		if (off >= len)
			break;
		value = pairs + off;
		off += strnlen(value, len - off) + 1;
		snprintf(p->params[cnt].name, sizeof(p->params[cnt].name), "%s", name);
		snprintf(p->params[cnt].value, sizeof(p->params[cnt].value), "%s", value);
		cnt++;
	}
	p->params_cnt = cnt;
	p->has_params = true;
	return true;
}

void
wk_pool_server_ready(struct wk_pool *p, struct wk_server *s)
{
	if (s->lifetime_us && g_wk.mono_us - s->connect_us > s->lifetime_us) {
		wk_server_close(s, "server_lifetime reached");
		return;
	}
	if (s->epoch != p->epoch) {
		wk_stats_add(p, SHM_STAT_FORCE_CLOSED, 1);
		wk_server_close(s, p->is_draining ? "pool removed by a reload"
						  : "pool rebuilt (reload or RECONNECT)");
		return;
	}
	if (g_wk.is_shutting_down && list_empty(&p->waiters)) {
		wk_stats_add(p, SHM_STAT_FORCE_CLOSED, 1);
		wk_server_close(s, "shutting down");
		return;
	}
	if (wk_pool_is_over_share(p, s)) {
		/* another worker's clients wait for this pool's cap: give back what is beyond our share */
		wk_pool_give_back(p, s);
		return;
	}
	if (wk_pool_is_upgrade_surplus(p)) {
		wk_server_close(s, "binary upgrade: the new generation has clients waiting");
		return;
	}
	wk_server_set_state(s, WK_SERVER_IDLE);
	p->retry_after_us = 0;
	if (!list_empty(&p->waiters))
		wk_pool_hand_out(p);
}

void
wk_pool_server_gone(struct wk_pool *p, struct wk_server *s)
{
	if (s->is_reserved) {
		s->is_reserved = false;
		shm_pool_release(p->idx, (uint32_t)g_wk.slot);
	}
	if (p->waiters_cnt)
		wk_pool_grow(p);
}

void
wk_pool_server_failed(struct wk_pool *p, const char *sqlstate, const char *message)
{
	struct list *pos, *tmp;

	p->retry_after_us = g_wk.mono_us + WK_POOL_RETRY_US;
	wk_stats_connect_result(p, true);
	/* every waiter needs this server: tell them all why it cannot be had */
	list_foreach_safe (pos, tmp, &p->waiters) {
		struct wk_client *c = list_entry(pos, struct wk_client, wait_node);

		wk_pool_unwait(p, c);
		wk_client_fatal(c, sqlstate, "%s", message);
	}
}

static void
wk_pool_sweep_one(struct wk_pool *p)
{
	uint64_t now = g_wk.mono_us;
	uint64_t checkout = (uint64_t)g_cfg->checkout_timeout * 1000;
	uint64_t connect = (uint64_t)g_cfg->connect_timeout * 1000;
	uint64_t idle = (uint64_t)p->cfg->idle_timeout * 1000;
	uint64_t rollback = (uint64_t)g_cfg->rollback_timeout * 1000;
	struct list *pos, *tmp;

	/* clients waiting too long */
	list_foreach_safe (pos, tmp, &p->waiters) {
		struct wk_client *c = list_entry(pos, struct wk_client, wait_node);

		if (now - c->wait_start_us < checkout)
			break;
		wk_pool_unwait(p, c);
		atomic_fetch_add_explicit(&p->stats->checkout_timeouts, 1, memory_order_relaxed);
		wk_stats_add(p, SHM_STAT_ERRORS, 1);
		if (p->is_held)
			wk_client_fatal(
				c, SQLSTATE_TOO_MANY_CONNECTIONS,
				"could not get a server connection from pool \"%s\" within checkout_timeout (%d ms): the pool is paused (PAUSE or MAINTENANCE on the admin console)",
				p->name, g_cfg->checkout_timeout);
		else
			wk_client_fatal(
				c, SQLSTATE_TOO_MANY_CONNECTIONS,
				"could not get a server connection from pool \"%s\" within checkout_timeout (%d ms): all %d connections are in use",
				p->name, g_cfg->checkout_timeout, p->cfg->pool_size);
	}
	/* servers stuck connecting, logging in or resetting */
	for (int st = WK_SERVER_CONNECTING; st <= WK_SERVER_RESET; st++) {
		if (st == WK_SERVER_IDLE || st == WK_SERVER_ACTIVE)
			continue;
		list_foreach_safe (pos, tmp, &p->servers[st]) {
			struct wk_server *s = list_entry(pos, struct wk_server, node);
			char msg[256];

			if (now - s->state_since_us < (st == WK_SERVER_RESET ? rollback : connect))
				continue;
			if (st == WK_SERVER_RESET)
				snprintf(
					msg, sizeof(msg),
					"server did not finish its rollback within rollback_timeout (%d ms)",
					g_cfg->rollback_timeout);
			else
				snprintf(
					msg, sizeof(msg),
					"connection to server for pool \"%s\" timed out after connect_timeout (%d ms)",
					p->name, g_cfg->connect_timeout);
			if (st != WK_SERVER_RESET)
				wk_pool_server_failed(p, SQLSTATE_CONNECTION_FAILURE, msg);
			else
				wk_stats_add(p, SHM_STAT_OUT_OF_SYNC, 1);
			wk_server_close(s, msg);
		}
	}
	/* backends that did not hang up within a second after Terminate */
	list_foreach_safe (pos, tmp, &p->servers[WK_SERVER_CLOSING]) {
		struct wk_server *s = list_entry(pos, struct wk_server, node);

		if (!s->is_free_later && now - s->closing_since_us > WK_POOL_CLOSE_WAIT_US)
			wk_server_gone(s);
	}
	/* idle servers: idle_timeout, server_lifetime, and other workers' waiters */
	list_foreach_safe (pos, tmp, &p->servers[WK_SERVER_IDLE]) {
		struct wk_server *s = list_entry(pos, struct wk_server, node);
		bool above_min = wk_pool_local_total(p) > p->min_share;

		if (s->lifetime_us && now - s->connect_us > s->lifetime_us)
			wk_server_close(s, "server_lifetime reached");
		else if (idle && above_min && now - s->state_since_us > idle)
			wk_server_close(s, "idle_timeout reached");
		else if (wk_pool_is_over_share(p, s) || wk_pool_is_upgrade_surplus(p) ||
			 (p->waiters_cnt == 0 && now - s->state_since_us > WK_POOL_GIVE_BACK_US &&
			  shm_pool_waiting_elsewhere(p->idx, (uint32_t)g_wk.slot) > 0))
			wk_pool_give_back(p, s);
	}
	/* a login waiting for the parameters another worker has learned since */
	if (p->waiters_cnt && !p->has_params && wk_pool_has_params(p))
		wk_pool_hand_out(p);
	if (p->waiters_cnt)
		wk_pool_grow(p);
	else if (!g_wk.is_shutting_down && wk_pool_local_total(p) < p->min_share)
		(void)wk_pool_open_one(p);
	if (p->waiters_cnt) {
		struct wk_client *c =
			list_entry(list_first(&p->waiters), struct wk_client, wait_node);

		atomic_store_explicit(&p->stats->maxwait_us, now - c->wait_start_us,
				      memory_order_relaxed);
	} else {
		atomic_store_explicit(&p->stats->maxwait_us, 0, memory_order_relaxed);
	}
}

void
wk_pool_sweep(void)
{
	for (uint32_t i = 0; i < wk_pools_cnt; i++)
		if (wk_pools[i].cfg)
			wk_pool_sweep_one(&wk_pools[i]);
	wk_stats_tick();
}

void
wk_pool_close_idle(void)
{
	for (uint32_t i = 0; i < wk_pools_cnt; i++) {
		struct wk_pool *p = &wk_pools[i];

		if (p->cfg)
			wk_pool_close_idle_of(p, "shutting down");
	}
}
