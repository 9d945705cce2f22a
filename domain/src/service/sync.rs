//! The sync engine (DESIGN.md flow 6): queueing pulls (refresh), data status, and workers that
//! lease a connection, fetch each queued data type page by page, and commit every page together
//! with its checkpoint so a killed worker resumes at the next page.

use super::Platform;
use crate::error::DomainError;
use crate::ids::{CompanyId, ConnectionId, PullOperationId};
use crate::model::commerce::CommerceRecord;
use crate::model::connection::{Connection, ConnectionStatus};
use crate::model::data_type::DataType;
use crate::model::integration::{FeatureState, definition};
use crate::model::pull::{DatasetStatus, PullOperation};
use crate::model::record::{Checkpoint, StoredRecord};
use crate::model::webhook::{EventSubject, EventType, OutboxEvent, ReadDataType};
use crate::ports::source::{CommerceDataSource, SourceError};
use crate::query::typed::parse_instant;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// How often a running pull records its progress and renews its lease (also after its first and
/// last pages, and at least four times per lease as long as a page takes less than ¾ of one).
const BOOKKEEPING_EVERY: Duration = Duration::from_millis(500);

/// One data type's status for `GET /companies/{id}/dataStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataTypeStatus {
    /// The data type.
    pub data_type: DataType,
    /// The latest pull.
    pub latest: PullOperation,
    /// The latest successful pull.
    pub latest_successful: Option<PullOperation>,
}

impl Platform {
    /// Queues a pull of `data_type` on the company's linked connections (or only `connection`),
    /// returning the first. An unfinished pull of the same type is reused, not duplicated. A type
    /// the integration lacks gets a finished `NotSupported` pull.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown company or connection; [`DomainError::InvalidState`]
    /// when no linked connection is left to pull from.
    pub async fn queue_pull(
        &self,
        company: CompanyId,
        data_type: DataType,
        connection: Option<ConnectionId>,
    ) -> Result<PullOperation, DomainError> {
        let view = self.get_company(company).await?;
        let targets: Vec<Connection> = match connection {
            Some(id) => {
                let c = view
                    .connections
                    .into_iter()
                    .find(|c| c.id == id)
                    .ok_or_else(|| DomainError::NotFound(format!("Data connection {id} not found")))?;
                if c.status != ConnectionStatus::Linked {
                    return Err(DomainError::InvalidState(format!("Data connection {id} is {} and cannot be synced.", c.status)));
                }
                vec![c]
            }
            None => view.connections.into_iter().filter(|c| c.status == ConnectionStatus::Linked).collect(),
        };
        if targets.is_empty() {
            return Err(DomainError::InvalidState(format!("Company {company} has no linked data connection to pull from.")));
        }
        let mut first = None;
        for c in &targets {
            let op = self.queue_on(c, data_type).await?;
            first.get_or_insert(op);
        }
        first.ok_or_else(|| DomainError::InvalidState("nothing queued".into()))
    }

    async fn queue_on(&self, c: &Connection, data_type: DataType) -> Result<PullOperation, DomainError> {
        let unfinished = crate::query::resolve(
            &format!("connectionId={} && dataType={data_type} && {{status=Queued || status=Fetching}}", c.id),
            &crate::model::pull::QUERY_SCHEMA,
        )
        .map_err(|e| DomainError::invalid(e.0))?;
        let open = self
            .repos
            .pull_operations
            .list(c.company_id, &crate::paging::ListQuery { filter: Some(unfinished), ..Default::default() })
            .await?;
        if let Some(open) = open.items.into_iter().next() {
            return Ok(open);
        }
        let def = definition(c.platform_key.as_str()).ok_or_else(|| DomainError::NotFound("integration".into()))?;
        let supported = def.feature_state(data_type) == FeatureState::Release;
        let now = self.clock.now();
        let op = PullOperation {
            id: PullOperationId::new_random(),
            company_id: c.company_id,
            connection_id: c.id,
            data_type,
            status: if supported { DatasetStatus::Queued } else { DatasetStatus::NotSupported },
            status_description: (!supported).then(|| format!("{data_type} is not supported by {}", def.name)),
            error_message: None,
            requested: now,
            completed: (!supported).then_some(now),
            progress: if supported { 0 } else { 100 },
        };
        self.repos.pull_operations.insert(std::slice::from_ref(&op)).await?;
        Ok(op)
    }

    /// Queues every data type with fetch-on-first-link on every linked connection (`data/all`).
    ///
    /// # Errors
    /// As [`Platform::queue_pull`].
    pub async fn queue_all(&self, company: CompanyId) -> Result<Vec<PullOperation>, DomainError> {
        let (settings, _) = self.company_sync_settings(company).await?;
        let mut ordered: Vec<_> = settings.into_iter().filter(|s| s.fetch_on_first_link).collect();
        ordered.sort_by_key(|s| s.sync_order);
        let mut out = Vec::new();
        for s in ordered {
            out.push(self.queue_pull(company, s.data_type, None).await?);
        }
        Ok(out)
    }

    /// Queues a pull for every data type of every linked connection whose last pull was requested
    /// more than its sync schedule (hours, company overrides first) ago, and that has no unfinished
    /// pull. Data types never pulled are left to the first link. Unlinked and deauthorized
    /// connections are never scheduled. Returns what was queued.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn queue_due(&self) -> Result<Vec<PullOperation>, DomainError> {
        let now = self.clock.now();
        let mut queued = Vec::new();
        for c in self.repos.connections.list_linked().await? {
            let Ok((settings, _)) = self.company_sync_settings(c.company_id).await else { continue };
            let def = definition(c.platform_key.as_str()).ok_or_else(|| DomainError::NotFound("integration".into()))?;
            for s in settings.iter().filter(|s| def.feature_state(s.data_type) == FeatureState::Release && s.sync_schedule > 0) {
                let filter =
                    crate::query::resolve(&format!("connectionId={} && dataType={}", c.id, s.data_type), &crate::model::pull::QUERY_SCHEMA)
                        .map_err(|e| DomainError::invalid(e.0))?;
                let latest = self
                    .repos
                    .pull_operations
                    .list(
                        c.company_id,
                        &crate::paging::ListQuery {
                            filter: Some(filter),
                            order_by: crate::query::parse_order_by("-requested", &crate::model::pull::QUERY_SCHEMA).ok(),
                            page: crate::paging::PageRequest { page: 1, page_size: 1 },
                            ..Default::default()
                        },
                    )
                    .await?;
                let Some(last) = latest.items.first() else { continue };
                let due = last.requested + chrono::Duration::hours(i64::from(s.sync_schedule));
                if last.status.is_terminal() && due <= now {
                    queued.push(self.queue_on(&c, s.data_type).await?);
                }
            }
        }
        Ok(queued)
    }

    /// Per data type, the latest and latest successful pull of a company.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown company.
    pub async fn data_status(&self, company: CompanyId) -> Result<Vec<DataTypeStatus>, DomainError> {
        self.company(company).await?;
        Ok(self
            .repos
            .pull_operations
            .data_status(company)
            .await?
            .into_iter()
            .map(|(latest, latest_successful)| DataTypeStatus { data_type: latest.data_type, latest, latest_successful })
            .collect())
    }
}

/// A sync worker: leases connections with queued pulls and runs them.
#[derive(Clone)]
pub struct SyncEngine {
    platform: Platform,
    source: Arc<dyn CommerceDataSource>,
    worker: String,
    lease_for: Duration,
}

/// What a worker has done in one read of a connection (for `read.completed`).
#[derive(Debug, Default)]
struct ReadRun {
    /// The earliest request time of the pulls run.
    first_requested: Option<chrono::DateTime<chrono::Utc>>,
    /// The connection's last sync before this read.
    modified_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Records changed by the current pull so far.
    changed: u64,
    /// Per finished pull: whether it changed records.
    modified: std::collections::HashMap<PullOperationId, bool>,
}

/// What following changes led to.
enum Followed {
    /// The pull is finished (complete or failed).
    Done,
    /// The cursor was too old or had a gap: fetch everything.
    NeedsBackfill,
}

fn status_for(e: &SourceError) -> DatasetStatus {
    match e {
        SourceError::Auth(_) => DatasetStatus::AuthError,
        SourceError::Permission(_) => DatasetStatus::PermissionsError,
        SourceError::Fetch(_) => DatasetStatus::FetchError,
        SourceError::RateLimited { .. } => DatasetStatus::RateLimitError,
    }
}

/// A mapped record in its stored form (the document without `modifiedDate`, which the store sets).
pub fn to_stored(r: &CommerceRecord) -> StoredRecord {
    let (document, created, source_modified) = match r {
        CommerceRecord::CompanyInfo(x) => (serde_json::to_value(x), x.created_date.as_deref(), x.source_modified_date.as_deref()),
        CommerceRecord::Customer(x) => (serde_json::to_value(x), x.created_date.as_deref(), x.source_modified_date.as_deref()),
        CommerceRecord::Dispute(x) => (serde_json::to_value(x), x.created_date.as_deref(), x.source_modified_date.as_deref()),
        CommerceRecord::Payment(x) => (serde_json::to_value(x), x.created_date.as_deref(), x.source_modified_date.as_deref()),
        CommerceRecord::Product(x) => (serde_json::to_value(x), x.created_date.as_deref(), x.source_modified_date.as_deref()),
        CommerceRecord::Transaction(x) => (serde_json::to_value(x), x.created_date.as_deref(), x.source_modified_date.as_deref()),
    };
    let mut document = document.unwrap_or(serde_json::Value::Null);
    if let Some(o) = document.as_object_mut() {
        o.remove("modifiedDate");
    }
    let id = match r {
        CommerceRecord::CompanyInfo(x) => x.commerce_platform_ref.clone().unwrap_or_else(|| "company".into()),
        CommerceRecord::Customer(x) => x.id.clone(),
        CommerceRecord::Dispute(x) => x.id.clone(),
        CommerceRecord::Payment(x) => x.id.clone(),
        CommerceRecord::Product(x) => x.id.clone(),
        CommerceRecord::Transaction(x) => x.id.clone(),
    };
    StoredRecord {
        id,
        created: created.and_then(parse_instant),
        source_modified: source_modified.and_then(parse_instant),
        document,
        deleted: false,
    }
}

impl SyncEngine {
    /// A worker named `worker` (unique per process and task) holding leases for `lease_for`.
    pub fn new(platform: Platform, source: Arc<dyn CommerceDataSource>, worker: String, lease_for: Duration) -> Self {
        Self { platform, source, worker, lease_for }
    }

    /// Leases one connection with queued pulls and runs all of them. Returns whether there was work.
    ///
    /// # Errors
    /// Storage failures; source failures end the pull in an error status instead.
    pub async fn run_once(&self) -> Result<bool, DomainError> {
        let now = self.platform.clock.now();
        let Some(connection) = self.platform.repos.sync_leases.lease_next(&self.worker, now, self.lease_for).await? else {
            return Ok(false);
        };
        let result = self.run_connection(connection).await;
        self.platform.repos.sync_leases.release(connection, &self.worker).await?;
        result.map(|()| true)
    }

    async fn run_connection(&self, id: ConnectionId) -> Result<(), DomainError> {
        let mut run = ReadRun::default();
        loop {
            let Some(op) = self.platform.repos.pull_operations.next_for_connection(id).await? else { return Ok(()) };
            let Some(mut connection) = self.platform.repos.connections.find(id).await? else { return Ok(()) };
            if run.first_requested.is_none() {
                run.modified_from = connection.last_sync;
            }
            if connection.status != ConnectionStatus::Linked {
                self.finish(
                    &mut run,
                    op,
                    DatasetStatus::Cancelled,
                    Some(format!("The connection is {}; it is not synced.", connection.status)),
                )
                .await?;
                continue;
            }
            let lost = self.run_pull(&mut run, &mut connection, op).await?;
            if lost {
                return Ok(());
            }
        }
    }

    async fn finish(
        &self,
        run: &mut ReadRun,
        mut op: PullOperation,
        status: DatasetStatus,
        error: Option<String>,
    ) -> Result<PullOperation, DomainError> {
        tracing::info!(connection.id = %op.connection_id, sync.data_type = %op.data_type, pull.id = %op.id, status = status.as_str(), "pull finished");
        op.status = status;
        op.completed = Some(self.platform.clock.now());
        if status == DatasetStatus::Complete {
            op.progress = 100;
        }
        op.error_message = error;
        run.first_requested = Some(run.first_requested.map_or(op.requested, |t| t.min(op.requested)));
        run.modified.insert(op.id, run.changed > 0);
        run.changed = 0;
        let events = self.read_events(run, &op).await?;
        self.platform.repos.pull_operations.update(&op, &events).await?;
        if !events.is_empty() {
            // The read is reported; pulls queued from now on make the next one.
            *run = ReadRun::default();
        }
        Ok(op)
    }

    /// `read.completed` (and `read.completed.initial` for a connection's first read) when `op` is
    /// the connection's last unfinished pull: one entry per data type read since the read's first
    /// pull, including pulls a crashed worker finished before this one took over.
    async fn read_events(&self, run: &ReadRun, op: &PullOperation) -> Result<Vec<OutboxEvent>, DomainError> {
        if self.platform.renderer.is_none() {
            return Ok(Vec::new());
        }
        let pulls = |q: String, size: u32| {
            let filter = crate::query::resolve(&q, &crate::model::pull::QUERY_SCHEMA);
            async move {
                let filter = filter.map_err(|e| DomainError::invalid(e.0))?;
                let query = crate::paging::ListQuery {
                    filter: Some(filter),
                    order_by: crate::query::parse_order_by("requested", &crate::model::pull::QUERY_SCHEMA).ok(),
                    page: crate::paging::PageRequest { page: 1, page_size: size },
                    ..Default::default()
                };
                Ok::<_, DomainError>(self.platform.repos.pull_operations.list(op.company_id, &query).await?)
            }
        };
        let open = pulls(format!("connectionId={} && {{status=Queued || status=Fetching}}", op.connection_id), 2).await?;
        if open.items.iter().any(|o| o.id != op.id) {
            return Ok(Vec::new());
        }
        let since = run.first_requested.unwrap_or(op.requested);
        let since_text = since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let read = pulls(format!("connectionId={} && requested>={since_text}", op.connection_id), 100).await?;
        let data_types: Vec<ReadDataType> = read
            .items
            .into_iter()
            .map(|o| if o.id == op.id { op.clone() } else { o })
            // Pulls this worker ran, and pulls of this read a crashed worker finished.
            .filter(|o| run.modified.contains_key(&o.id) || o.completed.is_some_and(|c| c >= since))
            .filter(|o| o.status.is_terminal() && o.status != DatasetStatus::NotSupported)
            .map(|o| ReadDataType {
                connection_id: o.connection_id,
                data_type: o.data_type,
                // A pull another worker finished before a crash: assume it changed records.
                records_modified: run.modified.get(&o.id).copied().unwrap_or(true),
                status: o.status,
                error: o.error_message.clone(),
                dataset_id: o.id,
            })
            .collect();
        if data_types.iter().all(|d| d.status == DatasetStatus::Cancelled) {
            return Ok(Vec::new());
        }
        // Initial: no pull of this connection finished (read) before this read.
        let earlier = pulls(
            format!(
                "connectionId={} && requested<{since_text} && status!=Queued && status!=Fetching && status!=NotSupported && status!=Cancelled",
                op.connection_id
            ),
            1,
        )
        .await?;
        let Some(company) = self.platform.repos.companies.get(op.company_id).await? else { return Ok(Vec::new()) };
        let subject = EventSubject::Read { company, modified_from: run.modified_from, data_types };
        let mut events = Vec::new();
        if earlier.total == 0 {
            events.extend(self.platform.outbox(EventType::ReadCompletedInitial, subject.clone()));
        }
        events.extend(self.platform.outbox(EventType::ReadCompleted, subject));
        Ok(events)
    }

    /// Runs one pull to its end. Returns `true` when the lease was lost (another worker took over).
    async fn run_pull(&self, run: &mut ReadRun, connection: &mut Connection, mut op: PullOperation) -> Result<bool, DomainError> {
        run.changed = 0;
        tracing::info!(connection.id = %connection.id, sync.data_type = %op.data_type, pull.id = %op.id, "pull started");
        let key = connection.platform_key.as_str().to_owned();
        let creds = match self.platform.platform_credentials(&key).await {
            Ok(c) => c,
            Err(e) => {
                self.finish(run, op, DatasetStatus::InternalError, Some(e.to_string())).await?;
                return Ok(false);
            }
        };
        let Some(account) = connection.source_account.clone() else {
            self.finish(run, op, DatasetStatus::AuthError, Some("The connection has no linked account.".into())).await?;
            return Ok(false);
        };
        let checkpoint = self.platform.repos.records.checkpoint(connection.id, op.data_type).await?;
        op.status = DatasetStatus::Fetching;
        self.platform.repos.pull_operations.update(&op, &[]).await?;
        let resumed = match checkpoint {
            Some(cp) if cp.pull_id == op.id => {
                // Pages committed before a crash may have changed records.
                run.changed = u64::from(cp.pages > 0);
                if cp.cursor.is_none() && cp.pages > 0 {
                    // The last page was committed but the pull not marked complete (a crash).
                    self.complete(run, connection, op).await?;
                    return Ok(false);
                }
                Some(cp)
            }
            // A finished backfill with a change cursor: follow the changes instead of fetching all.
            Some(cp) if cp.cursor.is_none() && cp.incremental.is_some() => {
                match self.follow_changes(run, connection, &creds, &account, &mut op, cp.incremental.unwrap_or_default()).await? {
                    Followed::Done => return Ok(false),
                    Followed::NeedsBackfill => None,
                }
            }
            _ => None,
        };
        let (cursor, mut pages, mut total, incremental) = match resumed {
            Some(cp) => (cp.cursor, cp.pages, cp.records, cp.incremental),
            None => {
                // Take the change cursor before the backfill, so changes made during it are seen.
                match self.source.list_changes(&creds, &account, op.data_type, String::new()).await {
                    Ok(start) => (None, 0, 0, Some(start.cursor)),
                    Err(e) => {
                        self.fail(run, connection, op, &e).await?;
                        return Ok(false);
                    }
                }
            }
        };
        // Each page is written while the next one is fetched: the source and the store work at
        // the same time. A page fetched in vain (lease lost, connection unlinked) is dropped.
        // After the first page, the pull's progress and the lease renewal are written at most every
        // [`BOOKKEEPING_EVERY`] (and after the last page): two more commits per page were a large
        // part of the store's work. Whether the connection is still linked is read after every page.
        let data_type = op.data_type;
        let mut fetched = self.source.list_page(&creds, &account, data_type, cursor).await;
        // When the pull's progress was last written and its lease last renewed.
        let mut kept_at: Option<DateTime<Utc>> = None;
        let keep_every = chrono::Duration::from_std(BOOKKEEPING_EVERY.min(self.lease_for / 4)).unwrap_or(chrono::Duration::zero());
        loop {
            let page = match fetched {
                Ok(p) => p,
                Err(e) => {
                    self.fail(run, connection, op, &e).await?;
                    return Ok(false);
                }
            };
            let stored: Vec<StoredRecord> = page.records.iter().map(to_stored).collect();
            pages += 1;
            total += stored.len() as u64;
            let cp =
                Checkpoint { pull_id: op.id, cursor: page.next_cursor.clone(), pages, records: total, incremental: incremental.clone() };
            let fetch_next = async {
                match &page.next_cursor {
                    Some(next) => Some(self.source.list_page(&creds, &account, data_type, Some(next.clone())).await),
                    None => None,
                }
            };
            let write = async {
                let now = self.platform.clock.now();
                run.changed +=
                    self.platform.repos.records.write_page(op.company_id, op.connection_id, data_type, &stored, &cp, now).await?;
                // A clock that stepped back counts as time passed.
                if page.next_cursor.is_none() || !kept_at.is_some_and(|at| now >= at && now - at < keep_every) {
                    kept_at = Some(now);
                    op.progress = i32::from(page.progress.unwrap_or(0).min(99));
                    op.status_description = Some(format!("{total} records fetched"));
                    self.platform.repos.pull_operations.update(&op, &[]).await?;
                    if !self.platform.repos.sync_leases.renew(op.connection_id, &self.worker, now, self.lease_for).await? {
                        return Ok::<_, DomainError>(AfterPage::LeaseLost);
                    }
                }
                if page.next_cursor.is_none() {
                    return Ok(AfterPage::Done);
                }
                // Stop between pages if the connection was unlinked or deauthorized meanwhile (one
                // read after every page).
                Ok(match self.platform.repos.connections.find(connection.id).await? {
                    Some(c) if c.status == ConnectionStatus::Linked => AfterPage::Next,
                    Some(c) => AfterPage::Cancelled(c.status),
                    None => AfterPage::Gone,
                })
            };
            // The fetch is awaited only when the pull goes on: a lost lease, an unlinked connection
            // or a failed write drop it at once.
            let (after, next) = {
                let (fetch_next, write) = (core::pin::pin!(fetch_next), core::pin::pin!(write));
                match futures_util::future::select(write, fetch_next).await {
                    futures_util::future::Either::Left((after, fetch_next)) => match after? {
                        AfterPage::Next => (AfterPage::Next, fetch_next.await),
                        other => (other, None),
                    },
                    futures_util::future::Either::Right((next, write)) => (write.await?, next),
                }
            };
            match after {
                AfterPage::Next => {}
                AfterPage::Done => break,
                AfterPage::LeaseLost => return Ok(true),
                AfterPage::Cancelled(status) => {
                    let why = format!("The connection became {status} during the pull.");
                    self.finish(run, op, DatasetStatus::Cancelled, Some(why)).await?;
                    return Ok(false);
                }
                AfterPage::Gone => return Ok(false),
            }
            match next {
                Some(next) => fetched = next,
                None => break,
            }
        }
        self.complete(run, connection, op).await?;
        Ok(false)
    }

    /// Ends a pull in the error status for a source failure; a revoked account also deauthorizes a
    /// still-linked connection (an unlink made meanwhile wins).
    async fn fail(&self, run: &mut ReadRun, connection: &Connection, op: PullOperation, e: &SourceError) -> Result<(), DomainError> {
        let status = status_for(e);
        if status == DatasetStatus::AuthError {
            // Stripe no longer lets us read a linked account: the merchant revoked access. Only a
            // still-linked connection changes (an unlink wins).
            let mut after = connection.clone();
            after.status = ConnectionStatus::Deauthorized;
            let events = self.platform.connection_event(EventType::ConnectionDisconnected, &after).await?;
            self.platform
                .repos
                .connections
                .set_status_if(connection.id, ConnectionStatus::Linked, ConnectionStatus::Deauthorized, &events)
                .await?;
        }
        self.finish(run, op, status, Some(e.to_string())).await?;
        Ok(())
    }

    /// Applies the changes since `cursor`: upserts, and soft-deletes for objects deleted at the
    /// source, in one write with the new cursor.
    async fn follow_changes(
        &self,
        run: &mut ReadRun,
        connection: &mut Connection,
        creds: &crate::ports::oauth::PlatformCredentials,
        account: &str,
        op: &mut PullOperation,
        cursor: String,
    ) -> Result<Followed, DomainError> {
        let changes = match self.source.list_changes(creds, account, op.data_type, cursor).await {
            Ok(c) => c,
            Err(e) => {
                self.fail(run, connection, op.clone(), &e).await?;
                return Ok(Followed::Done);
            }
        };
        if changes.needs_backfill {
            tracing::info!(connection.id = %connection.id, sync.data_type = %op.data_type, "change cursor too old; full backfill");
            return Ok(Followed::NeedsBackfill);
        }
        let mut stored: Vec<StoredRecord> = changes.upserts.iter().map(to_stored).collect();
        for id in &changes.deletions {
            if let Some(row) = self.platform.repos.records.get(connection.id, op.data_type, id).await?
                && !row.record.deleted
            {
                stored.push(StoredRecord { deleted: true, ..row.record });
            }
        }
        let cp = Checkpoint { pull_id: op.id, cursor: None, pages: 1, records: stored.len() as u64, incremental: Some(changes.cursor) };
        let now = self.platform.clock.now();
        let changed = self.platform.repos.records.write_page(op.company_id, op.connection_id, op.data_type, &stored, &cp, now).await?;
        run.changed += changed;
        op.status_description = Some(format!("{changed} records changed since the last sync"));
        self.complete(run, connection, op.clone()).await?;
        Ok(Followed::Done)
    }

    async fn complete(&self, run: &mut ReadRun, connection: &mut Connection, op: PullOperation) -> Result<(), DomainError> {
        let now = self.platform.clock.now();
        self.finish(run, op, DatasetStatus::Complete, None).await?;
        // Only last_sync is written, so a status change made meanwhile (an unlink) stands.
        self.platform.repos.connections.set_last_sync(connection.id, now).await?;
        connection.last_sync = Some(now);
        if let Some(mut company) = self.platform.repos.companies.get(connection.company_id).await? {
            company.last_sync = Some(now);
            self.platform.repos.companies.update(&company).await?;
        }
        Ok(())
    }
}

/// What a written page leads to.
enum AfterPage {
    /// Go on with the next page.
    Next,
    /// That was the last page.
    Done,
    /// Another worker holds the connection now.
    LeaseLost,
    /// The connection was unlinked or deauthorized meanwhile.
    Cancelled(ConnectionStatus),
    /// The connection was deleted meanwhile.
    Gone,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::commerce::Customer;
    use crate::model::company::CompanyFields;
    use crate::ports::source::{ChangeSet, MockCommerceDataSource, RecordPage};

    fn changes(cursor: &str) -> ChangeSet {
        ChangeSet { upserts: vec![], deletions: vec![], cursor: cursor.into(), needs_backfill: false }
    }

    fn mock() -> MockCommerceDataSource {
        let mut m = MockCommerceDataSource::new();
        m.expect_list_changes().withf(|_, _, _, c| c.is_empty()).returning(|_, _, _, _| Ok(changes("start")));
        m
    }
    use crate::service::IntegrationUpdate;
    use crate::service::test_support::{Fixed, Mem, platform_with};
    use secrecy::SecretString;
    use std::sync::Mutex;

    fn customer(id: &str) -> CommerceRecord {
        CommerceRecord::Customer(Customer {
            id: id.into(),
            customer_name: Some(id.to_uppercase()),
            email_address: None,
            phone: None,
            default_currency: None,
            addresses: vec![],
            note: None,
            created_date: Some("2025-01-01T00:00:00Z".into()),
            modified_date: None,
            source_modified_date: None,
        })
    }

    async fn linked(mem: Arc<Mem>) -> (Platform, CompanyId, ConnectionId) {
        let p = platform_with(mem, Arc::new(Fixed(Mutex::new("2026-01-01T00:00:00Z".parse().unwrap()))));
        p.update_integration(
            "yzth",
            IntegrationUpdate { client_id: Some("ca".into()), secret_key: Some(SecretString::from("sk_test_x")), ..Default::default() },
        )
        .await
        .unwrap();
        p.set_integration_enabled("yzth", true).await.unwrap();
        let company = p.create_company(CompanyFields::new("Shop", None, Default::default()).unwrap()).await.unwrap().company.id;
        let mut c = p.create_connection(company, "yzth").await.unwrap();
        c.transition(ConnectionStatus::Linked).unwrap();
        c.source_account = Some("acct_1".into());
        p.repos.connections.update(&c, &[]).await.unwrap();
        (p, company, c.id)
    }

    fn engine(p: &Platform, source: MockCommerceDataSource) -> SyncEngine {
        SyncEngine::new(p.clone(), Arc::new(source), "w1".into(), Duration::from_secs(60))
    }

    /// Renders read events as their type and `[dataType, recordsModified, status]` entries.
    struct Reads;
    impl crate::model::webhook::EventRenderer for Reads {
        fn render(&self, e: &crate::model::webhook::WebhookEvent) -> String {
            let types: Vec<_> = match &e.subject {
                EventSubject::Read { data_types, .. } => {
                    data_types.iter().map(|d| serde_json::json!([d.data_type.key(), d.records_modified, d.status.as_str()])).collect()
                }
                _ => vec![],
            };
            serde_json::json!({"type": e.event_type.as_str(), "dataTypes": types}).to_string()
        }
    }

    #[tokio::test]
    async fn the_last_pull_of_a_read_writes_read_completed_and_the_first_read_is_also_initial() {
        let mem = Arc::new(Mem::default());
        let (_, company, _) = linked(mem.clone()).await;
        let clock = Arc::new(Fixed(Mutex::new("2026-01-01T00:00:00Z".parse().unwrap())));
        let p = platform_with(mem.clone(), clock.clone()).with_event_renderer(Arc::new(Reads));
        let mut source = mock();
        source
            .expect_list_page()
            .returning(|_, _, _, _| Ok(RecordPage { records: vec![customer("cus_1")], next_cursor: None, progress: Some(100) }));
        source.expect_list_changes().withf(|_, _, _, c| c == "start").returning(|_, _, _, _| Ok(changes("next")));
        p.queue_pull(company, DataType::Customers, None).await.unwrap();
        p.queue_pull(company, DataType::Payments, None).await.unwrap();
        mem.events.lock().unwrap().clear();
        let e = engine(&p, source);
        assert!(e.run_once().await.unwrap());
        let bodies: Vec<serde_json::Value> = mem.events.lock().unwrap().iter().map(|e| serde_json::from_str(&e.body).unwrap()).collect();
        let entries = serde_json::json!([["commerce-customers", true, "Complete"], ["commerce-payments", true, "Complete"]]);
        assert_eq!(
            bodies,
            vec![
                serde_json::json!({"type": "read.completed.initial", "dataTypes": entries}),
                serde_json::json!({"type": "read.completed", "dataTypes": entries})
            ],
            "one event pair, after the last pull of the read"
        );
        mem.events.lock().unwrap().clear();
        *clock.0.lock().unwrap() += chrono::Duration::hours(1);
        p.queue_pull(company, DataType::Customers, None).await.unwrap();
        assert!(e.run_once().await.unwrap());
        let bodies: Vec<serde_json::Value> = mem.events.lock().unwrap().iter().map(|e| serde_json::from_str(&e.body).unwrap()).collect();
        assert_eq!(
            bodies,
            vec![serde_json::json!({"type": "read.completed", "dataTypes": [["commerce-customers", false, "Complete"]]})],
            "a later read is not initial, and nothing changed"
        );
    }

    #[tokio::test]
    async fn a_pull_fetches_every_page_commits_checkpoints_and_completes() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem).await;
        let mut source = mock();
        source.expect_list_page().returning(|_, acct, _, cursor| {
            assert_eq!(acct, "acct_1");
            Ok(match cursor.as_deref() {
                None => {
                    RecordPage { records: vec![customer("cus_1"), customer("cus_2")], next_cursor: Some("p2".into()), progress: Some(50) }
                }
                Some("p2") => RecordPage { records: vec![customer("cus_3")], next_cursor: None, progress: Some(100) },
                other => panic!("unexpected cursor {other:?}"),
            })
        });
        let op = p.queue_pull(company, DataType::Customers, None).await.unwrap();
        assert_eq!(op.status, DatasetStatus::Queued);
        let again = p.queue_pull(company, DataType::Customers, Some(connection)).await.unwrap();
        assert_eq!(again.id, op.id, "an unfinished pull is reused");
        let e = engine(&p, source);
        assert!(e.run_once().await.unwrap());
        assert!(!e.run_once().await.unwrap(), "nothing left");
        let done = p.get_pull_operation(company, op.id).await.unwrap();
        assert_eq!((done.status, done.progress), (DatasetStatus::Complete, 100));
        assert_eq!(p.repos.records.count(connection, DataType::Customers, false).await.unwrap(), 3);
        let cp = p.repos.records.checkpoint(connection, DataType::Customers).await.unwrap().unwrap();
        assert_eq!((cp.cursor, cp.pages, cp.records), (None, 2, 3));
        let status = p.data_status(company).await.unwrap();
        assert_eq!(status[0].latest_successful.as_ref().unwrap().id, op.id);
        assert!(p.get_connection(company, connection).await.unwrap().last_sync.is_some());
    }

    #[tokio::test]
    async fn a_connection_unlinked_during_a_pull_cancels_it_and_the_page_fetched_meanwhile_is_not_written() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem.clone()).await;
        let mut source = mock();
        let unlink = mem.clone();
        source.expect_list_page().returning(move |_, _, _, cursor| {
            Ok(match cursor.as_deref() {
                None => {
                    // The merchant unlinks while the first page is on its way.
                    unlink.connections.lock().unwrap().iter_mut().for_each(|c| c.status = ConnectionStatus::Unlinked);
                    RecordPage { records: vec![customer("cus_1")], next_cursor: Some("p2".into()), progress: Some(50) }
                }
                _ => RecordPage { records: vec![customer("cus_2")], next_cursor: None, progress: Some(100) },
            })
        });
        let op = p.queue_pull(company, DataType::Customers, None).await.unwrap();
        engine(&p, source).run_once().await.unwrap();
        let done = p.get_pull_operation(company, op.id).await.unwrap();
        assert_eq!(done.status, DatasetStatus::Cancelled);
        assert!(done.error_message.unwrap().contains("Unlinked"));
        assert_eq!(p.repos.records.count(connection, DataType::Customers, true).await.unwrap(), 1, "only the page before the unlink");
    }

    #[tokio::test]
    async fn an_unlink_during_a_later_page_stops_the_pull_at_the_next_page_even_between_progress_updates() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem.clone()).await;
        let mut source = mock();
        let unlink = mem.clone();
        source.expect_list_page().returning(move |_, _, _, cursor| {
            Ok(match cursor.as_deref() {
                None => RecordPage { records: vec![customer("cus_1")], next_cursor: Some("p2".into()), progress: Some(33) },
                Some("p2") => {
                    // The clock does not move: no progress update is due after this page.
                    unlink.connections.lock().unwrap().iter_mut().for_each(|c| c.status = ConnectionStatus::Unlinked);
                    RecordPage { records: vec![customer("cus_2")], next_cursor: Some("p3".into()), progress: Some(66) }
                }
                _ => RecordPage { records: vec![customer("cus_3")], next_cursor: None, progress: Some(100) },
            })
        });
        let op = p.queue_pull(company, DataType::Customers, None).await.unwrap();
        engine(&p, source).run_once().await.unwrap();
        let done = p.get_pull_operation(company, op.id).await.unwrap();
        assert_eq!(done.status, DatasetStatus::Cancelled);
        assert!(p.repos.records.count(connection, DataType::Customers, true).await.unwrap() < 3, "the last page is not written");
    }

    #[tokio::test]
    async fn a_long_pull_keeps_its_lease_and_records_progress_between_pages_but_not_after_every_page() {
        let mem = Arc::new(Mem::default());
        let (_, company, connection) = linked(mem.clone()).await;
        let clock = Arc::new(Fixed(Mutex::new("2026-01-01T00:00:00Z".parse().unwrap())));
        let p = platform_with(mem.clone(), clock.clone());
        // 20 pages, each taking 200 ms to fetch; at every fetch, note the lease's expiry and the
        // pull's recorded progress.
        type Seen = Vec<(DateTime<Utc>, DateTime<Utc>, Option<String>)>;
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let (m, c, s) = (mem.clone(), clock.clone(), seen.clone());
        let mut source = mock();
        source.expect_list_page().returning(move |_, _, _, cursor| {
            let n: u32 = cursor.as_deref().map_or(1, |x| x.parse().unwrap());
            let now = {
                let mut t = c.0.lock().unwrap();
                *t += chrono::Duration::milliseconds(200);
                *t
            };
            let expires = m.leases.lock().unwrap().get(&connection).map(|(_, e)| *e).unwrap();
            let described = m.pulls.lock().unwrap().iter().find(|o| o.data_type == DataType::Customers).unwrap().status_description.clone();
            s.lock().unwrap().push((now, expires, described));
            Ok(RecordPage {
                records: vec![customer(&format!("cus_{n}"))],
                next_cursor: (n < 20).then(|| (n + 1).to_string()),
                progress: Some(u8::try_from(n * 5).unwrap()),
            })
        });
        let op = p.queue_pull(company, DataType::Customers, None).await.unwrap();
        let e = SyncEngine::new(p.clone(), Arc::new(source), "w1".into(), Duration::from_secs(1));
        assert!(e.run_once().await.unwrap());
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 20);
        for (now, expires, _) in &seen {
            assert!(expires > now, "the 1 s lease lapsed during the pull: expires {expires}, now {now}");
        }
        let recorded: std::collections::BTreeSet<_> = seen.iter().filter_map(|(_, _, d)| d.clone()).collect();
        assert!(
            (4..=12).contains(&recorded.len()),
            "progress recorded every 250 ms of a 4 s pull, not after each of its 20 pages: {recorded:?}"
        );
        let done = p.get_pull_operation(company, op.id).await.unwrap();
        assert_eq!((done.status, done.progress), (DatasetStatus::Complete, 100));
        assert_eq!(p.repos.records.count(connection, DataType::Customers, false).await.unwrap(), 20);
    }

    #[tokio::test]
    async fn a_pull_resumes_from_its_checkpoint() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem).await;
        let op = p.queue_pull(company, DataType::Customers, None).await.unwrap();
        let cp = Checkpoint { pull_id: op.id, cursor: Some("p2".into()), pages: 1, records: 2, incremental: None };
        p.repos
            .records
            .write_page(company, connection, DataType::Customers, &[to_stored(&customer("cus_1"))], &cp, p.clock.now())
            .await
            .unwrap();
        let mut source = mock();
        source
            .expect_list_page()
            .times(1)
            .withf(|_, _, _, cursor| cursor.as_deref() == Some("p2"))
            .returning(|_, _, _, _| Ok(RecordPage { records: vec![customer("cus_3")], next_cursor: None, progress: None }));
        engine(&p, source).run_once().await.unwrap();
        assert_eq!(p.get_pull_operation(company, op.id).await.unwrap().status, DatasetStatus::Complete);
    }

    #[tokio::test]
    async fn a_revoked_account_ends_auth_error_and_deauthorizes_and_a_403_ends_permissions_error() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem).await;
        let mut source = mock();
        source.expect_list_page().returning(|_, _, dt, _| match dt {
            DataType::Disputes => Err(SourceError::Permission("403 on /v1/disputes".into())),
            _ => Ok(RecordPage { records: vec![], next_cursor: None, progress: None }),
        });
        let disputes = p.queue_pull(company, DataType::Disputes, None).await.unwrap();
        let customers = p.queue_pull(company, DataType::Customers, None).await.unwrap();
        engine(&p, source).run_once().await.unwrap();
        assert_eq!(p.get_pull_operation(company, disputes.id).await.unwrap().status, DatasetStatus::PermissionsError);
        assert_eq!(p.get_pull_operation(company, customers.id).await.unwrap().status, DatasetStatus::Complete);

        let mut source = mock();
        source.expect_list_page().returning(|_, _, _, _| Err(SourceError::Auth("account_invalid".into())));
        let op = p.queue_pull(company, DataType::Products, None).await.unwrap();
        engine(&p, source).run_once().await.unwrap();
        let done = p.get_pull_operation(company, op.id).await.unwrap();
        assert_eq!(done.status, DatasetStatus::AuthError);
        assert!(done.error_message.unwrap().contains("account_invalid"));
        assert_eq!(p.get_connection(company, connection).await.unwrap().status, ConnectionStatus::Deauthorized);
        assert!(
            matches!(p.queue_pull(company, DataType::Products, None).await, Err(DomainError::InvalidState(_))),
            "a deauthorized connection is not synced"
        );
    }

    #[tokio::test]
    async fn a_later_pull_follows_changes_from_the_saved_cursor_and_soft_deletes() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem).await;
        let mut source = mock();
        source.expect_list_page().times(1).returning(|_, _, _, _| {
            Ok(RecordPage { records: vec![customer("cus_1"), customer("cus_2")], next_cursor: None, progress: None })
        });
        source.expect_list_changes().withf(|_, _, _, c| c == "start").times(1).returning(|_, _, _, _| {
            Ok(ChangeSet {
                upserts: vec![customer("cus_3")],
                deletions: vec!["cus_1".into()],
                cursor: "next".into(),
                needs_backfill: false,
            })
        });
        let e = engine(&p, source);
        p.queue_pull(company, DataType::Customers, None).await.unwrap();
        e.run_once().await.unwrap();
        let second = p.queue_pull(company, DataType::Customers, None).await.unwrap();
        e.run_once().await.unwrap();
        assert_eq!(p.get_pull_operation(company, second.id).await.unwrap().status, DatasetStatus::Complete);
        assert_eq!(p.repos.records.count(connection, DataType::Customers, false).await.unwrap(), 2, "cus_1 deleted, cus_3 added");
        assert!(p.repos.records.get(connection, DataType::Customers, "cus_1").await.unwrap().unwrap().record.deleted);
        let cp = p.repos.records.checkpoint(connection, DataType::Customers).await.unwrap().unwrap();
        assert_eq!(cp.incremental.as_deref(), Some("next"));
    }

    #[tokio::test]
    async fn a_change_cursor_that_is_too_old_triggers_a_full_backfill() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem).await;
        let mut source = mock();
        source
            .expect_list_page()
            .times(2)
            .returning(|_, _, _, _| Ok(RecordPage { records: vec![customer("cus_1")], next_cursor: None, progress: None }));
        source
            .expect_list_changes()
            .withf(|_, _, _, c| c == "start")
            .times(1)
            .returning(|_, _, _, _| Ok(ChangeSet { upserts: vec![], deletions: vec![], cursor: String::new(), needs_backfill: true }));
        let e = engine(&p, source);
        p.queue_pull(company, DataType::Customers, None).await.unwrap();
        e.run_once().await.unwrap();
        let second = p.queue_pull(company, DataType::Customers, None).await.unwrap();
        e.run_once().await.unwrap();
        assert_eq!(p.get_pull_operation(company, second.id).await.unwrap().status, DatasetStatus::Complete);
        assert_eq!(p.repos.records.checkpoint(connection, DataType::Customers).await.unwrap().unwrap().pull_id, second.id);
    }

    #[tokio::test]
    async fn due_data_types_of_linked_connections_are_queued_by_the_schedule() {
        let mem = Arc::new(Mem::default());
        let clock = Arc::new(Fixed(Mutex::new("2026-01-01T00:00:00Z".parse().unwrap())));
        let p = platform_with(mem, clock.clone());
        p.update_integration(
            "yzth",
            IntegrationUpdate { client_id: Some("ca".into()), secret_key: Some(SecretString::from("sk_test_x")), ..Default::default() },
        )
        .await
        .unwrap();
        p.set_integration_enabled("yzth", true).await.unwrap();
        let company = p.create_company(CompanyFields::new("Shop", None, Default::default()).unwrap()).await.unwrap().company.id;
        let mut c = p.create_connection(company, "yzth").await.unwrap();
        c.transition(ConnectionStatus::Linked).unwrap();
        c.source_account = Some("acct_1".into());
        p.repos.connections.update(&c, &[]).await.unwrap();
        let mut source = mock();
        source.expect_list_page().returning(|_, _, _, _| Ok(RecordPage { records: vec![], next_cursor: None, progress: None }));
        source.expect_list_changes().returning(|_, _, _, _| Ok(changes("next")));
        let e = engine(&p, source);
        p.queue_pull(company, DataType::Customers, None).await.unwrap();
        e.run_once().await.unwrap();
        assert!(p.queue_due().await.unwrap().is_empty(), "not due within the 24 h default schedule");
        *clock.0.lock().unwrap() += chrono::Duration::hours(25);
        let due = p.queue_due().await.unwrap();
        assert_eq!(
            due.iter().map(|o| o.data_type).collect::<Vec<_>>(),
            vec![DataType::Customers],
            "only types pulled before are scheduled"
        );
        assert!(p.queue_due().await.unwrap().is_empty(), "an unfinished pull is not queued twice");
        e.run_once().await.unwrap();
        *clock.0.lock().unwrap() += chrono::Duration::hours(25);
        p.repos.connections.set_status_if(c.id, ConnectionStatus::Linked, ConnectionStatus::Unlinked, &[]).await.unwrap();
        assert!(p.queue_due().await.unwrap().is_empty(), "an unlinked connection is never scheduled");
    }

    #[tokio::test]
    async fn unsupported_types_are_not_supported_at_once() {
        let mem = Arc::new(Mem::default());
        let (p, company, _) = linked(mem).await;
        let op = p.queue_pull(company, DataType::Orders, None).await.unwrap();
        assert_eq!((op.status, op.progress), (DatasetStatus::NotSupported, 100));
    }
}
