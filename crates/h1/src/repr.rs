//! Faithful copies of Python's `repr()` for `str` and `bytes`, which gunicorn's error
//! messages embed (`Invalid HTTP Header: 'HOST'`, `Invalid chunk size: b'6_0'`).

/// Python's choice of quote: single quotes unless the text has `'` and no `"`.
fn quote_for(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double { '"' } else { '\'' }
}

/// Whether Python's `str.isprintable()` holds for a char in the latin-1 range. Above it we
/// have no Unicode tables, so such chars are treated as printable (gunicorn never produces
/// them: everything it reprs was decoded from latin-1).
fn latin1_printable(c: char) -> bool {
    match u32::from(c) {
        0x20..=0x7e => true,
        // U+00A0 NO-BREAK SPACE (Zs) and U+00AD SOFT HYPHEN (Cf) are not printable.
        0xa0 | 0xad => false,
        0xa1..=0xff => true,
        0x100.. => true,
        _ => false,
    }
}

/// `repr(s)` for a Python `str`.
pub fn py_repr_str(s: &str) -> String {
    let quote = quote_for(s.contains('\''), s.contains('"'));
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if latin1_printable(c) => out.push(c),
            c => out.push_str(&format!("\\x{:02x}", u32::from(c))),
        }
    }
    out.push(quote);
    out
}

/// `repr(b)` for Python `bytes`.
pub fn py_repr_bytes(b: &[u8]) -> String {
    let quote = quote_for(b.contains(&b'\''), b.contains(&b'"'));
    let mut out = String::with_capacity(b.len() + 3);
    out.push('b');
    out.push(quote);
    for &byte in b {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if char::from(byte) == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(char::from(byte)),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::latin1;

    #[test]
    fn quotes_like_python() {
        assert_eq!(py_repr_str("HOST"), "'HOST'");
        assert_eq!(py_repr_str("a'b"), "\"a'b\"");
        assert_eq!(py_repr_str("a\"b"), "'a\"b'");
        assert_eq!(py_repr_str("a'\"b"), "'a\\'\"b'");
        assert_eq!(py_repr_bytes(b"a'\"b"), "b'a\\'\"b'");
        assert_eq!(py_repr_bytes(b"a'b"), "b\"a'b\"");
        assert_eq!(py_repr_bytes(b""), "b''");
    }

    /// Expected strings printed by CPython 3.11: `repr(''.join(map(chr, range(256))))` and
    /// `repr(bytes(range(256)))`.
    #[test]
    fn every_latin1_char_and_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let expected_str = concat!(
            r#"'\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13"#,
            r##"\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f !"#$%&\'()*+,-./0123456789:;"##,
            r#"<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\x7f\x80\x81"#,
            r#"\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95"#,
            r#"\x96\x97\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f\xa0¡¢£¤¥¦§¨©ª«¬\xad®¯°±²³´µ¶·¸¹º»¼½¾¿"#,
            r#"ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖ×ØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõö÷øùúûüýþÿ'"#
        );
        assert_eq!(py_repr_str(&latin1(&all)), expected_str);
        let mut expected_bytes = String::from(concat!(
            r#"b'\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13"#,
            r##"\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f !"#$%&\'()*+,-./0123456789:;"##,
            r#"<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"#
        ));
        for b in 0x7f..=0xffu32 {
            expected_bytes.push_str(&format!("\\x{b:02x}"));
        }
        expected_bytes.push('\'');
        assert_eq!(py_repr_bytes(&all), expected_bytes);
    }
}
