//! Incremental request-body decoding: Content-Length bodies and chunked bodies with
//! gunicorn's chunk-size, chunk-extension, terminator and trailer rules.

use memchr::memchr;

use crate::config::ParserConfig;
use crate::error::ParseError;
use crate::head::{BodyFraming, has_bare_lf};
use crate::headers::{LineRules, parse_section};
use crate::text::{find_crlf, find_crlfcrlf, is_tchar, trim_end_sp_htab};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Content-Length body with this many bytes still to come.
    Length(u64),
    /// Waiting for a complete chunk-size line.
    SizeLine,
    /// Inside chunk data.
    Data(u64),
    /// After chunk data, waiting for its CRLF.
    DataEnd,
    /// After the last chunk, waiting for the trailer section.
    Trailers,
    Done,
}

/// Decodes one request body from bytes the caller holds.
///
/// `decode` never keeps input: it reports how many bytes it consumed, and the caller keeps
/// the rest at the front of its buffer and passes it again with more bytes appended. So the
/// caller can decode straight out of its read buffer, and pipelined bytes after the body are
/// never touched. Errors are raised at the same points gunicorn raises them, given the bytes
/// received so far.
#[derive(Clone, Debug)]
pub struct BodyDecoder {
    state: State,
    rules: LineRules,
    /// The bytes seen after chunk data while fewer than two had arrived; reported as the bad
    /// terminator if the connection ends there.
    partial_terminator: Vec<u8>,
    trailers: Vec<(String, String)>,
}

impl BodyDecoder {
    pub fn new(framing: &BodyFraming, cfg: &ParserConfig) -> Self {
        let state = match *framing {
            BodyFraming::Empty | BodyFraming::Length(0) => State::Done,
            BodyFraming::Length(n) => State::Length(n),
            BodyFraming::Chunked => State::SizeLine,
        };
        Self {
            state,
            rules: LineRules::new(cfg),
            partial_terminator: Vec::new(),
            trailers: Vec::new(),
        }
    }

    /// Whether the whole body (and for chunked bodies the trailer section) has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The trailer fields of a chunked body (upper-cased names), once it is done.
    pub fn trailers(&self) -> &[(String, String)] {
        &self.trailers
    }

    /// Bytes of body data still expected when that is known (Content-Length bodies, or the
    /// current chunk): a hint for how much to read next.
    pub fn remaining_hint(&self) -> Option<u64> {
        match self.state {
            State::Length(n) | State::Data(n) => Some(n),
            _ => None,
        }
    }

    /// Bytes still to come of a Content-Length body (`None` for a chunked body, or once done).
    pub fn length_left(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            _ => None,
        }
    }

    /// Records that the caller took `n` bytes of a Content-Length body straight from the
    /// connection (as [`BodyDecoder::decode`] would have, without copying them to an output).
    pub fn skip_length(&mut self, n: u64) {
        if let State::Length(left) = self.state {
            let left = left.saturating_sub(n);
            self.state = if left == 0 {
                State::Done
            } else {
                State::Length(left)
            };
        }
    }

    /// Decodes from `input`, appending body bytes to `out`. Returns how many input bytes were
    /// consumed; fewer than `input.len()` means more input is needed first, or the body ended.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ParseError> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                State::Done => return Ok(pos),
                State::Length(left) | State::Data(left) => {
                    let take = usize::try_from(left).map_or(rest.len(), |l| l.min(rest.len()));
                    out.extend_from_slice(&rest[..take]);
                    pos += take;
                    let left = left - take as u64;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), _) => State::Length(left),
                        (_, 0) => State::DataEnd,
                        _ => State::Data(left),
                    };
                    if left > 0 {
                        return Ok(pos);
                    }
                }
                State::SizeLine => {
                    let Some(end) = find_crlf(rest) else {
                        let limit = self.rules.limit_field_size;
                        if rest.len() > limit {
                            let msg = format!("line over {limit} bytes with no terminator");
                            return Err(ParseError::InvalidChunkSize(msg.into_bytes()));
                        }
                        return Ok(pos);
                    };
                    let size = parse_size_line(&rest[..end])?;
                    pos += end + 2;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::DataEnd => {
                    if rest.len() < 2 {
                        self.partial_terminator.clear();
                        self.partial_terminator.extend_from_slice(rest);
                        return Ok(pos);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(ParseError::ChunkMissingTerminator(rest[..2].to_vec()));
                    }
                    pos += 2;
                    self.state = State::SizeLine;
                }
                State::Trailers => {
                    if rest.starts_with(b"\r\n") {
                        pos += 2;
                    } else if let Some(end) = find_crlfcrlf(rest) {
                        self.trailers = parse_section(&rest[..end], &self.rules, None)?
                            .headers
                            .to_pairs();
                        pos += end + 4;
                    } else {
                        if rest.len() > self.max_trailer_section() {
                            return Err(ParseError::LimitRequestHeaders(
                                "limit request trailer section size",
                            ));
                        }
                        if has_bare_lf(rest) {
                            return Err(ParseError::header("bare LF as line terminator"));
                        }
                        return Ok(pos);
                    }
                    self.state = State::Done;
                }
            }
        }
    }

    /// The peer closed the connection. Content-Length bodies just end short (gunicorn hands
    /// the application what arrived, without error); a chunked body that is cut off fails as
    /// gunicorn fails it.
    pub fn decode_eof(&mut self) -> Result<(), ParseError> {
        match self.state {
            State::Done | State::Length(_) => {
                self.state = State::Done;
                Ok(())
            }
            State::SizeLine | State::Data(_) => Err(ParseError::NoMoreData(None)),
            State::DataEnd => Err(ParseError::ChunkMissingTerminator(
                self.partial_terminator.clone(),
            )),
            State::Trailers => Err(ParseError::ChunkMissingTerminator(Vec::new())),
        }
    }

    /// gunicorn bounds a trailer section like a header section.
    fn max_trailer_section(&self) -> usize {
        self.rules
            .limit_fields
            .saturating_mul(self.rules.limit_field_size.saturating_add(2))
            .saturating_add(4)
    }
}

/// Parses `size[ BWS ; ext]` (without CRLF). Sizes beyond `u64` saturate: gunicorn uses
/// bignums, and such a chunk can never complete either way.
fn parse_size_line(line: &[u8]) -> Result<u64, ParseError> {
    let (mut size, ext) = match memchr(b';', line) {
        Some(i) => (&line[..i], Some(&line[i..])),
        None => (line, None),
    };
    if let Some(ext) = ext {
        if memchr(b'\r', ext).is_some() {
            return Err(ParseError::InvalidChunkExtension("bare CR not allowed"));
        }
        // RFC 9112 7.1.1: whitespace is allowed before the extension, and only there.
        size = trim_end_sp_htab(size);
    }
    if size.is_empty() || !size.iter().all(u8::is_ascii_hexdigit) {
        return Err(ParseError::InvalidChunkSize(size.to_vec()));
    }
    // The size is checked first, so a bad size is reported as such.
    if ext.is_some_and(|ext| !valid_chunk_ext(ext)) {
        return Err(ParseError::InvalidChunkExtension("invalid chunk extension"));
    }
    let significant = &size[size.iter().position(|&b| b != b'0').unwrap_or(size.len())..];
    if significant.len() > 16 {
        return Ok(u64::MAX);
    }
    Ok(significant.iter().fold(0u64, |acc, &b| {
        let digit = char::from(b).to_digit(16).unwrap_or(0);
        (acc << 4) | u64::from(digit)
    }))
}

/// `*( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )`, matched in full.
/// Tokens and quoted strings have unambiguous ends, so one greedy pass decides it.
fn valid_chunk_ext(ext: &[u8]) -> bool {
    let skip_ws = |mut i: usize| {
        while matches!(ext.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        i
    };
    let token_end = |mut i: usize| {
        while ext.get(i).is_some_and(|&b| is_tchar(b)) {
            i += 1;
        }
        i
    };
    let mut i = 0;
    while i < ext.len() {
        i = skip_ws(i);
        if ext.get(i) != Some(&b';') {
            return false;
        }
        i = skip_ws(i + 1);
        let end = token_end(i);
        if end == i {
            return false;
        }
        i = end;
        let after_ws = skip_ws(i);
        if ext.get(after_ws) != Some(&b'=') {
            continue;
        }
        i = skip_ws(after_ws + 1);
        match ext.get(i) {
            Some(b'"') => match quoted_string_end(ext, i) {
                Some(end) => i = end,
                None => return false,
            },
            _ => {
                let end = token_end(i);
                if end == i {
                    return false;
                }
                i = end;
            }
        }
    }
    true
}

/// End (exclusive) of the quoted string opening at `start`, or `None` if it is malformed.
fn quoted_string_end(ext: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match *ext.get(i)? {
            b'"' => return Some(i + 1),
            // quoted-pair: HTAB, SP, VCHAR or obs-text after the backslash.
            b'\\' => match *ext.get(i + 1)? {
                b'\t' | b' '..=b'~' | 0x80..=0xff => i += 2,
                _ => return None,
            },
            // qdtext
            b'\t' | b' ' | b'!' | b'#'..=b'[' | b']'..=b'~' | 0x80..=0xff => i += 1,
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(
        framing: BodyFraming,
        input: &[u8],
    ) -> (Result<usize, ParseError>, Vec<u8>, BodyDecoder) {
        let mut dec = BodyDecoder::new(&framing, &ParserConfig::default());
        let mut out = Vec::new();
        let res = dec.decode(input, &mut out);
        (res, out, dec)
    }

    #[test]
    fn length_body_leaves_pipelined_bytes() {
        let (res, out, dec) = decode_all(BodyFraming::Length(3), b"abcGET");
        assert_eq!(
            (res, out.as_slice(), dec.is_done()),
            (Ok(3), &b"abc"[..], true)
        );
        let mut dec = BodyDecoder::new(&BodyFraming::Length(5), &ParserConfig::default());
        let mut out = Vec::new();
        assert_eq!(dec.decode(b"ab", &mut out), Ok(2));
        assert_eq!(dec.remaining_hint(), Some(3));
        assert_eq!(dec.decode_eof(), Ok(()));
        assert!(dec.is_done());
    }

    #[test]
    fn chunked_with_trailers() {
        let input = b"5;a=b;c=\"q\\\"d\"\r\nhello\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let (res, out, dec) = decode_all(BodyFraming::Chunked, input);
        assert_eq!(res, Ok(input.len() - 4));
        assert_eq!(out, b"hello");
        assert_eq!(dec.trailers(), &[("X-T".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn chunked_byte_by_byte() {
        let input = b"3\r\nabc\r\n00 ; x\r\n\r\n";
        let mut dec = BodyDecoder::new(&BodyFraming::Chunked, &ParserConfig::default());
        let (mut out, mut pending) = (Vec::new(), Vec::new());
        for &b in input {
            pending.push(b);
            let used = dec.decode(&pending, &mut out).unwrap();
            pending.drain(..used);
        }
        assert!(dec.is_done() && pending.is_empty());
        assert_eq!(out, b"abc");
    }

    #[test]
    fn size_line_errors() {
        let size = |line: &[u8]| parse_size_line(line).map_err(|e| e.log_text());
        assert_eq!(size(b"1F"), Ok(31));
        assert_eq!(size(b"0000000000000000000001"), Ok(1));
        assert_eq!(size(b"fffffffffffffffff"), Ok(u64::MAX));
        assert_eq!(size(b"5 \t;x"), Ok(5));
        assert_eq!(size(b"6_0"), Err("Invalid chunk size: b'6_0'".to_owned()));
        assert_eq!(size(b"0 "), Err("Invalid chunk size: b'0 '".to_owned()));
        assert_eq!(size(b""), Err("Invalid chunk size: b''".to_owned()));
        assert_eq!(
            size(b"5;ext=val\rue"),
            Err("Invalid chunk extension: bare CR not allowed".to_owned())
        );
        assert_eq!(
            size(b"zz;\r"),
            Err("Invalid chunk extension: bare CR not allowed".to_owned())
        );
        assert_eq!(size(b"zz;;"), Err("Invalid chunk size: b'zz'".to_owned()));
        assert_eq!(
            size(b"5;"),
            Err("Invalid chunk extension: invalid chunk extension".to_owned())
        );
    }

    #[test]
    fn chunk_extensions() {
        for good in [
            &b";a"[..],
            b"; a = b",
            b";a=\"\"",
            b";a=\"x\\\"y\";b",
            b"\t;a;b=c",
            b";a=\"\xff\"",
        ] {
            assert!(valid_chunk_ext(good), "{}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b";"[..],
            b";a ",
            b";a=",
            b";a=\"x",
            b";a=b c",
            b";a=\"\x01\"",
            b"a",
            b";a=\"\\\x01\"",
        ] {
            assert!(!valid_chunk_ext(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn terminators_and_eof() {
        let (res, ..) = decode_all(BodyFraming::Chunked, b"1\r\naXY");
        assert_eq!(
            res.err().unwrap().log_text(),
            "Invalid chunk terminator is not '\\r\\n': b'XY'"
        );
        let (res, _, mut dec) = decode_all(BodyFraming::Chunked, b"1\r\na\r");
        assert_eq!(res, Ok(4));
        assert_eq!(
            dec.decode_eof().err().unwrap().log_text(),
            "Invalid chunk terminator is not '\\r\\n': b'\\r'"
        );
        let (_, _, mut dec) = decode_all(BodyFraming::Chunked, b"0\r\n");
        assert_eq!(
            dec.decode_eof().err().unwrap().name(),
            "ChunkMissingTerminator"
        );
        let (_, _, mut dec) = decode_all(BodyFraming::Chunked, b"5\r\nab");
        assert_eq!(dec.decode_eof(), Err(ParseError::NoMoreData(None)));
    }

    #[test]
    fn limits() {
        let cfg = ParserConfig::from_settings(4094, 1, 4);
        let mut dec = BodyDecoder::new(&BodyFraming::Chunked, &cfg);
        let mut out = Vec::new();
        assert_eq!(dec.decode(b"0000", &mut out), Ok(0));
        let err = dec.decode(b"00000", &mut out).err().unwrap();
        assert_eq!(
            err.log_text(),
            "Invalid chunk size: b'line over 4 bytes with no terminator'"
        );
        // Trailer section cap: 1 * (4 + 2) + 4 = 10 bytes.
        let mut dec = BodyDecoder::new(&BodyFraming::Chunked, &cfg);
        assert_eq!(dec.decode(b"0\r\nAAAAAAAAAA", &mut out), Ok(3));
        let err = dec.decode(b"0\r\nAAAAAAAAAAA", &mut out).err().unwrap();
        assert_eq!(err.log_text(), "limit request trailer section size");
    }
}
