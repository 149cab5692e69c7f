"""WSGI helper objects that are naturally Python: ``wsgi.file_wrapper`` and ``wsgi.errors``.

rgun's Rust core recognises a returned ``FileWrapper`` and sends its file with ``sendfile``.
"""

import io
import logging
import sys


class FileWrapper:
    """``wsgi.file_wrapper``: iterates a file in ``blksize`` blocks (PEP 3333)."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __getitem__(self, key):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise IndexError

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


# errorlog files opened by the master (before workers switch to `user`), by path.
_PREOPENED = {}


def preopen(errorlog):
    """Opens the error log file in the master, so workers that switch to ``user`` can still
    write ``wsgi.errors`` to it (gunicorn writes through its already-open handler streams)."""
    if errorlog and errorlog != "-" and errorlog not in _PREOPENED:
        try:
            _PREOPENED[errorlog] = open(errorlog, "a", buffering=1)
        except OSError:
            pass


class WSGIErrorsWrapper(io.RawIOBase):
    """``wsgi.errors``: writes go to stderr (``errorlog == "-"``), the error log file, and the
    stream of every other ``gunicorn.error`` handler, flushed each time."""

    def __init__(self, errorlog):
        self.streams = []
        handlers = list(logging.getLogger("gunicorn.error").handlers)
        if errorlog == "-":
            self.streams.append(sys.stderr)
            handlers = handlers[1:]
        elif errorlog and not any(getattr(h, "_gunicorn", False) for h in handlers):
            # rgun's Rust error log owns the file: write through the master's handle.
            stream = _PREOPENED.get(errorlog)
            self.streams.append(stream if stream is not None else open(errorlog, "a", buffering=1))
        for h in handlers:
            stream = getattr(h, "stream", None)
            if stream is not None:
                self.streams.append(stream)

    def write(self, data):
        for stream in self.streams:
            try:
                stream.write(data)
            except UnicodeError:
                stream.write(data.encode("UTF-8"))
            stream.flush()
