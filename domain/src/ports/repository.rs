//! Repository ports, one per aggregate. Both storage adapters implement all of them and pass the
//! shared contract suite in `tests/`.
//!
//! Every method returns [`RepositoryError::Backend`] when storage fails; other errors are listed
//! per method.

use crate::error::RepositoryError;
use crate::ids::{ApiKeyId, CompanyId, ConnectionId, PullOperationId, WebhookConsumerId};
use crate::model::api_key::ApiKey;
use crate::model::company::Company;
use crate::model::connection::Connection;
use crate::model::console::{Backlog, ConsoleSession, Overview};
use crate::model::data_type::DataType;
use crate::model::integration::IntegrationSettings;
use crate::model::oauth_state::OAuthState;
use crate::model::profile::Profile;
use crate::model::pull::PullOperation;
use crate::model::record::{Checkpoint, ListedRecord, PartitionState, RecordRow, StagedItem, SyncWrite};
use crate::model::secret::SealedSecret;
use crate::model::sync_settings::SyncSetting;
use crate::model::webhook::{AfterAttempt, Attempt, Delivery, DeliverySummary, OutboxEvent, WebhookConsumer};
use crate::paging::{ListQuery, Page};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;
use uuid::Uuid;

/// Companies.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait CompanyRepository: Send + Sync {
    /// Stores a new company and the events it causes, in one transaction.
    ///
    /// # Errors
    /// [`RepositoryError::Conflict`] if the id exists.
    async fn insert(&self, company: &Company, events: &[OutboxEvent]) -> Result<(), RepositoryError>;
    /// Finds a company.
    ///
    /// # Errors
    /// Backend failures only.
    async fn get(&self, id: CompanyId) -> Result<Option<Company>, RepositoryError>;
    /// Replaces a company's fields.
    ///
    /// # Errors
    /// [`RepositoryError::NotFound`] if it does not exist.
    async fn update(&self, company: &Company) -> Result<(), RepositoryError>;
    /// Deletes a company with its connections and their data, in one transaction with the events
    /// it causes (written only when it existed). Returns whether it existed.
    ///
    /// # Errors
    /// Backend failures only.
    async fn delete(&self, id: CompanyId, events: &[OutboxEvent]) -> Result<bool, RepositoryError>;
    /// Lists companies matching `query.filter` (against [`crate::model::company::QUERY_SCHEMA`])
    /// and `query.tags`, ordered by `query.order_by` then id (default: created, id).
    ///
    /// # Errors
    /// Backend failures only.
    async fn list(&self, query: &ListQuery) -> Result<Page<Company>, RepositoryError>;
}

/// Data connections.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait ConnectionRepository: Send + Sync {
    /// Stores a new connection and the events it causes, in one transaction.
    ///
    /// # Errors
    /// [`RepositoryError::NotFound`] if the company does not exist.
    async fn insert(&self, connection: &Connection, events: &[OutboxEvent]) -> Result<(), RepositoryError>;
    /// Finds a connection of a company (a connection of another company is not found).
    ///
    /// # Errors
    /// Backend failures only.
    async fn get(&self, company: CompanyId, id: ConnectionId) -> Result<Option<Connection>, RepositoryError>;
    /// Finds a connection by id alone (OAuth callbacks and webhooks know no company).
    ///
    /// # Errors
    /// Backend failures only.
    async fn find(&self, id: ConnectionId) -> Result<Option<Connection>, RepositoryError>;
    /// Saves a changed connection (status, grant, errors, last sync) and the events it causes, in
    /// one transaction.
    ///
    /// # Errors
    /// [`RepositoryError::NotFound`] if it does not exist (nothing written).
    async fn update(&self, connection: &Connection, events: &[OutboxEvent]) -> Result<(), RepositoryError>;
    /// Deletes a connection of a company with its data, in one transaction with the events it
    /// causes (written only when it existed). Returns whether it existed.
    ///
    /// # Errors
    /// Backend failures only.
    async fn delete(&self, company: CompanyId, id: ConnectionId, events: &[OutboxEvent]) -> Result<bool, RepositoryError>;
    /// Lists a company's connections matching `query.filter` (against
    /// [`crate::model::connection::QUERY_SCHEMA`]), ordered by `query.order_by` then id (default:
    /// created, id).
    ///
    /// # Errors
    /// Backend failures only.
    async fn list(&self, company: CompanyId, query: &ListQuery) -> Result<Page<Connection>, RepositoryError>;
    /// Changes a connection's status only if it is still `from` (compare-and-set, so a worker never
    /// overwrites a client's unlink); returns whether it changed. The events are written, in the
    /// same transaction, only when it changed.
    ///
    /// # Errors
    /// Backend failures only.
    async fn set_status_if(
        &self,
        id: ConnectionId,
        from: crate::model::connection::ConnectionStatus,
        to: crate::model::connection::ConnectionStatus,
        events: &[OutboxEvent],
    ) -> Result<bool, RepositoryError>;
    /// Records when the connection was last synced, touching nothing else.
    ///
    /// # Errors
    /// Backend failures only.
    async fn set_last_sync(&self, id: ConnectionId, at: DateTime<Utc>) -> Result<(), RepositoryError>;
    /// Every `Linked` connection, oldest first (for the scheduler).
    ///
    /// # Errors
    /// Backend failures only.
    async fn list_linked(&self) -> Result<Vec<Connection>, RepositoryError>;
    /// Connections of an integration linked (now or before) to a source account, oldest first.
    ///
    /// # Errors
    /// Backend failures only.
    async fn find_by_source_account(&self, platform_key: &str, account: &str) -> Result<Vec<Connection>, RepositoryError>;
    /// Saves a connection that has just been linked together with the pull operations queued for
    /// it and the events it causes, in one transaction.
    ///
    /// # Errors
    /// [`RepositoryError::NotFound`] if the connection does not exist (nothing is written then).
    async fn save_linked(&self, connection: &Connection, queued: &[PullOperation], events: &[OutboxEvent]) -> Result<(), RepositoryError>;
    /// All connections of the given companies, oldest first (to embed in company responses).
    ///
    /// # Errors
    /// Backend failures only.
    async fn list_for_companies(&self, companies: &[CompanyId]) -> Result<Vec<Connection>, RepositoryError>;
}

/// The client's settings for each integration.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait IntegrationRepository: Send + Sync {
    /// Settings for a platform key; `None` when never configured.
    ///
    /// # Errors
    /// Backend failures only.
    async fn get(&self, key: &str) -> Result<Option<IntegrationSettings>, RepositoryError>;
    /// Stores settings for a platform key, replacing any.
    ///
    /// # Errors
    /// Backend failures only.
    async fn put(&self, key: &str, settings: &IntegrationSettings) -> Result<(), RepositoryError>;
    /// Records (or with `None` clears) that the source refused the platform key's secret key; `put`
    /// leaves it as it is. Nothing happens for a key never configured.
    ///
    /// # Errors
    /// Backend failures only.
    async fn set_key_refused(&self, key: &str, refused: Option<crate::model::integration::KeyRefused>) -> Result<(), RepositoryError>;
    /// Whether an event the integration's source sent (its webhook event id) was processed.
    ///
    /// # Errors
    /// Backend failures only.
    async fn event_seen(&self, key: &str, event_id: &str) -> Result<bool, RepositoryError>;
    /// Remembers a processed event (again: no change); events remembered before `forget_before`
    /// are dropped on the way.
    ///
    /// # Errors
    /// Backend failures only.
    async fn remember_event(
        &self,
        key: &str,
        event_id: &str,
        now: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<(), RepositoryError>;
}

/// What deleting an API key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyDeletion {
    /// Deleted.
    Deleted,
    /// No such key.
    NotFound,
    /// Refused: it is the last key.
    LastKey,
}

/// API keys (hashes only).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait ApiKeyRepository: Send + Sync {
    /// Stores a key unless `max` keys already exist, atomically.
    ///
    /// # Errors
    /// [`RepositoryError::Conflict`] when the limit is reached.
    async fn insert_limited(&self, key: &ApiKey, max: usize) -> Result<(), RepositoryError>;
    /// All keys, oldest first.
    ///
    /// # Errors
    /// Backend failures only.
    async fn list(&self) -> Result<Vec<ApiKey>, RepositoryError>;
    /// Finds a key by the hash of its value.
    ///
    /// # Errors
    /// Backend failures only.
    async fn find_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, RepositoryError>;
    /// Deletes a key unless it is the last one (`allow_last` lifts that rule, for the CLI).
    ///
    /// # Errors
    /// Backend failures only.
    async fn delete(&self, id: ApiKeyId, allow_last: bool) -> Result<ApiKeyDeletion, RepositoryError>;
}

/// The client profile, its instance id and sync settings.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait ProfileRepository: Send + Sync {
    /// The stored profile; `None` before the first `put`.
    ///
    /// # Errors
    /// Backend failures only.
    async fn get_profile(&self) -> Result<Option<Profile>, RepositoryError>;
    /// Stores the profile.
    ///
    /// # Errors
    /// Backend failures only.
    async fn put_profile(&self, profile: &Profile) -> Result<(), RepositoryError>;
    /// The instance's client id, created on first call and stable afterwards.
    ///
    /// # Errors
    /// Backend failures only.
    async fn client_id(&self) -> Result<Uuid, RepositoryError>;
    /// Client-level sync settings; `None` when never set.
    ///
    /// # Errors
    /// Backend failures only.
    async fn get_sync_settings(&self) -> Result<Option<Vec<SyncSetting>>, RepositoryError>;
    /// Stores client-level sync settings.
    ///
    /// # Errors
    /// Backend failures only.
    async fn put_sync_settings(&self, settings: &[SyncSetting]) -> Result<(), RepositoryError>;
    /// A company's overrides; `None` when it has none.
    ///
    /// # Errors
    /// Backend failures only.
    async fn get_company_sync_settings(&self, company: CompanyId) -> Result<Option<Vec<SyncSetting>>, RepositoryError>;
    /// Stores (`Some`) or clears (`None`) a company's overrides.
    ///
    /// # Errors
    /// [`RepositoryError::NotFound`] if the company does not exist.
    async fn put_company_sync_settings(&self, company: CompanyId, settings: Option<Vec<SyncSetting>>) -> Result<(), RepositoryError>;
}

/// Where a sealed secret lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SecretSlot {
    /// An integration's platform secret key.
    IntegrationSecretKey(String),
    /// An integration's webhook signing secret.
    IntegrationWebhookSecret(String),
    /// A connection's OAuth grant.
    ConnectionGrant(ConnectionId),
    /// A webhook consumer's signing secret.
    WebhookSecret(WebhookConsumerId),
}

/// Every sealed secret, for master-key rotation.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SecretRepository: Send + Sync {
    /// Every sealed secret with its slot.
    ///
    /// # Errors
    /// Backend failures only.
    async fn list_sealed(&self) -> Result<Vec<(SecretSlot, SealedSecret)>, RepositoryError>;
    /// Replaces the given secrets, all or nothing.
    ///
    /// # Errors
    /// [`RepositoryError::NotFound`] (and nothing changed) if a slot no longer exists.
    async fn replace_sealed(&self, updates: &[(SecretSlot, SealedSecret)]) -> Result<(), RepositoryError>;
}

/// OAuth states waiting for their callback.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait OAuthStateRepository: Send + Sync {
    /// Stores a state.
    ///
    /// # Errors
    /// [`RepositoryError::NotFound`] if the connection does not exist.
    async fn insert(&self, state: &OAuthState) -> Result<(), RepositoryError>;
    /// Removes and returns the state with this nonce, atomically: of two concurrent callers, one
    /// gets it and the other `None`. Expired states are returned too (the caller decides).
    ///
    /// # Errors
    /// Backend failures only.
    async fn consume(&self, nonce: &str) -> Result<Option<OAuthState>, RepositoryError>;
    /// Deletes states that expired before `now`; returns how many.
    ///
    /// # Errors
    /// Backend failures only.
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, RepositoryError>;
}

/// Pull operations (Codat's datasets).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait PullOperationRepository: Send + Sync {
    /// Stores new operations, all or nothing.
    ///
    /// # Errors
    /// [`RepositoryError::NotFound`] if a connection does not exist.
    async fn insert(&self, ops: &[PullOperation]) -> Result<(), RepositoryError>;
    /// One operation of a company.
    ///
    /// # Errors
    /// Backend failures only.
    async fn get(&self, company: CompanyId, id: PullOperationId) -> Result<Option<PullOperation>, RepositoryError>;
    /// A company's operations matching `query.filter` (against
    /// [`crate::model::pull::QUERY_SCHEMA`]), ordered by `query.order_by` then id (default:
    /// requested, id).
    ///
    /// # Errors
    /// Backend failures only.
    async fn list(&self, company: CompanyId, query: &ListQuery) -> Result<Page<PullOperation>, RepositoryError>;
    /// Saves an operation's status, description, error, completion time and progress, with the
    /// events it causes, in one transaction.
    ///
    /// # Errors
    /// [`RepositoryError::NotFound`] if it does not exist (nothing written).
    async fn update(&self, op: &PullOperation, events: &[OutboxEvent]) -> Result<(), RepositoryError>;
    /// The unfinished (`Queued` or `Fetching`) operations of a connection, oldest first.
    ///
    /// # Errors
    /// Backend failures only.
    async fn unfinished_for_connection(&self, connection: ConnectionId) -> Result<Vec<PullOperation>, RepositoryError>;
    /// Whether an operation of a connection requested before `before` read the source: it
    /// finished with any status but `NotSupported` and `Cancelled`.
    ///
    /// # Errors
    /// Backend failures only.
    async fn read_before(&self, connection: ConnectionId, before: DateTime<Utc>) -> Result<bool, RepositoryError>;
    /// The operations of a connection requested at or after `since`, oldest first (requested,
    /// then id), at most `limit`.
    ///
    /// # Errors
    /// Backend failures only.
    async fn requested_since(
        &self,
        connection: ConnectionId,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PullOperation>, RepositoryError>;
    /// The newest operation (requested, then id) of `data_type` on `connection`, whatever its
    /// status.
    ///
    /// # Errors
    /// Backend failures only.
    async fn latest(&self, connection: ConnectionId, data_type: DataType) -> Result<Option<PullOperation>, RepositoryError>;
    /// Per data type of a company: the latest operation and the latest `Complete` one.
    ///
    /// # Errors
    /// Backend failures only.
    async fn data_status(&self, company: CompanyId) -> Result<Vec<(PullOperation, Option<PullOperation>)>, RepositoryError>;
}

/// Exclusive, expiring leases on connections, so that at most one worker (in any process) syncs
/// a connection at a time and a crashed worker's connection is taken over once its lease expires.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SyncLeaseRepository: Send + Sync {
    /// Leases a connection that has unfinished pull operations and no live lease (or an expired
    /// one), oldest operation first. Atomic across processes.
    ///
    /// # Errors
    /// Backend failures only.
    async fn lease_next(&self, worker: &str, now: DateTime<Utc>, lease_for: Duration) -> Result<Option<ConnectionId>, RepositoryError>;
    /// Extends a lease the worker holds; `false` when it was lost (expired and taken).
    ///
    /// # Errors
    /// Backend failures only.
    async fn renew(&self, connection: ConnectionId, worker: &str, now: DateTime<Utc>, lease_for: Duration)
    -> Result<bool, RepositoryError>;
    /// Gives a lease up.
    ///
    /// # Errors
    /// Backend failures only.
    async fn release(&self, connection: ConnectionId, worker: &str) -> Result<(), RepositoryError>;
}

/// Commerce records and their sync checkpoints.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait RecordRepository: Send + Sync {
    /// Writes what a sync worker commits at once ([`SyncWrite`]), in one transaction: with
    /// `reset`, the data type's partitions and staged items are dropped first; then the records
    /// are upserted, the staged items, the checkpoint and the partitions saved, and the pull
    /// updated with its events. A record whose document and deleted flag are unchanged keeps its
    /// `modified` time. Returns how many records were inserted or changed. A killed worker
    /// resumes every partition at its last written cursor, with no duplicates and no gaps. An
    /// adapter may relax the commit's durability for writes without a pull or checkpoint (the
    /// latest pages lost in a database or power crash, always with their partitions' positions and
    /// never ahead of a later durable commit): the sync then fetches those pages again.
    ///
    /// # Errors
    /// [`RepositoryError::NotFound`] if the connection does not exist or belongs to another
    /// company, [`RepositoryError::Fenced`] if `write.fence` names a worker that no longer holds
    /// the connection's sync lease or the connection is not linked; nothing is written then.
    async fn write_sync(
        &self,
        company: CompanyId,
        connection: ConnectionId,
        data_type: DataType,
        write: &SyncWrite,
        now: DateTime<Utc>,
    ) -> Result<u64, RepositoryError>;
    /// The saved checkpoint of a data type on a connection.
    ///
    /// # Errors
    /// Backend failures only.
    async fn checkpoint(&self, connection: ConnectionId, data_type: DataType) -> Result<Option<Checkpoint>, RepositoryError>;
    /// The partitions of a data type's backfill, by id (finished ones too).
    ///
    /// # Errors
    /// Backend failures only.
    async fn partitions(&self, connection: ConnectionId, data_type: DataType) -> Result<Vec<PartitionState>, RepositoryError>;
    /// The staged items of a data type's backfill under any of `keys`.
    ///
    /// # Errors
    /// Backend failures only.
    async fn staged(&self, connection: ConnectionId, data_type: DataType, keys: &[String]) -> Result<Vec<StagedItem>, RepositoryError>;
    /// Number of records (deleted ones only when asked).
    ///
    /// # Errors
    /// Backend failures only.
    async fn count(&self, connection: ConnectionId, data_type: DataType, include_deleted: bool) -> Result<u64, RepositoryError>;
    /// One record by source id (deleted ones too; callers hide them).
    ///
    /// # Errors
    /// Backend failures only.
    async fn get(&self, connection: ConnectionId, data_type: DataType, id: &str) -> Result<Option<RecordRow>, RepositoryError>;
    /// A page of live (not deleted) records of a list data type matching `query.filter` (resolved
    /// against [`crate::model::commerce_schema::schema`]), ordered by `query.order_by` then record
    /// id (default: created, then id). Fields are located with
    /// [`crate::model::commerce_schema::locate`]; numbers compare numerically and dates as instants.
    ///
    /// # Errors
    /// Backend failures only.
    async fn list(&self, connection: ConnectionId, data_type: DataType, query: &ListQuery) -> Result<Page<ListedRecord>, RepositoryError> {
        let items = self.list_page(connection, data_type, query).await?;
        let total = self.count_matching(connection, data_type, query).await?;
        Ok(Page { items, total, request: query.page })
    }
    /// The records of [`RecordRepository::list`]'s page without the count. With `query.seek`
    /// (only set for [`ListQuery::keyset_order`] orders) the page starts just after that
    /// position instead of at the page's offset, reading the `created` index from there, so a
    /// deep page costs what the first does.
    ///
    /// # Errors
    /// Backend failures only.
    async fn list_page(
        &self,
        connection: ConnectionId,
        data_type: DataType,
        query: &ListQuery,
    ) -> Result<Vec<ListedRecord>, RepositoryError>;
    /// Number of live records matching `query.filter` (all live records without one; the rest of
    /// the query is ignored).
    ///
    /// # Errors
    /// Backend failures only.
    async fn count_matching(&self, connection: ConnectionId, data_type: DataType, query: &ListQuery) -> Result<u64, RepositoryError>;
    /// Everything a read of a data type checks first, in one round trip: whether the company
    /// exists, the connection if it belongs to that company, whether the data type has been
    /// requested and whether a pull of it completed, and the records' [`RecordRepository::version`].
    ///
    /// # Errors
    /// Backend failures only.
    async fn read_state(&self, company: CompanyId, connection: ConnectionId, data_type: DataType) -> Result<ReadState, RepositoryError>;
    /// A number that changes whenever a write changes the records of this connection and data
    /// type (0 before the first), so that counts can be cached until it moves.
    ///
    /// # Errors
    /// Backend failures only.
    async fn version(&self, connection: ConnectionId, data_type: DataType) -> Result<u64, RepositoryError>;
    /// Records of a data type (deleted ones too) in record-id order after `after_id` (keyset), for
    /// exports and tests.
    ///
    /// # Errors
    /// Backend failures only.
    async fn scan(
        &self,
        connection: ConnectionId,
        data_type: DataType,
        after_id: Option<String>,
        limit: u32,
    ) -> Result<Vec<RecordRow>, RepositoryError>;
}

/// What [`RecordRepository::read_state`] finds.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadState {
    /// The company exists.
    pub company: bool,
    /// The connection, when it exists and belongs to the company.
    pub connection: Option<Connection>,
    /// A pull of the data type was ever requested on the connection.
    pub requested: bool,
    /// A pull of the data type on the connection completed.
    pub completed: bool,
    /// The records' version.
    pub version: u64,
}

/// Delivery counts of a consumer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Waiting for an attempt.
    pub pending: u64,
    /// Delivered.
    pub delivered: u64,
    /// Given up.
    pub failed: u64,
}

/// Webhook consumers, the transactional event outbox, deliveries and attempts.
///
/// Events enter the outbox through the other repositories' writes (in the transaction of the
/// change that caused them); [`WebhookRepository::fan_out`] turns each into deliveries.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait WebhookRepository: Send + Sync {
    /// Stores a consumer unless `max` already exist, atomically (also across processes).
    ///
    /// # Errors
    /// [`RepositoryError::Conflict`] when the limit is reached.
    async fn insert_consumer_limited(&self, consumer: &WebhookConsumer, max: usize) -> Result<(), RepositoryError>;
    /// Every consumer, oldest first.
    ///
    /// # Errors
    /// Backend failures only.
    async fn list_consumers(&self) -> Result<Vec<WebhookConsumer>, RepositoryError>;
    /// One consumer.
    ///
    /// # Errors
    /// Backend failures only.
    async fn get_consumer(&self, id: WebhookConsumerId) -> Result<Option<WebhookConsumer>, RepositoryError>;
    /// Deletes a consumer with its deliveries and attempts; returns whether it existed.
    ///
    /// # Errors
    /// Backend failures only.
    async fn delete_consumer(&self, id: WebhookConsumerId) -> Result<bool, RepositoryError>;
    /// Disables (with a reason) or enables a consumer; enabling also clears the reason and the
    /// failing streak (`failing_since`). Returns whether it exists. A disabled consumer's pending
    /// deliveries stay pending (they are not leased) until it is enabled again.
    ///
    /// # Errors
    /// Backend failures only.
    async fn set_consumer_disabled(&self, id: WebhookConsumerId, disabled: bool, reason: Option<String>) -> Result<bool, RepositoryError>;
    /// Takes up to `limit` events not yet fanned out, oldest first, creates one `Pending`
    /// delivery (due `now`) per consumer that [`WebhookConsumer::accepts`] it, and marks the
    /// events done, in one transaction; concurrent callers never fan an event out twice. Returns
    /// how many events were fanned out.
    ///
    /// # Errors
    /// Backend failures only.
    async fn fan_out(&self, now: DateTime<Utc>, limit: u32) -> Result<u64, RepositoryError>;
    /// Leases up to `limit` `Pending` deliveries that are due at `now`, whose consumer is enabled
    /// and that no live lease holds, oldest event first. Atomic across processes: a delivery is
    /// leased by one worker at a time.
    ///
    /// # Errors
    /// Backend failures only.
    async fn lease_deliveries(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, RepositoryError>;
    /// Records an attempt (even when the lease was lost) and, when `worker` still holds the
    /// delivery's lease, applies `after` (delivered, retry at a time, or failed) and releases the
    /// lease; the consumer's failing streak is cleared by a success and started by a failure. One
    /// transaction. Returns whether the lease was still held; a delivery that no longer exists (its
    /// consumer was deleted) gives `false` and nothing is recorded.
    ///
    /// # Errors
    /// Backend failures only.
    async fn record_attempt(&self, worker: &str, attempt: &Attempt, after: AfterAttempt) -> Result<bool, RepositoryError>;
    /// A consumer's most recent attempts, newest first.
    ///
    /// # Errors
    /// Backend failures only.
    async fn list_attempts(&self, consumer: WebhookConsumerId, limit: u32) -> Result<Vec<Attempt>, RepositoryError>;
    /// A consumer's deliveries by status.
    ///
    /// # Errors
    /// Backend failures only.
    async fn delivery_counts(&self, consumer: WebhookConsumerId) -> Result<DeliveryCounts, RepositoryError>;
    /// Events in the outbox, oldest first (for tests and diagnostics).
    ///
    /// # Errors
    /// Backend failures only.
    async fn list_events(&self, limit: u32) -> Result<Vec<OutboxEvent>, RepositoryError>;
    /// The most recent events in the outbox, newest first.
    ///
    /// # Errors
    /// Backend failures only.
    async fn recent_events(&self, limit: u32) -> Result<Vec<OutboxEvent>, RepositoryError>;
    /// A consumer's most recent deliveries, newest first, with their event.
    ///
    /// # Errors
    /// Backend failures only.
    async fn list_deliveries(&self, consumer: WebhookConsumerId, limit: u32) -> Result<Vec<DeliverySummary>, RepositoryError>;
    /// Puts a `Delivered` or `Failed` delivery of `consumer` back to `Pending`, due `now`, for one
    /// more attempt only (`final_attempt`: a failure ends it `Failed` again, whatever the
    /// schedule). A pending delivery and another consumer's are left alone.
    ///
    /// # Errors
    /// Backend failures only.
    async fn redeliver(&self, consumer: WebhookConsumerId, delivery: Uuid, now: DateTime<Utc>) -> Result<Redelivery, RepositoryError>;
}

/// What [`WebhookRepository::redeliver`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivery {
    /// Pending again, due at once, for one attempt.
    Queued,
    /// Left alone: it is still pending (it will be attempted on its own).
    StillPending,
    /// No such delivery for that consumer.
    NotFound,
}

/// The operator's views: console sessions, the overview, the backlog the metrics report.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait ConsoleRepository: Send + Sync {
    /// Stores a session.
    ///
    /// # Errors
    /// [`RepositoryError::NotFound`] when its API key no longer exists.
    async fn insert_session(&self, session: &ConsoleSession) -> Result<(), RepositoryError>;
    /// The session with this token hash, if its API key still exists.
    ///
    /// # Errors
    /// Backend failures only.
    async fn find_session(&self, hash: &str) -> Result<Option<ConsoleSession>, RepositoryError>;
    /// Marks a session used at `at`.
    ///
    /// # Errors
    /// Backend failures only.
    async fn touch_session(&self, hash: &str, at: DateTime<Utc>) -> Result<(), RepositoryError>;
    /// Deletes a session, and every session last used before `idle_before`.
    ///
    /// # Errors
    /// Backend failures only.
    async fn delete_sessions(&self, hash: Option<String>, idle_before: DateTime<Utc>) -> Result<(), RepositoryError>;
    /// The overview's figures; pulls and records counted from `since`.
    ///
    /// # Errors
    /// Backend failures only.
    async fn overview(&self, since: DateTime<Utc>) -> Result<Overview, RepositoryError>;
    /// Pulls queued and running, and webhook deliveries pending, across the database.
    ///
    /// # Errors
    /// Backend failures only.
    async fn backlog(&self) -> Result<Backlog, RepositoryError>;
}

/// Every repository, as one handle the apps pass around.
#[derive(Clone)]
pub struct Repositories {
    /// Companies.
    pub companies: std::sync::Arc<dyn CompanyRepository>,
    /// Connections.
    pub connections: std::sync::Arc<dyn ConnectionRepository>,
    /// Integration settings.
    pub integrations: std::sync::Arc<dyn IntegrationRepository>,
    /// API keys.
    pub api_keys: std::sync::Arc<dyn ApiKeyRepository>,
    /// Profile and sync settings.
    pub profile: std::sync::Arc<dyn ProfileRepository>,
    /// Sealed secrets.
    pub secrets: std::sync::Arc<dyn SecretRepository>,
    /// OAuth states.
    pub oauth_states: std::sync::Arc<dyn OAuthStateRepository>,
    /// Pull operations.
    pub pull_operations: std::sync::Arc<dyn PullOperationRepository>,
    /// Sync leases.
    pub sync_leases: std::sync::Arc<dyn SyncLeaseRepository>,
    /// Commerce records.
    pub records: std::sync::Arc<dyn RecordRepository>,
    /// Webhook consumers, the event outbox and deliveries.
    pub webhooks: std::sync::Arc<dyn WebhookRepository>,
    /// Console sessions and the overview.
    pub console: std::sync::Arc<dyn ConsoleRepository>,
}
