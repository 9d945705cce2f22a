//! Commerce data reads (`GET /companies/{id}/connections/{cid}/data/commerce-…`): Codat's 404 for
//! unknown companies, connections and records and for data types the platform lacks, 409 before a
//! data type has been synced, and the stored documents with `modifiedDate` filled in.

use super::Platform;
use crate::error::DomainError;
use crate::ids::{CompanyId, ConnectionId};
use crate::model::connection::Connection;
use crate::model::data_type::DataType;
use crate::model::integration::{FeatureState, definition};
use crate::model::pull::DatasetStatus;
use crate::model::record::RecordRow;
use crate::paging::{ListQuery, Page, PageRequest};
use crate::query::{Filter, resolve};

/// A record as served: the document with `modifiedDate` from the store.
pub fn served(row: RecordRow) -> serde_json::Value {
    let mut doc = row.record.document;
    if let Some(o) = doc.as_object_mut() {
        o.insert("modifiedDate".into(), serde_json::Value::String(row.modified.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)));
    }
    doc
}

impl Platform {
    /// Checks that `data_type` can be read on a company's connection: the company and connection
    /// exist and belong together, the integration provides the type, and it has been synced.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown company or connection, or a data type the platform
    /// does not support; [`DomainError::Conflict`] (409) when it has not been requested or has not
    /// finished its first sync.
    pub async fn readable(&self, company: CompanyId, connection: ConnectionId, data_type: DataType) -> Result<Connection, DomainError> {
        let c = self.get_connection(company, connection).await?;
        let def = definition(c.platform_key.as_str()).ok_or_else(|| DomainError::NotFound("integration".into()))?;
        if def.feature_state(data_type) != FeatureState::Release {
            return Err(DomainError::NotFound(format!("Datatype {data_type} not supported by platform(s) {}", def.name)));
        }
        let filter: Filter = resolve(&format!("connectionId={connection} && dataType={data_type}"), &crate::model::pull::QUERY_SCHEMA)
            .map_err(|e| DomainError::invalid(e.0))?;
        let pulls = self
            .repos
            .pull_operations
            .list(company, &ListQuery { filter: Some(filter), page: PageRequest { page: 1, page_size: 5000 }, ..Default::default() })
            .await?;
        if pulls.items.is_empty() {
            return Err(DomainError::Conflict("The data set has not been requested.".into()));
        }
        if !pulls.items.iter().any(|p| p.status == DatasetStatus::Complete) {
            return Err(DomainError::Conflict("The data set has not finished its first sync yet.".into()));
        }
        Ok(c)
    }

    /// A page of records.
    ///
    /// # Errors
    /// As [`Platform::readable`].
    pub async fn list_records(
        &self,
        company: CompanyId,
        connection: ConnectionId,
        data_type: DataType,
        query: &ListQuery,
    ) -> Result<Page<serde_json::Value>, DomainError> {
        self.readable(company, connection, data_type).await?;
        Ok(self.repos.records.list(connection, data_type, query).await?.map(served))
    }

    /// One record by id (deleted records are not found).
    ///
    /// # Errors
    /// As [`Platform::readable`], and [`DomainError::NotFound`] for an unknown id.
    pub async fn get_record(
        &self,
        company: CompanyId,
        connection: ConnectionId,
        data_type: DataType,
        id: &str,
    ) -> Result<serde_json::Value, DomainError> {
        self.readable(company, connection, data_type).await?;
        match self.repos.records.get(connection, data_type, id).await? {
            Some(row) if !row.record.deleted => Ok(served(row)),
            _ => Err(DomainError::NotFound(format!("No {} record was found with ID {id}", data_type.key()))),
        }
    }

    /// The company-info record of a connection (Codat leaves its `modifiedDate` unset).
    ///
    /// # Errors
    /// As [`Platform::readable`].
    pub async fn company_info(&self, company: CompanyId, connection: ConnectionId) -> Result<serde_json::Value, DomainError> {
        let c = self.readable(company, connection, DataType::CompanyInfo).await?;
        let rows = self.repos.records.scan(c.id, DataType::CompanyInfo, None, 1).await?;
        rows.into_iter()
            .find(|r| !r.record.deleted)
            .map(|r| r.record.document)
            .ok_or_else(|| DomainError::Conflict("The data set has not been requested.".into()))
    }
}
