#!/bin/sh
# /init of the VM lane's initramfs (scripts/vm-lane.sh copies this file into
# it; see doc/vm-lane.md).  Runs under busybox sh as PID 1 in Debian's 6.1
# kernel booted by QEMU.  Everything it has to say goes to the serial
# console, which the host parses.  Its protocol, one marker per line:
#   === VM <text>               informational (kernel, swap, module load)
#   === BEGIN <test>            then the test's TAP output (stdout+stderr)
#   === END <test> rc=<N>       exit status (77 = skipped as a whole)
#   === DMESG <test> ... === DMESG-END <test>   kernel log of that test
#   === ALL DONE                every test ran; missing = the lane broke
#   === TIME <test> <N> s ...   its wall time (after END)
#   === CUT <test> <reason>     stopped at the lane's budget (after END)
# /etc/pt-modules lists the modules to insmod, dependencies first;
# /etc/pt-tests the programs in /tests, one a line, each followed by its
# arguments if it has any; /etc/pt-timeout seconds each;
# /etc/pt-budget the whole lane's seconds of uptime (0: no bound).
export PATH=/bin HOME=/root
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/shm /dev/pts
for d in /tmp /var/tmp /dev/shm; do
	mount -t tmpfs -o mode=1777 tmpfs "$d"
done
# Only emergencies on the console, so kernel lines cannot cut into TAP
# output; the full kernel log is dumped after each test instead.
echo 1 >/proc/sys/kernel/printk

echo	# the firmware leaves escape codes on the last console line
echo "=== VM kernel $(uname -r)"
while read -r m; do
	[ -n "$m" ] || continue
	insmod "$m" || echo "=== VM insmod $m failed"
done </etc/pt-modules
# The VM has no disk; some tests want a file on a disk file system (page
# cache that is not shmem).  Give /var/tmp one: ext2 (driven by ext4) on a
# loop device over a sparse file in the initramfs' own tmpfs.  When that
# fails /var/tmp stays tmpfs and those subtests skip.
if [ -e /dev/loop0 ] && dd if=/dev/zero of=/run/disk.img bs=1M count=0 seek=256 2>/dev/null &&
	losetup /dev/loop0 /run/disk.img && mke2fs -F -m 0 /dev/loop0 >/dev/null 2>&1 &&
	umount /var/tmp && mount -t ext2 /dev/loop0 /var/tmp; then
	chmod 1777 /var/tmp
	echo "=== VM /var/tmp is ext2 on /dev/loop0 (256M)"
else
	grep -q ' /var/tmp ' /proc/mounts || mount -t tmpfs -o mode=1777 tmpfs /var/tmp
	echo "=== VM no disk file system: /var/tmp is tmpfs"
fi
if echo 256M >/sys/block/zram0/disksize &&
	mkswap /dev/zram0 >/dev/null && swapon /dev/zram0; then
	echo "=== VM swap on /dev/zram0 (256M)"
else
	echo "=== VM no zram swap: swap tests will skip"
fi
echo "=== DMESG boot"
dmesg -c
echo "=== DMESG-END boot"

tmo=$(cat /etc/pt-timeout 2>/dev/null || echo 300)
# The lane's own budget, in seconds of uptime (the host's QEMU timeout less
# a margin; 0: none).  What is left of it bounds each test's limit, so the
# lane ends by itself before QEMU is killed: a test that would start with
# less than 10 s left is skipped (rc 77, with the reason), and one stopped
# at that bound rather than at its own limit is marked "=== CUT": the host
# counts it as not run, unless it had already failed a check.
budget=$(cat /etc/pt-budget 2>/dev/null || echo 0)
grace=15	# from SIGTERM to SIGKILL, for a test that does not end on TERM
uptime_s() {
	read -r up _ </proc/uptime
	echo "${up%%.*}"
}
# the list on fd 3: the programs keep the console as their stdin
while read -r t args <&3; do
	[ -n "$t" ] || continue
	echo "=== BEGIN $t"
	t0=$(uptime_s)
	lim=$tmo cut=""
	if [ "$budget" -gt 0 ]; then
		left=$((budget - t0 - grace))
		if [ "$left" -lt 10 ]; then
			echo "1..0 # SKIP not started: the VM lane's time budget is spent (${t0} s of ${budget} s)"
			echo "=== END $t rc=77"
			continue
		fi
		[ "$left" -lt "$lim" ] && lim=$left cut=1
	fi
	# the tests' time caps are shares of this (tests/fixture.h)
	export PT_TEST_TIMEOUT="$lim"
	# shellcheck disable=SC2086 # the arguments are words
	(cd /tmp && timeout -k "$grace" "$lim" "/tests/$t" $args 2>&1)
	rc=$?
	t1=$(uptime_s)
	echo "=== END $t rc=$rc"
	echo "=== TIME $t $((t1 - t0)) s (limit $lim s)"
	# busybox timeout: the test dies of the signal (143, 137), no 124
	if [ -n "$cut" ] && [ $((t1 - t0)) -ge "$lim" ] && { [ "$rc" = 143 ] || [ "$rc" = 137 ]; }; then
		echo "=== CUT $t at the VM lane's time budget, after $lim s (${t1} s of ${budget} s)"
	fi
	echo "=== DMESG $t"
	dmesg -c
	echo "=== DMESG-END $t"
done 3</etc/pt-tests
echo "=== ALL DONE"
swapoff -a 2>/dev/null
poweroff -f
