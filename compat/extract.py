#!/usr/bin/env python3
"""Extract gunicorn's settings table into compat/settings.json by introspection.

Run with a Python that has gunicorn installed (the version in compat/gunicorn-version):

    /path/to/python compat/extract.py

Nothing here copies gunicorn code: it imports gunicorn and records what its
objects say about themselves (names, flags, defaults, validators, help order).
Environment-derived defaults (PORT, WEB_CONCURRENCY, ...) are recorded as
"env_default": true; rgun computes those at run time.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

SUPPORTED = set("""
config wsgi_app bind backlog workers worker_class threads worker_connections max_requests
max_requests_jitter timeout graceful_timeout keepalive limit_request_line limit_request_fields
limit_request_field_size check_config print_config preload_app sendfile chdir raw_env pidfile
umask forwarded_allow_ips secure_scheme_headers pythonpath permit_obsolete_folding
strip_header_spaces permit_unconventional_http_method permit_unconventional_http_version
casefold_http_method forwarder_headers header_map accesslog access_log_format errorlog loglevel
proc_name default_proc_name user group worker_tmp_dir tmp_upload_dir http_parser control_socket
control_socket_mode control_socket_disable reload reload_engine reload_extra_files paste
raw_paste_global_conf
on_starting on_reload when_ready pre_fork post_fork post_worker_init worker_int worker_abort
pre_request post_request child_exit worker_exit nworkers_changed on_exit
""".split())

# Settings whose default gunicorn computes from the process environment at import time.
ENV_DEFAULTS = {"bind", "workers", "forwarded_allow_ips", "chdir", "user", "group",
                "control_socket"}


def validator_name(v):
    name = v.__name__
    if name == "_validate_callable":
        return "validate_callable(%d)" % v.__closure__[0].cell_contents
    return name


def type_name(t):
    if t is None:
        return None
    if t is int:
        return "int"
    if t is str:
        return "str"
    if t is callable:
        return "callable"
    return getattr(t, "__name__", repr(t))


def jsonable(v):
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if callable(v):
        return {"callable": v.__qualname__}
    return repr(v)


def kind_of(v):
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "dict"
    if callable(v):
        return "hook"
    return "other"


def main():
    import gunicorn
    from gunicorn import config

    pinned = open(os.path.join(HERE, "gunicorn-version")).read().strip()
    if gunicorn.__version__ != pinned:
        sys.exit("gunicorn %s found, %s expected" % (gunicorn.__version__, pinned))

    cfg = config.Config(prog="gunicorn")
    parser = cfg.parser()
    # Order in which argparse registered the option strings (help order and the
    # order argparse lists candidates in "ambiguous option" errors).
    help_order = {}
    for i, action in enumerate(parser._actions):
        help_order[action.dest] = i

    out = []
    for order, klass in enumerate(config.KNOWN_SETTINGS):
        s = cfg.settings[klass.name]
        value = s.get()
        printed = "<{}()>".format(value.__qualname__) if callable(value) else str(value)
        out.append({
            "name": s.name,
            "section": s.section,
            "order": order,
            "cli": list(s.cli or []),
            "meta": s.meta,
            "action": s.action,
            "nargs": s.nargs,
            "const": s.const,
            "type": type_name(s.type),
            "default": jsonable(s.default),
            "default_kind": kind_of(s.default),
            "default_help": str(s.default),
            "value_kind": kind_of(value),
            "value_print": printed,
            "env_default": s.name in ENV_DEFAULTS,
            "validator": validator_name(s.validator),
            "help_position": help_order.get(s.name),
            "short": s.short,
            "desc": s.desc.splitlines()[0] if s.desc else "",
            "rgun": "supported" if s.name in SUPPORTED else "refused",
        })
    missing = SUPPORTED - {s["name"] for s in out}
    if missing:
        sys.exit("unknown supported names: %s" % sorted(missing))

    doc = {"gunicorn_version": gunicorn.__version__, "settings": out}
    with open(os.path.join(HERE, "settings.json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
        f.write("\n")
    print("wrote %d settings" % len(out))


if __name__ == "__main__":
    main()
