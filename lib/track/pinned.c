/* SPDX-License-Identifier: MIT */
/*
 * Memory the kernel writes through a long-term pin instead of the page
 * tables: such writes never fault, so no page-table tracker (uffd-wp,
 * soft-dirty) sees them, and the areas holding them are hashed instead.
 *
 * Found: io_uring registered (fixed) buffers, listed per ring in
 * /proc/PID/fdinfo/FD after "UserBufs:" as "    N: 0xADDR/LEN".
 * Not found (no interface shows them): RDMA memory regions, VFIO DMA
 * mappings (doc/tracking.md).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pinned.h"

/* Add the registered buffers of the io_uring behind fdinfo @path to @out. */
static int ring_buffers(const char *path, struct pt_dirtylist *out)
{
	char line[256];
	bool in_bufs = false;
	int err = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return 0;	/* closed meanwhile */
	while (!err && fgets(line, sizeof(line), f)) {
		unsigned long long addr, len;
		unsigned idx;

		if (!strncmp(line, "UserBufs:", 9)) {
			in_bufs = true;
			continue;
		}
		if (!in_bufs)
			continue;
		if (sscanf(line, " %u: 0x%llx/%llu", &idx, &addr, &len) != 3)
			break;	/* the next field */
		if (len)
			err = pt__dirty_add(out, addr & ~(PT_PAGE_SIZE - 1),
					    (addr + len + PT_PAGE_SIZE - 1) & ~(PT_PAGE_SIZE - 1), 0);
	}
	fclose(f);
	return err;
}

int pt__pinned_ranges(const struct pt_target *t, struct pt_dirtylist *out)
{
	char path[320], link[64];
	struct dirent *de;
	int err = 0;
	DIR *d;

	out->n = 0;
	snprintf(path, sizeof(path), "%s/fd", t->procdir);
	d = opendir(path);
	if (!d)
		return 0;	/* no permission to look, or exited: the round says so */
	while (!err && (de = readdir(d))) {
		ssize_t l;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/fd/%s", t->procdir, de->d_name);
		l = readlink(path, link, sizeof(link) - 1);
		if (l <= 0)
			continue;
		link[l] = 0;
		if (strcmp(link, "anon_inode:[io_uring]"))
			continue;
		snprintf(path, sizeof(path), "%s/fdinfo/%s", t->procdir, de->d_name);
		err = ring_buffers(path, out);
	}
	closedir(d);
	pt__dirty_sort_merge(out);
	return err;
}
