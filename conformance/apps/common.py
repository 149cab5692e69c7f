"""Helpers shared by the conformance apps (imported by both Flask and Django)."""
import hashlib
import json
import re

_ADDR = re.compile(r"0x[0-9a-fA-F]+")
PRIMITIVE = (str, int, float, bool, type(None))


def environ_dump(environ):
    """JSON-able dict of the WSGI environ.

    Primitive values (and tuples/lists of them) are kept verbatim.  Objects are
    reduced to their type name, so reprs containing memory addresses, fds or
    socket addresses never reach the comparison.
    """
    out = {}
    for key in sorted(environ):
        val = environ[key]
        if isinstance(val, PRIMITIVE):
            out[key] = val
        elif isinstance(val, (tuple, list)) and all(isinstance(v, PRIMITIVE) for v in val):
            out[key] = list(val)
        elif callable(val) and not hasattr(val, "read") and not hasattr(val, "write"):
            out[key] = "<callable>"
        else:
            out[key] = "<object %s>" % type(val).__name__
    return out


def digest(data):
    return hashlib.sha256(data).hexdigest()


def dumps(obj):
    return json.dumps(obj, sort_keys=True, indent=1)


def big_payload(size, seed=b"conformance"):
    """Deterministic pseudo-random bytes of the given size."""
    block = hashlib.sha256(seed).digest() * 2048  # 64 KiB
    reps, rest = divmod(size, len(block))
    return block * reps + block[:rest]
