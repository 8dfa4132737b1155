/* SPDX-License-Identifier: MIT */
/*
 * A synchronous O_DIRECT read whose pages are pinned before a collect
 * and whose data lands after it.  The pinning write fault makes the pages
 * written, so the round reports them; a copier reading them right after
 * the collect must see the read's bytes, or no later round would say the
 * copy is stale (the uffd backend re-protected them, and DMA does not
 * fault).  The read is slowed to about a second by a blkio throttle so
 * the collect surely runs while it is in flight.  With PT_TRACK_NO_BARRIER
 * (callers that only count pages, like `pagetrack watch`) the collect
 * must not wait for it.  Skipped without an
 * O_DIRECT-capable disk filesystem or a blkio throttle (cgroup v1
 * blkio.throttle.read_bps_device or v2 io.max).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cowstress.h"
#include "fixture.h"
#include "tap.h"

#define LEN (1u << 20)		/* the read: 256 pages */
#define RATE (LEN)		/* bytes per second: about one second per read */
#define FILL 0xee		/* the buffer before the read */

struct shm {
	_Atomic int ready, go, done;
	_Atomic long ret;
	uintptr_t buf;
};

static struct shm *sh;
static char cg[256];		/* the throttle cgroup's directory */
static char cg_tasks[300];	/* where a pid is written to join it */
static char file[4200];

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int put(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	n = n < 0 ? -errno : 0;
	close(fd);
	return (int)n;
}

/* The whole disk under @dir: major:minor in @out.  false when not found. */
static bool disk_of(const char *dir, char *out, size_t len)
{
	char path[128], devf[160], buf[32];
	struct stat st;
	FILE *f;

	if (stat(dir, &st))
		return false;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
	snprintf(devf, sizeof(devf), "%s/partition", path);
	/* a partition: its disk is the parent directory of the link's target */
	snprintf(devf, sizeof(devf), access(devf, F_OK) == 0 ? "%s/../dev" : "%s/dev", path);
	f = fopen(devf, "re");
	if (!f)
		return false;
	bool ok = fgets(buf, sizeof(buf), f) != NULL;

	fclose(f);
	if (!ok)
		return false;
	buf[strcspn(buf, "\n")] = 0;
	snprintf(out, len, "%s", buf);
	return true;
}

static void cleanup(void)
{
	if (cg[0])
		rmdir(cg);
	if (file[0])
		unlink(file);
}

/* A cgroup whose reads from @disk are throttled to RATE.  NULL or why not. */
static const char *make_throttle(const char *disk)
{
	static char why[160];
	char path[320], rule[64];
	int err;

	snprintf(cg, sizeof(cg), "/sys/fs/cgroup/blkio/pagetrack-test-dma-%d", (int)getpid());
	if (mkdir(cg, 0755) == 0) {
		snprintf(path, sizeof(path), "%s/blkio.throttle.read_bps_device", cg);
		snprintf(rule, sizeof(rule), "%s %u", disk, RATE);
		if ((err = put(path, rule)) == 0) {
			snprintf(cg_tasks, sizeof(cg_tasks), "%s/cgroup.procs", cg);
			return NULL;
		}
		rmdir(cg);
		snprintf(why, sizeof(why), "blkio throttle refused: %s", strerror(-err));
		cg[0] = 0;
		return why;
	}
	/* cgroup v2 mounted at /sys/fs/cgroup with the io controller */
	snprintf(cg, sizeof(cg), "/sys/fs/cgroup/pagetrack-test-dma-%d", (int)getpid());
	if (put("/sys/fs/cgroup/cgroup.subtree_control", "+io") == 0 && mkdir(cg, 0755) == 0) {
		snprintf(path, sizeof(path), "%s/io.max", cg);
		snprintf(rule, sizeof(rule), "%s rbps=%u", disk, RATE);
		if ((err = put(path, rule)) == 0) {
			snprintf(cg_tasks, sizeof(cg_tasks), "%s/cgroup.procs", cg);
			return NULL;
		}
		rmdir(cg);
		snprintf(why, sizeof(why), "io.max refused: %s", strerror(-err));
		cg[0] = 0;
		return why;
	}
	cg[0] = 0;
	return "no blkio throttle (cgroup v1 blkio or v2 io controller) to slow a read down";
}

static void child(int fd)
{
	uint8_t *buf = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (buf == MAP_FAILED)
		_exit(2);
	memset(buf, FILL, LEN);
	sh->buf = (uintptr_t)buf;
	atomic_store(&sh->ready, 1);
	while (!atomic_load(&sh->go))
		usleep(1000);
	atomic_store(&sh->ret, (long)pread(fd, buf, LEN, 0));
	atomic_store(&sh->done, 1);
	for (;;)
		pause();
}

/* Is @pid inside pread64 now (/proc/PID/syscall)? */
static bool in_pread(pid_t pid)
{
	char path[64], buf[64] = "";
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	return strtol(buf, NULL, 10) == SYS_pread64;
}

/* Copy the reported pages of the buffer into @copy. */
static int collect_copy(struct pt_tracker *tr, pid_t pid, uint8_t *copy, size_t *pages)
{
	struct pt_dirty d[256];
	bool more = true;

	*pages = 0;
	while (more) {
		int n = pt_tracker_collect(tr, d, 256, &more);

		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			uint64_t s = d[i].start > sh->buf ? d[i].start : sh->buf;
			uint64_t e = d[i].end < sh->buf + LEN ? d[i].end : sh->buf + LEN;

			for (uint64_t a = s; a < e; a += FX_PAGE) {
				uint8_t *dst = copy + (a - sh->buf);
				struct iovec l = { dst, FX_PAGE }, r = { (void *)(uintptr_t)a, FX_PAGE };

				if (process_vm_readv(pid, &l, 1, &r, 1, 0) != (ssize_t)FX_PAGE)
					return -errno;
				pt_tracker_note_copy(tr, a, dst, FX_PAGE);
				(*pages)++;
			}
		}
	}
	return 0;
}

/*
 * @flags PT_TRACK_NO_BARRIER (a caller that only counts pages): the
 * collect must not wait for the read, and the copy is not checked.
 * Two subtests, one with PT_TRACK_NO_BARRIER, whatever happens.
 */
static void run(enum pt_track_backend b, uint32_t flags, const uint8_t *want)
{
	const char *bn = flags ? "uffd (no barrier)" : pt_track_backend_name(b), *why = NULL;
	struct pt_tracker_opts o = { .sz = sizeof(o), .backend = b, .flags = flags };
	static uint8_t copy[LEN];
	struct pt_tracker *tr = NULL;
	char pidstr[32];
	size_t pages = 0, later = 0;
	int fd = open(file, O_RDONLY | O_DIRECT | O_CLOEXEC), err = 0, status;
	int checks = (flags & PT_TRACK_NO_BARRIER) ? 1 : 2;
	pid_t pid;

	if (!fx_track_backend_usable(b, true, &why)) {
		tap_skip_n(checks, why, "%s: an O_DIRECT read landing after the collect is in the copy",
			   bn);
		if (fd >= 0)
			close(fd);
		return;
	}
	if (fd < 0) {
		tap_ok(0, "%s: O_DIRECT open of the test file: %s", bn, strerror(errno));
		tap_skip_n(checks - 1, "no test file", "%s: the copy holds the read's data", bn);
		return;
	}
	memset(sh, 0, sizeof(*sh));
	pid = fork();
	if (pid == 0)
		child(fd);
	close(fd);
	while (!atomic_load(&sh->ready))
		usleep(1000);
	tr = pt_tracker_create(pid, &o);
	if (!tr) {
		tap_ok(0, "%s: tracker created (the probes say it is usable): %s", bn, strerror(errno));
		tap_skip_n(checks - 1, "no tracker", "%s: the copy holds the read's data", bn);
		goto out;
	}
	memset(copy, FILL, LEN);	/* the copy made at arming */
	snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
	if ((err = put(cg_tasks, pidstr))) {
		tap_ok(0, "%s: target put in the throttle cgroup (%s)", bn, strerror(-err));
		tap_skip_n(checks - 1, "read not throttled", "%s: the copy holds the read's data", bn);
		goto out;
	}
	atomic_store(&sh->go, 1);
	for (uint64_t t0 = now_ms(); !in_pread(pid) && now_ms() - t0 < 5000;)
		usleep(1000);
	usleep(100 * 1000);	/* the pages are pinned at once; the data comes at RATE */
	bool in_flight = in_pread(pid) && !atomic_load(&sh->done);
	uint64_t t1 = now_ms();

	err = collect_copy(tr, pid, copy, &pages);
	uint64_t t2 = now_ms();
	bool waited = atomic_load(&sh->done) || !in_pread(pid);

	if (!in_flight) {
		tap_skip_n(checks, "the read was not in flight when the collect began (throttle "
			   "without effect?)", "%s: an O_DIRECT read landing after the collect is in "
			   "the copy", bn);
		goto out;
	}
	tap_diag("%s: collect during the read took %" PRIu64 " ms (the read takes about %u), "
		 "%zu pages copied after it", bn, t2 - t1, LEN * 1000u / RATE, pages);
	if (flags & PT_TRACK_NO_BARRIER) {
		tap_ok(!err && !waited, "%s: the collect returned while the read was still in "
		       "flight (%s)", bn, strerror(-err));
		goto out;
	}
	while (!atomic_load(&sh->done))
		usleep(1000);
	if (!err)
		err = collect_copy(tr, pid, copy, &later);
	tap_ok(!err && atomic_load(&sh->ret) == (long)LEN, "%s: read and two collects ran (%s, "
	       "read returned %ld)", bn, strerror(-err), atomic_load(&sh->ret));
	size_t bad = 0;

	for (size_t p = 0; p < LEN / FX_PAGE; p++)
		bad += memcmp(copy + p * FX_PAGE, want + p * FX_PAGE, FX_PAGE) != 0;
	tap_ok(!err && bad == 0, "%s: a copy of each round's pages holds what the O_DIRECT read "
	       "brought (%zu of %u pages stale; %zu + %zu pages copied)", bn, bad, (unsigned)(LEN / FX_PAGE),
	       pages, later);
out:
	pt_tracker_free(tr);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
}

int main(void)
{
	static const enum pt_track_backend bs[] = { PT_TRACK_UFFD, PT_TRACK_SOFTDIRTY,
						    PT_TRACK_HASH };
	static uint8_t want[LEN];
	const char *why = NULL;
	char dir[4096], disk[32];
	int fd;

	if (geteuid() != 0)
		tap_skip_all("needs root (a blkio cgroup)");
	if (pt_cowstress_dir(dir, sizeof(dir), &why))
		tap_skip_all(why);
	if (!disk_of(dir, disk, sizeof(disk)))
		tap_skip_all("the disk under the O_DIRECT directory was not found in /sys/dev/block");
	if ((why = make_throttle(disk)))
		tap_skip_all(why);
	atexit(cleanup);
	snprintf(file, sizeof(file), "%s/pt-dma-XXXXXX", dir);
	fd = mkstemp(file);
	if (fd < 0) {
		file[0] = 0;
		tap_skip_all("cannot create the test file");
	}
	for (size_t i = 0; i < LEN; i++)
		want[i] = (uint8_t)(i / FX_PAGE * 7 + i % 251 + 1);
	if (write(fd, want, LEN) != (ssize_t)LEN || fsync(fd)) {
		close(fd);
		tap_skip_all("cannot write the test file");
	}
	close(fd);
	sh = fx_map(FX_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	tap_diag("O_DIRECT file in %s on disk %s, reads throttled to %u KiB/s", dir, disk,
		 RATE / 1024);
	/* run() prints 2 subtests per backend, 1 without the barrier */
	tap_plan(2 * (int)(sizeof(bs) / sizeof(bs[0])) + 1);
	for (size_t i = 0; i < sizeof(bs) / sizeof(bs[0]); i++)
		run(bs[i], 0, want);
	run(PT_TRACK_UFFD, PT_TRACK_NO_BARRIER, want);
	return tap_done();
}
