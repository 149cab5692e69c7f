//! Loading the WSGI app from `MODULE[:EXPR]` and resolving `worker_class`, by gunicorn's rules
//! (implemented in `python/rgun/_app.py`, because the rules are Python's: `ast`, imports,
//! exception chaining).

use pyo3::prelude::*;

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

/// Imports `uri` and returns the app callable.
pub fn import_app(py: Python<'_>, uri: &str) -> Result<Py<PyAny>, AppLoadError> {
    let module = py.import("rgun._app").map_err(AppLoadError::Other)?;
    match module.call_method1("import_app", (uri,)) {
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
