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
    /// Creates the file in `dir` (gunicorn's `worker_tmp_dir`, else the system temp dir) under
    /// `umask`, hands it to `owner` (uid, gid) when the worker will switch to it, and unlinks it
    /// at once.
    pub fn create(
        dir: Option<&str>,
        umask: u32,
        owner: Option<(u32, u32)>,
    ) -> std::io::Result<Heartbeat> {
        let dir: PathBuf = match dir {
            Some(d) if !Path::new(d).is_dir() => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{d} doesn't exist. Can't create workertmp."),
                ));
            }
            Some(d) => PathBuf::from(d),
            None => std::env::temp_dir(),
        };
        let template = dir.join("wgunicorn-XXXXXX");
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
        let made = nix::unistd::mkstemp(&template).map_err(std::io::Error::from);
        nix::sys::stat::umask(old);
        let (fd, path) = made?;
        if let Some((uid, gid)) = owner {
            let _ = nix::unistd::chown(
                Path::new(&path),
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            );
        }
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
        let hb = Heartbeat::create(None, 0o22, None).unwrap();
        hb.notify();
        let s = hb.silent_for();
        assert!((0.0..1.0).contains(&s), "{s}");
    }

    #[test]
    fn a_missing_directory_is_gunicorns_error() {
        let e = Heartbeat::create(Some("/nonexistent-rgun-dir"), 0, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/nonexistent-rgun-dir doesn't exist. Can't create workertmp."
        );
    }
}
