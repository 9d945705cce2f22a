//! Runs every behaviour of `tributary_tests::contract` against both storage adapters and the
//! domain's in-memory fake (`tributary_domain::fake::Mem`, which the service tests use): SQLite (in
//! memory, fresh per test), the fake, and Postgres (a fresh database per test on
//! `TRIBUTARY_TEST_POSTGRES_URL`; skipped loudly without it, failed with
//! `TRIBUTARY_REQUIRE_POSTGRES=1`). Plus the few checks that only make sense for one backend.

/// Generates `mod sqlite`, `mod fake` and `mod postgres`, each with one `#[tokio::test]` per contract
/// function.
macro_rules! storage_contract {
    ($( $name:ident ),* $(,)?) => {
        mod sqlite {
            use tributary_sqlite::SqliteStore;

            async fn store() -> SqliteStore {
                let store = SqliteStore::connect("sqlite::memory:").await.expect("open in-memory SQLite");
                store.migrate().await.expect("migrate SQLite");
                store
            }

            $(
                #[tokio::test]
                async fn $name() {
                    let store = store().await;
                    tributary_tests::contract::$name(store.repositories()).await;
                    store.close().await;
                }
            )*
        }

        mod fake {
            use std::sync::Arc;
            use tributary_domain::fake::Mem;

            $(
                #[tokio::test]
                async fn $name() {
                    tributary_tests::contract::$name(Mem::repositories(Arc::new(Mem::default()))).await;
                }
            )*
        }

        mod postgres {
            use tributary_tests::pg::fresh_postgres;

            $(
                #[tokio::test]
                async fn $name() {
                    let Some((store, db)) = fresh_postgres(concat!("postgres::", stringify!($name))).await else { return };
                    tributary_tests::contract::$name(store.repositories()).await;
                    store.close().await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

storage_contract! {
    companies_round_trip_with_tags,
    inserting_a_company_with_an_existing_id_is_a_conflict,
    company_update_replaces_name_description_and_tags,
    updating_a_missing_company_is_not_found,
    company_delete_cascades_to_connections_tags_and_sync_settings,
    deleting_a_missing_company_returns_false,
    company_list_pages_in_created_then_id_order_with_exact_total,
    company_list_orders_by_name_both_ways_with_id_tie_break,
    company_list_orders_by_last_sync_with_nulls_first_ascending,
    company_filter_name_equals_and_not_equals,
    company_filter_name_contains_is_case_insensitive,
    company_filter_contains_treats_wildcards_literally,
    company_filter_contains_folds_ascii_case_only,
    company_filter_by_created_date_range,
    company_filter_groups_or_inside_and,
    company_filter_on_connection_status_matches_any_connection,
    company_filter_not_linked_includes_companies_without_connections,
    company_filter_description_not_equal_includes_null_descriptions,
    company_tags_filter_combines_equals_and_contains,
    company_tags_not_equal_matches_companies_without_the_tag,
    connection_insert_for_a_missing_company_is_not_found,
    inserting_a_connection_with_an_existing_id_is_a_conflict,
    connection_get_is_scoped_to_its_company_and_find_is_not,
    connection_update_round_trips_status_grant_errors_and_source_account,
    connection_status_compare_and_set_and_last_sync,
    updating_a_missing_connection_is_not_found,
    connection_delete_is_scoped_to_its_company,
    connection_list_filters_by_status_and_orders_newest_first,
    connections_for_companies_are_listed_oldest_first,
    integration_settings_round_trip_and_overwrite,
    integration_key_refusal_is_kept_apart_from_the_settings,
    source_events_are_remembered_per_integration_and_forgotten,
    api_keys_insert_up_to_the_limit_then_conflict,
    inserting_an_api_key_with_an_existing_hash_or_id_is_a_conflict,
    api_keys_list_oldest_first_and_find_by_hash,
    api_key_delete_reports_not_found_last_key_and_deleted,
    api_key_delete_allow_last_removes_the_last_key,
    concurrent_api_key_creation_never_exceeds_the_limit,
    concurrent_api_key_deletion_never_removes_the_last_key,
    profile_is_none_until_put_then_round_trips,
    client_id_is_stable_across_calls,
    sync_settings_round_trip,
    company_sync_settings_round_trip_and_clear,
    company_sync_settings_for_a_missing_company_are_not_found,
    clearing_company_sync_settings_for_a_missing_company_is_not_found,
    list_sealed_lists_integration_secrets_webhook_secrets_and_grants,
    replace_sealed_replaces_every_slot,
    replace_sealed_is_all_or_nothing,
    oauth_state_is_consumed_exactly_once,
    consuming_an_unknown_nonce_is_none,
    concurrent_consumes_of_one_state_return_it_exactly_once,
    purge_expired_removes_only_expired_states,
    oauth_state_for_a_missing_connection_is_not_found,
    pull_operations_round_trip_and_get_is_scoped_to_the_company,
    pull_operation_insert_is_all_or_nothing,
    pull_operation_list_pages_in_requested_then_id_order,
    pull_operation_list_orders_by_requested_descending_and_by_progress,
    pull_operation_filters_by_status_data_type_progress_and_is_errored,
    deleting_a_connection_removes_its_states_and_pull_operations,
    deleting_a_company_removes_its_states_and_pull_operations,
    save_linked_writes_the_connection_and_its_operations_together,
    save_linked_for_a_missing_connection_is_not_found_and_writes_nothing,
    find_by_source_account_matches_platform_key_and_account,
    pull_operation_update_round_trips_and_a_missing_one_is_not_found,
    unfinished_for_connection_lists_queued_and_fetching_operations_oldest_first,
    latest_is_the_newest_operation_of_a_data_type_on_a_connection,
    requested_since_lists_a_connections_operations_from_an_instant_oldest_first,
    a_sync_write_whose_pull_or_events_fail_writes_nothing,
    amount_and_currency_filters_read_only_values_of_their_json_type,
    read_before_is_whether_an_earlier_pull_of_the_connection_finished_a_read,
    data_status_pairs_the_latest_operation_with_the_latest_complete_one,
    lease_next_leases_each_connection_with_unfinished_work_once,
    an_expired_lease_is_taken_over_by_another_worker,
    renew_is_for_the_owner_and_release_frees_the_lease,
    concurrent_lease_next_on_one_connection_has_exactly_one_winner,
    write_sync_inserts_records_and_saves_the_checkpoint,
    write_sync_keeps_partitions_and_staged_items_until_a_reset,
    a_fenced_write_needs_the_lease_and_a_linked_connection_and_is_all_or_nothing,
    deleting_a_connection_removes_its_partitions_and_staged_items,
    rewriting_an_unchanged_page_changes_nothing_and_keeps_modified,
    changing_a_document_or_the_deleted_flag_bumps_modified,
    write_sync_for_a_missing_connection_is_not_found_and_writes_nothing,
    record_count_excludes_deleted_unless_asked,
    record_get_and_keyset_scan_see_each_record_once,
    deleting_a_connection_removes_its_lease_records_and_checkpoint,
    record_list_filters_match_the_in_memory_evaluator,
    record_list_orders_numbers_dates_and_text_with_an_id_tie_break,
    record_list_pages_with_an_exact_total_and_without_deleted_records,
    record_list_reads_document_dates_like_the_evaluator,
    record_list_keyset_pages_equal_offset_pages,
    record_version_moves_only_when_records_change,
    read_state_reports_company_connection_pulls_and_version,
    company_writes_put_their_events_in_the_outbox_and_failed_writes_do_not,
    connection_writes_put_their_events_in_the_outbox_only_when_they_change_something,
    save_linked_and_pull_operation_updates_put_their_events_in_the_outbox,
    a_change_whose_event_cannot_be_stored_is_rolled_back,
    webhook_consumers_insert_up_to_the_limit_then_conflict,
    concurrent_consumer_creation_never_exceeds_the_limit,
    webhook_consumers_round_trip_and_are_disabled_enabled_and_deleted,
    fan_out_creates_one_delivery_per_accepting_consumer_exactly_once,
    concurrent_fan_outs_fan_each_event_out_once,
    lease_deliveries_leases_due_deliveries_in_event_order_once_per_live_lease,
    deliveries_of_a_disabled_consumer_are_not_leased_until_it_is_enabled,
    record_attempt_applies_delivered_retry_and_give_up_and_tracks_the_failing_streak,
    record_attempt_by_a_worker_that_lost_its_lease_leaves_the_delivery_alone,
    deleting_a_consumer_removes_its_deliveries_and_attempts,
    webhook_secrets_are_listed_and_replaced_for_key_rotation,
    concurrent_lease_deliveries_never_hand_one_delivery_to_two_workers,
    console_sessions_belong_to_their_api_key_and_go_with_it,
    the_overview_counts_by_status_and_lists_failing_data_types,
    deliveries_are_listed_newest_first_and_a_finished_one_can_be_delivered_again,
    the_backlog_counts_queued_and_running_pulls_and_pending_deliveries,
    replacement_characters_round_trip_in_records_and_connection_errors,
}

/// Backend-specific checks that are not part of the shared contract.
mod sqlite_only {
    use tributary_sqlite::SqliteStore;

    /// A file URL in a directory that does not exist yet creates the directories and the file,
    /// and what is stored survives reopening.
    #[tokio::test]
    async fn file_database_is_created_in_a_missing_nested_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a").join("b").join("t.db");
        assert!(!path.parent().unwrap().exists());
        let url = format!("sqlite://{}", path.display());

        let store = SqliteStore::connect(&url).await.expect("connect creates the file");
        store.migrate().await.expect("migrate");
        assert!(path.is_file(), "{} was created", path.display());
        let id = store.repositories().profile.client_id().await.unwrap();
        store.close().await;

        let reopened = SqliteStore::connect(&url).await.expect("reopen");
        reopened.migrate().await.expect("migrations are idempotent");
        assert_eq!(reopened.repositories().profile.client_id().await.unwrap(), id, "data persisted");
        reopened.close().await;
    }

    /// File databases run in WAL mode with a 16 MB page cache and checkpoint every 20,000 WAL
    /// pages (the sync's write throughput depends on both: docs/performance.md).
    #[tokio::test]
    async fn file_databases_use_wal_a_16_mb_page_cache_and_rare_checkpoints() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::connect(&format!("sqlite://{}", dir.path().join("t.db").display())).await.expect("connect");
        let mut conn = store.pool().acquire().await.expect("connection");
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *conn).await.unwrap();
        let cache: i64 = sqlx::query_scalar("PRAGMA cache_size").fetch_one(&mut *conn).await.unwrap();
        let checkpoint: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint").fetch_one(&mut *conn).await.unwrap();
        assert_eq!((mode.as_str(), cache, checkpoint), ("wal", -16000, 20000));
        drop(conn);
        store.close().await;
    }
}

/// Backend-specific checks that are not part of the shared contract.
mod postgres_only {
    use tributary_domain::RepositoryError;
    use tributary_postgres::PgStore;
    use tributary_tests::pg::{admin_url, fresh_postgres};

    /// Migrating an already migrated database does nothing and keeps the data.
    #[tokio::test]
    async fn migrations_are_idempotent() {
        let Some((store, db)) = fresh_postgres("postgres_only::migrations_are_idempotent").await else {
            return;
        };
        let id = store.repositories().profile.client_id().await.unwrap();
        store.migrate().await.expect("second migrate");
        store.close().await;
        let again = PgStore::connect(db.url()).await.expect("reconnect");
        again.migrate().await.expect("third migrate");
        assert_eq!(again.repositories().profile.client_id().await.unwrap(), id);
        again.close().await;
        db.cleanup().await;
    }

    /// Store connections use generic plans for prepared statements (re-planning each list request
    /// cost ~15 % of its time: docs/performance.md).
    #[tokio::test]
    async fn store_connections_keep_generic_plans() {
        let Some((store, db)) = fresh_postgres("postgres_only::store_connections_keep_generic_plans").await else {
            return;
        };
        let mode: String = sqlx::query_scalar("SHOW plan_cache_mode").fetch_one(store.pool()).await.unwrap();
        assert_eq!(mode, "force_generic_plan");
        store.close().await;
        db.cleanup().await;
    }

    /// Connecting to a database that does not exist fails with a Backend error that names the
    /// target but never the password.
    #[tokio::test]
    async fn connecting_to_a_missing_database_is_a_clear_error_without_the_password() {
        let Some(admin) = admin_url("postgres_only::connecting_to_a_missing_database_is_a_clear_error_without_the_password") else {
            return;
        };
        let mut url = url::Url::parse(&admin).expect("URL");
        url.set_path("/tributary_no_such_database");
        url.set_password(Some("s3cret-pw")).expect("password");
        let err = PgStore::connect(url.as_str()).await.expect_err("no such database");
        let RepositoryError::Backend { message: msg, .. } = &err else { panic!("expected Backend, got {err:?}") };
        assert!(msg.contains("cannot connect to PostgreSQL"), "{msg}");
        assert!(msg.contains("tributary_no_such_database"), "{msg}");
        assert!(!msg.contains("s3cret-pw"), "the password leaked: {msg}");

        let err = PgStore::connect("mysql://nope").await.expect_err("not a postgres URL");
        assert!(matches!(err, RepositoryError::Backend { message: ref m, .. } if m.contains("invalid PostgreSQL URL")), "{err:?}");
    }
}

/// Both databases' migrations define the same schema: the same tables, each with the same
/// columns, nullability and kind of value (SQLite stores instants as INTEGER microseconds, JSON as
/// TEXT and booleans as INTEGER 0/1; see docs/architecture.md, "Adding a column"). A column added to
/// one dialect's migration and not the other's fails here.
mod schema_agreement {
    use sqlx::Row;
    use std::collections::BTreeMap;
    use tributary_sqlite::SqliteStore;
    use tributary_tests::pg::fresh_postgres;

    /// (table, column) → (kind, nullable).
    type Schema = BTreeMap<(String, String), (&'static str, bool)>;

    /// The kind of value a column holds, across both dialects' type names.
    fn kind(postgres: bool, ty: &str) -> &'static str {
        match (postgres, ty.to_ascii_lowercase().as_str()) {
            (true, "timestamp with time zone") => "instant",
            (true, "jsonb") => "json",
            (true, "boolean") => "boolean",
            (true, "integer" | "bigint" | "smallint") => "integer",
            (true, "numeric") | (false, "numeric") => "number",
            (true, "text") => "text",
            (true, "bytea") => "bytes",
            (false, "text") => "text",
            (false, "integer" | "bigint") => "integer",
            (false, "blob") => "bytes",
            (_, other) => panic!("a column of type {other} ({}): name its kind here", if postgres { "PostgreSQL" } else { "SQLite" }),
        }
    }

    /// SQLite's INTEGER and TEXT columns hold what Postgres types more precisely: the column
    /// name's role decides (instants, JSON documents, flags).
    fn agrees(sqlite: &str, postgres: &str) -> bool {
        sqlite == postgres || (sqlite == "integer" && matches!(postgres, "instant" | "boolean")) || (sqlite == "text" && postgres == "json")
    }

    async fn sqlite_schema() -> Schema {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let rows = sqlx::query(
            "SELECT m.name AS table_name, p.name AS column_name, p.type AS ty, p.\"notnull\" AS not_null, p.pk AS pk \
             FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations'",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        store.close().await;
        rows.iter()
            .map(|r| {
                // A primary key column is NOT NULL in Postgres whatever it says.
                let nullable = r.get::<i64, _>("not_null") == 0 && r.get::<i64, _>("pk") == 0;
                ((r.get("table_name"), r.get("column_name")), (kind(false, &r.get::<String, _>("ty")), nullable))
            })
            .collect()
    }

    #[tokio::test]
    async fn sqlite_and_postgres_migrations_define_the_same_tables_and_columns() {
        let sqlite = sqlite_schema().await;
        assert!(sqlite.len() > 50, "read SQLite's schema: {} columns", sqlite.len());
        let Some((store, db)) = fresh_postgres("schema_agreement").await else { return };
        let rows = sqlx::query(
            "SELECT table_name::text, column_name::text, data_type::text AS ty, is_nullable::text = 'YES' AS nullable \
             FROM information_schema.columns WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let postgres: Schema = rows
            .iter()
            .map(|r| ((r.get("table_name"), r.get("column_name")), (kind(true, &r.get::<String, _>("ty")), r.get("nullable"))))
            .collect();
        store.close().await;
        db.cleanup().await;

        let mut problems = Vec::new();
        for (column, (kind, nullable)) in &postgres {
            match sqlite.get(column) {
                None => problems.push(format!("{}.{} is in PostgreSQL's migrations only", column.0, column.1)),
                Some((k, n)) if !agrees(k, kind) || n != nullable => problems.push(format!(
                    "{}.{}: SQLite {k}{}, PostgreSQL {kind}{}",
                    column.0,
                    column.1,
                    if *n { " NULL" } else { " NOT NULL" },
                    if *nullable { " NULL" } else { " NOT NULL" }
                )),
                Some(_) => {}
            }
        }
        for column in sqlite.keys().filter(|c| !postgres.contains_key(*c)) {
            problems.push(format!("{}.{} is in SQLite's migrations only", column.0, column.1));
        }
        assert!(problems.is_empty(), "the two dialects' schemas differ:\n{}", problems.join("\n"));
    }
}
