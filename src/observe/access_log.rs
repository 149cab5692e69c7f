//! `access_log_format`: gunicorn's `%(atom)s` templates, compiled once and rendered per request.
//!
//! The format is Python %-formatting against gunicorn's atoms mapping, so the same rules hold
//! here: `%%` is a literal percent, an unknown atom renders as `-`, and `"` in string atoms is
//! escaped as `\"`.

use std::time::Duration;

use super::clock::access_log_time;

/// Where an access-log line takes its values from (the request, the response, the environ).
pub trait AccessRecord {
    /// An environ value rendered with `str()`, looked up by exact key.
    fn environ(&self, key: &str) -> Option<String>;
    /// An environ value whose lower-cased key equals `lower` (for `{name}e`).
    fn environ_lower(&self, lower: &str) -> Option<String>;
    /// The last request header whose lower-cased name equals `lower` (for `{name}i`).
    fn request_header(&self, lower: &str) -> Option<String>;
    /// The last response header set by the app whose lower-cased name equals `lower`.
    fn response_header(&self, lower: &str) -> Option<String>;
    /// The status as the app gave it (`"200 OK"`).
    fn status(&self) -> String;
    /// Body bytes written.
    fn sent(&self) -> Option<u64>;
    fn duration(&self) -> Duration;
}

#[derive(Debug, Clone, PartialEq)]
enum Atom {
    Host,
    Dash,
    User,
    Time,
    RequestLine,
    Status,
    Method,
    PathInfo,
    Query,
    Protocol,
    SentStr,
    SentInt,
    Referer,
    Agent,
    Seconds,
    Micros,
    Millis,
    Decimal,
    Pid,
    RequestHeader(String),
    ResponseHeader(String),
    Environ(String),
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Atom { atom: Atom, spec: Spec },
}

/// The part of a `%(key)...s` conversion after the key: flags, width and the conversion type.
#[derive(Debug, Clone, PartialEq)]
struct Spec {
    left: bool,
    width: usize,
    conv: char,
}

/// A compiled `access_log_format`.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessFormat {
    pieces: Vec<Piece>,
}

impl AccessFormat {
    /// Compiles a format. Text that is not a `%(key)` conversion stays literal.
    pub fn compile(fmt: &str) -> AccessFormat {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = fmt;
        while let Some(pos) = rest.find('%') {
            lit.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(stripped) = after.strip_prefix('%') {
                lit.push('%');
                rest = stripped;
                continue;
            }
            match parse_conversion(after) {
                Some((key, spec, used)) => {
                    if !lit.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Atom {
                        atom: atom_for(key),
                        spec,
                    });
                    rest = &after[used..];
                }
                None => {
                    lit.push('%');
                    rest = after;
                }
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Literal(lit));
        }
        AccessFormat { pieces }
    }

    /// Renders one line (without the newline).
    pub fn render(&self, rec: &dyn AccessRecord) -> String {
        let mut out = String::with_capacity(128);
        for piece in &self.pieces {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                Piece::Atom { atom, spec } => {
                    let value = value_of(atom, rec);
                    pad(&mut out, &value, spec);
                }
            }
        }
        out
    }
}

fn parse_conversion(s: &str) -> Option<(&str, Spec, usize)> {
    let inner = s.strip_prefix('(')?;
    let close = inner.find(')')?;
    let key = &inner[..close];
    let mut i = close + 2; // '(' + key + ')'
    let bytes = s.as_bytes();
    let mut left = false;
    while i < bytes.len() && matches!(bytes[i], b'-' | b'+' | b' ' | b'#' | b'0') {
        left |= bytes[i] == b'-';
        i += 1;
    }
    let start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let width = s[start..i].parse().unwrap_or(0);
    let conv = *bytes.get(i)? as char;
    if !matches!(conv, 's' | 'r' | 'd' | 'i') {
        return None;
    }
    Some((key, Spec { left, width, conv }, i + 1))
}

fn atom_for(key: &str) -> Atom {
    if key.starts_with('{') {
        let lower = key.to_ascii_lowercase();
        let name = |suffix: &str| {
            lower
                .strip_prefix('{')?
                .strip_suffix(suffix)
                .map(str::to_string)
        };
        if let Some(n) = name("}i") {
            return Atom::RequestHeader(n);
        }
        if let Some(n) = name("}o") {
            return Atom::ResponseHeader(n);
        }
        if let Some(n) = name("}e") {
            return Atom::Environ(n);
        }
        return Atom::Unknown;
    }
    match key {
        "h" => Atom::Host,
        "l" => Atom::Dash,
        "u" => Atom::User,
        "t" => Atom::Time,
        "r" => Atom::RequestLine,
        "s" => Atom::Status,
        "m" => Atom::Method,
        "U" => Atom::PathInfo,
        "q" => Atom::Query,
        "H" => Atom::Protocol,
        "b" => Atom::SentStr,
        "B" => Atom::SentInt,
        "f" => Atom::Referer,
        "a" => Atom::Agent,
        "T" => Atom::Seconds,
        "D" => Atom::Micros,
        "M" => Atom::Millis,
        "L" => Atom::Decimal,
        "p" => Atom::Pid,
        _ => Atom::Unknown,
    }
}

/// gunicorn escapes `"` in string atoms only; numbers are left alone.
fn esc(s: String) -> String {
    if s.contains('"') {
        s.replace('"', "\\\"")
    } else {
        s
    }
}

fn value_of(atom: &Atom, rec: &dyn AccessRecord) -> String {
    let env = |k: &str| rec.environ(k);
    let d = rec.duration();
    match atom {
        Atom::Host => esc(env("REMOTE_ADDR").unwrap_or_else(|| "-".into())),
        Atom::Dash => "-".into(),
        Atom::User => {
            esc(basic_auth_user(env("HTTP_AUTHORIZATION").as_deref()).unwrap_or_else(|| "-".into()))
        }
        Atom::Time => {
            let mut s = String::new();
            access_log_time(&mut s);
            s
        }
        Atom::RequestLine => esc(format!(
            "{} {} {}",
            env("REQUEST_METHOD").unwrap_or_default(),
            env("RAW_URI").unwrap_or_default(),
            env("SERVER_PROTOCOL").unwrap_or_default()
        )),
        Atom::Status => esc(rec
            .status()
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()),
        Atom::Method => esc(env("REQUEST_METHOD").unwrap_or_else(|| "None".into())),
        Atom::PathInfo => esc(env("PATH_INFO").unwrap_or_else(|| "None".into())),
        Atom::Query => esc(env("QUERY_STRING").unwrap_or_else(|| "None".into())),
        Atom::Protocol => esc(env("SERVER_PROTOCOL").unwrap_or_else(|| "None".into())),
        Atom::SentStr => rec.sent().map_or_else(|| "-".into(), |n| n.to_string()),
        Atom::SentInt => rec.sent().map_or_else(|| "None".into(), |n| n.to_string()),
        Atom::Referer => esc(env("HTTP_REFERER").unwrap_or_else(|| "-".into())),
        Atom::Agent => esc(env("HTTP_USER_AGENT").unwrap_or_else(|| "-".into())),
        Atom::Seconds => d.as_secs().to_string(),
        Atom::Micros => d.as_micros().to_string(),
        Atom::Millis => d.as_millis().to_string(),
        Atom::Decimal => format!("{}.{:06}", d.as_secs(), d.subsec_micros()),
        Atom::Pid => format!("<{}>", std::process::id()),
        Atom::RequestHeader(n) => esc(rec.request_header(n).unwrap_or_else(|| "-".into())),
        Atom::ResponseHeader(n) => esc(rec.response_header(n).unwrap_or_else(|| "-".into())),
        Atom::Environ(n) => esc(rec.environ_lower(n).unwrap_or_else(|| "-".into())),
        Atom::Unknown => "-".into(),
    }
}

fn pad(out: &mut String, value: &str, spec: &Spec) {
    let len = value.chars().count();
    if spec.width <= len {
        out.push_str(value);
    } else if spec.left {
        out.push_str(value);
        out.extend(std::iter::repeat_n(' ', spec.width - len));
    } else {
        out.extend(std::iter::repeat_n(' ', spec.width - len));
        out.push_str(value);
    }
}

/// The user name of an `Authorization: Basic` header, as gunicorn's `_get_user` finds it.
fn basic_auth_user(header: Option<&str>) -> Option<String> {
    let header = header?;
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(rest.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split(':').next().unwrap_or("").to_string())
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// An access record with no Python behind it: gunicorn's `handle_error` logs a fresh response
/// (the error status, 0 bytes sent) against a minimal environ.
pub struct ErrorRecord<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    pub protocol: &'a str,
    pub query: &'a str,
    /// `REMOTE_ADDR`, and `REMOTE_PORT` (`-1` on unix sockets, as gunicorn's `('', -1)`).
    pub remote: (String, String),
    pub status: &'a str,
}

impl AccessRecord for ErrorRecord<'_> {
    fn environ(&self, key: &str) -> Option<String> {
        Some(match key {
            "REQUEST_METHOD" => self.method.to_string(),
            "RAW_URI" => self.uri.to_string(),
            "SERVER_PROTOCOL" => self.protocol.to_string(),
            "QUERY_STRING" => self.query.to_string(),
            "REMOTE_ADDR" => self.remote.0.clone(),
            "REMOTE_PORT" => self.remote.1.clone(),
            "SERVER_SOFTWARE" => format!("gunicorn/{}", crate::GUNICORN_VERSION),
            "wsgi.url_scheme" => "http".to_string(),
            _ => return None,
        })
    }
    fn environ_lower(&self, lower: &str) -> Option<String> {
        self.environ(&lower.to_ascii_uppercase())
    }
    fn request_header(&self, _lower: &str) -> Option<String> {
        None
    }
    fn response_header(&self, _lower: &str) -> Option<String> {
        None
    }
    fn status(&self) -> String {
        self.status.to_string()
    }
    fn sent(&self) -> Option<u64> {
        Some(0)
    }
    fn duration(&self) -> Duration {
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rec;
    impl AccessRecord for Rec {
        fn environ(&self, key: &str) -> Option<String> {
            Some(
                match key {
                    "REMOTE_ADDR" => "127.0.0.1",
                    "REQUEST_METHOD" => "GET",
                    "RAW_URI" => "/a/b?x=1",
                    "SERVER_PROTOCOL" => "HTTP/1.1",
                    "HTTP_USER_AGENT" => "te\"st",
                    "HTTP_AUTHORIZATION" => "Basic dXNlcjpwYXNz",
                    _ => return None,
                }
                .to_string(),
            )
        }
        fn environ_lower(&self, lower: &str) -> Option<String> {
            self.environ(&lower.to_ascii_uppercase())
        }
        fn request_header(&self, lower: &str) -> Option<String> {
            (lower == "x-custom").then(|| "v".to_string())
        }
        fn response_header(&self, _lower: &str) -> Option<String> {
            None
        }
        fn status(&self) -> String {
            "200 OK".into()
        }
        fn sent(&self) -> Option<u64> {
            Some(0)
        }
        fn duration(&self) -> Duration {
            Duration::from_micros(1_234_567)
        }
    }

    #[test]
    fn default_format_renders_like_gunicorn() {
        let f = AccessFormat::compile(r#"%(h)s %(l)s %(u)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#);
        assert_eq!(
            f.render(&Rec),
            r#"127.0.0.1 - user "GET /a/b?x=1 HTTP/1.1" 200 0 "-" "te\"st""#
        );
    }

    #[test]
    fn times_headers_and_unknowns() {
        let f = AccessFormat::compile(
            "%(T)s %(M)s %(D)s %(L)s %({X-Custom}i)s %({nope}o)s %(zz)s %% %(remote_addr)s %({remote_addr}e)s",
        );
        assert_eq!(
            f.render(&Rec),
            "1 1234 1234567 1.234567 v - - % - 127.0.0.1"
        );
    }

    #[test]
    fn width_and_literal_percent() {
        let f = AccessFormat::compile("[%(s)-5s][%(s)5s] 100%");
        assert_eq!(f.render(&Rec), "[200  ][  200] 100%");
    }
}
