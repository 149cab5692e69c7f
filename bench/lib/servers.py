"""The servers under test: how to start each one for an app, a worker count and a thread count.

Every command binds 127.0.0.1 only. `spec(name, ...)` returns (argv, env).
"""
import os

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH)
APPS = os.path.join(BENCH, "apps")
VBIN = os.path.join(BENCH, ".venv", "bin")
RGUN = os.environ.get("RGUN", os.path.join(REPO, ".venv", "bin", "rgun"))
HYPER = os.path.join(BENCH, "hyper-hello", "target", "release", "hyper-hello")

# name -> (family, short description). Order = run order inside a group (baseline first,
# rgun's keep-alive config second so the S10 rates are known early).
SERVERS = {
    "gunicorn-sync": ("gunicorn", "gunicorn 27.0.1 `-k sync` (pure-Python parser)"),
    "rgun-gt1": ("rgun", "rgun `-k gthread --threads 1` (inline, keep-alive)"),
    "rgun-gt4": ("rgun", "rgun `-k gthread --threads 4`"),
    "rgun-sync": ("rgun", "rgun `-k sync` (no keep-alive)"),
    "gunicorn-gthread": ("gunicorn", "gunicorn 27.0.1 `-k gthread --threads 4`"),
    "granian": ("granian", "granian 2.8.9 WSGI, default blocking-thread pool"),
    "granian-bt1": ("granian", "granian 2.8.9 WSGI `--blocking-threads 1`"),
    "uwsgi": ("uwsgi", "pyuwsgi `--http-socket` (closes every connection)"),
    "bjoern": ("bjoern", "bjoern 3.2.2, bind then fork N workers"),
    "hyper": ("hyper", "bare Rust hyper 1.x hello (no Python): the ceiling"),
}
BASELINE = "gunicorn-sync"
GRANIAN = "granian"


def env_for(name):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "GUNICORN_CMD_ARGS")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    vbin = os.path.dirname(RGUN) if name.startswith("rgun") else VBIN
    env["PATH"] = vbin + ":" + env.get("PATH", "")
    return env


def spec(name, module, port, workers, threads=None, pin_cpu=None, keep_alive=None):
    """argv and env to serve `module:app` with `workers` processes.

    `threads` overrides the thread count of thread-pool configs (S8 uses 32). `keep_alive` sets
    the idle timeout of kept-alive connections where the server has one (gthread; the sync
    workers never keep alive, the others have no such timeout).
    """
    bind = f"127.0.0.1:{port}"
    app = f"{module}:app"
    w = str(workers)
    if name == "gunicorn-sync":
        argv = [f"{VBIN}/gunicorn", "-w", w, "-k", "sync", "--http-parser", "python", "-b", bind, app]
    elif name == "gunicorn-gthread":
        argv = [f"{VBIN}/gunicorn", "-w", w, "-k", "gthread", "--threads", str(threads or 4),
                "--http-parser", "python", "-b", bind, app]
    elif name == "rgun-sync":
        argv = [RGUN, "-w", w, "-k", "sync", "-b", bind, app]
    elif name == "rgun-gt1":
        argv = [RGUN, "-w", w, "-k", "gthread", "--threads", str(threads or 1), "-b", bind, app]
    elif name == "rgun-gt4":
        argv = [RGUN, "-w", w, "-k", "gthread", "--threads", str(threads or 4), "-b", bind, app]
    elif name in ("granian", "granian-bt1"):
        argv = [f"{VBIN}/granian", "--interface", "wsgi", "--workers", w, "--host", "127.0.0.1",
                "--port", str(port), "--http", "1", "--no-ws", "--log-level", "warning"]
        if name == "granian-bt1":
            argv += ["--blocking-threads", "1"]
        argv.append(app)
    elif name == "uwsgi":
        argv = [f"{VBIN}/pyuwsgi", "--http-socket", bind, "--master", "--processes", w,
                "--disable-logging", "--die-on-term", "--pythonpath", APPS,
                "--module", app]
        if threads:
            argv += ["--threads", str(threads)]
    elif name == "bjoern":
        argv = [f"{VBIN}/python", os.path.join(APPS, "run_bjoern.py"), module, str(port), w]
    elif name == "hyper":
        argv = [HYPER, str(port), w]
    else:
        raise KeyError(name)
    if keep_alive and name in ("gunicorn-gthread", "rgun-gt1", "rgun-gt4"):
        argv[-1:-1] = ["--keep-alive", str(keep_alive)]
    if pin_cpu is not None:
        argv = ["taskset", "-c", str(pin_cpu)] + argv
    return argv, env_for(name)
