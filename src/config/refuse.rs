//! rgun's honesty rule: a setting rgun does not implement may be written, but only with its
//! default value; anything else stops start-up with an error naming the setting.

use pyo3::prelude::*;

use super::table::SETTINGS;
use super::{Config, Value};

/// Worker class strings rgun runs.
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

/// Checks `cfg` against rgun's support table; the error text follows `Error: `.
pub fn check(py: Python<'_>, cfg: &Config) -> Result<(), String> {
    let defaults = super::load::default_values(py).map_err(|e| e.to_string())?;
    // With the control socket disabled, its path and mode have no effect in gunicorn either.
    let no_control_socket = cfg.bool("control_socket_disable");
    for st in SETTINGS.iter().filter(|s| !s.supported) {
        if no_control_socket && st.name.starts_with("control_socket") {
            continue;
        }
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
    // The worker class is resolved (and refused if need be) when the arbiter is built, where
    // gunicorn loads it: `--check-config` does not look at it.
    Ok(())
}
