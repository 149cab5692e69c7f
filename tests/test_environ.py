"""The WSGI environ rgun builds vs gunicorn's for the same request (sync -w 1 and gthread -w 2),
with SCRIPT_NAME taken from the process environment."""

import json

import pytest

from support import GUNICORN, RawConn

CONFIGS = {
    "sync-w1": (["-w", "1", "-k", "sync"], 1),
    "gthread-w2": (["-w", "2", "-k", "gthread", "--threads", "4"], 2),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def pair(request, module_spawn):
    args, n = CONFIGS[request.param]
    env = {"SCRIPT_NAME": "/pre"}
    ours = module_spawn(args + ["wsgiapps:app"], workers=n, extra_env=env, name="rgun-" + request.param)
    oracle = module_spawn(args + ["wsgiapps:app"], exe=GUNICORN, workers=n, extra_env=env,
                          name="gunicorn-" + request.param)
    return request.param, ours, oracle


def _environ(srv, path, headers=(), body=b"", version="HTTP/1.1", method="GET"):
    r = srv.request(method, path, list(headers), body, version)
    assert r.status == 200, (r.status, r.body)
    return json.loads(r.body)


REQS = [
    ("GET", "/pre/environ/a%2Fb/%C3%A9?x=1&y=%20#frag", [("Cookie", "a=1"), ("Cookie", "b=2"), ("X-Custom-Thing", "v"),
                                                        ("User-Agent", "tester/1")], b"", "HTTP/1.1"),
    ("POST", "/pre/environ", [("Content-Type", "application/x-www-form-urlencoded")], b"a=b&c=d", "HTTP/1.1"),
    ("GET", "/pre/environ", [], b"", "HTTP/1.0"),
    ("GET", "/pre/environ?", [("Host", "example.com:8080")], b"", "HTTP/1.1"),
    ("GET", "/pre/environ", [("X-Forwarded-Proto", "https"), ("X_Foo", "dropped"), ("X-Forwarded-For", "10.1.2.3")],
     b"", "HTTP/1.1"),
]


@pytest.mark.parametrize("method,path,headers,body,version", REQS, ids=["query-cookies", "post-form", "http10", "host", "forwarded"])
def test_environ_same_as_gunicorn(pair, method, path, headers, body, version):
    name, ours, oracle = pair
    a = _environ(ours, path, headers, body, version, method)
    b = _environ(oracle, path, headers, body, version, method)
    # Inherently different between the two processes: the ports.
    assert a.pop("SERVER_PORT") == str(ours.port)
    assert b.pop("SERVER_PORT") == str(oracle.port)
    assert a.pop("REMOTE_PORT").isdigit()
    b.pop("REMOTE_PORT")
    # Checked on its own in test_early_hints_key (one failure, not one per request).
    a.pop("wsgi.early_hints", None)
    b.pop("wsgi.early_hints", None)
    assert a == b
    # Same key order too (an app iterating the environ sees gunicorn's order).
    assert list(a) == list(b)


# Requests one after another on a kept-alive connection: the same header names twice (rgun fills
# a copy of the previous environ then), other names, repeated names, the first names again, the
# same request twice, changed and unchanged values.
KEPT_ALIVE = [
    ("/pre/environ/a?x=1", [("X-A", "1"), ("Cookie", "c=1"), ("X-Forwarded-Proto", "https")]),
    ("/pre/environ/b", [("X-A", "2"), ("Cookie", "c=2"), ("X-Forwarded-Proto", "http")]),
    ("/pre/environ/c?y", [("Cookie", "c=3"), ("Content-Type", "text/x")]),
    ("/pre/environ/d", [("Cookie", "c=4"), ("Cookie", "d=5"), ("X-A", "3")]),
    ("/pre/environ/e", [("Cookie", "c=6"), ("Cookie", "d=7"), ("X-A", "4")]),
    ("/pre/environ/f?z=2", [("X-A", "5"), ("Cookie", "c=8"), ("X-Forwarded-Proto", "https")]),
    ("/pre/environ/f?z=2", [("X-A", "5"), ("Cookie", "c=8"), ("X-Forwarded-Proto", "https")]),
    ("/pre/environ/g", [("Content-Type", "a/b"), ("Content-Length", "0")]),
    ("/pre/environ/g", [("Content-Type", "a/c"), ("Content-Length", "0")]),
    ("/pre/environ/g", []),
]


def _kept_alive_environs(srv):
    c = RawConn(srv.connect())
    try:
        out = []
        for path, headers in KEPT_ALIVE:
            c.send_request("GET", path, headers)
            r = c.read_response()
            assert r.status == 200, (r.status, r.body)
            assert r.header("Connection") == "keep-alive"
            e = json.loads(r.body)
            for k in ("SERVER_PORT", "REMOTE_PORT", "wsgi.early_hints"):
                e.pop(k, None)
            out.append(e)
        return out
    finally:
        c.close()


def test_kept_alive_environs_same_as_gunicorn(pair):
    """Each request of a kept-alive connection gets the environ (values and key order) gunicorn
    gives it, whether or not it brings the same header names as the request before."""
    name, ours, oracle = pair
    if not name.startswith("gthread"):
        pytest.skip("gunicorn's sync worker closes every connection")
    a = _kept_alive_environs(ours)
    b = _kept_alive_environs(oracle)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x == y, i
        assert list(x) == list(y), i


def test_early_hints_key(pair):
    """gunicorn 25+ puts a `wsgi.early_hints` callable in every HTTP/1 environ (spec 12.1, 11.5)."""
    _, ours, _ = pair
    e = _environ(ours, "/pre/environ")
    assert e.get("wsgi.early_hints") == "<callable>"


def test_environ_values(pair):
    name, ours, _ = pair
    e = _environ(ours, "/pre/environ/x%20y?q=1", [("X-A", "1")])
    assert e["RAW_URI"] == "/pre/environ/x%20y?q=1"
    assert e["SCRIPT_NAME"] == "/pre"
    assert e["PATH_INFO"] == "/environ/x y"
    assert e["QUERY_STRING"] == "q=1"
    assert e["REMOTE_ADDR"] == "127.0.0.1"
    assert e["REMOTE_PORT"].isdigit()
    assert e["SERVER_NAME"] == "127.0.0.1"
    assert e["SERVER_PORT"] == str(ours.port)
    assert e["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert e["SERVER_SOFTWARE"] == "gunicorn/27.0.1"
    assert e["wsgi.version"] == [1, 0]
    assert e["wsgi.url_scheme"] == "http"
    assert e["wsgi.multithread"] is (name.startswith("gthread"))
    assert e["wsgi.multiprocess"] is (name.endswith("w2"))
    assert e["wsgi.run_once"] is False
    assert e["wsgi.input_terminated"] is True
    assert e["wsgi.file_wrapper"] == "<callable>"
    assert "gunicorn.socket" in e and e["__socket_has_fileno"] is True
    assert e["__input_methods"] == ["__iter__", "read", "readline", "readlines"]
    assert e["__errors_methods"] == ["flush", "write", "writelines"]
    assert e["HTTP_X_A"] == "1"
    assert "HTTP_HOST" in e


def test_script_name_mismatch_same_as_gunicorn(pair):
    _, ours, oracle = pair
    req = b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n"
    a = ours.raw(req)
    assert a == oracle.raw(req)
    assert a.startswith(b"HTTP/1.1 500 Bad Request\r\n")


@pytest.mark.parametrize("threads", [1, 4])
def test_interleaved_connections_each_see_their_own_peer(spawn, threads):
    """Two kept-alive connections to one worker, requests alternating between them with the
    same header names: each environ names its own connection (REMOTE_PORT, `gunicorn.socket`),
    and the keys and their order are gunicorn's (rgun fills a copy of the last environ filled on
    its thread, whichever connection that was)."""
    args = ["-w", "1", "-k", "gthread", "--threads", str(threads), "wsgiapps:app"]
    got = {}
    for name, exe in (("rgun", None), ("gunicorn", GUNICORN)):
        srv = spawn(args, exe=exe, workers=1, name=f"{name}-peer-{threads}")
        conns = [RawConn(srv.connect()), RawConn(srv.connect())]
        try:
            keys = []
            for i in range(6):
                c = conns[i % 2]
                c.send_request("GET", "/peer", [("X-A", str(i)), ("Cookie", "c=%d" % i)])
                r = c.read_response()
                assert r.status == 200, (r.status, r.body)
                e = json.loads(r.body)
                port = str(c.sock.getsockname()[1])
                assert e["REMOTE_PORT"] == port, (name, i)
                assert str(e["socket_peer_port"]) == port, (name, i)
                keys.append(e["keys"])
            got[name] = keys
        finally:
            for c in conns:
                c.close()
    assert got["rgun"] == got["gunicorn"]


@pytest.mark.parametrize("kind", ["sync", "gthread"])
def test_one_request_connections_each_get_a_working_socket(spawn, kind):
    """Connections of one request each, one after another (each gets the descriptor number the
    one before had): every `gunicorn.socket` works on its own connection, also when rgun reuses
    the object of a connection nothing holds any more; an object the app kept is a new one for
    each connection and, like gunicorn's sync worker's, has let go of its connection once that
    closed."""
    args = ["-w", "1", "-k", kind, "wsgiapps:app"]
    for name, exe in (("rgun", None), ("gunicorn", GUNICORN)):
        srv = spawn(args, exe=exe, workers=1, name=f"{name}-sock-{kind}")
        for path in ["/peer"] * 3 + ["/socket_kept"] * 3 + ["/peer"] * 3:
            c = RawConn(srv.connect())
            try:
                c.send_request("GET", path, [("Connection", "close")])
                r = c.read_response()
                assert r.status == 200, (name, path, r.status, r.body)
                e = json.loads(r.body)
                assert e["socket_peer_port"] == c.sock.getsockname()[1], (name, path)
                if path == "/socket_kept":
                    assert e["new_object"] is True, name
                    # gunicorn's gthread worker may close a finished connection after it
                    # accepted the next one: there an earlier object may still show its number.
                    if name == "rgun" or kind == "sync":
                        assert e["earlier_filenos"] in ([], [-1]), (name, e)
            finally:
                c.close()
