//! `tributary-tests`: the storage contract suite, written once against the repository ports and
//! run against every storage adapter (`tests/tests/storage_contract.rs` instantiates it for SQLite,
//! the domain's in-memory fake and Postgres), plus helpers that give each Postgres test a fresh database.

pub mod contract;
pub mod pg;
