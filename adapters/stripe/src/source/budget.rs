//! One rate budget per Stripe account in the process: every request for an account, whatever
//! pull or partition it serves, first takes one of the account's in-flight slots, then a token of
//! its bucket. Both adapt to Stripe's answers: a `429` lowers the rate (or, for
//! `Stripe-Rate-Limited-Reason: …-concurrency`, the number of requests in flight; for
//! `endpoint-rate`, the rate of that endpoint alone) at once, and it recovers slowly, a little
//! every second without one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tributary_domain::model::integration::Mode;

/// Stripe's documented rate limit for test mode, requests per second per account.
pub const TEST_MODE_RATE: u32 = 25;
/// Stripe's documented rate limit for live mode, requests per second per account.
pub const LIVE_MODE_RATE: u32 = 100;
/// Requests in flight per account in test mode, by default: enough to reach the rate at 1 s
/// per request.
pub const TEST_MODE_IN_FLIGHT: u32 = 32;
/// Requests in flight per account in live mode, by default (the rate at about 1 s per request).
pub const LIVE_MODE_IN_FLIGHT: u32 = 100;

/// A cut takes the rate (or the slots) to this share of what it was.
const CUT: f64 = 0.7;
/// Cuts closer together than this count as one (a burst of 429s answers one moment's excess).
const CUT_EVERY: Duration = Duration::from_secs(1);
/// After a cut, nothing recovers for this long.
const QUIET: Duration = Duration::from_secs(1);
/// Then the rate recovers by this share of the configured rate per second (15 s from the floor).
const RECOVERY_PER_SEC: f64 = 0.05;
/// The rate never goes below this share of the configured rate: 429s that keep coming at a
/// quarter of the rate are not the rate's doing (Stripe's lock timeouts, a proxy's).
const FLOOR: f64 = 0.25;
/// Without a rate limit, the pages a second a sync can take in (its own work per page bounds it).
const UNLIMITED_PAGES_PER_SEC: f64 = 100.0;
/// Without a rate limit, at least this many requests at once (4 took in 1,000,000 objects as fast
/// as 8 did, with 12 MB less memory: docs/performance.md).
const UNLIMITED_MIN_PARALLEL: usize = 4;
/// Stripe's documented limit for most single endpoints (both modes), where an endpoint's own bucket
/// starts once Stripe says that endpoint's rate was exceeded.
const ENDPOINT_RATE: f64 = 25.0;
/// Accounts not used for this long are forgotten.
const IDLE: Duration = Duration::from_secs(600);

/// Per mode: a rate (requests per second, `None`: no client-side limit) and the requests in flight
/// per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Test mode's rate.
    pub test_rate: Option<u32>,
    /// Live mode's rate.
    pub live_rate: Option<u32>,
    /// Test mode's requests in flight per account.
    pub test_in_flight: u32,
    /// Live mode's requests in flight per account.
    pub live_in_flight: u32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            test_rate: Some(TEST_MODE_RATE),
            live_rate: Some(LIVE_MODE_RATE),
            test_in_flight: TEST_MODE_IN_FLIGHT,
            live_in_flight: LIVE_MODE_IN_FLIGHT,
        }
    }
}

impl BudgetConfig {
    /// The rate of a mode (`None`: off).
    pub fn rate(&self, mode: Mode) -> Option<u32> {
        match mode {
            Mode::Test => self.test_rate,
            Mode::Live => self.live_rate,
        }
        .filter(|r| *r > 0)
    }

    /// The requests in flight per account of a mode.
    pub fn in_flight(&self, mode: Mode) -> u32 {
        match mode {
            Mode::Test => self.test_in_flight,
            Mode::Live => self.live_in_flight,
        }
        .max(1)
    }
}

/// What Stripe said when it refused a request for its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limited {
    /// `global-rate`, or no reason given: the account's rate.
    Rate,
    /// `endpoint-rate`: this endpoint's rate.
    Endpoint,
    /// `global-concurrency`, `endpoint-concurrency`: requests at once.
    Concurrency,
}

impl Limited {
    /// From `Stripe-Rate-Limited-Reason`; `None` for a limit on one object
    /// (`resource-specific`, e.g. a lock timeout), which going slower does not help.
    pub(crate) fn from_reason(reason: Option<&str>) -> Option<Self> {
        match reason.map(str::trim) {
            Some("endpoint-rate") => Some(Self::Endpoint),
            Some(r) if r.ends_with("concurrency") => Some(Self::Concurrency),
            Some("resource-specific") => None,
            _ => Some(Self::Rate),
        }
    }
}

/// A token bucket whose rate adapts. Tokens may go negative: that is the queue of callers already
/// promised a slot, each of which sleeps until its turn.
#[derive(Debug)]
struct Bucket {
    configured: f64,
    rate: f64,
    tokens: f64,
    at: Instant,
    /// The last cut.
    cut_at: Option<Instant>,
    /// The last 429.
    limited_at: Option<Instant>,
}

impl Bucket {
    fn new(rate: f64, now: Instant) -> Self {
        Self { configured: rate, rate, tokens: Self::capacity(rate), at: now, cut_at: None, limited_at: None }
    }

    /// Half a second's worth of tokens, so that bursts stay well inside Stripe's own bucket.
    fn capacity(rate: f64) -> f64 {
        (rate / 2.0).max(1.0)
    }

    /// Refills (and recovers the rate) up to `now`.
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        if self.rate < self.configured && self.limited_at.is_none_or(|c| now.saturating_duration_since(c) >= QUIET) {
            self.rate = (self.rate + self.configured * RECOVERY_PER_SEC * elapsed).min(self.configured);
        }
        self.tokens = (self.tokens + elapsed * self.rate).min(Self::capacity(self.rate));
        self.at = now;
    }

    /// Takes a token; how long to wait for it.
    fn reserve(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-self.tokens / self.rate) }
    }

    /// Lowers the rate after a 429 (at most once per [`CUT_EVERY`]) and drops the burst.
    fn cut(&mut self, now: Instant) {
        self.refill(now);
        if self.cut_at.is_none_or(|c| now.saturating_duration_since(c) >= CUT_EVERY) {
            self.rate = (self.rate * CUT).max(self.configured * FLOOR);
            self.cut_at = Some(now);
        }
        self.limited_at = Some(now);
        self.tokens = self.tokens.min(0.0);
    }
}

/// One account's budget.
#[derive(Debug)]
struct Account {
    /// `None`: no rate limit.
    bucket: Option<Bucket>,
    /// Notified when one of the account's slots is given back.
    freed: Arc<tokio::sync::Notify>,
    /// Per endpoint, after Stripe said that endpoint's rate was exceeded.
    endpoints: HashMap<String, Bucket>,
    in_flight: usize,
    configured_slots: f64,
    slots: f64,
    slots_cut_at: Option<Instant>,
    slots_at: Instant,
    used: Instant,
    /// How long a request takes, smoothed (seconds); `None` before the first.
    latency: Option<f64>,
}

impl Account {
    /// See [`Budgets::parallelism`].
    fn parallelism(&mut self, now: Instant) -> usize {
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a small positive count")]
        let slots = self.slots.floor().max(1.0) as usize;
        // Before the first answer, as many as the slots allow.
        let Some(latency) = self.latency else { return slots };
        // Without a rate limit, what bounds the sync is the caller's own work on each page (about
        // a hundred pages a second on two cores): more pages at once only hold more memory.
        let rate = match self.bucket.as_mut() {
            Some(bucket) => {
                bucket.refill(now);
                bucket.rate
            }
            None => UNLIMITED_PAGES_PER_SEC,
        };
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a small positive count")]
        let busy_enough = (rate * latency * 1.5).ceil() as usize + 1;
        let floor = if self.bucket.is_none() { UNLIMITED_MIN_PARALLEL } else { 1 };
        busy_enough.max(floor).min(slots)
    }

    fn free_slot(&mut self, now: Instant) -> bool {
        if self.slots < self.configured_slots && self.slots_cut_at.is_none_or(|c| now.saturating_duration_since(c) >= QUIET) {
            // One more slot per second without a concurrency 429.
            self.slots = (self.slots + now.saturating_duration_since(self.slots_at).as_secs_f64()).min(self.configured_slots);
        }
        self.slots_at = now;
        #[expect(clippy::cast_precision_loss, reason = "a handful of requests")]
        let busy = self.in_flight as f64;
        busy + 1.0 <= self.slots.floor().max(1.0)
    }
}

/// The budgets of every account, by mode and account id.
#[derive(Debug)]
pub(crate) struct Budgets {
    pub(crate) config: BudgetConfig,
    accounts: Mutex<HashMap<String, Account>>,
}

/// An in-flight slot of an account, given back when dropped.
pub(crate) struct Slot<'a> {
    budgets: &'a Budgets,
    key: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut accounts = self.budgets.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let freed = accounts.get_mut(&self.key).map(|a| {
            a.in_flight = a.in_flight.saturating_sub(1);
            a.freed.clone()
        });
        drop(accounts);
        // Only this account's waiters look again.
        if let Some(freed) = freed {
            freed.notify_waiters();
        }
    }
}

fn key(mode: Mode, account: &str) -> String {
    format!("{}:{account}", if mode == Mode::Live { "live" } else { "test" })
}

impl Budgets {
    pub(crate) fn new(config: BudgetConfig) -> Self {
        Self { config, accounts: Mutex::new(HashMap::new()) }
    }

    fn with<T>(&self, mode: Mode, account: &str, f: impl FnOnce(&mut Account, Instant) -> T) -> T {
        let now = Instant::now();
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        if accounts.len() > 64 {
            accounts.retain(|_, a| a.in_flight > 0 || now.saturating_duration_since(a.used) < IDLE);
        }
        let a = accounts.entry(key(mode, account)).or_insert_with(|| {
            let slots = f64::from(self.config.in_flight(mode));
            Account {
                bucket: self.config.rate(mode).map(|r| Bucket::new(f64::from(r), now)),
                freed: Arc::default(),
                endpoints: HashMap::new(),
                in_flight: 0,
                configured_slots: slots,
                slots,
                slots_cut_at: None,
                slots_at: now,
                used: now,
                latency: None,
            }
        });
        a.used = now;
        f(a, now)
    }

    /// Waits for one of the account's in-flight slots, then for a token of its bucket (and of the
    /// endpoint's, if Stripe limited it). Returns the slot and how long the caller waited.
    pub(crate) async fn acquire(&self, mode: Mode, account: &str, endpoint: &str) -> (Slot<'_>, Duration) {
        let started = Instant::now();
        loop {
            let notify = self.with(mode, account, |a, _| a.freed.clone());
            let freed = notify.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            let taken = self.with(mode, account, |a, now| {
                if a.free_slot(now) {
                    a.in_flight += 1;
                    true
                } else {
                    false
                }
            });
            if taken {
                break;
            }
            freed.await;
        }
        let slot = Slot { budgets: self, key: key(mode, account) };
        let wait = self.with(mode, account, |a, now| {
            let account_wait = a.bucket.as_mut().map_or(Duration::ZERO, |b| b.reserve(now));
            let endpoint_wait = a.endpoints.get_mut(endpoint).map_or(Duration::ZERO, |b| b.reserve(now));
            // An endpoint back at its full rate and quiet for a while loses its own bucket.
            a.endpoints.retain(|_, b| b.rate < b.configured || b.limited_at.is_some_and(|c| now.saturating_duration_since(c) < QUIET));
            account_wait.max(endpoint_wait)
        });
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        (slot, started.elapsed())
    }

    /// A request of the account took `took` (from sending to its last byte).
    pub(crate) fn observe(&self, mode: Mode, account: &str, took: Duration) {
        self.with(mode, account, |a, _| {
            let t = took.as_secs_f64();
            a.latency = Some(a.latency.map_or(t, |l| l * 0.8 + t * 0.2));
        });
    }

    /// How many requests of the account are worth having in flight: enough to keep its rate
    /// busy at the requests' latency, with half as many again for the time a caller spends on a
    /// page between two requests (parsing, writing), within its slots (all of them before the
    /// first answer). Without a rate limit, as if the rate were 100 pages a second (at least 4).
    pub(crate) fn parallelism(&self, mode: Mode, account: &str) -> usize {
        self.with(mode, account, |a, now| a.parallelism(now))
    }

    /// Stripe answered 429: lower what it named.
    pub(crate) fn limited(&self, mode: Mode, account: &str, endpoint: &str, why: Limited) {
        self.with(mode, account, |a, now| match why {
            Limited::Rate => {
                if let Some(b) = a.bucket.as_mut() {
                    b.cut(now);
                }
            }
            Limited::Endpoint => {
                // Stripe documents 25 requests/s for most single endpoints, in either mode.
                let base = a.bucket.as_ref().map_or(ENDPOINT_RATE, |b| b.configured.min(ENDPOINT_RATE));
                a.endpoints.entry(endpoint.to_owned()).or_insert_with(|| Bucket::new(base, now)).cut(now);
            }
            Limited::Concurrency => {
                if a.slots_cut_at.is_none_or(|c| now.saturating_duration_since(c) >= CUT_EVERY) {
                    a.slots = (a.slots * CUT).max(1.0).floor();
                }
                a.slots_cut_at = Some(now);
            }
        });
    }

    /// The account's current rate (requests per second; `None`: no limit) and in-flight slots.
    #[cfg(test)]
    pub(crate) fn current(&self, mode: Mode, account: &str) -> (Option<f64>, f64) {
        self.with(mode, account, |a, now| {
            if let Some(b) = a.bucket.as_mut() {
                b.refill(now);
            }
            a.free_slot(now);
            (a.bucket.as_ref().map(|b| b.rate), a.slots)
        })
    }
}

/// Shared by every request of a data source.
pub(crate) type SharedBudgets = Arc<Budgets>;

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rate: u32, slots: u32) -> BudgetConfig {
        BudgetConfig { test_rate: Some(rate), live_rate: Some(rate * 4), test_in_flight: slots, live_in_flight: slots }
    }

    #[test]
    fn the_bucket_allows_a_burst_then_spaces_requests_at_the_rate() {
        let now = Instant::now();
        let mut b = Bucket::new(20.0, now);
        let waits: Vec<Duration> = (0..15).map(|_| b.reserve(now)).collect();
        assert!(waits[..10].iter().all(Duration::is_zero), "{waits:?}");
        // The 15th request is the 5th over the burst: 5/20 s later.
        assert!(waits[14] > Duration::from_millis(240) && waits[14] <= Duration::from_millis(260), "{waits:?}");
    }

    #[test]
    fn a_429_cuts_the_rate_once_a_second_and_it_recovers_slowly_after_a_quiet_second() {
        let t0 = Instant::now();
        let mut b = Bucket::new(100.0, t0);
        b.cut(t0);
        b.cut(t0 + Duration::from_millis(100));
        assert!((b.rate - 70.0).abs() < 1e-9, "a burst of 429s is one cut: {}", b.rate);
        // 429s keep coming: one more cut a second, and no recovery in between.
        b.cut(t0 + Duration::from_millis(600));
        b.cut(t0 + Duration::from_millis(1000));
        assert!((b.rate - 49.0).abs() < 1e-9, "{}", b.rate);
        b.refill(t0 + Duration::from_millis(1900));
        assert!((b.rate - 49.0).abs() < 1e-9, "no recovery within a second of a 429: {}", b.rate);
        b.refill(t0 + Duration::from_millis(3000));
        assert!(b.rate > 53.0 && b.rate < 56.0, "recovering at 5 % of 100/s per second after it: {}", b.rate);
        b.refill(t0 + Duration::from_secs(60));
        assert!((b.rate - 100.0).abs() < 1e-9, "back to the configured rate: {}", b.rate);
        for n in 0..20 {
            b.cut(t0 + Duration::from_secs(61 + n));
        }
        assert!((b.rate - 25.0).abs() < 1e-9, "never below a quarter: {}", b.rate);
    }

    #[tokio::test]
    async fn every_request_of_an_account_shares_its_slots_and_other_accounts_have_their_own() {
        let budgets = Arc::new(Budgets::new(config(1000, 2)));
        let (a, _) = budgets.acquire(Mode::Test, "acct_1", "GET /v1/charges").await;
        let (b, _) = budgets.acquire(Mode::Test, "acct_1", "GET /v1/customers").await;
        let third = {
            let budgets = budgets.clone();
            tokio::spawn(async move {
                let (_s, waited) = budgets.acquire(Mode::Test, "acct_1", "GET /v1/refunds").await;
                waited
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!third.is_finished(), "two slots, both taken");
        let (_other, waited) = budgets.acquire(Mode::Test, "acct_2", "GET /v1/charges").await;
        assert!(waited < Duration::from_millis(20), "another account is not held up");
        let (_live, _) = budgets.acquire(Mode::Live, "acct_1", "GET /v1/charges").await;
        drop(a);
        let waited = tokio::time::timeout(Duration::from_secs(2), third).await.expect("woken when a slot frees").unwrap();
        assert!(waited >= Duration::from_millis(40), "{waited:?}");
        drop(b);
    }

    #[tokio::test]
    async fn a_concurrency_429_takes_slots_away_and_an_endpoint_429_slows_that_endpoint_only() {
        let budgets = Budgets::new(config(100, 8));
        budgets.limited(Mode::Test, "acct_1", "GET /v1/charges", Limited::Concurrency);
        assert_eq!(budgets.current(Mode::Test, "acct_1"), (Some(100.0), 5.0));
        budgets.limited(Mode::Test, "acct_1", "GET /v1/charges", Limited::Rate);
        assert_eq!(budgets.current(Mode::Test, "acct_1").0, Some(70.0));
        let budgets = Budgets::new(config(40, 8));
        budgets.limited(Mode::Test, "acct_1", "GET /v1/charges", Limited::Endpoint);
        // The endpoint now runs at 70 % of Stripe's 25/s per endpoint, its burst dropped; other
        // endpoints at the account's 40/s.
        let mut charges = Vec::new();
        for _ in 0..6 {
            let (_s, w) = budgets.acquire(Mode::Test, "acct_1", "GET /v1/charges").await;
            charges.push(w);
        }
        assert!(charges.iter().all(|w| *w >= Duration::from_millis(50)), "the endpoint waits 1/17.5 s a request: {charges:?}");
        let (_s, w) = budgets.acquire(Mode::Test, "acct_1", "GET /v1/customers").await;
        assert!(w < Duration::from_millis(20), "another endpoint does not wait for the limited one: {w:?}");
        assert_eq!(Limited::from_reason(Some("global-concurrency")), Some(Limited::Concurrency));
        assert_eq!(Limited::from_reason(Some("endpoint-rate")), Some(Limited::Endpoint));
        assert_eq!(Limited::from_reason(Some("global-rate")), Some(Limited::Rate));
        assert_eq!(Limited::from_reason(None), Some(Limited::Rate));
        assert_eq!(Limited::from_reason(Some("resource-specific")), None, "a lock timeout is not the rate's doing");
    }

    #[tokio::test]
    async fn parallelism_is_what_keeps_the_rate_busy_at_the_observed_latency() {
        let budgets = Budgets::new(config(20, 32));
        assert_eq!(budgets.parallelism(Mode::Test, "acct_1"), 32, "no latency known yet: every slot");
        budgets.observe(Mode::Test, "acct_1", Duration::from_millis(400));
        // 20/s × 0.4 s × 1.5 + 1 = 13.
        assert_eq!(budgets.parallelism(Mode::Test, "acct_1"), 13);
        let (_a, _) = budgets.acquire(Mode::Test, "acct_1", "GET /v1/charges").await;
        let (_b, _) = budgets.acquire(Mode::Test, "acct_1", "GET /v1/charges").await;
        assert_eq!(budgets.parallelism(Mode::Test, "acct_1"), 13, "whatever is in flight");
        budgets.observe(Mode::Test, "acct_1", Duration::from_secs(10));
        assert_eq!(budgets.parallelism(Mode::Test, "acct_1"), 32, "never more than the slots");
        let unlimited = Budgets::new(BudgetConfig { test_rate: None, ..config(20, 32) });
        unlimited.observe(Mode::Test, "acct_1", Duration::from_millis(5));
        assert_eq!(unlimited.parallelism(Mode::Test, "acct_1"), 4, "a fast source without a limit: the caller's work bounds it");
        unlimited.observe(Mode::Test, "acct_2", Duration::from_millis(100));
        assert_eq!(unlimited.parallelism(Mode::Test, "acct_2"), 16, "100 pages/s × 0.1 s × 1.5 + 1");
    }

    #[test]
    fn rates_default_per_mode_and_zero_turns_the_limit_off() {
        let c = BudgetConfig::default();
        assert_eq!((c.rate(Mode::Test), c.rate(Mode::Live)), (Some(25), Some(100)));
        assert_eq!((c.in_flight(Mode::Test), c.in_flight(Mode::Live)), (32, 100));
        let off = BudgetConfig { test_rate: Some(0), live_rate: None, ..c };
        assert_eq!((off.rate(Mode::Test), off.rate(Mode::Live)), (None, None));
    }
}
