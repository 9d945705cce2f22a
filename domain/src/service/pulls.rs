//! Pulls and data status: queueing pulls (refresh, `data/all`, schedules), the pull-operation
//! (dataset) reads of `GET /companies/{id}/data/history[/{datasetId}]` and `dataStatus`. The
//! workers that run pulls are in [`super::engine`].

use super::Platform;
use crate::error::DomainError;
use crate::ids::{CompanyId, ConnectionId, PullOperationId};
use crate::model::connection::{Connection, ConnectionStatus};
use crate::model::data_type::DataType;
use crate::model::integration::{FeatureState, definition};
use crate::model::pull::{DatasetStatus, PullOperation};
use crate::paging::{ListQuery, Page};

/// Pull use cases: queueing data pulls, the pull history and each data type's status.
///
/// Borrowed from the façade: [`Platform::pulls`].
#[derive(Clone, Copy)]
pub struct Pulls<'a> {
    pub(super) p: &'a Platform,
}

impl Pulls<'_> {
    /// A company's pull operations.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown company.
    pub async fn list(&self, company: CompanyId, query: &ListQuery) -> Result<Page<PullOperation>, DomainError> {
        self.p.company(company).await?;
        Ok(self.p.repos.pull_operations.list(company, query).await?)
    }

    /// One pull operation of a company.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown company or dataset.
    pub async fn get(&self, company: CompanyId, id: PullOperationId) -> Result<PullOperation, DomainError> {
        self.p.company(company).await?;
        self.p
            .repos
            .pull_operations
            .get(company, id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("No dataset was found with ID {id}")))
    }
}

/// One data type's status for `GET /companies/{id}/dataStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataTypeStatus {
    /// The data type.
    pub data_type: DataType,
    /// The latest pull.
    pub latest: PullOperation,
    /// The latest successful pull.
    pub latest_successful: Option<PullOperation>,
}

impl Pulls<'_> {
    /// Queues a pull of `data_type` on the company's linked connections (or only `connection`),
    /// returning the first. An unfinished pull of the same type is reused, not duplicated. A type
    /// the integration lacks gets a finished `NotSupported` pull.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown company or connection; [`DomainError::InvalidState`]
    /// when no linked connection is left to pull from.
    pub async fn queue(
        &self,
        company: CompanyId,
        data_type: DataType,
        connection: Option<ConnectionId>,
    ) -> Result<PullOperation, DomainError> {
        let view = self.p.companies().get(company).await?;
        let targets: Vec<Connection> = match connection {
            Some(id) => {
                let c = view
                    .connections
                    .into_iter()
                    .find(|c| c.id == id)
                    .ok_or_else(|| DomainError::NotFound(format!("Data connection {id} not found")))?;
                if c.status != ConnectionStatus::Linked {
                    return Err(DomainError::InvalidState(format!("Data connection {id} is {} and cannot be synced.", c.status)));
                }
                vec![c]
            }
            None => view.connections.into_iter().filter(|c| c.status == ConnectionStatus::Linked).collect(),
        };
        if targets.is_empty() {
            return Err(DomainError::InvalidState(format!("Company {company} has no linked data connection to pull from.")));
        }
        let mut first = None;
        for c in &targets {
            let op = self.queue_on(c, data_type).await?;
            first.get_or_insert(op);
        }
        first.ok_or_else(|| DomainError::InvalidState("nothing queued".into()))
    }

    async fn queue_on(&self, c: &Connection, data_type: DataType) -> Result<PullOperation, DomainError> {
        let open = self.p.repos.pull_operations.unfinished_for_connection(c.id).await?;
        if let Some(open) = open.into_iter().find(|p| p.data_type == data_type) {
            return Ok(open);
        }
        let def = definition(c.platform_key.as_str()).ok_or_else(|| DomainError::NotFound("integration".into()))?;
        let supported = def.feature_state(data_type) == FeatureState::Release;
        let now = self.p.clock.now();
        let op = PullOperation {
            id: PullOperationId::new_random(),
            company_id: c.company_id,
            connection_id: c.id,
            data_type,
            status: if supported { DatasetStatus::Queued } else { DatasetStatus::NotSupported },
            status_description: (!supported).then(|| format!("{data_type} is not supported by {}", def.name)),
            error_message: None,
            requested: now,
            completed: (!supported).then_some(now),
            progress: if supported { 0 } else { 100 },
        };
        self.p.repos.pull_operations.insert(std::slice::from_ref(&op)).await?;
        if op.status.is_terminal() {
            crate::metrics::pull_finished(&op);
        }
        Ok(op)
    }

    /// Queues every data type with fetch-on-first-link on every linked connection (`data/all`).
    ///
    /// # Errors
    /// As [`Pulls::queue`].
    pub async fn queue_all(&self, company: CompanyId) -> Result<Vec<PullOperation>, DomainError> {
        let (settings, _) = self.p.settings().company_sync_settings(company).await?;
        let mut ordered: Vec<_> = settings.into_iter().filter(|s| s.fetch_on_first_link).collect();
        ordered.sort_by_key(|s| s.sync_order);
        let mut out = Vec::new();
        for s in ordered {
            out.push(self.queue(company, s.data_type, None).await?);
        }
        Ok(out)
    }

    /// Queues a pull for every data type of every linked connection whose last pull was requested
    /// more than its sync schedule (hours, company overrides first) ago, and that has no unfinished
    /// pull. Data types never pulled are left to the first link. Unlinked and deauthorized
    /// connections are never scheduled. Returns what was queued.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn queue_due(&self) -> Result<Vec<PullOperation>, DomainError> {
        let now = self.p.clock.now();
        let mut queued = Vec::new();
        for c in self.p.repos.connections.list_linked().await? {
            let Ok((settings, _)) = self.p.settings().company_sync_settings(c.company_id).await else { continue };
            let def = definition(c.platform_key.as_str()).ok_or_else(|| DomainError::NotFound("integration".into()))?;
            for s in settings.iter().filter(|s| def.feature_state(s.data_type) == FeatureState::Release && s.sync_schedule > 0) {
                let Some(last) = self.p.repos.pull_operations.latest(c.id, s.data_type).await? else { continue };
                let due = last.requested + chrono::Duration::hours(i64::from(s.sync_schedule));
                if last.status.is_terminal() && due <= now {
                    queued.push(self.queue_on(&c, s.data_type).await?);
                }
            }
        }
        Ok(queued)
    }

    /// Per data type, the latest and latest successful pull of a company.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown company.
    pub async fn data_status(&self, company: CompanyId) -> Result<Vec<DataTypeStatus>, DomainError> {
        self.p.company(company).await?;
        Ok(self
            .p
            .repos
            .pull_operations
            .data_status(company)
            .await?
            .into_iter()
            .map(|(latest, latest_successful)| DataTypeStatus { data_type: latest.data_type, latest, latest_successful })
            .collect())
    }
}
