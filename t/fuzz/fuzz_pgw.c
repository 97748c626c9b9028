/*
 * fuzz_pgw.c: libFuzzer target for typed protocol messages: frames the input
 * as a stream with pgw_read_header(), runs every pgw_parse_* on every body
 * and rebuilds what parsed with the pgw_put_* builders, which must produce
 * the same bytes (or fields) again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/pgw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Bodies larger than this are framed but not copied and parsed. */
#define FUZZ_MAX_BODY (1u << 20)

static void
fuzz_require(bool ok)
{
	if (!ok)
		abort();
}

/* The body of the single message in b, which must frame cleanly. */
static const uint8_t *
fuzz_body_of(const struct pgw_buf *b, size_t *len)
{
	struct pgw_hdr h;

	fuzz_require(!b->has_error);
	fuzz_require(pgw_read_header(b->data, b->len, &h) == 1);
	fuzz_require(pgw_msg_size(&h) == b->len);
	*len = h.len - 4;
	return b->data + PGW_HDR_LEN;
}

static void
fuzz_same_body(const struct pgw_buf *b, const uint8_t *body, size_t len)
{
	size_t n;
	const uint8_t *p = fuzz_body_of(b, &n);

	fuzz_require(n == len && (len == 0 || memcmp(p, body, len) == 0));
}

static void
fuzz_error(struct pgw_buf *b, const uint8_t *body, size_t len)
{
	struct pgw_error_fields f, g;
	const uint8_t *p;
	size_t n;

	if (pgw_parse_error(body, len, &f) < 0)
		return;
	if (f.severity == NULL || f.sqlstate == NULL || f.message == NULL)
		return;
	pgw_buf_reset(b);
	pgw_put_error(b, len % 2 == 0, f.severity, f.sqlstate, f.message, f.detail, f.hint);
	p = fuzz_body_of(b, &n);
	fuzz_require(pgw_parse_error(p, n, &g) == 0);
	fuzz_require(strcmp(g.severity, f.severity) == 0 && strcmp(g.sqlstate, f.sqlstate) == 0 &&
		     strcmp(g.message, f.message) == 0);
	fuzz_require((g.detail == NULL) == (f.detail == NULL));
	fuzz_require((g.hint == NULL) == (f.hint == NULL));
	fuzz_require(f.detail == NULL || strcmp(g.detail, f.detail) == 0);
	fuzz_require(f.hint == NULL || strcmp(g.hint, f.hint) == 0);
}

/* Treat the body as NUL-separated strings and build a RowDescription and DataRow of them. */
static void
fuzz_rows(struct pgw_buf *b, const uint8_t *body, size_t len)
{
	const char *cols[16];
	size_t cnt = 0, off = 0;

	while (cnt < 16 && off < len) {
		const uint8_t *nul = memchr(body + off, 0, len - off);

		if (nul == NULL)
			break;
		cols[cnt++] = (const char *)(body + off);
		off = (size_t)(nul - body) + 1;
	}
	pgw_buf_reset(b);
	pgw_put_row_description(b, cols, cnt);
	pgw_put_data_row(b, cols, cnt);
	fuzz_require(!b->has_error);
	/* both frame back to back */
	for (size_t at = 0, i = 0; i < 2; i++) {
		struct pgw_hdr h;

		fuzz_require(pgw_read_header(b->data + at, b->len - at, &h) == 1);
		fuzz_require(h.type == (i == 0 ? PGW_MSG_ROW_DESCRIPTION : PGW_MSG_DATA_ROW));
		at += pgw_msg_size(&h);
		fuzz_require(at <= b->len && (i == 0 || at == b->len));
	}
}

/* Run every parser on one body (an exact-size heap copy) and rebuild what parsed. */
static void
fuzz_body(struct pgw_buf *b, uint8_t type, const uint8_t *body, size_t len)
{
	const char *s1, *s2;
	const uint8_t *d;
	size_t dlen;
	uint32_t u1, u2;
	char c;

	if (pgw_parse_auth(body, len, &u1, &d, &dlen) == 0) {
		fuzz_require(dlen == len - 4);
		pgw_buf_reset(b);
		pgw_put_auth(b, u1, d, dlen);
		fuzz_same_body(b, body, len);
	}
	if (pgw_parse_param_status(body, len, &s1, &s2) == 0) {
		pgw_buf_reset(b);
		pgw_put_param_status(b, s1, s2);
		fuzz_same_body(b, body, len);
	}
	if (pgw_parse_backend_key(body, len, &u1, &u2) == 0) {
		pgw_buf_reset(b);
		pgw_put_backend_key(b, u1, u2);
		fuzz_same_body(b, body, len);
	}
	if (pgw_parse_ready(body, len, &c) == 0) {
		fuzz_require(c == 'I' || c == 'T' || c == 'E');
		pgw_buf_reset(b);
		pgw_put_ready(b, c);
		fuzz_same_body(b, body, len);
	}
	fuzz_error(b, body, len);
	if (pgw_parse_password(body, len, &s1) == 0) {
		pgw_buf_reset(b);
		pgw_put_password(b, s1);
		fuzz_same_body(b, body, len);
	}
	if (pgw_parse_sasl_initial(body, len, &s1, &d, &dlen) == 0) {
		pgw_buf_reset(b);
		pgw_put_sasl_initial(b, s1, d, dlen);
		fuzz_same_body(b, body, len);
	}
	if (pgw_parse_query(body, len, &s1) == 0) {
		pgw_buf_reset(b);
		pgw_put_query(b, s1);
		fuzz_same_body(b, body, len);
	}
	if (type == PGW_MSG_PASSWORD) {
		pgw_buf_reset(b);
		pgw_put_sasl_response(b, body, len);
		fuzz_same_body(b, body, len);
	}
	fuzz_rows(b, body, len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pgw_buf b;
	size_t off = 0;

	pgw_buf_init(&b);
	for (;;) {
		struct pgw_hdr h;
		uint8_t *body;
		size_t len;
		int rc = pgw_read_header(data + off, size - off, &h);

		if (rc == 0) {
			fuzz_require(size - off < PGW_HDR_LEN);
			break;
		}
		if (rc < 0)
			break; /* protocol violation: a proxy closes here */
		fuzz_require(rc == 1 && h.len >= 4 && h.type == data[off]);
		if (pgw_msg_size(&h) > size - off)
			break; /* incomplete: wait for more bytes */
		len = h.len - 4;
		if (len <= FUZZ_MAX_BODY) {
			body = malloc(len ? len : 1);
			if (body == NULL)
				break;
			if (len)
				memcpy(body, data + off + PGW_HDR_LEN, len);
			fuzz_body(&b, h.type, body, len);
			free(body);
		}
		off += pgw_msg_size(&h);
	}
	pgw_buf_cleanup(&b);
	return 0;
}
