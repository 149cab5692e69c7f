//! One worker process, after the fork: gunicorn's `Worker.init_process` sequence (post_fork,
//! signals, the reloader, app load, reloader start, post_worker_init), then serving until told
//! to stop, then `worker_exit`.
//!
//! Invariant: the tokio runtime is built here, after the fork, and dropped before the process
//! returns to Python for exit.

pub mod addr_text;
mod ciphers;
pub mod conn;
mod cork;
mod doze;
mod handoff;
pub mod outbox;
mod pytls;
mod readbuf;
mod reload;
pub mod sendfile;
mod serve;
pub mod signals;
pub mod tls;
mod tls_errors;
mod trust;

use std::sync::Arc;

use pyo3::prelude::*;

use crate::config::Config;
use crate::observe;
use crate::python::{self, app::AppLoadError, hooks};
use crate::unix::heartbeat::Heartbeat;
use crate::unix::listeners::Listener;

/// Everything a worker inherits from the master at fork time.
pub struct WorkerContext {
    pub age: u64,
    pub ppid: u32,
    pub listeners: Vec<Listener>,
    pub cfg: Arc<Config>,
    pub heartbeat: Heartbeat,
    /// The app, when `--preload` imported it in the master.
    pub app: Option<Py<PyAny>>,
    pub max_requests: u64,
    pub worker_class: String,
    /// The hook objects, inherited from the master through the fork.
    pub server_obj: Py<PyAny>,
    pub worker_obj: Py<PyAny>,
    /// The listeners' TLS configuration, loaded by the master.
    pub tls: Option<tls::Tls>,
}

static HEARTBEAT: std::sync::OnceLock<Arc<Heartbeat>> = std::sync::OnceLock::new();

/// `worker.notify()` from Python: stamps the heartbeat (a no-op in the master).
pub fn notify() {
    if let Some(hb) = HEARTBEAT.get() {
        hb.notify();
    }
}

/// gunicorn's exit codes for a worker that could not boot / could not load the app.
const WORKER_BOOT_ERROR: i32 = 3;
const APP_LOAD_ERROR: i32 = 4;

/// Runs the worker; returns its exit code.
pub fn run(py: Python<'_>, ctx: WorkerContext) -> i32 {
    // Until the worker's own handlers are installed, the master's (enqueue-only) handlers and
    // wakeup pipe must not swallow signals: a TERM in that window terminates the worker, and
    // the master reaps it.
    let _ = signals::reset_inherited(py);
    let pid = std::process::id();
    // When the master dies, the kernel tells us at once (gunicorn only notices by polling).
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGQUIT);
    if nix::unistd::getppid().as_raw() != ctx.ppid as i32 {
        return 0;
    }
    observe::info(&format!("Booting worker with pid: {pid}"));
    let mut ctx = ctx;
    // `reuse_port`: the master bound nothing; each worker binds its own sockets.
    if ctx.cfg.bool("reuse_port") && ctx.listeners.is_empty() {
        let bound = crate::arbiter::parse_binds(&ctx.cfg)
            .and_then(|addrs| crate::arbiter::bind_listeners(py, &ctx.cfg, &addrs));
        match bound {
            Ok(l) => ctx.listeners = l,
            Err(msg) => {
                observe::error(&msg);
                return 1;
            }
        }
    }
    let worker_obj = ctx.worker_obj.clone_ref(py);
    let server_obj = ctx.server_obj.clone_ref(py);
    let cfg = ctx.cfg.clone();
    let code = match hooks::call(
        py,
        &cfg,
        "post_fork",
        (server_obj.clone_ref(py), worker_obj.clone_ref(py)),
    ) {
        Ok(()) => boot(py, ctx, &worker_obj),
        Err(e) => {
            observe::exception(
                "Exception in worker process",
                &python::format_traceback(py, &e),
            );
            eprintln!("{}", python::exc_str(py, &e));
            WORKER_BOOT_ERROR
        }
    };
    observe::info(&format!("Worker exiting (pid: {pid})"));
    if let Err(e) = hooks::call(py, &cfg, "worker_exit", (server_obj, worker_obj)) {
        observe::warning(&format!(
            "Exception during worker exit:\n{}",
            python::format_traceback(py, &e)
        ));
    }
    python::flush_std_streams(py);
    code
}

fn boot(py: Python<'_>, ctx: WorkerContext, worker_obj: &Py<PyAny>) -> i32 {
    let cfg = ctx.cfg.clone();
    // gunicorn's init_process: group, then user (raw_env is already in the environment).
    if let Err(e) = set_owner(py, &cfg) {
        return boot_error(py, &e);
    }
    let hook_cfg = cfg.clone();
    let hook_worker = worker_obj.clone_ref(py);
    let pipe = match signals::install(
        py,
        signals::HookTarget {
            call: Box::new(move |py, name| {
                // gunicorn's handlers clear `alive` before calling the hook.
                hooks::set_attr(py, &hook_worker, "alive", false);
                if let Err(e) = hooks::call(py, &hook_cfg, name, (hook_worker.clone_ref(py),)) {
                    observe::exception(
                        &format!("Exception in {name} hook"),
                        &python::format_traceback(py, &e),
                    );
                }
            }),
        },
    ) {
        Ok(p) => p,
        Err(e) => return boot_error(py, &e),
    };
    python::unblock_worker_signals();
    let reloader = if cfg.bool("reload") {
        match reload::create(py, &cfg) {
            Ok(r) => Some(r),
            Err(e) => return boot_error(py, &e),
        }
    } else {
        None
    };
    let app = match ctx.app {
        Some(a) => a,
        None => match python::app::load_app(py, &cfg) {
            Ok(a) => a,
            Err(e) if reload::survives(py, &cfg, e.err()) => {
                match reload::fail_app(py, e.err(), reloader.as_ref()) {
                    Ok(a) => a,
                    Err(e) => return boot_error(py, &e),
                }
            }
            Err(AppLoadError::Import(e)) => {
                observe::debug("Exception while loading the application");
                eprintln!("{}", python::exc_str(py, &e));
                return APP_LOAD_ERROR;
            }
            Err(AppLoadError::Other(e)) => return boot_error(py, &e),
        },
    };
    hooks::set_attr(py, worker_obj, "wsgi", app.clone_ref(py));
    if let Some(r) = reloader {
        if let Err(e) = r.bind(py).call_method0("start") {
            return boot_error(py, &e);
        }
        hooks::set_attr(py, worker_obj, "reloader", r);
    }
    if let Err(e) = hooks::call(py, &cfg, "post_worker_init", (worker_obj.clone_ref(py),)) {
        return boot_error(py, &e);
    }
    hooks::set_attr(py, worker_obj, "booted", true);
    let code = serve::serve(
        py,
        serve::Setup {
            cfg,
            app,
            listeners: ctx.listeners,
            heartbeat: {
                let hb = Arc::new(ctx.heartbeat);
                let _ = HEARTBEAT.set(hb.clone());
                hb
            },
            wakeup: pipe,
            max_requests: ctx.max_requests,
            ppid: ctx.ppid,
            worker_obj: worker_obj.clone_ref(py),
            tls: ctx.tls,
        },
    );
    hooks::set_attr(py, worker_obj, "alive", false);
    code
}

fn boot_error(py: Python<'_>, e: &PyErr) -> i32 {
    observe::exception(
        "Exception in worker process",
        &python::format_traceback(py, e),
    );
    eprintln!("{}", python::exc_str(py, e));
    WORKER_BOOT_ERROR
}

/// `user`/`group`/`initgroups`: the switch gunicorn's workers make after the fork.
fn set_owner(py: Python<'_>, cfg: &Config) -> PyResult<()> {
    py.import("rgun._process")?.call_method1(
        "set_owner_process",
        (cfg.int("user"), cfg.int("group"), cfg.bool("initgroups")),
    )?;
    Ok(())
}
