/*
 * config.c: load pgdog.ini and users.ini with inih, add -d postgres:// URLs,
 * validate the result and derive the pools.
 * Runs in: the supervisor (load, reload, --check-config); workers only read
 * the result through g_cfg.
 *
 * inih is fed through our own line reader (config_ini_read), which:
 *   - refuses lines longer than CONFIG_MAX_LINE before inih sees them
 *     (Debian's inih silently cuts them at 200 bytes);
 *   - strips leading white space, so inih never treats an indented line as a
 *     continuation of the previous value;
 *   - recognises section headers itself, so repeated and empty sections are
 *     seen (inih reports neither) and every key knows its line number.
 * The first error wins and stops the parse; err then holds one message
 * "FILE:LINE: [section] key = value: what is allowed".
 * Invariant: a struct config returned by a successful load has passed
 * config_validate(), so every pool resolves and every name is unique.
 */
#include "shared/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "shared/secret.h"

const struct config *g_cfg;

#define CONFIG_FILE_MAX    (16 * 1024 * 1024) /* refuse larger INI files */
#define CONFIG_KEYS_MAX    64                 /* keys per section kind (seen bitmask) */
#define CONFIG_POOL_MAX    10000
#define CONFIG_SHARD_MAX   1023
#define CONFIG_MSG_LEN_MAX 1073741823

enum config_key_type {
	CONFIG_KEY_INT,
	CONFIG_KEY_BOOL,
	CONFIG_KEY_STR,
	CONFIG_KEY_ENUM,
	CONFIG_KEY_LOG_LEVEL,
	CONFIG_KEY_SECRET, /* string plus a parsed struct auth_secret */
};

/* String keys */
#define CONFIG_STR_NONEMPTY   0x1 /* "" is refused */
#define CONFIG_STR_EMPTY_NULL 0x2 /* "" means unset (NULL) */
#define CONFIG_STR_WIPE       0x4 /* a password: wiped when replaced, never echoed */
/* Any key */
#define CONFIG_KEY_MARK 0x8 /* also set the bool at has_off: "set in this section" */

struct config_enum {
	const char *name;
	int value;
};

struct config_key {
	const char *name;
	enum config_key_type type;
	size_t off;                       /* of the field in its struct */
	long min, max;                    /* CONFIG_KEY_INT */
	int flags;                        /* CONFIG_KEY_STR, CONFIG_KEY_SECRET */
	size_t secret_off;                /* CONFIG_KEY_SECRET: the struct auth_secret */
	const struct config_enum *values; /* CONFIG_KEY_ENUM, NULL-terminated */
	const char *allowed;              /* CONFIG_KEY_ENUM: for messages */
	size_t has_off;                   /* with CONFIG_KEY_MARK: the bool set with the key */
};

static const struct config_enum config_auth_types[] = {
	{ "scram-sha-256", CONFIG_AUTH_SCRAM },
	{ "scram", CONFIG_AUTH_SCRAM },
	{ "md5", CONFIG_AUTH_MD5 },
	{ "plain", CONFIG_AUTH_PLAIN },
	{ "trust", CONFIG_AUTH_TRUST },
	{ NULL, 0 },
};

static const struct config_enum config_pooler_modes[] = {
	{ "transaction", CONFIG_POOLER_TRANSACTION },
	{ "session", CONFIG_POOLER_SESSION },
	{ "statement", CONFIG_POOLER_STATEMENT },
	{ NULL, 0 },
};
#define CONFIG_POOLER_MODES_ALLOWED "transaction, session, statement"

/* syslog(3) facilities by name, as PgBouncer's syslog_facility takes them */
static const struct config_enum config_syslog_facilities[] = {
	{ "daemon", LOG_DAEMON },
	{ "user", LOG_USER },
	{ "local0", LOG_LOCAL0 },
	{ "local1", LOG_LOCAL1 },
	{ "local2", LOG_LOCAL2 },
	{ "local3", LOG_LOCAL3 },
	{ "local4", LOG_LOCAL4 },
	{ "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 },
	{ "local7", LOG_LOCAL7 },
	{ NULL, 0 },
};
#define CONFIG_SYSLOG_FACILITIES_ALLOWED "daemon, user, local0 ... local7"

static const struct config_enum config_prepared_modes[] = {
	{ "extended", CONFIG_PREPARED_EXTENDED },
	{ "disabled", CONFIG_PREPARED_DISABLED },
	{ "full", CONFIG_PREPARED_FULL },
	{ NULL, 0 },
};

static const struct config_enum config_roles[] = {
	{ "primary", CONFIG_ROLE_PRIMARY },
	{ "replica", CONFIG_ROLE_REPLICA },
	{ "auto", CONFIG_ROLE_AUTO },
	{ NULL, 0 },
};

#define KINT(s, k, lo, hi)                                                                     \
	{                                                                                      \
		.name = #k, .type = CONFIG_KEY_INT, .off = offsetof(struct s, k), .min = (lo), \
		.max = (hi)                                                                    \
	}
#define KBOOL(s, k)                                                               \
	{                                                                         \
		.name = #k, .type = CONFIG_KEY_BOOL, .off = offsetof(struct s, k) \
	}
#define KSTR(s, k, f)                                                                          \
	{                                                                                      \
		.name = #k, .type = CONFIG_KEY_STR, .off = offsetof(struct s, k), .flags = (f) \
	}
#define KENUM(s, k, v, a)                                                                         \
	{                                                                                         \
		.name = #k, .type = CONFIG_KEY_ENUM, .off = offsetof(struct s, k), .values = (v), \
		.allowed = (a)                                                                    \
	}
/* An enum key of a section that may leave it unset: also sets has_<key>. */
#define KENUM_OPT(s, k, v, a)                                                                     \
	{                                                                                         \
		.name = #k, .type = CONFIG_KEY_ENUM, .off = offsetof(struct s, k), .values = (v), \
		.allowed = (a), .flags = CONFIG_KEY_MARK, .has_off = offsetof(struct s, has_##k)  \
	}
#define KSECRET(s, k)                                                                \
	{                                                                            \
		.name = #k, .type = CONFIG_KEY_SECRET, .off = offsetof(struct s, k), \
		.flags = CONFIG_STR_WIPE | CONFIG_STR_EMPTY_NULL,                    \
		.secret_off = offsetof(struct s, secret)                             \
	}

static const struct config_key config_general_keys[] = {
	KSTR(config, host, CONFIG_STR_NONEMPTY),
	KINT(config, port, 1, 65535),
	KINT(config, workers, 1, CONFIG_MAX_WORKERS),
	KSTR(config, unix_socket_dir, 0),
	KINT(config, default_pool_size, 1, CONFIG_POOL_MAX),
	KINT(config, min_pool_size, 0, CONFIG_POOL_MAX),
	KENUM(config, pooler_mode, config_pooler_modes, CONFIG_POOLER_MODES_ALLOWED),
	KENUM(config, prepared_statements, config_prepared_modes, "extended, disabled, full"),
	KINT(config, prepared_statements_limit, 0, 1000000),
	KENUM(config, auth_type, config_auth_types, "scram-sha-256, md5, plain, trust"),
	KINT(config, checkout_timeout, 1, INT_MAX),
	KINT(config, connect_timeout, 1, INT_MAX),
	KINT(config, idle_timeout, 0, INT_MAX),
	KINT(config, server_lifetime, 0, INT_MAX),
	KINT(config, server_lifetime_jitter, 0, INT_MAX),
	KBOOL(config, server_round_robin),
	KINT(config, client_login_timeout, 1, INT_MAX),
	KINT(config, shutdown_timeout, 0, INT_MAX),
	KINT(config, query_timeout, 0, INT_MAX),
	KINT(config, client_idle_timeout, 0, INT_MAX),
	KINT(config, client_idle_in_transaction_timeout, 0, INT_MAX),
	KINT(config, rollback_timeout, 1, INT_MAX),
	KINT(config, pub_sub_channel_size, 0, 1000000),
	KINT(config, query_cache_limit, 16, 1000000),
	KINT(config, stats_period, 1000, 3600000),
	KINT(config, ban_timeout, 0, INT_MAX),
	KINT(config, lsn_check_interval, 0, INT_MAX),
	KINT(config, openmetrics_port, 0, 65535),
	KSTR(config, openmetrics_host, CONFIG_STR_NONEMPTY),
	KSTR(config, openmetrics_namespace, 0),
	KINT(config, max_client_conn, 1, 1000000),
	KINT(config, max_message_len, 1024, CONFIG_MSG_LEN_MAX),
	KSTR(config, server_reset_query, 0),
	KBOOL(config, server_reset_query_always),
	{ .name = "log_level",
	  .type = CONFIG_KEY_LOG_LEVEL,
	  .off = offsetof(struct config, log_level) },
	KSTR(config, log_file, CONFIG_STR_EMPTY_NULL),
	KBOOL(config, syslog),
	KSTR(config, syslog_ident, CONFIG_STR_NONEMPTY),
	KBOOL(config, log_connections),
	KBOOL(config, log_disconnections),
	KBOOL(config, log_pooler_errors),
	KENUM(config, syslog_facility, config_syslog_facilities, CONFIG_SYSLOG_FACILITIES_ALLOWED),
	{ NULL },
};

static const struct config_key config_database_keys[] = {
	KSTR(config_database, name, CONFIG_STR_NONEMPTY),
	KSTR(config_database, host, CONFIG_STR_NONEMPTY),
	KINT(config_database, port, 1, 65535),
	KSTR(config_database, database_name, CONFIG_STR_NONEMPTY),
	KENUM(config_database, role, config_roles, "primary, replica, auto"),
	KINT(config_database, shard, 0, CONFIG_SHARD_MAX),
	KSTR(config_database, user, CONFIG_STR_EMPTY_NULL),
	KSTR(config_database, password, CONFIG_STR_EMPTY_NULL | CONFIG_STR_WIPE),
	KINT(config_database, pool_size, 1, CONFIG_POOL_MAX),
	KINT(config_database, min_pool_size, 0, CONFIG_POOL_MAX),
	KINT(config_database, idle_timeout, 0, INT_MAX),
	KINT(config_database, server_lifetime, 0, INT_MAX),
	KINT(config_database, server_lifetime_jitter, 0, INT_MAX),
	KENUM_OPT(config_database, pooler_mode, config_pooler_modes, CONFIG_POOLER_MODES_ALLOWED),
	{ NULL },
};

static const struct config_key config_user_keys[] = {
	KSTR(config_user, name, CONFIG_STR_NONEMPTY),
	KSTR(config_user, database, CONFIG_STR_NONEMPTY),
	KSECRET(config_user, password),
	KINT(config_user, pool_size, 1, CONFIG_POOL_MAX),
	KINT(config_user, min_pool_size, 0, CONFIG_POOL_MAX),
	KSTR(config_user, server_user, CONFIG_STR_EMPTY_NULL),
	KSTR(config_user, server_password, CONFIG_STR_EMPTY_NULL | CONFIG_STR_WIPE),
	KENUM_OPT(config_user, pooler_mode, config_pooler_modes, CONFIG_POOLER_MODES_ALLOWED),
	{ NULL },
};

static const struct config_key config_admin_keys[] = {
	KSTR(config_admin, name, CONFIG_STR_NONEMPTY),
	KSTR(config_admin, user, CONFIG_STR_NONEMPTY),
	KSECRET(config_admin, password),
	{ NULL },
};

/* the seen bitmask and key_line[] have room for every key of a section */
_Static_assert(ARRAY_SIZE(config_general_keys) - 1 <= CONFIG_KEYS_MAX, "too many [general] keys");
_Static_assert(ARRAY_SIZE(config_database_keys) - 1 <= CONFIG_KEYS_MAX, "too many database keys");
_Static_assert(ARRAY_SIZE(config_user_keys) - 1 <= CONFIG_KEYS_MAX, "too many user keys");
_Static_assert(ARRAY_SIZE(config_admin_keys) - 1 <= CONFIG_KEYS_MAX, "too many [admin] keys");
_Static_assert(CONFIG_KEYS_MAX <= 64, "the seen bitmask is a uint64_t");

/* The database keys a -d URL may set as ?key=value. */
static const char *const config_url_params[] = { "pool_size", "min_pool_size", "role",
						 "shard",     "database_name", NULL };

/* Where an entity was defined, for messages. */
struct config_where {
	const char *file; /* borrowed: the name for messages, NULL for a URL */
	int url;          /* 1-based index of the -d URL it came from, or 0 */
	int line;         /* of its section header */
	int key_line[CONFIG_KEYS_MAX];
};

/* A place in the input, as printed before a message. */
struct config_loc {
	const char *file;
	int line;
	int url;
};

enum config_section_kind {
	CONFIG_SEC_NONE = 0,
	CONFIG_SEC_GENERAL,
	CONFIG_SEC_DATABASE,
	CONFIG_SEC_USER,
	CONFIG_SEC_ADMIN,
};

enum config_file_kind {
	CONFIG_FILE_MAIN,  /* pgdog.ini */
	CONFIG_FILE_USERS, /* users.ini */
};

struct config_seen_section {
	char *name;
	const char *file; /* borrowed */
	int line;
};

/* State of one config_load: lives on the caller's stack. */
struct config_parse {
	struct config *cfg;
	const char *const *urls;
	size_t urls_cnt;
	const char *config_name; /* borrowed: names for messages */
	const char *users_name;

	/* the file being parsed */
	const char *file;
	enum config_file_kind file_kind;
	const char *text;
	size_t pos;
	int lineno;

	/* the current section */
	enum config_section_kind kind;
	size_t idx;                        /* into databases or users */
	char section[CONFIG_MAX_LINE + 8]; /* "[name]" as written, for messages */
	uint64_t seen;                     /* keys set in this section */

	struct config_seen_section *sections;
	size_t sections_cnt;

	struct config_where general_where;
	struct config_where admin_where;
	struct config_where *db_where; /* parallel to cfg->databases */
	struct config_where *user_where;
	size_t db_cap, user_cap;

	bool failed;
	int err_line;
	char *err;
	size_t err_len;
};

/* ---- small helpers ------------------------------------------------------ */

static void
config_str_free(char **s, bool wipe)
{
	if (*s == NULL)
		return;
	if (wipe)
		secret_wipe(*s, strlen(*s));
	free(*s);
	*s = NULL;
}

static int
config_str_set(char **dst, const char *value, bool wipe)
{
	char *copy = strdup(value);

	if (copy == NULL)
		return -1;
	config_str_free(dst, wipe);
	*dst = copy;
	return 0;
}

/* Write a redacted form of url (the password replaced by "***") to out. */
static void
config_url_redact(const char *url, char *out, size_t out_len)
{
	const char *rest = strstr(url, "://");
	const char *at = strrchr(url, '@');
	const char *colon;

	if (rest == NULL || at == NULL || at < rest) {
		snprintf(out, out_len, "%s", url);
		return;
	}
	rest += 3;
	colon = memchr(rest, ':', (size_t)(at - rest));
	if (colon == NULL) {
		snprintf(out, out_len, "%s", url);
		return;
	}
	snprintf(out, out_len, "%.*s:***%s", (int)(colon - url), url, at);
}

/*
 * Record the first error: "PREFIX: message". Later errors are dropped, so
 * the operator sees the first problem in the file.
 */
static void PRINTF_LIKE(3, 4)
	config_fail(struct config_parse *p, struct config_loc loc, const char *fmt, ...)
{
	char prefix[600];
	char redacted[512];
	va_list ap;
	int n;

	if (p->failed)
		return;
	p->failed = true;
	p->err_line = loc.url == 0 ? loc.line : 0;
	if (loc.url > 0 && (size_t)loc.url <= p->urls_cnt) {
		config_url_redact(p->urls[loc.url - 1], redacted, sizeof(redacted));
		snprintf(prefix, sizeof(prefix), "-d %s: ", redacted);
	} else if (loc.file != NULL && loc.line > 0) {
		snprintf(prefix, sizeof(prefix), "%s:%d: ", loc.file, loc.line);
	} else if (loc.file != NULL) {
		snprintf(prefix, sizeof(prefix), "%s: ", loc.file);
	} else {
		prefix[0] = '\0';
	}
	if (p->err == NULL || p->err_len == 0)
		return;
	n = snprintf(p->err, p->err_len, "%s", prefix);
	if (n < 0 || (size_t)n >= p->err_len)
		return;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->err_len - (size_t)n, fmt, ap);
	va_end(ap);
}

static struct config_loc
config_here(const struct config_parse *p)
{
	return (struct config_loc){ .file = p->file, .line = p->lineno };
}

/* The location of an entity, or of one of its keys (-1: the section). */
static struct config_loc
config_where_loc(const struct config_where *w, const struct config_key *table, const char *key)
{
	struct config_loc loc = { .file = w->file, .line = w->line, .url = w->url };

	for (int i = 0; key != NULL && table[i].name != NULL; i++) {
		if (strcmp(table[i].name, key) == 0) {
			if (w->key_line[i] > 0)
				loc.line = w->key_line[i];
			break;
		}
	}
	return loc;
}

static void
config_oom(struct config_parse *p)
{
	config_fail(p, (struct config_loc){ 0 }, "out of memory");
}

/* ---- values ------------------------------------------------------------- */

static bool
config_parse_int(const char *s, long min, long max, int *out)
{
	char *end;
	long v;

	if (!(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1]))))
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = (int)v;
	return true;
}

static bool
config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "on", "yes", "1" };
	static const char *const no[] = { "false", "off", "no", "0" };

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

/*
 * Set one key of the entity at obj from value. what is "[section] " (or ""
 * for a URL parameter), for messages. Returns 0, or -1 after config_fail().
 */
static int config_key_set_value(struct config_parse *p, struct config_loc loc, const char *what,
				const struct config_key *k, void *obj, const char *value);

static int
config_key_set(struct config_parse *p, struct config_loc loc, const char *what,
	       const struct config_key *k, void *obj, const char *value)
{
	if (config_key_set_value(p, loc, what, k, obj, value) < 0)
		return -1;
	if (k->flags & CONFIG_KEY_MARK)
		*(bool *)(void *)((char *)obj + k->has_off) = true;
	return 0;
}

static int
config_key_set_value(struct config_parse *p, struct config_loc loc, const char *what,
		     const struct config_key *k, void *obj, const char *value)
{
	char *field = (char *)obj + k->off;
	char aerr[256];

	switch (k->type) {
	case CONFIG_KEY_INT:
		if (!config_parse_int(value, k->min, k->max, (int *)(void *)field)) {
			config_fail(p, loc, "%s%s = %s: must be an integer between %ld and %ld",
				    what, k->name, value, k->min, k->max);
			return -1;
		}
		return 0;
	case CONFIG_KEY_BOOL:
		if (!config_parse_bool(value, (bool *)(void *)field)) {
			config_fail(
				p, loc,
				"%s%s = %s: must be a boolean (true, false, on, off, yes, no, 1, 0)",
				what, k->name, value);
			return -1;
		}
		return 0;
	case CONFIG_KEY_ENUM:
		for (const struct config_enum *e = k->values; e->name != NULL; e++) {
			if (strcasecmp(value, e->name) == 0) {
				/* enums without negative values are unsigned int in gcc and clang */
				*(unsigned int *)(void *)field = (unsigned int)e->value;
				return 0;
			}
		}
		config_fail(p, loc, "%s%s = %s: must be one of: %s", what, k->name, value,
			    k->allowed);
		return -1;
	case CONFIG_KEY_LOG_LEVEL:
		if (log_level_parse(value, (enum log_level *)(void *)field) < 0) {
			config_fail(p, loc,
				    "%s%s = %s: must be one of: error, warn, info, debug, noise",
				    what, k->name, value);
			return -1;
		}
		return 0;
	case CONFIG_KEY_STR:
	case CONFIG_KEY_SECRET:
		break;
	}

	if (value[0] == '\0' && (k->flags & CONFIG_STR_NONEMPTY)) {
		config_fail(p, loc, "%s%s must not be empty", what, k->name);
		return -1;
	}
	if (value[0] == '\0' && (k->flags & CONFIG_STR_EMPTY_NULL)) {
		config_str_free((char **)(void *)field, k->flags & CONFIG_STR_WIPE);
	} else if (config_str_set((char **)(void *)field, value, k->flags & CONFIG_STR_WIPE) < 0) {
		config_oom(p);
		return -1;
	}
	if (k->type == CONFIG_KEY_SECRET) {
		struct auth_secret *sec =
			(struct auth_secret *)(void *)((char *)obj + k->secret_off);

		auth_secret_cleanup(sec);
		aerr[0] = '\0';
		if (auth_secret_parse(value, sec, aerr, sizeof(aerr)) < 0) {
			config_fail(p, loc, "%s%s: %s", what, k->name,
				    aerr[0] ? aerr : "not a valid password or verifier");
			return -1;
		}
	}
	return 0;
}

/* ---- entities ----------------------------------------------------------- */

static void
config_database_init(struct config_database *d)
{
	memset(d, 0, sizeof(*d));
	d->port = 5432;
	d->role = CONFIG_ROLE_PRIMARY;
	d->pool_size = -1;
	d->min_pool_size = -1;
	d->idle_timeout = -1;
	d->server_lifetime = -1;
	d->server_lifetime_jitter = -1;
	d->has_pooler_mode = false;
}

static void
config_database_cleanup(struct config_database *d)
{
	config_str_free(&d->label, false);
	config_str_free(&d->name, false);
	config_str_free(&d->host, false);
	config_str_free(&d->database_name, false);
	config_str_free(&d->user, false);
	config_str_free(&d->password, true);
}

static void
config_user_cleanup(struct config_user *u)
{
	config_str_free(&u->label, false);
	config_str_free(&u->name, false);
	config_str_free(&u->database, false);
	config_str_free(&u->password, true);
	config_str_free(&u->server_user, false);
	config_str_free(&u->server_password, true);
	auth_secret_cleanup(&u->secret);
}

/* Append a database called label; its name defaults to label. -1 on ENOMEM. */
static int
config_database_add(struct config_parse *p, const char *label, const struct config_where *w)
{
	struct config *cfg = p->cfg;
	struct config_database *d;

	if (cfg->databases_cnt == p->db_cap) {
		size_t cap = p->db_cap ? p->db_cap * 2 : 4;
		struct config_database *nd = realloc(cfg->databases, cap * sizeof(*nd));
		struct config_where *nw;

		if (nd == NULL)
			return -1;
		cfg->databases = nd;
		nw = realloc(p->db_where, cap * sizeof(*nw));
		if (nw == NULL)
			return -1;
		p->db_where = nw;
		p->db_cap = cap;
	}
	d = &cfg->databases[cfg->databases_cnt];
	config_database_init(d);
	d->line = w->line;
	if (config_str_set(&d->label, label, false) < 0 ||
	    config_str_set(&d->name, label, false) < 0) {
		config_database_cleanup(d);
		return -1;
	}
	p->db_where[cfg->databases_cnt] = *w;
	cfg->databases_cnt++;
	return 0;
}

static int
config_user_add(struct config_parse *p, const char *label, const struct config_where *w)
{
	struct config *cfg = p->cfg;
	struct config_user *u;

	if (cfg->users_cnt == p->user_cap) {
		size_t cap = p->user_cap ? p->user_cap * 2 : 4;
		struct config_user *nu = realloc(cfg->users, cap * sizeof(*nu));
		struct config_where *nw;

		if (nu == NULL)
			return -1;
		cfg->users = nu;
		nw = realloc(p->user_where, cap * sizeof(*nw));
		if (nw == NULL)
			return -1;
		p->user_where = nw;
		p->user_cap = cap;
	}
	u = &cfg->users[cfg->users_cnt];
	memset(u, 0, sizeof(*u));
	u->pool_size = -1;
	u->min_pool_size = -1;
	u->line = w->line;
	if (config_str_set(&u->label, label, false) < 0 ||
	    config_str_set(&u->name, label, false) < 0) {
		config_user_cleanup(u);
		return -1;
	}
	p->user_where[cfg->users_cnt] = *w;
	cfg->users_cnt++;
	return 0;
}

/* ---- sections and keys -------------------------------------------------- */

/*
 * A line starting with '[': begin a section. Detects repeated sections over
 * both files and section kinds the file does not allow.
 */
static int
config_section_begin(struct config_parse *p, const char *line)
{
	const char *close = strchr(line, ']');
	const char *after, *start, *end;
	struct config_seen_section *ns;
	struct config_where w = { .file = p->file, .line = p->lineno };
	char name[CONFIG_MAX_LINE + 1];
	const char *label = NULL;
	size_t n;

	if (close == NULL) {
		config_fail(p, config_here(p), "section header %s has no closing ]", line);
		return -1;
	}
	for (after = close + 1; *after == ' ' || *after == '\t'; after++)
		;
	if (*after != '\0' && *after != ';' && *after != '#') {
		config_fail(p, config_here(p), "unexpected text after ]: %s", after);
		return -1;
	}
	for (start = line + 1; start < close && isspace((unsigned char)*start); start++)
		;
	for (end = close; end > start && isspace((unsigned char)end[-1]); end--)
		;
	n = (size_t)(end - start);
	memcpy(name, start, n);
	name[n] = '\0';
	snprintf(p->section, sizeof(p->section), "[%s]", name);

	for (size_t i = 0; i < p->sections_cnt; i++) {
		if (strcmp(p->sections[i].name, name) == 0) {
			config_fail(p, config_here(p), "section [%s] appears twice", name);
			return -1;
		}
	}
	ns = realloc(p->sections, (p->sections_cnt + 1) * sizeof(*ns));
	if (ns == NULL)
		goto oom;
	p->sections = ns;
	ns[p->sections_cnt].name = strdup(name);
	if (ns[p->sections_cnt].name == NULL)
		goto oom;
	ns[p->sections_cnt].file = p->file;
	ns[p->sections_cnt].line = p->lineno;
	p->sections_cnt++;

	p->seen = 0;
	if (p->file_kind == CONFIG_FILE_MAIN && strcmp(name, "general") == 0) {
		p->kind = CONFIG_SEC_GENERAL;
		p->general_where = w;
		return 0;
	}
	if (strcmp(name, "admin") == 0) {
		p->kind = CONFIG_SEC_ADMIN;
		p->admin_where = w;
		return 0;
	}
	if (p->file_kind == CONFIG_FILE_MAIN && strncmp(name, "databases.", 10) == 0) {
		p->kind = CONFIG_SEC_DATABASE;
		label = name + 10;
	} else if (p->file_kind == CONFIG_FILE_USERS && strncmp(name, "users.", 6) == 0) {
		p->kind = CONFIG_SEC_USER;
		label = name + 6;
	}
	if (label == NULL) {
		p->kind = CONFIG_SEC_NONE;
		if (p->file_kind == CONFIG_FILE_MAIN)
			config_fail(
				p, config_here(p),
				"unknown section [%s]: allowed are [general], [databases.NAME] and [admin]",
				name);
		else
			config_fail(p, config_here(p),
				    "unknown section [%s]: allowed are [users.NAME] and [admin]",
				    name);
		return -1;
	}
	if (label[0] == '\0') {
		config_fail(p, config_here(p), "section [%s] needs a name after the dot", name);
		return -1;
	}
	if (p->kind == CONFIG_SEC_DATABASE) {
		if (config_database_add(p, label, &w) < 0)
			goto oom;
		p->idx = p->cfg->databases_cnt - 1;
	} else {
		if (config_user_add(p, label, &w) < 0)
			goto oom;
		p->idx = p->cfg->users_cnt - 1;
	}
	return 0;
oom:
	config_oom(p);
	return -1;
}

/* A key = value line inside the current section. */
static int
config_key_line(struct config_parse *p, const char *name, const char *value)
{
	const struct config_key *table;
	struct config_where *w;
	void *obj;
	char what[sizeof(p->section) + 1];
	int i;

	switch (p->kind) {
	case CONFIG_SEC_GENERAL:
		table = config_general_keys;
		obj = p->cfg;
		w = &p->general_where;
		break;
	case CONFIG_SEC_DATABASE:
		table = config_database_keys;
		obj = &p->cfg->databases[p->idx];
		w = &p->db_where[p->idx];
		break;
	case CONFIG_SEC_USER:
		table = config_user_keys;
		obj = &p->cfg->users[p->idx];
		w = &p->user_where[p->idx];
		break;
	case CONFIG_SEC_ADMIN:
		table = config_admin_keys;
		obj = &p->cfg->admin;
		w = &p->admin_where;
		break;
	case CONFIG_SEC_NONE:
	default:
		config_fail(p, config_here(p), "key \"%s\" is outside any section", name);
		return -1;
	}
	snprintf(what, sizeof(what), "%s ", p->section);
	for (i = 0; table[i].name != NULL; i++) {
		if (strcmp(table[i].name, name) == 0)
			break;
	}
	if (table[i].name == NULL) {
		config_fail(p, config_here(p), "%sunknown key \"%s\"", what, name);
		return -1;
	}
	if (p->seen & (UINT64_C(1) << i)) {
		config_fail(p, config_here(p), "%s%s is set twice (first on line %d)", what, name,
			    w->key_line[i]);
		return -1;
	}
	p->seen |= UINT64_C(1) << i;
	w->key_line[i] = p->lineno;
	return config_key_set(p, config_here(p), what, &table[i], obj, value);
}

/* ---- feeding inih -------------------------------------------------------- */

static int
config_ini_handler(void *user, const char *section, const char *name, const char *value)
{
	struct config_parse *p = user;

	(void)section; /* we track sections ourselves, see config_ini_read() */
	if (p->failed)
		return 0;
	return config_key_line(p, name, value) == 0;
}

/*
 * inih's fgets-like reader: hand over the next line without its newline or
 * leading blanks, after looking at section headers ourselves. Returns NULL
 * at the end of the text or once an error was recorded, which ends the parse.
 */
static char *
config_ini_read(char *str, int num, void *stream)
{
	struct config_parse *p = stream;
	const char *start, *end, *nl;
	size_t n;

	if (p->failed || p->text[p->pos] == '\0' || num < 1)
		return NULL;
	start = p->text + p->pos;
	nl = strchr(start, '\n');
	end = nl != NULL ? nl : start + strlen(start);
	p->pos = (size_t)(end - p->text) + (nl != NULL);
	p->lineno++;

	if (end > start && end[-1] == '\r')
		end--;
	if (p->lineno == 1 && end - start >= 3 && memcmp(start, "\xEF\xBB\xBF", 3) == 0)
		start += 3;
	while (start < end && isspace((unsigned char)*start))
		start++;
	n = (size_t)(end - start);
	if (n > (size_t)num - 1)
		n = (size_t)num - 1; /* cannot happen: lengths were checked */
	memcpy(str, start, n);
	str[n] = '\0';

	if (str[0] == '[' && config_section_begin(p, str) < 0)
		return NULL;
	return str;
}

/* Refuse lines inih would cut. */
static int
config_check_lines(struct config_parse *p, const char *text)
{
	int lineno = 1;

	for (const char *s = text;; lineno++) {
		const char *nl = strchr(s, '\n');
		size_t n = nl != NULL ? (size_t)(nl - s) : strlen(s);

		if (n > 0 && s[n - 1] == '\r')
			n--;
		if (n > CONFIG_MAX_LINE) {
			config_fail(p, (struct config_loc){ .file = p->file, .line = lineno },
				    "line is longer than %d characters", CONFIG_MAX_LINE);
			return -1;
		}
		if (nl == NULL)
			return 0;
		s = nl + 1;
	}
}

static int
config_parse_text(struct config_parse *p, const char *name, enum config_file_kind kind,
		  const char *text)
{
	int rc;

	p->file = name;
	p->file_kind = kind;
	p->text = text;
	p->pos = 0;
	p->lineno = 0;
	p->kind = CONFIG_SEC_NONE;
	p->seen = 0;
	if (config_check_lines(p, text) < 0)
		return -1;
	rc = ini_parse_stream(config_ini_read, p, config_ini_handler, p);
	if (rc > 0 && (!p->failed || rc < p->err_line)) {
		/* inih found a line it cannot read before our first error */
		p->failed = false;
		config_fail(p, (struct config_loc){ .file = name, .line = rc },
			    "expected [section], key = value or a ; comment");
		return -1;
	}
	if (rc < 0 && !p->failed) {
		config_oom(p);
		return -1;
	}
	return p->failed ? -1 : 0;
}

/* ---- -d URLs ------------------------------------------------------------- */

static int
config_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode s[0..n) into a new string. NULL (errno EINVAL) on a bad escape or %00. */
static char *
config_pct_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1);
	size_t o = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		if (i + 2 < n) {
			int hi = config_hex((unsigned char)s[i + 1]);
			int lo = config_hex((unsigned char)s[i + 2]);

			if (hi >= 0 && lo >= 0 && (hi | lo) != 0) {
				out[o++] = (char)(hi * 16 + lo);
				i += 2;
				continue;
			}
		}
		secret_wipe(out, o);
		free(out);
		errno = EINVAL;
		return NULL;
	}
	out[o] = '\0';
	return out;
}

struct config_url {
	char *user;     /* NULL: none */
	char *password; /* NULL: none */
	char *host;
	int port;
	char *db;
	const char *query; /* borrowed: after '?', or NULL */
};

static void
config_url_cleanup(struct config_url *u)
{
	config_str_free(&u->user, false);
	config_str_free(&u->password, true);
	config_str_free(&u->host, false);
	config_str_free(&u->db, false);
}

/* Split postgres://[user[:password]@]host[:port]/db[?params]. */
static int
config_url_split(struct config_parse *p, struct config_loc loc, const char *url,
		 struct config_url *u)
{
	const char *rest, *at, *qm, *hp_end, *slash, *port = NULL, *host_end;
	const char *host;

	if (strncasecmp(url, "postgres://", 11) == 0)
		rest = url + 11;
	else if (strncasecmp(url, "postgresql://", 13) == 0)
		rest = url + 13;
	else {
		config_fail(p, loc, "must start with postgres:// or postgresql://");
		return -1;
	}
	/* the password may hold '@', '/' or '?': the last '@' ends it */
	at = strrchr(rest, '@');
	if (at != NULL) {
		const char *colon = memchr(rest, ':', (size_t)(at - rest));
		const char *uend = colon != NULL ? colon : at;

		u->user = config_pct_decode(rest, (size_t)(uend - rest));
		if (u->user == NULL)
			goto bad_escape;
		if (colon != NULL) {
			u->password = config_pct_decode(colon + 1, (size_t)(at - colon - 1));
			if (u->password == NULL) {
				if (errno == ENOMEM)
					goto oom;
				config_fail(p, loc, "bad percent-encoding in the password");
				return -1;
			}
		}
		if (u->user[0] == '\0') {
			config_fail(p, loc, "the user name is empty");
			return -1;
		}
		host = at + 1;
	} else {
		host = rest;
	}
	qm = strchr(host, '?');
	slash = strchr(host, '/');
	if (slash == NULL || (qm != NULL && qm < slash)) {
		config_fail(p, loc,
			    "no database name: expected postgres://user:password@host:port/db");
		return -1;
	}
	hp_end = slash;
	if (host[0] == '[') {
		host_end = memchr(host, ']', (size_t)(hp_end - host));
		if (host_end == NULL) {
			config_fail(p, loc, "missing ] after the IPv6 address");
			return -1;
		}
		if (host_end + 1 < hp_end && host_end[1] != ':') {
			config_fail(p, loc, "unexpected text after the IPv6 address");
			return -1;
		}
		if (host_end + 1 < hp_end)
			port = host_end + 2;
		u->host = strndup(host + 1, (size_t)(host_end - host - 1));
	} else {
		host_end = memchr(host, ':', (size_t)(hp_end - host));
		if (host_end != NULL)
			port = host_end + 1;
		else
			host_end = hp_end;
		u->host = strndup(host, (size_t)(host_end - host));
	}
	if (u->host == NULL)
		goto oom;
	if (u->host[0] == '\0') {
		config_fail(p, loc, "the host is empty");
		return -1;
	}
	u->port = 5432;
	if (port != NULL) {
		char pbuf[16];
		size_t n = (size_t)(hp_end - port);

		if (n == 0 || n >= sizeof(pbuf)) {
			config_fail(p, loc, "port must be an integer between 1 and 65535");
			return -1;
		}
		memcpy(pbuf, port, n);
		pbuf[n] = '\0';
		if (!config_parse_int(pbuf, 1, 65535, &u->port)) {
			config_fail(p, loc, "port %s: must be an integer between 1 and 65535",
				    pbuf);
			return -1;
		}
	}
	qm = strchr(slash, '?');
	u->db = config_pct_decode(slash + 1,
				  qm != NULL ? (size_t)(qm - slash - 1) : strlen(slash + 1));
	if (u->db == NULL)
		goto bad_escape;
	if (u->db[0] == '\0') {
		config_fail(p, loc,
			    "no database name: expected postgres://user:password@host:port/db");
		return -1;
	}
	u->query = qm != NULL ? qm + 1 : NULL;
	return 0;
bad_escape:
	if (errno == ENOMEM)
		goto oom;
	config_fail(p, loc, "bad percent-encoding (use %%XX with two hex digits, not %%00)");
	return -1;
oom:
	config_oom(p);
	return -1;
}

/* Apply ?key=value&... to database d. */
static int
config_url_params_apply(struct config_parse *p, struct config_loc loc, const char *query,
			struct config_database *d)
{
	const char *s = query;

	while (s != NULL && *s != '\0') {
		const char *amp = strchr(s, '&');
		size_t n = amp != NULL ? (size_t)(amp - s) : strlen(s);
		const char *eq = memchr(s, '=', n);
		char *key, *value;
		int i, rc = -1;
		bool allowed = false;

		if (n == 0) {
			s = amp != NULL ? amp + 1 : NULL;
			continue;
		}
		if (eq == NULL) {
			config_fail(p, loc, "parameter \"%.*s\" has no value", (int)n, s);
			return -1;
		}
		key = config_pct_decode(s, (size_t)(eq - s));
		value = config_pct_decode(eq + 1, (size_t)(s + n - eq - 1));
		if (key == NULL || value == NULL) {
			free(key);
			free(value);
			if (errno == ENOMEM)
				config_oom(p);
			else
				config_fail(p, loc, "bad percent-encoding in the parameters");
			return -1;
		}
		for (i = 0; config_url_params[i] != NULL; i++) {
			if (strcmp(config_url_params[i], key) == 0)
				allowed = true;
		}
		for (i = 0; allowed && config_database_keys[i].name != NULL; i++) {
			if (strcmp(config_database_keys[i].name, key) == 0)
				break;
		}
		if (!allowed)
			config_fail(
				p, loc,
				"unknown parameter \"%s\": allowed are pool_size, min_pool_size, role, shard, database_name",
				key);
		else
			rc = config_key_set(p, loc, "", &config_database_keys[i], d, value);
		free(key);
		free(value);
		if (rc < 0)
			return -1;
		s = amp != NULL ? amp + 1 : NULL;
	}
	return 0;
}

/*
 * Add the database and the user a URL describes, unless a database with that
 * name, host and port or a user with that name already exists.
 */
static int
config_url_add(struct config_parse *p, size_t idx)
{
	struct config *cfg = p->cfg;
	struct config_url u = { 0 };
	struct config_where w = { .url = (int)idx + 1 };
	struct config_loc loc = { .url = (int)idx + 1 };
	const char *url = p->urls[idx];
	int rc = -1;

	if (url == NULL) {
		config_fail(p, (struct config_loc){ 0 }, "-d: empty URL");
		return -1;
	}
	if (config_url_split(p, loc, url, &u) < 0)
		goto out;

	size_t di;
	for (di = 0; di < cfg->databases_cnt; di++) {
		const struct config_database *d = &cfg->databases[di];

		if (strcmp(d->name, u.db) == 0 && d->host != NULL && strcmp(d->host, u.host) == 0 &&
		    d->port == u.port)
			break;
	}
	if (di == cfg->databases_cnt) {
		struct config_database *d;

		if (config_database_add(p, u.db, &w) < 0)
			goto oom;
		d = &cfg->databases[di];
		d->port = u.port;
		d->host = u.host;
		u.host = NULL;
		if (config_url_params_apply(p, loc, u.query, d) < 0)
			goto out;
	}

	if (u.user != NULL) {
		const struct config_user *old = NULL;
		struct config_user *nu;

		for (size_t k = 0; k < cfg->users_cnt; k++)
			if (strcmp(cfg->users[k].name, u.user) == 0 && cfg->users[k].database &&
			    strcmp(cfg->users[k].database, u.db) == 0)
				old = &cfg->users[k];
		if (old == NULL) {
			if (config_user_add(p, u.user, &w) < 0)
				goto oom;
			nu = &cfg->users[cfg->users_cnt - 1];
			nu->database = u.db;
			u.db = NULL;
			if (u.password != NULL) {
				char aerr[256] = "";

				nu->password = u.password;
				u.password = NULL;
				if (auth_secret_parse(nu->password, &nu->secret, aerr,
						      sizeof(aerr)) < 0) {
					config_fail(p, loc, "password: %s",
						    aerr[0] ? aerr
							    : "not a valid password or verifier");
					goto out;
				}
			}
		}
	}
	rc = 0;
	goto out;
oom:
	config_oom(p);
out:
	config_url_cleanup(&u);
	return rc;
}

/* ---- validation ---------------------------------------------------------- */

static const char *
config_secret_kind_mismatch(enum config_auth_type t, const struct auth_secret *s)
{
	if (t == CONFIG_AUTH_MD5 && s->kind == AUTH_SECRET_SCRAM)
		return "password is a SCRAM verifier, which auth_type md5 cannot check: use a plain password or an md5 hash";
	if (t == CONFIG_AUTH_SCRAM && s->kind == AUTH_SECRET_MD5)
		return "password is an md5 hash, which auth_type scram-sha-256 cannot check: use a plain password or a SCRAM verifier";
	return NULL;
}

/* Fill in defaults that depend on other keys. */
static int
config_fill_defaults(struct config_parse *p)
{
	struct config *cfg = p->cfg;

	for (size_t i = 0; i < cfg->databases_cnt; i++) {
		struct config_database *d = &cfg->databases[i];

		if (d->database_name == NULL &&
		    config_str_set(&d->database_name, d->name, false) < 0)
			goto oom;
	}
	for (size_t i = 0; i < cfg->users_cnt; i++) {
		struct config_user *u = &cfg->users[i];

		if (u->server_user == NULL && config_str_set(&u->server_user, u->name, false) < 0)
			goto oom;
		if (u->server_password == NULL && u->password != NULL &&
		    u->secret.kind == AUTH_SECRET_PLAIN &&
		    config_str_set(&u->server_password, u->password, true) < 0)
			goto oom;
	}
	return 0;
oom:
	config_oom(p);
	return -1;
}

/*
 * server_lifetime_jitter must stay below server_lifetime (unless that is 0,
 * never), so that a lifetime minus its jitter is still positive.
 */
static bool
config_jitter_ok(int lifetime, int jitter)
{
	return lifetime == 0 || jitter < lifetime;
}

static int
config_validate_databases(struct config_parse *p)
{
	struct config *cfg = p->cfg;

	for (size_t i = 0; i < cfg->databases_cnt; i++) {
		const struct config_database *d = &cfg->databases[i];
		const struct config_where *w = &p->db_where[i];
		int lifetime = d->server_lifetime >= 0 ? d->server_lifetime : cfg->server_lifetime;
		int jitter = d->server_lifetime_jitter >= 0 ? d->server_lifetime_jitter
							    : cfg->server_lifetime_jitter;

		if (d->host == NULL) {
			config_fail(p, config_where_loc(w, config_database_keys, NULL),
				    "[databases.%s] host is required", d->label);
			return -1;
		}
		if (d->pool_size >= 0 && d->min_pool_size > d->pool_size) {
			config_fail(
				p, config_where_loc(w, config_database_keys, "min_pool_size"),
				"[databases.%s] min_pool_size = %d is larger than pool_size = %d",
				d->label, d->min_pool_size, d->pool_size);
			return -1;
		}
		/* [general] is checked on its own; here only what this section changes */
		if ((d->server_lifetime >= 0 || d->server_lifetime_jitter >= 0) &&
		    !config_jitter_ok(lifetime, jitter)) {
			config_fail(
				p,
				config_where_loc(w, config_database_keys,
						 d->server_lifetime_jitter >= 0
							 ? "server_lifetime_jitter"
							 : "server_lifetime"),
				"[databases.%s] server_lifetime_jitter = %d: must be less than server_lifetime = %d",
				d->label, jitter, lifetime);
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			const struct config_database *o = &cfg->databases[j];

			if (d->role != CONFIG_ROLE_PRIMARY || o->role != CONFIG_ROLE_PRIMARY ||
			    d->shard != o->shard || strcmp(d->name, o->name) != 0)
				continue;
			config_fail(
				p, config_where_loc(w, config_database_keys, NULL),
				"[databases.%s] name \"%s\" already has a primary for shard %d in [databases.%s]",
				d->label, d->name, d->shard, o->label);
			return -1;
		}
	}
	return 0;
}

static int
config_validate_users(struct config_parse *p)
{
	struct config *cfg = p->cfg;

	for (size_t i = 0; i < cfg->users_cnt; i++) {
		const struct config_user *u = &cfg->users[i];
		const struct config_where *w = &p->user_where[i];
		const char *why;

		if (u->database == NULL) {
			config_fail(p, config_where_loc(w, config_user_keys, NULL),
				    "[users.%s] database is required", u->label);
			return -1;
		}
		if (!config_has_database(cfg, u->database)) {
			config_fail(
				p, config_where_loc(w, config_user_keys, "database"),
				"[users.%s] database \"%s\" is not defined in any [databases.*] section",
				u->label, u->database);
			return -1;
		}
		if (u->pool_size >= 0 && u->min_pool_size > u->pool_size) {
			config_fail(p, config_where_loc(w, config_user_keys, "min_pool_size"),
				    "[users.%s] min_pool_size = %d is larger than pool_size = %d",
				    u->label, u->min_pool_size, u->pool_size);
			return -1;
		}
		/* one user name may serve several databases, each from its own section */
		for (size_t j = 0; j < i; j++) {
			if (strcmp(cfg->users[j].name, u->name) == 0 && cfg->users[j].database &&
			    strcmp(cfg->users[j].database, u->database) == 0) {
				config_fail(
					p, config_where_loc(w, config_user_keys, "name"),
					"[users.%s] user \"%s\" for database \"%s\" is already defined by [users.%s]",
					u->label, u->name, u->database, cfg->users[j].label);
				return -1;
			}
		}
		why = config_secret_kind_mismatch(cfg->auth_type, &u->secret);
		if (why != NULL) {
			config_fail(p, config_where_loc(w, config_user_keys, "password"),
				    "[users.%s] %s", u->label, why);
			return -1;
		}
	}
	return 0;
}

/* A Prometheus metric name prefix: [A-Za-z_][A-Za-z0-9_]* or empty. */
static bool
config_metric_name_ok(const char *s)
{
	for (size_t i = 0; s[i]; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (!(isalpha(ch) || ch == '_' || (i > 0 && isdigit(ch))))
			return false;
	}
	return true;
}

static int
config_validate(struct config_parse *p)
{
	struct config *cfg = p->cfg;
	const struct config_where *gw = &p->general_where;
	const struct config_where *aw = &p->admin_where;
	const char *why;

	if (cfg->databases_cnt == 0) {
		config_fail(
			p, (struct config_loc){ 0 },
			"no databases configured: add a [databases.NAME] section or pass -d postgres://...");
		return -1;
	}
	if (cfg->min_pool_size > cfg->default_pool_size) {
		config_fail(p, config_where_loc(gw, config_general_keys, "min_pool_size"),
			    "[general] min_pool_size = %d is larger than default_pool_size = %d",
			    cfg->min_pool_size, cfg->default_pool_size);
		return -1;
	}
	if (!config_jitter_ok(cfg->server_lifetime, cfg->server_lifetime_jitter)) {
		config_fail(
			p, config_where_loc(gw, config_general_keys, "server_lifetime_jitter"),
			"[general] server_lifetime_jitter = %d: must be less than server_lifetime = %d",
			cfg->server_lifetime_jitter, cfg->server_lifetime);
		return -1;
	}
	if (!config_metric_name_ok(cfg->openmetrics_namespace)) {
		config_fail(
			p, config_where_loc(gw, config_general_keys, "openmetrics_namespace"),
			"[general] openmetrics_namespace = \"%s\": use letters, digits and '_' only, not starting with a digit (it prefixes Prometheus metric names)",
			cfg->openmetrics_namespace);
		return -1;
	}
	if (cfg->openmetrics_port != 0 && cfg->openmetrics_port == cfg->port) {
		config_fail(
			p, config_where_loc(gw, config_general_keys, "openmetrics_port"),
			"[general] openmetrics_port = %d is also the PostgreSQL port: choose another",
			cfg->openmetrics_port);
		return -1;
	}
	if (config_validate_databases(p) < 0 || config_validate_users(p) < 0)
		return -1;
	if (config_has_database(cfg, cfg->admin.name)) {
		config_fail(
			p, config_where_loc(aw, config_admin_keys, "name"),
			"[admin] name \"%s\" is also the name of a [databases.*] entry: choose another admin name",
			cfg->admin.name);
		return -1;
	}
	why = config_secret_kind_mismatch(cfg->auth_type, &cfg->admin.secret);
	if (why != NULL) {
		config_fail(p, config_where_loc(aw, config_admin_keys, "password"), "[admin] %s",
			    why);
		return -1;
	}
	return 0;
}

/* One pool per (user, database entry with the user's database name). */
static int
config_derive_pools(struct config_parse *p)
{
	struct config *cfg = p->cfg;
	size_t cnt = 0;

	for (size_t u = 0; u < cfg->users_cnt; u++) {
		for (size_t d = 0; d < cfg->databases_cnt; d++)
			cnt += strcmp(cfg->users[u].database, cfg->databases[d].name) == 0;
	}
	free(cfg->pools);
	cfg->pools = NULL;
	cfg->pools_cnt = 0;
	if (cnt == 0)
		return 0;
	cfg->pools = calloc(cnt, sizeof(*cfg->pools));
	if (cfg->pools == NULL) {
		config_oom(p);
		return -1;
	}
	for (size_t ui = 0; ui < cfg->users_cnt; ui++) {
		const struct config_user *u = &cfg->users[ui];

		for (size_t di = 0; di < cfg->databases_cnt; di++) {
			const struct config_database *d = &cfg->databases[di];
			struct config_pool *pool = &cfg->pools[cfg->pools_cnt];

			if (strcmp(u->database, d->name) != 0)
				continue;
			pool->user_idx = (int)ui;
			pool->db_idx = (int)di;
			pool->pool_size = u->pool_size >= 0   ? u->pool_size
					  : d->pool_size >= 0 ? d->pool_size
							      : cfg->default_pool_size;
			pool->min_pool_size = u->min_pool_size >= 0   ? u->min_pool_size
					      : d->min_pool_size >= 0 ? d->min_pool_size
								      : cfg->min_pool_size;
			pool->idle_timeout =
				d->idle_timeout >= 0 ? d->idle_timeout : cfg->idle_timeout;
			pool->server_lifetime =
				d->server_lifetime >= 0 ? d->server_lifetime : cfg->server_lifetime;
			pool->server_lifetime_jitter = d->server_lifetime_jitter >= 0
							       ? d->server_lifetime_jitter
							       : cfg->server_lifetime_jitter;
			pool->pooler_mode = u->has_pooler_mode   ? u->pooler_mode
					    : d->has_pooler_mode ? d->pooler_mode
								 : cfg->pooler_mode;
			cfg->pools_cnt++;
			if (pool->min_pool_size > pool->pool_size) {
				config_fail(
					p,
					config_where_loc(&p->user_where[ui], config_user_keys,
							 NULL),
					"[users.%s] with [databases.%s]: min_pool_size %d is larger than pool_size %d",
					u->label, d->label, pool->min_pool_size, pool->pool_size);
				return -1;
			}
		}
	}
	return 0;
}

/* ---- public API ----------------------------------------------------------- */

struct config *
config_new(void)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (cfg == NULL)
		return NULL;
	cfg->port = 6432;
	cfg->workers = cpus < 1 ? 1 : cpus > CONFIG_MAX_WORKERS ? CONFIG_MAX_WORKERS : (int)cpus;
	cfg->default_pool_size = 10;
	cfg->min_pool_size = 1;
	cfg->pooler_mode = CONFIG_POOLER_TRANSACTION;
	cfg->prepared_statements = CONFIG_PREPARED_EXTENDED;
	cfg->prepared_statements_limit = 0;
	cfg->auth_type = CONFIG_AUTH_SCRAM;
	cfg->checkout_timeout = 5000;
	cfg->connect_timeout = 5000;
	cfg->idle_timeout = 60000;
	cfg->server_lifetime = 86400000;
	cfg->client_login_timeout = 60000;
	cfg->shutdown_timeout = 60000;
	cfg->server_lifetime_jitter = 0;
	cfg->query_timeout = 0;
	cfg->client_idle_timeout = 0;
	cfg->client_idle_in_transaction_timeout = 0;
	cfg->rollback_timeout = 5000;
	cfg->pub_sub_channel_size = 0;
	cfg->query_cache_limit = 1024;
	cfg->stats_period = 15000;
	cfg->ban_timeout = 300000;
	cfg->lsn_check_interval = 5000;
	cfg->openmetrics_port = 0;
	cfg->server_reset_query_always = false;
	cfg->server_round_robin = false;
	cfg->max_client_conn = 10000;
	cfg->max_message_len = CONFIG_MSG_LEN_MAX;
	cfg->log_level = LOG_LVL_INFO;
	cfg->syslog = false;
	cfg->log_connections = true;
	cfg->log_disconnections = true;
	cfg->log_pooler_errors = true;
	cfg->syslog_facility = LOG_DAEMON;
	if (config_str_set(&cfg->host, "0.0.0.0", false) < 0 ||
	    config_str_set(&cfg->unix_socket_dir, "/tmp", false) < 0 ||
	    config_str_set(&cfg->server_reset_query, "DISCARD ALL", false) < 0 ||
	    config_str_set(&cfg->syslog_ident, "pgdog", false) < 0 ||
	    config_str_set(&cfg->openmetrics_host, "0.0.0.0", false) < 0 ||
	    config_str_set(&cfg->openmetrics_namespace, "pgdog_", false) < 0 ||
	    config_str_set(&cfg->admin.name, "admin", false) < 0 ||
	    config_str_set(&cfg->admin.user, "admin", false) < 0) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->databases_cnt; i++)
		config_database_cleanup(&cfg->databases[i]);
	free(cfg->databases);
	for (size_t i = 0; i < cfg->users_cnt; i++)
		config_user_cleanup(&cfg->users[i]);
	free(cfg->users);
	free(cfg->pools);
	config_str_free(&cfg->admin.name, false);
	config_str_free(&cfg->admin.user, false);
	config_str_free(&cfg->admin.password, true);
	auth_secret_cleanup(&cfg->admin.secret);
	config_str_free(&cfg->config_path, false);
	config_str_free(&cfg->users_path, false);
	config_str_free(&cfg->host, false);
	config_str_free(&cfg->unix_socket_dir, false);
	config_str_free(&cfg->server_reset_query, false);
	config_str_free(&cfg->log_file, false);
	config_str_free(&cfg->syslog_ident, false);
	config_str_free(&cfg->openmetrics_host, false);
	config_str_free(&cfg->openmetrics_namespace, false);
	free(cfg);
}

static int
config_load_all(struct config *cfg, const char *config_name, const char *config_text,
		const char *users_name, const char *users_text, const char *const *urls,
		size_t urls_cnt, char *err, size_t err_len)
{
	struct config_parse p = {
		.cfg = cfg,
		.urls = urls,
		.urls_cnt = urls_cnt,
		.config_name = config_name != NULL ? config_name : "pgdog.ini",
		.users_name = users_name != NULL ? users_name : "users.ini",
		.err = err,
		.err_len = err_len,
	};
	int rc = -1;

	/* entries already present (none after config_new) get no location */
	p.db_cap = cfg->databases_cnt;
	p.user_cap = cfg->users_cnt;
	if (p.db_cap > 0 && (p.db_where = calloc(p.db_cap, sizeof(*p.db_where))) == NULL)
		goto oom;
	if (p.user_cap > 0 && (p.user_where = calloc(p.user_cap, sizeof(*p.user_where))) == NULL)
		goto oom;
	if (err != NULL && err_len > 0)
		err[0] = '\0';
	if (config_text != NULL &&
	    config_parse_text(&p, p.config_name, CONFIG_FILE_MAIN, config_text) < 0)
		goto out;
	if (users_text != NULL &&
	    config_parse_text(&p, p.users_name, CONFIG_FILE_USERS, users_text) < 0)
		goto out;
	for (size_t i = 0; i < urls_cnt; i++) {
		if (config_url_add(&p, i) < 0)
			goto out;
	}
	if (config_validate(&p) < 0 || config_fill_defaults(&p) < 0 || config_derive_pools(&p) < 0)
		goto out;
	rc = 0;
	goto out;
oom:
	config_oom(&p);
out:
	for (size_t i = 0; i < p.sections_cnt; i++)
		free(p.sections[i].name);
	free(p.sections);
	free(p.db_where);
	free(p.user_where);
	return rc;
}

int
config_load_strings(struct config *cfg, const char *config_name, const char *config_text,
		    const char *users_name, const char *users_text, char *err, size_t err_len)
{
	return config_load_all(cfg, config_name, config_text, users_name, users_text, NULL, 0, err,
			       err_len);
}

/* Read a whole file into a NUL-terminated string. -1 with a message in err. */
static int
config_read_file(const char *path, char **out, char *err, size_t err_len)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		goto fail;
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			char *nb;

			cap = cap ? cap * 2 : 8192;
			if (cap > CONFIG_FILE_MAX + 8192) {
				snprintf(err, err_len, "cannot read %s: larger than %d bytes", path,
					 CONFIG_FILE_MAX);
				goto fail_quiet;
			}
			nb = realloc(buf, cap);
			if (nb == NULL)
				goto fail;
			buf = nb;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (strlen(buf) != len) {
		int line = 1;

		for (size_t i = 0; buf[i] != '\0'; i++)
			line += buf[i] == '\n';
		snprintf(err, err_len, "%s:%d: line contains a NUL byte", path, line);
		goto fail_quiet;
	}
	close(fd);
	*out = buf;
	return 0;
fail:
	snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno));
fail_quiet:
	if (buf != NULL) {
		secret_wipe(buf, cap);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	return -1;
}

static void
config_text_free(char *text)
{
	if (text == NULL)
		return;
	secret_wipe(text, strlen(text));
	free(text);
}

int
config_load(struct config *cfg, const char *config_path, const char *users_path,
	    const char *const *urls, size_t urls_cnt, char *err, size_t err_len)
{
	char *config_text = NULL, *users_text = NULL;
	int rc = -1;

	if (config_path != NULL && config_read_file(config_path, &config_text, err, err_len) < 0)
		goto out;
	if (users_path != NULL && config_read_file(users_path, &users_text, err, err_len) < 0)
		goto out;
	if ((config_path != NULL && config_str_set(&cfg->config_path, config_path, false) < 0) ||
	    (users_path != NULL && config_str_set(&cfg->users_path, users_path, false) < 0)) {
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	rc = config_load_all(cfg, config_path, config_text, users_path, users_text, urls, urls_cnt,
			     err, err_len);
out:
	config_text_free(config_text);
	config_text_free(users_text);
	return rc;
}

const struct config_user *
config_find_user(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->users_cnt; i++) {
		if (strcmp(cfg->users[i].name, name) == 0)
			return &cfg->users[i];
	}
	return NULL;
}

bool
config_has_database(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->databases_cnt; i++) {
		if (strcmp(cfg->databases[i].name, name) == 0)
			return true;
	}
	return false;
}

int
config_find_pool(const struct config *cfg, const char *user, const char *database)
{
	int first = -1;

	for (size_t i = 0; i < cfg->pools_cnt; i++) {
		const struct config_pool *pool = &cfg->pools[i];
		const struct config_user *u = &cfg->users[pool->user_idx];
		const struct config_database *d = &cfg->databases[pool->db_idx];

		if (strcmp(u->name, user) != 0 || strcmp(d->name, database) != 0)
			continue;
		if (d->role != CONFIG_ROLE_REPLICA && d->shard == 0)
			return (int)i;
		if (first < 0)
			first = (int)i;
	}
	return first;
}

const char *
config_auth_type_name(enum config_auth_type t)
{
	switch (t) {
	case CONFIG_AUTH_SCRAM:
		return "scram-sha-256";
	case CONFIG_AUTH_MD5:
		return "md5";
	case CONFIG_AUTH_PLAIN:
		return "plain";
	case CONFIG_AUTH_TRUST:
		return "trust";
	}
	return "unknown";
}

const char *
config_role_name(enum config_role r)
{
	switch (r) {
	case CONFIG_ROLE_PRIMARY:
		return "primary";
	case CONFIG_ROLE_REPLICA:
		return "replica";
	case CONFIG_ROLE_AUTO:
		return "auto";
	}
	return "unknown";
}

const char *
config_pooler_mode_name(enum config_pooler_mode m)
{
	switch (m) {
	case CONFIG_POOLER_TRANSACTION:
		return "transaction";
	case CONFIG_POOLER_SESSION:
		return "session";
	case CONFIG_POOLER_STATEMENT:
		return "statement";
	}
	return "unknown";
}

const char *
config_prepared_statements_name(enum config_prepared_statements p)
{
	switch (p) {
	case CONFIG_PREPARED_EXTENDED:
		return "extended";
	case CONFIG_PREPARED_DISABLED:
		return "disabled";
	case CONFIG_PREPARED_FULL:
		return "full";
	}
	return "unknown";
}

/* ---- live reload ---------------------------------------------------------- */

int
config_load_texts(struct config *cfg, const char *config_name, const char *config_text,
		  const char *users_name, const char *users_text, const char *const *urls,
		  size_t urls_cnt, char *err, size_t err_len)
{
	return config_load_all(cfg, config_name, config_text, users_name, users_text, urls,
			       urls_cnt, err, err_len);
}

int
config_file_read(const char *path, char **text, char *err, size_t err_len)
{
	*text = NULL;
	return config_read_file(path, text, err, err_len);
}

void
config_file_free(char *text)
{
	config_text_free(text);
}

static bool
config_str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool
config_pool_differs(const struct config *a, size_t ai, const struct config *b, size_t bi)
{
	const struct config_pool *pa = &a->pools[ai], *pb = &b->pools[bi];
	const struct config_user *ua = &a->users[pa->user_idx], *ub = &b->users[pb->user_idx];
	const struct config_database *da = &a->databases[pa->db_idx];
	const struct config_database *db = &b->databases[pb->db_idx];

	return pa->pool_size != pb->pool_size || pa->min_pool_size != pb->min_pool_size ||
	       pa->idle_timeout != pb->idle_timeout || pa->server_lifetime != pb->server_lifetime ||
	       pa->server_lifetime_jitter != pb->server_lifetime_jitter ||
	       pa->pooler_mode != pb->pooler_mode || !config_str_eq(ua->name, ub->name) ||
	       !config_str_eq(ua->password, ub->password) ||
	       !config_str_eq(ua->server_user, ub->server_user) ||
	       !config_str_eq(ua->server_password, ub->server_password) ||
	       !config_str_eq(da->name, db->name) || !config_str_eq(da->host, db->host) ||
	       da->port != db->port || !config_str_eq(da->database_name, db->database_name) ||
	       da->role != db->role || da->shard != db->shard ||
	       !config_str_eq(da->user, db->user) || !config_str_eq(da->password, db->password);
}

static void
config_list_add(char *buf, size_t len, const char *name)
{
	size_t n = strlen(buf);

	if (n + strlen(name) + 3 < len)
		snprintf(buf + n, len - n, "%s%s", n ? ", " : "", name);
}

int
config_keep_restart_only(struct config *next, const struct config *running, char *changed,
			 size_t changed_len)
{
	changed[0] = '\0';
#define CONFIG_KEEP_INT(k)                                         \
	do {                                                       \
		if (next->k != running->k) {                       \
			config_list_add(changed, changed_len, #k); \
			next->k = running->k;                      \
		}                                                  \
	} while (0)
#define CONFIG_KEEP_STR(k)                                                \
	do {                                                              \
		if (!config_str_eq(next->k, running->k)) {                \
			config_list_add(changed, changed_len, #k);        \
			free(next->k);                                    \
			next->k = running->k ? strdup(running->k) : NULL; \
			if (running->k && !next->k)                       \
				return -1;                                \
		}                                                         \
	} while (0)
	CONFIG_KEEP_STR(host);
	CONFIG_KEEP_INT(port);
	CONFIG_KEEP_INT(workers);
	CONFIG_KEEP_STR(unix_socket_dir);
	CONFIG_KEEP_INT(max_client_conn);
	CONFIG_KEEP_STR(log_file);
	CONFIG_KEEP_INT(syslog);
	CONFIG_KEEP_STR(syslog_ident);
	CONFIG_KEEP_INT(syslog_facility); /* the log is opened once, at start */
	CONFIG_KEEP_INT(query_cache_limit);
	CONFIG_KEEP_INT(openmetrics_port);
	CONFIG_KEEP_STR(openmetrics_host);
#undef CONFIG_KEEP_INT
#undef CONFIG_KEEP_STR
	return 0;
}

/* Settings SET may change at run time (a reload resets them to the files' values). */
static const struct config_live {
	const char *name;
	size_t off;
	int min, max;
	bool is_bool;
} config_live_settings[] = {
	{ "checkout_timeout", offsetof(struct config, checkout_timeout), 1, INT_MAX, false },
	{ "connect_timeout", offsetof(struct config, connect_timeout), 1, INT_MAX, false },
	{ "query_timeout", offsetof(struct config, query_timeout), 0, INT_MAX, false },
	{ "client_idle_timeout", offsetof(struct config, client_idle_timeout), 0, INT_MAX, false },
	{ "client_idle_in_transaction_timeout",
	  offsetof(struct config, client_idle_in_transaction_timeout), 0, INT_MAX, false },
	{ "client_login_timeout", offsetof(struct config, client_login_timeout), 1, INT_MAX,
	  false },
	{ "rollback_timeout", offsetof(struct config, rollback_timeout), 1, INT_MAX, false },
	{ "ban_timeout", offsetof(struct config, ban_timeout), 0, INT_MAX, false },
	{ "prepared_statements_limit", offsetof(struct config, prepared_statements_limit), 0,
	  1000000, false },
	{ "log_connections", offsetof(struct config, log_connections), 0, 1, true },
	{ "log_disconnections", offsetof(struct config, log_disconnections), 0, 1, true },
	{ "log_pooler_errors", offsetof(struct config, log_pooler_errors), 0, 1, true },
};

size_t
config_live_cnt(void)
{
	return ARRAY_SIZE(config_live_settings);
}

const char *
config_live_name(size_t idx)
{
	return idx < ARRAY_SIZE(config_live_settings) ? config_live_settings[idx].name : NULL;
}

int
config_live_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(config_live_settings); i++)
		if (strcasecmp(config_live_settings[i].name, name) == 0)
			return (int)i;
	return -1;
}

int
config_live_parse(size_t idx, const char *value, int *out, char *err, size_t err_len)
{
	const struct config_live *l = &config_live_settings[idx];

	if (l->is_bool) {
		bool b;

		if (!config_parse_bool(value, &b)) {
			snprintf(err, err_len, "%s must be a boolean (on, off, true, false, 1, 0)",
				 l->name);
			return -1;
		}
		*out = b;
		return 0;
	}
	if (!config_parse_int(value, l->min, l->max, out)) {
		snprintf(err, err_len, "%s must be an integer between %d and %d (milliseconds)",
			 l->name, l->min, l->max);
		return -1;
	}
	return 0;
}

void
config_live_apply(struct config *cfg, size_t idx, int value)
{
	const struct config_live *l = &config_live_settings[idx];

	if (l->is_bool)
		*(bool *)((char *)cfg + l->off) = value != 0;
	else
		*(int *)((char *)cfg + l->off) = value;
}

int
config_live_get(const struct config *cfg, size_t idx)
{
	const struct config_live *l = &config_live_settings[idx];

	if (l->is_bool)
		return *(const bool *)((const char *)cfg + l->off);
	return *(const int *)((const char *)cfg + l->off);
}

const char *
config_general_key(const struct config *cfg, size_t i, char *value, size_t len)
{
	const struct config_key *k;
	const char *base = (const char *)cfg;

	if (i >= ARRAY_SIZE(config_general_keys) - 1)
		return NULL;
	k = &config_general_keys[i];
	switch (k->type) {
	case CONFIG_KEY_INT:
		snprintf(value, len, "%d", *(const int *)(base + k->off));
		break;
	case CONFIG_KEY_BOOL:
		snprintf(value, len, "%s", *(const bool *)(base + k->off) ? "true" : "false");
		break;
	case CONFIG_KEY_STR: {
		const char *s = *(char *const *)(base + k->off);

		snprintf(value, len, "%s", (k->flags & CONFIG_STR_WIPE) ? "********" : s ? s : "");
		break;
	}
	case CONFIG_KEY_ENUM: {
		int v = *(const int *)(base + k->off);

		snprintf(value, len, "%s", "?");
		for (const struct config_enum *e = k->values; e->name; e++) {
			if (e->value == v) {
				snprintf(value, len, "%s", e->name);
				break;
			}
		}
		break;
	}
	case CONFIG_KEY_LOG_LEVEL:
		snprintf(value, len, "%s",
			 log_level_name(*(const enum log_level *)(base + k->off)));
		break;
	case CONFIG_KEY_SECRET:
		snprintf(value, len, "%s", "********");
		break;
	}
	return k->name;
}
