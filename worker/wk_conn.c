/*
 * wk_conn.c: helpers shared by the worker's state machines: the clock,
 * sending built messages, deferred freeing, socket options.
 * Runs in: a worker.
 */
#include "worker/wk_conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <time.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "worker/wk_client.h"
#include "worker/wk_server.h"

struct wk_worker g_wk;

/* How often the wall clock is read again (it follows the monotonic one in between). */
#define WK_CLOCK_WALL_US 100000u

/* The wall clock's offset from the monotonic one, read again every WK_CLOCK_WALL_US. */
static uint64_t wk_clock_wall_off_us, wk_clock_wall_next_us;

static __attribute__((noinline)) void
wk_clock_wall_read(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	wk_clock_wall_off_us =
		(uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u - g_wk.mono_us;
	wk_clock_wall_next_us = g_wk.mono_us + WK_CLOCK_WALL_US;
}

void
wk_clock_update(void)
{
	/* static: nothing to keep on the stack across the call (a worker has one thread) */
	static struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	g_wk.mono_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	/* one clock read per callback: the wall clock is the monotonic one plus an offset */
	if (UNLIKELY(g_wk.mono_us >= wk_clock_wall_next_us))
		wk_clock_wall_read();
	g_wk.now_us = g_wk.mono_us + wk_clock_wall_off_us;
}

int
wk_conn_send(struct wk_stream *io, const struct pgw_buf *b)
{
	if (b->has_error) {
		errno = ENOMEM;
		return -1;
	}
	if (evbuffer_add(io->out, b->data, b->len) < 0)
		return -1;
	wk_stream_want_write(io);
	return 0;
}

/* Longer texts are classified every time. */
#define WK_PLAIN_MEMO_MAX 512

/*
 * A few texts: an application alternates between a handful of statements
 * (pgbench's TPC-B has five), and a number with one digit more makes another
 * length. Replaced in turn.
 */
#define WK_PLAIN_MEMO_CNT 8

/*
 * Each text comes with a mask of its stand-alone numbers (0xff on their
 * digits), made when it is remembered, so that a lookup compares eight
 * bytes at a time and looks at a byte only in a word that differs.
 */
struct wk_plain_memo {
	char text[WK_PLAIN_MEMO_MAX];
	uint8_t mask[WK_PLAIN_MEMO_MAX];
};

static struct wk_plain_memo wk_plain_memos[WK_PLAIN_MEMO_CNT];
/* apart from the texts: the lookup reads one cache line of lengths (0: nothing remembered) */
static uint16_t wk_plain_lens[WK_PLAIN_MEMO_CNT];
_Static_assert(WK_PLAIN_MEMO_MAX <= UINT16_MAX, "lengths fit wk_plain_lens");
static unsigned wk_plain_memo_next;
/* By length (its low bits): the memo of that length that matched last, tried first. */
static uint8_t wk_plain_memo_hit[8];

/* A byte that can continue a word, a $n parameter or a $tag$: not a number's edge. */
static bool
wk_conn_sql_is_word_byte(uint8_t b)
{
	return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
	       b == '_' || b == '$' || b >= 0x80;
}

static bool
wk_conn_sql_is_digit(uint8_t b)
{
	return b >= '0' && b <= '9';
}

/*
 * Mark the digits of the numbers standing alone in text (runs of digits
 * between bytes that cannot continue a word: "aid = 123;", not "t1", "$1"
 * or "$q1$").
 */
static void
wk_conn_sql_mask(const uint8_t *text, size_t len, uint8_t *mask)
{
	size_t i = 0;

	memset(mask, 0, len);
	while (i < len) {
		size_t s = i;

		if (!wk_conn_sql_is_digit(text[i])) {
			i++;
			continue;
		}
		while (i < len && wk_conn_sql_is_digit(text[i]))
			i++;
		if ((s == 0 || !wk_conn_sql_is_word_byte(text[s - 1])) &&
		    (i == len || !wk_conn_sql_is_word_byte(text[i])))
			memset(mask + s, 0xff, i - s);
	}
}

#define WK_SWAR(b) (0x0101010101010101ull * (uint8_t)(b))

/*
 * Eight bytes y of a text against x of a remembered one whose stand-alone
 * digits m marks: equal, or different only where m is set and y has digits.
 */
static inline bool
wk_conn_sql_word_like(uint64_t x, uint64_t y, uint64_t m)
{
	uint64_t t;

	if (x == y)
		return true;
	if ((x ^ y) & ~m)
		return false;
	/* every byte of t under m is 0-9: adding 0x76 to it (high bit cleared) leaves bit 7 clear */
	t = y ^ WK_SWAR('0');
	return ((((t & WK_SWAR(0x7f)) + WK_SWAR(0x76)) | t) & WK_SWAR(0x80) & m) == 0;
}

#ifdef __SSE2__
/* As wk_conn_sql_word_like, for sixteen bytes. */
static inline bool
wk_conn_sql_block_like(const uint8_t *a, const uint8_t *b, const uint8_t *mask)
{
	__m128i va = _mm_loadu_si128((const __m128i *)(const void *)a);
	__m128i vb = _mm_loadu_si128((const __m128i *)(const void *)b);
	__m128i eq = _mm_cmpeq_epi8(va, vb);
	__m128i vm, d, is_digit;

	if (_mm_movemask_epi8(eq) == 0xffff)
		return true;
	vm = _mm_loadu_si128((const __m128i *)(const void *)mask);
	/* every byte equal or under the mask, and b's bytes under the mask digits */
	if (_mm_movemask_epi8(_mm_or_si128(eq, vm)) != 0xffff)
		return false;
	d = _mm_sub_epi8(vb, _mm_set1_epi8('0'));
	is_digit = _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d);
	return _mm_movemask_epi8(_mm_andnot_si128(is_digit, vm)) == 0;
}
#endif

/*
 * Equal to m's text, or different only in the digits of numbers standing
 * alone in it (wk_conn_sql_mask). Such texts lex alike, token for token:
 * the same words, quotes, comments and statements, and sql_classify's
 * answer depends on those alone; so a text like that is plain when the
 * remembered one is. pgbench's and most applications' simple queries differ
 * from the last one only in their numbers. Out of line: a leaf that needs
 * no saved registers, while the lookup loop around it stays small.
 */
static __attribute__((noinline)) bool
wk_conn_sql_is_like(const struct wk_plain_memo *m, const uint8_t *b, size_t len)
{
	const uint8_t *a = (const uint8_t *)m->text;
	uint64_t x, y, k;
	size_t i = 0;

	if (len < 8) {
		for (i = 0; i < len; i++)
			if (a[i] != b[i] && !(m->mask[i] && wk_conn_sql_is_digit(b[i])))
				return false;
		return true;
	}
#ifdef __SSE2__
	if (len >= 16) {
		/* sixteen bytes at a time (x86-64 always has SSE2); the last block overlaps */
		for (; i + 16 < len; i += 16)
			if (!wk_conn_sql_block_like(a + i, b + i, m->mask + i))
				return false;
		return wk_conn_sql_block_like(a + len - 16, b + len - 16, m->mask + len - 16);
	}
#endif
	for (; i + 8 <= len; i += 8) {
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		memcpy(&k, m->mask + i, 8);
		if (!wk_conn_sql_word_like(x, y, k))
			return false;
	}
	if (i == len)
		return true;
	/* the last eight bytes, overlapping what was compared already */
	memcpy(&x, a + len - 8, 8);
	memcpy(&y, b + len - 8, 8);
	memcpy(&k, m->mask + len - 8, 8);
	return wk_conn_sql_word_like(x, y, k);
}

/* The other memos than the last hit, hit. */
static __attribute__((noinline)) bool
wk_conn_sql_is_known_other(const char *sql, size_t len, unsigned hit)
{
	if (len == 0 || len > WK_PLAIN_MEMO_MAX)
		return false;
	for (unsigned k = 0; k < WK_PLAIN_MEMO_CNT; k++)
		if (k != hit && wk_plain_lens[k] == len &&
		    wk_conn_sql_is_like(&wk_plain_memos[k], (const uint8_t *)sql, len)) {
			wk_plain_memo_hit[len % ARRAY_SIZE(wk_plain_memo_hit)] = (uint8_t)k;
			return true;
		}
	return false;
}

bool
wk_conn_sql_is_known_plain(const char *sql, size_t len)
{
	unsigned k = wk_plain_memo_hit[len % ARRAY_SIZE(wk_plain_memo_hit)];

	/*
	 * The text of this length that matched last time first: applications
	 * repeat themselves, and a number with one digit more is another length.
	 */
	if (wk_plain_lens[k] == len && len &&
	    wk_conn_sql_is_like(&wk_plain_memos[k], (const uint8_t *)sql, len))
		return true;
	return wk_conn_sql_is_known_other(sql, len, k);
}

void
wk_conn_sql_note_plain(const char *sql, size_t len)
{
	unsigned k = wk_plain_memo_next;
	struct wk_plain_memo *m = &wk_plain_memos[k];

	if (len == 0 || len > sizeof(m->text))
		return;
	memcpy(m->text, sql, len);
	wk_conn_sql_mask((const uint8_t *)sql, len, m->mask);
	wk_plain_lens[k] = (uint16_t)len;
	wk_plain_memo_next = (k + 1) % WK_PLAIN_MEMO_CNT;
}

static int
wk_reap_grow(void ***arr, size_t *cap)
{
	size_t n = *cap ? *cap * 2 : 64;
	void **p = realloc(*arr, n * sizeof(void *));

	if (!p)
		return -1;
	*arr = p;
	*cap = n;
	return 0;
}

void
wk_reap_client(struct wk_client *c)
{
	if (c->is_free_later)
		return;
	if (g_wk.reap_clients_cnt == g_wk.reap_clients_cap &&
	    wk_reap_grow((void ***)&g_wk.reap_clients, &g_wk.reap_clients_cap) < 0) {
		/* out of memory for the reap list: leak the object rather than free it in use */
		log_error(&c->lctx, "out of memory: cannot schedule client for freeing");
		return;
	}
	c->is_free_later = true;
	g_wk.reap_clients[g_wk.reap_clients_cnt++] = c;
	event_active(g_wk.reap_ev, EV_READ, 0);
}

void
wk_reap_server(struct wk_server *s)
{
	if (s->is_free_later)
		return;
	if (g_wk.reap_servers_cnt == g_wk.reap_servers_cap &&
	    wk_reap_grow((void ***)&g_wk.reap_servers, &g_wk.reap_servers_cap) < 0) {
		log_error(&s->lctx, "out of memory: cannot schedule server for freeing");
		return;
	}
	s->is_free_later = true;
	g_wk.reap_servers[g_wk.reap_servers_cnt++] = s;
	event_active(g_wk.reap_ev, EV_READ, 0);
}

int
wk_conn_bind_socket_opts(int fd)
{
	int one = 1;

	/* Unix sockets refuse TCP options: that is fine */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	return 0;
}

const char *
wk_client_state_name(enum wk_client_state st)
{
	static const char *const names[] = { "startup", "auth",   "login", "idle",
					     "waiting", "active", "admin", "closing" };

	return (unsigned)st < ARRAY_SIZE(names) ? names[st] : "?";
}

const char *
wk_server_state_name(enum wk_server_state st)
{
	static const char *const names[] = { "connecting", "login", "idle",
					     "active",     "reset", "closing" };

	return (unsigned)st < ARRAY_SIZE(names) ? names[st] : "?";
}

enum wk_peek
wk_conn_peek(struct evbuffer *b, uint32_t max_len, bool want_body, struct pgw_hdr *h,
	     const uint8_t **msg)
{
	/*
	 * The header is almost always in the first chain: pullup then returns a
	 * pointer into it, much cheaper than copying out (and it merges the
	 * chains when it is not, which changes no byte).
	 */
	const uint8_t *hdr = evbuffer_pullup(b, PGW_HDR_LEN);
	size_t avail;

	if (!hdr)
		return WK_PEEK_MORE; /* fewer than PGW_HDR_LEN bytes (or out of memory) */
	if (!wk_hdr_parse(hdr, h))
		return WK_PEEK_BAD_LEN;
	if (h->len > max_len)
		return WK_PEEK_TOO_LONG;
	if (!want_body)
		return WK_PEEK_HEADER;
	avail = evbuffer_get_length(b);
	if (avail < pgw_msg_size(h))
		return WK_PEEK_HEADER;
	*msg = evbuffer_pullup(b, (ev_ssize_t)pgw_msg_size(h));
	return *msg ? WK_PEEK_WHOLE : WK_PEEK_HEADER;
}

void
wk_conn_flush_now(struct wk_stream *io)
{
	wk_stream_flush_now(io);
}

void
wk_cursor_init(struct wk_cursor *cur, struct evbuffer *buf)
{
	size_t first = evbuffer_get_contiguous_space(buf);
	int n;

	cur->buf = buf;
	cur->i = 0;
	cur->base = 0;
	/*
	 * Usually the buffer is one chain (one read): its pointer is all the
	 * cursor needs, cheaper than peeking at every chain.
	 */
	if (first > 0 && first == evbuffer_get_length(buf)) {
		cur->v[0].iov_base = evbuffer_pullup(buf, (ev_ssize_t)first);
		cur->v[0].iov_len = first;
		cur->n = cur->v[0].iov_base ? 1 : 0;
		return;
	}
	n = evbuffer_peek(buf, -1, NULL, cur->v, WK_CURSOR_VECS);
	cur->n = n < 0 ? 0 : (n > WK_CURSOR_VECS ? WK_CURSOR_VECS : n);
}

size_t
wk_cursor_copy_slow(struct wk_cursor *cur, size_t off, void *dst, size_t len)
{
	uint8_t *d = dst;
	size_t done = 0;
	int i = cur->i;
	size_t base = cur->base;

	while (i < cur->n && off >= base + cur->v[i].iov_len) {
		base += cur->v[i].iov_len;
		i++;
	}
	cur->i = i;
	cur->base = base;
	while (done < len && i < cur->n) {
		size_t at = off + done - base, take = cur->v[i].iov_len - at;

		if (take > len - done)
			take = len - done;
		memcpy(d + done, (const uint8_t *)cur->v[i].iov_base + at, take);
		done += take;
		if (done < len) {
			base += cur->v[i].iov_len;
			i++;
		}
	}
	if (done < len && cur->buf) {
		/* beyond the peeked vectors (a very fragmented buffer): ask libevent */
		struct evbuffer_ptr pos;
		ev_ssize_t got;

		if (evbuffer_ptr_set(cur->buf, &pos, off + done, EVBUFFER_PTR_SET) == 0 &&
		    (got = evbuffer_copyout_from(cur->buf, &pos, d + done, len - done)) > 0)
			done += (size_t)got;
	}
	return done;
}

const uint8_t *
wk_cursor_at_slow(struct wk_cursor *cur, size_t off, size_t len, uint8_t *tmp)
{
	int i = cur->i;
	size_t base = cur->base;

	/* the vector holding off, if it holds all len bytes */
	while (i < cur->n && off >= base + cur->v[i].iov_len) {
		base += cur->v[i].iov_len;
		i++;
	}
	if (i < cur->n && off >= base && off - base + len <= cur->v[i].iov_len) {
		cur->i = i;
		cur->base = base;
		return (const uint8_t *)cur->v[i].iov_base + (off - base);
	}
	return wk_cursor_copy_slow(cur, off, tmp, len) == len ? tmp : NULL;
}

/* Spare position maps: a rewritten Query needs one until its reply ends, not a malloc each. */
#define WK_POS_SPARES_MAX 32
static struct wk_pos_map *wk_pos_spares;
static uint32_t wk_pos_spares_cnt;

struct wk_pos_map *
wk_pos_map_new(void)
{
	struct wk_pos_map *m = wk_pos_spares;

	if (m) {
		wk_pos_spares = m->next_spare;
		wk_pos_spares_cnt--;
	} else {
		m = malloc(sizeof(*m));
		if (!m)
			return NULL;
	}
	m->next_spare = NULL;
	m->is_ascii = true;
	m->cnt = 0;
	return m;
}

void
wk_pos_map_free(struct wk_pos_map *m)
{
	if (!m)
		return;
	if (wk_pos_spares_cnt == WK_POS_SPARES_MAX) {
		free(m);
		return;
	}
	m->next_spare = wk_pos_spares;
	wk_pos_spares = m;
	wk_pos_spares_cnt++;
}

long
wk_pos_map_apply(const struct wk_pos_map *m, long pos)
{
	long p0 = pos - 1, shift = 0; /* 0-based; the server's text is longer by shift so far */

	for (uint32_t i = 0; i < m->cnt; i++) {
		const struct wk_pos_seg *g = &m->seg[i];

		if (p0 < (long)g->start)
			break;
		if (p0 < (long)g->end) /* inside what pgdog wrote: the start of what it replaced */
			return g->client_len ? (long)g->start - shift + 1 : 0;
		shift += (long)(g->end - g->start) - (long)g->client_len;
	}
	return p0 - shift + 1 > 0 ? p0 - shift + 1 : pos;
}
