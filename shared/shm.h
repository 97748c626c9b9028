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

#define SHM_MAGIC    0x7067646f67736d31ull /* "pgdogsm1" */
#define SHM_VERSION  2
#define SHM_NAME_MAX 64
#define SHM_ADDR_MAX 64

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
	uint32_t workers_cnt;
	uint64_t size;
	uint32_t pools_cnt;
	uint32_t clients_per_worker;
	uint32_t servers_per_worker;
	uint32_t pad;
	uint64_t off_workers, off_pools, off_pool_stats, off_clients, off_servers, off_prepared;
	uint32_t prepared_per_worker;
	uint32_t pad2;
	uint64_t started_us;
	uint8_t mock_key[32];   /* salts of fake SCRAM exchanges for unknown users */
	uint64_t off_listeners; /* shm_listener rows (pub/sub channels), per worker */
	uint32_t listeners_per_worker;
	uint32_t pad3;
};

/* One per worker slot; written by that worker only. */
struct shm_worker {
	_Atomic int32_t pid;
	_Atomic uint32_t clients_cnt; /* clients connected to this worker (incl. admin) */
	_Atomic uint64_t started_us;
	_Atomic uint64_t accepted_total;
	_Atomic uint64_t restarts; /* written by the supervisor */
} __attribute__((aligned(CACHELINE)));

/* One per pool: the global server count, under lock. */
struct shm_pool {
	_Atomic int32_t lock;                         /* 0 or the holder's pid */
	uint32_t open[CONFIG_MAX_WORKERS];            /* servers open or opening, per worker */
	_Atomic uint32_t waiting[CONFIG_MAX_WORKERS]; /* clients waiting, per worker */
} __attribute__((aligned(CACHELINE)));

/* Per worker and pool: counters for SHOW POOLS (single writer). */
struct shm_pool_stats {
	_Atomic uint32_t cl_active, cl_waiting, sv_active, sv_idle, sv_login;
	_Atomic uint64_t maxwait_us; /* how long the oldest waiting client has waited */
	_Atomic uint64_t xact_count, query_count, bytes_received, bytes_sent, errors;
	_Atomic uint64_t checkout_timeouts;
	_Atomic uint64_t pins; /* times a client pinned its server (transaction mode) */
} __attribute__((aligned(CACHELINE)));

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
	uint8_t is_admin;
	uint16_t port;
	int32_t pool_idx; /* -1 for admin */
	uint64_t id;      /* per-worker counter: "w<slot>c<id>" */
	uint64_t connect_us, last_request_us, wait_start_us;
	uint64_t queries, transactions, bytes_received, bytes_sent, errors;
	char addr[SHM_ADDR_MAX];
	char user[SHM_NAME_MAX];
	char database[SHM_NAME_MAX];
	char application_name[SHM_NAME_MAX];
	/* the server running this client's queries, for CancelRequest */
	_Atomic uint32_t server_seq; /* odd while changing */
	int32_t server_db_idx;       /* -1: none */
	uint32_t server_pid, server_key;
	uint64_t server_id;
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
	char application_name[SHM_NAME_MAX];
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

struct shm_worker *shm_worker(uint32_t slot);
struct shm_pool *shm_pool(uint32_t pool_idx);
struct shm_pool_stats *shm_pool_stats(uint32_t slot, uint32_t pool_idx);
struct shm_client *shm_client(uint32_t slot, uint32_t idx);
struct shm_server *shm_server(uint32_t slot, uint32_t idx);
struct shm_prepared *shm_prepared(uint32_t slot, uint32_t idx);
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
/* Clients waiting for the pool in workers other than slot. */
uint32_t shm_pool_waiting_elsewhere(uint32_t pool_idx, uint32_t slot);
/* Clients connected over all workers. */
uint32_t shm_clients_total(void);

/*
 * After worker slot (pid) died: release locks pid held, zero its pool
 * counts, connection rows and stats. Supervisor only.
 */
void shm_recover_slot(uint32_t slot, pid_t pid);
