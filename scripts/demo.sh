#!/bin/sh
# `make demo`: start the bundled workload, run `pagetrack map` on it, stop it.
# Usage: scripts/demo.sh BUILD_DIR.  Exits with map's exit code (1 if the
# workload never got ready).  See doc/demo.md for what each region shows.
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
exit $rc
