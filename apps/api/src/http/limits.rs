//! Request limits, as Codat has them: a number of requests per API key per minute, and a number of
//! failed authentications per client address per minute (a key cannot be guessed at speed). Both
//! answer 429 in Codat's envelope with `Retry-After`; every authenticated response carries
//! `X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining` and `X-Rate-Limit-Reset` (docs/api.md).
//!
//! The counts are kept per process: with several instances behind a balancer, a client's limit is
//! the setting times the instances it reaches.

use axum::http::{HeaderMap, HeaderValue};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The length of a limit's window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Windows kept before the expired ones are dropped (at most once a second).
const PRUNE_ABOVE: usize = 4096;
/// Windows kept at most: beyond, new addresses are not counted until old windows expire (a flood
/// from many addresses cannot grow the map, nor make each request scan it).
const MAX_WINDOWS: usize = 100_000;

/// What is allowed, per minute; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Requests per API key per minute.
    pub per_key_per_minute: u32,
    /// Failed authentications (API requests and console sign-ins) per client address per minute.
    pub failed_auth_per_minute: u32,
    /// Take the client's address from the last `X-Forwarded-For` entry (the one a reverse proxy
    /// in front appended) instead of the connection's peer. Only behind such a proxy: otherwise a
    /// client could name any address.
    pub trust_forwarded_for: bool,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self { per_key_per_minute: 6000, failed_auth_per_minute: 30, trust_forwarded_for: false }
    }
}

/// Fixed one-minute windows of counts, per key.
#[derive(Debug)]
struct Windows<K> {
    limit: u32,
    counts: Mutex<Counts<K>>,
}

#[derive(Debug)]
struct Counts<K> {
    windows: HashMap<K, (Instant, u32)>,
    pruned: Option<Instant>,
}

/// A count taken: what is left of the window, and when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// The limit.
    pub limit: u32,
    /// Requests left in the window.
    pub remaining: u32,
    /// Time until the window ends.
    pub resets_in: Duration,
}

impl<K: Hash + Eq + Clone> Windows<K> {
    fn new(limit: u32) -> Option<Self> {
        (limit > 0).then(|| Self { limit, counts: Mutex::new(Counts { windows: HashMap::new(), pruned: None }) })
    }

    /// Counts one request: `Ok` with what is left, or `Err` (nothing left, and when the window
    /// ends) when the window is full (the refused request is not counted). Not counted at all (as
    /// if allowed) when the map is full of live windows.
    fn take(&self, key: &K, now: Instant) -> Result<Taken, Taken> {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = Taken { limit: self.limit, remaining: self.limit.saturating_sub(1), resets_in: WINDOW };
        if !counts.windows.contains_key(key) && counts.windows.len() >= PRUNE_ABOVE {
            if counts.pruned.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1)) {
                counts.windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
                counts.pruned = Some(now);
            }
            if counts.windows.len() >= MAX_WINDOWS {
                return Ok(fresh);
            }
        }
        let slot = counts.windows.entry(key.clone()).or_insert((now, 0));
        if now.duration_since(slot.0) >= WINDOW {
            *slot = (now, 0);
        }
        let resets_in = WINDOW.saturating_sub(now.duration_since(slot.0));
        if slot.1 >= self.limit {
            return Err(Taken { limit: self.limit, remaining: 0, resets_in });
        }
        slot.1 += 1;
        Ok(Taken { limit: self.limit, remaining: self.limit - slot.1, resets_in })
    }

    /// `Some(retry after)` while the window is full, without counting (nor storing anything).
    fn full(&self, key: &K, now: Instant) -> Option<Duration> {
        let counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (start, n) = counts.windows.get(key)?;
        let elapsed = now.duration_since(*start);
        (*n >= self.limit && elapsed < WINDOW).then(|| WINDOW - elapsed)
    }
}

/// The process's limits.
#[derive(Debug)]
pub struct Limits {
    per_key: Option<Windows<String>>,
    failed_auth: Option<Windows<IpAddr>>,
    trust_forwarded_for: bool,
}

impl Limits {
    /// Limits with these settings.
    pub fn new(settings: LimitSettings) -> Self {
        Self {
            per_key: Windows::new(settings.per_key_per_minute),
            failed_auth: Windows::new(settings.failed_auth_per_minute),
            trust_forwarded_for: settings.trust_forwarded_for,
        }
    }

    /// Counts a request of the API key `key_id`: `Ok(None)` when keys are not limited.
    ///
    /// # Errors
    /// Over the limit: nothing left, and the time until the key may make requests again.
    pub fn take_key(&self, key_id: &str, now: Instant) -> Result<Option<Taken>, Taken> {
        self.per_key.as_ref().map(|w| w.take(&key_id.to_owned(), now)).transpose()
    }

    /// `Some(retry after)` while `addr` has failed to authenticate too often (its attempts are
    /// then refused before any key is checked).
    pub fn auth_blocked(&self, addr: Option<IpAddr>, now: Instant) -> Option<Duration> {
        self.failed_auth.as_ref().zip(addr).and_then(|(w, a)| w.full(&counted(a), now))
    }

    /// Counts a failed authentication from `addr`.
    pub fn auth_failed(&self, addr: Option<IpAddr>, now: Instant) {
        if let (Some(w), Some(a)) = (&self.failed_auth, addr) {
            let _ = w.take(&counted(a), now);
        }
    }

    /// The client's address: the connection's peer, or behind a trusted proxy the last
    /// `X-Forwarded-For` entry.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        if !self.trust_forwarded_for {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            // Only the entry the proxy appended: the ones before it are the client's to write.
            .and_then(|a| a.trim().parse::<IpAddr>().ok());
        forwarded.or(peer)
    }
}

/// What an address is counted by: itself, or for IPv6 its /64 (what one host or site is given).
fn counted(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// Whole seconds to wait, at least one (for `Retry-After`).
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// `Retry-After` for a refused request.
pub fn retry_after(headers: &mut HeaderMap, wait: Duration) {
    headers.insert(axum::http::header::RETRY_AFTER, HeaderValue::from(retry_after_secs(wait)));
}

/// Codat's `X-Rate-Limit-*` headers for a counted request: the limit, what is left, and when the
/// window resets (UTC, RFC 3339).
pub fn rate_headers(headers: &mut HeaderMap, t: Taken) {
    headers.insert("x-rate-limit-limit", HeaderValue::from(t.limit));
    headers.insert("x-rate-limit-remaining", HeaderValue::from(t.remaining));
    let reset = chrono::Utc::now() + chrono::Duration::from_std(t.resets_in).unwrap_or_default();
    if let Ok(v) = HeaderValue::from_str(&reset.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
        headers.insert("x-rate-limit-reset", v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_limit_per_window_then_waits_for_the_next() {
        let limits = Limits::new(LimitSettings { per_key_per_minute: 3, failed_auth_per_minute: 0, trust_forwarded_for: false });
        let t0 = Instant::now();
        for left in [2, 1, 0] {
            assert_eq!(limits.take_key("k", t0).unwrap().unwrap().remaining, left);
        }
        let over = limits.take_key("k", t0 + Duration::from_secs(20)).unwrap_err();
        assert_eq!((over.remaining, over.resets_in), (0, Duration::from_secs(40)));
        assert_eq!(limits.take_key("other", t0).unwrap().unwrap().remaining, 2, "keys are counted apart");
        assert_eq!(limits.take_key("k", t0 + WINDOW).unwrap().unwrap().remaining, 2, "a new window");
    }

    #[test]
    fn failed_authentications_block_an_address_until_its_window_ends_and_zero_turns_limits_off() {
        let limits = Limits::new(LimitSettings { per_key_per_minute: 0, failed_auth_per_minute: 2, trust_forwarded_for: false });
        let (a, b, t0) = (Some(IpAddr::from([10, 0, 0, 1])), Some(IpAddr::from([10, 0, 0, 2])), Instant::now());
        assert_eq!(limits.take_key("k", t0), Ok(None));
        limits.auth_failed(a, t0);
        assert_eq!(limits.auth_blocked(a, t0), None);
        limits.auth_failed(a, t0);
        assert_eq!(limits.auth_blocked(a, t0 + Duration::from_secs(1)), Some(Duration::from_secs(59)));
        assert_eq!(limits.auth_blocked(b, t0), None, "per address");
        assert_eq!(limits.auth_blocked(a, t0 + WINDOW), None);
        assert_eq!(limits.auth_blocked(None, t0), None, "no address known: nothing to count by");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_peeking_stores_nothing() {
        let limits = Limits::new(LimitSettings { per_key_per_minute: 0, failed_auth_per_minute: 1, trust_forwarded_for: false });
        let t0 = Instant::now();
        let (a, b): (IpAddr, IpAddr) = ("2001:db8:1:2::1".parse().unwrap(), "2001:db8:1:2:ffff::9".parse().unwrap());
        for i in 0..10_000u32 {
            assert_eq!(limits.auth_blocked(Some(IpAddr::from(i.to_be_bytes())), t0), None);
        }
        limits.auth_failed(Some(a), t0);
        assert!(limits.auth_blocked(Some(b), t0).is_some(), "the same /64");
        let windows = limits.failed_auth.as_ref().unwrap().counts.lock().unwrap().windows.len();
        assert_eq!(windows, 1, "only failures are stored");
    }

    #[test]
    fn the_forwarded_address_is_used_only_when_trusted() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_static("203.0.113.9, 198.51.100.7"));
        let peer = Some(IpAddr::from([10, 0, 0, 1]));
        let off = Limits::new(LimitSettings::default());
        assert_eq!(off.client(peer, &headers), peer, "a client cannot name its address");
        let on = Limits::new(LimitSettings { trust_forwarded_for: true, ..LimitSettings::default() });
        assert_eq!(on.client(peer, &headers), Some(IpAddr::from([198, 51, 100, 7])), "the entry the proxy appended");
        assert_eq!(on.client(peer, &HeaderMap::new()), peer);
    }
}
