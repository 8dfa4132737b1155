# SPDX-License-Identifier: MIT
"""TAP output for pagetrack's Python tests (the counterpart of tests/tap.h).

The plan comes first: main() calls plan(n) once, before the first subtest
(after any skip_all()).  n is fixed: a subtest that cannot run here is
still printed, as skipped with its reason (skip(), skip_n()).  done()
turns a count that differs from the plan into "Bail out!" and exit 1.
"""
import json
import os
import sys

_count = {"tests": 0, "failed": 0, "planned": None}


def bail(msg):
    """Stop the program: a harness error, not a subtest result."""
    print("Bail out! " + msg)
    sys.stdout.flush()
    sys.exit(1)


def plan(n):
    """Print the plan "1..n": once, before the first subtest."""
    if _count["planned"] is not None or _count["tests"]:
        bail("plan(%d) after %s" % (n, "a subtest" if _count["tests"] else "another plan"))
    _count["planned"] = n
    print("1..%d" % n)
    sys.stdout.flush()


def skip_all(reason):
    """The whole program cannot run here: "1..0 # SKIP reason", exit 77."""
    if _count["planned"] is not None:
        bail("skip_all() after plan(): %s" % reason)
    print("1..0 # SKIP %s" % reason)
    sys.stdout.flush()
    sys.exit(77)


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


def skip_n(n, name, reason):
    """@n subtests ruled out together, so that the plan stays fixed."""
    for i in range(1, n + 1):
        skip("%s [%d/%d]" % (name, i, n) if n > 1 else name, reason)


def diag(msg):
    for line in str(msg).splitlines():
        print("# " + line)


def done():
    """Exit with the TAP program's status; a missing or wrong plan bails out."""
    if _count["planned"] is None:
        bail("no plan: plan() was never called (%d subtests)" % _count["tests"])
    if _count["tests"] != _count["planned"]:
        bail("planned %d subtests, printed %d" % (_count["planned"], _count["tests"]))
    sys.exit(1 if _count["failed"] else 0)


def pagetrack_binary(script):
    """BUILD_DIR/tools/pagetrack from argv, or skip the whole program (77)."""
    if len(sys.argv) != 2:
        skip_all("usage: %s BUILD_DIR" % os.path.basename(script))
    pt = os.path.join(os.path.abspath(sys.argv[1]), "tools", "pagetrack")
    if not os.access(pt, os.X_OK):
        skip_all("%s not built" % pt)
    return pt


def schema_validator(path, label):
    """A draft 2020-12 validator for the schema at @path (a subtest), or None."""
    try:
        import jsonschema
        with open(path) as f:
            schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(schema)
        ok(True, "%s is a valid draft 2020-12 schema" % label)
        return jsonschema.Draft202012Validator(schema)
    except Exception as e:  # ImportError, or a broken schema
        ok(False, "%s is a valid draft 2020-12 schema (jsonschema)" % label, repr(e))
        return None
