// SPDX-License-Identifier: MIT
/*
 * Snapshots (pt_snapshot(), doc/api.md "Snapshots"): the copy engine
 * (lib/copy/) feeding the image writer (lib/image/), under a freeze
 * (lib/process/freeze.c), or in pre-copy rounds driven by a tracker
 * (lib/track/) with a freeze only for the last delta.
 *
 * A layer is written owner by owner, as the format wants its runs
 * (doc/image-format.md, "INDEX"): every area in address order, then
 * every stored object.  What each owner's runs say:
 *  - base layer (FULL): the copy of every page;
 *  - with a parent from another run (COMPARED): the copy, each page
 *    compared with the parent's resolved content, equal ones UNCHANGED;
 *  - a pre-copy round (TRACKED): the pages the tracker reported copied,
 *    the rest UNCHANGED where the parent layer has the page, copied
 *    where it does not (an area that grew).  Objects are COMPARED: the
 *    tracker sees only the parts of an object that are mapped.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pt_internal.h"
#include "image/image.h"
#include "process/capture.h"
#include "process/freeze.h"

#define P PT_PAGE_SIZE
#define CMP_PAGES 256u		/* parent pages read at once for comparing */
#define DIRTY_CAP 4096u

struct snap {
	pid_t pid;
	const struct pt_snapshot_opts *o;
	struct pt_snapshot_report *rep;
	char *err;
	size_t errlen;
	struct pt_copier *cp;
	struct pt_tracker *tr;		/* live mode */
	uint64_t t0;
	/* progress */
	uint32_t phase, round;
	uint64_t done, total, last_progress_ns, copy_ns;
};

/* The layer being written. */
struct layer {
	struct snap *s;
	struct pt__imgw *w;
	struct pt_image *parent;
	const struct pt_image_area *pa;	/* parent's areas */
	size_t npa;
	const struct pt_image_object *po;
	size_t npo;
	struct pt_vma *v;		/* the layout, one per area */
	size_t nv;
	struct pt_image_area *areas;
	struct pt_image_object *objs;
	size_t no;
	uint32_t *obj_vma;		/* a shared area of each object (or UINT32_MAX) */
	/* the owner being written */
	uint32_t owner_type, owner;
	uint64_t base;			/* area start, or 0 for an object */
	uint64_t next;			/* next page to write, relative to base */
	bool compare;
	uint32_t pobj;			/* the parent's object compared with */
	unsigned char *pbuf;
	uint8_t pkinds[CMP_PAGES];
	uint64_t pages[6];		/* by enum pt_page_kind */
	uint32_t deltas;		/* 1 << enum pt_image_delta of every owner */
};

static int fail(struct snap *s, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct snap *s, int err, const char *fmt, ...)
{
	va_list ap;

	if (s->err && s->errlen && !s->err[0]) {
		va_start(ap, fmt);
		vsnprintf(s->err, s->errlen, fmt, ap);
		va_end(ap);
	}
	return err < 0 ? err : -EIO;
}

/*
 * Whatever step failed (a freeze, a read of the layout, a copy), when
 * the target is gone the one line says so: that is the cause.
 */
static bool gone(pid_t pid)
{
	char path[64], st[512];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH;
	n = read(fd, st, sizeof(st) - 1);
	close(fd);
	if (n <= 0)
		return true;
	st[n] = 0;
	char *p = strrchr(st, ')');

	return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');	/* exited, not reaped */
}

static int gone_msg(pid_t pid, int err, char *buf, size_t len)
{
	if (err < 0 && buf && len && gone(pid)) {
		snprintf(buf, len, "target %d exited during the snapshot", (int)pid);
		return -ESRCH;
	}
	return err;
}

static void progress(struct snap *s, bool force)
{
	uint64_t now = pt__now_ns();

	if (!s->o || !s->o->progress || (!force && now - s->last_progress_ns < 200000000ULL))
		return;
	s->last_progress_ns = now;
	struct pt_snapshot_progress p = {
		.phase = s->phase, .round = s->round, .bytes_done = s->done,
		.bytes_total = s->total,
		.rate_bps = s->copy_ns ? (uint64_t)((double)s->rep->bytes_copied * 1e9 / (double)s->copy_ns) : 0,
	};
	s->o->progress(&p, s->o->progress_ctx);
}

static bool is_private(const struct pt_image_area *a)
{
	return !((a->prot & PT_MAP_SHARED) && a->object != PT_IMAGE_NO_OBJECT);
}

/* ---- writing runs ---- */

static int emit(struct layer *l, uint32_t kind, uint32_t detail, uint64_t n, const void *data)
{
	int err;

	if (!n)
		return 0;
	err = pt__imgw_run(l->w, l->owner_type, l->owner, kind, detail, n, data);
	if (err)
		return fail(l->s, err, "writing the image: %s", strerror(-err));
	l->next += n;
	l->pages[kind < 6 ? kind : 0] += n;
	return 0;
}

/*
 * The parent's content of up to @n pages (n <= CMP_PAGES) of the current
 * owner from page @pg into l->pbuf / l->pkinds.  *@avail: how many pages
 * from @pg the parent has (read); when 0, *@skip: how many pages from
 * @pg it does not have (at least 1).  0 or -errno.
 */
static int parent_read(struct layer *l, uint64_t pg, uint64_t n, uint64_t *avail, uint64_t *skip)
{
	char e[256] = "";
	uint64_t k;
	int err;

	*avail = *skip = 0;
	if (l->owner_type == PT_OWNER_AREA) {
		uint64_t addr = l->base + pg * P;
		size_t lo = 0, hi = l->npa;

		while (lo < hi) {	/* first parent area ending after addr */
			size_t mid = (lo + hi) / 2;

			if (l->pa[mid].end <= addr)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == l->npa || l->pa[lo].start > addr || !is_private(&l->pa[lo])) {
			uint64_t stop = lo == l->npa ? UINT64_MAX
				       : l->pa[lo].start > addr ? l->pa[lo].start : l->pa[lo].end;

			k = (stop - addr) / P;
			*skip = k < n ? (k ? k : 1) : n;
			return 0;
		}
		k = (l->pa[lo].end - addr) / P;
		if (k > n)
			k = n;
		err = pt_image_read(l->parent, addr, k, l->pbuf, l->pkinds, e, sizeof(e));
	} else {
		uint64_t have = (l->po[l->pobj].size + P - 1) / P;

		if (pg >= have) {
			*skip = n;
			return 0;
		}
		k = have - pg < n ? have - pg : n;
		err = pt_image_read_object(l->parent, l->pobj, pg, k, l->pbuf, l->pkinds, e,
					   sizeof(e));
	}
	if (err)
		return fail(l->s, err, "parent %s", e[0] ? e : strerror(-err));
	*avail = k;
	return 0;
}

/*
 * Write @n pages of one kind from the current position, comparing each
 * with the parent when the owner is compared: equal pages (same kind,
 * and same bytes for DATA) become UNCHANGED.
 */
static int put(struct layer *l, uint32_t kind, uint32_t detail, uint64_t n, const unsigned char *data)
{
	if (!l->compare)
		return emit(l, kind, detail, n, data);
	while (n) {
		uint64_t chunk = n < CMP_PAGES ? n : CMP_PAGES, avail, skip;
		int err = parent_read(l, l->next, chunk, &avail, &skip);

		if (err)
			return err;
		if (!avail) {
			err = emit(l, kind, detail, skip, data);
			if (err)
				return err;
			data = data ? data + skip * P : NULL;
			n -= skip;
			continue;
		}
		for (uint64_t i = 0; i < avail;) {
			uint64_t j = i;
			bool same = false;

			for (; j < avail; j++) {
				bool sj = l->pkinds[j] == kind &&
					  (kind != PT_PAGE_DATA ||
					   !memcmp(data + j * P, l->pbuf + j * P, P));
				if (j == i)
					same = sj;
				else if (sj != same)
					break;
			}
			err = same ? emit(l, PT_PAGE_UNCHANGED, 0, j - i, NULL)
				   : emit(l, kind, detail, j - i, data ? data + i * P : NULL);
			if (err)
				return err;
			i = j;
		}
		data = data ? data + avail * P : NULL;
		n -= avail;
	}
	return 0;
}

static int on_piece(const struct pt_copy_piece *pc, void *ctx)
{
	struct layer *l = ctx;
	struct snap *s = l->s;
	uint64_t pg = (pc->addr - l->base) / P;

	if (pc->addr < l->base || (pc->addr - l->base) % P || pg != l->next)
		return fail(s, -EIO, "copy: piece at 0x%llx out of order",
			    (unsigned long long)pc->addr);
	if (pc->kind == PT_PAGE_DATA || pc->kind == PT_PAGE_ZERO) {
		s->done += pc->npages * P;
		progress(s, false);
	}
	return put(l, pc->kind, pc->detail, pc->npages, pc->data);
}

/* ---- the layout ---- */

static bool stored_kind(const struct pt_vma *v)
{
	size_t n = strlen(v->path);

	return pt__vma_is_shmem(v) || v->kind == PT_VMA_HUGETLB ||
	       (v->kind == PT_VMA_FILE && n > 10 && !strcmp(v->path + n - 10, " (deleted)"));
}

static void object_stat(pid_t pid, const struct pt_vma *v, struct pt_image_object *o)
{
	char path[96];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", (int)pid,
		 (unsigned long long)v->start, (unsigned long long)v->end);
	if (stat(path, &st) == 0 || (v->path[0] == '/' && stat(v->path, &st) == 0 &&
				     st.st_ino == v->inode)) {
		o->size = (uint64_t)st.st_size;
		if (S_ISREG(st.st_mode) && v->kind == PT_VMA_FILE)
			o->mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ULL +
				      (uint64_t)st.st_mtim.tv_nsec;
	}
}

static void layer_free(struct layer *l)
{
	pt__imgw_abort(l->w);
	free(l->areas);
	free(l->objs);
	free(l->obj_vma);
	free(l->pbuf);
	memset(l, 0, sizeof(*l));
}

/*
 * Build the areas and objects of @v (owned by the caller, kept until the
 * layer is done) and open the writer.
 */
static int layer_open(struct layer *l, struct snap *s, const char *path, uint32_t flags,
		      struct pt_image *parent, struct pt_vma *v, size_t nv, bool objects_stored)
{
	PT_OPTS(pt_image_info, pi);
	int err;

	memset(l, 0, sizeof(*l));
	l->s = s;
	l->v = v;
	l->nv = nv;
	l->parent = parent;
	l->areas = calloc(nv ? nv : 1, sizeof(*l->areas));
	l->objs = calloc(nv ? nv : 1, sizeof(*l->objs));
	l->obj_vma = calloc(nv ? nv : 1, sizeof(*l->obj_vma));
	l->pbuf = malloc(CMP_PAGES * P);
	if (!l->areas || !l->objs || !l->obj_vma || !l->pbuf) {
		layer_free(l);
		return fail(s, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < nv; i++) {
		struct pt_image_area *a = &l->areas[i];

		a->start = v[i].start;
		a->end = v[i].end;
		a->offset = v[i].offset;
		a->prot = v[i].prot;
		a->kind = v[i].kind;
		a->path = v[i].path;
		a->path_len = strlen(v[i].path);
		a->object = PT_IMAGE_NO_OBJECT;
		if (!pt__vma_has_object(&v[i]) || !v[i].inode)
			continue;
		size_t k;

		for (k = 0; k < l->no; k++)
			if (l->objs[k].inode == v[i].inode && l->objs[k].dev_major == v[i].dev_major &&
			    l->objs[k].dev_minor == v[i].dev_minor)
				break;
		if (k == l->no) {
			struct pt_image_object *o = &l->objs[l->no++];

			o->dev_major = v[i].dev_major;
			o->dev_minor = v[i].dev_minor;
			o->inode = v[i].inode;
			o->kind = v[i].kind;
			o->sysv_key = v[i].kind == PT_VMA_SYSV ? v[i].sysv_key : 0;
			o->name = v[i].path;
			o->name_len = strlen(v[i].path);
			if (o->name_len > 10 && !strcmp(v[i].path + o->name_len - 10, " (deleted)"))
				o->flags |= PT_OBJECT_DELETED;
			l->obj_vma[k] = UINT32_MAX;
			object_stat(s->pid, &v[i], o);
		}
		a->object = (uint32_t)k;
		if (objects_stored && pt_vma_is_object(&v[i]) && stored_kind(&v[i]) &&
		    l->obj_vma[k] == UINT32_MAX) {
			int64_t sz = pt_copy_object_size(s->cp, &v[i]);

			if (sz >= 0) {
				l->obj_vma[k] = (uint32_t)i;
				l->objs[k].flags |= PT_OBJECT_STORED;
				l->objs[k].size = (uint64_t)sz;
			} else {
				pt__log(PT_LOG_WARN, "snapshot: %s: not stored: %s", v[i].path,
					strerror((int)-sz));
			}
		}
	}
	if (parent) {
		pt_image_info(parent, &pi);
		pt_image_areas(parent, &l->pa, &l->npa);
		pt_image_objects(parent, &l->po, &l->npo);
	}
	struct pt__imgw_opts wo = {
		.flags = flags, .level = s->o ? s->o->level : 0,
		.overwrite = s->o && (s->o->flags & PT_SNAP_OVERWRITE), .pid = s->pid,
		.comm = NULL, .parent = parent,
	};
	char comm[32] = "", cpath[64];
	int fd;

	snprintf(cpath, sizeof(cpath), "/proc/%d/comm", (int)s->pid);
	fd = open(cpath, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t r = read(fd, comm, sizeof(comm) - 1);

		close(fd);
		comm[r > 0 ? r : 0] = 0;
		comm[strcspn(comm, "\n")] = 0;
		comm[15] = 0;
	}
	wo.comm = comm;
	err = pt__imgw_open(path, &wo, &l->w, s->err, s->errlen);
	if (!err)
		err = pt__imgw_layout(l->w, l->areas, nv, l->objs, l->no);
	if (err) {
		layer_free(l);
		return fail(s, err, "%s: %s", path, strerror(-err));
	}
	return 0;
}

static int start_owner(struct layer *l, uint32_t type, uint32_t idx, uint32_t delta)
{
	int err;

	l->owner_type = type;
	l->owner = idx;
	l->next = 0;
	l->compare = false;
	if (type == PT_OWNER_AREA) {
		l->base = l->areas[idx].start;
		l->compare = delta == PT_DELTA_COMPARED;
	} else {
		l->base = 0;
		if (delta == PT_DELTA_COMPARED) {
			const struct pt_image_object *o = &l->objs[idx];

			for (size_t k = 0; k < l->npo; k++)
				if (l->po[k].inode == o->inode && l->po[k].dev_major == o->dev_major &&
				    l->po[k].dev_minor == o->dev_minor &&
				    (l->po[k].flags & PT_OBJECT_STORED)) {
					l->compare = true;
					l->pobj = (uint32_t)k;
				}
			if (!l->compare)
				delta = PT_DELTA_FULL;
		}
	}
	l->deltas |= 1u << delta;
	err = pt__imgw_set_delta(l->w, type, idx, delta);
	return err ? fail(l->s, err, "writing the image: %s", strerror(-err)) : 0;
}

static int copy_err(struct snap *s, int err, const struct pt_vma *v)
{
	if (err == -ESRCH)
		return fail(s, err, "target %d exited during the snapshot", (int)s->pid);
	return fail(s, err, "copying 0x%llx-0x%llx (%s): %s", (unsigned long long)v->start,
		    (unsigned long long)v->end, v->path[0] ? v->path : "anon", strerror(-err));
}

/* Whole private area @i, compared with the parent when there is one. */
static int area_full(struct layer *l, size_t i, uint64_t from)
{
	int err = pt_copy_area(l->s->cp, &l->v[i], l->areas[i].start + from * P, l->areas[i].end,
			       on_piece, l);

	return err ? copy_err(l->s, err, &l->v[i]) : 0;
}

/* Every stored object, whole (compared with the parent's when it has it). */
static int objects_all(struct layer *l, bool compare)
{
	for (size_t k = 0; k < l->no; k++) {
		if (!(l->objs[k].flags & PT_OBJECT_STORED))
			continue;
		const struct pt_vma *v = &l->v[l->obj_vma[k]];
		int err = start_owner(l, PT_OWNER_OBJECT, (uint32_t)k,
				      compare ? PT_DELTA_COMPARED : PT_DELTA_FULL);
		if (err)
			return err;
		uint64_t end = (l->objs[k].size + P - 1) / P * P;

		err = pt_copy_object(l->s->cp, v, 0, end, on_piece, l);
		if (err)
			return copy_err(l->s, err, v);
		if (l->next * P != end)
			return fail(l->s, -EIO, "copy of %s ended at page %llu of %llu", v->path,
				    (unsigned long long)l->next, (unsigned long long)(end / P));
	}
	return 0;
}

/* A layer copying everything: base (FULL) or compared with @parent. */
static int layer_copy_all(struct layer *l)
{
	bool compare = l->parent != NULL;

	for (size_t i = 0; i < l->nv; i++) {
		if (!is_private(&l->areas[i]))
			continue;
		int err = start_owner(l, PT_OWNER_AREA, (uint32_t)i,
				      compare ? PT_DELTA_COMPARED : PT_DELTA_FULL);
		if (!err)
			err = area_full(l, i, 0);
		if (err)
			return err;
	}
	return objects_all(l, compare);
}

/* ---- dirty lists (live mode) ---- */

struct dirty {
	struct pt_dirty *d;
	size_t n, cap;
};

static int cmp_dirty(const void *a, const void *b)
{
	const struct pt_dirty *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Collect one whole round into @dl (appending); sorted and merged. */
static int collect_round(struct snap *s, struct dirty *dl)
{
	bool more = true;

	while (more) {
		if (dl->cap - dl->n < DIRTY_CAP) {
			size_t cap = dl->cap * 2 + DIRTY_CAP;
			struct pt_dirty *d = realloc(dl->d, cap * sizeof(*d));

			if (!d)
				return fail(s, -ENOMEM, "out of memory");
			dl->d = d;
			dl->cap = cap;
		}
		int n = pt_tracker_collect(s->tr, dl->d + dl->n, DIRTY_CAP, &more);

		if (n < 0)
			return n == -ESRCH ? fail(s, n, "target %d exited during the snapshot",
						  (int)s->pid)
					   : fail(s, n, "tracking: %s", strerror(-n));
		dl->n += (size_t)n;
	}
	qsort(dl->d, dl->n, sizeof(*dl->d), cmp_dirty);
	size_t o = 0;

	/*
	 * Merge overlapping and adjacent ranges of the same hotness; where a
	 * hot range overlaps a plain one, the plain one wins (it must be
	 * copied now).  Other flags go: holes are found again by the copy's
	 * scan.
	 */
	for (size_t i = 0; i < dl->n; i++) {
		uint32_t hot = dl->d[i].flags & PT_DIRTY_HOT;

		if (o && dl->d[i].start < dl->d[o - 1].end) {	/* overlap */
			if (dl->d[i].end > dl->d[o - 1].end)
				dl->d[o - 1].end = dl->d[i].end;
			dl->d[o - 1].flags &= hot;
			continue;
		}
		if (o && dl->d[i].start == dl->d[o - 1].end && (dl->d[o - 1].flags == hot)) {
			dl->d[o - 1].end = dl->d[i].end;
			continue;
		}
		dl->d[o] = dl->d[i];
		dl->d[o++].flags = hot;
	}
	dl->n = o;
	return 0;
}

static uint64_t dirty_bytes(const struct dirty *dl)
{
	uint64_t b = 0;

	for (size_t i = 0; i < dl->n; i++)
		b += dl->d[i].end - dl->d[i].start;
	return b;
}

/*
 * Pages [from, to) (relative) of the current area not reported dirty:
 * UNCHANGED where the parent has them in a private area, else copied.
 */
static int area_gap(struct layer *l, size_t i, uint64_t from, uint64_t to)
{
	while (from < to) {
		uint64_t addr = l->base + from * P, n = to - from;
		size_t lo = 0, hi = l->npa;

		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (l->pa[mid].end <= addr)
				lo = mid + 1;
			else
				hi = mid;
		}
		bool have = lo < l->npa && l->pa[lo].start <= addr && is_private(&l->pa[lo]);
		uint64_t stop;

		if (have)
			stop = l->pa[lo].end;
		else if (lo < l->npa && l->pa[lo].start > addr)
			stop = l->pa[lo].start;
		else if (lo < l->npa)
			stop = l->pa[lo].end;
		else
			stop = l->base + to * P;
		uint64_t k = (stop - addr) / P;

		if (k > n)
			k = n;
		int err;

		if (have) {
			err = emit(l, PT_PAGE_UNCHANGED, 0, k, NULL);
		} else {
			err = pt_copy_area(l->s->cp, &l->v[i], addr, addr + k * P, on_piece, l);
			if (err)
				err = copy_err(l->s, err, &l->v[i]);
		}
		if (err)
			return err;
		from += k;
	}
	return 0;
}

/*
 * A layer of the pages in @dl (TRACKED areas); objects compared.
 * @skip_hot: leave PT_DIRTY_HOT ranges UNCHANGED (a live round: the
 * tracker reports a hot page every round until it re-arms it, reporting
 * it then too, so the page reaches a later layer, the frozen one at the
 * latest; doc/tracking.md, "Hot pages").
 */
static int layer_copy_dirty(struct layer *l, const struct dirty *dl, bool skip_hot)
{
	size_t j = 0;

	for (size_t i = 0; i < l->nv; i++) {
		if (!is_private(&l->areas[i]))
			continue;
		const struct pt_image_area *a = &l->areas[i];
		int err = start_owner(l, PT_OWNER_AREA, (uint32_t)i, PT_DELTA_TRACKED);

		if (err)
			return err;
		while (j < dl->n && dl->d[j].end <= a->start)
			j++;
		for (size_t k = j; k < dl->n && dl->d[k].start < a->end; k++) {
			if (skip_hot && (dl->d[k].flags & PT_DIRTY_HOT))
				continue;
			uint64_t ds = dl->d[k].start > a->start ? dl->d[k].start : a->start;
			uint64_t de = dl->d[k].end < a->end ? dl->d[k].end : a->end;

			err = area_gap(l, i, l->next, (ds - a->start) / P);
			if (!err) {
				err = pt_copy_area(l->s->cp, &l->v[i], ds, de, on_piece, l);
				if (err)
					err = copy_err(l->s, err, &l->v[i]);
			}
			if (err)
				return err;
		}
		err = area_gap(l, i, l->next, (a->end - a->start) / P);
		if (err)
			return err;
	}
	return objects_all(l, true);
}

/* ---- layers end to end ---- */

static int layer_finish(struct layer *l, const struct pt__capture *cap)
{
	struct snap *s = l->s;
	struct pt__imgw_result r;
	int err = 0;

	if (cap)
		err = pt__imgw_capture(l->w, cap);
	if (err) {
		layer_free(l);
		return fail(s, err, "writing the image: %s", strerror(-err));
	}
	memset(&r, 0, sizeof(r));
	err = pt__imgw_finish(l->w, &r, s->err, s->errlen);
	l->w = NULL;
	if (!err) {
		s->rep->bytes_stored += r.file_size;
		s->rep->layers++;
	}
	layer_free(l);
	return err < 0 ? fail(s, err, "writing the image: %s", strerror(-err)) : 0;
}

static void report_final(struct snap *s, const struct layer *l)
{
	struct pt_snapshot_report *r = s->rep;

	r->pages_data = l->pages[PT_PAGE_DATA];
	r->pages_zero = l->pages[PT_PAGE_ZERO];
	r->pages_hole = l->pages[PT_PAGE_HOLE];
	r->pages_unchanged = l->pages[PT_PAGE_UNCHANGED];
	r->pages_unreadable = l->pages[PT_PAGE_UNREADABLE];
	r->deltas = l->deltas;
}

static int open_parent(struct snap *s, const char *path, struct pt_image **out)
{
	char e[512] = "";
	int err = pt_image_open(path, out, e, sizeof(e));

	if (err)
		return fail(s, err, "parent %s", e[0] ? e : strerror(-err));
	return 0;
}

static void copy_totals(struct snap *s)
{
	PT_OPTS(pt_copy_stats, cs);

	if (pt_copier_stats(s->cp, &cs) == 0) {
		s->rep->bytes_copied = cs.bytes_read;
		s->rep->pages_swapped_in = cs.pages_swapped_in;
		s->rep->pages_evicted = cs.pages_evicted;
	}
}

/* Frozen mode: freeze, copy all (or compared with a parent), capture, thaw, write. */
static int snap_frozen(struct snap *s, const char *path)
{
	struct pt_image *parent = NULL;
	struct pt_target *t = NULL;
	struct pt_vma *v = NULL;
	size_t nv = 0;
	struct pt_freeze fz;
	struct pt__capture cap;
	struct layer l;
	int err;

	memset(&cap, 0, sizeof(cap));
	if (s->o && s->o->parent && (err = open_parent(s, s->o->parent, &parent)))
		return err;
	t = pt_target_create(s->pid, NULL);
	if (!t) {
		err = -errno;
		pt_image_close(parent);
		return fail(s, err, "target %d: %s", (int)s->pid, strerror(-err));
	}
	err = pt__freeze(s->pid, &fz);
	if (err) {
		pt_target_free(t);
		pt_image_close(parent);
		return fail(s, err, "freezing %d: %s", (int)s->pid,
			    err == -EBUSY ? "it is traced by another process"
			    : err == -ESRCH ? "it exited" : strerror(-err));
	}
	s->phase = PT_SNAP_PHASE_FROZEN;
	err = pt_vmas_read(t, &v, &nv);
	if (err)
		fail(s, err, "reading the layout of %d: %s", (int)s->pid, strerror(-err));
	if (!err && (err = pt__capture(&fz, &cap)))
		fail(s, err, "capturing the threads of %d: %s", (int)s->pid, strerror(-err));
	for (size_t i = 0; !err && i < nv; i++)
		s->total += v[i].end - v[i].start;
	if (!err)
		err = layer_open(&l, s, path, PT_IMAGE_FROZEN, parent, v, nv, true);
	if (!err) {
		uint64_t c0 = pt__now_ns();

		err = layer_copy_all(&l);
		s->copy_ns += pt__now_ns() - c0;
		if (err)
			layer_free(&l);
	}
	s->rep->pause_ns = pt__thaw(&fz);
	if (!err) {
		report_final(s, &l);
		s->rep->threads = cap.nthreads;
		err = layer_finish(&l, &cap);
	}
	copy_totals(s);
	s->rep->frozen_bytes = s->rep->bytes_copied;
	pt__capture_free(&cap);
	pt_vmas_free(v);
	pt_target_free(t);
	pt_image_close(parent);
	return err;
}

static char *live_name(const char *path, uint32_t round)
{
	char *n = NULL;

	if (asprintf(&n, "%s.live-%u", path, round) < 0)
		return NULL;
	return n;
}

static void live_cleanup(const char *path, uint32_t upto)
{
	for (uint32_t r = 0; r < upto; r++) {
		char *n = live_name(path, r);

		if (n)
			unlink(n);
		free(n);
	}
}

/* ---- a chain of tracked layers (pt_snapshotter, live mode) ---- */

struct pt_snapshotter {
	struct snap s;
	struct pt_snapshot_opts o;
	struct pt_snapshot_report rep;	/* totals over the layers */
	struct pt_image *prev;		/* the last layer written */
	struct dirty dl;		/* collected, not yet in a layer */
	uint64_t layers;
	bool hot;			/* PT_TRACK_HOT: live layers skip hot pages */
};

static struct pt_snapshotter *sn_create(pid_t pid, const struct pt_snapshot_opts *opts, bool hot,
					char *err, size_t errlen, int *res)
{
	struct pt_snapshotter *sn = calloc(1, sizeof(*sn));
	PT_OPTS(pt_tracker_opts, to, .backend = PT_TRACK_AUTO, .flags = hot ? PT_TRACK_HOT : 0);
	int e;

	if (!sn) {
		*res = -ENOMEM;
		return NULL;
	}
	if (opts)
		memcpy(&sn->o, opts, opts->sz < sizeof(sn->o) ? opts->sz : sizeof(sn->o));
	sn->o.sz = sizeof(sn->o);
	sn->hot = hot;
	sn->rep.sz = sizeof(sn->rep);
	sn->s = (struct snap){ .pid = pid, .o = &sn->o, .rep = &sn->rep, .err = err,
			       .errlen = errlen, .t0 = pt__now_ns() };
	sn->s.tr = pt_tracker_create(pid, &to);
	if (!sn->s.tr) {
		e = -errno;
		*res = fail(&sn->s, e, "tracking %d: %s", (int)pid,
			    e == -EALREADY ? "another pagetrack tracks it"
			    : e == -ESRCH ? "no such process" : strerror(-e));
		free(sn);
		return NULL;
	}
	/* the copier notes what it copies, so hashed areas compare against it */
	PT_OPTS(pt_copy_opts, co, .tracker = sn->s.tr,
		.flags = (sn->o.flags & PT_SNAP_NO_EVICT) ? PT_COPY_NO_EVICT : 0);
	sn->s.cp = pt_copier_create(pid, &co);
	if (!sn->s.cp) {
		e = -errno;
		*res = fail(&sn->s, e, "target %d: %s", (int)pid, strerror(-e));
		pt_tracker_free(sn->s.tr);
		free(sn);
		return NULL;
	}
	*res = 0;
	return sn;
}

/* Collect what the target wrote since; *bytes: all that waits for the next layer. */
static int sn_pending(struct pt_snapshotter *sn, uint64_t *bytes)
{
	int err = sn->layers ? collect_round(&sn->s, &sn->dl) : 0;

	*bytes = dirty_bytes(&sn->dl);
	return err;
}

/*
 * The next layer at @path: the first copies everything (FULL), each next
 * one the pages reported since (TRACKED).  Frozen: every thread stopped,
 * the tracker's round run inside the freeze, the threads captured.
 * On failure what was collected stays pending for the next layer.
 */
static int sn_layer(struct pt_snapshotter *sn, const char *path, bool frozen)
{
	struct snap *s = &sn->s;
	struct pt_freeze fz;
	struct pt__capture cap;
	struct pt_vma *v = NULL;
	size_t nv = 0;
	struct layer l;
	uint64_t c0, fb0 = s->rep->bytes_copied;
	int err = 0;

	memset(&cap, 0, sizeof(cap));
	if (frozen && (err = pt__freeze(s->pid, &fz)))
		return fail(s, err, "freezing %d: %s", (int)s->pid,
			    err == -EBUSY ? "it is traced by another process"
			    : err == -ESRCH ? "it exited" : strerror(-err));
	c0 = pt__now_ns();
	s->phase = frozen ? PT_SNAP_PHASE_FROZEN : PT_SNAP_PHASE_ROUND;
	s->round = (uint32_t)sn->layers;
	s->done = 0;
	if (sn->layers)
		err = collect_round(s, &sn->dl);
	s->total = sn->layers ? dirty_bytes(&sn->dl) : 0;
	uint64_t t_collect = pt__now_ns();
	if (!err && frozen && (err = pt__capture(&fz, &cap)))
		fail(s, err, "capturing the threads of %d: %s", (int)s->pid, strerror(-err));
	if (!err && (err = pt_tracker_vmas(s->tr, &v, &nv)))
		fail(s, err, "tracking: %s", strerror(-err));
	if (!err)
		err = layer_open(&l, s, path, frozen ? PT_IMAGE_FROZEN : PT_IMAGE_LIVE, sn->prev, v,
				 nv, true);
	if (!err && (err = sn->layers ? layer_copy_dirty(&l, &sn->dl, !frozen && sn->hot)
				      : layer_copy_all(&l)))
		layer_free(&l);
	uint64_t t_copy = pt__now_ns();

	if (frozen) {
		s->rep->pause_ns = pt__thaw(&fz);
		copy_totals(s);
		s->rep->frozen_bytes = s->rep->bytes_copied - fb0;
	} else {
		copy_totals(s);
	}
	s->copy_ns += pt__now_ns() - c0;
	pt__log(PT_LOG_DEBUG, "snapshot: layer %llu (%s): collect %.1f ms, copy %.1f ms of %llu KiB "
		"pending, pause %.1f ms", (unsigned long long)sn->layers, frozen ? "frozen" : "live",
		(double)(t_collect - c0) / 1e6, (double)(t_copy - t_collect) / 1e6,
		(unsigned long long)(s->total >> 10), frozen ? (double)s->rep->pause_ns / 1e6 : 0.0);
	if (!err) {
		report_final(s, &l);
		s->rep->threads = cap.nthreads;
		err = layer_finish(&l, frozen ? &cap : NULL);
	}
	pt__capture_free(&cap);
	pt_vmas_free(v);
	if (!err) {
		char e[512] = "";

		sn->dl.n = 0;
		sn->layers++;
		pt_image_close(sn->prev);
		sn->prev = NULL;
		err = pt_image_open(path, &sn->prev, e, sizeof(e));
		if (err)
			fail(s, err, "%s", e);
	}
	return err;
}

static int sn_free(struct pt_snapshotter *sn)
{
	int err = 0;

	if (!sn)
		return 0;
	pt_image_close(sn->prev);
	pt_copier_free(sn->s.cp);
	if (sn->s.tr && pt_tracker_free(sn->s.tr))
		err = -EBUSY;
	free(sn->dl.d);
	free(sn);
	return err;
}

static bool sn_opts_ok(const struct pt_snapshot_opts *o)
{
	return PT_OPTS_VALID(o, pt_snapshot_opts) &&
	       (!o || (!o->reserved && !(o->flags & ~(PT_SNAP_NO_EVICT | PT_SNAP_OVERWRITE)) &&
		       !o->parent && !o->core_path));
}

struct pt_snapshotter *pt_snapshotter_create(pid_t pid, const struct pt_snapshot_opts *opts)
{
	int err;

	if (pid <= 0 || !sn_opts_ok(opts)) {
		errno = EINVAL;
		return NULL;
	}
	struct pt_snapshotter *sn = sn_create(pid, opts, false, NULL, 0, &err);

	if (!sn)
		errno = -err;
	return sn;
}

int pt_snapshotter_layer(struct pt_snapshotter *sn, const char *path, uint32_t flags,
			 struct pt_snapshot_report *report, char *err, size_t errlen)
{
	struct pt_snapshot_report before;
	int e;

	if (err && errlen)
		err[0] = 0;
	if (!sn || !path || !path[0] || (flags & ~PT_SNAP_LIVE) ||
	    (report && (report->sz < sizeof(size_t) ||
			!pt__opts_tail_zero(report, sizeof(*report), report->sz)))) {
		if (err && errlen)
			snprintf(err, errlen, "invalid arguments");
		return -EINVAL;
	}
	sn->s.err = err;
	sn->s.errlen = errlen;
	before = sn->rep;
	sn->rep.pause_ns = 0;
	sn->rep.frozen_bytes = 0;
	uint64_t t0 = pt__now_ns();

	e = sn_layer(sn, path, !(flags & PT_SNAP_LIVE));
	e = gone_msg(sn->s.pid, e, err, errlen);
	sn->s.err = NULL;
	if (report) {
		struct pt_snapshot_report r = sn->rep;
		size_t n = report->sz < sizeof(r) ? report->sz : sizeof(r);

		r.bytes_copied -= before.bytes_copied;
		r.bytes_stored -= before.bytes_stored;
		r.pages_swapped_in -= before.pages_swapped_in;
		r.pages_evicted -= before.pages_evicted;
		r.layers -= before.layers;
		r.rounds = 0;
		r.duration_ns = pt__now_ns() - t0;
		memcpy((char *)report + sizeof(size_t), (char *)&r + sizeof(size_t),
		       n - sizeof(size_t));
	}
	return e;
}

int pt_snapshotter_free(struct pt_snapshotter *sn)
{
	return sn_free(sn);
}

/* pt_snapshot(PT_SNAP_LIVE): pre-copy layers PATH.live-N, then the frozen PATH. */
static int snap_live(struct snap *s, const char *path)
{
	uint64_t limit = s->o->pause_limit_ns ? s->o->pause_limit_ns : 300000000ULL;
	uint32_t max_rounds = s->o->max_rounds ? s->o->max_rounds : 30, round = 0;
	PT_OPTS(pt_snapshot_opts, so, .flags = s->o->flags & (PT_SNAP_NO_EVICT | PT_SNAP_OVERWRITE),
		.level = s->o->level, .progress = s->o->progress, .progress_ctx = s->o->progress_ctx);
	struct pt_snapshotter *sn;
	int err;

	if (s->o->parent)
		return fail(s, -EINVAL, "--live and --parent do not go together");
	sn = sn_create(s->pid, &so, true, s->err, s->errlen, &err);
	if (!sn)
		return err;
	for (;;) {
		char *name = live_name(path, round);
		uint64_t b0 = sn->rep.bytes_copied, c0 = pt__now_ns(), want = 0;

		if (!name) {
			err = fail(s, -ENOMEM, "out of memory");
			break;
		}
		err = sn_layer(sn, name, false);
		free(name);
		round++;
		if (err)
			break;
		uint64_t dt = pt__now_ns() - c0, bytes = sn->rep.bytes_copied - b0;
		double rate = dt ? (double)bytes * 1e9 / (double)dt : 0;

		sn->rep.rounds = round;
		err = sn_pending(sn, &want);
		if (err)
			break;
		/* freeze when the rest fits the pause at this round's rate */
		if (!want || round >= max_rounds ||
		    (rate > 0 && (double)want * 1e9 / rate <= (double)limit))
			break;
	}
	if (!err)
		err = sn_layer(sn, path, true);
	uint64_t rounds = sn->rep.rounds;
	size_t sz = s->rep->sz;

	*s->rep = sn->rep;
	s->rep->sz = sz;
	s->rep->rounds = rounds;
	if (sn_free(sn) && !err)
		err = fail(s, -EBUSY, "the target %d keeps pagetrack's userfaultfd open "
			   "(another process traced it)", (int)s->pid);
	if (err)
		live_cleanup(path, round);
	return err;
}

int pt_snapshot(pid_t pid, const char *path, const struct pt_snapshot_opts *opts,
		struct pt_snapshot_report *report, char *err, size_t errlen)
{
	struct pt_snapshot_report rep_local;
	struct snap s = { .pid = pid, .o = opts, .err = err, .errlen = errlen };
	int e;

	if (err && errlen)
		err[0] = 0;
	if (!PT_OPTS_VALID(opts, pt_snapshot_opts) || (opts && opts->reserved) || !path ||
	    !path[0] || pid <= 0 ||
	    (opts && (opts->flags & ~(PT_SNAP_LIVE | PT_SNAP_NO_EVICT | PT_SNAP_OVERWRITE))))
		return fail(&s, -EINVAL, "invalid arguments");
	if (report && (report->sz < sizeof(size_t) ||
		       !pt__opts_tail_zero(report, sizeof(*report), report->sz)))
		return fail(&s, -EINVAL, "invalid report struct");
	memset(&rep_local, 0, sizeof(rep_local));
	rep_local.sz = sizeof(rep_local);
	s.rep = &rep_local;
	s.t0 = pt__now_ns();
	PT_OPTS(pt_copy_opts, co, .flags = opts && (opts->flags & PT_SNAP_NO_EVICT) ? PT_COPY_NO_EVICT : 0);
	s.cp = pt_copier_create(pid, &co);
	if (!s.cp) {
		e = -errno;
		return fail(&s, e, "target %d: %s", (int)pid,
			    e == -ESRCH ? "no such process" : strerror(-e));
	}
	if (opts && (opts->flags & PT_SNAP_LIVE)) {
		/* the snapshotter has its own, which notes copies to its tracker */
		pt_copier_free(s.cp);
		s.cp = NULL;
		e = snap_live(&s, path);
	} else {
		e = snap_frozen(&s, path);
	}
	pt_copier_free(s.cp);
	e = gone_msg(pid, e, err, errlen);
	if (!e && opts && opts->core_path) {
		struct pt_image *img = NULL;
		char m[512] = "";

		e = pt_image_open(path, &img, m, sizeof(m));
		if (!e)
			e = pt_image_core(img, opts->core_path, m, sizeof(m));
		pt_image_close(img);
		if (e)
			fail(&s, e, "core file: %s", m[0] ? m : strerror(-e));
	}
	rep_local.duration_ns = pt__now_ns() - s.t0;
	progress(&s, true);
	if (report) {
		size_t n = report->sz < sizeof(rep_local) ? report->sz : sizeof(rep_local);

		memcpy((char *)report + sizeof(size_t), (char *)&rep_local + sizeof(size_t),
		       n - sizeof(size_t));
	}
	return e;
}
