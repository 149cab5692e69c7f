//! The master's worker table: spawning (pre_fork, fork, post-fork hand-off), reaping with
//! gunicorn's exit-status rules, timeouts (SIGABRT, then SIGKILL), and keeping the count.

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use pyo3::prelude::*;

use super::{Arbiter, Halt};
use crate::observe;
use crate::python::{self, hooks};
use crate::unix::conn_share;
use crate::unix::heartbeat::Heartbeat;
use crate::unix::listeners::Listener;
use crate::worker::WorkerContext;

/// What the master keeps about one live worker.
#[derive(Debug)]
pub(super) struct WorkerRecord {
    pub age: u64,
    pub heartbeat: Heartbeat,
    /// The `worker` object hooks receive.
    pub obj: Py<PyAny>,
    /// When SIGABRT was sent for a timeout; a pass at least a second later sends SIGKILL.
    pub aborted: Option<std::time::Instant>,
    /// Its place in the shared count of open connections (`unix::conn_share`).
    pub share_slot: Option<usize>,
}

/// Sends `sig` to `pid`, ignoring a worker that is already gone.
pub(super) fn signal_pid(pid: i32, sig: Signal) {
    let _ = kill(Pid::from_raw(pid), sig);
}

impl Arbiter {
    /// Spawns or retires workers until the count is `num_workers`. Returns the context when
    /// this process is a new worker.
    pub(super) fn manage_workers(
        &mut self,
        py: Python<'_>,
    ) -> Result<Option<Box<WorkerContext>>, Halt> {
        while self.workers.len() < self.num_workers {
            if let Some(ctx) = self.spawn_worker(py)? {
                return Ok(Some(ctx));
            }
        }
        // Too many: SIGTERM the oldest first.
        let mut by_age: Vec<(u64, i32)> =
            self.workers.iter().map(|(pid, w)| (w.age, *pid)).collect();
        by_age.sort_unstable();
        let surplus = self.workers.len().saturating_sub(self.num_workers);
        for (_, pid) in by_age.into_iter().take(surplus) {
            signal_pid(pid, Signal::SIGTERM);
        }
        // gunicorn counts the workers it keeps (the ones just sent SIGTERM are not) and logs
        // the count, with its StatsD gauge, whenever it differs from the last one logged.
        let active = self.workers.len().min(self.num_workers);
        if self.last_logged_workers != Some(active) {
            self.last_logged_workers = Some(active);
            observe::statsd::gauge("gunicorn.workers", active);
            observe::debug(&format!("{active} workers"));
        }
        if self.cfg.bool("enable_backlog_metric") {
            self.log_backlog();
        }
        Ok(None)
    }

    /// `enable_backlog_metric`: the connections waiting in the listeners' accept queues, summed
    /// as gunicorn does (a unix listener counts -1, so with one nothing is reported).
    fn log_backlog(&self) {
        let backlog: i64 = self.listeners.iter().map(Listener::backlog).sum();
        if backlog >= 0 {
            observe::statsd::histogram("gunicorn.backlog", backlog);
            observe::debug(&format!("socket backlog: {backlog}"));
        }
    }

    /// Forks one worker. In the child this returns its context; in the master, `None`.
    pub(super) fn spawn_worker(
        &mut self,
        py: Python<'_>,
    ) -> Result<Option<Box<WorkerContext>>, Halt> {
        self.worker_age += 1;
        let age = self.worker_age;
        let heartbeat = Heartbeat::create(
            self.cfg.str("worker_tmp_dir"),
            u32::try_from(self.cfg.int("umask")).unwrap_or(0),
            self.worker_owner(),
        )
        .map_err(|e| {
            observe::error(&format!("Can't create the worker heartbeat file: {e}"));
            Halt {
                reason: None,
                code: 1,
            }
        })?;
        let max_requests = self.draw_max_requests();
        let worker = self
            .objs
            .new_worker(py, age, self.pid, self.cfg.int("timeout"), max_requests)
            .map_err(|e| self.fatal(py, &e))?;
        hooks::set_attr(py, &self.objs.server, "worker_age", age);
        let w = worker.clone_ref(py);
        self.hook(py, "pre_fork", |_, s| (s, w));
        let share_slot =
            conn_share::slot_for_new_worker(self.workers.values().filter_map(|w| w.share_slot));
        python::flush_std_streams(py);
        let pid = match python::fork(py) {
            Ok(pid) => pid,
            Err(e) => return Err(self.fatal(py, &e)),
        };
        if pid != 0 {
            self.workers.insert(
                pid,
                WorkerRecord {
                    age,
                    heartbeat,
                    obj: worker.clone_ref(py),
                    aborted: None,
                    share_slot,
                },
            );
            conn_share::set_live(self.workers.len());
            hooks::set_attr(py, &worker, "pid", pid);
            if let Ok(table) = self.objs.server.bind(py).getattr("WORKERS") {
                let _ = table.set_item(pid, &worker);
            }
            return Ok(None);
        }
        hooks::set_attr(py, &worker, "pid", std::process::id());
        python::set_proc_title(py, &format!("worker [{}]", self.proc_name()));
        // The child: drop the siblings' heartbeat files and the master's listeners' ownership.
        self.workers.clear();
        conn_share::adopt(share_slot);
        let listeners = std::mem::take(&mut self.listeners);
        Ok(Some(Box::new(WorkerContext {
            age,
            ppid: self.pid,
            listeners,
            cfg: self.cfg.clone(),
            heartbeat,
            app: self.app.as_ref().map(|a| a.clone_ref(py)),
            max_requests,
            worker_class: self.worker_class.clone(),
            server_obj: self.objs.server.clone_ref(py),
            worker_obj: worker,
            tls: self.tls.clone(),
        })))
    }

    /// The (uid, gid) workers switch to, when it differs from the master's effective ids
    /// (gunicorn then chowns the heartbeat file, so the worker can still stamp it).
    pub(super) fn worker_owner(&self) -> Option<(u32, u32)> {
        let uid = u32::try_from(self.cfg.int("user")).ok()?;
        let gid = u32::try_from(self.cfg.int("group")).ok()?;
        (uid != nix::unistd::geteuid().as_raw() || gid != nix::unistd::getegid().as_raw())
            .then_some((uid, gid))
    }

    fn draw_max_requests(&self) -> u64 {
        let base = self.cfg.int("max_requests");
        if base <= 0 {
            return u64::MAX;
        }
        let jitter = self.cfg.int("max_requests_jitter").max(0) as u64;
        let extra = if jitter > 0 {
            random_u64() % (jitter + 1)
        } else {
            0
        };
        base as u64 + extra
    }

    /// Reaps exited workers with gunicorn's log lines; exit codes 3 and 4 halt the server.
    pub(super) fn reap_workers(&mut self, py: Python<'_>) -> Result<(), Halt> {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return Ok(()),
                Ok(s) => s,
            };
            let (pid, code) = match status {
                WaitStatus::Exited(pid, code) => (pid.as_raw(), Some(code)),
                WaitStatus::Signaled(pid, sig, _) => {
                    let pid = pid.as_raw();
                    if self.workers.contains_key(&pid) {
                        let msg = format!("Worker (pid:{pid}) was sent {}!", sig.as_str());
                        match sig {
                            Signal::SIGKILL => {
                                observe::error(&format!("{msg} Perhaps out of memory?"))
                            }
                            Signal::SIGTERM => observe::info(&msg),
                            _ => observe::warning(&msg),
                        }
                    }
                    (pid, None)
                }
                _ => continue,
            };
            if pid == self.reexec_pid {
                self.reexec_pid = 0;
                hooks::set_attr(py, &self.objs.server, "reexec_pid", 0);
                continue;
            }
            let removed = self.workers.remove(&pid);
            if removed.is_some()
                && let Ok(table) = self.objs.server.bind(py).getattr("WORKERS")
            {
                let _ = table.del_item(pid);
            }
            let Some(record) = removed else {
                observe::debug(&format!(
                    "Reaped unknown child process (pid:{pid}, status:{status:?})"
                ));
                continue;
            };
            if let Some(slot) = record.share_slot {
                conn_share::release(slot);
            }
            conn_share::set_live(self.workers.len());
            if let Some(c) = code.filter(|c| *c != 0) {
                observe::error(&format!("Worker (pid:{pid}) exited with code {c}."));
            }
            match code {
                Some(3) => {
                    return Err(Halt {
                        reason: Some("Worker failed to boot.".into()),
                        code: 3,
                    });
                }
                Some(4) => {
                    return Err(Halt {
                        reason: Some("App failed to load.".into()),
                        code: 4,
                    });
                }
                _ => {}
            }
            drop(record.heartbeat);
            let worker = record.obj;
            self.hook(py, "child_exit", |_, s| (s, worker));
        }
    }

    /// Reaping during shutdown: same bookkeeping, but exit codes 3/4 no longer halt anything.
    pub(super) fn reap_workers_quiet(&mut self, py: Python<'_>) -> Result<(), ()> {
        while self.reap_workers(py).is_err() {}
        Ok(())
    }

    /// Aborts workers silent for longer than `timeout`: SIGABRT first, SIGKILL on the next pass.
    pub(super) fn murder_workers(&mut self) {
        let timeout = self.cfg.int("timeout");
        if timeout <= 0 {
            return;
        }
        for (pid, w) in self.workers.iter_mut() {
            if w.heartbeat.silent_for() <= timeout as f64 {
                continue;
            }
            match w.aborted {
                None => {
                    observe::critical(&format!("WORKER TIMEOUT (pid:{pid})"));
                    w.aborted = Some(std::time::Instant::now());
                    signal_pid(*pid, Signal::SIGABRT);
                }
                // gunicorn's next loop pass comes about a second later.
                Some(at) if at.elapsed() >= std::time::Duration::from_secs(1) => {
                    signal_pid(*pid, Signal::SIGKILL)
                }
                Some(_) => {}
            }
        }
    }

    pub(super) fn kill_workers(&self, sig: Signal) {
        for pid in self.workers.keys() {
            signal_pid(*pid, sig);
        }
    }
}

/// A random number for max_requests jitter, from the OS (no RNG state survives a fork).
fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    u64::from_ne_bytes(buf)
}
