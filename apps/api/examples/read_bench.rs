//! Benchmark: Commerce API reads with 1,000,000 stored records on one connection. Run with
//!
//! ```sh
//! cargo run --release -p tributary-api --example read_bench -- [RECORDS] [DATABASE_URL] [SECONDS]
//! ```
//!
//! (defaults: 1,000,000 records, a temporary SQLite file, 15 s per load phase). A Postgres URL
//! names an administration database: the benchmark creates `tributary_read_bench` beside it
//! (dropping an old one) and, when `pgbench` is on the PATH, runs it against the same database.
//!
//! It stores `RECORDS` payments (Codat's shape, five currencies, amounts 0.01–10,000.00) on one
//! connection through the repository, starts `tributary-api` on a free port in this process (no
//! sync workers) and drives it with a load generator in the same process, all on the same cores:
//!
//! 1. deep paging: follows `_links.next` from page 1 to the last page, then times page 1 and the
//!    last page (its `next`-link URL, with the keyset cursor) 200 times each, one at a time, and the
//!    same last page by page number alone (offset) for contrast;
//! 2. list `pageSize=100`, no query, 32 concurrent connections, each request one of 1,000 `next`
//!    links spread over the whole list: throughput, p50, p99;
//! 3. the equivalent SQL without HTTP: what one such request asks the database (API key, company,
//!    connection and data-set state in one statement, the keyset page), by `pgbench` with 32
//!    clients on Postgres, and by 32 tasks over the store's own pool on SQLite;
//! 4. list with `query=currency=GBP && amount>5000` (about 10 % of the records), 32 concurrent,
//!    over 1,000 of its `next` links, after one timed cold request (which counts the matches).
//!
//! The load phases use a client in this process (reqwest, bodies read but not parsed), or `wrk`
//! (Debian package `wrk`) with `READ_BENCH_CLIENT=wrk`. `READ_BENCH_STEPS=1` also prints the time of each database step of a request.
//! `READ_BENCH_METRICS=off` serves without metrics (no recorder; on by default, as the server).
//! Figures go to docs/performance.md by hand.

use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tributary_api::crypto::AesGcmCipher;
use tributary_api::store::Store;
use tributary_domain::ids::PullOperationId;
use tributary_domain::model::company::CompanyFields;
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::pull::{DatasetStatus, PullOperation};
use tributary_domain::model::record::{StoredRecord, SyncWrite};
use tributary_domain::service::IntegrationUpdate;

/// mimalloc: list pages allocate and free many small strings from several threads at once, where
/// glibc's allocator spent a third of the server's CPU (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Payment `k` is created at `FIRST_CREATED + k × SPACING` seconds.
const FIRST_CREATED: i64 = 1_640_000_000;
const SPACING: u64 = 60;
const CURRENCIES: [&str; 5] = ["GBP", "USD", "EUR", "JPY", "KWD"];
const CONCURRENCY: usize = 32;

/// A deterministic pseudo-random sequence (xorshift), so every run stores the same data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn payment(i: u64, rng: &mut Rng) -> StoredRecord {
    let created = chrono::DateTime::from_timestamp(FIRST_CREATED + i64::try_from(i * SPACING).unwrap_or(0), 0).expect("valid time");
    let cents = rng.next() % 1_000_000 + 1;
    let currency = CURRENCIES[usize::try_from(rng.next() % 5).unwrap_or(0)];
    let id = format!("ch_{i:010}{:06x}", rng.next() % 0xff_ffff);
    let date = created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let document = serde_json::json!({
        "id": id,
        "amount": cents as f64 / 100.0,
        "currency": currency,
        "customerRef": {"id": format!("cus_{:08}", rng.next() % 90_000), "customerName": null},
        "paymentMethodRef": {"id": format!("card_{:08}", rng.next() % 100_000), "name": "card"},
        "status": if i.is_multiple_of(50) { "Failed" } else { "Paid" },
        "dueDate": date,
        "note": "Payment for Invoice 1234",
        "totalAmount": cents as f64 / 100.0,
        "createdDate": date,
        "sourceModifiedDate": date,
    });
    StoredRecord { id, created: Some(created), source_modified: Some(created), document, deleted: false }
}

struct Stats {
    requests: usize,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} requests, {:.0}/s, p50 {:.2} ms, p99 {:.2} ms", self.requests, self.rps, self.p50_ms, self.p99_ms)
    }
}

fn stats(mut latencies: Vec<Duration>, elapsed: Duration) -> Stats {
    latencies.sort();
    let at = |q: f64| latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1))).copied();
    let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    Stats { requests: latencies.len(), rps: latencies.len() as f64 / elapsed.as_secs_f64(), p50_ms: ms(at(0.5)), p99_ms: ms(at(0.99)) }
}

/// Runs `CONCURRENCY` workers for `seconds`, each calling `op` with a counter, and times each call.
async fn load<F, Fut>(seconds: u64, op: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut n = w * 7919;
            while Instant::now() < deadline {
                let t = Instant::now();
                op(n).await;
                lat.push(t.elapsed());
                n += 1;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("load task"));
    }
    stats(all, start.elapsed())
}

struct Api {
    client: reqwest::Client,
    base: String,
    auth: String,
}

impl Api {
    async fn get(&self, path: &str) -> serde_json::Value {
        let r = self.client.get(format!("{}{path}", self.base)).header("Authorization", &self.auth).send().await.expect("request");
        let status = r.status();
        let body: serde_json::Value = r.json().await.expect("JSON body");
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// Follows `next` from `first` to the end; returns up to `keep` links spread over the walk
    /// (page 1's own URL first), the page count and the time of each request.
    async fn walk(&self, first: &str, keep: usize, expected_pages: u64) -> (Vec<String>, u64, Vec<Duration>) {
        let every = (expected_pages / keep as u64).max(1);
        let mut links = vec![first.to_owned()];
        let mut url = first.to_owned();
        let mut times = Vec::new();
        let mut pages = 0;
        loop {
            let t = Instant::now();
            let page = self.get(&url).await;
            times.push(t.elapsed());
            pages += 1;
            let Some(next) = page["_links"]["next"]["href"].as_str() else { break };
            if pages % every == 0 && links.len() < keep {
                links.push(next.to_owned());
            }
            url = next.to_owned();
        }
        (links, pages, times)
    }

    /// A GET whose body is read but not parsed (the load phases: the client's own JSON parsing
    /// would compete with the server for the same cores).
    async fn fetch(&self, path: &str) {
        let r = self.client.get(format!("{}{path}", self.base)).header("Authorization", &self.auth).send().await.expect("request");
        let status = r.status();
        let body = r.bytes().await.expect("body");
        assert!(status.is_success() && body.starts_with(b"{\"results\":["), "{path}: {status}");
    }

    async fn median_of(&self, path: &str, n: usize) -> (f64, f64) {
        let mut times = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            self.fetch(path).await;
            times.push(t.elapsed());
        }
        let s = stats(times, Duration::from_secs(1));
        (s.p50_ms, s.p99_ms)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let records: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let given = args.get(2).cloned().filter(|u| !u.is_empty());
    let seconds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(15);
    let url = match &given {
        Some(admin) if admin.starts_with("postgres") => fresh_database(admin).await?,
        Some(url) => url.clone(),
        None => format!("sqlite://{}/bench.db", dir.path().display()),
    };
    let postgres = url.starts_with("postgres");
    println!("database: {}", if postgres { "postgres" } else { "sqlite" });

    // Seed: an integration, a company, a connection, a complete pull and the records.
    let store = Store::open(&url).await?;
    let platform =
        tributary_api::compose::platform(&store, std::sync::Arc::new(AesGcmCipher::new(&[7; 32], &[])), "http://127.0.0.1", true)?;
    let settings = IntegrationUpdate {
        client_id: Some("ca_bench".into()),
        secret_key: Some(SecretString::from("sk_test_bench")),
        ..Default::default()
    };
    platform.integrations().update("yzth", settings).await?;
    platform.integrations().set_enabled("yzth", true).await?;
    let company = platform.companies().create(CompanyFields::new("Bench", None, Default::default())?).await?.company.id;
    let connection = platform.connections().create(company, "yzth").await?.id;
    let repos = platform.repositories().clone();
    let pull = PullOperation {
        id: PullOperationId::new_random(),
        company_id: company,
        connection_id: connection,
        data_type: DataType::Payments,
        status: DatasetStatus::Complete,
        status_description: None,
        error_message: None,
        requested: chrono::Utc::now(),
        completed: Some(chrono::Utc::now()),
        progress: 100,
    };
    repos.pull_operations.insert(std::slice::from_ref(&pull)).await?;
    let started = Instant::now();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut i = 0;
    while i < records {
        let n = (records - i).min(1000);
        let page: Vec<StoredRecord> = (i..i + n).map(|k| payment(k, &mut rng)).collect();
        let w = SyncWrite { records: page, ..SyncWrite::default() };
        repos.records.write_sync(company, connection, DataType::Payments, &w, chrono::Utc::now()).await?;
        i += n;
    }
    println!("stored {records} payments in {:.1} s", started.elapsed().as_secs_f64());
    if postgres {
        // What autovacuum would do in time: statistics and the visibility map.
        let pool = sqlx::PgPool::connect(&url).await?;
        sqlx::query("VACUUM ANALYZE records").execute(&pool).await?;
        pool.close().await;
    }

    if std::env::var("READ_BENCH_STEPS").is_ok() {
        let r = platform.repositories();
        let hash = tributary_domain::service::hash_api_key("x");
        macro_rules! step {
            ($name:expr, $e:expr) => {{
                let t = Instant::now();
                for _ in 0..500 {
                    $e;
                }
                println!("{}: {:.1} us", $name, t.elapsed().as_secs_f64() * 1e6 / 500.0);
            }};
        }
        step!("key", r.api_keys.find_by_hash(&hash).await?);
        step!("read state", r.records.read_state(company, connection, DataType::Payments).await?);
        let q = tributary_domain::paging::ListQuery::default();
        step!("page", r.records.list_page(connection, DataType::Payments, &q).await?);
    }
    // The server, on a free port, without sync workers.
    let key = tributary_api::generate_api_key();
    platform.api_keys().create(Some("bench".into()), &key).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_store = Store::open(&url).await?;
    let mut opts = tributary_api::ServeOptions::local(&base, "http://127.0.0.1:9", 0);
    opts.metrics = std::env::var("READ_BENCH_METRICS").as_deref() != Ok("off");
    // Thousands of requests a second from one key: the per-key limit (6,000 a minute) is off here.
    opts.limits.per_key_per_minute = 0;
    println!("metrics: {}", if opts.metrics { "on" } else { "off" });
    let server = tokio::spawn(async move {
        tributary_api::serve_on(listener, &server_store, AesGcmCipher::new(&[7; 32], &[]), opts, async {
            let _ = stop_rx.await;
        })
        .await
    });
    use base64::Engine as _;
    let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(key.expose_secret()));
    let client = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build()?;
    let api = Arc::new(Api { client, base, auth });
    let list = format!("/companies/{company}/connections/{connection}/data/commerce-payments");
    let first = format!("{list}?page=1&pageSize=100");
    api.get(&first).await; // warms the count

    // 1. Deep paging.
    let expected_pages = records.div_ceil(100);
    let t = Instant::now();
    let (links, pages, times) = api.walk(&first, 1000, expected_pages).await;
    let walk = stats(times, t.elapsed());
    println!("walk: {pages} pages by next links in {:.1} s ({walk})", t.elapsed().as_secs_f64());
    let mut last_link = first.clone();
    {
        // The last page's own next-link URL: walk again from the last kept link.
        let mut url = links.last().cloned().unwrap_or_default();
        loop {
            let page = api.get(&url).await;
            match page["_links"]["next"]["href"].as_str() {
                Some(next) => url = next.to_owned(),
                None => break,
            }
        }
        if url != first {
            last_link = url;
        }
    }
    let (p1_50, p1_99) = api.median_of(&first, 200).await;
    let (pn_50, pn_99) = api.median_of(&last_link, 200).await;
    let (off_50, off_99) = api.median_of(&format!("{list}?page={pages}&pageSize=100"), 20).await;
    println!("page 1: p50 {p1_50:.2} ms p99 {p1_99:.2} ms");
    println!("page {pages} by cursor: p50 {pn_50:.2} ms p99 {pn_99:.2} ms ({:+.0} % of page 1 at p50)", (pn_50 / p1_50 - 1.0) * 100.0);
    println!("page {pages} by page number (offset): p50 {off_50:.2} ms p99 {off_99:.2} ms");

    // 2. Concurrent list load over the whole list.
    let links = Arc::new(links);
    let (plain, generator) = load_paths(&api, links.clone(), seconds).await?;
    println!("list pageSize=100, {CONCURRENCY} concurrent ({generator}): {plain}");

    // 3. The equivalent SQL without HTTP.
    if postgres {
        match pgbench(&url, &repos, connection, &key, company, seconds).await {
            Ok(tps) => {
                println!("pgbench, same SQL, {CONCURRENCY} clients: {tps:.0} transactions/s; API at {:.0} % of it", plain.rps / tps * 100.0)
            }
            Err(e) => println!("pgbench not run: {e}"),
        }
    } else {
        let platform = platform.clone();
        let hash = tributary_domain::service::hash_api_key(key.expose_secret());
        let seeks = Arc::new(seek_points(&repos, connection, 1000).await?);
        let direct = load(seconds, move |n| {
            let (platform, hash, seeks) = (platform.clone(), hash.clone(), seeks.clone());
            async move {
                let r = platform.repositories();
                r.api_keys.find_by_hash(&hash).await.expect("key");
                r.records.read_state(company, connection, DataType::Payments).await.expect("read state");
                let q = tributary_domain::paging::ListQuery { seek: seeks[n % seeks.len()].clone(), ..Default::default() };
                r.records.list_page(connection, DataType::Payments, &q).await.expect("page");
            }
        })
        .await;
        println!("same SQL on the store's pool, {CONCURRENCY} tasks: {direct}; API at {:.0} % of it", plain.rps / direct.rps * 100.0);
    }

    // 4. A query on amount and currency.
    let query = format!("{list}?page=1&pageSize=100&query=currency%3DGBP%20%26%26%20amount%3E5000");
    let t = Instant::now();
    let first_q = api.get(&query).await;
    println!("query: {} matches; first (cold count) request {:.1} ms", first_q["totalResults"], t.elapsed().as_secs_f64() * 1000.0);
    let (qlinks, _, _) = api.walk(&query, 1000, first_q["totalResults"].as_u64().unwrap_or(0).div_ceil(100)).await;
    let qlinks = Arc::new(qlinks);
    let (queried, generator) = load_paths(&api, qlinks, seconds).await?;
    println!("list with query on amount and currency, {CONCURRENCY} concurrent ({generator}): {queried}");

    let _ = stop_tx.send(());
    server.await??;
    store.close().await;
    Ok(())
}

/// Runs `wrk` (32 connections, 2 threads, latency distribution) for `seconds` over `paths`,
/// round robin; `None` when wrk is not installed.
async fn wrk(base: &str, auth: &str, paths: &[String], seconds: u64) -> anyhow::Result<Option<Stats>> {
    let dir = tempfile::tempdir()?;
    let list = dir.path().join("paths.txt");
    std::fs::write(&list, paths.join("\n") + "\n")?;
    let script = dir.path().join("paths.lua");
    std::fs::write(
        &script,
        format!(
            "local paths = {{}}\nfor line in io.lines(\"{}\") do paths[#paths + 1] = line end\n\
             local i = math.random(#paths)\n\
             request = function()\n  i = i % #paths + 1\n  return wrk.format(\"GET\", paths[i], {{[\"Authorization\"] = \"{auth}\"}})\nend\n\
             response = function(status, headers, body)\n  if status ~= 200 then io.stderr:write(\"status \" .. status .. \"\\n\") end\nend\n",
            list.display()
        ),
    )?;
    let out = match tokio::process::Command::new("wrk")
        .args(["-t2", &format!("-c{CONCURRENCY}"), &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(&script)
        .arg(base)
        .output()
        .await
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(!errors.contains("status "), "non-200 answers under load: {}", errors.lines().next().unwrap_or(""));
    let ms = |v: &str| -> f64 {
        let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = n.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => n / 1000.0,
            "s" => n * 1000.0,
            _ => n,
        }
    };
    let field = |prefix: &str| text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_owned()));
    let requests = text.lines().find(|l| l.contains("requests in")).and_then(|l| l.split_whitespace().next()).and_then(|n| n.parse().ok());
    Ok(Some(Stats {
        requests: requests.unwrap_or(0),
        rps: field("Requests/sec:").and_then(|v| v.parse().ok()).unwrap_or(f64::NAN),
        p50_ms: field("50%").map_or(f64::NAN, |v| ms(&v)),
        p99_ms: field("99%").map_or(f64::NAN, |v| ms(&v)),
    }))
}

/// The load phase over `paths`: this process's own client, or wrk when asked for and installed.
async fn load_paths(api: &Arc<Api>, paths: Arc<Vec<String>>, seconds: u64) -> anyhow::Result<(Stats, &'static str)> {
    if std::env::var("READ_BENCH_CLIENT").is_ok_and(|c| c == "wrk")
        && let Some(s) = wrk(&api.base, &api.auth, &paths, seconds).await?
    {
        return Ok((s, "wrk"));
    }
    let api = api.clone();
    let s = load(seconds, move |n| {
        let (api, paths) = (api.clone(), paths.clone());
        async move {
            api.fetch(&paths[n % paths.len()]).await;
        }
    })
    .await;
    Ok((s, "built-in client"))
}

/// Keyset positions spread over the payments (the last record of every n-th page of 100).
async fn seek_points(
    repos: &tributary_domain::ports::Repositories,
    connection: tributary_domain::ids::ConnectionId,
    keep: usize,
) -> anyhow::Result<Vec<Option<tributary_domain::paging::Seek>>> {
    let mut out = vec![None];
    let mut seek = None;
    let total = repos.records.count(connection, DataType::Payments, false).await?;
    let every = (total / 100 / keep as u64).max(1);
    let mut page = 0;
    loop {
        let q = tributary_domain::paging::ListQuery { seek: seek.clone(), ..Default::default() };
        let rows = repos.records.list_page(connection, DataType::Payments, &q).await?;
        let Some(last) = rows.last() else { break };
        seek = Some(tributary_domain::paging::Seek { created: last.created, id: last.id.clone() });
        page += 1;
        if page % every == 0 && out.len() < keep {
            out.push(seek.clone());
        }
        if rows.len() < 100 {
            break;
        }
    }
    Ok(out)
}

/// Creates (or re-creates) `tributary_read_bench` on the server `admin` names; its URL.
async fn fresh_database(admin: &str) -> anyhow::Result<String> {
    use sqlx::Connection as _;
    let mut c = sqlx::PgConnection::connect(admin).await?;
    sqlx::query("DROP DATABASE IF EXISTS tributary_read_bench WITH (FORCE)").execute(&mut c).await?;
    sqlx::query("CREATE DATABASE tributary_read_bench").execute(&mut c).await?;
    c.close().await?;
    let mut url = url::Url::parse(admin)?;
    url.set_path("/tributary_read_bench");
    Ok(url.to_string())
}

/// Runs `pgbench` with the statements one list request runs (API key, company, connection,
/// the read state, a keyset page of 100 at a random position), 32 clients; transactions/s.
async fn pgbench(
    url: &str,
    repos: &tributary_domain::ports::Repositories,
    connection: tributary_domain::ids::ConnectionId,
    key: &SecretString,
    company: tributary_domain::ids::CompanyId,
    seconds: u64,
) -> anyhow::Result<f64> {
    // A random keyset position from the first record to the 100th from last, so that every page
    // holds 100 records, as the API's pages do (a range reaching past the last record would make
    // many pages short or empty and flatter pgbench).
    let first = FIRST_CREATED;
    let records = repos.records.count(connection, DataType::Payments, false).await?;
    let span = i64::try_from(records.saturating_sub(101) * SPACING).unwrap_or(0);
    let hash = tributary_domain::service::hash_api_key(key.expose_secret());
    let script = format!(
        "\\set t random({first}, {})\n\
         SELECT * FROM api_keys WHERE hash = '{hash}';\n\
         SELECT c.*, EXISTS (SELECT 1 FROM companies WHERE id = '{company}') AS x_company, \
         EXISTS (SELECT 1 FROM pull_operations WHERE connection_id = '{connection}' AND data_type = 'commerce-payments') AS x_requested, \
         EXISTS (SELECT 1 FROM pull_operations WHERE connection_id = '{connection}' AND data_type = 'commerce-payments' AND status = 'Complete') AS x_completed, \
         COALESCE((SELECT version FROM record_versions WHERE connection_id = '{connection}' AND data_type = 'commerce-payments'), 0) AS x_version \
         FROM (SELECT 1 AS one) AS one LEFT JOIN connections c ON c.id = '{connection}' AND c.company_id = '{company}';\n\
         SELECT record_id, document, created, source_modified, modified, deleted FROM records \
         WHERE connection_id = '{connection}' AND data_type = 'commerce-payments' AND NOT deleted \
         AND (created, record_id COLLATE \"C\") > (to_timestamp(:t), '') \
         ORDER BY created ASC NULLS FIRST, record_id COLLATE \"C\" ASC LIMIT 100;\n",
        first + span
    );
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), script)?;
    let out = tokio::process::Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-c", &CONCURRENCY.to_string(), "-j", "2", "-T", &seconds.to_string(), "-f"])
        .arg(file.path())
        .arg(url)
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{}", text.lines().filter(|l| l.contains("latency") || l.contains("tps")).collect::<Vec<_>>().join("\n"));
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench output: {text}{}", String::from_utf8_lossy(&out.stderr)))
}
