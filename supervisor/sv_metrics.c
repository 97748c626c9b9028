/*
 * sv_metrics.c: the OpenMetrics endpoint (see sv_metrics.h).
 * Runs in: the supervisor.
 *
 * HTTP/1.1, one request per connection ("Connection: close"): read up to
 * the blank line that ends the headers (at most SV_METRICS_REQ_MAX bytes),
 * answer GET or HEAD /metrics with 200, another path with 404, another
 * method with 405, then close once the answer is written. Every socket is
 * non-blocking and polled from the supervisor's main loop, so a slow or
 * silent scraper costs one slot (at most SV_METRICS_CONNS_MAX, each closed
 * after SV_METRICS_TIMEOUT_MS), never a blocked supervisor.
 *
 * The figures come from the shared segment through shared/stats.h, the same
 * sums the admin console shows; times are exported in seconds and bytes in
 * bytes (Prometheus base units), histograms cumulative with le labels.
 */
#include "supervisor/sv_metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "shared/log.h"
#include "shared/shm.h"
#include "shared/stats.h"
#include "supervisor/sv_signal.h"

#define SV_METRICS_CONNS_MAX  16
#define SV_METRICS_REQ_MAX    8192
#define SV_METRICS_TIMEOUT_MS 10000

struct sv_metrics_conn {
	int fd; /* -1: free */
	int64_t deadline_ms;
	size_t in_len;
	char in[SV_METRICS_REQ_MAX];
	char *out; /* owned: the whole answer, headers included */
	size_t out_len, out_off;
};

static int sv_metrics_fd = -1;
static struct sv_metrics_conn sv_metrics_conns[SV_METRICS_CONNS_MAX];
static bool sv_metrics_is_init;

/* A growing text buffer; a failed allocation sticks. */
struct sv_mbuf {
	char *data;
	size_t len, cap;
	bool has_error;
};

static void sv_mbuf_printf(struct sv_mbuf *b, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void
sv_mbuf_printf(struct sv_mbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->has_error)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->has_error = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 16384;

		while (cap - b->len <= (size_t)n)
			cap *= 2;
		char *p = realloc(b->data, cap);

		if (!p) {
			b->has_error = true;
			return;
		}
		b->data = p;
		b->cap = cap;
	}
}

static int64_t
sv_metrics_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Label values: backslash, double quote and newline are escaped. */
static void
sv_metrics_escape(char *out, size_t len, const char *s)
{
	size_t n = 0;

	for (; *s && n + 3 < len; s++) {
		if (*s == '\\' || *s == '"') {
			out[n++] = '\\';
			out[n++] = *s;
		} else if (*s == '\n') {
			out[n++] = '\\';
			out[n++] = 'n';
		} else {
			out[n++] = *s;
		}
	}
	out[n] = '\0';
}

static void
sv_metrics_head(struct sv_mbuf *b, const char *ns, const char *name, const char *type,
		const char *help)
{
	sv_mbuf_printf(b, "# HELP %s%s %s\n# TYPE %s%s %s\n", ns, name, help, ns, name, type);
}

/* A pool's labels: user, database, shard, role, host. */
struct sv_metrics_pool {
	char labels[1200];
};

/* From the pool's identity row: pool indexes are shm indexes, not configuration ones. */
static void
sv_metrics_pool_labels(const struct stats_ident *id, struct sv_metrics_pool *out)
{
	char user[256], dbname[256], host[512];

	sv_metrics_escape(user, sizeof(user), id->user);
	sv_metrics_escape(dbname, sizeof(dbname), id->database);
	sv_metrics_escape(host, sizeof(host), id->host);
	snprintf(out->labels, sizeof(out->labels),
		 "user=\"%s\",database=\"%s\",shard=\"%d\",role=\"%s\",host=\"%s\"", user, dbname,
		 id->shard, config_role_name((enum config_role)id->role), host);
}

/* Counters of shm_stat, as exported: name, help, microseconds to seconds. */
static const struct {
	int stat;
	const char *name;
	const char *help;
	bool is_us;
} sv_metrics_counters[] = {
	{ SHM_STAT_XACT, "xact_total", "Transactions completed.", false },
	{ SHM_STAT_QUERY, "queries_total", "Requests answered (one per ReadyForQuery).", false },
	{ SHM_STAT_ASSIGN, "server_assignments_total", "Server connections handed to clients.",
	  false },
	{ SHM_STAT_RECV, "received_bytes_total", "Bytes received from clients.", false },
	{ SHM_STAT_SENT, "sent_bytes_total", "Bytes sent to clients.", false },
	{ SHM_STAT_XACT_US, "xact_time_seconds_total", "Time spent in transactions.", true },
	{ SHM_STAT_IDLE_XACT_US, "idle_xact_time_seconds_total",
	  "Time spent in transactions with no request running.", true },
	{ SHM_STAT_QUERY_US, "query_time_seconds_total", "Time spent running requests.", true },
	{ SHM_STAT_WAIT_US, "wait_time_seconds_total", "Time clients waited for a server.", true },
	{ SHM_STAT_PARSE, "parse_total", "Parse messages from clients.", false },
	{ SHM_STAT_BIND, "bind_total", "Bind messages from clients.", false },
	{ SHM_STAT_CLOSE, "close_total", "Close messages from clients.", false },
	{ SHM_STAT_SERVER_PARSE, "server_parse_total", "Parse messages run by servers.", false },
	{ SHM_STAT_ERRORS, "errors_total",
	  "Errors: server ErrorResponses to clients, failed server logins, checkout timeouts.",
	  false },
	{ SHM_STAT_CLEANED, "cleaned_total", "Server connections reset after a client left.",
	  false },
	{ SHM_STAT_CONNECT, "connects_total", "Server connections established.", false },
	{ SHM_STAT_CONNECT_US, "connect_time_seconds_total",
	  "Time spent establishing server connections.", true },
	{ SHM_STAT_ROLLBACKS, "rollbacks_total", "Statements servers completed as ROLLBACK.",
	  false },
	{ SHM_STAT_READS, "reads_total", "Client statements completed as reads (SELECT, ...).",
	  false },
	{ SHM_STAT_WRITES, "writes_total", "Client statements that changed data or schema.",
	  false },
	{ SHM_STAT_AUTH, "auth_attempts_total", "Client logins that reached the password check.",
	  false },
	{ SHM_STAT_AUTH_FAILED, "auth_failures_total",
	  "Client logins that failed the password check.", false },
	{ SHM_STAT_ROWS_INSERTED, "rows_inserted_total", "Rows inserted (INSERT, COPY FROM).",
	  false },
	{ SHM_STAT_ROWS_UPDATED, "rows_updated_total", "Rows updated.", false },
	{ SHM_STAT_ROWS_DELETED, "rows_deleted_total", "Rows deleted.", false },
	{ SHM_STAT_RESYNCED, "re_synced_total",
	  "Server connections brought back in step after their client left mid-work.", false },
	{ SHM_STAT_OUT_OF_SYNC, "out_of_sync_total",
	  "Server connections closed because they could not be brought back in step.", false },
	{ SHM_STAT_FORCE_CLOSED, "force_closed_total",
	  "Server connections closed by RECONNECT, KILL, a reload or shutdown.", false },
};

/* Averages over the last stats_period (per second, or per event for times). */
static const struct {
	int stat;
	const char *name;
	const char *help;
	bool is_us;
} sv_metrics_avgs[] = {
	{ SHM_STAT_XACT, "avg_xact_rate", "Transactions per second over the last stats_period.",
	  false },
	{ SHM_STAT_QUERY, "avg_query_rate", "Requests per second over the last stats_period.",
	  false },
	{ SHM_STAT_RECV, "avg_received_bytes_rate",
	  "Bytes per second received from clients over the last stats_period.", false },
	{ SHM_STAT_SENT, "avg_sent_bytes_rate",
	  "Bytes per second sent to clients over the last stats_period.", false },
	{ SHM_STAT_XACT_US, "avg_xact_time_seconds",
	  "Mean transaction time over the last stats_period.", true },
	{ SHM_STAT_QUERY_US, "avg_query_time_seconds",
	  "Mean request time over the last stats_period.", true },
	{ SHM_STAT_WAIT_US, "avg_wait_time_seconds",
	  "Mean wait for a server over the last stats_period.", true },
};

static void
sv_metrics_value(struct sv_mbuf *b, uint64_t v, bool is_us)
{
	if (is_us)
		sv_mbuf_printf(b, "%" PRIu64 ".%06" PRIu64 "\n", v / 1000000, v % 1000000);
	else
		sv_mbuf_printf(b, "%" PRIu64 "\n", v);
}

static void
sv_metrics_process(struct sv_mbuf *b, const char *ns)
{
	uint64_t alive = 0, restarts = 0, clients = 0, log_dropped = log_dropped_total();
	uint64_t hits = 0, misses = 0, parses = 0, prefiltered = 0, entries = 0;

	for (uint32_t w = 0; w < g_shm->workers_cnt; w++) {
		struct shm_worker *sw = shm_worker(w);

		if (atomic_load(&sw->pid) > 0)
			alive++;
		restarts += atomic_load(&sw->restarts);
		log_dropped += atomic_load(&sw->log_dropped);
		clients += atomic_load(&sw->clients_cnt);
		hits += atomic_load(&sw->qc_hits);
		misses += atomic_load(&sw->qc_misses);
		parses += atomic_load(&sw->qc_parses);
		prefiltered += atomic_load(&sw->qc_prefiltered);
		entries += atomic_load(&sw->qc_entries);
	}
	sv_metrics_head(b, ns, "workers", "gauge", "Worker processes running.");
	sv_mbuf_printf(b, "%sworkers %" PRIu64 "\n", ns, alive);
	sv_metrics_head(b, ns, "workers_configured", "gauge", "Worker processes configured.");
	sv_mbuf_printf(b, "%sworkers_configured %u\n", ns, g_shm->workers_per_gen);
	sv_metrics_head(b, ns, "worker_restarts_total", "counter",
			"Worker processes that exited and were replaced.");
	sv_mbuf_printf(b, "%sworker_restarts_total %" PRIu64 "\n", ns, restarts);
	sv_metrics_head(
		b, ns, "log_lines_dropped_total", "counter",
		"Syslog lines dropped because the syslog socket could not take them at once.");
	sv_mbuf_printf(b, "%slog_lines_dropped_total %" PRIu64 "\n", ns, log_dropped);
	sv_metrics_head(b, ns, "reloads_total", "counter", "Configuration reloads accepted.");
	sv_mbuf_printf(b, "%sreloads_total %" PRIu64 "\n", ns,
		       (uint64_t)atomic_load(&g_shm->reloads));
	sv_metrics_head(b, ns, "start_time_seconds", "gauge",
			"When pgdog started, seconds since the epoch.");
	sv_mbuf_printf(b, "%sstart_time_seconds %" PRIu64 "\n", ns, g_shm->started_us / 1000000);
	sv_metrics_head(b, ns, "clients", "gauge",
			"Client connections, admin included, over every worker.");
	sv_mbuf_printf(b, "%sclients %" PRIu64 "\n", ns, clients);
	sv_metrics_head(b, ns, "supervisor_resident_memory_bytes", "gauge",
			"Resident memory of the supervisor.");
	sv_mbuf_printf(b, "%ssupervisor_resident_memory_bytes %" PRIu64 "\n", ns,
		       stats_rss_bytes((int)getpid()));
	sv_metrics_head(b, ns, "worker_resident_memory_bytes", "gauge",
			"Resident memory of each worker (shared memory it touched included).");
	for (uint32_t w = 0; w < g_shm->workers_cnt; w++) {
		int32_t pid = atomic_load(&shm_worker(w)->pid);

		if (pid > 0)
			sv_mbuf_printf(
				b, "%sworker_resident_memory_bytes{worker=\"%u\"} %" PRIu64 "\n",
				ns, w, stats_rss_bytes(pid));
	}
	sv_metrics_head(b, ns, "query_cache_hits_total", "counter",
			"SQL classification cache hits, all workers.");
	sv_mbuf_printf(b, "%squery_cache_hits_total %" PRIu64 "\n", ns, hits);
	sv_metrics_head(b, ns, "query_cache_misses_total", "counter",
			"SQL classification cache misses, all workers.");
	sv_mbuf_printf(b, "%squery_cache_misses_total %" PRIu64 "\n", ns, misses);
	sv_metrics_head(b, ns, "query_cache_parses_total", "counter",
			"Statements parsed with libpg_query, all workers.");
	sv_mbuf_printf(b, "%squery_cache_parses_total %" PRIu64 "\n", ns, parses);
	sv_metrics_head(b, ns, "query_cache_prefiltered_total", "counter",
			"Statements classified without parsing, all workers.");
	sv_mbuf_printf(b, "%squery_cache_prefiltered_total %" PRIu64 "\n", ns, prefiltered);
	sv_metrics_head(b, ns, "query_cache_entries", "gauge",
			"Entries in the SQL classification caches, all workers.");
	sv_mbuf_printf(b, "%squery_cache_entries %" PRIu64 "\n", ns, entries);
}

/* One gauge per pool, value picked by offset into struct stats_pool. */
static void
sv_metrics_pool_gauge(struct sv_mbuf *b, const char *ns, const struct stats_pool *ps,
		      const struct sv_metrics_pool *lbl, size_t cnt, const char *name,
		      const char *help, size_t off)
{
	sv_metrics_head(b, ns, name, "gauge", help);
	for (size_t i = 0; i < cnt; i++)
		sv_mbuf_printf(b, "%s%s{%s} %" PRIu64 "\n", ns, name, lbl[i].labels,
			       *(const uint64_t *)((const char *)&ps[i] + off));
}

/* Microseconds as seconds, without trailing zeros: 250 -> "0.00025", 1000000 -> "1". */
static void
sv_metrics_seconds(char *out, size_t len, uint64_t us)
{
	size_t n;

	snprintf(out, len, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
	n = strlen(out);
	while (n > 0 && out[n - 1] == '0')
		out[--n] = '\0';
	if (n > 0 && out[n - 1] == '.')
		out[--n] = '\0';
}

static void
sv_metrics_histogram(struct sv_mbuf *b, const char *ns, const struct stats_pool *ps,
		     const struct sv_metrics_pool *lbl, size_t cnt, int kind, const char *name,
		     const char *help)
{
	sv_metrics_head(b, ns, name, "histogram", help);
	for (size_t i = 0; i < cnt; i++) {
		uint64_t cum = 0;

		for (int k = 0; k < SHM_HIST_CNT; k++) {
			cum += ps[i].hist[kind][k];
			if (k < SHM_HIST_BOUNDS) {
				char le[32];

				sv_metrics_seconds(le, sizeof(le), stats_hist_bounds_us[k]);
				sv_mbuf_printf(b, "%s%s_bucket{%s,le=\"%s\"} %" PRIu64 "\n", ns,
					       name, lbl[i].labels, le, cum);
			} else {
				sv_mbuf_printf(b, "%s%s_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n", ns,
					       name, lbl[i].labels, cum);
			}
		}
		sv_mbuf_printf(b, "%s%s_sum{%s} ", ns, name, lbl[i].labels);
		sv_metrics_value(b, ps[i].hist_sum_us[kind], true);
		sv_mbuf_printf(b, "%s%s_count{%s} %" PRIu64 "\n", ns, name, lbl[i].labels, cum);
	}
}

/* Wall clock, microseconds: ban expiries are wall-clock times. */
static uint64_t
sv_metrics_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int
sv_metrics_render(const char *ns, char **out, size_t *out_len)
{
	struct sv_mbuf b = { 0 };
	size_t cnt = g_shm->pools_cnt; /* the high-water mark; free indexes are compacted out */
	struct stats_pool *ps = calloc(cnt ? cnt : 1, sizeof(*ps));
	struct sv_metrics_pool *lbl = calloc(cnt ? cnt : 1, sizeof(*lbl));
	uint64_t(*avg)[SHM_STAT_CNT] = calloc(cnt ? cnt : 1, sizeof(*avg));
	size_t live;
	static struct stats_holds h; /* the supervisor renders one scrape at a time */

	if (!ps || !lbl || !avg)
		goto fail;
	stats_collect(ps, cnt);
	/* keep the pools in use at the front: every loop below runs to cnt */
	live = 0;
	for (size_t i = 0; i < cnt; i++) {
		if (ps[i].ident.state == SHM_POOL_FREE)
			continue;
		if (live != i)
			ps[live] = ps[i];
		live++;
	}
	cnt = live;
	for (size_t i = 0; i < cnt; i++) {
		sv_metrics_pool_labels(&ps[i].ident, &lbl[i]);
		stats_averages(&ps[i], avg[i]);
	}
	sv_metrics_process(&b, ns);
	stats_holds_read(&h, sv_metrics_wall_us());
	sv_metrics_head(&b, ns, "maintenance", "gauge",
			"1 while MAINTENANCE ON holds every new transaction.");
	sv_mbuf_printf(&b, "%smaintenance %d\n", ns, h.is_maintenance);
	sv_metrics_head(&b, ns, "paused", "gauge",
			"1 while PAUSE (every database) holds new transactions.");
	sv_mbuf_printf(&b, "%spaused %d\n", ns, h.is_pause_all);
	sv_metrics_head(&b, ns, "paused_databases", "gauge", "Databases paused by PAUSE db.");
	sv_mbuf_printf(&b, "%spaused_databases %u\n", ns, h.paused_cnt);
	sv_metrics_head(&b, ns, "bans", "gauge", "Bans in force (BAN; SHOW BANS lists them).");
	sv_mbuf_printf(&b, "%sbans %u\n", ns, h.bans_cnt);
#define SV_GAUGE(field, help)                                     \
	sv_metrics_pool_gauge(&b, ns, ps, lbl, cnt, #field, help, \
			      offsetof(struct stats_pool, field))
	SV_GAUGE(cl_active, "Clients logged in and not waiting for a server.");
	SV_GAUGE(cl_waiting, "Clients waiting for a server connection.");
	SV_GAUGE(sv_active, "Server connections running a client's request.");
	SV_GAUGE(sv_idle, "Server connections idle in the pool.");
	SV_GAUGE(sv_idle_xact, "Server connections idle inside a client's transaction.");
	SV_GAUGE(sv_login, "Server connections connecting or logging in.");
#undef SV_GAUGE
	/* SHOW POOLS' sv_total; a gauge must not end in _total */
	sv_metrics_pool_gauge(
		&b, ns, ps, lbl, cnt, "sv_open",
		"Server connections open or opening (the pool_size cap counts these).",
		offsetof(struct stats_pool, sv_total));
	sv_metrics_head(&b, ns, "pool_size", "gauge", "Configured pool_size.");
	for (size_t i = 0; i < cnt; i++)
		sv_mbuf_printf(&b, "%spool_size{%s} %d\n", ns, lbl[i].labels,
			       ps[i].ident.pool_size);
	sv_metrics_head(&b, ns, "pool_paused", "gauge",
			"1 while new transactions of the pool are held (PAUSE, MAINTENANCE ON).");
	for (size_t i = 0; i < cnt; i++)
		sv_mbuf_printf(&b, "%spool_paused{%s} %d\n", ns, lbl[i].labels,
			       stats_holds_is_paused(&h, ps[i].ident.database));
	sv_metrics_head(&b, ns, "pool_banned", "gauge",
			"1 while a ban (BAN) refuses new transactions of the pool.");
	for (size_t i = 0; i < cnt; i++)
		sv_mbuf_printf(&b, "%spool_banned{%s} %d\n", ns, lbl[i].labels,
			       stats_holds_is_banned(&h, ps[i].ident.database, ps[i].ident.user));
	sv_metrics_head(&b, ns, "maxwait_seconds", "gauge",
			"How long the oldest waiting client has waited.");
	for (size_t i = 0; i < cnt; i++) {
		sv_mbuf_printf(&b, "%smaxwait_seconds{%s} ", ns, lbl[i].labels);
		sv_metrics_value(&b, ps[i].maxwait_us, true);
	}
	sv_metrics_head(&b, ns, "checkout_timeouts_total", "counter",
			"Clients refused after checkout_timeout.");
	for (size_t i = 0; i < cnt; i++)
		sv_mbuf_printf(&b, "%scheckout_timeouts_total{%s} %" PRIu64 "\n", ns, lbl[i].labels,
			       ps[i].checkout_timeouts);
	sv_metrics_head(&b, ns, "pins_total", "counter",
			"Times a client pinned its server connection (transaction mode).");
	for (size_t i = 0; i < cnt; i++)
		sv_mbuf_printf(&b, "%spins_total{%s} %" PRIu64 "\n", ns, lbl[i].labels, ps[i].pins);
	for (size_t m = 0; m < ARRAY_SIZE(sv_metrics_counters); m++) {
		sv_metrics_head(&b, ns, sv_metrics_counters[m].name, "counter",
				sv_metrics_counters[m].help);
		for (size_t i = 0; i < cnt; i++) {
			sv_mbuf_printf(&b, "%s%s{%s} ", ns, sv_metrics_counters[m].name,
				       lbl[i].labels);
			sv_metrics_value(&b, ps[i].total[sv_metrics_counters[m].stat],
					 sv_metrics_counters[m].is_us);
		}
	}
	for (size_t m = 0; m < ARRAY_SIZE(sv_metrics_avgs); m++) {
		sv_metrics_head(&b, ns, sv_metrics_avgs[m].name, "gauge", sv_metrics_avgs[m].help);
		for (size_t i = 0; i < cnt; i++) {
			sv_mbuf_printf(&b, "%s%s{%s} ", ns, sv_metrics_avgs[m].name, lbl[i].labels);
			sv_metrics_value(&b, avg[i][sv_metrics_avgs[m].stat],
					 sv_metrics_avgs[m].is_us);
		}
	}
	sv_metrics_histogram(&b, ns, ps, lbl, cnt, SHM_HIST_QUERY, "query_duration_seconds",
			     "Request latency, from the request to its ReadyForQuery.");
	sv_metrics_histogram(&b, ns, ps, lbl, cnt, SHM_HIST_XACT, "xact_duration_seconds",
			     "Transaction latency, from its first request to its end.");
	if (b.has_error)
		goto fail;
	free(ps);
	free(lbl);
	free(avg);
	*out = b.data;
	*out_len = b.len;
	return 0;
fail:
	free(b.data);
	free(ps);
	free(lbl);
	free(avg);
	errno = ENOMEM;
	return -1;
}

int
sv_metrics_open(const struct config *cfg, char *err, size_t err_len)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char port[16];
	int one = 1, fd = -1, rc;

	if (!sv_metrics_is_init) {
		for (size_t i = 0; i < SV_METRICS_CONNS_MAX; i++)
			sv_metrics_conns[i].fd = -1;
		sv_metrics_is_init = true;
	}
	if (cfg->openmetrics_port == 0)
		return 0;
	snprintf(port, sizeof(port), "%d", cfg->openmetrics_port);
	rc = getaddrinfo(cfg->openmetrics_host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, err_len, "openmetrics_host %s: %s", cfg->openmetrics_host,
			 gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	/* a binary upgrade starts the next supervisor while this one still listens */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0)
		goto fail;
	if (listen(fd, 64) < 0)
		goto fail;
	freeaddrinfo(res);
	sv_metrics_fd = fd;
	log_info(NULL, "OpenMetrics endpoint on http://%s:%d/metrics", cfg->openmetrics_host,
		 cfg->openmetrics_port);
	return 0;
fail:
	snprintf(err, err_len, "openmetrics_port: listen on %s:%d: %s", cfg->openmetrics_host,
		 cfg->openmetrics_port, strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return -1;
}

static void
sv_metrics_conn_close(struct sv_metrics_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->out);
	c->out = NULL;
	c->in_len = c->out_len = c->out_off = 0;
}

void
sv_metrics_close(void)
{
	if (!sv_metrics_is_init)
		return;
	for (size_t i = 0; i < SV_METRICS_CONNS_MAX; i++)
		sv_metrics_conn_close(&sv_metrics_conns[i]);
	if (sv_metrics_fd >= 0)
		close(sv_metrics_fd);
	sv_metrics_fd = -1;
}

void
sv_metrics_child_close(void)
{
	/* the worker's copies of the descriptors and of any answer in flight */
	sv_metrics_close();
}

/* Build the whole answer for a complete request head. */
static void
sv_metrics_answer(struct sv_metrics_conn *c)
{
	struct sv_mbuf b = { 0 };
	char method[16], path[256];
	char *body = NULL;
	size_t body_len = 0;
	const char *status = "200 OK";
	bool is_head = false;

	c->in[c->in_len] = '\0';
	if (sscanf(c->in, "%15s %255s HTTP/", method, path) != 2) {
		status = "400 Bad Request";
	} else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		status = "405 Method Not Allowed";
	} else {
		size_t n = strcspn(path, "?");

		is_head = strcmp(method, "HEAD") == 0;
		if (n != 8 || strncmp(path, "/metrics", 8) != 0)
			status = "404 Not Found";
		else if (sv_metrics_render(g_cfg->openmetrics_namespace, &body, &body_len) < 0)
			status = "500 Internal Server Error";
	}
	if (strcmp(status, "200 OK") != 0) {
		sv_mbuf_printf(&b,
			       "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
			       "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
			       status, strlen(status) + 1, status);
	} else {
		sv_mbuf_printf(
			&b,
			"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
			"Content-Length: %zu\r\nConnection: close\r\n\r\n",
			body_len);
		if (!is_head && body_len)
			sv_mbuf_printf(&b, "%.*s", (int)body_len, body);
	}
	free(body);
	if (b.has_error) {
		free(b.data);
		log_warn(NULL, "metrics: out of memory for the answer");
		sv_metrics_conn_close(c);
		return;
	}
	c->out = b.data;
	c->out_len = b.len;
	c->out_off = 0;
}

static void
sv_metrics_accept(int64_t now)
{
	for (;;) {
		size_t i;
		int fd = accept4(sv_metrics_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return; /* EAGAIN, or an error the next poll reports again */
		for (i = 0; i < SV_METRICS_CONNS_MAX; i++)
			if (sv_metrics_conns[i].fd < 0)
				break;
		if (i == SV_METRICS_CONNS_MAX) {
			/* every slot busy: a scraper retries; never queue without bound */
			close(fd);
			continue;
		}
		sv_metrics_conns[i].fd = fd;
		sv_metrics_conns[i].deadline_ms = now + SV_METRICS_TIMEOUT_MS;
		sv_metrics_conns[i].in_len = 0;
	}
}

static void sv_metrics_write(struct sv_metrics_conn *c);

static void
sv_metrics_read(struct sv_metrics_conn *c)
{
	for (;;) {
		ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			sv_metrics_conn_close(c);
			return;
		}
		c->in_len += (size_t)n;
		c->in[c->in_len] = '\0';
		if (strstr(c->in, "\r\n\r\n") || strstr(c->in, "\n\n")) {
			sv_metrics_answer(c);
			if (c->out)
				sv_metrics_write(c);
			return;
		}
		if (c->in_len == sizeof(c->in) - 1) {
			sv_metrics_conn_close(c);
			return;
		}
	}
}

static void
sv_metrics_write(struct sv_metrics_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			sv_metrics_conn_close(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	sv_metrics_conn_close(c);
}

void
sv_metrics_wait(int timeout_ms)
{
	struct pollfd fds[SV_METRICS_CONNS_MAX + 1];
	int idx[SV_METRICS_CONNS_MAX + 1];
	unsigned long n = 0;
	int64_t now;

	if (sv_metrics_fd < 0) {
		sv_signal_wait(timeout_ms);
		return;
	}
	fds[n] = (struct pollfd){ .fd = sv_metrics_fd, .events = POLLIN };
	idx[n++] = -1;
	for (int i = 0; i < SV_METRICS_CONNS_MAX; i++) {
		struct sv_metrics_conn *c = &sv_metrics_conns[i];

		if (c->fd < 0)
			continue;
		fds[n] = (struct pollfd){ .fd = c->fd, .events = c->out ? POLLOUT : POLLIN };
		idx[n++] = i;
	}
	if (sv_signal_poll(fds, n, timeout_ms) <= 0)
		goto expire;
	now = sv_metrics_now_ms();
	for (unsigned long k = 0; k < n; k++) {
		if (!fds[k].revents)
			continue;
		if (idx[k] < 0) {
			sv_metrics_accept(now);
			continue;
		}
		struct sv_metrics_conn *c = &sv_metrics_conns[idx[k]];

		if (c->out)
			sv_metrics_write(c);
		else
			sv_metrics_read(c);
	}
expire:
	now = sv_metrics_now_ms();
	for (int i = 0; i < SV_METRICS_CONNS_MAX; i++) {
		struct sv_metrics_conn *c = &sv_metrics_conns[i];

		if (c->fd >= 0 && now > c->deadline_ms)
			sv_metrics_conn_close(c);
	}
}
