// SPDX-License-Identifier: MIT
/*
 * The guest program of tests/test_vm_migrate.py: runs inside the QEMU guest
 * (linked -static, started by the initramfs' /init) and writes its memory
 * continuously in a pattern it can check, so that a migration that loses or
 * tears a page, or brings back an old copy of one, shows up as ERROR on the
 * console.
 *
 *   vmguest HOT_MIB COLD_MIB RATE_MIB_S CHECK_MS
 *
 * Two regions of 4 KiB pages, each page stamped: word 0 = magic ^ page,
 * word 1 = generation, words 2..511 derived from (region, page, generation).
 *  - cold: written once at start and checked; then left alone (so the host
 *    can push it to swap and see it stay there) until 'c' arrives on stdin:
 *    then checked again ("COLD OK pages=N" or "COLD ERROR ...").
 *  - hot: write number k (k = 0, 1, 2, ...) stamps page k % N with generation
 *    k / N, at RATE_MIB_S (in ticks of 10 ms).  Every CHECK_MS the whole hot
 *    region is checked against the write counter: after K writes page p must
 *    hold generation (K - 1 - p) / N.  A page missed by a migration holds an
 *    older generation, a torn one a wrong word: either is an ERROR line.
 *    Each check prints "OK seq=K gen=G pages=N ms=T" (T: the check's time).
 *
 * First line: "VMGUEST READY hot=.. cold=.." once both regions are written
 * and the cold one checked.  stdin (the serial console, set raw): 'c' check
 * the cold region, 'q' exit.  Exit status 0, or 1 after an ERROR.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / 8)
#define MAGIC 0x5654475545535450ull /* "PTSEUGTV" */

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void stamp(uint64_t *w, uint64_t region, uint64_t page, uint64_t gen)
{
	uint64_t x = mix(region << 56 ^ page << 24 ^ gen);

	w[0] = MAGIC ^ page;
	w[1] = gen;
	for (unsigned i = 2; i < WORDS; i++)
		w[i] = x + i * 0x2545f4914f6cdd1dull;
}

static unsigned long errors;

/* 0 when page @page of @region holds generation @gen, else one ERROR line */
static int check_page(const uint64_t *w, const char *name, uint64_t region, uint64_t page,
		      uint64_t gen)
{
	uint64_t x = mix(region << 56 ^ page << 24 ^ gen);
	unsigned bad = 0, first = 0;

	if (w[0] != (MAGIC ^ page) || w[1] != gen) {
		bad = 1;
	} else {
		for (unsigned i = 2; i < WORDS; i++)
			if (w[i] != x + i * 0x2545f4914f6cdd1dull) {
				if (!bad++)
					first = i;
			}
	}
	if (!bad)
		return 0;
	if (errors++ < 20)
		printf("ERROR %s page %llu: want gen %llu, header %016llx gen %llu, %u bad words from %u\n",
		       name, (unsigned long long)page, (unsigned long long)gen,
		       (unsigned long long)(w[0] ^ MAGIC), (unsigned long long)w[1], bad, first);
	return -1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *region_map(size_t pages)
{
	void *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (p == MAP_FAILED) {
		printf("ERROR mmap %zu pages: %s\n", pages, strerror(errno));
		exit(1);
	}
	return p;
}

static int check_cold(const unsigned char *cold, size_t n)
{
	unsigned long before = errors;

	for (size_t p = 0; p < n; p++)
		check_page((const uint64_t *)(cold + p * PAGE), "cold", 2, p, 0);
	return errors == before ? 0 : -1;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		printf("ERROR usage: vmguest HOT_MIB COLD_MIB RATE_MIB_S CHECK_MS\n");
		return 2;
	}
	size_t nhot = strtoull(argv[1], NULL, 0) * 256, ncold = strtoull(argv[2], NULL, 0) * 256;
	uint64_t rate = strtoull(argv[3], NULL, 0) * 256 / 100; /* pages per 10 ms tick */
	uint64_t check_ms = strtoull(argv[4], NULL, 0);
	struct termios tio;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!nhot || !rate) {
		printf("ERROR HOT_MIB and RATE_MIB_S must be > 0\n");
		return 2;
	}
	if (tcgetattr(0, &tio) == 0) {
		cfmakeraw(&tio);
		tio.c_oflag |= OPOST | ONLCR;
		tcsetattr(0, TCSANOW, &tio);
	}
	unsigned char *hot = region_map(nhot), *cold = ncold ? region_map(ncold) : NULL;

	for (size_t p = 0; p < ncold; p++)
		stamp((uint64_t *)(cold + p * PAGE), 2, p, 0);
	for (size_t p = 0; p < nhot; p++)
		stamp((uint64_t *)(hot + p * PAGE), 1, p, 0);
	uint64_t k = nhot; /* writes done */

	if (check_cold(cold, ncold))
		return 1;
	printf("VMGUEST READY hot=%zu cold=%zu pages\n", nhot, ncold);

	uint64_t tick = now_ms(), next_check = tick + check_ms;

	for (;;) {
		for (uint64_t i = 0; i < rate; i++, k++)
			stamp((uint64_t *)(hot + (k % nhot) * PAGE), 1, k % nhot, k / nhot);
		if (now_ms() >= next_check) {
			uint64_t t0 = now_ms();
			unsigned long before = errors;

			for (uint64_t p = 0; p < nhot; p++)
				check_page((const uint64_t *)(hot + p * PAGE), "hot", 1, p,
					   (k - 1 - p) / nhot);
			uint64_t t1 = now_ms();

			if (errors == before)
				printf("OK seq=%llu gen=%llu pages=%zu ms=%llu\n", (unsigned long long)k,
				       (unsigned long long)(k / nhot), nhot,
				       (unsigned long long)(t1 - t0));
			else
				printf("ERROR hot check at seq=%llu: %lu bad pages\n",
				       (unsigned long long)k, errors - before);
			next_check = t1 + check_ms;
		}
		/* wait for the next tick, reading commands meanwhile */
		tick += 10;
		uint64_t t = now_ms();
		int wait = tick > t ? (int)(tick - t) : 0;
		if (tick + 1000 < t)
			tick = t; /* the VM was stopped: no burst to catch up */
		struct pollfd pfd = { .fd = 0, .events = POLLIN };
		char c;

		if (poll(&pfd, 1, wait) > 0 && (pfd.revents & POLLIN) && read(0, &c, 1) == 1) {
			if (c == 'c') {
				uint64_t t0 = now_ms();

				if (check_cold(cold, ncold) == 0)
					printf("COLD OK pages=%zu ms=%llu\n", ncold,
					       (unsigned long long)(now_ms() - t0));
				else
					printf("COLD ERROR\n");
			} else if (c == 'q') {
				printf("VMGUEST EXIT errors=%lu\n", errors);
				return errors ? 1 : 0;
			}
		}
	}
}
