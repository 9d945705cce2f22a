//! Profile and sync-settings use cases, and master-key rotation.

use super::Platform;
use crate::error::DomainError;
use crate::ids::CompanyId;
use crate::model::profile::Profile;
use crate::model::sync_settings::{SyncSetting, default_settings, validate};
use crate::ports::SecretCipher;
use uuid::Uuid;

/// Settings use cases: the client profile, sync schedules and master-key rotation.
///
/// Borrowed from the façade: [`Platform::settings`].
#[derive(Clone, Copy)]
pub struct Settings<'a> {
    pub(super) p: &'a Platform,
}

impl Settings<'_> {
    /// The client profile (defaults until one is saved).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn profile(&self) -> Result<Profile, DomainError> {
        Ok(self.p.repos.profile.get_profile().await?.unwrap_or_default())
    }

    /// Saves the client profile.
    ///
    /// # Errors
    /// [`DomainError::Validation`] naming each field that is wrong (see [`Profile::validate`]).
    pub async fn put_profile(&self, profile: Profile) -> Result<Profile, DomainError> {
        profile.validate()?;
        self.p.repos.profile.put_profile(&profile).await?;
        Ok(profile)
    }

    /// The instance's client id.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn client_id(&self) -> Result<Uuid, DomainError> {
        Ok(self.p.repos.profile.client_id().await?)
    }

    /// Client-level sync settings, and whether they override the defaults.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn sync_settings(&self) -> Result<(Vec<SyncSetting>, bool), DomainError> {
        Ok(match self.p.repos.profile.get_sync_settings().await? {
            Some(s) => (s, true),
            None => (default_settings(), false),
        })
    }

    /// Saves client-level sync settings.
    ///
    /// # Errors
    /// [`DomainError::Validation`] as [`validate`] describes.
    pub async fn put_sync_settings(&self, settings: Vec<SyncSetting>) -> Result<(), DomainError> {
        validate(&settings)?;
        Ok(self.p.repos.profile.put_sync_settings(&settings).await?)
    }

    /// A company's effective sync settings, and whether it overrides the client's.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown company.
    pub async fn company_sync_settings(&self, company: CompanyId) -> Result<(Vec<SyncSetting>, bool), DomainError> {
        self.p.company(company).await?;
        match self.p.repos.profile.get_company_sync_settings(company).await? {
            Some(s) => Ok((s, true)),
            None => Ok((self.sync_settings().await?.0, false)),
        }
    }

    /// Saves (`overrides_defaults`) or clears a company's sync settings.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown company; validation errors.
    pub async fn put_company_sync_settings(
        &self,
        company: CompanyId,
        settings: Vec<SyncSetting>,
        overrides_defaults: bool,
    ) -> Result<(), DomainError> {
        self.p.company(company).await?;
        validate(&settings)?;
        let value = if overrides_defaults { Some(settings) } else { None };
        Ok(self.p.repos.profile.put_company_sync_settings(company, value).await?)
    }

    /// Re-encrypts every sealed secret under `new`'s current key, all or nothing. `old` must be able
    /// to open every secret. Returns how many secrets were re-encrypted.
    ///
    /// # Errors
    /// [`DomainError::Secret`] naming the first secret `old` cannot open; nothing is changed then.
    pub async fn rotate_secrets(&self, old: &dyn SecretCipher, new: &dyn SecretCipher) -> Result<usize, DomainError> {
        let sealed = self.p.repos.secrets.list_sealed().await?;
        let mut updates = Vec::with_capacity(sealed.len());
        for (slot, s) in sealed {
            let plain = old.open(&s).map_err(|e| DomainError::secret_of(format!("{slot:?}"), e))?;
            updates.push((slot, new.seal(&plain).map_err(DomainError::secret)?));
        }
        self.p.repos.secrets.replace_sealed(&updates).await?;
        Ok(updates.len())
    }
}
