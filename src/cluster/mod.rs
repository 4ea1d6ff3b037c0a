//! The cluster: what makes many `basalt server` processes one object store.
//!
//! - [`wire`]: the inter-node protocol (preamble, frames, messages, handshake).
//! - [`peer`]: one core's multiplexed link to one other node, kept up by a watcher.
//! - [`serve`]: the serving side of a link (drive operations, shard streams, locks).
//! - [`RemoteDrive`]: the third drive implementation, beside same-core and
//!   cross-core: a drive operation sent to the node that owns the drive.
//! - [`lock`]: object locks held by a quorum of nodes, with leases.
//! - [`bootstrap`]: start-up agreement on the drives' format.
//! - [`info`]: the state of nodes, drives and sets, for `admin info` and the console.
//!
//! Links belong to executors like client connections do: every core has its own
//! link to every other node, and the accepting core serves what arrives on it.

pub mod bootstrap;
pub mod info;
pub mod peer;
pub mod serve;
pub mod wire;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::drive::{DriveError, DriveOp, DriveReply, DriveResult};
use crate::error::{Error, Result};
use crate::runtime::Core;
use crate::runtime::lock::LockGuard;
pub use peer::{Peer, RemoteWriter};
use wire::{Request, Response};

/// Shard chunks a stream may have in flight before the receiving node acks
/// them: enough to keep its drive busy, little enough to bound its memory.
pub const STREAM_WINDOW_CHUNKS: usize = 4;
/// How long another node holds a lock for us without hearing from us.
pub const LOCK_LEASE: Duration = Duration::from_secs(10);
/// How often a held lock's lease is renewed.
const LOCK_REFRESH: Duration = Duration::from_secs(3);
/// How long one lock request to one node may take.
const LOCK_CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Waits between rounds of a contended lock grow from the first to the last.
const LOCK_RETRY_MIN: Duration = Duration::from_millis(2);
const LOCK_RETRY_MAX: Duration = Duration::from_millis(100);

/// A repeated refusal of the same address is logged at most this often.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Addresses remembered for that; beyond it the memory starts over.
const REFUSALS_TRACKED: usize = 1024;

/// What every link of one core needs to know; one per core.
pub struct ClusterCtx {
    /// The core this context lives on.
    pub core: usize,
    /// This node's index in the topology.
    pub node: usize,
    pub key: ring::hmac::Key,
    pub fingerprint: u64,
    /// Empty until the drives are formatted.
    pub deployment: RefCell<String>,
    /// When a refusal was last logged, per remote address: a stranger that
    /// keeps knocking is logged once a minute, not on every attempt.
    refusals_logged: RefCell<std::collections::HashMap<String, Instant>>,
}

impl ClusterCtx {
    pub fn new(core: usize, node: usize, key: ring::hmac::Key, fingerprint: u64) -> Rc<ClusterCtx> {
        Rc::new(ClusterCtx {
            core,
            node,
            key,
            fingerprint,
            deployment: RefCell::new(String::new()),
            refusals_logged: RefCell::new(std::collections::HashMap::new()),
        })
    }

    /// Whether a refusal concerning `who` should be logged now.
    pub fn log_refusal(&self, who: &str) -> bool {
        let mut logged = self.refusals_logged.borrow_mut();
        let now = Instant::now();
        if logged.get(who).is_some_and(|t| now.duration_since(*t) < REFUSAL_LOG_INTERVAL) {
            return false;
        }
        if logged.len() >= REFUSALS_TRACKED {
            logged.clear();
        }
        logged.insert(who.to_string(), now);
        true
    }
}

/// Starts the watcher that keeps `peer` connected; runs for the core's life.
pub fn watch(peer: &Rc<Peer>) {
    glommio::spawn_local(peer.clone().watch()).detach();
}

/// A drive of another node.
#[derive(Clone)]
pub struct RemoteDrive {
    pub peer: Rc<Peer>,
    /// Global drive index.
    pub drive: usize,
}

impl RemoteDrive {
    pub async fn call(&self, op: DriveOp) -> DriveResult<DriveReply> {
        let req = Request::Drive { drive: self.drive as u32, op };
        match self.peer.call(req, peer::REQUEST_TIMEOUT).await? {
            Response::Drive(r) => r,
            other => Err(DriveError::Io(format!("unexpected answer to a drive request: {other:?}"))),
        }
    }

    pub async fn create_file(&self, volume: &str, path: &str, size: Option<u64>) -> DriveResult<RemoteWriter> {
        self.peer.create_file(self.drive, volume, path, size).await
    }

    pub fn is_online(&self) -> bool {
        self.peer.is_up()
    }
}

/// Other nodes' grants of a lock this node holds; dropping it releases them
/// and stops the lease refresher.
pub struct RemoteHold {
    key: String,
    holder: u64,
    granted: Vec<Rc<Peer>>,
    _refresher: glommio::Task<()>,
}

impl Drop for RemoteHold {
    fn drop(&mut self) {
        release(std::mem::take(&mut self.granted), &self.key, self.holder);
    }
}

fn release(peers: Vec<Rc<Peer>>, key: &str, holder: u64) {
    if peers.is_empty() {
        return;
    }
    let key = key.to_string();
    glommio::spawn_local(async move {
        join_all(peers.iter().map(|p| p.call(Request::Unlock { key: key.clone(), holder }, LOCK_CALL_TIMEOUT))).await;
    })
    .detach();
}

/// Nodes that must grant a lock: a majority for writes, and for reads enough
/// to overlap every write majority, so a reader and a writer never both win.
pub fn lock_quorum(nodes: usize, write: bool) -> usize {
    let w = nodes / 2 + 1;
    if write { w } else { nodes - w + 1 }
}

/// Takes `key`'s lock: on a single node from its own lock table; in a cluster,
/// first this node's (which queues fairly behind local requests), then the
/// other nodes', each granted only if free. Short of a quorum the grants are
/// given back and the round is retried after a growing, jittered pause; with
/// too few nodes reachable it fails at once.
pub async fn lock(core: &Rc<Core>, key: &str, write: bool, timeout: Duration) -> Result<LockGuard> {
    if core.peers().is_empty() {
        // A single node: its own lock table is the whole story.
        return crate::runtime::lock::lock(core, key, write, timeout).await;
    }
    let deadline = Instant::now() + timeout;
    let peers: Vec<Rc<Peer>> = core.peers().to_vec();
    let need = lock_quorum(peers.len() + 1, write);
    let lease_ms = LOCK_LEASE.as_millis() as u64;
    let mut pause = LOCK_RETRY_MIN;
    loop {
        let up: Vec<&Rc<Peer>> = peers.iter().filter(|p| p.is_up()).collect();
        if up.len() + 1 < need {
            return Err(Error::NodeQuorum { have: up.len() + 1, need, write });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let mut guard = crate::runtime::lock::lock(core, key, write, left).await?;
        let holder = guard.holder();
        let answers =
            join_all(up.iter().map(|p| {
                p.call(Request::TryLock { key: key.to_string(), write, holder, lease_ms }, LOCK_CALL_TIMEOUT)
            }))
            .await;
        let granted: Vec<Rc<Peer>> = up
            .iter()
            .zip(&answers)
            .filter(|(_, a)| matches!(a, Ok(Response::Granted(true))))
            .map(|(p, _)| Rc::clone(p))
            .collect();
        if granted.len() + 1 >= need {
            let refresher = glommio::spawn_local(refresh(granted.clone(), key.to_string(), holder));
            guard.remote = Some(RemoteHold { key: key.to_string(), holder, granted, _refresher: refresher });
            return Ok(guard);
        }
        // Give everything back, this node's own grant included, so that nodes
        // contending for the key cannot each keep a share and block one another.
        release(granted, key, holder);
        drop(guard);
        let answered = answers.iter().filter(|a| a.is_ok()).count();
        if answered + 1 < need {
            return Err(Error::NodeQuorum { have: answered + 1, need, write });
        }
        if Instant::now() >= deadline {
            return Err(Error::LockTimeout);
        }
        let jitter = u64::from(wire::nonce()[0]) * pause.as_micros() as u64 / 64;
        glommio::timer::sleep(pause + Duration::from_micros(jitter)).await;
        pause = (pause * 2).min(LOCK_RETRY_MAX);
    }
}

async fn refresh(peers: Vec<Rc<Peer>>, key: String, holder: u64) {
    let lease_ms = LOCK_LEASE.as_millis() as u64;
    loop {
        glommio::timer::sleep(LOCK_REFRESH).await;
        join_all(
            peers
                .iter()
                .map(|p| p.call(Request::Refresh { locks: vec![(key.clone(), holder)], lease_ms }, LOCK_CALL_TIMEOUT)),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_and_write_quorums_overlap() {
        for n in 1..=16 {
            let (w, r) = (lock_quorum(n, true), lock_quorum(n, false));
            assert!(w + w > n, "two writers cannot both win with {n} nodes");
            assert!(w + r > n, "a reader and a writer cannot both win with {n} nodes");
        }
        // Four nodes: writes need three, reads two (so reads survive two nodes down).
        assert_eq!((lock_quorum(4, true), lock_quorum(4, false)), (3, 2));
    }
}
