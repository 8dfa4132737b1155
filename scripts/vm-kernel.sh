#!/bin/sh
# The Debian 12 6.1 cloud kernel of the VM lane (doc/vm-lane.md), fetched
# once with apt into CACHE_DIR (SRC_DIR/.cache/vm: git ignores .cache/) and
# unpacked there with dpkg -x.  Shared by scripts/vm-lane.sh and
# tests/test_vm_migrate.py.
#
# Usage: scripts/vm-kernel.sh CACHE_DIR [LOG]
# Prints one line on stdout: "KVER KROOT" (KROOT/boot/vmlinuz-KVER,
# KROOT/boot/config-KVER, KROOT/lib/modules/KVER).  apt's output goes to LOG
# (default /dev/null).
# Exit: 0 found, 77 not available here (the reason, one line, on stderr).
# Env: PT_VM_PKG (kernel package name, instead of asking apt-cache).
set -u
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 CACHE_DIR [LOG]" >&2; exit 2; }
cache=$1
log=${2:-/dev/null}
mkdir -p "$cache" || { echo "cannot create $cache" >&2; exit 77; }
skip() { echo "$*" >&2; exit 77; }
see="see $log"
[ "$log" = /dev/null ] && see="apt-get download failed"

pkg=${PT_VM_PKG:-$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
	sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -1)}
if [ -z "$pkg" ]; then
	# apt does not know the meta package (no lists?): use what is cached
	pkg=$(ls -d "$cache"/linux-image-*-cloud-amd64 2>/dev/null | sort -V | tail -1)
	pkg=${pkg##*/}
	[ -n "$pkg" ] || skip "apt-cache does not know linux-image-cloud-amd64 and nothing is cached"
fi
kver=${pkg#linux-image-}
kroot="$cache/$pkg"
if [ ! -e "$kroot/.extracted" ]; then
	deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | tail -1)
	if [ -z "$deb" ]; then
		echo "vm-lane: downloading $pkg" >&2
		(cd "$cache" && apt-get download -q "$pkg") >"$log" 2>&1 ||
			{ [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 &&
				(cd "$cache" && apt-get download -q "$pkg") >>"$log" 2>&1; } ||
			skip "cannot download $pkg ($see)"
		deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | tail -1)
		[ -n "$deb" ] || skip "apt-get download left no $pkg .deb in $cache"
	fi
	# a unique temp dir: two users of the cache may unpack at the same time
	tmp="$kroot.tmp.$$"
	rm -rf "$tmp"
	dpkg -x "$deb" "$tmp" || { rm -rf "$tmp"; skip "dpkg -x $deb failed"; }
	if [ ! -e "$kroot/.extracted" ]; then
		rm -rf "$kroot" && mv "$tmp" "$kroot" && touch "$kroot/.extracted"
	fi
	rm -rf "$tmp"
fi
[ -r "$kroot/boot/vmlinuz-$kver" ] && [ -r "$kroot/boot/config-$kver" ] &&
	[ -d "$kroot/lib/modules/$kver" ] ||
	skip "$pkg in $kroot lacks vmlinuz, config or modules"
echo "$kver $kroot"
