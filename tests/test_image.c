/* SPDX-License-Identifier: MIT */
/*
 * Image layers (doc/image-format.md): round trips through the internal
 * writer and the public reader (every run kind, several frames and
 * chunks, a chain of 3 layers, capture sections), the worked example,
 * truncation and bit flips (each the right error category, never a
 * crash), broken chains, writer misuse, ENOSPC.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

static char dir[64];
static char errbuf[512];

static const char *pathof(const char *name)
{
	static char buf[8][256];
	static int i;

	i = (i + 1) % 8;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc((size_t)n + 1);
	if (fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return b;
}

static int spit(const char *path, const void *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ok;

	if (fd < 0)
		return -1;
	ok = write(fd, b, len) == (ssize_t)len;
	close(fd);
	return ok ? 0 : -1;
}

/* Files in the test directory whose name starts with @prefix. */
static int count_files(const char *d, const char *prefix)
{
	DIR *dd = opendir(d);
	struct dirent *e;
	int n = 0;

	if (!dd)
		return -1;
	while ((e = readdir(dd)))
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && strcmp(e->d_name, ".") &&
		    strcmp(e->d_name, ".."))
			n++;
	closedir(dd);
	return n;
}

/* ---- expectations: what one page of a layer resolves to ---- */

struct exp {
	uint8_t kind;
	uint32_t seed;
	uint64_t key;
};

static int check_pages(struct pt_image *img, uint64_t addr, const struct exp *e, size_t n,
		       bool object, uint32_t obj, const char **why)
{
	unsigned char *buf = malloc(n * P), *want = malloc(P);
	uint8_t *kinds = malloc(n);
	int ok = 1, r;

	/* once as a whole, then page by page */
	r = object ? pt_image_read_object(img, obj, addr, n, buf, kinds, errbuf, sizeof(errbuf)) :
		     pt_image_read(img, addr, n, buf, kinds, errbuf, sizeof(errbuf));
	if (r) {
		*why = errbuf;
		ok = 0;
		goto out;
	}
	for (int pass = 0; pass < 2 && ok; pass++)
		for (size_t i = 0; i < n && ok; i++) {
			uint8_t k;

			if (pass == 1) {
				r = object ? pt_image_read_object(img, obj, addr + i, 1, buf + i * P, &k,
								  errbuf, sizeof(errbuf)) :
					     pt_image_read(img, addr + i * P, 1, buf + i * P, &k, errbuf,
							   sizeof(errbuf));
				if (r) {
					*why = errbuf;
					ok = 0;
					break;
				}
				kinds[i] = k;
			}
			if (e[i].kind == PT_PAGE_DATA)
				ig_page(want, e[i].seed, e[i].key);
			else
				memset(want, 0, P);
			if (kinds[i] != e[i].kind || memcmp(buf + i * P, want, P)) {
				static char m[128];

				snprintf(m, sizeof(m), "page %zu: kind %u (want %u)%s", i, kinds[i],
					 e[i].kind, memcmp(buf + i * P, want, P) ? ", content differs" : "");
				*why = m;
				ok = 0;
			}
		}
out:
	free(buf);
	free(want);
	free(kinds);
	return ok;
}

static int count_run(const struct pt_image_run *r, void *ctx)
{
	uint64_t *c = ctx;

	c[0]++;
	c[1] += r->npages;
	c[2 + r->kind] += r->npages;
	return 0;
}

/* Sections of a file, walked by their tiling: types and offsets. */
struct sec {
	uint32_t type;
	uint64_t off, len;
};

static size_t walk(const unsigned char *b, size_t len, struct sec *out, size_t max)
{
	uint64_t pos = img_get32(b + 12), end = len - IMG_FOOTER;
	size_t n = 0;

	while (pos + IMG_SEC_HDR <= end && n < max) {
		out[n].type = img_get32(b + pos);
		out[n].off = pos;
		out[n].len = img_get64(b + pos + 8);
		pos += IMG_SEC_HDR + img_align8(out[n].len);
		n++;
	}
	return n;
}

/* ---- the small layer ---- */

static void small_exp(bool child, struct exp *a0, struct exp *a1, struct exp *a2, struct exp *o0)
{
	static const uint8_t base0[12] = { 1, 1, 1, 2, 2, 3, 3, 1, 1, 1, 5, 5 };

	for (int i = 0; i < 12; i++) {
		a0[i] = (struct exp){ base0[i], 1, (uint64_t)i };
		if (child && (i == 4 || i == 5))
			a0[i] = (struct exp){ 1, 2, (uint64_t)i };
	}
	for (int i = 0; i < 7; i++) {
		o0[i] = (struct exp){ i < 5 ? 1 : 2, 101, (uint64_t)i };
		if (child && i >= 3)
			o0[i] = (struct exp){ 1, 102, (uint64_t)i };
	}
	for (int i = 0; i < 6; i++)
		a1[i] = o0[i + 1];
	a2[0] = (struct exp){ 3, 0, 0 };
	a2[1] = (struct exp){ 1, child ? 2 : 1, 1 };
	a2[2] = (struct exp){ 1, child ? 2 : 1, 2 };
}

static void test_small(void)
{
	struct pt_image_info info = { .sz = sizeof(info) };
	const struct pt_image_area *areas;
	const struct pt_image_object *objs;
	struct exp a0[12], a1[6], a2[3], o0[7];
	struct pt__capture want, got;
	struct pt_image *img = NULL, *ch = NULL;
	uint64_t cnt[8] = { 0 };
	const char *why = "";
	struct sec secs[256];
	unsigned char *b;
	size_t na, no, len, ns, nidx = 0, nfr = 0;
	struct stat st;
	int r, ok;

	r = ig_small(pathof("small.img"), NULL, errbuf, sizeof(errbuf));
	tap_ok(r == 0, "writer: small FROZEN layer written (%s)", r ? errbuf : "ok");
	tap_ok(stat(pathof("small.img"), &st) == 0 && (st.st_mode & 0777) == 0600,
	       "the layer is mode 0600");
	r = pt_image_open(pathof("small.img"), &img, errbuf, sizeof(errbuf));
	tap_ok(r == 0, "small layer opens (%s)", r ? errbuf : "ok");
	if (r) {
		tap_skip_n(10, "the small layer did not open", "small layer checks");
		return;
	}
	r = pt_image_verify(img, errbuf, sizeof(errbuf));
	tap_ok(r == 0, "small layer verifies (%s)", r ? errbuf : "ok");
	pt_image_info(img, &info);
	tap_ok(info.version_major == 1 && info.pid == 4242 && !strcmp(info.comm, "demo") &&
	       info.flags == PT_IMAGE_FROZEN && info.seq == 0 && info.nareas == 3 &&
	       info.nobjects == 2 && info.nthreads == 2 && info.page_size == 4096 &&
	       info.data_pages == 3 + 3 + 2 + 5 && info.frames == 4 && info.parent_path &&
	       !*info.parent_path && info.footer_flags == 0,
	       "info: pid %d comm %s flags %u seq %llu areas %llu objects %llu threads %llu "
	       "data pages %llu frames %llu", info.pid, info.comm, info.flags,
	       (unsigned long long)info.seq, (unsigned long long)info.nareas,
	       (unsigned long long)info.nobjects, (unsigned long long)info.nthreads,
	       (unsigned long long)info.data_pages, (unsigned long long)info.frames);
	b = slurp(pathof("small.img"), &len);
	ns = walk(b, len, secs, 256);
	for (size_t i = 0; i < ns; i++) {
		nidx += secs[i].type == IMG_S_INDEX;
		nfr += secs[i].type == IMG_S_FRAMES;
	}
	free(b);
	tap_ok(nidx >= 3 && nfr >= 2 && len == info.file_size,
	       "several INDEX (%zu) and FRAMES (%zu) chunks, %zu sections tile %zu bytes", nidx,
	       nfr, ns, len);
	pt_image_areas(img, &areas, &na);
	pt_image_objects(img, &objs, &no);
	tap_ok(na == 3 && no == 2 && areas[0].path_len == 6 && !memcmp(areas[0].path, "[heap]", 6) &&
	       areas[1].object == 0 && areas[1].offset == P && areas[2].object == 1 &&
	       areas[1].prot == (PT_PROT_READ | PT_MAP_SHARED) && objs[0].size == 6 * P + 100 &&
	       objs[0].flags == PT_OBJECT_STORED && objs[1].mtime_ns == 1700000000000000000ull &&
	       objs[1].name_len == 19 && !memcmp(objs[1].name, "/usr/lib/libdemo.so", 19) &&
	       objs[1].inode == 1234 && objs[1].dev_major == 8,
	       "areas and objects read back as written");
	small_exp(false, a0, a1, a2, o0);
	ok = check_pages(img, areas[0].start, a0, 12, false, 0, &why) &&
	     check_pages(img, areas[1].start, a1, 6, false, 0, &why) &&
	     check_pages(img, areas[2].start, a2, 3, false, 0, &why) &&
	     check_pages(img, 0, o0, 7, true, 0, &why);
	tap_ok(ok, "every page of every area and object reads back (%s)", ok ? "ok" : why);
	r = pt_image_runs(img, count_run, cnt);
	tap_ok(r == 0 && cnt[1] == 12 + 3 + 7 && cnt[2 + PT_PAGE_DATA] == 13 &&
	       cnt[2 + PT_PAGE_ZERO] == 4 && cnt[2 + PT_PAGE_HOLE] == 3 &&
	       cnt[2 + PT_PAGE_UNREADABLE] == 2,
	       "runs: %llu runs cover %llu pages", (unsigned long long)cnt[0],
	       (unsigned long long)cnt[1]);
	ig_capture(&want);
	r = pt__image_capture(img, &got, errbuf, sizeof(errbuf));
	tap_ok(r == 0 && ig_capture_equal(&want, &got) && got.pid == 4242,
	       "capture sections decode to what was stored (%s)", r ? errbuf : "ok");
	ig_capture_free(&want);
	ig_capture_free(&got);

	/* a child of it */
	r = ig_small(pathof("child.img"), img, errbuf, sizeof(errbuf));
	if (!r)
		r = pt_image_open(pathof("child.img"), &ch, errbuf, sizeof(errbuf));
	memset(&info, 0, sizeof(info));
	info.sz = sizeof(info);
	if (!r)
		pt_image_info(ch, &info);
	tap_ok(r == 0 && info.seq == 1 && !strcmp(info.parent_path, "small.img") &&
	       info.footer_flags == 1 && (info.flags & PT_IMAGE_HAS_PARENT),
	       "child layer: seq 1, parent stored as its file name '%s', TRACKED (%s)",
	       info.parent_path ? info.parent_path : "", r ? errbuf : "ok");
	small_exp(true, a0, a1, a2, o0);
	ok = !r && check_pages(ch, areas[0].start, a0, 12, false, 0, &why) &&
	     check_pages(ch, areas[1].start, a1, 6, false, 0, &why) &&
	     check_pages(ch, areas[2].start, a2, 3, false, 0, &why) &&
	     check_pages(ch, 0, o0, 7, true, 0, &why);
	tap_ok(ok, "child: UNCHANGED pages resolve to the parent's (%s)", ok ? "ok" : why);
	r = ch ? pt_image_verify(ch, errbuf, sizeof(errbuf)) : -1;
	tap_ok(r == 0, "child and its chain verify (%s)", r ? errbuf : "ok");
	pt_image_close(ch);
	pt_image_close(img);
}

/* ---- a chain of 3 layers with a layout change ---- */

#define CB 0x500000000000ull
enum { D = 1, Z = 2, H = 3, U = 4, X = 5 };
static const uint8_t chain_area[3][32] = {
	{ D, D, D, D, D, D, D, D, Z, Z, D, D, D, D, D, D,
	  D, D, D, D, D, D, D, D, H, H, H, H, X, X, X, X },
	{ U, U, U, U, U, D, D, U, U, U, U, U, U, U, U, U,
	  U, U, U, U, Z, U, U, U, U, U, U, U, U, U, U, U },
	{ D, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U,
	  U, U, U, U, U, U, U, U, U, U, U, U, U, U, D, D },
};
static const uint8_t chain_obj[3][8] = {
	{ D, D, D, D, D, D, D, D },
	{ U, U, U, U, D, D, D, D },
	{ U, U, U, U, U, U, U, U },
};

static int write_model(struct pt__imgw *w, uint32_t ot, uint32_t owner, const uint8_t *k,
		       size_t n, uint32_t seed, uint64_t key0)
{
	unsigned char pg[P];
	int r = 0;

	for (size_t i = 0; i < n && !r; i++) {
		if (k[i] == D) {
			ig_page(pg, seed, key0 + i);
			r = pt__imgw_run(w, ot, owner, PT_PAGE_DATA, 0, 1, pg);
		} else {
			r = pt__imgw_run(w, ot, owner, k[i], k[i] == X ? 2 : 0, 1, NULL);
		}
	}
	return r;
}

static pid_t chain_pid = 777;

static int write_chain_layer(const char *path, int L, struct pt_image *parent)
{
	struct pt__imgw_opts o = {
		.flags = L == 2 ? PT_IMAGE_FROZEN : PT_IMAGE_LIVE, .pid = chain_pid, .comm = "chain",
		.parent = parent, .frame_pages = 3,
	};
	uint32_t delta = L == 0 ? PT_DELTA_FULL : L == 1 ? PT_DELTA_TRACKED : PT_DELTA_COMPARED;
	struct pt_image_object ob = { 0, 5, 99, 8 * P, 0, PT_VMA_MEMFD, delta, PT_OBJECT_STORED,
				      0, "/memfd:m", 8 };
	struct pt_image_area a0[3] = {
		{ CB, CB + 16 * P, 0, 3, PT_VMA_HEAP, 0, PT_IMAGE_NO_OBJECT, "[heap]", 6 },
		{ CB + 16 * P, CB + 32 * P, 0, 3, PT_VMA_ANON, 0, PT_IMAGE_NO_OBJECT, "", 0 },
		{ CB + 40 * P, CB + 48 * P, 0, 0xb, PT_VMA_MEMFD, 0, 0, "/memfd:m", 8 },
	};
	struct pt_image_area a1[2] = {
		{ CB, CB + 32 * P, 0, 3, PT_VMA_ANON, delta, PT_IMAGE_NO_OBJECT, "", 0 },
		{ CB + 40 * P, CB + 48 * P, 0, 0xb, PT_VMA_MEMFD, 0, 0, "/memfd:m", 8 },
	};
	struct pt__capture c;
	struct pt__imgw *w;
	int r;

	if ((r = pt__imgw_open(path, &o, &w, errbuf, sizeof(errbuf))))
		return r;
	if (L == 0)
		r = pt__imgw_layout(w, a0, 3, &ob, 1) ||
		    write_model(w, PT_OWNER_AREA, 0, chain_area[0], 16, 10, CB / P) ||
		    write_model(w, PT_OWNER_AREA, 1, chain_area[0] + 16, 16, 10, CB / P + 16);
	else
		r = pt__imgw_layout(w, a1, 2, &ob, 1) ||
		    write_model(w, PT_OWNER_AREA, 0, chain_area[L], 32, 10 + (uint32_t)L, CB / P);
	r = r || write_model(w, PT_OWNER_OBJECT, 0, chain_obj[L], 8, 20 + (uint32_t)L, 0);
	if (!r && L == 2) {
		ig_capture(&c);
		r = pt__imgw_capture(w, &c);
		ig_capture_free(&c);
	}
	if (r) {
		pt__imgw_abort(w);
		return -1;
	}
	return pt__imgw_finish(w, NULL, errbuf, sizeof(errbuf));
}

static void chain_exp(int L, struct exp *area, struct exp *obj)
{
	for (int i = 0; i < 32; i++) {
		int l = L;

		while (chain_area[l][i] == U)
			l--;
		area[i] = (struct exp){ chain_area[l][i] == X ? PT_PAGE_UNREADABLE : chain_area[l][i],
					10 + (uint32_t)l, CB / P + (uint64_t)i };
	}
	for (int i = 0; i < 8; i++) {
		int l = L;

		while (chain_obj[l][i] == U)
			l--;
		obj[i] = (struct exp){ chain_obj[l][i], 20 + (uint32_t)l, (uint64_t)i };
	}
}

static void test_chain(void)
{
	struct pt_image *l[3] = { 0 }, *other = NULL;
	struct pt_image_info info = { .sz = sizeof(info) };
	struct exp ae[32], oe[8];
	const char *why = "";
	char sub[128];
	int r, ok;

	r = write_chain_layer(pathof("c0.img"), 0, NULL);
	if (!r)
		r = pt_image_open(pathof("c0.img"), &l[0], errbuf, sizeof(errbuf));
	if (!r)
		r = write_chain_layer(pathof("c1.img"), 1, l[0]);
	if (!r)
		r = pt_image_open(pathof("c1.img"), &l[1], errbuf, sizeof(errbuf));
	if (!r)
		r = write_chain_layer(pathof("c2.img"), 2, l[1]);
	if (!r)
		r = pt_image_open(pathof("c2.img"), &l[2], errbuf, sizeof(errbuf));
	tap_ok(r == 0, "chain of 3 layers written and opened (%s)", r ? errbuf : "ok");
	if (r) {
		tap_skip_n(3, "no chain", "chain checks");
		goto out;
	}
	ok = 1;
	for (int L = 0; L < 3 && ok; L++) {
		static char m[600];

		chain_exp(L, ae, oe);
		/* layer 0 has two areas there */
		ok = (L ? check_pages(l[L], CB, ae, 32, false, 0, &why) :
		      check_pages(l[L], CB, ae, 16, false, 0, &why) &&
		      check_pages(l[L], CB + 16 * P, ae + 16, 16, false, 0, &why)) &&
		     check_pages(l[L], 0, oe, 8, true, 0, &why) &&
		     check_pages(l[L], CB + 40 * P, oe, 8, false, 0, &why);
		if (!ok) {
			snprintf(m, sizeof(m), "layer %d: %s", L, why);
			why = m;
		}
	}
	tap_ok(ok, "each layer resolves through the chain (runs spanning two parent areas, "
	       "objects, shared areas) (%s)", ok ? "ok" : why);
	r = pt_image_verify(l[2], errbuf, sizeof(errbuf));
	tap_ok(r == 0, "the last layer verifies with its chain (%s)", r ? errbuf : "ok");

	/* a child in another directory links to its parent by absolute path */
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	mkdir(sub, 0700);
	r = write_chain_layer(pathof("sub/c2.img"), 2, l[1]);
	if (!r)
		r = pt_image_open(pathof("sub/c2.img"), &other, errbuf, sizeof(errbuf));
	if (!r)
		pt_image_info(other, &info);
	chain_exp(2, ae, oe);
	ok = !r && info.parent_path[0] == '/' && strstr(info.parent_path, "/c1.img") &&
	     check_pages(other, CB, ae, 32, false, 0, &why);
	tap_ok(ok, "a layer in another directory stores its parent's absolute path '%s' and "
	       "resolves (%s)", info.parent_path ? info.parent_path : "", r ? errbuf : ok ? "ok" : why);
	pt_image_close(other);
	unlink(pathof("sub/c2.img"));
	rmdir(sub);
out:
	for (int i = 0; i < 3; i++)
		pt_image_close(l[i]);
}

/* ---- broken chains ---- */

static int read_all(const char *path, char *e, size_t el)
{
	struct pt_image *img;
	unsigned char *buf = malloc(32 * P);
	int r = pt_image_open(path, &img, e, el);

	if (!r) {
		r = pt_image_read(img, CB, 32, buf, NULL, e, el);
		pt_image_close(img);
	}
	free(buf);
	return r;
}

static int verify_path(const char *path, char *e, size_t el)
{
	struct pt_image *img;
	int r = pt_image_open(path, &img, e, el);

	if (!r) {
		r = pt_image_verify(img, e, el);
		pt_image_close(img);
	}
	return r;
}

static void test_broken_chain(void)
{
	char e1[256] = "", e2[256] = "";
	int r1, r2;

	/* c1's parent c0 missing */
	rename(pathof("c0.img"), pathof("c0.away"));
	r1 = read_all(pathof("c1.img"), e1, sizeof(e1));
	r2 = verify_path(pathof("c2.img"), e2, sizeof(e2));
	tap_ok(r1 == -ENOENT && r2 == -ENOENT, "missing parent: read %d (%s), verify %d (%s)", r1,
	       e1, r2, e2);
	/* another layer under the parent's name */
	write_chain_layer(pathof("c0.img"), 0, NULL);
	r1 = read_all(pathof("c1.img"), e1, sizeof(e1));
	r2 = verify_path(pathof("c2.img"), e2, sizeof(e2));
	tap_ok(r1 == -ESTALE && r2 == -ESTALE, "another layer as parent: read %d (%s), verify %d",
	       r1, e1, r2);
	/* a corrupt parent */
	{
		size_t len;
		unsigned char *b = slurp(pathof("c0.away"), &len);

		b[40] ^= 1;	/* its seq: the header checksum fails */
		spit(pathof("c0.img"), b, len);
		free(b);
	}
	r1 = read_all(pathof("c1.img"), e1, sizeof(e1));
	unlink(pathof("c0.img"));
	mkdir(pathof("c0.img"), 0700);
	r2 = read_all(pathof("c1.img"), e2, sizeof(e2));
	rmdir(pathof("c0.img"));
	tap_ok(r1 == -ESTALE && r2 == -ESTALE, "corrupt parent: read %d (%s); a directory as "
	       "parent: %d (%s)", r1, e1, r2, e2);
	rename(pathof("c0.away"), pathof("c0.img"));
	r1 = read_all(pathof("c1.img"), e1, sizeof(e1));
	tap_ok(r1 == 0, "the right parent back: read %d (%s)", r1, e1);
	/* another pid: a TRACKED delta cannot span processes, a COMPARED one can */
	{
		struct pt_image *c0 = NULL, *c1 = NULL;

		chain_pid = 778;
		r1 = r2 = -1;
		if (!pt_image_open(pathof("c0.img"), &c0, NULL, 0) &&
		    !write_chain_layer(pathof("pid1.img"), 1, c0))
			r1 = read_all(pathof("pid1.img"), e1, sizeof(e1));
		if (!pt_image_open(pathof("c1.img"), &c1, NULL, 0) &&
		    !write_chain_layer(pathof("pid2.img"), 2, c1))
			r2 = read_all(pathof("pid2.img"), e2, sizeof(e2));
		chain_pid = 777;
		pt_image_close(c0);
		pt_image_close(c1);
		tap_ok(r1 == -ESTALE && r2 == 0, "parent of another pid: TRACKED child %d (%s), "
		       "COMPARED child %d", r1, e1, r2);
	}
}

/* ---- several big frames ---- */

static void test_frames(void)
{
	struct pt__imgw_opts o = { .flags = PT_IMAGE_LIVE, .pid = 1, .comm = "noise" };
	struct pt_image_area a = { 0x10000000, 0x10000000 + 700 * P, 0, 3, PT_VMA_ANON, 0,
				   PT_IMAGE_NO_OBJECT, "", 0 };
	struct pt__imgw_result res = { 0 };
	unsigned char *buf = malloc(700 * P), *back = malloc(700 * P);
	uint64_t st = 88172645463325252ull;
	struct pt_image_info info = { .sz = sizeof(info) };
	struct pt__imgw *w;
	struct pt_image *img = NULL;
	int r;

	for (int i = 0; i < 700; i++)
		if (i % 3)
			ig_noise(buf + (size_t)i * P, &st);
		else
			ig_page(buf + (size_t)i * P, 5, (uint64_t)i);
	r = pt__imgw_open(pathof("big.img"), &o, &w, errbuf, sizeof(errbuf));
	if (!r && !(r = pt__imgw_layout(w, &a, 1, NULL, 0))) {
		/* odd run lengths so runs cross frame boundaries */
		for (int i = 0; i < 700 && !r; i += 100)
			r = pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_DATA, 0, 100,
					 buf + (size_t)i * P);
		if (r)
			pt__imgw_abort(w);
		else
			r = pt__imgw_finish(w, &res, errbuf, sizeof(errbuf));
	}
	if (!r)
		r = pt_image_open(pathof("big.img"), &img, errbuf, sizeof(errbuf));
	if (!r)
		r = pt_image_read(img, 0x10000000, 700, back, NULL, errbuf, sizeof(errbuf));
	if (!r)
		pt_image_info(img, &info);
	tap_ok(r == 0 && !memcmp(buf, back, 700 * P) && res.frames == 3 && info.frames == 3 &&
	       res.data_pages == 700 && res.file_size == info.file_size &&
	       res.file_checksum == info.file_checksum && info.frame_bytes == res.frame_bytes,
	       "700 pages in 256-page frames: %llu frames, %llu bytes, read back equal (%s)",
	       (unsigned long long)info.frames, (unsigned long long)info.file_size,
	       r ? errbuf : "ok");
	r = img ? pt_image_verify(img, errbuf, sizeof(errbuf)) : -1;
	tap_ok(r == 0, "the big layer verifies (%s)", r ? errbuf : "ok");
	pt_image_close(img);
	free(buf);
	free(back);
}

/* ---- the worked example of doc/image-format.md ---- */

static void test_example(void)
{
	static const unsigned char zframe[19] = { 0x28, 0xB5, 0x2F, 0xFD, 0x60, 0x00, 0x0F, 0x4D,
						  0x00, 0x00, 0x10, 0x41, 0x41, 0x01, 0x00, 0xFB,
						  0xF7, 0x01, 0x16 };
	static const struct { uint32_t type; uint64_t off, len; } want[] = {
		{ IMG_S_FRAME, 128, 19 }, { IMG_S_FRAMES, 184, 32 }, { IMG_S_INDEX, 248, 64 },
		{ IMG_S_STRINGS, 344, 6 }, { IMG_S_OBJECTS, 384, 0 }, { IMG_S_AREAS, 416, 64 },
		{ IMG_S_DIRECTORY, 512, 120 },
	};
	unsigned char *b = NULL;
	struct sec s[16];
	size_t len = 0, n = 0;
	int r, ok;

	r = ig_example(pathof("example.img"), errbuf, sizeof(errbuf));
	if (!r)
		b = slurp(pathof("example.img"), &len);
	ok = b && len == 728;
	if (ok)
		n = walk(b, len, s, 16);
	ok = ok && n == 7 && img_get32(b + 12) == 128 && img_get32(b + 16) == 4 &&
	     img_get32(b + 24) == 4242 && !memcmp(b + 104, "demo", 5) &&
	     img_get64(b + 664) == 512 && img_get64(b + 672) == 728 &&
	     !memcmp(b + 720, "PTIMGEND", 8) && !memcmp(b + 376, "[heap]", 6) &&
	     img_get64(b + 448) == 0x55550000 && img_get32(b + 448 + 32) == 0xffffffffu &&
	     b[280 + 1] == PT_PAGE_DATA && b[312 + 1] == PT_PAGE_HOLE && img_get64(b + 312 + 8) == 1;
	for (size_t i = 0; ok && i < 7; i++)
		ok = s[i].type == want[i].type && s[i].off == want[i].off && s[i].len == want[i].len;
	tap_ok(ok, "worked example: 728 bytes, sections at the documented offsets (%s)",
	       r ? errbuf : b ? "layout" : "no file");
	tap_ok(b && len == 728 && !memcmp(b + 160, zframe, sizeof(zframe)),
	       "worked example: the zstd frame is the documented 19 bytes");
	free(b);
}

/* ---- truncation and bit flips ---- */

static int try_bytes(const unsigned char *b, size_t len)
{
	const char *m = pathof("mut.img");
	struct pt_image *img;
	int r;

	if (spit(m, b, len))
		return -9999;
	r = pt_image_open(m, &img, errbuf, sizeof(errbuf));
	if (!r) {
		r = pt_image_verify(img, errbuf, sizeof(errbuf));
		pt_image_close(img);
	}
	return r;
}

static bool documented(int r)
{
	return r == -ENODATA || r == -EBADMSG || r == -EPROTONOSUPPORT || r == -EUCLEAN;
}

static void test_truncation(const char *name, size_t step, size_t samples)
{
	size_t len, bad = 0, tried = 0, first_bad = 0;
	unsigned char *b = slurp(pathof(name), &len);
	int first_r = 0;

	if (!b) {
		tap_ok(0, "%s: could not read", name);
		return;
	}
	if (samples)
		step = len / samples ? len / samples : 1;
	for (size_t n = 0; n < len; n += step) {
		int r = try_bytes(b, n);

		tried++;
		if (r != -ENODATA && !bad++) {
			first_bad = n;
			first_r = r;
		}
	}
	tap_ok(bad == 0, "%s: truncated at %zu offsets: every one ENODATA (%zu not; first at %zu: %d)",
	       name, tried, bad, first_bad, first_r);
	free(b);
}

/* Expected category of a flipped byte: 0 any documented error, else that errno. */
static int flip_expect(const unsigned char *b, size_t len, size_t off)
{
	static struct sec s[4096];
	size_t n, hs = img_get32(b + 12);

	if (off >= len - 8)
		return -ENODATA;
	if (off >= len - IMG_FOOTER)
		return -EBADMSG;
	if (off < 16)
		return 0;
	if (off < hs)
		return -EBADMSG;
	n = walk(b, len, s, 4096);
	for (size_t i = 0; i < n; i++) {
		if (off < s[i].off || off >= s[i].off + IMG_SEC_HDR + img_align8(s[i].len))
			continue;
		if (off < s[i].off + IMG_SEC_HDR)
			return 0;
		return off < s[i].off + IMG_SEC_HDR + s[i].len ? -EBADMSG : 1;	/* padding */
	}
	return 0;
}

static void test_flips(const char *name, size_t samples)
{
	size_t len, bad = 0, tried = 0, first_bad = 0, step;
	unsigned char *b = slurp(pathof(name), &len);
	int first_r = 0;

	if (!b) {
		tap_ok(0, "%s: could not read", name);
		return;
	}
	step = samples && len / samples ? len / samples : 1;
	for (size_t off = 0; off < len; off += step) {
		int want = flip_expect(b, len, off), r;

		b[off] ^= (unsigned char)(1u << (off % 8));
		r = try_bytes(b, len);
		b[off] ^= (unsigned char)(1u << (off % 8));
		tried++;
		if (!documented(r) || (want < 0 && r != want) ||
		    (want == 1 && r != -EBADMSG && r != -EUCLEAN)) {
			if (!bad++) {
				first_bad = off;
				first_r = r;
			}
		}
	}
	tap_ok(bad == 0, "%s: one bit flipped at %zu offsets: each the right error (%zu not; "
	       "first at %zu: %d %s)", name, tried, bad, first_bad, first_r, bad ? errbuf : "");
	free(b);
}

/* ---- writer misuse ---- */

static bool w_overwrite;

static struct pt__imgw *w_two(const char *name, struct pt_image *parent)
{
	static struct pt_image_area a[2] = {
		{ 0x1000000, 0x1000000 + 4 * P, 0, 3, PT_VMA_ANON, 0, PT_IMAGE_NO_OBJECT, "", 0 },
		{ 0x2000000, 0x2000000 + 4 * P, 0, 3, PT_VMA_ANON, 0, PT_IMAGE_NO_OBJECT, "", 0 },
	};
	struct pt__imgw_opts o = { .flags = PT_IMAGE_LIVE, .pid = 9, .parent = parent,
				   .overwrite = w_overwrite };
	struct pt__imgw *w;

	if (pt__imgw_open(pathof(name), &o, &w, errbuf, sizeof(errbuf)))
		return NULL;
	if (pt__imgw_layout(w, a, 2, NULL, 0)) {
		pt__imgw_abort(w);
		return NULL;
	}
	return w;
}

static void test_misuse(void)
{
	unsigned char pg[2 * P] = { 0 };
	struct pt__imgw *w = w_two("misuse.img", NULL);
	struct pt_image *c0 = NULL;
	int r1, r2, r3, r4, r5, r6;

	if (!w) {
		tap_skip_n(5, "writer did not open", "writer misuse (%s)", errbuf);
		return;
	}
	r1 = pt__imgw_run(w, PT_OWNER_AREA, 1, PT_PAGE_HOLE, 0, 1, NULL);	/* area 0 first */
	r2 = pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_HOLE, 0, 5, NULL);	/* beyond its end */
	r3 = pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_DATA, 0, 1, NULL);	/* no data */
	r4 = pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_UNCHANGED, 0, 1, NULL);	/* base layer */
	r5 = pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_DATA, 0, 2, pg);
	r6 = pt__imgw_run(w, PT_OWNER_AREA, 1, PT_PAGE_HOLE, 0, 1, NULL);	/* area 0 unfinished */
	tap_ok(r1 == -EINVAL && r2 == -EINVAL && r3 == -EINVAL && r4 == -EINVAL && r5 == 0 &&
	       r6 == -EINVAL, "writer: out-of-order, overlong, data-less runs and UNCHANGED in a "
	       "base layer are -EINVAL (%d %d %d %d %d %d)", r1, r2, r3, r4, r5, r6);
	r1 = pt__imgw_finish(w, NULL, errbuf, sizeof(errbuf));
	tap_ok(r1 == -EINVAL && count_files(dir, "misuse") == 0 && count_files(dir, ".misuse") == 0,
	       "writer: finish with areas not covered is -EINVAL, no file or temp left (%s)", errbuf);

	/* UNCHANGED in an owner left FULL */
	pt_image_open(pathof("c0.img"), &c0, NULL, 0);
	w = c0 ? w_two("misuse.img", c0) : NULL;
	r1 = w ? pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_UNCHANGED, 0, 4, NULL) : -1;
	r2 = w ? pt__imgw_run(w, PT_OWNER_AREA, 1, PT_PAGE_ZERO, 0, 4, NULL) : -1;
	r3 = w ? pt__imgw_finish(w, NULL, errbuf, sizeof(errbuf)) : -1;
	tap_ok(r1 == 0 && r2 == 0 && r3 == -EINVAL && count_files(dir, ".misuse") == 0,
	       "writer: UNCHANGED runs in an owner whose delta stayed FULL: finish -EINVAL (%s)",
	       errbuf);
	w = c0 ? w_two("misuse.img", c0) : NULL;
	r1 = w ? pt__imgw_set_delta(w, PT_OWNER_AREA, 0, PT_DELTA_COMPARED) : -1;
	r2 = w ? pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_UNCHANGED, 0, 4, NULL) : -1;
	r3 = w ? pt__imgw_run(w, PT_OWNER_AREA, 1, PT_PAGE_ZERO, 0, 4, NULL) : -1;
	r4 = w ? pt__imgw_finish(w, NULL, errbuf, sizeof(errbuf)) : -1;
	/* the same name again, without and with overwrite */
	w = c0 ? w_two("misuse.img", c0) : NULL;
	r5 = w ? pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_ZERO, 0, 4, NULL) : -1;
	r5 = r5 ? r5 : pt__imgw_run(w, PT_OWNER_AREA, 1, PT_PAGE_ZERO, 0, 4, NULL);
	r6 = w ? pt__imgw_finish(w, NULL, errbuf, sizeof(errbuf)) : -1;
	tap_ok(r1 == 0 && r2 == 0 && r3 == 0 && r4 == 0 && r5 == 0 && r6 == -EEXIST &&
	       count_files(dir, ".misuse") == 0 && count_files(dir, "misuse") == 1,
	       "writer: set_delta then UNCHANGED is fine; an existing name is -EEXIST without "
	       "overwrite, temp removed (%d %d %d %d %d %d)", r1, r2, r3, r4, r5, r6);
	w_overwrite = true;
	w = c0 ? w_two("misuse.img", c0) : NULL;
	r1 = w ? pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_ZERO, 0, 4, NULL) : -1;
	r2 = w ? pt__imgw_run(w, PT_OWNER_AREA, 1, PT_PAGE_HOLE, 0, 4, NULL) : -1;
	r3 = w ? pt__imgw_finish(w, NULL, errbuf, sizeof(errbuf)) : -1;
	w_overwrite = false;
	{
		struct pt_image *img = NULL;
		uint8_t k[4] = { 0 };
		unsigned char buf[4 * P];

		r4 = pt_image_open(pathof("misuse.img"), &img, errbuf, sizeof(errbuf));
		if (!r4)
			r4 = pt_image_read(img, 0x2000000, 4, buf, k, errbuf, sizeof(errbuf));
		pt_image_close(img);
		tap_ok(r1 == 0 && r2 == 0 && r3 == 0 && r4 == 0 && k[0] == PT_PAGE_HOLE &&
		       count_files(dir, ".misuse") == 0 && count_files(dir, "misuse") == 1,
		       "writer: with overwrite the new layer replaces the old one (%d %d %d %d)", r1,
		       r2, r3, r4);
	}
	pt_image_close(c0);
}

/* ---- ENOSPC on a 64 KiB tmpfs in a private mount namespace ---- */

static void test_enospc(void)
{
	char mnt[128];
	int pfd[2], res[3] = { 0, -1, -1 };
	pid_t pid;

	snprintf(mnt, sizeof(mnt), "%s/small-fs", dir);
	if (mkdir(mnt, 0700) || pipe(pfd)) {
		tap_skip("cannot set up the mount point", "ENOSPC");
		return;
	}
	pid = fork();
	if (pid == 0) {
		struct pt__imgw_opts o = { .flags = PT_IMAGE_LIVE, .pid = 1 };
		struct pt_image_area a = { 0x1000000, 0x1000000 + 64 * P, 0, 3, PT_VMA_ANON, 0,
					   PT_IMAGE_NO_OBJECT, "", 0 };
		unsigned char pg[P];
		uint64_t st = 12345;
		char path[192];
		struct pt__imgw *w;
		int r = 0;

		close(pfd[0]);
		if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
		    mount("tmpfs", mnt, "tmpfs", 0, "size=64k")) {
			res[0] = -errno;
			res[1] = -2;
			if (write(pfd[1], res, sizeof(res)) < 0)
				_exit(1);
			_exit(0);
		}
		snprintf(path, sizeof(path), "%s/full.img", mnt);
		r = pt__imgw_open(path, &o, &w, errbuf, sizeof(errbuf));
		if (!r && !(r = pt__imgw_layout(w, &a, 1, NULL, 0))) {
			for (int i = 0; i < 64 && !r; i++) {
				ig_noise(pg, &st);
				r = pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_DATA, 0, 1, pg);
			}
			if (r)
				pt__imgw_abort(w);
			else
				r = pt__imgw_finish(w, NULL, errbuf, sizeof(errbuf));
		}
		res[0] = r;
		res[1] = count_files(mnt, "");
		res[2] = 0;
		if (write(pfd[1], res, sizeof(res)) < 0)
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	if (pid < 0 || read(pfd[0], res, sizeof(res)) != sizeof(res))
		res[1] = -3;
	close(pfd[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	rmdir(mnt);
	if (res[1] == -2) {
		tap_skip("no private tmpfs mount here", "ENOSPC (%s)", strerror(-res[0]));
		return;
	}
	tap_ok(res[0] == -ENOSPC && res[1] == 0,
	       "ENOSPC on a 64 KiB tmpfs: %d (%s), %d files left", res[0],
	       res[0] == -ENOSPC ? "ENOSPC" : strerror(-res[0]), res[1]);
}

static void test_read_errors(void)
{
	struct pt_image *img = NULL;
	unsigned char buf[2 * P];
	int r1 = -1, r2 = -1, r3 = -1, r4 = -1;

	if (!pt_image_open(pathof("small.img"), &img, NULL, 0)) {
		r1 = pt_image_read(img, 0x1000, 1, buf, NULL, errbuf, sizeof(errbuf));
		r2 = pt_image_read(img, 0x7f0000000000ull + 11 * P, 2, buf, NULL, NULL, 0);
		r3 = pt_image_read_object(img, 1, 0, 1, buf, NULL, NULL, 0);
		r4 = pt_image_read_object(img, 0, 6, 2, buf, NULL, NULL, 0);
	}
	tap_ok(r1 == -ENOENT && r2 == -EINVAL && r3 == -ENOENT && r4 == -EINVAL,
	       "read errors: no area -ENOENT, across the area's end -EINVAL, object not stored "
	       "-ENOENT, beyond the object -EINVAL (%d %d %d %d)", r1, r2, r3, r4);
	pt_image_close(img);
	tap_ok(!strcmp(pt_page_kind_name(PT_PAGE_UNCHANGED), "unchanged") &&
	       !strcmp(pt_page_kind_name(PT_PAGE_DATA), "data") &&
	       !strcmp(pt_page_kind_name(9), "unknown") &&
	       !strcmp(pt_image_delta_name(PT_DELTA_COMPARED), "compared") &&
	       !strcmp(pt_image_delta_name(7), "unknown"), "kind and delta names");
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
	strcpy(dir, "/tmp/pt-test-image-XXXXXX");
	if (!mkdtemp(dir))
		tap_skip_all("mkdtemp failed");
	tap_plan(40);
	test_small();		/* 13 */
	test_chain();		/* 4 */
	test_broken_chain();	/* 5 */
	test_frames();		/* 2 */
	test_example();		/* 2 */
	test_truncation("small.img", 8, 0);
	test_truncation("c2.img", 0, 150);
	test_truncation("big.img", 0, 100);
	test_flips("small.img", 0);
	test_flips("c2.img", 400);
	test_flips("big.img", 100);
	test_misuse();		/* 5 */
	test_enospc();		/* 1 */
	test_read_errors();	/* 2 */
	cleanup();
	return tap_done();
}
