/* SPDX-License-Identifier: MIT */
/*
 * The claim a uffd tracker holds on its target (lib/track/owner.c): one
 * tracker at a time, and what a tracker that died holding it left.  Real
 * processes and real lock files, in a run directory of the test's own.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "tap.h"
#include "track/owner.h"

static char rundir[] = "/tmp/pt-owner-XXXXXX";

/* The target: creates a userfaultfd of its own and reports its number. */
static void make_uffd(void *shared)
{
	int *fd = shared;

	*fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
}

/* In a forked process: claim @pid, record @fd, and die without releasing. */
static pid_t die_holding(pid_t pid, int fd)
{
	pid_t c = fork();

	if (c == 0) {
		struct pt_owner o;
		pid_t h;
		int left;

		if (pt__owner_claim(pid, &o, &h, &left) || pt__owner_record(&o, fd))
			_exit(1);
		_exit(0);	/* the kernel drops the lock; the file stays */
	}
	return c;
}

static int exit_code(pid_t c)
{
	int st;

	if (waitpid(c, &st, 0) != c)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static size_t files_in(const char *dir)
{
	char cmd[128];
	size_t n = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "ls -A %s", dir);
	f = popen(cmd, "r");
	if (!f)
		return (size_t)-1;
	for (int ch; (ch = fgetc(f)) != EOF;)
		n += ch == '\n';
	pclose(f);
	return n;
}

int main(void)
{
	int *shared = fx_map(FX_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct pt_owner a, b;
	pid_t target, holder, c;
	int left, err;

	if (!mkdtemp(rundir))
		tap_skip_all("cannot make a run directory");
	tap_plan(9);
	setenv("PT_RUN_DIR", rundir, 1);
	*shared = -2;
	target = fx_child(make_uffd, shared);
	if (target < 0)
		tap_skip_all("cannot start the target");

	err = pt__owner_claim(target, &a, &holder, &left);
	tap_ok(err == 0 && left == -1, "first claim succeeds, nothing left over (%s)",
	       strerror(-err));
	c = fork();
	if (c == 0) {
		err = pt__owner_claim(target, &b, &holder, &left);
		_exit(err == -EBUSY && holder == getppid() ? 0 : 1);
	}
	tap_ok(exit_code(c) == 0, "a second tracker is refused with EBUSY and told the holder");
	pt__owner_release(&a, false);
	tap_ok(files_in(rundir) == 0, "release removes the lock file");

	/* a tracker killed while holding the claim, its userfaultfd in the target */
	if (*shared < 0) {
		tap_skip("the target cannot create a userfaultfd", "leftover found");
		tap_skip("the target cannot create a userfaultfd", "leftover claimed once");
	} else {
		c = die_holding(target, *shared);
		tap_ok(exit_code(c) == 0, "a tracker claims and dies holding the claim");
		err = pt__owner_claim(target, &a, &holder, &left);
		tap_ok(err == 0 && left == *shared && holder == c,
		       "the next claim finds the dead tracker's userfaultfd (fd %d, holder %d)", left,
		       (int)holder);
		pt__owner_release(&a, false);
	}
	/* a record naming an fd that is not a userfaultfd is no leftover */
	c = die_holding(target, 0);
	exit_code(c);
	err = pt__owner_claim(target, &a, &holder, &left);
	tap_ok(err == 0 && left == -1, "an fd that is not a userfaultfd is never taken for one");
	pt__owner_release(&a, false);

	/* a lock file of a process that is gone is removed by the next claim */
	c = fork();
	if (c == 0)
		_exit(0);
	exit_code(c);
	{
		char path[256];
		int fd;

		snprintf(path, sizeof(path), "%s/uffd-%d-1", rundir, (int)c);
		fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
		err = pt__owner_claim(target, &a, &holder, &left);
		tap_ok(err == 0 && access(path, F_OK) < 0, "a dead process's lock file is removed");
		pt__owner_release(&a, false);
	}
	err = pt__owner_claim(getpid() + 0, &a, &holder, &left);
	tap_ok(err == 0, "claiming oneself works too");
	pt__owner_release(&a, false);

	fx_child_kill(target);
	err = pt__owner_claim(target, &a, &holder, &left);
	tap_ok(err == -ESRCH, "a gone target: ESRCH (%s)", strerror(-err));
	rmdir(rundir);
	return tap_done();
}
