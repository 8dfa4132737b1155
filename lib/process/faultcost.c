/* SPDX-License-Identifier: MIT */
/*
 * The cost of one write fault on this machine (pt_fault_cost_ns()),
 * measured once, on request only: a uffd-wp async fault where the kernel
 * has it, else a soft-dirty fault (in a forked child) where the kernel
 * has that, else a first-touch fault.  The kind is chosen here, in one
 * place, from the feature probes (features.c); kept apart from them
 * because it is timed work that pt_feature() never runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
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


#define FC_PAGES 256u
#define FC_REPS 9

/* Tests: sleep this long in the middle of the faulted pass of two runs in three. */
PT_HIDDEN uint64_t pt__fault_cost_test_stall_ns;
/* Tests: the soft-dirty child sleeps this long before it reports. */
PT_HIDDEN uint64_t pt__fault_cost_test_child_sleep_ns;
/*
 * How long the soft-dirty child may take to report (wall time, from the
 * fork's return): ~15 ms of work where a fault costs ~6 us, plus one
 * clear_refs walk per run of the page tables the child inherited (~1 ms
 * per GiB the caller has resident); far more only if the machine is
 * starved, and then the first-touch fallback is measured instead.
 */
PT_HIDDEN unsigned int pt__fault_cost_child_timeout_ms = 20000;

static pthread_mutex_t fc_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool fc_probed;
static int fc_kind;		/* enum pt_fault_kind */
static uint64_t fc_ns;
static char fc_how[360];

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * CPU time (ns) to write one byte to each of @pages pages of @map.  This
 * thread's CPU time, fault handling included, not wall time: a run that
 * is preempted or waits (a loaded machine) is not charged for it.  (Wall
 * time once gave 7.3 µs where a fault costs 0.88 µs, most likely runs
 * preempted by other work.)  @stall: the test hook, run mid-way.
 */
static uint64_t fc_write_all(volatile char *map, size_t pages, char v, bool stall)
{
	uint64_t t0 = thread_cpu_ns();

	for (size_t i = 0; i < pages; i++) {
		map[i * PT_PAGE_SIZE] = v;
		if (stall && i == pages / 2) {
			struct timespec ts = { 0, (long)pt__fault_cost_test_stall_ns };

			nanosleep(&ts, NULL);
		}
	}
	return thread_cpu_ns() - t0;
}

static bool fc_stall(int rep)
{
	return pt__fault_cost_test_stall_ns && rep % 3 != 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* A userfaultfd of our own, as the tracker of the calling process makes it. */
static int fc_userfaultfd(void)
{
	int fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);

	if (fd < 0 && (errno == EPERM || errno == EINVAL))
		fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && (errno == EPERM || errno == ENOSYS)) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
			close(dev);
		}
	}
	return fd < 0 ? -errno : fd;
}

/*
 * Median over FC_REPS of (first write to each write-protected, populated
 * page) - (the same writes again, now unprotected), per page: what one
 * page the tracker re-protected costs its writer.  0 on success, else a
 * negative errno with @what naming the step.
 */
static int fc_measure_uffd(uint64_t *ns, const char **what)
{
	const size_t len = FC_PAGES * PT_PAGE_SIZE;
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC };
	volatile char *map;
	uint64_t d[FC_REPS];
	int fd, err = 0;

	*what = "scratch mmap";
	map = pt__scratch_map(FC_PAGES);
	if (!map)
		return -errno;
	madvise((void *)map, len, MADV_NOHUGEPAGE);	/* one fault per 4 KiB page */
	fc_write_all(map, FC_PAGES, 1, false);		/* populate: WP faults only, below */
	*what = "userfaultfd";
	fd = fc_userfaultfd();
	if (fd < 0) {
		err = fd;
		goto out_unmap;
	}
	*what = "UFFDIO_API (WP_ASYNC)";
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		err = -errno;
		goto out;
	}
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)map, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	*what = "UFFDIO_REGISTER (WP)";
	if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
		err = -errno;
		goto out;
	}
	for (int r = 0; r < FC_REPS; r++) {
		struct uffdio_writeprotect wp = {
			.range = { .start = (uintptr_t)map, .len = len },
			.mode = UFFDIO_WRITEPROTECT_MODE_WP,
		};
		uint64_t faulted, plain;

		*what = "UFFDIO_WRITEPROTECT";
		if (ioctl(fd, UFFDIO_WRITEPROTECT, &wp) < 0) {
			err = -errno;
			goto out;
		}
		faulted = fc_write_all(map, FC_PAGES, (char)(r + 2), fc_stall(r));
		plain = fc_write_all(map, FC_PAGES, (char)(r + 3), false);
		d[r] = faulted > plain ? (faulted - plain) / FC_PAGES : 0;
	}
	qsort(d, FC_REPS, sizeof(d[0]), cmp_u64);
	*ns = d[FC_REPS / 2];
out:
	close(fd);	/* unregisters the range */
out_unmap:
	munmap((void *)map, len);
	return err;
}

/* ------------------------------------------------------------------ */
/* soft-dirty, in a forked child                                        */

struct fc_sd_report {
	int stage;			/* FC_SD_* reached */
	int err;			/* errno of the failing step */
	uint64_t d[FC_REPS];		/* per run: ns per page, faulted - plain */
};

enum { FC_SD_MMAP, FC_SD_OPEN, FC_SD_CLEAR, FC_SD_DONE };

static const char *const fc_sd_step[] = {
	[FC_SD_MMAP] = "mmap in the soft-dirty child",
	[FC_SD_OPEN] = "open /proc/self/clear_refs in the soft-dirty child",
	[FC_SD_CLEAR] = "writing 4 to /proc/self/clear_refs in the soft-dirty child",
};

/*
 * Runs in the forked child: only async-signal-safe calls (the caller may
 * be multithreaded; another thread may have held malloc's or stdio's
 * locks at the fork), so no malloc, no stdio, no qsort: the raw runs go
 * to the parent, which takes the median.  The pages are mapped and
 * populated here, so they are the child's own (a page populated before
 * the fork would be shared with the caller, and its first write a COW
 * copy, not the soft-dirty fault).  Writing "4" to clear_refs clears
 * soft-dirty and write-protects every page of the child's mm, as the
 * softdirty tracker does to its target; the first write to each page is
 * then the write-protect fault that sets soft-dirty again.
 */
__attribute__((noreturn))
static void fc_sd_child(int wfd)
{
	const size_t len = FC_PAGES * PT_PAGE_SIZE;
	struct fc_sd_report rep = { .stage = FC_SD_MMAP };
	volatile char *map;
	int fd;

	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		goto fail;
	madvise((void *)map, len, MADV_NOHUGEPAGE);	/* one fault per 4 KiB page */
	fc_write_all(map, FC_PAGES, 1, false);		/* populate: WP faults only, below */
	rep.stage = FC_SD_OPEN;
	fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		goto fail;
	for (int r = 0; r < FC_REPS; r++) {
		uint64_t faulted, plain;

		rep.stage = FC_SD_CLEAR;
		if (write(fd, "4", 1) != 1)
			goto fail;
		/*
		 * clear_refs write-protected this stack too: fault its pages
		 * back in by the same call chain, untimed, so that the timed
		 * pass takes the faults of the map's pages only.
		 */
		fc_write_all(map, 0, 0, false);
		faulted = fc_write_all(map, FC_PAGES, (char)(r + 2), fc_stall(r));
		plain = fc_write_all(map, FC_PAGES, (char)(r + 3), false);
		rep.d[r] = faulted > plain ? (faulted - plain) / FC_PAGES : 0;
	}
	rep.stage = FC_SD_DONE;
	errno = 0;
fail:
	rep.err = errno;
	if (pt__fault_cost_test_child_sleep_ns) {
		struct timespec ts = {
			(time_t)(pt__fault_cost_test_child_sleep_ns / 1000000000u),
			(long)(pt__fault_cost_test_child_sleep_ns % 1000000000u),
		};

		nanosleep(&ts, NULL);
	}
	_exit(write(wfd, &rep, sizeof(rep)) == sizeof(rep) ? 0 : 1);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Read the child's report, waiting at most pt__fault_cost_child_timeout_ms.
 * 0 (all of it), -EPIPE (the child exited without it) or -ETIMEDOUT.
 */
static int fc_sd_read(int fd, struct fc_sd_report *rep)
{
	const int64_t deadline = mono_ms() + pt__fault_cost_child_timeout_ms;
	size_t got = 0;

	while (got < sizeof(*rep)) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - mono_ms();
		ssize_t n;
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, (int)(left > INT32_MAX ? INT32_MAX : left));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;	/* EINTR, or the time is up: checked above */
		n = read(fd, (char *)rep + got, sizeof(*rep) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		got += (size_t)n;
	}
	return 0;
}

/*
 * Median over FC_REPS of (first write to each page write-protected by
 * clear_refs 4) - (the same writes again), per page: what one page the
 * softdirty tracker re-armed costs its writer.  Measured in a child
 * because clear_refs acts on a whole mm: in the caller it would
 * write-protect all of the caller's memory and wipe its soft-dirty bits
 * (those a softdirty tracker of the caller itself relies on).  A fork(),
 * not vfork() or clone(CLONE_VM): the child needs an mm of its own, which
 * only a copy gives (no exec: a library has no helper binary to run).
 * The parent stays free, waits for the report with a bound, kills the
 * child past it, and always reaps it by its pid.  0 on success, else a
 * negative errno with @what naming the step.  Tests call it directly to
 * exercise the child where the kernel has no soft-dirty.
 */
int pt__fault_cost_measure_soft_dirty(uint64_t *ns, const char **what)
{
	struct fc_sd_report rep;
	int p[2], err, status;
	pid_t pid;

	*what = "pipe2";
	if (pipe2(p, O_CLOEXEC))
		return -errno;
	*what = "fork";
	pid = fork();
	if (pid < 0) {
		err = -errno;
		close(p[0]);
		close(p[1]);
		return err;
	}
	if (pid == 0) {
		close(p[0]);
		fc_sd_child(p[1]);
	}
	close(p[1]);
	err = fc_sd_read(p[0], &rep);
	close(p[0]);
	if (err == -ETIMEDOUT)
		kill(pid, SIGKILL);	/* not reaped yet: still our child */
	/* ECHILD: the caller ignores SIGCHLD, the kernel reaped it */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (err == -ETIMEDOUT) {
		*what = "the soft-dirty child's report (killed: not in time)";
		return err;
	}
	if (err) {
		*what = "the soft-dirty child's report (it exited without one)";
		return err;
	}
	if (rep.stage != FC_SD_DONE) {
		*what = (unsigned int)rep.stage < FC_SD_DONE ? fc_sd_step[rep.stage]
							     : "the soft-dirty child";
		return rep.err > 0 ? -rep.err : -EIO;
	}
	qsort(rep.d, FC_REPS, sizeof(rep.d[0]), cmp_u64);
	*ns = rep.d[FC_REPS / 2];
	return 0;
}

/* The same, for the first write to a fresh page (a plain anonymous fault). */
static int fc_measure_touch(uint64_t *ns)
{
	const size_t len = FC_PAGES * PT_PAGE_SIZE;
	uint64_t d[FC_REPS];
	volatile char *map = pt__scratch_map(FC_PAGES);

	if (!map)
		return -errno;
	madvise((void *)map, len, MADV_NOHUGEPAGE);
	for (int r = 0; r < FC_REPS; r++) {
		uint64_t faulted, plain;

		if (r && madvise((void *)map, len, MADV_DONTNEED) < 0) {
			int err = -errno;

			munmap((void *)map, len);
			return err;
		}
		faulted = fc_write_all(map, FC_PAGES, 1, fc_stall(r));
		plain = fc_write_all(map, FC_PAGES, 2, false);
		d[r] = faulted > plain ? (faulted - plain) / FC_PAGES : 0;
	}
	munmap((void *)map, len);
	qsort(d, FC_REPS, sizeof(d[0]), cmp_u64);
	*ns = d[FC_REPS / 2];
	return 0;
}

/*
 * The one place the kind is chosen: uffd-wp async if usable, else
 * soft-dirty if the kernel sets the bit (pt_feature(): the same order as
 * the tracker's backends), else a first touch.  PT_FORCE_FAULT_COST=
 * soft_dirty skips uffd-wp, =first_touch skips both (tests: the
 * fallbacks on a machine that has the faster path).  *how keeps why each
 * kind before the measured one was not.
 */
static void probe_fault_cost(void)
{
	const char *force = getenv("PT_FORCE_FAULT_COST");
	bool no_wp = force && (!strcmp(force, "soft_dirty") || !strcmp(force, "first_touch"));
	bool no_sd = force && !strcmp(force, "first_touch");
	const char *reason = NULL, *what = NULL;
	char why[sizeof(fc_how)];
	uint64_t ns = 0;
	int r;

	fc_kind = PT_FAULT_KIND_NONE;
	fc_ns = 0;
	r = pt_feature(PT_FEAT_UFFD_WP_ASYNC, &reason);
	if (no_wp) {
		snprintf(why, sizeof(why), "forced by PT_FORCE_FAULT_COST=%s", force);
	} else if (r == PT_YES) {
		r = fc_measure_uffd(&ns, &what);
		if (r == 0) {
			fc_kind = PT_FAULT_KIND_UFFD_WP;
			fc_ns = ns;
			snprintf(fc_how, sizeof(fc_how), "userfaultfd-wp async write fault on a "
				 "populated page, median of %d runs over %u pages (CPU time)", FC_REPS, FC_PAGES);
			return;
		}
		snprintf(why, sizeof(why), "%s failed with %s", what, pt__errname(-r));
	} else {
		snprintf(why, sizeof(why), "no uffd-wp async (%s)", reason ? reason : "not probed");
	}

	if (!no_sd) {
		r = pt_feature(PT_FEAT_SOFT_DIRTY, &reason);
		if (r == PT_YES) {
			r = pt__fault_cost_measure_soft_dirty(&ns, &what);
			if (r == 0) {
				fc_kind = PT_FAULT_KIND_SOFT_DIRTY;
				fc_ns = ns;
				snprintf(fc_how, sizeof(fc_how), "soft-dirty write fault (clear_refs 4) "
					 "on a populated page, in a child process, median of %d runs "
					 "over %u pages (CPU time): %.150s", FC_REPS, FC_PAGES, why);
				return;
			}
			size_t n = strlen(why);

			snprintf(why + n, sizeof(why) - n, "; soft-dirty: %s failed with %s",
				 what, pt__errname(-r));
		} else {
			size_t n = strlen(why);

			snprintf(why + n, sizeof(why) - n, "; no soft-dirty (%.100s)",
				 reason ? reason : "not probed");
		}
	}

	r = fc_measure_touch(&ns);
	if (r == 0) {
		fc_kind = PT_FAULT_KIND_FIRST_TOUCH;
		fc_ns = ns;
		snprintf(fc_how, sizeof(fc_how), "first-touch page fault instead, median of %d "
			 "runs over %u pages (CPU time): %.250s", FC_REPS, FC_PAGES, why);
	} else {
		snprintf(fc_how, sizeof(fc_how), "not measured: scratch mmap failed with %s; "
			 "%.250s", pt__errname(-r), why);
	}
}

int pt_fault_cost_ns(uint64_t *ns, const char **how)
{
	if (!atomic_load_explicit(&fc_probed, memory_order_acquire)) {
		/* outside probe_lock: the probe asks pt_feature(), which takes it */
		pthread_mutex_lock(&fc_lock);
		if (!atomic_load_explicit(&fc_probed, memory_order_relaxed)) {
			probe_fault_cost();
			pt__log(PT_LOG_DEBUG, "fault cost: %" PRIu64 " ns (%s)", fc_ns, fc_how);
			atomic_store_explicit(&fc_probed, true, memory_order_release);
		}
		pthread_mutex_unlock(&fc_lock);
	}
	if (ns)
		*ns = fc_ns;
	if (how)
		*how = fc_how;
	return fc_kind;
}

const char *pt_fault_kind_name(enum pt_fault_kind k)
{
	switch (k) {
	case PT_FAULT_KIND_NONE:
		return "none";
	case PT_FAULT_KIND_UFFD_WP:
		return "uffd_wp";
	case PT_FAULT_KIND_FIRST_TOUCH:
		return "first_touch";
	case PT_FAULT_KIND_SOFT_DIRTY:
		return "soft_dirty";
	}
	return NULL;
}

void pt__fault_cost_reset(void)
{
	pthread_mutex_lock(&fc_lock);
	atomic_store_explicit(&fc_probed, false, memory_order_release);
	pthread_mutex_unlock(&fc_lock);
}
