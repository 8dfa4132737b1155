// SPDX-License-Identifier: MIT
/*
 * PROCESS, AUXV, THREADS and FILES sections of an image layer
 * (doc/image-format.md): validated when the layer is opened, decoded
 * into a struct pt__capture on demand (pt__image_capture).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


#include "image/reader.h"

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
		return pt__img_bad(img, err, errlen, E_INVAL, d->off + 8, "PROCESS length");
	if ((r = pt__img_sec_payload(img, d, &p, err, errlen)))
		return r;
	cl = img_get32(p + 28);
	if (cl > IMG_CMDLINE_MAX || IMG_PROCESS_FIXED + (uint64_t)cl != d->len ||
	    !img_zero(p + 21, 3) || !img_zero(p + 32, 32)) {
		free(p);
		return pt__img_bad(img, err, errlen, E_INVAL, d->off + IMG_SEC_HDR, "PROCESS record");
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
		return pt__img_bad(img, err, errlen, E_INVAL, d->off + 16, "AUXV of %u entries", d->count);
	if ((r = pt__img_sec_payload(img, d, &p, err, errlen)))
		return r;
	for (uint32_t i = 0; i < d->count; i++) {
		const unsigned char *e = p + (size_t)i * d->esize;
		bool last = i + 1 == d->count;

		if (last ? (img_get64(e) || img_get64(e + 8)) : !img_get64(e)) {
			free(p);
			return pt__img_bad(img, err, errlen, E_INVAL,
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
			return pt__img_bad(img, err, errlen, E_INVAL, at, "note beyond notes_len");
		nlen = img_get32(p + 4);
		dlen = img_get32(p + 8);
		if (nlen < 1 || nlen > 15 || dlen > IMG_NOTE_DESC_MAX || img_get32(p + 12))
			return pt__img_bad(img, err, errlen, E_INVAL, at, "note header");
		need = IMG_NOTE_HDR + img_align8(nlen) + img_align8(dlen);
		if (need > left)
			return pt__img_bad(img, err, errlen, E_INVAL, at, "note beyond notes_len");
		for (uint32_t i = 0; i < nlen; i++)
			if (p[IMG_NOTE_HDR + i] < 0x20 || p[IMG_NOTE_HDR + i] > 0x7e)
				return pt__img_bad(img, err, errlen, E_INVAL, at + IMG_NOTE_HDR,
					   "note name not printable ASCII");
		if (!img_zero(p + IMG_NOTE_HDR + nlen, img_align8(nlen) - nlen) ||
		    !img_zero(p + IMG_NOTE_HDR + img_align8(nlen) + dlen,
			      img_align8(dlen) - dlen))
			return pt__img_bad(img, err, errlen, E_INVAL, at, "non-zero note padding");
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
		return pt__img_bad(img, err, errlen, E_INVAL, at, "notes do not add up to notes_len");
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
		return pt__img_bad(img, err, errlen, E_INVAL, d->off + 16, "THREADS count %u", d->count);
	if ((r = pt__img_sec_payload(img, d, &p, err, errlen)))
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
			r = pt__img_bad(img, err, errlen, E_INVAL, at, "thread record beyond the section");
			goto out;
		}
		tids[i] = img_get32(q);
		nn = img_get32(q + 4);
		nl = img_get64(q + 32);
		if (!tids[i] || tids[i] > INT32_MAX || nn > IMG_NOTES_MAX || img_get32(q + 28) ||
		    img_get64(q + 40) || nl > left - IMG_THREAD_HDR ||
		    (i && tids[i] == (uint32_t)img->pid)) {
			r = pt__img_bad(img, err, errlen, E_INVAL, at, "thread %u header", i);
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
		r = pt__img_bad(img, err, errlen, E_INVAL, at, "thread records do not add up to the length");
		goto out;
	}
	qsort(tids, d->count, sizeof(*tids), u32_cmp);
	for (uint32_t i = 1; i < d->count; i++)
		if (tids[i] == tids[i - 1]) {
			r = pt__img_bad(img, err, errlen, E_INVAL, d->off, "tid %u twice", tids[i]);
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

	if ((r = pt__img_sec_payload(img, d, &p, err, errlen)))
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
			return pt__img_bad(img, err, errlen, E_INVAL,
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

int pt__img_parse_capture(struct pt_image *img, struct pt__capture *c, char *err, size_t errlen)
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

/* Free what pt__img_parse_capture() decoded (as pt__capture_free(), which lives in lib/process). */
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
		return pt__img_bad(img, err, errlen, -ENOENT, 0, "no capture sections (a LIVE layer)");
	out->pid = img->pid;
	memcpy(out->comm, img->comm, 16);
	r = pt__img_parse_capture(img, out, err, errlen);
	if (r)
		capture_clear(out);
	return r;
}

