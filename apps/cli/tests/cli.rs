//! The `tributary` CLI as an operator and a script use it.

use std::process::{Command, Output};

const KEY_A: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="; // 32 × 'A'
const KEY_B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="; // 32 × 'B'

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn run(&self, master: Option<&str>, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tributary"));
        for (k, _) in std::env::vars() {
            if k.starts_with("TRIBUTARY_") {
                c.env_remove(k);
            }
        }
        c.current_dir(self.dir.path()).args(args);
        if let Some(m) = master {
            c.env("TRIBUTARY_MASTER_KEY", m);
        }
        c.output().unwrap()
    }

    fn ok(&self, master: Option<&str>, args: &[&str]) -> String {
        let out = self.run(master, args);
        assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, master: Option<&str>, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(master, &a)).unwrap()
    }

    /// Every byte the database holds on disk (main file and write-ahead log).
    fn dump(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let p = entry.unwrap().path();
            if p.file_name().unwrap().to_string_lossy().starts_with("tributary.db") {
                all.extend(std::fs::read(p).unwrap());
            }
        }
        all
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn api_keys_create_json_prints_id_and_key_once_and_list_never_shows_it() {
    let e = Env::new();
    let created = e.json(None, &["api-keys", "create", "--name", "ci"]);
    let key = created["key"].as_str().unwrap();
    assert_eq!(key.len(), 40);
    assert!(created["id"].as_str().unwrap().parse::<uuid::Uuid>().is_ok());
    let listed = e.ok(None, &["--json", "api-keys", "list"]);
    assert!(!listed.contains(key), "the key is shown only at creation");
    assert!(listed.contains("ci"));
    assert!(!contains(&e.dump(), key), "only the hash is stored");
    let id = created["id"].as_str().unwrap();
    let out = e.run(None, &["api-keys", "revoke", id]);
    assert!(!out.status.success(), "the last key needs --force");
    e.ok(None, &["api-keys", "revoke", id, "--force"]);
}

#[test]
fn integration_secrets_are_never_in_the_database_in_clear() {
    let e = Env::new();
    e.ok(
        Some(KEY_A),
        &[
            "integrations",
            "set",
            "yzth",
            "--client-id",
            "ca_test_1",
            "--secret-key",
            "sk_test_NOTINCLEAR",
            "--webhook-secret",
            "whsec_NOTINCLEAR",
        ],
    );
    e.ok(Some(KEY_A), &["integrations", "enable", "yzth"]);
    let dump = e.dump();
    assert!(!dump.is_empty());
    assert!(!contains(&dump, "sk_test_"), "a dump holds no secret key in clear");
    assert!(!contains(&dump, "whsec_NOTINCLEAR"));
    let list = e.json(None, &["integrations", "list"]);
    let yzth = list.as_array().unwrap().iter().find(|i| i["key"] == "yzth").unwrap();
    assert_eq!(
        (&yzth["enabled"], &yzth["secretKeySet"], &yzth["clientId"]),
        (&serde_json::json!(true), &serde_json::json!(true), &serde_json::json!("ca_test_1"))
    );
    assert!(!serde_json::to_string(&list).unwrap().contains("NOTINCLEAR"));
}

#[test]
fn setting_a_secret_without_a_master_key_fails_clearly() {
    let e = Env::new();
    let out = e.run(None, &["integrations", "set", "yzth", "--secret-key", "sk_test_x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("master_key is not set"), "{err}");
    assert_eq!(err.trim().lines().count(), 1);
}

#[test]
fn companies_and_connections_round_trip_through_the_cli() {
    let e = Env::new();
    e.ok(Some(KEY_A), &["integrations", "set", "yzth", "--client-id", "ca_1", "--secret-key", "sk_test_1"]);
    e.ok(None, &["integrations", "enable", "yzth"]);
    let c = e.json(None, &["companies", "create", "Acme (UK)", "--tag", "region=uk", "--description", "ref"]);
    assert_eq!(c["name"], "Acme UK");
    let cid = c["id"].as_str().unwrap();
    let conn = e.json(None, &["connections", "create", cid, "yzth"]);
    assert_eq!(conn["status"], "PendingAuth");
    let link = conn["linkUrl"].as_str().unwrap();
    assert!(link.ends_with("/start"));
    let human = e.ok(None, &["connections", "create", cid, "yzth"]);
    assert!(human.contains("/start"), "create prints the linkUrl: {human}");
    let conn_id = conn["id"].as_str().unwrap();
    let show = e.ok(None, &["connections", "show", conn_id]);
    assert!(show.contains("PendingAuth") && show.contains("Stripe Test"), "{show}");
    let list = e.json(None, &["companies", "list", "--query", "name~acme"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let out = e.run(Some(KEY_A), &["connections", "unlink", conn_id]);
    assert!(!out.status.success(), "a pending connection cannot be unlinked");
    e.ok(Some(KEY_A), &["connections", "delete", conn_id]);
    assert_eq!(e.json(None, &["connections", "list", cid]).as_array().unwrap().len(), 1);
    e.ok(None, &["companies", "delete", cid]);
    let out = e.run(None, &["companies", "show", cid]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: ") && err.trim().lines().count() == 1, "{err}");
}

#[tokio::test]
async fn keys_rotate_re_encrypts_every_secret_under_the_new_key() {
    let e = Env::new();
    e.ok(
        Some(KEY_A),
        &["integrations", "set", "yzth", "--client-id", "ca_1", "--secret-key", "sk_test_rotate", "--webhook-secret", "whsec_rotate"],
    );
    e.ok(Some(KEY_A), &["integrations", "set", "exgd", "--client-id", "ca_2", "--secret-key", "sk_live_rotate"]);
    let out = e.json(Some(KEY_A), &["keys", "rotate", "--new-key", KEY_B]);
    assert_eq!(out["reencrypted"], 3);

    let url = format!("sqlite://{}/tributary.db", e.dir.path().display());
    let store = tributary_api::store::Store::open(&url).await.unwrap();
    let under = |key: &str| {
        let cipher = tributary_api::crypto::AesGcmCipher::new(&tributary_api::config::decode_master_key(key).unwrap(), &[]);
        tributary_api::compose::platform(&store, std::sync::Arc::new(cipher), "http://127.0.0.1", true).unwrap()
    };
    let under_b = under(KEY_B);
    use secrecy::ExposeSecret;
    assert_eq!(under_b.integrations().credentials("yzth").await.unwrap().secret_key.expose_secret(), "sk_test_rotate");
    assert_eq!(under_b.integrations().credentials("exgd").await.unwrap().secret_key.expose_secret(), "sk_live_rotate");
    let under_a = under(KEY_A);
    assert!(under_a.integrations().credentials("yzth").await.is_err(), "the old key no longer opens anything");
    store.close().await;

    // The two-step flow: configure the new key with the old one as previous, then rotate.
    let out = e.run(Some(KEY_A), &["keys", "rotate"]);
    assert!(!out.status.success(), "secrets under an unconfigured key cannot be rotated");
    let mut c = Command::new(env!("CARGO_BIN_EXE_tributary"));
    let status = c
        .current_dir(e.dir.path())
        .env("TRIBUTARY_MASTER_KEY", KEY_A)
        .env("TRIBUTARY_PREVIOUS_MASTER_KEYS", KEY_B)
        .args(["keys", "rotate"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert!(String::from_utf8_lossy(&status.stdout).contains("re-encrypted 3"));
}

#[test]
fn migrate_creates_the_database_and_errors_are_one_line_with_non_zero_exit() {
    let e = Env::new();
    e.ok(None, &["migrate"]);
    assert!(e.dir.path().join("tributary.db").exists());
    let out = e.run(None, &["companies", "show", "not-a-uuid"]);
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim().lines().count(), 1);
    let out = e.run(None, &["keys", "generate"]);
    let key = String::from_utf8(out.stdout).unwrap();
    assert!(tributary_api::config::decode_master_key(key.trim()).is_ok());
}

#[tokio::test]
async fn on_postgres_a_pg_dump_holds_no_secret_in_clear() {
    let Some((store, db)) = tributary_tests::pg::fresh_postgres("cli::on_postgres_a_pg_dump_holds_no_secret_in_clear").await else {
        return;
    };
    store.close().await;
    let e = Env::new();
    let mut c = Command::new(env!("CARGO_BIN_EXE_tributary"));
    let out = c
        .current_dir(e.dir.path())
        .env("TRIBUTARY_MASTER_KEY", KEY_A)
        .env("TRIBUTARY_DATABASE_URL", db.url())
        .args([
            "integrations",
            "set",
            "yzth",
            "--client-id",
            "ca_pg",
            "--secret-key",
            "sk_test_PGSECRET",
            "--webhook-secret",
            "whsec_PGSECRET",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .current_dir(e.dir.path())
        .env("TRIBUTARY_DATABASE_URL", db.url())
        .args(["--json", "api-keys", "create"])
        .output()
        .unwrap();
    let key: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let dump = Command::new("pg_dump").arg(db.url()).output().expect("pg_dump is installed with PostgreSQL");
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    assert!(contains(&dump.stdout, "ca_pg"), "the dump has the settings row");
    assert!(!contains(&dump.stdout, "sk_test_"), "no secret key in clear");
    assert!(!contains(&dump.stdout, "PGSECRET"));
    assert!(!contains(&dump.stdout, key["key"].as_str().unwrap()), "API keys are stored hashed");
    db.cleanup().await;
}

#[tokio::test]
async fn data_exports_synced_records_as_json_csv_and_a_table_with_query_and_order() {
    use tributary_domain::model::data_type::DataType;
    use tributary_domain::model::pull::{DatasetStatus, PullOperation};
    use tributary_domain::model::record::{Checkpoint, StoredRecord, SyncWrite};
    let e = Env::new();
    e.ok(Some(KEY_A), &["integrations", "set", "yzth", "--client-id", "ca_1", "--secret-key", "sk_test_1"]);
    e.ok(None, &["integrations", "enable", "yzth"]);
    let company = e.json(None, &["companies", "create", "Export Co"]);
    let cid = company["id"].as_str().unwrap().to_owned();
    let conn = e.json(None, &["connections", "create", &cid, "yzth"]);
    let conn_id: tributary_domain::ids::ConnectionId = conn["id"].as_str().unwrap().parse().unwrap();

    // Records as a sync would have written them.
    let url = format!("sqlite://{}/tributary.db", e.dir.path().display());
    let store = tributary_api::store::Store::open(&url).await.unwrap();
    let repos = store.repositories();
    let company_id: tributary_domain::ids::CompanyId = cid.parse().unwrap();
    let now = chrono::Utc::now();
    let op = PullOperation {
        id: tributary_domain::ids::PullOperationId::new_random(),
        company_id,
        connection_id: conn_id,
        data_type: DataType::Payments,
        status: DatasetStatus::Complete,
        status_description: None,
        error_message: None,
        requested: now,
        completed: Some(now),
        progress: 100,
    };
    repos.pull_operations.insert(std::slice::from_ref(&op)).await.unwrap();
    let record = |id: &str, amount: &str, currency: &str| StoredRecord {
        id: id.into(),
        created: Some(now),
        source_modified: None,
        document: serde_json::from_str(&format!(
            r#"{{"id":"{id}","amount":{amount},"currency":"{currency}","status":"Paid","paymentProvider":"Stripe, Inc."}}"#
        ))
        .unwrap(),
        deleted: false,
    };
    let records = vec![record("ch_1", "10.5", "USD"), record("ch_2", "-3", "USD"), record("ch_3", "1.234", "KWD")];
    let cp = Checkpoint { pull_id: op.id, backfilling: false, incremental: None };
    let w = SyncWrite { records, checkpoint: Some(cp), ..SyncWrite::default() };
    repos.records.write_sync(company_id, conn_id, DataType::Payments, &w, now).await.unwrap();
    store.close().await;

    let conn_s = conn_id.to_string();
    let json: serde_json::Value =
        serde_json::from_str(&e.ok(None, &["data", &cid, &conn_s, "commerce-payments", "--format", "json", "--order-by", "-amount"]))
            .unwrap();
    let ids: Vec<&str> = json.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["ch_1", "ch_3", "ch_2"]);
    let csv = e.ok(None, &["data", &cid, &conn_s, "commerce-payments", "--format", "csv", "--query", "currency=USD"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].contains("amount") && lines[0].contains("paymentProvider"));
    assert!(csv.contains("\"Stripe, Inc.\""), "fields with commas are quoted: {csv}");
    let table = e.ok(None, &["data", &cid, &conn_s, "commerce-payments"]);
    assert!(table.contains("ch_3") && table.contains("3 records"), "{table}");
    let out = e.run(None, &["data", &cid, &conn_s, "commerce-orders"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not supported"));
}

#[test]
fn webhook_consumers_are_managed_from_the_cli_with_the_secret_sealed_at_rest() {
    let env = Env::new();
    let created = env.json(
        Some(KEY_A),
        &[
            "webhooks",
            "create",
            "https://hooks.example.com/hook",
            "--event-type",
            "company.created,read.completed",
            "--company-tag",
            "region:uk",
        ],
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["signingSecret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    assert_eq!(created["eventTypes"], serde_json::json!(["company.created", "read.completed"]));
    assert_eq!(env.json(Some(KEY_A), &["webhooks", "secret", &id])["signingSecret"], secret.as_str());
    assert!(!contains(&env.dump(), &secret), "the signing secret is encrypted at rest");
    assert!(!contains(&env.dump(), secret.trim_start_matches("whsec_")), "the signing secret is encrypted at rest");

    let list = env.json(None, &["webhooks", "list"]);
    assert_eq!(list[0]["id"], id.as_str());
    assert!(list[0].get("signingSecret").is_none());
    let table = env.ok(None, &["webhooks", "list"]);
    assert!(table.contains("https://hooks.example.com/hook") && table.contains("region:uk"), "{table}");

    // Creating a company (from the CLI) queues a delivery for the consumer.
    env.ok(None, &["companies", "create", "Hooked"]);
    let attempts = env.json(None, &["webhooks", "attempts", &id]);
    assert_eq!(attempts["pending"], 0, "nothing is fanned out without a server: {attempts}");
    assert_eq!(attempts["attempts"], serde_json::json!([]));

    let disabled = env.json(None, &["webhooks", "disable", &id]);
    assert_eq!(disabled["disabled"], true);
    assert_eq!(env.json(None, &["webhooks", "enable", &id])["disabled"], false);

    let out = env.run(Some(KEY_A), &["webhooks", "create", "ftp://x/", "--event-type", "company.created"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("http or https"));
    // Loopback targets are refused unless webhooks.allow_private_targets says otherwise.
    let out = env.run(Some(KEY_A), &["webhooks", "create", "http://127.0.0.1:9/hook", "--event-type", "company.created"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("non-public address 127.0.0.1"), "{}", String::from_utf8_lossy(&out.stderr));
    env.ok(None, &["webhooks", "delete", &id]);
    assert_eq!(env.json(None, &["webhooks", "list"]), serde_json::json!([]));
    let out = env.run(None, &["webhooks", "delete", &id]);
    assert!(!out.status.success());
}

/// One HTTP/1.1 exchange on a fresh connection: the status line and headers, and the body.
fn http(base: &str, request: &str) -> (String, String) {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.write_all(request.replace("{host}", host).as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (head.to_owned(), body.to_owned())
}

#[test]
fn the_demo_links_and_syncs_a_merchant_and_its_key_signs_in_to_the_console() {
    use std::io::BufRead;
    let env = Env::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .current_dir(env.dir.path())
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while !out.iter().any(|l: &String| l.contains("Press Ctrl-C")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => out.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("the demo did not finish:\n{}", out.join("\n"));
            }
        }
    }
    let text = out.join("\n");
    let key = text.lines().find_map(|l| l.strip_prefix("API key (shown once): ")).expect("the key").trim().to_owned();
    let console = text.lines().find_map(|l| l.trim().strip_prefix("Operator console: ")).expect("the console URL");
    let base = console.split("/console").next().unwrap().to_owned();
    let form = format!("apiKey={key}&next=%2Fconsole%2Fcompanies");
    let (head, _) = http(
        &base,
        &format!(
            "POST /console/sign-in HTTP/1.1\r\nHost: {{host}}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len()
        ),
    );
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    let cookie = head.lines().find_map(|l| l.strip_prefix("set-cookie: ")).expect("a session cookie").split(';').next().unwrap().to_owned();
    let (head, body) =
        http(&base, &format!("GET /console/companies HTTP/1.1\r\nHost: {{host}}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("Demo Shop") && body.contains("Linked"), "the demo's company, linked, is on the console");
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    assert!(status.success(), "Ctrl-C stops the demo cleanly: {status}");
}
