//! `tributary demo`: the README's first command. It starts the stripe-sandbox and tributary-api on
//! a SQLite file, configures Stripe Test with the sandbox platform, creates an API key, a company
//! and a connection, completes the Link flow against the sandbox, syncs with progress bars, prints
//! record counts and sample records, then keeps serving and prints what to try. Ctrl-C stops all.

use anyhow::{Context, anyhow};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tributary_api::ServeOptions;
use tributary_api::config::decode_master_key;
use tributary_api::crypto::AesGcmCipher;
use tributary_api::store::Store;
use tributary_domain::model::company::CompanyFields;
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::pull::DatasetStatus;
use tributary_domain::service::IntegrationUpdate;

fn key_file(database: &Path) -> PathBuf {
    database.with_extension("key")
}

fn master_key(database: &Path) -> anyhow::Result<[u8; 32]> {
    let key_path = key_file(database);
    let key = if key_path.exists() {
        std::fs::read_to_string(&key_path).with_context(|| format!("cannot read {}", key_path.display()))?.trim().to_owned()
    } else {
        let k = AesGcmCipher::generate_key();
        write_private(&key_path, &k)?;
        println!(
            "Generated a master key for the demo and saved it to {} (outside the demo the server refuses to start without one).",
            key_path.display()
        );
        k
    };
    decode_master_key(&key).with_context(|| format!("{} does not hold a valid master key", key_path.display()))
}

/// Runs the demo until Ctrl-C.
pub async fn run(listen: &str, database: &Path) -> anyhow::Result<()> {
    tributary_api::init_logging("warn", "text");
    let bytes = master_key(database)?;

    // Stripe stands in as the sandbox, with one merchant account waiting to be linked.
    let sandbox = stripe_sandbox::start(stripe_sandbox::Config { listen: "127.0.0.1:0".into(), ..Default::default() })
        .await
        .context("cannot start the stripe-sandbox")?;
    let cfg = stripe_sandbox::Config::default();
    let profile = stripe_sandbox::Profile { customers: 40, charges: 200, refunds: 20, disputes: 10, products: 8, prices: 20, payouts: 10 };
    let sb = sandbox.sandbox.clone();
    let merchant = tokio::task::spawn_blocking(move || sb.create_account(stripe_sandbox::Mode::Test, Some(2026), false, &profile)).await?;
    println!("stripe-sandbox running at {} with merchant account {merchant}", sandbox.url());

    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let base = format!("http://{}", listener.local_addr()?);
    let url = format!("sqlite://{}", database.display());
    let store = Store::open(&url).await?;
    let platform = tributary_api::compose::platform(&store, std::sync::Arc::new(AesGcmCipher::new(&bytes, &[])), &base, true)?;
    platform
        .integrations()
        .update(
            "yzth",
            IntegrationUpdate {
                client_id: Some(cfg.test_client_id.clone()),
                secret_key: Some(SecretString::from(cfg.test_secret_key.clone())),
                webhook_secret: Some(SecretString::from(cfg.webhook_secret.clone())),
                scope: None,
            },
        )
        .await?;
    platform.integrations().set_enabled("yzth", true).await?;
    let api_key = tributary_api::generate_api_key();
    platform
        .api_keys()
        .create(Some(format!("demo {}", chrono::Utc::now().format("%Y-%m-%d %H:%M:%S"))), &api_key)
        .await
        .context("cannot create the demo API key (at most 10 keys: delete the demo database to start afresh)")?;

    let opts = ServeOptions::local(&base, &sandbox.url(), 2);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_store = Store::open(&url).await?;
    let server_opts = opts.clone();
    let server = tokio::spawn(async move {
        tributary_api::serve_on(listener, &server_store, AesGcmCipher::new(&bytes, &[]), server_opts, async {
            let _ = stop_rx.await;
        })
        .await
    });
    println!("tributary-api running at {base} on {url}");

    // A company and its connection, linked through the sandbox's Connect OAuth as a merchant would.
    let company = platform
        .companies()
        .create(CompanyFields::new("Demo Shop", Some("created by tributary demo".into()), Default::default())?)
        .await?
        .company;
    let connection = platform.connections().create(company.id, "yzth").await?;
    let link_url = format!("{base}/link/{}/connections/{}/start", company.id, connection.id);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let authorize = http.get(&link_url).send().await?;
    let location =
        authorize.headers().get("location").and_then(|l| l.to_str().ok()).ok_or_else(|| anyhow!("the link did not redirect to Stripe"))?;
    let q: HashMap<String, String> = url::Url::parse(location)?.query_pairs().into_owned().collect();
    let approved: serde_json::Value = http
        .post(format!("{}/_sandbox/oauth/approve", sandbox.url()))
        .json(&serde_json::json!({"client_id": q.get("client_id"), "redirect_uri": q.get("redirect_uri"), "scope": q.get("scope"), "state": q.get("state"), "account": merchant}))
        .send()
        .await?
        .json()
        .await?;
    let callback = approved["redirect"].as_str().ok_or_else(|| anyhow!("the sandbox did not approve: {approved}"))?;
    http.get(callback).send().await?;
    let linked = platform.connections().get(company.id, connection.id).await?;
    println!(
        "Linked connection {} to Stripe account {} ({})\n",
        linked.id,
        linked.source_account.clone().unwrap_or_default(),
        linked.status
    );

    // Sync with progress bars.
    let history = platform.pulls().list(company.id, &Default::default()).await?;
    // The server's workers may already have started some pulls: watch every pull of this connection.
    let ops: Vec<_> =
        history.items.into_iter().filter(|o| o.connection_id == connection.id && o.status != DatasetStatus::NotSupported).collect();
    let finished = crate::sync::watch(&platform, &opts, company.id, &ops, false).await?;
    println!();
    crate::sync::summarize(&platform, &finished, false).await?;

    for dt in [DataType::Customers, DataType::Payments, DataType::Transactions] {
        let first = tributary_domain::paging::ListQuery {
            page: tributary_domain::paging::PageRequest { page: 1, page_size: 1 },
            ..Default::default()
        };
        if let Some(text) =
            platform.records().list(company.id, connection.id, dt, &first).await.ok().and_then(|p| p.page.items.into_iter().next())
        {
            let record: serde_json::Value = serde_json::from_str(&text)?;
            println!("\nSample {dt}:\n{}", serde_json::to_string_pretty(&record)?);
        }
    }

    let auth = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(api_key.expose_secret())
    };
    let c = company.id;
    println!(
        "\nTributary keeps serving at {base}.\nAPI key (shown once): {key}\n\nTry:\n  \
         curl -s {base}/companies/{c} -H 'Authorization: Basic {auth}'\n  \
         curl -s {base}/companies/{c}/dataStatus -H 'Authorization: Basic {auth}'\n  \
         curl -s '{base}/companies/{c}/data/history?query=status%3DComplete' -H 'Authorization: Basic {auth}'\n  \
         curl -s -X POST {base}/companies/{c}/data/queue/commerce-customers -H 'Authorization: Basic {auth}'\n\n\
         Operator console: {base}/console (sign in with the API key above)\n  \
         the demo company's page: {base}/console/companies/{c}\n\n\
         Open the company's Link page in a browser to link another Stripe Test account through the sandbox's consent page:\n  {base}/link/{c}\n\n\
         Press Ctrl-C to stop.",
        key = api_key.expose_secret()
    );
    tributary_api::shutdown_signal().await;
    let _ = stop_tx.send(());
    let _ = server.await;
    sandbox.stop().await;
    store.close().await;
    Ok(())
}

fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(f, "{content}")?;
    Ok(())
}
