// SPDX-License-Identifier: MIT
/*
 * Fuzz target of the image reader (doc/image-format.md, "Validation"):
 * open, info, layout, runs, capture, bounded reads of every area and
 * object, full verification.  Every input must give success or one of
 * the documented errors, never a crash, a hang or a huge allocation.
 *
 * Built into tests/test_fuzz_image.c (the built-in mutation driver run by
 * `make check`).  For libFuzzer, compile this file with
 * -DPT_LIBFUZZER -fsanitize=fuzzer,address against the static library.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "fuzz_image.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pt_image_info info = { .sz = sizeof(info) };
	struct pt__capture cap;
	struct pt_image *img;
	char path[192], err[256];
	uint64_t runs = 0;
	int fd, r;

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
	pt_image_close(img);
	return 0;
}
