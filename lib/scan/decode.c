/* SPDX-License-Identifier: MIT */
/* Decoding of /proc/PID/pagemap entries into runs. */
#include <errno.h>
#include <string.h>

#include "pt_internal.h"

/*
 * Swap types at or above this are not swap devices: the kernel keeps
 * migration, device, hwpoison and PTE-marker entries at the top of the
 * 5-bit type space (MAX_SWAPFILES = 32 minus those, at least 23).
 */
#define PT_SWP_SPECIAL_MIN 23u

void pt_pm_decode(uint64_t raw, struct pt_pm_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->present = !!(raw & PT_PM_PRESENT);
	e->swapped = !!(raw & PT_PM_SWAP);
	e->file = !!(raw & PT_PM_FILE);
	e->exclusive = !!(raw & PT_PM_EXCLUSIVE);
	e->soft_dirty = !!(raw & PT_PM_SOFT_DIRTY);
	e->uffd_wp = !!(raw & PT_PM_UFFD_WP);
	e->guard = !!(raw & PT_PM_GUARD);
	if (e->present) {
		e->pfn = raw & PT_PM_PFN_MASK;
	} else if (e->swapped) {
		e->swap_type = (uint8_t)(raw & 0x1f);
		e->swap_offset = (raw & PT_PM_PFN_MASK) >> 5;
	}
}


/*
 * A swap-type entry with the uffd-wp bit may be a PTE marker (no data in
 * swap) rather than a swapped page.  With PFNs visible the swap type
 * tells; in shared-object mappings swap-type PTEs never hold data (shmem
 * keeps swap entries in its page cache), so the object must be asked.
 * Returns the state to use: SWAPPED, NONE or UNKNOWN.
 */
static uint8_t classify_swap(struct pt_target *t, const struct pt_vma *v, uint64_t raw,
			     bool loc_visible, uint8_t *reason)
{
	uint32_t type = (uint32_t)(raw & 0x1f);

	if (pt__vma_is_shmem(v) && (v->prot & PT_MAP_SHARED))
		return PT_STATE_NONE;
	if (loc_visible)
		return type >= PT_SWP_SPECIAL_MIN ? PT_STATE_NONE : PT_STATE_SWAPPED;
	if (!(raw & PT_PM_UFFD_WP))
		return PT_STATE_SWAPPED;
	/* No PFNs: only a VMA with no swap at all proves it is a marker. */
	const struct pt_smaps_ent *s = pt__smaps_lookup(t, v->start);
	if (s && s->swap_kb == 0)
		return PT_STATE_NONE;
	*reason = PT_REASON_MARKER_AMBIGUOUS;
	return PT_STATE_UNKNOWN;
}

/* Attributes carried by the entry's flag bits (present or swap entries). */
static uint32_t page_attrs(uint64_t raw)
{
	return (raw & PT_PM_FILE ? PT_ATTR_FILE : 0) |
	       (raw & PT_PM_EXCLUSIVE ? PT_ATTR_EXCLUSIVE : 0) |
	       (raw & PT_PM_SOFT_DIRTY ? PT_ATTR_SOFT_DIRTY : 0) |
	       (raw & PT_PM_UFFD_WP ? PT_ATTR_UFFD_WP : 0);
}

int pt__decode_entries(struct pt_target *t, const struct pt_vma *v, uint64_t addr,
		       const uint64_t *pm, size_t n, uint64_t extra_attrs, struct pt_runbuf *rb,
		       uint64_t *stopped)
{
	const uint64_t zero_pfn = pt__zero_pfn();
	const bool hugetlb = v->kind == PT_VMA_HUGETLB;
	struct pt_region p;
	uint64_t prev_raw = ~0ULL;

	memset(&p, 0, sizeof(p));
	for (size_t i = 0; i < n; i++, addr += PT_PAGE_SIZE) {
		uint64_t raw = pm[i];

		/* Fast path: same flags as the previous page, next location. */
		if (i && (raw & ~PT_PM_PFN_MASK) == (prev_raw & ~PT_PM_PFN_MASK) &&
		    (raw & PT_PM_PRESENT) && (p.attrs & PT_ATTR_LOC) &&
		    (raw & PT_PM_PFN_MASK) == (prev_raw & PT_PM_PFN_MASK) + 1 &&
		    (raw & PT_PM_PFN_MASK) != zero_pfn && rb->n &&
		    rb->r[rb->n - 1].end == addr) {
			rb->r[rb->n - 1].end = addr + PT_PAGE_SIZE;
			prev_raw = raw;
			continue;
		}
		if (i && raw == prev_raw && !(raw & PT_PM_PFN_MASK) && rb->n &&
		    rb->r[rb->n - 1].end == addr) {
			rb->r[rb->n - 1].end = addr + PT_PAGE_SIZE;
			continue;
		}
		prev_raw = raw;

		p.state = PT_STATE_NONE;
		p.reason = 0;
		p.attrs = 0;
		p.loc = 0;
		p.swap_type = 0;
		if (raw & PT_PM_PRESENT) {
			uint64_t pfn = raw & PT_PM_PFN_MASK;

			p.state = PT_STATE_PRESENT;
			p.attrs = page_attrs(raw);
			if (pfn) {
				p.attrs |= PT_ATTR_LOC;
				p.loc = pfn;
				if (pfn == zero_pfn)
					p.attrs |= PT_ATTR_ZERO;
			} else {
				t->limits |= PT_LIMIT_NO_PFN;
			}
			if (hugetlb)
				p.attrs |= PT_ATTR_HUGE;
			p.attrs |= (uint32_t)extra_attrs & (PT_ATTR_HUGE | PT_ATTR_ZERO);
		} else if (raw & PT_PM_GUARD) {
			p.state = PT_STATE_ABSENT;
			p.attrs = PT_ATTR_GUARD;
		} else if (raw & PT_PM_SWAP) {
			bool visible = (raw & PT_PM_PFN_MASK) != 0;

			if (!visible)
				t->limits |= PT_LIMIT_NO_PFN;
			p.state = classify_swap(t, v, raw, visible, &p.reason);
			/* a marker keeps only its uffd-wp bit; real swap entries all of them */
			p.attrs = p.state == PT_STATE_SWAPPED ? page_attrs(raw)
							       : page_attrs(raw & PT_PM_UFFD_WP);
			if (p.state == PT_STATE_SWAPPED) {
				if (visible) {
					p.attrs |= PT_ATTR_LOC;
					p.swap_type = (uint16_t)(raw & 0x1f);
					p.loc = (raw & PT_PM_PFN_MASK) >> 5;
				}
			}
		}
		/* else: pte_none (a soft-dirty bit on a hole is VMA-level, dropped) */
		if (pt__run_append(rb, addr, addr + PT_PAGE_SIZE, &p) < 0) {
			*stopped = addr;
			return -ENOSPC;
		}
	}
	*stopped = addr;
	return 0;
}
