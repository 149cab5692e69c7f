//! StatsD, as gunicorn's `Statsd` logger (`gunicorn/instrument/statsd.py`) sends it: one
//! datagram per metric, `<prefix><name>:<value>|<type>`, plus `|#<tags>` with `dogstatsd_tags`,
//! on one socket connected once in the master and inherited by the workers.
//!
//! Set up once at startup ([`init`]), never again: gunicorn builds its Statsd logger once and a
//! SIGHUP only re-runs the logging setup, so the address, prefix and tags stay the first ones.
//! A failed send is logged as a warning (never counted) and otherwise ignored, as in gunicorn.

use std::fmt::Display;
use std::sync::OnceLock;
use std::time::Duration;

use socket2::Socket;

use super::error_log::{Level, write};

struct Client {
    /// `None` when gunicorn's `connect` failed: every metric then goes nowhere, silently.
    sock: Option<Socket>,
    /// `statsd_prefix` with gunicorn's trailing-`.` rule applied.
    prefix: String,
    /// `dogstatsd_tags`, appended as `|#<tags>` when not empty.
    tags: String,
    /// The `UnicodeEncodeError` line Python raises for every message when the prefix or the tags
    /// are not ASCII (every send then fails with a warning).
    encode_error: Option<String>,
}

static CLIENT: OnceLock<Client> = OnceLock::new();

/// Turns StatsD on for this process (and the workers it forks). Only the first call counts.
pub fn init(sock: Option<Socket>, prefix: String, tags: String, encode_error: Option<String>) {
    let _ = CLIENT.set(Client {
        sock,
        prefix,
        tags,
        encode_error,
    });
}

/// Whether gunicorn would run its Statsd logger (the `log` object hooks see is one then).
pub fn enabled() -> bool {
    CLIENT.get().is_some()
}

/// `(prefix, tags, has a socket)`, for the Python side of the Statsd logger.
pub fn settings() -> Option<(String, String, bool)> {
    CLIENT
        .get()
        .map(|c| (c.prefix.clone(), c.tags.clone(), c.sock.is_some()))
}

/// Sends `data` as it is (the Python side has added prefix and tags). No socket: nothing sent.
pub fn send_raw(data: &[u8]) -> std::io::Result<()> {
    match CLIENT.get().and_then(|c| c.sock.as_ref()) {
        Some(sock) => sock.send(data).map(drop),
        None => Ok(()),
    }
}

/// `gauge(name, value)`: `<p><name>:<v>|g`.
pub fn gauge(name: &str, value: impl Display) {
    metric(name, value, "|g");
}

/// `increment(name, value)`: `<p><name>:<v>|c|@1.0` (the sampling rate is always 1.0).
pub fn increment(name: &str, value: impl Display) {
    metric(name, value, "|c|@1.0");
}

/// `histogram(name, value)`: `<p><name>:<v>|h`.
pub fn histogram(name: &str, value: impl Display) {
    metric(name, value, "|h");
}

/// `timer(name, value)`: `<p><name>:<v>|ms`.
pub fn timer(name: &str, value: impl Display) {
    metric(name, value, "|ms");
}

/// gunicorn's `Statsd.access`: the duration timer, the request counter and the status counter.
/// Without a status (the app never called `start_response`) gunicorn's `"%d" % None` fails
/// after the first two metrics, so only those are sent.
pub fn access(duration: Duration, status: Option<u16>) {
    if !enabled() {
        return;
    }
    timer("gunicorn.request.duration", PyFloat(duration_ms(duration)));
    increment("gunicorn.requests", 1);
    if let Some(code) = status {
        increment(&format!("gunicorn.request.status.{code}"), 1);
    }
}

/// The status code of a WSGI status line (`int(status.split(None, 1)[0])`).
pub fn status_code(status: &str) -> Option<u16> {
    status.split_whitespace().next()?.parse().ok()
}

/// A log call at `level` through the logger's own method (`gunicorn.log.<level>`); called by
/// `error_log`'s public functions, whatever the log level lets through.
pub(super) fn count_log(kind: &str) {
    if enabled() {
        increment(&format!("gunicorn.log.{kind}"), 1);
    }
}

/// gunicorn's `request_time.seconds * 1000 + float(request_time.microseconds) / 10 ** 3`,
/// computed with the same float operations.
fn duration_ms(d: Duration) -> f64 {
    let secs = d.as_secs() % 86_400; // timedelta.seconds excludes whole days
    (secs * 1000) as f64 + f64::from(d.subsec_micros()) / 1000.0
}

/// A float shown as Python's `str()` shows it (`12.0`, `0.319`): the shortest round-trip
/// digits, with `.0` on whole numbers; Rust's `Debug` for `f64` follows the same rules in the
/// range a request duration can take.
struct PyFloat(f64);

impl Display for PyFloat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

fn metric(name: &str, value: impl Display, kind: &str) {
    let Some(client) = CLIENT.get() else { return };
    if let Some(e) = &client.encode_error {
        send_failed(e);
        return;
    }
    let mut msg = format!("{}{name}:{value}{kind}", client.prefix);
    if !client.tags.is_empty() {
        msg.push_str("|#");
        msg.push_str(&client.tags);
    }
    if let Some(sock) = &client.sock
        && let Err(e) = sock.send(msg.as_bytes())
    {
        send_failed(&python_oserror(&e));
    }
}

/// gunicorn's `Logger.warning(self, "Error sending message to statsd", exc_info=True)`: the
/// base logger's warning (not counted), with the exception line Python would print (rgun's
/// traceback has no Python frames).
fn send_failed(exc_line: &str) {
    write(
        Level::Warning,
        &format!("Error sending message to statsd\nTraceback (most recent call last):\n{exc_line}"),
    );
}

/// `ConnectionRefusedError: [Errno 111] Connection refused`: the line Python prints for the
/// `OSError` a failed `send` raises.
pub fn python_oserror(e: &std::io::Error) -> String {
    match errno_strerror(e) {
        Some((n, strerror)) => format!("{}: [Errno {n}] {strerror}", oserror_class(n)),
        None => format!("OSError: {e}"),
    }
}

/// `(errno, strerror)` of an OS error: what Python's `OSError` carries.
pub fn errno_strerror(e: &std::io::Error) -> Option<(i32, String)> {
    let n = e.raw_os_error()?;
    let text = e.to_string();
    let strerror = text
        .strip_suffix(&format!(" (os error {n})"))
        .unwrap_or(&text);
    Some((n, strerror.to_string()))
}

/// The `OSError` subclass CPython raises for errno `n`.
fn oserror_class(n: i32) -> &'static str {
    use nix::errno::Errno as E;
    match E::from_raw(n) {
        E::EAGAIN | E::EALREADY | E::EINPROGRESS => "BlockingIOError",
        E::ECHILD => "ChildProcessError",
        E::EPIPE | E::ESHUTDOWN => "BrokenPipeError",
        E::ECONNABORTED => "ConnectionAbortedError",
        E::ECONNREFUSED => "ConnectionRefusedError",
        E::ECONNRESET => "ConnectionResetError",
        E::EEXIST => "FileExistsError",
        E::ENOENT => "FileNotFoundError",
        E::EISDIR => "IsADirectoryError",
        E::ENOTDIR => "NotADirectoryError",
        E::EINTR => "InterruptedError",
        E::EACCES | E::EPERM => "PermissionError",
        E::ESRCH => "ProcessLookupError",
        E::ETIMEDOUT => "TimeoutError",
        _ => "OSError",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_python_floats() {
        let show = |d| PyFloat(duration_ms(d)).to_string();
        assert_eq!(show(Duration::from_micros(319)), "0.319");
        assert_eq!(show(Duration::ZERO), "0.0");
        assert_eq!(show(Duration::from_millis(12)), "12.0");
        assert_eq!(show(Duration::from_micros(1_000_001)), "1000.001");
        assert_eq!(show(Duration::from_micros(1)), "0.001");
        // Truncated to whole microseconds, like a timedelta.
        assert_eq!(show(Duration::from_nanos(2_999)), "0.002");
    }

    #[test]
    fn status_codes() {
        assert_eq!(status_code("200 OK"), Some(200));
        assert_eq!(status_code("404"), Some(404));
        assert_eq!(status_code(""), None);
    }

    #[test]
    fn oserror_lines_name_python_classes() {
        let e = std::io::Error::from_raw_os_error(nix::errno::Errno::ECONNREFUSED as i32);
        assert_eq!(
            python_oserror(&e),
            "ConnectionRefusedError: [Errno 111] Connection refused"
        );
        let e = std::io::Error::from_raw_os_error(nix::errno::Errno::EMSGSIZE as i32);
        assert_eq!(python_oserror(&e), "OSError: [Errno 90] Message too long");
    }
}
