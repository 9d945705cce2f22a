//! `stripe-sandbox`: run the sandbox server.

use clap::Parser;
use stripe_sandbox::{Config, Mode, Profile};

/// A Stripe-compatible server for offline development, tests, demos and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "stripe-sandbox", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:12111")]
    listen: String,
    /// Test-mode Connect client id.
    #[arg(long, default_value = "ca_sandbox_test")]
    test_client_id: String,
    /// Test-mode platform secret key.
    #[arg(long, default_value = "sk_test_sandbox_platform")]
    test_secret_key: String,
    /// Live-mode Connect client id.
    #[arg(long, default_value = "ca_sandbox_live")]
    live_client_id: String,
    /// Live-mode platform secret key.
    #[arg(long, default_value = "sk_live_sandbox_platform")]
    live_secret_key: String,
    /// Connect webhook signing secret.
    #[arg(long, default_value = "whsec_sandbox_connect")]
    webhook_secret: String,
    /// A registered OAuth redirect URI (repeatable; loopback URIs are always allowed in test mode).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// Seed for generated data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Create this many connected test accounts with the default profile at start.
    #[arg(long, default_value_t = 0)]
    accounts: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let a = Args::parse();
    let config = Config {
        listen: a.listen,
        test_client_id: a.test_client_id,
        test_secret_key: a.test_secret_key,
        live_client_id: a.live_client_id,
        live_secret_key: a.live_secret_key,
        webhook_secret: a.webhook_secret,
        redirect_uris: a.redirect_uris,
        seed: a.seed,
        ..Config::default()
    };
    let shown = config.clone();
    let running = stripe_sandbox::start(config).await?;
    for _ in 0..a.accounts {
        let id = running.sandbox.create_account(Mode::Test, None, true, &Profile::default());
        println!("account        {id} (test, connected)");
    }
    println!("stripe-sandbox listening on {}", running.url());
    println!("test  client id {}  secret key {}", shown.test_client_id, shown.test_secret_key);
    println!("live  client id {}  secret key {}", shown.live_client_id, shown.live_secret_key);
    println!("connect webhook secret {}", shown.webhook_secret);
    println!(
        "redirect URIs  {}",
        if shown.redirect_uris.is_empty() { "(none; loopback allowed in test mode)".to_owned() } else { shown.redirect_uris.join(", ") }
    );
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}
