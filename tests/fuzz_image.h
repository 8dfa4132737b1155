/* SPDX-License-Identifier: MIT */
/* The image reader's fuzz target (tests/fuzz_image.c) and what it counted. */
#ifndef PT_TEST_FUZZ_IMAGE_H
#define PT_TEST_FUZZ_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/image.h"

struct fuzz_image_stats {
	uint64_t runs, opened, verified, reads, round_trips;
	uint64_t bad;		/* results outside the documented errors */
	int last_open, last_verify;	/* of the last input; last_verify 1 if not run */
};
extern struct fuzz_image_stats fuzz_image_stats;
/* Abort on an undocumented result (libFuzzer); the driver counts instead. */
extern bool fuzz_image_abort;
/* Where the target writes its input file (and where parents are found). */
void fuzz_image_set_dir(const char *dir);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Offsets of the sections of @b found by the tiling rule (at most @max). */
size_t fuzz_image_walk(const unsigned char *b, size_t len, uint64_t *off, size_t max);
/* Recompute every checksum of @b and its footer's file size. */
void fuzz_image_fixup(unsigned char *b, size_t len);

#endif
