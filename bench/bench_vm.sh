#!/bin/sh
# bench_modes where a write fault is expensive: in a QEMU/TCG guest on
# Debian 12's 6.1 cloud kernel (the VM lane's, scripts/vm-lane.sh --bench;
# doc/bench.md, "Modes in the VM").  That kernel has soft-dirty but no
# uffd WP_ASYNC, so the exact modes run on the softdirty backend.
# Usage: bench/bench_vm.sh BUILD_DIR
# Env: PT_BENCH_VM_ARGS (bench_modes' options in the guest; default
# "-n 1 -r 8 -b softdirty"), PT_BENCH_VM_QEMU (QEMU options; default
# "-icount shift=2,sleep=off": guest time counts instructions, so the
# ratios do not depend on how loaded the host is; "" for plain TCG),
# PT_SKIP_VM=1 (skip).  The lane's own: PT_VM_PKG, PT_VM_MEM.
# Exit: 0 measured or skipped (a line "bench_vm: skipped: REASON"), 1 the
# guest should have run the bench and did not.
set -u
build=${1:?usage: bench_vm.sh BUILD_DIR}
src=$(cd "$(dirname "$0")/.." && pwd) || exit 1
mkdir -p "$build" && build=$(cd "$build" && pwd) || exit 1
skip() { echo "bench_vm: skipped: $*"; exit 0; }

echo
echo "pagetrack modes bench in a QEMU/TCG guest (Debian 6.1 kernel: softdirty, faults far dearer)"
[ "${PT_SKIP_VM:-0}" = 1 ] && skip "PT_SKIP_VM=1"
# make bench installs nothing: the VM lane of make check does (deps.sh)
command -v qemu-system-x86_64 >/dev/null 2>&1 ||
	skip "no qemu-system-x86_64 (apt-get install qemu-system-x86 busybox-static)"
if [ ! -x /bin/busybox ] || ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null |
	grep -q "install ok installed"; then
	skip "no busybox-static (apt-get install busybox-static)"
fi

args=${PT_BENCH_VM_ARGS--n 1 -r 8 -b softdirty}
qemu=${PT_BENCH_VM_QEMU--icount shift=2,sleep=off}
echo "guest: QEMU ${qemu:-(plain TCG)}; bench_modes $args"
# about 1 min of guest time; under icount the host may need several times that
PT_VM_QEMU_ARGS=$qemu PT_VM_BENCH_ARGS=$args PT_VM_TIMEOUT=${PT_VM_TIMEOUT:-1800} \
	PT_VM_TEST_TIMEOUT=${PT_VM_TEST_TIMEOUT:-1700} \
	sh "$src/scripts/vm-lane.sh" --bench "$src" "$build" >"$build/bench_vm.out" 2>&1
rc=$?
logs="$build/vm-bench-logs"
reason=$(tail -1 "$logs/reason" 2>/dev/null || tail -1 "$build/bench_vm.out")
case $rc in
0) ;;
77) skip "${reason#vm-lane: }" ;;
*)
	echo "bench_vm: the guest did not run the bench: ${reason#vm-lane: } (see $build/bench_vm.out)"
	exit 1
	;;
esac
grep -v '^pagetrack: note: backend softdirty: uffd cannot track' "$logs/bench_modes.log"
brc=$(cat "$logs/bench_modes.rc" 2>/dev/null || echo 1)
echo "bench_vm: $(tail -1 "$build/bench_vm.out" | sed 's/^vm-lane: //'); bench_modes rc=$brc; logs in $logs"
[ "$brc" = 0 ]
