//! `tributary sync`: queue pulls for a company and run them in this process (or watch a server's
//! workers run them), with a live progress bar per data type and a summary table.

use crate::output;
use anyhow::{Context, anyhow};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::time::Duration;
use tributary_api::ServeOptions;
use tributary_domain::ids::{CompanyId, ConnectionId};
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::pull::PullOperation;
use tributary_domain::service::Platform;

/// Queues and runs the pulls, then prints the summary.
pub async fn run(
    platform: &Platform,
    opts: &ServeOptions,
    company: &str,
    connection: Option<&str>,
    data_type: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let company: CompanyId = company.parse().map_err(|_| anyhow!("'{company}' is not a valid company id (expected a UUID)"))?;
    let connection: Option<ConnectionId> =
        connection.map(|c| c.parse().map_err(|_| anyhow!("'{c}' is not a valid connection id"))).transpose()?;
    let types: Vec<DataType> = match data_type {
        Some(t) => vec![t.parse().map_err(|e: tributary_domain::model::data_type::UnknownDataType| anyhow!(e.0))?],
        None => {
            let (settings, _) = platform.settings().company_sync_settings(company).await?;
            let mut s: Vec<_> = settings.into_iter().filter(|s| s.fetch_on_first_link).collect();
            s.sort_by_key(|s| s.sync_order);
            s.into_iter().map(|s| s.data_type).collect()
        }
    };
    let mut ops = Vec::new();
    for t in types {
        ops.push(platform.pulls().queue(company, t, connection).await?);
    }
    let finished = watch(platform, opts, company, &ops, json).await?;
    summarize(platform, &finished, json).await
}

/// Runs the engine in this process until every pull in `ops` has finished (another process's
/// workers may run some of them), drawing a progress bar per pull. Returns the finished pulls.
pub async fn watch(
    platform: &Platform,
    opts: &ServeOptions,
    company: CompanyId,
    ops: &[PullOperation],
    json: bool,
) -> anyhow::Result<Vec<PullOperation>> {
    // As the server does: one source (one budget per account), several connections at once.
    let shared = tributary_api::compose::SyncShared::new(opts)?;
    let mut workers = tokio::task::JoinSet::new();
    let connections: std::collections::BTreeSet<String> = ops.iter().map(|o| o.connection_id.to_string()).collect();
    let count = u32::try_from(connections.len()).unwrap_or(u32::MAX).clamp(1, opts.workers.max(1));
    for n in 0..count {
        let engine = shared.engine(platform, opts, format!("cli-{}-{n}", std::process::id()));
        workers.spawn(async move {
            loop {
                match engine.run_once().await {
                    Ok(true) => {}
                    Ok(false) => tokio::time::sleep(Duration::from_millis(200)).await,
                    Err(e) => return Err::<(), _>(e),
                }
            }
        });
    }
    let bars = MultiProgress::new();
    if json {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{prefix:>28} [{bar:30}] {pos:>3}% {msg}").context("progress style")?.progress_chars("=> ");
    let mut shown: BTreeMap<String, ProgressBar> = BTreeMap::new();
    for op in ops {
        let bar = bars.add(ProgressBar::new(100).with_style(style.clone()).with_prefix(op.data_type.key()));
        shown.insert(op.id.to_string(), bar);
    }
    let finished: Vec<PullOperation> = loop {
        let mut current = Vec::new();
        for op in ops {
            current.push(platform.pulls().get(company, op.id).await?);
        }
        for op in &current {
            if let Some(bar) = shown.get(&op.id.to_string()) {
                bar.set_position(u64::try_from(op.progress.clamp(0, 100)).unwrap_or(0));
                bar.set_message(format!("{} {}", op.status.as_str(), op.status_description.clone().unwrap_or_default()));
                if op.status.is_terminal() && !bar.is_finished() {
                    bar.finish();
                }
            }
        }
        if current.iter().all(|o| o.status.is_terminal()) {
            break current;
        }
        if let Some(ended) = workers.try_join_next() {
            // A worker only ends on a storage failure.
            ended.context("sync worker")?.context("sync worker failed")?;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    workers.abort_all();
    Ok(finished)
}

/// Prints the table (or JSON) of pulls with their record counts; fails if any ended in error.
pub async fn summarize(platform: &Platform, finished: &[PullOperation], json: bool) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut summary = Vec::new();
    for op in finished {
        let records = platform.records().count(op.connection_id, op.data_type).await.unwrap_or(0);
        rows.push(vec![
            op.data_type.key().to_owned(),
            op.connection_id.to_string(),
            op.status.as_str().to_owned(),
            records.to_string(),
            op.error_message.clone().unwrap_or_default(),
        ]);
        summary.push(serde_json::json!({"dataType": op.data_type.key(), "connectionId": op.connection_id.to_string(), "status": op.status.as_str(), "records": records, "errorMessage": op.error_message}));
    }
    if json {
        output::json(&summary);
    } else {
        output::table(&["data type", "connection", "status", "records", "error"], rows);
    }
    if finished.iter().any(|o| o.status.is_errored()) {
        return Err(anyhow!("some data types ended in an error status"));
    }
    Ok(())
}
