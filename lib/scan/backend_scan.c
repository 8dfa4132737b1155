/* SPDX-License-Identifier: MIT */
/*
 * Fast scan backend: the PAGEMAP_SCAN ioctl (6.7+).  It reports runs of
 * pages by category and skips empty page tables in the kernel.  Details
 * it cannot give (exclusive, PFN, swap slot, and the marker/swap
 * distinction for uffd-wp entries) come from pagemap entries read only
 * for the pages that need them, so both backends report the same.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "pt_internal.h"
#include "uapi.h"

static int read_entries(struct pt_target *t, uint64_t start, uint64_t npages, uint64_t *buf)
{
	ssize_t got = pread(t->pagemap_fd, buf, npages * sizeof(uint64_t),
			    (off_t)((start >> PT_PAGE_SHIFT) * sizeof(uint64_t)));

	if (got < 0)
		return pt__target_errno(t, errno);
	if ((uint64_t)got != npages * sizeof(uint64_t))
		return pt__target_errno(t, ESRCH);
	return 0;
}

static int emit_region(struct pt_target *t, const struct pt_vma *v, const struct page_region *pr,
		       bool need_detail, uint64_t *pm_used, struct pt_runbuf *rb, uint64_t *stopped)
{
	uint64_t cat = pr->categories, extra = 0;
	struct pt_region p;

	if (cat & PAGE_IS_HUGE)
		extra |= PT_ATTR_HUGE;
	/* not where the probe says no page is the zero page (forced: see features.c) */
	if ((cat & PAGE_IS_PFNZERO) && pt__zero_page(NULL) != PT_NO)
		extra |= PT_ATTR_ZERO;
	/*
	 * Swap-type entries need the raw entry (marker or swap?); present
	 * pages need it when the caller wants exclusive/location details.
	 */
	if ((cat & PAGE_IS_SWAPPED) || ((cat & PAGE_IS_PRESENT) && need_detail)) {
		uint64_t n = (pr->end - pr->start) >> PT_PAGE_SHIFT;
		uint64_t *buf = t->pm_buf + *pm_used;
		int err = read_entries(t, pr->start, n, buf);

		if (err)
			return err;
		*pm_used += n;
		return pt__decode_entries(t, v, pr->start, buf, n, extra, rb, stopped);
	}
	memset(&p, 0, sizeof(p));
	if (cat & PAGE_IS_GUARD) {
		p.state = PT_STATE_ABSENT;
		p.attrs = PT_ATTR_GUARD;
	} else {
		p.state = PT_STATE_PRESENT;
		p.attrs = (uint32_t)extra;
		if (cat & PAGE_IS_FILE)
			p.attrs |= PT_ATTR_FILE;
		if (cat & PAGE_IS_SOFT_DIRTY)
			p.attrs |= PT_ATTR_SOFT_DIRTY;
		if (!(cat & PAGE_IS_WRITTEN))
			p.attrs |= PT_ATTR_UFFD_WP;
		if (v->kind == PT_VMA_HUGETLB)
			p.attrs |= PT_ATTR_HUGE;
	}
	if (pt__run_append(rb, pr->start, pr->end, &p) < 0) {
		*stopped = pr->start;
		return -ENOSPC;
	}
	*stopped = pr->end;
	return 0;
}

int pt__backend_scan_fill(struct pt_target *t, const struct pt_vma *v, uint64_t start,
			  uint64_t end, bool need_detail, struct pt_runbuf *rb, uint64_t *next)
{
	const uint64_t cats = pt__scan_categories();
	struct page_region *vec = t->scan_vec;
	struct pt_region none = { .state = PT_STATE_NONE };
	struct pm_scan_arg arg;
	uint64_t cur = start, pm_used = 0, stopped;
	long n;
	int err = 0;

	/* without the SOFT_DIRTY category the bit must come from the entries */
	if (!(cats & PAGE_IS_SOFT_DIRTY) && pt_feature(PT_FEAT_SOFT_DIRTY, NULL) == PT_YES)
		need_detail = true;
	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	arg.start = start;
	arg.end = end;
	arg.vec = (uint64_t)(uintptr_t)vec;
	/* Runs need at most one run per page plus gaps: keep room. */
	arg.vec_len = (rb->cap - rb->n) / 2;
	arg.max_pages = PT_WINDOW_PAGES;
	arg.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | (cats & PAGE_IS_GUARD);
	arg.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_FILE | PAGE_IS_PFNZERO |
			  PAGE_IS_HUGE | PAGE_IS_WRITTEN | (cats & (PAGE_IS_SOFT_DIRTY | PAGE_IS_GUARD));
	n = ioctl(t->pagemap_fd, PAGEMAP_SCAN, &arg);
	if (n < 0)
		return pt__target_errno(t, errno);
	for (long i = 0; i < n; i++) {
		if (vec[i].start > cur && pt__run_append(rb, cur, vec[i].start, &none) < 0) {
			*next = cur;
			return cur > start ? 0 : -ENOSPC;
		}
		cur = vec[i].start;
		err = emit_region(t, v, &vec[i], need_detail, &pm_used, rb, &stopped);
		if (err == -ENOSPC) {
			*next = stopped;
			return stopped > start ? 0 : -ENOSPC;
		}
		if (err)
			return err;
		cur = vec[i].end;
	}
	if (arg.walk_end > cur && pt__run_append(rb, cur, arg.walk_end, &none) < 0) {
		*next = cur;
		return cur > start ? 0 : -ENOSPC;
	}
	if (arg.walk_end > cur)
		cur = arg.walk_end;
	if (cur <= start) {
		/* the mm went away under us, or nothing could be walked */
		return pt__target_errno(t, ESRCH);
	}
	*next = cur;
	return 0;
}
