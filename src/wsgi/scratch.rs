//! Byte buffers a thread reuses from one request to the next: the response's status, its
//! header text and the header block it writes. Each would otherwise be a `malloc` and a `free`
//! per request.
//!
//! Per thread, no lock: a buffer given back on another thread (a response dropped there) goes
//! to that thread's list. Bounded: at most [`KEEP`] buffers per thread, none larger than
//! [`MAX_CAPACITY`] (a response with huge headers does not pin its buffer).

use std::cell::RefCell;

/// Buffers kept per thread.
const KEEP: usize = 4;
/// Larger buffers are freed, not kept.
const MAX_CAPACITY: usize = 16 * 1024;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer: a kept one if there is one.
pub fn take() -> Vec<u8> {
    FREE.with(|f| f.borrow_mut().pop()).unwrap_or_default()
}

/// Keeps `buf` for a later [`take`] (emptied), or frees it.
pub fn give(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > MAX_CAPACITY {
        return;
    }
    buf.clear();
    // A thread that is exiting has no list any more: the buffer is simply freed.
    let _ = FREE.try_with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < KEEP {
            f.push(buf);
        }
    });
}

/// [`take`], as a `String`.
pub fn take_string() -> String {
    // An empty buffer is valid UTF-8.
    String::from_utf8(take()).unwrap_or_default()
}

/// [`give`], for a `String`.
pub fn give_string(s: String) {
    give(s.into_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_empty() {
        let mut b = take();
        b.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let ptr = b.as_ptr();
        give(b);
        let again = take();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), ptr);
    }

    #[test]
    fn at_most_keep_buffers_and_no_large_one() {
        for _ in 0..KEEP + 3 {
            give(Vec::with_capacity(64));
        }
        give(Vec::with_capacity(MAX_CAPACITY + 1));
        let kept: Vec<Vec<u8>> = (0..KEEP + 3).map(|_| take()).collect();
        assert_eq!(kept.iter().filter(|b| b.capacity() > 0).count(), KEEP);
        assert!(kept.iter().all(|b| b.capacity() <= MAX_CAPACITY));
    }
}
