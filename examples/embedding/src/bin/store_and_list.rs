//! Embeds `tributary-domain` as an outside program would: it brings its own store (here
//! `tributary-sqlite`, in memory), creates a company and a linked connection through the use
//! cases, stores commerce records it mapped itself (as a data source would), and lists them with a
//! Codat query and `orderBy` — the same call the HTTP API makes. Run it with
//! `cargo run -p tributary-embedding-example --bin store_and_list`.

use secrecy::SecretString;
use std::sync::Arc;
use tributary_domain::ids::ConnectionId;
use tributary_domain::model::commerce::{CommerceRecord, Payment, PaymentStatus};
use tributary_domain::model::company::CompanyFields;
use tributary_domain::model::connection::{Connection, ConnectionStatus};
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::integration::definition;
use tributary_domain::model::pull::DatasetStatus;
use tributary_domain::model::record::SyncWrite;
use tributary_domain::model::secret::SealedSecret;
use tributary_domain::money::{Amount, Currency};
use tributary_domain::paging::ListQuery;
use tributary_domain::ports::{CipherError, SecretCipher, SystemClock};
use tributary_domain::service::{Platform, to_stored};

/// This program keeps no secrets, so its cipher seals nothing. A program that stores Stripe keys or
/// grants brings a real one (`tributary-api` has AES-256-GCM).
struct NoSecrets;

impl SecretCipher for NoSecrets {
    fn current_key_id(&self) -> String {
        "none".into()
    }
    fn seal(&self, _: &SecretString) -> Result<SealedSecret, CipherError> {
        Err(CipherError::UnknownKey("none: this program stores no secrets".into()))
    }
    fn open(&self, sealed: &SealedSecret) -> Result<SecretString, CipherError> {
        Err(CipherError::UnknownKey(sealed.key_id.clone()))
    }
}

fn payment(id: &str, amount: &str, currency: &str, status: PaymentStatus, created: &str) -> CommerceRecord {
    let currency = Currency::parse(currency).expect("an ISO currency");
    CommerceRecord::Payment(Payment {
        id: id.into(),
        amount: Some(Amount(amount.parse().expect("a decimal"))),
        currency: Some(currency),
        payment_method_ref: None,
        status: Some(status),
        payment_provider: Some("Example".into()),
        due_date: None,
        supplemental_data: None,
        created_date: Some(created.into()),
        modified_date: None,
        source_modified_date: None,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The adapters: a store (migrated), a cipher and a clock.
    let store = tributary_sqlite::SqliteStore::connect("sqlite::memory:").await?;
    store.migrate().await?;
    let repos = store.repositories();
    let platform = Platform::new(repos.clone(), Arc::new(NoSecrets), Arc::new(SystemClock));

    // 2. A company through the use case, and a connection to the Stripe Test integration that this
    //    program linked itself (the HTTP server links through Stripe Connect's OAuth flow, with the
    //    integration's keys configured and enabled).
    let company = platform.companies().create(CompanyFields::new("Embedded Shop", None, Default::default())?).await?.company.id;
    let stripe_test = definition("yzth").expect("a built-in integration");
    let connection = Connection {
        id: ConnectionId::new_random(),
        company_id: company,
        platform_key: stripe_test.platform_key(),
        status: ConnectionStatus::Linked,
        created: chrono::Utc::now(),
        last_sync: None,
        source_account: Some("acct_embedded".into()),
        grant: None,
        errors: Vec::new(),
    };
    repos.connections.insert(&connection, &[]).await?;

    // 3. Records mapped by this program, written with a completed pull, as the sync engine does.
    let records = [
        payment("py_1", "25.00", "GBP", PaymentStatus::Paid, "2026-01-01T10:00:00Z"),
        payment("py_2", "70.50", "GBP", PaymentStatus::Paid, "2026-01-02T10:00:00Z"),
        payment("py_3", "99.99", "USD", PaymentStatus::Paid, "2026-01-03T10:00:00Z"),
        payment("py_4", "60.00", "GBP", PaymentStatus::Failed, "2026-01-04T10:00:00Z"),
    ];
    let mut pull = platform.pulls().queue(company, DataType::Payments, Some(connection.id)).await?;
    pull.status = DatasetStatus::Complete;
    pull.completed = Some(chrono::Utc::now());
    pull.progress = 100;
    let write = SyncWrite { records: records.iter().map(to_stored).collect(), pull: Some((pull, Vec::new())), ..SyncWrite::default() };
    repos.records.write_sync(company, connection.id, DataType::Payments, &write, chrono::Utc::now()).await?;

    // 4. A Codat query and order, resolved against the payments' schema, read from the store.
    let schema = tributary_domain::model::commerce_schema::schema(DataType::Payments).expect("payments can be listed");
    let query = ListQuery::from_params(schema, None, Some(10), Some("currency=GBP && amount>50"), Some("-amount"))?;
    let page = platform.records().list(company, connection.id, DataType::Payments, &query).await?;
    println!("totalResults {}", page.page.total);
    for text in &page.page.items {
        let record: serde_json::Value = serde_json::from_str(text)?;
        println!(
            "{} {} {} {}",
            record["id"].as_str().unwrap_or(""),
            record["amount"],
            record["currency"].as_str().unwrap_or(""),
            record["status"].as_str().unwrap_or("")
        );
    }
    store.close().await;
    Ok(())
}
