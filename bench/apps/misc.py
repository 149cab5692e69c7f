"""Body-size, streaming and upload scenarios (S5-S7), routed by PATH_INFO.

/bytes/N   GET: N bytes returned as a one-element list (bodies are built once and cached)
/stream    GET: a generator yielding 16 chunks of 64 KiB
/echo      POST: wsgi.input.read() whole, returned as a one-element list
/echoi     POST: wsgi.input read in 4 KiB chunks and yielded back (granian's "echo iter")
/upload    POST: wsgi.input read in 64 KiB chunks and discarded; the body is the byte count
"""
_cache = {}
CHUNK64 = b"s" * 65536


def _bytes(n):
    b = _cache.get(n)
    if b is None:
        b = _cache[n] = (b"0123456789abcdef" * (n // 16 + 1))[:n]
    return b


def _length(environ):
    try:
        return int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        return -1


def _stream():
    for _ in range(16):
        yield CHUNK64


def _echoi(inp):
    while True:
        c = inp.read(4096)
        if not c:
            return
        yield c


def app(environ, start_response):
    path = environ["PATH_INFO"]
    inp = environ["wsgi.input"]
    if path.startswith("/bytes/"):
        body = _bytes(int(path[7:]))
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _stream()
    if path == "/echo":
        n = _length(environ)
        body = inp.read() if n < 0 else inp.read(n)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/echoi":
        hdrs = [("Content-Type", "application/octet-stream")]
        n = _length(environ)
        if n >= 0:
            hdrs.append(("Content-Length", str(n)))
        start_response("200 OK", hdrs)
        return _echoi(inp)
    if path == "/upload":
        total = 0
        while True:
            c = inp.read(65536)
            if not c:
                break
            total += len(c)
        body = str(total).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]
