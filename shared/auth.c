/*
 * auth.c: password secrets, MD5 and SCRAM-SHA-256 on both sides (see auth.h).
 * Runs in: both processes. Takes bytes, returns results; never logs, never
 * touches sockets. OpenSSL computes digests; randomness, constant-time
 * comparison, wiping and base64 come from shared/secret.h.
 *
 * Invariants:
 * - Every parser takes (pointer, length) from the peer, copies it into a
 *   bounded NUL-terminated buffer and rejects embedded NULs first, so the
 *   rest of the code can use C strings.
 * - Keys, salted passwords and proofs on the stack are wiped before return.
 * - SASLprep is not applied: passwords are used as the bytes they are. For
 *   pure ASCII passwords that is exactly what SASLprep yields (PostgreSQL
 *   itself falls back to the raw bytes whenever normalisation fails). A
 *   non-ASCII password that NFKC would change must be stored in users.ini in
 *   its normalised form (or as a verifier made by PostgreSQL).
 */
#include "shared/auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "shared/secret.h"

#define AUTH_SCRAM_SALT_LEN       16 /* salt we generate */
#define AUTH_SCRAM_NONCE_RAW_LEN  18 /* random bytes in a nonce: 24 base64 chars */
#define AUTH_SCRAM_ITERATIONS_MAX 0x7fffffffu
#define AUTH_SCRAM_PREFIX         "SCRAM-SHA-256$"
/* client-first-bare "," server-first "," client-final-without-proof */
#define AUTH_SCRAM_AUTHMSG_MAX (3 * AUTH_SCRAM_MSG_MAX + 2)

/* Server states (st->step). The gs2 header the client chose is kept in it. */
enum {
	AUTH_SRV_NONE = 0,
	AUTH_SRV_INIT,    /* waiting for client-first */
	AUTH_SRV_FIRST_N, /* sent server-first; client said "n,," */
	AUTH_SRV_FIRST_Y, /* sent server-first; client said "y,," */
	AUTH_SRV_DONE,    /* proof checked (valid or not) */
	AUTH_SRV_FAILED,  /* malformed input: no further calls accepted */
};

/* Client states (st->step). */
enum {
	AUTH_CLI_NONE = 0,
	AUTH_CLI_INIT,   /* nonce ready */
	AUTH_CLI_FIRST,  /* sent client-first */
	AUTH_CLI_FINAL,  /* sent client-final; server signature expected */
	AUTH_CLI_DONE,   /* server verified */
	AUTH_CLI_FAILED, /* bad input: no further calls accepted */
};

static const char auth_hex[] = "0123456789abcdef";

/* ---- digests -------------------------------------------------------------- */

static int
auth_sha256(const void *in, size_t n, uint8_t out[AUTH_KEY_LEN])
{
	unsigned int len = 0;

	if (EVP_Digest(in, n, out, &len, EVP_sha256(), NULL) != 1 || len != AUTH_KEY_LEN)
		return -1;
	return 0;
}

static int
auth_hmac(const uint8_t key[AUTH_KEY_LEN], const void *msg, size_t n, uint8_t out[AUTH_KEY_LEN])
{
	unsigned int len = 0;

	if (HMAC(EVP_sha256(), key, AUTH_KEY_LEN, msg, n, out, &len) == NULL || len != AUTH_KEY_LEN)
		return -1;
	return 0;
}

/*
 * Derive ClientKey, StoredKey and ServerKey from a password. Any of the
 * outputs may be NULL. The password's bytes are used unchanged (no SASLprep).
 */
static int
auth_scram_derive(const char *password, const uint8_t *salt, size_t salt_len, uint32_t iterations,
		  uint8_t *client_key, uint8_t *stored_key, uint8_t *server_key)
{
	uint8_t salted[AUTH_KEY_LEN];
	uint8_t ck[AUTH_KEY_LEN];
	int rc = -1;

	if (iterations == 0 || iterations > AUTH_SCRAM_ITERATIONS_MAX || salt_len == 0)
		goto out;
	if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, (int)iterations,
			      EVP_sha256(), AUTH_KEY_LEN, salted) != 1)
		goto out;
	if (auth_hmac(salted, "Client Key", strlen("Client Key"), ck) < 0)
		goto out;
	if (stored_key != NULL && auth_sha256(ck, AUTH_KEY_LEN, stored_key) < 0)
		goto out;
	if (server_key != NULL &&
	    auth_hmac(salted, "Server Key", strlen("Server Key"), server_key) < 0)
		goto out;
	if (client_key != NULL)
		memcpy(client_key, ck, AUTH_KEY_LEN);
	rc = 0;
out:
	secret_wipe(salted, sizeof(salted));
	secret_wipe(ck, sizeof(ck));
	return rc;
}

/* out = "md5" + md5hex(a || b), NUL-terminated. */
static int
auth_md5_hex(const void *a, size_t a_len, const void *b, size_t b_len, char out[AUTH_MD5_LEN + 1])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t d[16];
	unsigned int len = 0;
	size_t i;

	if (ctx == NULL)
		goto fail;
	if (EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1 || EVP_DigestUpdate(ctx, a, a_len) != 1 ||
	    EVP_DigestUpdate(ctx, b, b_len) != 1 || EVP_DigestFinal_ex(ctx, d, &len) != 1 ||
	    len != sizeof(d))
		goto fail;
	EVP_MD_CTX_free(ctx);
	memcpy(out, "md5", 3);
	for (i = 0; i < sizeof(d); i++) {
		out[3 + 2 * i] = auth_hex[d[i] >> 4];
		out[4 + 2 * i] = auth_hex[d[i] & 0xf];
	}
	out[AUTH_MD5_LEN] = '\0';
	secret_wipe(d, sizeof(d));
	return 0;
fail:
	EVP_MD_CTX_free(ctx);
	/* an empty string never equals a 35-character response */
	out[0] = '\0';
	return -1;
}

/* ---- secrets -------------------------------------------------------------- */

static bool
auth_is_hex(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* Parse a decimal uint32 in [1, AUTH_SCRAM_ITERATIONS_MAX] from [p, end). */
static int
auth_parse_iterations(const char *p, const char *end, uint32_t *out)
{
	uint64_t v = 0;

	if (p == end || *p == '0')
		return -1;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > AUTH_SCRAM_ITERATIONS_MAX)
			return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

/* Decode base64 [p, end) into exactly AUTH_KEY_LEN bytes. */
static int
auth_decode_key(const char *p, const char *end, uint8_t out[AUTH_KEY_LEN])
{
	size_t n = 0;

	if (secret_b64_decode(out, AUTH_KEY_LEN, &n, p, (size_t)(end - p)) < 0 || n != AUTH_KEY_LEN)
		return -1;
	return 0;
}

static int
auth_parse_verifier(const char *field, struct auth_secret *out, char *err, size_t err_len)
{
	const char *p = field + strlen(AUTH_SCRAM_PREFIX);
	const char *colon, *dollar, *end = field + strlen(field);

	colon = strchr(p, ':');
	if (colon == NULL || auth_parse_iterations(p, colon, &out->iterations) < 0) {
		snprintf(err, err_len, "SCRAM verifier: bad iteration count");
		return -1;
	}
	p = colon + 1;
	dollar = strchr(p, '$');
	if (dollar == NULL ||
	    secret_b64_decode(out->salt, sizeof(out->salt), &out->salt_len, p,
			      (size_t)(dollar - p)) < 0 ||
	    out->salt_len == 0) {
		snprintf(err, err_len, "SCRAM verifier: bad salt (base64, 1 to %d bytes)",
			 AUTH_SALT_MAX);
		return -1;
	}
	p = dollar + 1;
	colon = strchr(p, ':');
	if (colon == NULL || auth_decode_key(p, colon, out->stored_key) < 0) {
		snprintf(err, err_len, "SCRAM verifier: bad StoredKey (base64 of 32 bytes)");
		return -1;
	}
	p = colon + 1;
	if (auth_decode_key(p, end, out->server_key) < 0) {
		snprintf(err, err_len, "SCRAM verifier: bad ServerKey (base64 of 32 bytes)");
		return -1;
	}
	out->kind = AUTH_SECRET_SCRAM;
	return 0;
}

int
auth_secret_parse(const char *field, struct auth_secret *out, char *err, size_t err_len)
{
	size_t len, i;

	memset(out, 0, sizeof(*out));
	if (field == NULL || field[0] == '\0') {
		out->kind = AUTH_SECRET_NONE;
		return 0;
	}
	len = strlen(field);
	if (strncmp(field, AUTH_SCRAM_PREFIX, strlen(AUTH_SCRAM_PREFIX)) == 0) {
		if (auth_parse_verifier(field, out, err, err_len) < 0) {
			auth_secret_cleanup(out);
			errno = EINVAL;
			return -1;
		}
		return 0;
	}
	if (len == AUTH_MD5_LEN && strncmp(field, "md5", 3) == 0) {
		for (i = 3; i < len && auth_is_hex(field[i]); i++)
			;
		if (i == len) {
			for (i = 0; i < len; i++)
				out->md5[i] = (char)((field[i] >= 'A' && field[i] <= 'F')
							     ? field[i] - 'A' + 'a'
							     : field[i]);
			out->md5[len] = '\0';
			out->kind = AUTH_SECRET_MD5;
			return 0;
		}
	}
	if (len > AUTH_PASSWORD_MAX) {
		snprintf(err, err_len, "password longer than %d bytes", AUTH_PASSWORD_MAX);
		errno = EINVAL;
		return -1;
	}
	memcpy(out->plain, field, len + 1);
	out->kind = AUTH_SECRET_PLAIN;
	return 0;
}

void
auth_secret_cleanup(struct auth_secret *s)
{
	if (s == NULL)
		return;
	secret_wipe(s, sizeof(*s));
	s->kind = AUTH_SECRET_NONE;
}

/* Write "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>" for s's keys. */
static int
auth_secret_format_scram(const struct auth_secret *s, char *out, size_t out_len)
{
	char salt[AUTH_SALT_MAX * 2];
	char stored[AUTH_KEY_LEN * 2];
	char server[AUTH_KEY_LEN * 2];
	int n;

	secret_b64_encode(salt, sizeof(salt), s->salt, s->salt_len);
	secret_b64_encode(stored, sizeof(stored), s->stored_key, AUTH_KEY_LEN);
	secret_b64_encode(server, sizeof(server), s->server_key, AUTH_KEY_LEN);
	n = snprintf(out, out_len, "%s%u:%s$%s:%s", AUTH_SCRAM_PREFIX, (unsigned int)s->iterations,
		     salt, stored, server);
	secret_wipe(stored, sizeof(stored));
	secret_wipe(server, sizeof(server));
	if (n < 0 || (size_t)n >= out_len) {
		if (out_len > 0)
			out[0] = '\0';
		errno = ENOSPC;
		return -1;
	}
	return 0;
}

int
auth_scram_verifier(const char *password, uint32_t iterations, char *out, size_t out_len)
{
	struct auth_secret s;
	int rc = -1;

	memset(&s, 0, sizeof(s));
	if (password == NULL || iterations == 0 || iterations > AUTH_SCRAM_ITERATIONS_MAX) {
		errno = EINVAL;
		goto out;
	}
	s.kind = AUTH_SECRET_SCRAM;
	s.iterations = iterations;
	s.salt_len = AUTH_SCRAM_SALT_LEN;
	secret_random(s.salt, s.salt_len);
	if (auth_scram_derive(password, s.salt, s.salt_len, iterations, NULL, s.stored_key,
			      s.server_key) < 0) {
		errno = EIO;
		goto out;
	}
	rc = auth_secret_format_scram(&s, out, out_len);
out:
	auth_secret_cleanup(&s);
	return rc;
}

/* ---- MD5 ------------------------------------------------------------------ */

void
auth_md5_hash(const char *password, const char *user, char out[AUTH_MD5_LEN + 1])
{
	if (user == NULL)
		user = "";
	(void)auth_md5_hex(password, strlen(password), user, strlen(user), out);
}

void
auth_md5_response(const char md5hash[AUTH_MD5_LEN + 1], const uint8_t salt[4],
		  char out[AUTH_MD5_LEN + 1])
{
	/* the hash's hex digits, without the "md5" prefix, then the salt */
	(void)auth_md5_hex(md5hash + 3, AUTH_MD5_LEN - 3, salt, 4, out);
}

bool
auth_md5_verify(const struct auth_secret *s, const char *user, const uint8_t salt[4],
		const char *response)
{
	char hash[AUTH_MD5_LEN + 1];
	char expect[AUTH_MD5_LEN + 1];
	bool ok = false;

	if (response == NULL || strnlen(response, AUTH_MD5_LEN + 1) != AUTH_MD5_LEN)
		return false;
	switch (s->kind) {
	case AUTH_SECRET_PLAIN:
		auth_md5_hash(s->plain, user, hash);
		break;
	case AUTH_SECRET_MD5:
		memcpy(hash, s->md5, sizeof(hash));
		break;
	default:
		return false;
	}
	if (hash[0] != '\0') {
		auth_md5_response(hash, salt, expect);
		ok = expect[0] != '\0' && secret_equal(expect, response, AUTH_MD5_LEN);
	}
	secret_wipe(hash, sizeof(hash));
	secret_wipe(expect, sizeof(expect));
	return ok;
}

bool
auth_plain_verify(const struct auth_secret *s, const char *user, const char *password)
{
	uint8_t a[AUTH_KEY_LEN], b[AUTH_KEY_LEN];
	char hash[AUTH_MD5_LEN + 1];
	bool ok = false;

	if (password == NULL)
		return false;
	switch (s->kind) {
	case AUTH_SECRET_PLAIN:
		/* compare digests: the time taken does not depend on the content */
		ok = auth_sha256(s->plain, strlen(s->plain), a) == 0 &&
		     auth_sha256(password, strlen(password), b) == 0 &&
		     secret_equal(a, b, AUTH_KEY_LEN);
		break;
	case AUTH_SECRET_MD5:
		auth_md5_hash(password, user, hash);
		ok = hash[0] != '\0' && secret_equal(hash, s->md5, AUTH_MD5_LEN);
		break;
	case AUTH_SECRET_SCRAM:
		ok = auth_scram_derive(password, s->salt, s->salt_len, s->iterations, NULL, a,
				       NULL) == 0 &&
		     secret_equal(a, s->stored_key, AUTH_KEY_LEN);
		break;
	default:
		break;
	}
	secret_wipe(a, sizeof(a));
	secret_wipe(b, sizeof(b));
	secret_wipe(hash, sizeof(hash));
	return ok;
}

/* ---- SCRAM message parsing ------------------------------------------------ */

/*
 * Copy a peer's message into buf as a C string. -1 when it is empty, too long
 * or contains a NUL byte.
 */
static int
auth_scram_copy_msg(char buf[AUTH_SCRAM_MSG_MAX], const uint8_t *in, size_t in_len, char *err,
		    size_t err_len)
{
	if (in == NULL || in_len == 0) {
		snprintf(err, err_len, "empty SCRAM message");
		return -1;
	}
	if (in_len >= AUTH_SCRAM_MSG_MAX) {
		snprintf(err, err_len, "SCRAM message too long (%zu bytes)", in_len);
		return -1;
	}
	if (memchr(in, '\0', in_len) != NULL) {
		snprintf(err, err_len, "SCRAM message contains a NUL byte");
		return -1;
	}
	memcpy(buf, in, in_len);
	buf[in_len] = '\0';
	return 0;
}

/*
 * Expect attribute `name` ("x=") at *pp. On success *val and *val_len give the
 * value (up to the next ',' or the end) and *pp points at that ',' or NUL.
 */
static int
auth_scram_attr(const char **pp, char name, const char **val, size_t *val_len)
{
	const char *p = *pp;
	const char *end;

	if (p[0] != name || p[1] != '=')
		return -1;
	p += 2;
	end = strchr(p, ',');
	if (end == NULL)
		end = p + strlen(p);
	*val = p;
	*val_len = (size_t)(end - p);
	*pp = end;
	return 0;
}

/* Nonce characters: printable ASCII except ','. */
static bool
auth_scram_nonce_valid(const char *p, size_t n)
{
	size_t i;

	if (n == 0)
		return false;
	for (i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return false;
	return true;
}

/*
 * Skip optional extensions ",<letter>=<value>" up to the end of the message
 * or an attribute in `stop`. -1 when one is malformed or is "m=" (a
 * mandatory extension: we support none).
 */
static int
auth_scram_skip_extensions(const char **pp, const char *stop)
{
	const char *p = *pp;
	const char *next;

	while (*p == ',') {
		char a = p[1];

		if (!((a >= 'a' && a <= 'z') || (a >= 'A' && a <= 'Z')) || a == 'm' || p[2] != '=')
			return -1;
		if (stop != NULL && strchr(stop, a) != NULL)
			break;
		next = strchr(p + 1, ',');
		p = next != NULL ? next : p + strlen(p);
	}
	*pp = p;
	return 0;
}

/* ---- SCRAM, server side --------------------------------------------------- */

static void
auth_scram_make_nonce(char *out, size_t out_len)
{
	uint8_t raw[AUTH_SCRAM_NONCE_RAW_LEN];

	secret_random(raw, sizeof(raw));
	secret_b64_encode(out, out_len, raw, sizeof(raw));
	secret_wipe(raw, sizeof(raw));
}

int
auth_scram_server_init(struct auth_scram_server *st, const struct auth_secret *s)
{
	memset(st, 0, sizeof(*st));
	switch (s->kind) {
	case AUTH_SECRET_SCRAM:
		if (s->salt_len == 0 || s->salt_len > AUTH_SALT_MAX || s->iterations == 0)
			goto fail;
		st->sec = *s;
		break;
	case AUTH_SECRET_PLAIN:
		/* derive a one-off verifier so the exchange is the same as for SCRAM */
		st->sec = *s;
		st->sec.iterations = AUTH_SCRAM_ITERATIONS;
		st->sec.salt_len = AUTH_SCRAM_SALT_LEN;
		secret_random(st->sec.salt, st->sec.salt_len);
		if (auth_scram_derive(s->plain, st->sec.salt, st->sec.salt_len, st->sec.iterations,
				      NULL, st->sec.stored_key, st->sec.server_key) < 0)
			goto fail;
		break;
	default:
		goto fail;
	}
	/* st->nonce holds only the server's part until the client's arrives */
	auth_scram_make_nonce(st->nonce, sizeof(st->nonce));
	st->step = AUTH_SRV_INIT;
	return 0;
fail:
	auth_scram_server_cleanup(st);
	errno = EINVAL;
	return -1;
}

int
auth_scram_server_set_nonce(struct auth_scram_server *st, const char *nonce)
{
	size_t n = strlen(nonce);

	if (st->step != AUTH_SRV_INIT || n > AUTH_NONCE_MAX || !auth_scram_nonce_valid(nonce, n)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(st->nonce, nonce, n + 1);
	return 0;
}

int
auth_scram_server_first(struct auth_scram_server *st, const uint8_t *in, size_t in_len, char *out,
			size_t out_cap, size_t *out_len, char *err, size_t err_len)
{
	char msg[AUTH_SCRAM_MSG_MAX];
	char server_nonce[AUTH_NONCE_MAX + 1];
	char salt[AUTH_SALT_MAX * 2];
	const char *p, *bare, *val;
	size_t n, sn_len;
	int step, len;

	*out_len = 0;
	if (st->step != AUTH_SRV_INIT) {
		snprintf(err, err_len, "unexpected SCRAM client-first-message");
		goto fail;
	}
	if (auth_scram_copy_msg(msg, in, in_len, err, err_len) < 0)
		goto fail;

	/* gs2-header: cbind-flag "," [authzid] "," */
	p = msg;
	switch (p[0]) {
	case 'n':
		step = AUTH_SRV_FIRST_N;
		break;
	case 'y':
		step = AUTH_SRV_FIRST_Y;
		break;
	case 'p':
		snprintf(err, err_len,
			 "SCRAM channel binding requested, but SCRAM-SHA-256-PLUS is not offered");
		goto fail;
	default:
		snprintf(err, err_len, "malformed SCRAM message: bad channel binding flag");
		goto fail;
	}
	if (p[1] != ',') {
		snprintf(err, err_len,
			 "malformed SCRAM message: expected ',' after channel binding flag");
		goto fail;
	}
	p += 2;
	if (p[0] == 'a' && p[1] == '=') {
		snprintf(err, err_len, "%s", AUTH_SCRAM_ERR_AUTHZID);
		goto fail;
	}
	if (p[0] != ',') {
		snprintf(err, err_len, "malformed SCRAM message: bad gs2 header");
		goto fail;
	}
	p++;
	bare = p;

	/* client-first-message-bare: [reserved-mext ","] username "," nonce ["," extensions] */
	if (p[0] == 'm' && p[1] == '=') {
		snprintf(err, err_len, "SCRAM mandatory extension is not supported");
		goto fail;
	}
	/* PostgreSQL takes the user from the startup packet; n= is ignored */
	if (auth_scram_attr(&p, 'n', &val, &n) < 0 || *p != ',') {
		snprintf(err, err_len, "malformed SCRAM message: expected username attribute");
		goto fail;
	}
	p++;
	if (auth_scram_attr(&p, 'r', &val, &n) < 0 || !auth_scram_nonce_valid(val, n)) {
		snprintf(err, err_len, "malformed SCRAM message: expected nonce attribute");
		goto fail;
	}
	if (n > AUTH_NONCE_MAX) {
		snprintf(err, err_len, "SCRAM client nonce too long");
		goto fail;
	}
	if (auth_scram_skip_extensions(&p, NULL) < 0 || *p != '\0') {
		snprintf(err, err_len, "malformed SCRAM message: bad attribute after nonce");
		goto fail;
	}

	/* combined nonce: the client's, then ours */
	sn_len = strnlen(st->nonce, AUTH_NONCE_MAX);
	memcpy(server_nonce, st->nonce, sn_len);
	memcpy(st->nonce, val, n);
	memcpy(st->nonce + n, server_nonce, sn_len);
	st->nonce[n + sn_len] = '\0';
	snprintf(st->client_first_bare, sizeof(st->client_first_bare), "%s", bare);

	secret_b64_encode(salt, sizeof(salt), st->sec.salt, st->sec.salt_len);
	len = snprintf(st->server_first, sizeof(st->server_first), "r=%s,s=%s,i=%u", st->nonce,
		       salt, (unsigned int)st->sec.iterations);
	if (len < 0 || (size_t)len >= sizeof(st->server_first) || (size_t)len > out_cap) {
		snprintf(err, err_len, "SCRAM server-first-message does not fit");
		goto fail;
	}
	memcpy(out, st->server_first, (size_t)len);
	if ((size_t)len < out_cap)
		out[len] = '\0';
	*out_len = (size_t)len;
	st->step = step;
	secret_wipe(msg, sizeof(msg));
	return 0;
fail:
	secret_wipe(msg, sizeof(msg));
	st->step = AUTH_SRV_FAILED;
	errno = EINVAL;
	return -1;
}

/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
static int
auth_scram_auth_message(char *buf, size_t cap, const char *first_bare, const char *server_first,
			const char *final, size_t final_len)
{
	int n = snprintf(buf, cap, "%s,%s,%.*s", first_bare, server_first, (int)final_len, final);

	if (n < 0 || (size_t)n >= cap)
		return -1;
	return n;
}

int
auth_scram_server_final(struct auth_scram_server *st, const uint8_t *in, size_t in_len, char *out,
			size_t out_cap, size_t *out_len, char *err, size_t err_len)
{
	char msg[AUTH_SCRAM_MSG_MAX];
	char auth_msg[AUTH_SCRAM_AUTHMSG_MAX];
	uint8_t proof[AUTH_KEY_LEN];
	uint8_t sig[AUTH_KEY_LEN];
	uint8_t client_key[AUTH_KEY_LEN];
	uint8_t stored[AUTH_KEY_LEN];
	char sig64[AUTH_KEY_LEN * 2];
	const char *p, *val, *cbind, *proof_attr;
	size_t n, proof_len = 0;
	int am_len, len, rc = -1;
	bool ok;

	*out_len = 0;
	if (st->step != AUTH_SRV_FIRST_N && st->step != AUTH_SRV_FIRST_Y) {
		snprintf(err, err_len, "unexpected SCRAM client-final-message");
		goto fail;
	}
	if (auth_scram_copy_msg(msg, in, in_len, err, err_len) < 0)
		goto fail;

	/* channel-binding "," nonce ["," extensions] ",p=" proof */
	p = msg;
	cbind = st->step == AUTH_SRV_FIRST_N ? "biws" : "eSws";
	if (auth_scram_attr(&p, 'c', &val, &n) < 0 || *p != ',') {
		snprintf(err, err_len,
			 "malformed SCRAM message: expected channel binding attribute");
		goto fail;
	}
	if (n != 4 || memcmp(val, cbind, 4) != 0) {
		snprintf(err, err_len,
			 "SCRAM channel binding does not match the client-first-message");
		goto fail;
	}
	p++;
	if (auth_scram_attr(&p, 'r', &val, &n) < 0) {
		snprintf(err, err_len, "malformed SCRAM message: expected nonce attribute");
		goto fail;
	}
	if (n != strlen(st->nonce) || memcmp(val, st->nonce, n) != 0) {
		snprintf(err, err_len, "SCRAM nonce does not match");
		goto fail;
	}
	if (auth_scram_skip_extensions(&p, "p") < 0 || p[0] != ',' || p[1] != 'p') {
		snprintf(err, err_len, "malformed SCRAM message: expected proof attribute");
		goto fail;
	}
	proof_attr = p;
	p++;
	if (auth_scram_attr(&p, 'p', &val, &n) < 0 || *p != '\0') {
		snprintf(err, err_len, "malformed SCRAM message: proof must be the last attribute");
		goto fail;
	}
	if (secret_b64_decode(proof, sizeof(proof), &proof_len, val, n) < 0 ||
	    proof_len != AUTH_KEY_LEN) {
		snprintf(err, err_len, "malformed SCRAM message: bad proof");
		goto fail;
	}

	am_len = auth_scram_auth_message(auth_msg, sizeof(auth_msg), st->client_first_bare,
					 st->server_first, msg, (size_t)(proof_attr - msg));
	if (am_len < 0) {
		snprintf(err, err_len, "SCRAM messages too long");
		goto fail;
	}
	/* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); check H(ClientKey) */
	if (auth_hmac(st->sec.stored_key, auth_msg, (size_t)am_len, sig) < 0)
		goto crypto_fail;
	for (n = 0; n < AUTH_KEY_LEN; n++)
		client_key[n] = proof[n] ^ sig[n];
	if (auth_sha256(client_key, AUTH_KEY_LEN, stored) < 0)
		goto crypto_fail;
	ok = secret_equal(stored, st->sec.stored_key, AUTH_KEY_LEN);
	st->step = AUTH_SRV_DONE;
	if (!ok) {
		rc = 0;
		goto out;
	}
	if (auth_hmac(st->sec.server_key, auth_msg, (size_t)am_len, sig) < 0)
		goto crypto_fail;
	secret_b64_encode(sig64, sizeof(sig64), sig, AUTH_KEY_LEN);
	len = snprintf(out, out_cap, "v=%s", sig64);
	if (len < 0 || (size_t)len >= out_cap) {
		snprintf(err, err_len, "SCRAM server-final-message does not fit");
		goto fail;
	}
	*out_len = (size_t)len;
	memcpy(st->client_key, client_key, AUTH_KEY_LEN);
	st->has_client_key = true;
	rc = 1;
	goto out;
crypto_fail:
	snprintf(err, err_len, "SCRAM: digest computation failed");
fail:
	st->step = AUTH_SRV_FAILED;
	errno = EINVAL;
	rc = -1;
out:
	secret_wipe(msg, sizeof(msg));
	secret_wipe(auth_msg, sizeof(auth_msg));
	secret_wipe(proof, sizeof(proof));
	secret_wipe(sig, sizeof(sig));
	secret_wipe(client_key, sizeof(client_key));
	secret_wipe(stored, sizeof(stored));
	return rc;
}

const uint8_t *
auth_scram_server_client_key(const struct auth_scram_server *st)
{
	return st->has_client_key ? st->client_key : NULL;
}

void
auth_scram_server_cleanup(struct auth_scram_server *st)
{
	if (st == NULL)
		return;
	secret_wipe(st, sizeof(*st));
}

/* ---- SCRAM, client side --------------------------------------------------- */

int
auth_scram_client_init(struct auth_scram_client *st, const char *password,
		       const struct auth_secret *keys, const uint8_t *client_key)
{
	memset(st, 0, sizeof(*st));
	if (password != NULL && keys == NULL && client_key == NULL) {
		st->password = password;
	} else if (password == NULL && keys != NULL && client_key != NULL) {
		if (keys->kind != AUTH_SECRET_SCRAM || keys->salt_len == 0 ||
		    keys->salt_len > AUTH_SALT_MAX || keys->iterations == 0)
			goto fail;
		st->keys = keys;
		memcpy(st->client_key, client_key, AUTH_KEY_LEN);
	} else {
		goto fail;
	}
	auth_scram_make_nonce(st->client_nonce, sizeof(st->client_nonce));
	st->step = AUTH_CLI_INIT;
	return 0;
fail:
	auth_scram_client_cleanup(st);
	errno = EINVAL;
	return -1;
}

int
auth_scram_client_set_nonce(struct auth_scram_client *st, const char *nonce)
{
	size_t n = strlen(nonce);

	if (st->step != AUTH_CLI_INIT || n >= sizeof(st->client_nonce) ||
	    !auth_scram_nonce_valid(nonce, n)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(st->client_nonce, nonce, n + 1);
	return 0;
}

int
auth_scram_client_first(struct auth_scram_client *st, char *out, size_t out_cap, size_t *out_len)
{
	int n;

	*out_len = 0;
	if (st->step != AUTH_CLI_INIT) {
		errno = EINVAL;
		return -1;
	}
	/* no username: PostgreSQL uses the one from the startup packet */
	n = snprintf(st->client_first_bare, sizeof(st->client_first_bare), "n=,r=%s",
		     st->client_nonce);
	if (n < 0 || (size_t)n >= sizeof(st->client_first_bare))
		goto fail;
	n = snprintf(out, out_cap, "n,,%s", st->client_first_bare);
	if (n < 0 || (size_t)n >= out_cap)
		goto fail;
	*out_len = (size_t)n;
	st->step = AUTH_CLI_FIRST;
	return 0;
fail:
	st->step = AUTH_CLI_FAILED;
	errno = ENOSPC;
	return -1;
}

int
auth_scram_client_final(struct auth_scram_client *st, const uint8_t *in, size_t in_len, char *out,
			size_t out_cap, size_t *out_len, char *err, size_t err_len)
{
	char msg[AUTH_SCRAM_MSG_MAX];
	char final[AUTH_SCRAM_MSG_MAX];
	char auth_msg[AUTH_SCRAM_AUTHMSG_MAX];
	char proof64[AUTH_KEY_LEN * 2];
	uint8_t salt[AUTH_SALT_MAX];
	uint8_t client_key[AUTH_KEY_LEN];
	uint8_t stored[AUTH_KEY_LEN];
	uint8_t server_key[AUTH_KEY_LEN];
	uint8_t sig[AUTH_KEY_LEN];
	const char *p, *nonce, *val;
	size_t nonce_len, n, salt_len = 0, cn_len;
	uint32_t iterations = 0;
	int final_len, am_len, len, rc = -1;

	*out_len = 0;
	if (st->step != AUTH_CLI_FIRST) {
		snprintf(err, err_len, "unexpected SCRAM server-first-message");
		goto fail;
	}
	if (auth_scram_copy_msg(msg, in, in_len, err, err_len) < 0)
		goto fail;

	/* server-first-message: [reserved-mext ","] nonce "," salt "," iteration-count ["," ext] */
	p = msg;
	if (p[0] == 'm' && p[1] == '=') {
		snprintf(err, err_len, "SCRAM mandatory extension is not supported");
		goto fail;
	}
	if (auth_scram_attr(&p, 'r', &nonce, &nonce_len) < 0 || *p != ',' ||
	    !auth_scram_nonce_valid(nonce, nonce_len)) {
		snprintf(err, err_len, "malformed SCRAM server-first-message: expected nonce");
		goto fail;
	}
	cn_len = strlen(st->client_nonce);
	if (nonce_len <= cn_len || memcmp(nonce, st->client_nonce, cn_len) != 0) {
		snprintf(err, err_len, "SCRAM server nonce does not extend the client nonce");
		goto fail;
	}
	p++;
	if (auth_scram_attr(&p, 's', &val, &n) < 0 || *p != ',' ||
	    secret_b64_decode(salt, sizeof(salt), &salt_len, val, n) < 0 || salt_len == 0) {
		snprintf(err, err_len, "malformed SCRAM server-first-message: bad salt");
		goto fail;
	}
	p++;
	if (auth_scram_attr(&p, 'i', &val, &n) < 0 ||
	    auth_parse_iterations(val, val + n, &iterations) < 0) {
		snprintf(err, err_len, "malformed SCRAM server-first-message: bad iteration count");
		goto fail;
	}
	if (auth_scram_skip_extensions(&p, NULL) < 0 || *p != '\0') {
		snprintf(err, err_len, "malformed SCRAM server-first-message: bad attribute");
		goto fail;
	}

	/*
	 * With a password, PBKDF2 runs with the server's iteration count on
	 * the caller's thread, so a huge count stalls it. There is no cap, as in
	 * libpq: the servers are configured by the operator.
	 */
	if (st->keys != NULL) {
		/* the captured ClientKey only works with the verifier it was proved against */
		if (salt_len != st->keys->salt_len || memcmp(salt, st->keys->salt, salt_len) != 0 ||
		    iterations != st->keys->iterations) {
			snprintf(
				err, err_len,
				"server's SCRAM salt or iteration count differs from the verifier in users.ini");
			goto fail;
		}
		memcpy(client_key, st->client_key, AUTH_KEY_LEN);
		memcpy(stored, st->keys->stored_key, AUTH_KEY_LEN);
		memcpy(server_key, st->keys->server_key, AUTH_KEY_LEN);
	} else if (auth_scram_derive(st->password, salt, salt_len, iterations, client_key, stored,
				     server_key) < 0) {
		goto crypto_fail;
	}

	/* we never use channel binding: c= is base64("n,,") */
	final_len = snprintf(final, sizeof(final), "c=biws,r=%.*s", (int)nonce_len, nonce);
	if (final_len < 0 || (size_t)final_len >= sizeof(final)) {
		snprintf(err, err_len, "SCRAM client-final-message does not fit");
		goto fail;
	}
	am_len = auth_scram_auth_message(auth_msg, sizeof(auth_msg), st->client_first_bare, msg,
					 final, (size_t)final_len);
	if (am_len < 0) {
		snprintf(err, err_len, "SCRAM messages too long");
		goto fail;
	}
	if (auth_hmac(stored, auth_msg, (size_t)am_len, sig) < 0)
		goto crypto_fail;
	for (n = 0; n < AUTH_KEY_LEN; n++)
		sig[n] ^= client_key[n];
	secret_b64_encode(proof64, sizeof(proof64), sig, AUTH_KEY_LEN);
	if (auth_hmac(server_key, auth_msg, (size_t)am_len, st->server_signature) < 0)
		goto crypto_fail;
	len = snprintf(out, out_cap, "%s,p=%s", final, proof64);
	if (len < 0 || (size_t)len >= out_cap) {
		snprintf(err, err_len, "SCRAM client-final-message does not fit");
		goto fail;
	}
	*out_len = (size_t)len;
	st->step = AUTH_CLI_FINAL;
	rc = 0;
	goto out;
crypto_fail:
	snprintf(err, err_len, "SCRAM: digest computation failed");
fail:
	st->step = AUTH_CLI_FAILED;
	errno = EINVAL;
	rc = -1;
out:
	secret_wipe(msg, sizeof(msg));
	secret_wipe(auth_msg, sizeof(auth_msg));
	secret_wipe(proof64, sizeof(proof64));
	secret_wipe(client_key, sizeof(client_key));
	secret_wipe(stored, sizeof(stored));
	secret_wipe(server_key, sizeof(server_key));
	secret_wipe(sig, sizeof(sig));
	return rc;
}

int
auth_scram_client_verify(struct auth_scram_client *st, const uint8_t *in, size_t in_len, char *err,
			 size_t err_len)
{
	char msg[AUTH_SCRAM_MSG_MAX];
	uint8_t sig[AUTH_KEY_LEN];
	const char *p, *val;
	size_t n, sig_len = 0, i;
	int rc = -1;

	if (st->step != AUTH_CLI_FINAL) {
		snprintf(err, err_len, "unexpected SCRAM server-final-message");
		goto out;
	}
	if (auth_scram_copy_msg(msg, in, in_len, err, err_len) < 0)
		goto out;
	p = msg;
	if (auth_scram_attr(&p, 'e', &val, &n) == 0) {
		/* server-error: keep only printable characters of its reason */
		char reason[64];

		for (i = 0; i < n && i < sizeof(reason) - 1; i++)
			reason[i] = (val[i] >= 0x20 && val[i] <= 0x7e) ? val[i] : '?';
		reason[i] = '\0';
		snprintf(err, err_len, "SCRAM server error: %s", reason);
		goto out;
	}
	if (auth_scram_attr(&p, 'v', &val, &n) < 0 || auth_scram_skip_extensions(&p, NULL) < 0 ||
	    *p != '\0') {
		snprintf(err, err_len, "malformed SCRAM server-final-message");
		goto out;
	}
	if (secret_b64_decode(sig, sizeof(sig), &sig_len, val, n) < 0 || sig_len != AUTH_KEY_LEN) {
		snprintf(err, err_len, "malformed SCRAM server signature");
		goto out;
	}
	if (!secret_equal(sig, st->server_signature, AUTH_KEY_LEN)) {
		snprintf(err, err_len,
			 "SCRAM server signature is wrong: the server does not know the password");
		goto out;
	}
	rc = 0;
out:
	st->step = rc == 0 ? AUTH_CLI_DONE : AUTH_CLI_FAILED;
	secret_wipe(sig, sizeof(sig));
	if (rc < 0)
		errno = EINVAL;
	return rc;
}

void
auth_scram_client_cleanup(struct auth_scram_client *st)
{
	if (st == NULL)
		return;
	secret_wipe(st, sizeof(*st));
}
