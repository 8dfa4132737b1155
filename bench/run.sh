#!/bin/sh
# `make bench`: run the scan benchmark, then the tracking benchmark, built
# in BUILD_DIR, and print their tables (see doc/bench.md).  Results are
# ratios against raw kernel rates measured in the same run; the exit code
# is non-zero only if a measurement failed, never a judgement on speed.
# Usage: bench/run.sh BUILD_DIR [bench_scan options: -n REPS -s SIZE_MiB -x scan|shared]
# bench_track options go in PT_BENCH_TRACK_ARGS (-n REPS -s SIZE_MiB -w WRITER_MiB
# -p CREATES -x fault|pause|collect|hash), bench_scale's in PT_BENCH_SCALE_ARGS
# (-c CAP_S -x areas|threads), bench_copy's in PT_BENCH_COPY_ARGS (-n REPS -s SIZE_MiB).
# bench_snapshot's in PT_BENCH_SNAPSHOT_ARGS (-s SIZE_MiB -w WORKSET_MiB -r MB/s -d DIR
# -x raw|frozen|chain|live|gcore -m pattern|mixed; it runs a second time on a mixed
# target, frozen part only), bench_modes' in PT_BENCH_MODES_ARGS (-s SIZE_MiB
# -i INTERVAL_ms -t SECONDS -r ROUNDS -x throughput|estimate), bench_migrate's in
# PT_BENCH_MIGRATE_ARGS (-n REPS -s SIZE_MiB -d DIR), bench_migrate_net.sh's in
# PT_BENCH_MIB (the target's live region, MiB), bench_vm.sh's (bench_modes in a
# guest) in PT_BENCH_VM_ARGS and PT_BENCH_VM_QEMU.
set -u
build=${1:?usage: run.sh BUILD_DIR [bench_scan options]}
shift
for b in bench_scan bench_track bench_scale bench_copy bench_snapshot bench_modes bench_migrate; do
	if [ ! -x "$build/bench/$b" ]; then
		echo "bench: $build/bench/$b not built (run: ninja -C $build bench/$b)" >&2
		exit 1
	fi
done
if [ "$(id -u)" -ne 0 ]; then
	echo "bench: not root: the shared-memory part is skipped (it opens the object via"
	echo "       /proc/PID/map_files and may need to create zram swap); PFNs are hidden"
fi
rc=0
"$build/bench/bench_scan" "$@" || rc=$?
# shellcheck disable=SC2086 # word splitting of the options is wanted
"$build/bench/bench_track" ${PT_BENCH_TRACK_ARGS:-} || rc=$?
# shellcheck disable=SC2086
"$build/bench/bench_scale" ${PT_BENCH_SCALE_ARGS:-} || rc=$?
# shellcheck disable=SC2086
"$build/bench/bench_copy" ${PT_BENCH_COPY_ARGS:-} || rc=$?
# shellcheck disable=SC2086
"$build/bench/bench_snapshot" ${PT_BENCH_SNAPSHOT_ARGS:-} || rc=$?
# shellcheck disable=SC2086
"$build/bench/bench_snapshot" ${PT_BENCH_SNAPSHOT_ARGS:-} -m mixed -x frozen || rc=$?
# shellcheck disable=SC2086
"$build/bench/bench_modes" ${PT_BENCH_MODES_ARGS:-} || rc=$?
# shellcheck disable=SC2086
"$build/bench/bench_migrate" ${PT_BENCH_MIGRATE_ARGS:-} || rc=$?
# migration over a shaped link between two network namespaces (~40 s; says
# "skipped" and counts as success without pagetrack send/receive or root)
sh "$(dirname "$0")/bench_migrate_net.sh" "$build" || rc=$?
# bench_modes again in a QEMU/TCG guest on Debian's 6.1 kernel, where a fault
# costs far more (a few minutes; one "skipped" line, counted as success,
# without QEMU, busybox-static or the kernel package; PT_SKIP_VM=1 skips it)
sh "$(dirname "$0")/bench_vm.sh" "$build" || rc=$?
exit $rc
