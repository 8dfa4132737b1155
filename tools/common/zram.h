/* SPDX-License-Identifier: MIT */
/* zram swap set-up shared by the demo workload, tests and benches. */
#ifndef PT_COMMON_ZRAM_H
#define PT_COMMON_ZRAM_H

#include <stddef.h>

/*
 * Make sure some swap is active.  If none is and we are root, create a
 * zram swap device of @disksize_mb and activate it.
 * Returns 1 if this call created swap (undo with pt_zram_swap_off()),
 * 0 if swap was already active, or -errno; *why (if not NULL) gets a
 * static one-line reason on failure.
 */
int pt_zram_swap_on(size_t disksize_mb, const char **why);
/*
 * Stop using the swap: deactivate and reset the zram device(s) made by
 * pt_zram_swap_on() only when no other program still uses them (a shared
 * flock on /run/pagetrack-zram.use, held from pt_zram_swap_on()); call
 * it whenever pt_zram_swap_on() returned >= 0.
 */
void pt_zram_swap_off(void);
/* 1 if any swap device is active. */
int pt_swap_active(void);

#endif
