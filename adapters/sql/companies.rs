//! `CompanyRepository` on SQLite and PostgreSQL.

use crate::dialect::{self as d, Store};
use crate::sql::filter::{Column, Sql, render, render_tags};
use crate::sql::webhooks::insert_events;
use crate::sql::{backend, parse_uuid, write_error};
use async_trait::async_trait;
use sqlx::Row;
use std::collections::BTreeMap;
use tributary_domain::RepositoryError;
use tributary_domain::ids::CompanyId;
use tributary_domain::model::company::Company;
use tributary_domain::model::webhook::OutboxEvent;
use tributary_domain::paging::{ListQuery, Page};
use tributary_domain::ports::CompanyRepository;

fn columns(field: &str) -> Option<Column> {
    const DC: &str = "connections dc";
    const JOIN: &str = "dc.company_id = c.id";
    Some(match field {
        "id" => Column::Scalar("c.id"),
        "name" => Column::Scalar("c.name"),
        "description" => Column::Scalar("c.description"),
        "created" => Column::Scalar("c.created"),
        "lastSync" => Column::Scalar("c.last_sync"),
        "dataConnections.id" => Column::Related { from: DC, join: JOIN, column: "dc.id" },
        "dataConnections.status" => Column::Related { from: DC, join: JOIN, column: "dc.status" },
        "dataConnections.integrationKey" => Column::Related { from: DC, join: JOIN, column: "dc.integration_key" },
        "dataConnections.platformName" => Column::Related { from: DC, join: JOIN, column: "dc.platform_name" },
        "dataConnections.sourceType" => Column::Related { from: DC, join: JOIN, column: "dc.source_type" },
        "dataConnections.created" => Column::Related { from: DC, join: JOIN, column: "dc.created" },
        _ => return None,
    })
}

async fn write_tags(tx: &mut d::DbConnection, company: &Company) -> Result<(), RepositoryError> {
    sqlx::query("DELETE FROM company_tags WHERE company_id = $1").bind(company.id.to_string()).execute(&mut *tx).await.map_err(backend)?;
    for (k, v) in &company.tags {
        sqlx::query("INSERT INTO company_tags (company_id, key, value) VALUES ($1, $2, $3)")
            .bind(company.id.to_string())
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
    }
    Ok(())
}

impl Store {
    async fn tags_for(&self, ids: &[String]) -> Result<BTreeMap<String, BTreeMap<String, String>>, RepositoryError> {
        let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let rows = sqlx::query(&format!("SELECT company_id, key, value FROM company_tags WHERE company_id {}", d::in_list(1)))
            .bind(d::texts(ids))
            .fetch_all(self.reader())
            .await
            .map_err(backend)?;
        for r in rows {
            out.entry(r.get::<String, _>(0)).or_default().insert(r.get(1), r.get(2));
        }
        Ok(out)
    }
}

fn company_from_row(r: &d::DbRow) -> Result<Company, RepositoryError> {
    Ok(Company {
        id: CompanyId(parse_uuid(&r.get::<String, _>("id"))?),
        name: r.get("name"),
        description: r.get("description"),
        tags: BTreeMap::new(),
        created: d::get_time(r, "created"),
        last_sync: d::get_opt_time(r, "last_sync"),
    })
}

#[async_trait]
impl CompanyRepository for Store {
    async fn insert(&self, company: &Company, events: &[OutboxEvent]) -> Result<(), RepositoryError> {
        let mut tx = self.writer().begin().await.map_err(backend)?;
        sqlx::query("INSERT INTO companies (id, name, description, created, last_sync) VALUES ($1, $2, $3, $4, $5)")
            .bind(company.id.to_string())
            .bind(&company.name)
            .bind(&company.description)
            .bind(d::time(company.created))
            .bind(company.last_sync.map(d::time))
            .execute(&mut *tx)
            .await
            .map_err(|e| write_error(e, || format!("company {} exists", company.id), || format!("company {}", company.id)))?;
        write_tags(&mut tx, company).await?;
        insert_events(&mut tx, events).await?;
        tx.commit().await.map_err(backend)
    }

    async fn get(&self, id: CompanyId) -> Result<Option<Company>, RepositoryError> {
        let row = sqlx::query("SELECT * FROM companies WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.reader())
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let mut c = company_from_row(&row)?;
        c.tags = self.tags_for(&[id.to_string()]).await?.remove(&id.to_string()).unwrap_or_default();
        Ok(Some(c))
    }

    async fn update(&self, company: &Company) -> Result<(), RepositoryError> {
        let mut tx = self.writer().begin().await.map_err(backend)?;
        let done = sqlx::query("UPDATE companies SET name = $1, description = $2, last_sync = $3 WHERE id = $4")
            .bind(&company.name)
            .bind(&company.description)
            .bind(company.last_sync.map(d::time))
            .bind(company.id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(RepositoryError::NotFound(format!("company {}", company.id)));
        }
        write_tags(&mut tx, company).await?;
        tx.commit().await.map_err(backend)
    }

    async fn delete(&self, id: CompanyId, events: &[OutboxEvent]) -> Result<bool, RepositoryError> {
        // Connections, tags and settings go with the company through ON DELETE CASCADE.
        let mut tx = self.writer().begin().await.map_err(backend)?;
        let done = sqlx::query("DELETE FROM companies WHERE id = $1").bind(id.to_string()).execute(&mut *tx).await.map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_events(&mut tx, events).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn list(&self, query: &ListQuery) -> Result<Page<Company>, RepositoryError> {
        let mut where_sql = Sql::default();
        where_sql.push(" WHERE TRUE");
        if let Some(f) = &query.filter {
            where_sql.push(" AND ");
            render(&mut where_sql, f, columns);
        }
        if let Some(t) = &query.tags {
            where_sql.push(" AND ");
            render_tags(&mut where_sql, t, "c");
        }
        let mut page = self.list_rows("c.*", "companies c", where_sql, query, columns, ("c.created ASC", "c.id"), company_from_row).await?;
        let items = &mut page.items;
        let mut tags = self.tags_for(&items.iter().map(|c| c.id.to_string()).collect::<Vec<_>>()).await?;
        for c in items.iter_mut() {
            c.tags = tags.remove(&c.id.to_string()).unwrap_or_default();
        }
        Ok(page)
    }
}
