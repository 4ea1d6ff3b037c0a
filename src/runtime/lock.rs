//! Per-key read/write locks, each key owned by one core (`hash(key) mod cores`).
//!
//! A lock request travels to the owner core like a drive request does; the owner
//! keeps a FIFO queue per key and grants compatible requests in order. A waiter
//! that gives up (timeout) or a holder that finishes sends `Release`; because one
//! core's messages to another arrive in order, a release always finds the request
//! it names, queued or granted, and nothing is ever held by a waiter that left.
//!
//! In a cluster the same table also holds locks for other nodes (`TryAcquire`):
//! granted only when free at once, and only for a lease that the holder keeps
//! refreshing; a lapsed lease is dropped, so a node that died holding a lock
//! never wedges the key.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;

use super::Core;
use crate::error::{Error, Result};

/// How long a request waits for a lock before failing with `SlowDown`: long
/// enough for a large PUT's commit, short enough that a deadlock (two copies in
/// opposite directions) clears itself.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// A message to the core that owns a key's lock.
pub enum LockMsg {
    Acquire {
        key: String,
        write: bool,
        holder: u64,
        reply: oneshot::Sender<()>,
    },
    Release {
        key: String,
        holder: u64,
    },
    /// Another node's request: granted now (for `lease`) or refused, never queued.
    TryAcquire {
        key: String,
        write: bool,
        holder: u64,
        lease: Duration,
        reply: oneshot::Sender<bool>,
    },
    Refresh {
        key: String,
        holder: u64,
        lease: Duration,
    },
}

struct Waiter {
    holder: u64,
    write: bool,
    reply: oneshot::Sender<()>,
}

#[derive(Default)]
struct KeyState {
    readers: Vec<u64>,
    writer: Option<u64>,
    queue: VecDeque<Waiter>,
    /// Holders from other nodes and when their lease lapses.
    leases: Vec<(u64, Instant)>,
}

impl KeyState {
    fn drop_holder(&mut self, holder: u64) {
        if self.writer == Some(holder) {
            self.writer = None;
        }
        self.readers.retain(|h| *h != holder);
        self.leases.retain(|(h, _)| *h != holder);
    }

    /// Drops holders whose lease lapsed; true if any did.
    fn expire(&mut self, now: Instant) -> bool {
        let lapsed: Vec<u64> = self.leases.iter().filter(|(_, t)| *t <= now).map(|(h, _)| *h).collect();
        for h in &lapsed {
            self.drop_holder(*h);
        }
        !lapsed.is_empty()
    }

    fn idle(&self) -> bool {
        self.writer.is_none() && self.readers.is_empty() && self.queue.is_empty()
    }
}

/// The locks owned by one core.
#[derive(Default)]
pub struct LockTable {
    keys: RefCell<HashMap<String, KeyState>>,
}

impl LockTable {
    pub fn handle(&self, msg: LockMsg) {
        match msg {
            LockMsg::Acquire { key, write, holder, reply } => {
                let mut keys = self.keys.borrow_mut();
                let state = keys.entry(key).or_default();
                state.queue.push_back(Waiter { holder, write, reply });
                grant(state);
            }
            LockMsg::Release { key, holder } => {
                let mut keys = self.keys.borrow_mut();
                if let Some(state) = keys.get_mut(&key) {
                    state.drop_holder(holder);
                    state.queue.retain(|w| w.holder != holder);
                    grant(state);
                    if state.idle() {
                        keys.remove(&key);
                    }
                }
            }
            LockMsg::TryAcquire { key, write, holder, lease, reply } => {
                let mut keys = self.keys.borrow_mut();
                let state = keys.entry(key.clone()).or_default();
                state.expire(Instant::now());
                let free = state.queue.is_empty() && state.writer.is_none() && (!write || state.readers.is_empty());
                // A requester that already left gets nothing held for it.
                if reply.send(free).is_ok() && free {
                    if write {
                        state.writer = Some(holder);
                    } else {
                        state.readers.push(holder);
                    }
                    state.leases.push((holder, Instant::now() + lease));
                }
                if state.idle() {
                    keys.remove(&key);
                }
            }
            LockMsg::Refresh { key, holder, lease } => {
                if let Some(state) = self.keys.borrow_mut().get_mut(&key) {
                    for (h, t) in state.leases.iter_mut() {
                        if *h == holder {
                            *t = Instant::now() + lease;
                        }
                    }
                }
            }
        }
    }

    /// Drops lapsed leases and wakes whoever waited on them.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut keys = self.keys.borrow_mut();
        keys.retain(|_, state| {
            if state.expire(now) {
                grant(state);
            }
            !state.idle()
        });
    }

    /// Keys with a holder or a waiter (for tests and metrics).
    pub fn active_keys(&self) -> usize {
        self.keys.borrow().len()
    }
}

fn grant(state: &mut KeyState) {
    while let Some(front) = state.queue.front() {
        let free = state.writer.is_none() && (if front.write { state.readers.is_empty() } else { true });
        if !free {
            break;
        }
        let waiter = state.queue.pop_front().expect("front exists");
        // A waiter that already left dropped its receiver: skip it.
        if waiter.reply.send(()).is_ok() {
            if waiter.write {
                state.writer = Some(waiter.holder);
            } else {
                state.readers.push(waiter.holder);
            }
        }
    }
}

/// A held lock; released when dropped.
pub struct LockGuard {
    core: Rc<Core>,
    owner: usize,
    key: String,
    holder: u64,
    /// In a cluster: the other nodes' grants, released with this guard.
    pub(crate) remote: Option<crate::cluster::RemoteHold>,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        drop(self.remote.take());
        let msg = LockMsg::Release { key: std::mem::take(&mut self.key), holder: self.holder };
        self.core.send_lock(self.owner, msg);
    }
}

impl LockGuard {
    pub fn holder(&self) -> u64 {
        self.holder
    }
}

/// Takes the read or write lock of `key`, waiting at most `timeout`.
pub async fn lock(core: &Rc<Core>, key: &str, write: bool, timeout: Duration) -> Result<LockGuard> {
    let owner = core.lock_owner(key);
    let holder = core.next_lock_holder();
    let (tx, rx) = oneshot::channel();
    core.send_lock(owner, LockMsg::Acquire { key: key.to_string(), write, holder, reply: tx });
    let guard = LockGuard { core: core.clone(), owner, key: key.to_string(), holder, remote: None };
    let granted = futures_lite::future::or(async { rx.await.is_ok() }, async {
        glommio::timer::sleep(timeout).await;
        false
    })
    .await;
    if granted {
        Ok(guard)
    } else {
        // Dropping the guard sends the release that withdraws the request.
        drop(guard);
        Err(Error::LockTimeout)
    }
}
