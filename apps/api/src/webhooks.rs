//! Webhook delivery in the server: the HTTP sender (no redirects, optional refusal of private and
//! loopback targets) and the worker loop around the domain's [`WebhookDelivery`].

use async_trait::async_trait;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tributary_domain::ports::{WebhookRequest, WebhookResponse, WebhookSender};
use tributary_domain::service::WebhookDelivery;

/// How often an idle delivery worker looks for due deliveries.
pub const POLL_EVERY: Duration = Duration::from_millis(250);

/// POSTs webhooks with reqwest. Redirects are never followed (a 3xx is a failed attempt).
#[derive(Debug, Clone)]
pub struct HttpWebhookSender {
    client: reqwest::Client,
    allow_private: bool,
}

impl HttpWebhookSender {
    /// A sender; with `allow_private` false, targets that resolve to loopback, private,
    /// link-local or other non-public addresses are refused (SSRF protection), and the connection
    /// goes to the address that was checked.
    ///
    /// # Errors
    /// When the TLS backend cannot be initialised.
    pub fn new(allow_private: bool) -> anyhow::Result<Self> {
        Ok(Self { client: Self::builder().build()?, allow_private })
    }

    fn builder() -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect to the name, not to the address that was checked.
            .no_proxy()
            .user_agent(concat!("Tributary-Webhooks/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
    }

    /// The client to use for `url`: the shared one, or (when private targets are refused) one
    /// pinned to the checked public addresses.
    async fn client_for(&self, url: &str) -> Result<reqwest::Client, String> {
        if self.allow_private {
            return Ok(self.client.clone());
        }
        let u = url::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
        let host = u.host_str().ok_or("the URL has no host")?.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = u.port_or_known_default().ok_or("the URL has no port")?;
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host.as_str(), port)))
                .await
                .map_err(|_| format!("cannot resolve {host}: no answer within 5 s"))?
                .map_err(|e| format!("cannot resolve {host}: {e}"))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(format!("{host} resolves to no address"));
        }
        if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
            return Err(format!(
                "refused: {host} resolves to the non-public address {} (webhooks.allow_private_targets is false)",
                bad.ip()
            ));
        }
        Self::builder().resolve_to_addrs(&host, &addrs).build().map_err(|e| e.to_string())
    }
}

/// Whether an address is publicly routable (not loopback, private, link-local, shared, unique
/// local, documentation, multicast or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            // IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96) addresses embed an IPv4 one.
            if s[..6] == [0; 6] || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4]) {
                let o = v6.octets();
                return is_public(IpAddr::V4(std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15])));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || s[0] == 0x2002
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn check_target(&self, url: &str) -> Result<(), String> {
        match self.client_for(url).await {
            Ok(_) => Ok(()),
            // Not resolvable yet: each delivery checks again.
            Err(e) if e.starts_with("cannot resolve") || e.ends_with("resolves to no address") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn send(&self, request: WebhookRequest) -> WebhookResponse {
        let started = Instant::now();
        let client = match self.client_for(&request.url).await {
            Ok(c) => c,
            Err(e) => return WebhookResponse { status: None, latency: started.elapsed(), error: Some(e) },
        };
        let mut builder = client.post(&request.url).timeout(request.timeout).body(request.body);
        for (k, v) in &request.headers {
            builder = builder.header(k, v);
        }
        match builder.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                // Read (a little of) the answer so the connection can be reused; it is not kept.
                let _ = tokio::time::timeout(Duration::from_secs(2), r.bytes()).await;
                let error = r_error(status);
                WebhookResponse { status: Some(status), latency: started.elapsed(), error }
            }
            Err(e) => {
                let why = if e.is_timeout() {
                    format!("no answer within {} s", request.timeout.as_secs_f32())
                } else if e.is_connect() {
                    "the receiver could not be reached (connection failed)".to_owned()
                } else {
                    "the request failed before an answer came".to_owned()
                };
                WebhookResponse { status: None, latency: started.elapsed(), error: Some(why) }
            }
        }
    }
}

fn r_error(status: u16) -> Option<String> {
    match status {
        200..=299 => None,
        300..=399 => Some(format!("the receiver answered HTTP {status} (redirects are not followed)")),
        _ => Some(format!("the receiver answered HTTP {status}")),
    }
}

/// Runs a delivery worker until `stop`: fans new events out and delivers due deliveries, then
/// waits for `wake` or [`POLL_EVERY`].
pub async fn run_delivery_worker(delivery: WebhookDelivery, wake: Arc<tokio::sync::Notify>, stop: tokio::sync::watch::Receiver<bool>) {
    let mut stop = stop;
    loop {
        if *stop.borrow() {
            return;
        }
        match delivery.run_once().await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "webhook delivery failed; retrying"),
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL_EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_private_and_link_local_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn refusing_private_targets_refuses_loopback_before_connecting() {
        let sender = HttpWebhookSender::new(false).unwrap();
        let r = sender
            .send(WebhookRequest {
                url: "http://127.0.0.1:9/hook".into(),
                headers: vec![],
                body: "{}".into(),
                timeout: Duration::from_secs(1),
            })
            .await;
        assert_eq!(r.status, None);
        assert!(r.error.unwrap().contains("refused"));
        let r = sender
            .send(WebhookRequest {
                url: "http://localhost:9/hook".into(),
                headers: vec![],
                body: "{}".into(),
                timeout: Duration::from_secs(1),
            })
            .await;
        assert!(r.error.unwrap().contains("refused"));
    }
}
