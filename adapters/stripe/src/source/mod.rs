//! [`StripeDataSource`]: the domain's [`CommerceDataSource`] for Stripe Connect. It reads a
//! connected account's data with the platform secret key and `Stripe-Account`, walks Stripe's
//! lists newest first (`limit=100`, `starting_after`) in `created` ranges, and maps every object to
//! Codat's commerce records with [`crate::mapping`].
//!
//! | Codat data type | Stripe lists walked |
//! | --- | --- |
//! | `commerce-companyInfo` | `GET /v1/account` + `GET /v1/balance` (one page, one record) |
//! | `commerce-customers` | `/v1/customers` |
//! | `commerce-disputes` | `/v1/disputes` |
//! | `commerce-payments` | `/v1/charges` and `/v1/refunds` (refunds are negative payments), at the same time |
//! | `commerce-products` | `/v1/prices` (staged by product), then `/v1/products` with each product's staged prices |
//! | `commerce-transactions` | `/v1/balance_transactions` (plus a fee record per fee) |
//!
//! A backfill's plan is one partition per list: the whole list, open at both ends (no request).
//! Its first page tells how dense the list is; from then on the engine may ask to split a partition, which cuts
//! what is left of its range into `created[gte]`/`created[lt]` ranges of about equal estimated size
//! (the account's creation bounds the oldest), each walked newest first with its own cursor (module
//! `cursor`). Ranges are half-open on whole seconds, so an object belongs to exactly one; objects
//! created after the plan are newer than every range's walk and come with the change cursor taken
//! before it. Other Codat commerce data types are not provided for Stripe and fail with
//! [`SourceError::Fetch`].
//!
//! Incremental sync (`list_changes`) follows Stripe's Events API (module `changes`): an empty
//! cursor gives a starting point, cursors are compact JSON, and a cursor older than Stripe's 30-day
//! event retention answers `needs_backfill`.
//!
//! Every request of an account, from every pull and partition of the process, shares one budget
//! (module `budget`): the mode's rate and a bound on requests in flight, both lowered on a `429`.

mod api;
mod budget;
mod changes;
mod cursor;

pub use api::{
    CONNECT_TIMEOUT, DEFAULT_BASE_BACKOFF, DEFAULT_MAX_BACKOFF, DEFAULT_MAX_RETRIES, RATE_LIMITED, REQUEST_DURATION, REQUEST_TIMEOUT,
    REQUESTS, STRIPE_API_VERSION, SourceStats,
};
pub use budget::{BudgetConfig, LIVE_MODE_IN_FLIGHT, LIVE_MODE_RATE, TEST_MODE_IN_FLIGHT, TEST_MODE_RATE};
pub use changes::{EVENT_RETENTION_SECS, OVERLAP_SECS};

use crate::mapping::{self, FEE_RECORD_SUFFIX};
use crate::oauth::ConfigError;
use api::{Api, ApiError, Counters, RetryPolicy};
use async_trait::async_trait;
use budget::Budgets;
use cursor::{Cursor, Phase};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tributary_domain::model::commerce::CommerceRecord;
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::record::{Estimate, StagedItem};
use tributary_domain::ports::oauth::PlatformCredentials;
use tributary_domain::ports::source::{ChangeSet, CommerceDataSource, PlannedPartition, RecordPage, SourceError, StagedLookup};
use url::Url;

/// Stripe's API host.
pub const STRIPE_API_BASE: &str = "https://api.stripe.com";
/// Page size of every list request (Stripe's maximum).
pub const PAGE_LIMIT: u32 = 100;
/// How many requests for one page (ids to fetch, prices of products that changed) run at once;
/// the account's budget still spaces them.
const FAN_OUT: usize = 8;
/// The cursor of company info's one partition.
const COMPANY_INFO: &str = "company_info";
/// How long an account's creation time is reused by the plans of its data types.
const ACCOUNT_CREATED_TTL: Duration = Duration::from_secs(300);

/// Stripe's commerce data for Tributary: a [`CommerceDataSource`] over Stripe's REST API (or the
/// project's sandbox). One source serves a whole process: its accounts' budgets are shared by
/// every worker that uses it.
///
/// A list page is fetched, parsed and mapped in a task of its own, so that the caller (the sync
/// engine, which writes other pages meanwhile) is not held up by the parsing.
#[derive(Debug)]
pub struct StripeDataSource {
    api: Arc<Api>,
    /// Per (mode, account): its creation time and when it was read.
    created: Arc<std::sync::Mutex<AccountsCreated>>,
}

/// Per (mode, account): the account's creation time (if Stripe told it), read once for all the
/// pages that ask at the same time, and when the reading started.
type AccountsCreated = HashMap<(tributary_domain::model::integration::Mode, String), (Instant, Arc<tokio::sync::OnceCell<Option<i64>>>)>;

/// Aborts a spawned task when the future waiting for it is dropped (a sync that stops between
/// pages does not leave a request running).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A boxed, sendable future.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One list page as Stripe returns it.
struct ListPage {
    data: Vec<Value>,
    has_more: bool,
}

fn created_of(v: &Value) -> Option<i64> {
    v.get("created").and_then(Value::as_i64)
}

fn id_of(v: &Value) -> Option<String> {
    v.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

fn map_err(e: mapping::MapError) -> SourceError {
    SourceError::Fetch(e.to_string())
}

fn unsupported(dt: DataType) -> SourceError {
    SourceError::Fetch(format!("Datatype {dt} not supported by platform(s) Stripe"))
}

/// Checks an account id before it goes into a header (Stripe ids are `acct_` + alphanumerics).
fn check_account(account: &str) -> Result<(), SourceError> {
    if !account.is_empty() && account.len() <= 255 && account.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(SourceError::Fetch(format!("'{}' is not a Stripe account id", account.chars().take(64).collect::<String>())))
    }
}

impl StripeDataSource {
    /// A source for `api_base` (e.g. [`STRIPE_API_BASE`] or a sandbox URL) with
    /// [`Self::default_client`], the per-mode rate limits ([`TEST_MODE_RATE`], [`LIVE_MODE_RATE`])
    /// and the default retry policy ([`DEFAULT_MAX_RETRIES`], [`DEFAULT_BASE_BACKOFF`],
    /// [`DEFAULT_MAX_BACKOFF`]).
    ///
    /// # Errors
    /// [`ConfigError`] when the URL is not an absolute `http(s)` URL or the client cannot be built.
    pub fn new(api_base: &str) -> Result<Self, ConfigError> {
        Self::with_client(api_base, Self::default_client()?)
    }

    /// A source for `api_base` that uses the given HTTP client (which should have timeouts).
    ///
    /// # Errors
    /// [`ConfigError::InvalidBase`] when the URL is not an absolute `http(s)` URL.
    pub fn with_client(api_base: &str, http: reqwest::Client) -> Result<Self, ConfigError> {
        let base = crate::oauth::parse_base(api_base)?;
        let retry = RetryPolicy { max_retries: DEFAULT_MAX_RETRIES, base_backoff: DEFAULT_BASE_BACKOFF, max_backoff: DEFAULT_MAX_BACKOFF };
        let budgets = Arc::new(Budgets::new(BudgetConfig::default()));
        Ok(Self { api: Arc::new(Api { base, http, retry, budgets, counters: Counters::default() }), created: Arc::default() })
    }

    /// The HTTP client [`Self::new`] uses: [`CONNECT_TIMEOUT`], [`REQUEST_TIMEOUT`], no redirects.
    ///
    /// # Errors
    /// [`ConfigError::Client`] when reqwest cannot build it.
    pub fn default_client() -> Result<reqwest::Client, ConfigError> {
        reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tributary-stripe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))
    }

    /// Sets the client-side rate limit per connected account in both modes: `Some(n)` allows `n`
    /// requests per second, `None` (or `Some(0)`) turns it off. By default the limit is the mode's:
    /// [`TEST_MODE_RATE`] in test mode, [`LIVE_MODE_RATE`] in live mode.
    #[must_use]
    pub fn with_rate(self, per_second: Option<u32>) -> Self {
        let config = self.api.budgets.config;
        self.with_budget(BudgetConfig { test_rate: per_second, live_rate: per_second, ..config })
    }

    /// Sets each mode's rate and requests in flight per connected account (see [`BudgetConfig`]).
    #[must_use]
    pub fn with_budget(mut self, config: BudgetConfig) -> Self {
        self.api_mut().budgets = Arc::new(Budgets::new(config));
        self
    }

    /// Changes the retry policy: `max_retries` retries after the first attempt, waiting about
    /// `base_backoff`, then twice as long each time (with jitter, capped by
    /// [`Self::with_max_backoff`]).
    #[must_use]
    pub fn with_retries(mut self, max_retries: u32, base_backoff: Duration) -> Self {
        let api = self.api_mut();
        api.retry.max_retries = max_retries;
        api.retry.base_backoff = base_backoff;
        self
    }

    /// Caps the wait between two attempts (default [`DEFAULT_MAX_BACKOFF`]).
    #[must_use]
    pub fn with_max_backoff(mut self, max_backoff: Duration) -> Self {
        self.api_mut().retry.max_backoff = max_backoff;
        self
    }

    /// The client, to configure while the source is being built (before any call shares it).
    fn api_mut(&mut self) -> &mut Api {
        Arc::get_mut(&mut self.api).expect("a source is configured before it is used")
    }

    /// A handle on the same client, budgets and counters, for a spawned task.
    fn share(&self) -> Self {
        Self { api: self.api.clone(), created: self.created.clone() }
    }

    /// The API base URL.
    pub fn api_base(&self) -> &Url {
        &self.api.base
    }

    /// Counters of the requests made so far by this source (all accounts).
    pub fn stats(&self) -> SourceStats {
        self.api.counters.snapshot()
    }

    /// The client-side rate limit for a mode, in requests per second per account (`None`: off).
    pub fn rate_for(&self, mode: tributary_domain::model::integration::Mode) -> Option<u32> {
        self.api.budgets.config.rate(mode)
    }

    /// The requests in flight per account allowed in a mode.
    pub fn in_flight_for(&self, mode: tributary_domain::model::integration::Mode) -> u32 {
        self.api.budgets.config.in_flight(mode)
    }

    /// `GET /v1/account` + `GET /v1/balance` as one company-info record.
    async fn company_info(&self, creds: &PlatformCredentials, account: &str) -> Result<CommerceRecord, SourceError> {
        let (acct, balance) =
            tokio::join!(self.api.get(creds, account, &["account"], &[]), self.api.get(creds, account, &["balance"], &[]));
        let acct = acct.map_err(ApiError::into_source_error)?;
        let balance = balance.map_err(ApiError::into_source_error)?;
        let info = mapping::company_info(&acct, &balance, self.api.base.as_str()).map_err(map_err)?;
        Ok(CommerceRecord::CompanyInfo(info))
    }

    /// One page of `/v1/{list}`, newest first, within `range` (`created[gte]`, `created[lt]`).
    #[allow(clippy::too_many_arguments, reason = "one Stripe list request's parameters")]
    async fn list(
        &self,
        creds: &PlatformCredentials,
        account: &str,
        list: &str,
        filter: Option<(&str, &str)>,
        range: (Option<i64>, Option<i64>),
        after: Option<&str>,
        at: Option<i64>,
    ) -> Result<ListPage, SourceError> {
        let limit = PAGE_LIMIT.to_string();
        let (gte, lt) = (range.0.map(|t| t.to_string()), range.1.map(|t| t.to_string()));
        let mut query: Vec<(&str, &str)> = vec![("limit", &limit)];
        query.extend(filter);
        if list == "prices" {
            // Not sent unless expanded: a price's other currencies (docs/stripe-mapping.md).
            query.push(("expand[]", "data.currency_options"));
        }
        if let Some(gte) = &gte {
            query.push(("created[gte]", gte));
        }
        let bounded = query.clone();
        if let Some(lt) = &lt {
            query.push(("created[lt]", lt));
        }
        if let Some(a) = after {
            query.push(("starting_after", a));
        }
        let body = match self.api.get(creds, account, &[list], &query).await {
            Ok(v) => v,
            Err(e) if e.is_missing_cursor() && at.is_some() => {
                // The object the cursor points at was deleted since: resume by time instead (the
                // objects of that second come again; writing them twice is harmless).
                let top = at.unwrap_or_default().saturating_add(1).min(range.1.unwrap_or(i64::MAX)).to_string();
                tracing::warn!(list, account, "stripe: cursor object gone; resuming at created[lt]={top}");
                let mut query = bounded;
                query.push(("created[lt]", &top));
                self.api.get(creds, account, &[list], &query).await.map_err(ApiError::into_source_error)?
            }
            Err(e) => return Err(e.into_source_error()),
        };
        let data = body.get("data").and_then(Value::as_array).cloned();
        let has_more = body.get("has_more").and_then(Value::as_bool);
        match (data, has_more) {
            (Some(data), Some(has_more)) => Ok(ListPage { data, has_more }),
            _ => Err(SourceError::Fetch(format!("GET /v1/{list}: the answer is not a Stripe list"))),
        }
    }

    /// Every price of a product (all pages).
    async fn prices_of(&self, creds: &PlatformCredentials, account: &str, product: &str) -> Result<Vec<Value>, SourceError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.list(creds, account, "prices", Some(("product", product)), (None, None), after.as_deref(), None).await?;
            let last = page.data.last().and_then(id_of);
            out.extend(page.data.into_iter().filter(|p| mapping::price_product_id(p).is_none_or(|id| id == product)));
            match last {
                Some(l) if page.has_more => after = Some(l),
                _ => return Ok(out),
            }
        }
    }

    /// Products with their prices as variants: the prices staged by the backfill's first stage
    /// (`staged`), or each product's prices asked for afresh (a change to follow).
    async fn products(
        &self,
        creds: &PlatformCredentials,
        account: &str,
        products: &[Value],
        staged: Option<&dyn StagedLookup>,
    ) -> Result<Vec<CommerceRecord>, SourceError> {
        let live: Vec<&Value> = products.iter().filter(|p| !mapping::is_deleted(p)).collect();
        let ids: Vec<String> = live.iter().map(|p| id_of(p).unwrap_or_default()).collect();
        let prices: Vec<Vec<Value>> = if let Some(staged) = staged {
            let mut by_product: HashMap<String, Vec<Value>> = HashMap::new();
            for item in staged.staged(ids.clone()).await? {
                by_product.entry(item.key).or_default().push(item.value);
            }
            // In Stripe's list order (newest first), as listing them would give.
            for prices in by_product.values_mut() {
                prices.sort_by(|a, b| created_of(b).cmp(&created_of(a)).then_with(|| id_of(b).cmp(&id_of(a))));
            }
            ids.iter().map(|id| by_product.remove(id).unwrap_or_default()).collect()
        } else {
            // Boxed futures in a Vec: a closure inside the stream's type trips the `Send` check of
            // the async trait (rust-lang/rust#102211).
            let lookups: Vec<BoxFuture<'_, Result<Vec<Value>, SourceError>>> =
                ids.iter().map(|id| Box::pin(self.prices_of(creds, account, id)) as BoxFuture<'_, _>).collect();
            stream::iter(lookups).buffered(FAN_OUT).try_collect().await?
        };
        let mut out = Vec::with_capacity(live.len());
        for (p, prices) in live.into_iter().zip(prices) {
            if let Some(product) = mapping::product(p, &prices).map_err(map_err)? {
                out.push(CommerceRecord::Product(product));
            }
        }
        Ok(out)
    }

    /// Maps one page of a list: records, or (prices) items staged for the products.
    async fn map_page(
        &self,
        creds: &PlatformCredentials,
        account: &str,
        phase: Phase,
        data: Vec<Value>,
        staged: &dyn StagedLookup,
    ) -> Result<(Vec<CommerceRecord>, Vec<StagedItem>), SourceError> {
        let mut out = Vec::with_capacity(data.len());
        let mut kept = Vec::new();
        for v in &data {
            match phase {
                Phase::Customers => out.extend(mapping::customer(v).map_err(map_err)?.map(CommerceRecord::Customer)),
                Phase::Disputes => out.extend(mapping::dispute(v).map_err(map_err)?.map(CommerceRecord::Dispute)),
                Phase::Charges => out.extend(mapping::charge_payment(v).map_err(map_err)?.map(CommerceRecord::Payment)),
                Phase::Refunds => out.extend(mapping::refund_payment(v).map_err(map_err)?.map(CommerceRecord::Payment)),
                Phase::BalanceTransactions => {
                    out.extend(mapping::transactions(v).map_err(map_err)?.into_iter().map(CommerceRecord::Transaction));
                }
                Phase::Prices => {}
                Phase::Products => return Ok((self.products(creds, account, &data, Some(staged)).await?, Vec::new())),
            }
        }
        if phase == Phase::Prices {
            for mut price in data {
                let (Some(product), Some(id)) = (mapping::price_product_id(&price), id_of(&price)) else { continue };
                // Only what the mapping reads.
                if let Some(fields) = price.as_object_mut() {
                    fields.retain(|k, _| mapping::PRICE_FIELDS.contains(&k.as_str()));
                }
                kept.push(StagedItem { key: product, id, value: price });
            }
        }
        Ok((out, kept))
    }

    /// The account's `created`, the floor of every list (best effort: estimates and splits need
    /// it), read once per [`ACCOUNT_CREATED_TTL`] for all of the account's partitions.
    async fn account_created(&self, creds: &PlatformCredentials, account: &str) -> Option<i64> {
        let key = (creds.mode, account.to_owned());
        let cell = {
            let mut all = self.created.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            all.retain(|_, (at, _)| at.elapsed() < ACCOUNT_CREATED_TTL);
            all.entry(key).or_insert_with(|| (Instant::now(), Arc::default())).1.clone()
        };
        *cell
            .get_or_init(|| async {
                match self.api.get(creds, account, &["account"], &[]).await {
                    Ok(v) => created_of(&v),
                    Err(e) => {
                        tracing::debug!(account, error = %e.into_source_error(), "stripe: no account creation date; partitions are not split");
                        None
                    }
                }
            })
            .await
    }

    /// One page of a partition (see [`CommerceDataSource::list_page`]), in the calling task.
    async fn page(
        &self,
        creds: &PlatformCredentials,
        account_id: &str,
        data_type: DataType,
        cursor: &str,
        staged: &dyn StagedLookup,
    ) -> Result<RecordPage, SourceError> {
        if data_type == DataType::CompanyInfo {
            if cursor != COMPANY_INFO {
                return Err(SourceError::Fetch("company info is a single page; it takes no cursor".into()));
            }
            let info = self.company_info(creds, account_id).await?;
            return Ok(RecordPage { records: vec![info], estimate: Estimate { done: 1, left: 0 }, ..RecordPage::default() });
        }
        if Phase::all_for(data_type).is_none() {
            return Err(unsupported(data_type));
        }
        let mut cur = Cursor::decode(cursor, data_type)?;
        let list = self.list(creds, account_id, cur.list.list(), None, (cur.gte, cur.lt), cur.after.as_deref(), cur.at);
        let page = if cur.floor.is_none() && cur.after.is_none() && cur.gte.is_none() {
            // A list's first page: the account's creation, which bounds estimates and splits, is
            // read at the same time (once for all of the account's lists).
            let (page, floor) = tokio::join!(list, self.account_created(creds, account_id));
            cur.floor = floor;
            page?
        } else {
            list.await?
        };
        let count = page.data.len();
        let newest = page.data.first().and_then(created_of);
        let oldest = page.data.last().and_then(|v| id_of(v).map(|id| (id, created_of(v))));
        if page.has_more && oldest.is_none() {
            tracing::warn!(list = cur.list.list(), account = account_id, "stripe: has_more with an empty page; ending the list");
        }
        let (records, staged) = self.map_page(creds, account_id, cur.list, page.data, staged).await?;
        let (next, estimate) = match oldest {
            Some(oldest) if page.has_more => {
                let next = cur.advanced(count, newest, oldest);
                let estimate = next.estimate();
                (Some(next.encode()), estimate)
            }
            _ => (None, Estimate { done: cur.seen + count as u64, left: 0 }),
        };
        Ok(RecordPage { records, staged, next_cursor: next, estimate })
    }

    /// `GET /v1/{list}/{id}`; `None` when Stripe has no such object (404 `resource_missing`).
    async fn retrieve(&self, creds: &PlatformCredentials, account: &str, list: &str, id: &str) -> Result<Option<Value>, SourceError> {
        match self.api.get(creds, account, &[list, id], &[]).await {
            Ok(v) => Ok(Some(v)),
            Err(ApiError::Status { status: 404, code: Some(code), .. }) if code == "resource_missing" => Ok(None),
            Err(e) => Err(e.into_source_error()),
        }
    }

    /// The records for one requested id (a transaction id may carry the fee suffix).
    async fn fetch_one(
        &self,
        creds: &PlatformCredentials,
        account: &str,
        dt: DataType,
        id: &str,
    ) -> Result<Vec<CommerceRecord>, SourceError> {
        Ok(match dt {
            DataType::Customers | DataType::Disputes | DataType::Payments => {
                let list = match dt {
                    DataType::Customers => "customers",
                    DataType::Disputes => "disputes",
                    _ if is_refund_id(id) => "refunds",
                    _ => "charges",
                };
                match self.retrieve(creds, account, list, id).await? {
                    Some(v) => map_object(dt, id, &v)?,
                    None => Vec::new(),
                }
            }
            DataType::Products => match self.retrieve(creds, account, "products", id).await? {
                Some(v) if !mapping::is_deleted(&v) => self.products(creds, account, &[v], None).await?,
                _ => Vec::new(),
            },
            DataType::Transactions => {
                let txn = id.strip_suffix(FEE_RECORD_SUFFIX).unwrap_or(id);
                match self.retrieve(creds, account, "balance_transactions", txn).await? {
                    Some(v) => mapping::transactions(&v)
                        .map_err(map_err)?
                        .into_iter()
                        .filter(|t| t.id == id)
                        .map(CommerceRecord::Transaction)
                        .collect(),
                    None => Vec::new(),
                }
            }
            _ => return Err(unsupported(dt)),
        })
    }
}

#[async_trait]
impl CommerceDataSource for StripeDataSource {
    async fn plan_backfill(
        &self,
        _creds: &PlatformCredentials,
        account_id: &str,
        data_type: DataType,
    ) -> Result<Vec<PlannedPartition>, SourceError> {
        check_account(account_id)?;
        if data_type == DataType::CompanyInfo {
            return Ok(vec![PlannedPartition { stage: 0, cursor: COMPANY_INFO.into(), estimate: Estimate { done: 0, left: 1 } }]);
        }
        let Some(lists) = Phase::all_for(data_type) else { return Err(unsupported(data_type)) };
        Ok(lists.iter().map(|(list, _)| Cursor::start(*list, None).planned(data_type)).collect())
    }

    async fn list_page(
        &self,
        creds: &PlatformCredentials,
        account_id: &str,
        data_type: DataType,
        cursor: String,
        staged: Arc<dyn StagedLookup>,
    ) -> Result<RecordPage, SourceError> {
        check_account(account_id)?;
        let (this, creds, account) = (self.share(), creds.clone(), account_id.to_owned());
        let mut task = AbortOnDrop(tokio::spawn(async move { this.page(&creds, &account, data_type, &cursor, staged.as_ref()).await }));
        match (&mut task.0).await {
            Ok(page) => page,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(SourceError::Fetch(format!("the page's task ended early: {e}"))),
        }
    }

    fn parallelism(&self, creds: &PlatformCredentials, account_id: &str) -> usize {
        self.api.budgets.parallelism(creds.mode, account_id)
    }

    fn split(
        &self,
        creds: &PlatformCredentials,
        account_id: &str,
        data_type: DataType,
        cursor: &str,
        parts: usize,
    ) -> Vec<PlannedPartition> {
        let _ = (creds, account_id);
        match Cursor::decode(cursor, data_type) {
            Ok(c) => c.split(parts).iter().map(|p| p.planned(data_type)).collect(),
            Err(_) => Vec::new(),
        }
    }

    async fn list_changes(
        &self,
        creds: &PlatformCredentials,
        account_id: &str,
        data_type: DataType,
        cursor: String,
    ) -> Result<ChangeSet, SourceError> {
        self.changes(creds, account_id, data_type, &cursor).await
    }

    async fn fetch_by_ids(
        &self,
        creds: &PlatformCredentials,
        account_id: &str,
        data_type: DataType,
        ids: Vec<String>,
    ) -> Result<Vec<CommerceRecord>, SourceError> {
        check_account(account_id)?;
        if data_type == DataType::CompanyInfo {
            return Ok(vec![self.company_info(creds, account_id).await?]);
        }
        if !data_type.supported_by_stripe() {
            return Err(unsupported(data_type));
        }
        let mut seen = HashSet::new();
        // `.` and `..` would be dropped from the URL path (and read the list instead): no such ids.
        let ids: Vec<String> = ids.into_iter().filter(|id| !matches!(id.as_str(), "" | "." | "..") && seen.insert(id.clone())).collect();
        let lookups: Vec<BoxFuture<'_, Result<Vec<CommerceRecord>, SourceError>>> =
            ids.iter().map(|id| Box::pin(self.fetch_one(creds, account_id, data_type, id)) as BoxFuture<'_, _>).collect();
        let found: Vec<Vec<CommerceRecord>> = stream::iter(lookups).buffered(FAN_OUT).try_collect().await?;
        Ok(found.into_iter().flatten().collect())
    }
}

/// Whether a payment record id is a refund's (`re_…`, `pyr_…`) rather than a charge's.
fn is_refund_id(id: &str) -> bool {
    id.starts_with("re_") || id.starts_with("pyr_")
}

/// The records of a customer, dispute, charge or refund object (as retrieved, or as an event in the
/// pinned API version renders it); a deleted customer maps to none.
pub(crate) fn map_object(dt: DataType, id: &str, v: &serde_json::Value) -> Result<Vec<CommerceRecord>, SourceError> {
    let one = |r: Option<CommerceRecord>| r.into_iter().collect::<Vec<_>>();
    Ok(match dt {
        DataType::Customers => one(mapping::customer(v).map_err(map_err)?.map(CommerceRecord::Customer)),
        DataType::Disputes => one(mapping::dispute(v).map_err(map_err)?.map(CommerceRecord::Dispute)),
        DataType::Payments if is_refund_id(id) => one(mapping::refund_payment(v).map_err(map_err)?.map(CommerceRecord::Payment)),
        DataType::Payments => one(mapping::charge_payment(v).map_err(map_err)?.map(CommerceRecord::Payment)),
        _ => return Err(unsupported(dt)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_a_path_prefix_and_encode_ids() {
        let s = StripeDataSource::new("http://127.0.0.1:1/prefix/").unwrap();
        assert_eq!(s.api.url(&["customers"]).as_str(), "http://127.0.0.1:1/prefix/v1/customers");
        let s = StripeDataSource::new(STRIPE_API_BASE).unwrap();
        assert_eq!(s.api.url(&["charges", "ch_1/../x?y"]).as_str(), "https://api.stripe.com/v1/charges/ch_1%2F..%2Fx%3Fy");
    }

    #[test]
    fn bad_bases_and_account_ids_are_refused() {
        for bad in ["api.stripe.com", "ftp://x", "http://u:p@host", "http://host/?q=1"] {
            assert!(matches!(StripeDataSource::new(bad), Err(ConfigError::InvalidBase { .. })), "{bad}");
        }
        assert!(check_account("acct_1Abc").is_ok());
        for bad in ["", "acct 1", "acct_1\r\nX-Evil: 1", "acct_é"] {
            assert!(matches!(check_account(bad), Err(SourceError::Fetch(_))), "{bad:?}");
        }
    }

    #[test]
    fn rate_defaults_per_mode_and_can_be_changed_or_turned_off() {
        use tributary_domain::model::integration::Mode;
        let s = StripeDataSource::new(STRIPE_API_BASE).unwrap();
        assert_eq!((s.rate_for(Mode::Test), s.rate_for(Mode::Live)), (Some(25), Some(100)));
        assert_eq!((s.in_flight_for(Mode::Test), s.in_flight_for(Mode::Live)), (32, 100));
        let s = s.with_rate(Some(7));
        assert_eq!((s.rate_for(Mode::Test), s.rate_for(Mode::Live)), (Some(7), Some(7)));
        let s = s.with_rate(None);
        assert_eq!(s.rate_for(Mode::Test), None);
        let s = s.with_budget(BudgetConfig { test_rate: Some(10), live_rate: Some(50), test_in_flight: 4, live_in_flight: 8 });
        assert_eq!((s.rate_for(Mode::Test), s.rate_for(Mode::Live), s.in_flight_for(Mode::Live)), (Some(10), Some(50), 8));
    }
}
