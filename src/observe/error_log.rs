//! The error log (`gunicorn.error`): `[time] [pid] [LEVEL] message`, to stderr, a file, or
//! nowhere; and the access log's destination. Both are reopened on USR1.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};

use super::clock::error_log_time;
use super::statsd;

/// Log levels, in gunicorn's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl Level {
    /// gunicorn's `loglevel` names; unknown names mean info.
    pub fn from_setting(name: &str) -> Level {
        match name.trim().to_ascii_lowercase().as_str() {
            "debug" => Level::Debug,
            "warning" => Level::Warning,
            "error" => Level::Error,
            "critical" => Level::Critical,
            _ => Level::Info,
        }
    }

    /// Python `logging`'s level number.
    pub fn levelno(self) -> i32 {
        match self {
            Level::Debug => 10,
            Level::Info => 20,
            Level::Warning => 30,
            Level::Error => 40,
            Level::Critical => 50,
        }
    }

    /// The level of a Python `logging` level number (a record at `n` is written at this level).
    pub fn from_levelno(n: i32) -> Level {
        match n {
            ..=10 => Level::Debug,
            11..=20 => Level::Info,
            21..=30 => Level::Warning,
            31..=40 => Level::Error,
            _ => Level::Critical,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }
}

/// Where a log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    Off,
    Stdout,
    Stderr,
    /// A file opened in append mode; the path is kept for reopening.
    File(String),
}

impl Sink {
    /// gunicorn's convention: `-` is the standard stream, anything else a file path.
    pub fn from_setting(value: Option<&str>, dash: Sink) -> Sink {
        match value {
            None => Sink::Off,
            Some("-") => dash,
            Some(path) => Sink::File(path.to_string()),
        }
    }
}

struct Target {
    sink: Sink,
    file: Option<File>,
}

impl Target {
    fn open(sink: Sink) -> std::io::Result<Target> {
        let file = match &sink {
            Sink::File(p) => Some(OpenOptions::new().create(true).append(true).open(p)?),
            _ => None,
        };
        Ok(Target { sink, file })
    }

    fn write(&self, bytes: &[u8]) {
        // One write call per line: appends from several processes stay whole lines.
        let _ = match (&self.sink, &self.file) {
            (Sink::Stdout, _) => std::io::stdout().lock().write_all(bytes),
            (Sink::Stderr, _) => std::io::stderr().lock().write_all(bytes),
            (Sink::File(_), Some(f)) => (&*f).write_all(bytes),
            _ => Ok(()),
        };
    }
}

struct State {
    level: Level,
    error: Target,
    access: Target,
}

static STATE: RwLock<Option<State>> = RwLock::new(None);

/// Another writer for both logs: Python `logging` when a logging setting needs it
/// (`logconfig*`, `syslog`, `capture_output`, `logger_class`). rgun's lines keep their text; the
/// external side formats and routes them.
pub trait External: Send + Sync {
    /// One error-log message at `level` (already filtered by [`Self::level`]).
    fn log(&self, level: Level, msg: &str);
    /// One access line, rendered with `access_log_format`.
    fn access(&self, line: &str);
    /// USR1: reopen whatever files the external side writes.
    fn reopen(&self);
    /// The lowest level written.
    fn level(&self) -> Level;
    /// Whether access lines are written at all.
    fn access_enabled(&self) -> bool;
}

static EXTERNAL: RwLock<Option<Arc<dyn External>>> = RwLock::new(None);

/// The lowest level [`enabled`] says yes to, as `Level as u8` (`NOTHING`: the error log is off),
/// kept beside `STATE` and `EXTERNAL` so that the per-request check is one load.
static LOWEST: AtomicU8 = AtomicU8::new(Level::Info as u8);
const NOTHING: u8 = u8::MAX;

fn external() -> Option<Arc<dyn External>> {
    EXTERNAL.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Configures both logs for this process. Errors name the file that could not be opened.
pub fn init(level: Level, error: Sink, access: Sink) -> std::io::Result<()> {
    let state = State {
        level,
        error: Target::open(error)?,
        access: Target::open(access)?,
    };
    let lowest = if state.error.sink == Sink::Off {
        NOTHING
    } else {
        level as u8
    };
    *STATE.write().unwrap_or_else(|e| e.into_inner()) = Some(state);
    *EXTERNAL.write().unwrap_or_else(|e| e.into_inner()) = None;
    LOWEST.store(lowest, Ordering::Relaxed);
    Ok(())
}

/// Sends both logs to `sink` from now on (rgun's own files are closed).
pub fn init_external(sink: Arc<dyn External>) {
    LOWEST.store(sink.level() as u8, Ordering::Relaxed);
    *EXTERNAL.write().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    *STATE.write().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Reopens log files (USR1), keeping the old handle when a file cannot be reopened.
pub fn reopen() {
    if let Some(ext) = external() {
        ext.reopen();
        return;
    }
    let mut guard = STATE.write().unwrap_or_else(|e| e.into_inner());
    if let Some(state) = guard.as_mut() {
        for t in [&mut state.error, &mut state.access] {
            if let Ok(new) = Target::open(t.sink.clone()) {
                *t = new;
            }
        }
    }
}

/// Whether a message at `level` would be written.
pub fn enabled(level: Level) -> bool {
    let lowest = LOWEST.load(Ordering::Relaxed);
    lowest != NOTHING && level as u8 >= lowest
}

/// Writes one error-log message, without the StatsD counter the level methods below add (for
/// lines gunicorn writes through the `gunicorn.error` logger itself, not through its Logger).
pub fn write(level: Level, msg: &str) {
    if let Some(ext) = external() {
        if level >= ext.level() {
            ext.log(level, msg);
        }
        return;
    }
    let guard = STATE.read().unwrap_or_else(|e| e.into_inner());
    let mut line = String::with_capacity(64 + msg.len());
    error_log_time(&mut line);
    line.push_str(" [");
    line.push_str(&std::process::id().to_string());
    line.push_str("] [");
    line.push_str(level.name());
    line.push_str("] ");
    line.push_str(msg);
    line.push('\n');
    match guard.as_ref() {
        Some(s) if level >= s.level => s.error.write(line.as_bytes()),
        Some(_) => {}
        // Before init (early startup errors), gunicorn's default: info and up to stderr.
        None if level >= Level::Info => {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
        None => {}
    }
}

// gunicorn's Logger methods. With StatsD on, `critical`, `error`, `warning` and `exception`
// also count the call (`gunicorn.log.<method>`), whether or not the level is written.
pub fn debug(msg: &str) {
    write(Level::Debug, msg);
}
pub fn info(msg: &str) {
    write(Level::Info, msg);
}
pub fn warning(msg: &str) {
    write(Level::Warning, msg);
    statsd::count_log("warning");
}
pub fn error(msg: &str) {
    write(Level::Error, msg);
    statsd::count_log("error");
}
pub fn critical(msg: &str) {
    write(Level::Critical, msg);
    statsd::count_log("critical");
}

/// `log.error(msg, exc_info=True)`: an error line followed by a formatted traceback.
pub fn error_with_traceback(msg: &str, traceback: &str) {
    write(Level::Error, &with_traceback(msg, traceback));
    statsd::count_log("error");
}

/// `log.exception(msg)`: an error line followed by a formatted traceback.
pub fn exception(msg: &str, traceback: &str) {
    write(Level::Error, &with_traceback(msg, traceback));
    statsd::count_log("exception");
}

fn with_traceback(msg: &str, traceback: &str) -> String {
    let tb = traceback.trim_end_matches('\n');
    if tb.is_empty() {
        msg.to_string()
    } else {
        format!("{msg}\n{tb}")
    }
}

pub(crate) fn write_access(line: &str) {
    if let Some(ext) = external() {
        if ext.access_enabled() {
            ext.access(line);
        }
        return;
    }
    let guard = STATE.read().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = guard.as_ref() {
        let mut buf = String::with_capacity(line.len() + 1);
        buf.push_str(line);
        buf.push('\n');
        s.access.write(buf.as_bytes());
    }
}

pub(crate) fn access_enabled() -> bool {
    if let Some(ext) = external() {
        return ext.access_enabled();
    }
    let guard = STATE.read().unwrap_or_else(|e| e.into_inner());
    guard.as_ref().is_some_and(|s| s.access.sink != Sink::Off)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_follows_init() {
        init(Level::Warning, Sink::Stderr, Sink::Off).unwrap();
        assert!(!enabled(Level::Info) && enabled(Level::Warning) && enabled(Level::Critical));
        init(Level::Debug, Sink::Off, Sink::Off).unwrap();
        assert!(!enabled(Level::Critical));
        init(Level::Debug, Sink::Stderr, Sink::Off).unwrap();
        assert!(enabled(Level::Debug));
    }

    #[test]
    fn level_names_follow_gunicorn() {
        assert_eq!(Level::from_setting("DEBUG"), Level::Debug);
        assert_eq!(Level::from_setting("bogus"), Level::Info);
        assert_eq!(Level::from_setting(" error "), Level::Error);
    }

    #[test]
    fn dash_means_the_standard_stream() {
        assert_eq!(Sink::from_setting(Some("-"), Sink::Stdout), Sink::Stdout);
        assert_eq!(Sink::from_setting(None, Sink::Stdout), Sink::Off);
        assert_eq!(
            Sink::from_setting(Some("/x"), Sink::Stdout),
            Sink::File("/x".into())
        );
    }
}
