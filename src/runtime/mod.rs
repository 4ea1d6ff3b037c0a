//! The thread-per-core runtime: one pinned glommio executor per core, each owning
//! a slice of the drives (drive `i` belongs to core `i mod cores`) and the locks
//! of the keys that hash to it. Cores talk only through messages (see [`peer`]);
//! nothing is shared between them but immutable start-up state.
//!
//! [`Runtime`] is the handle the rest of the program (and tests) hold from outside
//! the executors: it starts them, runs jobs on a chosen core, and stops them.

pub mod lock;
pub mod peer;

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::mpsc;
use futures_util::StreamExt;
use glommio::channels::channel_mesh::{MeshBuilder, Senders};
use glommio::{LocalExecutorBuilder, Placement};

use crate::cluster::{ClusterCtx, Peer, RemoteDrive};
use crate::config::Layout;
use crate::config::topology::{self, Topology};
use crate::drive::{DriveError, DriveHandle, LocalDrive, format};
use crate::object::ObjectLayer;
use lock::{LockMsg, LockTable};
use peer::{CoreDrive, CoreMsg};

/// Messages queued per pair of cores before a sender waits: enough to keep every
/// drive of a 16-drive set busy with a block in flight, small enough to push back.
const MESH_CHANNEL_DEPTH: usize = 256;

/// What the runtime needs to start.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Executors to start; `None` means one per available CPU.
    pub cores: Option<usize>,
    pub drives: Vec<PathBuf>,
    /// Parity per set; `None` picks the default for the set size.
    pub parity: Option<usize>,
}

/// What a cluster node's runtime needs to start; the drives' format is agreed
/// with the other nodes afterwards ([`Runtime::bootstrap`]).
#[derive(Clone)]
pub struct ClusterConfig {
    pub cores: Option<usize>,
    pub topology: Arc<Topology>,
    /// Derived from the root credentials; proves membership to other nodes.
    pub key: ring::hmac::Key,
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Topology(#[from] topology::TopologyError),
    #[error("{0}")]
    Format(#[from] format::FormatError),
    #[error("{0}")]
    Bootstrap(String),
    #[error("cannot start executor {core}: {why}")]
    Executor { core: usize, why: String },
}

/// Per-core state, owned by one executor and shared (by `Rc`) between its tasks.
pub struct Core {
    id: usize,
    cores: usize,
    topology: Arc<Topology>,
    /// This node's drives owned by this core, by global drive index.
    drives: HashMap<usize, Rc<LocalDrive>>,
    senders: Senders<CoreMsg>,
    locks: LockTable,
    lock_seq: Cell<u64>,
    /// Links to the other nodes (empty on a single node).
    peers: Vec<Rc<Peer>>,
    cluster: Option<Rc<ClusterCtx>>,
}

impl Core {
    pub fn id(&self) -> usize {
        self.id
    }

    pub fn cores(&self) -> usize {
        self.cores
    }

    pub fn local_drive(&self, index: usize) -> Option<&Rc<LocalDrive>> {
        self.drives.get(&index)
    }

    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    pub fn cluster(&self) -> Option<&Rc<ClusterCtx>> {
        self.cluster.as_ref()
    }

    /// Links to the other nodes of the cluster.
    pub fn peers(&self) -> &[Rc<Peer>] {
        &self.peers
    }

    /// The handle through which this core reaches drive `index` (global): this
    /// core's own, another core's of this node, or another node's.
    pub fn drive_handle(self: &Rc<Self>, index: usize) -> DriveHandle {
        if let Some(d) = self.drives.get(&index) {
            return DriveHandle::Local(d.clone());
        }
        match self.topology.local_slot(index) {
            Some(slot) => DriveHandle::Core(CoreDrive { core: self.clone(), owner: slot % self.cores, drive: index }),
            None => {
                let node = self.topology.endpoints[index].node;
                match self.peers.iter().find(|p| p.node == node) {
                    Some(peer) => DriveHandle::Remote(RemoteDrive { peer: peer.clone(), drive: index }),
                    None => unreachable!("every other node has a link"),
                }
            }
        }
    }

    /// Another node asks for a lock: granted if free now, for `lease`.
    pub async fn try_lock_for_peer(self: &Rc<Self>, key: String, write: bool, holder: u64, lease: Duration) -> bool {
        let owner = self.lock_owner(&key);
        let (tx, rx) = futures_channel::oneshot::channel();
        self.send_lock(owner, LockMsg::TryAcquire { key, write, holder, lease, reply: tx });
        rx.await.unwrap_or(false)
    }

    pub fn release_for_peer(self: &Rc<Self>, key: String, holder: u64) {
        let owner = self.lock_owner(&key);
        self.send_lock(owner, LockMsg::Release { key, holder });
    }

    pub fn refresh_for_peer(self: &Rc<Self>, key: String, holder: u64, lease: Duration) {
        let owner = self.lock_owner(&key);
        self.send_lock(owner, LockMsg::Refresh { key, holder, lease });
    }

    async fn send(&self, to: usize, msg: CoreMsg) -> Result<(), DriveError> {
        self.senders.send_to(to, msg).await.map_err(|_| DriveError::Offline)
    }

    fn lock_owner(&self, key: &str) -> usize {
        (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % self.cores as u64) as usize
    }

    fn next_lock_holder(&self) -> u64 {
        let seq = self.lock_seq.get() + 1;
        self.lock_seq.set(seq);
        // Unique across the cluster: node, core, sequence.
        ((self.topology.local as u64) << 56) | ((self.id as u64) << 48) | (seq & ((1 << 48) - 1))
    }

    fn send_lock(self: &Rc<Self>, owner: usize, msg: LockMsg) {
        if owner == self.id {
            self.locks.handle(msg);
            return;
        }
        if let Err(glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(CoreMsg::Lock(msg)))) =
            self.senders.try_send_to(owner, CoreMsg::Lock(msg))
        {
            let core = self.clone();
            glommio::spawn_local(async move {
                let _ = core.senders.send_to(owner, CoreMsg::Lock(msg)).await;
            })
            .detach();
        }
    }

    /// Locks owned by this core that are held or awaited.
    pub fn active_locks(&self) -> usize {
        self.locks.active_keys()
    }
}

/// What a job running on a core gets.
pub struct CoreCtx {
    pub core: Rc<Core>,
    pub objects: Rc<ObjectLayer>,
}

type Job = Box<dyn FnOnce(Rc<CoreCtx>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// The running executors, seen from outside them.
pub struct Runtime {
    jobs: Vec<mpsc::UnboundedSender<Job>>,
    threads: Vec<glommio::ExecutorJoinHandle<()>>,
    topology: Arc<Topology>,
    /// Known once the drives are formatted and agreed on.
    formatted: Option<format::Formatted>,
}

/// Threads per core for the file system calls io_uring cannot do (mkdir,
/// rename, directory fsync, readdir, statvfs).
const BLOCKING_THREADS_PER_CORE: usize = 8;

/// Memory each executor registers with io_uring for its direct reads and
/// writes (glommio's I/O arena): the shard writers' DMA buffers and the spans
/// GETs read come from it, and a read or write into registered memory skips
/// pinning its pages per call. 32 MiB holds what four 64 MiB GETs or PUTs per
/// two cores have in flight. Measured against glommio's default of 10 MiB,
/// alternated: large GETs 0.464 against 0.499 CPU s/GiB, large PUTs 2.95
/// against 3.22, and 64 concurrent PUTs peaked at 164 against 181 MiB (their
/// buffers come from the arena instead of the heap). It is pinned from start,
/// so an idle server holds it; what does not fit comes from the heap, as
/// before. The kernel charges it to RLIMIT_MEMLOCK, once per ring
/// ([`crate::tune::IO_BUFFER_REGISTRATIONS`]); where that is too low, glommio
/// skips the registration and `basalt tune check` and the server's start say so.
pub const IO_MEMORY_BYTES_PER_CORE: usize = 32 << 20;

/// How often a core drops other nodes' lapsed lock leases.
const LEASE_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl Runtime {
    /// A single node on local drives: formats or verifies them, cleans
    /// interrupted writes, and starts the executors, ready to serve.
    pub fn start(config: RuntimeConfig) -> Result<Runtime, StartError> {
        let topology = Arc::new(topology::local_topology(&config.drives, config.parity)?);
        Runtime::start_topology(config.cores, topology)
    }

    /// A single node described by a topology of local drives.
    pub fn start_topology(cores: Option<usize>, topology: Arc<Topology>) -> Result<Runtime, StartError> {
        let roots: Vec<PathBuf> = topology.endpoints.iter().map(|e| e.path.clone()).collect();
        let formatted = format::load_or_format(&roots, topology.layout.set_size)?;
        clean_tmp(&roots);
        Runtime::launch(cores, topology, Some(formatted), None)
    }

    /// A cluster node: starts the executors and the links to the other nodes;
    /// nothing is served until [`Runtime::bootstrap`] and [`Runtime::activate`].
    pub fn start_cluster(config: ClusterConfig) -> Result<Runtime, StartError> {
        for &d in config.topology.local_drives() {
            let root = &config.topology.endpoints[d].path;
            std::fs::create_dir_all(root).map_err(|e| format::FormatError::Drive {
                path: root.clone(),
                why: format!("cannot create the directory: {e}"),
            })?;
        }
        Runtime::launch(config.cores, config.topology, None, Some(config.key))
    }

    /// Waits until the cluster's drives are agreed on (see `cluster::bootstrap`).
    pub fn bootstrap(&self, say: impl Fn(String) + Send + 'static) -> Result<format::Formatted, StartError> {
        self.run_on(0, move |ctx| async move { crate::cluster::bootstrap::agree(ctx, say).await })
            .map_err(StartError::Bootstrap)
    }

    /// Starts serving on drives of deployment `formatted`.
    pub fn activate(&mut self, formatted: format::Formatted) {
        let roots: Vec<PathBuf> =
            self.topology.local_drives().iter().map(|d| self.topology.endpoints[*d].path.clone()).collect();
        clean_tmp(&roots);
        for core in 0..self.cores() {
            let f = formatted.clone();
            self.run_on(core, move |ctx| async move { activate_core(&ctx, &f) });
        }
        self.formatted = Some(formatted);
    }

    fn launch(
        cores: Option<usize>,
        topology: Arc<Topology>,
        formatted: Option<format::Formatted>,
        key: Option<ring::hmac::Key>,
    ) -> Result<Runtime, StartError> {
        raise_limits();
        let layout = Arc::new(topology.layout.clone());
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cores = cores.unwrap_or(cpus).max(1);
        let mesh = MeshBuilder::<CoreMsg, _>::full(cores, MESH_CHANNEL_DEPTH);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let mut jobs = Vec::with_capacity(cores);
        let mut threads = Vec::with_capacity(cores);
        for id in 0..cores {
            let (job_tx, mut job_rx) = mpsc::unbounded::<Job>();
            jobs.push(job_tx);
            let mesh = mesh.clone();
            let layout = layout.clone();
            let topology = topology.clone();
            let formatted = formatted.clone();
            let ready = ready_tx.clone();
            let key = key.clone();
            let handle = LocalExecutorBuilder::new(Placement::Fixed(id % cpus))
                .name(&format!("basalt-core-{id}"))
                .io_memory(IO_MEMORY_BYTES_PER_CORE)
                // Directory work (mkdir, rename, fsync of a directory) runs on these
                // threads; one per core made every small PUT queue behind the others'.
                .blocking_thread_pool_placement(glommio::PoolPlacement::Unbound(BLOCKING_THREADS_PER_CORE))
                .spawn(move || async move {
                    crate::metrics::init_core(topology.endpoints.len());
                    let Ok((senders, mut receivers)) = mesh.join().await else {
                        let _ = ready.send(Err("cannot join the cross-core mesh".into()));
                        return;
                    };
                    let drives = topology
                        .local_drives()
                        .iter()
                        .enumerate()
                        .filter(|(slot, _)| slot % cores == id)
                        .map(|(_, &d)| {
                            let format = formatted.as_ref().map(|f| f.formats[d].clone());
                            (d, Rc::new(LocalDrive::open(topology.endpoints[d].path.clone(), d, format)))
                        })
                        .collect();
                    let cluster = key.map(|k| ClusterCtx::new(id, topology.local, k, topology.fingerprint));
                    let peers: Vec<Rc<Peer>> = match &cluster {
                        Some(c) => {
                            topology.peers().map(|n| Peer::new(n, topology.nodes[n].address(), c.clone())).collect()
                        }
                        None => Vec::new(),
                    };
                    let core = Rc::new(Core {
                        id,
                        cores,
                        topology: topology.clone(),
                        drives,
                        senders,
                        locks: LockTable::default(),
                        lock_seq: Cell::new(0),
                        peers,
                        cluster,
                    });
                    for (_, rx) in receivers.streams() {
                        let core = core.clone();
                        glommio::spawn_local(async move {
                            while let Some(msg) = rx.recv().await {
                                spawn_guarded("cross-core request", peer::serve(core.clone(), msg));
                            }
                        })
                        .detach();
                    }
                    // Shard reads lent to other cores come back here to be freed.
                    glommio::spawn_local(async {
                        loop {
                            glommio::timer::sleep(crate::drive::lend::RETURN_SWEEP_INTERVAL).await;
                            crate::drive::lend::sweep();
                        }
                    })
                    .detach();
                    if core.cluster.is_some() {
                        for p in core.peers() {
                            crate::cluster::watch(p);
                        }
                        let c = core.clone();
                        glommio::spawn_local(async move {
                            loop {
                                glommio::timer::sleep(LEASE_SWEEP_INTERVAL).await;
                                c.locks.sweep();
                            }
                        })
                        .detach();
                    }
                    let deployment = formatted.as_ref().map(|f| f.deployment_id.as_str());
                    let objects = Rc::new(ObjectLayer::new(core.clone(), layout, deployment));
                    let ctx = Rc::new(CoreCtx { core, objects });
                    let _ = ready.send(Ok(()));
                    while let Some(job) = job_rx.next().await {
                        glommio::spawn_local(job(ctx.clone())).detach();
                    }
                    // The executor stops: the wakers of PUTs still waiting on a hash
                    // are dropped now, while their tasks exist.
                    crate::etag::forget_waiting();
                })
                .map_err(|e| StartError::Executor { core: id, why: e.to_string() })?;
            threads.push(handle);
        }
        drop(ready_tx);
        for core in 0..cores {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(why)) => return Err(StartError::Executor { core, why }),
                Err(_) => return Err(StartError::Executor { core, why: "executor exited during start".into() }),
            }
        }
        Ok(Runtime { jobs, threads, topology, formatted })
    }

    pub fn cores(&self) -> usize {
        self.jobs.len()
    }

    pub fn layout(&self) -> &Layout {
        &self.topology.layout
    }

    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    /// Empty until the drives are agreed on.
    pub fn deployment_id(&self) -> &str {
        self.formatted.as_ref().map_or("", |f| f.deployment_id.as_str())
    }

    /// Drives that had no format at start and were formatted (new or replaced).
    pub fn fresh_drives(&self) -> &[usize] {
        self.formatted.as_ref().map_or(&[], |f| f.fresh.as_slice())
    }

    /// Starts `f` on executor `core`; the returned handle yields its result.
    pub fn spawn_on<F, Fut, T>(&self, core: usize, f: F) -> JobHandle<T>
    where
        F: FnOnce(Rc<CoreCtx>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |ctx| {
            Box::pin(async move {
                let _ = tx.send(f(ctx).await);
            })
        });
        let sent = self.jobs[core % self.jobs.len()].unbounded_send(job).is_ok();
        JobHandle { rx, sent }
    }

    /// Runs `f` on executor `core` and waits for its result.
    pub fn run_on<F, Fut, T>(&self, core: usize, f: F) -> T
    where
        F: FnOnce(Rc<CoreCtx>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        self.spawn_on(core, f).join()
    }

    /// Stops the executors (in-flight jobs are dropped) and waits for their threads.
    pub fn shutdown(self) {
        let Runtime { jobs, threads, .. } = self;
        drop(jobs);
        for t in threads {
            let _ = t.join();
        }
    }
}

/// The result of a job started with [`Runtime::spawn_on`].
pub struct JobHandle<T> {
    rx: std::sync::mpsc::Receiver<T>,
    sent: bool,
}

impl<T> JobHandle<T> {
    /// Waits for the job's result. Panics if the executor died, which only a bug can cause.
    pub fn join(self) -> T {
        assert!(self.sent, "executor is gone");
        self.rx.recv().expect("the job was dropped: its executor stopped or the job panicked")
    }
}

/// Spawns a task on this core whose panic (a bug) costs only that task, never
/// the executor and everything else it serves.
pub fn spawn_guarded(what: &'static str, task: impl Future<Output = ()> + 'static) {
    use futures_util::FutureExt;
    glommio::spawn_local(async move {
        if std::panic::AssertUnwindSafe(task).catch_unwind().await.is_err() {
            tracing::error!(task = what, "a task panicked; it was stopped and the core goes on");
        }
    })
    .detach();
}

/// Points every local drive and the object layer of one core at the agreed format.
fn activate_core(ctx: &CoreCtx, formatted: &format::Formatted) {
    for (d, drive) in &ctx.core.drives {
        drive.set_format(formatted.formats[*d].clone());
    }
    if let Some(c) = &ctx.core.cluster {
        *c.deployment.borrow_mut() = formatted.deployment_id.clone();
    }
    ctx.objects.activate(&formatted.deployment_id);
}

/// Empties the temp folders of these drives: leftovers of interrupted writes.
/// Before the drives serve: redoes what their metadata journals hold (see
/// `drive::journal`), then empties their temp areas. A journal that cannot be
/// redone is moved aside, kept for a person to look at; heal restores from the
/// other drives whatever it held.
fn clean_tmp(roots: &[PathBuf]) {
    for root in roots {
        match crate::drive::journal::recover(root) {
            Ok(r) if r.redone + r.skipped == 0 => {}
            Ok(r) => {
                tracing::info!(drive = %root.display(), redone = r.redone, skipped = r.skipped, "redid the metadata journal")
            }
            Err(e) => {
                tracing::error!(drive = %root.display(), error = %e, "cannot redo the metadata journal; moving it aside");
                crate::drive::journal::set_aside(root);
            }
        }
    }
    for root in roots {
        match format::clean_tmp(root) {
            Ok(0) => {}
            Ok(n) => tracing::info!(drive = %root.display(), entries = n, "removed leftovers of interrupted writes"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(drive = %root.display(), error = %e, "cannot clean the temp folder"),
        }
    }
}

/// Raises two soft limits to their hard ones: RLIMIT_MEMLOCK, because io_uring
/// registered buffers count against it (and the rings too, on older kernels), and
/// RLIMIT_NOFILE, because every in-flight block read or shard write holds a file
/// per drive.
fn raise_limits() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    for resource in [Resource::RLIMIT_MEMLOCK, Resource::RLIMIT_NOFILE] {
        if let Ok((soft, hard)) = getrlimit(resource)
            && soft < hard
        {
            let _ = setrlimit(resource, hard, hard);
        }
    }
}
