"""Plain WSGI endpoints that exercise server behaviour frameworks hide.

Mounted under /raw by the Flask app.  Each handler is a tiny WSGI app.
"""
import sys

from common import big_payload


def _hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello ", b"world"]


def _write_callable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written-")
    write(b"")
    return [b"returned"]


def _hop_by_hop(environ, start_response):
    start_response("200 OK", [
        ("Content-Type", "text/plain"), ("Connection", "keep-alive"),
        ("Keep-Alive", "timeout=99"), ("Transfer-Encoding", "gzip"),
        ("Server", "app-server"), ("Date", "yesterday"), ("X-App", "1"),
        ("Content-Length", "2"),
    ])
    return [b"ok"]


def _no_content_with_body(environ, start_response):
    start_response("204 No Content", [("Content-Length", "5"), ("X-A", "b")])
    return [b"hello"]


def _not_modified_with_body(environ, start_response):
    start_response("304 Not Modified", [("Content-Length", "5"), ("ETag", '"x"')])
    return [b"hello"]


def _truncate(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
    return [b"abcdefgh"]


def _bad_status(environ, start_response):
    start_response("2OO OK", [("Content-Type", "text/plain")])
    return [b"x"]


def _bare_status(environ, start_response):
    start_response("299", [("Content-Type", "text/plain")])
    return [b"bare"]


def _custom_reason(environ, start_response):
    start_response("200 Everything Is Fine", [("Content-Type", "text/plain")])
    return [b"fine"]


def _bad_header_value(environ, start_response):
    start_response("200 OK", [("X-Bad", "a\r\nInjected: yes")])
    return [b"x"]


def _bad_header_name(environ, start_response):
    start_response("200 OK", [("X Bad", "v")])
    return [b"x"]


def _late_error(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"partial"
        raise RuntimeError("late failure")
    return gen()


def _exc_info(environ, start_response):
    try:
        raise ValueError("replace")
    except ValueError:
        start_response("200 OK", [("X-First", "1")])
        start_response("503 Service Unavailable", [("X-Second", "2")], sys.exc_info())
    return [b"replaced"]


def _early_hints(environ, start_response):
    hints = environ.get("wsgi.early_hints")
    if hints:
        hints([("Link", "</style.css>; rel=preload; as=style")])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hinted"]


def _dup_headers(environ, start_response):
    start_response("200 OK", [
        ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/"),
        ("X-Multi", "one"), ("x-multi", "two"), ("Content-Type", "text/plain"),
        ("X-Spaces", "  padded  "),
    ])
    return [b"dup"]


def _http10_nolength(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"a", b"b", b"c"]


def _empty_chunks(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"", b"x", b"", b"y", b""]


def _close_tracking(environ, start_response):
    class Body:
        def __iter__(self):
            yield b"closing"

        def close(self):
            environ["wsgi.errors"].write("body closed\n")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Body()


def _wsgi_errors(environ, start_response):
    environ["wsgi.errors"].write("message to wsgi.errors\n")
    environ["wsgi.errors"].flush()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"logged"]


def _read_body(environ, start_response):
    inp = environ["wsgi.input"]
    line = inp.readline()
    rest = inp.read()
    more = inp.read()
    body = ("line=%r rest=%d more=%r" % (line, len(rest), more)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _read_iter(environ, start_response):
    lines = list(environ["wsgi.input"])
    body = ("%d lines: %r" % (len(lines), lines[:5])).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def _no_read(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ignored the body"]


def _file_wrapper(environ, start_response):
    f = open(environ["CONFORMANCE_FILE"] if "CONFORMANCE_FILE" in environ else __file__, "rb")
    start_response("200 OK", [("Content-Type", "text/x-python")])
    return environ["wsgi.file_wrapper"](f, 1024)


def _file_wrapper_cl(environ, start_response):
    f = open(__file__, "rb")
    f.seek(10)
    start_response("200 OK", [("Content-Type", "text/x-python"), ("Content-Length", "100")])
    return environ["wsgi.file_wrapper"](f)


def _big(environ, start_response):
    data = big_payload(2 * 1024 * 1024)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [data[i:i + 65536] for i in range(0, len(data), 65536)]


def _upgrade(environ, start_response):
    start_response("200 OK", [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Content-Length", "0")])
    return [b""]


def _non_bytes(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["text not bytes"]


def _status_int(environ, start_response):
    start_response(200, [("Content-Type", "text/plain")])
    return [b"x"]


def _cl_invalid(environ, start_response):
    start_response("200 OK", [("Content-Length", "abc")])
    return [b"x"]


ROUTES = {
    "/hello": _hello, "/write": _write_callable, "/hop": _hop_by_hop,
    "/204": _no_content_with_body, "/304": _not_modified_with_body,
    "/truncate": _truncate, "/bad-status": _bad_status, "/bare-status": _bare_status,
    "/reason": _custom_reason, "/bad-header-value": _bad_header_value,
    "/bad-header-name": _bad_header_name, "/late-error": _late_error,
    "/exc-info": _exc_info, "/early-hints": _early_hints, "/dup": _dup_headers,
    "/nolength": _http10_nolength, "/empty-chunks": _empty_chunks,
    "/close": _close_tracking, "/wsgi-errors": _wsgi_errors, "/read": _read_body,
    "/read-iter": _read_iter, "/no-read": _no_read, "/file-wrapper": _file_wrapper,
    "/file-wrapper-cl": _file_wrapper_cl, "/big": _big, "/upgrade": _upgrade,
    "/non-bytes": _non_bytes, "/status-int": _status_int, "/cl-invalid": _cl_invalid,
}


def raw_app(environ, start_response):
    handler = ROUTES.get(environ.get("PATH_INFO", ""))
    if handler is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no raw route"]
    return handler(environ, start_response)
