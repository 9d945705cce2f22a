//! `tributary-tests`: the storage contract suite, written once against the repository ports and
//! run against every storage adapter (`tests/storage_contract.rs` instantiates it for SQLite and
//! Postgres), plus helpers that give each Postgres test a fresh database.

pub mod contract;
pub mod pg;
