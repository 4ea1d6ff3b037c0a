//! Cross-core messages: how an executor reaches a drive (or a lock) owned by
//! another core of this node. Requests go over glommio's shared channels (one
//! SPSC channel per pair of cores); answers come back on oneshot channels; shard
//! data streams over a bounded channel so a slow drive pushes back on the writer.

use std::rc::Rc;

use bytes::Bytes;
use futures_channel::{mpsc, oneshot};
use futures_util::{SinkExt, StreamExt};

use super::Core;
use super::lock::LockMsg;
use crate::drive::{DriveError, DriveOp, DriveReply, DriveResult};

/// Shard chunks queued between a writer and the owner core (a chunk is a
/// block's shard behind its hash; the sender may add one more): one block
/// queued while the owner writes another. Two queued made four 64 MiB PUTs no
/// faster and raised 64 concurrent ones' peak RSS from 183-198 to 228-266 MiB,
/// since a queued data shard holds its whole block buffer.
const WRITER_QUEUE_CHUNKS: usize = 1;

/// Bytes for a shard file on another core: `head` then `body` (a shard behind
/// its hash), one message for both, so a block costs one hop per shard.
pub struct Chunk {
    pub head: Bytes,
    pub body: Bytes,
}

/// A message from one core to another.
pub enum CoreMsg {
    Drive {
        drive: usize,
        op: DriveOp,
        reply: oneshot::Sender<DriveResult<DriveReply>>,
    },
    CreateFile {
        drive: usize,
        volume: String,
        path: String,
        size: Option<u64>,
        chunks: mpsc::Receiver<Chunk>,
        reply: oneshot::Sender<DriveResult<u64>>,
    },
    Lock(LockMsg),
    /// Runs a function on the receiving core: cold paths only (metrics scrapes).
    Call(CoreCall),
}

/// A function run on another core by [`Core::call_on`].
pub type CoreCall = Box<dyn FnOnce(&Rc<Core>) + Send>;

impl Core {
    /// Runs `f` on core `to` (at once when that is this core) and returns its
    /// result; `None` if that core is gone. For cold paths such as a metrics
    /// scrape that reads every core's thread-local figures.
    pub async fn call_on<T, F>(self: &Rc<Self>, to: usize, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(&Rc<Core>) -> T + Send + 'static,
    {
        if to == self.id {
            return Some(f(self));
        }
        let (tx, rx) = oneshot::channel();
        let call: CoreCall = Box::new(move |core| {
            let _ = tx.send(f(core));
        });
        self.send(to, CoreMsg::Call(call)).await.ok()?;
        rx.await.ok()
    }
}

/// A drive owned by another core of this node.
#[derive(Clone)]
pub struct CoreDrive {
    pub(super) core: Rc<Core>,
    pub(super) owner: usize,
    pub(super) drive: usize,
}

impl CoreDrive {
    pub async fn call(&self, op: DriveOp) -> DriveResult<DriveReply> {
        let (tx, rx) = oneshot::channel();
        self.core.send(self.owner, CoreMsg::Drive { drive: self.drive, op, reply: tx }).await?;
        rx.await.map_err(|_| DriveError::Offline)?
    }

    pub async fn create_file(&self, volume: &str, path: &str, size: Option<u64>) -> DriveResult<CoreWriter> {
        let (chunks_tx, chunks_rx) = mpsc::channel(WRITER_QUEUE_CHUNKS);
        let (tx, rx) = oneshot::channel();
        let msg = CoreMsg::CreateFile {
            drive: self.drive,
            volume: volume.to_string(),
            path: path.to_string(),
            size,
            chunks: chunks_rx,
            reply: tx,
        };
        self.core.send(self.owner, msg).await?;
        Ok(CoreWriter { chunks: chunks_tx, done: rx })
    }
}

/// Streams a shard file to a drive on another core.
pub struct CoreWriter {
    chunks: mpsc::Sender<Chunk>,
    done: oneshot::Receiver<DriveResult<u64>>,
}

impl CoreWriter {
    pub async fn write(&mut self, head: Bytes, body: Bytes) -> DriveResult<()> {
        if self.chunks.send(Chunk { head, body }).await.is_err() {
            // The owner stopped reading: it failed; its answer says why.
            return Err(match (&mut self.done).await {
                Ok(Err(e)) => e,
                _ => DriveError::Offline,
            });
        }
        Ok(())
    }

    pub async fn finish(self) -> DriveResult<u64> {
        let CoreWriter { chunks, done } = self;
        drop(chunks);
        done.await.map_err(|_| DriveError::Offline)?
    }
}

/// Serves one message on the owner core.
pub(super) async fn serve(core: Rc<Core>, msg: CoreMsg) {
    match msg {
        CoreMsg::Drive { drive, op, reply } => {
            let result = match core.local_drive(drive) {
                Some(d) => d.execute(op).await,
                None => Err(DriveError::Offline),
            };
            let _ = reply.send(result);
        }
        CoreMsg::CreateFile { drive, volume, path, size, mut chunks, reply } => {
            let Some(d) = core.local_drive(drive) else {
                let _ = reply.send(Err(DriveError::Offline));
                return;
            };
            let result = async {
                let mut writer = d.create_file(&volume, &path, size).await?;
                while let Some(Chunk { head, body }) = chunks.next().await {
                    writer.write(&head).await?;
                    writer.write(&body).await?;
                }
                writer.finish().await
            }
            .await;
            let _ = reply.send(result);
        }
        CoreMsg::Lock(msg) => core.locks.handle(msg),
        CoreMsg::Call(f) => f(&core),
    }
}
