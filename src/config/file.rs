//! The Python config file: `PATH`, `file:PATH` (executed as a fresh module `__config__`, also put
//! in `sys.modules`) or `python:MODULE` (imported), and the names it defines.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Why a config file could not be read.
pub enum FileError {
    /// An exception to report as `\nError: <str(e)>` (exit 1), e.g. `'<p>' doesn't exist`.
    Error(PyErr),
    /// Executing the file raised: `Failed to read config file: <p>` and the traceback were
    /// printed already (exit 1).
    Failed,
}

/// gunicorn's warning box on stderr.
pub fn warn(msg: &str) {
    let mut out = String::from("!!!\n");
    for (i, line) in msg.lines().enumerate() {
        if i == 0 {
            out.push_str(&format!("!!! WARNING: {line}\n"));
        } else {
            out.push_str(&format!("!!! {line}\n"));
        }
    }
    out.push_str("!!!\n\n");
    eprint!("{out}");
}

/// Loads `location` and returns the module namespace (`vars(module)`).
pub fn load<'py>(py: Python<'py>, location: &str) -> Result<Bound<'py, PyDict>, FileError> {
    if let Some(module) = location.strip_prefix("python:") {
        let m = py.import(module).map_err(FileError::Error)?;
        return Ok(m.dict());
    }
    let filename = location.strip_prefix("file:").unwrap_or(location);
    exec_file(py, filename)
}

fn exec_file<'py>(py: Python<'py>, filename: &str) -> Result<Bound<'py, PyDict>, FileError> {
    if !std::path::Path::new(filename).exists() {
        let repr = super::cli::py_repr(py, filename);
        return Err(FileError::Error(pyo3::exceptions::PyRuntimeError::new_err(
            format!("{repr} doesn't exist"),
        )));
    }
    let ext = std::path::Path::new(filename)
        .extension()
        .map(|e| e.to_string_lossy().into_owned());
    let python_ext = matches!(ext.as_deref(), Some("py" | "pyc"));
    let result = (|| -> PyResult<Bound<'py, PyDict>> {
        let util = py.import("importlib.util")?;
        let spec = if python_ext {
            util.call_method1("spec_from_file_location", ("__config__", filename))?
        } else {
            warn("configuration file should have a valid Python extension.\n");
            let loader = py
                .import("importlib.machinery")?
                .getattr("SourceFileLoader")?
                .call1(("__config__", filename))?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("loader", loader)?;
            util.getattr("spec_from_file_location")?
                .call(("__config__", filename), Some(&kwargs))?
        };
        let module = util.call_method1("module_from_spec", (&spec,))?;
        py.import("sys")?
            .getattr("modules")?
            .set_item("__config__", &module)?;
        spec.getattr("loader")?
            .call_method1("exec_module", (&module,))?;
        Ok(module.getattr("__dict__")?.cast_into::<PyDict>()?)
    })();
    match result {
        Ok(d) => Ok(d),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyException>(py) => {
            eprintln!("Failed to read config file: {filename}");
            print_exception(py, &e);
            Err(FileError::Failed)
        }
        // SystemExit, KeyboardInterrupt: not caught by gunicorn either.
        Err(e) => Err(FileError::Error(e)),
    }
}

/// `traceback.print_exc()` for `e`, flushed.
fn print_exception(py: Python<'_>, e: &PyErr) {
    let printed = py.import("traceback").and_then(|tb| {
        let trace = e.traceback(py).map(|t| t.into_any());
        let trace = trace.unwrap_or_else(|| py.None().into_bound(py));
        tb.call_method1("print_exception", (e.get_type(py), e.value(py), trace))?;
        py.import("sys")?.getattr("stderr")?.call_method0("flush")?;
        Ok(())
    });
    if printed.is_err() {
        e.display(py);
    }
}
