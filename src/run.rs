//! The one place that turns a run's outcome into a process exit code (0, 1, 2, 3, 4 as gunicorn).

use pyo3::prelude::*;

/// Runs rgun with `argv` and returns the exit code.
pub fn main(py: Python<'_>, argv: &[String]) -> i32 {
    let _ = py;
    if argv.iter().any(|a| a == "-v" || a == "--version") {
        println!(
            "rgun (version {}, compatible with gunicorn {}, Python {})",
            crate::VERSION,
            crate::GUNICORN_VERSION,
            Python::version_str().split_whitespace().next().unwrap_or("?")
        );
        return 0;
    }
    0
}
