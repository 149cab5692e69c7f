"""CLI surface and app loading: --version, -h, argparse errors, boot/app-load failures, APP_MODULE forms."""

import re

import pytest

from support import TESTING_GUNICORN, run_cli


def test_version():
    r = run_cli(["--version"])
    assert r.returncode == 0, r
    if TESTING_GUNICORN:
        assert r.stdout == "gunicorn (version 27.0.1)\n"
    else:
        assert re.fullmatch(
            r"rgun \(version [0-9][\w.+-]*, compatible with gunicorn 27\.0\.1, Python 3\.11(\.\d+)?\)\n", r.stdout
        ), repr(r.stdout)


def test_version_short_flag():
    r = run_cli(["-v"])
    assert r.returncode == 0
    assert "27.0.1" in r.stdout


def test_help():
    r = run_cli(["-h"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: "), r.stdout[:200]
    assert "[OPTIONS] [APP_MODULE]" in r.stdout.splitlines()[0]
    for opt in ("-w INT, --workers INT", "-b ADDRESS, --bind ADDRESS", "--max-requests INT", "-k STRING, --worker-class STRING"):
        assert opt in r.stdout, opt


def test_unknown_flag_exits_2():
    r = run_cli(["--no-such-flag", "hello:app"])
    assert r.returncode == 2, r
    assert r.stderr.splitlines()[0].startswith("usage: ")
    assert re.search(r"^\w+: error: unrecognized arguments: --no-such-flag$", r.stderr, re.M), r.stderr


def test_bad_int_exits_2():
    r = run_cli(["-w", "abc", "hello:app"])
    assert r.returncode == 2, r
    assert re.search(r"error: argument -w/--workers: invalid int value: 'abc'$", r.stderr, re.M), r.stderr


def test_missing_module_is_worker_boot_failure(spawn):
    srv = spawn(["no_such_module_xyz:app"], start=False)
    srv.start(wait=False)
    rc = srv.wait_exit(30)
    log = srv.log()
    assert rc == 3, (rc, log)
    assert "[ERROR] Exception in worker process" in log, log
    assert "ModuleNotFoundError: No module named 'no_such_module_xyz'" in log, log
    assert re.search(r"\[ERROR\] Shutting down: Master\n.*\[ERROR\] Reason: Worker failed to boot\.\n", log), log


def test_missing_attribute_is_app_load_failure(spawn):
    srv = spawn(["hello:nope"], start=False)
    srv.start(wait=False)
    rc = srv.wait_exit(30)
    log = srv.log()
    assert rc == 4, (rc, log)
    assert "Failed to find attribute 'nope' in 'hello'." in log, log
    assert re.search(r"\[ERROR\] Shutting down: Master\n.*\[ERROR\] Reason: App failed to load\.\n", log), log


def test_bad_app_expression_is_app_load_failure(spawn):
    srv = spawn(["hello:create(1+)"], start=False)
    srv.start(wait=False)
    rc = srv.wait_exit(30)
    log = srv.log()
    assert rc == 4, (rc, log)
    assert "Failed to parse 'create(1+)' as an attribute name or function call." in log, log


@pytest.mark.parametrize(
    "module,body",
    [
        ("hello:app", b"Hello, World!"),
        ("hello", b"from application"),
        ("hello:create()", b"factory:0"),
        ('hello:create("x", 1)', b"x:1"),
    ],
)
def test_app_module_forms(spawn, module, body):
    srv = spawn([module])
    r = srv.request("GET", "/")
    assert r.status == 200
    assert r.body == body


@pytest.mark.parametrize(
    "args,rc,message",
    [
        (["hello:not_callable"], 4, "Application object must be callable."),
        (["hello:returns_none()"], 4, "Failed to find application object: 'returns_none()'"),
        (["hello:create(1, 2, 3)"], 4, "create() takes from 0 to 2 positional arguments but 3 were given"),
        (["--preload", "no_such_module_xyz:app"], 1, "No module named 'no_such_module_xyz'"),
        (["--preload", "hello:nope"], 1, "Failed to find attribute 'nope' in 'hello'."),
    ],
    ids=["not-callable", "factory-none", "factory-args", "preload-missing-module", "preload-missing-attr"],
)
def test_app_load_failures_like_gunicorn(spawn, args, rc, message):
    from support import GUNICORN

    results = []
    for exe in (None, GUNICORN):
        srv = spawn(args, exe=exe, start=False)
        srv.start(wait=False)
        code = srv.wait_exit(30)
        results.append(code)
        assert message in srv.stderr(), (exe, srv.stderr())
        if rc == 4:
            assert "Reason: App failed to load." in srv.stderr()
    assert results == [rc, rc]
