//! The one place that turns a run's outcome into a process exit code (0, 1, 2, 3, 4 as gunicorn):
//! load the configuration, handle `--print-config`/`--check-config`, start the master, and in a
//! forked child, run the worker.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::arbiter::{Arbiter, Outcome};
use crate::config::{self, Config, Loaded};
use crate::observe::{self, Level};
use crate::python::{self, app::WorkerClass};

/// Runs rgun with `argv` and returns the exit code.
pub fn main(py: Python<'_>, argv: &[String]) -> i32 {
    observe::local_zone_init();
    // What gunicorn has imported before it reads its configuration (its own dependencies), so
    // that workers inherit it as gunicorn's do, and a project module named like one of them
    // (found once the config puts the project first on `sys.path`) shadows it in neither.
    python::master_modules::import(py);
    let cfg = match config::load(py, argv) {
        Loaded::Run(cfg) => cfg,
        Loaded::Exit(code) => return code,
    };
    if cfg.bool("print_config") || cfg.bool("check_config") {
        return check(py, &cfg);
    }
    // gunicorn's `Application.run`: the tracer, then daemonizing, then pythonpath.
    if cfg.bool("spew")
        && let Err(e) = python::install_spew(py)
    {
        eprintln!("{}", python::format_traceback(py, &e).trim_end());
        return 1;
    }
    if cfg.bool("daemon") {
        if std::env::var("NOTIFY_SOCKET").is_ok_and(|v| !v.is_empty()) {
            eprintln!(
                "Warning: you shouldn't specify `daemon = True` when launching by systemd with `Type = notify`"
            );
        }
        python::flush_std_streams(py);
        let daemonize = || -> PyResult<()> {
            py.import("rgun._process")?
                .call_method1("daemonize", (cfg.bool("enable_stdio_inheritance"),))?;
            Ok(())
        };
        if let Err(e) = daemonize() {
            eprintln!("{}", python::format_traceback(py, &e).trim_end());
            return 1;
        }
    }
    // Then the Arbiter's setup: logger, config dump, raw_env.
    if let Err(e) = prepend_pythonpath(py, &cfg) {
        eprintln!("\nError: {}\n", python::exc_str(py, &e));
        return 1;
    }
    let cfg_obj = match python::hooks::config_object(py, &cfg) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}", python::format_traceback(py, &e).trim_end());
            return 1;
        }
    };
    let log = match python::logging::setup(py, &cfg, cfg_obj.bind(py)) {
        Ok(log) => log,
        Err(python::logging::SetupError(msg)) => {
            eprintln!("{msg}");
            return 1;
        }
    };
    if observe::enabled(Level::Debug) {
        log_configuration(py, &cfg);
    }
    if let Err(e) = prepare_process(py, &cfg) {
        eprintln!("\nError: {}\n", python::exc_str(py, &e));
        return 1;
    }
    // gunicorn loads the worker class while building the Arbiter, before `Starting`.
    let wc = crate::python::hooks::value_to_py(py, cfg.get("worker_class"));
    match python::app::resolve_worker_class(py, wc.bind(py)) {
        Ok(WorkerClass::Served(_)) => {}
        Ok(WorkerClass::NotFound(msg)) => {
            eprintln!("\nError: {msg}\n");
            return 1;
        }
        Ok(WorkerClass::NotSupported(name)) => {
            eprintln!("\nError: worker class '{name}' is not supported by rgun yet\n");
            return 1;
        }
        Err(e) => {
            eprintln!("\nError: {}\n", python::exc_str(py, &e));
            return 1;
        }
    }
    let app = if cfg.bool("preload_app") {
        match python::app::load_app(py, &cfg) {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!("{}", python::format_traceback(py, e.err()).trim_end());
                return 1;
            }
        }
    } else {
        None
    };
    let worker_class = cfg.worker_class_str();
    let objs = match crate::python::hooks::Objects::new(py, &cfg, cfg_obj, log) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}", python::format_traceback(py, &e).trim_end());
            return 1;
        }
    };
    let cfg = Arc::new(cfg);
    match Arbiter::new(cfg, app, worker_class, objs, argv.to_vec()).run(py) {
        Outcome::Exit(code) => code,
        Outcome::Worker(ctx) => crate::worker::run(py, *ctx),
    }
}

/// `--print-config` / `--check-config`: print, import the app, exit 0 or 1.
fn check(py: Python<'_>, cfg: &Config) -> i32 {
    if cfg.bool("print_config") {
        println!("{}", config::print_config(cfg));
    }
    match python::app::load_app(py, cfg) {
        Ok(_) => 0,
        Err(e) => {
            let text = python::format_traceback(py, e.err());
            eprintln!(
                "\nError while loading the application:\n\n{}",
                text.trim_end()
            );
            1
        }
    }
}

/// gunicorn's debug `Current configuration:` block, one `  name: value` line per setting.
pub fn log_configuration(py: Python<'_>, cfg: &Config) {
    let items = || -> PyResult<String> {
        let list = pyo3::types::PyList::empty(py);
        for (order, st) in config::SETTINGS.iter().enumerate() {
            let value = python::hooks::value_to_py(py, cfg.get(st.name));
            list.append((st.name, st.section, order, value))?;
        }
        py.import("rgun._objects")?
            .call_method1("config_dump", (list,))?
            .extract()
    };
    match items() {
        Ok(text) => observe::debug(&text),
        Err(e) => observe::debug(&format!("Current configuration: unavailable ({e})")),
    }
}

/// `pythonpath` entries go first on `sys.path` (before the logger is built, so logging config
/// can name classes from there).
fn prepend_pythonpath(py: Python<'_>, cfg: &Config) -> PyResult<()> {
    if let Some(paths) = cfg.str("pythonpath") {
        let sys_path = py.import("sys")?.getattr("path")?;
        for p in paths.split(',').rev() {
            let abs = py.import("os.path")?.call_method1("abspath", (p.trim(),))?;
            sys_path.call_method1("insert", (0, abs))?;
        }
    }
    Ok(())
}

/// What gunicorn's `Arbiter.setup` does to the process before starting: `SERVER_SOFTWARE`,
/// `raw_env`.
pub fn prepare_process(py: Python<'_>, cfg: &Config) -> PyResult<()> {
    let environ = py.import("os")?.getattr("environ")?;
    environ.set_item(
        "SERVER_SOFTWARE",
        format!("gunicorn/{}", crate::GUNICORN_VERSION),
    )?;
    for entry in cfg.list("raw_env") {
        match entry.split_once('=') {
            Some((k, v)) => environ.set_item(k, v)?,
            None => {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                    "environment setting '{entry}' invalid"
                )));
            }
        }
    }
    Ok(())
}
