//! Splitting a request target into path, query and fragment the way gunicorn does it
//! (`util.split_request_uri`, i.e. Python 3.11's `urllib.parse.urlsplit`), including the
//! cases where `urlsplit` raises `ValueError`.

use std::net::{Ipv4Addr, Ipv6Addr};

use memchr::memchr;

/// The parts of a request target gunicorn keeps. Each borrows from the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetParts<'a> {
    pub path: &'a [u8],
    pub query: &'a [u8],
    pub fragment: &'a [u8],
}

/// `urlsplit`'s `scheme_chars`.
fn is_scheme_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

/// Splits `rest` at the first `b`, returning the text before it and (if found) after it.
fn split_at_byte(rest: &[u8], b: u8) -> (&[u8], &[u8]) {
    match memchr(b, rest) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[]),
    }
}

/// Fragment first, then query, as `urlsplit` does.
fn split_path_query_fragment(rest: &[u8]) -> TargetParts<'_> {
    let (rest, fragment) = split_at_byte(rest, b'#');
    let (path, query) = split_at_byte(rest, b'?');
    TargetParts {
        path,
        query,
        fragment,
    }
}

/// Where Python's `urlsplit` raises `ValueError` (unbalanced brackets, a bracketed host that
/// is not an IPv6 or IPvFuture literal). gunicorn answers it with `InvalidRequestLine`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidTarget;

/// gunicorn's `split_request_uri`.
///
/// Only meant for targets gunicorn already vetted (bytes 0x21–0x7E), so `urlsplit`'s
/// whitespace stripping and its NFKC netloc check can never apply.
pub fn split_request_uri(uri: &[u8]) -> Result<TargetParts<'_>, InvalidTarget> {
    // gunicorn treats a leading `//` as an absolute path, never as a netloc.
    if uri.starts_with(b"//") {
        return Ok(split_path_query_fragment(uri));
    }
    let mut url = uri;
    if let Some(colon) = memchr(b':', url)
        && colon > 0
        && url[0].is_ascii_alphabetic()
        && url[..colon].iter().all(|&b| is_scheme_char(b))
    {
        // This is why `CONNECT example.com:443` ends up with path `443`.
        url = &url[colon + 1..];
    }
    if let Some(after) = url.strip_prefix(b"//") {
        let end = after
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(after.len());
        check_netloc(&after[..end])?;
        url = &after[end..];
    }
    Ok(split_path_query_fragment(url))
}

/// `urlsplit`'s bracket checks on the netloc: balanced brackets, and a bracketed host that is
/// an IPv6 address (optionally with a zone) or an IPvFuture literal.
fn check_netloc(netloc: &[u8]) -> Result<(), InvalidTarget> {
    let open = memchr(b'[', netloc);
    let close = memchr(b']', netloc);
    match (open, close) {
        (None, None) => Ok(()),
        (Some(open), Some(_)) => {
            let after = &netloc[open + 1..];
            let host = &after[..memchr(b']', after).unwrap_or(after.len())];
            check_bracketed_host(host)
        }
        _ => Err(InvalidTarget),
    }
}

/// Python's `_check_bracketed_host`.
fn check_bracketed_host(host: &[u8]) -> Result<(), InvalidTarget> {
    if let Some(rest) = host.strip_prefix(b"v") {
        // `\Av[a-fA-F0-9]+\..+\Z`
        let hex = rest.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        return if hex > 0 && rest.len() > hex + 1 && rest[hex] == b'.' {
            Ok(())
        } else {
            Err(InvalidTarget)
        };
    }
    let text = std::str::from_utf8(host).map_err(|_| InvalidTarget)?;
    // `ipaddress.ip_address` tries IPv4 first; an IPv4 address in brackets is an error.
    if text.parse::<Ipv4Addr>().is_ok() {
        return Err(InvalidTarget);
    }
    // Python accepts a `%zone` suffix on IPv6 addresses; Rust's parser does not.
    let addr = match text.split_once('%') {
        Some((addr, zone)) if !zone.is_empty() && !zone.contains('%') => addr,
        Some(_) => return Err(InvalidTarget),
        None => text,
    };
    addr.parse::<Ipv6Addr>()
        .map(|_| ())
        .map_err(|_| InvalidTarget)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str) -> Option<(String, String, String)> {
        let p = split_request_uri(uri.as_bytes()).ok()?;
        let s = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        Some((s(p.path), s(p.query), s(p.fragment)))
    }

    fn t(path: &str, query: &str, fragment: &str) -> Option<(String, String, String)> {
        Some((path.into(), query.into(), fragment.into()))
    }

    #[test]
    fn origin_and_absolute_forms() {
        assert_eq!(parts("/a/b?x=1#f"), t("/a/b", "x=1", "f"));
        assert_eq!(parts("/a#f?x"), t("/a", "", "f?x"));
        assert_eq!(parts("///keeping_slashes"), t("///keeping_slashes", "", ""));
        assert_eq!(parts("//host/p?q"), t("//host/p", "q", ""));
        assert_eq!(parts("http://example.com/foo?q=1"), t("/foo", "q=1", ""));
        assert_eq!(
            parts("http://user:pass@example.com:8080/foo?q="),
            t("/foo", "q=", "")
        );
        assert_eq!(parts("http://example.com"), t("", "", ""));
        assert_eq!(parts("*"), t("*", "", ""));
        assert_eq!(parts("/x:y"), t("/x:y", "", ""));
    }

    #[test]
    fn authority_form_quirks() {
        assert_eq!(parts("example.com:443"), t("443", "", ""));
        assert_eq!(parts("[::1]:443"), t("[::1]:443", "", ""));
        assert_eq!(parts("1.2.3.4:80"), t("1.2.3.4:80", "", ""));
    }

    #[test]
    fn bracket_errors() {
        assert_eq!(parts("http://[::1]:8080/foo"), t("/foo", "", ""));
        assert_eq!(parts("http://[fe80::1%25eth0]/"), t("/", "", ""));
        assert_eq!(parts("http://[v1.x]/"), t("/", "", ""));
        assert!(parts("s://]ufd/:").is_none());
        assert!(parts("http://[::1/").is_none());
        assert!(parts("http://[1.2.3.4]/").is_none());
        assert!(parts("http://[nothost]/").is_none());
        assert!(parts("http://[v1.]/").is_none());
    }
}
