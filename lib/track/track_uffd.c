/* SPDX-License-Identifier: MIT */
/*
 * Tracker backend: userfaultfd write-protect in async mode + PAGEMAP_SCAN.
 *
 * The kernel resolves write faults on protected pages itself (no thread
 * of ours answers them) and the written page shows PAGE_IS_WRITTEN until
 * PAGEMAP_SCAN with PM_SCAN_WP_MATCHING harvests and re-protects it in
 * one atomic step.  Only pages holding data are protected: protecting
 * holes would install PTE markers, and page tables, across the whole
 * area (a sparse 64 TiB reservation would cost 128 GiB); a write into a
 * hole creates an unprotected page, which is reported as written anyway.
 * Pages that lose their data (MADV_DONTNEED) are found by the populated
 * set kept in tracker.c: the harvest's walk lists every region holding
 * data, so the gaps are the holes.
 *
 * A userfaultfd acts on the mm of the process that created it, so for
 * another process one userfaultfd() runs inside it (lib/process/inject.c) and
 * the fd is fetched with pidfd_getfd(); everything else is done here.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/kcmp.h>

#include "process/freeze.h"
#include "process/inject.h"
#include "owner.h"
#include "tracker.h"
#include "uapi.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

struct uffd_priv {
	int uffd;		/* ours */
	int remote_fd;		/* the same file's fd number in the target, -1 for self */
	int pidfd;
	uint64_t features;
	struct page_region *vec;
	size_t vec_len;
	/*
	 * Ranges registered since the last round whose areas the tracker
	 * saved (tr->saves was reg_saves): fini unregisters them as well as
	 * the saved areas, so a round that failed half-way (the first one
	 * in pt_tracker_create) leaves nothing registered.
	 */
	struct pt_dirtylist reg;
	uint64_t reg_saves;
	bool protected;		/* this round re-protected pages that hold data */
	bool no_barrier;	/* pt__barrier() refused: said once */
	struct pt_owner owner;	/* our claim on the target (lib/track/owner.c) */
};

#define VEC_LEN 4096
#define UNREG_CHUNK (16ull << 20)	/* bytes unregistered per ioctl in fini */
/*
 * The injected close() is retried while another tracer holds the target
 * for a moment (a second pagetrack freezing or injecting: -EBUSY) or a
 * signal storm keeps it from stopping (-EAGAIN): at most CLOSE_TRIES
 * times, backing off from 1 ms to 50 ms, and for at most CLOSE_MAX_NS.
 */
#define CLOSE_TRIES 20
#define CLOSE_MAX_NS 1000000000ull

static int local_userfaultfd(void)
{
	int fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 && errno == EPERM)
		fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0 && (errno == EPERM || errno == ENOSYS)) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
			close(dev);
		}
	}
	return fd < 0 ? -errno : fd;
}

/*
 * Run one injected system call from a forked helper.  If pagetrack dies
 * in the middle (SIGKILL, the OOM killer), the helper still restores the
 * target and detaches: a tracer dying between setting the call's
 * registers and restoring them would leave the target running on them,
 * or with the single step's SIGTRAP pending, which kills it.  With Yama
 * ptrace_scope 1 a sibling may not trace what we may; then inject here.
 * The call runs only in the address space tr->t was opened on: after an
 * exec the fd numbers belong to the new program (-ESRCH then).
 */
static int inject(struct pt_tracker *tr, long nr, const long args[6], long *ret,
		  struct pt_inject_stats *st)
{
	pid_t pid = tr->pid;
	int mm_fd = tr->t->pagemap_fd;
	sigset_t all;
	struct {
		int err;
		long ret;
		struct pt_inject_stats st;
	} res = { .err = -EIO };
	size_t got = 0;
	int p[2];
	pid_t c;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	c = fork();
	if (c < 0) {
		close(p[0]);
		close(p[1]);
		return pt__inject_syscall_mm(pid, mm_fd, nr, args, ret, st);
	}
	if (c == 0) {
		/*
		 * Only SIGKILL may end the helper mid-call: a tty's Ctrl-C
		 * reaches the whole process group, and a caller's default
		 * disposition would kill it with the target's registers set.
		 */
		sigfillset(&all);
		sigprocmask(SIG_BLOCK, &all, NULL);
		signal(SIGPIPE, SIG_IGN);	/* the parent may be gone */
		res.err = pt__inject_syscall_mm(pid, mm_fd, nr, args, &res.ret, &res.st);
		if (write(p[1], &res, sizeof(res)) < 0)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	while (got < sizeof(res)) {
		ssize_t r = read(p[0], (char *)&res + got, sizeof(res) - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(p[0]);
	while (waitpid(c, NULL, 0) < 0 && errno == EINTR)
		;
	if (got != sizeof(res))
		return -EIO;
	if (res.err == -EPERM)
		return pt__inject_syscall_mm(pid, mm_fd, nr, args, ret, st);
	*ret = res.ret;
	*st = res.st;
	return res.err;
}

/* Create the userfaultfd inside the target and fetch it. */
static int remote_userfaultfd(struct pt_tracker *tr, struct uffd_priv *u)
{
	long args[6] = { O_CLOEXEC | O_NONBLOCK, 0, 0, 0, 0, 0 };
	struct pt_inject_stats st;
	long ret = 0;
	int err, fd;

	u->pidfd = (int)syscall(__NR_pidfd_open, tr->pid, 0);
	if (u->pidfd < 0)
		return -errno;
	err = inject(tr, __NR_userfaultfd, args, &ret, &st);
	if (!err && ret == -EPERM) {
		/* vm.unprivileged_userfaultfd=0 and an unprivileged target */
		args[0] |= UFFD_USER_MODE_ONLY;
		err = inject(tr, __NR_userfaultfd, args, &ret, &st);
	}
	if (err)
		return err;
	if (st.pause_ns > tr->st.pause_ns_max)
		tr->st.pause_ns_max = st.pause_ns;
	if (ret < 0)
		return (int)ret;
	u->remote_fd = (int)ret;	/* from here on, fini() closes it in the target */
	if (u->owner.fd >= 0 && (err = pt__owner_record(&u->owner, u->remote_fd)))
		pt__log(PT_LOG_INFO, "cannot record our userfaultfd in %s: %s", u->owner.path,
			strerror(-err));
	if ((err = pt__fault(PT_FAULT_UFFD_CREATE)) || (err = pt__fault(PT_FAULT_UFFD_GETFD)))
		return err;
	fd = (int)syscall(__NR_pidfd_getfd, u->pidfd, u->remote_fd, 0);
	if (fd < 0)
		return -errno;
	return fd;
}

/*
 * Is fd u->remote_fd of the target still the userfaultfd we made there?
 * The target may have closed it and reused the number (a close-all-fds
 * loop): closing it then would close one of its own files.  kcmp()
 * compares with our copy; without a copy (pidfd_getfd failed) or kcmp
 * (no CONFIG_KCMP), the link must at least name a userfaultfd.
 */
static bool remote_fd_ours(struct pt_tracker *tr, struct uffd_priv *u)
{
	char path[64], link[64];
	ssize_t n;

	if (u->uffd >= 0) {
		long r = syscall(__NR_kcmp, getpid(), tr->pid, KCMP_FILE, u->uffd, u->remote_fd);

		if (r >= 0)
			return r == 0;
	}
	snprintf(path, sizeof(path), "%s/fd/%d", tr->t->procdir, u->remote_fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = '\0';
	return !strcmp(link, "anon_inode:[userfaultfd]");
}

/*
 * Close the userfaultfd we made inside the target, by injection, the same
 * way on every path: the end of tracking and every failure after the
 * injected userfaultfd() (uffd_init's, or the first round's).
 */
static int close_remote(struct pt_tracker *tr, struct uffd_priv *u)
{
	long args[6] = { u->remote_fd, 0, 0, 0, 0, 0 };
	struct pt_inject_stats st;
	uint64_t t0 = pt__now_ns();
	useconds_t backoff = 1000;
	long ret = 0;
	int err = 0;

	if (u->remote_fd < 0)
		return 0;
	if (!pt__target_mm_alive(tr->t)) {
		/*
		 * Exited, or exec'd: the fd was O_CLOEXEC and went with the old
		 * program; its number may now belong to the new one.
		 */
		u->remote_fd = -1;
		return 0;
	}
	if (!remote_fd_ours(tr, u)) {
		pt__log(PT_LOG_INFO, "pid %d closed the userfaultfd (fd %d) itself", (int)tr->pid,
			u->remote_fd);
		u->remote_fd = -1;
		return 0;
	}
	for (int i = 0; i < CLOSE_TRIES; i++) {
		err = pt__fault(PT_FAULT_UFFD_CLOSE);
		if (!err)
			err = inject(tr, __NR_close, args, &ret, &st);
		if (err != -EBUSY && err != -EAGAIN)
			break;
		if (pt__now_ns() - t0 + backoff * 1000ull > CLOSE_MAX_NS)
			break;
		usleep(backoff);
		backoff = backoff * 2 > 50000 ? 50000 : backoff * 2;
	}
	if (err == 0) {
		if (st.pause_ns > tr->st.pause_ns_max)
			tr->st.pause_ns_max = st.pause_ns;
		if (ret < 0)
			pt__log(PT_LOG_INFO, "close of fd %d inside pid %d: %s", u->remote_fd,
				(int)tr->pid, strerror((int)-ret));
	} else if (err != -ESRCH) {
		pt__log(PT_LOG_WARN, "could not close the userfaultfd (fd %d) inside pid %d: %s",
			u->remote_fd, (int)tr->pid, strerror(-err));
	}
	u->remote_fd = -1;
	return err == -ESRCH ? 0 : err;
}

/*
 * Claim the target (lib/track/owner.c) before making a userfaultfd in it:
 * -EALREADY when another pagetrack tracks it; a userfaultfd that a killed
 * pagetrack left there is closed first (it would make every registration
 * fail with EBUSY).  Without a run directory we may write (not root), the
 * target is tracked unclaimed, as before.
 */
static int claim(struct pt_tracker *tr, struct uffd_priv *u)
{
	pid_t holder;
	int left, err = pt__owner_claim(tr->pid, &u->owner, &holder, &left);

	if (err == -EBUSY) {
		pt__log(PT_LOG_WARN, "pid %d is already tracked with a userfaultfd by pagetrack "
			"pid %d", (int)tr->pid, (int)holder);
		return -EALREADY;
	}
	if (err == -ESRCH)
		return err;
	if (err) {
		pt__log(PT_LOG_INFO, "cannot claim pid %d (%s): tracking it unclaimed", (int)tr->pid,
			strerror(-err));
		return 0;
	}
	if (left < 0)
		return 0;
	u->remote_fd = left;	/* u->uffd is -1: close_remote() checks the link */
	err = close_remote(tr, u);
	if (err)
		return err;
	tr->st.leftovers_closed++;
	pt__log(PT_LOG_WARN, "closed the userfaultfd (fd %d) that a killed pagetrack (pid %d) "
		"had left in pid %d", left, (int)holder, (int)tr->pid);
	return 0;
}

static int uffd_init(struct pt_tracker *tr)
{
	struct uffd_priv *u;
	struct uffdio_api api = { .api = UFFD_API };
	int err;

	if (pt_feature(PT_FEAT_PAGEMAP_SCAN, NULL) != PT_YES ||
	    pt_feature(PT_FEAT_UFFD_WP_ASYNC, NULL) != PT_YES ||
	    pt_feature(PT_FEAT_UFFD_WP_UNPOPULATED, NULL) != PT_YES)
		return -EOPNOTSUPP;
	if (!tr->self && pt_feature(PT_FEAT_PIDFD_GETFD, NULL) != PT_YES)
		return -EOPNOTSUPP;
	/* on failure, the tracker calls uffd_fini(), which undoes what was done */
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->uffd = u->remote_fd = u->pidfd = u->owner.fd = -1;
	u->vec_len = VEC_LEN;
	u->vec = malloc(VEC_LEN * sizeof(*u->vec));
	tr->priv = u;
	if (!u->vec)
		return -ENOMEM;
	if (!tr->self && (err = claim(tr, u)))
		return err;
	err = tr->self ? local_userfaultfd() : remote_userfaultfd(tr, u);
	if (err < 0)
		return err;
	u->uffd = err;
	/*
	 * WP_UNPOPULATED is required for PAGEMAP_SCAN to accept anonymous
	 * areas as async-WP ones; we never protect holes ourselves.
	 */
	api.features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
	if (pt_feature(PT_FEAT_UFFD_WP_HUGETLBFS_SHMEM, NULL) == PT_YES)
		api.features |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	if ((err = pt__fault(PT_FAULT_UFFD_API)))
		return err;
	if (ioctl(u->uffd, UFFDIO_API, &api) < 0)
		return -errno;
	u->features = api.features;
	return 0;
}

static bool uffd_can_track(struct pt_tracker *tr, const struct pt_vma *v)
{
	struct uffd_priv *u = tr->priv;

	if (v->kind == PT_VMA_HUGETLB && !(u->features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM))
		return false;
	return true;
}

/*
 * One PAGEMAP_SCAN pass over [start,end), all of it (resuming at
 * walk_end), calling @fn for every region returned.
 */
static int scan_pass(struct pt_tracker *tr, uint64_t start, uint64_t end, uint64_t flags,
		     uint64_t inverted, uint64_t mask, uint64_t anyof,
		     int (*fn)(struct pt_tracker *, const struct page_region *, void *), void *arg)
{
	struct uffd_priv *u = tr->priv;
	struct pm_scan_arg a;
	uint64_t cur = start;

	while (cur < end) {
		long n;

		memset(&a, 0, sizeof(a));
		a.size = sizeof(a);
		a.flags = flags;
		a.start = cur;
		a.end = end;
		a.vec = (uint64_t)(uintptr_t)u->vec;
		a.vec_len = u->vec_len;
		a.category_inverted = inverted;
		a.category_mask = mask;
		a.category_anyof_mask = anyof;
		a.return_mask = PAGE_IS_WRITTEN | PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
		n = ioctl(tr->t->pagemap_fd, PAGEMAP_SCAN, &a);
		if (n < 0)
			return errno == EPERM ? -ENOENT : pt__target_errno(tr->t, errno);
		for (long i = 0; i < n; i++) {
			int err = fn(tr, &u->vec[i], arg);
			if (err)
				return err;
		}
		if (a.walk_end <= cur)
			return pt__target_errno(tr->t, ESRCH);
		cur = a.walk_end;
	}
	return 0;
}

struct arm_ctx {
	struct pt_dirtylist *holes;	/* gaps between the regions, or NULL */
	uint64_t cur;			/* end of the last region seen */
};

/*
 * One region holding data, of the walk that protects a new part: recorded
 * as populated.  The gaps between regions held no data at that instant
 * (the holes, which stay unprotected: a write into one makes a page the
 * next harvest reports as written).
 */
static int add_pop(struct pt_tracker *tr, const struct page_region *r, void *arg)
{
	struct uffd_priv *u = tr->priv;
	struct arm_ctx *c = arg;
	int err;

	if (c->holes && r->start > c->cur && (err = pt__dirty_add(c->holes, c->cur, r->start, 0)))
		return err;
	c->cur = r->end;
	u->protected = true;
	return pt__pop_add(tr, r->start, r->end);
}

struct harvest_ctx {
	struct pt_tracker *tr;
	struct pt_dirtylist *out;
	struct pt_dirtylist none;	/* holes: between the regions holding data */
	uint64_t cur;			/* end of the last region seen */
	enum pt_hot_kind kind;		/* of the segment being walked (PT_TRACK_HOT) */
	const struct pt_hotrun *run;	/* its hot run (PT_HOT_KEEP) */
};

/*
 * One region holding data (present or swapped), of the harvest: written
 * since the last round (then re-protected by the same walk) or not.  The
 * gaps between regions are the pages with no data.
 */
static int add_data(struct pt_tracker *tr, const struct page_region *r, void *arg)
{
	struct harvest_ctx *c = arg;
	struct uffd_priv *u = tr->priv;
	int err;

	if (r->start > c->cur && (err = pt__dirty_add(&c->none, c->cur, r->start, 0)))
		return err;
	c->cur = r->end;
	if (!(r->categories & PAGE_IS_WRITTEN))
		return 0;	/* (in a hot segment: a fresh hot page not written, still protected) */
	switch (c->kind) {
	case PT_HOT_KEEP:	/* left writable: reported, kept hot, no barrier needed */
		if (c->run->fresh)	/* protected until this write: its one fault */
			tr->st.pages_faulted += (r->end - r->start) >> PT_PAGE_SHIFT;
		if ((err = pt__hot_keep(tr->hot, r->start, r->end, c->run->n)))
			return err;
		return pt__dirty_add(c->out, r->start, r->end, PT_DIRTY_HOT);
	case PT_HOT_REARM:	/* writable until this walk re-protected it: no fault */
		u->protected = true;
		if ((err = pt__hot_rearmed(tr->hot, r->start, r->end)))
			return err;
		return pt__dirty_add(c->out, r->start, r->end, 0);
	case PT_HOT_COLD:
		break;
	}
	u->protected = true;
	tr->st.pages_faulted += (r->end - r->start) >> PT_PAGE_SHIFT;
	if (tr->hot && (err = pt__hot_cold_written(tr->hot, r->start, r->end)))
		return err;
	return pt__dirty_add(c->out, r->start, r->end, 0);
}

/*
 * One segment of a harvest: hot pages whose lease runs are walked
 * without re-protection (they stay writable), everything else with.
 */
static int harvest_segment(uint64_t s, uint64_t e, enum pt_hot_kind kind,
			   const struct pt_hotrun *run, void *arg)
{
	struct harvest_ctx *c = arg;
	uint64_t flags = PM_SCAN_CHECK_WPASYNC;

	if (kind != PT_HOT_KEEP)
		flags |= PM_SCAN_WP_MATCHING;
	c->kind = kind;
	c->run = run;
	return scan_pass(c->tr, s, e, flags, 0, 0, PAGE_IS_PRESENT | PAGE_IS_SWAPPED, add_data, c);
}

/* Is the area containing [addr, addr+page) registered for async write-protect? */
static bool wp_async_armed(struct pt_tracker *tr, uint64_t addr)
{
	struct uffd_priv *u = tr->priv;
	struct pm_scan_arg a = { .size = sizeof(a), .flags = PM_SCAN_CHECK_WPASYNC,
				 .start = addr, .end = addr + PT_PAGE_SIZE,
				 .vec = (uint64_t)(uintptr_t)u->vec, .vec_len = 1,
				 .return_mask = PAGE_IS_WRITTEN };

	return ioctl(tr->t->pagemap_fd, PAGEMAP_SCAN, &a) >= 0;
}

static void note_pause(struct pt_tracker *tr, uint64_t one, uint64_t all)
{
	if (one > tr->st.pause_ns_max)
		tr->st.pause_ns_max = one;
	if (all > tr->st.pause_total_ns_max)
		tr->st.pause_total_ns_max = all;
}

/* Index of the VMA of @v (sorted, @n) containing @addr, or -1. */
static ssize_t vma_at(const struct pt_vma *v, int n, uint64_t addr)
{
	size_t lo = 0, hi = n > 0 ? (size_t)n : 0;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (v[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < (size_t)(n > 0 ? n : 0) && v[lo].start <= addr ? (ssize_t)lo : -1;
}

/*
 * Register the VMA containing @addr with its bounds in @vmas, the layout
 * read while the target is frozen.  Registering a stale range would split
 * a VMA, and on 6.17+ a target's mremap() across the two halves fails
 * with EFAULT after moving the first one (measured on 6.18): the
 * target's memory would be torn.  So another process is frozen
 * (microseconds) while its layout is re-read and the whole current VMA
 * is registered; without ptrace the window between the two steps stays
 * open (documented).
 *
 * The current VMA can be larger than the part being armed, and its other
 * pages cannot be trusted when it was not registered: an mremap() that
 * moves an area next to a tracked one merges the two VMAs and then drops
 * the registration of the merged VMA (no UFFD_FEATURE_EVENT_REMAP), so
 * the tracked neighbour keeps our uffd-wp bits in its page table while
 * its writes no longer clear them (measured on 6.18).  Registering it
 * again would make those writes invisible.  So when the VMA was not
 * registered, its whole range is returned in [*rs, *re) to be reported
 * and protected as new; otherwise [*rs, *re) is empty.
 */
static int register_at(struct pt_tracker *tr, const struct pt_vma *vmas, int n, uint64_t addr,
		       uint64_t *rs, uint64_t *re, bool *zero_fill)
{
	struct uffd_priv *u = tr->priv;
	ssize_t i = vma_at(vmas, n, addr);

	*rs = *re = 0;
	*zero_fill = false;
	if (n < 0)
		return n;
	if (i < 0)
		return -ENOENT;	/* no area there any more */
	/* its holes read as zeros: judged on the layout as frozen, not the round's */
	*zero_fill = pt__area_zero_fill(&vmas[i]);
	uint64_t s = vmas[i].start > tr->start ? vmas[i].start : tr->start;
	uint64_t e = vmas[i].end < tr->end ? vmas[i].end : tr->end;
	struct uffdio_register reg = { .range = { s, e - s }, .mode = UFFDIO_REGISTER_MODE_WP };
	bool armed = wp_async_armed(tr, s);
	int err = pt__fault(PT_FAULT_UFFD_REGISTER);

	if (err)
		return err;
	if (ioctl(u->uffd, UFFDIO_REGISTER, &reg) == 0) {
		/* fini unregisters what is recorded; what cannot be, is undone now */
		err = pt__dirty_add(&u->reg, s, e, 0);
		if (err)
			ioctl(u->uffd, UFFDIO_UNREGISTER, &reg.range);
		else if (!armed) {
			*rs = s;
			*re = e;
		}
		return err;
	}
	/* EPERM: not writable ever; EBUSY: the target uses userfaultfd there */
	if (errno == EINVAL || errno == EPERM || errno == EBUSY)
		return -EOPNOTSUPP;
	return pt__target_errno(tr->t, errno);
}

/*
 * Freeze another process (unless it cannot be: -EBUSY, traced by
 * someone else, and then the window stays open) and read its layout
 * into *@vmas (*@n VMAs, or -errno when the read failed).  Returns 0, or
 * -errno when the freeze failed (nothing to undo then); otherwise undo
 * with end_frozen().
 */
static int begin_frozen(struct pt_tracker *tr, struct pt_freeze *fz, bool *frozen,
			struct pt_vma **vmas, int *n)
{
	char path[64];
	int fd;

	*frozen = false;
	*vmas = NULL;
	if (!tr->self) {
		int err = pt__freeze(tr->pid, fz);

		if (err == 0)
			*frozen = true;
		else if (err != -EBUSY)
			return err;
	}
	snprintf(path, sizeof(path), "%s/maps", tr->t->procdir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	*n = fd < 0 ? -errno : pt__maps_parse_fd(fd, vmas);
	if (fd >= 0)
		close(fd);
	return 0;
}

static void end_frozen(struct pt_tracker *tr, struct pt_freeze *fz, bool frozen,
		       struct pt_vma *vmas)
{
	if (frozen) {
		uint64_t dt = pt__thaw(fz);

		/* every thread was held from the first stop to the thaw */
		note_pause(tr, dt, dt);
	}
	free(vmas);
}

/*
 * Arming [start,end) failed because the layout changed under us: which of
 * its pages hold data is unknown.  The part is reported whole this round;
 * its own area may still be armed and harvested next round, and a page
 * dropped meanwhile must then be seen as dropped: take it all as holding
 * data (its holes are reported as zeroed once, falsely).  -ENOENT.
 */
static int pop_unknown(struct pt_tracker *tr, uint64_t start, uint64_t end)
{
	int err = pt__pop_add(tr, start, end);

	return err ? err : -ENOENT;
}

/*
 * The rest of arming [start,end) once its VMA is registered (@err: the
 * registration's result, [rs,re): the VMA when it was not registered).
 * Runs with the target running: only the registration needs the freeze.
 */
static int arm_registered(struct pt_tracker *tr, uint64_t start, uint64_t end, int err,
			  uint64_t rs, uint64_t re, bool zero_fill, struct pt_dirtylist *out)
{
	struct uffd_priv *u = tr->priv;
	struct pt_dirtylist holes = { 0 };
	struct arm_ctx c = { .holes = zero_fill ? &holes : NULL };

	if (err)	/* -ENOENT: nothing there when re-read; see the end */
		return err == -ENOENT ? pop_unknown(tr, start, end) : err;
	if (rs < re) {
		/*
		 * The whole VMA was unregistered: none of its uffd-wp bits are
		 * ours.  A page that kept one and was written meanwhile is now
		 * writable with the bit still set; the kernel takes such a
		 * page for protected and unwritten, so no later write to it
		 * would ever fault or show.  Clear every bit first, then
		 * protect afresh what holds data, and report it all.
		 */
		struct uffdio_writeprotect wp = { .range = { rs, re - rs }, .mode = 0 };
		uint64_t ns = rs < start ? rs : start, ne = re > end ? re : end;

		if ((err = pt__dirty_add(out, ns, start, PT_DIRTY_NEW)) ||
		    (err = pt__dirty_add(out, end, ne, PT_DIRTY_NEW)))
			return err;	/* (empty ranges add nothing) */
		tr->st.pages_new += ((start - ns) + (ne - end)) >> PT_PAGE_SHIFT;
		start = ns;
		end = ne;
		if (ioctl(u->uffd, UFFDIO_WRITEPROTECT, &wp) < 0) {
			if (errno != ENOENT && errno != EINVAL)
				return pt__target_errno(tr->t, errno);
			/*
			 * The VMA changed again: its stale bits may remain, so
			 * it must not stay registered; next round finds it
			 * unarmed and starts over.
			 */
			struct uffdio_range r = { rs, re - rs };

			ioctl(u->uffd, UFFDIO_UNREGISTER, &r);
			err = -ENOENT;
		}
	}
	/* protect the pages holding data; record them as populated, the gaps as holes */
	c.cur = start;
	if (!err)
		err = scan_pass(tr, start, end, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, 0, 0,
				PAGE_IS_PRESENT | PAGE_IS_SWAPPED, add_pop, &c);
	if (!err && c.holes)
		err = pt__dirty_add(&holes, c.cur, end, 0);
	if (!err)
		err = pt__fault(PT_FAULT_UFFD_PROTECT);
	/* holes only of a walk that covered the whole part, the gaps of its regions */
	for (size_t i = 0; !err && i < holes.n; i++)
		err = pt__hole_add(tr, holes.d[i].start, holes.d[i].end);
	pt__dirty_free(&holes);
	/* -ENOENT: the walk met an area that is not registered and stopped part-way */
	return err == -ENOENT ? pop_unknown(tr, start, end) : err;
}

/*
 * Arm every new part of a round: one freeze and one read of the layout
 * for all of them (each registration used to freeze the target and
 * re-read all of /proc/PID/maps: quadratic in the number of areas), the
 * registrations under it, the protect passes after the thaw.  Parts of
 * one VMA are registered in address order: the first finds the VMA as
 * it was and reports and protects all of it when it was not registered.
 */
static int uffd_arm_batch(struct pt_tracker *tr, struct pt_parts *parts, struct pt_dirtylist *out)
{
	struct pt_freeze fz;
	struct pt_vma *vmas;
	bool frozen;
	int n, err = 0;

	if (!parts->n)
		return 0;
	err = begin_frozen(tr, &fz, &frozen, &vmas, &n);
	if (err)
		return err;	/* could not freeze: nothing was registered */
	for (size_t i = 0; i < parts->n; i++) {
		struct pt_part *p = &parts->p[i];

		p->err = register_at(tr, vmas, n, p->start, &p->rs, &p->re, &p->zero_fill);
	}
	end_frozen(tr, &fz, frozen, vmas);
	for (size_t i = 0; i < parts->n && !err; i++) {
		struct pt_part *p = &parts->p[i];

		p->err = arm_registered(tr, p->start, p->end, p->err, p->rs, p->re,
					p->zero_fill && p->v && pt__area_zero_fill(p->v), out);
		/* -ENOENT and -EOPNOTSUPP are the caller's to handle, per part */
		if (p->err && p->err != -ENOENT && p->err != -EOPNOTSUPP)
			err = p->err;
	}
	return err;
}

static int uffd_arm(struct pt_tracker *tr, const struct pt_vma *v, uint64_t start, uint64_t end,
		    struct pt_dirtylist *out)
{
	struct pt_parts one = { .p = &(struct pt_part){ .v = v, .start = start, .end = end },
				.n = 1 };
	int err;

	err = uffd_arm_batch(tr, &one, out);
	return err ? err : one.p[0].err;
}

static int uffd_harvest(struct pt_tracker *tr, const struct pt_vma *v, uint64_t start,
			uint64_t end, struct pt_dirtylist *out)
{
	struct harvest_ctx c = { .tr = tr, .out = out, .cur = start };
	int err;

	(void)v;
	/*
	 * One walk: every region holding data is listed, and those written
	 * are re-protected in the same step (PM_SCAN_WP_MATCHING protects
	 * only the matching pages that are written).  What holds data is the
	 * populated set; the gaps are holes, and pages that held data at the
	 * last round and are in a gap were dropped.  One walk also sees each
	 * page once: with a separate hole pass, a page dropped before the
	 * round and filled between the passes could be missed by both.
	 * Holes are not matched, so no PTE marker is installed in them.
	 * With PT_TRACK_HOT the walk is cut at the hot runs, which are
	 * walked without re-protection (lib/track/hot.c); still each page
	 * is seen once, by one walk.
	 */
	err = pt__hot_segments(tr->hot, start, end, harvest_segment, &c);
	if (!err && c.cur < end)
		err = pt__dirty_add(&c.none, c.cur, end, 0);
	if (!err)
		err = pt__pop_from_holes(tr, start, end, &c.none, out);
	if (!err)
		err = pt__fault(PT_FAULT_UFFD_HARVEST);
	pt__dirty_free(&c.none);
	return err;
}

static int uffd_round_begin(struct pt_tracker *tr)
{
	struct uffd_priv *u = tr->priv;

	u->protected = false;
	/* a round was saved since: its areas cover what was registered */
	if (u->reg_saves != tr->saves) {
		u->reg.n = 0;
		u->reg_saves = tr->saves;
	}
	return 0;
}

/*
 * A page that a system call had pinned for DMA before this round
 * re-protected it (the pinning write fault made it written, so it was
 * reported) takes the DMA's bytes without a fault.  If the caller copied
 * it before they landed, the copy would keep the old bytes and no later
 * round would say so.  So before the round is handed out every thread of
 * the target that is running or in disk sleep passes a ptrace stop (all
 * interrupted at once, each resumed as soon as it stopped): a
 * thread stops only outside system calls, so every synchronous O_DIRECT
 * read in flight has landed.  Asynchronous I/O (io_uring, AIO) cannot be
 * waited for this way (doc/tracking.md).
 */
static void uffd_round_end(struct pt_tracker *tr)
{
	struct uffd_priv *u = tr->priv;
	uint64_t pause = 0, total = 0;
	int err;

	if (tr->self || !u->protected || (tr->flags & PT_TRACK_NO_BARRIER))
		return;
	err = pt__barrier(tr->pid, &pause, &total);
	note_pause(tr, pause, total);
	if (err && err != -ESRCH && !u->no_barrier) {
		u->no_barrier = true;
		pt__log(PT_LOG_INFO, "pid %d: cannot wait for its system calls after a harvest (%s): "
			"a synchronous O_DIRECT read in flight may land after its page is copied",
			(int)tr->pid, strerror(-err));
	}
}

/*
 * In chunks: each UFFDIO_UNREGISTER unprotects its pages with the mmap
 * lock held for writing (~100 ns a page) and a faulting target waits for
 * all of it.  Each unregistered chunk merges with the previous.  Errors
 * are ignored: a range that is no longer mapped, or no longer ours.
 */
static void unregister_range(struct uffd_priv *u, uint64_t start, uint64_t end)
{
	for (uint64_t s = start; s < end; s += UNREG_CHUNK) {
		struct uffdio_range r = { s, end - s < UNREG_CHUNK ? end - s : UNREG_CHUNK };

		ioctl(u->uffd, UFFDIO_UNREGISTER, &r);
	}
}

/*
 * Undo everything: also called on a half-built tracker (uffd_init or the
 * first round failed at any step), so every field may still be unset.
 */
static int uffd_fini(struct pt_tracker *tr)
{
	struct uffd_priv *u = tr->priv;
	int err;

	if (!u)
		return 0;
	if (u->uffd >= 0) {
		/*
		 * Unregistering removes the write protection of every page,
		 * so nothing of ours can stall or mark the target later, even
		 * if the userfaultfd cannot be closed inside it (or a child
		 * it forked meanwhile keeps a copy).
		 */
		for (size_t i = 0; i < tr->nareas; i++)
			if (tr->areas[i].method == PT_METHOD_BACKEND)
				unregister_range(u, tr->areas[i].start, tr->areas[i].end);
		for (size_t i = 0; i < u->reg.n; i++)
			unregister_range(u, u->reg.d[i].start, u->reg.d[i].end);
	}
	err = close_remote(tr, u);	/* checks the fd against ours: before closing ours */
	/* a userfaultfd left in the target stays on record for the next tracker */
	pt__owner_release(&u->owner, err != 0);
	if (u->uffd >= 0)
		close(u->uffd);
	if (u->pidfd >= 0)
		close(u->pidfd);
	pt__dirty_free(&u->reg);
	free(u->vec);
	free(u);
	tr->priv = NULL;
	return err ? -EBUSY : 0;
}

const struct pt_track_ops pt__track_uffd_ops = {
	.name = "uffd",
	.init = uffd_init,
	.can_track = uffd_can_track,
	.arm = uffd_arm,
	.arm_batch = uffd_arm_batch,
	.harvest = uffd_harvest,
	.round_begin = uffd_round_begin,
	.round_end = uffd_round_end,
	.fini = uffd_fini,
};
