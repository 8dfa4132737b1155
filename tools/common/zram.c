/* SPDX-License-Identifier: MIT */
#include "zram.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <unistd.h>

static char zram_dev[64];

/*
 * Several programs (parallel test runs, the demo, benches) may share one
 * zram swap: the one that created it must not swap it off under another
 * that still uses it.  Every user holds a shared flock on USE_LOCK from
 * pt_zram_swap_on() to pt_zram_swap_off(); only a caller that then gets
 * it exclusive (no other user left) tears down, and it tears down every
 * device a pagetrack program created (listed in the file), whoever made
 * it.  Creation is serialised by an exclusive flock on MAKE_LOCK, taken
 * while the shared one is held, so teardown cannot slip in between.
 */
#define USE_LOCK "/run/pagetrack-zram.use"
#define MAKE_LOCK "/run/pagetrack-zram.make"

static int use_fd = -1;
static pid_t use_pid;	/* the process that took the lock: a forked child shares it */

static int lock_open(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0 && errno == ENOENT) {	/* no /run: /tmp */
		char alt[128];

		snprintf(alt, sizeof(alt), "/tmp/%s", strrchr(path, '/') + 1);
		fd = open(alt, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	}
	return fd;
}

static void flock_retry(int fd, int op)
{
	while (flock(fd, op) < 0 && errno == EINTR)
		;
}

int pt_swap_active(void)
{
	FILE *f = fopen("/proc/swaps", "re");
	char line[512];
	int n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n > 1;	/* first line is the header */
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t len = (ssize_t)strlen(s), w;

	if (fd < 0)
		return -errno;
	w = write(fd, s, len);
	int err = w == len ? 0 : (w < 0 ? -errno : -EIO);
	close(fd);
	return err;
}

/* swapoff and reset zram device @name (e.g. "zram0"). */
static void zram_off(const char *name)
{
	char path[128], dev[80];

	snprintf(dev, sizeof(dev), "/dev/%s", name);
	swapoff(dev);
	snprintf(path, sizeof(path), "/sys/block/%s/reset", name);
	write_str(path, "1");
}

static int run_quiet(const char *prog, const char *arg)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp(prog, prog, arg, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* Find a zram device that is not in use (disksize 0), creating one if needed. */
static int pick_zram(char *name, size_t len)
{
	char path[128], buf[64];
	struct stat st;

	if (stat("/sys/block/zram0", &st) != 0) {
		/* module may be unloaded */
		run_quiet("modprobe", "zram");
	}
	for (int i = 0; i < 16; i++) {
		snprintf(path, sizeof(path), "/sys/block/zram%d/disksize", i);
		FILE *f = fopen(path, "re");
		if (!f)
			break;
		if (fgets(buf, sizeof(buf), f) && strtoull(buf, NULL, 10) == 0) {
			fclose(f);
			snprintf(name, len, "zram%d", i);
			return 0;
		}
		fclose(f);
	}
	/* all busy: ask zram-control for another */
	FILE *f = fopen("/sys/class/zram-control/hot_add", "re");
	if (f) {
		int id = -1;
		if (fscanf(f, "%d", &id) == 1 && id >= 0) {
			fclose(f);
			snprintf(name, len, "zram%d", id);
			return 0;
		}
		fclose(f);
	}
	return -ENODEV;
}

static int swap_on_locked(size_t disksize_mb, const char **why);

int pt_zram_swap_on(size_t disksize_mb, const char **why)
{
	const char *dummy;
	int err;

	if (!why)
		why = &dummy;
	if (use_fd < 0 && geteuid() == 0) {
		use_fd = lock_open(USE_LOCK);
		use_pid = getpid();
		if (use_fd >= 0)
			flock_retry(use_fd, LOCK_SH);	/* held until pt_zram_swap_off() */
	}
	int make_fd = use_fd >= 0 ? lock_open(MAKE_LOCK) : -1;

	if (make_fd >= 0)
		flock_retry(make_fd, LOCK_EX);
	err = swap_on_locked(disksize_mb, why);
	if (make_fd >= 0)
		close(make_fd);
	return err;
}

static int swap_on_locked(size_t disksize_mb, const char **why)
{
	char path[128], val[32], dev[80];
	int err;

	if (pt_swap_active())
		return 0;
	if (geteuid() != 0) {
		*why = "no swap active and not root: cannot create zram swap";
		return -EPERM;
	}
	if (pick_zram(zram_dev, sizeof(zram_dev)) < 0) {
		*why = "no zram device available (zram module missing?)";
		return -ENODEV;
	}
	snprintf(path, sizeof(path), "/sys/block/%s/disksize", zram_dev);
	snprintf(val, sizeof(val), "%zuM", disksize_mb);
	err = write_str(path, val);
	if (err) {
		*why = "cannot set zram disksize";
		zram_dev[0] = 0;
		return err;
	}
	snprintf(dev, sizeof(dev), "/dev/%s", zram_dev);
	if (run_quiet("mkswap", dev) != 0) {
		*why = "mkswap on the zram device failed";
		zram_off(zram_dev);
		zram_dev[0] = 0;
		return -EIO;
	}
	if (swapon(dev, 0) != 0) {
		err = -errno;
		*why = "swapon of the zram device failed";
		zram_off(zram_dev);
		zram_dev[0] = 0;
		return err;
	}
	if (use_fd >= 0) {	/* for whichever user is last */
		char line[80];
		int n = snprintf(line, sizeof(line), "%s\n", zram_dev);

		if (lseek(use_fd, 0, SEEK_END) < 0 || write(use_fd, line, (size_t)n) != n)
			*why = "cannot record the zram device in " USE_LOCK;
	}
	return 1;
}

/*
 * Tear down: only when no other program uses the swap (exclusive flock),
 * every device recorded (or, without the lock file, our own).
 */
void pt_zram_swap_off(void)
{
	char buf[1024], *line, *save = NULL;
	ssize_t n;

	if (use_fd >= 0 && getpid() != use_pid)
		return;	/* a forked child exiting: the lock (one open file) is its parent's */
	if (use_fd < 0) {
		if (zram_dev[0])
			zram_off(zram_dev);
		zram_dev[0] = 0;
		return;
	}
	if (flock(use_fd, LOCK_EX | LOCK_NB) == 0) {
		n = pread(use_fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = 0;
		for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			if (!strncmp(line, "zram", 4) && strlen(line) < 16)
				zram_off(line);
		/* on failure a stale name stays: harmless, its device was reset */
		(void)!ftruncate(use_fd, 0);
	}
	close(use_fd);	/* drops the lock */
	use_fd = -1;
	zram_dev[0] = 0;
}
