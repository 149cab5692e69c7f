//! Signal delivery through CPython's own machinery: `signal.set_wakeup_fd` writes each caught
//! signal's number to a non-blocking pipe that rgun's loops watch, and Python-level handlers
//! (run by `PyErr_CheckSignals` on the main thread) do the rest.
//!
//! Why not raw `sigaction`: a handler must be able to raise `SystemExit` inside running app code
//! (worker timeout, quick shutdown), exactly as in gunicorn, and CPython only supports that for
//! its own handlers.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::OFlag;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The read end of the wakeup pipe; the write end is owned by CPython's signal module.
#[derive(Debug)]
pub struct WakeupPipe {
    pub read: OwnedFd,
    _write: OwnedFd,
}

impl WakeupPipe {
    /// Creates the pipe and makes it CPython's wakeup fd. Main thread only.
    pub fn install(py: Python<'_>) -> PyResult<WakeupPipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("warn_on_full_buffer", false)?;
        py.import("signal")?
            .call_method("set_wakeup_fd", (write.as_raw_fd(),), Some(&kwargs))?;
        Ok(WakeupPipe {
            read,
            _write: write,
        })
    }

    /// Reads the signal numbers written since the last drain.
    pub fn drain(&self) -> Vec<i32> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok(n) = nix::unistd::read(&self.read, &mut buf) {
            if n == 0 {
                break;
            }
            out.extend(buf[..n].iter().map(|b| i32::from(*b)));
        }
        out
    }
}

/// Sets a Python handler for `sig` (`signal.signal(sig, handler)`).
pub fn set_handler(py: Python<'_>, sig: i32, handler: &Bound<'_, PyAny>) -> PyResult<()> {
    py.import("signal")?
        .call_method1("signal", (sig, handler))?;
    Ok(())
}

/// Restores the default action for `sig`.
pub fn set_default(py: Python<'_>, sig: i32) -> PyResult<()> {
    let signal = py.import("signal")?;
    signal.call_method1("signal", (sig, signal.getattr("SIG_DFL")?))?;
    Ok(())
}

/// `signal.siginterrupt(sig, flag)`: whether the signal interrupts blocking system calls.
pub fn siginterrupt(py: Python<'_>, sig: i32, flag: bool) -> PyResult<()> {
    py.import("signal")?
        .call_method1("siginterrupt", (sig, flag))?;
    Ok(())
}

/// A Python handler that does nothing: the wakeup byte is the whole message.
#[pyfunction]
pub fn enqueue_only(_signum: i32, _frame: Py<PyAny>) {}

/// A Python callable for [`enqueue_only`].
pub fn enqueue_only_handler(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    Ok(wrap_pyfunction!(enqueue_only, py)?.into_any())
}

/// Lower-case signal name as gunicorn logs it (`term`, `chld`).
pub fn name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().trim_start_matches("SIG").to_ascii_lowercase())
        .unwrap_or_else(|_| sig.to_string())
}
