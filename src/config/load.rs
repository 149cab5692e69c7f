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

/// The algorithm, with `GUNICORN_CMD_ARGS` passed in (the environment snapshot).
fn run(py: Python<'_>, argv: &[String], env_cmd_args: Option<String>) -> Result<Config, Fail> {
    let prog = argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_else(|| "rgun".into());

    let values = default_values(py).map_err(|e| python_exit(py, e))?;
    let mut ld = Loader { py, values };

    let args = cli::parse(py, &prog, argv.get(1..).unwrap_or(&[]))?;

    // WSGIApplication.init()
    let mut app_uri: Option<String> = None;
    if let Some(paste) = truthy_str(py, args.get("paste")) {
        crate::python::app::paste_import(py).map_err(|e| python_exit(py, e))?;
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
        let has_logging =
            crate::python::app::has_logging_config(py, &file).map_err(|e| python_exit(py, e))?;
        if has_logging {
            ld.set(
                super::spec::find("logconfig").expect("setting"),
                &PyString::new(py, &file).into_any(),
            )
            .map_err(|e| python_exit(py, e))?;
        }
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
    load_with(py, argv, std::env::var("GUNICORN_CMD_ARGS").ok())
}

/// [`load`] with an explicit `GUNICORN_CMD_ARGS` value instead of the environment's.
pub fn load_with(py: Python<'_>, argv: &[String], env_cmd_args: Option<String>) -> Loaded {
    match run(py, argv, env_cmd_args) {
        Ok(cfg) => Loaded::Run(cfg),
        Err(Fail::Exit(code)) => Loaded::Exit(code),
        Err(Fail::Error(msg)) => {
            eprintln!("\nError: {msg}");
            Loaded::Exit(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        std::iter::once("rgun")
            .chain(a.iter().copied())
            .map(String::from)
            .collect()
    }

    fn conf(name: &str, body: &str) -> String {
        let dir = std::env::temp_dir().join(format!("rgun-cfg-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let p = dir.join(name);
        std::fs::write(&p, body).expect("write config");
        p.to_string_lossy().into_owned()
    }

    fn run_ok(a: &[&str], env: Option<&str>) -> Config {
        Python::initialize();
        Python::attach(|py| match load_with(py, &argv(a), env.map(String::from)) {
            Loaded::Run(c) => c,
            Loaded::Exit(code) => panic!("exit {code} for {a:?}"),
        })
    }

    fn run_code(a: &[&str], env: Option<&str>) -> i32 {
        Python::initialize();
        Python::attach(|py| match load_with(py, &argv(a), env.map(String::from)) {
            Loaded::Run(_) => 0,
            Loaded::Exit(code) => code,
        })
    }

    #[test]
    fn defaults_only() {
        let c = run_ok(&["app:app"], None);
        assert_eq!(c.int("workers"), 1);
        assert_eq!(c.str("worker_class"), Some("sync"));
        assert_eq!(c.str("default_proc_name"), Some("app:app"));
        assert_eq!(c.app_uri.as_deref(), Some("app:app"));
        assert_eq!(c.list("forwarded_allow_ips"), ["127.0.0.1", "::1"]);
        assert!(c.object("on_starting").is_none());
    }

    #[test]
    fn precedence_defaults_file_env_cli() {
        let f = conf(
            "prec.conf.py",
            "workers = 2\ntimeout = 40\nkeepalive = 7\nbind = ['a:1', 'b:2']\nwsgi_app = 'x:y'\n",
        );
        // file only
        let c = run_ok(&["-c", &f], None);
        assert_eq!(
            (c.int("workers"), c.int("timeout"), c.int("keepalive")),
            (2, 40, 7)
        );
        assert_eq!(c.list("bind"), ["a:1", "b:2"]);
        assert_eq!(c.app_uri.as_deref(), Some("x:y"));
        // env beats file
        let c = run_ok(&["-c", &f], Some("-w 3 -t 50 -b c:3"));
        assert_eq!(
            (c.int("workers"), c.int("timeout"), c.int("keepalive")),
            (3, 50, 7)
        );
        assert_eq!(
            c.list("bind"),
            ["c:3"],
            "append settings are replaced, not merged"
        );
        // CLI beats env and file
        let c = run_ok(
            &["-c", &f, "-w", "4", "-b", "d:4", "-b", "e:5", "m:a"],
            Some("-w 3 -t 50"),
        );
        assert_eq!(
            (c.int("workers"), c.int("timeout"), c.int("keepalive")),
            (4, 50, 7)
        );
        assert_eq!(c.list("bind"), ["d:4", "e:5"]);
        assert_eq!(c.app_uri.as_deref(), Some("m:a"));
    }

    #[test]
    fn env_config_file_used_only_without_cli_config() {
        let a = conf("a.conf.py", "workers = 5\n");
        let b = conf("b.conf.py", "workers = 6\n");
        let env = format!("-c {b}");
        assert_eq!(run_ok(&["app"], Some(&env)).int("workers"), 6);
        assert_eq!(run_ok(&["-c", &a, "app"], Some(&env)).int("workers"), 5);
    }

    #[test]
    fn file_values_are_validated_and_coerced() {
        let f = conf(
            "coerce.conf.py",
            "workers = '0x10'\npreload_app = 'true'\nraw_env = 'A=B'\nBind = 'x'\nlog_level = 'x'\n",
        );
        let c = run_ok(&["-c", &f, "app"], None);
        assert_eq!(c.int("workers"), 16);
        assert!(c.bool("preload_app"));
        assert_eq!(c.list("raw_env"), ["A=B"]);
        assert_eq!(c.list("bind"), ["127.0.0.1:8000"]);
    }

    #[test]
    fn errors_exit_codes() {
        assert_eq!(run_code(&[], None), 1, "no application module");
        assert_eq!(run_code(&["-w", "abc", "app"], None), 2);
        assert_eq!(run_code(&["app"], Some("--bogus")), 2);
        assert_eq!(run_code(&["app"], Some("'-w")), 1, "shlex error");
        assert_eq!(run_code(&["-c", "/nonexistent/x.py", "app"], None), 1);
        let bad = conf("bad.conf.py", "workers = -1\n");
        assert_eq!(run_code(&["-c", &bad, "app"], None), 1);
        assert_eq!(run_code(&["--version"], None), 0);
    }

    #[test]
    fn refusals() {
        assert_eq!(run_code(&["--protocol", "uwsgi", "app"], None), 1);
        // Worker classes are resolved (and refused) when the arbiter is built, as gunicorn
        // loads them there; loading the config accepts any string.
        assert_eq!(run_code(&["-k", "gevent", "app"], None), 0);
        assert_eq!(run_code(&["-k", "gthread", "app"], None), 0);
        assert_eq!(run_code(&["--no-sendfile", "app"], None), 0);
        let same = conf("same.conf.py", "daemon = False\nlogconfig_dict = {}\n");
        assert_eq!(
            run_code(&["-c", &same, "app"], None),
            0,
            "defaults are fine"
        );
        let hook = conf(
            "hook.conf.py",
            "def on_dirty_starting(arbiter):\n    pass\n",
        );
        assert_eq!(run_code(&["-c", &hook, "app"], None), 1);
    }

    #[test]
    fn worker_class_str_switches_to_gthread() {
        let c = run_ok(&["--threads", "4", "app"], None);
        assert_eq!(c.worker_class_str(), "gthread");
        assert!(c.is_gthread());
        assert_eq!(run_ok(&["app"], None).worker_class_str(), "sync");
    }
}
