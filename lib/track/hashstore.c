/* SPDX-License-Identifier: MIT */
/*
 * Content hashes of tracked pages (doc/hashing.md).
 *
 * Store: 64-page chunks (one XXH3 per page and a bitmap of pages that
 * have an entry: 8.4 bytes per page with data) in an
 * open-addressing table keyed by chunk address.  A page without an entry
 * holds zero content, so memory follows the pages that hold data, never
 * the virtual size.  Chunks that become empty stay in the table (they are
 * reused when data comes back) until there are more empty than half the
 * live ones; then the table is rebuilt without them.
 *
 * Reading: the scan pipeline (pt_scan) says which pages hold data and
 * where it is; data is then read by the batched reader shared with the
 * copy engine (lib/copy/reader.c): process_vm_readv for private memory,
 * pread on the backing object for object-backed pages (never mapping
 * pages into the target), our own mapping of the object for swapped
 * shmem (paged out again), /proc/PID/mem for what the others cannot read.
 * Swapped pages are read every round and paged out again: an unchanged
 * swap slot does not prove unchanged content (a swap-cache page mapped
 * on a read fault is mapped writable; a later write dirties it without a
 * fault and reclaim writes it back to the same slot -- measured, see
 * doc/hashing.md).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "hashstore.h"
#include "copy/reader.h"

#define CH_SHIFT	6			/* 64 pages per chunk */
#define CH_PAGES	(1u << CH_SHIFT)
#define CH_SPAN_SHIFT	(PT_PAGE_SHIFT + CH_SHIFT)
#define HS_REGS		512			/* scan regions per pt_scan call */

struct hs_chunk {
	uint64_t base;		/* address of page 0 */
	uint64_t used;		/* bit i: page i has an entry */
	uint64_t hash[CH_PAGES];
};

struct pt_hashstore {
	struct hs_chunk **tab;	/* open addressing, linear probing */
	size_t cap, n, nempty;
	struct hs_chunk *last;	/* lookup cache */
	uint64_t zero;		/* XXH3 of a zero page */

	/* batch state, allocated on first use */
	struct pt_reader rd;
	bool rd_ok;
	struct pt_region *regs;
};

/* One pt__hash_area() call. */
struct hs_ctx {
	struct pt_target *t;
	struct pt_hashstore *hs;
	uint64_t *pages_hashed;	/* may be NULL */
	const struct pt_vma *v;
	struct pt_dirtylist *out;
	bool baseline;
	struct pt_dirtylist *holes;	/* baseline: pages seen with no data, or NULL */
	int obj_fd;		/* -1: no object route for this area */
	bool shared;		/* object-backed MAP_SHARED area */
};

/* ---- the store ---- */

static size_t slot_of(const struct pt_hashstore *hs, uint64_t base)
{
	return (size_t)(((base >> CH_SPAN_SHIFT) * 0x9e3779b97f4a7c15ull) >> 20) & (hs->cap - 1);
}

static struct hs_chunk *chunk_find(struct pt_hashstore *hs, uint64_t base)
{
	if (hs->last && hs->last->base == base)
		return hs->last;
	if (!hs->cap)
		return NULL;
	for (size_t i = slot_of(hs, base);; i = (i + 1) & (hs->cap - 1)) {
		struct hs_chunk *c = hs->tab[i];

		if (!c)
			return NULL;
		if (c->base == base)
			return hs->last = c;
	}
}

static void tab_put(struct hs_chunk **tab, size_t cap, struct hs_chunk *c,
		    const struct pt_hashstore *hs)
{
	size_t i = slot_of(hs, c->base);

	while (tab[i])
		i = (i + 1) & (cap - 1);
	tab[i] = c;
}

static void chunk_free(struct hs_chunk *c)
{
	free(c);
}

/* Rebuild the table with room for @want live chunks, dropping empty ones. */
static int tab_rebuild(struct pt_hashstore *hs, size_t want)
{
	size_t cap = 64, old = hs->cap, n = 0;
	struct hs_chunk **tab, **otab = hs->tab;

	while (cap < 2 * want)
		cap <<= 1;
	tab = calloc(cap, sizeof(*tab));
	if (!tab)
		return -ENOMEM;
	hs->cap = cap;
	for (size_t i = 0; i < old; i++) {
		struct hs_chunk *c = otab[i];

		if (!c)
			continue;
		if (!c->used) {
			chunk_free(c);
			continue;
		}
		tab_put(tab, cap, c, hs);
		n++;
	}
	free(otab);
	hs->tab = tab;
	hs->n = n;
	hs->nempty = 0;
	hs->last = NULL;
	return 0;
}

static struct hs_chunk *chunk_get(struct pt_hashstore *hs, uint64_t base)
{
	struct hs_chunk *c = chunk_find(hs, base);

	if (c)
		return c;
	if (2 * (hs->n + 1) > hs->cap && tab_rebuild(hs, hs->n + 1) < 0)
		return NULL;
	c = malloc(sizeof(*c));
	if (!c)
		return NULL;
	c->base = base;
	c->used = 0;
	tab_put(hs->tab, hs->cap, c, hs);
	hs->n++;
	hs->nempty++;		/* until a bit is set */
	return hs->last = c;
}

static void maybe_compact(struct pt_hashstore *hs)
{
	if (hs->nempty > (hs->n - hs->nempty) / 2 + 64)
		tab_rebuild(hs, hs->n - hs->nempty);	/* on -ENOMEM: keep the old table */
}

static uint64_t chunk_base(uint64_t addr)
{
	return addr & ~((1ull << CH_SPAN_SHIFT) - 1);
}

static unsigned page_idx(uint64_t addr)
{
	return (unsigned)(addr >> PT_PAGE_SHIFT) & (CH_PAGES - 1);
}

/* Stored hash of @addr: the zero hash when there is no entry. */
static uint64_t ent_get(struct pt_hashstore *hs, uint64_t addr)
{
	struct hs_chunk *c = chunk_find(hs, chunk_base(addr));
	unsigned i = page_idx(addr);

	if (!c || !(c->used & (1ull << i)))
		return hs->zero;
	return c->hash[i];
}

static void ent_clear(struct pt_hashstore *hs, uint64_t addr)
{
	struct hs_chunk *c = chunk_find(hs, chunk_base(addr));
	unsigned i = page_idx(addr);

	if (!c || !(c->used & (1ull << i)))
		return;
	c->used &= ~(1ull << i);
	if (!c->used)
		hs->nempty++;
}

static int ent_set(struct pt_hashstore *hs, uint64_t addr, uint64_t h)
{
	struct hs_chunk *c;
	unsigned i = page_idx(addr);

	if (h == hs->zero) {	/* zero content: no entry */
		ent_clear(hs, addr);
		return 0;
	}
	c = chunk_get(hs, chunk_base(addr));
	if (!c)
		return -ENOMEM;
	if (!c->used)
		hs->nempty--;
	c->used |= 1ull << i;
	c->hash[i] = h;
	return 0;
}

static int cmp_chunk(const void *a, const void *b)
{
	uint64_t x = (*(struct hs_chunk *const *)a)->base, y = (*(struct hs_chunk *const *)b)->base;

	return x < y ? -1 : x > y;
}

/*
 * Drop the entries of [a, b) of one chunk; with @c->out, report the ones
 * that did not hold zero content (they are zero now).
 */
static int chunk_zero(struct pt_hashstore *hs, struct hs_chunk *ch, uint64_t a, uint64_t b,
		      const struct hs_ctx *c)
{
	uint64_t lo = a > ch->base ? a : ch->base;
	uint64_t hi = b < ch->base + (1ull << CH_SPAN_SHIFT) ? b : ch->base + (1ull << CH_SPAN_SHIFT);
	unsigned i0 = (unsigned)((lo - ch->base) >> PT_PAGE_SHIFT);
	unsigned i1 = (unsigned)((hi - ch->base) >> PT_PAGE_SHIFT);
	uint64_t mask = (i1 - i0 == 64 ? ~0ull : ((1ull << (i1 - i0)) - 1) << i0) & ch->used;
	int err = 0;

	if (!mask)
		return 0;
	if (c && !c->baseline) {
		for (uint64_t m = mask; m && !err; m &= m - 1) {
			unsigned i = (unsigned)__builtin_ctzll(m);
			uint64_t p = ch->base + ((uint64_t)i << PT_PAGE_SHIFT);

			if (ch->hash[i] != hs->zero)
				err = pt__dirty_add(c->out, p, p + PT_PAGE_SIZE, PT_DIRTY_HASHED);
		}
	}
	ch->used &= ~mask;
	if (!ch->used)
		hs->nempty++;
	return err;
}

/*
 * [a, b) holds no data now.  Walk the chunks by address when the range is
 * small against the table, else the whole table (a 64 TiB hole costs
 * O(entries), not O(pages)).  Reports in address order.
 */
static int range_zero(struct pt_hashstore *hs, uint64_t a, uint64_t b, const struct hs_ctx *c)
{
	uint64_t first = chunk_base(a), last = chunk_base(b - 1);
	uint64_t span = ((last - first) >> CH_SPAN_SHIFT) + 1;
	int err = 0;

	if (a >= b || hs->n == hs->nempty)
		return 0;
	if (span <= 2 * hs->n + 16) {
		for (uint64_t base = first; !err; base += 1ull << CH_SPAN_SHIFT) {
			struct hs_chunk *ch = chunk_find(hs, base);

			if (ch)
				err = chunk_zero(hs, ch, a, b, c);
			if (base == last)
				break;
		}
		return err;
	}
	bool report = c && !c->baseline;
	struct hs_chunk **list = report ? malloc(hs->n * sizeof(*list)) : NULL;
	size_t k = 0;

	if (report && !list)
		return -ENOMEM;
	if (!report) {		/* order does not matter: no allocation, cannot fail */
		for (size_t i = 0; i < hs->cap; i++) {
			struct hs_chunk *ch = hs->tab[i];

			if (ch && ch->used && ch->base <= last && ch->base >= first)
				chunk_zero(hs, ch, a, b, NULL);
		}
		return 0;
	}
	for (size_t i = 0; i < hs->cap; i++) {
		struct hs_chunk *ch = hs->tab[i];

		if (ch && ch->used && ch->base <= last && ch->base >= first)
			list[k++] = ch;
	}
	qsort(list, k, sizeof(*list), cmp_chunk);
	for (size_t i = 0; i < k && !err; i++)
		err = chunk_zero(hs, list[i], a, b, c);
	free(list);
	return err;
}

struct pt_hashstore *pt__hashstore_new(void)
{
	struct pt_hashstore *hs = calloc(1, sizeof(*hs));
	void *zp;

	if (!hs) {
		errno = ENOMEM;
		return NULL;
	}
	zp = calloc(1, PT_PAGE_SIZE);
	if (!zp) {
		free(hs);
		errno = ENOMEM;
		return NULL;
	}
	hs->zero = XXH3_64bits(zp, PT_PAGE_SIZE);
	free(zp);
	return hs;
}

void pt__hashstore_free(struct pt_hashstore *hs)
{
	if (!hs)
		return;
	for (size_t i = 0; i < hs->cap; i++)
		if (hs->tab[i])
			chunk_free(hs->tab[i]);
	free(hs->tab);
	if (hs->rd_ok)
		pt__reader_fini(&hs->rd);
	free(hs->regs);
	free(hs);
}

void pt__hash_forget(struct pt_hashstore *hs, uint64_t start, uint64_t end)
{
	if (!hs || start >= end)
		return;
	range_zero(hs, start & ~(PT_PAGE_SIZE - 1), end, NULL);	/* no report: cannot fail */
	maybe_compact(hs);
}

int pt__hash_note(struct pt_hashstore *hs, uint64_t addr, const void *data, size_t npages)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < npages; i++) {
		int err = ent_set(hs, addr + i * PT_PAGE_SIZE,
				  XXH3_64bits(p + i * PT_PAGE_SIZE, PT_PAGE_SIZE));

		if (err)	/* keep what it had: the next round compares against that */
			return err;
	}
	return 0;
}

int pt__hash_peek(const struct pt_hashstore *hs, uint64_t addr, uint64_t *h)
{
	*h = ent_get((struct pt_hashstore *)hs, addr);
	return *h != hs->zero;
}

/* ---- reading (lib/copy/reader.c) and comparing ---- */

static int page_result(struct hs_ctx *c, uint64_t addr, uint64_t h, bool bad)
{
	struct pt_hashstore *hs = c->hs;
	uint64_t old = ent_get(hs, addr);
	bool changed;
	int err = 0;

	if (bad) {
		changed = true;
		ent_clear(hs, addr);
	} else {
		changed = old != h;
		err = ent_set(hs, addr, h);
	}
	if (!err && changed && !c->baseline)
		err = pt__dirty_add(c->out, addr, addr + PT_PAGE_SIZE, PT_DIRTY_HASHED);
	return err;
}

/* Reader consumer: hash and compare one segment (pages that could not be read count as changed). */
static int hash_seg(void *ctx, const struct pt_rd_seg *g, const unsigned char *p)
{
	struct hs_ctx *c = ctx;
	struct pt_hashstore *hs = c->hs;
	int err = 0;

	if (g->src == PT_RD_NONE) {
		err = range_zero(hs, g->addr, g->addr + g->len, c);
		if (!err && c->holes)
			err = pt__dirty_add(c->holes, g->addr, g->addr + g->len, 0);
		return err;
	}
	for (uint64_t o = 0; o < g->len && !err; o += PT_PAGE_SIZE) {
		bool bad = !p || pt__reader_bad(&hs->rd, g, o);
		uint64_t h = bad ? 0 : XXH3_64bits(p + o, PT_PAGE_SIZE);

		err = page_result(c, g->addr + o, h, bad);
	}
	if (c->pages_hashed)
		*c->pages_hashed += g->len >> PT_PAGE_SHIFT;
	return err;
}

/*
 * Queue [addr, addr+len) from @src.  Swapped pages (@evict) are read
 * every round and paged out again: the swap slot is no proof of
 * unchanged content (doc/hashing.md).
 */
static int queue(struct hs_ctx *c, uint64_t addr, uint64_t len, uint8_t src, bool evict)
{
	uint64_t off = src == PT_RD_NONE ? 0 : c->v->offset + (addr - c->v->start);

	return pt__reader_queue(&c->hs->rd, addr, len, off, src,
				evict ? PT_RD_SWAPPED | PT_RD_EVICT : 0, hash_seg, c);
}

/* How data still in the target's page tables (or reachable through them) is read. */
static uint8_t target_src(const struct hs_ctx *c)
{
	if (!(c->v->prot & PT_PROT_READ))
		return PT_RD_MEM;
	return c->t->self ? PT_RD_SELF : PT_RD_VM;
}

static int queue_region(struct hs_ctx *c, const struct pt_region *r)
{
	uint64_t len = r->end - r->start;

	switch (r->state) {
	case PT_STATE_ABSENT:
		return queue(c, r->start, len, PT_RD_NONE, false);
	case PT_STATE_PRESENT:
		if (r->attrs & PT_ATTR_ZERO)
			return queue(c, r->start, len, PT_RD_NONE, false);
		/* pages in the page cache: the object, when it can be read */
		if (c->shared && c->obj_fd >= 0)
			return queue(c, r->start, len, PT_RD_OBJ, false);
		return queue(c, r->start, len, target_src(c), false);
	case PT_STATE_CACHED:
		if (c->obj_fd >= 0)
			return queue(c, r->start, len, PT_RD_OBJ, false);
		return queue(c, r->start, len, target_src(c), false);
	case PT_STATE_SWAPPED:
		/*
		 * Private: read through the target and page out again.  The
		 * swap slot is no proof of unchanged content (doc/hashing.md).
		 */
		if (!(r->attrs & PT_ATTR_FILE))
			return queue(c, r->start, len, target_src(c), true);
		if (c->obj_fd >= 0)
			return queue(c, r->start, len, PT_RD_OBJMAP, true);
		return queue(c, r->start, len, target_src(c), false);
	default:
		/* UNKNOWN: the object cannot be asked; read through the target (faults in) */
		return queue(c, r->start, len, target_src(c), false);
	}
}

static int alloc_batch(struct pt_hashstore *hs)
{
	int err;

	if (hs->rd_ok)
		return 0;
	if (!hs->regs && !(hs->regs = malloc(HS_REGS * sizeof(*hs->regs))))
		return -ENOMEM;
	if ((err = pt__reader_init(&hs->rd, NULL, "hash")))
		return err;
	hs->rd_ok = true;
	return 0;
}

static int hash_area(struct pt_hashstore *hs, struct pt_target *t, const struct pt_vma *v,
		     uint64_t start, uint64_t end, bool baseline, struct pt_dirtylist *out,
		     struct pt_dirtylist *holes, uint64_t *pages_hashed)
{
	/* no locations: they would only split runs (swap slots prove nothing) */
	const PT_OPTS(pt_scan_opts, so, .flags = PT_SCAN_NO_EXCLUSIVE);
	struct hs_ctx c = { .t = t, .hs = hs, .pages_hashed = pages_hashed, .v = v, .out = out,
			    .baseline = baseline, .holes = holes, .obj_fd = -1 };
	size_t nholes = holes ? holes->n : 0;
	uint64_t cur, covered;
	int err;

	if (!hs || !t || !v || (!out && !baseline))
		return -EINVAL;
	start &= ~(PT_PAGE_SIZE - 1);
	if (start < v->start)
		start = v->start;
	if (end > v->end)
		end = v->end;
	if (start >= end)
		return 0;
	if ((err = alloc_batch(hs)))
		return err;
	pt__reader_reset(&hs->rd);
	pt__reader_target(&hs->rd, t);
	if (pt__vma_has_object(v) && v->kind != PT_VMA_HUGETLB) {
		c.shared = (v->prot & PT_MAP_SHARED) != 0;
		c.obj_fd = pt__shared_obj_fd(t, v, NULL);
		if (c.obj_fd < -1) {
			err = c.obj_fd;
			goto out;
		}
	}
	hs->rd.obj_fd = c.obj_fd;
	cur = covered = start;
	while (cur < end) {
		int n = pt_scan(t, &cur, end, hs->regs, HS_REGS, &so);

		if (n < 0) {
			err = n;
			goto out;
		}
		if (n == 0)
			break;
		for (int i = 0; i < n; i++) {
			const struct pt_region *r = &hs->regs[i];

			/* addresses outside any area (layout changed): no data */
			if (r->start > covered && (err = queue(&c, covered, r->start - covered,
							       PT_RD_NONE, false)))
				goto out;
			if ((err = queue_region(&c, r)))
				goto out;
			covered = r->end;
		}
	}
	if (covered < end && (err = queue(&c, covered, end - covered, PT_RD_NONE, false)))
		goto out;
	err = pt__reader_flush(&hs->rd, hash_seg, &c);
out:
	if (err && holes)
		holes->n = nholes;	/* claim no hole of a walk that did not finish */
	pt__reader_reset(&hs->rd);
	hs->rd.obj_fd = -1;
	maybe_compact(hs);
	if (err == -EFAULT || err == -ENOENT)
		err = pt__target_errno(t, err);
	return err;
}

int pt__hash_area(struct pt_hashstore *hs, struct pt_target *t, const struct pt_vma *v,
		  uint64_t start, uint64_t end, bool baseline, struct pt_dirtylist *out,
		  uint64_t *pages_hashed)
{
	return hash_area(hs, t, v, start, end, baseline, out, NULL, pages_hashed);
}

int pt__hash_baseline(struct pt_hashstore *hs, struct pt_target *t, const struct pt_vma *v,
		      uint64_t start, uint64_t end, struct pt_dirtylist *holes,
		      uint64_t *pages_hashed)
{
	return hash_area(hs, t, v, start, end, true, NULL, holes, pages_hashed);
}
