"""Appends its pid to $PRELOAD_MARK when imported (to see where and how often it is imported)."""

import os

_mark = os.environ.get("PRELOAD_MARK")
if _mark:
    with open(_mark, "a") as f:
        f.write("%d\n" % os.getpid())


def app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
