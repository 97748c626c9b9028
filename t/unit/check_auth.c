/*
 * check_auth.c: unit tests for shared/auth.c and shared/secret.c: secrets,
 * MD5, SCRAM-SHA-256 on both sides (RFC 7677 vector, round trips, malformed
 * messages at every truncation point) and base64.
 * Runs in: the test process only. No network.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "shared/auth.h"
#include "shared/secret.h"

/* RFC 7677 section 3 */
#define RFC_PASSWORD       "pencil"
#define RFC_CLIENT_NONCE   "rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_NONCE   "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SALT           "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CLIENT_FIRST   "n,,n=user,r=" RFC_CLIENT_NONCE
#define RFC_SERVER_FIRST   "r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",s=" RFC_SALT ",i=4096"
#define RFC_FINAL_NO_PROOF "c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE
#define RFC_PROOF          "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_CLIENT_FINAL   RFC_FINAL_NO_PROOF ",p=" RFC_PROOF
#define RFC_SERVER_FINAL   "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
/* the same credentials as a verifier (computed with python3 hashlib/hmac) */
#define RFC_VERIFIER                   \
	"SCRAM-SHA-256$4096:" RFC_SALT \
	"$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

/*
 * Password "secret", salt bytes 1..16, 4096 iterations, computed with
 * python3: hashlib.pbkdf2_hmac('sha256', ...), hmac.new(...).
 */
#define SECRET_VERIFIER \
	"SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$8rrDg00OqaiWXJ7p+sCgHEIaBSHY89ZJl3mfIsf32oY=:05L1f+yZbiN8O0AnO40Og85NNRhvzTS57naKRWCcsIA="
#define SECRET_CLIENT_KEY "nxJTleh4ooJ/KkPDiSFiQGlSkwwA7cS1TAoPPuelkd8="

#define BUF_LEN 2048

static void
parse_ok(const char *field, struct auth_secret *s)
{
	char err[256] = "";

	ck_assert_msg(auth_secret_parse(field, s, err, sizeof(err)) == 0, "%s: %s", field, err);
}

/* Run a client-first through a fresh server for secret field `verifier`. */
static int
server_first(struct auth_scram_server *st, const char *verifier, const char *msg, size_t len,
	     char *out, size_t *out_len)
{
	struct auth_secret s;
	char err[256];
	int rc;

	parse_ok(verifier, &s);
	ck_assert_int_eq(auth_scram_server_init(st, &s), 0);
	auth_secret_cleanup(&s);
	ck_assert_int_eq(auth_scram_server_set_nonce(st, RFC_SERVER_NONCE), 0);
	rc = auth_scram_server_first(st, (const uint8_t *)msg, len, out, BUF_LEN, out_len, err,
				     sizeof(err));
	if (rc < 0)
		ck_assert_msg(err[0] != '\0', "no reason for rejecting '%.*s'", (int)len, msg);
	return rc;
}

/* ---- secrets -------------------------------------------------------------- */

START_TEST(test_auth_secret_parse_kinds)
{
	struct auth_secret s;
	char err[256];

	parse_ok("", &s);
	ck_assert_int_eq(s.kind, AUTH_SECRET_NONE);
	parse_ok("hunter2", &s);
	ck_assert_int_eq(s.kind, AUTH_SECRET_PLAIN);
	ck_assert_str_eq(s.plain, "hunter2");
	parse_ok("md596948AAD3FCAE80C08A35C9B5958CD89", &s);
	ck_assert_int_eq(s.kind, AUTH_SECRET_MD5);
	ck_assert_str_eq(s.md5, "md596948aad3fcae80c08a35c9b5958cd89");
	/* not 32 hex digits: cleartext */
	parse_ok("md596948aad3fcae80c08a35c9b5958cd8", &s);
	ck_assert_int_eq(s.kind, AUTH_SECRET_PLAIN);
	parse_ok("md596948aad3fcae80c08a35c9b5958cd8g", &s);
	ck_assert_int_eq(s.kind, AUTH_SECRET_PLAIN);
	parse_ok(SECRET_VERIFIER, &s);
	ck_assert_int_eq(s.kind, AUTH_SECRET_SCRAM);
	ck_assert_uint_eq(s.iterations, 4096);
	ck_assert_uint_eq(s.salt_len, 16);
	ck_assert_uint_eq(s.salt[0], 1);
	ck_assert_uint_eq(s.salt[15], 16);
	auth_secret_cleanup(&s);
	ck_assert_int_eq(s.kind, AUTH_SECRET_NONE);
	ck_assert_uint_eq(s.stored_key[0], 0);
	(void)err;
}
END_TEST

static const char *const bad_verifiers[] = {
	"SCRAM-SHA-256$",
	"SCRAM-SHA-256$4096",
	"SCRAM-SHA-256$0:AQIDBAUGBwgJCgsMDQ4PEA==$8rrDg00OqaiWXJ7p+sCgHEIaBSHY89ZJl3mfIsf32oY=:05L1f+yZbiN8O0AnO40Og85NNRhvzTS57naKRWCcsIA=",
	"SCRAM-SHA-256$99999999999:AQIDBAUGBwgJCgsMDQ4PEA==$8rrDg00OqaiWXJ7p+sCgHEIaBSHY89ZJl3mfIsf32oY=:05L1f+yZbiN8O0AnO40Og85NNRhvzTS57naKRWCcsIA=",
	"SCRAM-SHA-256$40x6:AQIDBAUGBwgJCgsMDQ4PEA==$8rrDg00OqaiWXJ7p+sCgHEIaBSHY89ZJl3mfIsf32oY=:05L1f+yZbiN8O0AnO40Og85NNRhvzTS57naKRWCcsIA=",
	"SCRAM-SHA-256$4096:$8rrDg00OqaiWXJ7p+sCgHEIaBSHY89ZJl3mfIsf32oY=:05L1f+yZbiN8O0AnO40Og85NNRhvzTS57naKRWCcsIA=",
	"SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA$8rrDg00OqaiWXJ7p+sCgHEIaBSHY89ZJl3mfIsf32oY=:05L1f+yZbiN8O0AnO40Og85NNRhvzTS57naKRWCcsIA=",
	"SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$8rrDg00OqaiWXJ7p+sCgHEIaBSHY89ZJl3mfIsf32o=:05L1f+yZbiN8O0AnO40Og85NNRhvzTS57naKRWCcsIA=",
	"SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$8rrDg00OqaiWXJ7p+sCgHEIaBSHY89ZJl3mfIsf32oY=",
	"SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$8rrDg00OqaiWXJ7p+sCgHEIaBSHY89ZJl3mfIsf32oY=:05L1f+yZbiN8O0AnO40Og85NNRhvzTS57naKRWCcsIA=x",
	"SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$8rrDg00OqaiWXJ7p+sCgHEIaBSHY89ZJl3mfIsf32oY=:05L1f+yZbiN8O0AnO40Og85NNRhvzTS57naKRWCcsIA=:",
};

START_TEST(test_auth_secret_parse_bad_verifier)
{
	struct auth_secret s;
	char err[256] = "";

	ck_assert_int_eq(auth_secret_parse(bad_verifiers[_i], &s, err, sizeof(err)), -1);
	ck_assert_msg(err[0] != '\0', "no reason for %s", bad_verifiers[_i]);
}
END_TEST

START_TEST(test_auth_secret_parse_too_long)
{
	char field[AUTH_PASSWORD_MAX + 2];
	struct auth_secret s;
	char err[256] = "";

	memset(field, 'x', sizeof(field) - 1);
	field[sizeof(field) - 1] = '\0';
	ck_assert_int_eq(auth_secret_parse(field, &s, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "longer"));
	field[AUTH_PASSWORD_MAX] = '\0';
	ck_assert_int_eq(auth_secret_parse(field, &s, err, sizeof(err)), 0);
	ck_assert_int_eq(s.kind, AUTH_SECRET_PLAIN);
	ck_assert_uint_eq(strlen(s.plain), AUTH_PASSWORD_MAX);
}
END_TEST

START_TEST(test_auth_scram_verifier_format)
{
	char out[256], again[256];
	struct auth_secret s;

	ck_assert_int_eq(auth_scram_verifier("secret", 4096, out, sizeof(out)), 0);
	ck_assert_str_eq(strstr(out, "SCRAM-SHA-256$4096:"), out);
	parse_ok(out, &s);
	ck_assert_int_eq(s.kind, AUTH_SECRET_SCRAM);
	ck_assert_uint_eq(s.salt_len, 16);
	ck_assert(auth_plain_verify(&s, "u", "secret"));
	ck_assert(!auth_plain_verify(&s, "u", "Secret"));
	/* salts are random */
	ck_assert_int_eq(auth_scram_verifier("secret", 4096, again, sizeof(again)), 0);
	ck_assert_str_ne(out, again);
	/* output too small, zero iterations */
	ck_assert_int_eq(auth_scram_verifier("secret", 4096, out, 40), -1);
	ck_assert_int_eq(auth_scram_verifier("secret", 0, out, sizeof(out)), -1);
	auth_secret_cleanup(&s);
}
END_TEST

START_TEST(test_auth_plain_verify_kinds)
{
	struct auth_secret s;

	parse_ok("secret", &s);
	ck_assert(auth_plain_verify(&s, "u", "secret"));
	ck_assert(!auth_plain_verify(&s, "u", "secret2"));
	ck_assert(!auth_plain_verify(&s, "u", ""));
	parse_ok("md596948aad3fcae80c08a35c9b5958cd89", &s); /* password "bar", user "foo" */
	ck_assert(auth_plain_verify(&s, "foo", "bar"));
	ck_assert(!auth_plain_verify(&s, "fo", "obar"));
	ck_assert(!auth_plain_verify(&s, "foo", "baz"));
	parse_ok(SECRET_VERIFIER, &s);
	ck_assert(auth_plain_verify(&s, "anyone", "secret"));
	ck_assert(!auth_plain_verify(&s, "anyone", "secreT"));
	parse_ok("", &s);
	ck_assert(!auth_plain_verify(&s, "u", ""));
	auth_secret_cleanup(&s);
}
END_TEST

/* ---- MD5 ------------------------------------------------------------------ */

START_TEST(test_auth_md5_hash_vectors)
{
	char out[AUTH_MD5_LEN + 1];

	/* what PostgreSQL stores for user "foo" with password "bar": md5("barfoo") */
	auth_md5_hash("bar", "foo", out);
	ck_assert_str_eq(out, "md596948aad3fcae80c08a35c9b5958cd89");
	/* password "foo", user "bar": md5("foobar") */
	auth_md5_hash("foo", "bar", out);
	ck_assert_str_eq(out, "md53858f62230ac3c915f300c664312c63f");
}
END_TEST

START_TEST(test_auth_md5_response_vectors)
{
	static const uint8_t salt1[4] = { 1, 2, 3, 4 };
	static const uint8_t salt2[4] = { 0xde, 0xad, 0xbe, 0xef };
	char hash[AUTH_MD5_LEN + 1], out[AUTH_MD5_LEN + 1];

	/* python3: "md5" + md5(hash[3:].encode() + salt).hexdigest() */
	auth_md5_response("md53858f62230ac3c915f300c664312c63f", salt1, out);
	ck_assert_str_eq(out, "md56e4f0b50f7277feb74acbf2a7734c9cb");
	auth_md5_hash("s3cret", "alice", hash);
	ck_assert_str_eq(hash, "md58213e4d0d5792b064442db7988e9f4c4");
	auth_md5_response(hash, salt2, out);
	ck_assert_str_eq(out, "md54e41fed304c9edbcc8ad39fb2202bd93");
}
END_TEST

START_TEST(test_auth_md5_verify_kinds)
{
	static const uint8_t salt[4] = { 0xde, 0xad, 0xbe, 0xef };
	const char *good = "md54e41fed304c9edbcc8ad39fb2202bd93";
	struct auth_secret s;

	parse_ok("s3cret", &s);
	ck_assert(auth_md5_verify(&s, "alice", salt, good));
	ck_assert(!auth_md5_verify(&s, "bob", salt, good));
	ck_assert(!auth_md5_verify(&s, "alice", salt, "md54e41fed304c9edbcc8ad39fb2202bd9"));
	ck_assert(!auth_md5_verify(&s, "alice", salt, "md54e41fed304c9edbcc8ad39fb2202bd933"));
	ck_assert(!auth_md5_verify(&s, "alice", salt, ""));
	parse_ok("md58213e4d0d5792b064442db7988e9f4c4", &s);
	ck_assert(auth_md5_verify(&s, "alice", salt, good));
	ck_assert(!auth_md5_verify(&s, "alice", salt, "md54e41fed304c9edbcc8ad39fb2202bd94"));
	parse_ok(SECRET_VERIFIER, &s);
	ck_assert(!auth_md5_verify(&s, "alice", salt, good));
	parse_ok("", &s);
	ck_assert(!auth_md5_verify(&s, "alice", salt, good));
	auth_secret_cleanup(&s);
}
END_TEST

/* ---- SCRAM ---------------------------------------------------------------- */

/* pgdog as the client reproduces RFC 7677's messages */
START_TEST(test_auth_scram_rfc7677_client)
{
	struct auth_scram_client c;
	char out[BUF_LEN], err[256] = "";
	size_t n;

	ck_assert_int_eq(auth_scram_client_init(&c, RFC_PASSWORD, NULL, NULL), 0);
	ck_assert_int_eq(auth_scram_client_set_nonce(&c, RFC_CLIENT_NONCE), 0);
	ck_assert_int_eq(auth_scram_client_first(&c, out, sizeof(out), &n), 0);
	/* PostgreSQL style: empty user name */
	ck_assert_str_eq(out, "n,,n=,r=" RFC_CLIENT_NONCE);
	ck_assert_uint_eq(n, strlen(out));
	/* the RFC's AuthMessage contains "n=user": use it to reproduce the vector */
	snprintf(c.client_first_bare, sizeof(c.client_first_bare), "n=user,r=%s", RFC_CLIENT_NONCE);
	ck_assert_msg(auth_scram_client_final(&c, (const uint8_t *)RFC_SERVER_FIRST,
					      strlen(RFC_SERVER_FIRST), out, sizeof(out), &n, err,
					      sizeof(err)) == 0,
		      "%s", err);
	ck_assert_str_eq(out, RFC_CLIENT_FINAL);
	ck_assert_msg(auth_scram_client_verify(&c, (const uint8_t *)RFC_SERVER_FINAL,
					       strlen(RFC_SERVER_FINAL), err, sizeof(err)) == 0,
		      "%s", err);
	auth_scram_client_cleanup(&c);
}
END_TEST

/* pgdog as the server accepts RFC 7677's client and answers with its signature */
START_TEST(test_auth_scram_rfc7677_server)
{
	struct auth_scram_server st;
	char out[BUF_LEN], err[256] = "";
	size_t n;

	ck_assert_int_eq(server_first(&st, RFC_VERIFIER, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
				      out, &n),
			 0);
	ck_assert_str_eq(out, RFC_SERVER_FIRST);
	ck_assert_uint_eq(n, strlen(RFC_SERVER_FIRST));
	ck_assert_ptr_null(auth_scram_server_client_key(&st));
	ck_assert_msg(auth_scram_server_final(&st, (const uint8_t *)RFC_CLIENT_FINAL,
					      strlen(RFC_CLIENT_FINAL), out, sizeof(out), &n, err,
					      sizeof(err)) == 1,
		      "%s", err);
	ck_assert_str_eq(out, RFC_SERVER_FINAL);
	ck_assert_ptr_nonnull(auth_scram_server_client_key(&st));
	/* no second final */
	ck_assert_int_eq(auth_scram_server_final(&st, (const uint8_t *)RFC_CLIENT_FINAL,
						 strlen(RFC_CLIENT_FINAL), out, sizeof(out), &n,
						 err, sizeof(err)),
			 -1);
	auth_scram_server_cleanup(&st);
}
END_TEST

/*
 * Run a whole exchange between a client and a server initialised from
 * server_secret. Returns server_final's result; *verified says whether the
 * client then accepted the server's signature. If captured is non-NULL it
 * receives the ClientKey the server saw.
 */
static int
round_trip(struct auth_scram_client *c, const struct auth_secret *server_secret, bool *verified,
	   uint8_t *captured)
{
	struct auth_scram_server st;
	char a[BUF_LEN], b[BUF_LEN], err[256] = "";
	size_t an, bn;
	int rc;

	*verified = false;
	ck_assert_int_eq(auth_scram_server_init(&st, server_secret), 0);
	ck_assert_int_eq(auth_scram_client_first(c, a, sizeof(a), &an), 0);
	ck_assert_msg(auth_scram_server_first(&st, (const uint8_t *)a, an, b, sizeof(b), &bn, err,
					      sizeof(err)) == 0,
		      "%s", err);
	ck_assert_msg(auth_scram_client_final(c, (const uint8_t *)b, bn, a, sizeof(a), &an, err,
					      sizeof(err)) == 0,
		      "%s", err);
	rc = auth_scram_server_final(&st, (const uint8_t *)a, an, b, sizeof(b), &bn, err,
				     sizeof(err));
	if (rc == 1) {
		*verified =
			auth_scram_client_verify(c, (const uint8_t *)b, bn, err, sizeof(err)) == 0;
		if (captured != NULL)
			memcpy(captured, auth_scram_server_client_key(&st), AUTH_KEY_LEN);
	} else {
		ck_assert_ptr_null(auth_scram_server_client_key(&st));
	}
	auth_scram_server_cleanup(&st);
	return rc;
}

START_TEST(test_auth_scram_round_trip_password)
{
	struct auth_scram_client c;
	struct auth_secret s;
	char verifier[256];
	uint8_t ck[AUTH_KEY_LEN];
	bool ok;

	ck_assert_int_eq(auth_scram_verifier("correct horse", 4096, verifier, sizeof(verifier)), 0);
	parse_ok(verifier, &s);
	ck_assert_int_eq(auth_scram_client_init(&c, "correct horse", NULL, NULL), 0);
	ck_assert_int_eq(round_trip(&c, &s, &ok, ck), 1);
	ck_assert(ok);
	auth_scram_client_cleanup(&c);

	/* the captured ClientKey logs in against the same verifier */
	ck_assert_int_eq(auth_scram_client_init(&c, NULL, &s, ck), 0);
	ck_assert_int_eq(round_trip(&c, &s, &ok, NULL), 1);
	ck_assert(ok);
	auth_scram_client_cleanup(&c);
	auth_secret_cleanup(&s);
}
END_TEST

/* the ClientKey of the fixed python3 verifier is what the server captures */
START_TEST(test_auth_scram_round_trip_fixed_verifier)
{
	struct auth_scram_client c;
	struct auth_secret s;
	uint8_t ck[AUTH_KEY_LEN], expect[AUTH_KEY_LEN];
	size_t n;
	bool ok;

	parse_ok(SECRET_VERIFIER, &s);
	ck_assert_int_eq(secret_b64_decode(expect, sizeof(expect), &n, SECRET_CLIENT_KEY,
					   strlen(SECRET_CLIENT_KEY)),
			 0);
	ck_assert_uint_eq(n, AUTH_KEY_LEN);
	ck_assert_int_eq(auth_scram_client_init(&c, "secret", NULL, NULL), 0);
	ck_assert_int_eq(round_trip(&c, &s, &ok, ck), 1);
	ck_assert(ok);
	ck_assert_mem_eq(ck, expect, AUTH_KEY_LEN);
	auth_scram_client_cleanup(&c);
	ck_assert_int_eq(auth_scram_client_init(&c, NULL, &s, expect), 0);
	ck_assert_int_eq(round_trip(&c, &s, &ok, NULL), 1);
	ck_assert(ok);
	auth_scram_client_cleanup(&c);
	auth_secret_cleanup(&s);
}
END_TEST

/* a PLAIN secret gets a one-off verifier; the exchange works the same */
START_TEST(test_auth_scram_round_trip_plain_secret)
{
	struct auth_scram_client c;
	struct auth_secret s;
	bool ok;

	parse_ok("open sesame", &s);
	ck_assert_int_eq(auth_scram_client_init(&c, "open sesame", NULL, NULL), 0);
	ck_assert_int_eq(round_trip(&c, &s, &ok, NULL), 1);
	ck_assert(ok);
	auth_scram_client_cleanup(&c);
	ck_assert_int_eq(auth_scram_client_init(&c, "open sesame!", NULL, NULL), 0);
	ck_assert_int_eq(round_trip(&c, &s, &ok, NULL), 0);
	auth_scram_client_cleanup(&c);
	auth_secret_cleanup(&s);
}
END_TEST

START_TEST(test_auth_scram_wrong_password)
{
	struct auth_scram_client c;
	struct auth_secret s;
	bool ok;

	parse_ok(SECRET_VERIFIER, &s);
	ck_assert_int_eq(auth_scram_client_init(&c, "Secret", NULL, NULL), 0);
	ck_assert_int_eq(round_trip(&c, &s, &ok, NULL), 0);
	auth_scram_client_cleanup(&c);
	auth_secret_cleanup(&s);
}
END_TEST

START_TEST(test_auth_scram_init_kinds)
{
	struct auth_scram_server st;
	struct auth_scram_client c;
	struct auth_secret s;
	uint8_t key[AUTH_KEY_LEN] = { 0 };

	parse_ok("md596948aad3fcae80c08a35c9b5958cd89", &s);
	ck_assert_int_eq(auth_scram_server_init(&st, &s), -1);
	ck_assert_int_eq(auth_scram_client_init(&c, NULL, &s, key), -1);
	parse_ok("", &s);
	ck_assert_int_eq(auth_scram_server_init(&st, &s), -1);
	parse_ok(SECRET_VERIFIER, &s);
	ck_assert_int_eq(auth_scram_client_init(&c, NULL, NULL, NULL), -1);
	ck_assert_int_eq(auth_scram_client_init(&c, "pw", &s, key), -1);
	ck_assert_int_eq(auth_scram_client_init(&c, NULL, &s, NULL), -1);
	/* set_nonce only before the first message */
	ck_assert_int_eq(auth_scram_client_init(&c, "pw", NULL, NULL), 0);
	ck_assert_int_eq(auth_scram_client_set_nonce(&c, "a,b"), -1);
	ck_assert_int_eq(auth_scram_client_set_nonce(&c, ""), -1);
	auth_scram_client_cleanup(&c);
	auth_secret_cleanup(&s);
}
END_TEST

START_TEST(test_auth_scram_tampered_server_signature)
{
	struct auth_scram_server st;
	struct auth_scram_client c;
	struct auth_secret s;
	char a[BUF_LEN], b[BUF_LEN], err[256] = "";
	size_t an, bn;

	parse_ok(SECRET_VERIFIER, &s);
	ck_assert_int_eq(auth_scram_server_init(&st, &s), 0);
	ck_assert_int_eq(auth_scram_client_init(&c, "secret", NULL, NULL), 0);
	ck_assert_int_eq(auth_scram_client_first(&c, a, sizeof(a), &an), 0);
	ck_assert_int_eq(auth_scram_server_first(&st, (const uint8_t *)a, an, b, sizeof(b), &bn,
						 err, sizeof(err)),
			 0);
	ck_assert_int_eq(auth_scram_client_final(&c, (const uint8_t *)b, bn, a, sizeof(a), &an, err,
						 sizeof(err)),
			 0);
	ck_assert_int_eq(auth_scram_server_final(&st, (const uint8_t *)a, an, b, sizeof(b), &bn,
						 err, sizeof(err)),
			 1);
	/* flip a bit in the first base64 character of the signature */
	b[2] = b[2] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(auth_scram_client_verify(&c, (const uint8_t *)b, bn, err, sizeof(err)),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "signature"));
	auth_scram_client_cleanup(&c);
	auth_scram_server_cleanup(&st);
	auth_secret_cleanup(&s);
}
END_TEST

START_TEST(test_auth_scram_client_server_error)
{
	struct auth_scram_client c;
	char out[BUF_LEN], err[256] = "";
	size_t n;
	static const char e[] = "e=invalid-proof";

	ck_assert_int_eq(auth_scram_client_init(&c, RFC_PASSWORD, NULL, NULL), 0);
	ck_assert_int_eq(auth_scram_client_set_nonce(&c, RFC_CLIENT_NONCE), 0);
	ck_assert_int_eq(auth_scram_client_first(&c, out, sizeof(out), &n), 0);
	ck_assert_int_eq(auth_scram_client_final(&c, (const uint8_t *)RFC_SERVER_FIRST,
						 strlen(RFC_SERVER_FIRST), out, sizeof(out), &n,
						 err, sizeof(err)),
			 0);
	ck_assert_int_eq(
		auth_scram_client_verify(&c, (const uint8_t *)e, strlen(e), err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "invalid-proof"));
	auth_scram_client_cleanup(&c);
}
END_TEST

START_TEST(test_auth_scram_keys_salt_mismatch)
{
	struct auth_scram_client c;
	struct auth_secret s;
	char out[BUF_LEN], err[256] = "";
	uint8_t key[AUTH_KEY_LEN];
	size_t n;
	/* RFC 7677's server uses a different salt than SECRET_VERIFIER */
	static const char other_iter[] =
		"r=" RFC_CLIENT_NONCE "xyz,s=AQIDBAUGBwgJCgsMDQ4PEA==,i=4097";

	parse_ok(SECRET_VERIFIER, &s);
	memset(key, 7, sizeof(key));
	ck_assert_int_eq(auth_scram_client_init(&c, NULL, &s, key), 0);
	ck_assert_int_eq(auth_scram_client_set_nonce(&c, RFC_CLIENT_NONCE), 0);
	ck_assert_int_eq(auth_scram_client_first(&c, out, sizeof(out), &n), 0);
	ck_assert_int_eq(auth_scram_client_final(&c, (const uint8_t *)RFC_SERVER_FIRST,
						 strlen(RFC_SERVER_FIRST), out, sizeof(out), &n,
						 err, sizeof(err)),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "salt"));
	auth_scram_client_cleanup(&c);

	/* same salt, other iteration count */
	ck_assert_int_eq(auth_scram_client_init(&c, NULL, &s, key), 0);
	ck_assert_int_eq(auth_scram_client_set_nonce(&c, RFC_CLIENT_NONCE), 0);
	ck_assert_int_eq(auth_scram_client_first(&c, out, sizeof(out), &n), 0);
	err[0] = '\0';
	ck_assert_int_eq(auth_scram_client_final(&c, (const uint8_t *)other_iter,
						 strlen(other_iter), out, sizeof(out), &n, err,
						 sizeof(err)),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "iteration"));
	auth_scram_client_cleanup(&c);
	auth_secret_cleanup(&s);
}
END_TEST

/*
 * Every proper prefix of a valid client-first is rejected with a reason, up
 * to "r=" plus one nonce character: longer prefixes are valid messages with a
 * shorter nonce, whose client-final then fails the nonce check.
 */
START_TEST(test_auth_scram_client_first_truncated)
{
	struct auth_scram_server st;
	char out[BUF_LEN], err[256] = "";
	size_t n, min_valid = strlen("n,,n=user,r=") + 1;

	if ((size_t)_i < min_valid) {
		ck_assert_int_eq(
			server_first(&st, RFC_VERIFIER, RFC_CLIENT_FIRST, (size_t)_i, out, &n), -1);
		ck_assert_uint_eq(n, 0);
	} else {
		ck_assert_int_eq(
			server_first(&st, RFC_VERIFIER, RFC_CLIENT_FIRST, (size_t)_i, out, &n), 0);
		ck_assert_int_eq(auth_scram_server_final(&st, (const uint8_t *)RFC_CLIENT_FINAL,
							 strlen(RFC_CLIENT_FINAL), out, sizeof(out),
							 &n, err, sizeof(err)),
				 -1);
		ck_assert_ptr_nonnull(strstr(err, "nonce"));
	}
	auth_scram_server_cleanup(&st);
}
END_TEST

/* every proper prefix of a valid client-final is rejected with a reason */
START_TEST(test_auth_scram_client_final_truncated)
{
	struct auth_scram_server st;
	char out[BUF_LEN], err[256] = "";
	size_t n;

	ck_assert_int_eq(server_first(&st, RFC_VERIFIER, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
				      out, &n),
			 0);
	ck_assert_int_eq(auth_scram_server_final(&st, (const uint8_t *)RFC_CLIENT_FINAL, (size_t)_i,
						 out, sizeof(out), &n, err, sizeof(err)),
			 -1);
	ck_assert_msg(err[0] != '\0', "no reason at length %d", _i);
	auth_scram_server_cleanup(&st);
}
END_TEST

/* every proper prefix of a valid server-first is rejected by the client */
START_TEST(test_auth_scram_server_first_truncated)
{
	struct auth_scram_client c;
	char out[BUF_LEN], err[256] = "";
	size_t n;

	ck_assert_int_eq(auth_scram_client_init(&c, RFC_PASSWORD, NULL, NULL), 0);
	ck_assert_int_eq(auth_scram_client_set_nonce(&c, RFC_CLIENT_NONCE), 0);
	ck_assert_int_eq(auth_scram_client_first(&c, out, sizeof(out), &n), 0);
	/* a prefix ending inside the salt or the iteration count may still parse */
	if (auth_scram_client_final(&c, (const uint8_t *)RFC_SERVER_FIRST, (size_t)_i, out,
				    sizeof(out), &n, err, sizeof(err)) < 0)
		ck_assert_msg(err[0] != '\0', "no reason at length %d", _i);
	else
		ck_assert_int_ge(_i, (int)strlen(RFC_SERVER_FIRST) - 3);
	auth_scram_client_cleanup(&c);
}
END_TEST

static const char *const bad_client_firsts[] = {
	"p=tls-server-end-point,,n=,r=abc",
	"x,,n=,r=abc",
	"n,a=admin,n=,r=abc",
	"n,,m=ext,n=,r=abc",
	"n,,n=,r=",
	"n,,n=,r=ab c",
	"n,,n=,r=abc,",
	"n,,n=,r=abc,1=x",
	"n,,n=,r=abc,m=x",
	"n,,r=abc",
	"n,n=,r=abc",
	"nn,,n=,r=abc",
	"n,,n=,x=abc",
	"n,,n=,r=\x7f",
};

START_TEST(test_auth_scram_client_first_malformed)
{
	struct auth_scram_server st;
	char out[BUF_LEN];
	size_t n;
	const char *m = bad_client_firsts[_i];

	ck_assert_int_eq(server_first(&st, RFC_VERIFIER, m, strlen(m), out, &n), -1);
	auth_scram_server_cleanup(&st);
}
END_TEST

START_TEST(test_auth_scram_client_first_channel_binding_reason)
{
	struct auth_scram_server st;
	struct auth_secret s;
	char out[BUF_LEN], err[256] = "";
	size_t n;
	static const char m[] = "p=tls-server-end-point,,n=,r=abc";

	parse_ok(RFC_VERIFIER, &s);
	ck_assert_int_eq(auth_scram_server_init(&st, &s), 0);
	ck_assert_int_eq(auth_scram_server_first(&st, (const uint8_t *)m, strlen(m), out,
						 sizeof(out), &n, err, sizeof(err)),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "channel binding"));
	auth_scram_server_cleanup(&st);
	auth_secret_cleanup(&s);
}
END_TEST

START_TEST(test_auth_scram_client_first_embedded_nul)
{
	struct auth_scram_server st;
	char out[BUF_LEN];
	size_t n;
	static const char m[] = "n,,n=,r=ab\0cd";

	ck_assert_int_eq(server_first(&st, RFC_VERIFIER, m, sizeof(m) - 1, out, &n), -1);
	auth_scram_server_cleanup(&st);
}
END_TEST

/* "y,," is accepted and must be answered with c=eSws */
START_TEST(test_auth_scram_gs2_y_flag)
{
	struct auth_scram_server st;
	char out[BUF_LEN], err[256] = "";
	size_t n;
	static const char first[] = "y,,n=,r=" RFC_CLIENT_NONCE;
	static const char wrong[] = "c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",p=" RFC_PROOF;
	static const char right[] = "c=eSws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",p=" RFC_PROOF;

	ck_assert_int_eq(server_first(&st, RFC_VERIFIER, first, strlen(first), out, &n), 0);
	ck_assert_int_eq(auth_scram_server_final(&st, (const uint8_t *)wrong, strlen(wrong), out,
						 sizeof(out), &n, err, sizeof(err)),
			 -1);
	auth_scram_server_cleanup(&st);

	/* the proof is over another AuthMessage (n=, not n=user): wrong, not malformed */
	ck_assert_int_eq(server_first(&st, RFC_VERIFIER, first, strlen(first), out, &n), 0);
	ck_assert_int_eq(auth_scram_server_final(&st, (const uint8_t *)right, strlen(right), out,
						 sizeof(out), &n, err, sizeof(err)),
			 0);
	auth_scram_server_cleanup(&st);
}
END_TEST

static const char *const bad_client_finals[] = {
	"c=eSws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",p=" RFC_PROOF,
	"c=biws,r=" RFC_CLIENT_NONCE "X" RFC_SERVER_NONCE ",p=" RFC_PROOF,
	"c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE "X,p=" RFC_PROOF,
	"c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",p=" RFC_PROOF ",x=1",
	"c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE
	",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndV==",
	"c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE
	",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ",
	"c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",p=" RFC_PROOF "AAAA",
	"c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",m=1,p=" RFC_PROOF,
	"c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",,p=" RFC_PROOF,
	"r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",c=biws,p=" RFC_PROOF,
	"c=biws,p=" RFC_PROOF,
	"c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE,
};

START_TEST(test_auth_scram_client_final_malformed)
{
	struct auth_scram_server st;
	char out[BUF_LEN], err[256] = "";
	size_t n;
	const char *m = bad_client_finals[_i];

	ck_assert_int_eq(server_first(&st, RFC_VERIFIER, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
				      out, &n),
			 0);
	ck_assert_int_eq(auth_scram_server_final(&st, (const uint8_t *)m, strlen(m), out,
						 sizeof(out), &n, err, sizeof(err)),
			 -1);
	ck_assert_msg(err[0] != '\0', "no reason for %s", m);
	auth_scram_server_cleanup(&st);
}
END_TEST

/* optional extensions before the proof are accepted (and are part of AuthMessage) */
START_TEST(test_auth_scram_client_final_extension)
{
	struct auth_scram_server st;
	char out[BUF_LEN], err[256] = "";
	size_t n;
	static const char m[] = RFC_FINAL_NO_PROOF ",x=1,p=" RFC_PROOF;

	ck_assert_int_eq(server_first(&st, RFC_VERIFIER, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
				      out, &n),
			 0);
	ck_assert_int_eq(auth_scram_server_final(&st, (const uint8_t *)m, strlen(m), out,
						 sizeof(out), &n, err, sizeof(err)),
			 0);
	auth_scram_server_cleanup(&st);
}
END_TEST

static const char *const bad_server_firsts[] = {
	"m=x,r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT ",i=4096",
	"r=" RFC_CLIENT_NONCE ",s=" RFC_SALT ",i=4096",
	"r=xx" RFC_CLIENT_NONCE ",s=" RFC_SALT ",i=4096",
	"r=" RFC_CLIENT_NONCE "abc,s=,i=4096",
	"r=" RFC_CLIENT_NONCE "abc,s=W22ZaJ0SNY7soEsUEjb6gQ,i=4096",
	"r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT ",i=0",
	"r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT ",i=-1",
	"r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT ",i=4294967296",
	"r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT ",i=4096x",
	"r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT ",i=4096,",
	"r=" RFC_CLIENT_NONCE "abc,i=4096,s=" RFC_SALT,
	"e=other-error",
};

START_TEST(test_auth_scram_server_first_malformed)
{
	struct auth_scram_client c;
	char out[BUF_LEN], err[256] = "";
	size_t n;
	const char *m = bad_server_firsts[_i];

	ck_assert_int_eq(auth_scram_client_init(&c, RFC_PASSWORD, NULL, NULL), 0);
	ck_assert_int_eq(auth_scram_client_set_nonce(&c, RFC_CLIENT_NONCE), 0);
	ck_assert_int_eq(auth_scram_client_first(&c, out, sizeof(out), &n), 0);
	ck_assert_int_eq(auth_scram_client_final(&c, (const uint8_t *)m, strlen(m), out,
						 sizeof(out), &n, err, sizeof(err)),
			 -1);
	ck_assert_msg(err[0] != '\0', "no reason for %s", m);
	auth_scram_client_cleanup(&c);
}
END_TEST

START_TEST(test_auth_scram_message_too_long)
{
	struct auth_scram_server st;
	char msg[AUTH_SCRAM_MSG_MAX + 16], out[BUF_LEN];
	size_t n;

	memset(msg, 'a', sizeof(msg));
	memcpy(msg, "n,,n=,r=", 8);
	ck_assert_int_eq(server_first(&st, RFC_VERIFIER, msg, sizeof(msg), out, &n), -1);
	auth_scram_server_cleanup(&st);
	/* a client nonce longer than AUTH_NONCE_MAX */
	ck_assert_int_eq(server_first(&st, RFC_VERIFIER, msg, 8 + AUTH_NONCE_MAX + 1, out, &n), -1);
	auth_scram_server_cleanup(&st);
	ck_assert_int_eq(server_first(&st, RFC_VERIFIER, msg, 8 + AUTH_NONCE_MAX, out, &n), 0);
	auth_scram_server_cleanup(&st);
}
END_TEST

/* calls out of order fail instead of using uninitialised state */
START_TEST(test_auth_scram_out_of_order)
{
	struct auth_scram_server st;
	struct auth_scram_client c;
	struct auth_secret s;
	char out[BUF_LEN], err[256];
	size_t n;

	parse_ok(RFC_VERIFIER, &s);
	ck_assert_int_eq(auth_scram_server_init(&st, &s), 0);
	ck_assert_int_eq(auth_scram_server_final(&st, (const uint8_t *)RFC_CLIENT_FINAL,
						 strlen(RFC_CLIENT_FINAL), out, sizeof(out), &n,
						 err, sizeof(err)),
			 -1);
	auth_scram_server_cleanup(&st);
	ck_assert_int_eq(auth_scram_client_init(&c, "pw", NULL, NULL), 0);
	ck_assert_int_eq(auth_scram_client_final(&c, (const uint8_t *)RFC_SERVER_FIRST,
						 strlen(RFC_SERVER_FIRST), out, sizeof(out), &n,
						 err, sizeof(err)),
			 -1);
	ck_assert_int_eq(auth_scram_client_verify(&c, (const uint8_t *)RFC_SERVER_FINAL,
						  strlen(RFC_SERVER_FINAL), err, sizeof(err)),
			 -1);
	auth_scram_client_cleanup(&c);
	auth_secret_cleanup(&s);
}
END_TEST

/* ---- secret.c: base64 and helpers ------------------------------------------ */

START_TEST(test_auth_b64_round_trip)
{
	uint8_t in[64], back[64];
	char enc[128];
	size_t len = (size_t)_i, n, dn;

	for (n = 0; n < len; n++)
		in[n] = (uint8_t)(n * 37 + 11);
	ck_assert_uint_eq(secret_b64_encoded_len(len), (len + 2) / 3 * 4 + 1);
	n = secret_b64_encode(enc, sizeof(enc), in, len);
	ck_assert_uint_eq(n, strlen(enc));
	ck_assert_uint_eq(n, (len + 2) / 3 * 4);
	ck_assert_int_eq(secret_b64_decode(back, sizeof(back), &dn, enc, n), 0);
	ck_assert_uint_eq(dn, len);
	ck_assert(len == 0 || memcmp(in, back, len) == 0);
}
END_TEST

START_TEST(test_auth_b64_known)
{
	char enc[16];
	uint8_t out[16];
	size_t n;

	ck_assert_uint_eq(secret_b64_encode(enc, sizeof(enc), "n,,", 3), 4);
	ck_assert_str_eq(enc, "biws");
	ck_assert_uint_eq(secret_b64_encode(enc, sizeof(enc), "y,,", 3), 4);
	ck_assert_str_eq(enc, "eSws");
	ck_assert_uint_eq(secret_b64_encode(enc, sizeof(enc), "fo", 2), 4);
	ck_assert_str_eq(enc, "Zm8=");
	ck_assert_int_eq(secret_b64_decode(out, sizeof(out), &n, "Zm9vYg==", 8), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert_mem_eq(out, "foob", 4);
	/* too small an output buffer for encoding */
	ck_assert_uint_eq(secret_b64_encode(enc, 4, "fo", 2), 0);
}
END_TEST

static const char *const bad_b64[] = {
	"Zm9vYg",    "Zm9vYg=",   "Zm9v!g==", "Zm9vYg==Zm8=",
	"Zm9vYg===", "Zm9 vYg==", "=",        "Zm9vYh==", /* non-zero trailing bits */
	"Z",
};

START_TEST(test_auth_b64_invalid)
{
	uint8_t out[64];
	size_t n = 99;

	ck_assert_int_eq(secret_b64_decode(out, sizeof(out), &n, bad_b64[_i], strlen(bad_b64[_i])),
			 -1);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_auth_b64_decode_too_small)
{
	uint8_t out[3];
	size_t n;

	ck_assert_int_eq(secret_b64_decode(out, sizeof(out), &n, "Zm9vYg==", 8), -1);
	ck_assert_int_eq(secret_b64_decode(out, sizeof(out), &n, "Zm9v", 4), 0);
	ck_assert_uint_eq(n, 3);
}
END_TEST

START_TEST(test_auth_secret_helpers)
{
	uint8_t a[32] = { 0 }, b[32] = { 0 };
	uint32_t i;

	ck_assert_int_eq(secret_init(), 0);
	ck_assert(secret_equal(a, b, sizeof(a)));
	b[31] = 1;
	ck_assert(!secret_equal(a, b, sizeof(a)));
	secret_random(a, sizeof(a));
	secret_random(b, sizeof(b));
	ck_assert(!secret_equal(a, b, sizeof(a)));
	secret_wipe(a, sizeof(a));
	memset(b, 0, sizeof(b));
	ck_assert(secret_equal(a, b, sizeof(a)));
	for (i = 0; i < 1000; i++)
		ck_assert_uint_lt(secret_random_uniform(10), 10);
	ck_assert_uint_eq(secret_random_uniform(1), 0);
	(void)secret_random_u32();
}
END_TEST

static Suite *
auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc;

	tc = tcase_create("secret");
	tcase_add_test(tc, test_auth_secret_parse_kinds);
	tcase_add_loop_test(tc, test_auth_secret_parse_bad_verifier, 0,
			    (int)(sizeof(bad_verifiers) / sizeof(bad_verifiers[0])));
	tcase_add_test(tc, test_auth_secret_parse_too_long);
	tcase_add_test(tc, test_auth_scram_verifier_format);
	tcase_add_test(tc, test_auth_plain_verify_kinds);
	suite_add_tcase(s, tc);

	tc = tcase_create("md5");
	tcase_add_test(tc, test_auth_md5_hash_vectors);
	tcase_add_test(tc, test_auth_md5_response_vectors);
	tcase_add_test(tc, test_auth_md5_verify_kinds);
	suite_add_tcase(s, tc);

	tc = tcase_create("scram");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_auth_scram_rfc7677_client);
	tcase_add_test(tc, test_auth_scram_rfc7677_server);
	tcase_add_test(tc, test_auth_scram_round_trip_password);
	tcase_add_test(tc, test_auth_scram_round_trip_fixed_verifier);
	tcase_add_test(tc, test_auth_scram_round_trip_plain_secret);
	tcase_add_test(tc, test_auth_scram_wrong_password);
	tcase_add_test(tc, test_auth_scram_init_kinds);
	tcase_add_test(tc, test_auth_scram_tampered_server_signature);
	tcase_add_test(tc, test_auth_scram_client_server_error);
	tcase_add_test(tc, test_auth_scram_keys_salt_mismatch);
	tcase_add_test(tc, test_auth_scram_client_first_channel_binding_reason);
	tcase_add_test(tc, test_auth_scram_client_first_embedded_nul);
	tcase_add_test(tc, test_auth_scram_gs2_y_flag);
	tcase_add_test(tc, test_auth_scram_client_final_extension);
	tcase_add_test(tc, test_auth_scram_message_too_long);
	tcase_add_test(tc, test_auth_scram_out_of_order);
	suite_add_tcase(s, tc);

	tc = tcase_create("scram_malformed");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_auth_scram_client_first_truncated, 0,
			    (int)strlen(RFC_CLIENT_FIRST));
	tcase_add_loop_test(tc, test_auth_scram_client_final_truncated, 0,
			    (int)strlen(RFC_CLIENT_FINAL));
	tcase_add_loop_test(tc, test_auth_scram_server_first_truncated, 0,
			    (int)strlen(RFC_SERVER_FIRST));
	tcase_add_loop_test(tc, test_auth_scram_client_first_malformed, 0,
			    (int)(sizeof(bad_client_firsts) / sizeof(bad_client_firsts[0])));
	tcase_add_loop_test(tc, test_auth_scram_client_final_malformed, 0,
			    (int)(sizeof(bad_client_finals) / sizeof(bad_client_finals[0])));
	tcase_add_loop_test(tc, test_auth_scram_server_first_malformed, 0,
			    (int)(sizeof(bad_server_firsts) / sizeof(bad_server_firsts[0])));
	suite_add_tcase(s, tc);

	tc = tcase_create("base64");
	tcase_add_loop_test(tc, test_auth_b64_round_trip, 0, 40);
	tcase_add_test(tc, test_auth_b64_known);
	tcase_add_loop_test(tc, test_auth_b64_invalid, 0,
			    (int)(sizeof(bad_b64) / sizeof(bad_b64[0])));
	tcase_add_test(tc, test_auth_b64_decode_too_small);
	tcase_add_test(tc, test_auth_secret_helpers);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(auth_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
