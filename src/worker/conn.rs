//! One client connection: the socket, its read buffer, and the two ways of doing I/O on it.
//!
//! * Async (`read_more`): while the runtime waits for a request head or an idle keep-alive
//!   connection. No Python is attached.
//! * Blocking (`read_blocking`, `write_all_blocking`): while a request is being served, on the
//!   thread that runs the app. These use the raw descriptor and `poll`, with the GIL released
//!   around each wait, because the app blocks its runtime thread (no task of that thread runs
//!   meanwhile, so nothing would see tokio's readiness events for it). tokio's readiness cache
//!   may then be stale, which only costs it one `EAGAIN`.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, Shutdown, recv, send, sendmsg, shutdown};

use super::outbox::Out;
use super::readbuf::ReadBuf;
use super::tls::TlsConn;
use crate::unix::listeners::Family;

pub use crate::unix::stream::Stream;

/// What a request needs to know about the listener it arrived on.
#[derive(Debug)]
pub struct ListenerInfo {
    pub family: Family,
    /// `(SERVER_NAME, SERVER_PORT)` of a TCP listener.
    pub server_name_port: Option<(String, String)>,
    /// The socket path of a unix listener (gunicorn's SERVER_NAME fallback).
    pub unix_path: Option<String>,
}

/// Why a blocking I/O call stopped.
#[derive(Debug)]
pub enum IoStop {
    /// The socket failed or the peer went away.
    Io(io::Error),
    /// A Python signal handler raised (a worker timeout or quick shutdown): the exception is
    /// pending for the caller to take with `PyErr::fetch`.
    Interrupted(pyo3::PyErr),
}

impl From<io::Error> for IoStop {
    fn from(e: io::Error) -> Self {
        IoStop::Io(e)
    }
}

#[derive(Debug)]
pub struct Conn {
    pub stream: Stream,
    /// Bytes read but not yet parsed; `buf[pos..]` is live.
    buf: ReadBuf,
    /// The most bytes one read takes.
    read_cap: usize,
    pub peer: Option<SocketAddr>,
    pub listener: Arc<ListenerInfo>,
    /// Requests served on this connection so far.
    pub requests: u32,
    /// The TLS session of an HTTPS listener. Behind a mutex because writes go through `&Conn`;
    /// a connection is only ever used by one thread at a time, so it is never contended.
    tls: Option<Box<Mutex<TlsConn>>>,
    /// The app-visible `gunicorn.socket` object, created on the first request. It shares this
    /// connection's descriptor and is released (`py_socket::release`) when the connection is
    /// dropped.
    pub py_socket: Option<pyo3::Py<pyo3::PyAny>>,
    /// What this connection's requests share in their environs (built on the first request).
    pub environ: Option<Box<crate::wsgi::environ::ConnEnviron>>,
    /// The client has sent all it will: its last request, body included, was read to its end,
    /// that request asked to close, and the response said so (set by the WSGI bridge).
    pub client_done: bool,
    /// Where a finished response waits for the end of the runtime's turn (`outbox`); `None`
    /// when responses go out at once.
    out: Option<Arc<Out>>,
    /// Whether the response being served may be held (the worker is busy).
    hold_now: bool,
    /// When the last bytes of a response went out, if the connection closes after them
    /// (`cork::stamp`, 0 for none): the close times the stretch in between.
    last_sent: AtomicU64,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Before the descriptor closes: the outbox watchdog must not write to it any more.
        if let Some(out) = &self.out {
            out.close();
        }
        if self.py_socket.is_some() || self.environ.is_some() {
            pyo3::Python::attach(|py| self.release_python(py));
        }
    }
}

const READ_CHUNK: usize = 64 * 1024;
/// How much one read takes while a request head is being read (gunicorn's 8 KiB).
pub const HEAD_READ: usize = 8192;
/// How much one read takes for bodies (gunicorn 27 reads large bodies in big steps).
pub const BODY_READ: usize = 1024 * 1024;

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Conn {
    /// Lets go of the connection's Python objects: detaches `gunicorn.socket` first, so the
    /// Python object never closes (a possibly reused) descriptor, and drops the environ
    /// template. Called while attached where the connection is about to close, so dropping
    /// costs no deferred decref (pyo3 queues the decrefs of objects dropped detached).
    pub fn release_python(&mut self, py: pyo3::Python<'_>) {
        // The environ template holds the socket object too: dropped first, so that the object
        // can be kept for the next connection when nothing else holds it.
        self.environ = None;
        if let Some(sock) = self.py_socket.take() {
            crate::wsgi::py_socket::release(py, sock, self.fd(), self.socket_family());
        }
    }

    /// The address family of the connection's socket (`AF_UNIX`, `AF_INET`, `AF_INET6`).
    pub fn socket_family(&self) -> i32 {
        match (self.listener.family, self.peer) {
            (Family::Unix, _) => nix::libc::AF_UNIX,
            (_, Some(SocketAddr::V6(_))) => nix::libc::AF_INET6,
            _ => nix::libc::AF_INET,
        }
    }

    pub fn new(
        stream: Stream,
        peer: Option<SocketAddr>,
        listener: Arc<ListenerInfo>,
        tls: Option<TlsConn>,
    ) -> Conn {
        Conn {
            stream,
            buf: ReadBuf::with_capacity(8192),
            read_cap: HEAD_READ,
            peer,
            listener,
            requests: 0,
            // Boxed: a rustls session is over 1 KiB, and a `Conn` moves a few times per request.
            tls: tls.map(|t| Box::new(Mutex::new(t))),
            py_socket: None,
            environ: None,
            client_done: false,
            out: None,
            hold_now: false,
            last_sent: AtomicU64::new(0),
        }
    }

    /// Whether the next response may be held (see `outbox::call_starts`).
    pub fn hold_next(&mut self, on: bool) {
        self.hold_now = on;
    }

    /// Lets finished responses wait for the end of the runtime's turn (plain TCP only).
    pub fn hold_responses(&mut self) {
        if self.tls.is_none() {
            self.out = Some(Out::new(self.fd()));
        }
    }

    /// Holds `bufs`, the last bytes of a response, for the end of the turn. False when this
    /// connection sends at once (the caller writes them).
    pub fn hold(&self, bufs: &[&[u8]]) -> bool {
        match &self.out {
            Some(out) if self.hold_now => out.hold(bufs),
            _ => false,
        }
    }

    /// Sends the held response, waiting asynchronously while the socket is full.
    pub async fn send_held(&self) -> io::Result<()> {
        let Some(out) = &self.out else {
            return Ok(());
        };
        while out.is_held() && !out.send_now()? {
            self.stream.writable().await?.clear_ready();
        }
        Ok(())
    }

    /// Sends the held response before another write, blocking this thread.
    fn send_held_blocking(&self, waiter: &Waiter) -> Result<(), IoStop> {
        if let Some(out) = &self.out {
            while out.is_held() && !out.send_now()? {
                waiter.wait(self.stream.as_fd(), PollFlags::POLLOUT)?;
            }
        }
        Ok(())
    }

    /// Whether this connection speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The connection's descriptor (under TLS too: the socket's own).
    pub fn fd(&self) -> RawFd {
        self.stream.as_fd().as_raw_fd()
    }

    /// The unparsed bytes.
    pub fn pending(&self) -> &[u8] {
        self.buf.pending()
    }

    /// Marks `n` pending bytes as used.
    pub fn consume(&mut self, n: usize) {
        self.buf.consume(n);
    }

    /// One read into the buffer, without waiting. `WouldBlock` when nothing is ready. Reads
    /// at most `read_cap` bytes (gunicorn reads request heads 8 KiB at a time, and some of its
    /// verdicts depend on that).
    fn raw_read(&mut self) -> io::Result<usize> {
        let fd = self.fd();
        read_into(fd, &self.tls, &mut self.buf, self.read_cap)
    }

    /// Sets the most bytes one read may take (8 KiB while reading a head, more for bodies).
    pub fn set_read_cap(&mut self, cap: usize) {
        self.read_cap = cap;
    }

    fn tls_wants_write(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|t| t.lock().unwrap_or_else(|e| e.into_inner()).wants_write())
    }

    /// Reads more bytes into the buffer, waiting asynchronously. `Ok(0)` is EOF.
    pub async fn read_more(&mut self) -> io::Result<usize> {
        loop {
            if self.tls.is_some() {
                // TLS may hold decrypted bytes already, or owe the peer handshake bytes.
                match self.raw_read() {
                    Ok(n) => return Ok(n),
                    Err(e) if would_block(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
                if self.tls_wants_write() {
                    self.flush_tls_async().await?;
                    continue;
                }
            }
            let fd = self.fd();
            let Conn {
                stream,
                buf,
                tls,
                read_cap,
                ..
            } = self;
            // A socket not registered yet is read first: the bytes are usually there already,
            // and then it never needs epoll (see `stream.rs`).
            if tls.is_none() && !stream.is_registered() {
                match read_plain(fd, buf, *read_cap) {
                    Ok((n, _)) => return Ok(n),
                    Err(e) if would_block(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            let mut guard = stream.readable().await?;
            let res = match tls {
                Some(_) => read_into(fd, tls, buf, *read_cap),
                // A plain read that came back short drained the socket: readiness is cleared
                // now, so the next wait goes straight to epoll instead of paying a `recv` that
                // can only say `EAGAIN`. Safe with edge-triggered epoll: bytes arriving after
                // the read raise a new edge, and tokio ignores the clear if an event was seen
                // since the guard was taken.
                None => read_plain(fd, buf, *read_cap).map(|(n, drained)| {
                    if drained && n > 0 {
                        guard.clear_ready();
                    }
                    n
                }),
            };
            match res {
                Ok(n) => return Ok(n),
                Err(e) if would_block(&e) => guard.clear_ready(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    async fn flush_tls_async(&self) -> io::Result<()> {
        let Some(tls) = &self.tls else { return Ok(()) };
        let fd = self.fd();
        while tls.lock().unwrap_or_else(|e| e.into_inner()).wants_write() {
            let mut guard = self.stream.writable().await?;
            match tls.lock().unwrap_or_else(|e| e.into_inner()).flush(fd) {
                Ok(()) => {}
                Err(e) if would_block(&e) => guard.clear_ready(),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads more bytes, blocking this thread (GIL released while waiting). `Ok(0)` is EOF.
    pub fn read_blocking(&mut self, waiter: &Waiter) -> Result<usize, IoStop> {
        self.blocking_read(waiter, Self::raw_read)
    }

    /// Reads into `dst` straight from the socket (plain connections only), blocking this thread
    /// (GIL released while waiting). `Ok(0)` is EOF.
    pub fn read_blocking_into(&mut self, waiter: &Waiter, dst: &mut [u8]) -> Result<usize, IoStop> {
        self.blocking_read(waiter, |c| {
            recv(c.fd(), dst, MsgFlags::empty()).map_err(io::Error::from)
        })
    }

    /// Retries `read` until it gives bytes, EOF or an error, waiting for readability (or for a
    /// TLS write the session needs first) with the GIL released.
    fn blocking_read(
        &mut self,
        waiter: &Waiter,
        mut read: impl FnMut(&mut Self) -> io::Result<usize>,
    ) -> Result<usize, IoStop> {
        loop {
            match read(self) {
                Ok(n) => return Ok(n),
                Err(e) if would_block(&e) => {
                    if self.tls_wants_write() {
                        self.flush_tls_blocking(waiter)?;
                    } else {
                        waiter.wait(self.stream.as_fd(), PollFlags::POLLIN)?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => waiter.check_signals()?,
                Err(e) => return Err(IoStop::Io(e)),
            }
        }
    }

    fn flush_tls_blocking(&self, waiter: &Waiter) -> Result<(), IoStop> {
        let Some(tls) = &self.tls else { return Ok(()) };
        loop {
            let res = tls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .flush(self.fd());
            match res {
                Ok(()) => return Ok(()),
                Err(e) if would_block(&e) => {
                    waiter.wait(self.stream.as_fd(), PollFlags::POLLOUT)?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => waiter.check_signals()?,
                Err(e) => return Err(IoStop::Io(e)),
            }
        }
    }

    /// Writes all of `bufs`, blocking this thread (GIL released while waiting).
    pub fn write_all_blocking(&self, bufs: &[&[u8]], waiter: &Waiter) -> Result<(), IoStop> {
        self.write_blocking(bufs, waiter, MsgFlags::MSG_NOSIGNAL)
    }

    /// Writes the last bytes of a response after which this connection closes: corked for
    /// the FIN when `cork` allows (plain TCP).
    pub fn write_last_blocking(&self, bufs: &[&[u8]], waiter: &Waiter) -> Result<(), IoStop> {
        let flags = if self.tls.is_none() && super::cork::allowed() {
            MsgFlags::MSG_NOSIGNAL | MSG_MORE
        } else {
            MsgFlags::MSG_NOSIGNAL
        };
        let sent = self.write_blocking(bufs, waiter, flags);
        self.last_sent
            .store(super::cork::stamp(), Ordering::Relaxed);
        sent
    }

    fn write_blocking(
        &self,
        bufs: &[&[u8]],
        waiter: &Waiter,
        flags: MsgFlags,
    ) -> Result<(), IoStop> {
        self.send_held_blocking(waiter)?;
        let fd = self.stream.as_fd();
        if let Some(tls) = &self.tls {
            for b in bufs {
                let mut off = 0;
                while off < b.len() {
                    match tls
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .write(fd.as_raw_fd(), &b[off..])
                    {
                        Ok(n) => off += n,
                        Err(e) if would_block(&e) => waiter.wait(fd, PollFlags::POLLOUT)?,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                            waiter.check_signals()?
                        }
                        Err(e) => return Err(IoStop::Io(e)),
                    }
                }
            }
            return self.flush_tls_blocking(waiter);
        }
        // One `sendmsg` for all the pieces (status line and headers, chunk framing, body):
        // one syscall and, for small responses, one TCP segment. The pieces are few: their
        // slices live on the stack.
        const ON_STACK: usize = 8;
        let pieces = bufs.iter().filter(|b| !b.is_empty());
        if bufs.len() <= ON_STACK {
            let mut iov = [IoSlice::new(&[]); ON_STACK];
            let mut n = 0;
            for b in pieces {
                iov[n] = IoSlice::new(b);
                n += 1;
            }
            send_all(fd, &mut iov[..n], waiter, flags)
        } else {
            let mut iov: Vec<IoSlice<'_>> = pieces.map(|b| IoSlice::new(b)).collect();
            send_all(fd, &mut iov, waiter, flags)
        }
    }

    /// Writes all of `data` asynchronously (error pages, `100 Continue` outside the app).
    pub async fn write_all(&self, data: &[u8]) -> io::Result<()> {
        self.send_held().await?;
        let fd = self.fd();
        let mut off = 0;
        while off < data.len() {
            // Try first: a fresh socket has room, and then it never needs epoll.
            match self.write_some(fd, &data[off..]) {
                Ok(n) => {
                    off += n;
                    continue;
                }
                Err(e) if would_block(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            let mut guard = self.stream.writable().await?;
            match self.write_some(fd, &data[off..]) {
                Ok(n) => off += n,
                Err(e) if would_block(&e) => guard.clear_ready(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.flush_tls_async().await
    }

    fn write_some(&self, fd: RawFd, data: &[u8]) -> io::Result<usize> {
        match &self.tls {
            None => send(fd, data, MsgFlags::MSG_NOSIGNAL).map_err(io::Error::from),
            Some(tls) => tls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .write(fd, data),
        }
    }

    /// gunicorn's graceful close: shut the write side, then read and discard what the client
    /// still sends (up to 64 KiB, for up to 2 s), so the close does not turn into an RST that
    /// would destroy the response in flight. TLS sends `close_notify` first.
    pub async fn close_graceful(mut self) {
        let sent = *self.last_sent.get_mut();
        if sent != 0 {
            super::cork::record_since(sent);
        }
        if self.send_held().await.is_err() {
            return;
        }
        if let Some(tls) = &self.tls {
            tls.lock().unwrap_or_else(|e| e.into_inner()).close_notify();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.flush_tls_async())
                .await;
        }
        // The client asked to close and its request was read to its end, with nothing else
        // received: it sends nothing more, so closing now cannot turn into an RST, and the
        // close sends the FIN. Skip the half-close and the wait for the client's FIN. When only
        // the server closes (the sync worker, max_requests), the client may send its next
        // request at any moment: that needs the half-close and the drain.
        if self.client_done && self.tls.is_none() && self.buf.pending().is_empty() {
            // The last read emptied the socket: nothing to look for (a client that sends bytes
            // after a `Connection: close` request gets the RST gunicorn would send it).
            if self.buf.drained() {
                return;
            }
            let mut probe = [0u8; 1];
            // Nothing pending (EAGAIN), or the client closed already (EOF).
            let peek = recv(
                self.fd(),
                &mut probe,
                MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
            );
            if matches!(peek, Err(nix::errno::Errno::EAGAIN) | Ok(0)) {
                return;
            }
        }
        let _ = shutdown(self.fd(), Shutdown::Write);
        // What is drained is thrown away: read it into the buffer the connection has (8 KiB)
        // rather than at the body's step, which would grow the buffer to 64 KiB (a realloc
        // copying it) for every connection a sync worker closes.
        self.set_read_cap(HEAD_READ);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut drained = 0usize;
        while drained < 64 * 1024 {
            self.buf.clear();
            match tokio::time::timeout_at(deadline, self.read_more()).await {
                Ok(Ok(n)) if n > 0 => drained += n,
                _ => break,
            }
        }
    }
}

/// One read from the socket (through TLS when there is a session) into `buf`, at most `cap`
/// bytes. `WouldBlock` when nothing is ready.
fn read_into(
    fd: RawFd,
    tls: &Option<Box<Mutex<TlsConn>>>,
    buf: &mut ReadBuf,
    cap: usize,
) -> io::Result<usize> {
    match tls {
        None => read_plain(fd, buf, cap).map(|(n, _)| n),
        Some(tls) => tls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .read(fd, buf, cap),
    }
}

/// `MSG_MORE` (nix has no name for it): keep a partial segment for what follows (`cork`).
const MSG_MORE: MsgFlags = MsgFlags::from_bits_retain(nix::libc::MSG_MORE);

/// Sends every byte of `iov` with `sendmsg`, waiting while the socket is full.
fn send_all(
    fd: BorrowedFd<'_>,
    mut iov: &mut [IoSlice<'_>],
    waiter: &Waiter,
    flags: MsgFlags,
) -> Result<(), IoStop> {
    while !iov.is_empty() {
        match sendmsg::<()>(fd.as_raw_fd(), iov, &[], flags, None) {
            Ok(n) => IoSlice::advance_slices(&mut iov, n),
            Err(nix::errno::Errno::EAGAIN) => waiter.wait(fd, PollFlags::POLLOUT)?,
            Err(nix::errno::Errno::EINTR) => waiter.check_signals()?,
            Err(e) => return Err(IoStop::Io(io::Error::from(e))),
        }
    }
    Ok(())
}

/// One `recv` into `buf`, at most `cap` bytes: the count, and whether it came back short (the
/// socket had no more bytes at that moment).
fn read_plain(fd: RawFd, buf: &mut ReadBuf, cap: usize) -> io::Result<(usize, bool)> {
    let (n, asked) = buf.recv_from(fd, cap.min(READ_CHUNK), cap)?;
    Ok((n, n < asked))
}

/// How a blocking wait is bounded and interrupted.
pub struct Waiter {
    /// The worker's signal wakeup pipe, watched only on the main thread (where CPython runs
    /// signal handlers).
    pub wakeup: Option<BorrowedFd<'static>>,
    pub deadline: Option<Instant>,
}

impl Waiter {
    /// Waits until `fd` is ready for `flags`, with the GIL released.
    pub fn wait(&self, fd: BorrowedFd<'_>, flags: PollFlags) -> Result<(), IoStop> {
        let timeout = match self.deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(IoStop::Io(io::ErrorKind::TimedOut.into()));
                }
                PollTimeout::try_from(left.as_millis().min(60_000) as i32)
                    .unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        let woke = pyo3::Python::attach(|py| {
            py.detach(|| {
                let mut fds = vec![PollFd::new(fd, flags)];
                if let Some(w) = self.wakeup {
                    fds.push(PollFd::new(w, PollFlags::POLLIN));
                }
                match poll(&mut fds, timeout) {
                    Ok(_) => fds
                        .get(1)
                        .and_then(|f| f.revents())
                        .is_some_and(|r| r.contains(PollFlags::POLLIN)),
                    Err(_) => true,
                }
            })
        });
        if woke {
            self.check_signals()?;
        }
        Ok(())
    }

    /// Runs pending Python signal handlers; an exception they raise stops the I/O.
    pub fn check_signals(&self) -> Result<(), IoStop> {
        if self.wakeup.is_none() {
            return Ok(());
        }
        pyo3::Python::attach(|py| py.check_signals()).map_err(IoStop::Interrupted)
    }
}
