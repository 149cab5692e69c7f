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
/// error log. Not a StatsD-counted Logger call: the `log` object counts its own calls.
#[pyfunction]
fn _log(levelno: i32, msg: &str) {
    observe::write(observe::Level::from_levelno(levelno), msg);
}

/// The Statsd logger's `(prefix, dogstatsd_tags, has a socket)`, `None` when StatsD is off.
#[pyfunction]
fn _statsd_settings() -> Option<(String, String, bool)> {
    observe::statsd::settings()
}

/// `Statsd.sock.send(data)`: one datagram on rgun's StatsD socket; errors raise `OSError`.
#[pyfunction]
fn _statsd_send(data: &[u8]) -> PyResult<()> {
    observe::statsd::send_raw(data).map_err(|e| match observe::statsd::errno_strerror(&e) {
        Some(pair) => pyo3::exceptions::PyOSError::new_err(pair),
        None => pyo3::exceptions::PyOSError::new_err(e.to_string()),
    })
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
    m.add_function(wrap_pyfunction!(_statsd_settings, m)?)?;
    m.add_function(wrap_pyfunction!(_statsd_send, m)?)?;
    m.add_function(wrap_pyfunction!(_access, m)?)?;
    m.add_function(wrap_pyfunction!(_reopen_logs, m)?)?;
    m.add_function(wrap_pyfunction!(_notify, m)?)?;
    Ok(())
}
