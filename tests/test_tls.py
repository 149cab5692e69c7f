"""TLS (rustls) with gunicorn's SSL settings: https serving, wsgi.url_scheme, client certificates
required by cert_reqs, and startup errors for missing files. Certificates are made by the test
with the openssl command line tool."""

import json
import shutil
import socket
import ssl

import pytest

from support import RGUN, Server, make_certs, recv_all

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
