/* SPDX-License-Identifier: MIT */
/*
 * Is the target still there?  Every layer asks it when a read fails, to
 * tell "the target exited" (-ESRCH) from a real error.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pt_internal.h"

/* Exited (or zombie) processes have no mm: their stat says Z or X. */
static int stat_state(const struct pt_target *t)
{
	char path[64], buf[512];
	int fd, n;

	snprintf(path, sizeof(path), "%s/stat", t->procdir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH ? 0 : -errno;
	n = (int)read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -EIO;
	return (p[2] == 'Z' || p[2] == 'X') ? 0 : 1;
}

int pt_target_alive(const struct pt_target *t)
{
	if (!t)
		return -EINVAL;
	if (t->self)
		return 1;
	if (t->pidfd >= 0) {
		struct pollfd p = { .fd = t->pidfd, .events = POLLIN };
		int r = poll(&p, 1, 0);
		if (r < 0)
			return -errno;
		if (r > 0)
			return 0;
	}
	return stat_state(t);
}

bool pt__target_mm_alive(const struct pt_target *t)
{
	uint64_t e;

	/* the pagemap fd is bound to the mm it was opened on; a dead mm reads empty */
	return pread(t->pagemap_fd, &e, sizeof(e), 0) == (ssize_t)sizeof(e);
}

int pt__target_errno(const struct pt_target *t, int err)
{
	if (err < 0)
		err = -err;
	if (pt_target_alive(t) == 0)
		return -ESRCH;
	if (err == ENOENT)
		return -ESRCH;
	return -err;
}

/*
 * Is @pid a kernel thread (PF_KTHREAD in the flags field of its stat)?
 * Such a process has no user memory: its pagemap reads empty.
 */
bool pt__is_kernel_thread(pid_t pid)
{
	char path[64], buf[512], *p;
	unsigned long flags;
	int fd, n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = (int)read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	p = strrchr(buf, ')');	/* the name may hold anything */
	/* ") S ppid pgrp session tty_nr tpgid flags" */
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1)
		return false;
	return (flags & 0x00200000ul) != 0;	/* PF_KTHREAD */
}
