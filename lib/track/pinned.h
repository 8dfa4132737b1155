/* SPDX-License-Identifier: MIT */
/* Long-term pinned memory of a target (lib/track/pinned.c). */
#ifndef PT_PINNED_H
#define PT_PINNED_H

#include "dirtylist.h"

/*
 * Ranges of the target's memory the kernel writes through long-term pins
 * (io_uring registered buffers: lib/track/pinned.c), sorted and merged, into
 * @out (emptied first).  Page-table backends cannot see those writes.
 */
PT_HIDDEN int pt__pinned_ranges(const struct pt_target *t, struct pt_dirtylist *out);

#endif
