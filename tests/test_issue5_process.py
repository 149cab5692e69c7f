"""Process settings (spec 8.7, 8.10-8.14): process titles, daemon + pidfile, user/group,
reuse_port, spew, and SIGHUP reloading the configuration, compared with gunicorn where possible."""

import importlib.util
import os
import pwd
import re
import signal
import subprocess
import time

import pytest

from support import APPS, GUNICORN, RGUN, free_port, pid_alive, run_cli, wait_until

HAVE_SETPROCTITLE = importlib.util.find_spec("setproctitle") is not None


def _cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().replace(b"\0", b" ").decode().strip()


def _status_ids(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid"):
                out[k] = int(v.split()[0])
    return out


@pytest.mark.skipif(not HAVE_SETPROCTITLE, reason="setproctitle is not installed")
@pytest.mark.parametrize("args, name", [(["-n", "custom"], "custom"), ([], "hello:app")])
def test_process_titles_like_gunicorn(spawn, args, name):
    titles = []
    for exe, label in ((RGUN, "rgun"), (GUNICORN, "gunicorn")):
        srv = spawn(args + ["-w", "2", "hello:app"], exe=exe, name=label, workers=2)
        wait_until(lambda: _cmdline(srv.master_pid).startswith("gunicorn:"), 10, what="master title")
        workers = srv.worker_pids()
        wait_until(lambda: all(_cmdline(w).startswith("gunicorn:") for w in workers), 10, what="titles")
        titles.append((_cmdline(srv.master_pid), sorted(_cmdline(w) for w in workers)))
    assert titles[0] == titles[1]
    assert titles[0][0] == "gunicorn: master [%s]" % name
    assert titles[0][1] == ["gunicorn: worker [%s]" % name] * 2


def test_daemon_pidfile_and_stdio(tmp_path):
    port = free_port()
    pidfile = tmp_path / "d.pid"
    log = tmp_path / "error.log"
    r = run_cli(["-D", "-p", str(pidfile), "--error-logfile", str(log), "-b", "127.0.0.1:%d" % port,
                 "hello:app"], exe=RGUN, timeout=20)
    # The launching process returns at once; the daemon carries on.
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, what="pidfile")
    pid = int(pidfile.read_text())
    try:
        assert pidfile.read_text() == "%d\n" % pid
        wait_until(lambda: "Booting worker" in log.read_text(), 10, what="worker boot")
        assert os.getsid(pid) not in (pid, os.getsid(0))  # setsid, then a second fork
        for fd in (0, 1, 2):
            assert os.readlink("/proc/%d/fd/%d" % (pid, fd)) == "/dev/null"
        assert "Listening at: http://127.0.0.1:%d (%d)" % (port, pid) in log.read_text()
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not pid_alive(pid), 10, what="daemon exit")
    assert not pidfile.exists()


def test_daemon_warns_under_systemd_notify(tmp_path):
    port = free_port()
    pidfile = tmp_path / "d.pid"
    r = run_cli(["-D", "-p", str(pidfile), "--error-logfile", str(tmp_path / "e.log"),
                 "-b", "127.0.0.1:%d" % port, "hello:app"], exe=RGUN, timeout=20,
                extra_env={"NOTIFY_SOCKET": str(tmp_path / "nonexistent.sock")})
    try:
        assert r.stderr == ("Warning: you shouldn't specify `daemon = True` when launching by systemd "
                            "with `Type = notify`\n")
    finally:
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, what="pidfile")
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not pid_alive(pid), 10, what="daemon exit")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_workers_switch_user_and_group(spawn, tmp_path):
    nobody = pwd.getpwnam("nobody")
    log = tmp_path / "error.log"
    srv = spawn(["-u", "nobody", "-g", str(nobody.pw_gid), "--error-logfile", str(log), "hello:app"],
                log_path=str(log))
    assert srv.request("GET", "/").status == 200
    (worker,) = srv.worker_pids()
    assert _status_ids(worker) == {"Uid": nobody.pw_uid, "Gid": nobody.pw_gid}
    assert _status_ids(srv.master_pid) == {"Uid": 0, "Gid": 0}
    # The error log was handed over, so the worker can still write to it.
    assert os.stat(log).st_uid == nobody.pw_uid


def test_reuse_port_workers_bind_their_own_sockets(spawn):
    port = free_port()
    srv = spawn(["--reuse-port", "-w", "2", "hello:app"], bind="127.0.0.1:%d" % port, start=False, workers=2)
    srv.start(wait=False)
    srv.wait_log(r"Booting worker with pid", count=2)
    # As gunicorn since 24.0: the master binds nothing.
    assert "Listening at:  (%d)" % srv.master_pid in srv.log()
    srv.port, srv.address = port, ("127.0.0.1", port)
    assert srv.request("GET", "/").status == 200
    owners = subprocess.run(["ss", "-ltnpH", "sport = :%d" % port], capture_output=True, text=True).stdout
    pids = {int(p) for p in re.findall(r"pid=(\d+)", owners)}
    if pids:  # `ss` may not show processes in some sandboxes
        assert pids == set(srv.worker_pids())


def test_umask_applies_to_unix_socket(spawn, tmp_path):
    path = tmp_path / "s.sock"
    srv = spawn(["-m", "0o077", "hello:app"], bind="unix:%s" % path)
    assert srv.request("GET", "/").status == 200
    assert os.stat(path).st_mode & 0o777 == 0o700


def test_spew_traces_python_lines(spawn, tmp_path):
    (tmp_path / "conf.py").write_text("def when_ready(server):\n    marker = 'spewed'\n")
    srv = spawn(["--spew", "-c", str(tmp_path / "conf.py"), "hello:app"])
    wait_until(lambda: "__config__:2:     marker = 'spewed'" in srv.stdout(), 10, what="spew line")


def _wait_generation(srv, count):
    srv.wait_log(r"Booting worker with pid", count=count, timeout=20)


@pytest.mark.parametrize("exe", [RGUN, GUNICORN], ids=["rgun", "gunicorn"])
def test_hup_reloads_config_file(spawn, tmp_path, exe):
    port = free_port()
    conf = tmp_path / "conf.py"
    conf.write_text("workers = 1\nbind = ['127.0.0.1:%d']\nraw_env = ['RGUN_T=one']\n" % port)
    srv = spawn(["-c", str(conf), "hello:app"], exe=exe, bind=None)
    (first,) = srv.worker_pids()
    port2 = free_port()
    conf.write_text(
        "workers = 3\nbind = ['127.0.0.1:%d']\nproc_name = 'reloaded'\n"
        "def on_reload(server):\n    server.log.info('on_reload workers=%%s', server.num_workers)\n"
        "def nworkers_changed(server, new, old):\n    server.log.info('nworkers %%s -> %%s', old, new)\n"
        % port2)
    os.kill(srv.master_pid, signal.SIGHUP)
    _wait_generation(srv, 4)
    srv.wait_log("Worker exiting \\(pid: %d\\)" % first)
    log = srv.log()
    assert "Hang up: Master" in log
    assert re.search(r"\[INFO\] Listening at: http://127\.0\.0\.1:%d\n" % port2, log)
    assert "on_reload workers=3" in log
    assert "nworkers 1 -> 3" in log
    wait_until(lambda: not pid_alive(first), 10, what="old worker gone")
    assert len(srv.live_worker_pids()) == 3
    srv.port, srv.address = port2, ("127.0.0.1", port2)
    assert srv.request("GET", "/").status == 200
    # The old address is closed.
    import socket
    s = socket.socket()
    try:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    finally:
        s.close()


def test_hup_with_a_broken_config_keeps_the_old_one(spawn, tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("workers = 2\n")
    srv = spawn(["-c", str(conf), "hello:app"], workers=2)
    conf.write_text("workers = (\n")
    os.kill(srv.master_pid, signal.SIGHUP)
    srv.wait_log("keeping the previous configuration")
    _wait_generation(srv, 4)
    wait_until(lambda: len(srv.live_worker_pids()) == 2, 10, what="two workers")
    assert srv.request("GET", "/").status == 200


def test_hup_reapplies_logging_config(spawn, tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("loglevel = 'info'\n")
    srv = spawn(["-c", str(conf), "hello:app"])
    assert srv.request("GET", "/").status == 200
    assert "[DEBUG]" not in srv.log()
    conf.write_text("loglevel = 'debug'\naccesslog = '-'\n")
    os.kill(srv.master_pid, signal.SIGHUP)
    srv.wait_log(r"\[DEBUG\] Current configuration")
    _wait_generation(srv, 2)
    new = srv.worker_pids()[-1]
    wait_until(lambda: srv.live_worker_pids() == [new], 10, what="old worker gone")
    assert srv.request("GET", "/").status == 200
    wait_until(lambda: '"GET / HTTP/1.1" 200' in srv.stdout(), 10, what="access line after HUP")
