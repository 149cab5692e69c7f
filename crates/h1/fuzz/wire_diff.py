#!/usr/bin/env python3
"""Differential check over real sockets: sends fuzz inputs to rgun and to gunicorn 27.0.1
(both `-k WORKER`, default settings, the `tests/apps/wire_echo.py` app, loopback, port 0)
and compares the raw responses (Date/Server headers and REMOTE_PORT aside).

    python3 crates/h1/fuzz/wire_diff.py [--worker sync|gthread] [--keep-prefix] FILE_OR_DIR...

Each input is a fuzz-corpus file; its 2 configuration bytes are dropped (both servers run
gunicorn's defaults) unless --keep-prefix. Each input is sent whole, then the client
half-closes and reads until the server closes (bounded: 3 s). Prints every difference;
exit status 1 if there was one. Run it from the repository root with the project's venv
(`.venv/bin/python`), which has gunicorn, and with rgun built (`.venv/bin/rgun`).
"""
import argparse
import os
import re
import socket
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from support import GUNICORN, RGUN, Server  # noqa: E402


def norm(b: bytes) -> bytes:
    b = re.sub(rb"\r\n(Date|Server): [^\r]*", b"", b)
    return re.sub(rb'"REMOTE_PORT": "[0-9]+"', b"", b)


def exchange(addr, data: bytes, timeout=3.0):
    s = socket.create_connection(addr, timeout=timeout)
    try:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may have answered and closed already
        buf, closed = b"", False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                buf, closed = buf + b"<RST>", True
                break
            if not chunk:
                closed = True
                break
            buf += chunk
        return norm(buf), closed
    finally:
        s.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", default="sync")
    ap.add_argument("--keep-prefix", action="store_true")
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args()
    files = []
    for p in a.paths:
        if os.path.isdir(p):
            files += sorted(os.path.join(p, f) for f in os.listdir(p))
        else:
            files.append(p)
    tmp = tempfile.mkdtemp(prefix="wire-diff-")
    servers = []
    diffs = 0
    try:
        for exe in (RGUN, GUNICORN):
            srv = Server(["-k", a.worker, "wire_echo:app"], exe=exe, tmpdir=tmp, name=os.path.basename(exe))
            srv.start()
            servers.append(srv)
        for f in files:
            with open(f, "rb") as fh:
                data = fh.read()
            if not a.keep_prefix:
                data = data[2:]
            if not data:
                continue
            ours, theirs = (exchange(s.address, data) for s in servers)
            if ours != theirs:
                diffs += 1
                print(f"DIFF {f} ({len(data)} bytes)")
                print(f"  rgun     closed={ours[1]} {ours[0][:400]!r}")
                print(f"  gunicorn closed={theirs[1]} {theirs[0][:400]!r}")
    finally:
        for s in servers:
            s.stop()
    print(f"{len(files)} inputs, {diffs} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
