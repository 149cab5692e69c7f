"""The last bytes of a response before a close go out with the FIN (src/worker/cork.rs), but the
app's work after the response does not hold them back once the worker has seen it run long.

rgun sends the last bytes of a closing response with `MSG_MORE`: the kernel keeps them until the
close adds the FIN (one segment instead of two). Whatever runs in between (the iterable's
`close()`, `post_request`) would delay them, and the kernel sends corked bytes only after about
200 ms. So a worker that has seen such work run longer than 1 ms sends the next closing
responses at once, as gunicorn always does: here the app's `close()` waits (polling every 5 ms)
until the client has the response, and the client must get it well before the kernel's 200 ms.
The first such response after a run of fast ones may be the one that waits: that is the cost of
the rule, and the test lets it be.
"""

import os
import socket
import time

import pytest

from support import GUNICORN, RawConn, wait_until


def _server(spawn, exe, worker):
    args = ["-w", "1", "-k", worker, "wsgiapps:app"]
    if exe == "gunicorn":
        return spawn(args, exe=GUNICORN, name="gunicorn")
    return spawn(args, name="rgun")


def _head(path, close):
    extra = "Connection: close\r\n" if close else ""
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


# A body corked behind a `close()` still running arrives after ~200 ms (the kernel's timer).
PROMPT = 0.15


@pytest.mark.parametrize("worker", ["sync", "gthread"])
@pytest.mark.parametrize("exe", ["rgun", "gunicorn"])
@pytest.mark.parametrize("close", [True, False], ids=["client-closes", "server-closes"])
def test_a_slow_close_does_not_hold_back_the_next_closing_responses(spawn, tmp_path, exe, worker, close):
    if worker == "gthread" and not close:
        pytest.skip("gthread keeps the connection alive: that response is not a closing one")
    srv = _server(spawn, exe, worker)
    # Fast closing responses first: rgun corks their last bytes.
    for _ in range(5):
        with socket.create_connection(srv.address, timeout=30) as s:
            s.sendall(_head("/hello", close))
            assert RawConn(s).read_response().body == b"Hello, World!"
    took = []
    for i in range(4):
        marker = str(tmp_path / f"client-has-it-{i}")
        with socket.create_connection(srv.address, timeout=30) as s:
            t0 = time.monotonic()
            s.sendall(_head(f"/close_waits?marker={marker}", close))
            r = RawConn(s)
            resp = r.read_response()
            took.append(time.monotonic() - t0)
            assert resp.status == 200 and resp.body == b"done"
            assert resp.header("connection") == "close"
            open(marker, "w").close()
            # The close() saw the marker, and the connection ends after it.
            wait_until(lambda: os.path.exists(marker + ".result"), 20, what=marker)
            with open(marker + ".result") as f:
                assert f.read().strip() == "seen"
            assert r.f.read() == b""
    # The first may have waited for the kernel; the worker then sends at once.
    assert max(took[1:]) < PROMPT, took
