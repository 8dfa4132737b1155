/* SPDX-License-Identifier: MIT */
/*
 * COW / O_DIRECT hazard stress (seed 004), shared by tests/test_cow_stress
 * and `pagetrack check --hazards`.  Public pagetrack API + libc only.
 *
 * In the calling process: reader threads read a file with known content
 * by O_DIRECT into the first half of pages of one buffer and check every
 * byte after the read returns; writer threads write and re-check their
 * own bytes in the second half of the same pages; a tracker on the
 * calling process (the backend asked for) collects continuously from
 * another thread, write-protecting the pages again and again.  On a
 * kernel with the wrong-COW bug a write fault during the DMA replaces
 * the page and the DMA data is lost: the reader then sees its poison.
 */
#ifndef PT_COMMON_COWSTRESS_H
#define PT_COMMON_COWSTRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pagetrack/pagetrack.h"

struct pt_cowstress_opts {
	enum pt_track_backend backend;	/* forced (PT_TRACK_AUTO: best) */
	unsigned ms;			/* duration; with work targets, the time cap */
	const char *dir;		/* for the O_DIRECT file; NULL: pt_cowstress_dir() */
	unsigned readers, writers;	/* threads; 0: 2 each */
	bool pageout;			/* also MADV_PAGEOUT the buffer (needs swap) */
	uint64_t seed;
	/*
	 * Work targets: when any is set, run until all are reached (O_DIRECT
	 * reads checked, writer passes, collect rounds), or until @ms passed
	 * (then r->capped).  All 0: run for @ms (pagetrack check --hazards).
	 */
	uint64_t min_reads, min_writes, min_rounds;
};

struct pt_cowstress_result {
	uint64_t reads;			/* O_DIRECT reads checked */
	uint64_t read_bad;		/* bytes of those reads that were wrong */
	uint64_t writes;		/* writer passes checked (64 bytes each) */
	uint64_t write_bad;		/* bytes a writer found changed under it */
	uint64_t rounds;		/* collect rounds completed meanwhile */
	uint64_t pages_reported;	/* pages the tracker reported in all rounds */
	uint64_t pageouts;		/* MADV_PAGEOUT calls that succeeded */
	int collect_err;		/* first collect error (-errno), 0 if none */
	bool capped;			/* the time cap ended it before the work targets */
	uint64_t elapsed_ms;		/* how long the stress ran */
	char why[192];			/* why it could not run (return < 0) */
};

/*
 * Find a directory whose filesystem accepts O_DIRECT reads (not tmpfs):
 * $PT_ODIRECT_DIR, /var/tmp, /tmp, the current directory.  0 and @buf
 * filled, or -EOPNOTSUPP and *why set.
 */
int pt_cowstress_dir(char *buf, size_t len, const char **why);

/*
 * Run the stress until the work targets are reached (or for o->ms
 * milliseconds without targets; o->ms caps it).  Returns 0 when it ran (then
 * r->read_bad + r->write_bad is the number of corrupted bytes), or
 * -errno with r->why set: -EOPNOTSUPP when the backend or O_DIRECT is
 * not available here, other values for set-up failures.
 */
int pt_cowstress_run(const struct pt_cowstress_opts *o, struct pt_cowstress_result *r);

#endif
