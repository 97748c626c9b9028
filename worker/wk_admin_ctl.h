/*
 * wk_admin_ctl.h: the admin console's action commands: RELOAD, PAUSE,
 * RESUME, MAINTENANCE, RECONNECT, SHUTDOWN, KILL, KILL_CLIENT, BAN, UNBAN,
 * SET. They act on every worker through the control area (wk_ctl.h);
 * commands that must wait (RELOAD for the supervisor and every worker,
 * PAUSE for running transactions) park the admin client and answer later.
 * Runs in: a worker (whichever accepted the admin connection).
 */
#pragma once

#include <stdbool.h>

#include "worker/wk_conn.h"

/*
 * If cmd (normalized: lower case, single blanks, no trailing ';'; raw is
 * the query as sent, for arguments whose case matters) is an action
 * command, handle it and return true with *rc set: the reply (ending with
 * ReadyForQuery) is sent now, or once the command completes.
 */
bool wk_admin_ctl_query(struct wk_client *c, const char *cmd, const char *raw, enum wk_rc *rc);
/* Whether c waits for a command to complete (its further input waits too). */
bool wk_admin_ctl_is_waiting(const struct wk_client *c);
/* c is being freed: drop its pending command. */
void wk_admin_ctl_forget(struct wk_client *c);
/* Complete the pending commands whose condition holds (wake-ups and the sweep). */
void wk_admin_ctl_poll(void);
