"""Loading the app and the worker class by gunicorn's rules.

``APP_MODULE`` is ``MODULE[:EXPR]``: EXPR is a name (default ``application``) or a call with
literal arguments (an app factory). Errors are gunicorn's, with its exception class names, so
the messages and tracebacks users see are the ones they know.
"""

import ast
import importlib
import inspect
import io
import os
import re
import traceback


class AppImportError(Exception):
    """The app module imported but the app could not be found or built (worker exit 4)."""


AppImportError.__module__ = "gunicorn.errors"


def _is_wrong_call(fn, exc):
    """Whether ``exc`` (a TypeError) came from calling ``fn`` with bad arguments, rather than
    from inside ``fn``."""
    tb = exc.__traceback__
    return tb is not None and tb.tb_next is None


def import_app(uri):
    module, sep, expr = uri.partition(":")
    if not sep:
        expr = "application"
    try:
        mod = importlib.import_module(module)
    except ImportError:
        if module.endswith(".py") and os.path.exists(module):
            raise ImportError("Failed to find application, did you mean '%s:%s'?"
                              % (module.rsplit(".", 1)[0], expr))
        raise

    try:
        node = ast.parse(expr, mode="eval").body
    except SyntaxError:
        raise AppImportError("Failed to parse %r as an attribute name or function call." % expr)

    args = kwargs = None
    if isinstance(node, ast.Name):
        name = node.id
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise AppImportError("Function reference must be a simple name: %r" % expr)
        name = node.func.id
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        except ValueError:
            raise AppImportError("Failed to parse arguments as literal values: %r" % expr)
    else:
        raise AppImportError("Failed to parse %r as an attribute name or function call." % expr)

    try:
        app = getattr(mod, name)
    except AttributeError:
        raise AppImportError("Failed to find attribute %r in %r." % (name, module))

    if args is not None:
        try:
            app = app(*args, **kwargs)
        except TypeError as e:
            if _is_wrong_call(app, e):
                raise AppImportError("".join(traceback.format_exception_only(TypeError, e)).strip())
            raise

    if app is None:
        raise AppImportError("Failed to find application object: %r" % expr)
    if not callable(app):
        raise AppImportError("Application object must be callable.")
    return app


def fail_app(exc):
    """With ``--reload``, what a worker serves when the app has a SyntaxError: every request
    gets a 500 whose plain-text body is the traceback."""
    with io.StringIO() as out:
        traceback.print_exception(exc, file=out)
        msg = out.getvalue().encode("utf-8")

    def app(environ, start_response):
        start_response("500 Internal Server Error", [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(msg))),
        ])
        return [msg]

    return app


# --- PasteDeploy (--paste) -----------------------------------------------------------------

def paste_import():
    """``--paste`` needs PasteDeploy: this raises gunicorn's error when it is missing."""
    from paste.deploy import loadapp  # noqa: F401


def has_logging_config(config_file):
    """Whether a PasteDeploy ini file has logging sections (then it is also the logconfig)."""
    import configparser

    parser = configparser.ConfigParser()
    parser.read([config_file])
    return parser.has_section("loggers")


def paste_global_conf(raw):
    """``--paste-global`` entries as a dict: split at the first ``=`` not escaped as ``\\=``."""
    conf = {}
    for entry in raw:
        if isinstance(entry, bytes):
            entry = entry.decode("latin-1")
        try:
            key, value = re.split(r"(?<!\\)=", entry, maxsplit=1)
        except ValueError:
            raise RuntimeError("environment setting %r invalid" % entry)
        conf[key.replace("\\=", "=")] = value.replace("\\=", "=")
    return conf


def load_paste_app(uri, raw_global_conf):
    """The app of a PasteDeploy ini (``uri`` is ``/abs/file.ini[#name]``, or whatever app URI
    the configuration has when ``paste`` was not given on the command line)."""
    from paste.deploy import loadapp

    global_conf = paste_global_conf(raw_global_conf)
    if ":" not in uri:
        uri = "config:" + uri
    return loadapp(uri, name=None, relative_to=os.getcwd(), global_conf=global_conf)


# gunicorn's built-in worker classes, by short name.
_BUILTIN = {
    "sync": "gunicorn.workers.sync.SyncWorker",
    "gthread": "gunicorn.workers.gthread.ThreadWorker",
    "gevent": "gunicorn.workers.ggevent.GeventWorker",
    "gevent_wsgi": "gunicorn.workers.ggevent.GeventPyWSGIWorker",
    "gevent_pywsgi": "gunicorn.workers.ggevent.GeventPyWSGIWorker",
    "tornado": "gunicorn.workers.gtornado.TornadoWorker",
    "asgi": "gunicorn.workers.gasgi.ASGIWorker",
}
_SERVED = {
    "gunicorn.workers.sync.SyncWorker": "sync",
    "gunicorn.workers.gthread.ThreadWorker": "gthread",
}


class NotSupported(Exception):
    """A worker class gunicorn has (or the user wrote) that rgun does not implement yet."""


def _not_found(uri):
    return RuntimeError("class uri %r invalid or not found: \n\n[%s]" % (uri, traceback.format_exc()))


def resolve_worker_class(uri):
    """Returns ``"sync"`` or ``"gthread"`` for the classes rgun serves; raises gunicorn's
    RuntimeError for a class that cannot be found, and NotSupported for one rgun cannot run."""
    if inspect.isclass(uri):
        path = "%s.%s" % (uri.__module__, uri.__qualname__)
        if path in _SERVED:
            return _SERVED[path]
        raise NotSupported(path)
    if uri.startswith("egg:"):
        try:
            raise ImportError("No module named 'pkg_resources'")
        except ImportError:
            raise _not_found(uri)
    if "." not in uri:
        name = uri.lstrip("#")
        if name not in _BUILTIN:
            try:
                raise LookupError("no worker class named %r in the gunicorn.workers entry points" % name)
            except LookupError:
                raise _not_found(name)
        path = _BUILTIN[name]
        if path in _SERVED:
            return _SERVED[path]
        raise NotSupported(name)
    if uri in _SERVED:
        return _SERVED[uri]
    module, _, klass = uri.rpartition(".")
    try:
        mod = importlib.import_module(module)
    except Exception:
        raise _not_found(uri)
    getattr(mod, klass)
    raise NotSupported(uri)


def load_logger_class(uri):
    """gunicorn's ``util.load_class`` for ``logger_class``: a dotted path (or a class object)."""
    if inspect.isclass(uri):
        return uri
    if uri.startswith("egg:"):
        try:
            raise ImportError("No module named 'pkg_resources'")
        except ImportError:
            raise _not_found(uri)
    if "." not in uri:
        name = uri.lstrip("#")
        try:
            raise LookupError("no logger class named %r in the gunicorn.loggers entry points" % name)
        except LookupError:
            raise _not_found(name)
    module, _, klass = uri.rpartition(".")
    try:
        mod = importlib.import_module(module)
    except Exception:
        raise _not_found(uri)
    return getattr(mod, klass)
