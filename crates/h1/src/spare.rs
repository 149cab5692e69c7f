//! A request head the caller is done with, kept per thread so that the next head parsed on
//! that thread reuses its allocations: the box, the request line's text, the header fields'
//! text and index (four `malloc`/`free` pairs a request otherwise).
//!
//! Only what [`recycle`] was given is reused; a head that is simply dropped is freed. Per
//! thread, no lock; one head at most, and none whose buffers grew large.

use std::cell::RefCell;

use crate::fields::Fields;
use crate::head::RequestHead;

/// Buffers larger than this are freed, not kept.
const MAX_KEPT: usize = 16 * 1024;

thread_local! {
    static SPARE: RefCell<Option<Box<RequestHead>>> = const { RefCell::new(None) };
}

/// Keeps `head`'s allocations for the next head parsed on this thread.
pub fn recycle(head: Box<RequestHead>) {
    if head.kept_bytes() > MAX_KEPT {
        return;
    }
    // A thread that is exiting has no slot any more: the head is simply freed.
    let _ = SPARE.try_with(|s| {
        if let Ok(mut slot) = s.try_borrow_mut() {
            *slot = Some(head);
        }
    });
}

/// An empty buffer for a request line of `capacity` bytes.
pub(crate) fn line_buffer(capacity: usize) -> Vec<u8> {
    let mut buf = with_spare(RequestHead::take_line_text).unwrap_or_default();
    buf.clear();
    buf.reserve(capacity);
    buf
}

/// Empty fields with room for `bytes` of text and `fields` fields.
pub(crate) fn fields(bytes: usize, fields: usize) -> Fields {
    match with_spare(RequestHead::take_fields) {
        Some(mut f) => {
            f.clear_with_capacity(bytes, fields);
            f
        }
        None => Fields::with_capacity(bytes, fields),
    }
}

/// `head` in the kept box, or a new one.
pub(crate) fn boxed(head: RequestHead) -> Box<RequestHead> {
    let kept = SPARE
        .try_with(|s| s.try_borrow_mut().ok().and_then(|mut slot| slot.take()))
        .ok()
        .flatten();
    match kept {
        Some(mut b) => {
            *b = head;
            b
        }
        None => Box::new(head),
    }
}

fn with_spare<T>(f: fn(&mut RequestHead) -> T) -> Option<T> {
    SPARE
        .try_with(|s| {
            s.try_borrow_mut()
                .ok()
                .and_then(|mut slot| slot.as_deref_mut().map(f))
        })
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use crate::{ParserConfig, Peer, RequestHead, Status, parse_head, recycle};

    fn head(buf: &[u8]) -> Box<RequestHead> {
        match parse_head(buf, &ParserConfig::default(), &Peer::unix(), false) {
            Ok(Status::Complete((head, _))) => head,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_recycled_head_serves_the_next_one_with_nothing_left_of_it() {
        let first = head(b"POST /upload?x=1 HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789\r\nContent-Length: 3\r\n\r\n");
        let boxed: *const RequestHead = &*first;
        recycle(first);
        let second = head(b"GET /b HTTP/1.0\r\nAccept: */*\r\n\r\n");
        assert_eq!(&*second as *const RequestHead, boxed);
        assert_eq!(
            (second.method(), second.uri(), second.query()),
            ("GET", "/b", "")
        );
        assert_eq!(
            second.headers.iter().collect::<Vec<_>>(),
            vec![("ACCEPT", "*/*")]
        );
        assert_eq!(second.version, (1, 0));
    }
}
