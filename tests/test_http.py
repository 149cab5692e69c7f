"""HTTP/1.x behaviour of rgun workers: keep-alive, framing, HEAD, app errors, close(), write(),
file_wrapper, large bodies (with bounded worker memory)."""

import hashlib
import json
import os
import re
import threading
import time

import pytest

from support import RawConn, parse_raw_response, vm_rss_kb, wait_until


@pytest.fixture(scope="module")
def sync1(module_spawn):
    return module_spawn(["-w", "1", "wsgiapps:app"], name="sync1")


@pytest.fixture(scope="module")
def gthread(module_spawn):
    return module_spawn(["-w", "1", "-k", "gthread", "--threads", "4", "wsgiapps:app"], name="gthread")


# -- per-request objects reused on a thread ------------------------------------------------------

@pytest.mark.parametrize("which", ["sync1", "gthread"])
def test_kept_request_objects_never_serve_a_later_request(request, which):
    """rgun reuses a thread's start_response / write / wsgi.input / wsgi.early_hints objects for
    its next request only when nothing else holds them: objects an app kept stay bound to their
    own (finished) request, and the next request gets new ones and a clean response."""
    srv = request.getfixturevalue(which)
    first = json.loads(srv.request("GET", "/kept?mode=ids").body)
    second = json.loads(srv.request("GET", "/kept?mode=ids").body)
    assert srv.request("GET", "/kept?mode=keep").status == 200
    r = srv.request("GET", "/kept?mode=check")
    assert r.status == 200
    checked = json.loads(r.body)
    if which == "sync1":
        # One thread, nothing kept: the same objects serve the next request.
        assert first == second
    assert checked == {"start_response": True, "write": True, "input": True, "hints": True,
                       "kept_input_read": "", "kept_write": "OSError"}
    assert b"stale" not in r.body and b"Early Hints" not in r.raw_head


# -- connection management -------------------------------------------------------------------

def test_gthread_keepalive_two_requests_one_connection(gthread):
    c = RawConn(gthread.connect())
    try:
        c.send_request("GET", "/pid")
        r1 = c.read_response()
        assert r1.status == 200
        assert r1.header("Connection") == "keep-alive"
        c.send_request("GET", "/hello")
        r2 = c.read_response()
        assert r2.status == 200 and r2.body == b"Hello, World!"
        assert r2.header("Connection") == "keep-alive"
        assert not c.at_eof(0.3)
    finally:
        c.close()


def test_gthread_pipelined_requests_in_order(gthread):
    s = gthread.connect()
    c = RawConn(s)
    try:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /pid HTTP/1.1\r\nHost: a\r\n\r\n"
                  b"GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        r1, r2, r3 = c.read_response(), c.read_response(), c.read_response()
        assert r1.body == b"Hello, World!" and r2.body.isdigit() and r3.body == b"Hello, World!"
        assert r3.header("Connection") == "close"
        assert c.at_eof(5)
    finally:
        c.close()


def test_gthread_http10_keepalive_on_request(gthread):
    c = RawConn(gthread.connect())
    try:
        c.send_request("GET", "/hello", [("Connection", "keep-alive")], version="HTTP/1.0")
        r = c.read_response()
        assert r.version == "HTTP/1.0" and r.header("Connection") == "keep-alive"
        c.send_request("GET", "/hello", version="HTTP/1.0")
        r = c.read_response()
        assert r.header("Connection") == "close"
        assert c.at_eof(5)
    finally:
        c.close()


def test_sync_always_closes(sync1):
    c = RawConn(sync1.connect())
    try:
        c.send_request("GET", "/hello", [("Connection", "keep-alive")])
        r = c.read_response()
        assert r.status == 200
        assert r.header("Connection") == "close"
        assert c.at_eof(5), "sync worker must close the connection after one response"
    finally:
        c.close()


def test_sync_discards_pipelined_requests(sync1):
    data = sync1.raw(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
    assert data.count(b"HTTP/1.1 200 OK") == 1


# -- response framing --------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["sync1", "gthread"])
def test_chunked_when_no_content_length_http11(request, which):
    srv = request.getfixturevalue(which)
    r = srv.request("GET", "/stream")
    assert r.header("Transfer-Encoding") == "chunked"
    assert r.header("Content-Length") is None
    assert r.chunked_raw == b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"
    assert r.body == b"hello world"


@pytest.mark.parametrize("which", ["sync1", "gthread"])
def test_http10_without_content_length_closes(request, which):
    srv = request.getfixturevalue(which)
    data = srv.raw(b"GET /http10 HTTP/1.0\r\n\r\n")
    r = parse_raw_response(data)
    assert r.version == "HTTP/1.0" and r.status == 200
    assert r.header("Transfer-Encoding") is None and r.header("Content-Length") is None
    assert r.header("Connection") == "close"
    assert r.body == b"no length here"


@pytest.mark.parametrize("which", ["sync1", "gthread"])
def test_head_has_no_body(request, which):
    srv = request.getfixturevalue(which)
    data = srv.raw(b"HEAD /head HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Length: 35" in head  # kept for HEAD
    assert rest == b""


def test_head_on_chunked_route_has_no_framing(sync1):
    data = sync1.raw(b"HEAD /stream HTTP/1.1\r\nHost: a\r\n\r\n")
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head
    assert rest == b""


# -- app errors ----------------------------------------------------------------------------------

GUNICORN_500 = (b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Type: text/html\r\n"
                b"Content-Length: 141\r\n\r\n<html>\n  <head>\n    <title>Internal Server Error</title>\n"
                b"  </head>\n  <body>\n    <h1><p>Internal Server Error</p></h1>\n    \n  </body>\n</html>\n")


@pytest.mark.parametrize("which", ["sync1", "gthread"])
def test_app_exception_gives_500_and_worker_survives(request, which):
    srv = request.getfixturevalue(which)
    pid_before = srv.request("GET", "/pid").body
    data = srv.raw(b"GET /raise?n=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert data == GUNICORN_500
    assert srv.request("GET", "/pid").body == pid_before  # same worker, still serving
    assert srv.request("GET", "/hello").status == 200


def test_app_exception_traceback_in_error_log(sync1):
    sync1.raw(b"GET /raise?tb=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    sync1.wait_log(r"\[ERROR\] Error handling request GET /raise\?tb=1\n")
    log = sync1.log()
    i = log.index("Error handling request GET /raise?tb=1\n")
    tb = log[i:i + 3000]
    assert "\nTraceback (most recent call last):\n" in tb, tb
    assert re.search(r'File ".*wsgiapps\.py", line \d+, in raise_\n', tb), tb
    assert "RuntimeError: boom from the test app\n" in tb, tb


def test_exception_after_headers_closes_connection(sync1):
    data = sync1.raw(b"GET /raise_after HTTP/1.1\r\nHost: a\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"\r\n\r\n7\r\npartial\r\n")  # no terminating chunk, no error page
    sync1.wait_log(r"\[ERROR\] Error handling request\n")


# -- close(), write(), file_wrapper ------------------------------------------------------------------

@pytest.mark.parametrize("which", ["sync1", "gthread"])
@pytest.mark.parametrize("method,fail", [("GET", "0"), ("HEAD", "0"), ("GET", "1")], ids=["get", "head", "fail"])
def test_iterable_close_always_called(request, tmp_path, which, method, fail):
    srv = request.getfixturevalue(which)
    mark = tmp_path / "closed.txt"
    data = srv.raw(f"{method} /close?mark={mark}&fail={fail} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    if fail == "1":
        assert body == b"4\r\none \r\n"  # headers went out with the first item; then the connection is closed
    elif method == "HEAD":
        assert body == b""
    else:
        assert body == b"4\r\none \r\n3\r\ntwo\r\n0\r\n\r\n"
    wait_until(lambda: mark.exists() and mark.read_text().count("closed") >= 1, 5, what="close() marker")
    assert mark.read_text().count("closed") == 1


def test_write_callable(sync1):
    r = sync1.request("GET", "/write")
    assert r.status == 200
    assert r.header("Content-Length") == "17"
    assert r.body == b"written then iter"


@pytest.mark.parametrize("which", ["sync1", "gthread"])
@pytest.mark.parametrize("cl", ["1", ""])
def test_file_wrapper_large_file(request, tmp_path, which, cl):
    srv = request.getfixturevalue(which)
    data = os.urandom(3 * 1024 * 1024 + 17)
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    r = srv.request("GET", f"/filewrapper?path={p}&cl={cl}")
    assert r.status == 200
    assert r.framing == ("length" if cl else "chunked")
    assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(data).hexdigest()


def test_excinfo_replaces_status(sync1):
    r = sync1.request("GET", "/excinfo")
    assert r.status == 503
    assert r.header("X-First") == "1" and r.header("X-Second") == "2"  # headers appended (gunicorn quirk)
    assert r.body == b"replaced"


# -- big bodies --------------------------------------------------------------------------------------

def _echo_streaming(srv, total, chunked, timeout=60):
    """POST `total` deterministic bytes to /echo, sending from a thread while reading the response."""
    block = hashlib.sha256(b"seed").digest() * 2048  # 64 KiB
    sent_hash = hashlib.sha256()
    s = srv.connect(timeout)
    head = "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {total}\r\n\r\n"
    errors = []

    def sender():
        try:
            s.sendall(head.encode())
            left = total
            while left > 0:
                b = block[: min(left, len(block))]
                left -= len(b)
                sent_hash.update(b)
                s.sendall(b"%x\r\n%s\r\n" % (len(b), b) if chunked else b)
            if chunked:
                s.sendall(b"0\r\n\r\n")
        except Exception as e:  # reported by the main thread
            errors.append(e)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    c = RawConn(s)
    try:
        r = c.read_response()
    finally:
        t.join(timeout)
        c.close()
    assert not errors, errors
    assert not t.is_alive()
    return r, sent_hash.hexdigest()


@pytest.mark.parametrize("args", [["-k", "sync"], ["-k", "gthread", "--threads", "4"]], ids=["sync", "gthread"])
def test_echo_50mb_with_bounded_worker_memory(spawn, args):
    srv = spawn(["-w", "1"] + args + ["wsgiapps:app"], name="echo")
    assert srv.request("POST", "/echo", body=b"warm up" * 1000).status == 200
    (wpid,) = srv.live_worker_pids()
    rss0 = vm_rss_kb(wpid)
    total = 50 * 1024 * 1024
    r, h = _echo_streaming(srv, total, chunked=False)
    assert r.status == 200
    assert len(r.body) == total
    assert hashlib.sha256(r.body).hexdigest() == h
    rss1 = vm_rss_kb(wpid)
    assert srv.live_worker_pids() == [wpid]
    assert rss1 - rss0 < 20 * 1024, f"worker RSS grew {rss1 - rss0} KiB ({rss0} -> {rss1})"
    # and a chunked upload of the same size, same worker, same bound
    r, h = _echo_streaming(srv, total, chunked=True)
    assert r.status == 200 and r.framing == "chunked"
    assert len(r.body) == total
    assert hashlib.sha256(r.body).hexdigest() == h
    rss2 = vm_rss_kb(wpid)
    assert rss2 - rss0 < 20 * 1024, f"worker RSS grew {rss2 - rss0} KiB after chunked upload ({rss0} -> {rss2})"


def test_chunked_upload_echo_gthread(gthread):
    r, h = _echo_streaming(gthread, 5 * 1024 * 1024 + 3, chunked=True)
    assert r.status == 200
    assert hashlib.sha256(r.body).hexdigest() == h


def test_big_download(sync1):
    n = 20 * 1024 * 1024 + 5
    r = sync1.request("GET", f"/big?n={n}", timeout=60)
    assert r.status == 200 and len(r.body) == n
    block = bytes(range(256)) * 256
    expect = hashlib.sha256()
    left = n
    while left > 0:
        b = block[: min(left, len(block))]
        expect.update(b)
        left -= len(b)
    assert hashlib.sha256(r.body).hexdigest() == expect.hexdigest()
