/*
 * auth.h: password secrets, SCRAM-SHA-256 (RFC 5802/7677, as PostgreSQL
 * speaks it: no channel binding, empty authzid) on both sides, MD5.
 * Runs in: both processes. Pure functions over bytes; OpenSSL for digests
 * (PBKDF2, HMAC-SHA-256, SHA-256, MD5); libsodium via shared/secret.h.
 * Secrets are wiped by auth_*_cleanup(); nothing here logs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/compiler.h"

#define AUTH_KEY_LEN          32 /* SHA-256 output */
#define AUTH_SALT_MAX         64
#define AUTH_NONCE_MAX        128
#define AUTH_MD5_LEN          35 /* "md5" + 32 hex digits, without NUL */
#define AUTH_SCRAM_ITERATIONS 4096
#define AUTH_SCRAM_MSG_MAX    1024 /* longest SCRAM message we build or accept */
#define AUTH_PASSWORD_MAX     1024

enum auth_secret_kind {
	AUTH_SECRET_NONE = 0, /* no password configured */
	AUTH_SECRET_PLAIN,    /* cleartext password */
	AUTH_SECRET_MD5,      /* "md5" + md5hex(password || user) */
	AUTH_SECRET_SCRAM,    /* SCRAM-SHA-256$iter:salt$StoredKey:ServerKey */
};

/* A stored password in any of its forms. Embedded in the configuration. */
struct auth_secret {
	enum auth_secret_kind kind;
	char plain[AUTH_PASSWORD_MAX + 1]; /* AUTH_SECRET_PLAIN */
	char md5[AUTH_MD5_LEN + 1];        /* AUTH_SECRET_MD5: "md5..." lower-case hex */
	/* AUTH_SECRET_SCRAM (and derived for PLAIN on demand) */
	uint32_t iterations;
	uint8_t salt[AUTH_SALT_MAX];
	size_t salt_len;
	uint8_t stored_key[AUTH_KEY_LEN];
	uint8_t server_key[AUTH_KEY_LEN];
};

/*
 * Recognise a password field from users.ini: a SCRAM verifier, an md5 hash
 * ("md5" + 32 hex digits), otherwise cleartext. "" gives AUTH_SECRET_NONE.
 * -1 with a reason in err when the string looks like a verifier but is malformed.
 */
int auth_secret_parse(const char *field, struct auth_secret *out, char *err, size_t err_len)
	MUST_CHECK;
void auth_secret_cleanup(struct auth_secret *s); /* wipes */

/*
 * Build a SCRAM-SHA-256 verifier for `pgdog hash`: random 16-byte salt.
 * Writes "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>". -1 on failure.
 */
int auth_scram_verifier(const char *password, uint32_t iterations, char *out, size_t out_len)
	MUST_CHECK;

/* ---- MD5 (PostgreSQL's "md5" method) ------------------------------------ */
/* out = "md5" + md5hex(password || user), NUL-terminated (AUTH_MD5_LEN + 1 bytes). */
void auth_md5_hash(const char *password, const char *user, char out[AUTH_MD5_LEN + 1]);
/* out = "md5" + md5hex(md5hash[3..] || salt): what a client sends. */
void auth_md5_response(const char md5hash[AUTH_MD5_LEN + 1], const uint8_t salt[4],
		       char out[AUTH_MD5_LEN + 1]);
/* Check a client's md5 response against a PLAIN or MD5 secret (constant time). */
bool auth_md5_verify(const struct auth_secret *s, const char *user, const uint8_t salt[4],
		     const char *response);
/* Check a cleartext password against any secret kind (constant time). */
bool auth_plain_verify(const struct auth_secret *s, const char *user, const char *password);

/* ---- SCRAM, pgdog as the server (verifying a client) -------------------- */
struct auth_scram_server {
	/* private: */
	int step;
	struct auth_secret sec; /* copy; SCRAM keys derived when PLAIN */
	char client_first_bare[AUTH_SCRAM_MSG_MAX];
	char server_first[AUTH_SCRAM_MSG_MAX];
	char nonce[AUTH_NONCE_MAX * 2 + 1]; /* client nonce + server nonce */
	uint8_t client_key[AUTH_KEY_LEN];
	bool has_client_key;
};

/*
 * Start an exchange for a PLAIN or SCRAM secret (-1 for other kinds: the
 * caller must then use another method or fail the login).
 */
int auth_scram_server_init(struct auth_scram_server *st, const struct auth_secret *s) MUST_CHECK;
/* auth_scram_server_first()'s error for an authorization identity (PostgreSQL's 0A000 text) */
#define AUTH_SCRAM_ERR_AUTHZID "client uses authorization identity, but it is not supported"

/*
 * Take the client-first-message (SASLInitialResponse data) and write the
 * server-first-message to out (*out_len set). -1 on malformed input, with
 * a reason in err.
 */
int auth_scram_server_first(struct auth_scram_server *st, const uint8_t *in, size_t in_len,
			    char *out, size_t out_cap, size_t *out_len, char *err, size_t err_len)
	MUST_CHECK;
/*
 * Take the client-final-message. Returns 1 when the proof is valid (out holds
 * the server-final-message "v=..."), 0 when the proof is wrong (password
 * authentication failed), -1 on malformed input (err says why).
 * On success the client's ClientKey is kept (auth_scram_server_client_key).
 */
int auth_scram_server_final(struct auth_scram_server *st, const uint8_t *in, size_t in_len,
			    char *out, size_t out_cap, size_t *out_len, char *err, size_t err_len)
	MUST_CHECK;
/* After a successful exchange: the ClientKey the client proved (32 bytes). */
const uint8_t *auth_scram_server_client_key(const struct auth_scram_server *st);
void auth_scram_server_cleanup(struct auth_scram_server *st); /* wipes */
/*
 * For tests and fuzzers only: replace the random server nonce part (printable
 * ASCII except ',', at most AUTH_NONCE_MAX chars). Call between
 * auth_scram_server_init() and auth_scram_server_first(); -1 otherwise.
 */
int auth_scram_server_set_nonce(struct auth_scram_server *st, const char *nonce) MUST_CHECK;

/* ---- SCRAM, pgdog as the client (logging in to PostgreSQL) -------------- */
/*
 * Credentials: a cleartext password, or the keys of a verifier plus a
 * ClientKey captured from a client that logged in to pgdog with the same
 * verifier (then the server's salt and iteration count must match it).
 */
struct auth_scram_client {
	/* private: */
	int step;
	const char *password;             /* borrowed, or NULL */
	const struct auth_secret *keys;   /* borrowed, or NULL */
	uint8_t client_key[AUTH_KEY_LEN]; /* with keys */
	char client_first_bare[AUTH_SCRAM_MSG_MAX];
	char client_nonce[64];
	uint8_t server_signature[AUTH_KEY_LEN];
};

/* Exactly one of password and (keys, client_key) is non-NULL. */
int auth_scram_client_init(struct auth_scram_client *st, const char *password,
			   const struct auth_secret *keys, const uint8_t *client_key) MUST_CHECK;
/* client-first-message ("n,,n=,r=<nonce>") for SASLInitialResponse. */
int auth_scram_client_first(struct auth_scram_client *st, char *out, size_t out_cap,
			    size_t *out_len) MUST_CHECK;
/* Take server-first (SASLContinue data), write client-final. -1 + err on bad input. */
int auth_scram_client_final(struct auth_scram_client *st, const uint8_t *in, size_t in_len,
			    char *out, size_t out_cap, size_t *out_len, char *err, size_t err_len)
	MUST_CHECK;
/* Check server-final (SASLFinal data): 0 if the server proved itself, -1 otherwise. */
int auth_scram_client_verify(struct auth_scram_client *st, const uint8_t *in, size_t in_len,
			     char *err, size_t err_len) MUST_CHECK;
void auth_scram_client_cleanup(struct auth_scram_client *st); /* wipes */
/*
 * For tests and fuzzers only: replace the random client nonce (printable
 * ASCII except ',', fewer than 64 chars). Call between
 * auth_scram_client_init() and auth_scram_client_first(); -1 otherwise.
 */
int auth_scram_client_set_nonce(struct auth_scram_client *st, const char *nonce) MUST_CHECK;
