/*
 * compiler.h: attribute macros and assertions used everywhere.
 * Runs in: both processes. No state.
 */
#pragma once

#include <stddef.h>

#define MUST_CHECK        __attribute__((warn_unused_result))
#define PRINTF_LIKE(n, m) __attribute__((format(printf, n, m)))
#define NORETURN          __attribute__((noreturn))
#define UNUSED            __attribute__((unused))
#define LIKELY(x)         __builtin_expect(!!(x), 1)
#define UNLIKELY(x)       __builtin_expect(!!(x), 0)
/* for a hot-path helper with two callers, so that both keep it inlined */
#define ALWAYS_INLINE                   inline __attribute__((always_inline))
#define ARRAY_SIZE(a)                   (sizeof(a) / sizeof((a)[0]))
#define CACHELINE                       64
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Exit codes: the supervisor respawns a worker that exits with EXIT_RESPAWN. */
#define EXIT_OK      0
#define EXIT_RESPAWN 1
#define EXIT_FATAL   2

void compiler_assert_fail(const char *expr, const char *file, int line);

/*
 * ASSERT: a programming error. Aborts in --enable-debug builds, logs in release
 * builds; the code after it must still fail safely.
 */
#define ASSERT(expr)                                                     \
	do {                                                             \
		if (UNLIKELY(!(expr)))                                   \
			compiler_assert_fail(#expr, __FILE__, __LINE__); \
	} while (0)
