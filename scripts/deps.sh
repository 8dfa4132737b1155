#!/bin/sh
# Install what pagetrack needs to build and test, with apt, when missing.
# Safe to run repeatedly: does nothing when everything is present.
set -e
PKGS="gcc make meson ninja-build pkg-config libxxhash-dev
python3 python3-jsonschema util-linux kmod procps busybox-static qemu-system-x86
gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
missing=""
for p in $PKGS; do
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
