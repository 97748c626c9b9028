/*
 * wk_stream.c: sockets with evbuffers and plain events, for the forwarding
 * path. A bufferevent asks the kernel how much is readable (FIONREAD) before
 * each read, adds and removes its write event for every message, and runs
 * its callbacks through deferred queues; here a transaction costs its recv
 * and send calls and the epoll_wait that wakes the worker, nothing more.
 *
 * Writes: anything that queues bytes calls wk_stream_want_write, which puts
 * the stream on a flush list; the list is written at the end of the stream
 * callback that is running (so a batch of messages goes out in one writev),
 * or, outside stream callbacks (timers, accept), from a flush event made
 * active once. A write that leaves bytes behind adds the write event until
 * the socket has taken them.
 *
 * The common exchange skips the evbuffers: bytes read while the input is
 * empty are first offered to the owner's on_flat, which handles what it can
 * in the worker's read buffer (a whole simple Query from an idle client, a
 * whole reply) and sends it on with wk_stream_send() straight to the peer
 * socket when nothing waits in the peer's output. Whatever it leaves is
 * appended to the input buffer and handled by on_read as before, so the
 * evbuffers still hold everything that has to wait.
 * Runs in: a worker.
 */
#include "worker/wk_stream.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/log.h"

/*
 * Bytes asked for per read. Reads land in one per-worker buffer and are
 * appended to the input: evbuffer_add sizes the chain to what arrived (a
 * small message gets a small chain, which malloc serves from its per-size
 * cache), where reserving space for a large read would allocate and free a
 * large chain for every message. The copy is cheap beside the allocation.
 */
#define WK_STREAM_READ_LEN (64 * 1024)

static unsigned char wk_stream_rbuf[WK_STREAM_READ_LEN];

/*
 * libevent's allocations (evbuffer chains above all: one is allocated for
 * every read and freed when its bytes are written) go through a small
 * per-worker cache of freed blocks by power-of-two size class: a cached
 * block costs a few instructions where malloc and free cost about a hundred.
 * Every block carries a 16-byte header with its usable size (libevent frees
 * without saying the size). Blocks below the smallest class, above the
 * largest, or beyond a class's count go to malloc and free as they are. The
 * cache is bounded (at most WK_MEM_CACHE_BYTES), so it costs nothing per
 * idle connection. Sanitizer builds skip the cache, so that the address
 * sanitizer still sees every use after free.
 */
#define WK_MEM_HDR_LEN     16
#define WK_MEM_SHIFT_MIN   10 /* libevent's smallest chain (MIN_BUFFER_SIZE) */
#define WK_MEM_SHIFT_MAX   17 /* a chain for one 64 KiB read */
#define WK_MEM_CLASS_CNT   (WK_MEM_SHIFT_MAX - WK_MEM_SHIFT_MIN + 1)
#define WK_MEM_CACHE_BYTES (1024 * 1024)

#if defined(__SANITIZE_ADDRESS__)
#define WK_MEM_HAS_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WK_MEM_HAS_CACHE 0
#endif
#endif
#ifndef WK_MEM_HAS_CACHE
#define WK_MEM_HAS_CACHE 1
#endif

struct wk_mem_hdr {
	size_t size;  /* usable bytes after the header */
	size_t klass; /* size class index, or WK_MEM_CLASS_CNT when uncached */
};
_Static_assert(sizeof(struct wk_mem_hdr) == WK_MEM_HDR_LEN, "malloc's alignment is kept");

struct wk_mem_free {
	struct wk_mem_free *next;
};

static struct wk_mem_free *wk_mem_cache[WK_MEM_CLASS_CNT];
static size_t wk_mem_cache_cnt[WK_MEM_CLASS_CNT];

/* The largest count of cached blocks of class k (WK_MEM_CACHE_BYTES spread over the classes). */
static size_t
wk_mem_cap(size_t k)
{
	return WK_MEM_CACHE_BYTES / WK_MEM_CLASS_CNT >> (k + WK_MEM_SHIFT_MIN);
}

static void *
wk_mem_malloc(size_t size)
{
	struct wk_mem_hdr *h;
	size_t k = WK_MEM_CLASS_CNT;

	if (WK_MEM_HAS_CACHE && size > (1u << (WK_MEM_SHIFT_MIN - 1)) &&
	    size <= (1u << WK_MEM_SHIFT_MAX)) {
		unsigned shift =
			size <= (1u << WK_MEM_SHIFT_MIN)
				? WK_MEM_SHIFT_MIN
				: 64 - (unsigned)__builtin_clzll((unsigned long long)size - 1);

		k = shift - WK_MEM_SHIFT_MIN;
		if (wk_mem_cache[k]) {
			struct wk_mem_free *f = wk_mem_cache[k];

			wk_mem_cache[k] = f->next;
			wk_mem_cache_cnt[k]--;
			return f;
		}
		size = (size_t)1 << shift;
	}
	h = malloc(WK_MEM_HDR_LEN + size);
	if (!h)
		return NULL;
	h->size = size;
	h->klass = k;
	return (char *)h + WK_MEM_HDR_LEN;
}

static void
wk_mem_free(void *p)
{
	struct wk_mem_hdr *h;

	if (!p)
		return;
	h = (struct wk_mem_hdr *)((char *)p - WK_MEM_HDR_LEN);
	if (h->klass < WK_MEM_CLASS_CNT && wk_mem_cache_cnt[h->klass] < wk_mem_cap(h->klass)) {
		struct wk_mem_free *f = p;

		f->next = wk_mem_cache[h->klass];
		wk_mem_cache[h->klass] = f;
		wk_mem_cache_cnt[h->klass]++;
		return;
	}
	free(h);
}

static void *
wk_mem_realloc(void *p, size_t size)
{
	const struct wk_mem_hdr *h;
	void *n;

	if (!p)
		return wk_mem_malloc(size);
	if (size == 0) {
		wk_mem_free(p);
		return NULL;
	}
	h = (const struct wk_mem_hdr *)((const char *)p - WK_MEM_HDR_LEN);
	if (size <= h->size)
		return p;
	n = wk_mem_malloc(size);
	if (!n)
		return NULL;
	memcpy(n, p, h->size);
	wk_mem_free(p);
	return n;
}

void
wk_stream_mem_init(void)
{
	event_set_mem_functions(wk_mem_malloc, wk_mem_realloc, wk_mem_free);
}

void
wk_stream_mem_cleanup(void)
{
	for (size_t k = 0; k < WK_MEM_CLASS_CNT; k++) {
		while (wk_mem_cache[k]) {
			struct wk_mem_free *f = wk_mem_cache[k];

			wk_mem_cache[k] = f->next;
			free((char *)f - WK_MEM_HDR_LEN);
		}
		wk_mem_cache_cnt[k] = 0;
	}
}

static struct list wk_stream_flush_list = { &wk_stream_flush_list, &wk_stream_flush_list };
static struct event *wk_stream_flush_ev;
static bool wk_stream_in_cb;          /* a stream callback runs: it flushes at its end */
static bool wk_stream_is_flush_armed; /* wk_stream_flush_ev is active */

static void wk_stream_flush_pending(void);

static void
wk_stream_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	wk_stream_is_flush_armed = false;
	wk_stream_in_cb = true;
	wk_stream_flush_pending();
	wk_stream_in_cb = false;
}

int
wk_stream_init_all(struct event_base *base)
{
	list_init(&wk_stream_flush_list);
	wk_stream_flush_ev = event_new(base, -1, 0, wk_stream_flush_cb, NULL);
	return wk_stream_flush_ev ? 0 : -1;
}

void
wk_stream_cleanup_all(void)
{
	if (wk_stream_flush_ev)
		event_free(wk_stream_flush_ev);
	wk_stream_flush_ev = NULL;
	wk_stream_is_flush_armed = false;
}

static void
wk_stream_fail(struct wk_stream *st, int err)
{
	wk_stream_read_off(st);
	wk_stream_write_off(st);
	errno = err;
	st->ops->on_event(st->arg, WK_STREAM_ERROR);
}

/*
 * Write out until it is empty or the socket is full (then wait for the
 * write event). A write error fails the stream.
 */
static void
wk_stream_write(struct wk_stream *st)
{
	size_t before = evbuffer_get_length(st->out), left = before;

	while (left > 0) {
		int n = evbuffer_write(st->out, st->fd);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			wk_stream_fail(st, errno);
			return;
		}
		left -= (size_t)n; /* evbuffer_write drained what it wrote */
		/* a short write means the socket is full: do not ask it again */
		if (n == 0 || left > 0)
			break;
	}
	if (left > 0 && !st->is_writing) {
		if (event_add(&st->wr_ev, NULL) < 0) {
			wk_stream_fail(st, errno);
			return;
		}
		st->is_writing = true;
	} else if (left == 0 && st->is_writing) {
		event_del(&st->wr_ev);
		st->is_writing = false;
	}
	if (before > WK_STREAM_DRAINED_BYTES && left <= WK_STREAM_DRAINED_BYTES &&
	    st->ops->on_drain)
		st->ops->on_drain(st->arg);
}

size_t
wk_stream_take(struct wk_stream *st, struct wk_stream *from, size_t n)
{
	int moved;

	if (n > 0 && n == evbuffer_get_length(from->in) && evbuffer_get_length(st->out) == 0) {
		/* both are plain evbuffers owned by their streams, freed alike */
		struct evbuffer *t = st->out;

		st->out = from->in;
		from->in = t;
		return n;
	}
	moved = evbuffer_remove_buffer(from->in, st->out, n);
	return moved > 0 ? (size_t)moved : 0;
}

size_t
wk_stream_take_last(struct wk_stream *st, struct wk_stream *from, size_t n)
{
	size_t sent = 0;

	/*
	 * All of from's input in one chain (one read) and nothing waiting in
	 * st's output: send it from where it is. The swap and the later writev
	 * of st's output cost more than the send and the drain.
	 */
	if (n > 0 && n == evbuffer_get_length(from->in) && wk_stream_is_out_idle(st) &&
	    evbuffer_get_contiguous_space(from->in) == n) {
		const uint8_t *p = evbuffer_pullup(from->in, (ev_ssize_t)n);
		ssize_t w = p ? send(st->fd, p, n, MSG_NOSIGNAL) : -1;

		if (w > 0) {
			evbuffer_drain(from->in, (size_t)w);
			sent = (size_t)w;
			n -= sent;
		}
	}
	/* what the socket did not take waits in st's output as usual */
	return sent + (n > 0 ? wk_stream_take(st, from, n) : 0);
}

static void
wk_stream_flush_pending(void)
{
	struct list *n;

	while ((n = list_first(&wk_stream_flush_list))) {
		struct wk_stream *st = list_entry(n, struct wk_stream, flush_node);

		list_del(n);
		if (!st->is_write_off && !st->is_writing && !st->is_connecting)
			wk_stream_write(st);
	}
}

/* Enter and leave a stream callback: what it queued is written when it ends. */
static void
wk_stream_cb_begin(void)
{
	wk_stream_in_cb = true;
}

static void
wk_stream_cb_end(void)
{
	wk_stream_flush_pending();
	wk_stream_in_cb = false;
}

static void
wk_stream_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wk_stream *st = arg;
	ssize_t got;

	(void)what;
	/* recv, not read: the socket's own path, without the file layer's checks */
	got = recv(fd, wk_stream_rbuf, sizeof(wk_stream_rbuf), 0);
	if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	wk_stream_cb_begin();
	if (got > 0) {
		size_t used = 0;

		/* a whole reply, usually: handled in place, never copied into in */
		if (st->ops->on_flat && evbuffer_get_length(st->in) == 0)
			used = st->ops->on_flat(st->arg, wk_stream_rbuf, (size_t)got);
		if (used >= (size_t)got)
			; /* all taken (the stream may be gone) */
		else if (evbuffer_add(st->in, wk_stream_rbuf + used, (size_t)got - used) < 0)
			wk_stream_fail(st, ENOMEM);
		else
			st->ops->on_read(st->arg);
	} else {
		int err = got < 0 ? errno : 0;

		wk_stream_read_off(st);
		st->is_read_done = got == 0;
		errno = err;
		st->ops->on_event(st->arg, got == 0 ? WK_STREAM_EOF : WK_STREAM_ERROR);
	}
	wk_stream_cb_end();
}

static void
wk_stream_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wk_stream *st = arg;

	(void)what;
	wk_stream_cb_begin();
	if (st->is_connecting) {
		int err = st->connect_err;
		socklen_t len = sizeof(err);

		st->is_connecting = false;
		if (st->is_writing) {
			event_del(&st->wr_ev);
			st->is_writing = false;
		}
		if (!err && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			wk_stream_fail(st, err);
		} else {
			wk_stream_read_on(st);
			st->ops->on_event(st->arg, WK_STREAM_CONNECTED);
		}
	} else if (!st->is_write_off) {
		wk_stream_write(st);
	}
	wk_stream_cb_end();
}

static int
wk_stream_setup(struct wk_stream *st, int fd, const struct wk_stream_ops *ops, void *arg)
{
	st->fd = fd;
	st->ops = ops;
	st->arg = arg;
	st->connect_err = 0;
	st->is_reading = st->is_writing = st->is_connecting = st->is_write_off = false;
	st->is_read_done = false;
	list_init(&st->flush_node);
	st->in = evbuffer_new();
	st->out = evbuffer_new();
	if (!st->in || !st->out)
		goto fail;
	if (event_assign(&st->rd_ev, event_get_base(wk_stream_flush_ev), fd, EV_READ | EV_PERSIST,
			 wk_stream_read_cb, st) < 0 ||
	    event_assign(&st->wr_ev, event_get_base(wk_stream_flush_ev), fd, EV_WRITE | EV_PERSIST,
			 wk_stream_write_cb, st) < 0)
		goto fail;
	return 0;
fail:
	if (st->in)
		evbuffer_free(st->in);
	if (st->out)
		evbuffer_free(st->out);
	st->in = st->out = NULL;
	close(fd);
	errno = ENOMEM;
	return -1;
}

int
wk_stream_open(struct wk_stream *st, int fd, const struct wk_stream_ops *ops, void *arg)
{
	if (wk_stream_setup(st, fd, ops, arg) < 0)
		return -1;
	wk_stream_read_on(st);
	return 0;
}

int
wk_stream_connect(struct wk_stream *st, const struct sockaddr *sa, socklen_t sa_len,
		  const struct wk_stream_ops *ops, void *arg)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (wk_stream_setup(st, fd, ops, arg) < 0)
		return -1;
	st->is_connecting = true;
	if (connect(fd, sa, sa_len) < 0 && errno != EINPROGRESS)
		st->connect_err = errno; /* reported from the loop, like a late failure */
	if (st->connect_err) {
		event_active(&st->wr_ev, EV_WRITE, 0);
		return 0;
	}
	if (event_add(&st->wr_ev, NULL) < 0) {
		int err = errno;

		wk_stream_cleanup(st);
		errno = err;
		return -1;
	}
	st->is_writing = true;
	return 0;
}

void
wk_stream_cleanup(struct wk_stream *st)
{
	if (!st->in)
		return;
	list_del(&st->flush_node);
	/* event_del also takes an event off the active queue (a failed connect) */
	event_del(&st->rd_ev);
	event_del(&st->wr_ev);
	st->is_reading = st->is_writing = false;
	evbuffer_free(st->in);
	evbuffer_free(st->out);
	st->in = st->out = NULL;
	close(st->fd);
	st->fd = -1;
}

void
wk_stream_read_on(struct wk_stream *st)
{
	if (!st->in || st->is_reading || st->is_connecting || st->is_read_done)
		return;
	if (event_add(&st->rd_ev, NULL) < 0) {
		log_warn_errno(NULL, errno, "cannot watch a socket for reading");
		return;
	}
	st->is_reading = true;
}

void
wk_stream_read_off(struct wk_stream *st)
{
	if (!st->is_reading)
		return;
	event_del(&st->rd_ev);
	st->is_reading = false;
}

void
wk_stream_write_off(struct wk_stream *st)
{
	if (!st->in)
		return;
	st->is_write_off = true;
	list_del(&st->flush_node);
	if (st->is_writing || st->is_connecting) {
		/* a connect still running is abandoned: its result is not wanted */
		event_del(&st->wr_ev);
		st->is_writing = false;
		st->is_connecting = false;
	}
}

void
wk_stream_want_write(struct wk_stream *st)
{
	if (!st->in || st->is_write_off || st->is_writing || !list_empty(&st->flush_node))
		return;
	list_append(&wk_stream_flush_list, &st->flush_node);
	if (!wk_stream_in_cb && !wk_stream_is_flush_armed) {
		event_active(wk_stream_flush_ev, EV_READ, 0);
		wk_stream_is_flush_armed = true;
	}
}

int
wk_stream_send(struct wk_stream *st, const uint8_t *buf, size_t n)
{
	if (n > 0 && wk_stream_is_out_idle(st)) {
		ssize_t w = send(st->fd, buf, n, MSG_NOSIGNAL);

		if (w > 0) {
			buf += w;
			n -= (size_t)w;
		}
	}
	if (n == 0)
		return 0;
	if (evbuffer_add(st->out, buf, n) < 0)
		return -1;
	wk_stream_want_write(st);
	return 0;
}

void
wk_stream_flush_now(struct wk_stream *st)
{
	if (!st->in || st->is_connecting || evbuffer_get_length(st->out) == 0)
		return;
	if (evbuffer_write(st->out, st->fd) < 0)
		log_debug(NULL, "flush before close: %s", strerror(errno));
}
