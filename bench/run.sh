#!/bin/sh
# `make bench`: run the scan benchmark built in BUILD_DIR and print its
# table (see doc/bench.md).  Results are ratios against raw kernel rates
# measured in the same run; the exit code is bench_scan's (0 unless a
# measurement failed), never a judgement on speed.
# Usage: bench/run.sh BUILD_DIR [bench_scan options: -n REPS -s SIZE_MiB -x scan|shared]
set -u
build=${1:?usage: run.sh BUILD_DIR [bench_scan options]}
shift
bin=$build/bench/bench_scan
if [ ! -x "$bin" ]; then
	echo "bench: $bin not built (run: ninja -C $build bench/bench_scan)" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "bench: not root: the shared-memory part is skipped (it opens the object via"
	echo "       /proc/PID/map_files and may need to create zram swap); PFNs are hidden"
fi
exec "$bin" "$@"
