/*
 * sv_main.h: the pgdog program: command line, start-up, daemon, pidfile,
 * reload, and the supervision loop that turns signals into actions.
 * Runs in: the supervisor.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "shared/compiler.h"

#define SV_MAIN_URLS_MAX      64
#define SV_MAIN_DEFAULT_INI   "pgdog.ini"
#define SV_MAIN_DEFAULT_USERS "users.ini"
#define SV_MAIN_KILL_AFTER_MS 5000 /* fast shutdown: SIGKILL workers still alive after this */

/* The command line. Strings are borrowed from argv. */
struct sv_opts {
	const char *config_path;            /* -c; NULL: SV_MAIN_DEFAULT_INI if it exists */
	const char *users_path;             /* -u; NULL: SV_MAIN_DEFAULT_USERS if it exists */
	const char *urls[SV_MAIN_URLS_MAX]; /* -d, in order */
	size_t urls_cnt;
	const char *pidfile;  /* --pidfile, or NULL */
	bool is_daemon;       /* --daemon */
	bool is_check_config; /* --check-config */
	bool is_upgrade;      /* --upgrade */
	bool is_version;      /* --version */
	bool is_help;         /* --help */
};

/*
 * Parse argv (without the `hash` subcommand). 0 on success; -1 after
 * printing what is wrong on stderr (the caller prints the usage, exit 2).
 */
int sv_main_parse_options(struct sv_opts *o, int argc, char **argv) MUST_CHECK;
