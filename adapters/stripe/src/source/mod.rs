//! [`StripeDataSource`]: the domain's [`CommerceDataSource`] for Stripe Connect. It reads a
//! connected account's data with the platform secret key and `Stripe-Account`, walks Stripe's
//! lists newest first (`limit=100`, `starting_after`), and maps every object to Codat's commerce
//! records with [`crate::mapping`].
//!
//! | Codat data type | Stripe lists walked (in order) |
//! | --- | --- |
//! | `commerce-companyInfo` | `GET /v1/account` + `GET /v1/balance` (one page, one record) |
//! | `commerce-customers` | `/v1/customers` |
//! | `commerce-disputes` | `/v1/disputes` |
//! | `commerce-payments` | `/v1/charges`, then `/v1/refunds` (refunds are negative payments) |
//! | `commerce-products` | `/v1/products`, and for each product `/v1/prices?product=…` |
//! | `commerce-transactions` | `/v1/balance_transactions` (plus a fee record per fee) |
//!
//! The cursor returned with each page is opaque to callers: compact JSON naming the list being
//! walked and the last object returned, e.g.
//! `{"v":1,"phase":"charges","after":"ch_…","at":1761000000,"top":1761900000,"floor":1735603200}`
//! (`at`: `created` of `after`, to resume by time if that object is deleted; `top`/`floor`: for
//! the progress estimate). A killed sync that resumes with the last
//! saved cursor continues at the next page. Other Codat commerce data types are not provided for
//! Stripe and fail with [`SourceError::Fetch`].
//!
//! Incremental sync (`list_changes`) follows Stripe's Events API (module `changes`): an empty
//! cursor gives a starting point, cursors are compact JSON, and a cursor older than Stripe's 30-day
//! event retention answers `needs_backfill`.

mod api;
mod changes;
mod cursor;

pub use api::{
    CONNECT_TIMEOUT, DEFAULT_BASE_BACKOFF, DEFAULT_MAX_BACKOFF, DEFAULT_MAX_RETRIES, LIVE_MODE_RATE, REQUEST_TIMEOUT, STRIPE_API_VERSION,
    SourceStats, TEST_MODE_RATE,
};
pub use changes::{EVENT_RETENTION_SECS, OVERLAP_SECS};

use crate::mapping::{self, FEE_RECORD_SUFFIX};
use crate::oauth::ConfigError;
use api::{Api, ApiError, Counters, Limiter, RateConfig, RetryPolicy};
use async_trait::async_trait;
use cursor::{Cursor, Phase};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tributary_domain::model::commerce::CommerceRecord;
use tributary_domain::model::data_type::DataType;
use tributary_domain::ports::oauth::PlatformCredentials;
use tributary_domain::ports::source::{ChangeSet, CommerceDataSource, RecordPage, SourceError};
use url::Url;

/// Stripe's API host.
pub const STRIPE_API_BASE: &str = "https://api.stripe.com";
/// Page size of every list request (Stripe's maximum).
pub const PAGE_LIMIT: u32 = 100;
/// How many requests for one page (prices of a page of products, ids to fetch) run at once; the
/// token bucket still spaces them.
const FAN_OUT: usize = 8;

/// Stripe's commerce data for Tributary: a [`CommerceDataSource`] over Stripe's REST API (or the
/// project's sandbox).
///
/// A list page is fetched, parsed and mapped in a task of its own, so that the caller (the sync
/// engine, which writes the previous page meanwhile) is not held up by the parsing.
#[derive(Debug)]
pub struct StripeDataSource {
    api: Arc<Api>,
    /// Per (mode, account): every price by product, and when it was listed (see [`PRICE_INDEX_TTL`]).
    price_index: Arc<std::sync::Mutex<PriceListings>>,
}

/// Aborts a spawned task when the future waiting for it is dropped (a sync that stops between
/// pages does not leave a request running).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Prices by product id.
type PriceIndex = HashMap<String, Vec<Value>>;
/// Per (mode, account): the latest listing of all prices and when it was made.
type PriceListings = HashMap<PriceIndexKey, (std::time::Instant, Arc<PriceIndex>)>;
/// A price listing's mode and account (an account id is the same in both modes).
type PriceIndexKey = (tributary_domain::model::integration::Mode, String);

/// How long a backfill reuses an account's listing of all prices. A products backfill lists every
/// price once (prices/100 requests) instead of asking for each product's prices (one request per
/// product); a price that changes after the listing reaches the record through the incremental
/// sync's `price.*` events, which fetch the product's prices afresh.
pub const PRICE_INDEX_TTL: Duration = Duration::from_secs(300);
// A listing is never older than the overlap of the first change set read after the backfill, so
// every price changed after it is among that change set's events.
const _: () = assert!(PRICE_INDEX_TTL.as_secs() <= changes::OVERLAP_SECS.unsigned_abs());

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
        Ok(Self {
            api: Arc::new(Api { base, http, retry, limiter: Limiter::new(RateConfig::PerMode), counters: Counters::default() }),
            price_index: Arc::default(),
        })
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

    /// Sets the client-side rate limit per connected account: `Some(n)` allows `n` requests per
    /// second in either mode, `None` (or `Some(0)`) turns the limiter off. By default the limit is
    /// the mode's: [`TEST_MODE_RATE`] in test mode, [`LIVE_MODE_RATE`] in live mode.
    #[must_use]
    pub fn with_rate(mut self, per_second: Option<u32>) -> Self {
        let config = match per_second {
            Some(n) if n > 0 => RateConfig::Fixed(n),
            _ => RateConfig::Off,
        };
        self.api_mut().limiter = Limiter::new(config);
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

    /// A handle on the same client, limiter, counters and price listings, for a spawned task.
    fn share(&self) -> Self {
        Self { api: self.api.clone(), price_index: self.price_index.clone() }
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
        match self.api.limiter.config {
            RateConfig::PerMode => Some(match mode {
                tributary_domain::model::integration::Mode::Test => TEST_MODE_RATE,
                tributary_domain::model::integration::Mode::Live => LIVE_MODE_RATE,
            }),
            RateConfig::Fixed(n) => Some(n),
            RateConfig::Off => None,
        }
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

    /// One page of `/v1/{list}`, newest first.
    async fn list(
        &self,
        creds: &PlatformCredentials,
        account: &str,
        list: &str,
        filter: Option<(&str, &str)>,
        after: Option<&str>,
        at: Option<i64>,
    ) -> Result<ListPage, SourceError> {
        let limit = PAGE_LIMIT.to_string();
        let mut query: Vec<(&str, &str)> = vec![("limit", &limit)];
        query.extend(filter);
        if let Some(a) = after {
            query.push(("starting_after", a));
        }
        let body = match self.api.get(creds, account, &[list], &query).await {
            Ok(v) => v,
            Err(e) if e.is_missing_cursor() && at.is_some() => {
                // The object the cursor points at was deleted since: resume by time instead (the
                // objects of that second come again; writing them twice is harmless).
                let at = at.unwrap_or_default().to_string();
                tracing::warn!(list, account, "stripe: cursor object gone; resuming at created[lte]={at}");
                query.retain(|(k, _)| *k != "starting_after");
                query.push(("created[lte]", &at));
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
            let page = self.list(creds, account, "prices", Some(("product", product)), after.as_deref(), None).await?;
            let last = page.data.last().and_then(id_of);
            out.extend(page.data.into_iter().filter(|p| mapping::price_product_id(p).is_none_or(|id| id == product)));
            match last {
                Some(l) if page.has_more => after = Some(l),
                _ => return Ok(out),
            }
        }
    }

    /// Every price of the account by product, listed at most [`PRICE_INDEX_TTL`] ago.
    async fn price_index(&self, creds: &PlatformCredentials, account: &str) -> Result<Arc<PriceIndex>, SourceError> {
        let key = (creds.mode, account.to_owned());
        let cached = self.price_index.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key).cloned();
        if let Some((at, index)) = cached
            && at.elapsed() < PRICE_INDEX_TTL
        {
            return Ok(index);
        }
        let listed_at = std::time::Instant::now();
        let mut index = PriceIndex::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.list(creds, account, "prices", None, after.as_deref(), None).await?;
            let last = page.data.last().and_then(id_of);
            for mut price in page.data {
                if let Some(product) = mapping::price_product_id(&price) {
                    // Only what the mapping reads: an account's prices are held for the whole backfill.
                    if let Some(fields) = price.as_object_mut() {
                        fields.retain(|k, _| mapping::PRICE_FIELDS.contains(&k.as_str()));
                    }
                    index.entry(product).or_default().push(price);
                }
            }
            match last {
                Some(l) if page.has_more => after = Some(l),
                _ => break,
            }
        }
        let index = Arc::new(index);
        let mut all = self.price_index.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Accounts not read for a while are forgotten.
        all.retain(|_, (at, _)| at.elapsed() < PRICE_INDEX_TTL);
        all.insert(key, (listed_at, index.clone()));
        Ok(index)
    }

    /// Products with their prices as variants: from the account's price listing during a backfill
    /// (`fresh == false`), or each product's prices asked for afresh (a change to follow).
    async fn products(
        &self,
        creds: &PlatformCredentials,
        account: &str,
        products: &[Value],
        fresh: bool,
    ) -> Result<Vec<CommerceRecord>, SourceError> {
        let live: Vec<&Value> = products.iter().filter(|p| !mapping::is_deleted(p)).collect();
        let ids: Vec<String> = live.iter().map(|p| id_of(p).unwrap_or_default()).collect();
        let prices: Vec<Vec<Value>> = if fresh {
            // Boxed futures in a Vec: a closure inside the stream's type trips the `Send` check of
            // the async trait (rust-lang/rust#102211).
            let lookups: Vec<BoxFuture<'_, Result<Vec<Value>, SourceError>>> =
                ids.iter().map(|id| Box::pin(self.prices_of(creds, account, id)) as BoxFuture<'_, _>).collect();
            stream::iter(lookups).buffered(FAN_OUT).try_collect().await?
        } else {
            let index = self.price_index(creds, account).await?;
            ids.iter().map(|id| index.get(id).cloned().unwrap_or_default()).collect()
        };
        let mut out = Vec::with_capacity(live.len());
        for (p, prices) in live.into_iter().zip(prices) {
            if let Some(product) = mapping::product(p, &prices).map_err(map_err)? {
                out.push(CommerceRecord::Product(product));
            }
        }
        Ok(out)
    }

    /// Maps one page of a phase's list.
    async fn map_page(
        &self,
        creds: &PlatformCredentials,
        account: &str,
        phase: Phase,
        data: &[Value],
    ) -> Result<Vec<CommerceRecord>, SourceError> {
        let mut out = Vec::with_capacity(data.len());
        for v in data {
            match phase {
                Phase::Customers => out.extend(mapping::customer(v).map_err(map_err)?.map(CommerceRecord::Customer)),
                Phase::Disputes => out.extend(mapping::dispute(v).map_err(map_err)?.map(CommerceRecord::Dispute)),
                Phase::Charges => out.extend(mapping::charge_payment(v).map_err(map_err)?.map(CommerceRecord::Payment)),
                Phase::Refunds => out.extend(mapping::refund_payment(v).map_err(map_err)?.map(CommerceRecord::Payment)),
                Phase::BalanceTransactions => {
                    out.extend(mapping::transactions(v).map_err(map_err)?.into_iter().map(CommerceRecord::Transaction));
                }
                Phase::Products => return self.products(creds, account, data, false).await,
            }
        }
        Ok(out)
    }

    /// The account's `created`, the floor of every list (best effort: only progress needs it).
    async fn account_created(&self, creds: &PlatformCredentials, account: &str) -> Option<i64> {
        match self.api.get(creds, account, &["account"], &[]).await {
            Ok(v) => created_of(&v),
            Err(e) => {
                tracing::debug!(account, error = %e.into_source_error(), "stripe: no account creation date; progress unknown");
                None
            }
        }
    }

    /// One page of `data_type` (see [`CommerceDataSource::list_page`]), in the calling task.
    async fn page(
        &self,
        creds: &PlatformCredentials,
        account_id: &str,
        data_type: DataType,
        cursor: Option<String>,
    ) -> Result<RecordPage, SourceError> {
        if data_type == DataType::CompanyInfo {
            if cursor.is_some() {
                return Err(SourceError::Fetch("company info is a single page; it takes no cursor".into()));
            }
            let info = self.company_info(creds, account_id).await?;
            return Ok(RecordPage { records: vec![info], next_cursor: None, progress: Some(100) });
        }
        let Some(phases) = Phase::all_for(data_type) else { return Err(unsupported(data_type)) };
        let cur = match cursor {
            None => Cursor::start(phases[0], None),
            Some(raw) => Cursor::decode(&raw, data_type)?,
        };
        self.walk(creds, account_id, phases, cur).await
    }

    /// One page of a backfill from `cur`.
    async fn walk(&self, creds: &PlatformCredentials, account: &str, phases: &[Phase], mut cur: Cursor) -> Result<RecordPage, SourceError> {
        let page = self.list(creds, account, cur.phase.list(), None, cur.after.as_deref(), cur.at).await?;
        let records = self.map_page(creds, account, cur.phase, &page.data).await?;
        if cur.top.is_none() {
            cur.top = page.data.first().and_then(created_of);
        }
        let last = page.data.last().and_then(|v| id_of(v).map(|id| (id, created_of(v))));
        let next = match last {
            Some((id, at)) if page.has_more => {
                if cur.floor.is_none() {
                    cur.floor = self.account_created(creds, account).await;
                }
                Some(Cursor { after: Some(id), at, ..cur.clone() })
            }
            _ => {
                if page.has_more {
                    tracing::warn!(list = cur.phase.list(), account, "stripe: has_more with an empty page; ending the list");
                }
                let index = phases.iter().position(|p| *p == cur.phase).unwrap_or(phases.len());
                phases.get(index + 1).map(|p| Cursor::start(*p, cur.floor))
            }
        };
        let progress = match &next {
            Some(n) => n.progress(phases),
            None => Some(100),
        };
        Ok(RecordPage { records, next_cursor: next.map(|c| c.encode()), progress })
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
                Some(v) if !mapping::is_deleted(&v) => self.products(creds, account, &[v], true).await?,
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
    async fn list_page(
        &self,
        creds: &PlatformCredentials,
        account_id: &str,
        data_type: DataType,
        cursor: Option<String>,
    ) -> Result<RecordPage, SourceError> {
        check_account(account_id)?;
        let (this, creds, account) = (self.share(), creds.clone(), account_id.to_owned());
        let mut task = AbortOnDrop(tokio::spawn(async move { this.page(&creds, &account, data_type, cursor).await }));
        match (&mut task.0).await {
            Ok(page) => page,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(SourceError::Fetch(format!("the page's task ended early: {e}"))),
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
        let s = s.with_rate(Some(7));
        assert_eq!((s.rate_for(Mode::Test), s.rate_for(Mode::Live)), (Some(7), Some(7)));
        let s = s.with_rate(None);
        assert_eq!(s.rate_for(Mode::Test), None);
    }
}
