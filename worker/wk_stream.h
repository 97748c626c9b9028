/*
 * wk_stream.h: a client or server socket with its own input and output
 * evbuffers, without bufferevents: one persistent read event added once,
 * reads straight into the input buffer, writes as soon as a callback batch
 * is done, and a write event only while the socket is full.
 * Runs in: a worker. Single-threaded: everything here belongs to the loop.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "shared/compiler.h"
#include "shared/list.h"

/* What the event callback reports. */
#define WK_STREAM_EOF       0x01 /* the peer closed its end */
#define WK_STREAM_ERROR     0x02 /* read, write or connect failed: errno says why */
#define WK_STREAM_CONNECTED 0x04 /* an outgoing connection is established */

typedef void wk_stream_read_fn(void *arg);
typedef size_t wk_stream_flat_fn(void *arg, const uint8_t *buf, size_t len);
typedef void wk_stream_drain_fn(void *arg);
typedef void wk_stream_event_fn(void *arg, short what);

/* on_flat's answer: every byte taken, and the stream may be gone (touch nothing) */
#define WK_STREAM_FLAT_GONE SIZE_MAX

struct wk_stream_ops {
	/*
	 * Optional, before on_read: bytes just read while in was empty, still in
	 * the worker's read buffer (valid during the call only). Returns how
	 * many it took (0..len, or WK_STREAM_FLAT_GONE); the rest is appended to
	 * in and on_read runs.
	 */
	wk_stream_flat_fn *on_flat;
	wk_stream_read_fn *on_read;   /* new bytes in in */
	wk_stream_drain_fn *on_drain; /* out fell to WK_STREAM_DRAINED_BYTES or below */
	wk_stream_event_fn *on_event; /* WK_STREAM_*: reading is off by then (EOF, ERROR) */
};

struct wk_stream {
	struct evbuffer *in;  /* owned; NULL until opened */
	struct evbuffer *out; /* owned */
	/* private: */
	int fd;
	const struct wk_stream_ops *ops;
	void *arg;
	struct event rd_ev;     /* EV_READ | EV_PERSIST */
	struct event wr_ev;     /* EV_WRITE | EV_PERSIST: only while the socket is full */
	struct list flush_node; /* in the worker's flush list while a write is due */
	int connect_err;        /* a connect that failed at once, reported from the loop */
	bool is_reading;        /* rd_ev added */
	bool is_writing;        /* wr_ev added */
	bool is_connecting;     /* wr_ev waits for the connect */
	bool is_write_off;      /* closing: queue nothing more to the socket */
	bool is_read_done;      /* the peer's end is read (EOF): never watched for reading again */
};

/* Output at or below this after a write calls on_drain (half the backpressure limit). */
#define WK_STREAM_DRAINED_BYTES (256 * 1024)

/*
 * Route libevent's allocations through the worker's block cache. Call first
 * in a worker, before any other libevent function; wk_stream_mem_cleanup
 * frees the cached blocks once the event base is gone.
 */
void wk_stream_mem_init(void);
void wk_stream_mem_cleanup(void);

/* Create the worker's flush event on base. -1 on failure. Once per worker. */
int wk_stream_init_all(struct event_base *base) MUST_CHECK;
void wk_stream_cleanup_all(void);

/*
 * Take fd (a connected non-blocking socket; closed on failure too) and start
 * reading. -1 on failure (errno).
 */
int wk_stream_open(struct wk_stream *st, int fd, const struct wk_stream_ops *ops, void *arg)
	MUST_CHECK;

/*
 * Start a non-blocking connect to sa; on_event reports WK_STREAM_CONNECTED
 * (reading is then on) or WK_STREAM_ERROR from the loop, never from here.
 * -1 when no socket could be made (errno).
 */
int wk_stream_connect(struct wk_stream *st, const struct sockaddr *sa, socklen_t sa_len,
		      const struct wk_stream_ops *ops, void *arg) MUST_CHECK;

/* Events off, buffers freed, socket closed. Harmless on a stream never opened. */
void wk_stream_cleanup(struct wk_stream *st);

static inline bool
wk_stream_is_open(const struct wk_stream *st)
{
	return st->in != NULL;
}

static inline int
wk_stream_fd(const struct wk_stream *st)
{
	return st->in ? st->fd : -1;
}

/* Reading on or off (idempotent). Bytes already in in stay there. */
void wk_stream_read_on(struct wk_stream *st);
void wk_stream_read_off(struct wk_stream *st);

static inline bool
wk_stream_is_reading(const struct wk_stream *st)
{
	return st->is_reading;
}

/* Write nothing more from the loop (closing): wk_stream_flush_now still writes. */
void wk_stream_write_off(struct wk_stream *st);

/*
 * Bytes were added to out: write them at the end of the current callback
 * batch (or from the loop at once when called outside a stream callback).
 */
void wk_stream_want_write(struct wk_stream *st);

/*
 * Move n bytes from the front of from's input to the end of st's output, as
 * evbuffer_remove_buffer() would. When that is all of from's input and st's
 * output is empty, the two buffers change places instead (a few
 * instructions instead of about 200): callers must read from->in and
 * st->out again afterwards, never keep them across the call. Returns the
 * bytes moved.
 */
size_t wk_stream_take(struct wk_stream *st, struct wk_stream *from, size_t n);

/*
 * Nothing waits to be written: bytes queued now may go straight to the
 * socket (wk_stream_send).
 */
static inline bool
wk_stream_is_out_idle(const struct wk_stream *st)
{
	return st->in && !st->is_writing && !st->is_write_off && !st->is_connecting &&
	       evbuffer_get_length(st->out) == 0;
}

/*
 * Queue n bytes for the socket. When nothing waits before them they are
 * sent at once with one send(), without passing through out (the common
 * case of a reply handled in the read buffer); what the socket does not take
 * goes to out and is written as wk_stream_want_write() would. A send error
 * is left for that write to report. -1: out of memory (nothing queued).
 */
int wk_stream_send(struct wk_stream *st, const uint8_t *buf, size_t n) MUST_CHECK;

/*
 * As wk_stream_take(), for the last move of a callback: when that is all of
 * from's input, in one piece, and nothing waits in st's output, the bytes
 * are sent from where they are (one send(), then a drain) instead of
 * trading buffers and writing st's output at the end of the callback. A
 * send error is left for that write to report. Returns the bytes moved.
 */
size_t wk_stream_take_last(struct wk_stream *st, struct wk_stream *from, size_t n);

/* Write what the kernel takes now, ignoring errors (last words before a close). */
void wk_stream_flush_now(struct wk_stream *st);
