//! Tributary's Stripe adapters.
//!
//! - [`oauth`]: [`StripeConnectOAuth`], the Stripe Connect OAuth implementation of the domain's
//!   [`OAuthProvider`](tributary_domain::ports::OAuthProvider) port (authorize URL, code exchange,
//!   refresh, deauthorization).
//! - [`source`]: [`StripeDataSource`], the domain's
//!   [`CommerceDataSource`](tributary_domain::ports::CommerceDataSource) over Stripe's REST API
//!   (paging, rate limiting, retries, error classification).
//! - [`mapping`]: the pure Stripe → Codat mapping of every commerce data type
//!   (`docs/stripe-mapping.md` documents the rules).
//! - [`webhook`]: verification of `Stripe-Signature` headers and parsing of (Connect) event
//!   payloads.

pub mod mapping;
pub mod oauth;
mod redact;
pub mod source;
pub mod webhook;

pub use oauth::{ConfigError, STRIPE_CONNECT_BASE, StripeConnectOAuth};
pub use source::{
    BudgetConfig, LIVE_MODE_IN_FLIGHT, LIVE_MODE_RATE, STRIPE_API_BASE, STRIPE_API_VERSION, SourceStats, StripeDataSource,
    TEST_MODE_IN_FLIGHT, TEST_MODE_RATE,
};
pub use webhook::{StripeEvent, WebhookError};
