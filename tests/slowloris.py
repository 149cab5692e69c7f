#!/usr/bin/env python3
"""Slow-client check: does a server keep answering normal requests while many clients
dribble their request heads one byte at a time?

    slowloris.py HOST:PORT [--conns 500] [--seconds 20] [--byte-interval 0.5]
                 [--probe-interval 0.25] [--deadline 1.0] [--path /]

Opens `--conns` connections that each send an endless request head (request line, then
`X-Slow-N: ...` header lines) one byte every `--byte-interval` seconds, never finishing it.
A connection the server closes is reopened (bounded). Meanwhile a prober sends one normal
`GET` on a fresh connection every `--probe-interval` seconds and records how long the full
response took. After `--seconds`, everything is closed and a summary printed:
max/median/p99 probe latency and the fraction of probes answered within `--deadline`.

Exit status 0 if every probe was answered within the deadline, 1 otherwise, 2 on usage or
setup errors. Loopback only by intent (it is a test tool); every loop and wait is bounded.
"""

from __future__ import annotations

import argparse
import errno
import json
import resource
import selectors
import socket
import sys
import threading
import time
from dataclasses import dataclass, field


def raise_fd_limit(need: int) -> int:
    """Raises the soft RLIMIT_NOFILE to at least `need` (up to the hard limit); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return soft


def slow_stream(i: int):
    """An endless, valid-looking request head, one byte at a time."""
    yield from b"GET /slow HTTP/1.1\r\nHost: localhost\r\n"
    n = 0
    while True:
        yield from b"X-Slow-%d-%d: %s\r\n" % (i, n, b"a" * 20)
        n += 1


@dataclass
class SlowConn:
    idx: int
    sock: socket.socket
    stream: object
    next_at: float
    sent: int = 0


@dataclass
class Result:
    conns: int = 0
    opened: int = 0
    connect_failures: int = 0
    closed_by_server: int = 0
    bytes_sent: int = 0
    probes: list = field(default_factory=list)  # latency in seconds, or None (no answer)
    probe_errors: list = field(default_factory=list)
    deadline: float = 1.0

    def summary(self) -> dict:
        lat = sorted(x for x in self.probes if x is not None)
        n = len(self.probes)
        within = sum(1 for x in self.probes if x is not None and x <= self.deadline)

        def pct(p):
            return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else None

        return {
            "slow_conns": self.conns,
            "slow_opened": self.opened,
            "slow_connect_failures": self.connect_failures,
            "slow_closed_by_server": self.closed_by_server,
            "slow_bytes_sent": self.bytes_sent,
            "probes": n,
            "probes_answered": len(lat),
            "probes_within_deadline": within,
            "fraction_within_deadline": (within / n) if n else 0.0,
            "latency_max_s": lat[-1] if lat else None,
            "latency_p50_s": pct(0.5),
            "latency_p99_s": pct(0.99),
            "unanswered": n - len(lat),
            "first_errors": self.probe_errors[:5],
        }

    @property
    def ok(self) -> bool:
        return bool(self.probes) and all(x is not None and x <= self.deadline for x in self.probes)


def probe(addr, path: str, timeout: float) -> tuple[float | None, str | None]:
    """One GET on a fresh connection; seconds until the whole response arrived."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    try:
        s = socket.create_connection(addr, timeout=timeout)
    except OSError as e:
        return None, f"connect: {e}"
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        buf = b""
        while time.monotonic() < deadline:
            s.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            buf += chunk
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep:
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length" and len(body) >= int(v):
                        return time.monotonic() - t0, None
        if buf.startswith(b"HTTP/") and b"\r\n\r\n" in buf and time.monotonic() < deadline:
            return time.monotonic() - t0, None  # closed-delimited response
        return None, f"no complete response in {timeout}s (got {buf[:60]!r})"
    except OSError as e:
        return None, f"{type(e).__name__}: {e}"
    finally:
        s.close()


def run(addr, *, conns=500, seconds=20.0, byte_interval=0.5, probe_interval=0.25,
        deadline=1.0, path="/", probe_timeout=5.0, out=sys.stderr) -> Result:
    res = Result(conns=conns, deadline=deadline)
    raise_fd_limit(conns + 256)
    sel = selectors.DefaultSelector()
    slow: dict[int, SlowConn] = {}
    reopen_budget = conns * 10

    def open_one(i: int, now: float) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(addr)
        if err not in (0, errno.EINPROGRESS):
            s.close()
            res.connect_failures += 1
            return
        # Spread the first bytes over one interval so the load is even.
        c = SlowConn(i, s, slow_stream(i), now + byte_interval * (i % 100) / 100)
        slow[s.fileno()] = c
        sel.register(s, selectors.EVENT_READ, c)
        res.opened += 1

    def drop(c: SlowConn) -> None:
        sel.unregister(c.sock)
        slow.pop(c.sock.fileno(), None)
        c.sock.close()

    start = time.monotonic()
    for i in range(conns):
        open_one(i, start)
    print(f"slowloris: {res.opened} slow connections open to {addr[0]}:{addr[1]}", file=out)

    # The prober: one thread per probe (bounded: seconds / probe_interval of them).
    results: list = []
    lock = threading.Lock()
    threads = []

    def do_probe():
        lat, err = probe(addr, path, probe_timeout)
        with lock:
            results.append(lat)
            if err:
                res.probe_errors.append(err)

    t_begin = time.monotonic()
    t_end = t_begin + seconds
    next_probe = t_begin
    max_threads = int(seconds / probe_interval) + 2
    while True:
        now = time.monotonic()
        if now >= t_end:
            break
        if now >= next_probe and len(threads) < max_threads:
            t = threading.Thread(target=do_probe, daemon=True)
            t.start()
            threads.append(t)
            next_probe += probe_interval
        # Feed the slow connections whose turn it is.
        for c in list(slow.values()):
            if c.next_at <= now:
                try:
                    c.sock.send(bytes([next(c.stream)]))
                    c.sent += 1
                    res.bytes_sent += 1
                except BlockingIOError:
                    pass  # connect still in progress or buffer full: try next turn
                except OSError:
                    res.closed_by_server += 1
                    drop(c)
                    if reopen_budget > 0:
                        reopen_budget -= 1
                        open_one(c.idx, now)
                    continue
                c.next_at = now + byte_interval
        # Watch for the server closing (or answering) slow connections.
        wait = max(0.0, min(next_probe, t_end, now + 0.02) - time.monotonic())
        for key, _ in sel.select(timeout=wait):
            c = key.data
            try:
                data = c.sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                res.closed_by_server += 1
                drop(c)
                if reopen_budget > 0:
                    reopen_budget -= 1
                    open_one(c.idx, time.monotonic())
    for t in threads:
        t.join(timeout=probe_timeout + 1)
    res.probes = list(results)
    for c in list(slow.values()):
        drop(c)
    sel.close()
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("target", help="HOST:PORT of the server (loopback)")
    ap.add_argument("--conns", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--byte-interval", type=float, default=0.5)
    ap.add_argument("--probe-interval", type=float, default=0.25)
    ap.add_argument("--deadline", type=float, default=1.0)
    ap.add_argument("--probe-timeout", type=float, default=5.0)
    ap.add_argument("--path", default="/")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    a = ap.parse_args(argv)
    host, _, port = a.target.rpartition(":")
    if not host or not port.isdigit():
        ap.error("target must be HOST:PORT")
    if not (1 <= a.conns <= 100_000 and 0 < a.seconds <= 3600):
        ap.error("--conns must be 1..100000 and --seconds 0..3600")
    res = run((host.strip("[]"), int(port)), conns=a.conns, seconds=a.seconds,
              byte_interval=a.byte_interval, probe_interval=a.probe_interval,
              deadline=a.deadline, path=a.path, probe_timeout=a.probe_timeout)
    s = res.summary()
    if a.json:
        print(json.dumps(s, indent=2))
    else:
        fmt = lambda x: "-" if x is None else f"{x * 1000:.1f} ms"  # noqa: E731
        print(f"slow connections: {s['slow_conns']} (opened {s['slow_opened']}, closed by server "
              f"{s['slow_closed_by_server']}, connect failures {s['slow_connect_failures']})")
        print(f"probes: {s['probes']}, answered {s['probes_answered']}, within {a.deadline}s "
              f"{s['probes_within_deadline']} ({s['fraction_within_deadline']:.1%})")
        print(f"latency: max {fmt(s['latency_max_s'])}, p50 {fmt(s['latency_p50_s'])}, "
              f"p99 {fmt(s['latency_p99_s'])}")
        for e in s["first_errors"]:
            print(f"  probe error: {e}")
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
