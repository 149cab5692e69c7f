"""Binary upgrade (SIGUSR2, `pre_exec`) and inherited listeners (systemd socket activation,
`sd_notify`), each run under gunicorn 27.0.1 and rgun and compared.

USR2 scenario: a master on a unix socket with a pidfile; USR2 forks a child that runs
`pre_exec` and re-executes the command line with the listener fds; both masters serve; a second
USR2 to either is ignored with gunicorn's warning; TERM to the old master; the child promotes
itself (pidfile renamed, `Master has been promoted.`); a client looping throughout sees no
error; TERM to the new master unlinks the socket file.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from support import APPS, GUNICORN, RGUN, Server, pid_alive, recv_all, wait_until

ECHO_APP = r'''
import os


def app(environ, start_response):
    body = "pid=%d ppid=%d listen_fds=%s gunicorn_fd=%s\n" % (
        os.getpid(), os.getppid(), os.environ.get("LISTEN_FDS"), os.environ.get("GUNICORN_FD"))
    body = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

CONF = r'''
import os


def pre_exec(server):
    server.log.info("pre_exec pid=%d master_pid=%r reexec_pid=%r systemd=%r"
                    % (os.getpid(), server.master_pid, server.reexec_pid, server.systemd))
'''

LINE_RE = re.compile(r"^\[[^\]]+\] \[(\d+)\] \[(\w+)\] (.*)$")


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def _get(address, timeout=5.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(address)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = recv_all(s, timeout)
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data
    return dict(kv.split("=", 1) for kv in body.decode().split())


class _Hammer(threading.Thread):
    """Requests in a loop until stopped; every failure is kept."""

    def __init__(self, address):
        super().__init__(daemon=True)
        self.address = address
        self.stop_flag = threading.Event()
        self.ok = 0
        self.errors = []

    def run(self):
        while not self.stop_flag.is_set():
            try:
                _get(self.address)
                self.ok += 1
            except Exception as e:  # noqa: BLE001 - every failure counts
                self.errors.append(repr(e))


def _events(log, roles, tmp):
    """Master lines as `(role, level, message)` in order, pids replaced by their role."""
    out = []
    for line in log.splitlines():
        m = LINE_RE.match(line)
        if not m:
            continue
        pid, level, msg = m.groups()
        role = roles.get(int(pid))
        if role is None or "Control socket" in msg:
            continue
        msg = re.sub(r"^Starting (gunicorn|rgun) \S+$", "Starting", msg).replace(str(tmp), "TMP")
        for p, r in roles.items():
            msg = re.sub(r"\b%d\b" % p, r, msg)
        out.append((role, level, msg))
    return out


def _usr2_run(exe, tmp):
    tmp.mkdir()
    (tmp / "echo.py").write_text(ECHO_APP)
    (tmp / "conf.py").write_text(CONF)
    sock = str(tmp / "s.sock")
    pidfile = str(tmp / "app.pid")
    srv = Server(["-c", str(tmp / "conf.py"), "-p", pidfile, "echo:app"], exe=exe, tmpdir=tmp,
                 cwd=str(tmp), bind="unix:" + sock, workers=2)
    srv.args += ["-w", "2"]
    srv.start()
    old = srv.master_pid
    new = None
    try:
        first = _get(sock)
        assert int(first["ppid"]) == old
        hammer = _Hammer(sock)
        hammer.start()
        os.kill(old, signal.SIGUSR2)
        wait_until(lambda: _read(pidfile + ".2"), 20, what="pidfile.2")
        new = int(_read(pidfile + ".2"))
        srv.wait_log(r"Booting worker", count=4, timeout=20)
        # Both masters serve the same socket; GUNICORN_FD was popped from the new one's env.
        wait_until(lambda: int(_get(sock)["ppid"]) == new, 20, what="the new master's workers serve")
        assert _get(sock)["gunicorn_fd"] == "None"
        os.kill(old, signal.SIGUSR2)
        srv.wait_log(r"USR2 signal ignored\. Child exists\.")
        os.kill(new, signal.SIGUSR2)
        srv.wait_log(r"USR2 signal ignored\. Parent exists\.")
        os.kill(old, signal.SIGTERM)
        assert srv.wait_exit(20) == 0
        srv.wait_log(r"Master has been promoted\.", timeout=10)
        wait_until(lambda: _read(pidfile) == str(new), 10, what="pidfile renamed")
        assert not os.path.exists(pidfile + ".2")
        assert os.path.exists(sock), "the old master must not unlink the socket its child serves"
        after = _get(sock)
        assert int(after["ppid"]) == new
        hammer.stop_flag.set()
        hammer.join(10)
        assert hammer.errors == [], hammer.errors[:5]
        assert hammer.ok > 0
        os.kill(new, signal.SIGTERM)
        wait_until(lambda: not pid_alive(new), 20, what="new master exit")
        assert not os.path.exists(sock), "the promoted master unlinks its socket on exit"
        assert not os.path.exists(pidfile)
    finally:
        if new and pid_alive(new):
            os.kill(new, signal.SIGKILL)
        srv.stop()
    return _events(srv.log(), {old: "OLD", new: "NEW"}, tmp)


def test_usr2_binary_upgrade_matches_gunicorn(tmp_path):
    got = {exe: _usr2_run(exe, tmp_path / os.path.basename(exe)) for exe in (GUNICORN, RGUN)}
    g, r = got[GUNICORN], got[RGUN]
    assert ("NEW", "INFO", "pre_exec pid=NEW master_pid=0 reexec_pid=0 systemd=False") in r
    # The masters' lines interleave nondeterministically between the two processes: compare
    # each master's own sequence.
    for role in ("OLD", "NEW"):
        assert [e for e in r if e[0] == role] == [e for e in g if e[0] == role], role


SPAWN_ACTIVATED = r'''
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.set_inheritable(3, True)
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ["LISTEN_FDS"] = "1"
os.execv(sys.argv[2], sys.argv[2:])
'''


def _activated_run(exe, tmp, sock_kind, usr2=False):
    """Socket activation as systemd does it: a bound socket (listening or not) at fd 3,
    LISTEN_PID/LISTEN_FDS naming the server's pid, NOTIFY_SOCKET a datagram socket."""
    tmp.mkdir()
    (tmp / "echo.py").write_text(ECHO_APP)
    (tmp / "conf.py").write_text(CONF)
    path = str(tmp / "act.sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    if sock_kind == "listening":
        lsock.listen(16)
    notify_path = str(tmp / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(20)
    args = [sys.executable, "-c", SPAWN_ACTIVATED, str(lsock.fileno()), exe,
            "-c", str(tmp / "conf.py"), "-b", "127.0.0.1:1", "echo:app"]
    if os.path.basename(exe) == "gunicorn":
        args.append("--no-control-socket")
    env = dict(os.environ, NOTIFY_SOCKET=notify_path, PYTHONUNBUFFERED="1")
    env.pop("GUNICORN_CMD_ARGS", None)
    err = open(tmp / "err.log", "wb")
    proc = subprocess.Popen(args, cwd=str(tmp), env=env, stderr=err, stdout=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, pass_fds=(lsock.fileno(),), start_new_session=True)
    lsock.close()
    try:
        ready = notify.recv(4096)
        log = lambda: (tmp / "err.log").read_text()  # noqa: E731
        wait_until(lambda: "Booting worker" in log(), 20, what="worker boot")
        body = _get(path)
        listening = re.search(r"Listening at: (\S*) \(", log()).group(1)
        if usr2:
            # The re-executed master takes systemd's socket through LISTEN_PID/LISTEN_FDS.
            os.kill(proc.pid, signal.SIGUSR2)
            assert notify.recv(4096) == ready
            wait_until(lambda: log().count("Booting worker") >= 2, 20, what="new master's worker")
            new = int(re.findall(r"\[(\d+)\] \[INFO\] Listening at:", log())[-1])
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(20)
            wait_until(lambda: "Master has been promoted." in log(), 20, what="promotion")
            body = _get(path)
            assert int(body["ppid"]) == new
            os.kill(new, signal.SIGTERM)
            wait_until(lambda: not pid_alive(new), 20, what="new master exit")
        else:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        err.close()
        notify.close()
    return ready, body["listen_fds"], listening, os.path.exists(path), proc.returncode


@pytest.mark.parametrize("sock_kind", ["listening", "bound_only"])
def test_systemd_socket_activation_matches_gunicorn(tmp_path, sock_kind):
    g = _activated_run(GUNICORN, tmp_path / "g", sock_kind)
    r = _activated_run(RGUN, tmp_path / "r", sock_kind)
    assert g[0] == b"READY=1\nSTATUS=Gunicorn arbiter booted"
    # The datagram, LISTEN_FDS removed from the env, the bind setting ignored, the socket file
    # left in place (systemd owns it), exit 0.
    assert r[0] == g[0]
    assert r[1] == g[1] == "None"
    assert g[2] == "unix:" + str(tmp_path / "g" / "act.sock")
    assert r[2] == "unix:" + str(tmp_path / "r" / "act.sock")
    assert r[3] is g[3] is True
    assert r[4] == g[4] == 0


def test_notify_to_abstract_socket(spawn):
    """`@name` in NOTIFY_SOCKET is an abstract unix socket."""
    name = "rgun-test-notify-%d" % os.getpid()
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind("\0" + name)
    rx.settimeout(20)
    try:
        spawn(["hello:app"], exe=RGUN, cwd=APPS, extra_env={"NOTIFY_SOCKET": "@" + name})
        assert rx.recv(4096) == b"READY=1\nSTATUS=Gunicorn arbiter booted"
    finally:
        rx.close()


def test_usr2_passes_systemd_sockets_on(tmp_path):
    """USR2 under socket activation: the child gets LISTEN_PID/LISTEN_FDS, notifies READY,
    serves, and is promoted. (gunicorn 27.0.1's child dies here with EBADF: its listener is a
    non-inheritable dup of fd 3, so rgun is compared with the documented behaviour, not run.)"""
    ready, listen_fds, listening, still_there, code = _activated_run(RGUN, tmp_path / "r", "listening", True)
    assert ready == b"READY=1\nSTATUS=Gunicorn arbiter booted"
    assert listen_fds == "None"
    assert still_there is True
    assert code == 0


def _title(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        title = f.read().replace(b"\0", b" ").decode()
    m = re.search(r"master \[([^\]]*)\]", title)
    return m.group(1) if m else title


def _echo_server(exe, tmp, args):
    """One worker serving the echo app on a unix socket in `tmp`, started."""
    (tmp / "echo.py").write_text(ECHO_APP)
    srv = Server(args + ["echo:app"], exe=exe, tmpdir=tmp, cwd=str(tmp),
                 bind="unix:" + str(tmp / "s.sock"), workers=1)
    srv.start()
    return srv


def _usr2_hup_titles(exe, tmp):
    """The USR2 child's process title before and after a SIGHUP (its parent still alive).
    No pidfile: gunicorn's USR2 child dies on SIGHUP when one is set (it tries to create the
    configured pidfile, which its parent still holds)."""
    tmp.mkdir()
    srv = _echo_server(exe, tmp, ["-n", "myname"])
    old = srv.master_pid
    new = None
    try:
        os.kill(old, signal.SIGUSR2)
        srv.wait_log(r"Booting worker", count=2, timeout=20)
        new = [int(p) for p in re.findall(r"\[(\d+)\] \[INFO\] Starting ", srv.log())][1]
        wait_until(lambda: _title(new).endswith(".2"), 10, what="the child's title")
        before = _title(new)
        os.kill(new, signal.SIGHUP)
        srv.wait_log(r"Hang up: Master\.2", timeout=10)
        srv.wait_log(r"Booting worker", count=3, timeout=20)
        wait_until(lambda: not _title(new).endswith(".2"), 10, what="the title after HUP")
        return before, _title(new), _title(old)
    finally:
        if new and pid_alive(new):
            os.kill(new, signal.SIGKILL)
        srv.stop()


def test_usr2_child_drops_dot2_from_its_title_on_hup(tmp_path):
    got = {exe: _usr2_hup_titles(exe, tmp_path / os.path.basename(exe)) for exe in (GUNICORN, RGUN)}
    assert got[RGUN] == got[GUNICORN] == ("myname.2", "myname", "myname")


def test_usr2_child_keeps_its_pidfile_through_a_hup(tmp_path):
    """rgun alone: gunicorn's USR2 child dies on SIGHUP when a pidfile is set (it tries to take
    `<pidfile>` from its living parent). rgun's keeps `<pidfile>.2` and takes `<pidfile>` when
    promoted."""
    pidfile = str(tmp_path / "app.pid")
    srv = _echo_server(RGUN, tmp_path, ["-p", pidfile])
    old = srv.master_pid
    new = None
    try:
        os.kill(old, signal.SIGUSR2)
        wait_until(lambda: _read(pidfile + ".2"), 20, what="pidfile.2")
        new = int(_read(pidfile + ".2"))
        srv.wait_log(r"Booting worker", count=2, timeout=20)
        os.kill(new, signal.SIGHUP)
        srv.wait_log(r"Booting worker", count=3, timeout=20)
        assert _read(pidfile + ".2") == str(new)
        assert _read(pidfile) == str(old)
        assert "[ERROR]" not in srv.log()
        os.kill(old, signal.SIGTERM)
        assert srv.wait_exit(20) == 0
        srv.wait_log(r"Master has been promoted\.", timeout=10)
        wait_until(lambda: _read(pidfile) == str(new), 10, what="pidfile renamed")
        assert not os.path.exists(pidfile + ".2")
    finally:
        if new and pid_alive(new):
            os.kill(new, signal.SIGTERM)
            wait_until(lambda: not pid_alive(new), 20, what="new master exit")
        srv.stop()
