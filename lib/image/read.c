// SPDX-License-Identifier: MIT
/*
 * Using an open image layer (doc/image-format.md): INDEX chunks and
 * frames read and checked on use (validation step 7, at most one of each
 * cached), the parent chain opened lazily and checked ("Chains"), pages
 * resolved through it, runs listed, full verification (step 8).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZSTD_STATIC_LINKING_ONLY	/* ZSTD_getFrameHeader, ZSTD_d_windowLogMax */
#include <xxhash.h>
#include <zstd.h>

#include "image/reader.h"

/* ---- step 7: chunks and frames on use ---- */

static int load_chunk(struct pt_image *img, size_t ci, const unsigned char **out, char *err,
		      size_t errlen)
{
	const struct ichunk *c = &img->chunks[ci];
	int r;

	if (img->cached_chunk != (long)ci) {
		img->cached_chunk = -1;
		if (img->cbuf_cap < c->len) {
			unsigned char *p = realloc(img->cbuf, c->len);

			if (!p)
				return -ENOMEM;
			img->cbuf = p;
			img->cbuf_cap = c->len;
		}
		if ((r = pt__img_rd(img, c->off, img->cbuf, c->len, err, errlen)))
			return r;
		if (XXH3_64bits(img->cbuf, c->len) != c->sum)
			return pt__img_bad(img, err, errlen, E_SUM, c->off - 8,
				   "INDEX chunk checksum (the file changed)");
		img->cached_chunk = (long)ci;
	}
	*out = img->cbuf;
	return 0;
}

/* Read, check and decompress frame @fi into img->fbuf. */
static int load_frame(struct pt_image *img, uint32_t fi, char *err, size_t errlen)
{
	const struct iframe *f = &img->frames[fi];
	size_t ulen = (size_t)f->pages * img->page_size, plen = img_align8(f->clen), n;
	unsigned char *z;
	ZSTD_frameHeader zh;
	int r;

	if (img->cached_frame == (long)fi)
		return 0;
	img->cached_frame = -1;
	if (img->zbuf_cap < plen) {
		z = realloc(img->zbuf, plen);
		if (!z)
			return -ENOMEM;
		img->zbuf = z;
		img->zbuf_cap = plen;
	}
	z = img->zbuf;
	if (img->fbuf_cap < ulen) {	/* the largest frame so far (writer default 1 MiB) */
		free(img->fbuf);
		img->fbuf_cap = 0;
		if (!(img->fbuf = malloc(ulen)))
			return -ENOMEM;
		img->fbuf_cap = ulen;
	}
	if (!img->dctx) {
		img->dctx = ZSTD_createDCtx();
		if (!img->dctx ||
		    ZSTD_isError(ZSTD_DCtx_setParameter(img->dctx, ZSTD_d_windowLogMax,
							 IMG_WINDOW_LOG_MAX)))
			return -ENOMEM;
	}
	if ((r = pt__img_rd(img, f->off + IMG_SEC_HDR, z, plen, err, errlen)))
		return r;
	if (XXH3_64bits(z, f->clen) != f->sum)
		return pt__img_bad(img, err, errlen, E_SUM, f->off + 24, "frame %u checksum", fi);
	if (!img_zero(z + f->clen, plen - f->clen))
		return pt__img_bad(img, err, errlen, E_INVAL, f->off + IMG_SEC_HDR + f->clen,
			   "non-zero frame padding");
	if (ZSTD_getFrameHeader(&zh, z, f->clen) != 0 || zh.frameType != ZSTD_frame ||
	    zh.frameContentSize != ulen || zh.dictID || zh.checksumFlag ||
	    ZSTD_findFrameCompressedSize(z, f->clen) != f->clen)
		return pt__img_bad(img, err, errlen, E_INVAL, f->off + IMG_SEC_HDR,
			   "frame %u is not one zstd frame of %zu bytes", fi, ulen);
	n = ZSTD_decompressDCtx(img->dctx, img->fbuf, ulen, z, f->clen);
	if (ZSTD_isError(n) || n != ulen)
		return pt__img_bad(img, err, errlen, E_INVAL, f->off + IMG_SEC_HDR,
			   "frame %u does not decompress: %s", fi,
			   ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short");
	if (XXH3_64bits(img->fbuf, ulen) != f->usum)
		return pt__img_bad(img, err, errlen, E_SUM, f->off + IMG_SEC_HDR,
			   "frame %u content checksum", fi);
	img->cached_frame = (long)fi;
	return 0;
}

static int key_cmp(uint32_t ot, uint32_t ow, uint64_t pg, uint32_t ot2, uint32_t ow2, uint64_t pg2)
{
	if (ot != ot2)
		return ot < ot2 ? -1 : 1;
	if (ow != ow2)
		return ow < ow2 ? -1 : 1;
	if (pg != pg2)
		return pg < pg2 ? -1 : 1;
	return 0;
}

/* The run of (@ot, @owner) that holds @page. */
static int find_run(struct pt_image *img, uint32_t ot, uint32_t owner, uint64_t page,
		    struct irun *out, char *err, size_t errlen)
{
	const struct ichunk *c;
	const unsigned char *p;
	size_t lo = 0, hi = img->nchunks;
	int r;

	while (hi - lo > 1) {	/* last chunk whose first run is <= the key */
		size_t mid = lo + (hi - lo) / 2;

		c = &img->chunks[mid];
		if (key_cmp(c->first_ot, c->first_owner, c->first_page, ot, owner, page) <= 0)
			lo = mid;
		else
			hi = mid;
	}
	if (!img->nchunks)
		return pt__img_bad(img, err, errlen, E_INVAL, img->diroff, "no runs");
	if ((r = load_chunk(img, lo, &p, err, errlen)))
		return r;
	c = &img->chunks[lo];
	{
		size_t a = 0, b = c->count;

		while (b - a > 1) {
			size_t mid = a + (b - a) / 2;
			const unsigned char *e = p + mid * c->esize;

			if (key_cmp(e[0], img_get32(e + 4), img_get64(e + 8), ot, owner, page) <= 0)
				a = mid;
			else
				b = mid;
		}
		get_run(p + a * c->esize, out);
	}
	if (out->ot != ot || out->owner != owner || page < out->page ||
	    page - out->page >= out->npages)
		return pt__img_bad(img, err, errlen, E_INVAL, c->off, "no run holds page %llu of owner %u/%u",
			   (unsigned long long)page, ot, owner);
	return 0;
}

/* ---- chains ---- */

int pt_image_parent(struct pt_image *img, struct pt_image **parent, char *err, size_t errlen)
{
	struct pt_image *p = NULL;
	char *path = NULL;
	const char *slash;
	int r;

	if (!img || !parent)
		return -EINVAL;
	*parent = NULL;
	if (img->parent) {
		*parent = img->parent;
		return 0;
	}
	if (!(img->hflags & IMG_HF_HAS_PARENT))
		return pt__img_bad(img, err, errlen, -ENOENT, 30, "a base layer has no parent");
	slash = strrchr(img->path, '/');
	if (img->parent_path[0] == '/' || !slash)
		path = strdup(img->parent_path);
	else if (asprintf(&path, "%.*s/%s", (int)(slash - img->path), img->path,
			  img->parent_path) < 0)
		path = NULL;
	if (!path)
		return -ENOMEM;
	r = pt_image_open(path, &p, err, errlen);
	if (r) {
		/* missing: ENOENT; not a valid layer (or not a file at all): ESTALE;
		 * resources and permissions as they are */
		if (r == -ENOTDIR)
			r = -ENOENT;
		else if (r != -ENOENT && r != -ENOMEM && r != -EMFILE && r != -ENFILE &&
			 r != -EACCES && r != -EPERM && r != -EIO)
			r = -ESTALE;
		if (err && errlen && !*err)
			snprintf(err, errlen, "%s: parent %s: %s", img->path, path, strerror(-r));
		free(path);
		return r;
	}
	free(path);
	if (memcmp(p->layer_id, img->parent_layer_id, 16))
		r = pt__img_bad(img, err, errlen, -ESTALE, 80, "parent %s is another layer (layer_id)", p->path);
	else if (p->file_checksum != img->parent_checksum)
		r = pt__img_bad(img, err, errlen, -ESTALE, 96, "parent %s changed (file checksum)", p->path);
	else if (p->page_size != img->page_size || p->machine != img->machine)
		r = pt__img_bad(img, err, errlen, -ESTALE, 20, "parent %s of another page size or machine",
			p->path);
	else if (p->seq + 1 != img->seq)
		r = pt__img_bad(img, err, errlen, -ESTALE, 40, "parent %s has seq %llu, not %llu", p->path,
			(unsigned long long)p->seq, (unsigned long long)img->seq - 1);
	else if ((img->fflags & IMG_FF_ANY_TRACKED) &&
		 (p->pid != img->pid || memcmp(p->boot_id, img->boot_id, 16)))
		r = pt__img_bad(img, err, errlen, -ESTALE, 24,
			"parent %s of another process or boot, and the delta is TRACKED", p->path);
	if (r) {
		pt_image_close(p);
		return r;
	}
	img->parent = p;
	*parent = p;
	return 0;
}

static int resolve_addr(struct pt_image *img, uint64_t addr, uint64_t n, unsigned char *buf,
			uint8_t *kinds, char *err, size_t errlen);

static long find_area(const struct pt_image *img, uint64_t addr)
{
	size_t lo = 0, hi = img->na;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (img->areas[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < img->na && img->areas[lo].start <= addr)
		return (long)lo;
	return -1;
}

static void fill(unsigned char *buf, uint8_t *kinds, uint64_t n, size_t ps, uint32_t kind)
{
	if (buf)
		memset(buf, 0, n * ps);
	if (kinds)
		memset(kinds, (int)kind, n);
}

/* Pages [@page, @page + @n) of an owner that takes runs, resolved through the chain. */
static int resolve_owner(struct pt_image *img, uint32_t ot, uint32_t owner, uint64_t page,
			 uint64_t n, unsigned char *buf, uint8_t *kinds, char *err, size_t errlen)
{
	size_t ps = img->page_size;
	int r;

	while (n) {
		struct irun rn = { 0 };
		uint64_t k;

		if ((r = find_run(img, ot, owner, page, &rn, err, errlen)))
			return r;
		k = rn.page + rn.npages - page;
		if (k > n)
			k = n;
		if (rn.kind == PT_PAGE_DATA) {
			if (buf && (r = load_frame(img, rn.frame, err, errlen)))
				return r;
			if (buf)
				memcpy(buf, img->fbuf + (rn.fpage + (page - rn.page)) * ps, k * ps);
			if (kinds)
				memset(kinds, PT_PAGE_DATA, k);
		} else if (rn.kind != PT_PAGE_UNCHANGED) {
			fill(buf, kinds, k, ps, rn.kind);
		} else {
			struct pt_image *p;

			if ((r = pt_image_parent(img, &p, err, errlen)))
				return r;
			if (ot == PT_OWNER_AREA) {
				r = resolve_addr(p, img->areas[owner].start + page * ps, k, buf, kinds,
						 err, errlen);
			} else {
				const struct pt_image_object *o = &img->objs[owner];
				size_t j;

				for (j = 0; j < p->no; j++)
					if (!obj_cmp(&p->objs[j], o))
						break;
				if (j == p->no || !(p->objs[j].flags & PT_OBJECT_STORED) ||
				    page + k > owner_pages(p, p->na + j))
					r = pt__img_bad(p, err, errlen, -ESTALE, 0,
						"no stored object %u:%u inode %llu for the child's UNCHANGED pages",
						o->dev_major, o->dev_minor, (unsigned long long)o->inode);
				else
					r = resolve_owner(p, PT_OWNER_OBJECT, (uint32_t)j, page, k, buf,
							  kinds, err, errlen);
			}
			if (r)
				return r;
		}
		if (buf)
			buf += k * ps;
		if (kinds)
			kinds += k;
		page += k;
		n -= k;
	}
	return 0;
}

/* A parent's pages at @addr: each in the private area of @img holding it. */
static int resolve_addr(struct pt_image *img, uint64_t addr, uint64_t n, unsigned char *buf,
			uint8_t *kinds, char *err, size_t errlen)
{
	size_t ps = img->page_size;
	int r;

	while (n) {
		long ai = find_area(img, addr);
		const struct pt_image_area *a;
		uint64_t k;

		if (ai < 0 || area_shared(&img->areas[ai]))
			return pt__img_bad(img, err, errlen, -ESTALE, 0,
				   "no private area at 0x%llx for the child's UNCHANGED pages",
				   (unsigned long long)addr);
		a = &img->areas[ai];
		k = (a->end - addr) / ps;
		if (k > n)
			k = n;
		if ((r = resolve_owner(img, PT_OWNER_AREA, (uint32_t)ai, (addr - a->start) / ps, k,
				       buf, kinds, err, errlen)))
			return r;
		if (buf)
			buf += k * ps;
		if (kinds)
			kinds += k;
		addr += k * ps;
		n -= k;
	}
	return 0;
}

int pt_image_read_object(struct pt_image *img, uint32_t obj, uint64_t page, size_t npages,
			 void *buf, uint8_t *kinds, char *err, size_t errlen)
{
	uint64_t pages;

	if (err && errlen)
		*err = 0;
	if (!img || (npages && !buf && !kinds) || npages > SIZE_MAX / PT_PAGE_SIZE)
		return -EINVAL;
	if (obj >= img->no)
		return pt__img_bad(img, err, errlen, -ENOENT, 0, "no object %u", obj);
	if (!(img->objs[obj].flags & PT_OBJECT_STORED))
		return pt__img_bad(img, err, errlen, -ENOENT, 0, "object %u is not stored", obj);
	pages = owner_pages(img, img->na + obj);
	if (page > pages || npages > pages - page)
		return pt__img_bad(img, err, errlen, -EINVAL, 0, "pages beyond object %u's end", obj);
	return resolve_owner(img, PT_OWNER_OBJECT, obj, page, npages, buf, kinds, err, errlen);
}

int pt_image_read(struct pt_image *img, uint64_t addr, size_t npages, void *buf, uint8_t *kinds,
		  char *err, size_t errlen)
{
	const struct pt_image_area *a;
	const struct pt_image_object *o;
	uint64_t opage, opages, k;
	long ai;
	int r;

	if (err && errlen)
		*err = 0;
	if (!img || (npages && !buf && !kinds) || addr % PT_PAGE_SIZE || npages > SIZE_MAX / PT_PAGE_SIZE)
		return -EINVAL;
	if (!npages)
		return 0;
	ai = find_area(img, addr);
	if (ai < 0)
		return pt__img_bad(img, err, errlen, -ENOENT, 0, "no area at 0x%llx",
			   (unsigned long long)addr);
	a = &img->areas[ai];
	if (npages > (a->end - addr) / img->page_size)
		return pt__img_bad(img, err, errlen, -EINVAL, 0, "0x%llx + %zu pages crosses the end of its area",
			   (unsigned long long)addr, npages);
	if (!area_shared(a))
		return resolve_owner(img, PT_OWNER_AREA, (uint32_t)ai, (addr - a->start) / img->page_size,
				     npages, buf, kinds, err, errlen);
	o = &img->objs[a->object];
	opage = a->offset / img->page_size + (addr - a->start) / img->page_size;
	if (!(o->flags & PT_OBJECT_STORED)) {
		/* the content is the file's (HOLE), or was not captured (a device) */
		fill(buf, kinds, npages, img->page_size,
		     o->kind == PT_VMA_SPECIAL ? PT_PAGE_UNREADABLE : PT_PAGE_HOLE);
		return 0;
	}
	opages = owner_pages(img, img->na + a->object);
	k = opage < opages ? opages - opage : 0;
	if (k > npages)
		k = npages;
	if (k && (r = resolve_owner(img, PT_OWNER_OBJECT, a->object, opage, k, buf, kinds, err,
				    errlen)))
		return r;
	/* beyond the object's end: a shared mapping there faults */
	if (k < npages)
		fill(buf ? (unsigned char *)buf + k * img->page_size : NULL, kinds ? kinds + k : NULL, npages - k,
		     img->page_size, PT_PAGE_UNREADABLE);
	return 0;
}

int pt_image_runs(struct pt_image *img, int (*fn)(const struct pt_image_run *r, void *ctx),
		  void *ctx)
{
	int r;

	if (!img || !fn)
		return -EINVAL;
	for (size_t ci = 0; ci < img->nchunks; ci++) {
		const unsigned char *p;

		if ((r = load_chunk(img, ci, &p, NULL, 0)))
			return r;
		for (uint32_t j = 0; j < img->chunks[ci].count; j++) {
			struct irun rn;
			struct pt_image_run out;

			get_run(p + (size_t)j * img->chunks[ci].esize, &rn);
			out = (struct pt_image_run){ .owner_type = rn.ot, .owner = rn.owner,
						     .page = rn.page, .npages = rn.npages,
						     .kind = rn.kind, .detail = rn.detail };
			if ((r = fn(&out, ctx)))
				return r;
			/* the callback may have read pages: the chunk is reloaded if so */
			if ((r = load_chunk(img, ci, &p, NULL, 0)))
				return r;
		}
	}
	return 0;
}

/* ---- step 8 ---- */

static int verify_one(struct pt_image *img, char *err, size_t errlen)
{
	size_t bl = 1 << 20;
	unsigned char *b = malloc(bl);
	XXH3_state_t *xs = XXH3_createState();
	uint64_t off = 0, end = img->size - 16;
	int r = 0;

	if (!b || !xs) {
		r = -ENOMEM;
		goto out;
	}
	XXH3_64bits_reset(xs);
	while (off < end) {
		size_t n = end - off < bl ? (size_t)(end - off) : bl;

		if ((r = pt__img_rd(img, off, b, n, err, errlen)))
			goto out;
		XXH3_64bits_update(xs, b, n);
		off += n;
	}
	if (XXH3_64bits_digest(xs) != img->file_checksum) {
		r = pt__img_bad(img, err, errlen, E_SUM, img->size - 16, "file checksum");
		goto out;
	}
	img->cached_frame = -1;
	for (uint32_t i = 0; i < img->frame_count; i++) {
		img->cached_frame = -1;
		if ((r = load_frame(img, i, err, errlen)))
			goto out;
	}
	img->verified = true;
out:
	XXH3_freeState(xs);
	free(b);
	return r;
}

int pt_image_verify(struct pt_image *img, char *err, size_t errlen)
{
	int r;

	if (err && errlen)
		*err = 0;
	if (!img)
		return -EINVAL;
	while (img) {
		struct pt_image *p;

		if ((r = verify_one(img, err, errlen)))
			return r;
		if (!(img->hflags & IMG_HF_HAS_PARENT))
			break;
		if ((r = pt_image_parent(img, &p, err, errlen)))
			return r;
		img = p;
	}
	return 0;
}

const char *pt_page_kind_name(enum pt_page_kind k)
{
	switch (k) {
	case PT_PAGE_DATA: return "data";
	case PT_PAGE_ZERO: return "zero";
	case PT_PAGE_HOLE: return "hole";
	case PT_PAGE_UNCHANGED: return "unchanged";
	case PT_PAGE_UNREADABLE: return "unreadable";
	}
	return "unknown";
}

const char *pt_image_delta_name(enum pt_image_delta d)
{
	switch (d) {
	case PT_DELTA_FULL: return "full";
	case PT_DELTA_TRACKED: return "tracked";
	case PT_DELTA_COMPARED: return "compared";
	}
	return "unknown";
}

