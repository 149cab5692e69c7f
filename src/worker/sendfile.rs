//! `sendfile(2)` of a file region to a client socket, for `wsgi.file_wrapper` responses.

use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::poll::PollFlags;

use super::conn::{Conn, IoStop, Waiter};

/// Sends `count` bytes of `file_fd` from `offset`. Returns the bytes sent (fewer at EOF).
pub fn send(
    conn: &Conn,
    file_fd: i32,
    offset: i64,
    count: u64,
    waiter: &Waiter,
) -> Result<u64, IoStop> {
    let out = conn.stream.as_fd();
    // The app keeps owning its file; this borrow lasts only for the calls below.
    let file = crate::unix::fd::borrow_raw(file_fd);
    let mut off = offset;
    let mut sent = 0u64;
    while sent < count {
        let chunk = usize::try_from((count - sent).min(1 << 30)).unwrap_or(1 << 30);
        match nix::sys::sendfile::sendfile(out, file, Some(&mut off), chunk) {
            Ok(0) => break,
            Ok(n) => sent += n as u64,
            Err(Errno::EAGAIN) => waiter.wait(out, PollFlags::POLLOUT)?,
            Err(Errno::EINTR) => waiter.check_signals()?,
            Err(e) => return Err(IoStop::Io(std::io::Error::from(e))),
        }
    }
    Ok(sent)
}
