/*
 * sv_listen.h: the listening sockets.
 * Runs in: the supervisor (sv_listen_keep_slot() in a freshly forked worker).
 *
 * One TCP socket per worker slot, all bound to the same address with
 * SO_REUSEPORT, so the kernel spreads new connections over the workers and
 * a respawned worker takes over its slot's socket with the connections
 * queued in it. Plus one Unix socket <unix_socket_dir>/.s.PGSQL.<port>
 * that every worker accepts on. All are nonblocking and close-on-exec.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "shared/compiler.h"
#include "shared/config.h"

#define SV_LISTEN_BACKLOG 512

struct sv_listen {
	int tcp_fd[CONFIG_MAX_WORKERS]; /* -1: closed */
	int tcp_cnt;
	int unix_fd;       /* -1: none or closed */
	char tcp_name[96]; /* "0.0.0.0:6432", "[::1]:6432" */
	char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* "": none */
	bool has_unix_file; /* we created unix_path: unlink it at exit */
};

/* Empty state: every fd -1, no names. */
void sv_listen_init(struct sv_listen *l);

/*
 * Resolve cfg->host:port, make cfg->workers TCP sockets and the Unix socket
 * (unless unix_socket_dir is ""). Refuses an address some other socket
 * already listens on, even one with SO_REUSEPORT (a second pgdog must not
 * silently share the port), and a Unix socket path a live server answers
 * on; removes a stale socket file. -1 with a message in err such as
 * "listen on 0.0.0.0:6432: Address already in use"; nothing stays open.
 */
int sv_listen_open(struct sv_listen *l, const struct config *cfg, char *err, size_t err_len)
	MUST_CHECK;

/*
 * Resolve host for a passive socket. "*" (and "") mean every IPv4 address.
 * Of several results IPv4 comes first, so "localhost" means 127.0.0.1
 * wherever ::1 also exists; a name for IPv6 only still works. -1 with a
 * reason in err.
 */
int sv_listen_resolve(const char *host, int port, struct sockaddr_storage *out, socklen_t *out_len,
		      char *err, size_t err_len) MUST_CHECK;

/* "0.0.0.0:6432" or "[::1]:6432" ("?" if it cannot be printed). */
void sv_listen_addr_name(const struct sockaddr *sa, socklen_t sa_len, char *out, size_t out_len);

/*
 * The Unix socket's absolute path for cfg into out ("" when unix_socket_dir
 * is ""). -1 with a reason in err when it does not fit.
 */
int sv_listen_unix_path(const struct config *cfg, char *out, size_t out_len, char *err,
			size_t err_len) MUST_CHECK;

/* Close the supervisor's copies of every listening fd (names stay). */
void sv_listen_close(struct sv_listen *l);

/* In worker `slot` after fork: close every other slot's TCP socket. */
void sv_listen_keep_slot(struct sv_listen *l, int slot);

/* Remove the Unix socket file if we created it (supervisor at exit). */
void sv_listen_unlink(struct sv_listen *l);
