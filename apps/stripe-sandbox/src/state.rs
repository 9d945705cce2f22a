//! The sandbox's shared state: the platform, accounts, OAuth codes and tokens, webhook endpoints,
//! rate limits and faults.

use crate::generator::{self, Profile};
use crate::rng::Rng;
use crate::store::{Account, Mode};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// The pinned API version the sandbox renders (and echoes when none is requested).
pub const API_VERSION: &str = "2026-10-28.endive";

/// How the sandbox's platform is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: String,
    /// Test-mode Connect client id.
    pub test_client_id: String,
    /// Test-mode platform secret key.
    pub test_secret_key: String,
    /// Live-mode Connect client id.
    pub live_client_id: String,
    /// Live-mode platform secret key.
    pub live_secret_key: String,
    /// Connect webhook signing secret (every registered endpoint is signed with it).
    pub webhook_secret: String,
    /// Registered OAuth redirect URIs (loopback URIs are also allowed in test mode).
    pub redirect_uris: Vec<String>,
    /// Seed for generated accounts and ids.
    pub seed: u64,
    /// Requests per second per connected account in test mode (`None`: unlimited).
    pub test_rate: Option<u32>,
    /// Requests per second per connected account in live mode (`None`: unlimited).
    pub live_rate: Option<u32>,
    /// The platform's display name on the consent page.
    pub platform_name: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:12111".into(),
            test_client_id: "ca_sandbox_test".into(),
            test_secret_key: "sk_test_sandbox_platform".into(),
            live_client_id: "ca_sandbox_live".into(),
            live_secret_key: "sk_live_sandbox_platform".into(),
            webhook_secret: "whsec_sandbox_connect".into(),
            redirect_uris: Vec::new(),
            seed: 1,
            test_rate: Some(25),
            live_rate: Some(100),
            platform_name: "Sandbox Platform".into(),
        }
    }
}

impl Config {
    /// The mode of a client id.
    pub fn mode_of_client(&self, client_id: &str) -> Option<Mode> {
        if client_id == self.test_client_id {
            Some(Mode::Test)
        } else if client_id == self.live_client_id {
            Some(Mode::Live)
        } else {
            None
        }
    }

    /// The client id of a mode.
    pub fn client_id(&self, mode: Mode) -> &str {
        match mode {
            Mode::Test => &self.test_client_id,
            Mode::Live => &self.live_client_id,
        }
    }
}

/// An authorization code waiting to be exchanged.
#[derive(Debug, Clone)]
pub struct Code {
    /// The mode of the client id it was issued to.
    pub mode: Mode,
    /// The account that authorized.
    pub account: String,
    /// Granted scope.
    pub scope: String,
    /// When it stops working.
    pub expires: Instant,
    /// Codes are single-use.
    pub used: bool,
}

/// A refresh token.
#[derive(Debug, Clone)]
pub struct Refresh {
    /// Its account.
    pub account: String,
    /// Its mode.
    pub mode: Mode,
    /// Granted scope.
    pub scope: String,
}

/// Fault probabilities for one endpoint (or `*`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Fault {
    /// Probability of a 429.
    pub p429: f64,
    /// Probability of a 500.
    pub p500: f64,
    /// Probability of closing the connection without a response.
    pub p_drop: f64,
    /// Probability of a truncated body.
    pub p_truncate: f64,
    /// Added latency.
    pub latency_ms: u64,
}

/// A token bucket per account.
#[derive(Debug)]
pub struct Bucket {
    /// Tokens left.
    pub tokens: f64,
    /// Last refill.
    pub at: Instant,
}

/// A registered webhook endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    /// `we_…`
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
}

/// Everything the sandbox holds.
pub struct Sandbox {
    /// The platform.
    pub config: Config,
    /// Accounts by id.
    pub accounts: RwLock<HashMap<String, Arc<RwLock<Account>>>>,
    /// Authorization codes.
    pub codes: Mutex<HashMap<String, Code>>,
    /// Refresh tokens.
    pub refresh: Mutex<HashMap<String, Refresh>>,
    /// Webhook endpoints.
    pub endpoints: RwLock<Vec<Endpoint>>,
    /// Rate limits (test, live).
    pub rates: RwLock<(Option<u32>, Option<u32>)>,
    /// Buckets per account.
    pub buckets: Mutex<HashMap<String, Bucket>>,
    /// Faults by endpoint key.
    pub faults: RwLock<HashMap<String, Fault>>,
    /// Ids and fault dice.
    pub rng: Mutex<Rng>,
    /// Accounts created so far (for deterministic account seeds).
    pub counter: AtomicU64,
    /// Delivers webhooks.
    pub http: reqwest::Client,
    /// The platform's secret keys now (test, live): the configured ones until rolled.
    pub keys: RwLock<(String, String)>,
}

impl Sandbox {
    /// A sandbox with no accounts.
    pub fn new(config: Config) -> Arc<Self> {
        let rates = (config.test_rate, config.live_rate);
        let seed = config.seed;
        let keys = (config.test_secret_key.clone(), config.live_secret_key.clone());
        Arc::new(Self {
            keys: RwLock::new(keys),
            config,
            accounts: RwLock::default(),
            codes: Mutex::default(),
            refresh: Mutex::default(),
            endpoints: RwLock::default(),
            rates: RwLock::new(rates),
            buckets: Mutex::default(),
            faults: RwLock::default(),
            rng: Mutex::new(Rng::new(seed.wrapping_mul(31).wrapping_add(17))),
            counter: AtomicU64::new(0),
            http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().unwrap_or_default(),
        })
    }

    /// The mode of a platform secret key, as the keys are now (see `PUT /_sandbox/keys`).
    pub fn mode_of_key(&self, key: &str) -> Option<Mode> {
        let keys = self.keys.read().expect("keys lock");
        if key == keys.0 {
            Some(Mode::Test)
        } else if key == keys.1 {
            Some(Mode::Live)
        } else {
            None
        }
    }

    /// A random token (for ids the generator does not make).
    pub fn token(&self, len: usize) -> String {
        self.rng.lock().map(|mut r| r.token(len)).unwrap_or_default()
    }

    /// A random number in `[0, 1)`.
    pub fn dice(&self) -> f64 {
        let bits = self.rng.lock().map(|mut r| r.next_u64()).unwrap_or(0);
        #[expect(clippy::cast_precision_loss, reason = "53 random bits are plenty for a probability")]
        let x = (bits >> 11) as f64 / (1u64 << 53) as f64;
        x
    }

    /// Creates an account with generated data. The id and data depend only on `seed` (or the
    /// sandbox seed and the account's ordinal) and the profile.
    pub fn create_account(&self, mode: Mode, seed: Option<u64>, connected: bool, profile: &Profile) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let seed = seed.unwrap_or_else(|| self.config.seed.wrapping_mul(1_000_003).wrapping_add(n));
        let mut rng = Rng::new(seed ^ 0xACC7);
        let mut id = format!("acct_{}", rng.token(16));
        {
            let accounts = self.accounts.read().expect("accounts lock");
            while accounts.contains_key(&id) {
                id = format!("acct_{}", rng.token(16));
            }
        }
        let g = generator::generate(seed, profile, &id, mode);
        let mut account = Account {
            id: id.clone(),
            mode,
            connected,
            scope: connected.then(|| "read_write".to_owned()),
            profile: g.profile,
            lists: g.lists,
            events: Vec::new(),
            event_index: HashMap::new(),
            stats: HashMap::new(),
            hosts: HashMap::new(),
            timeline: Vec::new(),
            timeline_start: None,
            rate_limited: 0,
            rng: Rng::new(seed ^ 0xC0417),
            next_seq: 0,
        };
        account.set_events(g.events);
        self.accounts.write().expect("accounts lock").insert(id.clone(), Arc::new(RwLock::new(account)));
        id
    }

    /// An account by id.
    pub fn account(&self, id: &str) -> Option<Arc<RwLock<Account>>> {
        self.accounts.read().ok()?.get(id).cloned()
    }

    /// Takes a token from the account's bucket; `false` when over the mode's limit.
    pub fn take_token(&self, account: &str, mode: Mode) -> bool {
        let limit = {
            let r = self.rates.read().expect("rates lock");
            match mode {
                Mode::Test => r.0,
                Mode::Live => r.1,
            }
        };
        let Some(limit) = limit else { return true };
        let rate = f64::from(limit.max(1));
        let mut buckets = self.buckets.lock().expect("buckets lock");
        let now = Instant::now();
        let b = buckets.entry(account.to_owned()).or_insert(Bucket { tokens: rate, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(rate);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The fault settings that apply to `key` (`GET /v1/charges`), else to `template`, else `*`.
    pub fn fault_for(&self, key: &str, template: &str) -> Option<Fault> {
        let f = self.faults.read().ok()?;
        f.get(key).or_else(|| f.get(template)).or_else(|| f.get("*")).cloned()
    }
}
