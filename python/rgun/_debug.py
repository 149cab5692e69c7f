"""``--spew``: a trace hook printing each executed line (``module:lineno: source``), as
gunicorn's ``debug.spew()`` (values not shown)."""

import inspect
import linecache
import sys


class _Spew:
    def __call__(self, frame, event, arg):
        if event != "line":
            return self
        lineno = frame.f_lineno
        g = frame.f_globals
        if "__file__" in g:
            filename = g["__file__"] or ""
            if filename.endswith((".pyc", ".pyo")):
                filename = filename[:-1]
            name = g.get("__name__")
            line = linecache.getline(filename, lineno)
        else:
            name = "[unknown]"
            try:
                lines, start = inspect.getsourcelines(frame)
                line = lines[lineno - start]
            except (OSError, IndexError):
                line = "Unknown code named [%s].  VM instruction #%d" % (
                    frame.f_code.co_name, frame.f_lasti)
        print("%s:%s: %s" % (name, lineno, line.rstrip()))
        return self


def spew():
    sys.settrace(_Spew())
