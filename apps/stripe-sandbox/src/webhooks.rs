//! Events and Connect webhooks: every change made through the control API or OAuth becomes an
//! event on the account and a signed POST (`Stripe-Signature: t=…,v1=…`) to every endpoint.

use crate::api::render_event;
use crate::state::Sandbox;
use crate::store::{Account, EventData, EventRec};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

/// `hex(HMAC-SHA256(secret, "{t}.{body}"))`, Stripe's `v1` scheme.
pub fn sign(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{t}.{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| i64::try_from(d.as_secs()).unwrap_or(0)).unwrap_or(0)
}

/// Records an event on the account and delivers it to every endpoint in the background.
pub fn emit(s: &Arc<Sandbox>, account: &mut Account, event_type: &str, data: EventData, previous: Option<String>) -> String {
    let id = format!("evt_{}", s.token(24));
    let e =
        EventRec { id: id.clone().into(), created: now(), seq: 0, event_type: event_type.into(), data, previous: previous.map(Into::into) };
    let body = render_event(account, &e);
    account.push_event(e);
    let endpoints = s.endpoints.read().map(|e| e.clone()).unwrap_or_default();
    for ep in endpoints {
        let s = s.clone();
        let body = body.clone();
        tokio::spawn(async move { deliver(&s, &ep.url, &body).await });
    }
    id
}

async fn deliver(s: &Sandbox, url: &str, body: &str) {
    for attempt in 0..4u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(250 * 2u64.pow(attempt))).await;
        }
        let t = now();
        let header = format!("t={t},v1={}", sign(&s.config.webhook_secret, t, body));
        let res = s
            .http
            .post(url)
            .header("content-type", "application/json; charset=utf-8")
            .header("stripe-signature", header)
            .header("user-agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
            .body(body.to_owned())
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::warn!(url, status = r.status().as_u16(), attempt, "webhook delivery refused"),
            Err(e) => tracing::warn!(url, error = %e, attempt, "webhook delivery failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_dot_body() {
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(sign("whsec_test", 1_700_000_000, "{}"), "35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91");
    }
}
