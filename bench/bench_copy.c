/* SPDX-License-Identifier: MIT */
/*
 * bench_copy: copy throughput (pt_copy_area) against raw process_vm_readv
 * of the same memory, measured in the same run.  Prints ratios, never
 * asserts on time: the exit code is 0 unless something failed (an API
 * error, a wrong page count).  See doc/bench.md ("Copying").
 *
 * The target is a forked child holding SIZE (default 1 GiB) of private
 * anonymous memory, every page written with non-zero data.  Per rep, the
 * best of which is reported:
 *   raw:      process_vm_readv of the whole area into a 4 MiB buffer
 *             (4 iovecs of 1 MiB per call), the kernel's rate
 *   copy:     pt_copy_area with a callback that does nothing
 *   raw+sum / copy+sum: the same, summing every 64-bit word read
 *   mem:      pt_copy_area with PT_COPY_FORCE_MEM (/proc/PID/mem), info
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pt_internal.h"

#define MiB (1ULL << 20)
#define RAW_IOV (1 * MiB)
#define RAW_NIOV 4

static int reps = 5;
static uint64_t size = 1024 * MiB;
static int failed;

static double gbps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (double)ns : 0;
}

static void line_ratio(const char *name, double v, double ref, double target, bool judged)
{
	char a[32], b[32], tg[16];
	double ratio = ref > 0 ? v / ref : 0;

	snprintf(a, sizeof(a), "%.2f GB/s", v);
	snprintf(b, sizeof(b), "%.2f GB/s", ref);
	snprintf(tg, sizeof(tg), judged ? ">=%.1f" : "-", target);
	printf("%-38s %12s %12s %7.2f %7s %s\n", name, a, b, ratio, tg,
	       judged ? (ratio >= target ? "PASS" : "MISS") : "info");
}

static uint64_t sum_words(const void *p, size_t len)
{
	const uint64_t *w = p;
	uint64_t s = 0;

	for (size_t i = 0; i < len / 8; i++)
		s += w[i];
	return s;
}

/* Raw process_vm_readv of [addr, addr+size); ns, or 0 on failure. */
static uint64_t raw_read(pid_t pid, uint64_t addr, unsigned char *buf, bool do_sum, uint64_t *s)
{
	uint64_t t0 = pt__now_ns();
	struct iovec l[RAW_NIOV], r[RAW_NIOV];

	*s = 0;
	for (uint64_t off = 0; off < size; off += RAW_IOV * RAW_NIOV) {
		size_t n = 0;

		for (; n < RAW_NIOV && off + n * RAW_IOV < size; n++) {
			l[n].iov_base = buf + n * RAW_IOV;
			l[n].iov_len = RAW_IOV;
			r[n].iov_base = (void *)(uintptr_t)(addr + off + n * RAW_IOV);
			r[n].iov_len = RAW_IOV;
		}
		if (process_vm_readv(pid, l, n, r, n, 0) != (ssize_t)(n * RAW_IOV))
			return 0;
		if (do_sum)
			*s += sum_words(buf, n * RAW_IOV);
	}
	return pt__now_ns() - t0;
}

struct cctx {
	bool do_sum;
	uint64_t sum, data_pages, other_pages;
};

static int on_piece(const struct pt_copy_piece *p, void *ctx)
{
	struct cctx *c = ctx;

	if (p->kind == PT_PAGE_DATA) {
		c->data_pages += p->npages;
		if (c->do_sum)
			c->sum += sum_words(p->data, p->npages * PT_PAGE_SIZE);
	} else {
		c->other_pages += p->npages;
	}
	return 0;
}

static uint64_t copy_once(struct pt_copier *cp, const struct pt_vma *v, uint64_t addr,
			  bool do_sum, uint64_t *s)
{
	struct cctx c = { .do_sum = do_sum };
	uint64_t t0 = pt__now_ns();
	int err = pt_copy_area(cp, v, addr, addr + size, on_piece, &c);
	uint64_t ns = pt__now_ns() - t0;

	if (err || c.data_pages != size / PT_PAGE_SIZE) {
		fprintf(stderr, "bench_copy: copy: %s, %llu data pages of %llu (%llu other)\n",
			strerror(-err), (unsigned long long)c.data_pages,
			(unsigned long long)(size / PT_PAGE_SIZE),
			(unsigned long long)c.other_pages);
		failed = 1;
		return 0;
	}
	*s = c.sum;
	return ns;
}

int main(int argc, char **argv)
{
	const PT_OPTS(pt_copy_opts, fm, .flags = PT_COPY_FORCE_MEM);
	uint64_t best[5] = { UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX };
	uint64_t addr = 0, s1 = 0, s2 = 0;
	struct pt_copier *cp = NULL, *cm = NULL;
	struct pt_target *t = NULL;
	struct pt_vma *vmas = NULL;
	const struct pt_vma *v = NULL;
	unsigned char *buf;
	size_t nv = 0;
	int pfd[2], opt;
	pid_t pid;

	while ((opt = getopt(argc, argv, "n:s:")) != -1) {
		if (opt == 'n')
			reps = atoi(optarg);
		else if (opt == 's')
			size = strtoull(optarg, NULL, 0) * MiB;
		else {
			fprintf(stderr, "usage: bench_copy [-n REPS] [-s SIZE_MiB]\n");
			return 2;
		}
	}
	if (reps < 1 || size < 4 * MiB)
		return 2;
	size &= ~(4 * MiB - 1);
	if (pipe(pfd))
		return 1;
	pid = fork();
	if (pid == 0) {
		unsigned char *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (m == MAP_FAILED)
			_exit(1);
		for (uint64_t o = 0; o < size; o += PT_PAGE_SIZE)
			memset(m + o, (int)(1 + (o >> PT_PAGE_SHIFT) % 251), PT_PAGE_SIZE);
		addr = (uintptr_t)m;
		if (write(pfd[1], &addr, sizeof(addr)) != sizeof(addr))
			_exit(1);
		for (;;)
			pause();
	}
	close(pfd[1]);
	if (pid < 0 || read(pfd[0], &addr, sizeof(addr)) != sizeof(addr)) {
		fprintf(stderr, "bench_copy: child failed\n");
		return 1;
	}
	buf = malloc(RAW_IOV * RAW_NIOV);
	t = pt_target_create(pid, NULL);
	cp = pt_copier_create(pid, NULL);
	cm = pt_copier_create(pid, &fm);
	if (!buf || !t || !cp || !cm || pt_vmas_read(t, &vmas, &nv)) {
		fprintf(stderr, "bench_copy: set-up: %s\n", strerror(errno));
		failed = 1;
		goto out;
	}
	for (size_t i = 0; i < nv; i++)
		if (vmas[i].start <= addr && addr < vmas[i].end)
			v = &vmas[i];
	if (!v) {
		failed = 1;
		goto out;
	}
	printf("\n== Copying (%llu MiB populated private anon, best of %d)\n",
	       (unsigned long long)(size / MiB), reps);
	printf("%-38s %12s %12s %7s %7s %s\n", "measurement", "value", "raw ref", "ratio",
	       "target", "result");
	for (int r = 0; r < reps && !failed; r++) {
		uint64_t ns[5];

		ns[0] = raw_read(pid, addr, buf, false, &s1);
		ns[1] = copy_once(cp, v, addr, false, &s2);
		ns[2] = raw_read(pid, addr, buf, true, &s1);
		ns[3] = copy_once(cp, v, addr, true, &s2);
		ns[4] = copy_once(cm, v, addr, false, &s2);
		if (!ns[0] || !ns[2]) {
			fprintf(stderr, "bench_copy: process_vm_readv: %s\n", strerror(errno));
			failed = 1;
		}
		for (int i = 0; i < 5; i++)
			if (ns[i] && ns[i] < best[i])
				best[i] = ns[i];
	}
	if (!failed) {
		uint64_t sr = 0, sc = 0;

		raw_read(pid, addr, buf, true, &sr);
		copy_once(cp, v, addr, true, &sc);
		if (sr != sc) {
			fprintf(stderr, "bench_copy: copied data differs from process_vm_readv\n");
			failed = 1;
		}
		line_ratio("copy vs process_vm_readv", gbps(size, best[1]), gbps(size, best[0]),
			   0.6, true);
		line_ratio("copy+sum vs process_vm_readv+sum", gbps(size, best[3]),
			   gbps(size, best[2]), 0.6, true);
		line_ratio("copy FORCE_MEM (/proc/PID/mem)", gbps(size, best[4]),
			   gbps(size, best[0]), 0, false);
	}
out:
	pt_vmas_free(vmas);
	pt_copier_free(cp);
	pt_copier_free(cm);
	pt_target_free(t);
	free(buf);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return failed;
}
