/* SPDX-License-Identifier: MIT */
/*
 * Hot-page skipping (lib/track/hot.h, doc/tracking.md "Hot pages").
 *
 * Memory is proportional to runs of written pages, never to the tracked
 * range: a streak list (pages written in each of the last n rounds) and
 * a hot list (pages left writable until a round), both sorted runs.
 *
 * A hot page cannot tell whether it was written (a writable page always
 * reads as written), so hotness cannot end by itself: a lease does.  When
 * it runs out the page is re-armed by the harvest that reports it (as
 * written: it may have been), and the next round shows whether it is
 * still written.  With adaptive settings, re-armed pages that are
 * written again at once make the lease longer and K smaller; re-armed
 * pages that stay quiet make the lease shorter and K larger.
 */
#include <errno.h>
#include <stdlib.h>

#include "hot.h"

#define K_START 2
#define K_MAX 8
#define LEASE_START 4
#define LEASE_MIN 2
#define LEASE_MAX 64
#define ADAPT_MIN_PAGES 8	/* re-armed pages needed to judge the settings */

static int hl_add(struct pt_hotlist *l, uint64_t s, uint64_t e, uint32_t n, uint32_t fresh)
{
	if (s >= e)
		return 0;
	if (l->n) {
		struct pt_hotrun *last = &l->r[l->n - 1];

		if (last->end == s && last->n == n && last->fresh == fresh) {
			last->end = e;
			return 0;
		}
	}
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 256;
		struct pt_hotrun *nr = realloc(l->r, ncap * sizeof(*nr));

		if (!nr)
			return -ENOMEM;
		l->r = nr;
		l->cap = ncap;
	}
	l->r[l->n++] = (struct pt_hotrun){ .start = s, .end = e, .n = n, .fresh = fresh };
	return 0;
}

static void hl_free(struct pt_hotlist *l)
{
	free(l->r);
	l->r = NULL;
	l->n = l->cap = 0;
}

static int cmp_run(const void *a, const void *b)
{
	const struct pt_hotrun *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* First run of @l ending after @addr (sorted, disjoint). */
static size_t hl_first(const struct pt_hotlist *l, uint64_t addr)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (l->r[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct pt_hot *pt__hot_new(uint32_t k, uint32_t lease)
{
	struct pt_hot *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->k_auto = !k;
	h->lease_auto = !lease;
	h->k = k ? k : K_START;
	h->lease = lease ? lease : LEASE_START;
	return h;
}

void pt__hot_free(struct pt_hot *h)
{
	if (!h)
		return;
	hl_free(&h->hot);
	hl_free(&h->streak);
	hl_free(&h->hot_next);
	pt__dirty_free(&h->written);
	pt__dirty_free(&h->rearmed);
	pt__dirty_free(&h->rearmed_prev);
	free(h);
}

int pt__hot_segments(struct pt_hot *h, uint64_t start, uint64_t end,
		     int (*fn)(uint64_t s, uint64_t e, enum pt_hot_kind kind,
			       const struct pt_hotrun *run, void *arg),
		     void *arg)
{
	uint64_t cur = start;
	int err;

	if (!h)
		return fn(start, end, PT_HOT_COLD, NULL, arg);
	for (size_t i = hl_first(&h->hot, start); i < h->hot.n && h->hot.r[i].start < end; i++) {
		const struct pt_hotrun *r = &h->hot.r[i];
		uint64_t s = r->start > cur ? r->start : cur, e = r->end < end ? r->end : end;

		if (s >= e)
			continue;
		if (s > cur && (err = fn(cur, s, PT_HOT_COLD, NULL, arg)))
			return err;
		if ((err = fn(s, e, r->n > h->round ? PT_HOT_KEEP : PT_HOT_REARM, r, arg)))
			return err;
		cur = e;
	}
	return cur < end ? fn(cur, end, PT_HOT_COLD, NULL, arg) : 0;
}

int pt__hot_cold_written(struct pt_hot *h, uint64_t s, uint64_t e)
{
	return pt__dirty_add(&h->written, s, e, 0);
}

int pt__hot_keep(struct pt_hot *h, uint64_t s, uint64_t e, uint32_t until)
{
	return hl_add(&h->hot_next, s, e, until, 0);
}

int pt__hot_rearmed(struct pt_hot *h, uint64_t s, uint64_t e)
{
	h->rearmed_pages += (e - s) >> PT_PAGE_SHIFT;
	return pt__dirty_add(&h->rearmed, s, e, 0);
}

void pt__hot_forget(struct pt_hot *h)
{
	if (!h)
		return;
	h->hot.n = h->streak.n = h->hot_next.n = 0;
	h->written.n = h->rearmed.n = h->rearmed_prev.n = 0;
}

/* Pages of @a that are also in @b (both sorted, merged). */
static uint64_t overlap_pages(const struct pt_dirtylist *a, const struct pt_dirtylist *b)
{
	uint64_t bytes = 0;
	size_t i = 0, j = 0;

	while (i < a->n && j < b->n) {
		uint64_t s = a->d[i].start > b->d[j].start ? a->d[i].start : b->d[j].start;
		uint64_t e = a->d[i].end < b->d[j].end ? a->d[i].end : b->d[j].end;

		if (s < e)
			bytes += e - s;
		if (a->d[i].end < b->d[j].end)
			i++;
		else
			j++;
	}
	return bytes >> PT_PAGE_SHIFT;
}

/* Re-armed pages written again at once: the lease was too short (and K too large). */
static void adapt(struct pt_hot *h)
{
	uint64_t total = 0, again;

	for (size_t i = 0; i < h->rearmed_prev.n; i++)
		total += (h->rearmed_prev.d[i].end - h->rearmed_prev.d[i].start) >> PT_PAGE_SHIFT;
	if (total < ADAPT_MIN_PAGES)
		return;
	again = overlap_pages(&h->rearmed_prev, &h->written);
	if (again * 4 >= total * 3) {
		if (h->lease_auto && h->lease < LEASE_MAX)
			h->lease *= 2;
		if (h->k_auto && h->k > 1)
			h->k--;
	} else if (again * 4 < total) {
		if (h->lease_auto && h->lease > LEASE_MIN)
			h->lease /= 2;
		if (h->k_auto && h->k < K_MAX)
			h->k++;
	}
}

/*
 * The new streaks: a written page continues its streak or starts one;
 * one that reaches K becomes hot (it was re-protected by this round's
 * harvest, so it is "fresh": its next write still faults once).
 */
static int update_streaks(struct pt_hot *h)
{
	struct pt_hotlist next = { 0 };
	const struct pt_hotlist *old = &h->streak;
	uint32_t until = h->round + 1 + h->lease;
	size_t j = 0;
	int err = 0;

	for (size_t i = 0; i < h->written.n && !err; i++) {
		uint64_t cur = h->written.d[i].start, end = h->written.d[i].end;

		while (j < old->n && old->r[j].end <= cur)
			j++;
		while (cur < end && !err) {
			uint64_t e = end;
			uint32_t n = 1;

			if (j < old->n && old->r[j].start <= cur) {
				e = old->r[j].end < end ? old->r[j].end : end;
				n = old->r[j].n + 1;
			} else if (j < old->n && old->r[j].start < end) {
				e = old->r[j].start;
			}
			if (n >= h->k)
				err = hl_add(&h->hot_next, cur, e, until, 1);
			else
				err = hl_add(&next, cur, e, n, 0);
			cur = e;
			while (j < old->n && old->r[j].end <= cur)
				j++;
		}
	}
	if (err) {
		hl_free(&next);
		return err;
	}
	hl_free(&h->streak);
	h->streak = next;
	return 0;
}

int pt__hot_round_end(struct pt_hot *h)
{
	struct pt_hotlist t;
	struct pt_dirtylist d;
	int err;

	pt__dirty_sort_merge(&h->written);
	adapt(h);
	err = update_streaks(h);
	if (err) {
		pt__hot_forget(h);
		return err;
	}
	if (h->hot_next.n > 1)
		qsort(h->hot_next.r, h->hot_next.n, sizeof(*h->hot_next.r), cmp_run);
	t = h->hot;
	h->hot = h->hot_next;
	h->hot_next = t;
	h->hot_next.n = 0;
	pt__dirty_sort_merge(&h->rearmed);
	d = h->rearmed_prev;
	h->rearmed_prev = h->rearmed;
	h->rearmed = d;
	h->rearmed.n = 0;
	h->written.n = 0;
	h->round++;
	return 0;
}
