//! Parsing a header (or trailer) section line by line, with gunicorn's limits, obs-fold
//! handling and header policy (singletons, `Expect`, secure-scheme headers, `_` names).

use crate::config::{HeaderMapPolicy, ParserConfig};
use crate::error::ParseError;
use crate::fields::Fields;
use crate::text::{
    find_crlf, is_bad_value_byte, is_token, latin1, latin1_upper, trim_end_sp_htab, trim_sp_htab,
};

/// The settings that shape header-line parsing. Copied out of [`ParserConfig`] so a body
/// decoder can parse trailers without cloning the whole config.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LineRules {
    pub limit_fields: usize,
    pub limit_field_size: usize,
    pub permit_obsolete_folding: bool,
    pub strip_header_spaces: bool,
    pub header_map: HeaderMapPolicy,
}

impl LineRules {
    pub(crate) fn new(cfg: &ParserConfig) -> Self {
        Self {
            limit_fields: cfg.limit_request_fields,
            limit_field_size: cfg.limit_request_field_size,
            permit_obsolete_folding: cfg.permit_obsolete_folding,
            strip_header_spaces: cfg.strip_header_spaces,
            header_map: cfg.header_map,
        }
    }
}

/// Policy that only applies to a request's header section, never to trailers.
pub(crate) struct HeadPolicy<'a> {
    pub version: (u8, u8),
    /// `None` when the peer is not trusted: then scheme and forwarder headers are ignored.
    pub trusted: Option<&'a ParserConfig>,
}

/// What a header section yields.
#[derive(Default)]
pub(crate) struct Section {
    pub headers: Fields,
    /// Set by the first secure-scheme header.
    pub scheme: Option<&'static str>,
    pub expect_continue: bool,
}

/// Python's `data.split(b"\r\n")`, consumed front to back with a look at the next line.
struct Lines<'a> {
    data: &'a [u8],
    /// Start of the next line, or `None` once the last line was taken.
    pos: Option<usize>,
}

impl<'a> Lines<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: Some(0) }
    }

    fn has_next(&self) -> bool {
        self.pos.is_some()
    }

    /// Whether the next line is an obs-fold continuation (starts with SP or HTAB).
    fn next_is_continuation(&self) -> bool {
        self.pos
            .is_some_and(|p| matches!(self.data.get(p), Some(b' ' | b'\t')))
    }

    fn take(&mut self) -> Option<&'a [u8]> {
        let start = self.pos?;
        let rest = &self.data[start..];
        match find_crlf(rest) {
            Some(i) => {
                self.pos = Some(start + i + 2);
                Some(&rest[..i])
            }
            None => {
                self.pos = None;
                Some(rest)
            }
        }
    }
}

/// Parses `data`, the header section without its final empty line.
pub(crate) fn parse_section(
    data: &[u8],
    rules: &LineRules,
    head: Option<&HeadPolicy<'_>>,
) -> Result<Section, ParseError> {
    let from_trailer = head.is_none();
    // The text never takes more than the section's bytes unless values hold non-ASCII bytes;
    // most requests carry a handful of headers.
    let mut section = Section {
        headers: crate::spare::fields(data.len(), 16),
        ..Section::default()
    };
    let (mut seen_host, mut seen_content_type) = (false, false);
    let mut lines = Lines::new(data);
    // Checked once: parts of an ASCII section need no check of their own.
    let ascii = if data.is_ascii() {
        std::str::from_utf8(data).ok()
    } else {
        None
    };
    let mut folded = Vec::new();

    while lines.has_next() {
        // Only kept headers count here; dropped `_` names count toward the byte limits only.
        if section.headers.len() >= rules.limit_fields {
            return Err(ParseError::LimitRequestHeaders(
                "limit request headers fields",
            ));
        }
        let Some(curr) = lines.take() else { break };
        let mut length = curr.len() + 2;
        let colon = match memchr::memchr(b':', curr) {
            Some(i) if i > 0 => i,
            _ => return Err(ParseError::header(latin1(curr))),
        };
        let mut name = &curr[..colon];
        if rules.strip_header_spaces {
            name = trim_end_sp_htab(name);
        }
        if !is_token(name) {
            return Err(ParseError::InvalidHeaderName(latin1(name)));
        }
        let raw_name = name;
        // A token is ASCII, so upper-casing cannot change its length or meaning.
        let upper_name = || latin1_upper(raw_name);
        if from_trailer && is_forbidden_trailer(name) {
            return Err(ParseError::InvalidHeaderName(upper_name()));
        }

        let mut value = trim_sp_htab(&curr[colon + 1..]);
        if lines.next_is_continuation() {
            folded.clear();
            folded.extend_from_slice(value);
            while lines.next_is_continuation() {
                if !rules.permit_obsolete_folding {
                    return Err(ParseError::ObsoleteFolding(upper_name()));
                }
                let Some(cont) = lines.take() else { break };
                length += cont.len() + 2;
                if length > rules.limit_field_size {
                    return Err(ParseError::LimitRequestHeaders(
                        "limit request headers fields size",
                    ));
                }
                folded.push(b' ');
                folded.extend_from_slice(trim_sp_htab(cont));
            }
            value = &folded;
        }
        if value.iter().any(|&b| is_bad_value_byte(b)) {
            return Err(ParseError::header(upper_name()));
        }
        if length > rules.limit_field_size {
            return Err(ParseError::LimitRequestHeaders(
                "limit request headers fields size",
            ));
        }
        let (name, value) = section.headers.push_latin1(raw_name, value, ascii);
        let kept = apply_policy(
            name,
            value,
            rules,
            head,
            &mut section.scheme,
            &mut section.expect_continue,
            &mut seen_host,
            &mut seen_content_type,
        )?;
        if !kept {
            section.headers.pop();
        }
    }
    Ok(section)
}

/// RFC 9110 6.5.1: fields that may not appear in trailers (`name` as sent: any case).
fn is_forbidden_trailer(name: &[u8]) -> bool {
    [
        "HOST",
        "CONTENT-LENGTH",
        "TRANSFER-ENCODING",
        "TRAILER",
        "AUTHORIZATION",
        "TE",
    ]
    .iter()
    .any(|f| name.eq_ignore_ascii_case(f.as_bytes()))
}

/// gunicorn's `_apply_header_policy`: may set the section's `scheme` and `expect_continue`.
/// Returns whether the header is kept.
#[allow(clippy::too_many_arguments)]
fn apply_policy(
    name: &str,
    value: &str,
    rules: &LineRules,
    head: Option<&HeadPolicy<'_>>,
    scheme_seen: &mut Option<&'static str>,
    expect_continue: &mut bool,
    seen_host: &mut bool,
    seen_content_type: &mut bool,
) -> Result<bool, ParseError> {
    // RFC 9110 5.3: a repeated singleton field makes the message ambiguous.
    let seen = match name {
        "HOST" => Some(seen_host),
        "CONTENT-TYPE" => Some(seen_content_type),
        _ => None,
    };
    if let Some(seen) = seen {
        if *seen {
            return Err(ParseError::header_with_request(name));
        }
        *seen = true;
    }

    let trusted = head.and_then(|h| h.trusted);
    if let Some(head) = head {
        if name == "EXPECT" {
            if !value.eq_ignore_ascii_case("100-continue") {
                return Err(ParseError::ExpectationFailed(value.to_owned()));
            }
            // RFC 9110 10.1.1: an HTTP/1.0 server must ignore the expectation.
            if head.version >= (1, 1) {
                *expect_continue = true;
            }
        }
        if let Some(cfg) = trusted
            && let Some((_, secure_value)) =
                cfg.secure_scheme_headers.iter().find(|(k, _)| k == name)
        {
            // The first such header decides; a later one may only agree with it.
            let scheme = if value == secure_value {
                "https"
            } else {
                "http"
            };
            match *scheme_seen {
                Some(first) if first != scheme => return Err(ParseError::InvalidSchemeHeaders),
                Some(_) => {}
                None => *scheme_seen = Some(scheme),
            }
        }
    }

    // `X_Foo` and `X-Foo` map to the same WSGI key, so underscores are only let through from
    // a trusted forwarder or when the operator explicitly asked for it.
    if name.as_bytes().contains(&b'_') {
        let forwarded =
            trusted.is_some_and(|cfg| cfg.forwarder_headers.iter().any(|h| h == name || h == "*"));
        if !forwarded {
            match rules.header_map {
                HeaderMapPolicy::Dangerous => {}
                HeaderMapPolicy::Drop => return Ok(false),
                HeaderMapPolicy::Refuse => {
                    return Err(ParseError::InvalidHeaderName(name.to_owned()));
                }
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(data: &str, cfg: &ParserConfig, trusted: bool) -> Result<Section, ParseError> {
        let head = HeadPolicy {
            version: (1, 1),
            trusted: trusted.then_some(cfg),
        };
        parse_section(data.as_bytes(), &LineRules::new(cfg), Some(&head))
    }

    #[test]
    fn basic_and_dropped() {
        let cfg = ParserConfig::default();
        let s = parse(
            "Host: a\r\nX_Y: 1\r\nSCRIPT_NAME: /p\r\nA:\t b \t",
            &cfg,
            true,
        )
        .unwrap();
        let expected = [("HOST", "a"), ("SCRIPT_NAME", "/p"), ("A", "b")];
        let got: Vec<(&str, &str)> = s.headers.iter().collect();
        assert_eq!(got, expected);
        // Untrusted peers cannot forward SCRIPT_NAME.
        assert_eq!(
            parse("SCRIPT_NAME: /p", &cfg, false).unwrap().headers.len(),
            0
        );
    }

    #[test]
    fn limits() {
        let mut cfg = ParserConfig::from_settings(0, 2, 10);
        assert!(parse("A: 1\r\nB: 2", &cfg, true).is_ok());
        let err = parse("A: 1\r\nB: 2\r\nC: 3", &cfg, true).err().unwrap();
        assert_eq!(err.log_text(), "limit request headers fields");
        // "A: 1234567" + CRLF is 12 bytes > 10.
        let err = parse("A: 1234567", &cfg, true).err().unwrap();
        assert_eq!(err.log_text(), "limit request headers fields size");
        assert!(parse("A: 12345", &cfg, true).is_ok());
        // Dropped headers do not count toward the field count.
        cfg.limit_request_field_size = 100;
        assert!(parse("A_1: 1\r\nA_2: 2\r\nA: 1\r\nB: 2", &cfg, true).is_ok());
    }

    #[test]
    fn folding() {
        let mut cfg = ParserConfig::default();
        let err = parse("Long: a\r\n  b", &cfg, true).err().unwrap();
        assert_eq!(
            err.log_text(),
            "Obsolete line folding is unacceptable: 'LONG'"
        );
        cfg.permit_obsolete_folding = true;
        let s = parse("Long: a \r\n  b\r\n\tc", &cfg, true).unwrap();
        assert_eq!(s.headers.to_pairs(), vec![("LONG".into(), "a b c".into())]);
    }

    #[test]
    fn policy() {
        let cfg = ParserConfig::default();
        let err = parse("Host: a\r\nHost: a", &cfg, true).err().unwrap();
        assert!(err.has_request());
        assert!(
            parse("Expect: 100-Continue", &cfg, true)
                .unwrap()
                .expect_continue
        );
        assert_eq!(
            parse("Expect: x", &cfg, true).err().unwrap().status(),
            Some(417)
        );
        let s = parse(
            "X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: on",
            &cfg,
            true,
        )
        .unwrap();
        assert_eq!(s.scheme, Some("https"));
        assert!(
            parse(
                "X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off",
                &cfg,
                true
            )
            .is_err()
        );
        assert_eq!(
            parse("X-Forwarded-Proto: https", &cfg, false)
                .unwrap()
                .scheme,
            None
        );
        let err = parse("Foo : bar", &cfg, true).err().unwrap();
        assert_eq!(err.log_text(), "Invalid HTTP header name: 'Foo '");
        let err = parse(": bar", &cfg, true).err().unwrap();
        assert_eq!(err.log_text(), "Invalid HTTP Header: ': bar'");
        let err = parse("A: b\x7f", &cfg, true).err().unwrap();
        assert_eq!(err.log_text(), "Invalid HTTP Header: 'A'");
    }

    #[test]
    fn trailers() {
        let cfg = ParserConfig::default();
        let rules = LineRules::new(&cfg);
        let err = parse_section(b"Te: x", &rules, None).err().unwrap();
        assert_eq!(err.log_text(), "Invalid HTTP header name: 'TE'");
        // No Expect processing and no scheme headers in trailers.
        let s = parse_section(b"Expect: nope\r\nX-Forwarded-Proto: https", &rules, None).unwrap();
        assert_eq!((s.headers.len(), s.scheme), (2, None));
    }
}
