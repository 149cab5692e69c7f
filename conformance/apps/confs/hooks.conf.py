# A gunicorn.conf.py in the style of a real deployment: env-driven sizing,
# a rich access log format and every lifecycle hook recording what it saw.
import json
import os

workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 10
keepalive = 2
access_log_format = ('%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s %(B)s "%(f)s" "%(a)s" '
                     '%(m)s %(U)s %(q)s %(H)s %({x-custom}i)s %({content-type}o)s')

HOOK_LOG = os.environ.get("CONFORMANCE_HOOK_LOG", "/dev/null")
_master = {"pid": os.getpid()}  # the config file is imported in the master


def _event(name, **attrs):
    role = "master" if os.getpid() == _master["pid"] else "worker"
    with open(HOOK_LOG, "a", encoding="utf-8") as f:
        f.write("%s %s %s\n" % (name, role, json.dumps(attrs, sort_keys=True, default=str)))


def _req(req):
    return {"method": req.method, "uri": req.uri, "path": req.path, "query": req.query,
            "fragment": req.fragment, "version": list(req.version), "scheme": req.scheme,
            "headers": [list(h) for h in req.headers if h[0] != "COOKIE"], "req_number": req.req_number}


def on_starting(server):
    _event("on_starting", proc_name=server.proc_name, num_workers=server.num_workers,
           master_name=server.master_name, timeout=server.timeout)


def on_reload(server):
    _event("on_reload")


def when_ready(server):
    _event("when_ready", listeners=[str(l) for l in server.LISTENERS], workers=len(server.WORKERS))


def pre_fork(server, worker):
    _event("pre_fork", age=worker.age, pid=worker.pid)


def post_fork(server, worker):
    _event("post_fork", age=worker.age, booted=worker.booted, timeout=worker.timeout)


def post_worker_init(worker):
    _event("post_worker_init", age=worker.age, booted=worker.booted, nr=worker.nr,
           wsgi=callable(worker.wsgi))


def worker_int(worker):
    _event("worker_int", age=worker.age)


def worker_abort(worker):
    _event("worker_abort", age=worker.age)


def pre_request(worker, req):
    _event("pre_request", nr=worker.nr, **_req(req))


def post_request(worker, req, environ, resp):
    _event("post_request", nr=worker.nr, method=req.method, path=req.path,
           environ_keys=len(environ) > 0,
           status=getattr(resp, "status", None), status_code=getattr(resp, "status_code", None),
           sent=getattr(resp, "sent", None), chunked=getattr(resp, "chunked", None),
           response_length=getattr(resp, "response_length", None),
           headers=[list(h) for h in getattr(resp, "headers", [])
                    if h[0].lower() not in ("set-cookie", "date", "etag", "expires")])


def child_exit(server, worker):
    _event("child_exit", age=worker.age)


def worker_exit(server, worker):
    _event("worker_exit", age=worker.age, alive=worker.alive)


def nworkers_changed(server, new_value, old_value):
    _event("nworkers_changed", new=new_value, old=old_value)


def on_exit(server):
    _event("on_exit", workers=len(server.WORKERS))
