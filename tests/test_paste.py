"""`--paste` / `--paster` and `--paste-global` (spec 4.2, 5): the app comes from a PasteDeploy ini
file. Each case runs rgun and gunicorn 27.0.1 on the same files and compares what clients and
operators see: responses, process titles, log format, messages and exit codes.

"PasteDeploy is not installed" is simulated with a `sitecustomize` on PYTHONPATH that makes
`paste` unimportable (PasteDeploy's namespace `.pth` creates `paste` at start-up, so a shadowing
package would not do).
"""

import importlib.util
import json
import re

import pytest

from support import GUNICORN, RGUN, run_cli, wait_until

EXES = (("rgun", RGUN), ("gunicorn", GUNICORN))
HAVE_SETPROCTITLE = importlib.util.find_spec("setproctitle") is not None

FACTORY = '''
import json

def make_app(global_conf, **local_conf):
    def app(environ, start_response):
        body = json.dumps({"global": global_conf, "local": local_conf}, sort_keys=True).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    return app
'''

INI = '''
[DEFAULT]
who = world

[app:main]
paste.app_factory = pasteapp:make_app
greeting = hello %(who)s

[app:admin]
paste.app_factory = pasteapp:make_app
role = admin
'''

LOGGING = '''
[loggers]
keys = root, gunicorn.error

[handlers]
keys = h

[formatters]
keys = m

[logger_root]
level = INFO
handlers =

[logger_gunicorn.error]
level = INFO
handlers = h
propagate = 0
qualname = gunicorn.error

[handler_h]
class = StreamHandler
formatter = m
args = (sys.stderr,)

[formatter_m]
format = PASTELOG %(levelname)s %(message)s
'''

BLOCK_PASTE = '''
import sys

class _NoPaste:
    def find_spec(self, name, path=None, target=None):
        if name == "paste" or name.startswith("paste."):
            raise ModuleNotFoundError("No module named %r" % name, name=name)
        return None

for _name in [m for m in sys.modules if m == "paste" or m.startswith("paste.")]:
    del sys.modules[_name]
sys.meta_path.insert(0, _NoPaste())
'''


def app_dir(tmp_path, label, ini=INI):
    d = tmp_path / label
    d.mkdir()
    (d / "pasteapp.py").write_text(FACTORY)
    (d / "development.ini").write_text(ini)
    return d


def no_paste(tmp_path):
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(BLOCK_PASTE)
    return {"PYTHONPATH": str(block)}


def serve_pair(spawn, tmp_path, args, ini=INI, ready=True):
    """The same ini under both servers, each in its own dir; returns [(server, dir)]."""
    out = []
    for label, exe in EXES:
        d = app_dir(tmp_path, label, ini)
        srv = spawn(list(args), exe=exe, name=label, cwd=str(d), start=False)
        srv.start(wait=False)
        out.append((srv, d))
    for srv, _ in out:
        if ready:
            srv.wait_ready()
    return out


def answer(srv, d):
    r = srv.request("GET", "/")
    assert r.status == 200, r
    return json.loads(r.body.decode().replace(str(d), "DIR"))


@pytest.mark.parametrize("args, expected", [
    (["--paste", "development.ini"],
     {"global": {"__file__": "DIR/development.ini", "here": "DIR", "who": "world"},
      "local": {"greeting": "hello world"}}),
    (["--paster", "development.ini#admin", "--paste-global", "a=1", "--paste-global", r"b\=c=d\=e=f"],
     {"global": {"__file__": "DIR/development.ini", "here": "DIR", "who": "world", "a": "1",
                 "b=c": "d=e=f"},
      "local": {"role": "admin"}}),
    # With --paste, a positional APP_MODULE is ignored.
    (["--paste", "development.ini", "--paste-global", "who=you", "no_such_module:app"],
     {"global": {"__file__": "DIR/development.ini", "here": "DIR", "who": "you"},
      "local": {"greeting": "hello world"}}),
], ids=["main", "section-and-globals", "positional-ignored"])
def test_serves_the_ini_app(spawn, tmp_path, args, expected):
    got = [answer(srv, d) for srv, d in serve_pair(spawn, tmp_path, args)]
    assert got[0] == got[1] == expected


@pytest.mark.skipif(not HAVE_SETPROCTITLE, reason="setproctitle is not installed")
def test_process_titles_name_the_ini_file(spawn, tmp_path):
    titles = []
    for srv, d in serve_pair(spawn, tmp_path, ["--paste", "development.ini"]):
        pid = srv.worker_pids()[0]

        def title(p):
            with open("/proc/%d/cmdline" % p, "rb") as f:
                return f.read().replace(b"\0", b" ").decode().strip().replace(str(d), "DIR")
        wait_until(lambda: title(srv.master_pid).startswith("gunicorn:") and
                   title(pid).startswith("gunicorn:"), 10, what="titles")
        titles.append((title(srv.master_pid), title(pid)))
    assert titles[0] == titles[1] == ("gunicorn: master [DIR/development.ini]",
                                      "gunicorn: worker [DIR/development.ini]")


def test_ini_logging_sections_configure_the_log(spawn, tmp_path):
    pair = serve_pair(spawn, tmp_path, ["--paste", "development.ini"], ini=INI + LOGGING, ready=False)
    for srv, d in pair:
        srv.wait_log(r"PASTELOG INFO Booting worker with pid")
        srv.port = int(re.search(r"Listening at: http://127.0.0.1:(\d+)", srv.log()).group(1))
        srv.address = ("127.0.0.1", srv.port)
        assert answer(srv, d)["local"] == {"greeting": "hello world"}
    lines = [[re.sub(r"\d+", "N", l) for l in srv.log().splitlines()[1:4]] for srv, _ in pair]
    assert lines[0] == lines[1] == ["PASTELOG INFO Listening at: http://N.N.N.N:N (N)",
                                    "PASTELOG INFO Using worker: sync",
                                    "PASTELOG INFO Booting worker with pid: N"]


def test_print_config_shows_what_paste_sets(tmp_path):
    outs = []
    for label, exe in EXES:
        d = app_dir(tmp_path, label, INI + LOGGING)
        p = run_cli(["--print-config", "--paste", "development.ini", "--paste-global", "x=1"],
                    exe=exe, cwd=str(d))
        assert p.returncode == 0, p.stderr
        keep = ("default_proc_name", "logconfig ", "paste ", "raw_paste_global_conf")
        outs.append([l.replace(str(d), "DIR") for l in p.stdout.splitlines() if l.startswith(keep)])
    assert outs[0] == outs[1]
    assert [l.split("=", 1)[1].strip() for l in outs[0]] == [
        "DIR/development.ini", "DIR/development.ini", "development.ini", "['x=1']"]


def _cli_pair(tmp_path, args, extra_env=None):
    res = []
    for label, exe in EXES:
        d = app_dir(tmp_path, label)
        (d / "pconf.py").write_text("paste = 'development.ini'\n")
        p = run_cli(["-b", "127.0.0.1:0"] + args, exe=exe, cwd=str(d), extra_env=extra_env)
        res.append((p.returncode, p.stderr.replace(str(d), "DIR")))
    return res


@pytest.mark.parametrize("args, rc, err", [
    (["--paste", "nope.ini"], 1, "\nError: 'DIR/nope.ini' not found\n"),
    (["--paste", "development.ini#x", "--paste", "nope.ini#main"], 1, "\nError: 'DIR/nope.ini' not found\n"),
    # paste set by a config file only: there is no app URI unless a positional one is given.
    (["-c", "pconf.py"], 1, "\nError: No application module specified.\n"),
], ids=["missing-ini", "last-wins", "config-file-paste-no-app"])
def test_start_up_errors(tmp_path, args, rc, err):
    res = _cli_pair(tmp_path, args)
    assert res[0] == res[1] == (rc, err)


@pytest.mark.parametrize("ini", ["development.ini", "nope.ini"])
def test_missing_pastedeploy(tmp_path, ini):
    """Checked before the file exists: the import error wins."""
    res = _cli_pair(tmp_path, ["--paste", ini], extra_env=no_paste(tmp_path))
    assert res[0] == res[1] == (1, "\nError: No module named 'paste'\n")


def _last_lines(stderr, n):
    """The last `n` log lines and messages (no traceback frames), without times and pids."""
    lines = [l.split("] ", 3)[-1] for l in stderr.splitlines() if not l.startswith(" ")]
    return [re.sub(r"pid:? ?\d+", "pid", l) for l in lines][-n:]


@pytest.mark.parametrize("args, tail", [
    (["--paste", "development.ini", "--paste-global", "novalue"],
     ["RuntimeError: environment setting 'novalue' invalid", "environment setting 'novalue' invalid"]),
    # paste from a config file: gunicorn hands the positional APP_MODULE to PasteDeploy.
    (["-c", "pconf.py", "pasteapp:make_app"],
     ["LookupError: URI scheme not known: 'pasteapp' (from config, egg, call)",
      "URI scheme not known: 'pasteapp' (from config, egg, call)"]),
], ids=["bad-global", "config-file-paste-positional"])
def test_worker_load_errors(tmp_path, args, tail):
    res = _cli_pair(tmp_path, args)
    got = [(rc, _last_lines(err, 6)) for rc, err in res]
    assert got[0] == got[1]
    rc, lines = got[0]
    assert rc == 3
    assert lines[:2] == tail and lines[-1] == "Reason: Worker failed to boot."


def test_missing_pastedeploy_with_paste_from_config_file(tmp_path):
    res = _cli_pair(tmp_path, ["-c", "pconf.py", "pasteapp:make_app"], extra_env=no_paste(tmp_path))
    got = [(rc, _last_lines(err, 6)) for rc, err in res]
    assert got[0] == got[1]
    assert got[0][0] == 3 and got[0][1][:2] == ["ModuleNotFoundError: No module named 'paste'",
                                                "No module named 'paste'"]


@pytest.mark.parametrize("ini, rc", [("development.ini", 0), ("development.ini#nosuch", 1)])
def test_check_config_loads_the_paste_app(tmp_path, ini, rc):
    res = []
    for label, exe in EXES:
        d = app_dir(tmp_path, label)
        p = run_cli(["--check-config", "--paste", ini], exe=exe, cwd=str(d))
        res.append((p.returncode, p.stderr.replace(str(d), "DIR").splitlines()[-1:]))
    assert res[0] == res[1]
    assert res[0][0] == rc
    if rc:
        assert res[0][1][0].startswith("LookupError: No section 'nosuch'")
