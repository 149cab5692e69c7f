"""Exceptions rgun raises into application code, named and worded as gunicorn's
(``gunicorn.http.errors``), so tracebacks and ``except`` clauses read the same."""


class InvalidResponseHeaderName(Exception):
    def __init__(self, hdr):
        super().__init__(hdr)
        self.hdr = hdr

    def __str__(self):
        return "Invalid response header name from the application: %s" % self.hdr


class InvalidResponseHeader(Exception):
    def __init__(self, hdr):
        super().__init__(hdr)
        self.hdr = hdr

    def __str__(self):
        return "Invalid response header from the application: %s" % self.hdr


for _cls in (InvalidResponseHeaderName, InvalidResponseHeader):
    _cls.__module__ = "gunicorn.http.errors"
