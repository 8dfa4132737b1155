// SPDX-License-Identifier: MIT
/*
 * The image reader (doc/image-format.md, "Validation").
 *
 * pt_image_open() does steps 1-6: header, footer, directory, every
 * metadata section (checksum before parsing), the frame table against
 * each frame's section header, the tiling of the file, and the index in
 * one pass with O(1) state.  Frames are checked when read (step 7),
 * the whole file in pt_image_verify() (step 8).
 *
 * Memory: the layout (strings, areas, objects), the frame table and one
 * key per INDEX chunk, all bounded by the file's size; at most one INDEX
 * chunk and one decompressed frame cached per layer.  Every allocation
 * is bounded by the file's size or a cap of the format; every sum of
 * file-controlled values is checked for overflow before use.
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

int pt__img_bad(const struct pt_image *img, char *err, size_t errlen, int e, uint64_t off,
	       const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || !errlen)
		return e;
	n = snprintf(err, errlen, "%s: offset %llu: ", img->path, (unsigned long long)off);
	if (n < 0 || (size_t)n >= errlen)
		return e;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return e;
}

int pt__img_rd(const struct pt_image *img, uint64_t off, void *buf, size_t len, char *err,
	      size_t errlen)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(img->fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;

			return pt__img_bad(img, err, errlen, e, off + done, "read: %s", strerror(-e));
		}
		if (n == 0)
			return pt__img_bad(img, err, errlen, E_TRUNC, off + done, "file shorter than read");
		done += (size_t)n;
	}
	return 0;
}

/* ---- steps 1-3: header and footer ---- */

static int parse_header(struct pt_image *img, char *err, size_t errlen)
{
	unsigned char h[IMG_HDR_MAX];
	uint32_t ppl;
	int r;

	if ((r = pt__img_rd(img, 0, h, IMG_HDR_FIXED, err, errlen)))
		return r;
	if (memcmp(h, IMG_MAGIC, 8))
		return pt__img_bad(img, err, errlen, E_INVAL, 0, "not a pagetrack image (magic)");
	if (img_get16(h + 8) != IMG_VERSION_MAJOR)
		return pt__img_bad(img, err, errlen, E_UNSUP, 8, "version %u.%u", img_get16(h + 8),
			   img_get16(h + 10));
	img->minor = img_get16(h + 10);
	img->hsize = img_get32(h + 12);
	if (img->hsize < IMG_HDR_FIXED || img->hsize > IMG_HDR_MAX || img->hsize % 8 ||
	    img->hsize + (uint64_t)IMG_SEC_HDR + IMG_FOOTER > img->size)
		return pt__img_bad(img, err, errlen, E_INVAL, 12, "header_size %u out of bounds",
			   img->hsize);
	if (img->hsize > IMG_HDR_FIXED &&
	    (r = pt__img_rd(img, IMG_HDR_FIXED, h + IMG_HDR_FIXED, img->hsize - IMG_HDR_FIXED, err,
			    errlen)))
		return r;
	if (XXH3_64bits(h, img->hsize - 8) != img_get64(h + img->hsize - 8))
		return pt__img_bad(img, err, errlen, E_SUM, img->hsize - 8, "header checksum");
	img->hflags = img_get32(h + 16);
	if (img->hflags & IMG_HF_MUST & ~IMG_HF_KNOWN)
		return pt__img_bad(img, err, errlen, E_UNSUP, 16, "unknown header flags 0x%x",
			   img->hflags);
	img->page_size = img_get32(h + 20);
	if (img->page_size < 4096 || img->page_size > 65536 ||
	    (img->page_size & (img->page_size - 1)))
		return pt__img_bad(img, err, errlen, E_INVAL, 20, "page size %u", img->page_size);
	if (img->page_size != PT_PAGE_SIZE)
		return pt__img_bad(img, err, errlen, E_UNSUP, 20, "page size %u", img->page_size);
	img->pid = (int32_t)img_get32(h + 24);
	if (img->pid <= 0)
		return pt__img_bad(img, err, errlen, E_INVAL, 24, "pid %d", img->pid);
	img->machine = img_get16(h + 28);
	ppl = img_get16(h + 30);
	if (ppl > IMG_PATH_MAX || img->hsize != IMG_HDR_FIXED + img_align8(ppl))
		return pt__img_bad(img, err, errlen, E_INVAL, 30, "parent_path_len %u", ppl);
	if (((img->hflags & IMG_HF_HAS_PARENT) != 0) != (ppl != 0))
		return pt__img_bad(img, err, errlen, E_INVAL, 16, "HAS_PARENT flag and parent path disagree");
	if (((img->hflags & IMG_HF_FROZEN) != 0) == ((img->hflags & IMG_HF_LIVE) != 0))
		return pt__img_bad(img, err, errlen, E_INVAL, 16, "not exactly one of FROZEN and LIVE");
	img->ctime_ns = img_get64(h + 32);
	img->seq = img_get64(h + 40);
	if (img->seq > IMG_SEQ_MAX || (img->seq == 0) != (ppl == 0))
		return pt__img_bad(img, err, errlen, E_INVAL, 40, "seq %llu", (unsigned long long)img->seq);
	memcpy(img->boot_id, h + 48, 16);
	memcpy(img->layer_id, h + 64, 16);
	if (img_zero(img->layer_id, 16))
		return pt__img_bad(img, err, errlen, E_INVAL, 64, "layer_id all zero");
	memcpy(img->parent_layer_id, h + 80, 16);
	img->parent_checksum = img_get64(h + 96);
	if (img_zero(img->parent_layer_id, 16) != (ppl == 0) ||
	    (img->parent_checksum == 0) != (ppl == 0))
		return pt__img_bad(img, err, errlen, E_INVAL, 80, "parent link fields and parent path disagree");
	memcpy(img->comm, h + 104, 16);
	if (img->comm[15])
		return pt__img_bad(img, err, errlen, E_INVAL, 104, "comm not terminated");
	if (memchr(h + 120, 0, ppl))
		return pt__img_bad(img, err, errlen, E_INVAL, 120, "NUL byte in the parent path");
	if (!img_zero(h + 120 + ppl, img->hsize - 8 - 120 - ppl))
		return pt__img_bad(img, err, errlen, E_INVAL, 120 + ppl, "non-zero header padding");
	img->parent_path = malloc(ppl + 1);
	if (!img->parent_path)
		return -ENOMEM;
	memcpy(img->parent_path, h + 120, ppl);
	img->parent_path[ppl] = 0;
	return 0;
}

static int parse_footer(struct pt_image *img, char *err, size_t errlen)
{
	unsigned char f[IMG_FOOTER];
	uint64_t fo = img->size - IMG_FOOTER, fsz;
	int r;

	if ((r = pt__img_rd(img, fo, f, sizeof(f), err, errlen)))
		return r;
	if (XXH3_64bits(f, 40) != img_get64(f + 40))
		return pt__img_bad(img, err, errlen, E_SUM, fo + 40, "footer checksum");
	fsz = img_get64(f + 8);
	if (fsz > img->size)
		return pt__img_bad(img, err, errlen, E_TRUNC, fo + 8,
			   "file of %llu bytes, the footer says %llu",
			   (unsigned long long)img->size, (unsigned long long)fsz);
	if (fsz < img->size)
		return pt__img_bad(img, err, errlen, E_INVAL, fo + 8,
			   "file of %llu bytes, the footer says %llu",
			   (unsigned long long)img->size, (unsigned long long)fsz);
	img->diroff = img_get64(f);
	if (img->diroff < img->hsize || img->diroff > img->size - IMG_FOOTER - IMG_SEC_HDR ||
	    img->diroff % 8)
		return pt__img_bad(img, err, errlen, E_INVAL, fo, "directory offset %llu out of bounds",
			   (unsigned long long)img->diroff);
	img->fflags = img_get32(f + 16);
	if (img->fflags & 0xffffu & ~(uint32_t)(IMG_FF_ANY_TRACKED | IMG_FF_ANY_COMPARED))
		return pt__img_bad(img, err, errlen, E_UNSUP, fo + 16, "unknown footer flags 0x%x",
			   img->fflags);
	img->frame_count = img_get32(f + 20);
	img->data_pages = img_get64(f + 24);
	if (!img_zero(f + 32, 8))
		return pt__img_bad(img, err, errlen, E_INVAL, fo + 32, "non-zero reserved footer bytes");
	img->file_checksum = img_get64(f + 48);
	return 0;
}

/* ---- steps 4-5: directory, sections ---- */

static int sec_header(struct pt_image *img, uint64_t off, struct dent *d, char *err,
		      size_t errlen)
{
	unsigned char h[IMG_SEC_HDR];
	int r;

	if ((r = pt__img_rd(img, off, h, sizeof(h), err, errlen)))
		return r;
	d->off = off;
	d->type = img_get32(h);
	d->flags = img_get16(h + 4);
	d->len = img_get64(h + 8);
	d->count = img_get32(h + 16);
	d->esize = img_get32(h + 20);
	d->sum = img_get64(h + 24);
	if (img_get16(h + 6))
		return pt__img_bad(img, err, errlen, E_INVAL, off + 6, "non-zero reserved section bytes");
	if (d->flags & 0xfe)
		return pt__img_bad(img, err, errlen, E_INVAL, off + 4, "reserved section flags 0x%x",
			   d->flags);
	return 0;
}

static const struct {
	uint32_t esize;		/* minimum entry size of a table, 0 if none */
	bool table;
} sec_shape[IMG_S__COUNT] = {
	[IMG_S_DIRECTORY] = { IMG_E_DIR, true },
	[IMG_S_STRINGS] = { 0, false },
	[IMG_S_AREAS] = { IMG_E_AREA, true },
	[IMG_S_OBJECTS] = { IMG_E_OBJECT, true },
	[IMG_S_FRAMES] = { IMG_E_FRAME, true },
	[IMG_S_INDEX] = { IMG_E_RUN, true },
	[IMG_S_FRAME] = { 0, false },
	[IMG_S_PROCESS] = { 0, false },
	[IMG_S_AUXV] = { IMG_E_AUXV, true },
	[IMG_S_THREADS] = { 0, false },
	[IMG_S_FILES] = { IMG_E_FILE, true },
};

/* count/entry_size/length agree with the section type's shape. */
static int sec_shape_ok(struct pt_image *img, const struct dent *d, char *err, size_t errlen)
{
	if (d->type >= IMG_S__COUNT)
		return 0;
	if (sec_shape[d->type].table) {
		if (d->esize < sec_shape[d->type].esize ||
		    (uint64_t)d->count * d->esize != d->len)
			return pt__img_bad(img, err, errlen, E_INVAL, d->off + 16,
				   "section type %u: count %u x entry_size %u != length %llu",
				   d->type, d->count, d->esize, (unsigned long long)d->len);
	} else if (d->esize || ((d->type == IMG_S_STRINGS || d->type == IMG_S_PROCESS) && d->count)) {
		return pt__img_bad(img, err, errlen, E_INVAL, d->off + 16,
			   "section type %u: unexpected count or entry_size", d->type);
	}
	return 0;
}

/* Read a section's payload and padding; check padding and checksum.  *out: malloc'd. */
int pt__img_sec_payload(struct pt_image *img, const struct dent *d, unsigned char **out,
		       char *err, size_t errlen)
{
	uint64_t plen = img_align8(d->len);
	unsigned char *p;
	int r;

	*out = NULL;
	p = malloc(plen ? plen : 1);
	if (!p)
		return -ENOMEM;
	if ((r = pt__img_rd(img, d->off + IMG_SEC_HDR, p, plen, err, errlen)))
		goto fail;
	if (XXH3_64bits(p, d->len) != d->sum) {
		r = pt__img_bad(img, err, errlen, E_SUM, d->off + 24, "section type %u checksum", d->type);
		goto fail;
	}
	if (!img_zero(p + d->len, plen - d->len)) {
		r = pt__img_bad(img, err, errlen, E_INVAL, d->off + IMG_SEC_HDR + d->len,
			"non-zero section padding");
		goto fail;
	}
	*out = p;
	return 0;
fail:
	free(p);
	return r;
}

static int parse_directory(struct pt_image *img, char *err, size_t errlen)
{
	struct dent dd;
	unsigned char *p = NULL;
	uint64_t prev_end = img->hsize;
	int r;

	if ((r = sec_header(img, img->diroff, &dd, err, errlen)))
		return r;
	if (dd.type != IMG_S_DIRECTORY)
		return pt__img_bad(img, err, errlen, E_INVAL, dd.off, "no directory at the footer's offset");
	if (dd.len > img->size || img->diroff + IMG_SEC_HDR + img_align8(dd.len) !=
	    img->size - IMG_FOOTER)
		return pt__img_bad(img, err, errlen, E_INVAL, dd.off + 8,
			   "directory does not end at the footer");
	if (dd.count > IMG_DIR_MAX)
		return pt__img_bad(img, err, errlen, E_INVAL, dd.off + 16, "directory of %u entries",
			   dd.count);
	if ((r = sec_shape_ok(img, &dd, err, errlen)) ||
	    (r = pt__img_sec_payload(img, &dd, &p, err, errlen)))
		return r;
	img->dir = calloc(dd.count ? dd.count : 1, sizeof(*img->dir));
	if (!img->dir) {
		free(p);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < dd.count; i++) {
		const unsigned char *e = p + (size_t)i * dd.esize;
		uint64_t eo = dd.off + IMG_SEC_HDR + (uint64_t)i * dd.esize;
		struct dent *d = &img->dir[img->ndir];
		uint32_t type = img_get32(e);
		uint64_t off = img_get64(e + 8), len = img_get64(e + 16);

		if (img_get16(e + 6)) {
			r = pt__img_bad(img, err, errlen, E_INVAL, eo + 6, "non-zero reserved bytes");
			goto out;
		}
		if (off % 8 || off < prev_end || off > img->diroff - IMG_SEC_HDR ||
		    len > img->diroff - IMG_SEC_HDR - off ||
		    img_align8(len) > img->diroff - IMG_SEC_HDR - off) {
			r = pt__img_bad(img, err, errlen, E_INVAL, eo + 8,
				"directory entry %u: section out of order or bounds", i);
			goto out;
		}
		if ((r = sec_header(img, off, d, err, errlen)))
			goto out;
		if (d->type != type || d->flags != img_get16(e + 4) || d->len != len) {
			r = pt__img_bad(img, err, errlen, E_INVAL, off,
				"section header does not match directory entry %u", i);
			goto out;
		}
		if (type == 0 || type == IMG_S_DIRECTORY || type == IMG_S_FRAME) {
			r = pt__img_bad(img, err, errlen, E_INVAL, off, "section type %u in the directory",
				type);
			goto out;
		}
		if (type >= IMG_S__COUNT && !(d->flags & IMG_SF_OPTIONAL)) {
			r = pt__img_bad(img, err, errlen, E_UNSUP, off, "unknown required section type %u",
				type);
			goto out;
		}
		if (type < IMG_S__COUNT && type != IMG_S_FRAMES && type != IMG_S_INDEX) {
			if (img->sec[type] >= 0) {
				r = pt__img_bad(img, err, errlen, E_INVAL, off, "second section of type %u",
					type);
				goto out;
			}
			img->sec[type] = (int)img->ndir;
		}
		if ((r = sec_shape_ok(img, d, err, errlen)))
			goto out;
		prev_end = off + IMG_SEC_HDR + img_align8(len);
		img->ndir++;
	}
	if (img->sec[IMG_S_STRINGS] < 0 || img->sec[IMG_S_AREAS] < 0 || img->sec[IMG_S_OBJECTS] < 0)
		r = pt__img_bad(img, err, errlen, E_INVAL, dd.off, "STRINGS, AREAS or OBJECTS missing");
	else if ((img->hflags & IMG_HF_FROZEN) &&
		 (img->sec[IMG_S_PROCESS] < 0 || img->sec[IMG_S_AUXV] < 0 ||
		  img->sec[IMG_S_THREADS] < 0))
		r = pt__img_bad(img, err, errlen, E_INVAL, dd.off,
			"FROZEN layer without PROCESS, AUXV or THREADS");
out:
	free(p);
	return r;
}

static int parse_layout(struct pt_image *img, char *err, size_t errlen)
{
	const struct dent *ds = &img->dir[img->sec[IMG_S_STRINGS]];
	const struct dent *dobj = &img->dir[img->sec[IMG_S_OBJECTS]];
	const struct dent *da = &img->dir[img->sec[IMG_S_AREAS]];
	unsigned char *p = NULL;
	uint32_t ff = 0;
	int r;

	if (ds->len > IMG_STRINGS_MAX)
		return pt__img_bad(img, err, errlen, E_INVAL, ds->off + 8, "STRINGS over 256 MiB");
	if ((r = pt__img_sec_payload(img, ds, &p, err, errlen)))
		return r;
	img->strings = (char *)p;
	img->slen = ds->len;

	if ((r = pt__img_sec_payload(img, dobj, &p, err, errlen)))
		return r;
	img->objs = calloc(dobj->count ? dobj->count : 1, sizeof(*img->objs));
	if (!img->objs) {
		r = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < dobj->count; i++) {
		const unsigned char *e = p + (size_t)i * dobj->esize;
		uint64_t eo = dobj->off + IMG_SEC_HDR + (uint64_t)i * dobj->esize;
		struct pt_image_object *o = &img->objs[i];

		o->dev_major = img_get32(e);
		o->dev_minor = img_get32(e + 4);
		o->inode = img_get64(e + 8);
		o->size = img_get64(e + 16);
		o->kind = e[24];
		o->delta = e[25];
		o->flags = img_get16(e + 26);
		o->sysv_key = img_get32(e + 28);
		o->mtime_ns = img_get64(e + 40);
		if (o->kind < PT_VMA_FILE || o->kind > PT_VMA_SPECIAL || o->size > IMG_OBJ_SIZE_MAX ||
		    o->delta > PT_DELTA_COMPARED || (o->flags & 0xfc) ||
		    (!(o->flags & PT_OBJECT_STORED) && o->delta) ||
		    ((o->flags & PT_OBJECT_STORED) && o->kind == PT_VMA_SPECIAL) ||
		    (o->kind != PT_VMA_SYSV && o->sysv_key) || !str_ok(img, e + 32) ||
		    !img_zero(e + 48, 16)) {
			r = pt__img_bad(img, err, errlen, E_INVAL, eo, "object %u breaks a rule", i);
			goto out;
		}
		o->flags &= PT_OBJECT_STORED | PT_OBJECT_DELETED;	/* 8-15: may-ignore */
		o->name = img->strings + img_get32(e + 32);
		o->name_len = img_get32(e + 36);
		if (o->delta == PT_DELTA_TRACKED)
			ff |= IMG_FF_ANY_TRACKED;
		else if (o->delta == PT_DELTA_COMPARED)
			ff |= IMG_FF_ANY_COMPARED;
		img->no++;
	}
	free(p);
	p = NULL;
	/* identities unique: sort a copy of (dev, inode) */
	if (img->no > 1) {
		struct pt_image_object *s = malloc(img->no * sizeof(*s));

		if (!s) {
			r = -ENOMEM;
			goto out;
		}
		memcpy(s, img->objs, img->no * sizeof(*s));
		qsort(s, img->no, sizeof(*s), obj_cmp);
		for (size_t i = 1; i < img->no; i++)
			if (!obj_cmp(&s[i - 1], &s[i])) {
				free(s);
				r = pt__img_bad(img, err, errlen, E_INVAL, dobj->off, "two objects of one identity");
				goto out;
			}
		free(s);
	}

	if (da->count > IMG_AREAS_MAX)
		return pt__img_bad(img, err, errlen, E_INVAL, da->off + 16, "more than %u areas",
			   IMG_AREAS_MAX);
	if ((r = pt__img_sec_payload(img, da, &p, err, errlen)))
		return r;
	img->areas = calloc(da->count ? da->count : 1, sizeof(*img->areas));
	if (!img->areas) {
		r = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < da->count; i++) {
		const unsigned char *e = p + (size_t)i * da->esize;
		uint64_t eo = da->off + IMG_SEC_HDR + (uint64_t)i * da->esize;
		struct pt_image_area *a = &img->areas[i];
		uint32_t flags;

		a->start = img_get64(e);
		a->end = img_get64(e + 8);
		a->offset = img_get64(e + 16);
		a->prot = img_get32(e + 24);
		a->kind = e[28];
		a->delta = e[29];
		flags = img_get16(e + 30);
		a->object = img_get32(e + 32);
		if (a->start % img->page_size || a->end % img->page_size || a->end <= a->start ||
		    (i && a->start < img->areas[i - 1].end) || a->offset % img->page_size ||
		    (a->prot & ~(uint32_t)(PT_PROT_READ | PT_PROT_WRITE | PT_PROT_EXEC | PT_MAP_SHARED)) ||
		    a->delta > PT_DELTA_COMPARED || (flags & 0xff) ||
		    (a->object != PT_IMAGE_NO_OBJECT && a->object >= img->no) ||
		    (a->object == PT_IMAGE_NO_OBJECT && a->offset) ||
		    (area_shared(a) && a->delta) || img_get32(e + 36) || !str_ok(img, e + 40) ||
		    !img_zero(e + 48, 16)) {
			r = pt__img_bad(img, err, errlen, E_INVAL, eo, "area %u breaks a rule", i);
			goto out;
		}
		a->path = img->strings + img_get32(e + 40);
		a->path_len = img_get32(e + 44);
		if (a->delta == PT_DELTA_TRACKED)
			ff |= IMG_FF_ANY_TRACKED;
		else if (a->delta == PT_DELTA_COMPARED)
			ff |= IMG_FF_ANY_COMPARED;
		img->na++;
	}
	if ((img->fflags & 0xffff) != ff)
		r = pt__img_bad(img, err, errlen, E_INVAL, img->size - IMG_FOOTER + 16,
			"footer flags 0x%x, the deltas say 0x%x", img->fflags & 0xffff, ff);
out:
	free(p);
	return r;
}


/* ---- step 6: frame table, index, tiling ---- */

static int parse_frames(struct pt_image *img, char *err, size_t errlen)
{
	uint64_t total = 0, prev = 0;
	uint32_t n = 0;
	int r;

	for (size_t i = 0; i < img->ndir; i++)
		if (img->dir[i].type == IMG_S_FRAMES)
			total += img->dir[i].count;
	if (total != img->frame_count)
		return pt__img_bad(img, err, errlen, E_INVAL, img->size - IMG_FOOTER + 20,
			   "frame_count %u, the FRAMES table has %llu", img->frame_count,
			   (unsigned long long)total);
	/* each frame takes a section of at least 40 bytes and a table entry */
	if (total > img->size / (IMG_E_FRAME + IMG_SEC_HDR + 8))
		return pt__img_bad(img, err, errlen, E_INVAL, img->size - IMG_FOOTER + 20,
			   "more frames than the file can hold");
	img->frames = calloc(total ? total : 1, sizeof(*img->frames));
	if (!img->frames)
		return -ENOMEM;
	for (size_t i = 0; i < img->ndir; i++) {
		const struct dent *d = &img->dir[i];
		unsigned char *p;

		if (d->type != IMG_S_FRAMES)
			continue;
		if (d->len > IMG_CHUNK_MAX)
			return pt__img_bad(img, err, errlen, E_INVAL, d->off + 8, "FRAMES chunk over 16 MiB");
		if ((r = pt__img_sec_payload(img, d, &p, err, errlen)))
			return r;
		for (uint32_t j = 0; j < d->count; j++) {
			const unsigned char *e = p + (size_t)j * d->esize;
			uint64_t eo = d->off + IMG_SEC_HDR + (uint64_t)j * d->esize;
			struct iframe *f = &img->frames[n];
			struct dent fs;

			f->off = img_get64(e);
			f->clen = img_get64(e + 8);
			f->pages = img_get32(e + 16);
			f->usum = img_get64(e + 24);
			if (e[20] != IMG_CODEC_ZSTD) {
				unsigned codec = e[20];

				free(p);
				return pt__img_bad(img, err, errlen, E_UNSUP, eo + 20, "codec %u", codec);
			}
			if (f->off % 8 || f->off < img->hsize || (n && f->off <= prev) ||
			    f->off > img->diroff - IMG_SEC_HDR || f->clen < 1 ||
			    f->clen > IMG_FRAME_CLEN_MAX ||
			    img_align8(f->clen) > img->diroff - IMG_SEC_HDR - f->off ||
			    f->pages < 1 || f->pages > IMG_FRAME_PAGES_MAX ||
			    (uint64_t)f->pages * img->page_size > IMG_FRAME_BYTES_MAX ||
			    !img_zero(e + 21, 3)) {
				free(p);
				return pt__img_bad(img, err, errlen, E_INVAL, eo, "frame %u entry breaks a rule", n);
			}
			if ((r = sec_header(img, f->off, &fs, err, errlen))) {
				free(p);
				return r;
			}
			if (fs.type != IMG_S_FRAME || fs.len != f->clen || fs.count != f->pages ||
			    fs.esize) {
				free(p);
				return pt__img_bad(img, err, errlen, E_INVAL, f->off,
					   "frame section does not match frame %u's entry", n);
			}
			f->sum = fs.sum;
			img->frame_bytes += f->clen;
			prev = f->off;
			n++;
		}
		free(p);
	}
	return 0;
}

/* The file is tiled: header, sections (directory's and frames, merged), directory, footer. */
static int check_tiling(struct pt_image *img, char *err, size_t errlen)
{
	uint64_t pos = img->hsize;
	size_t i = 0, j = 0;

	while (i < img->ndir || j < img->frame_count) {
		uint64_t len;

		if (i < img->ndir && img->dir[i].off == pos)
			len = img->dir[i++].len;
		else if (j < img->frame_count && img->frames[j].off == pos)
			len = img->frames[j++].clen;
		else
			return pt__img_bad(img, err, errlen, E_INVAL, pos, "no section starts here (gap or overlap)");
		pos += IMG_SEC_HDR + img_align8(len);	/* bounded by diroff: checked before */
	}
	if (pos != img->diroff)
		return pt__img_bad(img, err, errlen, E_INVAL, pos, "gap before the directory");
	return 0;
}

struct ixstate {
	bool started;
	size_t pos;
	uint64_t next_page, data;
	uint32_t frame, fpage;
};

static int check_run(struct pt_image *img, struct ixstate *s, const unsigned char *e,
		     uint64_t eo, char *err, size_t errlen)
{
	struct irun rn;
	size_t opos;
	uint64_t pages;

	get_run(e, &rn);
	if (rn.kind < PT_PAGE_DATA || rn.kind > PT_PAGE_UNREADABLE)
		return pt__img_bad(img, err, errlen, E_UNSUP, eo + 1, "run kind %u", rn.kind);
	if (e[3] || (rn.detail && rn.kind != PT_PAGE_UNREADABLE))
		return pt__img_bad(img, err, errlen, E_INVAL, eo + 2, "run detail or reserved byte");
	if (rn.ot == PT_OWNER_AREA && rn.owner < img->na)
		opos = rn.owner;
	else if (rn.ot == PT_OWNER_OBJECT && rn.owner < img->no)
		opos = img->na + rn.owner;
	else
		return pt__img_bad(img, err, errlen, E_INVAL, eo, "run owner %u/%u does not exist", rn.ot,
			   rn.owner);
	if (!s->started || opos != s->pos) {
		if (s->started && opos < s->pos)
			return pt__img_bad(img, err, errlen, E_INVAL, eo, "INDEX runs out of owner order");
		if (s->started && s->next_page != owner_pages(img, s->pos))
			return pt__img_bad(img, err, errlen, E_INVAL, eo,
				   "INDEX: the previous owner's runs end before its end");
		for (size_t p = s->started ? s->pos + 1 : 0; p < opos; p++)
			if (owner_pages(img, p))
				return pt__img_bad(img, err, errlen, E_INVAL, eo,
					   "INDEX: an owner before this one has no runs");
		if (!owner_pages(img, opos))
			return pt__img_bad(img, err, errlen, E_INVAL, eo, "INDEX: runs for an owner that takes none");
		s->started = true;
		s->pos = opos;
		s->next_page = 0;
	}
	pages = owner_pages(img, opos);
	if (rn.page != s->next_page)
		return pt__img_bad(img, err, errlen, E_INVAL, eo + 8,
			   "INDEX run does not start where the previous ended");
	if (rn.npages < 1 || rn.npages > pages - s->next_page)
		return pt__img_bad(img, err, errlen, E_INVAL, eo + 16, "INDEX run beyond its owner's end");
	if (rn.kind == PT_PAGE_UNCHANGED &&
	    (!(img->hflags & IMG_HF_HAS_PARENT) || owner_delta(img, opos) == PT_DELTA_FULL))
		return pt__img_bad(img, err, errlen, E_INVAL, eo + 1,
			   "UNCHANGED run in a base layer or a FULL owner");
	if (rn.kind == PT_PAGE_DATA) {
		if (s->frame >= img->frame_count || rn.frame != s->frame || rn.fpage != s->fpage ||
		    rn.npages > img->frames[s->frame].pages - s->fpage)
			return pt__img_bad(img, err, errlen, E_INVAL, eo + 24,
				   "DATA run does not take the next pages of the frames");
		s->fpage += (uint32_t)rn.npages;
		if (s->fpage == img->frames[s->frame].pages) {
			s->frame++;
			s->fpage = 0;
		}
		s->data += rn.npages;
	} else if (rn.frame || rn.fpage) {
		return pt__img_bad(img, err, errlen, E_INVAL, eo + 24, "frame fields of a non-DATA run");
	}
	s->next_page += rn.npages;
	return 0;
}

static int parse_index(struct pt_image *img, char *err, size_t errlen)
{
	struct ixstate s = { 0 };
	size_t nidx = 0;
	int r;

	for (size_t i = 0; i < img->ndir; i++)
		if (img->dir[i].type == IMG_S_INDEX)
			nidx++;
	img->chunks = calloc(nidx ? nidx : 1, sizeof(*img->chunks));
	if (!img->chunks)
		return -ENOMEM;
	for (size_t i = 0; i < img->ndir; i++) {
		const struct dent *d = &img->dir[i];
		struct ichunk *c = &img->chunks[img->nchunks];
		unsigned char *p;

		if (d->type != IMG_S_INDEX)
			continue;
		if (d->len > IMG_CHUNK_MAX)
			return pt__img_bad(img, err, errlen, E_INVAL, d->off + 8, "INDEX chunk over 16 MiB");
		if (!d->count)
			continue;
		if ((r = pt__img_sec_payload(img, d, &p, err, errlen)))
			return r;
		for (uint32_t j = 0; j < d->count; j++)
			if ((r = check_run(img, &s, p + (size_t)j * d->esize,
					   d->off + IMG_SEC_HDR + (uint64_t)j * d->esize, err, errlen))) {
				free(p);
				return r;
			}
		c->off = d->off + IMG_SEC_HDR;
		c->len = d->len;
		c->sum = d->sum;
		c->count = d->count;
		c->esize = d->esize;
		c->first_ot = p[0];
		c->first_owner = img_get32(p + 4);
		c->first_page = img_get64(p + 8);
		img->nchunks++;
		free(p);
	}
	if (s.started && s.next_page != owner_pages(img, s.pos))
		return pt__img_bad(img, err, errlen, E_INVAL, img->diroff,
				   "INDEX: the last owner's runs end early");
	for (size_t p = s.started ? s.pos + 1 : 0; p < img->na + img->no; p++)
		if (owner_pages(img, p))
			return pt__img_bad(img, err, errlen, E_INVAL, img->diroff,
				   "INDEX: %s %zu has no runs", p < img->na ? "area" : "object",
				   p < img->na ? p : p - img->na);
	if (s.frame != img->frame_count || s.fpage)
		return pt__img_bad(img, err, errlen, E_INVAL, img->diroff, "frames not used up by DATA runs");
	if (s.data != img->data_pages)
		return pt__img_bad(img, err, errlen, E_INVAL, img->size - IMG_FOOTER + 24,
			   "data_pages %llu, the DATA runs have %llu",
			   (unsigned long long)img->data_pages, (unsigned long long)s.data);
	return 0;
}

/* ---- open, close, info ---- */

int pt_image_open(const char *path, struct pt_image **out, char *err, size_t errlen)
{
	struct pt_image *img;
	struct stat st;
	char end[8];
	int r;

	if (err && errlen)
		*err = 0;
	if (!path || !out)
		return -EINVAL;
	*out = NULL;
	img = calloc(1, sizeof(*img));
	if (!img)
		return -ENOMEM;
	img->fd = -1;
	img->cached_chunk = img->cached_frame = -1;
	for (int i = 0; i < IMG_S__COUNT; i++)
		img->sec[i] = -1;
	img->path = strdup(path);
	if (!img->path) {
		r = -ENOMEM;
		goto fail;
	}
	img->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);	/* a FIFO must not block */
	if (img->fd < 0 || fstat(img->fd, &st) < 0) {
		r = -errno;
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		r = pt__img_bad(img, err, errlen, -EINVAL, 0, "not a regular file");
		goto fail;
	}
	img->size = (uint64_t)st.st_size;
	if (img->size < IMG_HDR_FIXED + IMG_SEC_HDR + IMG_FOOTER) {
		r = pt__img_bad(img, err, errlen, E_TRUNC, img->size, "file too short for an image");
		goto fail;
	}
	if ((r = pt__img_rd(img, img->size - 8, end, 8, err, errlen)))
		goto fail;
	if (memcmp(end, IMG_END_MAGIC, 8)) {
		r = pt__img_bad(img, err, errlen, E_TRUNC, img->size - 8, "no end magic (cut short?)");
		goto fail;
	}
	if ((r = parse_header(img, err, errlen)) || (r = parse_footer(img, err, errlen)) ||
	    (r = parse_directory(img, err, errlen)) || (r = parse_layout(img, err, errlen)) ||
	    (r = pt__img_parse_capture(img, NULL, err, errlen)) || (r = parse_frames(img, err, errlen)) ||
	    (r = check_tiling(img, err, errlen)) || (r = parse_index(img, err, errlen)))
		goto fail;
	*out = img;
	return 0;
fail:
	pt_image_close(img);
	return r;
}

void pt_image_close(struct pt_image *img)
{
	while (img) {
		struct pt_image *parent = img->parent;

		if (img->fd >= 0)
			close(img->fd);
		ZSTD_freeDCtx(img->dctx);
		free(img->path);
		free(img->parent_path);
		free(img->dir);
		free(img->strings);
		free(img->areas);
		free(img->objs);
		free(img->chunks);
		free(img->frames);
		free(img->cbuf);
		free(img->zbuf);
		free(img->fbuf);
		free(img);
		img = parent;
	}
}

int pt_image_info(const struct pt_image *img, struct pt_image_info *info)
{
	struct pt_image_info i = { .sz = sizeof(i) };
	size_t sz;

	if (!img || !info || !PT_OPTS_VALID(info, pt_image_info))
		return -EINVAL;
	i.version_major = IMG_VERSION_MAJOR;
	i.version_minor = img->minor;
	i.flags = img->hflags;
	i.page_size = img->page_size;
	i.pid = img->pid;
	i.machine = img->machine;
	i.seq = img->seq;
	i.ctime_ns = img->ctime_ns;
	memcpy(i.boot_id, img->boot_id, 16);
	memcpy(i.layer_id, img->layer_id, 16);
	memcpy(i.parent_layer_id, img->parent_layer_id, 16);
	memcpy(i.comm, img->comm, 16);
	i.parent_checksum = img->parent_checksum;
	i.file_checksum = img->file_checksum;
	i.file_size = img->size;
	i.frames = img->frame_count;
	i.data_pages = img->data_pages;
	i.frame_bytes = img->frame_bytes;
	i.nareas = img->na;
	i.nobjects = img->no;
	i.nthreads = img->nthreads;
	i.footer_flags = img->fflags;
	i.parent_path = img->parent_path;
	sz = info->sz < sizeof(i) ? info->sz : sizeof(i);
	memcpy((char *)info + sizeof(size_t), (const char *)&i + sizeof(size_t),
	       sz - sizeof(size_t));
	return 0;
}

int pt_image_areas(const struct pt_image *img, const struct pt_image_area **areas, size_t *count)
{
	if (!img || !areas || !count)
		return -EINVAL;
	*areas = img->areas;
	*count = img->na;
	return 0;
}

int pt_image_objects(const struct pt_image *img, const struct pt_image_object **objs,
		     size_t *count)
{
	if (!img || !objs || !count)
		return -EINVAL;
	*objs = img->objs;
	*count = img->no;
	return 0;
}

const char *pt__image_path(const struct pt_image *img)
{
	return img->path;
}

