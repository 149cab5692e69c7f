"""Cases for the Flask app (and its /raw plain-WSGI endpoints)."""
import json

from . import flow, get, raw

FL = ("flask",)
A = "flask"
W = "wsgi"


def fget(name, path, headers=(), **kw):
    return get(name, A, "{P}" + path, headers, apps=FL, **kw)


def _login(fl):
    r = fl.req("POST", "{P}/session/login", [("Content-Type", "application/x-www-form-urlencoded")], b"user=alice")
    fl.req("GET", "{P}/session/whoami")
    fl.req("GET", "{P}/session/whoami")
    fl.req("GET", "{P}/")
    fl.req("GET", "{P}/session/logout")
    fl.req("GET", "{P}/session/whoami")
    return r


def _cookies(fl):
    fl.req("GET", "{P}/cookies/set?flavour=oatmeal&theme=dark%20mode")
    fl.req("GET", "{P}/cookies/show")
    fl.req("GET", "{P}/cookies/delete")
    fl.req("GET", "{P}/cookies/show")


def _tampered_session(fl):
    fl.cookies["session"] = "eyJ1c2VyIjoiZXZlIn0.bogus.signature"
    fl.req("GET", "{P}/session/whoami")


def _conditional(fl):
    r = fl.req("GET", "{P}/conditional")
    etag = [v for k, v in r["responses"][0]["headers"] if k.lower() == "etag"][0]
    fl.req("GET", "{P}/conditional", [("If-None-Match", etag)])
    fl.req("GET", "{P}/conditional", [("If-Modified-Since", "Wed, 15 Nov 2023 00:00:00 GMT")])
    fl.req("GET", "{P}/conditional", [("If-None-Match", '"other"')])
    fl.req("HEAD", "{P}/conditional", [("If-None-Match", etag)])


def _multipart(size):
    import os, sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "apps"))
    from common import big_payload
    data = big_payload(size, seed=b"multipart")
    b = b"----conformanceBoundary7MA4YWxkTrZu0gW"
    parts = [b"--" + b + b'\r\nContent-Disposition: form-data; name="title"\r\n\r\nQuarterly report\r\n',
             b"--" + b + b'\r\nContent-Disposition: form-data; name="attachment"; filename="report.bin"\r\n'
             b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n",
             b"--" + b + b'\r\nContent-Disposition: form-data; name="notes"; filename="n\xc3\xb6tes.txt"\r\n'
             b"Content-Type: text/plain\r\n\r\nsmall file\r\n",
             b"--" + b + b"--\r\n"]
    body = b"".join(parts)
    return b, body


def multipart_case(name, path, size, apps, area):
    boundary, body = _multipart(size)
    data = (b"POST " + b"{P}" + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=" +
            boundary + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    return raw(name, area, data, methods=["POST"], apps=apps)


RAW_ROUTES = ["hello", "write", "hop", "204", "304", "truncate", "bad-status", "bare-status", "reason",
              "bad-header-value", "bad-header-name", "late-error", "exc-info", "early-hints", "dup",
              "empty-chunks", "close", "wsgi-errors", "file-wrapper", "file-wrapper-cl", "big", "upgrade",
              "non-bytes", "status-int", "cl-invalid", "no-read"]

CASES = [
    fget("index", "/"),
    fget("api_list", "/api/items"),
    fget("api_list_limit", "/api/items?limit=1"),
    fget("api_item", "/api/items/3"),
    fget("api_item_404", "/api/items/99"),
    raw("api_create", A, b'POST {P}/api/items HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 35\r\nConnection: close\r\n\r\n{"name": "sprocket", "price": 4.25}', apps=FL),
    raw("api_create_invalid", A, b'POST {P}/api/items HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{"x": 1', apps=FL),
    raw("api_put", A, b'PUT {P}/api/items/1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 17\r\nConnection: close\r\n\r\n{"price": 10.125}', apps=FL),
    fget("api_delete", "/api/items/2", method="DELETE"),
    fget("api_method_not_allowed", "/api/items/2", method="PATCH"),
    fget("form_get", "/form"),
    raw("form_post", A, b"POST {P}/form HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 33\r\nConnection: close\r\n\r\nname=J%C3%BCrgen+%26+Co&tag=a&tag=b", apps=FL),
    raw("form_post_missing", A, b"POST {P}/form HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 5\r\nConnection: close\r\n\r\nname=", apps=FL),
    flow("session_login_flow", A, _login, apps=FL),
    flow("cookies_flow", A, _cookies, apps=FL),
    flow("tampered_session", A, _tampered_session, apps=FL),
    flow("conditional_get", A, _conditional, apps=FL),
    fget("redirect", "/redirect"),
    fget("redirect_permanent", "/redirect/permanent"),
    fget("redirect_external", "/redirect/external"),
    fget("abort_403", "/abort/403"),
    fget("abort_404", "/abort/404"),
    fget("abort_418", "/abort/418"),
    fget("unhandled_exception", "/boom"),
    fget("send_file", "/file"),
    fget("send_file_head", "/file", method="HEAD"),
    fget("send_file_range", "/file", [("Range", "bytes=100-199")]),
    fget("send_file_range_suffix", "/file", [("Range", "bytes=-50")]),
    fget("send_file_range_unsatisfiable", "/file", [("Range", "bytes=999999-")]),
    fget("send_file_if_modified_since", "/file", [("If-Modified-Since", "Wed, 15 Nov 2023 00:00:00 GMT")]),
    fget("send_file_attachment_unicode", "/file/attachment"),
    fget("stream", "/stream"),
    fget("stream_http10", "/stream", version="HTTP/1.0", close=False),
    fget("stream_json", "/stream/json"),
    fget("large_10mb", "/large"),
    fget("large_10mb_stream", "/large/stream"),
    fget("large_stream_head", "/large/stream", method="HEAD"),
    fget("large_odd_size", "/large?size=1000003"),
    multipart_case("upload_multipart_small", "/upload", 3000, FL, A),
    multipart_case("upload_multipart_20mb", "/upload", 20 * 1024 * 1024, FL, A),
    fget("echo_unicode", "/echo/%E2%98%83/snow%20man?w=%C3%BCber&w=2"),
    fget("template_unicode", "/template/unicode?w=%E6%97%A5%E6%9C%AC"),
    fget("request_headers_echo", "/headers", [("X-Request-Id", "abc-123"), ("Accept-Language", "de-DE,de;q=0.9")]),
    fget("status_204", "/status/204"),
    fget("status_304", "/status/304"),
    fget("status_418", "/status/418"),
    fget("status_599", "/status/599"),
    fget("status_204_keepalive", "/status/204", close=False),
    fget("status_304_http10", "/status/304", version="HTTP/1.0", close=False),
    fget("slow_view", "/slow"),
] + [fget("raw_" + r.replace("-", "_"), "/raw/" + r) for r in RAW_ROUTES] + [
    fget("raw_nolength_http10", "/raw/nolength", version="HTTP/1.0", close=False),
    fget("raw_nolength_http11", "/raw/nolength"),
    fget("raw_early_hints_http10", "/raw/early-hints", version="HTTP/1.0", close=False),
    fget("raw_204_head", "/raw/204", method="HEAD"),
    fget("raw_hello_keepalive", "/raw/hello", close=False),
    fget("raw_file_wrapper_head", "/raw/file-wrapper", method="HEAD"),
    fget("raw_file_wrapper_http10", "/raw/file-wrapper", version="HTTP/1.0", close=False),
    raw("raw_read_lines", W, b"POST {P}/raw/read HTTP/1.1\r\nHost: localhost\r\nContent-Length: 18\r\nConnection: close\r\n\r\nfirst line\nsecond\n", apps=FL),
    raw("raw_read_chunked", W, b"POST {P}/raw/read HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nab\nc\r\n3\r\ndef\r\n0\r\n\r\n", apps=FL),
    raw("raw_read_iter", W, b"POST {P}/raw/read-iter HTTP/1.1\r\nHost: localhost\r\nContent-Length: 12\r\nConnection: close\r\n\r\na\nbb\nccc\ndd\n", apps=FL),
    raw("raw_no_read_keepalive", W, b"POST {P}/raw/no-read HTTP/1.1\r\nHost: localhost\r\nContent-Length: 8\r\n\r\nunread!!GET {P}/raw/hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        methods=["POST", "GET"], apps=FL),
    raw("raw_bad_chunk_in_app", W, b"POST {P}/raw/read HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", apps=FL),
]
for c in CASES:
    if c.name.startswith("raw_") and c.area == A:
        c.area = W
