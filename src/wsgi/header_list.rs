//! The app's response headers in one string, in the form they take in the header block:
//! `name: value\r\n` each. Names are tokens (no `:`) and values were checked to hold no
//! control characters (no CR or LF), so each line splits back into its name and value. One
//! buffer instead of two strings per header (no allocation per header), and the block copies
//! it in one piece.

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeaderList {
    text: String,
}

impl Drop for HeaderList {
    fn drop(&mut self) {
        super::scratch::give_string(std::mem::take(&mut self.text));
    }
}

impl HeaderList {
    /// Appends a header; `name` holds no `:`, neither part holds CR or LF.
    pub fn push(&mut self, name: &str, value: &str) {
        debug_assert!(!name.contains(':') && !value.contains(['\r', '\n']));
        if self.text.capacity() == 0 {
            self.text = super::scratch::take_string();
            self.text.reserve(128);
        }
        self.text.push_str(name);
        self.text.push_str(": ");
        self.text.push_str(value);
        self.text.push_str("\r\n");
    }

    /// The headers as `(name, value)` pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let mut rest = self.text.as_str();
        // `:`, CR and LF are ASCII, so every split stays on a char boundary.
        std::iter::from_fn(move || {
            let colon = memchr::memchr(b':', rest.as_bytes())?;
            let end = colon + 2 + memchr::memchr(b'\r', &rest.as_bytes()[colon + 2..])?;
            let pair = (&rest[..colon], &rest[colon + 2..end]);
            rest = &rest[end + 2..];
            Some(pair)
        })
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

    /// The headers as the header block's lines (`name: value\r\n` each), as text: latin-1
    /// encoding it gives the bytes.
    pub fn lines(&self) -> &str {
        &self.text
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
            h.lines(),
            "Content-Type: text/plain\r\nX-Empty: \r\nSet-Cookie: a=1\r\n"
        );
        h.push("set-cookie", "b=2: c");
        assert_eq!(h.last("SET-COOKIE"), Some("b=2: c"));
        assert_eq!(h.last("x-none"), None);
        h.retain(|n, _| n != "X-Empty");
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Content-Type", "Set-Cookie", "set-cookie"]);
    }
}
