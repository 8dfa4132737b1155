#!/bin/sh
# Run pagetrack's test programs and print the summary line
#   N passed, N failed, N skipped
#
# Usage: tests/run-tests.sh [BUILD_DIR [ASAN_BUILD_DIR] [NAME...]]
#   BUILD_DIR (default build), ASAN_BUILD_DIR: relative to the source
#   tree, or absolute.
#   NAME: run only these (in the usual order), e.g.
#     test_tracker        a C test of BUILD_DIR
#     asan/test_tracker   the same built in ASAN_BUILD_DIR (which must be given)
#     test_cli            a Python test (tests/test_*.py), test_install a shell one
#     vm-lane             the VM lane
#   An argument after BUILD_DIR is a NAME when it starts with "test_",
#   "asan/" or is "vm-lane"; otherwise it is ASAN_BUILD_DIR.  An unknown
#   NAME is a usage error (exit 2).  Without NAMEs everything runs.
#   make check TESTS="test_tracker test_cli" passes NAMEs through.
#
# Each test is a TAP program that prints its plan first; exit 77 means
# "skipped as a whole".  Subtests are counted individually; a plan that
# does not match the subtests printed counts as a failure.  Tests run
# serially: they share the machine's swap device.  After the host suites,
# the VM lane runs the C tests again on Debian's 6.1 kernel under QEMU
# (scripts/vm-lane.sh, doc/vm-lane.md); PT_SKIP_VM=1 skips it.
# Before the summary line comes a table of the wall time of each test
# program and of the VM lane, slowest first, and the total.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
usage() {
	echo "usage: tests/run-tests.sh [BUILD_DIR [ASAN_BUILD_DIR] [NAME...]]" >&2
	[ $# -gt 0 ] && echo "run-tests.sh: $*" >&2
	exit 2
}
absdir() {
	case $1 in
	/*) echo "$1" ;;
	*) echo "$top/$1" ;;
	esac
}
is_name() {
	case $1 in
	test_* | asan/* | vm-lane) return 0 ;;
	esac
	return 1
}

build=$(absdir "${1:-build}")
[ $# -gt 0 ] && shift
asan=""
if [ $# -gt 0 ] && ! is_name "$1"; then
	asan=$1
	shift
fi

# The names this tree knows: C tests (also under asan/), Python, shell.
c_names="" other=""
for t in "$top/tests"/test_*.c; do
	[ -e "$t" ] && c_names="$c_names $(basename "$t" .c)"
done
for t in "$top/tests"/test_*.py "$top/tests"/test_*.sh; do
	[ -e "$t" ] || continue
	n=${t##*/}
	other="$other ${n%.*}"
done
known="$c_names $(for n in $c_names; do printf ' asan/%s' "$n"; done) $other vm-lane"

only=""
for n in "$@"; do
	case " $known " in
	*" $n "*) ;;
	*) usage "unknown test '$n'; known:$c_names$other vm-lane, and asan/C_TEST" ;;
	esac
	case $n in
	asan/*) [ -n "$asan" ] || usage "$n needs ASAN_BUILD_DIR" ;;
	esac
	only="$only $n"
done
# selected NAME: was NAME asked for (or were no names given)?
selected() {
	[ -z "$only" ] && return 0
	case "$only " in
	*" $1 "*) return 0 ;;
	esac
	return 1
}

logdir="$build/test-logs"
mkdir -p "$logdir"
pass=0 fail=0 skip=0
failed_names=""
times="$logdir/times"	# "MILLISECONDS NAME" per test program
: >"$times"

# now_ms: wall clock in milliseconds (GNU date; whole seconds elsewhere)
now_ms() {
	t=$(date +%s%3N)
	case $t in
	*[!0-9]*) echo "$(date +%s)000" ;;
	*) echo "$t" ;;
	esac
}
start_ms=$(now_ms)

# secs MILLISECONDS: as seconds with one decimal
secs() {
	printf '%d.%d' $(($1 / 1000)) $(($1 % 1000 / 100))
}

# count_tap NAME LOGFILE RC
count_tap() {
	name=$1 log=$2 rc=$3
	p=$(grep -cE '^ok [0-9]+' "$log" | head -1)
	s=$(grep -cE '^ok [0-9]+.*# SKIP' "$log" | head -1)
	f=$(grep -cE '^not ok [0-9]+' "$log" | head -1)
	# a failing TODO check is a known, open bug: listed, counted as skipped
	todo=$(grep -cE '^not ok [0-9]+.*# TODO' "$log" | head -1)
	f=$((f - todo)) s=$((s + todo))
	p=$((p - s + todo))
	planned=$(sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' "$log" | tail -1)
	total=$((p + s + f))
	if [ "$rc" = 77 ]; then
		reason=$(sed -n 's/^1\.\.0 # SKIP //p' "$log" | head -1)
		echo "SKIP  $name: ${reason:-no reason given}"
		skip=$((skip + 1))
		return
	fi
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		f=1	# crashed or bailed out (plan mismatch) without a failing subtest
	fi
	if [ -z "$planned" ] || [ "$planned" != "$total" ]; then
		[ "$rc" = 0 ] && f=$((f + 1))	# plan mismatch
	fi
	pass=$((pass + p)) skip=$((skip + s)) fail=$((fail + f))
	if [ "$f" -gt 0 ]; then
		echo "FAIL  $name ($p passed, $f failed, $s skipped; log: $log)"
		grep -E '^not ok|^Bail out|^# ' "$log" | head -20 | sed 's/^/      /'
		failed_names="$failed_names $name"
	else
		echo "ok    $name ($p passed, $s skipped)"
		# a group skipped together (tap_skip_n: [1/n] .. [n/n]): its first line
		grep -E '# SKIP|^not ok .*# TODO' "$log" |
			grep -vE ' \[([2-9]|[1-9][0-9]+)/[0-9]+\] # SKIP' | sed 's/^/      /'
	fi
}

# run_one LABEL CMD...
run_one() {
	label=$1; shift
	log="$logdir/$(echo "$label" | tr '/ ' '__').log"
	t0=$(now_ms)
	timeout 600 "$@" >"$log" 2>&1
	rc=$?
	echo "$(($(now_ms) - t0)) $label" >>"$times"
	count_tap "$label" "$log" "$rc"
}

run_suite() {
	dir=$1 tag=$2
	for n in $c_names; do
		selected "$tag$n" || continue
		bin="$(absdir "$dir")/tests/$n"
		[ -x "$bin" ] || { echo "FAIL  $tag$n: not built"; fail=$((fail + 1)); continue; }
		run_one "$tag$n" "$bin"
	done
}

# run_vm_lane: the C tests on a second real kernel, counted as vmX.Y/<test>.
# A lane that cannot run here counts as one skip with its reason; one that
# should have run but broke counts as one failure, besides the tests that
# finished.
run_vm_lane() {
	if [ "${PT_SKIP_VM:-}" = 1 ]; then
		echo "SKIP  vm lane: PT_SKIP_VM set"
		skip=$((skip + 1))
		return
	fi
	lanelog="$logdir/vm-lane.log"
	vlogs="$build/vm-logs"
	t0=$(now_ms)
	# QEMU's own timeout (PT_VM_TIMEOUT) plus 600 s for the static build and
	# the initramfs (160 s seen for 24 of the 27 tests at load 15): the lane must end
	# by itself, not be killed here mid-VM
	timeout $((${PT_VM_TIMEOUT:-900} + 600)) sh "$top/scripts/vm-lane.sh" "$top" "$build" \
		>"$lanelog" 2>&1
	lrc=$?
	echo "$(($(now_ms) - t0)) vm-lane" >>"$times"
	# lreason: count_tap sets $reason (a test skipped whole) on the way
	lreason=$(cat "$vlogs/reason" 2>/dev/null || tail -1 "$lanelog")
	if [ "$lrc" = 77 ]; then
		echo "SKIP  vm lane: $lreason"
		skip=$((skip + 1))
		return
	fi
	kv=$(sed -n 's/^\([0-9]*\.[0-9]*\).*/\1/p' "$vlogs/kernel" 2>/dev/null)
	for n in $(cat "$vlogs/tests.list" 2>/dev/null); do
		if [ ! -e "$vlogs/$n.rc" ]; then
			if [ "$lrc" != 0 ]; then
				# not run: one failure for the lane says why, not one per test
				echo "SKIP  vm$kv/$n: not run (the lane stopped first)"
				skip=$((skip + 1))
				continue
			fi
			echo "FAIL  vm$kv/$n: no result in the VM console (log: $vlogs/console.log)"
			fail=$((fail + 1))
			failed_names="$failed_names vm$kv/$n"
			continue
		fi
		count_tap "vm$kv/$n" "$vlogs/$n.log" "$(cat "$vlogs/$n.rc")"
	done
	if [ "$lrc" != 0 ]; then
		echo "FAIL  vm lane: ${lreason:-exit $lrc} (log: $lanelog)"
		fail=$((fail + 1))
		failed_names="$failed_names vm-lane"
	else
		echo "      $(tail -1 "$lanelog")"
	fi
}

# time_table: each timed program, slowest first, then the total wall time
time_table() {
	echo "time (s)  test"
	sort -k1,1nr "$times" | while read -r ms name; do
		printf '%8s  %s\n' "$(secs "$ms")" "$name"
	done
	printf '%8s  %s\n' "$(secs $(($(now_ms) - start_ms)))" "total (wall)"
}

export PAGETRACK_BUILD="$build"
run_suite "$build" ""
for t in "$top/tests"/test_*.py; do
	[ -e "$t" ] || continue
	selected "$(basename "$t" .py)" || continue
	run_one "$(basename "$t" .py)" /usr/bin/python3 "$t" "$build"
done
for t in "$top/tests"/test_*.sh; do
	[ -e "$t" ] || continue
	selected "$(basename "$t" .sh)" || continue
	run_one "$(basename "$t" .sh)" sh "$t" "$build"
done
if [ -n "$asan" ]; then
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=98
	run_suite "$asan" "asan/"
	unset ASAN_OPTIONS UBSAN_OPTIONS
fi
selected vm-lane && run_vm_lane

time_table
[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
