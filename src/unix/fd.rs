//! Borrowing a raw descriptor number handed over by Python code (a file's `fileno()`).

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
