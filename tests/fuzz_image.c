// SPDX-License-Identifier: MIT
/*
 * Fuzz target of the image reader (doc/image-format.md, "Validation"):
 * open, info, layout, runs, capture, bounded reads of every area and
 * object, full verification.  Every input must give success or one of
 * the documented errors, never a crash, a hang or a huge allocation.
 *
 * Built into tests/test_fuzz_image.c (the built-in mutation driver run by
 * `make check`).  With libFuzzer (clang):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -DPT_LIBFUZZER \
 *     -Iinclude \
 *     -Ilib -Itests lib/image/reader.c lib/image/writer.c lib/image/zpool.c lib/log.c \
 *     tests/fuzz_image.c -lxxhash -lzstd -o fuzz_image
 *   PT_FUZZ_DIR=DIR ./fuzz_image CORPUS
 * with the seed layers (test_fuzz_image writes them) in CORPUS, and the
 * parent of the child seed in DIR, where the target writes its input.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <xxhash.h>

#include "fuzz_image.h"
#include "image/format.h"

struct fuzz_image_stats fuzz_image_stats;
bool fuzz_image_abort = true;
static char fz_dir[128];

void fuzz_image_set_dir(const char *dir)
{
	snprintf(fz_dir, sizeof(fz_dir), "%s", dir);
}

/* One of the documented errors of doc/image-format.md, "Errors" (or success). */
static bool documented(int r)
{
	return r == 0 || r == -ENODATA || r == -EBADMSG || r == -EPROTONOSUPPORT ||
	       r == -EUCLEAN || r == -ENOENT || r == -ESTALE;
}

static void check(int r, const char *what, const char *err)
{
	if (documented(r))
		return;
	fuzz_image_stats.bad++;
	fprintf(stderr, "fuzz_image: %s returned %d (%s): %s\n", what, r, strerror(-r), err);
	if (fuzz_image_abort)
		abort();
}

static int count_run(const struct pt_image_run *r, void *ctx)
{
	(void)r;
	(*(uint64_t *)ctx)++;
	return 0;
}

#define FZ_PAGES 8
#define FZ_OWNERS 64

static void read_some(struct pt_image *img)
{
	static unsigned char buf[FZ_PAGES * 4096];
	uint8_t kinds[FZ_PAGES];
	const struct pt_image_area *a;
	const struct pt_image_object *o;
	char err[256];
	size_t na, no;
	int r;

	if (pt_image_areas(img, &a, &na) || pt_image_objects(img, &o, &no))
		abort();
	for (size_t i = 0; i < na && i < FZ_OWNERS; i++) {
		uint64_t pages = (a[i].end - a[i].start) / 4096;
		size_t n = pages < FZ_PAGES ? (size_t)pages : FZ_PAGES;

		r = pt_image_read(img, a[i].start, n, buf, kinds, err, sizeof(err));
		check(r, "pt_image_read (start)", err);
		fuzz_image_stats.reads += r == 0;
		r = pt_image_read(img, a[i].end - n * 4096, n, buf, kinds, err, sizeof(err));
		check(r, "pt_image_read (end)", err);
		for (size_t k = 0; r == 0 && k < n; k++)
			if (kinds[k] < PT_PAGE_DATA || kinds[k] > PT_PAGE_UNREADABLE ||
			    kinds[k] == PT_PAGE_UNCHANGED)
				check(-EFAULT, "pt_image_read kinds", "kind out of range");
	}
	for (size_t i = 0; i < no && i < FZ_OWNERS; i++) {
		uint64_t pages = o[i].size / 4096 + (o[i].size % 4096 != 0);
		size_t n = pages < FZ_PAGES ? (size_t)pages : FZ_PAGES;

		if (!(o[i].flags & PT_OBJECT_STORED) || !n)
			continue;
		r = pt_image_read_object(img, (uint32_t)i, pages - n, n, buf, kinds, err,
					 sizeof(err));
		check(r, "pt_image_read_object", err);
		fuzz_image_stats.reads += r == 0;
	}
}

/* Read @n pages of an owner (@obj: object number, else area at @addr). */
static int rd_owner(struct pt_image *img, bool obj, uint32_t o, uint64_t at, size_t n,
		    unsigned char *buf, uint8_t *kinds)
{
	char err[256];

	return obj ? pt_image_read_object(img, o, at, n, buf, kinds, err, sizeof(err)) :
		     pt_image_read(img, at, n, buf, kinds, err, sizeof(err));
}

/* Write one owner's resolved pages as runs of a base layer. */
static int rt_owner(struct pt_image *img, struct pt__imgw *w, bool obj, uint32_t o, uint64_t start,
		    uint64_t pages)
{
	static unsigned char buf[FZ_PAGES * 4096];
	uint8_t kinds[FZ_PAGES];
	int r;

	for (uint64_t p = 0; p < pages; p += FZ_PAGES) {
		size_t n = pages - p < FZ_PAGES ? (size_t)(pages - p) : FZ_PAGES, i = 0;

		if ((r = rd_owner(img, obj, o, obj ? p : start + p * 4096, n, buf, kinds)))
			return r;
		while (i < n) {
			size_t j = i;

			while (j < n && kinds[j] == kinds[i])
				j++;
			if ((r = pt__imgw_run(w, obj ? PT_OWNER_OBJECT : PT_OWNER_AREA, o, kinds[i], 0,
					      j - i, kinds[i] == PT_PAGE_DATA ? buf + i * 4096 : NULL)))
				return r;
			i = j;
		}
	}
	return 0;
}

/* The same owner in two layers resolves to the same pages. */
static int rt_same(struct pt_image *a, struct pt_image *b, bool obj, uint32_t o, uint64_t start,
		   uint64_t pages)
{
	static unsigned char ba[FZ_PAGES * 4096], bb[FZ_PAGES * 4096];
	uint8_t ka[FZ_PAGES], kb[FZ_PAGES];

	for (uint64_t p = 0; p < pages; p += FZ_PAGES) {
		size_t n = pages - p < FZ_PAGES ? (size_t)(pages - p) : FZ_PAGES;
		uint64_t at = obj ? p : start + p * 4096;

		if (rd_owner(a, obj, o, at, n, ba, ka) || rd_owner(b, obj, o, at, n, bb, kb) ||
		    memcmp(ba, bb, n * 4096) || memcmp(ka, kb, n))
			return -EFAULT;
	}
	return 0;
}

#define FZ_RT_PAGES 4096

/*
 * A valid layer, resolved through its chain, written again as a base
 * layer by the writer, reads back the same: the writer accepts what the
 * reader accepts, and both agree on every page.
 */
static void round_trip(struct pt_image *img, const struct pt_image_info *info)
{
	const struct pt_image_area *a;
	const struct pt_image_object *o;
	struct pt_image_area *a2 = NULL;
	struct pt_image_object *o2 = NULL;
	struct pt__imgw_opts wo = { .flags = info->flags & (PT_IMAGE_FROZEN | PT_IMAGE_LIVE),
				    .pid = info->pid, .comm = info->comm };
	struct pt__capture cap = { 0 };
	struct pt_image *back = NULL;
	struct pt__imgw *w = NULL;
	char path[192], err[256] = "";
	uint64_t total = 0;
	size_t na, no;
	int r = 0;

	pt_image_areas(img, &a, &na);
	pt_image_objects(img, &o, &no);
	for (size_t i = 0; i < na; i++)
		if (!(a[i].prot & PT_MAP_SHARED) || a[i].object == PT_IMAGE_NO_OBJECT)
			total += (a[i].end - a[i].start) / 4096;
	for (size_t i = 0; i < no; i++)
		if (o[i].flags & PT_OBJECT_STORED)
			total += o[i].size / 4096 + 1;
	if (total > FZ_RT_PAGES || na > FZ_OWNERS || no > FZ_OWNERS)
		return;
	a2 = calloc(na + 1, sizeof(*a2));
	o2 = calloc(no + 1, sizeof(*o2));
	if (!a2 || !o2)
		abort();
	for (size_t i = 0; i < na; i++) {
		a2[i] = a[i];
		a2[i].delta = PT_DELTA_FULL;
	}
	for (size_t i = 0; i < no; i++) {
		o2[i] = o[i];
		o2[i].delta = PT_DELTA_FULL;
	}
	snprintf(path, sizeof(path), "%s/round-trip.img", fz_dir);
	if ((r = pt__imgw_open(path, &wo, &w, err, sizeof(err))))
		goto out;
	if ((r = pt__imgw_layout(w, a2, na, o2, no))) {
		snprintf(err, sizeof(err), "the writer refuses the layout");
		goto out;
	}
	for (size_t i = 0; i < na && !r; i++)
		if (!(a[i].prot & PT_MAP_SHARED) || a[i].object == PT_IMAGE_NO_OBJECT)
			r = rt_owner(img, w, false, (uint32_t)i, a[i].start,
				     (a[i].end - a[i].start) / 4096);
	for (size_t i = 0; i < no && !r; i++)
		if ((o[i].flags & PT_OBJECT_STORED) && o[i].size)
			r = rt_owner(img, w, true, (uint32_t)i, 0, o[i].size / 4096 + (o[i].size % 4096 != 0));
	if (r) {
		snprintf(err, sizeof(err), "the writer refuses a run");
		goto out;
	}
	if ((wo.flags & PT_IMAGE_FROZEN) && !(r = pt__image_capture(img, &cap, err, sizeof(err))) &&
	    (r = pt__imgw_capture(w, &cap)))
		snprintf(err, sizeof(err), "the writer refuses the capture");
	if (r)
		goto out;
	r = pt__imgw_finish(w, NULL, err, sizeof(err));
	w = NULL;
	if (r || (r = pt_image_open(path, &back, err, sizeof(err))))
		goto out;
	for (size_t i = 0; i < na && !r; i++)
		r = rt_same(img, back, false, (uint32_t)i, a[i].start, (a[i].end - a[i].start) / 4096 <
			    FZ_PAGES ? (a[i].end - a[i].start) / 4096 : FZ_PAGES);
	for (size_t i = 0; i < no && !r; i++)
		if ((o[i].flags & PT_OBJECT_STORED) && o[i].size)
			r = rt_same(img, back, true, (uint32_t)i, 0,
				    o[i].size / 4096 + (o[i].size % 4096 != 0));
	if (r)
		snprintf(err, sizeof(err), "the rewritten layer reads differently");
out:
	if (r && r != -ESTALE && r != -ENOENT && r != -EBADMSG && r != -EUCLEAN) {
		/* chain and frame errors are the input's; anything else is a disagreement */
		fuzz_image_stats.bad++;
		fprintf(stderr, "fuzz_image: round trip: %d (%s): %s\n", r, strerror(-r), err);
		if (fuzz_image_abort)
			abort();
	}
	fuzz_image_stats.round_trips += r == 0;
	pt__imgw_abort(w);
	pt_image_close(back);
	unlink(path);
	free(a2);
	free(o2);
	if (cap.threads || cap.auxv || cap.cmdline || cap.files) {
		for (size_t i = 0; i < cap.nthreads; i++) {
			for (size_t k = 0; k < cap.threads[i].nnotes; k++)
				free(cap.threads[i].notes[k].desc);
			free(cap.threads[i].notes);
		}
		for (size_t i = 0; i < cap.nfiles; i++)
			free(cap.files[i].name);
		free(cap.threads);
		free(cap.files);
		free(cap.auxv);
		free(cap.cmdline);
	}
}

/* Sections by the tiling rule, as far as it holds. */
size_t fuzz_image_walk(const unsigned char *b, size_t len, uint64_t *off, size_t max)
{
	uint64_t pos, end;
	size_t n = 0;

	if (len < 224)
		return 0;
	pos = img_get32(b + 12);
	end = len - IMG_FOOTER;
	while (pos % 8 == 0 && pos + IMG_SEC_HDR <= end && n < max) {
		uint64_t l = img_get64(b + pos + 8);

		if (l > end - pos - IMG_SEC_HDR)
			break;
		off[n++] = pos;
		pos += IMG_SEC_HDR + img_align8(l);
	}
	return n;
}

/* Recompute every checksum a mutation broke, and the footer's file size. */
void fuzz_image_fixup(unsigned char *b, size_t len)
{
	static uint64_t off[8192];
	uint64_t hs, fo;
	size_t n;

	if (len < 224)
		return;
	hs = img_get32(b + 12);
	if (hs >= 128 && hs <= 4224 && hs % 8 == 0 && hs + 96 <= len)
		img_put64(b + hs - 8, XXH3_64bits(b, hs - 8));
	n = fuzz_image_walk(b, len, off, 8192);
	for (size_t i = 0; i < n; i++)
		img_put64(b + off[i] + 24, XXH3_64bits(b + off[i] + 32, img_get64(b + off[i] + 8)));
	fo = len - IMG_FOOTER;
	img_put64(b + fo + 8, len);
	img_put64(b + fo + 40, XXH3_64bits(b + fo, 40));
	memcpy(b + len - 8, "PTIMGEND", 8);
	img_put64(b + fo + 48, XXH3_64bits(b, len - 16));
}

#ifdef PT_LIBFUZZER
/* libFuzzer's mutations, then (3 in 4) every checksum recomputed: structure is reached. */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max, unsigned int seed);

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max, unsigned int seed)
{
	size = LLVMFuzzerMutate(data, size, max);
	if (seed % 4)
		fuzz_image_fixup(data, size);
	return size;
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pt_image_info info = { .sz = sizeof(info) };
	struct pt__capture cap;
	struct pt_image *img;
	char path[192], err[256];
	uint64_t runs = 0;
	int fd, r;

	if (!fz_dir[0] && getenv("PT_FUZZ_DIR"))	/* libFuzzer: where parents are */
		fuzz_image_set_dir(getenv("PT_FUZZ_DIR"));
	if (!fz_dir[0]) {
		strcpy(fz_dir, "/tmp/pt-fuzz-image-XXXXXX");
		if (!mkdtemp(fz_dir))
			abort();
	}
	snprintf(path, sizeof(path), "%s/input.img", fz_dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);
	fuzz_image_stats.runs++;
	r = pt_image_open(path, &img, err, sizeof(err));
	if (r && getenv("PT_FUZZ_VERBOSE"))	/* which rules the inputs reach */
		fprintf(stderr, "open %d: %s\n", r, err);
	fuzz_image_stats.last_open = r;
	fuzz_image_stats.last_verify = 1;
	check(r, "pt_image_open", err);
	if (r)
		return 0;
	fuzz_image_stats.opened++;
	if (pt_image_info(img, &info))
		abort();
	r = pt_image_runs(img, count_run, &runs);
	check(r, "pt_image_runs", "");
	r = pt__image_capture(img, &cap, err, sizeof(err));
	check(r, "pt__image_capture", err);
	if (r == 0) {
		for (size_t i = 0; i < cap.nthreads; i++) {
			for (size_t k = 0; k < cap.threads[i].nnotes; k++)
				free(cap.threads[i].notes[k].desc);
			free(cap.threads[i].notes);
		}
		for (size_t i = 0; i < cap.nfiles; i++)
			free(cap.files[i].name);
		free(cap.threads);
		free(cap.files);
		free(cap.auxv);
		free(cap.cmdline);
	}
	read_some(img);
	r = pt_image_verify(img, err, sizeof(err));
	if (r && getenv("PT_FUZZ_VERBOSE"))
		fprintf(stderr, "verify %d: %s\n", r, err);
	fuzz_image_stats.last_verify = r;
	check(r, "pt_image_verify", err);
	fuzz_image_stats.verified += r == 0;
	if (r == 0 && fuzz_image_stats.verified % 8 == 1)	/* the writer fsyncs: 1 in 8 */
		round_trip(img, &info);
	pt_image_close(img);
	return 0;
}
