// SPDX-License-Identifier: MIT
/*
 * What a core file or a restore needs of a frozen process besides its
 * memory (capture.h): every thread's register sets, taken verbatim with
 * PTRACE_GETREGSET, and the process's identity, auxv and open files from
 * /proc.  The threads are ptrace-stopped by pt__freeze(), so the
 * registers cannot move under us; /proc is read in the same stop.
 */
#include <ctype.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pt_internal.h"
#include "capture.h"

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif
#ifndef NT_SIGINFO
#define NT_SIGINFO 0x53494749
#endif

#define CMDLINE_MAX 4096
#define AUXV_MAX 1024
/* Larger than any xsave area today (AMX makes it ~11 KiB). */
#define XSTATE_MAX (64 * 1024)

/* Read a whole small /proc file into a malloc'd NUL-terminated buffer (at most @max bytes). */
static int slurp(const char *path, size_t max, char **out, size_t *len)
{
	size_t cap = 4096 < max ? 4096 : max, n = 0;
	char *buf = malloc(cap + 1);
	int fd, err = 0;

	if (!buf)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(buf);
		return -errno;
	}
	while (n < max) {
		ssize_t r;

		if (n == cap) {
			size_t ncap = cap * 2 < max ? cap * 2 : max;
			char *nb = realloc(buf, ncap + 1);

			if (!nb) {
				err = -ENOMEM;
				break;
			}
			buf = nb;
			cap = ncap;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = -errno;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (err) {
		free(buf);
		return err;
	}
	buf[n] = 0;
	*out = buf;
	*len = n;
	return 0;
}

static int add_note(struct pt__thread *t, uint32_t type, const char *name, const void *desc,
		    size_t len)
{
	struct pt__note *nn = realloc(t->notes, (t->nnotes + 1) * sizeof(*nn));
	struct pt__note *n;

	if (!nn)
		return -ENOMEM;
	t->notes = nn;
	n = &nn[t->nnotes];
	memset(n, 0, sizeof(*n));
	n->desc = malloc(len ? len : 1);
	if (!n->desc)
		return -ENOMEM;
	memcpy(n->desc, desc, len);
	n->type = type;
	n->len = (uint32_t)len;
	snprintf(n->name, sizeof(n->name), "%s", name);
	t->nnotes++;
	return 0;
}

/*
 * One regset.  A set the kernel does not have (ENODEV: no XSAVE;
 * EINVAL: unknown type) is left out; anything else is an error.
 */
static int add_regset(struct pt__thread *t, uint32_t type, const char *name, void *buf,
		      size_t cap)
{
	struct iovec iov = { buf, cap };

	if (ptrace(PTRACE_GETREGSET, t->tid, (void *)(uintptr_t)type, &iov) < 0) {
		if (errno == ENODEV || errno == EINVAL)
			return 0;
		return errno == ESRCH ? -ESRCH : -errno;
	}
	return add_note(t, type, name, buf, iov.iov_len);
}

/* "Key:\tHEX" line of a status file. */
static uint64_t status_hex(const char *st, const char *key)
{
	const char *p = strstr(st, key);

	return p ? strtoull(p + strlen(key), NULL, 16) : 0;
}

static int capture_thread(pid_t pid, pid_t tid, int sig, struct pt__thread *t, void *buf)
{
	char path[64], *st;
	size_t len;
	int err;

	t->tid = tid;
	if ((err = add_regset(t, NT_PRSTATUS, "CORE", buf, XSTATE_MAX)) ||
	    (err = add_regset(t, NT_PRFPREG, "CORE", buf, XSTATE_MAX)) ||
	    (err = add_regset(t, NT_X86_XSTATE, "LINUX", buf, XSTATE_MAX)))
		return err;
	if (!t->nnotes || t->notes[0].type != NT_PRSTATUS)
		return -EIO;	/* no general registers: nothing for a core */
	/*
	 * A thread stopped by PTRACE_INTERRUPT has no signal of its own (its
	 * siginfo describes the ptrace event): cursig 0 and no NT_SIGINFO,
	 * as a core of a process that was not killed by a signal.  One
	 * stopped in a signal-delivery-stop carries that signal.
	 */
	t->cursig = sig > 0 ? (uint32_t)sig : 0;
	if (t->cursig) {
		siginfo_t si;

		if (ptrace(PTRACE_GETSIGINFO, tid, NULL, &si) == 0 &&
		    (err = add_note(t, NT_SIGINFO, "CORE", &si, sizeof(si))))
			return err;
	}
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	if ((err = slurp(path, 1 << 16, &st, &len)))
		return err == -ENOENT ? -ESRCH : err;
	t->sigblocked = status_hex(st, "\nSigBlk:");
	t->sigpending = status_hex(st, "\nSigPnd:");	/* thread-private; ShdPnd is the process's */
	free(st);
	return 0;
}

/*
 * /proc/PID/stat: "pid (comm) state ppid pgrp sid tty tpgid flags minflt
 * cminflt majflt cmajflt utime stime cutime cstime priority nice ...".
 * comm may hold spaces and parentheses: it ends at the last ')'.
 */
static int read_stat(pid_t pid, struct pt__capture *c)
{
	char path[64], *buf, *p;
	long v[16];
	size_t len;
	int err, i;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((err = slurp(path, 4096, &buf, &len)))
		return err == -ENOENT ? -ESRCH : err;
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2]) {
		free(buf);
		return -EIO;
	}
	c->state = p[2];
	p += 3;
	for (i = 0; i < 16; i++) {
		char *e;

		v[i] = strtol(p, &e, 10);
		if (e == p)
			break;
		p = e;
	}
	free(buf);
	if (i < 16)
		return -EIO;
	/* after state: ppid pgrp sid tty tpgid flags minflt cminflt majflt
	   cmajflt utime stime cutime cstime priority nice */
	c->ppid = (pid_t)v[0];
	c->pgrp = (pid_t)v[1];
	c->sid = (pid_t)v[2];
	c->nice = (int32_t)v[15];
	return 0;
}

static int read_ids(pid_t pid, struct pt__capture *c)
{
	char path[64], *st, *p;
	size_t len;
	int err;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((err = slurp(path, 1 << 16, &st, &len)))
		return err == -ENOENT ? -ESRCH : err;
	if ((p = strstr(st, "\nUid:")))
		c->uid = (uint32_t)strtoul(p + 5, NULL, 10);
	if ((p = strstr(st, "\nGid:")))
		c->gid = (uint32_t)strtoul(p + 5, NULL, 10);
	if (!strncmp(st, "Name:\t", 6)) {
		/* comm from stat would do as well; status escapes nothing we keep */
		size_t n = strcspn(st + 6, "\n");

		if (n > sizeof(c->comm) - 1)
			n = sizeof(c->comm) - 1;
		memcpy(c->comm, st + 6, n);
		c->comm[n] = 0;
	}
	free(st);
	return 0;
}

static int read_auxv(pid_t pid, struct pt__capture *c)
{
	char path[64], *buf;
	size_t len, n;
	int err;

	snprintf(path, sizeof(path), "/proc/%d/auxv", (int)pid);
	if ((err = slurp(path, AUXV_MAX * 16, &buf, &len)))
		return err == -ENOENT ? -ESRCH : err;
	n = len / 16;
	c->auxv = malloc((n + 1) * 16);
	if (!c->auxv) {
		free(buf);
		return -ENOMEM;
	}
	memcpy(c->auxv, buf, n * 16);
	free(buf);
	/* keep up to the first AT_NULL; make sure there is one */
	for (size_t i = 0; i < n; i++) {
		if (c->auxv[i][0] == AT_NULL) {
			n = i;
			break;
		}
	}
	if (n == AUXV_MAX)
		n--;
	c->auxv[n][0] = AT_NULL;
	c->auxv[n][1] = 0;
	c->nauxv = n + 1;
	return 0;
}

static int file_cmp(const void *a, const void *b)
{
	const struct pt__file *x = a, *y = b;

	return x->fd < y->fd ? -1 : x->fd > y->fd;
}

/* fdinfo's "pos:\tN" and "flags:\tOCTAL". */
static void read_fdinfo(pid_t pid, struct pt__file *f)
{
	char path[64], *buf, *p;
	size_t len;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%u", (int)pid, f->fd);
	if (slurp(path, 1 << 16, &buf, &len))
		return;
	if ((p = strstr(buf, "pos:")))
		f->pos = strtoull(p + 4, NULL, 10);
	if ((p = strstr(buf, "flags:")))
		f->flags = (uint32_t)strtoul(p + 6, NULL, 8);
	free(buf);
}

/*
 * The open descriptors.  One closed between readdir and readlink is
 * skipped (the threads are stopped, but another process sharing the
 * table, e.g. a vfork child, could still close it).
 */
static int read_files(pid_t pid, struct pt__capture *c)
{
	char path[64], link[4096 + 64];
	size_t cap = 0;
	struct dirent *de;
	DIR *d;
	int err = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? -ESRCH : -errno;
	while ((de = readdir(d))) {
		struct pt__file *f;
		struct stat sb;
		char *e;
		unsigned long fd = strtoul(de->d_name, &e, 10);
		ssize_t n;

		if (de->d_name[0] < '0' || de->d_name[0] > '9' || *e)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd/%lu", (int)pid, fd);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = 0;
		if (c->nfiles == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct pt__file *nf = realloc(c->files, ncap * sizeof(*nf));

			if (!nf) {
				err = -ENOMEM;
				break;
			}
			c->files = nf;
			cap = ncap;
		}
		f = &c->files[c->nfiles];
		memset(f, 0, sizeof(*f));
		f->fd = (uint32_t)fd;
		f->name = strdup(link);
		if (!f->name) {
			err = -ENOMEM;
			break;
		}
		c->nfiles++;
		/* stat through the link: the file itself, as the target sees it */
		if (stat(path, &sb) == 0) {
			f->dev_major = major(sb.st_dev);
			f->dev_minor = minor(sb.st_dev);
			f->inode = sb.st_ino;
			f->mode = sb.st_mode;
		}
		read_fdinfo(pid, f);
	}
	closedir(d);
	if (!err && c->nfiles > 1)
		qsort(c->files, c->nfiles, sizeof(*c->files), file_cmp);
	return err;
}

int pt__capture(const struct pt_freeze *fz, struct pt__capture *c)
{
	char path[64];
	void *buf = NULL;
	size_t main_i = 0;
	int err;

	memset(c, 0, sizeof(*c));
	if (!fz || !fz->n)
		return -EINVAL;
	c->pid = fz->pid;
	if ((err = read_stat(fz->pid, c)) || (err = read_ids(fz->pid, c)) ||
	    (err = read_auxv(fz->pid, c)))
		goto fail;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)fz->pid);
	if ((err = slurp(path, CMDLINE_MAX, &c->cmdline, &c->cmdline_len)))
		goto fail;

	buf = malloc(XSTATE_MAX);
	c->threads = calloc(fz->n, sizeof(*c->threads));
	if (!buf || !c->threads) {
		err = -ENOMEM;
		goto fail;
	}
	/* main thread first, the others in the freeze's order */
	for (size_t i = 0; i < fz->n; i++)
		if (fz->tids[i] == fz->pid)
			main_i = i;
	for (size_t k = 0; k < fz->n; k++) {
		size_t i = k == 0 ? main_i : (k <= main_i ? k - 1 : k);

		c->nthreads++;
		err = capture_thread(fz->pid, fz->tids[i], fz->sigs ? fz->sigs[i] : 0,
				     &c->threads[k], buf);
		if (err)
			goto fail;
	}
	if ((err = read_files(fz->pid, c)))
		goto fail;
	free(buf);
	return 0;
fail:
	free(buf);
	pt__capture_free(c);
	return err;
}

void pt__capture_free(struct pt__capture *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nthreads; i++) {
		for (size_t j = 0; j < c->threads[i].nnotes; j++)
			free(c->threads[i].notes[j].desc);
		free(c->threads[i].notes);
	}
	free(c->threads);
	for (size_t i = 0; i < c->nfiles; i++)
		free(c->files[i].name);
	free(c->files);
	free(c->cmdline);
	free(c->auxv);
	memset(c, 0, sizeof(*c));
}
