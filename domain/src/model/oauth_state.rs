//! OAuth `state`: signed, bound to one connection, single-use and expiring.
//!
//! The state sent to the provider is `{connectionId}.{nonce}.{expiresUnix}.{signature}`, where the
//! signature is HMAC-SHA256 under a key derived from the master key. The nonce is also stored, and
//! consuming it (once) is what makes a state single-use.

use crate::ids::{CompanyId, ConnectionId};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a state is valid.
pub const STATE_TTL_SECS: i64 = 600;

/// A stored, not yet consumed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthState {
    /// Random, unguessable.
    pub nonce: String,
    /// The company of the connection.
    pub company_id: CompanyId,
    /// The connection being linked.
    pub connection_id: ConnectionId,
    /// When it stops being accepted.
    pub expires: DateTime<Utc>,
}

/// Why a returned state is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Not in our format or its signature does not match: forged or tampered.
    #[error("the authorization request could not be verified (the state is forged or was altered)")]
    Invalid,
    /// Past its expiry.
    #[error("the authorization request expired; start linking again")]
    Expired,
    /// Already used, or never issued by this server.
    #[error("this authorization was already completed or is unknown; start linking again")]
    Replayed,
}

fn signature(key: &[u8; 32], payload: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The state string for a stored state.
pub fn encode(key: &[u8; 32], s: &OAuthState) -> String {
    let payload = format!("{}.{}.{}", s.connection_id, s.nonce, s.expires.timestamp());
    format!("{payload}.{}", signature(key, &payload))
}

/// Checks a returned state's format and signature, returning the connection and nonce to consume.
/// Expiry is checked against `now`.
///
/// # Errors
/// [`StateError::Invalid`] or [`StateError::Expired`].
pub fn verify(key: &[u8; 32], state: &str, now: DateTime<Utc>) -> Result<(ConnectionId, String), StateError> {
    let parts: Vec<&str> = state.split('.').collect();
    let [conn, nonce, expires, sig] = parts.as_slice() else { return Err(StateError::Invalid) };
    let payload = format!("{conn}.{nonce}.{expires}");
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    let given = hex::decode(sig).map_err(|_| StateError::Invalid)?;
    mac.verify_slice(&given).map_err(|_| StateError::Invalid)?;
    let connection: ConnectionId = conn.parse().map_err(|_| StateError::Invalid)?;
    let expires: i64 = expires.parse().map_err(|_| StateError::Invalid)?;
    if now.timestamp() > expires {
        return Err(StateError::Expired);
    }
    Ok((connection, (*nonce).to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(expires: DateTime<Utc>) -> OAuthState {
        OAuthState { nonce: "n0nce".into(), company_id: CompanyId::new_random(), connection_id: ConnectionId::new_random(), expires }
    }

    #[test]
    fn a_signed_state_verifies_until_it_expires() {
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let s = state(now + chrono::Duration::seconds(600));
        let text = encode(&[1; 32], &s);
        assert_eq!(verify(&[1; 32], &text, now).unwrap(), (s.connection_id, "n0nce".to_owned()));
        assert_eq!(verify(&[1; 32], &text, now + chrono::Duration::seconds(601)), Err(StateError::Expired));
    }

    #[test]
    fn forged_and_tampered_states_are_invalid() {
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let s = state(now + chrono::Duration::seconds(600));
        let text = encode(&[1; 32], &s);
        assert_eq!(verify(&[2; 32], &text, now), Err(StateError::Invalid), "another key");
        let other = ConnectionId::new_random();
        let tampered = text.replacen(&s.connection_id.to_string(), &other.to_string(), 1);
        assert_eq!(verify(&[1; 32], &tampered, now), Err(StateError::Invalid));
        let later = text.replacen(&s.expires.timestamp().to_string(), &(s.expires.timestamp() + 9999).to_string(), 1);
        assert_eq!(verify(&[1; 32], &later, now), Err(StateError::Invalid), "extending the expiry breaks the signature");
        assert_eq!(verify(&[1; 32], "garbage", now), Err(StateError::Invalid));
        assert_eq!(verify(&[1; 32], "a.b.c.zz", now), Err(StateError::Invalid));
    }
}
