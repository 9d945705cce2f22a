//! Shared helpers for the sandbox's HTTP tests: start a sandbox in-process, create accounts
//! through the control API, make Stripe-style requests, walk lists page by page and check
//! Stripe's error shape.

#![allow(dead_code, reason = "every test file uses a different subset of these helpers")]

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use stripe_sandbox::{Config, Running};

/// The default test-mode platform secret key.
pub const TEST_KEY: &str = "sk_test_sandbox_platform";
/// The default live-mode platform secret key.
pub const LIVE_KEY: &str = "sk_live_sandbox_platform";
/// The default test-mode Connect client id.
pub const TEST_CLIENT: &str = "ca_sandbox_test";
/// The default live-mode Connect client id.
pub const LIVE_CLIENT: &str = "ca_sandbox_live";
/// Every object list the sandbox serves.
pub const LISTS: [&str; 9] =
    ["customers", "charges", "refunds", "disputes", "payment_intents", "products", "prices", "balance_transactions", "payouts"];
/// The lists the summary sums amounts for.
pub const MONEY_LISTS: [&str; 5] = ["charges", "refunds", "disputes", "payouts", "balance_transactions"];

/// A profile big enough to give several pages of every list with `limit=7`; 21 customers is an
/// exact multiple of 7, so the last customer page is full and must still say `has_more: false`.
pub fn big_profile() -> Value {
    json!({"customers": 21, "charges": 60, "refunds": 12, "disputes": 14, "products": 9, "prices": 18, "payouts": 11})
}

/// A reply read to the end.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body as text.
    pub text: String,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text))
    }

    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
}

/// Reads a response to the end.
pub async fn read(r: reqwest::Response) -> Reply {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("response body");
    Reply { status, headers, text }
}

/// A sandbox running in-process, with an HTTP client that does not follow redirects.
pub struct Sandbox {
    /// The running server.
    pub running: Running,
    /// Its base URL.
    pub base: String,
    /// The client.
    pub http: reqwest::Client,
}

/// A client that never follows redirects and gives up after 20 s.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(20)).build().expect("reqwest client")
}

impl Sandbox {
    /// Starts a sandbox on a free port with the default platform, and turns rate limits off.
    pub async fn start() -> Self {
        let s = Self::start_with(Config::default()).await;
        let r = s.control(Method::PUT, "/_sandbox/rate_limits", Some(json!({"test": null, "live": null}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        s
    }

    /// Starts a sandbox with `config` (listening on a free port), rate limits as configured.
    pub async fn start_with(config: Config) -> Self {
        let running = stripe_sandbox::start(Config { listen: "127.0.0.1:0".into(), ..config }).await.expect("sandbox starts");
        let base = running.url();
        Self { running, base, http: client() }
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.running.stop().await;
    }

    /// An absolute URL for a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A control API request with an optional JSON body.
    pub async fn control(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut rb = self.http.request(method, self.url(path));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        read(rb.send().await.expect("control request")).await
    }

    /// Creates an account through the control API and returns its id.
    pub async fn new_account(&self, body: Value) -> String {
        let r = self.control(Method::POST, "/_sandbox/accounts", Some(body)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let id = r.json()["id"].as_str().expect("id").to_owned();
        assert!(id.starts_with("acct_"), "{id}");
        id
    }

    /// A connected test account with `seed` and `profile`.
    pub async fn test_account(&self, seed: u64, profile: Value) -> String {
        self.new_account(json!({"mode": "test", "seed": seed, "connected": true, "profile": profile})).await
    }

    /// A request builder with optional key and `Stripe-Account`.
    pub fn request(&self, method: Method, path: &str, key: Option<&str>, account: Option<&str>) -> reqwest::RequestBuilder {
        let mut rb = self.http.request(method, self.url(path));
        if let Some(k) = key {
            rb = rb.bearer_auth(k);
        }
        if let Some(a) = account {
            rb = rb.header("Stripe-Account", a);
        }
        rb
    }

    /// `GET` with a given key and account (either may be missing).
    pub async fn get_as(&self, path: &str, key: Option<&str>, account: Option<&str>) -> Reply {
        read(self.request(Method::GET, path, key, account).send().await.expect("request")).await
    }

    /// `GET` with the test key as `account`.
    pub async fn get(&self, path: &str, account: &str) -> Reply {
        self.get_as(path, Some(TEST_KEY), Some(account)).await
    }

    /// `GET` with the test key as `account`, expecting 200, as JSON.
    pub async fn get_ok(&self, path: &str, account: &str) -> Value {
        let r = self.get(path, account).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text);
        r.json()
    }

    /// `POST` a form to an OAuth endpoint, with an optional bearer key.
    pub async fn post_form(&self, path: &str, key: Option<&str>, form: &[(&str, &str)]) -> Reply {
        let mut rb = self.http.post(self.url(path)).form(form);
        if let Some(k) = key {
            rb = rb.bearer_auth(k);
        }
        read(rb.send().await.expect("form request")).await
    }

    /// The account's summary from the control API.
    pub async fn summary(&self, account: &str) -> Value {
        let r = self.control(Method::GET, &format!("/_sandbox/accounts/{account}/summary"), None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
    }

    /// Walks a list (`path` like `/v1/customers`, `query` extra parameters) with `starting_after`
    /// and `limit`, checking each page's shape, that `has_more` is true on every page but the
    /// last, and that the whole walk is newest first. Returns the objects in order.
    pub async fn walk(&self, account: &str, path: &str, query: &str, limit: usize) -> Vec<Value> {
        let mut out: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100_000 {
            let mut q = format!("limit={limit}");
            if !query.is_empty() {
                q = format!("{q}&{query}");
            }
            if let Some(c) = &cursor {
                q = format!("{q}&starting_after={c}");
            }
            let page = self.get_ok(&format!("{path}?{q}"), account).await;
            let (data, more) = list_page(&page, path);
            assert!(data.len() <= limit, "{path}?{q}: {} items over limit {limit}", data.len());
            if more {
                assert_eq!(data.len(), limit, "{path}?{q}: has_more with a short page");
            }
            if data.is_empty() {
                assert!(!more, "{path}?{q}: empty page with has_more");
                assert!(cursor.is_none(), "{path}?{q}: an empty page after a page that said has_more");
            }
            cursor = data.last().map(|o| id(o).to_owned());
            out.extend(data);
            if !more {
                assert_newest_first(&out, path);
                assert_unique(&out, path);
                return out;
            }
        }
        panic!("{path}: the walk did not end");
    }

    /// Walks a list backwards with `ending_before`, starting from the object `from` (exclusive).
    /// Returns every object newer than `from`, newest first, checking pages as [`Sandbox::walk`].
    pub async fn walk_back(&self, account: &str, path: &str, query: &str, limit: usize, from: &str) -> Vec<Value> {
        let mut pages: Vec<Vec<Value>> = Vec::new();
        let mut cursor = from.to_owned();
        for _ in 0..100_000 {
            let mut q = format!("limit={limit}&ending_before={cursor}");
            if !query.is_empty() {
                q = format!("{q}&{query}");
            }
            let page = self.get_ok(&format!("{path}?{q}"), account).await;
            let (data, more) = list_page(&page, path);
            assert!(data.len() <= limit, "{path}?{q}: {} items over limit {limit}", data.len());
            if more {
                assert_eq!(data.len(), limit, "{path}?{q}: has_more with a short page");
            }
            assert_newest_first(&data, path);
            let done = !more;
            if let Some(first) = data.first() {
                cursor = id(first).to_owned();
            }
            pages.push(data);
            if done {
                let out: Vec<Value> = pages.into_iter().rev().flatten().collect();
                assert_newest_first(&out, path);
                assert_unique(&out, path);
                return out;
            }
        }
        panic!("{path}: the backward walk did not end");
    }
}

/// Checks a list page's shape and returns its data and `has_more`.
pub fn list_page(page: &Value, url: &str) -> (Vec<Value>, bool) {
    assert_eq!(page["object"], "list", "{page}");
    assert_eq!(page["url"], url, "list url");
    let more = page["has_more"].as_bool().unwrap_or_else(|| panic!("has_more is not a bool: {page}"));
    let data = page["data"].as_array().unwrap_or_else(|| panic!("data is not an array: {page}")).clone();
    (data, more)
}

/// An object's id.
pub fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap_or_else(|| panic!("no id: {v}"))
}

/// An object's `created`.
pub fn created(v: &Value) -> i64 {
    v["created"].as_i64().unwrap_or_else(|| panic!("no created: {v}"))
}

/// The ids of objects, in order.
pub fn ids(v: &[Value]) -> Vec<String> {
    v.iter().map(|o| id(o).to_owned()).collect()
}

/// Asserts strict newest-first order: `created` descending, then `id` descending. Events of the
/// same second are in reverse emission order instead, so for them only `created` is checked here.
pub fn assert_newest_first(objs: &[Value], what: &str) {
    if what.starts_with("/v1/events") {
        for w in objs.windows(2) {
            assert!(created(&w[0]) >= created(&w[1]), "{what}: events are not newest first");
        }
        return;
    }
    for w in objs.windows(2) {
        let (a, b) = ((created(&w[0]), id(&w[0])), (created(&w[1]), id(&w[1])));
        assert!(a > b, "{what}: {a:?} is listed before {b:?}, which is not newest first (created desc, id desc)");
    }
}

/// Asserts that no id repeats.
pub fn assert_unique(objs: &[Value], what: &str) {
    let mut seen = HashSet::new();
    for o in objs {
        assert!(seen.insert(id(o).to_owned()), "{what}: {} appears twice", id(o));
    }
}

/// Asserts a Stripe v1 error: status, `error.type`, and (when given) `error.code` and
/// `error.param`; `error.message` must be a non-empty string.
pub fn assert_stripe_error(r: &Reply, status: u16, kind: &str, code: Option<&str>, param: Option<&str>) {
    assert_eq!(r.status, status, "{}", r.text);
    let v = r.json();
    let e = &v["error"];
    assert!(e.is_object(), "not a Stripe error: {}", r.text);
    assert_eq!(e["type"], kind, "{}", r.text);
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", r.text);
    if let Some(c) = code {
        assert_eq!(e["code"], c, "{}", r.text);
    }
    if let Some(p) = param {
        assert_eq!(e["param"], p, "{}", r.text);
    }
}

/// Asserts an OAuth error: status and `{"error": code, "error_description": "…"}`.
pub fn assert_oauth_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    let v = r.json();
    assert_eq!(v["error"], code, "{}", r.text);
    assert!(v["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{}", r.text);
}

/// Query parameters of a redirect `Location`.
pub fn location_params(r: &Reply) -> (String, Vec<(String, String)>) {
    let loc = r.header("location").unwrap_or_else(|| panic!("no Location ({}): {}", r.status, r.text));
    let u = url::Url::parse(&loc).unwrap_or_else(|e| panic!("bad Location {loc}: {e}"));
    let params = u.query_pairs().into_owned().collect();
    let mut base = u.clone();
    base.set_query(None);
    (base.to_string(), params)
}

/// One parameter of a list of pairs.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}
