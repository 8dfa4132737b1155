#!/bin/sh
# The image reader's fuzz target (tests/fuzz_image.c) under libFuzzer with
# ASan and UBSan, when clang can build it (else a skip: the built-in
# mutation driver, test_fuzz_image, always runs).  Starts from the seed
# corpus in tests/corpus/image/ (a copy: libFuzzer adds what it finds),
# bounded by PT_LIBFUZZER_RUNS inputs (default 200000) and
# PT_LIBFUZZER_SECS seconds (default 20).  TAP.
top=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v clang >/dev/null 2>&1; then
	echo "1..0 # SKIP clang not installed: the built-in mutation driver (test_fuzz_image) ran instead"
	exit 77
fi
tmp=$(mktemp -d /tmp/pt-libfuzzer-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
echo "1..3"
if ! clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-D_GNU_SOURCE -DPT_LIBFUZZER -I"$top/include" -I"$top/lib" -I"$top/tests" \
	"$top/lib/image/reader.c" "$top/lib/image/sections.c" "$top/lib/image/read.c" \
	"$top/lib/image/writer.c" "$top/lib/log.c" "$top/tests/fuzz_image.c" \
	-lxxhash -lzstd -lpthread -o "$tmp/fuzz_image" >"$tmp/build.log" 2>&1; then
	if grep -q "fuzzer" "$tmp/build.log"; then
		echo "ok 1 - build with libFuzzer # SKIP clang has no libFuzzer runtime here"
		echo "ok 2 - seeds # SKIP no libFuzzer"
		echo "ok 3 - fuzzing # SKIP no libFuzzer"
		exit 0
	fi
	echo "not ok 1 - fuzz_image builds with clang -fsanitize=fuzzer,address,undefined"
	sed 's/^/# /' "$tmp/build.log" | head -20
	echo "ok 2 - seeds # SKIP not built"
	echo "ok 3 - fuzzing # SKIP not built"
	exit 1
fi
echo "ok 1 - fuzz_image builds with clang -fsanitize=fuzzer,address,undefined"
mkdir "$tmp/corpus" "$tmp/dir"
cp "$top"/tests/corpus/image/* "$tmp/corpus/"
cp "$top"/tests/corpus/image/base.img "$tmp/dir/"	# child.img's parent
fails=0
export PT_FUZZ_DIR="$tmp/dir" ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
n=$(ls "$tmp/corpus" | wc -l)
if "$tmp/fuzz_image" -runs=0 "$tmp/corpus" >"$tmp/seeds.log" 2>&1; then
	echo "ok 2 - the $n seed layers of tests/corpus/image run clean"
else
	echo "not ok 2 - the $n seed layers of tests/corpus/image run clean"
	tail -20 "$tmp/seeds.log" | sed 's/^/# /'
	fails=1
fi
runs=${PT_LIBFUZZER_RUNS:-200000}
secs=${PT_LIBFUZZER_SECS:-20}
if "$tmp/fuzz_image" -runs="$runs" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	-malloc_limit_mb=64 -print_final_stats=1 "$tmp/corpus" >"$tmp/fuzz.log" 2>&1; then
	done=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$tmp/fuzz.log" | grep -o '[0-9]*$')
	echo "ok 3 - libFuzzer: ${done:-?} inputs (at most $runs, $secs s), no crash, leak, hang or allocation over 64 MB"
	grep -E "cov:|corp:" "$tmp/fuzz.log" | tail -1 | sed 's/^/# /'
else
	echo "not ok 3 - libFuzzer found a failing input"
	grep -v "^#" "$tmp/fuzz.log" | tail -30 | sed 's/^/# /'
	fails=1
fi
exit $fails
