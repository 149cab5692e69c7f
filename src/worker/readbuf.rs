//! A connection's read buffer: bytes live in `data[start..end]`; the storage is zeroed once
//! when it grows, never before each read (zero-filling a large buffer per `recv` was a
//! measurable share of a worker's CPU).

/// Received, not yet consumed bytes, plus room to receive more.
#[derive(Debug, Default)]
pub struct ReadBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    pub fn with_capacity(n: usize) -> ReadBuf {
        ReadBuf {
            data: vec![0; n],
            start: 0,
            end: 0,
        }
    }

    /// The bytes received and not yet consumed.
    pub fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Marks `n` pending bytes as used.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.clear();
        }
    }

    /// Forgets every pending byte.
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Free space at the end, at least `min` bytes and at most `max`, for the next read.
    /// Moves pending bytes to the front first when that makes enough room.
    pub fn spare(&mut self, min: usize, max: usize) -> &mut [u8] {
        if self.data.len() - self.end < min && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.data.len() - self.end < min {
            let grown = (self.data.len() * 2).max(self.end + min);
            self.data.resize(grown, 0);
        }
        let stop = self.data.len().min(self.end + max.max(min));
        &mut self.data[self.end..stop]
    }

    /// Records that `n` bytes were written into the slice [`ReadBuf::spare`] returned.
    pub fn filled(&mut self, n: usize) {
        self.end += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_consume_and_compact() {
        let mut b = ReadBuf::with_capacity(8);
        let s = b.spare(4, 4);
        s[..4].copy_from_slice(b"abcd");
        b.filled(4);
        b.consume(3);
        assert_eq!(b.pending(), b"d");
        let s = b.spare(6, 6);
        assert!(s.len() >= 6);
        s[..2].copy_from_slice(b"ef");
        b.filled(2);
        assert_eq!(b.pending(), b"def");
        b.consume(3);
        assert_eq!(b.pending(), b"");
    }
}
