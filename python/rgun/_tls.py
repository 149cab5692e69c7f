"""The `ssl_context` server hook: gunicorn's `sock.ssl_context(conf)`, and the memory-BIO
session rgun's Rust side drives over the client socket (src/worker/pytls.rs).

Only used when the config defines `ssl_context`; otherwise TLS is rustls, configured from the
SSL settings, and no Python runs per connection.
"""

import ssl


def ssl_context(conf):
    """Calls the hook as gunicorn does: ``conf.ssl_context(conf, default_ssl_context_factory)``."""

    def default_ssl_context_factory():
        # gunicorn's default: the SSL settings applied to a CLIENT_AUTH default context. (It
        # also sets ALPN when http_protocols includes h2, which rgun does not serve.)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=conf.ca_certs)
        context.load_cert_chain(certfile=conf.certfile, keyfile=conf.keyfile)
        context.verify_mode = conf.cert_reqs
        if conf.ciphers:
            context.set_ciphers(conf.ciphers)
        return context

    return conf.ssl_context(conf, default_ssl_context_factory)


def server_session(conf):
    """A server-side ``SSLObject`` for one connection, with its incoming and outgoing BIOs."""
    context = ssl_context(conf)
    # gunicorn calls ``wrap_socket`` on what the hook returned: anything without it fails with
    # the same AttributeError there.
    _ = context.wrap_socket
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    return context.wrap_bio(incoming, outgoing, server_side=True), incoming, outgoing
