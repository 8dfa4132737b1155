/* SPDX-License-Identifier: MIT */
/* Live migration internals shared by lib/migrate/send.c and recv.c. */
#ifndef PT_MIGRATE_H
#define PT_MIGRATE_H

#include "wire.h"

/* HELLO params frame (the second HELLO, sender -> receiver) */
#define PT_MIG_MODE_PROCESS	1u	/* areas and stored objects */
#define PT_MIG_MODE_OBJECTS	2u	/* --object: objects only */
#define PT_MIG_PARAMS_LEN	32u	/* u32 page_size, i32 pid, u32 mode, u32 0, comm[16] */

/* ACK payload: u32 what, u32 round, u64 pages */
#define PT_MIG_ACK_HELLO	1u
#define PT_MIG_ACK_ROUND	2u
#define PT_MIG_ACK_COMMIT	3u
#define PT_MIG_ACK_LEN		16u

/* ROUND_BEGIN / ROUND_END: u32 round, u32 final (BEGIN) or flags (END), u64 pages (END) */
#define PT_MIG_ROUND_LEN	16u
/* ROUND_END flags: the round was cut at the sender's --timeout (not
   complete; the final round that follows continues its delta) */
#define PT_MIG_ROUND_CUT	1u
/* PAGES head: u8 owner_type, u8 kind, u8 flags, u8 detail, u32 owner, u64 offset,
   u32 npages, u32 0; then npages pages for DATA */
#define PT_MIG_PAGES_HEAD	24u
/* COMMIT_PROGRESS (version 2): u32 phase, u32 count, u64 bytes written, u64 ms */
#define PT_MIG_PROGRESS_LEN	24u
#define PT_MIG_PROGRESS_FINAL	1u	/* receiving the final round */
#define PT_MIG_PROGRESS_COMMIT	2u	/* making the result durable */
/* COMMIT: u32 rounds, u32 0, u64 frames before it, u64 pages sent, u64 bytes_read */
#define PT_MIG_COMMIT_LEN	32u

/* Throttling goes through this table (lib/process/throttle.h when it is
   built in: lib/migrate/throttle_ops.c).  NULL: not available. */
struct pt__throttle;
struct pt__mig_throttle_ops {
	int (*start)(pid_t pid, struct pt__throttle **out);
	int (*set)(struct pt__throttle *t, unsigned percent);
	int (*stop)(struct pt__throttle *t);
};
PT_HIDDEN extern const struct pt__mig_throttle_ops *const pt__mig_throttle;

#endif
