/*
 * wk_ctl.c: the worker's side of the control area (see wk_ctl.h).
 * Runs in: a worker.
 *
 * Reload: the supervisor writes the exact texts it validated, and the
 * index of each pool, into the segment and bumps cfg_gen; each worker
 * copies them under the control lock, parses the same bytes, re-checks
 * under the lock that no newer reload was published meanwhile (else it
 * starts over), registers its references to the pools and applies the
 * result. A worker never parses a file itself, so it cannot see a
 * configuration the supervisor rejected.
 *
 * Configurations a worker stops using are kept while anything may still
 * point into them: a draining pool, or a client still logging in (its
 * SCRAM state and user entry came from there). The sweep frees them.
 */
#include "worker/wk_ctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "shared/config.h"
#include "shared/log.h"
#include "shared/secret.h"
#include "worker/wk_admin_ctl.h"
#include "worker/wk_client.h"
#include "worker/wk_conn.h"
#include "worker/wk_pool.h"

struct wk_ctl_retired {
	struct config *cfg;
	uint64_t since_us; /* monotonic: clients that connected later never saw it */
};

/* What the holds and bans say, copied out of the control area at each wake-up. */
struct wk_ctl_view {
	bool is_maintenance;
	bool is_pause_all;
	uint32_t paused_cnt;
	char paused[SHM_CTL_PAUSED_MAX][SHM_NAME_MAX];
	uint32_t bans_cnt;
	struct {
		char database[SHM_NAME_MAX];
		char user[SHM_NAME_MAX];
		uint64_t expires_at_us; /* wall clock; 0: until UNBAN */
	} bans[SHM_BANS_MAX];
};

static struct {
	uint64_t cfg_gen;
	uint64_t cmd_seq;
	bool is_own;           /* g_cfg was parsed here (else inherited from the supervisor) */
	struct event *wake_ev; /* deferred self wake-up */
	struct wk_ctl_retired *retired;
	size_t retired_cnt, retired_cap;
	struct wk_ctl_view view;
	int32_t parent; /* our supervisor: we apply only configurations it published */
} wk_ctl;

uint64_t
wk_ctl_cfg_gen(void)
{
	return wk_ctl.cfg_gen;
}

/*
 * Was the published configuration written by our supervisor? After a binary
 * upgrade the new generation publishes its own: the draining old workers
 * keep theirs (the new binary's files may not even parse in the old one).
 */
static bool
wk_ctl_is_ours(void)
{
	return shm_cfg_blob()->publisher_pid == wk_ctl.parent;
}

/*
 * Copy the published configuration, parse it, and register this worker's
 * references to its pools under the lock, if it is still the newest.
 * 0 with *out (owned) and *map_out (malloc'd); -1 on failure (logged).
 */
static int
wk_ctl_load(struct config **out, uint32_t **map_out, uint64_t *gen_out)
{
	struct shm_ctl *ctl = shm_ctl();

	for (int tries = 0; tries < 8; tries++) {
		struct shm_cfg_blob hdr, *blob = shm_cfg_blob();
		struct config *next = NULL;
		uint32_t *map = NULL;
		char *data = NULL, err[1024], restart[512];
		const char *names[2], *texts[2] = { NULL, NULL }, **urls = NULL, *q;
		uint64_t gen;

		shm_ctl_lock();
		gen = ctl->cfg_gen;
		hdr = *blob;
		if (hdr.publisher_pid != wk_ctl.parent) {
			/* a newer generation's: not for us (see wk_ctl_is_ours) */
			shm_ctl_unlock();
			wk_ctl.cfg_gen = gen;
			return -1;
		}
		data = malloc(hdr.len + 1);
		if (data)
			memcpy(data, blob + 1, hdr.len);
		shm_ctl_unlock();
		if (!data)
			goto oom;
		data[hdr.len] = '\0';
		map = malloc(sizeof(*map) * (hdr.pools_cnt ? hdr.pools_cnt : 1));
		urls = calloc(hdr.urls_cnt ? hdr.urls_cnt : 1, sizeof(*urls));
		if (!map || !urls) {
			free(map);
			free(urls);
			free(data);
			goto oom;
		}
		memcpy(map, data, sizeof(*map) * hdr.pools_cnt);
		q = data + sizeof(*map) * hdr.pools_cnt;
		names[0] = q;
		q += strlen(q) + 1;
		names[1] = q;
		q += strlen(q) + 1;
		if (hdr.has_config) {
			texts[0] = q;
			q += strlen(q) + 1;
		}
		if (hdr.has_users) {
			texts[1] = q;
			q += strlen(q) + 1;
		}
		for (uint32_t i = 0; i < hdr.urls_cnt; i++) {
			urls[i] = q;
			q += strlen(q) + 1;
		}
		next = config_new();
		if (!next ||
		    config_load_texts(next, names[0][0] ? names[0] : NULL, texts[0],
				      names[1][0] ? names[1] : NULL, texts[1], urls, hdr.urls_cnt,
				      err, sizeof(err)) < 0 ||
		    config_keep_restart_only(next, g_cfg, restart, sizeof(restart)) < 0 ||
		    next->pools_cnt != hdr.pools_cnt) {
			/* the supervisor parsed these bytes: only memory can fail here */
			log_error(
				NULL,
				"reload: cannot apply the published configuration (generation %llu): %s",
				(unsigned long long)gen, next ? err : "out of memory");
			config_free(next);
			free(map);
			free(urls);
			secret_wipe(data, hdr.len);
			free(data);
			return -1;
		}
		free(urls);
		secret_wipe(data, hdr.len);
		free(data);
		shm_ctl_lock();
		if (ctl->cfg_gen != gen) {
			/* another reload was published meanwhile: take that one */
			shm_ctl_unlock();
			config_free(next);
			free(map);
			continue;
		}
		for (uint32_t i = 0; i < hdr.pools_cnt; i++)
			if (map[i] < g_shm->pools_cap)
				atomic_store(&shm_pool_ident(map[i])->refs[g_wk.slot], 1);
		shm_ctl_unlock();
		*out = next;
		*map_out = map;
		*gen_out = gen;
		return 0;
	}
	log_error(NULL, "reload: the configuration kept changing while this worker read it");
	return -1;
oom:
	log_error(NULL, "reload: out of memory reading the published configuration");
	return -1;
}

static void
wk_ctl_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	wk_clock_update();
	wk_ctl_wake();
}

void
wk_ctl_wake_self(void)
{
	if (wk_ctl.wake_ev)
		event_active(wk_ctl.wake_ev, 0, 0);
}

int
wk_ctl_init(void)
{
	struct shm_ctl *ctl = shm_ctl();
	uint32_t *map = NULL;
	bool is_inherited;
	int rc;

	wk_ctl.wake_ev = event_new(g_wk.base, -1, 0, wk_ctl_wake_cb, NULL);
	if (!wk_ctl.wake_ev)
		return -1;
	wk_ctl.parent = (int32_t)getppid();
	shm_ctl_lock();
	wk_ctl.cmd_seq = ctl->cmd_seq; /* commands posted before this worker existed are not its */
	wk_ctl.cfg_gen = ctl->cfg_gen;
	is_inherited = wk_ctl.cfg_gen == 0 || !wk_ctl_is_ours();
	if (is_inherited) {
		/*
		 * No reload yet (pool i at index i), or the published one is not our
		 * supervisor's (a binary upgrade is taking over): the configuration
		 * and indexes inherited from it.
		 */
		for (size_t i = 0; i < g_cfg->pools_cnt; i++) {
			uint32_t idx = g_shm_own_map ? g_shm_own_map[i] : (uint32_t)i;

			if (idx < g_shm->pools_cap)
				atomic_store(&shm_pool_ident(idx)->refs[g_wk.slot], 1);
		}
	}
	shm_ctl_unlock();
	if (is_inherited) {
		if (g_shm_own_map) {
			map = malloc(sizeof(*map) * (g_cfg->pools_cnt ? g_cfg->pools_cnt : 1));
			if (!map)
				return -1;
			memcpy(map, g_shm_own_map, sizeof(*map) * g_cfg->pools_cnt);
		}
	} else {
		struct config *next;
		uint64_t gen;

		if (wk_ctl_load(&next, &map, &gen) < 0) {
			errno = ENOMEM;
			return -1;
		}
		/* the inherited copy is the supervisor's: this worker's own replaces it */
		g_cfg = next;
		g_log_level = next->log_level;
		wk_ctl.is_own = true;
		wk_ctl.cfg_gen = gen;
	}
	rc = wk_pool_init_all(map);
	free(map);
	if (rc < 0)
		return -1;
	wk_ctl_wake();
	return 0;
}

static void
wk_ctl_retire(struct config *cfg)
{
	if (wk_ctl.retired_cnt == wk_ctl.retired_cap) {
		size_t cap = wk_ctl.retired_cap ? wk_ctl.retired_cap * 2 : 8;
		struct wk_ctl_retired *r = realloc(wk_ctl.retired, cap * sizeof(*r));

		if (!r) {
			/* out of memory: leak it rather than free what a pool may still point into */
			log_warn(NULL,
				 "reload: out of memory: an old configuration stays allocated");
			return;
		}
		wk_ctl.retired = r;
		wk_ctl.retired_cap = cap;
	}
	wk_ctl.retired[wk_ctl.retired_cnt].cfg = cfg;
	wk_ctl.retired[wk_ctl.retired_cnt].since_us = g_wk.mono_us;
	wk_ctl.retired_cnt++;
}

static void
wk_ctl_apply_config(void)
{
	struct config *next;
	uint32_t *map;
	uint64_t gen;
	struct list *pos;

	if (wk_ctl_load(&next, &map, &gen) < 0)
		return;
	wk_pool_apply(next, map);
	free(map);
	/* clients of live pools now authenticate and log with the new entries */
	list_foreach (pos, &g_wk.clients) {
		struct wk_client *c = list_entry(pos, struct wk_client, node);

		if (c->pool && c->pool->cfg && c->pool->owner == next)
			c->user = c->pool->user;
	}
	if (wk_ctl.is_own)
		wk_ctl_retire((struct config *)g_cfg);
	wk_ctl.is_own = true;
	g_cfg = next;
	g_log_level = next->log_level;
	log_info(NULL, "reload: configuration generation %llu applied (was %llu)",
		 (unsigned long long)gen, (unsigned long long)wk_ctl.cfg_gen);
	wk_ctl.cfg_gen = gen;
}

/* Copy holds, bans, overrides and new commands; run them outside the lock. */
static void
wk_ctl_read(uint64_t *gen, struct shm_ctl_cmd *cmds, size_t *cmds_cnt, int32_t *overrides)
{
	struct shm_ctl *ctl = shm_ctl();
	struct wk_ctl_view *v = &wk_ctl.view;
	uint64_t now = g_wk.now_us;

	*cmds_cnt = 0;
	shm_ctl_lock();
	*gen = atomic_load(&ctl->gen);
	v->is_maintenance = ctl->is_maintenance;
	v->is_pause_all = ctl->is_pause_all;
	v->paused_cnt = ctl->paused_cnt;
	memcpy(v->paused, ctl->paused, sizeof(v->paused));
	v->bans_cnt = 0;
	for (uint32_t i = 0; i < SHM_BANS_MAX; i++) {
		struct shm_ban *b = shm_ban(i);

		if (!b->database[0] || (b->expires_at_us && b->expires_at_us <= now))
			continue;
		memcpy(v->bans[v->bans_cnt].database, b->database, SHM_NAME_MAX);
		memcpy(v->bans[v->bans_cnt].user, b->user, SHM_NAME_MAX);
		v->bans[v->bans_cnt].expires_at_us = b->expires_at_us;
		v->bans_cnt++;
	}
	memcpy(overrides, ctl->overrides, sizeof(ctl->overrides));
	if (ctl->cmd_seq - wk_ctl.cmd_seq > SHM_CTL_CMDS)
		wk_ctl.cmd_seq = ctl->cmd_seq - SHM_CTL_CMDS; /* overwritten ones are lost */
	for (uint64_t s = wk_ctl.cmd_seq + 1; s <= ctl->cmd_seq; s++) {
		const struct shm_ctl_cmd *cmd = &ctl->cmds[s % SHM_CTL_CMDS];

		if (cmd->seq == s)
			cmds[(*cmds_cnt)++] = *cmd;
	}
	wk_ctl.cmd_seq = ctl->cmd_seq;
	shm_ctl_unlock();
}

static bool
wk_ctl_is_held(const struct wk_pool *p)
{
	const struct wk_ctl_view *v = &wk_ctl.view;

	if (v->is_maintenance || v->is_pause_all)
		return true;
	for (uint32_t i = 0; i < v->paused_cnt; i++)
		if (strcmp(v->paused[i], p->db->name) == 0)
			return true;
	return false;
}

static bool
wk_ctl_is_banned(const struct wk_pool *p)
{
	const struct wk_ctl_view *v = &wk_ctl.view;

	for (uint32_t i = 0; i < v->bans_cnt; i++)
		if (strcmp(v->bans[i].database, p->db->name) == 0 &&
		    (!v->bans[i].user[0] || strcmp(v->bans[i].user, p->user->name) == 0))
			return true;
	return false;
}

/* KILL db ("" all) or KILL_CLIENT id: drop clients now (57P01). */
static void
wk_ctl_kill_clients(const char *db, bool by_id, uint64_t id)
{
	struct list *pos, *tmp;

	list_foreach_safe (pos, tmp, &g_wk.clients) {
		struct wk_client *c = list_entry(pos, struct wk_client, node);

		if (c->state == WK_CLIENT_CLOSING)
			continue;
		if (by_id ? c->id != id : (c->is_admin || (db[0] && strcmp(c->db_name, db) != 0)))
			continue;
		log_info(&c->lctx, "%s: closing the client", by_id ? "KILL_CLIENT" : "KILL");
		wk_client_fatal(c, SQLSTATE_ADMIN_SHUTDOWN,
				"terminating connection due to administrator command");
	}
}

static void
wk_ctl_run(const struct shm_ctl_cmd *cmd)
{
	const char *db = cmd->arg[0] ? cmd->arg : NULL;

	switch (cmd->kind) {
	case SHM_CTL_RECONNECT:
		log_info(NULL, "RECONNECT %s: servers are replaced at check-in", db ? db : "(all)");
		wk_pool_reconnect(db);
		break;
	case SHM_CTL_KILL:
		log_info(NULL, "KILL %s: closing clients and servers", db ? db : "(all)");
		wk_ctl_kill_clients(cmd->arg, false, 0);
		wk_pool_kill_servers(db);
		break;
	case SHM_CTL_KILL_CLIENT:
		if (cmd->slot == g_wk.slot)
			wk_ctl_kill_clients("", true, cmd->id);
		break;
	default:
		break;
	}
}

void
wk_ctl_wake(void)
{
	struct shm_ctl *ctl = shm_ctl();
	struct shm_ctl_cmd cmds[SHM_CTL_CMDS];
	int32_t overrides[SHM_CTL_OVERRIDES];
	size_t cmds_cnt;
	uint64_t gen;

	if (ctl->cfg_gen != wk_ctl.cfg_gen && wk_ctl_is_ours())
		wk_ctl_apply_config();
	wk_ctl_read(&gen, cmds, &cmds_cnt, overrides);
	for (size_t i = 0; i < config_live_cnt() && i < SHM_CTL_OVERRIDES; i++)
		if (overrides[i] != SHM_CTL_UNSET)
			/* the worker's private copy (after fork or its own parse) */
			config_live_apply((struct config *)g_cfg, i, overrides[i]);
	for (size_t i = 0; i < cmds_cnt; i++)
		wk_ctl_run(&cmds[i]);
	wk_pool_update_holds(wk_ctl_is_held, wk_ctl_is_banned);
	atomic_store(&ctl->acked[g_wk.slot], gen);
	wk_admin_ctl_poll();
}

uint64_t
wk_ctl_change(void (*fn)(struct shm_ctl *ctl, void *arg), void *arg)
{
	struct shm_ctl *ctl = shm_ctl();
	uint64_t gen;

	shm_ctl_lock();
	fn(ctl, arg);
	gen = atomic_fetch_add(&ctl->gen, 1) + 1;
	shm_ctl_unlock();
	shm_ctl_wake_workers(getpid());
	wk_ctl_wake_self();
	return gen;
}

struct wk_ctl_post_arg {
	enum shm_ctl_kind kind;
	int32_t slot;
	uint64_t id;
	const char *arg;
};

static void
wk_ctl_post_fn(struct shm_ctl *ctl, void *arg)
{
	const struct wk_ctl_post_arg *a = arg;
	struct shm_ctl_cmd *cmd;
	uint64_t seq = ctl->cmd_seq + 1;

	cmd = &ctl->cmds[seq % SHM_CTL_CMDS];
	memset(cmd, 0, sizeof(*cmd));
	cmd->seq = seq;
	cmd->kind = (uint32_t)a->kind;
	cmd->slot = a->slot;
	cmd->id = a->id;
	snprintf(cmd->arg, sizeof(cmd->arg), "%s", a->arg ? a->arg : "");
	ctl->cmd_seq = seq;
}

uint64_t
wk_ctl_post(enum shm_ctl_kind kind, int32_t slot, uint64_t id, const char *arg)
{
	struct wk_ctl_post_arg a = { kind, slot, id, arg };

	return wk_ctl_change(wk_ctl_post_fn, &a);
}

bool
wk_ctl_all_acked(uint64_t gen)
{
	struct shm_ctl *ctl = shm_ctl();

	for (uint32_t w = 0; w < g_shm->workers_cnt; w++) {
		if (atomic_load(&shm_worker(w)->pid) <= 0)
			continue; /* a dead worker holds nothing; its successor reads the state at start */
		if (atomic_load(&ctl->acked[w]) < gen)
			return false;
	}
	return true;
}

/* Is anything still using cfg: a draining pool, or a client that was logging in before it was retired? */
static bool
wk_ctl_is_referenced(const struct wk_ctl_retired *r)
{
	struct list *pos;

	if (wk_pool_uses_config(r->cfg))
		return true;
	list_foreach (pos, &g_wk.clients) {
		const struct wk_client *c = list_entry(pos, struct wk_client, node);

		if ((c->state == WK_CLIENT_STARTUP || c->state == WK_CLIENT_AUTH) &&
		    c->connect_us <= r->since_us)
			return true;
	}
	return false;
}

static bool
wk_ctl_points_into(const struct config *cfg, const struct config_user *u)
{
	return u && u >= cfg->users && u < cfg->users + cfg->users_cnt;
}

/*
 * Bans past their ban_timeout leave the view, and the pools they refused
 * take checkouts again (the sweep: within 100 ms of the expiry).
 */
static void
wk_ctl_expire_bans(void)
{
	struct wk_ctl_view *v = &wk_ctl.view;
	uint32_t n = 0;

	for (uint32_t i = 0; i < v->bans_cnt; i++) {
		if (v->bans[i].expires_at_us && v->bans[i].expires_at_us <= g_wk.now_us) {
			if (g_wk.slot == 0) /* one line per ban, not one per worker */
				log_info(NULL, "ban of %s%s%s lifted: ban_timeout reached",
					 v->bans[i].database, v->bans[i].user[0] ? " user " : "",
					 v->bans[i].user);
			continue;
		}
		if (n != i)
			v->bans[n] = v->bans[i];
		n++;
	}
	if (n == v->bans_cnt)
		return;
	v->bans_cnt = n;
	wk_pool_update_holds(wk_ctl_is_held, wk_ctl_is_banned);
}

void
wk_ctl_sweep(void)
{
	wk_ctl_expire_bans();
	wk_pool_drain_sweep();
	for (size_t i = 0; i < wk_ctl.retired_cnt;) {
		struct wk_ctl_retired *r = &wk_ctl.retired[i];
		struct list *pos;

		if (wk_ctl_is_referenced(r)) {
			i++;
			continue;
		}
		list_foreach (pos, &g_wk.clients) {
			struct wk_client *c = list_entry(pos, struct wk_client, node);

			if (wk_ctl_points_into(r->cfg, c->user))
				c->user = c->pool && c->pool->cfg
						  ? c->pool->user
						  : config_find_user(g_cfg, c->user_name);
		}
		config_free(r->cfg);
		*r = wk_ctl.retired[--wk_ctl.retired_cnt];
	}
	wk_admin_ctl_poll();
}

void
wk_ctl_cleanup(void)
{
	for (size_t i = 0; i < wk_ctl.retired_cnt; i++)
		config_free(wk_ctl.retired[i].cfg);
	free(wk_ctl.retired);
	wk_ctl.retired = NULL;
	wk_ctl.retired_cnt = wk_ctl.retired_cap = 0;
	if (wk_ctl.is_own) {
		config_free((struct config *)g_cfg);
		g_cfg = NULL;
		wk_ctl.is_own = false;
	}
	if (wk_ctl.wake_ev)
		event_free(wk_ctl.wake_ev);
	wk_ctl.wake_ev = NULL;
}
