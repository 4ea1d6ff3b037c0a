//! `basalt server`: wires the runtime, the S3 front end and the accept loops
//! together, prints what a person needs to know, and shuts down cleanly on
//! SIGINT/SIGTERM.

use std::cell::Cell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;

use crate::auth::{CredentialSource, Credentials};
use crate::console::{self, Console};
use crate::http::server::{Balance, accept_loop, bind};
use crate::runtime::{ClusterConfig, Runtime};
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
    /// Drive arguments as given: paths, or `http://host:port/path` endpoints.
    pub drives: Vec<String>,
    pub region: String,
    pub domain: Option<String>,
    /// A second listener that serves only the web console.
    pub console_address: Option<SocketAddr>,
}

/// What the main thread waits for.
enum Event {
    Signal(nix::sys::signal::Signal),
    Agreed(Result<crate::drive::format::Formatted, String>),
    Progress(String),
}

/// Runs until SIGINT or SIGTERM. Errors are messages for the person at the terminal.
pub fn run(opts: ServerOptions) -> Result<(), String> {
    let (credentials, source) = Credentials::from_lookup(|k| std::env::var(k).ok())?;
    let topology =
        Arc::new(crate::config::topology::parse(&opts.drives, opts.parity, opts.address).map_err(|e| e.to_string())?);
    let local_paths: Vec<PathBuf> =
        topology.local_drives().iter().map(|d| topology.endpoints[*d].path.clone()).collect();
    let session_ttl_secs = crate::console::session::ttl_from_lookup(|k| std::env::var(k).ok())?;
    crate::drive::journal::set_enabled(crate::drive::journal::from_lookup(|k| std::env::var(k).ok())?);
    let cores = opts.cores.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let fatal = crate::tune::fatal_problems(&local_paths, cores);
    if !fatal.is_empty() {
        let list: Vec<String> = fatal.iter().map(|c| c.to_string()).collect();
        return Err(format!(
            "this machine cannot run basalt as configured:\n{}\n(`basalt tune check` reports everything)",
            list.join("\n")
        ));
    }
    for warning in crate::tune::start_warnings(cores) {
        tracing::warn!("{}: {} (advice: {})", warning.what, warning.detail, warning.advice);
    }
    for (addr, flag) in [(Some(opts.address), "--address"), (opts.console_address, "--console-address")] {
        if let Some(addr) = addr {
            crate::http::server::check_free(addr).map_err(|e| {
                format!("cannot listen on {addr} ({flag}): {e}; is another basalt or another server running there?")
            })?;
        }
    }
    crate::tune::malloc::configure();
    // Signals are taken by one thread (sigwait), never by executors.
    let signals = shutdown_signals();
    signals.thread_block().map_err(|e| format!("cannot block signals: {e}"))?;
    let (events, inbox) = std::sync::mpsc::channel::<Event>();
    let to_main = events.clone();
    std::thread::Builder::new()
        .name("basalt-signals".into())
        .spawn(move || {
            while let Ok(sig) = signals.wait() {
                if to_main.send(Event::Signal(sig)).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    let fresh_start = Instant::now();
    let mut rt = if topology.distributed {
        let key = crate::cluster::wire::cluster_key(&credentials.access_key, &credentials.secret_key);
        Runtime::start_cluster(ClusterConfig { cores: opts.cores, topology: topology.clone(), key })
    } else {
        Runtime::start_topology(opts.cores, topology.clone())
    }
    .map_err(|e| e.to_string())?;
    // Sessions are signed with a key every node derives alike (same keys, same
    // arguments), so a load balancer may send a browser to any node.
    let console = Console::new(
        &credentials,
        &format!("{:016x}", topology.fingerprint),
        console::Settings {
            session_ttl_secs,
            endpoint: endpoint(opts.address),
            drives: topology.endpoints.iter().map(|e| e.text.clone()).collect(),
            s3_port: opts.address.port(),
        },
    );
    let metrics_auth = crate::metrics::ScrapeAuth::from_lookup(|k| std::env::var(k).ok())?;
    let fe = Frontend {
        credentials: credentials.clone(),
        region: opts.region.clone(),
        domain: opts.domain.clone(),
        console: std::sync::Arc::new(console),
        console_only: false,
        metrics_auth,
    };
    let fe = std::sync::Arc::new(fe);
    let mut stops = Vec::new();
    let mut loops = Vec::new();
    let balance = Balance::new(rt.cores());
    let (bound_tx, bound_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    for core in 0..rt.cores() {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        stops.push(stop_tx);
        let (fe, bound, addr, console_addr) = (fe.clone(), bound_tx.clone(), opts.address, opts.console_address);
        let balance = balance.clone();
        loops.push(rt.spawn_on(core, move |ctx| async move {
            let listener = match bind(addr) {
                Ok(l) => l,
                Err(e) => {
                    let _ = bound.send(Err(format!("cannot listen on {addr}: {e}")));
                    return;
                }
            };
            let console_listener = match console_addr.map(bind) {
                None => None,
                Some(Ok(l)) => Some(l),
                Some(Err(e)) => {
                    let _ = bound.send(Err(format!(
                        "cannot listen on {} (--console-address): {e}",
                        console_addr.unwrap_or(addr)
                    )));
                    return;
                }
            };
            let _ = bound.send(Ok(()));
            let fe = Rc::new(Frontend::clone(&fe));
            let stopping = Rc::new(Cell::new(false));
            let busy = accept_loop_until(listener, console_listener, ctx, fe, stopping.clone(), stop_rx, balance).await;
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
    let mut stop_signal = None;
    if topology.distributed {
        say!(
            "basalt {}: node {} of {} ({}), waiting for the other nodes",
            env!("CARGO_PKG_VERSION"),
            topology.local + 1,
            topology.nodes.len(),
            topology.nodes[topology.local].address()
        );
        let (agreed, progress) = (events.clone(), events.clone());
        rt.spawn_on(0, move |ctx| async move {
            let say = move |line: String| {
                let _ = progress.send(Event::Progress(line));
            };
            let r = crate::cluster::bootstrap::agree(ctx, say).await;
            let _ = agreed.send(Event::Agreed(r));
        });
        loop {
            match inbox.recv() {
                Ok(Event::Progress(line)) => say!("{line}"),
                Ok(Event::Agreed(Ok(formatted))) => {
                    rt.activate(formatted);
                    break;
                }
                Ok(Event::Agreed(Err(e))) => {
                    stop(stops, loops, rt);
                    return Err(e);
                }
                Ok(Event::Signal(sig)) => {
                    stop_signal = Some(sig);
                    break;
                }
                Err(_) => return Err("the start-up agreement stopped".into()),
            }
        }
        if stop_signal.is_none() {
            rt.spawn_on(0, |ctx| async move { crate::object::heal_pass_after_start(ctx).await });
        }
    }
    if stop_signal.is_none() {
        banner(&opts, &rt, &credentials, source, fresh_start);
    }
    let signal = match stop_signal {
        Some(s) => s,
        None => loop {
            match inbox.recv() {
                Ok(Event::Signal(s)) => break s,
                Ok(_) => continue,
                Err(_) => return Err("the signal thread stopped".into()),
            }
        },
    };
    say!("basalt: received {signal:?}, finishing requests in flight (at most {}s)", SHUTDOWN_GRACE.as_secs());
    stop(stops, loops, rt);
    say!("basalt: stopped");
    Ok(())
}

/// Stops the accept loops, waits for requests in flight, stops the executors.
fn stop(stops: Vec<oneshot::Sender<()>>, loops: Vec<crate::runtime::JobHandle<()>>, rt: Runtime) {
    for s in stops {
        let _ = s.send(());
    }
    for l in loops {
        l.join();
    }
    rt.shutdown();
}

async fn accept_loop_until(
    listener: glommio::net::TcpListener,
    console_listener: Option<glommio::net::TcpListener>,
    ctx: Rc<crate::runtime::CoreCtx>,
    fe: Rc<Frontend>,
    stopping: Rc<Cell<bool>>,
    stop: oneshot::Receiver<()>,
    balance: Arc<Balance>,
) -> Rc<Cell<usize>> {
    let busy = Rc::new(Cell::new(0usize));
    let console_fe = Rc::new(Frontend { console_only: true, ..Frontend::clone(&fe) });
    let serving = accept_loop(listener, ctx.clone(), fe, stopping.clone(), busy.clone(), Some(balance));
    let console = async {
        match console_listener {
            Some(l) => accept_loop(l, ctx, console_fe, stopping.clone(), busy.clone(), None).await,
            None => futures_lite::future::pending().await,
        }
    };
    futures_lite::future::or(futures_lite::future::or(serving, console), async {
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

/// `host:port` a person on this machine can reach `addr` at.
fn endpoint(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
    SocketAddr::new(host.parse().unwrap_or(addr.ip()), addr.port()).to_string()
}

fn banner(opts: &ServerOptions, rt: &Runtime, creds: &Credentials, source: CredentialSource, started: Instant) {
    let layout = rt.layout();
    let endpoint = format!("http://{}", endpoint(opts.address));
    say!("basalt {}", env!("CARGO_PKG_VERSION"));
    say!("Deployment: {}", rt.deployment_id());
    say!("Storage:    {}", layout.describe());
    let topo = rt.topology();
    if topo.distributed {
        say!(
            "Cluster:    {} nodes, {} drives; this is node {} ({})",
            topo.nodes.len(),
            topo.endpoints.len(),
            topo.local + 1,
            topo.nodes[topo.local].address()
        );
    }
    for &i in topo.local_drives() {
        let state = if rt.fresh_drives().contains(&i) { "online, formatted now" } else { "online" };
        say!("  drive {:>2}: {} ({state})", i + 1, topo.endpoints[i].path.display());
    }
    say!("S3 API:     {endpoint} (listening on {}, {} cores)", opts.address, rt.cores());
    match opts.console_address {
        Some(a) => say!("Console:    http://{}/console/ (also {endpoint}/console/)", self::endpoint(a)),
        None => say!("Console:    {endpoint}/console/"),
    }
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
