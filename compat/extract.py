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

def existing_statuses():
    """rgun's status per setting, kept from the current settings.json (edited by hand there when
    rgun starts or stops implementing a setting); a setting new to gunicorn starts refused."""
    try:
        with open(os.path.join(HERE, "settings.json")) as f:
            return {s["name"]: s["rgun"] for s in json.load(f)["settings"]}
    except FileNotFoundError:
        return {}

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
    statuses = existing_statuses()

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
            "rgun": statuses.get(s.name, "refused"),
        })

    doc = {"gunicorn_version": gunicorn.__version__, "settings": out}
    with open(os.path.join(HERE, "settings.json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
        f.write("\n")
    print("wrote %d settings" % len(out))


if __name__ == "__main__":
    main()
