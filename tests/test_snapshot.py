#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""End-to-end tests of `pagetrack snapshot` and `pagetrack image` (TAP).

Usage: test_snapshot.py BUILD_DIR   (BUILD_DIR/tools/pagetrack and
BUILD_DIR/tests/snaptarget)

The target is tests/snaptarget.c: one process holding every kind of memory
(private anon with data, zeros and holes, THP, shared anon, memfd, SysV
shm, a /dev/shm file, a private file mapping with COW pages, a PROT_NONE
area with data, zero pages, guard pages, swapped pages), driven by
commands on stdin.  It keeps an independent log of what it wrote (`write`
answers the pages), dumps the content of its pages (`dump`: crc32 per
page) and runs a deterministic writer (`live`) whose state after exactly
k writes can be recomputed, which proves that an image equals the memory
at one instant.

Sections (the plan is fixed; a section that cannot run is skipped whole,
with its reason):
  target   the target alone: layout, writes, dump, live writer, pageout
  usage    exit codes of bad calls
  chain    a full snapshot and three --parent layers with known writes
           between them: verify, verify PID, diff, extract, show, core;
           verify PID after more writes lists them
  corrupt  truncation, bit flips (also with BUILD_DIR/../build-asan's
           pagetrack when built), missing/wrong parent, --force
  live     a frozen snapshot while the target writes; --live at 10% and
           50% of the measured copy rate
  swap     residency after a snapshot of a half-swapped target, --no-evict
  kill     pagetrack SIGKILLed while the target is frozen
Env: PT_TEST_SNAP_MB (default 1024) the size of the swap test's region;
PT_TEST_TIMEOUT the time budget (s, default 600): a section that would
start after 85% of it is skipped.
"""
import bisect
import re
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from taplib import (BUDGET, T0, Section, diag, done, over_budget, plan, skip_all,  # noqa: E402
                    skip_rest, t_ok, t_skip)
from snaplib import (PS, ZERO_CRC, Swap, Target, free_pid, kb, live_check, mix,  # noqa: E402
                     smaps_swap, within)

SNAP_MB = int(os.environ.get("PT_TEST_SNAP_MB", "0") or 0) or 1024
NOT_BUILT = "snapshot command not built"
REPORT_KEYS = ("pause_ms", "rounds", "bytes_copied", "bytes_stored", "pages_data", "pages_zero",
               "pages_hole", "pages_unchanged", "pages_unreadable", "pages_swapped_in",
               "pages_evicted", "duration_ms", "layers", "deltas", "file")
SHOW_KEYS = ("file", "version", "flags", "pid", "comm", "seq", "parent", "areas", "objects",
             "pages", "frames", "file_size", "frame_bytes", "chain")
AREA_KEYS = ("start", "end", "prot", "kind", "path", "delta", "object", "pages")
OBJECT_KEYS = ("name", "kind", "size", "stored", "pages")
SECTIONS = (("target", 11), ("usage", 2), ("chain", 24), ("corrupt", 8), ("live", 8),
            ("swap", 4), ("kill", 3), ("core", 6), ("errors", 4), ("rseq", 3))


# ---------------------------------------------------------------- helpers
def env():
    e = dict(os.environ)
    e.pop("PT_FORCE_TRACKER", None)
    e.pop("PT_FORCE_BACKEND", None)
    return e


PT = None


def run(*args, timeout=300, binary=None):
    """pagetrack ARGS: (exit status, stdout, stderr); a call that outlives
    @timeout or the time budget raises (its section fails the rest)."""
    left = max(10, BUDGET * 0.95 - (time.time() - T0))
    e = env()
    if binary:	# the ASan build: its errors as exit codes, as run-tests.sh sets them
        e["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:exitcode=99"
        e["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1:exitcode=98"
    p = subprocess.run([binary or PT] + [str(a) for a in args], capture_output=True, text=True,
                       env=e, timeout=min(timeout, left))
    return p.returncode, p.stdout, p.stderr


def one_line(s):
    return len(s.strip().splitlines()) == 1 and s.startswith("pagetrack: ")


def snap(t, path, *extra, timeout=600):
    """`snapshot --json`: (rc, report or None, stderr)."""
    rc, out, err = run("snapshot", t.pid, "-o", path, "--json", *extra, timeout=timeout)
    try:
        rep = json.loads(out)
    except ValueError:
        rep = None
    return rc, rep, err


def show(path):
    rc, out, err = run("image", "show", "--json", path)
    return json.loads(out) if rc == 0 else None


def extract(img, region, tmp):
    """The content of @region (an area, or its object when shared) in @img."""
    out = os.path.join(tmp, "extract.bin")
    if region["shared"]:
        args = ("--object", region["path"])
    else:
        args = ("--area", region["addr"])
    rc, _, err = run("image", "extract", img, *args, "-o", out)
    if rc != 0:
        return None, err.strip()
    with open(out, "rb") as f:
        data = f.read()
    os.unlink(out)
    return data, ""


def file_page(path, i):
    with open(path, "rb") as f:
        f.seek(i * PS)
        return f.read(PS)


def image_vs_dump(img, t, dumpd, tmp, names=None):
    """Differences between the image's content and the target's dump."""
    bad = []
    for r in t.layout["regions"]:
        if names and r["name"] not in names:
            continue
        data, err = extract(img, r, tmp)
        if data is None:
            bad.append("%s: extract failed: %s" % (r["name"], err))
            continue
        if len(data) < r["size"]:
            bad.append("%s: extract gave %d bytes, area %d" % (r["name"], len(data), r["size"]))
            continue
        for i in range(r["size"] // PS):
            a = r["a"] + i * PS
            name, val = dumpd.get(a, (r["name"], "absent"))
            if val in ("guard", "unreadable", "absent"):
                continue
            want = ZERO_CRC if val == "hole" else val
            page = data[i * PS:(i + 1) * PS]
            got = "%08x" % zlib.crc32(page)
            if got == want:
                continue
            # a private file page not copied-on-write: the image holds a
            # hole (zeros, "the content is the file's")
            if r["kind"] == "file" and got == ZERO_CRC and \
                    "%08x" % zlib.crc32(file_page(r["path"], i)) == want:
                continue
            bad.append("%s page %d (0x%x): image %s, memory %s" % (r["name"], i, a, got, want))
    return bad


# ---------------------------------------------------------------- target
def sec_target(exe, tmp, swap):
    t = Target(exe, tmp)
    try:
        names = {"anon", "thp", "shanon", "memfd", "sysv", "devshm", "filepriv", "protnone",
                 "zeropage", "guard", "live"}
        t_ok(names <= set(t.reg) and len(t.layout["threads"]) == 3,
             "layout lists every region and 3 threads", json.dumps(t.layout)[:1500])

        maps = {}
        with open("/proc/%d/maps" % t.pid) as f:
            for line in f:
                parts = line.split(None, 5)
                s, e = (int(x, 16) for x in parts[0].split("-"))
                maps[s] = (e, parts[1], parts[5].strip() if len(parts) > 5 else "")
        bad = []
        for r in t.layout["regions"]:
            m = maps.get(r["a"])
            if not m or m[0] != r["a"] + r["size"] or (r["path"] or "") != m[2]:
                bad.append("%s at %s: maps has %s" % (r["name"], r["addr"], m))
        want = {"memfd": "/memfd:snap-memfd (deleted)", "sysv": "/SYSV", "devshm": "/dev/shm/"}
        for n, pfx in want.items():
            if not (t.reg[n]["path"] or "").startswith(pfx):
                bad.append("%s path %r" % (n, t.reg[n]["path"]))
        t_ok(not bad, "every region is one VMA of /proc/PID/maps, objects named", "\n".join(bad))

        with open("/proc/%d/smaps" % t.pid) as f:
            sm = f.read()
        at = sm.find("%x-" % t.reg["thp"]["a"])
        thp = sm[at:].split("AnonHugePages:", 1)[1].split()[0] if at >= 0 else "?"
        diag("target: the thp region holds %s kB of huge pages" % thp)
        tasks = os.listdir("/proc/%d/task" % t.pid)
        t_ok(sorted(int(x) for x in tasks) == sorted(t.layout["threads"]),
             "the threads of the layout are the target's tasks", "%s" % tasks)

        d0 = t.dump()
        w = [int(a, 16) for a in t.cmd("write 7 64")["written"]]
        d1 = t.dump()
        changed = {a for a in d1 if d1[a] != d0.get(a)}
        writable = set()
        for r in t.layout["regions"]:
            if r["writable"]:
                g = {int(x, 16) for x in r["guard_pages"]}
                writable |= {r["a"] + i * PS for i in range(r["size"] // PS)} - g
        t_ok(len(w) > 32 and set(w) <= writable and changed == set(w),
             "write: distinct writable pages, exactly the pages the dump sees change",
             "written %d, changed %d, missing %s, extra %s" % (
                 len(w), len(changed), sorted(hex(a) for a in set(w) - changed)[:5],
                 sorted(hex(a) for a in changed - set(w))[:5]))

        # the dump against the test's own reads of the target
        bad = []
        with open("/proc/%d/mem" % t.pid, "rb", buffering=0) as mem:
            for r in t.layout["regions"]:
                if r["shared"]:
                    path = "/proc/%d/map_files/%x-%x" % (t.pid, r["a"], r["a"] + r["size"])
                    with open(path, "rb") as f:
                        data = f.read(r["size"])
                for i in range(r["size"] // PS):
                    a = r["a"] + i * PS
                    val = d1[a][1]
                    if val in ("hole", "guard"):
                        continue
                    if r["shared"]:
                        page = data[i * PS:(i + 1) * PS]
                    else:
                        mem.seek(a)
                        page = mem.read(PS)
                    if "%08x" % zlib.crc32(page) != val:
                        bad.append("%s page %d: dump %s" % (r["name"], i, val))
        kinds = {}
        for _, (n, v) in d1.items():
            kinds.setdefault(n, set()).add(v if v in ("hole", "guard", "unreadable") else
                                           "zero" if v == ZERO_CRC else "data")
        for n, want in (("anon", {"hole", "zero", "data"}), ("protnone", {"data"}),
                        ("zeropage", {"zero"}), ("memfd", {"data", "hole"})):
            if kinds.get(n) != want:
                bad.append("%s: page kinds %s, expected %s" % (n, kinds.get(n), want))
        t_ok(not bad, "dump equals the target's memory read by the test (mem, map_files)",
             "\n".join(bad[:20]))

        g = t.reg["guard"]
        if t.layout["guard_ok"]:
            gp = {int(x, 16) for x in g["guard_pages"]}
            t_ok(gp and all(d1[a][1] == "guard" for a in gp) and
                 all(d1[g["a"] + i * PS][1] != "guard" for i in range(16)
                     if g["a"] + i * PS not in gp), "guard pages installed and dumped as such")
        else:
            t_skip("guard pages", "MADV_GUARD_INSTALL not supported by this kernel")

        # the live writer and the K* check: must find exactly the writes
        # done, and must fail on a copy with one wrong page
        lv = t.reg["live"]
        npages = lv["size"] // PS
        t.cmd("live 40")
        t_end = time.time() + 30
        while t.cmd("progress")["k"] < 2000 and time.time() < t_end:
            time.sleep(0.02)
        k = t.cmd("stop")["k"]
        with open("/proc/%d/mem" % t.pid, "rb", buffering=0) as mem:
            mem.seek(lv["a"])
            data = mem.read(lv["size"])
        K, bad = live_check(data, npages)
        t_ok(k > 0 and K == k and not bad, "live writer: the state after exactly k writes",
             "k %d, K %d\n%s" % (k, K, "\n".join(bad[:10])))
        c1 = t.cmd("check")
        pk = mix(k) % npages
        with open("/proc/%d/mem" % t.pid, "r+b", buffering=0) as mem:
            mem.seek(lv["a"] + pk * PS + 8)
            mem.write(b"\xff")
            c2 = t.cmd("check")
            mem.seek(lv["a"] + pk * PS + 8)
            mem.write(data[pk * PS + 8:pk * PS + 9])
        c3 = t.cmd("check")
        t_ok(c1 == {"k": k, "bad": 0, "first_bad": "0x0"} and c2["bad"] == 1 and
             int(c2["first_bad"], 16) == lv["a"] + pk * PS and c3["bad"] == 0,
             "the target's own check: clean, then one page changed from outside found",
             "%s %s %s" % (c1, c2, c3))
        victim = mix(max(1, k // 2)) % npages
        broken = bytearray(data)
        broken[victim * PS + 100] ^= 1
        K2, bad2 = live_check(bytes(broken), npages)
        stale = bytearray(data)		# a page one write behind
        pk = mix(k) % npages
        stale[pk * PS:(pk + 1) * PS] = bytes(PS)
        K3, bad3 = live_check(bytes(stale), npages)
        t_ok(bad2 and (bad3 or K3 != k), "live check fails on a flipped bit and on a stale page",
             "%s / %s" % (bad2[:2], bad3[:2]))

        if swap.ok:
            s0 = kb(t.status(), "VmSwap")
            n = t.cmd("pageout")["pages"]
            s1 = kb(t.status(), "VmSwap")
            t_ok(s1 - s0 >= (t.reg["anon"]["size"] // 2 // 1024) * 0.5,
                 "pageout moves private pages to swap", "VmSwap %d -> %d kB (%d pages asked)"
                 % (s0, s1, n))
        else:
            t_skip("pageout", swap.why)
    finally:
        files = list(t.files)
        rc = t.quit()
    t_ok(rc == 0 and not any(os.path.exists(f) for f in files), "quit: exit 0, files removed",
         "rc %s" % rc)


# ---------------------------------------------------------------- usage
def sec_usage(tmp):
    rc, out, err = run("snapshot")
    t_ok(rc == 2, "snapshot without arguments: exit 2", "rc %d %s" % (rc, err))
    f = os.path.join(tmp, "nopid.img")
    rc, out, err = run("snapshot", free_pid(), "-o", f, "--json")
    try:
        doc = json.loads(out)
    except ValueError:
        doc = {}
    # doc/cli.md: {"error": {"message", "errno", "exit_code"}}, as every command
    e = doc.get("error")
    t_ok(rc == 1 and isinstance(e, dict) and isinstance(e.get("message"), str) and
         e.get("exit_code") == 1 and not os.path.exists(f),
         "snapshot of a missing process: exit 1, {\"error\"}, no file",
         "rc %d out %r err %r" % (rc, out[:200], err[:200]))


# ---------------------------------------------------------------- chain
def covered(runs, a):
    i = bisect.bisect_right([s for s, _ in runs], a) - 1
    return i >= 0 and runs[i][0] <= a < runs[i][1]


def sec_chain(exe, tmp, swap):
    t = Target(exe, tmp)
    try:
        chain_body(t, tmp, swap)
    finally:
        t.quit()


def chain_body(t, tmp, swap):
    if swap.ok:
        t.cmd("pageout")	# swapped pages, private and shared, in the base
    base = os.path.join(tmp, "chain-0.img")
    rc, rep, err = snap(t, base)
    mode = os.stat(base).st_mode & 0o777 if os.path.exists(base) else None
    t_ok(rc == 0 and rep and all(k in rep for k in REPORT_KEYS) and rep["bytes_copied"] > 0 and
         rep["deltas"] == ["full"] and rep["layers"] == 1 and mode == 0o600,
         "full snapshot: exit 0, report complete, file 0600",
         "rc %d mode %s err %s\nreport %s" % (rc, oct(mode or 0), err.strip(), rep))
    if rc != 0:
        skip_rest("the full snapshot failed")
        return

    doc = show(base)
    bad = []
    if not doc:
        bad.append("image show failed")
    else:
        if "frozen" not in doc.get("flags", []) or doc.get("pid") != t.pid or \
                doc.get("comm") != "snaptarget":
            bad.append("flags %s pid %s comm %s" % (doc.get("flags"), doc.get("pid"),
                                                     doc.get("comm")))
        miss = [k for k in SHOW_KEYS if k not in doc]
        miss += ["areas[].%s" % k for k in AREA_KEYS if doc.get("areas") and
                 any(k not in a for a in doc["areas"])]
        miss += ["objects[].%s" % k for k in OBJECT_KEYS if doc.get("objects") and
                 any(k not in o for o in doc["objects"])]
        if miss:
            bad.append("keys missing: %s" % miss)
        areas = {int(a["start"], 16): a for a in doc.get("areas", [])}
        objs = doc.get("objects", [])
        for r in t.layout["regions"]:
            a = areas.get(r["a"])
            if not a or int(a["end"], 16) != r["a"] + r["size"]:
                bad.append("%s: no area %s" % (r["name"], r["addr"]))
            elif r["shared"] and (a.get("object") is None or a["object"] >= len(objs)):
                bad.append("%s: no object" % r["name"])
            elif r["shared"]:
                name = objs[a["object"]]["name"]
                if name.replace(" (deleted)", "") != r["path"].replace(" (deleted)", ""):
                    bad.append("%s: object %r, maps %r" % (r["name"], name, r["path"]))
        pages = doc.get("pages", {})
        for k in ("data", "zero", "hole"):
            if not pages.get(k):
                bad.append("no %s pages: %s" % (k, pages))
    t_ok(not bad, "image show: frozen, every region an area, objects by name", "\n".join(bad))

    rc, out, err = run("image", "verify", base)
    t_ok(rc == 0, "image verify (full)", err)
    rc, out, err = run("image", "verify", base, t.pid, timeout=600)
    t_ok(rc == 0, "image verify FILE PID (full)", out[-1000:] + err)

    d = t.dump()
    bad = image_vs_dump(base, t, d, tmp)
    t_ok(not bad, "extract of every area and object equals the target's memory", "\n".join(bad))

    m = t.reg["memfd"]
    data, e1 = extract(base, m, tmp)
    alt = dict(m, path=m["path"].replace(" (deleted)", ""))
    data2, e2 = extract(base, alt, tmp)
    crcs = ["%08x" % zlib.crc32(data[i * PS:(i + 1) * PS]) for i in range(m["size"] // PS)] \
        if data else []
    want = [ZERO_CRC if d[m["a"] + i * PS][1] == "hole" else d[m["a"] + i * PS][1]
            for i in range(m["size"] // PS)]
    t_ok(data is not None and crcs == want and data2 == data,
         "extract --object of the memfd (with or without \" (deleted)\") equals its content",
         "%s %s" % (e1, e2))

    prev = base
    for layer in (1, 2, 3):
        written = [int(a, 16) for a in t.cmd("write %d 64" % (100 + layer))["written"]]
        path = os.path.join(tmp, "chain-%d.img" % layer)
        rc, rep, err = snap(t, path, "--parent", prev)
        t_ok(rc == 0 and rep and set(rep.get("deltas", [])) <= {"tracked", "compared"} and
             rep.get("deltas") and rep.get("pages_unchanged", 0) > 0,
             "layer %d (--parent): exit 0, a delta, unchanged pages" % layer,
             "rc %d err %s\nreport %s" % (rc, err.strip(), rep))
        if rc != 0:
            skip_rest("layer %d failed" % layer)
            return
        rc, out, err = run("image", "verify", path)
        t_ok(rc == 0, "layer %d: image verify" % layer, err)
        rc, out, err = run("image", "verify", path, t.pid, timeout=600)
        t_ok(rc == 0, "layer %d: image verify FILE PID" % layer, out[-1000:] + err)
        rc, out, err = run("image", "diff", "--json", prev, path)
        try:
            doc = json.loads(out)
            runs = sorted((int(c["start"], 16), int(c["end"], 16)) for c in doc["changed"])
        except (ValueError, KeyError, TypeError):
            doc, runs = {}, []
        missing = [hex(a) for a in written if not covered(runs, a)]
        listed = sum((e - s) // PS for s, e in runs)
        fp = listed - (len(written) - len(missing))
        t_ok(rc == 0 and not missing and doc.get("pages_changed") == listed,
             "layer %d: diff lists every written page (%d)" % (layer, len(written)),
             "rc %d missing %d: %s\npages_changed %s, runs %d pages %s" % (
                 rc, len(missing), missing[:8], doc.get("pages_changed"), listed, err.strip()))
        diag("layer %d: diff: %d pages written, %d listed, %d false positives" % (
            layer, len(written), listed, fp))
        d = t.dump()
        bad = image_vs_dump(path, t, d, tmp)
        t_ok(not bad, "layer %d: extract of every area equals the target's memory" % layer,
             "\n".join(bad))
        prev = path

    doc = show(prev) or {}
    chain = doc.get("chain", [])
    t_ok(len(chain) == 4 and "has_parent" in doc.get("flags", []) and
         os.path.basename(str(doc.get("parent"))) == "chain-2.img",
         "image show of layer 3: a chain of 4, parent layer 2",
         "chain %s flags %s parent %s" % (chain, doc.get("flags"), doc.get("parent")))

    # verify FILE PID can fail: pages written after the snapshot are listed
    written = [int(a, 16) for a in t.cmd("write 200 16")["written"]]
    rc, out, err = run("image", "verify", prev, t.pid, timeout=600)
    runs = []
    for line in (out + err).splitlines():
        m = re.match(r"^(0x[0-9a-f]+)-(0x[0-9a-f]+) differs$", line.strip())
        if m:
            runs.append((int(m.group(1), 16), int(m.group(2), 16)))
    runs.sort()
    missing = [hex(a) for a in written if not covered(runs, a)]
    t_ok(rc == 1 and runs and not missing,
         "image verify FILE PID after %d more writes: exit 1, every written page listed"
         % len(written), "rc %d, %d runs, missing %s\n%s" % (rc, len(runs), missing[:8],
                                                             (out + err)[-800:]))

    core = os.path.join(tmp, "chain.core")
    rc, out, err = run("image", "core", prev, "-o", core)
    magic = open(core, "rb").read(4) if os.path.exists(core) else b""
    t_ok(rc == 0 and magic == b"\x7fELF", "image core of layer 3: an ELF file", err)
    if os.path.exists(core):
        os.unlink(core)


# ---------------------------------------------------------------- corrupt
def no_crash(args, binary=None):
    """(fine, detail): exit 1 with one line on stderr, no signal."""
    rc, out, err = run(*args, timeout=120, binary=binary)
    return rc == 1 and one_line(err), "rc %d stderr %r" % (rc, err[:300])


def asan_binary():
    """BUILD_DIR/../build-asan/tools/pagetrack (make asan), or None."""
    p = os.path.join(os.path.dirname(os.path.dirname(PT)), os.pardir, "build-asan", "tools",
                     "pagetrack")
    return os.path.normpath(p) if os.access(p, os.X_OK) else None


def sec_corrupt(exe, tmp):
    t = Target(exe, tmp)
    u = Target(exe, tmp)
    try:
        corrupt_body(t, u, tmp)
    finally:
        t.quit()
        u.quit()


def corrupt_body(t, u, tmp):
    base = os.path.join(tmp, "c-0.img")
    l1 = os.path.join(tmp, "c-1.img")
    l2 = os.path.join(tmp, "c-2.img")
    other = os.path.join(tmp, "c-other.img")
    rcs = [snap(t, base)[0]]
    t.cmd("write 1 32")
    rcs.append(snap(t, l1, "--parent", base)[0])
    t.cmd("write 2 32")
    rcs.append(snap(t, l2, "--parent", l1)[0])
    rcs.append(snap(u, other)[0])
    if rcs != [0, 0, 0, 0]:
        diag("snapshots for the corruption tests: exit %s" % rcs)
        skip_rest("the snapshots to corrupt failed")
        return
    bad_file = os.path.join(tmp, "c-bad.img")
    size = os.path.getsize(l1)
    blob = open(l1, "rb").read()
    offs = sorted({0, 1, 4, 8, 16, 31, 32, 63, 64, 100, 127, 128, 255, 256, 511, 512, 4095,
                   4096, size // 2, size - 4096, size - 64, size - 32, size - 16, size - 8,
                   size - 1} | {size * i // 23 for i in range(1, 23)})
    offs = [o for o in offs if 0 <= o < size]
    fails = []
    for o in offs:
        with open(bad_file, "wb") as f:
            f.write(blob[:o])
        for cmd in (("image", "verify", bad_file), ("image", "show", "--json", bad_file)):
            fine, why = no_crash(cmd)
            if not fine:
                fails.append("%s at %d: %s" % (cmd[1], o, why))
    t_ok(not fails, "truncated at %d offsets: verify and show exit 1, one line" % len(offs),
         "\n".join(fails))

    fails = []
    step = max(1, size // 61)
    for n, o in enumerate(range(3, size, step)):
        b = bytearray(blob)
        b[o] ^= 1 << (n % 8)
        with open(bad_file, "wb") as f:
            f.write(b)
        fine, why = no_crash(("image", "verify", bad_file))
        if not fine:
            fails.append("bit %d of byte %d: %s" % (n % 8, o, why))
    t_ok(not fails, "bit flips at %d offsets: verify exits 1, one line" % len(range(3, size, step)),
         "\n".join(fails))
    asan = asan_binary()
    if asan:
        fails = []
        for n, o in enumerate(offs[::3]):
            b = bytearray(blob[:o] if n % 2 else blob)
            if not n % 2:
                b[o] ^= 0x10
            with open(bad_file, "wb") as f:
                f.write(b)
            for cmd in (("image", "verify", bad_file), ("image", "show", "--json", bad_file)):
                if cmd[1] == "show" and not n % 2:
                    # show validates the layout, not the frames (they are
                    # checked when read): a flip in a frame may pass it, but
                    # must never crash it or the sanitizers
                    rc, out, err = run(*cmd, timeout=120, binary=asan)
                    fine = rc == 0 or (rc == 1 and one_line(err))
                    why = "rc %d stderr %r" % (rc, err[:300])
                else:
                    fine, why = no_crash(cmd, binary=asan)
                if not fine:
                    fails.append("%s %s at %d: %s" % (cmd[1], "cut" if n % 2 else "flip", o, why))
        t_ok(not fails, "the same under ASan (%s): exit 1, one line (show of a flipped frame: "
             "exit 0 too)" % asan, "\n".join(fails))
    else:
        t_skip("truncation and bit flips under ASan", "no ASan build beside BUILD_DIR "
               "(build-asan: make asan)")
    os.unlink(bad_file)

    f = os.path.join(tmp, "c-np.img")
    rc, out, err = run("snapshot", t.pid, "-o", f, "--parent", os.path.join(tmp, "none.img"))
    t_ok(rc == 1 and one_line(err) and not os.path.exists(f),
         "snapshot --parent MISSING: exit 1, one line, no file", "rc %d %r" % (rc, err))

    moved = l1 + ".moved"
    os.rename(l1, moved)
    fine, why = no_crash(("image", "verify", l2))
    os.rename(moved, l1)
    t_ok(fine, "verify of a layer whose parent is missing: exit 1, one line", why)

    saved = l1 + ".saved"
    os.rename(l1, saved)
    shutil.copyfile(other, l1)
    fine, why = no_crash(("image", "verify", l2))
    os.unlink(l1)
    os.rename(saved, l1)
    t_ok(fine, "verify of a layer whose parent was replaced by another image: exit 1, one line",
         why)
    # image-format.md, "Chains": with COMPARED deltas pid and boot id are
    # informative, so a process may be stored against another's image; what
    # matters is that the result equals this process, page by page
    rc, out, err = run("snapshot", t.pid, "-o", f, "--parent", other, "--json")
    try:
        rep = json.loads(out)
    except ValueError:
        rep = {}
    vrc, vout, verr = run("image", "verify", f, t.pid)
    t_ok(rc == 0 and "compared" in rep.get("deltas", []) and vrc == 0,
         "snapshot --parent (another process's image): compared, and equal to this process",
         "rc %d %r; verify rc %d %r %r" % (rc, err, vrc, vout[-300:], verr))
    if os.path.exists(f):
        os.unlink(f)

    before = open(base, "rb").read()
    rc, out, err = run("snapshot", t.pid, "-o", base)
    same = open(base, "rb").read() == before
    rc2, out2, err2 = run("snapshot", t.pid, "-o", base, "--force")
    rc3 = run("image", "verify", base)[0]
    t_ok(rc == 1 and one_line(err) and same and rc2 == 0 and rc3 == 0,
         "existing FILE: exit 1 and unchanged without --force, replaced with --force",
         "rc %d %r same %s; --force rc %d %r; verify %d" % (rc, err, same, rc2, err2, rc3))


# ---------------------------------------------------------------- live
def sec_live(exe, tmp):
    t = Target(exe, tmp, "--live-pages", "16384")	# 64 MiB
    try:
        live_body(t, tmp)
    finally:
        t.quit()


def live_body(t, tmp):
    lv = t.reg["live"]
    npages = lv["size"] // PS
    # populate the live region: every page written (bounded)
    t.cmd("live 2000")
    t_end = time.time() + 60
    while t.cmd("progress")["k"] < 6 * npages and time.time() < t_end:
        time.sleep(0.05)
    t.cmd("stop")
    f = os.path.join(tmp, "rate.img")
    rc, rep, err = snap(t, f)
    rate = rep["bytes_copied"] / max(rep["duration_ms"], 1) * 1000 if rc == 0 and rep else 0
    t_ok(rc == 0 and rate > 0, "frozen snapshot measures the copy rate: %.0f MB/s" % (rate / 1e6),
         "rc %d %s report %s" % (rc, err.strip(), rep))
    if os.path.exists(f):
        os.unlink(f)
    if not rate:
        skip_rest("no copy rate")
        return
    # the default (frozen) mode with the writer running: one instant too
    f = os.path.join(tmp, "frozen-running.img")
    t.cmd("live %.1f" % max(1.0, rate * 0.5 / 1e6))
    k0 = t.cmd("progress")["k"]
    rc, rep, err = snap(t, f)
    k_after = t.cmd("progress")["k"]
    t.cmd("stop")
    data, e = extract(f, lv, tmp) if rc == 0 else (None, err.strip())
    K, bad = live_check(data, npages) if data else (0, [e])
    t_ok(rc == 0 and not bad and k0 <= K <= k_after,
         "frozen snapshot with the writer running: the memory after exactly K=%d writes" % K,
         "rc %d K %d, writes %d..%d\n%s" % (rc, K, k0, k_after, "\n".join(bad[:15])))
    if os.path.exists(f):
        os.unlink(f)
    for pct in (10, 50):
        mbps = max(1.0, rate * pct / 100 / 1e6)
        f = os.path.join(tmp, "live-%d.img" % pct)
        t.cmd("live %.1f" % mbps)
        k0 = t.cmd("progress")["k"]
        t_end = time.time() + 10
        while t.cmd("progress")["k"] < k0 + 500 and time.time() < t_end:
            time.sleep(0.01)
        rc, rep, err = snap(t, f, "--live", "--max-rounds", "10")
        k_after = t.cmd("progress")["k"]
        t.cmd("stop")
        flags = (show(f) or {}).get("flags", []) if rc == 0 else []
        layers = [x for x in os.listdir(tmp) if x.startswith("live-%d.img.live-" % pct)]
        t_ok(rc == 0 and rep and isinstance(rep.get("pause_ms"), (int, float)) and
             rep.get("rounds", 0) >= 1 and layers and "frozen" in flags and
             rep.get("layers") == len(layers) + 1,
             "--live at %d%% (%.0f MB/s): exit 0, rounds, layers, pause %s ms" % (
                 pct, mbps, rep.get("pause_ms") if rep else None),
             "rc %d %s\nreport %s\nlayers %s flags %s" % (rc, err.strip(), rep, layers, flags))
        if rc != 0:
            t_skip("--live at %d%%: image at the freeze" % pct, "the snapshot failed")
            t_skip("--live at %d%%: verify" % pct, "the snapshot failed")
            continue
        diag("--live %d%%: pause %s ms, rounds %s, bytes_copied %s, layers %s" % (
            pct, rep.get("pause_ms"), rep.get("rounds"), rep.get("bytes_copied"),
            rep.get("layers")))
        data, e = extract(f, lv, tmp)
        if data is None:
            t_ok(False, "--live at %d%%: image equals the memory at the freeze" % pct, e)
        else:
            K, bad = live_check(data, npages)
            t_ok(not bad and k0 <= K <= k_after,
                 "--live at %d%%: image equals the memory after exactly K=%d writes" % (pct, K),
                 "K %d, writes %d..%d\n%s" % (K, k0, k_after, "\n".join(bad[:15])))
        rc, out, err = run("image", "verify", f)
        t_ok(rc == 0, "--live at %d%%: image verify (the chain of live layers)" % pct, err)


# ---------------------------------------------------------------- swap
def sec_swap(exe, tmp, swap):
    if not swap.ok:
        skip_rest(swap.why)
        return
    mb = big_mb()
    t = Target(exe, tmp, "--big", str(mb), "--live-pages", "1")
    try:
        swap_body(t, tmp)
    finally:
        t.quit()


def big_mb():
    """PT_TEST_SNAP_MB, or less when memory is short."""
    mb = SNAP_MB
    try:
        with open("/proc/meminfo") as f:
            avail = int([x for x in f if x.startswith("MemAvailable")][0].split()[1]) // 1024
    except (OSError, IndexError):
        avail = 0
    if avail and mb * 3 > avail:
        mb = max(64, avail // 3)
        diag("big region: %d MiB (PT_TEST_SNAP_MB %d, %d MiB available)" % (mb, SNAP_MB, avail))
    return mb


def swap_body(t, tmp):
    shm = t.reg["bigshm"]["a"]
    t.cmd("pageout")
    s0, o0 = t.status(), smaps_swap(t.pid, shm)
    f = os.path.join(tmp, "swap.img")
    rc, rep, err = snap(t, f)
    s1, o1 = t.status(), smaps_swap(t.pid, shm)
    diag("swap: before VmSwap %s RssAnon %s RssShmem %s, shared object swap %d kB; after "
         "%s %s %s, %d kB" % (s0["VmSwap"], s0["RssAnon"], s0["RssShmem"], o0, s1["VmSwap"],
                              s1["RssAnon"], s1["RssShmem"], o1))
    if rc != 0:
        t_ok(False, "snapshot of the half-swapped target", "rc %d %s" % (rc, err))
        skip_rest("the snapshot failed")
        return
    t_ok(kb(s0, "VmSwap") > 0 and within(kb(s0, "VmSwap"), kb(s1, "VmSwap")),
         "VmSwap after a snapshot within 2% of before")
    t_ok(within(kb(s0, "RssAnon"), kb(s1, "RssAnon")) and
         within(kb(s0, "RssShmem"), kb(s1, "RssShmem")) and o0 > 0 and within(o0, o1),
         "RssAnon, RssShmem and the shared object's swap (smaps) within 2% of before")
    t_ok(rep.get("pages_swapped_in", 0) > 0 and 0 < rep.get("pages_evicted", 0) <=
         rep.get("pages_swapped_in", 0), "the report counts pages swapped in and evicted",
         "%s" % rep)
    os.unlink(f)

    t.cmd("pageout")	# whatever the first snapshot left resident
    s0, o0 = t.status(), smaps_swap(t.pid, shm)
    rc, rep, err = snap(t, f, "--no-evict")
    s1, o1 = t.status(), smaps_swap(t.pid, shm)
    grew = (kb(s0, "VmSwap") - kb(s1, "VmSwap") + o0 - o1) // (PS // 1024)
    diag("--no-evict: VmSwap %s -> %s, shared object swap %d -> %d kB" % (
        s0["VmSwap"], s1["VmSwap"], o0, o1))
    t_ok(rc == 0 and rep.get("pages_evicted") == 0 and grew > 0 and
         rep.get("pages_swapped_in", 0) >= grew * 0.98,
         "--no-evict: pages_evicted 0, pages_swapped_in covers the growth (%d pages)" % grew,
         "rc %d %s report %s" % (rc, err.strip(), rep))
    if os.path.exists(f):
        os.unlink(f)


# ---------------------------------------------------------------- kill
def gdb_batch(exe, core, *cmds):
    args = ["gdb", "-batch", "-nx", "-q"]
    for c in cmds:
        args += ["-ex", c]
    r = subprocess.run(args + [exe, core], capture_output=True, text=True, timeout=180)
    return r.stdout + r.stderr


def sec_core(exe, tmp):
    """snapshot --core and image core: gdb opens them (issue 10, section 4)."""
    if not shutil.which("gdb"):
        skip_rest("gdb not installed (scripts/deps.sh test installs it)")
        return
    t = Target(exe, tmp)
    try:
        core_body(t, exe, tmp)
    finally:
        t.quit()


def core_body(t, exe, tmp):
    f = os.path.join(tmp, "core.img")
    core = os.path.join(tmp, "core.elf")
    rc, out, err = run("snapshot", t.pid, "-o", f, "--core", core)
    with open(core, "rb") if os.path.exists(core) else open(os.devnull, "rb") as c:
        magic = c.read(4)
    t_ok(rc == 0 and magic == b"\x7fELF", "snapshot --core: an ELF core file",
         "rc %d %r" % (rc, err))
    threads = t.layout.get("threads", [])
    o = gdb_batch(exe, core, "info threads", "thread apply all bt", "print/x snap_global",
                  "print/x snap_heap->magic", "print snap_heap->text")
    tids = re.findall(r"LWP (\d+)", o)
    t_ok(sorted(set(int(x) for x in tids)) == sorted(threads),
         "gdb: every thread of the target (%d) in the core" % len(threads), o[-1500:])
    bts = o.split("\nThread ")
    t_ok(len(bts) - 1 >= len(threads) and "main" in o and "idle_main" in o,
         "gdb: a backtrace per thread, through main and idle_main", o[-1500:])
    t_ok(re.search(r"= 0x5eed5eed12345678", o) is not None,
         "gdb: the global snap_global", o[-800:])
    t_ok(re.search(r"= 0x48ea948ea948ea9\b", o) is not None and
         "snaptarget heap object" in o, "gdb: the heap object snap_heap points to", o[-800:])
    # a live snapshot's frozen layer, through its chain
    g = os.path.join(tmp, "core-live.img")
    core2 = os.path.join(tmp, "core-live.elf")
    rc, out, err = run("snapshot", t.pid, "-o", g, "--live")
    rc2, out2, err2 = run("image", "core", g, "-o", core2)
    o2 = gdb_batch(exe, core2, "print/x snap_global", "info threads") if rc2 == 0 else ""
    t_ok(rc == 0 and rc2 == 0 and "0x5eed5eed12345678" in o2 and
         len(set(re.findall(r"LWP (\d+)", o2))) == len(threads),
         "image core of a --live snapshot: gdb sees the global and every thread",
         "rc %d %d %r %r %s" % (rc, rc2, err, err2, o2[-600:]))
    for x in os.listdir(tmp):
        if x.startswith("core"):
            os.unlink(os.path.join(tmp, x))


def sec_kill(exe, tmp):
    t = Target(exe, tmp, "--big", str(big_mb()), "--live-pages", "1")
    try:
        kill_body(t, tmp)
    finally:
        t.quit()


def kill_body(t, tmp):
    f = os.path.join(tmp, "kill.img")
    before = set(os.listdir(tmp))
    p = subprocess.Popen([PT, "snapshot", str(t.pid), "-o", f], env=env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    caught = False
    t_end = time.time() + 120
    while p.poll() is None and time.time() < t_end:
        try:
            if int(t.status().get("TracerPid", "0")) != 0:	# pagetrack or a helper of its
                caught = True
                break
        except (OSError, ValueError):
            break
        time.sleep(0.0005)
    if caught:
        p.send_signal(signal.SIGKILL)
    elif p.poll() is None:
        p.kill()
    rc = p.wait()
    if not caught:
        diag("kill: pagetrack exit %s before the freeze was seen" % rc)
        skip_rest("the snapshot ended before the target was seen frozen")
        return
    t_ok(rc == -signal.SIGKILL, "pagetrack SIGKILLed while the target is traced")
    states = []
    for tid in os.listdir("/proc/%d/task" % t.pid):
        with open("/proc/%d/task/%s/stat" % (t.pid, tid)) as st:
            states.append(st.read().rsplit(")", 1)[1].split()[0])
    t_ok(t.answers(10) and "t" not in states and "T" not in states,
         "the target runs on (answers, no thread stopped)", "states %s" % states)
    left = set(os.listdir(tmp)) - before
    t_ok(not os.path.exists(f), "no FILE left", "left: %s" % sorted(left))
    if left:
        diag("kill: left in the directory: %s" % sorted(left))
        for x in left:
            if x.startswith("kill.img"):
                os.unlink(os.path.join(tmp, x))


class RseqTarget(Target):
    RSEQ = True


def pin(pid, cpu):
    """Every thread of @pid allowed on @cpu only."""
    for tid in os.listdir("/proc/%d/task" % pid):
        os.sched_setaffinity(int(tid), {cpu})


def sec_rseq(exe, tmp):
    """`image verify FILE PID` leaves out the threads' rseq areas, which the
    kernel rewrites when a thread returns to user mode on another CPU (here
    after a freeze, running no code of its own); a real write still differs."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        skip_rest("one CPU: a thread cannot change CPU")
        return
    t = RseqTarget(exe, tmp)
    try:
        imgs = [os.path.join(tmp, "rseq%d.img" % i) for i in range(4)]
        pin(t.pid, cpus[0])
        rcs = [snap(t, imgs[0])[0], snap(t, imgs[1])[0]]	# the 1st freeze moves them to cpus[0]
        pin(t.pid, cpus[1])
        rcs += [snap(t, imgs[2])[0], snap(t, imgs[3])[0]]	# back in user mode on cpus[1]
        rc, out, err = run("image", "diff", "--json", imgs[1], imgs[3])
        changed = json.loads(out).get("pages_changed", 0) if rc == 0 else -1
        if rcs != [0, 0, 0, 0] or changed < 0:
            t_ok(False, "snapshots and diff of a target with rseq",
                 "rcs %s diff rc %d %s" % (rcs, rc, err))
            skip_rest("no snapshots")
            return
        if changed == 0:
            skip_rest("the kernel did not rewrite any rseq area after the move to CPU %d"
                      % cpus[1])
            return
        t_ok(True, "moved from CPU %d to %d after a freeze, the target changed %d pages "
             "without running code of its own (its rseq areas)" % (cpus[0], cpus[1], changed))
        rc, out, err = run("image", "verify", imgs[1], t.pid)
        t_ok(rc == 0, "image verify of the layer from before the move against the "
             "process: equal, the rseq areas left out", "rc %d %s %s" % (rc, out, err))
        w = t.cmd("write 7 1")["written"]
        rc, out, err = run("image", "verify", imgs[1], t.pid)
        t_ok(rc == 1 and w and w[0] in out, "after a real write of %s, verify "
             "differs there (exit 1)" % (w[0] if w else "?"), "rc %d %s %s" % (rc, out, err))
    finally:
        t.quit()


def sec_errors(exe, tmp):
    """A full disk and a target that exits mid-snapshot: one line, exit 1, no file."""
    t = Target(exe, tmp, "--big", str(min(big_mb(), 256)))
    try:
        errors_body(t, tmp)
    finally:
        t.quit()


def errors_body(t, tmp):
    # a 1 MiB tmpfs in a private mount namespace: the layer cannot fit
    small = os.path.join(tmp, "small")
    os.mkdir(small)
    script = ('mount -t tmpfs -o size=1m pt-snaptest "$1" || exit 99; '
              '"$2" snapshot "$3" -o "$1/full.img"; rc=$?; '
              'echo "rc=$rc left=$(ls -A "$1" | tr "\\n" " ")"')
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                        small, PT, str(t.pid)], capture_output=True, text=True, timeout=300,
                       env=env())
    m = re.search(r"rc=(\d+) left=(.*)", r.stdout)
    if r.returncode == 99 or not m:
        t_skip("disk full", "cannot mount a small tmpfs here (%r)" % r.stderr[-200:])
        t_skip("disk full: the target runs on", "no small tmpfs")
    else:
        t_ok(m.group(1) == "1" and one_line(r.stderr) and "No space left" in r.stderr and
             m.group(2).strip() == "",
             "disk full: exit 1, one line, nothing left in the directory",
             "rc %s left %r stderr %r" % (m.group(1), m.group(2), r.stderr))
        t_ok(t.answers(10), "disk full: the target runs on")
    os.rmdir(small)
    # the target killed while pagetrack copies it
    f = os.path.join(tmp, "gone.img")
    p = subprocess.Popen([PT, "snapshot", str(t.pid), "-o", f, "--level", "19"], env=env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = False
    t_end = time.time() + 60
    while p.poll() is None and time.time() < t_end:
        try:
            if int(t.status().get("TracerPid", "0")) != 0:
                seen = True
                break
        except (OSError, ValueError):
            break
        time.sleep(0.0005)
    os.kill(t.pid, signal.SIGKILL)
    try:
        _, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    if not seen:
        t_skip("target exits mid-snapshot", "the snapshot ended before the freeze was seen")
        t_skip("target exits mid-snapshot: no file", "not reached")
        return
    if p.returncode == 0:
        # everything had been copied when the kill landed: a complete layer
        # of the state at the freeze is the right outcome
        vrc, vout, verr = run("image", "verify", f)
        t_ok(vrc == 0, "target killed after the copy: a complete, valid layer", verr)
        t_ok(not [x for x in os.listdir(tmp) if x.startswith(".gone.img")],
             "target killed after the copy: no temp file", str(os.listdir(tmp)))
        os.unlink(f)
        return
    t_ok(p.returncode == 1 and one_line(err) and ("exited" in err or "no such process" in err),
         "target killed mid-snapshot: exit 1, one line naming it", "rc %s %r" %
         (p.returncode, err))
    t_ok(not os.path.exists(f) and not [x for x in os.listdir(tmp) if x.startswith(".gone.img")],
         "target killed mid-snapshot: no file, no temp file", str(os.listdir(tmp)))


# ---------------------------------------------------------------- main
def main():
    global PT
    if len(sys.argv) != 2:
        skip_all("usage: test_snapshot.py BUILD_DIR")
    build = os.path.abspath(sys.argv[1])
    exe = os.path.join(build, "tests", "snaptarget")
    PT = os.path.join(build, "tools", "pagetrack")
    if not os.access(exe, os.X_OK):
        skip_all("%s not built" % exe)
    if os.geteuid() != 0:
        skip_all("needs root (ptrace of the target, map_files, zram swap)")
    have_pt = os.access(PT, os.X_OK)
    cli = have_pt and subprocess.run([PT, "snapshot", "--help"], capture_output=True,
                                     timeout=30).returncode == 0
    plan(sum(n for _, n in SECTIONS))
    tmp = tempfile.mkdtemp(prefix="pt-snaptest-")
    swap = Swap(exe)
    try:
        for name, n in SECTIONS:
            with Section(name, n):
                if over_budget():
                    skip_rest("time budget (PT_TEST_TIMEOUT %d s) exhausted" % BUDGET)
                elif name == "target":
                    sec_target(exe, tmp, swap)
                elif not cli:
                    skip_rest(NOT_BUILT)
                elif name == "usage":
                    sec_usage(tmp)
                elif name == "chain":
                    sec_chain(exe, tmp, swap)
                elif name == "corrupt":
                    sec_corrupt(exe, tmp)
                elif name == "live":
                    sec_live(exe, tmp)
                elif name == "swap":
                    sec_swap(exe, tmp, swap)
                elif name == "kill":
                    sec_kill(exe, tmp)
                elif name == "core":
                    sec_core(exe, tmp)
                elif name == "errors":
                    sec_errors(exe, tmp)
                elif name == "rseq":
                    sec_rseq(exe, tmp)
    finally:
        swap.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    done()


if __name__ == "__main__":
    main()
