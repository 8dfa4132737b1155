/* SPDX-License-Identifier: MIT */
/*
 * The image reader's internals, shared by lib/image/reader.c (open:
 * validation steps 1-6), lib/image/sections.c (PROCESS, AUXV, THREADS,
 * FILES) and lib/image/read.c (frames on use, chains, reads, verify).
 */
#ifndef PT_IMAGE_READER_H
#define PT_IMAGE_READER_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

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
	size_t fbuf_cap;
	long cached_frame;
	ZSTD_DCtx *dctx;

	struct pt_image *parent;
	bool verified;
};

struct irun {
	uint32_t ot, owner, kind, detail, frame, fpage;
	uint64_t page, npages;
};

/* One line "FILE: offset N: what" into @err; returns @e. */
PT_HIDDEN int pt__img_bad(const struct pt_image *img, char *err, size_t errlen, int e, uint64_t off,
			  const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* pread of exactly @len bytes; a short file is truncated (-ENODATA). */
PT_HIDDEN int pt__img_rd(const struct pt_image *img, uint64_t off, void *buf, size_t len, char *err,
			 size_t errlen);
/* A section's payload and padding, checked (checksum, zero padding); *out malloc'd. */
PT_HIDDEN int pt__img_sec_payload(struct pt_image *img, const struct dent *d, unsigned char **out,
				  char *err, size_t errlen);
/* PROCESS, AUXV, THREADS, FILES: validated, and decoded into @c when not NULL. */
PT_HIDDEN int pt__img_parse_capture(struct pt_image *img, struct pt__capture *c, char *err,
				    size_t errlen);

static inline bool area_shared(const struct pt_image_area *a)
{
	return (a->prot & PT_MAP_SHARED) && a->object != PT_IMAGE_NO_OBJECT;
}

/* Pages of owner position @pos (areas, then objects) when it takes runs, else 0. */
static inline uint64_t owner_pages(const struct pt_image *img, size_t pos)
{
	if (pos < img->na)
		return area_shared(&img->areas[pos]) ? 0 :
		       (img->areas[pos].end - img->areas[pos].start) / img->page_size;
	pos -= img->na;
	if (!(img->objs[pos].flags & PT_OBJECT_STORED))
		return 0;
	return img->objs[pos].size / img->page_size + (img->objs[pos].size % img->page_size != 0);
}

static inline uint32_t owner_delta(const struct pt_image *img, size_t pos)
{
	return pos < img->na ? img->areas[pos].delta : img->objs[pos - img->na].delta;
}

static inline int str_ok(const struct pt_image *img, const unsigned char *e)
{
	uint32_t off = img_get32(e), len = img_get32(e + 4);

	return len <= IMG_STR_MAX && (uint64_t)off + len <= img->slen;
}

/* qsort order of objects by identity */
static inline int obj_cmp(const void *a, const void *b)
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

static inline void get_run(const unsigned char *e, struct irun *r)
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

#endif
