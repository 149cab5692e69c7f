//! Which logger writes rgun's logs. Without a Python-only logging setting, rgun's Rust logs
//! (`observe`) write the error and access logs, and Python's `gunicorn.error`/`gunicorn.access`
//! loggers are bridged into them. With `logconfig`, `logconfig_dict`, `logconfig_json`,
//! `syslog`, `capture_output` or a `logger_class`, a gunicorn-style Logger (`rgun._glogging`,
//! or the user's class) is built and every line rgun logs goes through Python `logging`.
//! With `statsd_host` and the default logger class, the logger is also gunicorn's Statsd
//! (`rgun._statsd`), in either mode, and `observe::statsd` is set up once, at startup.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::config::Config;
use crate::observe::{self, External, Level, Sink};

/// The Python side of `observe`: each line is handed to the Logger object.
struct PySink {
    log: Py<PyAny>,
    module: Py<PyModule>,
    level: Level,
    access: bool,
}

impl PySink {
    fn call(&self, what: &str, f: impl FnOnce(Python<'_>) -> PyResult<()>) {
        Python::attach(|py| {
            if let Err(e) = f(py) {
                eprintln!("rgun: {what} failed: {}", super::format_traceback(py, &e));
            }
        });
    }
}

impl External for PySink {
    fn log(&self, level: Level, msg: &str) {
        self.call("logging", |py| {
            self.module
                .bind(py)
                .call_method1("emit", (&self.log, level.levelno(), msg))
                .map(drop)
        });
    }

    fn access(&self, line: &str) {
        self.call("access logging", |py| {
            self.module
                .bind(py)
                .call_method1("emit_access", (&self.log, line))
                .map(drop)
        });
    }

    fn reopen(&self) {
        self.call("reopening the log files", |py| {
            self.log.bind(py).call_method0("reopen_files").map(drop)
        });
    }

    fn level(&self) -> Level {
        self.level
    }

    fn access_enabled(&self) -> bool {
        self.access
    }
}

/// A logging setup failure: the text gunicorn prints on stderr (then exit 1).
pub struct SetupError(pub String);

fn runtime_or_traceback(py: Python<'_>, e: &PyErr) -> SetupError {
    if e.is_instance_of::<pyo3::exceptions::PyRuntimeError>(py) {
        SetupError(format!("\nError: {}\n", super::exc_str(py, e)))
    } else {
        SetupError(super::format_traceback(py, e).trim_end().to_string())
    }
}

/// Whether `cfg` needs Python `logging` (see the module comment).
pub fn needs_python(py: Python<'_>, cfg_obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    py.import("rgun._glogging")?
        .call_method1("needs_python", (cfg_obj,))?
        .extract()
}

/// Installs the Python logger `log` as the writer of rgun's logs.
fn install_python(
    py: Python<'_>,
    log: &Bound<'_, PyAny>,
    cfg_obj: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let module = py.import("rgun._glogging")?;
    let levelno: i32 = module.call_method1("effective_level", (log,))?.extract()?;
    let access: bool = module
        .call_method1("access_enabled", (cfg_obj,))?
        .extract()?;
    observe::init_external(Arc::new(PySink {
        log: log.clone().unbind(),
        module: module.unbind(),
        level: Level::from_levelno(levelno),
        access,
    }));
    Ok(())
}

/// rgun's Rust logs, with the `gunicorn.error`/`gunicorn.access` loggers bridged into them.
fn install_rust(
    py: Python<'_>,
    cfg: &Config,
    cfg_obj: &Bound<'_, PyAny>,
) -> Result<Py<PyAny>, SetupError> {
    let level = Level::from_setting(cfg.str("loglevel").unwrap_or("info"));
    let errorlog = Sink::from_setting(cfg.str("errorlog"), Sink::Stderr);
    let accesslog = Sink::from_setting(cfg.str("accesslog"), Sink::Stdout);
    observe::init(level, errorlog, accesslog).map_err(|e| SetupError(format!("\nError: {e}\n")))?;
    // gunicorn hands its log files to `user`/`group`, so workers can reopen them.
    let uid = u32::try_from(cfg.int("user")).ok();
    let gid = u32::try_from(cfg.int("group")).ok();
    for name in ["errorlog", "accesslog"] {
        if let Some(path) = cfg.str(name).filter(|p| *p != "-") {
            let _ = nix::unistd::chown(
                std::path::Path::new(path),
                uid.map(nix::unistd::Uid::from_raw),
                gid.map(nix::unistd::Gid::from_raw),
            );
        }
    }
    let bridge = || -> PyResult<Py<PyAny>> {
        let module = py.import("rgun._objects")?;
        module.call_method1(
            "setup_logging",
            (cfg.str("loglevel"), observe::access_enabled()),
        )?;
        py.import("rgun._wsgi")?
            .call_method1("preopen", (cfg.str("errorlog"),))?;
        Ok(module.call_method1("make_logger", (cfg_obj,))?.unbind())
    };
    bridge().map_err(|e| runtime_or_traceback(py, &e))
}

/// StatsD, when gunicorn would build its Statsd logger: the socket (connected by Python with
/// gunicorn's rules, then owned by Rust), prefix and tags, fixed for the life of the server.
fn setup_statsd(py: Python<'_>, cfg_obj: &Bound<'_, PyAny>) -> PyResult<()> {
    let module = py.import("rgun._statsd")?;
    if !module
        .call_method1("wanted", (cfg_obj,))?
        .extract::<bool>()?
    {
        return Ok(());
    }
    let (fd, prefix, tags, encode_error): (i32, String, String, Option<String>) =
        module.call_method1("setup", (cfg_obj,))?.extract()?;
    let sock = (fd >= 0).then(|| socket2::Socket::from(crate::unix::fd::own_detached(fd)));
    observe::statsd::init(sock, prefix, tags, encode_error);
    Ok(())
}

/// Sets up logging at startup and returns the `log` object hooks receive.
pub fn setup(
    py: Python<'_>,
    cfg: &Config,
    cfg_obj: &Bound<'_, PyAny>,
) -> Result<Py<PyAny>, SetupError> {
    setup_statsd(py, cfg_obj).map_err(|e| runtime_or_traceback(py, &e))?;
    build(py, cfg, cfg_obj)
}

/// Builds the logger `cfg` asks for and installs it as the writer of rgun's logs.
fn build(
    py: Python<'_>,
    cfg: &Config,
    cfg_obj: &Bound<'_, PyAny>,
) -> Result<Py<PyAny>, SetupError> {
    let python = needs_python(py, cfg_obj).map_err(|e| runtime_or_traceback(py, &e))?;
    if !python {
        return install_rust(py, cfg, cfg_obj);
    }
    let build = || -> PyResult<Py<PyAny>> {
        let log = py
            .import("rgun._glogging")?
            .call_method1("make_logger", (cfg_obj,))?;
        install_python(py, &log, cfg_obj)?;
        Ok(log.unbind())
    };
    build().map_err(|e| runtime_or_traceback(py, &e))
}

/// SIGHUP: re-runs the logger setup with the new config, as gunicorn's `Arbiter.setup`. A
/// Python logger is set up again in place; on failure the previous configuration is kept (and
/// the failure reported on stderr). Returns the `log` object to use from now on.
pub fn reload(
    py: Python<'_>,
    cfg: &Config,
    cfg_obj: &Bound<'_, PyAny>,
    previous: &Py<PyAny>,
) -> Py<PyAny> {
    let python = match needs_python(py, cfg_obj) {
        Ok(p) => p,
        Err(e) => {
            e.print(py);
            return previous.clone_ref(py);
        }
    };
    let is_bridge = py
        .import("rgun._objects")
        .and_then(|m| previous.bind(py).is_instance(&m.getattr("Logger")?))
        .unwrap_or(true);
    if !python {
        return match install_rust(py, cfg, cfg_obj) {
            Ok(log) => {
                let _ = py
                    .import("rgun._glogging")
                    .and_then(|m| m.call_method0("drop_handlers"));
                log
            }
            Err(SetupError(msg)) => {
                eprintln!("{msg}");
                previous.clone_ref(py)
            }
        };
    }
    if is_bridge {
        return match build(py, cfg, cfg_obj) {
            Ok(log) => log,
            Err(SetupError(msg)) => {
                eprintln!("{msg}");
                previous.clone_ref(py)
            }
        };
    }
    let prev = previous.bind(py);
    let prev_cfg = prev.getattr("cfg").ok();
    match prev.call_method1("setup", (cfg_obj,)) {
        Ok(_) => {
            if let Err(e) = install_python(py, prev, cfg_obj) {
                e.print(py);
            }
        }
        Err(e) => {
            eprintln!(
                "\nError: reloading the logger configuration failed, keeping the previous one"
            );
            eprintln!("{}", super::format_traceback(py, &e).trim_end());
            let restored = prev_cfg.map(|c| prev.call_method1("setup", (&c,)).map(|_| c));
            match restored {
                Some(Ok(c)) => {
                    let _ = install_python(py, prev, &c);
                    observe::error(
                        "reloading the logger configuration failed, keeping the previous one",
                    );
                }
                Some(Err(e)) => {
                    eprintln!("Error: restoring the previous logger configuration failed");
                    eprintln!("{}", super::format_traceback(py, &e).trim_end());
                }
                None => {}
            }
        }
    }
    previous.clone_ref(py)
}
