"""Cases driven through a real client library (requests) over TCP."""
import hashlib

from . import Case

A = "client-library"


def _obs(r, body=None):
    data = r.content if body is None else body
    return {"status": "%d %s" % (r.status_code, r.reason),
            "headers": [[k, v] for k, v in r.raw.headers.items()],
            "body": data, "framing": "library", "chunks": None, "interim": [], "keep": False}


def lib(name, func, apps=None):
    def fn(server):
        import requests
        host, port = server.target.addr
        base = "http://%s:%d%s" % (host, port, server.setup.prefix)
        out = []
        with requests.Session() as s:
            s.headers["User-Agent"] = "conformance-requests"
            func(s, base, out)
        return {"exchanges": [{"responses": out, "end": "library", "extra": "", "error": None}]}
    return Case(name, A, fn, apps=apps, tcp_only=True)


def _json_api(s, base, out):
    out.append(_obs(s.get(base + "/api/items", params={"limit": 2})))
    out.append(_obs(s.post(base + "/api/items", json={"name": "lib-item", "price": 1})))
    out.append(_obs(s.get(base + "/api/items/77")))


def _multipart(s, base, out):
    files = {"attachment": ("data.bin", b"\x00\x01binary" * 1000, "application/octet-stream")}
    r = s.post(base + "/upload", files=files, data={"title": "lib"})
    out.append(_obs(r))


def _stream(s, base, out):
    with s.get(base + "/large/stream", params={"size": 3 * 1024 * 1024}, stream=True) as r:
        h = hashlib.sha256()
        n = 0
        for chunk in r.iter_content(65536):
            h.update(chunk)
            n += len(chunk)
        out.append(_obs(r, ("%d bytes %s" % (n, h.hexdigest())).encode()))


def _keepalive_session(s, base, out):
    for path in ("/", "/api/items", "/redirect", "/stream"):
        out.append(_obs(s.get(base + path, allow_redirects=False)))


def _generator_upload(s, base, out):
    def gen():
        for i in range(64):
            yield (b"%04d" % i) * 4096
    out.append(_obs(s.post(base + "/upload/raw", data=gen())))


def _dj_session(s, base, out):
    out.append(_obs(s.get(base + "/session/set/", params={"k": "v"})))
    out.append(_obs(s.get(base + "/session/get/")))
    out.append(_obs(s.get(base + "/items", allow_redirects=True)))


def _dj_upload(s, base, out):
    out.append(_obs(s.post(base + "/upload/", files={"doc": ("doc.txt", b"hello " * 5000)}, data={"a": "b"})))


CASES = [
    lib("flask_json_api", _json_api, apps=("flask",)),
    lib("flask_multipart_requests", _multipart, apps=("flask",)),
    lib("flask_stream_iter_content", _stream, apps=("flask",)),
    lib("flask_keepalive_session", _keepalive_session, apps=("flask",)),
    lib("flask_generator_upload_chunked", _generator_upload, apps=("flask",)),
    lib("django_session", _dj_session, apps=("django",)),
    lib("django_upload", _dj_upload, apps=("django",)),
]
