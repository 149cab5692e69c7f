"""Issue 5 acceptance: every one of gunicorn's 120 settings is either honoured by rgun or refused
with an error naming it.

One parametrized case per setting, driven by `compat/settings.json`; `test_every_setting_has_a_case`
makes a new setting fail until it gets a case here.

* `refused` settings: rgun, started with a non-default value, exits 1 with
  `\\nError: setting '<name>' (<flags joined by '/'> | config file only) is not supported by rgun yet\\n`,
  and gunicorn accepts the same value (so the refusal is rgun's, not a validation error).
* `supported` settings: a behavioural check that the setting has its effect, run under rgun *and*
  gunicorn 27.0.1 with the same flags wherever the effect is observable from outside, asserting the
  same observable result (plus an absolute expectation, so that "both ignore it" cannot pass).
  A few settings have no effect a client or an operator can observe (in gunicorn too); their case
  says so in its docstring and checks start-up plus `--print-config`.

Servers are started lazily, one rgun + one gunicorn per distinct configuration, both at once, and
kept for the module (cases sharing a configuration share the servers).
"""

from __future__ import annotations

import functools
import json
import os
import pwd
import grp
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from support import (APPS, GUNICORN, RGUN, ROOT, DatagramCollector, RawConn, Server, free_port, make_certs,
                     norm_statsd, pid_alive, recv_all, rewrite_until_logged, run_cli, wait_until)

SETTINGS = json.load(open(os.path.join(ROOT, "compat", "settings.json")))["settings"]
BY_NAME = {s["name"]: s for s in SETTINGS}
IS_ROOT = os.geteuid() == 0
HAVE_OPENSSL = shutil.which("openssl") is not None

APP = r'''
import io, json, os, sys, time
from urllib.parse import parse_qs

_imp = os.environ.get("MX_IMPORTS")
if _imp:
    with open(_imp, "a") as f:
        f.write("%d\n" % os.getpid())


class Upper(io.FileIO):
    """read() upper-cases: a body sent with sendfile() is the raw file, one read through read() is not."""
    def read(self, n=-1):
        return super().read(n).upper()


def _q(environ):
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    q = _q(environ)
    if path == "/file":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](Upper(q["path"], "r"), 4096)
    if path == "/print":
        print("MX-STDOUT %s" % q.get("tag", ""), flush=True)
        sys.stderr.write("MX-STDERR %s\n" % q.get("tag", ""))
        sys.stderr.flush()
        body = b"printed"
    elif path == "/slow":
        if q.get("mark"):
            with open(q["mark"], "a") as f:
                f.write("start %d\n" % os.getpid())
        time.sleep(float(q.get("s", "1")))
        body = b"slept"
    elif path == "/pid":
        body = str(os.getpid()).encode()
    elif path == "/env":
        body = os.environ.get(q["k"], "<unset>").encode()
    else:
        skip = {"REMOTE_PORT", "SERVER_PORT", "SERVER_SOFTWARE"}
        d = {k: v for k, v in environ.items() if isinstance(v, str) and k not in skip}
        body = json.dumps(d, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


# --- harness -----------------------------------------------------------------------------------

class NoCtlServer(Server):
    """A Server that does not add gunicorn's `--no-control-socket` (for the control socket cases)."""

    def cmdline(self):
        cmd = [self.exe]
        if self.bind is not None:
            cmd += ["-b", self.bind]
        return cmd + self.args


EXES = (("rgun", RGUN), ("gunicorn", GUNICORN))


class Ctx:
    def __init__(self, spawn, base):
        self.spawn = spawn
        self.base = base
        self.dir = base / "app"
        self.dir.mkdir()
        (self.dir / "mxapp.py").write_text(APP)
        self.cache = {}
        self.n = 0

    def path(self, name):
        return str(self.base / name)

    def fmt(self, value, label):
        """`{label}` and `{dir}` in args, config text and paths are per-server."""
        return value.replace("{label}", label).replace("{dir}", str(self.base))

    def pair(self, *args, conf=None, app="mxapp:app", workers=1, bind="127.0.0.1:0", log=None,
             cwd=None, env=None, wait=True, cls=None, exes=EXES):
        """Start (once per distinct configuration) the same configuration under rgun and gunicorn."""
        key = (args, conf, app, workers, bind, log, cwd, tuple(sorted((env or {}).items())), wait, cls, exes)
        if key in self.cache:
            return self.cache[key]
        self.n += 1
        servers = []
        for label, exe in exes:
            a = [self.fmt(x, label) for x in args]
            if conf is not None:
                cpath = self.base / ("%s-%d.conf.py" % (label, self.n))
                cpath.write_text(self.fmt(conf, label))
                a = ["-c", str(cpath)] + a
            if app:
                a.append(app)
            srv = (cls or Server)(a, exe=exe, tmpdir=self.base / "logs", workers=workers, name=label,
                                  cwd=self.fmt(cwd, label) if cwd else str(self.dir),
                                  bind=self.fmt(bind, label) if bind else None,
                                  log_path=self.fmt(log, label) if log else None,
                                  extra_env={k: self.fmt(v, label) for k, v in (env or {}).items()})
            self.spawn.servers.append(srv)
            srv.start(wait=False)
            servers.append(srv)
        if wait:
            for srv in servers:
                srv.wait_ready()
        self.cache[key] = tuple(servers)
        return self.cache[key]


@pytest.fixture(scope="module")
def ctx(module_spawn, tmp_path_factory):
    return Ctx(module_spawn, tmp_path_factory.mktemp("matrix"))


def both(servers, fn):
    """fn(server) under rgun and gunicorn; asserts the same result and returns it."""
    r, g = (fn(s) for s in servers)
    assert r == g, "rgun: %r\ngunicorn: %r" % (r, g)
    return r


def norm_raw(data: bytes) -> bytes:
    data = re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: X", data)
    return re.sub(rb"\r\nServer: [^\r]*", b"\r\nServer: X", data)


def raw(data: bytes):
    return lambda srv: norm_raw(srv.raw(data))


def environ(path="/", headers=(), method="GET", version="HTTP/1.1", prefix=b""):
    """A raw request (optionally behind a PROXY header) answered with the app's environ dump."""
    head = ["%s %s %s" % (method, path, version), "Host: localhost"] + ["%s: %s" % h for h in headers]
    data = prefix + ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")

    def fn(srv):
        out = srv.raw(data)
        head, _, body = out.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode()
        if status.endswith("200 OK"):
            return status, json.loads(body)
        return status, norm_raw(out).decode("latin-1")
    return fn


def get(path):
    return lambda srv: srv.request("GET", path).body.decode("latin-1")


def logged(srv, needle, timeout=10.0, source=None):
    src = source or srv.log
    wait_until(lambda: needle in src(), timeout, what="%r in %s log:\n%s" % (needle, srv.name, src()[-2000:]))
    return True


def print_config(*args, cwd=None):
    """`--print-config` lines under both (they must be identical); returns {name: value}."""
    outs = []
    for _, exe in EXES:
        p = run_cli(["--print-config", *args], exe=exe, cwd=cwd or APPS)
        assert p.returncode == 0, p.stderr
        outs.append(p.stdout)
    assert outs[0] == outs[1]
    return {k.strip(): v.strip() for k, _, v in (l.partition("=") for l in outs[0].splitlines())}


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups"):
                out[k] = v.split()
    return out


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().replace(b"\0", b" ").decode().strip()


CHECKS = {}


def check(*names):
    def deco(fn):
        for n in names:
            assert n not in CHECKS, n
            CHECKS[n] = fn
        return fn
    return deco


# --- refused settings --------------------------------------------------------------------------

# A valid, non-default value for every refused setting: CLI args, or a config file line.
REFUSED = {
    "control_socket": ["--control-socket", "x.ctl"],
    "control_socket_mode": ["--control-socket-mode", "0o660"],
    "protocol": ["--protocol", "uwsgi"],
    "uwsgi_allow_ips": ["--uwsgi-allow-from", "10.0.0.1"],
    "http_protocols": ["--http-protocols", "h2,h1"],
    "http2_cleartext": ["--http2-cleartext", "upgrade"],
    "http2_max_concurrent_streams": ["--http2-max-concurrent-streams", "50"],
    "http2_initial_window_size": ["--http2-initial-window-size", "131072"],
    "http2_max_frame_size": ["--http2-max-frame-size", "32768"],
    "http2_max_header_list_size": ["--http2-max-header-list-size", "1000"],
    "asgi_loop": ["--asgi-loop", "asyncio"],
    "asgi_lifespan": ["--asgi-lifespan", "on"],
    "asgi_disconnect_grace_period": ["--asgi-disconnect-grace-period", "5"],
    "websocket_max_message_size": ["--websocket-max-message-size", "1024"],
    "root_path": ["--root-path", "/api"],
    "dirty_apps": ["--dirty-app", "mxapp:Dirty"],
    "dirty_workers": ["--dirty-workers", "1"],
    "dirty_timeout": ["--dirty-timeout", "10"],
    "dirty_threads": ["--dirty-threads", "2"],
    "dirty_graceful_timeout": ["--dirty-graceful-timeout", "10"],
    "on_dirty_starting": "def on_dirty_starting(arbiter):\n    pass\n",
    "dirty_post_fork": "def dirty_post_fork(arbiter, worker):\n    pass\n",
    "dirty_worker_init": "def dirty_worker_init(worker):\n    pass\n",
    "dirty_worker_exit": "def dirty_worker_exit(arbiter, worker):\n    pass\n",
}


def check_refused(s, tmp_path):
    spec = REFUSED[s["name"]]
    (tmp_path / "mxapp.py").write_text(APP)
    if isinstance(spec, str):
        (tmp_path / "conf.py").write_text(spec)
        args = ["-c", "conf.py"]
    else:
        args = list(spec)
    flags = "/".join(s["cli"]) if s["cli"] else "config file only"
    p = run_cli(args + ["mxapp:app"], exe=RGUN, cwd=str(tmp_path))
    assert (p.returncode, p.stderr) == (
        1, "\nError: setting '%s' (%s) is not supported by rgun yet\n" % (s["name"], flags))
    # gunicorn accepts the value (and it is not the default), so it is rgun refusing it. Not
    # checkable here: http_protocols (any value but the default includes h2, which needs the
    # `h2` package).
    if s["name"] != "http_protocols":
        g = run_cli(["--print-config"] + args + ["mxapp:app"], exe=GUNICORN, cwd=str(tmp_path))
        assert g.returncode == 0, g.stderr
        line = [l for l in g.stdout.splitlines() if l.split(" ", 1)[0] == s["name"]]
        assert len(line) == 1 and line[0].split("=", 1)[1].strip() != s["value_print"], line


# --- the matrix --------------------------------------------------------------------------------

# rgun bugs found by this matrix (strict: the case fails loudly once fixed, then drop the entry).
KNOWN_BUGS: dict[str, str] = {}


@pytest.mark.parametrize("name", [
    pytest.param(s["name"], marks=pytest.mark.xfail(reason=KNOWN_BUGS[s["name"]], strict=True))
    if s["name"] in KNOWN_BUGS else s["name"] for s in SETTINGS])
def test_setting(name, ctx, tmp_path):
    s = BY_NAME[name]
    if s["rgun"] == "refused":
        check_refused(s, tmp_path)
    else:
        assert s["rgun"] == "supported"
        fn = CHECKS[name]
        fn(ctx, name) if fn.__code__.co_argcount == 2 else fn(ctx)


def test_every_setting_has_a_case():
    names = {s["name"] for s in SETTINGS}
    assert len(names) == 120
    refused = {s["name"] for s in SETTINGS if s["rgun"] == "refused"}
    assert refused == set(REFUSED)
    assert names - refused == set(CHECKS)


# --- supported: config file, app, binding ------------------------------------------------------

@check("config")
def _config(ctx):
    servers = ctx.pair(conf="raw_env = ['MX_FROM_CONF=yes']\nworkers = 2\n", workers=2)
    assert both(servers, get("/env?k=MX_FROM_CONF")) == "yes"
    assert both(servers, lambda s: len(s.worker_pids())) == 2


@check("wsgi_app")
def _wsgi_app(ctx):
    """No positional app: the config file's wsgi_app is served."""
    servers = ctx.pair(conf="wsgi_app = 'mxapp:app'\n", app=None)
    assert both(servers, lambda s: get("/pid")(s).isdigit())


@check("bind")
def _bind(ctx):
    """Two -b: a unix socket and a TCP port; both serve."""
    servers = ctx.pair("-b", "unix:{dir}/{label}-bind.sock", wait=False)

    def listening(srv):
        srv.wait_log(r"Booting worker with pid")
        m = re.search(r"Listening at: (\S+) \(\d+\)", srv.log())
        return re.sub(r":\d+,", ":PORT,", m.group(1).replace(ctx.path(srv.name), "PATH"))
    urls = both(servers, listening).split(",")
    assert urls[0].startswith("http://127.0.0.1:") and urls[1] == "unix:PATH-bind.sock"
    for srv in servers:
        port = int(re.search(r"Listening at: http://127.0.0.1:(\d+)", srv.log()).group(1))
        srv.port, srv.address = port, ("127.0.0.1", port)
        assert srv.request("GET", "/pid").status == 200
        s = socket.socket(socket.AF_UNIX)
        s.connect(ctx.path(srv.name + "-bind.sock"))
        s.sendall(b"GET /pid HTTP/1.0\r\n\r\n")
        assert recv_all(s).startswith(b"HTTP/1.0 200 OK\r\n")
        s.close()


@check("backlog")
def _backlog(ctx):
    """The listen backlog, read back from the kernel (ss reports a listener's backlog as Send-Q)."""
    if not shutil.which("ss"):
        pytest.skip("no ss")
    servers = ctx.pair("--backlog", "37")

    def send_q(srv):
        out = subprocess.run(["ss", "-ltnH", "sport = :%d" % srv.port], capture_output=True, text=True).stdout
        return out.split()[2]
    assert both(servers, send_q) == "37"


@check("reuse_port")
def _reuse_port(ctx):
    """With --reuse-port another SO_REUSEPORT socket can bind the same port; without, it cannot."""
    out = {}
    for label, exe in EXES:
        for flag in ((), ("--reuse-port",)):
            port = free_port()
            srv = Server(list(flag) + ["mxapp:app"], exe=exe, tmpdir=ctx.base / "logs", cwd=str(ctx.dir),
                         bind="127.0.0.1:%d" % port, name=label)
            ctx.spawn.servers.append(srv)
            srv.start(wait=False)
            srv.wait_log(r"Booting worker with pid")
            srv.port, srv.address = port, ("127.0.0.1", port)

            def served():
                # With reuse_port the worker binds its own socket just after that log line.
                try:
                    return srv.request("GET", "/pid").status == 200
                except ConnectionRefusedError:
                    return False
            wait_until(served, 10, what="the worker's listener")
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                s.bind(("127.0.0.1", port))
                out[label, flag] = "shared"
            except OSError:
                out[label, flag] = "in use"
            finally:
                s.close()
            srv.stop()
    assert out == {("rgun", ()): "in use", ("rgun", ("--reuse-port",)): "shared",
                   ("gunicorn", ()): "in use", ("gunicorn", ("--reuse-port",)): "shared"}


@check("chdir")
def _chdir(ctx):
    servers = ctx.pair("--chdir", str(ctx.dir), cwd="{dir}")
    assert both(servers, get("/env?k=PWD")) is not None
    assert both(servers, lambda s: os.readlink("/proc/%d/cwd" % s.master_pid)) == str(ctx.dir)


@check("pythonpath")
def _pythonpath(ctx):
    servers = ctx.pair("--pythonpath", str(ctx.dir), cwd="{dir}")
    assert both(servers, lambda s: get("/pid")(s).isdigit())


@check("raw_env")
def _raw_env(ctx):
    servers = ctx.pair("-e", "MX_RAW=v1", "-e", "MX_RAW2=a=b")
    assert both(servers, get("/env?k=MX_RAW")) == "v1"
    assert both(servers, get("/env?k=MX_RAW2")) == "a=b"


@check("preload_app")
def _preload(ctx):
    """With --preload the app module is imported once, in the master; without, in each worker."""
    for args, where in (((), "workers"), (("--preload",), "master")):
        servers = ctx.pair(*args, "-w", "2", workers=2, env={"MX_IMPORTS": "{dir}/{label}-%s.imports" % where})
        for srv in servers:
            path = ctx.path("%s-%s.imports" % (srv.name, where))
            assert srv.request("GET", "/pid").status == 200
            n = 1 if where == "master" else 2
            wait_until(lambda: os.path.exists(path) and len(open(path).read().split()) >= n, 10, what=path)
            pids = [int(x) for x in open(path).read().split()]
            assert sorted(pids) == ([srv.master_pid] if where == "master" else sorted(srv.worker_pids()))


# --- supported: reload and PasteDeploy ---------------------------------------------------------

RL_APP = ("VERSION = %r\n\n\ndef app(environ, start_response):\n    body = VERSION.encode()\n"
          "    start_response('200 OK', [('Content-Length', str(len(body)))])\n    return [body]\n")


def _reloads(ctx, tag, args, edit, text):
    """A reloading pair, each serving its own copy of `rlapp` from `{dir}/{label}-{tag}`: `edit`
    is rewritten with `text` until the worker restarts. Returns, from both (asserted equal),
    the reload line (the server's dir shown as DIR) and the new worker's answer."""
    for label, _ in EXES:
        d = ctx.base / ("%s-%s" % (label, tag))
        d.mkdir()
        (d / "rlapp.py").write_text(RL_APP % "v1")
        (d / "extra.txt").write_text("1")
    servers = ctx.pair("--reload", *args, app="rlapp:app", cwd="{dir}/{label}-%s" % tag)

    def fn(srv):
        d = ctx.base / ("%s-%s" % (srv.name, tag))
        assert get("/")(srv) == "v1"
        rewrite_until_logged(srv, d / edit, text, r"Worker reloading: ")
        srv.wait_log(r"Booting worker with pid", count=2)
        srv.wait_log(r"Reloader is on\. Use in development only!", count=2)
        line = re.search(r"\[INFO\] (Worker reloading: .*)", srv.log()).group(1)
        return line.replace(str(d), "DIR"), get("/")(srv)
    return both(servers, fn)


@check("reload")
def _reload(ctx):
    """Editing the app module restarts the worker, which then serves the new code. (`auto` is
    inotify here, which names the file without its directory.)"""
    assert _reloads(ctx, "rl", (), "rlapp.py", RL_APP % "v2") == (
        "Worker reloading: rlapp.py modified", "v2")


@check("reload_engine")
def _reload_engine(ctx):
    """The poll engine names the changed file by its full path (inotify by its bare name)."""
    assert _reloads(ctx, "rle", ("--reload-engine", "poll"), "rlapp.py", RL_APP % "v2") == (
        "Worker reloading: DIR/rlapp.py modified", "v2")


@check("reload_extra_files")
def _reload_extra_files(ctx):
    """A listed non-module file restarts the worker too (the app itself is unchanged)."""
    args = ("--reload-engine", "poll", "--reload-extra-file", "{dir}/{label}-rlx/extra.txt")
    assert _reloads(ctx, "rlx", args, "extra.txt", "2") == (
        "Worker reloading: DIR/extra.txt modified", "v1")


PASTE_APP = ("import json\n\n\ndef make_app(global_conf, **local):\n"
             "    def app(environ, start_response):\n"
             "        body = json.dumps([global_conf, local], sort_keys=True).encode()\n"
             "        start_response('200 OK', [('Content-Length', str(len(body)))])\n"
             "        return [body]\n    return app\n")
PASTE_INI = ("[app:main]\npaste.app_factory = pasteapp:make_app\nname = main\n\n"
             "[app:other]\npaste.app_factory = pasteapp:make_app\nname = other\n")


def _paste_answer(ctx, tag, *args):
    for label, _ in EXES:
        d = ctx.base / ("%s-%s" % (label, tag))
        d.mkdir()
        (d / "pasteapp.py").write_text(PASTE_APP)
        (d / "site.ini").write_text(PASTE_INI)
    servers = ctx.pair(*args, app=None, cwd="{dir}/{label}-%s" % tag)
    return both(servers, lambda srv: json.loads(
        get("/")(srv).replace(str(ctx.base / ("%s-%s" % (srv.name, tag))), "DIR")))


@check("paste")
def _paste(ctx):
    """The app is built by PasteDeploy from the ini file's section (`#other`)."""
    assert _paste_answer(ctx, "paste", "--paste", "site.ini#other") == [
        {"__file__": "DIR/site.ini", "here": "DIR"}, {"name": "other"}]


@check("raw_paste_global_conf")
def _paste_global(ctx):
    """`--paste-global` entries reach the app factory's global_conf (`\\=` escapes `=`)."""
    assert _paste_answer(ctx, "pasteg", "--paste", "site.ini", "--paste-global", "a=1",
                         "--paste-global", "b\\=c=d") == [
        {"__file__": "DIR/site.ini", "here": "DIR", "a": "1", "b=c": "d"}, {"name": "main"}]


@check("check_config")
def _check_config(ctx):
    for app, rc in (("mxapp:app", 0), ("mxapp:nope", 1)):
        res = []
        for _, exe in EXES:
            p = run_cli(["--check-config", app], exe=exe, cwd=str(ctx.dir))
            res.append((p.returncode, p.stdout, p.stderr.rstrip("\n").splitlines()[-1:]))
        assert res[0][0] == res[1][0] == rc, res
        assert res[0] == res[1]


@check("print_config")
def _print_config(ctx):
    assert print_config("-w", "3", "hello:app")["workers"] == "3"


@check("spew")
def _spew(ctx):
    servers = ctx.pair("--spew", conf="def when_ready(server):\n    marker = 'spewed'\n")
    for srv in servers:
        logged(srv, "marker = 'spewed'", source=srv.stdout)


@check("daemon", "enable_stdio_inheritance")
def _answers(port):
    """Whether a server on `port` answers an HTTP request (any status)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/1.")
    except OSError:
        return False


def _daemon(ctx):
    """-D detaches (the launcher exits 0, the master is another session, stdio is /dev/null);
    -R keeps a non-tty stdout/stderr (here files) in the daemon. TERM is sent once a worker has
    answered a request: a worker that has logged `Booting worker` may not have installed its
    signal handlers yet, and gunicorn's then ignores the master's TERM until graceful_timeout
    (30 s) runs out (seen once in CI)."""
    if "daemon" in ctx.cache:
        return  # one check for both settings
    ctx.cache["daemon"] = True
    for label, exe in EXES:
        for inherit in (False, True):
            tag = "%s-%s" % (label, inherit)
            pidfile = ctx.path(tag + ".dpid")
            out, err = open(ctx.path(tag + ".dout"), "w"), open(ctx.path(tag + ".derr"), "w")
            elog = ctx.path(tag + ".delog")
            port = free_port()
            args = [exe, "-D", "-p", pidfile, "-b", "127.0.0.1:%d" % port] + (
                ["-R"] if inherit else ["--error-logfile", elog])
            if exe == GUNICORN:
                args.append("--no-control-socket")
            p = subprocess.run(args + ["mxapp:app"], cwd=str(ctx.dir), stdout=out, stderr=err,
                               stdin=subprocess.DEVNULL, timeout=20, env=dict(os.environ, PYTHONUNBUFFERED="1"))
            out.close()
            err.close()
            assert p.returncode == 0
            wait_until(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), 10, what="pidfile")
            pid = int(open(pidfile).read())
            try:
                assert os.getsid(pid) != os.getsid(0)
                assert os.readlink("/proc/%d/fd/0" % pid) == "/dev/null"
                want = ctx.path(tag + ".derr") if inherit else "/dev/null"
                assert os.readlink("/proc/%d/fd/2" % pid) == want, tag
                wait_until(lambda: "Booting worker" in open(ctx.path(tag + ".derr") if inherit else elog).read(),
                           10, what="worker boot")
                wait_until(lambda: _answers(port), 10, what="a response from the daemon's worker")
            finally:
                os.kill(pid, signal.SIGTERM)
                try:
                    wait_until(lambda: not pid_alive(pid), 10, what="%s daemon exit after TERM" % tag)
                except TimeoutError:
                    os.kill(pid, signal.SIGKILL)
                    raise


@check("pidfile")
def _pidfile(ctx):
    servers = ctx.pair("-p", "{dir}/{label}.pid")
    for srv in servers:
        assert open(ctx.path(srv.name + ".pid")).read() == "%d\n" % srv.master_pid


@check("worker_tmp_dir")
def _worker_tmp_dir(ctx):
    """The worker's heartbeat file (unlinked at once) is created in worker_tmp_dir."""
    for label, _ in EXES:
        os.makedirs(ctx.path(label + "-wtmp"), exist_ok=True)
    servers = ctx.pair("--worker-tmp-dir", "{dir}/{label}-wtmp")

    def heartbeat_dir(srv):
        (w,) = srv.worker_pids()
        links = [os.readlink("/proc/%d/fd/%s" % (w, fd)) for fd in os.listdir("/proc/%d/fd" % w)]
        mine = [l for l in links if l.startswith(ctx.path(srv.name + "-wtmp") + "/")]
        return len(mine), all(l.endswith(" (deleted)") for l in mine)
    assert both(servers, heartbeat_dir) == (1, True)


@check("tmp_upload_dir")
def _tmp_upload_dir(ctx):
    """gunicorn 27 reads tmp_upload_dir nowhere (request bodies are streamed), so nothing is
    observable: start-up, a request body, and --print-config."""
    servers = ctx.pair(conf="tmp_upload_dir = '/nonexistent-mx'\n")
    for srv in servers:
        assert srv.request("POST", "/", body=b"x" * 100000).status == 200
    assert print_config("-c", str(ctx.base / ("rgun-%d.conf.py" % ctx.n)), "hello:app")["tmp_upload_dir"] == "/nonexistent-mx"


@check("umask")
def _umask(ctx):
    servers = ctx.pair("-m", "0o027", bind="unix:{dir}/{label}-umask.sock")
    assert both(servers, lambda s: oct(os.stat(s.address).st_mode & 0o777)) == "0o750"


@check("user", "group")
def _user_group(ctx):
    if not IS_ROOT:
        pytest.skip("switching users needs root")
    nobody = pwd.getpwnam("nobody")
    gid = grp.getgrgid(nobody.pw_gid).gr_name
    # hello:app imports nothing: the interpreter's own files may not be readable by nobody here.
    servers = ctx.pair("-u", "nobody", "-g", gid, app="hello:app", cwd=APPS)
    # After a request the worker has switched (gunicorn does it after logging "Booting worker").
    got = both(servers, lambda s: (s.request("GET", "/").status == 200 and proc_status(s.worker_pids()[0]),
                                   proc_status(s.master_pid)["Uid"][0]))
    assert got[0]["Uid"][0] == str(nobody.pw_uid) and got[0]["Gid"][0] == str(nobody.pw_gid)
    assert got[1] == "0"
    assert both(servers, get("/")) == "Hello, World!"


@check("initgroups")
def _initgroups(ctx):
    if not IS_ROOT:
        pytest.skip("switching users needs root")
    gid = grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
    servers = ctx.pair("-u", "nobody", "-g", gid, "--initgroups", app="hello:app", cwd=APPS)
    st = both(servers, lambda s: s.request("GET", "/").status == 200 and proc_status(s.worker_pids()[0]))
    assert st["Uid"][0] == str(pwd.getpwnam("nobody").pw_uid)


@check("proc_name")
def _proc_name(ctx):
    pytest.importorskip("setproctitle")
    servers = ctx.pair("-n", "mxname", "-w", "2", workers=2)

    def titles(srv):
        wait_until(lambda: cmdline(srv.master_pid).startswith("gunicorn:"), 10, what="title")
        ws = srv.worker_pids()
        wait_until(lambda: all(cmdline(w).startswith("gunicorn:") for w in ws), 10, what="titles")
        return cmdline(srv.master_pid), sorted(cmdline(w) for w in ws)
    assert both(servers, titles) == ("gunicorn: master [mxname]", ["gunicorn: worker [mxname]"] * 2)


@check("default_proc_name")
def _default_proc_name(ctx):
    """default_proc_name is the title when proc_name is unset; gunicorn overwrites it with the app
    argument, so set it with wsgi_app in the config file (no positional app)."""
    pytest.importorskip("setproctitle")
    servers = ctx.pair(conf="default_proc_name = 'mxdefault'\nwsgi_app = 'mxapp:app'\n", app=None)

    def title(srv):
        wait_until(lambda: cmdline(srv.master_pid).startswith("gunicorn:"), 10, what="title")
        return cmdline(srv.master_pid)
    t = both(servers, title)
    assert t.startswith("gunicorn: master [")


# --- supported: workers and their lifecycle ----------------------------------------------------

@check("workers")
def _workers(ctx):
    servers = ctx.pair("-w", "3", workers=3)
    assert both(servers, lambda s: len(s.live_worker_pids())) == 3


@check("worker_class")
def _worker_class(ctx):
    """-k gthread: the log says so and responses keep the connection alive (sync never does)."""
    servers = ctx.pair("-k", "gthread")

    def fn(srv):
        assert "[INFO] Using worker: gthread" in srv.log()
        return srv.request("GET", "/pid").header("Connection")
    assert both(servers, fn) == "keep-alive"


@check("threads")
def _threads(ctx):
    """--threads 3 (with the default sync class, gunicorn uses gthread): three slow requests to one
    worker run at the same time."""
    servers = ctx.pair("--threads", "3")
    for srv in servers:
        assert "[INFO] Using worker: gthread" in srv.log()
        mark = ctx.path(srv.name + "-threads.mark")
        ts = [threading.Thread(target=srv.request, args=("GET", "/slow?s=4&mark=" + mark), daemon=True)
              for _ in range(3)]
        for t in ts:
            t.start()
        wait_until(lambda: os.path.exists(mark) and len(open(mark).readlines()) == 3, 3.5,
                   what="3 requests in flight at once")
        for t in ts:
            t.join(10)


@check("worker_connections")
def _worker_connections(ctx):
    """gthread with --worker-connections 1: while one kept-alive connection is open, a second
    connection is not served; it is once the first closes."""
    servers = ctx.pair("-k", "gthread", "--threads", "4", "--worker-connections", "1", "--keep-alive", "10")

    def fn(srv):
        c1 = RawConn(srv.connect())
        c1.send_request("GET", "/pid")
        assert c1.read_response().status == 200
        c2 = srv.connect()
        c2.sendall(b"GET /pid HTTP/1.0\r\n\r\n")
        c2.settimeout(1.0)
        try:
            first = c2.recv(1)
        except (socket.timeout, TimeoutError):
            first = b""
        c1.close()
        rest = recv_all(c2, 10)
        c2.close()
        assert (first + rest).startswith(b"HTTP/1.0 200 OK")
        return first != b""
    assert both(servers, fn) is False


@check("max_requests")
def _max_requests(ctx):
    """Deeper: test_config.test_max_requests_recycles_worker_without_failures."""
    servers = ctx.pair("--max-requests", "2")

    def fn(srv):
        pids = [srv.request("GET", "/pid").body for _ in range(5)]
        srv.wait_log(r"Autorestarting worker after current request", count=2)
        return [pids.index(p) for p in pids]
    assert both(servers, fn) == [0, 0, 2, 2, 4]


@check("max_requests_jitter")
def _max_requests_jitter(ctx):
    """max_requests + randint(0, jitter): with max_requests 1 and jitter 100000 a worker serving
    3 requests is recycled after the first only with probability 3e-5 (without jitter: always)."""
    servers = ctx.pair("--max-requests", "1", "--max-requests-jitter", "100000")
    assert both(servers, lambda s: len({s.request("GET", "/pid").body for _ in range(3)})) == 1


@check("timeout")
def _timeout(ctx):
    """Deeper: test_arbiter.test_worker_timeout_gives_500_and_replacement."""
    servers = ctx.pair("--timeout", "1")

    def fn(srv):
        (w,) = srv.worker_pids()
        status = srv.request("GET", "/slow?s=6", timeout=15).status
        srv.wait_log(r"\[CRITICAL\] WORKER TIMEOUT \(pid:%d\)" % w)
        srv.wait_log(r"Booting worker with pid", count=2)
        return status
    assert both(servers, fn) == 500


@check("graceful_timeout")
def _graceful_timeout(ctx):
    """TERM with a request in flight: the worker is killed after graceful_timeout (1 s), long before
    the request ends (8 s). Deeper: test_arbiter.test_graceful_timeout_bounds_term."""
    servers = ctx.pair("--graceful-timeout", "1")

    def fn(srv):
        mark = ctx.path(srv.name + "-gt.mark")
        t = threading.Thread(target=lambda: srv.raw(b"GET /slow?s=8&mark=%s HTTP/1.0\r\n\r\n" % mark.encode(), 15),
                             daemon=True)
        t.start()
        wait_until(lambda: os.path.exists(mark), 10, what="request in flight")
        t0 = time.monotonic()
        os.kill(srv.master_pid, signal.SIGTERM)
        rc = srv.wait_exit(10)
        return rc, time.monotonic() - t0 < 4
    assert both(servers, fn) == (0, True)


@check("keepalive")
def _keepalive(ctx):
    """gthread: --keep-alive 0 closes after each response; --keep-alive 1 closes an idle connection
    after about a second."""
    zero = ctx.pair("-k", "gthread", "--keep-alive", "0")
    assert both(zero, lambda s: s.request("GET", "/pid").header("Connection")) == "close"
    one = ctx.pair("-k", "gthread", "--keep-alive", "1")

    def fn(srv):
        c = RawConn(srv.connect())
        c.send_request("GET", "/pid")
        h = c.read_response().header("Connection")
        eof = c.at_eof(5)
        c.close()
        return h, eof
    assert both(one, fn) == ("keep-alive", True)


# --- supported: HTTP parsing ---------------------------------------------------------------------

def _differs_from_default(ctx, fn):
    return both(ctx.pair(), fn)


@check("limit_request_line")
def _limit_request_line(ctx):
    servers = ctx.pair("--limit-request-line", "60")
    long = raw(b"GET /" + b"a" * 80 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert both(servers, long).startswith(b"HTTP/1.1 414 ")
    assert _differs_from_default(ctx, long).startswith(b"HTTP/1.1 200 ")
    assert both(servers, raw(b"GET /" + b"a" * 40 + b" HTTP/1.1\r\nHost: x\r\n\r\n")).startswith(b"HTTP/1.1 200 ")


@check("limit_request_fields")
def _limit_request_fields(ctx):
    servers = ctx.pair("--limit-request-fields", "3")
    many = raw(b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
    assert both(servers, many).startswith(b"HTTP/1.1 431 ")
    assert _differs_from_default(ctx, many).startswith(b"HTTP/1.1 200 ")


@check("limit_request_field_size")
def _limit_request_field_size(ctx):
    servers = ctx.pair("--limit-request-field_size", "50")
    big = raw(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 60 + b"\r\n\r\n")
    assert both(servers, big).startswith(b"HTTP/1.1 431 ")
    assert _differs_from_default(ctx, big).startswith(b"HTTP/1.1 200 ")


def _lenient_case(ctx, flags, request):
    servers = ctx.pair(*flags)
    got = both(servers, request)
    default = _differs_from_default(ctx, request)
    assert got != default
    return got, default


@check("permit_obsolete_folding")
def _obs_fold(ctx):
    got, default = _lenient_case(ctx, ["--permit-obsolete-folding"],
                                 environ(headers=[("X-Fold", "a\r\n b")]))
    assert got[1]["HTTP_X_FOLD"] == "a b" and default[0].endswith("400 Bad Request")


@check("strip_header_spaces")
def _strip(ctx):
    got, default = _lenient_case(ctx, ["--strip-header-spaces"], environ(headers=[("X-Sp ", "v")]))
    assert got[1]["HTTP_X_SP"] == "v" and default[0].endswith("400 Bad Request")


@check("permit_unconventional_http_method")
def _unconv_method(ctx):
    got, default = _lenient_case(ctx, ["--permit-unconventional-http-method"], environ(method="get"))
    assert got[1]["REQUEST_METHOD"] == "get" and default[0].endswith("400 Bad Request")


@check("permit_unconventional_http_version")
def _unconv_version(ctx):
    got, default = _lenient_case(ctx, ["--permit-unconventional-http-version"], environ(version="HTTP/3.0"))
    assert got[1]["SERVER_PROTOCOL"] == "HTTP/3.0" and default[0].endswith("400 Bad Request")


@check("casefold_http_method")
def _casefold(ctx):
    servers = ctx.pair("--permit-unconventional-http-method", "--casefold-http-method")
    assert both(servers, environ(method="get"))[1]["REQUEST_METHOD"] == "GET"


def _underscore_request():
    return environ("/pre/x", headers=[("SCRIPT_NAME", "/pre"), ("X_FOO", "1")])


@check("header_map")
def _header_map(ctx):
    default = _differs_from_default(ctx, _underscore_request())
    assert "HTTP_X_FOO" not in default[1] and default[1]["SCRIPT_NAME"] == "/pre"
    dangerous = both(ctx.pair("--header-map", "dangerous"), _underscore_request())
    assert dangerous[1]["HTTP_X_FOO"] == "1"
    # `X-Foo` and `X_Foo` share the key HTTP_X_FOO: the values are joined, in order, and a
    # CONTENT_TYPE look-alike does not join the real Content-Type.
    shared = both(ctx.pair("--header-map", "dangerous"),
                  environ(headers=[("X-Foo", "1"), ("Content-Type", "a/b"), ("X_Foo", "2"),
                                   ("Content_Type", "c/d"), ("x-foo", "3")]))
    assert shared[1]["HTTP_X_FOO"] == "1,2,3" and shared[1]["CONTENT_TYPE"] == "a/b"
    assert shared[1]["HTTP_CONTENT_TYPE"] == "c/d"
    refuse = both(ctx.pair("--header-map", "refuse"), environ(headers=[("X_FOO", "1")]))
    assert refuse[0].endswith("400 Bad Request")


@check("forwarder_headers")
def _forwarder_headers(ctx):
    """Without SCRIPT_NAME in forwarder_headers the header is dropped (even from a trusted peer)."""
    got = both(ctx.pair("--forwarder-headers", "X_FOO"), _underscore_request())
    assert got[1]["SCRIPT_NAME"] == "" and got[1]["PATH_INFO"] == "/pre/x"


@check("forwarded_allow_ips")
def _forwarded_allow_ips(ctx):
    req = environ(headers=[("X-Forwarded-Proto", "https")])
    assert _differs_from_default(ctx, req)[1]["wsgi.url_scheme"] == "https"
    assert both(ctx.pair("--forwarded-allow-ips", "10.9.9.9"), req)[1]["wsgi.url_scheme"] == "http"


@check("secure_scheme_headers")
def _secure_scheme_headers(ctx):
    servers = ctx.pair(conf="secure_scheme_headers = {'X-MX-SCHEME': 'yes'}\n")
    assert both(servers, environ(headers=[("X-Mx-Scheme", "yes")]))[1]["wsgi.url_scheme"] == "https"
    assert both(servers, environ(headers=[("X-Forwarded-Proto", "https")]))[1]["wsgi.url_scheme"] == "http"


PROXY = b"PROXY TCP4 192.0.2.7 198.51.100.1 4567 80\r\n"


@check("proxy_protocol")
def _proxy_protocol(ctx):
    servers = ctx.pair("--proxy-protocol", "v1")
    got = both(servers, environ(prefix=PROXY))
    assert got[1]["REMOTE_ADDR"] == "192.0.2.7"
    assert _differs_from_default(ctx, environ(prefix=PROXY))[0].endswith("400 Bad Request")


@check("proxy_allow_ips")
def _proxy_allow_ips(ctx):
    servers = ctx.pair("--proxy-protocol", "v1", "--proxy-allow-from", "10.9.9.9")
    got = both(servers, environ(prefix=PROXY))
    assert got[0] != "HTTP/1.1 200 OK" or got[1]["REMOTE_ADDR"] == "127.0.0.1"


@check("http_parser")
def _http_parser(ctx):
    """`python` serves like the default. `fast` asks for gunicorn's C parser (gunicorn_h1c), not
    installed here: gunicorn starts but answers every request 500 ("gunicorn_h1c not installed but
    http_parser='fast'"); rgun has one parser and serves (a difference, recorded here)."""
    assert both(ctx.pair("--http-parser", "python"), environ("/x?y=1"))[1]["QUERY_STRING"] == "y=1"
    res = []
    for _, exe in EXES:
        srv = Server(["--http-parser", "fast", "mxapp:app"], exe=exe, tmpdir=ctx.base / "logs", cwd=str(ctx.dir))
        ctx.spawn.servers.append(srv)
        srv.start(wait=False)
        wait_until(lambda: srv.proc.poll() is not None or "Booting worker" in srv.log(), 15, what="start")
        if srv.proc.poll() is None:
            srv.wait_ready()
            res.append(srv.request("GET", "/pid").status)
        else:
            res.append((srv.proc.returncode, srv.stderr().splitlines()[-1:]))
        srv.stop()
    assert res == [200, 500]


# --- supported: the sendfile switch ----------------------------------------------------------------

@check("sendfile")
def _sendfile(ctx):
    """A file_wrapper body goes out with sendfile() (the raw file) unless --no-sendfile (read())."""
    path = ctx.path("sendfile.txt")
    with open(path, "w") as f:
        f.write("lower case body\n" * 100)
    fn = get("/file?path=" + path)
    assert _differs_from_default(ctx, fn) == "lower case body\n" * 100
    assert both(ctx.pair("--no-sendfile"), fn) == "LOWER CASE BODY\n" * 100


# --- supported: logging ------------------------------------------------------------------------------

@check("accesslog", "access_log_format")
def _accesslog(ctx):
    if "accesslog" in ctx.cache:
        return  # one check for both settings
    ctx.cache["accesslog"] = True
    servers = ctx.pair("--access-logfile", "{dir}/{label}-access.log",
                       "--access-logformat", "MX %(m)s %(U)s %(q)s %(s)s %({x-mx}i)s")

    def fn(srv):
        srv.request("GET", "/pid?a=1", headers=[("X-Mx", "hdr")])
        p = ctx.path(srv.name + "-access.log")
        wait_until(lambda: os.path.exists(p) and open(p).read(), 10, what="access line")
        return open(p).read()
    assert both(servers, fn) == "MX GET /pid a=1 200 hdr\n"


@check("errorlog", "loglevel")
def _errorlog(ctx):
    servers = ctx.pair("--error-logfile", "{dir}/{label}-error.log", "--log-level", "debug",
                       log="{dir}/{label}-error.log")
    for srv in servers:
        assert "[DEBUG] Current configuration:" in srv.log() and "Booting worker" in srv.log()
        assert "Booting worker" not in srv.stderr()
    # At warning level nothing is logged at start-up: ready when the unix socket serves.
    warn = ctx.pair("--log-level", "warning", "--no-control-socket", bind="unix:{dir}/{label}-warn.sock", wait=False)

    def fn(srv):
        srv.address = ctx.path(srv.name + "-warn.sock")
        wait_until(lambda: os.path.exists(srv.address), 10, what="socket")
        return srv.request("GET", "/pid").status, srv.log()
    assert both(warn, fn) == (200, "")


@check("capture_output")
def _capture_output(ctx):
    servers = ctx.pair("--capture-output", "--error-logfile", "{dir}/{label}-cap.log", log="{dir}/{label}-cap.log")
    for srv in servers:
        srv.request("GET", "/print?tag=cap")
        logged(srv, "MX-STDOUT cap")
        logged(srv, "MX-STDERR cap")


FMT = "MXFMT %(levelname)s %(message)s"


@check("logger_class")
def _logger_class(ctx):
    (ctx.dir / "mxlogger.py").write_text(
        "from gunicorn import glogging\n\nclass L(glogging.Logger):\n    error_fmt = %r\n" % FMT)
    servers = ctx.pair("--logger-class", "mxlogger.L", wait=False)
    for srv in servers:
        logged(srv, "MXFMT INFO Booting worker with pid")


@check("logconfig_dict")
def _logconfig_dict(ctx):
    conf = ("logconfig_dict = {'formatters': {'generic': {'format': %r}}}\n" % FMT)
    for srv in ctx.pair(conf=conf, wait=False):
        logged(srv, "MXFMT INFO Booting worker with pid", source=srv.stdout)


@check("logconfig_json")
def _logconfig_json(ctx):
    for label, _ in EXES:
        with open(ctx.path(label + "-log.json"), "w") as f:
            json.dump({"version": 1, "disable_existing_loggers": False,
                       "formatters": {"m": {"format": FMT}},
                       "root": {"level": "INFO", "handlers": []},
                       "handlers": {"h": {"class": "logging.StreamHandler", "formatter": "m",
                                          "stream": "ext://sys.stderr"}},
                       "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["h"], "propagate": False}}}, f)
    for srv in ctx.pair("--log-config-json", "{dir}/{label}-log.json", wait=False):
        logged(srv, "MXFMT INFO Booting worker with pid")


@check("logconfig")
def _logconfig(ctx):
    ini = ("[loggers]\nkeys=root,gunicorn.error\n\n[handlers]\nkeys=h\n\n[formatters]\nkeys=m\n\n"
           "[logger_root]\nlevel=INFO\nhandlers=\n\n"
           "[logger_gunicorn.error]\nlevel=INFO\nhandlers=h\npropagate=0\nqualname=gunicorn.error\n\n"
           "[handler_h]\nclass=StreamHandler\nformatter=m\nargs=(sys.stderr,)\n\n"
           "[formatter_m]\nformat=%s\n" % FMT)
    for label, _ in EXES:
        with open(ctx.path(label + "-log.ini"), "w") as f:
            f.write(ini)
    for srv in ctx.pair("--log-config", "{dir}/{label}-log.ini", wait=False):
        logged(srv, "MXFMT INFO Booting worker with pid")


class SyslogCollector:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.lines = []
        self.running = True
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while self.running:
            try:
                self.lines.append(self.sock.recv(65536).decode())
            except (socket.timeout, OSError):
                continue

    def close(self):
        self.running = False
        self.t.join(2)
        self.sock.close()


@functools.lru_cache(maxsize=None)
def _syslog_run(base, disable):
    """Both servers with syslog to a unix datagram socket; returns {label: [messages]}."""
    out = {}
    for label, exe in EXES:
        path = os.path.join(base, "%s-%s.syslog" % (label, disable))
        coll = SyslogCollector(path)
        try:
            args = ["--log-syslog", "--log-syslog-to", "unix://%s#dgram" % path, "--log-syslog-prefix", "mxp",
                    "--log-syslog-facility", "local3", "--access-logfile", os.path.join(base, label + "-sa.log")]
            if disable:
                args.append("--disable-redirect-access-to-syslog")
            srv = Server(args + ["mxapp:app"], exe=exe, tmpdir=os.path.join(base, "logs"),
                         cwd=os.path.join(base, "app"), name=label)
            srv.start()
            try:
                assert srv.request("GET", "/pid").status == 200
                wait_until(lambda: any("Booting worker" in m for m in coll.lines), 10, what="syslog boot line")
                wait_until(lambda: os.path.exists(os.path.join(base, label + "-sa.log")) and
                           open(os.path.join(base, label + "-sa.log")).read(), 10, what="access line")
                time.sleep(0.3)  # bounded grace for a syslog access datagram that must not come
            finally:
                srv.stop()
        finally:
            coll.close()
        out[label] = [re.sub(r"\[\d+\]", "[PID]", m) for m in coll.lines]
    return out


@check("syslog", "syslog_addr", "syslog_prefix", "syslog_facility")
def _syslog(ctx):
    msgs = _syslog_run(str(ctx.base), False)
    for label in ("rgun", "gunicorn"):
        # local3 (19) * 8 + info (6) = 158; the prefix names the program.
        assert any(m.startswith("<158>gunicorn.mxp.error: [PID] Booting worker") for m in msgs[label]), msgs[label]
        assert any(".access:" in m for m in msgs[label])


@check("disable_redirect_access_to_syslog")
def _disable_redirect(ctx):
    msgs = _syslog_run(str(ctx.base), True)
    for label in ("rgun", "gunicorn"):
        assert any("Booting worker" in m for m in msgs[label])
        assert not any(".access:" in m for m in msgs[label]), msgs[label]


def _statsd_datagrams(ctx):
    """Both servers sending StatsD to a unix datagram collector of their own, with a prefix,
    tags and the backlog metric, after one request: {label: [datagrams]}."""
    if "statsd" not in ctx.cache:
        colls = {label: DatagramCollector(ctx.path(label + "-sd.sock")) for label, _ in EXES}
        try:
            servers = ctx.pair("--statsd-host", "unix:{dir}/{label}-sd.sock", "--statsd-prefix", "mx",
                               "--dogstatsd-tags", "env:test", "--enable-backlog-metric")
            out = {}
            for (label, _), srv in zip(EXES, servers):
                assert srv.request("GET", "/pid").status == 200
                out[label] = colls[label].wait_for(lambda ls: all(
                    any(m in l for l in ls) for m in (".request.status.200:", ".backlog:", ".workers:")))
        finally:
            for c in colls.values():
                c.close()
        ctx.cache["statsd"] = out
    return ctx.cache["statsd"]


@check("statsd_host", "statsd_prefix", "dogstatsd_tags", "enable_backlog_metric")
def _statsd(ctx, name):
    got = _statsd_datagrams(ctx)
    for label in ("rgun", "gunicorn"):
        lines = got[label]
        if name == "statsd_host":
            assert "mx.gunicorn.workers:1|g|#env:test" in lines
        elif name == "statsd_prefix":
            assert all(l.startswith("mx.gunicorn.") for l in lines), lines
        elif name == "dogstatsd_tags":
            assert all(l.endswith("|#env:test") for l in lines), lines
        else:
            assert "mx.gunicorn.backlog:0|h|#env:test" in lines, lines
    if name == "statsd_host":
        requests = {label: [norm_statsd(l) for l in got[label] if ".request" in l] for label in got}
        assert requests["rgun"] == requests["gunicorn"] == [
            "mx.gunicorn.request.duration:<ms>|ms|#env:test", "mx.gunicorn.requests:1|c|@1.0|#env:test",
            "mx.gunicorn.request.status.200:1|c|@1.0|#env:test"]


# --- supported: hooks --------------------------------------------------------------------------------

HOOK_NAMES = ["on_starting", "on_reload", "when_ready", "pre_fork", "post_fork", "post_worker_init",
              "worker_int", "worker_abort", "pre_request", "post_request", "child_exit", "worker_exit",
              "nworkers_changed", "on_exit"]


@check(*HOOK_NAMES)
def _hooks(ctx, name):
    """Each hook runs (under both); the full event sequence is compared in test_hook_sequence.py."""
    from test_hook_sequence import run_scenario
    events = {label: run_scenario(exe) for label, exe in EXES}
    for label in events:
        assert name in {e[0] for e in events[label]}, (label, name)


@check("pre_exec")
def _pre_exec(ctx):
    """USR2 runs pre_exec in the forked child, before the re-exec (test_upgrade.py compares the
    whole binary upgrade)."""
    import tempfile
    from pathlib import Path

    from test_upgrade import _usr2_run
    line = ("NEW", "INFO", "pre_exec pid=NEW master_pid=0 reexec_pid=0 systemd=False")
    for label, exe in EXES:
        with tempfile.TemporaryDirectory() as d:
            assert line in _usr2_run(exe, Path(d) / "run"), label


# --- supported: TLS --------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _certs(base):
    from pathlib import Path
    d = Path(base) / "certs"
    d.mkdir(exist_ok=True)
    return make_certs(d, servers=(("cert.pem", "key.pem", "localhost"), ("other.pem", "other.key", "other")),
                      ca_cn="mx-ca")


def _tls_args(ctx, *extra):
    if not HAVE_OPENSSL:
        pytest.skip("openssl CLI not installed")
    d = _certs(str(ctx.base))
    return ("--certfile", str(d / "cert.pem"), "--keyfile", str(d / "key.pem")) + extra


def tls_get(ctx, path="/", client_cert=False, max_version=None, ciphers=None, cafile="cert.pem"):
    d = _certs(str(ctx.base))

    def fn(srv):
        c = ssl.create_default_context(cafile=str(d / cafile))
        if client_cert:
            c.load_cert_chain(str(d / "client.pem"), str(d / "client.key"))
        if max_version:
            c.maximum_version = max_version
        if ciphers:
            c.set_ciphers(ciphers)
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as r:
                with c.wrap_socket(r, server_hostname="localhost") as s:
                    s.sendall(b"GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" % path.encode())
                    data = b""
                    while True:
                        try:
                            b = s.recv(65536)
                        except ssl.SSLError as e:
                            return "ssl error: %s" % e.reason
                        if not b:
                            break
                        data += b
                    return s.cipher()[0] if ciphers else data.partition(b"\r\n\r\n")[2].decode()
        except (ssl.SSLError, ConnectionError) as e:
            return "handshake failed"
    return fn


@check("certfile", "keyfile")
def _certfile(ctx):
    servers = ctx.pair(*_tls_args(ctx))
    assert both(servers, lambda s: s.listen_url.split(":")[0]) == "https"
    assert json.loads(both(servers, tls_get(ctx)))["wsgi.url_scheme"] == "https"


@check("ca_certs", "cert_reqs")
def _client_certs(ctx):
    d = _certs(str(ctx.base)) if HAVE_OPENSSL else None
    servers = ctx.pair(*_tls_args(ctx, "--ca-certs", str(d / "ca.pem"), "--cert-reqs", "2"))
    assert both(servers, lambda s: tls_get(ctx, "/pid", client_cert=True)(s).isdigit())
    assert not both(servers, lambda s: tls_get(ctx, "/pid")(s).isdigit())


@check("ciphers")
def _ciphers(ctx):
    servers = ctx.pair(*_tls_args(ctx, "--ciphers", "ECDHE-RSA-AES128-GCM-SHA256"))
    tls12 = ssl.TLSVersion.TLSv1_2
    assert both(servers, tls_get(ctx, max_version=tls12,
                                 ciphers="ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384")) \
        == "ECDHE-RSA-AES128-GCM-SHA256"
    assert both(servers, tls_get(ctx, max_version=tls12, ciphers="ECDHE-RSA-AES256-GCM-SHA384")) == "handshake failed"


@check("ssl_version")
def _ssl_version(ctx):
    """Deprecated in gunicorn: accepted with a warning, TLS still served."""
    servers = ctx.pair(*_tls_args(ctx, "--ssl-version", "TLSv1_2"))
    assert json.loads(both(servers, tls_get(ctx)))["wsgi.url_scheme"] == "https"
    warn = both(servers, lambda s: [l for l in s.stderr().splitlines() if "ssl_version" in l.lower()
                                    and not l.startswith("  ")])
    assert warn


SSL_CONTEXT_HOOK = """
import os, ssl


def ssl_context(conf, default_ssl_context_factory):
    with open("{dir}/{label}-ssl_context.calls", "a") as f:
        f.write("%d %s\\n" % (os.getpid(), os.path.basename(conf.certfile)))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(os.path.dirname(conf.certfile), "other.pem"),
                        os.path.join(os.path.dirname(conf.certfile), "other.key"))
    return ctx
"""


@check("ssl_context")
def _ssl_context(ctx):
    """The hook's SSLContext serves the connections: it loads another certificate than certfile,
    which the client trusts (certfile's is refused). The hook runs in the worker with the cfg
    object, once per connection (tests/test_ssl_context.py has the rest)."""
    servers = ctx.pair(*_tls_args(ctx), conf=SSL_CONTEXT_HOOK)
    assert both(servers, lambda s: tls_get(ctx, "/pid", cafile="other.pem")(s).isdigit())
    assert both(servers, tls_get(ctx, "/pid")) == "handshake failed"

    def hook_calls(srv):
        path = ctx.path("%s-ssl_context.calls" % srv.name)
        wait_until(lambda: os.path.exists(path) and len(open(path).read().splitlines()) >= 2, 10, what=path)
        workers = set(srv.worker_pids())
        return [("worker" if int(pid) in workers else "other", name)
                for pid, name in (l.split() for l in open(path).read().splitlines())]
    assert both(servers, hook_calls) == [("worker", "cert.pem")] * 2


@check("suppress_ragged_eofs", "do_handshake_on_connect")
def _ssl_socket_options(ctx):
    """Options of Python's ssl.wrap_socket; nothing a client can tell apart with rustls or
    OpenSSL, in gunicorn too: TLS still serves, --print-config shows the values."""
    args = _tls_args(ctx, "--do-handshake-on-connect")
    servers = ctx.pair(*args, conf="suppress_ragged_eofs = False\n")
    assert json.loads(both(servers, tls_get(ctx)))["wsgi.url_scheme"] == "https"
    cfg = print_config("-c", str(ctx.base / ("rgun-%d.conf.py" % ctx.n)), *args, "hello:app")
    assert (cfg["suppress_ragged_eofs"], cfg["do_handshake_on_connect"]) == ("False", "True")


# --- supported: the control socket -----------------------------------------------------------------

@check("control_socket_disable")
def _control_socket_disable(ctx):
    """--no-control-socket: neither server creates one (rgun never does; see control_socket)."""
    servers = ctx.pair("--no-control-socket", cls=NoCtlServer)
    for srv in servers:
        assert srv.request("GET", "/pid").status == 200
