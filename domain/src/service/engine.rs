//! The sync engine (docs/architecture.md, "Backfills in partitions"): a worker leases a connection and runs all of its unfinished
//! pulls at once. A pull either follows the source's changes since its data type's last sync, or
//! backfills: the source plans partitions, and the worker pages as many of them at a time as the
//! source can use for the account (within [`SyncOptions::parallel_pages`]), those with the most
//! left first, splitting a partition that has much left whenever there is room for more pages
//! (in proportion to what every partition has left, once the lists' first pages are back). Every page is
//! committed with its partition's new cursor, so a killed worker resumes every partition where it
//! stood. The lease is renewed in the background every quarter of its length, and every write is
//! fenced by it: a worker that lost its lease (or whose connection was unlinked) commits nothing.

use super::Platform;
use super::records::to_stored;
use super::signal::{PageBudget, Signal};
use crate::error::{DomainError, RepositoryError};
use crate::ids::{ConnectionId, PullOperationId};
use crate::model::connection::{Connection, ConnectionStatus};
use crate::model::data_type::DataType;
use crate::model::pull::{DatasetStatus, PullOperation};
use crate::model::record::{Checkpoint, PartitionState, StagedItem, StoredRecord, SyncWrite};
use crate::model::webhook::{EventSubject, EventType, OutboxEvent, ReadDataType};
use crate::ports::Timer;
use crate::ports::oauth::PlatformCredentials;
use crate::ports::source::{CommerceDataSource, SourceError, StagedLookup};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::future::{Either, select};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// How often a running pull records its progress.
const BOOKKEEPING_EVERY: Duration = Duration::from_millis(500);
/// The longest a list whose first page is back waits for the other lists' first pages before it
/// is split anyway.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// How a worker syncs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// The pages all of the process's workers may hold at once (fetched, not yet written): give
    /// every worker of a process the same one.
    pub pages: Arc<PageBudget>,
    /// How long a lease on a connection lasts without renewal. The worker renews it every quarter
    /// of this while it runs, whatever its requests are doing; another worker takes a connection
    /// over only when its worker has stopped renewing (died, or lost the database) for this long.
    pub lease_for: Duration,
    /// Pages of one connection fetched and written at once, across its pulls.
    pub parallel_pages: usize,
    /// The waits before writing a pull's records again when the store fails: a failure that
    /// outlasts them (a record the store refuses) ends the pull in `InternalError`, and the
    /// connection's other pulls go on.
    pub store_retries: Vec<Duration>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            pages: Arc::new(PageBudget::default()),
            lease_for: Duration::from_secs(60),
            parallel_pages: 64,
            store_retries: vec![Duration::from_millis(500), Duration::from_secs(2), Duration::from_secs(5)],
        }
    }
}

/// A sync worker: leases connections with queued pulls and runs them.
#[derive(Clone)]
pub struct SyncEngine {
    platform: Platform,
    source: Arc<dyn CommerceDataSource>,
    timer: Arc<dyn Timer>,
    worker: String,
    opts: SyncOptions,
}

/// A boxed future of the engine's task set.
type Task<'a> = Pin<Box<dyn Future<Output = Event> + Send + 'a>>;

/// What the read of a connection has done so far (for `read.completed`).
#[derive(Debug, Default)]
struct ReadRun {
    /// The earliest request time of the pulls run.
    first_requested: Option<DateTime<Utc>>,
    /// The connection's last sync before this read.
    modified_from: Option<DateTime<Utc>>,
    /// Per finished pull: whether it changed records.
    modified: HashMap<PullOperationId, bool>,
}

/// What a pull reads with, shared by its tasks.
struct PullCtx {
    company: crate::ids::CompanyId,
    connection: ConnectionId,
    data_type: DataType,
    creds: PlatformCredentials,
    /// The integration's platform key, and whether its secret key was last refused.
    platform_key: String,
    key_refused: bool,
    account: String,
    lookup: Arc<dyn StagedLookup>,
}

/// Why a pull fails.
#[derive(Debug, Clone)]
enum Failure {
    /// The source failed.
    Source(SourceError),
    /// Its records could not be stored, on every attempt (the reason is in the server's log).
    Store { attempts: usize },
}

impl Failure {
    fn status(&self) -> DatasetStatus {
        match self {
            Self::Source(e) => status_for(e),
            Self::Store { .. } => DatasetStatus::InternalError,
        }
    }

    /// What the pull says to clients (a storage error's text is for logs only).
    fn message(&self) -> String {
        match self {
            Self::Source(e) => e.to_string(),
            Self::Store { attempts } => format!(
                "The records read could not be stored ({attempts} attempts): the store refused them. The server's log has the reason."
            ),
        }
    }
}

/// A pull being run.
struct PullRun {
    op: PullOperation,
    ctx: Arc<PullCtx>,
    /// `None` while it is being started.
    parts: Option<BTreeMap<u32, Part>>,
    /// The change cursor to keep once the backfill is done.
    incremental: Option<String>,
    /// Records inserted or changed by this pull.
    changed: u64,
    /// The first failure: no more pages start, and the pull ends with it once its running pages
    /// are back.
    failed: Option<Failure>,
    /// When progress was last written.
    kept_at: Option<DateTime<Utc>>,
}

/// A partition of a running pull.
struct Part {
    state: PartitionState,
    /// A page of it is being fetched or written.
    busy: bool,
    /// Planned, and its first page is not back: how much it holds is not known yet.
    probe: bool,
    /// Waiting, idle, for the other lists' first pages, to be split in proportion to them.
    held: bool,
}

impl Part {
    fn new(state: PartitionState, probe: bool) -> Self {
        Self { state, busy: false, probe, held: false }
    }
}

impl PullRun {
    fn parts(&self) -> impl Iterator<Item = &Part> {
        self.parts.iter().flat_map(BTreeMap::values)
    }

    fn busy(&self) -> usize {
        self.parts().filter(|p| p.busy).count()
    }

    /// The lowest stage with an unfinished partition.
    fn stage(&self) -> Option<u16> {
        self.parts().filter(|p| p.state.cursor.is_some()).map(|p| p.state.stage).min()
    }

    /// Idle, unfinished partitions of the current stage, when pages of this pull may start.
    fn runnable(&self) -> Vec<u32> {
        let Some(stage) = self.stage() else { return Vec::new() };
        if self.failed.is_some() {
            return Vec::new();
        }
        self.parts().filter(|p| !p.busy && !p.held && p.state.cursor.is_some() && p.state.stage == stage).map(|p| p.state.id).collect()
    }

    /// Planned partitions of the current stage whose first page is not back.
    fn probes(&self) -> usize {
        let Some(stage) = self.stage() else { return 0 };
        self.parts().filter(|p| p.probe && p.state.cursor.is_some() && p.state.stage == stage).count()
    }

    /// Every partition is done.
    fn walked(&self) -> bool {
        self.parts.as_ref().is_some_and(|parts| parts.values().all(|p| p.state.cursor.is_none()))
    }

    fn records(&self) -> u64 {
        self.parts().map(|p| p.state.records).sum()
    }

    /// Objects listed over objects listed and left, 0–99.
    fn progress(&self) -> i32 {
        let (done, left) = self.parts().fold((0u64, 0u64), |(d, l), p| (d + p.state.estimate.done, l + p.state.estimate.left));
        if done + left == 0 {
            return 0;
        }
        i32::try_from((done.saturating_mul(100) / (done + left)).min(99)).unwrap_or(99)
    }
}

/// How a pull's start ended.
enum Begun {
    /// Walk these partitions (a new plan, or those of a resumed backfill).
    Walk { parts: Vec<PartitionState>, incremental: Option<String>, planned: bool },
    /// A change set to write, completing the pull.
    Changes { records: Vec<StoredRecord>, checkpoint: Checkpoint },
    /// The pull's backfill was already done (its completion was not recorded).
    AlreadyDone,
    /// The source failed.
    Failed(SourceError),
}

/// How a page ended.
enum Stepped {
    /// Fetched and written.
    Written { state: PartitionState, changed: u64 },
    /// The source failed, or the page could not be stored.
    Failed(Failure),
    /// Stopped before it was written (the run is stopping).
    Halted,
}

/// What one of the run's tasks reports.
enum Event {
    Begun(PullOperationId, Result<Begun, RepositoryError>),
    Stepped(PullOperationId, u32, Result<Stepped, RepositoryError>),
    /// Held partitions have waited long enough for the others' first pages.
    Release,
}

/// Why a run stops early.
enum Stop {
    /// A fenced write was refused (the lease was lost, or the connection unlinked or deleted).
    Refused,
    /// Another worker holds the connection now.
    LeaseLost,
    /// The connection was unlinked or deauthorized.
    Cancelled(ConnectionStatus),
    /// The connection was deleted.
    Gone,
    /// Storage failed.
    Failed(DomainError),
}

/// What a failed write means for the run (a refused write, or one whose connection has gone, is
/// explained by the connection's state in [`SyncEngine::stopped`]).
fn stop_for(e: RepositoryError) -> Stop {
    match e {
        RepositoryError::Fenced(_) | RepositoryError::NotFound(_) => Stop::Refused,
        other => Stop::Failed(other.into()),
    }
}

/// What a failed finish means for the run.
fn stop_for_domain(e: DomainError) -> Stop {
    match e {
        DomainError::Repository(RepositoryError::Fenced(_)) | DomainError::NotFound(_) => Stop::Refused,
        other => Stop::Failed(other),
    }
}

fn status_for(e: &SourceError) -> DatasetStatus {
    match e {
        SourceError::Auth(_) => DatasetStatus::AuthError,
        SourceError::PlatformAuth(_) => DatasetStatus::InternalError,
        SourceError::Permission(_) => DatasetStatus::PermissionsError,
        SourceError::Fetch(_) => DatasetStatus::FetchError,
        SourceError::RateLimited { .. } => DatasetStatus::RateLimitError,
    }
}

/// Awaits `op` while the tasks keep running; the reports of those that finish meanwhile are kept
/// in `backlog`.
async fn alongside<'a, T>(op: impl Future<Output = T>, tasks: &mut FuturesUnordered<Task<'a>>, backlog: &mut VecDeque<Event>) -> T {
    let mut op = pin!(op);
    loop {
        if tasks.is_empty() {
            return op.await;
        }
        match select(op.as_mut(), tasks.next()).await {
            Either::Left((out, _)) => return out,
            Either::Right((Some(event), _)) => backlog.push_back(event),
            Either::Right((None, _)) => return op.await,
        }
    }
}

/// `fut`'s output, or `None` when `halt` fires first (the future is dropped).
async fn until<T>(halt: &Signal, fut: impl Future<Output = T>) -> Option<T> {
    match select(pin!(fut), pin!(halt.wait())).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(_) => None,
    }
}

/// What a task reports when the run stopped it before it was done.
fn halted() -> RepositoryError {
    RepositoryError::Fenced("the run is stopping".into())
}

/// Staged items of a pull's backfill, read from storage.
struct Staged {
    records: Arc<dyn crate::ports::RecordRepository>,
    connection: ConnectionId,
    data_type: DataType,
}

#[async_trait]
impl StagedLookup for Staged {
    async fn staged(&self, keys: Vec<String>) -> Result<Vec<StagedItem>, SourceError> {
        self.records
            .staged(self.connection, self.data_type, &keys)
            .await
            .map_err(|e| SourceError::Fetch(format!("staged items could not be read: {e}")))
    }
}

impl SyncEngine {
    /// A worker named `worker` (unique per process and task).
    pub fn new(platform: Platform, source: Arc<dyn CommerceDataSource>, timer: Arc<dyn Timer>, worker: String, opts: SyncOptions) -> Self {
        Self { platform, source, timer, worker, opts }
    }

    /// Leases one connection with queued pulls and runs all of them, those queued meanwhile
    /// included. Returns whether there was work.
    ///
    /// # Errors
    /// Storage failures; source failures end the pull in an error status instead.
    pub async fn run_once(&self) -> Result<bool, DomainError> {
        let now = self.platform.clock.now();
        let Some(connection) = self.platform.repos.sync_leases.lease_next(&self.worker, now, self.opts.lease_for).await? else {
            return Ok(false);
        };
        // Fired when the lease is lost, or when the run stops early: fetches stop at once.
        let halt = Signal::default();
        let result = {
            // Every log line of the run carries the connection (JSON logs show span fields).
            let span = tracing::info_span!("sync", connection.id = %connection, worker = %self.worker);
            let run = pin!(self.run_connection(connection, &halt).instrument(span));
            let keep = pin!(self.keep_lease(connection, &halt));
            match select(run, keep).await {
                Either::Left((result, _)) => result,
                // The lease is lost: the run stops at once (`halt` fired) and commits nothing more.
                Either::Right(((), run)) => run.await,
            }
        };
        let released = self.platform.repos.sync_leases.release(connection, &self.worker).await;
        result?;
        released?;
        Ok(true)
    }

    /// Renews the lease every quarter of its length; returns (having fired `halt`) once it is lost.
    async fn keep_lease(&self, connection: ConnectionId, halt: &Signal) {
        let every = (self.opts.lease_for / 4).max(Duration::from_millis(5));
        loop {
            self.timer.sleep(every).await;
            let now = self.platform.clock.now();
            match self.platform.repos.sync_leases.renew(connection, &self.worker, now, self.opts.lease_for).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(connection.id = %connection, worker = %self.worker, "sync lease lost; stopping");
                    halt.fire();
                    return;
                }
                Err(e) => tracing::warn!(connection.id = %connection, error = %e, "sync lease not renewed; retrying"),
            }
        }
    }

    /// Runs the connection's unfinished pulls until none is left or the run has to stop.
    async fn run_connection(&self, id: ConnectionId, halt: &Signal) -> Result<(), DomainError> {
        let Some(connection) = self.platform.repos.connections.find(id).await? else { return Ok(()) };
        let mut read = ReadRun { modified_from: connection.last_sync, ..ReadRun::default() };
        if connection.status != ConnectionStatus::Linked {
            for op in self.platform.repos.pull_operations.unfinished_for_connection(id).await? {
                let why = format!("The connection is {}; it is not synced.", connection.status);
                self.finish_unfenced(&mut read, op, DatasetStatus::Cancelled, Some(why), false).await?;
            }
            return Ok(());
        }
        let mut pulls: Vec<PullRun> = Vec::new();
        let mut tasks: FuturesUnordered<Task<'_>> = FuturesUnordered::new();
        // Reports of tasks that finished while the loop awaited something else.
        let mut backlog: VecDeque<Event> = VecDeque::new();
        let mut refresh = true;
        let mut stop: Option<Stop> = None;
        // Fired when held partitions are let go (ends the wait for them early).
        let mut released: Option<Signal> = None;
        loop {
            let holding = pulls.iter().any(|p| p.parts().any(|x| x.held));
            match (&released, holding) {
                (None, true) => {
                    let done = Signal::default();
                    let (wait, stop, done2) = (self.timer.sleep(PROBE_WAIT), halt.clone(), done.clone());
                    tasks.push(Box::pin(async move {
                        let _ = until(&stop, until(&done2, wait)).await;
                        Event::Release
                    }));
                    released = Some(done);
                }
                (Some(done), false) => {
                    done.fire();
                    released = None;
                }
                _ => {}
            }
            if halt.is_fired() && stop.is_none() {
                stop = Some(Stop::LeaseLost);
            }
            if stop.is_some() {
                halt.fire();
                if tasks.is_empty() {
                    let Some(s) = stop else { return Ok(()) };
                    return self.stopped(&mut read, id, pulls, s).await;
                }
            } else {
                if refresh {
                    refresh = false;
                    let unfinished = alongside(self.platform.repos.pull_operations.unfinished_for_connection(id), &mut tasks, &mut backlog);
                    for op in unfinished.await? {
                        // One pull of a data type at a time: they share its checkpoint, partitions
                        // and staged items (a second one runs once the first is done).
                        if pulls.iter().any(|p| p.op.id == op.id || p.op.data_type == op.data_type) {
                            continue;
                        }
                        match alongside(self.start(&connection, op, halt), &mut tasks, &mut backlog).await {
                            Ok((run, task)) => {
                                pulls.push(run);
                                tasks.push(task);
                            }
                            Err((op, status, why)) => {
                                let end = self.end_unstarted(&mut read, op, status, why);
                                if let Err(e) = alongside(end, &mut tasks, &mut backlog).await {
                                    stop = Some(stop_for_domain(e));
                                    break;
                                }
                            }
                        }
                    }
                }
                self.launch(&mut pulls, &mut tasks, halt);
                if tasks.is_empty() && backlog.is_empty() {
                    if pulls.is_empty() {
                        return Ok(());
                    }
                    // Every running pull is idle: only a finished walk can leave it so.
                    refresh = true;
                }
            }
            let event = match backlog.pop_front() {
                Some(event) => event,
                None => match tasks.next().await {
                    Some(event) => event,
                    None => continue,
                },
            };
            if stop.is_some() {
                continue; // draining
            }
            // The tasks run on while a report is handled: one of them may hold what the handling
            // waits for (the store's write lock, a pool's last connection).
            match alongside(self.handle(&mut read, &mut pulls, event, halt), &mut tasks, &mut backlog).await {
                Ok(Handled::Going) => {}
                Ok(Handled::Finished) => refresh = true,
                Err(s) => stop = Some(s),
            }
        }
    }

    /// How many pages of the connection are worth having in flight: what the source can use for
    /// its account, within [`SyncOptions::parallel_pages`].
    fn target(&self, pulls: &[PullRun]) -> usize {
        let useful = pulls.first().map_or(usize::MAX, |p| self.source.parallelism(&p.ctx.creds, &p.ctx.account));
        self.opts.parallel_pages.min(useful).max(1)
    }

    /// Starts pages of idle partitions up to [`Self::target`]: first those a later stage waits for,
    /// then those with the most left (the longest chains of pages set the end of the backfill).
    fn launch<'a>(&'a self, pulls: &mut [PullRun], tasks: &mut FuturesUnordered<Task<'a>>, halt: &Signal) {
        let running: usize = pulls.iter().map(PullRun::busy).sum();
        let room = self.target(pulls).saturating_sub(running);
        if room == 0 {
            return;
        }
        // Partitions a later stage waits for go first, then those with the most left.
        let mut ready: Vec<(bool, u64, usize, u32)> = pulls
            .iter()
            .enumerate()
            .flat_map(|(i, p)| {
                let blocking = p.stage().is_some_and(|stage| p.parts().any(|x| x.state.cursor.is_some() && x.state.stage > stage));
                p.runnable()
                    .into_iter()
                    .map(move |id| (blocking, p.parts.as_ref().and_then(|x| x.get(&id)).map_or(0, |x| x.state.estimate.left), i, id))
            })
            .collect();
        ready.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3)));
        for (_, _, i, part) in ready.into_iter().take(room) {
            let p = &mut pulls[i];
            let Some(slot) = p.parts.as_mut().and_then(|parts| parts.get_mut(&part)) else { continue };
            slot.busy = true;
            let span = tracing::info_span!("pull", pull.id = %p.op.id, sync.data_type = %p.op.data_type, partition = part);
            tasks.push(Box::pin(self.step(p.op.id, p.ctx.clone(), slot.state.clone(), halt.clone()).instrument(span)));
        }
    }

    /// Sets up a pull and the task that starts it; `Err` when it cannot be read at all.
    async fn start<'a>(
        &'a self,
        connection: &Connection,
        mut op: PullOperation,
        halt: &Signal,
    ) -> Result<(PullRun, Task<'a>), (PullOperation, DatasetStatus, String)> {
        tracing::info!(connection.id = %op.connection_id, sync.data_type = %op.data_type, pull.id = %op.id, "pull started");
        let (creds, key_refused) = match self.platform.integrations().credentials_and_refusal(connection.platform_key.as_str()).await {
            Ok(c) => c,
            Err(e) => return Err((op, DatasetStatus::InternalError, e.to_string())),
        };
        let Some(account) = connection.source_account.clone() else {
            return Err((op, DatasetStatus::AuthError, "The connection has no linked account.".into()));
        };
        let queued = op.status != DatasetStatus::Fetching;
        op.status = DatasetStatus::Fetching;
        let ctx = Arc::new(PullCtx {
            company: op.company_id,
            connection: op.connection_id,
            data_type: op.data_type,
            creds,
            platform_key: connection.platform_key.as_str().to_owned(),
            key_refused,
            account,
            lookup: Arc::new(Staged {
                records: self.platform.repos.records.clone(),
                connection: op.connection_id,
                data_type: op.data_type,
            }),
        });
        let span = tracing::info_span!("pull", pull.id = %op.id, sync.data_type = %op.data_type);
        let task: Task<'a> = Box::pin(self.begin(op.clone(), ctx.clone(), halt.clone(), queued).instrument(span));
        Ok((PullRun { op, ctx, parts: None, incremental: None, changed: 0, failed: None, kept_at: None }, task))
    }

    /// A fenced write on the pull's data type.
    async fn write(&self, ctx: &PullCtx, w: SyncWrite) -> Result<u64, RepositoryError> {
        self.write_fenced(ctx, &SyncWrite { fence: Some(self.worker.clone()), ..w }).await
    }

    /// [`Self::write`] of a write already fenced (written again as it is on a retry).
    async fn write_fenced(&self, ctx: &PullCtx, w: &SyncWrite) -> Result<u64, RepositoryError> {
        let changed =
            self.platform.repos.records.write_sync(ctx.company, ctx.connection, ctx.data_type, w, self.platform.clock.now()).await?;
        let deletes = w.records.iter().filter(|r| r.deleted).count() as u64;
        crate::metrics::records_written(ctx.data_type, w.records.len() as u64 - deletes, deletes);
        if let Some((op, _)) = w.pull.as_ref().filter(|(op, _)| op.status.is_terminal()) {
            crate::metrics::pull_finished(op);
        }
        Ok(changed)
    }

    /// Writes records (a page, a change set), writing again after each of
    /// [`SyncOptions::store_retries`] when the store fails; `Ok(Err)` when it failed every time (a
    /// record the store refuses must not hold the connection back for ever). A refused (fenced)
    /// write is not retried.
    async fn write_records(&self, ctx: &PullCtx, w: SyncWrite, halt: &Signal) -> Result<Result<u64, Failure>, RepositoryError> {
        let w = SyncWrite { fence: Some(self.worker.clone()), ..w };
        let mut waits = self.opts.store_retries.iter();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let e = match self.write_fenced(ctx, &w).await {
                Ok(changed) => return Ok(Ok(changed)),
                Err(e @ (RepositoryError::Fenced(_) | RepositoryError::NotFound(_))) => return Err(e),
                Err(e) => e,
            };
            let Some(wait) = waits.next() else {
                tracing::error!(
                    connection.id = %ctx.connection, sync.data_type = %ctx.data_type, attempts, error = %e,
                    "records could not be stored; the pull ends in InternalError"
                );
                return Ok(Err(Failure::Store { attempts }));
            };
            tracing::warn!(connection.id = %ctx.connection, sync.data_type = %ctx.data_type, attempts, error = %e, retry_in = ?wait, "records not stored; writing again");
            if until(halt, self.timer.sleep(*wait)).await.is_none() {
                return Err(halted());
            }
        }
    }

    /// Starts a pull: resumes its backfill, follows the changes since the last sync, or plans a
    /// new backfill (the change cursor taken first, so changes made during it are seen after).
    async fn begin(&self, op: PullOperation, ctx: Arc<PullCtx>, halt: Signal, queued: bool) -> Event {
        let id = op.id;
        let outcome = async {
            let checkpoint = self.platform.repos.records.checkpoint(ctx.connection, ctx.data_type).await?;
            if queued {
                self.write(&ctx, SyncWrite { pull: Some((op.clone(), Vec::new())), ..SyncWrite::default() }).await?;
            }
            match checkpoint {
                // A backfill under way, this pull's (resumed after a crash) or an earlier pull's that
                // failed (a source or storage failure): it goes on from its partitions' positions
                // instead of reading the account again.
                Some(cp) if cp.backfilling => {
                    let parts = self.platform.repos.records.partitions(ctx.connection, ctx.data_type).await?;
                    return Ok(Begun::Walk { parts, incremental: cp.incremental, planned: false });
                }
                Some(cp) if cp.pull_id == op.id => return Ok(Begun::AlreadyDone),
                Some(Checkpoint { backfilling: false, incremental: Some(cursor), .. }) => {
                    let Some(changes) = until(&halt, self.source.list_changes(&ctx.creds, &ctx.account, ctx.data_type, cursor)).await
                    else {
                        return Err(halted());
                    };
                    match changes {
                        Err(e) => return Ok(Begun::Failed(e)),
                        Ok(c) if c.needs_backfill => {
                            tracing::info!(connection.id = %ctx.connection, sync.data_type = %ctx.data_type, "change cursor too old; full backfill");
                        }
                        Ok(c) => {
                            let mut records: Vec<StoredRecord> = c.upserts.iter().map(to_stored).collect();
                            for gone in &c.deletions {
                                if let Some(row) = self.platform.repos.records.get(ctx.connection, ctx.data_type, gone).await?
                                    && !row.record.deleted
                                {
                                    records.push(StoredRecord { deleted: true, ..row.record });
                                }
                            }
                            let checkpoint = Checkpoint { pull_id: op.id, backfilling: false, incremental: Some(c.cursor) };
                            return Ok(Begun::Changes { records, checkpoint });
                        }
                    }
                }
                _ => {}
            }
            let Some(start) = until(&halt, self.source.list_changes(&ctx.creds, &ctx.account, ctx.data_type, String::new())).await
            else {
                return Err(halted());
            };
            let start = match start {
                Ok(s) => s,
                Err(e) => return Ok(Begun::Failed(e)),
            };
            let Some(plan) = until(&halt, self.source.plan_backfill(&ctx.creds, &ctx.account, ctx.data_type)).await else {
                return Err(halted());
            };
            let plan = match plan {
                Ok(p) => p,
                Err(e) => return Ok(Begun::Failed(e)),
            };
            let parts: Vec<PartitionState> = plan
                .into_iter()
                .zip(0u32..)
                .map(|(p, id)| PartitionState { id, stage: p.stage, cursor: Some(p.cursor), records: 0, estimate: p.estimate })
                .collect();
            let checkpoint = Checkpoint { pull_id: op.id, backfilling: true, incremental: Some(start.cursor) };
            let incremental = checkpoint.incremental.clone();
            let w = SyncWrite { reset: true, checkpoint: Some(checkpoint), partitions: parts.clone(), ..SyncWrite::default() };
            self.write(&ctx, w).await?;
            Ok(Begun::Walk { parts, incremental, planned: true })
        }
        .await;
        Event::Begun(id, outcome)
    }

    /// Fetches the partition's next page and writes it with the partition's new position.
    async fn step(&self, pull: PullOperationId, ctx: Arc<PullCtx>, part: PartitionState, halt: Signal) -> Event {
        let id = part.id;
        let outcome = async {
            let Some(cursor) = part.cursor.clone() else { return Ok(Stepped::Halted) };
            // Held until the page is written: the process holds at most so many pages at once.
            let Some(_place) = until(&halt, self.opts.pages.acquire()).await else { return Ok(Stepped::Halted) };
            let page = match until(&halt, self.source.list_page(&ctx.creds, &ctx.account, ctx.data_type, cursor, ctx.lookup.clone())).await
            {
                Some(Ok(page)) => page,
                Some(Err(e)) => return Ok(Stepped::Failed(Failure::Source(e))),
                None => return Ok(Stepped::Halted),
            };
            if halt.is_fired() {
                return Ok(Stepped::Halted);
            }
            let records: Vec<StoredRecord> = page.records.iter().map(to_stored).collect();
            let state =
                PartitionState { cursor: page.next_cursor, records: part.records + records.len() as u64, estimate: page.estimate, ..part };
            let w = SyncWrite { records, staged: page.staged, partitions: vec![state.clone()], ..SyncWrite::default() };
            match self.write_records(&ctx, w, &halt).await? {
                Ok(changed) => Ok(Stepped::Written { state, changed }),
                Err(failure) => Ok(Stepped::Failed(failure)),
            }
        }
        .await;
        Event::Stepped(pull, id, outcome)
    }

    /// Handles one task's report; `Err` when the run has to stop.
    async fn handle(&self, read: &mut ReadRun, pulls: &mut Vec<PullRun>, event: Event, halt: &Signal) -> Result<Handled, Stop> {
        let (pull, outcome) = match event {
            Event::Begun(pull, outcome) => (pull, outcome.map(Either::Left)),
            Event::Stepped(pull, part, outcome) => (pull, outcome.map(|s| Either::Right((part, s)))),
            Event::Release => {
                self.release(pulls).await?;
                return Ok(Handled::Going);
            }
        };
        let outcome = outcome.map_err(stop_for)?;
        let Some(i) = pulls.iter().position(|p| p.op.id == pull) else { return Ok(Handled::Going) };
        match outcome {
            Either::Left(Begun::Walk { parts, incremental, planned }) => {
                let run = &mut pulls[i];
                run.parts = Some(parts.into_iter().map(|state| (state.id, Part::new(state, planned))).collect());
                run.incremental = incremental;
                tracing::debug!(pull.id = %pull, partitions = run.parts().count(), "walking partitions");
            }
            Either::Left(Begun::Changes { records, checkpoint }) => {
                // The change set and its cursor in one write; the pull completes after.
                let mut run = pulls.remove(i);
                let w = SyncWrite { records, checkpoint: Some(checkpoint), ..SyncWrite::default() };
                match self.write_records(&run.ctx, w, halt).await.map_err(stop_for)? {
                    Ok(changed) => run.changed += changed,
                    Err(failure) => {
                        self.fail(read, run, &failure).await.map_err(stop_for_domain)?;
                        return Ok(Handled::Finished);
                    }
                }
                run.op.status_description = Some(format!("{} records changed since the last sync", run.changed));
                self.complete(read, run, false).await.map_err(stop_for_domain)?;
                return Ok(Handled::Finished);
            }
            Either::Left(Begun::AlreadyDone) => {
                let run = pulls.remove(i);
                self.complete(read, run, false).await.map_err(stop_for_domain)?;
                return Ok(Handled::Finished);
            }
            Either::Left(Begun::Failed(e)) => pulls[i].failed = Some(Failure::Source(e)),
            Either::Right((part, Stepped::Written { state, changed })) => {
                let run = &mut pulls[i];
                run.changed += changed;
                let open = state.cursor.is_some();
                let mut first = false;
                if let Some(slot) = run.parts.as_mut().and_then(|parts| parts.get_mut(&part)) {
                    slot.state = state;
                    slot.busy = false;
                    first = std::mem::take(&mut slot.probe);
                }
                // A list's first page tells how much it holds: it is split in proportion to the
                // lists planned with it, so it waits (idle) for their first pages.
                let hold = first && open && pulls.iter().any(|p| p.probes() > 0);
                if let Some(slot) = pulls[i].parts.as_mut().and_then(|parts| parts.get_mut(&part)) {
                    slot.held = hold;
                }
                if open {
                    self.split(pulls, i, part).await?;
                }
                if pulls.iter().all(|p| p.probes() == 0) {
                    self.release(pulls).await?;
                }
                self.keep_progress(&mut pulls[i]).await?;
            }
            Either::Right((part, Stepped::Failed(e))) => {
                let run = &mut pulls[i];
                if let Some(slot) = run.parts.as_mut().and_then(|parts| parts.get_mut(&part)) {
                    slot.busy = false;
                    slot.probe = false;
                }
                run.failed.get_or_insert(e);
                if pulls.iter().all(|p| p.probes() == 0) {
                    self.release(pulls).await?;
                }
            }
            Either::Right((part, Stepped::Halted)) => {
                if let Some(slot) = pulls[i].parts.as_mut().and_then(|parts| parts.get_mut(&part)) {
                    slot.busy = false;
                }
            }
        }
        // A pull whose pages are all back ends: failed, or complete once every partition is done.
        let run = &pulls[i];
        if run.busy() == 0 && (run.parts.is_some() || run.failed.is_some()) {
            if let Some(e) = run.failed.clone() {
                let run = pulls.remove(i);
                self.fail(read, run, &e).await.map_err(stop_for_domain)?;
                return Ok(Handled::Finished);
            }
            if run.walked() {
                let run = pulls.remove(i);
                self.complete(read, run, true).await.map_err(stop_for_domain)?;
                return Ok(Handled::Finished);
            }
        }
        Ok(Handled::Going)
    }

    /// Splits the partition just written into its share of the pages the connection can have in
    /// flight ([`Self::target`]) by what it has left among all the connection's partitions, so that
    /// parts are as long as possible (every part ends in a partial page) and shorten only as the
    /// backfill nears its end; at most as many partitions wait for a page as are in flight. The
    /// source divides what is left of it, and the new partitions are saved before any of them is
    /// paged.
    async fn split(&self, pulls: &mut [PullRun], i: usize, part: u32) -> Result<(), Stop> {
        let busy: usize = pulls.iter().map(PullRun::busy).sum();
        let ready: usize = pulls.iter().map(|p| p.runnable().len()).sum();
        let ctx = pulls[i].ctx.clone();
        let target = self.target(pulls);
        // Up to as many partitions again may wait for a page: the largest go first (see
        // [`Self::launch`]), so a list found larger than thought gets its share as pages free up.
        let room = (2 * target).saturating_sub(busy + ready);
        // What is left of every unfinished partition of the current stages, and of this one.
        let left: u64 = pulls
            .iter()
            .filter_map(|p| p.stage().map(|stage| (p, stage)))
            .flat_map(|(p, stage)| p.parts().filter(move |x| x.state.cursor.is_some() && x.state.stage == stage))
            .map(|x| x.state.estimate.left)
            .sum();
        let run = &mut pulls[i];
        let Some(slot) = run.parts.as_ref().and_then(|p| p.get(&part)) else { return Ok(()) };
        let (Some(cursor), mine) = (slot.state.cursor.clone(), slot.state.estimate.left) else { return Ok(()) };
        if room == 0 || slot.held || run.failed.is_some() || !run.runnable().contains(&part) {
            return Ok(());
        }
        let share = (left / target as u64).max(1);
        // Whole shares: a partition is split only once it holds at least two.
        let deserved = usize::try_from(mine / share).unwrap_or(usize::MAX);
        let parts = deserved.min(room + 1);
        if parts < 2 {
            return Ok(());
        }
        let planned = self.source.split(&ctx.creds, &ctx.account, ctx.data_type, &cursor, parts);
        if planned.len() < 2 {
            return Ok(());
        }
        let Some(parts) = run.parts.as_mut() else { return Ok(()) };
        let Some(current) = parts.get(&part).map(|p| p.state.clone()) else { return Ok(()) };
        // The first keeps the partition's id and records; the others get new ids.
        let first_new = parts.keys().next_back().map_or(0, |k| k + 1);
        let states: Vec<PartitionState> = planned
            .into_iter()
            .zip(std::iter::once(part).chain(first_new..))
            .map(|(p, id)| PartitionState {
                id,
                stage: current.stage,
                cursor: Some(p.cursor),
                records: if id == part { current.records } else { 0 },
                estimate: p.estimate,
            })
            .collect();
        self.write(&run.ctx, SyncWrite { partitions: states.clone(), ..SyncWrite::default() }).await.map_err(stop_for)?;
        tracing::debug!(pull.id = %run.op.id, partition = part, into = states.len(), "partition split");
        for state in states {
            parts.insert(state.id, Part::new(state, false));
        }
        Ok(())
    }

    /// Lets held partitions go, largest first, each split by its share of the room.
    async fn release(&self, pulls: &mut [PullRun]) -> Result<(), Stop> {
        let mut held: Vec<(u64, usize, u32)> = Vec::new();
        for (i, run) in pulls.iter_mut().enumerate() {
            for p in run.parts.iter_mut().flat_map(BTreeMap::values_mut).filter(|p| p.held) {
                p.held = false;
                held.push((p.state.estimate.left, i, p.state.id));
            }
        }
        held.sort_unstable_by(|a, b| b.cmp(a));
        for (_, i, part) in held {
            self.split(pulls, i, part).await?;
        }
        Ok(())
    }

    /// Records the pull's progress, at most every [`BOOKKEEPING_EVERY`].
    async fn keep_progress(&self, run: &mut PullRun) -> Result<(), Stop> {
        let now = self.platform.clock.now();
        let every = chrono::Duration::from_std(BOOKKEEPING_EVERY).unwrap_or_default();
        // A clock that stepped back counts as time passed.
        if run.kept_at.is_some_and(|at| now >= at && now - at < every) {
            return Ok(());
        }
        run.kept_at = Some(now);
        run.op.progress = run.op.progress.max(run.progress());
        run.op.status_description = Some(format!("{} records fetched", run.records()));
        self.write(&run.ctx, SyncWrite { pull: Some((run.op.clone(), Vec::new())), ..SyncWrite::default() }).await.map_err(stop_for)?;
        Ok(())
    }

    /// Ends a run that stopped early, once its tasks are back.
    async fn stopped(&self, read: &mut ReadRun, id: ConnectionId, pulls: Vec<PullRun>, stop: Stop) -> Result<(), DomainError> {
        // A refused write names no reason: the connection says whether it was unlinked or deleted.
        let stop = match stop {
            Stop::Refused => match self.platform.repos.connections.find(id).await? {
                None => Stop::Gone,
                Some(c) if c.status != ConnectionStatus::Linked => Stop::Cancelled(c.status),
                Some(_) => Stop::LeaseLost,
            },
            Stop::Failed(e) => return Err(e),
            other => other,
        };
        match stop {
            Stop::Cancelled(status) => {
                let mut ops: Vec<PullOperation> = pulls.into_iter().map(|p| p.op).collect();
                for op in self.platform.repos.pull_operations.unfinished_for_connection(id).await? {
                    if !ops.iter().any(|o| o.id == op.id) {
                        ops.push(op);
                    }
                }
                for op in ops {
                    let why = format!("The connection became {status} during the pull.");
                    self.finish_unfenced(read, op, DatasetStatus::Cancelled, Some(why), false).await?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Completes a pull: its backfill's partitions and staged items dropped, the checkpoint marked
    /// done, the pull `Complete` with its events, in one fenced write.
    /// With `end_backfill`, the backfill's partitions and staged items are dropped and the
    /// checkpoint marked done in the same write.
    async fn complete(&self, read: &mut ReadRun, mut run: PullRun, end_backfill: bool) -> Result<(), DomainError> {
        let now = self.platform.clock.now();
        let checkpoint = Checkpoint { pull_id: run.op.id, backfilling: false, incremental: run.incremental.clone() };
        if run.parts.is_some() {
            run.op.status_description = Some(format!("{} records fetched", run.records()));
        }
        let op = self.finished(read, run.op.clone(), DatasetStatus::Complete, None, run.changed > 0);
        let events = self.read_events(read, &op).await?;
        let w = SyncWrite {
            reset: end_backfill,
            checkpoint: end_backfill.then_some(checkpoint),
            pull: Some((op, events.clone())),
            ..SyncWrite::default()
        };
        self.write(&run.ctx, w).await?;
        self.reported(read, &events);
        if run.ctx.key_refused {
            // The secret key works again.
            self.platform.repos.integrations.set_key_refused(&run.ctx.platform_key, None).await?;
        }
        // Only last_sync is written, so a status change made meanwhile (an unlink) stands.
        self.platform.repos.connections.set_last_sync(run.ctx.connection, now).await?;
        if read.first_requested.is_none() {
            // The read was reported: the next one is of changes since this sync.
            read.modified_from = Some(now);
        }
        if let Some(mut company) = self.platform.repos.companies.get(run.ctx.company).await? {
            company.last_sync = Some(now);
            self.platform.repos.companies.update(&company).await?;
        }
        Ok(())
    }

    /// Ends a pull in the error status for its failure; a revoked account also deauthorizes a
    /// still-linked connection (an unlink made meanwhile wins), while a refused platform key leaves
    /// it linked and is recorded on the integration.
    async fn fail(&self, read: &mut ReadRun, run: PullRun, e: &Failure) -> Result<(), DomainError> {
        let status = e.status();
        let op = self.finished(read, run.op.clone(), status, Some(e.message()), run.changed > 0);
        let events = self.read_events(read, &op).await?;
        self.write(&run.ctx, SyncWrite { pull: Some((op, events.clone())), ..SyncWrite::default() }).await?;
        self.reported(read, &events);
        if let Failure::Source(SourceError::PlatformAuth(message)) = e {
            let refused = crate::model::integration::KeyRefused { at: self.platform.clock.now(), message: message.clone() };
            self.platform.repos.integrations.set_key_refused(&run.ctx.platform_key, Some(refused)).await?;
            crate::metrics::key_refused(&run.ctx.platform_key);
        }
        if status == DatasetStatus::AuthError {
            // Stripe no longer lets us read a linked account: the merchant revoked access. Only a
            // still-linked connection changes (an unlink wins).
            if let Some(connection) = self.platform.repos.connections.find(run.ctx.connection).await? {
                let mut after = connection.clone();
                after.status = ConnectionStatus::Deauthorized;
                let events = self.platform.connection_event(EventType::ConnectionDisconnected, &after).await?;
                self.platform
                    .repos
                    .connections
                    .set_status_if(connection.id, ConnectionStatus::Linked, ConnectionStatus::Deauthorized, &events)
                    .await?;
            }
        }
        Ok(())
    }

    /// Ends a pull that could not start (no credentials, no linked account), fenced.
    async fn end_unstarted(&self, read: &mut ReadRun, op: PullOperation, status: DatasetStatus, why: String) -> Result<(), DomainError> {
        let op = self.finished(read, op, status, Some(why), false);
        let events = self.read_events(read, &op).await?;
        let w = SyncWrite { fence: Some(self.worker.clone()), pull: Some((op.clone(), events.clone())), ..SyncWrite::default() };
        self.platform.repos.records.write_sync(op.company_id, op.connection_id, op.data_type, &w, self.platform.clock.now()).await?;
        crate::metrics::pull_finished(&op);
        self.reported(read, &events);
        Ok(())
    }

    /// Ends a pull without a fence (the connection is no longer linked).
    async fn finish_unfenced(
        &self,
        read: &mut ReadRun,
        op: PullOperation,
        status: DatasetStatus,
        error: Option<String>,
        changed: bool,
    ) -> Result<(), DomainError> {
        let op = self.finished(read, op, status, error, changed);
        let events = self.read_events(read, &op).await?;
        self.platform.repos.pull_operations.update(&op, &events).await?;
        crate::metrics::pull_finished(&op);
        self.reported(read, &events);
        Ok(())
    }

    /// The pull in its final status, noted in the read.
    fn finished(
        &self,
        read: &mut ReadRun,
        mut op: PullOperation,
        status: DatasetStatus,
        error: Option<String>,
        changed: bool,
    ) -> PullOperation {
        tracing::info!(connection.id = %op.connection_id, sync.data_type = %op.data_type, pull.id = %op.id, status = status.as_str(), "pull finished");
        op.status = status;
        op.completed = Some(self.platform.clock.now());
        if status == DatasetStatus::Complete {
            op.progress = 100;
        }
        op.error_message = error;
        read.first_requested = Some(read.first_requested.map_or(op.requested, |t| t.min(op.requested)));
        read.modified.insert(op.id, changed);
        op
    }

    /// After events were written: the read is reported, pulls queued from now on make the next one
    /// (modified since the connection's last sync, as far as this run knows it).
    fn reported(&self, read: &mut ReadRun, events: &[OutboxEvent]) {
        if !events.is_empty() {
            *read = ReadRun { modified_from: read.modified_from, ..ReadRun::default() };
        }
    }

    /// `read.completed` (and `read.completed.initial` for a connection's first read) when `op` is
    /// the connection's last unfinished pull: one entry per data type read since the read's first
    /// pull, including pulls a crashed worker finished before this one took over.
    async fn read_events(&self, run: &ReadRun, op: &PullOperation) -> Result<Vec<OutboxEvent>, DomainError> {
        if self.platform.renderer.is_none() {
            return Ok(Vec::new());
        }
        let pulls = &self.platform.repos.pull_operations;
        if pulls.unfinished_for_connection(op.connection_id).await?.iter().any(|o| o.id != op.id) {
            return Ok(Vec::new());
        }
        let since = run.first_requested.unwrap_or(op.requested);
        let data_types: Vec<ReadDataType> = pulls
            .requested_since(op.connection_id, since, 100)
            .await?
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
        let earlier = pulls.read_before(op.connection_id, since).await?;
        let Some(company) = self.platform.repos.companies.get(op.company_id).await? else { return Ok(Vec::new()) };
        let subject = EventSubject::Read { company, modified_from: run.modified_from, data_types };
        let mut events = Vec::new();
        if !earlier {
            events.extend(self.platform.outbox(EventType::ReadCompletedInitial, subject.clone()));
        }
        events.extend(self.platform.outbox(EventType::ReadCompleted, subject));
        Ok(events)
    }
}

/// What handling a report led to.
enum Handled {
    /// The run goes on.
    Going,
    /// A pull finished: look for pulls queued meanwhile.
    Finished,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CompanyId;
    use crate::model::commerce::{CommerceRecord, Customer};
    use crate::model::company::CompanyFields;
    use crate::model::record::Estimate;
    use crate::ports::source::{ChangeSet, PlannedPartition, RecordPage};
    use crate::service::IntegrationUpdate;
    use crate::service::test_support::{Fixed, Mem, platform_with};
    use secrecy::SecretString;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct TokioTimer;
    impl Timer for TokioTimer {
        fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
            Box::pin(tokio::time::sleep(d))
        }
    }

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

    fn planned(stage: u16, cursor: &str) -> PlannedPartition {
        PlannedPartition { stage, cursor: cursor.into(), estimate: Estimate { done: 0, left: 100 } }
    }

    fn page(ids: &[&str], next: Option<&str>) -> RecordPage {
        RecordPage {
            records: ids.iter().map(|id| customer(id)).collect(),
            staged: vec![],
            next_cursor: next.map(str::to_owned),
            estimate: Estimate { done: 10, left: if next.is_some() { 10 } else { 0 } },
        }
    }

    type PageFn = dyn Fn(DataType, &str) -> Result<RecordPage, SourceError> + Send + Sync;
    type SplitFn = dyn Fn(DataType, &str, usize) -> Vec<PlannedPartition> + Send + Sync;
    type ChangesFn = dyn Fn(DataType, &str) -> Result<ChangeSet, SourceError> + Send + Sync;
    type PlanFn = dyn Fn(DataType) -> Result<Vec<PlannedPartition>, SourceError> + Send + Sync;
    type FetchFn = dyn Fn(DataType, &str) + Send + Sync;

    /// A data source scripted by closures, taking `delay` per page, recording every call and the
    /// most pages it was asked for at once.
    struct Fake {
        plan: Box<PlanFn>,
        page: Box<PageFn>,
        split: Box<SplitFn>,
        changes: Box<ChangesFn>,
        delay: Duration,
        /// Extra time for pages of these cursors.
        slow: HashMap<String, Duration>,
        /// Called at every page fetch (before the delay).
        on_fetch: Box<FetchFn>,
        calls: Mutex<Vec<(DataType, String)>>,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
        /// Staged items seen by each page call, by cursor.
        looked_up: Mutex<Vec<(String, Vec<StagedItem>)>>,
    }

    impl Fake {
        fn new(page: impl Fn(DataType, &str) -> Result<RecordPage, SourceError> + Send + Sync + 'static) -> Self {
            Self {
                plan: Box::new(|_| Ok(vec![planned(0, "p1")])),
                page: Box::new(page),
                split: Box::new(|_, _, _| Vec::new()),
                changes: Box::new(|_, c| {
                    Ok(ChangeSet {
                        upserts: vec![],
                        deletions: vec![],
                        cursor: if c.is_empty() { "start".into() } else { "next".into() },
                        needs_backfill: false,
                    })
                }),
                delay: Duration::ZERO,
                slow: HashMap::new(),
                on_fetch: Box::new(|_, _| {}),
                calls: Mutex::default(),
                in_flight: AtomicUsize::new(0),
                most_in_flight: AtomicUsize::new(0),
                looked_up: Mutex::default(),
            }
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().iter().map(|(_, c)| c.clone()).collect()
        }
    }

    #[async_trait]
    impl CommerceDataSource for Fake {
        async fn plan_backfill(&self, _: &PlatformCredentials, _: &str, dt: DataType) -> Result<Vec<PlannedPartition>, SourceError> {
            (self.plan)(dt)
        }
        async fn list_page(
            &self,
            _: &PlatformCredentials,
            _: &str,
            dt: DataType,
            cursor: String,
            staged: Arc<dyn StagedLookup>,
        ) -> Result<RecordPage, SourceError> {
            (self.on_fetch)(dt, &cursor);
            self.calls.lock().unwrap().push((dt, cursor.clone()));
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.delay + self.slow.get(&cursor).copied().unwrap_or_default()).await;
            let seen = staged.staged(vec!["prod_1".into(), "prod_2".into()]).await?;
            self.looked_up.lock().unwrap().push((cursor.clone(), seen));
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            (self.page)(dt, &cursor)
        }
        fn parallelism(&self, _: &PlatformCredentials, _: &str) -> usize {
            usize::MAX
        }
        fn split(&self, _: &PlatformCredentials, _: &str, dt: DataType, cursor: &str, parts: usize) -> Vec<PlannedPartition> {
            (self.split)(dt, cursor, parts)
        }
        async fn list_changes(&self, _: &PlatformCredentials, _: &str, dt: DataType, cursor: String) -> Result<ChangeSet, SourceError> {
            (self.changes)(dt, &cursor)
        }
        async fn fetch_by_ids(
            &self,
            _: &PlatformCredentials,
            _: &str,
            _: DataType,
            _: Vec<String>,
        ) -> Result<Vec<CommerceRecord>, SourceError> {
            Ok(Vec::new())
        }
    }

    async fn linked_with(mem: Arc<Mem>, clock: Arc<Fixed>) -> (Platform, CompanyId, ConnectionId) {
        let p = platform_with(mem, clock);
        p.integrations()
            .update(
                "yzth",
                IntegrationUpdate { client_id: Some("ca".into()), secret_key: Some(SecretString::from("sk_test_x")), ..Default::default() },
            )
            .await
            .unwrap();
        p.integrations().set_enabled("yzth", true).await.unwrap();
        let company = p.companies().create(CompanyFields::new("Shop", None, Default::default()).unwrap()).await.unwrap().company.id;
        let mut c = p.connections().create(company, "yzth").await.unwrap();
        c.transition(ConnectionStatus::Linked).unwrap();
        c.source_account = Some("acct_1".into());
        p.repos.connections.update(&c, &[]).await.unwrap();
        (p, company, c.id)
    }

    fn clock() -> Arc<Fixed> {
        Arc::new(Fixed(Mutex::new("2026-01-01T00:00:00Z".parse().unwrap())))
    }

    async fn linked(mem: Arc<Mem>) -> (Platform, CompanyId, ConnectionId) {
        linked_with(mem, clock()).await
    }

    fn engine_with(p: &Platform, source: Arc<dyn CommerceDataSource>, worker: &str, lease_for: Duration, parallel: usize) -> SyncEngine {
        SyncEngine::new(
            p.clone(),
            source,
            Arc::new(TokioTimer),
            worker.into(),
            SyncOptions { lease_for, parallel_pages: parallel, store_retries: vec![Duration::from_millis(5); 3], ..SyncOptions::default() },
        )
    }

    fn engine(p: &Platform, source: Arc<Fake>) -> SyncEngine {
        engine_with(p, source, "w1", Duration::from_secs(60), 4)
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
        let clock = clock();
        let (_, company, _) = linked_with(mem.clone(), clock.clone()).await;
        let p = platform_with(mem.clone(), clock.clone()).with_event_renderer(Arc::new(Reads));
        let source = Arc::new(Fake::new(|_, _| Ok(page(&["cus_1"], None))));
        p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        p.pulls().queue(company, DataType::Payments, None).await.unwrap();
        mem.events.lock().unwrap().clear();
        let e = engine(&p, source);
        assert!(e.run_once().await.unwrap());
        // Both pulls were requested at the same instant, so the stores may list them either way
        // (then by id): the entries are compared in data type order.
        let bodies: Vec<serde_json::Value> = mem
            .events
            .lock()
            .unwrap()
            .iter()
            .map(|e| {
                let mut body: serde_json::Value = serde_json::from_str(&e.body).unwrap();
                if let Some(entries) = body["dataTypes"].as_array_mut() {
                    entries.sort_by_key(|x| x[0].as_str().unwrap_or_default().to_owned());
                }
                body
            })
            .collect();
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
        p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        assert!(e.run_once().await.unwrap());
        let bodies: Vec<serde_json::Value> = mem.events.lock().unwrap().iter().map(|e| serde_json::from_str(&e.body).unwrap()).collect();
        assert_eq!(
            bodies,
            vec![serde_json::json!({"type": "read.completed", "dataTypes": [["commerce-customers", false, "Complete"]]})],
            "a later read is not initial, and nothing changed"
        );
    }

    #[tokio::test]
    async fn a_pull_walks_every_partition_of_its_plan_and_completes_with_the_change_cursor_taken_before_it() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem.clone()).await;
        let mut fake = Fake::new(|_, cursor| {
            Ok(match cursor {
                "a1" => page(&["cus_1", "cus_2"], Some("a2")),
                "a2" => page(&["cus_3"], None),
                "b1" => page(&["cus_4"], None),
                other => panic!("unexpected cursor {other}"),
            })
        });
        fake.plan = Box::new(|_| Ok(vec![planned(0, "a1"), planned(0, "b1")]));
        let source = Arc::new(fake);
        let op = p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        let again = p.pulls().queue(company, DataType::Customers, Some(connection)).await.unwrap();
        assert_eq!(again.id, op.id, "an unfinished pull is reused");
        let e = engine(&p, source.clone());
        assert!(e.run_once().await.unwrap());
        assert!(!e.run_once().await.unwrap(), "nothing left");
        let done = p.pulls().get(company, op.id).await.unwrap();
        assert_eq!((done.status, done.progress), (DatasetStatus::Complete, 100));
        assert_eq!(done.status_description.as_deref(), Some("4 records fetched"));
        assert_eq!(p.repos.records.count(connection, DataType::Customers, false).await.unwrap(), 4);
        let cp = p.repos.records.checkpoint(connection, DataType::Customers).await.unwrap().unwrap();
        assert_eq!(cp, Checkpoint { pull_id: op.id, backfilling: false, incremental: Some("start".into()) });
        assert!(p.repos.records.partitions(connection, DataType::Customers).await.unwrap().is_empty(), "dropped at the end");
        let mut calls = source.calls();
        calls.sort();
        assert_eq!(calls, ["a1", "a2", "b1"]);
        let status = p.pulls().data_status(company).await.unwrap();
        assert_eq!(status[0].latest_successful.as_ref().unwrap().id, op.id);
        assert!(p.connections().get(company, connection).await.unwrap().last_sync.is_some());
    }

    #[tokio::test]
    async fn the_data_types_of_a_connection_and_the_partitions_of_a_backfill_are_fetched_at_once_within_the_limit() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem.clone()).await;
        // Each data type has 6 partitions of 3 pages each; 6 types × 18 pages, 50 ms a page.
        let mut fake = Fake::new(|_, cursor| {
            let (part, n) = cursor.split_once('.').unwrap();
            let n: u32 = n.parse().unwrap();
            let id = format!("cus_{part}_{n}");
            Ok(page(&[id.as_str()], (n < 3).then(|| format!("{part}.{}", n + 1)).as_deref()))
        });
        fake.plan = Box::new(|dt| Ok((0..6).map(|i| planned(0, &format!("{}{i}.1", dt.key()))).collect()));
        fake.delay = Duration::from_millis(50);
        let source = Arc::new(fake);
        for dt in [DataType::Customers, DataType::Disputes, DataType::Payments] {
            p.pulls().queue(company, dt, None).await.unwrap();
        }
        let e = engine_with(&p, source.clone(), "w1", Duration::from_secs(60), 8);
        let started = std::time::Instant::now();
        assert!(e.run_once().await.unwrap());
        let took = started.elapsed();
        assert_eq!(source.most_in_flight.load(Ordering::SeqCst), 8, "8 pages at once, never more");
        assert_eq!(source.calls().len(), 54);
        // 54 pages of 50 ms, 8 at a time: about 7 rounds, not 54.
        assert!(took < Duration::from_millis(54 * 50 / 2), "took {took:?}");
        for dt in [DataType::Customers, DataType::Disputes, DataType::Payments] {
            assert_eq!(p.repos.records.count(connection, dt, false).await.unwrap(), 18, "{dt}");
        }
        let statuses: Vec<_> = mem.pulls.lock().unwrap().iter().map(|o| o.status).collect();
        assert!(statuses.iter().all(|s| *s == DatasetStatus::Complete), "{statuses:?}");
    }

    #[tokio::test]
    async fn a_partition_is_split_when_there_is_room_and_the_parts_are_saved_before_they_are_paged() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem.clone()).await;
        let seen_parts: Arc<Mutex<Vec<usize>>> = Arc::default();
        let mem2 = mem.clone();
        let mut fake = Fake::new(|_, cursor| {
            Ok(match cursor {
                "head" => page(&["cus_head"], Some("rest")),
                "rest" | "kept" => page(&["cus_rest"], None),
                c if c.starts_with("new") => page(&[&format!("cus_{c}")], None),
                other => panic!("unexpected cursor {other}"),
            })
        });
        let seen = seen_parts.clone();
        fake.split = Box::new(move |_, cursor, parts| {
            seen.lock().unwrap().push(parts);
            if cursor != "rest" {
                return Vec::new();
            }
            let mut out = vec![planned(0, "kept")];
            out.extend((1..parts).map(|i| planned(0, &format!("new{i}"))));
            out
        });
        fake.on_fetch = Box::new(move |_, cursor| {
            if cursor.starts_with("new") {
                let parts = mem2.partitions.lock().unwrap();
                assert!(
                    parts.values().any(|s| s.cursor.as_deref() == Some(cursor)),
                    "a split-off partition is saved before its first page"
                );
            }
        });
        fake.plan = Box::new(|_| Ok(vec![planned(0, "head")]));
        let source = Arc::new(fake);
        let op = p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        engine_with(&p, source.clone(), "w1", Duration::from_secs(60), 4).run_once().await.unwrap();
        // 10 objects left, 4 pages at once: a share is 2 objects, so 5 parts (as many partitions
        // again as are in flight may wait for a page).
        assert_eq!(seen_parts.lock().unwrap().first(), Some(&5));
        let mut calls = source.calls();
        calls.sort();
        assert_eq!(calls, ["head", "kept", "new1", "new2", "new3", "new4"]);
        assert_eq!(p.pulls().get(company, op.id).await.unwrap().status, DatasetStatus::Complete);
        assert_eq!(p.repos.records.count(connection, DataType::Customers, false).await.unwrap(), 6);
    }

    #[tokio::test]
    async fn lists_are_split_in_proportion_once_every_list_s_first_page_is_back() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem.clone()).await;
        let splits: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
        let started = std::time::Instant::now();
        let fetched: Arc<Mutex<Vec<(String, Duration)>>> = Arc::default();
        let mut fake = Fake::new(|dt, cursor| {
            let mut pg = page(&[&format!("{}_{cursor}", dt.key())], None);
            if cursor == "big" || cursor == "small" {
                // The lists' first pages: 900 and 100 objects left.
                pg.next_cursor = Some(format!("{cursor}.rest"));
                pg.estimate = Estimate { done: 100, left: if cursor == "big" { 900 } else { 100 } };
            }
            Ok(pg)
        });
        fake.plan = Box::new(|dt| Ok(vec![planned(0, if dt == DataType::Customers { "big" } else { "small" })]));
        // The small list's first page takes longer.
        fake.slow.insert("small".into(), Duration::from_millis(300));
        let seen = splits.clone();
        fake.split = Box::new(move |_, cursor, parts| {
            seen.lock().unwrap().push((cursor.to_owned(), parts));
            (0..parts).map(|k| planned(0, &format!("{cursor}.{k}"))).collect()
        });
        let log = fetched.clone();
        fake.on_fetch = Box::new(move |_, cursor| log.lock().unwrap().push((cursor.to_owned(), started.elapsed())));
        p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        p.pulls().queue(company, DataType::Disputes, None).await.unwrap();
        engine_with(&p, Arc::new(fake), "w1", Duration::from_secs(60), 10).run_once().await.unwrap();
        // Room for 10 pages, 1,000 objects left: the big list gets nine, the small one none.
        assert_eq!(*splits.lock().unwrap(), [("big.rest".to_owned(), 9)]);
        let fetched = fetched.lock().unwrap().clone();
        let small_back = fetched.iter().find(|(c, _)| c == "small").unwrap().1 + Duration::from_millis(300);
        let first_after_big = fetched.iter().find(|(c, _)| c.starts_with("big.")).unwrap().1;
        assert!(first_after_big >= small_back, "the big list waited for the small one's first page: {fetched:?}");
        assert_eq!(p.repos.records.count(connection, DataType::Customers, false).await.unwrap(), 10);
    }

    #[tokio::test]
    async fn a_later_stage_starts_once_the_earlier_is_done_and_reads_the_items_it_staged() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem.clone()).await;
        let mut fake = Fake::new(|_, cursor| {
            Ok(match cursor {
                "prices" => RecordPage {
                    staged: vec![
                        StagedItem { key: "prod_1".into(), id: "price_1".into(), value: serde_json::json!({"amount": 1}) },
                        StagedItem { key: "prod_2".into(), id: "price_2".into(), value: serde_json::json!({"amount": 2}) },
                    ],
                    next_cursor: Some("prices2".into()),
                    ..RecordPage::default()
                },
                "prices2" => RecordPage {
                    staged: vec![StagedItem { key: "prod_1".into(), id: "price_3".into(), value: serde_json::json!({"amount": 3}) }],
                    ..RecordPage::default()
                },
                "products" => page(&["prod_1", "prod_2"], None),
                other => panic!("unexpected cursor {other}"),
            })
        });
        fake.plan = Box::new(|_| Ok(vec![planned(0, "prices"), planned(1, "products")]));
        let source = Arc::new(fake);
        let op = p.pulls().queue(company, DataType::Products, None).await.unwrap();
        engine(&p, source.clone()).run_once().await.unwrap();
        assert_eq!(source.calls(), ["prices", "prices2", "products"], "stage by stage");
        let looked_up = source.looked_up.lock().unwrap().clone();
        let (_, at_products) = looked_up.iter().find(|(c, _)| c == "products").unwrap();
        let mut ids: Vec<_> = at_products.iter().map(|i| i.id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["price_1", "price_2", "price_3"]);
        assert_eq!(p.pulls().get(company, op.id).await.unwrap().status, DatasetStatus::Complete);
        assert!(p.repos.records.staged(connection, DataType::Products, &["prod_1".into()]).await.unwrap().is_empty(), "dropped at the end");
    }

    #[tokio::test]
    async fn a_killed_backfill_resumes_every_unfinished_partition_at_its_saved_cursor() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem.clone()).await;
        let op = p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        // What a worker killed mid-backfill left: one partition done, one halfway, one not started.
        let cp = Checkpoint { pull_id: op.id, backfilling: true, incremental: Some("start".into()) };
        let parts = [
            PartitionState { id: 0, stage: 0, cursor: None, records: 2, estimate: Estimate { done: 2, left: 0 } },
            PartitionState { id: 1, stage: 0, cursor: Some("b2".into()), records: 1, estimate: Estimate { done: 1, left: 1 } },
            PartitionState { id: 2, stage: 0, cursor: Some("c1".into()), records: 0, estimate: Estimate { done: 0, left: 1 } },
        ];
        let seed = [to_stored(&customer("cus_1")), to_stored(&customer("cus_2")), to_stored(&customer("cus_3"))];
        let w = SyncWrite { records: seed.to_vec(), checkpoint: Some(cp), partitions: parts.to_vec(), reset: true, ..SyncWrite::default() };
        p.repos.records.write_sync(company, connection, DataType::Customers, &w, p.clock.now()).await.unwrap();
        let mut fake = Fake::new(|_, cursor| {
            Ok(match cursor {
                "b2" => page(&["cus_4"], None),
                "c1" => page(&["cus_5"], None),
                other => panic!("a finished or passed page is fetched again: {other}"),
            })
        });
        fake.plan = Box::new(|_| panic!("a resumed backfill is not planned again"));
        fake.changes = Box::new(|_, _| panic!("a resumed backfill keeps its change cursor"));
        let source = Arc::new(fake);
        engine(&p, source.clone()).run_once().await.unwrap();
        let done = p.pulls().get(company, op.id).await.unwrap();
        assert_eq!((done.status, done.status_description.as_deref()), (DatasetStatus::Complete, Some("5 records fetched")));
        assert_eq!(p.repos.records.count(connection, DataType::Customers, false).await.unwrap(), 5);
        assert_eq!(
            p.repos.records.checkpoint(connection, DataType::Customers).await.unwrap().unwrap().incremental.as_deref(),
            Some("start")
        );
    }

    #[tokio::test]
    async fn a_connection_unlinked_during_a_pull_cancels_it_and_the_page_fetched_meanwhile_is_not_written() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem.clone()).await;
        let unlink = mem.clone();
        let mut fake = Fake::new(|_, cursor| {
            Ok(match cursor {
                "p1" => page(&["cus_1"], Some("p2")),
                _ => page(&["cus_2"], None),
            })
        });
        fake.on_fetch = Box::new(move |_, cursor| {
            if cursor == "p2" {
                // The merchant unlinks while the second page is on its way.
                unlink.connections.lock().unwrap().iter_mut().for_each(|c| c.status = ConnectionStatus::Unlinked);
            }
        });
        let op = p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        engine(&p, Arc::new(fake)).run_once().await.unwrap();
        let done = p.pulls().get(company, op.id).await.unwrap();
        assert_eq!(done.status, DatasetStatus::Cancelled);
        assert!(done.error_message.unwrap().contains("Unlinked"));
        assert_eq!(p.repos.records.count(connection, DataType::Customers, true).await.unwrap(), 1, "only the page before the unlink");
    }

    #[tokio::test]
    async fn a_pull_of_an_unlinked_connection_is_cancelled_without_a_request() {
        let mem = Arc::new(Mem::default());
        let (p, company, _) = linked(mem.clone()).await;
        let op = p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        mem.connections.lock().unwrap().iter_mut().for_each(|c| c.status = ConnectionStatus::Unlinked);
        let source = Arc::new(Fake::new(|_, _| panic!("no page of an unlinked connection")));
        assert!(engine(&p, source.clone()).run_once().await.unwrap());
        assert_eq!(p.pulls().get(company, op.id).await.unwrap().status, DatasetStatus::Cancelled);
    }

    #[tokio::test]
    async fn a_source_slower_than_the_lease_keeps_it_and_no_other_worker_takes_the_connection() {
        let mem = Arc::new(Mem::default());
        let (p0, company, connection) = linked(mem.clone()).await;
        // The system clock, so that the lease's expiry is real time.
        let p = Platform::new(p0.repos.clone(), p0.cipher.clone(), Arc::new(crate::ports::SystemClock));
        let leases = mem.clone();
        let expired_at_fetch: Arc<Mutex<Vec<bool>>> = Arc::default();
        let seen = expired_at_fetch.clone();
        let mut fake = Fake::new(|_, cursor| {
            let n: u32 = cursor[1..].parse().unwrap();
            Ok(page(&[&format!("cus_{n}")], (n < 4).then(|| format!("p{}", n + 1)).as_deref()))
        });
        // Each page takes 300 ms; the lease lasts 200 ms.
        fake.delay = Duration::from_millis(300);
        fake.on_fetch = Box::new(move |_, _| {
            let expires = leases.leases.lock().unwrap().get(&connection).map(|(_, e)| *e).unwrap();
            seen.lock().unwrap().push(expires <= Utc::now());
        });
        let source = Arc::new(fake);
        let op = p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        let lease = Duration::from_millis(200);
        let first = engine_with(&p, source.clone(), "w1", lease, 4);
        let second = engine_with(&p, source.clone(), "w2", lease, 4);
        let run = tokio::spawn(async move { first.run_once().await });
        while mem.leases.lock().unwrap().get(&connection).is_none() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Another worker polls for work all along: it must never find the connection free.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !run.is_finished() && std::time::Instant::now() < deadline {
            assert!(!second.run_once().await.unwrap(), "the second worker took over a live worker's connection");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(run.await.unwrap().unwrap());
        assert_eq!(source.calls(), ["p1", "p2", "p3", "p4"], "every page once");
        assert!(expired_at_fetch.lock().unwrap().iter().all(|e| !e), "the lease lapsed during the pull");
        assert_eq!(p.pulls().get(company, op.id).await.unwrap().status, DatasetStatus::Complete);
    }

    #[tokio::test]
    async fn a_worker_that_lost_its_lease_writes_nothing_more_and_leaves_the_pull_to_the_new_holder() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem.clone()).await;
        let thief = mem.clone();
        let mut fake = Fake::new(|_, cursor| {
            Ok(match cursor {
                "p1" => page(&["cus_1"], Some("p2")),
                _ => page(&["cus_2"], None),
            })
        });
        fake.on_fetch = Box::new(move |_, cursor| {
            if cursor == "p2" {
                // Another worker took the lease over while this page was on its way (as after a
                // lease that lapsed).
                thief.leases.lock().unwrap().insert(connection, ("w2".into(), Utc::now() + chrono::Duration::hours(1)));
            }
        });
        let op = p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        assert!(engine(&p, Arc::new(fake)).run_once().await.unwrap());
        assert_eq!(*mem.refused.lock().unwrap(), 1, "the page's write was refused");
        assert_eq!(p.repos.records.count(connection, DataType::Customers, true).await.unwrap(), 1, "only the page written under the lease");
        let pull = p.pulls().get(company, op.id).await.unwrap();
        assert_eq!(pull.status, DatasetStatus::Fetching, "left to the new holder, not finished");
        let parts = p.repos.records.partitions(connection, DataType::Customers).await.unwrap();
        assert_eq!(parts[0].cursor.as_deref(), Some("p2"), "the new holder resumes at the unwritten page");
        assert_eq!(
            mem.leases.lock().unwrap().get(&connection).map(|(o, _)| o.clone()),
            Some("w2".into()),
            "the new holder keeps its lease"
        );
    }

    #[tokio::test]
    async fn a_revoked_account_ends_auth_error_and_deauthorizes_and_a_403_ends_permissions_error() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem).await;
        let fake = Fake::new(|dt, _| match dt {
            DataType::Disputes => Err(SourceError::Permission("403 on /v1/disputes".into())),
            _ => Ok(page(&[], None)),
        });
        let disputes = p.pulls().queue(company, DataType::Disputes, None).await.unwrap();
        let customers = p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        engine(&p, Arc::new(fake)).run_once().await.unwrap();
        assert_eq!(p.pulls().get(company, disputes.id).await.unwrap().status, DatasetStatus::PermissionsError);
        assert_eq!(p.pulls().get(company, customers.id).await.unwrap().status, DatasetStatus::Complete);

        let fake = Fake::new(|_, _| Err(SourceError::Auth("account_invalid".into())));
        let op = p.pulls().queue(company, DataType::Products, None).await.unwrap();
        engine(&p, Arc::new(fake)).run_once().await.unwrap();
        let done = p.pulls().get(company, op.id).await.unwrap();
        assert_eq!(done.status, DatasetStatus::AuthError);
        assert!(done.error_message.unwrap().contains("account_invalid"));
        assert_eq!(p.connections().get(company, connection).await.unwrap().status, ConnectionStatus::Deauthorized);
        assert!(
            matches!(p.pulls().queue(company, DataType::Products, None).await, Err(DomainError::InvalidState(_))),
            "a deauthorized connection is not synced"
        );
    }

    #[tokio::test]
    async fn a_refused_platform_key_ends_pulls_in_internal_error_leaves_the_connection_linked_and_is_cleared_by_a_pull_that_completes() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem).await;
        let refused = Fake::new(|_, _| Err(SourceError::PlatformAuth("HTTP 401 api_key_invalid".into())));
        let customers = p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        let disputes = p.pulls().queue(company, DataType::Disputes, None).await.unwrap();
        engine(&p, Arc::new(refused)).run_once().await.unwrap();
        for op in [&customers, &disputes] {
            let done = p.pulls().get(company, op.id).await.unwrap();
            assert_eq!(done.status, DatasetStatus::InternalError);
            assert!(done.error_message.unwrap().contains("platform's secret key was refused"));
        }
        assert_eq!(p.connections().get(company, connection).await.unwrap().status, ConnectionStatus::Linked, "not the merchant's doing");
        let key = p.integrations().get("yzth").await.unwrap().settings.key_refused.expect("the integration says its key was refused");
        assert!(key.message.contains("api_key_invalid"));

        // The key is fixed: the next pulls complete and the integration is clear again.
        let fixed = p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        engine(&p, Arc::new(Fake::new(|_, _| Ok(page(&["cus_1"], None))))).run_once().await.unwrap();
        assert_eq!(p.pulls().get(company, fixed.id).await.unwrap().status, DatasetStatus::Complete);
        assert_eq!(p.integrations().get("yzth").await.unwrap().settings.key_refused, None);
    }

    #[tokio::test]
    async fn a_failing_partition_stops_its_pull_after_the_pages_in_flight_and_other_pulls_complete() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem).await;
        let mut fake = Fake::new(|dt, cursor| match (dt, cursor) {
            (DataType::Customers, "bad") => Err(SourceError::Fetch("500 after retries".into())),
            (DataType::Customers, c) if c.starts_with("ok") => Ok(page(&[&format!("cus_{c}")], Some(&format!("{c}x")))),
            _ => Ok(page(&["dp_1"], None)),
        });
        fake.plan =
            Box::new(|dt| Ok(if dt == DataType::Customers { vec![planned(0, "ok"), planned(0, "bad")] } else { vec![planned(0, "only")] }));
        fake.delay = Duration::from_millis(10);
        let source = Arc::new(fake);
        let customers = p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        let disputes = p.pulls().queue(company, DataType::Disputes, None).await.unwrap();
        engine(&p, source.clone()).run_once().await.unwrap();
        let failed = p.pulls().get(company, customers.id).await.unwrap();
        assert_eq!(failed.status, DatasetStatus::FetchError);
        assert!(failed.error_message.unwrap().contains("500 after retries"));
        assert!(source.calls().iter().filter(|c| c.starts_with("ok")).count() <= 2, "no new page after the failure: {:?}", source.calls());
        assert_eq!(p.pulls().get(company, disputes.id).await.unwrap().status, DatasetStatus::Complete);
        assert_eq!(p.repos.records.count(connection, DataType::Disputes, false).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_pull_after_a_failed_backfill_goes_on_from_where_it_stopped() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem).await;
        let failing = Fake::new(|_, cursor| match cursor {
            "p1" => Ok(page(&["cus_1"], Some("p2"))),
            _ => Err(SourceError::Fetch("500 after retries".into())),
        });
        let first = p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        engine(&p, Arc::new(failing)).run_once().await.unwrap();
        assert_eq!(p.pulls().get(company, first.id).await.unwrap().status, DatasetStatus::FetchError);
        let source = Arc::new(Fake::new(|_, cursor| match cursor {
            "p2" => Ok(page(&["cus_2"], None)),
            other => panic!("read again from {other}"),
        }));
        let second = p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        engine(&p, source.clone()).run_once().await.unwrap();
        assert_eq!(p.pulls().get(company, second.id).await.unwrap().status, DatasetStatus::Complete);
        assert_eq!(source.calls(), ["p2"], "resumed at the failed page, not planned again");
        assert_eq!(p.repos.records.count(connection, DataType::Customers, false).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_later_pull_follows_changes_from_the_saved_cursor_and_soft_deletes() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem).await;
        let mut fake = Fake::new(|_, _| Ok(page(&["cus_1", "cus_2"], None)));
        fake.changes = Box::new(|_, cursor| match cursor {
            "" => Ok(ChangeSet { upserts: vec![], deletions: vec![], cursor: "start".into(), needs_backfill: false }),
            "start" => Ok(ChangeSet {
                upserts: vec![customer("cus_3")],
                deletions: vec!["cus_1".into()],
                cursor: "next".into(),
                needs_backfill: false,
            }),
            other => panic!("unexpected change cursor {other}"),
        });
        let source = Arc::new(fake);
        let e = engine(&p, source.clone());
        p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        e.run_once().await.unwrap();
        let second = p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        e.run_once().await.unwrap();
        let done = p.pulls().get(company, second.id).await.unwrap();
        assert_eq!(done.status, DatasetStatus::Complete);
        assert_eq!(done.status_description.as_deref(), Some("2 records changed since the last sync"));
        assert_eq!(source.calls().len(), 1, "the second pull lists no page");
        assert_eq!(p.repos.records.count(connection, DataType::Customers, false).await.unwrap(), 2, "cus_1 deleted, cus_3 added");
        assert!(p.repos.records.get(connection, DataType::Customers, "cus_1").await.unwrap().unwrap().record.deleted);
        let cp = p.repos.records.checkpoint(connection, DataType::Customers).await.unwrap().unwrap();
        assert_eq!(cp, Checkpoint { pull_id: second.id, backfilling: false, incremental: Some("next".into()) });
    }

    #[tokio::test]
    async fn a_change_cursor_that_is_too_old_triggers_a_full_backfill() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem).await;
        let mut fake = Fake::new(|_, _| Ok(page(&["cus_1"], None)));
        fake.changes = Box::new(|_, cursor| {
            Ok(ChangeSet { upserts: vec![], deletions: vec![], cursor: "start".into(), needs_backfill: cursor == "start" })
        });
        let source = Arc::new(fake);
        let e = engine(&p, source.clone());
        p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        e.run_once().await.unwrap();
        let second = p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        e.run_once().await.unwrap();
        assert_eq!(p.pulls().get(company, second.id).await.unwrap().status, DatasetStatus::Complete);
        assert_eq!(source.calls().len(), 2, "a second backfill");
        assert_eq!(p.repos.records.checkpoint(connection, DataType::Customers).await.unwrap().unwrap().pull_id, second.id);
    }

    #[tokio::test]
    async fn progress_is_written_at_most_every_half_second_never_goes_back_and_ends_at_100() {
        let mem = Arc::new(Mem::default());
        let clock = clock();
        let (p, company, _) = linked_with(mem.clone(), clock.clone()).await;
        type Seen = Vec<(i32, Option<String>)>;
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let (m, c, s) = (mem.clone(), clock.clone(), seen.clone());
        // 20 pages, each taking 200 ms of the clock; the estimate of what is left wobbles.
        let mut fake = Fake::new(|_, cursor| {
            let n: u64 = cursor[1..].parse().unwrap();
            let mut pg = page(&[&format!("cus_{n}")], (n < 20).then(|| format!("p{}", n + 1)).as_deref());
            pg.estimate = Estimate { done: n * 100, left: (20 - n) * 100 + if n.is_multiple_of(3) { 700 } else { 0 } };
            Ok(pg)
        });
        fake.on_fetch = Box::new(move |_, _| {
            *c.0.lock().unwrap() += chrono::Duration::milliseconds(200);
            let op = m.pulls.lock().unwrap().iter().find(|o| o.data_type == DataType::Customers).cloned().unwrap();
            s.lock().unwrap().push((op.progress, op.status_description));
        });
        let op = p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        engine(&p, Arc::new(fake)).run_once().await.unwrap();
        let seen = seen.lock().unwrap().clone();
        let progress: Vec<i32> = seen.iter().map(|(p, _)| *p).collect();
        assert!(progress.windows(2).all(|w| w[0] <= w[1]), "progress went back: {progress:?}");
        assert!(progress.iter().all(|p| *p < 100), "{progress:?}");
        let written: std::collections::BTreeSet<_> = seen.iter().filter_map(|(_, d)| d.clone()).collect();
        assert!(
            (5..=12).contains(&written.len()),
            "progress written every 500 ms of a 4 s pull, not after each of its 20 pages: {written:?}"
        );
        let done = p.pulls().get(company, op.id).await.unwrap();
        assert_eq!((done.status, done.progress), (DatasetStatus::Complete, 100));
    }

    #[tokio::test]
    async fn a_store_that_takes_one_slow_write_at_a_time_does_not_stall_the_run() {
        let mem = Arc::new(Mem::default());
        let clock = clock();
        let (p, company, connection) = linked_with(mem.clone(), clock.clone()).await;
        *mem.slow_writes.lock().unwrap() = Some(Duration::from_millis(5));
        let c = clock.clone();
        // Three data types of four partitions of five pages; progress is due after every page.
        let mut fake = Fake::new(move |_, cursor| {
            *c.0.lock().unwrap() += chrono::Duration::seconds(1);
            let (part, n) = cursor.split_once('.').unwrap();
            let n: u32 = n.parse().unwrap();
            Ok(page(&[&format!("cus_{part}_{n}")], (n < 5).then(|| format!("{part}.{}", n + 1)).as_deref()))
        });
        fake.plan = Box::new(|dt| Ok((0..4).map(|i| planned(0, &format!("{}{i}.1", dt.key()))).collect()));
        for dt in [DataType::Customers, DataType::Disputes, DataType::Payments] {
            p.pulls().queue(company, dt, None).await.unwrap();
        }
        let e = engine(&p, Arc::new(fake));
        tokio::time::timeout(Duration::from_secs(20), e.run_once()).await.expect("the run stalled").unwrap();
        for dt in [DataType::Customers, DataType::Disputes, DataType::Payments] {
            assert_eq!(p.repos.records.count(connection, dt, false).await.unwrap(), 20, "{dt}");
        }
    }

    #[tokio::test]
    async fn a_storage_failure_ends_the_run_with_an_error_and_releases_the_lease() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem.clone()).await;
        let breaker = mem.clone();
        let mut fake = Fake::new(|_, _| Ok(page(&["cus_1"], None)));
        fake.on_fetch = Box::new(move |_, _| *breaker.broken.lock().unwrap() = true);
        p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        assert!(engine(&p, Arc::new(fake)).run_once().await.is_err());
        assert!(mem.leases.lock().unwrap().get(&connection).is_none(), "released");
    }

    #[tokio::test]
    async fn a_record_the_store_refuses_ends_its_pull_in_internal_error_after_bounded_retries_and_the_other_pulls_complete() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem.clone()).await;
        *mem.poison.lock().unwrap() = Some(("cus_poison".into(), 0));
        let fake = Fake::new(|dt, cursor| {
            Ok(match (dt, cursor) {
                (DataType::Customers, "p1") => page(&["cus_1"], Some("p2")),
                (DataType::Customers, _) => page(&["cus_2", "cus_poison"], None),
                _ => page(&["dp_1"], None),
            })
        });
        let customers = p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        let disputes = p.pulls().queue(company, DataType::Disputes, None).await.unwrap();
        let ran = tokio::time::timeout(Duration::from_secs(10), engine(&p, Arc::new(fake)).run_once()).await.expect("the run stalled");
        assert!(ran.unwrap(), "the run ends without error: the pull failed, not the run");
        let failed = p.pulls().get(company, customers.id).await.unwrap();
        assert_eq!(failed.status, DatasetStatus::InternalError);
        let why = failed.error_message.unwrap();
        assert!(why.contains("could not be stored (4 attempts)"), "{why}");
        assert!(!why.contains("invalid byte sequence"), "the storage error is for the log, not for clients: {why}");
        assert_eq!(mem.poison.lock().unwrap().as_ref().unwrap().1, 4, "written once and again after each of the 3 waits");
        assert_eq!(p.repos.records.count(connection, DataType::Customers, false).await.unwrap(), 1, "the pages before it are kept");
        assert_eq!(p.pulls().get(company, disputes.id).await.unwrap().status, DatasetStatus::Complete);
        assert_eq!(p.repos.records.count(connection, DataType::Disputes, false).await.unwrap(), 1);
        assert_eq!(p.connections().get(company, connection).await.unwrap().status, ConnectionStatus::Linked);
        assert!(mem.leases.lock().unwrap().get(&connection).is_none(), "the connection is released");

        // A change set holding it fails the same way, and the next pull without it completes.
        let mut fake = Fake::new(|_, _| Ok(page(&[], None)));
        fake.changes = Box::new(|_, cursor| match cursor {
            "" => Ok(ChangeSet { upserts: vec![], deletions: vec![], cursor: "start".into(), needs_backfill: false }),
            _ => Ok(ChangeSet { upserts: vec![customer("dp_poison")], deletions: vec![], cursor: "next".into(), needs_backfill: false }),
        });
        let source = Arc::new(fake);
        let first = p.pulls().queue(company, DataType::Disputes, None).await.unwrap();
        *mem.poison.lock().unwrap() = Some(("dp_poison".into(), 0));
        assert!(engine(&p, source.clone()).run_once().await.unwrap());
        assert_eq!(p.pulls().get(company, first.id).await.unwrap().status, DatasetStatus::InternalError);
        *mem.poison.lock().unwrap() = None;
        let again = p.pulls().queue(company, DataType::Disputes, None).await.unwrap();
        assert!(engine(&p, source).run_once().await.unwrap());
        assert_eq!(p.pulls().get(company, again.id).await.unwrap().status, DatasetStatus::Complete);
        assert!(p.repos.records.get(connection, DataType::Disputes, "dp_poison").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_connection_deleted_during_a_pull_ends_the_run_quietly() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem.clone()).await;
        let remover = mem.clone();
        let mut fake = Fake::new(|_, _| Ok(page(&["cus_1"], None)));
        fake.on_fetch = Box::new(move |_, _| remover.connections.lock().unwrap().clear());
        p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        assert!(engine(&p, Arc::new(fake)).run_once().await.unwrap(), "no error: the connection has gone");
        assert_eq!(p.repos.records.count(connection, DataType::Customers, true).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_second_pull_of_a_data_type_waits_for_the_first_and_follows_its_changes() {
        let mem = Arc::new(Mem::default());
        let (p, company, connection) = linked(mem.clone()).await;
        let first = p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        // A second unfinished pull of the same type (queued by another process meanwhile).
        let second =
            PullOperation { id: PullOperationId::new_random(), requested: first.requested + chrono::Duration::seconds(1), ..first.clone() };
        p.repos.pull_operations.insert(std::slice::from_ref(&second)).await.unwrap();
        let mut fake = Fake::new(|_, cursor| {
            Ok(match cursor {
                "p1" => page(&["cus_1"], Some("p2")),
                _ => page(&["cus_2"], None),
            })
        });
        fake.delay = Duration::from_millis(20);
        let source = Arc::new(fake);
        engine(&p, source.clone()).run_once().await.unwrap();
        assert_eq!(source.calls(), ["p1", "p2"], "one backfill, not two over one checkpoint");
        for op in [&first, &second] {
            assert_eq!(p.pulls().get(company, op.id).await.unwrap().status, DatasetStatus::Complete);
        }
        let cp = p.repos.records.checkpoint(connection, DataType::Customers).await.unwrap().unwrap();
        assert_eq!((cp.pull_id, cp.incremental.as_deref()), (second.id, Some("next")), "the second followed the first's changes");
    }

    #[tokio::test]
    async fn due_data_types_of_linked_connections_are_queued_by_the_schedule() {
        let mem = Arc::new(Mem::default());
        let clock = clock();
        let (p, company, connection) = linked_with(mem, clock.clone()).await;
        let e = engine(&p, Arc::new(Fake::new(|_, _| Ok(page(&[], None)))));
        p.pulls().queue(company, DataType::Customers, None).await.unwrap();
        e.run_once().await.unwrap();
        assert!(p.pulls().queue_due().await.unwrap().is_empty(), "not due within the 24 h default schedule");
        *clock.0.lock().unwrap() += chrono::Duration::hours(25);
        let due = p.pulls().queue_due().await.unwrap();
        assert_eq!(
            due.iter().map(|o| o.data_type).collect::<Vec<_>>(),
            vec![DataType::Customers],
            "only types pulled before are scheduled"
        );
        assert!(p.pulls().queue_due().await.unwrap().is_empty(), "an unfinished pull is not queued twice");
        e.run_once().await.unwrap();
        *clock.0.lock().unwrap() += chrono::Duration::hours(25);
        p.repos.connections.set_status_if(connection, ConnectionStatus::Linked, ConnectionStatus::Unlinked, &[]).await.unwrap();
        assert!(p.pulls().queue_due().await.unwrap().is_empty(), "an unlinked connection is never scheduled");
    }

    #[tokio::test]
    async fn unsupported_types_are_not_supported_at_once() {
        let mem = Arc::new(Mem::default());
        let (p, company, _) = linked(mem).await;
        let op = p.pulls().queue(company, DataType::Orders, None).await.unwrap();
        assert_eq!((op.status, op.progress), (DatasetStatus::NotSupported, 100));
    }
}
