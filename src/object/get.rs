//! GET: pick the version read quorum agrees on, then stream it a span of blocks
//! at a time (one read per shard file for the span's blocks), reading data
//! shards first and parity only when a data shard is missing or fails its
//! bitrot check. The next span is fetched (read, verified, and decoded when
//! shards are lost) as a task of its own while a span is sent: one span ahead,
//! so a GET holds at most two spans. Spans are 2 to [`MAX_SPAN_BLOCKS`] blocks
//! long: the GETs of a core share [`SPAN_BUDGET_BYTES_PER_CORE`]. Shards are
//! sent from the buffers they were read into: this core's own (`Piece`), or
//! those another core lent (`drive::lend`). Damaged objects are reported for
//! healing.

use std::rc::Rc;

use bytes::Bytes;
use futures_util::future::join_all;

use super::quorum::{self, Found};
use super::{Body, ObjectInfo, ObjectLayer, key_location, names};
use crate::drive::{DriveHandle, Piece};
use crate::erasure::{BITROT_HASH_BYTES, Erasure, shard_file_offset, verify_framed};
use crate::error::{Error, Result};
use crate::runtime::lock::LockGuard;

/// A byte range as a client asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// `bytes=start-end` (end inclusive) or `bytes=start-`.
    From { start: u64, end: Option<u64> },
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl Range {
    /// Resolves to `(offset, length)` within an object of `size` bytes.
    pub fn resolve(self, size: u64) -> Result<(u64, u64)> {
        match self {
            Range::From { start, end } => {
                if start >= size || end.is_some_and(|e| e < start) {
                    return Err(Error::InvalidRange { size });
                }
                let last = end.map_or(size - 1, |e| e.min(size - 1));
                Ok((start, last - start + 1))
            }
            Range::Suffix(n) => {
                if n == 0 {
                    return Err(Error::InvalidRange { size });
                }
                let n = n.min(size);
                Ok((size - n, n))
            }
        }
    }
}

/// Blocks read from each shard file at once, at most. Longer spans mean
/// fewer reads, cross-core messages and sends per byte: four 64 MiB GETs
/// cost 5-8% less CPU with four blocks than with two (0.552 against 0.583
/// CPU s/GiB, 4 alternating pairs), for 4 MiB more held per GET.
const MAX_SPAN_BLOCKS: u64 = 4;
/// Blocks read from each shard file at once, at least (when it has as many):
/// one-block spans cost 64 concurrent 64 MiB GETs 0.76 against 0.66 CPU s/GiB.
const MIN_SPAN_BLOCKS: u64 = 2;

/// Block bytes the streaming GETs of one core may hold at once (each its
/// current span and the next): up to 16 GETs of 1 MiB blocks read
/// [`MAX_SPAN_BLOCKS`] blocks per span; more share this down to
/// [`MIN_SPAN_BLOCKS`] each, never less (so the budget is exceeded only where
/// every GET reads the shortest span).
const SPAN_BUDGET_BYTES_PER_CORE: u64 = 128 << 20;

thread_local! {
    /// File-backed readers open on this core.
    static STREAMING_READERS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Blocks per span for a GET among `readers` streaming on its core.
fn span_blocks(readers: u64, block_size: u64) -> u64 {
    (SPAN_BUDGET_BYTES_PER_CORE / (2 * readers.max(1) * block_size.max(1))).clamp(MIN_SPAN_BLOCKS, MAX_SPAN_BLOCKS)
}

/// Where each shard of the version lives.
#[derive(Clone)]
enum ShardSource {
    File(DriveHandle),
    Inline(Bytes),
    Missing,
}

/// A streaming read of one object version; holds the object's read lock.
pub struct ObjectReader {
    layer: Rc<ObjectLayer>,
    info: ObjectInfo,
    bucket: String,
    key: String,
    erasure: Erasure,
    /// Per shard index.
    sources: Vec<ShardSource>,
    /// Shard paths are `<key_dir>/<data_dir>/part.<n>`.
    data_path: String,
    /// (part number, part size) in object order.
    parts: Vec<(u32, u64)>,
    /// Next byte to return and the end of the requested range (exclusive).
    pos: u64,
    end: u64,
    /// Pieces of the current span not yet returned (data shards, sliced to the
    /// range): a span goes out as its shards, never copied into one buffer.
    pending: std::collections::VecDeque<Piece>,
    /// The next span, fetched while this one is sent.
    prefetch: Option<Prefetch>,
    damaged: bool,
    /// Counted among this core's streaming GETs, which share the span budget.
    _streaming: Option<StreamingSlot>,
    _guard: LockGuard,
}

/// The blocks of a part read together: where a byte of the object lies, and
/// the blocks from there on that the range needs, up to [`span_blocks`].
#[derive(Clone, Copy, PartialEq, Eq)]
struct SpanAt {
    part: u32,
    /// The part's first byte in the object.
    part_start: u64,
    /// The first block's index in its part, and the number of blocks.
    index: u64,
    count: u64,
    /// The span's first byte in its part, and its length.
    start: u64,
    len: usize,
}

impl SpanAt {
    /// Whether object byte `pos` lies in this span.
    fn holds(&self, pos: u64) -> bool {
        let first = self.part_start + self.start;
        (first..first + self.len as u64).contains(&pos)
    }
}

/// Counts a file-backed reader in [`STREAMING_READERS`] while it lives.
struct StreamingSlot;

impl StreamingSlot {
    fn take() -> StreamingSlot {
        STREAMING_READERS.with(|r| r.set(r.get() + 1));
        StreamingSlot
    }
}

impl Drop for StreamingSlot {
    fn drop(&mut self) {
        STREAMING_READERS.with(|r| r.set(r.get().saturating_sub(1)));
    }
}

/// A span fetched: its blocks' data shards in order (each trimmed to its
/// block's length), and the shards found missing, damaged or unreadable on the
/// way, each with whether its drive was offline.
struct Fetched {
    span: Result<Vec<Piece>>,
    lost: Vec<(usize, bool)>,
}

/// The next span, fetched ahead (read, verified and, when shards are lost,
/// decoded) while the current one is sent. Dropping it cancels the fetch.
struct Prefetch {
    at: SpanAt,
    fetch: glommio::Task<Fetched>,
}

impl ObjectLayer {
    /// Opens an object (or a byte range of it) for streaming.
    pub async fn get_object(self: &Rc<Self>, bucket: &str, key: &str, range: Option<Range>) -> Result<ObjectReader> {
        names::check_bucket(bucket)?;
        names::check_key(key)?;
        let guard = self.lock(bucket, key, false).await?;
        let set = self.set_for(bucket, key);
        let found = match quorum::read_metas(set, bucket, key).await {
            Err(Error::NoSuchKey) => {
                self.require_bucket(bucket).await?;
                return Err(Error::NoSuchKey);
            }
            other => other?,
        };
        let meta = &found.meta;
        let (pos, len) = match range {
            Some(r) => r.resolve(meta.size)?,
            None => (0, meta.size),
        };
        let erasure = Erasure::new(meta.erasure.data, meta.erasure.parity, meta.erasure.block_size)
            .map_err(|e| Error::Internal(format!("stored erasure layout: {e}")))?;
        let sources = shard_sources(set.drives.as_slice(), &found, erasure.total_shards());
        let (key_dir, _) = key_location(key);
        let data_path = match &meta.data_dir {
            Some(d) => format!("{key_dir}/{d}"),
            None => String::new(),
        };
        Ok(ObjectReader {
            layer: self.clone(),
            info: ObjectInfo::from_meta(bucket, key, meta),
            bucket: bucket.to_string(),
            key: key.to_string(),
            erasure,
            sources,
            data_path,
            parts: meta.parts.iter().map(|p| (p.number, p.size)).collect(),
            pos,
            end: pos + len,
            pending: std::collections::VecDeque::new(),
            prefetch: None,
            damaged: found.damaged,
            _streaming: meta.data_dir.is_some().then(StreamingSlot::take),
            _guard: guard,
        })
    }
}

fn shard_sources(drives: &[DriveHandle], found: &Found, shards: usize) -> Vec<ShardSource> {
    let mut sources: Vec<ShardSource> = (0..shards).map(|_| ShardSource::Missing).collect();
    for (i, drive) in drives.iter().enumerate() {
        if !found.agrees(i) {
            continue;
        }
        let Some((m, inline)) = &found.per_drive[i] else { continue };
        let index = m.erasure.index;
        if index >= shards {
            continue;
        }
        sources[index] = if found.meta.data_dir.is_none() {
            ShardSource::Inline(inline.clone())
        } else {
            ShardSource::File(drive.clone())
        };
    }
    sources
}

impl ObjectReader {
    pub fn info(&self) -> &ObjectInfo {
        &self.info
    }

    /// Bytes left to return.
    pub fn remaining(&self) -> u64 {
        self.end - self.pos
    }

    /// The next piece of the object as `Bytes` (a buffer read on this core is
    /// lent, not copied).
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        Ok(self.next_piece().await?.map(Piece::into_bytes))
    }

    /// The next pieces of the object: what is left of the current span, else
    /// the next span's (a data shard of each of its blocks); empty at the end.
    /// A client's response goes out a batch per `sendmsg`.
    pub async fn next_pieces(&mut self) -> Result<Vec<Piece>> {
        let Some(first) = self.next_piece().await? else { return Ok(Vec::new()) };
        let mut pieces = Vec::with_capacity(1 + self.pending.len());
        pieces.push(first);
        for piece in self.pending.drain(..) {
            self.pos += piece.len() as u64;
            pieces.push(piece);
        }
        Ok(pieces)
    }

    /// The next piece of the object (at most one shard of a block); `None` at the end.
    pub async fn next_piece(&mut self) -> Result<Option<Piece>> {
        if let Some(piece) = self.pending.pop_front() {
            self.pos += piece.len() as u64;
            return Ok(Some(piece));
        }
        if self.pos >= self.end {
            self.finish_damage_report();
            return Ok(None);
        }
        // The span fetched ahead, even if the span length has changed since
        // (GETs came or went on this core); else the span holding `pos`.
        let ahead = self.prefetch.as_ref().map(|p| p.at).filter(|a| a.holds(self.pos));
        let at = match ahead {
            Some(at) => at,
            None => self.locate(self.pos).ok_or_else(|| Error::Internal("range beyond the parts".into()))?,
        };
        let pieces = self.read_span(at).await?;
        // The range goes on past this span: start fetching the next one now.
        let next = at.part_start + at.start + at.len as u64;
        if next < self.end && !self.data_path.is_empty() {
            self.start_prefetch(next);
        }
        let in_part = self.pos - at.part_start;
        let from = (in_part - at.start) as usize;
        let to = ((self.end - at.part_start - at.start) as usize).min(at.len);
        let mut offset = 0;
        for piece in pieces {
            let (start, stop) = (offset, offset + piece.len());
            offset = stop;
            if stop > from && start < to {
                self.pending.push_back(piece.slice(from.max(start) - start..to.min(stop) - start));
            }
        }
        let first = self.pending.pop_front().ok_or_else(|| Error::Internal("an empty span was read".into()))?;
        self.pos += first.len() as u64;
        Ok(Some(first))
    }

    /// The span starting at the block that holds object byte `pos` (pos < end):
    /// up to [`span_blocks`] blocks of its part, none past the range's end.
    fn locate(&self, pos: u64) -> Option<SpanAt> {
        let block_size = self.erasure.block_size() as u64;
        let most = span_blocks(STREAMING_READERS.with(|r| r.get()), block_size);
        let mut part_start = 0;
        for &(part, size) in &self.parts {
            if pos < part_start + size {
                let index = (pos - part_start) / block_size;
                let last_needed = (self.end.min(part_start + size) - 1 - part_start) / block_size;
                let count = (last_needed + 1 - index).clamp(1, most);
                let start = index * block_size;
                let len = (size - start).min(count * block_size) as usize;
                return Some(SpanAt { part, part_start, index, count, start, len });
            }
            part_start += size;
        }
        None
    }

    /// Starts fetching the span holding object byte `pos`.
    fn start_prefetch(&mut self, pos: u64) {
        let Some(at) = self.locate(pos) else { return };
        self.prefetch = Some(Prefetch { at, fetch: glommio::spawn_local(self.fetch_span(at)) });
    }

    /// Reads, verifies and (when needed) reconstructs one span: the fetch ahead
    /// when it is this span's, else a fetch now. Shards found lost are never
    /// used again; damage is reported for healing (an offline drive is healed by
    /// a pass when it returns).
    async fn read_span(&mut self, at: SpanAt) -> Result<Vec<Piece>> {
        let fetched = match self.prefetch.take() {
            Some(p) if p.at == at => p.fetch.await,
            _ => self.fetch_span(at).await,
        };
        for (i, offline) in fetched.lost {
            self.sources[i] = ShardSource::Missing;
            self.damaged |= !offline;
        }
        if matches!(fetched.span, Err(Error::InsufficientReadQuorum { .. })) {
            self.damaged = true;
            self.finish_damage_report();
        }
        fetched.span
    }

    /// Fetches one span with the shard sources known now; owns all it needs,
    /// so that it can run ahead as its own task.
    fn fetch_span(&self, at: SpanAt) -> impl std::future::Future<Output = Fetched> + 'static {
        let sources = self.sources.clone();
        let erasure = self.erasure;
        let bucket: Rc<str> = self.bucket.as_str().into();
        let path: Rc<str> = format!("{}/part.{}", self.data_path, at.part).into();
        async move {
            let (k, n) = (erasure.data_shards(), erasure.total_shards());
            // (block length, shard length) of each block; every block but the
            // part's last is whole.
            let block_size = erasure.block_size();
            let blocks: Vec<(usize, usize)> = (0..at.count as usize)
                .map(|b| {
                    let len = (at.len - b * block_size).min(block_size);
                    (len, erasure.shard_size(len))
                })
                .collect();
            let offset = shard_file_offset(&erasure, at.index);
            let read_len: usize = blocks.iter().map(|(_, shard_len)| BITROT_HASH_BYTES + shard_len).sum();
            // Per shard index: its shard of every block of the span.
            let mut shards: Vec<Option<Vec<Piece>>> = vec![None; n];
            let mut lost = Vec::new();
            // Data shards first; each failure brings in the next parity shard.
            let wanted: Vec<usize> = (0..n).filter(|i| !matches!(sources[*i], ShardSource::Missing)).collect();
            let mut next = 0;
            let mut good = 0;
            while good < k {
                let batch = &wanted[next..(next + k - good).min(wanted.len())];
                if batch.is_empty() {
                    return Fetched { span: Err(Error::InsufficientReadQuorum { have: good, need: k }), lost };
                }
                next += batch.len();
                let reads = batch.iter().map(|&i| {
                    let (source, bucket, path, blocks) = (&sources[i], &bucket, &path, &blocks);
                    async move {
                        let mut offline = false;
                        let framed = match source {
                            ShardSource::File(d) => match d.read_piece(bucket, path, offset, read_len as u64).await {
                                Ok(b) => Some(b),
                                Err(e) => {
                                    offline = e == crate::drive::DriveError::Offline;
                                    None
                                }
                            },
                            ShardSource::Inline(bytes) => {
                                let start = offset as usize;
                                let stop = start + read_len;
                                (stop <= bytes.len()).then(|| Piece::from(bytes.slice(start..stop)))
                            }
                            ShardSource::Missing => None,
                        };
                        // Bitrot, truncation, a vanished file or a drive gone offline.
                        (i, framed.and_then(|f| unframe(&f, blocks)), offline)
                    }
                });
                for (i, shard, offline) in join_all(reads).await {
                    match shard {
                        Some(s) => {
                            shards[i] = Some(s);
                            good += 1;
                        }
                        None => lost.push((i, offline)),
                    }
                }
            }
            let mut span = Vec::with_capacity(k * blocks.len());
            for (b, &(len, shard_len)) in blocks.iter().enumerate() {
                let block: Vec<Option<Piece>> = shards.iter().map(|s| s.as_ref().map(|s| s[b].clone())).collect();
                match data_pieces(&erasure, block, shard_len, len) {
                    Ok(pieces) => span.extend(pieces),
                    Err(e) => return Fetched { span: Err(e), lost },
                }
            }
            Fetched { span: Ok(span), lost }
        }
    }

    fn finish_damage_report(&mut self) {
        if std::mem::take(&mut self.damaged) {
            self.layer.report_damage(&self.bucket, &self.key);
        }
    }
}

/// One shard file's frames of a span (`[hash][shard]` per block, `blocks`
/// giving each block's shard length), checked: the shards, or `None` when the
/// read came back short or any frame fails its bitrot hash.
fn unframe(framed: &Piece, blocks: &[(usize, usize)]) -> Option<Vec<Piece>> {
    let mut at = 0;
    let mut shards = Vec::with_capacity(blocks.len());
    for &(_, shard_len) in blocks {
        let end = at + BITROT_HASH_BYTES + shard_len;
        let frame = framed.get(at..end)?;
        verify_framed(frame, shard_len)?;
        shards.push(framed.slice(at + BITROT_HASH_BYTES..end));
        at = end;
    }
    (at == framed.len()).then_some(shards)
}

/// A block's bytes as its data shards in order, trimmed to its `len`; lost
/// data shards are rebuilt from parity first.
fn data_pieces(erasure: &Erasure, mut shards: Vec<Option<Piece>>, shard_len: usize, len: usize) -> Result<Vec<Piece>> {
    let k = erasure.data_shards();
    for (i, restored) in erasure.restore_data(&shards, shard_len)? {
        shards[i] = Some(Piece::from(restored));
    }
    let data: Vec<Piece> = shards
        .into_iter()
        .take(k)
        .collect::<Option<_>>()
        .ok_or(Error::Internal("a data shard was not rebuilt".into()))?;
    let mut left = len;
    let mut pieces = Vec::with_capacity(k);
    for shard in data {
        if left == 0 {
            break;
        }
        let take = left.min(shard.len());
        pieces.push(shard.slice(0..take));
        left -= take;
    }
    Ok(pieces)
}

impl Drop for ObjectReader {
    fn drop(&mut self) {
        self.finish_damage_report();
    }
}

impl Body for ObjectReader {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        ObjectReader::next_chunk(self).await
    }

    /// Copies the next piece straight into `dst` (a server-side copy's block),
    /// keeping what does not fit for the next call.
    async fn read_into(&mut self, dst: &mut [u8]) -> Result<Option<usize>> {
        loop {
            let Some(piece) = self.next_piece().await? else { return Ok(Some(0)) };
            if piece.is_empty() {
                continue;
            }
            let n = piece.len().min(dst.len());
            dst[..n].copy_from_slice(&piece[..n]);
            if n < piece.len() {
                self.pos -= (piece.len() - n) as u64;
                self.pending.push_front(piece.slice(n..piece.len()));
            }
            return Ok(Some(n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_length_shrinks_as_readers_share_the_budget() {
        const MIB: u64 = 1 << 20;
        // A few GETs read the longest spans; many share the budget down to the floor.
        assert_eq!(span_blocks(0, MIB), MAX_SPAN_BLOCKS);
        assert_eq!(span_blocks(1, MIB), MAX_SPAN_BLOCKS);
        assert_eq!(span_blocks(16, MIB), 4);
        assert_eq!(span_blocks(17, MIB), 3);
        assert_eq!(span_blocks(32, MIB), 2);
        assert_eq!(span_blocks(64, MIB), MIN_SPAN_BLOCKS);
        assert_eq!(span_blocks(1000, MIB), MIN_SPAN_BLOCKS);
        // Held: each reader's current and next span, within the budget above the floor.
        for readers in [1, 3, 16, 17, 32] {
            assert!(2 * readers * span_blocks(readers, MIB) * MIB <= SPAN_BUDGET_BYTES_PER_CORE);
        }
        assert_eq!(span_blocks(1, 16 * MIB), 4);
        assert_eq!(span_blocks(1, 32 * MIB), MIN_SPAN_BLOCKS);
    }
}
