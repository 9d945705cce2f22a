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
mod sync;
mod webhooks;

pub use api_keys::hash_api_key;
pub use companies::{CompanyPatch, CompanyView};
pub use console::OVERVIEW_WINDOW;
pub use engine::{SyncEngine, SyncOptions};
pub use integrations::IntegrationUpdate;
pub use link::{Callback, CallbackError, LinkResult, Linking};
pub use records::RecordPage;
pub use signal::PageBudget;
pub use sync::{DataTypeStatus, to_stored};
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

#[cfg(test)]
pub(crate) mod test_support {
    //! An in-memory fake of the repositories, for service unit tests.

    use super::Platform;
    use crate::error::RepositoryError;
    use crate::ids::{ApiKeyId, CompanyId, ConnectionId, WebhookConsumerId};
    use crate::model::api_key::ApiKey;
    use crate::model::company::Company;
    use crate::model::connection::Connection;
    use crate::model::integration::IntegrationSettings;
    use crate::model::profile::Profile;
    use crate::model::secret::SealedSecret;
    use crate::model::sync_settings::SyncSetting;
    use crate::model::webhook::{AfterAttempt, Attempt, Delivery, DeliveryStatus, OutboxEvent, WebhookConsumer};
    use crate::paging::{ListQuery, Page};
    use crate::ports::*;
    use async_trait::async_trait;
    use chrono::{DateTime, Utc};
    use secrecy::{ExposeSecret, SecretString};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    pub struct Mem {
        companies: Mutex<Vec<Company>>,
        pub connections: Mutex<Vec<Connection>>,
        integrations: Mutex<HashMap<String, IntegrationSettings>>,
        keys: Mutex<Vec<ApiKey>>,
        states: Mutex<Vec<crate::model::oauth_state::OAuthState>>,
        pub pulls: Mutex<Vec<crate::model::pull::PullOperation>>,
        profile: Mutex<Option<Profile>>,
        pub leases: Mutex<HashMap<ConnectionId, (String, DateTime<Utc>)>>,
        records:
            Mutex<std::collections::BTreeMap<(ConnectionId, crate::model::data_type::DataType, String), crate::model::record::RecordRow>>,
        checkpoints: Mutex<HashMap<(ConnectionId, crate::model::data_type::DataType), crate::model::record::Checkpoint>>,
        pub partitions:
            Mutex<std::collections::BTreeMap<(ConnectionId, crate::model::data_type::DataType, u32), crate::model::record::PartitionState>>,
        staged: Mutex<std::collections::BTreeMap<(ConnectionId, crate::model::data_type::DataType, String, String), serde_json::Value>>,
        /// Fenced writes refused.
        pub refused: Mutex<u64>,
        /// When set, sync writes take one lock and hold it this long (as SQLite's single writer
        /// does), so a caller that waits for a write while not polling another stalls.
        pub slow_writes: Mutex<Option<std::time::Duration>>,
        /// When set, sync writes fail as a broken store would.
        pub broken: Mutex<bool>,
        /// Sync writes holding a record with this id fail (a record the store refuses); counted.
        pub poison: Mutex<Option<(String, u64)>>,
        serial: tokio::sync::Mutex<()>,
        versions: Mutex<HashMap<(ConnectionId, crate::model::data_type::DataType), u64>>,
        /// `count_matching` calls, to see the count cache work.
        pub count_queries: Mutex<u64>,
        pub events: Mutex<Vec<OutboxEvent>>,
        pub consumers: Mutex<Vec<WebhookConsumer>>,
        pub deliveries: Mutex<Vec<MemDelivery>>,
        pub attempts: Mutex<Vec<Attempt>>,
        sessions: Mutex<Vec<crate::model::console::ConsoleSession>>,
        source_events: Mutex<HashMap<(String, String), DateTime<Utc>>>,
    }

    /// A delivery, its status and when it is due (`None`: leased or finished).
    pub type MemDelivery = (Delivery, DeliveryStatus, Option<DateTime<Utc>>);

    impl Mem {
        fn emit(&self, events: &[OutboxEvent]) {
            self.events.lock().unwrap().extend_from_slice(events);
        }
    }

    fn page<T: Clone>(all: Vec<T>, q: &ListQuery) -> Page<T> {
        let total = all.len() as u64;
        let items = all.into_iter().skip(q.page.offset() as usize).take(q.page.page_size as usize).collect();
        Page { items, total, request: q.page }
    }

    #[async_trait]
    impl CompanyRepository for Mem {
        async fn insert(&self, c: &Company, events: &[OutboxEvent]) -> Result<(), RepositoryError> {
            self.emit(events);
            self.companies.lock().unwrap().push(c.clone());
            Ok(())
        }
        async fn get(&self, id: CompanyId) -> Result<Option<Company>, RepositoryError> {
            Ok(self.companies.lock().unwrap().iter().find(|c| c.id == id).cloned())
        }
        async fn update(&self, c: &Company) -> Result<(), RepositoryError> {
            let mut all = self.companies.lock().unwrap();
            let slot = all.iter_mut().find(|x| x.id == c.id).ok_or_else(|| RepositoryError::NotFound("company".into()))?;
            *slot = c.clone();
            Ok(())
        }
        async fn delete(&self, id: CompanyId, events: &[OutboxEvent]) -> Result<bool, RepositoryError> {
            let mut all = self.companies.lock().unwrap();
            let before = all.len();
            all.retain(|c| c.id != id);
            self.connections.lock().unwrap().retain(|c| c.company_id != id);
            if all.len() != before {
                self.emit(events);
            }
            Ok(all.len() != before)
        }
        async fn list(&self, q: &ListQuery) -> Result<Page<Company>, RepositoryError> {
            Ok(page(self.companies.lock().unwrap().clone(), q))
        }
    }

    #[async_trait]
    impl ConnectionRepository for Mem {
        async fn insert(&self, c: &Connection, events: &[OutboxEvent]) -> Result<(), RepositoryError> {
            self.emit(events);
            self.connections.lock().unwrap().push(c.clone());
            Ok(())
        }
        async fn get(&self, company: CompanyId, id: ConnectionId) -> Result<Option<Connection>, RepositoryError> {
            Ok(self.connections.lock().unwrap().iter().find(|c| c.id == id && c.company_id == company).cloned())
        }
        async fn find(&self, id: ConnectionId) -> Result<Option<Connection>, RepositoryError> {
            Ok(self.connections.lock().unwrap().iter().find(|c| c.id == id).cloned())
        }
        async fn update(&self, c: &Connection, events: &[OutboxEvent]) -> Result<(), RepositoryError> {
            let mut all = self.connections.lock().unwrap();
            let slot = all.iter_mut().find(|x| x.id == c.id).ok_or_else(|| RepositoryError::NotFound("connection".into()))?;
            *slot = c.clone();
            self.emit(events);
            Ok(())
        }
        async fn delete(&self, company: CompanyId, id: ConnectionId, events: &[OutboxEvent]) -> Result<bool, RepositoryError> {
            let mut all = self.connections.lock().unwrap();
            let before = all.len();
            all.retain(|c| !(c.id == id && c.company_id == company));
            if all.len() != before {
                self.emit(events);
            }
            Ok(all.len() != before)
        }
        async fn list(&self, company: CompanyId, q: &ListQuery) -> Result<Page<Connection>, RepositoryError> {
            Ok(page(self.connections.lock().unwrap().iter().filter(|c| c.company_id == company).cloned().collect(), q))
        }
        async fn set_status_if(
            &self,
            id: ConnectionId,
            from: crate::model::connection::ConnectionStatus,
            to: crate::model::connection::ConnectionStatus,
            events: &[OutboxEvent],
        ) -> Result<bool, RepositoryError> {
            let mut all = self.connections.lock().unwrap();
            match all.iter_mut().find(|c| c.id == id && c.status == from) {
                Some(c) => {
                    c.status = to;
                    self.emit(events);
                    Ok(true)
                }
                None => Ok(false),
            }
        }
        async fn list_linked(&self) -> Result<Vec<Connection>, RepositoryError> {
            Ok(self
                .connections
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.status == crate::model::connection::ConnectionStatus::Linked)
                .cloned()
                .collect())
        }
        async fn set_last_sync(&self, id: ConnectionId, at: DateTime<Utc>) -> Result<(), RepositoryError> {
            if let Some(c) = self.connections.lock().unwrap().iter_mut().find(|c| c.id == id) {
                c.last_sync = Some(at);
            }
            Ok(())
        }
        async fn find_by_source_account(&self, key: &str, account: &str) -> Result<Vec<Connection>, RepositoryError> {
            Ok(self
                .connections
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.platform_key.as_str() == key && c.source_account.as_deref() == Some(account))
                .cloned()
                .collect())
        }
        async fn save_linked(
            &self,
            c: &Connection,
            queued: &[crate::model::pull::PullOperation],
            events: &[OutboxEvent],
        ) -> Result<(), RepositoryError> {
            ConnectionRepository::update(self, c, events).await?;
            self.pulls.lock().unwrap().extend_from_slice(queued);
            Ok(())
        }
        async fn list_for_companies(&self, companies: &[CompanyId]) -> Result<Vec<Connection>, RepositoryError> {
            Ok(self.connections.lock().unwrap().iter().filter(|c| companies.contains(&c.company_id)).cloned().collect())
        }
    }

    #[async_trait]
    impl IntegrationRepository for Mem {
        async fn get(&self, key: &str) -> Result<Option<IntegrationSettings>, RepositoryError> {
            Ok(self.integrations.lock().unwrap().get(key).cloned())
        }
        async fn put(&self, key: &str, s: &IntegrationSettings) -> Result<(), RepositoryError> {
            let mut all = self.integrations.lock().unwrap();
            let kept = all.get(key).and_then(|old| old.key_refused.clone());
            all.insert(key.to_owned(), IntegrationSettings { key_refused: kept, ..s.clone() });
            Ok(())
        }
        async fn set_key_refused(&self, key: &str, refused: Option<crate::model::integration::KeyRefused>) -> Result<(), RepositoryError> {
            if let Some(s) = self.integrations.lock().unwrap().get_mut(key) {
                s.key_refused = refused;
            }
            Ok(())
        }
        async fn event_seen(&self, key: &str, id: &str) -> Result<bool, RepositoryError> {
            Ok(self.source_events.lock().unwrap().contains_key(&(key.to_owned(), id.to_owned())))
        }
        async fn remember_event(
            &self,
            key: &str,
            id: &str,
            now: DateTime<Utc>,
            forget_before: DateTime<Utc>,
        ) -> Result<(), RepositoryError> {
            let mut seen = self.source_events.lock().unwrap();
            seen.retain(|_, at| *at >= forget_before);
            seen.entry((key.to_owned(), id.to_owned())).or_insert(now);
            Ok(())
        }
    }

    #[async_trait]
    impl ApiKeyRepository for Mem {
        async fn insert_limited(&self, key: &ApiKey, max: usize) -> Result<(), RepositoryError> {
            let mut all = self.keys.lock().unwrap();
            if all.len() >= max {
                return Err(RepositoryError::Conflict("limit".into()));
            }
            all.push(key.clone());
            Ok(())
        }
        async fn list(&self) -> Result<Vec<ApiKey>, RepositoryError> {
            Ok(self.keys.lock().unwrap().clone())
        }
        async fn find_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, RepositoryError> {
            Ok(self.keys.lock().unwrap().iter().find(|k| k.hash == hash).cloned())
        }
        async fn delete(&self, id: ApiKeyId, allow_last: bool) -> Result<ApiKeyDeletion, RepositoryError> {
            let mut all = self.keys.lock().unwrap();
            if !all.iter().any(|k| k.id == id) {
                return Ok(ApiKeyDeletion::NotFound);
            }
            if all.len() == 1 && !allow_last {
                return Ok(ApiKeyDeletion::LastKey);
            }
            all.retain(|k| k.id != id);
            Ok(ApiKeyDeletion::Deleted)
        }
    }

    #[async_trait]
    impl ProfileRepository for Mem {
        async fn get_profile(&self) -> Result<Option<Profile>, RepositoryError> {
            Ok(self.profile.lock().unwrap().clone())
        }
        async fn put_profile(&self, p: &Profile) -> Result<(), RepositoryError> {
            *self.profile.lock().unwrap() = Some(p.clone());
            Ok(())
        }
        async fn client_id(&self) -> Result<uuid::Uuid, RepositoryError> {
            Ok(uuid::Uuid::nil())
        }
        async fn get_sync_settings(&self) -> Result<Option<Vec<SyncSetting>>, RepositoryError> {
            Ok(None)
        }
        async fn put_sync_settings(&self, _: &[SyncSetting]) -> Result<(), RepositoryError> {
            Ok(())
        }
        async fn get_company_sync_settings(&self, _: CompanyId) -> Result<Option<Vec<SyncSetting>>, RepositoryError> {
            Ok(None)
        }
        async fn put_company_sync_settings(&self, _: CompanyId, _: Option<Vec<SyncSetting>>) -> Result<(), RepositoryError> {
            Ok(())
        }
    }

    #[async_trait]
    impl SecretRepository for Mem {
        async fn list_sealed(&self) -> Result<Vec<(SecretSlot, SealedSecret)>, RepositoryError> {
            Ok(vec![])
        }
        async fn replace_sealed(&self, _: &[(SecretSlot, SealedSecret)]) -> Result<(), RepositoryError> {
            Ok(())
        }
    }

    #[async_trait]
    impl OAuthStateRepository for Mem {
        async fn insert(&self, s: &crate::model::oauth_state::OAuthState) -> Result<(), RepositoryError> {
            self.states.lock().unwrap().push(s.clone());
            Ok(())
        }
        async fn consume(&self, nonce: &str) -> Result<Option<crate::model::oauth_state::OAuthState>, RepositoryError> {
            let mut all = self.states.lock().unwrap();
            let pos = all.iter().position(|s| s.nonce == nonce);
            Ok(pos.map(|i| all.remove(i)))
        }
        async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, RepositoryError> {
            let mut all = self.states.lock().unwrap();
            let before = all.len();
            all.retain(|s| s.expires >= now);
            Ok((before - all.len()) as u64)
        }
    }

    #[async_trait]
    impl PullOperationRepository for Mem {
        async fn insert(&self, ops: &[crate::model::pull::PullOperation]) -> Result<(), RepositoryError> {
            self.pulls.lock().unwrap().extend_from_slice(ops);
            Ok(())
        }
        async fn get(
            &self,
            company: CompanyId,
            id: crate::ids::PullOperationId,
        ) -> Result<Option<crate::model::pull::PullOperation>, RepositoryError> {
            Ok(self.pulls.lock().unwrap().iter().find(|p| p.id == id && p.company_id == company).cloned())
        }
        async fn list(&self, company: CompanyId, q: &ListQuery) -> Result<Page<crate::model::pull::PullOperation>, RepositoryError> {
            // Filters and orders through the in-memory evaluator, as the SQL adapters do in SQL.
            let doc = |p: &crate::model::pull::PullOperation| {
                serde_json::json!({"id": p.id.to_string(), "connectionId": p.connection_id.to_string(), "dataType": p.data_type.key(),
                    "status": p.status.as_str(), "requested": p.requested.to_rfc3339()})
            };
            let mut all: Vec<_> = self
                .pulls
                .lock()
                .unwrap()
                .iter()
                .filter(|p| p.company_id == company && q.filter.as_ref().is_none_or(|f| crate::query::eval::matches(f, &doc(p))))
                .cloned()
                .collect();
            if q.order_by.as_ref().is_some_and(|o| o.descending) {
                all.sort_by_key(|p| std::cmp::Reverse(p.requested));
            }
            Ok(page(all, q))
        }
        async fn update(&self, op: &crate::model::pull::PullOperation, events: &[OutboxEvent]) -> Result<(), RepositoryError> {
            let mut all = self.pulls.lock().unwrap();
            let slot = all.iter_mut().find(|p| p.id == op.id).ok_or_else(|| RepositoryError::NotFound("pull".into()))?;
            *slot = op.clone();
            self.emit(events);
            Ok(())
        }
        async fn unfinished_for_connection(&self, c: ConnectionId) -> Result<Vec<crate::model::pull::PullOperation>, RepositoryError> {
            use crate::model::pull::DatasetStatus::{Fetching, Queued};
            Ok(self
                .pulls
                .lock()
                .unwrap()
                .iter()
                .filter(|p| p.connection_id == c && matches!(p.status, Queued | Fetching))
                .cloned()
                .collect())
        }
        async fn latest(
            &self,
            c: ConnectionId,
            data_type: crate::model::data_type::DataType,
        ) -> Result<Option<crate::model::pull::PullOperation>, RepositoryError> {
            Ok(self
                .pulls
                .lock()
                .unwrap()
                .iter()
                .filter(|p| p.connection_id == c && p.data_type == data_type)
                .max_by(|a, b| a.requested.cmp(&b.requested).then_with(|| a.id.to_string().cmp(&b.id.to_string())))
                .cloned())
        }
        async fn data_status(
            &self,
            company: CompanyId,
        ) -> Result<Vec<(crate::model::pull::PullOperation, Option<crate::model::pull::PullOperation>)>, RepositoryError> {
            let all: Vec<_> = self.pulls.lock().unwrap().iter().filter(|p| p.company_id == company).cloned().collect();
            let mut types: Vec<_> = all.iter().map(|p| p.data_type).collect();
            types.sort();
            types.dedup();
            Ok(types
                .into_iter()
                .map(|t| {
                    let latest = all.iter().rev().find(|p| p.data_type == t).cloned().unwrap();
                    let ok = all.iter().rev().find(|p| p.data_type == t && p.status.is_completed()).cloned();
                    (latest, ok)
                })
                .collect())
        }
    }

    #[async_trait]
    impl SyncLeaseRepository for Mem {
        async fn lease_next(
            &self,
            worker: &str,
            now: DateTime<Utc>,
            lease_for: std::time::Duration,
        ) -> Result<Option<ConnectionId>, RepositoryError> {
            use crate::model::pull::DatasetStatus::{Fetching, Queued};
            let pulls = self.pulls.lock().unwrap();
            let mut leases = self.leases.lock().unwrap();
            for p in pulls.iter().filter(|p| matches!(p.status, Queued | Fetching)) {
                let free = leases.get(&p.connection_id).is_none_or(|(_, exp)| *exp < now);
                if free {
                    leases.insert(p.connection_id, (worker.to_owned(), now + chrono::Duration::from_std(lease_for).unwrap()));
                    return Ok(Some(p.connection_id));
                }
            }
            Ok(None)
        }
        async fn renew(
            &self,
            c: ConnectionId,
            worker: &str,
            now: DateTime<Utc>,
            lease_for: std::time::Duration,
        ) -> Result<bool, RepositoryError> {
            let mut leases = self.leases.lock().unwrap();
            match leases.get_mut(&c) {
                Some((owner, exp)) if owner == worker => {
                    *exp = now + chrono::Duration::from_std(lease_for).unwrap();
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
        async fn release(&self, c: ConnectionId, worker: &str) -> Result<(), RepositoryError> {
            let mut leases = self.leases.lock().unwrap();
            if leases.get(&c).is_some_and(|(o, _)| o == worker) {
                leases.remove(&c);
            }
            Ok(())
        }
    }

    #[async_trait]
    impl RecordRepository for Mem {
        async fn write_sync(
            &self,
            company: CompanyId,
            connection: ConnectionId,
            data_type: crate::model::data_type::DataType,
            w: &crate::model::record::SyncWrite,
            now: DateTime<Utc>,
        ) -> Result<u64, RepositoryError> {
            let slow = *self.slow_writes.lock().unwrap();
            let _serial = match slow {
                Some(d) => {
                    let guard = self.serial.lock().await;
                    tokio::time::sleep(d).await;
                    Some(guard)
                }
                None => None,
            };
            if *self.broken.lock().unwrap() {
                return Err(RepositoryError::backend("disk I/O error"));
            }
            if let Some((id, refused)) = self.poison.lock().unwrap().as_mut()
                && w.records.iter().any(|r| r.id == *id)
            {
                *refused += 1;
                return Err(RepositoryError::backend(format!("invalid byte sequence in record {id}")));
            }
            // As the stores do: all or nothing, fenced by the lease and the connection's status.
            let linked = {
                let connections = self.connections.lock().unwrap();
                let Some(c) = connections.iter().find(|c| c.id == connection && c.company_id == company) else {
                    return Err(RepositoryError::NotFound(format!("connection {connection}")));
                };
                c.status == crate::model::connection::ConnectionStatus::Linked
            };
            if let Some(worker) = &w.fence {
                let holds = self.leases.lock().unwrap().get(&connection).is_some_and(|(owner, _)| owner == worker);
                if !holds || !linked {
                    *self.refused.lock().unwrap() += 1;
                    return Err(RepositoryError::Fenced(format!("{worker} does not hold connection {connection}")));
                }
            }
            if w.reset {
                self.partitions.lock().unwrap().retain(|(c, t, _), _| (*c, *t) != (connection, data_type));
                self.staged.lock().unwrap().retain(|(c, t, _, _), _| (*c, *t) != (connection, data_type));
            }
            let mut all = self.records.lock().unwrap();
            let mut changed = 0;
            for r in &w.records {
                let key = (connection, data_type, r.id.clone());
                if all.get(&key).is_none_or(|row| row.record != *r) {
                    changed += 1;
                    all.insert(key, crate::model::record::RecordRow { record: r.clone(), modified: now });
                }
            }
            for item in &w.staged {
                self.staged.lock().unwrap().insert((connection, data_type, item.key.clone(), item.id.clone()), item.value.clone());
            }
            if let Some(cp) = &w.checkpoint {
                self.checkpoints.lock().unwrap().insert((connection, data_type), cp.clone());
            }
            for part in &w.partitions {
                self.partitions.lock().unwrap().insert((connection, data_type, part.id), part.clone());
            }
            if let Some((op, events)) = &w.pull {
                let mut pulls = self.pulls.lock().unwrap();
                let slot = pulls.iter_mut().find(|p| p.id == op.id).ok_or_else(|| RepositoryError::NotFound("pull".into()))?;
                *slot = op.clone();
                self.emit(events);
            }
            if changed > 0 {
                *self.versions.lock().unwrap().entry((connection, data_type)).or_default() += 1;
            }
            Ok(changed)
        }
        async fn checkpoint(
            &self,
            c: ConnectionId,
            t: crate::model::data_type::DataType,
        ) -> Result<Option<crate::model::record::Checkpoint>, RepositoryError> {
            Ok(self.checkpoints.lock().unwrap().get(&(c, t)).cloned())
        }
        async fn partitions(
            &self,
            c: ConnectionId,
            t: crate::model::data_type::DataType,
        ) -> Result<Vec<crate::model::record::PartitionState>, RepositoryError> {
            Ok(self.partitions.lock().unwrap().iter().filter(|((pc, pt, _), _)| (*pc, *pt) == (c, t)).map(|(_, p)| p.clone()).collect())
        }
        async fn staged(
            &self,
            c: ConnectionId,
            t: crate::model::data_type::DataType,
            keys: &[String],
        ) -> Result<Vec<crate::model::record::StagedItem>, RepositoryError> {
            Ok(self
                .staged
                .lock()
                .unwrap()
                .iter()
                .filter(|((sc, st, key, _), _)| (*sc, *st) == (c, t) && keys.contains(key))
                .map(|((_, _, key, id), value)| crate::model::record::StagedItem { key: key.clone(), id: id.clone(), value: value.clone() })
                .collect())
        }
        async fn count(
            &self,
            c: ConnectionId,
            t: crate::model::data_type::DataType,
            include_deleted: bool,
        ) -> Result<u64, RepositoryError> {
            Ok(self
                .records
                .lock()
                .unwrap()
                .iter()
                .filter(|((rc, rt, _), row)| *rc == c && *rt == t && (include_deleted || !row.record.deleted))
                .count() as u64)
        }
        async fn get(
            &self,
            c: ConnectionId,
            t: crate::model::data_type::DataType,
            id: &str,
        ) -> Result<Option<crate::model::record::RecordRow>, RepositoryError> {
            Ok(self.records.lock().unwrap().get(&(c, t, id.to_owned())).cloned())
        }
        async fn list_page(
            &self,
            c: ConnectionId,
            t: crate::model::data_type::DataType,
            q: &ListQuery,
        ) -> Result<Vec<crate::model::record::ListedRecord>, RepositoryError> {
            // Created then id (ascending, or descending for `-createdDate`); other orders are not modelled.
            let all = self.records.lock().unwrap();
            let mut rows: Vec<_> = all
                .iter()
                .filter(|((rc, rt, _), r)| *rc == c && *rt == t && !r.record.deleted)
                .filter(|(_, r)| q.filter.as_ref().is_none_or(|f| crate::query::eval::matches(f, &r.record.document)))
                .map(|(_, r)| r.clone())
                .collect();
            let key = |r: &crate::model::record::RecordRow| (r.record.created, r.record.id.clone());
            rows.sort_by_key(key);
            if q.descending() {
                rows.reverse();
            }
            let skip = match &q.seek {
                Some(s) => rows.iter().position(|r| key(r) == (s.created, s.id.clone())).map_or(rows.len(), |i| i + 1),
                None => q.page.offset() as usize,
            };
            Ok(rows
                .into_iter()
                .skip(skip)
                .take(q.page.page_size as usize)
                .map(|r| crate::model::record::ListedRecord {
                    document: serde_json::to_string(&r.record.document).expect("a JSON value serialises"),
                    id: r.record.id,
                    created: r.record.created,
                    modified: r.modified,
                })
                .collect())
        }
        async fn count_matching(
            &self,
            c: ConnectionId,
            t: crate::model::data_type::DataType,
            q: &ListQuery,
        ) -> Result<u64, RepositoryError> {
            let filter = q.filter.as_ref();
            *self.count_queries.lock().unwrap() += 1;
            let all = self.records.lock().unwrap();
            Ok(all
                .iter()
                .filter(|((rc, rt, _), r)| *rc == c && *rt == t && !r.record.deleted)
                .filter(|(_, r)| filter.is_none_or(|f| crate::query::eval::matches(f, &r.record.document)))
                .count() as u64)
        }
        async fn read_state(
            &self,
            company: CompanyId,
            c: ConnectionId,
            t: crate::model::data_type::DataType,
        ) -> Result<ReadState, RepositoryError> {
            let version = self.version(c, t).await?;
            let pulls = self.pulls.lock().unwrap();
            let ops = || pulls.iter().filter(|p| p.connection_id == c && p.data_type == t);
            Ok(ReadState {
                company: self.companies.lock().unwrap().iter().any(|x| x.id == company),
                connection: self.connections.lock().unwrap().iter().find(|x| x.id == c && x.company_id == company).cloned(),
                requested: ops().next().is_some(),
                completed: ops().any(|p| p.status == crate::model::pull::DatasetStatus::Complete),
                version,
            })
        }
        async fn version(&self, c: ConnectionId, t: crate::model::data_type::DataType) -> Result<u64, RepositoryError> {
            Ok(self.versions.lock().unwrap().get(&(c, t)).copied().unwrap_or(0))
        }
        async fn scan(
            &self,
            c: ConnectionId,
            t: crate::model::data_type::DataType,
            after: Option<String>,
            limit: u32,
        ) -> Result<Vec<crate::model::record::RecordRow>, RepositoryError> {
            let all = self.records.lock().unwrap();
            Ok(all
                .iter()
                .filter(|((rc, rt, id), _)| *rc == c && *rt == t && after.as_ref().is_none_or(|a| id > a))
                .map(|(_, r)| r.clone())
                .take(limit as usize)
                .collect())
        }
    }

    /// A reversible stand-in cipher (not encryption; tests only check plumbing).
    pub struct Rot;
    impl SecretCipher for Rot {
        fn current_key_id(&self) -> String {
            "test".into()
        }
        fn seal(&self, p: &SecretString) -> Result<SealedSecret, CipherError> {
            Ok(SealedSecret { key_id: "test".into(), ciphertext: p.expose_secret().chars().rev().collect() })
        }
        fn open(&self, s: &SealedSecret) -> Result<SecretString, CipherError> {
            Ok(SecretString::from(s.ciphertext.chars().rev().collect::<String>()))
        }
    }

    pub struct Fixed(pub Mutex<DateTime<Utc>>);
    impl Clock for Fixed {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap()
        }
    }

    pub fn platform() -> Platform {
        platform_with(Arc::new(Mem::default()), Arc::new(Fixed(Mutex::new("2026-01-01T00:00:00Z".parse().unwrap()))))
    }

    #[async_trait]
    impl WebhookRepository for Mem {
        async fn insert_consumer_limited(&self, c: &WebhookConsumer, max: usize) -> Result<(), RepositoryError> {
            let mut all = self.consumers.lock().unwrap();
            if all.len() >= max {
                return Err(RepositoryError::Conflict("too many consumers".into()));
            }
            all.push(c.clone());
            Ok(())
        }
        async fn list_consumers(&self) -> Result<Vec<WebhookConsumer>, RepositoryError> {
            Ok(self.consumers.lock().unwrap().clone())
        }
        async fn get_consumer(&self, id: WebhookConsumerId) -> Result<Option<WebhookConsumer>, RepositoryError> {
            Ok(self.consumers.lock().unwrap().iter().find(|c| c.id == id).cloned())
        }
        async fn delete_consumer(&self, id: WebhookConsumerId) -> Result<bool, RepositoryError> {
            let mut all = self.consumers.lock().unwrap();
            let before = all.len();
            all.retain(|c| c.id != id);
            self.deliveries.lock().unwrap().retain(|d| d.0.consumer_id != id);
            Ok(all.len() != before)
        }
        async fn set_consumer_disabled(
            &self,
            id: WebhookConsumerId,
            disabled: bool,
            reason: Option<String>,
        ) -> Result<bool, RepositoryError> {
            let mut all = self.consumers.lock().unwrap();
            let Some(c) = all.iter_mut().find(|c| c.id == id) else { return Ok(false) };
            c.disabled = disabled;
            c.disabled_reason = reason;
            Ok(true)
        }
        async fn fan_out(&self, now: DateTime<Utc>, limit: u32) -> Result<u64, RepositoryError> {
            let events: Vec<_> = self.events.lock().unwrap().drain(..).collect();
            let n = events.len().min(limit as usize);
            let consumers = self.consumers.lock().unwrap().clone();
            let mut out = self.deliveries.lock().unwrap();
            for e in events.iter().take(n) {
                for c in consumers.iter().filter(|c| c.accepts(e.event_type, &e.company_tags)) {
                    let d = Delivery {
                        id: uuid::Uuid::new_v4(),
                        event_id: e.id,
                        event_type: e.event_type,
                        consumer_id: c.id,
                        url: c.url.clone(),
                        secret: c.secret.clone(),
                        body: e.body.clone(),
                        attempts: 0,
                        consumer_failing_since: None,
                        final_attempt: false,
                        created: now,
                    };
                    out.push((d, DeliveryStatus::Pending, Some(now)));
                }
            }
            self.events.lock().unwrap().extend(events.into_iter().skip(n));
            Ok(n as u64)
        }
        async fn lease_deliveries(
            &self,
            _worker: &str,
            now: DateTime<Utc>,
            _lease_for: std::time::Duration,
            limit: u32,
        ) -> Result<Vec<Delivery>, RepositoryError> {
            let consumers = self.consumers.lock().unwrap().clone();
            let mut out = Vec::new();
            for (d, status, due) in self.deliveries.lock().unwrap().iter_mut() {
                let Some(c) = consumers.iter().find(|c| c.id == d.consumer_id) else { continue };
                if *status == DeliveryStatus::Pending && due.is_some_and(|t| t <= now) && !c.disabled && out.len() < limit as usize {
                    *due = None;
                    out.push(Delivery { consumer_failing_since: c.failing_since, ..d.clone() });
                }
            }
            Ok(out)
        }
        async fn record_attempt(&self, _worker: &str, a: &Attempt, after: AfterAttempt) -> Result<bool, RepositoryError> {
            self.attempts.lock().unwrap().push(a.clone());
            if let Some(c) = self.consumers.lock().unwrap().iter_mut().find(|c| c.id == a.consumer_id) {
                c.failing_since = if a.ok { None } else { c.failing_since.or(Some(a.at)) };
            }
            let mut all = self.deliveries.lock().unwrap();
            let Some((d, status, due)) = all.iter_mut().find(|x| x.0.id == a.delivery_id) else { return Ok(false) };
            d.attempts = a.number;
            (*status, *due) = match after {
                AfterAttempt::Delivered => (DeliveryStatus::Delivered, None),
                AfterAttempt::RetryAt(t) => (DeliveryStatus::Pending, Some(t)),
                AfterAttempt::GiveUp => (DeliveryStatus::Failed, None),
            };
            Ok(true)
        }
        async fn list_attempts(&self, consumer: WebhookConsumerId, limit: u32) -> Result<Vec<Attempt>, RepositoryError> {
            Ok(self.attempts.lock().unwrap().iter().rev().filter(|a| a.consumer_id == consumer).take(limit as usize).cloned().collect())
        }
        async fn delivery_counts(&self, consumer: WebhookConsumerId) -> Result<DeliveryCounts, RepositoryError> {
            let mut n = DeliveryCounts::default();
            for (d, s, _) in self.deliveries.lock().unwrap().iter().filter(|d| d.0.consumer_id == consumer) {
                let _ = d;
                match s {
                    DeliveryStatus::Pending => n.pending += 1,
                    DeliveryStatus::Delivered => n.delivered += 1,
                    DeliveryStatus::Failed => n.failed += 1,
                }
            }
            Ok(n)
        }
        async fn list_events(&self, limit: u32) -> Result<Vec<OutboxEvent>, RepositoryError> {
            Ok(self.events.lock().unwrap().iter().take(limit as usize).cloned().collect())
        }
        async fn recent_events(&self, limit: u32) -> Result<Vec<OutboxEvent>, RepositoryError> {
            Ok(self.events.lock().unwrap().iter().rev().take(limit as usize).cloned().collect())
        }
        async fn list_deliveries(
            &self,
            consumer: WebhookConsumerId,
            limit: u32,
        ) -> Result<Vec<crate::model::webhook::DeliverySummary>, RepositoryError> {
            Ok(self
                .deliveries
                .lock()
                .unwrap()
                .iter()
                .rev()
                .filter(|d| d.0.consumer_id == consumer)
                .take(limit as usize)
                .map(|(d, status, due)| crate::model::webhook::DeliverySummary {
                    id: d.id,
                    event_id: d.event_id,
                    event_type: d.event_type,
                    status: *status,
                    attempts: d.attempts,
                    created: d.created,
                    next_attempt: *due,
                })
                .collect())
        }
        async fn redeliver(
            &self,
            consumer: WebhookConsumerId,
            delivery: uuid::Uuid,
            now: DateTime<Utc>,
        ) -> Result<Redelivery, RepositoryError> {
            let mut all = self.deliveries.lock().unwrap();
            let Some((d, status, due)) = all.iter_mut().find(|(d, _, _)| d.id == delivery && d.consumer_id == consumer) else {
                return Ok(Redelivery::NotFound);
            };
            if *status == DeliveryStatus::Pending {
                return Ok(Redelivery::StillPending);
            }
            (*status, *due) = (DeliveryStatus::Pending, Some(now));
            d.final_attempt = true;
            Ok(Redelivery::Queued)
        }
    }

    #[async_trait]
    impl ConsoleRepository for Mem {
        async fn insert_session(&self, s: &crate::model::console::ConsoleSession) -> Result<(), RepositoryError> {
            if !self.keys.lock().unwrap().iter().any(|k| k.id == s.api_key_id) {
                return Err(RepositoryError::NotFound("API key".into()));
            }
            self.sessions.lock().unwrap().push(s.clone());
            Ok(())
        }
        async fn find_session(&self, hash: &str) -> Result<Option<crate::model::console::ConsoleSession>, RepositoryError> {
            let keys = self.keys.lock().unwrap();
            // As the databases' foreign key does: a session goes with its key.
            Ok(self.sessions.lock().unwrap().iter().find(|s| s.hash == hash && keys.iter().any(|k| k.id == s.api_key_id)).cloned())
        }
        async fn touch_session(&self, hash: &str, at: DateTime<Utc>) -> Result<(), RepositoryError> {
            for s in self.sessions.lock().unwrap().iter_mut().filter(|s| s.hash == hash) {
                s.last_seen = at;
            }
            Ok(())
        }
        async fn delete_sessions(&self, hash: Option<String>, idle_before: DateTime<Utc>) -> Result<(), RepositoryError> {
            self.sessions.lock().unwrap().retain(|s| Some(&s.hash) != hash.as_ref() && s.last_seen >= idle_before);
            Ok(())
        }
        async fn overview(&self, _since: DateTime<Utc>) -> Result<crate::model::console::Overview, RepositoryError> {
            // The overview's SQL is checked by the storage contract suite, not here.
            Err(RepositoryError::backend("the in-memory fake has no overview"))
        }
        async fn backlog(&self) -> Result<crate::model::console::Backlog, RepositoryError> {
            // As the overview: the contract suite checks the SQL.
            Err(RepositoryError::backend("the in-memory fake has no backlog"))
        }
    }

    pub fn platform_with(mem: Arc<Mem>, clock: Arc<Fixed>) -> Platform {
        let repos = Repositories {
            companies: mem.clone(),
            connections: mem.clone(),
            integrations: mem.clone(),
            api_keys: mem.clone(),
            profile: mem.clone(),
            secrets: mem.clone(),
            oauth_states: mem.clone(),
            pull_operations: mem.clone(),
            sync_leases: mem.clone(),
            records: mem.clone(),
            webhooks: mem.clone(),
            console: mem,
        };
        Platform::new(repos, Arc::new(Rot), clock)
    }
}
