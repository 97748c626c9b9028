/*
 * wk_handoff.h: handing idle clients over to the next generation of
 * workers during a binary upgrade.
 * Runs in: a worker (both generations).
 *
 * Worker slot N of the old and of the new generation hold the same
 * listening socket, so they find each other by its inode: the receiver
 * listens on the abstract Unix socket "pgdog-handoff-<dev>-<inode>"
 * (SOCK_SEQPACKET; only a peer with our uid is accepted). An old worker,
 * once its upgrade drain began, connects to it, checks the receiver's
 * format version, and sends each client that is between transactions
 * (idle, no server, nothing buffered either way, nothing pinning a server,
 * no pending SET) as one message: its socket (SCM_RIGHTS) with the
 * session state: user, database, startup parameters and committed SETs,
 * its named prepared statements (name and text), its pooler mode and its
 * cancel pid and key. The new worker re-creates the client as if it had just
 * logged in, without sending anything: the client never notices. A client
 * that cannot be handed over stays with the old worker (see wk_main.c).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/compiler.h"
#include "worker/wk_session.h"

struct wk_client;

#define WK_HANDOFF_MAGIC   0x70676831u /* "pgh1" */
#define WK_HANDOFF_VERSION 1u
#define WK_HANDOFF_MSG_MAX (128 * 1024) /* larger sessions are not handed over */

/* What a new worker needs to re-create a client (wk_client_adopt()). */
struct wk_handoff_state {
	char user[64];
	char database[64];
	bool is_unix;
	uint32_t cancel_pid;       /* its BackendKeyData pid (its row index: taken here if free) */
	uint32_t cancel_key;       /* the key the client knows */
	uint8_t pooler_mode;       /* the mode it logged in with; 0xff: the pool's (older sender) */
	struct wk_session session; /* startup values and committed SETs; moved into the client */
};

/*
 * Worker start: derive this slot's handoff name from its TCP listening
 * socket and start receiving (retried by wk_handoff_sweep() while an older
 * generation still holds the name). -1 only on allocation failure.
 */
int wk_handoff_init(int tcp_fd) MUST_CHECK;

/* Every sweep: bind the receiver if the name was busy. */
void wk_handoff_sweep(void);

/* This worker's upgrade drain began: stop receiving (the next generation takes the name). */
void wk_handoff_stop_receiving(void);

/* From now on hand clients over (the upgrade drain began). */
void wk_handoff_start_sending(void);

/* Is the drain handing clients over? (Checked where a client may have become movable.) */
bool wk_handoff_is_sending(void);

/*
 * Drain: hand c over if it is between transactions and a receiver is
 * there. True when handed over (c is then closed here: do not touch it).
 */
bool wk_handoff_try(struct wk_client *c);

/*
 * Could c be handed over once a receiver answers? (Movable now, and the
 * receiver did not turn out to be foreign or of another version.)
 */
bool wk_handoff_may_take(const struct wk_client *c);

/* Clients handed over by this worker / received by it. */
uint64_t wk_handoff_sent_cnt(void);
uint64_t wk_handoff_received_cnt(void);

/* Close everything (worker exit). */
void wk_handoff_cleanup(void);
