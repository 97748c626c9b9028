/*
 * replay.c: a main() for libFuzzer targets, so `make check` replays their
 * corpora under gcc (and under ASan/UBSan with --enable-sanitizers).
 * Link it with one t/fuzz/fuzz_<target>.c that defines LLVMFuzzerTestOneInput().
 *
 * Usage: replay_<target> [DIR|FILE]...
 * Without arguments it replays "$PGDOG_SRCDIR/t/fuzz/corpus/<target>" (or
 * "t/fuzz/corpus/<target>" when PGDOG_SRCDIR is unset), where <target> is the
 * program name without its "replay_" prefix. A missing or empty corpus fails:
 * a replay that ran nothing must not look like a pass.
 * Each input is copied into a heap block of exactly its size, so a sanitizer
 * catches any read past the end. Files run in name order.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_PREFIX    "replay_"
#define REPLAY_MAX_INPUT ((size_t)64 << 20) /* no corpus file should be this big */

static const char *replay_prog = "replay";

/* Run one file. Returns 0 or -1 after printing why. */
static int
replay_file(const char *path)
{
	FILE *f = NULL;
	uint8_t *data = NULL;
	struct stat sb;
	size_t n;

	f = fopen(path, "rb");
	if (f == NULL)
		goto fail;
	if (fstat(fileno(f), &sb) < 0)
		goto fail;
	if (sb.st_size < 0 || (size_t)sb.st_size > REPLAY_MAX_INPUT) {
		errno = EFBIG;
		goto fail;
	}
	n = (size_t)sb.st_size;
	data = malloc(n ? n : 1);
	if (data == NULL)
		goto fail;
	if (n > 0 && fread(data, 1, n, f) != n) {
		if (!ferror(f))
			errno = EIO; /* the file shrank under us */
		goto fail;
	}
	fclose(f);
	/* an empty input still gets a valid pointer, as under libFuzzer */
	(void)LLVMFuzzerTestOneInput(data, n);
	free(data);
	return 0;
fail:
	fprintf(stderr, "%s: %s: %s\n", replay_prog, path, strerror(errno));
	free(data);
	if (f != NULL)
		fclose(f);
	return -1;
}

static int
replay_skip_dot(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* Run every regular file in dir (not recursive). Adds to *ran_cnt. */
static int
replay_dir(const char *dir, size_t *ran_cnt)
{
	struct dirent **names = NULL;
	int cnt, rc = 0;

	cnt = scandir(dir, &names, replay_skip_dot, alphasort);
	if (cnt < 0) {
		fprintf(stderr, "%s: corpus directory %s: %s\n", replay_prog, dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < cnt; i++) {
		char path[4096];
		struct stat sb;
		int w = snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);

		if (w < 0 || (size_t)w >= sizeof(path)) {
			fprintf(stderr, "%s: path too long: %s/%s\n", replay_prog, dir,
				names[i]->d_name);
			rc = -1;
		} else if (stat(path, &sb) < 0) {
			fprintf(stderr, "%s: %s: %s\n", replay_prog, path, strerror(errno));
			rc = -1;
		} else if (S_ISREG(sb.st_mode)) {
			if (replay_file(path) < 0)
				rc = -1;
			else
				(*ran_cnt)++;
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

static int
replay_path(const char *path, size_t *ran_cnt)
{
	struct stat sb;

	if (stat(path, &sb) < 0) {
		fprintf(stderr, "%s: corpus %s: %s\n", replay_prog, path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(sb.st_mode))
		return replay_dir(path, ran_cnt);
	if (replay_file(path) < 0)
		return -1;
	(*ran_cnt)++;
	return 0;
}

/* "$PGDOG_SRCDIR/t/fuzz/corpus/<target>" for a program named ".../replay_<target>". */
static int
replay_default_dir(const char *argv0, char *out, size_t out_len)
{
	const char *name = strrchr(argv0, '/');
	const char *srcdir = getenv("PGDOG_SRCDIR");
	int w;

	name = name != NULL ? name + 1 : argv0;
	if (strncmp(name, "lt-", 3) == 0)
		name += 3; /* libtool wrapper */
	if (strncmp(name, REPLAY_PREFIX, strlen(REPLAY_PREFIX)) != 0 ||
	    name[strlen(REPLAY_PREFIX)] == '\0') {
		fprintf(stderr,
			"%s: cannot tell the target from the program name; pass a corpus directory\n",
			replay_prog);
		return -1;
	}
	name += strlen(REPLAY_PREFIX);
	if (srcdir == NULL || srcdir[0] == '\0')
		srcdir = ".";
	w = snprintf(out, out_len, "%s/t/fuzz/corpus/%s", srcdir, name);
	if (w < 0 || (size_t)w >= out_len) {
		fprintf(stderr, "%s: corpus path too long\n", replay_prog);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	char dir[4096];
	size_t ran_cnt = 0;
	int rc = 0;

	if (argc > 0 && argv[0] != NULL && argv[0][0] != '\0') {
		const char *slash = strrchr(argv[0], '/');

		replay_prog = slash != NULL ? slash + 1 : argv[0];
	}
	if (argc < 2) {
		if (replay_default_dir(replay_prog, dir, sizeof(dir)) < 0)
			return EXIT_FAILURE;
		rc = replay_path(dir, &ran_cnt);
	} else {
		for (int i = 1; i < argc; i++) {
			if (replay_path(argv[i], &ran_cnt) < 0)
				rc = -1;
		}
	}
	if (rc == 0 && ran_cnt == 0) {
		fprintf(stderr, "%s: the corpus is empty: no input ran\n", replay_prog);
		rc = -1;
	}
	printf("%s: ran %zu inputs%s\n", replay_prog, ran_cnt, rc == 0 ? "" : " (with errors)");
	return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
