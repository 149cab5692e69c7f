//! The accept-queue length of a listening TCP socket, as gunicorn reads it for the
//! `gunicorn.backlog` metric: `tcpi_unacked` of Linux's `TCP_INFO` (on a listening socket the
//! kernel reports the number of connections waiting to be accepted there).

use std::os::fd::{AsRawFd, BorrowedFd};

/// gunicorn's `TCPSocket.get_backlog` on Linux: field 12 of the first 104 bytes of `tcp_info`
/// (`tcpi_unacked`), 0 when `getsockopt` fails.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn unacked(fd: BorrowedFd<'_>) -> i64 {
    use nix::libc;
    const LEN: usize = 104;
    let mut buf = [0u8; LEN];
    let mut len = LEN as libc::socklen_t;
    // SAFETY: `buf` is a writable buffer of `len` bytes, `len` a valid in/out length, and `fd`
    // an open descriptor for the duration of the borrow; the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return 0;
    }
    // 8 one-byte fields, then 32-bit ones: tcpi_rto, ato, snd_mss, rcv_mss, unacked.
    i64::from(u32::from_ne_bytes([buf[24], buf[25], buf[26], buf[27]]))
}

/// gunicorn reports no backlog (-1) off Linux.
#[cfg(not(target_os = "linux"))]
pub fn unacked(_fd: BorrowedFd<'_>) -> i64 {
    -1
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn counts_connections_waiting_to_be_accepted() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(unacked(l.as_fd()), 0);
        let addr = l.local_addr().unwrap();
        let _a = std::net::TcpStream::connect(addr).unwrap();
        let _b = std::net::TcpStream::connect(addr).unwrap();
        assert_eq!(unacked(l.as_fd()), 2);
        drop(l.accept().unwrap());
        assert_eq!(unacked(l.as_fd()), 1);
    }
}
