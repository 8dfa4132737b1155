#!/bin/sh
# aarch64 must compile: build every library and CLI source with the Debian
# cross compiler (-Werror), as TAP.  Skips (exit 77) when it is missing.
top=$(cd "$(dirname "$0")/.." && pwd)
cc=aarch64-linux-gnu-gcc
if ! command -v $cc >/dev/null 2>&1; then
	echo "1..0 # SKIP $cc not installed (package gcc-aarch64-linux-gnu)"
	exit 77
fi
# xxhash.h is architecture independent; expose only it to the cross compiler
inc=$(mktemp -d)
trap 'rm -rf "$inc"' EXIT
ln -s /usr/include/xxhash.h "$inc/xxhash.h"
# one subtest per source file: the plan is the file count
set -- "$top"/lib/*.c "$top"/lib/*/*.c "$top"/tools/pagetrack/*.c "$top"/tools/common/*.c "$top"/tools/pagetrack-demo/*.c
echo "1..$#"
n=0 fails=0
for f in "$@"; do
	n=$((n + 1))
	rel=${f#"$top"/}
	if out=$($cc -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wmissing-prototypes \
		-Wstrict-prototypes -Wno-unused-parameter -Werror -O2 \
		-I"$top/include" -I"$top/lib" -I"$top/tools/common" -I"$top/tools/pagetrack" \
		-idirafter "$inc" -c "$f" -o /dev/null 2>&1); then
		echo "ok $n - aarch64: $rel compiles"
	else
		echo "not ok $n - aarch64: $rel compiles"
		echo "$out" | head -5 | sed 's/^/# /'
		fails=$((fails + 1))
	fi
done
if [ "$n" != "$#" ]; then
	echo "Bail out! planned $# subtests, printed $n"
	exit 1
fi
[ "$fails" = 0 ]
