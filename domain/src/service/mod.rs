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

pub use api_keys::hash_api_key;
pub use companies::{CompanyPatch, CompanyView};
pub use console::OVERVIEW_WINDOW;
pub use engine::{SyncEngine, SyncOptions};
pub use integrations::IntegrationUpdate;
pub use link::{Callback, CallbackError, LinkResult, Linking};
pub use pulls::DataTypeStatus;
pub use records::{RecordPage, to_stored};
pub use signal::PageBudget;
pub use webhooks::{DeliveryOptions, WebhookDelivery};

use crate::ports::{Clock, Repositories, SecretCipher};
use std::sync::Arc;

/// The platform use cases (companies, connections, integrations, API keys, profile, settings).
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

    /// The repositories, for tests and benchmarks that seed or inspect the store directly. The
    /// apps go through the use cases.
    pub fn repositories(&self) -> &Repositories {
        &self.repos
    }
}

/// The in-memory fake of the repositories the service tests use (`crate::fake`).
#[cfg(test)]
pub(crate) use crate::fake as test_support;
