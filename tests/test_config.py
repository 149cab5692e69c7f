"""Settings that change how the server runs: max_requests, GUNICORN_CMD_ARGS, config files, preload,
raw_env, unix socket bind."""

import json
import os
import re

import pytest

from support import APPS, GUNICORN, RawConn, wait_until


def _env(srv, key):
    r = srv.request("GET", f"/env?k={key}")
    assert r.status == 200
    return r.body.decode()


def test_max_requests_recycles_worker_without_failures(spawn):
    srv = spawn(["-w", "1", "--max-requests", "5", "wsgiapps:app"])
    pids = []
    for i in range(16):
        r = srv.request("GET", "/pid", timeout=15)
        assert r.status == 200, (i, r.status)
        pids.append(int(r.body))
    # each worker serves exactly 5 requests
    assert [len(set(pids[i:i + 5])) for i in range(0, 15, 5)] == [1, 1, 1]
    assert len(set(pids)) == 4, pids
    srv.wait_log(r"\[INFO\] Autorestarting worker after current request\.", count=3)
    assert re.findall(r"\[(\d+)\] \[INFO\] Autorestarting worker", srv.log())[:3] == [str(p) for p in pids[0:15:5]]
    assert "exited with code" not in srv.log()


def test_max_requests_gthread_closes_last_keepalive(spawn):
    srv = spawn(["-w", "1", "-k", "gthread", "--threads", "2", "--max-requests", "3", "wsgiapps:app"])
    c = RawConn(srv.connect())
    try:
        conns = []
        for _ in range(3):
            c.send_request("GET", "/hello")
            conns.append(c.read_response().header("Connection"))
        assert conns == ["keep-alive", "keep-alive", "close"]
        assert c.at_eof(5)
    finally:
        c.close()
    srv.wait_log(r"Autorestarting worker after current request\.")
    assert srv.request("GET", "/hello").status == 200


def test_gunicorn_cmd_args(spawn):
    srv = spawn(["wsgiapps:app"], workers=2,
                extra_env={"GUNICORN_CMD_ARGS": "--workers 2 -e FROM_CMD_ARGS=yes --access-logfile -"})
    assert len(srv.worker_pids()) == 2
    assert _env(srv, "FROM_CMD_ARGS") == "yes"
    srv.wait_log(r'"GET /env\?k=FROM_CMD_ARGS HTTP/1.1" 200', source=srv.stdout)


def test_cli_overrides_gunicorn_cmd_args(spawn):
    srv = spawn(["-e", "X=cli", "wsgiapps:app"], extra_env={"GUNICORN_CMD_ARGS": "-e X=env -e Y=env"})
    # raw_env is replaced (not merged) by the higher layer
    assert _env(srv, "X") == "cli"
    assert _env(srv, "Y") == "<unset>"


def test_gunicorn_conf_py_in_cwd_is_read(spawn, tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text('workers = 2\nraw_env = ["FROM_CONF=cwd"]\n')
    srv = spawn(["--pythonpath", APPS, "wsgiapps:app"], cwd=str(tmp_path), workers=2)
    assert _env(srv, "FROM_CONF") == "cwd"
    assert len(srv.worker_pids()) == 2


def test_dash_c_config_file(spawn, tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text('raw_env = ["FROM_CONF=cwd"]\n')
    other = tmp_path / "other_conf.py"
    other.write_text('import os\nraw_env = ["FROM_C=yes"]\nworker_class = "gthread"\nthreads = 3\n')
    srv = spawn(["-c", str(other), "--pythonpath", APPS, "wsgiapps:app"], cwd=str(tmp_path))
    assert _env(srv, "FROM_C") == "yes"
    assert _env(srv, "FROM_CONF") == "<unset>"  # only one config file is read
    assert "[INFO] Using worker: gthread" in srv.log()


def test_cli_overrides_config_file(spawn, tmp_path):
    conf = tmp_path / "c.py"
    conf.write_text('raw_env = ["A=file"]\nworkers = 3\n')
    srv = spawn(["-c", str(conf), "-w", "1", "-e", "A=cli", "wsgiapps:app"])
    assert _env(srv, "A") == "cli"


def test_preload_imports_once_in_master(spawn, tmp_path):
    mark = tmp_path / "imports.txt"
    srv = spawn(["--preload", "-w", "2", "preload_app:app"], workers=2, extra_env={"PRELOAD_MARK": str(mark)})
    assert mark.read_text().split() == [str(srv.master_pid)]
    pid = int(srv.request("GET", "/").body)
    assert pid in srv.worker_pids() and pid != srv.master_pid
    assert mark.read_text().split() == [str(srv.master_pid)]


def test_no_preload_imports_in_each_worker(spawn, tmp_path):
    mark = tmp_path / "imports.txt"
    srv = spawn(["-w", "2", "preload_app:app"], workers=2, extra_env={"PRELOAD_MARK": str(mark)})
    wait_until(lambda: mark.exists() and len(mark.read_text().split()) >= 2, 10, what="2 imports")
    assert sorted(map(int, mark.read_text().split())) == sorted(srv.worker_pids())


def test_raw_env(spawn):
    srv = spawn(["-e", "FOO=bar", "-e", "WITH_EQ=a=b", "--env", "EMPTY=", "wsgiapps:app"])
    assert _env(srv, "FOO") == "bar"
    assert _env(srv, "WITH_EQ") == "a=b"
    assert _env(srv, "EMPTY") == ""


@pytest.fixture(scope="module")
def unix_pair(module_spawn, tmp_path_factory):
    d = tmp_path_factory.mktemp("unix")
    ours = module_spawn(["wsgiapps:app"], bind=f"unix:{d}/rgun.sock", name="rgun-unix")
    oracle = module_spawn(["wsgiapps:app"], bind=f"unix:{d}/gunicorn.sock", exe=GUNICORN, name="gunicorn-unix")
    return ours, oracle


def test_unix_socket_serves(unix_pair):
    ours, _ = unix_pair
    assert ours.listen_url.startswith("unix:") and ours.listen_url.endswith("/rgun.sock")
    r = ours.request("GET", "/hello")
    assert r.status == 200 and r.body == b"Hello, World!"


@pytest.mark.parametrize("host,name,port", [("example.org:1234", "example.org", "1234"), ("example.org", "example.org", "80")])
def test_unix_socket_environ(unix_pair, host, name, port):
    ours, oracle = unix_pair
    a = json.loads(ours.request("GET", "/environ?x=1", host=host).body)
    b = json.loads(oracle.request("GET", "/environ?x=1", host=host).body)
    assert a["REMOTE_ADDR"] == ""
    assert "REMOTE_PORT" not in a
    assert a["SERVER_NAME"] == name and a["SERVER_PORT"] == port
    for e in (a, b):
        e.pop("wsgi.early_hints", None)  # tested in test_environ.py
    assert a == b


def test_unix_socket_file_removed_on_stop(spawn, tmp_path):
    path = tmp_path / "s.sock"
    srv = spawn(["wsgiapps:app"], bind=f"unix:{path}")
    assert path.exists()
    assert srv.stop() == 0
    assert not path.exists()


def test_pidfile(spawn, tmp_path):
    pidfile = tmp_path / "run" / "app.pid"
    pidfile.parent.mkdir()
    srv = spawn(["-p", str(pidfile), "wsgiapps:app"])
    assert pidfile.read_text() == f"{srv.master_pid}\n"
    assert oct(pidfile.stat().st_mode & 0o777) == "0o644"
    assert srv.stop() == 0
    assert not pidfile.exists()


def test_chdir(spawn, tmp_path):
    srv = spawn(["--chdir", APPS, "wsgiapps:app"], cwd=str(tmp_path))
    assert srv.request("GET", "/hello").body == b"Hello, World!"
