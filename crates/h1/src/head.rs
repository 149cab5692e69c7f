//! Parsing one request head (optional PROXY header, request line, header section) from the
//! start of a read buffer, then gunicorn's body-framing decision and keep-alive rule.

use memchr::{memchr, memchr_iter};

use crate::config::{ParserConfig, Peer, ProxyMode};
use crate::error::ParseError;
use crate::fields::Fields;
use crate::headers::{HeadPolicy, LineRules, Section, parse_section};
use crate::proxy::{ProxyInfo, ProxyOutcome, parse_proxy};
use crate::reqline::{RequestLine, parse_request_line};
use crate::text::{find_crlfcrlf, trim_sp_htab};

/// Outcome of an incremental parse step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status<T> {
    Complete(T),
    /// More bytes are needed. Limits were still enforced on what has arrived.
    Partial,
}

/// How the request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// Neither Content-Length nor Transfer-Encoding: gunicorn never reads to EOF.
    Empty,
    /// Content-Length. gunicorn accepts arbitrarily large values; beyond `u64` they saturate.
    Length(u64),
    Chunked,
}

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// The request line's text: the method, then the raw target (see the accessors).
    line: RequestLine,
    pub version: (u8, u8),
    /// Upper-cased names and stripped latin-1 values, after the header policy, in order.
    pub headers: Fields,
    /// `http` or `https`, after TLS and `secure_scheme_headers`.
    pub scheme: &'static str,
    pub body: BodyFraming,
    /// The connection must close after this request (compressing transfer coding, CONNECT).
    pub must_close: bool,
    /// `Expect: 100-continue` on HTTP/1.1 or later.
    pub expect_continue: bool,
    /// The PROXY header in front of the connection's first request.
    pub proxy: Option<Box<ProxyInfo>>,
    /// [`RequestHead::client_closes`], which the worker asks several times per request.
    client_closes: bool,
}

/// Whether a client sending these headers with this version closes after its request.
fn client_closes(headers: &Fields, version: (u8, u8)) -> bool {
    if let Some(value) = headers.get("CONNECTION") {
        let value = trim_sp_htab(value.as_bytes());
        if value.eq_ignore_ascii_case(b"close") {
            return true;
        }
        if value.eq_ignore_ascii_case(b"keep-alive") {
            return false;
        }
    }
    version <= (1, 0)
}

impl RequestHead {
    /// The request line's buffer, leaving an empty one (for [`crate::spare`]).
    pub(crate) fn take_line_text(&mut self) -> Vec<u8> {
        self.line.take_text()
    }

    /// The header fields, leaving none (for [`crate::spare`]).
    pub(crate) fn take_fields(&mut self) -> Fields {
        std::mem::take(&mut self.headers)
    }

    /// The bytes its buffers hold on to.
    pub(crate) fn kept_bytes(&self) -> usize {
        self.line.capacity() + self.headers.capacity()
    }

    /// As sent, upper-cased only with `casefold_http_method`.
    pub fn method(&self) -> &str {
        self.line.method()
    }

    /// The raw request target (`RAW_URI`).
    pub fn uri(&self) -> &str {
        self.line.uri()
    }

    pub fn path(&self) -> &str {
        self.line.path()
    }

    pub fn query(&self) -> &str {
        self.line.query()
    }

    pub fn fragment(&self) -> &str {
        self.line.fragment()
    }

    /// gunicorn's `Message.should_close` (spec 10.8, request side).
    pub fn should_close(&self) -> bool {
        self.must_close || self.method() == "CONNECT" || self.client_closes()
    }

    /// The client itself ends the connection after this request (`Connection: close`, or
    /// HTTP/1.0 without `keep-alive`), so it sends nothing more on it (RFC 9112 9.6). Only the
    /// first Connection header counts, and only an exact close / keep-alive.
    /// Decided once, from the head as parsed.
    pub fn client_closes(&self) -> bool {
        self.client_closes
    }

    /// The first header with this (upper-case) name.
    pub fn header(&self, upper_name: &str) -> Option<&str> {
        self.headers.get(upper_name)
    }
}

/// Internal parse result: on `Partial`, where gunicorn's current read buffer starts (what a
/// `NoMoreData` at that point would report).
enum Progress {
    Done(Box<RequestHead>, usize),
    Partial { pending_start: usize },
}

/// Parses one request head from the start of `buf`.
///
/// Returns the head and the number of bytes it took (PROXY header and the final empty line
/// included); the body starts right after. Call it again with more bytes after `Partial`;
/// the result equals what gunicorn concludes having received exactly `buf`. `first_on_conn`
/// enables the PROXY protocol check. This stateless form rescans `buf` on every call; a
/// caller feeding many small reads should use [`HeadParser`].
pub fn parse_head(
    buf: &[u8],
    cfg: &ParserConfig,
    peer: &Peer,
    first_on_conn: bool,
) -> Result<Status<(Box<RequestHead>, usize)>, ParseError> {
    HeadParser::new().parse(buf, cfg, peer, first_on_conn)
}

/// What gunicorn does when the peer closes while `buf` holds an incomplete head: nothing at
/// all for an empty buffer (`None`, close quietly), else `NoMoreData` (close without
/// response) or the error the buffered bytes already amount to.
pub fn parse_head_eof(
    buf: &[u8],
    cfg: &ParserConfig,
    peer: &Peer,
    first_on_conn: bool,
) -> Option<ParseError> {
    HeadParser::new().eof(buf, cfg, peer, first_on_conn)
}

/// Incremental form of [`parse_head`] that remembers how much of the buffer it has already
/// scanned, so a head arriving in many small reads costs linear time, not quadratic.
///
/// Contract: between calls the caller only appends to `buf` (the same head keeps starting
/// at index 0). The parser resets itself when it returns a head or an error; call
/// [`HeadParser::reset`] if the buffer is replaced for any other reason.
#[derive(Clone, Debug, Default)]
pub struct HeadParser {
    scan: Scan,
}

/// How far earlier calls got, as offsets into the caller's buffer.
#[derive(Clone, Copy, Debug, Default)]
struct Scan {
    /// The request line (from its start) holds no LF before this offset.
    line_scanned: usize,
    /// The complete request line already passed validation.
    line_checked: bool,
    /// The header section holds no bare LF before this offset, and no CRLFCRLF starting
    /// more than 3 bytes before it.
    fields_scanned: usize,
}

impl HeadParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets what was scanned (for a new, unrelated buffer).
    pub fn reset(&mut self) {
        self.scan = Scan::default();
    }

    /// Same result as [`parse_head`] on the same bytes.
    pub fn parse(
        &mut self,
        buf: &[u8],
        cfg: &ParserConfig,
        peer: &Peer,
        first_on_conn: bool,
    ) -> Result<Status<(Box<RequestHead>, usize)>, ParseError> {
        match parse_progress(buf, cfg, peer, first_on_conn, &mut self.scan) {
            Ok(Progress::Partial { .. }) => Ok(Status::Partial),
            Ok(Progress::Done(head, used)) => {
                self.reset();
                Ok(Status::Complete((head, used)))
            }
            Err(err) => {
                self.reset();
                Err(err)
            }
        }
    }

    /// Same result as [`parse_head_eof`] on the same bytes.
    pub fn eof(
        &mut self,
        buf: &[u8],
        cfg: &ParserConfig,
        peer: &Peer,
        first_on_conn: bool,
    ) -> Option<ParseError> {
        if buf.is_empty() {
            return None;
        }
        let outcome = parse_progress(buf, cfg, peer, first_on_conn, &mut self.scan);
        self.reset();
        match outcome {
            Err(err) => Some(err),
            Ok(Progress::Partial { pending_start }) => {
                Some(ParseError::NoMoreData(Some(buf[pending_start..].to_vec())))
            }
            Ok(Progress::Done(..)) => None,
        }
    }
}

fn parse_progress(
    buf: &[u8],
    cfg: &ParserConfig,
    peer: &Peer,
    first_on_conn: bool,
    scan: &mut Scan,
) -> Result<Progress, ParseError> {
    let mut pos = 0;
    let mut proxy = None;
    if first_on_conn && cfg.proxy_protocol != ProxyMode::Off {
        match parse_proxy(buf, cfg.proxy_protocol, peer)? {
            ProxyOutcome::Partial => return Ok(Progress::Partial { pending_start: 0 }),
            ProxyOutcome::Absent => {}
            ProxyOutcome::Found(info, used) => {
                proxy = Some(Box::new(info));
                pos = used;
            }
        }
    }

    // RFC 9112 2.2: one empty line before the request line is ignored; only one, only CRLF.
    match &buf[pos..] {
        b"\r" => return Ok(Progress::Partial { pending_start: pos }),
        [b'\r', b'\n', ..] => pos += 2,
        _ => {}
    }

    // The request line ends at the first CRLF; the first LF in the buffer tells both where
    // that is and whether a bare LF comes before it.
    let line_start = pos;
    let limit = cfg.limit_request_line;
    let from = scan.line_scanned.max(line_start);
    let line_len = match memchr(b'\n', &buf[from..]).map(|i| from + i) {
        Some(lf) if lf > line_start && buf[lf - 1] == b'\r' => lf - 1 - line_start,
        Some(_) => {
            return Err(ParseError::InvalidRequestLine(
                "bare LF as line terminator".into(),
            ));
        }
        None => {
            let buffered = buf.len() - line_start;
            if limit > 0 && buffered > limit + 2 {
                return Err(ParseError::LimitRequestLine {
                    size: buffered,
                    limit,
                });
            }
            scan.line_scanned = buf.len();
            return Ok(Progress::Partial {
                pending_start: line_start,
            });
        }
    };
    if limit > 0 && line_len > limit {
        return Err(ParseError::LimitRequestLine {
            size: line_len,
            limit,
        });
    }
    let line_bytes = &buf[line_start..line_start + line_len];

    let fields_start = line_start + line_len + 2;
    let data = &buf[fields_start..];
    let end = if data.starts_with(b"\r\n") {
        None
    } else {
        // Resume where the last call stopped; a terminator may straddle that point.
        let from = scan.fields_scanned.saturating_sub(3).max(fields_start);
        match find_crlfcrlf(&buf[from..]) {
            Some(i) => Some(from + i - fields_start),
            None => {
                // Validate the request line once; its errors come before any header error.
                if !scan.line_checked {
                    parse_request_line(line_bytes, cfg)?;
                    scan.line_checked = true;
                }
                if data.len() > cfg.max_buffer_headers() {
                    return Err(ParseError::LimitRequestHeaders("max buffer headers"));
                }
                // Every head line ends with CRLF: a bare LF means the head can never end,
                // so reject it now rather than wait for more.
                let from = scan.fields_scanned.max(fields_start);
                let bare_lf = memchr_iter(b'\n', &buf[from..])
                    .map(|i| from + i)
                    .any(|lf| lf == fields_start || buf[lf - 1] != b'\r');
                if bare_lf {
                    return Err(ParseError::header("bare LF as line terminator"));
                }
                scan.fields_scanned = buf.len();
                return Ok(Progress::Partial {
                    pending_start: fields_start,
                });
            }
        }
    };

    let line = parse_request_line(line_bytes, cfg)?;
    let (section, used) = match end {
        None => (Section::default(), fields_start + 2),
        Some(end) => {
            let policy = HeadPolicy {
                version: line.version,
                trusted: peer.trusted.then_some(cfg),
            };
            (
                parse_section(&data[..end], &LineRules::new(cfg), Some(&policy))?,
                fields_start + end + 4,
            )
        }
    };

    let (body, coding_forces_close) = body_framing(&section.headers, line.version)?;
    let must_close = coding_forces_close || line.method() == "CONNECT";
    let closes = client_closes(&section.headers, line.version);
    let head = RequestHead {
        version: line.version,
        line,
        headers: section.headers,
        scheme: section
            .scheme
            .unwrap_or(if peer.is_tls { "https" } else { "http" }),
        body,
        must_close,
        expect_continue: section.expect_continue,
        proxy,
        client_closes: closes,
    };
    Ok(Progress::Done(crate::spare::boxed(head), used))
}

/// An LF not preceded by CR.
pub(crate) fn has_bare_lf(data: &[u8]) -> bool {
    memchr_iter(b'\n', data).any(|i| i == 0 || data[i - 1] != b'\r')
}

/// gunicorn's `set_body_reader`: Content-Length / Transfer-Encoding rules (spec 10.6).
/// Returns the framing and whether a compressing coding forces the connection closed.
fn body_framing(headers: &Fields, version: (u8, u8)) -> Result<(BodyFraming, bool), ParseError> {
    let te_error = || ParseError::header_with_request("TRANSFER-ENCODING");
    let cl_error = || ParseError::header_with_request("CONTENT-LENGTH");
    let (mut chunked, mut has_te, mut force_close) = (false, false, false);
    let mut content_length: Option<&str> = None;
    for (name, value) in headers.iter() {
        match name {
            "CONTENT-LENGTH" => {
                if content_length.is_some() {
                    return Err(cl_error());
                }
                content_length = Some(value);
            }
            "TRANSFER-ENCODING" => {
                has_te = true;
                for coding in value.split(',') {
                    let coding = trim_sp_htab(coding.as_bytes());
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        // Stacked chunking is never intended.
                        if chunked {
                            return Err(te_error());
                        }
                        chunked = true;
                    } else if coding.eq_ignore_ascii_case(b"identity") {
                        if chunked {
                            return Err(te_error());
                        }
                    } else if [&b"compress"[..], b"deflate", b"gzip"]
                        .iter()
                        .any(|c| coding.eq_ignore_ascii_case(c))
                    {
                        if chunked {
                            return Err(te_error());
                        }
                        force_close = true;
                    } else {
                        return Err(ParseError::UnsupportedTransferCoding(value.to_owned()));
                    }
                }
            }
            _ => {}
        }
    }
    // RFC 9112 6.3: a request whose codings do not end in chunked has no knowable length.
    if has_te && !chunked {
        return Err(te_error());
    }
    let framing = if chunked {
        if version < (1, 1) {
            return Err(te_error());
        }
        if content_length.is_some() {
            return Err(cl_error());
        }
        BodyFraming::Chunked
    } else if let Some(text) = content_length {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(cl_error());
        }
        // gunicorn has bignums; a length beyond u64 can never be satisfied anyway.
        BodyFraming::Length(text.parse().unwrap_or(u64::MAX))
    } else {
        BodyFraming::Empty
    };
    Ok((framing, force_close))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> Result<Status<(Box<RequestHead>, usize)>, ParseError> {
        parse_head(buf, &ParserConfig::default(), &Peer::unix(), true)
    }

    fn head(buf: &[u8]) -> Box<RequestHead> {
        match parse(buf) {
            Ok(Status::Complete((head, _))) => head,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn complete_and_partial() {
        let req = b"GET /a?b#c HTTP/1.1\r\nHost: x\r\n\r\nrest";
        let Ok(Status::Complete((h, used))) = parse(req) else {
            panic!()
        };
        assert_eq!(
            (h.path(), h.query(), h.fragment(), used),
            ("/a", "b", "c", req.len() - 4)
        );
        for cut in 0..req.len() - 4 {
            assert_eq!(parse(&req[..cut]), Ok(Status::Partial), "cut at {cut}");
        }
        let Ok(Status::Complete((_, used))) = parse(b"\r\nGET / HTTP/1.1\r\n\r\n") else {
            panic!()
        };
        assert_eq!(used, 20);
    }

    #[test]
    fn incremental_parser_matches_stateless() {
        let cfg = ParserConfig::default();
        let peer = Peer::unix();
        let inputs: [&[u8]; 4] = [
            b"\r\nPOST /x HTTP/1.1\r\nA: 1\r\nContent-Length: 2\r\n\r\nab",
            b"GET / HTTP/1.1\r\nA: 1\nB: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: 1\r\r\n\r\n",
            b"get / HTTP/1.1\r\nA: 1",
        ];
        for input in inputs {
            let mut parser = HeadParser::new();
            for end in 0..=input.len() {
                let incremental = parser.parse(&input[..end], &cfg, &peer, true);
                assert_eq!(
                    incremental,
                    parse_head(&input[..end], &cfg, &peer, true),
                    "{end}"
                );
                if incremental != Ok(Status::Partial) {
                    break;
                }
            }
            assert_eq!(
                HeadParser::new().eof(input, &cfg, &peer, true),
                parse_head_eof(input, &cfg, &peer, true)
            );
        }
    }

    #[test]
    fn request_line_limits() {
        let cfg = ParserConfig::from_settings(10, 100, 8190);
        let peer = Peer::unix();
        // Without a CRLF the buffered length may exceed the limit by 2 (room for the CRLF).
        assert_eq!(
            parse_head(b"GET /123456", &cfg, &peer, false),
            Ok(Status::Partial)
        );
        let err = parse_head(b"GET /1234567890", &cfg, &peer, false)
            .err()
            .unwrap();
        assert_eq!(err.log_text(), "Request Line is too large (15 > 10)");
        let err = parse_head(b"GET /12345 HTTP/1.1\r\n", &cfg, &peer, false)
            .err()
            .unwrap();
        assert_eq!(
            (err.status(), err.log_text().as_str()),
            (Some(414), "Request Line is too large (19 > 10)")
        );
        let unlimited = ParserConfig::from_settings(0, 100, 8190);
        assert!(parse_head(&[b'a'; 100_000], &unlimited, &peer, false).unwrap() == Status::Partial);
    }

    #[test]
    fn header_buffer_limit() {
        let cfg = ParserConfig::from_settings(4094, 1, 10);
        let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
        buf.extend_from_slice(&[b'a'; 16]);
        assert_eq!(
            parse_head(&buf, &cfg, &Peer::unix(), false),
            Ok(Status::Partial)
        );
        buf.push(b'a');
        let err = parse_head(&buf, &cfg, &Peer::unix(), false).err().unwrap();
        assert_eq!(
            (err.status(), err.log_text().as_str()),
            (Some(431), "max buffer headers")
        );
    }

    #[test]
    fn framing_rules() {
        assert_eq!(head(b"GET / HTTP/1.1\r\n\r\n").body, BodyFraming::Empty);
        assert_eq!(
            head(b"GET / HTTP/1.1\r\nContent-Length: 007\r\n\r\n").body,
            BodyFraming::Length(7)
        );
        let h = head(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(
            (h.body, h.must_close, h.should_close()),
            (BodyFraming::Chunked, true, true)
        );
        let err = parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: foo, chunked\r\n\r\n")
            .err()
            .unwrap();
        assert_eq!(
            (err.status(), err.log_text().as_str()),
            (Some(501), "Unsupported transfer coding: 'foo, chunked'")
        );
        for bad in [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"[..],
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        ] {
            let err = parse(bad).err().unwrap();
            assert!(
                err.has_request() && err.name() == "InvalidHeader",
                "{err:?}"
            );
        }
    }

    #[test]
    fn keep_alive_rule() {
        assert!(!head(b"GET / HTTP/1.1\r\n\r\n").should_close());
        assert!(head(b"GET / HTTP/1.0\r\n\r\n").should_close());
        assert!(!head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").should_close());
        assert!(
            head(b"GET / HTTP/1.1\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n")
                .should_close()
        );
        assert!(head(b"GET / HTTP/1.0\r\nConnection: keep-alive, x\r\n\r\n").should_close());
        assert!(head(b"CONNECT a:1 HTTP/1.1\r\n\r\n").should_close());
        assert!(!head(b"CONNECT a:1 HTTP/1.1\r\n\r\n").client_closes());
        assert!(head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").client_closes());
        assert!(!head(b"GET / HTTP/1.1\r\n\r\n").client_closes());
    }

    #[test]
    fn eof_reports() {
        let cfg = ParserConfig::default();
        let peer = Peer::unix();
        assert_eq!(parse_head_eof(b"", &cfg, &peer, true), None);
        let err = parse_head_eof(b"GET /foo/bar HTTP/1.0\r\nbaz", &cfg, &peer, true).unwrap();
        assert_eq!(err.log_text(), "No more data after: b'baz'");
        let err = parse_head_eof(b"\r", &cfg, &peer, true).unwrap();
        assert_eq!(err.log_text(), "No more data after: b'\\r'");
    }

    #[test]
    fn bare_lf() {
        let err = parse(b"GET / HTTP/1.1\nHost: x\r\n\r\n").err().unwrap();
        assert_eq!(
            err.log_text(),
            "Invalid HTTP request line: 'bare LF as line terminator'"
        );
        let err = parse(b"GET / HTTP/1.1\r\nHost: x\n").err().unwrap();
        assert_eq!(
            err.log_text(),
            "Invalid HTTP Header: 'bare LF as line terminator'"
        );
    }

    #[test]
    fn scheme_from_tls_and_headers() {
        let peer = Peer {
            is_tls: true,
            ..Peer::unix()
        };
        let cfg = ParserConfig::default();
        let Ok(Status::Complete((h, _))) =
            parse_head(b"GET / HTTP/1.1\r\n\r\n", &cfg, &peer, false)
        else {
            panic!()
        };
        assert_eq!(h.scheme, "https");
        let buf = b"GET / HTTP/1.1\r\nX-Forwarded-Proto: http\r\n\r\n";
        let Ok(Status::Complete((h, _))) = parse_head(buf, &cfg, &peer, false) else {
            panic!()
        };
        assert_eq!(h.scheme, "http");
    }
}
