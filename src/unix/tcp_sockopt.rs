//! Linux TCP socket options that neither `socket2` nor `nix` wraps: the accept-queue length of a
//! listening socket, as gunicorn reads it for the `gunicorn.backlog` metric (`tcpi_unacked` of
//! `TCP_INFO`: on a listening socket the kernel reports the connections waiting to be accepted
//! there), and `TCP_DEFER_ACCEPT`.

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

/// How long a connection that has sent nothing stays with the kernel before a worker gets it.
/// Linux counts this in SYN-ACK retransmissions: 1 s is one, so such a connection is handed over
/// at the client's answer to the first retransmission, about a second after it connected.
const DEFER_ACCEPT_SECS: i32 = 1;

/// Sets `TCP_DEFER_ACCEPT` on a listening socket: the kernel hands a connection to `accept`
/// once the client's first bytes have arrived (or after [`DEFER_ACCEPT_SECS`] without any), so a
/// worker never accepts a connection only to wait for its request. uWSGI does the same by
/// default, nginx with `listen ... deferred`.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn defer_accept(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    use nix::libc;
    let secs: libc::c_int = DEFER_ACCEPT_SECS;
    // SAFETY: `secs` is a readable `c_int` whose size is passed as the option length, and `fd`
    // an open descriptor for the duration of the borrow; the kernel only reads the value.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Other systems have no such option; connections are accepted as they come.
#[cfg(not(target_os = "linux"))]
pub fn defer_accept(_fd: BorrowedFd<'_>) -> std::io::Result<()> {
    Ok(())
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

    #[cfg(target_os = "linux")]
    #[test]
    fn a_deferred_listener_hands_over_a_connection_once_it_has_data() {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        defer_accept(l.as_fd()).unwrap();
        l.set_nonblocking(true).unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        // Connected on the client's side, not acceptable yet: nothing was sent.
        assert_eq!(
            l.accept().unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
        c.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let (mut s, _) = loop {
            match l.accept() {
                Ok(a) => break a,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "never handed over");
                    std::thread::yield_now();
                }
                Err(e) => panic!("{e}"),
            }
        };
        // The request is already there when the connection is handed over.
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(s.read(&mut buf).unwrap(), 18);
    }
}
