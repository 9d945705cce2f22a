//! Pull-operation (dataset) reads: `GET /companies/{id}/data/history[/{datasetId}]`.

use super::Platform;
use crate::error::DomainError;
use crate::ids::{CompanyId, PullOperationId};
use crate::model::pull::PullOperation;
use crate::paging::{ListQuery, Page};

impl Platform {
    /// A company's pull operations.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown company.
    pub async fn list_pull_operations(&self, company: CompanyId, query: &ListQuery) -> Result<Page<PullOperation>, DomainError> {
        self.company(company).await?;
        Ok(self.repos.pull_operations.list(company, query).await?)
    }

    /// One pull operation of a company.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown company or dataset.
    pub async fn get_pull_operation(&self, company: CompanyId, id: PullOperationId) -> Result<PullOperation, DomainError> {
        self.company(company).await?;
        self.repos
            .pull_operations
            .get(company, id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("No dataset was found with ID {id}")))
    }
}
