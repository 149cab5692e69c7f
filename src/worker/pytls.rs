//! TLS through Python's `ssl` module, for the `ssl_context` server hook: the hook returns an
//! `ssl.SSLContext` that may carry anything OpenSSL supports (other certificates, versions,
//! `sni_callback`, ALPN, verify modes), so such connections are served by that context itself.
//!
//! The context wraps a pair of `ssl.MemoryBIO`s (`wrap_bio`, server side); this module moves
//! the encrypted bytes between them and the raw descriptor, so the connection's async and
//! blocking I/O modes work exactly as with rustls. Every call into the `SSLObject` holds the
//! GIL; socket calls are non-blocking. The opt-in path: without the hook, TLS is rustls and no
//! Python runs per connection.

use std::io;
use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, recv, send};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::readbuf::ReadBuf;
use crate::observe;
use crate::python::{exc_str, format_traceback};

pyo3::import_exception!(ssl, SSLError);
pyo3::import_exception!(ssl, SSLWantReadError);
pyo3::import_exception!(ssl, SSLWantWriteError);
pyo3::import_exception!(ssl, SSLZeroReturnError);
pyo3::import_exception!(ssl, SSLEOFError);

/// `ssl.SSL_ERROR_EOF`: gunicorn's "ssl connection closed" case.
const SSL_ERROR_EOF: i64 = 8;
/// Plaintext handed to the `SSLObject` per call, so encrypted output stays bounded.
const WRITE_CHUNK: usize = 64 * 1024;

/// A connection the hook could not set up, after gunicorn's log lines: the error page to send
/// on the raw socket (as gunicorn's `handle_error` does, before any TLS), if any.
#[derive(Debug)]
pub struct Refused {
    pub page: Option<Vec<u8>>,
}

/// One connection's `SSLObject` and its two memory BIOs.
pub struct PyTlsConn {
    obj: Py<PyAny>,
    incoming: Py<PyAny>,
    outgoing: Py<PyAny>,
    /// Encrypted bytes taken from the outgoing BIO, `out[sent..]` not yet on the socket.
    out: Vec<u8>,
    sent: usize,
    ragged_ok: bool,
    /// The handshake is over, or happens inside the first `read` (gunicorn's sync worker);
    /// false until an explicit `do_handshake` succeeds (its gthread worker, and
    /// `do_handshake_on_connect`), whose errors are never taken for a ragged EOF.
    handshaken: bool,
    /// The peer closed its side; the incoming BIO has seen `write_eof`.
    eof: bool,
    /// A fatal error was reported: the session is dead (later calls fail quietly).
    failed: bool,
    /// The peer's address as gunicorn logs it (`''` on unix sockets).
    ip: String,
}

impl std::fmt::Debug for PyTlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PyTlsConn")
    }
}

impl Drop for PyTlsConn {
    fn drop(&mut self) {
        // Release the OpenSSL session now rather than at the next GIL acquisition.
        Python::attach(|py| {
            for obj in [&mut self.obj, &mut self.incoming, &mut self.outgoing] {
                drop(std::mem::replace(obj, py.None()));
            }
        });
    }
}

fn ssl_errno(py: Python<'_>, e: &PyErr) -> Option<i64> {
    let args = e.value(py).getattr("args").ok()?;
    args.get_item(0).ok()?.extract().ok()
}

/// gunicorn's handling of an exception raised while wrapping the socket (`ssl_wrap_socket`,
/// inside the worker's `handle`): its log lines, and the error page `handle_error` writes.
fn refused(py: Python<'_>, e: &PyErr, ip: &str) -> Refused {
    if e.is_instance_of::<SSLError>(py) {
        if ssl_errno(py, e) == Some(SSL_ERROR_EOF) {
            observe::debug("ssl connection closed");
            return Refused { page: None };
        }
        let msg = exc_str(py, e);
        super::tls_errors::log_failed(ip, &msg);
        let page = rgun_h1::error_page(403, "Forbidden", &format!("'{msg}'"));
        return Refused { page: Some(page) };
    }
    if e.is_instance_of::<PyOSError>(py) {
        let errno: Option<i32> = e
            .value(py)
            .getattr("errno")
            .ok()
            .and_then(|n| n.extract().ok());
        match errno.map(Errno::from_raw) {
            Some(Errno::ECONNRESET) => observe::debug("Ignoring connection reset"),
            Some(Errno::ENOTCONN) => observe::debug("Ignoring socket not connected"),
            Some(Errno::EPIPE) => observe::debug("Ignoring EPIPE"),
            _ => observe::exception("Socket error processing request.", &format_traceback(py, e)),
        }
        return Refused { page: None };
    }
    observe::exception(
        "Error handling request (no URI read)",
        &format_traceback(py, e),
    );
    let page = rgun_h1::error_page(500, "Internal Server Error", "");
    Refused { page: Some(page) }
}

fn dead() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the TLS session failed")
}

impl PyTlsConn {
    /// Calls the `ssl_context` hook with `worker.cfg` (gunicorn calls it for every connection)
    /// and wraps the returned context around two memory BIOs.
    pub fn new(
        worker: &Py<PyAny>,
        ragged_ok: bool,
        explicit_handshake: bool,
        ip: &str,
    ) -> Result<PyTlsConn, Refused> {
        Python::attach(|py| {
            let made = (|| -> PyResult<_> {
                let conf = worker.bind(py).getattr("cfg")?;
                let session = py
                    .import("rgun._tls")?
                    .call_method1("server_session", (conf,))?;
                session.extract::<(Py<PyAny>, Py<PyAny>, Py<PyAny>)>()
            })();
            match made {
                Ok((obj, incoming, outgoing)) => Ok(PyTlsConn {
                    obj,
                    incoming,
                    outgoing,
                    out: Vec::new(),
                    sent: 0,
                    ragged_ok,
                    handshaken: !explicit_handshake,
                    eof: false,
                    failed: false,
                    ip: ip.to_string(),
                }),
                Err(e) => Err(refused(py, &e, ip)),
            }
        })
    }

    /// Whether encrypted bytes wait to be written.
    pub fn wants_write(&self) -> bool {
        self.sent < self.out.len()
    }

    /// Moves what the `SSLObject` produced (handshake messages, records, alerts) out of the
    /// outgoing BIO.
    fn drain(&mut self, py: Python<'_>) -> io::Result<()> {
        let data = self
            .outgoing
            .bind(py)
            .call_method0("read")
            .map_err(|e| io::Error::other(e.to_string()))?;
        let data = data
            .cast::<PyBytes>()
            .map_err(|e| io::Error::other(e.to_string()))?;
        if !data.as_bytes().is_empty() {
            if self.sent == self.out.len() {
                self.out.clear();
                self.sent = 0;
            }
            self.out.extend_from_slice(data.as_bytes());
        }
        Ok(())
    }

    /// Writes pending encrypted bytes; `WouldBlock` when the socket is full.
    pub fn flush(&mut self, fd: RawFd) -> io::Result<()> {
        while self.sent < self.out.len() {
            match send(fd, &self.out[self.sent..], MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => self.sent += n,
                Err(e) => return Err(e.into()),
            }
        }
        self.out.clear();
        self.sent = 0;
        Ok(())
    }

    /// A fatal TLS error: gunicorn's log lines (its `handle_error` for an `SSLError`), the
    /// alert sent best effort, and the error for the caller.
    fn fatal(&mut self, py: Python<'_>, fd: RawFd, e: &PyErr) -> io::Error {
        self.failed = true;
        let _ = self.drain(py).and_then(|()| self.flush(fd));
        let msg = exc_str(py, e);
        super::tls_errors::log_failed(&self.ip, &msg);
        // gunicorn then writes its 403 page through the failed session, which OpenSSL refuses.
        observe::debug("Failed to send error message.");
        io::Error::new(io::ErrorKind::InvalidData, msg)
    }

    /// Appends decrypted bytes to `out`. `Ok(0)` is EOF; `WouldBlock` means wait for the socket
    /// (readable, or writable when [`PyTlsConn::wants_write`]).
    pub fn read(&mut self, fd: RawFd, out: &mut ReadBuf, cap: usize) -> io::Result<usize> {
        if self.failed {
            return Err(dead());
        }
        let want = cap.clamp(1, 16 * 1024);
        Python::attach(|py| {
            loop {
                let obj = self.obj.bind(py);
                let res = if self.handshaken {
                    obj.call_method1("read", (want,))
                } else {
                    obj.call_method0("do_handshake")
                };
                match res {
                    Ok(_) if !self.handshaken => {
                        self.handshaken = true;
                        self.drain(py)?;
                        continue;
                    }
                    Ok(data) => {
                        self.drain(py)?;
                        let data = data
                            .cast::<PyBytes>()
                            .map_err(|e| io::Error::other(e.to_string()))?
                            .as_bytes();
                        let spare = out.spare(want, cap);
                        let n = data.len().min(spare.len());
                        spare[..n].copy_from_slice(&data[..n]);
                        out.filled(n);
                        return Ok(n);
                    }
                    Err(e) if e.is_instance_of::<SSLWantReadError>(py) => {}
                    Err(e) if e.is_instance_of::<SSLWantWriteError>(py) => {}
                    Err(e) if e.is_instance_of::<SSLZeroReturnError>(py) => return Ok(0),
                    Err(e) if e.is_instance_of::<SSLEOFError>(py) => {
                        if self.ragged_ok && self.handshaken {
                            return Ok(0);
                        }
                        observe::debug("ssl connection closed");
                        self.failed = true;
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    Err(e) if e.is_instance_of::<SSLError>(py) => {
                        return Err(self.fatal(py, fd, &e));
                    }
                    Err(e) => {
                        self.failed = true;
                        return Err(io::Error::other(e.to_string()));
                    }
                }
                // Handshake replies must go out before the peer sends more.
                self.drain(py)?;
                self.flush(fd)?;
                if self.eof {
                    return Ok(0);
                }
                let mut buf = [0u8; 32 * 1024];
                let n = recv(fd, &mut buf, MsgFlags::empty()).map_err(io::Error::from)?;
                let incoming = self.incoming.bind(py);
                let fed = if n == 0 {
                    self.eof = true;
                    incoming.call_method0("write_eof")
                } else {
                    incoming.call_method1("write", (PyBytes::new(py, &buf[..n]),))
                };
                fed.map_err(|e| io::Error::other(e.to_string()))?;
            }
        })
    }

    /// Encrypts `data` into records and sends them. `WouldBlock` from the socket is returned
    /// with `data[..written]` consumed.
    pub fn write(&mut self, fd: RawFd, data: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(dead());
        }
        // Records still queued go first; a full socket is reported before taking more.
        self.flush(fd)?;
        let mut written = 0;
        while written < data.len() {
            let chunk = &data[written..data.len().min(written + WRITE_CHUNK)];
            let n = Python::attach(|py| {
                let res = self
                    .obj
                    .bind(py)
                    .call_method1("write", (PyBytes::new(py, chunk),));
                let n = match res {
                    Ok(n) => n
                        .extract::<usize>()
                        .map_err(|e| io::Error::other(e.to_string())),
                    // A session that still needs the peer (no handshake yet) cannot send.
                    Err(e) if e.is_instance_of::<SSLWantReadError>(py) => {
                        Err(io::ErrorKind::NotConnected.into())
                    }
                    Err(e) => {
                        self.failed = true;
                        Err(io::Error::other(exc_str(py, &e)))
                    }
                };
                self.drain(py)?;
                n
            })?;
            if n == 0 {
                return Err(io::Error::other("TLS write made no progress"));
            }
            written += n;
            match self.flush(fd) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && written > 0 => {
                    return Ok(written);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    /// Queues `close_notify` (`SSLObject.unwrap`, which then waits for the peer's: ignored).
    pub fn close_notify(&mut self) {
        if self.failed {
            return;
        }
        Python::attach(|py| {
            let _ = self.obj.bind(py).call_method0("unwrap");
            let _ = self.drain(py);
        });
    }
}
