//! A client socket that joins the runtime's epoll only when it first has to wait.
//!
//! Most requests are already in the socket when the connection is accepted: the first read then
//! succeeds at once, and a connection that is closed after its response (`sync`, `Connection:
//! close`) never costs an `epoll_ctl` add and delete. A connection registers (for read and
//! write readiness, edge-triggered) the first time an asynchronous wait needs it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use tokio::io::Interest;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

/// The descriptor number the registration refers to; `Stream` owns the descriptor itself.
#[derive(Debug)]
pub struct FdNum(RawFd);

impl AsRawFd for FdNum {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// A connected, non-blocking client socket (TCP or unix).
#[derive(Debug)]
pub struct Stream {
    // Declared first so it drops first: the registration is removed before the descriptor
    // closes.
    reg: OnceLock<AsyncFd<FdNum>>,
    fd: OwnedFd,
}

impl Stream {
    /// Wraps an accepted socket (already non-blocking).
    pub fn new(fd: OwnedFd) -> Stream {
        Stream {
            reg: OnceLock::new(),
            fd,
        }
    }

    /// Whether the socket joined the runtime's epoll yet.
    pub fn is_registered(&self) -> bool {
        self.reg.get().is_some()
    }

    fn registered(&self) -> io::Result<&AsyncFd<FdNum>> {
        if let Some(r) = self.reg.get() {
            return Ok(r);
        }
        // SAFETY: `FdNum` names `self.fd`, which `Stream` owns, never replaces, and closes only
        // after `reg` (declared first, dropped first): the descriptor stays open and the same
        // for the registration's whole life.
        #[allow(unsafe_code)]
        let r = unsafe {
            AsyncFd::register_with_interest(
                FdNum(self.fd.as_raw_fd()),
                Interest::READABLE | Interest::WRITABLE,
            )
        }
        .map_err(|e| e.into_parts().1)?;
        // One thread uses a connection at a time, so nothing can have set it meanwhile.
        let _ = self.reg.set(r);
        self.reg
            .get()
            .ok_or_else(|| io::Error::other("registration lost"))
    }

    /// Waits until the socket may be readable (registering it first if needed).
    pub async fn readable(&self) -> io::Result<AsyncFdReadyGuard<'_, FdNum>> {
        self.registered()?.readable().await
    }

    /// Waits until the socket may be writable (registering it first if needed).
    pub async fn writable(&self) -> io::Result<AsyncFdReadyGuard<'_, FdNum>> {
        self.registered()?.writable().await
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Registers a listening socket with the runtime, for read readiness (accepts).
pub fn register_listener(sock: socket2::Socket) -> io::Result<AsyncFd<socket2::Socket>> {
    // SAFETY: the `AsyncFd` takes ownership of the socket, so its descriptor stays open and the
    // same until the `AsyncFd` drops it.
    #[allow(unsafe_code)]
    let r = unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE) };
    r.map_err(|e| e.into_parts().1)
}

/// One `recv` into the spare capacity of `buf`, at most `max` bytes, without zeroing that
/// memory first; `buf`'s length grows by the count received. Zero-filling an 8 KiB read buffer
/// for every connection was a sixth of the instructions of a `Connection: close` request.
pub fn recv_spare(fd: RawFd, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let len = spare.len().min(max);
    // SAFETY: `spare` is writable memory owned by `buf`, valid for `len` bytes; `recv` writes
    // at most `len` bytes there and touches nothing else.
    #[allow(unsafe_code)]
    let n = unsafe { nix::libc::recv(fd, spare.as_mut_ptr().cast(), len, 0) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    // SAFETY: the kernel initialized the first `n` (≤ `len`) bytes of the spare capacity, the
    // bytes right after the current length.
    #[allow(unsafe_code)]
    unsafe {
        buf.set_len(buf.len() + n)
    };
    Ok(n)
}
