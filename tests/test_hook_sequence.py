"""Issue 5 acceptance: a config using every server hook produces the same event sequence (hook
names, process roles, argument attributes) under gunicorn 27.0.1 and rgun.

The config file defines all 16 server hooks (on_starting on_reload when_ready pre_fork post_fork
post_worker_init worker_int worker_abort pre_request post_request child_exit worker_exit
nworkers_changed on_exit pre_exec ssl_context). The server speaks TLS, so `ssl_context` runs for
every connection, and a USR2 phase at the end runs `pre_exec`. Each hook appends one line
`name pid role attr=value ...` to a file (one O_APPEND write), role = master/worker by comparing
the pid with the master's (recorded by on_starting in the environment, so it survives a reload).

Scenario, identical for both servers: start with -w 2 over HTTPS; 100 requests; `kill -9` the
oldest worker (and wait for its replacement to boot); SIGQUIT the next (worker_int) and SIGABRT
the next (worker_abort), each time waiting for the replacement; SIGHUP (on_reload, a new
generation of workers, the old one retired); 10 more requests; USR2 (pre_exec in the forked
child, which re-executes as a second master M2 with its own workers); TERM to the old master;
M2 promotes itself; TERM to M2.

Normalisation: pids become M / M2 (the masters, by their on_starting) or W<age> / M2W<age> (a
worker, by the age its post_fork reported and the master it belongs to).
gunicorn's own nondeterminism, and how the comparison absorbs it:
* which worker serves which request: request hooks are compared as total counts and as the set of
  distinct attribute lines, not per worker;
* the order in which the master reaps several workers exiting together (after HUP, at TERM): runs
  of consecutive events with the same name are compared sorted (and the `server.workers` counts
  they saw, which follow the reap order, as a sorted list);
* workers run concurrently with the master: worker events are compared per worker age, as a
  multiset; each master's events are compared in order (M's and M2's interleave freely);
* ssl_context runs once per connection in whichever worker accepted it: compared like the
  request hooks.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
from collections import Counter

import pytest

from support import APPS, GUNICORN, RGUN, Server, pid_alive, recv_all, wait_until

HOOKS_CONF = r'''
import os

LOG = os.environ["HOOKSEQ_LOG"]


def _role():
    return "master" if os.environ.get("HOOKSEQ_MASTER") == str(os.getpid()) else "worker"


def _a(obj, *names):
    out = []
    for n in names:
        try:
            v = getattr(obj, n)
            v = "<callable>" if callable(v) and not isinstance(v, type) else repr(v)
        except Exception as e:
            v = "<%s>" % type(e).__name__
        out.append("%s=%s" % (n, v))
    return out


def _emit(name, *parts):
    line = "%s %d %s %s\n" % (name, os.getpid(), _role(), " ".join(p.replace(" ", "_") for p in parts))
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _server(s):
    return ["server.type=" + type(s).__name__, "server.workers=%d" % len(s.WORKERS),
            "server.listeners=%d" % len(s.LISTENERS), "server.cfg.workers=%r" % s.cfg.workers] + \
        _a(s, "num_workers", "pid", "proc_name")


def _worker(w):
    return ["worker.type=" + type(w).__name__] + _a(w, "age", "pid", "ppid", "booted", "aborted", "alive",
                                                    "timeout", "max_requests")


def on_starting(server):
    os.environ["HOOKSEQ_MASTER"] = str(os.getpid())
    _emit("on_starting", *_server(server))


def on_reload(server):
    _emit("on_reload", *_server(server))


def when_ready(server):
    _emit("when_ready", *_server(server))


def pre_fork(server, worker):
    _emit("pre_fork", *(_server(server) + _worker(worker)))


def post_fork(server, worker):
    _emit("post_fork", *(_server(server) + _worker(worker)))


def post_worker_init(worker):
    _emit("post_worker_init", *_worker(worker))


def worker_int(worker):
    _emit("worker_int", *_worker(worker))


def worker_abort(worker):
    _emit("worker_abort", *_worker(worker))


def _req(req):
    return _a(req, "method", "uri", "path", "query", "fragment", "version", "scheme") + \
        ["req.headers=%r" % (req.headers,)]


def pre_request(worker, req):
    _emit("pre_request", *(["worker.age_known=%s" % isinstance(worker.age, int)] + _req(req)))


def post_request(worker, req, environ, resp):
    _emit("post_request", *(["worker.age_known=%s" % isinstance(worker.age, int)] + _req(req) +
                            _a(resp, "status", "status_code") +
                            ["environ.PATH_INFO=%s" % environ.get("PATH_INFO")]))


def child_exit(server, worker):
    _emit("child_exit", *(_server(server) + _worker(worker)))


def worker_exit(server, worker):
    _emit("worker_exit", *(_server(server) + _worker(worker)))


def nworkers_changed(server, new_value, old_value):
    _emit("nworkers_changed", "new=%r" % new_value, "old=%r" % old_value, *_server(server))


def on_exit(server):
    _emit("on_exit", *_server(server))


def pre_exec(server):
    _emit("pre_exec", *(_server(server) + _a(server, "master_pid", "reexec_pid", "systemd")))


def ssl_context(config, default_ssl_context_factory):
    ctx = default_ssl_context_factory()
    _emit("ssl_context", "config.certfile_set=%s" % bool(config.certfile),
          "ctx.type=" + type(ctx).__name__, "ctx.verify_mode=%r" % ctx.verify_mode)
    return ctx
'''

HOOKS = ["on_starting", "on_reload", "when_ready", "pre_fork", "post_fork", "post_worker_init",
         "worker_int", "worker_abort", "pre_request", "post_request", "child_exit", "worker_exit",
         "nworkers_changed", "on_exit", "pre_exec", "ssl_context"]
# Hooks whose worker depends on which worker accepted the connection.
REQUEST_HOOKS = {"pre_request", "post_request", "ssl_context"}

_CACHE: dict = {}
_LOCK = threading.Lock()


def _lines(path):
    try:
        with open(path) as f:
            return [l.rstrip("\n").split(" ", 3) for l in f if l.endswith("\n")]
    except FileNotFoundError:
        return []


def _count(path, name, pred=lambda e: True):
    return sum(1 for e in _lines(path) if e[0] == name and pred(e))


def _certs(base):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem",
                    "-out", "cert.pem", "-days", "2", "-subj", "/CN=localhost"],
                   cwd=base, check=True, capture_output=True)
    return os.path.join(base, "cert.pem"), os.path.join(base, "key.pem")


def _https_get(srv):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(srv.address, timeout=15) as raw, ctx.wrap_socket(raw) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = recv_all(s)
    return data.split(b" ", 2)[1]


def _scenario(exe, base):
    log = os.path.join(base, "hooks.log")
    conf = os.path.join(base, "hooks.conf.py")
    pidfile = os.path.join(base, "master.pid")
    with open(conf, "w") as f:
        f.write(HOOKS_CONF)
    cert, key = _certs(base)
    srv = Server(["-c", conf, "-w", "2", "--graceful-timeout", "10", "--certfile", cert, "--keyfile", key,
                  "-p", pidfile, "hello:app"], exe=exe, tmpdir=base,
                 workers=2, cwd=APPS, name=os.path.basename(exe), extra_env={"HOOKSEQ_LOG": log})
    m2 = None
    try:
        srv.start()
        inits = lambda n: wait_until(lambda: _count(log, "post_worker_init") >= n, 15,
                                     what="%d post_worker_init in %s" % (n, log))
        inits(2)

        def requests(n, total):
            for _ in range(n):
                assert _https_get(srv) == b"200"
            wait_until(lambda: _count(log, "post_request") >= total, 10, what="%d post_request" % total)

        def age_pid(age):
            (pid,) = {int(e[1]) for e in _lines(log) if e[0] == "post_fork" and "age=%d" % age in e[3].split()}
            return pid

        requests(100, 100)
        for age, sig, boots in ((1, signal.SIGKILL, 3), (2, signal.SIGQUIT, 4), (3, signal.SIGABRT, 5)):
            os.kill(age_pid(age), sig)
            srv.wait_log(r"Booting worker with pid", count=boots, timeout=15)
            inits(boots)
            wait_until(lambda: _count(log, "child_exit") >= age, 10, what="child_exit x%d" % age)
        os.kill(srv.master_pid, signal.SIGHUP)
        srv.wait_log(r"Booting worker with pid", count=7, timeout=15)
        inits(7)
        wait_until(lambda: _count(log, "child_exit") >= 5, 15, what="old generation reaped")
        requests(10, 110)
        # Binary upgrade: M2 boots its own two workers next to M's.
        os.kill(srv.master_pid, signal.SIGUSR2)
        wait_until(lambda: os.path.exists(pidfile + ".2"), 15, what="the USR2 child's pidfile")
        m2 = int(open(pidfile + ".2").read())
        inits(9)
        # TERM the old master by hand: Server.stop would also kill M2's workers (same log).
        os.kill(srv.master_pid, signal.SIGTERM)
        assert srv.wait_exit(20) == 0, srv.log()
        wait_until(lambda: _count(log, "on_exit") >= 1, 5, what="on_exit of M")
        srv.wait_log(r"Master has been promoted", timeout=15)
        os.kill(m2, signal.SIGTERM)
        wait_until(lambda: _count(log, "on_exit") >= 2, 20, what="on_exit of M2")
        wait_until(lambda: not pid_alive(m2), 20, what="M2 exit")
    finally:
        if m2 and pid_alive(m2):
            os.kill(m2, signal.SIGKILL)
        srv.stop()
    lines = _lines(log)
    masters = {e[1] for e in lines if e[0] == "on_starting"}
    return [(n, p, "master" if p in masters else "worker", a) for n, p, _, a in lines], srv.log()


def run_scenario(exe):
    """The scenario's raw hook events [(name, pid, role, attrs)] under `exe`, run once per process."""
    with _LOCK:
        if exe not in _CACHE:
            base = tempfile.mkdtemp(prefix="hookseq-")
            try:
                _CACHE[exe] = _scenario(exe, base)
            except Exception as e:  # remember the failure: do not rerun a 20 s scenario per caller
                _CACHE[exe] = e
        v = _CACHE[exe]
    if isinstance(v, Exception):
        raise v
    return v[0]


def normalise(events):
    """pids -> M / M2 / W<age> / M2W<age>; returns ({master: its events in order}, {worker:
    Counter of its events}, request hook counts, distinct request hook lines)."""
    starts = [e[1] for e in events if e[0] == "on_starting"]
    assert len(starts) == 2, events[:5]
    names = {starts[0]: "M", starts[1]: "M2"}
    for name, pid, role, attrs in events:
        if name == "post_fork":
            age = int(re.search(r"(?:^| )age=(\d+)", attrs).group(1))
            server_pid = re.search(r"(?:^| )pid=(\d+)", attrs).group(1)
            names[pid] = ("" if names.get(server_pid) == "M" else "M2") + "W%d" % age

    def sub(text):
        return re.sub(r"\b(\d{2,})\b", lambda m: names.get(m.group(1), m.group(1)), text)

    master_events, workers, req_counts, req_lines = {"M": [], "M2": []}, {}, Counter(), set()
    for name, pid, role, attrs in events:
        attrs = sub(attrs)
        if name in REQUEST_HOOKS:
            req_counts[(name, role)] += 1
            req_lines.add((name, role, attrs))
        elif names.get(pid) in master_events:
            master_events[names[pid]].append((name, role, attrs))
        else:
            workers.setdefault(names.get(pid, "W?"), Counter())[(name, role, attrs)] += 1
    return {m: _stable_runs(evs) for m, evs in master_events.items()}, workers, req_counts, req_lines


def _stable_runs(master_events):
    """Runs of the same event (several workers reaped together) in a stable order."""
    runs, out = [], []
    for ev in master_events:
        if runs and runs[-1][0][0] == ev[0]:
            runs[-1].append(ev)
        else:
            runs.append([ev])
    for r in runs:
        if len(r) == 1:
            out.extend(r)
            continue
        # Which worker is reaped first decides which one sees server.workers=N: compare the
        # events without it, and the values it took as a sorted list.
        counts = sorted(re.findall(r"server\.workers=\d+", " ".join(e[2] for e in r)))
        out.extend(sorted((n, role, re.sub(r"server\.workers=\d+", "server.workers=*", a)) for n, role, a in r))
        out.append((r[0][0] + " (run)", r[0][1], " ".join(counts)))
    return out


@pytest.fixture(scope="module")
def sequences():
    return {label: normalise(run_scenario(exe)) for label, exe in (("rgun", RGUN), ("gunicorn", GUNICORN))}


def test_every_hook_fires_in_the_scenario(sequences):
    for label, (master, workers, req_counts, _) in sequences.items():
        seen = {e[0].replace(" (run)", "") for evs in master.values() for e in evs} | \
            {e[0] for c in workers.values() for e in c} | {k[0] for k in req_counts}
        assert seen == set(HOOKS), (label, set(HOOKS) - seen)


def test_master_events_in_order(sequences):
    for m in ("M", "M2"):
        r, g = sequences["rgun"][0][m], sequences["gunicorn"][0][m]
        assert [e[:2] for e in r] == [e[:2] for e in g], m  # names and roles first: the clearest diff
        assert r == g, m


def test_worker_events_per_worker_age(sequences):
    r, g = sequences["rgun"][1], sequences["gunicorn"][1]
    assert sorted(r) == sorted(g)
    for age in g:
        assert {k[:2]: v for k, v in r[age].items()} == {k[:2]: v for k, v in g[age].items()}, age
        assert r[age] == g[age], age


def test_request_hooks(sequences):
    r, g = sequences["rgun"], sequences["gunicorn"]
    assert r[2] == g[2] == Counter({("pre_request", "worker"): 110, ("post_request", "worker"): 110,
                                    ("ssl_context", "worker"): 110})
    assert r[3] == g[3]
