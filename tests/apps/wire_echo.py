"""Echo app for the wire tests: answers every request with a JSON object describing what the
server parsed (method, target, path, query, protocol, every HTTP_* and CONTENT_* key, the
decoded body, the scheme and the peer address).

The JSON is ASCII (`ensure_ascii`); environ strings are latin-1 "bytes as str", so a client
gets the original bytes back with `.encode("latin-1")`. The body is read in full *before*
`start_response`, so a body error (bad chunk, bad trailer) surfaces while no response has
started and the server answers it with its error page.
"""

import json

KEYS = (
    "REQUEST_METHOD", "RAW_URI", "PATH_INFO", "QUERY_STRING", "SERVER_PROTOCOL", "SCRIPT_NAME",
    "wsgi.url_scheme", "REMOTE_ADDR", "REMOTE_PORT",
)


def app(environ, start_response):
    body = environ["wsgi.input"].read()
    out = {k: environ.get(k) for k in KEYS}
    out["headers"] = {
        k: v for k, v in environ.items()
        if k.startswith("HTTP_") or k in ("CONTENT_TYPE", "CONTENT_LENGTH")
    }
    out["body"] = body.decode("latin-1")
    data = json.dumps(out, sort_keys=True).encode("ascii")
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


application = app
