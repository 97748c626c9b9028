/*
 * sv_notify.c: sd_notify without libsystemd (see sv_notify.h).
 * Runs in: the supervisor.
 *
 * Invariant: sv_notify_fd >= 0 exactly when $NOTIFY_SOCKET named a usable
 * address; the socket is close-on-exec, and $NOTIFY_SOCKET stays in the
 * environment so the supervisor a binary upgrade starts notifies too.
 */
#include "supervisor/sv_notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "shared/log.h"

static int sv_notify_fd = -1;
static struct sockaddr_un sv_notify_addr;
static socklen_t sv_notify_addr_len;

int
sv_notify_init(char *err, size_t err_len)
{
	const char *name = getenv("NOTIFY_SOCKET");
	size_t n;

	if (!name || !*name)
		return 0;
	n = strlen(name);
	if ((name[0] != '/' && name[0] != '@') || n >= sizeof(sv_notify_addr.sun_path)) {
		snprintf(
			err, err_len,
			"NOTIFY_SOCKET=%s: not an absolute path or an abstract name ('@...') of at most %zu bytes",
			name, sizeof(sv_notify_addr.sun_path) - 1);
		return -1;
	}
	memset(&sv_notify_addr, 0, sizeof(sv_notify_addr));
	sv_notify_addr.sun_family = AF_UNIX;
	memcpy(sv_notify_addr.sun_path, name, n);
	/* abstract namespace: a leading NUL, and the length counts exactly the name */
	if (name[0] == '@')
		sv_notify_addr.sun_path[0] = '\0';
	sv_notify_addr_len =
		(socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '@' ? 0 : 1));
	sv_notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sv_notify_fd < 0) {
		snprintf(err, err_len, "NOTIFY_SOCKET: socket: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void
sv_notify_send(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	if (sv_notify_fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(msg))
		n = (int)sizeof(msg) - 1;
	while (sendto(sv_notify_fd, msg, (size_t)n, MSG_NOSIGNAL,
		      (const struct sockaddr *)&sv_notify_addr, sv_notify_addr_len) < 0) {
		if (errno == EINTR)
			continue;
		log_debug(NULL, "sd_notify: sendto: %s", strerror(errno));
		return;
	}
}

void
sv_notify_reloading(const char *status)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	sv_notify_send("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=%s",
		       (unsigned long long)ts.tv_sec * 1000000ull +
			       (unsigned long long)ts.tv_nsec / 1000ull,
		       status);
}

void
sv_notify_close(void)
{
	if (sv_notify_fd >= 0)
		close(sv_notify_fd);
	sv_notify_fd = -1;
}
