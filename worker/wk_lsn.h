/*
 * wk_lsn.h: replication checks for SHOW REPLICATION. Worker 0 keeps one
 * connection per [databases.*] section (outside pool_size, like a pub/sub
 * listener) while the configuration has a replica (role replica or auto),
 * and every lsn_check_interval asks the server for pg_is_in_recovery(), its
 * WAL position and pg_last_xact_replay_timestamp(). It writes the answers
 * into its slot's rows of every pool of that section (shm_pool_stats.lsn);
 * the admin console derives the lag from a replica's and its primary's rows.
 * Runs in: worker 0 (the other workers do nothing here).
 */
#pragma once

struct wk_server;

/* Periodic (the sweep): open, check, time out and close the connections. */
void wk_lsn_tick(void);
/* Worker exit: close every check connection. */
void wk_lsn_cleanup(void);

/* Hooks for check connections (is_monitor), called through the listener hooks. */
void wk_lsn_ready(struct wk_server *s);  /* logged in (state IDLE) */
void wk_lsn_read(struct wk_server *s);   /* bytes arrived while IDLE */
void wk_lsn_closed(struct wk_server *s); /* wk_server_close() started */
void wk_lsn_freed(struct wk_server *s);  /* wk_server_free() */
