//! The worker's serving loop on a tokio runtime built after the fork.
//!
//! * Accepting: one task per listener; it accepts only while a request slot is free (a worker
//!   takes only what it can serve) and below `worker_connections`.
//! * Connections: one task each. Request heads are read asynchronously, so slow clients cost
//!   no thread. A complete request takes a slot and runs the app: inline on this thread for
//!   `sync` and one-thread `gthread` (no hand-off), or on the `gthread` pool.
//! * Side tasks: the signal wakeup pipe, the heartbeat, the parent watch.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use rgun_h1::{HeadParser, ParseError, ParserConfig, Peer, RequestHead, Status, parse_head_eof};
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, Semaphore, oneshot};

use super::conn::{Conn, ListenerInfo, Stream, Waiter};
use super::signals;
use super::trust::AllowList;
use crate::config::Config;
use crate::observe;
use crate::python::signals::WakeupPipe;
use crate::unix::heartbeat::Heartbeat;
use crate::unix::listeners::{Family, Listener};
use crate::wsgi::{self, After, Statics};

/// What `serve` needs from the boot sequence.
pub struct Setup {
    pub cfg: Arc<Config>,
    pub app: Py<PyAny>,
    pub listeners: Vec<Listener>,
    pub heartbeat: Arc<Heartbeat>,
    pub wakeup: WakeupPipe,
    pub max_requests: u64,
    pub ppid: u32,
    pub worker_obj: Py<PyAny>,
    pub tls: Option<super::tls::Tls>,
}

/// The exit code a signal handler asked for (`SystemExit(n)` outside app code).
static EXIT_CODE: AtomicI32 = AtomicI32::new(0);

struct Server {
    st: Statics,
    gthread: bool,
    threads: usize,
    keepalive: Option<Duration>,
    header_timeout: Duration,
    worker_connections: usize,
    slots: Semaphore,
    conns: AtomicUsize,
    conn_closed: Notify,
    max_requests: u64,
    wakeup: BorrowedFd<'static>,
    forwarded: AllowList,
    proxy_allow: AllowList,
    pool: Option<mpsc::SyncSender<Job>>,
    tls: Option<super::tls::Tls>,
}

struct Job {
    conn: Conn,
    head: RequestHead,
    force_close: bool,
    nr: u64,
    reply: oneshot::Sender<After>,
}

fn parser_config(cfg: &Config) -> ParserConfig {
    let mut p = ParserConfig::from_settings(
        cfg.int("limit_request_line"),
        cfg.int("limit_request_fields"),
        cfg.int("limit_request_field_size"),
    );
    p.permit_unconventional_http_method = cfg.bool("permit_unconventional_http_method");
    p.permit_unconventional_http_version = cfg.bool("permit_unconventional_http_version");
    p.casefold_http_method = cfg.bool("casefold_http_method");
    p.permit_obsolete_folding = cfg.bool("permit_obsolete_folding");
    p.strip_header_spaces = cfg.bool("strip_header_spaces");
    if let Some(m) = cfg
        .str("header_map")
        .and_then(rgun_h1::HeaderMapPolicy::from_setting)
    {
        p.header_map = m;
    }
    p.forwarder_headers = cfg.list("forwarder_headers").to_vec();
    p.secure_scheme_headers = cfg.dict("secure_scheme_headers").to_vec();
    if let Some(mode) = cfg
        .str("proxy_protocol")
        .and_then(rgun_h1::ProxyMode::from_setting)
    {
        p.proxy_protocol = mode;
    }
    p
}

/// Serves until the worker is told to stop; returns the exit code.
pub fn serve(py: Python<'_>, setup: Setup) -> i32 {
    let cfg = setup.cfg.clone();
    let gthread = cfg.is_gthread();
    let threads = if gthread {
        usize::try_from(cfg.int("threads")).unwrap_or(1).max(1)
    } else {
        1
    };
    let statics = match Statics::new(
        py,
        setup.tls.is_some(),
        cfg.clone(),
        setup.app,
        gthread,
        setup.worker_obj,
        parser_config(&cfg),
    ) {
        Ok(s) => s,
        Err(e) => {
            observe::exception(
                "Exception in worker process",
                &crate::python::format_traceback(py, &e),
            );
            return 3;
        }
    };
    let keepalive = cfg.int("keepalive");
    let timeout = cfg.int("timeout");
    // The wakeup pipe lives as long as the process.
    let wakeup: &'static WakeupPipe = Box::leak(Box::new(setup.wakeup));
    let heartbeat = setup.heartbeat;
    let srv = Arc::new(Server {
        st: statics,
        gthread,
        threads,
        keepalive: (gthread && keepalive > 0).then(|| Duration::from_secs(keepalive as u64)),
        header_timeout: Duration::from_secs(if timeout > 0 { timeout as u64 } else { 30 }),
        worker_connections: usize::try_from(cfg.int("worker_connections"))
            .unwrap_or(1000)
            .max(1),
        slots: Semaphore::new(threads),
        conns: AtomicUsize::new(0),
        conn_closed: Notify::new(),
        max_requests: setup.max_requests,
        wakeup: wakeup.read.as_fd(),
        forwarded: AllowList::new(cfg.list("forwarded_allow_ips")),
        proxy_allow: AllowList::new(cfg.list("proxy_allow_ips")),
        pool: None,
        tls: setup.tls.clone(),
    });
    let (srv, pool_threads) = start_pool(srv);

    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            observe::error(&format!(
                "Exception in worker process: cannot build the runtime: {e}"
            ));
            return 3;
        }
    };
    let graceful = Duration::from_secs(u64::try_from(cfg.int("graceful_timeout")).unwrap_or(30));
    let hb_every = if timeout > 0 {
        Duration::from_millis((timeout as u64 * 500).clamp(100, 1000))
    } else {
        Duration::from_secs(1)
    };
    if gthread {
        // gthread's heartbeat does not stop while the app runs (gunicorn's main loop keeps
        // notifying while its threads work), so it lives on its own thread.
        let hb = heartbeat.clone();
        std::thread::spawn(move || {
            while signals::alive() {
                hb.notify();
                std::thread::sleep(Duration::from_millis(500));
            }
        });
    }
    let listeners = setup.listeners;
    let ppid = setup.ppid;
    py.detach(|| {
        rt.block_on(async {
            tokio::spawn(watch_signals(wakeup));
            tokio::spawn(watch_parent(ppid));
            if !gthread {
                tokio::spawn(tick_heartbeat(heartbeat.clone(), hb_every));
            }
            for l in listeners {
                match accept_source(l) {
                    Ok((src, info)) => {
                        tokio::spawn(accept_loop(srv.clone(), src, info));
                    }
                    Err(e) => observe::error(&format!("cannot use listener: {e}")),
                }
            }
            signals::stopped().await;
            if !signals::quick() {
                let _ = tokio::time::timeout(graceful, wait_idle(&srv)).await;
            }
        });
    });
    drop(rt);
    // Let the pool threads finish and detach from Python before the interpreter exits.
    drop(srv);
    for t in pool_threads {
        let _ = py.detach(|| t.join());
    }
    EXIT_CODE.load(Ordering::Relaxed)
}

fn start_pool(srv: Arc<Server>) -> (Arc<Server>, Vec<std::thread::JoinHandle<()>>) {
    if srv.threads <= 1 {
        return (srv, Vec::new());
    }
    let (tx, rx) = mpsc::sync_channel::<Job>(srv.threads * 4);
    let rx = Arc::new(Mutex::new(rx));
    let mut srv = match Arc::try_unwrap(srv) {
        Ok(s) => s,
        Err(_) => unreachable!("the server is not shared before the pool starts"),
    };
    srv.pool = Some(tx);
    let srv = Arc::new(srv);
    let weak = Arc::downgrade(&srv);
    let handles = (0..srv.threads)
        .map(|_| {
            let rx = rx.clone();
            let weak = weak.clone();
            std::thread::spawn(move || {
                Python::attach(|py| {
                    loop {
                        let job = py.detach(|| rx.lock().unwrap_or_else(|e| e.into_inner()).recv());
                        let Ok(job) = job else { break };
                        let Some(srv) = weak.upgrade() else { break };
                        let waiter = Waiter {
                            wakeup: None,
                            deadline: None,
                        };
                        let after = wsgi::handle(
                            py,
                            &srv.st,
                            job.conn,
                            job.head,
                            waiter,
                            job.force_close,
                            job.nr,
                        );
                        let _ = job.reply.send(after);
                    }
                });
            })
        })
        .collect();
    (srv, handles)
}

/// A listening socket registered with the runtime.
struct Source {
    sock: AsyncFd<socket2::Socket>,
    tcp: bool,
}

fn accept_source(l: Listener) -> std::io::Result<(Source, Arc<ListenerInfo>)> {
    l.socket.set_nonblocking(true)?;
    let info = Arc::new(ListenerInfo {
        family: l.family,
        server_name_port: l.server_name_port(),
        unix_path: l.unix_path.as_ref().map(|p| p.display().to_string()),
    });
    let src = Source {
        tcp: l.family == Family::Tcp,
        sock: crate::unix::stream::register_listener(l.socket)?,
    };
    Ok((src, info))
}

async fn accept_loop(srv: Arc<Server>, src: Source, info: Arc<ListenerInfo>) {
    loop {
        if !signals::alive() {
            return;
        }
        // Reserve a connection place before accepting, so `worker_connections` holds exactly.
        loop {
            // Registered before the check, so a close in between is not missed.
            let closed = srv.conn_closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if srv.conns.fetch_add(1, Ordering::Relaxed) < srv.worker_connections {
                break;
            }
            srv.conns.fetch_sub(1, Ordering::Relaxed);
            tokio::select! {
                () = &mut closed => {}
                () = signals::stopped() => return,
            }
        }
        // Accept only when a request slot is free right now: busy workers leave new
        // connections in the backlog for idle siblings.
        tokio::select! {
            p = srv.slots.acquire() => drop(p),
            () = signals::stopped() => {
                srv.conns.fetch_sub(1, Ordering::Relaxed);
                srv.conn_closed.notify_waiters();
                return;
            }
        }
        let accepted = tokio::select! {
            r = accept(&src) => r,
            () = signals::stopped() => {
                srv.conns.fetch_sub(1, Ordering::Relaxed);
                srv.conn_closed.notify_waiters();
                return;
            }
        };
        match accepted {
            Ok((stream, peer)) => {
                tokio::spawn(serve_conn(srv.clone(), stream, peer, info.clone()));
            }
            Err(e) => {
                srv.conns.fetch_sub(1, Ordering::Relaxed);
                observe::debug(&format!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Accepts one connection, non-blocking from the start (`accept4`), not registered with the
/// runtime yet (see `stream.rs`). Readiness stays set until `accept` says `EAGAIN`, so a burst
/// of connections is accepted without a wait per connection.
async fn accept(src: &Source) -> std::io::Result<(Stream, Option<std::net::SocketAddr>)> {
    use nix::libc::{SOCK_CLOEXEC, SOCK_NONBLOCK};
    loop {
        let mut guard = src.sock.readable().await?;
        match guard.try_io(|s| s.get_ref().accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)) {
            Ok(Ok((s, addr))) => {
                // TCP_NODELAY is inherited from the listening socket.
                let peer = if src.tcp { addr.as_socket() } else { None };
                return Ok((Stream::new(std::os::fd::OwnedFd::from(s)), peer));
            }
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
}

/// Decrements the connection count when a connection task ends, however it ends.
struct ConnGuard(Arc<Server>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.conns.fetch_sub(1, Ordering::Relaxed);
        self.0.conn_closed.notify_waiters();
    }
}

enum HeadRead {
    Head(Box<RequestHead>),
    /// Close gracefully (EOF, timeout, stop, or an error page was sent).
    Close,
}

/// Wraps an accepted socket in a connection, with its TLS session on TLS listeners. `None`
/// when the `ssl_context` hook failed (the error was logged and answered) or the client left.
async fn open(
    srv: &Server,
    stream: Stream,
    peer: Option<std::net::SocketAddr>,
    info: Arc<ListenerInfo>,
) -> Option<Conn> {
    let Some(tls) = &srv.tls else {
        return Some(Conn::new(stream, peer, info, None));
    };
    // gunicorn's gthread worker wraps the socket once the client has sent something.
    if tls.calls_hook() && srv.gthread {
        let ready = async { stream.readable().await.map(|_| ()) };
        tokio::select! {
            r = tokio::time::timeout(srv.header_timeout, ready) => {
                if !matches!(r, Ok(Ok(()))) {
                    return None;
                }
            }
            () = signals::stopped() => return None,
        }
    }
    let ip = peer.map(|p| p.ip().to_string()).unwrap_or_default();
    match tls.session(&srv.st.worker_obj, &ip) {
        Ok(session) => Some(Conn::new(stream, peer, info, Some(session))),
        Err(refused) => {
            // gunicorn answers on the socket as it is, before any TLS.
            let conn = Conn::new(stream, peer, info, None);
            if let Some(page) = refused.page
                && conn.write_all(&page).await.is_err()
            {
                observe::debug("Failed to send error message.");
            }
            conn.close_graceful().await;
            None
        }
    }
}

async fn serve_conn(
    srv: Arc<Server>,
    stream: Stream,
    peer: Option<std::net::SocketAddr>,
    info: Arc<ListenerInfo>,
) {
    let _guard = ConnGuard(srv.clone());
    let Some(mut conn) = open(&srv, stream, peer, info).await else {
        return;
    };
    let mut first = true;
    // What the parser needs to know about the peer, computed once per connection.
    let peer = peer_of(&srv, &conn);
    loop {
        let head = match read_head(&srv, &mut conn, &peer, first).await {
            HeadRead::Head(h) => *h,
            HeadRead::Close => break,
        };
        first = false;
        conn.requests += 1;
        let Ok(permit) = srv.slots.acquire().await else {
            break;
        };
        if signals::quick() {
            return;
        }
        let nr = srv.st.nr.fetch_add(1, Ordering::Relaxed) + 1;
        if nr >= srv.max_requests && signals::alive() {
            observe::info("Autorestarting worker after current request.");
            signals::stop(false);
        }
        // gthread with keepalive 0 closes every connection (gunicorn forces `Connection: close`).
        let force_close = !signals::alive() || srv.keepalive.is_none();
        let after = match &srv.pool {
            Some(tx) => {
                let (reply, rx) = oneshot::channel();
                let job = Job {
                    conn,
                    head,
                    force_close,
                    nr,
                    reply,
                };
                // At most `threads` jobs exist at once (the slots) and the channel holds more,
                // so this send never blocks the runtime.
                if tx.send(job).is_err() {
                    return;
                }
                match rx.await {
                    Ok(a) => a,
                    Err(_) => return,
                }
            }
            None => Python::attach(|py| {
                let waiter = Waiter {
                    wakeup: Some(srv.wakeup),
                    deadline: None,
                };
                wsgi::handle(py, &srv.st, conn, head, waiter, force_close, nr)
            }),
        };
        drop(permit);
        match after {
            After::KeepAlive(c) if signals::alive() && srv.keepalive.is_some() => conn = c,
            After::KeepAlive(c) | After::Close(c) => {
                c.close_graceful().await;
                return;
            }
            After::Drop => return,
        }
    }
    conn.close_graceful().await;
}

fn peer_of(srv: &Server, conn: &Conn) -> Peer {
    let ip = conn.peer.map(|p| p.ip());
    Peer {
        trusted: srv.forwarded.allows(ip),
        proxy_allowed: srv.proxy_allow.allows(ip),
        is_tls: conn.is_tls(),
        ip: ip.map(|i| i.to_string()),
    }
}

async fn read_head(srv: &Server, conn: &mut Conn, peer: &Peer, first: bool) -> HeadRead {
    // Incremental: a head that arrives a byte at a time costs linear time.
    let mut parser = HeadParser::new();
    conn.set_read_cap(super::conn::HEAD_READ);
    loop {
        match parser.parse(conn.pending(), &srv.st.parser, peer, first) {
            Ok(Status::Complete((head, used))) => {
                conn.consume(used);
                // gunicorn reads large length-delimited bodies in big steps, but chunked bodies
                // 8 KiB at a time, and its chunk-size line limit depends on those steps.
                if head.body != rgun_h1::BodyFraming::Chunked {
                    conn.set_read_cap(super::conn::BODY_READ);
                }
                return HeadRead::Head(Box::new(head));
            }
            Ok(Status::Partial) => {}
            Err(e) => return reject(srv, conn, e).await,
        }
        let idle = conn.pending().is_empty() && !first;
        let read = if idle {
            let Some(ka) = srv.keepalive else {
                return HeadRead::Close;
            };
            tokio::select! {
                r = tokio::time::timeout(ka, conn.read_more()) => r,
                () = signals::stopped() => return HeadRead::Close,
            }
        } else {
            tokio::time::timeout(srv.header_timeout, conn.read_more()).await
        };
        match read {
            Ok(Ok(0)) => {
                return match parse_head_eof(conn.pending(), &srv.st.parser, peer, first) {
                    None => HeadRead::Close,
                    Some(e) => reject(srv, conn, e).await,
                };
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return HeadRead::Close,
        }
    }
}

/// Answers a request that failed to parse, as gunicorn's `handle_error` does.
async fn reject(srv: &Server, conn: &mut Conn, e: ParseError) -> HeadRead {
    let handling = std::time::Instant::now();
    let Some(status) = e.status() else {
        observe::debug(&format!(
            "Ignored premature client disconnection. {}",
            e.log_text()
        ));
        return HeadRead::Close;
    };
    if status == 500 {
        observe::exception(
            "Error handling request (no URI read)",
            &format!("rgun_h1::{}: {}", e.name(), e.log_text()),
        );
    } else {
        let ip = conn.peer.map(|p| p.ip().to_string()).unwrap_or_default();
        observe::warning(&format!("Invalid request from ip={ip}: {}", e.log_text()));
    }
    if e.has_request() {
        // gunicorn's handle_error access-logs (and measures) a request it has an object for.
        observe::statsd::access(handling.elapsed(), Some(status));
        if let Some(fmt) = &srv.st.access {
            log_rejected_request(fmt, conn, status, e.reason());
        }
    }
    let page = rgun_h1::error_page(status, e.reason(), &e.message());
    if conn.write_all(&page).await.is_err() {
        observe::debug("Failed to send error message.");
    }
    HeadRead::Close
}

/// The access line for a request that failed after its request line parsed (gunicorn has a
/// request object then): the line is taken from the buffered head.
fn log_rejected_request(fmt: &observe::AccessFormat, conn: &Conn, status: u16, reason: &str) {
    let buf = conn.pending();
    let buf = buf.strip_prefix(b"\r\n").unwrap_or(buf);
    let line_end = memchr::memmem::find(buf, b"\r\n").unwrap_or(buf.len());
    let line: String = buf[..line_end].iter().map(|b| *b as char).collect();
    let mut parts = line.splitn(3, ' ');
    let (method, uri, protocol) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let query = uri
        .split_once('?')
        .map_or("", |(_, q)| q.split('#').next().unwrap_or(""));
    let status = format!("{status} {reason}");
    let rec = observe::ErrorRecord {
        method,
        uri,
        protocol,
        query,
        remote: crate::wsgi::remote_pair(conn),
        status: &status,
    };
    observe::access(&fmt.render(&rec));
}

async fn wait_idle(srv: &Server) {
    loop {
        let closed = srv.conn_closed.notified();
        tokio::pin!(closed);
        closed.as_mut().enable();
        if srv.conns.load(Ordering::Relaxed) == 0 {
            return;
        }
        closed.await;
    }
}

async fn watch_signals(pipe: &'static WakeupPipe) {
    let Ok(rx) = pipe
        .read
        .try_clone()
        .and_then(tokio::net::unix::pipe::Receiver::from_owned_fd)
    else {
        observe::error("cannot watch the signal wakeup pipe");
        return;
    };
    loop {
        if rx.readable().await.is_err() {
            return;
        }
        let mut buf = [0u8; 64];
        while matches!(rx.try_read(&mut buf), Ok(n) if n > 0) {}
        let res = Python::attach(|py| {
            py.check_signals().map_err(|e| {
                if e.is_instance_of::<pyo3::exceptions::PySystemExit>(py) {
                    e.value(py)
                        .getattr("code")
                        .ok()
                        .and_then(|c| c.extract::<i32>().ok())
                        .unwrap_or(0)
                } else {
                    observe::exception(
                        "Exception in signal handler",
                        &crate::python::format_traceback(py, &e),
                    );
                    1
                }
            })
        });
        if let Err(code) = res {
            EXIT_CODE.store(code, Ordering::Relaxed);
            signals::stop(true);
        }
    }
}

async fn watch_parent(ppid: u32) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if nix::unistd::getppid().as_raw() != ppid as i32 {
            observe::info(&format!(
                "Parent changed, shutting down: <Worker {}>",
                std::process::id()
            ));
            signals::stop(true);
            return;
        }
    }
}

async fn tick_heartbeat(hb: Arc<Heartbeat>, every: Duration) {
    loop {
        hb.notify();
        tokio::time::sleep(every).await;
    }
}
