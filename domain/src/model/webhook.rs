//! Webhooks to clients (Codat's webhook consumers): the consumers, the events written to the
//! transactional outbox, their deliveries and every delivery attempt, and Standard Webhooks
//! signing.
//!
//! An event row is written in the same transaction as the change that caused it; a dispatcher
//! then fans each event out into one delivery per matching consumer, and delivery workers lease
//! due deliveries, POST them and record the attempt.

use crate::error::{DomainError, ValidationItem};
use crate::ids::{CompanyId, ConnectionId, WebhookConsumerId};
use crate::model::company::Company;
use crate::model::connection::Connection;
use crate::model::data_type::DataType;
use crate::model::pull::DatasetStatus;
use crate::model::secret::SealedSecret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

/// Most webhook consumers a client may have.
pub const MAX_CONSUMERS: usize = 50;
/// Most company tags on one consumer (Codat's `maxItems`).
pub const MAX_COMPANY_TAGS: usize = 10;
/// How long a consumer may fail before it is disabled (Codat: five days).
pub const DEFAULT_DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);
/// How long one delivery may take before it counts as failed (Codat: 15 s).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

/// Codat's retry schedule: the delay before each attempt (the first is immediate), eight attempts
/// over about 28 hours.
pub const DEFAULT_SCHEDULE: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The events Tributary emits (Codat's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// A company was created.
    CompanyCreated,
    /// A company was deleted.
    CompanyDeleted,
    /// A connection was created (`PendingAuth`).
    ConnectionCreated,
    /// A connection was linked for the first time.
    ConnectionConnected,
    /// Linking failed (the merchant refused, or the exchange failed).
    ConnectionFailed,
    /// A connection was unlinked or deauthorized.
    ConnectionDisconnected,
    /// A connection was linked again after a disconnect.
    ConnectionReconnected,
    /// A connection was deleted.
    ConnectionDeleted,
    /// A read (sync) of a connection's data types finished.
    ReadCompleted,
    /// The first read of a connection after it was linked finished.
    ReadCompletedInitial,
}

impl EventType {
    /// Every event type.
    pub const ALL: [Self; 10] = [
        Self::CompanyCreated,
        Self::CompanyDeleted,
        Self::ConnectionCreated,
        Self::ConnectionConnected,
        Self::ConnectionFailed,
        Self::ConnectionDisconnected,
        Self::ConnectionReconnected,
        Self::ConnectionDeleted,
        Self::ReadCompleted,
        Self::ReadCompletedInitial,
    ];

    /// Codat's name (`company.created`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CompanyCreated => "company.created",
            Self::CompanyDeleted => "company.deleted",
            Self::ConnectionCreated => "connection.created",
            Self::ConnectionConnected => "connection.connected",
            Self::ConnectionFailed => "connection.failed",
            Self::ConnectionDisconnected => "connection.disconnected",
            Self::ConnectionReconnected => "connection.reconnected",
            Self::ConnectionDeleted => "connection.deleted",
            Self::ReadCompleted => "read.completed",
            Self::ReadCompletedInitial => "read.completed.initial",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| format!("'{s}' is not a supported event type"))
    }
}

/// One data type's outcome in a `read.completed` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadDataType {
    /// The connection read.
    pub connection_id: ConnectionId,
    /// The data type.
    pub data_type: DataType,
    /// Whether records were created, updated or deleted.
    pub records_modified: bool,
    /// How the pull ended.
    pub status: DatasetStatus,
    /// The pull's error, when it failed.
    pub error: Option<String>,
    /// The pull (dataset) id.
    pub dataset_id: crate::ids::PullOperationId,
}

/// What an event is about; the renderer turns it into Codat's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSubject {
    /// `company.*`: the company.
    Company(Company),
    /// `connection.*`: the company and the connection (after the change).
    Connection {
        /// The connection's company.
        company: Company,
        /// The connection.
        connection: Connection,
    },
    /// `read.completed*`: what was read.
    Read {
        /// The company.
        company: Company,
        /// When the data read was last fetched before this read (Codat's `modifiedFromDate`).
        modified_from: Option<DateTime<Utc>>,
        /// One entry per data type read.
        data_types: Vec<ReadDataType>,
    },
}

impl EventSubject {
    /// The company the event is about.
    pub fn company(&self) -> &Company {
        match self {
            Self::Company(c) | Self::Connection { company: c, .. } | Self::Read { company: c, .. } => c,
        }
    }
}

/// A domain event, before it is rendered into Codat's envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// The event id (the envelope's `id`; deliveries use it as `webhook-id`).
    pub id: Uuid,
    /// Its type.
    pub event_type: EventType,
    /// When it was generated.
    pub generated: DateTime<Utc>,
    /// What it is about.
    pub subject: EventSubject,
}

/// An event in the outbox: the rendered body, sent byte for byte on every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Event id.
    pub id: Uuid,
    /// Its type.
    pub event_type: EventType,
    /// The company it is about.
    pub company_id: CompanyId,
    /// The company's tags when the event was generated (for consumers' `companyTags`).
    pub company_tags: BTreeMap<String, String>,
    /// When it was generated.
    pub generated: DateTime<Utc>,
    /// The JSON envelope `{id, eventType, generatedDate, payload}`.
    pub body: String,
}

impl OutboxEvent {
    /// The Standard Webhooks message id: stable for every attempt and every consumer.
    pub fn message_id(id: Uuid) -> String {
        format!("msg_{}", id.simple())
    }
}

/// Turns a domain event into Codat's JSON envelope (implemented by the HTTP layer, where Codat's
/// shapes live).
pub trait EventRenderer: Send + Sync {
    /// The JSON body: `{"id", "eventType", "generatedDate", "payload"}`.
    fn render(&self, event: &WebhookEvent) -> String;
}

/// A webhook consumer (Codat's `WebhookConsumer`) with its sealed signing secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConsumer {
    /// Id.
    pub id: WebhookConsumerId,
    /// Where events are POSTed (http or https).
    pub url: String,
    /// Receives nothing while `true`.
    pub disabled: bool,
    /// The event types it subscribes to.
    pub event_types: Vec<EventType>,
    /// `key:value` company tags; when any are given, only events about a company with one of
    /// them are delivered.
    pub company_tags: Vec<String>,
    /// The `whsec_…` signing secret, sealed.
    pub secret: SealedSecret,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// Since when its deliveries have been failing (cleared by a success).
    pub failing_since: Option<DateTime<Utc>>,
    /// Why it was disabled, when Tributary disabled it.
    pub disabled_reason: Option<String>,
}

impl WebhookConsumer {
    /// Whether the consumer should receive an event of `event_type` about a company tagged `tags`.
    pub fn accepts(&self, event_type: EventType, tags: &BTreeMap<String, String>) -> bool {
        !self.disabled
            && self.event_types.contains(&event_type)
            && (self.company_tags.is_empty()
                || self.company_tags.iter().any(|t| t.split_once(':').is_some_and(|(k, v)| tags.get(k).is_some_and(|x| x == v))))
    }
}

/// A consumer as a client asks for it (`POST /webhooks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsumer {
    /// Target URL.
    pub url: String,
    /// Created disabled.
    pub disabled: bool,
    /// Event type names.
    pub event_types: Vec<String>,
    /// `key:value` tags.
    pub company_tags: Vec<String>,
}

/// Checks a consumer request: an absolute http(s) URL, known event types (at least one), at most
/// ten `key:value` company tags.
pub fn validate_consumer(req: &NewConsumer) -> Result<(Vec<EventType>, Vec<String>), DomainError> {
    let mut items = Vec::new();
    match url::Url::parse(&req.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()) => {}
        Ok(_) => items.push(ValidationItem { item_id: Some("url".into()), message: format!("'{}' is not an http or https URL", req.url) }),
        Err(e) => items.push(ValidationItem { item_id: Some("url".into()), message: format!("'{}' is not a valid URL: {e}", req.url) }),
    }
    let mut types = Vec::new();
    if req.event_types.is_empty() {
        items.push(ValidationItem { item_id: Some("eventTypes".into()), message: "at least one event type is required".into() });
    }
    for t in &req.event_types {
        match t.parse::<EventType>() {
            Ok(t) if !types.contains(&t) => types.push(t),
            Ok(_) => {}
            Err(e) => items.push(ValidationItem {
                item_id: Some("eventTypes".into()),
                message: format!("{e}; supported: {}", EventType::ALL.map(EventType::as_str).join(", ")),
            }),
        }
    }
    if req.company_tags.len() > MAX_COMPANY_TAGS {
        items.push(ValidationItem {
            item_id: Some("companyTags".into()),
            message: format!("at most {MAX_COMPANY_TAGS} company tags are allowed ({} given)", req.company_tags.len()),
        });
    }
    for t in &req.company_tags {
        if !t.split_once(':').is_some_and(|(k, v)| !k.trim().is_empty() && !v.is_empty()) {
            items.push(ValidationItem { item_id: Some("companyTags".into()), message: format!("'{t}' is not a key:value company tag") });
        }
    }
    if items.is_empty() {
        Ok((types, req.company_tags.clone()))
    } else {
        let message = items.iter().map(|i| i.message.clone()).collect::<Vec<_>>().join("; ");
        Err(DomainError::Validation { message: format!("Invalid webhook consumer: {message}"), items })
    }
}

/// A new `whsec_` signing secret: 32 random bytes, base64.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut bytes);
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// The secret's key bytes: the base64 after `whsec_`.
///
/// # Errors
/// When the secret is not `whsec_` followed by base64.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix("whsec_").ok_or("a webhook secret starts with whsec_")?;
    STANDARD.decode(b64).map_err(|e| format!("the webhook secret is not base64 after whsec_: {e}"))
}

/// The Standard Webhooks signature header value: `v1,` and the base64 HMAC-SHA256 of
/// `{msg_id}.{timestamp}.{body}` keyed with the secret's bytes.
///
/// # Errors
/// When the secret is malformed.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &str) -> Result<String, String> {
    let key = secret_key(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Every attempt of the schedule failed, or the consumer was disabled by this failure.
    Failed,
}

impl DeliveryStatus {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Delivered => "Delivered",
            Self::Failed => "Failed",
        }
    }
}

impl FromStr for DeliveryStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Self::Pending, Self::Delivered, Self::Failed].into_iter().find(|x| x.as_str() == s).ok_or_else(|| format!("delivery status {s}"))
    }
}

/// A delivery leased by a worker: one event to one consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Delivery id.
    pub id: Uuid,
    /// The event.
    pub event_id: Uuid,
    /// The event's type.
    pub event_type: EventType,
    /// The consumer.
    pub consumer_id: WebhookConsumerId,
    /// The consumer's URL.
    pub url: String,
    /// The consumer's sealed secret.
    pub secret: SealedSecret,
    /// The body to send.
    pub body: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// Since when the consumer has been failing.
    pub consumer_failing_since: Option<DateTime<Utc>>,
    /// An operator asked for one more attempt ("deliver again"): a failure ends it, whatever the
    /// schedule says.
    pub final_attempt: bool,
    /// When the delivery was created (ordering within a consumer).
    pub created: DateTime<Utc>,
}

/// One recorded delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The delivery.
    pub delivery_id: Uuid,
    /// The consumer.
    pub consumer_id: WebhookConsumerId,
    /// The event.
    pub event_id: Uuid,
    /// The event's type.
    pub event_type: EventType,
    /// 1 for the first attempt.
    pub number: u32,
    /// When it started.
    pub at: DateTime<Utc>,
    /// The HTTP status, when an answer came.
    pub status_code: Option<u16>,
    /// How long it took, in milliseconds.
    pub latency_ms: u64,
    /// Whether it succeeded (2xx).
    pub ok: bool,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// A delivery as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySummary {
    /// The delivery.
    pub id: Uuid,
    /// Its event.
    pub event_id: Uuid,
    /// The event's type.
    pub event_type: EventType,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// When it was created (the event fanned out).
    pub created: DateTime<Utc>,
    /// When it is due, while pending.
    pub next_attempt: Option<DateTime<Utc>>,
}

/// What to do with a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    /// Delivered; done.
    Delivered,
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// Give up (schedule exhausted, or the consumer is now disabled).
    GiveUp,
}

/// The next step for a delivery after attempt number `made` failed, on `schedule` (delays before
/// each attempt, the first usually zero).
pub fn after_failure(schedule: &[Duration], made: u32, now: DateTime<Utc>) -> AfterAttempt {
    match schedule.get(made as usize) {
        Some(delay) => AfterAttempt::RetryAt(now + chrono::Duration::from_std(*delay).unwrap_or(chrono::Duration::zero())),
        None => AfterAttempt::GiveUp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_reference_vector() {
        // The example from the Standard Webhooks specification.
        let sig = sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, r#"{"test": 2432232314}"#)
            .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn generated_secrets_are_whsec_base64_of_32_bytes_and_differ() {
        let a = generate_secret();
        assert_eq!(secret_key(&a).unwrap().len(), 32);
        assert_ne!(a, generate_secret());
    }

    fn consumer(types: &[EventType], tags: &[&str]) -> WebhookConsumer {
        WebhookConsumer {
            id: WebhookConsumerId::new_random(),
            url: "http://localhost/".into(),
            disabled: false,
            event_types: types.to_vec(),
            company_tags: tags.iter().map(|s| (*s).to_owned()).collect(),
            secret: SealedSecret { key_id: "k".into(), ciphertext: "c".into() },
            created: Utc::now(),
            failing_since: None,
            disabled_reason: None,
        }
    }

    #[test]
    fn consumers_filter_by_event_type_and_any_matching_company_tag() {
        let tags = BTreeMap::from([("region".to_owned(), "us".to_owned())]);
        let c = consumer(&[EventType::CompanyCreated], &[]);
        assert!(c.accepts(EventType::CompanyCreated, &tags));
        assert!(!c.accepts(EventType::CompanyDeleted, &tags));
        let c = consumer(&[EventType::CompanyCreated], &["region:eu", "region:us"]);
        assert!(c.accepts(EventType::CompanyCreated, &tags));
        assert!(!c.accepts(EventType::CompanyCreated, &BTreeMap::new()));
        let c = consumer(&[EventType::CompanyCreated], &["region:eu"]);
        assert!(!c.accepts(EventType::CompanyCreated, &tags));
        let mut c = consumer(&[EventType::CompanyCreated], &[]);
        c.disabled = true;
        assert!(!c.accepts(EventType::CompanyCreated, &tags));
    }

    #[test]
    fn consumer_requests_need_an_http_url_known_types_and_key_value_tags() {
        let ok = NewConsumer {
            url: "https://example.com/hook".into(),
            disabled: false,
            event_types: vec!["company.created".into(), "company.created".into()],
            company_tags: vec!["region:us".into()],
        };
        let (types, _) = validate_consumer(&ok).unwrap();
        assert_eq!(types, vec![EventType::CompanyCreated]);
        for bad in [
            NewConsumer { url: "ftp://example.com/".into(), ..ok.clone() },
            NewConsumer { url: "not a url".into(), ..ok.clone() },
            NewConsumer { event_types: vec![], ..ok.clone() },
            NewConsumer { event_types: vec!["bills.write.successful".into()], ..ok.clone() },
            NewConsumer { company_tags: vec!["region".into()], ..ok.clone() },
            NewConsumer { company_tags: (0..11).map(|i| format!("k:{i}")).collect(), ..ok.clone() },
        ] {
            assert!(matches!(validate_consumer(&bad), Err(DomainError::Validation { .. })), "{bad:?}");
        }
    }

    #[test]
    fn failures_follow_the_schedule_then_give_up() {
        let now = Utc::now();
        assert_eq!(after_failure(&DEFAULT_SCHEDULE, 1, now), AfterAttempt::RetryAt(now + chrono::Duration::seconds(5)));
        assert_eq!(after_failure(&DEFAULT_SCHEDULE, 7, now), AfterAttempt::RetryAt(now + chrono::Duration::hours(10)));
        assert_eq!(after_failure(&DEFAULT_SCHEDULE, 8, now), AfterAttempt::GiveUp);
    }
}
