"""What a worker inherits from its master: the standard-library modules gunicorn's master has
imported when it forks (so workers share their memory, under gunicorn and under rgun), and
rgun's frozen collector view of the master's objects (a worker's collections leave them, and so
their memory pages, alone).

A `post_fork` hook records the standard-library modules in `sys.modules` as the new worker sees
them, before it loads the app; the test compares that set under gunicorn 27.0.1 and rgun.
"""

from __future__ import annotations

import json

import pytest

from support import GUNICORN, RGUN, Server, TESTING_GUNICORN, wait_until

CONF = r'''
import json, os, sys

def post_fork(server, worker):
    std = sorted(m for m in sys.modules if m.split(".")[0] in sys.stdlib_module_names)
    with open(os.environ["MODULES_OUT"] + ".tmp", "w") as f:
        json.dump(std, f)
    os.rename(os.environ["MODULES_OUT"] + ".tmp", os.environ["MODULES_OUT"])
'''

APP = r'''
import gc, json

def app(environ, start_response):
    body = json.dumps({"frozen": gc.get_freeze_count()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


def inherited(tmp_path, exe, name):
    (tmp_path / "conf.py").write_text(CONF)
    (tmp_path / "gcapp.py").write_text(APP)
    out = tmp_path / f"{name}.json"
    srv = Server(["-c", str(tmp_path / "conf.py"), "gcapp:app"], exe=exe, tmpdir=tmp_path,
                 cwd=str(tmp_path), name=name, extra_env={"MODULES_OUT": str(out)})
    srv.start()
    try:
        wait_until(out.exists, 10, what="post_fork output")
        resp = srv.request("GET", "/")
        return set(json.loads(out.read_text())), json.loads(resp.body)
    finally:
        srv.stop()


@pytest.mark.skipif(TESTING_GUNICORN, reason="compares rgun with gunicorn")
def test_workers_inherit_what_gunicorns_master_imported(tmp_path):
    theirs, _ = inherited(tmp_path, GUNICORN, "gunicorn")
    ours, state = inherited(tmp_path, RGUN, "rgun")
    # Everything a gunicorn worker inherits from the standard library, an rgun worker does too.
    assert theirs - ours == set()
    assert {"email.utils", "typing", "datetime", "urllib.parse", "ssl"} <= ours
    # The master's objects are in the collector's permanent generation in the worker.
    assert state["frozen"] > 1000


FREEZE_CONF = r'''
import gc, os

def _note(what):
    with open(os.environ["FREEZE_OUT"], "a") as f:
        f.write("%s %d\n" % (what, gc.get_freeze_count()))

def post_fork(server, worker):
    _note("post_fork")

def on_reload(server):
    _note("on_reload")
'''


@pytest.mark.skipif(TESTING_GUNICORN, reason="rgun's own behaviour (gunicorn does not freeze)")
def test_a_reload_unfreezes_and_the_next_fork_freezes_again(tmp_path):
    import os
    import signal

    (tmp_path / "conf.py").write_text(FREEZE_CONF)
    (tmp_path / "gcapp.py").write_text(APP)
    out = tmp_path / "freeze.txt"
    srv = Server(["-c", str(tmp_path / "conf.py"), "gcapp:app"], exe=RGUN, tmpdir=tmp_path,
                 cwd=str(tmp_path), extra_env={"FREEZE_OUT": str(out)})
    srv.start()
    try:
        lines = lambda: out.read_text().split("\n") if out.exists() else []  # noqa: E731
        wait_until(lambda: any(l.startswith("post_fork") for l in lines()), 10, what="post_fork")
        os.kill(srv.master_pid, signal.SIGHUP)
        wait_until(lambda: sum(l.startswith("post_fork") for l in lines()) >= 2, 15,
                   what="a worker of the new generation")
    finally:
        srv.stop()
    events = [l.split() for l in lines() if l]
    counts = {name: [int(n) for e, n in events if e == name] for name in ("post_fork", "on_reload")}
    # Workers start with what the master held frozen; the master's reload runs unfrozen.
    assert all(n > 1000 for n in counts["post_fork"]), events
    assert counts["on_reload"] == [0], events


@pytest.mark.skipif(TESTING_GUNICORN, reason="compares rgun with gunicorn")
def test_a_project_module_named_like_one_of_them_does_not_shadow_it(tmp_path):
    """gunicorn imports its standard-library dependencies before the configuration puts the
    project first on `sys.path`, so a project's own `calendar.py` never replaces the standard
    module (and is not run by the master)."""
    (tmp_path / "calendar.py").write_text("raise RuntimeError('the project calendar.py ran')\n")
    (tmp_path / "calapp.py").write_text(
        "import calendar\n"
        "def app(environ, start_response):\n"
        "    body = calendar.__file__.encode()\n"
        "    start_response('200 OK', [('Content-Length', str(len(body)))])\n"
        "    return [body]\n")
    bodies = {}
    for name, exe in (("gunicorn", GUNICORN), ("rgun", RGUN)):
        srv = Server(["calapp:app"], exe=exe, tmpdir=tmp_path, cwd=str(tmp_path), name=name)
        srv.start()
        try:
            bodies[name] = srv.request("GET", "/").body
        finally:
            srv.stop()
    assert bodies["rgun"] == bodies["gunicorn"]
    assert not bodies["rgun"].startswith(str(tmp_path).encode())
