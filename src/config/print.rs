//! `--print-config`: gunicorn's `str(cfg)`, one `name = value` line per setting, sorted by name,
//! values shown as Python's `str()` of the validated value (`<qualname()>` for callables).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::spec::Default;
use super::table::SETTINGS;
use super::{Config, Value};

/// Python `str()` of a value as gunicorn stores it.
fn show(py: Python<'_>, v: &Value) -> PyResult<String> {
    Ok(match v {
        Value::None => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Int(i) => i.to_string(),
        Value::Str(s) => s.clone(),
        Value::List(l) => PyList::new(py, l)?.str()?.to_string(),
        Value::Dict(d) => {
            let dict = PyDict::new(py);
            for (k, x) in d {
                dict.set_item(k, x)?;
            }
            dict.str()?.to_string()
        }
        Value::Object(o) => {
            let o = o.bind(py);
            if o.is_callable() {
                format!("<{}()>", o.getattr("__qualname__")?.str()?)
            } else {
                o.str()?.to_string()
            }
        }
    })
}

/// The `--print-config` text (no trailing newline, like `str(cfg)`).
pub fn print_config(cfg: &Config) -> String {
    Python::attach(|py| {
        let mut rows: Vec<_> = SETTINGS.iter().collect();
        rows.sort_by_key(|s| s.name);
        let width = SETTINGS.iter().map(|s| s.name.len()).max().unwrap_or(0);
        let lines: Vec<String> = rows
            .iter()
            .map(|s| {
                let v = cfg.get(s.name);
                let text = match v {
                    Value::None if s.default == Default::Hook => s.value_print.to_string(),
                    _ => show(py, v).unwrap_or_else(|e| format!("<{e}>")),
                };
                format!("{:width$} = {text}", s.name)
            })
            .collect();
        lines.join("\n")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_gunicorn() {
        Python::initialize();
        let values = Python::attach(|py| super::super::load::default_values(py).unwrap());
        let cfg = Config::from_values(values, None);
        let text = print_config(&cfg);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 120);
        assert_eq!(
            lines[0],
            r#"access_log_format                  = %(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#
        );
        assert!(lines.contains(&"on_starting                        = <OnStarting.on_starting()>"));
        assert!(lines.contains(&"forwarded_allow_ips                = ['127.0.0.1', '::1']"));
        assert!(lines.contains(&"dogstatsd_tags                     = "));
        assert!(lines.contains(&"control_socket_mode                = 384"));
        assert!(!text.ends_with('\n'));
    }
}
