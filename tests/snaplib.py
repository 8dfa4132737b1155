# SPDX-License-Identifier: MIT
"""Driving tests/snaptarget.c and checking what it knows of its memory.

Target: the process, one JSON answer line per command (see snaptarget.c's
header).  Swap: zram swap held by `snaptarget --swap MB` for as long as the
test runs.  live_check(): the state of the live region after exactly K
writes of the target's deterministic writer, the proof that a copy of it
is the memory of one instant.  Used by test_snapshot.py, test_migrate.py,
test_migrate_net.py and test_vm_migrate.py.
"""
import json
import os
import selectors
import signal
import struct
import subprocess
import time
import zlib

PS = os.sysconf("SC_PAGE_SIZE")
ZERO_CRC = "%08x" % zlib.crc32(bytes(PS))
M64 = (1 << 64) - 1


def mix(x):
    x = (x + 0x9e3779b97f4a7c15) & M64
    x = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & M64
    x = ((x ^ (x >> 27)) * 0x94d049bb133111eb) & M64
    return x ^ (x >> 31)


class Target:
    """tests/snaptarget.c, driven on stdin: one JSON line per command.

    TAG prefixes the names of its files; with IDLE, each command waits
    until the target is back in read() (wait_idle()); CMD_TIMEOUT is a
    command's default time to answer (s); with CONT, quit() sends SIGCONT
    first (a test may have left it stopped)."""
    n = 0
    TAG = "pt-snaptest"
    IDLE = True
    RSEQ = False	# keep glibc's rseq registration (the kernel rewrites it)
    CMD_TIMEOUT = 120
    CONT = False

    def __init__(self, exe, tmp, *args):
        Target.n += 1
        self.tag = "%s-%d-%d" % (self.TAG, os.getpid(), Target.n)
        self.tmp = tmp
        # Without rseq: the kernel rewrites each thread's rseq area (cpu_id)
        # when it runs again after the freeze, so an idle target would not
        # be idle to `image verify FILE PID`.
        e = dict(os.environ)
        if not self.RSEQ:
            e["GLIBC_TUNABLES"] = ":".join(x for x in (e.get("GLIBC_TUNABLES"),
                                                       "glibc.pthread.rseq=0") if x)
        self.p = subprocess.Popen([exe, "--tag", self.tag, "--dir", tmp] + list(args),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=e)
        self.pid = self.p.pid
        self.files = []
        try:
            self.layout = self.cmd("layout", timeout=300)
        except Exception:
            self.p.kill()
            self.p.wait()
            for f in ("/dev/shm/%s-devshm" % self.tag, os.path.join(tmp, self.tag + "-file")):
                if os.path.exists(f):
                    os.unlink(f)
            raise
        self.files = self.layout["files"]
        self.reg = {r["name"]: r for r in self.layout["regions"]}
        for r in self.layout["regions"]:
            r["a"] = int(r["addr"], 16)

    def cmd(self, line, timeout=None):
        if timeout is None:
            timeout = self.CMD_TIMEOUT
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        sel = selectors.DefaultSelector()
        sel.register(self.p.stdout, selectors.EVENT_READ)
        ready = sel.select(timeout)
        sel.close()
        if not ready:
            raise RuntimeError("snaptarget: no answer to %r in %d s" % (line, timeout))
        ans = self.p.stdout.readline()
        if not ans:
            raise RuntimeError("snaptarget: exited on %r (rc %s)" % (line, self.p.poll()))
        doc = json.loads(ans)
        if isinstance(doc, dict) and "error" in doc:
            raise RuntimeError("snaptarget: %r: %s" % (line, doc["error"]))
        if self.IDLE:
            self.wait_idle()
        return doc

    def wait_idle(self, timeout=30):
        """Wait until the main thread is back in read(0, ...): it printed its
        answer before finishing the command, and memory it touches on the way
        (stdio buffers, its stack) must be still when a test compares.
        Bounded by time, not by a count of 1 ms polls: on a loaded machine
        the target may wait seconds for a CPU after printing."""
        path = "/proc/%d/task/%d/syscall" % (self.pid, self.pid)
        end = time.monotonic() + timeout
        while True:
            try:
                with open(path) as f:
                    if f.read().startswith("0 0x0 "):
                        return True
            except OSError:
                return False
            if time.monotonic() > end:
                return False
            time.sleep(0.001)

    def state(self):
        """The process state letter of /proc/PID/stat ("gone" if none)."""
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return "gone"

    def answers(self, timeout=10):
        """True if the target answers a ping within @timeout seconds."""
        try:
            return self.cmd("ping", timeout=timeout).get("pong") == self.pid
        except Exception:
            return False

    def dump(self, *names):
        path = os.path.join(self.tmp, "dump-%s" % self.tag)
        self.cmd("dump %s %s" % (path, " ".join(names)), timeout=300)
        d = {}
        with open(path) as f:
            for line in f:
                name, addr, val = line.split()
                d[int(addr, 16)] = (name, val)
        os.unlink(path)
        return d

    def status(self):
        st = {}
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                st[k] = v.strip()
        return st

    def quit(self):
        rc = None
        if self.p.poll() is None:
            try:
                if self.CONT:
                    os.kill(self.pid, signal.SIGCONT)
                self.p.stdin.write("quit\n")
                self.p.stdin.flush()
                rc = self.p.wait(timeout=30)
            except Exception:
                self.p.kill()
                self.p.wait()
        else:
            rc = self.p.returncode
        for f in self.files:
            if f and os.path.exists(f):
                os.unlink(f)
        return rc


class Swap:
    """zram swap held by `snaptarget --swap MB` (tools/common/zram.h)."""

    def __init__(self, exe, mb=2048):
        self.p = None
        self.ok, self.why = False, "%s not built" % exe
        if not os.access(exe, os.X_OK):
            return
        self.p = subprocess.Popen([exe, "--swap", str(mb)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        doc = json.loads(self.p.stdout.readline() or "{}")
        self.ok = bool(doc.get("active"))
        self.why = doc.get("why") or "no swap"

    def stop(self):
        if not self.p:
            return
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
            self.p.wait(timeout=120)
        except Exception:
            self.p.kill()
            self.p.wait()


def free_pid():
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) - 1
    while os.path.exists("/proc/%d" % pid):
        pid -= 1
    return pid


def kb(st, key):
    return int(st.get(key, "0 kB").split()[0])


def smaps_swap(pid, start):
    """kB of swap of the area at @start (smaps "Swap": for a shared
    mapping, its object's pages swapped out in range)."""
    with open("/proc/%d/smaps" % pid) as f:
        cur = None
        for line in f:
            head = line.split(None, 1)[0]
            if "-" in head and not head.endswith(":"):
                cur = int(head.split("-")[0], 16)
            elif head == "Swap:" and cur == start:
                return int(line.split()[1])
    return 0


def within(before, after, frac=0.02, floor_kb=256):
    return abs(after - before) <= max(before * frac, floor_kb)


# ---- the live writer's state after exactly K writes (snaptarget.c "live")
def live_page(k, p):
    return struct.pack("<512Q", k, *[((k << 12) ^ i ^ (p << 40)) & M64 for i in range(1, 512)])


def live_check(data, npages, most=None):
    """(K, problems): K the last write in @data, problems the pages that
    differ from the state after exactly K writes (the page of write K may
    be torn: each word old or new); with @most, it stops after more than
    @most problems."""
    heads = struct.unpack_from("<%dQ" % npages, b"".join(
        data[i * PS:i * PS + 8] for i in range(npages)))
    K = max(heads)
    last, prev = {}, {}
    for k in range(1, K + 1):
        p = mix(k) % npages
        if p in last:
            prev[p] = last[p]
        last[p] = k
    pk = mix(K) % npages if K else -1
    bad = []
    zero = bytes(PS)
    for p in range(npages):
        page = data[p * PS:(p + 1) * PS]
        k = last.get(p, 0)
        if p == pk:
            new = live_page(K, p)
            old = live_page(prev[p], p) if p in prev else zero
            if page != new and any(page[j:j + 8] not in (new[j:j + 8], old[j:j + 8])
                                   for j in range(0, PS, 8)):
                bad.append("page %d (write %d, torn?): neither old nor new words" % (p, K))
            continue
        if page != (live_page(k, p) if k else zero):
            bad.append("page %d: expected write %d, holds %d" % (p, k, heads[p]))
            if most is not None and len(bad) > most:
                break
    return K, bad
