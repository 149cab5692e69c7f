//! Binary upgrade (SIGUSR2) and inherited listeners, as gunicorn's arbiter: the old master forks
//! a child that runs `pre_exec` and re-executes the original command line with the listening
//! descriptors (`GUNICORN_FD`, or `LISTEN_FDS` when they came from systemd); the new master
//! serves on them as `Master.2` with `<pidfile>.2` until its parent is gone, then promotes
//! itself.

use std::os::fd::{AsRawFd, RawFd};

use pyo3::prelude::*;

use super::{Arbiter, Halt};
use crate::observe;
use crate::python::{self, hooks};
use crate::unix::{listeners, systemd};
use crate::worker::WorkerContext;

/// Where a master's listeners come from when it binds nothing itself.
pub(super) struct Inherited {
    pub fds: Vec<RawFd>,
    pub systemd: bool,
}

impl Arbiter {
    /// `Master`, or `Master.2` while this master is a USR2 child.
    pub(super) fn master_name(&self) -> &'static str {
        if self.master_pid != 0 {
            "Master.2"
        } else {
            "Master"
        }
    }

    /// At start: a USR2 child (`GUNICORN_PID` set) takes its parent's pid.
    pub(super) fn read_upgrade_env(&mut self) {
        if let Some(pid) = std::env::var("GUNICORN_PID")
            .ok()
            .and_then(|v| v.trim().parse::<i32>().ok())
        {
            self.master_pid = pid;
            self.dot2 = true;
        }
    }

    /// The descriptors to serve on instead of binding: systemd's (popping `LISTEN_PID` and
    /// `LISTEN_FDS`), else a USR2 child's `GUNICORN_FD` (popped), else none.
    pub(super) fn inherited_fds(&self, py: Python<'_>) -> Inherited {
        let var = |k: &str| std::env::var(k).ok();
        if let Some(fds) = systemd::listen_fds(
            var("LISTEN_PID").as_deref(),
            var("LISTEN_FDS").as_deref(),
            self.pid,
        ) {
            pop_env(py, "LISTEN_PID");
            pop_env(py, "LISTEN_FDS");
            return Inherited { fds, systemd: true };
        }
        if self.master_pid != 0
            && let Some(list) = pop_env(py, "GUNICORN_FD")
        {
            let fds = list
                .split(',')
                .filter_map(|f| f.trim().parse::<RawFd>().ok())
                .collect();
            return Inherited {
                fds,
                systemd: false,
            };
        }
        Inherited {
            fds: Vec::new(),
            systemd: false,
        }
    }

    /// SIGUSR2: fork a child that runs `pre_exec` and re-executes rgun on these listeners.
    pub(super) fn reexec(&mut self, py: Python<'_>) -> Result<Option<Box<WorkerContext>>, Halt> {
        if self.reexec_pid != 0 {
            observe::warning("USR2 signal ignored. Child exists.");
            return Ok(None);
        }
        if self.master_pid != 0 {
            observe::warning("USR2 signal ignored. Parent exists.");
            return Ok(None);
        }
        python::flush_std_streams(py);
        let pid = match python::fork(py) {
            Ok(pid) => pid,
            Err(e) => return Err(self.fatal(py, &e)),
        };
        if pid != 0 {
            self.reexec_pid = pid;
            hooks::set_attr(py, &self.objs.server, "reexec_pid", pid);
            return Ok(None);
        }
        // The child: it never returns from here.
        python::unblock_worker_signals();
        self.hook(py, "pre_exec", |py, s| (s.clone_ref(py),));
        let fds: Vec<RawFd> = self
            .listeners
            .iter()
            .map(|l| l.socket.as_raw_fd())
            .collect();
        let exec = || -> PyResult<()> {
            py.import("rgun._process")?.call_method1(
                "reexec",
                (
                    self.objs.server.bind(py),
                    self.pid,
                    fds.clone(),
                    self.systemd,
                ),
            )?;
            Ok(())
        };
        let err = exec().err();
        if let Some(e) = err {
            observe::exception(
                "Re-executing the master failed",
                &python::format_traceback(py, &e),
            );
        }
        python::flush_std_streams(py);
        let _ = py
            .import("os")
            .and_then(|os| os.call_method1("_exit", (1,)));
        unreachable!("os._exit returned");
    }

    /// Each loop pass of a USR2 child: once the old master is gone (our parent changed), take
    /// the configured names and pidfile.
    pub(super) fn maybe_promote_master(&mut self, py: Python<'_>) {
        if self.master_pid == 0 || nix::unistd::getppid().as_raw() == self.master_pid {
            return;
        }
        observe::info("Master has been promoted.");
        self.master_pid = 0;
        self.dot2 = false;
        hooks::set_attr(py, &self.objs.server, "master_pid", 0);
        hooks::set_attr(py, &self.objs.server, "master_name", "Master");
        hooks::set_attr(py, &self.objs.server, "proc_name", self.proc_name());
        pop_env(py, "GUNICORN_PID");
        if let (Some(p), Some(path)) = (self.pidfile.as_mut(), self.cfg.str("pidfile"))
            && let Err(msg) = p.rename(path, self.pid)
        {
            observe::error(&msg);
        }
        python::set_proc_title(py, &format!("master [{}]", self.proc_name()));
    }

    /// Whether `stop` may unlink unix socket files: not while in a USR2 pair, not for systemd's
    /// sockets, not with `reuse_port` (gunicorn's rule).
    pub(super) fn may_unlink_sockets(&self) -> bool {
        self.reexec_pid == 0 && self.master_pid == 0 && !self.systemd && !self.reuse_port()
    }

    /// Listeners for inherited descriptors; unix socket files stay ours to unlink unless they
    /// came from systemd.
    pub(super) fn adopt(&self, inherited: &Inherited) -> Result<Vec<listeners::Listener>, String> {
        let backlog = i32::try_from(self.cfg.int("backlog")).unwrap_or(2048);
        listeners::from_fds(&inherited.fds, backlog, !inherited.systemd)
    }
}

/// `os.environ.pop(name, None)` (Python's view and the C environment stay in step).
fn pop_env(py: Python<'_>, name: &str) -> Option<String> {
    let environ = py.import("os").ok()?.getattr("environ").ok()?;
    environ
        .call_method1("pop", (name, py.None()))
        .ok()?
        .extract::<Option<String>>()
        .ok()
        .flatten()
}
