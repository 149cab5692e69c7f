"""StatsD (`statsd_host`, `statsd_prefix`, `dogstatsd_tags`, `enable_backlog_metric`): the
datagrams rgun sends, compared with gunicorn 27.0.1's, captured on a socket of our own.

Both servers run the same scenario at once, each with its own collector. Within one process the
order of the datagrams is fixed; master and worker interleave freely, so sequences are compared
per source (the master's `gunicorn.workers` gauge apart from the rest).
"""

import os
import signal
import socket

import pytest

from support import GUNICORN, RGUN, DatagramCollector, norm_statsd, wait_until

EXES = (("rgun", RGUN), ("gunicorn", GUNICORN))

HOOKS = r'''
import logging, os, socket

if os.environ.get("SD_PYMODE"):
    # Any Python-only logging setting: rgun's logs then go through Python logging.
    logconfig_dict = {"version": 1, "disable_existing_loggers": False}


def on_starting(server):
    server.log.info("gauge from hook", extra={"metric": "hook.gauge", "value": 7, "mtype": "gauge"})
    server.log.debug("", extra={"metric": "hook.zero", "value": 0, "mtype": "counter"})
    server.log.log(logging.ERROR, "via log", extra={"metric": "hook.t", "value": 1.25, "mtype": "timer"})
    server.log.info("unknown type", extra={"metric": "hook.x", "value": 1, "mtype": "nope"})
    server.log.info("no value", extra={"metric": "hook.none", "value": None, "mtype": "gauge"})
    server.log.warning("warning from hook")


def post_worker_init(worker):
    worker.log.increment("hook.count", 3)
    worker.log.decrement("hook.dec", 2)
    worker.log.histogram("hook.h", 1.5)
    worker.log.timer("hook.timer", 4)
    worker.log.gauge("hook.g", "x")
    worker.log.error("error %s", "from hook")
    worker.log.critical("critical from hook")
    try:
        1 / 0
    except ZeroDivisionError:
        worker.log.exception("exception from hook")
    # The gunicorn.error logger itself is not the Statsd logger: no counter, no metric.
    logging.getLogger("gunicorn.error").error("direct error")
    logging.getLogger("gunicorn.error").info("direct", extra={"metric": "direct.m", "value": 5,
                                                              "mtype": "counter"})
    worker.log.info("done", extra={"metric": "hook.done", "value": 1, "mtype": "counter"})
'''


def _pair(spawn, tmp_path, args, collector_path=None, env=None, bind="127.0.0.1:0"):
    """rgun and gunicorn with `args` (`{statsd}`: the collector's address, `{dir}`: tmp_path,
    `{label}`: rgun or gunicorn), each sending to its own collector: [(srv, collector)]."""
    out = []
    for label, exe in EXES:
        path = None if collector_path is None else str(tmp_path / ("%s-%s" % (label, collector_path)))
        coll = DatagramCollector(path)

        def fmt(x):
            return x.replace("{statsd}", coll.address).replace("{dir}", str(tmp_path)).replace("{label}", label)

        srv = spawn([fmt(x) for x in args] + ["wsgiapps:app"], exe=exe, name=label, start=False,
                    extra_env=env, bind=fmt(bind))
        srv.start(wait=False)
        out.append((srv, coll))
    for srv, _ in out:
        srv.wait_ready()
    return out


@pytest.fixture
def collectors():
    made = []
    yield made
    for c in made:
        c.close()


def _split(lines):
    """(the master's worker gauges, everything else), durations normalised."""
    gauges = [l for l in lines if ".workers:" in l]
    return gauges, [norm_statsd(l) for l in lines if ".workers:" not in l]


def test_requests_errors_prefix_and_tags(spawn, tmp_path):
    pair = _pair(spawn, tmp_path, ["--statsd-host", "{statsd}", "--statsd-prefix", "shop",
                                   "--dogstatsd-tags", "env:test,svc:x"])
    seen = {}
    try:
        for label, (srv, coll) in zip(("rgun", "gunicorn"), pair):
            assert srv.request("GET", "/hello").status == 200
            assert srv.request("GET", "/missing").status == 404
            assert srv.request("GET", "/raise").status == 500
            assert srv.raw(b"GET /raise_after HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 200")
            assert srv.raw(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").startswith(b"HTTP/1.1 400")
            assert srv.raw(b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
            seen[label] = coll.wait_for(lambda ls: sum(".requests:" in l for l in ls) >= 5
                                        and sum(".log.warning:" in l for l in ls) >= 2
                                        and any(".workers:" in l for l in ls))
    finally:
        for _, c in pair:
            c.close()
    tags = "|#env:test,svc:x"
    req = ["shop.gunicorn.request.duration:<ms>|ms" + tags, "shop.gunicorn.requests:1|c|@1.0" + tags]
    expected = (
        req + ["shop.gunicorn.request.status.200:1|c|@1.0" + tags]
        + req + ["shop.gunicorn.request.status.404:1|c|@1.0" + tags]
        + ["shop.gunicorn.log.exception:1|c|@1.0" + tags]
        + req + ["shop.gunicorn.request.status.500:1|c|@1.0" + tags]
        # An error after the headers went out: the access metrics first, then the exception.
        + req + ["shop.gunicorn.request.status.200:1|c|@1.0" + tags]
        + ["shop.gunicorn.log.exception:1|c|@1.0" + tags]
        # A client error with a request object is measured; a bad request line is not.
        + ["shop.gunicorn.log.warning:1|c|@1.0" + tags]
        + req + ["shop.gunicorn.request.status.400:1|c|@1.0" + tags]
        + ["shop.gunicorn.log.warning:1|c|@1.0" + tags]
    )
    for label, lines in seen.items():
        gauges, rest = _split(lines)
        assert gauges == ["shop.gunicorn.workers:1|g" + tags], (label, lines)
        assert rest == expected, (label, lines)
    assert all(".request.duration:" in l and l.endswith("|ms" + tags)
               for l in seen["rgun"] if "duration" in l)


@pytest.mark.parametrize("mode", ["rust-logs", "python-logs"])
def test_log_object_metrics_from_hooks(spawn, tmp_path, mode):
    """`server.log`/`worker.log` are gunicorn's Statsd logger: level counters, `extra=` metrics,
    the statsD methods; lines rgun logs itself are counted once, in both logging modes."""
    (tmp_path / "sdhooks.py").write_text(HOOKS)
    env = {"SD_PYMODE": "1"} if mode == "python-logs" else None
    pair = _pair(spawn, tmp_path, ["-c", "{dir}/sdhooks.py", "--statsd-host", "{statsd}"], env=env)
    seen = {}
    try:
        for label, (srv, coll) in zip(("rgun", "gunicorn"), pair):
            assert srv.request("GET", "/hello").status == 200
            seen[label] = coll.wait_for(lambda ls: any(".request.status.200:" in l for l in ls)
                                        and any(".workers:" in l for l in ls))
            srv.wait_log("done")
    finally:
        for _, c in pair:
            c.close()
    master = ["hook.gauge:7|g", "hook.zero:0|c|@1.0", "hook.t:1.25|ms", "gunicorn.log.warning:1|c|@1.0"]
    worker = ["hook.count:3|c|@1.0", "hook.dec:-2|c|@1.0", "hook.h:1.5|h", "hook.timer:4|ms", "hook.g:x|g",
              "gunicorn.log.error:1|c|@1.0", "gunicorn.log.critical:1|c|@1.0",
              "gunicorn.log.exception:1|c|@1.0", "hook.done:1|c|@1.0",
              "gunicorn.request.duration:<ms>|ms", "gunicorn.requests:1|c|@1.0",
              "gunicorn.request.status.200:1|c|@1.0"]
    for label, lines in seen.items():
        gauges, rest = _split(lines)
        assert gauges == ["gunicorn.workers:1|g"], (label, lines)
        assert rest == master + worker, (label, lines)
    for srv, _ in pair:
        log = srv.log() + srv.stdout()
        assert "direct error" in log and "critical from hook" in log, log


def test_workers_gauge_follows_the_count(spawn, tmp_path):
    pair = _pair(spawn, tmp_path, ["--statsd-host", "{statsd}", "--log-level", "debug"])
    try:
        for srv, coll in pair:
            coll.wait_line("gunicorn.workers:1|g")
            os.kill(srv.master_pid, signal.SIGTTIN)
            coll.wait_line("gunicorn.workers:2|g")
            os.kill(srv.master_pid, signal.SIGTTOU)
            coll.wait_line("gunicorn.workers:1|g", count=2)
            srv.wait_log(r"\[DEBUG\] 1 workers\n", count=2)
        for srv, coll in pair:
            assert [l for l in coll.lines if "workers" in l] == [
                "gunicorn.workers:1|g", "gunicorn.workers:2|g", "gunicorn.workers:1|g"]
    finally:
        for _, c in pair:
            c.close()


def test_backlog_counts_waiting_connections(spawn, tmp_path):
    """One sync worker busy with a slow request: two more connections wait in the backlog."""
    pair = _pair(spawn, tmp_path, ["--statsd-host", "{statsd}", "--enable-backlog-metric",
                                   "--log-level", "debug", "--graceful-timeout", "1"])
    held = []
    try:
        for srv, coll in pair:
            coll.wait_line("gunicorn.backlog:0|h")
            srv.wait_log(r"\[DEBUG\] socket backlog: 0\n")
            mark = str(tmp_path / ("%d.mark" % srv.master_pid))
            busy = srv.connect()
            busy.sendall(("GET /slow?s=30&mark=%s HTTP/1.1\r\nHost: x\r\n\r\n" % mark).encode())
            held.append(busy)
            wait_until(lambda: os.path.exists(mark), 10, what="the slow request to start")
            held += [srv.connect(), srv.connect()]
            coll.wait_line("gunicorn.backlog:2|h")
            srv.wait_log(r"\[DEBUG\] socket backlog: 2\n")
    finally:
        for s in held:
            s.close()
        for _, c in pair:
            c.close()


def test_no_backlog_metric_with_a_unix_listener(spawn, tmp_path):
    """gunicorn sums `get_backlog()` over the listeners and a unix one counts -1: with one,
    nothing is ever reported. The gauge comes first in the same pass, so after the TTOU gauge
    every pass that could have reported a backlog has been seen."""
    pair = _pair(spawn, tmp_path, ["--statsd-host", "{statsd}", "--enable-backlog-metric"],
                 bind="unix:{dir}/{label}.sock")
    try:
        for srv, coll in pair:
            os.kill(srv.master_pid, signal.SIGTTIN)
            coll.wait_line("gunicorn.workers:2|g")
            os.kill(srv.master_pid, signal.SIGTTOU)
            coll.wait_line("gunicorn.workers:1|g", count=2)
            assert not [l for l in coll.lines if "backlog" in l], coll.lines
    finally:
        for _, c in pair:
            c.close()


def test_send_errors_are_logged_and_ignored(spawn, tmp_path):
    """Nothing listens on the port: each failed send (ECONNREFUSED, reported on the send after an
    ICMP error) is a warning with the exception, not counted, and the server keeps serving."""
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    servers = [spawn(["--statsd-host", "127.0.0.1:%d" % port, "wsgiapps:app"], exe=exe, name=label)
               for label, exe in EXES]
    for srv in servers:
        for _ in range(3):
            assert srv.request("GET", "/hello").status == 200
        srv.wait_log(r"\[WARNING\] Error sending message to statsd\nTraceback \(most recent call last\):\n"
                     r"(  .*\n)*ConnectionRefusedError: \[Errno 111\] Connection refused\n")


def test_non_ascii_tags_fail_every_send(spawn, tmp_path):
    servers = [spawn(["--statsd-host", "127.0.0.1:9", "--dogstatsd-tags", "k:\u00e9", "wsgiapps:app"],
                     exe=exe, name=label) for label, exe in EXES]
    for srv in servers:
        assert srv.request("GET", "/hello").status == 200
        srv.wait_log(r"UnicodeEncodeError: 'ascii' codec can't encode character '\\xe9' in position 2: "
                     r"ordinal not in range\(128\)\n", count=3)


def test_unix_datagram_socket(spawn, tmp_path):
    pair = _pair(spawn, tmp_path, ["--statsd-host", "{statsd}"], collector_path="sd.sock")
    try:
        for srv, coll in pair:
            assert coll.address.startswith("unix:")
            assert srv.request("GET", "/hello").status == 200
            coll.wait_line("gunicorn.request.status.200:1|c|@1.0")
    finally:
        for _, c in pair:
            c.close()


MARK_HOOK = r'''
import socket

def post_request(worker, req, environ, resp):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"MARK", ("127.0.0.1", %d))
    s.close()
'''


@pytest.mark.parametrize("case", ["custom-logger-class", "unix-path-missing"])
def test_statsd_silently_off(spawn, tmp_path, case):
    """A custom logger_class is not swapped for Statsd, so nothing is sent; a unix path that
    does not exist when the master starts fails gunicorn's connect, so nothing is sent ever (and
    nothing is logged). The post_request hook's own datagram comes after any access metrics."""
    (tmp_path / "sdlogger.py").write_text(
        "from gunicorn import glogging\n\nclass L(glogging.Logger):\n    pass\n")
    for label, exe in EXES:
        coll = DatagramCollector()
        try:
            (tmp_path / "mark.py").write_text(MARK_HOOK % int(coll.address.rsplit(":", 1)[1]))
            if case == "custom-logger-class":
                args = ["--statsd-host", coll.address, "--logger-class", "sdlogger.L"]
            else:
                args = ["--statsd-host", "unix:" + str(tmp_path / "nobody.sock")]
            srv = spawn(["-c", str(tmp_path / "mark.py"), "--pythonpath", str(tmp_path)] + args
                        + ["wsgiapps:app"], exe=exe, name=label)
            assert srv.request("GET", "/hello").status == 200
            assert srv.request("GET", "/raise").status == 500
            coll.wait_line("MARK", count=2)
            assert coll.lines == ["MARK", "MARK"], (label, coll.lines)
            assert "to statsd" not in srv.log(), srv.log()
        finally:
            coll.close()


def test_naming_gunicorns_statsd_class(spawn, tmp_path):
    pair = _pair(spawn, tmp_path, ["--statsd-host", "{statsd}",
                                   "--logger-class", "gunicorn.instrument.statsd.Statsd"])
    try:
        for srv, coll in pair:
            assert srv.request("GET", "/missing").status == 404
            coll.wait_line("gunicorn.request.status.404:1|c|@1.0")
    finally:
        for _, c in pair:
            c.close()


def test_reload_keeps_the_first_statsd_settings(spawn, tmp_path):
    """gunicorn builds its Statsd logger once; a SIGHUP re-runs the logging setup only."""
    pair = []
    try:
        for label, exe in EXES:
            coll = DatagramCollector()
            conf = tmp_path / ("%s.conf.py" % label)
            conf.write_text("statsd_host = %r\nstatsd_prefix = 'one'\n" % coll.address)
            srv = spawn(["-c", str(conf), "wsgiapps:app"], exe=exe, name=label)
            pair.append((srv, coll))
            conf.write_text("statsd_host = %r\nstatsd_prefix = 'two'\n" % coll.address)
            os.kill(srv.master_pid, signal.SIGHUP)
            srv.wait_log(r"Booting worker with pid", count=2)
            wait_until(lambda: len(srv.live_worker_pids()) == 1, 10, what="the old worker to exit")
            assert srv.request("GET", "/hello").status == 200
            lines = coll.wait_line("one.gunicorn.request.status.200:1|c|@1.0")
            assert not [l for l in lines if l.startswith("two.")], lines
    finally:
        for _, c in pair:
            c.close()


def test_prefix_rule_matches_gunicorn():
    """The trailing-dot rule, against gunicorn's own Statsd class (a 1-character prefix and
    `x.` keep no added dot: gunicorn's regex needs two characters before the dots)."""
    from gunicorn.config import Config
    from gunicorn.instrument.statsd import Statsd

    from rgun import _statsd

    for prefix in ["", "a", "ab", "shop", "shop.", "shop...", "a.", "x..", ".", "a.b", "a.b.."]:
        cfg = Config()
        cfg.set("statsd_prefix", prefix)
        cfg.set("statsd_host", "localhost:9")
        fd, ours, tags, err = _statsd.setup(cfg)
        os.close(fd)
        assert ours == Statsd(cfg).prefix, prefix
        assert (tags, err) == ("", None)
