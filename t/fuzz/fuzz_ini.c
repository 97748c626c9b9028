/*
 * fuzz_ini.c: libFuzzer target for shared/config.c.
 * Runs in: the fuzzer (clang -fsanitize=fuzzer) or t/fuzz/replay.c.
 *
 * The input is split at its first NUL byte: the part before is pgdog.ini,
 * the part after (up to a second NUL) is users.ini; both go through
 * config_load_strings(). When a second NUL is present, the text after it (up
 * to a third NUL) is also loaded alone as a -d URL. Every configuration is
 * freed, so a leak shows up under ASan.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	char *buf = malloc(size + 2);
	const char *ini, *users, *url = NULL;
	const uint8_t *nul;
	struct config *cfg;

	if (buf == NULL)
		return 0;
	/* two NULs at the end: every part below is a terminated string */
	memcpy(buf, data, size);
	buf[size] = '\0';
	buf[size + 1] = '\0';
	ini = buf;
	users = buf + strlen(buf) + 1;
	nul = memchr(data, '\0', size);
	if (nul != NULL) {
		size_t users_off = (size_t)(nul - data) + 1;

		if (memchr(data + users_off, '\0', size - users_off) != NULL)
			url = users + strlen(users) + 1;
	}

	cfg = config_new();
	if (cfg != NULL) {
		if (config_load_strings(cfg, "pgdog.ini", ini, "users.ini", nul ? users : NULL, err,
					sizeof(err)) == 0 &&
		    cfg->pools_cnt > 0)
			(void)config_find_pool(cfg, cfg->users[0].name, cfg->users[0].database);
		config_free(cfg);
	}
	if (url != NULL && (cfg = config_new()) != NULL) {
		if (config_load(cfg, NULL, NULL, &url, 1, err, sizeof(err)) == 0)
			(void)config_find_user(cfg, cfg->users_cnt ? cfg->users[0].name : "");
		config_free(cfg);
	}
	free(buf);
	return 0;
}
