//! Streaming writer of one shard file on a local drive, with direct I/O.
//!
//! Bytes are gathered into DMA buffers of [`WRITE_BUFFER_BYTES`] and written
//! behind, with at most [`WRITE_BUFFERS`] buffers per writer. The last buffer
//! is written only as far as its bytes reach, rounded up with zeros to
//! [`FILE_ALIGN_BYTES`]: a shard file ends in up to 4 KiB of zero padding.
//! Readers never see it, since they find frames by offsets computed from the
//! object's size; and the write never leaves the space reserved for the file
//! (`create_file` reserves the padded size).
//!
//! Why not glommio's `DmaStreamWriter`: it writes its whole last buffer (256 KiB
//! for the 8 bytes that spill past a 1 MiB object's 512 KiB shard, 1.5x the disk
//! writes of such a PUT), beyond the reserved space, and then cuts the file to
//! size after the fdatasync: a blocking-pool call that reads the last block back
//! from disk to zero its tail, and a size change that is never synced.

use std::collections::VecDeque;
use std::rc::Rc;

use glommio::io::{DmaBuffer, DmaFile};
use glommio::task::JoinHandle;

use super::{DriveError, DriveResult};

/// Size of a writer's DMA buffers: large enough that a 1 MiB block's shard goes
/// to disk in a few big writes, small enough to keep 16 open writers per core
/// cheap.
const WRITE_BUFFER_BYTES: usize = 256 << 10;
/// DMA buffers per writer: both written, or one written while the next fills.
/// A third (one more write in flight) made large PUTs no faster, alternated
/// with two, and costs 256 KiB more per open shard file.
const WRITE_BUFFERS: usize = 2;
/// A shard file's length is a multiple of this: the filesystem block, so that
/// no direct write covers part of one (or the device's sector, if larger).
pub const FILE_ALIGN_BYTES: u64 = 4096;

const _: () = assert!((WRITE_BUFFER_BYTES as u64).is_multiple_of(FILE_ALIGN_BYTES));

/// The padding unit of `file`: [`FILE_ALIGN_BYTES`], or its device's sector if
/// larger.
fn alignment(file: &DmaFile) -> u64 {
    file.alignment().max(FILE_ALIGN_BYTES)
}

/// The length of `file` once `len` bytes of content are written to it: what
/// `create_file` reserves.
pub(super) fn padded_len(file: &DmaFile, len: u64) -> u64 {
    len.next_multiple_of(alignment(file))
}

/// One shard file being written.
pub struct LocalWriter {
    file: Rc<DmaFile>,
    /// The padding unit: [`FILE_ALIGN_BYTES`], or the device's sector if larger.
    alignment: u64,
    /// The buffer filling now and how much of it is filled.
    buffer: Option<DmaBuffer>,
    filled: usize,
    /// File offset of the buffer filling now.
    pos: u64,
    /// Writes submitted and not yet checked, oldest first.
    in_flight: VecDeque<JoinHandle<DriveResult<()>>>,
    /// Content bytes taken, padding not counted.
    written: u64,
}

impl LocalWriter {
    pub(super) fn new(file: DmaFile) -> Self {
        let alignment = alignment(&file);
        LocalWriter {
            file: Rc::new(file),
            alignment,
            buffer: None,
            filled: 0,
            pos: 0,
            in_flight: VecDeque::with_capacity(WRITE_BUFFERS),
            written: 0,
        }
    }

    pub async fn write(&mut self, mut data: &[u8]) -> DriveResult<()> {
        while !data.is_empty() {
            let buffer = match &mut self.buffer {
                Some(b) => b,
                None => self.buffer.insert(self.file.alloc_dma_buffer(WRITE_BUFFER_BYTES)),
            };
            let take = data.len().min(WRITE_BUFFER_BYTES - self.filled);
            buffer.as_bytes_mut()[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            self.written += take as u64;
            data = &data[take..];
            if self.filled == WRITE_BUFFER_BYTES {
                self.submit();
                // The next buffer is taken only once one is free.
                self.settle(WRITE_BUFFERS - 1).await?;
            }
        }
        Ok(())
    }

    /// Writes what is left, waits for every write, fdatasyncs and closes;
    /// returns the content bytes written.
    pub async fn finish(mut self) -> DriveResult<u64> {
        self.submit();
        self.settle(0).await?;
        self.file.fdatasync().await.map_err(DriveError::from_glommio)?;
        let (file, written) = (self.file.clone(), self.written);
        // Every write task has finished and dropped its handle on the file: this
        // one is the last.
        drop(self);
        file.close_rc().await.map_err(DriveError::from_glommio)?;
        Ok(written)
    }

    /// Sends the filled part of the buffer to disk, padded with zeros to the
    /// alignment.
    fn submit(&mut self) {
        // A buffer exists only once a byte was put in it.
        let Some(mut buffer) = self.buffer.take() else { return };
        let len = (self.filled as u64).next_multiple_of(self.alignment) as usize;
        buffer.as_bytes_mut()[self.filled..len].fill(0);
        buffer.trim_to_size(len);
        let (file, pos) = (self.file.clone(), self.pos);
        let write = glommio::spawn_local(async move {
            let done = file.write_at(buffer, pos).await.map_err(DriveError::from_glommio)?;
            if done != len {
                return Err(DriveError::Io(format!("short write: {done} of {len} bytes at offset {pos}")));
            }
            Ok(())
        })
        .detach();
        self.in_flight.push_back(write);
        self.pos += len as u64;
        self.filled = 0;
    }

    /// Waits until at most `most` writes are in flight; the first failure ends
    /// the file.
    async fn settle(&mut self, most: usize) -> DriveResult<()> {
        while self.in_flight.len() > most {
            let Some(write) = self.in_flight.pop_front() else { break };
            match write.await {
                Some(result) => result?,
                None => return Err(DriveError::Io("a shard write was cancelled".into())),
            }
        }
        Ok(())
    }
}

impl Drop for LocalWriter {
    /// A writer dropped before `finish` (a PUT that failed or was abandoned)
    /// cancels its writes; the caller removes the file.
    fn drop(&mut self) {
        for write in self.in_flight.drain(..) {
            write.cancel();
        }
    }
}
