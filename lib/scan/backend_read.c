/* SPDX-License-Identifier: MIT */
/*
 * Fallback scan backend: batched pread of /proc/PID/pagemap.  Windows are
 * PT_WINDOW_PAGES entries (256 MiB of address space); a VMA of 1 GiB or
 * more whose first window is empty and whose smaps shows neither Rss nor
 * Swap is skipped whole, so a huge PROT_NONE reservation costs one smaps
 * read instead of terabytes of zero entries.
 */
#include <errno.h>
#include <unistd.h>

#include "pt_internal.h"

#define PT_SKIP_CHECK_MIN (1ULL << 30)

/* No page in the window: entries empty but for the VMA-level soft-dirty bit. */
static bool all_zero(const uint64_t *pm, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (pm[i] & ~PT_PM_SOFT_DIRTY)
			return false;
	return true;
}

int pt__backend_read_fill(struct pt_target *t, const struct pt_vma *v, uint64_t start,
			  uint64_t end, bool need_detail, struct pt_runbuf *rb, uint64_t *next)
{
	uint64_t npages = (end - start) >> PT_PAGE_SHIFT;
	ssize_t got;
	int err;

	(void)need_detail;	/* pagemap entries always carry all details */
	/*
	 * A huge area whose smaps shows neither Rss nor Swap is skipped
	 * whole.  smaps walks every page table of the process, so it is
	 * consulted only once a first window of such an area came back
	 * empty, i.e. when the area looks like a reservation.
	 */
	if (v->end - v->start >= PT_SKIP_CHECK_MIN && start == v->start &&
	    t->skip_probe_vma == v->start) {
		const struct pt_smaps_ent *s = pt__smaps_lookup(t, v->start);

		t->skip_probe_vma = 0;
		if (s && s->end == v->end && s->rss_kb == 0 && s->swap_kb == 0) {
			struct pt_region none = { .state = PT_STATE_NONE };

			err = pt__run_append(rb, start, end, &none);
			if (err)
				return err;
			*next = end;
			return 0;
		}
		t->skip_checked_vma = v->start;
	}
	if (npages > PT_WINDOW_PAGES) {
		/* end windows on a 2 MiB boundary so no huge page is cut in two */
		uint64_t wend = (start + ((uint64_t)PT_WINDOW_PAGES << PT_PAGE_SHIFT)) & ~PT_HUGE_MASK;

		npages = wend > start ? (wend - start) >> PT_PAGE_SHIFT : PT_WINDOW_PAGES;
	}
	got = pread(t->pagemap_fd, t->pm_buf, npages * sizeof(uint64_t),
		    (off_t)((start >> PT_PAGE_SHIFT) * sizeof(uint64_t)));
	if (got < 0)
		return pt__target_errno(t, errno);
	if (got == 0)
		return -ESRCH;	/* the mm is gone: exited, or exec'd */
	npages = (uint64_t)got / sizeof(uint64_t);
	if (v->end - v->start >= PT_SKIP_CHECK_MIN && start == v->start &&
	    t->skip_checked_vma != v->start && all_zero(t->pm_buf, npages)) {
		/* looks like a reservation: ask smaps, then come back here */
		t->skip_probe_vma = v->start;
		return pt__backend_read_fill(t, v, start, end, need_detail, rb, next);
	}
	err = pt__decode_entries(t, v, start, t->pm_buf, npages, 0, rb, next);
	if (err == -ENOSPC && *next > start)
		err = 0;
	return err;
}
