//! `--reload` in a worker: gunicorn's watcher thread (`python/rgun/_reloader.py`, because what
//! it watches is `sys.modules`), the stop it triggers, and the fail app served when the app has
//! a SyntaxError.
//!
//! A reported change stops the worker the way SIGTERM does ([`signals::stop`]: in-flight
//! requests finish, then exit 0, and the master starts a fresh worker), after logging
//! `Worker reloading: <file> modified` and calling `worker_int`, in gunicorn's order.

use pyo3::exceptions::PySyntaxError;
use pyo3::prelude::*;

use super::signals;
use crate::config::Config;
use crate::observe;
use crate::python;

/// Logs gunicorn's warning and builds the reloader thread (started once the app is loaded).
pub fn create(py: Python<'_>, cfg: &Config) -> PyResult<Py<PyAny>> {
    observe::warning("Reloader is on. Use in development only!");
    let on_change = wrap_pyfunction!(changed, py)?;
    let engine = cfg.str("reload_engine").unwrap_or("auto");
    Ok(py
        .import("rgun._reloader")?
        .call_method1(
            "create",
            (engine, cfg.list("reload_extra_files"), on_change),
        )?
        .unbind())
}

/// Called on the reloader thread when a watched file changed.
#[pyfunction]
fn changed(py: Python<'_>, filename: &Bound<'_, PyAny>) {
    let name = filename.str().map(|s| s.to_string()).unwrap_or_default();
    observe::info(&format!("Worker reloading: {name} modified"));
    signals::stop(false);
    signals::call_hook(py, "worker_int");
}

/// Whether a failed app load is one `reload` survives (a SyntaxError).
pub fn survives(py: Python<'_>, cfg: &Config, err: &PyErr) -> bool {
    cfg.bool("reload") && err.is_instance_of::<PySyntaxError>(py)
}

/// gunicorn's `load_wsgi` on a SyntaxError with `reload` on: log it, watch the broken file,
/// and serve a 500 with the traceback instead of the app.
pub fn fail_app(py: Python<'_>, err: &PyErr, reloader: Option<&Py<PyAny>>) -> PyResult<Py<PyAny>> {
    observe::exception(
        &python::exc_str(py, err),
        &python::format_traceback(py, err),
    );
    if let Some(r) = reloader {
        let filename = err.value(py).getattr("filename")?;
        if !filename.is_none() {
            r.bind(py).call_method1("add_extra_file", (filename,))?;
        }
    }
    python::app::fail_app(py, err)
}
