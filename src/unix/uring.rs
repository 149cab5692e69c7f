//! Sends on many sockets in one system call, through io_uring: the worker's held responses at
//! the end of a turn (`worker::outbox`).
//!
//! Each send is a non-blocking `send(2)` (`MSG_DONTWAIT`): the kernel runs it while it takes the
//! submission and posts its completion before the call returns; a socket whose buffer is full
//! completes with `EAGAIN` at once, it never waits. Where io_uring is missing or forbidden (old
//! kernels, container seccomp profiles, `kernel.io_uring_disabled`) [`SendRing::new`] fails and
//! the caller sends one socket at a time.
//!
//! Invariant: a buffer handed to the kernel is borrowed for the whole of [`SendRing::send_each`],
//! which returns only when every submitted send has its completion. Should a kernel ever keep a
//! send waiting (not honouring `MSG_DONTWAIT`), the wait times out, the sends still out are
//! cancelled and their completions awaited before the buffers are let go, and the ring is not
//! used again.

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::RawFd;

use io_uring::types::{SubmitArgs, Timespec};
use io_uring::{EnterFlags, IoUring, Probe, opcode, types};
use nix::libc;

/// Sends per submission; the submission queue has room for as many cancellations again.
const CHUNK: usize = 64;
/// The tag of a cancellation's own completion.
const CANCEL: u64 = u64::MAX;
/// The longest a submission's completions are waited for before the sends are cancelled.
const WAIT: Timespec = Timespec::new().nsec(100_000_000);

/// `send_each`'s result for a send that did not run: nothing of its buffer went out.
pub const NOT_SENT: i32 = -libc::EAGAIN;

/// An io_uring instance used for batches of non-blocking sends.
pub struct SendRing {
    ring: ManuallyDrop<IoUring>,
    /// Not to be used any more; `leak`: entries may sit unsubmitted in its queue, pointing at
    /// buffers the caller has let go, so the ring is never entered again nor closed.
    dead: bool,
    leak: bool,
}

impl SendRing {
    /// A ring, if this kernel lets this process have one that can send with a timed wait.
    pub fn new() -> io::Result<SendRing> {
        let ring = IoUring::builder().build((2 * CHUNK) as u32)?;
        if !ring.params().is_feature_ext_arg() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring without timed waits (Linux < 5.11)",
            ));
        }
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        if !probe.is_supported(opcode::Send::CODE) || !probe.is_supported(opcode::AsyncCancel::CODE)
        {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring without send (Linux < 5.6)",
            ));
        }
        Ok(SendRing {
            ring: ManuallyDrop::new(ring),
            dead: false,
            leak: false,
        })
    }

    /// Whether the ring still serves (it stops after a kernel misbehaved).
    pub fn usable(&self) -> bool {
        !self.dead
    }

    /// Sends `jobs[i].1` on `jobs[i].0` without waiting; `results[i]` becomes the bytes sent or a
    /// negative errno (`NOT_SENT` when it did not run). An error means the ring is not usable
    /// any more; the results are exact all the same.
    pub fn send_each(&mut self, jobs: &[(RawFd, &[u8])], results: &mut [i32]) -> io::Result<()> {
        debug_assert_eq!(jobs.len(), results.len());
        results.fill(NOT_SENT);
        for (chunk, res) in jobs.chunks(CHUNK).zip(results.chunks_mut(CHUNK)) {
            if self.dead {
                return Err(io::Error::other("io_uring ring unusable"));
            }
            self.send_chunk(chunk, res)?;
        }
        Ok(())
    }

    fn send_chunk(&mut self, jobs: &[(RawFd, &[u8])], results: &mut [i32]) -> io::Result<()> {
        let flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
        let mut pushed = 0;
        for (i, (fd, buf)) in jobs.iter().enumerate() {
            let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
            let entry = opcode::Send::new(types::Fd(*fd), buf.as_ptr(), len)
                .flags(flags)
                .build()
                .user_data(i as u64);
            // SAFETY: the entry points into `buf`, borrowed until this function returns, and it
            // does not return before the send's completion has been taken (or the entry is known
            // never to be submitted, the ring then leaked).
            if unsafe { self.ring.submission().push(&entry) }.is_err() {
                break;
            }
            pushed += 1;
        }
        // The kernel takes all the entries at once unless it is short of memory or of room for
        // completions: a few tries, then whatever is left is never submitted.
        for _ in 0..4 {
            if self.ring.submission().is_empty() {
                break;
            }
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if retryable(&e) => {}
                Err(_) => break,
            }
        }
        let unsubmitted = self.ring.submission().len();
        if unsubmitted > 0 {
            // Never entered again, so these are never submitted.
            self.dead = true;
            self.leak = true;
        }
        let mut out = pushed - unsubmitted;
        let mut cancelled = false;
        while out > 0 {
            for cqe in self.ring.completion() {
                if cqe.user_data() != CANCEL {
                    results[cqe.user_data() as usize] = cqe.result();
                    out -= 1;
                }
            }
            if out == 0 {
                break;
            }
            match self.wait(out, !cancelled) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ETIME) && !cancelled && !self.leak => {
                    // A send is waiting on its socket: this kernel ignored MSG_DONTWAIT. Each
                    // send still out completes once cancelled (with what it sent, if anything).
                    cancelled = true;
                    self.dead = true;
                    // Should the cancellations not go in, the untimed wait that follows still
                    // ends when the client reads.
                    let _ = self.cancel_outstanding(results);
                }
                Err(e) if retryable(&e) || e.raw_os_error() == Some(libc::ETIME) => {}
                Err(e) => {
                    // The sends still out may read their buffers at any time, and the caller
                    // is about to reuse them: one client could get another's bytes. Never
                    // seen (non-blocking sends complete before the submission returns), and a
                    // worker stopping here is respawned by the arbiter.
                    crate::observe::error(&format!(
                        "io_uring wait failed with sends out ({e}); the worker stops"
                    ));
                    std::process::abort();
                }
            }
        }
        if self.dead {
            return Err(io::Error::other("io_uring send waited on a socket"));
        }
        Ok(())
    }

    /// Waits for `want` completions (at most [`WAIT`] when `timed`), submitting nothing.
    fn wait(&self, want: usize, timed: bool) -> io::Result<()> {
        let args = SubmitArgs::new();
        let args = if timed { args.timespec(&WAIT) } else { args };
        let flags = EnterFlags::GETEVENTS | EnterFlags::EXT_ARG;
        // SAFETY: no submission (0 entries), `args` is a valid `io_uring_getevents_arg` (the
        // type is a transparent wrapper) living across the call, and EXT_ARG says so.
        unsafe {
            self.ring
                .submitter()
                .enter(0, want as u32, flags.bits(), Some(&args))
        }
        .map(|_| ())
    }

    /// Asks the kernel to cancel the sends still out (their results still `NOT_SENT`).
    fn cancel_outstanding(&mut self, results: &[i32]) -> io::Result<()> {
        for (i, r) in results.iter().enumerate() {
            if *r != NOT_SENT {
                continue;
            }
            let entry = opcode::AsyncCancel::new(i as u64).build().user_data(CANCEL);
            // SAFETY: a cancellation carries no buffer.
            if unsafe { self.ring.submission().push(&entry) }.is_err() {
                break;
            }
        }
        self.ring.submit().map(|_| ())
    }
}

fn retryable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
    )
}

impl Drop for SendRing {
    fn drop(&mut self) {
        if !self.leak {
            // SAFETY: dropped once, here; nothing is in flight (every send was awaited).
            unsafe { ManuallyDrop::drop(&mut self.ring) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn ring() -> Option<SendRing> {
        // Where io_uring is forbidden (a container profile) there is nothing to test here; the
        // outbox then sends one connection at a time.
        SendRing::new().ok()
    }

    #[test]
    fn each_buffer_goes_out_on_its_own_socket() {
        let Some(mut ring) = ring() else { return };
        // More than one submission's worth.
        let pairs: Vec<(UnixStream, UnixStream)> = (0..CHUNK + 9)
            .map(|_| UnixStream::pair().unwrap())
            .collect();
        let texts: Vec<String> = (0..pairs.len()).map(|i| format!("response {i}")).collect();
        let jobs: Vec<(RawFd, &[u8])> = pairs
            .iter()
            .zip(&texts)
            .map(|((ours, _), t)| (ours.as_raw_fd(), t.as_bytes()))
            .collect();
        let mut results = vec![0; jobs.len()];
        ring.send_each(&jobs, &mut results).unwrap();
        for (((_, peer), t), r) in pairs.iter().zip(&texts).zip(&results) {
            assert_eq!(*r as usize, t.len());
            let mut got = vec![0; t.len()];
            (&*peer).read_exact(&mut got).unwrap();
            assert_eq!(got, t.as_bytes());
        }
        assert!(ring.usable());
    }

    #[test]
    fn a_full_socket_does_not_wait_and_a_bad_one_says_why() {
        let Some(mut ring) = ring() else { return };
        let (full, _peer) = UnixStream::pair().unwrap();
        full.set_nonblocking(true).unwrap();
        let chunk = [b'x'; 65536];
        while (&full).write_all_once(&chunk) {}
        let (ok, mut ok_peer) = UnixStream::pair().unwrap();
        let jobs: Vec<(RawFd, &[u8])> = vec![
            (full.as_raw_fd(), b"more"),
            (-1, b"nowhere"),
            (ok.as_raw_fd(), b"fine"),
        ];
        let mut results = vec![0; 3];
        ring.send_each(&jobs, &mut results).unwrap();
        assert_eq!(results, [-libc::EAGAIN, -libc::EBADF, 4]);
        let mut got = [0; 4];
        ok_peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"fine");
        // Completed at once: a send that waited would have been cancelled, the ring retired.
        assert!(ring.usable());
    }

    trait WriteOnce {
        fn write_all_once(self, b: &[u8]) -> bool;
    }
    impl WriteOnce for &UnixStream {
        /// Whether a non-blocking write took anything.
        fn write_all_once(self, b: &[u8]) -> bool {
            use std::io::Write;
            let mut s = self;
            s.write(b).is_ok_and(|n| n > 0)
        }
    }
}
