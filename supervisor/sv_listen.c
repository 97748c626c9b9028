/*
 * sv_listen.c: listening sockets (see sv_listen.h).
 * Runs in: the supervisor, before the first fork.
 *
 * Invariant: every tcp_fd[] is bound to the same address and has
 * SO_REUSEPORT; the supervisor keeps its copies open while it runs, so a
 * respawned worker finds its slot's socket (and its queued connections).
 */
#include "supervisor/sv_listen.h"

#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

void
sv_listen_init(struct sv_listen *l)
{
	memset(l, 0, sizeof(*l));
	for (int i = 0; i < CONFIG_MAX_WORKERS; i++)
		l->tcp_fd[i] = -1;
	l->unix_fd = -1;
}

void
sv_listen_addr_name(const struct sockaddr *sa, socklen_t sa_len, char *out, size_t out_len)
{
	/* numeric: an IPv6 address with a scope ("fe80::1%eth0") at most */
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 1], serv[8];

	if (getnameinfo(sa, sa_len, host, sizeof(host), serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(out, out_len, "?");
		return;
	}
	if (sa->sa_family == AF_INET6)
		snprintf(out, out_len, "[%s]:%s", host, serv);
	else
		snprintf(out, out_len, "%s:%s", host, serv);
}

int
sv_listen_resolve(const char *host, int port, struct sockaddr_storage *out, socklen_t *out_len,
		  char *err, size_t err_len)
{
	struct addrinfo hints, *res = NULL, *pick = NULL;
	char serv[16];
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (!host || !*host || strcmp(host, "*") == 0) {
		host = "0.0.0.0";
		hints.ai_family = AF_INET;
	}
	snprintf(serv, sizeof(serv), "%d", port);
	rc = getaddrinfo(host, serv, &hints, &res);
	if (rc != 0) {
		snprintf(err, err_len, "listen on %s:%d: cannot resolve host: %s", host, port,
			 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			pick = ai;
			break;
		}
		if (ai->ai_family == AF_INET6 && !pick)
			pick = ai;
	}
	if (!pick || pick->ai_addrlen > sizeof(*out)) {
		snprintf(err, err_len, "listen on %s:%d: no IPv4 or IPv6 address", host, port);
		freeaddrinfo(res);
		return -1;
	}
	memcpy(out, pick->ai_addr, pick->ai_addrlen);
	*out_len = pick->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/*
 * Bind a throwaway socket without SO_REUSEPORT: it fails with EADDRINUSE if
 * anything listens on the address, including an earlier pgdog's reuseport
 * sockets, which our own sockets would otherwise join without a word.
 */
static int
sv_listen_probe(const struct sockaddr_storage *ss, socklen_t ss_len)
{
	int one = 1, fd, saved;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (const struct sockaddr *)ss, ss_len) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	return 0;
}

static int
sv_listen_tcp_one(const struct sockaddr_storage *ss, socklen_t ss_len)
{
	int one = 1, fd, saved;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)ss, ss_len) < 0)
		goto fail;
	if (listen(fd, SV_LISTEN_BACKLOG) < 0)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

static int
sv_listen_tcp(struct sv_listen *l, const struct config *cfg, char *err, size_t err_len)
{
	struct sockaddr_storage ss;
	socklen_t ss_len = 0;

	if (sv_listen_resolve(cfg->host, cfg->port, &ss, &ss_len, err, err_len) < 0)
		return -1;
	sv_listen_addr_name((struct sockaddr *)&ss, ss_len, l->tcp_name, sizeof(l->tcp_name));
	if (sv_listen_probe(&ss, ss_len) < 0)
		goto fail;
	for (int i = 0; i < cfg->workers; i++) {
		l->tcp_fd[i] = sv_listen_tcp_one(&ss, ss_len);
		if (l->tcp_fd[i] < 0)
			goto fail;
		l->tcp_cnt = i + 1;
	}
	return 0;
fail:
	snprintf(err, err_len, "listen on %s: %s", l->tcp_name, strerror(errno));
	return -1;
}

/*
 * Is a server answering on the socket file? A refused connection means the
 * file is left over from a process that died without removing it.
 */
static int
sv_listen_unix_probe(const struct sockaddr_un *sun, char *err, size_t err_len)
{
	int fd, rc, saved;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	saved = errno;
	close(fd);
	errno = saved;
	if (rc == 0) {
		snprintf(err, err_len,
			 "listen on %s: another server is already listening on this socket",
			 sun->sun_path);
		return -1;
	}
	if (errno == ENOENT)
		return 0;
	if (errno == ECONNREFUSED) {
		if (unlink(sun->sun_path) < 0 && errno != ENOENT)
			goto fail;
		return 0;
	}
	/* EAGAIN: a live server with a full backlog; anything else: not ours to remove */
	if (errno == EAGAIN) {
		snprintf(err, err_len,
			 "listen on %s: another server is already listening on this socket",
			 sun->sun_path);
		return -1;
	}
fail:
	snprintf(err, err_len, "listen on %s: %s", sun->sun_path, strerror(errno));
	return -1;
}

int
sv_listen_unix_path(const struct config *cfg, char *out, size_t out_len, char *err, size_t err_len)
{
	char cwd[4096];
	const char *dir = cfg->unix_socket_dir;
	int n;

	out[0] = '\0';
	if (!dir || !*dir)
		return 0;
	/* absolute: the supervisor unlinks it at exit, after a --daemon chdir("/") */
	if (dir[0] != '/') {
		if (!getcwd(cwd, sizeof(cwd))) {
			snprintf(err, err_len, "unix_socket_dir %s: getcwd: %s", dir,
				 strerror(errno));
			return -1;
		}
		n = snprintf(out, out_len, "%s/%s/.s.PGSQL.%d", cwd, dir, cfg->port);
	} else {
		n = snprintf(out, out_len, "%s/.s.PGSQL.%d", dir, cfg->port);
	}
	if (n < 0 || (size_t)n >= out_len) {
		snprintf(err, err_len, "unix_socket_dir %s: socket path longer than %zu bytes", dir,
			 out_len - 1);
		out[0] = '\0';
		return -1;
	}
	return 0;
}

static int
sv_listen_unix(struct sv_listen *l, const struct config *cfg, char *err, size_t err_len)
{
	struct sockaddr_un sun;

	if (sv_listen_unix_path(cfg, l->unix_path, sizeof(l->unix_path), err, err_len) < 0)
		return -1;
	if (!l->unix_path[0])
		return 0;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, l->unix_path, strlen(l->unix_path) + 1);

	if (sv_listen_unix_probe(&sun, err, err_len) < 0)
		return -1;
	l->unix_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->unix_fd < 0)
		goto fail;
	if (bind(l->unix_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		goto fail;
	l->has_unix_file = true;
	/* anyone may connect: authentication decides, as with PostgreSQL's default */
	if (chmod(l->unix_path, 0777) < 0)
		goto fail;
	if (listen(l->unix_fd, SV_LISTEN_BACKLOG) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, err_len, "listen on %s: %s", l->unix_path, strerror(errno));
	return -1;
}

int
sv_listen_open(struct sv_listen *l, const struct config *cfg, char *err, size_t err_len)
{
	if (cfg->workers < 1 || cfg->workers > CONFIG_MAX_WORKERS) {
		snprintf(err, err_len, "workers = %d: must be between 1 and %d", cfg->workers,
			 CONFIG_MAX_WORKERS);
		return -1;
	}
	if (sv_listen_tcp(l, cfg, err, err_len) < 0)
		goto fail;
	if (sv_listen_unix(l, cfg, err, err_len) < 0)
		goto fail;
	return 0;
fail:
	sv_listen_close(l);
	sv_listen_unlink(l);
	return -1;
}

void
sv_listen_close(struct sv_listen *l)
{
	for (int i = 0; i < CONFIG_MAX_WORKERS; i++) {
		if (l->tcp_fd[i] >= 0)
			close(l->tcp_fd[i]);
		l->tcp_fd[i] = -1;
	}
	if (l->unix_fd >= 0)
		close(l->unix_fd);
	l->unix_fd = -1;
}

void
sv_listen_keep_slot(struct sv_listen *l, int slot)
{
	for (int i = 0; i < CONFIG_MAX_WORKERS; i++) {
		if (i == slot || l->tcp_fd[i] < 0)
			continue;
		close(l->tcp_fd[i]);
		l->tcp_fd[i] = -1;
	}
	/* the file belongs to the supervisor: a worker never removes it */
	l->has_unix_file = false;
}

void
sv_listen_unlink(struct sv_listen *l)
{
	if (l->has_unix_file && l->unix_path[0])
		(void)unlink(l->unix_path);
	l->has_unix_file = false;
}
