/* SPDX-License-Identifier: MIT */
/*
 * ptrace syscall injection: run one system call inside another process
 * and put the thread back exactly as it was (doc/inject.md).
 *
 * Outline: seize one thread (options 0), PTRACE_INTERRUPT, wait for the
 * PTRACE_EVENT_STOP (letting signal-delivery-stops that come first be
 * delivered exactly as they would have been), save registers, extended
 * FP state and signal mask, block signals, point the thread at a
 * `syscall` instruction that already exists in its executable memory
 * (vdso, else libc: its text is never modified), single-step it, read
 * the result, restore everything and detach.  We resume the thread from
 * a stop taken inside the kernel's signal-delivery loop (the SIGTRAP of
 * the single step, or an event stop), so with the saved registers back
 * in place (orig_rax = the interrupted call, rax = -ERESTART*), the
 * kernel restarts an interrupted system call exactly as after any
 * signal, and delivers every signal that became pending meanwhile.
 *
 * Signals during the call: all are blocked except the ones the kernel
 * may force on the single step (SIGTRAP and the synchronous faults).  A
 * forced signal that is blocked or ignored gets its disposition reset to
 * SIG_DFL by the kernel, so those stay unblocked; any user-sent one of
 * them that arrives is intercepted by its signal-delivery-stop (the
 * thread is traced), set aside and re-delivered at the end with its
 * siginfo.  A target ignoring SIGTRAP is refused for the same reason.
 *
 * The tracee's stops are waited for with WNOWAIT and never consumed;
 * only an exit of a thread that is not the caller's own child is reaped
 * (as its tracer we must, so its real parent is notified), so a caller
 * that injects into its own child never loses that child's exit status.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "inject.h"

#ifndef PTRACE_EVENT_STOP
#define PTRACE_EVENT_STOP 128
#endif

/* kernel-internal restart codes (include/linux/errno.h) */
#define ERESTARTSYS 512
#define ERESTART_RESTARTBLOCK 516

#define SIGBIT(s) (1ULL << ((s) - 1))
/* Signals the kernel may force on our single step: never blocked. */
#define FORCED_SIGS (SIGBIT(SIGTRAP) | SIGBIT(SIGSEGV) | SIGBIT(SIGBUS) | \
		     SIGBIT(SIGILL) | SIGBIT(SIGFPE))
#define MAX_SIG_PASSES 64	/* signal-delivery-stops before the first stop */
#define MAX_STEPS 32		/* re-steps after stops that ran nothing */
#define MAX_KEPT 8		/* user signals set aside during the call */
#define REMOTE_CHUNK (64 * 1024)

/* ------------------------------------------------------------------ */
/* Architecture section: everything that knows about registers.       */
/* ------------------------------------------------------------------ */
#if defined(__x86_64__)
#include <elf.h>
#include <sys/user.h>

#define ARCH_SUPPORTED 1
#define ARCH_USER_CS64 0x33	/* __USER_CS: a 64-bit task */
static const uint8_t arch_insn[] = { 0x0f, 0x05 };	/* syscall */

struct arch_state {
	struct user_regs_struct gp;
	void *xs;		/* NT_X86_XSTATE image, NULL if not used */
	size_t xs_cap, xs_len;
	struct user_fpregs_struct fp;	/* when there is no XSAVE */
};

static int arch_init(struct arch_state *s)
{
	memset(s, 0, sizeof(*s));
	s->xs_cap = 16384;	/* AMX-sized images are ~11 KiB */
	s->xs = malloc(s->xs_cap);
	return s->xs ? 0 : -ENOMEM;
}

static void arch_fini(struct arch_state *s)
{
	free(s->xs);
	s->xs = NULL;
}

static int arch_save(pid_t tid, struct arch_state *s)
{
	struct iovec iov;

	if (ptrace(PTRACE_GETREGS, tid, NULL, &s->gp))
		return -errno;
	if (s->gp.cs != ARCH_USER_CS64)
		return -EOPNOTSUPP;	/* 32-bit task: no 64-bit syscall */
	for (;;) {
		iov.iov_base = s->xs;
		iov.iov_len = s->xs_cap;
		if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_X86_XSTATE, &iov)) {
			if (errno != EINVAL && errno != ENODEV && errno != EIO)
				return -errno;
			/* no XSAVE: the legacy FXSAVE area is all there is */
			free(s->xs);
			s->xs = NULL;
			s->xs_len = 0;
			if (ptrace(PTRACE_GETFPREGS, tid, NULL, &s->fp))
				return -errno;
			return 0;
		}
		if (iov.iov_len < s->xs_cap)
			break;
		/* possibly truncated: the kernel's image may be larger */
		void *n = realloc(s->xs, s->xs_cap * 4);

		if (!n)
			return -ENOMEM;
		s->xs = n;
		s->xs_cap *= 4;
	}
	s->xs_len = iov.iov_len;
	return 0;
}

static int arch_setup_call(pid_t tid, const struct arch_state *s, uint64_t ip,
			   long nr, const long a[6])
{
	struct user_regs_struct r = s->gp;

	r.rip = ip;
	r.rax = (unsigned long long)nr;
	r.rdi = (unsigned long long)a[0];
	r.rsi = (unsigned long long)a[1];
	r.rdx = (unsigned long long)a[2];
	r.r10 = (unsigned long long)a[3];
	r.r8 = (unsigned long long)a[4];
	r.r9 = (unsigned long long)a[5];
	/* not in a system call: no restart logic on the way out of this stop */
	r.orig_rax = (unsigned long long)-1;
	return ptrace(PTRACE_SETREGS, tid, NULL, &r) ? -errno : 0;
}

static int arch_get_ip_ret(pid_t tid, uint64_t *ip, long *ret)
{
	struct user_regs_struct r;

	if (ptrace(PTRACE_GETREGS, tid, NULL, &r))
		return -errno;
	*ip = r.rip;
	*ret = (long)r.rax;
	return 0;
}

static int arch_restore(pid_t tid, const struct arch_state *s)
{
	struct iovec iov = { s->xs, s->xs_len };
	int err = 0;

	if (ptrace(PTRACE_SETREGS, tid, NULL, &s->gp))
		err = -errno;
	if (s->xs) {
		if (ptrace(PTRACE_SETREGSET, tid, (void *)NT_X86_XSTATE, &iov) && !err)
			err = -errno;
	} else if (ptrace(PTRACE_SETFPREGS, tid, NULL, &s->fp) && !err) {
		err = -errno;
	}
	return err;
}

#else /* !__x86_64__: compiles, refuses at run time */

#define ARCH_SUPPORTED 0
static const uint8_t arch_insn[] = { 0, 0 };

struct arch_state {
	int unused;
};

static int arch_init(struct arch_state *s) { s->unused = 0; return 0; }
static void arch_fini(struct arch_state *s) { (void)s; }
static int arch_save(pid_t tid, struct arch_state *s) { return -EOPNOTSUPP; }
static int arch_setup_call(pid_t tid, const struct arch_state *s, uint64_t ip,
			   long nr, const long a[6]) { return -EOPNOTSUPP; }
static int arch_get_ip_ret(pid_t tid, uint64_t *ip, long *ret) { return -EOPNOTSUPP; }
static int arch_restore(pid_t tid, const struct arch_state *s) { return -EOPNOTSUPP; }

#endif
/* ------------------------------ end of arch section --------------- */

struct thr_info {
	char state;		/* R S D T t Z X ... */
	pid_t tgid, ppid, tracer;
	uint64_t sigpnd;	/* thread-private pending */
	uint64_t sigign;
	int seccomp;
};

struct stop {
	bool event;		/* PTRACE_EVENT_STOP (interrupt or group-stop) */
	int sig;
	siginfo_t info;		/* valid when !event */
};

struct inj {
	pid_t tgid, tid;
	bool our_child;		/* leader of a child of ours: never reap it */
	uint64_t insn;
	struct pt_inject_stats *st;
	int mm_fd;		/* pagemap fd of the mm the call is meant for, or -1 */
	/* user signals intercepted during the call, to re-deliver */
	siginfo_t kept[MAX_KEPT];
	unsigned nkept;
};

static int read_thr_info(pid_t pid, pid_t tid, struct thr_info *ti)
{
	char path[64], buf[4096], *line, *save;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	int err = errno;

	close(fd);
	if (n <= 0)
		return n == 0 || err == ESRCH ? -ESRCH : -err;
	buf[n] = '\0';
	memset(ti, 0, sizeof(*ti));
	ti->seccomp = -1;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "State:", 6))
			sscanf(line + 6, " %c", &ti->state);
		else if (!strncmp(line, "Tgid:", 5))
			ti->tgid = (pid_t)strtol(line + 5, NULL, 10);
		else if (!strncmp(line, "PPid:", 5))
			ti->ppid = (pid_t)strtol(line + 5, NULL, 10);
		else if (!strncmp(line, "TracerPid:", 10))
			ti->tracer = (pid_t)strtol(line + 10, NULL, 10);
		else if (!strncmp(line, "SigPnd:", 7))
			ti->sigpnd = strtoull(line + 7, NULL, 16);
		else if (!strncmp(line, "SigIgn:", 7))
			ti->sigign = strtoull(line + 7, NULL, 16);
		else if (!strncmp(line, "Seccomp:", 8))
			ti->seccomp = (int)strtol(line + 8, NULL, 10);
	}
	return ti->tgid > 0 ? 0 : -EIO;
}

static bool usable(char state)
{
	return state != 'Z' && state != 'X' && state != 'x';
}

/*
 * The thread group leader if it is alive, else another live thread;
 * threads in uninterruptible sleep (which would delay the stop) are
 * passed over when there is a choice.
 */
static int pick_thread(pid_t pid, pid_t *tid, struct thr_info *ti)
{
	struct thr_info lead, t;
	struct dirent *de;
	pid_t fallback = 0;
	DIR *d;
	int r;

	r = read_thr_info(pid, pid, &lead);
	if (r)
		return r;
	*tid = pid;
	*ti = lead;
	if (usable(lead.state) && lead.state != 'D')
		return 0;
	if (usable(lead.state))
		fallback = pid;

	char path[48];

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? -ESRCH : -errno;
	while ((de = readdir(d))) {
		pid_t id = (pid_t)strtol(de->d_name, NULL, 10);

		if (id <= 0 || id == pid || read_thr_info(pid, id, &t))
			continue;
		if (!usable(t.state))
			continue;
		if (t.state != 'D') {
			*tid = id;
			*ti = t;
			closedir(d);
			return 0;
		}
		if (!fallback) {
			fallback = id;
			*ti = t;
		}
	}
	closedir(d);
	if (!fallback)
		return -ESRCH;	/* every thread is exiting */
	*tid = fallback;
	if (fallback == pid)
		*ti = lead;
	return 0;
}

/*
 * Read the memory of thread @tid's process (a thread id, not the leader's:
 * a zombie leader has no mm); /proc/TID/mem if process_vm_readv can't.
 */
static ssize_t read_remote(pid_t tid, uint64_t addr, void *buf, size_t len)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)addr, len };
	char path[48];
	ssize_t n;
	int fd;

	n = process_vm_readv(tid, &l, 1, &r, 1, 0);
	if (n > 0)
		return n;
	if (n < 0 && errno == ESRCH)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	n = pread(fd, buf, len, (off_t)addr);
	if (n < 0)
		n = -errno;
	close(fd);
	return n == 0 ? -EFAULT : n;
}

/* First `syscall` instruction in [start, end) of @pid, or 0. */
static uint64_t scan_range(pid_t tid, uint64_t start, uint64_t end, uint8_t *buf)
{
	const size_t il = sizeof(arch_insn);

	for (uint64_t a = start; a + il <= end; a += REMOTE_CHUNK - (il - 1)) {
		size_t len = end - a < REMOTE_CHUNK ? (size_t)(end - a) : REMOTE_CHUNK;
		ssize_t n = read_remote(tid, a, buf, len);

		if (n < (ssize_t)il)
			return 0;
		uint8_t *p = memmem(buf, (size_t)n, arch_insn, il);

		if (p)
			return a + (uint64_t)(p - buf);
	}
	return 0;
}

static bool is_libc(const char *path)
{
	const char *b = strrchr(path, '/');

	b = b ? b + 1 : path;
	return !strncmp(b, "libc.so", 7) || !strncmp(b, "libc-", 5) ||
	       !strncmp(b, "ld-musl", 7);
}

/*
 * Find a `syscall` instruction already present in the executable memory
 * of @pid: in [vdso], else in an r-xp mapping of libc.  Read before the
 * thread is stopped, and checked again once it is (see verify_insn).
 */
static int find_insn(pid_t pid, pid_t tid, uint64_t *addr)
{
	uint64_t vs = 0, ve = 0, ls[8], le[8], s, e;
	unsigned nl = 0;
	char path[64], perms[8], *line = NULL;
	size_t cap = 0;
	uint8_t *buf = NULL;
	int r = -ENOEXEC, n;
	FILE *f;

	/* the thread's view: a zombie leader's own maps are empty */
	snprintf(path, sizeof(path), "/proc/%d/task/%d/maps", (int)pid, (int)tid);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	while (getline(&line, &cap, f) > 0) {
		n = 0;
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &s, &e, perms, &n) < 3 || !n)
			continue;
		char *p = line + n;

		p[strcspn(p, "\n")] = '\0';
		if (perms[2] != 'x')
			continue;
		if (!strcmp(p, "[vdso]")) {
			vs = s;
			ve = e;
		} else if (nl < 8 && perms[0] == 'r' && is_libc(p)) {
			ls[nl] = s;
			le[nl++] = e;
		}
	}
	free(line);
	fclose(f);
	buf = malloc(REMOTE_CHUNK);
	if (!buf)
		return -ENOMEM;
	*addr = vs ? scan_range(tid, vs, ve, buf) : 0;
	for (unsigned i = 0; !*addr && i < nl; i++)
		*addr = scan_range(tid, ls[i], le[i], buf);
	if (*addr)
		r = 0;
	free(buf);
	return r;
}

/* The instruction is still there (the target may have exec'd or unmapped). */
static int verify_insn(const struct inj *c)
{
	uint8_t b[sizeof(arch_insn)];
	ssize_t n = read_remote(c->tid, c->insn, b, sizeof(b));

	if (n == -ESRCH)
		return -ESRCH;
	if (n != (ssize_t)sizeof(b) || memcmp(b, arch_insn, sizeof(b)))
		return -EFAULT;
	return 0;
}

/*
 * Is the stopped thread still in the address space c->mm_fd was opened
 * on?  A pagemap fd is bound to one mm and reads empty once it is gone
 * (exec, exit).  Checked while the thread is held stopped: it cannot exec
 * then, and another thread's exec kills it first, so a call never runs in
 * a program that replaced the one the caller meant.
 */
static int verify_mm(const struct inj *c)
{
	uint64_t e;

	if (c->mm_fd < 0)
		return 0;
	return pread(c->mm_fd, &e, sizeof(e), 0) == (ssize_t)sizeof(e) ? 0 : -ESRCH;
}

/*
 * Wait for the next stop of c->tid without consuming it (WNOWAIT).
 * Returns 0, or -ESRCH when the thread exited (reaped unless it is the
 * caller's own child, whose status the caller will collect).
 */
static int wait_stop(struct inj *c, struct stop *ev)
{
	siginfo_t si;

	for (;;) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)c->tid, &si, WSTOPPED | WEXITED | __WALL | WNOWAIT)) {
			if (errno == EINTR)
				continue;
			return errno == ECHILD ? -ESRCH : -errno;
		}
		if (si.si_code == CLD_EXITED || si.si_code == CLD_KILLED ||
		    si.si_code == CLD_DUMPED) {
			if (!c->our_child)
				waitpid(c->tid, NULL, __WALL | WNOHANG);
			return -ESRCH;
		}
		memset(&ev->info, 0, sizeof(ev->info));
		if (ptrace(PTRACE_GETSIGINFO, c->tid, NULL, &ev->info)) {
			if (errno == ESRCH)
				continue;	/* woken by SIGKILL: the exit follows */
			return -errno;
		}
		break;
	}
	c->st->stops++;
	ev->sig = ev->info.si_signo;
	ev->event = ((ev->info.si_code >> 8) & 0xff) == PTRACE_EVENT_STOP;
	return 0;
}

/* Our single-step trap, or a fault the kernel raised at our instruction. */
static bool kernel_sig(const struct stop *ev, int sig)
{
	return !ev->event && ev->sig == sig && ev->info.si_code > 0;
}

static bool is_fault(const struct stop *ev)
{
	return kernel_sig(ev, SIGSEGV) || kernel_sig(ev, SIGBUS) ||
	       kernel_sig(ev, SIGILL) || kernel_sig(ev, SIGFPE);
}

/* A signal someone sent during the call: set it aside for later. */
static void keep_signal(struct inj *c, const struct stop *ev)
{
	for (unsigned i = 0; i < c->nkept; i++)
		if (c->kept[i].si_signo == ev->sig && ev->sig < SIGRTMIN)
			return;	/* standard signals do not queue */
	if (c->nkept < MAX_KEPT)
		c->kept[c->nkept++] = ev->info;
	c->st->signals_kept++;
}

/*
 * The call ran but we are not at its SIGTRAP stop (a group-stop or a
 * user signal's stop came first): that SIGTRAP is still queued and
 * would kill the target once untraced.  Registers are restored by now,
 * so resume into the signal loop until the kernel hands it to us.
 */
static int drain_trap(struct inj *c, bool *at_trap)
{
	struct thr_info ti;
	struct stop ev;
	int r;

	for (int i = 0; i < MAX_STEPS; i++) {
		r = read_thr_info(c->tgid, c->tid, &ti);
		if (r)
			return r;
		if (!(ti.sigpnd & SIGBIT(SIGTRAP)))
			return 0;
		if (ptrace(PTRACE_CONT, c->tid, NULL, 0))
			return -errno;
		r = wait_stop(c, &ev);
		if (r)
			return r;
		if (kernel_sig(&ev, SIGTRAP)) {
			*at_trap = true;
			return 0;
		}
		if (!ev.event)
			keep_signal(c, &ev);
	}
	return -EAGAIN;
}

/*
 * Resume for good.  At a signal-delivery-stop the first kept signal
 * replaces the one being delivered (our SIGTRAP), siginfo and all; any
 * other is re-sent (the sender then reads as us).
 */
static void detach(struct inj *c, bool at_sig_stop, uint64_t t0)
{
	unsigned first = 0;
	int sig = 0;

	if (at_sig_stop && c->nkept &&
	    !ptrace(PTRACE_SETSIGINFO, c->tid, NULL, &c->kept[0])) {
		sig = c->kept[0].si_signo;
		first = 1;
	}
	if (t0)
		c->st->pause_ns = pt__now_ns() - t0;
	ptrace(PTRACE_DETACH, c->tid, NULL, (void *)(long)sig);
	for (unsigned i = first; i < c->nkept; i++)
		syscall(SYS_tgkill, c->tgid, c->tid, c->kept[i].si_signo);
}

int pt__inject_syscall(pid_t pid, long nr, const long args[6], long *ret,
		       struct pt_inject_stats *st)
{
	return pt__inject_syscall_mm(pid, -1, nr, args, ret, st);
}

int pt__inject_syscall_mm(pid_t pid, int mm_fd, long nr, const long args[6], long *ret,
			  struct pt_inject_stats *st)
{
	static const long zero[6];
	struct pt_inject_stats local;
	struct arch_state as;
	struct thr_info ti;
	struct stop ev;
	struct inj c;
	uint64_t mask, block, t0 = 0, ip = 0;
	bool executed = false, at_trap = false;
	long rv = 0;
	int r;

	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	memset(&c, 0, sizeof(c));
	c.st = st;
	c.mm_fd = mm_fd;
	if (!ARCH_SUPPORTED)
		return -EOPNOTSUPP;
	if (pid <= 0 || !ret)
		return -EINVAL;
	if (!args)
		args = zero;

	r = pick_thread(pid, &c.tid, &ti);
	if (r)
		return r;
	c.tgid = ti.tgid;
	if (c.tgid == getpid())
		return -EINVAL;
	if (ti.tracer)
		return -EBUSY;
	if (ti.seccomp != 0)
		return -EACCES;
	if (ti.sigign & SIGBIT(SIGTRAP))
		return -EOPNOTSUPP;
	c.our_child = c.tid == c.tgid && ti.ppid == getpid();
	r = find_insn(c.tgid, c.tid, &c.insn);
	if (r)
		return r;
	st->insn_addr = c.insn;
	r = arch_init(&as);
	if (r)
		return r;

	if (ptrace(PTRACE_SEIZE, c.tid, NULL, 0)) {
		r = -errno;
		if (r == -EPERM && !read_thr_info(c.tgid, c.tid, &ti) && ti.tracer)
			r = -EBUSY;
		goto out;
	}
	st->tid = c.tid;
	/* ESRCH here means it is dying: wait_stop reports the exit */
	ptrace(PTRACE_INTERRUPT, c.tid, NULL, 0);

	/* Phase 1: a stop in which the thread runs none of its code. */
	for (;;) {
		r = wait_stop(&c, &ev);
		if (r)
			goto out;	/* gone: nothing to undo */
		if (ev.event)
			break;
		if (st->signals_passed >= MAX_SIG_PASSES) {
			ptrace(PTRACE_DETACH, c.tid, NULL, (void *)(long)ev.sig);
			r = -EAGAIN;
			goto out;
		}
		/*
		 * A signal was being delivered as we seized: let it go on
		 * exactly as it would have (same siginfo, handler frame);
		 * the pending interrupt stops the thread right after.
		 */
		if (ptrace(PTRACE_CONT, c.tid, NULL, (void *)(long)ev.sig)) {
			r = -errno;
			goto out;
		}
		st->signals_passed++;
	}
	t0 = pt__now_ns();
	st->group_stopped = ev.sig != SIGTRAP;

	r = arch_save(c.tid, &as);
	if (!r && ptrace(PTRACE_GETSIGMASK, c.tid, (void *)sizeof(mask), &mask))
		r = -errno;
	if (!r)
		r = verify_mm(&c);
	if (!r)
		r = verify_insn(&c);
	if (!r)
		r = pt__fault(PT_FAULT_INJECT);
	if (r) {
		detach(&c, false, t0);
		goto out;
	}
	block = ~0ULL & ~FORCED_SIGS;
	if (ptrace(PTRACE_SETSIGMASK, c.tid, (void *)sizeof(block), &block)) {
		r = -errno;
		detach(&c, false, t0);
		goto out;
	}
	r = arch_setup_call(c.tid, &as, c.insn, nr, args);
	if (r)
		goto restore;

	/* Phase 2: execute exactly the one instruction. */
	r = -EAGAIN;
	for (int i = 0; i < MAX_STEPS; i++) {
		if (ptrace(PTRACE_SINGLESTEP, c.tid, NULL, 0)) {
			r = -errno;
			break;
		}
		r = wait_stop(&c, &ev);
		if (r)
			goto out;	/* killed meanwhile */
		r = arch_get_ip_ret(c.tid, &ip, &rv);
		if (r)
			break;
		if (ip == c.insn + sizeof(arch_insn)) {
			executed = true;
			/* interrupted (a SIGSTOP or group-stop came): it will not
			 * be restarted, so say what the caller can act on */
			*ret = rv <= -ERESTARTSYS && rv >= -ERESTART_RESTARTBLOCK ? -EINTR : rv;
			at_trap = kernel_sig(&ev, SIGTRAP);
			if (!at_trap && !ev.event)
				keep_signal(&c, &ev);
			break;
		}
		r = -EIO;
		if (ip != c.insn)
			break;	/* moved without running our instruction */
		if (ev.event || kernel_sig(&ev, SIGTRAP))
			continue;	/* stopped before it ran: step again */
		if (is_fault(&ev)) {
			r = -EFAULT;	/* ours: dropped by detaching with 0 */
			break;
		}
		keep_signal(&c, &ev);
	}
	if (executed)
		r = 0;

restore:
	for (int tries = 0;; tries++) {
		int rr = arch_restore(c.tid, &as);

		if (ptrace(PTRACE_SETSIGMASK, c.tid, (void *)sizeof(mask), &mask) && !rr)
			rr = -errno;
		if (rr == -ESRCH) {
			/*
			 * Not in a ptrace-stop right now (a group-stop or SIGCONT
			 * raced with us, seen on 6.1): it must not run on with the
			 * call's registers.  Wait for its next stop and restore
			 * again; only a thread that is gone gives up.
			 */
			if (tries < 1000 && wait_stop(&c, &ev) == 0) {
				if (kernel_sig(&ev, SIGTRAP))
					at_trap = true;	/* our step's trap: dropped on detach */
				else if (ev.sig && !ev.event)
					keep_signal(&c, &ev);
				continue;
			}
			r = -ESRCH;
			goto out;
		}
		if (rr && !r)
			r = rr;
		break;
	}
	if (executed && !at_trap) {
		int rr = drain_trap(&c, &at_trap);

		if (rr == -ESRCH) {
			r = rr;
			goto out;
		}
	}
	/* at_trap: a signal-delivery-stop; else at an event stop or, on
	 * failure paths, at whichever stop we had */
	detach(&c, at_trap || (!executed && !ev.event), t0);
out:
	arch_fini(&as);
	return r;
}
