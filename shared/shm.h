/*
 * shm.h: the shared memory segment: header, per-worker slots (stats and
 * connection tables that the admin console and cancel requests read), and
 * per-pool server counts that make pool_size a global cap.
 * Runs in: both processes. The supervisor creates the segment before the
 * first fork; workers inherit the mapping.
 *
 * Invariants: offsets, never pointers, inside the segment. Each worker
 * writes only its own slot and its own rows (single writer); readers take
 * multi-field snapshots through the row's sequence counter. The per-pool
 * counts change only under the pool's lock, whose word holds the owner's
 * pid so the supervisor can release it when that pid dies.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shared/compiler.h"
#include "shared/config.h"

/*
 * versions: 2 pool identities, control area, bans; 3 listeners; 4 two banks of slots, signature;
 * 6 a pool's oldest waiter per worker and its login parameters
 */
#define SHM_MAGIC    0x7067646f67736d31ull /* "pgdogsm1" */
#define SHM_VERSION  6
#define SHM_NAME_MAX 64
#define SHM_ADDR_MAX 64

/*
 * Worker slots: two banks of `workers` slots. A binary upgrade hands the
 * segment to the new generation, whose workers take the other bank while
 * the old ones drain in theirs, so both write their own rows and every
 * per-pool count covers both generations. workers_cnt in the header is the
 * number of slots (2 x workers); loops over every slot see both.
 */
#define SHM_SLOTS_MAX (2 * CONFIG_MAX_WORKERS)

/* Connection states shown by SHOW CLIENTS / SHOW SERVERS. */
enum shm_conn_state {
	SHM_STATE_FREE = 0,
	SHM_STATE_LOGIN,   /* client authenticating / server connecting */
	SHM_STATE_IDLE,    /* client: no server attached; server: in the pool */
	SHM_STATE_ACTIVE,  /* client: has a server; server: serving a client */
	SHM_STATE_WAITING, /* client waiting for a server */
	SHM_STATE_CLOSING,
};

struct shm_header {
	uint64_t magic;
	uint32_t version;
	uint32_t workers_cnt; /* worker slots: 2 x workers_per_gen (both banks) */
	uint64_t size;
	uint32_t pools_cnt; /* indexes below this may be in use (high-water mark, <= pools_cap) */
	uint32_t clients_per_worker;
	uint32_t servers_per_worker;
	uint32_t workers_per_gen; /* the configuration's workers: slots per bank */
	uint64_t off_workers, off_pools, off_pool_stats, off_clients, off_servers, off_prepared;
	uint64_t off_pool_idents, off_ctl, off_bans, off_cfg_blob;
	uint32_t prepared_per_worker;
	uint32_t pools_cap; /* pool indexes the segment has room for (see shm_pool_ident) */
	uint64_t started_us;
	_Atomic uint64_t reloads; /* configuration reloads accepted (supervisor) */
	uint64_t off_listeners;   /* shm_listener rows (pub/sub channels), per worker */
	uint32_t listeners_per_worker;
	_Atomic uint32_t bank;      /* the bank of the generation serving now (0 or 1) */
	uint8_t mock_key[32];       /* salts of fake SCRAM exchanges for unknown users */
	uint64_t layout_sig;        /* shm_layout_sig() of the binary that created it */
	_Atomic uint64_t handovers; /* binary upgrades that kept this segment */
};

#define SHM_QC_ROWS     64
#define SHM_QC_TEXT_MAX 208

/* One per worker slot; written by that worker only. */
struct shm_worker {
	_Atomic int32_t pid;
	_Atomic uint32_t clients_cnt; /* clients connected to this worker (incl. admin) */
	_Atomic uint64_t started_us;
	_Atomic uint64_t accepted_total;
	_Atomic uint64_t restarts; /* written by the supervisor */
	/* the SQL classification cache, published by the sweep (SHOW QUERY_CACHE) */
	_Atomic uint64_t qc_hits, qc_misses, qc_parses, qc_prefiltered, qc_entries;
	_Atomic uint64_t rss_bytes; /* resident memory, published with the cache counts */
	/*
	 * 1: the slot's worker of an older generation exited and its pool
	 * counters wait for the worker of the same index in the serving bank
	 * to add them to its own (shm_slot_fold); 0 once done.
	 */
	_Atomic uint32_t is_fold_pending;
	/* appended: the most used statements of its SQL cache (SHOW QUERY_CACHE), every second */
	struct shm_qc_row {
		_Atomic uint32_t seq;
		uint32_t text_len; /* of the whole text; 0: row unused */
		uint64_t hash;     /* FNV-1a of the whole text: rows of workers merge by it */
		uint64_t hits, misses, direct, multi;
		char text[SHM_QC_TEXT_MAX]; /* truncated */
	} qc_rows[SHM_QC_ROWS];
	/* appended (fits the alignment padding): syslog lines this slot's workers dropped */
	_Atomic uint64_t log_dropped;
} __attribute__((aligned(CACHELINE)));

/* Room for a pool's login ParameterStatus values, "name\0value\0" each. */
#define SHM_POOL_PARAMS_MAX 2048

enum shm_params_state {
	SHM_PARAMS_NONE = 0,
	SHM_PARAMS_WRITING, /* one worker fills params */
	SHM_PARAMS_SET,     /* params_len bytes of params are final */
};

/* One per pool: the global server count, under lock. */
struct shm_pool {
	_Atomic int32_t lock;                    /* 0 or the holder's pid */
	uint32_t open[SHM_SLOTS_MAX];            /* servers open or opening, per worker slot */
	_Atomic uint32_t waiting[SHM_SLOTS_MAX]; /* clients waiting, per worker slot */
	/* when each worker slot's longest-waiting client began to wait (CLOCK_MONOTONIC us), or 0 */
	_Atomic uint64_t wait_since_us[SHM_SLOTS_MAX];
	/*
	 * The ParameterStatus values the pool's servers report at login, as
	 * the first worker to connect one learned them: a login on another
	 * worker needs no server of its own for them (written once; cleared
	 * when the index serves another pool).
	 */
	_Atomic uint32_t params_state; /* enum shm_params_state */
	uint32_t params_len;
	char params[SHM_POOL_PARAMS_MAX];
} __attribute__((aligned(CACHELINE)));

/*
 * Per worker and pool counters (single writer: the worker). Totals only grow;
 * readers sum them over the workers (shared/stats.h). Index of cnt[].
 */
enum shm_stat {
	SHM_STAT_XACT = 0,     /* transactions ended (ReadyForQuery 'I' after client work) */
	SHM_STAT_QUERY,        /* requests answered (client ReadyForQuery) */
	SHM_STAT_ASSIGN,       /* servers handed to a waiting client */
	SHM_STAT_RECV,         /* bytes from clients to servers */
	SHM_STAT_SENT,         /* bytes from servers to clients */
	SHM_STAT_XACT_US,      /* time in transactions */
	SHM_STAT_IDLE_XACT_US, /* time in transactions with no request running */
	SHM_STAT_QUERY_US,     /* time from request to ReadyForQuery */
	SHM_STAT_WAIT_US,      /* time clients waited for a server */
	SHM_STAT_PARSE,        /* Parse messages from clients */
	SHM_STAT_BIND,         /* Bind messages from clients */
	SHM_STAT_CLOSE,        /* Close messages from clients */
	SHM_STAT_SERVER_PARSE, /* ParseComplete from servers (Parses they ran) */
	SHM_STAT_ERRORS, /* ErrorResponses sent to clients by servers, failed logins, checkout timeouts */
	SHM_STAT_CLEANED,    /* server resets after a client left */
	SHM_STAT_CONNECT,    /* server connections opened */
	SHM_STAT_CONNECT_US, /* time from connect() to the server's first ReadyForQuery */
	/* appended for SHOW STATS / SHOW POOLS (PgDog's columns) */
	SHM_STAT_ROLLBACKS,     /* CommandComplete "ROLLBACK" from servers (pgdog's own included) */
	SHM_STAT_READS,         /* statements completed as SELECT, FETCH, SHOW, COPY TO, EXPLAIN */
	SHM_STAT_WRITES,        /* statements that change data or schema (see wk_stats_command) */
	SHM_STAT_AUTH,          /* client logins that reached the password check for the pool */
	SHM_STAT_AUTH_FAILED,   /* ... and failed it */
	SHM_STAT_ROWS_INSERTED, /* INSERT n, COPY FROM n */
	SHM_STAT_ROWS_UPDATED,  /* UPDATE n */
	SHM_STAT_ROWS_DELETED,  /* DELETE n */
	SHM_STAT_RESYNCED,      /* servers brought back in step after a client left mid-work */
	SHM_STAT_OUT_OF_SYNC,   /* servers closed because they could not be brought back */
	SHM_STAT_FORCE_CLOSED,  /* servers closed by RECONNECT, KILL, a reload or shutdown */
	SHM_STAT_CNT
};

/*
 * Latency histograms: fixed log-scale upper bounds (microseconds), the last
 * bucket is +Inf. Counts per bucket, not cumulative (readers accumulate).
 */
#define SHM_HIST_BOUNDS 18
#define SHM_HIST_CNT    (SHM_HIST_BOUNDS + 1)
enum shm_hist {
	SHM_HIST_QUERY = 0,
	SHM_HIST_XACT,
	SHM_HIST_KINDS
};

struct shm_pool_stats {
	_Atomic uint32_t cl_active, cl_waiting, sv_active, sv_idle, sv_login;
	_Atomic uint64_t maxwait_us; /* how long the oldest waiting client has waited */
	_Atomic uint64_t checkout_timeouts;
	_Atomic uint64_t pins; /* times a client pinned its server (transaction mode) */
	_Atomic uint64_t cnt[SHM_STAT_CNT];
	_Atomic uint64_t hist[SHM_HIST_KINDS][SHM_HIST_CNT];
	_Atomic uint64_t hist_sum_us[SHM_HIST_KINDS];
	/*
	 * Averages: every stats_period the worker copies cnt[] into last[] (the
	 * old last[] into prev[]) under seq; a reader divides the difference by
	 * the time between the two copies. Written by the worker only.
	 */
	_Atomic uint32_t snap_seq;
	uint32_t pad;
	uint64_t prev_us, last_us; /* wall clock of the two copies; 0: none yet */
	uint64_t prev[SHM_STAT_CNT], last[SHM_STAT_CNT];
	/* appended: SHOW POOLS healthy */
	_Atomic uint32_t is_connect_failed; /* the last server connect of this worker failed */
	uint32_t pad2;
	/* appended: SHOW REPLICATION; worker 0 checks the servers (wk_lsn.c) and writes these */
	struct shm_lsn {
		_Atomic uint32_t seq;
		uint32_t is_in_recovery; /* pg_is_in_recovery() */
		uint64_t checked_us;     /* wall clock of the last good check; 0: none yet */
		uint64_t lsn;            /* replay position (in recovery) or current WAL position */
		uint64_t replay_us;      /* pg_last_xact_replay_timestamp(); 0: NULL */
		uint64_t server_now_us;  /* the server's now() at the check */
		char lsn_text[24];       /* the position as PostgreSQL writes it */
	} lsn;
} __attribute__((aligned(CACHELINE)));

/* Add to a single-writer counter: no locked instruction (only this worker writes it). */
static inline void
shm_stat_add(_Atomic uint64_t *v, uint64_t n)
{
	atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/*
 * A client row. Its index within the worker's table, with the worker slot,
 * forms the BackendKeyData pid pgdog gives the client, so a CancelRequest
 * arriving at any worker finds it: pid = slot << 24 | index + 1.
 */
struct shm_client {
	_Atomic uint32_t seq;                /* odd while the writer updates the row */
	_Atomic uint32_t cancel_key;         /* the secret; 0 while the row is free */
	_Atomic uint8_t state;               /* enum shm_conn_state */
	_Atomic uint8_t is_cancel_requested; /* set by any worker: cancel while waiting */
	/* a request of the client's is on its server (a CancelRequest is passed on only then) */
	_Atomic uint8_t is_running;
	uint8_t is_admin;
	uint16_t port;
	int32_t pool_idx; /* -1 for admin */
	/*
	 * The BackendKeyData pid the client holds: this row's own (slot, index)
	 * unless the client was handed over by an older generation, whose pid
	 * it keeps (wk_cancel_request then finds the row by searching).
	 */
	uint32_t cancel_pid;
	uint64_t id; /* per-worker counter: "w<slot>c<id>" */
	uint64_t connect_us, last_request_us, wait_start_us;
	uint64_t queries, transactions, bytes_received, bytes_sent, errors;
	uint64_t wait_time_us, query_time_us, xact_time_us;
	char addr[SHM_ADDR_MAX];
	char user[SHM_NAME_MAX];
	char database[SHM_NAME_MAX];
	char application_name[SHM_NAME_MAX];
	/* the server running this client's queries, for CancelRequest */
	_Atomic uint32_t server_seq; /* odd while changing */
	int32_t server_db_idx;       /* the server's pool (shm pool index); -1: none */
	uint32_t server_pid, server_key;
	uint64_t server_id;
	/* appended: SHOW CLIENTS and SHOW FDS (fd at accept, the rest from the sweep) */
	int32_t fd;
	uint32_t prepared_cnt; /* its named prepared statements */
	uint32_t pins;         /* WK_PIN_* bits: session state that locks it to its server */
	/*
	 * A CancelRequest for this backend pid (the client's server) is on its
	 * way to PostgreSQL; 0: none. The server does not go to another client
	 * until it has arrived (wk_cancel.c).
	 */
	_Atomic uint32_t cancel_backend;
	char client_encoding[32], datestyle[32], timezone[48], std_strings[8];
} __attribute__((aligned(CACHELINE)));

struct shm_server {
	_Atomic uint32_t seq;
	_Atomic uint8_t state;
	uint8_t pad[3];
	int32_t pool_idx;
	int32_t db_idx;
	uint32_t remote_pid;
	uint64_t id;        /* "w<slot>s<id>" */
	uint64_t client_id; /* 0: none */
	uint64_t connect_us, request_us;
	uint64_t queries, transactions, bytes_received, bytes_sent;
	uint64_t ready_us; /* wall clock of its last ReadyForQuery */
	uint8_t tx_status; /* of that ReadyForQuery: 'I', 'T', 'E' (idle in transaction) */
	char application_name[SHM_NAME_MAX];
	/* appended: SHOW SERVERS and SHOW FDS (fd at connect, prepared_cnt from the sweep) */
	int32_t fd;
	uint32_t prepared_cnt; /* statements prepared on it */
	uint32_t backend_key;  /* its BackendKeyData secret (SHOW FDS cancel) */
	uint32_t pad2;
	uint64_t rollbacks, errors;
	char client_encoding[32], datestyle[32], timezone[48], std_strings[8];
} __attribute__((aligned(CACHELINE)));

/* Prepared statements a worker keeps (transaction mode), for SHOW PREPARED. */
#define SHM_PREPARED_PER_WORKER 1024
#define SHM_QUERY_MAX           200

struct shm_prepared {
	_Atomic uint32_t seq;
	uint32_t client_refs; /* client names mapped to it */
	uint32_t server_refs; /* server connections holding it */
	uint32_t pad;
	uint64_t id;   /* 0: free */
	uint64_t uses; /* Binds and Describes */
	char name[48];
	char query[SHM_QUERY_MAX]; /* truncated */
} __attribute__((aligned(CACHELINE)));

/*
 * LISTEN channels a worker's listener connections serve (transaction-mode
 * pub/sub), for SHOW LISTENERS: one row per (pool, channel) of the worker.
 */
#define SHM_LISTENERS_PER_WORKER 256

struct shm_listener {
	_Atomic uint32_t seq;
	int32_t pool_idx;
	uint32_t clients_cnt; /* this worker's clients listening on the channel */
	uint32_t backend_pid; /* the listener connection's backend, 0 while (re)connecting */
	uint64_t id;          /* 0: free */
	uint64_t received;    /* notifications the listener got on the channel */
	uint64_t delivered;   /* NotificationResponses written to clients */
	char channel[64];
	char database[SHM_NAME_MAX]; /* the pool's names: a pool index is not a config index */
	char user[SHM_NAME_MAX];
} __attribute__((aligned(CACHELINE)));

/* The mapping in this process (NULL before shm_create). */
extern struct shm_header *g_shm;
extern int g_shm_fd;

/*
 * Create the segment (memfd) sized for cfg and map it. Supervisor only,
 * before the first fork. -1 with a reason in err.
 */
int shm_create(const struct config *cfg, char *err, size_t err_len) MUST_CHECK;
/* Unmap and close (supervisor at exit; tests). */
void shm_destroy(void);

/*
 * A value that changes whenever the segment's layout does: SHM_VERSION, the
 * size of every struct that lives in it and the fixed counts. Two binaries
 * share a segment only when theirs are equal.
 */
uint64_t shm_layout_sig(void);

/*
 * Binary upgrade, new supervisor: map the segment the old generation
 * passed (memfd fd), check it (magic, layout signature, size, workers,
 * room for max_client_conn), and switch it to the other bank of worker
 * slots, whose older workers must all be gone (an exited one is retired
 * here). On success the segment is ours (g_shm, g_shm_fd = fd). -1 with the
 * reason in err when it cannot be shared; the caller then creates a fresh
 * one (and closes fd).
 */
int shm_adopt(int fd, const struct config *cfg, char *err, size_t err_len) MUST_CHECK;

/* The first slot of the serving bank: this generation's worker i is slot base + i. */
uint32_t shm_slot_base(void);
/* The slot of the same worker index in the other bank. */
uint32_t shm_slot_twin(uint32_t slot);

/*
 * Supervisor: a worker of an older generation (slot not in the serving
 * bank) exited: like shm_recover_slot, but its pool counters are kept
 * for its successor to add to its own (shm_slot_fold), so totals do not
 * drop. Any supervisor may call it for a pid that is gone.
 */
void shm_retire_slot(uint32_t slot, pid_t pid);
/*
 * Supervisor, every loop: retire the slots of older-generation workers
 * that exited without their supervisor noticing (it was killed).
 */
void shm_retire_orphans(void);
/*
 * Worker `slot` (serving bank), from its sweep: if its twin in the other
 * bank was retired, add the twin's counters to its own and clear them.
 */
void shm_slot_fold(uint32_t slot);
/* Whether a worker of the other bank still runs (an upgrade would have no slots). */
bool shm_other_bank_busy(pid_t *pid);

/*
 * The regions of the segment. Inline: the request path finds its connection
 * rows several times per transaction, and a call costs more than the sum.
 */
static inline void *
shm_at(uint64_t off)
{
	return (char *)g_shm + off;
}

static inline struct shm_worker *
shm_worker(uint32_t slot)
{
	return (struct shm_worker *)shm_at(g_shm->off_workers) + slot;
}

static inline struct shm_pool *
shm_pool(uint32_t pool_idx)
{
	return (struct shm_pool *)shm_at(g_shm->off_pools) + pool_idx;
}

static inline struct shm_pool_stats *
shm_pool_stats(uint32_t slot, uint32_t pool_idx)
{
	return (struct shm_pool_stats *)shm_at(g_shm->off_pool_stats) +
	       (size_t)slot * g_shm->pools_cap + pool_idx;
}

static inline struct shm_client *
shm_client(uint32_t slot, uint32_t idx)
{
	return (struct shm_client *)shm_at(g_shm->off_clients) +
	       (size_t)slot * g_shm->clients_per_worker + idx;
}

static inline struct shm_server *
shm_server(uint32_t slot, uint32_t idx)
{
	return (struct shm_server *)shm_at(g_shm->off_servers) +
	       (size_t)slot * g_shm->servers_per_worker + idx;
}

static inline struct shm_prepared *
shm_prepared(uint32_t slot, uint32_t idx)
{
	return (struct shm_prepared *)shm_at(g_shm->off_prepared) +
	       (size_t)slot * g_shm->prepared_per_worker + idx;
}

struct shm_listener *shm_listener(uint32_t slot, uint32_t idx);

/* Row writers: bracket multi-field updates (single writer). */
static inline void
shm_row_write_begin(_Atomic uint32_t *seq)
{
	atomic_fetch_add_explicit(seq, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

static inline void
shm_row_write_end(_Atomic uint32_t *seq)
{
	atomic_fetch_add_explicit(seq, 1, memory_order_release);
}

/*
 * Copy a row consistently (readers: admin, cancel). Retries while a writer is
 * active; returns false if it could not get a stable copy after a few tries.
 */
bool shm_row_read(const _Atomic uint32_t *seq, const void *row, void *copy, size_t size);

/*
 * Reserve one server connection of the pool for worker slot if fewer than
 * cap are open over all workers. Returns true when reserved.
 */
bool shm_pool_reserve(uint32_t pool_idx, uint32_t slot, uint32_t cap);
/* Give back one reservation of worker slot. */
void shm_pool_release(uint32_t pool_idx, uint32_t slot);
/* Servers open for the pool over all workers. */
uint32_t shm_pool_open_total(uint32_t pool_idx);
/*
 * The same without the lock, for statistics: never waits (the supervisor
 * must not spin on a lock a dead worker still holds), may be a moment old.
 */
uint32_t shm_pool_open_peek(uint32_t pool_idx);
/* Clients waiting for the pool in workers other than slot. */
uint32_t shm_pool_waiting_elsewhere(uint32_t pool_idx, uint32_t slot);
/*
 * Publish a pool's login parameters (name\0value\0 pairs, len bytes) unless
 * a worker did already or they do not fit. Returns true when they are set.
 */
bool shm_pool_params_put(uint32_t pool_idx, const char *pairs, size_t len);
/* The pool's published parameters (*len bytes), or NULL. */
const char *shm_pool_params_get(uint32_t pool_idx, size_t *len);
/* Clients connected over all workers. */
uint32_t shm_clients_total(void);

/*
 * After worker slot (pid) died: release locks pid held, zero its pool
 * counts, connection rows and stats (restarts is left to the caller, who
 * counts it when it starts the replacement). Supervisor only.
 */
void shm_recover_slot(uint32_t slot, pid_t pid);

/* ---- live reload and control (admin action commands) ----------------------- */

/*
 * Pool indexes. The segment has room for pools_cap pools:
 * max(2 x the pools at start, SHM_POOLS_RESERVE); a reload that needs more
 * is refused with an error (restart to grow). The reserve costs address
 * space, not memory: memfd pages are allocated when first touched, and
 * every loop over pools stops at the high-water mark pools_cnt. An index is stable for the life of a pool
 * (the pool (users.LABEL, databases.LABEL) keeps it across reloads, even when
 * its settings change), so counters and the global cap carry over. A removed
 * pool's index is reused only once no worker references it (refs all 0) and
 * it holds no server (open all 0). Written by the supervisor under the
 * control lock (state, names); refs[w] by worker w under the same lock.
 */
#define SHM_POOLS_RESERVE 4096
/*
 * Server rows per worker slot: max(2 x the pool sizes at start summed,
 * SHM_SERVERS_RESERVE). A worker never holds more servers than the pool
 * sizes summed (pool_size is a global cap), so a reload whose pools add up
 * to more is refused with an error.
 */
#define SHM_SERVERS_RESERVE 8192
#define SHM_HOST_MAX        128

enum shm_pool_state {
	SHM_POOL_FREE = 0, /* never used, or reusable */
	SHM_POOL_LIVE,     /* in the current configuration */
	SHM_POOL_REMOVED,  /* removed by a reload: draining in the workers that still have it */
};

struct shm_pool_ident {
	_Atomic uint32_t seq;                /* odd while the supervisor rewrites the row */
	_Atomic uint32_t state;              /* enum shm_pool_state */
	uint64_t cfg_gen;                    /* configuration generation that last defined it */
	_Atomic uint8_t refs[SHM_SLOTS_MAX]; /* worker slot w has it (live or draining) */
	char user[SHM_NAME_MAX];             /* the name clients log in with */
	char database[SHM_NAME_MAX];         /* the database name clients use */
	char user_label[SHM_NAME_MAX];       /* [users.LABEL] */
	char db_label[SHM_NAME_MAX];         /* [databases.LABEL] */
	char host[SHM_HOST_MAX];
	int32_t port, shard, role, pool_size, pooler_mode;
} __attribute__((aligned(CACHELINE)));

/*
 * Manual bans (BAN / UNBAN; SHOW BANS reads them). A banned pool refuses new
 * checkouts. A row is in use while database[0] != 0. expires_at_us 0: until
 * UNBAN. Written under the control lock; readers use shm_row_read.
 */
#define SHM_BANS_MAX 64

struct shm_ban {
	_Atomic uint32_t seq;
	uint32_t pad;
	char database[SHM_NAME_MAX];
	char user[SHM_NAME_MAX]; /* "" : every user of database */
	char host[SHM_HOST_MAX];
	char reason[128];
	uint64_t banned_at_us;  /* wall clock */
	uint64_t expires_at_us; /* wall clock; 0: never */
} __attribute__((aligned(CACHELINE)));

/* Commands for every worker (or one slot), in a ring. */
#define SHM_CTL_CMDS    32
#define SHM_CTL_ARG_MAX 64

enum shm_ctl_kind {
	SHM_CTL_NONE = 0,
	SHM_CTL_RECONNECT,   /* arg: database, "" = all: new servers after check-in */
	SHM_CTL_KILL,        /* arg: database, "" = all: drop clients and servers now */
	SHM_CTL_KILL_CLIENT, /* slot, id: drop that client */
};

struct shm_ctl_cmd {
	uint64_t seq; /* 1, 2, ...: position in the ring is seq % SHM_CTL_CMDS */
	uint32_t kind;
	int32_t slot; /* -1: every worker */
	uint64_t id;
	char arg[SHM_CTL_ARG_MAX];
};

/* Runtime overrides (SET): one slot per config_live setting. */
#define SHM_CTL_OVERRIDES  16
#define SHM_CTL_UNSET      INT32_MIN
#define SHM_CTL_PAUSED_MAX 32
#define SHM_CFG_BLOB_MAX   (1024 * 1024) /* bytes of configuration text a reload may publish */
#define SHM_RELOAD_MSG_MAX 1024

/*
 * The control area. Everything is written under `lock` (holder's pid); the
 * writer bumps `gen` and then wakes every worker (SIGHUP to its pid); a
 * worker reads what changed under the lock and stores `acked[slot] = gen`
 * once it acts accordingly.
 */
struct shm_ctl {
	_Atomic int32_t lock;
	_Atomic int32_t sv_pid; /* the supervisor: RELOAD and SHUTDOWN signal it */
	_Atomic uint64_t gen;
	_Atomic uint64_t acked[SHM_SLOTS_MAX];
	/* holds: MAINTENANCE, PAUSE (all, or these databases) */
	uint32_t is_maintenance;
	uint32_t is_pause_all;
	uint32_t paused_cnt;
	uint32_t pad;
	char paused[SHM_CTL_PAUSED_MAX][SHM_NAME_MAX];
	int32_t overrides[SHM_CTL_OVERRIDES]; /* SHM_CTL_UNSET or the value */
	/* the command ring */
	uint64_t cmd_seq; /* last command written */
	struct shm_ctl_cmd cmds[SHM_CTL_CMDS];
	/* the configuration published by the supervisor (blob: struct shm_cfg_blob) */
	uint64_t cfg_gen; /* 0: the one loaded at start (inherited by fork) */
	/* RELOAD from the admin console: workers bump req, the supervisor answers */
	uint64_t reload_req;
	uint64_t reload_done; /* the req value the last reload served */
	uint32_t reload_ok;
	uint32_t pad2;
	char reload_msg[SHM_RELOAD_MSG_MAX];
} __attribute__((aligned(CACHELINE)));

/*
 * The published configuration: the exact bytes the supervisor validated.
 * Followed by pool_map[pools_cnt] (shm index of the configuration's pool i),
 * then the texts, each NUL-terminated: pgdog.ini (if has_config), users.ini
 * (if has_users), then urls_cnt -d URLs; names for messages come first.
 */
struct shm_cfg_blob {
	uint32_t len; /* bytes after this header */
	uint32_t pools_cnt;
	uint32_t has_config, has_users, urls_cnt;
	int32_t publisher_pid; /* the supervisor that published it: only its workers apply it */
};

/*
 * The pool indexes of the configuration the supervisor runs (map[i]: pool
 * i), set when it publishes one; NULL: pool i at index i. Workers inherit
 * it with the configuration when they are forked.
 */
extern const uint32_t *g_shm_own_map;
/* Supervisor: remember a copy of map (cnt entries); -1 on ENOMEM (the old one stays). */
int shm_own_map_set(const uint32_t *map, size_t cnt) MUST_CHECK;

struct shm_pool_ident *shm_pool_ident(uint32_t pool_idx);
struct shm_ban *shm_ban(uint32_t idx); /* idx < SHM_BANS_MAX */
struct shm_ctl *shm_ctl(void);
struct shm_cfg_blob *shm_cfg_blob(void);

/* The control lock (pid in the word); held for a few stores or one copy, never across I/O. */
void shm_ctl_lock(void);
void shm_ctl_unlock(void);

/*
 * Write the identities of cfg's pools (index i = pool i). Supervisor, at
 * start, after shm_create.
 */
void shm_pools_init(const struct config *cfg);
/*
 * Choose an index for every pool of next (same labels: same index; new:
 * a free one) into map, mark the others removed, and write the identities.
 * Call under shm_ctl_lock. -1 with a reason when the capacity is exhausted
 * (nothing changed then). Supervisor only.
 */
int shm_pools_assign(const struct config *next, uint64_t gen, uint32_t *map, char *err,
		     size_t err_len) MUST_CHECK;
/* Send SIGHUP to every live worker except skip_pid (0: none). */
void shm_ctl_wake_workers(pid_t skip_pid);
