/* SPDX-License-Identifier: MIT */
/*
 * snapchild: test_snapshotter's child, built without sanitizers (an ASan
 * process reserves terabytes of shadow that every snapshot would walk).
 * Commands on stdin, one binary record each; answers on stdout: first the
 * addresses of its areas, then one byte per command.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096u
#define NPRIV 2048u
#define NOBJ 512u
#define NREMAP 64u

struct shared_info {
	uint64_t priv, obj, remap;
};

/* glibc >= 2.35: where this thread's rseq area is */
extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

/*
 * The kernel rewrites a thread's rseq area (its CPU number) whenever the
 * thread runs on another CPU: a real change of memory, which a layer
 * taken before it cannot hold.  The child unregisters it so that an idle
 * child's memory is still.
 */
static void rseq_off(void)
{
	if (&__rseq_size && __rseq_size)
		syscall(334 /* SYS_rseq */, (char *)__builtin_thread_pointer() + __rseq_offset,
			__rseq_size < 32 ? 32 : __rseq_size, 1 /* RSEQ_FLAG_UNREGISTER */,
			0x53053053 /* RSEQ_SIG */);
}

static void child_loop(int in, int out)
{
	unsigned char *priv = mmap(NULL, NPRIV * PAGE, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int mfd = memfd_create("snapshotter-obj", 0);
	unsigned char *obj, *remap;
	struct shared_info si;

	rseq_off();
	if (priv == MAP_FAILED || mfd < 0 || ftruncate(mfd, NOBJ * PAGE))
		_exit(1);
	obj = mmap(NULL, NOBJ * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	remap = mmap(NULL, NREMAP * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		     -1, 0);
	if (obj == MAP_FAILED || remap == MAP_FAILED)
		_exit(1);
	for (unsigned i = 0; i < NPRIV; i += 3)
		priv[i * PAGE] = (unsigned char)i;
	for (unsigned i = 0; i < NOBJ; i += 2)
		obj[i * PAGE + 7] = (unsigned char)(i + 1);
	memset(remap, 5, NREMAP * PAGE);
	si = (struct shared_info){ (uintptr_t)priv, (uintptr_t)obj, (uintptr_t)remap };
	if (write(out, &si, sizeof(si)) != sizeof(si))
		_exit(1);
	for (;;) {
		struct { uint32_t what, idx; uint64_t val; } c;

		if (read(in, &c, sizeof(c)) != sizeof(c))
			_exit(0);
		switch (c.what) {
		case 0:
			memcpy(priv + c.idx * PAGE + (c.val % (PAGE - 8)), &c.val, 8);
			break;
		case 1:
			memcpy(obj + c.idx * PAGE + (c.val % (PAGE - 8)), &c.val, 8);
			break;
		case 2:	/* unmap and map the area again, partly written */
			munmap(remap, NREMAP * PAGE);
			if (mmap(remap, NREMAP * PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
				_exit(1);
			memset(remap + c.idx * PAGE, (int)c.val | 1, PAGE);
			break;
		case 3:	/* drop a private page */
			madvise(priv + c.idx * PAGE, PAGE, MADV_DONTNEED);
			break;
		}
		if (write(out, "k", 1) != 1)
			_exit(1);
	}
}

int main(void)
{
	child_loop(0, 1);
	return 0;
}
