#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`pagetrack send` / `pagetrack receive` in network namespaces (TAP).

Usage: test_migrate_net.py BUILD_DIR   (BUILD_DIR/tools/pagetrack and
BUILD_DIR/tests/snaptarget; the program skips whole when `pagetrack send
--help` fails: the commands are not built)

The test makes two network namespaces ptmig-a-PID and ptmig-b-PID joined
by a veth pair (10.77.0.1 in A, 10.77.0.2 in B) and deletes them at the
end.  The target (tests/snaptarget.c, its live writer at a given share of
the link rate) and the sender run in A (`ip netns exec`), the receiver in
B.  No traffic leaves the namespaces.

Link profiles.  This kernel has no sch_netem, so each profile is built
from what it has:
  1g        tc tbf rate 1gbit on both ends
  100m      tc tbf rate 100mbit on both ends
  lat20     1g, plus a delay line in B (this program, --proxy delay):
            every byte arrives 20 ms later in each direction
  loss1     1g, plus a tc clsact egress BPF program on A that drops 1% of
            the packets (gso_max_segs 1 on A's end: one packet per skb);
            the program is compiled with clang at run time, no clang =
            the profile is skipped with the reason
The rate a share refers to is the nominal one capped by a TCP transfer
measured over the profile at set-up (printed as a comment).

Sections (the plan is fixed; a section that cannot run is skipped whole
with its reason):
  net         the namespaces, the profiles
  usage       key file mode, --insecure off loopback, nothing listening
  ok-*        a migration that must complete: sender and receiver exit 0,
              the destination equals the source frozen at switch-over
              byte for byte (--after stop, then `image verify OUT PID` for
              a whole process, a byte compare of the object for --into),
              the live region equals the writer's state after exactly K
              writes, the target runs on after SIGCONT
  150-throttle / 150-off   the writer at 150% of a 100 Mbit/s link:
              --throttle auto must complete throttled; --throttle off
              --max-rounds 4 must fail with result max_rounds
  fail-*      receiver SIGKILLed, link down (with --force-switchover too:
              no switch-over on a dead link), receiver's disk full, wrong
              key, a proxy flipping one byte, a proxy cutting the stream,
              the sender SIGKILLed while the target is frozen: a clear
              error on each side, nothing presented as complete, the
              target resumed and unharmed (answers, no thread stopped or
              traced, its other memory unchanged, its writer goes on)
  fail-link-down-commit  the link goes down right after COMMIT (the
              receiver stops itself there, PT_FAULT=recv-commit-stop; the
              link is cut, then it is continued): the sender ends within
              its 10 s commit-silence bound + 30 s, exit 3, result
              commit_unknown, the target resumed and unharmed despite
              --after stop; the receiver commits (exit 0, FILE there):
              the outcome was indeed unknown to the sender
Env: PT_MIGTEST_PT=PATH the pagetrack binary to test (default
BUILD_DIR/tools/pagetrack: e.g. another branch's build, with this
branch's snaptarget); PT_MIGTEST_ONLY=SECTION,... runs only these (and net, which sets the
profiles up); PT_TEST_TIMEOUT the time budget (s, default 600): a section that
would start after 85% of it is skipped.  PT_BENCH=1: no TAP; the netem
bench instead (downtime and total bytes against the dirty rate on the 1g
profile, see doc/bench.md); PT_BENCH_MIB the live region (default 128).
"""
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import taplib  # noqa: E402
from taplib import (BUDGET, diag, done, over_budget, plan, skip_all, skip_rest,  # noqa: E402
                    t_ok, t_skip)
import snaplib  # noqa: E402
from snaplib import PS, live_check  # noqa: E402

ADDR_A, ADDR_B = "10.77.0.1", "10.77.0.2"
NOT_BUILT = "pagetrack send/receive not built"
STABLE = ("anon", "thp", "shanon", "memfd", "sysv", "devshm", "filepriv", "protnone")
ROUND_KEYS = ("round", "bytes_sent", "pages_dirty", "dirty_rate_mbps", "bandwidth_mbps",
              "expected_downtime_ms")
FINAL_KEYS = ("result", "downtime_ms", "total_bytes", "rounds", "throttle_percent")
SECTIONS = (("net", 3), ("usage", 5),
            ("ok-1g-10", 5), ("ok-1g-50", 5), ("ok-100m-10-into", 5),
            ("ok-lat20-10", 5), ("ok-loss1-10-into", 5),
            ("150-throttle", 6), ("150-off", 4),
            ("fail-kill-receiver", 4), ("fail-link-down", 5), ("fail-link-down-force", 5),
            ("fail-link-down-commit", 4), ("fail-disk-full", 4),
            ("fail-wrong-key", 4), ("fail-flip", 4), ("fail-cut", 4), ("fail-kill-sender", 4))
PT = None
EXE = None
CHILDREN = []		# every Popen this program started: killed at exit
FILES = []		# files outside the temp dir to remove at exit (/dev/shm)
# The live writer's pages compress about 8:1: where the dirty rate must be
# a share of the link, zstd on the wire is turned off (when send has
# --no-compress), else a "150%" writer is 20% of what the link carries.
NOCOMP = []


# ---------------------------------------------------------------- sections
class Section(taplib.Section):
    NOT_REACHED = "not reached (exception)"
    MISSING = "subtest missing (section printed too few)"


def wait_until(pred, timeout, step=0.02, count=100000):
    """Poll @pred until true: at most @count tries and @timeout seconds."""
    end = time.time() + timeout
    for _ in range(count):
        v = pred()
        if v or time.time() > end:
            return v
        time.sleep(step)
    return pred()


# ---------------------------------------------------------------- processes
class Proc:
    """A child whose stdout and stderr lines are collected by two threads."""

    def __init__(self, argv, stdin=None):
        self.argv = argv
        self.p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env())
        CHILDREN.append(self.p)
        self.pid = self.p.pid
        self.out, self.err = [], []
        self.cv = threading.Condition()
        self.th = [threading.Thread(target=self._read, args=(f, lst), daemon=True)
                   for f, lst in ((self.p.stdout, self.out), (self.p.stderr, self.err))]
        for t in self.th:
            t.start()

    def _read(self, f, lst):
        for line in f:
            with self.cv:
                lst.append(line.rstrip("\n"))
                self.cv.notify_all()
        with self.cv:
            self.cv.notify_all()

    def wait_line(self, pred, timeout):
        """The first stderr or stdout line satisfying @pred, or None."""
        end = time.time() + timeout
        with self.cv:
            for _ in range(10000):
                for line in self.err + self.out:
                    if pred(line):
                        return line
                left = end - time.time()
                if left <= 0 or (self.p.poll() is not None and
                                 not any(t.is_alive() for t in self.th)):
                    return None
                self.cv.wait(min(left, 0.2))
        return None

    def wait(self, timeout):
        """The exit status, or None when still running after @timeout s."""
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        for t in self.th:
            t.join(5)
        return rc

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        return self.wait(30)

    def jsons(self):
        docs = []
        for line in list(self.out):
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if isinstance(d, dict):
                docs.append(d)
        return docs

    def final(self):
        for d in reversed(self.jsons()):
            if "result" in d or "error" in d:
                return d
        return {}

    def error_lines(self):
        return [x for x in self.err if x.strip() and not x.startswith("pagetrack: listening on")]

    def one_error(self):
        e = self.error_lines()
        return len(e) == 1 and e[0].startswith("pagetrack: ")

    def story(self):
        return "%s\nexit %s\nstderr: %s\nstdout: %s" % (
            " ".join(self.argv[-12:]), self.p.returncode, "\n".join(self.err[-6:]),
            "\n".join(self.out[-6:]))


def env():
    e = dict(os.environ)
    e.pop("PT_FORCE_TRACKER", None)
    e.pop("PT_FORCE_BACKEND", None)
    return e


def run(*args, timeout=120):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env(),
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def must(*args):
    rc, out, err = run(*args)
    if rc != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(map(str, args)), rc, err.strip()))
    return out


def one_line(s):
    return len(s.strip().splitlines()) == 1 and s.startswith("pagetrack: ")


# ---------------------------------------------------------------- network
class Net:
    """Two namespaces joined by a veth pair; profiles set with tc."""

    def __init__(self, tmp):
        pid = os.getpid()
        self.tmp = tmp
        self.a, self.b = "ptmig-a-%d" % pid, "ptmig-b-%d" % pid
        self.va, self.vb = "ptma%d" % pid, "ptmb%d" % pid
        self.made = []
        self.profile = None
        self.rate = {}		# profile -> bytes/s for the share computations
        self.loss_obj = None
        self.loss_why = None
        self.delay = None	# the delay line (Proc) of lat20
        try:
            for ns in (self.a, self.b):
                must("ip", "netns", "add", ns)
                self.made.append(ns)
            must("ip", "link", "add", self.va, "netns", self.a, "type", "veth",
                 "peer", "name", self.vb, "netns", self.b)
            for ns, dev, addr in ((self.a, self.va, ADDR_A), (self.b, self.vb, ADDR_B)):
                must("ip", "-n", ns, "addr", "add", addr + "/24", "dev", dev)
                must("ip", "-n", ns, "link", "set", dev, "up")
                must("ip", "-n", ns, "link", "set", "lo", "up")
        except Exception:
            self.close()	# nothing half-made stays behind
            raise

    def in_a(self, *argv):
        return ["ip", "netns", "exec", self.a] + [str(x) for x in argv]

    def in_b(self, *argv):
        return ["ip", "netns", "exec", self.b] + [str(x) for x in argv]

    def link(self, up):
        must("ip", "-n", self.a, "link", "set", self.va, "up" if up else "down")

    def tx_bytes(self):
        out = must("ip", "-n", self.a, "-s", "-j", "link", "show", "dev", self.va)
        return json.loads(out)[0]["stats64"]["tx"]["bytes"]

    def build_loss(self):
        """The 1% loss program (clang -target bpf), or the reason why not."""
        clang = shutil.which("clang")
        if not clang:
            self.loss_why = "clang not found (needed to build the 1% loss BPF program)"
            return
        src = os.path.join(self.tmp, "loss.c")
        with open(src, "w") as f:
            f.write("struct __sk_buff;\n"
                    "static unsigned int (*prandom)(void) = (void *)7;\n"
                    "__attribute__((section(\"classifier\"), used))\n"
                    "int loss(struct __sk_buff *skb)\n"
                    "{\n\treturn prandom() % 100 == 0 ? 2 : 0;\t/* TC_ACT_SHOT : OK */\n}\n"
                    "char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n")
        obj = os.path.join(self.tmp, "loss.o")
        rc, _, err = run(clang, "-O2", "-target", "bpf", "-c", src, "-o", obj)
        if rc != 0:
            self.loss_why = "clang -target bpf failed: %s" % err.strip()[-200:]
            return
        self.loss_obj = obj

    def set_profile(self, name):
        """1g, 100m, lat20, loss1: 0 or the reason the profile cannot be set."""
        if self.profile == name:
            return None
        if self.delay:
            self.delay.kill()
            self.delay = None
        run("tc", "-n", self.a, "qdisc", "del", "dev", self.va, "clsact")
        rate = "100mbit" if name == "100m" else "1gbit"
        burst = "64kb" if name == "100m" else "512kb"
        for ns, dev in ((self.a, self.va), (self.b, self.vb)):
            must("tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate,
                 "burst", burst, "latency", "50ms")
        # loss1: gso_max_segs 1, one packet per skb, so that the loss
        # program drops packets, not 64 KiB GSO bursts
        must("ip", "-n", self.a, "link", "set", self.va, "gso_max_segs",
             "1" if name == "loss1" else "65535")
        if name == "loss1":
            if not self.loss_obj:
                return self.loss_why
            must("tc", "-n", self.a, "qdisc", "add", "dev", self.va, "clsact")
            rc, _, err = run("tc", "-n", self.a, "filter", "add", "dev", self.va, "egress", "bpf",
                             "da", "obj", self.loss_obj, "sec", "classifier")
            if rc != 0:
                return "tc bpf loss filter refused: %s" % err.strip()[-200:]
        self.profile = name
        if name not in self.rate:
            nominal = 12.5e6 if name == "100m" else 125e6
            got = self.measure(name)
            self.rate[name] = min(nominal, got) if got else nominal
            diag("profile %s: TCP measured %.1f MB/s, nominal %.1f MB/s" % (
                name, got / 1e6, nominal / 1e6))
        return None

    def measure(self, name):
        """A bounded TCP transfer A -> B (through the delay line for lat20):
        bytes/s, 0 when it failed."""
        size = (4 << 20) if name == "100m" else (24 << 20)
        sink = Proc(self.in_b(sys.executable, os.path.abspath(__file__), "--sink", ADDR_B))
        try:
            line = sink.wait_line(lambda x: x.startswith("port "), 20)
            if not line:
                return 0
            host, port = ADDR_B, int(line.split()[1])
            if name == "lat20":
                d = self.start_delay(port)
                if not d:
                    return 0
                port = d
            src = Proc(self.in_a(sys.executable, os.path.abspath(__file__), "--source",
                                 "%s:%d" % (host, port), str(size)))
            if src.wait(60) is None:
                src.kill()
                return 0
            line = sink.wait_line(lambda x: x.startswith("rate "), 30)
            return float(line.split()[1]) if line else 0
        finally:
            sink.kill()

    def start_delay(self, port):
        """lat20: the delay line in B, forwarding ADDR_B:P -> ADDR_B:@port;
        returns P (0 on failure).  It stays up until the profile changes."""
        if self.delay:
            self.delay.kill()
        self.delay = Proc(self.in_b(sys.executable, os.path.abspath(__file__), "--proxy",
                                    "delay", ADDR_B, "%s:%d" % (ADDR_B, port), "20"))
        line = self.delay.wait_line(lambda x: x.startswith("port "), 20)
        return int(line.split()[1]) if line else 0

    def close(self):
        if self.delay:
            self.delay.kill()
        for ns in self.made:
            run("ip", "netns", "del", ns)


# ---------------------------------------------------------------- proxy (--proxy)
def proxy_main(argv):
    """--proxy MODE LISTEN_HOST TARGET_HOST:PORT ARG, run in a namespace.
    delay MS: every byte forwarded MS ms later, both directions, any number
    of connections; flip N: one connection, byte N of the sender's stream
    XORed with 0x40; cut N: one connection, closed after N bytes from the
    sender.  Prints "port P" when listening; exits when its last
    connection is done (and after 300 s in any case)."""
    mode, lhost, target, arg = argv
    thost, tport = target.rsplit(":", 1)
    arg = int(arg)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((lhost, 0))
    ls.listen(4)
    print("port %d" % ls.getsockname()[1], flush=True)
    threading.Timer(300, lambda: os._exit(3)).start()
    conns = []

    def pump(src, dst, forward):
        delay = arg / 1000.0 if mode == "delay" else 0
        q, cv, state = [], threading.Condition(), {"eof": False}
        n = 0

        def writer():
            while True:
                with cv:
                    while not q and not state["eof"]:
                        cv.wait()
                    if not q:
                        break
                    due, data = q.pop(0)
                wait = due - time.time()
                if wait > 0:
                    time.sleep(wait)
                try:
                    dst.sendall(data)
                except OSError:
                    break
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        wt = threading.Thread(target=writer, daemon=True)
        wt.start()
        while True:
            try:
                data = src.recv(1 << 18)
            except OSError:
                data = b""
            if not data:
                break
            if forward and mode == "flip" and n <= arg < n + len(data):
                b = bytearray(data)
                b[arg - n] ^= 0x40
                data = bytes(b)
            if forward and mode == "cut" and n + len(data) >= arg:
                data = data[:arg - n]
                with cv:
                    q.append((time.time() + delay, data))
                    state["eof"] = True
                    cv.notify()
                wt.join(30)
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            n += len(data)
            with cv:
                q.append((time.time() + delay, data))
                cv.notify()
        with cv:
            state["eof"] = True
            cv.notify()
        wt.join(60)

    def serve(c):
        try:
            u = socket.create_connection((thost, int(tport)), timeout=10)
            u.settimeout(None)
        except OSError:
            c.close()
            return
        t1 = threading.Thread(target=pump, args=(c, u, True), daemon=True)
        t2 = threading.Thread(target=pump, args=(u, c, False), daemon=True)
        t1.start()
        t2.start()
        t1.join()
        t2.join()
        c.close()
        u.close()

    while True:
        c, _ = ls.accept()
        t = threading.Thread(target=serve, args=(c,), daemon=True)
        t.start()
        conns.append(t)
        if mode != "delay":
            ls.close()	# one connection only: a reconnect is refused
            t.join()
            break
    os._exit(0)


def sink_main(host):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, 0))
    ls.listen(1)
    ls.settimeout(60)
    print("port %d" % ls.getsockname()[1], flush=True)
    c, _ = ls.accept()
    c.settimeout(60)
    n, t = 0, None
    while True:
        d = c.recv(1 << 20)
        if not d:
            break
        if t is None:
            t = time.time()
        n += len(d)
    dt = time.time() - (t or time.time())
    print("rate %.0f" % (n / dt if dt > 0 else 0), flush=True)


def source_main(target, size):
    host, port = target.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=30)
    buf = os.urandom(1 << 20)
    for _ in range(int(size) >> 20):
        s.sendall(buf)
    s.close()


# ---------------------------------------------------------------- target
class Target(snaplib.Target):
    """tests/snaptarget.c in namespace A, driven on stdin (snaplib.Target)."""
    IDLE = False
    CMD_TIMEOUT = 60
    CONT = True

    def __init__(self, net, tmp, live_mib, shm=False):
        snaplib.Target.n += 1
        self.tag = "ptmig-%d-%d" % (os.getpid(), snaplib.Target.n)
        self.tmp = tmp
        e = env()
        # no rseq: an idle target then does not change (test_snapshot.py)
        e["GLIBC_TUNABLES"] = ":".join(x for x in (e.get("GLIBC_TUNABLES"),
                                                   "glibc.pthread.rseq=0") if x)
        argv = net.in_a(EXE, "--tag", self.tag, "--dir", tmp, "--live-pages",
                        str(live_mib * (1 << 20) // PS)) + (["--live-shm"] if shm else [])
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=e)
        CHILDREN.append(self.p)
        self.files = []
        self.layout = self.cmd("layout", timeout=120)
        self.pid = self.layout["pid"]
        self.files = self.layout["files"]
        FILES.extend(self.files)
        self.reg = {r["name"]: r for r in self.layout["regions"]}
        self.live = self.reg["live"]
        self.npages = self.live["size"] // PS

    def populate(self):
        """Every page of the live region written (about: 3 writes per page)."""
        self.cmd("live 4000")
        wait_until(lambda: self.cmd("progress")["k"] >= 3 * self.npages, 30, 0.05, 1000)
        self.cmd("stop")

    def dump(self, names=STABLE):
        path = os.path.join(self.tmp, "dump-%s" % self.tag)
        self.cmd("dump %s %s" % (path, " ".join(names)), timeout=120)
        with open(path) as f:
            d = f.read()
        os.unlink(path)
        return d

    def thread_states(self):
        st = []
        for tid in os.listdir("/proc/%d/task" % self.pid):
            try:
                with open("/proc/%d/task/%s/stat" % (self.pid, tid)) as f:
                    st.append(f.read().rsplit(")", 1)[1].split()[0])
            except OSError:
                pass
        return st

    def tracer(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1])
        return -1

    def frozen(self):
        """Every thread in a ptrace or job-control stop."""
        try:
            s = self.thread_states()
            return s and all(x in "tT" for x in s)
        except OSError:
            return False

    def unharmed(self, before):
        """(ok, why): answers, runs (no thread stopped, not traced), the
        stable regions as before, the writer goes on."""
        why = []
        if self.p.poll() is not None:
            return False, "the target exited (%s)" % self.p.returncode
        st = wait_until(lambda: not any(x in "tT" for x in self.thread_states()) and
                        self.tracer() == 0, 10, 0.05, 200)
        if not st:
            why.append("threads %s, TracerPid %d" % (self.thread_states(), self.tracer()))
        if not self.answers(10):
            why.append("no answer to ping")
            return False, "; ".join(why)
        if self.dump() != before:
            why.append("the stable regions changed")
        k0 = self.cmd("progress")["k"]
        if not wait_until(lambda: self.cmd("progress")["k"] > k0, 10, 0.05, 200):
            why.append("the live writer does not go on (k %d)" % k0)
        return not why, "; ".join(why)


# ---------------------------------------------------------------- migration
class Mig:
    """One receiver (in B) and one sender (in A) of one migration."""

    def __init__(self, net, tmp, t, name):
        self.net, self.tmp, self.t, self.name = net, tmp, t, name
        self.recv = self.send = self.proxy = None
        self.out = None
        self.into = None
        self.port = None

    def receiver(self, key, out=None, into=None, host=ADDR_B, extra=(), fault=None):
        self.out, self.into = out, into
        args = ["receive", "--listen", "%s:0" % host, "--json", "--key", key]
        args += ["-o", out] if out else ["--into", into]
        pre = ["env", "PT_FAULT=" + fault] if fault else []
        self.recv = Proc(self.net.in_b(*pre, PT, *args, *extra))
        line = self.recv.wait_line(lambda x: x.startswith("pagetrack: listening on "), 20)
        if not line:
            return False
        self.port = int(line.rsplit(":", 1)[1])
        return True

    def via_proxy(self, mode, arg):
        """A proxy in B between the sender and the receiver: the sender's
        port (0 on failure)."""
        self.proxy = Proc(self.net.in_b(sys.executable, os.path.abspath(__file__), "--proxy",
                                        mode, ADDR_B, "%s:%d" % (ADDR_B, self.port), str(arg)))
        line = self.proxy.wait_line(lambda x: x.startswith("port "), 20)
        return int(line.split()[1]) if line else 0

    def sender(self, key, port=None, extra=(), after="stop"):
        port = port or self.port
        if self.net.profile == "lat20":
            port = self.net.start_delay(port)
        args = ["send", self.t.pid, "--to", "%s:%d" % (ADDR_B, port), "--key", key, "--json",
                "--after", after]
        if self.into:
            args += ["--object", self.t.live["path"]]
        self.send = Proc(self.net.in_a(PT, *args, *extra))

    def finish(self, timeout=120):
        rs = self.send.wait(timeout) if self.send else None
        rr = self.recv.wait(30) if self.recv else None
        return rs, rr

    def kill_all(self):
        for p in (self.send, self.recv, self.proxy):
            if p:
                p.kill()

    def looks_complete(self):
        """The destination presented as complete: -o FILE exists, or
        --into PATH exists without its incomplete mark
        (doc/migration-protocol.md)."""
        if self.out:
            return os.path.exists(self.out)
        if not os.path.exists(self.into):
            return False
        if os.path.exists(self.into + ".pagetrack-incomplete"):
            return False
        try:
            if "user.pagetrack.incomplete" in os.listxattr(self.into):
                return False
        except OSError:
            pass
        return True

    def leftovers(self):
        d = os.path.dirname(self.out or self.into)
        base = os.path.basename(self.out or self.into)
        # --into: PATH and its incomplete mark stay (a VMM may map PATH)
        keep = (self.out, self.into, self.into and self.into + ".pagetrack-incomplete")
        return sorted(x for x in os.listdir(d) if x.startswith(base) and
                      os.path.join(d, x) not in keep)


def new_key(tmp, name):
    path = os.path.join(tmp, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, os.urandom(32))
    os.close(fd)
    return path


def share_rate(net, pct):
    return max(0.5, net.rate[net.profile] * pct / 100 / 1e6)


def start_writer(t, mbps):
    # nocatchup: a writer held up (frozen, throttled) does not make up for
    # it afterwards, as a CPU-bound program; else throttling cannot work
    t.cmd("live %.2f nocatchup" % mbps)
    k0 = t.cmd("progress")["k"]
    wait_until(lambda: t.cmd("progress")["k"] > k0 + 50, 10, 0.01, 1000)


# ---------------------------------------------------------------- sections: ok
def sec_ok(net, tmp, key, profile, pct, live_mib, into, extra=(), throttled=False):
    why = net.set_profile(profile)
    if why:
        skip_rest(why)
        return None
    t = Target(net, tmp, live_mib, shm=into)
    m = Mig(net, tmp, t, Section.cur.name)
    try:
        t.populate()
        mbps = share_rate(net, pct)
        out = os.path.join(tmp, "%s.img" % Section.cur.name) if not into else None
        dst = "/dev/shm/ptmig-%d-%s" % (os.getpid(), Section.cur.name) if into else None
        if dst:
            FILES.extend([dst, dst + ".pagetrack-incomplete"])
        if not m.receiver(key, out=out, into=dst):
            m.kill_all()
            t_ok(False, "receiver listens", m.recv.story())
            skip_rest("no receiver")
            return None
        start_writer(t, mbps)
        k0 = t.cmd("progress")["k"]
        m.sender(key, extra=extra)
        rs, rr = m.finish(120)
        fin = m.send.final()
        rounds = [d for d in m.send.jsons() if "round" in d and "result" not in d]
        diag("%s: writer %.1f MB/s, result %s" % (Section.cur.name, mbps, json.dumps(fin)))
        missing = [k for k in FINAL_KEYS if k not in fin] + \
            [k for d in rounds[:1] for k in ROUND_KEYS if k not in d]
        t_ok(rs == 0 and fin.get("result") == "completed" and rounds and not missing,
             "sender exit 0, result completed, %d round lines, keys present" % len(rounds),
             "%s\nmissing keys %s" % (m.send.story(), missing))
        if throttled:
            t_ok(fin.get("throttle_percent", 0) > 0,
                 "the 150%% writer was throttled (throttle_percent %s)" % fin.get(
                     "throttle_percent"), m.send.story())
        t_ok(rr == 0 and m.looks_complete(), "receiver exit 0, destination complete",
             m.recv.story())
        if rs is None:
            m.kill_all()
        frozen = wait_until(lambda: t.frozen(), 5, 0.02, 300) if rs == 0 else False
        if not (rs == 0 and rr == 0 and frozen):
            for n in ("the destination equals the source at switch-over",
                      "the live region equals the writer after exactly K writes"):
                t_skip(n, "no completed migration with the source left stopped (frozen %s)" % frozen)
        else:
            check_equal(t, m, tmp, k0)
        os.kill(t.pid, signal.SIGCONT)
        t_ok(wait_until(lambda: t.answers(5), 10, 0.1, 20) and t.cmd("stop")["k"] > 0,
             "the source runs on after SIGCONT (answers, writer stops cleanly)",
             "states %s" % t.thread_states())
        return fin
    finally:
        m.kill_all()
        t.quit()
        for f in (m.out, m.into):
            if f and os.path.exists(f):
                os.unlink(f)
        for f in glob.glob(m.out + ".live-*") if m.out else []:
            os.unlink(f)


def check_equal(t, m, tmp, k0):
    lv = t.live
    if m.out:
        rc, out, err = run(PT, "image", "verify", m.out, t.pid, timeout=300)
        t_ok(rc == 0, "image verify OUT PID: the destination equals the source frozen",
             "exit %d\n%s\n%s" % (rc, out[-1500:], err[-800:]))
        ext = os.path.join(tmp, "live.bin")
        rc, _, err = run(PT, "image", "extract", m.out, "--area", lv["addr"], "-o", ext)
        data = b""
        if rc == 0:
            with open(ext, "rb") as f:
                data = f.read()
            os.unlink(ext)
    else:
        with open(m.into, "rb") as f:
            got = f.read()
        with open(lv["path"], "rb") as f:
            src = f.read()
        first = next((i for i in range(0, min(len(got), len(src)), PS)
                      if got[i:i + PS] != src[i:i + PS]), None)
        t_ok(got == src, "--into PATH equals the source object byte for byte (%d bytes)" % len(src),
             "sizes %d %d, first differing page %s" % (len(got), len(src), first))
        data, rc, err = got, 0, ""
    if rc != 0 or len(data) < lv["size"]:
        t_ok(False, "the live region equals the writer after exactly K writes",
             "extract failed: %s (%d bytes)" % (err.strip(), len(data)))
        return
    K, bad = live_check(data, t.npages, most=20)
    t_ok(not bad and K >= k0, "the live region equals the writer after exactly K=%d writes" % K,
         "K %d (writer at %d when the sender started)\n%s" % (K, k0, "\n".join(bad[:15])))


# ---------------------------------------------------------------- sections: failures
def fail_checks(m, t, before, rs, rr, result=None, recv_killed=False, recv_err=None):
    """The 4 subtests of a failure."""
    fin = m.send.final()
    diag("%s: sender %s: %s | receiver %s: %s" % (
        Section.cur.name, rs, " ".join(m.send.error_lines())[:160], rr,
        " ".join(m.recv.error_lines())[:160]))
    want = (fin.get("result") == result) if result else True
    t_ok(rs == 1 and m.send.one_error() and want,
         "sender: exit 1, one error line%s" % (", result %s" % result if result else ""),
         m.send.story())
    if recv_killed:
        t_ok(rr == -signal.SIGKILL, "receiver was SIGKILLed mid-stream", m.recv.story())
    else:
        e = " ".join(m.recv.error_lines())
        t_ok(rr == 1 and m.recv.one_error() and (not recv_err or recv_err in e.lower()),
             "receiver: exit 1, one error line%s" % (" naming %r" % recv_err if recv_err else ""),
             m.recv.story())
    left = [] if recv_killed else m.leftovers()
    t_ok(not m.looks_complete() and not left,
         "nothing presented as complete (and no temp left by a receiver that exited)",
         "complete %s, left %s" % (m.looks_complete(), left))
    good, why = t.unharmed(before)
    t_ok(good, "the source target resumed and unharmed", why)


def fail_setup(net, tmp, key, profile, live_mib=16, into=False, pct=10, recv_extra=(),
               recv_fault=None):
    """Target populated with its writer at @pct% of the link, receiver up:
    (t, m, before) or None when a reason was printed."""
    why = net.set_profile(profile)
    if why:
        skip_rest(why)
        return None
    t = Target(net, tmp, live_mib, shm=into)
    m = Mig(net, tmp, t, Section.cur.name)
    t.populate()
    before = t.dump()
    name = Section.cur.name
    out = os.path.join(tmp, "%s.img" % name) if not into else None
    dst = "/dev/shm/ptmig-%d-%s" % (os.getpid(), name) if into else None
    if dst:
        FILES.extend([dst, dst + ".pagetrack-incomplete"])
    if not m.receiver(key, out=out, into=dst, extra=recv_extra, fault=recv_fault):
        t_ok(False, "receiver listens", m.recv.story())
        skip_rest("no receiver")
        m.kill_all()
        t.quit()
        return None
    start_writer(t, share_rate(net, pct))
    return t, m, before


def mid_stream(net, m, nbytes, timeout=30):
    """Wait until @nbytes more crossed the link while the sender runs."""
    b0 = net.tx_bytes()
    return wait_until(lambda: m.send.p.poll() is None and net.tx_bytes() - b0 >= nbytes,
                      timeout, 0.01, 5000) and m.send.p.poll() is None


def cleanup(t, m):
    m.kill_all()
    t.quit()
    for f in (m.out, m.into):
        if f and os.path.exists(f):
            os.unlink(f)
    if m.into and os.path.exists(m.into + ".pagetrack-incomplete"):
        os.unlink(m.into + ".pagetrack-incomplete")
    for x in m.leftovers() if (m.out or m.into) else []:
        p = os.path.join(os.path.dirname(m.out or m.into), x)
        if os.path.isfile(p):
            os.unlink(p)


def sec_kill_receiver(net, tmp, key):
    s = fail_setup(net, tmp, key, "100m", into=True)
    if not s:
        return
    t, m, before = s
    try:
        m.sender(key)
        if not mid_stream(net, m, 1 << 20):
            t_ok(False, "the stream was seen mid-way", m.send.story())
            skip_rest("not mid-stream")
            return
        m.recv.p.kill()
        rr = m.recv.wait(10)
        rs = m.send.wait(60)
        fail_checks(m, t, before, rs, rr, recv_killed=True)
    finally:
        cleanup(t, m)


def sec_link_down(net, tmp, key, force=False):
    """The link goes down mid-stream: the sender's --timeout 10s ends it
    (every wait is capped by it: within 10 s + a margin of 25 s, where
    the wire's idle timeout alone took 60 s), the receiver's
    --idle-timeout 15s ends the receiver.  With --force-switchover too:
    the link is dead, so no switch-over (the target never frozen)."""
    s = fail_setup(net, tmp, key, "100m", into=True, recv_extra=("--idle-timeout", "15s"))
    if not s:
        return
    t, m, before = s
    try:
        t_start = time.time()
        m.sender(key, extra=("--timeout", "10s") + (("--force-switchover",) if force else ()))
        if not mid_stream(net, m, 1 << 20):
            t_ok(False, "the stream was seen mid-way", m.send.story())
            skip_rest("not mid-stream")
            return
        net.link(False)
        t_down = time.time()
        rs = m.send.wait(75)
        took = time.time() - t_start
        diag("link down: sender exit %s after %.1f s" % (rs, time.time() - t_down))
        t_ok(rs is not None and took < 10 + 25,
             "the sender ended %.1f s after its start (--timeout 10s + a margin of 25 s)" % took,
             m.send.story())
        rr = m.recv.wait(max(1, 75 - (time.time() - t_down)))
        diag("link down: receiver %s while the link was down" % (
            "exited %s" % rr if rr is not None else "still waiting"))
        net.link(True)	# lets the sender's FIN/RST through
        if rr is None:
            rr = m.recv.wait(30)
        if rs is None:
            m.send.kill()
        fail_checks(m, t, before, rs, rr, result="timeout")
    finally:
        net.link(True)
        cleanup(t, m)


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def sec_link_down_commit(net, tmp, key):
    """The link dies right after COMMIT: the receiver stops itself once
    COMMIT came (PT_FAULT=recv-commit-stop, `env` runs it: `ip netns exec`
    execs it, so the pid is the receiver's), the test takes the link down
    and continues it.  The sender hears nothing more: its commit-silence
    bound (10 s) ends the freeze with result commit_unknown; the
    receiver commits (its ack queued on the dead link)."""
    bound, margin = 10, 30
    s = fail_setup(net, tmp, key, "1g", recv_fault="recv-commit-stop")
    if not s:
        return
    t, m, before = s
    try:
        m.sender(key)
        stopped = wait_until(lambda: proc_state(m.recv.pid) == "T" or
                             m.send.p.poll() is not None, 120, 0.01, 12000)
        if not stopped or proc_state(m.recv.pid) != "T":
            t_ok(False, "the receiver stopped itself at COMMIT", m.recv.story() + m.send.story())
            skip_rest("the receiver did not reach COMMIT")
            return
        t_stop = time.time()
        net.link(False)
        os.kill(m.recv.pid, signal.SIGCONT)
        rs = m.send.wait(bound + margin + 15)
        took = time.time() - t_stop
        rr = m.recv.wait(60)
        net.link(True)
        if rs is None:
            m.send.kill()
        fin = m.send.final()
        diag("link down at commit: sender exit %s after %.1f s, downtime %s ms; receiver %s" % (
            rs, took, fin.get("downtime_ms"), rr))
        t_ok(rs == 3 and m.send.one_error() and fin.get("result") == "commit_unknown" and
             "UNKNOWN" in " ".join(m.send.error_lines()),
             "sender: exit 3, one error line saying UNKNOWN, result commit_unknown",
             m.send.story())
        t_ok(rs is not None and took < bound + margin,
             "... %.1f s after the receiver stopped (< %d + %d s; it was 10 min)" %
             (took, bound, margin), m.send.story())
        t_ok(rr == 0 and m.looks_complete(),
             "the receiver, continued, committed (exit 0, FILE there): the outcome was "
             "indeed unknown", m.recv.story())
        good, why = t.unharmed(before)
        t_ok(good, "the source target resumed (--after stop not applied) and unharmed", why)
    finally:
        net.link(True)
        cleanup(t, m)


def sec_disk_full(net, tmp, key):
    full = os.path.join(tmp, "full")
    os.mkdir(full)
    rc, _, err = run("mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "ptmig-full", full)
    if rc != 0:
        skip_rest("cannot mount a small tmpfs: %s" % err.strip())
        return
    try:
        why = net.set_profile("1g")
        if why:
            skip_rest(why)
            return
        t = Target(net, tmp, 32)
        m = Mig(net, tmp, t, Section.cur.name)
        try:
            t.populate()
            before = t.dump()
            if not m.receiver(key, out=os.path.join(full, "out.img")):
                t_ok(False, "receiver listens", m.recv.story())
                skip_rest("no receiver")
                return
            start_writer(t, share_rate(net, 10))
            m.sender(key)
            rs, rr = m.finish(120)
            fail_checks(m, t, before, rs, rr, recv_err="space")
        finally:
            cleanup(t, m)
    finally:
        run("umount", full)


def sec_wrong_key(net, tmp, key):
    s = fail_setup(net, tmp, key, "1g")
    if not s:
        return
    t, m, before = s
    try:
        m.sender(new_key(tmp, "other.key"))
        rs, rr = m.finish(60)
        fail_checks(m, t, before, rs, rr)
    finally:
        cleanup(t, m)


def sec_proxy(net, tmp, key, mode, arg):
    s = fail_setup(net, tmp, key, "100m")
    if not s:
        return
    t, m, before = s
    try:
        port = m.via_proxy(mode, arg)
        if not port:
            t_ok(False, "the proxy listens", m.proxy.story())
            skip_rest("no proxy")
            return
        m.sender(key, port=port)
        rs, rr = m.finish(90)
        fail_checks(m, t, before, rs, rr)
    finally:
        cleanup(t, m)


def sec_kill_sender(net, tmp, key):
    """The switch-over command takes the link down (tc drops everything on
    A), so the sender stays in the final freeze: SIGKILL it there."""
    s = fail_setup(net, tmp, key, "1g")
    if not s:
        return
    t, m, before = s
    mark = os.path.join(tmp, "switchover-mark")
    try:
        cmd = "touch %s && ip link set %s down" % (mark, net.va)
        m.sender(key, extra=("--switchover-cmd", cmd, "--max-rounds", "30"))
        caught = wait_until(lambda: m.send.p.poll() is None and os.path.exists(mark) and
                            t.frozen() and t.tracer() > 0, 60, 0.002, 30000)
        states = t.thread_states()
        if caught:
            m.send.p.send_signal(signal.SIGKILL)
        rs = m.send.wait(10)
        if not caught:
            diag("kill-sender: sender %s, switch-over %s, states %s" % (
                rs, os.path.exists(mark), states))
        t_ok(caught and rs == -signal.SIGKILL,
             "sender SIGKILLed while every thread of the target is frozen", m.send.story())
        good, why = t.unharmed(before)
        t_ok(good, "the target runs on, unharmed", why)
        net.link(True)
        rr = m.recv.wait(60)
        e = m.recv.error_lines()
        t_ok(rr == 1 and m.recv.one_error(), "receiver: exit 1, one error line",
             m.recv.story() + "\n" + "\n".join(e))
        t_ok(not m.looks_complete() and not m.leftovers(), "nothing presented as complete",
             "left %s" % m.leftovers())
    finally:
        net.link(True)
        if os.path.exists(mark):
            os.unlink(mark)
        cleanup(t, m)


def sec_150_off(net, tmp, key):
    s = fail_setup(net, tmp, key, "100m", pct=150)
    if not s:
        return
    t, m, before = s
    try:
        m.sender(key, extra=["--throttle", "off", "--max-rounds", "4"] + NOCOMP)
        rs, rr = m.finish(120)
        diag("150-off: %s" % json.dumps(m.send.final()))
        fail_checks(m, t, before, rs, rr, result="max_rounds")
    finally:
        cleanup(t, m)


# ---------------------------------------------------------------- sections: net, usage
def sec_net(net, tmp):
    rate = 0
    why = net.set_profile("100m")
    if not why:
        rate = net.rate["100m"]
    t_ok(not why and rate > 1e6, "100m profile: TCP across the veth pair at %.1f MB/s" % (
        rate / 1e6), why)
    why = net.set_profile("1g")
    t_ok(not why and net.rate.get("1g", 0) > rate,
         "1g profile: TCP at %.1f MB/s" % (net.rate.get("1g", 0) / 1e6), why)
    net.build_loss()
    if not net.loss_obj:
        t_skip("loss1 profile", net.loss_why)
    else:
        why = net.set_profile("loss1")
        out = run("tc", "-n", net.a, "-s", "qdisc", "show", "dev", net.va)[1]
        t_ok(not why and "clsact" in out, "loss1 profile: 1%% loss program attached (%.1f MB/s)" %
             (net.rate.get("loss1", 0) / 1e6), why or out)
    why = net.set_profile("lat20")
    if why:
        diag("lat20: %s" % why)


def sec_usage(net, tmp, key):
    bad = os.path.join(tmp, "open.key")
    with open(bad, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(bad, 0o644)
    out = os.path.join(tmp, "usage.img")
    rc, o, e = run(*net.in_b(PT, "receive", "--listen", "127.0.0.1:0", "-o", out, "--key", bad),
                   timeout=20)
    t_ok(rc == 1 and one_line(e) and not os.path.exists(out),
         "receive refuses a key file readable by others (exit 1, one line)", "exit %d %s" % (rc, e))
    rc, o, e = run(*net.in_b(PT, "receive", "--listen", "%s:0" % ADDR_B, "-o", out), timeout=20)
    t_ok(rc in (1, 2) and one_line(e), "receive without --key nor --insecure is refused",
         "exit %d %s" % (rc, e))
    rc, o, e = run(*net.in_b(PT, "receive", "--listen", "%s:0" % ADDR_B, "-o", out,
                             "--insecure"), timeout=20)
    t_ok(rc in (1, 2) and one_line(e) and "loopback" in e.lower(),
         "receive --insecure off loopback is refused (the error says loopback)",
         "exit %d %s" % (rc, e))
    t = Target(net, tmp, 1)
    try:
        before = t.dump()
        start_writer(t, 1)
        rc, o, e = run(*net.in_a(PT, "send", t.pid, "--to", "%s:9" % ADDR_B, "--insecure"),
                       timeout=30)
        t_ok(rc in (1, 2) and one_line(e) and "loopback" in e.lower(),
             "send --insecure off loopback is refused (the error says loopback)",
             "exit %d %s" % (rc, e))
        # nothing listens on B port 9: refused at once
        rc, o, e = run(*net.in_a(PT, "send", t.pid, "--to", "%s:9" % ADDR_B, "--key", key),
                       timeout=60)
        good, why = t.unharmed(before) if rc == 1 else (False, "")
        t_ok(rc == 1 and one_line(e) and good,
             "send to a closed port: exit 1, one line, target unharmed",
             "exit %d %s %s" % (rc, e, why))
    finally:
        t.quit()


# ---------------------------------------------------------------- bench
def bench(net, tmp, key):
    """Downtime and total bytes against the dirty rate (0, 10%, 50% of the
    1g profile), with zstd as the sender chooses and with --no-compress."""
    mib = int(os.environ.get("PT_BENCH_MIB", "0") or 0) or 128
    why = net.set_profile("1g")
    if why:
        print("bench: %s" % why)
        return 1
    link = net.rate["1g"]
    print("migrate-net: veth pair, tc tbf 1gbit (TCP measured %.1f MB/s), snaptarget with a "
          "%d MiB live region, --downtime 300ms (default)" % (link / 1e6, mib))
    print("%-6s %-6s %-9s %11s %7s %12s %10s %10s %6s %8s %s" % (
        "dirty", "dest", "wire", "MB/s set/got", "rounds", "downtime_ms", "round0_MiB", "total_MiB",
        "x_r0", "throttle", "result"))
    rc_all = 0
    variants = [("-o", [])] + ([("-o", NOCOMP), ("--into", NOCOMP)] if NOCOMP else
                               [("--into", [])])
    for pct in (0, 10, 50):
        for dest, comp in variants:
            into = dest == "--into"
            t = Target(net, tmp, mib, shm=into)
            m = Mig(net, tmp, t, "bench")
            try:
                t.populate()
                out = os.path.join(tmp, "bench.img") if not into else None
                dst = "/dev/shm/ptmig-%d-bench" % os.getpid() if into else None
                if dst:
                    FILES.extend([dst, dst + ".pagetrack-incomplete"])
                if not m.receiver(key, out=out, into=dst):
                    print("bench: no receiver: %s" % m.recv.story())
                    return 1
                mbps = share_rate(net, pct) if pct else 0
                if pct:
                    start_writer(t, mbps)
                k0, t0 = t.cmd("progress")["k"], time.time()
                m.sender(key, after="resume", extra=comp)
                rs, rr = m.finish(300)
                got = (t.cmd("progress")["k"] - k0) * PS / max(time.time() - t0, 1e-3) / 1e6
                fin = m.send.final()
                rounds = [d for d in m.send.jsons() if "round" in d and "result" not in d]
                r0 = rounds[0].get("bytes_sent", 0) if rounds else 0
                tot = fin.get("total_bytes", 0)
                print("%-6s %-6s %-9s %11s %7s %12s %10.1f %10.1f %6.2f %8s %s" % (
                    "%d%%" % pct, dest, "raw" if comp else "zstd-auto",
                    "%.1f/%.1f" % (mbps, got), fin.get("rounds"),
                    "%.0f" % fin["downtime_ms"] if "downtime_ms" in fin else "-", r0 / 2**20,
                    tot / 2**20, tot / r0 if r0 else 0, fin.get("throttle_percent"),
                    fin.get("result")))
                if rs != 0 or rr != 0:
                    rc_all = 1
                    print("  sender: %s" % m.send.story().replace("\n", "\n  "))
            finally:
                m.kill_all()
                if pct:
                    try:
                        t.cmd("stop")
                    except Exception:
                        pass
                t.quit()
                for f in (m.out, m.into, m.into and m.into + ".pagetrack-incomplete"):
                    if f and os.path.exists(f):
                        os.unlink(f)
                for f in glob.glob(m.out + ".live-*") if m.out else []:
                    os.unlink(f)	# the layers of the chain (doc/migration-protocol.md)
    print("MB/s got: the writer's rate during the migration (frozen and throttled time "
          "included); x_r0: total bytes / bytes of round 0 (everything once, as sent); targets: "
          "downtime <= 300 ms at <= 50%, total <= 1.5x memory at 10%")
    return rc_all


# ---------------------------------------------------------------- main
def on_term(sig, frame):
    raise SystemExit(1)


def main():
    global PT, EXE
    if len(sys.argv) >= 2 and sys.argv[1] == "--proxy":
        return proxy_main(sys.argv[2:])
    if len(sys.argv) >= 2 and sys.argv[1] == "--sink":
        return sink_main(sys.argv[2])
    if len(sys.argv) >= 2 and sys.argv[1] == "--source":
        return source_main(sys.argv[2], sys.argv[3])
    bench_mode = os.environ.get("PT_BENCH") == "1"
    if len(sys.argv) != 2:
        skip_all("usage: test_migrate_net.py BUILD_DIR")
    build = os.path.abspath(sys.argv[1])
    EXE = os.path.join(build, "tests", "snaptarget")
    PT = os.environ.get("PT_MIGTEST_PT") or os.path.join(build, "tools", "pagetrack")
    why = None
    if not os.access(EXE, os.X_OK) or not os.access(PT, os.X_OK):
        why = "%s or %s not built" % (EXE, PT)
    elif os.geteuid() != 0:
        why = "needs root (network namespaces, tc, ptrace of the target)"
    elif not shutil.which("ip") or not shutil.which("tc"):
        why = "ip or tc not found (iproute2)"
    elif any(subprocess.run([PT, sub, "--help"], capture_output=True, timeout=30).returncode
             for sub in ("send", "receive")):
        why = NOT_BUILT
    else:
        h = subprocess.run([PT, "send", "--help"], capture_output=True, text=True, timeout=30)
        if "--no-compress" in h.stdout + h.stderr:
            NOCOMP.append("--no-compress")
    if why and bench_mode:
        print("migrate-net bench skipped: %s" % why)
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    if not bench_mode:
        plan(sum(n for _, n in SECTIONS))
    if why:
        # every subtest printed as skipped: the plan stays the same, and a
        # branch without the commands stays green under meson too
        for name, n in SECTIONS:
            with Section(name, n):
                skip_rest(why)
        done()
    tmp = tempfile.mkdtemp(prefix="pt-mignet-")
    net = None
    try:
        key = new_key(tmp, "mig.key")
        try:
            net = Net(tmp)
        except Exception as e:
            if bench_mode:
                print("bench: cannot make the namespaces: %s" % e)
                sys.exit(1)
            net_why = "cannot make the namespaces: %s" % e
        if bench_mode:
            sys.exit(bench(net, tmp, key))
        only = [x for x in os.environ.get("PT_MIGTEST_ONLY", "").split(",") if x]
        for name, n in SECTIONS:
            with Section(name, n):
                if net is None:
                    skip_rest(net_why)
                elif only and name not in only and name != "net":
                    skip_rest("not in PT_MIGTEST_ONLY")
                elif over_budget():
                    skip_rest("time budget (PT_TEST_TIMEOUT %d s) exhausted" % BUDGET)
                elif name == "net":
                    sec_net(net, tmp)
                elif name == "usage":
                    sec_usage(net, tmp, key)
                elif name == "ok-1g-10":
                    sec_ok(net, tmp, key, "1g", 10, 64, False)
                elif name == "ok-1g-50":
                    sec_ok(net, tmp, key, "1g", 50, 64, False, extra=NOCOMP)
                elif name == "ok-100m-10-into":
                    sec_ok(net, tmp, key, "100m", 10, 16, True, extra=NOCOMP)
                elif name == "ok-lat20-10":
                    sec_ok(net, tmp, key, "lat20", 10, 32, False, extra=NOCOMP)
                elif name == "ok-loss1-10-into":
                    sec_ok(net, tmp, key, "loss1", 10, 32, True, extra=NOCOMP)
                elif name == "150-throttle":
                    sec_ok(net, tmp, key, "100m", 150, 16, False, throttled=True,
                           extra=["--throttle", "auto", "--max-rounds", "15"] + NOCOMP)
                elif name == "150-off":
                    sec_150_off(net, tmp, key)
                elif name == "fail-kill-receiver":
                    sec_kill_receiver(net, tmp, key)
                elif name == "fail-link-down":
                    sec_link_down(net, tmp, key)
                elif name == "fail-link-down-force":
                    sec_link_down(net, tmp, key, force=True)
                elif name == "fail-link-down-commit":
                    sec_link_down_commit(net, tmp, key)
                elif name == "fail-disk-full":
                    sec_disk_full(net, tmp, key)
                elif name == "fail-wrong-key":
                    sec_wrong_key(net, tmp, key)
                elif name == "fail-flip":
                    sec_proxy(net, tmp, key, "flip", 1 << 20)
                elif name == "fail-cut":
                    sec_proxy(net, tmp, key, "cut", 1 << 20)
                elif name == "fail-kill-sender":
                    sec_kill_sender(net, tmp, key)
    finally:
        for p in CHILDREN:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                except OSError:
                    pass
                p.kill()
                p.wait()
        for f in FILES:
            if f and os.path.exists(f):
                os.unlink(f)
        if net:
            net.close()
        shutil.rmtree(tmp, ignore_errors=True)
        if os.path.exists(tmp):
            diag("could not remove %s: %s" % (tmp, os.listdir(tmp)))
    done()


if __name__ == "__main__":
    main()
