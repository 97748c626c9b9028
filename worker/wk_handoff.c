/*
 * wk_handoff.c: client handoff between worker generations (see wk_handoff.h).
 * Runs in: a worker.
 *
 * Invariants: a client is handed over only from WK_CLIENT_IDLE with no
 * byte buffered in either direction, so no request or reply is split
 * between the generations; after a successful sendmsg() the old worker
 * only closes its copy of the socket (close(), never shutdown()), which
 * leaves the connection open in the new worker. The receiver accepts only
 * peers running as our own uid.
 */
#include "worker/wk_handoff.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "shared/config.h"
#include "shared/log.h"
#include "shared/shm.h"
#include "worker/wk_cancel.h"
#include "worker/wk_client.h"
#include "worker/wk_conn.h"
#include "worker/wk_prepared.h"

#define WK_HANDOFF_CONNS    8      /* senders at once: one per old worker of this slot */
#define WK_HANDOFF_HELLO_MS 1000   /* how long an old worker waits for the receiver's hello */
#define WK_HANDOFF_RETRY_US 100000 /* between connection attempts */
#define WK_HANDOFF_PREP_MAX 4096   /* named statements per client in one message */

/*
 * The flags word. Bits a receiver does not know are ignored, so new fields
 * ride on flags and keep WK_HANDOFF_VERSION (an upgrade from the binary
 * before keeps handing clients over).
 */
#define WK_HO_UNIX       0x1u /* a Unix-socket client */
#define WK_HO_CANCEL_PID 0x2u /* the next field is its cancel pid, not its row index */
#define WK_HO_MODE       0x4u /* bits 8-15: the pooler mode it logged in with */
#define WK_HO_MODE_SHIFT 8

struct wk_handoff_hello {
	uint32_t magic;
	uint32_t version;
};

static struct {
	struct sockaddr_un addr;
	socklen_t addr_len; /* 0: no name */
	bool is_receiving;
	int rx_fd;
	struct event *rx_ev;
	int conn_fd[WK_HANDOFF_CONNS];
	struct event *conn_ev[WK_HANDOFF_CONNS];
	int tx_fd;
	bool is_sending;     /* the upgrade drain began */
	bool is_tx_disabled; /* the receiver speaks another version */
	uint64_t tx_next_try_us;
	uint64_t sent_cnt, received_cnt;
} wk_ho = { .rx_fd = -1, .tx_fd = -1, .conn_fd = { -1, -1, -1, -1, -1, -1, -1, -1 } };
_Static_assert(WK_HANDOFF_CONNS == 8, "initialise every conn_fd to -1");

static uint8_t wk_ho_buf[WK_HANDOFF_MSG_MAX]; /* one message, either direction */

/* ---- receiving --------------------------------------------------------------- */

struct wk_ho_reader {
	const uint8_t *p, *end;
	bool is_bad;
};

static uint32_t
wk_ho_u32(struct wk_ho_reader *r)
{
	uint32_t v;

	if (r->is_bad || (size_t)(r->end - r->p) < sizeof(v)) {
		r->is_bad = true;
		return 0;
	}
	memcpy(&v, r->p, sizeof(v));
	r->p += sizeof(v);
	return v;
}

/* A NUL-terminated string stored with its length (NUL included). */
static const char *
wk_ho_str(struct wk_ho_reader *r)
{
	uint32_t n = wk_ho_u32(r);
	const char *s = (const char *)r->p;

	if (r->is_bad || n == 0 || (size_t)(r->end - r->p) < n || s[n - 1] != '\0' ||
	    memchr(s, '\0', n) != s + n - 1) {
		r->is_bad = true;
		return "";
	}
	r->p += n;
	return s;
}

static const uint8_t *
wk_ho_bytes(struct wk_ho_reader *r, uint32_t n)
{
	const uint8_t *b = r->p;

	if (r->is_bad || (size_t)(r->end - r->p) < n) {
		r->is_bad = true;
		return NULL;
	}
	r->p += n;
	return b;
}

static int
wk_ho_read_settings(struct wk_ho_reader *r, struct wk_settings *s)
{
	uint32_t n = wk_ho_u32(r);

	for (uint32_t i = 0; i < n && !r->is_bad; i++) {
		const char *name = wk_ho_str(r);
		const char *value = wk_ho_str(r);
		const uint8_t *raw = wk_ho_bytes(r, 1);

		if (r->is_bad)
			break;
		if (wk_settings_put(s, name, value, raw[0] != 0) < 0)
			return -1;
	}
	return 0;
}

/*
 * One handed-over client: parse, re-create, re-map its statements. The
 * socket fd is owned here: adopted, or closed on any failure.
 */
static void
wk_ho_receive_one(const uint8_t *msg, size_t len, int fd)
{
	struct wk_ho_reader r = { .p = msg, .end = msg + len };
	struct wk_handoff_state st;
	struct wk_client *c;
	uint32_t flags, prep_cnt;
	const char *why = "malformed message";

	memset(&st, 0, sizeof(st));
	wk_session_init(&st.session);
	if (wk_ho_u32(&r) != WK_HANDOFF_MAGIC || wk_ho_u32(&r) != WK_HANDOFF_VERSION)
		goto fail;
	flags = wk_ho_u32(&r);
	st.is_unix = flags & WK_HO_UNIX;
	st.cancel_pid = wk_ho_u32(&r);
	if (!(flags & WK_HO_CANCEL_PID)) {
		/*
		 * An older binary sends the row: its worker of our index had slot
		 * index (its own segment, one bank), so that is the client's pid.
		 */
		st.cancel_pid =
			wk_cancel_pid((uint32_t)g_wk.slot % g_shm->workers_per_gen, st.cancel_pid);
	}
	st.cancel_key = wk_ho_u32(&r);
	st.pooler_mode = 0xff; /* older binaries: the pool's mode */
	if (flags & WK_HO_MODE) {
		st.pooler_mode = (uint8_t)(flags >> WK_HO_MODE_SHIFT);
		if (st.pooler_mode != CONFIG_POOLER_SESSION &&
		    st.pooler_mode != CONFIG_POOLER_TRANSACTION &&
		    st.pooler_mode != CONFIG_POOLER_STATEMENT)
			goto fail;
	}
	snprintf(st.user, sizeof(st.user), "%s", wk_ho_str(&r));
	snprintf(st.database, sizeof(st.database), "%s", wk_ho_str(&r));
	if (r.is_bad)
		goto fail;
	if (wk_ho_read_settings(&r, &st.session.startup) < 0 ||
	    wk_ho_read_settings(&r, &st.session.overrides) < 0) {
		why = "out of memory";
		goto fail;
	}
	if (r.is_bad)
		goto fail;
	c = wk_client_adopt(fd, &st);
	fd = -1; /* the client owns it, or adopt closed it */
	wk_session_cleanup(&st.session);
	if (!c)
		return;
	wk_ho.received_cnt++;
	/* its named statements: text and parameter types, as the client's Parse had them */
	prep_cnt = wk_ho_u32(&r);
	for (uint32_t i = 0; i < prep_cnt && i < WK_HANDOFF_PREP_MAX && !r.is_bad; i++) {
		const char *name = wk_ho_str(&r);
		uint32_t key_len = wk_ho_u32(&r);
		const uint8_t *key = wk_ho_bytes(&r, key_len);
		size_t name_len = strlen(name);
		uint8_t *body;
		struct wk_prep *p;

		if (r.is_bad)
			break;
		/* wk_prep_register takes a Parse body: name, NUL, then the key */
		body = malloc(name_len + 1 + key_len);
		if (!body) {
			wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
			return;
		}
		memcpy(body, name, name_len + 1);
		memcpy(body + name_len + 1, key, key_len);
		p = wk_prep_register(body, name_len + 1 + key_len, name_len);
		free(body);
		if (!p || wk_prep_names_put(&c->prep_names, name, p) < 0) {
			wk_prep_release_if_unused(p);
			wk_client_fatal(c, SQLSTATE_OUT_OF_MEMORY, "out of memory");
			return;
		}
		wk_prep_publish(p);
	}
	if (r.is_bad)
		wk_client_fatal(c, SQLSTATE_INTERNAL_ERROR,
				"the previous pgdog generation handed this session over damaged");
	return;
fail:
	wk_session_cleanup(&st.session);
	log_warn(NULL, "handoff: a client handed over from the previous generation is lost: %s",
		 why);
	if (fd >= 0)
		close(fd);
}

static void
wk_ho_conn_close(int i)
{
	if (wk_ho.conn_ev[i])
		event_free(wk_ho.conn_ev[i]);
	wk_ho.conn_ev[i] = NULL;
	if (wk_ho.conn_fd[i] >= 0)
		close(wk_ho.conn_fd[i]);
	wk_ho.conn_fd[i] = -1;
}

static void
wk_ho_conn_cb(evutil_socket_t fd, short what, void *arg)
{
	int i = (int)(intptr_t)arg;

	wk_clock_update();
	for (;;) {
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int) * 4)];
		} ctl;
		struct iovec iov = { .iov_base = wk_ho_buf, .iov_len = sizeof(wk_ho_buf) };
		struct msghdr m = { .msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = ctl.buf,
				    .msg_controllen = sizeof(ctl.buf) };
		int fds[4], fds_cnt = 0;
		ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			wk_ho_conn_close(i);
			return;
		}
		for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
			if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t k = 0; k < (h->cmsg_len - CMSG_LEN(0)) / sizeof(int) &&
					   fds_cnt < (int)ARRAY_SIZE(fds);
			     k++)
				memcpy(&fds[fds_cnt++], CMSG_DATA(h) + k * sizeof(int),
				       sizeof(int));
		}
		if (fds_cnt != 1 || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
			log_warn(NULL,
				 "handoff: a message with %d descriptors%s: the client is lost",
				 fds_cnt, (m.msg_flags & MSG_TRUNC) ? " was truncated" : "");
			for (int k = 0; k < fds_cnt; k++)
				close(fds[k]);
			continue;
		}
		wk_ho_receive_one(wk_ho_buf, (size_t)n, fds[0]);
	}
}

static void
wk_ho_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct wk_handoff_hello hello = { WK_HANDOFF_MAGIC, WK_HANDOFF_VERSION };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd, i;

	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	/* an abstract name is reachable by every user of the host: only our own may send */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != geteuid()) {
		log_warn(NULL, "handoff: refused a connection from uid %d",
			 len == sizeof(cred) ? (int)cred.uid : -1);
		close(fd);
		return;
	}
	for (i = 0; i < WK_HANDOFF_CONNS && wk_ho.conn_fd[i] >= 0; i++)
		;
	if (i == WK_HANDOFF_CONNS ||
	    send(fd, &hello, sizeof(hello), MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof(hello)) {
		close(fd);
		return;
	}
	wk_ho.conn_fd[i] = fd;
	wk_ho.conn_ev[i] =
		event_new(g_wk.base, fd, EV_READ | EV_PERSIST, wk_ho_conn_cb, (void *)(intptr_t)i);
	if (!wk_ho.conn_ev[i] || event_add(wk_ho.conn_ev[i], NULL) < 0)
		wk_ho_conn_close(i);
}

/* Bind the receiver; EADDRINUSE while an older generation still has the name. */
static void
wk_ho_bind(void)
{
	int fd, saved;

	if (!wk_ho.is_receiving || wk_ho.rx_fd >= 0 || wk_ho.addr_len == 0)
		return;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (bind(fd, (struct sockaddr *)&wk_ho.addr, wk_ho.addr_len) < 0 || listen(fd, 16) < 0) {
		saved = errno;
		close(fd);
		if (saved != EADDRINUSE)
			log_warn_errno(NULL, saved,
				       "handoff: cannot listen for handed-over clients");
		return;
	}
	wk_ho.rx_ev = event_new(g_wk.base, fd, EV_READ | EV_PERSIST, wk_ho_accept_cb, NULL);
	if (!wk_ho.rx_ev || event_add(wk_ho.rx_ev, NULL) < 0) {
		if (wk_ho.rx_ev)
			event_free(wk_ho.rx_ev);
		wk_ho.rx_ev = NULL;
		close(fd);
		return;
	}
	wk_ho.rx_fd = fd;
	log_debug(NULL, "handoff: receiving clients on @%s", wk_ho.addr.sun_path + 1);
}

int
wk_handoff_init(int tcp_fd)
{
	struct stat stt;
	int n;

	for (int i = 0; i < WK_HANDOFF_CONNS; i++)
		wk_ho.conn_fd[i] = -1;
	wk_ho.is_receiving = true;
	if (tcp_fd < 0 || fstat(tcp_fd, &stt) < 0)
		return 0; /* no listening socket: nothing to hand over */
	memset(&wk_ho.addr, 0, sizeof(wk_ho.addr));
	wk_ho.addr.sun_family = AF_UNIX;
	/* abstract: sun_path[0] is NUL; the name is not NUL-terminated */
	n = snprintf(wk_ho.addr.sun_path + 1, sizeof(wk_ho.addr.sun_path) - 1,
		     "pgdog-handoff-%llx-%llx", (unsigned long long)stt.st_dev,
		     (unsigned long long)stt.st_ino);
	wk_ho.addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	wk_ho_bind();
	return 0;
}

void
wk_handoff_sweep(void)
{
	wk_ho_bind();
}

void
wk_handoff_stop_receiving(void)
{
	wk_ho.is_receiving = false;
	if (wk_ho.rx_ev)
		event_free(wk_ho.rx_ev);
	wk_ho.rx_ev = NULL;
	if (wk_ho.rx_fd >= 0)
		close(wk_ho.rx_fd);
	wk_ho.rx_fd = -1;
}

/* ---- sending -------------------------------------------------------------------- */

void
wk_handoff_start_sending(void)
{
	wk_ho.is_sending = true;
}

bool
wk_handoff_is_sending(void)
{
	return wk_ho.is_sending;
}

struct wk_ho_writer {
	uint8_t *p, *end;
	bool is_full;
};

static void
wk_ho_put(struct wk_ho_writer *w, const void *b, size_t n)
{
	if (w->is_full || (size_t)(w->end - w->p) < n) {
		w->is_full = true;
		return;
	}
	memcpy(w->p, b, n);
	w->p += n;
}

static void
wk_ho_put_u32(struct wk_ho_writer *w, uint32_t v)
{
	wk_ho_put(w, &v, sizeof(v));
}

static void
wk_ho_put_str(struct wk_ho_writer *w, const char *s)
{
	size_t n = strlen(s) + 1;

	wk_ho_put_u32(w, (uint32_t)n);
	wk_ho_put(w, s, n);
}

static void
wk_ho_put_settings(struct wk_ho_writer *w, const struct wk_settings *s)
{
	wk_ho_put_u32(w, (uint32_t)s->cnt);
	for (size_t i = 0; i < s->cnt; i++) {
		uint8_t raw = s->v[i].is_raw;

		wk_ho_put_str(w, s->v[i].name);
		wk_ho_put_str(w, s->v[i].value);
		wk_ho_put(w, &raw, 1);
	}
}

/* Connect to this slot's receiver and check its version; false: not now. */
static bool
wk_ho_connect(void)
{
	struct wk_handoff_hello hello;
	struct ucred cred;
	socklen_t cred_len = sizeof(cred);
	struct pollfd p;
	int fd;

	if (wk_ho.tx_fd >= 0)
		return true;
	if (wk_ho.is_tx_disabled || wk_ho.addr_len == 0 || g_wk.mono_us < wk_ho.tx_next_try_us)
		return false;
	wk_ho.tx_next_try_us = g_wk.mono_us + WK_HANDOFF_RETRY_US;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	if (connect(fd, (struct sockaddr *)&wk_ho.addr, wk_ho.addr_len) < 0) {
		/* ECONNREFUSED: the new worker has not bound the name yet */
		close(fd);
		return false;
	}
	/* anyone on the host could have bound an abstract name: only our own uid gets clients */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) < 0 ||
	    cred.uid != geteuid()) {
		log_warn(NULL,
			 "handoff: %s is held by uid %d, not by us: clients are not handed over",
			 wk_ho.addr.sun_path + 1, cred_len == sizeof(cred) ? (int)cred.uid : -1);
		wk_ho.is_tx_disabled = true;
		close(fd);
		return false;
	}
	/* the receiver says hello as it accepts: a few microseconds on this host */
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (poll(&p, 1, WK_HANDOFF_HELLO_MS) != 1 ||
	    recv(fd, &hello, sizeof(hello), MSG_DONTWAIT) != sizeof(hello)) {
		close(fd);
		return false;
	}
	if (hello.magic != WK_HANDOFF_MAGIC || hello.version != WK_HANDOFF_VERSION) {
		log_warn(
			NULL,
			"handoff: the new generation speaks handoff version %u (we speak %u): clients are not handed over",
			hello.version, WK_HANDOFF_VERSION);
		wk_ho.is_tx_disabled = true;
		close(fd);
		return false;
	}
	wk_ho.tx_fd = fd;
	log_info(NULL, "handoff: connected to the new generation's worker %d", g_wk.slot);
	return true;
}

/*
 * Between transactions, with nothing in flight and nothing tied to a server?
 * pgdog has no TLS yet, so every client is plaintext and may move; when TLS
 * comes, a TLS client must stay (its session keys live in this process).
 */
static bool
wk_ho_is_movable(const struct wk_client *c)
{
	/* LISTEN registrations live in this worker's listener connection: they stay */
	return c->state == WK_CLIENT_IDLE && !c->is_admin && !c->server && c->pool && !c->pubsub &&
	       c->pins == 0 && c->session.pending_cnt == 0 && c->fwd_remaining == 0 &&
	       !c->is_skip_to_sync && !c->cancel_skip && !c->read_paused && !c->is_read_off &&
	       wk_stream_is_open(&c->io) && evbuffer_get_length(c->io.in) == 0 &&
	       evbuffer_get_length(c->io.out) == 0;
}

bool
wk_handoff_may_take(const struct wk_client *c)
{
	return wk_ho.addr_len != 0 && !wk_ho.is_tx_disabled && wk_ho_is_movable(c);
}

bool
wk_handoff_try(struct wk_client *c)
{
	struct wk_ho_writer w = { .p = wk_ho_buf, .end = wk_ho_buf + sizeof(wk_ho_buf) };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov;
	struct msghdr m;
	int fd;

	if (!wk_ho.is_sending || !wk_ho_is_movable(c) || !wk_ho_connect())
		return false;
	fd = wk_stream_fd(&c->io);
	if (fd < 0)
		return false;
	wk_ho_put_u32(&w, WK_HANDOFF_MAGIC);
	wk_ho_put_u32(&w, WK_HANDOFF_VERSION);
	wk_ho_put_u32(&w, (c->is_unix ? WK_HO_UNIX : 0u) | WK_HO_CANCEL_PID | WK_HO_MODE |
				  (uint32_t)c->pooler_mode << WK_HO_MODE_SHIFT);
	wk_ho_put_u32(&w, shm_client((uint32_t)g_wk.slot, c->row)->cancel_pid);
	wk_ho_put_u32(&w, c->cancel_key);
	wk_ho_put_str(&w, c->user_name);
	wk_ho_put_str(&w, c->db_name);
	wk_ho_put_settings(&w, &c->session.startup);
	wk_ho_put_settings(&w, &c->session.overrides);
	wk_ho_put_u32(&w, (uint32_t)c->prep_names.cnt);
	for (size_t i = 0; i < c->prep_names.cnt; i++) {
		const struct wk_prep *p = c->prep_names.v[i].prep;

		wk_ho_put_str(&w, c->prep_names.v[i].name);
		wk_ho_put_u32(&w, (uint32_t)p->key_len);
		wk_ho_put(&w, p->key, p->key_len);
	}
	if (w.is_full || c->prep_names.cnt > WK_HANDOFF_PREP_MAX)
		return false; /* too much state for one message: it stays here */

	iov = (struct iovec){ .iov_base = wk_ho_buf, .iov_len = (size_t)(w.p - wk_ho_buf) };
	memset(&ctl, 0, sizeof(ctl));
	m = (struct msghdr){ .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	CMSG_FIRSTHDR(&m)->cmsg_level = SOL_SOCKET;
	CMSG_FIRSTHDR(&m)->cmsg_type = SCM_RIGHTS;
	CMSG_FIRSTHDR(&m)->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(CMSG_FIRSTHDR(&m)), &fd, sizeof(int));
	if (sendmsg(wk_ho.tx_fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return false; /* the receiver is busy: next sweep */
		log_warn_errno(NULL, errno, "handoff: send to the new generation");
		close(wk_ho.tx_fd);
		wk_ho.tx_fd = -1;
		return false;
	}
	wk_ho.sent_cnt++;
	/* our copy only: the new worker holds the connection now */
	wk_client_close(c, "handed over to the new generation");
	return true;
}

uint64_t
wk_handoff_sent_cnt(void)
{
	return wk_ho.sent_cnt;
}

uint64_t
wk_handoff_received_cnt(void)
{
	return wk_ho.received_cnt;
}

void
wk_handoff_cleanup(void)
{
	wk_handoff_stop_receiving();
	for (int i = 0; i < WK_HANDOFF_CONNS; i++)
		wk_ho_conn_close(i);
	if (wk_ho.tx_fd >= 0)
		close(wk_ho.tx_fd);
	wk_ho.tx_fd = -1;
}
