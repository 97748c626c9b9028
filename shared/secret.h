/*
 * secret.h: the only module that calls libsodium. Randomness, constant-time
 * comparison, wiping, base64.
 * Runs in: both processes. secret_init() runs in the supervisor before fork.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/compiler.h"

/* Initialise libsodium. -1 if it cannot be initialised. */
int secret_init(void) MUST_CHECK;
void secret_random(void *buf, size_t n);
uint32_t secret_random_u32(void);
/* Uniform in [0, upper). */
uint32_t secret_random_uniform(uint32_t upper);
/* Constant-time equality of two n-byte buffers. */
bool secret_equal(const void *a, const void *b, size_t n);
void secret_wipe(void *p, size_t n);

/* Standard base64 with padding (RFC 4648), as SCRAM uses. */
/* Bytes needed to encode n bytes, including the terminating NUL. */
size_t secret_b64_encoded_len(size_t n);
/* Encode; out must hold secret_b64_encoded_len(n). Returns the string length. */
size_t secret_b64_encode(char *out, size_t out_len, const void *in, size_t n);
/* Decode a NUL-free string of length n; -1 if not valid base64 or out too small. */
int secret_b64_decode(void *out, size_t out_len, size_t *decoded_len, const char *in, size_t n)
	MUST_CHECK;
