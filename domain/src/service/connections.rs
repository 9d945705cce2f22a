//! Connection use cases.

use super::Platform;
use crate::error::DomainError;
use crate::ids::{CompanyId, ConnectionId};
use crate::model::connection::{Connection, ConnectionStatus};
use crate::model::integration::definition;
use crate::model::webhook::EventType;
use crate::paging::{ListQuery, Page};

/// Connection use cases: a company's data connections and their client-visible lifecycle (linking itself is [`Linking`](super::Linking)).
///
/// Borrowed from the façade: [`Platform::connections`].
#[derive(Clone, Copy)]
pub struct Connections<'a> {
    pub(super) p: &'a Platform,
}

impl Connections<'_> {
    /// Creates a `PendingAuth` connection of a company to an enabled integration.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown company or platform key; [`DomainError::Validation`]
    /// for a disabled integration.
    pub async fn create(&self, company_id: CompanyId, platform_key: &str) -> Result<Connection, DomainError> {
        self.p.company(company_id).await?;
        let def = definition(platform_key).ok_or_else(|| {
            DomainError::NotFound(format!(
                "No integration found with platform key '{platform_key}'. Known keys: exgd (Stripe), yzth (Stripe Test)."
            ))
        })?;
        let settings = self.p.repos.integrations.get(def.key).await?.unwrap_or_default();
        if !settings.enabled {
            return Err(DomainError::invalid(format!("Integration {} ({}) is not enabled.", def.key, def.name)));
        }
        let connection = Connection {
            id: ConnectionId::new_random(),
            company_id,
            platform_key: def.platform_key(),
            status: ConnectionStatus::PendingAuth,
            created: self.p.clock.now(),
            last_sync: None,
            source_account: None,
            grant: None,
            errors: Vec::new(),
        };
        let events = self.p.connection_event(EventType::ConnectionCreated, &connection).await?;
        self.p.repos.connections.insert(&connection, &events).await?;
        Ok(connection)
    }

    /// Finds a connection of a company.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown company or a connection that is not the company's.
    pub async fn get(&self, company_id: CompanyId, id: ConnectionId) -> Result<Connection, DomainError> {
        self.p.company(company_id).await?;
        self.p.repos.connections.get(company_id, id).await?.ok_or_else(|| DomainError::NotFound(format!("Data connection {id} not found")))
    }

    /// Finds a connection by id alone (the CLI addresses connections so).
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown connection.
    pub async fn find(&self, id: ConnectionId) -> Result<Connection, DomainError> {
        self.p.repos.connections.find(id).await?.ok_or_else(|| DomainError::NotFound(format!("Data connection {id} not found")))
    }

    /// The linked connections to a source account (`account`) through an integration
    /// (`platform_key`): the ones a change the source reports for that account concerns.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn linked_to_account(&self, platform_key: &str, account: &str) -> Result<Vec<Connection>, DomainError> {
        let all = self.p.repos.connections.find_by_source_account(platform_key, account).await?;
        Ok(all.into_iter().filter(|c| c.status == crate::model::connection::ConnectionStatus::Linked).collect())
    }

    /// Lists a company's connections.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown company.
    pub async fn list(&self, company_id: CompanyId, query: &ListQuery) -> Result<Page<Connection>, DomainError> {
        self.p.company(company_id).await?;
        Ok(self.p.repos.connections.list(company_id, query).await?)
    }

    /// Changes a connection's status as a client may (`Unlinked` only); data is kept.
    ///
    /// # Errors
    /// [`DomainError::Validation`] for any other status; [`DomainError::InvalidState`] when the
    /// lifecycle forbids it (a `PendingAuth` connection cannot be unlinked).
    pub async fn set_status(&self, company_id: CompanyId, id: ConnectionId, status: ConnectionStatus) -> Result<Connection, DomainError> {
        if status != ConnectionStatus::Unlinked {
            return Err(DomainError::invalid(format!("Only the status Unlinked can be set through this endpoint; {status} was given.")));
        }
        let mut connection = self.get(company_id, id).await?;
        let was = connection.status;
        connection.transition(status)?;
        let events = if was == ConnectionStatus::Linked && status != ConnectionStatus::Linked {
            self.p.connection_event(EventType::ConnectionDisconnected, &connection).await?
        } else {
            Vec::new()
        };
        self.p.repos.connections.update(&connection, &events).await?;
        Ok(connection)
    }

    /// Deletes a connection and its data.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] as for get.
    pub async fn delete(&self, company_id: CompanyId, id: ConnectionId) -> Result<(), DomainError> {
        self.p.company(company_id).await?;
        let events = match self.p.repos.connections.get(company_id, id).await? {
            Some(c) => self.p.connection_event(EventType::ConnectionDeleted, &c).await?,
            None => Vec::new(),
        };
        if self.p.repos.connections.delete(company_id, id, &events).await? {
            Ok(())
        } else {
            Err(DomainError::NotFound(format!("Data connection {id} not found")))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::error::DomainError;
    use crate::model::company::CompanyFields;
    use crate::model::connection::ConnectionStatus;
    use crate::service::IntegrationUpdate;
    use crate::service::test_support::platform;
    use secrecy::SecretString;

    async fn enabled_platform() -> crate::service::Platform {
        let p = platform();
        p.integrations()
            .update(
                "yzth",
                IntegrationUpdate {
                    client_id: Some("ca_test".into()),
                    secret_key: Some(SecretString::from("sk_test_abc")),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        p.integrations().set_enabled("yzth", true).await.unwrap();
        p
    }

    #[tokio::test]
    async fn connections_start_pending_and_cannot_be_unlinked_before_linking() {
        let p = enabled_platform().await;
        let c = p.companies().create(CompanyFields::new("A", None, Default::default()).unwrap()).await.unwrap();
        let conn = p.connections().create(c.company.id, "yzth").await.unwrap();
        assert_eq!(conn.status, ConnectionStatus::PendingAuth);
        let err = p.connections().set_status(c.company.id, conn.id, ConnectionStatus::Unlinked).await.unwrap_err();
        assert!(matches!(err, DomainError::InvalidState(_)), "{err:?}");
        let err = p.connections().set_status(c.company.id, conn.id, ConnectionStatus::Linked).await.unwrap_err();
        assert!(matches!(err, DomainError::Validation { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn unknown_or_disabled_integrations_are_refused() {
        let p = platform();
        let c = p.companies().create(CompanyFields::new("A", None, Default::default()).unwrap()).await.unwrap();
        assert!(p.connections().create(c.company.id, "abcd").await.unwrap_err().to_string().contains("abcd"));
        assert!(p.connections().create(c.company.id, "yzth").await.unwrap_err().to_string().contains("not enabled"));
    }

    #[tokio::test]
    async fn a_connection_of_another_company_is_not_found() {
        let p = enabled_platform().await;
        let a = p.companies().create(CompanyFields::new("A", None, Default::default()).unwrap()).await.unwrap();
        let b = p.companies().create(CompanyFields::new("B", None, Default::default()).unwrap()).await.unwrap();
        let conn = p.connections().create(a.company.id, "yzth").await.unwrap();
        assert!(matches!(p.connections().get(b.company.id, conn.id).await, Err(DomainError::NotFound(_))));
        assert!(matches!(p.connections().delete(b.company.id, conn.id).await, Err(DomainError::NotFound(_))));
    }
}
