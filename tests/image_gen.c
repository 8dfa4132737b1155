// SPDX-License-Identifier: MIT
/* Small image layers for tests: see image_gen.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "image_gen.h"

void ig_page(unsigned char *p, uint32_t seed, uint64_t key)
{
	for (unsigned i = 0; i < IG_PAGE; i++)
		p[i] = (unsigned char)(seed * 7u + key * 13u + i / 64u);
	memcpy(p, &seed, sizeof(seed));
	memcpy(p + 8, &key, sizeof(key));
}

void ig_noise(unsigned char *p, uint64_t *state)
{
	for (unsigned i = 0; i < IG_PAGE; i += 8) {
		uint64_t x = *state;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		*state = x;
		memcpy(p + i, &x, 8);
	}
}

static void note(struct pt__note *n, uint32_t type, const char *name, uint32_t len, int seed)
{
	unsigned char *d = malloc(len ? len : 1);

	n->type = type;
	memset(n->name, 0, sizeof(n->name));
	strcpy(n->name, name);
	n->len = len;
	for (uint32_t i = 0; i < len; i++)
		d[i] = (unsigned char)(i * 3 + (uint32_t)seed);
	n->desc = d;
}

void ig_capture(struct pt__capture *c)
{
	static const char cmd[] = "demo\0-x\0--flag";

	memset(c, 0, sizeof(*c));
	c->pid = 4242;
	c->ppid = 1;
	c->pgrp = 4242;
	c->sid = 4000;
	c->uid = 1000;
	c->gid = 100;
	c->state = 'S';
	c->nice = -5;
	strcpy(c->comm, "demo");
	c->cmdline = malloc(sizeof(cmd));
	memcpy(c->cmdline, cmd, sizeof(cmd));
	c->cmdline_len = sizeof(cmd);
	c->nauxv = 4;
	c->auxv = calloc(4, sizeof(*c->auxv));
	c->auxv[0][0] = 6;	/* AT_PAGESZ */
	c->auxv[0][1] = 4096;
	c->auxv[1][0] = 25;	/* AT_RANDOM */
	c->auxv[1][1] = 0x7ffc12345678ull;
	c->auxv[2][0] = 33;	/* AT_SYSINFO_EHDR */
	c->auxv[2][1] = 0x7ffc00001000ull;
	c->nthreads = 2;
	c->threads = calloc(2, sizeof(*c->threads));
	c->threads[0].tid = 4242;
	c->threads[0].sigblocked = 1ull << 13;
	c->threads[0].nnotes = 3;
	c->threads[0].notes = calloc(3, sizeof(struct pt__note));
	note(&c->threads[0].notes[0], 1, "CORE", 216, 1);
	note(&c->threads[0].notes[1], 2, "CORE", 512, 2);
	note(&c->threads[0].notes[2], 0x202, "LINUX", 1001, 3);
	c->threads[1].tid = 4243;
	c->threads[1].cursig = 19;
	c->threads[1].sigpending = 5;
	c->threads[1].nnotes = 1;
	c->threads[1].notes = calloc(1, sizeof(struct pt__note));
	note(&c->threads[1].notes[0], 1, "CORE", 216, 4);
	c->nfiles = 3;
	c->files = calloc(3, sizeof(*c->files));
	for (int i = 0; i < 3; i++) {
		c->files[i].fd = (uint32_t)(i * 2);
		c->files[i].flags = 02 | (uint32_t)i;
		c->files[i].pos = 100u * (uint64_t)i;
		c->files[i].dev_major = 8;
		c->files[i].dev_minor = (uint32_t)i;
		c->files[i].inode = 1000 + (uint64_t)i;
		c->files[i].mode = 0100644;
		c->files[i].name = strdup(i == 1 ? "/dev/pts/3" : "/var/log/demo.log");
	}
}

void ig_capture_free(struct pt__capture *c)
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

int ig_capture_equal(const struct pt__capture *a, const struct pt__capture *b)
{
	size_t na = a->nauxv;

	/* the writer adds AT_NULL when it is missing */
	if (na && (a->auxv[na - 1][0] || a->auxv[na - 1][1]))
		na++;
	if (a->ppid != b->ppid || a->pgrp != b->pgrp || a->sid != b->sid || a->uid != b->uid ||
	    a->gid != b->gid || a->state != b->state || a->nice != b->nice ||
	    a->cmdline_len != b->cmdline_len || memcmp(a->cmdline, b->cmdline, a->cmdline_len) ||
	    na != b->nauxv || a->nthreads != b->nthreads || a->nfiles != b->nfiles)
		return 0;
	for (size_t i = 0; i < a->nauxv && i < b->nauxv; i++)
		if (a->auxv[i][0] != b->auxv[i][0] || a->auxv[i][1] != b->auxv[i][1])
			return 0;
	if (b->auxv[b->nauxv - 1][0] || b->auxv[b->nauxv - 1][1])
		return 0;
	for (size_t i = 0; i < a->nthreads; i++) {
		const struct pt__thread *x = &a->threads[i], *y = &b->threads[i];

		if (x->tid != y->tid || x->cursig != y->cursig || x->sigblocked != y->sigblocked ||
		    x->sigpending != y->sigpending || x->nnotes != y->nnotes)
			return 0;
		for (size_t k = 0; k < x->nnotes; k++)
			if (x->notes[k].type != y->notes[k].type ||
			    strcmp(x->notes[k].name, y->notes[k].name) ||
			    x->notes[k].len != y->notes[k].len ||
			    memcmp(x->notes[k].desc, y->notes[k].desc, x->notes[k].len))
				return 0;
	}
	for (size_t i = 0; i < a->nfiles; i++) {
		const struct pt__file *x = &a->files[i], *y = &b->files[i];

		if (x->fd != y->fd || x->flags != y->flags || x->pos != y->pos ||
		    x->dev_major != y->dev_major || x->dev_minor != y->dev_minor ||
		    x->inode != y->inode || x->mode != y->mode || strcmp(x->name, y->name))
			return 0;
	}
	return 1;
}

#define SMALL_BASE 0x7f0000000000ull

static int data(struct pt__imgw *w, uint32_t ot, uint32_t owner, uint64_t key0, uint32_t seed,
		uint64_t n)
{
	unsigned char *buf = malloc(n * IG_PAGE);
	int r;

	if (!buf)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++)
		ig_page(buf + i * IG_PAGE, seed, key0 + i);
	r = pt__imgw_run(w, ot, owner, PT_PAGE_DATA, 0, n, buf);
	free(buf);
	return r;
}

int ig_small(const char *path, struct pt_image *parent, char *err, size_t errlen)
{
	struct pt__imgw_opts o = {
		.flags = PT_IMAGE_FROZEN, .pid = 4242, .comm = "demo", .parent = parent,
		.frame_pages = 4, .chunk_bytes = 64,
	};
	uint32_t delta = parent ? PT_DELTA_TRACKED : PT_DELTA_FULL;
	struct pt_image_area a[3] = {
		{ SMALL_BASE, SMALL_BASE + 12 * IG_PAGE, 0, PT_PROT_READ | PT_PROT_WRITE,
		  PT_VMA_HEAP, delta, PT_IMAGE_NO_OBJECT, "[heap]", 6 },
		{ SMALL_BASE + 16 * IG_PAGE, SMALL_BASE + 22 * IG_PAGE, IG_PAGE,
		  PT_PROT_READ | PT_MAP_SHARED, PT_VMA_MEMFD, 0, 0, "/memfd:guest (deleted)", 22 },
		{ SMALL_BASE + 22 * IG_PAGE, SMALL_BASE + 25 * IG_PAGE, 0, PT_PROT_READ,
		  PT_VMA_FILE, delta, 1, "/usr/lib/libdemo.so", 19 },
	};
	struct pt_image_object ob[2] = {
		{ 0, 1, 77, 6 * IG_PAGE + 100, 0, PT_VMA_MEMFD, delta, PT_OBJECT_STORED, 0,
		  "/memfd:guest", 12 },
		{ 8, 1, 1234, 3 * IG_PAGE, 1700000000000000000ull, PT_VMA_FILE, 0, 0, 0,
		  "/usr/lib/libdemo.so", 19 },
	};
	struct pt__capture c;
	struct pt__imgw *w;
	uint32_t seed = parent ? 2 : 1;
	int r;

	if ((r = pt__imgw_open(path, &o, &w, err, errlen)))
		return r;
	ig_capture(&c);
	if ((r = pt__imgw_layout(w, a, 3, ob, 2)))
		goto fail;
	if (!parent) {
		if ((r = data(w, PT_OWNER_AREA, 0, 0, seed, 3)) ||
		    (r = pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_ZERO, 0, 2, NULL)) ||
		    (r = pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_HOLE, 0, 2, NULL)) ||
		    (r = data(w, PT_OWNER_AREA, 0, 7, seed, 3)) ||
		    (r = pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_UNREADABLE, 1, 2, NULL)))
			goto fail;
	} else if ((r = pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_UNCHANGED, 0, 4, NULL)) ||
		   (r = data(w, PT_OWNER_AREA, 0, 4, seed, 2)) ||
		   (r = pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_UNCHANGED, 0, 6, NULL))) {
		goto fail;
	}
	if ((r = pt__imgw_run(w, PT_OWNER_AREA, 2, PT_PAGE_HOLE, 0, 1, NULL)) ||
	    (r = data(w, PT_OWNER_AREA, 2, 1, seed, 2)))
		goto fail;
	if (!parent) {
		if ((r = data(w, PT_OWNER_OBJECT, 0, 0, seed + 100, 5)) ||
		    (r = pt__imgw_run(w, PT_OWNER_OBJECT, 0, PT_PAGE_ZERO, 0, 2, NULL)))
			goto fail;
	} else if ((r = pt__imgw_run(w, PT_OWNER_OBJECT, 0, PT_PAGE_UNCHANGED, 0, 3, NULL)) ||
		   (r = data(w, PT_OWNER_OBJECT, 0, 3, seed + 100, 4))) {
		goto fail;
	}
	if ((r = pt__imgw_capture(w, &c)))
		goto fail;
	ig_capture_free(&c);
	return pt__imgw_finish(w, NULL, err, errlen);
fail:
	ig_capture_free(&c);
	pt__imgw_abort(w);
	return r;
}

int ig_example(const char *path, char *err, size_t errlen)
{
	struct pt__imgw_opts o = { .flags = PT_IMAGE_LIVE, .pid = 4242, .comm = "demo" };
	struct pt_image_area a = { 0x55550000, 0x55552000, 0, 3, PT_VMA_HEAP, 0,
				   PT_IMAGE_NO_OBJECT, "[heap]", 6 };
	unsigned char pg[IG_PAGE];
	struct pt__imgw *w;
	int r;

	memset(pg, 'A', sizeof(pg));
	if ((r = pt__imgw_open(path, &o, &w, err, errlen)))
		return r;
	if ((r = pt__imgw_layout(w, &a, 1, NULL, 0)) ||
	    (r = pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_DATA, 0, 1, pg)) ||
	    (r = pt__imgw_run(w, PT_OWNER_AREA, 0, PT_PAGE_HOLE, 0, 1, NULL))) {
		pt__imgw_abort(w);
		return r;
	}
	return pt__imgw_finish(w, NULL, err, errlen);
}
