/* SPDX-License-Identifier: MIT */
/* Dirty-region lists, shared by the tracker, its backends and the hash store. */
#ifndef PT_DIRTYLIST_H
#define PT_DIRTYLIST_H

#include "pt_internal.h"

/* Growable list of dirty regions of one round (memory ~ regions, not pages). */
struct pt_dirtylist {
	struct pt_dirty *d;
	size_t n, cap;
};

/* Append [start,end) with @flags, merging with the last entry when it touches. -ENOMEM. */
int pt__dirty_add(struct pt_dirtylist *l, uint64_t start, uint64_t end, uint32_t flags);
/* Sort by address and merge overlapping/adjacent entries (flags OR'ed; PT_DIRTY_HOT
 * only where both had it, and adjacent entries differing in it stay apart). */
void pt__dirty_sort_merge(struct pt_dirtylist *l);
void pt__dirty_free(struct pt_dirtylist *l);

#endif
