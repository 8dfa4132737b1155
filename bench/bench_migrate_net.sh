#!/bin/sh
# The netem bench of live migration (doc/bench.md, "Migration over a
# shaped link"): downtime and total bytes against the dirty rate (0, 10%,
# 50% of a 1 Gbit/s tc tbf link between two network namespaces), with
# zstd as the sender chooses and with --no-compress.  Root; about 40 s.
# Usage: bench/bench_migrate_net.sh BUILD_DIR
#   PT_BENCH_MIB  the target's live region (MiB, default 128)
#   PT_MIGTEST_PT another pagetrack binary (default BUILD_DIR/tools/pagetrack)
# Prints "skipped: REASON" and exits 0 when pagetrack send/receive are not
# built or this is not root; exits 1 only when a migration failed.
set -u
build=${1:?usage: bench_migrate_net.sh BUILD_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
PT_BENCH=1 exec /usr/bin/python3 "$top/tests/test_migrate_net.py" "$build"
