//! Tributary's Stripe adapters.
//!
//! - [`oauth`]: [`StripeConnectOAuth`], the Stripe Connect OAuth implementation of the domain's
//!   [`OAuthProvider`](tributary_domain::ports::OAuthProvider) port (authorize URL, code exchange,
//!   refresh, deauthorization).
//! - [`webhook`]: verification of `Stripe-Signature` headers and parsing of (Connect) event
//!   payloads.

pub mod oauth;
mod redact;
pub mod webhook;

pub use oauth::{ConfigError, STRIPE_CONNECT_BASE, StripeConnectOAuth};
pub use webhook::{StripeEvent, WebhookError};
