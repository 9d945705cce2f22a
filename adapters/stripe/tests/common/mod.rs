//! Shared helpers for the adapter's tests: an in-process Stripe sandbox, platform credentials,
//! OAuth approval through the sandbox's control API, and a scripted HTTP server that counts
//! requests.

#![allow(dead_code, reason = "every test file uses a different subset of these helpers")]

use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stripe_sandbox::{Config, Running};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tributary_domain::model::integration::{Mode, Scope};
use tributary_domain::ports::oauth::PlatformCredentials;
use tributary_stripe::StripeConnectOAuth;

/// The sandbox's default test-mode platform secret key.
pub const TEST_KEY: &str = "sk_test_sandbox_platform";
/// The sandbox's default live-mode platform secret key.
pub const LIVE_KEY: &str = "sk_live_sandbox_platform";
/// The sandbox's default test-mode client id.
pub const TEST_CLIENT: &str = "ca_sandbox_test";
/// The sandbox's default live-mode client id.
pub const LIVE_CLIENT: &str = "ca_sandbox_live";
/// A loopback redirect URI (always accepted by the sandbox in test mode).
pub const REDIRECT: &str = "http://127.0.0.1:8080/oauth/callback";

/// Starts a sandbox on a free port.
pub async fn sandbox() -> Running {
    stripe_sandbox::start(Config { listen: "127.0.0.1:0".into(), ..Default::default() }).await.expect("sandbox starts")
}

/// Platform credentials.
pub fn creds(mode: Mode, client_id: &str, key: &str, scope: Scope) -> PlatformCredentials {
    PlatformCredentials { mode, client_id: client_id.into(), secret_key: SecretString::from(key.to_owned()), scope }
}

/// The sandbox's test-mode credentials, read_only.
pub fn test_creds() -> PlatformCredentials {
    creds(Mode::Test, TEST_CLIENT, TEST_KEY, Scope::ReadOnly)
}

/// The sandbox's live-mode credentials, read_only.
pub fn live_creds() -> PlatformCredentials {
    creds(Mode::Live, LIVE_CLIENT, LIVE_KEY, Scope::ReadOnly)
}

/// A provider for `base` with fast retries (so fault tests stay quick).
pub fn provider(base: &str) -> StripeConnectOAuth {
    StripeConnectOAuth::new(base).expect("valid base").with_retries(2, Duration::from_millis(20))
}

/// Clicks Authorize through `POST /_sandbox/oauth/approve` and returns the code from the redirect.
pub async fn approve(sandbox: &Running, client_id: &str, scope: &str, account: Option<&str>) -> String {
    let mut body = json!({"client_id": client_id, "redirect_uri": REDIRECT, "scope": scope, "state": "st-1"});
    if let Some(a) = account {
        body["account"] = json!(a);
    }
    let r = reqwest::Client::new().post(format!("{}/_sandbox/oauth/approve", sandbox.url())).json(&body).send().await.expect("approve");
    assert!(r.status().is_success(), "approve answered {}", r.status());
    let v: Value = r.json().await.expect("approve JSON");
    let redirect = url::Url::parse(v["redirect"].as_str().expect("redirect")).expect("redirect URL");
    assert_eq!(redirect.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned()).as_deref(), Some("st-1"));
    redirect.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).expect("code in redirect")
}

/// Creates a sandbox account through the control API.
pub async fn create_account(sandbox: &Running, mode: &str, connected: bool) -> String {
    let body = json!({"mode": mode, "connected": connected, "profile": {"customers": 1, "charges": 1}});
    let r = reqwest::Client::new().post(format!("{}/_sandbox/accounts", sandbox.url())).json(&body).send().await.expect("create account");
    let v: Value = r.json().await.expect("JSON");
    v["id"].as_str().expect("id").to_owned()
}

/// Whether the sandbox lists `account` as connected.
pub async fn is_connected(sandbox: &Running, account: &str) -> bool {
    let v: Value = reqwest::get(format!("{}/_sandbox/accounts", sandbox.url())).await.expect("list").json().await.expect("JSON");
    v["data"].as_array().expect("data").iter().find(|a| a["id"] == account).map(|a| a["connected"] == true).expect("account listed")
}

/// One canned HTTP answer.
#[derive(Debug, Clone)]
pub struct Canned {
    /// Status line code.
    pub status: u16,
    /// Extra header lines (`Name: value`).
    pub headers: Vec<String>,
    /// Body.
    pub body: String,
}

impl Canned {
    /// A JSON answer.
    pub fn json(status: u16, body: Value) -> Self {
        Self { status, headers: Vec::new(), body: body.to_string() }
    }
}

/// A request the scripted server received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Request line and headers.
    pub head: String,
    /// Body.
    pub body: String,
}

/// A tiny HTTP/1.1 server answering from a script (the last answer repeats) and recording requests.
pub struct Scripted {
    /// Base URL.
    pub url: String,
    /// Requests received so far.
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Scripted {
    /// Starts the server.
    pub async fn start(script: Vec<Canned>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut n = 0usize;
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let answer = script[n.min(script.len() - 1)].clone();
                n += 1;
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head, body_start) = loop {
                        let Ok(read) = sock.read(&mut chunk).await else { return };
                        if read == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..read]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break (String::from_utf8_lossy(&buf[..i]).into_owned(), i + 4);
                        }
                    };
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    while buf.len() < body_start + len {
                        let Ok(read) = sock.read(&mut chunk).await else { return };
                        if read == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..read]);
                    }
                    let body = String::from_utf8_lossy(&buf[body_start..]).into_owned();
                    log.lock().expect("log").push(Seen { head, body });
                    let mut extra = String::new();
                    for h in &answer.headers {
                        extra.push_str(h);
                        extra.push_str("\r\n");
                    }
                    let response = format!(
                        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{}",
                        answer.status,
                        answer.body.len(),
                        answer.body
                    );
                    let _ = sock.write_all(response.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Self { url, seen }
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.seen.lock().expect("log").len()
    }
}

/// Items staged by a backfill's pages, kept in memory (what the engine keeps in storage).
#[derive(Default)]
pub struct MemStaged(Mutex<Vec<tributary_domain::model::record::StagedItem>>);

#[async_trait::async_trait]
impl tributary_domain::ports::source::StagedLookup for MemStaged {
    async fn staged(&self, keys: Vec<String>) -> Result<Vec<tributary_domain::model::record::StagedItem>, SourceError> {
        Ok(self.0.lock().expect("staged").iter().filter(|i| keys.contains(&i.key)).cloned().collect())
    }
}

/// A lookup with nothing staged.
pub fn no_staged() -> Arc<dyn tributary_domain::ports::source::StagedLookup> {
    Arc::new(MemStaged::default())
}

/// The cursor of a whole list whose account's creation is known (so its first page reads nothing
/// else).
pub fn start_cursor(list: &str) -> String {
    format!(r#"{{"v":2,"list":"{list}","floor":0}}"#)
}

use tributary_domain::model::data_type::DataType;
use tributary_domain::ports::source::{CommerceDataSource, RecordPage, SourceError};

/// A backfill as the engine runs it: the plan's partitions stage by stage, up to `parallel` pages
/// at once, a partition split whenever there is room (never with `parallel == 1`), staged items
/// kept in memory. Returns every page in the order the pages came back, and how many partitions
/// were walked.
pub async fn backfill(
    src: &tributary_stripe::StripeDataSource,
    creds: &PlatformCredentials,
    account: &str,
    dt: DataType,
    parallel: usize,
) -> Result<(Vec<RecordPage>, usize), SourceError> {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let staged = Arc::new(MemStaged::default());
    let plan = src.plan_backfill(creds, account, dt).await?;
    let mut stages: Vec<u16> = plan.iter().map(|p| p.stage).collect();
    stages.sort_unstable();
    stages.dedup();
    let mut pages = Vec::new();
    let mut partitions = 0;
    for stage in stages {
        let mut ready: Vec<String> = plan.iter().filter(|p| p.stage == stage).map(|p| p.cursor.clone()).collect();
        partitions += ready.len();
        let mut running = FuturesUnordered::new();
        loop {
            while running.len() < parallel {
                let Some(cursor) = ready.pop() else { break };
                let lookup: Arc<dyn tributary_domain::ports::source::StagedLookup> = staged.clone();
                running.push(src.list_page(creds, account, dt, cursor, lookup));
            }
            let Some(page) = running.next().await else { break };
            let page = page?;
            staged.0.lock().expect("staged").extend(page.staged.iter().cloned());
            if let Some(next) = &page.next_cursor {
                let room = parallel.saturating_sub(running.len() + ready.len() + 1);
                let parts = if room > 0 { src.split(creds, account, dt, next, room + 1) } else { Vec::new() };
                if parts.is_empty() {
                    ready.push(next.clone());
                } else {
                    assert!(parts.iter().all(|p| p.stage == stage), "a split stays in its stage");
                    partitions += parts.len() - 1;
                    ready.extend(parts.into_iter().map(|p| p.cursor));
                }
            }
            pages.push(page);
            assert!(pages.len() < 10_000, "the backfill of {dt} does not end");
        }
    }
    Ok((pages, partitions))
}
