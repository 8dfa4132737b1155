/* SPDX-License-Identifier: MIT */
/* ELF core files (lib/image/core.c): what gdb opens, as after gcore. */
#ifndef PT_CORE_H
#define PT_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "pt_internal.h"
#include "process/capture.h"

/*
 * Where the core's memory comes from: @read fills @npages pages from
 * @addr (within one area) into @buf and their kinds (enum pt_page_kind)
 * into @kinds; the bytes of pages that are not DATA are ignored.  HOLE
 * pages of private file mappings are read from the file by the core
 * writer itself (path, offset) when it still has the identity of the
 * area's object (dev, inode, and size and mtime when not 0); otherwise,
 * or without an object, they are zeros.  Areas sorted, non-overlapping.
 */
struct pt__core_src {
	const struct pt_image_area *areas;
	size_t nareas;
	const struct pt_image_object *objects;	/* indexed by area->object; may be NULL */
	size_t nobjects;
	const struct pt__capture *cap;
	uint16_t machine;	/* EM_X86_64 */
	int (*read)(void *ctx, uint64_t addr, size_t npages, void *buf, uint8_t *kinds);
	void *ctx;
};

/*
 * Write the core to @fd (sequentially: a pipe works).  0 or -errno with
 * @err set.
 */
PT_HIDDEN int pt__core_write(int fd, const struct pt__core_src *src, char *err, size_t errlen);

#endif
