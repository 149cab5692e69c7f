//! Thin, safe wrappers over the operating system: listening sockets, the worker heartbeat file,
//! the pidfile, systemd, `TCP_INFO`, client sockets registered lazily with tokio's reactor
//! (`stream.rs`, the only tokio here). No Python here.

pub mod conn_share;
pub mod fd;
pub mod heartbeat;
pub mod listeners;
pub mod pidfile;
pub mod stream;
pub mod systemd;
pub mod tcp_sockopt;
pub mod uring;
