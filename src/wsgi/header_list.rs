//! The app's response headers in one string: `name\0value\0name\0value\0...`. Names are
//! tokens and values were checked to hold no control characters, so NUL never occurs inside
//! them. One buffer instead of two strings per header: no allocation per header.

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeaderList {
    text: String,
    count: usize,
}

impl HeaderList {
    /// Appends a header; neither part may contain NUL.
    pub fn push(&mut self, name: &str, value: &str) {
        debug_assert!(!name.contains('\0') && !value.contains('\0'));
        if self.text.capacity() == 0 {
            self.text.reserve(128);
        }
        self.text.push_str(name);
        self.text.push('\0');
        self.text.push_str(value);
        self.text.push('\0');
        self.count += 1;
    }

    /// The headers as `(name, value)` pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let mut rest = self.text.as_str();
        // Splits at the next NUL (an ASCII byte, so both sides stay on char boundaries).
        let mut part = move || {
            let end = memchr::memchr(0, rest.as_bytes())?;
            let (part, tail) = (&rest[..end], &rest[end + 1..]);
            rest = tail;
            Some(part)
        };
        std::iter::from_fn(move || Some((part()?, part()?)))
    }

    /// The value of the last header named `name` (any case).
    pub fn last(&self, name: &str) -> Option<&str> {
        self.iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .last()
            .map(|(_, v)| v)
    }

    /// Keeps only the headers for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        let mut kept = HeaderList::default();
        for (n, v) in self.iter().filter(|(n, v)| keep(n, v)) {
            kept.push(n, v);
        }
        *self = kept;
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The bytes the headers take in a header block (`name: value\r\n` each).
    pub fn wire_len(&self) -> usize {
        // Each header has two NULs where the block has ": " and "\r\n".
        self.text.len() + 2 * self.count
    }

    /// Owned pairs, for Python (`resp.headers` of the hooks).
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_empty_values() {
        let mut h = HeaderList::default();
        assert!(h.is_empty());
        h.push("Content-Type", "text/plain");
        h.push("X-Empty", "");
        h.push("Set-Cookie", "a=1");
        assert_eq!(
            h.to_pairs(),
            vec![
                ("Content-Type".to_string(), "text/plain".to_string()),
                ("X-Empty".to_string(), String::new()),
                ("Set-Cookie".to_string(), "a=1".to_string()),
            ]
        );
        assert_eq!(
            h.wire_len(),
            "Content-Type: text/plain\r\nX-Empty: \r\nSet-Cookie: a=1\r\n".len()
        );
        h.push("set-cookie", "b=2");
        assert_eq!(h.last("SET-COOKIE"), Some("b=2"));
        assert_eq!(h.last("x-none"), None);
        h.retain(|n, _| n != "X-Empty");
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Content-Type", "Set-Cookie", "set-cookie"]);
    }
}
