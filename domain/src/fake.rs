//! An in-memory implementation of every repository port ([`Mem`]), for tests: the domain's own
//! service tests and embedders' (feature `fake`). The storage contract suite
//! (`tests/tests/storage_contract.rs`) runs every behaviour against it as against SQLite and
//! PostgreSQL, so a service test cannot pass on behaviour no real store has. Beyond the ports it
//! can inject faults: slow, broken or fenced writes and a poison record.
#![allow(missing_docs)]

use crate::error::RepositoryError;
use crate::ids::{ApiKeyId, CompanyId, ConnectionId, WebhookConsumerId};
use crate::model::api_key::ApiKey;
use crate::model::company::Company;
use crate::model::connection::Connection;
use crate::model::integration::IntegrationSettings;
use crate::model::profile::Profile;
use crate::model::pull::PullOperation;
use crate::model::record::StoredRecord;
use crate::model::secret::SealedSecret;
use crate::model::sync_settings::SyncSetting;
use crate::model::webhook::{AfterAttempt, Attempt, Delivery, DeliveryStatus, OutboxEvent, WebhookConsumer};
use crate::paging::{ListQuery, Page};
use crate::ports::*;
use crate::query::FieldType;
use crate::service::Platform;
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
    sync_settings: Mutex<Option<Vec<SyncSetting>>>,
    company_settings: Mutex<HashMap<CompanyId, Vec<SyncSetting>>>,
    client_id: Mutex<Option<uuid::Uuid>>,
    pub pulls: Mutex<Vec<crate::model::pull::PullOperation>>,
    profile: Mutex<Option<Profile>>,
    pub leases: Mutex<HashMap<ConnectionId, (String, DateTime<Utc>)>>,
    records: Mutex<std::collections::BTreeMap<(ConnectionId, crate::model::data_type::DataType, String), crate::model::record::RecordRow>>,
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
    /// Outbox events fanned out.
    dispatched: Mutex<std::collections::HashSet<uuid::Uuid>>,
    /// Leased deliveries: holder and lease end.
    delivery_leases: Mutex<HashMap<uuid::Uuid, (String, DateTime<Utc>)>>,
}

/// A delivery, its status and when it is due (`None`: leased or finished).
pub type MemDelivery = (Delivery, DeliveryStatus, Option<DateTime<Utc>>);

impl Mem {
    /// Writes events to the outbox, or fails (writing none) when an id is already there, as the
    /// stores' unique key does; callers emit before they change anything, so a failed emit leaves
    /// the change unmade, as a rolled-back transaction does.
    fn emit(&self, events: &[OutboxEvent]) -> Result<(), RepositoryError> {
        let mut outbox = self.events.lock().unwrap();
        let mut ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id).collect();
        ids.sort();
        ids.dedup();
        if ids.len() != events.len() || outbox.iter().any(|e| ids.contains(&e.id)) {
            return Err(RepositoryError::backend("duplicate outbox event id"));
        }
        outbox.extend_from_slice(events);
        Ok(())
    }
}

fn page<T: Clone>(all: Vec<T>, q: &ListQuery) -> Page<T> {
    let total = all.len() as u64;
    let items = all.into_iter().skip(q.page.offset() as usize).take(q.page.page_size as usize).collect();
    Page { items, total, request: q.page }
}

/// The instant as the stores write it in JSON views (microseconds, UTC).
fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The value of `field` (a dotted path) in a JSON view, as the stores compare it for `ty`.
fn field_value<'a>(doc: &'a serde_json::Value, field: &str) -> Option<&'a serde_json::Value> {
    field.split('.').try_fold(doc, |v, seg| v.get(seg)).filter(|v| !v.is_null())
}

/// Compares two values of a field of type `ty` as the SQL stores order them: text by code point,
/// numbers by value, dates as instants; a missing value (or one of another type) sorts as NULL.
fn compare_values(a: Option<&serde_json::Value>, b: Option<&serde_json::Value>, ty: FieldType) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    #[derive(PartialEq, PartialOrd)]
    enum Key {
        Text(String),
        Number(rust_decimal::Decimal),
        Date(DateTime<Utc>),
        Bool(bool),
    }
    let key = |v: Option<&serde_json::Value>| -> Option<Key> {
        let v = v?;
        match ty {
            FieldType::String | FieldType::Enum(_) => v.as_str().map(|s| Key::Text(s.to_owned())),
            FieldType::Number => match v {
                serde_json::Value::Number(n) => n.to_string().parse().ok().map(Key::Number),
                _ => None,
            },
            FieldType::Date => v.as_str().and_then(crate::query::typed::parse_instant).map(Key::Date),
            FieldType::Bool => v.as_bool().map(Key::Bool),
        }
    };
    match (key(a), key(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
    }
}

/// Filters `items` with `q.filter` over their JSON views and pages them in `q.order_by` (NULLs
/// first ascending and last descending, the id as tie-break in the same direction) or in the
/// default `order`, as the SQL stores do.
fn list_by<T: Clone>(
    items: Vec<T>,
    q: &ListQuery,
    view: impl Fn(&T) -> serde_json::Value,
    id: impl Fn(&T) -> String,
    order: impl Fn(&T, &T) -> std::cmp::Ordering,
) -> Page<T> {
    let mut rows: Vec<(serde_json::Value, T)> = items
        .into_iter()
        .map(|t| (view(&t), t))
        .filter(|(doc, _)| q.filter.as_ref().is_none_or(|f| crate::query::eval::matches(f, doc)))
        .collect();
    match &q.order_by {
        Some(o) => rows.sort_by(|(da, a), (db, b)| {
            let by = compare_values(field_value(da, o.field), field_value(db, o.field), o.ty).then_with(|| id(a).cmp(&id(b)));
            if o.descending { by.reverse() } else { by }
        }),
        None => rows.sort_by(|(_, a), (_, b)| order(a, b)),
    }
    page(rows.into_iter().map(|(_, t)| t).collect(), q)
}

/// A company as its list query reads it.
fn company_view(c: &Company, connections: &[Connection]) -> serde_json::Value {
    serde_json::json!({
        "id": c.id.to_string(), "name": c.name, "description": c.description, "created": iso(c.created),
        "lastSync": c.last_sync.map(iso),
        "dataConnections": connections.iter().filter(|x| x.company_id == c.id).map(connection_view).collect::<Vec<_>>(),
    })
}

/// A connection as its list query reads it.
fn connection_view(c: &Connection) -> serde_json::Value {
    let def = crate::model::integration::definition(c.platform_key.as_str());
    serde_json::json!({
        "id": c.id.to_string(), "integrationKey": c.platform_key.as_str(),
        "integrationId": def.map(|d| d.integration_id.to_string()), "sourceId": def.map(|d| d.source_id.to_string()),
        "platformName": def.map(|d| d.name), "sourceType": def.map(|d| d.source_type()), "status": c.status.as_str(),
        "created": iso(c.created), "lastSync": c.last_sync.map(iso),
    })
}

impl Mem {
    /// Removes what depends on a connection, as the stores' `ON DELETE CASCADE` does.
    fn forget_connection(&self, id: ConnectionId) {
        self.states.lock().unwrap().retain(|s| s.connection_id != id);
        self.pulls.lock().unwrap().retain(|p| p.connection_id != id);
        self.leases.lock().unwrap().remove(&id);
        self.records.lock().unwrap().retain(|(c, _, _), _| *c != id);
        self.checkpoints.lock().unwrap().retain(|(c, _), _| *c != id);
        self.partitions.lock().unwrap().retain(|(c, _, _), _| *c != id);
        self.staged.lock().unwrap().retain(|(c, _, _, _), _| *c != id);
        self.versions.lock().unwrap().retain(|(c, _), _| *c != id);
    }
}

#[async_trait]
impl CompanyRepository for Mem {
    async fn insert(&self, c: &Company, events: &[OutboxEvent]) -> Result<(), RepositoryError> {
        let mut all = self.companies.lock().unwrap();
        if all.iter().any(|x| x.id == c.id) {
            return Err(RepositoryError::Conflict(format!("company {} exists", c.id)));
        }
        self.emit(events)?;
        all.push(c.clone());
        Ok(())
    }
    async fn get(&self, id: CompanyId) -> Result<Option<Company>, RepositoryError> {
        Ok(self.companies.lock().unwrap().iter().find(|c| c.id == id).cloned())
    }
    async fn update(&self, c: &Company) -> Result<(), RepositoryError> {
        let mut all = self.companies.lock().unwrap();
        let slot = all.iter_mut().find(|x| x.id == c.id).ok_or_else(|| RepositoryError::NotFound(format!("company {}", c.id)))?;
        *slot = Company { created: slot.created, ..c.clone() };
        Ok(())
    }
    async fn delete(&self, id: CompanyId, events: &[OutboxEvent]) -> Result<bool, RepositoryError> {
        let mut all = self.companies.lock().unwrap();
        if !all.iter().any(|c| c.id == id) {
            return Ok(false);
        }
        self.emit(events)?;
        all.retain(|c| c.id != id);
        drop(all);
        let gone: Vec<ConnectionId> = {
            let mut connections = self.connections.lock().unwrap();
            let gone = connections.iter().filter(|c| c.company_id == id).map(|c| c.id).collect();
            connections.retain(|c| c.company_id != id);
            gone
        };
        for c in gone {
            self.forget_connection(c);
        }
        self.pulls.lock().unwrap().retain(|p| p.company_id != id);
        self.states.lock().unwrap().retain(|s| s.company_id != id);
        self.company_settings.lock().unwrap().remove(&id);
        Ok(true)
    }
    async fn list(&self, q: &ListQuery) -> Result<Page<Company>, RepositoryError> {
        let connections = self.connections.lock().unwrap().clone();
        let tagged: Vec<Company> = self
            .companies
            .lock()
            .unwrap()
            .iter()
            .filter(|c| {
                q.tags.as_ref().is_none_or(|t| {
                    let doc = serde_json::Value::Object(c.tags.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect());
                    crate::query::eval::matches(t, &doc)
                })
            })
            .cloned()
            .collect();
        Ok(list_by(
            tagged,
            q,
            |c| company_view(c, &connections),
            |c| c.id.to_string(),
            |a, b| a.created.cmp(&b.created).then_with(|| a.id.to_string().cmp(&b.id.to_string())),
        ))
    }
}

#[async_trait]
impl ConnectionRepository for Mem {
    async fn insert(&self, c: &Connection, events: &[OutboxEvent]) -> Result<(), RepositoryError> {
        if !self.companies.lock().unwrap().iter().any(|x| x.id == c.company_id) {
            return Err(RepositoryError::NotFound(format!("company {}", c.company_id)));
        }
        let mut all = self.connections.lock().unwrap();
        if all.iter().any(|x| x.id == c.id) {
            return Err(RepositoryError::Conflict(format!("connection {} exists", c.id)));
        }
        self.emit(events)?;
        all.push(c.clone());
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
        let slot = all
            .iter_mut()
            .find(|x| x.id == c.id && x.company_id == c.company_id)
            .ok_or_else(|| RepositoryError::NotFound(format!("connection {}", c.id)))?;
        self.emit(events)?;
        *slot = Connection { created: slot.created, platform_key: slot.platform_key.clone(), ..c.clone() };
        Ok(())
    }
    async fn delete(&self, company: CompanyId, id: ConnectionId, events: &[OutboxEvent]) -> Result<bool, RepositoryError> {
        let mut all = self.connections.lock().unwrap();
        if !all.iter().any(|c| c.id == id && c.company_id == company) {
            return Ok(false);
        }
        self.emit(events)?;
        all.retain(|c| !(c.id == id && c.company_id == company));
        drop(all);
        self.forget_connection(id);
        Ok(true)
    }
    async fn list(&self, company: CompanyId, q: &ListQuery) -> Result<Page<Connection>, RepositoryError> {
        let mine: Vec<Connection> = self.connections.lock().unwrap().iter().filter(|c| c.company_id == company).cloned().collect();
        Ok(list_by(
            mine,
            q,
            connection_view,
            |c| c.id.to_string(),
            |a, b| a.created.cmp(&b.created).then_with(|| a.id.to_string().cmp(&b.id.to_string())),
        ))
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
                self.emit(events)?;
                c.status = to;
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
            .collect::<Vec<_>>())
        .map(|mut v| {
            v.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.to_string().cmp(&b.id.to_string())));
            v
        })
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
            .collect::<Vec<_>>())
        .map(|mut v| {
            v.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.to_string().cmp(&b.id.to_string())));
            v
        })
    }
    async fn save_linked(
        &self,
        c: &Connection,
        queued: &[crate::model::pull::PullOperation],
        events: &[OutboxEvent],
    ) -> Result<(), RepositoryError> {
        if !self.connections.lock().unwrap().iter().any(|x| x.id == c.id && x.company_id == c.company_id) {
            return Err(RepositoryError::NotFound(format!("connection {}", c.id)));
        }
        // All or nothing: the operations are checked and the events stored before the change.
        self.insert_pulls(queued)?;
        if let Err(e) = ConnectionRepository::update(self, c, events).await {
            let ids: Vec<_> = queued.iter().map(|q| q.id).collect();
            self.pulls.lock().unwrap().retain(|p| !ids.contains(&p.id));
            return Err(e);
        }
        Ok(())
    }
    async fn list_for_companies(&self, companies: &[CompanyId]) -> Result<Vec<Connection>, RepositoryError> {
        let mut out: Vec<Connection> =
            self.connections.lock().unwrap().iter().filter(|c| companies.contains(&c.company_id)).cloned().collect();
        out.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.to_string().cmp(&b.id.to_string())));
        Ok(out)
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
    async fn remember_event(&self, key: &str, id: &str, now: DateTime<Utc>, forget_before: DateTime<Utc>) -> Result<(), RepositoryError> {
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
            return Err(RepositoryError::Conflict(format!("at most {max} API keys")));
        }
        if all.iter().any(|k| k.id == key.id || k.hash == key.hash) {
            return Err(RepositoryError::Conflict(format!("API key {} exists", key.id)));
        }
        all.push(key.clone());
        Ok(())
    }
    async fn list(&self) -> Result<Vec<ApiKey>, RepositoryError> {
        let mut all = self.keys.lock().unwrap().clone();
        all.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.to_string().cmp(&b.id.to_string())));
        Ok(all)
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
        self.sessions.lock().unwrap().retain(|s| s.api_key_id != id);
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
        Ok(*self.client_id.lock().unwrap().get_or_insert_with(uuid::Uuid::new_v4))
    }
    async fn get_sync_settings(&self) -> Result<Option<Vec<SyncSetting>>, RepositoryError> {
        Ok(self.sync_settings.lock().unwrap().clone())
    }
    async fn put_sync_settings(&self, settings: &[SyncSetting]) -> Result<(), RepositoryError> {
        *self.sync_settings.lock().unwrap() = Some(settings.to_vec());
        Ok(())
    }
    async fn get_company_sync_settings(&self, company: CompanyId) -> Result<Option<Vec<SyncSetting>>, RepositoryError> {
        Ok(self.company_settings.lock().unwrap().get(&company).cloned())
    }
    async fn put_company_sync_settings(&self, company: CompanyId, settings: Option<Vec<SyncSetting>>) -> Result<(), RepositoryError> {
        if !self.companies.lock().unwrap().iter().any(|c| c.id == company) {
            return Err(RepositoryError::NotFound(format!("company {company}")));
        }
        let mut all = self.company_settings.lock().unwrap();
        match settings {
            Some(s) => all.insert(company, s),
            None => all.remove(&company),
        };
        Ok(())
    }
}

#[async_trait]
impl SecretRepository for Mem {
    async fn list_sealed(&self) -> Result<Vec<(SecretSlot, SealedSecret)>, RepositoryError> {
        let mut out = Vec::new();
        let mut keys: Vec<(String, IntegrationSettings)> =
            self.integrations.lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, s) in keys {
            if let Some(k) = s.secret_key {
                out.push((SecretSlot::IntegrationSecretKey(key.clone()), k));
            }
            if let Some(w) = s.webhook_secret {
                out.push((SecretSlot::IntegrationWebhookSecret(key), w));
            }
        }
        for c in self.connections.lock().unwrap().iter() {
            if let Some(g) = &c.grant {
                out.push((SecretSlot::ConnectionGrant(c.id), g.clone()));
            }
        }
        for c in self.consumers.lock().unwrap().iter() {
            out.push((SecretSlot::WebhookSecret(c.id), c.secret.clone()));
        }
        Ok(out)
    }
    async fn replace_sealed(&self, updates: &[(SecretSlot, SealedSecret)]) -> Result<(), RepositoryError> {
        let mut integrations = self.integrations.lock().unwrap();
        let mut connections = self.connections.lock().unwrap();
        let mut consumers = self.consumers.lock().unwrap();
        // All or nothing: every slot must exist before any is replaced.
        for (slot, _) in updates {
            let exists = match slot {
                SecretSlot::IntegrationSecretKey(k) | SecretSlot::IntegrationWebhookSecret(k) => integrations.contains_key(k),
                SecretSlot::ConnectionGrant(id) => connections.iter().any(|c| c.id == *id),
                SecretSlot::WebhookSecret(id) => consumers.iter().any(|c| c.id == *id),
            };
            if !exists {
                return Err(RepositoryError::NotFound(format!("{slot:?}")));
            }
        }
        for (slot, sealed) in updates {
            match slot {
                SecretSlot::IntegrationSecretKey(k) => integrations.get_mut(k).expect("checked").secret_key = Some(sealed.clone()),
                SecretSlot::IntegrationWebhookSecret(k) => integrations.get_mut(k).expect("checked").webhook_secret = Some(sealed.clone()),
                SecretSlot::ConnectionGrant(id) => {
                    connections.iter_mut().find(|c| c.id == *id).expect("checked").grant = Some(sealed.clone())
                }
                SecretSlot::WebhookSecret(id) => consumers.iter_mut().find(|c| c.id == *id).expect("checked").secret = sealed.clone(),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl OAuthStateRepository for Mem {
    async fn insert(&self, s: &crate::model::oauth_state::OAuthState) -> Result<(), RepositoryError> {
        if !self.connections.lock().unwrap().iter().any(|c| c.id == s.connection_id) {
            return Err(RepositoryError::NotFound(format!("connection {}", s.connection_id)));
        }
        let mut all = self.states.lock().unwrap();
        if all.iter().any(|x| x.nonce == s.nonce) {
            return Err(RepositoryError::Conflict("OAuth state nonce exists".into()));
        }
        all.push(s.clone());
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

/// A record as its list query reads it: the document, with the creation and modification times
/// and the id from their columns.
fn record_view(r: &crate::model::record::RecordRow) -> serde_json::Value {
    let mut doc = r.record.document.clone();
    if let serde_json::Value::Object(m) = &mut doc {
        m.insert("id".into(), serde_json::json!(r.record.id));
        m.insert("modifiedDate".into(), serde_json::json!(iso(r.modified)));
        match r.record.created {
            Some(t) => m.insert("createdDate".into(), serde_json::json!(iso(t))),
            None => m.remove("createdDate"),
        };
    }
    doc
}

impl Mem {
    /// The live records of a data set matching `q.filter`, in the list's order (creation time, no
    /// time first, then id; or `q.order_by` with the id as tie-break).
    fn matching_records(
        &self,
        c: ConnectionId,
        t: crate::model::data_type::DataType,
        q: &ListQuery,
    ) -> Vec<crate::model::record::RecordRow> {
        let rows: Vec<_> = self
            .records
            .lock()
            .unwrap()
            .iter()
            .filter(|((rc, rt, _), r)| *rc == c && *rt == t && !r.record.deleted)
            .map(|(_, r)| r.clone())
            .collect();
        let unpaged = ListQuery { page: crate::paging::PageRequest { page: 1, page_size: u32::MAX }, ..q.clone() };
        let by_created = |a: &crate::model::record::RecordRow, b: &crate::model::record::RecordRow| {
            (a.record.created, &a.record.id).cmp(&(b.record.created, &b.record.id))
        };
        let mut page = list_by(rows, &unpaged, record_view, |r| r.record.id.clone(), by_created);
        if q.order_by.is_none() && q.descending() {
            page.items.reverse();
        }
        page.items
    }
}

/// `now + lease_for`, saturating.
fn expiry(now: DateTime<Utc>, lease_for: std::time::Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(lease_for).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A pull operation as its list query reads it.
fn pull_view(p: &PullOperation) -> serde_json::Value {
    serde_json::json!({
        "id": p.id.to_string(), "companyId": p.company_id.to_string(), "connectionId": p.connection_id.to_string(),
        "dataType": p.data_type.key(), "status": p.status.as_str(), "statusDescription": p.status_description,
        "errorMessage": p.error_message, "requested": iso(p.requested), "completed": p.completed.map(iso),
        "progress": p.progress, "isErrored": p.status.is_errored(),
    })
}

/// Oldest requested first, then by id (the stores' order of operations).
fn by_requested(a: &PullOperation, b: &PullOperation) -> std::cmp::Ordering {
    a.requested.cmp(&b.requested).then_with(|| a.id.to_string().cmp(&b.id.to_string()))
}

impl Mem {
    /// Inserts operations all or nothing: each on an existing connection of its company, none
    /// with an id already stored.
    fn insert_pulls(&self, ops: &[PullOperation]) -> Result<(), RepositoryError> {
        {
            let connections = self.connections.lock().unwrap();
            if let Some(op) = ops.iter().find(|op| !connections.iter().any(|c| c.id == op.connection_id && c.company_id == op.company_id)) {
                return Err(RepositoryError::NotFound(format!("connection {} of company {}", op.connection_id, op.company_id)));
            }
        }
        let mut all = self.pulls.lock().unwrap();
        let mut ids: Vec<_> = ops.iter().map(|o| o.id).collect();
        ids.sort_by_key(ToString::to_string);
        ids.dedup();
        if ids.len() != ops.len() || all.iter().any(|p| ids.contains(&p.id)) {
            return Err(RepositoryError::Conflict("pull operation exists".into()));
        }
        all.extend_from_slice(ops);
        Ok(())
    }
}

#[async_trait]
impl PullOperationRepository for Mem {
    async fn insert(&self, ops: &[PullOperation]) -> Result<(), RepositoryError> {
        self.insert_pulls(ops)
    }
    async fn get(&self, company: CompanyId, id: crate::ids::PullOperationId) -> Result<Option<PullOperation>, RepositoryError> {
        Ok(self.pulls.lock().unwrap().iter().find(|p| p.id == id && p.company_id == company).cloned())
    }
    async fn list(&self, company: CompanyId, q: &ListQuery) -> Result<Page<PullOperation>, RepositoryError> {
        let mine: Vec<PullOperation> = self.pulls.lock().unwrap().iter().filter(|p| p.company_id == company).cloned().collect();
        Ok(list_by(mine, q, pull_view, |p| p.id.to_string(), by_requested))
    }
    async fn update(&self, op: &PullOperation, events: &[OutboxEvent]) -> Result<(), RepositoryError> {
        let mut all = self.pulls.lock().unwrap();
        let slot = all
            .iter_mut()
            .find(|p| p.id == op.id && p.company_id == op.company_id)
            .ok_or_else(|| RepositoryError::NotFound(format!("pull operation {}", op.id)))?;
        self.emit(events)?;
        // The changeable fields, as the stores' UPDATE writes them.
        slot.status = op.status;
        slot.status_description.clone_from(&op.status_description);
        slot.error_message.clone_from(&op.error_message);
        slot.completed = op.completed;
        slot.progress = op.progress;
        Ok(())
    }
    async fn unfinished_for_connection(&self, c: ConnectionId) -> Result<Vec<PullOperation>, RepositoryError> {
        use crate::model::pull::DatasetStatus::{Fetching, Queued};
        let mut out: Vec<PullOperation> =
            self.pulls.lock().unwrap().iter().filter(|p| p.connection_id == c && matches!(p.status, Queued | Fetching)).cloned().collect();
        out.sort_by(by_requested);
        Ok(out)
    }
    async fn read_before(&self, c: ConnectionId, before: DateTime<Utc>) -> Result<bool, RepositoryError> {
        use crate::model::pull::DatasetStatus::{Cancelled, Fetching, NotSupported, Queued};
        Ok(self
            .pulls
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.connection_id == c && p.requested < before && !matches!(p.status, Queued | Fetching | NotSupported | Cancelled)))
    }
    async fn requested_since(&self, c: ConnectionId, since: DateTime<Utc>, limit: u32) -> Result<Vec<PullOperation>, RepositoryError> {
        let mut out: Vec<PullOperation> =
            self.pulls.lock().unwrap().iter().filter(|p| p.connection_id == c && p.requested >= since).cloned().collect();
        out.sort_by(by_requested);
        out.truncate(limit as usize);
        Ok(out)
    }
    async fn latest(
        &self,
        c: ConnectionId,
        data_type: crate::model::data_type::DataType,
    ) -> Result<Option<PullOperation>, RepositoryError> {
        Ok(self
            .pulls
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.connection_id == c && p.data_type == data_type)
            .max_by(|a, b| by_requested(a, b))
            .cloned())
    }
    async fn data_status(&self, company: CompanyId) -> Result<Vec<(PullOperation, Option<PullOperation>)>, RepositoryError> {
        let all: Vec<PullOperation> = self.pulls.lock().unwrap().iter().filter(|p| p.company_id == company).cloned().collect();
        let mut types: Vec<_> = all.iter().map(|p| p.data_type).collect();
        types.sort();
        types.dedup();
        Ok(types
            .into_iter()
            .filter_map(|t| {
                let latest = all.iter().filter(|p| p.data_type == t).max_by(|a, b| by_requested(a, b)).cloned()?;
                let complete = all
                    .iter()
                    .filter(|p| p.data_type == t && p.status == crate::model::pull::DatasetStatus::Complete)
                    .max_by(|a, b| by_requested(a, b))
                    .cloned();
                Some((latest, complete))
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
        // Connections with unfinished work, by their oldest request, then id (as the stores).
        let mut candidates: Vec<(DateTime<Utc>, String, ConnectionId)> = Vec::new();
        for p in pulls.iter().filter(|p| matches!(p.status, Queued | Fetching)) {
            match candidates.iter_mut().find(|(_, _, c)| *c == p.connection_id) {
                Some(entry) => entry.0 = entry.0.min(p.requested),
                None => candidates.push((p.requested, p.connection_id.to_string(), p.connection_id)),
            }
        }
        candidates.sort();
        for (_, _, connection) in candidates {
            if leases.get(&connection).is_none_or(|(_, exp)| *exp < now) {
                leases.insert(connection, (worker.to_owned(), expiry(now, lease_for)));
                return Ok(Some(connection));
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
                *exp = expiry(now, lease_for);
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
        // The pull it finishes is checked, and its events stored, before anything is written: a
        // failure writes nothing, as the stores' transaction does.
        let mut pulls = self.pulls.lock().unwrap();
        if let Some((op, events)) = &w.pull {
            let slot = pulls
                .iter_mut()
                .find(|p| p.id == op.id && p.company_id == op.company_id)
                .ok_or_else(|| RepositoryError::NotFound(format!("pull operation {}", op.id)))?;
            self.emit(events)?;
            slot.status = op.status;
            slot.status_description.clone_from(&op.status_description);
            slot.error_message.clone_from(&op.error_message);
            slot.completed = op.completed;
            slot.progress = op.progress;
        }
        drop(pulls);
        if w.reset {
            self.partitions.lock().unwrap().retain(|(c, t, _), _| (*c, *t) != (connection, data_type));
            self.staged.lock().unwrap().retain(|(c, t, _, _), _| (*c, *t) != (connection, data_type));
        }
        // One entry per id, the last one winning; a row changes only when its document or deleted
        // flag does (the stores' `DO UPDATE … WHERE`), and only then does `modified` move.
        let mut page: Vec<&StoredRecord> = Vec::new();
        for r in &w.records {
            match page.iter_mut().find(|x| x.id == r.id) {
                Some(x) => *x = r,
                None => page.push(r),
            }
        }
        let mut all = self.records.lock().unwrap();
        let mut changed = 0;
        for r in page {
            let key = (connection, data_type, r.id.clone());
            if all.get(&key).is_none_or(|row| row.record.document != r.document || row.record.deleted != r.deleted) {
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
    async fn count(&self, c: ConnectionId, t: crate::model::data_type::DataType, include_deleted: bool) -> Result<u64, RepositoryError> {
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
        let rows = self.matching_records(c, t, q);
        let seek = q.seek.as_ref().filter(|_| q.keyset_order());
        let rows: Vec<_> = match seek {
            // After the cursor in the list's direction: (created, id) with no creation time first.
            Some(s) => {
                let at = (s.created, s.id.clone());
                rows.into_iter()
                    .filter(|r| {
                        let key = (r.record.created, r.record.id.clone());
                        if q.descending() { key < at } else { key > at }
                    })
                    .take(q.page.page_size as usize)
                    .collect()
            }
            None => rows.into_iter().skip(q.page.offset() as usize).take(q.page.page_size as usize).collect(),
        };
        Ok(rows
            .into_iter()
            .map(|r| crate::model::record::ListedRecord {
                document: serde_json::to_string(&r.record.document).expect("a JSON value serialises"),
                id: r.record.id,
                created: r.record.created,
                modified: r.modified,
            })
            .collect())
    }
    async fn count_matching(&self, c: ConnectionId, t: crate::model::data_type::DataType, q: &ListQuery) -> Result<u64, RepositoryError> {
        *self.count_queries.lock().unwrap() += 1;
        Ok(self.matching_records(c, t, q).len() as u64)
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

impl Mem {
    /// The outbox position of an event (the stores' `seq`).
    fn event_seq(&self, event: uuid::Uuid) -> usize {
        self.events.lock().unwrap().iter().position(|e| e.id == event).unwrap_or(usize::MAX)
    }
}

#[async_trait]
impl WebhookRepository for Mem {
    async fn insert_consumer_limited(&self, c: &WebhookConsumer, max: usize) -> Result<(), RepositoryError> {
        let mut all = self.consumers.lock().unwrap();
        if all.len() >= max {
            return Err(RepositoryError::Conflict(format!("at most {max} webhook consumers")));
        }
        if all.iter().any(|x| x.id == c.id) {
            return Err(RepositoryError::Conflict(format!("webhook consumer {} exists", c.id)));
        }
        all.push(c.clone());
        Ok(())
    }
    async fn list_consumers(&self) -> Result<Vec<WebhookConsumer>, RepositoryError> {
        let mut all = self.consumers.lock().unwrap().clone();
        all.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.to_string().cmp(&b.id.to_string())));
        Ok(all)
    }
    async fn get_consumer(&self, id: WebhookConsumerId) -> Result<Option<WebhookConsumer>, RepositoryError> {
        Ok(self.consumers.lock().unwrap().iter().find(|c| c.id == id).cloned())
    }
    async fn delete_consumer(&self, id: WebhookConsumerId) -> Result<bool, RepositoryError> {
        let mut all = self.consumers.lock().unwrap();
        let before = all.len();
        all.retain(|c| c.id != id);
        // Its deliveries and attempts go with it.
        self.deliveries.lock().unwrap().retain(|d| d.0.consumer_id != id);
        self.attempts.lock().unwrap().retain(|a| a.consumer_id != id);
        Ok(all.len() != before)
    }
    async fn set_consumer_disabled(&self, id: WebhookConsumerId, disabled: bool, reason: Option<String>) -> Result<bool, RepositoryError> {
        let mut all = self.consumers.lock().unwrap();
        let Some(c) = all.iter_mut().find(|c| c.id == id) else { return Ok(false) };
        c.disabled = disabled;
        c.disabled_reason = reason;
        if !disabled {
            // Enabling ends the failing streak, so an old streak cannot disable it again at once.
            c.failing_since = None;
        }
        Ok(true)
    }
    async fn fan_out(&self, now: DateTime<Utc>, limit: u32) -> Result<u64, RepositoryError> {
        let events = self.events.lock().unwrap();
        let mut dispatched = self.dispatched.lock().unwrap();
        let consumers = self.list_consumers_now();
        let mut out = self.deliveries.lock().unwrap();
        let taken: Vec<&OutboxEvent> = events.iter().filter(|e| !dispatched.contains(&e.id)).take(limit as usize).collect();
        for e in &taken {
            let mut fresh: Vec<Delivery> = consumers
                .iter()
                .filter(|c| c.accepts(e.event_type, &e.company_tags))
                .map(|c| Delivery {
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
                })
                .collect();
            fresh.sort_by_key(|d| d.id);
            out.extend(fresh.into_iter().map(|d| (d, DeliveryStatus::Pending, Some(now))));
            dispatched.insert(e.id);
        }
        Ok(taken.len() as u64)
    }
    async fn lease_deliveries(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_for: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, RepositoryError> {
        let consumers = self.consumers.lock().unwrap().clone();
        let all = self.deliveries.lock().unwrap();
        let mut leases = self.delivery_leases.lock().unwrap();
        let mut due: Vec<(usize, &MemDelivery, &WebhookConsumer)> = all
            .iter()
            .filter_map(|d| {
                let c = consumers.iter().find(|c| c.id == d.0.consumer_id)?;
                let free = leases.get(&d.0.id).is_none_or(|(_, until)| *until < now);
                (d.1 == DeliveryStatus::Pending && d.2.is_some_and(|t| t <= now) && !c.disabled && free)
                    .then(|| (self.event_seq(d.0.event_id), d, c))
            })
            .collect();
        due.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.0.id.cmp(&b.1.0.id)));
        let until = expiry(now, lease_for);
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|(_, d, c)| {
                leases.insert(d.0.id, (worker.to_owned(), until));
                // The consumer as it is now (its URL, its secret after a key rotation), as the
                // stores' join reads it.
                Delivery { url: c.url.clone(), secret: c.secret.clone(), consumer_failing_since: c.failing_since, ..d.0.clone() }
            })
            .collect())
    }
    async fn record_attempt(&self, worker: &str, a: &Attempt, after: AfterAttempt) -> Result<bool, RepositoryError> {
        let mut all = self.deliveries.lock().unwrap();
        let Some((d, status, due)) = all.iter_mut().find(|x| x.0.id == a.delivery_id) else {
            // The consumer, and with it the delivery, was deleted meanwhile: nothing to record.
            return Ok(false);
        };
        if let Some(c) = self.consumers.lock().unwrap().iter_mut().find(|c| c.id == a.consumer_id) {
            c.failing_since = if a.ok { None } else { c.failing_since.or(Some(a.at)) };
        }
        self.attempts.lock().unwrap().push(a.clone());
        let mut leases = self.delivery_leases.lock().unwrap();
        if leases.get(&d.id).is_none_or(|(owner, _)| owner != worker) {
            return Ok(false);
        }
        leases.remove(&d.id);
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
        for (_, s, _) in self.deliveries.lock().unwrap().iter().filter(|d| d.0.consumer_id == consumer) {
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
        let mut mine: Vec<MemDelivery> = self.deliveries.lock().unwrap().iter().filter(|d| d.0.consumer_id == consumer).cloned().collect();
        // Newest first: by creation, then by the event's outbox position.
        mine.sort_by_key(|d| std::cmp::Reverse((d.0.created, self.event_seq(d.0.event_id))));
        Ok(mine
            .into_iter()
            .take(limit as usize)
            .map(|(d, status, due)| crate::model::webhook::DeliverySummary {
                id: d.id,
                event_id: d.event_id,
                event_type: d.event_type,
                status,
                attempts: d.attempts,
                created: d.created,
                next_attempt: due,
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
        self.delivery_leases.lock().unwrap().remove(&d.id);
        Ok(Redelivery::Queued)
    }
}

impl Mem {
    /// The consumers, oldest first (for a fan-out already holding other locks).
    fn list_consumers_now(&self) -> Vec<WebhookConsumer> {
        let mut all = self.consumers.lock().unwrap().clone();
        all.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.to_string().cmp(&b.id.to_string())));
        all
    }
}

/// Counts per status, sorted by status.
fn by_status(statuses: impl Iterator<Item = String>) -> Vec<(String, u64)> {
    let mut counts: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for s in statuses {
        *counts.entry(s).or_default() += 1;
    }
    counts.into_iter().collect()
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
    async fn overview(&self, since: DateTime<Utc>) -> Result<crate::model::console::Overview, RepositoryError> {
        use crate::model::pull::DatasetStatus;
        let companies = self.companies.lock().unwrap().clone();
        let connections = self.connections.lock().unwrap().clone();
        let pulls = self.pulls.lock().unwrap().clone();
        // The latest finished pull (not cancelled or unsupported) of each linked connection and
        // data type, when it failed; newest first, at most 50.
        let mut failing = Vec::new();
        for c in connections.iter().filter(|c| c.status == crate::model::connection::ConnectionStatus::Linked) {
            for dt in crate::model::data_type::DataType::ALL {
                let last = pulls
                    .iter()
                    .filter(|p| {
                        p.connection_id == c.id
                            && p.data_type == dt
                            && p.completed.is_some()
                            && !matches!(p.status, DatasetStatus::Cancelled | DatasetStatus::NotSupported)
                    })
                    .max_by_key(|p| p.completed);
                if let Some(p) = last.filter(|p| p.status != DatasetStatus::Complete) {
                    failing.push(crate::model::console::FailingDataType {
                        company_id: p.company_id,
                        company_name: companies.iter().find(|x| x.id == p.company_id).map(|x| x.name.clone()).unwrap_or_default(),
                        connection_id: p.connection_id,
                        data_type: p.data_type,
                        status: p.status,
                        error_message: p.error_message.clone(),
                        completed: p.completed.unwrap_or_default(),
                    });
                }
            }
        }
        failing.sort_by_key(|f| std::cmp::Reverse(f.completed));
        failing.truncate(50);
        let mut per_minute: std::collections::BTreeMap<DateTime<Utc>, u64> = std::collections::BTreeMap::new();
        for ((c, _, _), r) in self.records.lock().unwrap().iter() {
            if r.modified >= since && connections.iter().any(|x| x.id == *c) {
                let minute =
                    DateTime::from_timestamp(r.modified.timestamp() - r.modified.timestamp().rem_euclid(60), 0).unwrap_or_default();
                *per_minute.entry(minute).or_default() += 1;
            }
        }
        Ok(crate::model::console::Overview {
            companies: companies.len() as u64,
            connections_by_status: by_status(connections.iter().map(|c| c.status.as_str().to_owned())),
            pulls_by_status: by_status(pulls.iter().filter(|p| p.requested >= since).map(|p| p.status.as_str().to_owned())),
            failing,
            deliveries_by_status: by_status(self.deliveries.lock().unwrap().iter().map(|d| d.1.as_str().to_owned())),
            records_per_minute: per_minute.into_iter().collect(),
        })
    }
    async fn backlog(&self) -> Result<crate::model::console::Backlog, RepositoryError> {
        use crate::model::pull::DatasetStatus;
        let pulls = self.pulls.lock().unwrap();
        let queued: Vec<_> = pulls.iter().filter(|p| p.status == DatasetStatus::Queued).collect();
        let consumers = self.consumers.lock().unwrap();
        let deliveries = self.deliveries.lock().unwrap();
        // A disabled consumer's deliveries are paused, not late.
        let pending: Vec<_> = deliveries
            .iter()
            .filter(|d| d.1 == DeliveryStatus::Pending && consumers.iter().any(|c| c.id == d.0.consumer_id && !c.disabled))
            .collect();
        Ok(crate::model::console::Backlog {
            pulls_queued: queued.len() as u64,
            pulls_running: pulls.iter().filter(|p| p.status == DatasetStatus::Fetching).count() as u64,
            oldest_queued: queued.iter().map(|p| p.requested).min(),
            webhooks_pending: pending.len() as u64,
            oldest_pending: pending.iter().map(|d| d.0.created).min(),
        })
    }
}

impl Mem {
    /// Every repository port, backed by `mem`.
    pub fn repositories(mem: Arc<Mem>) -> Repositories {
        Repositories {
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
        }
    }
}

pub fn platform_with(mem: Arc<Mem>, clock: Arc<Fixed>) -> Platform {
    Platform::new(Mem::repositories(mem), Arc::new(Rot), clock)
}
