//! `tributary data`: export a connection's commerce records as a table, JSON or CSV, page by page
//! so that large exports stream instead of being held in memory.

use crate::output;
use anyhow::anyhow;
use serde_json::Value;
use std::io::Write;
use tributary_domain::ids::{CompanyId, ConnectionId};
use tributary_domain::model::commerce_schema::schema;
use tributary_domain::model::data_type::DataType;
use tributary_domain::paging::ListQuery;
use tributary_domain::service::{Platform, RecordPage};

const PAGE: i64 = 1000;

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// Writes every matching record to standard output.
pub async fn export(
    p: &Platform,
    company: &str,
    connection: &str,
    data_type: &str,
    query: Option<&str>,
    order_by: Option<&str>,
    format: &str,
) -> anyhow::Result<()> {
    let company: CompanyId = company.parse().map_err(|_| anyhow!("'{company}' is not a valid company id (expected a UUID)"))?;
    let connection: ConnectionId =
        connection.parse().map_err(|_| anyhow!("'{connection}' is not a valid connection id (expected a UUID)"))?;
    let key = if data_type == "commerce-info" { "commerce-companyInfo" } else { data_type };
    let dt: DataType = key.parse().map_err(|e: tributary_domain::model::data_type::UnknownDataType| anyhow!(e.0))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let Some(schema) = schema(dt) else {
        if dt != DataType::CompanyInfo {
            // Says why (e.g. "Datatype commerce-orders not supported by platform(s) Stripe Test").
            p.records().readable(company, connection, dt).await?;
            return Err(anyhow!("{dt} cannot be exported"));
        }
        let info = p.records().company_info(company, connection).await?;
        writeln!(out, "{}", serde_json::to_string_pretty(&info)?)?;
        return Ok(());
    };
    let mut page = 1;
    let mut columns: Vec<String> = Vec::new();
    let mut table_rows = Vec::new();
    let mut first = true;
    if format == "json" {
        writeln!(out, "[")?;
    }
    let mut seek = None;
    loop {
        // Each page starts where the last ended (keyset) when the order allows, so a deep export
        // does not re-read what it skips.
        let q = ListQuery { seek: seek.take(), ..ListQuery::from_params(schema, Some(page), Some(PAGE), query, order_by)? };
        let RecordPage { page: batch, next } = p.records().list(company, connection, dt, &q).await?;
        let more = batch.has_next();
        seek = next;
        for text in batch.items {
            if format == "json" {
                // Records arrive as JSON text: written as they are.
                if !first {
                    writeln!(out, ",")?;
                }
                write!(out, "{text}")?;
                first = false;
                continue;
            }
            let r: Value = serde_json::from_str(&text)?;
            match format {
                "csv" => {
                    if first {
                        columns = r.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
                        writeln!(out, "{}", columns.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","))?;
                    }
                    let line: Vec<String> = columns.iter().map(|c| csv_field(&cell(&r[c.as_str()]))).collect();
                    writeln!(out, "{}", line.join(","))?;
                }
                _ => {
                    if first {
                        columns = schema.fields.iter().map(|f| f.name.to_owned()).filter(|f| !f.contains('.')).take(7).collect();
                    }
                    table_rows.push(columns.iter().map(|c| cell(&r[c.as_str()])).collect());
                }
            }
            first = false;
        }
        if !more {
            break;
        }
        page += 1;
    }
    match format {
        "json" => writeln!(out, "\n]")?,
        "csv" => {}
        _ => {
            drop(out);
            let header: Vec<&str> = columns.iter().map(String::as_str).collect();
            let n = table_rows.len();
            output::table(&header, table_rows);
            println!("{n} records");
        }
    }
    Ok(())
}
