//! Thin, safe wrappers over the operating system: listening sockets, the worker heartbeat file,
//! the pidfile, systemd. No Python and no tokio here.

pub mod fd;
pub mod heartbeat;
pub mod listeners;
pub mod pidfile;
pub mod systemd;
