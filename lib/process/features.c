/* SPDX-License-Identifier: MIT */
/*
 * Every kernel feature probe of pagetrack, in one place.
 *
 * All probes run together, once, on first use (under a mutex; readers
 * afterwards only do an acquire load).  Each result is tri-state with a
 * reason that is either a string literal or a per-feature static buffer
 * written during the probe, so reasons stay valid for the life of the
 * process.  pt__features_reset() re-runs the probes on next use (tests);
 * it must not race with other pagetrack calls.
 *
 * Each feature is probed by its own independent signal (the operation
 * itself on a scratch object, with the result checked), never by the
 * code path under test.  EINVAL/ENOTTY/EOPNOTSUPP/ENOSYS mean "no";
 * EPERM/EACCES mean "no" for features that are about what *we* may use;
 * any other error means "unknown", with the errno in the reason.
 * The set costs well under a millisecond (~40 syscalls), except the
 * soft-dirty probe: it forks, whose cost grows with the caller's page
 * tables (~45 ms at 1 GiB resident), so it runs separately, only when
 * PT_FEAT_SOFT_DIRTY is asked for.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pt_internal.h"
#include "uapi.h"

#define CAP_BIT_SYS_PTRACE 19
#define CAP_BIT_SYS_ADMIN 21

struct feat_res {
	int state;		/* enum pt_tristate */
	const char *reason;	/* literal, or .buf */
	char buf[160];
};

static const char *const feat_names[PT_FEAT__COUNT] = {
	[PT_FEAT_PAGEMAP_SCAN] = "pagemap_scan",
	[PT_FEAT_SCAN_SOFT_DIRTY] = "scan_soft_dirty",
	[PT_FEAT_SCAN_GUARD] = "scan_guard",
	[PT_FEAT_PAGEMAP_PFN] = "pagemap_pfn",
	[PT_FEAT_SOFT_DIRTY] = "soft_dirty",
	[PT_FEAT_UFFD_SYSCALL] = "uffd_syscall",
	[PT_FEAT_UFFD_DEV] = "uffd_dev",
	[PT_FEAT_UFFD_UNPRIVILEGED] = "uffd_unprivileged",
	[PT_FEAT_UFFD_WP_ASYNC] = "uffd_wp_async",
	[PT_FEAT_UFFD_WP_UNPOPULATED] = "uffd_wp_unpopulated",
	[PT_FEAT_UFFD_WP_HUGETLBFS_SHMEM] = "uffd_wp_hugetlbfs_shmem",
	[PT_FEAT_PIDFD_OPEN] = "pidfd_open",
	[PT_FEAT_PIDFD_GETFD] = "pidfd_getfd",
	[PT_FEAT_PROCESS_MADVISE] = "process_madvise",
	[PT_FEAT_MADV_PAGEOUT] = "madv_pageout",
	[PT_FEAT_MADV_GUARD_INSTALL] = "madv_guard_install",
	[PT_FEAT_KPAGEFLAGS] = "kpageflags",
	[PT_FEAT_SWAP_ACTIVE] = "swap_active",
	[PT_FEAT_CAP_SYS_ADMIN] = "cap_sys_admin",
	[PT_FEAT_PTRACE] = "ptrace",
	[PT_FEAT_PAGE_SIZE_4K] = "page_size_4k",
};

static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool probed;
static atomic_bool sd_probed;	/* PT_FEAT_SOFT_DIRTY, probed on its own */
static struct feat_res res[PT_FEAT__COUNT];
static uint64_t zero_pfn;
static struct feat_res zero_page;	/* does a read fault map the zero page? */
static uint64_t scan_cats;
static size_t page_size;

/* Scratch state shared by the probes of one probe_all() run. */
struct probe_ctx {
	int pagemap_fd;		/* /proc/self/pagemap, -1 if not openable */
	int pagemap_err;
	int pidfd;		/* own pidfd, -1 if none */
	uint64_t caps_eff;	/* effective capability set (low 64 bits) */
	bool caps_known;
};

static void set(enum pt_feature f, int state, const char *reason)
{
	res[f].state = state;
	res[f].reason = reason;
}

__attribute__((format(printf, 3, 4)))
static void setf(enum pt_feature f, int state, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res[f].buf, sizeof(res[f].buf), fmt, ap);
	va_end(ap);
	res[f].state = state;
	res[f].reason = res[f].buf;
}

const char *pt__errname(int err)
{
	const char *s = strerrorname_np(err);

	return s ? s : "unknown errno";
}

/* EINVAL/ENOTTY/EOPNOTSUPP/ENOSYS: the kernel says it has no such thing. */
static bool err_means_no(int err)
{
	return err == EINVAL || err == ENOTTY || err == EOPNOTSUPP || err == ENOSYS;
}

/* Set a "no" or "unknown" result for a failed probe step. */
static void set_err(enum pt_feature f, int err, const char *what)
{
	int st = err_means_no(err) ? PT_NO : PT_UNKNOWN;

	setf(f, st, "%s failed with %s", what, pt__errname(err));
}

void *pt__scratch_map(size_t pages)
{
	void *p = mmap(NULL, pages * PT_PAGE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* pread exactly @n pagemap entries for @addr; 0 or -errno. */
static int pm_read(int fd, const void *addr, uint64_t *e, size_t n)
{
	off_t off = (off_t)((uintptr_t)addr / PT_PAGE_SIZE * sizeof(uint64_t));
	ssize_t r = pread(fd, e, n * sizeof(*e), off);

	if (r < 0)
		return -errno;
	return (size_t)r == n * sizeof(*e) ? 0 : -EIO;
}

/* Read a small /proc or /sys file as an integer; 0 or -errno. */
static int read_long(const char *path, long *val)
{
	char buf[64];
	ssize_t n;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		err = -errno;
	else if (n == 0)
		err = -EIO;
	close(fd);
	if (err)
		return err;
	buf[n] = 0;
	*val = strtol(buf, NULL, 10);
	return 0;
}

/* ------------------------------------------------------------------ */
/* pagemap: PFN visibility, zero page, PAGEMAP_SCAN and its categories */

static int scan_ioctl(int fd, void *map, size_t pages, uint64_t cat_mask, uint64_t ret_mask)
{
	struct page_region vec[4];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = (uintptr_t)map,
		.end = (uintptr_t)map + pages * PT_PAGE_SIZE,
		.vec = (uintptr_t)vec,
		.vec_len = 4,
		.category_mask = cat_mask,
		.return_mask = ret_mask,
	};

	return ioctl(fd, PAGEMAP_SCAN, &arg) < 0 ? -errno : 0;
}

static void probe_scan(struct probe_ctx *c, void *map, size_t pages)
{
	uint64_t cats = 0;
	int r;

	if (c->pagemap_fd < 0) {
		set_err(PT_FEAT_PAGEMAP_SCAN, c->pagemap_err, "open /proc/self/pagemap");
		set(PT_FEAT_SCAN_SOFT_DIRTY, res[PT_FEAT_PAGEMAP_SCAN].state,
		    "no PAGEMAP_SCAN (pagemap not openable)");
		set(PT_FEAT_SCAN_GUARD, res[PT_FEAT_PAGEMAP_SCAN].state,
		    "no PAGEMAP_SCAN (pagemap not openable)");
		return;
	}
	r = scan_ioctl(c->pagemap_fd, map, pages, 0, PAGE_IS_PRESENT);
	if (r == -ENOTTY || r == -EINVAL) {
		set(PT_FEAT_PAGEMAP_SCAN, PT_NO,
		    r == -ENOTTY ? "PAGEMAP_SCAN ioctl returned ENOTTY (kernel < 6.7)"
				 : "PAGEMAP_SCAN ioctl returned EINVAL (kernel < 6.7)");
	} else if (r < 0) {
		set_err(PT_FEAT_PAGEMAP_SCAN, -r, "PAGEMAP_SCAN ioctl");
	} else {
		set(PT_FEAT_PAGEMAP_SCAN, PT_YES, "PAGEMAP_SCAN ioctl works on /proc/self/pagemap");
		/* Probe every category bit alone, as filter and as output. */
		for (unsigned int b = 0; b <= 8; b++) {
			r = scan_ioctl(c->pagemap_fd, map, pages, 1ULL << b, 1ULL << b);
			if (r == 0)
				cats |= 1ULL << b;
		}
	}
	scan_cats = cats;

	if (res[PT_FEAT_PAGEMAP_SCAN].state != PT_YES) {
		set(PT_FEAT_SCAN_SOFT_DIRTY, res[PT_FEAT_PAGEMAP_SCAN].state, "no PAGEMAP_SCAN");
		set(PT_FEAT_SCAN_GUARD, res[PT_FEAT_PAGEMAP_SCAN].state, "no PAGEMAP_SCAN");
		return;
	}
	if (cats & PAGE_IS_SOFT_DIRTY)
		set(PT_FEAT_SCAN_SOFT_DIRTY, PT_YES,
		    "PAGEMAP_SCAN accepts PAGE_IS_SOFT_DIRTY (the bit may still never be set)");
	else
		set(PT_FEAT_SCAN_SOFT_DIRTY, PT_NO,
		    "PAGEMAP_SCAN rejects PAGE_IS_SOFT_DIRTY with EINVAL (kernel < 6.8)");
	if (cats & PAGE_IS_GUARD)
		set(PT_FEAT_SCAN_GUARD, PT_YES, "PAGEMAP_SCAN accepts PAGE_IS_GUARD");
	else
		set(PT_FEAT_SCAN_GUARD, PT_NO,
		    "PAGEMAP_SCAN rejects PAGE_IS_GUARD with EINVAL (kernel < 6.16)");
}

/* KPF_ZERO_PAGE of @pfn: 1 set, 0 clear, -1 kpageflags not readable. */
static int kpf_zero_page(uint64_t pfn)
{
	uint64_t flags;
	int r = -1;
	int fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (pread(fd, &flags, sizeof(flags), (off_t)(pfn * sizeof(flags))) == sizeof(flags))
		r = !!(flags & (1ULL << PT_KPF_ZERO_PAGE));
	close(fd);
	return r;
}

static void zp_set(int state, uint64_t pfn, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void zp_set(int state, uint64_t pfn, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(zero_page.buf, sizeof(zero_page.buf), fmt, ap);
	va_end(ap);
	zero_page.state = state;
	zero_page.reason = zero_page.buf;
	zero_pfn = pfn;
}

/*
 * Does a read fault on private anonymous memory map the shared zero page?
 * Some kernels never map it (e.g. booted with pvm_no_zero_page=1): a read
 * fault allocates a real page.  The signal: two read-faulted pages share
 * one PFN (a real page each would differ), confirmed by KPF_ZERO_PAGE when
 * kpageflags is readable.  Needs visible PFNs, else unknown.
 *
 * PT_FORCE_NO_ZERO_PAGE=1 makes the answer "no" whatever the kernel does,
 * so tests can exercise the no-zero-page path on any machine.  The
 * library then reports what it would on such a kernel: no page carries
 * PT_ATTR_ZERO (not from the PFN, not from PAGE_IS_PFNZERO, not from
 * KPF_ZERO_PAGE), and no PT_LIMIT_NO_ZERO either, since the probe's word
 * is that the attribute can never apply.  That is safe to report: the
 * attribute is a hint that a page holds no data, and every consumer
 * (hash store, soft-dirty tracker, CLI) treats a present page without it
 * as data and reads it, which gives the same zeros.  Raw kernel words
 * the caller asked for (kflags, locations) stay untouched.
 */
static void probe_zero_page(const uint64_t *e)
{
	uint64_t pfn1 = e[1] & PT_PM_PFN_MASK, pfn2 = e[2] & PT_PM_PFN_MASK;

	if (!(e[0] & PT_PM_PFN_MASK)) {
		zp_set(PT_UNKNOWN, 0, "PFNs hidden: cannot tell whether read faults map the zero page");
	} else if (!(e[1] & PT_PM_PRESENT) || !(e[2] & PT_PM_PRESENT) || !pfn1 || !pfn2) {
		zp_set(PT_UNKNOWN, 0, "read-faulted pages not present in pagemap");
	} else if (pfn1 != pfn2) {
		zp_set(PT_NO, 0, "read faults allocate a page each (kernel does not map the zero page)");
	} else {
		int kz = kpf_zero_page(pfn1);

		if (kz == 0)
			zp_set(PT_UNKNOWN, 0, "read-faulted pages share PFN %#" PRIx64
			       " without KPF_ZERO_PAGE", pfn1);
		else
			zp_set(PT_YES, pfn1, "read faults map the zero page (PFN %#" PRIx64 "%s)",
			       pfn1, kz > 0 ? ", KPF_ZERO_PAGE" : "; kpageflags not readable");
	}
}

/* PT_FORCE_NO_ZERO_PAGE=1: "no", whatever probe_zero_page() found. */
static void force_zero_page(void)
{
	const char *force = getenv("PT_FORCE_NO_ZERO_PAGE");
	char was[sizeof(zero_page.buf)];

	if (!force || strcmp(force, "1"))
		return;
	snprintf(was, sizeof(was), "%s", zero_page.reason ? zero_page.reason : "not probed");
	zp_set(PT_NO, 0, "forced by PT_FORCE_NO_ZERO_PAGE=1 (probe: %.100s)", was);
}

static void probe_pagemap(struct probe_ctx *c)
{
	const size_t pages = 4;
	volatile char *map = pt__scratch_map(pages);
	uint64_t e[4];
	int r;

	if (!map) {
		r = errno;
		setf(PT_FEAT_PAGEMAP_PFN, PT_UNKNOWN, "scratch mmap failed with %s", pt__errname(r));
		setf(PT_FEAT_PAGEMAP_SCAN, PT_UNKNOWN, "scratch mmap failed with %s", pt__errname(r));
		set(PT_FEAT_SCAN_SOFT_DIRTY, PT_UNKNOWN, "scratch mmap failed");
		set(PT_FEAT_SCAN_GUARD, PT_UNKNOWN, "scratch mmap failed");
		zp_set(PT_UNKNOWN, 0, "scratch mmap failed with %s", pt__errname(r));
		return;
	}
	map[0] = 1;			/* page 0: a real anonymous page */
	(void)map[PT_PAGE_SIZE];	/* pages 1, 2: read faults (the zero page?) */
	(void)map[2 * PT_PAGE_SIZE];

	if (c->pagemap_fd < 0) {
		set_err(PT_FEAT_PAGEMAP_PFN, c->pagemap_err, "open /proc/self/pagemap");
		zp_set(PT_UNKNOWN, 0, "pagemap not readable");
	} else if ((r = pm_read(c->pagemap_fd, (void *)map, e, pages)) < 0) {
		set_err(PT_FEAT_PAGEMAP_PFN, -r, "pread /proc/self/pagemap");
		zp_set(PT_UNKNOWN, 0, "pagemap not readable");
	} else if (!(e[0] & PT_PM_PRESENT)) {
		set(PT_FEAT_PAGEMAP_PFN, PT_UNKNOWN, "a written page is not present in pagemap");
		zp_set(PT_UNKNOWN, 0, "a written page is not present in pagemap");
	} else {
		if (!(e[0] & PT_PM_PFN_MASK))
			set(PT_FEAT_PAGEMAP_PFN, PT_NO, "PFNs read as 0 in pagemap (needs CAP_SYS_ADMIN)");
		else
			set(PT_FEAT_PAGEMAP_PFN, PT_YES, "PFNs visible in pagemap (CAP_SYS_ADMIN)");
		probe_zero_page(e);
	}
	probe_scan(c, (void *)map, pages);
	munmap((void *)map, pages * PT_PAGE_SIZE);
}

/* ------------------------------------------------------------------ */
/* soft-dirty, in a forked child                                        */

struct sd_report {
	int stage;	/* SD_* reached */
	int err;	/* errno of the failing step */
	uint64_t after_clear, after_write;
};

enum { SD_MMAP, SD_CLEAR_OPEN, SD_CLEAR_WRITE, SD_PAGEMAP, SD_DONE };

/*
 * Runs in the child: only async-signal-safe calls (the parent may be
 * multithreaded).  Writing "4" to clear_refs clears soft-dirty and
 * write-protects every page of the mm it is written for; doing it in a
 * child keeps the caller's own soft-dirty state (and its pages'
 * write permissions) untouched.
 */
__attribute__((noreturn))
static void sd_child(int wfd)
{
	struct sd_report rep = { .stage = SD_MMAP };
	volatile char *p;
	int fd;

	p = mmap(NULL, PT_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		goto fail;
	p[0] = 1;
	rep.stage = SD_CLEAR_OPEN;
	fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		goto fail;
	rep.stage = SD_CLEAR_WRITE;
	if (write(fd, "4", 1) != 1)
		goto fail;
	close(fd);
	rep.stage = SD_PAGEMAP;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pm_read(fd, (void *)p, &rep.after_clear, 1) < 0)
		goto fail;
	p[0] = 2;
	if (pm_read(fd, (void *)p, &rep.after_write, 1) < 0)
		goto fail;
	rep.stage = SD_DONE;
	rep.err = 0;
	if (write(wfd, &rep, sizeof(rep)) != sizeof(rep))
		_exit(1);
	_exit(0);
fail:
	rep.err = errno;
	if (write(wfd, &rep, sizeof(rep)) != sizeof(rep))
		_exit(1);
	_exit(0);
}

static void probe_soft_dirty(void)
{
	const enum pt_feature f = PT_FEAT_SOFT_DIRTY;
	struct sd_report rep;
	int p[2] = { -1, -1 };
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC)) {
		set_err(f, errno, "pipe2");
		return;
	}
	pid = fork();
	if (pid < 0) {
		setf(f, PT_UNKNOWN, "fork for the probe failed with %s", pt__errname(errno));
		goto out;
	}
	if (pid == 0) {
		close(p[0]);
		sd_child(p[1]);
	}
	close(p[1]);
	p[1] = -1;
	do
		n = read(p[0], &rep, sizeof(rep));
	while (n < 0 && errno == EINTR);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (n != sizeof(rep)) {
		set(f, PT_UNKNOWN, "probe child did not report");
		goto out;
	}
	switch (rep.stage) {
	case SD_DONE:
		break;
	case SD_CLEAR_OPEN:
		if (rep.err == ENOENT) {
			set(f, PT_NO, "no /proc/self/clear_refs");
			goto out;
		}
		set_err(f, rep.err, "open /proc/self/clear_refs");
		goto out;
	case SD_CLEAR_WRITE:
		set_err(f, rep.err, "writing 4 to /proc/self/clear_refs");
		goto out;
	default:
		set_err(f, rep.err, rep.stage == SD_MMAP ? "mmap in probe child"
							 : "pagemap read in probe child");
		goto out;
	}
	if (!(rep.after_write & PT_PM_PRESENT))
		set(f, PT_UNKNOWN, "written page not present in pagemap");
	else if (rep.after_write & PT_PM_SOFT_DIRTY) {
		if (rep.after_clear & PT_PM_SOFT_DIRTY)
			set(f, PT_UNKNOWN, "clear_refs 4 did not clear bit 55");
		else
			set(f, PT_YES, "bit 55 cleared by clear_refs and set again by a write");
	} else {
		set(f, PT_NO, "clear_refs 4 accepted but bit 55 never set on write "
			      "(kernel without CONFIG_MEM_SOFT_DIRTY)");
	}
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
}

/* ------------------------------------------------------------------ */
/* userfaultfd                                                          */

static void set_uffd_wp(uint64_t feats, bool known, const char *why)
{
	static const struct {
		enum pt_feature f;
		uint64_t bit;
		const char *yes, *no;
	} wp[] = {
		{ PT_FEAT_UFFD_WP_ASYNC, UFFD_FEATURE_WP_ASYNC,
		  "UFFDIO_API offers UFFD_FEATURE_WP_ASYNC",
		  "UFFDIO_API lacks UFFD_FEATURE_WP_ASYNC (kernel < 6.7)" },
		{ PT_FEAT_UFFD_WP_UNPOPULATED, UFFD_FEATURE_WP_UNPOPULATED,
		  "UFFDIO_API offers UFFD_FEATURE_WP_UNPOPULATED",
		  "UFFDIO_API lacks UFFD_FEATURE_WP_UNPOPULATED (kernel < 6.4 or no PTE markers)" },
		{ PT_FEAT_UFFD_WP_HUGETLBFS_SHMEM, UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
		  "UFFDIO_API offers UFFD_FEATURE_WP_HUGETLBFS_SHMEM",
		  "UFFDIO_API lacks UFFD_FEATURE_WP_HUGETLBFS_SHMEM (kernel < 5.19 or no PTE markers)" },
	};

	for (size_t i = 0; i < sizeof(wp) / sizeof(wp[0]); i++) {
		if (!known)
			set(wp[i].f, res[PT_FEAT_UFFD_SYSCALL].state == PT_UNKNOWN ?
				     PT_UNKNOWN : PT_NO, why);
		else if (feats & wp[i].bit)
			set(wp[i].f, PT_YES, wp[i].yes);
		else
			set(wp[i].f, PT_NO, wp[i].no);
	}
}

static void probe_uffd(void)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int fd = -1, fd2 = -1, devfd = -1, devuffd = -1, err;
	long v;

	/* The syscall: user-mode-only first (always allowed since 5.11). */
	fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (fd >= 0) {
		fd2 = (int)syscall(__NR_userfaultfd, O_CLOEXEC);
		set(PT_FEAT_UFFD_SYSCALL, PT_YES, fd2 >= 0 ?
		    "userfaultfd(2) works" :
		    "userfaultfd(2) works with UFFD_USER_MODE_ONLY only");
	} else {
		err = errno;
		if (err == EINVAL) {	/* < 5.11: flag unknown */
			fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC);
			err = fd < 0 ? errno : 0;
		}
		if (fd >= 0)
			set(PT_FEAT_UFFD_SYSCALL, PT_YES,
			    "userfaultfd(2) works (no UFFD_USER_MODE_ONLY)");
		else if (err == ENOSYS)
			set(PT_FEAT_UFFD_SYSCALL, PT_NO, "userfaultfd(2) returned ENOSYS (not built)");
		else if (err == EPERM || err == EACCES)
			setf(PT_FEAT_UFFD_SYSCALL, PT_NO, "userfaultfd(2) denied with %s", pt__errname(err));
		else
			set_err(PT_FEAT_UFFD_SYSCALL, err, "userfaultfd(2)");
	}

	/* /dev/userfaultfd (6.1): access is by file mode, not capability. */
	devfd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (devfd < 0) {
		err = errno;
		if (err == ENOENT)
			set(PT_FEAT_UFFD_DEV, PT_NO, "no /dev/userfaultfd (kernel < 6.1 or no device node)");
		else if (err == EACCES || err == EPERM)
			setf(PT_FEAT_UFFD_DEV, PT_NO, "open /dev/userfaultfd denied with %s", pt__errname(err));
		else
			set_err(PT_FEAT_UFFD_DEV, err, "open /dev/userfaultfd");
	} else {
		devuffd = ioctl(devfd, USERFAULTFD_IOC_NEW, O_CLOEXEC);
		if (devuffd >= 0)
			set(PT_FEAT_UFFD_DEV, PT_YES, "/dev/userfaultfd USERFAULTFD_IOC_NEW works");
		else
			set_err(PT_FEAT_UFFD_DEV, errno, "USERFAULTFD_IOC_NEW");
	}

	err = read_long("/proc/sys/vm/unprivileged_userfaultfd", &v);
	if (err == -ENOENT)
		set(PT_FEAT_UFFD_UNPRIVILEGED, PT_NO, "no vm.unprivileged_userfaultfd sysctl");
	else if (err < 0)
		set_err(PT_FEAT_UFFD_UNPRIVILEGED, -err, "reading vm.unprivileged_userfaultfd");
	else if (v)
		set(PT_FEAT_UFFD_UNPRIVILEGED, PT_YES, "vm.unprivileged_userfaultfd = 1");
	else
		set(PT_FEAT_UFFD_UNPRIVILEGED, PT_NO,
		    "vm.unprivileged_userfaultfd = 0 (user-mode-only faults unless CAP_SYS_PTRACE)");

	/*
	 * UFFDIO_API with features = 0 returns every feature the kernel
	 * offers.  It may be issued once per uffd, so use a throwaway fd.
	 */
	if (fd < 0 && devuffd < 0) {
		set_uffd_wp(0, false, "no userfaultfd available");
	} else if (ioctl(fd >= 0 ? fd : devuffd, UFFDIO_API, &api) < 0) {
		err = errno;
		for (enum pt_feature f = PT_FEAT_UFFD_WP_ASYNC; f <= PT_FEAT_UFFD_WP_HUGETLBFS_SHMEM; f++)
			set_err(f, err, "UFFDIO_API");
	} else {
		set_uffd_wp(api.features, true, NULL);
	}

	if (fd >= 0)
		close(fd);
	if (fd2 >= 0)
		close(fd2);
	if (devuffd >= 0)
		close(devuffd);
	if (devfd >= 0)
		close(devfd);
}

/* ------------------------------------------------------------------ */
/* pidfd, process_madvise, madvise                                      */

static void probe_pidfd(struct probe_ctx *c)
{
	int p[2] = { -1, -1 }, fd, err;

	c->pidfd = (int)syscall(__NR_pidfd_open, getpid(), 0);
	if (c->pidfd < 0) {
		err = errno;
		set_err(PT_FEAT_PIDFD_OPEN, err, "pidfd_open(2)");
		set(PT_FEAT_PIDFD_GETFD, res[PT_FEAT_PIDFD_OPEN].state, "needs pidfd_open(2)");
		set(PT_FEAT_PROCESS_MADVISE, res[PT_FEAT_PIDFD_OPEN].state, "needs pidfd_open(2)");
		return;
	}
	set(PT_FEAT_PIDFD_OPEN, PT_YES, "pidfd_open(2) works");

	if (pipe2(p, O_CLOEXEC)) {
		setf(PT_FEAT_PIDFD_GETFD, PT_UNKNOWN, "pipe2 failed with %s", pt__errname(errno));
		return;
	}
	fd = (int)syscall(__NR_pidfd_getfd, c->pidfd, p[0], 0);
	if (fd >= 0) {
		set(PT_FEAT_PIDFD_GETFD, PT_YES, "pidfd_getfd(2) works (own pipe)");
		close(fd);
	} else if (errno == EPERM || errno == EACCES) {
		setf(PT_FEAT_PIDFD_GETFD, PT_NO, "pidfd_getfd(2) on self denied with %s",
		     pt__errname(errno));
	} else {
		set_err(PT_FEAT_PIDFD_GETFD, errno, "pidfd_getfd(2)");
	}
	close(p[0]);
	close(p[1]);
}

static void probe_madvise(struct probe_ctx *c)
{
	volatile char *map = pt__scratch_map(2);
	struct iovec iov;
	uint64_t e;
	long r;

	if (!map) {
		int err = errno;

		setf(PT_FEAT_MADV_PAGEOUT, PT_UNKNOWN, "scratch mmap failed with %s", pt__errname(err));
		set(PT_FEAT_MADV_GUARD_INSTALL, PT_UNKNOWN, "scratch mmap failed");
		if (c->pidfd >= 0)
			set(PT_FEAT_PROCESS_MADVISE, PT_UNKNOWN, "scratch mmap failed");
		return;
	}
	map[0] = 1;
	map[PT_PAGE_SIZE] = 1;

	/* MADV_COLD only deactivates: harmless, and allowed via pidfd. */
	if (c->pidfd >= 0) {
		iov.iov_base = (void *)map;
		iov.iov_len = PT_PAGE_SIZE;
		r = syscall(__NR_process_madvise, c->pidfd, &iov, 1, MADV_COLD, 0);
		if (r >= 0)
			set(PT_FEAT_PROCESS_MADVISE, PT_YES, "process_madvise(2) MADV_COLD works");
		else if (errno == EINVAL)	/* the syscall exists; advice refused */
			set(PT_FEAT_PROCESS_MADVISE, PT_YES,
			    "process_madvise(2) exists but refused MADV_COLD (EINVAL)");
		else
			set_err(PT_FEAT_PROCESS_MADVISE, errno, "process_madvise(2)");
	}

	if (madvise((void *)map, PT_PAGE_SIZE, MADV_PAGEOUT) == 0)
		set(PT_FEAT_MADV_PAGEOUT, PT_YES, "madvise(MADV_PAGEOUT) works");
	else if (errno == EINVAL)
		set(PT_FEAT_MADV_PAGEOUT, PT_NO, "madvise(MADV_PAGEOUT) returned EINVAL (kernel < 5.4)");
	else
		set_err(PT_FEAT_MADV_PAGEOUT, errno, "madvise(MADV_PAGEOUT)");

	if (madvise((void *)(map + PT_PAGE_SIZE), PT_PAGE_SIZE, MADV_GUARD_INSTALL) == 0) {
		if (c->pagemap_fd >= 0 && pm_read(c->pagemap_fd, (void *)(map + PT_PAGE_SIZE), &e, 1) == 0 &&
		    (e & PT_PM_GUARD))
			set(PT_FEAT_MADV_GUARD_INSTALL, PT_YES,
			    "madvise(MADV_GUARD_INSTALL) works; pagemap shows bit 58");
		else
			set(PT_FEAT_MADV_GUARD_INSTALL, PT_YES,
			    "madvise(MADV_GUARD_INSTALL) works; pagemap bit 58 not seen (kernel < 6.15)");
	} else if (errno == EINVAL) {
		set(PT_FEAT_MADV_GUARD_INSTALL, PT_NO,
		    "madvise(MADV_GUARD_INSTALL) returned EINVAL (kernel < 6.13)");
	} else {
		set_err(PT_FEAT_MADV_GUARD_INSTALL, errno, "madvise(MADV_GUARD_INSTALL)");
	}
	munmap((void *)map, 2 * PT_PAGE_SIZE);
}

/* ------------------------------------------------------------------ */
/* /proc files, capabilities, ptrace                                    */

static int probe_read8(const char *path)
{
	uint64_t v;
	ssize_t n;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread(fd, &v, sizeof(v), 0);
	if (n < 0)
		err = -errno;
	else if (n != sizeof(v))
		err = -EIO;
	close(fd);
	return err;
}

static void probe_kpageflags(void)
{
	const enum pt_feature f = PT_FEAT_KPAGEFLAGS;
	static const char *const files[] = { "/proc/kpageflags", "/proc/kpagecount" };

	for (size_t i = 0; i < 2; i++) {
		int r = probe_read8(files[i]);

		if (r == -ENOENT) {
			setf(f, PT_NO, "no %s (CONFIG_PROC_PAGE_MONITOR off)", files[i]);
			return;
		}
		if (r == -EACCES || r == -EPERM) {
			setf(f, PT_NO, "%s not readable (needs root)", files[i]);
			return;
		}
		if (r < 0) {
			setf(f, err_means_no(-r) ? PT_NO : PT_UNKNOWN,
			     "reading %s failed with %s", files[i], pt__errname(-r));
			return;
		}
	}
	set(f, PT_YES, "/proc/kpageflags and /proc/kpagecount readable");
}

static void probe_swap(void)
{
	int n = pt__swap_count();

	if (n < 0)
		set_err(PT_FEAT_SWAP_ACTIVE, -n, "reading /proc/swaps");
	else if (n == 0)
		set(PT_FEAT_SWAP_ACTIVE, PT_NO, "no active swap area in /proc/swaps");
	else
		setf(PT_FEAT_SWAP_ACTIVE, PT_YES, "%d active swap area%s in /proc/swaps", n,
		     n == 1 ? "" : "s");
}

static void probe_caps(struct probe_ctx *c)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) < 0) {
		setf(PT_FEAT_CAP_SYS_ADMIN, PT_UNKNOWN, "capget(2) failed with %s", pt__errname(errno));
		return;
	}
	c->caps_known = true;
	c->caps_eff = data[0].effective | (uint64_t)data[1].effective << 32;
	if (c->caps_eff & (1ULL << CAP_BIT_SYS_ADMIN))
		set(PT_FEAT_CAP_SYS_ADMIN, PT_YES, "CAP_SYS_ADMIN is in the effective set");
	else
		set(PT_FEAT_CAP_SYS_ADMIN, PT_NO, "CAP_SYS_ADMIN is not in the effective set");
}

static void probe_ptrace(const struct probe_ctx *c)
{
	const enum pt_feature f = PT_FEAT_PTRACE;
	bool cap;
	long scope = -1;
	int r;

	if (!c->caps_known) {
		set(f, PT_UNKNOWN, "capabilities unknown (capget failed)");
		return;
	}
	cap = c->caps_eff & (1ULL << CAP_BIT_SYS_PTRACE);
	r = read_long("/proc/sys/kernel/yama/ptrace_scope", &scope);
	if (r < 0 && r != -ENOENT) {
		set_err(f, -r, "reading kernel.yama.ptrace_scope");
		return;
	}
	if (r == -ENOENT)
		set(f, PT_YES, cap ? "CAP_SYS_PTRACE; no Yama: any process" :
			       "no Yama: same-uid processes (no CAP_SYS_PTRACE)");
	else if (scope >= 3)
		set(f, PT_NO, "yama ptrace_scope = 3: ptrace attach disabled");
	else if (cap)
		set(f, PT_YES, "CAP_SYS_PTRACE (yama ptrace_scope <= 2)");
	else if (scope == 0)
		set(f, PT_YES, "yama ptrace_scope = 0: same-uid processes (no CAP_SYS_PTRACE)");
	else if (scope == 1)
		set(f, PT_NO, "yama ptrace_scope = 1: only descendants (no CAP_SYS_PTRACE)");
	else
		set(f, PT_NO, "yama ptrace_scope = 2: needs CAP_SYS_PTRACE");
}

/* ------------------------------------------------------------------ */
/* page size: 4 KiB is built in (PT_PAGE_SIZE)                          */

/* "16 KiB", "64 KiB", or "N-byte". */
static void size_text(size_t ps, char *buf, size_t len)
{
	if (ps >= 1024 && ps % 1024 == 0)
		snprintf(buf, len, "%zu KiB", ps / 1024);
	else
		snprintf(buf, len, "%zu-byte", ps);
}

/*
 * PT_FORCE_PAGE_SIZE=N makes the probe see N (a power of two), so the
 * refusal on 16K/64K kernels (aarch64, ppc64) is testable on a 4K one.
 */
static void probe_page_size(void)
{
	const enum pt_feature f = PT_FEAT_PAGE_SIZE_4K;
	const char *force = getenv("PT_FORCE_PAGE_SIZE");
	long sys = sysconf(_SC_PAGESIZE);
	char txt[32], forced[64] = "";

	page_size = sys > 0 ? (size_t)sys : 0;
	if (force && *force) {
		char *end;
		unsigned long v = strtoul(force, &end, 10);

		if (*end || v < 512 || (v & (v - 1)))
			pt__log(PT_LOG_WARN, "PT_FORCE_PAGE_SIZE=%s ignored: not a power of two "
				"of at least 512", force);
		else {
			page_size = v;
			snprintf(forced, sizeof(forced), " (PT_FORCE_PAGE_SIZE=%lu)", v);
		}
	}
	if (!page_size) {
		setf(f, PT_UNKNOWN, "sysconf(_SC_PAGESIZE) failed with %s", pt__errname(errno));
		return;
	}
	size_text(page_size, txt, sizeof(txt));
	if (page_size == PT_PAGE_SIZE)
		setf(f, PT_YES, "this kernel uses 4 KiB pages%s, the size pagetrack supports",
		     forced);
	else
		setf(f, PT_NO, "this kernel uses %s pages%s; pagetrack supports 4 KiB pages only",
		     txt, forced);
}

/* ------------------------------------------------------------------ */

static void probe_all(void)
{
	struct probe_ctx c = { .pagemap_fd = -1, .pidfd = -1 };

	memset(res, 0, sizeof(res));
	memset(&zero_page, 0, sizeof(zero_page));
	zero_pfn = 0;
	scan_cats = 0;
	probe_page_size();
	c.pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (c.pagemap_fd < 0)
		c.pagemap_err = errno;

	probe_caps(&c);
	probe_ptrace(&c);
	probe_pagemap(&c);
	force_zero_page();
	probe_uffd();
	probe_pidfd(&c);
	probe_madvise(&c);
	probe_kpageflags();
	probe_swap();

	for (int f = 0; f < PT_FEAT__COUNT; f++) {
		if (f == PT_FEAT_SOFT_DIRTY)
			continue;
		if (!res[f].reason)	/* a path above forgot to decide */
			set(f, PT_UNKNOWN, "not probed");
		pt__log(PT_LOG_DEBUG, "feature %s: %s (%s)", feat_names[f],
			res[f].state == PT_YES ? "yes" : res[f].state == PT_NO ? "no" : "unknown",
			res[f].reason);
	}
	if (!zero_page.reason)
		zp_set(PT_UNKNOWN, 0, "not probed");
	pt__log(PT_LOG_DEBUG, "zero page: %s (%s)", zero_page.state == PT_YES ? "yes" :
		zero_page.state == PT_NO ? "no" : "unknown", zero_page.reason);
	if (c.pidfd >= 0)
		close(c.pidfd);
	if (c.pagemap_fd >= 0)
		close(c.pagemap_fd);
}

static void ensure_probed(void)
{
	if (atomic_load_explicit(&probed, memory_order_acquire))
		return;
	pthread_mutex_lock(&probe_lock);
	if (!atomic_load_explicit(&probed, memory_order_relaxed)) {
		probe_all();
		atomic_store_explicit(&probed, true, memory_order_release);
	}
	pthread_mutex_unlock(&probe_lock);
}

/* After ensure_probed(): probe_all() wipes every result, this one included. */
static void ensure_sd_probed(void)
{
	if (atomic_load_explicit(&sd_probed, memory_order_acquire))
		return;
	pthread_mutex_lock(&probe_lock);
	if (!atomic_load_explicit(&sd_probed, memory_order_relaxed)) {
		probe_soft_dirty();
		pt__log(PT_LOG_DEBUG, "feature soft_dirty: %s (%s)",
			res[PT_FEAT_SOFT_DIRTY].state == PT_YES ? "yes" :
			res[PT_FEAT_SOFT_DIRTY].state == PT_NO ? "no" : "unknown",
			res[PT_FEAT_SOFT_DIRTY].reason);
		atomic_store_explicit(&sd_probed, true, memory_order_release);
	}
	pthread_mutex_unlock(&probe_lock);
}

int pt_feature(enum pt_feature f, const char **reason)
{
	if ((unsigned int)f >= PT_FEAT__COUNT)
		return -EINVAL;
	ensure_probed();
	if (f == PT_FEAT_SOFT_DIRTY)
		ensure_sd_probed();
	if (reason)
		*reason = res[f].reason;
	return res[f].state;
}

const char *pt_feature_name(enum pt_feature f)
{
	if ((unsigned int)f >= PT_FEAT__COUNT)
		return NULL;
	return feat_names[f];
}

void pt__features_reset(void)
{
	pthread_mutex_lock(&probe_lock);
	atomic_store_explicit(&probed, false, memory_order_release);
	atomic_store_explicit(&sd_probed, false, memory_order_release);
	pthread_mutex_unlock(&probe_lock);
}

size_t pt_page_size(void)
{
	ensure_probed();
	return page_size;
}

int pt__page_size_check(void)
{
	ensure_probed();
	if (res[PT_FEAT_PAGE_SIZE_4K].state != PT_NO)
		return 0;
	pt__log(PT_LOG_WARN, "%s", res[PT_FEAT_PAGE_SIZE_4K].reason);
	return -EOPNOTSUPP;
}

uint64_t pt__zero_pfn(void)
{
	ensure_probed();
	return zero_pfn;
}

int pt__zero_page(const char **reason)
{
	ensure_probed();
	if (reason)
		*reason = zero_page.reason;
	return zero_page.state;
}

uint64_t pt__scan_categories(void)
{
	ensure_probed();
	return scan_cats;
}

int pt__swap_count(void)
{
	char buf[4096];
	int fd, lines = 0;
	bool partial = false;	/* a line without its newline yet */
	ssize_t n;

	fd = open("/proc/swaps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				lines++;
				partial = false;
			} else {
				partial = true;
			}
		}
	}
	if (n < 0) {
		n = -errno;
		close(fd);
		return (int)n;
	}
	close(fd);
	lines += partial;
	return lines > 0 ? lines - 1 : 0;	/* minus the header line */
}
