"""The Python objects gunicorn hands to server hooks and worker code, with gunicorn's attribute
names: ``server`` (the Arbiter), ``worker``, ``cfg``, ``log``, ``req`` and ``resp``.

rgun's Rust core creates them and keeps their attributes current; they hold no logic of their
own beyond what hook code reads or calls.
"""

import logging
import os
import signal
import sys
import traceback

from rgun import _core
from rgun._glogging import LOG_LEVELS, LoggerMethods

SERVER = "gunicorn"
SERVER_SOFTWARE = "gunicorn/%s" % _core.GUNICORN_VERSION


class Setting:
    """``cfg.settings[name]``: the validated ``value`` of one setting."""

    def __init__(self, name, value):
        self.name = name
        self.value = value

    def get(self):
        return self.value

    def set(self, value):
        self.value = value

    def __repr__(self):
        return "<Setting %s=%r>" % (self.name, self.value)


class Config:
    """``server.cfg`` / ``worker.cfg``: every setting readable as an attribute."""

    def __init__(self, values, usage=None, prog=None):
        object.__setattr__(self, "settings", {k: Setting(k, v) for k, v in values.items()})
        object.__setattr__(self, "usage", usage)
        object.__setattr__(self, "prog", prog or "rgun")
        object.__setattr__(self, "env_orig", os.environ.copy())

    def __getattr__(self, name):
        settings = object.__getattribute__(self, "settings")
        if name not in settings:
            raise AttributeError("No configuration setting for: %s" % name)
        return settings[name].get()

    def __setattr__(self, name, value):
        if name != "settings" and name in self.settings:
            raise AttributeError("Invalid access!")
        object.__setattr__(self, name, value)

    def set(self, name, value):
        if name not in self.settings:
            raise AttributeError("No configuration setting for: %s" % name)
        self.settings[name].set(value)

    def get_cmd_args_from_env(self):
        if "GUNICORN_CMD_ARGS" in self.env_orig:
            import shlex

            return shlex.split(self.env_orig["GUNICORN_CMD_ARGS"])
        return []

    @property
    def worker_class_str(self):
        uri = self.settings["worker_class"].get()
        if isinstance(uri, str):
            if (uri == "sync" or uri.endswith("SyncWorker")) and self.threads > 1:
                return "gthread"
            return uri
        return uri.__name__

    @property
    def address(self):
        return [_parse_address(b) for b in self.settings["bind"].get()]

    @property
    def uid(self):
        return self.settings["user"].get()

    @property
    def gid(self):
        return self.settings["group"].get()

    @property
    def proc_name(self):
        pn = self.settings["proc_name"].get()
        return pn if pn is not None else self.settings["default_proc_name"].get()

    @property
    def is_ssl(self):
        return bool(self.certfile or self.keyfile)

    @property
    def ssl_options(self):
        return {
            name: s.get()
            for name, s in self.settings.items()
            if name in ("keyfile", "certfile", "ssl_version", "cert_reqs", "ca_certs",
                        "suppress_ragged_eofs", "do_handshake_on_connect", "ciphers")
        }

    @property
    def env(self):
        env = {}
        for e in self.raw_env:
            k, _, v = e.partition("=")
            env[k] = v
        return env

    @property
    def sendfile(self):
        if self.settings["sendfile"].get() is not None:
            return False
        return os.environ.get("SENDFILE", "1").lower() in ("y", "1", "yes", "true")

    @property
    def reuse_port(self):
        return self.settings["reuse_port"].get()

    @property
    def paste_global_conf(self):
        return None


def restore_env(cfg):
    """SIGHUP: every ``raw_env`` key back to its value from before rgun started (or removed)."""
    for k in cfg.env:
        if k in cfg.env_orig:
            os.environ[k] = cfg.env_orig[k]
        else:
            os.environ.pop(k, None)


def _parse_address(addr):
    if addr.startswith("unix://"):
        return addr[7:]
    if addr.startswith("unix:"):
        return addr[5:]
    if addr.startswith("fd://"):
        return int(addr[5:])
    if addr.startswith("tcp://"):
        addr = addr[6:]
    addr = addr.lower()
    if addr.startswith("["):
        host, _, rest = addr[1:].partition("]")
        port = rest.lstrip(":") or "8000"
    elif ":" in addr:
        host, port = addr.split(":", 1)
    else:
        host, port = addr, "8000"
    return (host or "0.0.0.0", int(port))


class _RgunHandler(logging.Handler):
    """Routes records of the ``gunicorn.error`` / ``gunicorn.access`` loggers into rgun's logs."""

    def __init__(self, access=False):
        super().__init__()
        self.access = access

    def emit(self, record):
        try:
            msg = record.getMessage()
            if record.exc_info and not self.access:
                msg = msg + "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            if self.access:
                _core._access(msg)
            else:
                _core._log(record.levelno, msg)
        except Exception:
            self.handleError(record)


def _tag(handler):
    handler._rgun = True
    return handler


def setup_logging(loglevel, access_enabled):
    """Creates the ``gunicorn.error`` and ``gunicorn.access`` loggers, as gunicorn's Logger."""
    error = logging.getLogger("gunicorn.error")
    error.handlers = [h for h in error.handlers if not getattr(h, "_rgun", False)]
    error.addHandler(_tag(_RgunHandler()))
    error.propagate = False
    error.setLevel(logging.getLevelName((loglevel or "info").upper())
                   if (loglevel or "info").upper() in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
                   else logging.INFO)
    access = logging.getLogger("gunicorn.access")
    access.handlers = [h for h in access.handlers if not getattr(h, "_rgun", False)]
    if access_enabled:
        access.addHandler(_tag(_RgunHandler(access=True)))
    access.propagate = False
    access.setLevel(logging.INFO)


class Logger(LoggerMethods):
    """``server.log`` / ``worker.log``: gunicorn's Logger interface."""

    LOG_LEVELS = LOG_LEVELS

    def __init__(self, cfg):
        self.cfg = cfg
        self.error_log = logging.getLogger("gunicorn.error")
        self.access_log = logging.getLogger("gunicorn.access")
        self.error_handlers = []
        self.access_handlers = []
        self.logfile = None

    def access(self, resp, req, environ, request_time):
        pass

    def reopen_files(self):
        _core._reopen_logs()

    def close_on_exec(self):
        pass

    def setup(self, cfg):
        self.cfg = cfg


def make_logger(cfg):
    """``server.log`` while rgun writes the logs: a Statsd logger when StatsD is on."""
    if _core._statsd_settings() is not None:
        from rgun import _statsd

        return _statsd.BridgeStatsd(cfg)
    return Logger(cfg)


class Listener:
    """An entry of ``server.LISTENERS``: ``str()`` gives ``http://host:port`` or ``unix:path``."""

    def __init__(self, fd, name, family):
        self._fd = fd
        self._name = name
        self.FAMILY = family
        self.sock = None

    def fileno(self):
        return self._fd

    def getsockname(self):
        import socket

        s = socket.socket(fileno=os.dup(self._fd))
        try:
            return s.getsockname()
        finally:
            s.close()

    def __str__(self):
        return self._name

    def __repr__(self):
        return "<rgun listener %s>" % self._name


class WorkerTmp:
    """``worker.tmp``: the heartbeat file, owned by rgun's core."""

    def __init__(self, fd):
        self._fd = fd

    def notify(self):
        pass

    def fileno(self):
        return self._fd

    def close(self):
        pass


class Worker:
    """``worker``: what gunicorn's ``Worker`` exposes to hooks."""

    SIGNALS = [getattr(signal, "SIG%s" % x) for x in "ABRT HUP QUIT INT TERM USR1 USR2 WINCH CHLD".split()]

    def __init__(self, age, ppid, sockets, app, timeout, cfg, log, max_requests):
        self.age = age
        self.pid = "[booting]"
        self.ppid = ppid
        self.sockets = sockets
        self.app = app
        self.timeout = timeout
        self.cfg = cfg
        self.log = log
        self.booted = False
        self.aborted = False
        self.reloader = None
        self.nr = 0
        self.max_requests = max_requests
        self.alive = True
        self.tmp = WorkerTmp(-1)
        self.wsgi = None

    def __str__(self):
        return "<Worker %s>" % self.pid

    def notify(self):
        _core._notify()


class SyncWorker(Worker):
    pass


class ThreadWorker(Worker):
    pass


def _launch_args():
    """How this master was started, for the USR2 re-exec: ``[sys.executable] + sys.argv`` as
    gunicorn; under ``python -m rgun`` (argv[0] set to ``rgun``) the module form again."""
    import rgun

    if getattr(rgun, "_launched_as_module", False):
        return [sys.executable, "-m", "rgun"] + sys.argv[1:]
    return [sys.executable] + sys.argv


class Arbiter:
    """``server``: what gunicorn's ``Arbiter`` exposes to hooks."""

    WORKER_BOOT_ERROR = 3
    APP_LOAD_ERROR = 4

    def __init__(self, cfg, log, app, worker_class):
        self.cfg = cfg
        self.log = log
        self.app = app
        # Like gunicorn, `pid` and `proc_name` only exist once setup has assigned
        # num_workers (the first nworkers_changed call cannot see them).
        self.num_workers = cfg.workers
        self.WORKERS = {}
        self.LISTENERS = []
        self.timeout = cfg.timeout
        self.master_name = "Master"
        self.master_pid = 0
        self.reexec_pid = 0
        self.worker_age = 0
        self.pidfile = None
        self.systemd = False
        self.address = cfg.address
        self.worker_class = worker_class
        self.START_CTX = {"args": _launch_args(), "cwd": os.getcwd(), 0: sys.executable}

    def reload(self):
        os.kill(self.pid, signal.SIGHUP)

    def halt(self, reason=None, exit_status=0):
        os.kill(self.pid, signal.SIGTERM)

    def stop(self, graceful=True):
        os.kill(self.pid, signal.SIGTERM if graceful else signal.SIGQUIT)

    def wakeup(self):
        pass

    def kill_worker(self, pid, sig):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def kill_workers(self, sig):
        for pid in list(self.WORKERS):
            self.kill_worker(pid, sig)


class Request:
    """``req`` in ``pre_request``/``post_request``."""

    def __init__(self, **kw):
        self.__dict__.update(kw)
        self.trailers = []
        self.must_close = False

    def should_close(self):
        return self._should_close


class Response:
    """``resp`` in ``post_request``."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


class _Ordered:
    """gunicorn's ``Setting.__lt__``: ordered by ``order`` within a section only. ``sorted``
    with this partial order gives gunicorn's exact ``Current configuration:`` listing."""

    __slots__ = ("name", "section", "order", "value")

    def __init__(self, name, section, order, value):
        self.name, self.section, self.order, self.value = name, section, order, value

    def __lt__(self, other):
        return self.section == other.section and self.order < other.order


def config_dump(items):
    """``Current configuration:`` followed by ``  name: value`` lines, as gunicorn logs it."""
    ordered = sorted((_Ordered(*item) for item in items))
    return "Current configuration:\n" + "\n".join("  %s: %s" % (s.name, s.value) for s in ordered)
