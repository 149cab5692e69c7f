//! systemd integration as gunicorn has it: socket activation (`LISTEN_PID`/`LISTEN_FDS`) and one
//! `sd_notify` datagram once the listeners are bound.

use std::os::fd::RawFd;

/// The first inherited descriptor under socket activation (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// The descriptors systemd passed when `LISTEN_PID` names this process: `LISTEN_FDS` of them
/// from fd 3. `None` otherwise (unset, another pid, or not numbers), as gunicorn's
/// `systemd.listen_fds` returning 0.
pub fn listen_fds(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    me: u32,
) -> Option<Vec<RawFd>> {
    let pid: u32 = listen_pid?.trim().parse().ok()?;
    if pid != me {
        return None;
    }
    let n: RawFd = listen_fds.unwrap_or("0").trim().parse().ok()?;
    if n <= 0 {
        return None;
    }
    Some((LISTEN_FDS_START..LISTEN_FDS_START + n).collect())
}

/// Sends `state` to `NOTIFY_SOCKET` (a leading `@` names an abstract socket). Errors are
/// returned for a debug line, as gunicorn logs them; no socket configured is `Ok`.
pub fn notify(addr: Option<&str>, state: &str) -> std::io::Result<()> {
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(addr) = addr.filter(|a| !a.is_empty()) else {
        return Ok(());
    };
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = addr.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        sock.connect_addr(&SocketAddr::from_abstract_name(name.as_bytes())?)?;
    } else {
        sock.connect(addr)?;
    }
    sock.send(state.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_fds_only_for_this_pid() {
        assert_eq!(listen_fds(Some("42"), Some("2"), 42), Some(vec![3, 4]));
        assert_eq!(listen_fds(Some("41"), Some("2"), 42), None);
        assert_eq!(listen_fds(None, Some("2"), 42), None);
        assert_eq!(listen_fds(Some("42"), None, 42), None);
        assert_eq!(listen_fds(Some("x"), Some("2"), 42), None);
    }

    #[test]
    fn notify_sends_one_datagram() {
        let dir = std::env::temp_dir().join(format!("rgun-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("n.sock");
        let rx = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        notify(path.to_str(), "READY=1\nSTATUS=x").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=x");
        assert!(notify(None, "READY=1").is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
