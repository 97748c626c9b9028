/*
 * check_pgw.c: unit tests for shared/pgw.c (wire framing, parsers, builders).
 * Every parser is cut at every split point: partial reads are where proxies
 * break. Expected bytes are written out by hand from the protocol docs, not
 * produced by the builders under test.
 */
#include "shared/pgw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

/* A string literal with embedded NULs, as (bytes, length without the literal's own NUL). */
#define LIT(s) (const uint8_t *)(s), (sizeof(s) - 1)

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Copy of bytes in a heap block of exactly n bytes, so ASan catches any overread. */
static uint8_t *
dup_exact(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);

	ck_assert_ptr_nonnull(d);
	if (n)
		memcpy(d, p, n);
	return d;
}

static void
expect_bytes(const struct pgw_buf *b, const uint8_t *exp, size_t exp_len)
{
	ck_assert(!b->has_error);
	ck_assert_uint_eq(b->len, exp_len);
	ck_assert_mem_eq(b->data, exp, exp_len);
}

/* ---- header framing ------------------------------------------------------ */

/* Every message type pgw.h names, frontend then backend. */
static const uint8_t all_types[] = {
	PGW_MSG_QUERY,
	PGW_MSG_PARSE,
	PGW_MSG_BIND,
	PGW_MSG_EXECUTE,
	PGW_MSG_DESCRIBE,
	PGW_MSG_CLOSE,
	PGW_MSG_SYNC,
	PGW_MSG_FLUSH,
	PGW_MSG_FUNCTION_CALL,
	PGW_MSG_TERMINATE,
	PGW_MSG_COPY_DATA,
	PGW_MSG_COPY_DONE,
	PGW_MSG_COPY_FAIL,
	PGW_MSG_PASSWORD,
	PGW_MSG_AUTH,
	PGW_MSG_BACKEND_KEY,
	PGW_MSG_PARAMETER_STATUS,
	PGW_MSG_READY,
	PGW_MSG_ROW_DESCRIPTION,
	PGW_MSG_DATA_ROW,
	PGW_MSG_COMMAND_COMPLETE,
	PGW_MSG_ERROR,
	PGW_MSG_NOTICE,
	PGW_MSG_NOTIFICATION,
	PGW_MSG_PARSE_COMPLETE,
	PGW_MSG_BIND_COMPLETE,
	PGW_MSG_CLOSE_COMPLETE,
	PGW_MSG_NO_DATA,
	PGW_MSG_PORTAL_SUSPENDED,
	PGW_MSG_PARAMETER_DESCRIPTION,
	PGW_MSG_COPY_IN,
	PGW_MSG_COPY_OUT,
	PGW_MSG_COPY_BOTH,
	PGW_MSG_EMPTY_QUERY,
	PGW_MSG_FUNCTION_RESULT,
	PGW_MSG_NEGOTIATE_VERSION,
};

/* Frame all_types[i] with a body of i % 7 bytes; returns the wire size. */
static size_t
frame_type(size_t i, uint8_t *buf)
{
	size_t body_len = i % 7;

	buf[0] = all_types[i];
	put_be32(buf + 1, (uint32_t)(4 + body_len));
	for (size_t k = 0; k < body_len; k++)
		buf[5 + k] = (uint8_t)('a' + k);
	return PGW_HDR_LEN + body_len;
}

/* every prefix shorter than a header asks for more bytes; longer ones give type and length */
START_TEST(test_pgw_header_every_split)
{
	uint8_t msg[16];
	size_t n = frame_type((size_t)_i, msg);

	for (size_t k = 0; k <= n; k++) {
		uint8_t *p = dup_exact(msg, k);
		struct pgw_hdr h = { 0, 0 };
		int rc = pgw_read_header(p, k, &h);

		if (k < PGW_HDR_LEN) {
			ck_assert_int_eq(rc, 0);
		} else {
			ck_assert_int_eq(rc, 1);
			ck_assert_uint_eq(h.type, all_types[_i]);
			ck_assert_uint_eq(h.len, n - 1);
			ck_assert_uint_eq(pgw_msg_size(&h), n);
		}
		free(p);
	}
}
END_TEST

/* a length field below 4 cannot even count itself */
START_TEST(test_pgw_header_len_below_4)
{
	uint8_t msg[5] = { 'Q' };
	struct pgw_hdr h;

	put_be32(msg + 1, (uint32_t)_i);
	ck_assert_int_eq(pgw_read_header(msg, sizeof(msg), &h), -1);
}
END_TEST

/* huge lengths are reported as they are: the caller applies its own maximum */
START_TEST(test_pgw_header_len_large)
{
	uint8_t msg[5] = { 'd', 0xff, 0xff, 0xff, 0xff };
	struct pgw_hdr h;

	ck_assert_int_eq(pgw_read_header(msg, sizeof(msg), &h), 1);
	ck_assert_uint_eq(h.len, UINT32_MAX);
	ck_assert_uint_eq(pgw_msg_size(&h), (size_t)UINT32_MAX + 1);
}
END_TEST

static const uint8_t ssl_request[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };

START_TEST(test_pgw_header_startup_len_every_split)
{
	uint8_t *p = dup_exact(ssl_request, (size_t)_i);
	uint32_t len = 0;
	int rc = pgw_read_startup_len(p, (size_t)_i, &len);

	if (_i < 4) {
		ck_assert_int_eq(rc, 0);
	} else {
		ck_assert_int_eq(rc, 1);
		ck_assert_uint_eq(len, 8);
	}
	free(p);
}
END_TEST

START_TEST(test_pgw_header_startup_len_bounds)
{
	static const struct {
		uint32_t len;
		int rc;
	} cases[] = {
		{ 0, -1 },   { 4, -1 },    { 7, -1 },     { 8, 1 },           { 9, 1 },
		{ 9999, 1 }, { 10000, 1 }, { 10001, -1 }, { 0x7fffffff, -1 }, { 0xffffffff, -1 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t buf[4];
		uint32_t len = 0;

		put_be32(buf, cases[i].len);
		ck_assert_int_eq(pgw_read_startup_len(buf, sizeof(buf), &len), cases[i].rc);
		if (cases[i].rc == 1)
			ck_assert_uint_eq(len, cases[i].len);
	}
	for (uint32_t v = 0; v < 8; v++) {
		uint8_t buf[4];
		uint32_t len;

		put_be32(buf, v);
		ck_assert_int_eq(pgw_read_startup_len(buf, sizeof(buf), &len), -1);
	}
}
END_TEST

/* ---- parsers ------------------------------------------------------------- */

START_TEST(test_pgw_parse_auth_valid)
{
	static const char md5[] = "\x00\x00\x00\x05"
				  "SALT";
	const uint8_t *data = NULL;
	size_t data_len = 99;
	uint32_t code = 99;

	ck_assert_int_eq(pgw_parse_auth(LIT("\0\0\0\0"), &code, &data, &data_len), 0);
	ck_assert_uint_eq(code, PGW_AUTH_OK);
	ck_assert_uint_eq(data_len, 0);
	ck_assert_int_eq(pgw_parse_auth(LIT(md5), &code, &data, &data_len), 0);
	ck_assert_uint_eq(code, PGW_AUTH_MD5);
	ck_assert_uint_eq(data_len, 4);
	ck_assert_mem_eq(data, "SALT", 4);
}
END_TEST

START_TEST(test_pgw_parse_auth_truncated)
{
	static const uint8_t sasl[] = { 0, 0, 0, 10 };
	uint8_t *p = dup_exact(sasl, (size_t)_i);
	const uint8_t *data;
	size_t data_len;
	uint32_t code;

	ck_assert_int_eq(pgw_parse_auth(p, (size_t)_i, &code, &data, &data_len), -1);
	free(p);
}
END_TEST

static const char param_status[] = "server_version\0"
				   "16.2\0";

START_TEST(test_pgw_parse_param_status_valid)
{
	const char *name = NULL, *value = NULL;

	ck_assert_int_eq(pgw_parse_param_status(LIT(param_status), &name, &value), 0);
	ck_assert_str_eq(name, "server_version");
	ck_assert_str_eq(value, "16.2");
	ck_assert_int_eq(pgw_parse_param_status(LIT("\0\0"), &name, &value), 0);
	ck_assert_str_eq(name, "");
	ck_assert_str_eq(value, "");
}
END_TEST

START_TEST(test_pgw_parse_param_status_truncated)
{
	uint8_t *p = dup_exact((const uint8_t *)param_status, (size_t)_i);
	const char *name, *value;

	ck_assert_int_eq(pgw_parse_param_status(p, (size_t)_i, &name, &value), -1);
	free(p);
}
END_TEST

START_TEST(test_pgw_parse_param_status_malformed)
{
	const char *name, *value;

	/* value without its NUL, name without its NUL, a byte too many */
	ck_assert_int_eq(pgw_parse_param_status(LIT("a\0b"), &name, &value), -1);
	ck_assert_int_eq(pgw_parse_param_status(LIT("abc"), &name, &value), -1);
	ck_assert_int_eq(pgw_parse_param_status(LIT("a\0b\0c"), &name, &value), -1);
	ck_assert_int_eq(pgw_parse_param_status(LIT("a\0b\0\0"), &name, &value), -1);
}
END_TEST

START_TEST(test_pgw_parse_backend_key_valid)
{
	static const uint8_t body[] = { 0, 0, 0x30, 0x39, 0xde, 0xad, 0xbe, 0xef };
	uint32_t pid = 0, key = 0;

	ck_assert_int_eq(pgw_parse_backend_key(body, sizeof(body), &pid, &key), 0);
	ck_assert_uint_eq(pid, 12345);
	ck_assert_uint_eq(key, 0xdeadbeef);
}
END_TEST

/* protocol 3.0 keys are exactly 4 bytes: any other body length is malformed */
START_TEST(test_pgw_parse_backend_key_bad_len)
{
	static const uint8_t body[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	uint8_t *p;
	uint32_t pid, key;

	if (_i == 8)
		return;
	p = dup_exact(body, (size_t)_i);
	ck_assert_int_eq(pgw_parse_backend_key(p, (size_t)_i, &pid, &key), -1);
	free(p);
}
END_TEST

START_TEST(test_pgw_parse_ready)
{
	char status = 0;

	ck_assert_int_eq(pgw_parse_ready(LIT("I"), &status), 0);
	ck_assert_int_eq(status, 'I');
	ck_assert_int_eq(pgw_parse_ready(LIT("T"), &status), 0);
	ck_assert_int_eq(status, 'T');
	ck_assert_int_eq(pgw_parse_ready(LIT("E"), &status), 0);
	ck_assert_int_eq(status, 'E');
	ck_assert_int_eq(pgw_parse_ready(LIT("X"), &status), -1);
	ck_assert_int_eq(pgw_parse_ready(LIT(""), &status), -1);
	ck_assert_int_eq(pgw_parse_ready(LIT("II"), &status), -1);
}
END_TEST

/* a DataRow body of three columns: "t", NULL, "12345" */
static const char data_row[] = "\0\3"
			       "\0\0\0\1t"
			       "\377\377\377\377"
			       "\0\0\0\00512345";

START_TEST(test_pgw_parse_data_col)
{
	char v[8];

	ck_assert_int_eq(pgw_parse_data_col(LIT(data_row), 3, 0, v, sizeof(v)), 0);
	ck_assert_str_eq(v, "t");
	ck_assert_int_eq(pgw_parse_data_col(LIT(data_row), 3, 2, v, sizeof(v)), 0);
	ck_assert_str_eq(v, "12345");
	/* NULL, another column count, a column that does not exist */
	ck_assert_int_eq(pgw_parse_data_col(LIT(data_row), 3, 1, v, sizeof(v)), -1);
	ck_assert_int_eq(pgw_parse_data_col(LIT(data_row), 2, 0, v, sizeof(v)), -1);
	ck_assert_int_eq(pgw_parse_data_col(LIT(data_row), 3, 3, v, sizeof(v)), -1);
	/* too long for out (the NUL too), cut short, empty */
	ck_assert_int_eq(pgw_parse_data_col(LIT(data_row), 3, 2, v, 5), -1);
	ck_assert_int_eq(pgw_parse_data_col((const uint8_t *)data_row, sizeof(data_row) - 2, 3, 2,
					    v, sizeof(v)),
			 -1);
	ck_assert_int_eq(pgw_parse_data_col(LIT(""), 3, 0, v, sizeof(v)), -1);
}
END_TEST

/* an ErrorResponse body as PostgreSQL 16 sends it */
static const char pg_error[] = "SFATAL\0"
			       "VFATAL\0"
			       "C28P01\0"
			       "Mpassword authentication failed for user \"bob\"\0"
			       "Fauth.c\0"
			       "L323\0"
			       "Rauth_failed\0"
			       "\0";

START_TEST(test_pgw_parse_error_valid)
{
	struct pgw_error_fields f;

	ck_assert_int_eq(pgw_parse_error(LIT(pg_error), &f), 0);
	ck_assert_str_eq(f.severity, "FATAL");
	ck_assert_str_eq(f.sqlstate, SQLSTATE_INVALID_PASSWORD);
	ck_assert_str_eq(f.message, "password authentication failed for user \"bob\"");
	ck_assert_ptr_null(f.detail);
	ck_assert_ptr_null(f.hint);

	ck_assert_int_eq(pgw_parse_error(LIT("SERROR\0"
					     "Ddet\0"
					     "Hhint\0"
					     "\0"),
					 &f),
			 0);
	ck_assert_str_eq(f.detail, "det");
	ck_assert_str_eq(f.hint, "hint");
	ck_assert_ptr_null(f.message);

	/* only the terminator: valid, every field absent */
	ck_assert_int_eq(pgw_parse_error(LIT("\0"), &f), 0);
	ck_assert_ptr_null(f.severity);
	ck_assert_ptr_null(f.sqlstate);
}
END_TEST

START_TEST(test_pgw_parse_error_truncated)
{
	uint8_t *p = dup_exact((const uint8_t *)pg_error, (size_t)_i);
	struct pgw_error_fields f;

	ck_assert_int_eq(pgw_parse_error(p, (size_t)_i, &f), -1);
	free(p);
}
END_TEST

START_TEST(test_pgw_parse_error_malformed)
{
	struct pgw_error_fields f;

	ck_assert_int_eq(pgw_parse_error(LIT("SFATAL"), &f), -1);   /* field without NUL */
	ck_assert_int_eq(pgw_parse_error(LIT("SFATAL\0"), &f), -1); /* no terminator */
	ck_assert_int_eq(pgw_parse_error(LIT("S"), &f), -1);
	ck_assert_int_eq(pgw_parse_error(LIT("\0x"), &f), -1); /* bytes after the terminator */
	ck_assert_int_eq(pgw_parse_error(LIT(""), &f), -1);
}
END_TEST

START_TEST(test_pgw_parse_password)
{
	const char *pw = NULL;

	ck_assert_int_eq(pgw_parse_password(LIT("md5abcdef\0"), &pw), 0);
	ck_assert_str_eq(pw, "md5abcdef");
	ck_assert_int_eq(pgw_parse_password(LIT("\0"), &pw), 0);
	ck_assert_str_eq(pw, "");
	ck_assert_int_eq(pgw_parse_password(LIT("secret"), &pw), -1);
	ck_assert_int_eq(pgw_parse_password(LIT("a\0b\0"), &pw), -1);
	ck_assert_int_eq(pgw_parse_password(LIT(""), &pw), -1);
}
END_TEST

static const char password_body[] = "hunter2\0";

START_TEST(test_pgw_parse_password_truncated)
{
	uint8_t *p = dup_exact((const uint8_t *)password_body, (size_t)_i);
	const char *pw;

	ck_assert_int_eq(pgw_parse_password(p, (size_t)_i, &pw), -1);
	free(p);
}
END_TEST

static const char sasl_initial[] = "SCRAM-SHA-256\0"
				   "\x00\x00\x00\x20"
				   "n,,n=,r=rOprNGfwEbeRWgbNEkqO%hvY";

START_TEST(test_pgw_parse_sasl_initial_valid)
{
	const char *mech = NULL;
	const uint8_t *data = NULL;
	size_t data_len = 0;

	ck_assert_int_eq(pgw_parse_sasl_initial(LIT(sasl_initial), &mech, &data, &data_len), 0);
	ck_assert_str_eq(mech, "SCRAM-SHA-256");
	ck_assert_uint_eq(data_len, 32);
	ck_assert_mem_eq(data, "n,,n=,r=rOprNGfwEbeRWgbNEkqO%hvY", 32);

	/* Int32 -1: no initial response */
	ck_assert_int_eq(pgw_parse_sasl_initial(LIT("SCRAM-SHA-256\0"
						    "\xff\xff\xff\xff"),
						&mech, &data, &data_len),
			 0);
	ck_assert_str_eq(mech, "SCRAM-SHA-256");
	ck_assert_ptr_null(data);
	ck_assert_uint_eq(data_len, 0);

	/* zero-length data is data, not absence */
	ck_assert_int_eq(pgw_parse_sasl_initial(LIT("M\0\0\0\0\0"), &mech, &data, &data_len), 0);
	ck_assert_ptr_nonnull(data);
	ck_assert_uint_eq(data_len, 0);
}
END_TEST

START_TEST(test_pgw_parse_sasl_initial_truncated)
{
	uint8_t *p = dup_exact((const uint8_t *)sasl_initial, (size_t)_i);
	const char *mech;
	const uint8_t *data;
	size_t data_len;

	ck_assert_int_eq(pgw_parse_sasl_initial(p, (size_t)_i, &mech, &data, &data_len), -1);
	free(p);
}
END_TEST

START_TEST(test_pgw_parse_sasl_initial_malformed)
{
	const char *mech;
	const uint8_t *data;
	size_t data_len;

	/* mechanism without NUL */
	ck_assert_int_eq(pgw_parse_sasl_initial(LIT("SCRAM-SHA-256"), &mech, &data, &data_len), -1);
	/* declared length longer, then shorter than the data */
	ck_assert_int_eq(pgw_parse_sasl_initial(LIT("M\0\0\0\0\x03"
						    "ab"),
						&mech, &data, &data_len),
			 -1);
	ck_assert_int_eq(pgw_parse_sasl_initial(LIT("M\0\0\0\0\x01"
						    "ab"),
						&mech, &data, &data_len),
			 -1);
	/* -1 followed by bytes, and other negative lengths */
	ck_assert_int_eq(pgw_parse_sasl_initial(LIT("M\0\xff\xff\xff\xff"
						    "x"),
						&mech, &data, &data_len),
			 -1);
	ck_assert_int_eq(
		pgw_parse_sasl_initial(LIT("M\0\xff\xff\xff\xfe"), &mech, &data, &data_len), -1);
	ck_assert_int_eq(pgw_parse_sasl_initial(LIT("M\0\x80\0\0\0"), &mech, &data, &data_len), -1);
}
END_TEST

static const char query_body[] = "SELECT 1\0";

START_TEST(test_pgw_parse_query)
{
	const char *sql = NULL;

	ck_assert_int_eq(pgw_parse_query(LIT(query_body), &sql), 0);
	ck_assert_str_eq(sql, "SELECT 1");
	ck_assert_int_eq(pgw_parse_query(LIT("\0"), &sql), 0);
	ck_assert_str_eq(sql, "");
	ck_assert_int_eq(pgw_parse_query(LIT("SELECT 1\0junk"), &sql), -1);
	ck_assert_int_eq(pgw_parse_query(LIT("SELECT 1\0\0"), &sql), -1);
}
END_TEST

START_TEST(test_pgw_parse_query_truncated)
{
	uint8_t *p = dup_exact((const uint8_t *)query_body, (size_t)_i);
	const char *sql;

	ck_assert_int_eq(pgw_parse_query(p, (size_t)_i, &sql), -1);
	free(p);
}
END_TEST

/* ---- startup packet ------------------------------------------------------ */

static struct pgw_startup st; /* 11 kB: keep it off the test's stack */
static char err[256];

/* Build a startup packet: length, code, then body as given. Returns its length. */
static size_t
mk_startup(uint8_t *buf, size_t cap, uint32_t code, const uint8_t *body, size_t body_len)
{
	ck_assert_uint_le(8 + body_len, cap);
	put_be32(buf, (uint32_t)(8 + body_len));
	put_be32(buf + 4, code);
	if (body_len)
		memcpy(buf + 8, body, body_len);
	return 8 + body_len;
}

static enum pgw_startup_kind
parse_startup(uint32_t code, const uint8_t *body, size_t body_len)
{
	uint8_t buf[PGW_STARTUP_MAX_LEN];
	size_t n = mk_startup(buf, sizeof(buf), code, body, body_len);
	uint8_t *p = dup_exact(buf, n);
	enum pgw_startup_kind k;

	err[0] = '\0';
	k = pgw_startup_parse(p, n, &st, err, sizeof(err));
	free(p);
	return k;
}

/* what libpq sends for psql "host=... dbname=app user=bob options='-c search_path=s1 -c x=y'" */
static const char libpq_pairs[] = "user\0"
				  "bob\0"
				  "database\0"
				  "app\0"
				  "application_name\0"
				  "psql\0"
				  "client_encoding\0"
				  "UTF8\0"
				  "options\0"
				  "-c search_path=s1 -c x=y\0"
				  "\0";

START_TEST(test_pgw_startup_libpq)
{
	ck_assert_int_eq(parse_startup(PGW_PROTO_3_0, LIT(libpq_pairs)), PGW_STARTUP_V3);
	ck_assert_uint_eq(st.major, 3);
	ck_assert_uint_eq(st.minor, 0);
	ck_assert_str_eq(st.user, "bob");
	ck_assert_str_eq(st.database, "app");
	ck_assert_uint_eq(st.params_cnt, 5);
	ck_assert_uint_eq(st.pq_options_cnt, 0);
	ck_assert_str_eq(st.params[2].name, "application_name");
	ck_assert_str_eq(st.params[2].value, "psql");
	ck_assert_str_eq(pgw_startup_get(&st, "client_encoding"), "UTF8");
	ck_assert_str_eq(pgw_startup_get(&st, "options"), "-c search_path=s1 -c x=y");
	ck_assert_str_eq(pgw_startup_get(&st, "user"), "bob");
	ck_assert_ptr_null(pgw_startup_get(&st, "replication"));
	/* params point into the private copy, not into the caller's bytes */
	ck_assert(st.user >= st.data && st.user < st.data + sizeof(st.data));
}
END_TEST

/*
 * Cut the libpq packet at every length and fix up the length field to match:
 * no shorter packet is a valid one, and none crashes the parser.
 */
START_TEST(test_pgw_startup_truncated)
{
	size_t cut = (size_t)_i;

	ck_assert_int_eq(parse_startup(PGW_PROTO_3_0, (const uint8_t *)libpq_pairs, cut),
			 PGW_STARTUP_INVALID);
	ck_assert_ptr_null(st.user);
	ck_assert_uint_eq(st.params_cnt, 0);
}
END_TEST

/* the length field must match the bytes handed over */
START_TEST(test_pgw_startup_len_mismatch)
{
	uint8_t buf[256];
	size_t n = mk_startup(buf, sizeof(buf), PGW_PROTO_3_0, LIT(libpq_pairs));

	ck_assert_int_eq(pgw_startup_parse(buf, n - 1, &st, err, sizeof(err)), PGW_STARTUP_INVALID);
	put_be32(buf, (uint32_t)(n + 1));
	ck_assert_int_eq(pgw_startup_parse(buf, n, &st, err, sizeof(err)), PGW_STARTUP_INVALID);
	for (size_t k = 0; k < 8; k++)
		ck_assert_int_eq(pgw_startup_parse(buf, k, &st, err, sizeof(err)),
				 PGW_STARTUP_INVALID);
}
END_TEST

START_TEST(test_pgw_startup_missing_user)
{
	ck_assert_int_eq(parse_startup(PGW_PROTO_3_0, LIT("database\0"
							  "app\0"
							  "\0")),
			 PGW_STARTUP_NO_USER);
	ck_assert_str_eq(err, "no PostgreSQL user name specified in startup packet");
	ck_assert_ptr_null(st.user);

	/* an empty user counts as missing, as in PostgreSQL */
	ck_assert_int_eq(parse_startup(PGW_PROTO_3_0, LIT("user\0\0\0")), PGW_STARTUP_NO_USER);
	ck_assert_str_eq(err, "no PostgreSQL user name specified in startup packet");

	/* no parameters at all */
	ck_assert_int_eq(parse_startup(PGW_PROTO_3_0, LIT("\0")), PGW_STARTUP_NO_USER);
	ck_assert_str_eq(err, "no PostgreSQL user name specified in startup packet");
}
END_TEST

START_TEST(test_pgw_startup_database_defaults_to_user)
{
	ck_assert_int_eq(parse_startup(PGW_PROTO_3_0, LIT("user\0"
							  "alice\0"
							  "\0")),
			 PGW_STARTUP_V3);
	ck_assert_str_eq(st.user, "alice");
	ck_assert_str_eq(st.database, "alice");
	ck_assert_uint_eq(st.params_cnt, 1);

	ck_assert_int_eq(parse_startup(PGW_PROTO_3_0, LIT("database\0\0"
							  "user\0"
							  "alice\0"
							  "\0")),
			 PGW_STARTUP_V3);
	ck_assert_str_eq(st.database, "alice");
}
END_TEST

START_TEST(test_pgw_startup_repeated_user)
{
	ck_assert_int_eq(parse_startup(PGW_PROTO_3_0, LIT("user\0"
							  "a\0"
							  "user\0"
							  "b\0"
							  "\0")),
			 PGW_STARTUP_V3);
	ck_assert_str_eq(st.user, "b");
	ck_assert_str_eq(pgw_startup_get(&st, "user"), "b");
}
END_TEST

START_TEST(test_pgw_startup_replication)
{
	ck_assert_int_eq(parse_startup(PGW_PROTO_3_0, LIT("user\0"
							  "rep\0"
							  "replication\0"
							  "database\0"
							  "\0")),
			 PGW_STARTUP_V3);
	ck_assert_str_eq(pgw_startup_get(&st, "replication"), "database");
	ck_assert_str_eq(st.database, "rep");
}
END_TEST

START_TEST(test_pgw_startup_ssl_request)
{
	ck_assert_int_eq(parse_startup(PGW_CODE_SSL, NULL, 0), PGW_STARTUP_SSL);
	ck_assert_int_eq(pgw_startup_parse(ssl_request, sizeof(ssl_request), &st, err, sizeof(err)),
			 PGW_STARTUP_SSL);
}
END_TEST

START_TEST(test_pgw_startup_gssenc_request)
{
	static const uint8_t gss[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30 };

	ck_assert_int_eq(parse_startup(PGW_CODE_GSSENC, NULL, 0), PGW_STARTUP_GSSENC);
	ck_assert_int_eq(pgw_startup_parse(gss, sizeof(gss), &st, err, sizeof(err)),
			 PGW_STARTUP_GSSENC);
}
END_TEST

START_TEST(test_pgw_startup_cancel_request)
{
	static const uint8_t cancel[16] = { 0, 0, 0,    16,   0x04, 0xd2, 0x16, 0x2e,
					    0, 0, 0x30, 0x39, 0xca, 0xfe, 0xba, 0xbe };

	ck_assert_int_eq(pgw_startup_parse(cancel, sizeof(cancel), &st, err, sizeof(err)),
			 PGW_STARTUP_CANCEL);
	ck_assert_uint_eq(st.cancel_pid, 12345);
	ck_assert_uint_eq(st.cancel_key, 0xcafebabe);
}
END_TEST

START_TEST(test_pgw_startup_special_bad_size)
{
	static const uint8_t pad[16] = { 0 };

	/* as PostgreSQL 15: a longer SSLRequest is one, the rest skipped */
	ck_assert_int_eq(parse_startup(PGW_CODE_SSL, pad, 4), PGW_STARTUP_SSL);
	ck_assert_int_eq(parse_startup(PGW_CODE_GSSENC, pad, 1), PGW_STARTUP_GSSENC);
	ck_assert_int_eq(parse_startup(PGW_CODE_CANCEL, pad, 0), PGW_STARTUP_BAD_CANCEL);
	ck_assert_int_eq(parse_startup(PGW_CODE_CANCEL, pad, 4), PGW_STARTUP_BAD_CANCEL);
	ck_assert_int_eq(parse_startup(PGW_CODE_CANCEL, pad, 9), PGW_STARTUP_BAD_CANCEL);
	ck_assert_int_eq(parse_startup(PGW_CODE_CANCEL, pad, 16), PGW_STARTUP_BAD_CANCEL);
	ck_assert(err[0] != '\0');
}
END_TEST

START_TEST(test_pgw_startup_bad_major)
{
	ck_assert_int_eq(parse_startup(2u << 16, LIT("user\0"
						     "bob\0"
						     "\0")),
			 PGW_STARTUP_BAD_MAJOR);
	ck_assert_uint_eq(st.major, 2);
	ck_assert_uint_eq(st.minor, 0);
	ck_assert_int_eq(parse_startup(4u << 16 | 1, LIT("user\0"
							 "bob\0"
							 "\0")),
			 PGW_STARTUP_BAD_MAJOR);
	ck_assert_uint_eq(st.major, 4);
	ck_assert_uint_eq(st.minor, 1);
	/* an unknown 1234.xxxx request code is just a wrong major */
	ck_assert_int_eq(parse_startup(1234u << 16 | 9999, NULL, 0), PGW_STARTUP_BAD_MAJOR);
	ck_assert_uint_eq(st.major, 1234);
	ck_assert_uint_eq(st.minor, 9999);
}
END_TEST

/* protocol 3.2 with _pq_ options: options are collected apart from params */
START_TEST(test_pgw_startup_v32_pq_options)
{
	ck_assert_int_eq(parse_startup(3u << 16 | 2, LIT("user\0"
							 "bob\0"
							 "_pq_.something\0"
							 "on\0"
							 "database\0"
							 "db\0"
							 "_pq_.other\0"
							 "\0"
							 "\0")),
			 PGW_STARTUP_V3);
	ck_assert_uint_eq(st.major, 3);
	ck_assert_uint_eq(st.minor, 2);
	ck_assert_uint_eq(st.params_cnt, 2);
	ck_assert_uint_eq(st.pq_options_cnt, 2);
	ck_assert_str_eq(st.pq_options[0], "_pq_.something");
	ck_assert_str_eq(st.pq_options[1], "_pq_.other");
	ck_assert_ptr_null(pgw_startup_get(&st, "_pq_.something"));
	ck_assert_str_eq(st.database, "db");
}
END_TEST

START_TEST(test_pgw_startup_bad_terminator)
{
	static const char *const want =
		"invalid startup packet layout: expected terminator as last byte";

	/* no final NUL */
	ck_assert_int_eq(parse_startup(PGW_PROTO_3_0, LIT("user\0"
							  "bob\0")),
			 PGW_STARTUP_INVALID);
	ck_assert_str_eq(err, want);
	/* last byte not a NUL */
	ck_assert_int_eq(parse_startup(PGW_PROTO_3_0, LIT("user\0"
							  "bob\0"
							  "x")),
			 PGW_STARTUP_INVALID);
	ck_assert_str_eq(err, want);
	/* no pairs and no terminator */
	ck_assert_int_eq(parse_startup(PGW_PROTO_3_0, NULL, 0), PGW_STARTUP_INVALID);
	ck_assert_str_eq(err, want);
	/* a name with no value before the terminator */
	ck_assert_int_eq(parse_startup(PGW_PROTO_3_0, LIT("user\0"
							  "bob\0"
							  "database\0"
							  "\0")),
			 PGW_STARTUP_INVALID);
	ck_assert_str_eq(err, want);
	/* bytes after the terminator */
	ck_assert_int_eq(parse_startup(PGW_PROTO_3_0, LIT("user\0"
							  "bob\0"
							  "\0"
							  "\0")),
			 PGW_STARTUP_INVALID);
	ck_assert_int_eq(parse_startup(PGW_PROTO_3_0, LIT("user\0"
							  "bob\0"
							  "\0"
							  "x\0"
							  "y\0"
							  "\0")),
			 PGW_STARTUP_INVALID);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_pgw_startup_empty_name)
{
	ck_assert_int_eq(parse_startup(PGW_PROTO_3_0, LIT("user\0"
							  "bob\0"
							  "\0"
							  "v\0"
							  "\0")),
			 PGW_STARTUP_INVALID);
	ck_assert_int_eq(parse_startup(PGW_PROTO_3_0, LIT("\0"
							  "v\0"
							  "user\0"
							  "bob\0"
							  "\0")),
			 PGW_STARTUP_INVALID);
}
END_TEST

/* Body with "user" plus extra_cnt more params p0..pN. */
static size_t
mk_many_params(uint8_t *body, size_t cap, size_t extra_cnt, const char *prefix)
{
	size_t n = 0;

	memcpy(body, "user\0bob", 9);
	n = 9;
	for (size_t i = 0; i < extra_cnt; i++) {
		int w = snprintf((char *)body + n, cap - n, "%s%zu", prefix, i);

		ck_assert_int_gt(w, 0);
		n += (size_t)w + 1;
		body[n++] = 'v';
		body[n++] = '\0';
	}
	body[n++] = '\0';
	ck_assert_uint_le(n, cap);
	return n;
}

START_TEST(test_pgw_startup_too_many_params)
{
	static uint8_t body[PGW_STARTUP_MAX_LEN];
	size_t n = 0, cnt = 0;

	/* as many as the largest packet holds: "x" with an empty value, 3 bytes each */
	memcpy(body, "user\0bob", 9);
	n = 9;
	while (8 + n + 3 + 1 <= PGW_STARTUP_MAX_LEN) {
		memcpy(body + n, "x\0", 3);
		n += 3;
		cnt++;
	}
	body[n++] = '\0';
	ck_assert_int_eq(parse_startup(PGW_PROTO_3_0, body, n), PGW_STARTUP_V3);
	ck_assert_uint_eq(st.params_cnt, cnt + 1);
	ck_assert_uint_le(st.params_cnt, PGW_STARTUP_MAX_PARAMS);
	ck_assert_str_eq(pgw_startup_get(&st, "x"), "");

	/* _pq_ options as well */
	n = mk_many_params(body, sizeof(body), 700, "_pq_.o");
	ck_assert_int_eq(parse_startup(3u << 16 | 2, body, n), PGW_STARTUP_V3);
	ck_assert_uint_eq(st.pq_options_cnt, 700);
	ck_assert_uint_eq(st.params_cnt, 1);
}
END_TEST

/* a packet as large as allowed is accepted; err may be NULL */
START_TEST(test_pgw_startup_max_len)
{
	static uint8_t buf[PGW_STARTUP_MAX_LEN];
	size_t body_len = PGW_STARTUP_MAX_LEN - 8;

	memset(buf, 'x', sizeof(buf));
	memcpy(buf + 8, "user\0", 5);
	buf[sizeof(buf) - 2] = '\0';
	buf[sizeof(buf) - 1] = '\0';
	put_be32(buf, PGW_STARTUP_MAX_LEN);
	put_be32(buf + 4, PGW_PROTO_3_0);
	ck_assert_int_eq(pgw_startup_parse(buf, sizeof(buf), &st, NULL, 0), PGW_STARTUP_V3);
	ck_assert_uint_eq(strlen(st.user), body_len - 5 - 2);
	buf[sizeof(buf) - 1] = 'x';
	ck_assert_int_eq(pgw_startup_parse(buf, sizeof(buf), &st, NULL, 0), PGW_STARTUP_INVALID);
}
END_TEST

/* pseudo-random bytes behind a valid length field never crash the parser */
START_TEST(test_pgw_startup_garbage)
{
	uint32_t x = 0x9e3779b9u * (uint32_t)(_i + 1);
	uint8_t buf[300];
	size_t n = 8 + (size_t)_i % 290;
	enum pgw_startup_kind kind;
	uint8_t *p;

	for (size_t k = 0; k < n; k++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		/* mostly NULs and letters, so pair structure occurs often */
		buf[k] = (x & 3) == 0 ? 0 : (uint8_t)('a' + x % 5);
	}
	put_be32(buf, (uint32_t)n);
	if (_i % 2)
		put_be32(buf + 4, PGW_PROTO_3_0 | (uint32_t)(_i % 4));
	p = dup_exact(buf, n);
	kind = pgw_startup_parse(p, n, &st, err, sizeof(err));
	ck_assert(kind >= PGW_STARTUP_INVALID && kind <= PGW_STARTUP_BAD_MAJOR);
	ck_assert_int_eq(kind == PGW_STARTUP_V3, st.user != NULL);
	if (st.user != NULL) {
		ck_assert(st.database != NULL);
		ck_assert_uint_ge(st.params_cnt, 1);
	}
	free(p);
}
END_TEST

/* ---- builders ------------------------------------------------------------ */

START_TEST(test_pgw_build_error)
{
	static const char exp[] = "E\x00\x00\x00\x1f"
				  "SFATAL\0"
				  "VFATAL\0"
				  "C08P01\0"
				  "Mbad\0"
				  "\0";
	static const char exp_notice[] = "N\x00\x00\x00\x28"
					 "SNOTICE\0"
					 "VNOTICE\0"
					 "C00000\0"
					 "Mm\0"
					 "Dd\0"
					 "Hhint\0"
					 "\0";
	struct pgw_buf b;
	struct pgw_error_fields f;

	pgw_buf_init(&b);
	pgw_put_error(&b, false, "FATAL", SQLSTATE_PROTOCOL_VIOLATION, "bad", NULL, NULL);
	expect_bytes(&b, LIT(exp));
	ck_assert_int_eq(pgw_parse_error(b.data + 5, b.len - 5, &f), 0);
	ck_assert_str_eq(f.message, "bad");

	pgw_buf_reset(&b);
	pgw_put_error(&b, true, "NOTICE", SQLSTATE_SUCCESSFUL_COMPLETION, "m", "d", "hint");
	expect_bytes(&b, LIT(exp_notice));
	ck_assert_int_eq(pgw_parse_error(b.data + 5, b.len - 5, &f), 0);
	ck_assert_str_eq(f.detail, "d");
	ck_assert_str_eq(f.hint, "hint");
	pgw_buf_cleanup(&b);
}
END_TEST

START_TEST(test_pgw_build_auth_sasl)
{
	static const char exp[] = "R\x00\x00\x00\x17"
				  "\x00\x00\x00\x0a"
				  "SCRAM-SHA-256\0"
				  "\0";
	struct pgw_buf b;

	pgw_buf_init(&b);
	pgw_put_auth_sasl(&b, "SCRAM-SHA-256");
	expect_bytes(&b, LIT(exp));
	pgw_buf_cleanup(&b);
}
END_TEST

START_TEST(test_pgw_build_auth)
{
	static const char exp[] = "R\x00\x00\x00\x0c"
				  "\x00\x00\x00\x05"
				  "salt"
				  "R\x00\x00\x00\x08"
				  "\x00\x00\x00\x00";
	struct pgw_buf b;
	uint32_t code;
	const uint8_t *data;
	size_t data_len;

	pgw_buf_init(&b);
	pgw_put_auth(&b, PGW_AUTH_MD5, "salt", 4);
	pgw_put_auth(&b, PGW_AUTH_OK, NULL, 0);
	expect_bytes(&b, LIT(exp));
	ck_assert_int_eq(pgw_parse_auth(b.data + 5, 8, &code, &data, &data_len), 0);
	ck_assert_uint_eq(code, PGW_AUTH_MD5);
	ck_assert_mem_eq(data, "salt", 4);
	pgw_buf_cleanup(&b);
}
END_TEST

START_TEST(test_pgw_build_row_description)
{
	static const char exp[] = "T\x00\x00\x00\x32"
				  "\x00\x02"
				  "id\0"
				  "\x00\x00\x00\x00"
				  "\x00\x00"
				  "\x00\x00\x00\x19"
				  "\xff\xff"
				  "\xff\xff\xff\xff"
				  "\x00\x00"
				  "name\0"
				  "\x00\x00\x00\x00"
				  "\x00\x00"
				  "\x00\x00\x00\x19"
				  "\xff\xff"
				  "\xff\xff\xff\xff"
				  "\x00\x00";
	static const char *const names[] = { "id", "name" };
	struct pgw_buf b;

	pgw_buf_init(&b);
	pgw_put_row_description(&b, names, 2);
	expect_bytes(&b, LIT(exp));
	pgw_buf_cleanup(&b);
}
END_TEST

START_TEST(test_pgw_build_data_row_null)
{
	static const char exp[] = "D\x00\x00\x00\x17"
				  "\x00\x03"
				  "\x00\x00\x00\x01"
				  "1"
				  "\xff\xff\xff\xff"
				  "\x00\x00\x00\x04"
				  "text";
	static const char *const values[] = { "1", NULL, "text" };
	struct pgw_buf b;

	pgw_buf_init(&b);
	pgw_put_data_row(&b, values, 3);
	expect_bytes(&b, LIT(exp));
	pgw_buf_cleanup(&b);
}
END_TEST

START_TEST(test_pgw_build_ready_backend_key)
{
	static const char exp[] = "K\x00\x00\x00\x0c"
				  "\x00\x00\x30\x39"
				  "\xde\xad\xbe\xef"
				  "Z\x00\x00\x00\x05"
				  "I";
	struct pgw_buf b;
	uint32_t pid, key;
	char status;

	pgw_buf_init(&b);
	pgw_put_backend_key(&b, 12345, 0xdeadbeef);
	pgw_put_ready(&b, 'I');
	expect_bytes(&b, LIT(exp));
	ck_assert_int_eq(pgw_parse_backend_key(b.data + 5, 8, &pid, &key), 0);
	ck_assert_uint_eq(pid, 12345);
	ck_assert_uint_eq(key, 0xdeadbeef);
	ck_assert_int_eq(pgw_parse_ready(b.data + 18, 1, &status), 0);
	ck_assert_int_eq(status, 'I');
	pgw_buf_cleanup(&b);
}
END_TEST

START_TEST(test_pgw_build_negotiate_version)
{
	static const char exp[] = "v\x00\x00\x00\x1b"
				  "\x00\x03\x00\x00"
				  "\x00\x00\x00\x02"
				  "_pq_.a\0"
				  "_pq_.bc\0";
	static const char exp_none[] = "v\x00\x00\x00\x0c"
				       "\x00\x00\x00\x02"
				       "\x00\x00\x00\x00";
	static const char *const opts[] = { "_pq_.a", "_pq_.bc" };
	struct pgw_buf b;

	pgw_buf_init(&b);
	pgw_put_negotiate_version(&b, PGW_PROTO_3_0, opts, 2);
	expect_bytes(&b, LIT(exp));
	pgw_buf_reset(&b);
	pgw_put_negotiate_version(&b, 2, NULL, 0);
	expect_bytes(&b, LIT(exp_none));
	pgw_buf_cleanup(&b);
}
END_TEST

START_TEST(test_pgw_build_startup)
{
	static const char exp[] = "\x00\x00\x00\x1c"
				  "\x00\x03\x00\x00"
				  "user\0"
				  "bob\0"
				  "database\0"
				  "\0"
				  "\0";
	static const char *const names[] = { "user", "database", "application_name" };
	static const char *const values[] = { "bob", "", "pgdog" };
	struct pgw_buf b;

	pgw_buf_init(&b);
	pgw_put_startup(&b, names, values, 2);
	expect_bytes(&b, LIT(exp));

	/* parse back what we build for servers */
	pgw_buf_reset(&b);
	pgw_put_startup(&b, names, values, 3);
	ck_assert(!b.has_error);
	ck_assert_int_eq(pgw_startup_parse(b.data, b.len, &st, err, sizeof(err)), PGW_STARTUP_V3);
	ck_assert_str_eq(st.user, "bob");
	ck_assert_str_eq(st.database, "bob");
	ck_assert_str_eq(pgw_startup_get(&st, "application_name"), "pgdog");
	pgw_buf_cleanup(&b);
}
END_TEST

START_TEST(test_pgw_build_cancel_request)
{
	static const char exp[] = "\x00\x00\x00\x10"
				  "\x04\xd2\x16\x2e"
				  "\x00\x00\x30\x39"
				  "\x01\x02\x03\x04";
	struct pgw_buf b;

	pgw_buf_init(&b);
	pgw_put_cancel_request(&b, 12345, 0x01020304);
	expect_bytes(&b, LIT(exp));
	ck_assert_int_eq(pgw_startup_parse(b.data, b.len, &st, err, sizeof(err)),
			 PGW_STARTUP_CANCEL);
	ck_assert_uint_eq(st.cancel_pid, 12345);
	ck_assert_uint_eq(st.cancel_key, 0x01020304);
	pgw_buf_cleanup(&b);
}
END_TEST

START_TEST(test_pgw_build_simple)
{
	static const char exp[] = "C\x00\x00\x00\x0d"
				  "SELECT 1\0"
				  "I\x00\x00\x00\x04"
				  "X\x00\x00\x00\x04"
				  "Q\x00\x00\x00\x0d"
				  "SELECT 1\0"
				  "p\x00\x00\x00\x08"
				  "pwd\0"
				  "S\x00\x00\x00\x0a"
				  "a\0"
				  "bcd\0";
	struct pgw_buf b;

	pgw_buf_init(&b);
	pgw_put_command_complete(&b, "SELECT 1");
	pgw_put_empty_query(&b);
	pgw_put_terminate(&b);
	pgw_put_query(&b, "SELECT 1");
	pgw_put_password(&b, "pwd");
	pgw_put_param_status(&b, "a", "bcd");
	expect_bytes(&b, LIT(exp));
	pgw_buf_cleanup(&b);
}
END_TEST

START_TEST(test_pgw_build_sasl)
{
	struct pgw_buf b;
	struct pgw_hdr h;
	const char *mech;
	const uint8_t *data;
	size_t data_len;

	pgw_buf_init(&b);
	pgw_put_sasl_initial(&b, "SCRAM-SHA-256", "n,,n=,r=abc", 11);
	ck_assert(!b.has_error);
	ck_assert_int_eq(pgw_read_header(b.data, b.len, &h), 1);
	ck_assert_uint_eq(h.type, PGW_MSG_PASSWORD);
	ck_assert_uint_eq(pgw_msg_size(&h), b.len);
	ck_assert_int_eq(pgw_parse_sasl_initial(b.data + 5, b.len - 5, &mech, &data, &data_len), 0);
	ck_assert_str_eq(mech, "SCRAM-SHA-256");
	ck_assert_uint_eq(data_len, 11);
	ck_assert_mem_eq(data, "n,,n=,r=abc", 11);

	pgw_buf_reset(&b);
	pgw_put_sasl_initial(&b, "SCRAM-SHA-256", NULL, 0);
	ck_assert_int_eq(pgw_parse_sasl_initial(b.data + 5, b.len - 5, &mech, &data, &data_len), 0);
	ck_assert_ptr_null(data);

	pgw_buf_reset(&b);
	pgw_put_sasl_response(&b, "c=biws", 6);
	expect_bytes(&b, LIT("p\x00\x00\x00\x0a"
			     "c=biws"));
	pgw_buf_cleanup(&b);
}
END_TEST

/* several messages back to back frame and parse one after the other */
START_TEST(test_pgw_build_back_to_back)
{
	static const char *const names[] = { "?column?" };
	static const char *const values[] = { "1" };
	static const uint8_t want_types[] = { 'R', 'S', 'K', 'Z', 'T', 'D', 'C', 'N', 'Z' };
	struct pgw_buf b;
	size_t off = 0, i = 0;

	pgw_buf_init(&b);
	pgw_put_auth(&b, PGW_AUTH_OK, NULL, 0);
	pgw_put_param_status(&b, "server_version", "16.2");
	pgw_put_backend_key(&b, 1, 2);
	pgw_put_ready(&b, 'I');
	pgw_put_row_description(&b, names, 1);
	pgw_put_data_row(&b, values, 1);
	pgw_put_command_complete(&b, "SELECT 1");
	pgw_put_error(&b, true, "WARNING", "01000", "w", NULL, NULL);
	pgw_put_ready(&b, 'T');
	ck_assert(!b.has_error);

	while (off < b.len) {
		struct pgw_hdr h;
		const uint8_t *body = b.data + off + PGW_HDR_LEN;

		ck_assert_int_eq(pgw_read_header(b.data + off, b.len - off, &h), 1);
		ck_assert_uint_lt(i, sizeof(want_types));
		ck_assert_uint_eq(h.type, want_types[i]);
		ck_assert_uint_le(pgw_msg_size(&h), b.len - off);
		if (h.type == 'S') {
			const char *n, *v;

			ck_assert_int_eq(pgw_parse_param_status(body, h.len - 4, &n, &v), 0);
			ck_assert_str_eq(v, "16.2");
		} else if (h.type == 'Z') {
			char s;

			ck_assert_int_eq(pgw_parse_ready(body, h.len - 4, &s), 0);
			ck_assert_int_eq(s, i == 3 ? 'I' : 'T');
		}
		off += pgw_msg_size(&h);
		i++;
	}
	ck_assert_uint_eq(off, b.len);
	ck_assert_uint_eq(i, sizeof(want_types));
	pgw_buf_cleanup(&b);
}
END_TEST

/* a 100 kB query leaves the inline storage and keeps what came before it */
START_TEST(test_pgw_build_growth)
{
	size_t qlen = 100 * 1024;
	char *sql = malloc(qlen + 1);
	struct pgw_buf b;
	struct pgw_hdr h;
	const char *got;

	ck_assert_ptr_nonnull(sql);
	for (size_t i = 0; i < qlen; i++)
		sql[i] = (char)('a' + i % 26);
	sql[qlen] = '\0';

	pgw_buf_init(&b);
	ck_assert_ptr_eq(b.data, b.inline_data);
	pgw_put_ready(&b, 'I');
	pgw_put_query(&b, sql);
	ck_assert(!b.has_error);
	ck_assert_ptr_ne(b.data, b.inline_data);
	ck_assert_uint_ge(b.cap, b.len);
	ck_assert_uint_eq(b.len, 6 + 5 + qlen + 1);
	ck_assert_mem_eq(b.data, "Z\x00\x00\x00\x05I", 6);
	ck_assert_int_eq(pgw_read_header(b.data + 6, b.len - 6, &h), 1);
	ck_assert_uint_eq(h.len, 4 + qlen + 1);
	ck_assert_int_eq(pgw_parse_query(b.data + 11, h.len - 4, &got), 0);
	ck_assert_str_eq(got, sql);

	/* reset keeps the heap storage; cleanup returns to inline and may repeat */
	pgw_buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	pgw_put_terminate(&b);
	expect_bytes(&b, LIT("X\x00\x00\x00\x04"));
	pgw_buf_cleanup(&b);
	ck_assert_ptr_eq(b.data, b.inline_data);
	pgw_buf_cleanup(&b);
	free(sql);
}
END_TEST

/* growth one byte at a time across the inline boundary */
START_TEST(test_pgw_build_growth_bytes)
{
	struct pgw_buf b;

	pgw_buf_init(&b);
	pgw_begin(&b, PGW_MSG_COPY_DATA);
	for (size_t i = 0; i < 5000; i++)
		pgw_put_u8(&b, (uint8_t)i);
	pgw_end(&b);
	ck_assert(!b.has_error);
	ck_assert_uint_eq(b.len, 5005);
	for (size_t i = 0; i < 5000; i++)
		ck_assert_uint_eq(b.data[5 + i], (uint8_t)i);
	ck_assert_mem_eq(b.data, "d\x00\x00\x13\x8c", 5);
	pgw_buf_cleanup(&b);
}
END_TEST

/* a message over 1 GiB sets the sticky error; later builders change nothing */
START_TEST(test_pgw_build_sticky_error)
{
	static const uint8_t small[1] = { 0 };
	struct pgw_buf b;
	size_t len;

	pgw_buf_init(&b);
	pgw_put_ready(&b, 'I');
	pgw_begin(&b, PGW_MSG_COPY_DATA);
	/* rejected on size alone, before any byte is read from small */
	pgw_put_bytes(&b, small, ((size_t)1 << 30) + 1);
	ck_assert(b.has_error);
	len = b.len;
	pgw_put_query(&b, "SELECT 1");
	pgw_put_u32(&b, 7);
	pgw_put_str(&b, "x");
	pgw_end(&b);
	ck_assert(b.has_error);
	ck_assert_uint_eq(b.len, len);

	pgw_buf_reset(&b);
	ck_assert(!b.has_error);
	pgw_put_ready(&b, 'E');
	expect_bytes(&b, LIT("Z\x00\x00\x00\x05"
			     "E"));

	/* pgw_end() without pgw_begin() is an error, not a write before the buffer */
	pgw_buf_reset(&b);
	pgw_end(&b);
	ck_assert(b.has_error);
	pgw_buf_cleanup(&b);
}
END_TEST

static Suite *
pgw_suite(void)
{
	Suite *s = suite_create("pgw");
	TCase *tc;

	tc = tcase_create("header");
	tcase_add_loop_test(tc, test_pgw_header_every_split, 0, (int)sizeof(all_types));
	tcase_add_loop_test(tc, test_pgw_header_len_below_4, 0, 4);
	tcase_add_test(tc, test_pgw_header_len_large);
	tcase_add_loop_test(tc, test_pgw_header_startup_len_every_split, 0, 9);
	tcase_add_test(tc, test_pgw_header_startup_len_bounds);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse");
	tcase_add_test(tc, test_pgw_parse_auth_valid);
	tcase_add_loop_test(tc, test_pgw_parse_auth_truncated, 0, 4);
	tcase_add_test(tc, test_pgw_parse_param_status_valid);
	tcase_add_loop_test(tc, test_pgw_parse_param_status_truncated, 0,
			    (int)sizeof(param_status) - 1);
	tcase_add_test(tc, test_pgw_parse_param_status_malformed);
	tcase_add_test(tc, test_pgw_parse_backend_key_valid);
	tcase_add_loop_test(tc, test_pgw_parse_backend_key_bad_len, 0, 13);
	tcase_add_test(tc, test_pgw_parse_ready);
	tcase_add_test(tc, test_pgw_parse_data_col);
	tcase_add_test(tc, test_pgw_parse_error_valid);
	tcase_add_loop_test(tc, test_pgw_parse_error_truncated, 0, (int)sizeof(pg_error) - 1);
	tcase_add_test(tc, test_pgw_parse_error_malformed);
	tcase_add_test(tc, test_pgw_parse_password);
	tcase_add_loop_test(tc, test_pgw_parse_password_truncated, 0,
			    (int)sizeof(password_body) - 1);
	tcase_add_test(tc, test_pgw_parse_sasl_initial_valid);
	tcase_add_loop_test(tc, test_pgw_parse_sasl_initial_truncated, 0,
			    (int)sizeof(sasl_initial) - 1);
	tcase_add_test(tc, test_pgw_parse_sasl_initial_malformed);
	tcase_add_test(tc, test_pgw_parse_query);
	tcase_add_loop_test(tc, test_pgw_parse_query_truncated, 0, (int)sizeof(query_body) - 1);
	suite_add_tcase(s, tc);

	tc = tcase_create("startup");
	tcase_add_test(tc, test_pgw_startup_libpq);
	tcase_add_loop_test(tc, test_pgw_startup_truncated, 0, (int)sizeof(libpq_pairs) - 1);
	tcase_add_test(tc, test_pgw_startup_len_mismatch);
	tcase_add_test(tc, test_pgw_startup_missing_user);
	tcase_add_test(tc, test_pgw_startup_database_defaults_to_user);
	tcase_add_test(tc, test_pgw_startup_repeated_user);
	tcase_add_test(tc, test_pgw_startup_replication);
	tcase_add_test(tc, test_pgw_startup_ssl_request);
	tcase_add_test(tc, test_pgw_startup_gssenc_request);
	tcase_add_test(tc, test_pgw_startup_cancel_request);
	tcase_add_test(tc, test_pgw_startup_special_bad_size);
	tcase_add_test(tc, test_pgw_startup_bad_major);
	tcase_add_test(tc, test_pgw_startup_v32_pq_options);
	tcase_add_test(tc, test_pgw_startup_bad_terminator);
	tcase_add_test(tc, test_pgw_startup_empty_name);
	tcase_add_test(tc, test_pgw_startup_too_many_params);
	tcase_add_test(tc, test_pgw_startup_max_len);
	tcase_add_loop_test(tc, test_pgw_startup_garbage, 0, 500);
	suite_add_tcase(s, tc);

	tc = tcase_create("build");
	tcase_add_test(tc, test_pgw_build_error);
	tcase_add_test(tc, test_pgw_build_auth_sasl);
	tcase_add_test(tc, test_pgw_build_auth);
	tcase_add_test(tc, test_pgw_build_row_description);
	tcase_add_test(tc, test_pgw_build_data_row_null);
	tcase_add_test(tc, test_pgw_build_ready_backend_key);
	tcase_add_test(tc, test_pgw_build_negotiate_version);
	tcase_add_test(tc, test_pgw_build_startup);
	tcase_add_test(tc, test_pgw_build_cancel_request);
	tcase_add_test(tc, test_pgw_build_simple);
	tcase_add_test(tc, test_pgw_build_sasl);
	tcase_add_test(tc, test_pgw_build_back_to_back);
	tcase_add_test(tc, test_pgw_build_growth);
	tcase_add_test(tc, test_pgw_build_growth_bytes);
	tcase_add_test(tc, test_pgw_build_sticky_error);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(pgw_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
