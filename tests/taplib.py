# SPDX-License-Identifier: MIT
"""TAP output for pagetrack's Python tests (the counterpart of tests/tap.h)."""
import sys

_count = {"tests": 0, "failed": 0}


def ok(cond, name, diag=None):
    """One subtest; on failure up to 20 lines of @diag follow as comments."""
    _count["tests"] += 1
    print("%sok %d - %s" % ("" if cond else "not ", _count["tests"], name))
    if not cond:
        _count["failed"] += 1
        if diag:
            for line in str(diag).splitlines()[:20]:
                print("#   " + line)
    sys.stdout.flush()
    return cond


def skip(name, reason):
    """A subtest that cannot run here, with its reason."""
    _count["tests"] += 1
    print("ok %d - %s # SKIP %s" % (_count["tests"], name, reason))
    sys.stdout.flush()


def diag(msg):
    for line in str(msg).splitlines():
        print("# " + line)


def done():
    """Print the plan and exit with the TAP program's status."""
    print("1..%d" % _count["tests"])
    sys.exit(1 if _count["failed"] else 0)
