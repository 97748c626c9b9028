/*
 * wk_admin_ctl.c: the admin console's action commands (see wk_admin_ctl.h).
 * Runs in: a worker.
 *
 * Each command writes the control area under its lock and wakes every
 * worker (wk_ctl_change); a command answers once every live worker has
 * acknowledged the change (acked >= its generation), so when RESUME or SET
 * returns, all workers act on it. RELOAD waits for the supervisor's verdict
 * and then for every worker to apply the result; PAUSE also waits until no
 * server of the paused pools is linked to a client in any worker (every
 * running transaction has ended). Every command logs one line.
 */
#include "worker/wk_admin_ctl.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "shared/config.h"
#include "shared/log.h"
#include "shared/shm.h"
#include "worker/wk_admin.h"
#include "worker/wk_client.h"
#include "worker/wk_ctl.h"

#define WK_ADMIN_CTL_WAITS_MAX 16
#define WK_ADMIN_CTL_ARGS_MAX  6
#define WK_ADMIN_CTL_RELOAD_US (30ull * 1000 * 1000) /* the supervisor answers long before */

enum wk_admin_ctl_wait_kind {
	WK_WAIT_ACK = 0, /* every worker acknowledged gen */
	WK_WAIT_RELOAD,  /* the supervisor served ticket, then every worker acked */
	WK_WAIT_PAUSE,   /* acked, and no active server of db ("" = all) anywhere */
};

struct wk_admin_ctl_wait {
	struct wk_client *c; /* borrowed; NULL: free slot */
	enum wk_admin_ctl_wait_kind kind;
	uint64_t gen;
	uint64_t ticket;
	uint64_t deadline_us;
	char db[SHM_NAME_MAX];
	char tag[32];
};

static struct wk_admin_ctl_wait wk_admin_ctl_waits[WK_ADMIN_CTL_WAITS_MAX];

/* ---- replies ------------------------------------------------------------ */

static enum wk_rc
wk_admin_ctl_send(struct wk_client *c, struct pgw_buf *b)
{
	pgw_put_ready(b, 'I');
	if (wk_conn_send(&c->io, b) < 0)
		return wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
	return WK_OK;
}

static enum wk_rc
wk_admin_ctl_done(struct wk_client *c, const char *tag, const char *notice)
{
	struct pgw_buf *b = &g_wk.scratch;

	pgw_buf_reset(b);
	if (notice)
		pgw_put_error(b, true, "NOTICE", SQLSTATE_SUCCESSFUL_COMPLETION, notice, NULL,
			      NULL);
	pgw_put_command_complete(b, tag);
	return wk_admin_ctl_send(c, b);
}

static enum wk_rc PRINTF_LIKE(4, 5) wk_admin_ctl_error(struct wk_client *c, const char *sqlstate,
						       const char *hint, const char *fmt, ...)
{
	struct pgw_buf *b = &g_wk.scratch;
	char msg[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info(&c->lctx, "admin command refused: %s", msg);
	pgw_buf_reset(b);
	pgw_put_error(b, false, "ERROR", sqlstate, msg, NULL, hint);
	return wk_admin_ctl_send(c, b);
}

/* ---- waiting -------------------------------------------------------------- */

static enum wk_rc
wk_admin_ctl_park(struct wk_client *c, enum wk_admin_ctl_wait_kind kind, uint64_t gen,
		  uint64_t ticket, const char *db, const char *tag)
{
	for (size_t i = 0; i < WK_ADMIN_CTL_WAITS_MAX; i++) {
		struct wk_admin_ctl_wait *w = &wk_admin_ctl_waits[i];

		if (w->c)
			continue;
		w->c = c;
		w->kind = kind;
		w->gen = gen;
		w->ticket = ticket;
		w->deadline_us = g_wk.mono_us + WK_ADMIN_CTL_RELOAD_US;
		snprintf(w->db, sizeof(w->db), "%s", db ? db : "");
		snprintf(w->tag, sizeof(w->tag), "%s", tag);
		/* its next commands wait until this one answers (wk_admin_ctl_poll, from a wake-up) */
		wk_stream_read_off(&c->io);
		wk_ctl_wake_self();
		return WK_OK;
	}
	return wk_admin_ctl_error(c, SQLSTATE_TOO_MANY_CONNECTIONS, NULL,
				  "too many admin commands are waiting in this worker (%d)",
				  WK_ADMIN_CTL_WAITS_MAX);
}

bool
wk_admin_ctl_is_waiting(const struct wk_client *c)
{
	for (size_t i = 0; i < WK_ADMIN_CTL_WAITS_MAX; i++)
		if (wk_admin_ctl_waits[i].c == c)
			return true;
	return false;
}

void
wk_admin_ctl_forget(struct wk_client *c)
{
	for (size_t i = 0; i < WK_ADMIN_CTL_WAITS_MAX; i++)
		if (wk_admin_ctl_waits[i].c == c)
			wk_admin_ctl_waits[i].c = NULL;
}

/* Servers linked to clients, in every worker, of pools of db ("" = all). */
static uint64_t
wk_admin_ctl_active(const char *db)
{
	uint64_t n = 0;

	for (uint32_t k = 0; k < g_shm->pools_cnt; k++) {
		struct shm_pool_ident *id = shm_pool_ident(k);

		if (atomic_load(&id->state) == SHM_POOL_FREE)
			continue;
		if (db[0] && strncmp(id->database, db, SHM_NAME_MAX) != 0)
			continue;
		for (uint32_t w = 0; w < g_shm->workers_cnt; w++)
			n += atomic_load_explicit(&shm_pool_stats(w, k)->sv_active,
						  memory_order_relaxed);
	}
	return n;
}

/* Whether w's command is complete; answers it (or fails it) when so. */
static bool
wk_admin_ctl_try(struct wk_admin_ctl_wait *w)
{
	struct shm_ctl *ctl = shm_ctl();
	struct wk_client *c = w->c;
	char msg[SHM_RELOAD_MSG_MAX];
	bool ok;

	if (c->state == WK_CLIENT_CLOSING)
		return true;
	switch (w->kind) {
	case WK_WAIT_RELOAD:
		if (w->ticket) {
			shm_ctl_lock();
			ok = ctl->reload_done >= w->ticket;
			if (ok) {
				/* the verdict is in; now every worker must apply it */
				w->gen = atomic_load(&ctl->gen);
				w->ticket = 0;
				snprintf(msg, sizeof(msg), "%s", ctl->reload_msg);
				snprintf(w->db, sizeof(w->db), "%s", ctl->reload_ok ? "ok" : "");
				if (!ctl->reload_ok) {
					shm_ctl_unlock();
					(void)wk_admin_ctl_error(
						c, SQLSTATE_CONFIG_FILE_ERROR,
						"fix the file and run RELOAD again", "%s", msg);
					return true;
				}
			}
			shm_ctl_unlock();
			if (!ok) {
				if (g_wk.mono_us > w->deadline_us) {
					(void)wk_admin_ctl_error(
						c, SQLSTATE_INTERNAL_ERROR, NULL,
						"the supervisor did not answer the reload within 30 s");
					return true;
				}
				return false;
			}
		}
		if (!wk_ctl_all_acked(w->gen))
			return false;
		shm_ctl_lock();
		snprintf(msg, sizeof(msg), "%s", ctl->reload_msg);
		shm_ctl_unlock();
		(void)wk_admin_ctl_done(c, "RELOAD", msg);
		return true;
	case WK_WAIT_PAUSE:
		if (!wk_ctl_all_acked(w->gen) || wk_admin_ctl_active(w->db) > 0)
			return false;
		log_info(&c->lctx, "PAUSE %s: paused, no transaction running",
			 w->db[0] ? w->db : "(all)");
		(void)wk_admin_ctl_done(c, w->tag, NULL);
		return true;
	case WK_WAIT_ACK:
	default:
		if (!wk_ctl_all_acked(w->gen))
			return false;
		(void)wk_admin_ctl_done(c, w->tag, NULL);
		return true;
	}
}

void
wk_admin_ctl_poll(void)
{
	for (size_t i = 0; i < WK_ADMIN_CTL_WAITS_MAX; i++) {
		struct wk_admin_ctl_wait *w = &wk_admin_ctl_waits[i];
		struct wk_client *c = w->c;

		if (!c || !wk_admin_ctl_try(w))
			continue;
		w->c = NULL;
		if (c->state == WK_CLIENT_CLOSING)
			continue;
		/* commands it sent meanwhile run now */
		wk_stream_read_on(&c->io);
		(void)wk_admin_on_input(c);
	}
}

/* ---- arguments -------------------------------------------------------------- */

/* Split the raw command into words (quotes removed, trailing ';' dropped). */
static size_t
wk_admin_ctl_words(const char *raw, char words[][SHM_NAME_MAX * 2], size_t max)
{
	size_t n = 0;
	const char *p = raw;

	while (*p && n < max) {
		size_t len = 0;
		char q = 0;

		while (isspace((unsigned char)*p) || *p == ';')
			p++;
		if (!*p)
			break;
		if (*p == '=') {
			/* SET key = value reads as SET key TO value */
			snprintf(words[n++], SHM_NAME_MAX * 2, "to");
			p++;
			continue;
		}
		if (*p == '\'' || *p == '"')
			q = *p++;
		while (*p &&
		       (q ? *p != q : !(isspace((unsigned char)*p) || *p == ';' || *p == '='))) {
			if (len + 1 < SHM_NAME_MAX * 2)
				words[n][len++] = *p;
			p++;
		}
		if (q && *p == q)
			p++;
		words[n][len] = '\0';
		n++;
	}
	return n;
}

/* ---- the commands ------------------------------------------------------------ */

static enum wk_rc
wk_admin_ctl_reload(struct wk_client *c)
{
	struct shm_ctl *ctl = shm_ctl();
	pid_t sv = (pid_t)atomic_load(&ctl->sv_pid);
	uint64_t ticket;

	shm_ctl_lock();
	ticket = ++ctl->reload_req;
	shm_ctl_unlock();
	log_info(&c->lctx, "RELOAD: asking the supervisor (pid %d) to reload", (int)sv);
	if (sv <= 0 || kill(sv, SIGHUP) < 0)
		return wk_admin_ctl_error(c, SQLSTATE_INTERNAL_ERROR, NULL,
					  "cannot signal the supervisor (pid %d): %s", (int)sv,
					  strerror(errno));
	return wk_admin_ctl_park(c, WK_WAIT_RELOAD, 0, ticket, NULL, "RELOAD");
}

struct wk_admin_ctl_hold {
	const char *db; /* NULL: all */
	bool on;
	bool is_maintenance;
	bool is_full;
};

static void
wk_admin_ctl_hold_fn(struct shm_ctl *ctl, void *arg)
{
	struct wk_admin_ctl_hold *h = arg;

	if (h->is_maintenance) {
		ctl->is_maintenance = h->on;
		return;
	}
	if (!h->db) {
		ctl->is_pause_all = h->on;
		if (!h->on)
			ctl->paused_cnt = 0; /* RESUME without a name resumes everything */
		return;
	}
	for (uint32_t i = 0; i < ctl->paused_cnt; i++) {
		if (strncmp(ctl->paused[i], h->db, SHM_NAME_MAX) != 0)
			continue;
		if (!h->on)
			memcpy(ctl->paused[i], ctl->paused[--ctl->paused_cnt], SHM_NAME_MAX);
		return;
	}
	if (!h->on)
		return;
	if (ctl->paused_cnt == SHM_CTL_PAUSED_MAX) {
		h->is_full = true;
		return;
	}
	snprintf(ctl->paused[ctl->paused_cnt++], SHM_NAME_MAX, "%s", h->db);
}

static enum wk_rc
wk_admin_ctl_pause(struct wk_client *c, const char *db, bool on)
{
	struct wk_admin_ctl_hold h = { .db = db, .on = on };
	uint64_t gen;

	if (db && !config_has_database(g_cfg, db))
		return wk_admin_ctl_error(c, SQLSTATE_INVALID_CATALOG_NAME, NULL,
					  "database \"%s\" does not exist", db);
	gen = wk_ctl_change(wk_admin_ctl_hold_fn, &h);
	if (h.is_full)
		return wk_admin_ctl_error(
			c, SQLSTATE_PROGRAM_LIMIT_EXCEEDED, "PAUSE without a name pauses all",
			"at most %d databases can be paused one by one", SHM_CTL_PAUSED_MAX);
	log_info(&c->lctx, "%s %s", on ? "PAUSE" : "RESUME", db ? db : "(all)");
	if (on)
		return wk_admin_ctl_park(c, WK_WAIT_PAUSE, gen, 0, db, "PAUSE");
	return wk_admin_ctl_park(c, WK_WAIT_ACK, gen, 0, NULL, "RESUME");
}

static enum wk_rc
wk_admin_ctl_maintenance(struct wk_client *c, const char *arg)
{
	struct wk_admin_ctl_hold h = { .is_maintenance = true };

	if (!arg || (strcasecmp(arg, "on") != 0 && strcasecmp(arg, "off") != 0))
		return wk_admin_ctl_error(c, SQLSTATE_SYNTAX_ERROR, NULL,
					  "usage: MAINTENANCE ON | MAINTENANCE OFF");
	h.on = strcasecmp(arg, "on") == 0;
	log_info(&c->lctx, "MAINTENANCE %s: new transactions %s", h.on ? "ON" : "OFF",
		 h.on ? "are held" : "run again");
	return wk_admin_ctl_park(c, WK_WAIT_ACK, wk_ctl_change(wk_admin_ctl_hold_fn, &h), 0, NULL,
				 "MAINTENANCE");
}

static enum wk_rc
wk_admin_ctl_post(struct wk_client *c, enum shm_ctl_kind kind, const char *db, const char *tag)
{
	if (db && !config_has_database(g_cfg, db))
		return wk_admin_ctl_error(c, SQLSTATE_INVALID_CATALOG_NAME, NULL,
					  "database \"%s\" does not exist", db);
	log_info(&c->lctx, "%s %s", tag, db ? db : "(all)");
	return wk_admin_ctl_park(c, WK_WAIT_ACK, wk_ctl_post(kind, -1, 0, db), 0, NULL, tag);
}

static enum wk_rc
wk_admin_ctl_kill_client(struct wk_client *c, const char *arg)
{
	unsigned slot;
	uint64_t id;
	char tail;
	bool found = false;

	if (!arg || sscanf(arg, "w%uc%" SCNu64 "%c", &slot, &id, &tail) != 2)
		return wk_admin_ctl_error(
			c, SQLSTATE_SYNTAX_ERROR, NULL,
			"usage: KILL_CLIENT id, with the id SHOW CLIENTS shows (w0c12)");
	if (slot < g_shm->workers_cnt) {
		for (uint32_t i = 0; i < g_shm->clients_per_worker && !found; i++) {
			struct shm_client *r = shm_client(slot, i);

			found = atomic_load_explicit(&r->state, memory_order_relaxed) !=
					SHM_STATE_FREE &&
				r->id == id;
		}
	}
	if (!found)
		return wk_admin_ctl_error(c, SQLSTATE_UNDEFINED_OBJECT,
					  "SHOW CLIENTS lists the ids", "no client with id %s",
					  arg);
	if (slot == (unsigned)g_wk.slot && id == c->id)
		return wk_admin_ctl_error(c, SQLSTATE_INVALID_PARAMETER_VALUE, NULL,
					  "KILL_CLIENT cannot close the connection that sends it");
	log_info(&c->lctx, "KILL_CLIENT %s", arg);
	return wk_admin_ctl_park(c, WK_WAIT_ACK,
				 wk_ctl_post(SHM_CTL_KILL_CLIENT, (int32_t)slot, id, NULL), 0, NULL,
				 "KILL_CLIENT");
}

struct wk_admin_ctl_ban {
	bool on;
	const char *database; /* NULL with !on: every ban */
	const char *user;     /* "" : every user */
	const char *host;
	uint64_t now_us;
	bool is_full;
	uint32_t changed;
};

static void
wk_admin_ctl_ban_fn(struct shm_ctl *ctl, void *arg)
{
	struct wk_admin_ctl_ban *a = arg;
	struct shm_ban *free_row = NULL;

	(void)ctl;
	for (uint32_t i = 0; i < SHM_BANS_MAX; i++) {
		struct shm_ban *b = shm_ban(i);

		/* a ban past its ban_timeout is over: its row is free */
		if (!b->database[0] || (b->expires_at_us && b->expires_at_us <= a->now_us)) {
			if (!free_row)
				free_row = b;
			continue;
		}
		if (a->database &&
		    (strncmp(b->database, a->database, SHM_NAME_MAX) != 0 ||
		     (a->on && strncmp(b->user, a->user, SHM_NAME_MAX) != 0) ||
		     (!a->on && a->user[0] && strncmp(b->user, a->user, SHM_NAME_MAX) != 0)))
			continue;
		if (!a->on) {
			shm_row_write_begin(&b->seq);
			b->database[0] = '\0';
			shm_row_write_end(&b->seq);
			a->changed++;
		} else if (!free_row || free_row > b) {
			free_row = b; /* the same ban again: refresh it */
		}
	}
	if (!a->on)
		return;
	if (!free_row) {
		a->is_full = true;
		return;
	}
	shm_row_write_begin(&free_row->seq);
	snprintf(free_row->database, sizeof(free_row->database), "%s", a->database);
	snprintf(free_row->user, sizeof(free_row->user), "%s", a->user);
	snprintf(free_row->host, sizeof(free_row->host), "%s", a->host ? a->host : "");
	snprintf(free_row->reason, sizeof(free_row->reason),
		 "manual ban (BAN on the admin console)");
	free_row->banned_at_us = a->now_us;
	free_row->expires_at_us =
		g_cfg->ban_timeout > 0 ? a->now_us + (uint64_t)g_cfg->ban_timeout * 1000 : 0;
	shm_row_write_end(&free_row->seq);
	a->changed++;
}

/*
 * BAN / UNBAN target: a pool id (SHOW POOLS id) bans that pool; a database
 * name bans every pool of it.
 */
static enum wk_rc
wk_admin_ctl_ban(struct wk_client *c, const char *arg, bool on)
{
	struct wk_admin_ctl_ban a = { .on = on, .user = "", .now_us = g_wk.now_us };
	char database[SHM_NAME_MAX], user[SHM_NAME_MAX], host[SHM_HOST_MAX];
	uint64_t gen;

	if (!arg && on)
		return wk_admin_ctl_error(
			c, SQLSTATE_SYNTAX_ERROR, NULL,
			"usage: BAN pool_id | BAN database (SHOW POOLS lists the ids)");
	if (arg && isdigit((unsigned char)arg[0])) {
		char *end;
		unsigned long idx = strtoul(arg, &end, 10);
		struct shm_pool_ident id;

		if (*end || idx >= g_shm->pools_cap ||
		    !shm_row_read(&shm_pool_ident((uint32_t)idx)->seq,
				  shm_pool_ident((uint32_t)idx), &id, sizeof(id)) ||
		    id.state != SHM_POOL_LIVE)
			return wk_admin_ctl_error(c, SQLSTATE_UNDEFINED_OBJECT,
						  "SHOW POOLS lists the ids", "no pool with id %s",
						  arg);
		snprintf(database, sizeof(database), "%s", id.database);
		snprintf(user, sizeof(user), "%s", id.user);
		snprintf(host, sizeof(host), "%s", id.host);
		a.database = database;
		a.user = user;
		a.host = host;
	} else if (arg) {
		if (!config_has_database(g_cfg, arg))
			return wk_admin_ctl_error(c, SQLSTATE_INVALID_CATALOG_NAME, NULL,
						  "database \"%s\" does not exist", arg);
		a.database = arg;
	}
	gen = wk_ctl_change(wk_admin_ctl_ban_fn, &a);
	if (a.is_full)
		return wk_admin_ctl_error(c, SQLSTATE_PROGRAM_LIMIT_EXCEEDED, "UNBAN some first",
					  "at most %d bans", SHM_BANS_MAX);
	if (on)
		log_info(
			&c->lctx,
			"BAN %s%s%s: new transactions of it are refused until UNBAN or for ban_timeout (%d ms, 0: no limit)",
			a.database, a.user[0] ? " user " : "", a.user, g_cfg->ban_timeout);
	else
		log_info(&c->lctx, "UNBAN %s: %u ban%s lifted", arg ? arg : "(all)", a.changed,
			 a.changed == 1 ? "" : "s");
	return wk_admin_ctl_park(c, WK_WAIT_ACK, gen, 0, NULL, on ? "BAN" : "UNBAN");
}

struct wk_admin_ctl_set {
	int idx;
	int value;
};

static void
wk_admin_ctl_set_fn(struct shm_ctl *ctl, void *arg)
{
	const struct wk_admin_ctl_set *s = arg;

	ctl->overrides[s->idx] = s->value;
}

static enum wk_rc
wk_admin_ctl_set(struct wk_client *c, char words[][SHM_NAME_MAX * 2], size_t n)
{
	struct wk_admin_ctl_set s;
	char err[256], list[512] = "";

	if (n != 4 || strcasecmp(words[2], "to") != 0)
		return wk_admin_ctl_error(c, SQLSTATE_SYNTAX_ERROR, NULL,
					  "usage: SET setting TO value (or SET setting = value)");
	for (size_t i = 0; i < config_live_cnt(); i++) {
		size_t len = strlen(list);

		snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "",
			 config_live_name(i));
	}
	s.idx = config_live_find(words[1]);
	if (s.idx < 0 || (size_t)s.idx >= SHM_CTL_OVERRIDES)
		return wk_admin_ctl_error(
			c, SQLSTATE_CANT_CHANGE_RUNTIME_PARAM,
			"change it in pgdog.ini and run RELOAD (listen address, port, workers and the like need a restart)",
			"setting \"%s\" cannot be changed with SET; SET changes: %s", words[1],
			list);
	if (config_live_parse((size_t)s.idx, words[3], &s.value, err, sizeof(err)) < 0)
		return wk_admin_ctl_error(c, SQLSTATE_INVALID_PARAMETER_VALUE, NULL, "%s", err);
	log_info(&c->lctx, "SET %s TO %d (until the next reload)", config_live_name((size_t)s.idx),
		 s.value);
	return wk_admin_ctl_park(c, WK_WAIT_ACK, wk_ctl_change(wk_admin_ctl_set_fn, &s), 0, NULL,
				 "SET");
}

static enum wk_rc
wk_admin_ctl_shutdown(struct wk_client *c)
{
	pid_t sv = (pid_t)atomic_load(&shm_ctl()->sv_pid);

	log_info(&c->lctx, "SHUTDOWN: graceful shutdown of pgdog (supervisor pid %d)", (int)sv);
	if (sv <= 0 || kill(sv, SIGINT) < 0)
		return wk_admin_ctl_error(c, SQLSTATE_INTERNAL_ERROR, NULL,
					  "cannot signal the supervisor (pid %d): %s", (int)sv,
					  strerror(errno));
	return wk_admin_ctl_done(c, "SHUTDOWN", NULL);
}

bool
wk_admin_ctl_query(struct wk_client *c, const char *cmd, const char *raw, enum wk_rc *rc)
{
	char words[WK_ADMIN_CTL_ARGS_MAX][SHM_NAME_MAX * 2];
	size_t n;
	const char *arg;
	static const char *const verbs[] = { "reload",    "pause",    "resume", "maintenance",
					     "reconnect", "shutdown", "kill",   "kill_client",
					     "ban",       "unban",    "set" };
	bool is_ours = false;

	for (size_t i = 0; i < ARRAY_SIZE(verbs) && !is_ours; i++) {
		size_t len = strlen(verbs[i]);

		is_ours = strncmp(cmd, verbs[i], len) == 0 && (cmd[len] == '\0' || cmd[len] == ' ');
	}
	if (!is_ours)
		return false;
	n = wk_admin_ctl_words(raw, words, WK_ADMIN_CTL_ARGS_MAX);
	arg = n >= 2 ? words[1] : NULL;
	if (strcmp(cmd, "reload") == 0)
		*rc = wk_admin_ctl_reload(c);
	else if (strcmp(cmd, "shutdown") == 0)
		*rc = wk_admin_ctl_shutdown(c);
	else if (strncmp(cmd, "reload", 6) == 0 || strncmp(cmd, "shutdown", 8) == 0)
		/* not a SET: say what is wrong rather than fall through to SET's usage */
		*rc = wk_admin_ctl_error(c, SQLSTATE_SYNTAX_ERROR, NULL, "%s takes no arguments",
					 words[0]);
	else if (n > 2 && strncmp(cmd, "set", 3) != 0)
		*rc = wk_admin_ctl_error(c, SQLSTATE_SYNTAX_ERROR, NULL,
					 "too many arguments: %s takes at most one", words[0]);
	else if (strncmp(cmd, "pause", 5) == 0)
		*rc = wk_admin_ctl_pause(c, arg, true);
	else if (strncmp(cmd, "resume", 6) == 0)
		*rc = wk_admin_ctl_pause(c, arg, false);
	else if (strncmp(cmd, "maintenance", 11) == 0)
		*rc = wk_admin_ctl_maintenance(c, arg);
	else if (strncmp(cmd, "reconnect", 9) == 0)
		*rc = wk_admin_ctl_post(c, SHM_CTL_RECONNECT, arg, "RECONNECT");
	else if (strncmp(cmd, "kill_client", 11) == 0)
		*rc = wk_admin_ctl_kill_client(c, arg);
	else if (strncmp(cmd, "kill", 4) == 0)
		*rc = wk_admin_ctl_post(c, SHM_CTL_KILL, arg, "KILL");
	else if (strncmp(cmd, "unban", 5) == 0)
		*rc = wk_admin_ctl_ban(c, arg, false);
	else if (strncmp(cmd, "ban", 3) == 0)
		*rc = wk_admin_ctl_ban(c, arg, true);
	else
		*rc = wk_admin_ctl_set(c, words, n);
	return true;
}
