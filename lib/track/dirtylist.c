/* SPDX-License-Identifier: MIT */
/* Growable lists of dirty regions (lib/track/dirtylist.h). */
#include <errno.h>
#include <stdlib.h>

#include "dirtylist.h"

int pt__dirty_add(struct pt_dirtylist *l, uint64_t start, uint64_t end, uint32_t flags)
{
	if (start >= end)
		return 0;
	if (l->n && l->d[l->n - 1].end == start && l->d[l->n - 1].flags == flags) {
		l->d[l->n - 1].end = end;
		return 0;
	}
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 256;
		struct pt_dirty *nd = realloc(l->d, ncap * sizeof(*nd));

		if (!nd)
			return -ENOMEM;
		l->d = nd;
		l->cap = ncap;
	}
	l->d[l->n++] = (struct pt_dirty){ .start = start, .end = end, .flags = flags };
	return 0;
}

static int cmp_dirty(const void *a, const void *b)
{
	const struct pt_dirty *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

void pt__dirty_sort_merge(struct pt_dirtylist *l)
{
	size_t w = 0;

	bool sorted = true;

	if (l->n < 2)
		return;
	/* lists are mostly built in address order: sort only when needed */
	for (size_t i = 1; i < l->n && sorted; i++)
		sorted = l->d[i - 1].start <= l->d[i].start;
	if (!sorted)
		qsort(l->d, l->n, sizeof(*l->d), cmp_dirty);
	for (size_t i = 1; i < l->n; i++) {
		struct pt_dirty *last = &l->d[w];

		uint32_t hot = last->flags & l->d[i].flags & PT_DIRTY_HOT;

		/*
		 * PT_DIRTY_HOT lets a copier skip a page: never spread it to a
		 * neighbour, and where a hot and a plain report overlap the
		 * plain one wins.
		 */
		if (l->d[i].start == last->end &&
		    ((last->flags ^ l->d[i].flags) & PT_DIRTY_HOT)) {
			l->d[++w] = l->d[i];
		} else if (l->d[i].start <= last->end) {
			if (l->d[i].end > last->end)
				last->end = l->d[i].end;
			last->flags = ((last->flags | l->d[i].flags) & ~PT_DIRTY_HOT) | hot;
		} else {
			l->d[++w] = l->d[i];
		}
	}
	l->n = w + 1;
}

void pt__dirty_free(struct pt_dirtylist *l)
{
	free(l->d);
	l->d = NULL;
	l->n = l->cap = 0;
}
