//! `tributary-domain`: the pure core of Tributary.
//!
//! It owns the Codat-shaped models (companies, connections, integrations, commerce records, pull
//! operations), exact money, the Codat query language, the ports that adapters implement, and the
//! use-case services that the apps call. It does no I/O: no runtime, no database driver, no HTTP.
//! Other programs embed it with their own adapters (docs/embedding.md, `examples/embedding`).

#![deny(missing_docs)]

pub mod error;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod ids;
pub mod metrics;
pub mod model;
pub mod money;
pub mod paging;
pub mod ports;
pub mod query;
pub mod service;

pub use error::{DomainError, RepositoryError};
