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
 * where it is; data is then read in batches of up to HS_BUF bytes:
 *	private memory	 one process_vm_readv per batch (or straight from
 *			 the address for the calling process)
 *	object-backed	 pread on the backing object (never maps pages into
 *			 the target); swapped shmem through our own
 *			 read-only mapping of the object, paged out again
 *	unreadable	 /proc/PID/mem (FOLL_FORCE: PROT_NONE areas, races)
 * Swapped pages are read every round and paged out again: an unchanged
 * swap slot does not prove unchanged content (a swap-cache page mapped
 * on a read fault is mapped writable; a later write dirties it without a
 * fault and reclaim writes it back to the same slot -- measured, see
 * doc/hashing.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "hashstore.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define CH_SHIFT	6			/* 64 pages per chunk */
#define CH_PAGES	(1u << CH_SHIFT)
#define CH_SPAN_SHIFT	(PT_PAGE_SHIFT + CH_SHIFT)
#define HS_BUF		(4u << 20)		/* batch buffer */
#define HS_BUF_PAGES	(HS_BUF >> PT_PAGE_SHIFT)
#define HS_MAXSEG	2048			/* segments per batch */
#define HS_MAXIOV	1024			/* UIO_MAXIOV */
#define HS_MAP_MAX	(64ull << 20)		/* bytes per object mapping */
#define HS_REGS		512			/* scan regions per pt_scan call */

struct hs_chunk {
	uint64_t base;		/* address of page 0 */
	uint64_t used;		/* bit i: page i has an entry */
	uint64_t hash[CH_PAGES];
};

/* Where a segment's data comes from. */
enum hs_src {
	SRC_ZERO = 0,	/* no data: compare with the zero page */
	SRC_VM,		/* process_vm_readv into the buffer */
	SRC_MEM,	/* pread of /proc/PID/mem into the buffer */
	SRC_SELF,	/* our own memory, hashed in place */
	SRC_OBJ,	/* pread of the backing object into the buffer */
	SRC_OBJMAP,	/* our own read-only mapping of the object */
};

struct hs_seg {
	uint64_t addr, len;	/* target range */
	uint64_t off;		/* object offset (OBJ, OBJMAP) */
	size_t buf;		/* buffer offset (VM, MEM, OBJ) */
	uint8_t src;		/* enum hs_src */
	bool evict;		/* page out again after reading */
};

struct pt_hashstore {
	struct hs_chunk **tab;	/* open addressing, linear probing */
	size_t cap, n, nempty;
	struct hs_chunk *last;	/* lookup cache */
	uint64_t zero;		/* XXH3 of a zero page */

	/* batch state, allocated on first use */
	unsigned char *buf;
	struct hs_seg *seg;
	struct iovec *liov, *riov;
	struct pt_region *regs;
	uint64_t bad[HS_BUF_PAGES / 64];	/* buffer pages that could not be read */
	size_t nseg, used;

	int mem_fd;		/* /proc/PID/mem, -1 not yet, -2 unavailable */
	int obj_fd;		/* backing object of obj_dev/obj_ino, or -1 */
	dev_t obj_dev;
	uint64_t obj_ino;
	bool obj_pread;		/* object supports read (SysV shm does not) */
	bool warned_evict;
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
	hs->mem_fd = -1;
	hs->obj_fd = -1;
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
	free(hs->buf);
	free(hs->seg);
	free(hs->liov);
	free(hs->riov);
	free(hs->regs);
	if (hs->mem_fd >= 0)
		close(hs->mem_fd);
	if (hs->obj_fd >= 0)
		close(hs->obj_fd);
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

/* ---- sources ---- */


/*
 * The backing object of @v, opened read-only and checked by device and
 * inode: /proc/PID/map_files (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE),
 * else the path when it still names the object.  One object is cached.
 * lib/scan/shared.c has a fuller search (the target's fds) that is not
 * exported; this is the minimal duplicate (see doc/hashing.md).
 * Returns the fd or -1 (then pages are read through the target).
 */
static int obj_fd(struct hs_ctx *c)
{
	struct pt_hashstore *hs = c->hs;
	const struct pt_vma *v = c->v;
	dev_t dev = makedev(v->dev_major, v->dev_minor);
	const char *paths[2] = { NULL, NULL };
	char mf[96];
	struct stat st;

	if (hs->obj_fd >= 0 && hs->obj_dev == dev && hs->obj_ino == v->inode)
		return hs->obj_fd;
	if (hs->obj_fd >= 0)
		close(hs->obj_fd);
	hs->obj_fd = -1;
	snprintf(mf, sizeof(mf), "%s/map_files/%llx-%llx", c->t->procdir,
		 (unsigned long long)v->start, (unsigned long long)v->end);
	paths[0] = mf;
	if (v->path[0] == '/' && !strstr(v->path, " (deleted)"))
		paths[1] = v->path;
	for (int i = 0; i < 2 && hs->obj_fd < 0; i++) {
		int fd;

		if (!paths[i] || stat(paths[i], &st) || !S_ISREG(st.st_mode) ||
		    st.st_dev != dev || (uint64_t)st.st_ino != v->inode)
			continue;
		fd = open(paths[i], O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) || st.st_dev != dev || (uint64_t)st.st_ino != v->inode) {
			close(fd);
			continue;
		}
		hs->obj_fd = fd;
	}
	if (hs->obj_fd < 0)
		return -1;
	hs->obj_dev = dev;
	hs->obj_ino = v->inode;
	/*
	 * SysV shm files have mmap but no read.  (Not probed with a 0-byte
	 * pread: on shmem that swaps in the page at the offset.)
	 */
	hs->obj_pread = v->kind != PT_VMA_SYSV;
	return hs->obj_fd;
}

static int mem_fd(struct hs_ctx *c)
{
	struct pt_hashstore *hs = c->hs;
	char path[48];

	if (hs->mem_fd == -1) {
		snprintf(path, sizeof(path), "%s/mem", c->t->procdir);
		hs->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (hs->mem_fd < 0)
			hs->mem_fd = -2;
	}
	return hs->mem_fd;
}

static void mark_bad(struct pt_hashstore *hs, size_t buf_off, size_t len)
{
	for (size_t p = buf_off >> PT_PAGE_SHIFT; p < (buf_off + len) >> PT_PAGE_SHIFT; p++)
		hs->bad[p / 64] |= 1ull << (p % 64);
	memset(hs->buf + buf_off, 0, len);
}

static bool is_bad(const struct pt_hashstore *hs, size_t buf_off)
{
	size_t p = buf_off >> PT_PAGE_SHIFT;

	return hs->bad[p / 64] & (1ull << (p % 64));
}

/*
 * Read target [addr, addr+len) into the buffer at @bo with /proc/PID/mem
 * (which also reads PROT_NONE pages).  Pages that cannot be read are
 * marked bad (reported as changed): one extra pread per bad page, which
 * only happens when the layout changed under us.
 */
static int mem_read(struct hs_ctx *c, uint64_t addr, size_t len, size_t bo)
{
	struct pt_hashstore *hs = c->hs;
	int fd = mem_fd(c);

	while (len) {
		ssize_t n = fd >= 0 ? pread(fd, hs->buf + bo, len, (off_t)addr) : -1;

		if (n < 0 && errno == ENOMEM)
			return -ENOMEM;
		if (n <= 0) {
			if (pt_target_alive(c->t) == 0)
				return -ESRCH;
			mark_bad(hs, bo, PT_PAGE_SIZE);
			n = PT_PAGE_SIZE;
		}
		n &= ~(ssize_t)(PT_PAGE_SIZE - 1);
		if (!n) {	/* cannot happen with page-aligned ranges */
			mark_bad(hs, bo, PT_PAGE_SIZE);
			n = PT_PAGE_SIZE;
		}
		addr += (size_t)n;
		bo += (size_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * One process_vm_readv for all SRC_VM segments of the batch; a short read
 * (a page unmapped or made inaccessible meanwhile) continues through
 * /proc/PID/mem for the rest of that iovec, then process_vm_readv again.
 */
static int vm_read_all(struct hs_ctx *c)
{
	struct pt_hashstore *hs = c->hs;
	struct iovec *l = hs->liov, *r = hs->riov;
	size_t n = 0, i = 0;
	int err;

	for (size_t s = 0; s < hs->nseg; s++) {
		const struct hs_seg *g = &hs->seg[s];

		if (g->src != SRC_VM)
			continue;
		if (n && (uint64_t)(uintptr_t)r[n - 1].iov_base + r[n - 1].iov_len == g->addr &&
		    (unsigned char *)l[n - 1].iov_base + l[n - 1].iov_len == hs->buf + g->buf) {
			l[n - 1].iov_len += g->len;
			r[n - 1].iov_len += g->len;
			continue;
		}
		l[n].iov_base = hs->buf + g->buf;
		l[n].iov_len = g->len;
		r[n].iov_base = (void *)(uintptr_t)g->addr;
		r[n].iov_len = g->len;
		n++;
	}
	while (i < n) {
		size_t k = n - i > HS_MAXIOV ? HS_MAXIOV : n - i, stop = i + k;
		ssize_t got = process_vm_readv(c->t->pid, l + i, k, r + i, k, 0);

		if (got < 0) {
			int e = errno;

			if (e == EPERM || (e == ESRCH && pt_target_alive(c->t) == 0))
				return -e;
			/*
			 * EFAULT: nothing from the first iovec.  ENOMEM and ESRCH
			 * are also seen while the target remaps memory: the page
			 * by page fallback below sorts it out.
			 */
			got = 0;
		}
		while (i < stop && (size_t)got >= r[i].iov_len)
			got -= (ssize_t)r[i++].iov_len;
		if (i == stop)
			continue;
		r[i].iov_base = (char *)r[i].iov_base + got;
		r[i].iov_len -= (size_t)got;
		l[i].iov_base = (char *)l[i].iov_base + got;
		l[i].iov_len -= (size_t)got;
		/* the rest of iovec i, through /proc/PID/mem */
		err = mem_read(c, (uint64_t)(uintptr_t)r[i].iov_base, r[i].iov_len,
			       (size_t)((unsigned char *)l[i].iov_base - hs->buf));
		if (err)
			return err;
		i++;
	}
	return 0;
}

static int obj_read(struct hs_ctx *c, const struct hs_seg *g)
{
	struct pt_hashstore *hs = c->hs;
	size_t done = 0;

	while (done < g->len) {
		ssize_t n = pread(c->obj_fd, hs->buf + g->buf + done, g->len - done,
				  (off_t)(g->off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ENOMEM)
			return -ENOMEM;
		if (n < 0) {
			mark_bad(hs, g->buf + (done & ~(PT_PAGE_SIZE - 1)),
				 g->len - (done & ~(PT_PAGE_SIZE - 1)));
			return 0;
		}
		if (n == 0) {	/* truncated: the data is gone, i.e. zero */
			memset(hs->buf + g->buf + done, 0, g->len - done);
			return 0;
		}
		done += (size_t)n;
	}
	return 0;
}

/* ---- comparing ---- */

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

static int hash_pages(struct hs_ctx *c, const struct hs_seg *g, const unsigned char *p,
		      bool buffered)
{
	int err = 0;

	for (uint64_t o = 0; o < g->len && !err; o += PT_PAGE_SIZE) {
		bool bad = buffered && is_bad(c->hs, g->buf + o);
		uint64_t h = bad ? 0 : XXH3_64bits(p + o, PT_PAGE_SIZE);

		err = page_result(c, g->addr + o, h, bad);
	}
	if (c->pages_hashed)
		*c->pages_hashed += g->len >> PT_PAGE_SHIFT;
	return err;
}

/*
 * Swapped shmem: our own read-only mapping of the object, populated
 * (swapped in to the page cache), hashed, then paged out again: the pages
 * are mapped by us alone, so MADV_PAGEOUT reclaims them.
 */
static int hash_objmap(struct hs_ctx *c, const struct hs_seg *g)
{
	void *m = mmap(NULL, g->len, PROT_READ, MAP_SHARED | (g->evict ? MAP_POPULATE : 0),
		       c->obj_fd, (off_t)g->off);
	int err;

	if (m == MAP_FAILED) {
		if (errno == ENOMEM)
			return -ENOMEM;
		err = 0;	/* not mappable: unreadable, reported as changed */
		for (uint64_t o = 0; o < g->len && !err; o += PT_PAGE_SIZE)
			err = page_result(c, g->addr + o, 0, true);
		return err;
	}
	err = hash_pages(c, g, m, false);
	if (g->evict && madvise(m, g->len, MADV_PAGEOUT) && !c->hs->warned_evict) {
		c->hs->warned_evict = true;
		pt__log(PT_LOG_INFO, "hash: cannot page out shared memory read from swap: %s",
			strerror(errno));
	}
	munmap(m, g->len);
	return err;
}

/*
 * MADV_WILLNEED / MADV_PAGEOUT on the private pages of this batch that
 * are in swap.  WILLNEED first reads them into the swap cache without
 * mapping them, so the read that follows maps the swap-cache page and
 * keeps the slot (a direct fault on zram skips the swap cache and frees
 * it); PAGEOUT after hashing then only drops the clean page, without
 * writing it to swap again.  Returns the errno of a failure, or 0.
 */
static int advise_private(struct hs_ctx *c, int advice)
{
	struct pt_hashstore *hs = c->hs;
	struct pt_target *t = c->t;
	size_t n = 0;
	int fail = 0;

	for (size_t s = 0; s <= hs->nseg; s++) {
		const struct hs_seg *g = s < hs->nseg ? &hs->seg[s] : NULL;

		if (g && g->evict && g->src != SRC_OBJMAP) {
			if (t->self) {
				if (madvise((void *)(uintptr_t)g->addr, g->len, advice))
					fail = errno;
				continue;
			}
			hs->riov[n].iov_base = (void *)(uintptr_t)g->addr;
			hs->riov[n++].iov_len = g->len;
		}
		if (n && (!g || n == HS_MAXIOV)) {
			if (t->pidfd < 0 ||
			    syscall(SYS_process_madvise, t->pidfd, hs->riov, n, advice, 0) < 0)
				fail = t->pidfd < 0 ? EBADF : errno;
			n = 0;
		}
	}
	return fail;
}

/* Read, hash and compare everything queued, in address order. */
static int flush(struct hs_ctx *c)
{
	struct pt_hashstore *hs = c->hs;
	bool evict = false;
	int err;

	for (size_t s = 0; s < hs->nseg; s++)
		evict |= hs->seg[s].evict && hs->seg[s].src != SRC_OBJMAP;
	if (evict)
		advise_private(c, MADV_WILLNEED);	/* only an optimisation: errors ignored */
	err = vm_read_all(c);
	for (size_t s = 0; s < hs->nseg && !err; s++) {
		const struct hs_seg *g = &hs->seg[s];

		switch (g->src) {
		case SRC_ZERO:
			err = range_zero(hs, g->addr, g->addr + g->len, c);
			if (!err && c->holes)
				err = pt__dirty_add(c->holes, g->addr, g->addr + g->len, 0);
			break;
		case SRC_MEM:
			err = mem_read(c, g->addr, g->len, g->buf);
			if (!err)
				err = hash_pages(c, g, hs->buf + g->buf, true);
			break;
		case SRC_OBJ:
			err = obj_read(c, g);
			/* fall through */
		case SRC_VM:
			if (!err)
				err = hash_pages(c, g, hs->buf + g->buf, true);
			break;
		case SRC_SELF:
			err = hash_pages(c, g, (const unsigned char *)(uintptr_t)g->addr, false);
			break;
		case SRC_OBJMAP:
			err = hash_objmap(c, g);
			break;
		}
	}
	if (!err && evict && (err = advise_private(c, MADV_PAGEOUT)) && !hs->warned_evict) {
		hs->warned_evict = true;
		pt__log(PT_LOG_INFO, "hash: cannot page out pages swapped in to be read: %s",
			strerror(err));
	}
	err = err < 0 ? err : 0;
	hs->nseg = 0;
	hs->used = 0;
	memset(hs->bad, 0, sizeof(hs->bad));
	return err;
}

static bool uses_buf(uint8_t src)
{
	return src == SRC_VM || src == SRC_MEM || src == SRC_OBJ;
}

/* Queue [addr, addr+len) from @src, splitting it over batches as needed. */
static int queue(struct hs_ctx *c, uint64_t addr, uint64_t len, uint8_t src, bool evict)
{
	struct pt_hashstore *hs = c->hs;
	uint64_t off = c->v->offset + (addr - c->v->start);
	int err;

	while (len) {
		uint64_t room = uses_buf(src) ? HS_BUF - hs->used
			      : src == SRC_OBJMAP ? HS_MAP_MAX : len;
		struct hs_seg *g = hs->nseg ? &hs->seg[hs->nseg - 1] : NULL;

		if (!room || hs->nseg == HS_MAXSEG) {
			if ((err = flush(c)))
				return err;
			continue;
		}
		uint64_t n = len < room ? len : room;

		if (g && g->src == src && g->addr + g->len == addr && g->evict == evict &&
		    (!uses_buf(src) || g->buf + g->len == hs->used) &&
		    (src != SRC_OBJMAP || g->len + n <= HS_MAP_MAX)) {
			g->len += n;
		} else {
			g = &hs->seg[hs->nseg++];
			*g = (struct hs_seg){ .addr = addr, .len = n, .off = off, .buf = hs->used,
					      .src = src, .evict = evict };
		}
		if (uses_buf(src))
			hs->used += n;
		addr += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* How data still in the target's page tables (or reachable through them) is read. */
static uint8_t target_src(const struct hs_ctx *c)
{
	if (!(c->v->prot & PT_PROT_READ))
		return SRC_MEM;
	return c->t->self ? SRC_SELF : SRC_VM;
}

static int queue_region(struct hs_ctx *c, const struct pt_region *r)
{
	uint64_t len = r->end - r->start;

	switch (r->state) {
	case PT_STATE_ABSENT:
		return queue(c, r->start, len, SRC_ZERO, false);
	case PT_STATE_PRESENT:
		if (r->attrs & PT_ATTR_ZERO)
			return queue(c, r->start, len, SRC_ZERO, false);
		/* pages in the page cache: the object, when it can be read */
		if (c->shared && c->obj_fd >= 0 && c->hs->obj_pread)
			return queue(c, r->start, len, SRC_OBJ, false);
		return queue(c, r->start, len, target_src(c), false);
	case PT_STATE_CACHED:
		if (c->obj_fd >= 0)
			return queue(c, r->start, len, c->hs->obj_pread ? SRC_OBJ : SRC_OBJMAP,
				     false);
		return queue(c, r->start, len, target_src(c), false);
	case PT_STATE_SWAPPED:
		/*
		 * Private: read through the target and page out again.  The
		 * swap slot is no proof of unchanged content (doc/hashing.md).
		 */
		if (!(r->attrs & PT_ATTR_FILE))
			return queue(c, r->start, len, target_src(c), true);
		if (c->obj_fd >= 0)
			return queue(c, r->start, len, SRC_OBJMAP, true);
		return queue(c, r->start, len, target_src(c), false);
	default:
		/* UNKNOWN: the object cannot be asked; read through the target (faults in) */
		return queue(c, r->start, len, target_src(c), false);
	}
}

static int alloc_batch(struct pt_hashstore *hs)
{
	if (hs->buf)
		return 0;
	hs->buf = malloc(HS_BUF);
	hs->seg = malloc(HS_MAXSEG * sizeof(*hs->seg));
	hs->liov = malloc(HS_MAXSEG * sizeof(*hs->liov));
	hs->riov = malloc(HS_MAXSEG * sizeof(*hs->riov));
	hs->regs = malloc(HS_REGS * sizeof(*hs->regs));
	if (!hs->buf || !hs->seg || !hs->liov || !hs->riov || !hs->regs) {
		free(hs->buf);
		hs->buf = NULL;
		return -ENOMEM;
	}
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
	hs->nseg = hs->used = 0;
	memset(hs->bad, 0, sizeof(hs->bad));
	if (pt__vma_has_object(v) && v->kind != PT_VMA_HUGETLB) {
		c.shared = (v->prot & PT_MAP_SHARED) != 0;
		c.obj_fd = obj_fd(&c);
	}
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
							       SRC_ZERO, false)))
				goto out;
			if ((err = queue_region(&c, r)))
				goto out;
			covered = r->end;
		}
	}
	if (covered < end && (err = queue(&c, covered, end - covered, SRC_ZERO, false)))
		goto out;
	err = flush(&c);
out:
	if (err && holes)
		holes->n = nholes;	/* claim no hole of a walk that did not finish */
	hs->nseg = hs->used = 0;
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
