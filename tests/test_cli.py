#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""CLI tests for `pagetrack` (TAP).

Usage: test_cli.py BUILD_DIR   (the binary is BUILD_DIR/tools/pagetrack)

Targets are child processes started here whose layout we know: a private
anonymous mapping of 64 pages with the first 16 touched, and a shared
anonymous mapping of 32 pages with the first 8 touched.  JSON output is
validated against doc/map.schema.json.
"""
import errno
import fcntl
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
SCHEMA = os.path.join(TOP, "doc", "map.schema.json")
PS = os.sysconf("SC_PAGE_SIZE")
STATES = ("present", "swapped", "cached", "absent", "unknown")
PAGE_KEYS = ("total",) + STATES + ("file", "exclusive", "soft_dirty", "uffd_wp",
                                   "zero", "huge", "guard")

from taplib import (diag, done, ok, pagetrack_binary, plan, schema_validator, skip,  # noqa: E402
                    skip_n)


# ---------------------------------------------------------------- targets

LAYOUT_CHILD = r"""
import ctypes, mmap, sys
PS = mmap.PAGESIZE
priv = mmap.mmap(-1, 64 * PS, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                 prot=mmap.PROT_READ | mmap.PROT_WRITE)
for i in range(16):
    priv[i * PS] = 1
shared = mmap.mmap(-1, 32 * PS, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
for i in range(8):
    shared[i * PS] = 1
addr = lambda m: ctypes.addressof(ctypes.c_char.from_buffer(m))
print(hex(addr(priv)), hex(addr(shared)), flush=True)
sys.stdin.read()
"""

# Many memory areas (alternating protections stop merges), so that a scan
# takes long enough to be interrupted by the target's death.
MANY_VMAS_CHILD = r"""
import ctypes, mmap, sys
PS = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                      ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
N = int(sys.argv[1])
base = libc.mmap(None, 2 * N * PS, 3, 0x22, -1, 0)
for i in range(N):
    ctypes.memset(base + 2 * i * PS, 1, 1)
    libc.mprotect(base + 2 * i * PS, PS, 1)
print("ready", flush=True)
sys.stdin.read()
"""


# A file mapping whose name holds a tab, a control byte, a byte that is not
# UTF-8 and a valid UTF-8 sequence: tests JSON string escaping end to end.
ODD_NAME_CHILD = r"""
import mmap, os, sys
name = os.fsencode(sys.argv[1]) + b"/pt-\t\x01\xff\xc3\xa9.bin"
fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o600)
os.write(fd, b"x" * mmap.PAGESIZE)
m = mmap.mmap(fd, mmap.PAGESIZE, flags=mmap.MAP_SHARED)
m[0]
print("ready", flush=True)
sys.stdin.read()
os.unlink(name)
"""


class Child:
    def __init__(self, script, *args):
        self.p = subprocess.Popen([sys.executable, "-c", script] + list(args),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        self.line = self.p.stdout.readline().split()
        self.pid = self.p.pid
        self.settle()

    def settle(self):
        """Wait until the child sleeps in its final read: quiet from then on."""
        for _ in range(200):
            try:
                with open("/proc/%d/stat" % self.pid) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                return
            if state == "S":
                break
            time.sleep(0.01)
        time.sleep(0.1)

    def stop(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
            except OSError:
                pass
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


# ---------------------------------------------------------------- helpers

def run(pt, args, env=None, preexec_fn=None, timeout=120):
    e = dict(os.environ)
    e.pop("PT_FORCE_BACKEND", None)
    if env:
        e.update(env)
    p = subprocess.run([pt] + args, capture_output=True, text=True, env=e,
                       preexec_fn=preexec_fn, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def one_line(s):
    return len(s.strip().splitlines()) == 1 and s.startswith("pagetrack: ")


def parse_json(s):
    try:
        return json.loads(s)
    except ValueError:
        return None


def vma_of(doc, addr):
    for v in doc["vmas"]:
        if int(v["start"], 16) <= addr < int(v["end"], 16):
            return v
    return None


def sums_ok(doc):
    """Per VMA the five states sum to total; totals = sum over VMAs."""
    bad = []
    tot = dict.fromkeys(PAGE_KEYS, 0)
    for v in doc["vmas"]:
        p = v["pages"]
        if sum(p[s] for s in STATES) != p["total"]:
            bad.append("%s-%s: states %s != total %d" % (
                v["start"], v["end"], [p[s] for s in STATES], p["total"]))
        for k in PAGE_KEYS:
            tot[k] += p[k]
    for k in PAGE_KEYS:
        if tot[k] != doc["totals"][k]:
            bad.append("totals[%s] = %d, sum over VMAs = %d" % (k, doc["totals"][k], tot[k]))
    return bad


def backend_neutral(vmas):
    out = []
    for v in vmas:
        v = json.loads(json.dumps(v))
        if v["kind"] == "file":
            del v["pages"]["exclusive"]
        out.append(v)
    return out


def runs_ok(doc):
    """Runs are sorted, contiguous, cover the scanned part, and add up."""
    bad = []
    for v in doc["vmas"]:
        runs = v.get("runs")
        if runs is None:
            bad.append("%s: no runs" % v["start"])
            continue
        s = int(v.get("scan_start", v["start"]), 16)
        e = int(v.get("scan_end", v["end"]), 16)
        cur = s
        cnt = dict.fromkeys(PAGE_KEYS, 0)
        for r in runs:
            rs, re_ = int(r["start"], 16), int(r["end"], 16)
            if rs != cur or re_ <= rs:
                bad.append("%s: run %s-%s not contiguous" % (v["start"], r["start"], r["end"]))
                break
            cur = re_
            n = (re_ - rs) // PS
            cnt["total"] += n
            cnt[r["state"]] += n
            for a in r["attrs"]:
                cnt[a] += n
        if cur != e and not bad:
            bad.append("%s: runs end at %x, not %x" % (v["start"], cur, e))
        for k in PAGE_KEYS:
            if cnt[k] != v["pages"][k]:
                bad.append("%s: runs give %s=%d, pages say %d" % (v["start"], k, cnt[k],
                                                                   v["pages"][k]))
    return bad


def pagemap_scan_available():
    """Independent probe: does the kernel accept a PAGEMAP_SCAN ioctl?"""
    size = 12 * 8
    req = (3 << 30) | (size << 16) | (ord("f") << 8) | 16
    arg = struct.pack("=12Q", size, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    try:
        with open("/proc/self/pagemap", "rb") as f:
            fcntl.ioctl(f.fileno(), req, arg)
        return True
    except OSError as e:
        if e.errno in (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP):
            return False
        raise


def free_pid():
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            pid = int(f.read()) - 1
    except OSError:
        pid = 4194303
    while os.path.exists("/proc/%d" % pid):
        pid -= 1
    return pid


# ---------------------------------------------------------------- tests

def test_basics(pt):
    rc, out, err = run(pt, ["--help"])
    ok(rc == 0 and "Usage" in out and "map" in out, "--help exits 0 with usage", err)
    rc, out, err = run(pt, ["map", "--help"])
    ok(rc == 0 and "--range" in out, "map --help exits 0", err)
    rc, out, err = run(pt, ["help", "map"])
    ok(rc == 0 and "--range" in out, "help map shows map's help", err)
    rc, out, err = run(pt, ["--version"])
    ok(rc == 0 and out.startswith("pagetrack "), "--version exits 0", out + err)
    rc, out, err = run(pt, ["frobnicate"])
    ok(rc == 2 and one_line(err), "unknown command: exit 2, one line", "rc=%d %r" % (rc, err))
    rc, out, err = run(pt, ["--bogus", "map", "self"])
    ok(rc == 2 and one_line(err), "unknown global option: exit 2, one line",
       "rc=%d %r" % (rc, err))
    rc, out, err = run(pt, ["map", "--bogus", "self"])
    ok(rc == 2 and one_line(err) and out == "", "unknown map option: exit 2, one line",
       "rc=%d %r" % (rc, err))
    rc, out, err = run(pt, [])
    ok(rc == 2, "no command: exit 2", "rc=%d" % rc)
    for bad in ("abc", "0", "12x", "99999999999"):
        rc, out, err = run(pt, ["map", bad])
        ok(rc == 2 and one_line(err) and out == "", "malformed pid %r: exit 2, one line" % bad,
           "rc=%d %r" % (rc, err))
    rc, out, err = run(pt, ["map"])
    ok(rc == 2 and one_line(err), "missing pid: exit 2, one line", "rc=%d %r" % (rc, err))


def test_check(pt):
    rc, out, err = run(pt, ["check", "--json"])
    doc = parse_json(out)
    ok(rc == 0 and isinstance(doc, dict) and "features" in doc and "will_use" in doc,
       "check --json parses and has features and will_use", "rc=%d %s %s" % (rc, out[:300], err))
    tk = doc.get("trackers") if isinstance(doc, dict) else None
    names = [t.get("backend") for t in tk] if isinstance(tk, list) else []
    good = (names == ["uffd", "softdirty", "hash"] and
            all(isinstance(t.get("usable"), bool) and isinstance(t.get("auto"), bool) and
                t.get("reason") and t.get("blind_spots") for t in tk) and
            sum(t["auto"] for t in tk) == 1 and all(t["usable"] for t in tk if t["auto"]) and
            tk[2]["usable"])
    ok(good, "check --json: trackers uffd, softdirty, hash, each usable or not with a "
       "reason and its blind spots; auto is the first usable one", repr(tk)[:400])
    if good:
        first = next(t["backend"] for t in tk if t["usable"])
        ok(next(t["backend"] for t in tk if t["auto"]) == first,
           "check --json: auto is the first usable tracker (%s)" % first)
    else:
        skip("check --json: auto is the first usable tracker", "no tracker table")
    rc, out, err = run(pt, ["check"])
    ok(rc == 0 and "tracker backends" in out and out.count("blind spots:") == 3,
       "check: a tracker backends table with the blind spots of each", "rc=%d" % rc)
    # the fault cost: the kind the probes call for, uffd-wp async, else
    # soft-dirty, else a first touch
    fc = doc.get("fault_cost") if isinstance(doc, dict) else None
    feats = doc.get("features", {}) if isinstance(doc, dict) else {}
    wp = feats.get("uffd_wp_async", {}).get("state")
    sd = feats.get("soft_dirty", {}).get("state")
    want = "uffd_wp" if wp == "yes" else "soft_dirty" if sd == "yes" else "first_touch"
    good = (isinstance(fc, dict) and
            fc.get("kind") in ("none", "uffd_wp", "first_touch", "soft_dirty") and
            isinstance(fc.get("ns"), int) and (fc["ns"] == 0) == (fc["kind"] == "none") and
            isinstance(fc.get("how"), str) and fc["how"] != "")
    if good and want == "soft_dirty" and fc["kind"] != want and "not in time" in fc["how"]:
        skip("check --json: fault_cost kind, ns and how",
             "the soft-dirty child did not report in 20 s (a starved machine)")
    else:
        if good:
            good = fc["kind"] == want and 0 < fc["ns"] < 10**9
        ok(good, "check --json: fault_cost kind, ns and how (uffd_wp_async %s, soft_dirty %s: %s)"
           % (wp, sd, want), repr(fc))
    # another run: same kind, its own measurement
    lines = out.splitlines()
    at = next((i for i, ln in enumerate(lines) if ln.startswith("fault cost")), None)
    nxt = lines[at + 1] if at is not None and at + 1 < len(lines) else ""
    want = (r"^  none +\S" if good and fc["kind"] == "none" else
            r"^  %s +[1-9][0-9]* ns  \S" % (fc["kind"] if good else "?"))
    ok(good and re.match(want, nxt) is not None, "check: shows the fault cost", repr(nxt))
    # uffd-wp skipped: soft-dirty where the probe says it works, else a first touch
    rc, out, err = run(pt, ["check", "--json"], env={"PT_FORCE_FAULT_COST": "soft_dirty"})
    doc = parse_json(out) or {}
    fc = doc.get("fault_cost") or {}
    sd = doc.get("features", {}).get("soft_dirty", {}).get("state")
    want = "soft_dirty" if sd == "yes" else "first_touch"
    how = fc.get("how") if isinstance(fc.get("how"), str) else ""
    if want == "soft_dirty" and fc.get("kind") != want and "not in time" in how:
        skip("check --json, PT_FORCE_FAULT_COST=soft_dirty",
             "the soft-dirty child did not report in 20 s (a starved machine)")
    else:
        ok(rc == 0 and fc.get("kind") == want and isinstance(fc.get("ns"), int) and
           0 < fc["ns"] < 10**9 and "PT_FORCE_FAULT_COST=soft_dirty" in how and
           (sd == "yes" or "no soft-dirty" in how),
           "check --json, PT_FORCE_FAULT_COST=soft_dirty (soft_dirty %s): %s" % (sd, want),
           "rc=%d %r" % (rc, fc))


def test_page_size(pt, validator):
    """pagetrack computes with 4 KiB pages: elsewhere it refuses, in one clear line."""
    rc, out, err = run(pt, ["check", "--json"])
    doc = parse_json(out) or {}
    f = doc.get("features", {}).get("page_size_4k", {})
    ok(rc == 0 and doc.get("page_size") == PS and f.get("state") == ("yes" if PS == 4096 else "no"),
       "check --json: page_size %d, feature page_size_4k %s" % (PS, f.get("state")),
       "rc=%d %r %r" % (rc, doc.get("page_size"), f))
    force = {"PT_FORCE_PAGE_SIZE": "16384"}
    msg = "this kernel uses 16 KiB pages (PT_FORCE_PAGE_SIZE=16384); pagetrack supports " \
          "4 KiB pages only"
    rc, out, err = run(pt, ["map", "self"], env=force)
    ok(rc == 1 and one_line(err) and err.strip() == "pagetrack: " + msg and out == "",
       "16 KiB pages (forced): map refuses with one line, exit 1", "rc=%d %r" % (rc, err))
    rc, out, err = run(pt, ["map", "--json", "self"], env=force)
    doc = parse_json(out)
    e = doc.get("error", {}) if isinstance(doc, dict) else {}
    good = rc == 1 and e.get("message") == msg and e.get("errno") == "EOPNOTSUPP" and \
        e.get("exit_code") == 1
    if validator is not None and isinstance(doc, dict):
        good = good and not list(validator.iter_errors(doc))
    ok(good, "16 KiB pages (forced): map --json gives an error object (schema), exit 1",
       "rc=%d %r" % (rc, out))
    marker = "/tmp/pt-page-size-cmd-%d" % os.getpid()
    rc, out, err = run(pt, ["watch", "--", "touch", marker], env=force)
    ran = os.path.exists(marker)
    if ran:
        os.unlink(marker)
    ok(rc == 1 and one_line(err) and msg in err and not ran,
       "16 KiB pages (forced): watch -- CMD refuses before running the command, exit 1",
       "rc=%d ran=%s %r" % (rc, ran, err))
    rc, out, err = run(pt, ["check", "--json"], env=force)
    doc = parse_json(out) or {}
    f = doc.get("features", {}).get("page_size_4k", {})
    ok(rc == 0 and doc.get("page_size") == 16384 and f.get("state") == "no" and
       f.get("reason") == msg and not any(t.get("usable") for t in doc.get("trackers", [{}])),
       "16 KiB pages (forced): check exits 0, shows the page size, page_size_4k no, no "
       "tracker usable", "rc=%d %r" % (rc, out[:400]))
    rc, out, err = run(pt, ["check"], env=force)
    ok(rc == 0 and "16384-byte pages" in out and msg in out,
       "16 KiB pages (forced): check's human output names the page size", out[:300])


def test_errors(pt, validator):
    pid = free_pid()
    rc, out, err = run(pt, ["map", str(pid)])
    ok(rc == 1 and one_line(err) and ("no such process: %d" % pid) in err and out == "",
       "nonexistent pid: exit 1, 'no such process' on one line", "rc=%d %r" % (rc, err))
    rc, out, err = run(pt, ["map", "--json", str(pid)])
    doc = parse_json(out)
    good = (rc == 1 and isinstance(doc, dict) and "error" in doc and
            doc["error"].get("errno") == "ESRCH" and doc["error"].get("exit_code") == 1)
    ok(good, "nonexistent pid --json: error object with ESRCH, exit 1", "rc=%d %r" % (rc, out))
    if validator and doc is not None:
        errs = [e.message for e in validator.iter_errors(doc)]
        ok(not errs, "error object matches the schema", "\n".join(errs))
    else:
        ok(False, "error object matches the schema", "no validator or no JSON")

    for rng in ("zzz", "2000-1000", "1000", "0x1000-", "-0x1000", "0x1000-0x2000x",
                "0x1000-0x1000"):
        rc, out, err = run(pt, ["map", "--range", rng, "self"])
        ok(rc == 2 and one_line(err) and out == "",
           "malformed range %r: exit 2, one line on stderr" % rng, "rc=%d %r" % (rc, err))
    rc, out, err = run(pt, ["map", "--range", "zzz", "--json", "self"])
    doc = parse_json(out)
    ok(rc == 2 and isinstance(doc, dict) and doc.get("error", {}).get("exit_code") == 2,
       "malformed range --json: error object with exit_code 2", "rc=%d %r" % (rc, out))
    rc, out, err = run(pt, ["map", "--json", "--range"])
    doc = parse_json(out)
    ok(rc == 2 and isinstance(doc, dict) and "error" in doc,
       "--range without argument --json: error object, exit 2", "rc=%d %r" % (rc, out))


N_LAYOUT = 24    # subtests of test_layout(), skips included


def test_layout(pt, validator):
    c = Child(LAYOUT_CHILD)
    try:
        priv, shared = (int(x, 16) for x in c.line)
        pid = str(c.pid)

        rc, out, err = run(pt, ["map", "--json", pid])
        doc = parse_json(out)
        ok(rc == 0 and doc is not None, "map --json on a child: exit 0, valid JSON",
           "rc=%d %s" % (rc, err))
        if doc is None:
            skip_n(N_LAYOUT - 1, "map --json on a child", "no JSON")
            return
        if validator:
            errs = ["%s: %s" % (list(e.path), e.message) for e in validator.iter_errors(doc)]
            ok(not errs, "map --json matches doc/map.schema.json", "\n".join(errs[:10]))
        else:
            ok(False, "map --json matches doc/map.schema.json", "jsonschema not importable")
        ok(doc["pid"] == c.pid and doc["complete"] is True, "pid and complete are right")
        bad = sums_ok(doc)
        ok(not bad, "states sum to total per VMA; totals = sum of VMAs", "\n".join(bad))

        v = vma_of(doc, priv)
        ok(v is not None and v["kind"] == "anon" and v["path"] == "" and
           v["perms"] == "rw-p" and v["pages"]["present"] >= 16,
           "private anon VMA: kind anon, rw-p, >= 16 pages present", v)
        v = vma_of(doc, shared)
        good = (v is not None and v["kind"] == "shmem" and v["perms"] == "rw-s" and
                v["pages"]["total"] == 32 and
                v["pages"]["present"] + v["pages"]["swapped"] + v["pages"]["cached"] == 8 and
                v["pages"]["absent"] + v["pages"]["unknown"] == 24)
        if os.geteuid() == 0:
            good = good and v["pages"]["unknown"] == 0
        ok(good, "shared anon VMA: kind shmem, 8 pages with data, 24 without", v)

        # Default backend, by an independent probe of the kernel.
        if pagemap_scan_available():
            ok(doc["backend"] == "pagemap_scan", "default backend is pagemap_scan",
               doc["backend"])
        else:
            skip("default backend is pagemap_scan", "kernel has no PAGEMAP_SCAN")
        rc, out2, err = run(pt, ["map", "--json", pid], env={"PT_FORCE_BACKEND": "read"})
        doc2 = parse_json(out2)
        ok(rc == 0 and doc2 is not None and doc2["backend"] == "pagemap_read",
           "PT_FORCE_BACKEND=read gives backend pagemap_read", "rc=%d %s" % (rc, err))
        if doc2 is not None:
            # Exclusivity of file pages (shared library text) depends on
            # whatever other process maps the same file at that moment, and
            # the page cache of shared files moves under other processes'
            # reads: compare two scans taken back to back, a few times.
            for attempt in range(5):
                a_v, b_v = backend_neutral(doc["vmas"]), backend_neutral(doc2["vmas"])
                diff = ""
                for a, b in zip(a_v, b_v):
                    if a != b:
                        diff += "scan: %s\nread: %s\n" % (a, b)
                if a_v == b_v:
                    break
                rc, out1, err = run(pt, ["map", "--json", pid])
                rc2, out2, err = run(pt, ["map", "--json", pid],
                                     env={"PT_FORCE_BACKEND": "read"})
                d1, d2 = parse_json(out1), parse_json(out2)
                if d1 is None or d2 is None:
                    break
                doc, doc2 = d1, d2
            ok(a_v == b_v, "both backends give the same VMAs and counts", diff)
            ok(not sums_ok(doc2), "read backend: sums are right", sums_ok(doc2))
        else:
            skip_n(2, "read backend: same VMAs and counts, sums right", "no JSON")

        # --range restricts the output; exact counts inside our mapping.
        rng = "%x-%x" % (priv, priv + 64 * PS)
        rc, out, err = run(pt, ["map", "--json", "--range", rng, pid])
        d = parse_json(out)
        good = rc == 0 and d is not None and len(d["vmas"]) == 1
        if good:
            p = d["totals"]
            good = (p["total"] == 64 and p["present"] == 16 and p["absent"] == 48 and
                    p["exclusive"] == 16)
        ok(good, "--range over the private mapping: 64 pages, 16 present, 48 absent",
           "rc=%d %s %s" % (rc, out[:2000], err))
        rng = "0x%x-0x%x" % (priv + 8 * PS, priv + 24 * PS)
        rc, out, err = run(pt, ["map", "--json", "--pages", "--range", rng, pid])
        d = parse_json(out)
        good = rc == 0 and d is not None and len(d["vmas"]) == 1
        if good:
            v = d["vmas"][0]
            good = (v["pages"]["total"] == 16 and v["pages"]["present"] == 8 and
                    v["pages"]["absent"] == 8 and int(v["scan_start"], 16) == priv + 8 * PS and
                    int(v["scan_end"], 16) == priv + 24 * PS and
                    [(r["state"], r["start"], r["end"]) for r in v["runs"]] ==
                    [("present", hex(priv + 8 * PS), hex(priv + 16 * PS)),
                     ("absent", hex(priv + 16 * PS), hex(priv + 24 * PS))])
        ok(good, "--pages --range inside a VMA: clipped, two runs present/absent",
           "rc=%d %s %s" % (rc, out[:2000], err))
        if validator and d is not None:
            errs = [e.message for e in validator.iter_errors(d)]
            ok(not errs, "--pages --range output matches the schema", "\n".join(errs[:10]))
        else:
            ok(False, "--pages --range output matches the schema", "no validator or no JSON")

        # --pages on the whole process: runs tile every VMA and add up.
        for backend in ("", "read"):
            env = {"PT_FORCE_BACKEND": backend} if backend else None
            rc, out, err = run(pt, ["map", "--json", "--pages", pid], env=env)
            d = parse_json(out)
            bad = runs_ok(d) if d else ["no JSON: rc=%d %s" % (rc, err)]
            ok(rc == 0 and not bad, "--pages (%s): runs tile each VMA and add up to its counts"
               % (backend or "default backend"), "\n".join(bad[:10]))

        # Human output: aligned table, legend, totals.
        rc, out, err = run(pt, ["map", pid])
        lines = out.splitlines()
        good = (rc == 0 and any(l.startswith("legend:") for l in lines) and
                any(l.startswith("total") for l in lines) and
                any(("%x-" % priv) in l and " anon " in l for l in lines))
        ok(good, "human output has a legend, the VMAs and a total line", out[:1500] + err)
        rows = [l for l in lines if l[:1] in "0123456789abcdef" and "-" in l[:40]]
        widths = {l.index(" ") for l in rows}
        ok(len(rows) >= 2 and len(widths) == 1, "human output: address column aligned",
           "\n".join(rows[:5]))

        rc, out, err = run(pt, ["-v", "map", "--no-shared", "--json", pid])
        d = parse_json(out)
        good = rc == 0 and d is not None and not sums_ok(d)
        if good:
            v = vma_of(d, shared)
            good = (v is not None and v["pages"]["present"] == 8 and
                    v["pages"]["unknown"] == 24 and
                    d["unknown_reasons"].get("not_resolved", 0) >= 24)
        ok(good, "--no-shared: unresolved shared pages are unknown (not_resolved)",
           "rc=%d %s" % (rc, err))

        # --verify on a quiet process agrees with smaps.
        rc, out, err = run(pt, ["map", "--verify", "--json", pid])
        d = parse_json(out)
        good = (rc == 0 and d is not None and d["verify"]["unexplained"] == 0 and
                d["verify"]["checked"] > 0)
        bad_v = []
        if d:
            bad_v = [v for v in d["vmas"] if v["verify"]["status"] == "mismatch"]
        ok(good, "--verify agrees with smaps on a quiet process (exit 0)",
           "rc=%d %s %s" % (rc, bad_v[:3], err))
        rc, out, err = run(pt, ["map", "--verify", pid])
        ok(rc == 0 and "verify:" in out and " 0 unexplained" in out,
           "--verify human output: summary line, exit 0", out[-500:] + err)

        if os.geteuid() == 0:
            test_permission(pt, c.pid)
            rc, out, err = run(pt, ["map", "--json", "--kflags", "--pages", pid])
            d = parse_json(out)
            good = rc == 0 and d is not None
            if good and validator:
                good = not list(validator.iter_errors(d))
            if good:
                v = vma_of(d, priv)
                good = (v is not None and v["kflags"]["anon"] >= 16 and
                        all("pfn" in r for r in v["runs"] if r["state"] == "present"))
            ok(good, "--kflags (root): per-VMA kflags counts, PFNs in runs",
               "rc=%d %s" % (rc, err))
        else:
            skip_n(2, "permission denied: exit 1, one line", "needs root to own the target")
            skip("--kflags (root)", "not root")
    finally:
        c.stop()

    # The child is gone now: same pid must be reported as not existing.
    rc, out, err = run(pt, ["map", str(c.pid)])
    ok(rc == 1 and one_line(err), "exited child: exit 1, one line", "rc=%d %r" % (rc, err))


def test_permission(pt, pid):
    def drop():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    try:
        rc, out, err = run(pt, ["map", str(pid)], preexec_fn=drop)
    except (OSError, subprocess.SubprocessError) as e:
        skip_n(2, "permission denied: exit 1, one line", "cannot run as uid 65534: %s" % e)
        return
    if rc in (126, 127):
        skip_n(2, "permission denied: exit 1, one line", "uid 65534 cannot execute the binary")
        return
    ok(rc == 1 and one_line(err) and "permission denied" in err and out == "",
       "permission denied (uid 65534 vs root process): exit 1, one line",
       "rc=%d %r %r" % (rc, out[:200], err))
    rc, out, err = run(pt, ["map", "--json", str(pid)], preexec_fn=drop)
    doc = parse_json(out)
    ok(rc == 1 and isinstance(doc, dict) and
       doc.get("error", {}).get("errno") in ("EACCES", "EPERM"),
       "permission denied --json: error object with EACCES/EPERM", "rc=%d %r" % (rc, out))


def test_odd_path(pt):
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        c = Child(ODD_NAME_CHILD, d)
        try:
            rc, out, err = run(pt, ["map", "--json", str(c.pid)])
            try:
                doc = json.loads(out)  # strict: raw control characters fail
            except ValueError as e:
                doc = None
                err += " / " + str(e)
            want = d + "/pt-\t\x01\xff\xe9.bin"
            paths = [v["path"] for v in doc["vmas"]] if doc else []
            ok(rc == 0 and want in paths,
               "odd file name: control and non-UTF-8 bytes escaped, UTF-8 kept",
               "rc=%d %r not in %r %s" % (rc, want, [p for p in paths if "pt-" in p], err))
        finally:
            c.stop()


def test_exit_during_scan(pt, validator):
    """The target dies while being scanned: no crash, exit 0 or 1, right message."""
    seen_incomplete = None
    problems = []
    tries = 0
    for delay in (0.0, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15):
        c = Child(MANY_VMAS_CHILD, "20000")
        if c.line != ["ready"]:
            c.stop()
            problems.append("child did not start")
            break
        tries += 1
        e = dict(os.environ)
        e.pop("PT_FORCE_BACKEND", None)
        p = subprocess.Popen([pt, "map", "--json", str(c.pid)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=e)
        time.sleep(delay)
        c.p.kill()
        c.p.wait()
        out, err = p.communicate(timeout=120)
        rc = p.returncode
        doc = parse_json(out)
        if rc not in (0, 1):
            problems.append("delay %g: rc=%d %r" % (delay, rc, err[-300:]))
            continue
        if rc == 0:
            if doc is None or doc.get("complete") is not True or err:
                problems.append("delay %g: rc 0 but incomplete or stderr: %r" % (delay, err))
            continue
        if not one_line(err):
            problems.append("delay %g: rc 1 but stderr not one line: %r" % (delay, err))
            continue
        if doc is None or (validator and list(validator.iter_errors(doc))):
            problems.append("delay %g: rc 1, bad JSON: %r" % (delay, out[:300]))
            continue
        if "error" in doc and "pid" not in doc:
            if not ("no such process" in err or "exited" in err):
                problems.append("delay %g: wrong message %r" % (delay, err))
            continue
        if doc.get("complete") is not False or "exited during the scan" not in err:
            problems.append("delay %g: rc 1 but complete=%r, %r" % (delay, doc.get("complete"),
                                                                 err))
            continue
        if sums_ok(doc):
            problems.append("delay %g: partial output sums wrong" % delay)
            continue
        seen_incomplete = doc
    ok(tries > 0 and not problems, "target exiting during the scan: no crash, exit 0/1, "
       "one clear line (%d tries)" % tries, "\n".join(problems))
    if seen_incomplete is not None:
        ok(seen_incomplete["error"]["errno"] == "ESRCH" and
           len(seen_incomplete["vmas"]) < 40000,
           "interrupted scan: partial VMAs, complete=false, error ESRCH")
    else:
        skip("interrupted scan: partial VMAs, complete=false, error ESRCH",
             "could not time the target's exit inside the scan")


def test_kernel_thread(pt):
    """A kernel thread (kthreadd, pid 2) has no user memory: said so, exit 1."""
    try:
        with open("/proc/2/stat") as f:
            flags = int(f.read().rsplit(")", 1)[1].split()[6])
    except (OSError, IndexError, ValueError):
        flags = 0
    if not flags & 0x00200000:
        skip("map of a kernel thread", "pid 2 is not a kernel thread here")
        return
    rc, out, err = run(pt, ["map", "2"])
    ok(rc == 1 and one_line(err) and "kernel thread" in err and out == "",
       "map 2 (kthreadd): exit 1, one line saying it is a kernel thread", "rc=%d %r" % (rc, err))


def test_output_errors(pt):
    """Output that cannot be written is a runtime error: exit 1, one line."""
    cases = (["check"], ["check", "--json"], ["map", "self"], ["map", "--json", "self"],
             ["--version"])
    for args in cases:
        with open("/dev/full", "w") as full:
            p = subprocess.run([pt] + args, stdout=full, stderr=subprocess.PIPE, text=True,
                               timeout=120)
        ok(p.returncode == 1 and one_line(p.stderr) and "standard output" in p.stderr,
           "%s > /dev/full: exit 1, one line" % " ".join(args),
           "rc=%d %r" % (p.returncode, p.stderr))
    # stdout closed (`>&-`): the first write fails with EBADF
    p = subprocess.run(["sh", "-c", 'exec "$0" check >&-', pt], stderr=subprocess.PIPE,
                       text=True, timeout=120)
    ok(p.returncode == 1 and one_line(p.stderr), "check >&-: exit 1, one line",
       "rc=%d %r" % (p.returncode, p.stderr))


def main():
    pt = pagetrack_binary(__file__)
    # schema, then per test_*() below, in order
    # basics, output errors, kernel thread, check, page size, errors, layout, odd path, exit
    plan(1 + 13 + 6 + 1 + 7 + 6 + 12 + N_LAYOUT + 1 + 2)
    validator = schema_validator(SCHEMA, "doc/map.schema.json")

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    test_basics(pt)
    test_output_errors(pt)
    test_kernel_thread(pt)
    test_check(pt)
    test_page_size(pt, validator)
    test_errors(pt, validator)
    test_layout(pt, validator)
    test_odd_path(pt)
    test_exit_during_scan(pt, validator)
    done()


if __name__ == "__main__":
    main()
