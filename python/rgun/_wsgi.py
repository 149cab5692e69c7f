"""WSGI helper objects that are naturally Python: ``wsgi.file_wrapper`` and ``wsgi.errors``.

rgun's Rust core recognises a returned ``FileWrapper`` and sends its file with ``sendfile``.
"""

import io
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


class WSGIErrorsWrapper(io.RawIOBase):
    """``wsgi.errors``: writes go to stderr and/or the error log file, flushed each time."""

    def __init__(self, errorlog):
        self.streams = []
        if errorlog == "-":
            self.streams.append(sys.stderr)
        elif errorlog:
            self.streams.append(open(errorlog, "a", buffering=1))

    def write(self, data):
        for stream in self.streams:
            try:
                stream.write(data)
            except UnicodeError:
                stream.write(data.encode("UTF-8"))
            stream.flush()
