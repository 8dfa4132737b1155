/* SPDX-License-Identifier: MIT */
/*
 * The cost of one write fault on this machine (pt_fault_cost_ns()),
 * measured once, on request only: a uffd-wp async fault where the kernel
 * has it, else a first-touch fault.  Kept apart from the feature probes
 * (features.c) because it is timed work that pt_feature() never runs.
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


#define FC_PAGES 256u
#define FC_REPS 9

/* Tests: sleep this long in the middle of the faulted pass of two runs in three. */
PT_HIDDEN uint64_t pt__fault_cost_test_stall_ns;

static pthread_mutex_t fc_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool fc_probed;
static int fc_kind;		/* enum pt_fault_kind */
static uint64_t fc_ns;
static char fc_how[200];

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

static void probe_fault_cost(void)
{
	const char *wp_reason = NULL, *what = NULL;
	uint64_t ns = 0;
	int r;

	const char *force = getenv("PT_FORCE_FAULT_COST");

	fc_kind = PT_FAULT_KIND_NONE;
	fc_ns = 0;
	r = pt_feature(PT_FEAT_UFFD_WP_ASYNC, &wp_reason);
	if (force && !strcmp(force, "first_touch")) {
		/* tests: the fallback, on a machine that has uffd-wp async */
		snprintf(fc_how, sizeof(fc_how), "forced by PT_FORCE_FAULT_COST=first_touch");
	} else if (r == PT_YES) {
		r = fc_measure_uffd(&ns, &what);
		if (r == 0) {
			fc_kind = PT_FAULT_KIND_UFFD_WP;
			fc_ns = ns;
			snprintf(fc_how, sizeof(fc_how), "userfaultfd-wp async write fault on a "
				 "populated page, median of %d runs over %u pages (CPU time)", FC_REPS, FC_PAGES);
			return;
		}
		snprintf(fc_how, sizeof(fc_how), "%s failed with %s", what, pt__errname(-r));
	} else {
		snprintf(fc_how, sizeof(fc_how), "no uffd-wp async (%s)",
			 wp_reason ? wp_reason : "not probed");
	}
	/* keep why uffd-wp was not measured, in front of what was */
	char why[sizeof(fc_how)];

	snprintf(why, sizeof(why), "%s", fc_how);
	r = fc_measure_touch(&ns);
	if (r == 0) {
		fc_kind = PT_FAULT_KIND_FIRST_TOUCH;
		fc_ns = ns;
		snprintf(fc_how, sizeof(fc_how), "first-touch page fault instead, median of %d "
			 "runs over %u pages (CPU time): %.120s", FC_REPS, FC_PAGES, why);
	} else {
		snprintf(fc_how, sizeof(fc_how), "not measured: scratch mmap failed with %s; "
			 "%.120s", pt__errname(-r), why);
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
	}
	return NULL;
}

void pt__fault_cost_reset(void)
{
	pthread_mutex_lock(&fc_lock);
	atomic_store_explicit(&fc_probed, false, memory_order_release);
	pthread_mutex_unlock(&fc_lock);
}
