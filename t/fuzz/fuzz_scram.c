/*
 * fuzz_scram.c: libFuzzer target for the SCRAM parsers in shared/auth.c.
 * Runs in: the fuzzer (clang -fsanitize=fuzzer) or t/fuzz/replay.c.
 *
 * The input, split at its first NUL byte, is fed
 * - as client-first then client-final to a server initialised from a fixed
 *   verifier (with a fixed server nonce, so inputs can reach the proof check);
 * - as server-first then server-final to a client holding the same verifier's
 *   keys and a fixed nonce (no PBKDF2 on that path: iteration counts from
 *   the input cannot make a run slow);
 * - whole, up to the first NUL, to auth_secret_parse().
 * Verifier and nonces are those of check_auth.c's RFC 7677 tests, so the
 * corpus can hold a complete valid exchange.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "shared/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_VERIFIER \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define FUZZ_CLIENT_NONCE "rOprNGfwEbeRWgbNEkqO"
#define FUZZ_SERVER_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"

static void
fuzz_server(const struct auth_secret *sec, const uint8_t *first, size_t first_len,
	    const uint8_t *final, size_t final_len)
{
	struct auth_scram_server st;
	char out[AUTH_SCRAM_MSG_MAX], err[256];
	size_t n;

	if (auth_scram_server_init(&st, sec) < 0)
		return;
	if (auth_scram_server_set_nonce(&st, FUZZ_SERVER_NONCE) == 0 &&
	    auth_scram_server_first(&st, first, first_len, out, sizeof(out), &n, err,
				    sizeof(err)) == 0 &&
	    auth_scram_server_final(&st, final, final_len, out, sizeof(out), &n, err,
				    sizeof(err)) == 1)
		(void)auth_scram_server_client_key(&st);
	auth_scram_server_cleanup(&st);
}

/* Returns whether the client accepted the server's signature. */
static bool
fuzz_client(const struct auth_secret *sec, const uint8_t *first, size_t first_len,
	    const uint8_t *final, size_t final_len)
{
	static const uint8_t client_key[AUTH_KEY_LEN] = { 1, 2, 3 };
	struct auth_scram_client c;
	char out[AUTH_SCRAM_MSG_MAX], err[256];
	size_t n;
	bool verified = false;

	if (auth_scram_client_init(&c, NULL, sec, client_key) < 0)
		return false;
	if (auth_scram_client_set_nonce(&c, FUZZ_CLIENT_NONCE) == 0 &&
	    auth_scram_client_first(&c, out, sizeof(out), &n) == 0 &&
	    auth_scram_client_final(&c, first, first_len, out, sizeof(out), &n, err, sizeof(err)) ==
		    0)
		verified = auth_scram_client_verify(&c, final, final_len, err, sizeof(err)) == 0;
	auth_scram_client_cleanup(&c);
	return verified;
}

static void
fuzz_secret_parse(const uint8_t *data, size_t size)
{
	static char field[AUTH_PASSWORD_MAX * 2 + 1];
	struct auth_secret s;
	char err[256];

	if (size >= sizeof(field))
		size = sizeof(field) - 1;
	memcpy(field, data, size);
	field[size] = '\0';
	if (auth_secret_parse(field, &s, err, sizeof(err)) == 0)
		auth_secret_cleanup(&s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct auth_secret sec;
	static int ready;
	const uint8_t *nul = memchr(data, '\0', size);
	size_t first_len = nul != NULL ? (size_t)(nul - data) : size;
	const uint8_t *final = nul != NULL ? nul + 1 : data + size;
	size_t final_len = size - first_len - (nul != NULL ? 1 : 0);
	char err[256];

	if (!ready) {
		if (auth_secret_parse(FUZZ_VERIFIER, &sec, err, sizeof(err)) < 0)
			__builtin_trap();
		ready = 1;
	}
	fuzz_server(&sec, data, first_len, final, final_len);
	(void)fuzz_client(&sec, data, first_len, final, final_len);
	fuzz_secret_parse(data, first_len);
	return 0;
}
