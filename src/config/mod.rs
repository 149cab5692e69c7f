//! What the user asked for: gunicorn's 120 settings, loaded exactly as gunicorn 27 loads them
//! (defaults < config file < `GUNICORN_CMD_ARGS` < command line), validated, and immutable after
//! [`load`]. No sockets, no fork, no tokio here.
//!
//! The rest of rgun reads settings only through [`Config`]'s accessors, by gunicorn's setting
//! names (`cfg.int("workers")`, `cfg.list("bind")`).

mod cli;
mod defaults;
mod file;
mod help;
mod load;
mod print;
mod refuse;
pub mod spec;
mod table;
mod validate;

use std::collections::HashMap;

use pyo3::prelude::*;

pub use load::load;
pub use print::print_config;
pub use spec::Setting;
pub use table::SETTINGS;

/// The outcome of [`load`].
#[derive(Debug)]
pub enum Loaded {
    /// Serve (or print/check) with this configuration.
    Run(Config),
    /// Exit now with this code; gunicorn's output (help, version, errors) was printed already.
    Exit(i32),
}

/// One validated setting value, in the shape gunicorn's validators leave it.
#[derive(Debug)]
pub enum Value {
    /// Python `None` (an unset optional setting, or an unset hook).
    None,
    Bool(bool),
    Int(i64),
    Str(String),
    /// List settings (`bind`, `raw_env`, `forwarded_allow_ips`, ...).
    List(Vec<String>),
    /// Dict settings with string keys and values (`secure_scheme_headers`).
    Dict(Vec<(String, String)>),
    /// Any other Python object: hooks (callables), class objects, `logconfig_dict`.
    Object(Py<PyAny>),
}

/// The loaded, validated configuration.
#[derive(Debug, Default)]
pub struct Config {
    values: HashMap<&'static str, Value>,
    /// The APP_MODULE to serve (positional argument, else `wsgi_app`).
    pub app_uri: Option<String>,
}

impl Config {
    /// Builds a config from already validated values (used by the loader and by tests).
    pub fn from_values(values: HashMap<&'static str, Value>, app_uri: Option<String>) -> Self {
        Config { values, app_uri }
    }

    /// The value of setting `name`. Panics on a name that is not a gunicorn setting: that is a
    /// bug in rgun, never user input.
    pub fn get(&self, name: &str) -> &Value {
        self.values
            .get(name)
            .unwrap_or_else(|| panic!("no such setting: {name}"))
    }

    pub fn int(&self, name: &str) -> i64 {
        match self.get(name) {
            Value::Int(i) => *i,
            Value::Bool(b) => i64::from(*b),
            other => panic!("setting {name} is not an int: {other:?}"),
        }
    }

    pub fn bool(&self, name: &str) -> bool {
        match self.get(name) {
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::None => false,
            other => panic!("setting {name} is not a bool: {other:?}"),
        }
    }

    /// A string setting, `None` when unset (or `None` in the config file).
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Value::Str(s) => Some(s),
            Value::None => None,
            other => panic!("setting {name} is not a string: {other:?}"),
        }
    }

    pub fn list(&self, name: &str) -> &[String] {
        match self.get(name) {
            Value::List(l) => l,
            Value::None => &[],
            other => panic!("setting {name} is not a list: {other:?}"),
        }
    }

    pub fn dict(&self, name: &str) -> &[(String, String)] {
        match self.get(name) {
            Value::Dict(d) => d,
            Value::None => &[],
            other => panic!("setting {name} is not a dict: {other:?}"),
        }
    }

    /// Every setting with its value (order unspecified).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.values.iter().map(|(k, v)| (*k, v))
    }

    /// A setting holding a Python object (a hook, a class), `None` when unset.
    pub fn object(&self, name: &str) -> Option<&Py<PyAny>> {
        match self.get(name) {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// gunicorn's `cfg.worker_class_str`: `gthread` when `sync` is combined with threads > 1,
    /// else the configured string (a class object: its `__name__`).
    pub fn worker_class_str(&self) -> String {
        match self.get("worker_class") {
            Value::Str(s) => {
                if (s == "sync" || s.ends_with("SyncWorker")) && self.int("threads") > 1 {
                    "gthread".into()
                } else {
                    s.clone()
                }
            }
            Value::Object(o) => Python::attach(|py| {
                o.bind(py)
                    .getattr("__name__")
                    .and_then(|n| n.extract::<String>())
                    .unwrap_or_default()
            }),
            other => panic!("worker_class is not a string or class: {other:?}"),
        }
    }

    /// Whether workers use threads (gthread), after gunicorn's sync → gthread switch.
    pub fn is_gthread(&self) -> bool {
        let s = self.worker_class_str();
        s == "gthread" || s.ends_with("ThreadWorker")
    }

    /// gunicorn's `cfg.proc_name`: `proc_name`, else `default_proc_name`.
    pub fn proc_name(&self) -> Option<&str> {
        self.str("proc_name")
            .or_else(|| self.str("default_proc_name"))
    }

    /// gunicorn's `cfg.sendfile`: any explicit value disables it; else env `SENDFILE` decides.
    pub fn sendfile_enabled(&self) -> bool {
        if !matches!(self.get("sendfile"), Value::None) {
            return false;
        }
        match std::env::var("SENDFILE") {
            Ok(v) => matches!(v.to_lowercase().as_str(), "y" | "1" | "yes" | "true"),
            Err(_) => true,
        }
    }
}
