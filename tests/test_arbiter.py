"""Master/worker lifecycle under signals: worker SIGKILL under load, graceful TERM with requests in flight,
concurrency between sync workers, worker timeout, master SIGKILL."""

import os
import re
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from support import BOOT_RE, TESTING_GUNICORN, pid_alive, wait_until


def _count_lines(path):
    try:
        with open(path) as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def test_killed_worker_is_replaced_quickly_under_load(spawn):
    srv = spawn(["-w", "2", "wsgiapps:app"], workers=2)
    stop = threading.Event()
    ok = [0]
    failures = []
    lock = threading.Lock()

    def load():
        deadline = time.monotonic() + 20
        n = 0
        while not stop.is_set() and time.monotonic() < deadline and n < 20000:
            n += 1
            try:
                r = srv.request("GET", "/hello", timeout=5)
                with lock:
                    if r.status == 200 and r.body == b"Hello, World!":
                        ok[0] += 1
                    else:
                        failures.append((r.status, r.body[:100]))
            except Exception as e:
                with lock:
                    failures.append(repr(e))

    threads = [threading.Thread(target=load, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: ok[0] >= 50, 10, what="load running")
        victim = srv.worker_pids()[0]
        boots_before = len(srv.worker_pids())
        os.kill(victim, signal.SIGKILL)
        t0 = time.monotonic()
        wait_until(lambda: len(srv.worker_pids()) > boots_before, 5, interval=0.005, what="replacement worker")
        elapsed = time.monotonic() - t0
        ok_at_boot = ok[0]
        wait_until(lambda: ok[0] >= ok_at_boot + 50, 10, what="load after replacement")
    finally:
        stop.set()
        for t in threads:
            t.join(25)
    assert elapsed < 1.0, f"replacement booted after {elapsed:.2f}s"
    new = srv.worker_pids()[-1]
    assert new != victim and pid_alive(new)
    assert not pid_alive(victim)
    # Only the requests in flight in the killed worker may fail: at most one per client thread.
    assert len(failures) <= len(threads), failures
    srv.wait_log(rf"\[ERROR\] Worker \(pid:{victim}\) was sent SIGKILL! Perhaps out of memory\?")


@pytest.mark.parametrize("args", [["-k", "gthread", "--threads", "20"], ["-w", "2", "--threads", "10"]],
                         ids=["gthread-t20", "w2-t10"])
def test_term_master_lets_20_inflight_requests_finish(spawn, tmp_path, args):
    workers = 2 if "-w" in args else 1
    srv = spawn(args + ["wsgiapps:app"], workers=workers)
    mark = tmp_path / "started.txt"
    with ThreadPoolExecutor(20) as ex:
        futs = [ex.submit(srv.request, "GET", f"/slow?s=2&mark={mark}", timeout=20) for _ in range(20)]
        wait_until(lambda: _count_lines(mark) >= 20, 15, what="20 requests in flight")
        os.kill(srv.master_pid, signal.SIGTERM)
        results = []
        for f in futs:
            try:
                r = f.result(timeout=25)
                results.append((r.status, r.body))
            except Exception as e:
                results.append(repr(e))
    rc = srv.wait_exit(15)
    assert results == [(200, b"slept 2")] * 20
    assert rc == 0, srv.log()
    log = srv.log()
    assert "[INFO] Handling signal: term" in log
    assert log.rstrip("\n").splitlines()[-1].endswith("[INFO] Shutting down: Master"), log[-2000:]
    for pid in srv.worker_pids():
        assert f"[INFO] Worker exiting (pid: {pid})" in log


def test_sync_second_request_not_blocked_by_slow_one(spawn, tmp_path):
    srv = spawn(["-w", "2", "wsgiapps:app"], workers=2)
    mark = tmp_path / "slow.txt"
    with ThreadPoolExecutor(1) as ex:
        slow = ex.submit(srv.request, "GET", f"/slow?s=3&mark={mark}", timeout=15)
        wait_until(lambda: _count_lines(mark) >= 1, 10, what="slow request in flight")
        t0 = time.monotonic()
        r = srv.request("GET", "/hello", timeout=5)
        elapsed = time.monotonic() - t0
        assert r.status == 200
        assert elapsed < 0.5, f"second request took {elapsed:.2f}s"
        assert slow.result(timeout=15).status == 200


def test_worker_timeout_gives_500_and_replacement(spawn, tmp_path):
    srv = spawn(["-w", "1", "--timeout", "2", "wsgiapps:app"])
    (wpid,) = srv.worker_pids()
    mark = tmp_path / "t.txt"
    t0 = time.monotonic()
    data = srv.raw(f"GET /slow?s=10&mark={mark} HTTP/1.1\r\nHost: a\r\n\r\n".encode(), timeout=15)
    elapsed = time.monotonic() - t0
    assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n"), data[:200]
    assert elapsed < 3.0, f"500 after {elapsed:.2f}s"
    srv.wait_log(rf"\[CRITICAL\] WORKER TIMEOUT \(pid:{wpid}\)")
    srv.wait_log(BOOT_RE.pattern, count=2, timeout=10)
    new = srv.worker_pids()[-1]
    assert new != wpid
    assert not pid_alive(wpid) or wait_until(lambda: not pid_alive(wpid), 5, what="old worker gone")
    assert srv.request("GET", "/pid").body == str(new).encode()


@pytest.mark.skipif(TESTING_GUNICORN, reason="rgun-only guarantee: gunicorn workers notice a dead master only "
                    "after up to timeout/2 s")
def test_kill_9_master_takes_workers_down(spawn):
    srv = spawn(["-w", "2", "wsgiapps:app"], workers=2)
    assert srv.request("GET", "/hello").status == 200
    workers = srv.worker_pids()
    port = srv.port
    os.kill(srv.master_pid, signal.SIGKILL)
    srv.proc.wait(5)
    t0 = time.monotonic()
    # Poll (bounded to 1 s) until every worker is gone.
    while time.monotonic() - t0 < 1.0 and any(pid_alive(p) for p in workers):
        time.sleep(0.02)
    alive = [p for p in workers if pid_alive(p)]
    assert not alive, f"workers still alive 1 s after the master was SIGKILLed: {alive}"
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(1)
    finally:
        s.close()


def test_ttin_ttou(spawn):
    srv = spawn(["-w", "1", "wsgiapps:app"])
    os.kill(srv.master_pid, signal.SIGTTIN)
    srv.wait_log(BOOT_RE.pattern, count=2)
    srv.wait_log(r"\[INFO\] Handling signal: ttin")
    first = srv.worker_pids()[0]
    os.kill(srv.master_pid, signal.SIGTTOU)
    srv.wait_log(r"\[INFO\] Handling signal: ttou")
    # the oldest worker is the one stopped
    srv.wait_log(rf"\[INFO\] Worker exiting \(pid: {first}\)")
    assert wait_until(lambda: srv.live_worker_pids() == srv.worker_pids()[1:], 5, what="one worker left")


def test_hup_reloads_workers(spawn):
    srv = spawn(["-w", "2", "wsgiapps:app"], workers=2)
    old = srv.worker_pids()
    os.kill(srv.master_pid, signal.SIGHUP)
    srv.wait_log(r"\[INFO\] Handling signal: hup")
    srv.wait_log(r"\[INFO\] Hang up: Master")
    srv.wait_log(BOOT_RE.pattern, count=4, timeout=10)
    new = srv.worker_pids()[2:]
    for p in old:
        srv.wait_log(rf"\[INFO\] Worker exiting \(pid: {p}\)", timeout=10)
    wait_until(lambda: sorted(srv.live_worker_pids()) == sorted(new), 10, what="only the new workers alive")
    for _ in range(6):
        r = srv.request("GET", "/pid")
        assert r.status == 200 and int(r.body) in new


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT], ids=["int", "quit"])
def test_quick_shutdown(spawn, tmp_path, sig):
    srv = spawn(["-w", "1", "wsgiapps:app"])
    mark = tmp_path / "m.txt"
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(srv.raw, f"GET /slow?s=5&mark={mark} HTTP/1.1\r\nHost: a\r\n\r\n".encode(), 15)
        wait_until(lambda: _count_lines(mark) >= 1, 10, what="request in flight")
        t0 = time.monotonic()
        os.kill(srv.master_pid, sig)
        rc = srv.wait_exit(10)
        elapsed = time.monotonic() - t0
        try:
            data = fut.result(15)
        except OSError:
            data = b""
    assert rc == 0
    assert elapsed < 2.0, f"quick shutdown took {elapsed:.2f}s"
    # The sync worker's sys.exit(0) happens inside the app call and is caught like an app error: 500 page.
    assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n"), data[:200]
    log = srv.log()
    assert f"[INFO] Handling signal: {sig.name[3:].lower()}" in log
    assert log.rstrip("\n").splitlines()[-1].endswith("[INFO] Shutting down: Master")


def test_graceful_timeout_bounds_term(spawn, tmp_path):
    srv = spawn(["-w", "1", "--graceful-timeout", "1", "wsgiapps:app"])
    (wpid,) = srv.worker_pids()
    mark = tmp_path / "m.txt"
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(srv.raw, f"GET /slow?s=8&mark={mark} HTTP/1.1\r\nHost: a\r\n\r\n".encode(), 15)
        wait_until(lambda: _count_lines(mark) >= 1, 10, what="request in flight")
        t0 = time.monotonic()
        os.kill(srv.master_pid, signal.SIGTERM)
        rc = srv.wait_exit(10)
        elapsed = time.monotonic() - t0
        try:
            data = fut.result(15)
        except OSError:
            data = b""
    assert rc == 0
    assert 0.9 <= elapsed < 2.5, f"TERM with graceful_timeout=1 took {elapsed:.2f}s"
    assert data == b""  # the worker was SIGKILLed: no response
    assert not pid_alive(wpid)
    assert srv.log().rstrip("\n").splitlines()[-1].endswith("[INFO] Shutting down: Master")


def test_gthread_idle_keepalive_does_not_hold_term(spawn):
    srv = spawn(["-w", "1", "-k", "gthread", "--threads", "2", "--keep-alive", "30", "wsgiapps:app"])
    s = srv.connect()
    try:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        from support import RawConn
        c = RawConn(s)
        assert c.read_response().header("Connection") == "keep-alive"
        t0 = time.monotonic()
        os.kill(srv.master_pid, signal.SIGTERM)
        rc = srv.wait_exit(15)
        elapsed = time.monotonic() - t0
        assert c.at_eof(5)
    finally:
        s.close()
    assert rc == 0
    # idle kept-alive connections are capped at 2 s during a graceful stop (not graceful_timeout=30)
    assert elapsed < 3.5, f"master exited {elapsed:.2f}s after TERM"
