//! The response side of an exchange, as gunicorn's `Response`: status and header validation,
//! hop-by-hop filtering, the header block, Content-Length truncation, chunked framing, and the
//! no-body rules for HEAD/1xx/204/304.

use super::header_list::HeaderList;
use super::scratch;
use crate::observe;
use crate::worker::conn::{Conn, IoStop, Waiter};

/// Why the app's `start_response` arguments were refused (all become a 500).
#[derive(Debug)]
pub enum HeaderError {
    /// `TypeError('%r is not a string')`.
    Type(String),
    /// `ValueError('Invalid status %r')`.
    Status(String),
    /// `InvalidResponseHeaderName('%r')`.
    Name(String),
    /// `InvalidResponseHeader('%r')` (the name only: the value may be secret).
    Value(String),
    /// `int()` of a Content-Length failed.
    Length(String),
}

/// gunicorn's `STATUS_RE.fullmatch`: `[0-9]{3}(?: [ \t\x21-\x7e\x80-\xff]*)?` over a str
/// (characters above U+00FF never match).
fn is_status(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) {
        return false;
    }
    // The first three bytes are ASCII, so 3 is a char boundary.
    let rest = &s[3..];
    rest.is_empty() || (rest.starts_with(' ') && is_header_value(rest))
}

/// An RFC 9110 token (gunicorn's `TOKEN_RE`).
pub fn is_token(s: &str) -> bool {
    rgun_h1::is_token(s.as_bytes())
}

/// Tab, printable ASCII and U+0080..U+00FF (gunicorn's header value check).
fn is_header_value(s: &str) -> bool {
    // Printable ASCII and HTAB, the common case, in one pass over the bytes.
    if s.bytes().all(|b| b == b'\t' || (0x20..=0x7e).contains(&b)) {
        return true;
    }
    s.chars()
        .all(|c| matches!(c as u32, 0x20 | 0x09 | 0x21..=0x7e | 0x80..=0xff))
}

/// Hop-by-hop headers (and the two gunicorn writes itself), any case.
fn is_hop_by_hop(name: &str) -> bool {
    let same: &[&str] = match name.len() {
        2 => &["te"],
        4 => &["date"],
        6 => &["server"],
        7 => &["upgrade"],
        8 => &["trailers"],
        10 => &["connection", "keep-alive"],
        17 => &["transfer-encoding"],
        18 => &["proxy-authenticate"],
        19 => &["proxy-authorization"],
        _ => return false,
    };
    same.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// `s.strip(" \t")` (the parser's trim, on a str: it cuts only next to ASCII bytes).
pub fn trim_sp_htab(s: &str) -> &str {
    &s[rgun_h1::sp_htab_trimmed(s.as_bytes())]
}

/// Latin-1 encoding of a str that is known to hold only U+0000..U+00FF.
pub fn latin1(s: &str, out: &mut Vec<u8>) {
    if s.is_ascii() {
        out.extend_from_slice(s.as_bytes());
    } else {
        out.extend(s.chars().map(|c| c as u32 as u8));
    }
}

#[derive(Debug)]
pub struct ResponseState {
    pub status: Option<String>,
    pub status_code: Option<u16>,
    /// The app's headers after the hop-by-hop filter.
    pub headers: HeaderList,
    pub headers_sent: bool,
    pub chunked: bool,
    pub must_close: bool,
    pub response_length: Option<u64>,
    pub sent: u64,
    pub upgrade: bool,
    omits_body: bool,
    warned: bool,
    /// Request facts the response depends on.
    pub version: (u8, u8),
    /// The request's method (the common ones without an allocation).
    pub method: std::borrow::Cow<'static, str>,
    pub req_should_close: bool,
}

impl Drop for ResponseState {
    fn drop(&mut self) {
        if let Some(status) = self.status.take() {
            scratch::give_string(status);
        }
    }
}

impl ResponseState {
    pub fn new(
        version: (u8, u8),
        method: &str,
        req_should_close: bool,
        force_close: bool,
    ) -> ResponseState {
        ResponseState {
            status: None,
            status_code: None,
            headers: HeaderList::default(),
            headers_sent: false,
            chunked: false,
            must_close: force_close,
            response_length: None,
            sent: 0,
            upgrade: false,
            omits_body: false,
            warned: false,
            version,
            method: match method {
                "GET" => "GET".into(),
                "HEAD" => "HEAD".into(),
                "POST" => "POST".into(),
                other => other.to_string().into(),
            },
            req_should_close,
        }
    }

    /// Whether everything of the response has been written (or passed to `send`) once the
    /// current bytes are: the declared length is reached, or there is no body to send.
    fn complete(&self) -> bool {
        !self.chunked && (self.omits_body || self.response_length.is_some_and(|n| self.sent >= n))
    }

    /// Sends `bufs`. When they end the response: before a close they go out with the FIN
    /// (`worker::cork`); on a connection that stays open they may be held for the end of the
    /// runtime's turn (`worker::outbox`). Never a `101` or other upgrade: the app may go on
    /// writing on the raw socket.
    fn send(&self, conn: &Conn, waiter: &Waiter, bufs: &[&[u8]], last: bool) -> Result<(), IoStop> {
        let final_bytes = last && !self.upgrade && self.status_code.is_some_and(|s| s >= 200);
        if final_bytes && self.should_close() {
            return conn.write_last_blocking(bufs, waiter);
        }
        let small =
            || bufs.iter().map(|b| b.len()).sum::<usize>() <= crate::worker::outbox::MAX_HELD;
        if final_bytes && small() && conn.hold(bufs) {
            return Ok(());
        }
        conn.write_all_blocking(bufs, waiter)
    }

    /// Validates and records `start_response(status, headers)` as `StartResponse.__call__`
    /// does, for the tests here (the call itself takes the headers from Python one by one).
    #[cfg(test)]
    fn start(&mut self, status: &str, headers: &[(&str, &str)]) -> Result<(), HeaderError> {
        self.set_status(status)?;
        for (name, value) in headers {
            if !is_token(name) {
                return Err(HeaderError::Name(name.to_string()));
            }
            self.add_header(name, value)?;
        }
        self.end_headers();
        Ok(())
    }

    /// Validates and records the status (it stays set even if a header is then refused, as in
    /// gunicorn).
    pub fn set_status(&mut self, status: &str) -> Result<(), HeaderError> {
        if !is_status(status) {
            return Err(HeaderError::Status(status.to_string()));
        }
        self.status_code = status
            .split_whitespace()
            .next()
            .and_then(|c| c.parse().ok());
        let mut kept = self.status.take().unwrap_or_else(scratch::take_string);
        kept.clear();
        kept.push_str(status);
        self.status = Some(kept);
        Ok(())
    }

    /// Records one app header (its name already checked to be a token): value validation,
    /// Content-Length, the hop-by-hop filter.
    pub fn add_header(&mut self, name: &str, value: &str) -> Result<(), HeaderError> {
        if !is_header_value(value) {
            return Err(HeaderError::Value(name.to_string()));
        }
        let value = trim_sp_htab(value);
        if name.eq_ignore_ascii_case("content-length") {
            let n: i128 = value
                .trim()
                .parse()
                .map_err(|_| HeaderError::Length(value.to_string()))?;
            self.response_length = Some(u64::try_from(n).unwrap_or(0));
        } else if is_hop_by_hop(name) {
            if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("upgrade") {
                self.upgrade = true;
            } else if name.eq_ignore_ascii_case("upgrade")
                && value.eq_ignore_ascii_case("websocket")
            {
                self.headers.push(name, value);
            }
            return Ok(());
        }
        self.headers.push(name, value);
        Ok(())
    }

    /// After the headers: the no-body rules and the framing decision.
    pub fn end_headers(&mut self) {
        let code = self.status_code;
        let informational_or_204 =
            code == Some(204) || code.is_some_and(|c| (100..200).contains(&c));
        self.omits_body = self.method == "HEAD" || code == Some(304) || informational_or_204;
        if self.omits_body && informational_or_204 {
            self.headers
                .retain(|k, _| !k.eq_ignore_ascii_case("content-length"));
            self.response_length = None;
        }
        self.chunked = self.response_length.is_none() && self.version > (1, 0) && !self.omits_body;
    }

    /// gunicorn's `Response.should_close`.
    pub fn should_close(&self) -> bool {
        if self.must_close || self.req_should_close {
            return true;
        }
        if self.response_length.is_some() || self.chunked || self.method == "HEAD" {
            return false;
        }
        !matches!(self.status_code, Some(c) if c < 200 || c == 204 || c == 304)
    }

    /// The header block: status line, Server, Date, Connection, [chunked], the app's headers.
    pub fn header_block(&self, out: &mut Vec<u8>) {
        // One allocation for the whole block: fixed lines plus the app's headers.
        let app_len = self.headers.lines().len();
        out.reserve(128 + self.status.as_ref().map_or(0, String::len) + app_len);
        let connection = if self.upgrade {
            "upgrade"
        } else if self.should_close() {
            "close"
        } else {
            "keep-alive"
        };
        match self.version {
            (1, 1) => out.extend_from_slice(b"HTTP/1.1 "),
            (1, 0) => out.extend_from_slice(b"HTTP/1.0 "),
            (a, b) => out.extend_from_slice(format!("HTTP/{a}.{b} ").as_bytes()),
        }
        latin1(self.status.as_deref().unwrap_or(""), out);
        out.extend_from_slice(b"\r\nServer: rgun\r\nDate: ");
        observe::http_date(out);
        out.extend_from_slice(b"\r\nConnection: ");
        out.extend_from_slice(connection.as_bytes());
        out.extend_from_slice(b"\r\n");
        if self.chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        latin1(self.headers.lines(), out);
        out.extend_from_slice(b"\r\n");
    }

    /// `write(data)`: sends the headers if needed, then the (truncated, framed) data.
    pub fn write(&mut self, conn: &Conn, waiter: &Waiter, data: &[u8]) -> Result<(), IoStop> {
        let mut head = Vec::new();
        if !self.headers_sent {
            head = scratch::take();
            self.header_block(&mut head);
            self.headers_sent = true;
        }
        let mut body: &[u8] = data;
        if self.omits_body {
            if !data.is_empty() && !self.warned {
                self.warned = true;
                no_body_warning(&self.method, self.status_code);
            }
            body = &[];
        } else if let Some(len) = self.response_length {
            let left = len.saturating_sub(self.sent);
            body = &data[..data.len().min(usize::try_from(left).unwrap_or(usize::MAX))];
        }
        self.sent += body.len() as u64;
        let sent = if self.chunked && !body.is_empty() {
            let size = format!("{:X}\r\n", body.len());
            conn.write_all_blocking(&[&head, size.as_bytes(), body, b"\r\n"], waiter)
        } else if head.is_empty() && body.is_empty() {
            Ok(())
        } else {
            self.send(conn, waiter, &[&head, body], self.complete())
        };
        scratch::give(head);
        sent
    }

    /// Ends the response: headers if none went out, the last chunk if chunked.
    pub fn close(&mut self, conn: &Conn, waiter: &Waiter) -> Result<(), IoStop> {
        let mut out = scratch::take();
        if !self.headers_sent {
            self.header_block(&mut out);
            self.headers_sent = true;
        }
        if self.chunked {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        let sent = if out.is_empty() {
            Ok(())
        } else {
            // Without a declared length, a response that is not chunked ends with the
            // connection: its last bytes went out with its last write.
            self.send(conn, waiter, &[&out], true)
        };
        scratch::give(out);
        sent
    }

    pub fn omits_body(&self) -> bool {
        self.omits_body
    }
}

/// gunicorn logs this on its `gunicorn.http.wsgi` module logger, which has no handler: Python
/// prints it bare on stderr (the last-resort handler).
pub fn no_body_warning(method: &str, status: Option<u16>) {
    use std::io::Write;
    let status = status.map_or_else(|| "None".to_string(), |s| s.to_string());
    let _ = writeln!(
        std::io::stderr(),
        "WSGI app sent body bytes on a no-body response (method={method} status={status}); dropping per RFC 9110."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_spaces_and_tabs_around_any_text() {
        assert_eq!(trim_sp_htab("\t \u{e9} x \t"), "\u{e9} x");
        assert_eq!(trim_sp_htab(" \t "), "");
        assert_eq!(trim_sp_htab("\u{ff}"), "\u{ff}");
    }

    #[test]
    fn status_check_is_gunicorns_fullmatch() {
        for ok in [
            "200",
            "200 OK",
            "200 ",
            "404 Not\tFound",
            "599 caf\u{e9}",
            "200  two",
        ] {
            assert!(is_status(ok), "{ok:?}");
        }
        for bad in [
            "",
            "20",
            "2000",
            "200x",
            "200OK",
            "20 OK",
            "200\tOK",
            "200 \u{100}",
            "200 a\nb",
            "\u{ff12}00 OK",
            " 200 OK",
            "200 \x7f",
        ] {
            assert!(!is_status(bad), "{bad:?}");
        }
    }

    fn started(
        status: &str,
        headers: &[(&str, &str)],
        method: &str,
        version: (u8, u8),
    ) -> ResponseState {
        let mut r = ResponseState::new(version, method, false, false);
        r.start(status, headers).unwrap();
        r
    }

    #[test]
    fn status_validation_matches_gunicorn() {
        let mut r = ResponseState::new((1, 1), "GET", false, false);
        assert!(matches!(r.start("20 OK", &[]), Err(HeaderError::Status(_))));
        let mut r = ResponseState::new((1, 1), "GET", false, false);
        assert!(r.start("200", &[]).is_ok());
    }

    #[test]
    fn hop_by_hop_and_framing() {
        let r = started(
            "200 OK",
            &[("Connection", "x"), ("Server", "me"), ("X-A", " b ")],
            "GET",
            (1, 1),
        );
        assert_eq!(
            r.headers.to_pairs(),
            vec![("X-A".to_string(), "b".to_string())]
        );
        assert!(r.chunked);
        let r = started("204 No Content", &[("Content-Length", "5")], "GET", (1, 1));
        assert!(r.headers.is_empty() && !r.chunked && r.response_length.is_none());
        let r = started("200 OK", &[], "GET", (1, 0));
        assert!(!r.chunked && r.should_close());
        let r = started(
            "304 Not Modified",
            &[("Content-Length", "5")],
            "GET",
            (1, 1),
        );
        assert_eq!(r.response_length, Some(5));
    }

    #[test]
    fn header_block_layout() {
        let r = started("200 OK", &[("Content-Length", "2")], "GET", (1, 1));
        let mut out = Vec::new();
        r.header_block(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\nServer: rgun\r\nDate: "),
            "{text}"
        );
        assert!(
            text.ends_with("GMT\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n"),
            "{text}"
        );
    }
}
