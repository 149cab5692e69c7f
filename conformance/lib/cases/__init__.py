"""Case model and helpers.  A case runs against one Server and returns a raw observation."""
import re

from ..client import exchange, simple_request

PATHS = {
    "flask": {"JSON": "/api/items", "ENV": "/env", "POST": "/upload/raw", "ECHO": "/echo",
              "FILE": "/file", "STREAM": "/stream", "BIG": "/large", "UPLOAD": "/upload"},
    "django": {"JSON": "/items/", "ENV": "/env/", "POST": "/upload/", "ECHO": "/echo",
               "FILE": "/file/", "STREAM": "/stream/", "BIG": "/static-view/shop/logo.txt",
               "UPLOAD": "/upload/"},
}
_REQLINE = re.compile(rb"(?:^|\r\n\r\n|\n\n)(?:\r\n)*([A-Z]+) \S+ HTTP/")


class Case:
    def __init__(self, name, area, fn, apps=None, configs=None, workers=None, tcp_only=False,
                 desc=""):
        self.name = name
        self.area = area
        self.fn = fn
        self.apps = apps
        self.configs = configs
        self.workers = workers
        self.tcp_only = tcp_only
        self.desc = desc

    def applies(self, setup):
        if self.apps and setup.app not in self.apps:
            return False
        if self.configs and setup.config not in self.configs:
            return False
        if self.workers and setup.worker not in self.workers:
            return False
        if self.tcp_only and setup.unix:
            return False
        return True

    def case_id(self, setup):
        return "%s/%s.%s" % (setup.name, self.area, self.name)

    def run(self, server):
        return self.fn(server)


def expand(server, data):
    """Fill {P} (SCRIPT_NAME prefix) and {JSON}/{ENV}/... app paths into request bytes."""
    setup = server.setup
    prefix = setup.prefix.encode()
    for key, path in PATHS[setup.app].items():
        data = data.replace(b"{%s}" % key.encode(), prefix + path.encode())
    return data.replace(b"{P}", prefix)


def raw(name, area, data, methods=None, shut_wr=False, slow=False, steps=None, **kw):
    """A case that sends raw bytes.  `steps` allows interleaving sends and reads."""
    def fn(server):
        items = steps if steps is not None else [data]
        sends = [expand(server, i) if isinstance(i, bytes) else i for i in items]
        meth = methods
        if meth is None:
            meth = [m.decode() for m in _REQLINE.findall(b"".join(s for s in sends if isinstance(s, bytes)))][:1] or ["GET"]
        probe = "%s/__mark__?c=probe" % server.setup.prefix
        return {"exchanges": [exchange(server.target, sends, meth, shut_wr=shut_wr, slow=slow, probe_path=probe)]}
    return Case(name, area, fn, **kw)


def get(name, area, path, headers=(), method="GET", body=b"", version="HTTP/1.1", close=True, **kw):
    hdrs = list(headers)
    if close and not any(h[0].lower() == "connection" for h in hdrs):
        hdrs.append(("Connection", "close"))
    data = simple_request(None, method, path, hdrs, body, version)
    return raw(name, area, data, methods=[method], **kw)


class Flow:
    """Sequential requests on fresh connections with a tiny cookie jar."""

    def __init__(self, server):
        self.server = server
        self.cookies = {}
        self.results = []

    def req(self, method, path, headers=(), body=b""):
        hdrs = list(headers)
        if self.cookies:
            hdrs.append(("Cookie", "; ".join("%s=%s" % kv for kv in sorted(self.cookies.items()))))
        hdrs.append(("Connection", "close"))
        data = expand(self.server, simple_request(None, method, path, hdrs, body))
        res = exchange(self.server.target, [data], [method])
        for r in res["responses"]:
            for k, v in r["headers"]:
                if k.lower() == "set-cookie":
                    name, _, rest = v.partition("=")
                    val = rest.split(";", 1)[0]
                    if val in ("", '""') or "max-age=0" in v.lower():
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = val
        self.results.append(res)
        return res

    def body(self, res, i=0):
        return res["responses"][i]["body"] if len(res["responses"]) > i else b""


def flow(name, area, func, **kw):
    def fn(server):
        fl = Flow(server)
        func(fl)
        return {"exchanges": fl.results}
    return Case(name, area, fn, **kw)


def all_cases():
    from . import django_cases, flask_cases, library, protocol
    cases = []
    for mod in (protocol, flask_cases, django_cases, library):
        cases.extend(mod.CASES)
    seen = set()
    for c in cases:
        key = (c.area, c.name)
        assert key not in seen, "duplicate case %s.%s" % key
        seen.add(key)
    return cases
