//! The pidfile, as gunicorn writes it: `"<pid>\n"`, written to a temp file in the same directory
//! and renamed into place; refused when it names another live process; removed on exit only if
//! it still holds our pid.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::sys::signal::kill;
use nix::unistd::Pid;

#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
}

impl Pidfile {
    /// Writes `pid` to `path`. Errors carry gunicorn's messages.
    pub fn create(path: &str, pid: u32) -> Result<Pidfile, String> {
        let path = PathBuf::from(path);
        if let Some(old) = read_pid(&path)
            && old != pid
            && alive(old)
        {
            return Err(format!(
                "Already running on PID {old} (or pid file '{}' is stale)",
                path.display()
            ));
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(format!(
                "{} doesn't exist. Can't create pidfile.",
                dir.display()
            ));
        }
        let tmp = dir.join(format!(
            ".{}.tmp{}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            pid
        ));
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(format!("{pid}\n").as_bytes())?;
            fs::rename(&tmp, &path)?;
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
        };
        write().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Pidfile { path })
    }

    /// Moves to `path` (a promoted USR2 child takes the configured name): the old file is
    /// removed and the new one written, as gunicorn's `Pidfile.rename`.
    pub fn rename(&mut self, path: &str, pid: u32) -> Result<(), String> {
        self.unlink(pid);
        *self = Pidfile::create(path, pid)?;
        Ok(())
    }

    /// Removes the file if it still holds `pid`.
    pub fn unlink(&self, pid: u32) {
        if read_pid(&self.path) == Some(pid) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    match kill(Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_removes_own_pid() {
        let dir = std::env::temp_dir().join(format!("rgun-pidfile-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.pid");
        let me = std::process::id();
        let pf = Pidfile::create(p.to_str().unwrap(), me).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), format!("{me}\n"));
        pf.unlink(me);
        assert!(!p.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_a_live_foreign_pid() {
        let dir = std::env::temp_dir().join(format!("rgun-pidfile2-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.pid");
        fs::write(&p, "1\n").unwrap();
        let err = Pidfile::create(p.to_str().unwrap(), std::process::id()).unwrap_err();
        assert!(err.starts_with("Already running on PID 1"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
