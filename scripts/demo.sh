#!/bin/sh
# `make demo`: start the bundled workload, run `pagetrack map` on it, snapshot it
# live and verify the image against it, stop it.
# Usage: scripts/demo.sh BUILD_DIR.  Exits with the first failing command's
# exit code (1 if the workload never got ready).  See doc/demo.md for what each region shows.
set -u
build=${1:?usage: demo.sh BUILD_DIR}
demo=$build/tools/pagetrack-demo
map=$build/tools/pagetrack
for f in "$demo" "$map"; do
	[ -x "$f" ] || { echo "demo: $f not built" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pagetrack-demo.XXXXXX") || exit 1
pid=
stop() {
	if [ -n "$pid" ]; then
		# SIGTERM lets the workload unmap its regions and remove its zram swap.
		kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		pid=
	fi
	rm -rf "$tmp"
}
trap 'stop' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --foreground: $! is the workload itself, so we can wait for it.
"$demo" --foreground --pidfile "$tmp/pid" >"$tmp/layout" 2>"$tmp/err" &
pid=$!
i=0
while [ ! -s "$tmp/pid" ]; do
	if ! kill -0 "$pid" 2>/dev/null || [ $i -ge 600 ]; then
		echo "demo: pagetrack-demo did not get ready" >&2
		cat "$tmp/err" >&2
		exit 1
	fi
	i=$((i + 1))
	sleep 0.1
done

echo "== pagetrack-demo (pid $pid) built this layout; each part says what pagetrack should report:"
cat "$tmp/layout"
cat "$tmp/err" >&2
echo
echo "== pagetrack map $pid: every memory area of the workload, with its pages counted by state"
rc=0
"$map" map "$pid" || rc=$?
[ $rc -eq 0 ] || exit $rc

# The copy half: a live snapshot (pre-copy rounds while it runs, a short
# freeze for the rest), the image chain it made, and a check of the image
# against the workload page by page (frozen for that moment).
echo
echo "== pagetrack snapshot --live $pid: copy its memory while it runs; swapped pages stay swapped"
"$map" snapshot --live "$pid" -o "$tmp/demo.img" || exit $?
echo
echo "== pagetrack image show: the layers, and the pages stored by kind"
"$map" image show "$tmp/demo.img" | sed -n '1,4p'
echo
echo "== pagetrack image verify FILE $pid: the chain's checksums, then the image against the workload"
"$map" image verify "$tmp/demo.img" "$pid" || exit $?
