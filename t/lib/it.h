/*
 * it.h: helpers for the integration tests (t/integration/it_*.c): a throwaway
 * PostgreSQL cluster (t/pgenv.sh), a pgdog process with generated INI files,
 * libpq and raw-socket clients, and a main() that dumps pgdog's log when a
 * test fails.
 * Runs in: test programs only. One environment per process at a time: an
 * unchecked fixture (tcase_add_unchecked_fixture) starts it in the runner
 * process, the forked tests inherit its ports and pids. Every process the
 * harness starts is stopped in it_env_stop(), from an atexit handler of the
 * process that started it, or (when a forked test was killed) by the runner's
 * teardown from the pid list kept in the environment's directory.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <check.h>
#include <libpq-fe.h>

/*
 * Check's START_TEST, with a line "=== test NAME begins" written to pgdog's
 * log first (it_test_begin), so that the log of a failed run shows what pgdog
 * did during each test (.ci/run prints the failed tests' parts of it).
 */
#undef START_TEST
#define START_TEST(name)                                                            \
	static void name##_body(int _i);                                            \
	static void name##_fn(int _i)                                               \
	{                                                                           \
		it_test_begin(#name);                                               \
		name##_body(_i);                                                    \
	}                                                                           \
	static const TTest name##_ttest = { #name, name##_fn, __FILE__, __LINE__ }; \
	static const TTest *name = &name##_ttest;                                   \
	static void name##_body(int _i CK_ATTRIBUTE_UNUSED)

/* Append "=== test name begins" to pgdog's log (g_it.log_path), if there is one. */
void it_test_begin(const char *name);
/* Append a line "=== " fmt to pgdog's log, timestamped as pgdog's own lines. */
void it_log_mark(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define IT_PATH_MAX 512

/* Settings of the pgdog started by it_pgdog_start(). NULL fields take defaults. */
struct it_pgdog_conf {
	/*
	 * Extra "key = value" lines for [general], newline-separated. A key given
	 * here replaces the harness default for it (workers = 2, auth_type =
	 * scram-sha-256, min_pool_size = 0, ...).
	 */
	const char *general;
	/* Extra sections for pgdog.ini after [databases.app] (which always exists). */
	const char *databases;
	/*
	 * users.ini body. NULL: one user "app" (password "app_pw", database app).
	 * An [admin] section (admin/admin/pgdog) is appended unless has_admin.
	 */
	const char *users;
	bool has_admin;
	int workers; /* 0: 2 */
};

/* The running environment; fields are valid after the matching start call. */
struct it_env {
	char name[64];             /* the TCase name, for saved logs */
	char dir[IT_PATH_MAX / 2]; /* temp dir, mode 0755 */
	char pg_dir[IT_PATH_MAX];  /* dir/pg: the cluster (dir/pg/data) */
	int pg_port;               /* 0: no cluster */
	int port;                  /* pgdog's TCP port */
	int workers;               /* as configured */
	pid_t pid;                 /* pgdog supervisor, or 0 */
	pid_t owner;               /* process that started pgdog */
	char ini_path[IT_PATH_MAX];
	char users_path[IT_PATH_MAX];
	char log_path[IT_PATH_MAX]; /* pgdog's stderr */
};

extern struct it_env g_it;

/* ---- environment ------------------------------------------------------- */

/* Create the temp dir; name is the TCase's name (logs are saved under it). */
void it_env_start(const char *name);
/* Stop pgdog and PostgreSQL, save pgdog's log, remove the temp dir. */
void it_env_stop(void);
/*
 * Run a suite (CK_NORMAL) and return main()'s exit status. Afterwards print
 * the saved pgdog logs of every TCase that had a failure.
 */
int it_run_suite(Suite *s);

/* A free TCP port on 127.0.0.1, from 20000..29999, reserved for the rest of this process by a
 * lock every test runner honours (see it.c). */
int it_free_port(void);
/* The path of a file in the temp dir (static, thread-local rotating buffer). */
const char *it_path(const char *file);
/* Write a whole file; ck_abort on error. */
void it_write_file(const char *path, const char *text);
/* Milliseconds since an arbitrary start (CLOCK_MONOTONIC). */
long long it_now_ms(void);
/* Sleep ms milliseconds. */
void it_sleep_ms(int ms);

/* ---- PostgreSQL -------------------------------------------------------- */

/* Start a cluster in dir/pg on a free port; conf: extra postgresql.conf lines or NULL. */
void it_pg_start(const char *const *conf);
void it_pg_stop(void);
/* Superuser connection straight to the cluster (TCP); ck_abort on failure. */
PGconn *it_pg_connect(void);
/* Run SQL as superuser on the cluster; ck_abort with the error unless it succeeds. */
void it_pg_exec(const char *sql);
/* Run a query returning one value; the result in a static thread-local buffer. */
const char *it_pg_value(const char *sql);
/* Count backends of `user` in pg_stat_activity (client backends only). */
int it_pg_count_backends(PGconn *mon, const char *user);
/*
 * ESTABLISHED IPv4 TCP connections on this host whose remote port is port
 * (e.g. pgdog's connections to PostgreSQL), skipping the one whose local
 * port is exclude_local_port. -1 if /proc/net/tcp is unreadable.
 */
int it_tcp_established_to(int port, int exclude_local_port);
/* The local port of a connected IPv4 socket, or -1. */
int it_local_port(int fd);
/*
 * Replace pg_hba.conf with: local trust, postgres trust over TCP, `lines`
 * (newline-separated, may be NULL), then "host all all 127.0.0.1/32 trust";
 * then pg_reload_conf().
 */
void it_pg_hba(const char *lines);
/*
 * Create (or replace) a login role with a password stored with the given
 * password_encryption ("md5" or "scram-sha-256"); password NULL: none.
 */
void it_pg_role(const char *name, const char *password, const char *encryption);
/* The stored secret of a role (pg_authid.rolpassword): an md5 hash or a SCRAM verifier. */
const char *it_pg_role_secret(const char *name);

/* ---- pgdog ------------------------------------------------------------- */

/* pgdog's binary: $PGDOG_BIN, else ../../pgdog. */
const char *it_pgdog_bin(void);
/* The source tree: $PGDOG_SRCDIR, else ../.. */
const char *it_srcdir(void);
/* Write dir/pgdog.ini and dir/users.ini for conf. */
void it_pgdog_write_config(const struct it_pgdog_conf *conf);
/*
 * Write the configuration, start pgdog in the foreground (stderr to
 * dir/pgdog.log) and wait up to 10 s until its port accepts connections and
 * its workers exist. ck_abort (with the log) if it does not come up.
 */
void it_pgdog_start(const struct it_pgdog_conf *conf);
/*
 * Start another pgdog (not waited for, not stopped by it_pgdog_stop; tracked
 * for the teardown) with its own files tag.ini, tag-users.ini and log
 * pgdog-tag.log in the temp dir, listening on port; extra_args (NULL-
 * terminated, may be NULL) follow "-c tag.ini -u tag-users.ini".
 */
pid_t it_pgdog_spawn(const char *tag, const struct it_pgdog_conf *conf, int port,
		     const char *const *extra_args);
/* Wait until 127.0.0.1:port accepts a TCP connection. */
bool it_wait_port(int port, int timeout_ms);
/* SIGTERM, wait up to 5 s, then SIGKILL. Returns the wait status, or -1. */
int it_pgdog_stop(void);
/* Restart with a new configuration (same port). */
void it_pgdog_restart(const struct it_pgdog_conf *conf);
/* Wait up to timeout_ms for a child we started to exit; its status, or -1 on timeout. */
int it_wait_pid(pid_t pid, int timeout_ms);
/* Remember a pid to kill in the runner's teardown (for processes a test starts). */
void it_track_pid(pid_t pid);
/* Whether a process exists (and is no zombie). */
bool it_pid_alive(pid_t pid);
/* Children of pid (pgdog's workers); returns how many were written to out. */
int it_children(pid_t pid, pid_t *out, int max);
/*
 * it_children(), asked again every 20 ms until it finds want children or ms
 * have passed (a listening port can come before the forks): their count.
 */
int it_children_wait(pid_t pid, pid_t *out, int max, int want, int ms);
/* Print pgdog's log to stderr. */
void it_dump_log(void);
/* Whether pgdog's log contains s. */
bool it_log_contains(const char *s);
/* The whole of path, NUL-terminated (free it); NULL if it cannot be read. */
char *it_read_file(const char *path);
/* Whether the file path contains s (false if it cannot be read). */
bool it_file_contains(const char *path, const char *s);
/* Wait up to timeout_ms for s to appear in path; whether it did. */
bool it_file_wait_for(const char *path, const char *s, int timeout_ms);
/* The pid written in a pidfile; 0 if none. */
pid_t it_pidfile_pid(const char *path);
/*
 * Run pgdog with argv (argv[0] is ignored, the binary is it_pgdog_bin()),
 * capture stdout+stderr into out (NUL-terminated) and return the exit status
 * (WEXITSTATUS), or -1 if it did not exit within timeout_ms (it is killed).
 */
int it_pgdog_run(const char *const *argv, char *out, size_t out_len, int timeout_ms);

/* ---- clients ----------------------------------------------------------- */

/*
 * conninfo for pgdog: "host=127.0.0.1 port=<port> connect_timeout=5 " + extra.
 * Thread-local rotating buffers: up to 8 results stay valid per thread.
 */
const char *it_pgdog_dsn(const char *extra);
/* Connect through pgdog; ck_abort with the error message unless it works. */
PGconn *it_connect(const char *extra);
/* Run sql; ck_abort unless the result status is PGRES_COMMAND_OK or PGRES_TUPLES_OK. */
PGresult *it_exec_ok(PGconn *conn, const char *sql);
/* One value of a one-row query (static thread-local buffer). */
const char *it_value(PGconn *conn, const char *sql);
/* Run sql, expect an error with sqlstate; returns the primary message (static). */
const char *it_exec_error(PGconn *conn, const char *sql, const char *sqlstate);
/*
 * Send sql and read every result. Returns 1 if one was an error (the first
 * error's SQLSTATE, 6 bytes, and primary message are kept: after a FATAL
 * and EOF libpq's last result carries no fields), 0 if it succeeded, -1 if
 * it could not be sent.
 */
int it_exec_first_error(PGconn *conn, const char *sql, char *sqlstate, char *msg, size_t msg_len);
/*
 * Connect, expect failure. Returns PQerrorMessage (static, thread-local).
 * libpq does not expose the SQLSTATE of a failed connection; use
 * it_raw_login_error() for that.
 */
const char *it_connect_fail(const char *extra);

/* ---- pgbench ----------------------------------------------------------- */

/* pgbench's binary: $PGBENCH, else PostgreSQL 15's or /usr/bin's; ck_abort if none. */
const char *it_pgbench_bin(void);
/*
 * Run pgbench with args through pgdog as user "bench" (password "bench_pw")
 * on database app; its stdout+stderr into out (NUL-terminated, the rest is
 * read and dropped when out is full); returns its exit status (128 + signal
 * when killed). timeout_s > 0: killed after timeout_s seconds (timeout -k 5).
 * With mon set, count the backends of user "bench" on PostgreSQL every
 * ~20 ms while pgbench runs and keep the highest count in *max_backends.
 */
int it_run_pgbench(const char *args, int timeout_s, char *out, size_t out_len, PGconn *mon,
		   int *max_backends);

/* ---- raw protocol ------------------------------------------------------ */

/* TCP connection to 127.0.0.1:port with SO_RCVTIMEO/SO_SNDTIMEO of 5 s; ck_abort on failure. */
int it_raw_connect(int port);
/* Write all of buf; 0 or -1 (errno). */
int it_raw_send(int fd, const void *buf, size_t len);
/*
 * Send copies of pat (plen bytes; sent % plen says where the last one ends)
 * on fd as fast as the peer takes them, up to max bytes or ms milliseconds,
 * until nothing more is taken for a second (*blocked then). The count of
 * bytes sent.
 */
size_t it_raw_send_until_blocked(int fd, const char *pat, size_t plen, size_t max, int ms,
				 bool *blocked);
/*
 * A client that sends copies of req (rl bytes) and reads none of their
 * answers (ans, al bytes each): pgdog must stop reading it, so that its
 * sending blocks for a second, before max bytes; then the client reads every
 * answer, checked byte for byte. ck_abort otherwise.
 */
void it_raw_flood_unread(int fd, const char *req, size_t rl, const char *ans, size_t al,
			 size_t max);
/* Write n simple Query messages, the texts sqls[0..n), in one write (pipelined); 0 or -1. */
int it_raw_send_queries(int fd, const char *const *sqls, int n);
/*
 * Read one backend message: *type and the body (without the length word) into
 * buf (truncated at cap). Returns the body length, -1 on EOF/error/timeout.
 */
long it_raw_recv(int fd, char *type, char *buf, size_t cap, int timeout_ms);
/* Read one byte (the answer to SSLRequest/GSSENCRequest); the byte, or -1. */
int it_raw_recv_byte(int fd, int timeout_ms);
/* Send a StartupMessage (protocol major.minor) with user and database (and extra "k\0v\0" pairs). */
int it_raw_startup(int fd, int major, int minor, const char *user, const char *db);
/*
 * From an ErrorResponse body: the field with code f ('C' SQLSTATE, 'M'
 * message, 'S' severity) into out. Returns out, or "" if absent.
 */
const char *it_raw_field(const char *body, long len, char f, char *out, size_t out_len);
/*
 * Log in over a raw socket (trust or cleartext; MD5 and SCRAM are left to libpq)
 * and read until ReadyForQuery. Returns 0 when logged in; otherwise -1 and,
 * if the server sent an ErrorResponse, its SQLSTATE in sqlstate (6 bytes).
 */
int it_raw_login(int fd, const char *user, const char *db, const char *password, char *sqlstate);
/* it_raw_login(), and the BackendKeyData (process id and key, 8 bytes) into key. */
int it_raw_login_key(int fd, const char *user, const char *db, const char *password, char *sqlstate,
		     char *key);
/* Send a CancelRequest with key (8 bytes, from it_raw_login_key) and wait until it is closed. */
void it_raw_cancel(int port, const char *key);
/*
 * Send a StartupMessage and return the authentication request code pgdog
 * answers with (0 ok, 3 cleartext, 5 md5, 10 SASL), or -1 on error; with
 * sqlstate filled when it answered with an ErrorResponse.
 */
int it_raw_auth_request(int port, const char *user, const char *db, char *sqlstate);
/* Whether the peer closed the connection (EOF) within timeout_ms, discarding data. */
bool it_raw_wait_closed(int fd, int timeout_ms);
/*
 * Read messages on fd until `readies` ReadyForQuery, or with readies < 0
 * until the connection closes (5 s at most for each message): their types
 * in order, separated by spaces, into out. Flags: IT_RAW_VALUES writes a
 * DataRow as D(its first value), IT_RAW_STATES an ErrorResponse as
 * E(SQLSTATE), IT_RAW_NO_PARAMS leaves ParameterStatus out.
 */
void it_raw_types(int fd, int readies, unsigned flags, char *out, size_t out_len);
#define IT_RAW_VALUES    1u
#define IT_RAW_STATES    2u
#define IT_RAW_NO_PARAMS 4u

/*
 * One HTTP request to 127.0.0.1:port (the metrics endpoint); returns the
 * status code and copies the body (NUL-terminated, truncated) into body.
 */
int it_http_request(int port, const char *request, char *body, size_t body_len);
/* The value of sample "name{...}" whose labels contain user="user"; fails the test if none. */
double it_metric(const char *text, const char *name, const char *user);
/* The value of the unlabelled sample "name"; fails the test if none. */
double it_metric_plain(const char *text, const char *name);

/*
 * The value of column col of SHOW cmd on the admin connection adm, in the
 * one row whose column k1 is v1 and, unless k2 is NULL, whose column k2 is
 * v2 (static buffer). Fails the test unless exactly one row matches.
 */
const char *it_show_value(PGconn *adm, const char *cmd, const char *k1, const char *v1,
			  const char *k2, const char *v2, const char *col);
/*
 * Connect clients (conninfo) into conns until there are at least min and
 * SHOW CLIENTS lists clients of user on worker 0 and on worker 1 (the kernel
 * spreads connections over the workers by hash); at most max. Returns how
 * many; fails the test if max were not enough.
 */
int it_connect_spread(const char *conninfo, const char *user, PGconn **conns, int min, int max);
/* The worker serving client c of pgdog (SHOW CLIENTS on adm, by c's local port). */
int it_client_worker(PGconn *adm, PGconn *c);
/* A client of conninfo on worker w: connects again until one lands there (64 tries). */
PGconn *it_connect_on(PGconn *adm, const char *conninfo, int w);
/* Column col of SHOW POOLS for pool user/db, over a new admin connection (admin/pgdog). */
const char *it_pool_field(const char *db, const char *user, const char *col);
/* Wait up to timeout_ms for a notification on c (PQfreemem it); NULL if none came. */
PGnotify *it_wait_notify(PGconn *c, int timeout_ms);
/* The number after the first key in text (pgbench's output, a log line); -1 if absent. */
long it_number_after(const char *text, const char *key);

/*
 * Read c's input for ms milliseconds. Whether the query c sent (PQsendQuery)
 * is still running at the end (false as soon as its first result is complete).
 */
bool it_busy_for(PGconn *c, int ms);
/* The next result of the query c sent, waiting up to ms; NULL if it is still running. */
PGresult *it_result_within(PGconn *c, int ms);
/* Read and discard the remaining results of c's query. */
void it_drain(PGconn *c);
/*
 * Pipeline mode: the next result of c has status want (and, sqlstate not
 * NULL, that SQLSTATE); a result other than PGRES_PIPELINE_SYNC must be
 * followed by libpq's NULL that ends its query. Fails the test otherwise.
 */
void it_pipeline_next(PGconn *c, ExecStatusType want, const char *sqlstate);
/* The one-row answer of the query c sent, within ms (static); fails the test otherwise. */
const char *it_value_within(PGconn *c, int ms, const char *what);
/*
 * pool_size 1, another client holding the one server: b asks for it
 * (SELECT pg_backend_pid(), unless a query of b's is running) and is still
 * waiting 150 ms later. Fails the test (what) otherwise.
 */
void it_server_held(PGconn *b, const char *what);
/*
 * pool_size 1: the client that held the server let it go: b's query (sent
 * now if none runs) gets it within 2 s, on that client's backend pid.
 */
void it_server_gone(PGconn *b, const char *pid, const char *what);
