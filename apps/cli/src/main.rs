//! `tributary`: the admin CLI. It reads the same configuration as the server (file and
//! `TRIBUTARY_*` variables) and works on the same database, also while the server runs.

mod commands;
mod data;
#[cfg(feature = "demo")]
mod demo;
mod output;
mod sync;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: list pages allocate and free many small strings from several threads at once, where
/// glibc's allocator spent a third of the server's CPU (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tributary admin CLI.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, about = "Administer a Tributary instance: API keys, integrations, companies, connections, keys.")]
pub struct Cli {
    /// Configuration file (default: ./tributary.toml if present).
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply database migrations.
    Migrate,
    /// Manage API keys.
    #[command(subcommand, name = "api-keys")]
    ApiKeys(ApiKeysCmd),
    /// Configure the Stripe integrations (exgd = Stripe live, yzth = Stripe Test).
    #[command(subcommand)]
    Integrations(IntegrationsCmd),
    /// Manage companies.
    #[command(subcommand)]
    Companies(CompaniesCmd),
    /// Manage data connections.
    #[command(subcommand)]
    Connections(ConnectionsCmd),
    /// Sync a company's data now, with a progress bar per data type and a summary table.
    Sync {
        /// Company id.
        company_id: String,
        /// Only this connection.
        #[arg(long)]
        connection: Option<String>,
        /// Only this data type (e.g. commerce-customers).
        #[arg(long)]
        data_type: Option<String>,
    },
    /// Export a connection's commerce records (streamed page by page).
    Data {
        /// Company id.
        company_id: String,
        /// Connection id.
        connection_id: String,
        /// commerce-customers, commerce-disputes, commerce-payments, commerce-products,
        /// commerce-transactions or commerce-info.
        data_type: String,
        /// Codat query, e.g. `currency=GBP && amount>10`.
        #[arg(long)]
        query: Option<String>,
        /// Order, e.g. `-createdDate`.
        #[arg(long, allow_hyphen_values = true)]
        order_by: Option<String>,
        /// Output format.
        #[arg(long, default_value = "table", value_parser = ["table", "json", "csv"])]
        format: String,
    },
    /// Webhook consumers: Codat events signed with Standard Webhooks.
    #[command(subcommand)]
    Webhooks(WebhooksCmd),
    /// Master keys for secrets at rest.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Try Tributary: a server on a local SQLite file with a generated master key and API key.
    #[cfg(feature = "demo")]
    Demo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// SQLite file for the demo.
        #[arg(long, default_value = "tributary-demo.db")]
        database: PathBuf,
    },
}

/// `webhooks …`
#[derive(Debug, Subcommand)]
pub enum WebhooksCmd {
    /// List consumers (a consumer Tributary disabled shows why).
    List,
    /// Create a consumer; its whsec_ signing secret is printed.
    Create {
        /// Receiver URL (http or https).
        url: String,
        /// Event types (repeat or comma-separate), e.g. company.created,read.completed.
        #[arg(long = "event-type", value_delimiter = ',', required = true)]
        event_types: Vec<String>,
        /// Only events about companies with one of these key:value tags.
        #[arg(long = "company-tag", value_delimiter = ',')]
        company_tags: Vec<String>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Delete a consumer and its pending deliveries.
    Delete {
        /// Consumer id.
        id: String,
    },
    /// A consumer's latest delivery attempts and its delivery counts.
    Attempts {
        /// Consumer id.
        id: String,
        /// How many attempts to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Print a consumer's whsec_ signing secret.
    Secret {
        /// Consumer id.
        id: String,
    },
    /// Enable a consumer again (for example after Tributary disabled it).
    Enable {
        /// Consumer id.
        id: String,
    },
    /// Disable a consumer: it receives nothing until enabled.
    Disable {
        /// Consumer id.
        id: String,
    },
}

/// `api-keys …`
#[derive(Debug, Subcommand)]
pub enum ApiKeysCmd {
    /// Create a key; its value is printed once and never again.
    Create {
        /// A name (at most 50 characters).
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys (without values).
    List,
    /// Revoke a key.
    Revoke {
        /// Key id.
        id: String,
        /// Allow revoking the last key (the API then accepts no requests until a new key exists).
        #[arg(long)]
        force: bool,
    },
}

/// `integrations …`
#[derive(Debug, Subcommand)]
pub enum IntegrationsCmd {
    /// List integrations and their settings (secrets are never shown).
    List,
    /// Change an integration's settings.
    Set {
        /// Platform key: exgd (Stripe) or yzth (Stripe Test).
        key: String,
        /// Connect client id (ca_…).
        #[arg(long)]
        client_id: Option<String>,
        /// Platform secret key (sk_test_… / sk_live_…); `-` reads it from standard input.
        #[arg(long)]
        secret_key: Option<String>,
        /// Connect webhook signing secret (whsec_…); `-` reads it from standard input.
        #[arg(long)]
        webhook_secret: Option<String>,
        /// OAuth scope to request.
        #[arg(long, value_parser = ["read_only", "read_write"])]
        scope: Option<String>,
    },
    /// Let merchants link with an integration.
    Enable {
        /// Platform key.
        key: String,
    },
    /// Stop merchants linking with an integration.
    Disable {
        /// Platform key.
        key: String,
    },
}

/// `companies …`
#[derive(Debug, Subcommand)]
pub enum CompaniesCmd {
    /// Create a company.
    Create {
        /// Name (characters Codat does not allow are removed).
        name: String,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// A tag, `key=value` (repeatable, at most 10).
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// List companies.
    List {
        /// Codat query, e.g. `name~acme`.
        #[arg(long)]
        query: Option<String>,
        /// Order, e.g. `-created`.
        #[arg(long, allow_hyphen_values = true)]
        order_by: Option<String>,
        /// Page number.
        #[arg(long, default_value_t = 1)]
        page: i64,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        page_size: i64,
    },
    /// Show a company and its connections.
    Show {
        /// Company id.
        id: String,
    },
    /// Delete a company, its connections and data.
    Delete {
        /// Company id.
        id: String,
    },
}

/// `connections …`
#[derive(Debug, Subcommand)]
pub enum ConnectionsCmd {
    /// Create a connection and print its link URL.
    Create {
        /// Company id.
        company_id: String,
        /// Platform key: exgd or yzth.
        platform_key: String,
    },
    /// List a company's connections.
    List {
        /// Company id.
        company_id: String,
    },
    /// Show a connection: status, Stripe account and errors.
    Show {
        /// Connection id.
        id: String,
    },
    /// Unlink a connection: revokes access at Stripe; its data is kept.
    Unlink {
        /// Connection id.
        id: String,
    },
    /// Delete a connection and its data, revoking access at Stripe first.
    Delete {
        /// Connection id.
        id: String,
    },
}

/// `keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Print a new random master key (base64, 32 bytes).
    Generate,
    /// Re-encrypt every secret under a new master key.
    ///
    /// Without --new-key: re-encrypts under the configured master_key everything sealed under
    /// previous_master_keys. With --new-key: re-encrypts everything under that key; then set it
    /// as master_key.
    Rotate {
        /// The key to rotate to (base64); `-` reads it from standard input.
        #[arg(long)]
        new_key: Option<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
