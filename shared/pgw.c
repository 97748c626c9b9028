/*
 * pgw.c: PostgreSQL wire protocol v3 framing, parsers and builders (see pgw.h).
 * Runs in: both processes. Pure functions over bytes: no sockets, no exit, no
 * logging.
 * Invariants: a parser never reads at or past body + len and accepts a C
 * string only when its NUL lies inside the given bytes; a struct pgw_buf that
 * has an error stays unchanged until pgw_buf_reset(); a pgw_buf points into
 * itself while it uses inline storage, so it must not be copied or moved.
 */
#include "shared/pgw.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest length field a built message may carry (PostgreSQL's MaxAllocSize is 1 GiB - 1). */
#define PGW_BUF_MSG_MAX ((size_t)1 << 30)
#define PGW_PQ_PREFIX   "_pq_."

/* ---- byte order ---------------------------------------------------------- */

static uint32_t
pgw_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void
pgw_set_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/*
 * Find the C string starting at body[*off]: returns it and moves *off past its
 * NUL, or returns NULL when no NUL lies before body[len].
 */
static const char *
pgw_get_cstr(const uint8_t *body, size_t len, size_t *off)
{
	const uint8_t *nul;
	const char *s;

	if (*off >= len)
		return NULL;
	nul = memchr(body + *off, 0, len - *off);
	if (nul == NULL)
		return NULL;
	s = (const char *)(body + *off);
	*off = (size_t)(nul - body) + 1;
	return s;
}

/* ---- framing ------------------------------------------------------------- */

int
pgw_read_header(const uint8_t *buf, size_t n, struct pgw_hdr *h)
{
	uint32_t len;

	if (n < PGW_HDR_LEN)
		return 0;
	len = pgw_get_u32(buf + 1);
	if (len < 4)
		return -1;
	h->type = buf[0];
	h->len = len;
	return 1;
}

int
pgw_read_startup_len(const uint8_t *buf, size_t n, uint32_t *len)
{
	uint32_t v;

	if (n < 4)
		return 0;
	v = pgw_get_u32(buf);
	if (v < 8 || v > PGW_STARTUP_MAX_LEN)
		return -1;
	*len = v;
	return 1;
}

/* ---- startup packet ------------------------------------------------------ */

PRINTF_LIKE(3, 4)
static void
pgw_set_err(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || err_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

static void
pgw_startup_clear(struct pgw_startup *out)
{
	/* data is left alone: it is 10 kB and only read through params */
	out->major = 0;
	out->minor = 0;
	out->cancel_pid = 0;
	out->cancel_key = 0;
	out->user = NULL;
	out->database = NULL;
	out->params_cnt = 0;
	out->pq_options_cnt = 0;
}

/*
 * Parse the name/value pairs of a v3 StartupMessage (body = bytes after the
 * protocol version). Copies them into out->data; params point into the copy.
 */
static enum pgw_startup_kind
pgw_startup_parse_pairs(const uint8_t *body, size_t body_len, struct pgw_startup *out, char *err,
			size_t err_len)
{
	const uint8_t *data = (const uint8_t *)out->data;
	size_t last, off = 0;

	/* the pairs end with a NUL of their own, which must be the packet's last byte */
	if (body_len == 0 || body[body_len - 1] != 0 || body_len > sizeof(out->data))
		goto bad_layout;
	memcpy(out->data, body, body_len);
	last = body_len - 1;

	while (off < last) {
		const char *name, *value;

		/* the NUL at data[last] bounds both strings */
		name = pgw_get_cstr(data, body_len, &off);
		if (name[0] == '\0' || off >= last)
			goto bad_layout; /* empty name in the middle, or name without value */
		value = pgw_get_cstr(data, body_len, &off);
		if (off > last)
			goto bad_layout; /* the value used up the terminator */

		if (strncmp(name, PGW_PQ_PREFIX, strlen(PGW_PQ_PREFIX)) == 0) {
			if (out->pq_options_cnt >= PGW_STARTUP_MAX_PARAMS) {
				pgw_set_err(err, err_len,
					    "too many protocol options in startup packet (max %d)",
					    PGW_STARTUP_MAX_PARAMS);
				goto fail;
			}
			out->pq_options[out->pq_options_cnt++] = name;
			continue;
		}
		if (out->params_cnt >= PGW_STARTUP_MAX_PARAMS) {
			pgw_set_err(err, err_len, "too many parameters in startup packet (max %d)",
				    PGW_STARTUP_MAX_PARAMS);
			goto fail;
		}
		out->params[out->params_cnt].name = name;
		out->params[out->params_cnt].value = value;
		out->params_cnt++;
		/* a repeated name overrides the earlier one, as in PostgreSQL */
		if (strcmp(name, "user") == 0)
			out->user = value;
		else if (strcmp(name, "database") == 0)
			out->database = value;
	}

	if (out->user == NULL || out->user[0] == '\0') {
		pgw_set_err(err, err_len, "no PostgreSQL user name specified in startup packet");
		out->params_cnt = 0;
		out->pq_options_cnt = 0;
		out->user = NULL;
		out->database = NULL;
		return PGW_STARTUP_NO_USER;
	}
	if (out->database == NULL || out->database[0] == '\0')
		out->database = out->user;
	return PGW_STARTUP_V3;

bad_layout:
	pgw_set_err(err, err_len,
		    "invalid startup packet layout: expected terminator as last byte");
fail:
	/* leave nothing half-filled behind an invalid packet */
	out->params_cnt = 0;
	out->pq_options_cnt = 0;
	out->user = NULL;
	out->database = NULL;
	return PGW_STARTUP_INVALID;
}

enum pgw_startup_kind
pgw_startup_parse(const uint8_t *buf, size_t n, struct pgw_startup *out, char *err, size_t err_len)
{
	uint32_t code;

	pgw_startup_clear(out);
	if (n < 8 || n > PGW_STARTUP_MAX_LEN || pgw_get_u32(buf) != n) {
		pgw_set_err(err, err_len, "invalid length of startup packet");
		return PGW_STARTUP_INVALID;
	}
	code = pgw_get_u32(buf + 4);
	out->major = (uint16_t)(code >> 16);
	out->minor = (uint16_t)(code & 0xffff);

	switch (code) {
	case PGW_CODE_CANCEL:
		if (n != 16) {
			pgw_set_err(err, err_len, "invalid length of cancel request packet");
			return PGW_STARTUP_BAD_CANCEL;
		}
		out->cancel_pid = pgw_get_u32(buf + 8);
		out->cancel_key = pgw_get_u32(buf + 12);
		return PGW_STARTUP_CANCEL;
	case PGW_CODE_SSL:
	case PGW_CODE_GSSENC:
		/* PostgreSQL 15 answers a longer one too, and skips what follows the code */
		return code == PGW_CODE_SSL ? PGW_STARTUP_SSL : PGW_STARTUP_GSSENC;
	default:
		break;
	}

	if (out->major != 3) {
		pgw_set_err(err, err_len,
			    "unsupported frontend protocol %u.%u: server supports 3.0",
			    (unsigned)out->major, (unsigned)out->minor);
		return PGW_STARTUP_BAD_MAJOR;
	}
	return pgw_startup_parse_pairs(buf + 8, n - 8, out, err, err_len);
}

const char *
pgw_startup_get(const struct pgw_startup *s, const char *name)
{
	/* search backwards: the last occurrence wins, as it does for user and database */
	for (size_t i = s->params_cnt; i > 0; i--) {
		if (strcmp(s->params[i - 1].name, name) == 0)
			return s->params[i - 1].value;
	}
	return NULL;
}

/* ---- parsers ------------------------------------------------------------- */

int
pgw_parse_auth(const uint8_t *body, size_t len, uint32_t *code, const uint8_t **data,
	       size_t *data_len)
{
	if (len < 4)
		return -1;
	*code = pgw_get_u32(body);
	*data = body + 4;
	*data_len = len - 4;
	return 0;
}

int
pgw_parse_param_status(const uint8_t *body, size_t len, const char **name, const char **value)
{
	size_t off = 0;
	const char *n, *v;

	n = pgw_get_cstr(body, len, &off);
	if (n == NULL)
		return -1;
	v = pgw_get_cstr(body, len, &off);
	if (v == NULL || off != len)
		return -1;
	*name = n;
	*value = v;
	return 0;
}

int
pgw_parse_backend_key(const uint8_t *body, size_t len, uint32_t *pid, uint32_t *key)
{
	if (len != 8)
		return -1;
	*pid = pgw_get_u32(body);
	*key = pgw_get_u32(body + 4);
	return 0;
}

int
pgw_parse_ready(const uint8_t *body, size_t len, char *status)
{
	if (len != 1)
		return -1;
	if (body[0] != 'I' && body[0] != 'T' && body[0] != 'E')
		return -1;
	*status = (char)body[0];
	return 0;
}

int
pgw_parse_data_col(const uint8_t *body, size_t len, unsigned cols, unsigned i, char *out,
		   size_t out_len)
{
	size_t off = 2;

	if (len < 2 || ((unsigned)body[0] << 8 | body[1]) != cols || i >= cols)
		return -1;
	for (unsigned k = 0; k < cols; k++) {
		int32_t n;

		if (off + 4 > len)
			return -1;
		n = (int32_t)((uint32_t)body[off] << 24 | (uint32_t)body[off + 1] << 16 |
			      (uint32_t)body[off + 2] << 8 | body[off + 3]);
		off += 4;
		if (n < 0) {
			if (k == i)
				return -1;
			continue;
		}
		if ((size_t)n > len - off)
			return -1;
		if (k == i) {
			if ((size_t)n >= out_len)
				return -1;
			memcpy(out, body + off, (size_t)n);
			out[n] = '\0';
			return 0;
		}
		off += (size_t)n;
	}
	return -1;
}

int
pgw_parse_error(const uint8_t *body, size_t len, struct pgw_error_fields *f)
{
	struct pgw_error_fields r = { 0 };
	size_t off = 0;

	for (;;) {
		uint8_t code;
		const char *v;

		if (off >= len)
			return -1; /* no terminating zero byte */
		code = body[off++];
		if (code == 0)
			break;
		v = pgw_get_cstr(body, len, &off);
		if (v == NULL)
			return -1;
		switch (code) {
		case 'S':
			r.severity = v;
			break;
		case 'C':
			r.sqlstate = v;
			break;
		case 'M':
			r.message = v;
			break;
		case 'D':
			r.detail = v;
			break;
		case 'H':
			r.hint = v;
			break;
		case 'R':
			r.routine = v;
			break;
		default:
			break; /* fields we do not use, and future ones */
		}
	}
	if (off != len)
		return -1;
	*f = r;
	return 0;
}

/* A body that is exactly one C string. */
static int
pgw_parse_one_cstr(const uint8_t *body, size_t len, const char **s)
{
	size_t off = 0;
	const char *v = pgw_get_cstr(body, len, &off);

	if (v == NULL || off != len)
		return -1;
	*s = v;
	return 0;
}

int
pgw_parse_password(const uint8_t *body, size_t len, const char **password)
{
	return pgw_parse_one_cstr(body, len, password);
}

int
pgw_parse_sasl_initial(const uint8_t *body, size_t len, const char **mechanism,
		       const uint8_t **data, size_t *data_len)
{
	size_t off = 0;
	const char *mech;
	uint32_t n;

	mech = pgw_get_cstr(body, len, &off);
	if (mech == NULL || len - off < 4)
		return -1;
	n = pgw_get_u32(body + off);
	off += 4;
	if (n == UINT32_MAX) { /* Int32 -1: no initial response */
		if (off != len)
			return -1;
		*mechanism = mech;
		*data = NULL;
		*data_len = 0;
		return 0;
	}
	if (n > INT32_MAX || (size_t)n != len - off)
		return -1;
	*mechanism = mech;
	*data = body + off;
	*data_len = n;
	return 0;
}

int
pgw_parse_query(const uint8_t *body, size_t len, const char **sql)
{
	return pgw_parse_one_cstr(body, len, sql);
}

/* ---- buffer -------------------------------------------------------------- */

void
pgw_buf_init(struct pgw_buf *b)
{
	b->data = b->inline_data;
	b->len = 0;
	b->cap = sizeof(b->inline_data);
	b->msg_start = 0;
	b->has_error = false;
}

void
pgw_buf_cleanup(struct pgw_buf *b)
{
	if (b->data != b->inline_data)
		free(b->data);
	pgw_buf_init(b);
}

void
pgw_buf_reset(struct pgw_buf *b)
{
	b->len = 0;
	b->msg_start = 0;
	b->has_error = false;
}

/*
 * Make room for n more bytes. Returns false (and sets has_error) when the
 * buffer already failed, the message would pass PGW_BUF_MSG_MAX or memory
 * runs out.
 */
static bool
pgw_buf_reserve(struct pgw_buf *b, size_t n)
{
	size_t need, cap;
	uint8_t *p;

	if (b->has_error)
		return false;
	if (n > PGW_BUF_MSG_MAX || b->len - b->msg_start > PGW_BUF_MSG_MAX - n) {
		errno = EMSGSIZE;
		goto fail;
	}
	need = b->len + n;
	if (need <= b->cap)
		return true;
	for (cap = b->cap; cap < need; cap *= 2) {
		if (cap > SIZE_MAX / 2) {
			errno = ENOMEM;
			goto fail;
		}
	}
	if (b->data == b->inline_data) {
		p = malloc(cap);
		if (p == NULL)
			goto fail;
		memcpy(p, b->data, b->len);
	} else {
		p = realloc(b->data, cap);
		if (p == NULL)
			goto fail;
	}
	b->data = p;
	b->cap = cap;
	return true;
fail:
	b->has_error = true;
	return false;
}

void
pgw_begin(struct pgw_buf *b, uint8_t type)
{
	if (b->has_error)
		return;
	if (type != 0)
		pgw_put_u8(b, type);
	if (b->has_error)
		return;
	/* msg_start is the length field's offset: pgw_end() patches it there */
	b->msg_start = b->len;
	pgw_put_u32(b, 0);
}

void
pgw_end(struct pgw_buf *b)
{
	size_t n;

	if (b->has_error)
		return;
	if (b->len < b->msg_start + 4) {
		b->has_error = true; /* pgw_end() without pgw_begin() */
		return;
	}
	n = b->len - b->msg_start;
	pgw_set_u32(b->data + b->msg_start, (uint32_t)n);
}

void
pgw_put_u8(struct pgw_buf *b, uint8_t v)
{
	if (!pgw_buf_reserve(b, 1))
		return;
	b->data[b->len++] = v;
}

void
pgw_put_u16(struct pgw_buf *b, uint16_t v)
{
	if (!pgw_buf_reserve(b, 2))
		return;
	b->data[b->len++] = (uint8_t)(v >> 8);
	b->data[b->len++] = (uint8_t)v;
}

void
pgw_put_u32(struct pgw_buf *b, uint32_t v)
{
	if (!pgw_buf_reserve(b, 4))
		return;
	pgw_set_u32(b->data + b->len, v);
	b->len += 4;
}

void
pgw_put_bytes(struct pgw_buf *b, const void *p, size_t n)
{
	if (n == 0 || !pgw_buf_reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void
pgw_put_str(struct pgw_buf *b, const char *s)
{
	if (s == NULL) {
		b->has_error = true;
		return;
	}
	pgw_put_bytes(b, s, strlen(s) + 1);
}

/* ---- backend messages ---------------------------------------------------- */

void
pgw_put_error(struct pgw_buf *b, bool is_notice, const char *severity, const char *sqlstate,
	      const char *message, const char *detail, const char *hint)
{
	pgw_begin(b, is_notice ? PGW_MSG_NOTICE : PGW_MSG_ERROR);
	pgw_put_u8(b, 'S');
	pgw_put_str(b, severity);
	pgw_put_u8(b, 'V');
	pgw_put_str(b, severity);
	pgw_put_u8(b, 'C');
	pgw_put_str(b, sqlstate);
	pgw_put_u8(b, 'M');
	pgw_put_str(b, message);
	if (detail != NULL) {
		pgw_put_u8(b, 'D');
		pgw_put_str(b, detail);
	}
	if (hint != NULL) {
		pgw_put_u8(b, 'H');
		pgw_put_str(b, hint);
	}
	pgw_put_u8(b, 0);
	pgw_end(b);
}

void
pgw_put_auth(struct pgw_buf *b, uint32_t code, const void *data, size_t data_len)
{
	pgw_begin(b, PGW_MSG_AUTH);
	pgw_put_u32(b, code);
	pgw_put_bytes(b, data, data_len);
	pgw_end(b);
}

void
pgw_put_auth_sasl(struct pgw_buf *b, const char *mechanism)
{
	pgw_begin(b, PGW_MSG_AUTH);
	pgw_put_u32(b, PGW_AUTH_SASL);
	pgw_put_str(b, mechanism);
	pgw_put_u8(b, 0); /* ends the list of mechanisms */
	pgw_end(b);
}

void
pgw_put_param_status(struct pgw_buf *b, const char *name, const char *value)
{
	pgw_begin(b, PGW_MSG_PARAMETER_STATUS);
	pgw_put_str(b, name);
	pgw_put_str(b, value);
	pgw_end(b);
}

void
pgw_put_backend_key(struct pgw_buf *b, uint32_t pid, uint32_t key)
{
	pgw_begin(b, PGW_MSG_BACKEND_KEY);
	pgw_put_u32(b, pid);
	pgw_put_u32(b, key);
	pgw_end(b);
}

void
pgw_put_ready(struct pgw_buf *b, char status)
{
	pgw_begin(b, PGW_MSG_READY);
	pgw_put_u8(b, (uint8_t)status);
	pgw_end(b);
}

void
pgw_put_negotiate_version(struct pgw_buf *b, uint32_t version, const char *const *options,
			  size_t options_cnt)
{
	if (options_cnt > INT32_MAX) {
		b->has_error = true;
		return;
	}
	pgw_begin(b, PGW_MSG_NEGOTIATE_VERSION);
	pgw_put_u32(b, version);
	pgw_put_u32(b, (uint32_t)options_cnt);
	for (size_t i = 0; i < options_cnt; i++)
		pgw_put_str(b, options[i]);
	pgw_end(b);
}

void
pgw_put_row_description(struct pgw_buf *b, const char *const *names, size_t cols_cnt)
{
	if (cols_cnt > UINT16_MAX) {
		b->has_error = true;
		return;
	}
	pgw_begin(b, PGW_MSG_ROW_DESCRIPTION);
	pgw_put_u16(b, (uint16_t)cols_cnt);
	for (size_t i = 0; i < cols_cnt; i++) {
		pgw_put_str(b, names[i]);
		pgw_put_u32(b, 0);          /* table oid */
		pgw_put_u16(b, 0);          /* column attnum */
		pgw_put_u32(b, 25);         /* type oid: text */
		pgw_put_u16(b, UINT16_MAX); /* typlen -1: variable */
		pgw_put_u32(b, UINT32_MAX); /* typmod -1 */
		pgw_put_u16(b, 0);          /* format: text */
	}
	pgw_end(b);
}

void
pgw_put_data_row(struct pgw_buf *b, const char *const *values, size_t cols_cnt)
{
	if (cols_cnt > UINT16_MAX) {
		b->has_error = true;
		return;
	}
	pgw_begin(b, PGW_MSG_DATA_ROW);
	pgw_put_u16(b, (uint16_t)cols_cnt);
	for (size_t i = 0; i < cols_cnt; i++) {
		size_t n;

		if (values[i] == NULL) {
			pgw_put_u32(b, UINT32_MAX); /* Int32 -1: SQL NULL */
			continue;
		}
		n = strlen(values[i]);
		if (n > PGW_BUF_MSG_MAX) {
			b->has_error = true;
			return;
		}
		pgw_put_u32(b, (uint32_t)n);
		pgw_put_bytes(b, values[i], n);
	}
	pgw_end(b);
}

void
pgw_put_command_complete(struct pgw_buf *b, const char *tag)
{
	pgw_begin(b, PGW_MSG_COMMAND_COMPLETE);
	pgw_put_str(b, tag);
	pgw_end(b);
}

void
pgw_put_empty_query(struct pgw_buf *b)
{
	pgw_begin(b, PGW_MSG_EMPTY_QUERY);
	pgw_end(b);
}

/* ---- frontend messages --------------------------------------------------- */

void
pgw_put_startup(struct pgw_buf *b, const char *const *names, const char *const *values,
		size_t params_cnt)
{
	pgw_begin(b, 0);
	pgw_put_u32(b, PGW_PROTO_3_0);
	for (size_t i = 0; i < params_cnt; i++) {
		pgw_put_str(b, names[i]);
		pgw_put_str(b, values[i]);
	}
	pgw_put_u8(b, 0);
	pgw_end(b);
}

void
pgw_put_password(struct pgw_buf *b, const char *password)
{
	pgw_begin(b, PGW_MSG_PASSWORD);
	pgw_put_str(b, password);
	pgw_end(b);
}

void
pgw_put_sasl_initial(struct pgw_buf *b, const char *mechanism, const void *data, size_t data_len)
{
	if (data != NULL && data_len > INT32_MAX) {
		b->has_error = true;
		return;
	}
	pgw_begin(b, PGW_MSG_PASSWORD);
	pgw_put_str(b, mechanism);
	if (data == NULL) {
		pgw_put_u32(b, UINT32_MAX); /* Int32 -1: no initial response */
	} else {
		pgw_put_u32(b, (uint32_t)data_len);
		pgw_put_bytes(b, data, data_len);
	}
	pgw_end(b);
}

void
pgw_put_sasl_response(struct pgw_buf *b, const void *data, size_t data_len)
{
	pgw_begin(b, PGW_MSG_PASSWORD);
	pgw_put_bytes(b, data, data_len);
	pgw_end(b);
}

void
pgw_put_query(struct pgw_buf *b, const char *sql)
{
	pgw_begin(b, PGW_MSG_QUERY);
	pgw_put_str(b, sql);
	pgw_end(b);
}

void
pgw_put_target(struct pgw_buf *b, uint8_t type, char kind, const char *name)
{
	pgw_begin(b, type);
	pgw_put_u8(b, (uint8_t)kind);
	pgw_put_str(b, name);
	pgw_end(b);
}

void
pgw_put_terminate(struct pgw_buf *b)
{
	pgw_begin(b, PGW_MSG_TERMINATE);
	pgw_end(b);
}

void
pgw_put_cancel_request(struct pgw_buf *b, uint32_t pid, uint32_t key)
{
	pgw_begin(b, 0);
	pgw_put_u32(b, PGW_CODE_CANCEL);
	pgw_put_u32(b, pid);
	pgw_put_u32(b, key);
	pgw_end(b);
}
