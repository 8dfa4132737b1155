/* SPDX-License-Identifier: MIT */
/* One uffd tracker per process; what a killed one left (lib/track/owner.c). */
#ifndef PT_OWNER_H
#define PT_OWNER_H

#include <sys/types.h>

#include "pt_internal.h"

struct pt_owner {
	int fd;			/* the locked file, -1 when not held */
	char path[128];
};

/*
 * Claim @pid for this process's uffd tracker.  0 on success; -EBUSY when
 * another live pagetrack holds it (*@holder: its pid, 0 if not known
 * yet); -ESRCH; -errno.  On success, *@leftover_fd >= 0 is the number of
 * a userfaultfd that a tracker which died holding the claim (*@holder,
 * no longer running) left open inside @pid, to be closed there; else -1.
 */
PT_HIDDEN int pt__owner_claim(pid_t pid, struct pt_owner *o, pid_t *holder, int *leftover_fd);
/* Record the fd number our userfaultfd has inside the target (-1: none). */
PT_HIDDEN int pt__owner_record(struct pt_owner *o, int remote_fd);
/*
 * Give the claim up.  @keep_record: our userfaultfd could not be closed
 * inside the target, so the file stays (unlocked), naming it for the
 * next tracker to close; else the file is removed.  Accepts a released
 * claim.
 */
PT_HIDDEN void pt__owner_release(struct pt_owner *o, bool keep_record);

#endif
