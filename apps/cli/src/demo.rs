//! `tributary demo`: the quickest way to see Tributary answer. It runs the server on a local SQLite
//! file with a master key generated on first run (kept beside the database so restarts can read
//! the secrets), creates an API key and prints what to try next.
//!
//! The full demo (a Stripe sandbox, a merchant linked and synced) arrives with the sandbox and
//! sync engine; until then this is a live server with an empty instance.

use anyhow::Context;
use secrecy::ExposeSecret;
use std::path::{Path, PathBuf};
use tributary_api::config::decode_master_key;
use tributary_api::crypto::AesGcmCipher;
use tributary_api::store::Store;

fn key_file(database: &Path) -> PathBuf {
    database.with_extension("key")
}

/// Runs the demo server until Ctrl-C.
pub async fn run(listen: &str, database: &Path) -> anyhow::Result<()> {
    tributary_api::init_logging("info");
    let key_path = key_file(database);
    let key = if key_path.exists() {
        std::fs::read_to_string(&key_path).with_context(|| format!("cannot read {}", key_path.display()))?.trim().to_owned()
    } else {
        let k = AesGcmCipher::generate_key();
        write_private(&key_path, &k)?;
        println!(
            "Generated a master key for the demo and saved it to {} (the server refuses to start without one outside the demo).",
            key_path.display()
        );
        k
    };
    let bytes = decode_master_key(&key).with_context(|| format!("{} does not hold a valid master key", key_path.display()))?;
    let url = format!("sqlite://{}", database.display());
    let store = Store::open(&url).await?;
    let platform = tributary_api::platform(&store, AesGcmCipher::new(&bytes, &[]));
    let api_key = tributary_api::generate_api_key();
    platform
        .create_api_key(Some(format!("demo {}", chrono::Utc::now().format("%Y-%m-%d %H:%M:%S"))), &api_key)
        .await
        .context("cannot create the demo API key (at most 10 keys: delete the demo database to start afresh)")?;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let auth = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(api_key.expose_secret())
    };
    println!(
        "\nTributary is running at {base} on {url}\n\
         API key (shown once): {key}\n\n\
         Try:\n  curl -s {base}/integrations -H 'Authorization: Basic {auth}'\n  \
         curl -s -X POST {base}/companies -H 'Authorization: Basic {auth}' -H 'Content-Type: application/json' -d '{{\"name\":\"Acme Ltd\"}}'\n  \
         curl -s '{base}/companies?query=name~acme' -H 'Authorization: Basic {auth}'\n  \
         curl -s {base}/openapi.json -H 'Authorization: Basic {auth}'\n\n\
         Configure Stripe Test with: tributary --config <file> integrations set yzth --client-id ca_… --secret-key sk_test_…\n\
         Press Ctrl-C to stop.",
        key = api_key.expose_secret()
    );
    let opts = tributary_api::ServeOptions { public_url: base, connect_base: "https://connect.stripe.com".into() };
    tributary_api::serve_on(listener, &store, AesGcmCipher::new(&bytes, &[]), opts, tributary_api::shutdown_signal()).await?;
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
