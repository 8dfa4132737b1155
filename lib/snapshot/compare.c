// SPDX-License-Identifier: MIT
/*
 * pt_image_compare(): a layer, resolved through its chain, against a
 * frozen process's memory now, page by page (`pagetrack image verify
 * FILE PID`).  The process side is read with the copy engine, so both
 * sides classify pages the same way.
 *
 * The bytes of each thread's rseq area (struct rseq, registered with the
 * kernel, in the thread's TLS block) are left out: the kernel rewrites
 * them (cpu_id, node_id, mm_cid; rseq_cs cleared) whenever the thread
 * runs on another CPU, so a process resumed after its snapshot differs
 * there without having written anything (doc/cli.md, image verify).
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>

#include "pt_internal.h"
#include "process/freeze.h"

#define P PT_PAGE_SIZE
#define CHUNK 256u
#define KCHUNK 65536u	/* pages of kinds read at once for pages without data */

static const unsigned char zeros[P];

#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f	/* Linux 5.13 */
#endif

/* What PTRACE_GET_RSEQ_CONFIGURATION fills (uapi linux/ptrace.h, 5.13). */
struct pt_rseq_conf {
	uint64_t rseq_abi_pointer;
	uint32_t rseq_abi_size;
	uint32_t signature;
	uint32_t flags;
	uint32_t pad;
};

#define MAX_RSEQ_SIZE 1024u	/* sanity bound of one registration */

typedef int (*diff_fn)(uint32_t owner_type, uint32_t owner, uint64_t start, uint64_t end,
		       void *ctx);

struct cmp {
	struct pt_image *img;
	struct pt_copier *cp;
	diff_fn fn;
	void *ctx;
	char *err;
	size_t errlen;
	int64_t diff;
	/* the owner being compared */
	uint32_t owner_type, owner;
	bool anon;			/* a hole reads as zeros */
	uint64_t run_start, run_end;	/* pending run of differences */
	unsigned char *buf;
	uint8_t kinds[CHUNK];
	uint8_t *bkinds;	/* KCHUNK */
	/* the frozen threads' rseq areas: [start, end) each, unsorted */
	uint64_t (*rseq)[2];
	size_t nrseq;
};

static int cfail(struct cmp *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int cfail(struct cmp *c, int err, const char *fmt, ...)
{
	va_list ap;

	if (c->err && c->errlen && !c->err[0]) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return err;
}

static int flush(struct cmp *c)
{
	int r = 0;

	if (c->run_end > c->run_start && c->fn)
		r = c->fn(c->owner_type, c->owner, c->run_start, c->run_end, c->ctx);
	c->run_start = c->run_end = 0;
	return r;
}

/* Pages [start, end) (addresses or offsets) of the current owner differ. */
static int differ(struct cmp *c, uint64_t start, uint64_t end)
{
	int r = 0;

	c->diff += (int64_t)((end - start) / P);
	if (c->run_end != start)
		r = flush(c);
	if (c->run_end != start)
		c->run_start = start;
	c->run_end = end;
	return r;
}

/* What a page holds, for comparing: 0 zeros, 1 data, 2 hole (file), 3 unreadable. */
static int cls(const struct cmp *c, uint32_t kind)
{
	switch (kind) {
	case PT_PAGE_DATA: return 1;
	case PT_PAGE_ZERO: return 0;
	case PT_PAGE_HOLE: return c->anon ? 0 : 2;
	default: return 3;
	}
}

static int img_read(struct cmp *c, uint64_t at, uint64_t n, void *buf, uint8_t *kinds)
{
	char e[256] = "";
	int err = c->owner_type == PT_OWNER_AREA
			  ? pt_image_read(c->img, at, n, buf, kinds, e, sizeof(e))
			  : pt_image_read_object(c->img, c->owner, at / P, n, buf, kinds, e, sizeof(e));

	return err ? cfail(c, err, "%s", e[0] ? e : strerror(-err)) : 0;
}

/*
 * The process's pages hold no data (hole, zero, unreadable): compare
 * kinds only, in big steps (a sanitizer's shadow is terabytes of holes);
 * an image page with data is read to see whether it is zeros.
 */
static int nodata_piece(struct cmp *c, const struct pt_copy_piece *pc)
{
	int b = cls(c, pc->kind), err;

	for (uint64_t done = 0; done < pc->npages;) {
		uint64_t n = pc->npages - done < KCHUNK ? pc->npages - done : KCHUNK;
		uint64_t at = pc->addr + done * P;

		if ((err = img_read(c, at, n, NULL, c->bkinds)))
			return err;
		for (uint64_t i = 0; i < n; i++) {
			int a = cls(c, c->bkinds[i]);
			bool same = a == b;

			if (!same && a == 1 && b == 0) {
				if ((err = img_read(c, at + i * P, 1, c->buf, c->kinds)))
					return err;
				same = !memcmp(c->buf, zeros, P);
			}
			if (!same && (err = differ(c, at + i * P, at + (i + 1) * P)))
				return err;
		}
		done += n;
	}
	return 0;
}

/* Does the page at @addr differ from @b only inside the threads' rseq areas? */
static bool rseq_only(const struct cmp *c, uint64_t addr, const unsigned char *a,
		      const unsigned char *b)
{
	unsigned char x[P], y[P];
	bool any = false;

	for (size_t k = 0; k < c->nrseq; k++) {
		uint64_t s = c->rseq[k][0] > addr ? c->rseq[k][0] : addr;
		uint64_t e = c->rseq[k][1] < addr + P ? c->rseq[k][1] : addr + P;

		if (s >= e)
			continue;
		if (!any) {
			memcpy(x, a, P);
			memcpy(y, b, P);
			any = true;
		}
		memset(x + (s - addr), 0, e - s);
		memset(y + (s - addr), 0, e - s);
	}
	return any && !memcmp(x, y, P);
}

/*
 * The rseq areas of @pid's threads, all ptrace-stopped by this process
 * (the freeze).  Best effort: a kernel before 5.13 or a thread without
 * rseq adds nothing, and then such a page is compared whole.
 */
static void rseq_areas(struct cmp *c, pid_t pid)
{
	char path[64];
	struct dirent *d;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	while (dir && (d = readdir(dir))) {
		struct pt_rseq_conf conf = { 0 };
		pid_t tid = (pid_t)atoi(d->d_name);
		uint64_t(*nr)[2];

		if (tid <= 0 ||
		    ptrace((enum __ptrace_request)PTRACE_GET_RSEQ_CONFIGURATION, tid,
			   (void *)sizeof(conf), &conf) < (long)offsetof(struct pt_rseq_conf, signature) ||
		    !conf.rseq_abi_pointer || !conf.rseq_abi_size || conf.rseq_abi_size > MAX_RSEQ_SIZE)
			continue;
		nr = realloc(c->rseq, (c->nrseq + 1) * sizeof(*c->rseq));
		if (!nr)
			break;
		c->rseq = nr;
		c->rseq[c->nrseq][0] = conf.rseq_abi_pointer;
		c->rseq[c->nrseq][1] = conf.rseq_abi_pointer + conf.rseq_abi_size;
		c->nrseq++;
	}
	if (dir)
		closedir(dir);
}

static int on_piece(const struct pt_copy_piece *pc, void *ctx)
{
	struct cmp *c = ctx;
	const unsigned char *data = pc->data;

	if (pc->kind != PT_PAGE_DATA)
		return nodata_piece(c, pc);

	for (uint64_t done = 0; done < pc->npages;) {
		uint64_t n = pc->npages - done < CHUNK ? pc->npages - done : CHUNK;
		uint64_t at = pc->addr + done * P;
		char e[256] = "";
		int err = c->owner_type == PT_OWNER_AREA
				  ? pt_image_read(c->img, at, n, c->buf, c->kinds, e, sizeof(e))
				  : pt_image_read_object(c->img, c->owner, at / P, n, c->buf, c->kinds,
							 e, sizeof(e));
		if (err)
			return cfail(c, err, "%s", e[0] ? e : strerror(-err));
		for (uint64_t i = 0; i < n; i++) {
			int a = cls(c, c->kinds[i]), b = cls(c, pc->kind);
			bool same = a == b;

			if (same && a == 1) {
				same = !memcmp(c->buf + i * P, data + (done + i) * P, P);
				if (!same && c->owner_type == PT_OWNER_AREA)
					same = rseq_only(c, at + i * P, c->buf + i * P,
							 data + (done + i) * P);
			}
			else if (!same && (a | b) == 1)	/* zeros against data: compare bytes */
				same = a == 1 ? !memcmp(c->buf + i * P, zeros, P)
					      : !memcmp(data + (done + i) * P, zeros, P);
			if (!same && (err = differ(c, at + i * P, at + (i + 1) * P)))
				return err;
		}
		done += n;
	}
	return 0;
}

static bool is_kernel_area(const struct pt_vma *v)
{
	return v->kind == PT_VMA_SPECIAL && (!strcmp(v->path, "[vdso]") ||
					     !strcmp(v->path, "[vvar]") ||
					     !strcmp(v->path, "[vvar_vclock]") ||
					     !strcmp(v->path, "[vsyscall]"));
}

/* Image strings are not NUL-terminated. */
static bool path_is(const struct pt_image_area *a, const char *s)
{
	return a->path_len == strlen(s) && !memcmp(a->path, s, a->path_len);
}

static bool img_private(const struct pt_image_area *a)
{
	return !((a->prot & PT_MAP_SHARED) && a->object != PT_IMAGE_NO_OBJECT);
}

static int compare_areas(struct cmp *c, const struct pt_vma *v, size_t nv)
{
	const struct pt_image_area *a;
	size_t na, j = 0;
	int err;

	pt_image_areas(c->img, &a, &na);
	for (size_t i = 0; i < na; i++) {
		if (!img_private(&a[i]) || (a[i].kind == PT_VMA_SPECIAL &&
					    (path_is(&a[i], "[vdso]") || path_is(&a[i], "[vvar]") ||
					     path_is(&a[i], "[vvar_vclock]") ||
					     path_is(&a[i], "[vsyscall]"))))
			continue;
		c->owner_type = PT_OWNER_AREA;
		c->owner = (uint32_t)i;
		c->anon = a[i].object == PT_IMAGE_NO_OBJECT;
		uint64_t cur = a[i].start;

		while (j < nv && v[j].end <= cur)
			j++;
		for (size_t k = j; cur < a[i].end; k++) {
			if (k >= nv || v[k].start >= a[i].end) {
				err = differ(c, cur, a[i].end);	/* not mapped any more */
				if (err)
					return err;
				break;
			}
			if (v[k].start > cur && (err = differ(c, cur, v[k].start)))
				return err;
			uint64_t s = v[k].start > cur ? v[k].start : cur;
			uint64_t e = v[k].end < a[i].end ? v[k].end : a[i].end;

			if (pt_vma_is_object(&v[k]))
				err = differ(c, s, e);	/* shared now, private in the image */
			else
				err = pt_copy_area(c->cp, &v[k], s, e, on_piece, c);
			if (err)
				return err < 0 && !c->err[0] ? cfail(c, err, "reading 0x%llx-0x%llx: %s",
								    (unsigned long long)s,
								    (unsigned long long)e,
								    strerror(-err))
							  : err;
			cur = e;
		}
		if ((err = flush(c)))
			return err;
	}
	/* what the process maps privately and the image does not have */
	c->owner_type = PT_OWNER_AREA;
	size_t first = 0;	/* both sorted: one walk */

	for (size_t k = 0; k < nv; k++) {
		if (pt_vma_is_object(&v[k]) || is_kernel_area(&v[k]))
			continue;
		uint64_t cur = v[k].start;

		while (first < na && a[first].end <= cur)
			first++;
		for (size_t i = first; i < na && cur < v[k].end; i++) {
			if (a[i].end <= cur || !img_private(&a[i]))
				continue;
			if (a[i].start >= v[k].end)
				break;
			if (a[i].start > cur && (err = differ(c, cur, a[i].start)))
				return err;
			cur = a[i].end;
		}
		if (cur < v[k].end && (err = differ(c, cur, v[k].end)))
			return err;
	}
	return flush(c);
}

static int compare_objects(struct cmp *c, const struct pt_vma *v, size_t nv)
{
	const struct pt_image_object *o;
	size_t no;
	int err;

	pt_image_objects(c->img, &o, &no);
	for (size_t i = 0; i < no; i++) {
		if (!(o[i].flags & PT_OBJECT_STORED))
			continue;
		uint64_t end = (o[i].size + P - 1) / P * P;
		size_t k;

		c->owner_type = PT_OWNER_OBJECT;
		c->owner = (uint32_t)i;
		c->anon = false;
		for (k = 0; k < nv; k++)
			if (pt_vma_is_object(&v[k]) && v[k].inode == o[i].inode &&
			    v[k].dev_major == o[i].dev_major && v[k].dev_minor == o[i].dev_minor)
				break;
		if (k == nv) {
			err = differ(c, 0, end);	/* the process does not map it any more */
		} else {
			int64_t sz = pt_copy_object_size(c->cp, &v[k]);

			if (sz < 0)
				return cfail(c, (int)sz, "%s: %s", v[k].path, strerror((int)-sz));
			uint64_t now = ((uint64_t)sz + P - 1) / P * P;

			err = pt_copy_object(c->cp, &v[k], 0, now < end ? now : end, on_piece, c);
			if (!err && now != end)	/* resized */
				err = differ(c, now < end ? now : end, now < end ? end : now);
		}
		if (!err)
			err = flush(c);
		if (err)
			return err;
	}
	return 0;
}

int64_t pt_image_compare(struct pt_image *img, pid_t pid, diff_fn fn, void *ctx, char *err,
			 size_t errlen)
{
	struct cmp c = { .img = img, .fn = fn, .ctx = ctx, .err = err, .errlen = errlen };
	struct pt_target *t = NULL;
	struct pt_vma *v = NULL;
	size_t nv = 0;
	struct pt_freeze fz;
	int r;

	if (err && errlen)
		err[0] = 0;
	if (!img || pid <= 0)
		return cfail(&c, -EINVAL, "invalid arguments");
	c.buf = malloc(CHUNK * P);
	c.bkinds = malloc(KCHUNK);
	c.cp = pt_copier_create(pid, NULL);
	if (!c.buf || !c.bkinds || !c.cp) {
		r = c.cp ? -ENOMEM : -errno;
		free(c.buf);
		free(c.bkinds);
		pt_copier_free(c.cp);
		return cfail(&c, r, "process %d: %s", (int)pid, strerror(-r));
	}
	t = pt_target_create(pid, NULL);
	r = t ? pt__freeze(pid, &fz) : -errno;
	if (r) {
		cfail(&c, r, "freezing %d: %s", (int)pid,
		      r == -EBUSY ? "it is traced by another process" : strerror(-r));
	} else {
		rseq_areas(&c, pid);
		r = pt_vmas_read(t, &v, &nv);
		if (r)
			cfail(&c, r, "reading the layout of %d: %s", (int)pid, strerror(-r));
		if (!r)
			r = compare_areas(&c, v, nv);
		if (!r)
			r = compare_objects(&c, v, nv);
		pt__thaw(&fz);
	}
	pt_vmas_free(v);
	pt_target_free(t);
	pt_copier_free(c.cp);
	free(c.buf);
	free(c.bkinds);
	free(c.rseq);
	if (r > 0)
		return cfail(&c, -ECANCELED, "stopped by the caller");
	return r ? r : c.diff;
}
