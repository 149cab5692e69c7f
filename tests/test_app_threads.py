"""The app's own Python threads keep running beside the worker: while it waits for requests
(rgun's single-threaded workers hold the GIL while they serve and let go of it only while they
wait: `src/python/tstate.rs`) and while it serves a stream of requests (CPython's switch
interval hands the GIL over inside the app)."""

import time

import pytest

from support import GUNICORN, RawConn


def _server(spawn, exe, args):
    args = ["-w", "1", *args, "ticker:app"]
    if exe == "gunicorn":
        return spawn(args, exe=GUNICORN, name="gunicorn")
    return spawn(args, name="rgun")


def _ticks(srv):
    r = srv.request("GET", "/ticks", timeout=30)
    assert r.status == 200, (r.status, r.body)
    return int(r.body)


WORKERS = {
    "sync": ["-k", "sync"],
    "gthread1": ["-k", "gthread", "--threads", "1"],
    "gthread4": ["-k", "gthread", "--threads", "4"],
}


@pytest.mark.parametrize("worker", list(WORKERS))
@pytest.mark.parametrize("exe", ["rgun", "gunicorn"])
def test_an_app_thread_runs_while_the_worker_waits(spawn, exe, worker):
    srv = _server(spawn, exe, WORKERS[worker])
    before = _ticks(srv)
    time.sleep(0.5)  # the worker idles: nothing to serve
    after = _ticks(srv)
    # A tick every 5 ms: about 100 in half a second; a thread starved of the GIL gets none.
    assert after - before >= 25, (before, after)


@pytest.mark.parametrize("worker", ["sync", "gthread1"])
@pytest.mark.parametrize("exe", ["rgun", "gunicorn"])
def test_an_app_thread_runs_while_the_worker_is_busy(spawn, exe, worker):
    srv = _server(spawn, exe, WORKERS[worker])
    before = _ticks(srv)
    seen = before
    # Requests back to back for half a second, on one kept-alive connection where the worker
    # keeps it (sync closes it; then each request is a new connection).
    deadline = time.monotonic() + 0.5
    conn = None
    while time.monotonic() < deadline:
        if conn is None:
            conn = RawConn(srv.connect(timeout=30))
        conn.send_request("GET", "/ticks")
        r = conn.read_response()
        assert r.status == 200, (r.status, r.body)
        seen = int(r.body)
        if (r.header("connection") or "").lower() == "close":
            conn.close()
            conn = None
    if conn is not None:
        conn.close()
    assert seen - before >= 10, (before, seen)
