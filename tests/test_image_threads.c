/* SPDX-License-Identifier: MIT */
/*
 * The image writer's compression workers (lib/image/zpool.c): the same
 * input gives the same file with 1 (inline) and N threads, byte for byte
 * but for the header's per-layer identity (time, layer id, the parent's
 * identity) and the file checksum that covers it; ENOSPC with frames in
 * flight; abort with frames in flight leaves no temp file and no thread.
 * PT_FORCE_ZSTD_THREADS picks the number of threads.
 */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image/format.h"
#include "image_gen.h"
#include "tap.h"

#define P IG_PAGE
#define BASE 0x40000000ull

static char dir[64];
static char errbuf[512];

static void force_threads(unsigned n)
{
	char v[16];

	snprintf(v, sizeof(v), "%u", n);
	setenv("PT_FORCE_ZSTD_THREADS", v, 1);
}

static int count_entries(const char *d)
{
	DIR *dd = opendir(d);
	struct dirent *e;
	int n = 0;

	if (!dd)
		return -1;
	while ((e = readdir(dd)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(dd);
	return n;
}

static int tasks(void)
{
	return count_entries("/proc/self/task");
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b = NULL;
	long n;

	*len = 0;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (b = malloc((size_t)n)) && fread(b, 1, (size_t)n, f) == (size_t)n)
		*len = (size_t)n;
	fclose(f);
	if (!*len) {
		free(b);
		b = NULL;
	}
	return b;
}

/* ---- the layers ---- */

/* A deterministic mix of kinds: runs of 1..13 pages, DATA compressible or noise. */
static int write_pages(struct pt__imgw *w, uint64_t npages, uint32_t seed, bool child)
{
	unsigned char *buf = malloc(13 * P);
	uint64_t st = seed * 0x9e3779b97f4a7c15ull + 1, pg = 0;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	while (pg < npages && !r) {
		uint64_t x = (st ^= st << 13, st ^= st >> 7, st ^= st << 17);
		uint64_t n = 1 + x % 13;
		uint32_t kind;

		if (n > npages - pg)
			n = npages - pg;
		switch ((x >> 8) % 8) {
		case 0: kind = PT_PAGE_ZERO; break;
		case 1: kind = PT_PAGE_HOLE; break;
		case 2: kind = child ? PT_PAGE_UNCHANGED : PT_PAGE_DATA; break;
		case 3: kind = child ? PT_PAGE_UNCHANGED : PT_PAGE_ZERO; break;
		default: kind = PT_PAGE_DATA; break;
		}
		if (kind == PT_PAGE_DATA) {
			for (uint64_t i = 0; i < n; i++)
				if ((x >> 16) & 1)
					ig_noise(buf + i * P, &st);
				else
					ig_page(buf + i * P, seed, pg + i);
			r = pt__imgw_run(w, PT_OWNER_AREA, 0, kind, 0, n, buf);
		} else {
			r = pt__imgw_run(w, PT_OWNER_AREA, 0, kind, 0, n, NULL);
		}
		pg += n;
	}
	free(buf);
	return r;
}

struct lspec {
	const char *name;
	uint64_t npages;
	uint32_t frame_pages, chunk_bytes, seed;
	int level;
	bool child;			/* of the first layer, FROZEN with its capture */
};

static const struct lspec layers[] = {
	{ "a.img", 600, 7, 64, 1, 1, false },	/* chunks flushed between frames */
	{ "b.img", 600, 5, 96, 2, 3, true },	/* a child, zstd 3 */
	{ "c.img", 1500, 0, 0, 3, 1, false },	/* 256-page frames */
};

static int write_layer(const char *sub, const struct lspec *l)
{
	struct pt__imgw_opts o = { .flags = l->child ? PT_IMAGE_FROZEN : PT_IMAGE_LIVE,
				   .pid = 4242, .comm = "zpar", .level = l->level,
				   .frame_pages = l->frame_pages, .chunk_bytes = l->chunk_bytes };
	struct pt_image_area a = { BASE, BASE + l->npages * P, 0, 3, PT_VMA_ANON,
				   l->child ? PT_DELTA_COMPARED : 0, PT_IMAGE_NO_OBJECT, "", 0 };
	struct pt_image *parent = NULL;
	struct pt__capture c;
	struct pt__imgw *w;
	char path[160];
	int r;

	if (l->child) {
		snprintf(path, sizeof(path), "%s/%s", sub, layers[0].name);
		if ((r = pt_image_open(path, &parent, errbuf, sizeof(errbuf))))
			return r;
		o.parent = parent;
	}
	snprintf(path, sizeof(path), "%s/%s", sub, l->name);
	r = pt__imgw_open(path, &o, &w, errbuf, sizeof(errbuf));
	if (!r) {
		r = pt__imgw_layout(w, &a, 1, NULL, 0);
		if (!r)
			r = write_pages(w, l->npages, l->seed, l->child);
		if (!r && l->child) {
			ig_capture(&c);
			r = pt__imgw_capture(w, &c);
			ig_capture_free(&c);
		}
		if (r) {
			pt__imgw_abort(w);
			snprintf(errbuf, sizeof(errbuf), "writing: %s", strerror(-r));
		} else {
			r = pt__imgw_finish(w, NULL, errbuf, sizeof(errbuf));
		}
	}
	pt_image_close(parent);
	return r;
}

/*
 * Equal but for the header's time, layer id, parent id and checksum and
 * its own checksum (bytes 32..104, hs-8..hs) and the file checksum in
 * the footer (size-16..size-8).
 */
static bool same_layer(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen,
		       const char **why)
{
	size_t hs;

	*why = "ok";
	if (alen != blen || alen < IMG_HDR_FIXED + IMG_FOOTER) {
		*why = "sizes differ";
		return false;
	}
	hs = img_get32(a + 12);
	if (hs < IMG_HDR_FIXED || hs > alen - IMG_FOOTER || memcmp(a, b, 32) ||
	    memcmp(a + 104, b + 104, hs - 8 - 104)) {
		*why = "headers differ";
		return false;
	}
	if (memcmp(a + hs, b + hs, alen - 16 - hs) || memcmp(a + alen - 8, b + alen - 8, 8)) {
		*why = "bytes after the header differ";
		return false;
	}
	return true;
}

static void cleanup_dir(const char *d)
{
	DIR *dd = opendir(d);
	struct dirent *e;

	while (dd && (e = readdir(dd)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(dd), e->d_name, 0);
	if (dd)
		closedir(dd);
	rmdir(d);
}

static const unsigned nthreads[] = { 1, 2, 3, 4, 7 };
#define NT (sizeof(nthreads) / sizeof(nthreads[0]))
#define NL (sizeof(layers) / sizeof(layers[0]))

static void test_same_bytes(void)
{
	char sub[NT][128], path[192];
	int r[NT] = { 0 };

	for (size_t t = 0; t < NT; t++) {
		snprintf(sub[t], sizeof(sub[t]), "%s/t%u", dir, nthreads[t]);
		mkdir(sub[t], 0700);
		force_threads(nthreads[t]);
		for (size_t l = 0; l < NL && !r[t]; l++)
			r[t] = write_layer(sub[t], &layers[l]);
	}
	unsetenv("PT_FORCE_ZSTD_THREADS");
	tap_ok(r[0] == 0, "1 thread (inline): %zu layers written (%s)", NL, r[0] ? errbuf : "ok");
	for (size_t t = 1; t < NT; t++) {
		const char *why = r[t] ? errbuf : "ok";
		bool ok = r[0] == 0 && r[t] == 0;

		for (size_t l = 0; l < NL && ok; l++) {
			unsigned char *a, *b;
			size_t alen, blen;

			snprintf(path, sizeof(path), "%s/%s", sub[0], layers[l].name);
			a = slurp(path, &alen);
			snprintf(path, sizeof(path), "%s/%s", sub[t], layers[l].name);
			b = slurp(path, &blen);
			ok = a && b && same_layer(a, alen, b, blen, &why);
			if (!ok && (!a || !b))
				why = "cannot read a layer";
			if (!ok)
				snprintf(errbuf, sizeof(errbuf), "%s: %s", layers[l].name, why);
			free(a);
			free(b);
		}
		tap_ok(ok, "%u threads: the %zu layers (frames of 7, 5, 256 pages; zstd 1 and 3; "
		       "a child) equal the inline ones byte for byte (%s)", nthreads[t], NL,
		       ok ? "ok" : errbuf);
	}
	/* the last set reads back and verifies with its parent */
	{
		struct pt_image *img = NULL;
		int v;

		snprintf(path, sizeof(path), "%s/b.img", sub[NT - 1]);
		v = pt_image_open(path, &img, errbuf, sizeof(errbuf));
		if (!v)
			v = pt_image_verify(img, errbuf, sizeof(errbuf));
		pt_image_close(img);
		tap_ok(v == 0, "%u threads: the child layer verifies with its parent (%s)",
		       nthreads[NT - 1], v ? errbuf : "ok");
	}
	for (size_t t = 0; t < NT; t++)
		cleanup_dir(sub[t]);
}

/* ---- abort with frames in flight ---- */

static void test_abort(void)
{
	struct pt__imgw_opts o = { .flags = PT_IMAGE_LIVE, .pid = 1, .frame_pages = 1 };
	struct pt_image_area a = { BASE, BASE + 400 * P, 0, 3, PT_VMA_ANON, 0,
				   PT_IMAGE_NO_OBJECT, "", 0 };
	unsigned char *buf = malloc(400 * P);
	uint64_t st = 99;
	int base = tasks(), during = -1, after, left, r;
	char sub[128], path[192];
	struct pt__imgw *w = NULL;

	snprintf(sub, sizeof(sub), "%s/abort", dir);
	mkdir(sub, 0700);
	snprintf(path, sizeof(path), "%s/x.img", sub);
	for (int i = 0; buf && i < 400; i++)
		ig_noise(buf + (size_t)i * P, &st);
	force_threads(4);
	r = buf ? pt__imgw_open(path, &o, &w, errbuf, sizeof(errbuf)) : -ENOMEM;
	unsetenv("PT_FORCE_ZSTD_THREADS");
	if (!r) {
		during = tasks();
		r = pt__imgw_layout(w, &a, 1, NULL, 0);
		/* 400 one-page frames in one call: the last 7 are in flight when it returns */
		if (!r)
			r = pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_DATA, 0, 400, buf);
		pt__imgw_abort(w);
	}
	after = tasks();
	left = count_entries(sub);
	tap_ok(r == 0 && during == base + 4,
	       "4 threads forced: %d threads beside the caller's %d while writing (%s)",
	       during - base, base, r ? strerror(-r) : "ok");
	tap_ok(after == base && left == 0,
	       "abort with frames in flight: %d threads left (of %d), %d files left", after, base,
	       left);
	free(buf);
	/* inline: no thread at all */
	force_threads(1);
	r = pt__imgw_open(path, &o, &w, errbuf, sizeof(errbuf));
	unsetenv("PT_FORCE_ZSTD_THREADS");
	during = r ? -1 : tasks();
	pt__imgw_abort(w);
	tap_ok(r == 0 && during == base, "1 thread forced: no worker (%d threads, %d before)",
	       during, base);
	/* by default, as many workers as CPUs the process may run on: none on one CPU */
	{
		cpu_set_t old, one;
		int all = -1, want = -1;

		if (sched_getaffinity(0, sizeof(old), &old)) {
			tap_skip("sched_getaffinity failed", "workers on one CPU");
		} else {
			CPU_ZERO(&one);
			for (int c = 0; c < CPU_SETSIZE; c++)
				if (CPU_ISSET(c, &old)) {
					CPU_SET(c, &one);
					break;
				}
			sched_setaffinity(0, sizeof(one), &one);
			r = pt__imgw_open(path, &o, &w, errbuf, sizeof(errbuf));
			during = r ? -1 : tasks();
			pt__imgw_abort(w);
			sched_setaffinity(0, sizeof(old), &old);
			if (!r && !pt__imgw_open(path, &o, &w, errbuf, sizeof(errbuf))) {
				all = tasks() - base;
				pt__imgw_abort(w);
			}
			want = CPU_COUNT(&old) > 4 ? 4 : CPU_COUNT(&old) < 2 ? 0 : CPU_COUNT(&old);
			if (sysconf(_SC_NPROCESSORS_ONLN) < want)
				want = (int)sysconf(_SC_NPROCESSORS_ONLN);
			tap_ok(r == 0 && during == base && all == (want < 2 ? 0 : want),
			       "by default: no worker confined to one CPU (%d threads, %d before), "
			       "%d workers on the process's %d CPUs", during, base, all,
			       CPU_COUNT(&old));
		}
	}
	rmdir(sub);
}

/* ---- ENOSPC with frames in flight, on a 64 KiB tmpfs in a private mount namespace ---- */

static void enospc_child(const char *mnt, int fd)
{
	struct pt__imgw_opts o = { .flags = PT_IMAGE_LIVE, .pid = 1, .frame_pages = 2 };
	struct pt_image_area a = { BASE, BASE + 64 * P, 0, 3, PT_VMA_ANON, 0,
				   PT_IMAGE_NO_OBJECT, "", 0 };
	int res[6] = { 0, -1, -1, -1, -1, tasks() };
	unsigned char pg[P];
	uint64_t st = 12345;
	char path[192];
	struct pt__imgw *w;
	int r = 0, again = 0;

	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", mnt, "tmpfs", 0, "size=64k")) {
		res[0] = -errno;
		res[1] = -2;
		if (write(fd, res, sizeof(res)) < 0)
			_exit(1);
		_exit(0);
	}
	snprintf(path, sizeof(path), "%s/full.img", mnt);
	force_threads(4);
	r = pt__imgw_open(path, &o, &w, errbuf, sizeof(errbuf));
	if (!r && !(r = pt__imgw_layout(w, &a, 1, NULL, 0))) {
		res[3] = tasks();
		for (int i = 0; i < 64 && !r; i++) {
			ig_noise(pg, &st);
			r = pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_DATA, 0, 1, pg);
		}
		/* sticky: the next call fails the same way, finish too */
		again = r ? pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_DATA, 0, 1, pg) : 0;
		r = pt__imgw_finish(w, NULL, errbuf, sizeof(errbuf));
	}
	res[0] = r;
	res[1] = count_entries(mnt);
	res[2] = again;
	res[4] = tasks();
	umount(mnt);
	if (write(fd, res, sizeof(res)) < 0)
		_exit(1);
	_exit(0);
}

static void test_enospc(void)
{
	char mnt[128];
	int pfd[2], res[6] = { 0, -1, -1, -1, -1, -1 };
	pid_t pid;

	snprintf(mnt, sizeof(mnt), "%s/small-fs", dir);
	if (mkdir(mnt, 0700) || pipe(pfd)) {
		tap_skip("cannot set up the mount point", "ENOSPC with 4 threads");
		return;
	}
	pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		enospc_child(mnt, pfd[1]);
	}
	close(pfd[1]);
	if (pid < 0 || read(pfd[0], res, sizeof(res)) != sizeof(res))
		res[1] = -3;
	close(pfd[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	rmdir(mnt);
	if (res[1] == -2) {
		tap_skip("no private tmpfs mount here", "ENOSPC with 4 threads (%s)",
			 strerror(-res[0]));
		return;
	}
	tap_ok(res[0] == -ENOSPC && (res[2] == 0 || res[2] == -ENOSPC) && res[1] == 0 &&
	       res[3] == res[5] + 4 && res[4] == res[5],
	       "ENOSPC on a 64 KiB tmpfs with 4 threads and 2-page frames: finish %d (%s), "
	       "sticky %d, %d files left, threads %d before, %d while writing, %d after",
	       res[0], res[0] == -ENOSPC ? "ENOSPC" : strerror(-res[0]), res[2], res[1], res[5],
	       res[3], res[4]);
}

int main(void)
{
	strcpy(dir, "/tmp/pt-test-zpar-XXXXXX");
	if (!mkdtemp(dir))
		tap_skip_all("mkdtemp failed");
	unsetenv("PT_FORCE_ZSTD_THREADS");
	tap_plan(11);
	test_same_bytes();	/* 6 */
	test_abort();		/* 4 */
	test_enospc();		/* 1 */
	cleanup_dir(dir);
	return tap_done();
}
