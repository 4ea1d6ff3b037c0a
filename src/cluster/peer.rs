//! One core's link to one other node: a single multiplexed connection, kept up
//! by a watcher task that dials with backoff and pings while connected.
//!
//! While the link is down every call fails at once with `DriveError::Offline`,
//! so requests fall back on the remaining quorum instead of waiting on a dead
//! node each time. A link that breaks fails every request in flight on it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use std::os::fd::{AsRawFd, RawFd};

use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;

use super::wire::{self, Frame, Hello, Kind, Request, Response, WireError};
use super::{ClusterCtx, STREAM_WINDOW_CHUNKS};
use crate::drive::{DriveError, DriveResult};

/// How long dialling a node may take before it counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the handshake may take once connected.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A connected node is pinged this often...
const PING_INTERVAL: Duration = Duration::from_secs(1);
/// ...and marked down when a ping takes longer than this.
const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// First and longest wait between dials of a down node.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Frames queued for a connection's writer before senders wait.
pub(super) const OUT_QUEUE_FRAMES: usize = 256;
/// Frames the writer gathers into one batch of writes.
pub(super) const WRITE_BATCH_FRAMES: usize = 64;
/// The longest any one request may take (a drive operation under load, a sync).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A live connection to a node.
pub(super) struct Conn {
    out: LocalSender<Frame>,
    /// The socket, shut down on close so both of its tasks end.
    fd: RawFd,
    pending: RefCell<HashMap<u64, oneshot::Sender<Response>>>,
    acks: RefCell<HashMap<u64, mpsc::UnboundedSender<()>>>,
    next_id: Cell<u64>,
    closed: Cell<bool>,
}

impl Conn {
    /// Fails every request in flight and shuts the socket down. The socket is
    /// still open here: both of its halves live until their tasks have called this.
    fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        self.pending.borrow_mut().clear();
        self.acks.borrow_mut().clear();
        let _ = nix::sys::socket::shutdown(self.fd, nix::sys::socket::Shutdown::Both);
    }

    fn id(&self) -> u64 {
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        id
    }
}

/// This core's view of one other node.
pub struct Peer {
    pub node: usize,
    address: String,
    cluster: Rc<ClusterCtx>,
    conn: RefCell<Option<Rc<Conn>>>,
    /// When the node was last seen going down (None while up or never seen).
    down_since: Cell<Option<Instant>>,
    /// Whether the link was ever up (to tell "connected" from "back online").
    was_up: Cell<bool>,
}

impl Peer {
    pub fn new(node: usize, address: String, cluster: Rc<ClusterCtx>) -> Rc<Peer> {
        Rc::new(Peer {
            node,
            address,
            cluster,
            conn: RefCell::new(None),
            down_since: Cell::new(None),
            was_up: Cell::new(false),
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn is_up(&self) -> bool {
        self.conn.borrow().as_ref().is_some_and(|c| !c.closed.get())
    }

    fn live(&self) -> Option<Rc<Conn>> {
        self.conn.borrow().as_ref().filter(|c| !c.closed.get()).cloned()
    }

    /// Sends one request and waits for its answer, at most `timeout`.
    pub async fn call(&self, req: Request, timeout: Duration) -> DriveResult<Response> {
        let conn = self.live().ok_or(DriveError::Offline)?;
        let id = conn.id();
        let (tx, rx) = oneshot::channel();
        conn.pending.borrow_mut().insert(id, tx);
        if conn.out.send(Frame::message(id, Kind::Request, &req)).await.is_err() {
            conn.pending.borrow_mut().remove(&id);
            return Err(DriveError::Offline);
        }
        let answer = futures_lite::future::or(async { rx.await.ok() }, async {
            glommio::timer::sleep(timeout).await;
            None
        })
        .await;
        match answer {
            Some(r) => Ok(r),
            None => {
                conn.pending.borrow_mut().remove(&id);
                Err(DriveError::Offline)
            }
        }
    }

    /// Opens a shard file on the node for streaming.
    pub async fn create_file(
        &self,
        drive: usize,
        volume: &str,
        path: &str,
        size: Option<u64>,
    ) -> DriveResult<RemoteWriter> {
        let conn = self.live().ok_or(DriveError::Offline)?;
        let id = conn.id();
        let (tx, done) = oneshot::channel();
        let (ack_tx, acks) = mpsc::unbounded();
        conn.pending.borrow_mut().insert(id, tx);
        conn.acks.borrow_mut().insert(id, ack_tx);
        let req = Request::CreateFile { drive: drive as u32, volume: volume.into(), path: path.into(), size };
        if conn.out.send(Frame::message(id, Kind::Request, &req)).await.is_err() {
            return Err(DriveError::Offline);
        }
        Ok(RemoteWriter { conn, id, acks, unacked: 0, done, finished: false })
    }

    /// Keeps the link up for as long as the core runs: dials with backoff while
    /// down, pings while up.
    pub(super) async fn watch(self: Rc<Self>) {
        let mut backoff = BACKOFF_MIN;
        loop {
            if self.is_up() {
                glommio::timer::sleep(PING_INTERVAL).await;
                if !self.is_up() {
                    continue;
                }
                if !matches!(self.call(Request::Ping, PING_TIMEOUT).await, Ok(Response::Pong)) {
                    self.mark_down("it stopped answering pings");
                }
                continue;
            }
            match self.connect().await {
                Ok(conn) => {
                    backoff = BACKOFF_MIN;
                    *self.conn.borrow_mut() = Some(conn);
                    if self.cluster.core == 0 {
                        match self.down_since.take().filter(|_| self.was_up.get()) {
                            Some(t) => tracing::info!(
                                node = %self.address,
                                after_s = t.elapsed().as_secs(),
                                "node is back online"
                            ),
                            None => tracing::info!(node = %self.address, "connected to node"),
                        }
                    }
                    self.down_since.set(None);
                    self.was_up.set(true);
                }
                Err(e) => {
                    if let WireError::Refused(why) = &e {
                        if self.cluster.log_refusal(&format!("{} {why}", self.address)) {
                            tracing::warn!(node = %self.address, %why, "cannot join node");
                        }
                    } else {
                        tracing::debug!(node = %self.address, error = %e, "cannot reach node");
                    }
                    if self.down_since.get().is_none() {
                        self.down_since.set(Some(Instant::now()));
                    }
                    glommio::timer::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    fn mark_down(&self, why: &str) {
        if let Some(c) = self.conn.borrow_mut().take() {
            c.close();
            if self.cluster.core == 0 {
                tracing::warn!(node = %self.address, why, "node is offline");
            }
            self.down_since.set(Some(Instant::now()));
        }
    }

    async fn connect(self: &Rc<Self>) -> Result<Rc<Conn>, WireError> {
        let stream = TcpStream::connect_timeout(self.address.as_str(), CONNECT_TIMEOUT)
            .await
            .map_err(|e| WireError::Io(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let mut stream = stream;
        let handshake = client_handshake(&mut stream, &self.cluster);
        let shook = futures_lite::future::or(async { Some(handshake.await) }, async {
            glommio::timer::sleep(HANDSHAKE_TIMEOUT).await;
            None
        })
        .await;
        shook.ok_or(WireError::Timeout)??;
        let fd = stream.as_raw_fd();
        let (mut reader, mut writer) = futures_lite::io::split(stream);
        let (out, out_rx) = local_channel::new_bounded(OUT_QUEUE_FRAMES);
        let conn = Rc::new(Conn {
            out,
            fd,
            pending: RefCell::new(HashMap::new()),
            acks: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            closed: Cell::new(false),
        });
        let c = conn.clone();
        glommio::spawn_local(async move {
            let _ = write_loop(&mut writer, out_rx).await;
            c.close();
        })
        .detach();
        let (c, peer) = (conn.clone(), self.clone());
        glommio::spawn_local(async move {
            let why = read_loop(&mut reader, &c).await;
            // Only this connection's failure marks the node down.
            let same = peer.conn.borrow().as_ref().is_some_and(|cur| Rc::ptr_eq(cur, &c));
            if same {
                peer.mark_down(&format!("the connection broke ({why})"));
            }
            c.close();
        })
        .detach();
        Ok(conn)
    }
}

async fn client_handshake(stream: &mut TcpStream, cluster: &ClusterCtx) -> Result<(), WireError> {
    use futures_lite::io::AsyncWriteExt;
    let ours = wire::nonce();
    let hello = Hello {
        version: wire::PROTOCOL_VERSION,
        nonce: ours,
        node: cluster.node as u32,
        fingerprint: cluster.fingerprint,
        deployment: cluster.deployment.borrow().clone(),
    };
    stream.write_all(wire::PREAMBLE).await.map_err(|e| WireError::Io(e.to_string()))?;
    wire::write_frames(stream, &[Frame::message(0, Kind::Hello, &hello)]).await?;
    let f = wire::read_frame(stream).await?;
    if f.kind == Kind::Refused {
        return Err(WireError::Refused(f.decode::<String>().unwrap_or_default()));
    }
    if f.kind != Kind::Challenge {
        return Err(WireError::Malformed(format!("expected a challenge, got {:?}", f.kind)));
    }
    let ch: wire::Challenge = f.decode()?;
    if !wire::verify_server(&cluster.key, &ours, &ch.nonce, cluster.fingerprint, &ch.proof) {
        return Err(WireError::Refused(
            "its proof of the cluster key is wrong: it runs with other root credentials or other arguments".into(),
        ));
    }
    let mine = cluster.deployment.borrow().clone();
    if !mine.is_empty() && !ch.deployment.is_empty() && mine != ch.deployment {
        return Err(WireError::Refused(format!("it belongs to deployment {}, this node to {mine}", ch.deployment)));
    }
    let proof = wire::client_proof(&cluster.key, &ch.nonce, &ours, cluster.fingerprint);
    wire::write_frames(stream, &[Frame::message(0, Kind::Proof, &wire::Proof { proof })]).await?;
    let f = wire::read_frame(stream).await?;
    match f.kind {
        Kind::Welcome => Ok(()),
        Kind::Refused => Err(WireError::Refused(f.decode::<String>().unwrap_or_default())),
        other => Err(WireError::Malformed(format!("expected welcome, got {other:?}"))),
    }
}

/// Sends queued frames, gathering what is queued into one batch.
pub(super) async fn write_loop<W: futures_lite::io::AsyncWrite + Unpin>(
    w: &mut W,
    rx: LocalReceiver<Frame>,
) -> Result<(), WireError> {
    let mut batch = Vec::with_capacity(WRITE_BATCH_FRAMES);
    let mut frames = rx.stream();
    while let Some(f) = frames.next().await {
        batch.push(f);
        while batch.len() < WRITE_BATCH_FRAMES {
            match futures_util::FutureExt::now_or_never(frames.next()) {
                Some(Some(f)) => batch.push(f),
                _ => break,
            }
        }
        wire::write_frames(w, &batch).await?;
        batch.clear();
    }
    Ok(())
}

async fn read_loop<R: futures_lite::io::AsyncRead + Unpin>(r: &mut R, conn: &Conn) -> WireError {
    loop {
        let f = match wire::read_frame(r).await {
            Ok(f) => f,
            Err(e) => return e,
        };
        match f.kind {
            Kind::Response => {
                let resp = match f.decode::<Response>() {
                    Ok(r) => r,
                    Err(e) => return e,
                };
                conn.acks.borrow_mut().remove(&f.id);
                if let Some(tx) = conn.pending.borrow_mut().remove(&f.id) {
                    let _ = tx.send(resp);
                }
            }
            Kind::Ack => {
                if let Some(tx) = conn.acks.borrow().get(&f.id) {
                    let _ = tx.unbounded_send(());
                }
            }
            other => return WireError::Malformed(format!("unexpected {other:?} frame from a server")),
        }
    }
}

/// Streams a shard file to a drive of another node, at most
/// [`STREAM_WINDOW_CHUNKS`] chunks ahead of what the node has written.
pub struct RemoteWriter {
    conn: Rc<Conn>,
    id: u64,
    acks: mpsc::UnboundedReceiver<()>,
    unacked: usize,
    done: oneshot::Receiver<Response>,
    finished: bool,
}

impl RemoteWriter {
    fn failed(resp: Result<Option<Response>, oneshot::Canceled>) -> DriveError {
        match resp {
            Ok(Some(Response::Written(Err(e)))) => e,
            Ok(Some(other)) => DriveError::Io(format!("unexpected answer to a shard stream: {other:?}")),
            _ => DriveError::Offline,
        }
    }

    pub async fn write(&mut self, data: Bytes) -> DriveResult<()> {
        if self.conn.closed.get() {
            return Err(DriveError::Offline);
        }
        match self.done.try_recv() {
            Ok(None) => {}
            other => return Err(Self::failed(other)),
        }
        while self.unacked >= STREAM_WINDOW_CHUNKS {
            let acked = futures_lite::future::or(async { self.acks.next().await.is_some() }, async {
                glommio::timer::sleep(REQUEST_TIMEOUT).await;
                false
            })
            .await;
            if !acked {
                return Err(Self::failed(self.done.try_recv()));
            }
            self.unacked -= 1;
        }
        self.conn.out.send(Frame::new(self.id, Kind::Chunk, data)).await.map_err(|_| DriveError::Offline)?;
        self.unacked += 1;
        Ok(())
    }

    /// Ends the stream; the node syncs the file and answers with its length.
    pub async fn finish(mut self) -> DriveResult<u64> {
        self.finished = true;
        if self.conn.out.send(Frame::new(self.id, Kind::End, Bytes::new())).await.is_err() {
            return Err(DriveError::Offline);
        }
        let done = &mut self.done;
        let resp = futures_lite::future::or(async { done.await.ok() }, async {
            glommio::timer::sleep(REQUEST_TIMEOUT).await;
            None
        })
        .await;
        match resp {
            Some(Response::Written(r)) => r,
            Some(other) => Err(DriveError::Io(format!("unexpected answer to a shard stream: {other:?}"))),
            None => Err(DriveError::Offline),
        }
    }
}

/// The body of an `End` frame that abandons a stream instead of finishing it.
pub(super) const ABORT: &[u8] = b"abort";

impl Drop for RemoteWriter {
    fn drop(&mut self) {
        if !self.finished {
            // An abandoned write: tell the node to drop the file, without waiting.
            let _ = self.conn.out.try_send(Frame::new(self.id, Kind::End, Bytes::from_static(ABORT)));
        }
        self.conn.pending.borrow_mut().remove(&self.id);
        self.conn.acks.borrow_mut().remove(&self.id);
    }
}
