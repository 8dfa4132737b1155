/* SPDX-License-Identifier: MIT */
/* Content hashes of tracked pages (lib/track/hashstore.c, doc/hashing.md). */
#ifndef PT_HASHSTORE_H
#define PT_HASHSTORE_H

#include "dirtylist.h"

struct pt_hashstore;

PT_HIDDEN struct pt_hashstore *pt__hashstore_new(void);
PT_HIDDEN void pt__hashstore_free(struct pt_hashstore *hs);	/* accepts NULL */
/*
 * Hash every page of [start,end) of area @v of target @t and compare
 * with the hashes stored in @hs: pages whose content changed (including
 * becoming zero / absent, or data appearing) are added to @out with
 * PT_DIRTY_HASHED.  @baseline: store only, report nothing.  Pages with
 * no data hash as the zero page.  Memory is proportional to pages that
 * hold data, never to virtual size.  Reading must not change residency:
 * pages that had to be swapped in to be read are paged out again.
 * *@pages_hashed (may be NULL) grows by the pages hashed.
 * Returns 0 or -errno (-ESRCH when the target exited).
 */
PT_HIDDEN int pt__hash_area(struct pt_hashstore *hs, struct pt_target *t, const struct pt_vma *v,
			    uint64_t start, uint64_t end, bool baseline, struct pt_dirtylist *out,
			    uint64_t *pages_hashed);
/*
 * pt__hash_area(..., baseline = true, ...) that also adds to @holes (may
 * be NULL) the pages it stored as holding no data (absent, or mapping
 * the zero page): what it stored for them is the zero hash, so any later
 * content but zeros is reported.  Only meaningful where such a page reads
 * as zeros (private anonymous memory).  On failure @holes is as before.
 */
PT_HIDDEN int pt__hash_baseline(struct pt_hashstore *hs, struct pt_target *t,
				const struct pt_vma *v, uint64_t start, uint64_t end,
				struct pt_dirtylist *holes, uint64_t *pages_hashed);
/* Test aid: 1 and the stored hash when @addr has a non-zero entry, else 0. */
PT_HIDDEN int pt__hash_peek(const struct pt_hashstore *hs, uint64_t addr, uint64_t *h);
/*
 * Store the hashes of @npages pages of @data as the content of the pages
 * from @addr on (what a consumer copied: pt_tracker_note_copy()).  -ENOMEM.
 */
PT_HIDDEN int pt__hash_note(struct pt_hashstore *hs, uint64_t addr, const void *data,
			    size_t npages);
/* Forget hashes in [start,end) (area unmapped or moved to another method). */
PT_HIDDEN void pt__hash_forget(struct pt_hashstore *hs, uint64_t start, uint64_t end);

#endif
