/* SPDX-License-Identifier: MIT */
#include "fixture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "zram.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

static int swap_state;	/* 0 untried, 1 ok, -1 unavailable */
static const char *swap_why;

static void swap_cleanup(void)
{
	pt_zram_swap_off();
}

bool fx_swap(const char **why)
{
	if (!swap_state) {
		int r = pt_zram_swap_on(2048, &swap_why);

		/*
		 * Every user, not only the creator: the last program still
		 * using a pagetrack-made zram swap tears it down (zram.c).
		 */
		if (r >= 0)
			atexit(swap_cleanup);
		swap_state = r >= 0 ? 1 : -1;
	}
	if (why)
		*why = swap_why;
	return swap_state == 1;
}

int fx_backends(enum pt_scan_backend out[2])
{
	int n = 0;

	if (pt_feature(PT_FEAT_PAGEMAP_SCAN, NULL) == PT_YES)
		out[n++] = PT_SCAN_BACKEND_PAGEMAP_SCAN;
	out[n++] = PT_SCAN_BACKEND_PAGEMAP_READ;
	return n;
}

static uint64_t fx_t0;

uint64_t fx_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

__attribute__((constructor))
static void fx_start_clock(void)
{
	fx_t0 = fx_now_ms();
}

unsigned fx_budget_s(void)
{
	const char *e = getenv("PT_TEST_TIMEOUT");
	unsigned long s = e ? strtoul(e, NULL, 10) : 0;

	return s ? (unsigned)s : 600;
}

uint64_t fx_deadline_ms(unsigned parts_left)
{
	uint64_t end = fx_t0 + (uint64_t)fx_budget_s() * 850, now = fx_now_ms();
	uint64_t share = now < end ? (end - now) / (parts_left ? parts_left : 1) : 0;

	return now + (share > 1000 ? share : 1000);
}

/* Number of threads of the calling process (1 if unreadable). */
static int own_threads(void)
{
	char line[256];
	int n = 1;
	FILE *f = fopen("/proc/self/status", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

/* False with *why when probe @f does not say yes. */
static bool feat_yes(enum pt_feature f, const char **why)
{
	const char *r = NULL;

	if (pt_feature(f, &r) == PT_YES)
		return true;
	*why = r ? r : pt_feature_name(f);
	return false;
}

bool fx_track_backend_usable(enum pt_track_backend b, bool other, const char **why)
{
	const char *dummy;

	if (!why)
		why = &dummy;
	*why = NULL;
	switch (b) {
	case PT_TRACK_HASH:
		return true;
	case PT_TRACK_UFFD:
		if (!feat_yes(PT_FEAT_PAGEMAP_SCAN, why) || !feat_yes(PT_FEAT_UFFD_WP_ASYNC, why) ||
		    !feat_yes(PT_FEAT_UFFD_WP_UNPOPULATED, why))
			return false;
		return !other || (feat_yes(PT_FEAT_PIDFD_GETFD, why) && feat_yes(PT_FEAT_PTRACE, why));
	case PT_TRACK_SOFTDIRTY:
		if (!feat_yes(PT_FEAT_SOFT_DIRTY, why))
			return false;
		if (other)
			return feat_yes(PT_FEAT_PTRACE, why);
		if (own_threads() > 1) {
			*why = "soft-dirty cannot track the calling process while it has other threads";
			return false;
		}
		return true;
	default:
		*why = "not a tracker backend";
		return false;
	}
}

/* ---- simulated proactive reclaim (PT_TEST_RECLAIM=1) ---- */

#define RC_MAXPIDS 16
#define RC_MAXTICKS 10000000UL	/* count bound of the thread's loop */

static bool rc_on;
static pthread_mutex_t rc_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t rc_pids[RC_MAXPIDS];
static uint64_t rc_done;	/* successful pageouts, for the report at exit */

bool fx_reclaim_active(void)
{
	return rc_on;
}

static void rc_add(pid_t pid)
{
	pthread_mutex_lock(&rc_lock);
	for (int i = 0; i < RC_MAXPIDS; i++)
		if (!rc_pids[i]) {
			rc_pids[i] = pid;
			break;
		}
	pthread_mutex_unlock(&rc_lock);
}

static void rc_del(pid_t pid)
{
	pthread_mutex_lock(&rc_lock);
	for (int i = 0; i < RC_MAXPIDS; i++)
		if (rc_pids[i] == pid)
			rc_pids[i] = 0;
	pthread_mutex_unlock(&rc_lock);
}

static uint64_t rc_rand(uint64_t *s)
{
	uint64_t x = (*s += 0x9e3779b97f4a7c15ULL);

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/*
 * A random range of a readable, non-special mapping of @pid, the mapping
 * picked with a chance growing with its size (up to 1024 pages), so the
 * tests' buffers are hit more often than libraries: 0 and [*s, *e), or -1.
 */
static int rc_pick(pid_t pid, uint64_t *rng, uint64_t *s, uint64_t *e)
{
	char path[64], line[512];
	unsigned long long vs[256], ve[256];
	uint64_t wsum = 0, w;
	int n = 0, k;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (n < 256 && fgets(line, sizeof(line), f)) {
		char perms[8] = "";

		if (sscanf(line, "%llx-%llx %7s", &vs[n], &ve[n], perms) != 3 || perms[0] != 'r' ||
		    strstr(line, "[vsyscall]") || strstr(line, "[vvar") || strstr(line, "[vdso]"))
			continue;
		w = (ve[n] - vs[n]) / FX_PAGE;
		wsum += w < 1024 ? w : 1024;
		n++;
	}
	fclose(f);
	if (!n || !wsum)
		return -1;
	w = rc_rand(rng) % wsum;
	for (k = 0; k < n - 1; k++) {
		uint64_t pk = (ve[k] - vs[k]) / FX_PAGE;

		pk = pk < 1024 ? pk : 1024;
		if (w < pk)
			break;
		w -= pk;
	}
	uint64_t pages = (ve[k] - vs[k]) / FX_PAGE, len = 1 + rc_rand(rng) % 64;

	if (len > pages)
		len = pages;
	*s = vs[k] + rc_rand(rng) % (pages - len + 1) * FX_PAGE;
	*e = *s + len * FX_PAGE;
	return 0;
}

static void *rc_thread(void *arg)
{
	uint64_t rng = (uint64_t)getpid() ^ (uint64_t)fx_now_ms(), end;

	(void)arg;
	end = fx_now_ms() + (uint64_t)fx_budget_s() * 1000;	/* time cap */
	for (unsigned long tick = 0; tick < RC_MAXTICKS && fx_now_ms() < end; tick++) {
		struct timespec ts = { 0, (long)(20 + rc_rand(&rng) % 480) * 1000L };
		pid_t pid = 0;
		uint64_t s, e;

		nanosleep(&ts, NULL);
		if (rc_rand(&rng) % 3 == 0) {	/* a child, if any */
			pthread_mutex_lock(&rc_lock);
			pid = rc_pids[rc_rand(&rng) % RC_MAXPIDS];
			pthread_mutex_unlock(&rc_lock);
		}
		if (rc_pick(pid ? pid : getpid(), &rng, &s, &e))
			continue;
		if (!pid) {
			if (madvise((void *)(uintptr_t)s, e - s, MADV_PAGEOUT) == 0)
				__atomic_fetch_add(&rc_done, 1, __ATOMIC_RELAXED);
		} else {
			int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
			struct iovec iov = { (void *)(uintptr_t)s, e - s };

			if (pfd >= 0 && syscall(SYS_process_madvise, pfd, &iov, 1, MADV_PAGEOUT, 0) >= 0)
				__atomic_fetch_add(&rc_done, 1, __ATOMIC_RELAXED);
			if (pfd >= 0)
				close(pfd);
		}
	}
	return NULL;
}

static void rc_report(void)
{
	if (rc_on)
		printf("# PT_TEST_RECLAIM: %" PRIu64 " random pageouts made\n",
		       __atomic_load_n(&rc_done, __ATOMIC_RELAXED));
}

__attribute__((constructor))
static void rc_start(void)
{
	const char *e = getenv("PT_TEST_RECLAIM");
	pthread_t th;

	if (!e || strcmp(e, "1"))
		return;
	if (pthread_create(&th, NULL, rc_thread, NULL) == 0) {
		pthread_detach(th);
		rc_on = true;
		atexit(rc_report);
	}
}

bool fx_zero_page_forced(void)
{
	const char *e = getenv("PT_FORCE_NO_ZERO_PAGE");

	return e && !strcmp(e, "1");
}

const char *fx_backend_name(enum pt_scan_backend b)
{
	return pt_scan_backend_name(b);
}

pid_t fx_child(void (*setup)(void *shared), void *shared)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe(p))
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(p[0]);
		setup(shared);
		if (write(p[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1) {
		close(p[0]);
		waitpid(pid, NULL, 0);
		return -1;
	}
	close(p[0]);
	if (rc_on)
		rc_add(pid);
	return pid;
}

void fx_child_kill(pid_t pid)
{
	if (pid <= 0)
		return;
	rc_del(pid);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

void *fx_map(size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = mmap(NULL, len, prot, flags, fd, off);

	if (p == MAP_FAILED) {
		printf("Bail out! mmap %zu: %s\n", len, strerror(errno));
		exit(1);
	}
	return p;
}

int fx_pageout(void *addr, size_t len)
{
	return madvise(addr, len, MADV_PAGEOUT) ? -errno : 0;
}

int fx_scan_pages(struct pt_target *t, uint64_t start, uint64_t end, uint32_t flags,
		  uint8_t *states, uint32_t *attrs)
{
	struct pt_region r[256];
	struct pt_scan_opts o = { .sz = sizeof(o), .flags = flags };
	uint64_t cur = start;
	size_t npages = (end - start) / FX_PAGE;

	memset(states, 0xee, npages);
	if (attrs)
		memset(attrs, 0, npages * sizeof(*attrs));
	while (cur < end) {
		int n = pt_scan(t, &cur, end, r, 256, &o);
		if (n < 0)
			return n;
		if (n == 0)
			break;
		for (int i = 0; i < n; i++) {
			for (uint64_t a = r[i].start; a < r[i].end; a += FX_PAGE) {
				if (a < start || a >= end)
					return -ERANGE;
				states[(a - start) / FX_PAGE] = r[i].state;
				if (attrs)
					attrs[(a - start) / FX_PAGE] = r[i].attrs;
			}
		}
	}
	return 0;
}

int fx_pagemap(const void *addr, size_t n, uint64_t *e)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), err = 0;
	ssize_t r;

	if (fd < 0)
		return -errno;
	r = pread(fd, e, n * 8, (off_t)((uintptr_t)addr / FX_PAGE * 8));
	if (r != (ssize_t)(n * 8))
		err = r < 0 ? -errno : -EIO;
	close(fd);
	return err;
}

bool fx_pagemap_same(const uint64_t *a, const uint64_t *b, size_t n)
{
	const uint64_t m = (1ULL << 63) | (1ULL << 62) | ((1ULL << 55) - 1);

	for (size_t i = 0; i < n; i++)
		if ((a[i] & m) != (b[i] & m))
			return false;
	return true;
}

size_t fx_count(const uint8_t *states, size_t from, size_t to, uint8_t state)
{
	size_t n = 0;

	for (size_t i = from; i < to; i++)
		n += states[i] == state;
	return n;
}

int fx_uffd_fds(pid_t pid)
{
	char path[64], link[128];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char fdp[384];
		ssize_t l;

		snprintf(fdp, sizeof(fdp), "%s/%s", path, de->d_name);
		l = readlink(fdp, link, sizeof(link) - 1);
		if (l > 0) {
			link[l] = 0;
			n += !strcmp(link, "anon_inode:[userfaultfd]");
		}
	}
	closedir(d);
	return n;
}

int fx_uffd_vmas(pid_t pid)
{
	char path[64], line[512];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = ' ';
		if (!strncmp(line, "VmFlags:", 8) &&
		    (strstr(line, " um ") || strstr(line, " uw ") || strstr(line, " ui ")))
			n++;
	}
	fclose(f);
	return n;
}

char fx_proc_state(pid_t pid)
{
	char path[64], buf[512];
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = 0;
	p = strrchr(buf, ')');	/* the state follows the command name */
	return p && p[1] == ' ' && p[2] ? p[2] : '?';
}

bool fx_wait_state(pid_t pid, char state, unsigned cap_ms)
{
	for (uint64_t t0 = fx_now_ms();; usleep(1000)) {
		char s = fx_proc_state(pid);

		if (s == state)
			return true;
		if (s == '?' || fx_now_ms() - t0 >= cap_ms)
			return false;
	}
}
