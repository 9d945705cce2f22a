//! The domain model: the platform aggregates and the commerce records.

pub mod api_key;
pub mod commerce;
pub mod commerce_schema;
pub mod company;
pub mod connection;
pub mod console;
pub mod data_type;
pub mod integration;
pub mod oauth_state;
pub mod profile;
pub mod pull;
pub mod record;
pub mod secret;
pub mod sync_settings;
pub mod webhook;
