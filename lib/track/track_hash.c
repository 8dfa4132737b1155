/* SPDX-License-Identifier: MIT */
/*
 * The hash backend: every area is tracked by content hash (the store and
 * the reading are lib/track/hashstore.c; tracker.c calls them for every
 * area whose method is PT_METHOD_HASH).  Nothing is done to the target.
 */
#include "tracker.h"

static int hash_init(struct pt_tracker *tr)
{
	(void)tr;
	return 0;
}

static bool hash_can_track(struct pt_tracker *tr, const struct pt_vma *v)
{
	(void)tr;
	(void)v;
	return true;
}

const struct pt_track_ops pt__track_hash_ops = {
	.name = "hash",
	.init = hash_init,
	.can_track = hash_can_track,
};
