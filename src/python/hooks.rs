//! Server hooks (`on_starting`, `post_fork`, `pre_request`, ...): calling the user's callables
//! from the config, and the `log` object hooks and apps use (`server.log.info(...)`).

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::config::Config;
use crate::observe;

/// Calls hook `name` with `args` if the config sets it. An exception is logged (as gunicorn's
/// callers do for the hooks whose errors it catches) and returned.
pub fn call<'py>(
    py: Python<'py>,
    cfg: &Config,
    name: &str,
    args: impl pyo3::call::PyCallArgs<'py>,
) -> PyResult<()> {
    let Some(hook) = cfg.object(name) else {
        return Ok(());
    };
    hook.bind(py).call1(args)?;
    Ok(())
}

/// The `log` object handed to hooks: gunicorn's Logger methods, `%`-formatting like `logging`.
#[pyclass(module = "rgun", name = "Logger", frozen)]
pub struct Log;

fn format_msg(py: Python<'_>, msg: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> String {
    let text = msg.str().map(|s| s.to_string()).unwrap_or_default();
    if args.is_empty() {
        return text;
    }
    let fmt_args: Bound<'_, PyAny> = if args.len() == 1 {
        args.get_item(0)
            .unwrap_or_else(|_| py.None().into_bound(py))
    } else {
        args.clone().into_any()
    };
    pyo3::types::PyString::new(py, &text)
        .call_method1("__mod__", (fmt_args,))
        .and_then(|s| s.extract::<String>())
        .unwrap_or(text)
}

#[pymethods]
impl Log {
    #[pyo3(signature = (msg, *args, **_kwargs))]
    fn debug(
        &self,
        py: Python<'_>,
        msg: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) {
        observe::debug(&format_msg(py, msg, args));
    }
    #[pyo3(signature = (msg, *args, **_kwargs))]
    fn info(
        &self,
        py: Python<'_>,
        msg: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) {
        observe::info(&format_msg(py, msg, args));
    }
    #[pyo3(signature = (msg, *args, **_kwargs))]
    fn warning(
        &self,
        py: Python<'_>,
        msg: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) {
        observe::warning(&format_msg(py, msg, args));
    }
    #[pyo3(signature = (msg, *args, **_kwargs))]
    fn error(
        &self,
        py: Python<'_>,
        msg: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) {
        observe::error(&format_msg(py, msg, args));
    }
    #[pyo3(signature = (msg, *args, **_kwargs))]
    fn critical(
        &self,
        py: Python<'_>,
        msg: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) {
        observe::critical(&format_msg(py, msg, args));
    }
    /// `log.exception(msg)`: an error line plus the traceback of the exception being handled.
    #[pyo3(signature = (msg, *args, **_kwargs))]
    fn exception(
        &self,
        py: Python<'_>,
        msg: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) {
        let tb = py
            .import("traceback")
            .and_then(|t| t.call_method0("format_exc"))
            .and_then(|s| s.extract::<String>())
            .unwrap_or_default();
        let tb = if tb.trim() == "NoneType: None" {
            String::new()
        } else {
            tb
        };
        observe::exception(&format_msg(py, msg, args), &tb);
    }
    fn reopen_files(&self) {
        observe::reopen();
    }
}

/// A setting value as the Python object gunicorn's `cfg` would return.
pub fn value_to_py(py: Python<'_>, v: &crate::config::Value) -> Py<PyAny> {
    use crate::config::Value;
    let obj: PyResult<Bound<'_, PyAny>> = match v {
        Value::None => Ok(py.None().into_bound(py)),
        Value::Bool(b) => Ok(pyo3::types::PyBool::new(py, *b).to_owned().into_any()),
        Value::Int(i) => Ok(i
            .into_pyobject(py)
            .map(|o| o.into_any())
            .unwrap_or_else(|e| match e {})),
        Value::Str(s) => Ok(pyo3::types::PyString::new(py, s).into_any()),
        Value::List(l) => pyo3::types::PyList::new(py, l).map(|o| o.into_any()),
        Value::Dict(d) => {
            let dict = pyo3::types::PyDict::new(py);
            for (k, v) in d {
                let _ = dict.set_item(k, v);
            }
            Ok(dict.into_any())
        }
        Value::Object(o) => Ok(o.bind(py).clone()),
    };
    obj.map(Bound::unbind).unwrap_or_else(|_| py.None())
}

/// The `cfg` object hooks receive: every setting readable as an attribute.
pub fn cfg_object(py: Python<'_>, cfg: &Config) -> Py<PyAny> {
    let make = || -> PyResult<Py<PyAny>> {
        let kwargs = pyo3::types::PyDict::new(py);
        for (name, value) in cfg.iter() {
            kwargs.set_item(name, value_to_py(py, value))?;
        }
        let ns = py
            .import("types")?
            .getattr("SimpleNamespace")?
            .call((), Some(&kwargs))?;
        Ok(ns.unbind())
    };
    make().unwrap_or_else(|_| py.None())
}

fn namespace(py: Python<'_>, items: &[(&str, Py<PyAny>)]) -> Py<PyAny> {
    let make = || -> PyResult<Py<PyAny>> {
        let kwargs = pyo3::types::PyDict::new(py);
        for (k, v) in items {
            kwargs.set_item(*k, v)?;
        }
        Ok(py
            .import("types")?
            .getattr("SimpleNamespace")?
            .call((), Some(&kwargs))?
            .unbind())
    };
    make().unwrap_or_else(|_| py.None())
}

fn log_object(py: Python<'_>) -> Py<PyAny> {
    Py::new(py, Log)
        .map(|l| l.into_any())
        .unwrap_or_else(|_| py.None())
}

/// The `server` object (gunicorn's Arbiter) handed to master hooks.
pub fn server_object(py: Python<'_>, cfg: &Config, pid: u32, num_workers: usize) -> Py<PyAny> {
    let int = |v: u64| {
        v.into_pyobject(py)
            .map(|o| o.into_any().unbind())
            .unwrap_or_else(|_| py.None())
    };
    namespace(
        py,
        &[
            ("pid", int(u64::from(pid))),
            ("num_workers", int(num_workers as u64)),
            ("timeout", value_to_py(py, cfg.get("timeout"))),
            ("cfg", cfg_object(py, cfg)),
            ("log", log_object(py)),
        ],
    )
}

/// The `worker` object handed to worker hooks. `pid` is `None` before the fork (`"[booting]"`).
pub fn worker_object(
    py: Python<'_>,
    cfg: &Config,
    age: u64,
    pid: Option<i32>,
    ppid: u32,
) -> Py<PyAny> {
    let int = |v: i64| {
        v.into_pyobject(py)
            .map(|o| o.into_any().unbind())
            .unwrap_or_else(|_| py.None())
    };
    let pid_obj = match pid {
        Some(p) => int(i64::from(p)),
        None => pyo3::types::PyString::new(py, "[booting]")
            .into_any()
            .unbind(),
    };
    namespace(
        py,
        &[
            ("age", int(age as i64)),
            ("pid", pid_obj),
            ("ppid", int(i64::from(ppid))),
            (
                "alive",
                pyo3::types::PyBool::new(py, true)
                    .to_owned()
                    .into_any()
                    .unbind(),
            ),
            ("timeout", int(cfg.int("timeout") / 2)),
            ("cfg", cfg_object(py, cfg)),
            ("log", log_object(py)),
        ],
    )
}
