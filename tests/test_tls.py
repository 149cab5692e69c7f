"""TLS (rustls) with gunicorn's SSL settings: https serving, wsgi.url_scheme, client certificates
required by cert_reqs, and startup errors for missing files. Certificates are made by the test
with the openssl command line tool."""

import json
import re
import shutil
import socket
import ssl

import pytest

from support import GUNICORN, RGUN, Server, make_certs, recv_all, wait_until

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


def _get(port, certs, path="/", client_cert=False):
    ctx = ssl.create_default_context(cafile=str(certs / "cert.pem"))
    if client_cert:
        ctx.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path.encode())
            data = recv_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_https_serves_with_https_scheme(tmp_path, certs, worker):
    srv = Server(["-k", worker, "--certfile", str(certs / "cert.pem"), "--keyfile", str(certs / "key.pem"),
                  "wsgiapps:app"], tmpdir=tmp_path, exe=RGUN).start()
    try:
        assert srv.listen_url.startswith("https://127.0.0.1:")
        head, body = _get(srv.port, certs, "/environ")
        assert head.startswith("HTTP/1.1 200"), head
        env = json.loads(body)
        assert env["wsgi.url_scheme"] == "https"
    finally:
        srv.stop()


def test_client_certificate_required(tmp_path, certs):
    srv = Server(["--certfile", str(certs / "cert.pem"), "--keyfile", str(certs / "key.pem"),
                  "--ca-certs", str(certs / "ca.pem"), "--cert-reqs", "2", "wsgiapps:app"],
                 tmpdir=tmp_path, exe=RGUN).start()
    try:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            _get(srv.port, certs, "/")
        head, _ = _get(srv.port, certs, "/hello", client_cert=True)
        assert head.startswith("HTTP/1.1 200"), head
    finally:
        srv.stop()


def test_missing_certfile_is_a_startup_error(tmp_path):
    srv = Server(["--certfile", str(tmp_path / "nope.pem"), "wsgiapps:app"], tmpdir=tmp_path, exe=RGUN)
    srv.start(wait=False)
    assert srv.wait_exit(10) == 1
    assert 'certfile "%s" does not exist' % (tmp_path / "nope.pem") in srv.stderr()


def test_ciphers_restrict_tls12_suites(tmp_path, certs):
    srv = Server(["--certfile", str(certs / "cert.pem"), "--keyfile", str(certs / "key.pem"),
                  "--ciphers", "ECDHE-RSA-AES128-GCM-SHA256", "wsgiapps:app"], tmpdir=tmp_path, exe=RGUN).start()
    try:
        def handshake(client_ciphers):
            ctx = ssl.create_default_context(cafile=str(certs / "cert.pem"))
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers(client_ciphers)
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    return s.cipher()[0]

        assert handshake("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384") == "ECDHE-RSA-AES128-GCM-SHA256"
        with pytest.raises(ssl.SSLError):
            handshake("ECDHE-RSA-AES256-GCM-SHA384")
    finally:
        srv.stop()


def test_cipher_string_selecting_nothing_is_a_startup_error(tmp_path, certs):
    srv = Server(["--certfile", str(certs / "cert.pem"), "--keyfile", str(certs / "key.pem"),
                  "--ciphers", "RC4-MD5", "wsgiapps:app"], tmpdir=tmp_path, exe=RGUN)
    srv.start(wait=False)
    assert srv.wait_exit(10) == 1
    assert "No cipher can be selected." in srv.stderr()


def _plain(port, data):
    """What a client that does not speak TLS receives."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        return recv_all(s)


def _tls_failure(port, certs, **opts):
    """The reason of the client's SSLError for a handshake that must fail."""
    if opts.get("verify"):
        ctx = ssl.create_default_context()  # does not trust the test certificate
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if "max_version" in opts:
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = opts["max_version"]
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    if "ciphers" in opts:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(opts["ciphers"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                s.recv(100)
        except ssl.SSLError as e:
            return e.reason
    return "handshake succeeded"


def _failed_sessions(srv, certs):
    """Each kind of failed session once: what the client saw, and the server's log lines."""
    seen = []
    cases = [
        ("plain http", lambda: _plain(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")),
        ("garbage", lambda: _plain(srv.port, b"hello there\r\n\r\n")),
        ("proxy", lambda: _plain(srv.port, b"CONNECT x:443 HTTP/1.1\r\n\r\n")),
        ("tls 1.1", lambda: _tls_failure(srv.port, certs, max_version=ssl.TLSVersion.TLSv1_1)),
        ("no shared cipher", lambda: _tls_failure(srv.port, certs, ciphers="AES128-SHA")),
        ("untrusted certificate", lambda: _tls_failure(srv.port, certs, verify=True)),
    ]
    for i, (name, run) in enumerate(cases):
        seen.append((name, run()))
        wait_until(lambda: srv.log().count("Invalid request from") > i, 10, what=f"{name} logged")
    lines = [re.sub(r"^\[[^]]*\] \[\d+\] ", "", line) for line in srv.log().splitlines()
             if "SSL" in line or "Invalid request" in line or "Failed to send" in line]
    # CPython's source location in the SSLError text (rgun names the OpenSSL reason only).
    lines = [re.sub(r" \(_ssl\.c:\d+\)$", "", line) for line in lines if not line.startswith(" ")]
    return seen, lines


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_failed_handshakes_same_as_gunicorn(tmp_path, certs, worker):
    """A client that speaks plain HTTP (or no TLS) to an https port gets nothing back and the
    log says what OpenSSL would have; TLS clients get OpenSSL's choice of alert."""
    out = {}
    for name, exe in (("rgun", RGUN), ("gunicorn", GUNICORN)):
        srv = Server(["-k", worker, "--log-level", "debug", "--certfile", str(certs / "cert.pem"),
                      "--keyfile", str(certs / "key.pem"), "wsgiapps:app"], tmpdir=tmp_path, exe=exe,
                     name=name).start()
        try:
            out[name] = _failed_sessions(srv, certs)
        finally:
            srv.stop()
    assert out["rgun"][0] == out["gunicorn"][0]
    assert out["rgun"][1] == out["gunicorn"][1]
    assert out["rgun"][0][0] == ("plain http", b"")
    assert "[WARNING] Invalid request from ip=127.0.0.1: [SSL: HTTP_REQUEST] http request" in out["rgun"][1]
