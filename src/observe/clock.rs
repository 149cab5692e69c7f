//! Time formatting for logs and the `Date` header, cached per second.
//!
//! gunicorn formats log times in local time with a numeric offset. The offset is read once per
//! process start ([`local_offset_init`], in the single-threaded master), because reading it later
//! is unsound in a multi-threaded process.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::SystemTime;

use time::{
    OffsetDateTime, UtcOffset, format_description::BorrowedFormatItem, macros::format_description,
};

static OFFSET: OnceLock<UtcOffset> = OnceLock::new();

/// Reads the local UTC offset. Call while the process has one thread.
pub fn local_offset_init() {
    let off = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let _ = OFFSET.set(off);
}

fn now_local() -> OffsetDateTime {
    let off = OFFSET.get().copied().unwrap_or(UtcOffset::UTC);
    OffsetDateTime::from(SystemTime::now()).to_offset(off)
}

const ERROR_LOG_FMT: &[BorrowedFormatItem<'_>] = format_description!(
    "[[[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]]"
);
const ACCESS_FMT: &[BorrowedFormatItem<'_>] = format_description!(
    "[[[day]/[month repr:short]/[year]:[hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]]"
);
const HTTP_DATE_FMT: &[BorrowedFormatItem<'_>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// A string cached for the current second of the wall clock.
struct PerSecond {
    second: i64,
    text: String,
}

thread_local! {
    static ERROR_TS: RefCell<PerSecond> = const { RefCell::new(PerSecond { second: i64::MIN, text: String::new() }) };
    static ACCESS_TS: RefCell<PerSecond> = const { RefCell::new(PerSecond { second: i64::MIN, text: String::new() }) };
    static DATE: RefCell<PerSecond> = const { RefCell::new(PerSecond { second: i64::MIN, text: String::new() }) };
}

fn cached(
    cell: &'static std::thread::LocalKey<RefCell<PerSecond>>,
    f: impl FnOnce(OffsetDateTime) -> String,
    out: &mut String,
) {
    let now = now_local();
    cell.with(|c| {
        let mut c = c.borrow_mut();
        if c.second != now.unix_timestamp() {
            c.second = now.unix_timestamp();
            c.text = f(now);
        }
        out.push_str(&c.text);
    });
}

/// `[2026-11-28 00:12:42 +0000]`, gunicorn's error-log time.
pub(crate) fn error_log_time(out: &mut String) {
    cached(
        &ERROR_TS,
        |t| t.format(ERROR_LOG_FMT).unwrap_or_default(),
        out,
    );
}

/// `[28/Nov/2026:00:12:43 +0000]`, the access log's `%(t)s`.
pub(crate) fn access_log_time(out: &mut String) {
    cached(
        &ACCESS_TS,
        |t| t.format(ACCESS_FMT).unwrap_or_default(),
        out,
    );
}

/// `Sat, 28 Nov 2026 00:12:43 GMT` for the `Date` response header.
pub fn http_date(out: &mut String) {
    cached(
        &DATE,
        |t| {
            t.to_offset(UtcOffset::UTC)
                .format(HTTP_DATE_FMT)
                .unwrap_or_default()
        },
        out,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_gunicorn_shapes() {
        let mut s = String::new();
        error_log_time(&mut s);
        assert_eq!(s.len(), "[2026-11-28 00:12:42 +0000]".len(), "{s}");
        let mut a = String::new();
        access_log_time(&mut a);
        assert_eq!(a.len(), "[28/Nov/2026:00:12:43 +0000]".len(), "{a}");
        let mut d = String::new();
        http_date(&mut d);
        assert!(d.ends_with(" GMT") && d.len() == 29, "{d}");
    }
}
