#!/bin/sh
# Install what pagetrack needs, with apt, when missing.
# Usage: scripts/deps.sh build|test|demo...
#   build  what `make` and `make install` need: compiler, meson, ninja,
#          pkg-config, libxxhash, libzstd, libsodium (never QEMU or cross compilers)
#   test   what `make check` adds: Python + jsonschema, util-linux, kmod,
#          procps, and for the VM lane and the aarch64 build test QEMU,
#          busybox-static and the aarch64 cross compiler
#   demo   what `make demo` adds: util-linux and kmod (zram swap), procps
# Safe to run repeatedly: does nothing when everything is present.  As a
# user other than root it only lists what is missing (exit 1).
set -e
pkgs=""
for set in "$@"; do
	case $set in
	build) pkgs="$pkgs gcc make meson ninja-build pkg-config libxxhash-dev libzstd-dev libsodium-dev" ;;
	test) pkgs="$pkgs python3 python3-jsonschema util-linux kmod procps busybox-static gdb iproute2
		qemu-system-x86 gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;;
	demo) pkgs="$pkgs util-linux kmod procps" ;;
	*) echo "deps: unknown set '$set' (build, test, demo)" >&2; exit 2 ;;
	esac
done
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
