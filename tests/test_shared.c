/* SPDX-License-Identifier: MIT */
/*
 * Shared memory and file mappings, told truthfully (lib/scan/shared.c).
 *
 * A forked child builds, for each kind of shared memory (MAP_SHARED
 * anonymous, memfd, /dev/shm file, SysV segment), 64 pages laid out as
 *	0-15 never touched (hole: absent)	16-31 paged out (swapped)
 *	32-47 MADV_DONTNEED (cached)		48-63 touched (present)
 * plus file mappings of a disk file, a uffd-wp registered shared region
 * and a private anon region.  The parent scans them with each backend and
 * checks the result against an oracle read at the same moment: smaps
 * Swap: for the shmem regions (idle shmem may drift to swap on its own),
 * mincore on the parent's own mapping for the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "fixture.h"
#include "pt_internal.h"
#include "tap.h"
#include "uapi.h"

#define NP 64
#define LEN (NP * FX_PAGE)
#define TMPFS_MAGIC_ 0x01021994L

enum { R_SHMEM, R_MEMFD, R_DEVSHM, R_SYSV, R_UFFD, R_NSHM };
static const char *const rname[R_NSHM] = { "shared anon", "memfd", "/dev/shm file", "SysV shm",
					   "uffd-wp shared anon" };

/* Written by the child, read by the parent. */
struct info {
	char why[R_NSHM][160];		/* set-up failure, empty when fine */
	uint64_t shm[R_NSHM];
	uint64_t fshared, fpriv, anon;
	uint64_t stripe, big;		/* see setup_stripe(), setup_big() */
	char stripe_why[160], big_why[160];
	char fa[256], fb[256], devshm[64];
	int swap_ok;
};

static struct info *info;

/* ---- helpers ---- */

/* smaps "Swap:" of the VMA starting at @addr, in pages; -1 if not found. */
static long smaps_swap_pages(pid_t pid, uint64_t addr)
{
	char path[64], line[512];
	unsigned long long a, b;
	long kb = -1;
	int in = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char perms[8];

		if (sscanf(line, "%llx-%llx %7s ", &a, &b, perms) == 3) {
			in = a == addr;
			continue;
		}
		if (in && sscanf(line, "Swap: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb < 0 ? -1 : kb / 4;
}

static long self_swap_pages(void *addr)
{
	return smaps_swap_pages(getpid(), (uint64_t)(uintptr_t)addr);
}

static char state_char(uint8_t s)
{
	switch (s) {
	case PT_STATE_ABSENT: return 'A';
	case PT_STATE_PRESENT: return 'P';
	case PT_STATE_SWAPPED: return 'S';
	case PT_STATE_CACHED: return 'C';
	case PT_STATE_UNKNOWN: return 'U';
	}
	return '?';
}

static void diag_states(const char *what, const uint8_t *st, size_t n)
{
	char buf[NP + 1];

	for (size_t i = 0; i < n && i < NP; i++)
		buf[i] = state_char(st[i]);
	buf[n < NP ? n : NP] = 0;
	tap_diag("%s: %s", what, buf);
}

/* Scan with reasons (fx_scan_pages does not keep them). */
static int scan_reasons(struct pt_target *t, uint64_t start, uint32_t flags, uint8_t *st,
			uint8_t *rs)
{
	struct pt_region r[64];
	struct pt_scan_opts o = { .sz = sizeof(o), .flags = flags };
	uint64_t cur = start, end = start + LEN;

	memset(st, 0xee, NP);
	memset(rs, 0xee, NP);
	while (cur < end) {
		int n = pt_scan(t, &cur, end, r, 64, &o);
		if (n <= 0)
			return n;
		for (int i = 0; i < n; i++)
			for (uint64_t a = r[i].start; a < r[i].end; a += FX_PAGE) {
				st[(a - start) / FX_PAGE] = r[i].state;
				rs[(a - start) / FX_PAGE] = r[i].reason;
			}
	}
	return 0;
}

/* ---- child set-up ---- */

/* Touch 16-63, page out 16-31 until smaps agrees, drop 32-47 from our page table. */
static const char *layout(char *p)
{
	for (int i = 16; i < NP; i++)
		p[i * FX_PAGE] = (char)i;
	if (info->swap_ok) {
		for (int tries = 0; tries < 5 && self_swap_pages(p) < 16; tries++)
			if (fx_pageout(p + 16 * FX_PAGE, 16 * FX_PAGE))
				return "MADV_PAGEOUT failed";
		if (self_swap_pages(p) != 16)
			return "MADV_PAGEOUT did not move 16 shmem pages to swap";
	}
	if (madvise(p + 32 * FX_PAGE, 16 * FX_PAGE, MADV_DONTNEED))
		return "MADV_DONTNEED failed";
	return NULL;
}

static void set_why(int r, const char *why)
{
	if (why)
		snprintf(info->why[r], sizeof(info->why[r]), "%s", why);
}

/* A shared anon region registered for async uffd-wp, unpopulated pages included. */
static const char *setup_uffd(char **out)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED |
					      UFFD_FEATURE_WP_HUGETLBFS_SHMEM };
	struct uffdio_register reg;
	struct uffdio_writeprotect wp;
	char *p;
	int uffd;

	if (pt_feature(PT_FEAT_UFFD_WP_ASYNC, NULL) != PT_YES)
		return "no UFFD_FEATURE_WP_ASYNC";
	if (pt_feature(PT_FEAT_UFFD_WP_UNPOPULATED, NULL) != PT_YES)
		return "no UFFD_FEATURE_WP_UNPOPULATED";
	if (pt_feature(PT_FEAT_UFFD_WP_HUGETLBFS_SHMEM, NULL) != PT_YES)
		return "no UFFD_FEATURE_WP_HUGETLBFS_SHMEM";
	uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		return "userfaultfd() failed";
	if (ioctl(uffd, UFFDIO_API, &api))
		return "UFFDIO_API with WP_ASYNC|WP_UNPOPULATED refused";
	p = fx_map(LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	for (int i = 16; i < NP; i++)
		p[i * FX_PAGE] = (char)i;
	reg = (struct uffdio_register){ .range = { (uintptr_t)p, LEN },
					.mode = UFFDIO_REGISTER_MODE_WP };
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return "UFFDIO_REGISTER(WP) on shmem refused";
	wp = (struct uffdio_writeprotect){ .range = { (uintptr_t)p, LEN },
					   .mode = UFFDIO_WRITEPROTECT_MODE_WP };
	if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp))
		return "UFFDIO_WRITEPROTECT failed";
	/* uffd stays open for the child's life: closing it would unregister */
	*out = p;
	if (info->swap_ok) {
		for (int tries = 0; tries < 5 && self_swap_pages(p) < 16; tries++)
			if (fx_pageout(p + 16 * FX_PAGE, 16 * FX_PAGE))
				return "MADV_PAGEOUT failed";
		if (self_swap_pages(p) != 16)
			return "MADV_PAGEOUT did not move 16 shmem pages to swap";
	}
	if (madvise(p + 32 * FX_PAGE, 16 * FX_PAGE, MADV_DONTNEED))
		return "MADV_DONTNEED failed";
	return NULL;
}

#define STRIPE_NP 512
#define BIG_NP (PT_WINDOW_PAGES + 4096)
#define BIG_AT (PT_WINDOW_PAGES - 6)	/* 16 touched pages straddle a window end */

/* memfd, every page touched; even pages paged out, odd pages dropped: cached. */
static const char *setup_stripe(void)
{
	int fd = memfd_create("pt-test-stripe", MFD_CLOEXEC);
	char *p;

	if (fd < 0 || ftruncate(fd, STRIPE_NP * FX_PAGE))
		return "memfd_create failed";
	p = fx_map(STRIPE_NP * FX_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	info->stripe = (uintptr_t)p;
	for (int i = 0; i < STRIPE_NP; i++)
		p[i * FX_PAGE] = 1;
	for (int i = 1; i < STRIPE_NP; i += 2)
		if (madvise(p + i * FX_PAGE, FX_PAGE, MADV_DONTNEED))
			return "MADV_DONTNEED failed";
	for (int tries = 0; tries < 5 && self_swap_pages(p) < STRIPE_NP / 2; tries++)
		for (int i = 0; i < STRIPE_NP; i += 2)
			fx_pageout(p + i * FX_PAGE, FX_PAGE);
	if (self_swap_pages(p) != STRIPE_NP / 2)
		return "MADV_PAGEOUT did not swap out the even pages";
	return NULL;
}

/*
 * Shared anon larger than a scan window, mostly holes; around the window
 * end: 8 swapped, 4 cached, 4 present pages.
 */
static const char *setup_big(void)
{
	char *p = fx_map(BIG_NP * FX_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			 -1, 0), *q = p + BIG_AT * FX_PAGE;

	info->big = (uintptr_t)p;
	for (int i = 0; i < 16; i++)
		q[i * FX_PAGE] = 1;
	for (int tries = 0; tries < 5 && self_swap_pages(p) < 8; tries++)
		fx_pageout(q, 8 * FX_PAGE);
	if (self_swap_pages(p) != 8)
		return "MADV_PAGEOUT did not swap out 8 pages";
	if (madvise(q + 8 * FX_PAGE, 4 * FX_PAGE, MADV_DONTNEED))
		return "MADV_DONTNEED failed";
	return NULL;
}

static void child_setup(void *arg)
{
	char *p;
	int fd, id;

	(void)arg;
	p = fx_map(LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	info->shm[R_SHMEM] = (uintptr_t)p;
	set_why(R_SHMEM, layout(p));

	fd = memfd_create("pt-test-shared", MFD_CLOEXEC);	/* fd stays open */
	if (fd < 0 || ftruncate(fd, LEN)) {
		set_why(R_MEMFD, "memfd_create failed");
	} else {
		p = fx_map(LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		info->shm[R_MEMFD] = (uintptr_t)p;
		set_why(R_MEMFD, layout(p));
	}

	fd = open(info->devshm, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, LEN)) {
		set_why(R_DEVSHM, "cannot create a /dev/shm file");
	} else {
		p = fx_map(LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		info->shm[R_DEVSHM] = (uintptr_t)p;
		set_why(R_DEVSHM, layout(p));
	}

	id = shmget(IPC_PRIVATE, LEN, IPC_CREAT | 0600);
	p = id < 0 ? (char *)-1 : shmat(id, NULL, 0);
	if (id >= 0)
		shmctl(id, IPC_RMID, NULL);	/* gone with the child */
	if (p == (char *)-1) {
		set_why(R_SYSV, "shmget/shmat failed");
	} else {
		info->shm[R_SYSV] = (uintptr_t)p;
		set_why(R_SYSV, layout(p));
	}

	p = NULL;
	set_why(R_UFFD, setup_uffd(&p));
	info->shm[R_UFFD] = (uintptr_t)p;

	/* file A mapped shared: read 48-63 (present) */
	fd = open(info->fa, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		p = fx_map(LEN, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
		madvise(p, LEN, MADV_RANDOM);
		for (int i = 48; i < NP; i++)
			(void)*(volatile char *)(p + i * FX_PAGE);
		info->fshared = (uintptr_t)p;
	}
	/* file B mapped private: read 48-55, write 56-63 (COW: anon) */
	fd = open(info->fb, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		p = fx_map(LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		close(fd);
		madvise(p, LEN, MADV_RANDOM);
		for (int i = 48; i < 56; i++)
			(void)*(volatile char *)(p + i * FX_PAGE);
		for (int i = 56; i < NP; i++)
			p[i * FX_PAGE] = 1;
		info->fpriv = (uintptr_t)p;
	}

	p = fx_map(LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 32; i < NP; i++)
		p[i * FX_PAGE] = 1;
	info->anon = (uintptr_t)p;

	if (info->swap_ok) {
		const char *why = setup_stripe();

		if (why)
			snprintf(info->stripe_why, sizeof(info->stripe_why), "%s", why);
		why = setup_big();
		if (why)
			snprintf(info->big_why, sizeof(info->big_why), "%s", why);
	} else {
		snprintf(info->stripe_why, sizeof(info->stripe_why), "no swap");
		snprintf(info->big_why, sizeof(info->big_why), "no swap");
	}
}

/* ---- parent: files on a disk file system ---- */

/*
 * Create a 64-page file in a directory on a real disk file system, with
 * pages 0-15 in the page cache and the rest evicted.
 */
static int make_disk_file(char *path, size_t len)
{
	static const char *const dirs[] = { "/var/tmp", "/tmp", "/root" };
	char buf[FX_PAGE];
	int fd = -1;

	for (size_t d = 0; d < sizeof(dirs) / sizeof(dirs[0]) && fd < 0; d++) {
		struct statfs sfs;

		if (statfs(dirs[d], &sfs) || sfs.f_type == TMPFS_MAGIC_)
			continue;
		snprintf(path, len, "%s/pt-test-shared.XXXXXX", dirs[d]);
		fd = mkstemp(path);
	}
	if (fd < 0)
		return -1;
	memset(buf, 'x', sizeof(buf));
	for (int i = 0; i < NP; i++)
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			goto fail;
	if (fdatasync(fd) || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) ||
	    posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM))
		goto fail;
	for (int i = 0; i < 16; i++)
		if (pread(fd, buf, sizeof(buf), (off_t)i * FX_PAGE) != (ssize_t)sizeof(buf))
			goto fail;
	close(fd);
	return 0;
fail:
	close(fd);
	unlink(path);
	path[0] = 0;
	return -1;
}

/* mincore on our own mapping of @path (we own it: mincore is truthful). */
static int file_resident(const char *path, unsigned char *vec)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	void *p;

	if (fd < 0)
		return -1;
	p = mmap(NULL, LEN, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -1;
	int r = mincore(p, LEN, vec);
	munmap(p, LEN);
	return r;
}

/* ---- parent: checks ---- */

/* Subtests per check, skips included: the plan is fixed. */
#define N_SHM 3
#define N_FILE 4
/* run_backend(): open, 5 + 1 check_shm(), 2 check_file(), no_shared 4, stripe_big 2 */
#define N_BACKEND (1 + (R_NSHM + 1) * N_SHM + 2 * N_FILE + 4 + 2)

static void check_shm(struct pt_target *t, pid_t pid, int r, const char *bn)
{
	uint8_t st[NP];
	uint32_t at[NP];
	long s0 = -1, s1 = -2;
	int err = 0;

	if (info->why[r][0]) {
		tap_skip_n(N_SHM, info->why[r], "%s: %s layout", bn, rname[r]);
		return;
	}
	if (!info->swap_ok) {
		tap_skip_n(N_SHM, "no swap", "%s: %s layout", bn, rname[r]);
		return;
	}
	/* smaps must not move while we scan; retry if it did */
	for (int tries = 0; tries < 3 && s0 != s1; tries++) {
		s0 = smaps_swap_pages(pid, info->shm[r]);
		err = fx_scan_pages(t, info->shm[r], info->shm[r] + LEN, 0, st, at);
		s1 = smaps_swap_pages(pid, info->shm[r]);
	}
	if (!tap_ok(err == 0 && s0 == s1 && s1 >= 16, "%s: %s scanned (smaps Swap %ld pages)", bn,
		    rname[r], s1)) {
		tap_skip_n(N_SHM - 1, "not scanned", "%s: %s layout", bn, rname[r]);
		return;
	}
	size_t absent = fx_count(st, 0, 16, PT_STATE_ABSENT);
	size_t swapped = fx_count(st, 16, 32, PT_STATE_SWAPPED);
	size_t cached = fx_count(st, 32, 48, PT_STATE_CACHED);
	size_t present = fx_count(st, 48, 64, PT_STATE_PRESENT);
	size_t drift = fx_count(st, 32, 64, PT_STATE_SWAPPED);
	size_t all_swapped = fx_count(st, 0, NP, PT_STATE_SWAPPED);
	bool file = true;

	for (int i = 16; i < 48; i++)
		file &= !!(at[i] & PT_ATTR_FILE);
	/*
	 * Pages 32-63 may have moved to swap on their own since set-up; that
	 * is accepted only when smaps counts exactly as many swapped pages.
	 */
	bool ok = absent == 16 && swapped == 16 && cached + present + drift == 32 &&
		  fx_count(st, 32, 48, PT_STATE_CACHED) + fx_count(st, 32, 48, PT_STATE_SWAPPED) == 16 &&
		  all_swapped == (size_t)s1;
	if (!tap_ok(ok, "%s: %s: 16 absent, 16 swapped, 16 cached, 16 present (swapped == smaps %ld)",
		    bn, rname[r], s1))
		diag_states(rname[r], st, NP);
	else if (drift)
		tap_diag("%zu idle pages moved to swap meanwhile (smaps agrees)", drift);
	tap_ok(file, "%s: %s: resolved pages carry the file attribute", bn, rname[r]);
}

/* Regular file mappings: non-mapped pages cached or absent, as mincore says. */
static void check_file(struct pt_target *t, const char *bn, bool shared)
{
	uint64_t a = shared ? info->fshared : info->fpriv;
	const char *what = shared ? "shared file mapping" : "private file mapping";
	const char *path = shared ? info->fa : info->fb;
	unsigned char vec[NP];
	uint8_t st[NP];
	uint32_t at[NP];
	bool agree = true;

	if (!a) {
		tap_skip_n(N_FILE, "no disk file system found for the test file", "%s: %s", bn, what);
		return;
	}
	int err = fx_scan_pages(t, a, a + LEN, 0, st, at);
	int verr = file_resident(path, vec);
	if (!tap_ok(err == 0 && verr == 0, "%s: %s scanned", bn, what)) {
		tap_skip_n(N_FILE - 1, "not scanned", "%s: %s", bn, what);
		return;
	}
	for (int i = 0; i < NP; i++) {
		if (st[i] == PT_STATE_PRESENT)
			continue;
		agree &= (st[i] == PT_STATE_CACHED) == !!(vec[i] & 1) &&
			 (st[i] == PT_STATE_CACHED || st[i] == PT_STATE_ABSENT);
	}
	if (!tap_ok(agree, "%s: %s: non-mapped pages cached/absent exactly as mincore says", bn, what))
		diag_states(what, st, NP);
	bool layout = fx_count(st, 0, 16, PT_STATE_CACHED) == 16 &&
		      fx_count(st, 16, 48, PT_STATE_ABSENT) == 32 &&
		      fx_count(st, 48, 64, PT_STATE_PRESENT) == 16;
	if (!tap_ok(layout, "%s: %s: 16 cached, 32 absent, 16 present", bn, what))
		diag_states(what, st, NP);
	if (shared) {
		bool file = true;
		for (int i = 48; i < NP; i++)
			file &= !!(at[i] & PT_ATTR_FILE);
		tap_ok(file, "%s: %s: mapped pages are file pages", bn, what);
	} else {
		bool file = true, anon = true;
		for (int i = 48; i < 56; i++)
			file &= !!(at[i] & PT_ATTR_FILE);
		for (int i = 56; i < NP; i++)
			anon &= !(at[i] & PT_ATTR_FILE);
		tap_ok(file && anon, "%s: %s: read pages file, written (COW) pages not file", bn,
		       what);
	}
}

/* Raw pagemap: how many of the untouched uffd pages carry a marker (diag only). */
static int count_markers(pid_t pid, uint64_t a)
{
	uint64_t pm[16];
	char path[64];
	int fd, n = 0;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (pread(fd, pm, sizeof(pm), (off_t)(a / FX_PAGE * 8)) == (ssize_t)sizeof(pm))
		for (int i = 0; i < 16; i++)
			n += !!(pm[i] & PT_PM_SWAP);
	close(fd);
	return n;
}

static void check_no_shared(struct pt_target *t, const char *bn)
{
	uint8_t st[NP], rs[NP];
	bool ok = true;

	if (info->why[R_SHMEM][0]) {
		tap_skip(info->why[R_SHMEM], "%s: PT_SCAN_NO_SHARED on shared anon", bn);
	} else {
		int err = scan_reasons(t, info->shm[R_SHMEM], PT_SCAN_NO_SHARED, st, rs);
		for (int i = 0; i < 48; i++)
			ok &= st[i] == PT_STATE_UNKNOWN && rs[i] == PT_REASON_NOT_RESOLVED;
		ok &= fx_count(st, 48, 64, PT_STATE_PRESENT) == 16;
		if (!tap_ok(err == 0 && ok,
			    "%s: PT_SCAN_NO_SHARED: shared anon pages 0-47 unknown/not-resolved", bn))
			diag_states("no-shared", st, NP);
	}
	if (info->fshared) {
		int err = scan_reasons(t, info->fshared, PT_SCAN_NO_SHARED, st, rs);
		ok = fx_count(st, 48, 64, PT_STATE_PRESENT) == 16;
		for (int i = 0; i < 48; i++)
			ok &= st[i] == PT_STATE_UNKNOWN && rs[i] == PT_REASON_NOT_RESOLVED;
		tap_ok(err == 0 && ok, "%s: PT_SCAN_NO_SHARED: file pages 0-47 unknown/not-resolved",
		       bn);
	} else {
		tap_skip("no disk file system found for the test file",
			 "%s: PT_SCAN_NO_SHARED on a shared file mapping", bn);
	}
	int err = scan_reasons(t, info->anon, PT_SCAN_NO_SHARED, st, rs);
	ok = fx_count(st, 0, 32, PT_STATE_ABSENT) == 32 &&
	     fx_count(st, 32, 64, PT_STATE_PRESENT) == 32;
	tap_ok(err == 0 && ok, "%s: PT_SCAN_NO_SHARED: private anon still absent/present", bn);
	err = scan_reasons(t, info->anon, 0, st, rs);
	ok = fx_count(st, 0, 32, PT_STATE_ABSENT) == 32 &&
	     fx_count(st, 32, 64, PT_STATE_PRESENT) == 32;
	tap_ok(err == 0 && ok, "%s: private anon: 32 absent, 32 present", bn);
}

/*
 * Scan [start, start + n pages) with an output buffer of @cap regions;
 * check regions are ordered, contiguous and page aligned.  -EPROTO if not.
 */
static int scan_cap(struct pt_target *t, uint64_t start, size_t n, size_t cap, uint8_t *st,
		    size_t *calls)
{
	struct pt_region r[8];
	struct pt_scan_opts o = { .sz = sizeof(o) };
	uint64_t cur = start, end = start + n * FX_PAGE, expect = start;

	*calls = 0;
	memset(st, 0xee, n);
	while (cur < end) {
		int k = pt_scan(t, &cur, end, r, cap, &o);

		if (k < 0)
			return k;
		if (k == 0)
			break;
		++*calls;
		for (int i = 0; i < k; i++) {
			if (r[i].start != expect || r[i].end <= r[i].start || r[i].end > end)
				return -EPROTO;
			for (uint64_t a = r[i].start; a < r[i].end; a += FX_PAGE)
				st[(a - start) / FX_PAGE] = r[i].state;
			expect = r[i].end;
		}
	}
	return expect == end ? 0 : -EPROTO;
}

static void check_stripe_big(struct pt_target *t, pid_t pid, const char *bn)
{
	static uint8_t st[BIG_NP];
	size_t calls;
	bool ok = true;
	int err;

	if (info->stripe_why[0]) {
		tap_skip(info->stripe_why, "%s: alternating swapped/cached pages, small buffer", bn);
	} else {
		err = scan_cap(t, info->stripe, STRIPE_NP, 3, st, &calls);
		long sw = smaps_swap_pages(pid, info->stripe);
		for (int i = 0; i < STRIPE_NP; i++)
			ok &= st[i] == (i % 2 ? PT_STATE_CACHED : PT_STATE_SWAPPED);
		if (!tap_ok(err == 0 && ok && sw == STRIPE_NP / 2,
			    "%s: %d alternating swapped/cached pages through a 3-region buffer "
			    "(%zu calls, err %d, smaps Swap %ld)", bn, STRIPE_NP, calls, err, sw))
			diag_states("stripe", st, NP);
	}
	if (info->big_why[0]) {
		tap_skip(info->big_why, "%s: shared region larger than a scan window", bn);
		return;
	}
	err = scan_cap(t, info->big, BIG_NP, 8, st, &calls);
	long sw = smaps_swap_pages(pid, info->big);
	ok = fx_count(st, 0, BIG_AT, PT_STATE_ABSENT) == BIG_AT &&
	     fx_count(st, BIG_AT, BIG_AT + 8, PT_STATE_SWAPPED) == 8 &&
	     /* as in check_shm(): idle pages may have moved to swap meanwhile */
	     fx_count(st, BIG_AT + 8, BIG_AT + 12, PT_STATE_CACHED) +
			     fx_count(st, BIG_AT + 8, BIG_AT + 16, PT_STATE_SWAPPED) +
			     fx_count(st, BIG_AT + 12, BIG_AT + 16, PT_STATE_PRESENT) == 8 &&
	     fx_count(st, BIG_AT + 16, BIG_NP, PT_STATE_ABSENT) == BIG_NP - BIG_AT - 16 &&
	     fx_count(st, 0, BIG_NP, PT_STATE_SWAPPED) == (size_t)sw;
	if (!tap_ok(err == 0 && ok, "%s: %u-page shared region across a window end (err %d, smaps Swap %ld)",
		    bn, (unsigned)BIG_NP, err, sw))
		diag_states("big@window", st + BIG_AT - 8, 32);
}

static void run_backend(pid_t pid, enum pt_scan_backend b)
{
	struct pt_target_opts o = { .sz = sizeof(o), .scan_backend = b };
	const char *bn = fx_backend_name(b);
	struct pt_target *t = pt_target_create(pid, &o);

	if (!tap_ok(t != NULL, "%s: pt_target_create(child)", bn)) {
		tap_skip_n(N_BACKEND - 1, "no target", "%s: all layouts", bn);
		return;
	}
	for (int r = 0; r < R_NSHM; r++) {
		if (r == R_UFFD && !info->why[r][0])
			tap_diag("uffd-wp region: %d of 16 untouched pages read as swapped in pagemap",
				 count_markers(pid, info->shm[r]));
		check_shm(t, pid, r, bn);
	}
	check_file(t, bn, true);
	check_file(t, bn, false);
	check_no_shared(t, bn);
	check_stripe_big(t, pid, bn);
	/* A second pass reuses the cached objects and must agree. */
	check_shm(t, pid, R_MEMFD, bn);
	pt_target_free(t);
}

int main(void)
{
	enum pt_scan_backend be[2];
	const char *why = NULL;
	int nb;
	pid_t pid;

	if (geteuid() != 0)
		tap_skip_all("needs root (map_files, zram swap)");
	info = fx_map(sizeof(*info), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	memset(info, 0, sizeof(*info));
	info->swap_ok = fx_swap(&why);
	if (!info->swap_ok)
		tap_diag("no swap: %s", why ? why : "unknown");
	snprintf(info->devshm, sizeof(info->devshm), "/dev/shm/pt-test-shared.%d", (int)getpid());
	if (make_disk_file(info->fa, sizeof(info->fa)))
		info->fa[0] = 0;
	if (make_disk_file(info->fb, sizeof(info->fb)))
		info->fb[0] = 0;

	tap_plan(1 + 2 * N_BACKEND);
	pid = fx_child(child_setup, info);
	if (!tap_ok(pid > 0, "child set up")) {
		tap_skip_n(2 * N_BACKEND, "no child", "all layouts");
		goto out;
	}
	nb = fx_backends(be);
	for (int i = 0; i < nb; i++)
		run_backend(pid, be[i]);
	if (nb < 2)
		tap_skip_n(N_BACKEND, "PAGEMAP_SCAN not available", "pagemap_scan: all layouts");
	fx_child_kill(pid);
out:
	unlink(info->devshm);
	if (info->fa[0])
		unlink(info->fa);
	if (info->fb[0])
		unlink(info->fb);
	munmap(info, sizeof(*info));
	return tap_done();
}
