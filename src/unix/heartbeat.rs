//! The worker liveness channel, as gunicorn's `WorkerTmp`: an unlinked temp file created by the
//! master before the fork. The worker stamps the file's mtime with the monotonic clock; the master
//! reads it back with `fstat` and compares.
//!
//! Invariant: only the mtime carries information; the file never holds data.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::stat::{UtimensatFlags, fstat, futimens};
use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_gettime};

/// One worker's heartbeat file descriptor.
#[derive(Debug)]
pub struct Heartbeat {
    fd: OwnedFd,
}

fn monotonic() -> TimeSpec {
    clock_gettime(ClockId::CLOCK_MONOTONIC).unwrap_or_else(|_| TimeSpec::new(0, 0))
}

impl Heartbeat {
    /// Creates the file in `dir` (gunicorn's `worker_tmp_dir`, else the system temp dir) and
    /// unlinks it at once.
    pub fn create(dir: Option<&str>) -> std::io::Result<Heartbeat> {
        let dir: PathBuf = match dir {
            Some(d) => PathBuf::from(d),
            None => std::env::temp_dir(),
        };
        let template = dir.join("wgunicorn-XXXXXX");
        let (fd, path) = nix::unistd::mkstemp(&template).map_err(std::io::Error::from)?;
        let _ = nix::unistd::unlink(Path::new(&path));
        let hb = Heartbeat { fd };
        hb.notify();
        Ok(hb)
    }

    /// Stamps "alive now" (the worker side).
    pub fn notify(&self) {
        let now = monotonic();
        let _ = futimens(self.fd.as_fd(), &now, &now);
        let _ = UtimensatFlags::FollowSymlink;
    }

    /// Seconds since the last stamp (the master side).
    pub fn silent_for(&self) -> f64 {
        let Ok(st) = fstat(self.fd.as_fd()) else {
            return 0.0;
        };
        let now = monotonic();
        let last = st.st_mtime as f64 + st.st_mtime_nsec as f64 / 1e9;
        let now = now.tv_sec() as f64 + now.tv_nsec() as f64 / 1e9;
        now - last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_heartbeat_is_not_silent() {
        let hb = Heartbeat::create(None).unwrap();
        hb.notify();
        let s = hb.silent_for();
        assert!((0.0..1.0).contains(&s), "{s}");
    }
}
