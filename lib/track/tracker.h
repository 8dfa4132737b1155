/* SPDX-License-Identifier: MIT */
/* Internal interfaces of the dirty-page tracker (lib/track/). */
#ifndef PT_TRACKER_H
#define PT_TRACKER_H

#include "pt_internal.h"
#include "dirtylist.h"
#include "hashstore.h"
#include "hot.h"
#include "pinned.h"

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
	uint8_t reason;		/* enum pt_area_reason: why hashed (PT_AREA_REASON_NONE if not) */
	uint8_t want;		/* pt_tracker_set_area_method() since: 0, or
				   PT_AREA_HASHED + 1 / PT_AREA_BACKEND + 1 */
	uint64_t faulted, hashed;	/* this area's share of the round's counts */
};

struct pt_tracker;

/* A new part of an area to arm, for arm_batch(). */
struct pt_part {
	const struct pt_vma *v;	/* its area in the round's layout */
	uint64_t start, end;
	int err;		/* what arm() would have returned for it */
	uint64_t rs, re;	/* the backend's own use */
	bool zero_fill;		/* the backend's own use: its holes read as zeros */
};

struct pt_parts {
	struct pt_part *p;
	size_t n, cap;
};

struct pt_track_ops {
	const char *name;
	/*
	 * Set up backend state (e.g. the userfaultfd) in tr->priv.  On
	 * failure it may leave a half-built state there: the tracker then
	 * calls fini(), which must accept it, before anything else.
	 */
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
	 * Optional: arm every new part of a round at once, after the
	 * harvests, as arm() would each (in address order), e.g. under one
	 * freeze of the target.  Sets each part's err to arm()'s result;
	 * returns 0, or -errno when the round must fail.
	 */
	int (*arm_batch)(struct pt_tracker *tr, struct pt_parts *parts, struct pt_dirtylist *out);
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
	/*
	 * Undo everything done to the target and free tr->priv (then NULL);
	 * also after a failed init() or a failed first round.  May be NULL
	 * for a backend that keeps no state.  Returns 0, or -errno when
	 * something could not be undone in the target (logged).
	 */
	int (*fini)(struct pt_tracker *tr);
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
 * Does a page of @v with no data read as zeros?  Private anonymous memory
 * only: a file page that is not resident reads the file, shared memory
 * may hold data this process has not mapped.
 */
PT_HIDDEN bool pt__area_zero_fill(const struct pt_vma *v);
/*
 * Record [start,end) of a new area, which the backend has just armed, as
 * holding no data at that instant (its holes).  Only for areas where
 * pt__area_zero_fill() holds, only for pages seen empty by the walk that
 * armed them (a later write into them is seen by the next harvest).
 * The round reports them with PT_DIRTY_HOLE.
 */
PT_HIDDEN int pt__hole_add(struct pt_tracker *tr, uint64_t start, uint64_t end);

extern const struct pt_track_ops pt__track_uffd_ops PT_HIDDEN;
extern const struct pt_track_ops pt__track_softdirty_ops PT_HIDDEN;
extern const struct pt_track_ops pt__track_hash_ops PT_HIDDEN;

struct pt_tracker {
	struct pt_target *t;		/* scan target: pid, pagemap fd, layout */
	pid_t pid;
	bool self;
	enum pt_track_backend backend;
	const struct pt_track_ops *ops;
	uint32_t flags;
	uint64_t start, end;

	struct pt_area *areas;		/* as of the last round */
	struct pt_vma *layout;		/* the same areas with their paths (pt__vmas_pack) */
	size_t nareas;
	uint64_t saves;			/* rounds whose areas were saved in areas[] */

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
	struct pt_dirtylist holes;	/* this round: pages of new areas with no data
					   when armed (pt__hole_add) */

	struct pt_parts *defer;		/* during a round: new parts for arm_batch() */

	struct pt_hashstore *hs;
	struct pt_hot *hot;		/* PT_TRACK_HOT with a backend that applies it, else NULL */
	void *priv;			/* backend state */
	struct pt_tracker_stats st;	/* backends add to st.pages_faulted in harvest() */

	/* overhead: the counters at the start of the last round that succeeded */
	struct pt_usage {
		uint64_t mono_ns, self_cpu_ns, target_minflt, target_ticks;
		bool target_ok;		/* /proc/PID/stat was read */
	} usage;
	uint64_t fault_cost_ns;		/* pt_fault_cost_ns(), read at create */
};

#endif
