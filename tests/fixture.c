/* SPDX-License-Identifier: MIT */
#include "fixture.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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
		if (r == 1)
			atexit(swap_cleanup);
		swap_state = r >= 0 ? 1 : -1;
	}
	if (why)
		*why = swap_why;
	return swap_state == 1;
}

int fx_backends(enum pt_backend out[2])
{
	int n = 0;

	if (pt_feature(PT_FEAT_PAGEMAP_SCAN, NULL) == PT_YES)
		out[n++] = PT_BACKEND_PAGEMAP_SCAN;
	out[n++] = PT_BACKEND_PAGEMAP_READ;
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

bool fx_zero_page_forced(void)
{
	const char *e = getenv("PT_FORCE_NO_ZERO_PAGE");

	return e && !strcmp(e, "1");
}

const char *fx_backend_name(enum pt_backend b)
{
	return pt_backend_name(b);
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
	return pid;
}

void fx_child_kill(pid_t pid)
{
	if (pid <= 0)
		return;
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

size_t fx_count(const uint8_t *states, size_t from, size_t to, uint8_t state)
{
	size_t n = 0;

	for (size_t i = from; i < to; i++)
		n += states[i] == state;
	return n;
}
