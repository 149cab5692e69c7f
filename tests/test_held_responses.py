"""Responses held for the end of the worker's turn (src/worker/outbox.rs) still go out as soon as
they are finished, as with gunicorn: neither the response iterable's `close()` nor another
connection's app call can keep a finished response from the client.

Each case is an ordering the client can see, run against rgun and real gunicorn 27.0.1: the app
waits (up to 10 s) for a marker file that the test creates only once it has read the response. A
server that held the response until the app returned would make the app time out instead.
"""

import os
import socket
import time

import pytest

from support import GUNICORN

WORKERS = {
    "sync": [],
    "gthread1": ["-k", "gthread", "--threads", "1"],
}


def _server(spawn, worker, exe):
    args = WORKERS[worker] + ["wsgiapps:app"]
    if exe == "gunicorn":
        return spawn(args, exe=GUNICORN, name="gunicorn")
    return spawn(args, name="rgun")


def _read_response(sock):
    """One response with a Content-Length body: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed inside the body"
        body += chunk
    return head, body


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
@pytest.mark.parametrize("worker", sorted(WORKERS))
def test_the_response_reaches_the_client_before_close_returns(spawn, tmp_path, worker, exe):
    srv = _server(spawn, worker, exe)
    marker = str(tmp_path / "client-has-it")
    with _connect(srv) as s:
        s.sendall(f"GET /close_waits?marker={marker} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head, body = _read_response(s)
        assert head.startswith(b"HTTP/1.1 200 OK") and body == b"done"
        open(marker, "w").close()
        assert _wait_file(marker + ".result") == "seen"


@pytest.mark.parametrize("exe", ["rgun", "gunicorn"])
def test_another_connections_app_call_does_not_hold_back_a_finished_response(spawn, tmp_path, exe):
    # gthread: the second connection is kept alive, waiting for its next request, while the
    # first one's app runs; its request arrives meanwhile and its app runs next, in the turn
    # in which the first response is finished.
    srv = _server(spawn, "gthread1", exe)
    started = str(tmp_path / "first-started")
    marker = str(tmp_path / "client-has-first")
    with _connect(srv) as first, _connect(srv) as second:
        second.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(second)[1] == b"Hello, World!"
        first.sendall(f"GET /slow?s=0.3&mark={started} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        _wait_file(started)
        second.sendall(f"GET /waits?marker={marker} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head, body = _read_response(first)
        assert body == b"slept 0.3"
        open(marker, "w").close()
        head, body = _read_response(second)
        assert body == b"seen"
