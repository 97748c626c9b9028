/*
 * check_index.c: unit tests for worker/wk_index.h, the open-addressing
 * index over an array: random puts, moves and deletes against a plain
 * scan of the array, with keys made to collide. No network.
 */
#include <check.h>
#include <stdlib.h>

#include "worker/wk_index.h"

#define KEYS 4000

/* The array the index is over: keys, and whether each entry is in. */
struct arr {
	uint32_t key[KEYS];
	bool in[KEYS];
	size_t n;
	uint32_t mask; /* keys & mask is the hash: small masks collide */
};

static uint32_t
arr_hash(const void *ctx, size_t i)
{
	const struct arr *a = ctx;

	return a->key[i] & a->mask;
}

static bool
arr_is_in(const void *ctx, size_t i)
{
	return ((const struct arr *)ctx)->in[i];
}

/* What the index finds for key: the entry's index, or SIZE_MAX. */
static size_t
arr_find(const struct arr *a, const struct wk_index *ix, uint32_t key)
{
	if (!ix->cap)
		return SIZE_MAX;
	for (size_t k = wk_index_home(ix, key & a->mask);; k = wk_index_next(ix, k)) {
		if (ix->slot[k] == 0)
			return SIZE_MAX;
		if (a->key[ix->slot[k] - 1] == key)
			return ix->slot[k] - 1;
	}
}

static size_t
arr_scan(const struct arr *a, uint32_t key)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->in[i] && a->key[i] == key)
			return i;
	return SIZE_MAX;
}

/*
 * Entries are added at the end and removed by moving the last one into
 * their place, as wk_prepared.c does; some are taken out of the index but
 * kept in the array (a name being dropped), and put back.
 */
static void
run(uint32_t mask, unsigned seed, int ops)
{
	struct arr *a = calloc(1, sizeof(*a));
	struct wk_index ix = { NULL, 0 };

	ck_assert_ptr_nonnull(a);
	a->mask = mask;
	srand(seed);
	for (int op = 0; op < ops; op++) {
		int what = rand() % 10;
		uint32_t key = (uint32_t)(rand() % (KEYS * 2));

		if (what < 5 && a->n < KEYS && arr_scan(a, key) == SIZE_MAX) {
			ck_assert_int_eq(
				wk_index_reserve(&ix, a->n + 1, a->n, arr_hash, arr_is_in, a), 0);
			a->key[a->n] = key;
			a->in[a->n] = true;
			wk_index_put(&ix, arr_hash(a, a->n), a->n);
			a->n++;
		} else if (what < 8 && a->n) {
			size_t i = (size_t)rand() % a->n, last = a->n - 1;

			if (a->in[i])
				wk_index_del(&ix, arr_hash(a, i), i, arr_hash, a);
			if (i != last) {
				if (a->in[last])
					wk_index_move(&ix, arr_hash(a, last), last, i);
				a->key[i] = a->key[last];
				a->in[i] = a->in[last];
			}
			a->n--;
		} else if (a->n) {
			size_t i = (size_t)rand() % a->n;

			if (a->in[i]) {
				wk_index_del(&ix, arr_hash(a, i), i, arr_hash, a);
				a->in[i] = false;
			} else if (arr_scan(a, a->key[i]) == SIZE_MAX) {
				a->in[i] = true;
				wk_index_put(&ix, arr_hash(a, i), i);
			}
		}
		if (op % 97 == 0) {
			for (uint32_t k = 0; k < KEYS * 2; k += 7)
				ck_assert_uint_eq(arr_find(a, &ix, k), arr_scan(a, k));
		}
	}
	for (uint32_t k = 0; k < KEYS * 2; k++)
		ck_assert_uint_eq(arr_find(a, &ix, k), arr_scan(a, k));
	wk_index_clear(&ix);
	for (uint32_t k = 0; k < KEYS * 2; k++)
		ck_assert_uint_eq(arr_find(a, &ix, k), SIZE_MAX);
	wk_index_free(&ix);
	free(a);
}

START_TEST(test_index_spread)
{
	run(0xffffffffu, 1, 60000);
}
END_TEST

START_TEST(test_index_collisions)
{
	/* 64 hash values for 8000 keys: long runs, wrapping around the table */
	run(63, 2, 20000);
}
END_TEST

START_TEST(test_index_all_collide)
{
	run(0, 3, 3000);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("index");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_index_spread);
	tcase_add_test(tc, test_index_collisions);
	tcase_add_test(tc, test_index_all_collide);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
