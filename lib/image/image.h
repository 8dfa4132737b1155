/* SPDX-License-Identifier: MIT */
/*
 * Image layers (doc/image-format.md): the streaming writer
 * (lib/image/writer.c) and the reader's internal parts
 * (lib/image/reader.c; its public part is pt_image_* in pagetrack.h).
 */
#ifndef PT_IMAGE_H
#define PT_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pt_internal.h"
#include "process/capture.h"

/* ---- writer ---- */

struct pt__imgw;

struct pt__imgw_opts {
	uint32_t flags;			/* PT_IMAGE_FROZEN or PT_IMAGE_LIVE */
	int level;			/* zstd level; 0 = 1 */
	bool overwrite;			/* rename over an existing file */
	pid_t pid;
	const char *comm;
	struct pt_image *parent;	/* NULL for a base layer: the writer links to
					   it (its layer_id, checksum, seq + 1, and its
					   path relative to the new file's directory
					   when both are in one directory, else
					   absolute) */
	uint32_t frame_pages;		/* pages per frame; 0 = 256 (tests: small) */
	uint32_t chunk_bytes;		/* INDEX/FRAMES chunk flush size; 0 = 1 MiB
					   (tests: small, >= 64) */
};

/*
 * Create the temp file beside @path (doc/image-format.md, "Writing
 * protocol") and write the header.  0 or -errno with @err set.
 */
PT_HIDDEN int pt__imgw_open(const char *path, const struct pt__imgw_opts *o,
			    struct pt__imgw **out, char *err, size_t errlen);
/*
 * The layout: areas sorted, non-overlapping; objects unique by
 * identity.  Strings are copied.  Call once, before the first run.
 * Delta fields may still change with pt__imgw_set_delta().
 */
PT_HIDDEN int pt__imgw_layout(struct pt__imgw *w, const struct pt_image_area *areas, size_t na,
			      const struct pt_image_object *objs, size_t no);
PT_HIDDEN int pt__imgw_set_delta(struct pt__imgw *w, uint32_t owner_type, uint32_t owner,
				 uint32_t delta);
/*
 * Append a run: owners in order (every area's runs by area number, then
 * every stored object's), each owner tiled from page 0 to its end.
 * DATA: @data holds npages pages (compressed into frames as they fill).
 * -EINVAL when the order or tiling rules would be broken (a caller bug).
 */
PT_HIDDEN int pt__imgw_run(struct pt__imgw *w, uint32_t owner_type, uint32_t owner, uint32_t kind,
			   uint32_t detail, uint64_t npages, const void *data);
/* PROCESS, AUXV, THREADS, FILES (required for FROZEN). */
PT_HIDDEN int pt__imgw_capture(struct pt__imgw *w, const struct pt__capture *c);

struct pt__imgw_result {
	uint64_t file_size;
	uint64_t file_checksum;
	uint64_t frames, data_pages, frame_bytes;
	uint64_t pages_by_kind[6];	/* index enum pt_page_kind */
};
/*
 * Directory, footer, fsync, rename, fsync dir.  Frees @w either way.
 * Errors are sticky: after any call failed (ENOSPC while flushing a
 * frame, say), finish returns that error with its line in @err and
 * removes the temp file.
 */
PT_HIDDEN int pt__imgw_finish(struct pt__imgw *w, struct pt__imgw_result *res, char *err,
			      size_t errlen);
/* Unlink the temp file and free @w (accepts NULL). */
PT_HIDDEN void pt__imgw_abort(struct pt__imgw *w);

/* ---- reader internals ---- */

/* The PROCESS/AUXV/THREADS/FILES sections decoded (FROZEN layers); -ENOENT if absent. */
PT_HIDDEN int pt__image_capture(struct pt_image *img, struct pt__capture *out, char *err,
				size_t errlen);
/* The path the layer was opened with (owned by @img). */
PT_HIDDEN const char *pt__image_path(const struct pt_image *img);

#endif
