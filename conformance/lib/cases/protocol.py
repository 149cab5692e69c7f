"""HTTP/1.x protocol cases that apply to every app (gunicorn handles them before/around the app)."""
from . import get, raw

H = b"Host: localhost\r\n"
C = b"Connection: close\r\n"
A = "http"
K = "keepalive"
E = "errors"
B = "bodies"
U = "uris"
F = "forwarding"
L = "logging"

BIG_BODY = 20 * 1024 * 1024


def _chunked(data, size=1 << 20):
    out = []
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        out.append(b"%X\r\n" % len(piece) + piece + b"\r\n")
    return b"".join(out) + b"0\r\n\r\n"


def _payload(n):
    import sys, os
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "apps"))
    from common import big_payload
    return big_payload(n, seed=b"upload")


_BIG = None


def big():
    global _BIG
    if _BIG is None:
        _BIG = _payload(BIG_BODY)
    return _BIG


def big_upload(name, chunked):
    def fn(server):
        from ..client import exchange
        from . import expand
        data = big()
        if chunked:
            head = b"POST {POST} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            body = _chunked(data)
        else:
            head = b"POST {POST} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(data)
            body = data
        return {"exchanges": [exchange(server.target, [expand(server, head) + body], ["POST"], timeout=120)]}
    from . import Case
    return Case(name, B, fn)


CASES = [
    # --- basic request/response ------------------------------------------------
    get("get_close", A, "{JSON}"),
    get("get_http10", A, "{JSON}", version="HTTP/1.0", close=False),
    get("get_http10_keepalive", A, "{JSON}", [("Connection", "keep-alive")], version="HTTP/1.0", close=False),
    get("head", A, "{JSON}", method="HEAD"),
    get("head_http10", A, "{JSON}", method="HEAD", version="HTTP/1.0", close=False),
    get("get_default_keepalive", A, "{JSON}", close=False),
    get("options", A, "{JSON}", method="OPTIONS"),
    get("options_star", A, "*", method="OPTIONS"),
    get("delete_env", A, "{ENV}", method="DELETE"),
    get("not_found", A, "{P}/definitely/not/here"),
    get("env_dump", A, "{ENV}?a=1&b=two&a=3", [("X-Custom", "custom-value"), ("Accept", "*/*")]),
    get("env_dump_http10", A, "{ENV}", version="HTTP/1.0", close=False),
    get("env_no_host_http10", A, "{ENV}", version="HTTP/1.0", close=False, headers=[("Host", "")]),
    raw("get_no_host_http11", A, b"GET {ENV} HTTP/1.1\r\nConnection: close\r\n\r\n"),
    get("host_with_port", A, "{ENV}", [("Host", "example.com:8080")]),
    get("connection_token_list", A, "{JSON}", [("Connection", "keep-alive, Upgrade")], close=False),
    get("connection_upper_close", A, "{JSON}", [("Connection", "CLOSE")], close=False),
    # --- keep-alive, pipelining, half-close, slow clients ----------------------
    raw("two_sequential", K, None, steps=[b"GET {JSON} HTTP/1.1\r\n" + H + b"\r\n", ("read", 1),
                                           b"GET {ENV} HTTP/1.1\r\n" + H + C + b"\r\n"], methods=["GET", "GET"]),
    raw("three_sequential_last_keepalive", K, None, steps=[
        b"GET {JSON} HTTP/1.1\r\n" + H + b"\r\n", ("read", 1),
        b"HEAD {JSON} HTTP/1.1\r\n" + H + b"\r\n", ("read", 1),
        b"GET {ENV} HTTP/1.1\r\n" + H + b"\r\n"], methods=["GET", "HEAD", "GET"]),
    raw("pipelined_three", K, (b"GET {JSON} HTTP/1.1\r\n" + H + b"\r\n") * 2 + b"GET {JSON} HTTP/1.1\r\n" + H + C + b"\r\n",
        methods=["GET", "GET", "GET"]),
    raw("pipelined_head_middle", K, b"GET {JSON} HTTP/1.1\r\n" + H + b"\r\nHEAD {JSON} HTTP/1.1\r\n" + H +
        b"\r\nGET {ENV} HTTP/1.1\r\n" + H + C + b"\r\n", methods=["GET", "HEAD", "GET"]),
    raw("pipelined_close_middle", K, b"GET {JSON} HTTP/1.1\r\n" + H + C + b"\r\nGET {ENV} HTTP/1.1\r\n" + H + C + b"\r\n",
        methods=["GET"]),
    raw("pipelined_post_then_get", K, b"POST {POST} HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhelloGET {JSON} HTTP/1.1\r\n" + H + C + b"\r\n",
        methods=["POST", "GET"]),
    raw("http10_keepalive_sequence", K, None, steps=[
        b"GET {JSON} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", ("read", 1),
        b"GET {JSON} HTTP/1.0\r\n\r\n"], methods=["GET", "GET"]),
    raw("half_close_after_request", K, b"GET {JSON} HTTP/1.1\r\n" + H + b"\r\n", shut_wr=True),
    raw("half_close_http10", K, b"GET {ENV} HTTP/1.0\r\n\r\n", shut_wr=True),
    raw("half_close_mid_headers", K, b"GET {JSON} HTTP/1.1\r\nHost: loc", shut_wr=True, methods=[]),
    raw("half_close_mid_body", K, b"POST {POST} HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\nonly-ten!!", shut_wr=True),
    raw("empty_connection", K, b"", shut_wr=True, methods=[]),
    raw("slow_request", K, b"GET {ENV}?slow=1 HTTP/1.1\r\n" + H + b"User-Agent: slowpoke/1.0\r\n" + C + b"\r\n", slow=True),
    raw("slow_post", K, b"POST {POST} HTTP/1.1\r\n" + H + b"Content-Length: 26\r\n" + C + b"\r\nabcdefghijklmnopqrstuvwxyz", slow=True),
    raw("leading_crlf", K, b"\r\n\r\nGET {JSON} HTTP/1.1\r\n" + H + C + b"\r\n", methods=["GET"]),
    # --- request bodies --------------------------------------------------------
    raw("post_content_length", B, b"POST {POST} HTTP/1.1\r\n" + H + b"Content-Type: text/plain\r\nContent-Length: 11\r\n" + C + b"\r\nhello world"),
    raw("post_chunked", B, b"POST {POST} HTTP/1.1\r\n" + H + b"Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n" + C +
        b"\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
    raw("post_chunked_ext_trailer", B, b"POST {POST} HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n" + C +
        b"\r\n5;name=value\r\nhello\r\n0\r\nX-Trailer: yes\r\n\r\n"),
    raw("post_chunked_lowercase_hex", B, b"POST {POST} HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n" + C +
        b"\r\na\r\n0123456789\r\n0\r\n\r\n"),
    raw("post_empty", B, b"POST {POST} HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n" + C + b"\r\n"),
    raw("post_expect_continue", B, b"POST {POST} HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 4\r\n" + C + b"\r\nbody"),
    raw("post_form_urlencoded", B, b"POST {ENV} HTTP/1.1\r\n" + H + b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 13\r\n" + C + b"\r\nname=x&tag=a"),
    raw("get_with_body", B, b"GET {ENV} HTTP/1.1\r\n" + H + b"Content-Length: 4\r\n" + C + b"\r\nabcd"),
    raw("body_not_read_keepalive", B, b"POST {JSON} HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\n0123456789GET {JSON} HTTP/1.1\r\n" + H + C + b"\r\n",
        methods=["POST", "GET"]),
    big_upload("upload_20mb_content_length", False),
    big_upload("upload_20mb_chunked", True),
    get("large_response", B, "{BIG}"),
    get("large_response_head", B, "{BIG}", method="HEAD"),
    # --- URIs ------------------------------------------------------------------
    get("percent_encoded_path", U, "{ECHO}/caf%C3%A9/a%2Fb/%20x?q=%E2%9C%93&r=a+b"),
    raw("raw_utf8_path", U, "GET {ECHO}/naïve/日本?ü=ö HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode("utf-8")),
    get("latin1_percent", U, "{ECHO}/%E9t%E9"),
    get("fragment", U, "{ECHO}/frag?x=1#section"),
    get("double_slash", U, "{P}//echo//a//b"),
    get("dot_segments", U, "{ECHO}/a/../b/./c"),
    get("absolute_form", U, "http://example.com{ENV}?abs=1"),
    get("env_percent_query", U, "{ENV}?q=%25%26%3D&empty=&flag"),
    get("long_query", U, "{ENV}?" + "&".join("k%d=v%d" % (i, i) for i in range(150))),
    get("semicolon_path", U, "{ECHO}/a;b=c/d"),
    # --- error responses written by the server ---------------------------------
    raw("invalid_request_line", E, b"GARBAGE\r\n\r\n", methods=["GET"]),
    raw("lowercase_method", E, b"get {JSON} HTTP/1.1\r\n" + H + b"\r\n", methods=["GET"]),
    raw("bad_version", E, b"GET {JSON} HTTP/9.9\r\n" + H + b"\r\n", methods=["GET"]),
    raw("bad_version_token", E, b"GET /x y HTTP/1.1\r\n" + H + b"\r\n", methods=["GET"]),
    raw("http_version_garbage", E, b"GET {JSON} HTTX/1.1\r\n" + H + b"\r\n", methods=["GET"]),
    raw("uri_too_long", E, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n" + H + b"\r\n", methods=["GET"]),
    raw("too_many_headers", E, b"GET {JSON} HTTP/1.1\r\n" + H + b"".join(b"X-H%d: v\r\n" % i for i in range(120)) + b"\r\n", methods=["GET"]),
    raw("header_too_large", E, b"GET {JSON} HTTP/1.1\r\n" + H + b"X-Big: " + b"b" * 9000 + b"\r\n\r\n", methods=["GET"]),
    raw("header_space_before_colon", E, b"GET {JSON} HTTP/1.1\r\nHost : localhost\r\n\r\n", methods=["GET"]),
    raw("header_invalid_name", E, b"GET {JSON} HTTP/1.1\r\n" + H + b"Bad{Header}: x\r\n\r\n", methods=["GET"]),
    raw("header_obs_fold", E, b"GET {JSON} HTTP/1.1\r\n" + H + b"X-Fold: a\r\n  b\r\n\r\n", methods=["GET"]),
    raw("header_nul_value", E, b"GET {JSON} HTTP/1.1\r\n" + H + b"X-Nul: a\x00b\r\n\r\n", methods=["GET"]),
    raw("duplicate_host", E, b"GET {JSON} HTTP/1.1\r\n" + H + b"Host: other\r\n\r\n", methods=["GET"]),
    raw("cl_and_te", E, b"POST {POST} HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", methods=["POST"]),
    raw("duplicate_cl_conflict", E, b"POST {POST} HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", methods=["POST"]),
    raw("cl_not_numeric", E, b"POST {POST} HTTP/1.1\r\n" + H + b"Content-Length: five\r\n\r\nhello", methods=["POST"]),
    raw("cl_negative", E, b"POST {POST} HTTP/1.1\r\n" + H + b"Content-Length: -5\r\n\r\n", methods=["POST"]),
    raw("te_unsupported", E, b"POST {POST} HTTP/1.1\r\n" + H + b"Transfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n", methods=["POST"]),
    raw("te_gzip_chunked", E, b"POST {POST} HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", methods=["POST"]),
    raw("te_http10", E, b"POST {POST} HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", methods=["POST"]),
    raw("expect_unknown", E, b"POST {POST} HTTP/1.1\r\n" + H + b"Expect: teapot\r\nContent-Length: 1\r\n\r\nx", methods=["POST"]),
    raw("bad_chunk_size", E, b"POST {POST} HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", methods=["POST"]),
    raw("bad_chunk_terminator", E, b"POST {POST} HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", methods=["POST"]),
    raw("lf_only_line_endings", E, b"GET {JSON} HTTP/1.1\nHost: localhost\nConnection: close\n\n", methods=["GET"]),
    raw("connect_method", E, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", methods=["CONNECT"]),
    raw("unknown_method_token", E, b"PURGE {JSON} HTTP/1.1\r\n" + H + C + b"\r\n", methods=["PURGE"]),
    raw("error_then_pipelined", E, b"GARBAGE\r\n\r\nGET {JSON} HTTP/1.1\r\n" + H + b"\r\n", methods=["GET"]),
    # --- forwarding / scheme headers -------------------------------------------
    get("forwarded_proto_https", F, "{ENV}", [("X-Forwarded-Proto", "https"), ("X-Forwarded-For", "203.0.113.9, 10.0.0.1"),
                                              ("X-Forwarded-Host", "shop.example.com")]),
    get("forwarded_ssl_on", F, "{ENV}", [("X-Forwarded-Ssl", "on")]),
    get("forwarded_scheme_contradiction", F, "{ENV}", [("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "off")]),
    get("forwarded_protocol_ssl", F, "{ENV}", [("X-Forwarded-Protocol", "ssl")]),
    get("x_scheme_header", F, "{ENV}", [("X-Scheme", "https")]),
    get("underscore_headers", F, "{ENV}", [("X_Foo", "dropped?"), ("X-Foo", "kept")]),
    get("script_name_header", F, "{ENV}", [("SCRIPT_NAME", "/proxied"), ("PATH_INFO", "/evil")]),
    get("remote_user_header", F, "{ENV}", [("REMOTE_USER", "mallory")]),
    get("forwarded_rfc7239", F, "{ENV}", [("Forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43")]),
    # --- access / error log atoms ----------------------------------------------
    get("basic_auth_user", L, "{JSON}", [("Authorization", "Basic dXNlcjpwYXNzd29yZA==")]),
    get("basic_auth_unicode", L, "{JSON}", [("Authorization", "Basic w7xzZXI6cHc=")]),
    get("bearer_auth", L, "{JSON}", [("Authorization", "Bearer abc.def")]),
    get("referer_and_agent", L, "{JSON}", [("Referer", "https://example.com/from?x=\"q\""), ("User-Agent", "Mozilla/5.0 (X11) \"quoted\"")]),
    get("custom_header_atom", L, "{JSON}?x=1", [("X-Custom", "custom \"value\"")]),
    get("duplicate_custom_header", L, "{JSON}", [("X-Custom", "first"), ("X-Custom", "second")]),
    get("two_cookie_headers", L, "{ENV}", [("Cookie", "a=1"), ("Cookie", "b=2")]),
    get("many_headers_ok", L, "{ENV}", [("X-H%02d" % i, "v%d" % i) for i in range(60)]),
]
