//! A worker's signals, with gunicorn's meanings: TERM = finish in-flight work and exit (also
//! how `--reload` stops a worker),
//! QUIT/INT = `worker_int` and exit now, ABRT (the master's timeout) = `worker_abort` and exit,
//! USR1 = reopen logs, WINCH ignored, HUP/USR2 default (terminate).
//!
//! Handlers are Python-level (so QUIT/ABRT can raise `SystemExit` inside running app code, as
//! in gunicorn); they run on the main thread, from bytecode or from `check_signals` when the
//! wakeup pipe fires.

use std::os::fd::OwnedFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::Signal;
use pyo3::prelude::*;

use crate::observe;
use crate::python::{self, signals::WakeupPipe};

/// False once the worker should stop accepting and exit.
static ALIVE: AtomicBool = AtomicBool::new(true);
/// True when the stop is a quick one (QUIT, INT, ABRT): no graceful wait.
static QUICK: AtomicBool = AtomicBool::new(false);
/// Wakes the serving loops when `ALIVE` changes.
pub static STOP: tokio::sync::Notify = tokio::sync::Notify::const_new();
/// The write end of a non-blocking pipe that wakes a main thread waiting outside tokio (the
/// multi-threaded `gthread` control loop): written on stop, and while stopping, when a
/// connection closes.
static MAIN_WAKE: OnceLock<OwnedFd> = OnceLock::new();

/// What the handlers need to call `worker_int` / `worker_abort`.
pub struct HookTarget {
    pub call: HookFn,
}

/// Calls the worker hook with the given name.
pub type HookFn = Box<dyn Fn(Python<'_>, &str) + Send + Sync>;
static HOOKS: OnceLock<HookTarget> = OnceLock::new();

pub fn alive() -> bool {
    ALIVE.load(Ordering::Relaxed)
}

pub fn quick() -> bool {
    QUICK.load(Ordering::Relaxed)
}

/// Clears `alive` and says whether this call did (so one of several threads racing to stop
/// the worker acts); [`stop`] still has to wake the loops.
pub fn take_alive() -> bool {
    ALIVE.swap(false, Ordering::Relaxed)
}

/// Stops the worker (max_requests reached, parent gone, TERM).
pub fn stop(quick: bool) {
    if quick {
        QUICK.store(true, Ordering::Relaxed);
    }
    ALIVE.store(false, Ordering::Relaxed);
    STOP.notify_waiters();
    wake_main();
}

/// Makes `fd` (a non-blocking pipe's write end) the one [`wake_main`] writes to.
pub fn set_main_wake(fd: OwnedFd) {
    let _ = MAIN_WAKE.set(fd);
}

/// Wakes the main thread's control loop, if one waits on the [`set_main_wake`] pipe.
pub fn wake_main() {
    if let Some(fd) = MAIN_WAKE.get() {
        // A full pipe already holds a wake-up.
        let _ = nix::unistd::write(fd, &[1]);
    }
}

/// Resolves once the worker should stop.
pub async fn stopped() {
    loop {
        let notified = STOP.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !alive() {
            return;
        }
        notified.await;
    }
}

/// Calls the worker hook `name` through the target [`install`] was given (nothing before).
pub fn call_hook(py: Python<'_>, name: &str) {
    if let Some(h) = HOOKS.get() {
        (h.call)(py, name);
    }
}

#[pyfunction]
fn handle_exit(_signum: i32, _frame: Py<PyAny>) {
    stop(false);
}

#[pyfunction]
fn handle_quit(py: Python<'_>, _signum: i32, _frame: Py<PyAny>) -> PyResult<()> {
    stop(true);
    call_hook(py, "worker_int");
    py.detach(|| std::thread::sleep(std::time::Duration::from_millis(100)));
    Err(pyo3::exceptions::PySystemExit::new_err(0))
}

#[pyfunction]
fn handle_abort(py: Python<'_>, _signum: i32, _frame: Py<PyAny>) -> PyResult<()> {
    stop(true);
    call_hook(py, "worker_abort");
    Err(pyo3::exceptions::PySystemExit::new_err(1))
}

#[pyfunction]
fn handle_usr1(_signum: i32, _frame: Py<PyAny>) {
    observe::reopen();
}

#[pyfunction]
fn handle_winch(_signum: i32, _frame: Py<PyAny>) {
    observe::debug("worker: SIGWINCH ignored.");
}

/// Restores default actions and drops the master's wakeup pipe, right after the fork.
pub fn reset_inherited(py: Python<'_>) -> PyResult<()> {
    for sig in [
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
        Signal::SIGCHLD,
    ] {
        python::signals::set_default(py, sig as i32)?;
    }
    py.import("signal")?.call_method1("set_wakeup_fd", (-1,))?;
    Ok(())
}

/// Installs the worker's handlers and a fresh wakeup pipe (replacing the master's).
pub fn install(py: Python<'_>, hooks: HookTarget) -> PyResult<WakeupPipe> {
    let _ = HOOKS.set(hooks);
    reset_inherited(py)?;
    python::signals::set_default(py, Signal::SIGABRT as i32)?;
    let pipe = WakeupPipe::install(py)?;
    let handlers = [
        (Signal::SIGQUIT, wrap_pyfunction!(handle_quit, py)?),
        (Signal::SIGTERM, wrap_pyfunction!(handle_exit, py)?),
        (Signal::SIGINT, wrap_pyfunction!(handle_quit, py)?),
        (Signal::SIGWINCH, wrap_pyfunction!(handle_winch, py)?),
        (Signal::SIGUSR1, wrap_pyfunction!(handle_usr1, py)?),
        (Signal::SIGABRT, wrap_pyfunction!(handle_abort, py)?),
    ];
    for (sig, f) in handlers {
        python::signals::set_handler(py, sig as i32, f.as_any())?;
    }
    // TERM and USR1 must not interrupt requests in progress.
    python::signals::siginterrupt(py, Signal::SIGTERM as i32, false)?;
    python::signals::siginterrupt(py, Signal::SIGUSR1 as i32, false)?;
    Ok(pipe)
}
