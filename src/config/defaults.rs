//! Setting defaults as Python objects, including the ones gunicorn reads from the environment
//! when it is imported (`PORT`, `WEB_CONCURRENCY`, `FORWARDED_ALLOW_IPS`, `PWD`, euid/egid,
//! `XDG_RUNTIME_DIR`/`HOME`).

use std::os::unix::fs::MetadataExt;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use super::spec::{Default, Setting};

/// gunicorn's `util.getcwd()`: `$PWD` when it names the same directory as the real cwd.
pub fn getcwd() -> String {
    let real = std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let (Ok(pwd), Ok(b)) = (std::env::var("PWD"), std::fs::metadata(&real))
        && let Ok(a) = std::fs::metadata(&pwd)
        && a.ino() == b.ino()
        && a.dev() == b.dev()
    {
        return pwd;
    }
    real
}

/// The default control socket path: `$XDG_RUNTIME_DIR/gunicorn.ctl` if that directory exists,
/// else `~/.gunicorn/gunicorn.ctl`.
fn control_socket(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let path = py.import("os")?.getattr("path")?;
    if let Ok(xdg) = std::env::var("XDG_RUNTIME_DIR")
        && !xdg.is_empty()
        && std::path::Path::new(&xdg).is_dir()
    {
        return path.call_method1("join", (xdg, "gunicorn.ctl"));
    }
    let home = path.call_method1("expanduser", ("~",))?;
    let dir = path.call_method1("join", (home, ".gunicorn"))?;
    path.call_method1("join", (dir, "gunicorn.ctl"))
}

/// The raw (not yet validated) default of `s`, as gunicorn's `Setting.default`.
pub fn raw_default<'py>(py: Python<'py>, s: &Setting) -> PyResult<Bound<'py, PyAny>> {
    if s.env_default {
        return match s.name {
            "bind" => {
                let b = match std::env::var("PORT") {
                    Ok(port) => format!("0.0.0.0:{port}"),
                    Err(_) => "127.0.0.1:8000".into(),
                };
                Ok(PyList::new(py, [b])?.into_any())
            }
            "workers" => {
                let w = std::env::var("WEB_CONCURRENCY").unwrap_or_else(|_| "1".into());
                py.import("builtins")?.getattr("int")?.call1((w,))
            }
            "forwarded_allow_ips" => {
                let f =
                    std::env::var("FORWARDED_ALLOW_IPS").unwrap_or_else(|_| "127.0.0.1,::1".into());
                Ok(PyString::new(py, &f).into_any())
            }
            "chdir" => Ok(PyString::new(py, &getcwd()).into_any()),
            "user" => Ok(nix::unistd::geteuid()
                .as_raw()
                .into_pyobject(py)?
                .into_any()),
            "group" => Ok(nix::unistd::getegid()
                .as_raw()
                .into_pyobject(py)?
                .into_any()),
            "control_socket" => control_socket(py),
            other => unreachable!("no environment default for {other}"),
        };
    }
    Ok(match s.default {
        Default::None | Default::Hook => py.None().into_bound(py),
        Default::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Default::Int(i) => i.into_pyobject(py)?.into_any(),
        Default::Str(v) => PyString::new(py, v).into_any(),
        Default::List(l) => PyList::new(py, l)?.into_any(),
        Default::Dict(d) => {
            let dict = PyDict::new(py);
            for (k, v) in d {
                dict.set_item(k, v)?;
            }
            dict.into_any()
        }
    })
}

/// `str(default)` as `--help` shows it.
pub fn help_default(py: Python<'_>, s: &Setting) -> String {
    if !s.env_default {
        return s.default_help.to_string();
    }
    raw_default(py, s)
        .and_then(|v| v.str().map(|s| s.to_string()))
        .unwrap_or_else(|_| s.default_help.to_string())
}
