/*
 * sv_upgrade.c: zero-downtime binary upgrade (see sv_upgrade.h).
 * Runs in: the supervisor; the code between fork() and execv() in
 * sv_upgrade_spawn() runs in the child that becomes the new supervisor.
 *
 * Invariants: the old supervisor never closes or re-binds a listening
 * socket before the new one reported ready, and the new one never binds:
 * the sockets (and the connections queued in them) are the same objects
 * in both generations. Only the child clears close-on-exec, on its own
 * descriptors, so nothing else leaks into the new binary.
 */
#include "supervisor/sv_upgrade.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shared/log.h"
#include "shared/proc.h"
#include "shared/shm.h"
#include "supervisor/sv_listen.h"
#include "supervisor/sv_signal.h"

static struct {
	char exe[PATH_MAX];
	char cwd[PATH_MAX];
	char **argv; /* borrowed from main() */
} sv_up;

static int64_t
sv_upgrade_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
sv_upgrade_init(int argc, char **argv)
{
	ssize_t n;

	(void)argc;
	sv_up.argv = argv;
	/*
	 * The path, not the open file: a package manager replaces the file
	 * (rename over it), and the upgrade must run the new one. Read now:
	 * afterwards the link reads "... (deleted)".
	 */
	n = readlink("/proc/self/exe", sv_up.exe, sizeof(sv_up.exe) - 1);
	if (n <= 0)
		return -1;
	sv_up.exe[n] = '\0';
	if (!getcwd(sv_up.cwd, sizeof(sv_up.cwd)))
		return -1;
	return 0;
}

bool
sv_upgrade_is_child(void)
{
	const char *v = getenv(SV_UPGRADE_ENV_FDS);

	return v && *v;
}

/* A decimal fd number, -1 if s is not one. */
static int
sv_upgrade_parse_fd(const char *s, const char **end)
{
	long v = 0;
	const char *p = s;

	while (*p >= '0' && *p <= '9' && v < INT_MAX / 10)
		v = v * 10 + (*p++ - '0');
	if (p == s || v > INT_MAX)
		return -1;
	if (end)
		*end = p;
	return (int)v;
}

int
sv_upgrade_take_ready_fd(void)
{
	const char *v = getenv(SV_UPGRADE_ENV_READY);
	const char *end;
	int fd;

	if (!v || !*v)
		return -1;
	fd = sv_upgrade_parse_fd(v, &end);
	unsetenv(SV_UPGRADE_ENV_READY);
	if (fd < 3 || *end || fcntl(fd, F_GETFD) < 0)
		return -1;
	/* our workers must not hold it: the old supervisor reads until EOF on failure */
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	return fd;
}

/* Is fd a listening stream socket of family fam? Its address in ss. */
static bool
sv_upgrade_is_listener(int fd, int fam, struct sockaddr_storage *ss, socklen_t *ss_len)
{
	int on = 0, type = 0;
	socklen_t n = sizeof(on);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &n) < 0 || !on)
		return false;
	n = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &n) < 0 || type != SOCK_STREAM)
		return false;
	*ss_len = sizeof(*ss);
	if (getsockname(fd, (struct sockaddr *)ss, ss_len) < 0)
		return false;
	return ss->ss_family == fam;
}

static bool
sv_upgrade_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

int
sv_upgrade_adopt(struct sv_listen *l, const struct config *cfg, int *shm_fd, char *err,
		 size_t err_len)
{
	const char *p = getenv(SV_UPGRADE_ENV_FDS);
	struct sockaddr_storage want, got;
	socklen_t want_len = 0, got_len;
	char unix_path[sizeof(l->unix_path)];
	int unix_fd = -1, tcp_cnt = 0;

	*shm_fd = -1;
	if (!p)
		return -1;
	if (sv_listen_resolve(cfg->host, cfg->port, &want, &want_len, err, err_len) < 0)
		return -1;
	if (sv_listen_unix_path(cfg, unix_path, sizeof(unix_path), err, err_len) < 0)
		return -1;
	sv_listen_addr_name((struct sockaddr *)&want, want_len, l->tcp_name, sizeof(l->tcp_name));
	while (*p) {
		const char *end;
		int slot = -1, fd;

		if (strncmp(p, "shm:", 4) == 0) {
			fd = sv_upgrade_parse_fd(p + 4, &end);
			if (fd < 0 || (*end && *end != ';'))
				goto bad;
			p = *end ? end + 1 : end;
			/* checked by shm_adopt (fstat, header); close-on-exec again meanwhile */
			if (fcntl(fd, F_SETFD, FD_CLOEXEC) == 0)
				*shm_fd = fd;
			continue;
		}
		if (strncmp(p, "unix:", 5) == 0) {
			p += 5;
		} else {
			slot = sv_upgrade_parse_fd(p, &end);
			if (slot < 0 || *end != ':' || slot >= CONFIG_MAX_WORKERS)
				goto bad;
			p = end + 1;
		}
		fd = sv_upgrade_parse_fd(p, &end);
		if (fd < 0 || (*end && *end != ';'))
			goto bad;
		p = *end ? end + 1 : end;
		if (slot < 0) {
			unix_fd = fd;
			continue;
		}
		if (!sv_upgrade_is_listener(fd, want.ss_family, &got, &got_len) ||
		    !sv_upgrade_same_addr(&want, &got)) {
			snprintf(
				err, err_len,
				"inherited socket %d (slot %d) is not a socket listening on %s: an upgrade cannot change host or port; restart pgdog to change them",
				fd, slot, l->tcp_name);
			return -1;
		}
		if (slot >= cfg->workers) {
			snprintf(
				err, err_len,
				"the running pgdog has more workers than workers = %d: an upgrade cannot change workers; restart pgdog to change it",
				cfg->workers);
			return -1;
		}
		l->tcp_fd[slot] = fd;
		tcp_cnt++;
	}
	if (tcp_cnt != cfg->workers) {
		snprintf(
			err, err_len,
			"the running pgdog has %d workers, the configuration says workers = %d: an upgrade cannot change workers; restart pgdog to change it",
			tcp_cnt, cfg->workers);
		return -1;
	}
	for (int i = 0; i < cfg->workers; i++) {
		if (l->tcp_fd[i] < 0) {
			snprintf(err, err_len, "no inherited socket for worker %d", i);
			return -1;
		}
		(void)fcntl(l->tcp_fd[i], F_SETFD, FD_CLOEXEC);
	}
	l->tcp_cnt = cfg->workers;
	if ((unix_fd >= 0) != (unix_path[0] != '\0')) {
		snprintf(
			err, err_len,
			"unix_socket_dir differs from the running pgdog's: an upgrade cannot change it; restart pgdog to change it");
		return -1;
	}
	if (unix_fd >= 0) {
		const struct sockaddr_un *sun = (const void *)&got;

		if (!sv_upgrade_is_listener(unix_fd, AF_UNIX, &got, &got_len) ||
		    strncmp(sun->sun_path, unix_path, sizeof(sun->sun_path)) != 0) {
			snprintf(
				err, err_len,
				"inherited socket %d is not the Unix socket %s: an upgrade cannot change unix_socket_dir or port; restart pgdog to change them",
				unix_fd, unix_path);
			return -1;
		}
		(void)fcntl(unix_fd, F_SETFD, FD_CLOEXEC);
		l->unix_fd = unix_fd;
		memcpy(l->unix_path, unix_path, sizeof(l->unix_path));
		/* ours now: the old supervisor leaves the file, we remove it at exit */
		l->has_unix_file = true;
	}
	unsetenv(SV_UPGRADE_ENV_FDS);
	return 0;
bad:
	snprintf(err, err_len, "%s: malformed value", SV_UPGRADE_ENV_FDS);
	return -1;
}

/* In the child: make fd survive execv. */
static int
sv_upgrade_keep_fd(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
}

/* In the child after fork(): become the new binary. Never returns. */
static void NORETURN
sv_upgrade_exec(const struct sv_listen *l, int ready_fd)
{
	char fds[CONFIG_MAX_WORKERS * 16 + 64], num[16];
	size_t n = 0;
	int rc;

	sv_signal_child_reset();
	fds[0] = '\0';
	if (l->unix_fd >= 0) {
		n += (size_t)snprintf(fds + n, sizeof(fds) - n, "unix:%d", l->unix_fd);
		if (sv_upgrade_keep_fd(l->unix_fd) < 0)
			goto fail;
	}
	for (int i = 0; i < l->tcp_cnt; i++) {
		if (l->tcp_fd[i] < 0)
			continue;
		n += (size_t)snprintf(fds + n, sizeof(fds) - n, "%s%d:%d", n ? ";" : "", i,
				      l->tcp_fd[i]);
		if (sv_upgrade_keep_fd(l->tcp_fd[i]) < 0)
			goto fail;
	}
	/* the shared segment: the new generation maps it if its layout is ours */
	if (g_shm_fd >= 0) {
		n += (size_t)snprintf(fds + n, sizeof(fds) - n, "%sshm:%d", n ? ";" : "", g_shm_fd);
		if (sv_upgrade_keep_fd(g_shm_fd) < 0)
			goto fail;
	}
	snprintf(num, sizeof(num), "%d", ready_fd);
	if (sv_upgrade_keep_fd(ready_fd) < 0 || setenv(SV_UPGRADE_ENV_FDS, fds, 1) < 0 ||
	    setenv(SV_UPGRADE_ENV_READY, num, 1) < 0)
		goto fail;
	/* relative -c/-u paths in argv mean what they meant at the first start */
	if (chdir(sv_up.cwd) < 0)
		goto fail;
	execv(sv_up.exe, sv_up.argv);
fail:
	rc = errno;
	{
		char msg[PATH_MAX + 64];
		int m = snprintf(msg, sizeof(msg), "Ecannot run %s: %s", sv_up.exe, strerror(rc));

		if (m > 0)
			(void)!write(ready_fd, msg,
				     (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg));
	}
	_exit(127);
}

/* How child ended, if it did within ms; "" when still running. */
static void
sv_upgrade_child_status(pid_t child, int ms, char *out, size_t out_len)
{
	int64_t end = sv_upgrade_now_ms() + ms;
	int st;

	out[0] = '\0';
	for (;;) {
		pid_t r = waitpid(child, &st, WNOHANG);

		if (r == child) {
			if (WIFEXITED(st))
				snprintf(out, out_len, "exited with status %d", WEXITSTATUS(st));
			else if (WIFSIGNALED(st))
				snprintf(out, out_len, "was killed by signal %d (%s)", WTERMSIG(st),
					 strsignal(WTERMSIG(st)));
			return;
		}
		if (r < 0 && errno != EINTR) {
			snprintf(out, out_len, "exited");
			return;
		}
		if (sv_upgrade_now_ms() >= end)
			return;
		{
			struct timespec ts = { 0, 10 * 1000000L };

			nanosleep(&ts, NULL);
		}
	}
}

pid_t
sv_upgrade_spawn(const struct sv_listen *l, char *err, size_t err_len)
{
	int64_t deadline = sv_upgrade_now_ms() + SV_UPGRADE_TIMEOUT_MS;
	char buf[1024], how[128];
	size_t len = 0;
	int pfd[2];
	pid_t child;

	if (!sv_up.exe[0]) {
		snprintf(err, err_len, "the executable's path is unknown");
		return -1;
	}
	if (access(sv_up.exe, X_OK) < 0) {
		snprintf(err, err_len, "%s: %s", sv_up.exe, strerror(errno));
		return -1;
	}
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		snprintf(err, err_len, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	child = fork();
	if (child < 0) {
		snprintf(err, err_len, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (child == 0) {
		close(pfd[0]);
		sv_upgrade_exec(l, pfd[1]);
	}
	close(pfd[1]);
	/* "R": ready; "E<reason>": failed; EOF without either: it died */
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		int64_t left = deadline - sv_upgrade_now_ms();
		ssize_t n;

		if (len > 0 && buf[0] == 'R')
			break;
		if (left <= 0) {
			snprintf(err, err_len, "the new binary (pid %d) was not ready within %d ms",
				 (int)child, SV_UPGRADE_TIMEOUT_MS);
			kill(child, SIGKILL);
			sv_upgrade_child_status(child, 1000, how, sizeof(how));
			close(pfd[0]);
			return -1;
		}
		if (poll(&p, 1, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, err_len, "poll: %s", strerror(errno));
			kill(child, SIGKILL);
			sv_upgrade_child_status(child, 1000, how, sizeof(how));
			close(pfd[0]);
			return -1;
		}
		n = read(pfd[0], buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0 || len + (size_t)n >= sizeof(buf) - 1) {
			if (n > 0)
				len += (size_t)n;
			break;
		}
		len += (size_t)n;
	}
	close(pfd[0]);
	buf[len] = '\0';
	if (len > 0 && buf[0] == 'R')
		return child;
	sv_upgrade_child_status(child, 2000, how, sizeof(how));
	if (len > 1 && buf[0] == 'E')
		snprintf(err, err_len, "the new binary (pid %d) refused to start: %s%s%s",
			 (int)child, buf + 1, how[0] ? "; it " : "", how);
	else
		snprintf(err, err_len, "the new binary (pid %d) %s during start-up", (int)child,
			 how[0] ? how : "closed its readiness pipe");
	if (!how[0]) {
		kill(child, SIGKILL);
		sv_upgrade_child_status(child, 1000, how, sizeof(how));
	}
	return -1;
}

/* "<pidfile>.upgrade.<pid>" into path; -1 when it does not fit. */
static int
sv_upgrade_status_path(char *path, size_t len, const char *pidfile, pid_t pid)
{
	int n = snprintf(path, len, "%s%s.%d", pidfile, SV_UPGRADE_STATUS_SUFFIX, (int)pid);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/*
 * Remove the answers of processes that have exited: those of generations
 * signalled without `pgdog --upgrade`, which nobody read.
 */
static void
sv_upgrade_status_prune(const char *pidfile)
{
	char dir[PATH_MAX], prefix[PATH_MAX], path[PATH_MAX * 2];
	const char *slash = strrchr(pidfile, '/');
	size_t prefix_len;
	struct dirent *e;
	DIR *d;

	if (slash) {
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - pidfile), pidfile);
		if (!dir[0])
			snprintf(dir, sizeof(dir), "/");
	} else {
		snprintf(dir, sizeof(dir), ".");
	}
	prefix_len = (size_t)snprintf(prefix, sizeof(prefix), "%s%s.", slash ? slash + 1 : pidfile,
				      SV_UPGRADE_STATUS_SUFFIX);
	if (prefix_len >= sizeof(prefix))
		return;
	d = opendir(dir);
	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		char *end;
		long pid;

		if (strncmp(e->d_name, prefix, prefix_len) != 0)
			continue;
		errno = 0;
		pid = strtol(e->d_name + prefix_len, &end, 10);
		if (errno || *end || end == e->d_name + prefix_len || pid <= 0 || pid > INT_MAX)
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue; /* alive (or not ours to ask): its answer may be awaited */
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		(void)unlink(path);
	}
	closedir(d);
}

void
sv_upgrade_status_write(const char *pidfile, const char *fmt, ...)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8], line[1024];
	va_list ap;
	int fd, n;

	if (!pidfile || sv_upgrade_status_path(path, sizeof(path), pidfile, getpid()) < 0)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* whole or nothing: `pgdog --upgrade` may read it any time */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_warn_errno(NULL, errno, "upgrade status file %s", tmp);
		return;
	}
	if (write(fd, line, (size_t)n) != n || close(fd) < 0 || rename(tmp, path) < 0) {
		log_warn_errno(NULL, errno, "upgrade status file %s", path);
		(void)unlink(tmp);
	}
}

int
sv_upgrade_command(const char *pidfile, int timeout_ms)
{
	char path[PATH_MAX], buf[1024];
	int64_t deadline = sv_upgrade_now_ms() + timeout_ms;
	pid_t pid;

	if (!pidfile) {
		fprintf(stderr, "pgdog --upgrade: --pidfile FILE names the running pgdog\n");
		return 2;
	}
	pid = proc_pidfile_read(pidfile);
	if (pid <= 0 || kill(pid, 0) < 0) {
		fprintf(stderr, "pgdog --upgrade: no running pgdog in %s\n", pidfile);
		return 2;
	}
	if (sv_upgrade_status_path(path, sizeof(path), pidfile, pid) < 0) {
		fprintf(stderr, "pgdog --upgrade: %s: path too long\n", pidfile);
		return 2;
	}
	sv_upgrade_status_prune(pidfile);
	if (unlink(path) < 0 && errno != ENOENT) {
		fprintf(stderr, "pgdog --upgrade: %s: %s\n", path, strerror(errno));
		return 2;
	}
	if (kill(pid, SIGUSR2) < 0) {
		fprintf(stderr, "pgdog --upgrade: kill(%d, SIGUSR2): %s\n", (int)pid,
			strerror(errno));
		return 2;
	}
	while (sv_upgrade_now_ms() < deadline) {
		struct timespec ts = { 0, 50 * 1000000L };
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof(buf) - 1);

			close(fd);
			if (n > 0) {
				buf[n] = '\0';
				buf[strcspn(buf, "\n")] = '\0';
				(void)unlink(path);
				if (strncmp(buf, "ok ", 3) == 0) {
					printf("pgdog upgraded: pid %d replaced by pid %s\n",
					       (int)pid, buf + 3);
					return 0;
				}
				fprintf(stderr, "pgdog --upgrade: %s (pid %d keeps serving)\n", buf,
					(int)pid);
				return 1;
			}
		}
		if (kill(pid, 0) < 0) {
			fprintf(stderr, "pgdog --upgrade: pid %d exited without an answer\n",
				(int)pid);
			return 1;
		}
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "pgdog --upgrade: no answer from pid %d within %d ms\n", (int)pid,
		timeout_ms);
	return 1;
}
