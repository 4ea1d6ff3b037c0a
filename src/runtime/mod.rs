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

use futures_channel::mpsc;
use futures_util::StreamExt;
use glommio::channels::channel_mesh::{MeshBuilder, Senders};
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::Layout;
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

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Format(#[from] format::FormatError),
    #[error("cannot start executor {core}: {why}")]
    Executor { core: usize, why: String },
}

/// Per-core state, owned by one executor and shared (by `Rc`) between its tasks.
pub struct Core {
    id: usize,
    cores: usize,
    drives: HashMap<usize, Rc<LocalDrive>>,
    senders: Senders<CoreMsg>,
    locks: LockTable,
    lock_seq: Cell<u64>,
    lock_seed: u64,
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

    /// The handle through which this core reaches drive `index`.
    pub fn drive_handle(self: &Rc<Self>, index: usize) -> DriveHandle {
        match self.drives.get(&index) {
            Some(d) => DriveHandle::Local(d.clone()),
            None => DriveHandle::Core(CoreDrive { core: self.clone(), owner: index % self.cores, drive: index }),
        }
    }

    async fn send(&self, to: usize, msg: CoreMsg) -> Result<(), DriveError> {
        self.senders.send_to(to, msg).await.map_err(|_| DriveError::Offline)
    }

    fn lock_owner(&self, key: &str) -> usize {
        (xxhash_rust::xxh3::xxh3_64_with_seed(key.as_bytes(), self.lock_seed) % self.cores as u64) as usize
    }

    fn next_lock_holder(&self) -> u64 {
        let seq = self.lock_seq.get() + 1;
        self.lock_seq.set(seq);
        ((self.id as u64) << 48) | seq
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
    layout: Arc<Layout>,
    formatted: format::Formatted,
}

impl Runtime {
    /// Formats or verifies the drives, cleans interrupted writes, and starts the
    /// executors. Returns once every core is ready to serve.
    pub fn start(config: RuntimeConfig) -> Result<Runtime, StartError> {
        let layout = Arc::new(crate::config::layout(&config.drives, config.parity)?);
        let formatted = format::load_or_format(&config.drives, layout.set_size)?;
        for root in &config.drives {
            match format::clean_tmp(root) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(drive = %root.display(), entries = n, "removed leftovers of interrupted writes")
                }
                Err(e) => tracing::warn!(drive = %root.display(), error = %e, "cannot clean the temp folder"),
            }
        }
        raise_limits();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cores = config.cores.unwrap_or(cpus).max(1);
        let mesh = MeshBuilder::<CoreMsg, _>::full(cores, MESH_CHANNEL_DEPTH);
        let lock_seed = xxhash_rust::xxh3::xxh3_64(formatted.deployment_id.as_bytes());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let mut jobs = Vec::with_capacity(cores);
        let mut threads = Vec::with_capacity(cores);
        for id in 0..cores {
            let (job_tx, mut job_rx) = mpsc::unbounded::<Job>();
            jobs.push(job_tx);
            let mesh = mesh.clone();
            let layout = layout.clone();
            let formatted = formatted.clone();
            let ready = ready_tx.clone();
            let roots = config.drives.clone();
            let handle = LocalExecutorBuilder::new(Placement::Fixed(id % cpus))
                .name(&format!("basalt-core-{id}"))
                .spawn(move || async move {
                    crate::metrics::init_core(roots.len());
                    let Ok((senders, mut receivers)) = mesh.join().await else {
                        let _ = ready.send(Err("cannot join the cross-core mesh".into()));
                        return;
                    };
                    let drives = roots
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| i % cores == id)
                        .map(|(i, root)| (i, Rc::new(LocalDrive::open(root.clone(), i, formatted.formats[i].clone()))))
                        .collect();
                    let core = Rc::new(Core {
                        id,
                        cores,
                        drives,
                        senders,
                        locks: LockTable::default(),
                        lock_seq: Cell::new(0),
                        lock_seed,
                    });
                    for (_, rx) in receivers.streams() {
                        let core = core.clone();
                        glommio::spawn_local(async move {
                            while let Some(msg) = rx.recv().await {
                                glommio::spawn_local(peer::serve(core.clone(), msg)).detach();
                            }
                        })
                        .detach();
                    }
                    let objects = Rc::new(ObjectLayer::new(core.clone(), layout, &formatted.deployment_id));
                    let ctx = Rc::new(CoreCtx { core, objects });
                    let _ = ready.send(Ok(()));
                    while let Some(job) = job_rx.next().await {
                        glommio::spawn_local(job(ctx.clone())).detach();
                    }
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
        Ok(Runtime { jobs, threads, layout, formatted })
    }

    pub fn cores(&self) -> usize {
        self.jobs.len()
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn deployment_id(&self) -> &str {
        &self.formatted.deployment_id
    }

    /// Drives that had no format at start and were formatted (new or replaced).
    pub fn fresh_drives(&self) -> &[usize] {
        &self.formatted.fresh
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

/// Raises two soft limits to their hard ones: RLIMIT_MEMLOCK, because io_uring
/// rings and registered buffers count against it on older kernels, and
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
