"""gunicorn's ``Statsd`` logger (``gunicorn/instrument/statsd.py``) for rgun.

With ``statsd_host`` set and the default ``logger_class``, gunicorn's ``log`` object is a
``Statsd``: a Logger that also sends metrics. rgun sends its own metrics from Rust (requests,
workers, backlog, and the counters of the lines rgun logs); the classes here are the ``log``
object hooks and worker code receive, so that *their* calls count and send exactly as with
gunicorn. They share Rust's socket, prefix and tags, which are fixed once at startup, as gunicorn
builds its Statsd logger once (a SIGHUP only re-runs the logging setup).
"""

import logging
import re
import socket
import traceback

from rgun import _core, _glogging, _objects

METRIC_VAR = "metric"
VALUE_VAR = "value"
MTYPE_VAR = "mtype"
GAUGE_TYPE = "gauge"
COUNTER_TYPE = "counter"
HISTOGRAM_TYPE = "histogram"
TIMER_TYPE = "timer"

# The logger_class values gunicorn swaps for its Statsd class when statsd_host is set.
DEFAULT_URIS = ("simple", "gunicorn.glogging.Logger")
STATSD_URI = "gunicorn.instrument.statsd.Statsd"


def wanted(cfg):
    """Whether gunicorn would build a Statsd logger for ``cfg`` (``Config.logger_class``)."""
    uri = cfg.logger_class
    if not isinstance(uri, str):
        return False
    if uri in DEFAULT_URIS:
        return cfg.statsd_host is not None
    return uri == STATSD_URI


def _is_ipv6(addr):
    try:
        socket.inet_pton(socket.AF_INET6, addr)
    except (OSError, ValueError):
        return False
    return True


def setup(cfg):
    """What ``Statsd.__init__`` computes: ``(fd, prefix, tags, encode_error)``. ``fd`` is the
    connected socket handed over to Rust, or -1 when gunicorn's ``connect`` would have failed
    (metrics then go nowhere). ``encode_error`` is the ``UnicodeEncodeError`` line every send
    raises when the prefix or the tags are not ASCII."""
    prefix = re.sub(r"^(.+[^.]+)\.*$", "\\g<1>.", cfg.statsd_prefix)
    host = cfg.statsd_host
    if isinstance(host, str):
        family = socket.AF_UNIX
    elif host and _is_ipv6(host[0]):
        family = socket.AF_INET6
    else:
        family = socket.AF_INET
    fd = -1
    sock = None
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.connect(host)
        fd = sock.detach()
    except Exception:
        if sock is not None:
            sock.close()
    tags = cfg.dogstatsd_tags or ""
    try:
        prefix.encode("ascii")
        tags.encode("ascii")
        encode_error = None
    except UnicodeEncodeError as e:
        encode_error = "".join(traceback.format_exception_only(type(e), e)).rstrip("\n")
    return fd, prefix, tags, encode_error


class _Socket:
    """``Statsd.sock``: rgun's socket, owned by the Rust side."""

    def send(self, data):
        _core._statsd_send(data)


class Statsd:
    """gunicorn's Statsd methods, mixed in front of one of rgun's Logger classes."""

    def __init__(self, cfg):
        super().__init__(cfg)
        prefix, tags, has_sock = _core._statsd_settings() or ("", "", False)
        self.prefix = prefix
        self.dogstatsd_tags = tags
        self.sock = _Socket() if has_sock else None

    # Log errors and warnings
    def critical(self, msg, *args, **kwargs):
        super().critical(msg, *args, **kwargs)
        self.increment("gunicorn.log.critical", 1)

    def error(self, msg, *args, **kwargs):
        super().error(msg, *args, **kwargs)
        self.increment("gunicorn.log.error", 1)

    def warning(self, msg, *args, **kwargs):
        super().warning(msg, *args, **kwargs)
        self.increment("gunicorn.log.warning", 1)

    def exception(self, msg, *args, **kwargs):
        super().exception(msg, *args, **kwargs)
        self.increment("gunicorn.log.exception", 1)

    def info(self, msg, *args, **kwargs):
        self.log(logging.INFO, msg, *args, **kwargs)

    def debug(self, msg, *args, **kwargs):
        self.log(logging.DEBUG, msg, *args, **kwargs)

    def log(self, lvl, msg, *args, **kwargs):
        """Sends the metric an ``extra={"metric", "value", "mtype"}`` describes, then logs
        ``msg`` if there is one."""
        try:
            extra = kwargs.get("extra", None)
            if extra is not None:
                metric = extra.get(METRIC_VAR, None)
                value = extra.get(VALUE_VAR, None)
                typ = extra.get(MTYPE_VAR, None)
                if metric and value is not None and typ:
                    if typ == GAUGE_TYPE:
                        self.gauge(metric, value)
                    elif typ == COUNTER_TYPE:
                        self.increment(metric, value)
                    elif typ == HISTOGRAM_TYPE:
                        self.histogram(metric, value)
                    elif typ == TIMER_TYPE:
                        self.timer(metric, value)
            if msg:
                super().log(lvl, msg, *args, **kwargs)
        except Exception:
            super().warning("Failed to log to statsd", exc_info=True)

    def access(self, resp, req, environ, request_time):
        """For code that calls ``log.access`` itself (rgun's own requests are measured in Rust)."""
        super().access(resp, req, environ, request_time)
        duration_in_ms = request_time.seconds * 1000 + float(request_time.microseconds) / 10 ** 3
        status = resp.status
        if isinstance(status, bytes):
            status = status.decode("utf-8")
        if isinstance(status, str):
            status = int(status.split(None, 1)[0])
        self.timer("gunicorn.request.duration", duration_in_ms)
        self.increment("gunicorn.requests", 1)
        self.increment("gunicorn.request.status.%d" % status, 1)

    # statsD methods
    def gauge(self, name, value):
        self._sock_send("{0}{1}:{2}|g".format(self.prefix, name, value))

    def increment(self, name, value, sampling_rate=1.0):
        self._sock_send("{0}{1}:{2}|c|@{3}".format(self.prefix, name, value, sampling_rate))

    def decrement(self, name, value, sampling_rate=1.0):
        self._sock_send("{0}{1}:-{2}|c|@{3}".format(self.prefix, name, value, sampling_rate))

    def timer(self, name, value):
        self._sock_send("{0}{1}:{2}|ms".format(self.prefix, name, value))

    def histogram(self, name, value):
        self._sock_send("{0}{1}:{2}|h".format(self.prefix, name, value))

    def _sock_send(self, msg):
        try:
            if isinstance(msg, str):
                msg = msg.encode("ascii")
            if self.dogstatsd_tags:
                msg = msg + b"|#" + self.dogstatsd_tags.encode("ascii")
            if self.sock:
                self.sock.send(msg)
        except Exception:
            super().warning("Error sending message to statsd", exc_info=True)


class BridgeStatsd(Statsd, _objects.Logger):
    """The Statsd ``log`` object while rgun writes the logs from Rust."""


class PythonStatsd(Statsd, _glogging.Logger):
    """The Statsd ``log`` object while the logs go through Python ``logging``."""


def plain(log, method):
    """``log.<method>`` without the Statsd counter, for lines rgun counted already."""
    if isinstance(log, Statsd):
        return getattr(super(Statsd, log), method)
    return getattr(log, method)
