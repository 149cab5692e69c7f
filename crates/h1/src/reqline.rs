//! Validation of the request line (`method SP target SP version`), in gunicorn's order:
//! method, target characters, target form, target split, version.

use memchr::memchr;

use crate::config::ParserConfig;
use crate::error::{BadVersion, ParseError};
use crate::target::split_request_uri;
use crate::text::{is_token, latin1, offset_in};

/// A request line that passed every check: its method and target in one string (both are
/// ASCII once checked), the parts of the target as ranges of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestLine {
    /// The method, then the target.
    text: String,
    method_len: usize,
    path: (usize, usize),
    query: (usize, usize),
    fragment: (usize, usize),
    pub version: (u8, u8),
}

impl RequestLine {
    /// Its text's buffer, leaving an empty one (for [`crate::spare`]).
    pub(crate) fn take_text(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.text).into_bytes()
    }

    /// The bytes its text holds on to.
    pub(crate) fn capacity(&self) -> usize {
        self.text.capacity()
    }

    pub fn method(&self) -> &str {
        &self.text[..self.method_len]
    }

    pub fn uri(&self) -> &str {
        &self.text[self.method_len..]
    }

    pub fn path(&self) -> &str {
        &self.text[self.path.0..self.path.1]
    }

    pub fn query(&self) -> &str {
        &self.text[self.query.0..self.query.1]
    }

    pub fn fragment(&self) -> &str {
        &self.text[self.fragment.0..self.fragment.1]
    }
}

/// Parses the request line (without its CRLF).
pub(crate) fn parse_request_line(
    line: &[u8],
    cfg: &ParserConfig,
) -> Result<RequestLine, ParseError> {
    let bad_line = || ParseError::InvalidRequestLine(latin1(line));
    // Python's `line.split(b" ", 2)`: the version part keeps any further spaces.
    let sp1 = memchr(b' ', line).ok_or_else(bad_line)?;
    let sp2 = sp1 + 1 + memchr(b' ', &line[sp1 + 1..]).ok_or_else(bad_line)?;
    let (method, target, version) = (&line[..sp1], &line[sp1 + 1..sp2], &line[sp2 + 1..]);

    if !cfg.permit_unconventional_http_method
        && (method.iter().any(|&b| b.is_ascii_lowercase() || b == b'#')
            || !(3..=20).contains(&method.len()))
    {
        return Err(ParseError::InvalidRequestMethod(latin1(method)));
    }
    if !is_token(method) {
        return Err(ParseError::InvalidRequestMethod(latin1(method)));
    }
    // The method and the target, one after the other: a token is ASCII, and so is the
    // target once checked below, so the bytes are their latin-1 text as they are.
    let mut text = crate::spare::line_buffer(method.len() + target.len());
    text.extend_from_slice(method);
    if cfg.casefold_http_method {
        text.make_ascii_uppercase();
    }
    let method = text.as_slice();

    // RFC 9112 3.2: the target is printable ASCII; everything else must be percent-encoded.
    if target.is_empty() || target.iter().any(|&b| !(0x21..=0x7e).contains(&b)) {
        return Err(bad_line());
    }
    // Asterisk-form only for OPTIONS; authority-form (or anything not origin/absolute)
    // only for CONNECT.
    if target == b"*" && method != b"OPTIONS" {
        return Err(bad_line());
    }
    if method != b"CONNECT"
        && target != b"*"
        && !target.starts_with(b"/")
        && memchr::memmem::find(target, b"://").is_none()
    {
        return Err(bad_line());
    }
    let parts = split_request_uri(target).map_err(|_| bad_line())?;

    let version = parse_version(version, cfg)?;
    // The parts borrow from the target, which follows the method in `text`.
    let method_len = text.len();
    let range = |part: &[u8]| match offset_in(target, part) {
        Some(offset) => (method_len + offset, method_len + offset + part.len()),
        // An absent part may be any empty slice, not one of the target.
        None => {
            debug_assert!(part.is_empty());
            (method_len, method_len)
        }
    };
    let (path, query, fragment) = (range(parts.path), range(parts.query), range(parts.fragment));
    text.extend_from_slice(target);
    Ok(RequestLine {
        text: String::from_utf8(text).map_err(|_| bad_line())?,
        method_len,
        path,
        query,
        fragment,
        version,
    })
}

/// `HTTP/(\d)\.(\d)` in full, then the 1.0 ≤ v < 2.0 rule unless unconventional versions
/// are permitted.
fn parse_version(text: &[u8], cfg: &ParserConfig) -> Result<(u8, u8), ParseError> {
    let version = match text {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            (major - b'0', minor - b'0')
        }
        _ => {
            return Err(ParseError::InvalidHTTPVersion(BadVersion::Text(latin1(
                text,
            ))));
        }
    };
    if version.0 != 1 && !cfg.permit_unconventional_http_version {
        return Err(ParseError::InvalidHTTPVersion(BadVersion::Tuple(
            version.0, version.1,
        )));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str, cfg: &ParserConfig) -> Result<RequestLine, ParseError> {
        parse_request_line(line.as_bytes(), cfg)
    }

    #[test]
    fn methods() {
        let cfg = ParserConfig::default();
        assert!(parse("GET / HTTP/1.1", &cfg).is_ok());
        for bad in [
            "get / HTTP/1.1",
            "GE / HTTP/1.1",
            "G#T / HTTP/1.1",
            "GET: / HTTP/1.1",
        ] {
            assert_eq!(
                parse(bad, &cfg).err().unwrap().name(),
                "InvalidRequestMethod",
                "{bad}"
            );
        }
        let mut lax = ParserConfig {
            permit_unconventional_http_method: true,
            ..Default::default()
        };
        assert_eq!(parse("ge / HTTP/1.1", &lax).unwrap().method(), "ge");
        lax.casefold_http_method = true;
        assert_eq!(parse("ge / HTTP/1.1", &lax).unwrap().method(), "GE");
        assert!(parse("g:t / HTTP/1.1", &lax).is_err());
    }

    #[test]
    fn versions() {
        let cfg = ParserConfig::default();
        assert_eq!(parse("GET / HTTP/1.9", &cfg).unwrap().version, (1, 9));
        let err = parse("GET / HTTP/2.0", &cfg).err().unwrap();
        assert_eq!(err.log_text(), "Invalid HTTP Version: (2, 0)");
        let err = parse("GET /x y HTTP/1.1", &cfg).err().unwrap();
        assert_eq!(err.log_text(), "Invalid HTTP Version: 'y HTTP/1.1'");
        let lax = ParserConfig {
            permit_unconventional_http_version: true,
            ..Default::default()
        };
        assert_eq!(parse("GET / HTTP/0.9", &lax).unwrap().version, (0, 9));
    }

    #[test]
    fn targets() {
        let cfg = ParserConfig::default();
        let line = parse("OPTIONS * HTTP/1.1", &cfg).unwrap();
        assert_eq!((line.uri(), line.path()), ("*", "*"));
        let line = parse("CONNECT example.com:443 HTTP/1.1", &cfg).unwrap();
        assert_eq!(line.path(), "443");
        for bad in [
            "GET * HTTP/1.1",
            "GET foo HTTP/1.1",
            "GET  HTTP/1.1",
            "GET / HTTP/1.1 x",
        ] {
            assert!(parse(bad, &cfg).is_err(), "{bad}");
        }
        assert_eq!(
            parse("GET  HTTP/1.1", &cfg).err().unwrap().log_text(),
            "Invalid HTTP request line: 'GET  HTTP/1.1'"
        );
    }
}
