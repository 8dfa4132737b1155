/* SPDX-License-Identifier: MIT */
/*
 * Small image layers for tests (tests/test_image.c, tests/test_fuzz_image.c),
 * written with the internal streaming writer (lib/image/writer.c).
 */
#ifndef PT_TEST_IMAGE_GEN_H
#define PT_TEST_IMAGE_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "image/image.h"

#define IG_PAGE 4096u

/* Deterministic page content of (@seed, @key): compressible but distinct. */
void ig_page(unsigned char *p, uint32_t seed, uint64_t key);
/* Incompressible page content. */
void ig_noise(unsigned char *p, uint64_t *state);

/* A capture of a made-up process (2 threads, auxv, files); free with ig_capture_free. */
void ig_capture(struct pt__capture *c);
void ig_capture_free(struct pt__capture *c);
/* 1 if @a and @b hold the same values. */
int ig_capture_equal(const struct pt__capture *a, const struct pt__capture *b);

/*
 * The "small" layer: FROZEN, 3 areas (private with every run kind, shared
 * over a stored memfd, private file mapping), 2 objects, 4-page frames,
 * 64-byte chunks (several INDEX and FRAMES chunks), capture sections.
 * With @parent: a child of it (TRACKED, UNCHANGED runs).  0 or -errno.
 */
int ig_small(const char *path, struct pt_image *parent, char *err, size_t errlen);

/* The worked example of doc/image-format.md (a LIVE base, one 2-page area). */
int ig_example(const char *path, char *err, size_t errlen);

#endif
