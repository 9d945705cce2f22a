//! The composition root: from [`Settings`] to the store, the cipher, the Stripe sources and the
//! services. The server, the CLI and the benchmarks build what they run here, so each part is
//! built one way: [`Composition::open`] for a process working on the configured database,
//! [`platform`], [`linking`] and [`SyncShared`] for the pieces.

use crate::config::{Settings, decode_master_key};
use crate::crypto::AesGcmCipher;
use crate::store::Store;
use crate::{ServeOptions, TokioTimer, http, webhooks};
use anyhow::Context;
use secrecy::SecretString;
use std::sync::Arc;
use tributary_domain::model::secret::SealedSecret;
use tributary_domain::ports::{CipherError, SecretCipher, SystemClock};
use tributary_domain::service::{Linking, PageBudget, Platform, SyncEngine, SyncOptions};

/// The cipher for the configured master keys.
///
/// # Errors
/// When no master key is configured, or a key is malformed.
pub fn cipher_from(settings: &Settings) -> anyhow::Result<AesGcmCipher> {
    let current = settings.master_key.as_deref().ok_or_else(|| {
        anyhow::anyhow!(
            "master_key is not set: generate one with `tributary keys generate` and set TRIBUTARY_MASTER_KEY (or master_key in tributary.toml)"
        )
    })?;
    let current = decode_master_key(current).context("master_key")?;
    let previous = settings.previous_master_keys.iter().map(|k| decode_master_key(k)).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(AesGcmCipher::new(&current, &previous))
}

/// The platform use cases over a store, with a cipher: events for webhooks are rendered in Codat's
/// shapes with links under `public_url`, and webhook targets are checked at registration
/// (loopback and private addresses refused unless `allow_private_webhook_targets`).
///
/// # Errors
/// When the webhook sender cannot be built.
pub fn platform(
    store: &Store,
    cipher: Arc<dyn SecretCipher>,
    public_url: &str,
    allow_private_webhook_targets: bool,
) -> anyhow::Result<Platform> {
    Ok(Platform::new(store.repositories(), cipher, Arc::new(SystemClock))
        .with_event_renderer(Arc::new(http::dto::CodatEvents { public_url: public_url.trim_end_matches('/').to_owned() }))
        .with_webhook_target_check(Arc::new(webhooks::HttpWebhookSender::new(allow_private_webhook_targets)?)))
}

/// A cipher for commands that touch no secret, used when no master key is configured: any
/// attempt to seal or open fails with the reason.
struct NoMasterKey;

impl SecretCipher for NoMasterKey {
    fn current_key_id(&self) -> String {
        "none".into()
    }
    fn seal(&self, _: &SecretString) -> Result<SealedSecret, CipherError> {
        Err(CipherError::UnknownKey("(master_key is not set)".into()))
    }
    fn open(&self, s: &SealedSecret) -> Result<SecretString, CipherError> {
        Err(CipherError::UnknownKey(s.key_id.clone()))
    }
}

/// Whether a composition needs the master key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterKey {
    /// Fail without one (the server, commands that seal or open secrets).
    Required,
    /// Without one, build a platform whose secrets cannot be sealed or opened (commands that touch
    /// none). A master key that is configured but malformed is still an error: a typo in the
    /// configuration is said at once, not when a command first needs the key.
    IfConfigured,
}

/// What a process runs, built from the settings: the store (migrated), the cipher, the platform.
pub struct Composition {
    /// The settings it was built from.
    pub settings: Settings,
    /// The store at `database_url`, migrated.
    pub store: Store,
    /// The platform use cases ([`platform`]).
    pub platform: Platform,
}

impl Composition {
    /// Opens the store (applying pending migrations) and builds the platform.
    ///
    /// # Errors
    /// A missing or malformed master key (when required), an unreachable database or a failed
    /// migration.
    pub async fn open(settings: Settings, master_key: MasterKey) -> anyhow::Result<Self> {
        let cipher: Arc<dyn SecretCipher> = match cipher_from(&settings) {
            Ok(c) => Arc::new(c),
            Err(e) if master_key == MasterKey::Required || settings.master_key.is_some() => return Err(e),
            Err(_) => Arc::new(NoMasterKey),
        };
        let store = Store::open(&settings.database_url).await?;
        let platform = platform(&store, cipher, &settings.public_base(), settings.webhooks.allow_private_targets)?;
        Ok(Self { settings, store, platform })
    }

    /// The cipher of the configured master keys (for the server's OAuth state key and the CLI's
    /// key rotation).
    ///
    /// # Errors
    /// When no master key is configured, or a key is malformed.
    pub fn cipher(&self) -> anyhow::Result<AesGcmCipher> {
        cipher_from(&self.settings)
    }
}

/// What every sync worker of a process shares: the Stripe data source (so that each connected
/// account has one budget in the process) and the bound on pages held at once.
#[derive(Clone)]
pub struct SyncShared {
    /// The data source at `opts.api_base`.
    pub source: Arc<tributary_stripe::StripeDataSource>,
    /// Pages held at once, by all workers.
    pub pages: Arc<PageBudget>,
}

impl SyncShared {
    /// For the options' Stripe base and limits.
    ///
    /// # Errors
    /// When `api_base` is not a usable URL.
    pub fn new(opts: &ServeOptions) -> anyhow::Result<Self> {
        let source = tributary_stripe::StripeDataSource::new(&opts.api_base).map_err(|e| anyhow::anyhow!("stripe.api_base: {e}"))?;
        Ok(Self { source: Arc::new(source.with_budget(opts.stripe_budget)), pages: Arc::new(PageBudget::new(opts.sync_pages_in_flight)) })
    }

    /// A sync engine for one worker task.
    pub fn engine(&self, platform: &Platform, opts: &ServeOptions, worker: String) -> SyncEngine {
        let sync = SyncOptions {
            pages: self.pages.clone(),
            lease_for: opts.sync_lease,
            parallel_pages: opts.sync_parallel_pages.max(1),
            ..SyncOptions::default()
        };
        SyncEngine::new(platform.clone(), self.source.clone(), Arc::new(TokioTimer), worker, sync)
    }
}

/// The link use cases (platform + Stripe Connect OAuth + state signing key).
///
/// # Errors
/// When `connect_base` is not a usable URL.
pub fn linking(store: &Store, cipher: AesGcmCipher, opts: &ServeOptions) -> anyhow::Result<Linking> {
    let state_key = cipher.derive_key("oauth-state");
    let oauth = tributary_stripe::StripeConnectOAuth::new(&opts.connect_base).map_err(|e| anyhow::anyhow!("stripe.connect_base: {e}"))?;
    Ok(Linking::new(
        platform(store, Arc::new(cipher), &opts.public_url, opts.allow_private_webhook_targets)?,
        Arc::new(oauth),
        state_key,
        format!("{}/oauth/stripe/callback", opts.public_url),
    ))
}
