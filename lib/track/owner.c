/* SPDX-License-Identifier: MIT */
/*
 * Which pagetrack tracks a process with a userfaultfd, and what a killed
 * one left behind (doc/tracking.md, "Trackers that meet").
 *
 * A uffd tracker of another process leaves one fd inside it (the
 * userfaultfd created there by injection).  If the tracker is killed
 * (SIGKILL, the OOM killer) that fd stays open, its areas stay
 * registered, and every later tracker's registration fails with EBUSY.
 * Two live trackers of one process would fight the same way.  So a
 * tracker holds a lock file per target for as long as it tracks it:
 *
 *	RUNDIR/uffd-PID-STARTTIME	flock(LOCK_EX) while tracking
 *	content: "pagetrack HOLDER REMOTE_FD STARTSTACK\n"
 *
 * STARTTIME (stat field 22) keeps a recycled pid apart.  A second tracker
 * finds the file locked: EBUSY, with the holder's pid.  A tracker that
 * finds it unlocked took over from a dead one: the fd it recorded is a
 * leftover, to be closed inside the target, provided the target still
 * runs the same program (STARTSTACK, stat field 28, is randomized at each
 * exec; an exec would also have closed the O_CLOEXEC fd) and the fd is
 * still a userfaultfd.  RUNDIR is /run/pagetrack, or PT_RUN_DIR.
 */
#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "owner.h"

static const char *run_dir(void)
{
	const char *d = getenv("PT_RUN_DIR");

	return d && *d ? d : "/run/pagetrack";
}

/* Fields 22 (starttime) and 28 (startstack) of /proc/PID/stat. */
static int stat_ids(pid_t pid, unsigned long long *start, unsigned long long *stack)
{
	char path[64], buf[1024], *p, *save = NULL;
	int fd, n, field = 2;	/* the command name, up to the last ')' */

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	n = (int)read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ESRCH;
	buf[n] = 0;
	p = strrchr(buf, ')');	/* the name may hold anything */
	if (!p)
		return -EIO;
	for (p = strtok_r(p + 1, " ", &save); p; p = strtok_r(NULL, " ", &save)) {
		if (++field == 22)
			*start = strtoull(p, NULL, 10);
		if (field == 28) {
			*stack = strtoull(p, NULL, 10);
			return 0;
		}
	}
	return -EIO;
}

/* Is fd @fd of @pid a userfaultfd? */
static bool is_uffd(pid_t pid, int fd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = 0;
	return !strcmp(link, "anon_inode:[userfaultfd]");
}

/* Lock files of processes that are gone (or whose pid was reused). */
static void drop_stale(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned budget = 4096;	/* bounded: a huge directory is cleaned over many runs */

	if (!d)
		return;
	while ((de = readdir(d)) && budget--) {
		unsigned long long st, now, stack;
		char path[PATH_MAX];
		int pid, fd;

		if (sscanf(de->d_name, "uffd-%d-%llu", &pid, &st) != 2)
			continue;
		if (stat_ids(pid, &now, &stack) == 0 && now == st)
			continue;	/* still there */
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			unlink(path);
		close(fd);
	}
	closedir(d);
}

int pt__owner_claim(pid_t pid, struct pt_owner *o, pid_t *holder, int *leftover_fd)
{
	const char *dir = run_dir();
	unsigned long long start, stack;
	char buf[128];
	int err, n;

	o->fd = -1;
	*holder = 0;
	*leftover_fd = -1;
	if ((err = stat_ids(pid, &start, &stack)))
		return err;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	drop_stale(dir);
	n = snprintf(o->path, sizeof(o->path), "%s/uffd-%d-%llu", dir, (int)pid, start);
	if (n < 0 || (size_t)n >= sizeof(o->path))
		return -ENAMETOOLONG;
	for (int tries = 0; tries < 8; tries++) {
		struct stat a, b;

		o->fd = open(o->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (o->fd < 0)
			return -errno;
		if (flock(o->fd, LOCK_EX | LOCK_NB) < 0) {
			err = errno == EWOULDBLOCK ? -EBUSY : -errno;
			n = (int)pread(o->fd, buf, sizeof(buf) - 1, 0);
			if (n > 0) {
				buf[n] = 0;
				sscanf(buf, "pagetrack %d", holder);
			}
			close(o->fd);
			o->fd = -1;
			return err;
		}
		/* the previous holder may have unlinked it between our open and lock */
		if (fstat(o->fd, &a) == 0 && stat(o->path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev)
			break;
		close(o->fd);
		o->fd = -1;
	}
	if (o->fd < 0)
		return -EAGAIN;
	/* unlocked but present: its holder died without releasing it */
	n = (int)pread(o->fd, buf, sizeof(buf) - 1, 0);
	if (n > 0) {
		unsigned long long was_stack;
		int dead, fd;

		buf[n] = 0;
		if (sscanf(buf, "pagetrack %d %d %llu", &dead, &fd, &was_stack) == 3 && fd >= 0 &&
		    was_stack == stack && is_uffd(pid, fd)) {
			*holder = dead;
			*leftover_fd = fd;
		}
	}
	return pt__owner_record(o, -1);
}

int pt__owner_record(struct pt_owner *o, int remote_fd)
{
	unsigned long long start, stack = 0;
	char buf[128];
	pid_t pid;
	int n;

	if (o->fd < 0)
		return -EBADF;
	if (sscanf(strrchr(o->path, '/'), "/uffd-%d-%llu", &pid, &start) == 2)
		stat_ids(pid, &start, &stack);
	n = snprintf(buf, sizeof(buf), "pagetrack %d %d %llu\n", (int)getpid(), remote_fd, stack);
	if (ftruncate(o->fd, 0) < 0 || pwrite(o->fd, buf, (size_t)n, 0) != n)
		return -errno;
	return 0;
}

void pt__owner_release(struct pt_owner *o, bool keep_record)
{
	if (o->fd < 0)
		return;
	if (!keep_record)
		unlink(o->path);	/* while still locked: nobody takes a dead file for ours */
	close(o->fd);
	o->fd = -1;
}
