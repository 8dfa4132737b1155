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
import time
import traceback

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


# ---------------------------------------------------------------- sections
# A program made of named sections of fixed size (SECTIONS = ((name, n),
# ...)); each runs inside `with Section(name, n):` and prints its subtests
# with t_ok()/t_skip() (named "SECTION: name"), or skip_rest(reason).
T0 = time.time()
BUDGET = int(os.environ.get("PT_TEST_TIMEOUT", "0") or 0) or 600


class Section:
    """Exactly @n subtests: an exception or a short section fails the rest.

    NOT_REACHED and MISSING name the subtests that fill the section up
    ({name}: the section's name); a program may subclass to word them
    otherwise."""
    cur = None
    NOT_REACHED = "{name}: not reached (exception)"
    MISSING = "{name}: subtest missing (section printed too few)"

    def __init__(self, name, n):
        self.name, self.n, self.count = name, n, 0

    def __enter__(self):
        Section.cur = self
        return self

    def left(self):
        return self.n - self.count

    def __exit__(self, typ, val, tb):
        if typ is not None and self.left() > 0:
            why = "".join(traceback.format_exception(typ, val, tb))[-1500:]
            for i in range(self.left()):
                t_ok(False, self.NOT_REACHED.format(name=self.name), why if i == 0 else None)
        while self.left() > 0:
            t_ok(False, self.MISSING.format(name=self.name))
        if self.left() < 0:
            diag("section %s printed %d too many" % (self.name, -self.left()))
        Section.cur = None
        return typ is None or issubclass(typ, Exception)


def t_ok(cond, name, why=None):
    """A subtest of the current section."""
    Section.cur.count += 1
    return ok(bool(cond), "%s: %s" % (Section.cur.name, name), why)


def t_skip(name, reason):
    Section.cur.count += 1
    skip("%s: %s" % (Section.cur.name, name), reason)


def skip_rest(reason):
    """Skip what is left of the current section, with @reason."""
    s = Section.cur
    for _ in range(s.left()):
        t_skip("[%d/%d]" % (s.count + 1, s.n), reason)


def over_budget():
    """True once 85% of the time budget (PT_TEST_TIMEOUT) is spent: a
    section that would start now is skipped."""
    return time.time() - T0 > BUDGET * 0.85


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
