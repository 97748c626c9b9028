/*
 * wk_admin.h: the admin console (database "admin" by default): the SHOW
 * commands of pgdog-admin(7), with rows from every worker read from shared
 * memory (statistics summed by shared/stats.h, as /metrics does), SHOW
 * HELP, and an error naming SHOW HELP for anything else. Simple query
 * protocol only: an extended-protocol message gets one 0A000 error, then
 * nothing until its Sync.
 * Commands are rows of one table in wk_admin.c (wk_admin_cmds[]): the
 * normalized words (lower case, single blanks, no trailing ';'), whether
 * arguments may follow, and a handler that writes the whole reply except
 * ReadyForQuery. A new command is one row and one handler.
 * Runs in: a worker (whichever accepted the admin connection).
 */
#pragma once

#include "worker/wk_conn.h"

/* Authenticated admin: send parameters (server_version, ...) and ReadyForQuery. */
enum wk_rc wk_admin_welcome(struct wk_client *c);
/* Handle the admin client's buffered input. */
enum wk_rc wk_admin_on_input(struct wk_client *c);
