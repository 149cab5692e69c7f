//! Thin, safe wrappers over the operating system: listening sockets, the worker heartbeat file,
//! the pidfile, systemd, `TCP_INFO`. No Python and no tokio here.

pub mod fd;
pub mod heartbeat;
pub mod listeners;
pub mod pidfile;
pub mod systemd;
pub mod tcp_info;
