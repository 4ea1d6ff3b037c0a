//! DMA reads lent to another thread: a shard read served for another core (or
//! for the inter-node server) leaves as [`Bytes`] that point into the direct-I/O
//! buffer the kernel read into, instead of a copy of it.
//!
//! glommio's [`ReadResult`] is `Rc`-based and its buffer may come from the
//! reactor's registered-buffer arena, so it may be created, cloned and dropped
//! only on the thread that read it. A [`Lent`] read keeps to that rule:
//! - the borrower reads the bytes through a pointer taken on the home thread,
//!   and never touches the `ReadResult` itself;
//! - when the borrower drops the last `Bytes`, the `ReadResult` goes back to
//!   its home thread's return list, still undropped;
//! - the home thread drops what came back each time it lends again
//!   ([`lend`]) and every [`RETURN_SWEEP_INTERVAL`] ([`sweep`]), so a core
//!   that stops lending still frees them.
//!
//! The buffer stays valid while lent: it is freed only when its `ReadResult`
//! is dropped, which happens on the home thread after the last borrower let go.
//! A home thread that has exited never drains its list: what is on it then is
//! leaked, never dropped on the wrong thread (only at shutdown).

use std::mem::ManuallyDrop;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use glommio::io::ReadResult;

/// How often an executor frees the buffers that came back while it was not
/// lending: the memory an idle core may hold after its last lent read.
pub const RETURN_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A thread's lent reads that came back, waiting to be dropped there.
#[derive(Default)]
struct Home {
    returned: Mutex<Vec<Returned>>,
}

/// A `ReadResult` on its way home. Only its home thread ever drops one; if the
/// list it sits on outlives that thread, it is leaked.
struct Returned(ManuallyDrop<ReadResult>);

// SAFETY: a `Returned` is only moved between threads, never used; it is
// unwrapped and dropped only on its home thread (`Home::drain`), so the `Rc`
// counts inside are never touched off that thread.
unsafe impl Send for Returned {}

impl Home {
    /// Drops every read that came back. Called only on the home thread (through
    /// [`HOME`]).
    fn drain(&self) {
        let back = match self.returned.lock() {
            Ok(mut list) => std::mem::take(&mut *list),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for Returned(read) in back {
            drop(ManuallyDrop::into_inner(read));
        }
    }
}

thread_local! {
    /// This thread's return list; a `Lent` knows its home by this `Arc`.
    static HOME: Arc<Home> = Arc::default();
}

/// A read whose bytes another thread may borrow.
struct Lent {
    ptr: *const u8,
    len: usize,
    read: ManuallyDrop<ReadResult>,
    home: Arc<Home>,
}

// SAFETY: off its home thread a `Lent` is used only through `ptr`/`len`, which
// point into a buffer that no one writes and that stays allocated until `read`
// is dropped; `Drop` sends `read` home instead of dropping it elsewhere.
unsafe impl Send for Lent {}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: see `unsafe impl Send`; the bytes live as long as `self.read`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        // SAFETY: `read` is taken once, here, and `self` is not used after.
        let read = unsafe { ManuallyDrop::take(&mut self.read) };
        // At home (bytes used on their own core after all) it is dropped at
        // once. While the thread's locals are being destroyed it
        // counts as away: then the read is leaked.
        if HOME.try_with(|home| Arc::ptr_eq(home, &self.home)).unwrap_or(false) {
            drop(read);
            return;
        }
        let back = Returned(ManuallyDrop::new(read));
        match self.home.returned.lock() {
            Ok(mut list) => list.push(back),
            Err(poisoned) => poisoned.into_inner().push(back),
        }
    }
}

/// The bytes of `read` as `Bytes` that may go to any thread, without a copy.
/// Also frees this thread's reads that came back since it last lent.
pub fn lend(read: ReadResult) -> Bytes {
    if read.is_empty() {
        return Bytes::new();
    }
    HOME.with(|home| {
        home.drain();
        let (ptr, len) = (read.as_ptr(), read.len());
        Bytes::from_owner(Lent { ptr, len, read: ManuallyDrop::new(read), home: home.clone() })
    })
}

/// Frees this thread's reads that came back; run on every executor every
/// [`RETURN_SWEEP_INTERVAL`].
pub fn sweep() {
    HOME.with(|home| home.drain());
}

/// How many of this thread's lent reads came back and wait to be freed.
#[cfg(test)]
fn returned_waiting() -> usize {
    HOME.with(|home| home.returned.lock().map(|l| l.len()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use glommio::LocalExecutorBuilder;
    use glommio::io::DmaFile;

    use super::*;

    /// A read lent to another thread is read there byte for byte, comes back
    /// when that thread drops it, and is freed by the home thread's sweep.
    #[test]
    fn a_lent_read_is_read_elsewhere_and_freed_at_home() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard");
        let content: Vec<u8> = (0..64 << 10).map(|i: u32| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let (lent_tx, lent_rx) = mpsc::channel::<Bytes>();
        let (dropped_tx, dropped_rx) = mpsc::channel::<()>();
        let home = LocalExecutorBuilder::default()
            .spawn(move || async move {
                let file = DmaFile::open(&path).await.unwrap();
                let read = file.read_at(4096, 32 << 10).await.unwrap();
                lent_tx.send(lend(read)).unwrap();
                dropped_rx.recv().unwrap();
                let waiting = returned_waiting();
                sweep();
                file.close().await.unwrap();
                (waiting, returned_waiting())
            })
            .unwrap();
        let bytes = lent_rx.recv().unwrap();
        let borrower = std::thread::spawn(move || {
            let half = bytes.slice(16 << 10..);
            drop(bytes);
            let seen = half.to_vec();
            drop(half);
            seen
        });
        let seen = borrower.join().unwrap();
        assert_eq!(seen, content[4096 + (16 << 10)..4096 + (32 << 10)]);
        dropped_tx.send(()).unwrap();
        let (waiting, after_sweep) = home.join().unwrap();
        assert_eq!((waiting, after_sweep), (1, 0), "the read comes home once, and the sweep frees it");
    }
}
