"""Responses held for the end of the worker's turn (src/worker/outbox.rs) still go out as soon as
they are finished, as with gunicorn: neither the response iterable's `close()` nor another
connection's app call can keep a finished response from the client.

Each case is an ordering the client can see, run against rgun and real gunicorn 27.0.1: the app
waits (up to 10 s) for a marker file that the test creates only once it has read the response. A
server that held the response until the app returned would make the app time out instead.
rgun holds a response only when the worker is busy (its app call follows the previous one
closely), so the request whose response is to be held comes pipelined right behind another.
"""

import os
import socket
import time

import pytest

from support import GUNICORN

def _server(spawn, exe):
    # rgun holds responses only where connections are kept alive on one runtime thread.
    args = ["-k", "gthread", "--threads", "1", "wsgiapps:app"]
    if exe == "gunicorn":
        return spawn(args, exe=GUNICORN, name="gunicorn")
    return spawn(args, name="rgun")


class _Reader:
    """Responses with a Content-Length body, one at a time, from one connection."""

    def __init__(self, sock):
        self.sock = sock
        self.data = b""

    def _more(self, what):
        chunk = self.sock.recv(65536)
        assert chunk, f"closed before {what}: {self.data!r}"
        self.data += chunk

    def response(self):
        while b"\r\n\r\n" not in self.data:
            self._more("the head")
        head, _, rest = self.data.partition(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(rest) < length:
            self._more("the end of the body")
            head, _, rest = self.data.partition(b"\r\n\r\n")
        self.data = rest[length:]
        return head, rest[:length]


def _wait_file(path, secs=20.0):
    """The content of `path` once a server's app has written it."""
    deadline = time.monotonic() + secs
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.01)
    with open(path) as f:
        return f.read().strip()


def _connect(srv):
    s = socket.create_connection(srv.address, timeout=30)
    return s


@pytest.mark.parametrize("exe", ["rgun", "gunicorn"])
def test_the_response_reaches_the_client_before_close_returns(spawn, tmp_path, exe):
    srv = _server(spawn, exe)
    marker = str(tmp_path / "client-has-it")
    with _connect(srv) as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                  + f"GET /close_waits?marker={marker} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        r = _Reader(s)
        assert r.response()[1] == b"Hello, World!"
        head, body = r.response()
        assert head.startswith(b"HTTP/1.1 200 OK") and body == b"done"
        open(marker, "w").close()
        assert _wait_file(marker + ".result") == "seen"


@pytest.mark.parametrize("exe", ["rgun", "gunicorn"])
def test_another_connections_app_call_does_not_hold_back_a_finished_response(spawn, tmp_path, exe):
    # The second connection is kept alive, waiting for its next request, while the first
    # one's app runs; its request arrives meanwhile and its app runs next, in the turn in
    # which the first response is finished.
    srv = _server(spawn, exe)
    started = str(tmp_path / "first-started")
    marker = str(tmp_path / "client-has-first")
    with _connect(srv) as first, _connect(srv) as second:
        r1, r2 = _Reader(first), _Reader(second)
        second.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert r2.response()[1] == b"Hello, World!"
        first.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                      + f"GET /slow?s=0.3&mark={started} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        _wait_file(started)
        second.sendall(f"GET /waits?marker={marker} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert r1.response()[1] == b"Hello, World!"
        assert r1.response()[1] == b"slept 0.3"
        open(marker, "w").close()
        assert r2.response()[1] == b"seen"
