"""gthread with several threads: the app runs on a fixed set of `threads` Python threads whose
`threading.local()` data lives across requests, a request that keeps its thread busy holds up no
other connection while a thread is free, and the worker keeps its heartbeat while every thread
is busy (gunicorn's main loop notifies while its pool works)."""

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

from support import RawConn, wait_until


def _lines(path):

    try:
        with open(path) as f:
            return len(f.readlines())
    except FileNotFoundError:
        return 0


def _thread_info(srv, path, conn=None):
    if conn is None:
        r = srv.request("GET", path, timeout=30)
    else:
        conn.send_request("GET", path)
        r = conn.read_response()
    assert r.status == 200, (r.status, r.body)
    ident, count = json.loads(r.body)
    return ident, count


def test_threads_are_a_fixed_set_whose_locals_live_across_requests(spawn):
    srv = spawn(["-w", "1", "-k", "gthread", "--threads", "3", "--keep-alive", "30", "wsgiapps:app"])
    seen = []
    with ThreadPoolExecutor(3) as ex:
        for _ in range(4):
            # Three requests that wait for each other in the app: they need all three threads.
            batch = list(ex.map(lambda _: _thread_info(srv, "/thread?together=3"), range(3)))
            assert len({ident for ident, _ in batch}) == 3, batch
            seen += batch
    # Plain requests on one kept-alive connection and on fresh connections.
    c = RawConn(srv.connect(timeout=30))
    try:
        seen += [_thread_info(srv, "/thread", c) for _ in range(6)]
    finally:
        c.close()
    seen += [_thread_info(srv, "/thread") for _ in range(6)]
    idents = {ident for ident, _ in seen}
    assert len(idents) == 3, seen
    # Each thread's counter went 1, 2, 3, ...: its threading.local() was never reset.
    for ident in idents:
        counts = [count for i, count in seen if i == ident]
        assert counts == list(range(1, len(counts) + 1)), (ident, seen)


def test_a_busy_thread_holds_up_no_other_connection(spawn, tmp_path):
    srv = spawn(["-w", "1", "-k", "gthread", "--threads", "2", "--keep-alive", "30", "wsgiapps:app"])
    kept = RawConn(srv.connect(timeout=10))
    try:
        kept.send_request("GET", "/hello")
        assert kept.read_response().status == 200
        with ThreadPoolExecutor(1) as ex:
            # Several rounds: the busy thread is whichever runtime thread picked the request up.
            for i in range(4):
                release = tmp_path / f"release{i}"
                mark = tmp_path / f"started{i}"
                busy = ex.submit(srv.request, "GET", f"/waitfile?path={release}&mark={mark}", timeout=40)
                wait_until(lambda: _lines(mark) == 1, 10, what="the busy request in the app")
                # The other thread serves a kept-alive connection and new connections; were
                # they stuck behind the busy request, these reads would time out (the busy
                # request only ends once they are done).
                for _ in range(5):
                    kept.send_request("GET", "/hello")
                    r = kept.read_response()
                    assert (r.status, r.body) == (200, b"Hello, World!")
                    r = srv.request("GET", "/hello", timeout=10)
                    assert (r.status, r.body) == (200, b"Hello, World!")
                release.write_text("")
                assert busy.result(40).body == b"found"
    finally:
        kept.close()


def test_heartbeat_continues_while_every_thread_is_busy(spawn, tmp_path):
    srv = spawn(["-w", "1", "-k", "gthread", "--threads", "2", "--timeout", "1", "wsgiapps:app"])
    (wpid,) = srv.worker_pids()
    release = tmp_path / "release"
    mark = tmp_path / "started"
    with ThreadPoolExecutor(2) as ex:
        futs = [ex.submit(srv.request, "GET", f"/waitfile?path={release}&mark={mark}", timeout=40)
                for _ in range(2)]
        wait_until(lambda: _lines(mark) == 2, 10, what="both threads busy")
        # Three timeouts' worth of both threads in the app (the master checks every second).
        time.sleep(3)
        release.write_text("")
        assert [f.result(40).body for f in futs] == [b"found", b"found"]
    assert srv.worker_pids() == [wpid]
    assert "WORKER TIMEOUT" not in srv.log()
