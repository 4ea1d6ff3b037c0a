//! Block buffers a core keeps for reuse. A PUT receives its body straight into
//! a block (the socket read's own destination, no staging copy), so a block must
//! be initialized memory. Zeroing a fresh 1 MiB buffer for every block would
//! give back much of the copy saved; instead each core keeps the blocks its PUTs
//! are done with, and one comes back once the last shard slice of it (possibly
//! queued to another core's writer) is dropped.

use std::cell::RefCell;
use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Most blocks a core keeps, free or still shared with a writer: one per
/// staging slot, so a core's PUTs at full load rarely allocate.
const KEPT_BLOCKS_PER_CORE: usize = super::STAGING_SLOTS_PER_CORE as usize;

thread_local! {
    static KEPT: RefCell<VecDeque<Bytes>> = const { RefCell::new(VecDeque::new()) };
}

/// A buffer of exactly `size` initialized bytes: a kept block nothing else
/// holds any more, or a zeroed new one.
pub(crate) fn take(size: usize) -> BytesMut {
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        for _ in 0..kept.len() {
            let Some(block) = kept.pop_front() else { break };
            if block.len() != size {
                continue;
            }
            match block.try_into_mut() {
                Ok(free) => return free,
                Err(shared) => kept.push_back(shared),
            }
        }
        BytesMut::zeroed(size)
    })
}

/// Keeps `block` (the whole buffer [`take`] gave) for reuse once its slices are
/// dropped; the oldest kept block is let go when there are too many.
pub(crate) fn give(block: Bytes) {
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept.len() >= KEPT_BLOCKS_PER_CORE {
            kept.pop_front();
        }
        kept.push_back(block);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_comes_back_only_when_nothing_else_holds_it() {
        let mut first = take(4096);
        first[0] = 7;
        let first = first.freeze();
        let slice = first.slice(100..200);
        give(first);
        // A writer still holds a slice: the kept block cannot be handed out.
        let other = take(4096);
        assert_eq!(other[0], 0, "a shared block was handed out again");
        drop(slice);
        let again = take(4096);
        assert_eq!(again[0], 7, "the block whose slices were dropped was not reused");
        assert_eq!(again.len(), 4096);
        // Blocks of another size are never handed out for this one.
        give(again.freeze());
        assert_eq!(take(8192).len(), 8192);
    }
}
