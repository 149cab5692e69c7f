//! A connection's read buffer: bytes live in `data[start..end]`; the storage is zeroed once
//! when it grows, never before each read (zero-filling a large buffer per `recv` was a
//! measurable share of a worker's CPU).
//!
//! A connection's buffer comes from, and goes back to, a small pool per thread: a new
//! connection reuses a buffer already in the cache instead of zeroing 8 KiB of fresh memory
//! (with one request per connection, the zeroing was most of the memory a request touched in
//! rgun). A reused buffer still holds an earlier connection's bytes outside `start..end`;
//! nothing reads there: `spare` hands that region out only to be written.

use std::cell::RefCell;

/// The size a connection's buffer starts at, and the only size that is pooled.
pub const POOLED: usize = 8192;
/// Buffers kept per thread (bounded: a burst of connections does not pin its memory).
const POOL_MAX: usize = 16;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

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

    /// A [`POOLED`]-byte buffer, from this thread's pool when it has one.
    pub fn pooled() -> ReadBuf {
        let reused = POOL.try_with(|p| p.borrow_mut().pop()).ok().flatten();
        ReadBuf {
            data: reused.unwrap_or_else(|| vec![0; POOLED]),
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

impl Drop for ReadBuf {
    fn drop(&mut self) {
        // A grown buffer is freed: only the common size is worth keeping.
        if self.data.len() != POOLED {
            return;
        }
        let data = std::mem::take(&mut self.data);
        // `try_with`: at thread exit the pool may already be gone.
        let _ = POOL.try_with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOL_MAX {
                p.push(data);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_buffer_is_reused_and_a_grown_one_is_not() {
        let first = ReadBuf::pooled();
        let addr = first.data.as_ptr();
        drop(first);
        let mut again = ReadBuf::pooled();
        assert_eq!(again.data.as_ptr(), addr);
        assert_eq!(again.pending(), b"");
        again.spare(POOLED * 2, POOLED * 2);
        assert!(again.data.len() > POOLED);
        drop(again);
        let fresh = ReadBuf::pooled();
        assert_eq!(fresh.data.len(), POOLED);
    }

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
