//! A connection's read buffer: bytes live in `data[start..end]`. Plain sockets receive straight
//! into the buffer's spare capacity, never zeroed (`recv_from`); the TLS engines, which need
//! an initialized slice, get one zeroed once as the buffer grows (`spare`), never before each
//! read (zero-filling a large buffer per read was a measurable share of a worker's CPU).

/// Received, not yet consumed bytes, plus room to receive more.
#[derive(Debug, Default)]
pub struct ReadBuf {
    /// Its length is how much is initialized: `end`, or more after a TLS read.
    data: Vec<u8>,
    start: usize,
    end: usize,
    /// The last read was a plain `recv` that came back short: the socket had nothing more.
    drained: bool,
}

impl ReadBuf {
    /// An empty buffer with room for `n` bytes (allocated, not zeroed).
    pub fn with_capacity(n: usize) -> ReadBuf {
        ReadBuf {
            data: Vec::with_capacity(n),
            start: 0,
            end: 0,
            drained: false,
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

    /// Makes room for at least `min` more bytes after `end`: moves the pending bytes to the
    /// front when that is enough, else grows the storage (doubling, without zeroing).
    fn make_room(&mut self, min: usize) {
        if self.data.capacity() - self.end < min && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.data.capacity() - self.end < min {
            let grown = (self.data.capacity() * 2).max(self.end + min);
            self.data.reserve_exact(grown - self.data.len());
        }
    }

    /// Where the next read may write: from `end`, at least `min` bytes and at most `max`.
    fn room(&mut self, min: usize, max: usize) -> usize {
        self.make_room(min);
        (self.data.capacity() - self.end).min(max.max(min))
    }

    /// One `recv` from a plain socket, at least `min` bytes of room and at most `max`: the
    /// count received and how much it asked for.
    pub fn recv_from(
        &mut self,
        fd: std::os::fd::RawFd,
        min: usize,
        max: usize,
    ) -> std::io::Result<(usize, usize)> {
        let asked = self.room(min, max);
        self.data.truncate(self.end);
        self.drained = false;
        let n = crate::unix::stream::recv_spare(fd, &mut self.data, asked)?;
        self.end += n;
        self.drained = n < asked;
        Ok((n, asked))
    }

    /// Whether the last read was a plain `recv` that left nothing in the socket.
    pub fn drained(&self) -> bool {
        self.drained
    }

    /// Free space at the end, at least `min` bytes and at most `max`, for the next read (zeroed
    /// the first time the storage reaches that far).
    pub fn spare(&mut self, min: usize, max: usize) -> &mut [u8] {
        self.drained = false;
        let stop = self.end + self.room(min, max);
        if self.data.len() < stop {
            self.data.resize(stop, 0);
        }
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

    #[test]
    fn receives_into_unzeroed_room_and_keeps_pending_bytes() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let (mut tx, rx) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut b = ReadBuf::with_capacity(4);
        tx.write_all(b"hello world").unwrap();
        // Room is capped at `max` and at least `min`.
        assert_eq!(b.recv_from(rx.as_raw_fd(), 2, 3).unwrap(), (3, 3));
        assert_eq!(b.pending(), b"hel");
        assert!(!b.drained(), "a full read may have left bytes behind");
        b.consume(1);
        // Growing keeps what is pending.
        let (n, asked) = b.recv_from(rx.as_raw_fd(), 16, 64).unwrap();
        assert!(asked >= 16);
        assert_eq!(n, 8);
        assert_eq!(b.pending(), b"ello world");
        assert!(b.drained());
        // A TLS-style fill after a plain receive appends in order.
        let s = b.spare(2, 2);
        s.copy_from_slice(b"!!");
        b.filled(2);
        assert_eq!(b.pending(), b"ello world!!");
        b.consume(12);
        tx.write_all(b"x").unwrap();
        assert_eq!(b.recv_from(rx.as_raw_fd(), 1, 8).unwrap().0, 1);
        assert_eq!(b.pending(), b"x");
    }
}
