//! The plans PostgreSQL chooses for the list statements (on a test database; skipped without
//! `TRIBUTARY_TEST_POSTGRES_URL` unless `TRIBUTARY_REQUIRE_POSTGRES=1`).

use crate::PgStore;
use crate::sql::records::{count_sql, list_sql};
use tributary_domain::ids::ConnectionId;
use tributary_domain::model::commerce_schema::PAYMENTS;
use tributary_domain::model::data_type::DataType;
use tributary_domain::paging::ListQuery;
use tributary_tests::pg::{admin_url, create_database};

/// The generic plan of a statement, as the store's connections run it (`plan_cache_mode =
/// force_generic_plan`): prepared, then `EXPLAIN EXECUTE` with `values` (its `$n` in order), with
/// sequential and bitmap scans and sorts priced out so that the plan shows the index path the
/// planner takes on a large table (and `more_off`, further paths priced out).
async fn explain(store: &PgStore, name: &str, sql: &crate::sql::filter::Sql, values: &[&str], more_off: &[&str]) -> String {
    let mut c = store.pool().acquire().await.unwrap();
    let mode: String = sqlx::query_scalar("SHOW plan_cache_mode").fetch_one(&mut *c).await.unwrap();
    assert_eq!(mode, "force_generic_plan");
    for path in ["seqscan", "bitmapscan", "sort"].iter().chain(more_off) {
        sqlx::raw_sql(&format!("SET enable_{path} = off")).execute(&mut *c).await.unwrap();
    }
    sqlx::raw_sql(&format!("PREPARE {name} AS {}", sql.text)).execute(&mut *c).await.unwrap();
    let literals: Vec<String> = values.iter().map(|v| format!("'{}'", v.replace('\'', "''"))).collect();
    let rows: Vec<String> =
        sqlx::query_scalar(&format!("EXPLAIN EXECUTE {name}({})", literals.join(", "))).fetch_all(&mut *c).await.unwrap();
    rows.join("\n")
}

/// A filtered page walks `records_created` in list order and checks the deleted flag and the
/// typed fields on the index entries (`Index Cond`), so only matching records are fetched from the
/// table; the filtered count reads the index alone (migration 0012; docs/performance.md).
#[tokio::test]
async fn a_filter_on_the_typed_fields_is_checked_in_the_list_index() {
    let name = "plans::a_filter_on_the_typed_fields_is_checked_in_the_list_index";
    let Some(admin) = admin_url(name) else { return };
    let db = create_database(&admin).await;
    let store = PgStore::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let q = ListQuery::from_params(&PAYMENTS, Some(3), Some(100), Some("currency=GBP && amount>5000"), None).unwrap();
    let connection = ConnectionId::new_random();
    let id = connection.to_string();
    let filter = [id.as_str(), DataType::Payments.key(), "GBP", "5000"];

    let page = explain(&store, "page", &list_sql(connection, DataType::Payments, &q), &[&filter[..], &["100", "200"]].concat(), &[]).await;
    assert!(page.contains("$3") && page.contains("$4"), "the generic plan: {page}");
    assert!(page.contains("Index Scan using records_created"), "{page}");
    let cond = page.lines().find(|l| l.trim_start().starts_with("Index Cond:")).unwrap_or_else(|| panic!("{page}"));
    for column in ["deleted", "f_currency", "f_amount"] {
        assert!(cond.contains(column), "{column} is checked on the index entries: {page}");
    }
    assert!(!page.contains("Filter:"), "no condition waits for the table row: {page}");

    // With plain index scans priced out too, Postgres prices every index path as disabled (the
    // index-only ones included) and takes the cheapest: an index-only scan, which exists only on
    // an index holding every column the count reads (without 0012 it is a disabled index scan
    // with a Filter).
    let count = explain(&store, "count", &count_sql(connection, DataType::Payments, &q), &filter, &["indexscan"]).await;
    assert!(count.contains("Index Only Scan using records_created"), "{count}");
    assert!(!count.contains("Filter:"), "{count}");

    store.close().await;
    db.cleanup().await;
}
