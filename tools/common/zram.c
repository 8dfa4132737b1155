/* SPDX-License-Identifier: MIT */
#include "zram.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <unistd.h>

static char zram_dev[64];

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

int pt_zram_swap_on(size_t disksize_mb, const char **why)
{
	char path[128], val[32], dev[80];
	const char *dummy;
	int err;

	if (!why)
		why = &dummy;
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
		pt_zram_swap_off();
		return -EIO;
	}
	if (swapon(dev, 0) != 0) {
		err = -errno;
		*why = "swapon of the zram device failed";
		pt_zram_swap_off();
		return err;
	}
	return 1;
}

void pt_zram_swap_off(void)
{
	char path[128], dev[80];

	if (!zram_dev[0])
		return;
	snprintf(dev, sizeof(dev), "/dev/%s", zram_dev);
	swapoff(dev);
	snprintf(path, sizeof(path), "/sys/block/%s/reset", zram_dev);
	write_str(path, "1");
	zram_dev[0] = 0;
}
