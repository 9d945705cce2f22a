//! The storage contract: one `pub async fn` per behaviour every storage adapter must show, written
//! against the repository ports only. `tests/tests/storage_contract.rs` runs each function against a
//! fresh SQLite store, a fresh in-memory fake (`tributary_domain::fake::Mem`) and a fresh Postgres
//! database.
//!
//! Timestamps are fixed and carry microseconds (the finest precision both backends keep), so
//! round trips compare with `==`.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use std::collections::BTreeMap;
use tokio::task::JoinSet;
use tributary_domain::RepositoryError;
use tributary_domain::ids::{ApiKeyId, CompanyId, ConnectionId, PullOperationId, WebhookConsumerId};
use tributary_domain::model::api_key::ApiKey;
use tributary_domain::model::commerce_schema;
use tributary_domain::model::company::{self, Company};
use tributary_domain::model::connection::{self, Connection, ConnectionError, ConnectionStatus};
use tributary_domain::model::console::{Backlog, ConsoleSession};
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::integration::{IntegrationSettings, Scope};
use tributary_domain::model::oauth_state::OAuthState;
use tributary_domain::model::profile::Profile;
use tributary_domain::model::pull::{self, DatasetStatus, PullOperation};
use tributary_domain::model::record::{Checkpoint, Estimate, ListedRecord, PartitionState, RecordRow, StagedItem, StoredRecord, SyncWrite};
use tributary_domain::model::secret::SealedSecret;
use tributary_domain::model::sync_settings::{SyncSetting, default_settings};
use tributary_domain::model::webhook::{AfterAttempt, Attempt, Delivery, EventType, OutboxEvent, WebhookConsumer};
use tributary_domain::paging::{ListQuery, Page, Seek};
use tributary_domain::ports::{ApiKeyDeletion, DeliveryCounts, Redelivery, Repositories, SecretSlot};
use tributary_domain::query::typed::parse_instant;
use tributary_domain::query::{FieldType, eval, resolve};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// `2026-01-01T00:00:00Z` plus `seconds`.
fn at(seconds: i64) -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().expect("fixed instant") + Duration::seconds(seconds)
}

/// An instant with a sub-second part, to prove microseconds survive a round trip.
fn at_micros(seconds: i64, micros: i64) -> DateTime<Utc> {
    at(seconds) + Duration::microseconds(micros)
}

fn company(name: &str, created: DateTime<Utc>) -> Company {
    Company { id: CompanyId::new_random(), name: name.into(), description: None, tags: BTreeMap::new(), created, last_sync: None }
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

async fn insert(repos: &Repositories, c: Company) -> Company {
    repos.companies.insert(&c, &[]).await.unwrap_or_else(|e| panic!("insert company {}: {e}", c.name));
    c
}

async fn insert_named(repos: &Repositories, name: &str, created_seconds: i64) -> Company {
    insert(repos, company(name, at(created_seconds))).await
}

fn connection(company: &Company, status: ConnectionStatus, created: DateTime<Utc>) -> Connection {
    Connection {
        id: ConnectionId::new_random(),
        company_id: company.id,
        platform_key: "yzth".parse().expect("built-in key"),
        status,
        created,
        last_sync: None,
        source_account: None,
        grant: None,
        errors: Vec::new(),
    }
}

async fn insert_connection(repos: &Repositories, c: Connection) -> Connection {
    repos.connections.insert(&c, &[]).await.unwrap_or_else(|e| panic!("insert connection {}: {e}", c.id));
    c
}

fn sealed(key_id: &str, ciphertext: &str) -> SealedSecret {
    SealedSecret { key_id: key_id.into(), ciphertext: ciphertext.into() }
}

fn api_key(name: &str, created: DateTime<Utc>) -> ApiKey {
    let id = ApiKeyId::new_random();
    ApiKey { id, name: Some(name.into()), hash: format!("{:0>64}", id.0.simple()), created }
}

fn company_query(page: i64, page_size: i64, query: Option<&str>, order_by: Option<&str>) -> ListQuery {
    ListQuery::from_params(&company::QUERY_SCHEMA, Some(page), Some(page_size), query, order_by)
        .unwrap_or_else(|e| panic!("query {query:?} / orderBy {order_by:?}: {e}"))
}

async fn list_companies(repos: &Repositories, query: &ListQuery) -> Page<Company> {
    repos.companies.list(query).await.unwrap_or_else(|e| panic!("list companies {query:?}: {e}"))
}

/// Names of the companies matching `query`, in the default order (created, then id).
async fn names_matching(repos: &Repositories, query: &str) -> Vec<String> {
    let page = list_companies(repos, &company_query(1, 100, Some(query), None)).await;
    assert_eq!(page.total, page.items.len() as u64, "total counts what matched for {query}");
    page.items.into_iter().map(|c| c.name).collect()
}

/// Names of the companies matching a `tags` filter (and an optional `query`), in default order.
async fn names_matching_tags(repos: &Repositories, tags_filter: &str, query: Option<&str>) -> Vec<String> {
    let mut q = company_query(1, 100, query, None);
    q.tags = Some(resolve(tags_filter, &company::TAGS_SCHEMA).unwrap_or_else(|e| panic!("tags {tags_filter}: {e}")));
    let page = list_companies(repos, &q).await;
    assert_eq!(page.total, page.items.len() as u64, "total counts what matched for tags {tags_filter}");
    page.items.into_iter().map(|c| c.name).collect()
}

fn names(page: &Page<Company>) -> Vec<&str> {
    page.items.iter().map(|c| c.name.as_str()).collect()
}

fn assert_not_found<T: std::fmt::Debug>(r: Result<T, RepositoryError>, what: &str) {
    assert!(matches!(r, Err(RepositoryError::NotFound(_))), "{what}: expected NotFound, got {r:?}");
}

fn assert_conflict<T: std::fmt::Debug>(r: Result<T, RepositoryError>, what: &str) {
    assert!(matches!(r, Err(RepositoryError::Conflict(_))), "{what}: expected Conflict, got {r:?}");
}

/// Sealed secrets keyed by their slot, for order-independent comparison.
fn by_slot(v: Vec<(SecretSlot, SealedSecret)>) -> BTreeMap<String, SealedSecret> {
    let n = v.len();
    let map: BTreeMap<_, _> = v.into_iter().map(|(slot, s)| (format!("{slot:?}"), s)).collect();
    assert_eq!(map.len(), n, "no slot is listed twice");
    map
}

fn slot_key(slot: &SecretSlot) -> String {
    format!("{slot:?}")
}

fn sync_setting(data_type: DataType, schedule: i32, from: Option<DateTime<Utc>>) -> SyncSetting {
    SyncSetting {
        data_type,
        fetch_on_first_link: false,
        sync_schedule: schedule,
        sync_order: 3,
        sync_from_utc: from,
        sync_from_window: None,
        months_to_sync: Some(6),
        is_locked: true,
    }
}

// ---------------------------------------------------------------------------------------------
// Companies
// ---------------------------------------------------------------------------------------------

/// A company reads back exactly as stored: tags, no description, microsecond timestamps.
pub async fn companies_round_trip_with_tags(repos: Repositories) {
    let mut c = company("Acme Ltd", at_micros(10, 123_456));
    c.tags = tags(&[("region", "uk"), ("team", "finance")]);
    c.last_sync = Some(at_micros(20, 654_321));
    insert(&repos, c.clone()).await;
    let plain = insert(&repos, company("Plain", at(11))).await;

    assert_eq!(repos.companies.get(c.id).await.unwrap(), Some(c.clone()));
    let got = repos.companies.get(plain.id).await.unwrap().expect("stored");
    assert_eq!(got, plain);
    assert_eq!(got.description, None);
    assert!(got.tags.is_empty());
    assert_eq!(repos.companies.get(CompanyId::new_random()).await.unwrap(), None);
}

/// Inserting a second company with an existing id is a conflict and changes nothing.
pub async fn inserting_a_company_with_an_existing_id_is_a_conflict(repos: Repositories) {
    let c = insert_named(&repos, "First", 0).await;
    let mut dup = company("Second", at(1));
    dup.id = c.id;
    dup.tags = tags(&[("k", "v")]);
    assert_conflict(repos.companies.insert(&dup, &[]).await, "duplicate company id");
    assert_eq!(repos.companies.get(c.id).await.unwrap(), Some(c));
}

/// Update replaces name, description, tags and last sync; `created` stays.
pub async fn company_update_replaces_name_description_and_tags(repos: Repositories) {
    let mut c = company("Before", at(5));
    c.description = Some("old".into());
    c.tags = tags(&[("keep", "1"), ("drop", "2"), ("change", "a")]);
    insert(&repos, c.clone()).await;
    let other = insert(&repos, Company { tags: tags(&[("keep", "x")]), ..company("Other", at(6)) }).await;

    let updated = Company {
        name: "After".into(),
        description: None,
        tags: tags(&[("keep", "1"), ("change", "b"), ("new", "3")]),
        last_sync: Some(at_micros(100, 1)),
        ..c.clone()
    };
    repos.companies.update(&updated).await.unwrap();
    assert_eq!(repos.companies.get(c.id).await.unwrap(), Some(updated.clone()));

    // Back to a description and no tags at all.
    let again = Company { description: Some("new text".into()), tags: BTreeMap::new(), ..updated };
    repos.companies.update(&again).await.unwrap();
    assert_eq!(repos.companies.get(c.id).await.unwrap(), Some(again));
    assert_eq!(repos.companies.get(other.id).await.unwrap(), Some(other), "other companies untouched");
}

/// Updating a company that does not exist is NotFound and creates nothing.
pub async fn updating_a_missing_company_is_not_found(repos: Repositories) {
    let ghost = Company { tags: tags(&[("a", "b")]), ..company("Ghost", at(0)) };
    assert_not_found(repos.companies.update(&ghost).await, "update missing company");
    assert_eq!(repos.companies.get(ghost.id).await.unwrap(), None);
}

/// Deleting a company removes its connections, tags and sync settings, and nothing else.
pub async fn company_delete_cascades_to_connections_tags_and_sync_settings(repos: Repositories) {
    let doomed = insert(&repos, Company { tags: tags(&[("region", "uk")]), ..company("Doomed", at(0)) }).await;
    let kept = insert(&repos, Company { tags: tags(&[("region", "uk")]), ..company("Kept", at(1)) }).await;
    let doomed_conn = insert_connection(&repos, connection(&doomed, ConnectionStatus::Linked, at(2))).await;
    let kept_conn = insert_connection(&repos, connection(&kept, ConnectionStatus::Linked, at(3))).await;
    let settings = vec![sync_setting(DataType::Orders, 6, None)];
    repos.profile.put_company_sync_settings(doomed.id, Some(settings.clone())).await.unwrap();
    repos.profile.put_company_sync_settings(kept.id, Some(settings.clone())).await.unwrap();

    assert!(repos.companies.delete(doomed.id, &[]).await.unwrap());

    assert_eq!(repos.companies.get(doomed.id).await.unwrap(), None);
    assert_eq!(repos.connections.find(doomed_conn.id).await.unwrap(), None);
    assert_eq!(repos.profile.get_company_sync_settings(doomed.id).await.unwrap(), None);
    assert_eq!(names_matching_tags(&repos, "region=uk", None).await, vec!["Kept"]);
    assert_eq!(repos.connections.list_for_companies(&[doomed.id, kept.id]).await.unwrap(), vec![kept_conn.clone()]);

    // A company re-created under the same id starts empty: nothing was left behind.
    let reborn = insert(&repos, Company { id: doomed.id, ..company("Reborn", at(9)) }).await;
    assert_eq!(repos.companies.get(doomed.id).await.unwrap(), Some(reborn));
    assert!(repos.connections.list(doomed.id, &ListQuery::default()).await.unwrap().items.is_empty());
    assert_eq!(repos.profile.get_company_sync_settings(doomed.id).await.unwrap(), None);

    assert_eq!(repos.companies.get(kept.id).await.unwrap(), Some(kept.clone()));
    assert_eq!(repos.connections.find(kept_conn.id).await.unwrap(), Some(kept_conn));
    assert_eq!(repos.profile.get_company_sync_settings(kept.id).await.unwrap(), Some(settings));
}

/// Deleting a company that does not exist returns false.
pub async fn deleting_a_missing_company_returns_false(repos: Repositories) {
    assert!(!repos.companies.delete(CompanyId::new_random(), &[]).await.unwrap());
    let c = insert_named(&repos, "Once", 0).await;
    assert!(repos.companies.delete(c.id, &[]).await.unwrap());
    assert!(!repos.companies.delete(c.id, &[]).await.unwrap(), "second delete finds nothing");
}

/// Pages slice the default order (created, then id) and report the exact total on every page.
pub async fn company_list_pages_in_created_then_id_order_with_exact_total(repos: Repositories) {
    // Inserted out of order; two pairs share a creation instant so the id decides.
    let mut all = Vec::new();
    for (name, created) in [("e", 40), ("b", 10), ("c", 20), ("a", 0), ("d", 20), ("f", 40), ("g", 50)] {
        all.push(insert_named(&repos, name, created).await);
    }
    all.sort_by_key(|c| (c.created, c.id.to_string()));
    let expected: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();

    let whole = list_companies(&repos, &company_query(1, 100, None, None)).await;
    assert_eq!(whole.total, 7);
    assert_eq!(names(&whole), expected);

    let p1 = list_companies(&repos, &company_query(1, 3, None, None)).await;
    let p2 = list_companies(&repos, &company_query(2, 3, None, None)).await;
    let p3 = list_companies(&repos, &company_query(3, 3, None, None)).await;
    let p4 = list_companies(&repos, &company_query(4, 3, None, None)).await;
    assert_eq!((p1.total, p2.total, p3.total, p4.total), (7, 7, 7, 7), "total is exact on every page");
    assert_eq!(names(&p1), expected[0..3]);
    assert_eq!(names(&p2), expected[3..6]);
    assert_eq!(names(&p3), expected[6..7]);
    assert!(p4.items.is_empty(), "a page past the end is empty");
    assert!(p1.has_next() && p2.has_next() && !p3.has_next());
    // Listed companies carry their tags like `get` does.
    assert_eq!(whole.items, all);
}

/// `orderBy=name` and `-name` sort by code point with the id as tie-break (descending too).
pub async fn company_list_orders_by_name_both_ways_with_id_tie_break(repos: Repositories) {
    let mut twins = Vec::new();
    for (name, created) in [("bravo", 0), ("alpha", 1), ("Zulu", 2), ("charlie", 3), ("alpha", 4)] {
        let c = insert_named(&repos, name, created).await;
        if name == "alpha" {
            twins.push(c.id);
        }
    }
    twins.sort_by_key(ToString::to_string);

    let asc = list_companies(&repos, &company_query(1, 100, None, Some("name"))).await;
    assert_eq!(names(&asc), ["Zulu", "alpha", "alpha", "bravo", "charlie"], "upper case sorts before lower case");
    assert_eq!([asc.items[1].id, asc.items[2].id], [twins[0], twins[1]], "ties ascend by id");

    let desc = list_companies(&repos, &company_query(1, 100, None, Some("-name"))).await;
    assert_eq!(names(&desc), ["charlie", "bravo", "alpha", "alpha", "Zulu"]);
    assert_eq!([desc.items[2].id, desc.items[3].id], [twins[1], twins[0]], "ties descend by id");

    let page2 = list_companies(&repos, &company_query(2, 2, None, Some("-name"))).await;
    assert_eq!(names(&page2), ["alpha", "alpha"]);
    assert_eq!(page2.total, 5);
}

/// `orderBy=lastSync` puts never-synced companies first; `-lastSync` puts them last.
pub async fn company_list_orders_by_last_sync_with_nulls_first_ascending(repos: Repositories) {
    insert_named(&repos, "never", 0).await;
    insert(&repos, Company { last_sync: Some(at(200)), ..company("late", at(1)) }).await;
    insert(&repos, Company { last_sync: Some(at(100)), ..company("early", at(2)) }).await;
    let asc = list_companies(&repos, &company_query(1, 100, None, Some("lastSync"))).await;
    assert_eq!(names(&asc), ["never", "early", "late"]);
    let desc = list_companies(&repos, &company_query(1, 100, None, Some("-lastSync"))).await;
    assert_eq!(names(&desc), ["late", "early", "never"]);
}

/// `name=` is exact (case-sensitive) and `name!=` is its complement.
pub async fn company_filter_name_equals_and_not_equals(repos: Repositories) {
    for (i, n) in ["Acme", "acme", "Acme Two", "Bolt"].iter().enumerate() {
        insert_named(&repos, n, i as i64).await;
    }
    assert_eq!(names_matching(&repos, "name=Acme").await, ["Acme"]);
    assert_eq!(names_matching(&repos, "name = Acme Two").await, ["Acme Two"]);
    assert_eq!(names_matching(&repos, "name!=Acme").await, ["acme", "Acme Two", "Bolt"]);
    assert!(names_matching(&repos, "name=Nobody").await.is_empty());
}

/// `name~` is a case-insensitive contains.
pub async fn company_filter_name_contains_is_case_insensitive(repos: Repositories) {
    for (i, n) in ["Acme Widgets", "THE ACME CO", "Bolt", "acm e"].iter().enumerate() {
        insert_named(&repos, n, i as i64).await;
    }
    assert_eq!(names_matching(&repos, "name~acme").await, ["Acme Widgets", "THE ACME CO"]);
    assert_eq!(names_matching(&repos, "name~ACME").await, ["Acme Widgets", "THE ACME CO"]);
    assert_eq!(names_matching(&repos, "name~oL").await, ["Bolt"]);
    assert!(names_matching(&repos, "name~zzz").await.is_empty());
}

/// `%`, `_` and `\` in a `~` value match themselves, not as LIKE wildcards or escapes.
pub async fn company_filter_contains_treats_wildcards_literally(repos: Repositories) {
    for (i, n) in ["50% off", "500 off", "a_b", "axb", "back\\slash", "backslash"].iter().enumerate() {
        insert_named(&repos, n, i as i64).await;
    }
    assert_eq!(names_matching(&repos, "name~%").await, ["50% off"]);
    assert_eq!(names_matching(&repos, "name~0% o").await, ["50% off"]);
    assert_eq!(names_matching(&repos, "name~a_b").await, ["a_b"]);
    assert_eq!(names_matching(&repos, "name~_").await, ["a_b"]);
    assert_eq!(names_matching(&repos, "name~k\\s").await, ["back\\slash"]);
}

/// `~` ignores the case of ASCII letters only, on every backend and in memory: `é` and `É` are
/// different letters to it.
pub async fn company_filter_contains_folds_ascii_case_only(repos: Repositories) {
    insert(&repos, Company { description: Some("ÉCOLE Normale".into()), ..company("a", at(0)) }).await;
    insert(&repos, Company { description: Some("école".into()), ..company("b", at(1)) }).await;
    assert_eq!(names_matching(&repos, "description~NORMALE").await, ["a"]);
    assert_eq!(names_matching(&repos, "description~écOLE").await, ["b"]);
    assert_eq!(names_matching(&repos, "description~ÉCOLE").await, ["a"]);
    assert_eq!(names_matching(&repos, "description~ÉcOLE").await, ["a"]);
}

/// `created>` and `created<=` compare instants; a date means midnight UTC.
pub async fn company_filter_by_created_date_range(repos: Repositories) {
    const DAY: i64 = 86_400;
    insert(&repos, company("jan1 midnight", at(0))).await;
    insert(&repos, company("jan1 noon", at(DAY / 2))).await;
    insert(&repos, company("jan2 midnight", at(DAY))).await;
    insert(&repos, company("jan2 plus 1us", at_micros(DAY, 1))).await;
    insert(&repos, company("jan3", at(2 * DAY))).await;

    assert_eq!(
        names_matching(&repos, "created>2026-01-01 && created<=2026-01-02").await,
        ["jan1 noon", "jan2 midnight"],
        "> excludes the instant itself, <= includes it, and microseconds count"
    );
    assert_eq!(names_matching(&repos, "created>=2026-01-02T00:00:00.000001Z").await, ["jan2 plus 1us", "jan3"]);
    assert_eq!(names_matching(&repos, "created<2026-01-01T12:00:00+00:00").await, ["jan1 midnight"]);
    assert_eq!(
        names_matching(&repos, "created>2026-01-02T01:00:00+02:00").await,
        ["jan2 midnight", "jan2 plus 1us", "jan3"],
        "offsets convert to UTC"
    );
}

/// `{a || b} && c` groups, and `&&` binds tighter than `||` without braces.
pub async fn company_filter_groups_or_inside_and(repos: Repositories) {
    insert(&repos, Company { description: Some("y".into()), ..company("a", at(0)) }).await;
    insert(&repos, Company { description: Some("x".into()), ..company("b", at(1)) }).await;
    insert(&repos, Company { description: Some("x".into()), ..company("c", at(2)) }).await;
    assert_eq!(names_matching(&repos, "{name=a || name=b} && description=x").await, ["b"]);
    assert_eq!(names_matching(&repos, "name=a || name=b && description=x").await, ["a", "b"]);
    assert_eq!(names_matching(&repos, "description=x && {name=c || name=a}").await, ["c"]);
    assert_eq!(names_matching(&repos, "{name=a && description=y} || {name=c && description=x}").await, ["a", "c"]);
}

async fn companies_with_connection_statuses(repos: &Repositories) {
    let a = insert_named(repos, "linked", 0).await;
    let b = insert_named(repos, "pending only", 1).await;
    insert_named(repos, "no connections", 2).await;
    let d = insert_named(repos, "linked and unlinked", 3).await;
    insert_connection(repos, connection(&a, ConnectionStatus::Linked, at(10))).await;
    insert_connection(repos, connection(&b, ConnectionStatus::PendingAuth, at(11))).await;
    insert_connection(repos, connection(&d, ConnectionStatus::Unlinked, at(12))).await;
    insert_connection(repos, connection(&d, ConnectionStatus::Linked, at(13))).await;
}

/// `dataConnections.status=Linked` matches companies with at least one linked connection.
pub async fn company_filter_on_connection_status_matches_any_connection(repos: Repositories) {
    companies_with_connection_statuses(&repos).await;
    assert_eq!(names_matching(&repos, "dataConnections.status=Linked").await, ["linked", "linked and unlinked"]);
    assert_eq!(names_matching(&repos, "dataConnections.status=unlinked").await, ["linked and unlinked"]);
    assert_eq!(names_matching(&repos, "dataConnections.platformName~stripe").await, ["linked", "pending only", "linked and unlinked"]);
    assert_eq!(
        names_matching(&repos, "dataConnections.created>2026-01-01T00:00:11Z").await,
        ["linked and unlinked"],
        "dates inside the collection compare as instants"
    );
}

/// `dataConnections.status!=Linked` matches companies with no linked connection, including
/// companies with no connections at all.
pub async fn company_filter_not_linked_includes_companies_without_connections(repos: Repositories) {
    companies_with_connection_statuses(&repos).await;
    assert_eq!(names_matching(&repos, "dataConnections.status!=Linked").await, ["pending only", "no connections"]);
    assert_eq!(names_matching(&repos, "dataConnections.status!=Linked && dataConnections.status!=PendingAuth").await, ["no connections"]);
}

/// `description!=x` includes companies without a description.
pub async fn company_filter_description_not_equal_includes_null_descriptions(repos: Repositories) {
    insert(&repos, Company { description: Some("x".into()), ..company("has x", at(0)) }).await;
    insert(&repos, Company { description: Some("y".into()), ..company("has y", at(1)) }).await;
    insert(&repos, company("has none", at(2))).await;
    assert_eq!(names_matching(&repos, "description!=x").await, ["has y", "has none"]);
    assert_eq!(names_matching(&repos, "description=x").await, ["has x"]);
}

async fn tagged_companies(repos: &Repositories) {
    insert(repos, Company { tags: tags(&[("region", "uk"), ("team", "finance")]), ..company("uk finance", at(0)) }).await;
    insert(repos, Company { tags: tags(&[("region", "uk"), ("team", "ops")]), ..company("uk ops", at(1)) }).await;
    insert(repos, Company { tags: tags(&[("region", "us"), ("team", "FinOps")]), ..company("us finops", at(2)) }).await;
    insert(repos, company("untagged", at(3))).await;
    insert(repos, Company { tags: tags(&[("team", "Fin")]), ..company("no region", at(4)) }).await;
}

/// The `tags` filter matches by key and value: `=` exact, `~` case-insensitive contains.
pub async fn company_tags_filter_combines_equals_and_contains(repos: Repositories) {
    tagged_companies(&repos).await;
    assert_eq!(names_matching_tags(&repos, "region=uk && team~fin", None).await, ["uk finance"]);
    assert_eq!(names_matching_tags(&repos, "team~FIN", None).await, ["uk finance", "us finops", "no region"]);
    assert_eq!(names_matching_tags(&repos, "region=uk || region=us", None).await, ["uk finance", "uk ops", "us finops"]);
    assert_eq!(names_matching_tags(&repos, "region=UK", None).await, Vec::<String>::new(), "= is case-sensitive");
    assert_eq!(names_matching_tags(&repos, "team=uk", None).await, Vec::<String>::new(), "keys are not interchangeable");
    // Together with a query, both must hold.
    assert_eq!(names_matching_tags(&repos, "region=uk", Some("name~ops")).await, ["uk ops"]);
}

/// `tags=region!=uk` matches companies whose region differs and companies without the tag.
pub async fn company_tags_not_equal_matches_companies_without_the_tag(repos: Repositories) {
    tagged_companies(&repos).await;
    assert_eq!(names_matching_tags(&repos, "region!=uk", None).await, ["us finops", "untagged", "no region"]);
    assert_eq!(names_matching_tags(&repos, "region!=uk && team~fin", None).await, ["us finops", "no region"]);
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

/// A connection for a company that does not exist is NotFound.
pub async fn connection_insert_for_a_missing_company_is_not_found(repos: Repositories) {
    let ghost = company("Ghost", at(0));
    let c = connection(&ghost, ConnectionStatus::PendingAuth, at(1));
    assert_not_found(repos.connections.insert(&c, &[]).await, "connection of missing company");
    assert_eq!(repos.connections.find(c.id).await.unwrap(), None);
}

/// A connection with an id that exists is a conflict.
pub async fn inserting_a_connection_with_an_existing_id_is_a_conflict(repos: Repositories) {
    let co = insert_named(&repos, "Co", 0).await;
    let c = insert_connection(&repos, connection(&co, ConnectionStatus::PendingAuth, at(1))).await;
    let dup = Connection { status: ConnectionStatus::Linked, ..c.clone() };
    assert_conflict(repos.connections.insert(&dup, &[]).await, "duplicate connection id");
    assert_eq!(repos.connections.find(c.id).await.unwrap(), Some(c));
}

/// `get` finds a connection only under its own company; `find` needs the id alone.
pub async fn connection_get_is_scoped_to_its_company_and_find_is_not(repos: Repositories) {
    let owner = insert_named(&repos, "Owner", 0).await;
    let other = insert_named(&repos, "Other", 1).await;
    let c = insert_connection(&repos, connection(&owner, ConnectionStatus::PendingAuth, at_micros(2, 42))).await;

    assert_eq!(repos.connections.get(owner.id, c.id).await.unwrap(), Some(c.clone()));
    assert_eq!(repos.connections.get(other.id, c.id).await.unwrap(), None, "another company's connection is not found");
    assert_eq!(repos.connections.find(c.id).await.unwrap(), Some(c));
    assert_eq!(repos.connections.find(ConnectionId::new_random()).await.unwrap(), None);
}

/// Update saves status, grant, errors, source account and last sync; clearing them works too.
pub async fn connection_update_round_trips_status_grant_errors_and_source_account(repos: Repositories) {
    let co = insert_named(&repos, "Co", 0).await;
    let c = insert_connection(&repos, connection(&co, ConnectionStatus::PendingAuth, at(1))).await;

    let linked = Connection {
        status: ConnectionStatus::Linked,
        last_sync: Some(at_micros(50, 999_999)),
        source_account: Some("acct_123".into()),
        grant: Some(sealed("key-1", "Y2lwaGVy")),
        errors: vec![
            ConnectionError {
                status_code: "401".into(),
                status_text: Some("Unauthorized".into()),
                error_message: "token expired — \"quoted\" ünïcode".into(),
                errored_on_utc: at_micros(40, 123_457),
            },
            ConnectionError { status_code: "500".into(), status_text: None, error_message: "boom".into(), errored_on_utc: at(41) },
        ],
        ..c.clone()
    };
    repos.connections.update(&linked, &[]).await.unwrap();
    assert_eq!(repos.connections.get(co.id, c.id).await.unwrap(), Some(linked.clone()));

    let cleared = Connection {
        status: ConnectionStatus::Deauthorized,
        grant: None,
        source_account: None,
        errors: Vec::new(),
        last_sync: None,
        ..linked
    };
    repos.connections.update(&cleared, &[]).await.unwrap();
    assert_eq!(repos.connections.find(c.id).await.unwrap(), Some(cleared));
}

/// Updating a connection that does not exist (or under another company) is NotFound.
pub async fn updating_a_missing_connection_is_not_found(repos: Repositories) {
    let co = insert_named(&repos, "Co", 0).await;
    let other = insert_named(&repos, "Other", 1).await;
    let ghost = connection(&co, ConnectionStatus::Linked, at(2));
    assert_not_found(repos.connections.update(&ghost, &[]).await, "update missing connection");
    let c = insert_connection(&repos, connection(&co, ConnectionStatus::PendingAuth, at(3))).await;
    let moved = Connection { company_id: other.id, status: ConnectionStatus::Linked, ..c.clone() };
    assert_not_found(repos.connections.update(&moved, &[]).await, "update under another company");
    assert_eq!(repos.connections.find(c.id).await.unwrap(), Some(c));
}

/// `set_status_if` changes the status only from the expected one (a worker's deauthorization never
/// overwrites a client's unlink), `set_last_sync` touches nothing else, and `list_linked` lists only
/// linked connections.
pub async fn connection_status_compare_and_set_and_last_sync(repos: Repositories) {
    let co = insert_named(&repos, "Co", 0).await;
    let c = insert_connection(&repos, connection(&co, ConnectionStatus::Linked, at(1))).await;
    let pending = insert_connection(&repos, connection(&co, ConnectionStatus::PendingAuth, at(2))).await;
    let linked: Vec<_> = repos.connections.list_linked().await.unwrap().into_iter().map(|x| x.id).collect();
    assert_eq!(linked, vec![c.id], "only linked connections are listed for the scheduler");
    assert!(!linked.contains(&pending.id));
    assert!(repos.connections.set_status_if(c.id, ConnectionStatus::Linked, ConnectionStatus::Unlinked, &[]).await.unwrap());
    assert!(repos.connections.list_linked().await.unwrap().is_empty());
    assert!(
        !repos.connections.set_status_if(c.id, ConnectionStatus::Linked, ConnectionStatus::Deauthorized, &[]).await.unwrap(),
        "the unlink stands"
    );
    assert_eq!(repos.connections.find(c.id).await.unwrap().unwrap().status, ConnectionStatus::Unlinked);
    repos.connections.set_last_sync(c.id, at_micros(9, 123_456)).await.unwrap();
    let after = repos.connections.find(c.id).await.unwrap().unwrap();
    assert_eq!((after.status, after.last_sync), (ConnectionStatus::Unlinked, Some(at_micros(9, 123_456))));
}

/// Delete only removes a connection under its own company, and reports whether it did.
pub async fn connection_delete_is_scoped_to_its_company(repos: Repositories) {
    let owner = insert_named(&repos, "Owner", 0).await;
    let other = insert_named(&repos, "Other", 1).await;
    let c = insert_connection(&repos, connection(&owner, ConnectionStatus::Linked, at(2))).await;
    let sibling = insert_connection(&repos, connection(&owner, ConnectionStatus::Linked, at(3))).await;

    assert!(!repos.connections.delete(other.id, c.id, &[]).await.unwrap(), "not through another company");
    assert_eq!(repos.connections.find(c.id).await.unwrap(), Some(c.clone()));
    assert!(repos.connections.delete(owner.id, c.id, &[]).await.unwrap());
    assert_eq!(repos.connections.find(c.id).await.unwrap(), None);
    assert!(!repos.connections.delete(owner.id, c.id, &[]).await.unwrap(), "already gone");
    assert_eq!(repos.connections.find(sibling.id).await.unwrap(), Some(sibling));
    assert!(repos.companies.get(owner.id).await.unwrap().is_some(), "the company stays");
}

/// A company's connections filter with the query language and order by `-created`, with paging.
pub async fn connection_list_filters_by_status_and_orders_newest_first(repos: Repositories) {
    let co = insert_named(&repos, "Co", 0).await;
    let other = insert_named(&repos, "Other", 1).await;
    let p1 = insert_connection(&repos, connection(&co, ConnectionStatus::PendingAuth, at(10))).await;
    insert_connection(&repos, connection(&co, ConnectionStatus::Linked, at(20))).await;
    let p3 = insert_connection(&repos, connection(&co, ConnectionStatus::PendingAuth, at(30))).await;
    let p2 = insert_connection(&repos, connection(&co, ConnectionStatus::PendingAuth, at(15))).await;
    insert_connection(&repos, connection(&other, ConnectionStatus::PendingAuth, at(40))).await;

    let q = ListQuery::from_params(&connection::QUERY_SCHEMA, None, None, Some("status=PendingAuth"), Some("-created")).unwrap();
    let page = repos.connections.list(co.id, &q).await.unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(page.items, vec![p3.clone(), p2.clone(), p1.clone()]);

    let q = ListQuery::from_params(&connection::QUERY_SCHEMA, Some(2), Some(2), Some("status=PendingAuth"), Some("-created")).unwrap();
    let page = repos.connections.list(co.id, &q).await.unwrap();
    assert_eq!((page.total, page.items), (3, vec![p1.clone()]));

    let q = ListQuery::from_params(&connection::QUERY_SCHEMA, None, None, None, None).unwrap();
    let page = repos.connections.list(co.id, &q).await.unwrap();
    assert_eq!(page.total, 4, "default: every connection of the company");
    assert_eq!(page.items.iter().map(|c| c.created).collect::<Vec<_>>(), [at(10), at(15), at(20), at(30)], "oldest first");

    let q = ListQuery::from_params(
        &connection::QUERY_SCHEMA,
        None,
        None,
        Some("status!=Linked && platformName=Stripe Test && sourceType=Commerce && integrationKey=yzth"),
        None,
    )
    .unwrap();
    assert_eq!(repos.connections.list(co.id, &q).await.unwrap().items, vec![p1, p2, p3]);
}

/// `list_for_companies` returns the connections of exactly the given companies, oldest first.
pub async fn connections_for_companies_are_listed_oldest_first(repos: Repositories) {
    let a = insert_named(&repos, "A", 0).await;
    let b = insert_named(&repos, "B", 1).await;
    let c = insert_named(&repos, "C", 2).await;
    let a3 = insert_connection(&repos, connection(&a, ConnectionStatus::Linked, at(30))).await;
    let a1 = insert_connection(&repos, connection(&a, ConnectionStatus::PendingAuth, at(10))).await;
    let b2 = insert_connection(&repos, connection(&b, ConnectionStatus::Unlinked, at(20))).await;
    insert_connection(&repos, connection(&c, ConnectionStatus::Linked, at(5))).await;

    assert_eq!(repos.connections.list_for_companies(&[a.id, b.id]).await.unwrap(), vec![a1, b2.clone(), a3]);
    assert_eq!(repos.connections.list_for_companies(&[b.id]).await.unwrap(), vec![b2]);
    assert!(repos.connections.list_for_companies(&[]).await.unwrap().is_empty());
    assert!(repos.connections.list_for_companies(&[CompanyId::new_random()]).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Integrations
// ---------------------------------------------------------------------------------------------

/// Integration settings are `None` until put, then read back exactly, and a second put replaces.
pub async fn integration_settings_round_trip_and_overwrite(repos: Repositories) {
    assert_eq!(repos.integrations.get("yzth").await.unwrap(), None);
    let first = IntegrationSettings {
        client_id: Some("ca_123".into()),
        secret_key: Some(sealed("k1", "c2VjcmV0")),
        webhook_secret: None,
        scope: Scope::ReadWrite,
        enabled: true,
        key_refused: None,
    };
    repos.integrations.put("yzth", &first).await.unwrap();
    assert_eq!(repos.integrations.get("yzth").await.unwrap(), Some(first));
    assert_eq!(repos.integrations.get("exgd").await.unwrap(), None, "keys are independent");

    let second = IntegrationSettings {
        client_id: None,
        secret_key: None,
        webhook_secret: Some(sealed("k2", "d2hzZWM=")),
        scope: Scope::ReadOnly,
        enabled: false,
        key_refused: None,
    };
    repos.integrations.put("yzth", &second).await.unwrap();
    assert_eq!(repos.integrations.get("yzth").await.unwrap(), Some(second));
    repos.integrations.put("exgd", &IntegrationSettings::default()).await.unwrap();
    assert_eq!(repos.integrations.get("exgd").await.unwrap(), Some(IntegrationSettings::default()));
}

/// A remembered event id is seen, per integration, until it is forgotten; remembering twice is
/// harmless.
pub async fn source_events_are_remembered_per_integration_and_forgotten(repos: Repositories) {
    let t0: chrono::DateTime<chrono::Utc> = "2026-12-07T00:00:00Z".parse().unwrap();
    let long_ago = t0 - chrono::Duration::days(30);
    let i = &repos.integrations;
    assert!(!i.event_seen("yzth", "evt_1").await.unwrap());
    i.remember_event("yzth", "evt_1", t0, long_ago).await.unwrap();
    i.remember_event("yzth", "evt_1", t0, long_ago).await.unwrap();
    assert!(i.event_seen("yzth", "evt_1").await.unwrap());
    assert!(!i.event_seen("exgd", "evt_1").await.unwrap(), "per integration");
    let later = t0 + chrono::Duration::days(4);
    i.remember_event("yzth", "evt_2", later, later - chrono::Duration::days(3)).await.unwrap();
    assert!(!i.event_seen("yzth", "evt_1").await.unwrap(), "forgotten after the window");
    assert!(i.event_seen("yzth", "evt_2").await.unwrap());
}

/// A refused key is recorded beside the settings, survives `put` (an operator's edit), and is
/// cleared with `None`; nothing happens for a key never configured.
pub async fn integration_key_refusal_is_kept_apart_from_the_settings(repos: Repositories) {
    use tributary_domain::model::integration::KeyRefused;
    let settings = IntegrationSettings { client_id: Some("ca_1".into()), enabled: true, ..IntegrationSettings::default() };
    repos.integrations.put("yzth", &settings).await.unwrap();
    let refused = KeyRefused { at: "2026-12-07T01:02:03.456789Z".parse().unwrap(), message: "HTTP 401 api_key_invalid".into() };
    repos.integrations.set_key_refused("yzth", Some(refused.clone())).await.unwrap();
    let got = repos.integrations.get("yzth").await.unwrap().unwrap();
    assert_eq!(got.key_refused, Some(refused.clone()));
    assert_eq!(IntegrationSettings { key_refused: None, ..got }, settings);
    repos.integrations.put("yzth", &IntegrationSettings { enabled: false, ..settings.clone() }).await.unwrap();
    assert_eq!(repos.integrations.get("yzth").await.unwrap().unwrap().key_refused, Some(refused), "an edit keeps it");
    repos.integrations.set_key_refused("yzth", None).await.unwrap();
    assert_eq!(repos.integrations.get("yzth").await.unwrap().unwrap().key_refused, None);
    repos.integrations.set_key_refused("exgd", None).await.unwrap();
    assert_eq!(repos.integrations.get("exgd").await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------------------------

/// `insert_limited` stores keys up to the limit, then refuses with Conflict.
pub async fn api_keys_insert_up_to_the_limit_then_conflict(repos: Repositories) {
    for i in 0..3 {
        repos.api_keys.insert_limited(&api_key(&format!("k{i}"), at(i)), 3).await.unwrap();
    }
    let extra = api_key("extra", at(9));
    assert_conflict(repos.api_keys.insert_limited(&extra, 3).await, "fourth key with max 3");
    assert_eq!(repos.api_keys.list().await.unwrap().len(), 3);
    assert_eq!(repos.api_keys.find_by_hash(&extra.hash).await.unwrap(), None);
    repos.api_keys.insert_limited(&extra, 4).await.unwrap();
    assert_eq!(repos.api_keys.list().await.unwrap().len(), 4, "a higher limit admits it");
}

/// A key whose hash or id is already stored is a Conflict (a unique key, per
/// `RepositoryError::Conflict`), not a storage failure, and is not stored.
pub async fn inserting_an_api_key_with_an_existing_hash_or_id_is_a_conflict(repos: Repositories) {
    let first = api_key("first", at(1));
    repos.api_keys.insert_limited(&first, 10).await.unwrap();
    let same_hash = ApiKey { hash: first.hash.clone(), ..api_key("same hash", at(2)) };
    assert_conflict(repos.api_keys.insert_limited(&same_hash, 10).await, "duplicate hash");
    let same_id = ApiKey { id: first.id, ..api_key("same id", at(3)) };
    assert_conflict(repos.api_keys.insert_limited(&same_id, 10).await, "duplicate id");
    assert_eq!(repos.api_keys.list().await.unwrap(), vec![first]);
}

/// Keys list oldest first and are found by hash.
pub async fn api_keys_list_oldest_first_and_find_by_hash(repos: Repositories) {
    let late = api_key("late", at_micros(30, 5));
    let early = api_key("early", at(10));
    let middle = ApiKey { name: None, ..api_key("middle", at(20)) };
    for k in [&late, &early, &middle] {
        repos.api_keys.insert_limited(k, 10).await.unwrap();
    }
    assert_eq!(repos.api_keys.list().await.unwrap(), vec![early.clone(), middle.clone(), late.clone()]);
    assert_eq!(repos.api_keys.find_by_hash(&middle.hash).await.unwrap(), Some(middle));
    assert_eq!(repos.api_keys.find_by_hash(&late.hash).await.unwrap(), Some(late));
    assert_eq!(repos.api_keys.find_by_hash("0".repeat(64).as_str()).await.unwrap(), None);
}

/// Delete reports NotFound for an unknown key, refuses the last key, and deletes otherwise.
pub async fn api_key_delete_reports_not_found_last_key_and_deleted(repos: Repositories) {
    assert_eq!(repos.api_keys.delete(ApiKeyId::new_random(), false).await.unwrap(), ApiKeyDeletion::NotFound);
    let a = api_key("a", at(1));
    let b = api_key("b", at(2));
    repos.api_keys.insert_limited(&a, 10).await.unwrap();
    repos.api_keys.insert_limited(&b, 10).await.unwrap();

    assert_eq!(repos.api_keys.delete(a.id, false).await.unwrap(), ApiKeyDeletion::Deleted);
    assert_eq!(repos.api_keys.delete(a.id, false).await.unwrap(), ApiKeyDeletion::NotFound, "already deleted");
    assert_eq!(repos.api_keys.delete(b.id, false).await.unwrap(), ApiKeyDeletion::LastKey);
    assert_eq!(repos.api_keys.list().await.unwrap(), vec![b.clone()], "the last key stays");
    assert_eq!(repos.api_keys.find_by_hash(&a.hash).await.unwrap(), None);
}

/// `allow_last` deletes even the last key (the CLI's escape hatch).
pub async fn api_key_delete_allow_last_removes_the_last_key(repos: Repositories) {
    let only = api_key("only", at(1));
    repos.api_keys.insert_limited(&only, 10).await.unwrap();
    assert_eq!(repos.api_keys.delete(only.id, true).await.unwrap(), ApiKeyDeletion::Deleted);
    assert!(repos.api_keys.list().await.unwrap().is_empty());
    assert_eq!(repos.api_keys.delete(only.id, true).await.unwrap(), ApiKeyDeletion::NotFound);
}

/// Many concurrent creators cannot exceed the limit together.
pub async fn concurrent_api_key_creation_never_exceeds_the_limit(repos: Repositories) {
    const MAX: usize = 5;
    let mut tasks = JoinSet::new();
    for i in 0..20 {
        let keys = repos.api_keys.clone();
        tasks.spawn(async move { keys.insert_limited(&api_key(&format!("k{i}"), at(i)), MAX).await });
    }
    let (mut ok, mut conflict) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.expect("task") {
            Ok(()) => ok += 1,
            Err(RepositoryError::Conflict(_)) => conflict += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!((ok, conflict), (MAX, 20 - MAX));
    assert_eq!(repos.api_keys.list().await.unwrap().len(), MAX);
}

/// Concurrent deletions of every key leave exactly one (repeated, since a race needs luck to show).
pub async fn concurrent_api_key_deletion_never_removes_the_last_key(repos: Repositories) {
    for round in 0..10 {
        let keys: Vec<ApiKey> = (0..3).map(|i| api_key(&format!("r{round}k{i}"), at(i))).collect();
        for k in &keys {
            repos.api_keys.insert_limited(k, 10).await.unwrap();
        }
        let mut tasks = JoinSet::new();
        for k in &keys {
            let (repo, id) = (repos.api_keys.clone(), k.id);
            tasks.spawn(async move { repo.delete(id, false).await });
        }
        let mut outcomes = Vec::new();
        while let Some(r) = tasks.join_next().await {
            outcomes.push(r.expect("task").expect("delete"));
        }
        assert_eq!(outcomes.iter().filter(|o| **o == ApiKeyDeletion::Deleted).count(), 2, "round {round}: {outcomes:?}");
        assert_eq!(outcomes.iter().filter(|o| **o == ApiKeyDeletion::LastKey).count(), 1, "round {round}: {outcomes:?}");
        let left = repos.api_keys.list().await.unwrap();
        assert_eq!(left.len(), 1, "round {round}");
        assert_eq!(repos.api_keys.delete(left[0].id, true).await.unwrap(), ApiKeyDeletion::Deleted);
    }
}

// ---------------------------------------------------------------------------------------------
// Profile and sync settings
// ---------------------------------------------------------------------------------------------

/// The profile is `None` before the first put, then reads back exactly, and a put replaces it.
pub async fn profile_is_none_until_put_then_round_trips(repos: Repositories) {
    assert_eq!(repos.profile.get_profile().await.unwrap(), None);
    let p = Profile {
        name: "Acme \"Platform\" ✓".into(),
        logo_url: Some("https://example.com/logo.png".into()),
        icon_url: None,
        redirect_url: "https://example.com/done?company={companyId}".into(),
        white_list_urls: vec!["https://a.example".into(), "https://b.example".into()],
    };
    repos.profile.put_profile(&p).await.unwrap();
    assert_eq!(repos.profile.get_profile().await.unwrap(), Some(p));
    repos.profile.put_profile(&Profile::default()).await.unwrap();
    assert_eq!(repos.profile.get_profile().await.unwrap(), Some(Profile::default()));
}

/// The client id is created once and never changes, whatever else is stored.
pub async fn client_id_is_stable_across_calls(repos: Repositories) {
    repos.profile.put_profile(&Profile::default()).await.unwrap();
    let first = repos.profile.client_id().await.unwrap();
    assert_eq!(repos.profile.client_id().await.unwrap(), first);
    repos.profile.put_profile(&Profile { name: "Renamed".into(), ..Profile::default() }).await.unwrap();
    repos.profile.put_sync_settings(&default_settings()).await.unwrap();
    assert_eq!(repos.profile.client_id().await.unwrap(), first);
    assert_ne!(first, uuid::Uuid::nil());
}

/// Client sync settings are `None` until put, then read back exactly; the profile is untouched.
pub async fn sync_settings_round_trip(repos: Repositories) {
    assert_eq!(repos.profile.get_sync_settings().await.unwrap(), None);
    let defaults = default_settings();
    repos.profile.put_sync_settings(&defaults).await.unwrap();
    assert_eq!(repos.profile.get_sync_settings().await.unwrap(), Some(defaults));
    assert_eq!(repos.profile.get_profile().await.unwrap(), None, "setting sync settings creates no profile");

    let custom = vec![sync_setting(DataType::Payments, 12, Some(at_micros(0, 250))), sync_setting(DataType::Customers, 48, None)];
    repos.profile.put_sync_settings(&custom).await.unwrap();
    assert_eq!(repos.profile.get_sync_settings().await.unwrap(), Some(custom.clone()));
    repos.profile.put_profile(&Profile::default()).await.unwrap();
    assert_eq!(repos.profile.get_sync_settings().await.unwrap(), Some(custom), "putting the profile keeps sync settings");
    repos.profile.put_sync_settings(&[]).await.unwrap();
    assert_eq!(repos.profile.get_sync_settings().await.unwrap(), Some(Vec::new()), "empty is not None");
}

/// A company's overrides round-trip, are per company, and `None` clears them.
pub async fn company_sync_settings_round_trip_and_clear(repos: Repositories) {
    let a = insert_named(&repos, "A", 0).await;
    let b = insert_named(&repos, "B", 1).await;
    assert_eq!(repos.profile.get_company_sync_settings(a.id).await.unwrap(), None);

    let first = vec![sync_setting(DataType::Orders, 6, Some(at_micros(5, 7)))];
    repos.profile.put_company_sync_settings(a.id, Some(first.clone())).await.unwrap();
    assert_eq!(repos.profile.get_company_sync_settings(a.id).await.unwrap(), Some(first));
    assert_eq!(repos.profile.get_company_sync_settings(b.id).await.unwrap(), None);

    let second = vec![sync_setting(DataType::Disputes, 1, None), sync_setting(DataType::Locations, 2, None)];
    repos.profile.put_company_sync_settings(a.id, Some(second.clone())).await.unwrap();
    assert_eq!(repos.profile.get_company_sync_settings(a.id).await.unwrap(), Some(second));

    repos.profile.put_company_sync_settings(a.id, None).await.unwrap();
    assert_eq!(repos.profile.get_company_sync_settings(a.id).await.unwrap(), None);
    repos.profile.put_company_sync_settings(a.id, None).await.unwrap();
    assert_eq!(repos.profile.get_company_sync_settings(a.id).await.unwrap(), None, "clearing twice is fine");
}

/// Storing overrides for a company that does not exist is NotFound.
pub async fn company_sync_settings_for_a_missing_company_are_not_found(repos: Repositories) {
    let ghost = CompanyId::new_random();
    assert_not_found(repos.profile.put_company_sync_settings(ghost, Some(default_settings())).await, "store for missing company");
    assert_eq!(repos.profile.get_company_sync_settings(ghost).await.unwrap(), None);
}

/// Clearing overrides of a company that does not exist is NotFound too, as the port documents
/// (`put_company_sync_settings`: "NotFound if the company does not exist", for `Some` and `None`).
pub async fn clearing_company_sync_settings_for_a_missing_company_is_not_found(repos: Repositories) {
    assert_not_found(repos.profile.put_company_sync_settings(CompanyId::new_random(), None).await, "clear for missing company");
}

// ---------------------------------------------------------------------------------------------
// Sealed secrets
// ---------------------------------------------------------------------------------------------

struct SecretFixture {
    grant_conn: Connection,
    plain_conn: Connection,
}

async fn secrets_fixture(repos: &Repositories) -> SecretFixture {
    repos
        .integrations
        .put(
            "yzth",
            &IntegrationSettings {
                client_id: Some("ca_test".into()),
                secret_key: Some(sealed("old", "sk-yzth")),
                webhook_secret: Some(sealed("old", "wh-yzth")),
                scope: Scope::ReadOnly,
                enabled: true,
                key_refused: None,
            },
        )
        .await
        .unwrap();
    repos
        .integrations
        .put("exgd", &IntegrationSettings { secret_key: Some(sealed("old", "sk-exgd")), ..IntegrationSettings::default() })
        .await
        .unwrap();
    let co = insert_named(repos, "Co", 0).await;
    let grant_conn =
        insert_connection(repos, Connection { grant: Some(sealed("old", "grant-1")), ..connection(&co, ConnectionStatus::Linked, at(1)) })
            .await;
    let plain_conn = insert_connection(repos, connection(&co, ConnectionStatus::PendingAuth, at(2))).await;
    SecretFixture { grant_conn, plain_conn }
}

/// `list_sealed` lists integration secret keys, webhook secrets and connection grants, and only
/// the slots that hold a secret.
pub async fn list_sealed_lists_integration_secrets_webhook_secrets_and_grants(repos: Repositories) {
    assert!(repos.secrets.list_sealed().await.unwrap().is_empty());
    let f = secrets_fixture(&repos).await;
    let listed = by_slot(repos.secrets.list_sealed().await.unwrap());
    let expected: BTreeMap<String, SealedSecret> = [
        (SecretSlot::IntegrationSecretKey("yzth".into()), sealed("old", "sk-yzth")),
        (SecretSlot::IntegrationWebhookSecret("yzth".into()), sealed("old", "wh-yzth")),
        (SecretSlot::IntegrationSecretKey("exgd".into()), sealed("old", "sk-exgd")),
        (SecretSlot::ConnectionGrant(f.grant_conn.id), sealed("old", "grant-1")),
    ]
    .iter()
    .map(|(slot, s)| (slot_key(slot), s.clone()))
    .collect();
    assert_eq!(listed, expected);
    assert!(!listed.contains_key(&slot_key(&SecretSlot::ConnectionGrant(f.plain_conn.id))), "no grant, no slot");
}

/// `replace_sealed` rewrites every listed slot, and the owners read the new values.
pub async fn replace_sealed_replaces_every_slot(repos: Repositories) {
    let f = secrets_fixture(&repos).await;
    let rotated: Vec<(SecretSlot, SealedSecret)> = repos
        .secrets
        .list_sealed()
        .await
        .unwrap()
        .into_iter()
        .map(|(slot, s)| (slot, sealed("new", &format!("re-{}", s.ciphertext))))
        .collect();
    assert_eq!(rotated.len(), 4);
    repos.secrets.replace_sealed(&rotated).await.unwrap();

    assert_eq!(by_slot(repos.secrets.list_sealed().await.unwrap()), by_slot(rotated));
    let yzth = repos.integrations.get("yzth").await.unwrap().unwrap();
    assert_eq!(yzth.secret_key, Some(sealed("new", "re-sk-yzth")));
    assert_eq!(yzth.webhook_secret, Some(sealed("new", "re-wh-yzth")));
    assert_eq!(yzth.client_id.as_deref(), Some("ca_test"), "other settings untouched");
    let conn = repos.connections.find(f.grant_conn.id).await.unwrap().unwrap();
    assert_eq!(conn.grant, Some(sealed("new", "re-grant-1")));
    assert_eq!(conn.status, ConnectionStatus::Linked);
    repos.secrets.replace_sealed(&[]).await.unwrap();
}

/// A batch with a slot that no longer exists is NotFound and changes nothing at all.
pub async fn replace_sealed_is_all_or_nothing(repos: Repositories) {
    let f = secrets_fixture(&repos).await;
    let co = repos.companies.get(f.grant_conn.company_id).await.unwrap().unwrap();
    let gone = insert_connection(
        &repos,
        Connection { grant: Some(sealed("old", "grant-gone")), ..connection(&co, ConnectionStatus::Linked, at(3)) },
    )
    .await;
    let before = repos.secrets.list_sealed().await.unwrap();
    assert!(repos.connections.delete(co.id, gone.id, &[]).await.unwrap());
    let before_without_gone: Vec<_> = before.into_iter().filter(|(slot, _)| *slot != SecretSlot::ConnectionGrant(gone.id)).collect();

    let batch = vec![
        (SecretSlot::IntegrationSecretKey("yzth".into()), sealed("new", "a")),
        (SecretSlot::ConnectionGrant(f.grant_conn.id), sealed("new", "b")),
        (SecretSlot::ConnectionGrant(gone.id), sealed("new", "c")),
        (SecretSlot::IntegrationWebhookSecret("yzth".into()), sealed("new", "d")),
    ];
    assert_not_found(repos.secrets.replace_sealed(&batch).await, "batch with a deleted connection");
    assert_eq!(by_slot(repos.secrets.list_sealed().await.unwrap()), by_slot(before_without_gone.clone()), "nothing changed");

    let unknown_integration = vec![
        (SecretSlot::ConnectionGrant(f.grant_conn.id), sealed("new", "b")),
        (SecretSlot::IntegrationSecretKey("abcd".into()), sealed("new", "x")),
    ];
    assert_not_found(repos.secrets.replace_sealed(&unknown_integration).await, "batch with an unknown integration");
    assert_eq!(by_slot(repos.secrets.list_sealed().await.unwrap()), by_slot(before_without_gone));
}

// ---------------------------------------------------------------------------------------------
// OAuth states
// ---------------------------------------------------------------------------------------------

fn oauth_state(conn: &Connection, nonce: &str, expires: DateTime<Utc>) -> OAuthState {
    OAuthState { nonce: nonce.into(), company_id: conn.company_id, connection_id: conn.id, expires }
}

/// A company with one pending connection, for the linking and pull-operation behaviours.
async fn company_with_connection(repos: &Repositories, name: &str, created_seconds: i64) -> (Company, Connection) {
    let co = insert_named(repos, name, created_seconds).await;
    let conn = insert_connection(repos, connection(&co, ConnectionStatus::PendingAuth, at(created_seconds + 1))).await;
    (co, conn)
}

/// A stored state is returned by the first `consume` (microseconds intact, expired or not) and
/// never again.
pub async fn oauth_state_is_consumed_exactly_once(repos: Repositories) {
    let (_, conn) = company_with_connection(&repos, "Co", 0).await;
    let live = oauth_state(&conn, "nonce-live", at_micros(600, 123_456));
    let stale = oauth_state(&conn, "nonce-stale", at(-600));
    repos.oauth_states.insert(&live).await.unwrap();
    repos.oauth_states.insert(&stale).await.unwrap();

    assert_eq!(repos.oauth_states.consume("nonce-live").await.unwrap(), Some(live));
    assert_eq!(repos.oauth_states.consume("nonce-live").await.unwrap(), None, "a second consume finds nothing");
    assert_eq!(repos.oauth_states.consume("nonce-stale").await.unwrap(), Some(stale), "expired states are returned too");
    assert_eq!(repos.oauth_states.consume("nonce-stale").await.unwrap(), None);
}

/// Consuming a nonce that was never stored is `None`.
pub async fn consuming_an_unknown_nonce_is_none(repos: Repositories) {
    assert_eq!(repos.oauth_states.consume("never-issued").await.unwrap(), None);
    let (_, conn) = company_with_connection(&repos, "Co", 0).await;
    repos.oauth_states.insert(&oauth_state(&conn, "issued", at(600))).await.unwrap();
    assert_eq!(repos.oauth_states.consume("ISSUED").await.unwrap(), None, "nonces are exact");
    assert_eq!(repos.oauth_states.consume("").await.unwrap(), None);
    assert!(repos.oauth_states.consume("issued").await.unwrap().is_some(), "the stored one is untouched");
}

/// Of concurrent consumers of one nonce, exactly one gets the state (repeated, since a race needs
/// luck to show).
pub async fn concurrent_consumes_of_one_state_return_it_exactly_once(repos: Repositories) {
    let (_, conn) = company_with_connection(&repos, "Co", 0).await;
    for round in 0..10 {
        let state = oauth_state(&conn, &format!("race-{round}"), at(600));
        repos.oauth_states.insert(&state).await.unwrap();
        let mut tasks = JoinSet::new();
        for _ in 0..4 {
            let (states, nonce) = (repos.oauth_states.clone(), state.nonce.clone());
            tasks.spawn(async move { states.consume(&nonce).await });
        }
        let mut got = Vec::new();
        while let Some(r) = tasks.join_next().await {
            if let Some(s) = r.expect("task").expect("consume") {
                got.push(s);
            }
        }
        assert_eq!(got, vec![state], "round {round}: exactly one consumer gets the state");
    }
}

/// `purge_expired` deletes the states that expired before `now` (not one expiring at `now`) and
/// reports how many.
pub async fn purge_expired_removes_only_expired_states(repos: Repositories) {
    let (_, conn) = company_with_connection(&repos, "Co", 0).await;
    let (_, other) = company_with_connection(&repos, "Other", 5).await;
    let old = oauth_state(&conn, "old", at(10));
    let older = oauth_state(&other, "older", at_micros(19, 999_999));
    let boundary = oauth_state(&conn, "boundary", at(20));
    let fresh = oauth_state(&other, "fresh", at(30));
    for s in [&old, &older, &boundary, &fresh] {
        repos.oauth_states.insert(s).await.unwrap();
    }

    assert_eq!(repos.oauth_states.purge_expired(at(20)).await.unwrap(), 2);
    assert_eq!(repos.oauth_states.purge_expired(at(20)).await.unwrap(), 0, "nothing left to purge");
    assert_eq!(repos.oauth_states.consume("old").await.unwrap(), None);
    assert_eq!(repos.oauth_states.consume("older").await.unwrap(), None);
    assert_eq!(repos.oauth_states.consume("boundary").await.unwrap(), Some(boundary));
    assert_eq!(repos.oauth_states.consume("fresh").await.unwrap(), Some(fresh));
}

/// A state for a connection that does not exist is NotFound and is not stored.
pub async fn oauth_state_for_a_missing_connection_is_not_found(repos: Repositories) {
    let co = insert_named(&repos, "Co", 0).await;
    let ghost = connection(&co, ConnectionStatus::PendingAuth, at(1));
    assert_not_found(repos.oauth_states.insert(&oauth_state(&ghost, "ghost", at(600))).await, "state of missing connection");
    assert_eq!(repos.oauth_states.consume("ghost").await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// Pull operations
// ---------------------------------------------------------------------------------------------

fn pull_op(conn: &Connection, data_type: DataType, status: DatasetStatus, requested: DateTime<Utc>, progress: i32) -> PullOperation {
    PullOperation {
        id: PullOperationId::new_random(),
        company_id: conn.company_id,
        connection_id: conn.id,
        data_type,
        status,
        status_description: None,
        error_message: None,
        requested,
        completed: None,
        progress,
    }
}

fn dataset_query(page: i64, page_size: i64, query: Option<&str>, order_by: Option<&str>) -> ListQuery {
    ListQuery::from_params(&pull::QUERY_SCHEMA, Some(page), Some(page_size), query, order_by)
        .unwrap_or_else(|e| panic!("query {query:?} / orderBy {order_by:?}: {e}"))
}

async fn list_ops(repos: &Repositories, company: CompanyId, query: &ListQuery) -> Page<PullOperation> {
    repos.pull_operations.list(company, query).await.unwrap_or_else(|e| panic!("list pull operations {query:?}: {e}"))
}

/// Ids of a company's operations matching `query`, in the default order (requested, then id).
async fn ops_matching(repos: &Repositories, company: CompanyId, query: &str) -> Vec<PullOperationId> {
    let page = list_ops(repos, company, &dataset_query(1, 100, Some(query), None)).await;
    assert_eq!(page.total, page.items.len() as u64, "total counts what matched for {query}");
    page.items.into_iter().map(|o| o.id).collect()
}

fn ids(ops: &[&PullOperation]) -> Vec<PullOperationId> {
    ops.iter().map(|o| o.id).collect()
}

/// Operations read back exactly as stored, and only under their own company.
pub async fn pull_operations_round_trip_and_get_is_scoped_to_the_company(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let (other, _) = company_with_connection(&repos, "Other", 5).await;
    let done = PullOperation {
        status_description: Some("Complete — \"all\" ✓".into()),
        completed: Some(at_micros(70, 654_321)),
        ..pull_op(&conn, DataType::Customers, DatasetStatus::Complete, at_micros(60, 123_456), 100)
    };
    let failed = PullOperation {
        error_message: Some("the platform said no".into()),
        ..pull_op(&conn, DataType::Payments, DatasetStatus::FetchError, at(61), 42)
    };
    let queued = pull_op(&conn, DataType::CompanyInfo, DatasetStatus::Queued, at(62), 0);
    repos.pull_operations.insert(&[done.clone(), failed.clone(), queued.clone()]).await.unwrap();
    repos.pull_operations.insert(&[]).await.unwrap();

    for op in [&done, &failed, &queued] {
        assert_eq!(repos.pull_operations.get(co.id, op.id).await.unwrap().as_ref(), Some(op));
        assert_eq!(repos.pull_operations.get(other.id, op.id).await.unwrap(), None, "another company's operation is not found");
    }
    assert_eq!(repos.pull_operations.get(co.id, PullOperationId::new_random()).await.unwrap(), None);
    assert_conflict(repos.pull_operations.insert(std::slice::from_ref(&queued)).await, "duplicate pull operation id");
}

/// A batch with an operation on a missing connection is NotFound and stores none of the batch.
pub async fn pull_operation_insert_is_all_or_nothing(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let ghost = connection(&co, ConnectionStatus::Linked, at(2));
    let batch = vec![
        pull_op(&conn, DataType::Customers, DatasetStatus::Queued, at(10), 0),
        pull_op(&ghost, DataType::Orders, DatasetStatus::Queued, at(11), 0),
        pull_op(&conn, DataType::Products, DatasetStatus::Queued, at(12), 0),
    ];
    assert_not_found(repos.pull_operations.insert(&batch).await, "batch with a missing connection");
    for op in &batch {
        assert_eq!(repos.pull_operations.get(co.id, op.id).await.unwrap(), None);
    }
    assert_eq!(list_ops(&repos, co.id, &ListQuery::default()).await.total, 0);
}

/// Pages slice the default order (requested, then id), with the exact total on every page; only
/// the company's own operations are listed.
pub async fn pull_operation_list_pages_in_requested_then_id_order(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let (_, other_conn) = company_with_connection(&repos, "Other", 5).await;
    let mut all = Vec::new();
    for (i, requested) in [40, 10, 20, 0, 20, 40, 50].into_iter().enumerate() {
        all.push(pull_op(&conn, DataType::ALL[i], DatasetStatus::Queued, at(requested), 0));
    }
    repos.pull_operations.insert(&all).await.unwrap();
    repos.pull_operations.insert(&[pull_op(&other_conn, DataType::Orders, DatasetStatus::Queued, at(1), 0)]).await.unwrap();
    all.sort_by_key(|o| (o.requested, o.id.to_string()));

    let whole = list_ops(&repos, co.id, &dataset_query(1, 100, None, None)).await;
    assert_eq!(whole.total, 7);
    assert_eq!(whole.items, all);
    let default = list_ops(&repos, co.id, &ListQuery::default()).await;
    assert_eq!(default.items, all, "no orderBy at all is the same order");

    let p1 = list_ops(&repos, co.id, &dataset_query(1, 3, None, None)).await;
    let p2 = list_ops(&repos, co.id, &dataset_query(2, 3, None, None)).await;
    let p3 = list_ops(&repos, co.id, &dataset_query(3, 3, None, None)).await;
    let p4 = list_ops(&repos, co.id, &dataset_query(4, 3, None, None)).await;
    assert_eq!((p1.total, p2.total, p3.total, p4.total), (7, 7, 7, 7), "total is exact on every page");
    assert_eq!(p1.items, all[0..3]);
    assert_eq!(p2.items, all[3..6]);
    assert_eq!(p3.items, all[6..7]);
    assert!(p4.items.is_empty(), "a page past the end is empty");
    assert!(p1.has_next() && p2.has_next() && !p3.has_next());
}

/// `orderBy=-requested` lists newest first with descending ids on ties; `progress` orders
/// numerically.
pub async fn pull_operation_list_orders_by_requested_descending_and_by_progress(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let a = pull_op(&conn, DataType::Customers, DatasetStatus::Queued, at(10), 9);
    let b = pull_op(&conn, DataType::Orders, DatasetStatus::Queued, at(30), 100);
    let c = pull_op(&conn, DataType::Products, DatasetStatus::Queued, at(20), 10);
    let d = pull_op(&conn, DataType::Payments, DatasetStatus::Queued, at(20), 55);
    repos.pull_operations.insert(&[a.clone(), b.clone(), c.clone(), d.clone()]).await.unwrap();
    let (first_tie, second_tie) = if c.id.to_string() < d.id.to_string() { (&c, &d) } else { (&d, &c) };

    let desc = list_ops(&repos, co.id, &dataset_query(1, 100, None, Some("-requested"))).await;
    assert_eq!(desc.items, vec![b.clone(), second_tie.clone(), first_tie.clone(), a.clone()]);
    let page2 = list_ops(&repos, co.id, &dataset_query(2, 3, None, Some("-requested"))).await;
    assert_eq!((page2.total, page2.items), (4, vec![a.clone()]));

    let by_progress = list_ops(&repos, co.id, &dataset_query(1, 100, None, Some("progress"))).await;
    assert_eq!(ids(&by_progress.items.iter().collect::<Vec<_>>()), ids(&[&a, &c, &d, &b]), "9 < 10 < 55 < 100, as numbers");
    let by_progress_desc = list_ops(&repos, co.id, &dataset_query(1, 100, None, Some("-progress"))).await;
    assert_eq!(ids(&by_progress_desc.items.iter().collect::<Vec<_>>()), ids(&[&b, &d, &c, &a]));
}

/// The Dataset query language: `status`, `dataType`, numeric `progress` on an integer column,
/// the computed `isErrored`, text and date fields; `isCompleted` is not a Dataset property.
pub async fn pull_operation_filters_by_status_data_type_progress_and_is_errored(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let (other, other_conn) = company_with_connection(&repos, "Other", 5).await;
    let queued = pull_op(&conn, DataType::Customers, DatasetStatus::Queued, at(10), 0);
    let fetching = pull_op(&conn, DataType::Orders, DatasetStatus::Fetching, at(11), 50);
    let complete = PullOperation {
        completed: Some(at(100)),
        status_description: Some("All Done".into()),
        ..pull_op(&conn, DataType::Customers, DatasetStatus::Complete, at(12), 100)
    };
    let fetch_error = PullOperation {
        error_message: Some("Rate limited by Stripe".into()),
        ..pull_op(&conn, DataType::Payments, DatasetStatus::FetchError, at(13), 51)
    };
    let auth_error = pull_op(&conn, DataType::Products, DatasetStatus::AuthError, at(14), 9);
    let cancelled = pull_op(&conn, DataType::Disputes, DatasetStatus::Cancelled, at(15), 75);
    let not_supported = pull_op(&conn, DataType::Locations, DatasetStatus::NotSupported, at(16), 100);
    repos
        .pull_operations
        .insert(&[
            queued.clone(),
            fetching.clone(),
            complete.clone(),
            fetch_error.clone(),
            auth_error.clone(),
            cancelled.clone(),
            not_supported.clone(),
        ])
        .await
        .unwrap();
    let foreign = pull_op(&other_conn, DataType::Customers, DatasetStatus::Queued, at(10), 90);
    repos.pull_operations.insert(std::slice::from_ref(&foreign)).await.unwrap();

    let q = |query: &'static str| ops_matching(&repos, co.id, query);
    assert_eq!(q("status=Queued").await, ids(&[&queued]));
    assert_eq!(q("status=queued").await, ids(&[&queued]), "enum values resolve case-insensitively");
    assert_eq!(q("status!=Queued && status!=Complete").await, ids(&[&fetching, &fetch_error, &auth_error, &cancelled, &not_supported]));
    assert_eq!(q("dataType=commerce-customers").await, ids(&[&queued, &complete]));
    assert_eq!(q("dataType~PAYMENTS").await, ids(&[&fetch_error]));

    assert_eq!(q("progress>50").await, ids(&[&complete, &fetch_error, &cancelled, &not_supported]));
    assert_eq!(q("progress>=50").await, ids(&[&fetching, &complete, &fetch_error, &cancelled, &not_supported]));
    assert_eq!(q("progress=100").await, ids(&[&complete, &not_supported]));
    assert_eq!(q("progress<10").await, ids(&[&queued, &auth_error]), "9 < 10 numerically, not as text");
    assert_eq!(q("progress>50.5 && progress<75.0").await, ids(&[&fetch_error]), "decimals compare with integers");
    assert_eq!(q("progress!=100").await, ids(&[&queued, &fetching, &fetch_error, &auth_error, &cancelled]));

    assert_eq!(q("isErrored=true").await, ids(&[&fetch_error, &auth_error]));
    assert_eq!(q("isErrored=false").await, ids(&[&queued, &fetching, &complete, &cancelled, &not_supported]));
    assert_eq!(q("isErrored!=true").await, q("isErrored=false").await);
    assert_eq!(q("isErrored=true || status=Cancelled").await, ids(&[&fetch_error, &auth_error, &cancelled]));
    assert_eq!(q("isErrored=false && progress>50").await, ids(&[&complete, &cancelled, &not_supported]));

    assert_eq!(q("statusDescription~all done").await, ids(&[&complete]));
    assert_eq!(q("errorMessage~stripe").await, ids(&[&fetch_error]));
    assert_eq!(q("completed>2026-01-01").await, ids(&[&complete]));
    assert_eq!(q("requested>=2026-01-01T00:00:15Z").await, ids(&[&cancelled, &not_supported]));
    let conn_query = format!("connectionId={} && companyId={}", conn.id, co.id);
    assert_eq!(ops_matching(&repos, co.id, &conn_query).await.len(), 7);
    assert_eq!(ops_matching(&repos, co.id, &format!("id={}", queued.id)).await, ids(&[&queued]));
    assert_eq!(ops_matching(&repos, other.id, "status=Queued").await, ids(&[&foreign]), "each company sees its own");

    let errored_first = list_ops(&repos, co.id, &dataset_query(1, 2, Some("progress>0"), Some("-isErrored"))).await;
    assert_eq!(errored_first.total, 6);
    assert!(errored_first.items.iter().all(|o| o.status.is_errored()), "-isErrored puts errored operations first");

    for rejected in ["isCompleted=true", "isCompleted=false"] {
        let err = ListQuery::from_params(&pull::QUERY_SCHEMA, None, None, Some(rejected), None)
            .expect_err("isCompleted is not a Dataset property");
        assert!(err.to_string().contains("isCompleted"), "{rejected}: {err}");
    }
    assert!(ListQuery::from_params(&pull::QUERY_SCHEMA, None, None, None, Some("isCompleted")).is_err());
}

/// Deleting a connection removes its OAuth states and pull operations, and no one else's.
pub async fn deleting_a_connection_removes_its_states_and_pull_operations(repos: Repositories) {
    let (co, doomed) = company_with_connection(&repos, "Co", 0).await;
    let sibling = insert_connection(&repos, connection(&co, ConnectionStatus::Linked, at(3))).await;
    repos.oauth_states.insert(&oauth_state(&doomed, "doomed", at(600))).await.unwrap();
    repos.oauth_states.insert(&oauth_state(&sibling, "sibling", at(600))).await.unwrap();
    let doomed_op = pull_op(&doomed, DataType::Customers, DatasetStatus::Queued, at(10), 0);
    let sibling_op = pull_op(&sibling, DataType::Customers, DatasetStatus::Queued, at(11), 0);
    repos.pull_operations.insert(&[doomed_op.clone(), sibling_op.clone()]).await.unwrap();

    assert!(repos.connections.delete(co.id, doomed.id, &[]).await.unwrap());

    assert_eq!(repos.oauth_states.consume("doomed").await.unwrap(), None);
    assert_eq!(repos.pull_operations.get(co.id, doomed_op.id).await.unwrap(), None);
    assert_eq!(list_ops(&repos, co.id, &ListQuery::default()).await.items, vec![sibling_op.clone()]);
    assert_eq!(repos.pull_operations.get(co.id, sibling_op.id).await.unwrap(), Some(sibling_op));
    assert!(repos.oauth_states.consume("sibling").await.unwrap().is_some());
}

/// Deleting a company removes the states and pull operations of its connections.
pub async fn deleting_a_company_removes_its_states_and_pull_operations(repos: Repositories) {
    let (doomed, doomed_conn) = company_with_connection(&repos, "Doomed", 0).await;
    let (kept, kept_conn) = company_with_connection(&repos, "Kept", 5).await;
    repos.oauth_states.insert(&oauth_state(&doomed_conn, "doomed", at(600))).await.unwrap();
    repos.oauth_states.insert(&oauth_state(&kept_conn, "kept", at(600))).await.unwrap();
    let doomed_op = pull_op(&doomed_conn, DataType::Orders, DatasetStatus::Complete, at(10), 100);
    let kept_op = pull_op(&kept_conn, DataType::Orders, DatasetStatus::Complete, at(10), 100);
    repos.pull_operations.insert(&[doomed_op.clone(), kept_op.clone()]).await.unwrap();

    assert!(repos.companies.delete(doomed.id, &[]).await.unwrap());

    assert_eq!(repos.oauth_states.consume("doomed").await.unwrap(), None);
    assert_eq!(repos.pull_operations.get(doomed.id, doomed_op.id).await.unwrap(), None);
    assert_eq!(list_ops(&repos, doomed.id, &ListQuery::default()).await.total, 0);
    assert_eq!(repos.pull_operations.get(kept.id, kept_op.id).await.unwrap(), Some(kept_op));
    assert!(repos.oauth_states.consume("kept").await.unwrap().is_some());
}

// ---------------------------------------------------------------------------------------------
// Linking
// ---------------------------------------------------------------------------------------------

/// `save_linked` saves the connection's new state (as `update` does) and its queued operations.
pub async fn save_linked_writes_the_connection_and_its_operations_together(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let linked = Connection {
        status: ConnectionStatus::Linked,
        source_account: Some("acct_1".into()),
        grant: Some(sealed("key-1", "Z3JhbnQ=")),
        last_sync: Some(at_micros(30, 7)),
        ..conn.clone()
    };
    let queued: Vec<PullOperation> = [DataType::CompanyInfo, DataType::Customers, DataType::Payments]
        .into_iter()
        .map(|dt| pull_op(&conn, dt, DatasetStatus::Queued, at(20), 0))
        .collect();

    repos.connections.save_linked(&linked, &queued, &[]).await.unwrap();

    assert_eq!(repos.connections.get(co.id, conn.id).await.unwrap(), Some(linked.clone()));
    let mut expected = queued.clone();
    expected.sort_by_key(|o| o.id.to_string());
    assert_eq!(list_ops(&repos, co.id, &ListQuery::default()).await.items, expected);

    // Nothing to queue is fine too.
    let relinked = Connection { source_account: Some("acct_2".into()), ..linked };
    repos.connections.save_linked(&relinked, &[], &[]).await.unwrap();
    assert_eq!(repos.connections.find(conn.id).await.unwrap(), Some(relinked));
    assert_eq!(list_ops(&repos, co.id, &ListQuery::default()).await.total, 3);
}

/// `save_linked` of a missing connection is NotFound and writes no operation; a batch that
/// cannot be stored leaves the connection unchanged too (one transaction).
pub async fn save_linked_for_a_missing_connection_is_not_found_and_writes_nothing(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let ghost = connection(&co, ConnectionStatus::Linked, at(2));
    let ghost_ops = vec![pull_op(&ghost, DataType::Customers, DatasetStatus::Queued, at(10), 0)];
    assert_not_found(repos.connections.save_linked(&ghost, &ghost_ops, &[]).await, "save_linked of a missing connection");
    assert_eq!(repos.connections.find(ghost.id).await.unwrap(), None);
    assert_eq!(repos.pull_operations.get(co.id, ghost_ops[0].id).await.unwrap(), None);

    // An operation on the real connection with one on a missing connection: nothing at all.
    let linked = Connection { status: ConnectionStatus::Linked, source_account: Some("acct_1".into()), ..conn.clone() };
    let mixed = vec![pull_op(&conn, DataType::Customers, DatasetStatus::Queued, at(10), 0), ghost_ops[0].clone()];
    assert_not_found(repos.connections.save_linked(&linked, &mixed, &[]).await, "save_linked with an operation on a missing connection");
    assert_eq!(repos.connections.find(conn.id).await.unwrap(), Some(conn), "the connection update was rolled back");
    assert_eq!(list_ops(&repos, co.id, &ListQuery::default()).await.total, 0);
}

/// `find_by_source_account` returns the connections of one platform key linked to one account,
/// oldest first, whatever their company or status.
pub async fn find_by_source_account_matches_platform_key_and_account(repos: Repositories) {
    let a = insert_named(&repos, "A", 0).await;
    let b = insert_named(&repos, "B", 1).await;
    let with = |co: &Company, key: &str, account: Option<&str>, status: ConnectionStatus, created: i64| Connection {
        platform_key: key.parse().expect("built-in key"),
        source_account: account.map(str::to_owned),
        ..connection(co, status, at(created))
    };
    let later = insert_connection(&repos, with(&a, "yzth", Some("acct_1"), ConnectionStatus::Linked, 30)).await;
    let earlier = insert_connection(&repos, with(&b, "yzth", Some("acct_1"), ConnectionStatus::Unlinked, 10)).await;
    insert_connection(&repos, with(&a, "exgd", Some("acct_1"), ConnectionStatus::Linked, 20)).await;
    insert_connection(&repos, with(&a, "yzth", Some("acct_2"), ConnectionStatus::Linked, 25)).await;
    insert_connection(&repos, with(&b, "yzth", None, ConnectionStatus::PendingAuth, 26)).await;

    assert_eq!(repos.connections.find_by_source_account("yzth", "acct_1").await.unwrap(), vec![earlier, later]);
    let live = repos.connections.find_by_source_account("exgd", "acct_1").await.unwrap();
    assert_eq!(live.len(), 1, "another key's connections are not included");
    assert_eq!(live[0].platform_key.as_str(), "exgd");
    assert!(repos.connections.find_by_source_account("yzth", "acct_3").await.unwrap().is_empty());
    assert!(repos.connections.find_by_source_account("exgd", "acct_2").await.unwrap().is_empty());
    assert!(repos.connections.find_by_source_account("yzth", "ACCT_1").await.unwrap().is_empty(), "accounts are exact");
}

// ---------------------------------------------------------------------------------------------
// Pull operations: progress, the worker's queue and data status
// ---------------------------------------------------------------------------------------------

/// `update` saves status, description, error, completion and progress (and nothing else); an
/// unknown operation is NotFound and nothing is stored.
pub async fn pull_operation_update_round_trips_and_a_missing_one_is_not_found(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let op = pull_op(&conn, DataType::Customers, DatasetStatus::Queued, at_micros(10, 5), 0);
    let sibling = pull_op(&conn, DataType::Payments, DatasetStatus::Queued, at(11), 0);
    repos.pull_operations.insert(&[op.clone(), sibling.clone()]).await.unwrap();

    let fetching =
        PullOperation { status: DatasetStatus::Fetching, status_description: Some("Page 3 — ✓".into()), progress: 40, ..op.clone() };
    repos.pull_operations.update(&fetching, &[]).await.unwrap();
    assert_eq!(repos.pull_operations.get(co.id, op.id).await.unwrap(), Some(fetching.clone()));

    let failed = PullOperation {
        status: DatasetStatus::FetchError,
        status_description: None,
        error_message: Some("Stripe said \"no\"".into()),
        completed: Some(at_micros(20, 654_321)),
        progress: 41,
        ..fetching.clone()
    };
    repos.pull_operations.update(&failed, &[]).await.unwrap();
    assert_eq!(repos.pull_operations.get(co.id, op.id).await.unwrap(), Some(failed.clone()));

    // Only the progress fields are saved: identity, data type and request time stay.
    let tampered = PullOperation { data_type: DataType::Orders, requested: at(999), status: DatasetStatus::Complete, ..failed.clone() };
    repos.pull_operations.update(&tampered, &[]).await.unwrap();
    let stored = repos.pull_operations.get(co.id, op.id).await.unwrap().expect("stored");
    assert_eq!(stored, PullOperation { status: DatasetStatus::Complete, ..failed });
    assert_eq!(repos.pull_operations.get(co.id, sibling.id).await.unwrap(), Some(sibling), "other operations untouched");

    let ghost = pull_op(&conn, DataType::Orders, DatasetStatus::Complete, at(30), 100);
    assert_not_found(repos.pull_operations.update(&ghost, &[]).await, "update of a missing pull operation");
    assert_eq!(repos.pull_operations.get(co.id, ghost.id).await.unwrap(), None, "update does not insert");
}

/// `unfinished_for_connection` is the connection's `Queued` and `Fetching` operations, oldest
/// (requested, then id) first; finished operations and other connections' operations are ignored.
pub async fn unfinished_for_connection_lists_queued_and_fetching_operations_oldest_first(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let idle = insert_connection(&repos, connection(&co, ConnectionStatus::Linked, at(2))).await;
    let (_, other) = company_with_connection(&repos, "Other", 5).await;
    let tie_a = pull_op(&conn, DataType::Customers, DatasetStatus::Fetching, at(20), 30);
    let tie_b = pull_op(&conn, DataType::Orders, DatasetStatus::Queued, at(20), 0);
    let later = pull_op(&conn, DataType::Payments, DatasetStatus::Queued, at(30), 0);
    let finished = [
        pull_op(&conn, DataType::Products, DatasetStatus::Complete, at(1), 100),
        pull_op(&conn, DataType::Disputes, DatasetStatus::FetchError, at(3), 10),
        pull_op(&conn, DataType::Locations, DatasetStatus::Cancelled, at(4), 0),
        pull_op(&conn, DataType::TaxComponents, DatasetStatus::Initial, at(5), 0),
    ];
    let mut ops = vec![later.clone(), tie_b.clone(), tie_a.clone()];
    ops.extend(finished.iter().cloned());
    ops.push(pull_op(&other, DataType::Customers, DatasetStatus::Queued, at(0), 0));
    repos.pull_operations.insert(&ops).await.unwrap();
    let (first, second) = if tie_a.id.to_string() < tie_b.id.to_string() { (tie_a, tie_b) } else { (tie_b, tie_a) };

    let unfinished = |c: ConnectionId| {
        let repos = repos.clone();
        async move { repos.pull_operations.unfinished_for_connection(c).await.unwrap() }
    };
    assert_eq!(unfinished(conn.id).await, vec![first.clone(), second.clone(), later.clone()], "oldest, then lowest id");
    repos.pull_operations.update(&PullOperation { status: DatasetStatus::Complete, progress: 100, ..first }, &[]).await.unwrap();
    assert_eq!(unfinished(conn.id).await, vec![second.clone(), later.clone()]);
    repos.pull_operations.update(&PullOperation { status: DatasetStatus::InternalError, ..second }, &[]).await.unwrap();
    assert_eq!(unfinished(conn.id).await, vec![later.clone()]);
    repos.pull_operations.update(&PullOperation { status: DatasetStatus::Cancelled, ..later }, &[]).await.unwrap();
    assert!(unfinished(conn.id).await.is_empty(), "only finished operations are left");
    assert!(unfinished(idle.id).await.is_empty(), "a connection without operations");
    assert!(unfinished(ConnectionId::new_random()).await.is_empty());
}

/// `read_before` is whether a pull of the connection requested before an instant read the source:
/// finished with any status but `NotSupported` and `Cancelled` (failures count); unfinished pulls,
/// later pulls and other connections' do not.
pub async fn read_before_is_whether_an_earlier_pull_of_the_connection_finished_a_read(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let other = insert_connection(&repos, connection(&co, ConnectionStatus::Linked, at(1))).await;
    let not_reads = [
        pull_op(&conn, DataType::Customers, DatasetStatus::Queued, at(1), 0),
        pull_op(&conn, DataType::Orders, DatasetStatus::Fetching, at(2), 10),
        pull_op(&conn, DataType::Locations, DatasetStatus::NotSupported, at(3), 100),
        pull_op(&conn, DataType::Disputes, DatasetStatus::Cancelled, at(4), 0),
        pull_op(&other, DataType::Payments, DatasetStatus::Complete, at(5), 100),
    ];
    repos.pull_operations.insert(&not_reads).await.unwrap();
    assert!(!repos.pull_operations.read_before(conn.id, at(100)).await.unwrap(), "no finished read of this connection");
    let failed = pull_op(&conn, DataType::Payments, DatasetStatus::FetchError, at(50), 10);
    repos.pull_operations.insert(std::slice::from_ref(&failed)).await.unwrap();
    assert!(repos.pull_operations.read_before(conn.id, at(100)).await.unwrap(), "a failed read counts");
    assert!(!repos.pull_operations.read_before(conn.id, at(50)).await.unwrap(), "requested before, not at, the instant");
    assert!(repos.pull_operations.read_before(other.id, at(6)).await.unwrap());
}

/// `requested_since` lists one connection's operations requested at or after an instant (the
/// instant itself included), oldest first and then by id, up to the limit.
pub async fn requested_since_lists_a_connections_operations_from_an_instant_oldest_first(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let other = insert_connection(&repos, connection(&co, ConnectionStatus::Linked, at(1))).await;
    let before = pull_op(&conn, DataType::Payments, DatasetStatus::Complete, at_micros(9, 999_999), 100);
    let tie_a = pull_op(&conn, DataType::Customers, DatasetStatus::Complete, at(10), 100);
    let tie_b = pull_op(&conn, DataType::Orders, DatasetStatus::FetchError, at(10), 10);
    let later = pull_op(&conn, DataType::Products, DatasetStatus::Queued, at(20), 0);
    let elsewhere = pull_op(&other, DataType::Payments, DatasetStatus::Queued, at(15), 0);
    repos.pull_operations.insert(&[later.clone(), tie_b.clone(), before, elsewhere, tie_a.clone()]).await.unwrap();
    let (first, second) = if tie_a.id.to_string() < tie_b.id.to_string() { (tie_a, tie_b) } else { (tie_b, tie_a) };
    assert_eq!(repos.pull_operations.requested_since(conn.id, at(10), 100).await.unwrap(), vec![first.clone(), second, later]);
    assert_eq!(repos.pull_operations.requested_since(conn.id, at(10), 1).await.unwrap(), vec![first], "limit");
    assert!(repos.pull_operations.requested_since(conn.id, at(21), 100).await.unwrap().is_empty());
    assert!(repos.pull_operations.requested_since(ConnectionId::new_random(), at(0), 100).await.unwrap().is_empty());
}

/// `latest` is the newest operation of one data type on one connection (requested, then id),
/// whatever its status; other data types and connections do not count.
pub async fn latest_is_the_newest_operation_of_a_data_type_on_a_connection(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let second_conn = insert_connection(&repos, connection(&co, ConnectionStatus::Linked, at(2))).await;
    assert_eq!(repos.pull_operations.latest(conn.id, DataType::Payments).await.unwrap(), None);
    let old = pull_op(&conn, DataType::Payments, DatasetStatus::Queued, at(10), 0);
    let tie_a = pull_op(&conn, DataType::Payments, DatasetStatus::Complete, at(20), 100);
    let tie_b = pull_op(&conn, DataType::Payments, DatasetStatus::FetchError, at(20), 10);
    let ops = [
        old,
        tie_a.clone(),
        tie_b.clone(),
        pull_op(&conn, DataType::Customers, DatasetStatus::Queued, at(30), 0),
        pull_op(&second_conn, DataType::Payments, DatasetStatus::Queued, at(40), 0),
    ];
    repos.pull_operations.insert(&ops).await.unwrap();
    let newest = if tie_a.id.to_string() > tie_b.id.to_string() { tie_a } else { tie_b };
    assert_eq!(repos.pull_operations.latest(conn.id, DataType::Payments).await.unwrap(), Some(newest), "latest requested, then highest id");
    assert_eq!(repos.pull_operations.latest(second_conn.id, DataType::Payments).await.unwrap().map(|p| p.requested), Some(at(40)));
    assert_eq!(repos.pull_operations.latest(second_conn.id, DataType::Customers).await.unwrap(), None);
}

/// `data_status` gives, per data type the company has pulled, the latest operation (requested,
/// then id) and the latest `Complete` one, across its connections and only its own.
pub async fn data_status_pairs_the_latest_operation_with_the_latest_complete_one(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let second_conn = insert_connection(&repos, connection(&co, ConnectionStatus::Linked, at(2))).await;
    let (other, other_conn) = company_with_connection(&repos, "Other", 5).await;
    assert!(repos.pull_operations.data_status(co.id).await.unwrap().is_empty(), "no operations, no data types");

    let done = |c: &Connection, dt, requested| PullOperation {
        completed: Some(at(requested + 5)),
        ..pull_op(c, dt, DatasetStatus::Complete, at(requested), 100)
    };
    let customers_old = done(&conn, DataType::Customers, 10);
    let customers_done = done(&second_conn, DataType::Customers, 20);
    let customers_failed = pull_op(&conn, DataType::Customers, DatasetStatus::FetchError, at(30), 12);
    let payments_queued = pull_op(&conn, DataType::Payments, DatasetStatus::Queued, at(40), 0);
    let orders_a = done(&conn, DataType::Orders, 50);
    let orders_b = done(&second_conn, DataType::Orders, 50);
    let products_done = done(&conn, DataType::Products, 60);
    repos
        .pull_operations
        .insert(&[
            customers_failed.clone(),
            customers_old,
            customers_done.clone(),
            payments_queued.clone(),
            orders_a.clone(),
            orders_b.clone(),
            products_done.clone(),
        ])
        .await
        .unwrap();
    // Another company's newer operations change nothing here.
    repos.pull_operations.insert(&[done(&other_conn, DataType::Customers, 99), done(&other_conn, DataType::Disputes, 99)]).await.unwrap();
    let orders_latest = if orders_a.id.to_string() > orders_b.id.to_string() { orders_a } else { orders_b };

    let mut status = repos.pull_operations.data_status(co.id).await.unwrap();
    status.sort_by_key(|(latest, _)| latest.data_type);
    let mut want = vec![
        (customers_failed, Some(customers_done)),
        (payments_queued.clone(), None),
        (orders_latest.clone(), Some(orders_latest)),
        (products_done.clone(), Some(products_done)),
    ];
    want.sort_by_key(|(latest, _)| latest.data_type);
    assert_eq!(status, want);

    // A newer complete operation becomes both.
    let payments_done = PullOperation { status: DatasetStatus::Complete, progress: 100, completed: Some(at(45)), ..payments_queued };
    repos.pull_operations.update(&payments_done, &[]).await.unwrap();
    let status = repos.pull_operations.data_status(co.id).await.unwrap();
    let payments = status.iter().find(|(latest, _)| latest.data_type == DataType::Payments).expect("payments listed");
    assert_eq!(payments, &(payments_done.clone(), Some(payments_done)));
    assert_eq!(repos.pull_operations.data_status(other.id).await.unwrap().len(), 2, "each company sees its own");
}

// ---------------------------------------------------------------------------------------------
// Sync leases
// ---------------------------------------------------------------------------------------------

/// A lease of `seconds`.
fn lease(seconds: u64) -> std::time::Duration {
    std::time::Duration::from_secs(seconds)
}

/// A connection of a new company with one queued operation requested at `requested`.
async fn connection_with_queued_work(repos: &Repositories, name: &str, requested: i64) -> Connection {
    let (_, conn) = company_with_connection(repos, name, 0).await;
    repos.pull_operations.insert(&[pull_op(&conn, DataType::Customers, DatasetStatus::Queued, at(requested), 0)]).await.unwrap();
    conn
}

/// `lease_next` leases connections with unfinished operations, oldest operation first, each once
/// while its lease is live; connections without unfinished work are never leased.
pub async fn lease_next_leases_each_connection_with_unfinished_work_once(repos: Repositories) {
    assert_eq!(repos.sync_leases.lease_next("w1", at(100), lease(60)).await.unwrap(), None, "nothing to do");
    let newer = connection_with_queued_work(&repos, "Newer", 20).await;
    let older = connection_with_queued_work(&repos, "Older", 10).await;
    // A fetching operation is unfinished work too.
    let fetching = connection_with_queued_work(&repos, "Fetching", 30).await;
    let op = repos.pull_operations.unfinished_for_connection(fetching.id).await.unwrap().pop().expect("queued");
    repos.pull_operations.update(&PullOperation { status: DatasetStatus::Fetching, ..op }, &[]).await.unwrap();
    // Finished work only, and no work at all: never leased.
    let (_, finished) = company_with_connection(&repos, "Finished", 0).await;
    repos
        .pull_operations
        .insert(&[
            pull_op(&finished, DataType::Customers, DatasetStatus::Complete, at(1), 100),
            pull_op(&finished, DataType::Orders, DatasetStatus::FetchError, at(2), 0),
        ])
        .await
        .unwrap();
    company_with_connection(&repos, "Idle", 0).await;

    assert_eq!(repos.sync_leases.lease_next("w1", at(100), lease(60)).await.unwrap(), Some(older.id), "oldest operation first");
    assert_eq!(repos.sync_leases.lease_next("w2", at(100), lease(60)).await.unwrap(), Some(newer.id));
    assert_eq!(repos.sync_leases.lease_next("w1", at(101), lease(60)).await.unwrap(), Some(fetching.id));
    assert_eq!(repos.sync_leases.lease_next("w3", at(102), lease(60)).await.unwrap(), None, "every connection with work is leased");
    assert_eq!(repos.sync_leases.lease_next("w1", at(159), lease(60)).await.unwrap(), None, "the holder does not get it twice");
}

/// A lease that expired (`expires < now`) is taken over by another worker; the old holder can no
/// longer renew it, the new one can.
pub async fn an_expired_lease_is_taken_over_by_another_worker(repos: Repositories) {
    let conn = connection_with_queued_work(&repos, "Co", 10).await;
    assert_eq!(repos.sync_leases.lease_next("crashed", at(100), lease(30)).await.unwrap(), Some(conn.id));
    assert_eq!(repos.sync_leases.lease_next("w2", at(129), lease(30)).await.unwrap(), None, "live");
    assert_eq!(repos.sync_leases.lease_next("w2", at(130), lease(30)).await.unwrap(), None, "live until after its expiry instant");
    assert_eq!(repos.sync_leases.lease_next("w2", at_micros(130, 1), lease(30)).await.unwrap(), Some(conn.id), "expired");
    assert!(!repos.sync_leases.renew(conn.id, "crashed", at(131), lease(30)).await.unwrap(), "the lease was lost");
    assert!(repos.sync_leases.renew(conn.id, "w2", at(131), lease(30)).await.unwrap());
    assert_eq!(repos.sync_leases.lease_next("crashed", at(140), lease(30)).await.unwrap(), None, "w2 holds it");
}

/// `renew` extends the owner's lease only; `release` by someone else does nothing, by the owner
/// frees the connection at once.
pub async fn renew_is_for_the_owner_and_release_frees_the_lease(repos: Repositories) {
    let conn = connection_with_queued_work(&repos, "Co", 10).await;
    assert!(!repos.sync_leases.renew(conn.id, "w1", at(100), lease(30)).await.unwrap(), "no lease to renew");
    assert_eq!(repos.sync_leases.lease_next("w1", at(100), lease(30)).await.unwrap(), Some(conn.id));

    assert!(!repos.sync_leases.renew(conn.id, "w2", at(110), lease(30)).await.unwrap(), "another worker cannot renew");
    assert!(repos.sync_leases.renew(conn.id, "w1", at(120), lease(30)).await.unwrap());
    assert_eq!(repos.sync_leases.lease_next("w2", at(140), lease(30)).await.unwrap(), None, "renewed until 150");
    assert_eq!(repos.sync_leases.lease_next("w2", at(151), lease(30)).await.unwrap(), Some(conn.id), "expired after the renewal");

    assert!(repos.sync_leases.renew(conn.id, "w2", at(152), lease(30)).await.unwrap());
    repos.sync_leases.release(conn.id, "w1").await.unwrap();
    assert_eq!(repos.sync_leases.lease_next("w3", at(153), lease(30)).await.unwrap(), None, "a non-owner's release does nothing");
    repos.sync_leases.release(conn.id, "w2").await.unwrap();
    assert!(!repos.sync_leases.renew(conn.id, "w2", at(153), lease(30)).await.unwrap(), "released");
    assert_eq!(repos.sync_leases.lease_next("w3", at(153), lease(30)).await.unwrap(), Some(conn.id), "free at once");
    repos.sync_leases.release(ConnectionId::new_random(), "w3").await.unwrap();
}

/// Of concurrent `lease_next` calls with one connection to lease, exactly one wins (repeated,
/// since a race needs luck to show).
pub async fn concurrent_lease_next_on_one_connection_has_exactly_one_winner(repos: Repositories) {
    for round in 0..10 {
        let conn = connection_with_queued_work(&repos, &format!("Co {round}"), round).await;
        let mut tasks = JoinSet::new();
        for worker in 0..4 {
            let leases = repos.sync_leases.clone();
            tasks.spawn(async move { leases.lease_next(&format!("w{worker}"), at(100), lease(600)).await });
        }
        let mut won = Vec::new();
        while let Some(r) = tasks.join_next().await {
            if let Some(c) = r.expect("task").expect("lease_next") {
                won.push(c);
            }
        }
        assert_eq!(won, vec![conn.id], "round {round}: exactly one worker leases the connection");
    }
}

// ---------------------------------------------------------------------------------------------
// Records and checkpoints
// ---------------------------------------------------------------------------------------------

/// A record whose document is the JSON text `json`.
fn stored(id: &str, json: &str, created: Option<DateTime<Utc>>) -> StoredRecord {
    StoredRecord {
        id: id.into(),
        created,
        source_modified: created.map(|c| c + Duration::seconds(30)),
        document: json.parse().unwrap_or_else(|e| panic!("fixture JSON {json}: {e}")),
        deleted: false,
    }
}

/// A customer record named `name`.
fn customer(id: &str, name: &str, created: Option<DateTime<Utc>>) -> StoredRecord {
    stored(id, &format!(r#"{{"id": "{id}", "customerName": "{name}"}}"#), created)
}

fn checkpoint(pull: PullOperationId, cursor: Option<&str>, pages: u32, _records: u64) -> Checkpoint {
    // The incremental cursor rides along so every checkpoint round trip also checks it.
    Checkpoint { pull_id: pull, backfilling: cursor.is_some(), incremental: Some(format!("inc-{pages}")) }
}

/// An unfenced write of records with a checkpoint.
fn page_write(page: &[StoredRecord], cp: &Checkpoint) -> SyncWrite {
    SyncWrite { records: page.to_vec(), checkpoint: Some(cp.clone()), ..SyncWrite::default() }
}

async fn write(repos: &Repositories, conn: &Connection, dt: DataType, page: &[StoredRecord], cp: &Checkpoint, now: DateTime<Utc>) -> u64 {
    repos.records.write_sync(conn.company_id, conn.id, dt, &page_write(page, cp), now).await.unwrap_or_else(|e| panic!("write_sync: {e}"))
}

async fn record(repos: &Repositories, conn: &Connection, dt: DataType, id: &str) -> RecordRow {
    repos.records.get(conn.id, dt, id).await.unwrap().unwrap_or_else(|| panic!("record {id} stored"))
}

/// A sync write that finishes a pull the store does not have, or whose events cannot be stored,
/// writes nothing at all: no records, checkpoint, version, pull status or events.
pub async fn a_sync_write_whose_pull_or_events_fail_writes_nothing(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let op = pull_op(&conn, DataType::Customers, DatasetStatus::Fetching, at(10), 50);
    repos.pull_operations.insert(std::slice::from_ref(&op)).await.unwrap();
    let taken = outbox_event(&co, EventType::CompanyCreated, at(1));
    emit(&repos, std::slice::from_ref(&taken)).await;
    let events_before = all_events(&repos).await;
    let cp = checkpoint(op.id, Some("c"), 1, 1);
    let done = PullOperation { status: DatasetStatus::Complete, progress: 100, completed: Some(at(20)), ..op.clone() };
    let missing = PullOperation { id: PullOperationId::new_random(), ..done.clone() };
    for (pull, events) in [(missing, Vec::new()), (done, vec![OutboxEvent { event_type: EventType::ReadCompleted, ..taken.clone() }])] {
        let w = SyncWrite { pull: Some((pull, events)), ..page_write(&[customer("c1", "A", None)], &cp) };
        assert!(repos.records.write_sync(co.id, conn.id, DataType::Customers, &w, at(30)).await.is_err());
        assert_eq!(repos.records.get(conn.id, DataType::Customers, "c1").await.unwrap(), None, "no record");
        assert_eq!(repos.records.checkpoint(conn.id, DataType::Customers).await.unwrap(), None, "no checkpoint");
        assert_eq!(repos.records.version(conn.id, DataType::Customers).await.unwrap(), 0, "no version");
        assert_eq!(repos.pull_operations.get(co.id, op.id).await.unwrap(), Some(op.clone()), "the pull unchanged");
        assert_eq!(all_events(&repos).await, events_before, "no events");
    }
}

/// `write_sync` inserts a page (documents, timestamps and the deleted flag round-trip, `modified`
/// is the write time) and saves the checkpoint with it; the next page replaces the checkpoint.
pub async fn write_sync_inserts_records_and_saves_the_checkpoint(repos: Repositories) {
    let (_, conn) = company_with_connection(&repos, "Co", 0).await;
    let pull = PullOperationId::new_random();
    assert_eq!(repos.records.checkpoint(conn.id, DataType::Customers).await.unwrap(), None);

    let rich = stored(
        "cus_1",
        r#"{"id": "cus_1", "customerName": "Zoë \"Z\" O'Brien ✓", "emailAddress": null, "addresses": [{"type": "Billing",
            "line1": "1 Main St"}], "defaultCurrency": "GBP", "balance": 1234.50, "count": 7, "negative": -0.001,
            "big": 123456789012345678901234567890, "vip": true, "metadata": {}}"#,
        Some(at_micros(5, 123_456)),
    );
    let mut gone = customer("cus_2", "B", None);
    gone.deleted = true;
    let plain = customer("cus_3", "C", Some(at(7)));
    let page = vec![rich.clone(), gone.clone(), plain.clone()];
    let cp1 = checkpoint(pull, Some("cus_3"), 1, 3);
    assert_eq!(write(&repos, &conn, DataType::Customers, &page, &cp1, at_micros(100, 42)).await, 3);

    for r in &page {
        let row = record(&repos, &conn, DataType::Customers, &r.id).await;
        assert_eq!(row, RecordRow { record: r.clone(), modified: at_micros(100, 42) }, "{} round-trips", r.id);
    }
    assert_eq!(repos.records.checkpoint(conn.id, DataType::Customers).await.unwrap(), Some(cp1));
    assert_eq!(repos.records.checkpoint(conn.id, DataType::Payments).await.unwrap(), None, "per data type");

    // The last page: more records, and the backfill is done.
    let cp2 = checkpoint(pull, None, 2, 4);
    assert_eq!(write(&repos, &conn, DataType::Customers, &[customer("cus_4", "D", None)], &cp2, at(110)).await, 1);
    assert_eq!(repos.records.checkpoint(conn.id, DataType::Customers).await.unwrap(), Some(cp2));
    // An empty page still saves its checkpoint.
    let cp3 = checkpoint(PullOperationId::new_random(), Some("restart"), 0, 0);
    assert_eq!(write(&repos, &conn, DataType::Customers, &[], &cp3, at(120)).await, 0);
    assert_eq!(repos.records.checkpoint(conn.id, DataType::Customers).await.unwrap(), Some(cp3));
    assert_eq!(repos.records.count(conn.id, DataType::Customers, true).await.unwrap(), 4);
}

/// Writing the same page again changes nothing: 0 changed, `modified` kept (the checkpoint is
/// still saved).
pub async fn rewriting_an_unchanged_page_changes_nothing_and_keeps_modified(repos: Repositories) {
    let (_, conn) = company_with_connection(&repos, "Co", 0).await;
    let pull = PullOperationId::new_random();
    let mut deleted = customer("cus_3", "C", Some(at(3)));
    deleted.deleted = true;
    let page = vec![customer("cus_1", "A", Some(at(1))), customer("cus_2", "B", None), deleted];
    assert_eq!(write(&repos, &conn, DataType::Customers, &page, &checkpoint(pull, Some("a"), 1, 3), at(100)).await, 3);

    let again = checkpoint(pull, Some("b"), 2, 3);
    assert_eq!(write(&repos, &conn, DataType::Customers, &page, &again, at(200)).await, 0, "nothing changed");
    for r in &page {
        assert_eq!(record(&repos, &conn, DataType::Customers, &r.id).await.modified, at(100), "{} keeps modified", r.id);
    }
    assert_eq!(repos.records.checkpoint(conn.id, DataType::Customers).await.unwrap(), Some(again));

    // The same documents built with their keys in another order are the same documents.
    let reordered = stored("cus_1", r#"{"customerName": "A", "id": "cus_1"}"#, Some(at(1)));
    assert_eq!(write(&repos, &conn, DataType::Customers, &[reordered], &checkpoint(pull, None, 3, 3), at(300)).await, 0);
    assert_eq!(record(&repos, &conn, DataType::Customers, "cus_1").await.modified, at(100));
}

/// Changing one document, or only the deleted flag, counts 1 and bumps that record's `modified`
/// alone; a new record among unchanged ones counts 1.
pub async fn changing_a_document_or_the_deleted_flag_bumps_modified(repos: Repositories) {
    let (_, conn) = company_with_connection(&repos, "Co", 0).await;
    let pull = PullOperationId::new_random();
    let cp = checkpoint(pull, Some("next"), 1, 3);
    let page = vec![customer("cus_1", "A", Some(at(1))), customer("cus_2", "B", Some(at(2))), customer("cus_3", "C", Some(at(3)))];
    assert_eq!(write(&repos, &conn, DataType::Customers, &page, &cp, at(100)).await, 3);

    let renamed = customer("cus_2", "B renamed", Some(at(2)));
    let page2 = vec![page[0].clone(), renamed.clone(), page[2].clone()];
    assert_eq!(write(&repos, &conn, DataType::Customers, &page2, &cp, at(200)).await, 1, "one document changed");
    assert_eq!(record(&repos, &conn, DataType::Customers, "cus_2").await, RecordRow { record: renamed, modified: at(200) });
    assert_eq!(record(&repos, &conn, DataType::Customers, "cus_1").await.modified, at(100));
    assert_eq!(record(&repos, &conn, DataType::Customers, "cus_3").await.modified, at(100));

    let mut removed = page[2].clone();
    removed.deleted = true;
    assert_eq!(write(&repos, &conn, DataType::Customers, std::slice::from_ref(&removed), &cp, at(300)).await, 1, "deleted flag");
    assert_eq!(record(&repos, &conn, DataType::Customers, "cus_3").await, RecordRow { record: removed, modified: at(300) });
    assert_eq!(write(&repos, &conn, DataType::Customers, std::slice::from_ref(&page[2]), &cp, at(400)).await, 1, "undeleted");
    assert_eq!(record(&repos, &conn, DataType::Customers, "cus_3").await.modified, at(400));

    let page3 = vec![page[0].clone(), customer("cus_4", "D", None)];
    assert_eq!(write(&repos, &conn, DataType::Customers, &page3, &cp, at(500)).await, 1, "one new record");
    assert_eq!(record(&repos, &conn, DataType::Customers, "cus_1").await.modified, at(100));
    assert_eq!(record(&repos, &conn, DataType::Customers, "cus_4").await.modified, at(500));

    // The same id under another data type or connection is another record.
    let (_, other) = company_with_connection(&repos, "Other", 5).await;
    assert_eq!(write(&repos, &conn, DataType::Payments, std::slice::from_ref(&page[0]), &cp, at(600)).await, 1);
    assert_eq!(write(&repos, &other, DataType::Customers, std::slice::from_ref(&page[0]), &cp, at(600)).await, 1);
    assert_eq!(record(&repos, &conn, DataType::Customers, "cus_1").await.modified, at(100));
}

/// `write_sync` for a missing connection (or another company's) is NotFound and writes neither
/// records nor checkpoint.
pub async fn write_sync_for_a_missing_connection_is_not_found_and_writes_nothing(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let (other, _) = company_with_connection(&repos, "Other", 5).await;
    let ghost = connection(&co, ConnectionStatus::Linked, at(2));
    let page = vec![customer("cus_1", "A", None), customer("cus_2", "B", None)];
    let cp = checkpoint(PullOperationId::new_random(), Some("next"), 1, 2);

    let r = repos.records.write_sync(co.id, ghost.id, DataType::Customers, &page_write(&page, &cp), at(100)).await;
    assert_not_found(r, "write_sync on a missing connection");
    assert_eq!(repos.records.count(ghost.id, DataType::Customers, true).await.unwrap(), 0);
    assert_eq!(repos.records.checkpoint(ghost.id, DataType::Customers).await.unwrap(), None);
    let empty = repos.records.write_sync(co.id, ghost.id, DataType::Customers, &page_write(&[], &cp), at(100)).await;
    assert_not_found(empty, "empty page");

    let r = repos.records.write_sync(other.id, conn.id, DataType::Customers, &page_write(&page, &cp), at(100)).await;
    assert_not_found(r, "write_sync under another company");
    assert_eq!(repos.records.count(conn.id, DataType::Customers, true).await.unwrap(), 0);
    assert_eq!(repos.records.get(conn.id, DataType::Customers, "cus_1").await.unwrap(), None);
    assert_eq!(repos.records.checkpoint(conn.id, DataType::Customers).await.unwrap(), None);
}

/// `count` leaves deleted records out unless asked, per connection and data type.
pub async fn record_count_excludes_deleted_unless_asked(repos: Repositories) {
    let (_, conn) = company_with_connection(&repos, "Co", 0).await;
    let (_, other) = company_with_connection(&repos, "Other", 5).await;
    let cp = checkpoint(PullOperationId::new_random(), None, 1, 4);
    assert_eq!(repos.records.count(conn.id, DataType::Customers, false).await.unwrap(), 0);
    let mut gone = customer("cus_3", "C", None);
    gone.deleted = true;
    let page = vec![customer("cus_1", "A", None), customer("cus_2", "B", None), gone, customer("cus_4", "D", None)];
    write(&repos, &conn, DataType::Customers, &page, &cp, at(100)).await;
    write(&repos, &conn, DataType::Payments, &page[..1], &cp, at(100)).await;
    write(&repos, &other, DataType::Customers, &page[..2], &cp, at(100)).await;

    assert_eq!(repos.records.count(conn.id, DataType::Customers, false).await.unwrap(), 3);
    assert_eq!(repos.records.count(conn.id, DataType::Customers, true).await.unwrap(), 4);
    assert_eq!(repos.records.count(conn.id, DataType::Payments, false).await.unwrap(), 1);
    assert_eq!(repos.records.count(conn.id, DataType::Orders, true).await.unwrap(), 0);
    assert_eq!(repos.records.count(other.id, DataType::Customers, true).await.unwrap(), 2);
}

/// `get` finds a record (deleted ones too) of its own connection and data type only; `scan` pages
/// by id with a keyset, seeing every record exactly once.
pub async fn record_get_and_keyset_scan_see_each_record_once(repos: Repositories) {
    let (_, conn) = company_with_connection(&repos, "Co", 0).await;
    let (_, other) = company_with_connection(&repos, "Other", 5).await;
    let cp = checkpoint(PullOperationId::new_random(), None, 1, 7);
    let mut page: Vec<StoredRecord> = ["cus_g", "cus_b", "cus_e", "cus_a", "cus_d", "cus_c", "cus_f"]
        .into_iter()
        .enumerate()
        .map(|(i, id)| customer(id, &format!("N{i}"), Some(at(i64::try_from(i).expect("small")))))
        .collect();
    page[1].deleted = true;
    write(&repos, &conn, DataType::Customers, &page, &cp, at(100)).await;
    write(&repos, &conn, DataType::Payments, &[customer("pay_1", "P", None)], &cp, at(100)).await;
    write(&repos, &other, DataType::Customers, &[customer("cus_0", "O", None)], &cp, at(100)).await;

    let deleted = record(&repos, &conn, DataType::Customers, "cus_b").await;
    assert!(deleted.record.deleted, "deleted records are returned by get");
    assert_eq!(repos.records.get(conn.id, DataType::Customers, "cus_z").await.unwrap(), None);
    assert_eq!(repos.records.get(conn.id, DataType::Payments, "cus_a").await.unwrap(), None, "another data type");
    assert_eq!(repos.records.get(other.id, DataType::Customers, "cus_a").await.unwrap(), None, "another connection");

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let batch = repos.records.scan(conn.id, DataType::Customers, after.clone(), 3).await.unwrap();
        assert!(batch.len() <= 3, "limit respected");
        let Some(last) = batch.last() else { break };
        after = Some(last.record.id.clone());
        seen.extend(batch);
    }
    let mut want = page.clone();
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(seen.iter().map(|r| &r.record).collect::<Vec<_>>(), want.iter().collect::<Vec<_>>(), "each record once, in id order");
    assert!(seen.iter().all(|r| r.modified == at(100)));
    assert!(repos.records.scan(conn.id, DataType::Orders, None, 10).await.unwrap().is_empty());
    let tail = repos.records.scan(conn.id, DataType::Customers, Some("cus_e".into()), 10).await.unwrap();
    assert_eq!(tail.iter().map(|r| r.record.id.as_str()).collect::<Vec<_>>(), vec!["cus_f", "cus_g"]);
}

/// Deleting a connection removes its lease, records and checkpoints and nobody else's; deleting
/// the company removes the rest.
pub async fn deleting_a_connection_removes_its_lease_records_and_checkpoint(repos: Repositories) {
    let doomed = connection_with_queued_work(&repos, "Co", 10).await;
    let sibling =
        insert_connection(&repos, connection(&Company { id: doomed.company_id, ..company("Co", at(0)) }, ConnectionStatus::Linked, at(3)))
            .await;
    repos.pull_operations.insert(&[pull_op(&sibling, DataType::Customers, DatasetStatus::Queued, at(11), 0)]).await.unwrap();
    assert_eq!(repos.sync_leases.lease_next("w1", at(100), lease(600)).await.unwrap(), Some(doomed.id));
    assert_eq!(repos.sync_leases.lease_next("w1", at(100), lease(600)).await.unwrap(), Some(sibling.id));
    let cp = checkpoint(PullOperationId::new_random(), Some("next"), 1, 2);
    let page = vec![customer("cus_1", "A", None), customer("cus_2", "B", None)];
    for c in [&doomed, &sibling] {
        write(&repos, c, DataType::Customers, &page, &cp, at(100)).await;
        write(&repos, c, DataType::Payments, &page, &cp, at(100)).await;
    }

    assert!(repos.connections.delete(doomed.company_id, doomed.id, &[]).await.unwrap());

    for dt in [DataType::Customers, DataType::Payments] {
        assert_eq!(repos.records.count(doomed.id, dt, true).await.unwrap(), 0);
        assert_eq!(repos.records.get(doomed.id, dt, "cus_1").await.unwrap(), None);
        assert_eq!(repos.records.checkpoint(doomed.id, dt).await.unwrap(), None);
        assert_eq!(repos.records.count(sibling.id, dt, true).await.unwrap(), 2, "the sibling keeps its records");
        assert_eq!(repos.records.checkpoint(sibling.id, dt).await.unwrap(), Some(cp.clone()));
    }
    assert!(!repos.sync_leases.renew(doomed.id, "w1", at(110), lease(600)).await.unwrap(), "the lease went with the connection");
    assert!(repos.sync_leases.renew(sibling.id, "w1", at(110), lease(600)).await.unwrap(), "the sibling's lease stays");

    assert!(repos.companies.delete(sibling.company_id, &[]).await.unwrap());
    assert_eq!(repos.records.count(sibling.id, DataType::Customers, true).await.unwrap(), 0);
    assert_eq!(repos.records.checkpoint(sibling.id, DataType::Customers).await.unwrap(), None);
    assert!(!repos.sync_leases.renew(sibling.id, "w1", at(120), lease(600)).await.unwrap());
}

fn partition(id: u32, stage: u16, cursor: Option<&str>, records: u64, done: u64, left: u64) -> PartitionState {
    PartitionState { id, stage, cursor: cursor.map(str::to_owned), records, estimate: Estimate { done, left } }
}

fn staged_item(key: &str, id: &str, value: serde_json::Value) -> StagedItem {
    StagedItem { key: key.into(), id: id.into(), value }
}

/// A linked connection of a new company, leased by `worker`, with a queued customers pull.
async fn leased_connection(repos: &Repositories, name: &str, worker: &str) -> (Connection, PullOperation) {
    let co = insert_named(repos, name, 0).await;
    let conn = insert_connection(repos, connection(&co, ConnectionStatus::Linked, at(1))).await;
    let op = pull_op(&conn, DataType::Customers, DatasetStatus::Queued, at(10), 0);
    repos.pull_operations.insert(std::slice::from_ref(&op)).await.unwrap();
    assert_eq!(repos.sync_leases.lease_next(worker, at(100), lease(600)).await.unwrap(), Some(conn.id));
    (conn, op)
}

/// `write_sync` saves a backfill's partitions (inserted, then replaced by id; finished ones kept)
/// and staged items (looked up by key, per connection and data type), and `reset` drops both
/// before the rest of its write.
pub async fn write_sync_keeps_partitions_and_staged_items_until_a_reset(repos: Repositories) {
    let (_, conn) = company_with_connection(&repos, "Co", 0).await;
    let (_, other) = company_with_connection(&repos, "Other", 5).await;
    let cp = Checkpoint { pull_id: PullOperationId::new_random(), backfilling: true, incremental: Some("evt".into()) };
    let plan = vec![partition(0, 0, Some(r#"{"range":[0,50]}"#), 0, 0, 300), partition(1, 1, Some("products"), 0, 0, 100)];
    let w = SyncWrite { reset: true, checkpoint: Some(cp.clone()), partitions: plan.clone(), ..SyncWrite::default() };
    assert_eq!(repos.records.write_sync(conn.company_id, conn.id, DataType::Products, &w, at(100)).await.unwrap(), 0);
    assert_eq!(repos.records.checkpoint(conn.id, DataType::Products).await.unwrap(), Some(cp.clone()));
    assert_eq!(repos.records.partitions(conn.id, DataType::Products).await.unwrap(), plan);
    assert!(repos.records.partitions(conn.id, DataType::Customers).await.unwrap().is_empty(), "per data type");

    // A page of partition 0: its new position, a partition split off it, records and staged items.
    let price = serde_json::json!({"id": "price_1", "unit_amount": 1250, "currency": "jpy", "nickname": "Zoë ✓"});
    let page = SyncWrite {
        records: vec![customer("prod_x", "X", None)],
        staged: vec![
            staged_item("prod_1", "price_1", price.clone()),
            staged_item("prod_1", "price_2", serde_json::json!({"id": "price_2"})),
            staged_item("prod_2", "price_3", serde_json::json!({"id": "price_3"})),
        ],
        partitions: vec![partition(0, 0, Some("after"), 1, 100, 120), partition(2, 0, Some("split"), 0, 0, 80)],
        ..SyncWrite::default()
    };
    assert_eq!(repos.records.write_sync(conn.company_id, conn.id, DataType::Products, &page, at(110)).await.unwrap(), 1);
    let other_page = SyncWrite { staged: vec![staged_item("prod_1", "price_9", serde_json::json!(1))], ..SyncWrite::default() };
    repos.records.write_sync(other.company_id, other.id, DataType::Products, &other_page, at(110)).await.unwrap();
    let parts = repos.records.partitions(conn.id, DataType::Products).await.unwrap();
    assert_eq!(
        parts,
        vec![
            partition(0, 0, Some("after"), 1, 100, 120),
            partition(1, 1, Some("products"), 0, 0, 100),
            partition(2, 0, Some("split"), 0, 0, 80)
        ]
    );
    // The partition's last page: done, kept (its records and estimate count towards progress).
    let last = SyncWrite { partitions: vec![partition(2, 0, None, 40, 40, 0)], ..SyncWrite::default() };
    repos.records.write_sync(conn.company_id, conn.id, DataType::Products, &last, at(120)).await.unwrap();
    assert_eq!(repos.records.partitions(conn.id, DataType::Products).await.unwrap()[2], partition(2, 0, None, 40, 40, 0));

    let found = repos.records.staged(conn.id, DataType::Products, &["prod_1".into(), "prod_3".into()]).await.unwrap();
    assert_eq!(
        found,
        vec![staged_item("prod_1", "price_1", price.clone()), staged_item("prod_1", "price_2", serde_json::json!({"id": "price_2"}))],
        "by key, then id; values round-trip"
    );
    assert!(repos.records.staged(conn.id, DataType::Customers, &["prod_1".into()]).await.unwrap().is_empty(), "per data type");
    assert!(repos.records.staged(conn.id, DataType::Products, &[]).await.unwrap().is_empty());
    let again = SyncWrite { staged: vec![staged_item("prod_2", "price_3", serde_json::json!("changed"))], ..SyncWrite::default() };
    repos.records.write_sync(conn.company_id, conn.id, DataType::Products, &again, at(130)).await.unwrap();
    assert_eq!(
        repos.records.staged(conn.id, DataType::Products, &["prod_2".into()]).await.unwrap(),
        vec![staged_item("prod_2", "price_3", serde_json::json!("changed"))],
        "a staged item written again is replaced"
    );

    // The end of the backfill: partitions and staged items dropped with the final checkpoint.
    let done = Checkpoint { backfilling: false, ..cp };
    let end = SyncWrite { reset: true, checkpoint: Some(done.clone()), ..SyncWrite::default() };
    repos.records.write_sync(conn.company_id, conn.id, DataType::Products, &end, at(140)).await.unwrap();
    assert_eq!(repos.records.checkpoint(conn.id, DataType::Products).await.unwrap(), Some(done));
    assert!(repos.records.partitions(conn.id, DataType::Products).await.unwrap().is_empty());
    assert!(repos.records.staged(conn.id, DataType::Products, &["prod_1".into(), "prod_2".into()]).await.unwrap().is_empty());
    assert_eq!(
        repos.records.staged(other.id, DataType::Products, &["prod_1".into()]).await.unwrap().len(),
        1,
        "another connection's staged items stay"
    );
    assert_eq!(repos.records.count(conn.id, DataType::Products, false).await.unwrap(), 1, "records stay");
}

/// A fenced `write_sync` goes through only while its worker holds the connection's sync lease (an
/// expired lease nobody took over still counts) and the connection is linked; otherwise it is
/// `Fenced` and writes nothing at all: no records, staged items, partitions, checkpoint, pull
/// change or events.
pub async fn a_fenced_write_needs_the_lease_and_a_linked_connection_and_is_all_or_nothing(repos: Repositories) {
    let (conn, op) = leased_connection(&repos, "Co", "w1").await;
    let co = repos.companies.get(conn.company_id).await.unwrap().expect("company");
    let everything = |fence: &str, marker: &str| SyncWrite {
        fence: Some(fence.into()),
        records: vec![customer(&format!("cus_{marker}"), marker, None)],
        staged: vec![staged_item("k", marker, serde_json::json!(marker))],
        checkpoint: Some(Checkpoint { pull_id: op.id, backfilling: true, incremental: Some(marker.into()) }),
        partitions: vec![partition(0, 0, Some(marker), 1, 1, 1)],
        pull: Some((
            PullOperation { status: DatasetStatus::Fetching, status_description: Some(marker.into()), ..op.clone() },
            vec![outbox_event(&co, EventType::ReadCompleted, at(200))],
        )),
        ..SyncWrite::default()
    };
    let nothing_of = |marker: &'static str| {
        let repos = repos.clone();
        let conn = conn.clone();
        async move {
            assert_eq!(repos.records.get(conn.id, DataType::Customers, &format!("cus_{marker}")).await.unwrap(), None, "{marker}: record");
            assert!(repos.records.staged(conn.id, DataType::Customers, &["k".into()]).await.unwrap().iter().all(|i| i.id != marker));
            assert!(
                repos.records.partitions(conn.id, DataType::Customers).await.unwrap().iter().all(|p| p.cursor.as_deref() != Some(marker))
            );
            let cp = repos.records.checkpoint(conn.id, DataType::Customers).await.unwrap();
            assert!(cp.is_none_or(|c| c.incremental.as_deref() != Some(marker)), "{marker}: checkpoint");
            let pull = repos.pull_operations.get(conn.company_id, op.id).await.unwrap().unwrap();
            assert_ne!(pull.status_description.as_deref(), Some(marker), "{marker}: pull");
        }
    };

    // The holder writes everything at once.
    let held = everything("w1", "held");
    assert_eq!(repos.records.write_sync(conn.company_id, conn.id, DataType::Customers, &held, at(150)).await.unwrap(), 1);
    assert_eq!(record(&repos, &conn, DataType::Customers, "cus_held").await.record.id, "cus_held");
    assert_eq!(repos.records.partitions(conn.id, DataType::Customers).await.unwrap(), vec![partition(0, 0, Some("held"), 1, 1, 1)]);
    let pull = repos.pull_operations.get(conn.company_id, op.id).await.unwrap().unwrap();
    assert_eq!((pull.status, pull.status_description.as_deref()), (DatasetStatus::Fetching, Some("held")));
    assert_eq!(all_events(&repos).await.len(), 1, "the pull's events are written with it");

    // Another worker never writes.
    let r = repos.records.write_sync(conn.company_id, conn.id, DataType::Customers, &everything("w2", "stranger"), at(160)).await;
    assert!(matches!(r, Err(RepositoryError::Fenced(_))), "{r:?}");
    nothing_of("stranger").await;

    // An expired lease nobody took over still lets its holder write; once taken, it does not.
    let late = everything("w1", "late");
    repos.records.write_sync(conn.company_id, conn.id, DataType::Customers, &late, at(100_000)).await.expect("expired but not taken");
    assert_eq!(repos.sync_leases.lease_next("w2", at(100_000), lease(600)).await.unwrap(), Some(conn.id), "taken over");
    let r = repos.records.write_sync(conn.company_id, conn.id, DataType::Customers, &everything("w1", "lost"), at(100_010)).await;
    assert!(matches!(r, Err(RepositoryError::Fenced(_))), "{r:?}");
    nothing_of("lost").await;
    repos
        .records
        .write_sync(conn.company_id, conn.id, DataType::Customers, &everything("w2", "new"), at(100_020))
        .await
        .expect("new holder");

    // An unlinked connection takes no fenced write, not even from the lease holder; unfenced
    // writes (tools) still go through.
    assert!(repos.connections.set_status_if(conn.id, ConnectionStatus::Linked, ConnectionStatus::Unlinked, &[]).await.unwrap());
    let r = repos.records.write_sync(conn.company_id, conn.id, DataType::Customers, &everything("w2", "unlinked"), at(100_030)).await;
    assert!(matches!(r, Err(RepositoryError::Fenced(_))), "{r:?}");
    nothing_of("unlinked").await;
    assert_eq!(all_events(&repos).await.len(), 3, "events only of the writes that went through");
    let tool = SyncWrite { records: vec![customer("cus_tool", "T", None)], ..SyncWrite::default() };
    repos.records.write_sync(conn.company_id, conn.id, DataType::Customers, &tool, at(100_040)).await.expect("unfenced");

    // Released: nobody holds it.
    repos.sync_leases.release(conn.id, "w2").await.unwrap();
    assert!(repos.connections.set_status_if(conn.id, ConnectionStatus::Unlinked, ConnectionStatus::Linked, &[]).await.unwrap());
    let r = repos.records.write_sync(conn.company_id, conn.id, DataType::Customers, &everything("w2", "released"), at(100_050)).await;
    assert!(matches!(r, Err(RepositoryError::Fenced(_))), "{r:?}");
    nothing_of("released").await;
}

/// Deleting a connection removes its backfill's partitions and staged items too.
pub async fn deleting_a_connection_removes_its_partitions_and_staged_items(repos: Repositories) {
    let (conn, _) = leased_connection(&repos, "Co", "w1").await;
    let (keep, _) = leased_connection(&repos, "Keep", "w1").await;
    for c in [&conn, &keep] {
        let w = SyncWrite {
            staged: vec![staged_item("prod_1", "price_1", serde_json::json!(1))],
            partitions: vec![partition(0, 0, Some("c"), 0, 0, 1)],
            ..SyncWrite::default()
        };
        repos.records.write_sync(c.company_id, c.id, DataType::Products, &w, at(100)).await.unwrap();
    }
    assert!(repos.connections.delete(conn.company_id, conn.id, &[]).await.unwrap());
    assert!(repos.records.partitions(conn.id, DataType::Products).await.unwrap().is_empty());
    assert!(repos.records.staged(conn.id, DataType::Products, &["prod_1".into()]).await.unwrap().is_empty());
    assert_eq!(repos.records.partitions(keep.id, DataType::Products).await.unwrap().len(), 1);
    assert_eq!(repos.records.staged(keep.id, DataType::Products, &["prod_1".into()]).await.unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Record lists: filters, order and paging over commerce documents
// ---------------------------------------------------------------------------------------------

/// A commerce record from its JSON document: the id and `created` come from the document's `id`
/// and `createdDate`, `source_modified` from `sourceModifiedDate`, as the sync engine stores them.
fn commerce(json: &str) -> StoredRecord {
    let document: serde_json::Value = json.parse().unwrap_or_else(|e| panic!("fixture JSON {json}: {e}"));
    let date = |key: &str| {
        document.get(key).and_then(serde_json::Value::as_str).map(|s| parse_instant(s).unwrap_or_else(|| panic!("fixture {key} {s}")))
    };
    StoredRecord {
        id: document["id"].as_str().expect("fixture id").to_owned(),
        created: date("createdDate"),
        source_modified: date("sourceModifiedDate"),
        deleted: false,
        document,
    }
}

/// Payments written at [`first_write`]; the last one is deleted at the source.
const PAYMENTS_FIRST: &[&str] = &[
    r#"{"id": "pay_01", "amount": 120.50, "currency": "USD", "status": "Paid", "paymentProvider": "Stripe",
        "dueDate": "2025-06-02T17:14:12Z", "paymentMethodRef": {"id": "pm_card_visa", "name": "Visa •••• 4242"},
        "createdDate": "2025-06-02T17:14:12Z", "sourceModifiedDate": "2025-06-02T17:15:00Z"}"#,
    r#"{"id": "pay_02", "amount": 1.234, "currency": "KWD", "status": "Paid", "paymentProvider": "Stripe",
        "dueDate": "2025-06-02T17:14:12.5Z", "paymentMethodRef": {"id": "pm_knet", "name": "KNET"},
        "createdDate": "2025-06-02T17:14:12.500001Z", "sourceModifiedDate": "2025-06-02T17:14:13Z"}"#,
    r#"{"id": "pay_03", "amount": 5000, "currency": "JPY", "status": "Pending", "paymentProvider": "stripe connect",
        "dueDate": "2025-06-02", "paymentMethodRef": {"id": "pm_card_visa", "name": "VISA Debit"},
        "createdDate": "2025-05-30T08:00:00Z", "sourceModifiedDate": "2025-05-30T08:00:00Z"}"#,
    r#"{"id": "pay_04", "amount": -0.9, "currency": "USD", "status": "Cancelled", "dueDate": "2025-06-01T23:59:59.999999Z",
        "createdDate": "2025-06-01T10:00:00Z", "sourceModifiedDate": "2025-06-01T10:00:00Z"}"#,
    r#"{"id": "pay_05", "amount": 10.5, "currency": "USD", "status": "Failed", "paymentProvider": "GoCardless",
        "dueDate": "2025-06-02T19:14:12+02:00", "paymentMethodRef": {"id": "pm_sepa", "name": "SEPA Direct Debit"}}"#,
    r#"{"id": "pay_09", "amount": 99999, "currency": "USD", "status": "Paid", "paymentProvider": "Stripe",
        "dueDate": "2025-06-02T17:14:12Z", "paymentMethodRef": {"id": "pm_card_visa", "name": "Visa"},
        "createdDate": "2025-06-02T00:00:00Z", "sourceModifiedDate": "2025-06-02T00:00:00Z"}"#,
];

/// Payments written at [`second_write`].
const PAYMENTS_SECOND: &[&str] = &[
    r#"{"id": "pay_06", "amount": 1.235, "currency": "KWD", "status": "Authorized", "paymentProvider": "Stripe",
        "paymentMethodRef": {"id": "pm_card_mc", "name": "mastercard"},
        "createdDate": "2025-06-03T00:00:00Z", "sourceModifiedDate": "2025-06-03T00:00:01Z"}"#,
    r#"{"id": "pay_07", "amount": 10.50, "currency": "USD", "status": "Paid", "paymentProvider": "Stripe", "dueDate": null,
        "paymentMethodRef": {"id": "pm_card_visa", "name": "visa"},
        "createdDate": "2025-06-02T17:14:12Z", "sourceModifiedDate": "2025-06-04T12:00:00Z"}"#,
    r#"{"id": "pay_08", "currency": "GBP", "status": "Unknown", "dueDate": "not a date",
        "paymentMethodRef": {"id": null, "name": "Cash"}, "createdDate": "2025-06-02T17:14:11.999999Z"}"#,
];

const TRANSACTIONS: &[&str] = &[
    r#"{"id": "txn_01", "totalAmount": 120.50, "currency": "USD", "type": "Payment", "subType": "charge",
        "transactionSourceRef": {"id": "pay_01", "type": "Payment"}, "sourceCreatedDate": "2025-06-02T17:14:12Z",
        "createdDate": "2025-06-02T17:14:12Z"}"#,
    r#"{"id": "txn_02", "totalAmount": -3.79, "currency": "USD", "type": "PaymentFee", "subType": "stripe_fee",
        "transactionSourceRef": {"id": "pay_01", "type": "Fee"}, "sourceCreatedDate": "2025-06-02T17:14:12.000001Z",
        "createdDate": "2025-06-02T17:14:12Z"}"#,
    r#"{"id": "txn_03", "totalAmount": -0.9, "currency": "USD", "type": "Refund", "subType": "Refund",
        "transactionSourceRef": {"id": "pay_04", "type": "Payment"}, "sourceCreatedDate": "2025-06-01T10:00:00+00:00",
        "createdDate": "2025-06-01T10:00:00Z"}"#,
    r#"{"id": "txn_04", "totalAmount": -1000, "currency": "JPY", "type": "Payout", "subType": "payout",
        "sourceCreatedDate": "2025-06-03", "createdDate": "2025-06-03T00:00:00Z"}"#,
    r#"{"id": "txn_05", "totalAmount": 1.234, "currency": "KWD", "type": "Payment", "subType": "CHARGE",
        "transactionSourceRef": {"id": "pay_02", "type": "Payment"}, "createdDate": "2025-06-02T17:14:12.500001Z"}"#,
    r#"{"id": "txn_06", "totalAmount": -0.899, "currency": "KWD", "type": "Transfer", "subType": "transfer",
        "sourceCreatedDate": "2025-05-31T23:00:00-01:00"}"#,
];

const CUSTOMERS: &[&str] = &[
    r#"{"id": "cus_01", "customerName": "Acme Ltd", "emailAddress": "billing@acme.example", "phone": "+44 20 7946 0000",
        "defaultCurrency": "GBP", "note": "VIP", "createdDate": "2025-01-15T09:30:00Z"}"#,
    r#"{"id": "cus_02", "customerName": "ACME \"Holdings\"\\\tLtd", "emailAddress": null, "defaultCurrency": "USD",
        "createdDate": "2025-02-01T00:00:00Z"}"#,
    r#"{"id": "cus_03", "customerName": "Zoë Ångström", "emailAddress": "zoe@example.com", "defaultCurrency": "KWD",
        "note": "100%_done", "createdDate": "2025-03-01T12:00:00.25Z"}"#,
    r#"{"id": "cus_04", "customerName": "Tanaka 株式会社", "defaultCurrency": "JPY", "note": "100 percent done"}"#,
];

const PRODUCTS: &[&str] = &[
    r#"{"id": "prod_01", "name": "Gift card £50", "description": "A gift", "categorization": "Gift cards", "isGiftCard": true,
        "createdDate": "2025-04-01T00:00:00Z"}"#,
    r#"{"id": "prod_02", "name": "T-shirt", "categorization": "Apparel", "isGiftCard": false, "createdDate": "2025-04-02T00:00:00Z"}"#,
    r#"{"id": "prod_03", "name": "Mystery box", "description": "GIFT wrapped", "createdDate": "2025-04-03T00:00:00Z"}"#,
    r#"{"id": "prod_04", "name": "Legacy voucher", "categorization": "Gift cards", "isGiftCard": "true"}"#,
];

fn instant(s: &str) -> DateTime<Utc> {
    parse_instant(s).unwrap_or_else(|| panic!("instant {s}"))
}

/// When the first payments and every other type are written (`modified`).
fn first_write() -> DateTime<Utc> {
    instant("2025-06-04T09:00:00.000001Z")
}

/// When the later payments are written.
fn second_write() -> DateTime<Utc> {
    instant("2025-06-05T09:00:00.5Z")
}

/// A company and connection holding the fixtures above (`pay_09` deleted), and another connection
/// whose records must never show up in the first one's lists.
async fn seeded_records(repos: &Repositories) -> Connection {
    let (_, conn) = company_with_connection(repos, "Co", 0).await;
    let (_, other) = company_with_connection(repos, "Other", 5).await;
    let cp = checkpoint(PullOperationId::new_random(), None, 1, 1);
    let mut first: Vec<StoredRecord> = PAYMENTS_FIRST.iter().map(|j| commerce(j)).collect();
    first.last_mut().expect("pay_09").deleted = true;
    write(repos, &conn, DataType::Payments, &first, &cp, first_write()).await;
    let second: Vec<StoredRecord> = PAYMENTS_SECOND.iter().map(|j| commerce(j)).collect();
    write(repos, &conn, DataType::Payments, &second, &cp, second_write()).await;
    for (dt, docs) in [(DataType::Transactions, TRANSACTIONS), (DataType::Customers, CUSTOMERS), (DataType::Products, PRODUCTS)] {
        let page: Vec<StoredRecord> = docs.iter().map(|j| commerce(j)).collect();
        write(repos, &conn, dt, &page, &cp, first_write()).await;
    }
    let stranger = commerce(r#"{"id": "pay_other", "amount": 10.5, "currency": "USD", "createdDate": "2025-06-02T00:00:00Z"}"#);
    write(repos, &other, DataType::Payments, &[stranger], &cp, first_write()).await;
    // A customer filed under another data type of the same connection.
    write(repos, &conn, DataType::Disputes, &[commerce(CUSTOMERS[0])], &cp, first_write()).await;
    conn
}

fn record_query(dt: DataType, page: i64, page_size: i64, query: Option<&str>, order_by: Option<&str>) -> ListQuery {
    let schema = commerce_schema::schema(dt).unwrap_or_else(|| panic!("{dt} is a list type"));
    ListQuery::from_params(schema, Some(page), Some(page_size), query, order_by)
        .unwrap_or_else(|e| panic!("{dt} query {query:?} / orderBy {order_by:?}: {e}"))
}

async fn list_records(repos: &Repositories, conn: &Connection, dt: DataType, query: &ListQuery) -> Page<ListedRecord> {
    repos.records.list(conn.id, dt, query).await.unwrap_or_else(|e| panic!("list {dt} {query:?}: {e}"))
}

/// A payment's `amount` and `currency` (which stores may keep in columns of their own) are read
/// like any document field: only values of their JSON type count (a string amount or a numeric
/// currency is missing), numbers compare exactly by value, and a rewrite of a record moves them.
pub async fn amount_and_currency_filters_read_only_values_of_their_json_type(repos: Repositories) {
    let (_, conn) = company_with_connection(&repos, "Co", 0).await;
    let pull = PullOperationId::new_random();
    let page = [
        stored("p1", r#"{"id": "p1", "amount": 5000.01, "currency": "GBP"}"#, Some(at(1))),
        stored("p2", r#"{"id": "p2", "amount": "9000", "currency": "GBP"}"#, Some(at(2))),
        stored("p3", r#"{"id": "p3", "amount": 7000, "currency": 826}"#, Some(at(3))),
        stored("p4", r#"{"id": "p4", "amount": 1.10, "currency": "USD"}"#, Some(at(4))),
        stored("p5", r#"{"id": "p5", "currency": null}"#, Some(at(5))),
    ];
    write(&repos, &conn, DataType::Payments, &page, &checkpoint(pull, None, 1, 5), at(10)).await;
    let ids = |q: &'static str| {
        let repos = repos.clone();
        let conn = conn.clone();
        async move {
            let p = list_records(&repos, &conn, DataType::Payments, &record_query(DataType::Payments, 1, 100, Some(q), None)).await;
            record_ids(&p).into_iter().map(str::to_owned).collect::<Vec<_>>()
        }
    };
    assert_eq!(ids("currency=GBP && amount>5000").await, ["p1"], "a string amount is not a number");
    assert_eq!(ids("amount>5000").await, ["p1", "p3"]);
    assert_eq!(ids("amount=1.1").await, ["p4"], "1.10 equals 1.1");
    assert_eq!(ids("currency!=GBP").await, ["p3", "p4", "p5"], "a numeric or null currency is missing, so not GBP");
    assert_eq!(ids("amount!=7000").await, ["p1", "p2", "p4", "p5"]);
    let orderd = list_records(&repos, &conn, DataType::Payments, &record_query(DataType::Payments, 1, 100, None, Some("-amount"))).await;
    assert_eq!(record_ids(&orderd), ["p3", "p1", "p4", "p5", "p2"], "missing amounts last, descending; ties by id");
    // A rewrite changes what the filters see.
    let rewritten = [stored("p2", r#"{"id": "p2", "amount": 9000, "currency": "EUR"}"#, Some(at(2)))];
    write(&repos, &conn, DataType::Payments, &rewritten, &checkpoint(pull, None, 2, 1), at(20)).await;
    assert_eq!(ids("amount>5000").await, ["p1", "p2", "p3"]);
    assert_eq!(ids("currency=EUR").await, ["p2"]);
}

fn record_ids(page: &Page<ListedRecord>) -> Vec<&str> {
    page.items.iter().map(|r| r.id.as_str()).collect()
}

/// Every stored record of a data type (deleted ones too), by id.
async fn stored_rows(repos: &Repositories, conn: &Connection, dt: DataType) -> Vec<RecordRow> {
    repos.records.scan(conn.id, dt, None, 1000).await.unwrap_or_else(|e| panic!("scan {dt}: {e}"))
}

/// The document as the API serves it and `query::eval` sees it: `createdDate` and `modifiedDate`
/// from the columns (microsecond RFC 3339), so the evaluator is the reference for every field.
fn served_document(row: &RecordRow) -> serde_json::Value {
    let mut doc = row.record.document.clone();
    let fields = doc.as_object_mut().expect("documents are objects");
    let rfc3339 = |t: DateTime<Utc>| serde_json::Value::String(t.to_rfc3339_opts(SecondsFormat::Micros, true));
    match row.record.created {
        Some(c) => fields.insert("createdDate".into(), rfc3339(c)),
        None => fields.remove("createdDate"),
    };
    fields.insert("modifiedDate".into(), rfc3339(row.modified));
    doc
}

/// Live records in the default order: created (missing first), then id.
fn in_default_order(mut rows: Vec<&RecordRow>) -> Vec<&RecordRow> {
    rows.sort_by(|a, b| (a.record.created, &a.record.id).cmp(&(b.record.created, &b.record.id)));
    rows
}

/// What `list` must return for `query` (ignoring paging): the live records the in-memory
/// evaluator selects, in `query.order_by` order (see [`sort_key`]) or the default one.
fn expected_ids<'a>(rows: &'a [RecordRow], dt: DataType, query: &ListQuery) -> Vec<&'a str> {
    let live = rows
        .iter()
        .filter(|r| !r.record.deleted)
        .filter(|r| query.filter.as_ref().is_none_or(|f| eval::matches(f, &served_document(r))))
        .collect::<Vec<_>>();
    let mut ordered = in_default_order(live);
    if let Some(o) = &query.order_by {
        let ty = commerce_schema::schema(dt).and_then(|s| s.field(o.field)).expect("ordered field").ty;
        // Ascending: missing values first, then the id; descending is the exact reverse.
        ordered.sort_by(|a, b| {
            (sort_key(&served_document(a), o.field, ty), &a.record.id).cmp(&(sort_key(&served_document(b), o.field, ty), &b.record.id))
        });
        if o.descending {
            ordered.reverse();
        }
    }
    ordered.into_iter().map(|r| r.record.id.as_str()).collect()
}

/// A field's value as it orders: numbers numerically, dates chronologically, text by code point;
/// missing, null, unreadable or mistyped values are `Missing`, which sorts first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Missing,
    Bool(bool),
    Number(rust_decimal::Decimal),
    Instant(DateTime<Utc>),
    Text(String),
}

fn sort_key(doc: &serde_json::Value, field: &str, ty: FieldType) -> SortKey {
    let pointer = format!("/{}", field.replace('.', "/"));
    let Some(v) = doc.pointer(&pointer) else { return SortKey::Missing };
    let key = match ty {
        FieldType::Number => v.as_number().and_then(|n| n.to_string().parse().ok()).map(SortKey::Number),
        FieldType::Date => v.as_str().and_then(parse_instant).map(SortKey::Instant),
        FieldType::Bool => v.as_bool().map(SortKey::Bool),
        FieldType::String | FieldType::Enum(_) => v.as_str().map(|s| SortKey::Text(s.to_owned())),
    };
    key.unwrap_or(SortKey::Missing)
}

/// Lists `query` (one page of 100, in the requested order) and checks ids, order and total against
/// [`expected_ids`]; returns the ids.
async fn check_list(
    repos: &Repositories,
    conn: &Connection,
    rows: &[RecordRow],
    dt: DataType,
    query: &str,
    order_by: Option<&str>,
) -> Vec<String> {
    let q = record_query(dt, 1, 100, Some(query).filter(|q| !q.is_empty()), order_by);
    let page = list_records(repos, conn, dt, &q).await;
    let want = expected_ids(rows, dt, &q);
    assert_eq!(record_ids(&page), want, "{dt} query {query:?} orderBy {order_by:?}");
    assert_eq!(page.total, want.len() as u64, "{dt} total for {query:?}");
    assert!(!record_ids(&page).contains(&"pay_09"), "deleted records never show");
    want.into_iter().map(str::to_owned).collect()
}

/// `list` selects exactly the records the in-memory evaluator selects, for every operator and
/// type: text (exact, not-equal including missing, contains folding ASCII case only and taking
/// wildcards literally), numbers (integers and decimals in USD, JPY and KWD, negatives), dates
/// (date-only and full timestamps with fractions and offsets, in documents and as the `created`
/// and `modified` columns), enums, booleans, dotted fields and `{ } && ||` groups. Values of the
/// wrong JSON type count as missing. Deleted records and other connections' never show.
pub async fn record_list_filters_match_the_in_memory_evaluator(repos: Repositories) {
    let conn = seeded_records(&repos).await;
    let queries: &[(DataType, &str)] = &[
        (DataType::Payments, "amount>10.5"),
        (DataType::Payments, "amount>=10.50 && amount<=120.5"),
        (DataType::Payments, "amount=1.234"),
        (DataType::Payments, "amount<1.235 && currency=KWD"),
        (DataType::Payments, "amount!=10.5"),
        (DataType::Payments, "amount<=-0.9 || amount>=5000"),
        (DataType::Payments, "{currency=USD || currency=KWD} && amount>=1.234"),
        // Equalities on `currency`, alone and among other conditions.
        (DataType::Payments, "currency=USD"),
        (DataType::Payments, "amount>10 && currency=USD && status=Paid"),
        (DataType::Transactions, "currency=USD"),
        (DataType::Payments, "status=paid && paymentMethodRef.id=pm_card_visa"),
        (DataType::Payments, "paymentMethodRef.name~VISA"),
        (DataType::Payments, "paymentMethodRef.id!=pm_card_visa"),
        (DataType::Payments, "paymentProvider~stripe || id=pay_04"),
        (DataType::Payments, "dueDate>=2025-06-02"),
        (DataType::Payments, "dueDate<2025-06-02T17:14:12Z"),
        (DataType::Payments, "dueDate=2025-06-02T17:14:12Z"),
        (DataType::Payments, "dueDate>2025-06-02T17:14:12.4Z && dueDate<=2025-06-02T17:14:12.500Z"),
        (DataType::Payments, "dueDate!=2025-06-02"),
        (DataType::Payments, "dueDate>2025-06-02T19:14:11+02:00"),
        (DataType::Payments, "createdDate>2025-06-01 && createdDate<=2025-06-02T17:14:12Z"),
        (DataType::Payments, "createdDate!=2025-06-02T17:14:12Z"),
        (DataType::Payments, "createdDate>2025-06-02T17:14:12.5Z"),
        (DataType::Payments, "modifiedDate>=2025-06-05"),
        (DataType::Payments, "modifiedDate<2025-06-04T09:00:00.000002Z && amount>0"),
        (DataType::Payments, "sourceModifiedDate<2025-06-02T17:15:00Z || status=Unknown"),
        (DataType::Transactions, "totalAmount<=-0.9"),
        (DataType::Transactions, "totalAmount<0 && transactionSourceRef.type=Payment"),
        (DataType::Transactions, "transactionSourceRef.id=pay_01 || type=Payout"),
        (DataType::Transactions, "transactionSourceRef.type!=Payment"),
        (DataType::Transactions, "subType~charge"),
        (DataType::Transactions, "sourceCreatedDate>2025-06-02T17:14:12Z"),
        (DataType::Transactions, "sourceCreatedDate<=2025-06-01T00:00:00Z || sourceCreatedDate=2025-06-01T10:00:00Z"),
        (DataType::Customers, "customerName~acme"),
        // Text equalities, with escapes in the JSON text (quote, backslash, tab) and non-ASCII.
        (DataType::Customers, "customerName=ACME \"Holdings\"\\\tLtd"),
        (DataType::Customers, "customerName=Zoë Ångström"),
        (DataType::Customers, "customerName=Tanaka 株式会社 || emailAddress=zoe@example.com"),
        (DataType::Payments, "id=pay_01"),
        (DataType::Payments, "paymentMethodRef.id=pm_card_visa"),
        (DataType::Customers, "emailAddress!=billing@acme.example"),
        (DataType::Customers, "customerName~ÅngStröm"),
        (DataType::Customers, "customerName~ångström || customerName~株式"),
        (DataType::Customers, "note~%_"),
        (DataType::Customers, "defaultCurrency!=GBP && note!=VIP"),
        (DataType::Customers, "createdDate<2025-03-01T12:00:00.25Z"),
        (DataType::Products, "isGiftCard=true"),
        (DataType::Products, "isGiftCard!=true"),
        (DataType::Products, "isGiftCard=false || description~gift"),
        (DataType::Products, "categorization=Gift cards && name~CARD"),
    ];
    let mut rows = BTreeMap::new();
    for dt in [DataType::Payments, DataType::Transactions, DataType::Customers, DataType::Products] {
        rows.insert(dt, stored_rows(&repos, &conn, dt).await);
    }
    for (dt, query) in queries {
        let all = rows[dt].iter().filter(|r| !r.record.deleted).count();
        let ids = check_list(&repos, &conn, &rows[dt], *dt, query, None).await;
        assert!(!ids.is_empty() && ids.len() < all, "{dt} {query:?} selects some records but not all: {ids:?}");
    }
    // Without a query: every live record of the type, nothing of other types or connections.
    let all = check_list(&repos, &conn, &rows[&DataType::Payments], DataType::Payments, "", None).await;
    assert_eq!(all, ["pay_05", "pay_03", "pay_04", "pay_08", "pay_01", "pay_07", "pay_02", "pay_06"], "created (missing first), then id");
    assert_eq!(check_list(&repos, &conn, &rows[&DataType::Customers], DataType::Customers, "", None).await.len(), 4);
}

/// `orderBy` sorts numbers numerically, dates chronologically (document dates with offsets and
/// fractions, and the `created`/`modified` columns) and text by code point; missing values come
/// first ascending and last descending; equal values fall back to the id, in the same direction.
pub async fn record_list_orders_numbers_dates_and_text_with_an_id_tie_break(repos: Repositories) {
    let conn = seeded_records(&repos).await;
    let payments = stored_rows(&repos, &conn, DataType::Payments).await;
    let orders =
        ["amount", "createdDate", "modifiedDate", "dueDate", "sourceModifiedDate", "currency", "paymentMethodRef.name", "status", "id"];
    for field in orders {
        for order in [field.to_owned(), format!("-{field}")] {
            check_list(&repos, &conn, &payments, DataType::Payments, "", Some(&order)).await;
        }
    }
    // Spelled out for the trickiest ones, so the reference itself is checked too.
    let amount = check_list(&repos, &conn, &payments, DataType::Payments, "", Some("amount")).await;
    assert_eq!(amount, ["pay_08", "pay_04", "pay_02", "pay_06", "pay_05", "pay_07", "pay_01", "pay_03"], "10.5 = 10.50 → by id");
    let amount_desc = check_list(&repos, &conn, &payments, DataType::Payments, "", Some("-amount")).await;
    assert_eq!(amount_desc, ["pay_03", "pay_01", "pay_07", "pay_05", "pay_06", "pay_02", "pay_04", "pay_08"]);
    let due = check_list(&repos, &conn, &payments, DataType::Payments, "", Some("dueDate")).await;
    assert_eq!(due, ["pay_06", "pay_07", "pay_08", "pay_04", "pay_03", "pay_01", "pay_05", "pay_02"], "missing, null, unreadable first");
    let created_desc = check_list(&repos, &conn, &payments, DataType::Payments, "", Some("-createdDate")).await;
    assert_eq!(created_desc, ["pay_06", "pay_02", "pay_07", "pay_01", "pay_08", "pay_04", "pay_03", "pay_05"]);

    for (dt, fields) in [
        (DataType::Transactions, &["totalAmount", "sourceCreatedDate", "transactionSourceRef.type", "subType"][..]),
        (DataType::Customers, &["customerName", "emailAddress", "createdDate"][..]),
        (DataType::Products, &["isGiftCard", "name"][..]),
    ] {
        let rows = stored_rows(&repos, &conn, dt).await;
        for field in fields {
            for order in [(*field).to_owned(), format!("-{field}")] {
                check_list(&repos, &conn, &rows, dt, "", Some(&order)).await;
            }
        }
    }
    let txns = stored_rows(&repos, &conn, DataType::Transactions).await;
    let by_amount = check_list(&repos, &conn, &txns, DataType::Transactions, "totalAmount<1000", Some("totalAmount")).await;
    assert_eq!(by_amount, ["txn_04", "txn_02", "txn_03", "txn_06", "txn_05", "txn_01"], "numeric, not lexical");
    let by_source_created = check_list(&repos, &conn, &txns, DataType::Transactions, "", Some("-sourceCreatedDate")).await;
    assert_eq!(by_source_created, ["txn_04", "txn_02", "txn_01", "txn_03", "txn_06", "txn_05"], "instants, offsets applied");
}

/// Pages come from one order with an exact total: page 2 of size 3 is the 4th to 6th record,
/// the pages together are the whole list once, a page past the end is empty with the total kept,
/// and deleted records count nowhere.
pub async fn record_list_pages_with_an_exact_total_and_without_deleted_records(repos: Repositories) {
    let conn = seeded_records(&repos).await;
    let payments = stored_rows(&repos, &conn, DataType::Payments).await;
    assert_eq!(repos.records.count(conn.id, DataType::Payments, true).await.unwrap(), 9, "pay_09 is stored");
    let live = repos.records.count(conn.id, DataType::Payments, false).await.unwrap();
    assert_eq!(live, 8);

    for (query, order_by) in [(None, None), (None, Some("-amount")), (Some("amount>0"), Some("dueDate")), (Some("status=Paid"), None)] {
        let full = expected_ids(&payments, DataType::Payments, &record_query(DataType::Payments, 1, 100, query, order_by));
        let mut paged = Vec::new();
        for n in 1..=4 {
            let page = list_records(&repos, &conn, DataType::Payments, &record_query(DataType::Payments, n, 3, query, order_by)).await;
            assert_eq!(page.total, full.len() as u64, "exact total on page {n} of {query:?}");
            assert_eq!(page.request.page, u32::try_from(n).unwrap());
            let ids = record_ids(&page);
            let from = usize::try_from(n - 1).unwrap() * 3;
            assert_eq!(ids, full.iter().skip(from).take(3).copied().collect::<Vec<_>>(), "page {n} of {query:?} / {order_by:?}");
            assert_eq!(page.has_next(), from + 3 < full.len());
            paged.extend(ids.into_iter().map(str::to_owned));
        }
        assert_eq!(paged, full, "pages of {query:?} / {order_by:?} cover the list once");
        assert!(!paged.iter().any(|id| id == "pay_09"));
    }
    let page2 = list_records(&repos, &conn, DataType::Payments, &record_query(DataType::Payments, 2, 3, None, None)).await;
    assert_eq!(record_ids(&page2), ["pay_08", "pay_01", "pay_07"]);
    assert_eq!(page2.total, live);

    // The deleted record matches this query and would sort first.
    let page =
        list_records(&repos, &conn, DataType::Payments, &record_query(DataType::Payments, 1, 3, Some("amount>100"), Some("-amount"))).await;
    assert_eq!((record_ids(&page), page.total), (vec!["pay_03", "pay_01"], 2));
    // Nothing listed for a data type with no records, nor for another connection's.
    let none = list_records(&repos, &conn, DataType::Disputes, &record_query(DataType::Disputes, 1, 3, Some("status=Won"), None)).await;
    assert_eq!((none.items.len(), none.total), (0, 0));
}

/// Following the keyset position of each page's last record gives exactly the pages that offsets
/// give, in the default order and by `createdDate` either way, with a filter, with records that
/// share a creation time (the id breaks the tie, ids compared by code point) and records without
/// one (first ascending, last descending), and skipping deleted records.
pub async fn record_list_keyset_pages_equal_offset_pages(repos: Repositories) {
    let (_, conn) = company_with_connection(&repos, "Co", 0).await;
    let records: Vec<StoredRecord> = (0..23)
        .map(|i| {
            // Upper- and lower-case ids: code-point order differs from most collations.
            let id = if i % 4 == 0 { format!("Cus_{i:02}") } else { format!("cus_{i:02}") };
            StoredRecord {
                created: (i % 7 != 3).then(|| instant("2025-06-01T00:00:00Z") + chrono::Duration::seconds(i64::from(i / 3))),
                source_modified: None,
                document: serde_json::json!({"id": id, "customerName": format!("n{}", i % 2)}),
                deleted: i % 9 == 5,
                id,
            }
        })
        .collect();
    let cp = checkpoint(PullOperationId::new_random(), None, 1, 1);
    write(&repos, &conn, DataType::Customers, &records, &cp, first_write()).await;
    for query in [None, Some("customerName=n1")] {
        for order_by in [None, Some("createdDate"), Some("-createdDate")] {
            let mut seek: Option<Seek> = None;
            let mut pages = 0;
            for n in 1.. {
                let by_offset =
                    list_records(&repos, &conn, DataType::Customers, &record_query(DataType::Customers, n, 3, query, order_by)).await;
                let q = ListQuery { seek: seek.clone(), ..record_query(DataType::Customers, n, 3, query, order_by) };
                let by_keyset = repos.records.list_page(conn.id, DataType::Customers, &q).await.unwrap();
                assert_eq!(by_offset.items, by_keyset, "{query:?} {order_by:?} page {n}");
                pages += 1;
                if !by_offset.has_next() {
                    break;
                }
                let last = by_keyset.last().expect("a page before the last is full");
                seek = Some(Seek { created: last.created, id: last.id.clone() });
            }
            assert!(pages >= 4, "{query:?} {order_by:?}: {pages} pages");
        }
    }
}

/// `read_state` answers in one call what a read checks: the company, the connection only when it
/// belongs to that company, whether the data type was requested and completed (not another type's
/// pulls, nor a failed pull), and the records' version.
pub async fn read_state_reports_company_connection_pulls_and_version(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let (other, _) = company_with_connection(&repos, "Other", 5).await;
    let state = |company: CompanyId, dt| {
        let repos = repos.clone();
        async move { repos.records.read_state(company, conn.id, dt).await.unwrap() }
    };
    let s = state(co.id, DataType::Customers).await;
    assert!(s.company);
    assert_eq!(s.connection.as_ref(), Some(&conn));
    assert_eq!((s.requested, s.completed, s.version), (false, false, 0));
    let s = state(other.id, DataType::Customers).await;
    assert!(s.company && s.connection.is_none(), "another company's connection is not found");
    let s = state(CompanyId::new_random(), DataType::Customers).await;
    assert!(!s.company && s.connection.is_none());

    repos.pull_operations.insert(&[pull_op(&conn, DataType::Customers, DatasetStatus::FetchError, at(10), 0)]).await.unwrap();
    repos.pull_operations.insert(&[pull_op(&conn, DataType::Payments, DatasetStatus::Complete, at(11), 100)]).await.unwrap();
    let s = state(co.id, DataType::Customers).await;
    assert_eq!((s.requested, s.completed), (true, false), "a failed pull is not a completed one");
    repos.pull_operations.insert(&[pull_op(&conn, DataType::Customers, DatasetStatus::Complete, at(12), 100)]).await.unwrap();
    let cp = checkpoint(PullOperationId::new_random(), None, 1, 1);
    write(&repos, &conn, DataType::Customers, &[commerce(CUSTOMERS[0])], &cp, first_write()).await;
    let s = state(co.id, DataType::Customers).await;
    assert_eq!((s.requested, s.completed), (true, true));
    assert_eq!(s.version, repos.records.version(conn.id, DataType::Customers).await.unwrap());
    assert_ne!(s.version, 0);
    assert!(!state(co.id, DataType::Disputes).await.requested, "another data type");
}

/// The records' version moves with every write that changes a record (also a deletion), not with
/// one that changes nothing, and each (connection, data type) has its own.
pub async fn record_version_moves_only_when_records_change(repos: Repositories) {
    let (_, conn) = company_with_connection(&repos, "Co", 0).await;
    let version = |dt| {
        let repos = repos.clone();
        async move { repos.records.version(conn.id, dt).await.unwrap() }
    };
    assert_eq!(version(DataType::Customers).await, 0);
    let cp = checkpoint(PullOperationId::new_random(), None, 1, 1);
    let mut page: Vec<StoredRecord> = CUSTOMERS.iter().map(|j| commerce(j)).collect();
    write(&repos, &conn, DataType::Customers, &page, &cp, first_write()).await;
    let v1 = version(DataType::Customers).await;
    assert_ne!(v1, 0);
    write(&repos, &conn, DataType::Customers, &page, &cp, second_write()).await;
    assert_eq!(version(DataType::Customers).await, v1, "nothing changed");
    page[0].deleted = true;
    write(&repos, &conn, DataType::Customers, &page, &cp, second_write()).await;
    assert_ne!(version(DataType::Customers).await, v1, "a deletion is a change");
    assert_eq!(version(DataType::Payments).await, 0, "another data type");
}

/// Date text in documents is read exactly as `parse_instant` reads it, for the forms the sync
/// engine and Codat write (date only, minutes, seconds with or without a fraction, `T`/`t`/space,
/// `Z`/`z` or an offset); malformed or impossible dates (29 February 2025, hour 24, a missing
/// digit, a lower-case `t` without an offset), and values that are not strings, count as missing,
/// on both backends.
pub async fn record_list_reads_document_dates_like_the_evaluator(repos: Repositories) {
    let (_, conn) = company_with_connection(&repos, "Co", 0).await;
    let dates = [
        r#""2025-06-02""#,
        r#""2024-02-29""#,
        r#""2025-06-02T17:14""#,
        r#""2025-06-02T17:14:12""#,
        r#""2025-06-02 17:14:12.5""#,
        r#""2025-06-02t17:14:12z""#,
        r#""2025-06-02T17:14:12Z""#,
        r#""2025-06-02T17:14:12.1Z""#,
        r#""2025-06-02T17:14:12.123456+14:00""#,
        r#""2025-06-02T17:14:12-00:00""#,
        r#""2025-06-01T23:59:59.999999-05:30""#,
        r#""1999-12-31T23:59:59Z""#,
        r#""0001-01-01T00:00:00Z""#,
        r#""9999-12-31""#,
        r#""2025-06-02T17:14:12.5000000Z""#,
        r#""2025-06-02T16:14:12.1234567-01:00""#,
        r#""2025-02-29""#,
        r#""2025-06-02t17:14:12""#,
        r#""2025-04-31""#,
        r#""2025-13-01""#,
        r#""2025-06-02T24:00:00Z""#,
        r#""2025-06-02T17:60:00Z""#,
        r#""2025-06-02T17:14Z""#,
        r#""2025-06-02 17:14""#,
        r#""2025-06-02T17:14:12.Z""#,
        r#""2025-06-02T17:14:12+0530""#,
        r#""2025-06-02T17:14:12 Z""#,
        r#""20250602""#,
        r#""2460828.5""#,
        r#""now""#,
        r#""""#,
        "1748884452",
        "true",
        r#"{"date": "2025-06-02"}"#,
    ];
    let page: Vec<StoredRecord> = dates
        .iter()
        .enumerate()
        .map(|(i, d)| commerce(&format!(r#"{{"id": "due_{i:02}", "amount": 1, "currency": "USD", "dueDate": {d}}}"#)))
        .collect();
    write(&repos, &conn, DataType::Payments, &page, &checkpoint(PullOperationId::new_random(), None, 1, 1), at(100)).await;
    let rows = stored_rows(&repos, &conn, DataType::Payments).await;
    let instants = ["2025-06-02", "2025-06-02T17:14:12Z", "2025-06-02T03:14:12.123456Z", "2025-06-02T17:14:12.5Z", "2024-02-29T00:00:00Z"];
    for at in instants {
        for op in ["=", "!=", ">", "<", ">=", "<="] {
            check_list(&repos, &conn, &rows, DataType::Payments, &format!("dueDate{op}{at}"), None).await;
        }
    }
    let readable = check_list(&repos, &conn, &rows, DataType::Payments, "dueDate>0001-01-01", None).await;
    assert_eq!(readable.len(), 15, "the first 16 dates but 0001-01-01 itself are readable: {readable:?}");
    check_list(&repos, &conn, &rows, DataType::Payments, "", Some("dueDate")).await;
    check_list(&repos, &conn, &rows, DataType::Payments, "", Some("-dueDate")).await;
}

// ---------------------------------------------------------------------------------------------
// Webhooks: the event outbox, consumers, deliveries and attempts
// ---------------------------------------------------------------------------------------------

/// An outbox event about `company`. The body is JSON in no canonical form (spacing, key order,
/// a trailing zero, non-ASCII), so a backend that re-encodes it instead of storing it byte for
/// byte is caught.
fn outbox_event(company: &Company, event_type: EventType, generated: DateTime<Utc>) -> OutboxEvent {
    let id = Uuid::new_v4();
    OutboxEvent {
        id,
        event_type,
        company_id: company.id,
        company_tags: company.tags.clone(),
        generated,
        body: format!(r#"{{"id":"{id}",  "eventType": "{event_type}", "payload": {{"z": 1.50, "a": "café ✓"}}}}"#),
    }
}

/// Puts events in the outbox the way the services do, with a write: here a throwaway company's
/// insert (events are not tied to the write that carries them).
async fn emit(repos: &Repositories, events: &[OutboxEvent]) {
    let carrier = company("Carrier", at(0));
    repos.companies.insert(&carrier, events).await.unwrap_or_else(|e| panic!("insert with {} events: {e}", events.len()));
}

/// Every event in the outbox, oldest first.
async fn all_events(repos: &Repositories) -> Vec<OutboxEvent> {
    repos.webhooks.list_events(1000).await.expect("list events")
}

/// A consumer of `event_types` with `company_tags`, enabled and not failing.
fn webhook_consumer(url: &str, event_types: &[EventType], company_tags: &[&str], created: DateTime<Utc>) -> WebhookConsumer {
    WebhookConsumer {
        id: WebhookConsumerId::new_random(),
        url: url.into(),
        disabled: false,
        event_types: event_types.to_vec(),
        company_tags: company_tags.iter().map(|t| (*t).to_owned()).collect(),
        secret: sealed("k1", &format!("sealed-secret-of-{url}")),
        created,
        failing_since: None,
        disabled_reason: None,
    }
}

async fn add_consumer(repos: &Repositories, c: WebhookConsumer) -> WebhookConsumer {
    repos.webhooks.insert_consumer_limited(&c, 50).await.unwrap_or_else(|e| panic!("insert consumer {}: {e}", c.url));
    c
}

async fn get_consumer(repos: &Repositories, id: WebhookConsumerId) -> WebhookConsumer {
    repos.webhooks.get_consumer(id).await.expect("get consumer").unwrap_or_else(|| panic!("consumer {id} exists"))
}

async fn fan_out(repos: &Repositories, now: DateTime<Utc>, limit: u32) -> u64 {
    repos.webhooks.fan_out(now, limit).await.expect("fan out")
}

async fn lease_due(repos: &Repositories, worker: &str, now: DateTime<Utc>, lease_seconds: u64, limit: u32) -> Vec<Delivery> {
    repos.webhooks.lease_deliveries(worker, now, lease(lease_seconds), limit).await.expect("lease deliveries")
}

async fn counts(repos: &Repositories, consumer: WebhookConsumerId) -> DeliveryCounts {
    repos.webhooks.delivery_counts(consumer).await.expect("delivery counts")
}

fn delivery_counts(pending: u64, delivered: u64, failed: u64) -> DeliveryCounts {
    DeliveryCounts { pending, delivered, failed }
}

/// An attempt at `d`; it succeeded when there is no `error`.
fn attempt(d: &Delivery, number: u32, when: DateTime<Utc>, status_code: Option<u16>, error: Option<&str>, latency_ms: u64) -> Attempt {
    Attempt {
        delivery_id: d.id,
        consumer_id: d.consumer_id,
        event_id: d.event_id,
        event_type: d.event_type,
        number,
        at: when,
        status_code,
        latency_ms,
        ok: error.is_none(),
        error: error.map(str::to_owned),
    }
}

async fn record_outcome(repos: &Repositories, worker: &str, a: &Attempt, after: AfterAttempt) -> bool {
    repos.webhooks.record_attempt(worker, a, after).await.expect("record attempt")
}

fn delivery_event_ids(ds: &[Delivery]) -> Vec<Uuid> {
    ds.iter().map(|d| d.event_id).collect()
}

/// An event passed to a company insert or delete is in the outbox afterwards exactly as given
/// (tags, microseconds, body byte for byte), in write order; a conflicting insert and the delete
/// of a missing company write none. `company.deleted` outlives its company.
pub async fn company_writes_put_their_events_in_the_outbox_and_failed_writes_do_not(repos: Repositories) {
    assert!(all_events(&repos).await.is_empty());
    let c = Company { tags: tags(&[("region", "us"), ("tier", "gold")]), ..company("Acme", at(0)) };
    let created = outbox_event(&c, EventType::CompanyCreated, at_micros(1, 123_456));
    repos.companies.insert(&c, std::slice::from_ref(&created)).await.unwrap();
    assert_eq!(all_events(&repos).await, vec![created.clone()]);

    let dup = Company { name: "Dup".into(), ..c.clone() };
    assert_conflict(repos.companies.insert(&dup, &[outbox_event(&dup, EventType::CompanyCreated, at(2))]).await, "duplicate company");
    let ghost = company("Ghost", at(3));
    assert!(!repos.companies.delete(ghost.id, &[outbox_event(&ghost, EventType::CompanyDeleted, at(3))]).await.unwrap());
    assert_eq!(all_events(&repos).await, vec![created.clone()], "failed writes leave no event");

    // Several events in one write are all stored, in order, and stay after their company is gone.
    let plain = insert(&repos, company("Plain", at(4))).await;
    let deleted = outbox_event(&c, EventType::CompanyDeleted, at(5));
    let also = outbox_event(&plain, EventType::CompanyDeleted, at(5));
    assert!(repos.companies.delete(c.id, &[deleted.clone(), also.clone()]).await.unwrap());
    assert_eq!(repos.companies.get(c.id).await.unwrap(), None);
    assert_eq!(all_events(&repos).await, vec![created.clone(), deleted, also]);
    assert_eq!(repos.webhooks.list_events(1).await.unwrap(), vec![created], "limit keeps the oldest");
}

/// Connection insert, update, `set_status_if` and delete write their events with the change; an
/// insert that fails, an update of a missing connection, a compare-and-set that changes nothing
/// and the delete of a missing connection write none.
pub async fn connection_writes_put_their_events_in_the_outbox_only_when_they_change_something(repos: Repositories) {
    let co = insert(&repos, Company { tags: tags(&[("tier", "gold")]), ..company("Co", at(0)) }).await;
    let ev = |t: EventType, s: i64| outbox_event(&co, t, at(s));
    let mut expected = Vec::new();

    let conn = connection(&co, ConnectionStatus::PendingAuth, at(1));
    let e = ev(EventType::ConnectionCreated, 1);
    repos.connections.insert(&conn, std::slice::from_ref(&e)).await.unwrap();
    expected.push(e);
    let elsewhere = company("Ghost", at(0));
    assert_not_found(
        repos
            .connections
            .insert(&connection(&elsewhere, ConnectionStatus::PendingAuth, at(2)), &[ev(EventType::ConnectionCreated, 2)])
            .await,
        "connection of a missing company",
    );
    assert_conflict(repos.connections.insert(&conn, &[ev(EventType::ConnectionCreated, 2)]).await, "duplicate connection");

    let linked = Connection { status: ConnectionStatus::Linked, source_account: Some("acct_1".into()), ..conn.clone() };
    let e = ev(EventType::ConnectionConnected, 3);
    repos.connections.update(&linked, std::slice::from_ref(&e)).await.unwrap();
    expected.push(e);
    let ghost = connection(&co, ConnectionStatus::Linked, at(2));
    assert_not_found(repos.connections.update(&ghost, &[ev(EventType::ConnectionConnected, 4)]).await, "update of a missing connection");

    let e = ev(EventType::ConnectionDisconnected, 5);
    assert!(
        repos
            .connections
            .set_status_if(conn.id, ConnectionStatus::Linked, ConnectionStatus::Unlinked, std::slice::from_ref(&e))
            .await
            .unwrap()
    );
    expected.push(e);
    assert!(
        !repos
            .connections
            .set_status_if(conn.id, ConnectionStatus::Linked, ConnectionStatus::Deauthorized, &[ev(EventType::ConnectionDisconnected, 6)])
            .await
            .unwrap()
    );
    assert!(
        !repos
            .connections
            .set_status_if(ghost.id, ConnectionStatus::Linked, ConnectionStatus::Unlinked, &[ev(EventType::ConnectionDisconnected, 6)])
            .await
            .unwrap()
    );
    assert_eq!(repos.connections.find(conn.id).await.unwrap().map(|c| c.status), Some(ConnectionStatus::Unlinked));

    assert!(!repos.connections.delete(elsewhere.id, conn.id, &[ev(EventType::ConnectionDeleted, 7)]).await.unwrap());
    let e = ev(EventType::ConnectionDeleted, 8);
    assert!(repos.connections.delete(co.id, conn.id, std::slice::from_ref(&e)).await.unwrap());
    expected.push(e);
    assert!(!repos.connections.delete(co.id, conn.id, &[ev(EventType::ConnectionDeleted, 9)]).await.unwrap());

    assert_eq!(all_events(&repos).await, expected);
}

/// `save_linked` and a pull operation `update` write their events with the change; a
/// `save_linked` or `update` that is NotFound (the whole batch rolled back) writes none.
pub async fn save_linked_and_pull_operation_updates_put_their_events_in_the_outbox(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let linked = Connection { status: ConnectionStatus::Linked, source_account: Some("acct_1".into()), ..conn.clone() };
    let op = pull_op(&conn, DataType::Customers, DatasetStatus::Queued, at(10), 0);
    let connected = outbox_event(&co, EventType::ConnectionConnected, at(10));
    repos.connections.save_linked(&linked, std::slice::from_ref(&op), std::slice::from_ref(&connected)).await.unwrap();
    assert_eq!(all_events(&repos).await, vec![connected.clone()]);

    let ghost = connection(&co, ConnectionStatus::Linked, at(2));
    assert_not_found(
        repos.connections.save_linked(&ghost, &[], &[outbox_event(&co, EventType::ConnectionConnected, at(11))]).await,
        "save_linked of a missing connection",
    );
    let mixed = vec![
        pull_op(&conn, DataType::Orders, DatasetStatus::Queued, at(11), 0),
        pull_op(&ghost, DataType::Orders, DatasetStatus::Queued, at(11), 0),
    ];
    assert_not_found(
        repos.connections.save_linked(&linked, &mixed, &[outbox_event(&co, EventType::ConnectionReconnected, at(11))]).await,
        "save_linked with an operation on a missing connection",
    );

    let done = PullOperation { status: DatasetStatus::Complete, progress: 100, completed: Some(at(20)), ..op.clone() };
    let read = outbox_event(&co, EventType::ReadCompleted, at_micros(20, 1));
    let initial = outbox_event(&co, EventType::ReadCompletedInitial, at_micros(20, 2));
    repos.pull_operations.update(&done, &[read.clone(), initial.clone()]).await.unwrap();
    let ghost_op = pull_op(&conn, DataType::Payments, DatasetStatus::Complete, at(21), 100);
    assert_not_found(
        repos.pull_operations.update(&ghost_op, &[outbox_event(&co, EventType::ReadCompleted, at(21))]).await,
        "update of a missing pull operation",
    );
    assert_eq!(all_events(&repos).await, vec![connected, read, initial]);
}

/// The event is written in the transaction of the change: when it cannot be stored (here, an
/// event id already in the outbox) the write fails and the change is rolled back too, for every
/// write that carries events.
pub async fn a_change_whose_event_cannot_be_stored_is_rolled_back(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let op = pull_op(&conn, DataType::Customers, DatasetStatus::Queued, at(10), 0);
    repos.pull_operations.insert(std::slice::from_ref(&op)).await.unwrap();
    let taken = outbox_event(&co, EventType::CompanyCreated, at(1));
    emit(&repos, std::slice::from_ref(&taken)).await;
    let before = all_events(&repos).await;
    let dup = |t: EventType| OutboxEvent { event_type: t, ..taken.clone() };

    let fresh = company("Fresh", at(2));
    assert!(repos.companies.insert(&fresh, &[dup(EventType::CompanyCreated)]).await.is_err(), "company insert");
    assert_eq!(repos.companies.get(fresh.id).await.unwrap(), None);
    assert!(repos.companies.delete(co.id, &[dup(EventType::CompanyDeleted)]).await.is_err(), "company delete");
    assert!(repos.companies.get(co.id).await.unwrap().is_some());

    let new_conn = connection(&co, ConnectionStatus::PendingAuth, at(3));
    assert!(repos.connections.insert(&new_conn, &[dup(EventType::ConnectionCreated)]).await.is_err(), "connection insert");
    assert_eq!(repos.connections.find(new_conn.id).await.unwrap(), None);
    let linked = Connection { status: ConnectionStatus::Linked, source_account: Some("acct_1".into()), ..conn.clone() };
    assert!(repos.connections.update(&linked, &[dup(EventType::ConnectionConnected)]).await.is_err(), "connection update");
    let queued = pull_op(&conn, DataType::Orders, DatasetStatus::Queued, at(11), 0);
    assert!(
        repos.connections.save_linked(&linked, std::slice::from_ref(&queued), &[dup(EventType::ConnectionConnected)]).await.is_err(),
        "save_linked"
    );
    assert_eq!(repos.pull_operations.get(co.id, queued.id).await.unwrap(), None);
    assert!(
        repos
            .connections
            .set_status_if(conn.id, ConnectionStatus::PendingAuth, ConnectionStatus::Linked, &[dup(EventType::ConnectionConnected)])
            .await
            .is_err(),
        "set_status_if"
    );
    assert_eq!(repos.connections.find(conn.id).await.unwrap(), Some(conn.clone()), "the connection is unchanged");
    assert!(repos.connections.delete(co.id, conn.id, &[dup(EventType::ConnectionDeleted)]).await.is_err(), "connection delete");
    assert_eq!(repos.connections.find(conn.id).await.unwrap(), Some(conn));

    let done = PullOperation { status: DatasetStatus::Complete, progress: 100, completed: Some(at(20)), ..op.clone() };
    assert!(repos.pull_operations.update(&done, &[dup(EventType::ReadCompleted)]).await.is_err(), "pull operation update");
    assert_eq!(repos.pull_operations.get(co.id, op.id).await.unwrap(), Some(op));
    assert_eq!(all_events(&repos).await, before, "no event written either");
}

/// `insert_consumer_limited` stores consumers up to the limit, then is a Conflict; a duplicate id
/// is a Conflict too; deleting one makes room again.
pub async fn webhook_consumers_insert_up_to_the_limit_then_conflict(repos: Repositories) {
    for i in 0..3 {
        let c = webhook_consumer(&format!("https://h{i}.example/"), &[EventType::CompanyCreated], &[], at(i));
        repos.webhooks.insert_consumer_limited(&c, 3).await.unwrap();
    }
    let fourth = webhook_consumer("https://h3.example/", &[EventType::CompanyCreated], &[], at(3));
    assert_conflict(repos.webhooks.insert_consumer_limited(&fourth, 3).await, "fourth consumer with a limit of 3");
    let listed = repos.webhooks.list_consumers().await.unwrap();
    assert_eq!(listed.len(), 3);
    let first = listed[0].clone();
    let dup = WebhookConsumer { url: "https://other.example/".into(), ..first.clone() };
    assert_conflict(repos.webhooks.insert_consumer_limited(&dup, 10).await, "duplicate consumer id");
    assert_eq!(get_consumer(&repos, first.id).await, first, "the original is untouched");
    assert!(repos.webhooks.delete_consumer(first.id).await.unwrap());
    repos.webhooks.insert_consumer_limited(&fourth, 3).await.unwrap();
    assert_eq!(repos.webhooks.list_consumers().await.unwrap().len(), 3);
}

/// Many concurrent creators cannot exceed the consumer limit together.
pub async fn concurrent_consumer_creation_never_exceeds_the_limit(repos: Repositories) {
    const MAX: usize = 5;
    let mut tasks = JoinSet::new();
    for i in 0..20 {
        let webhooks = repos.webhooks.clone();
        tasks.spawn(async move {
            let c = webhook_consumer(&format!("https://c{i}.example/"), &[EventType::CompanyCreated], &[], at(i));
            webhooks.insert_consumer_limited(&c, MAX).await
        });
    }
    let (mut ok, mut conflict) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.expect("task") {
            Ok(()) => ok += 1,
            Err(RepositoryError::Conflict(_)) => conflict += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!((ok, conflict), (MAX, 20 - MAX));
    assert_eq!(repos.webhooks.list_consumers().await.unwrap().len(), MAX);
}

/// A consumer reads back exactly as stored (event types in order, tags, sealed secret, failing
/// streak, disabled reason, microseconds); consumers are listed oldest first; disabling sets the
/// flag and the reason, enabling clears the reason and the failing streak; delete removes it once.
/// Unknown ids: `None`/`false`.
pub async fn webhook_consumers_round_trip_and_are_disabled_enabled_and_deleted(repos: Repositories) {
    let full = WebhookConsumer {
        id: WebhookConsumerId::new_random(),
        url: "https://hooks.example.com/tributary?x=1&y=%C3%A9".into(),
        disabled: true,
        event_types: vec![EventType::ReadCompletedInitial, EventType::CompanyCreated, EventType::ConnectionFailed],
        company_tags: vec!["region:us".into(), "tier:gold: plus".into()],
        secret: sealed("key-7", "c2VhbGVk+/="),
        created: at_micros(10, 123_456),
        failing_since: Some(at_micros(20, 654_321)),
        disabled_reason: Some("Disabled after failing for 5.0 days (last error: HTTP 500)".into()),
    };
    let plain = webhook_consumer("http://localhost:9000/hook", &[EventType::CompanyDeleted], &[], at(5));
    let every = webhook_consumer("https://every.example/", &EventType::ALL, &[], at(10));
    for c in [&full, &plain, &every] {
        add_consumer(&repos, c.clone()).await;
    }
    assert_eq!(get_consumer(&repos, full.id).await, full);
    assert_eq!(get_consumer(&repos, plain.id).await, plain);
    assert_eq!(repos.webhooks.get_consumer(WebhookConsumerId::new_random()).await.unwrap(), None);
    assert_eq!(repos.webhooks.list_consumers().await.unwrap(), vec![plain.clone(), every.clone(), full.clone()], "created order");

    // Disabling again replaces the reason and keeps the failing streak; enabling clears both (an
    // old streak must not disable the consumer again at its next failure); nothing else changes.
    assert!(repos.webhooks.set_consumer_disabled(full.id, true, Some("Disabled by an administrator".into())).await.unwrap());
    let again = WebhookConsumer { disabled_reason: Some("Disabled by an administrator".into()), ..full.clone() };
    assert_eq!(get_consumer(&repos, full.id).await, again);
    assert!(repos.webhooks.set_consumer_disabled(full.id, false, None).await.unwrap());
    let enabled = WebhookConsumer { disabled: false, disabled_reason: None, failing_since: None, ..full.clone() };
    assert_eq!(get_consumer(&repos, full.id).await, enabled);
    assert!(repos.webhooks.set_consumer_disabled(plain.id, true, Some("Disabled by an administrator".into())).await.unwrap());
    let off = WebhookConsumer { disabled: true, disabled_reason: Some("Disabled by an administrator".into()), ..plain.clone() };
    assert_eq!(get_consumer(&repos, plain.id).await, off);
    assert!(!repos.webhooks.set_consumer_disabled(WebhookConsumerId::new_random(), true, None).await.unwrap());

    assert!(repos.webhooks.delete_consumer(plain.id).await.unwrap());
    assert!(!repos.webhooks.delete_consumer(plain.id).await.unwrap(), "already gone");
    assert_eq!(repos.webhooks.get_consumer(plain.id).await.unwrap(), None);
    let left: Vec<WebhookConsumerId> = repos.webhooks.list_consumers().await.unwrap().iter().map(|c| c.id).collect();
    assert_eq!(left, vec![every.id, full.id]);
}

/// `fan_out` creates one `Pending` delivery, due `now`, per consumer that accepts the event (its
/// event types, any of its company tags, enabled), marks the events done so a second call finds
/// nothing, takes at most `limit` events, oldest first, and counts events without consumers too.
pub async fn fan_out_creates_one_delivery_per_accepting_consumer_exactly_once(repos: Repositories) {
    let us = Company { tags: tags(&[("region", "us"), ("tier", "gold")]), ..company("US", at(0)) };
    let eu = Company { tags: tags(&[("region", "eu")]), ..company("EU", at(1)) };
    let all = add_consumer(
        &repos,
        webhook_consumer("https://all.example/", &[EventType::CompanyCreated, EventType::CompanyDeleted], &[], at(10)),
    )
    .await;
    let us_only = add_consumer(&repos, webhook_consumer("https://us.example/", &[EventType::CompanyCreated], &["region:us"], at(11))).await;
    let gold = add_consumer(
        &repos,
        webhook_consumer("https://gold.example/", &[EventType::CompanyDeleted], &["region:apac", "tier:gold"], at(12)),
    )
    .await;
    let off =
        add_consumer(&repos, WebhookConsumer { disabled: true, ..webhook_consumer("https://off.example/", &EventType::ALL, &[], at(13)) })
            .await;
    assert_eq!(fan_out(&repos, at(100), 10).await, 0, "nothing to fan out");

    let e1 = outbox_event(&us, EventType::CompanyCreated, at(20));
    let e2 = outbox_event(&eu, EventType::CompanyCreated, at(21));
    let e3 = outbox_event(&us, EventType::CompanyDeleted, at(22));
    let e4 = outbox_event(&eu, EventType::CompanyDeleted, at(23));
    let e5 = outbox_event(&us, EventType::ConnectionCreated, at(24));
    emit(&repos, &[e1.clone(), e2.clone(), e3.clone(), e4.clone(), e5.clone()]).await;

    assert_eq!(fan_out(&repos, at(100), 2).await, 2, "limit");
    assert_eq!(fan_out(&repos, at(100), 10).await, 3, "the rest, including an event nobody subscribes to");
    assert_eq!(fan_out(&repos, at(101), 10).await, 0, "never twice");
    assert_eq!(all_events(&repos).await.len(), 5, "fanned-out events stay listed");

    assert_eq!(counts(&repos, all.id).await, delivery_counts(4, 0, 0));
    assert_eq!(counts(&repos, us_only.id).await, delivery_counts(1, 0, 0));
    assert_eq!(counts(&repos, gold.id).await, delivery_counts(1, 0, 0));
    assert_eq!(counts(&repos, off.id).await, delivery_counts(0, 0, 0), "a disabled consumer gets nothing");

    assert!(lease_due(&repos, "w1", at_micros(99, 999_999), 60, 100).await.is_empty(), "due at `now` of the fan-out");
    let leased = lease_due(&repos, "w1", at(100), 60, 100).await;
    assert_eq!(delivery_event_ids(&leased), vec![e1.id, e1.id, e2.id, e3.id, e3.id, e4.id], "event order");
    let mut pairs: Vec<(Uuid, WebhookConsumerId)> = leased.iter().map(|d| (d.event_id, d.consumer_id)).collect();
    pairs.sort();
    let mut expected = vec![(e1.id, all.id), (e1.id, us_only.id), (e2.id, all.id), (e3.id, all.id), (e3.id, gold.id), (e4.id, all.id)];
    expected.sort();
    assert_eq!(pairs, expected);
    let ids: std::collections::BTreeSet<Uuid> = leased.iter().map(|d| d.id).collect();
    assert_eq!(ids.len(), 6, "distinct delivery ids");

    let d = leased.iter().find(|d| d.event_id == e2.id).expect("e2 to all");
    let expected = Delivery {
        id: d.id,
        event_id: e2.id,
        event_type: EventType::CompanyCreated,
        consumer_id: all.id,
        url: all.url.clone(),
        secret: all.secret.clone(),
        body: e2.body.clone(),
        attempts: 0,
        consumer_failing_since: None,
        final_attempt: false,
        created: at(100),
    };
    assert_eq!(*d, expected);
}

/// Concurrent `fan_out` calls never fan one event out twice: the counts they return add up to the
/// number of events, and each consumer gets one delivery per event.
pub async fn concurrent_fan_outs_fan_each_event_out_once(repos: Repositories) {
    let c = add_consumer(&repos, webhook_consumer("https://a.example/", &[EventType::CompanyCreated], &[], at(0))).await;
    let co = company("Co", at(0));
    for round in 0..5u64 {
        let events: Vec<OutboxEvent> = (0..20).map(|i| outbox_event(&co, EventType::CompanyCreated, at(i))).collect();
        emit(&repos, &events).await;
        let (a, b) = tokio::join!(repos.webhooks.fan_out(at(100), 7), repos.webhooks.fan_out(at(100), 7));
        let (a, b) = (a.expect("fan out a"), b.expect("fan out b"));
        assert!(a <= 7 && b <= 7, "round {round}: {a} {b}");
        let mut total = a + b;
        loop {
            let n = fan_out(&repos, at(100), 7).await;
            if n == 0 {
                break;
            }
            total += n;
        }
        assert_eq!(total, 20, "round {round}: every event fanned out once ({a} + {b} concurrently)");
        assert_eq!(counts(&repos, c.id).await, delivery_counts(20 * (round + 1), 0, 0), "round {round}");
    }
}

/// `lease_deliveries` returns due deliveries in event order, up to `limit`; a leased delivery is
/// not returned to anyone while its lease is live (until after `lease_until`), and all are again
/// once their leases expire; deliveries not yet due are skipped.
pub async fn lease_deliveries_leases_due_deliveries_in_event_order_once_per_live_lease(repos: Repositories) {
    add_consumer(&repos, webhook_consumer("https://a.example/", &[EventType::CompanyCreated], &[], at(0))).await;
    let co = company("Co", at(0));
    let events: Vec<OutboxEvent> = (0..3).map(|i| outbox_event(&co, EventType::CompanyCreated, at(i))).collect();
    for e in &events {
        emit(&repos, std::slice::from_ref(e)).await;
    }
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    assert!(lease_due(&repos, "w1", at(100), 60, 10).await.is_empty(), "not fanned out yet");
    assert_eq!(fan_out(&repos, at(100), 10).await, 3);

    assert!(lease_due(&repos, "w1", at_micros(99, 999_999), 60, 10).await.is_empty(), "not due yet");
    let first = lease_due(&repos, "w1", at(100), 60, 2).await;
    assert_eq!(delivery_event_ids(&first), ids[..2]);
    let second = lease_due(&repos, "w2", at(100), 60, 10).await;
    assert_eq!(delivery_event_ids(&second), ids[2..]);
    assert!(lease_due(&repos, "w3", at(130), 60, 10).await.is_empty(), "all leased");
    assert!(lease_due(&repos, "w1", at(160), 60, 10).await.is_empty(), "live until after lease_until, for the holder too");
    let again = lease_due(&repos, "w3", at_micros(160, 1), 60, 10).await;
    assert_eq!(delivery_event_ids(&again), ids, "expired leases are taken over");
    let before: Vec<Uuid> = first.iter().chain(&second).map(|d| d.id).collect();
    assert_eq!(again.iter().map(|d| d.id).collect::<Vec<_>>(), before, "the same deliveries");
    assert!(again.iter().all(|d| d.attempts == 0));
    assert!(lease_due(&repos, "w1", at(200), 60, 10).await.is_empty(), "w3 holds them");
}

/// Deliveries of a disabled consumer are not leased; once it is enabled again they are.
pub async fn deliveries_of_a_disabled_consumer_are_not_leased_until_it_is_enabled(repos: Repositories) {
    let a = add_consumer(&repos, webhook_consumer("https://a.example/", &[EventType::CompanyCreated], &[], at(0))).await;
    let b = add_consumer(&repos, webhook_consumer("https://b.example/", &[EventType::CompanyCreated], &[], at(1))).await;
    emit(&repos, &[outbox_event(&company("Co", at(0)), EventType::CompanyCreated, at(2))]).await;
    assert_eq!(fan_out(&repos, at(100), 10).await, 1);
    assert!(repos.webhooks.set_consumer_disabled(a.id, true, Some("failing".into())).await.unwrap());
    let leased = lease_due(&repos, "w1", at(100), 60, 10).await;
    assert_eq!(leased.iter().map(|d| d.consumer_id).collect::<Vec<_>>(), vec![b.id]);
    assert!(repos.webhooks.set_consumer_disabled(a.id, false, None).await.unwrap());
    let leased = lease_due(&repos, "w1", at(101), 60, 10).await;
    assert_eq!(leased.iter().map(|d| d.consumer_id).collect::<Vec<_>>(), vec![a.id]);
}

/// `record_attempt` by the lease holder applies `Delivered`, `RetryAt` (released, leasable again
/// from that time, with its attempt count) and `GiveUp`, and returns `true`; a failure starts the
/// consumer's failing streak (kept by later failures) and a success clears it; attempts are
/// listed newest first with every field; `delivery_counts` follows.
pub async fn record_attempt_applies_delivered_retry_and_give_up_and_tracks_the_failing_streak(repos: Repositories) {
    let c = add_consumer(&repos, webhook_consumer("https://a.example/", &[EventType::CompanyCreated], &[], at(0))).await;
    let co = company("Co", at(0));
    for i in 0..3 {
        emit(&repos, &[outbox_event(&co, EventType::CompanyCreated, at(i))]).await;
    }
    assert_eq!(fan_out(&repos, at(100), 10).await, 3);
    let ds = lease_due(&repos, "w1", at(100), 600, 10).await;
    assert_eq!(ds.len(), 3);

    let a0 = attempt(&ds[0], 1, at_micros(101, 5), Some(204), None, 12);
    assert!(record_outcome(&repos, "w1", &a0, AfterAttempt::Delivered).await);
    assert_eq!(get_consumer(&repos, c.id).await.failing_since, None);

    let a1 = attempt(&ds[1], 1, at_micros(102, 7), Some(500), Some("the receiver answered HTTP 500"), 30);
    assert!(record_outcome(&repos, "w1", &a1, AfterAttempt::RetryAt(at(200))).await);
    assert_eq!(get_consumer(&repos, c.id).await.failing_since, Some(at_micros(102, 7)), "a failure starts the streak");

    let a2 = attempt(&ds[2], 1, at(103), None, Some("timed out after 15 s"), 15_000);
    assert!(record_outcome(&repos, "w1", &a2, AfterAttempt::GiveUp).await);
    assert_eq!(get_consumer(&repos, c.id).await.failing_since, Some(at_micros(102, 7)), "a streak keeps its start");
    assert_eq!(counts(&repos, c.id).await, delivery_counts(1, 1, 1));

    assert!(lease_due(&repos, "w2", at_micros(199, 999_999), 600, 10).await.is_empty(), "the retry is not due yet");
    let retry = lease_due(&repos, "w2", at(200), 600, 10).await;
    assert_eq!(retry.iter().map(|d| d.id).collect::<Vec<_>>(), vec![ds[1].id], "released and due; the others are done");
    assert_eq!(retry[0].attempts, 1);
    assert_eq!(retry[0].consumer_failing_since, Some(at_micros(102, 7)));
    let a3 = attempt(&retry[0], 2, at(201), Some(200), None, 8);
    assert!(record_outcome(&repos, "w2", &a3, AfterAttempt::Delivered).await);
    assert_eq!(get_consumer(&repos, c.id).await.failing_since, None, "a success clears the streak");
    assert_eq!(counts(&repos, c.id).await, delivery_counts(0, 2, 1));
    assert!(lease_due(&repos, "w3", at(100_000), 600, 10).await.is_empty(), "nothing pending");

    assert_eq!(repos.webhooks.list_attempts(c.id, 10).await.unwrap(), vec![a3.clone(), a2.clone(), a1, a0]);
    assert_eq!(repos.webhooks.list_attempts(c.id, 2).await.unwrap(), vec![a3, a2]);
    assert!(repos.webhooks.list_attempts(WebhookConsumerId::new_random(), 10).await.unwrap().is_empty());
    assert_eq!(counts(&repos, WebhookConsumerId::new_random()).await, DeliveryCounts::default());
}

/// A worker whose lease expired and was taken over records its attempt but gets `false` and
/// changes nothing about the delivery; so does a worker that never held it; the holder's
/// outcome applies.
pub async fn record_attempt_by_a_worker_that_lost_its_lease_leaves_the_delivery_alone(repos: Repositories) {
    let c = add_consumer(&repos, webhook_consumer("https://a.example/", &[EventType::CompanyCreated], &[], at(0))).await;
    emit(&repos, &[outbox_event(&company("Co", at(0)), EventType::CompanyCreated, at(1))]).await;
    assert_eq!(fan_out(&repos, at(100), 10).await, 1);
    let d = lease_due(&repos, "w1", at(100), 30, 10).await.pop().expect("leased");
    let taken = lease_due(&repos, "w2", at_micros(130, 1), 30, 10).await;
    assert_eq!(taken.iter().map(|t| t.id).collect::<Vec<_>>(), vec![d.id]);

    let late = attempt(&d, 1, at(101), Some(200), None, 50);
    assert!(!record_outcome(&repos, "w1", &late, AfterAttempt::Delivered).await, "the lease was lost");
    assert_eq!(counts(&repos, c.id).await, delivery_counts(1, 0, 0), "still pending");
    assert!(lease_due(&repos, "w3", at(140), 30, 10).await.is_empty(), "w2 still holds it");
    assert_eq!(repos.webhooks.list_attempts(c.id, 10).await.unwrap(), vec![late], "the attempt itself is recorded");

    let stranger = attempt(&d, 1, at(141), Some(500), Some("HTTP 500"), 5);
    assert!(!record_outcome(&repos, "w3", &stranger, AfterAttempt::GiveUp).await, "never held it");
    assert_eq!(counts(&repos, c.id).await, delivery_counts(1, 0, 0));
    assert!(lease_due(&repos, "w3", at(150), 30, 10).await.is_empty(), "w2 still holds it");

    let ok = attempt(&taken[0], 1, at(142), Some(200), None, 5);
    assert!(record_outcome(&repos, "w2", &ok, AfterAttempt::Delivered).await);
    assert_eq!(counts(&repos, c.id).await, delivery_counts(0, 1, 0));
}

/// Deleting a consumer removes its deliveries and attempts (others' stay); a worker finishing a
/// delivery of the deleted consumer gets `false`, not an error.
pub async fn deleting_a_consumer_removes_its_deliveries_and_attempts(repos: Repositories) {
    let a = add_consumer(&repos, webhook_consumer("https://a.example/", &[EventType::CompanyCreated], &[], at(0))).await;
    let b = add_consumer(&repos, webhook_consumer("https://b.example/", &[EventType::CompanyCreated], &[], at(1))).await;
    let co = company("Co", at(0));
    for i in 0..2 {
        emit(&repos, &[outbox_event(&co, EventType::CompanyCreated, at(i))]).await;
    }
    assert_eq!(fan_out(&repos, at(100), 10).await, 2);
    let ds = lease_due(&repos, "w1", at(100), 600, 10).await;
    assert_eq!(ds.len(), 4);
    let of = |consumer: WebhookConsumerId| ds.iter().filter(move |d| d.consumer_id == consumer).cloned().collect::<Vec<_>>();
    let (of_a, of_b) = (of(a.id), of(b.id));
    assert!(
        record_outcome(&repos, "w1", &attempt(&of_a[0], 1, at(101), Some(500), Some("HTTP 500"), 3), AfterAttempt::RetryAt(at(100))).await
    );
    assert!(record_outcome(&repos, "w1", &attempt(&of_b[0], 1, at(101), Some(200), None, 3), AfterAttempt::Delivered).await);

    assert!(repos.webhooks.delete_consumer(a.id).await.unwrap());
    assert!(repos.webhooks.list_attempts(a.id, 10).await.unwrap().is_empty());
    assert_eq!(counts(&repos, a.id).await, DeliveryCounts::default());
    assert_eq!(repos.webhooks.list_attempts(b.id, 10).await.unwrap().len(), 1);
    assert_eq!(counts(&repos, b.id).await, delivery_counts(1, 1, 0));
    let leased = lease_due(&repos, "w2", at(1000), 600, 10).await;
    assert_eq!(leased.iter().map(|d| d.id).collect::<Vec<_>>(), vec![of_b[1].id], "only the other consumer's delivery is left");

    let orphan = attempt(&of_a[1], 1, at(102), Some(200), None, 3);
    assert!(!record_outcome(&repos, "w1", &orphan, AfterAttempt::Delivered).await, "the delivery is gone");
    assert!(repos.webhooks.list_attempts(a.id, 10).await.unwrap().is_empty());
}

/// Webhook consumers' sealed secrets are listed for rotation and replaced by `replace_sealed`; a
/// batch with a deleted consumer's slot is NotFound and changes nothing.
pub async fn webhook_secrets_are_listed_and_replaced_for_key_rotation(repos: Repositories) {
    let a = add_consumer(
        &repos,
        WebhookConsumer {
            secret: sealed("old", "whsec-a"),
            ..webhook_consumer("https://a.example/", &[EventType::CompanyCreated], &[], at(0))
        },
    )
    .await;
    let b = add_consumer(
        &repos,
        WebhookConsumer {
            secret: sealed("old", "whsec-b"),
            ..webhook_consumer("https://b.example/", &[EventType::CompanyDeleted], &[], at(1))
        },
    )
    .await;
    let expected: BTreeMap<String, SealedSecret> =
        [(SecretSlot::WebhookSecret(a.id), sealed("old", "whsec-a")), (SecretSlot::WebhookSecret(b.id), sealed("old", "whsec-b"))]
            .iter()
            .map(|(slot, s)| (slot_key(slot), s.clone()))
            .collect();
    assert_eq!(by_slot(repos.secrets.list_sealed().await.unwrap()), expected);

    repos.secrets.replace_sealed(&[(SecretSlot::WebhookSecret(a.id), sealed("new", "re-whsec-a"))]).await.unwrap();
    assert_eq!(
        get_consumer(&repos, a.id).await,
        WebhookConsumer { secret: sealed("new", "re-whsec-a"), ..a.clone() },
        "only the secret changed"
    );
    assert_eq!(get_consumer(&repos, b.id).await, b);

    assert!(repos.webhooks.delete_consumer(b.id).await.unwrap());
    let batch = vec![(SecretSlot::WebhookSecret(a.id), sealed("newer", "x")), (SecretSlot::WebhookSecret(b.id), sealed("newer", "y"))];
    assert_not_found(repos.secrets.replace_sealed(&batch).await, "batch with a deleted consumer");
    assert_eq!(get_consumer(&repos, a.id).await.secret, sealed("new", "re-whsec-a"), "nothing changed");
    let listed = by_slot(repos.secrets.list_sealed().await.unwrap());
    assert_eq!(listed.into_iter().collect::<Vec<_>>(), vec![(slot_key(&SecretSlot::WebhookSecret(a.id)), sealed("new", "re-whsec-a"))]);
}

/// Two concurrent `lease_deliveries` calls never hand the same delivery to both workers: with ten
/// due deliveries, what they and a third, later call lease covers each delivery exactly once
/// (repeated, since a race needs luck to show).
pub async fn concurrent_lease_deliveries_never_hand_one_delivery_to_two_workers(repos: Repositories) {
    add_consumer(&repos, webhook_consumer("https://a.example/", &[EventType::CompanyCreated], &[], at(0))).await;
    let co = company("Co", at(0));
    for round in 0..5 {
        let events: Vec<OutboxEvent> = (0..10).map(|i| outbox_event(&co, EventType::CompanyCreated, at(i))).collect();
        emit(&repos, &events).await;
        assert_eq!(fan_out(&repos, at(100), 100).await, 10);
        // Earlier rounds' deliveries are still leased (600 s), so only this round's are due.
        let (w1, w2) = tokio::join!(
            repos.webhooks.lease_deliveries("w1", at(100), lease(600), 6),
            repos.webhooks.lease_deliveries("w2", at(100), lease(600), 6),
        );
        let (w1, w2) = (w1.expect("lease w1"), w2.expect("lease w2"));
        assert!(w1.len() <= 6 && w2.len() <= 6, "round {round}: limit");
        let w1_ids: std::collections::BTreeSet<Uuid> = w1.iter().map(|d| d.id).collect();
        assert!(w2.iter().all(|d| !w1_ids.contains(&d.id)), "round {round}: a delivery leased by both workers");
        let rest = lease_due(&repos, "w3", at(100), 600, 100).await;
        let mut leased: Vec<Uuid> = w1.iter().chain(&w2).chain(&rest).map(|d| d.id).collect();
        let n = leased.len();
        leased.sort();
        leased.dedup();
        assert_eq!((n, leased.len()), (10, 10), "round {round}: each delivery leased once ({} + {} + {})", w1.len(), w2.len(), rest.len());
        let mut event_ids: Vec<Uuid> = w1.iter().chain(&w2).chain(&rest).map(|d| d.event_id).collect();
        event_ids.sort();
        let mut expected: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        expected.sort();
        assert_eq!(event_ids, expected, "round {round}: this round's deliveries");
    }
}

// ---------------------------------------------------------------------------------------------
// The operator console
// ---------------------------------------------------------------------------------------------

fn session(key: &ApiKey, hash: &str, created: DateTime<Utc>) -> ConsoleSession {
    ConsoleSession { hash: hash.into(), api_key_id: key.id, created, last_seen: created }
}

/// A session round-trips, belongs to an existing key, is touched and deleted by its hash or by
/// idleness, and goes with its key.
pub async fn console_sessions_belong_to_their_api_key_and_go_with_it(repos: Repositories) {
    let k1 = api_key("one", at(0));
    let k2 = api_key("two", at(1));
    repos.api_keys.insert_limited(&k1, 10).await.unwrap();
    repos.api_keys.insert_limited(&k2, 10).await.unwrap();
    let s1 = session(&k1, "h1", at_micros(10, 123_456));
    let s2 = session(&k2, "h2", at(11));
    let s3 = session(&k2, "h3", at(12));
    for s in [&s1, &s2, &s3] {
        repos.console.insert_session(s).await.unwrap();
    }
    assert_not_found(repos.console.insert_session(&session(&api_key("gone", at(2)), "h4", at(13))).await, "a session of a missing key");
    assert_eq!(repos.console.find_session("h1").await.unwrap(), Some(s1.clone()));
    assert_eq!(repos.console.find_session("nope").await.unwrap(), None);

    repos.console.touch_session("h3", at_micros(500, 7)).await.unwrap();
    assert_eq!(repos.console.find_session("h3").await.unwrap().unwrap().last_seen, at_micros(500, 7));
    // Idle before 100 s: h1 and h2 (h3 was used at 500 s); and h3 by its hash.
    repos.console.delete_sessions(None, at(100)).await.unwrap();
    assert_eq!(repos.console.find_session("h1").await.unwrap(), None);
    assert_eq!(repos.console.find_session("h2").await.unwrap(), None);
    assert!(repos.console.find_session("h3").await.unwrap().is_some());
    repos.console.delete_sessions(Some("h3".into()), at(0)).await.unwrap();
    assert_eq!(repos.console.find_session("h3").await.unwrap(), None);

    repos.console.insert_session(&session(&k1, "h5", at(600))).await.unwrap();
    repos.console.insert_session(&session(&k2, "h6", at(600))).await.unwrap();
    assert_eq!(repos.api_keys.delete(k1.id, false).await.unwrap(), ApiKeyDeletion::Deleted);
    assert_eq!(repos.console.find_session("h5").await.unwrap(), None, "deleting the key ended its session");
    assert!(repos.console.find_session("h6").await.unwrap().is_some(), "other keys' sessions stay");
}

/// The overview counts companies, connections by status, the window's pulls by status, webhook
/// deliveries by status and records written per minute, and lists the data types whose latest
/// finished pull (cancellations and unsupported types aside) failed.
pub async fn the_overview_counts_by_status_and_lists_failing_data_types(repos: Repositories) {
    let (co, conn) = company_with_connection(&repos, "Failing Co", 0).await;
    let (_, other) = company_with_connection(&repos, "Fine Co", 1).await;
    for c in [&conn, &other] {
        repos.connections.update(&Connection { status: ConnectionStatus::Linked, ..c.clone() }, &[]).await.unwrap();
    }
    // A deauthorized connection whose last pull failed: not synced any more, so not "failing now".
    let gone = insert_connection(&repos, connection(&co, ConnectionStatus::Deauthorized, at(2))).await;
    let finished = |c: &Connection, dt, status, requested: i64, completed: i64, error: Option<&str>| PullOperation {
        completed: Some(at(completed)),
        error_message: error.map(str::to_owned),
        ..pull_op(c, dt, status, at(requested), 100)
    };
    let ops = vec![
        // Payments: succeeded, then failed: failing now.
        finished(&conn, DataType::Payments, DatasetStatus::Complete, 1000, 1010, None),
        finished(&conn, DataType::Payments, DatasetStatus::FetchError, 2000, 2010, Some("Stripe answered 500")),
        // Customers: failed, then succeeded: fine.
        finished(&conn, DataType::Customers, DatasetStatus::AuthError, 1000, 1010, Some("revoked")),
        finished(&conn, DataType::Customers, DatasetStatus::Complete, 2000, 2010, None),
        // Disputes: failed, then a cancellation: still failing.
        finished(&conn, DataType::Disputes, DatasetStatus::RateLimitError, 1000, 1020, Some("throttled")),
        finished(&conn, DataType::Disputes, DatasetStatus::Cancelled, 2000, 2010, None),
        finished(&other, DataType::Orders, DatasetStatus::NotSupported, 2000, 2000, None),
        finished(&gone, DataType::Payments, DatasetStatus::AuthError, 2100, 2110, Some("revoked")),
        pull_op(&other, DataType::Products, DatasetStatus::Queued, at(2500), 0),
        // Before the window.
        finished(&other, DataType::Payments, DatasetStatus::FetchError, 10, 20, Some("old")),
        finished(&other, DataType::Payments, DatasetStatus::Complete, 30, 40, None),
    ];
    repos.pull_operations.insert(&ops).await.unwrap();
    let c = add_consumer(&repos, webhook_consumer("https://a.example/", &[EventType::CompanyCreated], &[], at(0))).await;
    for i in 0..3 {
        emit(&repos, &[outbox_event(&co, EventType::CompanyCreated, at(i))]).await;
    }
    assert_eq!(fan_out(&repos, at(100), 10).await, 3);
    let ds = lease_due(&repos, "w", at(100), 600, 10).await;
    assert!(record_outcome(&repos, "w", &attempt(&ds[0], 1, at(101), Some(200), None, 5), AfterAttempt::Delivered).await);
    assert_eq!(counts(&repos, c.id).await, delivery_counts(2, 1, 0));
    let pull = PullOperationId::new_random();
    let (m1, m2) = (at_micros(3600, 5), at_micros(3659, 999_999));
    write(
        &repos,
        &conn,
        DataType::Customers,
        &[customer("c1", "A", None), customer("c2", "B", None)],
        &checkpoint(pull, Some("x"), 1, 2),
        m1,
    )
    .await;
    write(&repos, &conn, DataType::Payments, &[stored("p1", r#"{"id":"p1"}"#, None)], &checkpoint(pull, Some("y"), 1, 1), m2).await;
    write(&repos, &other, DataType::Customers, &[customer("c3", "C", None)], &checkpoint(pull, Some("z"), 1, 1), at(3720)).await;
    write(&repos, &other, DataType::Products, &[stored("old", r#"{"id":"old"}"#, None)], &checkpoint(pull, Some("w"), 1, 1), at(50)).await;

    let o = repos.console.overview(at(100)).await.unwrap();
    assert_eq!(o.companies, 5, "the two above and the three that carried the events");
    assert_eq!(o.connections_by_status, vec![("Deauthorized".to_owned(), 1), ("Linked".to_owned(), 2)]);
    let mut pulls = o.pulls_by_status.clone();
    pulls.sort();
    let want: Vec<(String, u64)> =
        [("AuthError", 2), ("Cancelled", 1), ("Complete", 2), ("FetchError", 1), ("NotSupported", 1), ("Queued", 1), ("RateLimitError", 1)]
            .iter()
            .map(|(s, n)| ((*s).to_owned(), *n))
            .collect();
    assert_eq!(pulls, want, "the window's pulls only");
    let failing: Vec<_> = o.failing.iter().map(|f| (f.company_name.as_str(), f.data_type, f.status, f.error_message.as_deref())).collect();
    assert_eq!(
        failing,
        vec![
            ("Failing Co", DataType::Payments, DatasetStatus::FetchError, Some("Stripe answered 500")),
            ("Failing Co", DataType::Disputes, DatasetStatus::RateLimitError, Some("throttled")),
        ],
        "newest failure first; the earlier failure of other's payments was followed by a success; the deauthorized \
         connection's failure is not listed"
    );
    assert_eq!(o.failing[0].connection_id, conn.id);
    assert_eq!(o.failing[0].company_id, co.id);
    assert_eq!(o.failing[0].completed, at(2010));
    let mut deliveries = o.deliveries_by_status.clone();
    deliveries.sort();
    assert_eq!(deliveries, vec![("Delivered".to_owned(), 1), ("Pending".to_owned(), 2)]);
    assert_eq!(o.records_per_minute, vec![(at(3600), 3), (at(3720), 1)], "by minute of the last write, from the window's start");
}

/// A consumer's deliveries are listed newest first with their event; a finished one goes back to
/// pending, due at once, with its attempts kept; a pending one or another consumer's is refused.
pub async fn deliveries_are_listed_newest_first_and_a_finished_one_can_be_delivered_again(repos: Repositories) {
    let c = add_consumer(&repos, webhook_consumer("https://a.example/", &EventType::ALL, &[], at(0))).await;
    let other = add_consumer(&repos, webhook_consumer("https://b.example/", &EventType::ALL, &[], at(0))).await;
    let co = company("Co", at(0));
    emit(&repos, &[outbox_event(&co, EventType::CompanyCreated, at(1))]).await;
    assert_eq!(fan_out(&repos, at(100), 10).await, 1);
    emit(&repos, &[outbox_event(&co, EventType::CompanyDeleted, at(2))]).await;
    assert_eq!(fan_out(&repos, at(200), 10).await, 1);
    let listed = repos.webhooks.list_deliveries(c.id, 10).await.unwrap();
    assert_eq!(listed.iter().map(|d| d.event_type).collect::<Vec<_>>(), vec![EventType::CompanyDeleted, EventType::CompanyCreated]);
    assert_eq!(listed[1].created, at(100));
    assert_eq!(listed[1].next_attempt, Some(at(100)));
    assert_eq!(listed[1].status, tributary_domain::model::webhook::DeliveryStatus::Pending);
    assert_eq!(repos.webhooks.list_deliveries(c.id, 1).await.unwrap().len(), 1);
    let recent: Vec<_> = repos.webhooks.recent_events(10).await.unwrap().into_iter().map(|e| e.event_type).collect();
    assert_eq!(recent, vec![EventType::CompanyDeleted, EventType::CompanyCreated], "newest first");
    assert_eq!(repos.webhooks.recent_events(1).await.unwrap().len(), 1);

    let ds = lease_due(&repos, "w", at(300), 600, 10).await;
    let mine: Vec<_> = ds.iter().filter(|d| d.consumer_id == c.id).collect();
    assert!(record_outcome(&repos, "w", &attempt(mine[0], 1, at(301), Some(500), Some("HTTP 500"), 5), AfterAttempt::GiveUp).await);
    let failed = mine[0].id;
    assert_eq!(repos.webhooks.redeliver(c.id, mine[1].id, at(400)).await.unwrap(), Redelivery::StillPending, "leased");
    assert_eq!(repos.webhooks.redeliver(other.id, failed, at(400)).await.unwrap(), Redelivery::NotFound, "another consumer's");
    assert_eq!(repos.webhooks.redeliver(c.id, Uuid::new_v4(), at(400)).await.unwrap(), Redelivery::NotFound, "unknown");
    assert_eq!(repos.webhooks.redeliver(c.id, failed, at(400)).await.unwrap(), Redelivery::Queued);
    let again = repos.webhooks.list_deliveries(c.id, 10).await.unwrap().into_iter().find(|d| d.id == failed).unwrap();
    assert_eq!(
        (again.status, again.attempts, again.next_attempt),
        (tributary_domain::model::webhook::DeliveryStatus::Pending, 1, Some(at(400)))
    );
    let leased = lease_due(&repos, "w2", at(400), 600, 10).await;
    let again: Vec<_> = leased.iter().filter(|d| d.id == failed).collect();
    assert_eq!(again.len(), 1, "due again at once");
    assert!(again[0].final_attempt, "for one attempt only");
    assert!(!leased.iter().any(|d| d.id != failed && d.final_attempt), "other deliveries follow the schedule");
}

/// The backlog counts queued and fetching pulls and pending deliveries, with the oldest of each.
pub async fn the_backlog_counts_queued_and_running_pulls_and_pending_deliveries(repos: Repositories) {
    assert_eq!(repos.console.backlog().await.unwrap(), Backlog::default(), "nothing waits in an empty store");
    let (co, conn) = company_with_connection(&repos, "Co", 0).await;
    let ops = vec![
        pull_op(&conn, DataType::Customers, DatasetStatus::Queued, at_micros(20, 5), 0),
        pull_op(&conn, DataType::Payments, DatasetStatus::Queued, at_micros(10, 7), 0),
        pull_op(&conn, DataType::Disputes, DatasetStatus::Fetching, at(5), 40),
        PullOperation { completed: Some(at(3)), ..pull_op(&conn, DataType::Products, DatasetStatus::Complete, at(1), 100) },
    ];
    repos.pull_operations.insert(&ops).await.unwrap();
    add_consumer(&repos, webhook_consumer("https://a.example/", &[EventType::CompanyCreated], &[], at(0))).await;
    for i in 0..3 {
        emit(&repos, &[outbox_event(&co, EventType::CompanyCreated, at(i))]).await;
        assert_eq!(fan_out(&repos, at_micros(100 + i, 9), 10).await, 1);
    }
    let first = lease_due(&repos, "w", at(200), 600, 1).await;
    assert!(record_outcome(&repos, "w", &attempt(&first[0], 1, at(201), Some(204), None, 3), AfterAttempt::Delivered).await);
    // A disabled consumer's deliveries are paused, not late: they are not counted.
    let paused = add_consumer(&repos, webhook_consumer("https://b.example/", &[EventType::CompanyDeleted], &[], at(0))).await;
    emit(&repos, &[outbox_event(&co, EventType::CompanyDeleted, at(50))]).await;
    assert_eq!(fan_out(&repos, at(90), 10).await, 1);
    assert!(repos.webhooks.set_consumer_disabled(paused.id, true, None).await.unwrap());
    let b = repos.console.backlog().await.unwrap();
    assert_eq!(
        b,
        Backlog {
            pulls_queued: 2,
            pulls_running: 1,
            oldest_queued: Some(at_micros(10, 7)),
            webhooks_pending: 2,
            oldest_pending: Some(at_micros(101, 9)),
        }
    );
}

/// What the domain stores in place of U+0000 (U+FFFD, in Stripe's free text and a browser's
/// OAuth error description) round-trips on every database, in records and connection errors.
pub async fn replacement_characters_round_trip_in_records_and_connection_errors(repos: Repositories) {
    let (_, conn) = company_with_connection(&repos, "Co", 0).await;
    let mut doc = serde_json::json!({"id": "cus_nul", "customerName": "Zo\u{0}ë", "addresses": [{"line1": "\u{0}1 Main"}]});
    tributary_domain::model::record::replace_nul(&mut doc);
    let rec = StoredRecord { id: "cus_nul".into(), created: Some(at(1)), source_modified: None, document: doc.clone(), deleted: false };
    let pull = PullOperationId::new_random();
    assert_eq!(write(&repos, &conn, DataType::Customers, std::slice::from_ref(&rec), &checkpoint(pull, None, 1, 1), at(10)).await, 1);
    assert_eq!(record(&repos, &conn, DataType::Customers, "cus_nul").await.record.document, doc);
    assert_eq!(doc["customerName"], "Zo\u{FFFD}ë");
    let q = ListQuery::from_params(
        commerce_schema::schema(DataType::Customers).unwrap(),
        Some(1),
        Some(10),
        Some("customerName=Zo\u{FFFD}ë"),
        None,
    )
    .unwrap();
    assert_eq!(repos.records.count_matching(conn.id, DataType::Customers, &q).await.unwrap(), 1, "and can be queried");
    let mut c = repos.connections.find(conn.id).await.unwrap().unwrap();
    c.errors.push(ConnectionError {
        status_code: "403".into(),
        status_text: Some("access_denied: bad\u{FFFD}text".into()),
        error_message: "User cancelled linking".into(),
        errored_on_utc: at(20),
    });
    repos.connections.update(&c, &[]).await.unwrap();
    assert_eq!(repos.connections.find(conn.id).await.unwrap().unwrap().errors, c.errors);
}
