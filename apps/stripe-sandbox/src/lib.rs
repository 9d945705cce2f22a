//! `stripe-sandbox`: a Stripe-compatible server for offline development, tests, demos and
//! benchmarks. It serves Connect OAuth (consent page, token, deauthorize), the read API Tributary
//! uses (account, balance, lists and retrieves with Stripe's paging, filters, errors and headers),
//! events and signed Connect webhooks, per-account rate limits, injected faults, and a control API
//! under `/_sandbox/`. Data comes from a deterministic generator. See the crate's README.

#![recursion_limit = "256"]
#![expect(clippy::result_large_err, reason = "helpers return the finished error response for handlers to send as is")]

pub mod api;
pub mod control;
pub mod generator;
pub mod oauth;
pub mod objects;
pub mod rng;
pub mod server;
pub mod state;
pub mod store;
pub mod webhooks;

pub use generator::Profile;
pub use server::{Running, start};
pub use state::{Config, Sandbox};
pub use store::Mode;
