//! How many connections each worker has open, in a small mapping the master maps (shared,
//! anonymous) before its first fork, so that a worker holding more than its share of kept-alive
//! connections lets its siblings accept first (`worker::serve::accept`).
//!
//! Why: each worker accepts one connection per turn, and whichever worker runs when a burst of
//! connects arrives takes most of it; kept-alive connections then stay where they landed. With
//! two workers and 64 connections, splits of 13/53 were common: one worker CPU-bound, its
//! sibling partly idle, and the busy worker's clients waiting tens of ms at the tail.
//!
//! The master owns the slots: it gives each worker one at its fork (zeroed), zeroes it again
//! when it reaps the worker, and keeps the count of live workers. A worker only writes its own
//! slot. The numbers are hints (relaxed atomics, read without a lock): a stale one at worst
//! delays an accept by the accept loop's short wait or lets one go to the busier worker.

use std::ptr::NonNull;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous};

/// Workers beyond this many slots accept as if alone (no worker count comes near it).
pub const SLOTS: usize = 1000;

#[repr(C)]
struct Page {
    /// Live workers (the master's count).
    live: AtomicU32,
    /// One past the highest slot handed out.
    top: AtomicU32,
    conns: [Slot; SLOTS],
}

/// One worker's count, alone in its cache line: workers write theirs at every accept and
/// close, and counts side by side would bounce one line between their CPUs.
#[repr(C, align(64))]
struct Slot(AtomicU32);

struct Shared(NonNull<Page>);
// SAFETY: the page holds only atomics, mapped for the life of the process and never unmapped.
unsafe impl Send for Shared {}
// SAFETY: as above: every access is an atomic operation.
unsafe impl Sync for Shared {}

static PAGE: OnceLock<Option<Shared>> = OnceLock::new();
/// This worker's slot (`usize::MAX`: none, or the master).
static MINE: AtomicUsize = AtomicUsize::new(usize::MAX);

fn page() -> Option<&'static Page> {
    let shared = PAGE.get_or_init(|| {
        let len = std::num::NonZeroUsize::new(std::mem::size_of::<Page>())?;
        // SAFETY: a fresh anonymous mapping at an address the kernel picks: it aliases no
        // existing memory, and a new anonymous mapping reads as zeros, a valid `Page` (all
        // atomics at 0).
        let ptr = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }
        .ok()?;
        Some(Shared(ptr.cast()))
    });
    // SAFETY: the mapping is never unmapped and `Page` is only atomics (shared access is sound).
    shared.as_ref().map(|s| unsafe { s.0.as_ref() })
}

/// Master: maps the page if it is not yet (before the first fork, so that every worker
/// inherits it); the slot for a new worker, zeroed, given the slots `used` by live workers.
pub fn slot_for_new_worker(used: impl Iterator<Item = usize>) -> Option<usize> {
    let page = page()?;
    let mut taken = vec![false; SLOTS];
    for s in used.filter(|s| *s < SLOTS) {
        taken[s] = true;
    }
    let slot = taken.iter().position(|t| !t)?;
    page.conns[slot].0.store(0, Ordering::Relaxed);
    page.top.fetch_max(slot as u32 + 1, Ordering::Relaxed);
    Some(slot)
}

/// Master: a worker is gone, and its connections with it.
pub fn release(slot: usize) {
    if let Some(c) = page().and_then(|p| p.conns.get(slot)) {
        c.0.store(0, Ordering::Relaxed);
    }
}

/// Master: the number of live workers.
pub fn set_live(n: usize) {
    if let Some(p) = page() {
        p.live
            .store(u32::try_from(n).unwrap_or(u32::MAX), Ordering::Relaxed);
    }
}

/// Worker, just after the fork: the slot the master gave it.
pub fn adopt(slot: Option<usize>) {
    MINE.store(slot.unwrap_or(usize::MAX), Ordering::Relaxed);
}

/// Worker: how many connections it has open now.
pub fn publish(open: usize) {
    let slot = MINE.load(Ordering::Relaxed);
    if let Some(c) = page().and_then(|p| p.conns.get(slot)) {
        c.0.store(u32::try_from(open).unwrap_or(u32::MAX), Ordering::Relaxed);
    }
}

/// Worker: whether `open` connections are more than its share of all the workers' open
/// connections (by more than one), so that it should let a sibling accept the next one.
pub fn over_share(open: usize) -> bool {
    if MINE.load(Ordering::Relaxed) == usize::MAX {
        return false;
    }
    let Some(page) = page() else {
        return false;
    };
    let live = page.live.load(Ordering::Relaxed) as usize;
    let top = (page.top.load(Ordering::Relaxed) as usize).min(SLOTS);
    let total: usize = page.conns[..top]
        .iter()
        .map(|c| c.0.load(Ordering::Relaxed) as usize)
        .sum();
    beyond_share(open, total, live)
}

/// `open` of `total` connections over `live` workers is more than one beyond a fair share.
fn beyond_share(open: usize, total: usize, live: usize) -> bool {
    live > 1 && open > total.div_ceil(live) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_over_its_share_by_more_than_one_lets_siblings_accept() {
        // Alone: always accepts.
        assert!(!beyond_share(50, 50, 1));
        assert!(!beyond_share(50, 50, 0));
        // Two workers, 4 and 0: its share is 2, it is 2 over.
        assert!(beyond_share(4, 4, 2));
        // 3 and 0: one over is within the slack (a burst's first connections).
        assert!(!beyond_share(3, 3, 2));
        // Even splits and the lighter side never wait.
        assert!(!beyond_share(32, 64, 2));
        assert!(!beyond_share(13, 66, 2));
        assert!(beyond_share(53, 66, 2));
        // Short connections (Connection: close): one or two open at a time never wait.
        assert!(!beyond_share(1, 1, 2));
        assert!(!beyond_share(2, 2, 4));
    }
}
