"""``--reload``: the watcher thread each worker starts, with gunicorn's two engines.

* ``poll``: every second, stat the files of every loaded module (``.pyc`` read as ``.py``), the
  ``reload_extra_files`` entries and the current expansion of their glob patterns; a file whose
  mtime grew since it was first seen is reported.
* ``inotify`` (needs the ``inotify`` package): watch the directories holding those files (and
  a symlink's target directory); any create/delete/modify/move event in one is reported, with
  the event's bare file name. New directories are picked up whenever no event arrived for a
  second.
* ``auto``: inotify when the package imports, else poll.

The report goes to ``callback(filename)``, which stops the worker; the thread then ends.
"""

import glob
import os
import re
import sys
import threading
import time

_GLOB_MAGIC = re.compile(r"[*?[]")
_COMPILED = re.compile(r"py[co]$")


def is_glob_pattern(value):
    return _GLOB_MAGIC.search(value) is not None


def _target_dir(path):
    """The directory of a symlink's target (edits there are not events of the link's own
    directory), or None for a plain file."""
    if os.path.islink(path):
        return os.path.dirname(os.path.realpath(path))
    return None


class _Watcher(threading.Thread):
    def __init__(self, extra_files=None, callback=None, interval=1):
        super().__init__(daemon=True)
        self._files = set()
        self._patterns = set()
        for entry in extra_files or ():
            (self._patterns if is_glob_pattern(entry) else self._files).add(entry)
        self._interval = interval
        self._callback = callback

    def add_extra_file(self, filename):
        self._files.add(filename)

    def get_files(self):
        names = []
        for module in tuple(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if path:
                names.append(_COMPILED.sub("py", path))
        names.extend(self._files)
        # Patterns are expanded on every call: files created after start-up count too.
        for pattern in self._patterns:
            names.extend(sorted(glob.glob(pattern, recursive=True)))
        return names


class Reloader(_Watcher):
    def run(self):
        seen = {}
        while True:
            for path in self.get_files():
                try:
                    mtime = os.stat(path).st_mtime
                except OSError:
                    continue
                first = seen.setdefault(path, mtime)
                if mtime > first and self._callback:
                    self._callback(path)
            time.sleep(self._interval)


try:
    if not sys.platform.startswith("linux"):
        raise ImportError("inotify is Linux only")
    from inotify.adapters import Inotify
    import inotify.constants as _ic
    HAS_INOTIFY = True
except ImportError:
    HAS_INOTIFY = False


if HAS_INOTIFY:

    class InotifyReloader(_Watcher):
        MASK = (_ic.IN_CREATE | _ic.IN_DELETE | _ic.IN_DELETE_SELF | _ic.IN_MODIFY
                | _ic.IN_MOVE_SELF | _ic.IN_MOVED_FROM | _ic.IN_MOVED_TO)

        def __init__(self, extra_files=None, callback=None):
            super().__init__(extra_files=extra_files, callback=callback)
            self._dirs = set()
            self._inotify = Inotify()

        def _watch(self, directory):
            self._inotify.add_watch(directory, mask=self.MASK)
            self._dirs.add(directory)

        def add_extra_file(self, filename):
            super().add_extra_file(filename)
            for directory in (os.path.dirname(filename) or ".", _target_dir(filename)):
                if directory is not None and directory not in self._dirs:
                    self._watch(directory)

        def _wanted_dirs(self):
            dirs = set()
            for path in self.get_files():
                dirs.add(os.path.dirname(os.path.abspath(path)))
                target = _target_dir(path)
                if target is not None:
                    dirs.add(target)
            return dirs

        def _refresh(self):
            for directory in self._wanted_dirs() - self._dirs:
                self._dirs.add(directory)
                if os.path.isdir(directory):
                    self._inotify.add_watch(directory, mask=self.MASK)

        def run(self):
            self._refresh()
            for event in self._inotify.event_gen():
                if event is None:
                    self._refresh()
                else:
                    # (header, type names, watched directory, file name): the bare name.
                    self._callback(event[3])

else:

    class InotifyReloader:
        def __init__(self, extra_files=None, callback=None):
            raise ImportError("You must have the inotify module installed to use the inotify reloader")


ENGINES = {
    "auto": InotifyReloader if HAS_INOTIFY else Reloader,
    "poll": Reloader,
    "inotify": InotifyReloader,
}


def create(engine, extra_files, on_change):
    """The reloader thread (not started) for ``engine``. ``on_change(filename)`` logs, stops
    the worker and calls ``worker_int``; the thread then gives the worker 0.1 s and ends, as
    gunicorn's does (its ``sys.exit`` ends only the thread)."""

    def changed(filename):
        on_change(filename)
        time.sleep(0.1)
        sys.exit(0)

    return ENGINES[engine](extra_files=extra_files, callback=changed)
