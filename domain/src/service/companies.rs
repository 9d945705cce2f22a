//! Company use cases.

use super::Platform;
use crate::error::DomainError;
use crate::ids::CompanyId;
use crate::model::company::{Company, CompanyFields, TAGS_SCHEMA};
use crate::model::connection::Connection;
use crate::model::webhook::EventType;
use crate::paging::{ListQuery, Page};
use crate::query::resolve;
use std::collections::BTreeMap;

/// A company with its connections, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyView {
    /// The company.
    pub company: Company,
    /// Its connections, oldest first.
    pub connections: Vec<Connection>,
}

/// A partial update: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompanyPatch {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New tags (replacing all tags).
    pub tags: Option<BTreeMap<String, String>>,
}

/// Company use cases: create, read, change, delete and list companies (with their connections).
///
/// Borrowed from the façade: [`Platform::companies`].
#[derive(Clone, Copy)]
pub struct Companies<'a> {
    pub(super) p: &'a Platform,
}

impl Companies<'_> {
    /// Creates a company.
    ///
    /// # Errors
    /// [`DomainError::Validation`] for a name with no allowed characters or tags over the limits.
    pub async fn create(&self, fields: CompanyFields) -> Result<CompanyView, DomainError> {
        let company = Company {
            id: CompanyId::new_random(),
            name: fields.name,
            description: fields.description,
            tags: fields.tags,
            created: self.p.clock.now(),
            last_sync: None,
        };
        let events = self.p.company_event(EventType::CompanyCreated, &company);
        self.p.repos.companies.insert(&company, &events).await?;
        Ok(CompanyView { company, connections: Vec::new() })
    }

    /// Finds a company with its connections.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] when there is no such company.
    pub async fn get(&self, id: CompanyId) -> Result<CompanyView, DomainError> {
        let company = self.p.company(id).await?;
        let connections = self.p.repos.connections.list_for_companies(&[id]).await?;
        Ok(CompanyView { company, connections })
    }

    /// Replaces name, description and tags (absent description and tags are cleared).
    ///
    /// # Errors
    /// [`DomainError::NotFound`], or validation errors as for create.
    pub async fn replace(&self, id: CompanyId, fields: CompanyFields) -> Result<CompanyView, DomainError> {
        let mut company = self.p.company(id).await?;
        company.name = fields.name;
        company.description = fields.description;
        company.tags = fields.tags;
        self.p.repos.companies.update(&company).await?;
        self.get(id).await
    }

    /// Updates only the given fields.
    ///
    /// # Errors
    /// [`DomainError::NotFound`], or validation errors as for create.
    pub async fn update(&self, id: CompanyId, patch: CompanyPatch) -> Result<CompanyView, DomainError> {
        let mut company = self.p.company(id).await?;
        // Only the fields sent are checked (a stored value is left as it is).
        if let Some(name) = patch.name {
            company.name = CompanyFields::name(&name)?;
        }
        if let Some(d) = patch.description {
            company.description = CompanyFields::description(Some(d))?;
        }
        if let Some(tags) = patch.tags {
            crate::model::company::validate_tags(&tags)?;
            company.tags = tags;
        }
        self.p.repos.companies.update(&company).await?;
        self.get(id).await
    }

    /// Deletes a company, its connections and their data.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] when there is no such company.
    pub async fn delete(&self, id: CompanyId) -> Result<(), DomainError> {
        let events = match self.p.repos.companies.get(id).await? {
            Some(company) => self.p.company_event(EventType::CompanyDeleted, &company),
            None => Vec::new(),
        };
        if self.p.repos.companies.delete(id, &events).await? {
            Ok(())
        } else {
            Err(DomainError::NotFound(format!("No company was found with ID {id}")))
        }
    }

    /// Lists companies; `tags` is a filter on tag keys and values (`region=uk && team=x`).
    ///
    /// # Errors
    /// [`DomainError::Validation`] for a malformed `tags` filter.
    pub async fn list(&self, mut query: ListQuery, tags: Option<&str>) -> Result<Page<CompanyView>, DomainError> {
        if let Some(t) = tags.filter(|t| !t.trim().is_empty()) {
            query.tags = Some(resolve(t, &TAGS_SCHEMA).map_err(|e| DomainError::invalid(format!("Error parsing tags - {e}")))?);
        }
        let page = self.p.repos.companies.list(&query).await?;
        let ids: Vec<CompanyId> = page.items.iter().map(|c| c.id).collect();
        let mut connections = self.p.repos.connections.list_for_companies(&ids).await?;
        Ok(page.map(|company| {
            let mine = connections.iter().filter(|c| c.company_id == company.id).cloned().collect();
            connections.retain(|c| c.company_id != company.id);
            CompanyView { company, connections: mine }
        }))
    }
}

impl Platform {
    /// The company, or [`DomainError::NotFound`] in Codat's words.
    pub(crate) async fn company(&self, id: CompanyId) -> Result<Company, DomainError> {
        self.repos.companies.get(id).await?.ok_or_else(|| DomainError::NotFound(format!("No company was found with ID {id}")))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::DomainError;
    use crate::model::company::CompanyFields;
    use crate::service::CompanyPatch;
    use crate::service::test_support::platform;
    use std::collections::BTreeMap;

    #[tokio::test]
    async fn patch_changes_only_given_fields_and_replace_clears_the_rest() {
        let p = platform();
        let tags = BTreeMap::from([("region".to_string(), "uk".to_string())]);
        let c = p.companies().create(CompanyFields::new("Acme (UK)", Some("ref-1".into()), tags).unwrap()).await.unwrap();
        assert_eq!(c.company.name, "Acme UK");
        let id = c.company.id;
        let patched = p.companies().update(id, CompanyPatch { name: Some("Acme Two".into()), ..Default::default() }).await.unwrap();
        assert_eq!(patched.company.name, "Acme Two");
        assert_eq!(patched.company.description.as_deref(), Some("ref-1"));
        assert_eq!(patched.company.tags.len(), 1);
        let replaced = p.companies().replace(id, CompanyFields::new("Acme Three", None, BTreeMap::new()).unwrap()).await.unwrap();
        assert_eq!(replaced.company.description, None);
        assert!(replaced.company.tags.is_empty());
    }

    #[tokio::test]
    async fn unknown_companies_are_not_found() {
        let p = platform();
        let id = crate::ids::CompanyId::new_random();
        assert!(matches!(p.companies().get(id).await, Err(DomainError::NotFound(_))));
        assert!(matches!(p.companies().delete(id).await, Err(DomainError::NotFound(_))));
    }

    #[tokio::test]
    async fn a_malformed_tags_filter_is_a_validation_error() {
        let p = platform();
        let err = p.companies().list(Default::default(), Some("region=")).await.unwrap_err();
        assert!(err.to_string().starts_with("Error parsing tags - "), "{err}");
    }
}
