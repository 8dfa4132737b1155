/* SPDX-License-Identifier: MIT */
/*
 * The copy engine (lib/copy/): pt_copy_area(), pt_copy_object().
 *
 * A forked child lays out, with known patterns:
 *	anon	 64 pages: 0-15 never touched, 16-31 written, 32-47 written
 *		 with zeros, 48-55 only read, 56-63 written and paged out
 *	thp	 2 MiB, MADV_HUGEPAGE, written
 *	fpriv	 private mapping of a 16-page file, read, pages 4-7 written (COW)
 *	pnone	 8 written pages made PROT_NONE
 *	guard	 8 written pages, 2-3 guard pages (MADV_GUARD_INSTALL)
 *	objects	 shared anon, memfd, SysV, /dev/shm file, 64 pages each:
 *		 0-15 hole, 16-31 written, 32-47 written and paged out,
 *		 48-63 written with zeros
 * The parent copies them and checks that pieces tile each range, kinds
 * and contents (against the pattern the child wrote), that swapped
 * pages are swapped out again (pagemap of the child, mincore on our own
 * mapping of the objects) or, with PT_COPY_NO_EVICT, stay resident;
 * PT_COPY_FORCE_MEM gives the same result; a target killed mid-copy
 * gives -ESRCH; a hash tracker hears of what was copied.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "tap.h"

#define NP 64
#define LEN (NP * FX_PAGE)
#define THP (2UL << 20)
#define BIG (16UL << 20)
#define NOBJ 4

static const char *const oname[NOBJ] = { "shared anon", "memfd", "SysV shm", "/dev/shm file" };

struct info {
	uint64_t anon, thp, fpriv, pnone, guard, big;
	uint64_t obj[NOBJ];
	uint64_t fshared;		/* MAP_SHARED of a 16-page disk file: 0-7 written */
	char obj_why[NOBJ][128];
	int guard_ok;
};

static struct info *info;

/* ---- patterns ---- */

static void fill(void *p, uint64_t tag)
{
	uint64_t *w = p;

	for (size_t j = 0; j < FX_PAGE / 8; j++)
		w[j] = ((tag + 1) * 0x9E3779B97F4A7C15ull) ^ (j * 0x100000001b3ull) ^ 1;
}

static uint64_t sum(const void *p)
{
	const uint64_t *w = p;
	uint64_t h = 1469598103934665603ull;

	for (size_t j = 0; j < FX_PAGE / 8; j++)
		h = (h ^ w[j]) * 1099511628211ull;
	return h;
}

static uint64_t sum_of(uint64_t tag)
{
	static uint64_t page[FX_PAGE / 8];

	fill(page, tag);
	return sum(page);
}

#define T_ANON(i) (0xA000 + (i))
#define T_THP(i) (0x10000 + (i))
#define T_FPRIV(i) (0xC000 + (i))
#define T_PNONE(i) (0xD000 + (i))
#define T_GUARD(i) (0xE000 + (i))
#define T_OBJ(k, i) (0xB000 + (k) * 256 + (i))
#define T_BIG(i) (0x100000 + (i))

/* ---- the child ---- */

static void *map_obj(int k, char *why, size_t whylen)
{
	char name[64];
	void *p = MAP_FAILED;
	int fd = -1, id;

	switch (k) {
	case 0:
		p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		break;
	case 1:
		fd = (int)syscall(SYS_memfd_create, "pt_copy", 0);
		break;
	case 2:
		id = shmget(IPC_PRIVATE, LEN, IPC_CREAT | 0600);
		if (id < 0)
			break;
		p = shmat(id, NULL, 0);
		shmctl(id, IPC_RMID, NULL);
		if (p == (void *)-1)
			p = MAP_FAILED;
		break;
	case 3:
		snprintf(name, sizeof(name), "/dev/shm/pt_copy_%d", (int)getpid());
		fd = open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd >= 0)
			unlink(name);
		break;
	}
	if (k == 1 || k == 3) {
		if (fd >= 0 && ftruncate(fd, LEN) == 0)
			p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (fd >= 0)
			close(fd);
	}
	if (p == MAP_FAILED) {
		snprintf(why, whylen, "set-up: %s", strerror(errno));
		return NULL;
	}
	return p;
}

static void child_setup(void *arg)
{
	struct info *in = arg;
	unsigned char *a, *t, *f, *n, *g;
	char path[64];
	int fd;

	a = fx_map(LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 16; i < 32; i++)
		fill(a + i * FX_PAGE, T_ANON(i));
	memset(a + 32 * FX_PAGE, 1, 16 * FX_PAGE);
	memset(a + 32 * FX_PAGE, 0, 16 * FX_PAGE);
	for (int i = 48; i < 56; i++)
		(void)*(volatile unsigned char *)(a + i * FX_PAGE);
	for (int i = 56; i < 64; i++)
		fill(a + i * FX_PAGE, T_ANON(i));
	fx_pageout(a + 56 * FX_PAGE, 8 * FX_PAGE);
	in->anon = (uintptr_t)a;

	t = fx_map(2 * THP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	t = (unsigned char *)(((uintptr_t)t + THP - 1) & ~(THP - 1));
	madvise(t, THP, MADV_HUGEPAGE);
	for (size_t i = 0; i < THP / FX_PAGE; i++)
		fill(t + i * FX_PAGE, T_THP(i));
	in->thp = (uintptr_t)t;

	snprintf(path, sizeof(path), "/tmp/pt_copy_%d.dat", (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd >= 0) {
		unsigned char *buf = malloc(16 * FX_PAGE);

		memset(buf, 'F', 16 * FX_PAGE);
		if (write(fd, buf, 16 * FX_PAGE) == (ssize_t)(16 * FX_PAGE)) {
			f = fx_map(16 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
			for (int i = 0; i < 16; i++)
				(void)*(volatile unsigned char *)(f + i * FX_PAGE);
			for (int i = 4; i < 8; i++)
				fill(f + i * FX_PAGE, T_FPRIV(i));
			in->fpriv = (uintptr_t)f;
		}
		free(buf);
		close(fd);
		unlink(path);
	}

	n = fx_map(8 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < 8; i++)
		fill(n + i * FX_PAGE, T_PNONE(i));
	mprotect(n, 8 * FX_PAGE, PROT_NONE);
	in->pnone = (uintptr_t)n;

	g = fx_map(8 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < 8; i++)
		fill(g + i * FX_PAGE, T_GUARD(i));
	in->guard_ok = madvise(g + 2 * FX_PAGE, 2 * FX_PAGE, 102 /* MADV_GUARD_INSTALL */) == 0;
	in->guard = (uintptr_t)g;

	snprintf(path, sizeof(path), "/tmp/pt_copy_%d_s.dat", (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd >= 0) {
		if (ftruncate(fd, 16 * FX_PAGE) == 0) {
			f = fx_map(16 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			for (int i = 0; i < 8; i++)
				fill(f + i * FX_PAGE, T_FPRIV(100 + i));
			in->fshared = (uintptr_t)f;
		}
		close(fd);
		unlink(path);
	}

	for (int k = 0; k < NOBJ; k++) {
		unsigned char *o = map_obj(k, in->obj_why[k], sizeof(in->obj_why[k]));

		if (!o)
			continue;
		for (int i = 16; i < 48; i++)
			fill(o + i * FX_PAGE, T_OBJ(k, i));
		memset(o + 48 * FX_PAGE, 0, 16 * FX_PAGE);
		fx_pageout(o + 32 * FX_PAGE, 16 * FX_PAGE);
		in->obj[k] = (uintptr_t)o;
	}
}

static void big_setup(void *arg)
{
	struct info *in = arg;
	unsigned char *b = fx_map(BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	for (size_t i = 0; i < BIG / FX_PAGE; i++)
		fill(b + i * FX_PAGE, T_BIG(i));
	in->big = (uintptr_t)b;
}

/* ---- recording pieces ---- */

struct rec {
	uint64_t start, end, next;	/* range; next expected piece address */
	bool tiled;			/* pieces in order, no gap, no overlap, sane fields */
	uint8_t *kind, *detail;
	uint64_t *sum;
	uint64_t swapped, pieces;
	pid_t kill_pid;			/* kill this target at the first piece */
};

static int on_piece(const struct pt_copy_piece *p, void *ctx)
{
	struct rec *r = ctx;

	r->pieces++;
	if (r->kill_pid > 0) {
		fx_child_kill(r->kill_pid);
		r->kill_pid = 0;
	}
	if (p->addr != r->next || !p->npages || p->addr + p->npages * FX_PAGE > r->end ||
	    p->swapped > p->npages || (p->kind == PT_PAGE_DATA) != (p->data != NULL) ||
	    (p->kind != PT_PAGE_UNREADABLE && p->detail) || p->kind == PT_PAGE_UNCHANGED ||
	    p->kind < PT_PAGE_DATA || p->kind > PT_PAGE_UNREADABLE) {
		if (r->tiled)
			tap_diag("bad piece %#llx+%llu kind %u detail %u (expected at %#llx)",
				 (unsigned long long)p->addr, (unsigned long long)p->npages,
				 p->kind, p->detail, (unsigned long long)r->next);
		r->tiled = false;
		return 0;
	}
	for (uint64_t i = 0; i < p->npages; i++) {
		uint64_t pg = (p->addr - r->start) / FX_PAGE + i;

		r->kind[pg] = (uint8_t)p->kind;
		r->detail[pg] = (uint8_t)p->detail;
		r->sum[pg] = p->data ? sum((const unsigned char *)p->data + i * FX_PAGE) : 0;
	}
	r->swapped += p->swapped;
	r->next = p->addr + p->npages * FX_PAGE;
	return 0;
}

static void rec_init(struct rec *r, uint64_t start, uint64_t end)
{
	size_t n = (end - start) / FX_PAGE;

	memset(r, 0, sizeof(*r));
	r->start = start;
	r->end = end;
	r->next = start;
	r->tiled = true;
	r->kind = calloc(n, 1);
	r->detail = calloc(n, 1);
	r->sum = calloc(n, sizeof(*r->sum));
	if (!r->kind || !r->detail || !r->sum)
		tap_bail("out of memory");
}

static void rec_free(struct rec *r)
{
	free(r->kind);
	free(r->detail);
	free(r->sum);
}

static bool rec_same(const struct rec *a, const struct rec *b)
{
	size_t n = (a->end - a->start) / FX_PAGE;

	return a->start == b->start && a->end == b->end && !memcmp(a->kind, b->kind, n) &&
	       !memcmp(a->detail, b->detail, n) && !memcmp(a->sum, b->sum, n * sizeof(*a->sum));
}

/* Pages [from, to) of @r are @kind; DATA ones hold pattern @tag0 + page. */
static bool rec_is(const struct rec *r, size_t from, size_t to, uint8_t kind, uint64_t tag0,
		   const char *what)
{
	for (size_t i = from; i < to; i++) {
		if (r->kind[i] != kind || (kind == PT_PAGE_DATA && r->sum[i] != sum_of(tag0 + i))) {
			tap_diag("%s: page %zu is kind %u (want %u)%s", what, i, r->kind[i], kind,
				 r->kind[i] == kind ? ", wrong content" : "");
			return false;
		}
	}
	return true;
}

static const struct pt_vma *find_vma(const struct pt_vma *v, size_t n, uint64_t addr)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].start <= addr && addr < v[i].end)
			return &v[i];
	return NULL;
}

static int copy_area(struct pt_copier *cp, const struct pt_vma *v, uint64_t start, uint64_t end,
		     struct rec *r)
{
	int err;

	rec_init(r, start, end);
	err = pt_copy_area(cp, v, start, end, on_piece, r);
	if (!err && r->next != end) {
		tap_diag("pieces end at %#llx, not %#llx", (unsigned long long)r->next,
			 (unsigned long long)end);
		r->tiled = false;
	}
	return err;
}

static int copy_obj(struct pt_copier *cp, const struct pt_vma *v, uint64_t end, struct rec *r)
{
	int err;

	rec_init(r, 0, end);
	err = pt_copy_object(cp, v, 0, end, on_piece, r);
	if (!err && r->next != end)
		r->tiled = false;
	return err;
}

/* ---- oracles ---- */

/* Pages of the child's [addr, addr + n pages) that pagemap shows swapped out. */
static int pm_swapped(pid_t pid, uint64_t addr, size_t n, bool *sw)
{
	char path[64];
	uint64_t e[NP];
	int fd, cnt = 0;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0 || n > NP ||
	    pread(fd, e, n * 8, (off_t)(addr / FX_PAGE * 8)) != (ssize_t)(n * 8)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	for (size_t i = 0; i < n; i++) {
		sw[i] = (e[i] >> 62) & 1;
		cnt += sw[i];
	}
	return cnt;
}

/* Pages of object pages [from, to) of the child's area @v not resident (mincore on our own mapping). */
static int obj_nonres(pid_t pid, const struct pt_vma *v, size_t from, size_t to)
{
	char path[96];
	unsigned char vec[NP];
	void *m;
	int fd, cnt = 0;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", (int)pid,
		 (unsigned long long)v->start, (unsigned long long)v->end);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	m = mmap(NULL, LEN, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return -1;
	if (mincore(m, LEN, vec))
		cnt = -1;
	munmap(m, LEN);
	for (size_t i = from; i < to && cnt >= 0; i++)
		cnt += !(vec[i] & 1);
	return cnt;
}

/* ---- tests ---- */

#define N_AREA 13
#define N_OBJ (3 * NOBJ + 2)
#define N_MODES 4
#define N_TRACK 1
#define N_ESRCH 1
#define N_ARGS 4

static void test_args(pid_t pid, const struct pt_vma *va)
{
	const PT_OPTS(pt_copy_opts, bad, .reserved = 1);
	struct pt_copier *cp = pt_copier_create(pid, &bad);
	struct rec r;

	tap_ok(!cp && errno == EINVAL, "create with reserved != 0: EINVAL");
	pt_copier_free(cp);
	cp = pt_copier_create(pid, NULL);
	rec_init(&r, va->start, va->end);
	tap_ok(cp && pt_copy_area(cp, va, va->start + 1, va->end, on_piece, &r) == -EINVAL &&
		       pt_copy_area(cp, va, va->start, va->end + FX_PAGE, on_piece, &r) == -EINVAL &&
		       r.pieces == 0,
	       "unaligned or out-of-area range: -EINVAL, no piece");
	tap_ok(cp && pt_copy_object(cp, va, 0, LEN, on_piece, &r) == -EINVAL &&
		       pt_copy_object_size(cp, va) == -EINVAL,
	       "pt_copy_object on a private area: -EINVAL");
	rec_free(&r);
	pt_copier_free(cp);

	/* the calling process (pid 0): read in place */
	{
		unsigned char *m = fx_map(8 * FX_PAGE, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct pt_target *t = pt_target_create(0, NULL);
		struct pt_vma *vs = NULL;
		const struct pt_vma *v = NULL;
		size_t nv = 0;
		int err = -1;

		for (int i = 0; i < 4; i++)
			fill(m + i * FX_PAGE, T_ANON(100 + i));
		cp = pt_copier_create(0, NULL);
		if (cp && t && !pt_vmas_read(t, &vs, &nv) &&
		    (v = find_vma(vs, nv, (uintptr_t)m))) {
			err = copy_area(cp, v, (uintptr_t)m, (uintptr_t)m + 8 * FX_PAGE, &r);
			tap_ok(!err && r.tiled && rec_is(&r, 0, 4, PT_PAGE_DATA, T_ANON(100), "self") &&
				       rec_is(&r, 4, 8, PT_PAGE_HOLE, 0, "self"),
			       "the calling process: written pages DATA, the others HOLE (%d)", err);
			rec_free(&r);
		} else {
			tap_ok(0, "copier of the calling process: %s", strerror(errno));
		}
		pt_vmas_free(vs);
		pt_target_free(t);
		pt_copier_free(cp);
		munmap(m, 8 * FX_PAGE);
	}
}

static void test_areas(pid_t pid, const struct pt_vma *vmas, size_t nv, bool swap)
{
	const struct pt_vma *va = find_vma(vmas, nv, info->anon);
	struct pt_copier *cp = pt_copier_create(pid, NULL);
	struct pt_copy_stats st = { .sz = sizeof(st) };
	const struct pt_vma *v;
	bool sw0[8], sw1[8];
	int nsw0, nsw1, err;
	struct rec r;

	if (!cp || !va) {
		tap_ok(0, "copier for the child: %s", strerror(errno));
		tap_skip_n(N_AREA - 1, "no copier", "areas");
		return;
	}
	nsw0 = pm_swapped(pid, info->anon + 56 * FX_PAGE, 8, sw0);
	err = copy_area(cp, va, info->anon, info->anon + LEN, &r);
	tap_ok(!err && r.tiled, "anon: copy returns %d, pieces tile the range (%llu pieces)", err,
	       (unsigned long long)r.pieces);
	tap_ok(rec_is(&r, 0, 16, PT_PAGE_HOLE, 0, "anon untouched") &&
		       rec_is(&r, 16, 32, PT_PAGE_DATA, T_ANON(0), "anon written"),
	       "anon: untouched pages HOLE, written pages DATA with their content");
	tap_ok(rec_is(&r, 32, 48, PT_PAGE_ZERO, 0, "anon zeroed"),
	       "anon: pages written with zeros are ZERO");
	{
		bool ok = true;

		for (int i = 48; i < 56; i++)
			ok &= r.kind[i] == PT_PAGE_HOLE || r.kind[i] == PT_PAGE_ZERO;
		tap_ok(ok, "anon: pages only read (zero page) are HOLE (or ZERO without a zero page)");
	}
	tap_ok(rec_is(&r, 56, 64, PT_PAGE_DATA, T_ANON(0), "anon paged out"),
	       "anon: pages paged out are DATA with their content");
	if (!swap || nsw0 <= 0) {
		tap_skip_n(2, swap ? "MADV_PAGEOUT did not swap the pages out" : "no swap",
			   "anon: swapped pages");
	} else {
		nsw1 = pm_swapped(pid, info->anon + 56 * FX_PAGE, 8, sw1);
		tap_ok(r.swapped == (uint64_t)nsw0, "anon: pieces say %llu swapped, pagemap said %d",
		       (unsigned long long)r.swapped, nsw0);
		bool again = nsw1 >= 0;

		for (int i = 0; i < 8 && again; i++)
			again = !sw0[i] || sw1[i];
		pt_copier_stats(cp, &st);
		tap_ok(again && st.pages_swapped_in >= (uint64_t)nsw0 &&
			       st.pages_evicted >= (uint64_t)nsw0,
		       "anon: the %d swapped pages are swapped out again (%d now; stats: %llu "
		       "swapped in, %llu evicted)",
		       nsw0, nsw1, (unsigned long long)st.pages_swapped_in,
		       (unsigned long long)st.pages_evicted);
	}
	rec_free(&r);

	v = find_vma(vmas, nv, info->thp);
	err = v ? copy_area(cp, v, info->thp, info->thp + THP, &r) : -ENOENT;
	tap_ok(!err && r.tiled && rec_is(&r, 0, THP / FX_PAGE, PT_PAGE_DATA, T_THP(0), "thp"),
	       "THP: 512 pages DATA with their content (%d)", err);
	if (v)
		rec_free(&r);

	v = info->fpriv ? find_vma(vmas, nv, info->fpriv) : NULL;
	if (!v) {
		tap_skip("no file", "private file mapping");
	} else {
		err = copy_area(cp, v, info->fpriv, info->fpriv + 16 * FX_PAGE, &r);
		tap_ok(!err && r.tiled && rec_is(&r, 0, 4, PT_PAGE_HOLE, 0, "fpriv") &&
			       rec_is(&r, 4, 8, PT_PAGE_DATA, T_FPRIV(0), "fpriv cow") &&
			       rec_is(&r, 8, 16, PT_PAGE_HOLE, 0, "fpriv"),
		       "private file mapping: COW'd pages DATA, the file's pages HOLE (%d)", err);
		rec_free(&r);
	}

	v = find_vma(vmas, nv, info->pnone);
	err = v ? copy_area(cp, v, info->pnone, info->pnone + 8 * FX_PAGE, &r) : -ENOENT;
	tap_ok(!err && r.tiled && rec_is(&r, 0, 8, PT_PAGE_DATA, T_PNONE(0), "pnone"),
	       "PROT_NONE area holding data: DATA with its content (%d)", err);
	if (v)
		rec_free(&r);

	v = find_vma(vmas, nv, info->guard);
	if (!info->guard_ok || !v) {
		tap_skip("MADV_GUARD_INSTALL refused", "guard region");
	} else {
		err = copy_area(cp, v, info->guard, info->guard + 8 * FX_PAGE, &r);
		tap_ok(!err && r.tiled && rec_is(&r, 0, 2, PT_PAGE_DATA, T_GUARD(0), "guard") &&
			       rec_is(&r, 2, 4, PT_PAGE_HOLE, 0, "guard pages") &&
			       rec_is(&r, 4, 8, PT_PAGE_DATA, T_GUARD(0), "guard"),
		       "guard region: guard pages HOLE, the others DATA (%d)", err);
		rec_free(&r);
	}

	v = NULL;
	for (size_t i = 0; i < nv && !v; i++)
		if (!strncmp(vmas[i].path, "[vvar", 5))
			v = &vmas[i];
	if (!v) {
		tap_skip("no [vvar] area", "[vvar]");
	} else {
		bool ok;

		err = copy_area(cp, v, v->start, v->end, &r);
		ok = !err && r.tiled && r.pieces == 1;
		for (size_t i = 0; ok && i < (v->end - v->start) / FX_PAGE; i++)
			ok = r.kind[i] == PT_PAGE_UNREADABLE && r.detail[i] == PT_UNREADABLE_KERNEL;
		tap_ok(ok, "[vvar]: one UNREADABLE KERNEL piece (%d, %llu pieces)", err,
		       (unsigned long long)r.pieces);
		rec_free(&r);
	}

	v = info->obj[0] ? find_vma(vmas, nv, info->obj[0]) : NULL;
	if (!v) {
		tap_skip("no shared anon area", "pt_copy_area on a shared area");
	} else {
		rec_init(&r, v->start, v->end);
		tap_ok(pt_vma_is_object(v) && !pt_vma_is_object(va) &&
			       pt_copy_area(cp, v, v->start, v->end, on_piece, &r) == -EINVAL &&
			       r.pieces == 0,
		       "pt_copy_area on a shared area: -EINVAL (pt_vma_is_object)");
		rec_free(&r);
	}
	pt_copier_free(cp);
}

static void test_objects(pid_t pid, const struct pt_vma *vmas, size_t nv, bool swap)
{
	struct pt_copier *cp = pt_copier_create(pid, NULL);

	for (int k = 0; k < NOBJ; k++) {
		const struct pt_vma *v = info->obj[k] ? find_vma(vmas, nv, info->obj[k]) : NULL;
		int64_t size;
		int nr0, nr1, err;
		struct rec r;

		if (!v || !cp) {
			tap_skip_n(3, info->obj_why[k][0] ? info->obj_why[k] : "no area", "%s",
				   oname[k]);
			continue;
		}
		size = pt_copy_object_size(cp, v);
		nr0 = obj_nonres(pid, v, 32, 48);
		err = copy_obj(cp, v, LEN, &r);
		tap_ok(pt_vma_is_object(v) && size == (int64_t)LEN && !err && r.tiled,
		       "%s: object of %lld bytes, copy returns %d, pieces tile it", oname[k],
		       (long long)size, err);
		tap_ok(rec_is(&r, 0, 16, PT_PAGE_HOLE, 0, oname[k]) &&
			       rec_is(&r, 16, 48, PT_PAGE_DATA, T_OBJ(k, 0), oname[k]) &&
			       rec_is(&r, 48, 64, PT_PAGE_ZERO, 0, oname[k]),
		       "%s: holes HOLE, written pages DATA with their content (paged out too), "
		       "zeroed pages ZERO", oname[k]);
		nr1 = obj_nonres(pid, v, 32, 48);
		if (!swap || nr0 <= 0)
			tap_skip(swap ? "MADV_PAGEOUT did not swap the pages out" : "no swap",
				 "%s: swapped pages", oname[k]);
		else
			tap_ok(r.swapped >= (uint64_t)nr0 && nr1 >= nr0,
			       "%s: %d pages not resident before, %llu counted swapped, %d not "
			       "resident after", oname[k], nr0, (unsigned long long)r.swapped, nr1);
		rec_free(&r);
	}
	/* a shared mapping of a disk file: its pages, its holes */
	{
		const struct pt_vma *v = info->fshared ? find_vma(vmas, nv, info->fshared) : NULL;
		struct rec r;
		int err;

		if (!v || !cp) {
			tap_skip("no file", "shared file mapping");
		} else {
			err = copy_obj(cp, v, 16 * FX_PAGE, &r);
			tap_ok(pt_vma_is_object(v) && !err && r.tiled &&
				       pt_copy_object_size(cp, v) == 16 * FX_PAGE &&
				       rec_is(&r, 0, 8, PT_PAGE_DATA, T_FPRIV(100), "file") &&
				       rec_is(&r, 8, 16, PT_PAGE_HOLE, 0, "file hole"),
			       "shared file mapping: written pages DATA, file holes HOLE (%d)", err);
			rec_free(&r);
		}
	}
	/* PT_COPY_NO_EVICT: the pages read stay resident, counted */
	{
		const PT_OPTS(pt_copy_opts, o, .flags = PT_COPY_NO_EVICT);
		struct pt_copier *ne = pt_copier_create(pid, &o);
		const struct pt_vma *v = info->obj[1] ? find_vma(vmas, nv, info->obj[1]) : NULL;
		struct pt_copy_stats st = { .sz = sizeof(st) };
		int nr0 = v ? obj_nonres(pid, v, 32, 48) : -1, nr1, err;
		struct rec r;

		if (!v || !ne || !swap || nr0 <= 0) {
			tap_skip(!swap ? "no swap" : "memfd pages not swapped out", "memfd: NO_EVICT");
		} else {
			err = copy_obj(ne, v, LEN, &r);
			nr1 = obj_nonres(pid, v, 32, 48);
			pt_copier_stats(ne, &st);
			tap_ok(!err && nr1 == 0 && st.pages_swapped_in >= (uint64_t)nr0 &&
				       st.pages_evicted == 0,
			       "memfd: NO_EVICT: %d pages not resident before, %d after, %llu "
			       "swapped in, %llu evicted", nr0, nr1,
			       (unsigned long long)st.pages_swapped_in,
			       (unsigned long long)st.pages_evicted);
			rec_free(&r);
		}
		pt_copier_free(ne);
	}
	pt_copier_free(cp);
}

/* PT_COPY_FORCE_MEM gives identical results; PT_COPY_NO_EVICT leaves private pages resident. */
static void test_modes(pid_t pid, const struct pt_vma *vmas, size_t nv, bool swap)
{
	const PT_OPTS(pt_copy_opts, fm, .flags = PT_COPY_FORCE_MEM);
	const PT_OPTS(pt_copy_opts, ne, .flags = PT_COPY_NO_EVICT);
	struct pt_copier *a = pt_copier_create(pid, NULL), *b = pt_copier_create(pid, &fm);
	uint64_t starts[] = { info->anon, info->thp, info->fpriv, info->pnone, info->guard };
	uint64_t lens[] = { LEN, THP, 16 * FX_PAGE, 8 * FX_PAGE, 8 * FX_PAGE };
	bool same = a && b;
	struct pt_copy_stats sa = { .sz = sizeof(sa) }, sb = { .sz = sizeof(sb) };

	for (size_t i = 0; i < 5 && same; i++) {
		const struct pt_vma *v = starts[i] ? find_vma(vmas, nv, starts[i]) : NULL;
		struct rec r1, r2;
		int e1, e2;

		if (!v)
			continue;
		e1 = copy_area(a, v, starts[i], starts[i] + lens[i], &r1);
		e2 = copy_area(b, v, starts[i], starts[i] + lens[i], &r2);
		same = !e1 && !e2 && r1.tiled && r2.tiled && rec_same(&r1, &r2);
		if (!same)
			tap_diag("area %zu: %d %d differ", i, e1, e2);
		rec_free(&r1);
		rec_free(&r2);
	}
	pt_copier_stats(a, &sa);
	pt_copier_stats(b, &sb);
	tap_ok(same, "PT_COPY_FORCE_MEM: the same pieces and contents as process_vm_readv");
	tap_ok(same && sa.bytes_read == sb.bytes_read && sa.pages_data == sb.pages_data &&
		       sa.pages_data > 0,
	       "PT_COPY_FORCE_MEM: the same counts (%llu data pages, %llu bytes read)",
	       (unsigned long long)sb.pages_data, (unsigned long long)sb.bytes_read);
	pt_copier_free(a);
	pt_copier_free(b);

	setenv("PT_FORCE_COPY", "mem", 1);
	b = pt_copier_create(pid, NULL);
	unsetenv("PT_FORCE_COPY");
	{
		const struct pt_vma *v = find_vma(vmas, nv, info->pnone);
		struct rec r;
		int err = v && b ? copy_area(b, v, info->pnone, info->pnone + 8 * FX_PAGE, &r) : -1;

		tap_ok(!err && rec_is(&r, 0, 8, PT_PAGE_DATA, T_PNONE(0), "env mem"),
		       "PT_FORCE_COPY=mem: copier works (%d)", err);
		if (v && b)
			rec_free(&r);
	}
	pt_copier_free(b);

	/* NO_EVICT on private memory */
	{
		const struct pt_vma *v = find_vma(vmas, nv, info->anon);
		struct pt_copier *c = pt_copier_create(pid, &ne);
		struct pt_copy_stats st = { .sz = sizeof(st) };
		bool sw0[8], sw1[8];
		int n0 = pm_swapped(pid, info->anon + 56 * FX_PAGE, 8, sw0), n1, err;
		struct rec r;

		if (!swap || n0 <= 0 || !c || !v) {
			tap_skip(!swap ? "no swap" : "anon pages not swapped out", "anon: NO_EVICT");
		} else {
			err = copy_area(c, v, info->anon, info->anon + LEN, &r);
			n1 = pm_swapped(pid, info->anon + 56 * FX_PAGE, 8, sw1);
			pt_copier_stats(c, &st);
			tap_ok(!err && n1 == 0 && st.pages_swapped_in == (uint64_t)n0 &&
				       st.pages_evicted == 0 &&
				       rec_is(&r, 56, 64, PT_PAGE_DATA, T_ANON(0), "no evict"),
			       "anon: NO_EVICT: %d swapped before, %d after, %llu counted, %llu "
			       "evicted", n0, n1, (unsigned long long)st.pages_swapped_in,
			       (unsigned long long)st.pages_evicted);
			rec_free(&r);
		}
		pt_copier_free(c);
	}
}

static int collect_all(struct pt_tracker *tr, uint64_t page, bool *hit)
{
	struct pt_dirty d[256];
	bool more;
	int n;

	*hit = false;
	do {
		n = pt_tracker_collect(tr, d, 256, &more);
		if (n < 0)
			return n;
		for (int i = 0; i < n; i++)
			*hit |= d[i].start <= page && page < d[i].end;
	} while (more);
	return 0;
}

/* A page changed after a collect, copied, and changed back is reported next round. */
static void test_tracker(pid_t pid, const struct pt_vma *vmas, size_t nv)
{
	const PT_OPTS(pt_tracker_opts, to, .backend = PT_TRACK_HASH, .start = info->anon,
		      .end = info->anon + LEN);
	struct pt_tracker *tr = pt_tracker_create(pid, &to);
	const struct pt_vma *v = find_vma(vmas, nv, info->anon);
	uint64_t page = info->anon + 20 * FX_PAGE, orig, val = 0x5151515151515151ull;
	struct iovec l = { &orig, 8 }, rm = { (void *)(uintptr_t)page, 8 };
	bool hit = false;
	int err;

	if (!tr || !v) {
		tap_ok(0, "hash tracker on the child: %s", strerror(errno));
		return;
	}
	err = collect_all(tr, page, &hit);
	if (!err)
		err = collect_all(tr, page, &hit);
	if (!err && process_vm_readv(pid, &l, 1, &rm, 1, 0) != 8)
		err = -errno;
	l.iov_base = &val;
	if (!err && process_vm_writev(pid, &l, 1, &rm, 1, 0) != 8)
		err = -errno;
	if (!err) {
		const PT_OPTS(pt_copy_opts, co, .tracker = tr);
		struct pt_copier *cp = pt_copier_create(pid, &co);
		struct rec r;

		err = cp ? copy_area(cp, v, info->anon, info->anon + LEN, &r) : -errno;
		if (cp)
			rec_free(&r);
		pt_copier_free(cp);
	}
	l.iov_base = &orig;
	if (!err && process_vm_writev(pid, &l, 1, &rm, 1, 0) != 8)
		err = -errno;
	if (!err)
		err = collect_all(tr, page, &hit);
	tap_ok(!err && hit, "hash tracker: a page written, copied and written back is reported "
	       "(note_copy) (%d)", err);
	pt_tracker_free(tr);
}

static void test_esrch(void)
{
	pid_t pid = fx_child(big_setup, info);
	struct pt_copier *cp = pid > 0 ? pt_copier_create(pid, NULL) : NULL;
	struct pt_target *t = pid > 0 ? pt_target_create(pid, NULL) : NULL;
	struct pt_vma *vmas = NULL;
	const struct pt_vma *v;
	size_t nv = 0;
	struct rec r;
	int err = -1;

	if (t && !pt_vmas_read(t, &vmas, &nv) && (v = find_vma(vmas, nv, info->big)) && cp) {
		rec_init(&r, info->big, info->big + BIG);
		r.kill_pid = pid;
		err = pt_copy_area(cp, v, info->big, info->big + BIG, on_piece, &r);
		if (r.kill_pid == 0)
			pid = 0;
		rec_free(&r);
	}
	tap_ok(err == -ESRCH, "target killed mid-copy: -ESRCH (%d)", err);
	pt_vmas_free(vmas);
	pt_target_free(t);
	pt_copier_free(cp);
	fx_child_kill(pid);
}

int main(void)
{
	const char *why = NULL;
	struct pt_target *t;
	struct pt_vma *vmas = NULL;
	size_t nv = 0;
	bool swap;
	pid_t pid;

	tap_plan(N_ARGS + N_AREA + N_OBJ + N_MODES + N_TRACK + N_ESRCH);
	swap = fx_swap(&why);
	if (!swap)
		tap_diag("no swap: %s", why ? why : "?");
	info = fx_map(sizeof(*info), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid = fx_child(child_setup, info);
	if (pid < 0)
		tap_bail("child: %s", strerror(errno));
	t = pt_target_create(pid, NULL);
	if (!t || pt_vmas_read(t, &vmas, &nv))
		tap_bail("target: %s", strerror(errno));

	test_args(pid, find_vma(vmas, nv, info->anon));
	test_areas(pid, vmas, nv, swap);
	test_objects(pid, vmas, nv, swap);
	test_modes(pid, vmas, nv, swap);
	test_tracker(pid, vmas, nv);

	pt_vmas_free(vmas);
	pt_target_free(t);
	fx_child_kill(pid);
	test_esrch();
	return tap_done();
}
