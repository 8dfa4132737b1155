// SPDX-License-Identifier: MIT
/*
 * The streaming image writer (doc/image-format.md, "Writing protocol").
 *
 * It never seeks back: header first, then FRAME sections as data comes,
 * INDEX and FRAMES chunks as their buffers fill, and at finish the layout
 * (STRINGS, OBJECTS, AREAS: deltas may change until then) and the capture
 * sections, the directory and the footer.  The whole-file checksum is
 * accumulated as bytes go out.  Frames are compressed by a pool of
 * workers (lib/image/zpool.c) and written in submission order; anything
 * else written while frames are in flight (an INDEX chunk) waits for them
 * first, so the file's bytes do not depend on the number of threads.
 * Memory: up to max(2W, 16) frame buffers and their compressed twins (one
 * of each with one thread), one chunk buffer each of runs and frame entries, the
 * layout and the encoded capture.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>
#include <zstd.h>

#include "image/format.h"
#include "image/image.h"
#include "image/zpool.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

#if defined(__x86_64__)
#define IMG_MACHINE 62
#elif defined(__aarch64__)
#define IMG_MACHINE 183
#else
#define IMG_MACHINE 0
#endif

enum { CAP_PROCESS, CAP_AUXV, CAP_THREADS, CAP_FILES, CAP__N };

struct wrun {
	uint32_t owner_type, owner, kind, detail;
	uint64_t page, npages;
	uint32_t frame, frame_page;
};

struct pt__imgw {
	int dirfd, fd;
	char *path, *name, *tmp;
	bool overwrite;
	XXH3_state_t *xs;
	uint64_t off;
	int err;			/* sticky: the first error */
	char msg[256];
	uint32_t hflags;
	pid_t pid;
	bool has_parent;
	uint32_t chunk_bytes;

	/* layout */
	bool have_layout;
	struct pt_image_area *areas;
	size_t na;
	struct pt_image_object *objs;
	size_t no;
	uint32_t *area_soff, *obj_soff;
	unsigned char *strings;
	size_t slen, scap;
	uint8_t *unchanged;		/* per owner (areas, then objects): has UNCHANGED runs */

	/* run order: owner position in (areas, objects), next page */
	size_t pos;			/* na + no when no owner started */
	uint64_t next_page;
	bool started;
	struct wrun pend;
	bool have_pend;

	unsigned char *ichunk, *fchunk;
	size_t ifill, ffill;

	struct pt__zpool *zp;
	struct pt__zframe *cur;		/* the frame being filled */
	uint32_t fpages, fcap, frame_no;

	unsigned char *dir;
	size_t ndir, dircap;

	unsigned char *cap[CAP__N];
	size_t caplen[CAP__N];
	uint32_t capcount[CAP__N];
	bool have_capture;

	struct pt__imgw_result res;
};

__attribute__((format(printf, 3, 4)))
static int fail(struct pt__imgw *w, int e, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (w->err)
		return w->err;
	w->err = e;
	n = snprintf(w->msg, sizeof(w->msg), "%s: ", w->path);
	if (n < 0 || (size_t)n >= sizeof(w->msg))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(w->msg + n, sizeof(w->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	return e;
}

static void put_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

static int wr(struct pt__imgw *w, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t left = len;

	if (w->err)
		return w->err;
	while (left) {
		ssize_t n = write(w->fd, p, left);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail(w, -errno, "write at offset %llu: %s",
				    (unsigned long long)(w->off + (size_t)(p - (const unsigned char *)buf)),
				    strerror(errno));
		}
		if (n == 0)
			return fail(w, -EIO, "write returned 0");
		p += n;
		left -= (size_t)n;
	}
	XXH3_64bits_update(w->xs, buf, len);
	w->off += len;
	return 0;
}

static int dir_add(struct pt__imgw *w, uint32_t type, uint16_t flags, uint64_t off, uint64_t len)
{
	unsigned char *e;

	if (w->ndir >= IMG_DIR_MAX)
		return fail(w, -EFBIG, "more than %u directory entries", IMG_DIR_MAX);
	if (w->ndir == w->dircap) {
		size_t cap = w->dircap ? w->dircap * 2 : 16;
		unsigned char *d = realloc(w->dir, cap * IMG_E_DIR);

		if (!d)
			return fail(w, -ENOMEM, "out of memory");
		w->dir = d;
		w->dircap = cap;
	}
	e = w->dir + w->ndir++ * IMG_E_DIR;
	memset(e, 0, IMG_E_DIR);
	img_put32(e, type);
	img_put16(e + 4, flags);
	img_put64(e + 8, off);
	img_put64(e + 16, len);
	return 0;
}

/* One section: header, payload (of XXH3 @hash), zero padding; listed in the directory if @in_dir. */
static int section_h(struct pt__imgw *w, uint32_t type, uint16_t flags, const void *payload,
		     uint64_t len, uint32_t count, uint32_t esize, bool in_dir, uint64_t hash)
{
	static const unsigned char zeros[8];
	unsigned char h[IMG_SEC_HDR] = { 0 };
	uint64_t at = w->off;
	int r;

	img_put32(h, type);
	img_put16(h + 4, flags);
	img_put64(h + 8, len);
	img_put32(h + 16, count);
	img_put32(h + 20, esize);
	img_put64(h + 24, hash);
	if (in_dir && (r = dir_add(w, type, flags, at, len)))
		return r;
	if ((r = wr(w, h, sizeof(h))) || (len && (r = wr(w, payload, len))))
		return r;
	if (img_align8(len) != len)
		return wr(w, zeros, img_align8(len) - len);
	return 0;
}

static int section(struct pt__imgw *w, uint32_t type, uint16_t flags, const void *payload,
		   uint64_t len, uint32_t count, uint32_t esize, bool in_dir)
{
	return section_h(w, type, flags, payload, len, count, esize, in_dir,
			 XXH3_64bits(payload, len));
}

static int drain_frames(struct pt__imgw *w);

static int flush_index(struct pt__imgw *w)
{
	int r;

	if (!w->ifill)
		return 0;
	if ((r = drain_frames(w)))
		return r;
	r = section(w, IMG_S_INDEX, 0, w->ichunk, w->ifill, (uint32_t)(w->ifill / IMG_E_RUN),
		    IMG_E_RUN, true);
	w->ifill = 0;
	return r;
}

static int flush_frames_table(struct pt__imgw *w)
{
	int r;

	if (!w->ffill)
		return 0;
	r = section(w, IMG_S_FRAMES, 0, w->fchunk, w->ffill, (uint32_t)(w->ffill / IMG_E_FRAME),
		    IMG_E_FRAME, true);
	w->ffill = 0;
	return r;
}

/* A compressed frame into the file (in frame order) and its FRAMES entry. */
static int write_frame(struct pt__imgw *w, const struct pt__zframe *f)
{
	unsigned char *e;
	uint64_t at = w->off;
	int r;

	if (w->err)
		return w->err;
	if (f->zerr)
		return fail(w, -EIO, "zstd: %s", ZSTD_getErrorName(f->zerr));
	if (f->clen > IMG_FRAME_CLEN_MAX)
		return fail(w, -EIO, "zstd frame of %zu bytes over the format's cap", f->clen);
	if ((r = section_h(w, IMG_S_FRAME, 0, f->cbuf, f->clen, f->npages, 0, false,
			   f->payload_hash)))
		return r;
	if (w->ffill + IMG_E_FRAME > w->chunk_bytes && (r = flush_frames_table(w)))
		return r;
	e = w->fchunk + w->ffill;
	memset(e, 0, IMG_E_FRAME);
	img_put64(e, at);
	img_put64(e + 8, f->clen);
	img_put32(e + 16, f->npages);
	e[20] = IMG_CODEC_ZSTD;
	img_put64(e + 24, f->content_hash);
	w->ffill += IMG_E_FRAME;
	w->res.frames++;
	w->res.frame_bytes += f->clen;
	return 0;
}

/* Write the compressed frames in order: all submitted (@wait), or those done already. */
static int write_frames(struct pt__imgw *w, bool wait)
{
	const struct pt__zframe *f;
	int r = 0;

	while ((f = pt__zpool_done(w->zp, wait))) {
		int e = write_frame(w, f);

		pt__zpool_release(w->zp);
		if (!r)
			r = e;
	}
	return r;
}

static int drain_frames(struct pt__imgw *w)
{
	return write_frames(w, true);
}

/* Submit the frame being filled; write the oldest while the ring is full. */
static int flush_frame(struct pt__imgw *w)
{
	int r = 0;

	if (!w->fpages)
		return 0;
	w->cur->npages = w->fpages;
	pt__zpool_submit(w->zp);
	w->frame_no++;
	w->fpages = 0;
	while (pt__zpool_full(w->zp)) {
		const struct pt__zframe *f = pt__zpool_done(w->zp, true);
		int e = write_frame(w, f);

		pt__zpool_release(w->zp);
		if (!r)
			r = e;
	}
	if (!r)
		r = write_frames(w, false);
	w->cur = pt__zpool_filling(w->zp);
	return r;
}

static int push_run(struct pt__imgw *w, const struct wrun *rn)
{
	unsigned char *e;
	int r;

	if (w->ifill + IMG_E_RUN > w->chunk_bytes && (r = flush_index(w)))
		return r;
	e = w->ichunk + w->ifill;
	memset(e, 0, IMG_E_RUN);
	e[0] = (unsigned char)rn->owner_type;
	e[1] = (unsigned char)rn->kind;
	e[2] = (unsigned char)rn->detail;
	img_put32(e + 4, rn->owner);
	img_put64(e + 8, rn->page);
	img_put64(e + 16, rn->npages);
	img_put32(e + 24, rn->frame);
	img_put32(e + 28, rn->frame_page);
	w->ifill += IMG_E_RUN;
	return 0;
}

/* Queue a run, merged with the previous one when it continues it. */
static int add_run(struct pt__imgw *w, const struct wrun *rn)
{
	struct wrun *p = &w->pend;
	int r;

	if (w->have_pend && p->owner_type == rn->owner_type && p->owner == rn->owner &&
	    p->kind == rn->kind && p->detail == rn->detail && p->page + p->npages == rn->page &&
	    (rn->kind != PT_PAGE_DATA ||
	     (p->frame == rn->frame && p->frame_page + p->npages == rn->frame_page))) {
		p->npages += rn->npages;
		return 0;
	}
	if (w->have_pend && (r = push_run(w, p)))
		return r;
	*p = *rn;
	w->have_pend = true;
	return 0;
}

static bool area_shared(const struct pt_image_area *a)
{
	return (a->prot & PT_MAP_SHARED) && a->object != PT_IMAGE_NO_OBJECT;
}

/* Pages of owner position @pos (areas, then objects), or 0 if it takes no runs. */
static uint64_t owner_pages(const struct pt__imgw *w, size_t pos)
{
	if (pos < w->na) {
		const struct pt_image_area *a = &w->areas[pos];

		return area_shared(a) ? 0 : (a->end - a->start) / PT_PAGE_SIZE;
	}
	pos -= w->na;
	if (!(w->objs[pos].flags & PT_OBJECT_STORED))
		return 0;
	return (w->objs[pos].size + PT_PAGE_SIZE - 1) / PT_PAGE_SIZE;
}

static int strings_add(struct pt__imgw *w, const char *s, size_t len, uint32_t *off)
{
	if (!s)
		len = 0;
	if (len > IMG_STR_MAX)
		return -ENAMETOOLONG;
	if (w->slen + len > IMG_STRINGS_MAX)
		return -EFBIG;
	if (w->slen + len > w->scap) {
		size_t cap = w->scap ? w->scap : 4096;
		unsigned char *p;

		while (cap < w->slen + len)
			cap *= 2;
		p = realloc(w->strings, cap);
		if (!p)
			return -ENOMEM;
		w->strings = p;
		w->scap = cap;
	}
	*off = (uint32_t)w->slen;
	if (len)
		memcpy(w->strings + w->slen, s, len);
	w->slen += len;
	return 0;
}

/* ---- open ---- */

static int read_boot_id(uint8_t out[16])
{
	char buf[64];
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n;
	int j = 0;

	memset(out, 0, 16);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	for (ssize_t i = 0; i + 1 < n && j < 16; i++) {
		unsigned hi, lo;

		if (buf[i] == '-')
			continue;
		if (sscanf(buf + i, "%1x%1x", &hi, &lo) != 2)
			break;
		out[j++] = (uint8_t)(hi << 4 | lo);
		i++;
	}
	return j == 16 ? 0 : -EIO;
}

static int fill_random(void *p, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = getrandom((char *)p + done, n - done, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)r;
	}
	return 0;
}

/* The parent's path as stored: its file name when in @w's directory, else absolute. */
static int parent_link(struct pt__imgw *w, const char *ppath, char **out)
{
	char *copy = strdup(ppath), *slash, *abs;
	const char *pdir, *base;
	struct stat a, b;

	*out = NULL;
	if (!copy)
		return -ENOMEM;
	slash = strrchr(copy, '/');
	if (slash) {
		*slash = 0;
		pdir = *copy ? copy : "/";
		base = slash + 1;
	} else {
		pdir = ".";
		base = copy;
	}
	if (fstat(w->dirfd, &a) == 0 && stat(pdir, &b) == 0 && a.st_dev == b.st_dev &&
	    a.st_ino == b.st_ino) {
		*out = strdup(base);
		free(copy);
		return *out ? 0 : -ENOMEM;
	}
	free(copy);
	abs = realpath(ppath, NULL);
	if (!abs)
		return -errno;
	*out = abs;
	return 0;
}

static int write_header(struct pt__imgw *w, const struct pt__imgw_opts *o, char *err,
			size_t errlen)
{
	unsigned char h[IMG_HDR_MAX] = { 0 };
	struct pt_image_info pi = { .sz = sizeof(pi) };
	char *ppath = NULL;
	size_t plen = 0, hs;
	struct timespec ts;
	uint8_t id[16];
	int r;

	if (o->parent) {
		if ((r = pt_image_info(o->parent, &pi)))
			return fail(w, r, "cannot read the parent layer's header");
		if (pi.seq >= IMG_SEQ_MAX)
			return fail(w, -EMLINK, "chain of more than %u layers", IMG_SEQ_MAX + 1);
		if (pi.page_size != PT_PAGE_SIZE || pi.machine != IMG_MACHINE)
			return fail(w, -EINVAL, "parent layer of another page size or machine");
		if ((r = parent_link(w, pt__image_path(o->parent), &ppath)))
			return fail(w, r, "parent %s: %s", pt__image_path(o->parent),
				    strerror(-r));
		plen = strlen(ppath);
		if (plen == 0 || plen > IMG_PATH_MAX) {
			free(ppath);
			return fail(w, -ENAMETOOLONG, "parent path longer than %u bytes",
				    IMG_PATH_MAX);
		}
		w->has_parent = true;
	}
	hs = IMG_HDR_FIXED + img_align8(plen);
	memcpy(h, IMG_MAGIC, 8);
	img_put16(h + 8, IMG_VERSION_MAJOR);
	img_put16(h + 10, IMG_VERSION_MINOR);
	img_put32(h + 12, (uint32_t)hs);
	w->hflags = (o->flags & (IMG_HF_FROZEN | IMG_HF_LIVE)) | (plen ? IMG_HF_HAS_PARENT : 0);
	img_put32(h + 16, w->hflags);
	img_put32(h + 20, (uint32_t)PT_PAGE_SIZE);
	img_put32(h + 24, (uint32_t)o->pid);
	img_put16(h + 28, IMG_MACHINE);
	img_put16(h + 30, (uint16_t)plen);
	clock_gettime(CLOCK_REALTIME, &ts);
	img_put64(h + 32, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
	img_put64(h + 40, o->parent ? pi.seq + 1 : 0);
	if (read_boot_id(id) == 0)
		memcpy(h + 48, id, 16);
	do {
		if ((r = fill_random(id, sizeof(id)))) {
			free(ppath);
			return fail(w, r, "getrandom: %s", strerror(-r));
		}
	} while (img_zero(id, sizeof(id)));
	memcpy(h + 64, id, 16);
	if (o->parent) {
		memcpy(h + 80, pi.layer_id, 16);
		img_put64(h + 96, pi.file_checksum);
	}
	if (o->comm)
		memcpy(h + 104, o->comm, strnlen(o->comm, 15));
	if (plen)
		memcpy(h + 120, ppath, plen);
	free(ppath);
	img_put64(h + hs - 8, XXH3_64bits(h, hs - 8));
	(void)err;
	(void)errlen;
	return wr(w, h, hs);
}

int pt__imgw_open(const char *path, const struct pt__imgw_opts *o, struct pt__imgw **out,
		  char *err, size_t errlen)
{
	struct pt__imgw *w;
	const char *slash, *base;
	char *dir;
	uint32_t rnd = 0;
	int r, lvl;

	*out = NULL;
	if (!path || !o || !*path || ((o->flags & IMG_HF_FROZEN) != 0) ==
	    ((o->flags & IMG_HF_LIVE) != 0) || (o->flags & ~(IMG_HF_FROZEN | IMG_HF_LIVE)) ||
	    o->pid <= 0 || (o->frame_pages > IMG_FRAME_PAGES_MAX) ||
	    (o->chunk_bytes && (o->chunk_bytes < 64 || o->chunk_bytes > IMG_CHUNK_MAX))) {
		put_err(err, errlen, "image writer: invalid options");
		return -EINVAL;
	}
	slash = strrchr(path, '/');
	base = slash ? slash + 1 : path;
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
		put_err(err, errlen, "image writer: the path names no file");
		return -EINVAL;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = w->dirfd = -1;
	w->overwrite = o->overwrite;
	w->pid = o->pid;
	w->path = strdup(path);
	w->name = strdup(base);
	dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
	w->xs = XXH3_createState();
	w->fcap = o->frame_pages ? o->frame_pages : IMG_FRAME_PAGES_DEFAULT;
	w->chunk_bytes = o->chunk_bytes ? o->chunk_bytes / 32 * 32 : IMG_CHUNK_DEFAULT;
	w->ichunk = malloc(w->chunk_bytes);
	w->fchunk = malloc(w->chunk_bytes);
	if (!w->path || !w->name || !dir || !w->xs || !w->ichunk || !w->fchunk) {
		free(dir);
		pt__imgw_abort(w);
		put_err(err, errlen, "image writer: out of memory");
		return -ENOMEM;
	}
	XXH3_64bits_reset(w->xs);
	lvl = o->level ? o->level : 1;
	r = pt__zpool_create(lvl, w->fcap, pt__zpool_threads(), &w->zp);
	if (r) {
		free(dir);
		pt__imgw_abort(w);
		put_err(err, errlen, r == -EINVAL ? "image writer: invalid zstd level"
				     : "image writer: cannot start the compression threads");
		return r;
	}
	w->cur = pt__zpool_filling(w->zp);
	w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dirfd < 0) {
		r = -errno;
		fail(w, r, "directory %s: %s", dir, strerror(errno));
		free(dir);
		goto out;
	}
	free(dir);
	if ((r = fill_random(&rnd, sizeof(rnd))))
		goto out;
	if (asprintf(&w->tmp, ".%s.tmp.%d.%08x", w->name, (int)getpid(), rnd) < 0) {
		w->tmp = NULL;
		r = -ENOMEM;
		goto out;
	}
	w->fd = openat(w->dirfd, w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		       0600);
	if (w->fd < 0) {
		r = -errno;
		fail(w, r, "cannot create %s: %s", w->tmp, strerror(errno));
		free(w->tmp);
		w->tmp = NULL;
		goto out;
	}
	if (fchmod(w->fd, 0600) < 0) {
		r = fail(w, -errno, "fchmod: %s", strerror(errno));
		goto out;
	}
	w->pos = SIZE_MAX;
	if ((r = write_header(w, o, err, errlen)))
		goto out;
	*out = w;
	return 0;
out:
	if (!w->err)
		fail(w, r, "%s", strerror(-r));
	put_err(err, errlen, w->msg);
	pt__imgw_abort(w);
	return r;
}

/* ---- layout ---- */

int pt__imgw_layout(struct pt__imgw *w, const struct pt_image_area *areas, size_t na,
		    const struct pt_image_object *objs, size_t no)
{
	int r;

	if (w->err)
		return w->err;
	if (w->have_layout || (na && !areas) || (no && !objs) || no >= IMG_NO_OBJECT)
		return -EINVAL;
	if (na > IMG_AREAS_MAX)
		return fail(w, -EFBIG, "more than %u areas", IMG_AREAS_MAX);
	for (size_t i = 0; i < na; i++) {
		const struct pt_image_area *a = &areas[i];

		if (a->start % PT_PAGE_SIZE || a->end % PT_PAGE_SIZE || a->end <= a->start ||
		    a->offset % PT_PAGE_SIZE || (i && a->start < areas[i - 1].end) ||
		    (a->prot & ~(PT_PROT_READ | PT_PROT_WRITE | PT_PROT_EXEC | PT_MAP_SHARED)) ||
		    a->kind > 255 || a->delta > PT_DELTA_COMPARED ||
		    (a->object != PT_IMAGE_NO_OBJECT && a->object >= no) ||
		    (a->object == PT_IMAGE_NO_OBJECT && a->offset) ||
		    (area_shared(a) && a->delta != PT_DELTA_FULL))
			return fail(w, -EINVAL, "area %zu is not valid", i);
	}
	for (size_t i = 0; i < no; i++) {
		const struct pt_image_object *ob = &objs[i];

		if (ob->kind < PT_VMA_FILE || ob->kind > PT_VMA_SPECIAL ||
		    ob->size > IMG_OBJ_SIZE_MAX || ob->delta > PT_DELTA_COMPARED ||
		    (ob->flags & ~(uint32_t)(PT_OBJECT_STORED | PT_OBJECT_DELETED)) ||
		    (!(ob->flags & PT_OBJECT_STORED) && ob->delta) ||
		    ((ob->flags & PT_OBJECT_STORED) && ob->kind == PT_VMA_SPECIAL))
			return fail(w, -EINVAL, "object %zu is not valid", i);
		for (size_t j = 0; j < i; j++)
			if (objs[j].dev_major == ob->dev_major &&
			    objs[j].dev_minor == ob->dev_minor && objs[j].inode == ob->inode)
				return fail(w, -EINVAL, "objects %zu and %zu are the same", j, i);
	}
	w->areas = calloc(na ? na : 1, sizeof(*w->areas));
	w->objs = calloc(no ? no : 1, sizeof(*w->objs));
	w->area_soff = calloc(na ? na : 1, sizeof(uint32_t));
	w->obj_soff = calloc(no ? no : 1, sizeof(uint32_t));
	w->unchanged = calloc(na + no + 1, 1);
	if (!w->areas || !w->objs || !w->area_soff || !w->obj_soff || !w->unchanged)
		return fail(w, -ENOMEM, "out of memory");
	if (na)
		memcpy(w->areas, areas, na * sizeof(*areas));
	if (no)
		memcpy(w->objs, objs, no * sizeof(*objs));
	w->na = na;
	w->no = no;
	for (size_t i = 0; i < na; i++) {
		size_t l = areas[i].path ? areas[i].path_len : 0;

		if ((r = strings_add(w, areas[i].path, l, &w->area_soff[i])))
			return fail(w, r, "area %zu path: %s", i, strerror(-r));
		w->areas[i].path = NULL;
		w->areas[i].path_len = l;
	}
	for (size_t i = 0; i < no; i++) {
		size_t l = objs[i].name ? objs[i].name_len : 0;

		if ((r = strings_add(w, objs[i].name, l, &w->obj_soff[i])))
			return fail(w, r, "object %zu name: %s", i, strerror(-r));
		w->objs[i].name = NULL;
		w->objs[i].name_len = l;
	}
	w->have_layout = true;
	w->pos = 0;
	w->next_page = 0;
	return 0;
}

int pt__imgw_set_delta(struct pt__imgw *w, uint32_t owner_type, uint32_t owner, uint32_t delta)
{
	if (w->err)
		return w->err;
	if (!w->have_layout || delta > PT_DELTA_COMPARED)
		return -EINVAL;
	if (owner_type == PT_OWNER_AREA && owner < w->na) {
		if (area_shared(&w->areas[owner]) && delta)
			return -EINVAL;
		w->areas[owner].delta = delta;
		return 0;
	}
	if (owner_type == PT_OWNER_OBJECT && owner < w->no) {
		if (!(w->objs[owner].flags & PT_OBJECT_STORED) && delta)
			return -EINVAL;
		w->objs[owner].delta = delta;
		return 0;
	}
	return -EINVAL;
}

/* ---- runs ---- */

int pt__imgw_run(struct pt__imgw *w, uint32_t owner_type, uint32_t owner, uint32_t kind,
		 uint32_t detail, uint64_t npages, const void *data)
{
	size_t want;
	uint64_t page;
	int r;

	if (w->err)
		return w->err;
	if (!w->have_layout || npages == 0 || kind < PT_PAGE_DATA || kind > PT_PAGE_UNREADABLE ||
	    (kind == PT_PAGE_DATA && !data) || detail > 255 ||
	    (kind != PT_PAGE_UNREADABLE && detail) ||
	    (kind == PT_PAGE_UNCHANGED && !w->has_parent))
		return -EINVAL;
	if (owner_type == PT_OWNER_AREA && owner < w->na)
		want = owner;
	else if (owner_type == PT_OWNER_OBJECT && owner < w->no)
		want = w->na + owner;
	else
		return -EINVAL;
	if (!w->started || want != w->pos) {
		/* a new owner: the previous one must be complete, those between take no runs */
		if (w->started && w->next_page != owner_pages(w, w->pos))
			return -EINVAL;
		if (w->started && want <= w->pos)
			return -EINVAL;
		for (size_t p = w->started ? w->pos + 1 : 0; p < want; p++)
			if (owner_pages(w, p))
				return -EINVAL;
		if (!owner_pages(w, want))
			return -EINVAL;
		w->pos = want;
		w->next_page = 0;
		w->started = true;
	}
	if (npages > owner_pages(w, want) - w->next_page)
		return -EINVAL;
	page = w->next_page;
	w->next_page += npages;
	if (kind == PT_PAGE_UNCHANGED)
		w->unchanged[want] = 1;
	w->res.pages_by_kind[kind] += npages;
	if (kind != PT_PAGE_DATA) {
		struct wrun rn = { owner_type, owner, kind, detail, page, npages, 0, 0 };

		return add_run(w, &rn);
	}
	w->res.data_pages += npages;
	while (npages) {
		uint32_t k = w->fcap - w->fpages;
		struct wrun rn;

		if (k > npages)
			k = (uint32_t)npages;
		rn = (struct wrun){ owner_type, owner, kind, 0, page, k, w->frame_no, w->fpages };
		memcpy(w->cur->ubuf + (size_t)w->fpages * PT_PAGE_SIZE, data,
		       (size_t)k * PT_PAGE_SIZE);
		data = (const unsigned char *)data + (size_t)k * PT_PAGE_SIZE;
		w->fpages += k;
		if ((r = add_run(w, &rn)))
			return r;
		if (w->fpages == w->fcap && (r = flush_frame(w)))
			return r;
		page += k;
		npages -= k;
	}
	return 0;
}

/* ---- capture ---- */

static int note_name_ok(const char *name)
{
	size_t n = strnlen(name, 16);

	if (n < 1 || n > 15)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (name[i] < 0x20 || name[i] > 0x7e)	/* printable ASCII */
			return 0;
	return 1;
}

static int tid_cmp(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return x < y ? -1 : x > y;
}

static int tids_unique(const struct pt__capture *c)
{
	pid_t *t = malloc((c->nthreads ? c->nthreads : 1) * sizeof(*t));
	int r = 0;

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < c->nthreads; i++)
		t[i] = c->threads[i].tid;
	qsort(t, c->nthreads, sizeof(*t), tid_cmp);
	for (size_t i = 1; i < c->nthreads; i++)
		if (t[i] == t[i - 1])
			r = -EINVAL;
	free(t);
	return r;
}

static int enc_threads(struct pt__imgw *w, const struct pt__capture *c)
{
	uint64_t len = 0;
	unsigned char *p;
	int r;

	if (c->nthreads > IMG_THREADS_MAX)
		return -EFBIG;
	for (size_t i = 0; i < c->nthreads; i++) {
		const struct pt__thread *t = &c->threads[i];

		if (t->nnotes > IMG_NOTES_MAX || (t->nnotes && !t->notes) || t->tid <= 0 ||
		    (i && t->tid == w->pid))	/* the main thread comes first */
			return -EINVAL;
		len += IMG_THREAD_HDR;
		for (size_t k = 0; k < t->nnotes; k++) {
			const struct pt__note *n = &t->notes[k];

			if (!note_name_ok(n->name) || n->len > IMG_NOTE_DESC_MAX ||
			    (n->len && !n->desc))
				return -EINVAL;
			len += IMG_NOTE_HDR + img_align8(strlen(n->name)) + img_align8(n->len);
		}
	}
	if ((r = tids_unique(c)))
		return r;
	p = calloc(1, len ? len : 1);
	if (!p)
		return -ENOMEM;
	w->cap[CAP_THREADS] = p;
	w->caplen[CAP_THREADS] = len;
	w->capcount[CAP_THREADS] = (uint32_t)c->nthreads;
	for (size_t i = 0; i < c->nthreads; i++) {
		const struct pt__thread *t = &c->threads[i];
		unsigned char *h = p;
		uint64_t nl = 0;

		p += IMG_THREAD_HDR;
		for (size_t k = 0; k < t->nnotes; k++) {
			const struct pt__note *n = &t->notes[k];
			size_t nlen = strlen(n->name);

			img_put32(p, n->type);
			img_put32(p + 4, (uint32_t)nlen);
			img_put32(p + 8, n->len);
			p += IMG_NOTE_HDR;
			memcpy(p, n->name, nlen);
			p += img_align8(nlen);
			if (n->len)
				memcpy(p, n->desc, n->len);
			p += img_align8(n->len);
			nl += IMG_NOTE_HDR + img_align8(nlen) + img_align8(n->len);
		}
		img_put32(h, (uint32_t)t->tid);
		img_put32(h + 4, (uint32_t)t->nnotes);
		img_put64(h + 8, t->sigblocked);
		img_put64(h + 16, t->sigpending);
		img_put32(h + 24, t->cursig);
		img_put64(h + 32, nl);
	}
	return 0;
}

int pt__imgw_capture(struct pt__imgw *w, const struct pt__capture *c)
{
	size_t cl, na = 0;
	unsigned char *p;
	int r;

	if (w->err)
		return w->err;
	if (w->have_capture || !c || (c->nauxv && !c->auxv) || (c->nthreads && !c->threads) ||
	    (c->nfiles && !c->files) || (c->cmdline_len && !c->cmdline))
		return -EINVAL;
	w->have_capture = true;
	/* PROCESS */
	cl = c->cmdline_len > IMG_CMDLINE_MAX ? IMG_CMDLINE_MAX : c->cmdline_len;
	p = calloc(1, IMG_PROCESS_FIXED + cl);
	if (!p)
		return fail(w, -ENOMEM, "out of memory");
	img_put32(p, (uint32_t)c->ppid);
	img_put32(p + 4, (uint32_t)c->pgrp);
	img_put32(p + 8, (uint32_t)c->sid);
	img_put32(p + 12, c->uid);
	img_put32(p + 16, c->gid);
	p[20] = (unsigned char)c->state;
	img_put32(p + 24, (uint32_t)c->nice);
	img_put32(p + 28, (uint32_t)cl);
	if (cl)
		memcpy(p + IMG_PROCESS_FIXED, c->cmdline, cl);
	w->cap[CAP_PROCESS] = p;
	w->caplen[CAP_PROCESS] = IMG_PROCESS_FIXED + cl;
	/* AUXV: the entries before the first AT_NULL, then AT_NULL */
	while (na < c->nauxv && c->auxv[na][0] != 0)
		na++;
	if (na + 1 > IMG_AUXV_MAX)
		return fail(w, -EFBIG, "auxv of more than %u entries", IMG_AUXV_MAX);
	p = calloc(na + 1, IMG_E_AUXV);
	if (!p)
		return fail(w, -ENOMEM, "out of memory");
	for (size_t i = 0; i < na; i++) {
		img_put64(p + i * IMG_E_AUXV, c->auxv[i][0]);
		img_put64(p + i * IMG_E_AUXV + 8, c->auxv[i][1]);
	}
	w->cap[CAP_AUXV] = p;
	w->caplen[CAP_AUXV] = (na + 1) * IMG_E_AUXV;
	w->capcount[CAP_AUXV] = (uint32_t)(na + 1);
	/* THREADS */
	if ((r = enc_threads(w, c)))
		return fail(w, r, "threads: %s", strerror(-r));
	/* FILES */
	if (c->nfiles > UINT32_MAX / IMG_E_FILE)
		return fail(w, -EFBIG, "too many open files");
	p = calloc(c->nfiles ? c->nfiles : 1, IMG_E_FILE);
	if (!p)
		return fail(w, -ENOMEM, "out of memory");
	w->cap[CAP_FILES] = p;
	w->caplen[CAP_FILES] = c->nfiles * IMG_E_FILE;
	w->capcount[CAP_FILES] = (uint32_t)c->nfiles;
	for (size_t i = 0; i < c->nfiles; i++) {
		const struct pt__file *f = &c->files[i];
		size_t nl = f->name ? strlen(f->name) : 0;
		unsigned char *e = p + i * IMG_E_FILE;
		uint32_t soff = 0;

		if (i && f->fd <= c->files[i - 1].fd)
			return fail(w, -EINVAL, "files not sorted by fd");
		if ((r = strings_add(w, f->name, nl > IMG_STR_MAX ? IMG_STR_MAX : nl, &soff)))
			return fail(w, r, "file names: %s", strerror(-r));
		img_put32(e, f->fd);
		img_put32(e + 4, f->flags);
		img_put64(e + 8, f->pos);
		img_put32(e + 16, f->dev_major);
		img_put32(e + 20, f->dev_minor);
		img_put64(e + 24, f->inode);
		img_put32(e + 32, f->mode);
		img_put32(e + 36, soff);
		img_put32(e + 40, (uint32_t)(nl > IMG_STR_MAX ? IMG_STR_MAX : nl));
	}
	return 0;
}

/* ---- finish ---- */

static int write_layout(struct pt__imgw *w)
{
	size_t n = w->na > w->no ? w->na : w->no;
	unsigned char *buf = calloc(n ? n : 1, 64);
	int r;

	if (!buf)
		return fail(w, -ENOMEM, "out of memory");
	if ((r = section(w, IMG_S_STRINGS, 0, w->strings, w->slen, 0, 0, true)))
		goto out;
	memset(buf, 0, (n ? n : 1) * 64);
	for (size_t i = 0; i < w->no; i++) {
		const struct pt_image_object *o = &w->objs[i];
		unsigned char *e = buf + i * IMG_E_OBJECT;

		img_put32(e, o->dev_major);
		img_put32(e + 4, o->dev_minor);
		img_put64(e + 8, o->inode);
		img_put64(e + 16, o->size);
		e[24] = (unsigned char)o->kind;
		e[25] = (unsigned char)o->delta;
		img_put16(e + 26, (uint16_t)o->flags);
		img_put32(e + 28, o->kind == PT_VMA_SYSV ? o->sysv_key : 0);
		img_put32(e + 32, w->obj_soff[i]);
		img_put32(e + 36, (uint32_t)o->name_len);
		img_put64(e + 40, o->mtime_ns);
	}
	if ((r = section(w, IMG_S_OBJECTS, 0, buf, w->no * IMG_E_OBJECT, (uint32_t)w->no,
			 IMG_E_OBJECT, true)))
		goto out;
	memset(buf, 0, (n ? n : 1) * 64);
	for (size_t i = 0; i < w->na; i++) {
		const struct pt_image_area *a = &w->areas[i];
		unsigned char *e = buf + i * IMG_E_AREA;

		img_put64(e, a->start);
		img_put64(e + 8, a->end);
		img_put64(e + 16, a->offset);
		img_put32(e + 24, a->prot);
		e[28] = (unsigned char)a->kind;
		e[29] = (unsigned char)a->delta;
		img_put32(e + 32, a->object);
		img_put32(e + 40, w->area_soff[i]);
		img_put32(e + 44, (uint32_t)a->path_len);
	}
	r = section(w, IMG_S_AREAS, 0, buf, w->na * IMG_E_AREA, (uint32_t)w->na, IMG_E_AREA,
		    true);
out:
	free(buf);
	return r;
}

static int finish_checks(struct pt__imgw *w)
{
	if (!w->have_layout)
		return fail(w, -EINVAL, "no layout");
	if ((w->hflags & IMG_HF_FROZEN) && !w->have_capture)
		return fail(w, -EINVAL, "a FROZEN layer without its capture");
	/* every owner that takes runs has them all */
	for (size_t p = w->started ? w->pos : 0; p < w->na + w->no; p++) {
		uint64_t need = owner_pages(w, p);

		if (w->started && p == w->pos) {
			if (w->next_page != need)
				return fail(w, -EINVAL, "owner %zu not covered by runs", p);
		} else if (need) {
			return fail(w, -EINVAL, "owner %zu has no runs", p);
		}
	}
	for (size_t p = 0; p < w->na + w->no; p++) {
		uint32_t d = p < w->na ? w->areas[p].delta : w->objs[p - w->na].delta;

		if (w->unchanged[p] && d == PT_DELTA_FULL)
			return fail(w, -EINVAL, "owner %zu has UNCHANGED runs but delta FULL", p);
	}
	return 0;
}

static uint32_t footer_flags(const struct pt__imgw *w)
{
	uint32_t f = 0;

	for (size_t i = 0; i < w->na + w->no; i++) {
		uint32_t d = i < w->na ? w->areas[i].delta : w->objs[i - w->na].delta;

		if (d == PT_DELTA_TRACKED)
			f |= IMG_FF_ANY_TRACKED;
		else if (d == PT_DELTA_COMPARED)
			f |= IMG_FF_ANY_COMPARED;
	}
	return f;
}

static int write_tail(struct pt__imgw *w)
{
	static const uint32_t capsec[CAP__N] = { IMG_S_PROCESS, IMG_S_AUXV, IMG_S_THREADS,
						 IMG_S_FILES };
	static const uint32_t capes[CAP__N] = { 0, IMG_E_AUXV, 0, IMG_E_FILE };
	unsigned char f[IMG_FOOTER] = { 0 };
	uint64_t diroff;
	int r;

	if ((r = finish_checks(w)))
		return r;
	if (w->have_pend && (r = push_run(w, &w->pend)))
		return r;
	w->have_pend = false;
	if ((r = flush_frame(w)) || (r = drain_frames(w)) || (r = flush_frames_table(w)) ||
	    (r = flush_index(w)) ||
	    (r = write_layout(w)))
		return r;
	for (int i = 0; w->have_capture && i < CAP__N; i++)
		if ((r = section(w, capsec[i], i == CAP_FILES ? IMG_SF_OPTIONAL : 0, w->cap[i],
				 w->caplen[i], w->capcount[i], capes[i], true)))
			return r;
	diroff = w->off;
	if ((r = section(w, IMG_S_DIRECTORY, 0, w->dir, w->ndir * IMG_E_DIR, (uint32_t)w->ndir,
			 IMG_E_DIR, false)))
		return r;
	img_put64(f, diroff);
	img_put64(f + 8, w->off + IMG_FOOTER);
	img_put32(f + 16, footer_flags(w));
	img_put32(f + 20, w->frame_no);
	img_put64(f + 24, w->res.data_pages);
	img_put64(f + 40, XXH3_64bits(f, 40));
	XXH3_64bits_update(w->xs, f, 48);
	w->res.file_checksum = XXH3_64bits_digest(w->xs);
	img_put64(f + 48, w->res.file_checksum);
	memcpy(f + 56, IMG_END_MAGIC, 8);
	XXH3_64bits_reset(w->xs);	/* wr() hashes again; harmless */
	if ((r = wr(w, f, sizeof(f))))
		return r;
	w->res.file_size = w->off;
	if (fsync(w->fd) < 0)
		return fail(w, -errno, "fsync: %s", strerror(errno));
	r = close(w->fd);
	w->fd = -1;
	if (r < 0)
		return fail(w, -errno, "close: %s", strerror(errno));
	if (w->overwrite)
		r = renameat(w->dirfd, w->tmp, w->dirfd, w->name);
	else
		r = renameat2(w->dirfd, w->tmp, w->dirfd, w->name, RENAME_NOREPLACE);
	if (r < 0)
		return fail(w, -errno, "rename: %s", strerror(errno));
	free(w->tmp);
	w->tmp = NULL;		/* renamed: nothing to unlink */
	if (fsync(w->dirfd) < 0)
		return fail(w, -errno, "fsync of the directory: %s", strerror(errno));
	return 0;
}

int pt__imgw_finish(struct pt__imgw *w, struct pt__imgw_result *res, char *err, size_t errlen)
{
	int r;

	if (!w)
		return -EINVAL;
	r = write_tail(w);
	if (r)
		put_err(err, errlen, w->msg);
	else if (res)
		*res = w->res;
	pt__imgw_abort(w);
	return r;
}

void pt__imgw_abort(struct pt__imgw *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp && w->dirfd >= 0)
		unlinkat(w->dirfd, w->tmp, 0);
	if (w->dirfd >= 0)
		close(w->dirfd);
	pt__zpool_free(w->zp);	/* joins the workers first: nothing runs after abort */
	XXH3_freeState(w->xs);
	for (int i = 0; i < CAP__N; i++)
		free(w->cap[i]);
	free(w->path);
	free(w->name);
	free(w->tmp);
	free(w->areas);
	free(w->objs);
	free(w->area_soff);
	free(w->obj_soff);
	free(w->strings);
	free(w->unchanged);
	free(w->ichunk);
	free(w->fchunk);
	free(w->dir);
	free(w);
}
