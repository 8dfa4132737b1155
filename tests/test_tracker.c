/* SPDX-License-Identifier: MIT */
/*
 * The tracker, scenario by scenario, for every backend this kernel has:
 * writes, new/unmapped/remapped/reprotected areas, MADV_DONTNEED,
 * swap-out and back, kernel writes (read(2), process_vm_writev), shared
 * memory written by another process and through write(2), a sparse
 * reservation, and leaving the target exactly as found.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/io_uring.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "tap.h"

#define NP 64

struct shared {
	int cmd;		/* command for the child, -1 = idle */
	int done;
	uintptr_t anon, anon2, shm, memfd_addr, sparse, merge, merge_away, ubuf;
	int uring_ok;		/* 1: ring set up with a registered buffer, -errno: not */
	uintptr_t thp;		/* 2 MiB aligned, 2 MiB */
	int collapse_err;	/* MADV_COLLAPSE: 0 or errno */
	int free_zero;		/* MADV_FREE'd pages that read zero after MADV_PAGEOUT */
	int memfd;
};

static struct shared *sh;

/* Pages reported in [a, a+n pages): returns how many of @want are present. */
static bool covered(const struct pt_dirty *d, size_t nd, uint64_t a, uint64_t len)
{
	uint64_t cur = a;

	for (size_t i = 0; i < nd && cur < a + len; i++) {
		if (d[i].end <= cur)
			continue;
		if (d[i].start > cur)
			return false;
		cur = d[i].end;
	}
	return cur >= a + len;
}

static uint64_t reported_in(const struct pt_dirty *d, size_t nd, uint64_t a, uint64_t len)
{
	uint64_t pages = 0;

	for (size_t i = 0; i < nd; i++) {
		uint64_t s = d[i].start > a ? d[i].start : a;
		uint64_t e = d[i].end < a + len ? d[i].end : a + len;
		if (s < e)
			pages += (e - s) / FX_PAGE;
	}
	return pages;
}

static size_t collect(struct pt_tracker *tr, struct pt_dirty *d, size_t cap, int *err)
{
	size_t n = 0;
	bool more = true;

	*err = 0;
	while (more && n < cap) {
		int r = pt_tracker_collect(tr, d + n, cap - n > 7 ? 7 : cap - n, &more);
		if (r < 0) {
			*err = r;
			break;
		}
		n += (size_t)r;
	}
	return n;
}

/* ---- a child target driven through the shared page ---- */

/* io_uring without liburing: one ring, one registered buffer, one read. */
static struct {
	int fd, file;
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail;
	struct io_uring_sqe *sqes;
} ur = { .fd = -1 };

static int uring_setup(void)
{
	struct io_uring_params p;
	char *buf = mmap(NULL, 2 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char path[] = "/tmp/pt-uring-XXXXXX", data[2 * FX_PAGE];

	memset(&p, 0, sizeof(p));
	ur.fd = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (ur.fd < 0 || buf == MAP_FAILED)
		return -errno;
	memset(buf, 1, 2 * FX_PAGE);
	size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	size_t sz = sq_sz > cq_sz ? sq_sz : cq_sz;	/* IORING_FEAT_SINGLE_MMAP (5.4+) */
	char *sq = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ur.fd,
			IORING_OFF_SQ_RING);
	ur.sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, ur.fd, IORING_OFF_SQES);
	if (sq == MAP_FAILED || ur.sqes == MAP_FAILED || !(p.features & IORING_FEAT_SINGLE_MMAP))
		return -EOPNOTSUPP;
	ur.sq_tail = (unsigned *)(sq + p.sq_off.tail);
	ur.sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	ur.sq_array = (unsigned *)(sq + p.sq_off.array);
	ur.cq_head = (unsigned *)(sq + p.cq_off.head);
	ur.cq_tail = (unsigned *)(sq + p.cq_off.tail);
	struct iovec iov = { buf, 2 * FX_PAGE };
	if (syscall(__NR_io_uring_register, ur.fd, IORING_REGISTER_BUFFERS, &iov, 1) < 0)
		return -errno;
	ur.file = mkstemp(path);
	if (ur.file < 0)
		return -errno;
	unlink(path);
	memset(data, 'u', sizeof(data));
	if (pwrite(ur.file, data, sizeof(data), 0) != (ssize_t)sizeof(data))
		return -EIO;
	sh->ubuf = (uintptr_t)buf;
	return 1;
}

/* IORING_OP_READ_FIXED of the file's 2 pages into the registered buffer. */
static void uring_read_fixed(void)
{
	unsigned tail = *ur.sq_tail, idx = tail & *ur.sq_mask;
	struct io_uring_sqe *e = &ur.sqes[idx];

	memset(e, 0, sizeof(*e));
	e->opcode = IORING_OP_READ_FIXED;
	e->fd = ur.file;
	e->addr = (uint64_t)sh->ubuf;
	e->len = 2 * FX_PAGE;
	e->buf_index = 0;
	ur.sq_array[idx] = idx;
	__atomic_store_n(ur.sq_tail, tail + 1, __ATOMIC_RELEASE);
	syscall(__NR_io_uring_enter, ur.fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
	__atomic_store_n(ur.cq_head, __atomic_load_n(ur.cq_tail, __ATOMIC_ACQUIRE),
			 __ATOMIC_RELEASE);
}

static void child_do(int cmd)
{
	char *a = (char *)sh->anon, *s = (char *)sh->shm;

	switch (cmd) {
	case 1:	/* write pages 3, 10..19 of anon */
		a[3 * FX_PAGE] = 1;
		for (int i = 10; i < 20; i++)
			a[i * FX_PAGE + 7] = (char)i;
		break;
	case 2:	/* MADV_DONTNEED pages 10..14 (content becomes zero) */
		madvise(a + 10 * FX_PAGE, 5 * FX_PAGE, MADV_DONTNEED);
		break;
	case 3:	/* a new mapping */
		sh->anon2 = (uintptr_t)mmap(NULL, 8 * FX_PAGE, PROT_READ | PROT_WRITE,
					    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		((char *)sh->anon2)[0] = 1;
		break;
	case 4:	/* mremap (move) the new mapping, write nothing */
		sh->anon2 = (uintptr_t)mremap((void *)sh->anon2, 8 * FX_PAGE, 16 * FX_PAGE,
					      MREMAP_MAYMOVE);
		break;
	case 5:	/* mprotect read-only then back, write one page */
		mprotect(a, NP * FX_PAGE, PROT_READ);
		mprotect(a, NP * FX_PAGE, PROT_READ | PROT_WRITE);
		a[30 * FX_PAGE] = 3;
		break;
	case 6: {	/* read(2) into pages 40..41: the kernel writes */
		int p[2];
		char buf[2 * FX_PAGE];

		memset(buf, 'k', sizeof(buf));
		if (pipe(p) == 0) {
			if (fork() == 0) {
				if (write(p[1], buf, sizeof(buf)) < 0)
					_exit(1);
				_exit(0);
			}
			size_t got = 0;
			while (got < sizeof(buf)) {
				ssize_t r = read(p[0], a + 40 * FX_PAGE + got, sizeof(buf) - got);
				if (r <= 0)
					break;
				got += (size_t)r;
			}
			close(p[0]);
			close(p[1]);
			wait(NULL);
		}
		break;
	}
	case 7:	/* write shared memory page 5 */
		s[5 * FX_PAGE] = 9;
		break;
	case 8: {	/* fork: the child writes shared page 6, the parent anon page 50 */
		pid_t c = fork();
		if (c == 0) {
			s[6 * FX_PAGE] = 7;
			_exit(0);
		}
		waitpid(c, NULL, 0);
		a[50 * FX_PAGE] = 5;
		break;
	}
	case 9:	/* write into the sparse reservation's RW island */
		((char *)sh->sparse)[(1ULL << 36) + 2 * FX_PAGE] = 1;
		break;
	case 10: /* swap out written pages 20..27 */
		fx_pageout(a + 20 * FX_PAGE, 8 * FX_PAGE);
		break;
	case 12: /* MADV_DONTNEED page 55, then read it: the zero page is mapped */
		madvise(a + 55 * FX_PAGE, FX_PAGE, MADV_DONTNEED);
		(void)*(volatile char *)(a + 55 * FX_PAGE);
		break;
	case 13: /* move the anon2 area again (its pages keep their uffd-wp bits), write page 2 */
		sh->anon2 = (uintptr_t)mremap((void *)sh->anon2, 16 * FX_PAGE, 16 * FX_PAGE,
					      MREMAP_MAYMOVE | MREMAP_FIXED,
					      mmap(NULL, 16 * FX_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
						   -1, 0));
		((char *)sh->anon2)[2 * FX_PAGE] = 13;
		break;
	case 14: /* write page 2 of the moved area again */
		((char *)sh->anon2)[2 * FX_PAGE + 1] = 14;
		break;
	case 15: { /* a 32-page area, every page with data */
		char *m = mmap(NULL, 32 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);
		for (int i = 0; i < 32; i++)
			m[i * FX_PAGE] = (char)(i + 1);
		sh->merge = (uintptr_t)m;
		break;
	}
	case 16: /* move its first half away */
		sh->merge_away = (uintptr_t)mremap((void *)sh->merge, 16 * FX_PAGE, 16 * FX_PAGE,
						   MREMAP_MAYMOVE | MREMAP_FIXED,
						   mmap(NULL, 16 * FX_PAGE, PROT_NONE,
							MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
		break;
	case 17: /* move it back: the halves merge into one VMA; write page 20 */
		mremap((void *)sh->merge_away, 16 * FX_PAGE, 16 * FX_PAGE, MREMAP_MAYMOVE | MREMAP_FIXED,
		       mmap((void *)sh->merge, 16 * FX_PAGE, PROT_NONE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
		((char *)sh->merge)[20 * FX_PAGE + 1] = 17;
		break;
	case 18: /* write pages 20 and 21 of the merged area */
		((char *)sh->merge)[20 * FX_PAGE + 2] = 18;
		((char *)sh->merge)[21 * FX_PAGE + 2] = 18;
		break;
	case 19: /* an io_uring with a registered buffer (pinned for good) */
		sh->uring_ok = uring_setup();
		break;
	case 20: /* the kernel writes the buffer through the pin: no page fault */
		uring_read_fixed();
		break;
	case 21: /* write anon pages 56..59 */
		for (int i = 56; i < 60; i++)
			a[i * FX_PAGE + 9] = 'f';
		break;
	case 22: /* MADV_FREE them, then reclaim: lazily freed pages become zero */
		madvise(a + 56 * FX_PAGE, 4 * FX_PAGE, MADV_FREE);
		fx_pageout(a + 56 * FX_PAGE, 4 * FX_PAGE);
		sh->free_zero = 0;
		for (int i = 56; i < 60; i++)
			sh->free_zero += *(volatile char *)(a + i * FX_PAGE + 9) == 0;
		break;
	case 23: { /* a 2 MiB aligned area of small pages, all with data */
		char *raw = mmap(NULL, 4u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				 -1, 0);
		char *h = (char *)(((uintptr_t)raw + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1));

		madvise(h, 2u << 20, MADV_NOHUGEPAGE);
		for (unsigned i = 0; i < (2u << 20) / FX_PAGE; i++)
			h[i * FX_PAGE] = (char)(i | 1);
		sh->thp = (uintptr_t)h;
		break;
	}
	case 24: /* collapse it into a THP (refused where uffd-wp bits are set) */
		madvise((void *)sh->thp, 2u << 20, MADV_HUGEPAGE);
		sh->collapse_err = madvise((void *)sh->thp, 2u << 20, 25 /* MADV_COLLAPSE */) ? errno : 0;
		break;
	case 25: /* write page 100 of it */
		((char *)sh->thp)[100 * FX_PAGE + 3] = 25;
		break;
	case 11: /* swap in by reading, write page 21 */
		for (int i = 20; i < 28; i++)
			(void)*(volatile char *)(a + i * FX_PAGE);
		a[21 * FX_PAGE] = 11;
		break;
	}
}

static void child_setup(void *unused)
{
	(void)unused;
	char *a = fx_map(NP * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < NP; i++)
		a[i * FX_PAGE] = (char)(i + 1);
	sh->anon = (uintptr_t)a;
	char *s = fx_map(16 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	memset(s, 1, 16 * FX_PAGE);
	sh->shm = (uintptr_t)s;
	int fd = memfd_create("pt-tracker", MFD_CLOEXEC);
	if (fd >= 0 && ftruncate(fd, 16 * FX_PAGE) == 0) {
		char *m = fx_map(16 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		memset(m, 2, 16 * FX_PAGE);
		sh->memfd_addr = (uintptr_t)m;
		sh->memfd = fd;
	}
	/* 128 GiB PROT_NONE reservation with an RW island in the middle */
	char *r = mmap(NULL, 1ULL << 37, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	mprotect(r + (1ULL << 36), 16 * FX_PAGE, PROT_READ | PROT_WRITE);
	sh->sparse = (uintptr_t)r;
}

/* The child runs commands from its pause loop: we poll the shared page. */
static void child_loop(void *unused)
{
	child_setup(unused);
	sh->cmd = -1;
	if (fork() == 0)
		_exit(0);	/* placeholder so wait() in cmd 6 has company */
	wait(NULL);
}

static pid_t start_child(void)
{
	pid_t pid;
	int p[2];
	char c;

	if (pipe(p))
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		child_loop(NULL);
		if (write(p[1], "r", 1) != 1)
			_exit(1);
		for (;;) {
			int cmd = __atomic_load_n(&sh->cmd, __ATOMIC_ACQUIRE);
			if (cmd > 0) {
				child_do(cmd);
				__atomic_store_n(&sh->cmd, -1, __ATOMIC_RELEASE);
				__atomic_add_fetch(&sh->done, 1, __ATOMIC_RELEASE);
			}
			usleep(200);
		}
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1)
		pid = -1;
	close(p[0]);
	return pid;
}

static void run_cmd(int cmd)
{
	int done = __atomic_load_n(&sh->done, __ATOMIC_ACQUIRE);

	__atomic_store_n(&sh->cmd, cmd, __ATOMIC_RELEASE);
	while (__atomic_load_n(&sh->done, __ATOMIC_ACQUIRE) == done)
		usleep(100);
}

/* Subtests each function prints, skips included: the plan is fixed. */
#define N_SCENARIO 26
#define N_SELF_BASIC 2
#define N_NOTE_COPY(b, shared) ((b) == PT_TRACK_HASH || (shared) ? 5 : 4)
#define N_REGROW(note) ((note) ? 1 : 0)	/* without the note: shown, not required */

static void scenario(enum pt_track_backend b)
{
	static struct pt_dirty d[65536];
	struct pt_tracker_opts o = { .sz = sizeof(o), .backend = b };
	const char *bn = pt_track_backend_name(b);
	struct pt_tracker *tr;
	pid_t pid = start_child();
	int err;
	size_t n;

	if (pid < 0) {
		tap_ok(0, "%s: start child", bn);
		tap_skip_n(N_SCENARIO - 1, "no child", "%s: tracker scenarios", bn);
		return;
	}
	int fds_before = fx_uffd_fds(pid);
	const char *why = NULL;

	if (!fx_track_backend_usable(b, true, &why)) {
		tap_skip_n(N_SCENARIO, why, "%s: tracker scenarios (backend not usable here)", bn);
		fx_child_kill(pid);
		return;
	}
	tr = pt_tracker_create(pid, &o);
	if (!tr) {
		tap_ok(0, "%s: create tracker (the probes say it is usable): %s", bn, strerror(errno));
		tap_skip_n(N_SCENARIO - 1, "no tracker", "%s: tracker scenarios", bn);
		fx_child_kill(pid);
		return;
	}
	tap_ok(pt_tracker_backend(tr) == b, "%s: tracker created on a child", bn);

	n = collect(tr, d, 65536, &err);
	tap_ok(!err && reported_in(d, n, sh->anon, NP * FX_PAGE) == 0,
	       "%s: nothing written since arming -> anon area clean (%zu regions)", bn, n);

	run_cmd(1);
	n = collect(tr, d, 65536, &err);
	tap_ok(!err && covered(d, n, sh->anon + 3 * FX_PAGE, FX_PAGE) &&
		       covered(d, n, sh->anon + 10 * FX_PAGE, 10 * FX_PAGE),
	       "%s: written pages reported", bn);
	tap_diag("%s: %llu pages reported in anon for 11 written", bn,
		 (unsigned long long)reported_in(d, n, sh->anon, NP * FX_PAGE));

	run_cmd(2);
	n = collect(tr, d, 65536, &err);
	tap_ok(!err && covered(d, n, sh->anon + 10 * FX_PAGE, 5 * FX_PAGE),
	       "%s: MADV_DONTNEED'd pages reported (content became zero)", bn);

	run_cmd(12);
	n = collect(tr, d, 65536, &err);
	tap_ok(!err && covered(d, n, sh->anon + 55 * FX_PAGE, FX_PAGE),
	       "%s: a dropped page read back as the zero page is reported", bn);

	run_cmd(3);
	n = collect(tr, d, 65536, &err);
	tap_ok(!err && covered(d, n, sh->anon2, 8 * FX_PAGE), "%s: a new area is reported whole", bn);

	run_cmd(4);
	n = collect(tr, d, 65536, &err);
	tap_ok(!err && covered(d, n, sh->anon2, 16 * FX_PAGE),
	       "%s: a moved and grown area is reported whole", bn);

	/* fill the area so moved pages carry uffd-wp bits, then move it */
	for (int i = 0; i < 16; i++) {
		char c = 1;
		struct iovec l = { &c, 1 }, r2 = { (void *)(sh->anon2 + i * FX_PAGE), 1 };
		if (process_vm_writev(pid, &l, 1, &r2, 1, 0) != 1)
			break;
	}
	n = collect(tr, d, 65536, &err);
	run_cmd(13);
	n = collect(tr, d, 65536, &err);
	tap_ok(!err && covered(d, n, sh->anon2, 16 * FX_PAGE), "%s: an area moved again is reported whole",
	       bn);
	run_cmd(14);
	n = collect(tr, d, 65536, &err);
	tap_ok(!err && covered(d, n, sh->anon2 + 2 * FX_PAGE, FX_PAGE),
	       "%s: a later write to an area moved again is reported", bn);

	/*
	 * An area moved back next to the rest of its old VMA merges with it,
	 * and (no UFFD_FEATURE_EVENT_REMAP) the merged VMA loses its uffd
	 * registration while the unmoved half keeps its uffd-wp bits: its
	 * writes keep the bit too, until the area is registered again.
	 */
	run_cmd(15);
	n = collect(tr, d, 65536, &err);
	run_cmd(16);
	n = collect(tr, d, 65536, &err);
	run_cmd(17);
	n = collect(tr, d, 65536, &err);
	tap_ok(!err && covered(d, n, sh->merge, 16 * FX_PAGE) &&
		       covered(d, n, sh->merge + 20 * FX_PAGE, FX_PAGE),
	       "%s: an area moved back and merged with its unmoved half: both reported", bn);
	run_cmd(18);
	n = collect(tr, d, 65536, &err);
	tap_ok(!err && covered(d, n, sh->merge + 20 * FX_PAGE, 2 * FX_PAGE),
	       "%s: later writes to the unmoved half of a merged area reported", bn);

	/* MADV_FREE: the content becomes zero once reclaimed */
	run_cmd(21);
	n = collect(tr, d, 65536, &err);
	run_cmd(22);
	n = collect(tr, d, 65536, &err);
	if (sh->free_zero == 4)
		tap_ok(!err && covered(d, n, sh->anon + 56 * FX_PAGE, 4 * FX_PAGE),
		       "%s: MADV_FREE'd pages reclaimed (now zero) reported", bn);
	else
		tap_skip("MADV_PAGEOUT did not reclaim the MADV_FREE'd pages here",
			 "%s: MADV_FREE'd pages reclaimed (%d of 4 zero)", bn, sh->free_zero);

	/* THP collapse of a tracked area, then a write */
	run_cmd(23);
	n = collect(tr, d, 65536, &err);
	run_cmd(24);
	n = collect(tr, d, 65536, &err);
	run_cmd(25);
	n = collect(tr, d, 65536, &err);
	tap_ok(!err && covered(d, n, sh->thp + 100 * FX_PAGE, FX_PAGE),
	       "%s: a write after MADV_COLLAPSE of a tracked area reported (collapse: %s)", bn,
	       sh->collapse_err ? strerror(sh->collapse_err) : "done");

	/* io_uring fixed buffers: written through a long-term pin, never a fault */
	run_cmd(19);
	n = collect(tr, d, 65536, &err);
	if (sh->uring_ok == 1) {
		n = collect(tr, d, 65536, &err);	/* a quiet round */
		run_cmd(20);
		char got = 0;
		struct iovec gl = { &got, 1 }, gr = { (void *)(sh->ubuf + FX_PAGE), 1 };
		ssize_t gr_n = process_vm_readv(pid, &gl, 1, &gr, 1, 0);
		n = collect(tr, d, 65536, &err);
		tap_ok(gr_n == 1 && got == 'u' && !err && covered(d, n, sh->ubuf, 2 * FX_PAGE),
		       "%s: io_uring READ_FIXED into a registered buffer reported (read '%c')", bn,
		       got ? got : '?');
	} else {
		tap_skip(strerror(-sh->uring_ok), "%s: io_uring registered buffer", bn);
	}

	run_cmd(5);
	n = collect(tr, d, 65536, &err);
	tap_ok(!err && covered(d, n, sh->anon + 30 * FX_PAGE, FX_PAGE),
	       "%s: write after mprotect R -> RW reported", bn);

	run_cmd(6);
	n = collect(tr, d, 65536, &err);
	tap_ok(!err && covered(d, n, sh->anon + 40 * FX_PAGE, 2 * FX_PAGE),
	       "%s: read(2) into the target's buffer reported", bn);

	char buf[FX_PAGE];
	memset(buf, 'v', sizeof(buf));
	struct iovec l = { buf, sizeof(buf) }, r = { (void *)(sh->anon + 45 * FX_PAGE), FX_PAGE };
	ssize_t w = process_vm_writev(pid, &l, 1, &r, 1, 0);
	n = collect(tr, d, 65536, &err);
	tap_ok(w == FX_PAGE && !err && covered(d, n, sh->anon + 45 * FX_PAGE, FX_PAGE),
	       "%s: process_vm_writev into the target reported", bn);

	run_cmd(7);
	n = collect(tr, d, 65536, &err);
	tap_ok(!err && covered(d, n, sh->shm + 5 * FX_PAGE, FX_PAGE), "%s: shared memory write reported", bn);

	/* another process (this one) writes the memfd through write(2) */
	char mpath[64];
	snprintf(mpath, sizeof(mpath), "/proc/%d/fd/%d", (int)pid, sh->memfd);
	int mfd = open(mpath, O_RDWR | O_CLOEXEC);
	ssize_t pw = mfd >= 0 ? pwrite(mfd, buf, FX_PAGE, 3 * FX_PAGE) : -1;
	n = collect(tr, d, 65536, &err);
	tap_ok(pw == FX_PAGE && !err && covered(d, n, sh->memfd_addr + 3 * FX_PAGE, FX_PAGE),
	       "%s: write(2) on the memfd by another process reported", bn);
	if (mfd >= 0)
		close(mfd);

	run_cmd(8);
	n = collect(tr, d, 65536, &err);
	tap_ok(!err && covered(d, n, sh->shm + 6 * FX_PAGE, FX_PAGE) &&
		       covered(d, n, sh->anon + 50 * FX_PAGE, FX_PAGE),
	       "%s: fork in the target: its child's shared write and the parent's write reported", bn);

	run_cmd(9);
	n = collect(tr, d, 65536, &err);
	tap_ok(!err && covered(d, n, sh->sparse + (1ULL << 36) + 2 * FX_PAGE, FX_PAGE),
	       "%s: write in a sparse 128 GiB reservation reported", bn);

	if (fx_swap(&why)) {
		n = collect(tr, d, 65536, &err);	/* quiet round */
		run_cmd(10);
		n = collect(tr, d, 65536, &err);
		run_cmd(11);
		n = collect(tr, d, 65536, &err);
		tap_ok(!err && covered(d, n, sh->anon + 21 * FX_PAGE, FX_PAGE),
		       "%s: page written after swap-out and swap-in reported", bn);
	} else {
		tap_skip(why, "%s: swap-out and back", bn);
	}

	struct pt_tracker_stats st = { .sz = sizeof(st) };
	int serr = pt_tracker_stats(tr, &st);
	tap_ok(serr == 0 && st.rounds >= 12, "%s: stats count rounds (%llu)", bn,
	       (unsigned long long)st.rounds);
	tap_diag("%s: max pause imposed on the target %.1f us, last collect %.1f us, %llu fallback areas",
		 bn, st.pause_ns_max / 1e3, st.collect_ns / 1e3, (unsigned long long)st.areas_fallback);

	pt_tracker_free(tr);
	tap_ok(fx_uffd_fds(pid) == fds_before, "%s: no userfaultfd left in the target after free", bn);
	tap_ok(fx_uffd_vmas(pid) == 0, "%s: no area left registered with a userfaultfd after free", bn);
	/* the target still works */
	run_cmd(1);
	tap_ok(kill(pid, 0) == 0, "%s: target alive and responsive after free", bn);
	fx_child_kill(pid);
}

static void self_basic(void)
{
	struct pt_dirty d[64];
	struct pt_tracker *tr;
	char *p = fx_map(NP * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct pt_tracker_opts o = { .sz = sizeof(o), .start = (uintptr_t)p,
				     .end = (uintptr_t)p + NP * FX_PAGE };
	bool more;
	int n;

	memset(p, 1, NP * FX_PAGE);
	tr = pt_tracker_create(0, &o);
	if (!tr) {
		tap_ok(0, "self: create tracker: %s", strerror(errno));
		tap_skip_n(N_SELF_BASIC - 1, "no tracker", "self: collect");
		return;
	}
	p[5 * FX_PAGE] = 2;
	n = pt_tracker_collect(tr, d, 64, &more);
	tap_ok(n == 1 && !more && d[0].start == (uintptr_t)p + 5 * FX_PAGE &&
		       d[0].end == (uintptr_t)p + 6 * FX_PAGE,
	       "self (%s): exactly the written page reported in a restricted range",
	       pt_track_backend_name(pt_tracker_backend(tr)));
	n = pt_tracker_collect(tr, d, 64, &more);
	tap_ok(n == 0 && !more, "self: a quiet round reports nothing");
	pt_tracker_free(tr);
	munmap(p, NP * FX_PAGE);
}

/*
 * A copier that reads a reported page after the collect sees content the
 * tracker never hashed.  Page 0 is written B, collected, then C while it
 * is copied, then B again: the next round must report it when the copy
 * was noted (pt_tracker_note_copy), since the copy holds C.  Page 1 goes
 * the same way without a note: content B == B, not reported (that is the
 * hash model, doc/hashing.md).  @shared: a MAP_SHARED area, which the
 * page-table backends hash too.
 */
static void self_note_copy(enum pt_track_backend b, bool shared)
{
	static char copy[FX_PAGE];
	struct pt_dirty d[64];
	const char *bn = pt_track_backend_name(b);
	char *p = fx_map(4 * FX_PAGE, PROT_READ | PROT_WRITE,
			 (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
	struct pt_tracker_opts o = { .sz = sizeof(o), .backend = b, .start = (uintptr_t)p,
				     .end = (uintptr_t)p + 4 * FX_PAGE };
	const char *what = shared ? "shared" : "private", *why = NULL;
	int checks = N_NOTE_COPY(b, shared);
	struct pt_tracker *tr;
	bool more;
	int n;

	memset(p, 'A', 4 * FX_PAGE);
	if (!fx_track_backend_usable(b, false, &why)) {
		tap_skip_n(checks, why, "%s: note_copy on %s memory", bn, what);
		munmap(p, 4 * FX_PAGE);
		return;
	}
	tr = pt_tracker_create(0, &o);
	if (!tr) {
		tap_ok(0, "%s: create tracker (the probes say it is usable): %s", bn, strerror(errno));
		tap_skip_n(checks - 1, "no tracker", "%s: note_copy on %s memory", bn, what);
		munmap(p, 4 * FX_PAGE);
		return;
	}
	p[0] = p[FX_PAGE] = 'B';
	n = pt_tracker_collect(tr, d, 64, &more);
	tap_ok(n >= 1 && covered(d, (size_t)n, (uintptr_t)p, 2 * FX_PAGE),
	       "%s (%s): the written pages reported", bn, what);
	p[0] = p[FX_PAGE] = 'C';		/* changed while being copied */
	memcpy(copy, p, FX_PAGE);
	tap_ok(pt_tracker_note_copy(tr, (uintptr_t)p, copy, FX_PAGE) == 0,
	       "%s (%s): note_copy accepted", bn, what);
	p[0] = p[FX_PAGE] = 'B';		/* back to what the collect read */
	n = pt_tracker_collect(tr, d, 64, &more);
	tap_ok(n >= 1 && covered(d, (size_t)n, (uintptr_t)p, FX_PAGE),
	       "%s (%s): a page back to the collected content after the copy read it is "
	       "reported again", bn, what);
	if (b == PT_TRACK_HASH || shared)
		tap_ok(n >= 0 && !covered(d, (size_t)n, (uintptr_t)p + FX_PAGE, FX_PAGE),
		       "%s (%s): without a note, the same A->B->A page is not (content model)",
		       bn, what);
	tap_ok(pt_tracker_note_copy(tr, (uintptr_t)p + 1, copy, FX_PAGE) == -EINVAL &&
		       pt_tracker_note_copy(tr, (uintptr_t)p, copy, 100) == -EINVAL &&
		       pt_tracker_note_copy(NULL, (uintptr_t)p, copy, FX_PAGE) == -EINVAL,
	       "%s (%s): note_copy refuses unaligned ranges and NULL", bn, what);
	pt_tracker_free(tr);
	munmap(p, 4 * FX_PAGE);
}

/*
 * A page that had no data at a collect, is written and copied right after
 * it, then unmapped and its address covered again by the area growing
 * back in place (mremap) before the next collect: no page table keeps a
 * trace of the write, and the copy holds bytes the page no longer has.
 * With the copy noted (pt_tracker_note_copy), the next collect reports
 * it (as zeroed).  Without the note it is not: shown, not required.
 */
static void self_regrow(enum pt_track_backend b, bool note)
{
	static char copy[FX_PAGE];
	struct pt_dirty d[64];
	const char *bn = pt_track_backend_name(b);
	char *p = fx_map(8 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct pt_tracker_opts o = { .sz = sizeof(o), .backend = b, .start = (uintptr_t)p,
				     .end = (uintptr_t)p + 8 * FX_PAGE };
	const char *how = note ? "noted" : "not noted", *why = NULL;
	struct pt_tracker *tr;
	bool more;
	int n;

	memset(p, 'A', 8 * FX_PAGE);
	if (!fx_track_backend_usable(b, false, &why)) {
		tap_skip_n(N_REGROW(note), why, "%s: a copied page unmapped and mapped again is "
			   "reported (copy %s)", bn, how);
		munmap(p, 8 * FX_PAGE);
		return;
	}
	tr = pt_tracker_create(0, &o);
	if (!tr) {
		if (N_REGROW(note))
			tap_ok(0, "%s: create tracker (the probes say it is usable): %s", bn,
			       strerror(errno));
		else
			tap_diag("%s: copy not noted: no tracker: %s", bn, strerror(errno));
		munmap(p, 8 * FX_PAGE);
		return;
	}
	madvise(p + 6 * FX_PAGE, FX_PAGE, MADV_DONTNEED);
	n = pt_tracker_collect(tr, d, 64, &more);
	bool dropped = n >= 1 && covered(d, (size_t)n, (uintptr_t)p + 6 * FX_PAGE, FX_PAGE);

	memset(p + 6 * FX_PAGE, 'W', FX_PAGE);	/* after the collect, before the copy */
	memcpy(copy, p + 6 * FX_PAGE, FX_PAGE);
	if (note)
		pt_tracker_note_copy(tr, (uintptr_t)p + 6 * FX_PAGE, copy, FX_PAGE);
	munmap(p + 4 * FX_PAGE, 4 * FX_PAGE);
	void *q = mremap(p, 4 * FX_PAGE, 8 * FX_PAGE, 0);	/* in place */

	if (q != p) {
		if (N_REGROW(note))
			tap_skip("mremap could not grow the area in place", "%s: a copied page "
				 "unmapped and mapped again is reported (copy %s)", bn, how);
		else
			tap_diag("%s: copy not noted: mremap could not grow the area in place", bn);
		goto out;
	}
	n = pt_tracker_collect(tr, d, 64, &more);
	bool again = n >= 1 && covered(d, (size_t)n, (uintptr_t)p + 6 * FX_PAGE, FX_PAGE);

	if (note)
		tap_ok(dropped && again && p[6 * FX_PAGE] == 0,
		       "%s: a page written after a collect, copied, unmapped and mapped again by "
		       "the area growing back is reported (copy noted; dropped %d, again %d)", bn,
		       dropped, again);
	else
		tap_diag("%s: the same page with the copy not noted: %s", bn,
			 again ? "reported" : "not reported (no trace in the page tables)");
out:
	pt_tracker_free(tr);
	munmap(p, 8 * FX_PAGE);
}

/* ---- holes of new areas (PT_DIRTY_HOLE) ---- */

#define N_HOLES 6
#define HOLE_A 64	/* pages: a PROT_NONE reservation */
#define HOLE_B 64	/* pages: calloc-like, never touched but 4 pages */

/* Flags of the region of @d[0..nd) holding @a, or -1 when not reported. */
static long flags_at(const struct pt_dirty *d, size_t nd, uint64_t a)
{
	for (size_t i = 0; i < nd; i++)
		if (d[i].start <= a && a < d[i].end)
			return (long)d[i].flags;
	return -1;
}

/*
 * Pages of [a, a + np pages) reported with PT_DIRTY_NEW; of those, how many
 * carry PT_DIRTY_HOLE (*@holes).
 */
static uint64_t new_in(const struct pt_dirty *d, size_t nd, uint64_t a, uint64_t np,
		       uint64_t *holes)
{
	uint64_t n = 0;

	*holes = 0;
	for (uint64_t i = 0; i < np; i++) {
		long f = flags_at(d, nd, a + i * FX_PAGE);

		if (f >= 0 && (f & PT_DIRTY_NEW)) {
			n++;
			*holes += (f & PT_DIRTY_HOLE) != 0;
		}
	}
	return n;
}

/*
 * Areas that appear while tracked: a PROT_NONE reservation (a glibc
 * arena), a never-touched read-write area of which 4 pages are written
 * (calloc), a private file mapping.  The first round reports them whole
 * (PT_DIRTY_NEW), the pages without data as PT_DIRTY_HOLE, the written
 * ones and the file's never (a file page that is not resident reads the
 * file, not zeros).  A write into a hole afterwards is reported by the
 * next round like any other.  The calling process, so it can write.
 */
static void self_holes(enum pt_track_backend b)
{
	static struct pt_dirty d[4096];
	const char *bn = pt_track_backend_name(b), *why = NULL;
	size_t span = (HOLE_A + 1 + HOLE_B + 1 + 4) * FX_PAGE;
	char *base = fx_map(span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct pt_tracker_opts o = { .sz = sizeof(o), .backend = b, .start = (uintptr_t)base,
				     .end = (uintptr_t)base + span };
	struct pt_tracker_stats st = { .sz = sizeof(st) };
	char *a = base, *bb = base + (HOLE_A + 1) * FX_PAGE, *f = bb + (HOLE_B + 1) * FX_PAGE;
	uint64_t holes, n_new, bad = 0;
	struct pt_tracker *tr;
	int err, fd;
	size_t n;

	if (!fx_track_backend_usable(b, false, &why)) {
		tap_skip_n(N_HOLES, why, "%s: holes of new areas (backend not usable here)", bn);
		munmap(base, span);
		return;
	}
	munmap(base, span);	/* the range is tracked empty; the areas come after arming */
	tr = pt_tracker_create(0, &o);
	if (!tr) {
		tap_ok(0, "%s: create tracker (the probes say it is usable): %s", bn, strerror(errno));
		tap_skip_n(N_HOLES - 1, "no tracker", "%s: holes of new areas", bn);
		return;
	}
	tap_ok(1, "%s: tracker on an empty range", bn);
	fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (mmap(a, HOLE_A * FX_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		 -1, 0) != a ||
	    mmap(bb, HOLE_B * FX_PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != bb ||
	    fd < 0 || mmap(f, 4 * FX_PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, 0) != f)
		tap_bail("%s: cannot map the new areas: %s", bn, strerror(errno));
	close(fd);
	bb[3 * FX_PAGE] = 1;
	memset(bb + 10 * FX_PAGE, 2, 3 * FX_PAGE);
	if (f[FX_PAGE] == 0x7f)	/* read: the file's page is resident, still not a hole */
		tap_diag("%s: the executable's page 1 starts with 0x7f", bn);

	n = collect(tr, d, 4096, &err);
	n_new = new_in(d, n, (uintptr_t)a, HOLE_A, &holes);
	tap_ok(!err && n_new == HOLE_A && holes == HOLE_A,
	       "%s: a new PROT_NONE area is reported whole, every page as a hole (%" PRIu64
	       " new, %" PRIu64 " holes of %d)", bn, n_new, holes, HOLE_A);
	n_new = new_in(d, n, (uintptr_t)bb, HOLE_B, &holes);
	for (int i = 0; i < HOLE_B; i++) {
		long fl = flags_at(d, n, (uintptr_t)bb + (uint64_t)i * FX_PAGE);
		bool data = i == 3 || (i >= 10 && i < 13);

		bad += fl < 0 || (data == ((fl & PT_DIRTY_HOLE) != 0));
	}
	tap_ok(!err && n_new == HOLE_B && holes == HOLE_B - 4 && !bad,
	       "%s: a never-touched new area: its untouched pages are holes, the 4 written ones "
	       "are not (%" PRIu64 " new, %" PRIu64 " holes, %" PRIu64 " pages wrong)", bn, n_new,
	       holes, bad);
	n_new = new_in(d, n, (uintptr_t)f, 4, &holes);
	tap_ok(!err && n_new == 4 && holes == 0,
	       "%s: a new private file mapping is reported whole, without holes (%" PRIu64
	       " new, %" PRIu64 " holes)", bn, n_new, holes);
	int sterr = pt_tracker_stats(tr, &st);	/* before the arguments below are read */

	tap_ok(sterr == 0 && st.pages_hole == HOLE_A + HOLE_B - 4,
	       "%s: stats: pages_hole %" PRIu64 " (want %d), pages_new %" PRIu64, bn,
	       st.pages_hole, HOLE_A + HOLE_B - 4, st.pages_new);

	/* writes into holes after the collect that reported them */
	bb[40 * FX_PAGE] = 3;
	mprotect(a, HOLE_A * FX_PAGE, PROT_READ | PROT_WRITE);
	a[7 * FX_PAGE] = 4;
	n = collect(tr, d, 4096, &err);
	long f1 = flags_at(d, n, (uintptr_t)bb + 40 * FX_PAGE);
	long f2 = flags_at(d, n, (uintptr_t)a + 7 * FX_PAGE);

	tap_ok(!err && f1 >= 0 && f2 >= 0 && !(f1 & PT_DIRTY_HOLE) && !(f2 & PT_DIRTY_HOLE),
	       "%s: writes into holes after the round are reported by the next one, as data "
	       "(flags %#lx, %#lx)", bn, f1, f2);
	pt_tracker_free(tr);
	munmap(base, span);
}

/* ---- the layout a round tracked (pt_tracker_vmas, pt_tracker_area) ---- */

/* Is every page of @d[0..nd) inside an area of @v[0..nv)?  Both sorted. */
static bool in_layout(const struct pt_dirty *d, size_t nd, const struct pt_vma *v, size_t nv,
		      uint64_t *outside)
{
	size_t k = 0;

	*outside = 0;
	for (size_t i = 0; i < nd; i++) {
		uint64_t s = d[i].start;

		while (s < d[i].end) {
			while (k < nv && v[k].end <= s)
				k++;
			if (k == nv || v[k].start > s) {
				uint64_t e = k < nv && v[k].start < d[i].end ? v[k].start : d[i].end;

				*outside += (e - s) / FX_PAGE;
				s = e;
				continue;
			}
			s = v[k].end;
		}
	}
	return *outside == 0;
}

/* The area of @v holding [a, a+len) whole, or NULL. */
static const struct pt_vma *area_of(const struct pt_vma *v, size_t nv, uint64_t a, uint64_t len)
{
	for (size_t i = 0; i < nv; i++)
		if (v[i].start <= a && a + len <= v[i].end)
			return &v[i];
	return NULL;
}

static bool any_overlap(const struct pt_vma *v, size_t nv, uint64_t a, uint64_t len)
{
	for (size_t i = 0; i < nv; i++)
		if (v[i].start < a + len && a < v[i].end)
			return true;
	return false;
}

static bool same_layout(const struct pt_vma *a, size_t na, const struct pt_vma *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].start != b[i].start || a[i].end != b[i].end || a[i].kind != b[i].kind ||
		    a[i].inode != b[i].inode || strcmp(a[i].path, b[i].path))
			return false;
	return true;
}

/*
 * The calling process: the layout after a collect holds every page it
 * reported, shows an mmap and a munmap done between rounds, stays the
 * same while a round is handed out in several calls, and says which
 * areas are hashed and why.
 */
/* subtests of self_layout(), skips included */
#define N_SELF_LAYOUT 9

static void self_layout(enum pt_track_backend b)
{
	static struct pt_dirty d[4096];
	const char *bn = pt_track_backend_name(b);
	struct pt_tracker_opts o = { .sz = sizeof(o), .backend = b };
	struct pt_track_area ta = { .sz = sizeof(ta) };
	struct pt_vma *v = NULL, *v2 = NULL;
	size_t nv = 0, nv2 = 0, n;
	const char *why = NULL;
	uint64_t outside;
	struct pt_tracker *tr;
	bool more, stable = true;
	int err, r;

	/* PROT_NONE fences keep x, y and s areas of their own */
	char *x = fx_map(10 * FX_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *s = fx_map(4 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	mprotect(x + FX_PAGE, 8 * FX_PAGE, PROT_READ | PROT_WRITE);
	x += FX_PAGE;
	memset(x, 1, 8 * FX_PAGE);
	memset(s, 1, 4 * FX_PAGE);
	if (!fx_track_backend_usable(b, false, &why)) {
		tap_skip_n(N_SELF_LAYOUT, why, "%s: layout of the last round", bn);
		goto unmap;
	}
	tr = pt_tracker_create(0, &o);
	if (!tr) {
		tap_ok(0, "%s: create tracker for the layout tests (the probes say it is usable): %s",
		       bn, strerror(errno));
		tap_skip_n(N_SELF_LAYOUT - 1, "no tracker", "%s: layout of the last round", bn);
		goto unmap;
	}
	err = pt_tracker_vmas(tr, &v, &nv);
	tap_ok(!err && area_of(v, nv, (uintptr_t)x, 8 * FX_PAGE) && nv > 0,
	       "%s: before any collect, the layout is the armed one (x in it, %zu areas)", bn, nv);
	pt_vmas_free(v);
	v = NULL;

	/* an area mapped and one unmapped between rounds */
	char *y = fx_map(10 * FX_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mprotect(y + FX_PAGE, 8 * FX_PAGE, PROT_READ | PROT_WRITE);
	y += FX_PAGE;
	memset(y, 2, 8 * FX_PAGE);
	munmap(x - FX_PAGE, 10 * FX_PAGE);
	s[FX_PAGE] = 2;
	n = collect(tr, d, 4096, &err);
	r = pt_tracker_vmas(tr, &v, &nv);
	tap_ok(!err && !r && in_layout(d, n, v, nv, &outside),
	       "%s: every page of the collect is in an area of the layout (%zu regions, %zu areas, "
	       "%llu pages outside)", bn, n, nv, (unsigned long long)(r ? 0 : outside));
	const struct pt_vma *ya = r ? NULL : area_of(v, nv, (uintptr_t)y, 8 * FX_PAGE);
	tap_ok(ya && ya->kind == PT_VMA_ANON && !any_overlap(v, nv, (uintptr_t)x, 8 * FX_PAGE),
	       "%s: the layout shows the area mapped and not the one unmapped between rounds", bn);
	tap_ok(!err && covered(d, n, (uintptr_t)y, 8 * FX_PAGE) &&
		       covered(d, n, (uintptr_t)s + FX_PAGE, FX_PAGE),
	       "%s: the new area and the shared write reported", bn);

	/* how each area was tracked */
	r = pt_tracker_area(tr, (uintptr_t)s + FX_PAGE, &ta);
	if (b == PT_TRACK_HASH)
		tap_ok(r == 0 && ta.method == PT_AREA_BACKEND && ta.reason == PT_AREA_REASON_NONE,
		       "%s: shared area tracked by the (hash) backend", bn);
	else
		tap_ok(r == 0 && ta.method == PT_AREA_HASHED && ta.reason == PT_AREA_REASON_SHARED &&
			       ta.start == (uintptr_t)s && ta.end == (uintptr_t)s + 4 * FX_PAGE,
		       "%s: shared area hashed, reason %s", bn,
		       pt_area_reason_name((enum pt_area_reason)ta.reason));
	r = pt_tracker_area(tr, (uintptr_t)y + 3 * FX_PAGE, &ta);
	tap_ok(r == 0 && ta.method == PT_AREA_BACKEND && ta.reason == PT_AREA_REASON_NONE &&
		       ta.start == (uintptr_t)y && ta.end == (uintptr_t)y + 8 * FX_PAGE,
	       "%s: private area tracked by the backend", bn);
	struct pt_track_area small = { .sz = sizeof(size_t) + 2 * sizeof(uint64_t) };
	tap_ok(pt_tracker_area(tr, (uintptr_t)x, &ta) == -ENOENT &&
		       pt_tracker_area(tr, (uintptr_t)y, NULL) == -EINVAL &&
		       pt_tracker_area(tr, (uintptr_t)y, &(struct pt_track_area){ .sz = 0 }) == -EINVAL &&
		       pt_tracker_area(tr, (uintptr_t)y, &small) == 0 &&
		       small.start == (uintptr_t)y && small.method == 0 &&
		       pt_tracker_vmas(NULL, &v2, &nv2) == -EINVAL,
	       "%s: pt_tracker_area: -ENOENT outside the layout, -EINVAL, an older (smaller) struct "
	       "filled up to its size", bn);
	pt_vmas_free(v);
	v = NULL;

	/* a round handed out in several calls keeps one layout */
	for (int i = 0; i < 8; i++)
		y[i * FX_PAGE] = (char)(i & 1 ? 3 : 4);
	for (int i = 0; i < 8; i += 2)
		madvise(y + i * FX_PAGE, FX_PAGE, MADV_DONTNEED);	/* many small regions */
	n = 0;
	more = true;
	while (more) {
		r = pt_tracker_collect(tr, d + n, 1, &more);
		if (r < 0)
			break;
		n += (size_t)r;
		if (n == 1)
			r = pt_tracker_vmas(tr, &v, &nv);
		/* an munmap while the round is handed out leaves its layout alone */
		if (n == 1 && !r)
			munmap(y + 7 * FX_PAGE, FX_PAGE);
		if (!v || pt_tracker_vmas(tr, &v2, &nv2) || !same_layout(v, nv, v2, nv2))
			stable = false;
		pt_vmas_free(v2);
		v2 = NULL;
	}
	tap_ok(r >= 0 && n > 1 && stable && v && in_layout(d, n, v, nv, &outside),
	       "%s: while a round is handed out one region at a time (%zu calls), the layout "
	       "stays that of the round and holds its pages", bn, n);
	pt_vmas_free(v);
	v = NULL;
	n = collect(tr, d, 4096, &err);
	r = pt_tracker_vmas(tr, &v, &nv);
	tap_ok(!err && !r && !area_of(v, nv, (uintptr_t)y, 8 * FX_PAGE) &&
		       area_of(v, nv, (uintptr_t)y, 7 * FX_PAGE),
	       "%s: the next round's layout shows the munmap", bn);
	pt_vmas_free(v);
	pt_tracker_free(tr);
	munmap(y - FX_PAGE, 10 * FX_PAGE);
	munmap(s, 4 * FX_PAGE);
	return;
unmap:
	munmap(x - FX_PAGE, 10 * FX_PAGE);
	munmap(s, 4 * FX_PAGE);
}

/* A restricted range: the layout is clipped to it. */
static void self_layout_range(void)
{
	char *p = fx_map(16 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct pt_tracker_opts o = { .sz = sizeof(o), .start = (uintptr_t)p + 4 * FX_PAGE,
				     .end = (uintptr_t)p + 12 * FX_PAGE };
	struct pt_tracker *tr;
	struct pt_vma *v = NULL;
	size_t nv = 0;

	memset(p, 1, 16 * FX_PAGE);
	tr = pt_tracker_create(0, &o);
	if (!tr) {
		tap_ok(0, "layout of a restricted range: create tracker: %s", strerror(errno));
		munmap(p, 16 * FX_PAGE);
		return;
	}
	int r = pt_tracker_vmas(tr, &v, &nv);

	tap_ok(r == 0 && nv == 1 && v[0].start == o.start && v[0].end == o.end,
	       "the layout of a restricted range is clipped to it (%zu areas)", nv);
	pt_vmas_free(v);
	pt_tracker_free(tr);
	munmap(p, 16 * FX_PAGE);
}

/*
 * A child that maps, writes, grows in place and unmaps areas without
 * pause: a ring of 32 live areas, each replaced in turn.
 */
static pid_t start_churn(void)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		char *keep = fx_map(64 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				    -1, 0);
		struct {
			char *p;
			size_t len;
		} ring[32] = { { 0 } };

		for (unsigned long i = 0;; i++) {
			size_t len = (1 + i % 8) * FX_PAGE, k = i % 32;
			char *p;

			if (ring[k].p)
				munmap(ring[k].p, ring[k].len);
			ring[k].p = NULL;
			p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				continue;
			memset(p, (int)i, len);
			if (mremap(p, len, 2 * len, 0) != MAP_FAILED) {	/* in place or not at all */
				memset(p + len, (int)i, len);
				len *= 2;
			}
			ring[k].p = p;
			ring[k].len = len;
			keep[(i % 64) * FX_PAGE] = (char)i;
			if (i % 4096 == 4095)
				usleep(1000);
		}
	}
	return pid;
}

static int clipped_rounds;

static void count_clips(enum pt_log_level lvl, const char *msg, void *ctx)
{
	(void)lvl;
	(void)ctx;
	clipped_rounds += strstr(msg, "outside this round's layout") != NULL;
}

/*
 * Another process maps and unmaps areas as fast as it can while rounds
 * are collected: every page of every round is in that round's layout.
 */
static void churn_layout(enum pt_track_backend b)
{
	static struct pt_dirty d[65536];
	const char *bn = pt_track_backend_name(b);
	struct pt_tracker_opts o = { .sz = sizeof(o), .backend = b,
				     .flags = PT_TRACK_NO_BARRIER };
	uint64_t outside = 0, pages = 0, out1;
	int rounds = 0, bad = 0, err = 0;
	const char *why = NULL;
	struct pt_tracker *tr;
	pid_t pid;

	pid = start_churn();
	if (pid < 0) {
		tap_ok(0, "%s: start the churning child", bn);
		return;
	}
	usleep(20000);
	if (!fx_track_backend_usable(b, true, &why)) {
		tap_skip(why, "%s: layout under a churning target", bn);
		fx_child_kill(pid);
		return;
	}
	tr = pt_tracker_create(pid, &o);
	if (!tr) {
		tap_ok(0, "%s: create tracker on the churning child (the probes say it is usable): %s",
		       bn, strerror(errno));
		fx_child_kill(pid);
		return;
	}
	clipped_rounds = 0;
	pt_set_log(count_clips, NULL);
	for (rounds = 0; rounds < 100 && !err; rounds++) {
		struct pt_vma *v = NULL;
		size_t nv = 0, n = collect(tr, d, 65536, &err);

		if (err)
			break;
		if (pt_tracker_vmas(tr, &v, &nv) < 0) {
			err = -ENOMEM;
			break;
		}
		if (!in_layout(d, n, v, nv, &out1))
			bad++;
		outside += out1;
		for (size_t i = 0; i < n; i++)
			pages += (d[i].end - d[i].start) / FX_PAGE;
		pt_vmas_free(v);
		usleep(2000);
	}
	tap_ok(!err && rounds == 100 && bad == 0,
	       "%s: a target mapping and unmapping without pause: every page of %d rounds is in "
	       "the round's layout (%llu pages, %llu outside in %d rounds)%s%s", bn, rounds,
	       (unsigned long long)pages, (unsigned long long)outside, bad, err ? ": " : "",
	       err ? strerror(-err) : "");
	tap_diag("%s: %d rounds clipped pages an area grew to while it was armed", bn,
		 clipped_rounds);
	pt_set_log(NULL, NULL);
	pt_tracker_free(tr);
	fx_child_kill(pid);
}

/*
 * Overhead accounting: a buffer of OV_PAGES pages, populated and tracked,
 * all written after a collect.  The next round counts each as one fault
 * of the page-table backends (none for hash), charges it the probed
 * fault cost, and reports its interval and the CPU counters.
 */
#define OV_PAGES 64
#define N_OVERHEAD 4
static void self_overhead(enum pt_track_backend b)
{
	const char *bn = pt_track_backend_name(b), *why = NULL;
	char *p = fx_map(OV_PAGES * FX_PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct pt_tracker_opts o = { .sz = sizeof(o), .backend = b, .start = (uintptr_t)p,
				     .end = (uintptr_t)p + OV_PAGES * FX_PAGE };
	struct pt_tracker_stats st = { .sz = sizeof(st) };
	uint64_t cost = 0, want = b == PT_TRACK_HASH ? 0 : OV_PAGES, tick_ns;
	struct pt_dirty d[OV_PAGES];
	struct pt_tracker *tr;
	bool more;

	memset(p, 1, OV_PAGES * FX_PAGE);
	if (!fx_track_backend_usable(b, false, &why)) {
		tap_skip_n(N_OVERHEAD, why, "%s: overhead of a round (backend not usable here)", bn);
		munmap(p, OV_PAGES * FX_PAGE);
		return;
	}
	tr = pt_tracker_create(0, &o);
	if (!tr) {
		tap_ok(0, "%s: create tracker (the probes say it is usable): %s", bn, strerror(errno));
		tap_skip_n(N_OVERHEAD - 1, "no tracker", "%s: overhead of a round", bn);
		munmap(p, OV_PAGES * FX_PAGE);
		return;
	}
	pt_fault_cost_ns(&cost, NULL);
	pt_tracker_stats(tr, &st);
	tap_ok(st.interval_ns == 0 && st.pages_faulted == 0 && st.est_fault_ns == 0,
	       "%s: no overhead figures before the first collect", bn);
	pt_tracker_collect(tr, d, OV_PAGES, &more);
	for (int i = 0; i < OV_PAGES; i++)
		p[i * FX_PAGE] = 2;
	pt_tracker_collect(tr, d, OV_PAGES, &more);
	pt_tracker_stats(tr, &st);
	tap_ok(st.pages_faulted == want && st.est_fault_ns == want * cost,
	       "%s: %d pages written: pages_faulted %" PRIu64 " (want %" PRIu64 "), est_fault_ns %"
	       PRIu64 " = that x %" PRIu64 " ns", bn, OV_PAGES, st.pages_faulted, want,
	       st.est_fault_ns, cost);
	/* The target's CPU comes from /proc/PID/stat in clock ticks (10 ms):
	 * a round shorter than a tick can still see one or two tick edges. */
	tick_ns = 1000000000ULL / (uint64_t)(sysconf(_SC_CLK_TCK) > 0 ? sysconf(_SC_CLK_TCK) : 100);
	tap_ok(st.interval_ns > 0 && st.self_cpu_ns > 0 && st.self_cpu_ns < 10 * st.interval_ns &&
	       st.target_cpu_ns <= 10 * st.interval_ns + 2 * tick_ns &&
	       (b == PT_TRACK_HASH || st.target_minflt >= want),
	       "%s: interval %" PRIu64 " ns, own CPU %" PRIu64 " ns, target CPU %" PRIu64
	       " ns (in 10 ms ticks), minor faults %" PRIu64, bn, st.interval_ns, st.self_cpu_ns,
	       st.target_cpu_ns, st.target_minflt);
	pt_tracker_collect(tr, d, OV_PAGES, &more);
	pt_tracker_stats(tr, &st);
	tap_ok(st.pages_faulted == 0 && st.est_fault_ns == 0 && st.interval_ns > 0,
	       "%s: a quiet round charges nothing", bn);
	pt_tracker_free(tr);
	munmap(p, OV_PAGES * FX_PAGE);
}

/*
 * pt_tracker_set_area_method() (the budget's tool, issue 11): an area
 * moved to hashing reports what was written before the switch (its last
 * harvest) and after it (by hash), says PT_AREA_REASON_BUDGET, costs the
 * target no harvested faults; moved back, it is reported whole once and
 * tracked by the backend again.  The never-miss proof under a random
 * writer is test_nevermiss's "uffd+budget" mode.
 */
#define N_BUDGET 7
static bool exactly(const struct pt_dirty *d, int n, uint64_t a, uint64_t pages)
{
	uint64_t sum = 0;

	for (int i = 0; i < n; i++)
		sum += (d[i].end - d[i].start) / FX_PAGE;
	return n > 0 && sum == pages && covered(d, (size_t)n, a, pages * FX_PAGE);
}

static void self_budget(void)
{
	char *p = fx_map(OV_PAGES * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct pt_tracker_opts o = { .sz = sizeof(o), .backend = PT_TRACK_SOFTDIRTY,
				     .start = (uintptr_t)p, .end = (uintptr_t)p + OV_PAGES * FX_PAGE };
	struct pt_track_area ta = { .sz = sizeof(ta) };
	struct pt_tracker_stats st = { .sz = sizeof(st) };
	struct pt_dirty d[OV_PAGES];
	struct pt_tracker *tr;
	const char *why = NULL;
	uintptr_t a = (uintptr_t)p;
	bool more;
	int n;

	memset(p, 1, OV_PAGES * FX_PAGE);
	if (!fx_track_backend_usable(PT_TRACK_SOFTDIRTY, false, &why)) {
		tap_skip(why, "budget: softdirty refuses per-area hashing");
	} else {
		tr = pt_tracker_create(0, &o);
		tap_ok(tr && pt_tracker_set_area_method(tr, a, PT_AREA_HASHED) == -EOPNOTSUPP,
		       "budget: softdirty refuses per-area hashing (clear_refs protects every area)");
		pt_tracker_free(tr);
	}
	o.backend = PT_TRACK_UFFD;
	if (!fx_track_backend_usable(PT_TRACK_UFFD, false, &why)) {
		tap_skip_n(N_BUDGET - 1, why, "budget: uffd areas moved to hashing and back");
		munmap(p, OV_PAGES * FX_PAGE);
		return;
	}
	tr = pt_tracker_create(0, &o);
	if (!tr) {
		tap_ok(0, "budget: uffd tracker: %s", strerror(errno));
		tap_skip_n(N_BUDGET - 2, "no tracker", "budget: uffd areas moved to hashing and back");
		munmap(p, OV_PAGES * FX_PAGE);
		return;
	}
	pt_tracker_collect(tr, d, OV_PAGES, &more);
	memset(p, 2, OV_PAGES * FX_PAGE);
	pt_tracker_collect(tr, d, OV_PAGES, &more);
	n = pt_tracker_area(tr, a, &ta);
	tap_ok(n == 0 && ta.method == PT_AREA_BACKEND && ta.pages_faulted == OV_PAGES && ta.pages_hashed == 0,
	       "budget: the area's own faults: %" PRIu64 " of %d written (method %u)", ta.pages_faulted,
	       OV_PAGES, ta.method);
	tap_ok(pt_tracker_set_area_method(tr, a - 1000 * FX_PAGE, PT_AREA_HASHED) == -ENOENT &&
	       pt_tracker_set_area_method(tr, a, 7) == -EINVAL &&
	       pt_tracker_set_area_method(NULL, a, PT_AREA_HASHED) == -EINVAL &&
	       pt_tracker_set_area_method(tr, a, PT_AREA_HASHED) == 0,
	       "budget: set_area_method: -ENOENT outside, -EINVAL, 0");
	memset(p, 3, 10 * FX_PAGE);	/* before the switch round: its last harvest */
	n = pt_tracker_collect(tr, d, OV_PAGES, &more);
	pt_tracker_area(tr, a, &ta);
	pt_tracker_stats(tr, &st);
	tap_ok(exactly(d, n, a, 10) && !(d[0].flags & PT_DIRTY_NEW) && ta.method == PT_AREA_HASHED &&
	       ta.reason == PT_AREA_REASON_BUDGET && ta.pages_hashed == OV_PAGES && st.hash_cpu_ns > 0 &&
	       !strcmp(pt_area_reason_name(PT_AREA_REASON_BUDGET), "budget"),
	       "budget: the switch round reports the 10 pages written before it, not the area "
	       "(%d regions), then hashes it (%" PRIu64 " pages, %" PRIu64 " ns, reason %s)",
	       n, ta.pages_hashed, st.hash_cpu_ns, pt_area_reason_name(ta.reason));
	memset(p + 10 * FX_PAGE, 4, 10 * FX_PAGE);
	n = pt_tracker_collect(tr, d, OV_PAGES, &more);
	pt_tracker_area(tr, a, &ta);
	tap_ok(exactly(d, n, a + 10 * FX_PAGE, 10) && ta.pages_faulted == 0 && ta.method == PT_AREA_HASHED,
	       "budget: hashed, exactly the 10 pages written after the switch (faulted %" PRIu64 ")",
	       ta.pages_faulted);
	pt_tracker_set_area_method(tr, a, PT_AREA_BACKEND);
	p[30 * FX_PAGE] = 5;
	n = pt_tracker_collect(tr, d, OV_PAGES, &more);
	pt_tracker_area(tr, a, &ta);
	tap_ok(exactly(d, n, a, OV_PAGES) && (d[0].flags & PT_DIRTY_NEW) && ta.method == PT_AREA_BACKEND &&
	       ta.reason == PT_AREA_REASON_NONE,
	       "budget: moved back, the area is reported whole once (PT_DIRTY_NEW) and tracked by uffd");
	p[31 * FX_PAGE] = 6;
	n = pt_tracker_collect(tr, d, OV_PAGES, &more);
	tap_ok(exactly(d, n, a + 31 * FX_PAGE, 1), "budget: then exactly the page written (%d regions)", n);
	pt_tracker_free(tr);
	munmap(p, OV_PAGES * FX_PAGE);
}

/*
 * The tracker's own stops write into the target: arming an area freezes
 * every thread of another process (ptrace), also one asleep in pause(),
 * and when the kernel resumes a thread on another CPU it rewrites the
 * thread's rseq area (cpu_id).  Such a write lands after the round that
 * froze the target collected the page, so the next round must report it,
 * as any write after a page's collection.  A paused child is tracked
 * while an area moves back to uffd every other round (armed under a
 * freeze; to hashing in between, which stops nothing), the child pinned
 * to the other CPU before each freeze; a copy of its rseq page is
 * updated with each round's pages and, after each round that stopped
 * nothing, must equal the page.  test_nevermiss's uffd+budget copy check
 * met this page when its last round armed areas (there is no next
 * round after the last).
 */
#define RSEQ_ROUNDS 40
#define RSEQ_WAIT_MS 10000	/* cap of the wait for the child to sleep again */

/* Wait until @pid sleeps (state S), i.e. it ran since it was resumed; false at the cap. */
static bool asleep(pid_t pid)
{
	return fx_wait_state(pid, 'S', RSEQ_WAIT_MS);
}

static void rseq_after_freeze(void)
{
	static const char *const name = "rseq: a write the tracker's freeze causes is reported by "
					 "the next round";
	const char *why = NULL;
	unsigned char *dummy = fx_map(8 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t page = ((uintptr_t)__builtin_thread_pointer() + (uintptr_t)__rseq_offset) & ~(FX_PAGE - 1);
	static unsigned char copy[FX_PAGE], now[FX_PAGE];
	static struct pt_dirty d[4096];
	unsigned changed = 0, stale = 0, rounds = 0;
	struct iovec l = { now, FX_PAGE }, r = { (void *)page, FX_PAGE };
	cpu_set_t cpus;
	int cpu[2], k = 0, err = 0;
	pid_t c;

	memset(dummy, 7, 8 * FX_PAGE);
	CPU_ZERO(&cpus);
	if (__rseq_size == 0 || !fx_track_backend_usable(PT_TRACK_UFFD, true, &why) ||
	    sched_getaffinity(0, sizeof(cpus), &cpus) || CPU_COUNT(&cpus) < 2) {
		tap_skip(__rseq_size == 0 ? "glibc registered no rseq area" :
			 why ? why : "fewer than 2 CPUs to move the target between", "%s", name);
		munmap(dummy, 8 * FX_PAGE);
		return;
	}
	for (int i = 0; i < CPU_SETSIZE && k < 2; i++)
		if (CPU_ISSET(i, &cpus))
			cpu[k++] = i;
	c = fork();
	if (c == 0) {
		for (;;)
			pause();
	}
	/* only the area and the rseq page (and what lies between): light also under ASan */
	uintptr_t lo = page < (uintptr_t)dummy ? page : (uintptr_t)dummy;
	uintptr_t hi = page > (uintptr_t)dummy ? page + FX_PAGE : (uintptr_t)dummy + 8 * FX_PAGE;
	struct pt_tracker_opts o = { .sz = sizeof(o), .backend = PT_TRACK_UFFD, .start = lo, .end = hi };
	struct pt_tracker *tr = NULL;

	if (!asleep(c))
		err = -ETIMEDOUT;
	else if (!(tr = pt_tracker_create(c, &o)))
		err = -errno;
	/* creating stops it too (injection, arming): its copy once it ran */
	else if (!asleep(c))
		err = -ETIMEDOUT;
	if (!err && process_vm_readv(c, &(struct iovec){ copy, FX_PAGE }, 1, &r, 1, 0) != FX_PAGE)
		err = -errno;
	for (unsigned i = 0; i < RSEQ_ROUNDS && !err; i++) {
		bool freeze = i % 2;
		int n;

		if (freeze) {	/* moved back: armed under a freeze, resumed on the other CPU */
			cpu_set_t one;

			CPU_ZERO(&one);
			CPU_SET(cpu[(i / 2) % 2], &one);
			sched_setaffinity(c, sizeof(one), &one);
			pt_tracker_set_area_method(tr, (uintptr_t)dummy, PT_AREA_BACKEND);
		} else {
			pt_tracker_set_area_method(tr, (uintptr_t)dummy, PT_AREA_HASHED);
		}
		n = (int)collect(tr, d, sizeof(d) / sizeof(d[0]), &err);
		/* the child ran since the round resumed it, and sleeps again */
		if (!err && !asleep(c))
			err = -ETIMEDOUT;
		if (!err && process_vm_readv(c, &l, 1, &r, 1, 0) != FX_PAGE)
			err = -errno;
		if (err)
			break;
		rounds++;
		if (reported_in(d, (size_t)n, page, FX_PAGE))
			memcpy(copy, now, FX_PAGE);
		if (freeze)	/* changed after the round collected it */
			changed += memcmp(now, copy, FX_PAGE) != 0;
		else		/* a round that stopped nothing: the copy is the page */
			stale += memcmp(now, copy, FX_PAGE) != 0;
	}
	pt_tracker_free(tr);
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
	munmap(dummy, 8 * FX_PAGE);
	if (err == -ETIMEDOUT)
		tap_skip("time cap: the child did not sleep again within 10 s", "%s", name);
	else if (!err && changed == 0)
		tap_skip("the paused child's rseq page never changed after a round's collection "
			 "(not resumed on the other CPU)", "%s", name);
	else
		tap_ok(!err && stale == 0, "%s (%u of %u freezes changed it after its collection; "
		       "%u copies stale after the next round: %s)", name, changed, rounds / 2, stale,
		       err ? strerror(-err) : "ok");
}

int main(void)
{
	const enum pt_track_backend bs[] = { PT_TRACK_UFFD, PT_TRACK_SOFTDIRTY, PT_TRACK_HASH };

	sh = fx_map(FX_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (geteuid() != 0)
		tap_diag("not root: cross-process tracking may be refused");
	/* the calls below, in order, then the bad backend check */
	tap_plan(N_SELF_BASIC + N_NOTE_COPY(PT_TRACK_HASH, false) + N_NOTE_COPY(PT_TRACK_HASH, true) +
		 N_NOTE_COPY(PT_TRACK_UFFD, true) + N_NOTE_COPY(PT_TRACK_SOFTDIRTY, true) +
		 2 * (N_REGROW(true) + N_REGROW(false)) + N_REGROW(true) +
		 3 * N_SCENARIO + 1 + 3 * N_SELF_LAYOUT + 1 + 3 + 3 * N_HOLES + 3 * N_OVERHEAD + N_BUDGET + 1);
	self_basic();
	self_note_copy(PT_TRACK_HASH, false);
	self_note_copy(PT_TRACK_HASH, true);
	self_note_copy(PT_TRACK_UFFD, true);
	self_note_copy(PT_TRACK_SOFTDIRTY, true);
	for (size_t i = 0; i < 2; i++) {
		self_regrow(i ? PT_TRACK_SOFTDIRTY : PT_TRACK_UFFD, true);
		self_regrow(i ? PT_TRACK_SOFTDIRTY : PT_TRACK_UFFD, false);
	}
	self_regrow(PT_TRACK_HASH, true);
	for (size_t i = 0; i < 3; i++)
		scenario(bs[i]);
	struct pt_tracker_opts bad = { .sz = sizeof(bad), .backend = 99 };
	errno = 0;
	tap_ok(pt_tracker_create(0, &bad) == NULL && errno == EINVAL, "bad backend -> EINVAL");
	for (size_t i = 0; i < 3; i++)
		self_layout(bs[i]);
	self_layout_range();
	for (size_t i = 0; i < 3; i++)
		churn_layout(bs[i]);	/* one subtest each */
	for (size_t i = 0; i < 3; i++)
		self_holes(bs[i]);
	for (size_t i = 0; i < 3; i++)
		self_overhead(bs[i]);
	self_budget();
	rseq_after_freeze();
	return tap_done();
}
