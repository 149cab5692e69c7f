//! What the user asked for: gunicorn's 120 settings, loaded exactly as gunicorn 27 loads them
//! (defaults < config file < `GUNICORN_CMD_ARGS` < command line), validated, and immutable after
//! [`load`]. No sockets, no fork, no tokio here.
//!
//! The rest of rgun reads settings only through [`Config`]'s accessors, by gunicorn's setting
//! names (`cfg.int("workers")`, `cfg.list("bind")`).

use std::collections::HashMap;

use pyo3::prelude::*;

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
}
