//! Hashing the bodies a core receives at the same time in one pass, in lanes.
//!
//! A PUT hands each block of its body to [`begin`], goes on to code and write
//! the block, and then waits for the hash with [`Hashing::finish`]. The block
//! joins this core's list of bodies waiting to be hashed. One task per core,
//! the hasher, runs while the list has bodies: it hashes every body on the
//! list, a pass of [`PASS_BYTES`] each, as many at once as the lanes allow.
//! Between passes it steps back through the reactor, so that a body whose bytes
//! arrived meanwhile joins the next pass, and the core's other requests are
//! not held up for a whole block. The hash of a block thus runs while its
//! shards are written, and alongside the other bodies' hashes.
//!
//! A lone body waits for a partner when one may come: while another body is
//! being received on this core ([`receiving`]), the hasher leaves a single
//! body on the list until a second one joins or until its PUT has written its
//! shards and waits in `finish`, the point after which waiting would cost it
//! time, and no longer than [`PARTNER_WAIT`]. When the drives are the
//! bottleneck, blocks arrive spaced out and a body hashed at once is nearly
//! always hashed alone, at almost twice the CPU per byte of two side by side.
//! Waits that do not pay (the other bodies trickle in) stop, but for a probe
//! now and then.
//!
//! The list is per core, like everything else a core touches. A body's bytes
//! are `Bytes`, held by its entry until hashed, so a PUT that is dropped while
//! its block waits leaves nothing dangling: its entry is skipped and let go.
//! An executor that stops calls [`forget_waiting`], so that no PUT's waker
//! outlives it in the thread-local list.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Md5;
use super::lanes::{BLOCK_BYTES, MAX_LANES, compress};

/// Whole-block bytes below which a body is hashed alone at once: joining the
/// list costs a trip through the reactor (microseconds), which pays off only
/// against a pass that takes a good fraction of a millisecond.
const SHARED_MIN_BYTES: usize = 64 * 1024;

/// Bytes of each body hashed per pass before the core polls its I/O again.
/// Alone, a pass takes about half a millisecond; the trip through the reactor
/// between passes is lost in that, and no other request on the core waits for
/// more than about that long. Measured with two 64 MiB PUTs per core, the
/// share of bytes hashed side by side: 64 KiB passes 92-95%, 256 KiB 80-90%
/// at the same CPU per GiB, and whole 1 MiB blocks none at all: the two PUTs
/// fell into step, each body's block arriving while the other's was hashed.
const PASS_BYTES: usize = 256 * 1024;

/// The longest a lone block waits for another body's block to share its pass
/// while its PUT is still writing the shards: a bound for a PUT whose writes
/// hang, since waits end sooner when the PUT comes to wait for the hash. With
/// two 64 MiB PUTs per core on this VM's drive-bound disk, the share of bytes
/// hashed side by side was 37% hashing at once, 98-99% waiting with no limit,
/// and with the tally of [`PARTNER_ODDS_MAX`] 65-67% at a 2 ms limit (waits
/// cut short fell out of step and did not pay) and 93-96% at this one, at
/// the CPU per GiB of no limit.
const PARTNER_WAIT: Duration = Duration::from_millis(50);

/// How far the hasher's tally of lone blocks that found a partner by waiting
/// (one up) or whose PUT came to wait for them first (one down: the wait cost
/// it time) may go either way. A wait that ran out while the PUT was still
/// writing cost nothing and does not count. At zero or below, lone blocks are
/// hashed at once, but for one in [`PARTNER_PROBE_EVERY`], which still waits
/// to see whether partners came back: one fast PUT beside bodies that trickle
/// in then loses almost nothing to waits that cannot pay.
const PARTNER_ODDS_MAX: i32 = 4;
const PARTNER_PROBE_EVERY: u32 = 8;

/// How long the hasher sleeps between passes: any positive time sends it
/// through the reactor, which is the point; the reactor finds it already due
/// when it polls.
const BETWEEN_PASSES: Duration = Duration::from_micros(1);

/// One body's whole blocks waiting to be hashed.
struct Waiting {
    state: Cell<[u32; 4]>,
    data: Bytes,
    hashed_bytes: Cell<usize>,
    /// The PUT waiting in `finish`, woken when the last byte is hashed.
    waker: Cell<Option<Waker>>,
    /// When it joined the list: it waits for a partner no longer than
    /// [`PARTNER_WAIT`] from then.
    listed_at: Instant,
    /// Whether the hasher leaves it waiting for a partner, once decided.
    wait: Cell<Wait>,
}

/// The hasher's decision for a lone block.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Undecided,
    /// Waits for a partner: its first pass tells whether that paid.
    ForPartner,
    /// Goes alone at once.
    No,
}

impl Waiting {
    fn remaining(&self) -> usize {
        self.data.len() - self.hashed_bytes.get()
    }
}

thread_local! {
    /// This core's bodies waiting to be hashed, in the order they came.
    static WAITING: RefCell<Vec<Rc<Waiting>>> = const { RefCell::new(Vec::new()) };
    /// Whether this core's hasher task is running.
    static HASHER_RUNNING: Cell<bool> = const { Cell::new(false) };
    /// The hasher, while it waits for a partner for a lone body.
    static HASHER_WAKER: Cell<Option<Waker>> = const { Cell::new(None) };
    /// Bodies being received on this core: [`Receiving`] guards alive.
    static RECEIVING: Cell<usize> = const { Cell::new(0) };
    /// The tally of lone blocks' waits that paid ([`PARTNER_ODDS_MAX`]), and
    /// the lone blocks hashed at once since the last probe.
    static PARTNER_ODDS: Cell<i32> = const { Cell::new(PARTNER_ODDS_MAX) };
    static SINCE_PROBE: Cell<u32> = const { Cell::new(0) };
    /// [`PARTNER_WAIT`], which tests set longer so that a starved test thread
    /// does not outwait it.
    static PARTNER_WAIT_LIMIT: Cell<Duration> = const { Cell::new(PARTNER_WAIT) };
    /// Body bytes this thread hashed through `begin`, and of those, the bytes
    /// hashed in passes shared by more than one body.
    static HASHED_BYTES: Cell<u64> = const { Cell::new(0) };
    static SHARED_BYTES: Cell<u64> = const { Cell::new(0) };
}

/// Body bytes this thread has hashed through [`begin`], and of those, the
/// bytes hashed side by side with another body: for the metrics, and for
/// tests to see that lanes were used.
pub fn hashed_bytes() -> (u64, u64) {
    (HASHED_BYTES.with(Cell::get), SHARED_BYTES.with(Cell::get))
}

/// A block of a body on its way through the hasher; [`Hashing::finish`] gives
/// back the digest with the block in it.
pub struct Hashing {
    md5: Md5,
    /// The body's whole blocks, on the list; `None` when hashed at once.
    mine: Option<Rc<Waiting>>,
    /// Bytes after the whole blocks, kept for the next block.
    tail: Bytes,
}

/// A body being received on this core, from its first block to its last: its
/// blocks may be a partner for another body's. Dropping it says the body is
/// done (or abandoned).
pub struct Receiving(());

/// Says that a body is being received on this core, until the guard drops.
/// Bodies hashed without one are hashed at once, as are the blocks of a body
/// that is the only one being received.
pub fn receiving() -> Receiving {
    RECEIVING.with(|r| r.set(r.get() + 1));
    Receiving(())
}

impl Drop for Receiving {
    fn drop(&mut self) {
        RECEIVING.with(|r| r.set(r.get().saturating_sub(1)));
        // One body fewer may come: a lone body may not wait any longer.
        nudge_hasher();
    }
}

/// Starts hashing `data` into `md5`, in lanes with the other bodies this core
/// is hashing meanwhile. Must run on a glommio executor.
pub fn begin(mut md5: Md5, data: Bytes) -> Hashing {
    HASHED_BYTES.with(|h| h.set(h.get() + data.len() as u64));
    let start = data.len() - md5.complete_partial(&data).len();
    let whole = (data.len() - start) / BLOCK_BYTES * BLOCK_BYTES;
    if whole < SHARED_MIN_BYTES {
        md5.update(&data[start..]);
        return Hashing { md5, mine: None, tail: Bytes::new() };
    }
    let mine = Rc::new(Waiting {
        state: Cell::new(md5.state),
        data: data.slice(start..start + whole),
        hashed_bytes: Cell::new(0),
        waker: Cell::new(None),
        listed_at: Instant::now(),
        wait: Cell::new(Wait::Undecided),
    });
    WAITING.with(|w| w.borrow_mut().push(Rc::clone(&mine)));
    wake_hasher();
    Hashing { md5, mine: Some(mine), tail: data.slice(start + whole..) }
}

impl Hashing {
    /// Waits until the block is hashed; the digest so far.
    pub async fn finish(self) -> Md5 {
        let Hashing { mut md5, mine, tail } = self;
        if let Some(mine) = mine {
            Hashed(&mine).await;
            md5.state = mine.state.get();
            md5.total_bytes += mine.data.len() as u64;
            md5.keep_partial(&tail);
        }
        md5
    }
}

/// Ready once every byte of the body is hashed.
struct Hashed<'a>(&'a Waiting);

impl Future for Hashed<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.remaining() == 0 {
            return Poll::Ready(());
        }
        let first = self.0.waker.replace(Some(cx.waker().clone())).is_none();
        if first {
            // Its shards are written: its hash may not wait for a partner.
            nudge_hasher();
        }
        Poll::Pending
    }
}

/// Starts the hasher on this core unless it runs; wakes it if it waits.
fn wake_hasher() {
    if !HASHER_RUNNING.with(|r| r.replace(true)) {
        glommio::spawn_local(hasher()).detach();
    } else {
        nudge_hasher();
    }
}

/// Wakes the hasher if it waits for a partner: something it waits on changed.
fn nudge_hasher() {
    if let Some(waker) = HASHER_WAKER.with(Cell::take) {
        waker.wake();
    }
}

/// The hasher: passes until the list is empty, then it ends; the next body
/// starts another (a spawn per busy spell is cheap next to a pass, and no
/// waker of it outlives the executor in a thread-local). A lone body that may
/// get a partner waits for one (see the module's doc).
async fn hasher() {
    loop {
        let bodies = WAITING.with(|w| {
            let mut w = w.borrow_mut();
            // Only the list holds an abandoned body: its PUT was dropped.
            w.retain(|b| Rc::strong_count(b) > 1 && b.remaining() > 0);
            w.len()
        });
        if bodies == 0 {
            break;
        }
        match partner_wait(bodies) {
            None => {
                pass();
                glommio::timer::sleep(BETWEEN_PASSES).await;
            }
            Some(left) => {
                futures_lite::future::or(Nudged(false), glommio::timer::sleep(left)).await;
            }
        }
    }
    HASHER_RUNNING.with(|r| r.set(false));
}

/// How much longer the lone body waiting may wait for a partner, or `None`
/// to hash the `bodies` waiting now: two or more share a pass; a lone body
/// goes alone when no other body is being received on this core, when its PUT
/// waits for it, once it has waited [`PARTNER_WAIT`], or at once while waits
/// have not been paying ([`PARTNER_ODDS_MAX`]).
fn partner_wait(bodies: usize) -> Option<Duration> {
    if bodies >= 2 || RECEIVING.with(Cell::get) <= bodies {
        return None;
    }
    WAITING.with(|w| {
        let w = w.borrow();
        let lone = w.first()?;
        if lone.wait.get() == Wait::Undecided {
            let mut wait = Wait::ForPartner;
            if PARTNER_ODDS.with(Cell::get) <= 0 {
                let since = SINCE_PROBE.with(|p| p.get()) + 1;
                SINCE_PROBE.with(|p| p.set(if since < PARTNER_PROBE_EVERY { since } else { 0 }));
                if since < PARTNER_PROBE_EVERY {
                    wait = Wait::No;
                }
            }
            lone.wait.set(wait);
        }
        let waker = lone.waker.take();
        let put_waits = waker.is_some();
        lone.waker.set(waker);
        if put_waits || lone.wait.get() == Wait::No {
            return None;
        }
        let left = PARTNER_WAIT_LIMIT.with(Cell::get).checked_sub(lone.listed_at.elapsed()).filter(|l| !l.is_zero());
        if left.is_none() {
            // Out of time while its shards were still being written: the
            // wait cost its PUT nothing, so it does not count against waiting.
            lone.wait.set(Wait::No);
        }
        left
    })
}

/// Counts a lone block's wait as paid (it shares its first pass) or not.
fn tally_wait(body: &Waiting, shared: bool) {
    if body.wait.replace(Wait::No) == Wait::ForPartner {
        let step = if shared { 1 } else { -1 };
        PARTNER_ODDS.with(|o| o.set((o.get() + step).clamp(-PARTNER_ODDS_MAX, PARTNER_ODDS_MAX)));
    }
}

/// Ready after [`nudge_hasher`] was called while the hasher waited.
struct Nudged(bool);

impl Future for Nudged {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        HASHER_WAKER.with(|w| w.set(Some(cx.waker().clone())));
        Poll::Pending
    }
}

/// Lets go of every body still waiting, and the wakers of their PUTs and of
/// the hasher; for an executor to call as it stops, while those wakers' tasks
/// still exist.
pub fn forget_waiting() {
    let bodies = WAITING.with(|w| std::mem::take(&mut *w.borrow_mut()));
    for body in &bodies {
        drop(body.waker.take());
    }
    drop(HASHER_WAKER.with(Cell::take));
}

/// Hashes up to [`PASS_BYTES`] of every waiting body, the bodies side by side
/// in lanes, wakes the PUTs whose bodies are done, and drops from the list
/// those finished (the hasher drops abandoned ones before each pass).
fn pass() {
    // The hasher has just let go of finished and abandoned bodies.
    let bodies: Vec<Rc<Waiting>> = WAITING.with(|w| w.borrow().clone());
    for body in &bodies {
        tally_wait(body, bodies.len() > 1);
    }
    let mut budget: Vec<usize> = bodies.iter().map(|b| b.remaining().min(PASS_BYTES)).collect();
    loop {
        let mut batch = [0usize; MAX_LANES];
        let mut n = 0;
        for (i, left) in budget.iter().enumerate() {
            if *left > 0 && n < MAX_LANES {
                batch[n] = i;
                n += 1;
            }
        }
        if n == 0 {
            break;
        }
        let batch = &batch[..n];
        let step = batch.iter().map(|&i| budget[i]).min().unwrap_or(0);
        let mut states = [[0u32; 4]; MAX_LANES];
        let mut slices: [&[u8]; MAX_LANES] = [&[]; MAX_LANES];
        for (lane, &i) in batch.iter().enumerate() {
            let body = &bodies[i];
            let at = body.hashed_bytes.get();
            states[lane] = body.state.get();
            slices[lane] = &body.data[at..at + step];
        }
        compress(&mut states[..n], &slices[..n]);
        for (lane, &i) in batch.iter().enumerate() {
            let body = &bodies[i];
            body.state.set(states[lane]);
            body.hashed_bytes.set(body.hashed_bytes.get() + step);
            budget[i] -= step;
        }
        if n > 1 {
            SHARED_BYTES.with(|s| s.set(s.get() + (n * step) as u64));
        }
    }
    for body in &bodies {
        if body.remaining() == 0
            && let Some(waker) = body.waker.take()
        {
            waker.wake();
        }
    }
    WAITING.with(|w| w.borrow_mut().retain(|b| b.remaining() > 0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::future::join_all;
    use glommio::LocalExecutorBuilder;
    use md5::Digest;

    fn body(seed: u8, len: usize) -> Bytes {
        (0..len).map(|i| (i as u8).wrapping_mul(seed) ^ (i >> 10) as u8).collect::<Vec<u8>>().into()
    }

    /// Runs `test` on an executor of its own (a thread with fresh
    /// thread-locals), where a lone block waits at most `limit` for a partner.
    fn on_core<F: Future<Output = ()> + 'static>(limit: Duration, test: impl FnOnce() -> F + Send + 'static) {
        LocalExecutorBuilder::default()
            .spawn(move || async move {
                PARTNER_WAIT_LIMIT.with(|l| l.set(limit));
                test().await
            })
            .expect("executor")
            .join()
            .expect("join");
    }

    /// Several PUTs on one core, their bodies of different lengths arriving in
    /// pieces of different sizes (some not whole blocks), each piece after a
    /// wait as if from the socket: every digest must be the reference's, and
    /// some bytes must have been hashed in shared passes: the first pieces at
    /// least, since the first waits for a partner while the others are being
    /// received. (Without that wait the hasher, which glommio runs at once
    /// when spawned, could hash the first body before the second PUT starts.)
    #[test]
    fn bodies_hashed_together_give_each_its_own_digest() {
        on_core(PARTNER_WAIT, || async {
            let cases: Vec<(Bytes, usize)> = vec![
                (body(3, (3 << 20) + 17), 1 << 20),
                (body(5, 2 << 20), (1 << 20) - 5),
                (body(7, 1500 * 1024), 300 * 1024 + 1),
                (body(11, 100), 64),
                (body(13, 5 << 20), 700 * 1024),
                (body(17, 640 * 1024), 64 * 1024 + 63),
            ];
            // Every body is being received from the start, as a PUT says
            // from its first block; its guard drops when its last piece is in.
            let puts = cases.iter().enumerate().map(|(n, (data, piece))| {
                let (data, piece, receiving) = (data.clone(), *piece, receiving());
                async move {
                    let mut md5 = Md5::new();
                    let mut at = 0;
                    while at < data.len() {
                        let end = (at + piece).min(data.len());
                        md5 = begin(md5, data.slice(at..end)).finish().await;
                        glommio::timer::sleep(Duration::from_micros(50 * (n as u64 + 1))).await;
                        at = end;
                    }
                    drop(receiving);
                    md5.finalize()
                }
            });
            let got = join_all(puts).await;
            for ((data, _), got) in cases.iter().zip(got) {
                let want: [u8; 16] = md5::Md5::digest(data).into();
                assert_eq!(got, want, "body of {} bytes", data.len());
            }
            assert!(hashed_bytes().1 > 0, "no pass hashed two bodies together");
            assert!(WAITING.with(|w| w.borrow().is_empty()), "finished bodies left on the list");
        });
    }

    /// Bytes of the one listed body hashed so far.
    fn listed_hashed() -> Vec<usize> {
        WAITING.with(|w| w.borrow().iter().map(|b| b.hashed_bytes.get()).collect())
    }

    /// Waits at most `limit` for `f`, so that a hang fails the test.
    async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
        futures_lite::future::or(async { Some(f.await) }, async {
            glommio::timer::sleep(limit).await;
            None
        })
        .await
    }

    /// While another body is being received on the core, a lone block waits
    /// for it: the partner's block, arriving later, is hashed side by side
    /// with it, every byte of both in shared passes.
    #[test]
    fn a_lone_block_waits_for_a_body_being_received() {
        on_core(Duration::from_secs(60), || async {
            let (_a, _b) = (receiving(), receiving());
            let (first, second) = (body(29, 1 << 20), body(31, 1 << 20));
            let alone = begin(Md5::new(), first.clone());
            glommio::timer::sleep(Duration::from_millis(5)).await;
            assert_eq!(listed_hashed(), vec![0], "the lone block was hashed without waiting");
            let partner = begin(Md5::new(), second.clone());
            let (a, b) = within(Duration::from_secs(10), futures_util::future::join(alone.finish(), partner.finish()))
                .await
                .expect("hang");
            for (got, data) in [(a, first), (b, second)] {
                let want: [u8; 16] = md5::Md5::digest(&data).into();
                assert_eq!(got.finalize(), want);
            }
            assert_eq!(hashed_bytes(), (2 << 20, 2 << 20), "(hashed, of those side by side)");
        });
    }

    /// A lone block waits no longer than it costs nothing: once its PUT waits
    /// for the hash, or once no other body is being received, it is hashed
    /// alone.
    #[test]
    fn a_lone_block_goes_alone_when_its_put_waits_or_the_other_body_ends() {
        on_core(Duration::from_secs(60), || async {
            let (_mine, other) = (receiving(), receiving());
            let data = body(37, 1 << 20);
            let want: [u8; 16] = md5::Md5::digest(&data).into();
            // Its PUT waits: hashed although the other body never sends.
            let md5 = within(Duration::from_secs(10), begin(Md5::new(), data.clone()).finish())
                .await
                .expect("the waiting PUT hung");
            assert_eq!(md5.finalize(), want);
            // The other body ends: the lone block goes before its PUT asks.
            let hashing = begin(Md5::new(), data.clone());
            glommio::timer::sleep(Duration::from_millis(5)).await;
            assert_eq!(listed_hashed(), vec![0], "the lone block was hashed without waiting");
            drop(other);
            let hashed = until_hashed(Duration::from_secs(10)).await;
            assert!(hashed.is_some(), "still waiting after the other body ended");
            assert_eq!(hashing.finish().await.finalize(), want);
            assert_eq!(hashed_bytes().1, 0, "nothing was there to share a pass with");
        });
    }

    /// Waits at most `limit` until the list is empty (every block hashed);
    /// how long it took.
    async fn until_hashed(limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        within(limit, async {
            while !listed_hashed().is_empty() {
                glommio::timer::sleep(Duration::from_micros(200)).await;
            }
            started.elapsed()
        })
        .await
    }

    /// A lone block whose partner never comes, and whose PUT does not wait
    /// for it yet, is hashed once it has waited the limit, not before.
    #[test]
    fn a_lone_block_waits_no_longer_than_the_limit() {
        on_core(Duration::from_millis(100), || async {
            let limit = PARTNER_WAIT_LIMIT.with(Cell::get);
            let (_mine, _other) = (receiving(), receiving());
            let data = body(41, 1 << 20);
            let hashing = begin(Md5::new(), data.clone());
            let took = until_hashed(Duration::from_secs(10)).await.expect("never hashed without its PUT waiting");
            assert!(took >= limit - Duration::from_millis(1), "hashed after {took:?}, before the limit");
            let want: [u8; 16] = md5::Md5::digest(&data).into();
            assert_eq!(hashing.finish().await.finalize(), want);
        });
    }

    /// Waits that do not pay (the partner never sends, so each lone block
    /// goes alone when its PUT waits) stop: after four, the next lone block
    /// is hashed at once, and one in eight still waits, to probe.
    #[test]
    fn waits_that_do_not_pay_stop_but_for_probes() {
        on_core(Duration::from_secs(60), || async {
            let (_mine, _other) = (receiving(), receiving());
            let data = body(43, 1 << 20);
            let mut waited = Vec::new();
            for _ in 0..PARTNER_ODDS_MAX as usize + PARTNER_PROBE_EVERY as usize {
                let hashing = begin(Md5::new(), data.clone());
                // Hashed within a second, before its PUT asks, with a
                // 60 s limit: it did not wait.
                waited.push(until_hashed(Duration::from_secs(1)).await.is_none());
                hashing.finish().await;
            }
            let mut want = vec![true; PARTNER_ODDS_MAX as usize];
            want.extend(vec![false; PARTNER_PROBE_EVERY as usize - 1]);
            want.push(true);
            assert_eq!(waited, want, "which lone blocks waited for a partner");
        });
    }

    /// A PUT dropped while its body waits: its body leaves the list at the
    /// next pass instead of being hashed to its end (256 more passes), and the
    /// others still finish.
    #[test]
    fn a_dropped_put_leaves_the_others_to_finish() {
        on_core(PARTNER_WAIT, || async {
            // Large enough that it is rarely hashed to its end before this
            // task runs again; when a loaded machine starves this task that
            // long, the PUT finished and proves nothing: try again.
            let mut attempts = 0;
            let abandoned = loop {
                attempts += 1;
                let abandoned =
                    glommio::spawn_local(async { begin(Md5::new(), body(19, 64 << 20)).finish().await.finalize() });
                let listed = std::time::Instant::now() + Duration::from_secs(5);
                while WAITING.with(|w| w.borrow().is_empty()) && std::time::Instant::now() < listed {
                    glommio::timer::sleep(Duration::from_micros(100)).await;
                }
                if WAITING.with(|w| w.borrow().len()) == 1 {
                    break abandoned;
                }
                let finished = abandoned.cancel().await.is_some();
                assert!(finished && attempts < 5, "the body never waited (attempt {attempts}, finished: {finished})");
            };
            // Dropped: its future (and its hold on the body) is gone.
            assert!(abandoned.cancel().await.is_none(), "the abandoned PUT finished");
            // The hasher's next pass (its 1 µs sleep ends first) lets it go.
            glommio::timer::sleep(Duration::from_millis(5)).await;
            assert!(WAITING.with(|w| w.borrow().is_empty()), "the dropped body is still listed");
            let data = body(23, 3 << 20);
            let md5 = begin(Md5::new(), data.clone()).finish().await;
            let want: [u8; 16] = md5::Md5::digest(&data).into();
            assert_eq!(md5.finalize(), want);
            assert!(WAITING.with(|w| w.borrow().is_empty()), "the dropped body is still listed");
        });
    }
}
