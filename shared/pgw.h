/*
 * pgw.h: PostgreSQL wire protocol v3: framing, parsing of the messages pgdog
 * must read, builders for the messages it must write, SQLSTATE names.
 * Runs in: both processes. Pure functions over bytes: no sockets, no exit,
 * no logging. Every parser takes (pointer, length) and never reads past it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/compiler.h"

/* ---- SQLSTATEs (the codes PostgreSQL itself sends) ---------------------- */
#define SQLSTATE_SUCCESSFUL_COMPLETION       "00000"
#define SQLSTATE_CONNECTION_EXCEPTION        "08000"
#define SQLSTATE_CONNECTION_FAILURE          "08006"
#define SQLSTATE_CANNOT_CONNECT_NOW          "57P03"
#define SQLSTATE_PROTOCOL_VIOLATION          "08P01"
#define SQLSTATE_FEATURE_NOT_SUPPORTED       "0A000"
#define SQLSTATE_INVALID_AUTHORIZATION       "28000"
#define SQLSTATE_INVALID_PASSWORD            "28P01"
#define SQLSTATE_INVALID_CATALOG_NAME        "3D000"
#define SQLSTATE_TOO_MANY_CONNECTIONS        "53300"
#define SQLSTATE_OUT_OF_MEMORY               "53200"
#define SQLSTATE_PROGRAM_LIMIT_EXCEEDED      "54000"
#define SQLSTATE_ADMIN_SHUTDOWN              "57P01"
#define SQLSTATE_QUERY_CANCELED              "57014"
#define SQLSTATE_IDLE_SESSION_TIMEOUT        "57P05"
#define SQLSTATE_IDLE_IN_TRANSACTION_TIMEOUT "25P03"
#define SQLSTATE_SYNTAX_ERROR                "42601"
#define SQLSTATE_NAME_TOO_LONG               "42622"
#define SQLSTATE_UNDEFINED_OBJECT            "42704"
#define SQLSTATE_DUPLICATE_PSTATEMENT        "42P05"
#define SQLSTATE_INVALID_SQL_STATEMENT_NAME  "26000"
#define SQLSTATE_IN_FAILED_SQL_TRANSACTION   "25P02"
#define SQLSTATE_INTERNAL_ERROR              "XX000"
#define SQLSTATE_CONFIG_FILE_ERROR           "F0000"
#define SQLSTATE_CANT_CHANGE_RUNTIME_PARAM   "55P02"
#define SQLSTATE_INVALID_PARAMETER_VALUE     "22023"

/* ---- message types ------------------------------------------------------ */
/* frontend (client -> server) */
#define PGW_MSG_QUERY         'Q'
#define PGW_MSG_PARSE         'P'
#define PGW_MSG_BIND          'B'
#define PGW_MSG_EXECUTE       'E'
#define PGW_MSG_DESCRIBE      'D'
#define PGW_MSG_CLOSE         'C'
#define PGW_MSG_SYNC          'S'
#define PGW_MSG_FLUSH         'H'
#define PGW_MSG_FUNCTION_CALL 'F'
#define PGW_MSG_TERMINATE     'X'
#define PGW_MSG_COPY_DATA     'd'
#define PGW_MSG_COPY_DONE     'c'
#define PGW_MSG_COPY_FAIL     'f'
#define PGW_MSG_PASSWORD      'p' /* also SASLInitialResponse, SASLResponse */
/* backend (server -> client) */
#define PGW_MSG_AUTH                  'R'
#define PGW_MSG_BACKEND_KEY           'K'
#define PGW_MSG_PARAMETER_STATUS      'S'
#define PGW_MSG_READY                 'Z'
#define PGW_MSG_ROW_DESCRIPTION       'T'
#define PGW_MSG_DATA_ROW              'D'
#define PGW_MSG_COMMAND_COMPLETE      'C'
#define PGW_MSG_ERROR                 'E'
#define PGW_MSG_NOTICE                'N'
#define PGW_MSG_NOTIFICATION          'A'
#define PGW_MSG_PARSE_COMPLETE        '1'
#define PGW_MSG_BIND_COMPLETE         '2'
#define PGW_MSG_CLOSE_COMPLETE        '3'
#define PGW_MSG_NO_DATA               'n'
#define PGW_MSG_PORTAL_SUSPENDED      's'
#define PGW_MSG_PARAMETER_DESCRIPTION 't'
#define PGW_MSG_COPY_IN               'G'
#define PGW_MSG_COPY_OUT              'H'
#define PGW_MSG_COPY_BOTH             'W'
#define PGW_MSG_EMPTY_QUERY           'I'
#define PGW_MSG_FUNCTION_RESULT       'V'
#define PGW_MSG_NEGOTIATE_VERSION     'v'

/* Authentication request codes (the Int32 after 'R'). */
#define PGW_AUTH_OK            0
#define PGW_AUTH_CLEARTEXT     3
#define PGW_AUTH_MD5           5
#define PGW_AUTH_SASL          10
#define PGW_AUTH_SASL_CONTINUE 11
#define PGW_AUTH_SASL_FINAL    12

/* Special request codes in the protocol-version slot of a startup packet. */
#define PGW_CODE_CANCEL 80877102u /* 1234 << 16 | 5678 */
#define PGW_CODE_SSL    80877103u /* 1234 << 16 | 5679 */
#define PGW_CODE_GSSENC 80877104u /* 1234 << 16 | 5680 */
#define PGW_PROTO_3_0   196608u   /* 3 << 16 */

#define PGW_HDR_LEN         5     /* type byte + Int32 length */
#define PGW_STARTUP_MAX_LEN 10000 /* PostgreSQL's MAX_STARTUP_PACKET_LENGTH */
/* as many parameters as such a packet holds: a one-byte name and an empty value take 3 bytes */
#define PGW_STARTUP_MAX_PARAMS ((PGW_STARTUP_MAX_LEN - 8 - 1) / 3)

/* ---- framing ------------------------------------------------------------ */
struct pgw_hdr {
	uint8_t type;
	uint32_t len; /* the length field: counts itself, not the type byte */
};

/* Bytes a whole message takes on the wire, type byte included. */
static inline size_t
pgw_msg_size(const struct pgw_hdr *h)
{
	return (size_t)h->len + 1;
}

/*
 * Read a typed message header from the first n bytes of buf.
 * Returns 1 when h is filled, 0 when fewer than 5 bytes are available,
 * -1 when the length field is below 4 (a protocol violation).
 * The caller compares h->len with its own maximum.
 */
int pgw_read_header(const uint8_t *buf, size_t n, struct pgw_hdr *h) MUST_CHECK;

/*
 * Read the Int32 length that opens an untyped startup-phase packet
 * (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest).
 * Returns 1 with *len set, 0 when fewer than 4 bytes are available,
 * -1 when len < 8 or len > PGW_STARTUP_MAX_LEN.
 */
int pgw_read_startup_len(const uint8_t *buf, size_t n, uint32_t *len) MUST_CHECK;

/* ---- startup packet ----------------------------------------------------- */
enum pgw_startup_kind {
	PGW_STARTUP_INVALID = -1,
	PGW_STARTUP_V3 = 0,    /* StartupMessage, major version 3 */
	PGW_STARTUP_SSL,       /* SSLRequest */
	PGW_STARTUP_GSSENC,    /* GSSENCRequest */
	PGW_STARTUP_CANCEL,    /* CancelRequest */
	PGW_STARTUP_BAD_MAJOR, /* StartupMessage with a major version other than 3 */
	PGW_STARTUP_NO_USER,   /* StartupMessage without a user (PostgreSQL: 28000) */
	PGW_STARTUP_BAD_CANCEL /* CancelRequest not 16 bytes long: closed without a reply */
};

struct pgw_param {
	const char *name;  /* points into pgw_startup.data */
	const char *value; /* points into pgw_startup.data */
};

struct pgw_startup {
	uint16_t major, minor;
	uint32_t cancel_pid, cancel_key; /* PGW_STARTUP_CANCEL only */
	const char *user;                /* NULL when absent */
	const char *database;            /* defaults to user when absent, as PostgreSQL does */
	struct pgw_param params[PGW_STARTUP_MAX_PARAMS];
	size_t params_cnt;
	/* names of "_pq_." protocol options, for NegotiateProtocolVersion */
	const char *pq_options[PGW_STARTUP_MAX_PARAMS];
	size_t pq_options_cnt;
	char data[PGW_STARTUP_MAX_LEN]; /* private: copy of the parameter bytes */
};

/*
 * Parse one whole startup-phase packet (buf starts at the Int32 length, n is
 * that length). Fills out; on PGW_STARTUP_INVALID writes a reason to err
 * (e.g. "invalid startup packet layout: expected terminator as last byte").
 * A V3 packet without a "user" parameter is invalid (PostgreSQL: "no
 * PostgreSQL user name specified in startup packet"). "_pq_." options are
 * collected in pq_options and not in params.
 */
enum pgw_startup_kind pgw_startup_parse(const uint8_t *buf, size_t n, struct pgw_startup *out,
					char *err, size_t err_len) MUST_CHECK;

/* Value of a startup parameter or NULL. */
const char *pgw_startup_get(const struct pgw_startup *s, const char *name);

/* ---- parsing messages pgdog reads (body = bytes after the 5-byte header) -- */

/* 'R' from a server: the code and the data after it. Returns -1 if too short. */
int pgw_parse_auth(const uint8_t *body, size_t len, uint32_t *code, const uint8_t **data,
		   size_t *data_len) MUST_CHECK;

/* 'S' ParameterStatus: two C strings. Pointers into body. -1 if malformed. */
int pgw_parse_param_status(const uint8_t *body, size_t len, const char **name, const char **value)
	MUST_CHECK;

/* 'K' BackendKeyData (protocol 3.0: exactly 8 bytes). -1 if malformed. */
int pgw_parse_backend_key(const uint8_t *body, size_t len, uint32_t *pid, uint32_t *key) MUST_CHECK;

/* 'Z' ReadyForQuery: status 'I', 'T' or 'E'. -1 if malformed. */
int pgw_parse_ready(const uint8_t *body, size_t len, char *status) MUST_CHECK;

/*
 * 'D' DataRow of exactly cols columns: column i, in text, copied NUL-terminated
 * into out (out_len bytes with the NUL). -1 if malformed, NULL, of another
 * column count, or too long for out.
 */
int pgw_parse_data_col(const uint8_t *body, size_t len, unsigned cols, unsigned i, char *out,
		       size_t out_len) MUST_CHECK;

struct pgw_error_fields {
	const char *severity; /* 'S' (localized) or NULL */
	const char *sqlstate; /* 'C' or NULL */
	const char *message;  /* 'M' or NULL */
	const char *detail;   /* 'D' or NULL */
	const char *hint;     /* 'H' or NULL */
	const char *routine;  /* 'R' (the server's source function, never localized) or NULL */
};

/* 'E' / 'N': fields point into body. -1 if a field is not NUL-terminated. */
int pgw_parse_error(const uint8_t *body, size_t len, struct pgw_error_fields *f) MUST_CHECK;

/* 'p' as PasswordMessage: one C string filling the body. -1 otherwise. */
int pgw_parse_password(const uint8_t *body, size_t len, const char **password) MUST_CHECK;

/* 'p' as SASLInitialResponse: mechanism name, Int32 length (-1 = none), data. */
int pgw_parse_sasl_initial(const uint8_t *body, size_t len, const char **mechanism,
			   const uint8_t **data, size_t *data_len) MUST_CHECK;

/* 'Q' Query: the SQL text (NUL-terminated inside body). -1 otherwise. */
int pgw_parse_query(const uint8_t *body, size_t len, const char **sql) MUST_CHECK;

/* ---- building messages -------------------------------------------------- */

/*
 * A growable byte buffer for building messages. Starts with inline storage;
 * grows on the heap. Builders set the sticky has_error flag (allocation
 * failure, field too long) instead of returning errors: write every field,
 * check has_error once. Several messages may be built back to back.
 */
struct pgw_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t msg_start; /* private: offset of the length field of the message being built */
	bool has_error;
	uint8_t inline_data[512]; /* private */
};

void pgw_buf_init(struct pgw_buf *b);
void pgw_buf_cleanup(struct pgw_buf *b); /* frees heap storage; wipes nothing */
void pgw_buf_reset(struct pgw_buf *b);   /* len = 0, has_error = false */

/* Start a message; type 0 starts an untyped startup-phase packet. */
void pgw_begin(struct pgw_buf *b, uint8_t type);
/* Patch the length of the message started last. */
void pgw_end(struct pgw_buf *b);
void pgw_put_u8(struct pgw_buf *b, uint8_t v);
void pgw_put_u16(struct pgw_buf *b, uint16_t v);
void pgw_put_u32(struct pgw_buf *b, uint32_t v);
void pgw_put_bytes(struct pgw_buf *b, const void *p, size_t n);
void pgw_put_str(struct pgw_buf *b, const char *s); /* with its NUL */

/* Backend messages. */
/* ErrorResponse (or NoticeResponse with is_notice): S, V, C, M, then D and H if not NULL. */
void pgw_put_error(struct pgw_buf *b, bool is_notice, const char *severity, const char *sqlstate,
		   const char *message, const char *detail, const char *hint);
void pgw_put_auth(struct pgw_buf *b, uint32_t code, const void *data, size_t data_len);
/* AuthenticationSASL listing one mechanism ("SCRAM-SHA-256"). */
void pgw_put_auth_sasl(struct pgw_buf *b, const char *mechanism);
void pgw_put_param_status(struct pgw_buf *b, const char *name, const char *value);
void pgw_put_backend_key(struct pgw_buf *b, uint32_t pid, uint32_t key);
void pgw_put_ready(struct pgw_buf *b, char status);
/*
 * NegotiateProtocolVersion: the newest protocol version supported for the
 * major version asked for, as PostgreSQL sends it (the whole version word:
 * PGW_PROTO_3_0, which clients compare with their minimum), and the
 * unrecognised options.
 */
void pgw_put_negotiate_version(struct pgw_buf *b, uint32_t version, const char *const *options,
			       size_t options_cnt);
/* RowDescription of text columns (type oid 25, format 0). */
void pgw_put_row_description(struct pgw_buf *b, const char *const *names, size_t cols_cnt);
/* DataRow of text values; a NULL value is SQL NULL. */
void pgw_put_data_row(struct pgw_buf *b, const char *const *values, size_t cols_cnt);
void pgw_put_command_complete(struct pgw_buf *b, const char *tag);
void pgw_put_empty_query(struct pgw_buf *b);

/* Frontend messages (pgdog as a client of PostgreSQL). */
/* StartupMessage 3.0 with name/value pairs (names[i] = values[i]). */
void pgw_put_startup(struct pgw_buf *b, const char *const *names, const char *const *values,
		     size_t params_cnt);
void pgw_put_password(struct pgw_buf *b, const char *password);
void pgw_put_sasl_initial(struct pgw_buf *b, const char *mechanism, const void *data,
			  size_t data_len);
void pgw_put_sasl_response(struct pgw_buf *b, const void *data, size_t data_len);
void pgw_put_query(struct pgw_buf *b, const char *sql);
/* Close or Describe (type) of a statement ('S') or portal ('P', kind) called name. */
void pgw_put_target(struct pgw_buf *b, uint8_t type, char kind, const char *name);
void pgw_put_terminate(struct pgw_buf *b);
void pgw_put_cancel_request(struct pgw_buf *b, uint32_t pid, uint32_t key);
