//! What the HTML pages share (the operator console and the merchant-facing Link pages): the
//! stylesheet and script, served as files so that the Content-Security-Policy allows no inline
//! script or style, and the security headers every page carries.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;

/// The stylesheet of every page.
pub const CSS_PATH: &str = "/assets/tributary.css";
/// The console's small script (copy buttons); nothing needs it to work.
pub const JS_PATH: &str = "/assets/console.js";

const CSS: &str = include_str!("../../assets/tributary.css");
const JS: &str = include_str!("../../assets/console.js");

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(CSS_PATH, get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route(JS_PATH, get(|| async { asset("text/javascript; charset=utf-8", JS) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=300")], body).into_response()
}

/// The `<head>` every page shares: encoding, viewport, title and the stylesheet; `extra` goes
/// before the stylesheet (an icon, the console's script).
pub(crate) fn head(title: &str, extra: maud::Markup) -> maud::Markup {
    maud::html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) }
            (extra)
            link rel="stylesheet" href=(CSS_PATH);
        }
    }
}

/// The console's options: how long a session lasts without use, whether its cookie is `Secure`,
/// and the Content-Security-Policy of the HTML pages.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// Idle expiry.
    pub idle: std::time::Duration,
    /// `Secure` cookies (the public URL is https).
    pub secure: bool,
    /// The pages' `Content-Security-Policy`.
    pub csp: HeaderValue,
}

impl ConsoleOptions {
    /// For a server at `public_url` whose Link pages send merchants on to `connect_base` (the
    /// form that starts linking is answered with a redirect there, and `form-action` covers
    /// redirects).
    pub fn new(public_url: &str, connect_base: &str, idle: std::time::Duration) -> Self {
        let connect = url::Url::parse(connect_base).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; connect-src 'self'; \
             form-action 'self' {connect}; frame-ancestors 'none'; base-uri 'none'"
        );
        Self {
            idle,
            secure: public_url.starts_with("https://"),
            csp: HeaderValue::from_str(csp.trim()).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
        }
    }
}

/// Security headers on every HTML page and asset: a CSP without inline script, no framing, no
/// referrer beyond the origin, no MIME sniffing; console pages are not cached.
pub(super) async fn security_headers(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let console = req.uri().path().starts_with("/console");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, s.console.csp.clone());
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if console {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::ConsoleOptions;
    use std::time::Duration;

    #[test]
    fn cookies_are_secure_behind_https_and_forms_may_go_to_stripe_connect_only() {
        let https = ConsoleOptions::new("https://data.example.com", "https://connect.stripe.com", Duration::from_secs(60));
        assert!(https.secure);
        let csp = https.csp.to_str().unwrap();
        assert!(csp.contains("form-action 'self' https://connect.stripe.com;"), "{csp}");
        assert!(csp.contains("script-src 'self';") && csp.contains("style-src 'self';") && !csp.contains("unsafe"), "{csp}");
        assert!(!ConsoleOptions::new("http://127.0.0.1:8080", "http://127.0.0.1:9", Duration::from_secs(60)).secure);
    }
}
