//! Listening sockets: gunicorn's `bind` address grammar, binding with its socket options and
//! retry rule, and the names gunicorn prints for them (`http://127.0.0.1:8000`, `unix:/path`).
//!
//! Invariant: every listener is bound and listening before the first worker is forked; workers
//! only ever accept on these file descriptors.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::observe;

/// One entry of the `bind` setting, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindAddr {
    Tcp { host: String, port: u16 },
    Unix(String),
    Fd(RawFd),
}

impl BindAddr {
    /// Python's `str()` of gunicorn's parsed address, used in its bind error messages.
    pub fn py_str(&self) -> String {
        match self {
            BindAddr::Tcp { host, port } => format!("('{host}', {port})"),
            BindAddr::Unix(p) => p.clone(),
            BindAddr::Fd(fd) => fd.to_string(),
        }
    }
}

/// Parses one `bind` entry as gunicorn's `util.parse_address` does.
pub fn parse_address(s: &str) -> Result<BindAddr, String> {
    let s = s.trim();
    if let Some(path) = s
        .strip_prefix("unix://")
        .or_else(|| s.strip_prefix("unix:"))
    {
        return Ok(BindAddr::Unix(path.to_string()));
    }
    if let Some(n) = s.strip_prefix("fd://") {
        return n
            .parse()
            .map(BindAddr::Fd)
            .map_err(|_| format!("invalid literal for int() with base 10: '{n}'"));
    }
    let s = s.strip_prefix("tcp://").unwrap_or(s).to_ascii_lowercase();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| format!("Invalid IPv6 address: {s}"))?;
        let host = rest[..end].to_string();
        let port = rest[end + 1..].strip_prefix(':').unwrap_or("");
        (host, port.to_string())
    } else if s.matches(':').count() == 1 {
        let (h, p) = s.split_once(':').unwrap_or((&s, ""));
        (h.to_string(), p.to_string())
    } else if s.contains(':') {
        // A bare IPv6 address without brackets: no port.
        (s.clone(), String::new())
    } else {
        (s.clone(), String::new())
    };
    let host = if host.is_empty() {
        "0.0.0.0".to_string()
    } else {
        host
    };
    let port = if port.is_empty() {
        8000
    } else {
        port.parse::<u16>()
            .map_err(|_| format!("'{port}' is not a valid port number."))?
    };
    Ok(BindAddr::Tcp { host, port })
}

/// What kind of socket a listener is (decides `SERVER_NAME` and `REMOTE_ADDR` rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Tcp,
    Unix,
}

/// A bound, listening socket.
#[derive(Debug)]
pub struct Listener {
    pub socket: Socket,
    pub family: Family,
    /// The path of a unix socket, unlinked on shutdown.
    pub unix_path: Option<PathBuf>,
    /// Whether this master bound it (and so may unlink it).
    pub owned: bool,
}

impl Listener {
    /// gunicorn's `str(listener)`: `http://HOST:PORT` (`https://` with TLS), `http://[V6]:PORT`
    /// (always `http`, a gunicorn quirk), `unix:PATH`.
    pub fn display(&self, tls: bool) -> String {
        match self.family {
            Family::Unix => format!(
                "unix:{}",
                self.unix_path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
            Family::Tcp => match self.socket.local_addr().ok().and_then(|a| a.as_socket()) {
                Some(SocketAddr::V4(a)) => format!(
                    "{}://{}:{}",
                    if tls { "https" } else { "http" },
                    a.ip(),
                    a.port()
                ),
                Some(SocketAddr::V6(a)) => format!("http://[{}]:{}", a.ip(), a.port()),
                None => format!("<socket {}>", self.socket.as_raw_fd()),
            },
        }
    }

    /// `(SERVER_NAME, SERVER_PORT)` from the bound address, for TCP listeners.
    pub fn server_name_port(&self) -> Option<(String, String)> {
        match self.socket.local_addr().ok()?.as_socket()? {
            SocketAddr::V4(a) => Some((a.ip().to_string(), a.port().to_string())),
            SocketAddr::V6(a) => Some((a.ip().to_string(), a.port().to_string())),
        }
    }

    /// Closes the socket, unlinking a unix socket file this master created.
    pub fn close(self, unlink: bool) {
        if unlink
            && self.owned
            && let Some(p) = &self.unix_path
        {
            let _ = std::fs::remove_file(p);
        }
    }

    /// gunicorn's `get_backlog()`: the accept queue length of a TCP listener, -1 for a unix one.
    pub fn backlog(&self) -> i64 {
        match self.family {
            Family::Tcp => super::tcp_sockopt::unacked(self.socket.as_fd()),
            Family::Unix => -1,
        }
    }

    /// Duplicates the descriptor (workers take their own copies).
    pub fn try_clone(&self) -> std::io::Result<Listener> {
        Ok(Listener {
            socket: self.socket.try_clone()?,
            family: self.family,
            unix_path: self.unix_path.clone(),
            owned: false,
        })
    }
}

/// `reuse_port`: whether new sockets get SO_REUSEPORT (set before binding).
static REUSE_PORT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets whether sockets bound from now on get SO_REUSEPORT (gunicorn's `reuse_port`).
pub fn set_reuse_port(on: bool) {
    REUSE_PORT.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn reuse_port() -> bool {
    REUSE_PORT.load(std::sync::atomic::Ordering::Relaxed)
}

fn bind_one(addr: &BindAddr, backlog: i32, umask: u32) -> std::io::Result<Listener> {
    match addr {
        BindAddr::Tcp { host, port } => {
            let sa: SocketAddr = match host.parse::<IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, *port),
                Err(_) => (host.as_str(), *port)
                    .to_socket_addrs()?
                    .find(SocketAddr::is_ipv4)
                    .ok_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no address")
                    })?,
            };
            let socket = Socket::new(Domain::for_address(sa), Type::STREAM, None)?;
            socket.set_reuse_address(true)?;
            if reuse_port() {
                socket.set_reuse_port(true)?;
            }
            if sa.is_ipv6() {
                let _ = socket.set_only_v6(true);
            }
            socket.set_nodelay(true)?;
            socket.bind(&sa.into())?;
            socket.listen(backlog)?;
            // An optimisation only: a kernel without it accepts connections as they come.
            let _ = super::tcp_sockopt::defer_accept(socket.as_fd());
            Ok(Listener {
                socket,
                family: Family::Tcp,
                unix_path: None,
                owned: true,
            })
        }
        BindAddr::Unix(path) => {
            use std::os::unix::fs::FileTypeExt;
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if meta.file_type().is_socket() {
                    std::fs::remove_file(path)?;
                } else {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        format!("{path:?} exists and is not a socket"),
                    ));
                }
            }
            let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
            if reuse_port() {
                let _ = socket.set_reuse_port(true);
            }
            let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
            let bound = socket.bind(&SockAddr::unix(path)?);
            nix::sys::stat::umask(old);
            bound?;
            socket.listen(backlog)?;
            Ok(Listener {
                socket,
                family: Family::Unix,
                unix_path: Some(PathBuf::from(path)),
                owned: true,
            })
        }
        BindAddr::Fd(fd) => {
            let socket = fd_socket(*fd)?;
            let family = if socket.local_addr()?.is_unix() {
                Family::Unix
            } else {
                Family::Tcp
            };
            let unix_path = socket.local_addr()?.as_pathname().map(PathBuf::from);
            Ok(Listener {
                socket,
                family,
                unix_path,
                owned: false,
            })
        }
    }
}

#[allow(unsafe_code)]
fn fd_socket(fd: RawFd) -> std::io::Result<Socket> {
    if fd < 0 {
        return Err(std::io::Error::from_raw_os_error(
            nix::errno::Errno::EBADF as i32,
        ));
    }
    // SAFETY: `fd://N` declares descriptor N an inherited listening socket that this process
    // owns from now on (gunicorn makes the same assumption). A number that is not an open socket
    // fails the `local_addr` check below.
    let socket = unsafe { Socket::from_raw_fd(fd) };
    socket.local_addr()?;
    Ok(socket)
}

/// Listeners over descriptors this process inherited (systemd socket activation, or the
/// `GUNICORN_FD` list a USR2 re-exec passes on). A socket not listening yet gets `listen()`;
/// one already listening is left as it is (gunicorn 27 checks `SO_ACCEPTCONN`). `owned`: this
/// master may unlink a unix socket file when it stops (not for systemd's sockets).
pub fn from_fds(fds: &[RawFd], backlog: i32, owned: bool) -> Result<Vec<Listener>, String> {
    let mut out = Vec::new();
    for &fd in fds {
        let mut l = bind_one(&BindAddr::Fd(fd), backlog, 0)
            .map_err(|e| format!("inherited descriptor {fd}: {}", py_oserror(&e)))?;
        let listening =
            nix::sys::socket::getsockopt(&l.socket, nix::sys::socket::sockopt::AcceptConn)
                .unwrap_or(false);
        if !listening {
            l.socket
                .listen(backlog)
                .map_err(|e| format!("inherited descriptor {fd}: {}", py_oserror(&e)))?;
        }
        l.owned = owned;
        out.push(l);
    }
    Ok(out)
}

/// Binds every address, retrying like gunicorn (5 tries, 1 s apart) and logging its lines.
pub fn bind_all(addrs: &[BindAddr], backlog: i32, umask: u32) -> Result<Vec<Listener>, String> {
    let mut out = Vec::new();
    for addr in addrs {
        let mut last_err = None;
        for attempt in 0..5 {
            match bind_one(addr, backlog, umask) {
                Ok(l) => {
                    last_err = None;
                    out.push(l);
                    break;
                }
                Err(e) => {
                    match e.raw_os_error() {
                        Some(code) if code == nix::errno::Errno::EADDRINUSE as i32 => {
                            observe::error(&format!("Connection in use: {}", addr.py_str()));
                        }
                        Some(code) if code == nix::errno::Errno::EADDRNOTAVAIL as i32 => {
                            observe::error(&format!("Invalid address: {}", addr.py_str()));
                        }
                        _ => {}
                    }
                    observe::error(&format!(
                        "connection to {} failed: {}",
                        addr.py_str(),
                        py_oserror(&e)
                    ));
                    last_err = Some(e);
                    if attempt < 4 {
                        observe::debug("Retrying in 1 second.");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        }
        if last_err.is_some() {
            return Err(format!("Can't connect to {}", addr.py_str()));
        }
    }
    Ok(out)
}

/// Python's `str(OSError)`: `[Errno 98] Address already in use`, or for a failed name lookup
/// `socket.gaierror`'s `[Errno -2] Name or service not known`.
fn py_oserror(e: &std::io::Error) -> String {
    const GAI: [(&str, i32); 4] = [
        ("Name or service not known", -2),
        ("Temporary failure in name resolution", -3),
        ("Non-recoverable failure in name resolution", -4),
        ("Address family for hostname not supported", -9),
    ];
    let text = e.to_string();
    if let Some(msg) = text.strip_prefix("failed to lookup address information: ") {
        let code = GAI.iter().find(|(m, _)| *m == msg).map_or(-2, |(_, c)| *c);
        return format!("[Errno {code}] {msg}");
    }
    match e.raw_os_error() {
        Some(code) => {
            let msg = nix::errno::Errno::from_raw(code).desc();
            format!("[Errno {code}] {msg}")
        }
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gunicorn_bind_forms() {
        let tcp = |h: &str, p| BindAddr::Tcp {
            host: h.into(),
            port: p,
        };
        assert_eq!(
            parse_address("127.0.0.1:8000").unwrap(),
            tcp("127.0.0.1", 8000)
        );
        assert_eq!(parse_address(":9000").unwrap(), tcp("0.0.0.0", 9000));
        assert_eq!(parse_address("").unwrap(), tcp("0.0.0.0", 8000));
        assert_eq!(parse_address("LocalHost").unwrap(), tcp("localhost", 8000));
        assert_eq!(parse_address("[::1]:81").unwrap(), tcp("::1", 81));
        assert_eq!(parse_address("tcp://1.2.3.4:5").unwrap(), tcp("1.2.3.4", 5));
        assert_eq!(
            parse_address("unix:/tmp/x.sock").unwrap(),
            BindAddr::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            parse_address("unix:///tmp/x.sock").unwrap(),
            BindAddr::Unix("/tmp/x.sock".into())
        );
        assert_eq!(parse_address("fd://3").unwrap(), BindAddr::Fd(3));
        assert_eq!(
            parse_address("h:x").unwrap_err(),
            "'x' is not a valid port number."
        );
    }

    #[test]
    fn binds_port_zero_and_reports_the_real_port() {
        let l = bind_all(&[parse_address("127.0.0.1:0").unwrap()], 16, 0).unwrap();
        let shown = l[0].display(false);
        assert!(
            shown.starts_with("http://127.0.0.1:") && !shown.ends_with(":0"),
            "{shown}"
        );
    }
}
