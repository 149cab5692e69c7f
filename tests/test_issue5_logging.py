"""Logging configuration (spec 9.1, 9.4, 9.5): logconfig_dict / logconfig_json / logconfig,
syslog, logger_class and capture_output, each compared with gunicorn where the output can be."""

import json
import os
import re
import signal
import socket
import threading

import pytest

from support import GUNICORN, RGUN, run_cli, wait_until

TIME_RE = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\]")
ACCESS_TIME_RE = re.compile(r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]")


def _norm(text, pids):
    out = []
    for line in text.splitlines():
        line = TIME_RE.sub("[TIME]", line)
        line = ACCESS_TIME_RE.sub("[ATIME]", line)
        line = re.sub(r"(Starting) (rgun|gunicorn) \S+", r"\1 SERVER", line)
        line = re.sub(r"http://127\.0\.0\.1:\d+", "http://ADDR", line)
        for pid, name in pids.items():
            line = line.replace(str(pid), name)
        out.append(line)
    return sorted(out)


def _exercise(spawn, args, exe, name, requests=2, **kw):
    srv = spawn(args, exe=exe, name=name, **kw)
    for _ in range(requests):
        assert srv.request("GET", "/").status == 200
    # The access lines are written after the response: wait for them before stopping.
    return srv


def _stop_and_norm(srv, wait_for=None):
    if wait_for:
        wait_until(wait_for, 10, what="log lines")
    workers = srv.worker_pids()
    assert srv.stop() == 0
    pids = {srv.master_pid: "MASTER"}
    pids.update({w: "WORKER" for w in workers})
    return _norm(srv.stdout(), pids), _norm(srv.stderr(), pids)


def _count(srv, needle, n, source="stdout"):
    return lambda: getattr(srv, source)().count(needle) >= n


def test_logconfig_dict_defaults_merge_duplicates_lines_like_gunicorn(spawn, tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text('logconfig_dict = {"root": {"level": "INFO", "handlers": ["console"]}}\n')
    results = []
    for exe, name in ((RGUN, "rgun"), (GUNICORN, "gunicorn")):
        srv = _exercise(spawn, ["-c", str(conf), "hello:app"], exe, name)
        results.append(_stop_and_norm(srv, _count(srv, '"GET / HTTP/1.1" 200', 4)))
    ours, theirs = results
    assert ours == theirs
    out, err = ours
    # The propagate quirk: each access line twice on stdout, error lines on stdout and stderr.
    assert sum('"GET / HTTP/1.1" 200 13' in line for line in out) == 4
    assert any("Listening at" in line for line in out)


def test_logconfig_json_custom_format(spawn, tmp_path):
    cfg = {
        "root": {"level": "INFO", "handlers": []},
        "formatters": {"short": {"format": "J %(levelname)s %(name)s %(message)s"},
                       "generic": {"format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s",
                                   "datefmt": "[%Y-%m-%d %H:%M:%S %z]"}},
        "handlers": {
            "out": {"class": "logging.StreamHandler", "formatter": "short", "stream": "ext://sys.stdout"},
            "error_console": {"class": "logging.StreamHandler", "formatter": "generic",
                              "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error_console", "out"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["out"], "propagate": False},
        },
    }
    path = tmp_path / "log.json"
    path.write_text(json.dumps(cfg))
    results = []
    for exe, name in ((RGUN, "rgun"), (GUNICORN, "gunicorn")):
        srv = _exercise(spawn, ["--log-config-json", str(path), "hello:app"], exe, name)
        results.append(_stop_and_norm(srv, _count(srv, "J INFO gunicorn.access", 2)))
    assert results[0] == results[1]
    assert "J INFO gunicorn.error Using worker: sync" in results[0][0]


def test_logconfig_ini_file(spawn, tmp_path):
    ini = tmp_path / "log.ini"
    ini.write_text("""\
[loggers]
keys=root, gunicorn.error, gunicorn.access

[handlers]
keys=console, out

[formatters]
keys=generic, ini

[logger_root]
level=INFO
handlers=

[logger_gunicorn.error]
level=DEBUG
handlers=console, out
propagate=0
qualname=gunicorn.error

[logger_gunicorn.access]
level=INFO
handlers=out
propagate=0
qualname=gunicorn.access

[handler_console]
class=StreamHandler
formatter=generic
args=(sys.stderr, )

[handler_out]
class=StreamHandler
formatter=ini
args=(sys.stdout, )

[formatter_generic]
format=%(asctime)s [%(process)d] [%(levelname)s] %(message)s
datefmt=[%Y-%m-%d %H:%M:%S %z]
class=logging.Formatter

[formatter_ini]
format=INI %(levelname)s %(message)s
""")
    results = []
    for exe, name in ((RGUN, "rgun"), (GUNICORN, "gunicorn")):
        srv = _exercise(spawn, ["--log-config", str(ini), "hello:app"], exe, name)
        out, err = _stop_and_norm(srv, _count(srv, "INI INFO 127.0.0.1", 2))
        # The debug configuration dump differs (rgun's settings values); keep the rest.
        out = [line for line in out if not line.startswith("  ") and "Current configuration" not in line]
        results.append([line for line in out if "Control socket" not in line])
    assert results[0] == results[1]
    assert "INI DEBUG Arbiter booted" in results[0]


class _SyslogCollector:
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


@pytest.mark.parametrize("disable_access", [False, True])
def test_syslog_unix_socket(spawn, tmp_path, disable_access):
    results = []
    for exe, name in ((RGUN, "rgun"), (GUNICORN, "gunicorn")):
        path = str(tmp_path / ("%s-%s.sock" % (name, disable_access)))
        coll = _SyslogCollector(path)
        try:
            args = ["--log-syslog", "--log-syslog-to", "unix://%s#dgram" % path,
                    "--log-syslog-prefix", "pfx", "--log-syslog-facility", "local3"]
            if disable_access:
                args.append("--disable-redirect-access-to-syslog")
            srv = _exercise(spawn, args + ["hello:app"], exe, name)
            wait_until(lambda: any("Booting worker" in m for m in coll.lines), 10, what="syslog boot line")
            if not disable_access:
                wait_until(lambda: sum(".access:" in m for m in coll.lines) >= 2, 10, what="syslog access")
            workers = srv.worker_pids()
            assert srv.stop() == 0
            wait_until(lambda: any("Shutting down" in m for m in coll.lines), 10, what="syslog shutdown")
        finally:
            coll.close()
        pids = {srv.master_pid: "MASTER"}
        pids.update({w: "WORKER" for w in workers})
        results.append(_norm("\n".join(m.rstrip("\x00").strip() for m in coll.lines), pids))
    assert results[0] == results[1]
    # local3 = 19, info = 6: <158>
    assert "<158>gunicorn.pfx.error: [MASTER] Using worker: sync" in results[0]
    assert any(".access:" in m for m in results[0]) != disable_access


def test_logger_class_subclass_of_gunicorn_logger(spawn, tmp_path):
    (tmp_path / "mylogger.py").write_text(
        "from gunicorn import glogging\n\n"
        "class Custom(glogging.Logger):\n"
        "    error_fmt = 'CUSTOM %(levelname)s %(message)s'\n"
        "    def setup(self, cfg):\n"
        "        super().setup(cfg)\n"
        "        self.error_log.info('custom setup')\n")
    results = []
    for exe, name in ((RGUN, "rgun"), (GUNICORN, "gunicorn")):
        srv = spawn(["--logger-class", "mylogger.Custom", "--access-logfile", "-", "hello:app"], exe=exe,
                    name=name, start=False, extra_env={"PYTHONPATH": str(tmp_path)})
        srv.log = srv.stderr  # readiness below: custom format
        srv.start(wait=False)
        wait_until(lambda: "CUSTOM INFO Booting worker" in srv.stderr(), 20, what="custom boot line")
        m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", srv.stderr())
        srv.port, srv.address = int(m.group(1)), ("127.0.0.1", int(m.group(1)))
        assert srv.request("GET", "/").status == 200
        wait_until(lambda: '"GET / HTTP/1.1" 200' in srv.stdout(), 10, what="access line")
        workers = [int(p) for p in re.findall(r"Booting worker with pid: (\d+)", srv.stderr())]
        srv.known_worker_pids.update(workers)
        assert srv.stop() == 0
        pids = {srv.master_pid: "MASTER"}
        pids.update({w: "WORKER" for w in workers})
        results.append((_norm(srv.stdout(), pids), _norm(srv.stderr(), pids)))
    assert results[0] == results[1]
    assert "CUSTOM INFO custom setup" in results[0][1]


def test_logger_class_overriding_access_is_refused(tmp_path):
    (tmp_path / "acc.py").write_text(
        "class L:\n    def __init__(self, cfg): pass\n    def access(self, *a): pass\n")
    r = run_cli(["--logger-class", "acc.L", "hello:app"], exe=RGUN, extra_env={"PYTHONPATH": str(tmp_path)})
    assert r.returncode == 1
    assert "overrides access()" in r.stderr


@pytest.mark.parametrize("args", [
    ["--log-config", "/nonexistent/log.ini"],
    ["--log-syslog", "--log-syslog-facility", "nope"],
    ["--log-syslog", "--log-syslog-to", "ftp://x"],
    ["--log-syslog", "--log-syslog-to", "udp://localhost:abc"],
    ["--logger-class", "no_such_module_x.Logger"],
])
def test_logging_startup_errors_match_gunicorn(args):
    ours = run_cli(args + ["hello:app"], exe=RGUN)
    theirs = run_cli(args + ["--no-control-socket", "hello:app"], exe=GUNICORN)
    assert ours.returncode == theirs.returncode == 1
    tail = lambda s: s.strip().splitlines()[-1]  # noqa: E731
    assert tail(ours.stderr) == tail(theirs.stderr)


def test_capture_output_sends_stdio_to_errorlog(spawn, tmp_path):
    app = tmp_path / "printer.py"
    app.write_text(
        "import sys\n"
        "def app(environ, start_response):\n"
        "    print('printed by the app', flush=True)\n"
        "    sys.stderr.write('stderr by the app\\n'); sys.stderr.flush()\n"
        "    start_response('200 OK', [('Content-Length', '2')])\n"
        "    return [b'ok']\n")
    for exe, name in ((RGUN, "rgun"), (GUNICORN, "gunicorn")):
        log = tmp_path / ("%s-error.log" % name)
        srv = spawn(["--capture-output", "--error-logfile", str(log), "printer:app"], exe=exe, name=name,
                    cwd=str(tmp_path), log_path=str(log))
        assert srv.request("GET", "/").status == 200
        srv.wait_log("stderr by the app")
        assert "printed by the app" in srv.log()
        assert srv.stop() == 0
        assert "printed by the app" not in srv.stdout()


def test_usr1_reopens_python_handlers(spawn, tmp_path):
    log = tmp_path / "access.log"
    conf = tmp_path / "conf.py"
    conf.write_text(
        "logconfig_dict = {'root': {'level': 'INFO', 'handlers': []}, 'handlers': {'f': {'class': 'logging.FileHandler', 'filename': %r,"
        " 'formatter': 'generic'}, 'error_console': {'class': 'logging.StreamHandler',"
        " 'formatter': 'generic', 'stream': 'ext://sys.stderr'}},"
        " 'loggers': {'gunicorn.access': {'handlers': ['f'], 'propagate': False, 'level': 'INFO'},"
        " 'gunicorn.error': {'handlers': ['error_console'], 'propagate': False, 'level': 'INFO'}}}\n"
        % str(log))
    srv = spawn(["-c", str(conf), "hello:app"])
    assert srv.request("GET", "/").status == 200
    wait_until(lambda: log.exists() and "GET / " in log.read_text(), 10, what="first access line")
    os.rename(log, str(log) + ".1")
    os.kill(srv.master_pid, signal.SIGUSR1)
    srv.wait_log("Handling signal: usr1")
    # The worker reopens on its own USR1; retry until a request lands in the new file.
    def landed():
        srv.request("GET", "/")
        return log.exists() and "GET / " in log.read_text()
    wait_until(landed, 10, interval=0.2, what="access line in the reopened file")


def test_unknown_loglevel_means_info(spawn):
    srv = spawn(["--log-level", "verbose", "hello:app"])
    assert "[INFO] Booting worker" in srv.log()
    assert "[DEBUG]" not in srv.log()
