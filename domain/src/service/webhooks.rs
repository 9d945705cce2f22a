//! Webhooks to clients: managing consumers and reading their events and deliveries (and
//! delivering one again), building the events the other use cases write to the outbox, and the
//! delivery worker (fan out, lease, sign, POST, record, retry, disable).

use super::Platform;
use crate::error::DomainError;
use crate::ids::WebhookConsumerId;
use crate::model::company::Company;
use crate::model::connection::Connection;
use crate::model::webhook::DeliverySummary;
use crate::model::webhook::{
    AfterAttempt, Attempt, DEFAULT_DISABLE_AFTER, DEFAULT_SCHEDULE, DELIVERY_TIMEOUT, Delivery, EventSubject, EventType, MAX_CONSUMERS,
    NewConsumer, OutboxEvent, WebhookConsumer, WebhookEvent, after_failure, generate_secret, sign, validate_consumer,
};
use crate::ports::Redelivery;
use crate::ports::repository::DeliveryCounts;
use crate::ports::webhook::{WebhookRequest, WebhookSender};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

impl Platform {
    /// The outbox rows for one event (none when no renderer is configured: webhooks are off).
    pub(crate) fn outbox(&self, event_type: EventType, subject: EventSubject) -> Vec<OutboxEvent> {
        let Some(renderer) = &self.renderer else { return Vec::new() };
        let company = subject.company();
        let (company_id, company_tags) = (company.id, company.tags.clone());
        let event = WebhookEvent { id: Uuid::new_v4(), event_type, generated: self.clock.now(), subject };
        vec![OutboxEvent { id: event.id, event_type, company_id, company_tags, generated: event.generated, body: renderer.render(&event) }]
    }

    /// The outbox rows for a `connection.*` event (the company is read for the payload).
    pub(crate) async fn connection_event(&self, event_type: EventType, connection: &Connection) -> Result<Vec<OutboxEvent>, DomainError> {
        if self.renderer.is_none() {
            return Ok(Vec::new());
        }
        let Some(company) = self.repos.companies.get(connection.company_id).await? else { return Ok(Vec::new()) };
        Ok(self.outbox(event_type, EventSubject::Connection { company, connection: connection.clone() }))
    }

    /// The outbox rows for a `company.*` event.
    pub(crate) fn company_event(&self, event_type: EventType, company: &Company) -> Vec<OutboxEvent> {
        self.outbox(event_type, EventSubject::Company(company.clone()))
    }
}

/// Webhook use cases: consumers, their signing secrets, events and deliveries.
///
/// Borrowed from the façade: [`Platform::webhooks`].
#[derive(Clone, Copy)]
pub struct Webhooks<'a> {
    pub(super) p: &'a Platform,
}

impl Webhooks<'_> {
    /// Every webhook consumer, oldest first.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_consumers(&self) -> Result<Vec<WebhookConsumer>, DomainError> {
        Ok(self.p.repos.webhooks.list_consumers().await?)
    }

    /// Creates a consumer with a new `whsec_` signing secret, returned in clear this once.
    ///
    /// # Errors
    /// [`DomainError::Validation`] for a bad URL, event type or company tag, or when
    /// [`MAX_CONSUMERS`] already exist.
    pub async fn create_consumer(&self, req: NewConsumer) -> Result<(WebhookConsumer, SecretString), DomainError> {
        let (event_types, company_tags) = validate_consumer(&req)?;
        if let Some(targets) = &self.p.targets
            && let Err(why) = targets.check_target(&req.url).await
        {
            return Err(DomainError::Validation {
                message: format!("The webhook URL cannot be used: {why}."),
                items: vec![crate::error::ValidationItem { item_id: Some("url".into()), message: why }],
            });
        }
        let secret = SecretString::from(generate_secret());
        let sealed = self.p.cipher.seal(&secret).map_err(DomainError::secret)?;
        let consumer = WebhookConsumer {
            id: WebhookConsumerId::new_random(),
            url: req.url,
            disabled: req.disabled,
            event_types,
            company_tags,
            secret: sealed,
            created: self.p.clock.now(),
            failing_since: None,
            disabled_reason: None,
        };
        match self.p.repos.webhooks.insert_consumer_limited(&consumer, MAX_CONSUMERS).await {
            Ok(()) => Ok((consumer, secret)),
            Err(crate::RepositoryError::Conflict(_)) => Err(DomainError::invalid(format!(
                "A client can have at most {MAX_CONSUMERS} webhook consumers; delete one before creating another."
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// One consumer.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] when there is none with that id.
    pub async fn get_consumer(&self, id: WebhookConsumerId) -> Result<WebhookConsumer, DomainError> {
        self.p
            .repos
            .webhooks
            .get_consumer(id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("No webhook consumer was found with ID {id}")))
    }

    /// Deletes a consumer with its pending deliveries and history.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] when there is none with that id.
    pub async fn delete_consumer(&self, id: WebhookConsumerId) -> Result<(), DomainError> {
        if self.p.repos.webhooks.delete_consumer(id).await? {
            Ok(())
        } else {
            Err(DomainError::NotFound(format!("No webhook consumer was found with ID {id}")))
        }
    }

    /// Enables or disables a consumer (re-enabling clears the reason Tributary disabled it for).
    ///
    /// # Errors
    /// [`DomainError::NotFound`] when there is none with that id.
    pub async fn set_consumer_disabled(&self, id: WebhookConsumerId, disabled: bool) -> Result<WebhookConsumer, DomainError> {
        let reason = disabled.then(|| "Disabled by an administrator".to_owned());
        if !self.p.repos.webhooks.set_consumer_disabled(id, disabled, reason).await? {
            return Err(DomainError::NotFound(format!("No webhook consumer was found with ID {id}")));
        }
        self.get_consumer(id).await
    }

    /// A consumer's signing secret, in clear.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown consumer; [`DomainError::Secret`] when the master
    /// key cannot open it.
    pub async fn consumer_secret(&self, id: WebhookConsumerId) -> Result<SecretString, DomainError> {
        let c = self.get_consumer(id).await?;
        self.p.cipher.open(&c.secret).map_err(DomainError::secret)
    }

    /// A consumer's latest delivery attempts (newest first) and its delivery counts.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown consumer.
    pub async fn attempts(&self, id: WebhookConsumerId, limit: u32) -> Result<(Vec<Attempt>, DeliveryCounts), DomainError> {
        self.get_consumer(id).await?;
        Ok((self.p.repos.webhooks.list_attempts(id, limit).await?, self.p.repos.webhooks.delivery_counts(id).await?))
    }

    /// The most recent webhook events (the outbox), newest first.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn recent_events(&self, limit: u32) -> Result<Vec<OutboxEvent>, DomainError> {
        Ok(self.p.repos.webhooks.recent_events(limit).await?)
    }

    /// A consumer's most recent deliveries, newest first.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown consumer.
    pub async fn deliveries(&self, id: WebhookConsumerId, limit: u32) -> Result<Vec<DeliverySummary>, DomainError> {
        self.get_consumer(id).await?;
        Ok(self.p.repos.webhooks.list_deliveries(id, limit).await?)
    }

    /// Delivers a finished delivery (delivered or failed) once more, as soon as a worker is free:
    /// one attempt, whose failure ends it `Failed` again.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown consumer or delivery; [`DomainError::InvalidState`]
    /// when the delivery is still pending or the consumer is disabled.
    pub async fn redeliver(&self, id: WebhookConsumerId, delivery: Uuid) -> Result<(), DomainError> {
        if self.get_consumer(id).await?.disabled {
            return Err(DomainError::InvalidState("This consumer is disabled: enable it before delivering again.".into()));
        }
        match self.p.repos.webhooks.redeliver(id, delivery, self.p.clock.now()).await? {
            Redelivery::Queued => Ok(()),
            Redelivery::StillPending => {
                Err(DomainError::InvalidState("This delivery is still pending: it will be attempted again on its own.".into()))
            }
            Redelivery::NotFound => Err(DomainError::NotFound(format!("No delivery was found with ID {delivery}"))),
        }
    }
}

/// How deliveries are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// Delay before each attempt (the first usually zero); its length is the number of attempts.
    pub schedule: Vec<Duration>,
    /// A consumer failing for this long is disabled.
    pub disable_after: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// How long a worker holds a leased delivery (longer than `timeout`).
    pub lease_for: Duration,
    /// Deliveries leased per round.
    pub batch: u32,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            schedule: DEFAULT_SCHEDULE.to_vec(),
            disable_after: DEFAULT_DISABLE_AFTER,
            timeout: DELIVERY_TIMEOUT,
            lease_for: DELIVERY_TIMEOUT * 2 + Duration::from_secs(5),
            batch: 50,
        }
    }
}

/// How one send went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// A 2xx answer.
    Delivered,
    /// Failed quickly (refused, an error status).
    Failed,
    /// Failed after waiting half the timeout or more.
    Hung,
}

/// A delivery worker: fans new events out, leases due deliveries and sends them.
#[derive(Clone)]
pub struct WebhookDelivery {
    platform: Platform,
    sender: Arc<dyn WebhookSender>,
    worker: String,
    opts: DeliveryOptions,
}

impl WebhookDelivery {
    /// A worker named `worker` (unique per process).
    pub fn new(platform: Platform, sender: Arc<dyn WebhookSender>, worker: String, opts: DeliveryOptions) -> Self {
        Self { platform, sender, worker, opts }
    }

    /// One round: fan out new events, then send every due delivery leased (consumers in
    /// parallel, each consumer's deliveries in event order). Returns how many were attempted.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn run_once(&self) -> Result<usize, DomainError> {
        let now = self.platform.clock.now();
        // The first attempt waits the schedule's first delay (usually none).
        let first_due = now + chrono::Duration::from_std(self.opts.schedule.first().copied().unwrap_or_default()).unwrap_or_default();
        while self.platform.repos.webhooks.fan_out(first_due, 100).await? == 100 {}
        let leased = self.platform.repos.webhooks.lease_deliveries(&self.worker, now, self.opts.lease_for, self.opts.batch).await?;
        let n = leased.len();
        let mut by_consumer: BTreeMap<WebhookConsumerId, Vec<Delivery>> = BTreeMap::new();
        for d in leased {
            by_consumer.entry(d.consumer_id).or_default().push(d);
        }
        // No send may outlive the lease (another process would then send the same delivery):
        // a send starts only while a whole timeout, plus time to resolve the target, still fits.
        let budget = self.opts.lease_for.saturating_sub(self.opts.timeout + Duration::from_secs(5));
        let started = std::time::Instant::now();
        let runs = by_consumer.into_values().map(|ds| async move {
            for d in ds {
                if started.elapsed() > budget {
                    // Left leased; taken up again once the lease expires.
                    break;
                }
                if self.deliver(d).await? == Sent::Hung {
                    // A receiver that does not answer: its later deliveries stay leased until the
                    // lease expires instead of each waiting out a timeout now, which would hold
                    // up the round for every other consumer.
                    break;
                }
            }
            Ok::<(), DomainError>(())
        });
        for r in futures_util::future::join_all(runs).await {
            r?;
        }
        Ok(n)
    }

    /// Sends one delivery and records the attempt.
    async fn deliver(&self, d: Delivery) -> Result<Sent, DomainError> {
        let started = self.platform.clock.now();
        let msg_id = OutboxEvent::message_id(d.event_id);
        let signed = self
            .platform
            .cipher
            .open(&d.secret)
            .map_err(|e| e.to_string())
            .and_then(|s| sign(s.expose_secret(), &msg_id, started.timestamp(), &d.body));
        let (status_code, latency, error) = match signed {
            Ok(signature) => {
                let request = WebhookRequest {
                    url: d.url.clone(),
                    headers: vec![
                        ("content-type".into(), "application/json".into()),
                        ("webhook-id".into(), msg_id.clone()),
                        ("webhook-timestamp".into(), started.timestamp().to_string()),
                        ("webhook-signature".into(), signature),
                    ],
                    body: d.body.clone(),
                    timeout: self.opts.timeout,
                };
                let r = self.sender.send(request).await;
                let error = match (r.status, r.error) {
                    (_, Some(e)) => Some(e),
                    (Some(s), None) if !(200..300).contains(&s) => Some(format!("the receiver answered HTTP {s}")),
                    (None, None) => Some("no answer".into()),
                    _ => None,
                };
                (r.status, r.latency, error)
            }
            Err(e) => (None, Duration::ZERO, Some(format!("the signing secret could not be used: {e}"))),
        };
        let ok = error.is_none();
        let now = self.platform.clock.now();
        let number = d.attempts + 1;
        let attempt = Attempt {
            delivery_id: d.id,
            consumer_id: d.consumer_id,
            event_id: d.event_id,
            event_type: d.event_type,
            number,
            at: started,
            status_code,
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            ok,
            error: error.clone(),
        };
        let failing_too_long =
            d.consumer_failing_since.is_some_and(|since| (now - since).to_std().unwrap_or(Duration::ZERO) >= self.opts.disable_after);
        let after = if ok {
            AfterAttempt::Delivered
        } else if failing_too_long || d.final_attempt {
            AfterAttempt::GiveUp
        } else {
            after_failure(&self.opts.schedule, number, now)
        };
        tracing::info!(webhook.id = %d.consumer_id, event.id = %d.event_id, event.type = %d.event_type, attempt = number,
            status = ?status_code, ok, error = error.as_deref().unwrap_or(""), "webhook delivery attempted");
        let held = self.platform.repos.webhooks.record_attempt(&self.worker, &attempt, after).await?;
        // Counted when it decided the delivery's fate: a worker that lost the lease leaves that
        // (and the count) to the one that took over.
        if held {
            crate::metrics::webhook_attempt(match after {
                AfterAttempt::Delivered => crate::metrics::DeliveryOutcome::Delivered,
                AfterAttempt::RetryAt(_) => crate::metrics::DeliveryOutcome::Failed,
                AfterAttempt::GiveUp => crate::metrics::DeliveryOutcome::GaveUp,
            });
        }
        // A worker whose lease expired meanwhile leaves the decision to the one that took over.
        if failing_too_long && held {
            let days = self.opts.disable_after.as_secs_f64() / 86_400.0;
            let reason = format!("Disabled after failing for {days:.1} days (last error: {})", error.unwrap_or_default());
            tracing::warn!(webhook.id = %d.consumer_id, %reason, "webhook consumer disabled");
            self.platform.repos.webhooks.set_consumer_disabled(d.consumer_id, true, Some(reason)).await?;
        }
        Ok(if ok {
            Sent::Delivered
        } else if latency >= self.opts.timeout / 2 {
            Sent::Hung
        } else {
            Sent::Failed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::company::CompanyFields;
    use crate::model::webhook::{DeliveryStatus, EventRenderer};
    use crate::ports::webhook::{MockWebhookSender, WebhookResponse};
    use crate::service::test_support::{Fixed, Mem, platform_with};
    use chrono::{DateTime, Utc};
    use std::sync::Mutex;

    /// Renders just the envelope's type and id, enough to check what was written.
    struct Plain;
    impl EventRenderer for Plain {
        fn render(&self, e: &WebhookEvent) -> String {
            serde_json::json!({"id": e.id, "eventType": e.event_type.as_str(), "company": e.subject.company().id}).to_string()
        }
    }

    fn setup() -> (Platform, Arc<Mem>, Arc<Fixed>) {
        let mem = Arc::new(Mem::default());
        let clock = Arc::new(Fixed(Mutex::new("2026-01-01T00:00:00Z".parse().unwrap())));
        let p = platform_with(mem.clone(), clock.clone()).with_event_renderer(Arc::new(Plain));
        (p, mem, clock)
    }

    fn consumer_req(types: &[&str]) -> NewConsumer {
        NewConsumer {
            url: "http://127.0.0.1:1/hook".into(),
            disabled: false,
            event_types: types.iter().map(|t| (*t).to_owned()).collect(),
            company_tags: vec![],
        }
    }

    fn answering(status: Option<u16>, seen: Arc<Mutex<Vec<WebhookRequest>>>) -> MockWebhookSender {
        let mut m = MockWebhookSender::new();
        m.expect_send().returning(move |r| {
            seen.lock().unwrap().push(r);
            WebhookResponse { status, latency: Duration::from_millis(3), error: None }
        });
        m
    }

    #[tokio::test]
    async fn company_changes_write_events_and_without_a_renderer_nothing_is_written() {
        let (p, mem, _) = setup();
        let c = p.companies().create(CompanyFields::new("Shop", None, Default::default()).unwrap()).await.unwrap().company;
        p.companies().delete(c.id).await.unwrap();
        let types: Vec<_> = mem.events.lock().unwrap().iter().map(|e| e.event_type).collect();
        assert_eq!(types, vec![EventType::CompanyCreated, EventType::CompanyDeleted]);

        let mem = Arc::new(Mem::default());
        let plain = platform_with(mem.clone(), Arc::new(Fixed(Mutex::new(Utc::now()))));
        plain.companies().create(CompanyFields::new("Shop", None, Default::default()).unwrap()).await.unwrap();
        assert!(mem.events.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn deliveries_are_signed_with_the_consumers_secret_and_a_stable_message_id() {
        let (p, mem, _) = setup();
        let (consumer, secret) = p.webhooks().create_consumer(consumer_req(&["company.created"])).await.unwrap();
        p.companies().create(CompanyFields::new("Shop", None, Default::default()).unwrap()).await.unwrap();
        let event = mem.events.lock().unwrap()[0].clone();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let d = WebhookDelivery::new(p.clone(), Arc::new(answering(Some(204), seen.clone())), "w".into(), DeliveryOptions::default());
        assert_eq!(d.run_once().await.unwrap(), 1);
        let req = seen.lock().unwrap()[0].clone();
        let header = |k: &str| req.headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(header("webhook-id"), OutboxEvent::message_id(event.id));
        assert_eq!(req.body, event.body);
        let ts: i64 = header("webhook-timestamp").parse().unwrap();
        assert_eq!(header("webhook-signature"), sign(secret.expose_secret(), &header("webhook-id"), ts, &req.body).unwrap());
        assert_eq!(req.timeout, DELIVERY_TIMEOUT);
        let (attempts, counts) = p.webhooks().attempts(consumer.id, 10).await.unwrap();
        assert_eq!((counts.delivered, attempts.len(), attempts[0].status_code), (1, 1, Some(204)));
        assert_eq!(d.run_once().await.unwrap(), 0, "a delivered event is not sent again");
    }

    #[tokio::test]
    async fn failures_retry_on_the_schedule_then_fail_and_other_event_types_are_not_sent() {
        let (p, mem, clock) = setup();
        let (consumer, _) = p.webhooks().create_consumer(consumer_req(&["company.created"])).await.unwrap();
        let c = p.companies().create(CompanyFields::new("Shop", None, Default::default()).unwrap()).await.unwrap().company;
        p.companies().delete(c.id).await.unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let opts =
            DeliveryOptions { schedule: vec![Duration::ZERO, Duration::from_secs(5), Duration::from_secs(60)], ..Default::default() };
        let d = WebhookDelivery::new(p.clone(), Arc::new(answering(Some(500), seen.clone())), "w".into(), opts);
        let advance = |secs: i64| {
            let mut t = clock.0.lock().unwrap();
            *t += chrono::Duration::seconds(secs);
        };
        assert_eq!(d.run_once().await.unwrap(), 1, "company.deleted is not subscribed");
        assert_eq!(d.run_once().await.unwrap(), 0, "the retry waits 5 s");
        advance(5);
        assert_eq!(d.run_once().await.unwrap(), 1);
        advance(59);
        assert_eq!(d.run_once().await.unwrap(), 0);
        advance(1);
        assert_eq!(d.run_once().await.unwrap(), 1);
        advance(3600);
        assert_eq!(d.run_once().await.unwrap(), 0, "three attempts, then it gives up");
        let ids: Vec<String> =
            seen.lock().unwrap().iter().map(|r| r.headers.iter().find(|(k, _)| k == "webhook-id").unwrap().1.clone()).collect();
        assert_eq!(ids.len(), 3);
        assert!(ids.iter().all(|i| *i == ids[0]), "every attempt carries the same webhook-id");
        let (attempts, counts) = p.webhooks().attempts(consumer.id, 10).await.unwrap();
        assert_eq!((counts.failed, counts.pending), (1, 0));
        assert_eq!(attempts.iter().map(|a| a.number).collect::<Vec<_>>(), vec![3, 2, 1]);
        assert!(attempts.iter().all(|a| !a.ok && a.error.as_deref() == Some("the receiver answered HTTP 500")));
        assert_eq!(mem.deliveries.lock().unwrap()[0].1, DeliveryStatus::Failed);
    }

    #[tokio::test]
    async fn a_consumer_failing_for_longer_than_disable_after_is_disabled_and_gets_nothing_more() {
        let (p, _mem, clock) = setup();
        let (consumer, _) = p.webhooks().create_consumer(consumer_req(&["company.created"])).await.unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let opts = DeliveryOptions { disable_after: Duration::from_secs(86_400), ..Default::default() };
        let d = WebhookDelivery::new(p.clone(), Arc::new(answering(None, seen.clone())), "w".into(), opts);
        let set = |t: &str| *clock.0.lock().unwrap() = t.parse::<DateTime<Utc>>().unwrap();
        p.companies().create(CompanyFields::new("A", None, Default::default()).unwrap()).await.unwrap();
        d.run_once().await.unwrap();
        assert!(!p.webhooks().get_consumer(consumer.id).await.unwrap().disabled, "one failure does not disable");
        set("2026-01-02T00:00:01Z");
        p.companies().create(CompanyFields::new("B", None, Default::default()).unwrap()).await.unwrap();
        d.run_once().await.unwrap();
        let c = p.webhooks().get_consumer(consumer.id).await.unwrap();
        assert!(c.disabled, "failing for more than a day disables it");
        assert!(c.disabled_reason.unwrap().contains("Disabled after failing"));
        let sent = seen.lock().unwrap().len();
        set("2026-01-03T00:00:00Z");
        p.companies().create(CompanyFields::new("C", None, Default::default()).unwrap()).await.unwrap();
        d.run_once().await.unwrap();
        assert_eq!(seen.lock().unwrap().len(), sent, "a disabled consumer receives nothing");
        let c = p.webhooks().set_consumer_disabled(consumer.id, false).await.unwrap();
        assert!(!c.disabled && c.disabled_reason.is_none());
    }

    #[tokio::test]
    async fn at_most_fifty_consumers() {
        let (p, _, _) = setup();
        for _ in 0..MAX_CONSUMERS {
            p.webhooks().create_consumer(consumer_req(&["company.created"])).await.unwrap();
        }
        assert!(matches!(p.webhooks().create_consumer(consumer_req(&["company.created"])).await, Err(DomainError::Validation { .. })));
    }
}
