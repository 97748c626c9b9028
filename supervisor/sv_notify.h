/*
 * sv_notify.h: the systemd notification protocol (sd_notify), spoken without
 * libsystemd: one datagram per state change to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or an abstract name written with a leading '@').
 * Runs in: the supervisor.
 *
 * Messages, in the order a service manager sees them:
 *   start:    "READY=1\nSTATUS=..." once the sockets listen and the workers run
 *   SIGHUP:   "RELOADING=1\nMONOTONIC_USEC=<now>\nSTATUS=reloading", then "READY=1\nSTATUS=..."
 *   shutdown: "STOPPING=1\nSTATUS=..."
 *   upgrade:  the new supervisor sends "MAINPID=<its pid>\nREADY=1\nSTATUS=..."; the old
 *             one sends nothing more (it is no longer the main process)
 * Without $NOTIFY_SOCKET every call does nothing. A failed send is logged at
 * debug level only: the service manager decides what a missing message means.
 */
#pragma once

#include <sys/types.h>

#include "shared/compiler.h"

/* Read $NOTIFY_SOCKET and open the sending socket. -1 with a reason in err (bad name). */
int sv_notify_init(char *err, size_t err_len) MUST_CHECK;

/* Send one datagram (the fields joined by '\n', as formatted). */
void sv_notify_send(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* "RELOADING=1\nMONOTONIC_USEC=<CLOCK_MONOTONIC in microseconds>\nSTATUS=..." */
void sv_notify_reloading(const char *status);

/* Close the socket (at exit). */
void sv_notify_close(void);
