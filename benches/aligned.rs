//! A zeroed heap buffer aligned for O_DIRECT, shared by the end-to-end run's
//! programs (`limits.rs`, `baseline_server.rs`). Not a benchmark target.

/// O_DIRECT alignment of offsets, lengths and buffers.
pub const ALIGN: usize = 4096;

pub struct Aligned {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

// SAFETY: the buffer is plain memory owned by one thread at a time.
unsafe impl Send for Aligned {}

impl Aligned {
    /// At least `len` bytes (one alignment unit at least), all zero.
    pub fn new(len: usize) -> Aligned {
        let layout = std::alloc::Layout::from_size_align(len.max(ALIGN), ALIGN).expect("layout");
        // SAFETY: non-zero size; zeroed so every byte is initialised.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        Aligned { ptr, layout }
    }

    pub fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: ptr holds layout.size() initialised bytes owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}
