//! The interpreter side of rgun: importing the app, forking through CPython, Python-level signal
//! delivery, tracebacks, and hook calls. With `wsgi`, the only modules that touch pyo3.

pub mod app;
pub mod capi;
pub mod hooks;
pub mod logging;
pub mod master_modules;
pub mod signals;
pub mod tstate;

use pyo3::prelude::*;

/// Forks through `os.fork()`, so CPython's fork protocol runs (at-fork handlers, the GIL and
/// thread-state reset in the child). Returns 0 in the child, the child's pid in the parent.
///
/// # Fork safety
/// The master is single-threaded apart from threads a user hook started; `os.fork` is exactly
/// what gunicorn does in that situation.
///
/// The signals a worker handles are blocked across the fork: the child keeps them blocked
/// (pending) until it has installed its own handlers ([`unblock_worker_signals`]), so a TERM
/// sent right after the fork is neither lost in the master's inherited handlers nor fatal.
pub fn fork(py: Python<'_>) -> PyResult<i32> {
    master_modules::freeze(py);
    let set = worker_signals();
    let _ = set.thread_block();
    let pid = py
        .import("os")?
        .call_method0("fork")
        .and_then(|p| p.extract::<i32>());
    if !matches!(pid, Ok(0)) {
        let _ = set.thread_unblock();
    }
    pid
}

fn worker_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::Signal::*;
    let mut set = nix::sys::signal::SigSet::empty();
    for s in [
        SIGTERM, SIGINT, SIGQUIT, SIGABRT, SIGUSR1, SIGUSR2, SIGHUP, SIGWINCH,
    ] {
        set.add(s);
    }
    set
}

/// In a worker, once its signal handlers are installed: deliver what arrived meanwhile.
pub fn unblock_worker_signals() {
    let _ = worker_signals().thread_unblock();
}

/// `traceback.format_exception(err)` joined: what gunicorn's `log.exception` appends.
pub fn format_traceback(py: Python<'_>, err: &PyErr) -> String {
    let tb = || -> PyResult<String> {
        let tb = err
            .traceback(py)
            .map_or_else(|| py.None().into_bound(py), |t| t.into_any());
        let lines = py
            .import("traceback")?
            .call_method1("format_exception", (err.get_type(py), err.value(py), tb))?;
        let joined = pyo3::types::PyString::new(py, "").call_method1("join", (lines,))?;
        joined.extract()
    };
    tb().unwrap_or_else(|_| err.to_string())
}

/// `str(exc)` of a Python exception.
pub fn exc_str(py: Python<'_>, err: &PyErr) -> String {
    err.value(py)
        .str()
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// Flushes `sys.stdout` and `sys.stderr` (before forking and exiting, like Python would).
pub fn flush_std_streams(py: Python<'_>) {
    if let Ok(sys) = py.import("sys") {
        for name in ["stdout", "stderr"] {
            if let Ok(s) = sys.getattr(name) {
                let _ = s.call_method0("flush");
            }
        }
    }
}

/// gunicorn's `util._setproctitle`: `gunicorn: <title>` through the `setproctitle` module when
/// it is importable (and not on macOS); otherwise the title is left alone.
pub fn set_proc_title(py: Python<'_>, title: &str) {
    if cfg!(target_os = "macos") {
        return;
    }
    if let Ok(m) = py.import("setproctitle") {
        let _ = m.call_method1("setproctitle", (format!("gunicorn: {title}"),));
    }
}

/// gunicorn's `--spew`: a `sys.settrace` hook printing every executed Python line.
pub fn install_spew(py: Python<'_>) -> PyResult<()> {
    py.import("rgun._debug")?.call_method0("spew")?;
    Ok(())
}
