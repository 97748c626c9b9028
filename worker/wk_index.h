/*
 * wk_index.h: an index over the entries of an array, by a hash of each
 * entry: open addressing with linear probing, each slot the entry's index
 * plus 1 (0: empty), at most half full, deletion by backward shift (no
 * tombstones). The caller keeps the entries and hands in their hashes; the
 * helpers are inline so that its hash and match functions are too.
 * Runs in: a worker.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

struct wk_index {
	uint32_t *slot;
	size_t cap; /* 0, or a power of two */
};

/* The hash of entry i of ctx's array. */
typedef uint32_t wk_index_hash_fn(const void *ctx, size_t i);

static inline void
wk_index_clear(struct wk_index *ix)
{
	for (size_t k = 0; k < ix->cap; k++)
		ix->slot[k] = 0;
}

static inline void
wk_index_free(struct wk_index *ix)
{
	free(ix->slot);
	ix->slot = NULL;
	ix->cap = 0;
}

/* The slot of the first candidate for hash; walk with wk_index_next until a 0. */
static inline size_t
wk_index_home(const struct wk_index *ix, uint32_t hash)
{
	return hash & (ix->cap - 1);
}

static inline size_t
wk_index_next(const struct wk_index *ix, size_t k)
{
	return (k + 1) & (ix->cap - 1);
}

/* Add entry i (hash h); there is room (wk_index_reserve). */
static inline void
wk_index_put(struct wk_index *ix, uint32_t h, size_t i)
{
	size_t k = wk_index_home(ix, h);

	while (ix->slot[k] != 0)
		k = wk_index_next(ix, k);
	ix->slot[k] = (uint32_t)(i + 1);
}

/* The slot holding entry i (hash h), which is in the index. */
static inline size_t
wk_index_slot_of(const struct wk_index *ix, uint32_t h, size_t i)
{
	size_t k = wk_index_home(ix, h);

	while (ix->slot[k] != i + 1)
		k = wk_index_next(ix, k);
	return k;
}

/* Entry i (hash h) is now entry to (the array moved it). */
static inline void
wk_index_move(struct wk_index *ix, uint32_t h, size_t i, size_t to)
{
	ix->slot[wk_index_slot_of(ix, h, i)] = (uint32_t)(to + 1);
}

/* Take entry i (hash h) out. */
static inline void
wk_index_del(struct wk_index *ix, uint32_t h, size_t i, wk_index_hash_fn *hash_of, const void *ctx)
{
	size_t hole = wk_index_slot_of(ix, h, i), mask = ix->cap - 1;

	ix->slot[hole] = 0;
	for (size_t k = (hole + 1) & mask; ix->slot[k] != 0; k = (k + 1) & mask) {
		size_t home = wk_index_home(ix, hash_of(ctx, ix->slot[k] - 1));

		/* back into the hole, unless its home lies in (hole, k] */
		if (((k - home) & mask) >= ((k - hole) & mask)) {
			ix->slot[hole] = ix->slot[k];
			ix->slot[k] = 0;
			hole = k;
		}
	}
}

/*
 * Room for cnt entries at half load at most. When it grows, the index is
 * rebuilt from entries 0..n-1 of ctx's array, those for which is_in says
 * so (NULL: all). 0, or -1 when out of memory (the index is unchanged).
 */
static inline int
wk_index_reserve(struct wk_index *ix, size_t cnt, size_t n, wk_index_hash_fn *hash_of,
		 bool (*is_in)(const void *ctx, size_t i), const void *ctx)
{
	size_t cap = ix->cap ? ix->cap : 16;
	uint32_t *slot;

	if (cnt >= UINT32_MAX / 2)
		return -1;
	while (cap < 2 * cnt)
		cap *= 2;
	if (cap == ix->cap)
		return 0;
	slot = calloc(cap, sizeof(*slot));
	if (!slot)
		return -1;
	free(ix->slot);
	ix->slot = slot;
	ix->cap = cap;
	for (size_t i = 0; i < n; i++)
		if (!is_in || is_in(ctx, i))
			wk_index_put(ix, hash_of(ctx, i), i);
	return 0;
}
