/* SPDX-License-Identifier: MIT */
/* Targets: the process being inspected, and its memory layout. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pt_internal.h"
#include "uapi.h"

const char *pt_scan_backend_name(enum pt_scan_backend b)
{
	switch (b) {
	case PT_SCAN_BACKEND_PAGEMAP_SCAN:
		return "pagemap_scan";
	case PT_SCAN_BACKEND_PAGEMAP_READ:
		return "pagemap_read";
	case PT_SCAN_BACKEND_AUTO:
		return "auto";
	}
	return NULL;
}

static bool scan_backend_usable(void)
{
	const uint64_t base = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_FILE | PAGE_IS_PFNZERO |
			      PAGE_IS_HUGE | PAGE_IS_WRITTEN;

	return (pt__scan_categories() & base) == base;
}

/*
 * The one place the scan backend is chosen.  PT_FORCE_BACKEND=read (or
 * =scan) overrides AUTO so tests can exercise the fallback.
 */
static int choose_backend(enum pt_scan_backend want, enum pt_scan_backend *out)
{
	if (want == PT_SCAN_BACKEND_AUTO) {
		const char *env = getenv("PT_FORCE_BACKEND");

		if (env && (!strcmp(env, "read") || !strcmp(env, "pagemap_read")))
			want = PT_SCAN_BACKEND_PAGEMAP_READ;
		else if (env && (!strcmp(env, "scan") || !strcmp(env, "pagemap_scan")))
			want = PT_SCAN_BACKEND_PAGEMAP_SCAN;
		else
			want = scan_backend_usable() ? PT_SCAN_BACKEND_PAGEMAP_SCAN
						     : PT_SCAN_BACKEND_PAGEMAP_READ;
	}
	if (want == PT_SCAN_BACKEND_PAGEMAP_SCAN && !scan_backend_usable())
		return -EOPNOTSUPP;
	if (want != PT_SCAN_BACKEND_PAGEMAP_SCAN && want != PT_SCAN_BACKEND_PAGEMAP_READ)
		return -EINVAL;
	*out = want;
	return 0;
}

struct pt_target *pt_target_create(pid_t pid, const struct pt_target_opts *opts)
{
	struct pt_target *t;
	enum pt_scan_backend want;
	char path[64];
	int err;

	if (pid < 0 || !PT_OPTS_VALID(opts, pt_target_opts) ||
	    PT_OPTS_GET(opts, reserved, 0)) {
		errno = EINVAL;
		return NULL;
	}
	want = PT_OPTS_GET(opts, scan_backend, PT_SCAN_BACKEND_AUTO);
	err = pt__page_size_check();
	if (err) {
		errno = -err;
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		errno = ENOMEM;
		return NULL;
	}
	t->pagemap_fd = -1;
	t->pidfd = -1;
	t->self = pid == 0 || pid == getpid();
	t->pid = t->self ? getpid() : pid;
	if (t->self)
		snprintf(t->procdir, sizeof(t->procdir), "/proc/self");
	else
		snprintf(t->procdir, sizeof(t->procdir), "/proc/%d", (int)pid);

	err = choose_backend(want, &t->backend);
	if (err)
		goto fail;
	if (!t->self) {
		t->pidfd = (int)syscall(__NR_pidfd_open, pid, 0);
		if (t->pidfd < 0 && errno == ESRCH) {
			err = -ESRCH;
			goto fail;
		}
		if (t->pidfd >= 0)
			fcntl(t->pidfd, F_SETFD, FD_CLOEXEC);
	}
	snprintf(path, sizeof(path), "%s/pagemap", t->procdir);
	t->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (t->pagemap_fd < 0) {
		err = errno == ENOENT ? -ESRCH : -errno;
		/* a kernel thread has no mm: its pagemap refuses with ESRCH; say why */
		if (err == -ESRCH && !t->self && pt__is_kernel_thread(t->pid))
			err = -ENODATA;
		goto fail;
	}
	/* A zombie's pagemap opens but has no mm: treat it as gone. */
	if (!t->self && pt_target_alive(t) == 0) {
		err = -ESRCH;
		goto fail;
	}

	return t;
fail:
	pt_target_free(t);
	errno = -err;
	return NULL;
}

void pt_target_free(struct pt_target *t)
{
	if (!t)
		return;
	pt__shared_free(t);
	if (t->pagemap_fd >= 0)
		close(t->pagemap_fd);
	if (t->pidfd >= 0)
		close(t->pidfd);
	free(t->vmas);
	free(t->smaps);
	free(t->pm_buf);
	free(t->rb[0].r);
	free(t->rb[1].r);
	free(t->scan_vec);
	free(t);
}

pid_t pt_target_pid(const struct pt_target *t)
{
	return t ? t->pid : -1;
}

enum pt_scan_backend pt_target_scan_backend(const struct pt_target *t)
{
	return t ? t->backend : PT_SCAN_BACKEND_AUTO;
}

uint32_t pt_scan_limits(const struct pt_target *t)
{
	return t ? t->limits : 0;
}

static int open_proc(const struct pt_target *t, const char *name)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", t->procdir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	return fd;
}

int pt__target_load_vmas(struct pt_target *t)
{
	struct pt_vma *v = NULL;
	int fd = open_proc(t, "maps"), n;

	if (fd < 0)
		return fd;
	n = pt__maps_parse_fd(fd, &v);
	close(fd);
	if (n < 0)
		return pt__target_errno(t, n);
	if (n == 0 && pt_target_alive(t) == 0) {
		free(v);
		return -ESRCH;
	}
	free(t->vmas);
	t->vmas = v;
	t->nvmas = (size_t)n;
	t->vmas_valid = true;
	t->smaps_valid = false;	/* layout changed: smaps figures are stale */
	t->win = NULL;
	t->skip_probe_vma = t->skip_checked_vma = 0;
	t->scan_epoch++;
	return 0;
}

size_t pt__vma_find(const struct pt_target *t, uint64_t addr)
{
	size_t lo = 0, hi = t->nvmas;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (t->vmas[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct pt_smaps_ent *pt__smaps_lookup(struct pt_target *t, uint64_t start)
{
	if (!t->smaps_valid) {
		struct pt_smaps_ent *e = NULL;
		int fd = open_proc(t, "smaps"), n;

		if (fd < 0)
			return NULL;
		n = pt__smaps_parse_fd(fd, &e);
		close(fd);
		if (n < 0)
			return NULL;
		free(t->smaps);
		t->smaps = e;
		t->nsmaps = (size_t)n;
		t->smaps_valid = true;
	}
	size_t lo = 0, hi = t->nsmaps;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (t->smaps[mid].start < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < t->nsmaps && t->smaps[lo].start == start ? &t->smaps[lo] : NULL;
}

int pt_vmas_read(struct pt_target *t, struct pt_vma **out, size_t *count)
{
	int err;

	if (!t || !out || !count)
		return -EINVAL;
	err = pt__target_load_vmas(t);
	if (err)
		return err;
	*out = pt__vmas_pack(t->vmas, t->nvmas);
	if (!*out)
		return -ENOMEM;
	*count = t->nvmas;
	return 0;
}

void pt_vmas_free(struct pt_vma *vmas)
{
	free(vmas);
}
