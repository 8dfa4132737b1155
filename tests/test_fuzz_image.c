/* SPDX-License-Identifier: MIT */
/*
 * The built-in mutation driver of the image reader's fuzz target
 * (tests/fuzz_image.c), for builds without libFuzzer: seeds are valid
 * layers written at start (a FROZEN base with every run kind and capture
 * sections, its child, the worked example), mutated by bit flips, byte
 * and field sets, truncation, splices, insertions and deletions, and in
 * most inputs with every checksum recomputed afterwards (header, section
 * payloads, footer, whole file) so that the structural rules are reached,
 * not only the checksums.  Bounded by a count of inputs (PT_FUZZ_ITERS,
 * default 50000) and a time cap (PT_FUZZ_SECS, default 15, within the
 * test budget); seeded (PT_FUZZ_SEED) for replay.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "fuzz_image.h"
#include "image/format.h"
#include "image_gen.h"
#include "tap.h"

static char dir[64];
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b = NULL;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	if (n > 0 && (b = malloc((size_t)n)) && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return b;
}

struct seed {
	unsigned char *b;
	size_t len;
};

/* Sections by the tiling rule, as far as it holds. */
static size_t walk(const unsigned char *b, size_t len, uint64_t *off, size_t max)
{
	return fuzz_image_walk(b, len, off, max);
}

static void fixup(unsigned char *b, size_t len)
{
	fuzz_image_fixup(b, len);
}

static uint64_t interesting(uint64_t old, size_t len)
{
	static const uint64_t v[] = { 0, 1, 2, 3, 4, 5, 7, 8, 31, 32, 64, 0xff, 0x100, 0xfff, 0x1000,
				      0x7fffffff, 0x80000000, 0xffffffff, 0x100000000ull,
				      1ull << 56, (1ull << 63), ~0ull, ~0ull - 4095, 0xffff };
	switch (rnd() % 6) {
	case 0: return old + 1;
	case 1: return old - 1;
	case 2: return len;
	case 3: return old ^ (1ull << (rnd() % 64));
	default: return v[rnd() % (sizeof(v) / sizeof(v[0]))];
	}
}

/* One mutation of @b (length *@len, capacity @cap); returns 1 if it truncated. */
static int mutate(unsigned char *b, size_t *len, size_t cap, const struct seed *seeds, int nseeds)
{
	static uint64_t off[8192];
	size_t n = *len, o;
	int op = (int)(rnd() % 100);

	if (n == 0)
		return 0;
	o = rnd() % n;
	if (op < 20 || (op < 80 && n < 224)) {		/* bit flip */
		b[o] ^= (unsigned char)(1u << (rnd() % 8));
	} else if (op < 30) {				/* byte set */
		static const unsigned char v[] = { 0, 1, 0x7f, 0x80, 0xff, 2, 8 };

		b[o] = v[rnd() % sizeof(v)];
	} else if (op < 80) {				/* a field in a section or the header */
		size_t ns = walk(b, n, off, 8192), width = (rnd() % 3) ? 4 : 8;
		uint64_t base, span;

		if (ns && rnd() % 8) {
			size_t i = rnd() % ns;

			base = off[i];
			span = IMG_SEC_HDR + img_get64(b + base + 8);
		} else if (rnd() % 2) {
			base = 0;
			span = 128;
		} else {
			base = n - IMG_FOOTER;
			span = 40;
		}
		if (span < width)
			return 0;
		o = base + (rnd() % (span - width + 1)) / width * width;
		if (o + width > n)
			return 0;
		if (width == 4)
			img_put32(b + o, (uint32_t)interesting(img_get32(b + o), n));
		else
			img_put64(b + o, interesting(img_get64(b + o), n));
	} else if (op < 86) {				/* truncate */
		*len = rnd() % n;
		return 1;
	} else if (op < 92) {				/* splice from a seed */
		const struct seed *s = &seeds[rnd() % (size_t)nseeds];
		size_t from = rnd() % s->len, k = 1 + rnd() % 256;

		if (from + k > s->len)
			k = s->len - from;
		if (o + k > n)
			k = n - o;
		memcpy(b + o, s->b + from, k);
	} else if (op < 96) {				/* insert 8 bytes */
		if (n + 8 <= cap) {
			memmove(b + o + 8, b + o, n - o);
			memset(b + o, (int)(rnd() % 256), 8);
			*len = n + 8;
		}
	} else {					/* delete 8 bytes */
		size_t k = o + 8 <= n ? 8 : n - o;

		memmove(b + o, b + o + k, n - o - k);
		*len = n - k;
	}
	return 0;
}

static void cleanup(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	if (d)
		closedir(d);
	rmdir(dir);
}

int main(void)
{
	static const char *names[] = { "base.img", "child.img", "example.img" };
	const char *e = getenv("PT_FUZZ_ITERS");
	unsigned long iters = e ? strtoul(e, NULL, 10) : 50000, done = 0;
	uint64_t deadline, fixed = 0, structural = 0, cksum = 0, ok_fixed = 0;
	struct seed seeds[3];
	char err[512], path[128];
	struct pt_image *base = NULL;
	unsigned char *buf;
	size_t cap = 0;
	int r = 0, valid = 0;

	if ((e = getenv("PT_FUZZ_SEED")))
		rng = strtoull(e, NULL, 0) * 2 + 1;
	/* tmpfs when there is one: every input is a file write */
	strcpy(dir, "/dev/shm/pt-test-fuzz-image-XXXXXX");
	if (!mkdtemp(dir)) {
		strcpy(dir, "/tmp/pt-test-fuzz-image-XXXXXX");
		if (!mkdtemp(dir))
			tap_skip_all("mkdtemp failed");
	}
	tap_plan(5);
	fuzz_image_set_dir(dir);
	fuzz_image_abort = false;

	/* seeds */
	snprintf(path, sizeof(path), "%s/base.img", dir);
	r = ig_small(path, NULL, err, sizeof(err));
	if (!r)
		r = pt_image_open(path, &base, err, sizeof(err));
	snprintf(path, sizeof(path), "%s/child.img", dir);
	if (!r)
		r = ig_small(path, base, err, sizeof(err));
	pt_image_close(base);
	snprintf(path, sizeof(path), "%s/example.img", dir);
	if (!r)
		r = ig_example(path, err, sizeof(err));
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		seeds[i].b = r ? NULL : slurp(path, &seeds[i].len);
		/* PT_FUZZ_SEEDS_OUT=DIR: also write the seeds there (tests/corpus/image/) */
		if (seeds[i].b && getenv("PT_FUZZ_SEEDS_OUT")) {
			char out[512];
			FILE *f;

			snprintf(out, sizeof(out), "%s/%s", getenv("PT_FUZZ_SEEDS_OUT"), names[i]);
			f = fopen(out, "wb");
			if (f) {
				fwrite(seeds[i].b, 1, seeds[i].len, f);
				fclose(f);
			}
		}
		if (seeds[i].b) {
			LLVMFuzzerTestOneInput(seeds[i].b, seeds[i].len);
			valid += fuzz_image_stats.last_open == 0 && fuzz_image_stats.last_verify == 0;
			if (seeds[i].len > cap)
				cap = seeds[i].len;
		}
	}
	tap_ok(valid == 3, "3 seed layers written, opened, read and verified by the target (%s)",
	       r ? err : "ok");
	if (valid != 3) {
		tap_skip_n(4, "no seeds", "fuzzing");
		cleanup();
		return tap_done();
	}

	/* odd inputs: empty, tiny, magic only, zeros */
	{
		unsigned char z[1024] = { 0 };

		memcpy(z, IMG_MAGIC, 8);
		memcpy(z + 1016, "PTIMGEND", 8);
		LLVMFuzzerTestOneInput(z, 0);
		LLVMFuzzerTestOneInput(z, 7);
		LLVMFuzzerTestOneInput(z, 224);
		LLVMFuzzerTestOneInput(z, sizeof(z));
		fixup(z, sizeof(z));
		LLVMFuzzerTestOneInput(z, sizeof(z));
	}
	tap_ok(fuzz_image_stats.bad == 0 && fuzz_image_stats.opened == 3,
	       "empty, tiny and zero-filled inputs are rejected with documented errors");

	cap = cap * 2 + 4096;
	buf = malloc(cap);
	e = getenv("PT_FUZZ_SECS");
	deadline = fx_now_ms() + (e ? strtoull(e, NULL, 10) : 15) * 1000;
	if (deadline > fx_deadline_ms(1))
		deadline = fx_deadline_ms(1);
	for (; done < iters; done++) {
		const struct seed *s = &seeds[rnd() % 3];
		size_t len = s->len;
		int nm = 1 + (int)(rnd() % 3), trunc = 0, fix = rnd() % 4 != 0;

		if (done % 256 == 0 && fx_now_ms() > deadline)
			break;
		memcpy(buf, s->b, len);
		for (int m = 0; m < nm; m++)
			trunc |= mutate(buf, &len, cap, seeds, 3);
		if (fix)
			fixup(buf, len);
		LLVMFuzzerTestOneInput(buf, len);
		if (fix && !trunc) {
			int o = fuzz_image_stats.last_open, v = fuzz_image_stats.last_verify;

			fixed++;
			structural += o == -EUCLEAN || o == -EPROTONOSUPPORT;
			cksum += o == -EBADMSG;
			ok_fixed += o == 0 && v == 0;
		}
	}
	free(buf);
	tap_ok(fuzz_image_stats.bad == 0,
	       "%lu mutated inputs: each success or a documented error (%llu undocumented)", done,
	       (unsigned long long)fuzz_image_stats.bad);
	if (done < 2000) {
		tap_skip_n(2, "time cap reached", "coverage after %lu inputs", done);
	} else {
		tap_ok(structural > fixed / 4,
		       "with checksums recomputed, %llu of %llu inputs reached a structural rule "
		       "(%llu still a checksum: frames)", (unsigned long long)structural,
		       (unsigned long long)fixed, (unsigned long long)cksum);
		tap_ok(ok_fixed > 0 && fuzz_image_stats.reads > 0 && fuzz_image_stats.round_trips > 0,
		       "%llu mutated inputs still valid, %llu reads that succeeded, %llu valid "
		       "layers written again by the writer read back the same",
		       (unsigned long long)ok_fixed, (unsigned long long)fuzz_image_stats.reads,
		       (unsigned long long)fuzz_image_stats.round_trips);
	}
	for (int i = 0; i < 3; i++)
		free(seeds[i].b);
	cleanup();
	return tap_done();
}
