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


class ParseException(Exception):
    """Base of the request-parsing errors an app can see while reading ``wsgi.input``."""

    def __init__(self, message):
        super().__init__(message)
        self._message = message

    def __str__(self):
        return self._message


class NoMoreData(IOError):
    def __init__(self, message):
        super().__init__(message)
        self._message = message

    def __str__(self):
        return self._message


_BODY_ERRORS = {}
for _name in ("InvalidChunkSize", "ChunkMissingTerminator", "InvalidChunkExtension",
              "InvalidHeader", "InvalidHeaderName", "LimitRequestHeaders"):
    _BODY_ERRORS[_name] = type(_name, (ParseException,), {"__module__": "gunicorn.http.errors"})
    globals()[_name] = _BODY_ERRORS[_name]
_BODY_ERRORS["NoMoreData"] = NoMoreData
ParseException.__module__ = NoMoreData.__module__ = "gunicorn.http.errors"


def body_error(name, message):
    """The exception ``wsgi.input`` raises for parser error ``name`` (gunicorn's class)."""
    return _BODY_ERRORS.get(name, ParseException)(message)
