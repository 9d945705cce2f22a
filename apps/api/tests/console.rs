//! The operator console over HTTP, as a browser would use it (cookies and forms, no script):
//! sign-in, sessions, CSRF, security headers and escaping. The browser itself drives it in
//! `console_browser.rs`.

mod common;

use common::TestServer;
use reqwest::header;
use serde_json::json;

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Signs in with `key` and returns the session cookie (`name=value`).
async fn sign_in(api: &TestServer, key: &str) -> String {
    let res = client().post(format!("{}/console/sign-in", api.base)).form(&[("apiKey", key), ("next", "/console")]).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 303, "{}", res.text().await.unwrap());
    assert_eq!(res.headers()[header::LOCATION], "/console");
    let set = res.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/console"), "{set}");
    assert!(!set.contains("Secure"), "the server is on http, so the cookie cannot be Secure: {set}");
    set.split(';').next().unwrap().to_owned()
}

async fn get(api: &TestServer, cookie: &str, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let res = client().get(format!("{}{path}", api.base)).header(header::COOKIE, cookie).send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, res.text().await.unwrap(), headers)
}

fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page[at..at + 64].to_owned()
}

#[tokio::test]
async fn every_console_page_without_a_session_redirects_to_sign_in() {
    let api = TestServer::start().await;
    for path in [
        "/console",
        "/console/companies",
        "/console/webhooks",
        "/console/settings",
        "/console/companies/0b4ca2f6-2b8f-4d5e-9c0c-3e0d1f1d2a10",
    ] {
        let (status, _, headers) = get(&api, "tributary_console=forged", path).await;
        assert_eq!(status, 303, "{path}");
        let to = headers[header::LOCATION].to_str().unwrap();
        assert!(to.starts_with("/console/sign-in?next=%2Fconsole"), "{path} → {to}");
    }
    // A POST without a session changes nothing either.
    let res = client().post(format!("{}/console/companies", api.base)).form(&[("name", "Nope")]).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let (_, list) = api.get("/companies").await;
    assert_eq!(list["totalResults"], 0);
}

#[tokio::test]
async fn a_wrong_key_is_refused_and_next_never_leaves_the_console() {
    let api = TestServer::start().await;
    let res = client().post(format!("{}/console/sign-in", api.base)).form(&[("apiKey", "not-a-key")]).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    assert!(res.text().await.unwrap().contains("That API key is not valid."));
    for evil in ["https://evil.example/", "//evil.example/console", "/console\\..\\x"] {
        let res = client()
            .post(format!("{}/console/sign-in", api.base))
            .form(&[("apiKey", api.key.as_str()), ("next", evil)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()[header::LOCATION], "/console", "{evil}");
    }
    // A sign-in form on another site is refused.
    let res = client()
        .post(format!("{}/console/sign-in", api.base))
        .header(header::ORIGIN, "https://evil.example")
        .form(&[("apiKey", api.key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
}

#[tokio::test]
async fn a_form_without_the_csrf_token_is_refused_with_403_and_changes_nothing() {
    let api = TestServer::start().await;
    let cookie = sign_in(&api, &api.key).await;
    let (_, page, _) = get(&api, &cookie, "/console/companies").await;
    let token = csrf(&page);
    for form in [vec![("name", "Forged")], vec![("name", "Forged"), ("csrf", "0".repeat(64).leak() as &str)]] {
        let res =
            client().post(format!("{}/console/companies", api.base)).header(header::COOKIE, &cookie).form(&form).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 403);
    }
    let (_, list) = api.get("/companies").await;
    assert_eq!(list["totalResults"], 0, "nothing was created");
    // With the token, the same form works.
    let res = client()
        .post(format!("{}/console/companies", api.base))
        .header(header::COOKIE, &cookie)
        .form(&[("name", "Real"), ("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let (_, list) = api.get("/companies").await;
    assert_eq!(list["results"][0]["name"], "Real");
}

#[tokio::test]
async fn deleting_the_api_key_ends_its_sessions_and_signing_out_ends_one() {
    let api = TestServer::start().await;
    let (_, second) = api.post("/apiKeys", json!({"name": "ops"})).await;
    let second_key = second["apiKey"].as_str().unwrap().to_owned();
    let mine = sign_in(&api, &api.key).await;
    let theirs = sign_in(&api, &second_key).await;
    assert_eq!(get(&api, &theirs, "/console").await.0, 200);
    let (status, _) = api.call(reqwest::Method::DELETE, &format!("/apiKeys/{}", second["id"].as_str().unwrap()), None).await;
    assert_eq!(status, 204);
    assert_eq!(get(&api, &theirs, "/console").await.0, 303, "the deleted key's session no longer works");
    let (status, page, _) = get(&api, &mine, "/console").await;
    assert_eq!(status, 200, "other keys' sessions go on");
    let res = client()
        .post(format!("{}/console/sign-out", api.base))
        .header(header::COOKIE, &mine)
        .form(&[("csrf", csrf(&page).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert!(res.headers()[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(get(&api, &mine, "/console").await.0, 303, "signed out");
}

#[tokio::test]
async fn console_and_link_pages_carry_security_headers_and_no_inline_script() {
    let api = TestServer::start().await;
    let cookie = sign_in(&api, &api.key).await;
    let company = api.company("Headers Shop").await;
    for (path, session, want) in [
        ("/console", true, 200),
        ("/console/sign-in", false, 200),
        ("/console/no-such-page", true, 404),
        (&*format!("/console/companies/{company}/connections/x/data/commerce-customers"), true, 404),
        (&*format!("/link/{company}"), false, 200),
        ("/link/not-a-company", false, 404),
    ] {
        let (status, body, h) = get(&api, if session { &cookie } else { "" }, path).await;
        assert_eq!(status, want, "{path}");
        assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"), "{path}: an HTML page");
        if path.starts_with("/console") {
            assert_eq!(h[header::CACHE_CONTROL], "no-store", "{path}");
        }
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert!(h.contains_key(header::REFERRER_POLICY));
        assert!(!body.contains("<script>") && !body.contains("<style>") && !body.contains("style=\""), "{path}: no inline script or style");
    }
}

#[tokio::test]
async fn client_supplied_values_render_as_text_on_every_page() {
    let api = TestServer::start().await;
    let attack = "\"'><script>alert(1)</script>";
    let (_, c) = api.post("/companies", json!({"name": "Escape Shop", "description": attack, "tags": {"k": attack}})).await;
    let company = c["id"].as_str().unwrap().to_owned();
    let (status, hook) =
        api.post("/webhooks", json!({"url": format!("https://example.com/?q={attack}"), "eventTypes": ["company.created"]})).await;
    assert_eq!(status, 201, "{hook}");
    let hook = hook["id"].as_str().unwrap().to_owned();
    let (_, key) = api.post("/apiKeys", json!({"name": attack})).await;
    assert!(key["id"].is_string());
    let (status, _) = api.call(reqwest::Method::PUT, "/profile", Some(json!({"name": attack, "redirectUrl": ""}))).await;
    assert_eq!(status, 200);
    let cookie = sign_in(&api, &api.key).await;
    for path in [
        "/console".to_owned(),
        "/console/companies".to_owned(),
        "/console/companies?query=description~script".to_owned(),
        format!("/console/companies/{company}"),
        "/console/webhooks".to_owned(),
        "/console/settings".to_owned(),
        format!("/console/companies/{company}/delete"),
        format!("/console/webhooks/{hook}"),
        format!("/console/webhooks/{hook}/delete"),
        format!("/console/settings/api-keys/{}/delete", key["id"].as_str().unwrap()),
        format!("/link/{company}"),
        format!("/link/{company}/done?statusCode=200"),
    ] {
        let (status, body, _) = get(&api, &cookie, &path).await;
        assert_eq!(status, 200, "{path}");
        assert!(!body.contains(attack) && !body.contains("<script>") && !body.contains("'><"), "{path} renders client input as markup");
    }
    let (_, body, _) = get(&api, &cookie, &format!("/console/companies/{company}")).await;
    assert!(body.contains("&quot;'&gt;&lt;script&gt;alert(1)&lt;/script&gt;"), "the description is shown, as text");
}

#[tokio::test]
async fn settings_never_show_a_secret_and_a_new_api_key_is_shown_once() {
    let api = TestServer::start().await;
    common::use_sandbox_keys(&api.platform).await;
    let cookie = sign_in(&api, &api.key).await;
    let (_, page, _) = get(&api, &cookie, "/console/settings").await;
    let secret = stripe_sandbox::Config::default().test_secret_key;
    assert!(!page.contains(&secret), "the secret key never reaches a page");
    assert!(page.contains("(set)"));
    let res = client()
        .post(format!("{}/console/settings/api-keys", api.base))
        .header(header::COOKIE, &cookie)
        .form(&[("name", "from-console"), ("csrf", csrf(&page).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let created = res.text().await.unwrap();
    let at = created.find("id=\"once\" readonly value=\"").unwrap() + 26;
    let new_key = &created[at..at + 40];
    assert!(api.platform.api_keys().authenticate(new_key).await.unwrap().is_some(), "the key shown works");
    let (_, again, _) = get(&api, &cookie, "/console/settings").await;
    assert!(again.contains("from-console") && !again.contains(new_key), "shown once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_is_delivered_again_from_the_consumer_page() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    // A receiver that fails its first request and accepts the next.
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let h = h.clone();
            async move {
                if h.fetch_add(1, Ordering::SeqCst) == 0 {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // One attempt per delivery: the first failure ends it Failed.
    let once = tributary_domain::service::DeliveryOptions { schedule: vec![std::time::Duration::ZERO], ..Default::default() };
    let api = TestServer::start_with_webhooks("http://127.0.0.1:9", once).await;
    let (status, consumer) = api.post("/webhooks", json!({"url": hook, "eventTypes": ["company.created"]})).await;
    assert_eq!(status, 201, "{consumer}");
    let id = consumer["id"].as_str().unwrap().to_owned();
    api.company("Event Shop").await;
    let cookie = sign_in(&api, &api.key).await;
    // A page reads the attempts before the counts, so once it shows an attempt its counts
    // include it.
    let page = wait_for(&api, &cookie, &format!("/console/webhooks/{id}"), "the receiver answered HTTP 500").await;
    assert!(page.contains("0 pending · 0 delivered · 1 failed"), "{page}");
    let at = page.find("/deliveries/").expect("a Deliver again form") + 12;
    let delivery = &page[at..at + 36];
    let res = client()
        .post(format!("{}/console/webhooks/{id}/deliveries/{delivery}/redeliver", api.base))
        .header(header::COOKIE, &cookie)
        .form(&[("csrf", csrf(&page).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let page = wait_for(&api, &cookie, &format!("/console/webhooks/{id}"), "<td>204 <span class=\"badge ok\">Delivered</span>").await;
    assert!(page.contains("0 pending · 1 delivered · 0 failed"), "{page}");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

/// Reloads a console page until it shows `text` (10 s at most), and returns it.
async fn wait_for(api: &TestServer, cookie: &str, path: &str, text: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, page, _) = get(api, cookie, path).await;
        assert_eq!(status, 200);
        if page.contains(text) {
            return page;
        }
        assert!(std::time::Instant::now() < deadline, "{path} never showed {text}:\n{page}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_link_page_shows_each_connection_s_state_in_the_merchant_s_words() {
    use tributary_domain::model::connection::{ConnectionError, ConnectionStatus};
    let api = TestServer::start().await;
    api.enable_stripe_test().await;
    let company = api.company("States Shop").await;
    let mut made = Vec::new();
    for _ in 0..2 {
        let (status, c) = api.post(&format!("/companies/{company}/connections"), json!({"platformKey": "yzth"})).await;
        assert_eq!(status, 200, "{c}");
        made.push(c["id"].as_str().unwrap().parse::<tributary_domain::ids::ConnectionId>().unwrap());
    }
    let repos = api.platform.repositories();
    let mut gone = repos.connections.find(made[0]).await.unwrap().unwrap();
    gone.status = ConnectionStatus::Deauthorized;
    gone.source_account = Some("acct_1QxYzAbCdEfGh123".into());
    repos.connections.update(&gone, &[]).await.unwrap();
    let mut failed = repos.connections.find(made[1]).await.unwrap().unwrap();
    failed.errors.push(ConnectionError {
        status_code: "403".into(),
        status_text: None,
        error_message: "User cancelled linking".into(),
        errored_on_utc: chrono::Utc::now(),
    });
    repos.connections.update(&failed, &[]).await.unwrap();
    let (status, page, _) = get(&api, "", &format!("/link/{company}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Needs re-linking") && page.contains("Access was removed from your Stripe account"), "{page}");
    assert!(page.contains(&format!("/link/{company}/connections/{}/start", made[0])), "a way to link again");
    assert!(page.contains("The last attempt did not complete: User cancelled linking"), "{page}");
    assert!(page.contains("Read-only access") && page.contains("Payments and refunds"), "what is read, and how");
    assert!(page.contains("acct_…h123") && !page.contains("acct_1QxYzAbCdEfGh123"), "the public page masks the account id: {page}");
    // An unknown company and a forged authorization say what to do next.
    let (status, page, _) = get(&api, "", "/link/0b4ca2f6-2b8f-4d5e-9c0c-3e0d1f1d2a10").await;
    assert_eq!(status, 404);
    assert!(page.contains("Ask the sender of this link for a new one."));
    let (status, page, _) = get(&api, "", "/oauth/stripe/callback?state=forged&code=x").await;
    assert_eq!(status, 400);
    assert!(page.contains("Open the link you were sent again"));
}

/// Every form of the console: (path, fields). Ids that do not exist are fine: the session and the
/// CSRF token are checked before anything else.
fn every_form(company: &str, connection: &str, consumer: &str, key: &str) -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    let delivery = "0b4ca2f6-2b8f-4d5e-9c0c-3e0d1f1d2a10";
    vec![
        ("/console/companies".into(), vec![("name", "Forged")]),
        (format!("/console/companies/{company}/refresh"), vec![]),
        (format!("/console/companies/{company}/connections"), vec![("integration", "yzth")]),
        (format!("/console/companies/{company}/delete"), vec![]),
        (format!("/console/companies/{company}/connections/{connection}/unlink"), vec![]),
        ("/console/webhooks".into(), vec![("url", "https://forged.example/"), ("eventTypes", "company.created")]),
        (format!("/console/webhooks/{consumer}/disable"), vec![]),
        (format!("/console/webhooks/{consumer}/enable"), vec![]),
        (format!("/console/webhooks/{consumer}/delete"), vec![]),
        (format!("/console/webhooks/{consumer}/deliveries/{delivery}/redeliver"), vec![]),
        ("/console/settings/integrations/yzth".into(), vec![("clientId", "ca_forged")]),
        ("/console/settings/profile".into(), vec![("name", "Forged"), ("redirectUrl", "https://forged.example/")]),
        ("/console/settings/sync".into(), vec![]),
        ("/console/settings/api-keys".into(), vec![("name", "forged")]),
        (format!("/console/settings/api-keys/{key}/delete"), vec![]),
        ("/console/sign-out".into(), vec![]),
    ]
}

#[tokio::test]
async fn no_form_changes_anything_without_a_session_or_without_its_csrf_token() {
    let api = TestServer::start().await;
    api.enable_stripe_test().await;
    let company = api.company("Guarded Shop").await;
    let (_, conn) = api.post(&format!("/companies/{company}/connections"), json!({"platformKey": "yzth"})).await;
    let (_, hook) = api.post("/webhooks", json!({"url": "https://hooks.example/", "eventTypes": ["company.created"]})).await;
    let (_, key) = api.post("/apiKeys", json!({"name": "spare"})).await;
    let snapshot = || async {
        let mut all = Vec::new();
        for path in ["/companies", "/webhooks", "/apiKeys", "/profile", "/integrations/yzth", "/profile/syncSettings"] {
            all.push(api.get(path).await.1);
        }
        all.push(api.get(&format!("/companies/{company}/connections")).await.1);
        all
    };
    let before = snapshot().await;
    let cookie = sign_in(&api, &api.key).await;
    let forms = every_form(&company, conn["id"].as_str().unwrap(), hook["id"].as_str().unwrap(), key["id"].as_str().unwrap());
    for (path, fields) in &forms {
        let res = client().post(format!("{}{path}", api.base)).form(fields).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 303, "{path} without a session");
        assert_eq!(res.headers()[header::LOCATION], "/console/sign-in?next=%2Fconsole", "{path}");
        let mut forged = fields.clone();
        forged.push(("csrf", "0000000000000000000000000000000000000000000000000000000000000000"));
        for body in [fields.clone(), forged] {
            let res = client().post(format!("{}{path}", api.base)).header(header::COOKIE, &cookie).form(&body).send().await.unwrap();
            assert_eq!(res.status().as_u16(), 403, "{path} without its CSRF token");
        }
    }
    assert_eq!(snapshot().await, before, "nothing changed");
    assert_eq!(get(&api, &cookie, "/console").await.0, 200, "still signed in: sign-out needs the token too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_again_makes_exactly_one_more_attempt_and_not_for_a_disabled_consumer() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        // Accepts the first request, then fails.
        axum::routing::post(move || {
            let first = h.fetch_add(1, Ordering::SeqCst) == 0;
            async move { if first { axum::http::StatusCode::NO_CONTENT } else { axum::http::StatusCode::SERVICE_UNAVAILABLE } }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // Three attempts, 50 ms apart: a redelivered delivery that fails must not go on to them.
    let schedule = vec![std::time::Duration::ZERO, std::time::Duration::from_millis(50), std::time::Duration::from_millis(50)];
    let opts = tributary_domain::service::DeliveryOptions { schedule, ..Default::default() };
    let api = TestServer::start_with_webhooks("http://127.0.0.1:9", opts).await;
    let (_, consumer) = api.post("/webhooks", json!({"url": hook, "eventTypes": ["company.created"]})).await;
    let id = consumer["id"].as_str().unwrap().to_owned();
    api.company("Retry Shop").await;
    let cookie = sign_in(&api, &api.key).await;
    let path = format!("/console/webhooks/{id}");
    let page = wait_for(&api, &cookie, &path, "<td>204 ").await;
    assert!(page.contains("0 pending · 1 delivered · 0 failed") && page.contains("1 attempt(s)"), "{page}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let at = page.find("/deliveries/").expect("a Deliver again form") + 12;
    let url = format!("{}/console/webhooks/{id}/deliveries/{}/redeliver", api.base, &page[at..at + 36]);
    let token = csrf(&page);
    let redeliver = || client().post(&url).header(header::COOKIE, &cookie).form(&[("csrf", token.as_str())]).send();
    assert_eq!(redeliver().await.unwrap().status().as_u16(), 303);
    // The attempts are read before the counts: once the failed attempt shows, so does its outcome.
    let page = wait_for(&api, &cookie, &path, "the receiver answered HTTP 503").await;
    assert!(page.contains("0 pending · 0 delivered · 1 failed"), "the one more attempt failed, and that ended it: {page}");
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 2, "one more attempt, not the rest of the schedule");
    // A disabled consumer's delivery is not queued (it would wait until the consumer is enabled).
    api.platform.webhooks().set_consumer_disabled(id.parse().unwrap(), true).await.unwrap();
    let res = redeliver().await.unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert!(res.text().await.unwrap().contains("enable it before delivering again"));
    let page = wait_for(&api, &cookie, &path, "1 failed").await;
    assert!(page.contains("2 attempt(s)") && !page.contains("next attempt"), "{page}");
}
