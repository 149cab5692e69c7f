//! Raw descriptor numbers handed over by Python code: borrowed (a file's `fileno()`) or owned
//! (a detached socket).

use std::os::fd::BorrowedFd;

/// Borrows `fd` for the duration of a call.
///
/// The caller must keep the Python object that owns `fd` alive while the borrow is used.
#[allow(unsafe_code)]
pub fn borrow_raw(fd: i32) -> BorrowedFd<'static> {
    // SAFETY: the only caller (`worker::sendfile`) holds a reference to the Python file object
    // that owns `fd` for as long as it uses the borrow, and never stores it.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Takes ownership of `fd`, a descriptor Python code detached from its socket object
/// (`socket.detach()`), so that nothing else closes it.
#[allow(unsafe_code)]
pub fn own_detached(fd: i32) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the only caller (`python::logging`, StatsD setup) passes the descriptor returned
    // by `socket.detach()`, which is open and which no Python object owns any more.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}
