/* SPDX-License-Identifier: MIT */
/*
 * pt_scan(): the pipeline every scan goes through, one window at a time:
 *   backend (PAGEMAP_SCAN or pagemap pread) -> raw runs
 *   -> shared-object resolution (lib/scan/shared.c) -> kpageflags (optional)
 *   -> caller's buffer, merged, with attributes the caller did not ask
 *      for stripped so both backends give identical output.
 * All memory is per target and bounded by PT_WINDOW_PAGES.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pt_internal.h"
#include "uapi.h"

const char *pt_state_name(enum pt_state s)
{
	static const char *const names[] = {
		[PT_STATE_ABSENT] = "absent",	[PT_STATE_PRESENT] = "present",
		[PT_STATE_SWAPPED] = "swapped", [PT_STATE_CACHED] = "cached",
		[PT_STATE_UNKNOWN] = "unknown",
	};

	return (unsigned)s < PT_STATE__COUNT ? names[s] : NULL;
}

const char *pt_reason_name(enum pt_reason r)
{
	static const char *const names[] = {
		[PT_REASON_NONE] = "none",
		[PT_REASON_NO_ACCESS] = "no_access",
		[PT_REASON_NOT_RESOLVED] = "not_resolved",
		[PT_REASON_MINCORE_DENIED] = "mincore_denied",
		[PT_REASON_MARKER_AMBIGUOUS] = "marker_ambiguous",
		[PT_REASON_UNSUPPORTED] = "unsupported",
	};
	_Static_assert(sizeof(names) / sizeof(names[0]) == PT_REASON__COUNT, "a reason without a name");

	return (unsigned)r < PT_REASON__COUNT ? names[r] : NULL;
}

const char *pt_reason_text(enum pt_reason r)
{
	switch (r) {
	case PT_REASON_NONE:
		return "none";
	case PT_REASON_NO_ACCESS:
		return "backing object not accessible (needs CAP_SYS_ADMIN for map_files)";
	case PT_REASON_NOT_RESOLVED:
		return "shared-memory resolution was not requested";
	case PT_REASON_MINCORE_DENIED:
		return "mincore needs ownership of or write access to the backing file";
	case PT_REASON_MARKER_AMBIGUOUS:
		return "uffd-wp marker and swap entry look alike without CAP_SYS_ADMIN";
	case PT_REASON_UNSUPPORTED:
		return "this kind of mapping cannot be inspected";
	case PT_REASON__COUNT:
		break;
	}
	return NULL;
}

static int ensure_scratch(struct pt_target *t)
{
	const size_t runs = 2 * PT_WINDOW_PAGES + 16;

	if (t->pm_buf)
		return 0;
	t->pm_buf = malloc(PT_WINDOW_PAGES * sizeof(uint64_t));
	t->scan_vec = malloc(runs * sizeof(struct page_region));
	t->rb[0].r = malloc(runs * sizeof(struct pt_region));
	t->rb[1].r = malloc(runs * sizeof(struct pt_region));
	if (!t->pm_buf || !t->scan_vec || !t->rb[0].r || !t->rb[1].r) {
		free(t->pm_buf);
		free(t->scan_vec);
		free(t->rb[0].r);
		free(t->rb[1].r);
		t->pm_buf = NULL;
		t->scan_vec = NULL;
		t->rb[0].r = t->rb[1].r = NULL;
		return -ENOMEM;
	}
	t->rb[0].cap = t->rb[1].cap = runs;
	return 0;
}


/* Anonymous memory: a page the page table does not know is absent. */
static void none_to_absent(struct pt_runbuf *rb)
{
	for (size_t i = 0; i < rb->n; i++)
		if (rb->r[i].state == PT_STATE_NONE)
			rb->r[i].state = PT_STATE_ABSENT;
}

static void strip(struct pt_region *r, uint32_t flags)
{
	if (!(flags & (PT_SCAN_LOCATION | PT_SCAN_KFLAGS))) {
		r->attrs &= ~PT_ATTR_LOC;
		r->loc = 0;
		r->swap_type = 0;
	}
	if (!(flags & PT_SCAN_KFLAGS)) {
		r->attrs &= ~PT_ATTR_KFLAGS;
		r->kflags = 0;
		r->mapcount = 0;
	}
	if (flags & PT_SCAN_NO_EXCLUSIVE)
		r->attrs &= ~PT_ATTR_EXCLUSIVE;
}

/*
 * Run one window [addr, wend) of VMA @v through the pipeline.  Returns
 * the run buffer holding the result and sets *next to the window's end.
 */
static int scan_window(struct pt_target *t, const struct pt_vma *v, uint64_t addr, uint64_t wend,
		       uint32_t flags, struct pt_runbuf **res, uint64_t *next)
{
	struct pt_runbuf *a = &t->rb[0], *b = &t->rb[1], *tmp;
	bool need_detail = !(flags & PT_SCAN_NO_EXCLUSIVE) ||
			   (flags & (PT_SCAN_LOCATION | PT_SCAN_KFLAGS));
	bool read = t->backend == PT_SCAN_BACKEND_PAGEMAP_READ;
	uint64_t stopped;
	int err;

	a->n = b->n = 0;
	if (v->start >= PT_USER_ADDR_END) {
		/* the vsyscall gate area is outside the mm: pagemap cannot see it */
		struct pt_region u = { .state = PT_STATE_UNKNOWN, .reason = PT_REASON_UNSUPPORTED };

		*next = wend;
		*res = a;
		return pt__run_append(a, addr, wend, &u);
	}
	if (read)
		err = pt__backend_read_fill(t, v, addr, wend, need_detail, a, next);
	else
		err = pt__backend_scan_fill(t, v, addr, wend, need_detail, a, next);
	if (err)
		return err;

	if (pt__vma_has_object(v)) {
		err = pt__shared_resolve(t, v, a, !(flags & PT_SCAN_NO_SHARED), b, &stopped);
		if (err)
			return err;
		if (stopped < *next)
			*next = stopped;
		tmp = a, a = b, b = tmp;
	} else {
		none_to_absent(a);
	}

	/*
	 * kpageflags: when asked for, and for the read backend to see huge
	 * pages (PAGEMAP_SCAN reports those itself).
	 */
	bool want_kflags = flags & PT_SCAN_KFLAGS;
	bool need_huge = read && v->kind != PT_VMA_HUGETLB;
	if (want_kflags || need_huge) {
		if (!(t->limits & PT_LIMIT_NO_KFLAGS) &&
		    pt_feature(PT_FEAT_KPAGEFLAGS, NULL) == PT_YES &&
		    pt_feature(PT_FEAT_PAGEMAP_PFN, NULL) == PT_YES) {
			b->n = 0;
			err = pt__kflags_apply(t, v, a, want_kflags, b, &stopped);
			if (err)
				return err;
			if (stopped < *next)
				*next = stopped;
			tmp = a, a = b, b = tmp;
		} else {
			t->limits |= PT_LIMIT_NO_KFLAGS;
		}
		if (need_huge && (t->limits & PT_LIMIT_NO_KFLAGS))
			t->limits |= PT_LIMIT_NO_HUGE;
	}
	/* where the kernel maps no zero page, nothing is hidden: no limit */
	if (read && pt__zero_page(NULL) == PT_UNKNOWN)
		t->limits |= PT_LIMIT_NO_ZERO;
	if (!read && !(pt__scan_categories() & PAGE_IS_GUARD) &&
	    pt_feature(PT_FEAT_MADV_GUARD_INSTALL, NULL) == PT_YES)
		t->limits |= PT_LIMIT_NO_GUARD;
	*res = a;
	return 0;
}

int pt_scan(struct pt_target *t, uint64_t *cursor, uint64_t end, struct pt_region *out, size_t cap,
	    const struct pt_scan_opts *opts)
{
	struct pt_runbuf ob = { .r = out, .n = 0, .cap = cap };
	uint32_t flags;
	uint64_t addr;
	int err;

	if (!t || !cursor || (!out && cap) || !PT_OPTS_VALID(opts, pt_scan_opts) ||
	    PT_OPTS_GET(opts, reserved, 0))
		return -EINVAL;
	flags = PT_OPTS_GET(opts, flags, 0);
	if (t->pending_err) {
		err = t->pending_err;
		t->pending_err = 0;
		return err;
	}
	addr = *cursor & ~(PT_PAGE_SIZE - 1);
	end = (end + PT_PAGE_SIZE - 1) & ~(PT_PAGE_SIZE - 1);
	if (addr >= end) {
		*cursor = end;
		return 0;
	}
	if (!cap)
		return -EINVAL;
	if (!t->vmas_valid && (err = pt__target_load_vmas(t)) < 0)
		return err;
	if ((err = ensure_scratch(t)) < 0)
		return err;
	if (t->win && (addr != t->win_resume || flags != t->win_flags))
		t->win = NULL;
	if (addr != t->last_cursor)
		t->scan_epoch++;	/* not a resume: cached hints are stale */

	while (addr < end) {
		size_t i = pt__vma_find(t, addr);
		struct pt_runbuf *res;
		uint64_t next;

		if (i == t->nvmas || t->vmas[i].start >= end) {
			addr = end;
			break;
		}
		const struct pt_vma *v = &t->vmas[i];
		uint64_t wend = end < v->end ? end : v->end;
		if (addr < v->start)
			addr = v->start;
		if (t->win && addr >= t->win_start && addr < t->win_end) {
			res = t->win;	/* resuming inside the window cut short */
			next = t->win_end < wend ? t->win_end : wend;
		} else {
			uint64_t wstart = addr;

			err = scan_window(t, v, addr, wend, flags, &res, &next);
			if (err)
				goto fail;
			t->win_start = wstart;
			t->win_end = next;
		}
		t->win = NULL;
		for (size_t k = 0; k < res->n && res->r[k].start < next; k++) {
			struct pt_region r = res->r[k];

			if (r.end <= addr)
				continue;
			if (r.start < addr)
				r.start = addr;	/* locations stay exact: see below */
			if (r.end > next)
				r.end = next;
			if ((r.attrs & PT_ATTR_LOC) && r.start != res->r[k].start)
				r.loc += (r.start - res->r[k].start) >> PT_PAGE_SHIFT;
			strip(&r, flags);
			/* a region never spans two memory areas */
			err = r.start == v->start ? pt__run_push(&ob, r.start, r.end, &r)
						  : pt__run_append(&ob, r.start, r.end, &r);
			if (err < 0) {
				t->win = res;
				t->win_resume = r.start;
				t->win_flags = flags;
				*cursor = r.start;
				t->last_cursor = r.start;
				return (int)ob.n;
			}
		}
		addr = next;
	}
	*cursor = addr;
	t->last_cursor = addr;
	return (int)ob.n;
fail:
	*cursor = addr;
	if (ob.n) {
		t->pending_err = err;
		return (int)ob.n;
	}
	return err;
}
