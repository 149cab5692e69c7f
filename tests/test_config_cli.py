"""rgun's configuration layer against gunicorn's: `--print-config`, `--help` and start-up errors
must be identical (exit code and text), modulo the program name.

Run with both installed:  GUNICORN=/path/gunicorn RGUN=/path/rgun pytest tests/test_config_cli.py
"""

import os
import shutil
import subprocess
import textwrap

import pytest

GUNICORN = os.environ.get("GUNICORN") or shutil.which("gunicorn") or "gunicorn"
RGUN = os.environ.get("RGUN") or shutil.which("rgun") or "rgun"

APP = """\
def app(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]
"""

HOOKS_CONF = """\
import multiprocessing
import os

bind = ["0.0.0.0:%s" % os.environ.get("APP_PORT", "9000"), "unix:/tmp/rgun-test.sock"]
workers = multiprocessing.cpu_count() * 2 + 1
worker_class = "gthread"
threads = int(os.environ.get("APP_THREADS", "4"))
timeout = "0x10"
preload_app = "true"
umask = "0o22"
raw_env = "A=B"
forwarded_allow_ips = "10.0.0.0/8, *"
secure_scheme_headers = {"X-PROTO": "https"}
accesslog = "-"
Bind = "ignored: names are case-sensitive"
max_request_jitter = 5  # a typo gunicorn ignores


def on_starting(server):
    pass


def post_fork(server, worker):
    pass


def post_request(worker, req):
    pass


def child_exit(server, worker):
    pass
"""


@pytest.fixture()
def workdir(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if k not in ("GUNICORN_CMD_ARGS", "PORT", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS")}
    env.update(extra or {})
    return env


def run(exe, args, cwd, env=None):
    p = subprocess.run([exe, *args], cwd=cwd, env=clean_env(env), capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def normalise(text):
    """gunicorn's argparse prog name is gunicorn; rgun's is rgun."""
    lines = []
    for line in text.splitlines():
        if line.startswith("usage: gunicorn "):
            line = "usage: rgun " + line[len("usage: gunicorn "):]
        if line.startswith("gunicorn: error: "):
            line = "rgun: error: " + line[len("gunicorn: error: "):]
        lines.append(line)
    return "\n".join(lines)


def both(args, cwd, env=None):
    g = run(GUNICORN, args, cwd, env)
    r = run(RGUN, args, cwd, env)
    return (g[0], normalise(g[1]), normalise(g[2])), (r[0], r[1].rstrip("\n"), r[2].rstrip("\n"))


def assert_same(args, cwd, env=None):
    g, r = both(args, cwd, env)
    assert r[0] == g[0], (args, g, r)
    assert r[1] == g[1].rstrip("\n"), args
    assert r[2] == g[2].rstrip("\n"), args
    return g


# --- --print-config -----------------------------------------------------------------------

def test_print_config_defaults(workdir):
    code, out, _ = assert_same(["--print-config", "app:app"], workdir)
    assert code == 0
    assert len(out.splitlines()) == 120


def test_print_config_hooks_and_env_in_file(workdir):
    (workdir / "gunicorn.conf.py").write_text(HOOKS_CONF)
    code, out, _ = assert_same(["--print-config", "app:app"], workdir,
                               {"APP_PORT": "7777", "APP_THREADS": "3"})
    assert code == 0
    assert "<on_starting()>" in out
    assert "0.0.0.0:7777" in out


def test_print_config_explicit_file_and_cli_precedence(workdir):
    (workdir / "conf.py").write_text(HOOKS_CONF)
    assert_same(["--print-config", "-c", "conf.py", "-w", "5", "-b", "127.0.0.1:1", "app:app"],
                workdir)


def test_print_config_gunicorn_cmd_args(workdir):
    (workdir / "conf.py").write_text(HOOKS_CONF)
    assert_same(["--print-config", "-c", "conf.py", "app:app", "-t", "9"], workdir,
                {"GUNICORN_CMD_ARGS": "--bind 1.2.3.4:5 -b [::1]:6 --workers=3 -t 7 --log-level debug"})


def test_print_config_env_defaults(workdir):
    assert_same(["--print-config", "app:app"], workdir,
                {"PORT": "5000", "WEB_CONCURRENCY": "3", "FORWARDED_ALLOW_IPS": "10.0.0.1"})


def test_print_config_wsgi_app_from_file(workdir):
    (workdir / "gunicorn.conf.py").write_text('wsgi_app = "app:app"\nbind = "0.0.0.0:80"\n')
    assert_same(["--print-config"], workdir)


def test_print_config_cli_coercions(workdir):
    assert_same(["--print-config", "-m", "022", "--umask", "0o22", "--bac", "10",
                 "--threa=2", "--no-sendfile", "--preload", "--limit-request-field_size", "100",
                 "--log-file", "/tmp/x.log", "-e", "A=1", "-e", "B=2", "app:app"], workdir)


# --- --help ---------------------------------------------------------------------------------

@pytest.mark.parametrize("columns", ["80", "120", "40"])
def test_help(workdir, columns):
    g = assert_same(["--help"], workdir, {"COLUMNS": columns})
    assert g[0] == 0


# --- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["--bogus", "app:app"],
    ["-w", "abc", "app:app"],
    ["--max", "3", "app:app"],
    ["--max=3", "app:app"],
    ["-w"],
    ["--preload=yes", "app:app"],
    ["app:app", "-w", "2", "extra"],
    ["-m", "9x", "app:app"],
    ["-w", "-3", "app:app"],
    [],
    ["-c", "missing.py", "app:app"],
    ["--chdir", "/nonexistent-rgun-dir", "app:app"],
    ["--forwarded-allow-ips", "192.168.1.1/24", "app:app"],
    ["--proxy-protocol", "app:app"],
])
def test_cli_errors(workdir, args):
    code = assert_same(["--check-config", *args] if args else args, workdir)[0]
    assert code in (1, 2)


def test_env_cmd_args_errors(workdir):
    assert_same(["--check-config", "app:app"], workdir, {"GUNICORN_CMD_ARGS": "--bogus"})
    assert_same(["--check-config", "app:app"], workdir, {"GUNICORN_CMD_ARGS": "'-w"})


@pytest.mark.parametrize("body", [
    'workers = "x"',
    "workers = -1",
    'daemon = "yes"',
    'forwarded_allow_ips = ["1.2.3.4"]',
    'on_starting = "os.nothere"',
    'user = "no-such-user-rgun"',
])
def test_invalid_value_in_file(workdir, body):
    (workdir / "conf.py").write_text(body + "\n")
    code = assert_same(["--check-config", "-c", "conf.py", "app:app"], workdir)[0]
    assert code == 1


def test_hook_arity_in_file(workdir):
    # The function's repr carries an address; compare everything else.
    (workdir / "conf.py").write_text("def on_starting(a, b):\n    pass\n")
    g, r = both(["--check-config", "-c", "conf.py", "app:app"], workdir)
    assert r[0] == g[0] == 1
    assert r[2].splitlines()[1:] == g[2].splitlines()[1:]
    assert r[2].splitlines()[0].startswith("Invalid value for on_starting: <function on_starting")


def test_config_file_raising(workdir):
    (workdir / "conf.py").write_text(textwrap.dedent("""\
        x = 1
        raise ValueError("boom")
    """))
    g, r = both(["--check-config", "-c", "conf.py", "app:app"], workdir)
    assert r[0] == g[0] == 1
    # Same first line and same exception; gunicorn's traceback has one extra frame of its own.
    assert r[2].splitlines()[0] == g[2].splitlines()[0] == "Failed to read config file: conf.py"
    assert r[2].splitlines()[-1] == g[2].rstrip("\n").splitlines()[-1] == "ValueError: boom"


def test_non_python_extension_warning(workdir):
    (workdir / "conf.txt").write_text("workers = 2\n")
    assert_same(["--print-config", "-c", "conf.txt", "app:app"], workdir)


# --- rgun's own behaviour ---------------------------------------------------------------------

def test_refused_setting(workdir):
    code, out, err = run(RGUN, ["--protocol", "uwsgi", "app:app"], workdir)
    assert code == 1
    assert err == "\nError: setting 'protocol' (--protocol) is not supported by rgun yet\n"


def test_refused_worker_class(workdir):
    code, _, err = run(RGUN, ["-k", "gevent", "app:app"], workdir)
    assert code == 1
    # Printed like gunicorn prints a RuntimeError from building the arbiter: "\nError: %s\n".
    assert err == "\nError: worker class 'gevent' is not supported by rgun yet\n\n"


def test_version(workdir):
    code, out, _ = run(RGUN, ["--version"], workdir)
    assert code == 0
    assert out.startswith("rgun (version ") and "compatible with gunicorn 27.0.1" in out
