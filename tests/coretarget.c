// SPDX-License-Identifier: MIT
/*
 * Target of tests/test_core.c (built -g -O0, without sanitizers): a
 * process whose core gdb should understand.  A global and a heap
 * variable with known values, three threads each blocked in a function
 * of its own, a PROT_NONE area and, given a file (argv[1], at least 2
 * pages), two private mappings of it: one read-write whose first page is
 * written (copied on write, the second is the file's), one read-only
 * never written.  Once set up it prints one line,
 *
 *   ready MAIN_TID TID_A TID_B TID_C NONE_ADDR RW_ADDR RO_ADDR
 *
 * and every thread blocks in pause() for good: nothing is written after
 * the line, so two cores taken one after the other see the same memory.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

long global_var = 0x1234567887654321L;
long *heap_ptr;

static pid_t tids[3];
static pthread_barrier_t started;

static __attribute__((noinline)) void sleep_in_a(void)
{
	for (;;)
		pause();
}

static __attribute__((noinline)) void sleep_in_b(void)
{
	for (;;)
		pause();
}

static __attribute__((noinline)) void sleep_in_c(void)
{
	for (;;)
		pause();
}

static __attribute__((noinline)) void main_wait(void)
{
	for (;;)
		pause();
}

static void *thread_fn_a(void *arg)
{
	(void)arg;
	tids[0] = gettid();
	pthread_barrier_wait(&started);
	sleep_in_a();
	return NULL;
}

static void *thread_fn_b(void *arg)
{
	(void)arg;
	tids[1] = gettid();
	pthread_barrier_wait(&started);
	sleep_in_b();
	return NULL;
}

static void *thread_fn_c(void *arg)
{
	(void)arg;
	tids[2] = gettid();
	pthread_barrier_wait(&started);
	sleep_in_c();
	return NULL;
}

int main(int argc, char **argv)
{
	void *(*fns[3])(void *) = { thread_fn_a, thread_fn_b, thread_fn_c };
	char *none, *rw = NULL, *ro = NULL;
	pthread_t th[3];

	heap_ptr = malloc(sizeof(*heap_ptr));
	if (!heap_ptr)
		return 1;
	*heap_ptr = 0x5eed0fc0ffeeL;
	none = mmap(NULL, 4 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (none == MAP_FAILED)
		return 1;
	if (argc > 1) {
		int fd = open(argv[1], O_RDONLY | O_CLOEXEC);

		if (fd < 0)
			return 1;
		rw = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		ro = mmap(NULL, 2 * 4096, PROT_READ, MAP_PRIVATE, fd, 0);
		close(fd);
		if (rw == MAP_FAILED || ro == MAP_FAILED)
			return 1;
		memset(rw, 0xc5, 4096);	/* page 0 copied on write; page 1 stays the file's */
	}
	pthread_barrier_init(&started, NULL, 4);
	for (int i = 0; i < 3; i++)
		if (pthread_create(&th[i], NULL, fns[i], NULL))
			return 1;
	pthread_barrier_wait(&started);
	printf("ready %d %d %d %d %p %p %p\n", (int)gettid(), (int)tids[0], (int)tids[1],
	       (int)tids[2], (void *)none, (void *)rw, (void *)ro);
	fflush(stdout);
	main_wait();
	return 0;
}
