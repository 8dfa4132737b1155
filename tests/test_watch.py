#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""CLI tests for `pagetrack watch` (TAP).

Usage: test_watch.py BUILD_DIR   (the binary is BUILD_DIR/tools/pagetrack)

The target is a workload started here whose writes we know: area A (its
own VMA, fenced by PROT_NONE pages) is rewritten whole every tick, area B
gets the next PER pages of a ring every tick, each write storing the tick
number (so content changes: the hash backend sees it too), and the tick
count goes to a progress file by pwrite (a syscall, not a tracked write).
Every JSON line is validated against doc/watch.schema.json.
"""
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
SCHEMA = os.path.join(TOP, "doc", "watch.schema.json")
PS = os.sysconf("SC_PAGE_SIZE")

A_PAGES, B_PAGES, PER_TICK, TICK = 64, 256, 16, 0.05

from taplib import (diag, done, ok, pagetrack_binary, plan, schema_validator, skip,  # noqa: E402
                    skip_n)


WORKLOAD = r"""
import ctypes, mmap, os, struct, sys, time
PS = mmap.PAGESIZE
A, B, PER, TICK = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                      ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
base = libc.mmap(None, (A + B + 3) * PS, 3, 0x22, -1, 0)
for g in (0, 1 + A, 2 + A + B):          # fences: A and B are VMAs of their own
    libc.mprotect(base + g * PS, PS, 0)
a, b = base + PS, base + (2 + A) * PS
fd = os.open(sys.argv[5], os.O_WRONLY)
u64 = ctypes.c_uint64
pa = [u64.from_address(a + i * PS) for i in range(A)]
pb = [u64.from_address(b + i * PS) for i in range(B)]
print(hex(a), hex(b), flush=True)
tick, j = 0, 0
while True:
    tick += 1
    for p in pa:
        p.value = tick
    for i in range(PER):
        pb[(j + i) % B].value = tick
    j = (j + PER) % B
    os.pwrite(fd, struct.pack("Q", tick), 0)
    if TICK:
        time.sleep(TICK)
"""


class Workload:
    def __init__(self, a=A_PAGES, b=B_PAGES, per=PER_TICK, tick=TICK):
        fd, self.progress = tempfile.mkstemp(prefix="pt-watch-")
        os.write(fd, b"\0" * 8)
        os.close(fd)
        self.p = subprocess.Popen([sys.executable, "-c", WORKLOAD, str(a), str(b), str(per),
                                   str(tick), self.progress], stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline().split()
        self.a, self.b = (int(x, 16) for x in line)
        self.pid = self.p.pid
        # Let the first ticks run: A and B are populated from then on.
        t = time.time()
        while self.ticks() < 3 and time.time() - t < 10:
            time.sleep(0.01)

    def ticks(self):
        with open(self.progress, "rb") as f:
            return struct.unpack("Q", f.read(8))[0]

    def cpu_s(self):
        """Its user + system CPU time, s (/proc/PID/stat: clock ticks)."""
        with open("/proc/%d/stat" % self.pid) as f:
            st = f.read().rsplit(")", 1)[1].split()
        return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")

    def speed(self, cpu=0.5, cap=30):
        """A busy workload's speed: (ticks per CPU second over at least @cpu
        s of its CPU time, or None when it did not get that much in @cap s
        of wall time; ticks done; CPU s; wall s).  Per CPU second, not per
        wall second: its share of a loaded machine does not count."""
        c0, n0, t0 = self.cpu_s(), self.ticks(), time.time()
        while True:
            time.sleep(0.1)
            c, n, t = self.cpu_s(), self.ticks(), time.time()
            if c - c0 >= cpu:
                return (n - n0) / (c - c0), n - n0, c - c0, t - t0
            if t - t0 > cap or not self.alive():
                return None, n - n0, c - c0, t - t0

    def progressed(self, n0, timeout=10):
        """True once it ticked past @n0 (at most @timeout s)."""
        end = time.time() + timeout
        while self.ticks() <= n0 and time.time() < end and self.alive():
            time.sleep(0.01)
        return self.ticks() > n0

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        os.unlink(self.progress)


def env():
    e = dict(os.environ)
    e.pop("PT_FORCE_TRACKER", None)
    e.pop("PT_FORCE_BACKEND", None)
    return e


def run(pt, args, timeout=60, preexec_fn=None):
    p = subprocess.run([pt] + args, capture_output=True, text=True, env=env(),
                       timeout=timeout, preexec_fn=preexec_fn)
    return p.returncode, p.stdout, p.stderr


def one_line(s):
    return len(s.strip().splitlines()) == 1 and s.startswith("pagetrack: ")


def parse_lines(out):
    docs = []
    for line in out.splitlines():
        try:
            docs.append(json.loads(line))
        except ValueError:
            docs.append(None)
    return docs


def schema_errors(validator, docs):
    if validator is None:
        return ["no schema validator (jsonschema)"]
    errs = []
    for i, d in enumerate(docs):
        if d is None:
            errs.append("line %d: not JSON" % (i + 1))
            continue
        errs += ["line %d: %s: %s" % (i + 1, list(e.path), e.message)
                 for e in validator.iter_errors(d)]
    return errs


def vma_pages(doc, start):
    for v in doc["vmas"]:
        if int(v["start"], 16) == start:
            return v["pages_written"]
    return 0


def uffd_fds(pid):
    n = 0
    d = "/proc/%d/fd" % pid
    for f in os.listdir(d):
        try:
            if os.readlink(os.path.join(d, f)) == "anon_inode:[userfaultfd]":
                n += 1
        except OSError:
            pass
    return n


def uw_vmas(pid):
    n = 0
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            if line.startswith("VmFlags:") and " uw" in " " + line.split(":", 1)[1]:
                n += 1
    return n


def free_pid():
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            pid = int(f.read()) - 1
    except OSError:
        pid = 4194303
    while os.path.exists("/proc/%d" % pid):
        pid -= 1
    return pid


def backends(pt):
    """Which tracker backends can run here, by the feature probes (not by tracking)."""
    rc, out, err = run(pt, ["check", "--json"])
    try:
        f = json.loads(out)["features"]
    except (ValueError, KeyError):
        return {b: "pagetrack check --json failed: %s" % err.strip() for b in
                ("uffd", "softdirty")} | {"hash": None}
    st = lambda k: f.get(k, {}).get("state")
    res = {"hash": None}
    missing = [k for k in ("uffd_wp_async", "pagemap_scan", "ptrace") if st(k) != "yes"]
    res["uffd"] = ("kernel lacks %s" % ", ".join(missing)) if missing else None
    res["softdirty"] = None if st("soft_dirty") == "yes" else \
        "soft-dirty does not work here: %s" % f.get("soft_dirty", {}).get("reason")
    return res


# ---------------------------------------------------------------- tests

def test_usage(pt):
    rc, out, err = run(pt, ["watch", "--help"])
    ok(rc == 0 and "--interval" in out and "-- CMD" in out, "watch --help exits 0", err)
    ok("self" in out and "not write bandwidth" in out and "--kill-after" in out,
       "watch --help documents self, what MB/s is, --kill-after", out)
    rc, out, err = run(pt, ["--help"])
    ok(rc == 0 and "watch" in out, "pagetrack --help lists watch", err)
    for bad in ("abc", "0", "-1s", "10x", "1.2.3s", "5ms", "1e3", "", "25h", "1441m"):
        rc, out, err = run(pt, ["watch", "--interval", bad, "--count", "1", "1"])
        ok(rc == 2 and one_line(err) and out == "",
           "bad interval %r: exit 2, one line" % bad, "rc=%d %r" % (rc, err))
    for args, what in ((["--count", "0", "1"], "count 0"), (["--count", "x", "1"], "count x"),
                       (["--backend", "nope", "1"], "bad backend"),
                       (["--top", "-1", "1"], "bad --top"), ([], "no PID"),
                       (["1", "2"], "two PIDs"), (["abc"], "malformed PID"),
                       (["1", "--", "true"], "PID and CMD"), (["--"], "empty CMD"),
                       (["--bogus", "1"], "unknown option"),
                       (["--kill-after", "1s", "1"], "--kill-after with a PID"),
                       (["--kill-after", "x", "--", "true"], "bad --kill-after"),
                       (["--sample", "0", "1"], "--sample 0"),
                       (["--sample", "x", "1"], "--sample x"),
                       (["--sample", "auto", "--hot", "1"], "--sample with --hot"),
                       (["--sample", "auto", "--backend", "uffd", "1"], "--sample with --backend"),
                       (["--max-overhead", "x", "1"], "--max-overhead x"),
                       (["--max-overhead", "-1", "1"], "--max-overhead -1"),
                       (["--max-overhead", "5", "--sample", "auto", "1"],
                        "--max-overhead with --sample"),
                       (["--max-cpu", "5", "1"], "--max-cpu without --max-overhead")):
        rc, out, err = run(pt, ["watch"] + args)
        ok(rc == 2 and one_line(err), "%s: exit 2, one line" % what, "rc=%d %r" % (rc, err))
    rc, out, err = run(pt, ["watch", "--json", "--interval", "zz", "1"])
    doc = parse_lines(out)
    ok(rc == 2 and len(doc) == 1 and doc[0] and doc[0]["error"]["exit_code"] == 2,
       "bad interval --json: error object, exit 2", "rc=%d %r" % (rc, out))
    for good in ("500ms", "1s", "2.5s", "100ms", "0.2", "1m", "24h", "1.5h", "1440m"):
        # --help after a good value: parsed, then help, exit 0.
        rc, out, err = run(pt, ["watch", "--interval", good, "--help"])
        ok(rc == 0, "interval %r accepted" % good, "rc=%d %r" % (rc, err))


def test_errors(pt, validator):
    pid = free_pid()
    rc, out, err = run(pt, ["watch", "--count", "1", str(pid)])
    ok(rc == 1 and one_line(err) and ("no such process: %d" % pid) in err,
       "nonexistent pid: exit 1, one line", "rc=%d %r" % (rc, err))
    rc, out, err = run(pt, ["watch", "--json", "--count", "1", str(pid)])
    docs = parse_lines(out)
    good = (rc == 1 and len(docs) == 1 and docs[0] and
            docs[0]["error"]["errno"] == "ESRCH" and not schema_errors(validator, docs))
    ok(good, "nonexistent pid --json: error object (schema), exit 1", "rc=%d %r" % (rc, out))
    rc, out, err = run(pt, ["watch", "--", "/nonexistent/pt-cmd"])
    ok(rc == 1 and one_line(err) and "/nonexistent/pt-cmd" in err,
       "-- CMD that cannot run: exit 1, one line", "rc=%d %r" % (rc, err))


def watch_json(pt, w, backend, count, extra=()):
    args = ["watch", "--json", "--interval", "200ms", "--count", str(count), "--top", "1000"]
    if backend:
        args += ["--backend", backend]
    return run(pt, args + list(extra) + [str(w.pid)])


N_BACKEND = 10    # subtests of test_backend(), skips included
N_CHURN = 3       # subtests of test_churn(), skips included


def test_backend(pt, validator, backend, why_not):
    name = "backend %s" % backend
    if why_not:
        skip_n(N_BACKEND, "%s: watch a known workload" % name, why_not)
        return
    w = Workload()
    try:
        count = 10
        rc, out, err = watch_json(pt, w, backend, count)
        docs = parse_lines(out)
        ok(rc == 0 and len(docs) == count + 1, "%s: exit 0, %d interval lines + summary"
           % (name, count), "rc=%d lines=%d %s" % (rc, len(docs), err))
        errs = schema_errors(validator, docs) if validator else ["no validator"]
        ok(not errs, "%s: every line matches doc/watch.schema.json" % name,
           "\n".join(errs[:10]))
        iv = [d for d in docs if d and "interval" in d]
        summ = [d for d in docs if d and "summary" in d]
        if len(iv) != count or len(summ) != 1:
            skip_n(N_BACKEND - 2, "%s: the intervals and the summary" % name,
                   "%d interval lines, %d summaries" % (len(iv), len(summ)))
            return
        ok([d["interval"] for d in iv] == list(range(1, count + 1)) and
           all(d["backend"] == backend and d["pid"] == w.pid for d in iv) and
           all(iv[i]["time"] < iv[i + 1]["time"] for i in range(count - 1)),
           "%s: intervals numbered 1..%d, times increasing, pid and backend right"
           % (name, count))
        # Never miss: A is rewritten whole every tick, so every interval (4
        # ticks) must report all of it; B gets PER_TICK pages per tick.
        a = [vma_pages(d, w.a) for d in iv]
        b = [vma_pages(d, w.b) for d in iv]
        ok(all(x == A_PAGES for x in a),
           "%s: all %d pages of the rewritten area reported in every interval"
           % (name, A_PAGES), "per interval: %s" % a)
        ok(all(x >= PER_TICK for x in b) and
           all(d["pages_written"] >= A_PAGES + PER_TICK for d in iv),
           "%s: >= %d ring pages per interval, totals >= the workload's rate"
           % (name, PER_TICK), "ring per interval %s; totals %s" %
           (b, [d["pages_written"] for d in iv]))
        ok(all(d["bytes_written"] == d["pages_written"] * PS and
               d["wss_bytes"] == d["wss_pages"] * PS and d["unattributed_pages"] == 0 and
               sum(v["pages_written"] for v in d["vmas"]) == d["pages_written"] for d in iv),
           "%s: bytes = pages x page size; the areas add up to the total" % name)
        # The working set grows while the ring is being covered, then stops.
        wss = [d["wss_pages"] for d in iv]
        cum, full = 0, None
        for i, x in enumerate(b):
            cum += x
            if cum >= B_PAGES and full is None:
                full = i
        grew = all(wss[i] <= wss[i + 1] for i in range(count - 1)) and wss[1] > wss[0]
        ok(grew and wss[0] >= A_PAGES + PER_TICK,
           "%s: the working set grows (never shrinks) while new pages are written" % name,
           "wss %s" % wss)
        if full is not None and full + 2 < count:
            late = wss[-1] - wss[full + 1]
            ok(late < PER_TICK, "%s: the working set saturates once the ring is covered "
               "(+%d pages after interval %d)" % (name, late, full + 2), "wss %s, ring %s"
               % (wss, b))
        else:
            ok(False, "%s: the working set saturates once the ring is covered" % name,
               "ring not covered in time: ring pages per interval %s" % b)
        s = summ[0]["summary"]
        ok(s["intervals"] == count and s["reason"] == "count" and
           s["pages_written"] == sum(d["pages_written"] for d in iv) and
           s["wss_pages"] == wss[-1] and s["exit_status"] is None,
           "%s: summary: intervals, reason count, totals" % name, s)
        ok(w.alive() and uffd_fds(w.pid) == 0 and uw_vmas(w.pid) == 0,
           "%s: after --count the target runs, no userfaultfd fd, no uw VMA" % name,
           "alive=%s fds=%d uw=%d" % (w.alive(), uffd_fds(w.pid), uw_vmas(w.pid)))
    finally:
        w.stop()


# Maps, writes, grows in place and unmaps areas without pause (a ring of
# 32 live areas, each replaced in turn), and writes a MAP_SHARED area.
CHURN = r"""
import ctypes, mmap, sys
PS = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                      ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mremap.restype = ctypes.c_void_p
libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int]
FAILED = ctypes.c_void_p(-1).value
shared = mmap.mmap(-1, 16 * PS)
print(hex(ctypes.addressof(ctypes.c_char.from_buffer(shared))), flush=True)
ring = [None] * 32
i = 0
while True:
    k = i % 32
    if ring[k]:
        libc.munmap(*ring[k])
        ring[k] = None
    n = (1 + i % 8) * PS
    p = libc.mmap(None, n, 3, 0x22, -1, 0)
    if p and p != FAILED:
        ctypes.memset(p, i & 0xff, n)
        if libc.mremap(p, n, 2 * n, 0) == p:
            ctypes.memset(p + n, i & 0xff, n)
            n *= 2
        ring[k] = (p, n)
    shared[(i % 16) * PS] = i & 0xff
    i += 1
"""


def test_churn(pt, validator, backend, why_not):
    """watch takes the layout from the tracker: no page is ever in no area."""
    name = "backend %s" % backend
    if why_not:
        skip_n(N_CHURN, "%s: a target mapping and unmapping without pause" % name, why_not)
        return
    p = subprocess.Popen([sys.executable, "-c", CHURN], stdout=subprocess.PIPE, text=True)
    try:
        shm = int(p.stdout.readline(), 16)
        count = 20
        rc, out, err = run(pt, ["watch", "--json", "--interval", "50ms", "--count", str(count),
                                "--top", "1000", "--backend", backend, str(p.pid)])
        docs = parse_lines(out)
        iv = [d for d in docs if d and "interval" in d]
        errs = schema_errors(validator, docs) if validator else ["no validator"]
        ok(rc == 0 and len(iv) == count and not errs,
           "%s, churning target: exit 0, %d intervals, every line matches the schema"
           % (name, count), "rc=%d lines=%d %s %s" % (rc, len(iv), err, "\n".join(errs[:5])))
        un = [d["unattributed_pages"] for d in iv]
        ok(iv and all(x == 0 for x in un) and
           all(sum(v["pages_written"] for v in d["vmas"]) == d["pages_written"] for d in iv)
           and sum(d["pages_written"] for d in iv) > 0,
           "%s, churning target: no unattributed page, the areas add up to the total"
           % name, "unattributed per interval %s" % un)
        sv = [v for d in iv for v in d["vmas"] if int(v["start"], 16) == shm]
        nsv = [v for d in iv for v in d["vmas"] if int(v["start"], 16) != shm]
        want = ("hash", None) if backend == "hash" else ("hash", "shared")
        ok(sv and all((v["tracked_by"], v["hash_reason"]) == want for v in sv) and
           all(v["tracked_by"] == backend and v["hash_reason"] is None
               for v in nsv if v["kind"] == "anon"),
           "%s, churning target: the shared area is tracked_by %s (hash_reason %s), "
           "private ones by %s" % (name, want[0], want[1] or "null", backend),
           [(v["start"], v["kind"], v["tracked_by"], v["hash_reason"]) for v in sv[:3]])
    finally:
        p.kill()
        p.wait()


def test_human(pt):
    w = Workload()
    try:
        rc, out, err = run(pt, ["watch", "--interval", "200ms", "--count", "3", str(w.pid)])
        lines = out.splitlines()
        wide = [l for l in lines if len(l) > 80]
        ok(rc == 0 and lines and lines[0].startswith("watching pid %d" % w.pid) and
           lines[-1].startswith("summary: 3 intervals,") and lines[-1].endswith(", count") and not wide,
           "human output: header, summary, every line fits 80 columns",
           "rc=%d %s\n%s" % (rc, err, "\n".join(wide or lines[:5])))
        rows = [l for l in lines if l.split() and l.split()[0] in ("1", "2", "3")]
        ok(len(rows) == 3 and any(("%012x" % w.a) in l for l in lines),
           "human output: one line per interval, the rewritten area among the top",
           out[:1500])
    finally:
        w.stop()


def wait_lines(p, n, timeout=20):
    lines = []
    t = time.time()
    while len(lines) < n and time.time() - t < timeout:
        line = p.stdout.readline()
        if not line:
            break
        lines.append(line)
    return lines


def test_sigint(pt, uffd):
    w = Workload()
    try:
        p = subprocess.Popen([pt, "watch", "--json", "--interval", "200ms", str(w.pid)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env())
        got = wait_lines(p, 2)
        armed_fds, armed_uw = uffd_fds(w.pid), uw_vmas(w.pid)
        if uffd:
            ok(armed_fds == 1 and armed_uw > 0,
               "while watching (uffd): one userfaultfd in the target, uw VMAs",
               "fds=%d uw=%d" % (armed_fds, armed_uw))
        else:
            skip("while watching (uffd): one userfaultfd in the target", "no uffd backend")
        p.send_signal(signal.SIGINT)
        try:
            out, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        docs = parse_lines("".join(got) + out)
        last = docs[-1] if docs else None
        ok(p.returncode == 0 and len(got) == 2 and last and "summary" in last and
           last["summary"]["reason"] == "signal",
           "SIGINT: exit 0 with a summary line (reason signal)",
           "rc=%s %r %r" % (p.returncode, out[-300:], err))
        n0 = w.ticks()
        ok(w.progressed(n0) and w.alive() and uffd_fds(w.pid) == 0 and uw_vmas(w.pid) == 0,
           "after SIGINT the target keeps running, no userfaultfd fd, no uw VMA left",
           "alive=%s ticks %d->%d fds=%d uw=%d" % (w.alive(), n0, w.ticks(),
                                                  uffd_fds(w.pid), uw_vmas(w.pid)))
        p = subprocess.Popen([pt, "watch", "--interval", "100ms", str(w.pid)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env())
        wait_lines(p, 4)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
        ok(p.returncode == 0 and "summary:" in out and uffd_fds(w.pid) == 0 and w.alive(),
           "SIGTERM: exit 0, summary, target clean and running",
           "rc=%d %r" % (p.returncode, err))
    finally:
        w.stop()


def test_sigkill(pt):
    # A busy workload (no sleep): its ticks per CPU second are its speed.
    w = Workload(a=16, b=64, per=4, tick=0)
    name = "SIGKILL of pagetrack: the target keeps running at normal speed"
    try:
        base = w.speed()
        p = subprocess.Popen([pt, "watch", "--json", "--interval", "100ms", str(w.pid)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env())
        got = wait_lines(p, 3)
        p.kill()
        p.communicate()
        time.sleep(0.2)
        after = w.speed()
        figs = "before: %s ticks in %.2f CPU s (%.1f s); after: %s ticks in %.2f CPU s (%.1f s)" % (
            base[1], base[2], base[3], after[1], after[2], after[3])
        if base[0] is None or (after[0] is None and after[1] > 0 and w.alive()):
            # it ran, but the machine gave it too little CPU to measure
            skip(name, "the workload got too little CPU to measure its speed: " + figs)
            return
        ok(len(got) == 3 and w.alive() and after[0] is not None and after[0] >= 0.5 * base[0],
           "%s (%.0f ticks per CPU s before, %s after)" % (
               name, base[0], "%.0f" % after[0] if after[0] is not None else "none"),
           "lines=%d alive=%s; %s" % (len(got), w.alive(), figs))
    finally:
        w.stop()


N_MEET = 7    # subtests of test_meet(), skips included


def uffd_fds(pid):
    """How many userfaultfds process @pid holds."""
    n = 0
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                n += os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "anon_inode:[userfaultfd]"
            except OSError:
                pass
    except OSError:
        pass
    return n


def test_meet(pt, validator, why_not):
    """Trackers that meet: a killed watch's leftover, and two watches at once."""
    if why_not:
        skip_n(N_MEET, "trackers that meet (uffd)", why_not)
        return
    w = Workload(a=16, b=64, per=4, tick=0.002)
    try:
        a = subprocess.Popen([pt, "watch", "--json", "--backend", "uffd", "--interval", "100ms",
                              str(w.pid)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env())
        wait_lines(a, 2)
        a.kill()
        a.communicate()
        ok(uffd_fds(w.pid) == 1, "SIGKILL of a uffd watch leaves its userfaultfd in the target",
           "userfaultfds: %d" % uffd_fds(w.pid))
        rc, out, err = run(pt, ["watch", "--json", "--count", "3", "--interval", "100ms",
                                str(w.pid)])
        docs = parse_lines(out)
        iv = [d for d in docs if d and "interval" in d]
        st = iv[-1]["stats"] if iv else {}
        ok(rc == 0 and len(iv) == 3 and iv[-1]["backend"] == "uffd" and
           st.get("leftovers_closed") == 1 and "closed 1 userfaultfd" in err,
           "the next watch closes the leftover, says so, and tracks with uffd",
           "rc=%d backend=%s stats=%r err=%r" % (rc, iv[-1]["backend"] if iv else None, st, err))
        anon = [v for d in iv for v in d["vmas"] if v["kind"] in ("anon", "heap")]
        ok(anon and all(v["tracked_by"] == "uffd" for v in anon),
           "... its private areas are tracked by uffd, not hashed",
           [(v["start"], v["tracked_by"], v["hash_reason"]) for v in anon][:5])
        ok(uffd_fds(w.pid) == 0, "... and it leaves no userfaultfd behind",
           "userfaultfds: %d" % uffd_fds(w.pid))

        a = subprocess.Popen([pt, "watch", "--json", "--interval", "100ms", str(w.pid)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env())
        wait_lines(a, 1)
        rc, out, err = run(pt, ["watch", "--count", "2", "--interval", "100ms", str(w.pid)])
        ok(rc == 1 and one_line(err) and "already tracked by another pagetrack" in err,
           "a second watch of the same process is refused: exit 1, one line",
           "rc=%d %r" % (rc, err))
        more = wait_lines(a, 2)
        ok(len(more) == 2 and a.poll() is None, "... and the first watch goes on")
        a.send_signal(signal.SIGTERM)
        a.communicate(timeout=30)
        ok(a.returncode == 0 and uffd_fds(w.pid) == 0,
           "the first watch stops cleanly (exit 0), no userfaultfd left",
           "rc=%s userfaultfds=%d" % (a.returncode, uffd_fds(w.pid)))
    finally:
        w.stop()


def test_target_exit(pt, validator):
    w = Workload()
    p = subprocess.Popen([pt, "watch", "--json", "--interval", "100ms", str(w.pid)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    got = wait_lines(p, 2)
    w.stop()
    try:
        out, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    docs = parse_lines("".join(got) + out)
    last = docs[-1] if docs else None
    ok(p.returncode == 0 and last and last.get("summary", {}).get("reason") == "target_exited"
       and not schema_errors(validator, docs),
       "target exits: exit 0, summary with reason target_exited",
       "rc=%s %r %r" % (p.returncode, out[-300:], err))


CMD_CHILD = r"""
import mmap, sys, time
m = mmap.mmap(-1, 64 * mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
t = time.time()
n = 0
while time.time() - t < 1.0:
    n += 1
    for i in range(64):
        m[i * mmap.PAGESIZE] = n & 255 or 1
    time.sleep(0.02)
sys.exit(3)
"""


def test_cmd(pt, validator):
    rc, out, err = run(pt, ["watch", "--json", "--interval", "100ms", "--",
                            sys.executable, "-c", CMD_CHILD])
    docs = parse_lines(out)
    iv = [d for d in docs if d and "interval" in d]
    last = docs[-1] if docs else None
    ok(rc == 3, "-- CMD: exits with the command's status (3)", "rc=%d %r" % (rc, err))
    ok(last and "summary" in last and last["summary"]["exit_status"] == 3 and
       last["summary"]["reason"] == "target_exited" and not schema_errors(validator, docs),
       "-- CMD: summary with exit_status 3, lines match the schema", out[-500:])
    ok(len(iv) >= 3 and max(d["pages_written"] for d in iv) >= 64,
       "-- CMD: the command's 64 rewritten pages are seen",
       [d["pages_written"] for d in iv])
    rc, out, err = run(pt, ["watch", "--", "sh", "-c", "exit 7"])
    ok(rc == 7 and "summary:" in out, "-- CMD that ends at once: its status (7), a summary",
       "rc=%d %r %r" % (rc, out, err))


# ---------------------------------------------------------------- exec

EXEC_WRITER = r"""
import mmap, sys, time
m = mmap.mmap(-1, 64 * mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
t, n = time.time(), 0
while time.time() - t < float(sys.argv[1]):
    n += 1
    for i in range(64):
        m[i * mmap.PAGESIZE] = n & 255 or 1
    time.sleep(0.02)
"""

N_EXEC = 8    # subtests of test_exec()


def exec_writes_after(docs, pages):
    """Intervals after the exec event, the first (areas reported whole) left out."""
    k = [i for i, d in enumerate(docs) if d and d.get("event") == "exec"]
    if not k:
        return False, "no exec event"
    iv = [d for d in docs[k[-1] + 1:] if d and "interval" in d][1:]
    return any(d["pages_written"] >= pages for d in iv), [d["pages_written"] for d in iv]


def test_exec(pt, validator):
    """Commands that exec (env, nice, sh's exec, a shim) and a PID that execs are followed."""
    for cmd in (["env", "sleep", "2"], ["nice", "-n", "0", "sleep", "2"],
                ["sh", "-c", "x=1; exec sleep 2"]):
        rc, out, err = run(pt, ["watch", "--json", "--interval", "200ms", "--"] + cmd, timeout=30)
        docs = parse_lines(out)
        iv = [d for d in docs if d and "interval" in d]
        last = docs[-1] if docs else None
        ok(rc == 0 and last and "summary" in last and last["summary"]["exit_status"] == 0 and
           last["summary"]["reason"] == "target_exited" and len(iv) >= 5 and
           not schema_errors(validator, docs),
           "-- %s: followed to its end (exit 0, >= 5 intervals of 200ms), lines match the "
           "schema" % " ".join(cmd), "rc=%d intervals=%d %r %r" % (rc, len(iv), err, out[-300:]))

    d = tempfile.mkdtemp(prefix="pt-shim-")
    try:
        shim = os.path.join(d, "python3")
        with open(shim, "w") as f:
            # a version manager's shim: some work of its own, then exec
            f.write("#!/bin/sh\nsleep 0.5\nexec %s \"$@\"\n" % sys.executable)
        os.chmod(shim, 0o755)
        rc, out, err = run(pt, ["watch", "--json", "--interval", "200ms", "--", shim, "-c",
                                EXEC_WRITER, "1.5"], timeout=30)
        docs = parse_lines(out)
        ev = [x for x in docs if x and x.get("event") == "exec"]
        last = docs[-1] if docs else None
        ok(rc == 0 and last and last.get("summary", {}).get("exit_status") == 0 and
           not schema_errors(validator, docs),
           "-- shim that execs python3: exit 0, lines match the schema",
           "rc=%d %r" % (rc, err))
        ok(len(ev) == 1 and ev[0]["comm"].startswith("python") and
           ev[0]["pid"] == (last or {}).get("summary", {}).get("pid"),
           "-- shim: one exec event naming the new program", ev)
        good, why = exec_writes_after(docs, 64)
        ok(good, "-- shim: the writer's 64 pages per interval are reported after the exec", why)
    finally:
        shutil.rmtree(d, ignore_errors=True)

    p = subprocess.Popen(["sh", "-c", 'sleep 0.6; exec "$0" -c "$1" 4', sys.executable,
                          EXEC_WRITER])
    try:
        rc, out, err = run(pt, ["watch", "--json", "--interval", "200ms", "--count", "10",
                                str(p.pid)], timeout=30)
        docs = parse_lines(out)
        ev = [x for x in docs if x and x.get("event") == "exec"]
        last = docs[-1] if docs else None
        ok(rc == 0 and len(ev) == 1 and last and last.get("summary", {}).get("reason") == "count"
           and not schema_errors(validator, docs),
           "PID that execs: followed (exec event, reason count, not target_exited)",
           "rc=%d events=%d %r %r" % (rc, len(ev), err, out[-300:]))
        good, why = exec_writes_after(docs, 64)
        ok(good and p.poll() is None and uffd_fds(p.pid) == 0,
           "PID that execs: the new program's writes are reported; it runs on, no userfaultfd left",
           why)
    finally:
        p.kill()
        p.wait()


# ------------------------------------------------- signals during set-up

SETUP_TARGET = r"""
import ctypes, os, struct, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                      ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
PS, N = os.sysconf("SC_PAGE_SIZE"), int(sys.argv[1])
base = libc.mmap(None, 2 * N * PS, 3, 0x22, -1, 0)
for i in range(N):                       # N areas: a written page, then a fence
    ctypes.memset(base + 2 * i * PS, 1, PS)
    libc.mprotect(base + (2 * i + 1) * PS, PS, 0)
fd = os.open(sys.argv[2], os.O_WRONLY)
def spin(k):
    x = 0
    while True:
        x += 1
        ctypes.memset(base + 2 * (x % N) * PS, x & 255, 8)
for k in range(3):
    threading.Thread(target=spin, args=(k,), daemon=True).start()
print("ready", flush=True)
tick = 0
while True:
    tick += 1
    os.pwrite(fd, struct.pack("Q", tick), 0)
    time.sleep(0.01)
"""

N_SETUP_SIG = 10


def threads_clean(pid):
    """No thread stopped or traced."""
    bad = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                st = dict(l.split(":", 1) for l in f if ":" in l)
        except OSError:
            continue
        state, tracer = st["State"].split()[0], int(st["TracerPid"])
        if state in ("t", "T") or tracer:
            bad.append((tid, state, tracer))
    return bad


def test_setup_signals(pt):
    """SIGTERM/SIGINT at random moments of set-up: fast exit, target as found."""
    import random
    fd, prog = tempfile.mkstemp(prefix="pt-setup-")
    os.write(fd, b"\0" * 8)
    os.close(fd)
    t = subprocess.Popen([sys.executable, "-c", SETUP_TARGET, "2000", prog],
                         stdout=subprocess.PIPE, text=True)
    ticks = lambda: struct.unpack("Q", open(prog, "rb").read(8))[0]
    try:
        t.stdout.readline()
        rnd = random.Random(os.getpid())
        for i in range(N_SETUP_SIG):
            sig = (signal.SIGTERM, signal.SIGINT)[i % 2]
            delay = rnd.uniform(0, 0.3)
            p = subprocess.Popen([pt, "watch", "--json", "--interval", "100ms", str(t.pid)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env())
            time.sleep(delay)
            t0 = time.time()
            p.send_signal(sig)
            # Within 10 s: it exits on the signal; not a speed check (a
            # loaded machine took 0.8 s), a hang is killed and fails.
            exited = True
            try:
                out, err = p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                exited = False
                p.kill()
                out, err = p.communicate()
            dt = time.time() - t0
            docs = parse_lines(out)
            last = docs[-1] if docs else None
            # Exit 0 with a summary (reason signal); or, signalled before its
            # handlers were even installed, killed by it with no output.
            status = (p.returncode == 0 and last and
                      last.get("summary", {}).get("reason") == "signal") or \
                     (p.returncode == -sig and out == "")
            # the target runs: it ticks (every 10 ms when it gets the CPU)
            n0, end = ticks(), time.time() + 10
            while ticks() <= n0 and time.time() < end and t.poll() is None:
                time.sleep(0.01)
            bad, fds, alive = threads_clean(t.pid), uffd_fds(t.pid), t.poll() is None
            ok(exited and status and not bad and fds == 0 and alive and ticks() > n0,
               "%s %.0f ms after start: exit in %.2fs (status %s), no userfaultfd, no thread "
               "stopped or traced, target runs" % (signal.Signals(sig).name, delay * 1000, dt,
                                                   p.returncode),
               "rc=%s out=%r err=%r bad=%s fds=%d alive=%s" % (p.returncode, out[-200:],
                                                             err[-300:], bad, fds, alive))
    finally:
        t.kill()
        t.wait()
        os.unlink(prog)


# Maps a 64 MiB PROT_NONE area (a glibc arena) and a 64 MiB read-write area
# of which it writes 16 pages (calloc) while watched, then keeps writing
# those 16 pages and a 16-page MAP_SHARED area (hashed by the page-table
# backends: the human output must say so).
HOLES = r"""
import ctypes, mmap, sys, time
PS = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                      ctypes.c_int, ctypes.c_int, ctypes.c_long]
shared = mmap.mmap(-1, 16 * PS)
for i in range(16):
    shared[i * PS] = 1
print("ready", flush=True)
time.sleep(0.5)
a = libc.mmap(None, 64 << 20, 0, 0x22, -1, 0)
b = libc.mmap(None, 64 << 20, 3, 0x22, -1, 0)
print(hex(a), hex(b), flush=True)
n = 0
while True:
    n += 1
    ctypes.memset(b, n & 255 or 1, 16 * PS)
    for i in range(16):
        shared[i * PS] = n & 255
    time.sleep(0.05)
"""
HOLE_AREA = (64 << 20) // PS      # pages of each new area


def start_holes():
    p = subprocess.Popen([sys.executable, "-c", HOLES], stdout=subprocess.PIPE, text=True)
    p.stdout.readline()
    return p


def stop_proc(p):
    if p.poll() is None:
        p.kill()
    p.wait()


N_HOLES = 3       # subtests of test_holes(), skips included


def test_holes(pt, validator, backend, why_not):
    """New areas' untouched pages are holes: not pages written, counted apart."""
    name = "backend %s" % backend
    if why_not:
        skip_n(N_HOLES, "%s: holes of new areas" % name, why_not)
        return
    p = start_holes()
    try:
        rc, out, err = run(pt, ["watch", "--json", "--interval", "250ms", "--count", "6",
                                "--backend", backend, str(p.pid)])
    finally:
        stop_proc(p)
    docs = parse_lines(out)
    iv = [d for d in docs if d and "interval" in d]
    summ = [d["summary"] for d in docs if d and "summary" in d]
    errs = schema_errors(validator, docs) if validator else ["no validator"]
    ok(rc == 0 and len(iv) == 6 and len(summ) == 1 and not errs,
       "%s, new areas: exit 0, 6 intervals, lines match the schema" % name,
       "rc=%d %s %s" % (rc, err, "\n".join(errs[:5])))
    if len(iv) != 6 or len(summ) != 1:
        skip_n(N_HOLES - 1, "%s: holes of new areas" % name, "no run")
        return
    written = [d["pages_written"] for d in iv]
    holes = [d["flags"]["new_hole_pages"] for d in iv]
    ok(max(written) < 2048 and summ[0]["wss_pages"] < 4096,
       "%s: 2 x 64 MiB new areas, 16 pages written: pages written stay far below %d "
       "(per interval %s, wss %d)" % (name, 2 * HOLE_AREA, written, summ[0]["wss_pages"]))
    ok(sum(holes) >= 2 * HOLE_AREA - 16 and summ[0]["new_hole_pages"] == sum(holes) and
       all(h == 0 or d["stats"]["pages_hole"] == h for d, h in zip(iv, holes)),
       "%s: the untouched pages are counted apart as holes (%d >= %d), summary and stats "
       "agree" % (name, sum(holes), 2 * HOLE_AREA - 16), "holes %s summary %s" %
       (holes, summ[0].get("new_hole_pages")))


def test_human_honest(pt, uffd_why_not):
    """The human output says what its numbers are, shows holes and hashed areas."""
    if uffd_why_not:
        skip_n(2, "human output: legend, holes, hashed areas", uffd_why_not)
        return
    p = start_holes()
    try:
        rc, out, err = run(pt, ["watch", "--interval", "250ms", "--count", "6", "--backend",
                                "uffd", "--top", "20", str(p.pid)])
    finally:
        stop_proc(p)
    lines = out.splitlines()
    wide = [l for l in lines if len(l) > 80]
    ok(rc == 0 and not wide and "not write bandwidth" in out and "FB" in out and
       any("holes" in l and "not counted" in l and "MiB" in l for l in lines),
       "human output: legend (MB/s is not bandwidth, FB), holes shown apart, 80 columns",
       "rc=%d %s\n%s" % (rc, err, out[:2000]))
    ok("hashed instead of tracked by uffd" in out and "MAP_SHARED" in out and
       any(" H " in l and ("shmem" in l or "zero" in l) for l in lines),
       "human output: the hashed MAP_SHARED area is marked (H) and why is said",
       out[:2500])


KILL_CHILD = r"""
import signal, sys, time
if sys.argv[1] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(60)
"""


def test_kill_after(pt):
    t = time.time()
    rc, out, err = run(pt, ["watch", "--interval", "100ms", "--count", "2", "--kill-after",
                            "300ms", "--", sys.executable, "-c", KILL_CHILD, "term"])
    ok(rc == 128 + signal.SIGTERM and time.time() - t < 20,
       "--count with --kill-after: the command is sent SIGTERM, its status is the exit code",
       "rc=%d %.1fs %r" % (rc, time.time() - t, err))
    # The command must ignore SIGTERM from its first instruction: the
    # interpreter's start-up can take longer than the interval (0.4 s on a
    # loaded machine), and SIG_IGN is set only then.  pagetrack hands the
    # command the signal mask it was started with, so SIGTERM is blocked
    # from before the exec, then ignored.
    t = time.time()
    rc, out, err = run(pt, ["watch", "--interval", "100ms", "--count", "1", "--kill-after",
                            "0", "--", sys.executable, "-c", KILL_CHILD, "ignore"],
                       preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK,
                                                                 {signal.SIGTERM}))
    took = time.time() - t
    ok(rc == 128 + signal.SIGKILL and 1.5 < took < 20,
       "--kill-after: a command that ignores SIGTERM is killed after the 2 s grace",
       "rc=%d %.1fs %r" % (rc, took, err))


def test_self(pt, validator):
    rc, out, err = run(pt, ["watch", "--json", "--interval", "100ms", "--count", "2", "self"])
    docs = parse_lines(out)
    ok(rc == 0 and len(docs) == 3 and docs[0].get("pid") == docs[-1]["summary"]["pid"] and
       not schema_errors(validator, docs),
       "watch self: exit 0, 2 intervals and a summary (schema)", "rc=%d %r" % (rc, err))


N_OVERHEAD = 3   # subtests of test_overhead(), skips included


def test_overhead(pt, validator, uffd_why_not):
    """Per interval: the target's estimated tracking overhead and pagetrack's CPU."""
    backend = "hash" if uffd_why_not else "uffd"
    w = Workload()
    try:
        rc, out, err = watch_json(pt, w, backend, 4)
        hrc, hout, herr = run(pt, ["watch", "--interval", "200ms", "--count", "3",
                                   "--backend", backend, str(w.pid)])
    finally:
        w.stop()
    docs = parse_lines(out)
    iv = [d for d in docs if d and "interval" in d]
    errs = schema_errors(validator, docs) if validator else ["no validator"]

    def sane(d):
        o, st = d.get("overhead", {}), d.get("stats", {})
        keys = ("fault_cost_ns", "target_pct", "target_cpu_pct", "self_cpu_pct")
        if not all(isinstance(o.get(k), (int, float)) and o[k] >= 0 for k in keys):
            return False
        ivl = st.get("interval_ns", 0)
        return (ivl > 0 and abs(o["target_pct"] - st["est_fault_ns"] * 100 / ivl) < 1e-6 and
                abs(o["self_cpu_pct"] - st["self_cpu_ns"] * 100 / ivl) < 1e-6 and
                st["est_fault_ns"] == st["pages_faulted"] * o["fault_cost_ns"])
    ok(rc == 0 and len(iv) == 4 and not errs and all(sane(d) for d in iv),
       "overhead (%s): fields present, >= 0, schema-valid, target_pct = est_fault_ns / "
       "interval_ns, est_fault_ns = pages_faulted x fault_cost_ns" % backend,
       "rc=%d %s\n%s\n%s" % (rc, err, "\n".join(errs[:5]),
                              [(d.get("overhead"), d.get("stats")) for d in iv][:2]))
    if uffd_why_not:
        skip("overhead: a busy writer under uffd shows overhead > 0 every interval",
             uffd_why_not)
    else:
        ok(len(iv) == 4 and all(d["overhead"]["fault_cost_ns"] > 0 and
                                d["stats"]["pages_faulted"] >= A_PAGES and
                                d["overhead"]["target_pct"] > 0 for d in iv),
           "overhead: a busy writer under uffd shows overhead > 0 every interval",
           repr([(d["overhead"], d["stats"]["pages_faulted"]) for d in iv]))
    lines = hout.splitlines()
    ov = [ln for ln in lines if ln.startswith("      overhead ~")]
    ok(hrc == 0 and len(ov) == 3 and all(len(ln) <= 80 for ln in lines) and
       all(re.match(r"^      overhead ~[0-9.]+% of target time; CPU: target [0-9]+%, "
                    r"pagetrack [0-9.]+%$", ln) for ln in ov),
       "human output: an overhead line per interval, within 80 columns",
       "rc=%d %s\n%s" % (hrc, herr, hout[:1500]))


N_MODES = 10     # subtests of test_modes(), skips included


def test_modes(pt, validator, uffd_why_not):
    """--sample (estimates, flagged), --hot (hot pages), --max-overhead (the budget says why)."""
    w = Workload()
    try:
        rc, out, err = watch_json(pt, w, None, 4, ["--sample", "4096"])
        hrc, hout, herr = run(pt, ["watch", "--interval", "200ms", "--count", "2", "--top", "3",
                                   "--sample", "auto", str(w.pid)])
        if uffd_why_not:
            hot = budget = (0, "", "")
        else:
            hot = watch_json(pt, w, "uffd", 6, ["--hot", "--interval", "100ms"])
            budget = watch_json(pt, w, None, 3, ["--max-overhead", "0"])
        brc, bout, berr = run(pt, ["watch", "--interval", "200ms", "--count", "2",
                                   "--max-overhead", "50", str(w.pid)])
    finally:
        w.stop()
    docs = parse_lines(out)
    iv = [d for d in docs if d and "interval" in d]
    errs = schema_errors(validator, docs)
    ok(rc == 0 and len(iv) == 4 and not errs, "--sample --json: exit 0, 4 intervals, schema-valid",
       "rc=%d %s %s" % (rc, err, errs[:3]))

    def est_ok(d):
        e = d.get("estimate") or {}
        return (d.get("mode") == "sample" and d.get("backend") == "sample" and
                e.get("lo", 1) <= e.get("pages", 0) <= e.get("hi", -1) and
                d["pages_written"] == e["pages"] and e["sampled"] > 0 and
                d["overhead"]["target_pct"] == 0 and
                all(v.get("tracked_by") == "sample" and "estimate" in v for v in d["vmas"]))
    ok(iv and all(est_ok(d) for d in iv),
       "--sample: every interval is flagged an estimate (mode, estimate with lo <= pages <= hi, "
       "per-area estimates), at no overhead to the target", repr(iv[:1])[:1500])
    # A (64 pages) is rewritten every tick: its estimate's interval must hold 64.
    cover = [lo <= A_PAGES <= hi for lo, hi in
             [(v["estimate"]["lo"], v["estimate"]["hi"]) for d in iv for v in d["vmas"]
              if int(v["start"], 16) == w.a]]
    ok(len(cover) >= 3 and sum(cover) >= len(cover) - 1,
       "--sample: the area written whole every tick is estimated with an interval holding its "
       "%d pages" % A_PAGES, repr(cover))
    lines = hout.splitlines()
    est = [ln for ln in lines if ln.startswith("      estimate: ~")]
    rows = [ln for ln in lines if re.match(r"^ +[0-9]+ +[0-9.]+s +~", ln)]
    ok(hrc == 0 and len(est) == 2 and len(rows) == 2 and all(len(ln) <= 80 for ln in lines),
       "--sample human output: written marked ~, an estimate line with its 95% interval",
       "rc=%d %s\n%s" % (hrc, herr, hout[:1500]))
    if uffd_why_not:
        skip_n(5, "--hot / --max-overhead 0: hot pages and the budget's moves", uffd_why_not)
    else:
        docs = parse_lines(hot[1])
        iv = [d for d in docs if d and "interval" in d]
        errs = schema_errors(validator, docs)
        ok(hot[0] == 0 and len(iv) == 6 and not errs and all(d["mode"] == "hot" for d in iv),
           "--hot --json: exit 0, 6 intervals of mode hot, schema-valid",
           "rc=%d %s %s" % (hot[0], hot[2], errs[:3]))
        # A is written every tick (every round): hot after K rounds, then counted each interval.
        ok(any(d["flags"]["hot_pages"] >= A_PAGES // 2 and d["stats"]["pages_hot"] > 0 and
               vma_pages(d, w.a) == A_PAGES for d in iv[2:]),
           "--hot: the area written every round turns hot and is still counted whole",
           repr([(d["flags"]["hot_pages"], d["stats"]["hot_rounds"], vma_pages(d, w.a))
                 for d in iv]))
        docs = parse_lines(budget[1])
        iv = [d for d in docs if d and "interval" in d]
        errs = schema_errors(validator, docs)
        b = [d.get("budget") or {} for d in iv]
        ok(budget[0] == 0 and len(iv) == 3 and not errs and all(x.get("reason") for x in b),
           "--max-overhead --json: exit 0, schema-valid, a reason every interval",
           "rc=%d %s %s %r" % (budget[0], budget[2], errs[:3], b))
        ok(iv and iv[0]["mode"] == "exact" and b[0].get("next_mode") == "hot" and b[0]["changed"]
           and iv[1]["mode"] == "hot" and b[1].get("next_mode") in ("hash", "sample") and
           iv[2]["mode"] == b[1]["next_mode"],
           "--max-overhead 0: a writing target moves exact -> hot -> hash or sample, each "
           "move with its reason", repr([(d["mode"], x) for d, x in zip(iv, b)]))
        # hash: single areas (the ones written, named in the reason), not the whole process
        if len(b) >= 2 and b[1].get("next_mode") == "hash":
            hashed = [v for v in iv[2]["vmas"] if v.get("hash_reason") == "budget"]
            ok(b[1].get("hashed_areas", 0) > 0 and "hash" in b[1]["reason"] and hashed and
               iv[2]["backend"] == "uffd" and all(v["tracked_by"] == "hash" for v in hashed),
               "--max-overhead 0: hash moves the written areas to hashing (hash_reason budget), "
               "the tracker stays uffd", repr((b[1], [(v["start"], v.get("hash_reason"))
                                                      for v in iv[2]["vmas"]])))
        else:
            ok(len(b) >= 2 and "sample" in b[1].get("reason", ""),
               "--max-overhead 0: sample, and the reason says why no area could be hashed",
               repr(b[1:2]))
    lines = bout.splitlines()
    bl = [ln for ln in lines if ln.startswith("      budget: ")]
    ok(brc == 0 and len(bl) == 2 and all(len(ln) <= 80 for ln in lines) and
       "budget: target overhead <= 50%" in bout,
       "--max-overhead human output: a budget line per interval", "rc=%d %s\n%s" % (
           brc, berr, bout[:1500]))


def main():
    pt = pagetrack_binary(__file__)
    # schema, usage, errors, 3 backends, 3 churns, human, sigint, sigkill, target_exit, cmd
    # ... exec, signals during set-up, holes, human honesty, --kill-after, self
    plan(1 + 35 + 3 + 3 * N_BACKEND + 3 * N_CHURN + 2 + 4 + 1 + N_MEET + 1 + 4 + N_EXEC +
         N_SETUP_SIG + 3 * N_HOLES + 2 + 2 + 1 + N_OVERHEAD + 8 + N_MODES)
    validator = schema_validator(SCHEMA, "doc/watch.schema.json")

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    test_usage(pt)
    test_errors(pt, validator)
    avail = backends(pt)
    for b in ("uffd", "softdirty", "hash"):
        test_backend(pt, validator, b, avail[b])
    for b in ("uffd", "softdirty", "hash"):
        test_churn(pt, validator, b, avail[b])
    test_human(pt)
    test_sigint(pt, avail["uffd"] is None)
    test_sigkill(pt)
    test_meet(pt, validator, avail["uffd"])
    test_target_exit(pt, validator)
    test_cmd(pt, validator)
    test_exec(pt, validator)
    test_setup_signals(pt)
    for b in ("uffd", "softdirty", "hash"):
        test_holes(pt, validator, b, avail[b])
    test_human_honest(pt, avail["uffd"])
    test_kill_after(pt)
    test_self(pt, validator)
    test_overhead(pt, validator, avail["uffd"])
    test_modes(pt, validator, avail["uffd"])
    done()


if __name__ == "__main__":
    main()
