//! Stripe webhooks: verification of the `Stripe-Signature` header and parsing of event payloads.
//!
//! Stripe's scheme: the header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=<hex>]`; each `v1` is
//! the lowercase hex HMAC-SHA256, keyed with the endpoint's `whsec_…` secret, of `"{t}."` followed
//! by the **raw** request body. A request is genuine when any `v1` matches (there are several while
//! a secret is being rolled); `v0` and unknown schemes are ignored. The timestamp must lie within
//! the tolerance ([`DEFAULT_TOLERANCE_SECS`], 300 s) of now, in either direction.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The header Stripe signs webhook deliveries with.
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";
/// Stripe's default tolerance between the signed timestamp and now, in seconds.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// Why a webhook delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No (or an empty) `Stripe-Signature` header.
    #[error("missing Stripe-Signature header")]
    MissingHeader,
    /// The header is not `t=…,v1=…`: an item without `=`, no or several `t`, or a `t` that is not
    /// an integer.
    #[error("malformed Stripe-Signature header: {0}")]
    Malformed(String),
    /// No `v1` signature matches the body (or the header has no `v1` at all).
    #[error("no v1 signature matches the payload")]
    NoMatchingSignature,
    /// The signed timestamp is older than the tolerance.
    #[error("signature timestamp {timestamp} is more than {tolerance_secs} s older than now ({now})")]
    TooOld {
        /// The header's `t`.
        timestamp: i64,
        /// The verifier's clock.
        now: i64,
        /// The tolerance applied.
        tolerance_secs: i64,
    },
    /// The signed timestamp is further in the future than the tolerance.
    #[error("signature timestamp {timestamp} is more than {tolerance_secs} s ahead of now ({now})")]
    TooNew {
        /// The header's `t`.
        timestamp: i64,
        /// The verifier's clock.
        now: i64,
        /// The tolerance applied.
        tolerance_secs: i64,
    },
    /// The (verified) body is not a Stripe event.
    #[error("invalid event payload: {0}")]
    InvalidEvent(String),
}

/// The parts of a `Stripe-Signature` header that matter.
#[derive(Debug)]
struct Header {
    timestamp: i64,
    v1: Vec<String>,
}

fn parse_header(header: &str) -> Result<Header, WebhookError> {
    if header.trim().is_empty() {
        return Err(WebhookError::MissingHeader);
    }
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in header.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return Err(WebhookError::Malformed(format!("item '{}' has no '='", truncate(item))));
        };
        match key.trim() {
            "t" => {
                if timestamp.is_some() {
                    return Err(WebhookError::Malformed("more than one t".into()));
                }
                let t = value
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| WebhookError::Malformed(format!("t '{}' is not a Unix timestamp", truncate(value))))?;
                timestamp = Some(t);
            }
            "v1" => v1.push(value.trim().to_owned()),
            _ => {} // v0 and future schemes are ignored, as Stripe's libraries do.
        }
    }
    let Some(timestamp) = timestamp else {
        return Err(WebhookError::Malformed("no t".into()));
    };
    Ok(Header { timestamp, v1 })
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

fn mac(secret: &str, timestamp: i64, raw_body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(raw_body);
    mac
}

/// Verifies a `Stripe-Signature` header against the raw body, Stripe's way.
///
/// `now_unix` is the verifier's clock; `tolerance_secs` is how far the signed timestamp may be from
/// it, in the past or in the future (use [`DEFAULT_TOLERANCE_SECS`]). Signatures are compared in
/// constant time; the timestamp is checked after a signature matched.
///
/// # Errors
/// [`WebhookError::MissingHeader`], [`WebhookError::Malformed`],
/// [`WebhookError::NoMatchingSignature`], [`WebhookError::TooOld`] or [`WebhookError::TooNew`].
pub fn verify(secret: &str, signature_header: &str, raw_body: &[u8], now_unix: i64, tolerance_secs: i64) -> Result<(), WebhookError> {
    let header = parse_header(signature_header)?;
    let expected = mac(secret, header.timestamp, raw_body);
    let matched = header
        .v1
        .iter()
        .filter_map(|sig| hex::decode(sig).ok())
        .fold(false, |found, sig| expected.clone().verify_slice(&sig).is_ok() | found);
    if !matched {
        return Err(WebhookError::NoMatchingSignature);
    }
    let age = i128::from(now_unix) - i128::from(header.timestamp);
    let tolerance = i128::from(tolerance_secs.max(0));
    if age > tolerance {
        return Err(WebhookError::TooOld { timestamp: header.timestamp, now: now_unix, tolerance_secs });
    }
    if -age > tolerance {
        return Err(WebhookError::TooNew { timestamp: header.timestamp, now: now_unix, tolerance_secs });
    }
    Ok(())
}

/// [`verify`] against the system clock with [`DEFAULT_TOLERANCE_SECS`].
///
/// # Errors
/// As [`verify`].
pub fn verify_now(secret: &str, signature_header: &str, raw_body: &[u8]) -> Result<(), WebhookError> {
    verify(secret, signature_header, raw_body, chrono::Utc::now().timestamp(), DEFAULT_TOLERANCE_SECS)
}

/// The `Stripe-Signature` value Stripe would send for `raw_body` at `timestamp`
/// (`t=<timestamp>,v1=<hex>`); for tools and tests that emit webhooks.
pub fn signature_header(secret: &str, timestamp: i64, raw_body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex::encode(mac(secret, timestamp, raw_body).finalize().into_bytes()))
}

/// A Stripe event, as delivered to a (Connect) webhook endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StripeEvent {
    /// `evt_…`.
    pub id: String,
    /// The event type, e.g. `account.application.deauthorized` or `charge.succeeded`.
    pub event_type: String,
    /// The connected account (`acct_…`) the event happened on; `None` for the platform's own events.
    pub account: Option<String>,
    /// Whether it is a live-mode event.
    pub livemode: bool,
    /// When it happened (Unix seconds).
    pub created: i64,
    /// `data.object`: the object the event is about, as rendered in the event's API version.
    pub data_object: serde_json::Value,
}

/// The wire shape of an event.
#[derive(Deserialize)]
struct RawEvent {
    id: String,
    #[serde(default)]
    object: Option<String>,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    account: Option<String>,
    livemode: bool,
    created: i64,
    data: RawData,
}

#[derive(Deserialize)]
struct RawData {
    object: serde_json::Value,
}

/// Parses a webhook body into a [`StripeEvent`]. Verify the signature first (or use
/// [`construct_event`]).
///
/// # Errors
/// [`WebhookError::InvalidEvent`] when the body is not JSON, lacks `id`, `type`, `livemode`,
/// `created` or `data.object`, or has an `object` other than `event`.
pub fn parse_event(raw_body: &[u8]) -> Result<StripeEvent, WebhookError> {
    let raw: RawEvent = serde_json::from_slice(raw_body).map_err(|e| WebhookError::InvalidEvent(e.to_string()))?;
    if let Some(object) = raw.object.as_deref()
        && object != "event"
    {
        return Err(WebhookError::InvalidEvent(format!("object is '{}', not 'event'", truncate(object))));
    }
    if raw.id.is_empty() || raw.event_type.is_empty() {
        return Err(WebhookError::InvalidEvent("empty id or type".into()));
    }
    Ok(StripeEvent {
        id: raw.id,
        event_type: raw.event_type,
        account: raw.account.filter(|a| !a.is_empty()),
        livemode: raw.livemode,
        created: raw.created,
        data_object: raw.data.object,
    })
}

/// [`verify`] then [`parse_event`].
///
/// # Errors
/// As [`verify`] and [`parse_event`].
pub fn construct_event(
    secret: &str,
    signature_header: &str,
    raw_body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<StripeEvent, WebhookError> {
    verify(secret, signature_header, raw_body, now_unix, tolerance_secs)?;
    parse_event(raw_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parsing() {
        assert!(matches!(parse_header("  "), Err(WebhookError::MissingHeader)));
        assert!(matches!(parse_header("t=1,v1"), Err(WebhookError::Malformed(_))));
        assert!(matches!(parse_header("v1=ab"), Err(WebhookError::Malformed(_))));
        assert!(matches!(parse_header("t=x,v1=ab"), Err(WebhookError::Malformed(_))));
        assert!(matches!(parse_header("t=1,t=2,v1=ab"), Err(WebhookError::Malformed(_))));
        let h = parse_header("t=12, v1=aa ,v0=bb,v1=cc,x=y,").unwrap();
        assert_eq!(h.timestamp, 12);
        assert_eq!(h.v1, vec!["aa", "cc"]);
    }

    #[test]
    fn own_signatures_verify() {
        let body = br#"{"id":"evt_1"}"#;
        let h = signature_header("whsec_x", 1000, body);
        assert_eq!(verify("whsec_x", &h, body, 1000, DEFAULT_TOLERANCE_SECS), Ok(()));
        assert_eq!(
            verify("whsec_x", &h, body, i64::MAX, 300),
            Err(WebhookError::TooOld { timestamp: 1000, now: i64::MAX, tolerance_secs: 300 })
        );
        assert_eq!(
            verify("whsec_x", &h, body, i64::MIN, 300),
            Err(WebhookError::TooNew { timestamp: 1000, now: i64::MIN, tolerance_secs: 300 })
        );
    }
}
