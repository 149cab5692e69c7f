//! Loading the WSGI app (from `MODULE[:EXPR]`, or a PasteDeploy ini with `paste`) and resolving
//! `worker_class`, by gunicorn's rules (implemented in `python/rgun/_app.py`, because the rules
//! are Python's: `ast`, imports, exception chaining).

use pyo3::prelude::*;

use crate::config::Config;

/// Why the app could not be loaded: gunicorn's `AppImportError` (worker exit 4) or any other
/// exception (worker exit 3). Both carry the Python exception for its traceback.
#[derive(Debug)]
pub enum AppLoadError {
    Import(PyErr),
    Other(PyErr),
}

impl AppLoadError {
    pub fn err(&self) -> &PyErr {
        match self {
            AppLoadError::Import(e) | AppLoadError::Other(e) => e,
        }
    }
}

/// gunicorn's `WSGIApplication.load`: through PasteDeploy when `paste` is set (with the app URI
/// the configuration chose, as gunicorn does), else by importing the app URI.
pub fn load_app(py: Python<'_>, cfg: &Config) -> Result<Py<PyAny>, AppLoadError> {
    let uri = cfg.app_uri.as_deref().unwrap_or("");
    let module = py.import("rgun._app").map_err(AppLoadError::Other)?;
    let loaded = if cfg.str("paste").is_some() {
        module.call_method1("load_paste_app", (uri, cfg.list("raw_paste_global_conf")))
    } else {
        module.call_method1("import_app", (uri,))
    };
    match loaded {
        Ok(app) => Ok(app.unbind()),
        Err(e) => {
            let is_import = module
                .getattr("AppImportError")
                .is_ok_and(|cls| e.is_instance(py, &cls));
            Err(if is_import {
                AppLoadError::Import(e)
            } else {
                AppLoadError::Other(e)
            })
        }
    }
}

/// With `reload`, the app a worker serves instead of one that failed with a SyntaxError: a 500
/// carrying the traceback.
pub fn fail_app(py: Python<'_>, err: &PyErr) -> PyResult<Py<PyAny>> {
    let exc = err.value(py);
    if let Some(tb) = err.traceback(py) {
        exc.setattr("__traceback__", tb)?;
    }
    Ok(py
        .import("rgun._app")?
        .call_method1("fail_app", (exc,))?
        .unbind())
}

/// `--paste` while the configuration loads, first: PasteDeploy must be importable.
pub fn paste_import(py: Python<'_>) -> PyResult<()> {
    py.import("rgun._app")?.call_method0("paste_import")?;
    Ok(())
}

/// Whether a PasteDeploy ini file has a logging configuration (`[loggers]`).
pub fn has_logging_config(py: Python<'_>, config_file: &str) -> PyResult<bool> {
    py.import("rgun._app")?
        .call_method1("has_logging_config", (config_file,))?
        .extract()
}

/// How a `worker_class` setting resolved.
pub enum WorkerClass {
    /// `sync` or `gthread`: what rgun serves.
    Served(String),
    /// gunicorn's `class uri ... invalid or not found` error text.
    NotFound(String),
    /// A real worker class rgun does not implement yet.
    NotSupported(String),
}

/// Resolves the `worker_class` value (a string or a class object).
pub fn resolve_worker_class(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<WorkerClass> {
    let module = py.import("rgun._app")?;
    match module.call_method1("resolve_worker_class", (value,)) {
        Ok(name) => Ok(WorkerClass::Served(name.extract()?)),
        Err(e) if e.is_instance(py, &module.getattr("NotSupported")?) => {
            Ok(WorkerClass::NotSupported(super::exc_str(py, &e)))
        }
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyRuntimeError>(py) => {
            Ok(WorkerClass::NotFound(super::exc_str(py, &e)))
        }
        Err(e) => Err(e),
    }
}
