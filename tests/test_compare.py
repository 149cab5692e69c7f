"""rgun vs real gunicorn 27.0.1, same app, same request: status line, headers (minus Date/Server), framing, body.

Both servers run `-w 2` (sync). The raw 500 error page is compared byte for byte.
"""

import os
import socket

import pytest

from support import GUNICORN, TESTING_GUNICORN, parse_raw_response, recv_all

FILE_CONTENT = bytes(range(256)) * 100 + b"tail"


@pytest.fixture(scope="module")
def pair(module_spawn, tmp_path_factory):
    d = tmp_path_factory.mktemp("cmp")
    ours = module_spawn(["-w", "2", "wsgiapps:app"], workers=2, name="rgun")
    oracle = module_spawn(["-w", "2", "wsgiapps:app"], exe=GUNICORN, workers=2, name="gunicorn")
    fpath = d / "data.bin"
    fpath.write_bytes(FILE_CONTENT)
    return ours, oracle, str(fpath)


@pytest.fixture(scope="module")
def flask_pair(module_spawn):
    ours = module_spawn(["-w", "2", "flaskapp:app"], workers=2, name="rgun-flask")
    oracle = module_spawn(["-w", "2", "flaskapp:app"], exe=GUNICORN, workers=2, name="gunicorn-flask")
    return ours, oracle


def _norm(r):
    """Everything observable except Date and Server."""
    return {
        "version": r.version,
        "status": r.status,
        "reason": r.reason,
        "headers": r.headers_without("Date", "Server"),
        "framing": r.framing,
        "chunked_raw": r.chunked_raw,
        "body": r.body,
    }


def _compare(ours, oracle, *args, **kw):
    a = ours.request(*args, **kw)
    b = oracle.request(*args, **kw)
    assert _norm(a) == _norm(b)
    return a, b


def _server_header_ok(r):
    assert r.header("Server") == ("gunicorn" if TESTING_GUNICORN else "rgun")
    assert r.header("Date", "").endswith(" GMT")
    # Server and Date come first, in gunicorn's order, then Connection.
    assert [k for k, _ in r.headers[:3]] == ["Server", "Date", "Connection"]


CASES = [
    ("GET", "/hello", [], b"", "HTTP/1.1"),
    ("GET", "/hello", [], b"", "HTTP/1.0"),
    ("GET", "/hello", [("Connection", "keep-alive")], b"", "HTTP/1.1"),
    ("GET", "/stream", [], b"", "HTTP/1.1"),
    ("GET", "/stream", [], b"", "HTTP/1.0"),
    ("GET", "/http10", [], b"", "HTTP/1.1"),
    ("GET", "/http10", [], b"", "HTTP/1.0"),
    ("HEAD", "/head", [], b"", "HTTP/1.1"),
    ("GET", "/head", [], b"", "HTTP/1.1"),
    ("GET", "/write", [], b"", "HTTP/1.1"),
    ("GET", "/excinfo", [], b"", "HTTP/1.1"),
    ("GET", "/headers", [], b"", "HTTP/1.1"),
    ("GET", "/nothing/here", [], b"", "HTTP/1.1"),
    ("POST", "/echo", [("Content-Type", "text/plain")], b"echo me \x00\xff please", "HTTP/1.1"),
    ("POST", "/echo", [("Transfer-Encoding", "chunked")], b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "HTTP/1.1"),
    ("GET", "/big?n=300000", [], b"", "HTTP/1.1"),
]


@pytest.mark.parametrize("method,path,headers,body,version", CASES, ids=[f"{c[0]} {c[1]} {c[4]}" for c in CASES])
def test_same_response_as_gunicorn(pair, method, path, headers, body, version):
    ours, oracle, _ = pair
    a, _ = _compare(ours, oracle, method, path, headers, body, version)
    _server_header_ok(a)


@pytest.mark.parametrize("mode", ["read", "readn", "read0", "readline", "readline_size", "readlines", "iter"])
@pytest.mark.parametrize("chunked", [False, True], ids=["cl", "chunked"])
def test_wsgi_input_methods_same_as_gunicorn(pair, mode, chunked):
    ours, oracle, _ = pair
    data = b"first line\nsecond\n\nfourth line is longer than the others\nno newline at end"
    if chunked:
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (data[:10], data[10:33], data[33:])) + b"0\r\n\r\n"
        hdrs = [("Transfer-Encoding", "chunked")]
    else:
        body, hdrs = data, []
    a, _ = _compare(ours, oracle, "POST", f"/input?mode={mode}", hdrs, body)
    assert a.status == 200


@pytest.mark.parametrize("n", [40000, 65536, 1 << 20])
def test_large_reads_same_as_gunicorn(pair, n):
    ours, oracle, _ = pair
    body = b"a first line\n" + bytes(range(256)) * 1200 + b"tail"
    a, _ = _compare(ours, oracle, "POST", f"/input?mode=bigread&n={n}", [], body)
    assert a.status == 200


def test_large_read_of_a_cut_short_body_same_as_gunicorn(pair):
    # Content-Length promises more than the client sends before it half-closes: the reads end
    # where the body does.
    ours, oracle, _ = pair
    body = b"line\n" + b"x" * 100000
    req = (b"POST /input?mode=bigread&n=40000 HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n"
           b"Connection: close\r\n\r\n" + body)
    got = []
    for srv in (ours, oracle):
        s = srv.connect(10)
        try:
            s.sendall(req)
            s.shutdown(socket.SHUT_WR)
            got.append(recv_all(s, 10))
        finally:
            s.close()
    a, b = (g.split(b"\r\n\r\n", 1)[1] for g in got)
    assert a == b
    assert b"[5, [5, 40000, 40000, 20000]" in a


@pytest.mark.parametrize("cl", ["1", ""], ids=["content-length", "chunked"])
def test_file_wrapper_same_as_gunicorn(pair, cl):
    ours, oracle, fpath = pair
    a, _ = _compare(ours, oracle, "GET", f"/filewrapper?path={fpath}&cl={cl}")
    assert a.body == FILE_CONTENT


def test_500_page_is_byte_identical(pair):
    ours, oracle, _ = pair
    req = b"GET /raise HTTP/1.1\r\nHost: localhost\r\n\r\n"
    a = ours.raw(req)
    b = oracle.raw(req)
    assert a == b
    assert a.startswith(b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n"
                        b"Content-Type: text/html\r\nContent-Length: 141\r\n\r\n<html>")
    assert len(parse_raw_response(a).body) == 141


@pytest.mark.parametrize("req", [
    b"GET /x y HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET /hello HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n",
    b"BAD\r\n\r\n",
], ids=["bad-version", "dup-host", "bad-te", "bad-line"])
def test_error_pages_are_byte_identical(pair, req):
    ours, oracle, _ = pair
    assert ours.raw(req) == oracle.raw(req)


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/", b""),
    ("GET", "/?a=1&b=two", b""),
    ("GET", "/text", b""),
    ("GET", "/stream", b""),
    ("GET", "/missing", b""),
    ("GET", "/redirect", b""),
    ("POST", "/echo", b"flask body \x01\x02"),
    ("HEAD", "/text", b""),
])
def test_flask_same_as_gunicorn(flask_pair, method, path, body):
    ours, oracle = flask_pair
    a, _ = _compare(ours, oracle, method, path, [("User-Agent", "t")], body)
    _server_header_ok(a)


def _expect_exchange(srv):
    s = srv.connect()
    try:
        s.sendall(b"POST /expect HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        first = b""
        while b"\r\n\r\n" not in first:  # bounded by the socket timeout
            b = s.recv(4096)
            if not b:
                break
            first += b
        s.sendall(b"hello")
        from support import recv_all
        return first, recv_all(s)
    finally:
        s.close()


def test_expect_100_continue_same_as_gunicorn(pair):
    ours, oracle, _ = pair
    a_first, a_rest = _expect_exchange(ours)
    b_first, b_rest = _expect_exchange(oracle)
    assert a_first == b_first == b"HTTP/1.1 100 Continue\r\n\r\n"
    ra, rb = parse_raw_response(a_rest), parse_raw_response(b_rest)
    assert _norm(ra) == _norm(rb)
    assert ra.body == b"hello"


def test_wsgi_errors_goes_to_error_log(pair):
    ours, oracle, _ = pair
    for srv in (ours, oracle):
        assert srv.request("GET", "/errors?tag=t1").status == 200
        srv.wait_log(r"(?m)^message to wsgi\.errors t1\nline two\n")


def _send_after_close(srv, first_request, n=200):
    """How often a client that sends again after a response the server closes after finds the
    socket closed on its write (the server closed at once instead of draining like gunicorn).
    Over a unix socket, where a write to a closed peer fails at once."""
    failed = 0
    for _ in range(n):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(srv.address)
            s.sendall(first_request)
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = s.recv(4096)
                if not d:
                    break
                buf += d
            try:
                s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
                recv_all(s)
            except OSError:
                failed += 1
    return failed


@pytest.mark.parametrize("request_head", [
    # Connection: close asked, but the app's response says `Connection: upgrade`
    b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    # keep-alive asked; the sync worker closes anyway
    b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
], ids=["upgrade-response", "sync-closes-keepalive"])
def test_a_client_sending_after_the_response_finds_a_draining_socket(spawn, tmp_path, request_head):
    ours = spawn(["wsgiapps:app"], bind=f"unix:{tmp_path}/rgun.sock", name="rgun")
    oracle = spawn(["wsgiapps:app"], exe=GUNICORN, bind=f"unix:{tmp_path}/gunicorn.sock", name="gunicorn")
    assert _send_after_close(oracle, request_head) == 0
    assert _send_after_close(ours, request_head) == 0
