// SPDX-License-Identifier: MIT
/*
 * ELF cores (lib/image/core.c) of a frozen process (lib/process/freeze.c,
 * capture.c), judged by gdb and by gcore:
 *
 * - tests/coretarget (4 threads, each blocked in a function of its own,
 *   a global and a heap variable) is frozen, captured and written out
 *   with memory read through /proc/PID/mem (pagemap says which pages
 *   hold data); gdb must list every thread with its function in its
 *   backtrace and print both variables;
 * - our own ELF reader checks the layout: the PROT_NONE area's PT_LOAD
 *   has no flags and no bytes, a private file mapping with one page
 *   written is dumped whole with its other page read from the file, an
 *   untouched one is not dumped, NT_FILE lists both, the notes come in
 *   the kernel's order; the same core written to a pipe is the same
 *   bytes;
 * - once thawed (every thread still blocked, nothing written), gcore
 *   takes its own core: the segments both dumped must be equal byte for
 *   byte, except [vdso]/[vvar] (kernel pages, not the process's).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "tap.h"
#include "process/freeze.h"
#include "process/capture.h"
#include "image/core.h"

#define NTHR 4
#define PLAN 25

static const char *const funcs[NTHR] = { "main_wait", "sleep_in_a", "sleep_in_b", "sleep_in_c" };

struct target {
	pid_t pid;
	pid_t tids[NTHR];
	uint64_t none, rw, ro;
	uint64_t rseq[NTHR];	/* each thread's struct rseq, 0 if unknown */
	uint32_t rseq_len[NTHR];
};

#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#endif
struct rseq_conf {
	uint64_t rseq_abi_pointer;
	uint32_t rseq_abi_size, signature, flags, pad;
};

/*
 * Where each thread's rseq area is (glibc registers one per thread, at
 * the end of its struct pthread): the kernel rewrites its cpu_id fields
 * whenever the thread returns to user space on another CPU, so two
 * cores of a blocked process may legitimately differ there.
 */
static void read_rseq(struct target *t)
{
	for (int i = 0; i < NTHR; i++) {
		struct rseq_conf c = { 0 };

		if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, t->tids[i], sizeof(c), &c) ==
		    (long)sizeof(c)) {
			t->rseq[i] = c.rseq_abi_pointer;
			t->rseq_len[i] = c.rseq_abi_size;
		}
	}
}

static char dir[64], target_path[4096], data_file[128];

/* ---- the child ---- */

static int start_target(struct target *t)
{
	int p[2];
	char line[256];
	ssize_t n;
	size_t got = 0;

	if (pipe2(p, O_CLOEXEC))
		return -1;
	t->pid = fork();
	if (t->pid < 0)
		return -1;
	if (t->pid == 0) {
		/* never outlive the test, whatever becomes of it */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(p[1], 1);
		execl(target_path, target_path, data_file, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	while (got < sizeof(line) - 1 && (n = read(p[0], line + got, sizeof(line) - 1 - got)) > 0) {
		got += (size_t)n;
		if (memchr(line, '\n', got))
			break;
	}
	close(p[0]);
	line[got] = 0;
	if (sscanf(line, "ready %d %d %d %d %lx %lx %lx", &t->tids[0], &t->tids[1], &t->tids[2],
		   &t->tids[3], &t->none, &t->rw, &t->ro) != 7) {
		tap_diag("target said: '%s'", line);
		return -1;
	}
	return 0;
}

/*
 * Wait until every thread sits in the pause() of its blocking function
 * (the line is printed once the threads passed the barrier, not once
 * they reached pause()).  Bounded by count; false if never.
 */
static bool target_quiet(const struct target *t)
{
#ifdef SYS_pause
	const long nr = SYS_pause;
#else
	const long nr = SYS_rt_sigsuspend;
#endif
	for (int tries = 0; tries < 2000; tries++) {
		int quiet = 0;

		for (int i = 0; i < NTHR; i++) {
			char path[96], buf[256] = "";
			FILE *f;

			snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", t->pid, t->tids[i]);
			f = fopen(path, "re");
			if (!f)
				return false;
			if (fgets(buf, sizeof(buf), f) && atol(buf) == nr)
				quiet++;
			fclose(f);
		}
		if (quiet == NTHR)
			return true;
		usleep(5000);
	}
	return false;
}

static void stop_target(struct target *t)
{
	if (t->pid > 0) {
		kill(t->pid, SIGKILL);
		waitpid(t->pid, NULL, 0);
		t->pid = 0;
	}
}

/* ---- memory source: /proc/PID/mem, pagemap for the kinds ---- */

struct memsrc {
	int mem, pagemap;
	const struct pt_image_area *areas;
	size_t nareas;
};

static const struct pt_image_area *area_of(const struct memsrc *m, uint64_t addr)
{
	for (size_t i = 0; i < m->nareas; i++)
		if (addr >= m->areas[i].start && addr < m->areas[i].end)
			return &m->areas[i];
	return NULL;
}

static int mem_read(void *ctx, uint64_t addr, size_t npages, void *buf, uint8_t *kinds)
{
	struct memsrc *m = ctx;
	const struct pt_image_area *a = area_of(m, addr);
	bool file = a && a->path_len && a->path[0] == '/' && !(a->prot & PT_MAP_SHARED);
	uint64_t *pm = calloc(npages, 8);

	if (!pm || !a)
		return free(pm), -EINVAL;
	if (pread(m->pagemap, pm, npages * 8, (off_t)(addr / FX_PAGE * 8)) != (ssize_t)(npages * 8)) {
		/* not in the page tables ([vsyscall]): nothing to read */
		memset(kinds, PT_PAGE_UNREADABLE, npages);
		free(pm);
		return 0;
	}
	for (size_t i = 0; i < npages;) {
		bool data = pm[i] & (PT_PM_PRESENT | PT_PM_SWAP);
		size_t j = i;

		/* a private file mapping's page that is still the file's: a hole */
		if (file && (pm[i] & PT_PM_FILE))
			data = false;
		if (!data && !(a->prot & PT_MAP_SHARED)) {
			kinds[i++] = PT_PAGE_HOLE;
			continue;
		}
		/*
		 * Only pages with data are read: a read through /proc/PID/mem
		 * of an empty page would fault it in (the zero page), and
		 * change the target under test.
		 */
		while (j < npages && (pm[j] & (PT_PM_PRESENT | PT_PM_SWAP)) &&
		       !(file && (pm[j] & PT_PM_FILE)))
			j++;
		if (j == i)
			j = i + 1;	/* shared, not mapped here: read it anyway */
		if (pread(m->mem, (char *)buf + i * FX_PAGE, (j - i) * FX_PAGE,
			  (off_t)(addr + i * FX_PAGE)) == (ssize_t)((j - i) * FX_PAGE)) {
			memset(kinds + i, PT_PAGE_DATA, j - i);
		} else {
			for (size_t k = i; k < j; k++) {
				char *pg = (char *)buf + k * FX_PAGE;

				kinds[k] = pread(m->mem, pg, FX_PAGE, (off_t)(addr + k * FX_PAGE)) ==
							   FX_PAGE ? PT_PAGE_DATA : PT_PAGE_UNREADABLE;
			}
		}
		i = j;
	}
	free(pm);
	return 0;
}

/* Areas and objects (identity of mapped files) from pt_vmas_read(). */
struct layout {
	struct pt_vma *vmas;
	size_t n;
	struct pt_image_area *areas;
	struct pt_image_object *objs;
};

static int read_layout(pid_t pid, struct layout *l)
{
	struct pt_target *t = pt_target_create(pid, NULL);
	int r;

	memset(l, 0, sizeof(*l));
	if (!t)
		return -errno;
	r = pt_vmas_read(t, &l->vmas, &l->n);
	pt_target_free(t);
	if (r < 0)
		return r;
	l->areas = calloc(l->n, sizeof(*l->areas));
	l->objs = calloc(l->n, sizeof(*l->objs));
	if (!l->areas || !l->objs)
		return -ENOMEM;
	for (size_t i = 0; i < l->n; i++) {
		const struct pt_vma *v = &l->vmas[i];
		struct pt_image_area *a = &l->areas[i];

		a->start = v->start;
		a->end = v->end;
		a->offset = v->offset;
		a->prot = v->prot;
		a->kind = v->kind;
		a->path = v->path;
		a->path_len = strlen(v->path);
		a->object = PT_IMAGE_NO_OBJECT;
		if (v->inode) {
			/* one object per area is enough here (identity only) */
			l->objs[i].dev_major = v->dev_major;
			l->objs[i].dev_minor = v->dev_minor;
			l->objs[i].inode = v->inode;
			l->objs[i].kind = v->kind;
			a->object = (uint32_t)i;
		}
	}
	return 0;
}

static void free_layout(struct layout *l)
{
	pt_vmas_free(l->vmas);
	free(l->areas);
	free(l->objs);
	memset(l, 0, sizeof(*l));
}

/* ---- a small ELF core reader ---- */

struct elf {
	unsigned char *b;
	size_t len;
	Elf64_Ehdr *eh;
	Elf64_Phdr *ph;
	size_t phnum;
};

static int elf_load(const char *path, struct elf *e)
{
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	memset(e, 0, sizeof(*e));
	if (fd < 0 || fstat(fd, &sb))
		return -1;
	e->len = (size_t)sb.st_size;
	e->b = malloc(e->len + 1);
	if (!e->b || pread(fd, e->b, e->len, 0) != (ssize_t)e->len || e->len < sizeof(Elf64_Ehdr)) {
		close(fd);
		return -1;
	}
	close(fd);
	e->eh = (Elf64_Ehdr *)e->b;
	if (memcmp(e->eh->e_ident, ELFMAG, SELFMAG) || e->eh->e_type != ET_CORE ||
	    e->eh->e_phoff + (uint64_t)e->eh->e_phnum * sizeof(Elf64_Phdr) > e->len)
		return -1;
	e->ph = (Elf64_Phdr *)(e->b + e->eh->e_phoff);
	e->phnum = e->eh->e_phnum;
	return 0;
}

static const Elf64_Phdr *elf_load_at(const struct elf *e, uint64_t vaddr)
{
	for (size_t i = 0; i < e->phnum; i++)
		if (e->ph[i].p_type == PT_LOAD && e->ph[i].p_vaddr == vaddr)
			return &e->ph[i];
	return NULL;
}

struct note {
	uint32_t type;
	const char *name;
	const unsigned char *desc;
	uint32_t len;
};

/* The notes of the PT_NOTE segment, in order (at most @max). */
static size_t elf_notes(const struct elf *e, struct note *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < e->phnum; i++) {
		const Elf64_Phdr *p = &e->ph[i];
		size_t off, end;

		if (p->p_type != PT_NOTE || p->p_offset + p->p_filesz > e->len)
			continue;
		off = p->p_offset;
		end = off + p->p_filesz;
		while (off + 12 <= end && n < max) {
			const uint32_t *h = (const uint32_t *)(e->b + off);

			out[n].type = h[2];
			out[n].name = (const char *)(e->b + off + 12);
			out[n].desc = e->b + off + 12 + ((h[0] + 3) & ~3u);
			out[n].len = h[1];
			off += 12 + ((h[0] + 3) & ~3u) + ((h[1] + 3) & ~3u);
			n++;
		}
	}
	return n;
}

/* ---- running gdb ---- */

static char *run_capture(const char *cmd)
{
	FILE *f = popen(cmd, "r");
	size_t cap = 1 << 16, n = 0, r;
	char *out = malloc(cap + 1);

	if (!f || !out) {
		if (f)
			pclose(f);
		free(out);
		return NULL;
	}
	while ((r = fread(out + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			char *o = realloc(out, cap * 2 + 1);

			if (!o)
				break;
			out = o;
			cap *= 2;
		}
	}
	out[n] = 0;
	pclose(f);
	return out;
}

static bool have_prog(const char *name)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

/* The part of "thread apply all bt" for thread @tid: from its header to the next. */
static bool thread_bt_has(const char *out, pid_t tid, const char *fn)
{
	char key[64];
	const char *s, *e;

	snprintf(key, sizeof(key), "(LWP %d)", (int)tid);
	s = strstr(out, key);
	/* "info threads" lists it first; the backtrace header comes after "Thread N (" */
	while (s) {
		const char *line = s;

		while (line > out && line[-1] != '\n')
			line--;
		if (!strncmp(line, "Thread ", 7))
			break;
		s = strstr(s + 1, key);
	}
	if (!s)
		return false;
	e = strstr(s, "\nThread ");
	if (!e)
		e = s + strlen(s);
	for (const char *p = strstr(s, fn); p; p = strstr(p + 1, fn))
		if (p < e)
			return true;
	return false;
}

/* ---- the tests ---- */

static int failing_read(void *ctx, uint64_t addr, size_t npages, void *buf, uint8_t *kinds)
{
	(void)ctx, (void)addr, (void)npages, (void)buf, (void)kinds;
	return -EIO;
}

static int hole_read(void *ctx, uint64_t addr, size_t npages, void *buf, uint8_t *kinds)
{
	(void)ctx, (void)addr, (void)buf;
	memset(kinds, PT_PAGE_HOLE, npages);
	return 0;
}

/*
 * More than 65,534 program headers: e_phnum PN_XNUM, the real count in
 * section header 0's sh_info.  Checked by our reader and by readelf.
 */
static void check_xnum(const struct pt__capture *cap, const char *path)
{
	enum { NA = 70000 };
	struct pt_image_area *areas = calloc(NA, sizeof(*areas));
	struct pt__core_src src = { .areas = areas, .nareas = NA, .cap = cap,
				    .machine = EM_X86_64, .read = hole_read };
	char err[256] = "", cmd[512], *out;
	struct elf e = { 0 };
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), r = -ENOMEM;
	bool ok = false;

	for (size_t i = 0; areas && i < NA; i++) {
		areas[i].start = 0x100000000ULL + i * 2 * FX_PAGE;
		areas[i].end = areas[i].start + FX_PAGE;
		areas[i].prot = PT_PROT_READ;
		areas[i].object = PT_IMAGE_NO_OBJECT;
		areas[i].path = "";
	}
	if (areas && fd >= 0)
		r = pt__core_write(fd, &src, err, sizeof(err));
	if (fd >= 0)
		close(fd);
	if (!r && !elf_load(path, &e) && e.eh->e_phnum == PN_XNUM && e.eh->e_shnum == 1 &&
	    e.eh->e_shoff + sizeof(Elf64_Shdr) <= e.len) {
		const Elf64_Shdr *sh = (const Elf64_Shdr *)(e.b + e.eh->e_shoff);
		const Elf64_Phdr *ph = (const Elf64_Phdr *)(e.b + e.eh->e_phoff);

		ok = sh->sh_info == NA + 1 && ph[NA].p_type == PT_LOAD &&
		     ph[NA].p_vaddr == areas[NA - 1].start && ph[NA].p_filesz == 0;
	}
	tap_ok(ok, "%d areas: e_phnum PN_XNUM, section 0's sh_info %d, last PT_LOAD in place (%s)",
	       NA, NA + 1, r ? err : "written");
	if (!have_prog("readelf")) {
		tap_skip("readelf not installed", "readelf reads the PN_XNUM core");
	} else {
		snprintf(cmd, sizeof(cmd), "readelf -lW '%s' 2>&1 | grep -c ' LOAD '", path);
		out = run_capture(cmd);
		if (out)
			out[strcspn(out, "\n")] = 0;
		tap_ok(out && atol(out) == NA, "readelf -l lists %s PT_LOADs", out ? out : "no");
		free(out);
	}
	free(e.b);
	free(areas);
	unlink(path);
}

/* Errors: overlapping areas are refused before anything is written; a read error stops the core. */
static void check_errors(const struct pt__capture *cap)
{
	struct pt_image_area areas[2] = {
		{ .start = 0x10000, .end = 0x20000, .prot = PT_PROT_READ | PT_PROT_WRITE,
		  .object = PT_IMAGE_NO_OBJECT, .path = "" },
		{ .start = 0x18000, .end = 0x30000, .prot = PT_PROT_READ,
		  .object = PT_IMAGE_NO_OBJECT, .path = "" },
	};
	struct pt__core_src src = { .areas = areas, .nareas = 2, .cap = cap,
				    .machine = EM_X86_64, .read = failing_read };
	char err[256] = "";
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC), r;

	r = pt__core_write(fd, &src, err, sizeof(err));
	tap_ok(r == -EINVAL && strstr(err, "area 1"), "overlapping areas: -EINVAL, '%s'", err);
	src.nareas = 1;
	err[0] = 0;
	r = pt__core_write(fd, &src, err, sizeof(err));
	tap_ok(r == -EIO && strstr(err, "0x10000"), "a failing read stops the core: %d, '%s'", r, err);
	close(fd);
}

static int write_core(const struct target *t, const struct pt__capture *cap, const struct layout *l,
		      int fd, char *err, size_t errlen)
{
	char path[64];
	struct memsrc m = { .areas = l->areas, .nareas = l->n };
	struct pt__core_src src = {
		.areas = l->areas, .nareas = l->n, .objects = l->objs, .nobjects = l->n,
		.cap = cap, .machine = EM_X86_64, .read = mem_read, .ctx = &m,
	};
	int r;

	snprintf(path, sizeof(path), "/proc/%d/mem", t->pid);
	m.mem = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/pagemap", t->pid);
	m.pagemap = open(path, O_RDONLY | O_CLOEXEC);
	if (m.mem < 0 || m.pagemap < 0)
		r = -errno;
	else
		r = pt__core_write(fd, &src, err, errlen);
	if (m.mem >= 0)
		close(m.mem);
	if (m.pagemap >= 0)
		close(m.pagemap);
	return r;
}

struct drain {
	int in, out;
};

static void *drain_fn(void *arg)
{
	struct drain *d = arg;
	char buf[65536];
	ssize_t n;

	while ((n = read(d->in, buf, sizeof(buf))) > 0)
		if (write(d->out, buf, (size_t)n) != n)
			break;
	return NULL;
}

/* The same core through a pipe, drained by a thread into @path. */
static int write_core_pipe(const struct target *t, const struct pt__capture *cap,
			   const struct layout *l, const char *path)
{
	int p[2], r;
	char err[256];
	pthread_t th;
	struct drain d;

	if (pipe2(p, O_CLOEXEC))
		return -errno;
	d.in = p[0];
	d.out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (d.out < 0 || pthread_create(&th, NULL, drain_fn, &d)) {
		close(p[0]);
		close(p[1]);
		return -EIO;
	}
	r = write_core(t, cap, l, p[1], err, sizeof(err));
	close(p[1]);
	pthread_join(th, NULL);
	close(p[0]);
	close(d.out);
	return r;
}

static bool files_equal(const char *a, const char *b)
{
	struct elf x = { 0 }, y = { 0 };
	bool eq = elf_load(a, &x) == 0 && elf_load(b, &y) == 0 && x.len == y.len &&
		  !memcmp(x.b, y.b, x.len);

	free(x.b);
	free(y.b);
	return eq;
}

static void check_layout(const struct target *t, const struct pt__capture *cap, const struct layout *l,
			 const char *core)
{
	struct elf e;
	struct note nt[64];
	size_t nn, nprs = 0;
	const Elf64_Phdr *p;
	unsigned char page1[FX_PAGE];
	int fd;
	bool ok;

	if (elf_load(core, &e)) {
		tap_ok(0, "our core parses as an ELF core");
		tap_skip_n(6, "no core", "layout checks");
		free(e.b);
		return;
	}
	tap_ok(e.eh->e_machine == EM_X86_64 && e.ph[0].p_type == PT_NOTE,
	       "ELF core, x86_64, PT_NOTE first, %zu program headers", e.phnum);

	p = elf_load_at(&e, t->none);
	tap_ok(p && p->p_flags == 0 && p->p_filesz == 0 && p->p_memsz == 4 * FX_PAGE,
	       "PROT_NONE area: PT_LOAD flags 0, filesz 0, memsz 4 pages (flags %u, filesz %llu)",
	       p ? p->p_flags : 99, p ? (unsigned long long)p->p_filesz : 0ULL);

	/* rw: page 0 written (0xc5), page 1 the file's (byte i = i % 251) */
	fd = open(data_file, O_RDONLY | O_CLOEXEC);
	ok = fd >= 0 && pread(fd, page1, FX_PAGE, FX_PAGE) == FX_PAGE;
	if (fd >= 0)
		close(fd);
	p = elf_load_at(&e, t->rw);
	ok = ok && p && p->p_flags == (PF_R | PF_W) && p->p_filesz == 2 * FX_PAGE &&
	     p->p_offset + p->p_filesz <= e.len;
	if (ok) {
		for (size_t i = 0; i < FX_PAGE; i++)
			ok = ok && e.b[p->p_offset + i] == 0xc5;
		ok = ok && !memcmp(e.b + p->p_offset + FX_PAGE, page1, FX_PAGE);
	}
	tap_ok(ok, "private file mapping with a page written: dumped whole, RW, its other page read from the file");
	p = elf_load_at(&e, t->ro);
	tap_ok(p && p->p_flags == PF_R && p->p_filesz == 0 && p->p_memsz == 2 * FX_PAGE,
	       "private file mapping never written: PT_LOAD R, filesz 0");

	/* the executable's first mapping (offset 0, never written): its ELF header page */
	p = NULL;
	for (size_t i = 0; i < l->n && !p; i++)
		if (!strcmp(l->areas[i].path, target_path) && l->areas[i].offset == 0)
			p = elf_load_at(&e, l->areas[i].start);
	tap_ok(p && p->p_filesz == FX_PAGE && p->p_memsz >= FX_PAGE &&
	       p->p_offset + FX_PAGE <= e.len && !memcmp(e.b + p->p_offset, ELFMAG, SELFMAG),
	       "the executable's mapping at offset 0: its first page only, the ELF header (filesz %llu)",
	       p ? (unsigned long long)p->p_filesz : 0ULL);

	nn = elf_notes(&e, nt, 64);
	ok = nn >= 6 && nt[0].type == NT_PRSTATUS && nt[1].type == NT_PRPSINFO &&
	     nt[2].type == NT_AUXV && nt[3].type == NT_FILE;
	for (size_t i = 0; i < nn; i++) {
		if (nt[i].type == NT_PRSTATUS && nt[i].len >= 112 + 216) {
			int32_t pid;

			memcpy(&pid, nt[i].desc + 32, 4);
			ok = ok && pid == cap->threads[nprs].tid;
			nprs++;
		}
		if (nt[i].type == NT_PRPSINFO)
			ok = ok && nt[i].len == 136 && !strcmp((const char *)nt[i].desc + 40, "coretarget");
	}
	ok = ok && nprs == NTHR && cap->threads[0].tid == t->pid;
	tap_ok(ok, "notes: main thread's PRSTATUS, PRPSINFO (coretarget), AUXV, FILE first; %zu PRSTATUS in capture order",
	       nprs);

	/* NT_FILE: count, page size, then (start, end, pgoff), then names */
	ok = false;
	if (nn >= 4 && nt[3].type == NT_FILE && nt[3].len >= 16) {
		/* notes are only 4-byte aligned: an aligned copy */
		uint64_t *f = calloc(1, nt[3].len + 1);
		uint64_t count = 0;

		if (!f)
			tap_bail("out of memory");
		memcpy(f, nt[3].desc, nt[3].len);
		count = f[0];
		if (16 + count * 24 > nt[3].len)
			count = 0;
		const char *names = (const char *)(f + 2 + 3 * count);
		bool rw = false, ro = false;

		for (uint64_t i = 0; i < count; i++) {
			bool ours = !strcmp(names, data_file) && f[2 + 3 * i + 2] == 0 &&
				    f[2 + 3 * i + 1] - f[2 + 3 * i] == 2 * FX_PAGE;

			rw |= ours && f[2 + 3 * i] == t->rw;
			ro |= ours && f[2 + 3 * i] == t->ro;
			names += strlen(names) + 1;
		}
		ok = f[1] == FX_PAGE && rw && ro;
		free(f);
	}
	tap_ok(ok, "NT_FILE lists both file mappings (start, end, page offset 0, name)");
	free(e.b);
}

static void check_gdb(const struct target *t, const char *core)
{
	char cmd[8192 + 512], want[64];
	char *out;

	snprintf(cmd, sizeof(cmd),
		 "DEBUGINFOD_URLS= timeout 120 gdb -batch -nx -iex 'set debuginfod enabled off' "
		 "-ex 'info threads' -ex 'thread apply all bt' -ex 'print global_var' "
		 "-ex 'print/x *heap_ptr' '%s' '%s' 2>&1", target_path, core);
	out = run_capture(cmd);
	if (!out) {
		tap_ok(0, "gdb ran");
		tap_skip_n(NTHR + 1, "gdb did not run", "gdb checks");
		return;
	}
	for (int i = 0; i < NTHR; i++)
		tap_ok(thread_bt_has(out, t->tids[i], funcs[i]), "gdb: thread LWP %d's backtrace shows %s",
		       t->tids[i], funcs[i]);
	snprintf(want, sizeof(want), "= %ld", 0x1234567887654321L);
	tap_ok(strstr(out, want) != NULL, "gdb: print global_var %s", want);
	tap_ok(strstr(out, "= 0x5eed0fc0ffee") != NULL, "gdb: print *heap_ptr = 0x5eed0fc0ffee");
	if (tap_fails)
		tap_diag("gdb said:\n%s", out);
	free(out);
}

/*
 * The segments both cores dumped (same vaddr, both filesz > 0) must be
 * equal; [vdso]/[vvar] are left out (kernel data: vvar's time values
 * move, and the two readers see it differently), and so are the
 * threads' rseq areas (read_rseq()).
 */
static void compare_gcore(const char *ours, const char *theirs, const struct layout *l,
			  const struct target *t)
{
	struct elf a = { 0 }, b = { 0 };
	size_t same = 0, differ = 0, excluded = 0;
	uint64_t bytes = 0, first_bad = 0;
	bool heap = false;

	if (elf_load(ours, &a) || elf_load(theirs, &b)) {
		tap_ok(0, "both cores parse");
		tap_skip("a core did not parse", "no comparison");
		free(a.b);
		free(b.b);
		return;
	}
	for (size_t i = 0; i < a.phnum; i++) {
		const Elf64_Phdr *p = &a.ph[i], *q;
		const char *name = "";
		uint64_t n;

		if (p->p_type != PT_LOAD || !p->p_filesz)
			continue;
		q = elf_load_at(&b, p->p_vaddr);
		if (!q || !q->p_filesz)
			continue;
		for (size_t k = 0; k < l->n; k++)
			if (l->areas[k].start == p->p_vaddr)
				name = l->areas[k].path;
		if (!strcmp(name, "[vdso]") || !strcmp(name, "[vvar]")) {
			excluded++;
			continue;
		}
		n = p->p_filesz < q->p_filesz ? p->p_filesz : q->p_filesz;
		if (p->p_offset + n > a.len || q->p_offset + n > b.len) {
			differ++;
			continue;
		}
		for (int k = 0; k < NTHR; k++) {
			if (t->rseq[k] >= p->p_vaddr && t->rseq[k] + t->rseq_len[k] <= p->p_vaddr + n) {
				memset(a.b + p->p_offset + (t->rseq[k] - p->p_vaddr), 0, t->rseq_len[k]);
				memset(b.b + q->p_offset + (t->rseq[k] - p->p_vaddr), 0, t->rseq_len[k]);
			}
		}
		if (p->p_offset + n > a.len || q->p_offset + n > b.len ||
		    memcmp(a.b + p->p_offset, b.b + q->p_offset, n)) {
			if (!differ++)
				first_bad = p->p_vaddr;
			tap_diag("differs: 0x%llx %s", (unsigned long long)p->p_vaddr, name);
		} else {
			same++;
			bytes += n;
		}
		heap |= !strcmp(name, "[heap]");
	}
	tap_ok(same >= 3 && heap, "gcore and ours both dumped %zu segments (%llu KiB, the heap among them; %zu [vdso]/[vvar] left out)",
	       same + differ, (unsigned long long)(bytes >> 10), excluded);
	{
		int nr = 0;

		for (int k = 0; k < NTHR; k++)
			nr += t->rseq[k] != 0;
		tap_ok(!differ, "they are equal byte for byte (%zu differ, first at 0x%llx; rseq areas of %d threads left out)",
		       differ, (unsigned long long)first_bad, nr);
	}
	free(a.b);
	free(b.b);
}

static int make_data_file(void)
{
	unsigned char buf[2 * FX_PAGE];
	int fd;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i % 251);
	snprintf(data_file, sizeof(data_file), "%s/data", dir);
	fd = open(data_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf)) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int main(void)
{
	char core[128], core2[128], gprefix[128], gcore_path[160], err[256], cmd[512];
	struct target t = { 0 };
	struct pt__capture cap = { 0 };
	struct pt_freeze fz;
	struct layout l = { 0 };
	ssize_t n;
	int r, fd;
	bool gdb;
	char *slash;

#if !defined(__x86_64__)
	tap_skip_all("the core writer's test target is x86_64 (EM_X86_64 cores)");
#endif
	n = readlink("/proc/self/exe", target_path, sizeof(target_path) - 32);
	if (n < 0)
		tap_skip_all("no /proc/self/exe");
	target_path[n] = 0;
	slash = strrchr(target_path, '/');
	strcpy(slash + 1, "coretarget");
	if (access(target_path, X_OK))
		tap_skip_all("tests/coretarget not built");
	snprintf(dir, sizeof(dir), "/tmp/pt-core-%d-XXXXXX", (int)getpid());
	if (!mkdtemp(dir))
		tap_bail("mkdtemp: %s", strerror(errno));
	if (make_data_file())
		tap_bail("data file: %s", strerror(errno));
	snprintf(core, sizeof(core), "%s/core", dir);
	snprintf(core2, sizeof(core2), "%s/core.pipe", dir);
	snprintf(gprefix, sizeof(gprefix), "%s/gcore", dir);

	tap_plan(PLAN);
	gdb = have_prog("gdb");
	if (start_target(&t) || !target_quiet(&t))
		tap_bail("coretarget did not start or its threads never blocked");

	/* 1-3: freeze, capture, write */
	r = pt__freeze(t.pid, &fz);
	if (r)
		tap_bail("pt__freeze: %s", strerror(-r));
	read_rseq(&t);
	r = pt__capture(&fz, &cap);
	tap_ok(!r && cap.nthreads == NTHR && cap.threads[0].tid == t.pid && cap.nauxv > 1 &&
	       cap.threads[0].nnotes >= 2 && cap.pid == t.pid && !strcmp(cap.comm, "coretarget") &&
	       cap.cmdline_len > 0 && cap.nfiles >= 3,
	       "pt__capture: %zu threads, main first, %zu notes, %zu auxv, %zu files, state '%c' (%s)",
	       cap.nthreads, cap.nthreads ? cap.threads[0].nnotes : 0, cap.nauxv, cap.nfiles,
	       cap.state ? cap.state : '?', strerror(-r));
	r = r ? r : read_layout(t.pid, &l);
	fd = r ? -1 : open(core, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	err[0] = 0;
	if (!r)
		r = fd < 0 ? -errno : write_core(&t, &cap, &l, fd, err, sizeof(err));
	if (fd >= 0)
		close(fd);
	tap_ok(!r, "pt__core_write to a file: %s", r ? err : "ok");
	r = r ? r : write_core_pipe(&t, &cap, &l, core2);
	tap_ok(!r && files_equal(core, core2), "the same core written to a pipe is the same bytes");
	pt__thaw(&fz);

	/* 4-10: layout */
	check_layout(&t, &cap, &l, core);

	/* 11-16: gdb */
	if (gdb)
		check_gdb(&t, core);
	else
		tap_skip_n(NTHR + 2, "gdb not installed (scripts/deps.sh test installs it)", "gdb checks");

	/* 17-19: gcore of the same, quiescent state */
	snprintf(gcore_path, sizeof(gcore_path), "%s.%d", gprefix, t.pid);
	if (!have_prog("gcore")) {
		tap_skip_n(3, "gcore not installed (gdb package)", "gcore comparison");
	} else if (!target_quiet(&t)) {
		tap_ok(0, "target's threads blocked again after the thaw");
		tap_skip_n(2, "target not quiet", "gcore comparison");
	} else {
		snprintf(cmd, sizeof(cmd),
			 "DEBUGINFOD_URLS= timeout 120 gcore -o '%s' %d >/dev/null 2>&1", gprefix,
			 t.pid);
		r = system(cmd);
		tap_ok(r == 0 && access(gcore_path, R_OK) == 0, "gcore -o PREFIX PID (status %d)", r);
		compare_gcore(core, gcore_path, &l, &t);
	}

	/* 20: nothing traces the process any more */
	{
		char path[64], *st = NULL;
		size_t len = 0;
		FILE *f;
		int tracer = -1;

		snprintf(path, sizeof(path), "/proc/%d/status", t.pid);
		f = fopen(path, "re");
		while (f && getline(&st, &len, f) > 0)
			if (!strncmp(st, "TracerPid:", 10))
				tracer = atoi(st + 10);
		if (f)
			fclose(f);
		free(st);
		tap_ok(tracer == 0, "target no longer traced after thaw and gcore (TracerPid %d)", tracer);
	}
	/* 21-25: errors, PN_XNUM, free */
	check_errors(&cap);
	check_xnum(&cap, core2);
	pt__capture_free(&cap);
	tap_ok(cap.threads == NULL && cap.nthreads == 0, "pt__capture_free empties the capture");

	stop_target(&t);
	free_layout(&l);
	if (getenv("PT_TEST_KEEP")) {
		tap_diag("kept %s (PT_TEST_KEEP)", dir);
	} else {
		unlink(core);
		unlink(core2);
		unlink(gcore_path);
		unlink(data_file);
		rmdir(dir);
	}
	return tap_done();
}
