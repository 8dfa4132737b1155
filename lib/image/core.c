// SPDX-License-Identifier: MIT
/*
 * ELF core files (core.h), laid out as the kernel's coredump does:
 *
 *   ELF header | program headers: PT_NOTE, one PT_LOAD per area |
 *   notes | padding to a page | the PT_LOADs' bytes, in area order |
 *   (more than 65534 headers: the one section header holding the count)
 *
 * The layout is computed first, so the file is written front to back
 * (a pipe works).  The structures are written field by field at their
 * x86_64 offsets, little-endian, never as host structs: the library
 * builds on other machines too (tests/test_aarch64_build.sh).
 *
 * Which areas get bytes (p_filesz = size) follows the kernel's default
 * coredump_filter (0x33): private areas holding data of their own (any
 * page DATA or ZERO: the kernel's "has an anon_vma"), whole, their file
 * pages read from the file; anonymous shared memory (SHMEM, MEMFD, SYSV,
 * deleted files); [vdso]; of an unmodified private mapping of an ELF
 * file at offset 0, its first page (the ELF headers, for the build ID).
 * Shared file mappings, never-touched areas, [vvar] and device areas
 * get p_filesz 0.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "core.h"

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif
#ifndef NT_SIGINFO
#define NT_SIGINFO 0x53494749
#endif
#ifndef NT_FILE
#define NT_FILE 0x46494c45
#endif
#ifndef PN_XNUM
#define PN_XNUM 0xffff
#endif

#define CHUNK_PAGES 1024u	/* 4 MiB of page data at a time */
#define OUTBUF (64u * 1024)
#define PRSTATUS_HEAD 112	/* elf_prstatus up to pr_reg */
#define PRPSINFO_SIZE 136
#define PRARGSZ 80

struct out {
	int fd;
	uint64_t off;		/* bytes written so far */
	size_t n;
	unsigned char buf[OUTBUF];
};

static int write_all(int fd, const void *p, size_t n)
{
	const unsigned char *c = p;

	while (n) {
		ssize_t r = write(fd, c, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

static int out_flush(struct out *o)
{
	int err = write_all(o->fd, o->buf, o->n);

	o->n = 0;
	return err;
}

static int out_put(struct out *o, const void *p, size_t n)
{
	int err;

	if (n >= OUTBUF) {
		if ((err = out_flush(o)) || (err = write_all(o->fd, p, n)))
			return err;
		o->off += n;
		return 0;
	}
	if (o->n + n > OUTBUF && (err = out_flush(o)))
		return err;
	if (p)
		memcpy(o->buf + o->n, p, n);
	else
		memset(o->buf + o->n, 0, n);
	o->n += n;
	o->off += n;
	return 0;
}

static int out_zeros(struct out *o, uint64_t n)
{
	while (n) {
		size_t k = n < OUTBUF / 2 ? (size_t)n : OUTBUF / 2;
		int err = out_put(o, NULL, k);

		if (err)
			return err;
		n -= k;
	}
	return 0;
}

static void put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static size_t pad4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

static size_t note_size(const char *name, size_t desc)
{
	return 12 + pad4(strlen(name) + 1) + pad4(desc);
}

/* One note, 4-byte aligned as in the kernel's cores. */
static int out_note(struct out *o, const char *name, uint32_t type, const void *desc, size_t len)
{
	unsigned char h[12];
	size_t nl = strlen(name) + 1;
	int err;

	put32(h, (uint32_t)nl);
	put32(h + 4, (uint32_t)len);
	put32(h + 8, type);
	if ((err = out_put(o, h, 12)) || (err = out_put(o, name, nl)) ||
	    (err = out_put(o, NULL, pad4(nl) - nl)) || (err = out_put(o, desc, len)))
		return err;
	return out_put(o, NULL, pad4(len) - len);
}

static const struct pt__note *find_note(const struct pt__thread *t, uint32_t type)
{
	for (size_t i = 0; i < t->nnotes; i++)
		if (t->notes[i].type == type)
			return &t->notes[i];
	return NULL;
}

static size_t prstatus_size(const struct pt__thread *t)
{
	const struct pt__note *r = find_note(t, NT_PRSTATUS);

	/* head, pr_reg, int pr_fpvalid, padded to 8 */
	return (PRSTATUS_HEAD + (r ? r->len : 0) + 4 + 7) & ~(size_t)7;
}

static int out_prstatus(struct out *o, const struct pt__capture *c, const struct pt__thread *t)
{
	const struct pt__note *r = find_note(t, NT_PRSTATUS);
	size_t len = prstatus_size(t);
	unsigned char *p = calloc(1, len);
	int err;

	if (!p)
		return -ENOMEM;
	put32(p + 0, t->cursig);		/* pr_info.si_signo */
	put16(p + 12, (uint16_t)t->cursig);	/* pr_cursig */
	put64(p + 16, t->sigpending);
	put64(p + 24, t->sigblocked);
	put32(p + 32, (uint32_t)t->tid);
	put32(p + 36, (uint32_t)c->ppid);
	put32(p + 40, (uint32_t)c->pgrp);
	put32(p + 44, (uint32_t)c->sid);
	/* times (48..111) left 0: not captured */
	if (r)
		memcpy(p + PRSTATUS_HEAD, r->desc, r->len);
	put32(p + PRSTATUS_HEAD + (r ? r->len : 0), find_note(t, NT_PRFPREG) != NULL);
	err = out_note(o, "CORE", NT_PRSTATUS, p, len);
	free(p);
	return err;
}

static int out_prpsinfo(struct out *o, const struct pt__capture *c)
{
	static const char states[] = "RSDTZW";
	unsigned char p[PRPSINFO_SIZE] = { 0 };
	const char *s = strchr(states, c->state == 't' ? 'T' : c->state);
	size_t n;

	p[0] = (unsigned char)(s && c->state ? s - states : 0);	/* pr_state */
	p[1] = (unsigned char)(c->state ? c->state : '.');	/* pr_sname */
	p[2] = c->state == 'Z';
	p[3] = (unsigned char)(int8_t)c->nice;
	put32(p + 16, c->uid);
	put32(p + 20, c->gid);
	put32(p + 24, (uint32_t)c->pid);
	put32(p + 28, (uint32_t)c->ppid);
	put32(p + 32, (uint32_t)c->pgrp);
	put32(p + 36, (uint32_t)c->sid);
	memcpy(p + 40, c->comm, strnlen(c->comm, 15));
	n = c->cmdline_len < PRARGSZ - 1 ? c->cmdline_len : PRARGSZ - 1;
	for (size_t i = 0; i < n; i++)
		p[56 + i] = c->cmdline[i] ? (unsigned char)c->cmdline[i] : ' ';
	/* the last argument's NUL made a trailing space */
	while (n && p[56 + n - 1] == ' ')
		p[56 + --n] = 0;
	return out_note(o, "CORE", NT_PRPSINFO, p, sizeof(p));
}

/* Areas NT_FILE lists: those mapping a file (the kernel's vm_file). */
static bool has_file(const struct pt_image_area *a)
{
	return a->path_len && a->path[0] == '/';
}

static size_t file_note_len(const struct pt__core_src *src, size_t *count)
{
	size_t n = 0, names = 0;

	for (size_t i = 0; i < src->nareas; i++) {
		if (!has_file(&src->areas[i]))
			continue;
		n++;
		names += src->areas[i].path_len + 1;
	}
	*count = n;
	return 16 + n * 24 + names;
}

/* Streamed, not built: with many areas and long paths it could be large. */
static int out_file_note(struct out *o, const struct pt__core_src *src)
{
	size_t count, len = file_note_len(src, &count);
	unsigned char h[12], e[24];
	int err;

	put32(h, 5);			/* "CORE" + NUL */
	put32(h + 4, (uint32_t)len);
	put32(h + 8, NT_FILE);
	put64(e, count);
	put64(e + 8, PT_PAGE_SIZE);
	if ((err = out_put(o, h, 12)) || (err = out_put(o, "CORE\0\0\0", 8)) ||
	    (err = out_put(o, e, 16)))
		return err;
	for (size_t i = 0; i < src->nareas; i++) {
		const struct pt_image_area *a = &src->areas[i];

		if (!has_file(a))
			continue;
		put64(e, a->start);
		put64(e + 8, a->end);
		put64(e + 16, a->offset / PT_PAGE_SIZE);
		if ((err = out_put(o, e, 24)))
			return err;
	}
	for (size_t i = 0; i < src->nareas; i++) {
		const struct pt_image_area *a = &src->areas[i];

		if (has_file(a) && ((err = out_put(o, a->path, a->path_len)) ||
				    (err = out_put(o, NULL, 1))))
			return err;
	}
	return out_put(o, NULL, pad4(len) - len);
}

/* Kernel order: PRSTATUS, (first thread: PRPSINFO,) SIGINFO, (AUXV, FILE,) the other sets. */
static int out_thread(struct out *o, const struct pt__core_src *src, const struct pt__thread *t,
		      bool first, size_t *bytes)
{
	const struct pt__capture *c = src->cap;
	const struct pt__note *si = find_note(t, NT_SIGINFO);
	size_t count;
	int err = 0;

	if (bytes) {
		size_t n = note_size("CORE", prstatus_size(t));

		if (first)
			n += note_size("CORE", PRPSINFO_SIZE) +
			     note_size("CORE", c->nauxv * 16) +
			     note_size("CORE", file_note_len(src, &count));
		for (size_t i = 0; i < t->nnotes; i++)
			if (t->notes[i].type != NT_PRSTATUS)
				n += note_size(t->notes[i].name, t->notes[i].len);
		*bytes = n;
		return 0;
	}
	if ((err = out_prstatus(o, c, t)) || (first && (err = out_prpsinfo(o, c))) ||
	    (si && (err = out_note(o, si->name, si->type, si->desc, si->len))))
		return err;
	if (first) {
		unsigned char *a = malloc(c->nauxv * 16 + 1);

		if (!a)
			return -ENOMEM;
		for (size_t i = 0; i < c->nauxv; i++) {
			put64(a + i * 16, c->auxv[i][0]);
			put64(a + i * 16 + 8, c->auxv[i][1]);
		}
		err = out_note(o, "CORE", NT_AUXV, a, c->nauxv * 16);
		free(a);
		if (err || (err = out_file_note(o, src)))
			return err;
	}
	for (size_t i = 0; i < t->nnotes && !err; i++) {
		const struct pt__note *n = &t->notes[i];

		if (n->type != NT_PRSTATUS && n->type != NT_SIGINFO)
			err = out_note(o, n->name, n->type, n->desc, n->len);
	}
	return err;
}

static bool is_private(const struct pt_image_area *a)
{
	return !(a->prot & PT_MAP_SHARED);
}

/* Shared memory the kernel dumps by default: anonymous (no name in any filesystem). */
static bool shared_dumped(const struct pt_image_area *a)
{
	static const char del[] = " (deleted)";
	size_t dl = sizeof(del) - 1;

	if (a->kind == PT_VMA_SHMEM || a->kind == PT_VMA_MEMFD || a->kind == PT_VMA_SYSV)
		return true;
	return a->kind != PT_VMA_HUGETLB && a->kind != PT_VMA_SPECIAL && a->path_len > dl &&
	       !memcmp(a->path + a->path_len - dl, del, dl);
}

/*
 * Does private area @a hold data of its own?  Reads its kinds until the
 * first DATA or ZERO page (an area touched only at its end is read
 * through once more later: the price of a sequential writer).
 */
static int has_data(const struct pt__core_src *src, const struct pt_image_area *a, void *buf,
		    uint8_t *kinds, bool *yes, char *err, size_t errlen)
{
	uint64_t npages = (a->end - a->start) / PT_PAGE_SIZE;

	*yes = false;
	for (uint64_t p = 0; p < npages && !*yes;) {
		size_t n = npages - p < CHUNK_PAGES ? (size_t)(npages - p) : CHUNK_PAGES;
		int r = src->read(src->ctx, a->start + p * PT_PAGE_SIZE, n, buf, kinds);

		if (r < 0) {
			snprintf(err, errlen, "core: reading 0x%llx: %s",
				 (unsigned long long)(a->start + p * PT_PAGE_SIZE), strerror(-r));
			return r;
		}
		for (size_t i = 0; i < n; i++)
			if (kinds[i] == PT_PAGE_DATA || kinds[i] == PT_PAGE_ZERO)
				*yes = true;
		p += n;
	}
	return 0;
}

/* The area's file, if it still is the object the area mapped; else -1. */
static int open_same_file(const struct pt__core_src *src, const struct pt_image_area *a)
{
	const struct pt_image_object *ob;
	struct stat sb;
	char *path;
	int fd;

	if (!has_file(a) || a->object == PT_IMAGE_NO_OBJECT || !src->objects ||
	    a->object >= src->nobjects)
		return -1;
	ob = &src->objects[a->object];
	path = strndup(a->path, a->path_len);
	if (!path)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	free(path);
	if (fd < 0)
		return -1;
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || major(sb.st_dev) != ob->dev_major ||
	    minor(sb.st_dev) != ob->dev_minor || sb.st_ino != ob->inode ||
	    (ob->size && (uint64_t)sb.st_size != ob->size) ||
	    (ob->mtime_ns && (uint64_t)sb.st_mtim.tv_sec * 1000000000ULL +
				     (uint64_t)sb.st_mtim.tv_nsec != ob->mtime_ns)) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The kernel also dumps the first page of an unmodified private file
 * mapping at offset 0 when it is an ELF file (fs/coredump.c, "ELF
 * headers" in coredump_filter), so tools find the build ID in the core.
 * Only when the file still is the area's object.
 */
static uint64_t elf_header_page(const struct pt__core_src *src, const struct pt_image_area *a)
{
	unsigned char magic[SELFMAG];
	int fd;
	bool elf;

	if (a->offset || !(a->prot & PT_PROT_READ) || !is_private(a))
		return 0;
	fd = open_same_file(src, a);
	if (fd < 0)
		return 0;
	elf = pread(fd, magic, SELFMAG, 0) == SELFMAG && !memcmp(magic, ELFMAG, SELFMAG);
	close(fd);
	return elf ? PT_PAGE_SIZE : 0;
}

/* Stream area @a's bytes: DATA as read, HOLE of a file mapping from the file, the rest zeros. */
static int out_area(struct out *o, const struct pt__core_src *src, const struct pt_image_area *a,
		    uint64_t len, unsigned char *buf, uint8_t *kinds, char *err, size_t errlen)
{
	uint64_t npages = len / PT_PAGE_SIZE;
	int fd = has_file(a) && is_private(a) ? open_same_file(src, a) : -1;
	int r = 0;

	for (uint64_t p = 0; p < npages && !r;) {
		size_t n = npages - p < CHUNK_PAGES ? (size_t)(npages - p) : CHUNK_PAGES;
		uint64_t addr = a->start + p * PT_PAGE_SIZE;

		r = src->read(src->ctx, addr, n, buf, kinds);
		if (r < 0) {
			snprintf(err, errlen, "core: reading 0x%llx: %s", (unsigned long long)addr,
				 strerror(-r));
			break;
		}
		r = 0;
		for (size_t i = 0; i < n; i++) {
			unsigned char *pg = buf + i * PT_PAGE_SIZE;
			ssize_t got = 0;

			if (kinds[i] == PT_PAGE_DATA)
				continue;
			if (kinds[i] == PT_PAGE_HOLE && fd >= 0) {
				off_t off = (off_t)(a->offset + (p + i) * PT_PAGE_SIZE);

				got = pread(fd, pg, PT_PAGE_SIZE, off);
				if (got < 0)
					got = 0;	/* unreadable: zeros, as past EOF */
			}
			memset(pg + got, 0, PT_PAGE_SIZE - (size_t)got);
		}
		if ((r = out_put(o, buf, n * PT_PAGE_SIZE)))
			snprintf(err, errlen, "core: writing: %s", strerror(-r));
		p += n;
	}
	if (fd >= 0)
		close(fd);
	return r;
}

static void phdr(unsigned char *p, uint32_t type, uint32_t flags, uint64_t off, uint64_t vaddr,
		 uint64_t filesz, uint64_t memsz, uint64_t align)
{
	memset(p, 0, 56);
	put32(p, type);
	put32(p + 4, flags);
	put64(p + 8, off);
	put64(p + 16, vaddr);
	put64(p + 24, 0);	/* p_paddr */
	put64(p + 32, filesz);
	put64(p + 40, memsz);
	put64(p + 48, align);
}

static int write_core(struct out *o, const struct pt__core_src *src, const uint64_t *dump,
		      unsigned char *buf, uint8_t *kinds, char *err, size_t errlen)
{
	const struct pt__capture *c = src->cap;
	uint64_t phnum = 1 + (uint64_t)src->nareas, notes = 0, data_off, off, data_len = 0;
	unsigned char h[64] = { 0 }, ph[56];
	int r;

	for (size_t i = 0; i < c->nthreads; i++) {
		size_t n;

		out_thread(o, src, &c->threads[i], i == 0, &n);
		notes += n;
	}
	data_off = (64 + phnum * 56 + notes + PT_PAGE_SIZE - 1) & ~(PT_PAGE_SIZE - 1);
	for (size_t i = 0; i < src->nareas; i++)
		data_len += dump[i];

	memcpy(h, ELFMAG, SELFMAG);
	h[EI_CLASS] = ELFCLASS64;
	h[EI_DATA] = ELFDATA2LSB;
	h[EI_VERSION] = EV_CURRENT;
	h[EI_OSABI] = ELFOSABI_NONE;
	put16(h + 16, ET_CORE);
	put16(h + 18, src->machine);
	put32(h + 20, EV_CURRENT);
	put64(h + 32, 64);			/* e_phoff */
	put16(h + 52, 64);			/* e_ehsize */
	put16(h + 54, 56);			/* e_phentsize */
	if (phnum >= PN_XNUM) {
		/* the count goes to section header 0's sh_info, after the data */
		put64(h + 40, data_off + data_len);	/* e_shoff */
		put16(h + 56, PN_XNUM);
		put16(h + 58, 64);		/* e_shentsize */
		put16(h + 60, 1);		/* e_shnum */
	} else {
		put16(h + 56, (uint16_t)phnum);
	}
	if ((r = out_put(o, h, sizeof(h))))
		goto werr;
	phdr(ph, PT_NOTE, 0, 64 + phnum * 56, 0, notes, 0, 4);
	if ((r = out_put(o, ph, sizeof(ph))))
		goto werr;
	off = data_off;
	for (size_t i = 0; i < src->nareas; i++) {
		const struct pt_image_area *a = &src->areas[i];
		uint64_t size = a->end - a->start;
		uint32_t fl = (a->prot & PT_PROT_READ ? PF_R : 0) |
			      (a->prot & PT_PROT_WRITE ? PF_W : 0) |
			      (a->prot & PT_PROT_EXEC ? PF_X : 0);

		phdr(ph, PT_LOAD, fl, off, a->start, dump[i], size, PT_PAGE_SIZE);
		if ((r = out_put(o, ph, sizeof(ph))))
			goto werr;
		off += dump[i];
	}
	for (size_t i = 0; i < c->nthreads; i++)
		if ((r = out_thread(o, src, &c->threads[i], i == 0, NULL)))
			goto werr;
	if ((r = out_zeros(o, data_off - o->off)))
		goto werr;
	for (size_t i = 0; i < src->nareas; i++)
		if (dump[i] && (r = out_area(o, src, &src->areas[i], dump[i], buf, kinds, err, errlen)))
			return r;
	if (phnum >= PN_XNUM) {
		unsigned char sh[64] = { 0 };

		put32(sh + 44, (uint32_t)phnum);	/* sh_info */
		if ((r = out_put(o, sh, sizeof(sh))))
			goto werr;
	}
	if ((r = out_flush(o)))
		goto werr;
	return 0;
werr:
	snprintf(err, errlen, "core: writing: %s", strerror(-r));
	return r;
}

int pt__core_write(int fd, const struct pt__core_src *src, char *err, size_t errlen)
{
	unsigned char *buf = NULL;
	uint8_t *kinds = NULL;
	struct out *o = NULL;
	uint64_t *dump = NULL;	/* bytes of each area in the core: its size, one page or 0 */
	char dummy[1];
	int r = 0;

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = 0;
	if (!src || !src->cap || !src->cap->nthreads || !src->read ||
	    (src->nareas && !src->areas) || (uint64_t)src->nareas + 1 > UINT32_MAX) {
		snprintf(err, errlen, "core: no process to write");
		return -EINVAL;
	}
	for (size_t i = 0; i < src->nareas; i++) {
		const struct pt_image_area *a = &src->areas[i];

		if (a->start >= a->end || (a->start | a->end) % PT_PAGE_SIZE ||
		    (i && a->start < src->areas[i - 1].end)) {
			snprintf(err, errlen, "core: area %zu: bad range 0x%llx-0x%llx", i,
				 (unsigned long long)a->start, (unsigned long long)a->end);
			return -EINVAL;
		}
	}
	{
		size_t count;

		if (file_note_len(src, &count) > UINT32_MAX - 8) {
			snprintf(err, errlen, "core: %zu file mappings: NT_FILE over 4 GiB", count);
			return -EFBIG;
		}
	}
	buf = malloc(CHUNK_PAGES * PT_PAGE_SIZE);
	kinds = malloc(CHUNK_PAGES);
	o = malloc(sizeof(*o));
	dump = calloc(src->nareas + 1, sizeof(*dump));
	if (!buf || !kinds || !o || !dump) {
		snprintf(err, errlen, "core: out of memory");
		r = -ENOMEM;
		goto out;
	}
	o->fd = fd;
	o->off = 0;
	o->n = 0;
	for (size_t i = 0; i < src->nareas && !r; i++) {
		const struct pt_image_area *a = &src->areas[i];
		bool yes = false;

		if (!is_private(a))
			yes = shared_dumped(a);
		else
			r = has_data(src, a, buf, kinds, &yes, err, errlen);
		if (yes)
			dump[i] = a->end - a->start;
		else if (has_file(a))
			dump[i] = elf_header_page(src, a);
	}
	if (!r)
		r = write_core(o, src, dump, buf, kinds, err, errlen);
out:
	free(buf);
	free(kinds);
	free(o);
	free(dump);
	return r;
}
