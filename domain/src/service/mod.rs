//! Use-case services: what the HTTP API and the CLI do, written once against the ports.

mod api_keys;
mod companies;
mod connections;
mod console;
mod engine;
mod integrations;
mod link;
mod pulls;
mod records;
mod settings;
mod signal;
mod webhooks;

pub use api_keys::{ApiKeys, hash_api_key};
pub use companies::{Companies, CompanyPatch, CompanyView};
pub use connections::Connections;
pub use console::{Console, OVERVIEW_WINDOW};
pub use engine::{SyncEngine, SyncOptions};
pub use integrations::{IntegrationUpdate, Integrations};
pub use link::{Callback, CallbackError, LinkResult, Linking};
pub use pulls::{DataTypeStatus, Pulls};
pub use records::{RecordPage, Records, to_stored};
pub use settings::Settings;
pub use signal::PageBudget;
pub use webhooks::{DeliveryOptions, WebhookDelivery, Webhooks};

use crate::ports::{Clock, Repositories, SecretCipher};
use std::sync::Arc;

/// The façade over the use cases: it holds the ports once and lends one service per aggregate
/// ([`Platform::companies`], [`connections`](Platform::connections),
/// [`integrations`](Platform::integrations), [`pulls`](Platform::pulls),
/// [`records`](Platform::records), [`webhooks`](Platform::webhooks),
/// [`settings`](Platform::settings), [`api_keys`](Platform::api_keys),
/// [`console`](Platform::console)). Each service is a borrowed view, free to make:
/// `platform.companies().create(fields)`. Linking, the sync engine and webhook delivery are
/// services of their own built on a `Platform` ([`Linking`], [`SyncEngine`], [`WebhookDelivery`]).
#[derive(Clone)]
pub struct Platform {
    pub(crate) repos: Repositories,
    pub(crate) cipher: Arc<dyn SecretCipher>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) renderer: Option<Arc<dyn crate::model::webhook::EventRenderer>>,
    pub(crate) counts: Arc<records::CountCache>,
    pub(crate) targets: Option<Arc<dyn crate::ports::WebhookSender>>,
}

impl Platform {
    /// Composes the service from its ports.
    pub fn new(repos: Repositories, cipher: Arc<dyn SecretCipher>, clock: Arc<dyn Clock>) -> Self {
        Self { repos, cipher, clock, renderer: None, counts: Arc::default(), targets: None }
    }

    /// Turns webhooks on: every change that causes a Codat event writes it, rendered by
    /// `renderer`, to the outbox in the change's transaction. Without a renderer no events are
    /// recorded.
    #[must_use]
    pub fn with_event_renderer(mut self, renderer: Arc<dyn crate::model::webhook::EventRenderer>) -> Self {
        self.renderer = Some(renderer);
        self
    }

    /// Checks webhook consumer URLs with `sender`'s target policy when they are registered (the
    /// server's: loopback and private addresses refused unless allowed).
    #[must_use]
    pub fn with_webhook_target_check(mut self, sender: Arc<dyn crate::ports::WebhookSender>) -> Self {
        self.targets = Some(sender);
        self
    }

    /// Companies: create, read, change, delete, list.
    pub fn companies(&self) -> Companies<'_> {
        Companies { p: self }
    }

    /// A company's data connections and their client-visible lifecycle.
    pub fn connections(&self) -> Connections<'_> {
        Connections { p: self }
    }

    /// The Stripe integrations: settings, credentials, source webhooks.
    pub fn integrations(&self) -> Integrations<'_> {
        Integrations { p: self }
    }

    /// Data pulls: queueing, history, each data type's status.
    pub fn pulls(&self) -> Pulls<'_> {
        Pulls { p: self }
    }

    /// Reading synced commerce records.
    pub fn records(&self) -> Records<'_> {
        Records { p: self }
    }

    /// Webhook consumers, events and deliveries.
    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks { p: self }
    }

    /// The profile, sync settings and master-key rotation.
    pub fn settings(&self) -> Settings<'_> {
        Settings { p: self }
    }

    /// API keys.
    pub fn api_keys(&self) -> ApiKeys<'_> {
        ApiKeys { p: self }
    }

    /// The operator console's sessions and figures.
    pub fn console(&self) -> Console<'_> {
        Console { p: self }
    }

    /// The repositories, for tests and benchmarks that seed or inspect the store directly
    /// (feature `test-support`; the apps are built without it and go through the use cases).
    #[cfg(any(test, feature = "test-support"))]
    pub fn repositories(&self) -> &Repositories {
        &self.repos
    }
}

/// The in-memory fake of the repositories the service tests use (`crate::fake`).
#[cfg(test)]
pub(crate) use crate::fake as test_support;
