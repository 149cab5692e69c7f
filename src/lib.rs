//! rgun: gunicorn 27, rewritten in Rust, as a drop-in.
//!
//! A tour in data-flow order (see ARCHITECTURE.md for the invariants):
//! - [`run`]: the entry point the `rgun` console script calls with argv; maps outcomes to exit codes.
//! - [`config`]: argv, `GUNICORN_CMD_ARGS` and the config file (executed as Python) → [`config::Config`].
//! - `arbiter`: the master. Synchronous, single-threaded: binds, forks, reaps, handles signals.
//! - `worker`: one worker process; builds its tokio runtime after the fork and serves.
//! - `rgun_h1` (crate `crates/h1`): the HTTP/1 codec, strict like gunicorn 27's parser.
//! - `wsgi`: the PEP 3333 bridge: environ, `wsgi.input`, `start_response`, response iteration.
//! - `observe`: the error log and the access log, in gunicorn's formats (a side channel).

pub mod arbiter;
pub mod config;
pub mod observe;
pub mod python;
pub mod run;
pub mod unix;
pub mod worker;
pub mod wsgi;

use pyo3::prelude::*;

/// rgun's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The gunicorn release whose behaviour rgun reproduces.
pub const GUNICORN_VERSION: &str = "27.0.1";

/// Runs rgun with `argv` (`argv[0]` is the program name) and returns the process exit code.
#[pyfunction]
fn main(py: Python<'_>, argv: Vec<String>) -> i32 {
    run::main(py, &argv)
}

/// Writes a record of the `gunicorn.error` logger (Python `logging` level number) to rgun's
/// error log.
#[pyfunction]
fn _log(levelno: i32, msg: &str) {
    match observe::Level::from_levelno(levelno) {
        observe::Level::Debug => observe::debug(msg),
        observe::Level::Info => observe::info(msg),
        observe::Level::Warning => observe::warning(msg),
        observe::Level::Error => observe::error(msg),
        observe::Level::Critical => observe::critical(msg),
    }
}

/// Writes a line to rgun's access log.
#[pyfunction]
fn _access(line: &str) {
    observe::access(line);
}

/// Reopens the log files (USR1, `log.reopen_files()`).
#[pyfunction]
fn _reopen_logs() {
    observe::reopen();
}

/// `worker.notify()`: stamps this worker's heartbeat.
#[pyfunction]
fn _notify() {
    worker::notify();
}

/// The `rgun._core` extension module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", VERSION)?;
    m.add("GUNICORN_VERSION", GUNICORN_VERSION)?;
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add_function(wrap_pyfunction!(_log, m)?)?;
    m.add_function(wrap_pyfunction!(_access, m)?)?;
    m.add_function(wrap_pyfunction!(_reopen_logs, m)?)?;
    m.add_function(wrap_pyfunction!(_notify, m)?)?;
    Ok(())
}
