"""Start/stop one server process and attribute its log output to cases."""
import os
import re
import shlex
import signal
import subprocess
import threading
import time

from .client import Target, exchange, simple_request

LISTEN_RE = re.compile(r"Listening at: (\S+) \((\d+)\)")
BOOT_RE = re.compile(r"Booting worker with pid: (\d+)")
PREFIX_RE = re.compile(r"^\[[^\]]+\] \[(\d+)\] \[([A-Z]+)\] ")


class Stream:
    """Lines read from a pipe by a background thread."""

    def __init__(self, pipe):
        self.lines = []
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self.thread.start()

    def _pump(self, pipe):
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait_for(self, pred, start=0, timeout=30.0):
        """Index of the first line >= start matching pred, or None on timeout/EOF."""
        deadline = time.monotonic() + timeout
        idx = start
        with self.cond:
            while True:
                while idx < len(self.lines):
                    if pred(self.lines[idx]):
                        return idx
                    idx += 1
                remaining = deadline - time.monotonic()
                if self.closed or remaining <= 0:
                    return None
                self.cond.wait(remaining)


class Server:
    """One server process (baseline or candidate) for one matrix configuration."""

    def __init__(self, command, role, setup, tmpdir):
        self.command = shlex.split(command) if isinstance(command, str) else list(command)
        self.role = role            # "baseline" / "candidate"
        self.setup = setup          # matrix.ServerSetup
        self.tmpdir = tmpdir
        self.proc = None
        self.target = None
        self.listen = None
        self.pids = set()
        self.out_pos = 0
        self.err_pos = 0
        self.mark_no = 0
        self.startup_error = None
        self.exit_code = None

    # -- lifecycle -------------------------------------------------------
    def argv(self):
        s = self.setup
        bind = "unix:%s" % os.path.join(self.tmpdir, "s.sock") if s.unix else "127.0.0.1:0"
        # rgun has no control interface yet (a documented difference); both servers run
        # without one so their logs compare.
        args = ["-b", bind, "--access-logfile", "-", "-k", s.worker, "--no-control-socket"]
        return self.command + args + list(s.extra_args) + [s.appspec]

    def start(self, timeout=60.0):
        env = dict(os.environ)
        env.update(self.setup.env)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONHASHSEED"] = "0"  # apps iterate sets (e.g. Flask's Allow header)
        env["CONFORMANCE_TMP"] = self.tmpdir
        env["CONFORMANCE_HOOK_LOG"] = os.path.join(self.tmpdir, "hooks.log")
        self.proc = subprocess.Popen(self.argv(), cwd=self.setup.cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.pids.add(self.proc.pid)
        self.out = Stream(self.proc.stdout)
        self.err = Stream(self.proc.stderr)
        i = self.err.wait_for(lambda l: "Listening at: " in l, timeout=timeout)
        if i is None:
            self.startup_error = "no 'Listening at:' line"
            return False
        m = LISTEN_RE.search(self.err.lines[i])
        self.listen = m.group(1)
        self.pids.add(int(m.group(2)))
        if self.listen.startswith("unix:"):
            self.target = Target("unix", self.listen[5:])
        else:
            host, port = self.listen.split("://", 1)[1].rsplit(":", 1)
            self.target = Target("tcp", (host, int(port)))
        if self.err.wait_for(lambda l: "Booting worker with pid" in l, i, timeout) is None:
            self.startup_error = "no 'Booting worker' line"
            return False
        # First marker: everything before it is the startup log.
        if not self.mark("startup"):
            self.startup_error = "startup marker request failed"
            return False
        return True

    def stop(self, timeout=30.0):
        """SIGTERM the master by pid, wait (bounded), SIGKILL as a last resort."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        self.exit_code = self.proc.returncode
        for st in (self.out, self.err):
            st.thread.join(10)

    # -- per-case log attribution ---------------------------------------
    def mark(self, label):
        """Send a marker request; returns True once both log streams show it."""
        self.mark_no += 1
        token = "%d-%s" % (self.mark_no, label)
        path = "%s/__mark__?c=%s" % (self.setup.prefix, token)
        res = exchange(self.target, [simple_request(self.target, "GET", path,
                                                    [("Connection", "close")])], ["GET"], timeout=30)
        if res["error"]:
            return False
        needle = "__mark__?c=%s" % token
        errneedle = "__mark__ c=%s" % token
        i = self.out.wait_for(lambda l: needle in l, self.out_pos, 30)
        j = self.err.wait_for(lambda l: errneedle in l, self.err_pos, 30)
        if i is None or j is None:
            return False
        self.case_out = self.out.lines[self.out_pos:i]
        self.case_err = self.err.lines[self.err_pos:j]
        self.out_pos, self.err_pos = i + 1, j + 1
        for line in self.case_err:
            m = PREFIX_RE.match(line)
            if m:
                self.pids.add(int(m.group(1)))
        return True

    def tail(self):
        """Lines written after the last marker (call after stop())."""
        return self.out.lines[self.out_pos:], self.err.lines[self.err_pos:]

    def hook_events(self):
        path = os.path.join(self.tmpdir, "hooks.log")
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()

    def all_pids(self):
        for st in (self.err,):
            for line in st.lines:
                m = PREFIX_RE.match(line)
                if m:
                    self.pids.add(int(m.group(1)))
                m = BOOT_RE.search(line)
                if m:
                    self.pids.add(int(m.group(1)))
        return self.pids
