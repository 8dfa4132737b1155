#!/bin/sh
# make install honours DESTDIR: library (shared + static), header, pkg-config
# file, CLI, demo and man page land there, and a program builds against the
# installed copy with pkg-config and runs.
build=${1:?usage: test_install.sh BUILD_DIR}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
plan=10	# the t calls below (TAP plan first; checked at the end)
echo "1..$plan"
n=0 fails=0
t() {	# t DESCRIPTION COMMAND...
	n=$((n + 1)); d=$1; shift
	if "$@" >/dev/null 2>&1; then echo "ok $n - $d"; else echo "not ok $n - $d"; fails=$((fails + 1)); fi
}
t "meson install into DESTDIR" meson install -C "$build" --no-rebuild --destdir "$dest" --quiet
prefix=$(meson introspect "$build" --buildoptions 2>/dev/null |
	/usr/bin/python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
libdir=$(find "$dest$prefix" -name pagetrack.pc -printf '%h\n' | head -1)
t "pkg-config file installed" test -n "$libdir"
for f in include/pagetrack/pagetrack.h bin/pagetrack bin/pagetrack-demo share/man/man1/pagetrack.1; do
	t "installed $f" test -e "$dest$prefix/$f"
done
t "shared library installed" sh -c "ls '$libdir'/../libpagetrack.so.0* >/dev/null"
t "static library installed" test -e "$libdir/../libpagetrack.a"
flags=$(PKG_CONFIG_SYSROOT_DIR="$dest" PKG_CONFIG_PATH="$libdir" pkg-config --cflags --libs pagetrack)
top=$(cd "$(dirname "$0")/.." && pwd)
t "example builds against the installed library via pkg-config" \
	sh -c "cc -o '$dest/scan_self' '$top/examples/scan_self.c' $flags -Wl,-rpath,'$libdir/..'"
t "example runs against the installed library" "$dest/scan_self"
if [ "$n" != "$plan" ]; then
	echo "Bail out! planned $plan subtests, printed $n"
	exit 1
fi
[ "$fails" = 0 ]
