//! The side channel: gunicorn's error log and access log, and its StatsD metrics. Every module
//! may write here; this module depends on no other rgun module except the settings it is
//! configured from.
//!
//! Invariant: one line is written with one `write` call, so lines from threads and processes
//! sharing a file never interleave.

mod access_log;
mod clock;
mod error_log;
pub mod statsd;

pub use access_log::{AccessFormat, AccessRecord, ErrorRecord};
pub use clock::{http_date, local_zone_init};
pub use error_log::{
    External, Level, Sink, critical, debug, enabled, error, error_with_traceback, exception, info,
    init, init_external, reopen, warning, write,
};

/// Writes one access-log line (already formatted, without the newline).
pub fn access(line: &str) {
    error_log::write_access(line);
}

/// Whether access logging is enabled at all (so callers can skip building records).
pub fn access_enabled() -> bool {
    error_log::access_enabled()
}
