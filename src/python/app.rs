//! Loading the WSGI app from `MODULE[:EXPR]` with gunicorn's rules and error messages: EXPR is a
//! name (default `application`) or a call with literal arguments (an app factory).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

/// Why the app could not be loaded. `Import` maps to gunicorn's `AppImportError` (worker exit 4);
/// `Other` is any other exception (worker exit 3).
#[derive(Debug)]
pub enum AppLoadError {
    Import(String),
    Other(PyErr),
}

fn repr(py: Python<'_>, s: &str) -> String {
    pyo3::types::PyString::new(py, s)
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| format!("'{s}'"))
}

/// Positional and keyword arguments of an app-factory call.
type FactoryArgs<'py> = (Bound<'py, PyList>, Bound<'py, PyDict>);

/// Imports `uri` and returns the app callable.
pub fn import_app<'py>(py: Python<'py>, uri: &str) -> Result<Py<PyAny>, AppLoadError> {
    let (module, obj) = match uri.split_once(':') {
        Some((m, o)) => (m, o),
        None => (uri, "application"),
    };
    let importlib = py.import("importlib").map_err(AppLoadError::Other)?;
    let module_obj = match importlib.call_method1("import_module", (module,)) {
        Ok(m) => m,
        Err(e) => {
            if e.is_instance_of::<pyo3::exceptions::PyImportError>(py)
                && module.ends_with(".py")
                && std::path::Path::new(module).exists()
            {
                let stem = module.rsplit_once('.').map_or(module, |(s, _)| s);
                return Err(AppLoadError::Other(
                    pyo3::exceptions::PyImportError::new_err(format!(
                        "Failed to find application, did you mean '{stem}:{obj}'?"
                    )),
                ));
            }
            return Err(AppLoadError::Other(e));
        }
    };

    let ast = py.import("ast").map_err(AppLoadError::Other)?;
    let parse_fail = || {
        AppLoadError::Import(format!(
            "Failed to parse {} as an attribute name or function call.",
            repr(py, obj)
        ))
    };
    let kwargs = PyDict::new(py);
    kwargs
        .set_item("mode", "eval")
        .map_err(AppLoadError::Other)?;
    let expr = ast
        .call_method("parse", (obj,), Some(&kwargs))
        .map_err(|_| parse_fail())?;
    let body = expr.getattr("body").map_err(AppLoadError::Other)?;
    let is = |node: &Bound<'_, PyAny>, kind: &str| -> bool {
        ast.getattr(kind)
            .ok()
            .is_some_and(|t| node.is_instance(&t).unwrap_or(false))
    };
    let (name, call): (String, Option<FactoryArgs<'_>>) = if is(&body, "Name") {
        (
            body.getattr("id")
                .and_then(|i| i.extract())
                .map_err(AppLoadError::Other)?,
            None,
        )
    } else if is(&body, "Call") {
        let func = body.getattr("func").map_err(AppLoadError::Other)?;
        if !is(&func, "Name") {
            return Err(AppLoadError::Import(format!(
                "Function reference must be a simple name: {}",
                repr(py, obj)
            )));
        }
        let name: String = func
            .getattr("id")
            .and_then(|i| i.extract())
            .map_err(AppLoadError::Other)?;
        let literal = |node: Bound<'py, PyAny>| ast.call_method1("literal_eval", (node,));
        let bad_args = || {
            AppLoadError::Import(format!(
                "Failed to parse arguments as literal values: {}",
                repr(py, obj)
            ))
        };
        let args = PyList::empty(py);
        for a in body
            .getattr("args")
            .and_then(|a| a.try_iter())
            .map_err(AppLoadError::Other)?
        {
            let a = a.map_err(AppLoadError::Other)?;
            args.append(literal(a).map_err(|_| bad_args())?)
                .map_err(AppLoadError::Other)?;
        }
        let kw = PyDict::new(py);
        for k in body
            .getattr("keywords")
            .and_then(|a| a.try_iter())
            .map_err(AppLoadError::Other)?
        {
            let k = k.map_err(AppLoadError::Other)?;
            let key = k.getattr("arg").map_err(AppLoadError::Other)?;
            let val = literal(k.getattr("value").map_err(AppLoadError::Other)?)
                .map_err(|_| bad_args())?;
            kw.set_item(key, val).map_err(AppLoadError::Other)?;
        }
        (name, Some((args, kw)))
    } else {
        return Err(parse_fail());
    };

    let mut app = module_obj.getattr(name.as_str()).map_err(|_| {
        AppLoadError::Import(format!(
            "Failed to find attribute {} in {}.",
            repr(py, &name),
            repr(py, module)
        ))
    })?;
    if let Some((args, kw)) = call {
        let args = PyTuple::new(py, args.iter()).map_err(AppLoadError::Other)?;
        match app.call(args, Some(&kw)) {
            Ok(v) => app = v,
            Err(e)
                if e.is_instance_of::<pyo3::exceptions::PyTypeError>(py)
                    && called_with_wrong_args(py, &e) =>
            {
                let only = py
                    .import("traceback")
                    .and_then(|tb| tb.call_method1("format_exception_only", (e.value(py),)))
                    .and_then(|l| pyo3::types::PyString::new(py, "").call_method1("join", (l,)))
                    .and_then(|s| s.extract::<String>())
                    .unwrap_or_else(|_| e.to_string());
                return Err(AppLoadError::Import(only.trim().to_string()));
            }
            Err(e) => return Err(AppLoadError::Other(e)),
        }
    }
    if app.is_none() {
        return Err(AppLoadError::Import(format!(
            "Failed to find application object: {}",
            repr(py, obj)
        )));
    }
    if !app.is_callable() {
        return Err(AppLoadError::Import(
            "Application object must be callable.".into(),
        ));
    }
    Ok(app.unbind())
}

/// Whether a `TypeError` came from calling the factory itself (its traceback has one frame: the
/// call site), rather than from inside it.
fn called_with_wrong_args(py: Python<'_>, e: &PyErr) -> bool {
    match e.traceback(py) {
        None => true,
        Some(tb) => tb.getattr("tb_next").map(|n| n.is_none()).unwrap_or(true),
    }
}
