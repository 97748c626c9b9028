/*
 * secret.c: randomness, constant-time comparison, wiping and base64 (see
 * secret.h). The only file in pgdog that calls libsodium.
 * Runs in: both processes. secret_init() runs in the supervisor before fork;
 * every other function also initialises libsodium on first use, so unit tests
 * and fuzzers need not call it (sodium_init() is idempotent and thread-safe).
 */
#include "shared/secret.h"

#include <errno.h>

#include <sodium.h>

int
secret_init(void)
{
	/* 0: initialised now, 1: already initialised, -1: failure */
	if (sodium_init() < 0) {
		errno = EIO;
		return -1;
	}
	return 0;
}

static void
secret_ensure_init(void)
{
	/*
	 * randombytes_*() work without sodium_init(), but picking the
	 * implementation first keeps behaviour the same in tests and servers.
	 * A failure here leaves libsodium's default generator, which is fine.
	 */
	static bool done;

	if (!done && sodium_init() >= 0)
		done = true;
}

void
secret_random(void *buf, size_t n)
{
	if (n == 0)
		return;
	secret_ensure_init();
	randombytes_buf(buf, n);
}

uint32_t
secret_random_u32(void)
{
	secret_ensure_init();
	return randombytes_random();
}

uint32_t
secret_random_uniform(uint32_t upper)
{
	secret_ensure_init();
	/* randombytes_uniform(0) and (1) both return 0 */
	return randombytes_uniform(upper);
}

bool
secret_equal(const void *a, const void *b, size_t n)
{
	if (n == 0)
		return true;
	return sodium_memcmp(a, b, n) == 0;
}

void
secret_wipe(void *p, size_t n)
{
	if (p == NULL || n == 0)
		return;
	sodium_memzero(p, n);
}

size_t
secret_b64_encoded_len(size_t n)
{
	return sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
}

size_t
secret_b64_encode(char *out, size_t out_len, const void *in, size_t n)
{
	if (out == NULL || out_len == 0)
		return 0;
	if (out_len < secret_b64_encoded_len(n)) {
		out[0] = '\0';
		return 0;
	}
	if (n == 0) {
		out[0] = '\0';
		return 0;
	}
	sodium_bin2base64(out, out_len, in, n, sodium_base64_VARIANT_ORIGINAL);
	/* the encoding of n bytes is always 4 * ceil(n / 3) characters */
	return (n + 2) / 3 * 4;
}

int
secret_b64_decode(void *out, size_t out_len, size_t *decoded_len, const char *in, size_t n)
{
	size_t len = 0;

	*decoded_len = 0;
	if (n == 0)
		return 0;
	/*
	 * With b64_end NULL libsodium fails unless it consumed all n characters,
	 * so trailing garbage, missing padding and embedded NULs are rejected.
	 */
	if (sodium_base642bin(out, out_len, in, n, NULL, &len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0) {
		if (errno == 0)
			errno = EINVAL;
		return -1;
	}
	*decoded_len = len;
	return 0;
}
