/*
 * wk_admin.h: the admin console (database "admin" by default): SHOW
 * VERSION, CLIENTS, SERVERS, POOLS with rows from every worker, read from
 * shared memory. Simple query protocol only.
 * Runs in: a worker (whichever accepted the admin connection).
 */
#pragma once

#include "worker/wk_conn.h"

/* Authenticated admin: send parameters and ReadyForQuery. */
enum wk_rc wk_admin_welcome(struct wk_client *c);
/* Handle the admin client's buffered input. */
enum wk_rc wk_admin_on_input(struct wk_client *c);
