"""`--reload`, `--reload-engine`, `--reload-extra-file` (spec 5, 14.6): each worker watches its
files and restarts itself when one changes. Every case runs rgun and gunicorn 27.0.1 side by side,
each on its own copy of the app in a tmp dir, and compares what an operator sees: the log lines,
the exit codes, what clients get.

The `inotify` package is installed for the tests (requirements-dev.txt), so `auto` is inotify;
"no inotify" is simulated with a module on PYTHONPATH whose import fails.
"""

import re
import threading

import pytest

from support import GUNICORN, RGUN, rewrite_until_logged, run_cli, wait_until

EXES = (("rgun", RGUN), ("gunicorn", GUNICORN))

APP = '''
import os, time
VERSION = %r

def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        open(environ["QUERY_STRING"], "w").close()
        time.sleep(4)
    body = ("%%s %%d" %% (VERSION, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

CONF = '''
def worker_int(worker):
    worker.log.info("HOOK worker_int alive=%s", worker.alive)

def post_worker_init(worker):
    worker.log.info("HOOK post_worker_init reloader=%s", type(worker.reloader).__name__)
'''

# The lines compared between the two servers (timestamps and pids dropped, paths normalized).
INTERESTING = re.compile(
    r"\] \[(?:INFO|WARNING|ERROR)\] (Reloader is on.*|Worker reloading: .*|HOOK .*|Worker exiting.*"
    r"|Booting worker.*|Worker \(pid:.*|Reason: .*|.*was never closed.*)$")


def code(version):
    return APP % version


def events(srv, d):
    out = []
    for line in srv.log().splitlines():
        m = INTERESTING.search(line)
        if m:
            text = m.group(1).replace(str(d), "DIR")
            out.append(re.sub(r"pid:? ?\d+", "pid", text))
    return out


WORKER_INT = "HOOK worker_int alive=False"


def same_events(seen):
    """rgun's events (the first) equal gunicorn's, and returns them. gunicorn calls `worker_int`
    on the reloader thread while its main loop is already on its way out, so that hook's line is
    sometimes missing there (the process ends first); rgun calls it before the worker can stop,
    so in rgun it always follows `Worker reloading`."""
    r, g = seen
    assert [e for e in r if e != WORKER_INT] == [e for e in g if e != WORKER_INT]
    for i, e in enumerate(r):
        if e.startswith("Worker reloading:"):
            assert r[i + 1] == WORKER_INT, r
    return r


def start_pair(spawn, tmp_path, args, files=None, extra_env=None):
    """The same server under rgun and gunicorn, each with its own app dir; returns
    [(server, app dir)]. `{dir}` in args is the server's app dir."""
    files = {"rlapp.py": code("v1"), "rlconf.py": CONF, **(files or {})}
    out = []
    for label, exe in EXES:
        d = tmp_path / label
        d.mkdir()
        for name, text in files.items():
            (d / name).write_text(text)
        a = ["-c", str(d / "rlconf.py")] + [x.replace("{dir}", str(d)) for x in args] + ["rlapp:app"]
        srv = spawn(a, exe=exe, name=label, cwd=str(d), start=False, extra_env=extra_env)
        srv.start(wait=False)
        out.append((srv, d))
    for srv, _ in out:
        srv.wait_ready()
    return out


def body(srv):
    r = srv.request("GET", "/")
    assert r.status == 200, r
    return r.body.decode()


def reloaded(srv, path, text):
    """Edits `path` until the worker reports it, waits for the new worker; returns its answer."""
    rewrite_until_logged(srv, path, text, r"Worker reloading: ")
    srv.wait_log(r"Booting worker with pid", count=2)
    srv.wait_log(r"HOOK post_worker_init", count=2)
    return body(srv)


def test_poll_restarts_worker_on_module_change(spawn, tmp_path):
    pair = start_pair(spawn, tmp_path, ["--reload", "--reload-engine", "poll"])
    seen = []
    for srv, d in pair:
        first = body(srv)
        assert first.startswith("v1 ")
        second = reloaded(srv, d / "rlapp.py", code("v2"))
        assert second.startswith("v2 ") and second != first.replace("v1", "v2")
        srv.wait_log(r"Reloader is on", count=2)
        seen.append(events(srv, d))
    assert same_events(seen) == [
        "Booting worker with pid",
        "Reloader is on. Use in development only!",
        "HOOK post_worker_init reloader=Reloader",
        "Worker reloading: DIR/rlapp.py modified",
        "HOOK worker_int alive=False",
        "Worker exiting (pid)",
        "Booting worker with pid",
        "Reloader is on. Use in development only!",
        "HOOK post_worker_init reloader=Reloader",
    ]


def test_inotify_reports_any_event_in_watched_dirs_by_bare_name(spawn, tmp_path):
    """`auto` with the inotify package: any write in a module's directory restarts the worker,
    and the log names the file without its directory (gunicorn's event file name)."""
    pair = start_pair(spawn, tmp_path, ["--reload"])
    seen = []
    for srv, d in pair:
        first = body(srv).split()
        second = reloaded(srv, d / "notes.txt", "not a module").split()
        assert second[0] == first[0] == "v1" and second[1] != first[1]
        seen.append(events(srv, d))
    same_events(seen)
    assert "Worker reloading: notes.txt modified" in seen[0]
    assert seen[0][2] == "HOOK post_worker_init reloader=InotifyReloader"


def test_extra_file_and_glob_pattern(spawn, tmp_path):
    """A literal extra file and a pattern; the pattern matches nothing at start (a warning), a
    file created later is watched from its creation, and its first edit reloads."""
    pair = start_pair(spawn, tmp_path, ["--reload", "--reload-engine", "poll",
                                        "--reload-extra-file", "{dir}/settings.toml",
                                        "--reload-extra-file", "{dir}/tpl/*.html"],
                      files={"settings.toml": "a = 1\n"})
    seen = []
    for srv, d in pair:
        assert "Pattern %s/tpl/*.html currently matches no files." % d in srv.stderr()
        reloaded(srv, d / "settings.toml", "a = 2\n")
        (d / "tpl").mkdir()
        (d / "tpl" / "page.html").write_text("<p>1</p>")
        srv.wait_log(r"HOOK post_worker_init", count=2)
        rewrite_until_logged(srv, d / "tpl" / "page.html", "<p>2</p>", r"Worker reloading: ")
        srv.wait_log(r"Booting worker with pid", count=3)
        seen.append([e for e in events(srv, d) if e.startswith("Worker reloading")])
    assert seen[0] == seen[1] == ["Worker reloading: DIR/settings.toml modified",
                                  "Worker reloading: DIR/tpl/page.html modified"]


def test_syntax_error_serves_traceback_then_recovers(spawn, tmp_path):
    """With reload on, a SyntaxError at load does not kill the worker: it logs the error, serves
    500 + the traceback, watches the broken file, and a fix brings the app back."""
    broken = code("v1") + "\nx = (\n"
    pair = start_pair(spawn, tmp_path, ["--reload", "--reload-engine", "poll"],
                      files={"rlapp.py": broken})
    out = []
    for srv, d in pair:
        r = srv.request("GET", "/")
        assert r.status == 500 and r.header("Content-Type") == "text/plain"
        text = r.body.decode()
        assert text.startswith("Traceback (most recent call last):\n")
        tail = text.replace(str(d), "DIR").splitlines()[-4:]
        assert reloaded(srv, d / "rlapp.py", code("v2")).startswith("v2 ")
        out.append((r.status, tail, events(srv, d)))
    assert out[0][:2] == out[1][:2]
    same_events([out[0][2], out[1][2]])
    assert out[0][1][0] == '  File "DIR/rlapp.py", line 13'
    assert out[0][1][-1] == "SyntaxError: '(' was never closed"
    assert "'(' was never closed (rlapp.py, line 13)" in out[0][2]
    assert "Worker reloading: DIR/rlapp.py modified" in out[0][2]


def test_syntax_error_without_reload_fails_to_boot(tmp_path):
    res = []
    for label, exe in EXES:
        d = tmp_path / label
        d.mkdir()
        (d / "rlapp.py").write_text("x = (\n")
        p = run_cli(["-b", "127.0.0.1:0", "rlapp:app"], exe=exe, cwd=str(d), timeout=30)
        res.append((p.returncode, p.stderr.splitlines()[-1].split("] ", 3)[-1]))
    assert res[0] == res[1] == (3, "Reason: Worker failed to boot.")


@pytest.mark.parametrize("threads", ["1", "2"], ids=["sync", "gthread"])
def test_in_flight_request_finishes_before_the_restart(spawn, tmp_path, threads):
    pair = start_pair(spawn, tmp_path, ["--reload", "--reload-engine", "poll", "--threads", threads])
    for srv, d in pair:
        got = {}
        mark = d / "slow-started"
        t = threading.Thread(target=lambda: got.setdefault("slow", srv.request("GET", "/slow?%s" % mark)))
        t.start()
        wait_until(mark.exists, 10, what="slow request started")
        rewrite_until_logged(srv, d / "rlapp.py", code("v2"), r"Worker reloading: ")
        assert t.is_alive()  # the change was seen while the request ran
        t.join(15)
        assert got["slow"].status == 200 and got["slow"].body.startswith(b"v1 ")
        srv.wait_log(r"Booting worker with pid", count=2)
        srv.wait_log(r"HOOK post_worker_init", count=2)
        assert body(srv).startswith("v2 ")
        assert "Worker (pid" not in srv.log()  # the old worker exited 0


def _no_inotify(tmp_path):
    block = tmp_path / "block"
    (block / "inotify").mkdir(parents=True)
    (block / "inotify" / "__init__.py").write_text("raise ImportError('inotify is blocked here')\n")
    return {"PYTHONPATH": str(block)}


def test_auto_without_inotify_polls(spawn, tmp_path):
    pair = start_pair(spawn, tmp_path, ["--reload"], extra_env=_no_inotify(tmp_path))
    seen = []
    for srv, d in pair:
        reloaded(srv, d / "rlapp.py", code("v2"))
        seen.append(events(srv, d))
    assert same_events(seen)[2] == "HOOK post_worker_init reloader=Reloader"
    assert "Worker reloading: DIR/rlapp.py modified" in seen[0]


def test_inotify_engine_without_the_package_fails_to_boot(tmp_path):
    env = _no_inotify(tmp_path)
    res = []
    for label, exe in EXES:
        d = tmp_path / label
        d.mkdir()
        (d / "rlapp.py").write_text(code("v1"))
        p = run_cli(["-b", "127.0.0.1:0", "--reload", "--reload-engine", "inotify", "rlapp:app"],
                    exe=exe, cwd=str(d), timeout=30, extra_env=env)
        lines = [l.split("] ", 3)[-1] for l in p.stderr.splitlines()]
        res.append((p.returncode, [l for l in lines if not l.startswith(" ") and ("inotify" in l or "Reason" in l)]))
    assert res[0] == res[1]
    assert res[0] == (3, [
        "ImportError: You must have the inotify module installed to use the inotify reloader",
        "You must have the inotify module installed to use the inotify reloader",
        "Reason: Worker failed to boot.",
    ])


@pytest.mark.parametrize("args, err", [
    (["--reload-engine", "nope"], "\nError: Invalid reload_engine: 'nope'\n"),
    (["--reload-extra-file", "missing.txt"], "\nError: File missing.txt does not exists.\n"),
])
def test_invalid_values(tmp_path, args, err):
    for _, exe in EXES:
        p = run_cli(["-b", "127.0.0.1:0", "--reload"] + args + ["rlapp:app"], exe=exe, cwd=str(tmp_path))
        assert (p.returncode, p.stderr) == (1, err)
