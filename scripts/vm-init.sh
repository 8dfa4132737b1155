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
# /etc/pt-modules lists the modules to insmod, dependencies first;
# /etc/pt-tests the programs in /tests, one a line, each followed by its
# arguments if it has any; /etc/pt-timeout seconds each.
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
# the tests' time caps are shares of this budget (tests/fixture.h)
export PT_TEST_TIMEOUT="$tmo"
# the list on fd 3: the programs keep the console as their stdin
while read -r t args <&3; do
	[ -n "$t" ] || continue
	echo "=== BEGIN $t"
	# shellcheck disable=SC2086 # the arguments are words
	(cd /tmp && timeout "$tmo" "/tests/$t" $args 2>&1)
	rc=$?
	echo "=== END $t rc=$rc"
	echo "=== DMESG $t"
	dmesg -c
	echo "=== DMESG-END $t"
done 3</etc/pt-tests
echo "=== ALL DONE"
swapoff -a 2>/dev/null
poweroff -f
