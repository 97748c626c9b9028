/*
 * config.h: the configuration: pgdog.ini (general settings, databases) and
 * users.ini (users, admin), read with inih, plus -d postgres:// URLs.
 * Runs in: both processes. The supervisor loads and validates; workers
 * inherit the loaded struct across fork() and only read it (g_cfg).
 *
 * A struct config field has exactly its INI key's name. Times are in
 * milliseconds (as in PgDog). Sections: [general], [databases.LABEL],
 * [users.LABEL], [admin]; `name` defaults to LABEL.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/auth.h"
#include "shared/compiler.h"
#include "shared/log.h"

#define CONFIG_MAX_WORKERS 64
#define CONFIG_MAX_LINE    199 /* Debian's inih cuts lines at INI_MAX_LINE (200) */

enum config_auth_type {
	CONFIG_AUTH_SCRAM = 0, /* "scram-sha-256" (alias "scram") */
	CONFIG_AUTH_MD5,       /* "md5" */
	CONFIG_AUTH_PLAIN,     /* "plain" */
	CONFIG_AUTH_TRUST,     /* "trust" */
};

/*
 * How server connections are shared (pooler_mode). The zero value is the
 * default. See pgdog.ini(5), POOLING MODES.
 */
enum config_pooler_mode {
	CONFIG_POOLER_TRANSACTION = 0, /* "transaction": a server per transaction (default) */
	CONFIG_POOLER_SESSION,         /* "session": a server per client connection */
	CONFIG_POOLER_STATEMENT,       /* "statement": like transaction, no transaction blocks */
};

/* How prepared statements are handled (prepared_statements). */
enum config_prepared_statements {
	CONFIG_PREPARED_EXTENDED = 0, /* "extended": named statements of the extended protocol */
	CONFIG_PREPARED_DISABLED,     /* "disabled": passed through; a named one pins the server */
	CONFIG_PREPARED_FULL,         /* "full": also SQL PREPARE / EXECUTE / DEALLOCATE */
};

enum config_role {
	CONFIG_ROLE_PRIMARY = 0, /* "primary" */
	CONFIG_ROLE_REPLICA,     /* "replica" */
	CONFIG_ROLE_AUTO,        /* "auto" */
};

/* [databases.LABEL]: one PostgreSQL server. */
struct config_database {
	char *label;
	char *name;          /* the name clients connect to; default LABEL */
	char *host;          /* required */
	int port;            /* 5432 */
	char *database_name; /* database on the server; default name */
	enum config_role role;
	int shard;                  /* 0 */
	char *user;                 /* server user override, or NULL */
	char *password;             /* server password override (cleartext), or NULL */
	int pool_size;              /* -1: unset */
	int min_pool_size;          /* -1: unset */
	int idle_timeout;           /* ms, -1: unset */
	int server_lifetime;        /* ms, -1: unset */
	int server_lifetime_jitter; /* ms, -1: unset */
	/* pooler_mode is meaningful only when has_pooler_mode (set in this section) */
	enum config_pooler_mode pooler_mode;
	bool has_pooler_mode;
	int line; /* where the section starts, for messages */
};

/* [users.LABEL]: a user allowed to connect to one database name. */
struct config_user {
	char *label;
	char *name;                /* default LABEL */
	char *database;            /* required: a [databases] name */
	char *password;            /* as written (plain, md5..., SCRAM-SHA-256$...) */
	struct auth_secret secret; /* parsed password */
	int pool_size;             /* -1: unset */
	int min_pool_size;         /* -1: unset */
	char *server_user;         /* user on PostgreSQL; default name */
	char *server_password;     /* cleartext for PostgreSQL; default password if cleartext */
	/* pooler_mode is meaningful only when has_pooler_mode (set in this section) */
	enum config_pooler_mode pooler_mode;
	bool has_pooler_mode;
	int line;
};

/* [admin]: the admin console. */
struct config_admin {
	char *name;     /* database name of the console: "admin" */
	char *user;     /* "admin" */
	char *password; /* as written; required to enable the console */
	struct auth_secret secret;
};

/*
 * A pool: one (user, database entry) pair, derived after loading.
 * Effective settings are resolved here (user > database > general).
 */
struct config_pool {
	int user_idx; /* index into users */
	int db_idx;   /* index into databases */
	int pool_size;
	int min_pool_size;
	int idle_timeout;                    /* ms */
	int server_lifetime;                 /* ms */
	int server_lifetime_jitter;          /* ms: database, else general */
	enum config_pooler_mode pooler_mode; /* user, else database, else general */
};

struct config {
	char *config_path; /* NULL when not read from a file */
	char *users_path;

	/* [general] */
	char *host;                          /* "0.0.0.0" */
	int port;                            /* 6432 */
	int workers;                         /* number of CPUs */
	char *unix_socket_dir;               /* "/tmp"; "" disables the Unix socket */
	int default_pool_size;               /* 10 */
	int min_pool_size;                   /* 1 */
	enum config_pooler_mode pooler_mode; /* transaction; see config_pool for the resolved one */
	enum config_auth_type auth_type;     /* scram-sha-256 */
	int checkout_timeout;                /* ms, 5000 */
	int connect_timeout;                 /* ms, 5000 */
	int idle_timeout;                    /* ms, 60000 */
	int server_lifetime;                 /* ms, 86400000 */
	int server_lifetime_jitter;          /* ms, 0: each lifetime varies by +-up to this */
	bool server_round_robin;             /* false: idle servers reused last in, first out */
	int client_login_timeout;            /* ms, 60000 */
	int shutdown_timeout;                /* ms, 60000 */
	int max_client_conn;                 /* 10000, over all workers */
	int max_message_len;                 /* bytes, 1073741823 */
	char *server_reset_query;            /* "DISCARD ALL"; "" sends nothing */
	bool server_reset_query_always;      /* false; true: also after each transaction */
	enum log_level log_level;            /* info */
	char *log_file;                      /* NULL: stderr (or syslog) */
	bool syslog;                         /* false */
	char *syslog_ident;                  /* "pgdog" */
	bool log_connections;                /* true */
	bool log_disconnections;             /* true */
	bool log_pooler_errors;              /* true: every ErrorResponse pgdog itself sends */
	int syslog_facility;                 /* LOG_DAEMON (syslog.h value) */

	/* transaction pooling */
	enum config_prepared_statements prepared_statements; /* extended */
	int prepared_statements_limit; /* per server connection; 0 (default): unlimited */
	int query_timeout;             /* ms, 0 (default): off */
	int client_idle_timeout;       /* ms, 0 (default): off */
	/* ms, 0 (default): off */
	int client_idle_in_transaction_timeout;
	int rollback_timeout;     /* ms, 5000: ROLLBACK for a client that left mid-transaction */
	int pub_sub_channel_size; /* messages queued per LISTEN channel; 0 (default): off */
	int query_cache_limit;    /* SQL classification cache entries per worker, 1024 */
	int stats_period;         /* ms, 15000: window of the averages in SHOW STATS and /metrics */
	int ban_timeout;          /* ms, 300000: a BAN lifts after this; 0: only UNBAN lifts it */
	int lsn_check_interval;   /* ms, 5000: replication checks (SHOW REPLICATION); 0: off */
	int openmetrics_port;     /* 0 (default): no metrics endpoint */
	char *openmetrics_host;   /* "0.0.0.0" */
	char *openmetrics_namespace; /* "pgdog_": prefix of every metric name */

	struct config_database *databases;
	size_t databases_cnt;
	struct config_user *users;
	size_t users_cnt;
	struct config_admin admin;

	struct config_pool *pools; /* derived */
	size_t pools_cnt;
};

/* The configuration in effect in this process. */
extern const struct config *g_cfg;

/* A configuration holding every default and no databases or users. NULL on ENOMEM. */
struct config *config_new(void);
void config_free(struct config *cfg); /* wipes passwords; NULL does nothing */

/*
 * Read pgdog.ini (path may be NULL: none) and users.ini (may be NULL), then
 * each postgres:// URL, then validate and derive the pools.
 * Returns 0, or -1 with one message in err naming file, line, key and what
 * is allowed, e.g.
 *   "pgdog.ini:4: [general] port = 70000: must be an integer between 1 and 65535".
 * Messages about a URL quote it with its password replaced by "***".
 * cfg must come fresh from config_new(). After a failure it holds a partial
 * configuration: config_free() it, never use it. Supervisor only.
 */
int config_load(struct config *cfg, const char *config_path, const char *users_path,
		const char *const *urls, size_t urls_cnt, char *err, size_t err_len) MUST_CHECK;

/*
 * The same from strings (tests, fuzzing), without URLs; names are used in
 * messages ("pgdog.ini", "users.ini" when NULL). A NULL text is skipped.
 */
int config_load_strings(struct config *cfg, const char *config_name, const char *config_text,
			const char *users_name, const char *users_text, char *err, size_t err_len)
	MUST_CHECK;

/* The user called name, or NULL. */
const struct config_user *config_find_user(const struct config *cfg, const char *name);
/* true if any [databases] entry has this name. */
bool config_has_database(const struct config *cfg, const char *name);
/*
 * The pool serving (user, database name): the pool whose database entry has
 * role primary (or auto) and shard 0, else the first one. -1 if none.
 */
int config_find_pool(const struct config *cfg, const char *user, const char *database);

/* Names for values, for SHOW and logs. */
const char *config_auth_type_name(enum config_auth_type t);
const char *config_role_name(enum config_role r);
/*
 * The i-th [general] key of cfg and its value as text (SHOW CONFIG). Returns
 * the key's name, or NULL past the last key. Passwords are never shown.
 */
const char *config_general_key(const struct config *cfg, size_t i, char *value, size_t len);
const char *config_pooler_mode_name(enum config_pooler_mode m);
const char *config_prepared_statements_name(enum config_prepared_statements p);

/* ---- live reload ---------------------------------------------------------- */

/*
 * config_load from texts already read (and the -d URLs): the supervisor
 * validates exactly the bytes it then publishes to the workers, and each
 * worker parses the same bytes. Same contract as config_load.
 */
int config_load_texts(struct config *cfg, const char *config_name, const char *config_text,
		      const char *users_name, const char *users_text, const char *const *urls,
		      size_t urls_cnt, char *err, size_t err_len) MUST_CHECK;
/* Read a whole configuration file (NUL-terminated). -1 with a reason in err. */
int config_file_read(const char *path, char **text, char *err, size_t err_len) MUST_CHECK;
/* Wipe and free a text from config_file_read (NULL does nothing). */
void config_file_free(char *text);
/*
 * Whether pool ai of a and pool bi of b differ in anything their server
 * connections depend on (resolved sizes and timeouts, mode, user and
 * database sections, passwords): such a pool is rebuilt on reload.
 */
bool config_pool_differs(const struct config *a, size_t ai, const struct config *b, size_t bi);
/*
 * Settings that need a restart (host, port, workers, unix_socket_dir,
 * max_client_conn, log_file, syslog, syslog_ident, query_cache_limit): copy
 * running's values into next and list the names that differed in changed
 * ("" if none). -1 on ENOMEM.
 */
int config_keep_restart_only(struct config *next, const struct config *running, char *changed,
			     size_t changed_len) MUST_CHECK;

/*
 * Settings the admin command SET may change at run time (checkout_timeout,
 * connect_timeout, query_timeout, client_idle_timeout,
 * client_idle_in_transaction_timeout, client_login_timeout, rollback_timeout,
 * prepared_statements_limit, log_connections, log_disconnections).
 */
size_t config_live_cnt(void);
const char *config_live_name(size_t idx);
/* Index of the live setting called name (case-insensitive), or -1. */
int config_live_find(const char *name);
/* Check value for setting idx with the INI file's rules. -1 with a reason in err. */
int config_live_parse(size_t idx, const char *value, int *out, char *err, size_t err_len)
	MUST_CHECK;
void config_live_apply(struct config *cfg, size_t idx, int value);
int config_live_get(const struct config *cfg, size_t idx);
