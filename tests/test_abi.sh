#!/bin/sh
# The shared library exports exactly the public functions: the PT_API
# declarations of include/pagetrack/pagetrack.h, the global list of
# lib/libpagetrack.map and the defined dynamic symbols of libpagetrack.so
# are the same set, each symbol carries the version node of the map
# (PAGETRACK_x.y, as liburing.map), and nothing else is exported.
# Usage: tests/test_abi.sh BUILD_DIR
build=${1:?usage: test_abi.sh BUILD_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
header=$top/include/pagetrack/pagetrack.h
map=$top/lib/libpagetrack.map
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 fails=0
ok() {	# ok COND DESCRIPTION
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi
}
# diag FILE: the lines of FILE as TAP comments
diag() { sed 's/^/#   /' "$1"; }

so=$build/lib/libpagetrack.so	# the dev symlink: the library just built
if [ ! -e "$so" ] || ! command -v nm >/dev/null; then
	echo "1..0 # SKIP no built libpagetrack.so or no nm"
	exit 77
fi

# Header: every function declared with PT_API (the name is on that line).
sed -n 's/^PT_API[^(]*[^a-z0-9_]\(pt_[a-z0-9_]*\)[ ]*(.*/\1/p' "$header" | sort -u >"$tmp/header"
# Map: the names between "global:" and "local:", and the version node.
sed -n '/global:/,/local:/s/^[[:space:]]*\(pt_[a-z0-9_]*\);.*/\1/p' "$map" | sort >"$tmp/map"
node=$(sed -n 's/^\(PAGETRACK_[0-9.]*\)[[:space:]]*{.*/\1/p' "$map" | tail -1)
# Library: defined dynamic symbols, with their versions (name@@VERSION).
nm -D --defined-only --with-symbol-versions "$so" | awk '{print $NF}' | sort >"$tmp/so_ver"
# the version definition itself is an absolute symbol named after the node
grep -v "^$node\$" "$tmp/so_ver" | sed 's/@.*//' | sort -u >"$tmp/so"

ok "$(test -s "$tmp/header"; echo $?)" "the header declares PT_API functions ($(wc -l <"$tmp/header"))"
ok "$(test -n "$node"; echo $?)" "the map names a version node ($node)"
sort "$tmp/map" | uniq -d >"$tmp/dups"
ok "$(test ! -s "$tmp/dups"; echo $?)" "no symbol listed twice in the map"
diag "$tmp/dups"
diff "$tmp/header" "$tmp/map" >"$tmp/d1"
ok $? "the map lists exactly the functions of the header"
diag "$tmp/d1"
diff "$tmp/map" "$tmp/so" >"$tmp/d2"
ok $? "the library exports exactly the symbols of the map, nothing else"
diag "$tmp/d2"
grep -v "^$node\$" "$tmp/so_ver" | grep -v "@@$node\$" >"$tmp/badver"
ok "$(test ! -s "$tmp/badver"; echo $?)" "every exported symbol has the default version $node"
diag "$tmp/badver"
# the project version and the node agree (PAGETRACK_<major>.<minor>)
maj=$(sed -n 's/^#define PT_VERSION_MAJOR \([0-9]*\)/\1/p' "$header")
min=$(sed -n 's/^#define PT_VERSION_MINOR \([0-9]*\)/\1/p' "$header")
ok "$(test "$node" = "PAGETRACK_$maj.$min"; echo $?)" \
	"the version node matches PT_VERSION_MAJOR.MINOR ($maj.$min)"
proj=$(sed -n "s/^ *version : '\([0-9.]*\)',/\1/p" "$top/meson.build" | head -1)
ok "$(test "$proj" = "$maj.$min.$(sed -n 's/^#define PT_VERSION_PATCH \([0-9]*\)/\1/p' "$header")"; echo $?)" \
	"meson project version ($proj) matches PT_VERSION_*"
echo "1..$n"
[ "$fails" = 0 ]
