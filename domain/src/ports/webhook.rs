//! Sending webhook requests to clients' receivers.

use async_trait::async_trait;
use std::time::Duration;

/// One POST to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    /// Target URL.
    pub url: String,
    /// Headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`, `content-type`).
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub body: String,
    /// Give up after this long.
    pub timeout: Duration,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    /// HTTP status, when the receiver answered.
    pub status: Option<u16>,
    /// Time from connect to answer (or failure).
    pub latency: Duration,
    /// Why there was no usable answer (refused target, timeout, connection error, redirect).
    pub error: Option<String>,
}

/// POSTs webhook requests. Implementations follow no redirects and never log the body's secrets.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// Sends one request; failures are reported in the response, never as a panic.
    async fn send(&self, request: WebhookRequest) -> WebhookResponse;
    /// Whether `url` may be registered as a target: `Err` says why not (e.g. it resolves to a
    /// loopback or private address while those are refused). A name that does not resolve yet is
    /// accepted: every delivery checks again. By default every URL may.
    async fn check_target(&self, _url: &str) -> Result<(), String> {
        Ok(())
    }
}
