//! Integration use cases: listing, configuring (secrets sealed) and enabling the two Stripe
//! integrations, their credentials for the sync and linking, and what their source webhooks need
//! (the signing secret, the events already seen).

use super::Platform;
use crate::error::DomainError;
use crate::model::integration::{BUILT_IN, Integration, Mode, Scope, definition};
use crate::ports::oauth::PlatformCredentials;
use secrecy::{ExposeSecret, SecretString};

/// Changes to an integration's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct IntegrationUpdate {
    /// Connect client id.
    pub client_id: Option<String>,
    /// Platform secret key.
    pub secret_key: Option<SecretString>,
    /// Webhook signing secret.
    pub webhook_secret: Option<SecretString>,
    /// Requested scope.
    pub scope: Option<Scope>,
}

fn check_key_mode(key: &str, mode: Mode) -> Result<(), DomainError> {
    let wrong = match mode {
        Mode::Test => ["sk_live_", "rk_live_"],
        Mode::Live => ["sk_test_", "rk_test_"],
    };
    if wrong.iter().any(|p| key.starts_with(p)) {
        let m = if mode == Mode::Test { "test" } else { "live" };
        return Err(DomainError::invalid(format!("This integration is in {m} mode; its secret key must be a {m}-mode key.")));
    }
    if key.trim().is_empty() || key.chars().any(char::is_whitespace) {
        return Err(DomainError::invalid("The secret key must not be empty or contain whitespace."));
    }
    Ok(())
}

/// Integration use cases: the two Stripe integrations' settings, credentials and source webhooks.
///
/// Borrowed from the façade: [`Platform::integrations`].
#[derive(Clone, Copy)]
pub struct Integrations<'a> {
    pub(super) p: &'a Platform,
}

impl Integrations<'_> {
    /// Every built-in integration with its settings, in key order.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list(&self) -> Result<Vec<Integration>, DomainError> {
        let mut out = Vec::new();
        for def in BUILT_IN.iter() {
            let settings = self.p.repos.integrations.get(def.key).await?.unwrap_or_default();
            out.push(Integration { definition: def, settings });
        }
        Ok(out)
    }

    /// One integration.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown platform key.
    pub async fn get(&self, key: &str) -> Result<Integration, DomainError> {
        let def = definition(key).ok_or_else(|| DomainError::NotFound(format!("No integration found with platform key {key}")))?;
        let settings = self.p.repos.integrations.get(def.key).await?.unwrap_or_default();
        Ok(Integration { definition: def, settings })
    }

    /// Changes an integration's settings, sealing secrets under the current master key.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown key; [`DomainError::Validation`] for a secret key of
    /// the other mode.
    pub async fn update(&self, key: &str, update: IntegrationUpdate) -> Result<Integration, DomainError> {
        let mut integration = self.get(key).await?;
        let s = &mut integration.settings;
        if let Some(id) = update.client_id {
            if id.trim().is_empty() {
                return Err(DomainError::invalid("The client id must not be empty."));
            }
            s.client_id = Some(id.trim().to_owned());
        }
        let new_key = update.secret_key.is_some();
        if let Some(k) = update.secret_key {
            check_key_mode(k.expose_secret(), integration.definition.mode)?;
            s.secret_key = Some(self.p.cipher.seal(&k).map_err(DomainError::secret)?);
        }
        if let Some(w) = update.webhook_secret {
            s.webhook_secret = Some(self.p.cipher.seal(&w).map_err(DomainError::secret)?);
        }
        if let Some(scope) = update.scope {
            s.scope = scope;
        }
        self.p.repos.integrations.put(key, &integration.settings).await?;
        if new_key && integration.settings.key_refused.take().is_some() {
            // A new key: whether Stripe takes it is for the next pull to say.
            self.p.repos.integrations.set_key_refused(key, None).await?;
        }
        Ok(integration)
    }

    /// Enables or disables an integration. Enabling needs a client id and a secret key.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown key; [`DomainError::InvalidState`] when enabling an
    /// unconfigured integration.
    pub async fn set_enabled(&self, key: &str, enabled: bool) -> Result<Integration, DomainError> {
        let mut integration = self.get(key).await?;
        if enabled && !integration.settings.is_configured() {
            return Err(DomainError::InvalidState(format!(
                "Integration {key} needs a client id and a secret key before it can be enabled (tributary integrations set {key} --client-id … --secret-key …)."
            )));
        }
        integration.settings.enabled = enabled;
        self.p.repos.integrations.put(key, &integration.settings).await?;
        Ok(integration)
    }

    /// The opened platform credentials of an integration, for one OAuth or data call.
    ///
    /// # Errors
    /// [`DomainError::InvalidState`] when unconfigured; [`DomainError::Secret`] when the secret
    /// cannot be opened with the configured master keys.
    pub async fn credentials(&self, key: &str) -> Result<PlatformCredentials, DomainError> {
        Ok(self.credentials_and_refusal(key).await?.0)
    }

    /// [`Integrations::credentials`], and whether the source last refused the secret key.
    pub(crate) async fn credentials_and_refusal(&self, key: &str) -> Result<(PlatformCredentials, bool), DomainError> {
        let i = self.get(key).await?;
        let (Some(client_id), Some(sealed)) = (i.settings.client_id.clone(), i.settings.secret_key.as_ref()) else {
            return Err(DomainError::InvalidState(format!("Integration {key} is not configured.")));
        };
        let secret_key = self.p.cipher.open(sealed).map_err(DomainError::secret)?;
        Ok((
            PlatformCredentials { mode: i.definition.mode, client_id, secret_key, scope: i.settings.scope },
            i.settings.key_refused.is_some(),
        ))
    }
}

/// How long the ids of events received from a source are remembered: Stripe retries an event it
/// could not deliver for up to three days.
pub const SOURCE_EVENT_MEMORY: chrono::Duration = chrono::Duration::days(3);

impl Integrations<'_> {
    /// Whether an event received from the integration's source (by its id) was processed already:
    /// a replay of a signed event within the signature's tolerance, or a retry of one that was
    /// processed, is then acknowledged without being processed again.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn source_event_seen(&self, key: &str, event_id: &str) -> Result<bool, DomainError> {
        Ok(self.p.repos.integrations.event_seen(key, event_id).await?)
    }

    /// Remembers an event received from the integration's source once it was processed (for
    /// three days, `SOURCE_EVENT_MEMORY`). Processing is idempotent, so two deliveries processed at
    /// once do no harm; one that failed is not remembered, and the source's retry is processed.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn remember_source_event(&self, key: &str, event_id: &str) -> Result<(), DomainError> {
        let now = self.p.clock.now();
        Ok(self.p.repos.integrations.remember_event(key, event_id, now, now - SOURCE_EVENT_MEMORY).await?)
    }

    /// The opened webhook signing secret of an integration, if one is configured.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown key; [`DomainError::Secret`] when it cannot be
    /// opened.
    pub async fn webhook_secret(&self, key: &str) -> Result<Option<SecretString>, DomainError> {
        let i = self.get(key).await?;
        i.settings.webhook_secret.as_ref().map(|s| self.p.cipher.open(s).map_err(DomainError::secret)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use crate::service::IntegrationUpdate;
    use crate::service::test_support::platform;
    use secrecy::{ExposeSecret, SecretString};

    #[tokio::test]
    async fn secrets_are_sealed_and_open_back() {
        let p = platform();
        let i = p
            .integrations()
            .update(
                "yzth",
                IntegrationUpdate {
                    client_id: Some("ca_1".into()),
                    secret_key: Some(SecretString::from("sk_test_1")),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_ne!(i.settings.secret_key.as_ref().unwrap().ciphertext, "sk_test_1");
        let creds = p.integrations().credentials("yzth").await.unwrap();
        assert_eq!(creds.secret_key.expose_secret(), "sk_test_1");
    }

    #[tokio::test]
    async fn a_live_key_is_refused_for_the_test_integration_and_vice_versa() {
        let p = platform();
        let live = IntegrationUpdate { secret_key: Some(SecretString::from("sk_live_x")), ..Default::default() };
        assert!(p.integrations().update("yzth", live).await.is_err());
        let test = IntegrationUpdate { secret_key: Some(SecretString::from("sk_test_x")), ..Default::default() };
        assert!(p.integrations().update("exgd", test).await.is_err());
    }

    #[tokio::test]
    async fn enabling_needs_configuration() {
        let p = platform();
        assert!(p.integrations().set_enabled("exgd", true).await.is_err());
        assert!(p.integrations().set_enabled("exgd", false).await.is_ok());
        assert!(p.integrations().set_enabled("nope", true).await.is_err());
    }
}
