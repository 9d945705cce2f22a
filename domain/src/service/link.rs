//! The link flow (docs/architecture.md, "The domain"): start linking a connection, complete or refuse it
//! on the OAuth callback, unlink or delete with revocation at the provider, and apply the
//! provider's deauthorization.

use super::Platform;
use crate::error::DomainError;
use crate::ids::{CompanyId, ConnectionId, PullOperationId};
use crate::model::connection::{Connection, ConnectionError, ConnectionStatus};
use crate::model::data_type::DataType;
use crate::model::integration::{Mode, definition};
use crate::model::oauth_state::{self, OAuthState, STATE_TTL_SECS, StateError};
use crate::model::pull::{DatasetStatus, PullOperation};
use crate::model::webhook::EventType;
use crate::ports::oauth::{Grant, OAuthError, OAuthProvider};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

/// The link use cases: the platform plus an OAuth provider and the key that signs states.
#[derive(Clone)]
pub struct Linking {
    platform: Platform,
    oauth: Arc<dyn OAuthProvider>,
    state_key: [u8; 32],
    callback_url: String,
}

/// What the provider sent back to the callback.
#[derive(Debug, Clone, Default)]
pub struct Callback {
    /// `state`.
    pub state: Option<String>,
    /// `code`, on success.
    pub code: Option<String>,
    /// `error`, on denial or failure (`access_denied`).
    pub error: Option<String>,
    /// `error_description`.
    pub error_description: Option<String>,
}

/// How a callback ended for a known connection.
#[derive(Debug, Clone)]
pub struct LinkResult {
    /// The connection after the callback.
    pub connection: Connection,
    /// Codat's redirect `statusCode`: 200 linked, 403 cancelled by the merchant, 500 failed.
    pub status_code: u16,
    /// Codat's redirect `errorMessage` (empty on success).
    pub error_message: String,
    /// Whether the connection had been linked before (re-link: `connection.reconnected`).
    pub reconnected: bool,
}

/// Why a callback was refused without changing anything.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The state is missing, forged, tampered, expired or replayed.
    #[error("{0}")]
    State(#[from] StateError),
    /// The provider refused the code (or could not be reached).
    #[error("Stripe did not accept the authorization: {0}")]
    Provider(OAuthError),
    /// The grant is for the other mode than the integration.
    #[error("the authorization is for {got} mode but this integration is {want} mode")]
    WrongMode {
        /// The grant's mode.
        got: &'static str,
        /// The integration's mode.
        want: &'static str,
    },
    /// Anything else (the connection vanished, storage failed).
    #[error(transparent)]
    Domain(#[from] DomainError),
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Test => "test",
        Mode::Live => "live",
    }
}

/// The grant as it is sealed at rest (tokens included, so it is only ever stored encrypted).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredGrant {
    account_id: String,
    livemode: bool,
    scope: String,
    access_token: String,
    refresh_token: Option<String>,
}

impl Linking {
    /// Composes the link use cases. `callback_url` is `{public_url}/oauth/stripe/callback`.
    pub fn new(platform: Platform, oauth: Arc<dyn OAuthProvider>, state_key: [u8; 32], callback_url: String) -> Self {
        Self { platform, oauth, state_key, callback_url }
    }

    /// The platform use cases.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// Finds the company's `PendingAuth` connection to `platform_key`, or creates one (the Link
    /// page's "choose an integration").
    ///
    /// # Errors
    /// As [`Connections::create`](super::Connections::create).
    pub async fn connection_for(&self, company: CompanyId, platform_key: &str) -> Result<Connection, DomainError> {
        let view = self.platform.companies().get(company).await?;
        if let Some(c) =
            view.connections.into_iter().find(|c| c.platform_key.as_str() == platform_key && c.status == ConnectionStatus::PendingAuth)
        {
            return Ok(c);
        }
        self.platform.connections().create(company, platform_key).await
    }

    /// Starts linking: mints a signed, single-use state and returns the provider's authorize URL.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown company or connection; [`DomainError::InvalidState`]
    /// when the connection is already linked or the integration is disabled or unconfigured.
    pub async fn start(&self, company: CompanyId, connection: ConnectionId) -> Result<String, DomainError> {
        let c = self.platform.connections().get(company, connection).await?;
        if c.status == ConnectionStatus::Linked {
            return Err(DomainError::InvalidState("This connection is already linked.".into()));
        }
        let integration = self.platform.integrations().get(c.platform_key.as_str()).await?;
        if !integration.settings.enabled {
            return Err(DomainError::InvalidState(format!("{} is not enabled for linking.", integration.definition.name)));
        }
        let creds = self.platform.integrations().credentials(c.platform_key.as_str()).await?;
        let nonce = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let state = OAuthState {
            nonce,
            company_id: company,
            connection_id: connection,
            expires: self.platform.clock.now() + chrono::Duration::seconds(STATE_TTL_SECS),
        };
        // Expired states are useless; clearing them here keeps the table small without a job.
        self.platform.repos.oauth_states.purge_expired(self.platform.clock.now()).await?;
        self.platform.repos.oauth_states.insert(&state).await?;
        Ok(self.oauth.authorize_url(&creds, &oauth_state::encode(&self.state_key, &state), &self.callback_url))
    }

    /// Completes a callback. A refused state or code changes nothing; a denial keeps the connection
    /// `PendingAuth` with a recorded error; a code is exchanged, the grant sealed, the connection
    /// linked and its first pulls queued, together.
    ///
    /// # Errors
    /// [`CallbackError`] when nothing was changed.
    pub async fn complete(&self, cb: Callback) -> Result<LinkResult, CallbackError> {
        let now = self.platform.clock.now();
        let state = cb.state.as_deref().ok_or(StateError::Invalid)?;
        let verified = oauth_state::verify(&self.state_key, state, now);
        let (connection_id, nonce) = match verified {
            Ok(v) => v,
            Err(StateError::Expired) => {
                // Drop the stored nonce too, so the expired state can never be used.
                if let Some(n) = state.split('.').nth(1) {
                    let _ = self.platform.repos.oauth_states.consume(n).await;
                }
                return Err(StateError::Expired.into());
            }
            Err(e) => return Err(e.into()),
        };
        let stored = self.platform.repos.oauth_states.consume(&nonce).await.map_err(DomainError::from)?.ok_or(StateError::Replayed)?;
        if stored.connection_id != connection_id {
            return Err(StateError::Invalid.into());
        }
        if stored.expires < now {
            return Err(StateError::Expired.into());
        }
        let mut connection = self
            .platform
            .repos
            .connections
            .find(connection_id)
            .await
            .map_err(DomainError::from)?
            .ok_or_else(|| DomainError::NotFound(format!("Data connection {connection_id} no longer exists")))?;
        if let Some(error) = cb.error {
            let (status, message) =
                if error == "access_denied" { (403, "User cancelled linking") } else { (500, "Linking failed at Stripe") };
            // From the browser's query string: kept for the record, without U+0000.
            let description = cb.error_description.unwrap_or_default().replace('\0', "\u{FFFD}");
            let error = error.replace('\0', "\u{FFFD}");
            connection.errors.push(ConnectionError {
                status_code: status.to_string(),
                status_text: Some(if description.is_empty() { error.clone() } else { format!("{error}: {description}") }),
                error_message: message.to_owned(),
                errored_on_utc: now,
            });
            let events = self.platform.connection_event(EventType::ConnectionFailed, &connection).await?;
            self.platform.repos.connections.update(&connection, &events).await.map_err(DomainError::from)?;
            return Ok(LinkResult { connection, status_code: status, error_message: message.to_owned(), reconnected: false });
        }
        let code = cb.code.ok_or(StateError::Invalid)?;
        let def = definition(connection.platform_key.as_str()).ok_or_else(|| DomainError::NotFound("integration".into()))?;
        let creds = self.platform.integrations().credentials(def.key).await?;
        let grant = self.oauth.exchange_code(&creds, &code).await.map_err(CallbackError::Provider)?;
        let grant_mode = if grant.livemode { Mode::Live } else { Mode::Test };
        if grant_mode != def.mode {
            return Err(CallbackError::WrongMode { got: mode_name(grant_mode), want: mode_name(def.mode) });
        }
        let reconnected = matches!(connection.status, ConnectionStatus::Unlinked | ConnectionStatus::Deauthorized);
        connection.grant = Some(self.seal_grant(&grant)?);
        connection.source_account = Some(grant.account_id.clone());
        connection.transition(ConnectionStatus::Linked)?;
        let queued = self.first_pulls(&connection).await?;
        let event = if reconnected { EventType::ConnectionReconnected } else { EventType::ConnectionConnected };
        let events = self.platform.connection_event(event, &connection).await?;
        self.platform.repos.connections.save_linked(&connection, &queued, &events).await.map_err(DomainError::from)?;
        queued.iter().filter(|op| op.status.is_terminal()).for_each(crate::metrics::pull_finished);
        Ok(LinkResult { connection, status_code: 200, error_message: String::new(), reconnected })
    }

    fn seal_grant(&self, g: &Grant) -> Result<crate::model::secret::SealedSecret, DomainError> {
        let stored = StoredGrant {
            account_id: g.account_id.clone(),
            livemode: g.livemode,
            scope: g.scope.as_str().to_owned(),
            access_token: g.access_token.expose_secret().to_owned(),
            refresh_token: g.refresh_token.as_ref().map(|t| t.expose_secret().to_owned()),
        };
        let json = SecretString::from(serde_json::to_string(&stored).map_err(DomainError::secret)?);
        self.platform.cipher.seal(&json).map_err(DomainError::secret)
    }

    /// A `Queued` pull per supported data type with fetch-on-first-link (`NotSupported`, already
    /// finished, for the types the integration lacks).
    async fn first_pulls(&self, c: &Connection) -> Result<Vec<PullOperation>, DomainError> {
        let (settings, _) = self.platform.settings().company_sync_settings(c.company_id).await?;
        let def = definition(c.platform_key.as_str()).ok_or_else(|| DomainError::NotFound("integration".into()))?;
        let now = self.platform.clock.now();
        let mut ordered: Vec<_> = settings.iter().filter(|s| s.fetch_on_first_link).collect();
        ordered.sort_by_key(|s| s.sync_order);
        Ok(ordered
            .into_iter()
            .map(|s| {
                let supported = def.feature_state(s.data_type) == crate::model::integration::FeatureState::Release;
                PullOperation {
                    id: PullOperationId::new_random(),
                    company_id: c.company_id,
                    connection_id: c.id,
                    data_type: s.data_type,
                    status: if supported { DatasetStatus::Queued } else { DatasetStatus::NotSupported },
                    status_description: (!supported).then(|| format!("{} is not supported by {}", s.data_type, def.name)),
                    error_message: None,
                    requested: now,
                    completed: (!supported).then_some(now),
                    progress: if supported { 0 } else { 100 },
                }
            })
            .collect())
    }

    /// Unlinks (`PATCH … {"status":"Unlinked"}`): revokes at the provider first; the data is kept.
    /// When the provider cannot be reached nothing changes and the error says so (retry later).
    ///
    /// # Errors
    /// As [`Connections::set_status`](super::Connections::set_status), plus [`DomainError::Unavailable`] when the provider
    /// cannot revoke access.
    pub async fn unlink(&self, company: CompanyId, id: ConnectionId, status: ConnectionStatus) -> Result<Connection, DomainError> {
        if status != ConnectionStatus::Unlinked {
            return Err(DomainError::invalid(format!("Only the status Unlinked can be set through this endpoint; {status} was given.")));
        }
        let c = self.platform.connections().get(company, id).await?;
        if c.status == ConnectionStatus::Linked {
            self.revoke(&c).await?;
        }
        self.platform.connections().set_status(company, id, status).await
    }

    /// Deletes a connection and its data, revoking at the provider first.
    ///
    /// # Errors
    /// As [`Connections::delete`](super::Connections::delete), or when the provider is unreachable (nothing deleted).
    pub async fn delete(&self, company: CompanyId, id: ConnectionId) -> Result<(), DomainError> {
        let c = self.platform.connections().get(company, id).await?;
        if c.status == ConnectionStatus::Linked {
            self.revoke(&c).await?;
        }
        self.platform.connections().delete(company, id).await
    }

    async fn revoke(&self, c: &Connection) -> Result<(), DomainError> {
        let Some(account) = &c.source_account else { return Ok(()) };
        let creds = self.platform.integrations().credentials(c.platform_key.as_str()).await?;
        match self.oauth.revoke(&creds, account).await {
            Ok(()) => Ok(()),
            Err(OAuthError::Unavailable(m)) => Err(DomainError::unavailable(
                format!("Stripe could not be reached to revoke access ({m}); nothing was changed, try again."),
                OAuthError::Unavailable(m),
            )),
            Err(e) => Err(DomainError::unavailable(format!("Stripe refused to revoke access ({e}); nothing was changed."), e)),
        }
    }

    /// Applies the provider's deauthorization of `account` for an integration: every linked
    /// connection to it becomes `Deauthorized`. Idempotent. Returns the connections changed.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn deauthorized(&self, platform_key: &str, account: &str) -> Result<Vec<Connection>, DomainError> {
        let mut changed = Vec::new();
        for mut c in self.platform.repos.connections.find_by_source_account(platform_key, account).await? {
            if c.status != ConnectionStatus::Linked {
                continue;
            }
            c.status = ConnectionStatus::Deauthorized;
            let events = self.platform.connection_event(EventType::ConnectionDisconnected, &c).await?;
            if self
                .platform
                .repos
                .connections
                .set_status_if(c.id, ConnectionStatus::Linked, ConnectionStatus::Deauthorized, &events)
                .await?
            {
                changed.push(c);
            }
        }
        Ok(changed)
    }

    /// Codat's redirect after linking: the profile's `redirectUrl` with placeholders filled (values
    /// URL-encoded), or `None` when no redirect URL is set.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn redirect_for(&self, r: &LinkResult) -> Result<Option<String>, DomainError> {
        let profile = self.platform.settings().profile().await?;
        if profile.redirect_url.trim().is_empty() {
            return Ok(None);
        }
        let c = &r.connection;
        let def = definition(c.platform_key.as_str()).ok_or_else(|| DomainError::NotFound("integration".into()))?;
        let company = self.platform.company(c.company_id).await?;
        let client_id = self.platform.settings().client_id().await?;
        let status_text = match r.status_code {
            200 => "Linked",
            403 => "User cancelled.",
            _ => "Unknown error occurred.",
        };
        let values = [
            ("{clientId}", client_id.to_string()),
            ("{companyId}", c.company_id.to_string()),
            ("{connectionId}", c.id.to_string()),
            ("{integrationId}", def.integration_id.to_string()),
            ("{sourceId}", def.source_id.to_string()),
            ("{platform}", def.key.to_owned()),
            ("{platformName}", def.name.to_owned()),
            ("{sourceType}", def.source_type().to_owned()),
            ("{statusCode}", r.status_code.to_string()),
            ("{errorMessage}", r.error_message.clone()),
            ("{statusText}", status_text.to_owned()),
            ("{data.company.companyName}", company.name),
        ];
        let mut url = profile.redirect_url;
        for (k, v) in values {
            url = url.replace(k, &encode_component(&v));
        }
        Ok(Some(url))
    }

    /// The data types the connection's integration supports, for pages.
    pub fn supported(platform_key: &str) -> Vec<DataType> {
        definition(platform_key)
            .map(|d| {
                DataType::ALL.into_iter().filter(|t| d.feature_state(*t) == crate::model::integration::FeatureState::Release).collect()
            })
            .unwrap_or_default()
    }
}

fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::company::CompanyFields;
    use crate::model::integration::Scope;
    use crate::ports::oauth::MockOAuthProvider;
    use crate::service::IntegrationUpdate;
    use crate::service::test_support::{Fixed, Mem, platform_with};
    use std::sync::Mutex;

    struct Setup {
        linking: Linking,
        mem: Arc<Mem>,
        clock: Arc<Fixed>,
        company: CompanyId,
        connection: ConnectionId,
    }

    fn grant(account: &str, livemode: bool) -> Grant {
        Grant {
            account_id: account.into(),
            livemode,
            scope: Scope::ReadOnly,
            access_token: SecretString::from("sk_test_access"),
            refresh_token: Some(SecretString::from("rt_refresh")),
        }
    }

    async fn setup(oauth: MockOAuthProvider) -> Setup {
        let mem = Arc::new(Mem::default());
        let clock = Arc::new(Fixed(Mutex::new("2026-01-01T00:00:00Z".parse().unwrap())));
        let p = platform_with(mem.clone(), clock.clone());
        p.integrations()
            .update(
                "yzth",
                IntegrationUpdate {
                    client_id: Some("ca_1".into()),
                    secret_key: Some(SecretString::from("sk_test_platform")),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        p.integrations().set_enabled("yzth", true).await.unwrap();
        let company = p.companies().create(CompanyFields::new("Shop", None, Default::default()).unwrap()).await.unwrap().company.id;
        let connection = p.connections().create(company, "yzth").await.unwrap().id;
        let linking = Linking::new(p, Arc::new(oauth), [9; 32], "http://t/oauth/stripe/callback".into());
        Setup { linking, mem, clock, company, connection }
    }

    fn oauth_granting(account: &'static str, livemode: bool) -> MockOAuthProvider {
        let mut m = MockOAuthProvider::new();
        m.expect_authorize_url()
            .returning(|_, state, redirect| format!("https://connect.test/oauth/authorize?state={state}&redirect_uri={redirect}"));
        m.expect_exchange_code().returning(move |_, code| {
            if code == "good" { Ok(grant(account, livemode)) } else { Err(OAuthError::Reauthorize("invalid_grant".into())) }
        });
        m.expect_revoke().returning(|_, _| Ok(()));
        m
    }

    fn state_of(url: &str) -> String {
        url.split("state=").nth(1).unwrap().split('&').next().unwrap().to_owned()
    }

    fn cb(state: &str, code: &str) -> Callback {
        Callback { state: Some(state.into()), code: Some(code.into()), ..Default::default() }
    }

    #[tokio::test]
    async fn a_code_links_the_connection_seals_the_grant_and_queues_first_pulls() {
        let s = setup(oauth_granting("acct_1", false)).await;
        let url = s.linking.start(s.company, s.connection).await.unwrap();
        let r = s.linking.complete(cb(&state_of(&url), "good")).await.unwrap();
        assert_eq!((r.status_code, r.connection.status), (200, ConnectionStatus::Linked));
        assert_eq!(r.connection.source_account.as_deref(), Some("acct_1"));
        let sealed = r.connection.grant.clone().unwrap();
        assert!(!sealed.ciphertext.contains("sk_test_access"), "the grant is sealed");
        let pulls = s.mem.pulls.lock().unwrap().clone();
        assert_eq!(pulls.len(), 11);
        assert_eq!(pulls.iter().filter(|p| p.status == DatasetStatus::Queued).count(), 6);
        assert_eq!(pulls.iter().filter(|p| p.status == DatasetStatus::NotSupported).count(), 5);
    }

    #[tokio::test]
    async fn a_replayed_tampered_or_expired_state_changes_nothing() {
        let s = setup(oauth_granting("acct_1", false)).await;
        let url = s.linking.start(s.company, s.connection).await.unwrap();
        let state = state_of(&url);
        let last = if state.ends_with('0') { '1' } else { '0' };
        let tampered = format!("{}{last}", &state[..state.len() - 1]);
        assert!(matches!(s.linking.complete(cb(&tampered, "good")).await, Err(CallbackError::State(StateError::Invalid))));
        assert!(matches!(
            s.linking.complete(Callback { code: Some("good".into()), ..Default::default() }).await,
            Err(CallbackError::State(StateError::Invalid))
        ));
        s.linking.complete(cb(&state, "good")).await.unwrap();
        assert!(matches!(s.linking.complete(cb(&state, "good")).await, Err(CallbackError::State(StateError::Replayed))));

        let s = setup(oauth_granting("acct_1", false)).await;
        let url = s.linking.start(s.company, s.connection).await.unwrap();
        *s.clock.0.lock().unwrap() += chrono::Duration::seconds(601);
        assert!(matches!(s.linking.complete(cb(&state_of(&url), "good")).await, Err(CallbackError::State(StateError::Expired))));
        let c = s.linking.platform().connections().get(s.company, s.connection).await.unwrap();
        assert_eq!(c.status, ConnectionStatus::PendingAuth);
    }

    #[tokio::test]
    async fn a_refused_code_or_a_wrong_mode_grant_changes_nothing() {
        let s = setup(oauth_granting("acct_1", false)).await;
        let url = s.linking.start(s.company, s.connection).await.unwrap();
        assert!(matches!(s.linking.complete(cb(&state_of(&url), "bad")).await, Err(CallbackError::Provider(OAuthError::Reauthorize(_)))));
        let c = s.linking.platform().connections().get(s.company, s.connection).await.unwrap();
        assert_eq!((c.status, c.errors.len(), c.grant.is_none()), (ConnectionStatus::PendingAuth, 0, true));

        let s = setup(oauth_granting("acct_live", true)).await;
        let url = s.linking.start(s.company, s.connection).await.unwrap();
        assert!(matches!(s.linking.complete(cb(&state_of(&url), "good")).await, Err(CallbackError::WrongMode { .. })));
        assert_eq!(s.linking.platform().connections().get(s.company, s.connection).await.unwrap().status, ConnectionStatus::PendingAuth);
    }

    #[tokio::test]
    async fn a_denial_keeps_pending_auth_and_records_a_403_error() {
        let s = setup(oauth_granting("acct_1", false)).await;
        let url = s.linking.start(s.company, s.connection).await.unwrap();
        let r = s
            .linking
            .complete(Callback {
                state: Some(state_of(&url)),
                error: Some("access_denied".into()),
                error_description: Some("The user denied your request".into()),
                code: None,
            })
            .await
            .unwrap();
        assert_eq!((r.status_code, r.connection.status), (403, ConnectionStatus::PendingAuth));
        assert_eq!(r.connection.errors[0].status_code, "403");
        assert_eq!(r.connection.errors[0].error_message, "User cancelled linking");
    }

    #[tokio::test]
    async fn deauthorization_is_idempotent_and_relinking_reconnects() {
        let s = setup(oauth_granting("acct_1", false)).await;
        let url = s.linking.start(s.company, s.connection).await.unwrap();
        s.linking.complete(cb(&state_of(&url), "good")).await.unwrap();
        assert_eq!(s.linking.deauthorized("yzth", "acct_1").await.unwrap().len(), 1);
        assert_eq!(s.linking.deauthorized("yzth", "acct_1").await.unwrap().len(), 0, "a repeated delivery changes nothing");
        assert_eq!(s.linking.deauthorized("exgd", "acct_1").await.unwrap().len(), 0, "other integration");
        let c = s.linking.platform().connections().get(s.company, s.connection).await.unwrap();
        assert_eq!(c.status, ConnectionStatus::Deauthorized);
        let url = s.linking.start(s.company, s.connection).await.unwrap();
        let r = s.linking.complete(cb(&state_of(&url), "good")).await.unwrap();
        assert!(r.reconnected);
        assert_eq!(r.connection.status, ConnectionStatus::Linked);
        assert!(
            matches!(s.linking.start(s.company, s.connection).await, Err(DomainError::InvalidState(_))),
            "a linked connection is not started again"
        );
    }

    #[tokio::test]
    async fn unlink_revokes_first_and_changes_nothing_when_the_provider_is_unreachable() {
        let mut m = oauth_granting("acct_1", false);
        m.checkpoint();
        m.expect_authorize_url().returning(|_, state, _| format!("https://x/?state={state}"));
        m.expect_exchange_code().returning(|_, _| Ok(grant("acct_1", false)));
        m.expect_revoke().times(2).returning(|_, _| Err(OAuthError::Unavailable("connection refused".into())));
        let s = setup(m).await;
        let url = s.linking.start(s.company, s.connection).await.unwrap();
        s.linking.complete(cb(&state_of(&url), "good")).await.unwrap();
        let err = s.linking.unlink(s.company, s.connection, ConnectionStatus::Unlinked).await.unwrap_err();
        assert!(matches!(err, DomainError::Unavailable { .. }), "{err:?}");
        assert_eq!(s.linking.platform().connections().get(s.company, s.connection).await.unwrap().status, ConnectionStatus::Linked);
        assert!(matches!(s.linking.delete(s.company, s.connection).await, Err(DomainError::Unavailable { .. })));
        assert!(s.linking.platform().connections().get(s.company, s.connection).await.is_ok(), "nothing deleted");
    }

    #[tokio::test]
    async fn the_redirect_fills_codats_placeholders() {
        let s = setup(oauth_granting("acct_1", false)).await;
        let p = s.linking.platform();
        let mut profile = p.settings().profile().await.unwrap();
        profile.redirect_url = "https://client.example/done?c={companyId}&x={connectionId}&p={platform}&s={statusCode}&e={errorMessage}&n={data.company.companyName}".into();
        p.settings().put_profile(profile).await.unwrap();
        let url = s.linking.start(s.company, s.connection).await.unwrap();
        let r = s
            .linking
            .complete(Callback { state: Some(state_of(&url)), error: Some("access_denied".into()), ..Default::default() })
            .await
            .unwrap();
        let to = s.linking.redirect_for(&r).await.unwrap().unwrap();
        assert_eq!(
            to,
            format!("https://client.example/done?c={}&x={}&p=yzth&s=403&e=User%20cancelled%20linking&n=Shop", s.company, s.connection)
        );
    }
}
