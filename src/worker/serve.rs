//! The worker's serving loop on a tokio runtime built after the fork.
//!
//! * Accepting: one task per listener; it accepts only while a request slot is free (a worker
//!   takes only what it can serve) and below `worker_connections`.
//! * Connections: one task each. Request heads are read asynchronously, so slow clients cost
//!   no thread. A complete request takes a slot and runs the app **inline** on the runtime
//!   thread that read its head: no hand-off to another thread.
//! * Two runtimes. `sync` and one-thread `gthread`: a current-thread runtime on the main thread,
//!   which also watches the signal pipe, the heartbeat and the parent. `gthread` with N > 1
//!   threads: a multi-thread runtime of N threads (work stealing lets any idle thread pick up
//!   any ready connection, as in gunicorn where any free pool thread takes any ready
//!   connection), each with one persistent Python thread state (`python::tstate`); the main
//!   thread stays outside tokio in [`control_loop`] (signal handlers, heartbeat, parent watch,
//!   graceful stop), so it answers signals even while every runtime thread runs the app.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use pyo3::prelude::*;
use rgun_h1::{HeadParser, ParseError, ParserConfig, Peer, RequestHead, Status, parse_head_eof};
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, Semaphore};

use super::conn::{Conn, ListenerInfo, Stream, Waiter};
use super::signals;
use super::trust::AllowList;
use crate::config::Config;
use crate::observe;
use crate::python::signals::WakeupPipe;
use crate::unix::conn_share;
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
    /// Request slots of a multi-thread runtime (`threads`); unused with one thread.
    slots: Semaphore,
    /// The gate and long-call watch of a multi-thread runtime (`handoff`).
    handoff: Option<Arc<super::handoff::Watch>>,
    conns: AtomicUsize,
    conn_closed: Notify,
    /// Accepted connections whose task has not run yet (multi-thread runtime only), and the
    /// signal that one has.
    starting: AtomicUsize,
    conn_started: Notify,
    max_requests: u64,
    /// The signal wakeup pipe for blocking waits in app code: only when the app runs on the
    /// main thread (where CPython runs signal handlers).
    app_wakeup: Option<BorrowedFd<'static>>,
    forwarded: AllowList,
    proxy_allow: AllowList,
    tls: Option<super::tls::Tls>,
}

impl Server {
    /// Whether this worker balances its accepts with its siblings (`conn_share`): only where
    /// connections stay open (gthread keeping them alive). A worker that closes each
    /// connection after one request (sync, keepalive 0) sheds its share with every response,
    /// and there the wait only idled it: 9.1k hello req/s against 25.1k with wrk's keep-alive
    /// requests on the sync worker.
    fn balances_accepts(&self) -> bool {
        self.keepalive.is_some()
    }
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
        handoff: (threads > 1).then(|| super::handoff::Watch::new(threads)),
        conns: AtomicUsize::new(0),
        conn_closed: Notify::new(),
        starting: AtomicUsize::new(0),
        conn_started: Notify::new(),
        max_requests: setup.max_requests,
        app_wakeup: (threads == 1).then(|| wakeup.read.as_fd()),
        forwarded: AllowList::new(cfg.list("forwarded_allow_ips")),
        proxy_allow: AllowList::new(cfg.list("proxy_allow_ips")),
        tls: setup.tls.clone(),
    });
    let graceful = Duration::from_secs(u64::try_from(cfg.int("graceful_timeout")).unwrap_or(30));
    if threads > 1 {
        let ctl = Control {
            wakeup,
            heartbeat,
            ppid: setup.ppid,
            graceful,
        };
        return serve_threaded(py, srv, setup.listeners, ctl);
    }

    let rt = match tokio::runtime::Builder::new_current_thread()
        .on_thread_park(|| {
            // Where a turn of app calls ends, for holding responses (`outbox`).
            super::outbox::runtime_parks();
            // The GIL is held while tasks run and let go while the runtime waits (`tstate`).
            crate::python::tstate::park_attached();
        })
        .on_thread_unpark(crate::python::tstate::unpark_attached)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return runtime_error(&e),
    };
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
    crate::python::tstate::hold_between_parks(py, || {
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
    drop(srv);
    EXIT_CODE.load(Ordering::Relaxed)
}

fn runtime_error(e: &std::io::Error) -> i32 {
    observe::error(&format!(
        "Exception in worker process: cannot build the runtime: {e}"
    ));
    3
}

/// What the main thread watches while a multi-thread runtime serves.
struct Control {
    wakeup: &'static WakeupPipe,
    heartbeat: Arc<Heartbeat>,
    ppid: u32,
    graceful: Duration,
}

/// `gthread` with N > 1 threads: connection tasks on a multi-thread runtime of N threads, the
/// main thread in [`control_loop`].
fn serve_threaded(py: Python<'_>, srv: Arc<Server>, listeners: Vec<Listener>, ctl: Control) -> i32 {
    let (wake_read, wake_write) =
        match nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC) {
            Ok(p) => p,
            Err(e) => return runtime_error(&e.into()),
        };
    signals::set_main_wake(wake_write);
    let Some(watch) = srv.handoff.clone() else {
        return runtime_error(&std::io::Error::other("no hand-off watch"));
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(srv.threads)
        .thread_name("rgun-gthread")
        // One Python thread state per runtime thread, for the thread's whole life.
        .on_thread_start({
            let w = watch.clone();
            move || {
                w.thread_starts();
                crate::python::tstate::register();
            }
        })
        .on_thread_stop(crate::python::tstate::unregister)
        .on_thread_park({
            let w = watch.clone();
            move || {
                crate::python::tstate::release_sticky();
                w.thread_parks();
                super::outbox::runtime_parks();
            }
        })
        .on_thread_unpark({
            let w = watch.clone();
            move || w.thread_unparks()
        })
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return runtime_error(&e),
    };
    watch.start(rt.handle().clone());
    {
        let _entered = rt.enter();
        for l in listeners {
            match accept_source(l) {
                Ok((src, info)) => {
                    rt.spawn(accept_loop(srv.clone(), src, info));
                }
                Err(e) => observe::error(&format!("cannot use listener: {e}")),
            }
        }
    }
    // The main thread waits without the GIL: a runtime thread may keep it between requests, and
    // the heartbeat must not depend on getting it back.
    py.detach(|| control_loop(&srv, &ctl, &wake_read));
    // No thread may wait at the gate while the runtime shuts down.
    watch.open();
    // Shutting the runtime down waits for its threads, which need the GIL to finish the
    // requests they run and to drop their thread states.
    py.detach(|| drop(rt));
    drop(srv);
    EXIT_CODE.load(Ordering::Relaxed)
}

/// The main thread of a multi-thread `gthread` worker, gunicorn's `ThreadWorker.run` loop:
/// notify the heartbeat (also while every thread runs the app), run Python signal handlers,
/// watch the parent; once stopped, wait up to `graceful_timeout` for connections to finish.
/// Runs detached from the interpreter; it attaches only to run signal handlers.
fn control_loop(srv: &Server, ctl: &Control, wake: &OwnedFd) {
    while signals::alive() {
        ctl.heartbeat.notify();
        if nix::unistd::getppid().as_raw() != ctl.ppid as i32 {
            observe::info(&format!(
                "Parent changed, shutting down: <Worker {}>",
                std::process::id()
            ));
            signals::stop(true);
            break;
        }
        main_wait(ctl, wake, Duration::from_millis(500));
    }
    if signals::quick() {
        return;
    }
    let deadline = Instant::now() + ctl.graceful;
    while srv.conns.load(Ordering::Relaxed) > 0 && !signals::quick() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        main_wait(ctl, wake, left.min(Duration::from_millis(500)));
    }
}

/// Waits until a signal arrives, [`signals::wake_main`] is called, or `timeout` passes; then
/// runs the Python signal handlers (attached) if a signal arrived.
fn main_wait(ctl: &Control, wake: &OwnedFd, timeout: Duration) {
    if wait_wake(ctl, wake, timeout) {
        ctl.wakeup.drain();
        if let Err(code) = Python::attach(run_signal_handlers) {
            EXIT_CODE.store(code, Ordering::Relaxed);
            signals::stop(true);
        }
    }
}

/// Polls the signal pipe and the main wake pipe; true when a signal arrived.
fn wait_wake(ctl: &Control, wake: &OwnedFd, timeout: Duration) -> bool {
    let mut fds = [
        PollFd::new(ctl.wakeup.read.as_fd(), PollFlags::POLLIN),
        PollFd::new(wake.as_fd(), PollFlags::POLLIN),
    ];
    let ms =
        PollTimeout::try_from(timeout.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX);
    match poll(&mut fds, ms) {
        Ok(_) => {}
        // EINTR: a signal; its handler runs below.
        Err(_) => return true,
    }
    let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
    if ready(&fds[1]) {
        let mut buf = [0u8; 64];
        while matches!(nix::unistd::read(wake, &mut buf), Ok(n) if n > 0) {}
    }
    ready(&fds[0])
}

/// Runs pending Python signal handlers (main thread). `Err(code)` when one raised: the exit
/// code of its `SystemExit`, or 1 for another exception (logged).
fn run_signal_handlers(py: Python<'_>) -> Result<(), i32> {
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
        // connections in the backlog for idle siblings. (With one runtime thread the slot is
        // always free whenever this task runs: the app runs on that thread.)
        if srv.threads > 1 {
            tokio::select! {
                p = srv.slots.acquire() => drop(p),
                () = signals::stopped() => {
                    srv.conns.fetch_sub(1, Ordering::Relaxed);
                    srv.conn_closed.notify_waiters();
                    return;
                }
            }
        }
        // The connections this worker has open, without the place just reserved.
        let open = srv
            .balances_accepts()
            .then(|| srv.conns.load(Ordering::Relaxed).saturating_sub(1));
        let accepted = tokio::select! {
            r = accept(&src, open) => r,
            () = signals::stopped() => {
                srv.conns.fetch_sub(1, Ordering::Relaxed);
                srv.conn_closed.notify_waiters();
                return;
            }
        };
        match accepted {
            Ok((stream, peer)) => {
                if srv.balances_accepts() {
                    conn_share::publish(srv.conns.load(Ordering::Relaxed));
                }
                // One connection per turn (like gunicorn's one accept per poller event): the
                // new connection is served before this worker takes another, so a burst of
                // connects is shared with the sibling workers instead of landing on one.
                // Boxed: tokio moves a task's future (about 3 KB here) into the task and
                // overwrites it in place when it completes, whole-size copies each; a box is
                // copied once.
                let task = Box::pin(serve_conn(srv.clone(), stream, peer, info.clone()));
                if srv.threads > 1 {
                    srv.starting.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(task);
                    if !wait_started(&srv).await {
                        return;
                    }
                } else {
                    tokio::spawn(task);
                    // Behind the new connection's task in the queue, without the I/O driver
                    // poll of `next_turn` (one `epoll_wait` per connection more): the next
                    // accept tells whether more are waiting.
                    HandOff::default().await;
                }
            }
            Err(e) => {
                srv.conns.fetch_sub(1, Ordering::Relaxed);
                observe::debug(&format!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// On a multi-thread runtime: waits until the connection just accepted has started (its task
/// runs on whichever thread is free). A yield here would cost a wake-up of an idle runtime
/// thread per connection; waiting for the task costs nothing when it starts at once. False
/// when the worker stops meanwhile.
async fn wait_started(srv: &Server) -> bool {
    loop {
        // Registered before the check, so a start in between is not missed.
        let started = srv.conn_started.notified();
        tokio::pin!(started);
        started.as_mut().enable();
        if srv.starting.load(Ordering::Relaxed) == 0 {
            return true;
        }
        tokio::select! {
            () = &mut started => {}
            () = signals::stopped() => return false,
        }
    }
}

/// Accepts one connection, non-blocking from the start (`accept4`), not registered with the
/// runtime yet (see `stream.rs`). Readiness stays set until `accept` says `EAGAIN`, so a burst
/// of connections is accepted without a wait per connection.
///
/// A worker with `open` connections kept alive, more than its share of all the workers' open
/// connections (`conn_share`), first gives its siblings a millisecond to take a waiting connection, then
/// takes it if it is still there (they may be busy too). Without this, the worker that ran when
/// a burst of connects arrived kept most of them: 13 of 64 against 53 in hello probes, the
/// busy worker CPU-bound, its sibling partly idle, its clients waiting tens of ms at the tail.
async fn accept(
    src: &Source,
    open: Option<usize>,
) -> std::io::Result<(Stream, Option<std::net::SocketAddr>)> {
    use nix::libc::{SOCK_CLOEXEC, SOCK_NONBLOCK};
    let mut deferred = false;
    loop {
        let mut guard = src.sock.readable().await?;
        if !deferred && open.is_some_and(conn_share::over_share) {
            deferred = true;
            drop(guard);
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        match guard.try_io(|s| s.get_ref().accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)) {
            Ok(Ok((s, addr))) => {
                // TCP_NODELAY is inherited from the listening socket.
                let peer = if src.tcp { addr.as_socket() } else { None };
                return Ok((Stream::new(std::os::fd::OwnedFd::from(s)), peer));
            }
            Ok(Err(e)) => return Err(e),
            // A sibling took it: the next one may be waited for again.
            Err(_would_block) => deferred = false,
        }
    }
}

/// Decrements the connection count when a connection task ends, however it ends.
struct ConnGuard(Arc<Server>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let open = self.0.conns.fetch_sub(1, Ordering::Relaxed) - 1;
        if self.0.balances_accepts() {
            conn_share::publish(open);
        }
        self.0.conn_closed.notify_waiters();
        if !signals::alive() {
            // A main thread waiting for the last connection (graceful stop) re-checks.
            signals::wake_main();
        }
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
    let ip = peer
        .map(|p| super::addr_text::ip(p.ip()))
        .unwrap_or_default();
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
    if srv.threads > 1 {
        srv.starting.fetch_sub(1, Ordering::Relaxed);
        srv.conn_started.notify_waiters();
        // That woke the accept loop into this thread's LIFO slot, which no other thread can
        // take: let it run before an app call here can block this thread (`handoff`).
        HandOff::default().await;
    }
    let Some(mut conn) = open(&srv, stream, peer, info).await else {
        return;
    };
    if srv.keepalive.is_some() {
        // gthread, connections kept alive: the turn's finished responses go out together
        // (`outbox`). A response before a close is never held.
        conn.hold_responses();
    }
    let mut first = true;
    // What the parser needs to know about the peer, computed once per connection.
    let peer = peer_of(&srv, &conn);
    // The keep-alive timer, one per connection: each wait pushes its deadline later, which
    // tokio does without touching its timer wheel (a new timer per request did).
    let idle = tokio::time::sleep(srv.keepalive.unwrap_or_default());
    tokio::pin!(idle);
    // The worker's stop, one wait per connection: registered at its first poll and kept
    // across requests (a new wait per request registered and unregistered with the `Notify`
    // every time: about 300 instructions of a hello request).
    let stop = signals::stopped();
    tokio::pin!(stop);
    loop {
        let head =
            match read_head(&srv, &mut conn, &peer, first, idle.as_mut(), stop.as_mut()).await {
                HeadRead::Head(h) => h,
                HeadRead::Close => break,
            };
        first = false;
        conn.requests += 1;
        // Only a multi-thread runtime needs the count: with one thread, nothing else runs
        // while the app does.
        let permit = if srv.threads > 1 {
            let Ok(permit) = srv.slots.acquire().await else {
                break;
            };
            Some(permit)
        } else {
            None
        };
        if srv.threads == 1 && srv.keepalive.is_some() && super::outbox::reads_first() {
            // The turn's other requests are read before this app runs (`reads_first`).
            tokio::task::yield_now().await;
        }
        // The app blocks this runtime thread. The gate (`handoff`) lets another runtime thread
        // take over the I/O driver and the queued tasks once a call runs long. When calls run
        // long often, or without the gate's watchdog, yield before every call so that tokio
        // wakes an idle runtime thread for that at once.
        if srv.handoff.as_ref().is_some_and(|w| w.eager()) {
            HandOff::default().await;
        }
        if signals::quick() {
            return;
        }
        let nr = srv.st.nr.fetch_add(1, Ordering::Relaxed) + 1;
        // Once, even when several threads pass the limit at the same time.
        if nr >= srv.max_requests && signals::take_alive() {
            observe::info("Autorestarting worker after current request.");
            signals::stop(false);
        }
        // gthread with keepalive 0 closes every connection (gunicorn forces `Connection: close`).
        let force_close = !signals::alive() || srv.keepalive.is_none();
        // Inline, on the runtime thread that read the head. On a multi-thread runtime this
        // thread has a persistent Python thread state, so the attach only takes the GIL.
        // Turns are counted only where responses may be held (gthread keeping connections alive).
        let holding = srv.keepalive.is_some();
        // Timed only where `outbox::reads_first` reads the average: one runtime thread.
        let timed = (holding && srv.threads == 1).then(std::time::Instant::now);
        if holding {
            conn.hold_next(super::outbox::call_starts());
        }
        let call = |py: Python<'_>| {
            let _call = srv.handoff.as_ref().map(|w| w.call());
            let waiter = Waiter {
                wakeup: srv.app_wakeup,
                deadline: None,
            };
            wsgi::handle(py, &srv.st, conn, head, waiter, force_close, nr).released(py)
        };
        let after = if srv.threads > 1 {
            crate::python::tstate::attach_sticky(call)
        } else {
            Python::attach(call)
        };
        if holding {
            super::outbox::call_ended(timed);
        }
        drop(permit);
        match after {
            After::KeepAlive(c) if signals::alive() && srv.keepalive.is_some() => {
                conn = c;
                // Let every other ready connection have its turn before this one's next
                // request. The app's work after the response (its `close()`, Django's
                // request_finished) often gives the client time to send the next request, and
                // without this a few connections would be served back to back (up to tokio's
                // budget of 128 requests each) while the others wait: p99 in the hundreds of ms.
                next_turn(&srv).await;
                // The turn's held responses go out together (the first connection back sends
                // them all).
                super::outbox::send_turn();
                if let Err(e) = conn.send_held().await {
                    wsgi::log_ignored(e.raw_os_error().unwrap_or(0));
                    return;
                }
            }
            After::KeepAlive(c) | After::Close(c) => {
                c.close_graceful().await;
                return;
            }
            After::Drop => return,
        }
    }
    conn.close_graceful().await;
}

/// Gives the other ready tasks of this worker their turn. On the current-thread runtime the
/// task waits until the I/O driver has been polled too (`yield_now`). On a multi-thread runtime
/// that would hold it until this thread parks, which an app call on this thread can delay for
/// as long as the app runs; there it goes to the back of the queue, where any idle thread can
/// take it ([`HandOff`]).
async fn next_turn(srv: &Server) {
    if srv.threads > 1 {
        HandOff::default().await;
    } else {
        tokio::task::yield_now().await;
    }
}

/// Pending once, waking itself while it runs. tokio reschedules a task woken during its own poll
/// as a yield: at the back of the thread's queue (where other threads can steal it, unlike the
/// LIFO slot), and on a multi-thread runtime it notifies an idle runtime thread, if there is
/// one, to come and look for work. That thread then polls the I/O driver when it finds nothing
/// else to do. `yield_now` does not notify (tokio defers it until this thread parks, and on the
/// current-thread runtime until the I/O driver has been polled).
#[derive(Default)]
struct HandOff(bool);

impl std::future::Future for HandOff {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

fn peer_of(srv: &Server, conn: &Conn) -> Peer {
    let ip = conn.peer.map(|p| p.ip());
    Peer {
        trusted: srv.forwarded.allows(ip),
        proxy_allowed: srv.proxy_allow.allows(ip),
        is_tls: conn.is_tls(),
        // Only the PROXY protocol's refusal message shows it.
        ip: ip
            .filter(|_| srv.st.parser.proxy_protocol != rgun_h1::ProxyMode::Off)
            .map(super::addr_text::ip),
    }
}

async fn read_head(
    srv: &Server,
    conn: &mut Conn,
    peer: &Peer,
    first: bool,
    mut idle: std::pin::Pin<&mut tokio::time::Sleep>,
    mut stop: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> HeadRead {
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
                return HeadRead::Head(head);
            }
            Ok(Status::Partial) => {}
            Err(e) => return reject(srv, conn, e).await,
        }
        let between_requests = conn.pending().is_empty() && !first;
        let read = if between_requests {
            let Some(ka) = srv.keepalive else {
                return HeadRead::Close;
            };
            // The idle sleep stays armed for an earlier deadline and is moved on only when it
            // fires before this one (moving it for every request cost a timer-wheel update).
            let until = tokio::time::Instant::now() + ka;
            loop {
                tokio::select! {
                    biased;
                    r = conn.read_more() => break Ok(r),
                    () = &mut idle => {
                        if tokio::time::Instant::now() >= until {
                            return HeadRead::Close;
                        }
                        idle.as_mut().reset(until);
                    }
                    // Not polled again once it has fired: the connection closes.
                    () = &mut stop => return HeadRead::Close,
                }
            }
        } else {
            tokio::time::timeout(srv.header_timeout, conn.read_more()).await
        };
        match read {
            Ok(Ok(0)) => {
                return match parse_head_eof(conn.pending(), &srv.st.parser, peer, first) {
                    // The client closed between requests (gunicorn's parser stops the
                    // iteration: the `StopIteration` text is empty).
                    None => {
                        observe::debug("Closing connection. ");
                        HeadRead::Close
                    }
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
        if let Err(code) = Python::attach(run_signal_handlers) {
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
