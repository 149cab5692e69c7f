"""Hello-world WSGI app: a 13-byte text/plain body (perf-anchors §4.3)."""
BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
