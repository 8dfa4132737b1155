/* SPDX-License-Identifier: MIT */
/*
 * Copying memory out (pagetrack.h, "Copying memory out"; doc/api.md,
 * "Copying").
 *
 * pt_scan() says which pages hold data and where it is; only those are
 * read, by the batched reader (reader.c): process_vm_readv with large
 * iovecs, /proc/PID/mem for what it cannot read (PROT_NONE) or when
 * forced, the backing object for shared memory.  Each read segment is
 * cut into pieces: DATA, ZERO (read, all zeros), HOLE (never read),
 * UNREADABLE.  Memory: the reader's batch (4 MiB) and a few tables.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reader.h"

#define CP_REGS		512	/* scan regions per pt_scan call */

/* Tags of PT_RD_NONE segments: the piece kind and detail they become. */
#define TAG(kind, detail) ((uint64_t)(kind) | (uint64_t)(detail) << 8)

struct pt_copier {
	struct pt_target *t;
	struct pt_reader rd;
	uint32_t flags;		/* PT_COPY_* */
	struct pt_tracker *tracker;
	struct pt_region *regs;
	struct pt_runbuf orb;	/* object runs */
	struct pt_copy_stats st;
};

/* One pt_copy_area() / pt_copy_object() call. */
struct cp_call {
	struct pt_copier *cp;
	pt_copy_fn fn;
	void *ctx;
	bool area;		/* addresses (notes to the tracker), not object offsets */
	bool reloaded;		/* layout reloaded for this batch's bad pages */
	struct pt_copy_piece p;	/* pending piece, npages 0: none */
};

static const uint64_t zero_page[PT_PAGE_SIZE / 8];

static bool page_zero(const unsigned char *p)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;
	uint64_t acc = 0;

	if (w[0] | w[PT_PAGE_SIZE / 16] | w[PT_PAGE_SIZE / 8 - 1])
		return false;
	for (size_t i = 0; i < PT_PAGE_SIZE / 8; i++)
		acc |= w[i];
	return !acc;
}

/* Hand the pending piece to the consumer. */
static int emit(struct cp_call *c)
{
	struct pt_copy_piece *p = &c->p;
	struct pt_copier *cp = c->cp;
	int err = 0;

	if (!p->npages)
		return 0;
	switch (p->kind) {
	case PT_PAGE_DATA:
		cp->st.pages_data += p->npages;
		break;
	case PT_PAGE_ZERO:
		cp->st.pages_zero += p->npages;
		break;
	case PT_PAGE_HOLE:
		cp->st.pages_hole += p->npages;
		break;
	default:
		cp->st.pages_unreadable += p->npages;
		break;
	}
	cp->st.pages_swapped_in += p->swapped;
	if (c->area && cp->tracker) {
		if (p->kind == PT_PAGE_DATA)
			err = pt_tracker_note_copy(cp->tracker, p->addr, p->data,
						   p->npages << PT_PAGE_SHIFT);
		for (uint64_t i = 0; p->kind == PT_PAGE_ZERO && i < p->npages && !err; i++)
			err = pt_tracker_note_copy(cp->tracker, p->addr + (i << PT_PAGE_SHIFT),
						   zero_page, PT_PAGE_SIZE);
	}
	if (!err)
		err = c->fn(p, c->ctx);
	p->npages = 0;
	return err;
}

/* Add @n pages at @addr of @kind to the pending piece, emitting it first if they do not extend it. */
static int add(struct cp_call *c, uint64_t addr, uint64_t n, uint32_t kind, uint32_t detail,
	       const unsigned char *data, uint64_t swapped)
{
	struct pt_copy_piece *p = &c->p;
	int err;

	if (p->npages && p->kind == kind && p->detail == detail &&
	    p->addr + (p->npages << PT_PAGE_SHIFT) == addr &&
	    (kind != PT_PAGE_DATA ||
	     (const unsigned char *)p->data + (p->npages << PT_PAGE_SHIFT) == data)) {
		p->npages += n;
		p->swapped += swapped;
		return 0;
	}
	if ((err = emit(c)))
		return err;
	*p = (struct pt_copy_piece){ .addr = addr, .npages = n, .kind = kind, .detail = detail,
				     .data = kind == PT_PAGE_DATA ? data : NULL,
				     .swapped = swapped };
	return 0;
}

/* A page of an area that could not be read: gone with its area (HOLE), or faulting. */
static uint32_t bad_kind(struct cp_call *c, uint64_t addr)
{
	struct pt_target *t = c->cp->t;
	size_t i;

	if (!c->area)
		return PT_PAGE_UNREADABLE;
	if (!c->reloaded) {
		c->reloaded = true;
		if (pt__target_load_vmas(t) < 0)
			return PT_PAGE_UNREADABLE;
	}
	i = pt__vma_find(t, addr);
	return i < t->nvmas && t->vmas[i].start <= addr ? PT_PAGE_UNREADABLE : PT_PAGE_HOLE;
}

/* Reader consumer: one segment into pieces. */
static int consume(void *ctx, const struct pt_rd_seg *g, const unsigned char *data)
{
	struct cp_call *c = ctx;
	const struct pt_reader *rd = &c->cp->rd;
	uint64_t sw = g->flags & PT_RD_SWAPPED ? 1 : 0;
	int err = 0;

	if (g->src == PT_RD_NONE)
		return add(c, g->addr, g->len >> PT_PAGE_SHIFT, (uint32_t)(g->off & 0xff),
			   (uint32_t)(g->off >> 8), NULL, 0);
	for (uint64_t o = 0; o < g->len && !err; o += PT_PAGE_SIZE) {
		const unsigned char *pg = data ? data + o : NULL;

		if (!pg || pt__reader_bad(rd, g, o)) {
			uint32_t k = bad_kind(c, g->addr + o);

			err = add(c, g->addr + o, 1, k,
				  k == PT_PAGE_UNREADABLE ? PT_UNREADABLE_FAULT : 0, NULL, 0);
		} else if (page_zero(pg)) {
			err = add(c, g->addr + o, 1, PT_PAGE_ZERO, 0, NULL, sw);
		} else {
			err = add(c, g->addr + o, 1, PT_PAGE_DATA, 0, pg, sw);
		}
	}
	/* data is valid during this call only */
	if (!err && c->p.kind == PT_PAGE_DATA)
		err = emit(c);
	c->reloaded = false;
	return err;
}

static int queue(struct cp_call *c, uint64_t addr, uint64_t len, uint64_t off, uint8_t src,
		 uint8_t flags)
{
	return pt__reader_queue(&c->cp->rd, addr, len, off, src, flags, consume, c);
}

static int hole(struct cp_call *c, uint64_t addr, uint64_t len, uint32_t kind, uint32_t detail)
{
	return queue(c, addr, len, TAG(kind, detail), PT_RD_NONE, 0);
}

static int finish(struct cp_call *c, int err)
{
	if (!err)
		err = pt__reader_flush(&c->cp->rd, consume, c);
	if (!err)
		err = emit(c);
	pt__reader_reset(&c->cp->rd);
	c->cp->st.bytes_read = c->cp->rd.bytes_read;
	c->cp->st.read_ns = c->cp->rd.read_ns;
	c->cp->st.pages_evicted = c->cp->rd.pages_evicted;
	if (err == -EFAULT || err == -ENOENT)
		err = pt__target_errno(c->cp->t, err);
	return err;
}

/* ---- public ---- */

struct pt_copier *pt_copier_create(pid_t pid, const struct pt_copy_opts *opts)
{
	const char *force = getenv("PT_FORCE_COPY");
	struct pt_copier *cp;
	char path[48];
	int err, fd;

	if (!PT_OPTS_VALID(opts, pt_copy_opts) || PT_OPTS_GET(opts, reserved, 0) ||
	    (PT_OPTS_GET(opts, flags, 0) & ~(PT_COPY_NO_EVICT | PT_COPY_FORCE_MEM))) {
		errno = EINVAL;
		return NULL;
	}
	cp = calloc(1, sizeof(*cp));
	if (!cp) {
		errno = ENOMEM;
		return NULL;
	}
	cp->flags = PT_OPTS_GET(opts, flags, 0);
	cp->tracker = PT_OPTS_GET(opts, tracker, NULL);
	if (force && strcmp(force, "mem") == 0)
		cp->flags |= PT_COPY_FORCE_MEM;
	cp->t = pt_target_create(pid, NULL);
	if (!cp->t) {
		err = errno;
		free(cp);
		errno = err;
		return NULL;
	}
	cp->regs = malloc(CP_REGS * sizeof(*cp->regs));
	cp->orb.cap = CP_REGS;
	cp->orb.r = malloc(CP_REGS * sizeof(*cp->orb.r));
	err = !cp->regs || !cp->orb.r ? -ENOMEM : pt__reader_init(&cp->rd, cp->t, "copy");
	if (!err) {
		snprintf(path, sizeof(path), "%s/mem", cp->t->procdir);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			err = pt__target_errno(cp->t, -errno);
		else
			cp->rd.mem_fd = fd;
	}
	if (err) {
		pt_copier_free(cp);
		errno = -err;
		return NULL;
	}
	return cp;
}

void pt_copier_free(struct pt_copier *cp)
{
	if (!cp)
		return;
	if (cp->rd.buf || cp->rd.mem_fd >= 0)
		pt__reader_fini(&cp->rd);
	pt_target_free(cp->t);
	free(cp->regs);
	free(cp->orb.r);
	free(cp);
}

bool pt_vma_is_object(const struct pt_vma *v)
{
	return v && (v->prot & PT_MAP_SHARED) && pt__vma_has_object(v);
}

static bool starts_with(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* Areas whose pages are never read: 0, or the UNREADABLE detail. */
static uint32_t special_detail(const struct pt_vma *v)
{
	if (v->kind != PT_VMA_SPECIAL)
		return 0;
	if (starts_with(v->path, "[vvar") || strcmp(v->path, "[vsyscall]") == 0 ||
	    v->start >= PT_USER_ADDR_END)
		return PT_UNREADABLE_KERNEL;
	/* device mappings (VM_IO / PFN maps); a private /dev/zero mapping is anonymous memory */
	if (starts_with(v->path, "/dev/") && !starts_with(v->path, "/dev/zero"))
		return PT_UNREADABLE_DEVICE;
	return 0;
}

static int area_region(struct cp_call *c, const struct pt_region *r, uint8_t src)
{
	uint64_t len = r->end - r->start;
	uint8_t fl = c->cp->flags & PT_COPY_NO_EVICT ? 0 : PT_RD_EVICT;

	switch (r->state) {
	case PT_STATE_PRESENT:
		/* the zero page, or a page of the file not copied-on-write */
		if (r->attrs & (PT_ATTR_ZERO | PT_ATTR_FILE))
			break;
		return queue(c, r->start, len, 0, src, 0);
	case PT_STATE_SWAPPED:
		if (r->attrs & PT_ATTR_FILE)
			break;
		return queue(c, r->start, len, 0, src, PT_RD_SWAPPED | fl);
	default:
		/* nothing in the page table: no private data */
		break;
	}
	return hole(c, r->start, len, PT_PAGE_HOLE, 0);
}

int pt_copy_area(struct pt_copier *cp, const struct pt_vma *v, uint64_t start, uint64_t end,
		 pt_copy_fn fn, void *ctx)
{
	const PT_OPTS(pt_scan_opts, so, .flags = PT_SCAN_NO_SHARED | PT_SCAN_NO_EXCLUSIVE);
	struct cp_call c = { .cp = cp, .fn = fn, .ctx = ctx, .area = true };
	uint64_t cur = start, covered = start;
	uint32_t detail;
	uint8_t src;
	int err = 0;

	if (!cp || !v || !fn || pt_vma_is_object(v) || (start | end) & (PT_PAGE_SIZE - 1) ||
	    start > end || start < v->start || end > v->end)
		return -EINVAL;
	if (start == end)
		return 0;
	pt__reader_reset(&cp->rd);
	detail = special_detail(v);
	if (detail) {
		err = hole(&c, start, end - start, PT_PAGE_UNREADABLE, detail);
		return finish(&c, err);
	}
	if ((cp->flags & PT_COPY_FORCE_MEM) || !(v->prot & PT_PROT_READ))
		src = PT_RD_MEM;
	else
		src = cp->t->self ? PT_RD_SELF : PT_RD_VM;
	while (!err && cur < end) {
		int n = pt_scan(cp->t, &cur, end, cp->regs, CP_REGS, &so);

		if (n <= 0) {
			err = n;
			break;
		}
		for (int i = 0; i < n && !err; i++) {
			const struct pt_region *r = &cp->regs[i];

			/* addresses outside any area (layout changed): no data */
			if (r->start > covered)
				err = hole(&c, covered, r->start - covered, PT_PAGE_HOLE, 0);
			if (!err)
				err = area_region(&c, r, src);
			covered = r->end;
		}
	}
	if (!err && covered < end)
		err = hole(&c, covered, end - covered, PT_PAGE_HOLE, 0);
	return finish(&c, err);
}

static int object_region(struct cp_call *c, const struct pt_region *r)
{
	uint64_t len = r->end - r->start;
	uint8_t fl = c->cp->flags & PT_COPY_NO_EVICT ? 0 : PT_RD_EVICT;

	switch (r->state) {
	case PT_STATE_ABSENT:
		return hole(c, r->start, len, PT_PAGE_HOLE, 0);
	case PT_STATE_SWAPPED:
		/* through our own mapping, paged out there again; or pread, left resident */
		if (fl)
			return queue(c, r->start, len, r->start, PT_RD_OBJMAP, PT_RD_SWAPPED | fl);
		return queue(c, r->start, len, r->start, PT_RD_OBJ, PT_RD_SWAPPED);
	case PT_STATE_UNKNOWN:
		if (r->reason == PT_REASON_NO_ACCESS)
			return hole(c, r->start, len, PT_PAGE_UNREADABLE, PT_UNREADABLE_PERM);
		if (r->reason == PT_REASON_UNSUPPORTED)
			return hole(c, r->start, len, PT_PAGE_UNREADABLE, PT_UNREADABLE_DEVICE);
		/* residency unknown (mincore denied): read it */
		return queue(c, r->start, len, r->start, PT_RD_OBJ, 0);
	default:
		return queue(c, r->start, len, r->start, PT_RD_OBJ, 0);
	}
}

int64_t pt_copy_object_size(struct pt_copier *cp, const struct pt_vma *v)
{
	struct stat st;
	int fd;

	if (!cp || !pt_vma_is_object(v))
		return -EINVAL;
	fd = pt__shared_obj_fd(cp->t, v, NULL);
	if (fd == -1)
		return -EACCES;
	if (fd < 0)
		return fd;
	if (fstat(fd, &st))
		return -errno;
	return st.st_size;
}

int pt_copy_object(struct pt_copier *cp, const struct pt_vma *v, uint64_t off, uint64_t end,
		   pt_copy_fn fn, void *ctx)
{
	struct cp_call c = { .cp = cp, .fn = fn, .ctx = ctx };
	struct stat st;
	uint64_t pos = off, eof;
	int fd, err = 0;

	if (!cp || !fn || !pt_vma_is_object(v) || (off | end) & (PT_PAGE_SIZE - 1) || off > end)
		return -EINVAL;
	pt__reader_reset(&cp->rd);
	fd = pt__shared_obj_fd(cp->t, v, NULL);
	if (fd < -1)
		return fd;
	if (fd == -1) {
		if (off < end)
			err = hole(&c, off, end - off, PT_PAGE_UNREADABLE, PT_UNREADABLE_PERM);
		return finish(&c, err);
	}
	if (fstat(fd, &st))
		return -errno;
	eof = ((uint64_t)st.st_size + PT_PAGE_SIZE - 1) & ~(PT_PAGE_SIZE - 1);
	if (end > eof)
		end = eof;
	cp->rd.obj_fd = fd;
	while (!err && pos < end) {
		uint64_t stopped;

		cp->orb.n = 0;
		err = pt__shared_resolve_object(cp->t, v, pos, end, &cp->orb, &stopped);
		if (err)
			break;
		/* the object's fd may have been reopened: take it again */
		cp->rd.obj_fd = pt__shared_obj_fd(cp->t, v, NULL);
		for (size_t i = 0; i < cp->orb.n && !err; i++)
			err = object_region(&c, &cp->orb.r[i]);
		if (!cp->orb.n || stopped <= pos)
			break;
		pos = stopped;
	}
	if (!err && pos < end && !cp->orb.n)
		err = hole(&c, pos, end - pos, PT_PAGE_HOLE, 0);
	err = finish(&c, err);
	cp->rd.obj_fd = -1;
	return err;
}

int pt_copier_stats(const struct pt_copier *cp, struct pt_copy_stats *st)
{
	size_t sz;

	if (!cp || !st || st->sz < sizeof(size_t))
		return -EINVAL;
	sz = st->sz < sizeof(*st) ? st->sz : sizeof(*st);
	memcpy((char *)st + sizeof(size_t), (const char *)&cp->st + sizeof(size_t),
	       sz - sizeof(size_t));
	return 0;
}
