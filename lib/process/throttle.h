/* SPDX-License-Identifier: MIT */
/*
 * Taking CPU away from a target process (live migration, issue 12):
 * a cgroup CPU quota, or a SIGSTOP/SIGCONT duty cycle.  Internal; see
 * doc/api.md "Throttling (internal)".
 */
#ifndef PT_THROTTLE_H
#define PT_THROTTLE_H

#include <sys/types.h>

enum pt__throttle_mode { PT_THROTTLE_AUTO = 0, PT_THROTTLE_CGROUP, PT_THROTTLE_SIGNAL };
struct pt__throttle;

/*
 * Prepare to throttle @pid: cgroup (a cgroup pagetrack-OWNER-RAND created
 * at the root of the cgroup v2 hierarchy when its cpu controller can be
 * enabled there, else of a cgroup v1 "cpu" hierarchy; the target's
 * processes moved into it, the original cgroup remembered) or a
 * SIGSTOP/SIGCONT duty cycle (a thread of the caller, 100 ms periods);
 * AUTO picks cgroup when usable, else signal (pt__throttle_why() says
 * why).  A guardian (forked child with PR_SET_PDEATHSIG) restores
 * everything if the caller dies.  Leftover cgroups of dead owners are
 * cleaned first.  0 or -errno (-EOPNOTSUPP: CGROUP asked, not usable;
 * -EINVAL: @pid is the caller).
 */
int pt__throttle_start(pid_t pid, enum pt__throttle_mode mode, struct pt__throttle **out);
/* Take @percent (0..99) of the target's CPU away: 0 = unthrottled. */
int pt__throttle_set(struct pt__throttle *t, unsigned percent);
unsigned pt__throttle_get(const struct pt__throttle *t);
enum pt__throttle_mode pt__throttle_mode(const struct pt__throttle *t);
/* Why the mode is what it is ("cgroup v2", "cgroup v1 cpu", or why not cgroup). */
const char *pt__throttle_why(const struct pt__throttle *t);
/* The guardian's pid (tests). */
pid_t pt__throttle_guardian(const struct pt__throttle *t);
/* The directory of the cgroup created, or NULL in signal mode (tests). */
const char *pt__throttle_cgroup(const struct pt__throttle *t);
/* Restore: target back in its cgroup, created cgroup removed, SIGCONT; frees @t (accepts NULL). */
int pt__throttle_stop(struct pt__throttle *t);
/*
 * Remove the pagetrack-* cgroups whose owner process is gone (a pagetrack
 * and its guardian both killed): their processes go back to the cgroup
 * recorded when they were moved (or the root).  Returns how many were
 * removed.  Called by pt__throttle_start().
 */
int pt__throttle_cleanup(void);

#endif
