//! Byte-level helpers shared by the parsers: latin-1 decoding, RFC 9110 token and
//! field-value character classes, SP/HTAB trimming.

/// Decodes bytes as latin-1 (one char per byte), the way gunicorn's `bytes_to_str` does.
pub(crate) fn latin1(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    push_latin1(&mut text, bytes);
    text
}

/// Appends `bytes` decoded as latin-1: ASCII as it is, any other byte as the char of that code.
pub(crate) fn push_latin1(text: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        // Pure ASCII is by far the common case and is valid UTF-8 as is.
        Ok(s) if bytes.is_ascii() => text.push_str(s),
        _ => text.extend(bytes.iter().map(|&b| char::from(b))),
    }
}

/// Where `part` starts in `whole`, when it is a slice of it.
pub(crate) fn offset_in(whole: &[u8], part: &[u8]) -> Option<usize> {
    let offset = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    (offset <= whole.len() && part.len() <= whole.len() - offset).then_some(offset)
}

/// First CRLF in `data`. Scans for LF with memchr, which beats building a substring
/// searcher for a two-byte needle that is checked on every request.
pub(crate) fn find_crlf(data: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', data)
        .find(|&i| i > 0 && data[i - 1] == b'\r')
        .map(|i| i - 1)
}

/// First CRLFCRLF in `data` (the end of a header section).
pub(crate) fn find_crlfcrlf(data: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', data)
        .find(|&i| i >= 3 && &data[i - 3..=i] == b"\r\n\r\n")
        .map(|i| i - 3)
}

/// Latin-1 decoding plus ASCII upper-casing, in one allocation (header names are tokens).
pub(crate) fn latin1_upper(bytes: &[u8]) -> String {
    if bytes.is_ascii() {
        // ASCII stays ASCII when upper-cased, so the bytes remain valid UTF-8.
        let upper = bytes.to_ascii_uppercase();
        if let Ok(s) = String::from_utf8(upper) {
            return s;
        }
    }
    bytes
        .iter()
        .map(|&b| char::from(b.to_ascii_uppercase()))
        .collect()
}

/// Encodes a string of latin-1 chars back to bytes; chars above U+00FF become `?`.
pub(crate) fn latin1_bytes(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

/// RFC 9110 `tchar`: `!#$%&'*+-.^_`|~`, digits and ASCII letters.
const fn tchar_class(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`'
        | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// [`tchar_class`] as a table: one load per byte on the per-request paths.
static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = tchar_class(b as u8);
        b += 1;
    }
    table
};

/// RFC 9110 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// A non-empty run of `tchar`s (gunicorn's `TOKEN_RE.fullmatch`).
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Bytes gunicorn refuses in a field value: controls other than HTAB, and DEL.
pub(crate) const fn is_bad_value_byte(b: u8) -> bool {
    matches!(b, 0x00..=0x08 | 0x0a..=0x1f | 0x7f)
}

/// Python's `s.strip(" \t")`.
pub(crate) fn trim_sp_htab(s: &[u8]) -> &[u8] {
    &s[sp_htab_trimmed(s)]
}

/// Where `s.strip(" \t")` leaves `s`. The bounds sit next to ASCII bytes (or at the ends), so
/// they are char boundaries of any `str` whose bytes `s` are.
pub fn sp_htab_trimmed(s: &[u8]) -> std::ops::Range<usize> {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    start..start + trim_end_sp_htab(&s[start..]).len()
}

/// Python's `s.rstrip(" \t")`.
pub(crate) fn trim_end_sp_htab(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_of_parts() {
        let whole = b"GET /a?b";
        assert_eq!(offset_in(whole, &whole[4..6]), Some(4));
        assert_eq!(offset_in(whole, &whole[8..]), Some(8));
        assert_eq!(offset_in(whole, b"/a"), None);
        assert_eq!(offset_in(&whole[..4], &whole[3..6]), None);
        assert_eq!(latin1(b"caf\xe9"), "caf\u{e9}");
    }

    #[test]
    fn latin1_round_trip() {
        let all: Vec<u8> = (0..=255).collect();
        let s = latin1(&all);
        assert_eq!(s.chars().count(), 256);
        assert_eq!(latin1_bytes(&s), all);
        assert_eq!(latin1(b"plain"), "plain");
    }

    #[test]
    fn tchar_table_matches_the_class() {
        for b in 0..=255u8 {
            assert_eq!(is_tchar(b), tchar_class(b), "byte {b}");
        }
        assert!(is_token(b"X-Forwarded_For!"));
        assert!(!is_token(b"") && !is_token(b"a b") && !is_token(b"a:"));
        assert_eq!(latin1_upper(b"x-\xe9a"), "X-\u{e9}A");
    }

    #[test]
    fn searches() {
        assert_eq!(find_crlf(b"a\nb\r\n"), Some(3));
        assert_eq!(find_crlf(b"\nx"), None);
        assert_eq!(find_crlfcrlf(b"a\r\nb\n\r\n\r\n"), Some(5));
        assert_eq!(find_crlfcrlf(b"\r\n\r\r\n"), None);
        let long = [&[b'a'; 100][..], b"\r\n\r\n", &[b'b'; 100][..], b"\n"].concat();
        assert_eq!(find_crlfcrlf(&long), Some(100));
        assert_eq!(find_crlf(&long[101..]), Some(1));
        assert_eq!(latin1_upper(b"x-Foo"), "X-FOO");
    }

    #[test]
    fn trimming() {
        assert_eq!(trim_sp_htab(b" \t a b\t "), b"a b");
        assert_eq!(trim_sp_htab(b" \t "), b"");
        assert_eq!(trim_end_sp_htab(b" x \t"), b" x");
    }

    #[test]
    fn tokens() {
        assert!(is_token(b"X-Foo_bar!#$%&'*+-.^`|~09"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a:b"));
        assert!(!is_token(&[b'a', 0xdf]));
    }
}
