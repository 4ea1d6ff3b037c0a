//! Buffers a thread keeps for reuse: a buffer handed out again only once
//! nothing else holds it.
//!
//! A PUT's block and the coder's parity buffer are each about a megabyte, and
//! their slices travel to writers, possibly on another core, which drop them
//! when their bytes are on the way to disk. Allocating and zeroing a fresh
//! megabyte per block costs a good part of what it holds; a [`Kept`] list
//! gives the same buffer back once its last slice is gone.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Buffers kept by one thread, free or still shared, oldest first.
pub struct Kept {
    buffers: VecDeque<Bytes>,
    /// The most buffers kept; the oldest is let go past it.
    most: usize,
}

impl Kept {
    pub const fn new(most: usize) -> Self {
        Kept { buffers: VecDeque::new(), most }
    }

    /// A buffer of exactly `size` initialized bytes: a kept one nothing else
    /// holds any more, or a zeroed new one. Kept buffers of another size are
    /// let go: a list serves one size at a time.
    pub fn take(&mut self, size: usize) -> BytesMut {
        for _ in 0..self.buffers.len() {
            let Some(buffer) = self.buffers.pop_front() else { break };
            if buffer.len() != size {
                continue;
            }
            match buffer.try_into_mut() {
                Ok(free) => return free,
                Err(shared) => self.buffers.push_back(shared),
            }
        }
        BytesMut::zeroed(size)
    }

    /// The sizes of the buffers kept, oldest first.
    #[cfg(test)]
    pub fn kept_sizes(&self) -> Vec<usize> {
        self.buffers.iter().map(Bytes::len).collect()
    }

    /// Keeps `buffer` (the whole of one [`Kept::take`] gave) for reuse once
    /// its slices are dropped.
    pub fn give(&mut self, buffer: Bytes) {
        if self.buffers.len() >= self.most {
            self.buffers.pop_front();
        }
        self.buffers.push_back(buffer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_only_when_nothing_else_holds_it() {
        let mut kept = Kept::new(4);
        let mut first = kept.take(4096);
        first[0] = 7;
        let first = first.freeze();
        let slice = first.slice(100..200);
        kept.give(first);
        // A writer still holds a slice: the kept buffer cannot be handed out.
        let other = kept.take(4096);
        assert_eq!(other[0], 0, "a shared buffer was handed out again");
        drop(slice);
        let again = kept.take(4096);
        assert_eq!(again[0], 7, "the buffer whose slices were dropped was not reused");
        assert_eq!(again.len(), 4096);
        // Buffers of another size are never handed out for this one.
        kept.give(again.freeze());
        assert_eq!(kept.take(8192).len(), 8192);
    }

    #[test]
    fn no_more_than_the_most_are_kept() {
        let mut kept = Kept::new(2);
        // Each is held elsewhere too, so that the next take makes a new one.
        let mut held = Vec::new();
        for mark in 1..=3u8 {
            let mut b = kept.take(64);
            b[0] = mark;
            let b = b.freeze();
            held.push(b.clone());
            kept.give(b);
        }
        assert_eq!(kept.kept_sizes(), [64, 64]);
        // The oldest (marked 1) was let go; the two kept are 2 and 3.
        let marks: Vec<u8> = kept.buffers.iter().map(|b| b[0]).collect();
        assert_eq!(marks, [2, 3]);
    }
}
