//! The errors the parser raises (one variant per gunicorn exception class), how gunicorn's
//! worker turns each into a status, reason and message, and the HTML error page it writes.

use std::fmt;

use crate::repr::{py_repr_bytes, py_repr_str};
use crate::text::latin1_bytes;

/// The value an `InvalidHTTPVersion` carries: gunicorn raises it either with the version
/// text (`'FTP/1.1'`) or with the parsed tuple (`(2, 0)`), and `str()` reprs whichever it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadVersion {
    Text(String),
    Tuple(u8, u8),
}

/// A request gunicorn refuses, or a connection that ended mid-request.
///
/// Strings hold latin-1 decoded text, exactly what gunicorn stored in the exception.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The request line (or `"bare LF as line terminator"`).
    InvalidRequestLine(String),
    InvalidRequestMethod(String),
    InvalidHTTPVersion(BadVersion),
    /// A header name or whole header line. `with_request` is set when gunicorn attached the
    /// request to the exception, which makes the worker write an access-log line for it.
    InvalidHeader {
        hdr: String,
        with_request: bool,
    },
    InvalidHeaderName(String),
    ObsoleteFolding(String),
    InvalidSchemeHeaders,
    InvalidChunkSize(Vec<u8>),
    ChunkMissingTerminator(Vec<u8>),
    /// `"bare CR not allowed"` or `"invalid chunk extension"`.
    InvalidChunkExtension(&'static str),
    InvalidProxyLine(String),
    InvalidProxyHeader(String),
    /// The peer IP (as text) that may not send PROXY headers.
    ForbiddenProxyRequest(String),
    LimitRequestLine {
        size: usize,
        limit: usize,
    },
    /// One of gunicorn's fixed messages, e.g. `"limit request headers fields"`.
    LimitRequestHeaders(&'static str),
    ExpectationFailed(String),
    UnsupportedTransferCoding(String),
    /// The peer closed mid-request. gunicorn records what it had buffered, or nothing
    /// (`None`) inside a body. No response is sent for this.
    NoMoreData(Option<Vec<u8>>),
}

impl ParseError {
    pub(crate) fn header(hdr: impl Into<String>) -> Self {
        Self::InvalidHeader {
            hdr: hdr.into(),
            with_request: false,
        }
    }

    pub(crate) fn header_with_request(hdr: impl Into<String>) -> Self {
        Self::InvalidHeader {
            hdr: hdr.into(),
            with_request: true,
        }
    }

    /// gunicorn's exception class name (the vectors' `exception` field).
    pub fn name(&self) -> &'static str {
        match self {
            Self::InvalidRequestLine(_) => "InvalidRequestLine",
            Self::InvalidRequestMethod(_) => "InvalidRequestMethod",
            Self::InvalidHTTPVersion(_) => "InvalidHTTPVersion",
            Self::InvalidHeader { .. } => "InvalidHeader",
            Self::InvalidHeaderName(_) => "InvalidHeaderName",
            Self::ObsoleteFolding(_) => "ObsoleteFolding",
            Self::InvalidSchemeHeaders => "InvalidSchemeHeaders",
            Self::InvalidChunkSize(_) => "InvalidChunkSize",
            Self::ChunkMissingTerminator(_) => "ChunkMissingTerminator",
            Self::InvalidChunkExtension(_) => "InvalidChunkExtension",
            Self::InvalidProxyLine(_) => "InvalidProxyLine",
            Self::InvalidProxyHeader(_) => "InvalidProxyHeader",
            Self::ForbiddenProxyRequest(_) => "ForbiddenProxyRequest",
            Self::LimitRequestLine { .. } => "LimitRequestLine",
            Self::LimitRequestHeaders(_) => "LimitRequestHeaders",
            Self::ExpectationFailed(_) => "ExpectationFailed",
            Self::UnsupportedTransferCoding(_) => "UnsupportedTransferCoding",
            Self::NoMoreData(_) => "NoMoreData",
        }
    }

    /// The status gunicorn's WSGI workers answer with; `None` means close without a response.
    pub fn status(&self) -> Option<u16> {
        Some(match self {
            Self::NoMoreData(_) => return None,
            Self::LimitRequestLine { .. } => 414,
            Self::LimitRequestHeaders(_) => 431,
            Self::ExpectationFailed(_) => 417,
            Self::ForbiddenProxyRequest(_) => 403,
            Self::UnsupportedTransferCoding(_) => 501,
            // Missing from the worker's client-error list, so it is answered like an
            // application crash.
            Self::InvalidProxyHeader(_) => 500,
            _ => 400,
        })
    }

    /// The reason phrase of the status line. 501 keeps "Bad Request", as gunicorn does.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoMoreData(_) => "",
            Self::LimitRequestLine { .. } => "URI Too Long",
            Self::LimitRequestHeaders(_) => "Request Header Fields Too Large",
            Self::ExpectationFailed(_) => "Expectation Failed",
            Self::ForbiddenProxyRequest(_) => "Forbidden",
            Self::InvalidProxyHeader(_) => "Internal Server Error",
            _ => "Bad Request",
        }
    }

    /// The (unescaped) message placed in the error page body, per `Worker.handle_error`.
    pub fn message(&self) -> String {
        match self {
            Self::InvalidRequestLine(_) => format!("Invalid Request Line '{self}'"),
            Self::InvalidRequestMethod(_) => format!("Invalid Method '{self}'"),
            Self::InvalidHTTPVersion(_) => format!("Invalid HTTP Version '{self}'"),
            Self::LimitRequestHeaders(_) => format!("Error parsing headers: '{self}'"),
            Self::InvalidProxyLine(_) => format!("'{self}'"),
            Self::ForbiddenProxyRequest(_) => "Request forbidden".to_owned(),
            Self::InvalidProxyHeader(_) | Self::NoMoreData(_) => String::new(),
            _ => self.to_string(),
        }
    }

    /// `str(exc)`: what gunicorn logs in `Invalid request from ip=%s: %s`.
    pub fn log_text(&self) -> String {
        self.to_string()
    }

    /// Whether gunicorn has a request object for this error (it then writes an access-log
    /// line with status 400): duplicate Host/Content-Type and the CL/TE framing errors.
    pub fn has_request(&self) -> bool {
        matches!(
            self,
            Self::InvalidHeader {
                with_request: true,
                ..
            }
        )
    }

    /// gunicorn's complete error response for this error, or `None` for `NoMoreData`.
    pub fn response(&self) -> Option<Vec<u8>> {
        self.status()
            .map(|status| error_page(status, self.reason(), &self.message()))
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidRequestLine(s) => {
                write!(f, "Invalid HTTP request line: {}", py_repr_str(s))
            }
            Self::InvalidRequestMethod(s) => write!(f, "Invalid HTTP method: {}", py_repr_str(s)),
            Self::InvalidHTTPVersion(BadVersion::Text(s)) => {
                write!(f, "Invalid HTTP Version: {}", py_repr_str(s))
            }
            Self::InvalidHTTPVersion(BadVersion::Tuple(major, minor)) => {
                write!(f, "Invalid HTTP Version: ({major}, {minor})")
            }
            Self::InvalidHeader { hdr, .. } => {
                write!(f, "Invalid HTTP Header: {}", py_repr_str(hdr))
            }
            Self::InvalidHeaderName(s) => write!(f, "Invalid HTTP header name: {}", py_repr_str(s)),
            Self::ObsoleteFolding(s) => {
                write!(
                    f,
                    "Obsolete line folding is unacceptable: {}",
                    py_repr_str(s)
                )
            }
            Self::InvalidSchemeHeaders => f.write_str("Contradictory scheme headers"),
            Self::InvalidChunkSize(b) => write!(f, "Invalid chunk size: {}", py_repr_bytes(b)),
            Self::ChunkMissingTerminator(b) => {
                write!(
                    f,
                    "Invalid chunk terminator is not '\\r\\n': {}",
                    py_repr_bytes(b)
                )
            }
            Self::InvalidChunkExtension(reason) => write!(f, "Invalid chunk extension: {reason}"),
            Self::InvalidProxyLine(s) => write!(f, "Invalid PROXY line: {}", py_repr_str(s)),
            Self::InvalidProxyHeader(s) => write!(f, "Invalid PROXY header: {s}"),
            Self::ForbiddenProxyRequest(host) => {
                write!(f, "Proxy request from {} not allowed", py_repr_str(host))
            }
            Self::LimitRequestLine { size, limit } => {
                write!(f, "Request Line is too large ({size} > {limit})")
            }
            Self::LimitRequestHeaders(msg) => f.write_str(msg),
            Self::ExpectationFailed(s) => {
                write!(f, "Unable to comply with expectation: {}", py_repr_str(s))
            }
            Self::UnsupportedTransferCoding(s) => {
                write!(f, "Unsupported transfer coding: {}", py_repr_str(s))
            }
            Self::NoMoreData(None) => f.write_str("No more data after: None"),
            Self::NoMoreData(Some(b)) => write!(f, "No more data after: {}", py_repr_bytes(b)),
        }
    }
}

impl std::error::Error for ParseError {}

/// Python's `html.escape(s, quote=True)`.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// gunicorn's `util.write_error` response, byte for byte: an HTTP/1.1 status line,
/// `Connection: close`, `Content-Type: text/html`, `Content-Length` and a small HTML page
/// with the escaped message, all latin-1 encoded.
pub fn error_page(status: u16, reason: &str, message: &str) -> Vec<u8> {
    let body = format!(
        "<html>\n  <head>\n    <title>{reason}</title>\n  </head>\n  <body>\n    <h1><p>{reason}</p></h1>\n    {}\n  </body>\n</html>\n",
        html_escape(message)
    );
    let body = latin1_bytes(&body);
    // gunicorn encodes the whole response as latin-1, the reason included.
    let mut out = latin1_bytes(&format!(
        "HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generated with gunicorn 27.0.1: `util.write_error(sock, 400, "Bad Request",
    /// "Invalid HTTP Header: 'HOST'")`.
    #[test]
    fn page_matches_gunicorn_400() {
        let expected: &[u8] = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/html\r\nContent-Length: 158\r\n\r\n<html>\n  <head>\n    <title>Bad Request</title>\n  </head>\n  <body>\n    <h1><p>Bad Request</p></h1>\n    Invalid HTTP Header: &#x27;HOST&#x27;\n  </body>\n</html>\n";
        let err = ParseError::header_with_request("HOST");
        assert_eq!(err.response().unwrap(), expected);
        assert!(err.has_request());
    }

    /// Generated with gunicorn 27.0.1: `util.write_error(sock, 500, "Internal Server Error", "")`.
    #[test]
    fn page_matches_gunicorn_500() {
        let expected: &[u8] = b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Type: text/html\r\nContent-Length: 141\r\n\r\n<html>\n  <head>\n    <title>Internal Server Error</title>\n  </head>\n  <body>\n    <h1><p>Internal Server Error</p></h1>\n    \n  </body>\n</html>\n";
        let err = ParseError::InvalidProxyHeader("unsupported version 1".into());
        assert_eq!(err.response().unwrap(), expected);
    }

    /// Generated with gunicorn 27.0.1 from `LimitRequestHeaders("max buffer headers")` and
    /// a non-ASCII method, whose repr keeps `ß` but escapes `\x9f`.
    #[test]
    fn page_matches_gunicorn_431_and_latin1() {
        let expected: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Type: text/html\r\nContent-Length: 214\r\n\r\n<html>\n  <head>\n    <title>Request Header Fields Too Large</title>\n  </head>\n  <body>\n    <h1><p>Request Header Fields Too Large</p></h1>\n    Error parsing headers: &#x27;max buffer headers&#x27;\n  </body>\n</html>\n";
        assert_eq!(
            ParseError::LimitRequestHeaders("max buffer headers")
                .response()
                .unwrap(),
            expected
        );
        let err = ParseError::InvalidRequestMethod("GET\u{df}\u{9f}".into());
        let page = err.response().unwrap();
        assert!(
            page.windows(5).any(|w| w == b"GET\xdf\\"),
            "latin-1 encoded ß"
        );
        assert_eq!(
            err.message(),
            "Invalid Method 'Invalid HTTP method: 'GET\u{df}\\x9f''"
        );
    }

    #[test]
    fn statuses_and_reasons() {
        let cases = [
            (
                ParseError::UnsupportedTransferCoding("foo, chunked".into()),
                501,
                "Bad Request",
            ),
            (
                ParseError::LimitRequestLine {
                    size: 4112,
                    limit: 4094,
                },
                414,
                "URI Too Long",
            ),
            (
                ParseError::ExpectationFailed("x".into()),
                417,
                "Expectation Failed",
            ),
            (
                ParseError::ForbiddenProxyRequest("10.0.0.1".into()),
                403,
                "Forbidden",
            ),
            (ParseError::InvalidSchemeHeaders, 400, "Bad Request"),
        ];
        for (err, status, reason) in cases {
            assert_eq!(err.status(), Some(status), "{err:?}");
            assert_eq!(err.reason(), reason, "{err:?}");
        }
        assert_eq!(ParseError::NoMoreData(None).status(), None);
        assert_eq!(
            ParseError::NoMoreData(None).log_text(),
            "No more data after: None"
        );
        assert_eq!(
            ParseError::ForbiddenProxyRequest("10.0.0.1".into()).log_text(),
            "Proxy request from '10.0.0.1' not allowed"
        );
        assert_eq!(
            ParseError::InvalidHTTPVersion(BadVersion::Tuple(2, 0)).message(),
            "Invalid HTTP Version 'Invalid HTTP Version: (2, 0)'"
        );
        assert_eq!(
            ParseError::ChunkMissingTerminator(b"\r".to_vec()).log_text(),
            "Invalid chunk terminator is not '\\r\\n': b'\\r'"
        );
    }
}
