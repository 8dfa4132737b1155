/* SPDX-License-Identifier: MIT */
/* Unit tests: pagemap entry decoding, maps/smaps parsing, run merging. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pt_internal.h"
#include "tap.h"

static void test_pm_decode(void)
{
	struct pt_pm_entry e;

	pt_pm_decode(0, &e);
	tap_ok(!e.present && !e.swapped && !e.file && !e.pfn, "empty entry decodes to nothing");

	pt_pm_decode(PT_PM_PRESENT | PT_PM_EXCLUSIVE | 0x12345, &e);
	tap_ok(e.present && e.exclusive && !e.file && e.pfn == 0x12345,
	       "present exclusive anon entry with PFN");

	pt_pm_decode(PT_PM_PRESENT | PT_PM_FILE | PT_PM_SOFT_DIRTY | PT_PM_UFFD_WP, &e);
	tap_ok(e.present && e.file && e.soft_dirty && e.uffd_wp && e.pfn == 0,
	       "present file page, soft-dirty, uffd-wp, PFN hidden");

	/* swap type 3, offset 0x7777: offset lives in bits 5-54 */
	pt_pm_decode(PT_PM_SWAP | (0x7777ULL << 5) | 3, &e);
	tap_ok(e.swapped && !e.present && e.swap_type == 3 && e.swap_offset == 0x7777 && !e.pfn,
	       "swap entry type and offset");

	pt_pm_decode(PT_PM_SWAP | PT_PM_GUARD, &e);
	tap_ok(e.guard && e.swapped, "guard marker entry");

	/* bits 0-54 are the PFN only when present */
	pt_pm_decode(PT_PM_PRESENT | PT_PM_PFN_MASK, &e);
	tap_ok(e.pfn == PT_PM_PFN_MASK && !e.soft_dirty, "PFN mask is 55 bits");
}

/* pt__maps_parse_line() terminates the path in place: give it a copy. */
static int parse(const char *line, struct pt_vma *v)
{
	static char buf[8][256];
	static int k;
	char *b = buf[k++ % 8];

	snprintf(b, sizeof(buf[0]), "%s", line);
	return pt__maps_parse_line(b, v);
}

static void test_maps_line(void)
{
	struct pt_vma v;

	tap_ok(parse("7f0000000000-7f0000021000 rw-p 00000000 00:00 0 ", &v) == 0 &&
		       v.kind == PT_VMA_ANON && v.start == 0x7f0000000000ULL &&
		       v.end == 0x7f0000021000ULL && v.prot == (PT_PROT_READ | PT_PROT_WRITE) &&
		       v.path[0] == 0,
	       "anonymous private line");
	tap_ok(parse("55d000000000-55d000021000 rw-p 00000000 00:00 0    [heap]", &v) == 0 &&
		       v.kind == PT_VMA_HEAP && !strcmp(v.path, "[heap]"),
	       "heap");
	tap_ok(parse("7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0  [stack]", &v) == 0 &&
		       v.kind == PT_VMA_STACK,
	       "stack");
	tap_ok(parse("7ffc00000000-7ffc00002000 r-xp 00000000 00:00 0  [vdso]", &v) == 0 &&
		       v.kind == PT_VMA_SPECIAL && (v.prot & PT_PROT_EXEC),
	       "vdso is special");
	tap_ok(parse("7f1000000000-7f1000100000 rw-s 00000000 00:01 1234 /dev/zero (deleted)", &v) == 0 &&
		       v.kind == PT_VMA_SHMEM && (v.prot & PT_MAP_SHARED) && v.inode == 1234 &&
		       v.dev_minor == 1,
	       "shared anonymous");
	tap_ok(parse("7f1000000000-7f1000100000 rw-s 00002000 00:01 99 /memfd:demo (deleted)", &v) == 0 &&
		       v.kind == PT_VMA_MEMFD && v.offset == 0x2000 &&
		       !strcmp(v.path, "/memfd:demo (deleted)"),
	       "memfd with offset and name");
	tap_ok(parse("7f1000000000-7f1000100000 rw-s 00000000 00:01 32768 /SYSV0000abcd (deleted)", &v) == 0 &&
		       v.kind == PT_VMA_SYSV && v.sysv_key == 0xabcd,
	       "SysV segment and key");
	tap_ok(parse("7f1000000000-7f1000100000 r--p 00001000 fe:01 4242 /usr/lib/x86_64-linux-gnu/libc.so.6", &v) == 0 &&
		       v.kind == PT_VMA_FILE && v.dev_major == 0xfe && v.inode == 4242,
	       "regular file");
	tap_ok(parse("7f1000000000-7f1000100000 rw-s 00000000 00:1a 77 /dev/shm/x y", &v) == 0 &&
		       v.kind == PT_VMA_SHM_FILE && !strcmp(v.path, "/dev/shm/x y"),
	       "/dev/shm file, path with a space");
	tap_ok(parse("7f1000000000-7f1000100000 rw-p 00000000 00:00 0 [anon:jit]", &v) == 0 &&
		       v.kind == PT_VMA_ANON,
	       "named anonymous memory is anon");
	tap_ok(parse("garbage", &v) == -EINVAL, "malformed line rejected");
	tap_ok(parse("2000-1000 rw-p 00000000 00:00 0", &v) == -EINVAL,
	       "end before start rejected");
}

static int memfd_with(const char *text)
{
	int fd = memfd_create("t", MFD_CLOEXEC);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		return -1;
	return fd;
}

static void test_maps_smaps_fd(void)
{
	struct pt_vma *v = NULL;
	struct pt_smaps_ent *e = NULL;
	int fd = memfd_with("1000-3000 rw-p 00000000 00:00 0 \n"
			    "bad line\n"
			    "4000-5000 r--p 00000000 08:01 12 /bin/x\n");
	int n = pt__maps_parse_fd(fd, &v);

	tap_ok(n == 2 && v[0].start == 0x1000 && v[1].kind == PT_VMA_FILE,
	       "maps text parsed, malformed line skipped");
	free(v);
	close(fd);

	fd = memfd_with("1000-3000 rw-p 00000000 00:00 0 \n"
			"Size:                  8 kB\nRss:                   4 kB\n"
			"Swap:                  4 kB\nAnonHugePages:         0 kB\n"
			"VmFlags: rd wr mr mw me ac\n"
			"4000-5000 rw-s 00000000 00:01 5 /dev/zero (deleted)\n"
			"Rss:                   0 kB\nSwap:                 12 kB\n"
			"ShmemPmdMapped:     2048 kB\n");
	n = pt__smaps_parse_fd(fd, &e);
	tap_ok(n == 2 && e[0].rss_kb == 4 && e[0].swap_kb == 4 && e[1].start == 0x4000 &&
		       e[1].swap_kb == 12 && e[1].shmem_pmd_kb == 2048,
	       "smaps figures per VMA");
	free(e);
	close(fd);
}

static void test_runs(void)
{
	struct pt_region buf[4], p = { .state = PT_STATE_PRESENT };
	struct pt_runbuf rb = { .r = buf, .n = 0, .cap = 4 };

	pt__run_append(&rb, 0x1000, 0x2000, &p);
	pt__run_append(&rb, 0x2000, 0x3000, &p);
	tap_ok(rb.n == 1 && buf[0].end == 0x3000, "contiguous identical runs merge");
	pt__run_append(&rb, 0x4000, 0x5000, &p);
	tap_ok(rb.n == 2, "a gap prevents merging");
	p.attrs = PT_ATTR_LOC;
	p.loc = 100;
	pt__run_append(&rb, 0x5000, 0x6000, &p);
	p.loc = 101;
	pt__run_append(&rb, 0x6000, 0x7000, &p);
	tap_ok(rb.n == 3 && buf[2].end == 0x7000, "consecutive PFNs merge");
	p.loc = 200;
	pt__run_append(&rb, 0x7000, 0x8000, &p);
	tap_ok(rb.n == 4, "non-consecutive PFNs split");
	tap_ok(pt__run_append(&rb, 0x9000, 0xa000, &p) == -ENOSPC && rb.n == 4,
	       "full buffer reports -ENOSPC and appends nothing");
	pt__run_truncate(&rb, 0x6000);
	tap_ok(rb.n == 3 && buf[2].end == 0x6000, "truncate cuts runs at an address");
	tap_ok(pt__run_push(&rb, 0x6000, 0x7000, &buf[2]) == 0 && rb.n == 4,
	       "push never merges");
}

int main(void)
{
	/* per function: pm_decode, maps_line, maps_smaps_fd, runs */
	tap_plan(6 + 12 + 2 + 7);
	test_pm_decode();
	test_maps_line();
	test_maps_smaps_fd();
	test_runs();
	return tap_done();
}
