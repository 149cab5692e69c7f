//! rgun's honesty rule: a setting rgun does not implement may be written, but only with its
//! default value; anything else stops start-up with an error naming the setting.

use pyo3::prelude::*;

use super::table::SETTINGS;
use super::{Config, Value};

/// Worker class strings rgun runs.
const WORKER_CLASSES: &[&str] = &[
    "sync",
    "gthread",
    "gunicorn.workers.sync.SyncWorker",
    "gunicorn.workers.gthread.ThreadWorker",
];

/// Whether two validated values are the same (Python objects by identity or `==`).
pub fn same(py: Python<'_>, a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::None, Value::None) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::List(x), Value::List(y)) => x == y,
        (Value::Dict(x), Value::Dict(y)) => x == y,
        (Value::Object(x), Value::Object(y)) => {
            x.is(y) || x.bind(py).eq(y.bind(py)).unwrap_or(false)
        }
        _ => false,
    }
}

/// The worker class as a string: the configured string, or `module.qualname` of a class.
fn worker_class_name(py: Python<'_>, v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Object(o) => {
            let o = o.bind(py);
            let part = |a: &str| {
                o.getattr(a)
                    .and_then(|x| x.extract::<String>())
                    .unwrap_or_default()
            };
            format!("{}.{}", part("__module__"), part("__qualname__"))
        }
        _ => String::new(),
    }
}

/// Checks `cfg` against rgun's support table; the error text follows `Error: `.
pub fn check(py: Python<'_>, cfg: &Config) -> Result<(), String> {
    let defaults = super::load::default_values(py).map_err(|e| e.to_string())?;
    for st in SETTINGS.iter().filter(|s| !s.supported) {
        if !same(py, cfg.get(st.name), &defaults[st.name]) {
            let flags = if st.cli.is_empty() {
                "config file only".to_string()
            } else {
                st.cli.join("/")
            };
            return Err(format!(
                "setting '{}' ({flags}) is not supported by rgun yet",
                st.name
            ));
        }
    }
    let wc = worker_class_name(py, cfg.get("worker_class"));
    if !WORKER_CLASSES.contains(&wc.as_str()) {
        return Err(format!("worker class '{wc}' is not supported by rgun yet"));
    }
    Ok(())
}
