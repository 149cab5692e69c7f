//! TLS for the listeners, with two engines behind one [`TlsConn`] interface:
//! * rustls (the default): gunicorn's SSL settings (`certfile`, `keyfile`, `ca_certs`,
//!   `cert_reqs`, `ciphers`, `suppress_ragged_eofs`) turned into a server configuration once;
//! * Python's `ssl` module, when the config defines the `ssl_context` hook: the hook's
//!   `SSLContext`, made per connection as gunicorn does (`pytls.rs`).
//!
//! Either way the record layer is driven over the connection's raw descriptor, so the same code
//! serves the async head reads and the blocking reads and writes made while the app runs.

use std::io::{self, Read, Write};
use std::os::fd::RawFd;
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, recv, send};
use pyo3::{Py, PyAny};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::pytls::{PyTlsConn, Refused};
use super::readbuf::ReadBuf;
use super::tls_errors;
use crate::config::Config;
use crate::observe;

/// The TLS side of the listeners, shared by every connection of a worker.
#[derive(Clone, Debug)]
pub struct Tls {
    engine: Engine,
    /// `suppress_ragged_eofs`: a TCP close without `close_notify` counts as a clean EOF.
    pub suppress_ragged_eofs: bool,
    /// The hook's sessions shake hands before the first read, as gunicorn's gthread worker
    /// and `do_handshake_on_connect` do (its sync worker lets the first read do it).
    explicit_handshake: bool,
}

#[derive(Clone, Debug)]
enum Engine {
    Rustls(Arc<ServerConfig>),
    /// The `ssl_context` hook, called in the worker for each connection.
    PythonHook,
}

impl Tls {
    /// Whether connections call the `ssl_context` hook (Python's `ssl`), not rustls.
    pub fn calls_hook(&self) -> bool {
        matches!(self.engine, Engine::PythonHook)
    }

    /// A new connection's session. `worker` is the hook objects' `worker` (its `cfg` is what
    /// the hook receives), `ip` the peer as gunicorn logs it. On failure the log lines are
    /// written already.
    pub fn session(&self, worker: &Py<PyAny>, ip: &str) -> Result<TlsConn, Refused> {
        match &self.engine {
            Engine::Rustls(config) => match rustls::ServerConnection::new(config.clone()) {
                Ok(conn) => Ok(TlsConn::Rustls(RustlsConn {
                    conn,
                    ragged_ok: self.suppress_ragged_eofs,
                    eof: false,
                    ip: ip.into(),
                    first: [0; tls_errors::FIRST],
                    first_len: 0,
                    failed: false,
                })),
                Err(e) => {
                    observe::debug(&format!("Error processing SSL request. {e}"));
                    Err(Refused { page: None })
                }
            },
            Engine::PythonHook => PyTlsConn::new(
                worker,
                self.suppress_ragged_eofs,
                self.explicit_handshake,
                ip,
            )
            .map(TlsConn::Python),
        }
    }
}

fn exists(path: &str, what: &str) -> Result<(), String> {
    if std::path::Path::new(path).exists() {
        Ok(())
    } else {
        Err(format!("{what} \"{path}\" does not exist"))
    }
}

/// Builds the TLS configuration when `certfile` or `keyfile` is set (gunicorn's `is_ssl`).
/// Errors carry gunicorn's wording where it has one.
pub fn from_config(cfg: &Config) -> Result<Option<Tls>, String> {
    let (certfile, keyfile) = (cfg.str("certfile"), cfg.str("keyfile"));
    if certfile.is_none() && keyfile.is_none() {
        return Ok(None);
    }
    if cfg.object("ssl_context").is_some() {
        // gunicorn checks only that the files exist at start-up; the hook makes the context
        // (from these files or others) for each connection, in the worker.
        if let Some(f) = certfile {
            exists(f, "certfile")?;
        }
        if let Some(f) = keyfile {
            exists(f, "keyfile")?;
        }
        return Ok(Some(Tls {
            engine: Engine::PythonHook,
            suppress_ragged_eofs: cfg.bool("suppress_ragged_eofs"),
            explicit_handshake: cfg.is_gthread() || cfg.bool("do_handshake_on_connect"),
        }));
    }
    let certfile = certfile.ok_or("certfile is required when keyfile is set")?;
    exists(certfile, "certfile")?;
    let keyfile = keyfile.unwrap_or(certfile);
    exists(keyfile, "keyfile")?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certfile)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("cannot read certfile \"{certfile}\": {e}"))?;
    if certs.is_empty() {
        return Err(format!("no certificate found in certfile \"{certfile}\""));
    }
    let key = PrivateKeyDer::from_pem_file(keyfile)
        .map_err(|e| format!("cannot read keyfile \"{keyfile}\": {e}"))?;
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(spec) = cfg.str("ciphers") {
        // OpenSSL cipher strings pick TLS 1.2 suites; TLS 1.3 suites always stay available.
        let picked = super::ciphers::select(spec)?;
        provider
            .cipher_suites
            .retain(|s| matches!(s, rustls::SupportedCipherSuite::Tls13(_)));
        provider.cipher_suites.extend(picked);
    }
    let provider = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let cert_reqs = cfg.int("cert_reqs");
    let builder = if cert_reqs > 0 {
        let ca = cfg
            .str("ca_certs")
            .ok_or("cert_reqs asks for client certificates but ca_certs is not set")?;
        exists(ca, "ca_certs")?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("cannot read ca_certs \"{ca}\": {e}"))?
        {
            roots
                .add(cert.map_err(|e| format!("cannot read ca_certs \"{ca}\": {e}"))?)
                .map_err(|e| e.to_string())?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        // CERT_OPTIONAL (1) verifies a certificate the client sends but accepts none.
        let verifier = if cert_reqs == 1 {
            verifier.allow_unauthenticated()
        } else {
            verifier
        };
        builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("certfile/keyfile: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Tls {
        engine: Engine::Rustls(Arc::new(config)),
        suppress_ragged_eofs: cfg.bool("suppress_ragged_eofs"),
        explicit_handshake: false,
    }))
}

/// Reads from the raw descriptor, `EAGAIN` as `WouldBlock`.
struct FdIo(RawFd);

impl Read for FdIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv(self.0, buf, MsgFlags::empty()).map_err(io::Error::from)
    }
}

impl Write for FdIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send(self.0, buf, MsgFlags::MSG_NOSIGNAL).map_err(io::Error::from)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One connection's TLS state, in either engine. Not boxed: rustls is the common case, and the
/// connection holds its session inline as it always did.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum TlsConn {
    Rustls(RustlsConn),
    Python(PyTlsConn),
}

impl TlsConn {
    /// Whether encrypted bytes wait to be written (handshake replies, records).
    pub fn wants_write(&self) -> bool {
        match self {
            TlsConn::Rustls(c) => c.wants_write(),
            TlsConn::Python(c) => c.wants_write(),
        }
    }

    /// Writes pending encrypted bytes; `WouldBlock` when the socket is full.
    pub fn flush(&mut self, fd: RawFd) -> io::Result<()> {
        match self {
            TlsConn::Rustls(c) => c.flush(fd),
            TlsConn::Python(c) => c.flush(fd),
        }
    }

    /// Appends decrypted bytes to `out`. `Ok(0)` is EOF; `WouldBlock` means wait for the socket
    /// (readable, or writable when [`TlsConn::wants_write`]).
    pub fn read(&mut self, fd: RawFd, out: &mut ReadBuf, cap: usize) -> io::Result<usize> {
        match self {
            TlsConn::Rustls(c) => c.read(fd, out, cap),
            TlsConn::Python(c) => c.read(fd, out, cap),
        }
    }

    /// Encrypts and sends `data`. `WouldBlock` from the socket is returned with
    /// `data[..written]` consumed.
    pub fn write(&mut self, fd: RawFd, data: &[u8]) -> io::Result<usize> {
        match self {
            TlsConn::Rustls(c) => c.write(fd, data),
            TlsConn::Python(c) => c.write(fd, data),
        }
    }

    /// Queues `close_notify`.
    pub fn close_notify(&mut self) {
        match self {
            TlsConn::Rustls(c) => c.close_notify(),
            TlsConn::Python(c) => c.close_notify(),
        }
    }
}

/// A rustls session.
pub struct RustlsConn {
    conn: rustls::ServerConnection,
    ragged_ok: bool,
    eof: bool,
    /// The peer as gunicorn logs it, for a failed session's warning.
    ip: Box<str>,
    /// The first bytes the client sent (OpenSSL names a failure by them).
    first: [u8; tls_errors::FIRST],
    first_len: usize,
    /// The session failed and was reported; nothing more is written through it.
    failed: bool,
}

impl std::fmt::Debug for RustlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RustlsConn")
    }
}

impl RustlsConn {
    /// Whether encrypted bytes wait to be written (handshake replies, records).
    pub fn wants_write(&self) -> bool {
        !self.failed && self.conn.wants_write()
    }

    /// Writes pending encrypted bytes; `WouldBlock` when the socket is full.
    pub fn flush(&mut self, fd: RawFd) -> io::Result<()> {
        while self.wants_write() {
            self.conn.write_tls(&mut FdIo(fd))?;
        }
        Ok(())
    }

    /// Appends decrypted bytes to `out`. `Ok(0)` is EOF; `WouldBlock` means wait for the socket
    /// (readable, or writable when [`TlsConn::wants_write`]).
    pub fn read(&mut self, fd: RawFd, out: &mut ReadBuf, cap: usize) -> io::Result<usize> {
        loop {
            let spare = out.spare(cap.min(16 * 1024), cap);
            match self.conn.reader().read(spare) {
                Ok(n) => {
                    out.filled(n);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    if self.ragged_ok {
                        return Ok(0);
                    }
                    observe::debug("ssl connection closed");
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
            if self.eof {
                return Ok(0);
            }
            // Handshake replies must go out before the peer sends more.
            match self.flush(fd) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                Err(e) => return Err(e),
            }
            let read = if self.first_len < tls_errors::FIRST {
                self.conn.read_tls(&mut FirstBytes {
                    fd,
                    first: &mut self.first,
                    len: &mut self.first_len,
                })
            } else {
                self.conn.read_tls(&mut FdIo(fd))
            };
            match read {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) => return Err(e),
            }
            if let Err(e) = self.conn.process_new_packets() {
                return Err(self.fail(fd, e));
            }
        }
    }

    /// Encrypts `data` into records, flushing when rustls' buffer is full. `WouldBlock` from
    /// the socket is returned with `data[..written]` consumed.
    pub fn write(&mut self, fd: RawFd, data: &[u8]) -> io::Result<usize> {
        let mut written = 0;
        while written < data.len() {
            let n = self.conn.writer().write(&data[written..])?;
            written += n;
            if (n == 0 || self.conn.wants_write())
                && let Err(e) = self.flush(fd)
            {
                if e.kind() == io::ErrorKind::WouldBlock && written > 0 {
                    return Ok(written);
                }
                return Err(e);
            }
        }
        Ok(written)
    }

    /// Queues `close_notify`.
    pub fn close_notify(&mut self) {
        if !self.failed {
            self.conn.send_close_notify();
        }
    }

    /// A session that failed: gunicorn's log lines (its `handle_error` for an `SSLError`,
    /// whose 403 page cannot go through the failed session), once, and OpenSSL's choice of
    /// alert to the client. rustls repeats the error on every later call.
    fn fail(&mut self, fd: RawFd, e: rustls::Error) -> io::Error {
        if self.failed {
            return io::Error::new(io::ErrorKind::InvalidData, e);
        }
        let failure = tls_errors::describe(&e, &self.first[..self.first_len]);
        match failure.alert {
            tls_errors::Alert::Rustls => {
                let _ = self.flush(fd);
            }
            tls_errors::Alert::ProtocolVersion => {
                let _ = FdIo(fd).write(&tls_errors::Alert::PROTOCOL_VERSION_RECORD);
            }
            tls_errors::Alert::Nothing => {}
        }
        self.failed = true;
        tls_errors::log_failed(&self.ip, &failure.text);
        // gunicorn then writes its 403 page through the failed session, which cannot carry it.
        observe::debug("Failed to send error message.");
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// [`FdIo`]'s reads that also keep the connection's first bytes.
struct FirstBytes<'a> {
    fd: RawFd,
    first: &'a mut [u8; tls_errors::FIRST],
    len: &'a mut usize,
}

impl Read for FirstBytes<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = FdIo(self.fd).read(buf)?;
        let take = n.min(self.first.len() - *self.len);
        self.first[*self.len..*self.len + take].copy_from_slice(&buf[..take]);
        *self.len += take;
        Ok(n)
    }
}

/// Maps `EAGAIN` from nix into `WouldBlock` for callers that match on kinds.
pub fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(Errno::EAGAIN as i32)
}
