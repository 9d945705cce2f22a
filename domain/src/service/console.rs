//! The operator console's use cases: signing in with an API key into a stored session, the
//! overview and the backlog. Everything else the console does goes through the
//! same use cases as the API.

use super::Platform;
use super::api_keys::hash_api_key;
use crate::error::{DomainError, RepositoryError};
use crate::model::console::{ConsoleSession, Overview};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// How often a session's last use is written at most: sooner than this after the last write, a
/// request does not write (so browsing does not turn every page view into a write). A tenth of
/// the idle time when that is shorter, so a session never expires much before its time.
const TOUCH_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The window of the overview's pulls and records.
pub const OVERVIEW_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Operator console use cases: sessions and the overview figures.
///
/// Borrowed from the façade: [`Platform::console`].
#[derive(Clone, Copy)]
pub struct Console<'a> {
    pub(super) p: &'a Platform,
}

impl Console<'_> {
    /// Signs in with an API key: when `key` is a valid key, stores a session for `token` (a new
    /// random value the caller puts in the session cookie; only its hash is stored).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn sign_in(&self, key: &str, token: &SecretString) -> Result<Option<ConsoleSession>, DomainError> {
        if key.is_empty() {
            return Ok(None);
        }
        let Some(api_key) = self.p.api_keys().authenticate(key).await? else { return Ok(None) };
        let now = self.p.clock.now();
        let session = ConsoleSession { hash: hash_api_key(token.expose_secret()), api_key_id: api_key.id, created: now, last_seen: now };
        match self.p.repos.console.insert_session(&session).await {
            Ok(()) => Ok(Some(session)),
            // The key was deleted meanwhile.
            Err(RepositoryError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The live session for a token: `None` when there is none, its API key was deleted, or it
    /// was idle for `idle` (then it is deleted). Using it keeps it alive.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn session(&self, token: &str, idle: Duration) -> Result<Option<ConsoleSession>, DomainError> {
        let hash = hash_api_key(token);
        let Some(mut session) = self.p.repos.console.find_session(&hash).await? else { return Ok(None) };
        let now = self.p.clock.now();
        let idle = chrono::TimeDelta::from_std(idle).unwrap_or(chrono::TimeDelta::MAX);
        if now - session.last_seen >= idle {
            self.p.repos.console.delete_sessions(Some(hash), now - idle).await?;
            return Ok(None);
        }
        if now - session.last_seen >= TOUCH_EVERY.min(idle / 10) {
            self.p.repos.console.touch_session(&hash, now).await?;
            session.last_seen = now;
        }
        Ok(Some(session))
    }

    /// Ends the session of a token (and any session idle for `idle`).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn sign_out(&self, token: &str, idle: Duration) -> Result<(), DomainError> {
        let idle = chrono::TimeDelta::from_std(idle).unwrap_or(chrono::TimeDelta::MAX);
        let before = self.p.clock.now().checked_sub_signed(idle).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        Ok(self.p.repos.console.delete_sessions(Some(hash_api_key(token)), before).await?)
    }

    /// The overview: companies and connections by status, the last 24 hours' pulls by status and
    /// records written per minute, data types failing now, webhook deliveries by status.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn overview(&self) -> Result<Overview, DomainError> {
        Ok(self.p.repos.console.overview(self.p.clock.now() - OVERVIEW_WINDOW).await?)
    }

    /// Pulls queued and running, and webhook deliveries pending, across the database.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn backlog(&self) -> Result<crate::model::console::Backlog, DomainError> {
        Ok(self.p.repos.console.backlog().await?)
    }
}

#[cfg(test)]
mod tests {
    use crate::service::test_support::{Fixed, Mem, platform_with};
    use secrecy::SecretString;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    const IDLE: Duration = Duration::from_secs(1800);

    fn setup() -> (crate::service::Platform, Arc<Fixed>) {
        let clock = Arc::new(Fixed(Mutex::new("2026-01-01T00:00:00Z".parse().unwrap())));
        (platform_with(Arc::new(Mem::default()), clock.clone()), clock)
    }

    #[tokio::test]
    async fn a_valid_key_signs_in_and_a_wrong_one_does_not() {
        let (p, _) = setup();
        let key = "k".repeat(40);
        p.api_keys().create(None, &SecretString::from(key.clone())).await.unwrap();
        assert!(p.console().sign_in("wrong", &SecretString::from("t1".to_owned())).await.unwrap().is_none());
        assert!(p.console().sign_in("", &SecretString::from("t1".to_owned())).await.unwrap().is_none());
        let s = p.console().sign_in(&key, &SecretString::from("token-1".to_owned())).await.unwrap().unwrap();
        assert_ne!(s.hash, "token-1", "only the token's hash is stored");
        assert!(p.console().session("token-1", IDLE).await.unwrap().is_some());
        assert!(p.console().session("token-2", IDLE).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_idle_session_expires_and_a_used_one_stays() {
        let (p, clock) = setup();
        let key = "k".repeat(40);
        p.api_keys().create(None, &SecretString::from(key.clone())).await.unwrap();
        p.console().sign_in(&key, &SecretString::from("tok".to_owned())).await.unwrap().unwrap();
        for _ in 0..3 {
            *clock.0.lock().unwrap() += chrono::TimeDelta::minutes(20);
            assert!(p.console().session("tok", IDLE).await.unwrap().is_some(), "used every 20 minutes, it stays");
        }
        *clock.0.lock().unwrap() += chrono::TimeDelta::minutes(30);
        assert!(p.console().session("tok", IDLE).await.unwrap().is_none(), "idle for 30 minutes, it expired");
    }

    #[tokio::test]
    async fn with_a_one_minute_idle_time_a_session_used_every_50_seconds_stays() {
        let (p, clock) = setup();
        let key = "k".repeat(40);
        p.api_keys().create(None, &SecretString::from(key.clone())).await.unwrap();
        p.console().sign_in(&key, &SecretString::from("tok".to_owned())).await.unwrap().unwrap();
        let minute = Duration::from_secs(60);
        for _ in 0..5 {
            *clock.0.lock().unwrap() += chrono::TimeDelta::seconds(50);
            assert!(p.console().session("tok", minute).await.unwrap().is_some());
        }
        *clock.0.lock().unwrap() += chrono::TimeDelta::seconds(61);
        assert!(p.console().session("tok", minute).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn signing_out_and_deleting_the_key_end_the_session() {
        let (p, _) = setup();
        let (k1, k2) = ("a".repeat(40), "b".repeat(40));
        let first = p.api_keys().create(None, &SecretString::from(k1.clone())).await.unwrap();
        p.api_keys().create(None, &SecretString::from(k2.clone())).await.unwrap();
        p.console().sign_in(&k1, &SecretString::from("s1".to_owned())).await.unwrap().unwrap();
        p.console().sign_in(&k2, &SecretString::from("s2".to_owned())).await.unwrap().unwrap();
        p.console().sign_out("s2", IDLE).await.unwrap();
        assert!(p.console().session("s2", IDLE).await.unwrap().is_none());
        p.api_keys().delete(first.id, false).await.unwrap();
        assert!(p.console().session("s1", IDLE).await.unwrap().is_none());
    }
}
