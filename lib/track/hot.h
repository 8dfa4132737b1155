/* SPDX-License-Identifier: MIT */
/*
 * Hot-page skipping (PT_TRACK_HOT, doc/tracking.md "Hot pages"): which
 * pages a page-table backend leaves writable, and for how long.
 *
 * The one invariant the tracker relies on: a page that is not in the hot
 * set when its area is harvested is harvested with re-protection (the
 * usual way).  A writable page reads as written, so dropping hot state at
 * any time (a failed round, an area that changed) only makes the page
 * reported once more, never missed.
 */
#ifndef PT_HOT_H
#define PT_HOT_H

#include "dirtylist.h"

/* A run of pages with one value: a streak (rounds written in a row) or a lease. */
struct pt_hotrun {
	uint64_t start, end;
	uint32_t n;		/* streak: rounds written in a row; hot: round the lease ends */
	uint32_t fresh;		/* hot: became hot at the last round (still protected) */
};

struct pt_hotlist {
	struct pt_hotrun *r;
	size_t n, cap;
};

/* How a segment of a harvested range is to be harvested. */
enum pt_hot_kind {
	PT_HOT_COLD = 0,	/* harvest and re-protect (the usual way) */
	PT_HOT_KEEP,		/* hot, lease running: harvest without re-protecting */
	PT_HOT_REARM,		/* hot, lease over: harvest and re-protect, report plain */
};

struct pt_hot {
	struct pt_hotlist hot, streak;	/* as of the last round, sorted */
	struct pt_hotlist hot_next;	/* this round: pages kept hot */
	struct pt_dirtylist written;	/* this round: cold pages found written */
	struct pt_dirtylist rearmed, rearmed_prev;	/* re-armed this round / the last */
	uint32_t k, lease;		/* in use */
	bool k_auto, lease_auto;
	uint32_t round;
	uint64_t rearmed_pages;
};

struct pt_tracker;

/* NULL on ENOMEM.  @k, @lease: 0 for adaptive. */
PT_HIDDEN struct pt_hot *pt__hot_new(uint32_t k, uint32_t lease);
PT_HIDDEN void pt__hot_free(struct pt_hot *h);
/*
 * Split [start,end) by the hot set and call @fn for each segment in
 * address order with its kind and, for PT_HOT_KEEP, its run's lease end
 * and freshness.  @h NULL: one PT_HOT_COLD segment.
 */
PT_HIDDEN int pt__hot_segments(struct pt_hot *h, uint64_t start, uint64_t end,
			       int (*fn)(uint64_t s, uint64_t e, enum pt_hot_kind kind,
					 const struct pt_hotrun *run, void *arg),
			       void *arg);
/* Record what a harvest found (called by the backend while harvesting). */
PT_HIDDEN int pt__hot_cold_written(struct pt_hot *h, uint64_t s, uint64_t e);
PT_HIDDEN int pt__hot_keep(struct pt_hot *h, uint64_t s, uint64_t e, uint32_t until);
PT_HIDDEN int pt__hot_rearmed(struct pt_hot *h, uint64_t s, uint64_t e);
/* The round succeeded: update streaks, promote, adapt.  0 or -ENOMEM (then all is cold). */
PT_HIDDEN int pt__hot_round_end(struct pt_hot *h);
/* The round failed, or its harvests must not be trusted: forget all hot state. */
PT_HIDDEN void pt__hot_forget(struct pt_hot *h);

#endif
