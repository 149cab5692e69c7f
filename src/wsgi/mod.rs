//! The PEP 3333 bridge: turns one parsed request on a connection into an app call and writes the
//! response, with gunicorn's semantics for every edge (errors before and after the headers,
//! `close()` always called, access log, `pre_request`/`post_request`).
//!
//! Runs on the thread that calls the app, with the GIL held; socket waits release it.

mod access;
pub(crate) mod environ;
mod exchange;
mod header_list;
mod input;
pub(crate) mod py_socket;
mod response;
mod scratch;
mod spare;
mod start_response;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use rgun_h1::{ParseError, RequestHead};

use crate::config::Config;
use crate::observe::{self, AccessFormat};
use crate::python;
use crate::worker::conn::{Conn, IoStop, Waiter};
pub use exchange::Exchange;
use input::BodyState;
use response::ResponseState;
use start_response::io_stop_to_py;

/// Per-worker Python objects and settings the bridge needs on every request.
pub struct Statics {
    pub app: Py<PyAny>,
    /// The base environ and the per-request placeholders ([`environ::prototype`]).
    environ_prototype: Py<PyDict>,
    file_wrapper: Py<PyAny>,
    header_keys: environ::HeaderKeys,
    script_name: String,
    pub access: Option<AccessFormat>,
    pub sendfile: bool,
    pub parser: rgun_h1::ParserConfig,
    /// gunicorn's sync worker closes every connection after one request.
    pub force_close: bool,
    pub cfg: Arc<Config>,
    pub worker_obj: Py<PyAny>,
    request_class: Py<PyAny>,
    response_class: Py<PyAny>,
    /// The `pre_request` / `post_request` hooks, looked up once.
    pre_request: Option<Py<PyAny>>,
    post_request: Option<Py<PyAny>>,
    /// Requests handled by this worker (`worker.nr`), counted by the serving loop; a request
    /// that fails before its environ is built is not counted (as in gunicorn).
    pub nr: std::sync::atomic::AtomicU64,
}

impl Statics {
    pub fn new(
        py: Python<'_>,
        tls: bool,
        cfg: Arc<Config>,
        app: Py<PyAny>,
        multithread: bool,
        worker_obj: Py<PyAny>,
        parser: rgun_h1::ParserConfig,
    ) -> PyResult<Statics> {
        let helpers = py.import("rgun._wsgi")?;
        let base = PyDict::new(py);
        base.set_item(
            "wsgi.errors",
            helpers
                .getattr("WSGIErrorsWrapper")?
                .call1((cfg.str("errorlog"),))?,
        )?;
        base.set_item("wsgi.version", PyTuple::new(py, [1, 0])?)?;
        base.set_item("wsgi.multithread", multithread)?;
        base.set_item("wsgi.multiprocess", cfg.int("workers") > 1)?;
        base.set_item("wsgi.run_once", false)?;
        base.set_item("wsgi.file_wrapper", helpers.getattr("FileWrapper")?)?;
        base.set_item("wsgi.input_terminated", true)?;
        base.set_item(
            "SERVER_SOFTWARE",
            format!("gunicorn/{}", crate::GUNICORN_VERSION),
        )?;
        let script_name = py
            .import("os")?
            .getattr("environ")?
            .call_method1("get", ("SCRIPT_NAME", ""))?
            .extract()?;
        let access = observe::access_enabled()
            .then(|| AccessFormat::compile(cfg.str("access_log_format").unwrap_or("")));
        let pre_request = cfg.object("pre_request").map(|h| h.clone_ref(py));
        let post_request = cfg.object("post_request").map(|h| h.clone_ref(py));
        Ok(Statics {
            pre_request,
            post_request,
            app,
            environ_prototype: environ::prototype(py, &base)?.unbind(),
            file_wrapper: helpers.getattr("FileWrapper")?.unbind(),
            header_keys: environ::HeaderKeys::default(),
            script_name,
            access,
            // gunicorn never uses sendfile on TLS connections.
            sendfile: cfg.sendfile_enabled() && !tls,
            parser,
            force_close: !cfg.is_gthread(),
            cfg,
            worker_obj,
            request_class: py.import("rgun._objects")?.getattr("Request")?.unbind(),
            response_class: py.import("rgun._objects")?.getattr("Response")?.unbind(),
            nr: std::sync::atomic::AtomicU64::new(0),
        })
    }
}

impl After {
    /// A connection about to close lets go of its Python objects now, while attached (the
    /// close itself runs detached).
    pub fn released(self, py: Python<'_>) -> After {
        match self {
            After::Close(mut c) => {
                c.release_python(py);
                After::Close(c)
            }
            after => after,
        }
    }
}

/// What happened to the connection after one exchange.
pub enum After {
    /// Reusable for another request.
    KeepAlive(Conn),
    /// Close it gracefully.
    Close(Conn),
    /// Already unusable (the client went away); just drop it.
    Drop,
}

/// Serves one request. `force_close` forces `Connection: close` (stopping, max_requests).
pub fn handle(
    py: Python<'_>,
    st: &Statics,
    conn: Conn,
    head: Box<RequestHead>,
    waiter: Waiter,
    force_close: bool,
    nr: u64,
) -> After {
    let hooked = st.pre_request.is_some() || st.post_request.is_some();
    let req_obj = if hooked {
        match run_pre_request(py, st, &conn, &head, nr) {
            Ok(req_obj) => req_obj,
            Err((e, req_obj)) => return pre_request_failed(py, st, conn, &head, &e, &req_obj),
        }
    } else {
        py.None()
    };
    // gunicorn logs the request line only when no `pre_request` hook is set.
    if st.pre_request.is_none() && observe::enabled(observe::Level::Debug) {
        log_request_line(&head);
    }
    if head.expect_continue
        && let Err(e) = conn.write_all_blocking(&[b"HTTP/1.1 100 Continue\r\n\r\n"], &waiter)
    {
        return socket_error(py, e);
    }
    // Only the access log and StatsD read the duration.
    let start = (st.access.is_some() || observe::statsd::enabled()).then(Instant::now);
    let mut conn = conn;
    // The connection's last request (the sync worker's only one) takes the template itself
    // (see `environ::ConnEnviron::start`): copying it would only serve a request that never
    // comes. A later request (there is none on these paths) would build a new template. Other
    // requests keep their filled environ for the thread's next ones when it was not already
    // such a copy.
    let last = head.should_close() || force_close || st.force_close;
    let listener = Arc::as_ptr(&conn.listener) as usize;
    let (environ, shaped) =
        match conn_environ(py, st, &mut conn).and_then(|ce| ce.start(py, &head, last, listener)) {
            Ok(e) => e,
            Err(e) => return app_error(py, st, conn, &head, &e),
        };
    let filled = match conn.environ.as_deref() {
        Some(ce) => environ::fill(
            py,
            &environ,
            shaped,
            &head,
            &conn,
            ce,
            &st.header_keys,
            &st.script_name,
        ),
        None => Err(pyo3::exceptions::PyRuntimeError::new_err(
            "no connection environ",
        )),
    };
    if last {
        conn.environ = None;
    } else if !shaped
        && matches!(filled, Ok(Ok(())))
        && let Err(e) = environ::keep_shape(&environ, &head, listener)
    {
        return app_error(py, st, conn, &head, &e);
    }
    match filled {
        Ok(Ok(())) => {}
        Ok(Err(problem)) => {
            return environ_refused(
                py, st, conn, &head, &waiter, &req_obj, &problem.0, nr, hooked,
            );
        }
        Err(e) => return app_error(py, st, conn, &head, &e),
    }
    let body = BodyState::new(&head.body, &st.parser);
    let resp = ResponseState::new(
        head.version,
        head.method(),
        head.should_close(),
        force_close || st.force_close,
    );
    let ex = Arc::new(Mutex::new(Exchange {
        conn: Some(conn),
        body,
        resp,
        waiter,
    }));
    let prepared = (|| -> PyResult<()> {
        environ.set_item(intern!(py, "wsgi.input"), spare::input(py, &ex)?)?;
        environ.set_item(
            intern!(py, "wsgi.early_hints"),
            spare::early_hints(py, &ex)?,
        )?;
        Ok(())
    })();
    let (returned, outcome) = match prepared {
        Ok(()) => run_app(py, st, &ex, &environ),
        Err(e) => (false, Err(e)),
    };
    let result = finish(py, st, &ex, &environ, &head, returned, outcome, start);
    if let Some(hook) = st.post_request.as_ref() {
        run_post_request(py, st, hook, &ex, &req_obj, &environ);
    }
    // Another thread (one the app started) may still hold the exchange: then it keeps it.
    if let Ok(mut g) = ex.try_lock() {
        g.body.release();
    }
    // Its allocations serve the next request parsed on this thread.
    rgun_h1::recycle(head);
    result
}

/// The `pre_request` hook (and the `req` object both hooks receive), outside the hot path.
/// Returns the `req` object, with the hook's exception when it raised.
#[cold]
#[inline(never)]
fn run_pre_request(
    py: Python<'_>,
    st: &Statics,
    conn: &Conn,
    head: &RequestHead,
    nr: u64,
) -> Result<Py<PyAny>, (PyErr, Py<PyAny>)> {
    // gunicorn counts the request after pre_request has run.
    crate::python::hooks::set_attr(py, &st.worker_obj, "nr", nr.saturating_sub(1));
    let req_obj = request_object(py, st, head, conn);
    let Some(hook) = st.pre_request.as_ref() else {
        crate::python::hooks::set_attr(py, &st.worker_obj, "nr", nr);
        return Ok(req_obj);
    };
    let called = hook
        .bind(py)
        .call1((st.worker_obj.clone_ref(py), req_obj.clone_ref(py)));
    crate::python::hooks::set_attr(py, &st.worker_obj, "nr", nr);
    match called {
        Ok(_) => Ok(req_obj),
        Err(e) => Err((e, req_obj)),
    }
}

/// `pre_request` raised: gunicorn's error page, then `post_request` with an empty environ.
#[cold]
#[inline(never)]
fn pre_request_failed(
    py: Python<'_>,
    st: &Statics,
    conn: Conn,
    head: &RequestHead,
    e: &PyErr,
    req_obj: &Py<PyAny>,
) -> After {
    let after = app_error(py, st, conn, head, e);
    post_request_without_environ(py, st, req_obj);
    after
}

#[cold]
#[inline(never)]
fn log_request_line(head: &RequestHead) {
    observe::debug(&format!("{} {}", head.method(), head.path()));
}

/// `post_request` for a request that failed before its environ was built (an empty one).
#[cold]
#[inline(never)]
fn post_request_without_environ(py: Python<'_>, st: &Statics, req_obj: &Py<PyAny>) {
    if let Some(hook) = st.post_request.as_ref() {
        let empty = PyDict::new(py);
        if let Err(e) = call_post_request(py, hook, st, req_obj, &empty, py.None()) {
            observe::exception(
                "Exception in post_request hook",
                &python::format_traceback(py, &e),
            );
        }
    }
}

/// An environ the request could not be turned into (gunicorn's `InvalidHeader` and the like
/// raised while building it): its 400-style answer, as gunicorn gives it.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn environ_refused(
    py: Python<'_>,
    st: &Statics,
    conn: Conn,
    head: &RequestHead,
    waiter: &Waiter,
    req_obj: &Py<PyAny>,
    problem: &str,
    nr: u64,
    hooked: bool,
) -> After {
    // The request is not counted: gunicorn fails before `nr += 1`.
    st.nr.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    if hooked {
        crate::python::hooks::set_attr(py, &st.worker_obj, "nr", nr.saturating_sub(1));
    }
    let handling = Instant::now();
    observe::warning(&format!(
        "Invalid request from ip={}: {}",
        peer_ip(&conn),
        problem
    ));
    write_error_page(&conn, waiter, 500, "Bad Request", problem);
    log_error_access(py, st, head, &conn, handling);
    post_request_without_environ(py, st, req_obj);
    After::Close(conn)
}

/// `post_request` after the app.
#[cold]
#[inline(never)]
fn run_post_request(
    py: Python<'_>,
    st: &Statics,
    hook: &Py<PyAny>,
    ex: &Arc<Mutex<Exchange>>,
    req_obj: &Py<PyAny>,
    environ: &Bound<'_, PyDict>,
) {
    let resp_obj = response_object(py, st, &lock(ex).resp);
    if let Err(e) = call_post_request(py, hook, st, req_obj, environ, resp_obj) {
        observe::exception(
            "Exception in post_request hook",
            &python::format_traceback(py, &e),
        );
    }
}

fn lock(ex: &Arc<Mutex<Exchange>>) -> std::sync::MutexGuard<'_, Exchange> {
    ex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The connection's environ template, built on its first request. `gunicorn.socket` is one
/// socket object per connection, sharing rgun's descriptor (a dup kept alive by a reference
/// cycle in the app would hold the connection open); the connection releases it (detached,
/// or kept for the thread's next connection on the same descriptor number) before closing the
/// descriptor.
fn conn_environ<'a>(
    py: Python<'_>,
    st: &Statics,
    conn: &'a mut Conn,
) -> PyResult<&'a environ::ConnEnviron> {
    if conn.environ.is_none() {
        // One socket object per connection, even if its template is rebuilt: an app may hold
        // the earlier one, and only the connection releases it (`Conn::release_python`).
        let sock = match &conn.py_socket {
            Some(sock) => sock.clone_ref(py),
            None => {
                let sock = py_socket::open(py, conn.socket_family(), conn.fd())?;
                conn.py_socket = Some(sock.clone_ref(py));
                sock
            }
        };
        let ce = environ::ConnEnviron::new(py, st.environ_prototype.bind(py), sock, conn)?;
        conn.environ = Some(Box::new(ce));
    }
    conn.environ
        .as_deref()
        .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("no connection environ"))
}

/// Calls the app and writes its response. Returns whether the app call returned an iterable
/// (gunicorn access-logs only then) and the first exception from the app or from writing.
fn run_app(
    py: Python<'_>,
    st: &Statics,
    ex: &Arc<Mutex<Exchange>>,
    environ: &Bound<'_, PyDict>,
) -> (bool, PyResult<()>) {
    let start_response = match spare::start_response(py, ex) {
        Ok(s) => s,
        Err(e) => return (false, Err(e)),
    };
    let result = match st.app.bind(py).call1((environ, start_response)) {
        Ok(r) => r,
        Err(e) => return (false, Err(e)),
    };
    let iterated = write_result(py, st, ex, &result);
    // A plain list or tuple has no `close`; skipping the lookup avoids building an
    // AttributeError on every request.
    let plain = result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>();
    let closed = if plain {
        Ok(())
    } else {
        match result.getattr_opt(intern!(py, "close")) {
            Ok(Some(close)) => close.call0().map(|_| ()),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        }
    };
    (true, iterated.and(closed))
}

fn write_result(
    py: Python<'_>,
    st: &Statics,
    ex: &Arc<Mutex<Exchange>>,
    result: &Bound<'_, PyAny>,
) -> PyResult<()> {
    if st.sendfile && result.is_instance(st.file_wrapper.bind(py))? && send_file(py, ex, result)? {
        return finish_response(ex);
    }
    // Fast path: a list or tuple of bytes, written without an iterator.
    if let Ok(list) = result.cast::<PyList>() {
        for item in list.iter() {
            write_item(ex, &item)?;
        }
    } else if let Ok(tuple) = result.cast::<PyTuple>() {
        for item in tuple.iter() {
            write_item(ex, &item)?;
        }
    } else {
        for item in result.try_iter()? {
            write_item(ex, &item?)?;
        }
    }
    finish_response(ex)
}

/// Runs `f` on the exchange's connection and response, once the app has started the response
/// (gunicorn's `AssertionError` otherwise).
fn with_started<R>(
    ex: &Arc<Mutex<Exchange>>,
    f: impl FnOnce(&Conn, &mut ResponseState, &Waiter) -> PyResult<R>,
) -> PyResult<R> {
    let mut g = lock(ex);
    let Exchange {
        conn, resp, waiter, ..
    } = &mut *g;
    let conn = conn
        .as_ref()
        .ok_or_else(|| pyo3::exceptions::PyOSError::new_err("connection gone"))?;
    if resp.status.is_none() {
        return Err(pyo3::exceptions::PyAssertionError::new_err(
            "Response headers not set!",
        ));
    }
    f(conn, resp, waiter)
}

fn write_item(ex: &Arc<Mutex<Exchange>>, item: &Bound<'_, PyAny>) -> PyResult<()> {
    with_started(ex, |conn, resp, waiter| match item.cast::<PyBytes>() {
        Ok(b) => resp
            .write(conn, waiter, b.as_bytes())
            .map_err(io_stop_to_py),
        Err(_) => {
            resp.write(conn, waiter, b"").map_err(io_stop_to_py)?;
            Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "{} is not a byte",
                item.repr()?
            )))
        }
    })
}

fn finish_response(ex: &Arc<Mutex<Exchange>>) -> PyResult<()> {
    with_started(ex, |conn, resp, waiter| {
        resp.close(conn, waiter).map_err(io_stop_to_py)
    })
}

/// `wsgi.file_wrapper` with a real file: `sendfile(2)` from the current offset, which is
/// restored afterwards. Returns false when the file cannot be sent that way.
fn send_file(
    py: Python<'_>,
    ex: &Arc<Mutex<Exchange>>,
    wrapper: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    let filelike = wrapper.getattr("filelike")?;
    let Ok(fileno) = filelike
        .call_method0("fileno")
        .and_then(|f| f.extract::<i32>())
    else {
        return Ok(false);
    };
    let os = py.import("os")?;
    let Ok(offset) = os
        .call_method1("lseek", (fileno, 0, 1))
        .and_then(|o| o.extract::<i64>())
    else {
        return Ok(false);
    };
    with_started(ex, |conn, resp, waiter| {
        let nbytes = match resp.response_length {
            Some(n) => n,
            None => {
                let size: i64 = os
                    .call_method1("fstat", (fileno,))?
                    .getattr("st_size")?
                    .extract()?;
                u64::try_from(size - offset).unwrap_or(0)
            }
        };
        if resp.omits_body() {
            resp.write(conn, waiter, b"").map_err(io_stop_to_py)?;
            if nbytes > 0 {
                response::no_body_warning(&resp.method, resp.status_code);
            }
            return Ok(true);
        }
        let mut head = Vec::new();
        if !resp.headers_sent {
            resp.header_block(&mut head);
            resp.headers_sent = true;
        }
        if resp.chunked {
            head.extend_from_slice(format!("{nbytes:X}\r\n").as_bytes());
        }
        conn.write_all_blocking(&[&head], waiter)
            .map_err(io_stop_to_py)?;
        // gunicorn does not count sendfile bytes in `resp.sent` (its access log shows 0).
        crate::worker::sendfile::send(conn, fileno, offset, nbytes, waiter)
            .map_err(io_stop_to_py)?;
        if resp.chunked {
            conn.write_all_blocking(&[b"\r\n"], waiter)
                .map_err(io_stop_to_py)?;
        }
        os.call_method1("lseek", (fileno, offset, 0))?;
        Ok(true)
    })
}

/// After the app: access log, error handling, and whether the connection lives on.
#[allow(clippy::too_many_arguments)]
fn finish(
    py: Python<'_>,
    st: &Statics,
    ex: &Arc<Mutex<Exchange>>,
    environ: &Bound<'_, PyDict>,
    head: &RequestHead,
    returned: bool,
    outcome: PyResult<()>,
    start: Option<Instant>,
) -> After {
    let mut g = lock(ex);
    let headers_sent = g.resp.headers_sent;
    // The access line and StatsD metrics for the response as it stands (gunicorn's `finally`
    // in handle_request; not when the app call itself raised before returning an iterable).
    if returned && let Some(start) = start {
        let duration = start.elapsed();
        if observe::statsd::enabled() {
            let status = g.resp.status.as_deref();
            observe::statsd::access(duration, status.and_then(observe::statsd::status_code));
        }
        if let Some(fmt) = &st.access {
            let rec = access::Record {
                environ,
                headers: &head.headers,
                resp_headers: &g.resp.headers,
                status: g.resp.status.clone().unwrap_or_default(),
                sent: Some(g.resp.sent),
                duration,
            };
            observe::access(&fmt.render(&rec));
        }
    }
    let Exchange {
        conn,
        body,
        resp,
        waiter,
    } = &mut *g;
    let Some(mut c) = conn.take() else {
        return After::Drop;
    };
    match outcome {
        Ok(()) => {
            if resp.should_close() || !crate::worker::signals::alive() {
                // The client has sent all it will when it asked to close, its body was read
                // to the end, and the response said `Connection: close` (an upgrade response
                // says `upgrade`, and its client may send more).
                c.client_done = body.finished() && head.client_closes() && !resp.upgrade;
                if !st.force_close {
                    // gunicorn's gthread worker says so; its sync worker does not.
                    observe::debug("Closing connection.");
                }
                return After::Close(c);
            }
            // Drain what the app left of the body so the next request starts at its head.
            // A body the app failed to read (and handled) leaves the connection unusable.
            if body.error.is_some() {
                return After::Close(c);
            }
            match body.drain(&mut c, waiter, 64 * 1024) {
                Ok(true) => After::KeepAlive(c),
                Ok(false) => After::Close(c),
                // gunicorn finds a malformed rest of the body while parsing the next request,
                // and answers it with the parser's error page.
                Err(pe) => {
                    let w = Waiter {
                        wakeup: None,
                        deadline: Some(Instant::now() + std::time::Duration::from_secs(5)),
                    };
                    drop(g);
                    client_error(py, st, c, head, &pe, &w)
                }
            }
        }
        Err(e) => {
            drop(g);
            app_failed(py, st, ex, c, head, &e, headers_sent)
        }
    }
}

/// The app (or writing its response) raised: gunicorn's `handle_error`, or a quiet close when
/// the client went away.
#[cold]
#[inline(never)]
fn app_failed(
    py: Python<'_>,
    st: &Statics,
    ex: &Arc<Mutex<Exchange>>,
    c: Conn,
    head: &RequestHead,
    e: &PyErr,
    headers_sent: bool,
) -> After {
    let handling = Instant::now();
    // A body error the app let escape: answer it as the parser error it is.
    let body_error = lock(ex).body.error.take();
    if let Some(pe) = body_error {
        return client_error(
            py,
            st,
            c,
            head,
            &pe,
            &Waiter {
                wakeup: None,
                deadline: None,
            },
        );
    }
    if is_socket_error(py, e) {
        return socket_error_py(py, e);
    }
    if headers_sent {
        observe::exception("Error handling request", &python::format_traceback(py, e));
        return After::Close(c);
    }
    internal_error(py, st, c, head, e, handling)
}

/// An exception before the response started: gunicorn's `handle_error` (500 page, its log
/// lines).
#[cold]
#[inline(never)]
fn app_error(py: Python<'_>, st: &Statics, conn: Conn, head: &RequestHead, e: &PyErr) -> After {
    internal_error(py, st, conn, head, e, Instant::now())
}

/// The 500 answer; `handling` starts the StatsD duration (gunicorn restarts the clock there).
fn internal_error(
    py: Python<'_>,
    st: &Statics,
    conn: Conn,
    head: &RequestHead,
    e: &PyErr,
    handling: Instant,
) -> After {
    observe::exception(
        &format!("Error handling request {} {}", head.method(), head.uri()),
        &python::format_traceback(py, e),
    );
    let w = Waiter {
        wakeup: None,
        deadline: Some(Instant::now() + std::time::Duration::from_secs(5)),
    };
    write_error_page(&conn, &w, 500, "Internal Server Error", "");
    log_error_access_with(py, st, head, &conn, handling, 500, "Internal Server Error");
    After::Close(conn)
}

/// A parser error found while reading the body: gunicorn's client-error page and log line.
#[cold]
#[inline(never)]
fn client_error(
    py: Python<'_>,
    st: &Statics,
    conn: Conn,
    head: &RequestHead,
    pe: &ParseError,
    w: &Waiter,
) -> After {
    let handling = Instant::now();
    let Some(status) = pe.status() else {
        observe::debug(&format!(
            "Ignored premature client disconnection. {}",
            pe.log_text()
        ));
        return After::Drop;
    };
    observe::warning(&format!(
        "Invalid request from ip={}: {}",
        peer_ip(&conn),
        pe.log_text()
    ));
    log_error_access_with(py, st, head, &conn, handling, status, pe.reason());
    write_error_page(&conn, w, status, pe.reason(), &pe.message());
    After::Close(conn)
}

#[cold]
#[inline(never)]
fn write_error_page(conn: &Conn, w: &Waiter, status: u16, reason: &str, msg: &str) {
    let page = rgun_h1::error_page(status, reason, msg);
    if conn.write_all_blocking(&[&page], w).is_err() {
        observe::debug("Failed to send error message.");
    }
}

#[cold]
#[inline(never)]
fn log_error_access(
    py: Python<'_>,
    st: &Statics,
    head: &RequestHead,
    conn: &Conn,
    handling: Instant,
) {
    log_error_access_with(py, st, head, conn, handling, 500, "Bad Request");
}

/// The access line gunicorn's `handle_error` writes: a fresh response with the error status
/// and 0 bytes sent, against a minimal environ. Its StatsD duration runs from `handling`, the
/// start of the error handling (gunicorn's `handle_error` restarts the clock).
#[cold]
#[inline(never)]
fn log_error_access_with(
    _py: Python<'_>,
    st: &Statics,
    head: &RequestHead,
    conn: &Conn,
    handling: Instant,
    code: u16,
    reason: &str,
) {
    observe::statsd::access(handling.elapsed(), Some(code));
    let Some(fmt) = &st.access else { return };
    let protocol = format!("HTTP/{}.{}", head.version.0, head.version.1);
    let status = format!("{code} {reason}");
    let rec = observe::ErrorRecord {
        method: head.method(),
        uri: head.uri(),
        protocol: &protocol,
        query: head.query(),
        remote: remote_pair(conn),
        status: &status,
    };
    observe::access(&fmt.render(&rec));
}

/// `(REMOTE_ADDR, REMOTE_PORT)` as gunicorn's `handle_error` sets them.
pub fn remote_pair(conn: &Conn) -> (String, String) {
    match conn.peer {
        Some(p) => (p.ip().to_string(), p.port().to_string()),
        None => (String::new(), "-1".to_string()),
    }
}

fn peer_ip(conn: &Conn) -> String {
    conn.peer.map(|p| p.ip().to_string()).unwrap_or_default()
}

#[cold]
#[inline(never)]
fn is_socket_error(py: Python<'_>, e: &PyErr) -> bool {
    e.is_instance_of::<pyo3::exceptions::PyOSError>(py)
        && e.value(py)
            .getattr("errno")
            .ok()
            .and_then(|n| n.extract::<i32>().ok())
            .is_some_and(|n| {
                n == nix::errno::Errno::EPIPE as i32
                    || n == nix::errno::Errno::ECONNRESET as i32
                    || n == nix::errno::Errno::ENOTCONN as i32
            })
}

#[cold]
#[inline(never)]
fn socket_error_py(py: Python<'_>, e: &PyErr) -> After {
    let n = e
        .value(py)
        .getattr("errno")
        .ok()
        .and_then(|n| n.extract::<i32>().ok())
        .unwrap_or(0);
    log_ignored(n);
    After::Drop
}

#[cold]
#[inline(never)]
fn socket_error(py: Python<'_>, e: IoStop) -> After {
    match e {
        IoStop::Io(io) => log_ignored(io.raw_os_error().unwrap_or(0)),
        IoStop::Interrupted(err) => observe::exception(
            "Error handling request",
            &python::format_traceback(py, &err),
        ),
    }
    After::Drop
}

/// gunicorn's debug line for a client that went away while its response was being written.
pub fn log_ignored(errno: i32) {
    if errno == nix::errno::Errno::ECONNRESET as i32 {
        observe::debug("Ignoring connection reset");
    } else if errno == nix::errno::Errno::ENOTCONN as i32 {
        observe::debug("Ignoring socket not connected");
    } else {
        observe::debug("Ignoring EPIPE");
    }
}

/// The `req` object hooks receive (gunicorn's `Request`), built only when a hook needs it.
#[cold]
#[inline(never)]
fn request_object(py: Python<'_>, st: &Statics, head: &RequestHead, conn: &Conn) -> Py<PyAny> {
    let make = || -> PyResult<Py<PyAny>> {
        let kw = PyDict::new(py);
        kw.set_item("method", head.method())?;
        kw.set_item("uri", head.uri())?;
        kw.set_item("path", head.path())?;
        kw.set_item("query", head.query())?;
        kw.set_item("fragment", head.fragment())?;
        kw.set_item(
            "version",
            PyTuple::new(py, [head.version.0, head.version.1])?,
        )?;
        kw.set_item("headers", head.headers.to_pairs())?;
        kw.set_item("scheme", head.scheme)?;
        kw.set_item("req_number", conn.requests)?;
        let addr = conn.peer.map(|p| (p.ip().to_string(), p.port()));
        match &addr {
            Some(a) => {
                kw.set_item("peer_addr", a.clone())?;
                kw.set_item("remote_addr", a.clone())?;
            }
            None => {
                kw.set_item("peer_addr", "")?;
                kw.set_item("remote_addr", "")?;
            }
        }
        kw.set_item(
            "proxy_protocol_info",
            head.proxy.as_ref().map(|p| {
                let d = PyDict::new(py);
                let _ = d.set_item("proxy_protocol", p.proxy_protocol);
                let _ = d.set_item("client_addr", p.client_addr.clone());
                let _ = d.set_item("client_port", p.client_port);
                let _ = d.set_item("proxy_addr", p.proxy_addr.clone());
                let _ = d.set_item("proxy_port", p.proxy_port);
                d
            }),
        )?;
        kw.set_item("_should_close", head.should_close())?;
        Ok(st.request_class.bind(py).call((), Some(&kw))?.unbind())
    };
    make().unwrap_or_else(|_| py.None())
}

/// The `resp` object `post_request` receives (gunicorn's `Response`).
#[cold]
#[inline(never)]
fn response_object(py: Python<'_>, st: &Statics, r: &ResponseState) -> Py<PyAny> {
    let make = || -> PyResult<Py<PyAny>> {
        let kw = PyDict::new(py);
        kw.set_item("status", r.status.clone())?;
        kw.set_item("status_code", r.status_code)?;
        kw.set_item("headers", r.headers.to_pairs())?;
        kw.set_item("headers_sent", r.headers_sent)?;
        kw.set_item("response_length", r.response_length)?;
        kw.set_item("sent", r.sent)?;
        kw.set_item("chunked", r.chunked)?;
        kw.set_item("must_close", r.must_close)?;
        kw.set_item("upgrade", r.upgrade)?;
        kw.set_item("version", "gunicorn")?;
        Ok(st.response_class.bind(py).call((), Some(&kw))?.unbind())
    };
    make().unwrap_or_else(|_| py.None())
}

/// `post_request` takes 2, 3 or 4 positional arguments (gunicorn adapts the call).
#[cold]
#[inline(never)]
fn call_post_request(
    py: Python<'_>,
    hook: &Py<PyAny>,
    st: &Statics,
    req: &Py<PyAny>,
    environ: &Bound<'_, PyDict>,
    resp: Py<PyAny>,
) -> PyResult<()> {
    let hook = hook.bind(py);
    let nargs: usize = py
        .import("inspect")?
        .call_method1("signature", (hook,))?
        .getattr("parameters")?
        .len()?;
    let w = st.worker_obj.clone_ref(py);
    match nargs {
        2 => hook.call1((w, req.clone_ref(py)))?,
        3 => hook.call1((w, req.clone_ref(py), environ))?,
        _ => hook.call1((w, req.clone_ref(py), environ, resp))?,
    };
    Ok(())
}
