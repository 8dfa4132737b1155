# SPDX-License-Identifier: MIT
"""TAP output for pagetrack's Python tests (the counterpart of tests/tap.h)."""
import json
import os
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


def pagetrack_binary(script):
    """BUILD_DIR/tools/pagetrack from argv, or skip the whole program (77)."""
    if len(sys.argv) != 2:
        print("1..0 # SKIP usage: %s BUILD_DIR" % os.path.basename(script))
        sys.exit(77)
    pt = os.path.join(os.path.abspath(sys.argv[1]), "tools", "pagetrack")
    if not os.access(pt, os.X_OK):
        print("1..0 # SKIP %s not built" % pt)
        sys.exit(77)
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
