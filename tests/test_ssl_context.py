"""The `ssl_context` server hook: TLS served by the hook's own `ssl.SSLContext` (Python's ssl
module over memory BIOs in rgun), compared with gunicorn 27.0.1 case by case.

The hook is called in the worker for every connection, with the `cfg` object and a factory for
gunicorn's default context; every case runs the same configuration under both servers and
asserts the same result. Certificates are made with the openssl command line tool.
"""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess

import pytest

from support import GUNICORN, RGUN, RawConn, make_certs, recv_all, wait_until

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")

EXES = (("rgun", RGUN), ("gunicorn", GUNICORN))
WORKERS = ["sync", "gthread"]

HOOK_LOG = '''
import os


def _note(conf):
    with open(os.environ["SSLCTX_CALLS"], "a") as f:
        f.write("%d %s\\n" % (os.getpid(), os.path.basename(conf.certfile)))
'''


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("sslctx-certs"),
                      servers=(("cert.pem", "cert.key", "localhost"), ("other.pem", "other.key", "other-cert")),
                      ca_cn="sslctx-ca")


def start_pair(spawn, tmp_path, certs, hook, *args, worker="sync"):
    """The same config (HOOK_LOG + `hook`) under rgun and gunicorn; each logs its hook calls."""
    servers = []
    for label, exe in EXES:
        conf = tmp_path / ("%s.conf.py" % label)
        conf.write_text(HOOK_LOG + hook.replace("{certs}", str(certs)))
        calls = tmp_path / ("%s.calls" % label)
        srv = spawn(["-c", str(conf), "-k", worker, "--certfile", str(certs / "cert.pem"),
                     "--keyfile", str(certs / "cert.key"), *args, "wsgiapps:app"],
                    exe=exe, name=label, extra_env={"SSLCTX_CALLS": str(calls)})
        srv.calls = calls
        servers.append(srv)
    return servers


def both(servers, fn):
    """fn(server) under rgun and gunicorn; asserts the same result and returns it."""
    r, g = (fn(s) for s in servers)
    assert r == g, "rgun: %r\ngunicorn: %r" % (r, g)
    return r


def client_ctx(certs, cafile="cert.pem", max_version=None, alpn=None, client_cert=False, ciphers=None):
    c = ssl.create_default_context(cafile=str(certs / cafile))
    if max_version:
        c.maximum_version = max_version
    if alpn:
        c.set_alpn_protocols(alpn)
    if client_cert:
        c.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
    if ciphers:
        c.set_ciphers(ciphers)
    return c


def tls_conn(srv, ctx):
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        return ctx.wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise


def tls_get(ctx, path="/hello"):
    """GET over a new connection: ("ok", status, body, tls version, ALPN) or ("failed", reason)."""
    def fn(srv):
        try:
            with tls_conn(srv, ctx) as s:
                c = RawConn(s)
                c.send_request("GET", path, headers=[("Connection", "close")])
                r = c.read_response()
                return "ok", r.status, r.body, s.version(), s.selected_alpn_protocol()
        except ssl.SSLError as e:
            return "failed", e.reason
    return fn


def calls(srv, n=None):
    """The hook calls so far as [(role, certfile name)] (role: master or worker)."""
    def read():
        try:
            return [l.split() for l in srv.calls.read_text().splitlines()]
        except FileNotFoundError:
            return []
    if n is not None:
        wait_until(lambda: len(read()) >= n, 10, what="%d hook calls by %s" % (n, srv.name))
    workers = set(srv.worker_pids())
    return [("master" if int(pid) == srv.master_pid else "worker" if int(pid) in workers else pid, name)
            for pid, name in read()]


def log_lines(srv, level, needle):
    """The error log lines at `level` containing `needle`, without time and pid."""
    out = []
    for line in srv.log().splitlines():
        m = re.match(r"\[[^]]+\] \[\d+\] \[(\w+)\] (.*)", line)
        if m and m.group(1) == level and needle in m.group(2):
            out.append(m.group(2))
    return out


OTHER_CERT = '''
import ssl


def ssl_context(conf, default_ssl_context_factory):
    _note(conf)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain("{certs}/other.pem", "{certs}/other.key")
    return ctx
'''


@pytest.mark.parametrize("worker", WORKERS)
def test_hook_certificate_is_served(spawn, tmp_path, certs, worker):
    """The hook's context serves another certificate than certfile; the hook runs in the worker,
    once per connection."""
    servers = start_pair(spawn, tmp_path, certs, OTHER_CERT, worker=worker)
    res = both(servers, tls_get(client_ctx(certs, cafile="other.pem")))
    assert res[:3] == ("ok", 200, b"Hello, World!")

    def subject(srv):
        with tls_conn(srv, client_ctx(certs, "other.pem")) as s:
            return s.getpeercert()["subject"]
    assert both(servers, subject) == ((("commonName", "other-cert"),),)
    assert both(servers, tls_get(client_ctx(certs, cafile="cert.pem"))) == ("failed", "CERTIFICATE_VERIFY_FAILED")
    assert both(servers, lambda s: calls(s, 3)) == [("worker", "cert.pem")] * 3


def test_hook_added_by_reload(spawn, tmp_path, certs):
    """SIGHUP with a config that now defines the hook: the new workers serve its context."""
    servers = start_pair(spawn, tmp_path, certs, "")
    assert both(servers, tls_get(client_ctx(certs, cafile="other.pem"))) == ("failed", "CERTIFICATE_VERIFY_FAILED")
    for srv in servers:
        (tmp_path / ("%s.conf.py" % srv.name)).write_text(HOOK_LOG + OTHER_CERT.replace("{certs}", str(certs)))
        os.kill(srv.master_pid, signal.SIGHUP)
        srv.wait_log(r"Booting worker with pid", count=2)
        wait_until(lambda: len(srv.live_worker_pids()) == 1, 10, what="the old worker gone")
    assert both(servers, tls_get(client_ctx(certs, cafile="other.pem")))[:3] == ("ok", 200, b"Hello, World!")


MIN_TLS13 = '''
import ssl


def ssl_context(conf, default_ssl_context_factory):
    ctx = default_ssl_context_factory()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx
'''


@pytest.mark.parametrize("worker", WORKERS)
def test_minimum_version_rejects_older_clients(spawn, tmp_path, certs, worker):
    """A TLS 1.2 client is refused; the log names OpenSSL's reason exactly as gunicorn's does
    (down to the `_ssl.c` line: gthread shakes hands before reading, sync inside the read)."""
    servers = start_pair(spawn, tmp_path, certs, MIN_TLS13, worker=worker)
    res = both(servers, tls_get(client_ctx(certs)))
    assert res[:4] == ("ok", 200, b"Hello, World!", "TLSv1.3")
    failed = both(servers, tls_get(client_ctx(certs, max_version=ssl.TLSVersion.TLSv1_2)))
    assert failed[0] == "failed"
    # gunicorn's handle_error for the SSLError: the same OpenSSL message under both.
    warned = both(servers, lambda s: wait_until(
        lambda: log_lines(s, "WARNING", "Invalid request from ip=127.0.0.1"), 10, what="warning"))
    assert "UNSUPPORTED_PROTOCOL" in warned[0] or "VERSION" in warned[0], warned


ALPN = '''
def ssl_context(conf, default_ssl_context_factory):
    ctx = default_ssl_context_factory()
    ctx.set_alpn_protocols(["x-rgun-test", "http/1.1"])
    return ctx
'''


def test_alpn_set_by_the_hook(spawn, tmp_path, certs):
    servers = start_pair(spawn, tmp_path, certs, ALPN)
    res = both(servers, tls_get(client_ctx(certs, alpn=["http/1.1", "x-rgun-test"])))
    assert res == ("ok", 200, b"Hello, World!", "TLSv1.3", "x-rgun-test")
    assert both(servers, tls_get(client_ctx(certs, alpn=["http/1.1"])))[4] == "http/1.1"


DEFAULT = '''
def ssl_context(conf, default_ssl_context_factory):
    _note(conf)
    return default_ssl_context_factory()
'''


@pytest.mark.parametrize("worker", WORKERS)
def test_bodies_and_large_responses(spawn, tmp_path, certs, worker):
    """Request bodies and large responses through the Python ssl engine; gthread keeps the
    connection alive (one hook call for two requests)."""
    servers = start_pair(spawn, tmp_path, certs, DEFAULT, worker=worker)
    body = os.urandom(3 * 1024 * 1024 + 17)
    big = 20 * 1000 * 1000 + 3
    expect = (bytes(range(256)) * 256 * (big // 65536 + 1))[:big]

    def exchange(srv):
        with tls_conn(srv, client_ctx(certs)) as s:
            c = RawConn(s)
            c.send_request("POST", "/echo", body=body)
            r1 = c.read_response()
            if worker == "sync":
                s2 = tls_conn(srv, client_ctx(certs))
                c.close()
                c = RawConn(s2)
            c.send_request("GET", "/big?n=%d" % big, headers=[("Connection", "close")])
            r2 = c.read_response()
            c.close()
        return r1.status, r1.body == body, r2.status, len(r2.body), r2.body == expect
    assert both(servers, exchange) == (200, True, 200, big, True)
    n = 2 if worker == "sync" else 1
    assert both(servers, lambda s: calls(s, n)) == [("worker", "cert.pem")] * n


def test_default_factory_applies_the_ssl_settings(spawn, tmp_path, certs):
    """The factory's context: ca_certs, cert_reqs and ciphers as gunicorn applies them."""
    servers = start_pair(spawn, tmp_path, certs, DEFAULT, "--ca-certs", str(certs / "ca.pem"), "--cert-reqs", "2",
                         "--ciphers", "ECDHE-RSA-AES128-GCM-SHA256")
    tls12 = ssl.TLSVersion.TLSv1_2
    assert both(servers, tls_get(client_ctx(certs, client_cert=True)))[:3] == ("ok", 200, b"Hello, World!")
    assert both(servers, tls_get(client_ctx(certs, client_cert=True, max_version=tls12)))[3] == "TLSv1.2"
    refused = both(servers, tls_get(client_ctx(certs, client_cert=True, max_version=tls12,
                                               ciphers="ECDHE-RSA-AES256-GCM-SHA384")))
    assert refused[0] == "failed"

    def no_client_cert(srv):
        # TLS 1.3: the server's verdict on the missing certificate arrives after the handshake.
        try:
            return tls_get(client_ctx(certs))(srv)[0]
        except (ConnectionError, OSError):
            return "failed"
    assert both(servers, no_client_cert) == "failed"


FAILING = {
    "raises": "def ssl_context(conf, default_ssl_context_factory):\n    raise RuntimeError('no context')\n",
    "returns_none": "def ssl_context(conf, default_ssl_context_factory):\n    return None\n",
    "ssl_error": "import ssl\n\ndef ssl_context(conf, default_ssl_context_factory):\n"
                 "    raise ssl.SSLError('custom')\n",
    "missing_file": "def ssl_context(conf, default_ssl_context_factory):\n"
                    "    ctx = default_ssl_context_factory()\n    ctx.load_cert_chain('/nonexistent.pem')\n"
                    "    return ctx\n",
}


@pytest.mark.parametrize("worker", WORKERS)
@pytest.mark.parametrize("case", sorted(FAILING))
def test_hook_failure(spawn, tmp_path, certs, worker, case):
    """A failing hook is a failed request, as in gunicorn's handle(): the error page is written on
    the socket before any TLS (500, or 403 for an SSLError; none for a socket error), the error
    logged, the worker keeps serving."""
    servers = start_pair(spawn, tmp_path, certs, FAILING[case], worker=worker)

    def answer(srv):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        try:
            s.sendall(b"\x16\x03\x01\x00\x00")  # gthread wraps the socket once data arrived
            data = recv_all(s, 10)
        finally:
            s.close()
        return re.sub(rb"\r\nDate: [^\r]*", b"", data)
    page = both(servers, answer)
    expect = {"raises": b"HTTP/1.1 500 Internal Server Error\r\n", "returns_none": b"HTTP/1.1 500 Internal Server",
              "ssl_error": b"HTTP/1.1 403 Forbidden\r\n", "missing_file": b""}[case]
    assert page.startswith(expect) and (expect or page == b""), page

    def logged(srv):
        level, needle = {"raises": ("ERROR", "Error handling request (no URI read)"),
                         "returns_none": ("ERROR", "Error handling request (no URI read)"),
                         "ssl_error": ("WARNING", "Invalid request from ip=127.0.0.1: ('custom',)"),
                         "missing_file": ("ERROR", "Socket error processing request.")}[case]
        lines = wait_until(lambda: log_lines(srv, level, needle), 10, what=needle)
        last = {"raises": "RuntimeError: no context",
                "returns_none": "AttributeError: 'NoneType' object has no attribute 'wrap_socket'",
                "ssl_error": "", "missing_file": "FileNotFoundError: [Errno 2] No such file or directory"}[case]
        wait_until(lambda: last in srv.log(), 10, what=last)
        return lines[0], len(srv.worker_pids())
    assert both(servers, logged)[1] == 1


RAGGED = '''
def ssl_context(conf, default_ssl_context_factory):
    return default_ssl_context_factory()
'''


@pytest.mark.parametrize("worker", WORKERS)
@pytest.mark.parametrize("engine", ["hook", "rustls"])
@pytest.mark.parametrize("suppress", [True, False])
def test_suppress_ragged_eofs(spawn, tmp_path, certs, suppress, engine, worker):
    """A client that closes TCP without close_notify in the middle of a request head: a clean
    EOF with suppress_ragged_eofs (premature disconnection), an SSL EOF error without. With the
    hook (Python's ssl) and without (rustls)."""
    hook = (RAGGED if engine == "hook" else "") + "\nsuppress_ragged_eofs = %r\n" % suppress
    servers = start_pair(spawn, tmp_path, certs, hook, "--log-level", "debug", worker=worker)

    def ragged(srv):
        # TLS 1.2: no session tickets arrive after the handshake, so closing with nothing
        # unread sends a FIN, not an RST.
        s = tls_conn(srv, client_ctx(certs, max_version=ssl.TLSVersion.TLSv1_2))
        s.sendall(b"GET /hello HTTP/1.1\r\nHo")
        s.close()  # no close_notify
        needle = "Ignored premature client disconnection." if suppress else "ssl connection closed"
        return wait_until(lambda: log_lines(srv, "DEBUG", needle), 10, what=needle)[0]
    line = both(servers, ragged)
    assert line.startswith("Ignored premature" if suppress else "ssl connection closed"), line


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_and_openssl_clients(spawn, tmp_path, certs):
    """Other TLS stacks complete the handshake with the hook's context: curl and openssl s_client."""
    servers = start_pair(spawn, tmp_path, certs, OTHER_CERT, worker="gthread")

    def curl(srv):
        p = subprocess.run(["curl", "-sS", "--cacert", str(certs / "other.pem"), "--data-binary", "x" * 100000,
                            "https://localhost:%d/echo" % srv.port], capture_output=True, timeout=20)
        return p.returncode, len(p.stdout), p.stderr
    assert both(servers, curl) == (0, 100000, b"")

    def s_client(srv):
        p = subprocess.run(["openssl", "s_client", "-quiet", "-verify_return_error", "-CAfile", str(certs / "other.pem"),
                            "-connect", "127.0.0.1:%d" % srv.port, "-servername", "localhost"],
                           input=b"GET /hello HTTP/1.0\r\n\r\n", capture_output=True, timeout=20)
        return p.stdout.split(b"\r\n", 1)[0], p.stdout.endswith(b"Hello, World!")
    assert both(servers, s_client) == (b"HTTP/1.0 200 OK", True)
