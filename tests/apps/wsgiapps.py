"""Test WSGI apps, routed on the first PATH_INFO segment: `wsgiapps:app`.

Every route is small and deterministic so rgun's output can be compared byte for byte with gunicorn's.
"""

import json
import os
import sys
import threading
import time
from urllib.parse import parse_qs


def _q(environ):
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}


def _mark(path, text):
    if path:
        with open(path, "a") as f:
            f.write(text + "\n")


def hello(environ, start_response):
    body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def slow(environ, start_response):
    q = _q(environ)
    secs = float(q.get("s", "1"))
    _mark(q.get("mark"), "start %d" % os.getpid())
    time.sleep(secs)
    body = ("slept %s" % q.get("s", "1")).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def spin(environ, start_response):
    """Python work holding the GIL for `us` microseconds (a small framework's request)."""
    end = time.perf_counter() + float(_q(environ).get("us", "50")) / 1e6
    while time.perf_counter() < end:
        pass
    body = b"spun"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _jsonable(v):
    if isinstance(v, (str, bool, int, float)) or v is None:
        return v
    if isinstance(v, tuple):
        return list(v)
    if callable(v):
        return "<callable>"
    return "<object>"


def environ_dump(environ, start_response):
    d = {k: _jsonable(v) for k, v in environ.items()}
    sock = environ.get("gunicorn.socket")
    d["__socket_has_fileno"] = hasattr(sock, "fileno")
    inp = environ.get("wsgi.input")
    d["__input_methods"] = sorted(m for m in ("read", "readline", "readlines", "__iter__") if hasattr(inp, m))
    err = environ.get("wsgi.errors")
    d["__errors_methods"] = sorted(m for m in ("write", "writelines", "flush") if hasattr(err, m))
    body = json.dumps(d, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def echo(environ, start_response):
    """Stream the request body back, 64 KiB at a time (never holds the whole body)."""
    inp = environ["wsgi.input"]
    headers = [("Content-Type", "application/octet-stream")]
    if environ.get("CONTENT_LENGTH"):
        headers.append(("Content-Length", environ["CONTENT_LENGTH"]))
    start_response("200 OK", headers)

    def gen():
        while True:
            b = inp.read(65536)
            if not b:
                break
            yield b

    return gen()


def stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"hello "
        yield b""
        yield b"world"

    return gen()


def file_wrapper(environ, start_response):
    q = _q(environ)
    f = open(q["path"], "rb")
    headers = [("Content-Type", "application/octet-stream")]
    if q.get("cl"):
        headers.append(("Content-Length", str(os.path.getsize(q["path"]))))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](f, 8192)


def raise_(environ, start_response):
    raise RuntimeError("boom from the test app")


def raise_after(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"partial"
        raise RuntimeError("boom after headers")

    return gen()


def write_callable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "17")])
    write(b"written ")
    write(b"then ")
    return [b"iter"]


def exc_info_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
    try:
        raise ValueError("replace the status")
    except ValueError:
        start_response("503 Service Unavailable", [("X-Second", "2"), ("Content-Length", "8")], sys.exc_info())
    return [b"replaced"]


def head(environ, start_response):
    body = b"this body must not be sent for HEAD"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def big(environ, start_response):
    n = int(_q(environ).get("n", str(1024 * 1024)))
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])

    def gen():
        block = bytes(range(256)) * 256  # 64 KiB
        left = n
        while left > 0:
            b = block[: min(left, len(block))]
            left -= len(b)
            yield b

    return gen()


class _ClosingBody:
    def __init__(self, mark, fail):
        self.mark = mark
        self.fail = fail
        self.items = [b"one ", b"two"]

    def __iter__(self):
        for i, it in enumerate(self.items):
            if self.fail and i == 1:
                raise RuntimeError("fail mid-iteration")
            yield it

    def close(self):
        _mark(self.mark, "closed %d" % os.getpid())


def close_app(environ, start_response):
    q = _q(environ)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _ClosingBody(q.get("mark"), q.get("fail") == "1")


def input_app(environ, start_response):
    inp = environ["wsgi.input"]
    mode = _q(environ).get("mode", "read")
    if mode == "read":
        out = [inp.read().decode("latin-1"), inp.read().decode("latin-1")]
    elif mode == "readn":
        out = []
        while True:
            b = inp.read(7)
            out.append(b.decode("latin-1"))
            if not b or len(out) > 1000:
                break
    elif mode == "read0":
        out = [inp.read(0).decode(), inp.read(-1).decode("latin-1"), inp.read(None).decode()]
    elif mode == "readline":
        out = []
        while True:
            b = inp.readline()
            out.append(b.decode("latin-1"))
            if not b or len(out) > 1000:
                break
    elif mode == "readline_size":
        out = [inp.readline(3).decode("latin-1"), inp.readline(100).decode("latin-1"), inp.readline().decode("latin-1")]
    elif mode == "readlines":
        out = [l.decode("latin-1") for l in inp.readlines()]
    elif mode == "iter":
        out = [l.decode("latin-1") for l in inp]
    elif mode == "bigread":
        # A line, then large reads (rgun reads those straight into the result), then the rest.
        import hashlib
        n = int(_q(environ).get("n", "40000"))
        first = inp.readline()
        parts = [first]
        while True:
            b = inp.read(n)
            parts.append(b)
            if len(b) < n:
                break
        data = b"".join(parts)
        out = [len(first), [len(p) for p in parts], hashlib.sha256(data).hexdigest()]
    else:
        out = ["unknown mode"]
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


_thread_local = threading.local()
_barriers = {}
_barriers_lock = threading.Lock()


def thread_info(environ, start_response):
    """`[threading.get_ident(), requests this thread served]`, the count kept in a
    `threading.local()`. With `?together=N`, first waits (up to 20 s) until N requests are in
    this route at the same time, which takes N threads."""
    together = int(_q(environ).get("together", "0"))
    if together:
        with _barriers_lock:
            barrier = _barriers.setdefault(together, threading.Barrier(together))
        barrier.wait(timeout=20)
    _thread_local.count = getattr(_thread_local, "count", 0) + 1
    body = json.dumps([threading.get_ident(), _thread_local.count]).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def wait_file(environ, start_response):
    """Marks `mark`, then waits (up to 30 s) until the file `path` exists."""
    q = _q(environ)
    _mark(q.get("mark"), "start %d" % os.getpid())
    deadline = time.monotonic() + 30
    while not os.path.exists(q["path"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    body = b"found" if os.path.exists(q["path"]) else b"gave up"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def pid(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def env(environ, start_response):
    body = os.environ.get(_q(environ)["k"], "<unset>").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def http10_noclen(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"no length ", b"here"]


def headers_app(environ, start_response):
    body = b"hdrs"
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-Custom", "Value 1"),
                                   ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                                   ("Content-Length", str(len(body)))])
    return [body]


def errors_app(environ, start_response):
    err = environ["wsgi.errors"]
    err.write("message to wsgi.errors %s\n" % _q(environ).get("tag", ""))
    err.writelines(["line two\n"])
    err.flush()
    body = b"logged"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def expect_app(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _wait_for(path, secs=10.0):
    """Polls for `path` (created by a test client); whether it appeared within `secs`."""
    deadline = time.monotonic() + secs
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class _ClosesAfterClient:
    """A finished response whose `close()` waits until the client says it has the response."""

    def __init__(self, marker):
        self.marker = marker

    def __iter__(self):
        yield b"done"

    def close(self):
        _mark(self.marker + ".result", "seen" if _wait_for(self.marker) else "timeout")


def close_waits_app(environ, start_response):
    """Work after the response, in `close()` (werkzeug's `call_on_close`)."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
    return _ClosesAfterClient(_q(environ)["marker"])


def waits_app(environ, start_response):
    """An app call that lasts until the client has created `marker` (or 10 s)."""
    q = _q(environ)
    _mark(q["marker"] + ".started", "started")
    seen = _wait_for(q["marker"])
    body = b"seen" if seen else b"timeout"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def upgrade_app(environ, start_response):
    """A response whose Connection header is the app's `upgrade`, not the server's `close`."""
    start_response("200 OK", [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Content-Length", "0")])
    return [b""]


_KEPT = {}


def kept_objects(environ, start_response):
    """`?mode=keep` keeps this request's server objects (start_response, write, wsgi.input,
    wsgi.early_hints); `?mode=check` reports whether its own objects are new and what the kept
    ones do now; `?mode=ids` reports the ids of its objects (kept by nobody)."""
    mode = _q(environ).get("mode")
    write = start_response("200 OK", [("Content-Type", "application/json")])
    mine = {"start_response": start_response, "write": write, "input": environ["wsgi.input"],
            "hints": environ["wsgi.early_hints"]}
    out = {}
    if mode == "keep":
        _KEPT.clear()
        _KEPT.update(mine)
    elif mode == "check":
        out = {k: v is not _KEPT[k] for k, v in mine.items()}
        out["kept_input_read"] = _KEPT["input"].read().decode()
        try:
            _KEPT["write"](b"stale")
            out["kept_write"] = "wrote"
        except Exception as e:  # noqa: BLE001 - the class is what the test checks
            out["kept_write"] = type(e).__name__
        _KEPT["hints"]([("Link", "</stale.css>; rel=preload")])
    else:
        out = {k: id(v) for k, v in mine.items()}
    del mine, write
    return [json.dumps(out).encode()]


def peer(environ, start_response):
    """The connection as the environ tells it: REMOTE_PORT and `gunicorn.socket`'s peer port."""
    sock = environ["gunicorn.socket"]
    body = json.dumps({
        "REMOTE_PORT": environ.get("REMOTE_PORT"),
        "socket_peer_port": sock.getpeername()[1],
        "keys": list(environ),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


_KEPT_SOCKETS = []


def socket_kept(environ, start_response):
    """Keeps every request's `gunicorn.socket` and reports them: each connection's own object,
    working on its own connection, and the earlier ones let go of their connections."""
    sock = environ["gunicorn.socket"]
    earlier = list(_KEPT_SOCKETS)
    _KEPT_SOCKETS.append(sock)
    body = json.dumps({
        "socket_peer_port": sock.getpeername()[1],
        "new_object": all(s is not sock for s in earlier),
        "earlier_filenos": sorted({s.fileno() for s in earlier}),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


ROUTES = {
    "socket_kept": socket_kept,
    "peer": peer,
    "close_waits": close_waits_app,
    "waits": waits_app,
    "upgrade": upgrade_app,
    "errors": errors_app,
    "expect": expect_app,
    "hello": hello,
    "slow": slow,
    "spin": spin,
    "environ": environ_dump,
    "echo": echo,
    "stream": stream,
    "filewrapper": file_wrapper,
    "raise": raise_,
    "raise_after": raise_after,
    "write": write_callable,
    "excinfo": exc_info_app,
    "head": head,
    "big": big,
    "close": close_app,
    "input": input_app,
    "pid": pid,
    "thread": thread_info,
    "waitfile": wait_file,
    "env": env,
    "http10": http10_noclen,
    "headers": headers_app,
    "kept": kept_objects,
}


def app(environ, start_response):
    seg = environ.get("PATH_INFO", "/").lstrip("/").split("/", 1)[0]
    handler = ROUTES.get(seg)
    if handler is None:
        body = b"not found: " + seg.encode("latin-1")
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    return handler(environ, start_response)


application = app
