//! gunicorn's `Application.load_config` step by step: defaults, command line, `chdir`,
//! `GUNICORN_CMD_ARGS`, one config file, env options, CLI options, `chdir` again, the app URI,
//! then rgun's refusal of settings it does not implement.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::PyString;

use super::cli::{self, Namespace};
use super::file::{self, FileError};
use super::spec::{Default, Setting};
use super::table::SETTINGS;
use super::validate::{self, ConfigError};
use super::{Config, Loaded, Value};

/// A load failure; everything user-facing was printed already except `Error`.
enum Fail {
    /// Printed as `\nError: <msg>`, exit 1.
    Error(String),
    /// Exit with this code; output done.
    Exit(i32),
}

impl From<cli::Exit> for Fail {
    fn from(e: cli::Exit) -> Self {
        Fail::Exit(e.0)
    }
}

fn err_text(py: Python<'_>, e: &PyErr) -> String {
    e.value(py)
        .str()
        .map(|s| s.to_string())
        .unwrap_or_else(|_| e.to_string())
}

struct Loader<'py> {
    py: Python<'py>,
    values: HashMap<&'static str, Value>,
}

impl<'py> Loader<'py> {
    /// `cfg.set(name, value)`: validate and store.
    fn set(&mut self, st: &'static Setting, v: &Bound<'py, PyAny>) -> PyResult<()> {
        let value = validate::validate(self.py, st, v)?;
        self.values.insert(st.name, value);
        Ok(())
    }

    fn set_all(&mut self, ns: &Namespace) -> Result<(), Fail> {
        for (st, v) in ns.given() {
            let v = v.bind(self.py).clone();
            self.set(st, &v)
                .map_err(|e| Fail::Error(err_text(self.py, &e)))?;
        }
        Ok(())
    }

    /// `Application.chdir()`: `os.chdir(cfg.chdir)`, and put it first on `sys.path`.
    fn chdir(&self) -> Result<(), Fail> {
        let py = self.py;
        let dir = match self.values.get("chdir") {
            Some(Value::Str(s)) => s.clone(),
            _ => return Ok(()),
        };
        let run = || -> PyResult<()> {
            py.import("os")?.call_method1("chdir", (&dir,))?;
            let path = py.import("sys")?.getattr("path")?;
            if !path.contains(&dir)? {
                path.call_method1("insert", (0, &dir))?;
            }
            Ok(())
        };
        run().map_err(|e| Fail::Error(err_text(py, &e)))
    }

    fn load_file(&mut self, location: &str) -> Result<(), Fail> {
        let py = self.py;
        let namespace = match file::load(py, location) {
            Ok(ns) => ns,
            Err(FileError::Failed) => return Err(Fail::Exit(1)),
            Err(FileError::Error(e)) => return Err(python_exit(py, e)),
        };
        for (k, v) in namespace.iter() {
            let Ok(name) = k.extract::<String>() else {
                continue;
            };
            let Some(st) = SETTINGS.iter().find(|s| s.name == name) else {
                continue;
            };
            if let Err(e) = self.set(st, &v) {
                let shown = v.str().map(|s| s.to_string()).unwrap_or_default();
                eprintln!("Invalid value for {name}: {shown}\n");
                return Err(python_exit(py, e));
            }
        }
        Ok(())
    }
}

/// Maps an exception to a failure: `SystemExit` exits with its code, anything else is an error.
fn python_exit(py: Python<'_>, e: PyErr) -> Fail {
    if e.is_instance_of::<pyo3::exceptions::PySystemExit>(py) {
        let code = e
            .value(py)
            .getattr("code")
            .ok()
            .and_then(|c| {
                if c.is_none() {
                    Some(0)
                } else {
                    c.extract::<i32>().ok()
                }
            })
            .unwrap_or(1);
        return Fail::Exit(code);
    }
    Fail::Error(err_text(py, &e))
}

/// `shlex.split` errors, worded as Python's `shlex` words them.
fn shlex_split(s: &str) -> Result<Vec<String>, Fail> {
    shlex::split(s).ok_or_else(|| {
        let trailing_backslash = s.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1;
        Fail::Error(if trailing_backslash {
            "No escaped character".into()
        } else {
            "No closing quotation".into()
        })
    })
}

/// The validated default of every setting (hooks: [`Value::None`]).
pub(super) fn default_values(py: Python<'_>) -> PyResult<HashMap<&'static str, Value>> {
    let mut values = HashMap::new();
    for st in SETTINGS {
        let v = if st.default == Default::Hook {
            Value::None
        } else {
            let raw = super::defaults::raw_default(py, st)?;
            validate::validate(py, st, &raw)?
        };
        values.insert(st.name, v);
    }
    Ok(values)
}

fn truthy_str(py: Python<'_>, v: Option<&Py<PyAny>>) -> Option<String> {
    let v = v?.bind(py);
    let s = v.cast::<PyString>().ok()?.to_string();
    (!s.is_empty()).then_some(s)
}

fn run(py: Python<'_>, argv: &[String]) -> Result<Config, Fail> {
    let prog = argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_else(|| "rgun".into());
    let env_cmd_args = std::env::var("GUNICORN_CMD_ARGS").ok();

    let values = default_values(py).map_err(|e| python_exit(py, e))?;
    let mut ld = Loader { py, values };

    let args = cli::parse(py, &prog, argv.get(1..).unwrap_or(&[]))?;

    // WSGIApplication.init()
    let mut app_uri: Option<String> = None;
    if let Some(paste) = truthy_str(py, args.get("paste")) {
        let path = py
            .import("os")
            .and_then(|o| o.getattr("path"))
            .map_err(|e| python_exit(py, e))?;
        let abs: String = path
            .call_method1("abspath", (&paste,))
            .and_then(|a| a.extract())
            .map_err(|e| python_exit(py, e))?;
        let file = abs.split('#').next().unwrap_or(&abs).to_string();
        if !std::path::Path::new(&file).exists() {
            return Err(Fail::Error(format!(
                "{} not found",
                cli::py_repr(py, &file)
            )));
        }
        ld.set(
            super::spec::find("default_proc_name").expect("setting"),
            &PyString::new(py, &file).into_any(),
        )
        .map_err(|e| python_exit(py, e))?;
        app_uri = Some(abs);
    } else if let Some(first) = args.args.first() {
        ld.set(
            super::spec::find("default_proc_name").expect("setting"),
            &PyString::new(py, first).into_any(),
        )
        .map_err(|e| python_exit(py, e))?;
        app_uri = Some(first.clone());
    }

    ld.chdir()?;

    let env_args = match &env_cmd_args {
        Some(s) => cli::parse(py, &prog, &shlex_split(s)?)?,
        None => cli::parse(py, &prog, &[])?,
    };

    let config_file = if let Some(c) = truthy_str(py, args.get("config")) {
        Some(c)
    } else if let Some(c) = truthy_str(py, env_args.get("config")) {
        Some(c)
    } else {
        let cwd = std::env::current_dir().map_err(|e| Fail::Error(e.to_string()))?;
        let p = cwd.join("gunicorn.conf.py");
        p.exists().then(|| p.to_string_lossy().into_owned())
    };
    if let Some(c) = &config_file {
        ld.load_file(c)?;
    }

    ld.set_all(&env_args)?;
    ld.set_all(&args)?;
    ld.chdir()?;

    if app_uri.is_none() {
        match ld.values.get("wsgi_app") {
            Some(Value::Str(s)) => app_uri = Some(s.clone()),
            _ => {
                return Err(Fail::Error(err_text(
                    py,
                    &ConfigError::new_err("No application module specified."),
                )));
            }
        }
    }

    let cfg = Config::from_values(ld.values, app_uri);
    super::refuse::check(py, &cfg).map_err(Fail::Error)?;
    Ok(cfg)
}

/// Loads the configuration exactly as gunicorn does, from `argv` (`argv[0]` is the program
/// name) and the environment. Prints gunicorn's messages itself.
pub fn load(py: Python<'_>, argv: &[String]) -> Loaded {
    match run(py, argv) {
        Ok(cfg) => Loaded::Run(cfg),
        Err(Fail::Exit(code)) => Loaded::Exit(code),
        Err(Fail::Error(msg)) => {
            eprintln!("\nError: {msg}");
            Loaded::Exit(1)
        }
    }
}
