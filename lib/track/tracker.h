/* SPDX-License-Identifier: MIT */
/* Internal interfaces of the dirty-page tracker (lib/track/). */
#ifndef PT_TRACKER_H
#define PT_TRACKER_H

#include "pt_internal.h"

/* Growable list of dirty regions of one round (memory ~ regions, not pages). */
struct pt_dirtylist {
	struct pt_dirty *d;
	size_t n, cap;
};

/* Append [start,end) with @flags, merging with the last entry when it touches. -ENOMEM. */
int pt__dirty_add(struct pt_dirtylist *l, uint64_t start, uint64_t end, uint32_t flags);
/* Sort by address and merge overlapping/adjacent entries (flags OR'ed). */
void pt__dirty_sort_merge(struct pt_dirtylist *l);
void pt__dirty_free(struct pt_dirtylist *l);

/* How an area is tracked. */
enum pt_method {
	PT_METHOD_BACKEND = 0,	/* the tracker's page-table backend */
	PT_METHOD_HASH,		/* content hashing (fallback or hash backend) */
};

/* A tracked memory area as of the last round. */
struct pt_area {
	uint64_t start, end, offset, inode;
	uint32_t dev_major, dev_minor, prot, kind;
	uint8_t method;		/* enum pt_method */
};

struct pt_tracker;

struct pt_track_ops {
	const char *name;
	/* Set up backend state (e.g. the userfaultfd). */
	int (*init)(struct pt_tracker *tr);
	/* Can the backend track @v at all?  If not, the area is hashed. */
	bool (*can_track)(struct pt_tracker *tr, const struct pt_vma *v);
	/*
	 * Arm [start,end) of @v, which is new (or no longer armed): after
	 * this, writes to it are seen by harvest().  The caller has reported
	 * [start,end) in @out; a backend that had to arm more than that
	 * (pages whose earlier state it cannot trust) reports those too.
	 */
	int (*arm)(struct pt_tracker *tr, const struct pt_vma *v, uint64_t start, uint64_t end,
		   struct pt_dirtylist *out);
	/*
	 * Add to @out the pages of [start,end) of @v written since it was
	 * last armed or harvested, and re-arm them atomically.  Returns
	 * -ENOENT when the kernel says the area is not armed any more
	 * (then the caller reports it whole and arms it).
	 */
	int (*harvest)(struct pt_tracker *tr, const struct pt_vma *v, uint64_t start,
		       uint64_t end, struct pt_dirtylist *out);
	/* Around the harvest of all areas of one round (may be NULL). */
	int (*round_begin)(struct pt_tracker *tr);
	void (*round_end)(struct pt_tracker *tr);
	/* Undo everything done to the target. */
	void (*fini)(struct pt_tracker *tr);
};

/* Record [start,end) as holding data now (backends call this). */
PT_HIDDEN int pt__pop_add(struct pt_tracker *tr, uint64_t start, uint64_t end);
/*
 * @none: sorted ranges inside [start,end) with no data now.  Everything
 * else holds data (recorded for the next round); pages that held data at
 * the last round and are in @none were dropped: PT_DIRTY_ZEROED in @out.
 */
PT_HIDDEN int pt__pop_from_holes(struct pt_tracker *tr, uint64_t start, uint64_t end,
				 const struct pt_dirtylist *none, struct pt_dirtylist *out);

/*
 * Ranges of the target's memory the kernel writes through long-term pins
 * (io_uring registered buffers: lib/track/pinned.c), sorted and merged, into
 * @out (emptied first).  Page-table backends cannot see those writes.
 */
PT_HIDDEN int pt__pinned_ranges(const struct pt_target *t, struct pt_dirtylist *out);

extern const struct pt_track_ops pt__track_uffd_ops PT_HIDDEN;
extern const struct pt_track_ops pt__track_softdirty_ops PT_HIDDEN;
extern const struct pt_track_ops pt__track_hash_ops PT_HIDDEN;

/* ---- lib/track/hashstore.c: content hashes of tracked pages ---- */
struct pt_hashstore;

PT_HIDDEN struct pt_hashstore *pt__hashstore_new(void);
PT_HIDDEN void pt__hashstore_free(struct pt_hashstore *hs);	/* accepts NULL */
/*
 * Hash every page of [start,end) of area @v in the target of @tr and
 * compare with the stored hashes: pages whose content changed (including
 * becoming zero / absent, or data appearing) are added to @out with
 * PT_DIRTY_HASHED.  @baseline: store only, report nothing.  Pages with
 * no data hash as the zero page.  Memory is proportional to pages that
 * hold data, never to virtual size.  Reading must not change residency:
 * pages that had to be swapped in to be read are paged out again.
 * Returns 0 or -errno (-ESRCH when the target exited).
 */
PT_HIDDEN int pt__hash_area(struct pt_tracker *tr, const struct pt_vma *v, uint64_t start,
			    uint64_t end, bool baseline, struct pt_dirtylist *out);
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

struct pt_tracker {
	struct pt_target *t;		/* scan target: pid, pagemap fd, layout */
	pid_t pid;
	bool self;
	enum pt_track_backend backend;
	const struct pt_track_ops *ops;
	uint32_t flags;
	uint64_t start, end;

	struct pt_area *areas;		/* as of the last round */
	size_t nareas;

	struct pt_dirtylist round;	/* the round being handed out */
	size_t emitted;
	bool in_round;

	/*
	 * Pages holding data (present or swapped) in backend-tracked areas,
	 * as of the last round and as being built: a page that held data and
	 * now has none was dropped (MADV_DONTNEED, reclaim of MADV_FREE) and
	 * its content became zero, which no page-table bit reports.
	 */
	struct pt_dirtylist pop_prev, pop_cur;
	size_t pop_prev_sorted;		/* entries of pop_prev in order; those after were
					   appended by pt_tracker_note_copy() */
	struct pt_dirtylist pinned;	/* pt__pinned_ranges() of this round */

	struct pt_hashstore *hs;
	void *priv;			/* backend state */
	struct pt_tracker_stats st;
};

#endif
