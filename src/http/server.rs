//! The accept loop of one core and the request loop of one connection. Every
//! core binds the S3 port with SO_REUSEPORT, so the kernel spreads connections
//! over cores. The kernel spreads them by a hash of the client's address and
//! port, not by load: four connections land 3 + 1 on two cores half the time,
//! and one core then does three clients' work while the other idles. So a core
//! that accepts a connection while another core serves fewer hands it over
//! ([`Balance`]); the connection then stays on that core.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use glommio::net::{TcpListener, TcpStream};

use super::body::{Framing, HttpBody};
use super::conn::Conn;
use super::response;
use crate::error::Error;
use crate::runtime::CoreCtx;
use crate::s3::{self, Frontend};

/// A client that sends nothing for this long, between or inside requests, is
/// disconnected.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// A whole request head (or the idle time before it) must arrive within this,
/// however slowly its bytes trickle in (slowloris protection).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(60);
/// A client that does not take our bytes for this long is disconnected.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the start-up check waits for a server already on the port to
/// accept, and then to answer.
const PORT_PROBE_TIMEOUT: Duration = Duration::from_millis(1000);
/// Connections one core serves at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS_PER_CORE: usize = 4096;

/// Fails if another server answers on `addr`. The per-core listeners set
/// SO_REUSEPORT, which lets any process of the same user that sets it too bind
/// the same port: a second basalt started by mistake would silently share the
/// port, each answering its share of the connections from its own drives. A
/// trial bind cannot tell that apart from the closing connections a killed
/// server leaves behind, and a bare connect is no better: a server killed a
/// moment ago still completes handshakes while the kernel tears down its
/// io_uring, which holds the listening socket. So ask: a live server answers
/// an HTTP request; a dying socket never does.
pub fn check_free(addr: SocketAddr) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    // Refused (nothing listens), or unreachable: binding will tell.
    let Ok(mut knock) = std::net::TcpStream::connect_timeout(&target, PORT_PROBE_TIMEOUT) else {
        return Ok(());
    };
    let answered = (|| {
        knock.set_read_timeout(Some(PORT_PROBE_TIMEOUT))?;
        knock.set_write_timeout(Some(PORT_PROBE_TIMEOUT))?;
        knock.write_all(b"GET /minio/health/live HTTP/1.0\r\n\r\n")?;
        let mut byte = [0u8; 1];
        knock.read(&mut byte)
    })();
    match answered {
        Ok(n) if n > 0 => Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "another server answers there")),
        _ => Ok(()),
    }
}

/// Binds the S3 port on this core.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).map_err(|e| std::io::Error::other(e.to_string()))
}

/// The S3 connections open on each core, shared by the cores of one server so
/// that a core can see which is least loaded. A connection handed over is
/// counted on its new core at once, by the core that hands it over, so that
/// accepts racing on several cores see it.
pub struct Balance {
    open: Box<[AtomicUsize]>,
    /// The core serves handed-over connections (its accept loop runs).
    ready: Box<[AtomicBool]>,
}

impl Balance {
    pub fn new(cores: usize) -> Arc<Balance> {
        Arc::new(Balance {
            open: (0..cores).map(|_| AtomicUsize::new(0)).collect(),
            ready: (0..cores).map(|_| AtomicBool::new(false)).collect(),
        })
    }

    /// The ready core with the fewest open connections, if it has fewer than
    /// `core` (which is about to take one more).
    fn lighter_than(&self, core: usize) -> Option<usize> {
        let mine = self.open[core].load(Ordering::Relaxed);
        (0..self.open.len())
            .filter(|&c| c != core && self.ready[c].load(Ordering::Relaxed))
            .map(|c| (self.open[c].load(Ordering::Relaxed), c))
            .min()
            .filter(|&(theirs, _)| theirs < mine)
            .map(|(_, c)| c)
    }
}

/// What a core needs to serve a connection: its accept loop's state, kept per
/// thread so that a connection handed over from another core finds it.
#[derive(Clone)]
struct Intake {
    ctx: Rc<CoreCtx>,
    fe: Rc<Frontend>,
    stop: Rc<Cell<bool>>,
    busy: Rc<Cell<usize>>,
    /// Open connections per core, this core's in its own slot: shared by every
    /// core's S3 loop, or this loop's alone when it balances with no one.
    counts: Arc<Balance>,
    seq: Rc<Cell<u64>>,
}

thread_local! {
    /// This core's S3 accept loop, while it runs.
    static INTAKE: RefCell<Option<Intake>> = const { RefCell::new(None) };
}

impl Intake {
    fn core(&self) -> usize {
        self.ctx.core.id()
    }

    /// This core's count of open connections.
    fn open(&self) -> &AtomicUsize {
        &self.counts.open[self.core()]
    }

    /// Serves `stream` on this core, as its own task.
    fn serve(&self, stream: TcpStream) {
        if self.open().load(Ordering::Relaxed) >= MAX_CONNECTIONS_PER_CORE {
            return;
        }
        self.open().fetch_add(1, Ordering::Relaxed);
        self.serve_counted(stream);
    }

    /// [`Intake::serve`] of a connection already counted on this core.
    fn serve_counted(&self, stream: TcpStream) {
        self.seq.set(self.seq.get() + 1);
        let id_base = ((self.core() as u64) << 56) | (self.seq.get() << 20);
        let me = self.clone();
        glommio::spawn_local(async move {
            // A bug must cost one connection, never the core and its other clients.
            let served = std::panic::AssertUnwindSafe(serve_connection(
                stream,
                me.ctx.clone(),
                me.fe.clone(),
                id_base,
                me.stop.clone(),
                me.busy.clone(),
            ));
            if futures_util::FutureExt::catch_unwind(served).await.is_err() {
                tracing::error!("a connection handler panicked; the connection was closed");
            }
            me.open().fetch_sub(1, Ordering::Relaxed);
        })
        .detach();
    }
}

/// Sends `stream` to core `to`, which serves it. The socket travels as a file
/// descriptor; if `to` is gone or not serving, the connection is closed. Gives
/// the stream back when its descriptor cannot be duplicated (out of them).
fn hand_over(ctx: &Rc<CoreCtx>, balance: &Arc<Balance>, to: usize, stream: TcpStream) -> Result<(), TcpStream> {
    // SAFETY: the descriptor is open while `stream` lives, past this line.
    let Ok(fd) = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) }.try_clone_to_owned() else {
        return Err(stream);
    };
    // This core's handle is closed; the duplicate keeps the connection open.
    drop(stream);
    balance.open[to].fetch_add(1, Ordering::Relaxed);
    let (core, balance) = (ctx.core.clone(), balance.clone());
    glommio::spawn_local(async move {
        let served = core
            .call_on(to, move |_| {
                INTAKE.with(|intake| match intake.borrow().as_ref() {
                    Some(intake) => {
                        // SAFETY: `fd` is an open socket this closure owns; the
                        // stream takes it over.
                        intake.serve_counted(unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) });
                        true
                    }
                    None => false,
                })
            })
            .await;
        if served != Some(true) {
            balance.open[to].fetch_sub(1, Ordering::Relaxed);
        }
    })
    .detach();
    Ok(())
}

/// Accepts connections until the future is dropped; each connection runs as its
/// own task, on this core or, when `balance` is given, on a core that serves
/// fewer. `busy` counts requests being served; `stop` asks connections to close
/// after their current request.
pub async fn accept_loop(
    listener: TcpListener,
    ctx: Rc<CoreCtx>,
    fe: Rc<Frontend>,
    stop: Rc<Cell<bool>>,
    busy: Rc<Cell<usize>>,
    balance: Option<Arc<Balance>>,
) {
    let core = ctx.core.id();
    let shared = balance.is_some();
    let counts = balance.unwrap_or_else(|| Balance::new(ctx.core.cores()));
    let intake = Intake { ctx: ctx.clone(), fe, stop, busy, counts: counts.clone(), seq: Rc::new(Cell::new(0)) };
    // Registered while the loop runs: handed-over connections are served here.
    struct Registered(Arc<Balance>, usize);
    impl Drop for Registered {
        fn drop(&mut self) {
            self.0.ready[self.1].store(false, Ordering::Relaxed);
            INTAKE.with(|i| i.borrow_mut().take());
        }
    }
    let _registered = shared.then(|| {
        INTAKE.with(|i| *i.borrow_mut() = Some(intake.clone()));
        counts.ready[core].store(true, Ordering::Relaxed);
        Registered(counts.clone(), core)
    });
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // A private count (the console's) has no other core ready: it never hands over.
        match counts.lighter_than(core) {
            Some(to) => {
                if let Err(stream) = hand_over(&ctx, &counts, to, stream) {
                    intake.serve(stream);
                }
            }
            None => intake.serve(stream),
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    ctx: Rc<CoreCtx>,
    fe: Rc<Frontend>,
    id_base: u64,
    stop: Rc<Cell<bool>>,
    busy: Rc<Cell<usize>>,
) {
    // Another node speaks first with a preamble no HTTP request starts with.
    let mut first = [0u8; 1];
    let peeked = futures_lite::future::or(async { Some(stream.peek(&mut first).await) }, async {
        glommio::timer::sleep(HEAD_TIMEOUT).await;
        None
    })
    .await;
    match peeked {
        Some(Ok(1)) if first[0] == crate::cluster::wire::PREAMBLE[0] => {
            crate::cluster::serve::serve(stream, ctx).await;
            return;
        }
        Some(Ok(n)) if n > 0 => {}
        _ => return,
    }
    // Without TCP_NODELAY a small response waits ~40 ms on the client's delayed ACK.
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let peer = stream.peer_addr().ok().map(|a| a.ip());
    let mut conn = Conn::new(stream);
    let mut n = 0u64;
    loop {
        let head = futures_lite::future::or(async { Some(conn.read_head().await) }, async {
            glommio::timer::sleep(HEAD_TIMEOUT).await;
            None
        })
        .await;
        let Some(head) = head else { return };
        let mut req = match head {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e @ (Error::HeadTooLarge | Error::BadRequest(_) | Error::KeyTooLong)) => {
                let id = format!("{:016X}", id_base + n);
                let r = s3::error_response(&e, "/", &id);
                let _ = response::write(&mut conn, r, &id, false, true).await;
                return;
            }
            Err(_) => return,
        };
        req.peer = peer;
        n += 1;
        busy.set(busy.get() + 1);
        let _busy = BusyGuard(busy.clone());
        let request_id = format!("{:016X}", id_base + n);
        let head_only = req.method == "HEAD";
        let framing = match framing(&req) {
            Ok(f) => f,
            Err(e) => {
                let r = s3::error_response(&e, &req.raw_path, &request_id);
                let _ = response::write(&mut conn, r, &request_id, head_only, true).await;
                return;
            }
        };
        let expect_continue = req.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        let started = std::time::Instant::now();
        let body = HttpBody::new(&mut conn, framing, expect_continue);
        let (resp, reusable, op) = s3::serve(&ctx, &fe, &req, body, &request_id).await;
        let head_ready = started.elapsed();
        let status = resp.status;
        tracing::debug!(
            request_id,
            method = req.method,
            path = req.raw_path,
            payload = req.header("x-amz-content-sha256").unwrap_or("-"),
            status = resp.status,
            "request"
        );
        let close = !reusable || req.wants_close() || stop.get();
        let written = response::write(&mut conn, resp, &request_id, head_only, close).await;
        crate::metrics::record_request(op, status, started.elapsed(), head_ready);
        if written.is_err() || close {
            return;
        }
    }
}

/// How the request body is delimited. Anything a proxy in front could read
/// differently (two lengths, a length beside chunked, a coding after chunked,
/// signs or letters in numbers) is refused and the connection closed, so no
/// bytes can be smuggled in as a second request (RFC 9112, 6.1 and 6.3).
pub fn framing(req: &super::head::Request) -> Result<Framing, Error> {
    let all = |name: &str| -> Vec<&str> {
        req.headers.iter().filter(|(n, _)| n == name).flat_map(|(_, v)| v.split(',')).map(str::trim).collect()
    };
    let codings = all("transfer-encoding");
    let lengths = all("content-length");
    if !codings.is_empty() {
        if !lengths.is_empty() {
            return Err(Error::BadRequest("both Content-Length and Transfer-Encoding".into()));
        }
        if codings.len() != 1 || !codings[0].eq_ignore_ascii_case("chunked") {
            return Err(Error::BadRequest(format!("unsupported transfer coding {:?}", codings.join(", "))));
        }
        return Ok(Framing::Chunked);
    }
    let Some(first) = lengths.first() else { return Ok(Framing::Length(0)) };
    if lengths.iter().any(|l| l != first) {
        return Err(Error::BadRequest("conflicting Content-Length values".into()));
    }
    parse_decimal(first).map(Framing::Length).ok_or_else(|| Error::BadRequest("bad Content-Length".into()))
}

/// Digits only: Rust's integer parsing would also take a leading '+'.
pub fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Hex digits only, for chunk sizes.
pub fn parse_hex(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 15 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Decrements the busy count when a request is done, however it ends.
struct BusyGuard(Rc<Cell<usize>>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}
