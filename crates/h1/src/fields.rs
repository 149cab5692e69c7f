//! The fields of a header (or trailer) section: upper-cased names and latin-1 decoded values,
//! in order, all in one text buffer. A section costs two allocations (the text and its index)
//! however many fields it has, where a string per name and per value cost two per field.

use std::fmt;

use crate::text::{offset_in, push_latin1};

/// Header fields in arrival order. Names are upper-case tokens; values are the bytes decoded
/// as latin-1 (one char per byte), as gunicorn's `bytes_to_str` does.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Fields {
    text: String,
    /// Per field: where its name starts, where its value starts (the name's end), where the
    /// value ends; offsets into `text`.
    spans: Vec<[usize; 3]>,
}

impl Fields {
    /// Empty, with room for `bytes` of names and values and `fields` fields.
    pub(crate) fn with_capacity(bytes: usize, fields: usize) -> Self {
        Fields {
            text: String::with_capacity(bytes),
            spans: Vec::with_capacity(fields),
        }
    }

    /// Empties it, keeping its buffers, with room for `bytes` of text and `fields` fields.
    pub(crate) fn clear_with_capacity(&mut self, bytes: usize, fields: usize) {
        self.text.clear();
        self.spans.clear();
        self.text.reserve(bytes);
        self.spans.reserve(fields);
    }

    /// The bytes its buffers hold on to.
    pub(crate) fn capacity(&self) -> usize {
        self.text.capacity() + self.spans.capacity() * std::mem::size_of::<[usize; 3]>()
    }

    /// Appends a field: `name` (a token, so ASCII) upper-cased, `value` decoded as latin-1.
    /// `section` is the text of the whole header section when it is all ASCII (checked once
    /// for the section): parts of it are then copied as they are, without a check each.
    /// Returns the field as stored.
    pub(crate) fn push_latin1(
        &mut self,
        name: &[u8],
        value: &[u8],
        section: Option<&str>,
    ) -> (&str, &str) {
        let start = self.text.len();
        push_part(&mut self.text, name, section);
        self.text[start..].make_ascii_uppercase();
        let mid = self.text.len();
        push_part(&mut self.text, value, section);
        self.spans.push([start, mid, self.text.len()]);
        (&self.text[start..mid], &self.text[mid..])
    }

    /// Removes the last field (one the header policy drops after all).
    pub(crate) fn pop(&mut self) {
        if let Some([start, ..]) = self.spans.pop() {
            self.text.truncate(start);
        }
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The fields as `(name, value)`, in order.
    pub fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&str, &str)> + ExactSizeIterator + Clone + '_ {
        self.spans
            .iter()
            .map(|&[a, b, c]| (&self.text[a..b], &self.text[b..c]))
    }

    /// The value of the first field with this (upper-case) name.
    pub fn get(&self, upper_name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == upper_name).map(|(_, v)| v)
    }

    /// Owned `(name, value)` pairs (for Python).
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }
}

impl fmt::Debug for Fields {
    /// As the list of `(name, value)` pairs it holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Appends `part` decoded as latin-1, taking it from `section` (an ASCII text) when it is a
/// part of it.
fn push_part(text: &mut String, part: &[u8], section: Option<&str>) {
    if let Some(whole) = section
        && let Some(at) = offset_in(whole.as_bytes(), part)
        && let Some(s) = whole.get(at..at + part.len())
    {
        text.push_str(s);
        return;
    }
    push_latin1(text, part);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_order_case_and_latin1() {
        let mut f = Fields::with_capacity(0, 0);
        assert_eq!(f.push_latin1(b"Host", b"a", None), ("HOST", "a"));
        f.push_latin1(b"x-caf\xe9", b"caf\xe9", None);
        f.push_latin1(b"Dropped", b"z", None);
        f.pop();
        // Parts of an ASCII section are taken from its text; others are decoded.
        let section = "host: b";
        let bytes = section.as_bytes();
        f.push_latin1(&bytes[..4], b"", Some(section));
        assert_eq!(
            f.push_latin1(&bytes[..4], &bytes[6..], Some(section)),
            ("HOST", "b")
        );
        assert_eq!(f.push_latin1(b"X", b"\xe9", Some(section)), ("X", "\u{e9}"));
        f.pop();
        f.pop();
        assert_eq!(f.len(), 3);
        assert_eq!(
            f.to_pairs(),
            [("HOST", "a"), ("X-CAF\u{e9}", "caf\u{e9}"), ("HOST", "")]
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert_eq!(f.get("HOST"), Some("a"));
        assert_eq!(f.get("DROPPED"), None);
        assert_eq!(format!("{f:?}"), format!("{:?}", f.to_pairs()));
    }
}
