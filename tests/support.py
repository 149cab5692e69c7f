"""Harness for rgun integration tests: start real `rgun` (or `gunicorn`, the oracle) processes,
wait for readiness by reading their log, talk raw HTTP/1.x to them, and stop them by pid.

Rules kept here: every wait is bounded by a deadline, every process is stopped (TERM, then KILL)
by the fixture that started it, everything listens on loopback (port 0) or a unix socket in a tmp dir.

Set RGUN_TEST_SERVER=gunicorn to run the whole suite against real gunicorn (checks the tests).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
APPS = os.path.join(HERE, "apps")
VENV_BIN = os.path.join(ROOT, ".venv", "bin")


def _exe(name: str) -> str:
    p = os.path.join(VENV_BIN, name)
    return p if os.path.exists(p) else name


RGUN = os.environ.get("RGUN") or _exe("rgun")
GUNICORN = os.environ.get("GUNICORN") or _exe("gunicorn")
# The binary under test. Default rgun; RGUN_TEST_SERVER=gunicorn validates the suite against the oracle.
UNDER_TEST = GUNICORN if os.environ.get("RGUN_TEST_SERVER") == "gunicorn" else RGUN
TESTING_GUNICORN = UNDER_TEST == GUNICORN

LISTEN_RE = re.compile(r"\[INFO\] Listening at: (\S+) \((\d+)\)")
BOOT_RE = re.compile(r"\[INFO\] Booting worker with pid: (\d+)")
LOG_LINE_RE = re.compile(
    r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[(\d+)\] \[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\] (.*)$"
)


def pid_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = data.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def _is_server_process(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        return False
    return b"rgun" in cmd or b"gunicorn" in cmd or b"python" in cmd


def vm_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


def wait_until(pred, timeout: float, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def rewrite_until_logged(srv, path, text, pattern, timeout=15.0, every=0.5):
    """Write `text` to `path` again every `every` seconds until `pattern` (regex) is logged once
    more than before: a reloader's first look at its files races the server's readiness, so one
    write may land before it and go unseen. Writing stops as soon as the line is there."""
    rx = re.compile(pattern)
    n = len(rx.findall(srv.log()))
    deadline = time.monotonic() + timeout
    while True:
        with open(path, "w") as f:
            f.write(text)
        try:
            return srv.wait_log(pattern, timeout=every, count=n + 1)
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise


class Server:
    """One rgun/gunicorn master process.

    args: CLI args *without* the binary and without -b (bind defaults to 127.0.0.1:0 unless `bind` given).
    """

    def __init__(self, args, *, exe=None, tmpdir, workers=1, cwd=APPS, env=None, bind="127.0.0.1:0",
                 log_path=None, name="srv", extra_env=None):
        self.exe = exe or UNDER_TEST
        self.args = list(args)
        self.tmpdir = str(tmpdir)
        self.workers = workers
        self.cwd = cwd
        self.bind = bind
        self.name = name
        os.makedirs(self.tmpdir, exist_ok=True)
        n = 0
        while os.path.exists(os.path.join(self.tmpdir, f"{name}{n}.stderr")):
            n += 1
        self.stdout_path = os.path.join(self.tmpdir, f"{name}{n}.stdout")
        self.stderr_path = os.path.join(self.tmpdir, f"{name}{n}.stderr")
        # Where the error log goes (stderr unless --error-logfile was given).
        self.log_path = log_path or self.stderr_path
        e = dict(os.environ if env is None else env)
        if env is None:
            e.pop("GUNICORN_CMD_ARGS", None)
        e.setdefault("PYTHONUNBUFFERED", "1")
        e.setdefault("TZ", "UTC")
        if extra_env:
            e.update(extra_env)
        self.env = e
        self.proc = None
        self.port = None
        self.address = None  # ("127.0.0.1", port) or unix path
        self.listen_url = None
        self.master_pid = None
        self.known_worker_pids: set[int] = set()

    # -- lifecycle -------------------------------------------------------------------------
    def cmdline(self):
        cmd = [self.exe]
        if self.bind is not None:
            cmd += ["-b", self.bind]
        if self.exe == GUNICORN or os.path.basename(self.exe) == "gunicorn":
            # gunicorn 27 starts a control socket in ~/.gunicorn by default; concurrent runs would clash.
            if "--no-control-socket" not in self.args:
                cmd.append("--no-control-socket")
        return cmd + self.args

    def start(self, wait=True, timeout=20.0):
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            self.cmdline(), cwd=self.cwd, env=self.env, stdout=self._out, stderr=self._err,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self.master_pid = self.proc.pid
        if wait:
            self.wait_ready(timeout=timeout)
        return self

    def wait_ready(self, timeout=20.0, workers=None):
        n = self.workers if workers is None else workers

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.exe} exited with {self.proc.returncode} before ready:\n{self.log()}\n{self.stdout()}")
            log = self.log()
            m = LISTEN_RE.search(log)
            if not m:
                return False
            boots = BOOT_RE.findall(log)
            self.known_worker_pids.update(int(p) for p in boots)
            return m if len(boots) >= n else False

        m = wait_until(ready, timeout, what=f"{self.name} ready ({n} workers)")
        self.listen_url = m.group(1)
        if self.listen_url.startswith("unix:"):
            self.address = self.listen_url[len("unix:"):]
        else:
            hp = self.listen_url.split("://", 1)[1]
            host, port = hp.rsplit(":", 1)
            self.port = int(port)
            self.address = (host.strip("[]"), self.port)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stop the master by pid: sig, then SIGKILL after `timeout`; then any worker still alive."""
        if self.proc is None:
            return None
        self.worker_pids()  # refresh the known pids from the log
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        # Workers should be gone with the master; kill leftovers (bugs) by pid, bounded.
        deadline = time.monotonic() + 3.0
        for pid in sorted(self.known_worker_pids):
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if pid_alive(pid) and _is_server_process(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if f:
                f.close()
        return self.proc.returncode

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    # -- logs ------------------------------------------------------------------------------
    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stderr(self) -> str:
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout(self) -> str:
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def worker_pids(self) -> list[int]:
        pids = [int(p) for p in BOOT_RE.findall(self.log())]
        self.known_worker_pids.update(pids)
        return pids

    def live_worker_pids(self) -> list[int]:
        return [p for p in self.worker_pids() if pid_alive(p)]

    def wait_log(self, pattern, timeout=10.0, count=1, source=None):
        """Wait until `pattern` (regex) occurs `count` times in the log (or in `source()`)."""
        rx = re.compile(pattern)
        src = source or self.log
        return wait_until(lambda: len(rx.findall(src())) >= count and rx.findall(src()), timeout,
                          what=f"{pattern!r} x{count} in log:\n" + "".join(src()[-3000:]))

    # -- clients ---------------------------------------------------------------------------
    def connect(self, timeout=10.0) -> socket.socket:
        if isinstance(self.address, str):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.address)
        return s

    def request(self, method="GET", path="/", headers=None, body=b"", version="HTTP/1.1", timeout=15.0,
                host="localhost"):
        """One request on a fresh connection; returns a Response (the connection is closed)."""
        c = RawConn(self.connect(timeout))
        try:
            c.send_request(method, path, headers, body, version, host=host)
            return c.read_response(method=method)
        finally:
            c.close()

    def raw(self, data: bytes, timeout=10.0) -> bytes:
        """Send raw bytes, read until the server closes the connection."""
        s = self.connect(timeout)
        try:
            s.sendall(data)
            return recv_all(s, timeout)
        finally:
            s.close()

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"


def recv_all(s: socket.socket, timeout=10.0, limit=256 * 1024 * 1024) -> bytes:
    deadline = time.monotonic() + timeout
    chunks = []
    total = 0
    while time.monotonic() < deadline and total < limit:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            b = s.recv(65536)
        except socket.timeout:
            raise TimeoutError("server did not close the connection in %ss; got %r" % (timeout, b"".join(chunks)[:500]))
        except ConnectionResetError:
            break
        if not b:
            break
        chunks.append(b)
        total += len(b)
    return b"".join(chunks)


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list  # [(name, value)] in wire order
    body: bytes
    raw_head: bytes = b""
    chunked_raw: bytes = b""  # the raw chunked framing, when chunked
    framing: str = ""  # "length", "chunked", "close", "none"

    def header(self, name, default=None):
        n = name.lower()
        vals = [v for k, v in self.headers if k.lower() == n]
        return vals[-1] if vals else default

    def header_list(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def headers_without(self, *names):
        drop = {n.lower() for n in names}
        return [(k, v) for k, v in self.headers if k.lower() not in drop]


class RawConn:
    """A client connection that can send several requests and parse responses one by one."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.f = sock.makefile("rb")

    def send_request(self, method="GET", path="/", headers=None, body=b"", version="HTTP/1.1", host="localhost"):
        lines = [f"{method} {path} {version}"]
        hdrs = list(headers or [])
        names = {k.lower() for k, _ in hdrs}
        if host is not None and "host" not in names:
            lines.append(f"Host: {host}")
        for k, v in hdrs:
            lines.append(f"{k}: {v}")
        if body and "content-length" not in names and "transfer-encoding" not in names:
            lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        self.sock.sendall(data)

    def read_response(self, method="GET") -> Response:
        head = b""
        while True:
            line = self.f.readline(65537)
            if not line:
                raise ConnectionError("connection closed before a full response head; got %r" % head)
            head += line
            if line in (b"\r\n", b"\n"):
                break
        text = head.decode("latin-1")
        lines = text.split("\r\n")
        version, status, *reason = lines[0].split(" ", 2)
        headers = []
        for l in lines[1:]:
            if not l:
                continue
            k, v = l.split(":", 1)
            headers.append((k, v.strip()))
        r = Response(version, int(status), reason[0] if reason else "", headers, b"", raw_head=head)
        te = r.header("Transfer-Encoding")
        cl = r.header("Content-Length")
        if method == "HEAD" or r.status in (204, 304) or 100 <= r.status < 200:
            r.framing = "none"
            return r
        if te and "chunked" in te.lower():
            r.framing = "chunked"
            raw = []
            body = []
            while True:
                szl = self.f.readline(1024)
                raw.append(szl)
                if not szl:
                    raise ConnectionError("connection closed inside a chunked body after %d bytes"
                                          % sum(map(len, body)))
                size = int(szl.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:  # trailers
                        t = self.f.readline(65537)
                        raw.append(t)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                data = self.f.read(size)
                crlf = self.f.read(2)
                raw.append(data)
                raw.append(crlf)
                body.append(data)
            r.body = b"".join(body)
            r.chunked_raw = b"".join(raw) if len(r.body) < (1 << 20) else b"<large>"
        elif cl is not None:
            r.framing = "length"
            n = int(cl)
            r.body = self.f.read(n)
        else:
            r.framing = "close"
            r.body = self.f.read()
        return r

    def at_eof(self, timeout=2.0) -> bool:
        """True if the server closed the connection (no more bytes within timeout)."""
        self.sock.settimeout(timeout)
        try:
            return self.f.read(1) == b""
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def close(self):
        try:
            self.f.close()
        finally:
            self.sock.close()


def parse_raw_response(data: bytes) -> Response:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status, *reason = lines[0].split(" ", 2)
    headers = [(l.split(":", 1)[0], l.split(":", 1)[1].strip()) for l in lines[1:] if l]
    return Response(version, int(status), reason[0] if reason else "", headers, body, raw_head=head + b"\r\n\r\n")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def run_cli(args, *, exe=None, cwd=APPS, env=None, timeout=30.0, extra_env=None):
    """Run the binary to completion (bounded); returns CompletedProcess."""
    e = dict(os.environ if env is None else env)
    e.pop("GUNICORN_CMD_ARGS", None)
    e.setdefault("TZ", "UTC")
    if extra_env:
        e.update(extra_env)
    exe = exe or UNDER_TEST
    cmd = [exe] + list(args)
    if os.path.basename(exe) == "gunicorn" and "--no-control-socket" not in args and "-b" in args:
        cmd.append("--no-control-socket")
    p = subprocess.Popen(cmd, cwd=cwd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=10)
        raise
    return subprocess.CompletedProcess(cmd, p.returncode, out.decode("utf-8", "replace"),
                                       err.decode("utf-8", "replace"))


class DatagramCollector:
    """A StatsD server stand-in: a datagram socket (UDP on 127.0.0.1:0, or unix at `path`) whose
    datagrams a thread appends to `lines` (decoded). `address` is what `--statsd-host` takes."""

    def __init__(self, path=None):
        import threading

        if path is None:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
            self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(path)
            self.address = "unix:" + path
        self.sock.settimeout(0.1)
        self.lines: list[str] = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                self.lines.append(self.sock.recv(65536).decode("latin-1"))
            except (socket.timeout, OSError):
                continue

    def wait_for(self, pred, timeout=10.0, what="datagrams"):
        """Waits until `pred(lines)` is true; returns a copy of the lines."""
        wait_until(lambda: pred(list(self.lines)), timeout, what="%s; got %r" % (what, self.lines))
        return list(self.lines)

    def wait_line(self, line, count=1, timeout=10.0):
        return self.wait_for(lambda ls: ls.count(line) >= count, timeout, what="%r x%d" % (line, count))

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


def norm_statsd(line: str) -> str:
    """A datagram with its measured duration replaced (the only value that differs by run)."""
    return re.sub(r"(request\.duration):\d+\.\d+\|ms", r"\1:<ms>|ms", line)


def make_certs(d, servers=(("cert.pem", "key.pem", "localhost"),), ca_cn="rgun-test-ca"):
    """Writes test certificates into directory `d` with the openssl CLI: self-signed server
    certificates `(cert file, key file, CN)` valid for localhost and 127.0.0.1, a CA (`ca.pem`,
    `ca.key`) and a client certificate it signed (`client.pem`, `client.key`). Returns `d`."""
    def o(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    for cert, key, cn in servers:
        o("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
          "-subj", "/CN=" + cn, "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1")
    o("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
      "-subj", "/CN=" + ca_cn)
    o("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=client")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n")
    o("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
      "-out", "client.pem", "-days", "2", "-extfile", "ext.cnf")
    return d
