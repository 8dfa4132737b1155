#!/bin/sh
# The second real-kernel lane: run pagetrack's C test programs on Debian 12's
# 6.1 cloud kernel, booted by QEMU under TCG with an initramfs of statically
# linked tests.  See doc/vm-lane.md.
#
# Usage: scripts/vm-lane.sh [--bench] SRC_DIR OUT_DIR
# --bench: instead of the tests, run bench/bench_modes (with the pagetrack
# CLI it drives) in the VM, where a fault costs far more than on the host
# (doc/bench.md, "Modes in the VM"); its options in PT_VM_BENCH_ARGS; logs
# in OUT_DIR/vm-bench-logs (bench_modes.log, .rc, .dmesg, console.log).
# Results: OUT_DIR/vm-logs/<test>.log (TAP), <test>.rc (exit status),
# <test>.dmesg (kernel log during the test), times (seconds per test in the
# guest), console.log (raw console),
# tests.list (what was meant to run), kernel (its version) and reason (one
# line, when the lane did not run or broke).
# Exit: 0 the lane ran (whatever the tests said), 77 it cannot run here
# (no QEMU/busybox, no kernel package), 1 it should have run but did not
# (build or boot failure, VM did not finish).  The one-line reason is also
# printed last on stdout as "vm-lane: ...".
# Env: PT_VM_TIMEOUT (whole boot, s; default 900: the guest ends its lane
# 30 s before, skipping what no longer fits), PT_VM_TEST_TIMEOUT (per test
# in the VM, s; default 300), PT_VM_PKG (kernel package name, instead of
# asking apt-cache), PT_VM_MEM (guest RAM, MiB; default 1024),
# PT_VM_QEMU_ARGS (more QEMU options, e.g. -icount for --bench).
set -u
bench=""
[ "${1:-}" = --bench ] && { bench=1; shift; }
[ $# -eq 2 ] || { echo "usage: $0 [--bench] SRC_DIR OUT_DIR" >&2; exit 2; }
src=$(cd "$1" && pwd) || exit 2
mkdir -p "$2" && out=$(cd "$2" && pwd) || exit 2
cache="$src/.cache/vm"
# the bench has files of its own, so a bench run leaves the tests' logs be
sfx=${bench:+-bench}
logs="$out/vm$sfx-logs"
rm -rf "$logs"
mkdir -p "$logs" "$cache"
t0=$(date +%s)

say() { echo "vm-lane: $*"; }
finish() {	# finish RC REASON
	echo "$2" >"$logs/reason"
	say "$2"
	exit "$1"
}
skip() { finish 77 "$*"; }
fail() { finish 1 "$*"; }

# (a) tools ----------------------------------------------------------------
installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}
need=""
command -v qemu-system-x86_64 >/dev/null 2>&1 || need="$need qemu-system-x86"
installed busybox-static || need="$need busybox-static"
if [ -n "$need" ]; then
	[ "$(id -u)" = 0 ] || skip "missing$need and not root to install them"
	say "installing$need"
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		$need >"$logs/apt.log" 2>&1 ||
		skip "cannot install$need (see $logs/apt.log)"
fi
busybox=/bin/busybox
[ -x "$busybox" ] || skip "busybox-static installed but $busybox missing"
if command -v cpio >/dev/null 2>&1; then
	cpio_o() { cpio -o -H newc -R 0:0 --quiet; }
else
	cpio_o() { "$busybox" cpio -o -H newc -R 0:0 2>/dev/null; }
fi

# (b) the kernel, cached in SRC_DIR/.cache/vm (git ignores .cache/) ---------
kinfo=$(sh "$src/scripts/vm-kernel.sh" "$cache" "$logs/apt.log" 2>"$logs/kernel.err")
krc=$?
grep '^vm-lane: ' "$logs/kernel.err"
[ "$krc" = 0 ] && [ -n "$kinfo" ] ||
	skip "$(grep -v '^vm-lane: ' "$logs/kernel.err" | tail -1)"
rm -f "$logs/kernel.err"
kver=${kinfo%% *}
kroot=${kinfo#* }
vmlinuz="$kroot/boot/vmlinuz-$kver"
kconfig="$kroot/boot/config-$kver"
moddir="$kroot/lib/modules/$kver"
echo "$kver" >"$logs/kernel"

# (c) static test programs --------------------------------------------------
tests=""
if [ -n "$bench" ]; then
	tests="bench_modes"
else
	for t in "$src"/tests/test_*.c; do
		[ -e "$t" ] || continue
		t=$(basename "$t" .c)
		# PT_VM_TESTS="test_a test_b": run only those (debugging one test)
		case " ${PT_VM_TESTS:-$t} " in *" $t "*) tests="$tests $t" ;; esac
	done
fi
[ -n "$tests" ] || fail "no tests/test_*.c in $src"
echo "$tests" | tr ' ' '\n' | sed '/^$/d' >"$logs/tests.list"
sbuild="$out/build-static"
if [ ! -e "$sbuild/build.ninja" ]; then
	rm -rf "$sbuild"	# a setup that failed half-way
	meson setup "$sbuild" "$src" -Ddefault_library=static -Dprefer_static=true -Dc_link_args=-static \
		-Dbuildtype=debugoptimized >"$logs/build.log" 2>&1 ||
		fail "meson setup of $sbuild failed (see $logs/build.log)"
fi
# helper programs some tests run beside themselves (built without sanitizers)
helpers="snapchild coretarget"
tdir=tests
if [ -n "$bench" ]; then
	# bench_modes runs ../tools/pagetrack from its own directory
	helpers="" tdir=bench
	targets="bench/bench_modes tools/pagetrack"
else
	targets=$(for t in $tests $helpers; do printf 'tests/%s ' "$t"; done)
fi
# -k 0: one test that does not build must not keep the others from running;
# it gets a failing log of its own instead.
# shellcheck disable=SC2086
ninja -C "$sbuild" -j2 -k 0 $targets >>"$logs/build.log" 2>&1 || {
	built=""
	for t in $tests; do
		if ninja -C "$sbuild" -n "$tdir/$t" 2>/dev/null | grep -q 'no work to do'; then
			built="$built $t"
		else
			echo "Bail out! $t does not build statically (see $logs/build.log)" >"$logs/$t.log"
			echo 1 >"$logs/$t.rc"
		fi
	done
	tests=$built
	[ -n "$tests" ] || fail "static build of the tests failed (see $logs/build.log)"
}

# (d) initramfs ---------------------------------------------------------------
root="$out/vm$sfx-initramfs"
rm -rf "$root"
mkdir -p "$root/bin" "$root/tests" "$root/tools" "$root/etc" "$root/boot" "$root/proc" \
	"$root/sys" "$root/dev" "$root/tmp" "$root/var/tmp" "$root/root" "$root/run"
cp "$busybox" "$root/bin/busybox"
for a in $("$busybox" --list); do
	[ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
done
for t in $tests; do
	# strip only the copy: the build keeps its debug info for the host
	strip -o "$root/tests/$t" "$sbuild/$tdir/$t" 2>/dev/null ||
		cp "$sbuild/$tdir/$t" "$root/tests/$t"
done
if [ -n "$bench" ]; then
	strip -o "$root/tools/pagetrack" "$sbuild/tools/pagetrack" 2>/dev/null ||
		cp "$sbuild/tools/pagetrack" "$root/tools/pagetrack" ||
		fail "no static pagetrack CLI for the bench (see $logs/build.log)"
fi
for h in $helpers; do	# a helper that did not build: its tests say so
	[ -x "$sbuild/tests/$h" ] && cp "$sbuild/tests/$h" "$root/tests/$h"
done
# zram swap: zram and what it needs (modinfo), plus the lzo-rle compressor
# it defaults to.  Debian may ship modules compressed; busybox insmod wants
# them plain, so decompress while copying.
modpath() {	# modpath NAME -> path of NAME.ko* in the package
	find "$moddir/kernel" -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" \
		-o -name "$1.ko.gz" | head -1
}
mods=""
addmod() {	# addmod NAME: its dependencies first, each once
	case " $mods " in *" $1 "*) return 0 ;; esac
	p=$(modpath "$1")
	[ -n "$p" ] || { echo "missing module $1" >&2; return 1; }
	for d in $(modinfo -F depends "$p" 2>/dev/null | tr ',' ' '); do
		addmod "$d" || return 1
	done
	mods="$mods $1"
}
addmod lzo-rle && addmod zsmalloc && addmod zram ||
	fail "modules for zram swap not found in $moddir"
# loop: a disk file system for /var/tmp (optional: /init copes without)
addmod loop 2>/dev/null || say "no loop module: /var/tmp will be tmpfs in the VM"
mkdir -p "$root/lib/modules"
: >"$root/etc/pt-modules"
for m in $mods; do
	p=$(modpath "$m")
	dst="$root/lib/modules/$m.ko"
	case "$p" in
	*.xz) xz -dc "$p" >"$dst" ;;
	*.zst) zstd -qdc "$p" >"$dst" ;;
	*.gz) gzip -dc "$p" >"$dst" ;;
	*) cp "$p" "$dst" ;;
	esac || fail "cannot copy module $p"
	echo "/lib/modules/$m.ko" >>"$root/etc/pt-modules"
done
cp "$kconfig" "$root/boot/config-$kver"
# one program a line, then its arguments
if [ -n "$bench" ]; then
	echo "bench_modes ${PT_VM_BENCH_ARGS:-}" >"$root/etc/pt-tests"
else
	echo "$tests" | tr ' ' '\n' | sed '/^$/d' >"$root/etc/pt-tests"
fi
echo "${PT_VM_TEST_TIMEOUT:-300}" >"$root/etc/pt-timeout"
# The lane's budget in the guest (seconds of its uptime): QEMU's timeout
# less 30 s for what the guest's clock does not see or does after the last
# test (firmware, decompression, poweroff: 4 s at load 15).  /init bounds each test by what
# is left of it, so a slow machine ends the lane with tests skipped, not
# with QEMU killed mid-test.
tmo=${PT_VM_TIMEOUT:-900}
echo $((tmo > 60 ? tmo - 30 : tmo / 2)) >"$root/etc/pt-budget"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
	>"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
cp "$src/scripts/vm-init.sh" "$root/init"
chmod 0755 "$root/init"
chmod 1777 "$root/tmp" "$root/var/tmp"
initrd="$out/vm$sfx-initrd.gz"
(cd "$root" && find . | sort | cpio_o) | gzip -1 >"$initrd" ||
	fail "cannot build the initramfs"
t1=$(date +%s)

# (e) boot ------------------------------------------------------------------
console="$logs/console.log"
say "booting $kver under QEMU/TCG (timeout ${tmo}s; ${bench:+bench }tests:$tests)"
# no_timer_check: the kernel's IO-APIC timer check counts interrupts over a
# fixed delay loop, which a TCG vCPU on a loaded host can miss: it then
# panics at boot ("IO-APIC + timer doesn't work!", seen in test_vm_migrate)
# shellcheck disable=SC2086 # PT_VM_QEMU_ARGS: options, split into words
timeout "$tmo" qemu-system-x86_64 -accel tcg -cpu max -smp 1 -m "${PT_VM_MEM:-1024}" \
	${PT_VM_QEMU_ARGS:-} -nographic -no-reboot -kernel "$vmlinuz" -initrd "$initrd" \
	-append "console=ttyS0 quiet panic=-1 no_timer_check" </dev/null >"$console.raw" 2>&1
qrc=$?
tr -d '\r' <"$console.raw" >"$console" && rm -f "$console.raw"
t2=$(date +%s)

# (f) split the console into per-test files ---------------------------------
awk -v dir="$logs" '
/^=== BEGIN / { name = $3; out = dir "/" name ".log"; printf "" > out; next }
# a test that dies mid-line leaves the END marker after its last output
name != "" && /=== END [^ ]+ rc=[0-9]+$/ {
	i = index($0, "=== END ")
	if (i > 1)
		print substr($0, 1, i - 1) > out
	split(substr($0, i), f, " "); rc = f[4]; sub(/^rc=/, "", rc)
	close(out); print rc > (dir "/" name ".rc"); close(dir "/" name ".rc")
	name = ""; next
}
/^=== DMESG-END / { if (dout != "") close(dout); dout = ""; next }
/^=== DMESG / { dout = dir "/" $3 ".dmesg"; printf "" > dout; next }
dout != "" { print > dout; next }
name != "" { print > out }
' "$console"

# A test stopped at the lane's budget (=== CUT, see scripts/vm-init.sh)
# did not run to its end: skipped with the reason, its output kept in
# <test>.partial.log; unless it had already failed a check, which stands.
grep '^=== CUT ' "$console" | while read -r _ _ t why; do
	[ -e "$logs/$t.log" ] || continue
	grep -E '^not ok|^Bail out' "$logs/$t.log" | grep -qv '# TODO' && continue
	mv "$logs/$t.log" "$logs/$t.partial.log"
	echo "1..0 # SKIP cut $why; partial output in $t.partial.log" >"$logs/$t.log"
	echo 77 >"$logs/$t.rc"
done
# seconds per test in the guest, slowest first
sed -n 's/^=== TIME \([^ ]*\) \([0-9]*\) s.*/\2 \1/p' "$console" | sort -k1,1nr >"$logs/times"
ran=0 want=0
for t in $tests; do
	want=$((want + 1))
	[ -e "$logs/$t.rc" ] && ran=$((ran + 1))
done
times="build+initramfs $((t1 - t0))s, VM $((t2 - t1))s"
if ! grep -q '^=== ALL DONE' "$console"; then
	if [ "$qrc" = 124 ]; then
		why="VM timed out after ${tmo}s"
	elif ! grep -q '=== VM kernel' "$console"; then
		why="kernel $kver did not reach /init (qemu rc $qrc)"
	else
		why="VM stopped before the end (qemu rc $qrc)"
	fi
	fail "$why; $ran of $want tests finished; console: $console"
fi
slow=$(head -3 "$logs/times" | awk '{ printf "%s%s %d s", (NR > 1 ? ", " : ""), $2, $1 }')
say "ran $ran tests on $kver ($times of ${tmo}s; slowest: ${slow:-none})"
exit 0
