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

#include "image/format.h"
#include "image/image.h"

#define E_TRUNC		(-ENODATA)
#define E_SUM		(-EBADMSG)
#define E_UNSUP		(-EPROTONOSUPPORT)
#define E_INVAL		(-EUCLEAN)

struct dent {
	uint32_t type, count, esize;
	uint16_t flags;
	uint64_t off, len, sum;
};

struct ichunk {
	uint64_t off;		/* payload */
	uint64_t len, sum;
	uint32_t count, esize;
	uint32_t first_ot, first_owner;
	uint64_t first_page;
};

struct iframe {
	uint64_t off;		/* section header */
	uint64_t clen, sum, usum;
	uint32_t pages;
};

struct pt_image {
	char *path;
	int fd;
	uint64_t size;

	/* header */
	uint32_t minor, hsize, hflags, page_size, machine;
	int32_t pid;
	uint64_t ctime_ns, seq, parent_checksum;
	uint8_t boot_id[16], layer_id[16], parent_layer_id[16];
	char comm[16];
	char *parent_path;

	/* footer */
	uint64_t diroff, data_pages, file_checksum;
	uint32_t fflags, frame_count;

	struct dent *dir;
	size_t ndir;
	int sec[IMG_S__COUNT];	/* directory index of each singleton, -1 */

	char *strings;
	uint64_t slen;
	struct pt_image_area *areas;
	size_t na;
	struct pt_image_object *objs;
	size_t no;
	uint64_t nthreads, frame_bytes;

	struct ichunk *chunks;
	size_t nchunks;
	struct iframe *frames;

	/* caches */
	unsigned char *cbuf;		/* an INDEX chunk */
	size_t cbuf_cap;
	unsigned char *zbuf;		/* a compressed frame */
	size_t zbuf_cap;
	long cached_chunk;
	unsigned char *fbuf;		/* decompressed frame */
	long cached_frame;
	ZSTD_DCtx *dctx;

	struct pt_image *parent;
	bool verified;
};

struct irun {
	uint32_t ot, owner, kind, detail, frame, fpage;
	uint64_t page, npages;
};

__attribute__((format(printf, 6, 7)))
static int bad(const struct pt_image *img, char *err, size_t errlen, int e, uint64_t off,
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

static int rd(const struct pt_image *img, uint64_t off, void *buf, size_t len, char *err,
	      size_t errlen)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(img->fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;

			return bad(img, err, errlen, e, off + done, "read: %s", strerror(-e));
		}
		if (n == 0)
			return bad(img, err, errlen, E_TRUNC, off + done, "file shorter than read");
		done += (size_t)n;
	}
	return 0;
}

static bool area_shared(const struct pt_image_area *a)
{
	return (a->prot & PT_MAP_SHARED) && a->object != PT_IMAGE_NO_OBJECT;
}

/* Pages of owner position @pos (areas, then objects) when it takes runs, else 0. */
static uint64_t owner_pages(const struct pt_image *img, size_t pos)
{
	if (pos < img->na)
		return area_shared(&img->areas[pos]) ? 0 :
		       (img->areas[pos].end - img->areas[pos].start) / img->page_size;
	pos -= img->na;
	if (!(img->objs[pos].flags & PT_OBJECT_STORED))
		return 0;
	return img->objs[pos].size / img->page_size + (img->objs[pos].size % img->page_size != 0);
}

static uint32_t owner_delta(const struct pt_image *img, size_t pos)
{
	return pos < img->na ? img->areas[pos].delta : img->objs[pos - img->na].delta;
}

/* ---- steps 1-3: header and footer ---- */

static int parse_header(struct pt_image *img, char *err, size_t errlen)
{
	unsigned char h[IMG_HDR_MAX];
	uint32_t ppl;
	int r;

	if ((r = rd(img, 0, h, IMG_HDR_FIXED, err, errlen)))
		return r;
	if (memcmp(h, IMG_MAGIC, 8))
		return bad(img, err, errlen, E_INVAL, 0, "not a pagetrack image (magic)");
	if (img_get16(h + 8) != IMG_VERSION_MAJOR)
		return bad(img, err, errlen, E_UNSUP, 8, "version %u.%u", img_get16(h + 8),
			   img_get16(h + 10));
	img->minor = img_get16(h + 10);
	img->hsize = img_get32(h + 12);
	if (img->hsize < IMG_HDR_FIXED || img->hsize > IMG_HDR_MAX || img->hsize % 8 ||
	    img->hsize + (uint64_t)IMG_SEC_HDR + IMG_FOOTER > img->size)
		return bad(img, err, errlen, E_INVAL, 12, "header_size %u out of bounds",
			   img->hsize);
	if (img->hsize > IMG_HDR_FIXED &&
	    (r = rd(img, IMG_HDR_FIXED, h + IMG_HDR_FIXED, img->hsize - IMG_HDR_FIXED, err, errlen)))
		return r;
	if (XXH3_64bits(h, img->hsize - 8) != img_get64(h + img->hsize - 8))
		return bad(img, err, errlen, E_SUM, img->hsize - 8, "header checksum");
	img->hflags = img_get32(h + 16);
	if (img->hflags & IMG_HF_MUST & ~IMG_HF_KNOWN)
		return bad(img, err, errlen, E_UNSUP, 16, "unknown header flags 0x%x",
			   img->hflags);
	img->page_size = img_get32(h + 20);
	if (img->page_size < 4096 || img->page_size > 65536 ||
	    (img->page_size & (img->page_size - 1)))
		return bad(img, err, errlen, E_INVAL, 20, "page size %u", img->page_size);
	if (img->page_size != PT_PAGE_SIZE)
		return bad(img, err, errlen, E_UNSUP, 20, "page size %u", img->page_size);
	img->pid = (int32_t)img_get32(h + 24);
	if (img->pid <= 0)
		return bad(img, err, errlen, E_INVAL, 24, "pid %d", img->pid);
	img->machine = img_get16(h + 28);
	ppl = img_get16(h + 30);
	if (ppl > IMG_PATH_MAX || img->hsize != IMG_HDR_FIXED + img_align8(ppl))
		return bad(img, err, errlen, E_INVAL, 30, "parent_path_len %u", ppl);
	if (((img->hflags & IMG_HF_HAS_PARENT) != 0) != (ppl != 0))
		return bad(img, err, errlen, E_INVAL, 16, "HAS_PARENT flag and parent path disagree");
	if (((img->hflags & IMG_HF_FROZEN) != 0) == ((img->hflags & IMG_HF_LIVE) != 0))
		return bad(img, err, errlen, E_INVAL, 16, "not exactly one of FROZEN and LIVE");
	img->ctime_ns = img_get64(h + 32);
	img->seq = img_get64(h + 40);
	if (img->seq > IMG_SEQ_MAX || (img->seq == 0) != (ppl == 0))
		return bad(img, err, errlen, E_INVAL, 40, "seq %llu", (unsigned long long)img->seq);
	memcpy(img->boot_id, h + 48, 16);
	memcpy(img->layer_id, h + 64, 16);
	if (img_zero(img->layer_id, 16))
		return bad(img, err, errlen, E_INVAL, 64, "layer_id all zero");
	memcpy(img->parent_layer_id, h + 80, 16);
	img->parent_checksum = img_get64(h + 96);
	if (img_zero(img->parent_layer_id, 16) != (ppl == 0) ||
	    (img->parent_checksum == 0) != (ppl == 0))
		return bad(img, err, errlen, E_INVAL, 80, "parent link fields and parent path disagree");
	memcpy(img->comm, h + 104, 16);
	if (img->comm[15])
		return bad(img, err, errlen, E_INVAL, 104, "comm not terminated");
	if (memchr(h + 120, 0, ppl))
		return bad(img, err, errlen, E_INVAL, 120, "NUL byte in the parent path");
	if (!img_zero(h + 120 + ppl, img->hsize - 8 - 120 - ppl))
		return bad(img, err, errlen, E_INVAL, 120 + ppl, "non-zero header padding");
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

	if ((r = rd(img, fo, f, sizeof(f), err, errlen)))
		return r;
	if (XXH3_64bits(f, 40) != img_get64(f + 40))
		return bad(img, err, errlen, E_SUM, fo + 40, "footer checksum");
	fsz = img_get64(f + 8);
	if (fsz > img->size)
		return bad(img, err, errlen, E_TRUNC, fo + 8,
			   "file of %llu bytes, the footer says %llu",
			   (unsigned long long)img->size, (unsigned long long)fsz);
	if (fsz < img->size)
		return bad(img, err, errlen, E_INVAL, fo + 8,
			   "file of %llu bytes, the footer says %llu",
			   (unsigned long long)img->size, (unsigned long long)fsz);
	img->diroff = img_get64(f);
	if (img->diroff < img->hsize || img->diroff > img->size - IMG_FOOTER - IMG_SEC_HDR ||
	    img->diroff % 8)
		return bad(img, err, errlen, E_INVAL, fo, "directory offset %llu out of bounds",
			   (unsigned long long)img->diroff);
	img->fflags = img_get32(f + 16);
	if (img->fflags & 0xffffu & ~(uint32_t)(IMG_FF_ANY_TRACKED | IMG_FF_ANY_COMPARED))
		return bad(img, err, errlen, E_UNSUP, fo + 16, "unknown footer flags 0x%x",
			   img->fflags);
	img->frame_count = img_get32(f + 20);
	img->data_pages = img_get64(f + 24);
	if (!img_zero(f + 32, 8))
		return bad(img, err, errlen, E_INVAL, fo + 32, "non-zero reserved footer bytes");
	img->file_checksum = img_get64(f + 48);
	return 0;
}

/* ---- steps 4-5: directory, sections ---- */

static int sec_header(struct pt_image *img, uint64_t off, struct dent *d, char *err,
		      size_t errlen)
{
	unsigned char h[IMG_SEC_HDR];
	int r;

	if ((r = rd(img, off, h, sizeof(h), err, errlen)))
		return r;
	d->off = off;
	d->type = img_get32(h);
	d->flags = img_get16(h + 4);
	d->len = img_get64(h + 8);
	d->count = img_get32(h + 16);
	d->esize = img_get32(h + 20);
	d->sum = img_get64(h + 24);
	if (img_get16(h + 6))
		return bad(img, err, errlen, E_INVAL, off + 6, "non-zero reserved section bytes");
	if (d->flags & 0xfe)
		return bad(img, err, errlen, E_INVAL, off + 4, "reserved section flags 0x%x",
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
			return bad(img, err, errlen, E_INVAL, d->off + 16,
				   "section type %u: count %u x entry_size %u != length %llu",
				   d->type, d->count, d->esize, (unsigned long long)d->len);
	} else if (d->esize || ((d->type == IMG_S_STRINGS || d->type == IMG_S_PROCESS) && d->count)) {
		return bad(img, err, errlen, E_INVAL, d->off + 16,
			   "section type %u: unexpected count or entry_size", d->type);
	}
	return 0;
}

/* Read a section's payload and padding; check padding and checksum.  *out: malloc'd. */
static int sec_payload(struct pt_image *img, const struct dent *d, unsigned char **out,
		       char *err, size_t errlen)
{
	uint64_t plen = img_align8(d->len);
	unsigned char *p;
	int r;

	*out = NULL;
	p = malloc(plen ? plen : 1);
	if (!p)
		return -ENOMEM;
	if ((r = rd(img, d->off + IMG_SEC_HDR, p, plen, err, errlen)))
		goto fail;
	if (XXH3_64bits(p, d->len) != d->sum) {
		r = bad(img, err, errlen, E_SUM, d->off + 24, "section type %u checksum", d->type);
		goto fail;
	}
	if (!img_zero(p + d->len, plen - d->len)) {
		r = bad(img, err, errlen, E_INVAL, d->off + IMG_SEC_HDR + d->len,
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
		return bad(img, err, errlen, E_INVAL, dd.off, "no directory at the footer's offset");
	if (dd.len > img->size || img->diroff + IMG_SEC_HDR + img_align8(dd.len) !=
	    img->size - IMG_FOOTER)
		return bad(img, err, errlen, E_INVAL, dd.off + 8,
			   "directory does not end at the footer");
	if (dd.count > IMG_DIR_MAX)
		return bad(img, err, errlen, E_INVAL, dd.off + 16, "directory of %u entries",
			   dd.count);
	if ((r = sec_shape_ok(img, &dd, err, errlen)) ||
	    (r = sec_payload(img, &dd, &p, err, errlen)))
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
			r = bad(img, err, errlen, E_INVAL, eo + 6, "non-zero reserved bytes");
			goto out;
		}
		if (off % 8 || off < prev_end || off > img->diroff - IMG_SEC_HDR ||
		    len > img->diroff - IMG_SEC_HDR - off ||
		    img_align8(len) > img->diroff - IMG_SEC_HDR - off) {
			r = bad(img, err, errlen, E_INVAL, eo + 8,
				"directory entry %u: section out of order or bounds", i);
			goto out;
		}
		if ((r = sec_header(img, off, d, err, errlen)))
			goto out;
		if (d->type != type || d->flags != img_get16(e + 4) || d->len != len) {
			r = bad(img, err, errlen, E_INVAL, off,
				"section header does not match directory entry %u", i);
			goto out;
		}
		if (type == 0 || type == IMG_S_DIRECTORY || type == IMG_S_FRAME) {
			r = bad(img, err, errlen, E_INVAL, off, "section type %u in the directory",
				type);
			goto out;
		}
		if (type >= IMG_S__COUNT && !(d->flags & IMG_SF_OPTIONAL)) {
			r = bad(img, err, errlen, E_UNSUP, off, "unknown required section type %u",
				type);
			goto out;
		}
		if (type < IMG_S__COUNT && type != IMG_S_FRAMES && type != IMG_S_INDEX) {
			if (img->sec[type] >= 0) {
				r = bad(img, err, errlen, E_INVAL, off, "second section of type %u",
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
		r = bad(img, err, errlen, E_INVAL, dd.off, "STRINGS, AREAS or OBJECTS missing");
	else if ((img->hflags & IMG_HF_FROZEN) &&
		 (img->sec[IMG_S_PROCESS] < 0 || img->sec[IMG_S_AUXV] < 0 ||
		  img->sec[IMG_S_THREADS] < 0))
		r = bad(img, err, errlen, E_INVAL, dd.off,
			"FROZEN layer without PROCESS, AUXV or THREADS");
out:
	free(p);
	return r;
}

static int str_ok(const struct pt_image *img, const unsigned char *e)
{
	uint32_t off = img_get32(e), len = img_get32(e + 4);

	return len <= IMG_STR_MAX && (uint64_t)off + len <= img->slen;
}

/* qsort order of objects by identity */
static int obj_cmp(const void *a, const void *b)
{
	const struct pt_image_object *x = a, *y = b;

	if (x->dev_major != y->dev_major)
		return x->dev_major < y->dev_major ? -1 : 1;
	if (x->dev_minor != y->dev_minor)
		return x->dev_minor < y->dev_minor ? -1 : 1;
	if (x->inode != y->inode)
		return x->inode < y->inode ? -1 : 1;
	return 0;
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
		return bad(img, err, errlen, E_INVAL, ds->off + 8, "STRINGS over 256 MiB");
	if ((r = sec_payload(img, ds, &p, err, errlen)))
		return r;
	img->strings = (char *)p;
	img->slen = ds->len;

	if ((r = sec_payload(img, dobj, &p, err, errlen)))
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
			r = bad(img, err, errlen, E_INVAL, eo, "object %u breaks a rule", i);
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
				r = bad(img, err, errlen, E_INVAL, dobj->off, "two objects of one identity");
				goto out;
			}
		free(s);
	}

	if (da->count > IMG_AREAS_MAX)
		return bad(img, err, errlen, E_INVAL, da->off + 16, "more than %u areas",
			   IMG_AREAS_MAX);
	if ((r = sec_payload(img, da, &p, err, errlen)))
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
			r = bad(img, err, errlen, E_INVAL, eo, "area %u breaks a rule", i);
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
		r = bad(img, err, errlen, E_INVAL, img->size - IMG_FOOTER + 16,
			"footer flags 0x%x, the deltas say 0x%x", img->fflags & 0xffff, ff);
out:
	free(p);
	return r;
}


/* ---- PROCESS, AUXV, THREADS, FILES: validated at open, decoded on demand ---- */

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int parse_process(struct pt_image *img, struct pt__capture *c, char *err, size_t errlen)
{
	const struct dent *d = &img->dir[img->sec[IMG_S_PROCESS]];
	unsigned char *p;
	uint32_t cl;
	int r;

	if (d->len < IMG_PROCESS_FIXED || d->len > IMG_PROCESS_FIXED + IMG_CMDLINE_MAX)
		return bad(img, err, errlen, E_INVAL, d->off + 8, "PROCESS length");
	if ((r = sec_payload(img, d, &p, err, errlen)))
		return r;
	cl = img_get32(p + 28);
	if (cl > IMG_CMDLINE_MAX || IMG_PROCESS_FIXED + (uint64_t)cl != d->len ||
	    !img_zero(p + 21, 3) || !img_zero(p + 32, 32)) {
		free(p);
		return bad(img, err, errlen, E_INVAL, d->off + IMG_SEC_HDR, "PROCESS record");
	}
	if (c) {
		c->ppid = (pid_t)img_get32(p);
		c->pgrp = (pid_t)img_get32(p + 4);
		c->sid = (pid_t)img_get32(p + 8);
		c->uid = img_get32(p + 12);
		c->gid = img_get32(p + 16);
		c->state = (char)p[20];
		c->nice = (int32_t)img_get32(p + 24);
		c->cmdline = malloc(cl + 1);
		if (!c->cmdline) {
			free(p);
			return -ENOMEM;
		}
		memcpy(c->cmdline, p + IMG_PROCESS_FIXED, cl);
		c->cmdline[cl] = 0;
		c->cmdline_len = cl;
	}
	free(p);
	return 0;
}

static int parse_auxv(struct pt_image *img, struct pt__capture *c, char *err, size_t errlen)
{
	const struct dent *d = &img->dir[img->sec[IMG_S_AUXV]];
	unsigned char *p;
	int r;

	if (d->count < 1 || d->count > IMG_AUXV_MAX)
		return bad(img, err, errlen, E_INVAL, d->off + 16, "AUXV of %u entries", d->count);
	if ((r = sec_payload(img, d, &p, err, errlen)))
		return r;
	for (uint32_t i = 0; i < d->count; i++) {
		const unsigned char *e = p + (size_t)i * d->esize;
		bool last = i + 1 == d->count;

		if (last ? (img_get64(e) || img_get64(e + 8)) : !img_get64(e)) {
			free(p);
			return bad(img, err, errlen, E_INVAL,
				   d->off + IMG_SEC_HDR + (uint64_t)i * d->esize,
				   "AT_NULL not last, or last not AT_NULL");
		}
	}
	if (c) {
		c->auxv = calloc(d->count, sizeof(*c->auxv));
		if (!c->auxv) {
			free(p);
			return -ENOMEM;
		}
		for (uint32_t i = 0; i < d->count; i++) {
			c->auxv[i][0] = img_get64(p + (size_t)i * d->esize);
			c->auxv[i][1] = img_get64(p + (size_t)i * d->esize + 8);
		}
		c->nauxv = d->count;
	}
	free(p);
	return 0;
}

/* One thread's notes at @p (@left bytes); decoded into @t if not NULL. */
static int parse_notes(struct pt_image *img, const unsigned char *p, uint64_t left,
		       uint32_t nn, uint64_t at, struct pt__thread *t, char *err, size_t errlen)
{
	for (uint32_t k = 0; k < nn; k++) {
		uint32_t nlen, dlen;
		uint64_t need;

		if (left < IMG_NOTE_HDR)
			return bad(img, err, errlen, E_INVAL, at, "note beyond notes_len");
		nlen = img_get32(p + 4);
		dlen = img_get32(p + 8);
		if (nlen < 1 || nlen > 15 || dlen > IMG_NOTE_DESC_MAX || img_get32(p + 12))
			return bad(img, err, errlen, E_INVAL, at, "note header");
		need = IMG_NOTE_HDR + img_align8(nlen) + img_align8(dlen);
		if (need > left)
			return bad(img, err, errlen, E_INVAL, at, "note beyond notes_len");
		for (uint32_t i = 0; i < nlen; i++)
			if (p[IMG_NOTE_HDR + i] < 0x20 || p[IMG_NOTE_HDR + i] > 0x7e)
				return bad(img, err, errlen, E_INVAL, at + IMG_NOTE_HDR,
					   "note name not printable ASCII");
		if (!img_zero(p + IMG_NOTE_HDR + nlen, img_align8(nlen) - nlen) ||
		    !img_zero(p + IMG_NOTE_HDR + img_align8(nlen) + dlen,
			      img_align8(dlen) - dlen))
			return bad(img, err, errlen, E_INVAL, at, "non-zero note padding");
		if (t) {
			struct pt__note *n = &t->notes[k];

			n->type = img_get32(p);
			memcpy(n->name, p + IMG_NOTE_HDR, nlen);
			n->name[nlen] = 0;
			n->len = dlen;
			n->desc = malloc(dlen ? dlen : 1);
			if (!n->desc)
				return -ENOMEM;
			memcpy(n->desc, p + IMG_NOTE_HDR + img_align8(nlen), dlen);
			t->nnotes = k + 1;
		}
		p += need;
		left -= need;
		at += need;
	}
	if (left)
		return bad(img, err, errlen, E_INVAL, at, "notes do not add up to notes_len");
	return 0;
}

static int parse_threads(struct pt_image *img, struct pt__capture *c, char *err, size_t errlen)
{
	const struct dent *d = &img->dir[img->sec[IMG_S_THREADS]];
	unsigned char *p, *q;
	uint64_t left, at;
	uint32_t *tids = NULL;
	int r;

	if (d->count > IMG_THREADS_MAX || (uint64_t)d->count * IMG_THREAD_HDR > d->len)
		return bad(img, err, errlen, E_INVAL, d->off + 16, "THREADS count %u", d->count);
	if ((r = sec_payload(img, d, &p, err, errlen)))
		return r;
	tids = malloc((d->count ? d->count : 1) * sizeof(*tids));
	if (!tids) {
		r = -ENOMEM;
		goto out;
	}
	if (c) {
		c->threads = calloc(d->count ? d->count : 1, sizeof(*c->threads));
		if (!c->threads) {
			r = -ENOMEM;
			goto out;
		}
	}
	q = p;
	left = d->len;
	at = d->off + IMG_SEC_HDR;
	for (uint32_t i = 0; i < d->count; i++) {
		uint32_t nn;
		uint64_t nl;

		if (left < IMG_THREAD_HDR) {
			r = bad(img, err, errlen, E_INVAL, at, "thread record beyond the section");
			goto out;
		}
		tids[i] = img_get32(q);
		nn = img_get32(q + 4);
		nl = img_get64(q + 32);
		if (!tids[i] || tids[i] > INT32_MAX || nn > IMG_NOTES_MAX || img_get32(q + 28) ||
		    img_get64(q + 40) || nl > left - IMG_THREAD_HDR ||
		    (i && tids[i] == (uint32_t)img->pid)) {
			r = bad(img, err, errlen, E_INVAL, at, "thread %u header", i);
			goto out;
		}
		if (c) {
			struct pt__thread *t = &c->threads[i];

			t->tid = (pid_t)tids[i];
			t->sigblocked = img_get64(q + 8);
			t->sigpending = img_get64(q + 16);
			t->cursig = img_get32(q + 24);
			t->notes = calloc(nn ? nn : 1, sizeof(*t->notes));
			c->nthreads = i + 1;
			if (!t->notes) {
				r = -ENOMEM;
				goto out;
			}
		}
		if ((r = parse_notes(img, q + IMG_THREAD_HDR, nl, nn, at + IMG_THREAD_HDR,
				     c ? &c->threads[i] : NULL, err, errlen)))
			goto out;
		q += IMG_THREAD_HDR + nl;
		left -= IMG_THREAD_HDR + nl;
		at += IMG_THREAD_HDR + nl;
	}
	if (left) {
		r = bad(img, err, errlen, E_INVAL, at, "thread records do not add up to the length");
		goto out;
	}
	qsort(tids, d->count, sizeof(*tids), u32_cmp);
	for (uint32_t i = 1; i < d->count; i++)
		if (tids[i] == tids[i - 1]) {
			r = bad(img, err, errlen, E_INVAL, d->off, "tid %u twice", tids[i]);
			goto out;
		}
	img->nthreads = d->count;
out:
	free(tids);
	free(p);
	return r;
}

static int parse_files(struct pt_image *img, struct pt__capture *c, char *err, size_t errlen)
{
	const struct dent *d = &img->dir[img->sec[IMG_S_FILES]];
	unsigned char *p;
	int r;

	if ((r = sec_payload(img, d, &p, err, errlen)))
		return r;
	if (c) {
		c->files = calloc(d->count ? d->count : 1, sizeof(*c->files));
		if (!c->files) {
			free(p);
			return -ENOMEM;
		}
	}
	for (uint32_t i = 0; i < d->count; i++) {
		const unsigned char *e = p + (size_t)i * d->esize;

		if ((i && img_get32(e) <= img_get32(e - d->esize)) || !str_ok(img, e + 36) ||
		    img_get32(e + 44)) {
			free(p);
			return bad(img, err, errlen, E_INVAL,
				   d->off + IMG_SEC_HDR + (uint64_t)i * d->esize, "FILES entry %u", i);
		}
		if (c) {
			struct pt__file *f = &c->files[i];
			uint32_t nl = img_get32(e + 40);

			f->fd = img_get32(e);
			f->flags = img_get32(e + 4);
			f->pos = img_get64(e + 8);
			f->dev_major = img_get32(e + 16);
			f->dev_minor = img_get32(e + 20);
			f->inode = img_get64(e + 24);
			f->mode = img_get32(e + 32);
			f->name = malloc(nl + 1);
			c->nfiles = i + 1;
			if (!f->name) {
				free(p);
				return -ENOMEM;
			}
			memcpy(f->name, img->strings + img_get32(e + 36), nl);
			f->name[nl] = 0;
		}
	}
	free(p);
	return 0;
}

static int parse_capture(struct pt_image *img, struct pt__capture *c, char *err, size_t errlen)
{
	int r = 0;

	if (img->sec[IMG_S_PROCESS] >= 0 && (r = parse_process(img, c, err, errlen)))
		return r;
	if (img->sec[IMG_S_AUXV] >= 0 && (r = parse_auxv(img, c, err, errlen)))
		return r;
	if (img->sec[IMG_S_THREADS] >= 0 && (r = parse_threads(img, c, err, errlen)))
		return r;
	if (img->sec[IMG_S_FILES] >= 0 && (r = parse_files(img, c, err, errlen)))
		return r;
	return 0;
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
		return bad(img, err, errlen, E_INVAL, img->size - IMG_FOOTER + 20,
			   "frame_count %u, the FRAMES table has %llu", img->frame_count,
			   (unsigned long long)total);
	/* each frame takes a section of at least 40 bytes and a table entry */
	if (total > img->size / (IMG_E_FRAME + IMG_SEC_HDR + 8))
		return bad(img, err, errlen, E_INVAL, img->size - IMG_FOOTER + 20,
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
			return bad(img, err, errlen, E_INVAL, d->off + 8, "FRAMES chunk over 16 MiB");
		if ((r = sec_payload(img, d, &p, err, errlen)))
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
				return bad(img, err, errlen, E_UNSUP, eo + 20, "codec %u", codec);
			}
			if (f->off % 8 || f->off < img->hsize || (n && f->off <= prev) ||
			    f->off > img->diroff - IMG_SEC_HDR || f->clen < 1 ||
			    f->clen > IMG_FRAME_CLEN_MAX ||
			    img_align8(f->clen) > img->diroff - IMG_SEC_HDR - f->off ||
			    f->pages < 1 || f->pages > IMG_FRAME_PAGES_MAX ||
			    (uint64_t)f->pages * img->page_size > IMG_FRAME_BYTES_MAX ||
			    !img_zero(e + 21, 3)) {
				free(p);
				return bad(img, err, errlen, E_INVAL, eo, "frame %u entry breaks a rule", n);
			}
			if ((r = sec_header(img, f->off, &fs, err, errlen))) {
				free(p);
				return r;
			}
			if (fs.type != IMG_S_FRAME || fs.len != f->clen || fs.count != f->pages ||
			    fs.esize) {
				free(p);
				return bad(img, err, errlen, E_INVAL, f->off,
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
			return bad(img, err, errlen, E_INVAL, pos, "no section starts here (gap or overlap)");
		pos += IMG_SEC_HDR + img_align8(len);	/* bounded by diroff: checked before */
	}
	if (pos != img->diroff)
		return bad(img, err, errlen, E_INVAL, pos, "gap before the directory");
	return 0;
}

static void get_run(const unsigned char *e, struct irun *r)
{
	r->ot = e[0];
	r->kind = e[1];
	r->detail = e[2];
	r->owner = img_get32(e + 4);
	r->page = img_get64(e + 8);
	r->npages = img_get64(e + 16);
	r->frame = img_get32(e + 24);
	r->fpage = img_get32(e + 28);
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
		return bad(img, err, errlen, E_UNSUP, eo + 1, "run kind %u", rn.kind);
	if (e[3] || (rn.detail && rn.kind != PT_PAGE_UNREADABLE))
		return bad(img, err, errlen, E_INVAL, eo + 2, "run detail or reserved byte");
	if (rn.ot == PT_OWNER_AREA && rn.owner < img->na)
		opos = rn.owner;
	else if (rn.ot == PT_OWNER_OBJECT && rn.owner < img->no)
		opos = img->na + rn.owner;
	else
		return bad(img, err, errlen, E_INVAL, eo, "run owner %u/%u does not exist", rn.ot,
			   rn.owner);
	if (!s->started || opos != s->pos) {
		if (s->started && opos < s->pos)
			return bad(img, err, errlen, E_INVAL, eo, "INDEX runs out of owner order");
		if (s->started && s->next_page != owner_pages(img, s->pos))
			return bad(img, err, errlen, E_INVAL, eo,
				   "INDEX: the previous owner's runs end before its end");
		for (size_t p = s->started ? s->pos + 1 : 0; p < opos; p++)
			if (owner_pages(img, p))
				return bad(img, err, errlen, E_INVAL, eo,
					   "INDEX: an owner before this one has no runs");
		if (!owner_pages(img, opos))
			return bad(img, err, errlen, E_INVAL, eo, "INDEX: runs for an owner that takes none");
		s->started = true;
		s->pos = opos;
		s->next_page = 0;
	}
	pages = owner_pages(img, opos);
	if (rn.page != s->next_page)
		return bad(img, err, errlen, E_INVAL, eo + 8,
			   "INDEX run does not start where the previous ended");
	if (rn.npages < 1 || rn.npages > pages - s->next_page)
		return bad(img, err, errlen, E_INVAL, eo + 16, "INDEX run beyond its owner's end");
	if (rn.kind == PT_PAGE_UNCHANGED &&
	    (!(img->hflags & IMG_HF_HAS_PARENT) || owner_delta(img, opos) == PT_DELTA_FULL))
		return bad(img, err, errlen, E_INVAL, eo + 1,
			   "UNCHANGED run in a base layer or a FULL owner");
	if (rn.kind == PT_PAGE_DATA) {
		if (s->frame >= img->frame_count || rn.frame != s->frame || rn.fpage != s->fpage ||
		    rn.npages > img->frames[s->frame].pages - s->fpage)
			return bad(img, err, errlen, E_INVAL, eo + 24,
				   "DATA run does not take the next pages of the frames");
		s->fpage += (uint32_t)rn.npages;
		if (s->fpage == img->frames[s->frame].pages) {
			s->frame++;
			s->fpage = 0;
		}
		s->data += rn.npages;
	} else if (rn.frame || rn.fpage) {
		return bad(img, err, errlen, E_INVAL, eo + 24, "frame fields of a non-DATA run");
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
			return bad(img, err, errlen, E_INVAL, d->off + 8, "INDEX chunk over 16 MiB");
		if (!d->count)
			continue;
		if ((r = sec_payload(img, d, &p, err, errlen)))
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
		return bad(img, err, errlen, E_INVAL, img->diroff, "INDEX: the last owner's runs end early");
	for (size_t p = s.started ? s.pos + 1 : 0; p < img->na + img->no; p++)
		if (owner_pages(img, p))
			return bad(img, err, errlen, E_INVAL, img->diroff,
				   "INDEX: %s %zu has no runs", p < img->na ? "area" : "object",
				   p < img->na ? p : p - img->na);
	if (s.frame != img->frame_count || s.fpage)
		return bad(img, err, errlen, E_INVAL, img->diroff, "frames not used up by DATA runs");
	if (s.data != img->data_pages)
		return bad(img, err, errlen, E_INVAL, img->size - IMG_FOOTER + 24,
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
		r = bad(img, err, errlen, -EINVAL, 0, "not a regular file");
		goto fail;
	}
	img->size = (uint64_t)st.st_size;
	if (img->size < IMG_HDR_FIXED + IMG_SEC_HDR + IMG_FOOTER) {
		r = bad(img, err, errlen, E_TRUNC, img->size, "file too short for an image");
		goto fail;
	}
	if ((r = rd(img, img->size - 8, end, 8, err, errlen)))
		goto fail;
	if (memcmp(end, IMG_END_MAGIC, 8)) {
		r = bad(img, err, errlen, E_TRUNC, img->size - 8, "no end magic (cut short?)");
		goto fail;
	}
	if ((r = parse_header(img, err, errlen)) || (r = parse_footer(img, err, errlen)) ||
	    (r = parse_directory(img, err, errlen)) || (r = parse_layout(img, err, errlen)) ||
	    (r = parse_capture(img, NULL, err, errlen)) || (r = parse_frames(img, err, errlen)) ||
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

/* Free what parse_capture() decoded (as pt__capture_free(), which lives in lib/process). */
static void capture_clear(struct pt__capture *c)
{
	for (size_t i = 0; i < c->nthreads; i++) {
		for (size_t k = 0; k < c->threads[i].nnotes; k++)
			free(c->threads[i].notes[k].desc);
		free(c->threads[i].notes);
	}
	for (size_t i = 0; i < c->nfiles; i++)
		free(c->files[i].name);
	free(c->threads);
	free(c->files);
	free(c->auxv);
	free(c->cmdline);
	memset(c, 0, sizeof(*c));
}

int pt__image_capture(struct pt_image *img, struct pt__capture *out, char *err, size_t errlen)
{
	int r;

	if (!img || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (img->sec[IMG_S_PROCESS] < 0 && img->sec[IMG_S_AUXV] < 0 && img->sec[IMG_S_THREADS] < 0)
		return bad(img, err, errlen, -ENOENT, 0, "no capture sections (a LIVE layer)");
	out->pid = img->pid;
	memcpy(out->comm, img->comm, 16);
	r = parse_capture(img, out, err, errlen);
	if (r)
		capture_clear(out);
	return r;
}

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
		if ((r = rd(img, c->off, img->cbuf, c->len, err, errlen)))
			return r;
		if (XXH3_64bits(img->cbuf, c->len) != c->sum)
			return bad(img, err, errlen, E_SUM, c->off - 8,
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
	if (!img->fbuf && !(img->fbuf = malloc(IMG_FRAME_BYTES_MAX)))
		return -ENOMEM;
	if (!img->dctx) {
		img->dctx = ZSTD_createDCtx();
		if (!img->dctx ||
		    ZSTD_isError(ZSTD_DCtx_setParameter(img->dctx, ZSTD_d_windowLogMax,
							 IMG_WINDOW_LOG_MAX)))
			return -ENOMEM;
	}
	if ((r = rd(img, f->off + IMG_SEC_HDR, z, plen, err, errlen)))
		return r;
	if (XXH3_64bits(z, f->clen) != f->sum)
		return bad(img, err, errlen, E_SUM, f->off + 24, "frame %u checksum", fi);
	if (!img_zero(z + f->clen, plen - f->clen))
		return bad(img, err, errlen, E_INVAL, f->off + IMG_SEC_HDR + f->clen,
			   "non-zero frame padding");
	if (ZSTD_getFrameHeader(&zh, z, f->clen) != 0 || zh.frameType != ZSTD_frame ||
	    zh.frameContentSize != ulen || zh.dictID || zh.checksumFlag ||
	    ZSTD_findFrameCompressedSize(z, f->clen) != f->clen)
		return bad(img, err, errlen, E_INVAL, f->off + IMG_SEC_HDR,
			   "frame %u is not one zstd frame of %zu bytes", fi, ulen);
	n = ZSTD_decompressDCtx(img->dctx, img->fbuf, ulen, z, f->clen);
	if (ZSTD_isError(n) || n != ulen)
		return bad(img, err, errlen, E_INVAL, f->off + IMG_SEC_HDR,
			   "frame %u does not decompress: %s", fi,
			   ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short");
	if (XXH3_64bits(img->fbuf, ulen) != f->usum)
		return bad(img, err, errlen, E_SUM, f->off + IMG_SEC_HDR,
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
		return bad(img, err, errlen, E_INVAL, img->diroff, "no runs");
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
		return bad(img, err, errlen, E_INVAL, c->off, "no run holds page %llu of owner %u/%u",
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
		return bad(img, err, errlen, -ENOENT, 30, "a base layer has no parent");
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
		r = bad(img, err, errlen, -ESTALE, 80, "parent %s is another layer (layer_id)", p->path);
	else if (p->file_checksum != img->parent_checksum)
		r = bad(img, err, errlen, -ESTALE, 96, "parent %s changed (file checksum)", p->path);
	else if (p->page_size != img->page_size || p->machine != img->machine)
		r = bad(img, err, errlen, -ESTALE, 20, "parent %s of another page size or machine",
			p->path);
	else if (p->seq + 1 != img->seq)
		r = bad(img, err, errlen, -ESTALE, 40, "parent %s has seq %llu, not %llu", p->path,
			(unsigned long long)p->seq, (unsigned long long)img->seq - 1);
	else if ((img->fflags & IMG_FF_ANY_TRACKED) &&
		 (p->pid != img->pid || memcmp(p->boot_id, img->boot_id, 16)))
		r = bad(img, err, errlen, -ESTALE, 24,
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
		struct irun rn;
		uint64_t k;

		if ((r = find_run(img, ot, owner, page, &rn, err, errlen)))
			return r;
		k = rn.page + rn.npages - page;
		if (k > n)
			k = n;
		if (rn.kind == PT_PAGE_DATA) {
			if ((r = load_frame(img, rn.frame, err, errlen)))
				return r;
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
					r = bad(p, err, errlen, -ESTALE, 0,
						"no stored object %u:%u inode %llu for the child's UNCHANGED pages",
						o->dev_major, o->dev_minor, (unsigned long long)o->inode);
				else
					r = resolve_owner(p, PT_OWNER_OBJECT, (uint32_t)j, page, k, buf,
							  kinds, err, errlen);
			}
			if (r)
				return r;
		}
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
			return bad(img, err, errlen, -ESTALE, 0,
				   "no private area at 0x%llx for the child's UNCHANGED pages",
				   (unsigned long long)addr);
		a = &img->areas[ai];
		k = (a->end - addr) / ps;
		if (k > n)
			k = n;
		if ((r = resolve_owner(img, PT_OWNER_AREA, (uint32_t)ai, (addr - a->start) / ps, k,
				       buf, kinds, err, errlen)))
			return r;
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
	if (!img || (npages && !buf) || npages > SIZE_MAX / PT_PAGE_SIZE)
		return -EINVAL;
	if (obj >= img->no)
		return bad(img, err, errlen, -ENOENT, 0, "no object %u", obj);
	if (!(img->objs[obj].flags & PT_OBJECT_STORED))
		return bad(img, err, errlen, -ENOENT, 0, "object %u is not stored", obj);
	pages = owner_pages(img, img->na + obj);
	if (page > pages || npages > pages - page)
		return bad(img, err, errlen, -EINVAL, 0, "pages beyond object %u's end", obj);
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
	if (!img || (npages && !buf) || addr % PT_PAGE_SIZE || npages > SIZE_MAX / PT_PAGE_SIZE)
		return -EINVAL;
	if (!npages)
		return 0;
	ai = find_area(img, addr);
	if (ai < 0)
		return bad(img, err, errlen, -ENOENT, 0, "no area at 0x%llx",
			   (unsigned long long)addr);
	a = &img->areas[ai];
	if (npages > (a->end - addr) / img->page_size)
		return bad(img, err, errlen, -EINVAL, 0, "0x%llx + %zu pages crosses the end of its area",
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
		fill((unsigned char *)buf + k * img->page_size, kinds ? kinds + k : NULL, npages - k,
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

		if ((r = rd(img, off, b, n, err, errlen)))
			goto out;
		XXH3_64bits_update(xs, b, n);
		off += n;
	}
	if (XXH3_64bits_digest(xs) != img->file_checksum) {
		r = bad(img, err, errlen, E_SUM, img->size - 16, "file checksum");
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
