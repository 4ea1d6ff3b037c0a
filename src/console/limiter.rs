//! Login throttling: failed console logins counted per client address, with a
//! growing wait before that address may try again. While an address must wait,
//! its attempts are refused without checking the keys, so opening many
//! connections does not buy more guesses.
//!
//! One table per node (shared by its cores: an attacker's connections land on
//! every core), bounded in size; it is touched only by login attempts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked at once. A full table first forgets stale entries, then the
/// address whose last failure is oldest: memory stays bounded whatever arrives.
pub const MAX_TRACKED_ADDRESSES: usize = 4096;
/// Failures allowed before any wait: typos happen.
pub const FREE_FAILURES: u32 = 3;
/// The first wait after the free failures; it doubles with each further failure.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest wait: long enough to make guessing hopeless (at most 60 guesses
/// an hour per address), short enough that a locked-out person gets back in.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// An address with no failure for this long starts afresh.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Instant,
}

#[derive(Default)]
pub struct Limiter {
    table: Mutex<HashMap<IpAddr, Failures>>,
}

/// The address failures are counted against: an IPv6 client is its /64, since
/// one host is typically given a whole /64 and could otherwise rotate addresses.
fn client(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

impl Limiter {
    /// How long `addr` must still wait before its next attempt, if at all.
    pub fn wait(&self, addr: IpAddr, now: Instant) -> Option<Duration> {
        let addr = client(addr);
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let f = table.get(&addr)?;
        (f.blocked_until > now).then(|| f.blocked_until - now)
    }

    /// Records a failed attempt; returns the wait it imposes (zero for the free ones).
    pub fn failed(&self, addr: IpAddr, now: Instant) -> Duration {
        let addr = client(addr);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if !table.contains_key(&addr) && table.len() >= MAX_TRACKED_ADDRESSES {
            table.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if table.len() >= MAX_TRACKED_ADDRESSES
                && let Some(oldest) = table.iter().min_by_key(|(_, f)| f.last).map(|(a, _)| *a)
            {
                table.remove(&oldest);
            }
        }
        let f = table.entry(addr).or_insert(Failures { count: 0, last: now, blocked_until: now });
        if now.duration_since(f.last) >= FORGET_AFTER {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        let delay = delay_after(f.count);
        f.blocked_until = now + delay;
        delay
    }

    /// A successful login clears the address's record.
    pub fn succeeded(&self, addr: IpAddr) {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).remove(&client(addr));
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.table.lock().unwrap().len()
    }
}

/// The wait after `failures` consecutive failures.
pub fn delay_after(failures: u32) -> Duration {
    if failures <= FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES - 1).min(16);
    (FIRST_DELAY * (1u32 << doublings)).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_cap() {
        assert_eq!(delay_after(1), Duration::ZERO);
        assert_eq!(delay_after(FREE_FAILURES), Duration::ZERO);
        assert_eq!(delay_after(FREE_FAILURES + 1), FIRST_DELAY);
        assert_eq!(delay_after(FREE_FAILURES + 2), FIRST_DELAY * 2);
        assert_eq!(delay_after(FREE_FAILURES + 3), FIRST_DELAY * 4);
        assert_eq!(delay_after(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn per_address_and_bounded() {
        let l = Limiter::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(l.failed(a, t0), Duration::ZERO);
        }
        assert_eq!(l.wait(a, t0), None);
        assert_eq!(l.failed(a, t0), FIRST_DELAY);
        assert_eq!(l.wait(a, t0), Some(FIRST_DELAY));
        assert_eq!(l.wait(a, t0 + FIRST_DELAY), None);
        assert_eq!(l.wait(b, t0), None);
        // One IPv6 /64 is one client; an IPv4-mapped address is the IPv4 one.
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        for _ in 0..=FREE_FAILURES {
            l.failed(v6a, t0);
        }
        assert_eq!(l.wait(v6b, t0), Some(FIRST_DELAY));
        assert_eq!(l.wait("2001:db8:1:3::1".parse().unwrap(), t0), None);
        assert_eq!(l.wait("::ffff:10.0.0.1".parse().unwrap(), t0), Some(FIRST_DELAY));
        // Success forgets; so does a long quiet spell.
        l.succeeded(a);
        assert_eq!(l.failed(a, t0), Duration::ZERO);
        for _ in 0..10 {
            l.failed(b, t0);
        }
        assert_eq!(l.failed(b, t0 + FORGET_AFTER * 2), Duration::ZERO);
        // The table never grows past its bound.
        for i in 0..(MAX_TRACKED_ADDRESSES as u32 + 100) {
            l.failed(IpAddr::from(i.to_be_bytes()), t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(l.tracked(), MAX_TRACKED_ADDRESSES);
    }
}
