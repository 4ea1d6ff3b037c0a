//! [`DriveHandle`]: the one drive interface the object layer sees, with one
//! variant per place a drive can live. Same core: a direct call. Another core:
//! a message (`runtime::peer`). Another node: a request over the inter-node
//! protocol (`cluster::RemoteDrive`). Nothing above this file knows which.

use std::rc::Rc;

use bytes::Bytes;

use super::{DriveError, DriveOp, DriveReply, DriveResult, LocalDrive, LocalWriter, Piece};
use crate::cluster::{RemoteDrive, RemoteWriter};
use crate::runtime::peer::{CoreDrive, CoreWriter};

#[derive(Clone)]
pub enum DriveHandle {
    Local(Rc<LocalDrive>),
    Core(CoreDrive),
    Remote(RemoteDrive),
}

impl DriveHandle {
    pub async fn call(&self, op: DriveOp) -> DriveResult<DriveReply> {
        match self {
            DriveHandle::Local(d) => d.execute(op).await,
            DriveHandle::Core(d) => d.call(op).await,
            DriveHandle::Remote(d) => d.call(op).await,
        }
    }

    /// Opens a file for streaming writes; `size`, when known, is the file's
    /// final size (the drive reserves it up front).
    pub async fn create_file(&self, volume: &str, path: &str, size: Option<u64>) -> DriveResult<ShardWriter> {
        match self {
            DriveHandle::Local(d) => Ok(ShardWriter::Local(d.create_file(volume, path, size).await?)),
            DriveHandle::Core(d) => Ok(ShardWriter::Core(d.create_file(volume, path, size).await?)),
            DriveHandle::Remote(d) => Ok(ShardWriter::Remote(d.create_file(volume, path, size).await?)),
        }
    }

    /// Whether the drive can be reached now: a drive of this node always can (its
    /// own errors show per operation); another node's while its link is up.
    pub fn is_online(&self) -> bool {
        match self {
            DriveHandle::Local(_) | DriveHandle::Core(_) => true,
            DriveHandle::Remote(d) => d.is_online(),
        }
    }

    pub async fn read_all(&self, volume: &str, path: &str) -> DriveResult<Bytes> {
        expect_data(self.call(DriveOp::ReadAll { volume: volume.into(), path: path.into() }).await)
    }

    pub async fn read_at(&self, volume: &str, path: &str, offset: u64, len: u64) -> DriveResult<Bytes> {
        expect_data(self.call(DriveOp::ReadAt { volume: volume.into(), path: path.into(), offset, len }).await)
    }

    /// [`DriveHandle::read_at`] for bytes on their way to a client: a drive of
    /// this core hands over its DMA buffer instead of a copy.
    pub async fn read_piece(&self, volume: &str, path: &str, offset: u64, len: u64) -> DriveResult<Piece> {
        match self {
            DriveHandle::Local(d) => d.read_piece(volume, path, offset, len).await.map(Piece::Dma),
            DriveHandle::Core(_) | DriveHandle::Remote(_) => {
                self.read_at(volume, path, offset, len).await.map(Piece::from)
            }
        }
    }

    pub async fn write_all(&self, volume: &str, path: &str, data: Bytes) -> DriveResult<()> {
        self.call(DriveOp::WriteAll { volume: volume.into(), path: path.into(), data }).await.map(|_| ())
    }

    pub async fn delete(&self, volume: &str, path: &str, recursive: bool) -> DriveResult<()> {
        self.call(DriveOp::Delete { volume: volume.into(), path: path.into(), recursive }).await.map(|_| ())
    }

    pub async fn list_dir(&self, volume: &str, path: &str) -> DriveResult<Vec<String>> {
        match self.call(DriveOp::ListDir { volume: volume.into(), path: path.into() }).await? {
            DriveReply::Names(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn walk(&self, volume: &str, prefix: &str, start_after: &str, limit: usize) -> DriveResult<Vec<String>> {
        let op = DriveOp::Walk { volume: volume.into(), prefix: prefix.into(), start_after: start_after.into(), limit };
        match self.call(op).await? {
            DriveReply::Names(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }
}

fn expect_data(r: DriveResult<DriveReply>) -> DriveResult<Bytes> {
    match r? {
        DriveReply::Data(b) => Ok(b),
        other => Err(unexpected(&other)),
    }
}

pub(crate) fn unexpected(reply: &DriveReply) -> DriveError {
    DriveError::Io(format!("unexpected drive reply {reply:?}"))
}

/// A shard file being written, wherever its drive lives.
pub enum ShardWriter {
    Local(LocalWriter),
    Core(CoreWriter),
    Remote(RemoteWriter),
}

impl ShardWriter {
    pub async fn write(&mut self, data: Bytes) -> DriveResult<()> {
        self.write_framed(Bytes::new(), data).await
    }

    /// Writes `head` then `body` (a shard behind its hash): to a drive of
    /// another core they travel as one message.
    pub async fn write_framed(&mut self, head: Bytes, body: Bytes) -> DriveResult<()> {
        match self {
            ShardWriter::Local(w) => {
                w.write(&head).await?;
                w.write(&body).await
            }
            ShardWriter::Core(w) => w.write(head, body).await,
            ShardWriter::Remote(w) => {
                if !head.is_empty() {
                    w.write(head).await?;
                }
                w.write(body).await
            }
        }
    }

    /// Makes the file durable (fdatasync) and closes it.
    pub async fn finish(self) -> DriveResult<u64> {
        match self {
            ShardWriter::Local(w) => w.finish().await,
            ShardWriter::Core(w) => w.finish().await,
            ShardWriter::Remote(w) => w.finish().await,
        }
    }
}
