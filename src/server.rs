//! `basalt server`: wires the runtime, the S3 front end and the accept loops
//! together, prints what a person needs to know, and shuts down cleanly on
//! SIGINT/SIGTERM.

use std::cell::Cell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;

use crate::auth::{CredentialSource, Credentials};
use crate::http::server::{accept_loop, bind};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::s3::Frontend;

/// Prints a line for the person at the terminal; a closed stdout (a service
/// manager, a pipe that ended) must never stop the server.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// How long a shutdown waits for in-flight requests before cutting them off.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct ServerOptions {
    pub address: SocketAddr,
    pub cores: Option<usize>,
    pub parity: Option<usize>,
    pub drives: Vec<PathBuf>,
    pub region: String,
    pub domain: Option<String>,
}

/// Runs until SIGINT or SIGTERM. Errors are messages for the person at the terminal.
pub fn run(opts: ServerOptions) -> Result<(), String> {
    let (credentials, source) = Credentials::from_lookup(|k| std::env::var(k).ok())?;
    let cores = opts.cores.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let fatal = crate::tune::fatal_problems(&opts.drives, cores);
    if !fatal.is_empty() {
        let list: Vec<String> = fatal.iter().map(|c| c.to_string()).collect();
        return Err(format!(
            "this machine cannot run basalt as configured:\n{}\n(`basalt tune check` reports everything)",
            list.join("\n")
        ));
    }
    // Signals are taken by this thread alone (sigwait below), never by executors.
    let signals = shutdown_signals();
    signals.thread_block().map_err(|e| format!("cannot block signals: {e}"))?;
    let fresh_start = Instant::now();
    let rt = Runtime::start(RuntimeConfig { cores: opts.cores, drives: opts.drives.clone(), parity: opts.parity })
        .map_err(|e| e.to_string())?;
    let metrics_auth = crate::metrics::ScrapeAuth::from_lookup(|k| std::env::var(k).ok())?;
    let fe = Frontend {
        credentials: credentials.clone(),
        region: opts.region.clone(),
        domain: opts.domain.clone(),
        metrics_auth,
    };
    let fe = std::sync::Arc::new(fe);
    let mut stops = Vec::new();
    let mut loops = Vec::new();
    let (bound_tx, bound_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    for core in 0..rt.cores() {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        stops.push(stop_tx);
        let (fe, bound, addr) = (fe.clone(), bound_tx.clone(), opts.address);
        loops.push(rt.spawn_on(core, move |ctx| async move {
            let listener = match bind(addr) {
                Ok(l) => l,
                Err(e) => {
                    let _ = bound.send(Err(format!("cannot listen on {addr}: {e}")));
                    return;
                }
            };
            let _ = bound.send(Ok(()));
            let fe = Rc::new(Frontend::clone(&fe));
            let stopping = Rc::new(Cell::new(false));
            let busy = accept_loop_until(listener, ctx, fe, stopping.clone(), stop_rx).await;
            // Let requests in flight finish, within the grace period.
            let deadline = Instant::now() + SHUTDOWN_GRACE;
            while busy.get() > 0 && Instant::now() < deadline {
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    drop(bound_tx);
    for _ in 0..rt.cores() {
        match bound_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("an executor stopped during start".into()),
        }
    }
    banner(&opts, &rt, &credentials, source, fresh_start);
    let signal = signals.wait().map_err(|e| format!("waiting for signals: {e}"))?;
    say!("basalt: received {signal:?}, finishing requests in flight (at most {}s)", SHUTDOWN_GRACE.as_secs());
    for s in stops {
        let _ = s.send(());
    }
    for l in loops {
        l.join();
    }
    rt.shutdown();
    say!("basalt: stopped");
    Ok(())
}

async fn accept_loop_until(
    listener: glommio::net::TcpListener,
    ctx: Rc<crate::runtime::CoreCtx>,
    fe: Rc<Frontend>,
    stopping: Rc<Cell<bool>>,
    stop: oneshot::Receiver<()>,
) -> Rc<Cell<usize>> {
    let busy = Rc::new(Cell::new(0usize));
    let serving = accept_loop(listener, ctx, fe, stopping.clone(), busy.clone());
    futures_lite::future::or(serving, async {
        let _ = stop.await;
    })
    .await;
    stopping.set(true);
    busy
}

fn shutdown_signals() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGINT);
    set.add(nix::sys::signal::Signal::SIGTERM);
    set
}

fn banner(opts: &ServerOptions, rt: &Runtime, creds: &Credentials, source: CredentialSource, started: Instant) {
    let layout = rt.layout();
    let port = opts.address.port();
    let host = if opts.address.ip().is_unspecified() { "127.0.0.1".to_string() } else { opts.address.ip().to_string() };
    let endpoint = format!("http://{host}:{port}");
    say!("basalt {}", env!("CARGO_PKG_VERSION"));
    say!("Deployment: {}", rt.deployment_id());
    say!("Storage:    {}", layout.describe());
    for (i, d) in opts.drives.iter().enumerate() {
        let state = if rt.fresh_drives().contains(&i) { "online, formatted now" } else { "online" };
        say!("  drive {:>2}: {} ({state})", i + 1, d.display());
    }
    say!("S3 API:     {endpoint} (listening on {}, {} cores)", opts.address, rt.cores());
    match source {
        CredentialSource::Environment(var) => say!("Root user:  {} (from {var})", creds.access_key),
        CredentialSource::Development => {
            say!("Root user:  {} / secret {}", creds.access_key, creds.secret_key);
            say!();
            say!("WARNING: no credentials were set, so basalt uses the well-known development pair above.");
            say!("WARNING: anyone who can reach {endpoint} can read and write everything.");
            say!("WARNING: set BASALT_ROOT_USER and BASALT_ROOT_PASSWORD before storing anything real.");
        }
    }
    say!();
    say!(
        "Try it:     AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY=<secret> aws --endpoint-url {endpoint} s3 ls",
        creds.access_key
    );
    say!("Ready in {} ms.", started.elapsed().as_millis());
}
