/*
 * hash.h: FNV-1a, the one non-cryptographic hash of the project (hash
 * tables, caches, fingerprints). Start from FNV1A32_INIT / FNV1A64_INIT and
 * feed the bytes in as many calls as the data takes.
 * Runs in: any process.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define FNV1A32_INIT 2166136261u
#define FNV1A64_INIT 0xcbf29ce484222325ull

static inline uint32_t
fnv1a32(uint32_t h, const void *data, size_t n)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static inline uint64_t
fnv1a64(uint64_t h, const void *data, size_t n)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}
