/* SPDX-License-Identifier: MIT */
/*
 * The random writer of tests/test_nevermiss.c (runs in a forked child):
 * changes its memory with random ops and logs every page whose content
 * it changed as fixed-size records on a pipe.  See doc/tracking-tests.md.
 */
#ifndef PT_TEST_WRITER_H
#define PT_TEST_WRITER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define PG 4096UL
#define FILE_SZ (1UL << 20)	/* files read by O_DIRECT and read() */

enum rec_type { R_WRITE = 1, R_UNMAP, R_PVW, R_END };

enum op {
	OP_WRITE, OP_MMAP, OP_MUNMAP, OP_MREMAP_MOVE, OP_MREMAP_GROW, OP_MPROTECT, OP_FORK,
	OP_DONTNEED, OP_ODIRECT, OP_READ, OP_PVW, OP__COUNT
};

extern const char *const op_names[OP__COUNT];

/*
 * R_WRITE: [addr, addr + npages pages) changed between reading epoch e1
 * and e2.  R_UNMAP: the range was unmapped (or moved away).  R_PVW: a
 * page the parent may change with process_vm_writev (lockstep only).
 * Records are written whole, at most PIPE_BUF bytes at a time.
 */
struct rec {
	uint32_t type, op;
	uint64_t addr, npages;
	uint64_t e1, e2;	/* epoch before and after the change */
};

/* The control page, shared by parent, writer and tracker process. */
struct ctl {
	_Atomic uint64_t epoch;
	_Atomic uint64_t progress;
	_Atomic int stop, in_collect, ready, verified;
	_Atomic uint64_t rounds, verify_bad, verify_pages;
};

extern struct ctl *ctl;
extern uint64_t seed;
extern char odirect_dir[256];	/* "" when no O_DIRECT-capable filesystem */

uint64_t mix(uint64_t x);
uint64_t rnd(uint64_t *s);
/* A file of FILE_SZ known bytes in @dir, opened read-only (O_DIRECT if @direct); -1 */
int make_file(const char *dir, bool direct, uint64_t salt);
/*
 * Writer main loop.  Lockstep: a batch of ops per batch number read from
 * @cmd_fd (0: exit), then R_PVW targets and R_END.  Concurrent: ops until
 * ctl->stop, at most OPS_PER_EPOCH per epoch, then R_END.  Never returns.
 */
__attribute__((noreturn)) void writer_main(int log_fd, int cmd_fd, bool concurrent);

#endif
