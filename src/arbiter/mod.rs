//! The master process, gunicorn's `Arbiter`: synchronous and single-threaded, no tokio. It binds
//! every listener, forks the workers through CPython, then loops: wait (≤ 1 s) for a signal,
//! handle it, abort silent workers, keep the worker count.
//!
//! Invariants: the master never serves a request and never runs app code (except `--preload`'s
//! import); signal handlers only enqueue (the wakeup pipe), and the loop dispatches.

mod upgrade;
mod workers;

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use pyo3::prelude::*;

use crate::config::Config;
use crate::observe;
use crate::python::{self, hooks, signals::WakeupPipe};
use crate::unix::listeners::{self, Listener};
use crate::unix::pidfile::Pidfile;
use crate::worker::WorkerContext;
use workers::WorkerRecord;

/// How the master's run ended in this process.
pub enum Outcome {
    /// The master exits with this code.
    Exit(i32),
    /// This process is a freshly forked worker: serve, then exit.
    Worker(Box<WorkerContext>),
}

/// Why `start` or the loop has to stop the server.
struct Halt {
    reason: Option<String>,
    code: i32,
}

impl Halt {
    /// A startup failure gunicorn exits on directly (`sys.exit(1)` / a RuntimeError printed by
    /// the runner): no `Shutting down` line, no `on_exit`.
    fn startup(code: i32) -> Halt {
        Halt {
            reason: Some(String::new()),
            code: -code,
        }
    }
}

const MASTER_SIGNALS: [Signal; 10] = [
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCHLD,
];

pub struct Arbiter {
    cfg: Arc<Config>,
    pid: u32,
    listeners: Vec<Listener>,
    workers: BTreeMap<i32, WorkerRecord>,
    num_workers: usize,
    /// The worker count last logged (and sent as the `gunicorn.workers` gauge).
    last_logged_workers: Option<usize>,
    worker_age: u64,
    wakeup: Option<WakeupPipe>,
    app: Option<Py<PyAny>>,
    pidfile: Option<Pidfile>,
    worker_class: String,
    /// Signals drained from the wakeup pipe and not handled yet.
    queue: Vec<i32>,
    /// The `server`, `cfg` and `log` objects hooks receive.
    objs: hooks::Objects,
    /// TLS for the listeners (`certfile`/`keyfile` set).
    tls: Option<crate::worker::tls::Tls>,
    /// The command line, loaded again on SIGHUP.
    argv: Vec<String>,
    /// While this master is a USR2 child: the old master's pid (`GUNICORN_PID`), else 0.
    master_pid: i32,
    /// `proc_name` carries `.2`: from the start of a USR2 child until it is promoted or reloads
    /// its configuration (gunicorn's `setup` takes `cfg.proc_name` again on SIGHUP).
    dot2: bool,
    /// The USR2 child this master forked and has not reaped yet, else 0.
    reexec_pid: i32,
    /// The listeners came from systemd socket activation.
    systemd: bool,
}

impl Arbiter {
    pub fn new(
        cfg: Arc<Config>,
        app: Option<Py<PyAny>>,
        worker_class: String,
        objs: hooks::Objects,
        argv: Vec<String>,
    ) -> Arbiter {
        let num_workers = usize::try_from(cfg.int("workers")).unwrap_or(0);
        Arbiter {
            objs,
            tls: None,
            cfg,
            pid: std::process::id(),
            listeners: Vec::new(),
            workers: BTreeMap::new(),
            num_workers,
            last_logged_workers: None,
            worker_age: 0,
            wakeup: None,
            app,
            pidfile: None,
            worker_class,
            queue: Vec::new(),
            argv,
            master_pid: 0,
            dot2: false,
            reexec_pid: 0,
            systemd: false,
        }
    }

    /// Runs the master until it exits, or returns in a forked worker.
    pub fn run(mut self, py: Python<'_>) -> Outcome {
        match self.start(py) {
            Ok(()) => {}
            Err(h) => return Outcome::Exit(self.halt(py, h)),
        }
        python::set_proc_title(py, &format!("master [{}]", self.proc_name()));
        match self.manage_workers(py) {
            Ok(None) => {}
            Ok(Some(ctx)) => return Outcome::Worker(ctx),
            Err(h) => return Outcome::Exit(self.halt(py, h)),
        }
        // Where gunicorn logs `Control socket listening at ...`: rgun has no control
        // interface yet, and says so rather than pretending.
        if self.cfg.bool("control_socket_disable") {
            observe::debug("Control socket disabled");
        } else {
            let path = self.cfg.str("control_socket").unwrap_or("");
            observe::debug(&format!(
                "Control socket is not supported by rgun yet: {path} was not created"
            ));
        }
        loop {
            match self.tick(py) {
                Ok(None) => {}
                Ok(Some(ctx)) => return Outcome::Worker(ctx),
                Err(h) => return Outcome::Exit(self.halt(py, h)),
            }
        }
    }

    fn start(&mut self, py: Python<'_>) -> Result<(), Halt> {
        // gunicorn assigns num_workers while setting up: the hook sees old_value None.
        let n = self.num_workers;
        self.hook(py, "nworkers_changed", |py, s| (s, n, py.None()));
        observe::info(&format!("Starting rgun {}", crate::VERSION));
        self.read_upgrade_env();
        hooks::set_attr(py, &self.objs.server, "proc_name", self.proc_name());
        hooks::set_attr(py, &self.objs.server, "pid", self.pid);
        hooks::set_attr(py, &self.objs.server, "master_pid", self.master_pid);
        hooks::set_attr(py, &self.objs.server, "master_name", self.master_name());
        if let Some(path) = self.pidfile_path() {
            match Pidfile::create(&path, self.pid) {
                Ok(p) => self.pidfile = Some(p),
                Err(msg) => {
                    eprintln!(
                        "
Error: {msg}
"
                    );
                    return Err(Halt::startup(1));
                }
            }
        }
        self.hook(py, "on_starting", |py, s| (s.clone_ref(py),));
        self.install_signals(py).map_err(|e| self.fatal(py, &e))?;

        let mut addrs = Vec::new();
        for b in self.cfg.list("bind") {
            match listeners::parse_address(b) {
                Ok(a) => addrs.push(a),
                Err(msg) => {
                    eprintln!(
                        "
Error: {msg}
"
                    );
                    return Err(Halt::startup(1));
                }
            }
        }
        match crate::worker::tls::from_config(&self.cfg) {
            Ok(tls) => self.tls = tls,
            Err(msg) => {
                eprintln!("\nError: {msg}\n");
                return Err(Halt::startup(1));
            }
        }
        let inherited = self.inherited_fds(py);
        self.systemd = inherited.systemd;
        hooks::set_attr(py, &self.objs.server, "systemd", self.systemd);
        // With SO_REUSEPORT, gunicorn's master binds nothing: each worker binds its own sockets.
        if !self.reuse_port() {
            let bound = if inherited.fds.is_empty() {
                self.bind(py, &addrs)
            } else {
                // Any inherited descriptor replaces every `bind` address (gunicorn's rule).
                self.adopt(&inherited)
            };
            self.listeners = bound.map_err(|msg| {
                observe::error(&msg);
                Halt::startup(1)
            })?;
        }
        self.mirror_listeners(py);
        observe::debug("Arbiter booted");
        let tls = self.tls.is_some();
        let shown: Vec<String> = self.listeners.iter().map(|l| l.display(tls)).collect();
        observe::info(&format!("Listening at: {} ({})", shown.join(","), self.pid));
        observe::info(&format!("Using worker: {}", self.worker_class));
        let notify_socket = std::env::var("NOTIFY_SOCKET").ok();
        if let Err(e) = crate::unix::systemd::notify(
            notify_socket.as_deref(),
            "READY=1\nSTATUS=Gunicorn arbiter booted",
        ) {
            observe::debug(&format!("Exception while invoking sd_notify(): {e}"));
        }
        self.hook(py, "when_ready", |py, s| (s.clone_ref(py),));
        Ok(())
    }

    /// The configured pidfile, as `<pidfile>.2` while this master is an unpromoted USR2 child
    /// (its parent holds `<pidfile>`; gunicorn's child dies on a SIGHUP trying to take it).
    fn pidfile_path(&self) -> Option<String> {
        let path = self.cfg.str("pidfile")?;
        Some(if self.master_pid != 0 {
            format!("{path}.2")
        } else {
            path.to_string()
        })
    }

    /// gunicorn's `cfg.proc_name`, with `.2` in a USR2 child (see [`Arbiter::dot2`]).
    fn proc_name(&self) -> String {
        let name = self.cfg.proc_name().unwrap_or("");
        if self.dot2 {
            format!("{name}.2")
        } else {
            name.to_string()
        }
    }

    /// `reuse_port` on a platform with SO_REUSEPORT (Linux always has it).
    fn reuse_port(&self) -> bool {
        self.cfg.bool("reuse_port")
    }

    /// Binds `addrs` with the configured backlog, umask and socket options; unix socket files
    /// are then handed to `user`/`group`, as gunicorn does.
    fn bind(&self, py: Python<'_>, addrs: &[listeners::BindAddr]) -> Result<Vec<Listener>, String> {
        bind_listeners(py, &self.cfg, addrs)
    }

    fn install_signals(&mut self, py: Python<'_>) -> PyResult<()> {
        let pipe = WakeupPipe::install(py)?;
        let handler = python::signals::enqueue_only_handler(py)?;
        for sig in MASTER_SIGNALS {
            python::signals::set_handler(py, sig as i32, &handler)?;
        }
        self.wakeup = Some(pipe);
        Ok(())
    }

    fn fatal(&self, py: Python<'_>, e: &PyErr) -> Halt {
        observe::error_with_traceback(
            "Unhandled exception in main loop",
            &python::format_traceback(py, e),
        );
        Halt {
            reason: None,
            code: 255,
        }
    }

    /// One pass of the main loop.
    fn tick(&mut self, py: Python<'_>) -> Result<Option<Box<WorkerContext>>, Halt> {
        self.maybe_promote_master(py);
        let wait = self.next_wait();
        self.wait_for_signals(py, wait);
        while !self.queue.is_empty() {
            let sig = self.queue.remove(0);
            if let Some(ctx) = self.handle_signal(py, sig)? {
                return Ok(Some(ctx));
            }
        }
        self.reap_workers(py)?;
        self.murder_workers();
        self.manage_workers(py)
    }

    /// Waits up to `timeout` for a signal, with the GIL released (hook threads keep running).
    fn wait_for_signals(&mut self, py: Python<'_>, timeout: Duration) {
        let Some(pipe) = &self.wakeup else { return };
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(1000);
        let ready = py.detach(|| {
            let mut fds = [PollFd::new(pipe.read.as_fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(ms)).unwrap_or(0) > 0
        });
        if ready {
            self.queue.extend(pipe.drain());
        }
        // Run (no-op) Python handlers so none stays pending.
        let _ = py.check_signals();
    }

    /// At most 1 s, but wake in time for the earliest worker timeout (gunicorn checks once a
    /// second; waking at the deadline makes `timeout` exact without changing its meaning).
    fn next_wait(&self) -> Duration {
        let timeout = self.cfg.int("timeout");
        let mut wait = Duration::from_secs(1);
        if timeout > 0 {
            for w in self.workers.values() {
                if let Some(at) = w.aborted {
                    wait = wait.min(
                        Duration::from_secs(1).saturating_sub(at.elapsed())
                            + Duration::from_millis(10),
                    );
                    continue;
                }
                let left = timeout as f64 - w.heartbeat.silent_for();
                if left > 0.0 {
                    wait = wait.min(Duration::from_secs_f64(left + 0.01));
                } else {
                    wait = wait.min(Duration::from_millis(10));
                }
            }
        }
        wait.max(Duration::from_millis(10))
    }

    fn handle_signal(
        &mut self,
        py: Python<'_>,
        sig: i32,
    ) -> Result<Option<Box<WorkerContext>>, Halt> {
        let name = python::signals::name(sig);
        let Ok(signal) = Signal::try_from(sig) else {
            observe::info(&format!("Ignoring unknown signal: {sig}"));
            return Ok(None);
        };
        if signal == Signal::SIGCHLD {
            observe::debug(&format!("Handling signal: {name}"));
            self.reap_workers(py)?;
            return Ok(None);
        }
        observe::info(&format!("Handling signal: {name}"));
        match signal {
            Signal::SIGTERM => {
                self.stop(py, true);
                Err(Halt {
                    reason: None,
                    code: 0,
                })
            }
            Signal::SIGINT | Signal::SIGQUIT => {
                self.stop(py, false);
                Err(Halt {
                    reason: None,
                    code: 0,
                })
            }
            Signal::SIGHUP => {
                observe::info(&format!("Hang up: {}", self.master_name()));
                self.reload(py)
            }
            Signal::SIGTTIN => {
                self.set_num_workers(py, self.num_workers + 1);
                self.manage_workers(py)
            }
            Signal::SIGTTOU => {
                if self.num_workers > 1 {
                    self.set_num_workers(py, self.num_workers - 1);
                }
                self.manage_workers(py)
            }
            Signal::SIGUSR1 => {
                observe::reopen();
                self.kill_workers(Signal::SIGUSR1);
                Ok(None)
            }
            Signal::SIGUSR2 => self.reexec(py),
            Signal::SIGWINCH => {
                if self.cfg.bool("daemon") {
                    observe::info("graceful stop of workers");
                    self.set_num_workers(py, 0);
                    self.kill_workers(Signal::SIGTERM);
                } else {
                    observe::debug("SIGWINCH ignored. Not daemonized");
                }
                Ok(None)
            }
            _ => {
                observe::error(&format!("Unhandled signal: {name}"));
                Ok(None)
            }
        }
    }

    /// HUP, as gunicorn's `Arbiter.reload`: load the configuration again (a failure keeps the
    /// running one), set up logging again, rebind if `bind` changed, `on_reload`, rewrite the
    /// pidfile, then start a fresh set of workers and retire the old ones (oldest first),
    /// waiting up to `graceful_timeout` for them.
    fn reload(&mut self, py: Python<'_>) -> Result<Option<Box<WorkerContext>>, Halt> {
        let old_bind: Vec<String> = self.cfg.list("bind").to_vec();
        // What the previous configuration leaves behind (its namespace is a reference cycle)
        // must stay collectable; the next fork freezes what the master holds again.
        python::master_modules::unfreeze(py);
        self.restore_env(py);
        let cfg = match self.load_config(py) {
            Ok(c) => c,
            Err(msg) => {
                observe::error(&format!("{msg}; keeping the previous configuration"));
                if let Err(e) = crate::run::prepare_process(py, &self.cfg) {
                    observe::error(&python::exc_str(py, &e));
                }
                return self.respawn_all(py);
            }
        };
        let cfg_obj = match hooks::config_object(py, &cfg) {
            Ok(o) => o,
            Err(e) => {
                observe::exception(
                    "Reloading the configuration failed",
                    &python::format_traceback(py, &e),
                );
                return self.respawn_all(py);
            }
        };
        let log = python::logging::reload(py, &cfg, cfg_obj.bind(py), &self.objs.log);
        self.objs.replace(py, cfg_obj, log);
        let cfg = Arc::new(cfg);
        self.cfg = cfg.clone();
        self.dot2 = false;
        self.worker_class = cfg.worker_class_str();
        // The new workers serve TLS as the new settings say (gunicorn reads them per connection).
        match crate::worker::tls::from_config(&cfg) {
            Ok(tls) => self.tls = tls,
            Err(msg) => observe::error(&format!("{msg}; keeping the previous TLS configuration")),
        }
        hooks::set_attr(py, &self.objs.server, "timeout", cfg.int("timeout"));
        hooks::set_attr(py, &self.objs.server, "proc_name", self.proc_name());
        let n = usize::try_from(cfg.int("workers")).unwrap_or(0);
        self.set_num_workers(py, n);
        if observe::enabled(observe::Level::Debug) {
            crate::run::log_configuration(py, &cfg);
        }
        if let Err(e) = crate::run::prepare_process(py, &cfg) {
            observe::error(&python::exc_str(py, &e));
        }
        observe::reopen();

        if old_bind.as_slice() != cfg.list("bind") {
            for l in self.listeners.drain(..) {
                l.close(false);
            }
            match parse_binds(&cfg) {
                Ok(addrs) if !self.reuse_port() => match self.bind(py, &addrs) {
                    Ok(l) => self.listeners = l,
                    Err(msg) => {
                        observe::error(&msg);
                        return Err(Halt {
                            reason: None,
                            code: 1,
                        });
                    }
                },
                Ok(_) => {}
                Err(msg) => {
                    observe::error(&msg);
                    return Err(Halt {
                        reason: None,
                        code: 1,
                    });
                }
            }
            self.mirror_listeners(py);
            let shown: Vec<String> = self
                .listeners
                .iter()
                .map(|l| l.display(self.tls.is_some()))
                .collect();
            observe::info(&format!("Listening at: {}", shown.join(",")));
        }

        self.hook(py, "on_reload", |py, s| (s.clone_ref(py),));

        if let Some(p) = self.pidfile.take() {
            p.unlink(self.pid);
        }
        if let Some(path) = self.pidfile_path() {
            match Pidfile::create(&path, self.pid) {
                Ok(p) => self.pidfile = Some(p),
                Err(msg) => observe::error(&msg),
            }
        }
        python::set_proc_title(py, &format!("master [{}]", self.proc_name()));
        self.respawn_all(py)
    }

    /// Spawns `workers` new workers, lets `manage_workers` retire the surplus (oldest first),
    /// and waits up to `graceful_timeout` until only workers newer than the reload are left.
    fn respawn_all(&mut self, py: Python<'_>) -> Result<Option<Box<WorkerContext>>, Halt> {
        let last_age = self.worker_age;
        for _ in 0..self.cfg.int("workers").max(0) {
            if let Some(ctx) = self.spawn_worker(py)? {
                return Ok(Some(ctx));
            }
        }
        if let Some(ctx) = self.manage_workers(py)? {
            return Ok(Some(ctx));
        }
        let deadline = Instant::now()
            + Duration::from_secs(u64::try_from(self.cfg.int("graceful_timeout")).unwrap_or(0));
        while Instant::now() < deadline {
            let oldest = self.workers.values().map(|w| w.age).min();
            match oldest {
                None => break,
                Some(age) if age > last_age => break,
                Some(_) => {}
            }
            self.reap_workers(py)?;
            // gunicorn sleeps 0.1 s between reaps; signals that arrive meanwhile stay queued.
            self.wait_for_signals(py, Duration::from_millis(100));
        }
        Ok(None)
    }

    /// gunicorn's reload step 1: every `raw_env` key back to its value before rgun set it.
    fn restore_env(&self, py: Python<'_>) {
        let restore = || -> PyResult<()> {
            py.import("rgun._objects")?
                .call_method1("restore_env", (self.objs.cfg.bind(py),))?;
            Ok(())
        };
        if let Err(e) = restore() {
            observe::error(&python::exc_str(py, &e));
        }
    }

    /// Loads the configuration from the original command line again.
    fn load_config(&self, py: Python<'_>) -> Result<crate::config::Config, String> {
        match crate::config::load(py, &self.argv) {
            crate::config::Loaded::Run(cfg) => {
                let wc = hooks::value_to_py(py, cfg.get("worker_class"));
                match python::app::resolve_worker_class(py, wc.bind(py)) {
                    Ok(python::app::WorkerClass::Served(_)) => Ok(cfg),
                    Ok(python::app::WorkerClass::NotFound(msg)) => Err(msg),
                    Ok(python::app::WorkerClass::NotSupported(name)) => Err(format!(
                        "worker class '{name}' is not supported by rgun yet"
                    )),
                    Err(e) => Err(python::exc_str(py, &e)),
                }
            }
            crate::config::Loaded::Exit(code) => {
                Err(format!("Reloading the configuration failed (exit {code})"))
            }
        }
    }

    /// Mirrors the listeners into `server.LISTENERS`.
    fn mirror_listeners(&self, py: Python<'_>) {
        let shown_fds: Vec<(i32, String, i32)> = self
            .listeners
            .iter()
            .map(|l| {
                use std::os::fd::AsRawFd;
                let family = match l.family {
                    listeners::Family::Unix => 1,
                    listeners::Family::Tcp => 2,
                };
                (l.socket.as_raw_fd(), l.display(self.tls.is_some()), family)
            })
            .collect();
        if let Err(e) = self.objs.set_listeners(py, &shown_fds) {
            observe::debug(&format!("cannot mirror listeners: {e}"));
        }
    }

    fn set_num_workers(&mut self, py: Python<'_>, n: usize) {
        let old = self.num_workers;
        self.num_workers = n;
        hooks::set_attr(py, &self.objs.server, "num_workers", n);
        self.hook(py, "nworkers_changed", |_, s| (s, n, old));
    }

    /// gunicorn's `stop(graceful)`: close listeners, signal workers, wait `graceful_timeout`,
    /// then SIGKILL what is left.
    fn stop(&mut self, py: Python<'_>, graceful: bool) {
        let unlink = self.may_unlink_sockets();
        for l in self.listeners.drain(..) {
            l.close(unlink);
        }
        self.mirror_listeners(py);
        let sig = if graceful {
            Signal::SIGTERM
        } else {
            Signal::SIGQUIT
        };
        self.kill_workers(sig);
        let mut deadline = Instant::now()
            + Duration::from_secs(u64::try_from(self.cfg.int("graceful_timeout")).unwrap_or(0));
        while !self.workers.is_empty() && Instant::now() < deadline {
            let _ = self.reap_workers_quiet(py);
            if self.workers.is_empty() {
                break;
            }
            self.wait_for_signals(py, Duration::from_millis(100));
            let quick = self
                .queue
                .iter()
                .any(|s| *s == Signal::SIGINT as i32 || *s == Signal::SIGQUIT as i32);
            self.queue.clear();
            if graceful && quick {
                observe::info("Quick shutdown requested");
                self.kill_workers(Signal::SIGQUIT);
                deadline = deadline.min(Instant::now() + Duration::from_secs(2));
            }
        }
        self.kill_workers(Signal::SIGKILL);
        // Reap what the SIGKILL left, with a bound in case a worker is stuck in the kernel.
        let until = Instant::now() + Duration::from_secs(2);
        while !self.workers.is_empty() && Instant::now() < until {
            let _ = self.reap_workers_quiet(py);
            if !self.workers.is_empty() {
                self.wait_for_signals(py, Duration::from_millis(20));
            }
        }
    }

    /// gunicorn's `halt`: stop, log `Shutting down: Master`, remove the pidfile, `on_exit`.
    fn halt(&mut self, py: Python<'_>, h: Halt) -> i32 {
        if h.code < 0 {
            if let Some(p) = &self.pidfile {
                p.unlink(self.pid);
            }
            return -h.code;
        }
        if !self.workers.is_empty() || !self.listeners.is_empty() {
            self.stop(py, true);
        }
        let line = format!("Shutting down: {}", self.master_name());
        if h.code == 0 {
            observe::info(&line);
        } else {
            observe::error(&line);
        }
        if let Some(reason) = &h.reason {
            if h.code == 0 {
                observe::info(&format!("Reason: {reason}"));
            } else {
                observe::error(&format!("Reason: {reason}"));
            }
        }
        if let Some(p) = &self.pidfile {
            p.unlink(self.pid);
        }
        self.hook(py, "on_exit", |py, s| (s.clone_ref(py),));
        h.code
    }

    /// Calls a master-side hook with the `server` object; errors are logged, never fatal.
    fn hook<'py, A>(
        &self,
        py: Python<'py>,
        name: &str,
        args: impl FnOnce(Python<'py>, Py<PyAny>) -> A,
    ) where
        A: pyo3::call::PyCallArgs<'py>,
    {
        if self.cfg.object(name).is_none() {
            return;
        }
        let server = self.objs.server.clone_ref(py);
        if let Err(e) = hooks::call(py, &self.cfg, name, args(py, server)) {
            observe::exception(
                &format!("Exception in {name} hook"),
                &python::format_traceback(py, &e),
            );
        }
    }
}

/// Binds `addrs` as gunicorn's `create_sockets` (master, or a worker with `reuse_port`).
pub(crate) fn bind_listeners(
    py: Python<'_>,
    cfg: &Config,
    addrs: &[listeners::BindAddr],
) -> Result<Vec<Listener>, String> {
    let backlog = i32::try_from(cfg.int("backlog")).unwrap_or(2048);
    let umask = u32::try_from(cfg.int("umask")).unwrap_or(0);
    listeners::set_reuse_port(cfg.bool("reuse_port"));
    let bound = py.detach(|| listeners::bind_all(addrs, backlog, umask))?;
    let uid = u32::try_from(cfg.int("user")).ok();
    let gid = u32::try_from(cfg.int("group")).ok();
    for addr in addrs {
        if let listeners::BindAddr::Unix(path) = addr {
            let _ = nix::unistd::chown(
                std::path::Path::new(path),
                uid.map(nix::unistd::Uid::from_raw),
                gid.map(nix::unistd::Gid::from_raw),
            );
        }
    }
    Ok(bound)
}

/// Parses the `bind` setting; the error is gunicorn's message.
pub(crate) fn parse_binds(cfg: &Config) -> Result<Vec<listeners::BindAddr>, String> {
    cfg.list("bind")
        .iter()
        .map(|b| listeners::parse_address(b))
        .collect()
}
