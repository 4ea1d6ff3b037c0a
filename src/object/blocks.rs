//! Block buffers a core keeps for reuse. A PUT receives its body straight into
//! a block (the socket read's own destination, no staging copy), so a block must
//! be initialized memory. Zeroing a fresh 1 MiB buffer for every block would
//! give back much of the copy saved; instead each core keeps the blocks its PUTs
//! are done with, and one comes back once the last shard slice of it (possibly
//! queued to another core's writer) is dropped.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

use crate::reuse::Kept;

/// Most blocks a core keeps, free or still shared with a writer: one per
/// staging slot, so a core's PUTs at full load rarely allocate.
const KEPT_BLOCKS_PER_CORE: usize = super::STAGING_SLOTS_PER_CORE as usize;

thread_local! {
    static KEPT: RefCell<Kept> = const { RefCell::new(Kept::new(KEPT_BLOCKS_PER_CORE)) };
}

/// A buffer of exactly `size` initialized bytes: a kept block nothing else
/// holds any more, or a zeroed new one.
pub(crate) fn take(size: usize) -> BytesMut {
    KEPT.with(|kept| kept.borrow_mut().take(size))
}

/// Keeps `block` (the whole buffer [`take`] gave) for reuse once its slices are
/// dropped; the oldest kept block is let go when there are too many.
pub(crate) fn give(block: Bytes) {
    KEPT.with(|kept| kept.borrow_mut().give(block))
}
