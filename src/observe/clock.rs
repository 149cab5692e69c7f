//! Time formatting for logs and the `Date` header, cached per second.
//!
//! gunicorn formats log times in local time with a numeric offset (`time.localtime()`), so the
//! offset follows daylight saving time. The local time zone is loaded once per process start
//! ([`local_zone_init`], in the single-threaded master: the `TZ` variable is read there and
//! never again), and the offset of each new second is looked up in its rules.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::SystemTime;

use time::{
    OffsetDateTime, UtcOffset, format_description::BorrowedFormatItem, macros::format_description,
};

static LOCAL_ZONE: OnceLock<jiff::tz::TimeZone> = OnceLock::new();

/// Loads the local time zone (`TZ`, else `/etc/localtime`; UTC when neither can be read). Call
/// while the process has one thread.
pub fn local_zone_init() {
    let _ = LOCAL_ZONE.set(jiff::tz::TimeZone::system());
}

/// The local UTC offset at `unix_second`, by the zone's rules (UTC before
/// [`local_zone_init`]).
fn local_offset_at(unix_second: i64) -> UtcOffset {
    let Some(zone) = LOCAL_ZONE.get() else {
        return UtcOffset::UTC;
    };
    offset_in(zone, unix_second)
}

fn offset_in(zone: &jiff::tz::TimeZone, unix_second: i64) -> UtcOffset {
    jiff::Timestamp::from_second(unix_second)
        .ok()
        .and_then(|t| UtcOffset::from_whole_seconds(zone.to_offset(t).seconds()).ok())
        .unwrap_or(UtcOffset::UTC)
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

/// Hands the text for the current second to `emit`, formatting it with `f` only when the
/// second has changed (the calendar conversion too: most calls only read the clock).
fn cached(
    cell: &'static std::thread::LocalKey<RefCell<PerSecond>>,
    f: impl FnOnce(OffsetDateTime) -> String,
    emit: impl FnOnce(&str),
) {
    let now = SystemTime::now();
    let second = match now.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX) - 1,
    };
    cell.with(|c| {
        let mut c = c.borrow_mut();
        if c.second != second {
            c.second = second;
            let now = OffsetDateTime::from(now);
            c.text = f(now.to_offset(local_offset_at(now.unix_timestamp())));
        }
        emit(&c.text);
    });
}

/// `[2026-11-28 00:12:42 +0000]`, gunicorn's error-log time.
pub(crate) fn error_log_time(out: &mut String) {
    cached(
        &ERROR_TS,
        |t| t.format(ERROR_LOG_FMT).unwrap_or_default(),
        |t| out.push_str(t),
    );
}

/// `[28/Nov/2026:00:12:43 +0000]`, the access log's `%(t)s`.
pub(crate) fn access_log_time(out: &mut String) {
    cached(
        &ACCESS_TS,
        |t| t.format(ACCESS_FMT).unwrap_or_default(),
        |t| out.push_str(t),
    );
}

/// `Sat, 28 Nov 2026 00:12:43 GMT` for the `Date` response header.
pub fn http_date(out: &mut Vec<u8>) {
    cached(
        &DATE,
        |t| {
            t.to_offset(UtcOffset::UTC)
                .format(HTTP_DATE_FMT)
                .unwrap_or_default()
        },
        |t| out.extend_from_slice(t.as_bytes()),
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
        let mut d = Vec::new();
        http_date(&mut d);
        let d = String::from_utf8(d).unwrap();
        assert!(d.ends_with(" GMT") && d.len() == 29, "{d}");
    }

    #[test]
    fn the_offset_follows_daylight_saving_time() {
        // Central European rules, without the system's time zone database.
        let zone = jiff::tz::TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        // 2026-01-15 12:00 UTC: winter time.
        assert_eq!(offset_in(&zone, 1_768_478_400).whole_seconds(), 3600);
        // 2026-07-15 12:00 UTC: summer time.
        assert_eq!(offset_in(&zone, 1_784_116_800).whole_seconds(), 7200);
        // A formatted summer line shows +0200.
        let t = OffsetDateTime::from_unix_timestamp(1_784_116_800)
            .unwrap()
            .to_offset(offset_in(&zone, 1_784_116_800));
        assert_eq!(
            t.format(ERROR_LOG_FMT).unwrap(),
            "[2026-07-15 14:00:00 +0200]"
        );
    }
}
