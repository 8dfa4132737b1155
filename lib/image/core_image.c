// SPDX-License-Identifier: MIT
/*
 * pt_image_core(): an image layer (resolved through its chain) as an ELF
 * core file, by lib/image/core.c.  The file appears whole or not at all:
 * written to a temp file beside @path, fsync'd, renamed, the directory
 * fsync'd.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pt_internal.h"
#include "image/core.h"
#include "image/image.h"

struct img_ctx {
	struct pt_image *img;
	char *err;
	size_t errlen;
};

static int img_read(void *ctx, uint64_t addr, size_t npages, void *buf, uint8_t *kinds)
{
	struct img_ctx *c = ctx;

	return pt_image_read(c->img, addr, npages, buf, kinds, c->err, c->errlen);
}

/* fsync the directory holding @path, so the rename is durable. */
static int sync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd, err = 0;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0 && errno != EINVAL)
		err = -errno;
	close(fd);
	return err;
}

int pt_image_core(struct pt_image *img, const char *path, char *err, size_t errlen)
{
	struct pt_image_info info = { .sz = sizeof(info) };
	struct pt__capture cap = { 0 };
	struct pt__core_src src = { 0 };
	struct img_ctx ctx = { img, err, errlen };
	char *tmp = NULL, dummy[1];
	int fd = -1, r;

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
		ctx.err = err;
		ctx.errlen = errlen;
	}
	err[0] = 0;
	if (!img || !path || !*path) {
		snprintf(err, errlen, "core: no image or path");
		return -EINVAL;
	}
	if ((r = pt_image_info(img, &info))) {
		snprintf(err, errlen, "%s: %s", pt__image_path(img), strerror(-r));
		return r;
	}
	if (info.flags & PT_IMAGE_LIVE || !(info.flags & PT_IMAGE_FROZEN)) {
		snprintf(err, errlen, "%s: a LIVE layer has no threads: no core can be made of it",
			 pt__image_path(img));
		return -EINVAL;
	}
	if ((r = pt_image_areas(img, &src.areas, &src.nareas)) ||
	    (r = pt_image_objects(img, &src.objects, &src.nobjects))) {
		snprintf(err, errlen, "%s: %s", pt__image_path(img), strerror(-r));
		return r;
	}
	if ((r = pt__image_capture(img, &cap, err, errlen)))
		return r;
	src.cap = &cap;
	src.machine = (uint16_t)info.machine;
	src.read = img_read;
	src.ctx = &ctx;

	if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0) {
		tmp = NULL;
		r = -ENOMEM;
		snprintf(err, errlen, "core: out of memory");
		goto out;
	}
	fd = mkostemp(tmp, O_CLOEXEC);	/* mode 0600 */
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", tmp, strerror(-r));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	if ((r = pt__core_write(fd, &src, err, errlen)))
		goto out;
	if (fchmod(fd, 0600) < 0 || fsync(fd) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", tmp, strerror(-r));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		snprintf(err, errlen, "%s: %s", tmp, strerror(-r));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	if ((r = sync_dir(path)))
		snprintf(err, errlen, "%s: syncing its directory: %s", path, strerror(-r));
out:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	pt__capture_free(&cap);
	return r;
}
