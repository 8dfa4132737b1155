/* SPDX-License-Identifier: MIT */
/* Run buffers: the unit every scan stage reads and writes. */
#include <errno.h>

#include "pt_internal.h"

static bool run_continues(const struct pt_region *prev, uint64_t start,
			  const struct pt_region *p)
{
	if (prev->end != start || prev->state != p->state || prev->reason != p->reason ||
	    prev->attrs != p->attrs || prev->kflags != p->kflags ||
	    prev->mapcount != p->mapcount)
		return false;
	if (!(p->attrs & PT_ATTR_LOC))
		return true;
	return prev->swap_type == p->swap_type &&
	       prev->loc + ((prev->end - prev->start) >> PT_PAGE_SHIFT) == p->loc;
}

int pt__run_append(struct pt_runbuf *rb, uint64_t start, uint64_t end,
		   const struct pt_region *proto)
{
	if (start < end && rb->n && run_continues(&rb->r[rb->n - 1], start, proto)) {
		rb->r[rb->n - 1].end = end;
		return 0;
	}
	return pt__run_push(rb, start, end, proto);
}

int pt__run_push(struct pt_runbuf *rb, uint64_t start, uint64_t end,
		 const struct pt_region *proto)
{
	struct pt_region *r;

	if (start >= end)
		return 0;
	if (rb->n == rb->cap)
		return -ENOSPC;
	r = &rb->r[rb->n++];
	*r = *proto;
	r->start = start;
	r->end = end;
	return 0;
}

void pt__run_truncate(struct pt_runbuf *rb, uint64_t addr)
{
	while (rb->n && rb->r[rb->n - 1].start >= addr)
		rb->n--;
	if (rb->n && rb->r[rb->n - 1].end > addr) {
		struct pt_region *r = &rb->r[rb->n - 1];
		r->end = addr;
	}
}
