//! The serving side of an inter-node connection: the handshake, then every
//! request runs as its own task (so one slow drive never holds up the others on
//! the connection), answers go back through the connection's writer task.
//!
//! Drive requests reach this node's drives through the same handles the object
//! layer uses (this core, or another core by message); shard streams are acked
//! chunk by chunk as the drive takes them, which is the sender's flow control.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_channel::mpsc;
use futures_util::StreamExt;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::TcpStream;

use super::peer::{ABORT, HANDSHAKE_TIMEOUT, OUT_QUEUE_FRAMES, write_loop};
use super::wire::{self, DriveStatus, Frame, Kind, Request, Response, WireError};
use super::{ClusterCtx, STREAM_WINDOW_CHUNKS};
use crate::drive::format::{self, Format};
use crate::drive::{DriveError, DriveHandle, DriveOp, DriveReply};
use crate::runtime::{CoreCtx, spawn_guarded};

/// One item of a shard stream on its way to the drive.
enum StreamItem {
    Data(Bytes),
    Abort,
}

/// Serves an inter-node connection whose preamble has been peeked.
pub async fn serve(mut stream: TcpStream, ctx: Rc<CoreCtx>) {
    let Some(cluster) = ctx.core.cluster().cloned() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let from = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let shook = futures_lite::future::or(async { Some(server_handshake(&mut stream, &cluster).await) }, async {
        glommio::timer::sleep(HANDSHAKE_TIMEOUT).await;
        None
    })
    .await;
    match shook {
        Some(Ok(node)) => tracing::debug!(%from, node, "node connected"),
        Some(Err(WireError::Refused(why))) => {
            let ip = from.rsplit_once(':').map_or(from.as_str(), |(ip, _)| ip);
            if cluster.log_refusal(&format!("{ip} {why}")) {
                tracing::warn!(%from, %why, "refused a connection from another node");
            }
            return;
        }
        Some(Err(e)) => {
            tracing::debug!(%from, error = %e, "inter-node handshake failed");
            return;
        }
        None => {
            tracing::warn!(%from, "inter-node handshake timed out");
            return;
        }
    }
    let fd = stream.as_raw_fd();
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    let (out, out_rx) = local_channel::new_bounded(OUT_QUEUE_FRAMES);
    let out = Rc::new(out);
    let writing = glommio::spawn_local(async move {
        let _ = write_loop(&mut writer, out_rx).await;
        let _ = nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Both);
    });
    let streams: RefCell<HashMap<u64, mpsc::Sender<StreamItem>>> = RefCell::new(HashMap::new());
    loop {
        let f = match wire::read_frame(&mut reader).await {
            Ok(f) => f,
            Err(WireError::Closed) => break,
            Err(e) => {
                tracing::debug!(%from, error = %e, "inter-node connection ended");
                break;
            }
        };
        match f.kind {
            Kind::Request => {
                let req = match f.decode::<Request>() {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(%from, error = %e, "malformed inter-node request; closing the connection");
                        break;
                    }
                };
                let (ctx, out, id) = (ctx.clone(), out.clone(), f.id);
                if let Request::CreateFile { drive, volume, path, size } = req {
                    let (tx, rx) = mpsc::channel(STREAM_WINDOW_CHUNKS);
                    streams.borrow_mut().insert(id, tx);
                    let receiving = receive_file(ctx, out, id, drive as usize, (volume, path, size), rx);
                    spawn_guarded("inter-node shard stream", receiving);
                } else {
                    spawn_guarded("inter-node request", async move {
                        let resp = handle(&ctx, req).await;
                        let _ = out.send(Frame::message(id, Kind::Response, &resp)).await;
                    });
                }
            }
            Kind::Chunk => {
                let mut s = streams.borrow_mut();
                if let Some(tx) = s.get_mut(&f.id)
                    && let Err(e) = tx.try_send(StreamItem::Data(f.body))
                {
                    if e.is_full() {
                        tracing::warn!(%from, "a node sent past its stream window; closing the connection");
                        break;
                    }
                    // The drive failed and its answer went out; drop the rest.
                    s.remove(&f.id);
                }
            }
            Kind::End => {
                if let Some(mut tx) = streams.borrow_mut().remove(&f.id)
                    && f.body.as_ref() == ABORT
                {
                    let _ = tx.try_send(StreamItem::Abort);
                }
            }
            other => {
                tracing::warn!(%from, kind = ?other, "unexpected inter-node frame; closing the connection");
                break;
            }
        }
    }
    // Streams left open were cut off: their writers see the end without `End`.
    for (_, mut tx) in streams.borrow_mut().drain() {
        let _ = tx.try_send(StreamItem::Abort);
    }
    drop(out);
    let _ = nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Both);
    writing.detach();
}

/// Returns the peer's node index once both sides proved they hold the key.
async fn server_handshake(stream: &mut TcpStream, cluster: &ClusterCtx) -> Result<u32, WireError> {
    use futures_lite::io::AsyncReadExt;
    let mut preamble = [0u8; 8];
    stream.read_exact(&mut preamble).await.map_err(|e| WireError::Io(e.to_string()))?;
    if &preamble != wire::PREAMBLE {
        return Err(WireError::Malformed("bad preamble".into()));
    }
    let f = wire::read_frame(stream).await?;
    if f.kind != Kind::Hello {
        return Err(WireError::Malformed(format!("expected hello, got {:?}", f.kind)));
    }
    let hello: wire::Hello = f.decode()?;
    if hello.version != wire::PROTOCOL_VERSION {
        return refuse(
            stream,
            format!(
                "protocol version {} is not this node's {}: run the same basalt version on every node",
                hello.version,
                wire::PROTOCOL_VERSION
            ),
        )
        .await;
    }
    if hello.fingerprint != cluster.fingerprint {
        return refuse(stream, format!(
            "node {} was started with other drive arguments or parity than this node: give every node the same arguments",
            hello.node + 1
        ))
        .await;
    }
    let mine = cluster.deployment.borrow().clone();
    if !mine.is_empty() && !hello.deployment.is_empty() && mine != hello.deployment {
        return refuse(stream, format!("it belongs to deployment {}, this node to {mine}", hello.deployment)).await;
    }
    let ours = wire::nonce();
    let proof = wire::server_proof(&cluster.key, &hello.nonce, &ours, cluster.fingerprint);
    let ch = wire::Challenge { version: wire::PROTOCOL_VERSION, nonce: ours, deployment: mine, proof };
    wire::write_frames(stream, &[Frame::message(0, Kind::Challenge, &ch)]).await?;
    let f = wire::read_frame(stream).await?;
    if f.kind == Kind::Refused {
        return Err(WireError::Refused(format!(
            "node {} does not accept this node: {}",
            hello.node + 1,
            f.decode::<String>().unwrap_or_default()
        )));
    }
    let p: wire::Proof = f.decode()?;
    if !wire::verify_client(&cluster.key, &ours, &hello.nonce, cluster.fingerprint, &p.proof) {
        return refuse(
            stream,
            "wrong proof of the cluster key: the connecting process runs with other root credentials".to_string(),
        )
        .await;
    }
    wire::write_frames(stream, &[Frame::new(0, Kind::Welcome, Bytes::new())]).await?;
    Ok(hello.node)
}

/// Tells the other side why it is refused, and ends the handshake.
async fn refuse(stream: &mut TcpStream, why: String) -> Result<u32, WireError> {
    let _ = wire::write_frames(stream, &[Frame::message(0, Kind::Refused, &why)]).await;
    Err(WireError::Refused(why))
}

/// This node's handle on a drive, if the drive is this node's.
fn local_handle(ctx: &CoreCtx, drive: usize) -> Result<DriveHandle, DriveError> {
    let topo = ctx.core.topology();
    if drive >= topo.endpoints.len() || !topo.is_local(drive) {
        return Err(DriveError::Offline);
    }
    Ok(ctx.core.drive_handle(drive))
}

async fn handle(ctx: &Rc<CoreCtx>, req: Request) -> Response {
    match req {
        Request::Ping => Response::Pong,
        Request::Drive { drive, op } => {
            let r = match local_handle(ctx, drive as usize) {
                Ok(h) => h.call(op).await,
                Err(e) => Err(e),
            };
            Response::Drive(r)
        }
        Request::CreateFile { .. } => Response::Done(Err("streams are opened by the reader".into())),
        Request::Formats => Response::Formats(local_formats(ctx).await),
        Request::WriteFormat { drive, format } => Response::Done(write_format(ctx, drive as usize, format).await),
        Request::TryLock { key, write, holder, lease_ms } => {
            let granted = ctx.core.try_lock_for_peer(key, write, holder, Duration::from_millis(lease_ms)).await;
            Response::Granted(granted)
        }
        Request::Unlock { key, holder } => {
            ctx.core.release_for_peer(key, holder);
            Response::Done(Ok(()))
        }
        Request::Refresh { locks, lease_ms } => {
            for (key, holder) in locks {
                ctx.core.refresh_for_peer(key, holder, Duration::from_millis(lease_ms));
            }
            Response::Done(Ok(()))
        }
        Request::Info => Response::Info(local_status(ctx).await),
    }
}

async fn receive_file(
    ctx: Rc<CoreCtx>,
    out: Rc<LocalSender<Frame>>,
    id: u64,
    drive: usize,
    (volume, path, size): (String, String, Option<u64>),
    mut chunks: mpsc::Receiver<StreamItem>,
) {
    let result = async {
        let mut writer = local_handle(&ctx, drive)?.create_file(&volume, &path, size).await?;
        while let Some(item) = chunks.next().await {
            match item {
                StreamItem::Data(b) => {
                    writer.write(b).await?;
                    let _ = out.send(Frame::new(id, Kind::Ack, Bytes::new())).await;
                }
                // Abandoned: the writer is dropped unsynced; the sender discards the temp file.
                StreamItem::Abort => return Ok(None),
            }
        }
        writer.finish().await.map(Some)
    }
    .await;
    let resp = match result {
        Ok(None) => return,
        Ok(Some(n)) => Response::Written(Ok(n)),
        Err(e) => Response::Written(Err(e)),
    };
    let _ = out.send(Frame::message(id, Kind::Response, &resp)).await;
}

/// The format of each of this node's drives (or why it cannot be read).
pub(super) async fn local_formats(ctx: &CoreCtx) -> Vec<(u32, Result<Option<Format>, String>)> {
    let topo = ctx.core.topology().clone();
    let drives: Vec<(usize, std::path::PathBuf)> =
        topo.local_drives().iter().map(|d| (*d, topo.endpoints[*d].path.clone())).collect();
    glommio::executor()
        .spawn_blocking(move || {
            drives
                .into_iter()
                .map(|(d, root)| (d as u32, format::read_format(&root).map_err(|e| e.to_string())))
                .collect::<Vec<_>>()
        })
        .await
}

/// Writes `f` on a drive of this node that has no format yet (or this one).
pub(super) async fn write_format(ctx: &CoreCtx, drive: usize, f: Format) -> Result<(), String> {
    let topo = ctx.core.topology().clone();
    if drive >= topo.endpoints.len() || !topo.is_local(drive) {
        return Err(format!("drive {} is not on this node", drive + 1));
    }
    let root = topo.endpoints[drive].path.clone();
    glommio::executor()
        .spawn_blocking(move || -> Result<(), String> {
            std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
            match format::read_format(&root).map_err(|e| e.to_string())? {
                Some(existing) if existing == f => Ok(()),
                Some(_) => Err(format!("{} is already formatted", root.display())),
                None => format::write_format(&root, &f).map_err(|e| format!("cannot format {}: {e}", root.display())),
            }
        })
        .await
}

/// State and space of this node's drives.
pub(super) async fn local_status(ctx: &CoreCtx) -> Vec<DriveStatus> {
    let topo = ctx.core.topology().clone();
    let mut out = Vec::new();
    for &d in topo.local_drives() {
        let path = topo.endpoints[d].path.display().to_string();
        let status = match ctx.core.drive_handle(d).call(DriveOp::DiskInfo).await {
            Ok(DriveReply::Info(i)) => DriveStatus {
                drive: d as u32,
                path,
                online: true,
                total_bytes: i.total_bytes,
                free_bytes: i.free_bytes,
                error: None,
            },
            Ok(_) => DriveStatus { drive: d as u32, path, online: false, total_bytes: 0, free_bytes: 0, error: None },
            Err(e) => DriveStatus {
                drive: d as u32,
                path,
                online: false,
                total_bytes: 0,
                free_bytes: 0,
                error: Some(e.to_string()),
            },
        };
        out.push(status);
    }
    out
}
