#!/usr/bin/env python3
"""A deliberately broken candidate for --self-test: real gunicorn, monkeypatched to
(a) emit Date before Server and (b) corrupt the access-log line.
CONFORMANCE_BREAK selects the breakage: "headers", "access" or "headers,access" (default)."""
import os
import re
import sys

from gunicorn import glogging
from gunicorn.http import wsgi

BREAK = os.environ.get("CONFORMANCE_BREAK", "headers,access").split(",")

if "headers" in BREAK:
    _orig_default_headers = wsgi.Response.default_headers

    def default_headers(self):
        h = _orig_default_headers(self)
        h[1], h[2] = h[2], h[1]          # Server <-> Date
        return h
    wsgi.Response.default_headers = default_headers

if "access" in BREAK:
    _orig_access = glogging.Logger.access

    def access(self, resp, req, environ, request_time):
        if "__mark__" in (getattr(req, "uri", "") or ""):
            return _orig_access(self, resp, req, environ, request_time)  # keep the markers intact
        real = self.access_log

        class Corrupting:
            def info(self, msg, *a, **k):
                text = msg % a[0] if a else msg
                real.info(re.sub(r'" (\d{3}) ', '" 299 ', text), **k)
        self.access_log = Corrupting()
        try:
            return _orig_access(self, resp, req, environ, request_time)
        finally:
            self.access_log = real
    glogging.Logger.access = access

if __name__ == "__main__":
    from gunicorn.app.wsgiapp import run
    sys.argv[0] = "gunicorn"
    sys.exit(run())
