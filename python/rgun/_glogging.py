"""rgun's Python logger: gunicorn's ``glogging.Logger`` behaviour, used when a logging setting
needs Python ``logging`` (``logconfig``, ``logconfig_dict``, ``logconfig_json``, ``syslog``,
``capture_output``, a custom ``logger_class``).

In that mode every line rgun's Rust core logs (error log and access log) goes through the
``gunicorn.error`` / ``gunicorn.access`` loggers configured here, so the user's handlers,
formatters and filters apply; without those settings rgun keeps writing its logs from Rust.
"""

import copy
import json
import logging
import logging.config
import logging.handlers
import os
import socket
import sys
import threading
import time

from rgun import _core

# gunicorn silences logging's "No handlers could be found" warning the same way.
logging.Logger.manager.emittedNoHandlerWarning = 1

SYSLOG_FACILITIES = {
    "auth": 4, "authpriv": 10, "cron": 9, "daemon": 3, "ftp": 11, "kern": 0, "lpr": 6,
    "mail": 2, "news": 7, "security": 4, "syslog": 5, "user": 1, "uucp": 8,
    "local0": 16, "local1": 17, "local2": 18, "local3": 19,
    "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

ERROR_FMT = r"%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
DATEFMT = r"[%Y-%m-%d %H:%M:%S %z]"

# gunicorn's CONFIG_DEFAULTS (spec 9.4): what logconfig_dict / logconfig_json are merged over,
# top level only. The loggers propagate to root, so unless the user overrides ``loggers`` every
# error line shows on stderr and stdout and every access line twice on stdout, as in gunicorn.
CONFIG_DEFAULTS = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": True,
                           "qualname": "gunicorn.error"},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": True,
                            "qualname": "gunicorn.access"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "generic",
                    "stream": "ext://sys.stdout"},
        "error_console": {"class": "logging.StreamHandler", "formatter": "generic",
                          "stream": "ext://sys.stderr"},
    },
    "formatters": {
        "generic": {"format": ERROR_FMT, "datefmt": DATEFMT, "class": "logging.Formatter"},
    },
}

LOG_LEVELS = {"critical": logging.CRITICAL, "error": logging.ERROR, "warning": logging.WARNING,
              "info": logging.INFO, "debug": logging.DEBUG}


def access_enabled(cfg):
    """gunicorn's rule: accesslog, any logconfig*, or syslog without the access opt-out."""
    return bool(cfg.accesslog or cfg.logconfig or cfg.logconfig_dict or cfg.logconfig_json
                or (cfg.syslog and not cfg.disable_redirect_access_to_syslog))


def parse_syslog_address(addr):
    """``(socktype, address)`` for ``SysLogHandler`` from ``syslog_addr`` (spec 9.5)."""
    if addr.startswith("unix://"):
        path, sep, kind = addr[len("unix://"):].partition("#")
        return (socket.SOCK_DGRAM if sep and kind == "dgram" else None), path
    for scheme, socktype in (("udp://", socket.SOCK_DGRAM), ("tcp://", socket.SOCK_STREAM)):
        if addr.startswith(scheme):
            rest = addr[len(scheme):]
            break
    else:
        raise RuntimeError("invalid syslog address")
    if "[" in rest and "]" in rest:
        host = rest.split("]")[0][1:].lower()
    elif ":" in rest:
        host = rest.split(":")[0].lower()
    else:
        host = rest.lower() or "localhost"
    tail = rest.split("]")[-1]
    port = 514
    if ":" in tail:
        text = tail.split(":", 1)[1]
        if not text.isdigit():
            raise RuntimeError("%r is not a valid port number." % text)
        port = int(text)
    return socktype, (host, port)


def _all_loggers():
    return [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]


class LoggerMethods:
    """gunicorn's Logger level methods over ``self.error_log``; shared by rgun's two Logger
    classes (the fast-path one in ``_objects`` and this Python-mode one)."""

    def critical(self, msg, *args, **kwargs):
        self.error_log.critical(msg, *args, **kwargs)

    def error(self, msg, *args, **kwargs):
        self.error_log.error(msg, *args, **kwargs)

    def warning(self, msg, *args, **kwargs):
        self.error_log.warning(msg, *args, **kwargs)

    def info(self, msg, *args, **kwargs):
        self.error_log.info(msg, *args, **kwargs)

    def debug(self, msg, *args, **kwargs):
        self.error_log.debug(msg, *args, **kwargs)

    def exception(self, msg, *args, **kwargs):
        self.error_log.exception(msg, *args, **kwargs)

    def log(self, lvl, msg, *args, **kwargs):
        if isinstance(lvl, str):
            lvl = LOG_LEVELS.get(lvl.lower(), logging.INFO)
        self.error_log.log(lvl, msg, *args, **kwargs)


class Logger(LoggerMethods):
    """``server.log`` in Python mode: gunicorn's Logger interface and setup rules."""

    LOG_LEVELS = LOG_LEVELS
    loglevel = logging.INFO
    error_fmt = ERROR_FMT
    datefmt = DATEFMT
    access_fmt = "%(message)s"
    syslog_fmt = "[%(process)d] %(message)s"

    def __init__(self, cfg):
        self.error_log = logging.getLogger("gunicorn.error")
        self.error_log.propagate = False
        self.access_log = logging.getLogger("gunicorn.access")
        self.access_log.propagate = False
        self.error_handlers = []
        self.access_handlers = []
        self.logfile = None
        self.lock = threading.Lock()
        self.cfg = cfg
        self.setup(cfg)

    # -- setup ------------------------------------------------------------------------------

    def setup(self, cfg):
        self.cfg = cfg
        self._access_log_enabled = access_enabled(cfg)
        self.loglevel = LOG_LEVELS.get((cfg.loglevel or "info").lower(), logging.INFO)
        self.error_log.setLevel(self.loglevel)
        self.access_log.setLevel(logging.INFO)
        for log in (self.error_log, self.access_log):
            for h in list(log.handlers):
                if getattr(h, "_gunicorn", False):
                    log.removeHandler(h)

        if cfg.capture_output and cfg.errorlog != "-":
            sys.stdout.flush()
            sys.stderr.flush()
            self.logfile = open(cfg.errorlog, "a+")
            os.dup2(self.logfile.fileno(), sys.stdout.fileno())
            os.dup2(self.logfile.fileno(), sys.stderr.fileno())

        self._set_handler(self.error_log, cfg.errorlog, logging.Formatter(self.error_fmt, self.datefmt))
        if cfg.accesslog is not None:
            self._set_handler(self.access_log, cfg.accesslog, logging.Formatter(self.access_fmt),
                              stream=sys.stdout)
        if cfg.syslog:
            self._set_syslog_handler(self.error_log, cfg, self.syslog_fmt, "error")
            if not cfg.disable_redirect_access_to_syslog:
                self._set_syslog_handler(self.access_log, cfg, self.syslog_fmt, "access")

        if cfg.logconfig_dict:
            merged = dict(copy.deepcopy(CONFIG_DEFAULTS))
            merged.update(cfg.logconfig_dict)
            self._dict_config(merged)
        elif cfg.logconfig_json:
            if os.path.exists(cfg.logconfig_json):
                merged = dict(copy.deepcopy(CONFIG_DEFAULTS))
                try:
                    with open(cfg.logconfig_json) as f:
                        merged.update(json.load(f))
                except json.JSONDecodeError as exc:
                    raise RuntimeError(str(exc)) from exc
                self._dict_config(merged)
        elif cfg.logconfig:
            if not os.path.exists(cfg.logconfig):
                raise RuntimeError("Error: log config '%s' not found" % cfg.logconfig)
            defaults = dict(copy.deepcopy(CONFIG_DEFAULTS))
            defaults["__file__"] = cfg.logconfig
            defaults["here"] = os.path.dirname(cfg.logconfig)
            logging.config.fileConfig(cfg.logconfig, defaults=defaults,
                                      disable_existing_loggers=False)

    @staticmethod
    def _dict_config(config):
        try:
            logging.config.dictConfig(config)
        except (AttributeError, ImportError, ValueError, TypeError) as exc:
            raise RuntimeError(str(exc)) from exc

    def _set_handler(self, log, output, fmt, stream=None):
        for h in list(log.handlers):
            if getattr(h, "_gunicorn", False):
                log.removeHandler(h)
                break
        if output is None:
            return
        if output == "-":
            h = logging.StreamHandler(stream)
        else:
            _check_is_writable(output)
            h = logging.FileHandler(output)
            try:
                os.chown(h.baseFilename, self.cfg.user, self.cfg.group)
            except OSError:
                pass
        h.setFormatter(fmt)
        h._gunicorn = True
        log.addHandler(h)

    def _set_syslog_handler(self, log, cfg, fmt, name):
        prefix = cfg.syslog_prefix or (cfg.proc_name or "").replace(":", ".")
        formatter = logging.Formatter("gunicorn.%s.%s: %s" % (prefix, name, fmt))
        facility = SYSLOG_FACILITIES.get((cfg.syslog_facility or "").lower())
        if facility is None:
            raise RuntimeError("unknown facility name")
        socktype, addr = parse_syslog_address(cfg.syslog_addr)
        h = logging.handlers.SysLogHandler(address=addr, facility=facility, socktype=socktype)
        h.setFormatter(formatter)
        h._gunicorn = True
        log.addHandler(h)

    @property
    def access_log_enabled(self):
        try:
            return self._access_log_enabled
        except AttributeError:
            return access_enabled(self.cfg)

    def access(self, resp, req, environ, request_time):
        """Hook code may call this; rgun's own access lines arrive already formatted."""

    def now(self):
        return time.strftime("[%d/%b/%Y:%H:%M:%S %z]")

    def reopen_files(self):
        if self.cfg.capture_output and self.cfg.errorlog != "-":
            sys.stdout.flush()
            sys.stderr.flush()
            with self.lock:
                if self.logfile is not None:
                    self.logfile.close()
                self.logfile = open(self.cfg.errorlog, "a+")
                os.dup2(self.logfile.fileno(), sys.stdout.fileno())
                os.dup2(self.logfile.fileno(), sys.stderr.fileno())
        for log in _all_loggers():
            for h in log.handlers:
                if isinstance(h, logging.FileHandler):
                    with _handler_lock(h):
                        if h.stream:
                            h.close()
                            h.stream = h._open()

    def close_on_exec(self):
        pass


class _handler_lock:
    def __init__(self, handler):
        self.h = handler

    def __enter__(self):
        self.h.acquire()

    def __exit__(self, *exc):
        self.h.release()


def _check_is_writable(path):
    try:
        with open(path, "a"):
            pass
    except OSError as e:
        raise RuntimeError("Error: '%s' isn't writable [%r]" % (path, e)) from e


def logger_class(cfg):
    """The class ``cfg.logger_class`` names; ``simple``, gunicorn's default and gunicorn's
    Statsd class mean rgun's (which becomes a Statsd logger when StatsD is on)."""
    uri = cfg.logger_class
    if not isinstance(uri, str):
        return uri
    if uri in ("simple", "gunicorn.glogging.Logger", "glogging.Logger",
               "gunicorn.instrument.statsd.Statsd"):
        return Logger
    from rgun import _app

    return _app.load_logger_class(uri)


# -- the bridge used by rgun's Rust core --------------------------------------------------------

_LEVEL_METHODS = {10: "debug", 20: "info", 30: "warning", 40: "error", 50: "critical"}


def emit(log, levelno, msg):
    """One error-log line from Rust, through ``log.<level>(msg)`` (the user's class may override;
    a Statsd logger's counter is skipped: Rust counted the line already)."""
    from rgun import _statsd

    _statsd.plain(log, _LEVEL_METHODS.get(levelno, "info"))(msg)


def emit_access(log, line):
    """One access line from Rust, already rendered with ``access_log_format``."""
    access_log = getattr(log, "access_log", None) or logging.getLogger("gunicorn.access")
    access_log.info(line)


def effective_level(log):
    error_log = getattr(log, "error_log", None) or logging.getLogger("gunicorn.error")
    return error_log.getEffectiveLevel()


def needs_python(cfg):
    """Whether rgun's logs must go through Python ``logging`` for this configuration."""
    if cfg.logconfig or cfg.logconfig_dict or cfg.logconfig_json or cfg.syslog:
        return True
    if cfg.capture_output and cfg.errorlog not in (None, "-"):
        return True
    return logger_class(cfg) is not Logger


def make_logger(cfg):
    """``cfg.logger_class(cfg)``, with the class's ``install()`` called first, as gunicorn."""
    cls = logger_class(cfg)
    _check_access_not_overridden(cls)
    if hasattr(cls, "install"):
        cls.install()
    if cls is Logger and _core._statsd_settings() is not None:
        from rgun import _statsd

        cls = _statsd.PythonStatsd
    return cls(cfg)


def drop_handlers():
    """Leaving Python mode on reload: remove the handlers a Python-mode setup added."""
    for name in ("gunicorn.error", "gunicorn.access"):
        log = logging.getLogger(name)
        for h in list(log.handlers):
            if getattr(h, "_gunicorn", False):
                log.removeHandler(h)


def _check_access_not_overridden(cls):
    """rgun renders access lines itself; a class with its own ``access()`` is refused."""
    own = getattr(cls, "access", None)
    bases = [Logger.access]
    try:
        from gunicorn import glogging

        bases.append(glogging.Logger.access)
    except Exception:
        pass
    if own is not None and not any(own is b for b in bases):
        raise RuntimeError("logger_class %s.%s overrides access(), which rgun does not support yet"
                           % (cls.__module__, cls.__qualname__))
