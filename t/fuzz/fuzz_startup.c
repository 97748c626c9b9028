/*
 * fuzz_startup.c: libFuzzer target for the startup phase: the input is what a
 * client sends before authentication, one or more untyped packets
 * (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage) framed by
 * pgw_read_startup_len() and parsed by pgw_startup_parse() when whole.
 * A parsed StartupMessage is rebuilt with pgw_put_startup() and parsed again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/pgw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pgw_startup fuzz_st, fuzz_st2; /* 11 kB each */

static void
fuzz_require(bool ok)
{
	if (!ok)
		abort();
}

/* A string that points into s->data and ends inside it. */
static bool
fuzz_in_data(const struct pgw_startup *s, const char *p)
{
	return p >= s->data && p < s->data + sizeof(s->data) &&
	       memchr(p, 0, (size_t)(s->data + sizeof(s->data) - p)) != NULL;
}

static void
fuzz_check_v3(const uint8_t *pkt, size_t n)
{
	const char *names[PGW_STARTUP_MAX_PARAMS], *values[PGW_STARTUP_MAX_PARAMS];
	struct pgw_buf b;
	char err[128];

	fuzz_require(fuzz_st.user != NULL && fuzz_st.user[0] != '\0');
	fuzz_require(fuzz_st.database != NULL);
	fuzz_require(fuzz_st.params_cnt >= 1 && fuzz_st.params_cnt <= PGW_STARTUP_MAX_PARAMS);
	fuzz_require(fuzz_st.pq_options_cnt <= PGW_STARTUP_MAX_PARAMS);
	for (size_t i = 0; i < fuzz_st.params_cnt; i++) {
		fuzz_require(fuzz_in_data(&fuzz_st, fuzz_st.params[i].name));
		fuzz_require(fuzz_in_data(&fuzz_st, fuzz_st.params[i].value));
		fuzz_require(fuzz_st.params[i].name[0] != '\0');
		names[i] = fuzz_st.params[i].name;
		values[i] = fuzz_st.params[i].value;
	}
	for (size_t i = 0; i < fuzz_st.pq_options_cnt; i++) {
		fuzz_require(fuzz_in_data(&fuzz_st, fuzz_st.pq_options[i]));
		fuzz_require(strncmp(fuzz_st.pq_options[i], "_pq_.", 5) == 0);
	}
	fuzz_require(pgw_startup_get(&fuzz_st, "user") == fuzz_st.user);

	/* without its _pq_ options the packet rebuilds to at most its own size */
	pgw_buf_init(&b);
	pgw_put_startup(&b, names, values, fuzz_st.params_cnt);
	fuzz_require(!b.has_error && b.len <= n);
	fuzz_require(pgw_startup_parse(b.data, b.len, &fuzz_st2, err, sizeof(err)) ==
		     PGW_STARTUP_V3);
	fuzz_require(fuzz_st2.params_cnt == fuzz_st.params_cnt);
	fuzz_require(strcmp(fuzz_st2.user, fuzz_st.user) == 0);
	fuzz_require(strcmp(fuzz_st2.database, fuzz_st.database) == 0);
	for (size_t i = 0; i < fuzz_st.params_cnt; i++) {
		fuzz_require(strcmp(fuzz_st2.params[i].name, names[i]) == 0);
		fuzz_require(strcmp(fuzz_st2.params[i].value, values[i]) == 0);
	}
	if (fuzz_st.pq_options_cnt == 0 && fuzz_st.minor == 0)
		fuzz_require(b.len == n && memcmp(b.data, pkt, n) == 0);
	pgw_buf_cleanup(&b);
}

static void
fuzz_one_packet(const uint8_t *pkt, size_t n)
{
	char err[256];
	enum pgw_startup_kind kind;
	struct pgw_buf b;

	err[0] = '\0';
	kind = pgw_startup_parse(pkt, n, &fuzz_st, err, sizeof(err));
	switch (kind) {
	case PGW_STARTUP_V3:
		fuzz_check_v3(pkt, n);
		break;
	case PGW_STARTUP_CANCEL:
		pgw_buf_init(&b);
		pgw_put_cancel_request(&b, fuzz_st.cancel_pid, fuzz_st.cancel_key);
		fuzz_require(!b.has_error && b.len == n && memcmp(b.data, pkt, n) == 0);
		pgw_buf_cleanup(&b);
		break;
	case PGW_STARTUP_SSL:
	case PGW_STARTUP_GSSENC:
		fuzz_require(n >= 8);
		break;
	case PGW_STARTUP_BAD_MAJOR:
		fuzz_require(fuzz_st.major != 3);
		break;
	case PGW_STARTUP_INVALID:
	case PGW_STARTUP_NO_USER:
	case PGW_STARTUP_BAD_CANCEL:
		fuzz_require(err[0] != '\0' && memchr(err, 0, sizeof(err)) != NULL);
		fuzz_require(fuzz_st.user == NULL && fuzz_st.params_cnt == 0);
		break;
	default:
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	/* frame packets as a server reads them from the socket */
	while (off < size) {
		uint32_t len;
		uint8_t *pkt;
		int rc = pgw_read_startup_len(data + off, size - off, &len);

		if (rc <= 0)
			break; /* need more bytes, or a length to reject */
		fuzz_require(len >= 8 && len <= PGW_STARTUP_MAX_LEN);
		if (len > size - off)
			break; /* incomplete packet: wait for more */
		/* an exact-size copy, so any read past the packet is caught */
		pkt = malloc(len);
		if (pkt == NULL)
			return 0;
		memcpy(pkt, data + off, len);
		fuzz_one_packet(pkt, len);
		free(pkt);
		off += len;
	}

	/* the parser must also survive being handed any bytes at all */
	if (size <= PGW_STARTUP_MAX_LEN) {
		char err[64];
		enum pgw_startup_kind kind =
			pgw_startup_parse(data, size, &fuzz_st, err, sizeof(err));

		fuzz_require(kind >= PGW_STARTUP_INVALID && kind <= PGW_STARTUP_BAD_CANCEL);
	}
	return 0;
}
