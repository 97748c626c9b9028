/*
 * wk_prepared.c: the per-worker prepared statement registry (see
 * wk_prepared.h).
 * Runs in: a worker. A hash table of distinct statements; small arrays for
 * client names and server sets (linear search: a connection uses tens of
 * statements, not thousands; prepared_statements_limit caps servers).
 */
#include "worker/wk_prepared.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/hash.h"
#include "shared/log.h"
#include "shared/pgw.h"
#include "shared/shm.h"
#include "sql/sql_classify.h"
#include "worker/wk_conn.h"

/* Up to this many names or statements, lookups scan instead of hashing. */
#define WK_PREP_SCAN_MAX 8

#define WK_PREP_BUCKETS 4096

#define WK_PREP_NO_ROW UINT32_MAX

static struct wk_prep *wk_prep_table[WK_PREP_BUCKETS];
static uint32_t wk_prep_free_rows[SHM_PREPARED_PER_WORKER];
static uint32_t wk_prep_free_rows_cnt;
static bool wk_prep_rows_ready;

/* A row for SHOW PREPARED; WK_PREP_NO_ROW when all are taken (it is then not shown). */
static uint32_t
wk_prep_row_take(void)
{
	if (!wk_prep_rows_ready) {
		for (uint32_t i = 0; i < SHM_PREPARED_PER_WORKER; i++)
			wk_prep_free_rows[i] = SHM_PREPARED_PER_WORKER - 1 - i;
		wk_prep_free_rows_cnt = SHM_PREPARED_PER_WORKER;
		wk_prep_rows_ready = true;
	}
	if (!g_shm || wk_prep_free_rows_cnt == 0)
		return WK_PREP_NO_ROW;
	return wk_prep_free_rows[--wk_prep_free_rows_cnt];
}

static void
wk_prep_row_give(struct wk_prep *p)
{
	struct shm_prepared *r;

	if (p->row == WK_PREP_NO_ROW)
		return;
	r = shm_prepared((uint32_t)g_wk.slot, p->row);
	shm_row_write_begin(&r->seq);
	r->id = 0;
	shm_row_write_end(&r->seq);
	wk_prep_free_rows[wk_prep_free_rows_cnt++] = p->row;
	p->row = WK_PREP_NO_ROW;
}

void
wk_prep_publish(const struct wk_prep *p)
{
	struct shm_prepared *r;

	if (p->row == WK_PREP_NO_ROW)
		return;
	r = shm_prepared((uint32_t)g_wk.slot, p->row);
	shm_row_write_begin(&r->seq);
	r->client_refs = p->client_refs;
	r->server_refs = p->server_refs;
	r->uses = p->uses;
	shm_row_write_end(&r->seq);
}
static size_t wk_prep_cnt;
static uint64_t wk_prep_next_id;

/*
 * How an is_sql entry is prepared on a server: run "PREPARE <name> <key>"
 * through a helper statement and portal, closed at once (and closed first,
 * in case a failed run left it). Unlike a simple
 * Query it can go anywhere in a pipeline without ending its transaction.
 */
static void
wk_prep_build_sql(struct pgw_buf *b, const struct wk_prep *p, const uint8_t *key, size_t key_len)
{
	/* a helper left by a failed run (the server skipped the Closes after the error) */
	pgw_put_target(b, PGW_MSG_CLOSE, 'S', WK_PREP_SQL_HELPER);
	pgw_begin(b, PGW_MSG_PARSE);
	pgw_put_str(b, WK_PREP_SQL_HELPER);
	pgw_put_bytes(b, "PREPARE ", 8);
	pgw_put_bytes(b, p->name, strlen(p->name));
	pgw_put_u8(b, ' ');
	pgw_put_bytes(b, key, key_len);
	pgw_put_u8(b, 0);
	pgw_put_u16(b, 0);
	pgw_end(b);
	pgw_begin(b, PGW_MSG_BIND);
	pgw_put_str(b, WK_PREP_SQL_HELPER);
	pgw_put_str(b, WK_PREP_SQL_HELPER);
	pgw_put_u16(b, 0);
	pgw_put_u16(b, 0);
	pgw_put_u16(b, 0);
	pgw_end(b);
	pgw_begin(b, PGW_MSG_EXECUTE);
	pgw_put_str(b, WK_PREP_SQL_HELPER);
	pgw_put_u32(b, 0);
	pgw_end(b);
	pgw_put_target(b, PGW_MSG_CLOSE, 'P', WK_PREP_SQL_HELPER);
	pgw_put_target(b, PGW_MSG_CLOSE, 'S', WK_PREP_SQL_HELPER);
}

bool
wk_prep_text_is_desc_live(const char *text, size_t len)
{
	return sql_starts_with(text, len, "fetch") || sql_starts_with(text, len, "execute");
}

static struct wk_prep *
wk_prep_find_or_add(const uint8_t *key, size_t key_len, bool is_sql, bool is_std)
{
	uint32_t h;
	struct wk_prep *p;
	struct pgw_buf b;

	h = fnv1a32(FNV1A32_INIT, key, key_len) ^ (is_sql ? 0x5a5a5a5au : 0) ^
	    (is_std ? 0 : 0x3c3c3c3cu);
	for (p = wk_prep_table[h % WK_PREP_BUCKETS]; p; p = p->hnext)
		if (p->hash == h && !p->is_stale && p->is_sql == is_sql && p->is_std == is_std &&
		    p->key_len == key_len && memcmp(p->key, key, key_len) == 0)
			return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->hash = h;
	p->is_sql = is_sql;
	p->is_std = is_std;
	p->is_desc_live = !is_sql && wk_prep_text_is_desc_live((const char *)key,
							       strnlen((const char *)key, key_len));
	p->id = ++wk_prep_next_id;
	snprintf(p->name, sizeof(p->name), "__pgdog_%d_%llu", g_wk.slot, (unsigned long long)p->id);
	p->key = malloc(key_len ? key_len : 1);
	pgw_buf_init(&b);
	if (is_sql) {
		wk_prep_build_sql(&b, p, key, key_len);
	} else {
		pgw_begin(&b, PGW_MSG_PARSE);
		pgw_put_str(&b, p->name);
		pgw_put_bytes(&b, key, key_len);
		pgw_end(&b);
	}
	p->parse_msg = b.has_error ? NULL : malloc(b.len);
	if (!p->key || !p->parse_msg) {
		pgw_buf_cleanup(&b);
		free(p->key);
		free(p->parse_msg);
		free(p);
		return NULL;
	}
	memcpy(p->key, key, key_len);
	p->key_len = key_len;
	memcpy(p->parse_msg, b.data, b.len);
	p->parse_len = b.len;
	pgw_buf_cleanup(&b);
	p->row = wk_prep_row_take();
	if (p->row != WK_PREP_NO_ROW) {
		struct shm_prepared *r = shm_prepared((uint32_t)g_wk.slot, p->row);
		size_t qlen = is_sql ? key_len : strnlen((const char *)key, key_len);

		shm_row_write_begin(&r->seq);
		r->id = p->id;
		r->client_refs = r->server_refs = 0;
		r->uses = 0;
		snprintf(r->name, sizeof(r->name), "%s", p->name);
		if (qlen >= sizeof(r->query))
			qlen = sizeof(r->query) - 1;
		memcpy(r->query, key, qlen);
		r->query[qlen] = '\0';
		shm_row_write_end(&r->seq);
	}
	p->hnext = wk_prep_table[h % WK_PREP_BUCKETS];
	wk_prep_table[h % WK_PREP_BUCKETS] = p;
	wk_prep_cnt++;
	return p;
}

struct wk_prep *
wk_prep_register_std(const uint8_t *body, size_t len, size_t name_len, bool is_std)
{
	if (name_len + 1 > len)
		return NULL;
	return wk_prep_find_or_add(body + name_len + 1, len - name_len - 1, false, is_std);
}

struct wk_prep *
wk_prep_register(const uint8_t *body, size_t len, size_t name_len)
{
	return wk_prep_register_std(body, len, name_len, true);
}

struct wk_prep *
wk_prep_register_sql_std(const char *rest, size_t rest_len, bool is_std)
{
	return wk_prep_find_or_add((const uint8_t *)rest, rest_len, true, is_std);
}

struct wk_prep *
wk_prep_register_sql(const char *rest, size_t rest_len)
{
	return wk_prep_register_sql_std(rest, rest_len, true);
}

uint64_t
wk_prep_desc_hash(const uint8_t *body, size_t blen)
{
	uint64_t h = FNV1A64_INIT;
	size_t off = 2;
	uint16_t cnt;

	if (blen < 2)
		return 0;
	cnt = (uint16_t)(body[0] << 8 | body[1]);
	h = fnv1a64(h, body, 2);
	for (uint16_t i = 0; i < cnt; i++) {
		size_t n = strnlen((const char *)body + off, blen - off);

		/* name NUL, table 4, column 2, type 4, length 2, modifier 4, format 2 */
		if (n == blen - off || blen - off - n - 1 < 18)
			return 0;
		h = fnv1a64(h, body + off, n + 1);
		off += n + 1;
		h = fnv1a64(h, body + off + 6, 10); /* type, length, modifier */
		off += 18;
	}
	return h > WK_PREP_DESC_NONE ? h : h + 2;
}

bool
wk_prep_desc_seen(struct wk_prep *p, uint64_t desc)
{
	if (!desc || p->is_stale || p->is_desc_live)
		return true;
	if (!p->has_desc) {
		p->has_desc = true;
		p->desc = desc;
		return true;
	}
	if (p->desc == desc)
		return true;
	wk_prep_make_stale(p);
	return false;
}

void
wk_prep_make_stale(struct wk_prep *p)
{
	if (p->is_stale)
		return;
	p->is_stale = true;
	log_info(
		NULL,
		"prepared statement %s: its result type changed (DDL): the names mapped to it get 0A000, new Parses of its text a new statement",
		p->name);
}

void
wk_prep_release_if_unused(struct wk_prep *p)
{
	struct wk_prep **pp;

	if (!p || p->client_refs || p->server_refs)
		return;
	for (pp = &wk_prep_table[p->hash % WK_PREP_BUCKETS]; *pp; pp = &(*pp)->hnext) {
		if (*pp == p) {
			*pp = p->hnext;
			break;
		}
	}
	wk_prep_row_give(p);
	free(p->key);
	free(p->parse_msg);
	free(p);
	wk_prep_cnt--;
}

size_t
wk_prep_count(void)
{
	return wk_prep_cnt;
}

void
wk_prep_foreach(void (*fn)(const struct wk_prep *p, void *arg), void *arg)
{
	for (size_t i = 0; i < WK_PREP_BUCKETS; i++)
		for (struct wk_prep *p = wk_prep_table[i]; p; p = p->hnext)
			fn(p, arg);
}

void
wk_prep_cleanup_all(void)
{
	for (size_t i = 0; i < WK_PREP_BUCKETS; i++) {
		struct wk_prep *p = wk_prep_table[i];

		while (p) {
			struct wk_prep *next = p->hnext;

			wk_prep_row_give(p);
			free(p->key);
			free(p->parse_msg);
			free(p);
			p = next;
		}
		wk_prep_table[i] = NULL;
	}
	wk_prep_cnt = 0;
}

void
wk_prep_names_init(struct wk_prep_names *n)
{
	memset(n, 0, sizeof(*n));
}

/* ---- the name index (entries not being dropped) ---- */

static uint32_t
wk_prep_names_hash(const void *ctx, size_t i)
{
	const char *name = ((const struct wk_prep_names *)ctx)->v[i].name;

	return fnv1a32(FNV1A32_INIT, name, strlen(name));
}

static bool
wk_prep_names_is_indexed(const void *ctx, size_t i)
{
	return !((const struct wk_prep_names *)ctx)->v[i].is_dropping;
}

/* The index of the entry named name not being dropped, or SIZE_MAX. */
static size_t
wk_prep_names_find(const struct wk_prep_names *n, const char *name)
{
	const struct wk_index *ix = &n->index;

	if (n->cnt <= WK_PREP_SCAN_MAX) {
		/* a few names, the common case: a scan costs less than the hash */
		for (size_t i = 0; i < n->cnt; i++)
			if (!n->v[i].is_dropping && strcmp(n->v[i].name, name) == 0)
				return i;
		return SIZE_MAX;
	}
	for (size_t k = wk_index_home(ix, fnv1a32(FNV1A32_INIT, name, strlen(name)));;
	     k = wk_index_next(ix, k)) {
		uint32_t at = ix->slot[k];

		if (at == 0)
			return SIZE_MAX;
		if (strcmp(n->v[at - 1].name, name) == 0)
			return at - 1;
	}
}

static void
wk_prep_names_index_del(struct wk_prep_names *n, size_t i)
{
	wk_index_del(&n->index, wk_prep_names_hash(n, i), i, wk_prep_names_hash, n);
}

/* ---- entries ---- */

struct wk_prep *
wk_prep_names_get(const struct wk_prep_names *n, const char *name)
{
	size_t i = wk_prep_names_find(n, name);

	return i == SIZE_MAX ? NULL : n->v[i].prep;
}

bool
wk_prep_names_is_unconfirmed(const struct wk_prep_names *n, const char *name)
{
	size_t i = wk_prep_names_find(n, name);

	return i != SIZE_MAX && n->v[i].is_unconfirmed;
}

const char *
wk_prep_names_name_of(const struct wk_prep_names *n, const char *pgdog_name, size_t len)
{
	const char *dropping = NULL;

	for (size_t i = 0; i < n->cnt; i++) {
		if (!wk_prep_name_is(n->v[i].prep->name, pgdog_name, len))
			continue;
		if (!n->v[i].is_dropping)
			return n->v[i].name;
		dropping = n->v[i].name;
	}
	/* a Close of it behind the message the error is about: the name was still the client's */
	return dropping;
}

static void
wk_prep_names_mark(struct wk_prep_names *n, size_t i, bool is_unconfirmed)
{
	if (n->v[i].is_unconfirmed != is_unconfirmed)
		is_unconfirmed ? n->unconfirmed_cnt++ : n->unconfirmed_cnt--;
	n->v[i].is_unconfirmed = is_unconfirmed;
}

/* Put name (p); its index in v, or SIZE_MAX when out of memory. */
static size_t
wk_prep_names_add(struct wk_prep_names *n, const char *name, struct wk_prep *p)
{
	size_t i = wk_prep_names_find(n, name);

	/* once: a scan per new name (statements are shared: client_refs is rarely 0) */
	for (size_t k = 0; !n->has_alias && p->client_refs > 0 && k < n->cnt; k++)
		if (n->v[k].prep == p && k != i && !n->v[k].is_dropping)
			n->has_alias = true;
	if (i != SIZE_MAX) {
		struct wk_prep *old = n->v[i].prep;

		p->client_refs++;
		n->v[i].prep = p;
		wk_prep_names_mark(n, i, false);
		old->client_refs--;
		wk_prep_publish(p);
		wk_prep_publish(old);
		wk_prep_release_if_unused(old);
		return i;
	}
	if (n->cnt == n->cap) {
		size_t cap = n->cap ? n->cap * 2 : 8;
		struct wk_prep_name *v = realloc(n->v, cap * sizeof(*v));

		if (!v)
			return SIZE_MAX;
		n->v = v;
		n->cap = cap;
	}
	if (wk_index_reserve(&n->index, n->cnt + 1, n->cnt, wk_prep_names_hash,
			     wk_prep_names_is_indexed, n) < 0)
		return SIZE_MAX;
	i = n->cnt;
	n->v[i].name = strdup(name);
	if (!n->v[i].name)
		return SIZE_MAX;
	n->v[i].prep = p;
	n->v[i].is_unconfirmed = false;
	n->v[i].is_dropping = false;
	n->v[i].drop_seq = 0;
	n->v[i].batch = 0;
	p->client_refs++;
	n->cnt++;
	wk_index_put(&n->index, wk_prep_names_hash(n, i), i);
	wk_prep_publish(p);
	return i;
}

int
wk_prep_names_put(struct wk_prep_names *n, const char *name, struct wk_prep *p)
{
	return wk_prep_names_add(n, name, p) == SIZE_MAX ? -1 : 0;
}

int
wk_prep_names_put_unconfirmed(struct wk_prep_names *n, const char *name, struct wk_prep *p,
			      uint64_t batch)
{
	static uint64_t seq;
	size_t i = wk_prep_names_add(n, name, p);

	if (i == SIZE_MAX)
		return -1;
	wk_prep_names_mark(n, i, true);
	n->v[i].batch = batch;
	n->v[i].put_seq = ++seq;
	return 0;
}

bool
wk_prep_names_is_dropping(const struct wk_prep_names *n, const char *name)
{
	size_t seen = 0;

	for (size_t i = n->cnt; i-- > 0 && seen < n->dropping_cnt;) {
		if (!n->v[i].is_dropping)
			continue;
		seen++;
		if (strcmp(n->v[i].name, name) == 0)
			return true;
	}
	return false;
}

bool
wk_prep_names_is_pending(const struct wk_prep_names *n, const char *name, uint64_t batch)
{
	size_t i;

	if (n->dropping_cnt && wk_prep_names_is_dropping(n, name))
		return true;
	if (!n->unconfirmed_cnt)
		return false;
	i = wk_prep_names_find(n, name);
	return i != SIZE_MAX && n->v[i].is_unconfirmed && n->v[i].batch != batch;
}

/*
 * Remove n->v[i]; the last entry takes its place. May free its statement.
 */
static void
wk_prep_names_remove(struct wk_prep_names *n, size_t i)
{
	struct wk_prep *p = n->v[i].prep;
	size_t last = n->cnt - 1;

	if (!n->v[i].is_dropping)
		wk_prep_names_index_del(n, i);
	else
		n->dropping_cnt--;
	if (n->v[i].is_unconfirmed)
		n->unconfirmed_cnt--;
	free(n->v[i].name);
	if (i != last) {
		if (!n->v[last].is_dropping)
			wk_index_move(&n->index, wk_prep_names_hash(n, last), last, i);
		n->v[i] = n->v[last];
	}
	n->cnt--;
	p->client_refs--;
	wk_prep_publish(p);
	wk_prep_release_if_unused(p);
}

void
wk_prep_names_settle(struct wk_prep_names *n, struct wk_prep *p, bool is_ok)
{
	size_t first = SIZE_MAX, seen = 0, total = n->unconfirmed_cnt;

	/*
	 * The oldest name p's answer is for (Parses are answered in order).
	 * Unconfirmed names are the latest as a rule: scanning back, stop once
	 * all of them have been seen.
	 */
	for (size_t i = n->cnt; i-- > 0 && seen < total;) {
		if (!n->v[i].is_unconfirmed)
			continue;
		seen++;
		if (n->v[i].prep == p &&
		    (first == SIZE_MAX || n->v[i].put_seq < n->v[first].put_seq))
			first = i;
	}
	/*
	 * Only that one: a later Parse of the same text under another name has
	 * its own answer, and may be skipped after an error between them
	 */
	if (first == SIZE_MAX)
		return;
	if (is_ok)
		wk_prep_names_mark(n, first, false);
	else
		wk_prep_names_remove(n, first); /* refused: the client never had this name */
}

void
wk_prep_names_del(struct wk_prep_names *n, const char *name)
{
	size_t i = wk_prep_names_find(n, name);

	if (i != SIZE_MAX)
		wk_prep_names_remove(n, i);
}

struct wk_prep *
wk_prep_names_drop_begin(struct wk_prep_names *n, const char *name)
{
	static uint64_t seq;
	size_t i = wk_prep_names_find(n, name);

	if (i == SIZE_MAX)
		return NULL;
	wk_prep_names_index_del(n, i);
	n->v[i].is_dropping = true;
	n->v[i].drop_seq = ++seq;
	n->dropping_cnt++;
	return n->v[i].prep;
}

void
wk_prep_names_drop_end(struct wk_prep_names *n, struct wk_prep *p, bool is_ok)
{
	size_t at = SIZE_MAX, seen = 0;

	/* DEALLOCATEs are answered in the order they were sent: the oldest is this one */
	for (size_t i = n->cnt; i-- > 0 && seen < n->dropping_cnt;) {
		if (!n->v[i].is_dropping)
			continue;
		seen++;
		if (n->v[i].prep == p && (at == SIZE_MAX || n->v[i].drop_seq < n->v[at].drop_seq))
			at = i;
	}
	if (at == SIZE_MAX)
		return; /* forgotten meanwhile (DEALLOCATE ALL, DISCARD ALL) */
	if (!is_ok && !wk_prep_names_get(n, n->v[at].name)) {
		/* PostgreSQL did not run it: the client still has the statement */
		n->v[at].is_dropping = false;
		n->dropping_cnt--;
		wk_index_put(&n->index, wk_prep_names_hash(n, at), at);
		return;
	}
	wk_prep_names_remove(n, at);
}

void
wk_prep_names_clear(struct wk_prep_names *n)
{
	for (size_t i = 0; i < n->cnt; i++) {
		struct wk_prep *p = n->v[i].prep;

		free(n->v[i].name);
		p->client_refs--;
		wk_prep_publish(p);
		wk_prep_release_if_unused(p);
	}
	n->cnt = 0;
	n->unconfirmed_cnt = n->dropping_cnt = 0;
	n->has_alias = false;
	wk_index_clear(&n->index);
}

void
wk_prep_names_cleanup(struct wk_prep_names *n)
{
	wk_prep_names_clear(n);
	free(n->v);
	wk_index_free(&n->index);
	wk_prep_names_init(n);
}

void
wk_prep_held_init(struct wk_prep_held *h)
{
	memset(h, 0, sizeof(*h));
}

static uint32_t
wk_prep_held_hash_of(const struct wk_prep *p)
{
	uintptr_t v = (uintptr_t)p >> 4;

	return (uint32_t)(v ^ (v >> 29)) * 2654435761u;
}

static uint32_t
wk_prep_held_hash(const void *ctx, size_t i)
{
	return wk_prep_held_hash_of(((const struct wk_prep_held *)ctx)->v[i].prep);
}

/* The index of p in h->v, or SIZE_MAX. */
static size_t
wk_prep_held_find(const struct wk_prep_held *h, const struct wk_prep *p)
{
	const struct wk_index *ix = &h->index;

	if (h->cnt <= WK_PREP_SCAN_MAX) {
		for (size_t i = 0; i < h->cnt; i++)
			if (h->v[i].prep == p)
				return i;
		return SIZE_MAX;
	}
	for (size_t k = wk_index_home(ix, wk_prep_held_hash_of(p));; k = wk_index_next(ix, k)) {
		uint32_t at = ix->slot[k];

		if (at == 0)
			return SIZE_MAX;
		if (h->v[at - 1].prep == p)
			return at - 1;
	}
}

bool
wk_prep_held_has(struct wk_prep_held *h, struct wk_prep *p)
{
	size_t i = wk_prep_held_find(h, p);

	if (i == SIZE_MAX)
		return false;
	h->v[i].last_use = ++h->clock;
	return true;
}

int
wk_prep_held_add(struct wk_prep_held *h, struct wk_prep *p)
{
	if (h->cnt == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 8;
		struct wk_prep_entry *v = realloc(h->v, cap * sizeof(*v));

		if (!v)
			return -1;
		h->v = v;
		h->cap = cap;
	}
	if (wk_index_reserve(&h->index, h->cnt + 1, h->cnt, wk_prep_held_hash, NULL, h) < 0)
		return -1;
	h->v[h->cnt].prep = p;
	h->v[h->cnt].last_use = ++h->clock;
	h->v[h->cnt].unsure = 0;
	wk_index_put(&h->index, wk_prep_held_hash_of(p), h->cnt);
	h->cnt++;
	p->server_refs++;
	wk_prep_publish(p);
	return 0;
}

void
wk_prep_held_del(struct wk_prep_held *h, struct wk_prep *p)
{
	size_t i = wk_prep_held_find(h, p), last = h->cnt - 1;

	if (i == SIZE_MAX)
		return;
	if (h->v[i].unsure)
		h->unsure_cnt--;
	wk_index_del(&h->index, wk_prep_held_hash_of(p), i, wk_prep_held_hash, h);
	if (i != last) {
		wk_index_move(&h->index, wk_prep_held_hash(h, last), last, i);
		h->v[i] = h->v[last];
	}
	h->cnt--;
	p->server_refs--;
	wk_prep_publish(p);
	wk_prep_release_if_unused(p);
}

void
wk_prep_held_sent(struct wk_prep_held *h, struct wk_prep *p, uint64_t batch)
{
	/* just added, most often: the last entry */
	size_t i = h->cnt && h->v[h->cnt - 1].prep == p ? h->cnt - 1 : wk_prep_held_find(h, p);

	if (i == SIZE_MAX)
		return;
	if (!h->v[i].unsure)
		h->unsure_cnt++;
	h->v[i].unsure = batch + 1;
}

void
wk_prep_held_answered(struct wk_prep_held *h, struct wk_prep *p)
{
	size_t i;

	if (!h->unsure_cnt || (i = wk_prep_held_find(h, p)) == SIZE_MAX || !h->v[i].unsure)
		return;
	h->v[i].unsure = 0;
	h->unsure_cnt--;
}

void
wk_prep_held_answered_all(struct wk_prep_held *h)
{
	for (size_t i = 0; h->unsure_cnt && i < h->cnt; i++)
		if (h->v[i].unsure) {
			h->v[i].unsure = 0;
			h->unsure_cnt--;
		}
}

bool
wk_prep_held_unsure_before(const struct wk_prep_held *h, const struct wk_prep *p, uint64_t batch)
{
	size_t i = wk_prep_held_find(h, p);

	return i != SIZE_MAX && h->v[i].unsure && h->v[i].unsure != batch + 1;
}

struct wk_prep *
wk_prep_held_lru(const struct wk_prep_held *h)
{
	const struct wk_prep_entry *best = NULL;

	for (size_t i = 0; i < h->cnt; i++)
		if (!best || h->v[i].last_use < best->last_use)
			best = &h->v[i];
	return best ? best->prep : NULL;
}

/* The server's statements are all gone (DISCARD ALL, DEALLOCATE ALL, closed). */
void
wk_prep_held_cleanup(struct wk_prep_held *h)
{
	while (h->cnt) {
		struct wk_prep *p = h->v[--h->cnt].prep;

		p->server_refs--;
		wk_prep_publish(p);
		wk_prep_release_if_unused(p);
	}
	free(h->v);
	wk_index_free(&h->index);
	for (size_t i = 0; i < h->junk_cnt; i++)
		free(h->junk[i]);
	free(h->junk);
	wk_prep_held_init(h);
}

bool
wk_prep_junk_has(const struct wk_prep_held *h, const char *name)
{
	for (size_t i = 0; i < h->junk_cnt; i++)
		if (strcmp(h->junk[i], name) == 0)
			return true;
	return false;
}

int
wk_prep_junk_add(struct wk_prep_held *h, const char *name)
{
	if (h->junk_cnt == h->junk_cap) {
		size_t cap = h->junk_cap ? h->junk_cap * 2 : 4;
		char **v = realloc(h->junk, cap * sizeof(*v));

		if (!v)
			return -1;
		h->junk = v;
		h->junk_cap = cap;
	}
	h->junk[h->junk_cnt] = strdup(name);
	if (!h->junk[h->junk_cnt])
		return -1;
	h->junk_cnt++;
	return 0;
}

size_t
wk_prep_junk_take(struct wk_prep_held *h, struct pgw_buf *b)
{
	size_t n = h->junk_cnt;

	for (size_t i = 0; i < n; i++) {
		pgw_put_target(b, PGW_MSG_CLOSE, 'S', h->junk[i]);
		free(h->junk[i]);
	}
	h->junk_cnt = 0;
	return n;
}

void
wk_prep_held_after_query(struct wk_prep_held *h, const char *sql)
{
	struct sql_result res;

	if (!h->cnt || !sql)
		return;
	if (sql_classify(sql, strlen(sql), &res) < 0) {
		/* cannot tell: assume the worst, the statements are prepared again if needed */
		wk_prep_held_cleanup(h);
		return;
	}
	for (size_t i = 0; i < res.stmts_cnt; i++) {
		if (res.stmts[i].kind == SQL_DISCARD_ALL ||
		    res.stmts[i].kind == SQL_DEALLOCATE_ALL) {
			wk_prep_held_cleanup(h);
			return;
		}
	}
}

/* Is the client's next message, held until the server has answered, a simple Query? */
static bool
wk_prep_next_is_query(struct wk_client *c)
{
	uint8_t type = 0;

	return evbuffer_copyout(c->io.in, &type, 1) == 1 && type == PGW_MSG_QUERY;
}

void
wk_prep_slot_end(struct wk_server *s, struct wk_slot *sl, bool is_error)
{
	struct wk_prep *p = sl->prep;
	struct wk_client *c = s->client;

	if (!p)
		return;
	/* the slot's reference keeps p alive across the updates below, each of which may free it */
	sl->prep = NULL;
	switch (sl->prep_role) {
	case WK_SLOT_PREP_USE:
	case WK_SLOT_PREP_STALE:
		/* a client's Bind or Describe: its replies were looked at as they came */
		p->client_refs--;
		wk_prep_release_if_unused(p);
		return;
	case WK_SLOT_PREP_SQL:
		if (c)
			wk_prep_names_settle(&c->prep_names, p, !is_error);
		if (is_error) {
			wk_prep_held_del(&s->held, p);
		} else {
			wk_prep_held_answered(&s->held, p);
			p->is_valid = true;
		}
		break;
	case WK_SLOT_PREP_CHECK:
		if (c)
			wk_prep_names_settle(&c->prep_names, p, !is_error);
		break;
	case WK_SLOT_PREP_DROP:
		if (c)
			wk_prep_names_drop_end(&c->prep_names, p, !is_error);
		break;
	case WK_SLOT_PREP_EXEC: {
		/*
		 * The Bind of a client's SQL PREPARE (unnamed statement): the
		 * Execute after it, before the Sync, runs it and settles the
		 * name; no Execute there: it never ran. One not sent yet is
		 * taken as sent.
		 */
		bool is_run = !is_error;

		for (size_t k = 1; is_run && k < s->slots_cnt; k++) {
			struct wk_slot *ex = &s->slots[(s->slots_head + k) & (s->slots_cap - 1)];

			if (ex->kind == WK_SLOT_SYNC || ex->kind == WK_SLOT_QUERY) {
				is_run = false;
			} else if (ex->kind == WK_SLOT_EXECUTE && !ex->prep) {
				/* the reference moves with it */
				ex->prep = p;
				ex->prep_role = WK_SLOT_PREP_CHECK;
				return;
			}
		}
		/*
		 * Nothing sent after it yet: a simple Query held behind it
		 * (is_unsynced_wait) comes first, and drops the unnamed portal
		 */
		if (is_run && c && sl->is_unnamed_portal && s->is_unsynced_wait &&
		    wk_prep_next_is_query(c))
			is_run = false;
		if (c)
			wk_prep_names_settle(&c->prep_names, p, is_run);
		break;
	}
	case WK_SLOT_PREP_VERIFY:
		break;
	case WK_SLOT_PREP_HOLD:
	default:
		/* PostgreSQL accepted it once: later Parses of it can be answered without a server */
		if (is_error) {
			wk_prep_held_del(&s->held, p);
		} else {
			wk_prep_held_answered(&s->held, p);
			p->is_valid = true;
		}
		break;
	}
	/*
	 * A client's message waits for a statement's answer (the Describe of a
	 * new copy, a Parse of a name): it is looked at again, and waits again
	 * if what it needs is still unknown (wk_client.c). Not one that waits
	 * for every answer (is_unsynced_wait: wk_server_slot_pop resumes it).
	 */
	if (s->is_verify_wait && !s->is_unsynced_wait) {
		s->is_verify_wait = false;
		s->is_verify_resume = true;
	}
	p->client_refs--;
	wk_prep_publish(p);
	wk_prep_release_if_unused(p);
}
