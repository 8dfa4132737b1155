/* SPDX-License-Identifier: MIT */
/*
 * Fallback scan backend: batched pread of /proc/PID/pagemap.  Windows are
 * PT_WINDOW_PAGES entries (256 MiB of address space); a VMA of 1 GiB or
 * more whose smaps shows neither Rss nor Swap is skipped whole, so a
 * huge PROT_NONE reservation costs one smaps read instead of terabytes
 * of zero entries.
 */
#include <errno.h>
#include <unistd.h>

#include "pt_internal.h"

#define PT_SKIP_CHECK_MIN (1ULL << 30)

int pt__backend_read_fill(struct pt_target *t, const struct pt_vma *v, uint64_t start,
			  uint64_t end, bool need_detail, struct pt_runbuf *rb, uint64_t *next)
{
	uint64_t npages = (end - start) >> PT_PAGE_SHIFT;
	ssize_t got;
	int err;

	(void)need_detail;	/* pagemap entries always carry all details */
	if (v->end - v->start >= PT_SKIP_CHECK_MIN) {
		const struct pt_smaps_ent *s = pt__smaps_lookup(t, v->start);

		if (s && s->end == v->end && s->rss_kb == 0 && s->swap_kb == 0) {
			struct pt_region none = { .state = PT_STATE_NONE };

			err = pt__run_append(rb, start, end, &none);
			if (err)
				return err;
			*next = end;
			return 0;
		}
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
		return pt__target_errno(t, ESRCH);	/* the mm is gone */
	npages = (uint64_t)got / sizeof(uint64_t);
	err = pt__decode_entries(t, v, start, t->pm_buf, npages, 0, rb, next);
	if (err == -ENOSPC && *next > start)
		err = 0;
	return err;
}
