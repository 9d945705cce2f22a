//! The Platform API over HTTP, as a Codat client sees it: status codes, shapes and errors.

mod common;

use common::{TestServer, assert_envelope};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn requests_without_a_key_or_with_a_wrong_key_get_401_in_codats_envelope() {
    let s = TestServer::start().await;
    let res = s.client.get(format!("{}/companies", s.base)).send().await.unwrap();
    let header = res.headers().get("correlation-id").unwrap().to_str().unwrap().to_owned();
    let ct = res.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
    let status = res.status().as_u16();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(assert_envelope(status, &body, 401), "Unauthorized");
    assert_eq!(body["correlationId"], header, "the header and the body carry the same id");
    assert!(ct.starts_with("application/json"));
    for auth in ["Basic d3Jvbmc=", "Bearer abc", "Basic !!!", &format!("Basic {}", "x".repeat(10))] {
        let res = s.client.get(format!("{}/integrations", s.base)).header("Authorization", auth).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401, "{auth}");
    }
    let res = s.client.get(format!("{}/health", s.base)).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200, "health needs no key");
}

#[tokio::test]
async fn company_lifecycle_uses_codats_status_codes() {
    let s = TestServer::start().await;
    let (st, c) = s.post("/companies", json!({"name": "Company (Codat[1])", "description": "ref-9", "tags": {"region": "uk"}})).await;
    assert_eq!(st, 200, "create is 200, not 201");
    assert_eq!(c["name"], "Company Codat1", "forbidden characters removed");
    assert_eq!(c["redirect"], format!("{}/link/{}", s.base, c["id"].as_str().unwrap()));
    assert_eq!(c["tags"]["region"], "uk");
    assert!(c["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(c["dataConnections"], json!([]));
    let id = c["id"].as_str().unwrap();

    let (st, got) = s.get(&format!("/companies/{id}")).await;
    assert_eq!((st, &got["name"]), (200, &json!("Company Codat1")));

    let (st, patched) = s.call(Method::PATCH, &format!("/companies/{id}"), Some(json!({"name": "Renamed"}))).await;
    assert_eq!(st, 200);
    assert_eq!((&patched["name"], &patched["description"], &patched["tags"]["region"]), (&json!("Renamed"), &json!("ref-9"), &json!("uk")));

    let (st, replaced) = s.call(Method::PUT, &format!("/companies/{id}"), Some(json!({"name": "Replaced"}))).await;
    assert_eq!(st, 200);
    assert_eq!((&replaced["description"], &replaced["tags"]), (&json!(null), &json!({})), "PUT clears what it does not set");

    let (st, body) = s.call(Method::DELETE, &format!("/companies/{id}"), None).await;
    assert_eq!((st, body), (204, serde_json::Value::Null));
    let (st, body) = s.get(&format!("/companies/{id}")).await;
    assert!(assert_envelope(st, &body, 404).contains(id));
}

#[tokio::test]
async fn bad_input_gets_400s_that_say_what_is_wrong() {
    let s = TestServer::start().await;
    let (st, b) = s.post("/companies", json!({"description": "no name"})).await;
    assert!(assert_envelope(st, &b, 400).contains("name"));
    let (st, b) = s.post("/companies", json!({"name": "[]()"})).await;
    assert_envelope(st, &b, 400);
    let tags: serde_json::Map<_, _> = (0..11).map(|i| (format!("k{i}"), json!("v"))).collect();
    let (st, b) = s.post("/companies", json!({"name": "A", "tags": tags})).await;
    assert!(assert_envelope(st, &b, 400).contains("At most 10 tags"));
    assert!(b["validation"]["errors"][0]["message"].is_string());
    let (st, b) = s.post("/companies", json!({"name": "A", "tags": {"k".repeat(28): "v"}})).await;
    assert_envelope(st, &b, 400);

    let res = s.client.post(format!("{}/companies", s.base)).header("Authorization", s.auth()).body("{not json").send().await.unwrap();
    let st = res.status().as_u16();
    let b: serde_json::Value = res.json().await.unwrap();
    assert!(assert_envelope(st, &b, 400).contains("not valid"));

    let (st, b) = s.get("/companies/not-a-uuid").await;
    assert!(assert_envelope(st, &b, 400).contains("not-a-uuid"));
    let (st, b) = s.get("/companies?query=name%3D").await;
    assert!(assert_envelope(st, &b, 400).starts_with("Error parsing query - "));
    let (st, b) = s.get("/companies?query=colour%3Dred").await;
    assert_eq!(assert_envelope(st, &b, 400), "Error parsing query - Could not resolve property colour on Company");
    let (st, b) = s.get("/companies?orderBy=-colour").await;
    assert!(assert_envelope(st, &b, 400).contains("colour"));
    let (st, b) = s.get("/companies?pageSize=5001").await;
    assert!(assert_envelope(st, &b, 400).contains("pageSize"));
    let (st, b) = s.get("/companies?page=zero").await;
    assert!(assert_envelope(st, &b, 400).contains("page"));
    let (st, b) = s.get("/nope").await;
    assert_envelope(st, &b, 404);
    let (st, b) = s.call(Method::DELETE, "/companies", None).await;
    assert_envelope(st, &b, 405);
}

#[tokio::test]
async fn company_lists_page_with_relative_links_query_order_and_tags() {
    let s = TestServer::start().await;
    for i in 0..5 {
        let (st, _) =
            s.post("/companies", json!({"name": format!("Shop {i}"), "tags": {"region": if i % 2 == 0 { "uk" } else { "us" }}})).await;
        assert_eq!(st, 200);
    }
    let (st, p) = s.get("/companies?page=2&pageSize=2").await;
    assert_eq!(st, 200);
    assert_eq!((p["pageNumber"].as_u64(), p["pageSize"].as_u64(), p["totalResults"].as_u64()), (Some(2), Some(2), Some(5)));
    assert_eq!(p["results"].as_array().unwrap().len(), 2);
    assert_eq!(p["_links"]["self"]["href"], "/companies");
    assert_eq!(p["_links"]["current"]["href"], "/companies?page=2&pageSize=2");
    assert_eq!(p["_links"]["next"]["href"], "/companies?page=3&pageSize=2");
    assert_eq!(p["_links"]["previous"]["href"], "/companies?page=1&pageSize=2");
    let (_, last) = s.get("/companies?page=3&pageSize=2").await;
    assert!(last["_links"].get("next").is_none(), "no next on the last page");
    let (_, first) = s.get("/companies?pageSize=2").await;
    assert!(first["_links"].get("previous").is_none(), "no previous on the first page");

    let (_, q) = s.get("/companies?query=name%3DShop%203%20%7C%7C%20name%3DShop%201&orderBy=-name").await;
    let names: Vec<_> = q["results"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["Shop 3", "Shop 1"]);
    assert_eq!(
        q["_links"]["current"]["href"],
        "/companies?page=1&pageSize=100&query=name%3DShop%203%20%7C%7C%20name%3DShop%201&orderBy=-name"
    );

    let (_, t) = s.get("/companies?tags=region%3Duk").await;
    assert_eq!(t["totalResults"], 3);
    let (_, t) = s.get("/companies?tags=region%3Duk&query=name~shop%200").await;
    assert_eq!(t["totalResults"], 1);
}

#[tokio::test]
async fn connections_are_created_pending_listed_unlinked_only_when_linked_and_deleted_with_200() {
    let s = TestServer::start().await;
    let company = s.company("Merchant").await;
    let (st, b) = s.post(&format!("/companies/{company}/connections"), json!({"platformKey": "yzth"})).await;
    assert!(assert_envelope(st, &b, 400).contains("not enabled"), "a disabled integration cannot be linked");
    s.enable_stripe_test().await;
    let (st, c) = s.post(&format!("/companies/{company}/connections"), json!({"platformKey": "yzth"})).await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["status"], "PendingAuth");
    assert_eq!(c["integrationKey"], "yzth");
    assert_eq!(c["platformName"], "Stripe Test");
    assert_eq!(c["sourceType"], "Commerce");
    for f in ["id", "integrationId", "sourceId", "linkUrl", "created"] {
        assert!(c[f].is_string(), "{f} missing: {c}");
    }
    let conn = c["id"].as_str().unwrap();
    assert_eq!(c["linkUrl"], format!("{}/link/{company}/connections/{conn}/start", s.base));

    let (st, b) = s.post(&format!("/companies/{company}/connections"), json!({"platformKey": "zzzz"})).await;
    assert!(assert_envelope(st, &b, 404).contains("zzzz"));
    let (st, b) = s.post(&format!("/companies/{company}/connections"), json!({})).await;
    assert!(assert_envelope(st, &b, 400).contains("platformKey"));

    let (_, list) = s.get(&format!("/companies/{company}/connections?query=status%3DPendingAuth")).await;
    assert_eq!(list["totalResults"], 1);
    let (_, co) = s.get(&format!("/companies/{company}")).await;
    assert_eq!(co["dataConnections"][0]["id"], conn);
    let (_, filtered) = s.get("/companies?query=dataConnections.status%3DPendingAuth").await;
    assert_eq!(filtered["totalResults"], 1);

    let (st, b) = s.call(Method::PATCH, &format!("/companies/{company}/connections/{conn}"), Some(json!({"status": "Unlinked"}))).await;
    assert!(assert_envelope(st, &b, 400).contains("PendingAuth"), "only linked connections can be unlinked");

    let other = s.company("Other").await;
    let (st, b) = s.get(&format!("/companies/{other}/connections/{conn}")).await;
    assert_envelope(st, &b, 404);

    let (st, body) = s.call(Method::DELETE, &format!("/companies/{company}/connections/{conn}"), None).await;
    assert_eq!((st, body), (200, serde_json::Value::Null), "DELETE connection is 200 with an empty body");
    let (st, b) = s.get(&format!("/companies/{company}/connections/{conn}")).await;
    assert_envelope(st, &b, 404);
}

#[tokio::test]
async fn deleting_a_company_removes_its_connections() {
    let s = TestServer::start().await;
    s.enable_stripe_test().await;
    let company = s.company("Merchant").await;
    let (_, c) = s.post(&format!("/companies/{company}/connections"), json!({"platformKey": "yzth"})).await;
    let conn: tributary_domain::ids::ConnectionId = c["id"].as_str().unwrap().parse().unwrap();
    let repos = s.platform.repositories();
    assert!(repos.connections.find(conn).await.unwrap().is_some());
    let (st, _) = s.call(Method::DELETE, &format!("/companies/{company}"), None).await;
    assert_eq!(st, 204);
    assert!(repos.connections.find(conn).await.unwrap().is_none(), "connections go with their company");
}

#[tokio::test]
async fn integrations_list_get_and_branding() {
    let s = TestServer::start().await;
    let (st, l) = s.get("/integrations").await;
    assert_eq!(st, 200);
    assert_eq!(l["totalResults"], 2);
    let keys: Vec<_> = l["results"].as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["exgd", "yzth"]);
    let (_, i) = s.get("/integrations/yzth").await;
    assert_eq!((&i["name"], &i["enabled"], &i["sourceType"]), (&json!("Stripe Test"), &json!(false), &json!("Commerce")));
    let feats = i["datatypeFeatures"].as_array().unwrap();
    assert_eq!(feats.len(), 11);
    let released = feats.iter().filter(|f| f["supportedFeatures"][0]["featureState"] == "Release").count();
    assert_eq!(released, 6);
    let (_, q) = s.get("/integrations?query=name~test").await;
    assert_eq!(q["totalResults"], 1);
    let (_, o) = s.get("/integrations?orderBy=-key").await;
    assert_eq!(o["results"][0]["key"], "yzth");
    let (st, b) = s.get("/integrations/abcd").await;
    assert_envelope(st, &b, 404);
    let (st, br) = s.get("/integrations/exgd/branding").await;
    assert_eq!(st, 200);
    let logo = br["logo"]["full"]["image"]["src"].as_str().unwrap();
    let res = s.client.get(logo).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200, "the logo is served without a key");
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
}

#[tokio::test]
async fn profile_and_sync_settings_round_trip() {
    let s = TestServer::start().await;
    let (st, p) = s.get("/profile").await;
    assert_eq!((st, &p["name"]), (200, &json!("Tributary")));
    let (st, p) =
        s.call(Method::PUT, "/profile", Some(json!({"name": "Lender", "redirectUrl": "https://example.com/done/{companyId}"}))).await;
    assert_eq!((st, &p["redirectUrl"]), (200, &json!("https://example.com/done/{companyId}")));
    let (st, b) = s.call(Method::PUT, "/profile", Some(json!({"name": "x", "redirectUrl": "ftp://x"}))).await;
    assert_envelope(st, &b, 400);

    let (st, ss) = s.get("/profile/syncSettings").await;
    assert_eq!(st, 200);
    assert_eq!(ss["overridesDefaults"], false);
    assert_eq!(ss["settings"].as_array().unwrap().len(), 11);
    let mut settings = ss["settings"].clone();
    settings[0]["syncSchedule"] = json!(6);
    let (st, _) =
        s.post("/profile/syncSettings", json!({"clientId": ss["clientId"], "settings": settings, "overridesDefaults": true})).await;
    assert_eq!(st, 204);
    let (_, ss2) = s.get("/profile/syncSettings").await;
    assert_eq!((&ss2["settings"][0]["syncSchedule"], &ss2["overridesDefaults"]), (&json!(6), &json!(true)));
    let (st, b) =
        s.post("/profile/syncSettings", json!({"clientId": uuid::Uuid::new_v4(), "settings": [], "overridesDefaults": true})).await;
    assert!(assert_envelope(st, &b, 400).contains("clientId"));
    let (st, b) = s.post("/profile/syncSettings", json!({"clientId": ss["clientId"], "settings": [{"dataType": "invoices", "fetchOnFirstLink": true, "syncSchedule": 1, "syncOrder": 0}], "overridesDefaults": true})).await;
    assert_envelope(st, &b, 400);

    let company = s.company("C").await;
    let (st, cs) = s.get(&format!("/companies/{company}/syncSettings")).await;
    assert_eq!(
        (st, &cs["overridesDefaults"], &cs["settings"][0]["syncSchedule"]),
        (200, &json!(false), &json!(6)),
        "inherits the client's settings"
    );
    let mut mine = cs["settings"].clone();
    mine[0]["syncSchedule"] = json!(1);
    let (st, _) = s
        .post(&format!("/companies/{company}/syncSettings"), json!({"companyId": company, "settings": mine, "overridesDefaults": true}))
        .await;
    assert_eq!(st, 204);
    let (_, cs2) = s.get(&format!("/companies/{company}/syncSettings")).await;
    assert_eq!((&cs2["overridesDefaults"], &cs2["settings"][0]["syncSchedule"]), (&json!(true), &json!(1)));
    let (st, b) = s.get(&format!("/companies/{}/syncSettings", uuid::Uuid::new_v4())).await;
    assert_envelope(st, &b, 404);
}

#[tokio::test]
async fn api_keys_are_created_with_201_shown_once_limited_to_ten_and_the_last_is_kept() {
    let s = TestServer::start().await;
    let (st, k) = s.call(Method::POST, "/apiKeys", Some(json!({"name": "second"}))).await;
    assert_eq!(st, 201);
    let value = k["apiKey"].as_str().unwrap().to_owned();
    assert_eq!(value.len(), 40);
    let res = s
        .client
        .get(format!("{}/companies", s.base))
        .header("Authorization", format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &value)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "the new key works");
    let (_, list) = s.get("/apiKeys").await;
    let results = list["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| r.get("apiKey").is_none()), "values are never listed");
    for _ in 0..8 {
        assert_eq!(s.call(Method::POST, "/apiKeys", None).await.0, 201);
    }
    let (st, b) = s.call(Method::POST, "/apiKeys", None).await;
    assert_envelope(st, &b, 409);
    let (_, list) = s.get("/apiKeys").await;
    let ids: Vec<String> = list["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    let (st, b) = s.call(Method::POST, "/apiKeys", Some(json!({"name": "n".repeat(51)}))).await;
    assert_envelope(st, &b, 400);
    // Delete all but the key this client uses (the first), then try to delete that one too.
    for id in &ids[1..] {
        assert_eq!(s.call(Method::DELETE, &format!("/apiKeys/{id}"), None).await.0, 204);
    }
    let (st, b) = s.call(Method::DELETE, &format!("/apiKeys/{}", ids[0]), None).await;
    assert!(assert_envelope(st, &b, 409).contains("last"));
    let (st, b) = s.call(Method::DELETE, &format!("/apiKeys/{}", uuid::Uuid::new_v4()), None).await;
    assert_envelope(st, &b, 404);
}

#[tokio::test]
async fn requests_with_octet_stream_content_type_and_no_body_are_accepted() {
    // codat-commerce 0.35 and codat-platform 4.0 send this on GET and DELETE.
    let s = TestServer::start().await;
    let res = s
        .client
        .get(format!("{}/companies", s.base))
        .header("Authorization", s.auth())
        .header("content-type", "application/octet-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

#[tokio::test]
async fn openapi_document_matches_the_committed_snapshot() {
    let doc = serde_json::to_string_pretty(&tributary_api::http::openapi::document()).unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.snapshot.json");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &doc).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == doc,
        "the OpenAPI document changed; review the difference and run `UPDATE_SNAPSHOTS=1 cargo test -p tributary-api --test platform_api openapi` to accept it"
    );
    let s = TestServer::start().await;
    let anonymous = s.client.get(format!("{}/openapi.json", s.base)).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401, "the document needs a key like every API endpoint");
    let (st, served) = s.get("/openapi.json").await;
    assert_eq!(st, 200);
    assert_eq!(served, serde_json::from_str::<serde_json::Value>(&doc).unwrap());
    for p in ["/companies", "/companies/{companyId}/connections/{connectionId}", "/integrations/{platformKey}/branding", "/apiKeys"] {
        assert!(served["paths"].get(p).is_some(), "{p} missing from the document");
    }
}

#[tokio::test]
async fn a_redirect_url_with_a_line_break_is_refused_with_400_naming_it_and_nothing_is_saved() {
    let api = TestServer::start().await;
    let (_, before) = api.get("/profile").await;
    for bad in ["https://x.example/done\r\nSet-Cookie: a=b", "https://x.example/\ndone", "javascript:alert(1)"] {
        let (status, body) = api.call(reqwest::Method::PUT, "/profile", Some(json!({"name": "Acme", "redirectUrl": bad}))).await;
        common::assert_envelope(status, &body, 400);
        assert_eq!(body["validation"]["errors"][0]["itemId"], "redirectUrl", "{body}");
    }
    let (status, body) = api
        .call(
            reqwest::Method::PUT,
            "/profile",
            Some(json!({"name": "Acme", "redirectUrl": "https://x.example", "logoUrl": "https://cdn.example/l\u{7}.png"})),
        )
        .await;
    common::assert_envelope(status, &body, 400);
    assert_eq!(body["validation"]["errors"][0]["itemId"], "logoUrl", "{body}");
    assert_eq!(api.get("/profile").await.1, before, "nothing was saved");
    let ok = json!({"name": "Acme", "redirectUrl": "https://x.example/linked?company={companyId}&status={statusCode}"});
    assert_eq!(api.call(reqwest::Method::PUT, "/profile", Some(ok)).await.0, 200);
}

#[tokio::test]
async fn client_input_with_a_nul_character_is_refused_with_400_naming_the_field() {
    let api = TestServer::start().await;
    let company = api.company("Clean Co").await;
    let cases = [
        (Method::POST, "/companies".to_owned(), json!({"name": "Nul Co", "description": "a\u{0}b"}), "description"),
        (Method::POST, "/companies".to_owned(), json!({"name": "Nul Co", "tags": {"region": "e\u{0}u"}}), "tags.region"),
        (Method::PATCH, format!("/companies/{company}"), json!({"description": "\u{0}"}), "description"),
        (Method::PUT, "/profile".to_owned(), json!({"name": "Ac\u{0}me", "redirectUrl": ""}), "name"),
        (Method::POST, "/webhooks".to_owned(), json!({"url": "https://x.example/\u{0}", "eventTypes": ["company.created"]}), "url"),
        (Method::POST, "/apiKeys".to_owned(), json!({"name": "k\u{0}"}), "name"),
    ];
    for (method, path, body, field) in cases {
        let (status, answer) = api.call(method.clone(), &path, Some(body)).await;
        let message = assert_envelope(status, &answer, 400);
        assert!(message.contains(field), "{method} {path}: {message}");
        assert_eq!(answer["validation"]["errors"][0]["itemId"], field, "{method} {path}: {answer}");
    }
    let (status, answer) = api.get("/companies?query=name%3Da%00b").await;
    assert_eq!(assert_envelope(status, &answer, 400), "query must not contain the NUL character (U+0000).");
    let (_, list) = api.get("/companies").await;
    assert_eq!(list["totalResults"], 1, "nothing was created");
    let (_, keys) = api.get("/apiKeys").await;
    assert_eq!(keys["results"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn optional_fields_codat_does_not_declare_nullable_are_omitted_not_null() {
    // No sync workers: a queued pull stays queued.
    let api = TestServer::start_configured("http://127.0.0.1:9", |o| o.workers = 0).await;
    let (_, profile) = api.get("/profile").await;
    assert!(profile.get("logoUrl").is_none() && profile.get("iconUrl").is_none(), "{profile}");
    api.enable_stripe_test().await;
    let company = api.company("Omit Co").await;
    let (_, conn) = api.post(&format!("/companies/{company}/connections"), json!({"platformKey": "yzth"})).await;
    // A queued pull has not completed: no `completed` at all.
    let id: tributary_domain::ids::ConnectionId = conn["id"].as_str().unwrap().parse().unwrap();
    let repos = api.platform.repositories();
    let mut c = repos.connections.find(id).await.unwrap().unwrap();
    c.status = tributary_domain::model::connection::ConnectionStatus::Linked;
    c.source_account = Some("acct_omit".into());
    c.errors.push(tributary_domain::model::connection::ConnectionError {
        status_code: "500".into(),
        status_text: None,
        error_message: "Linking failed at Stripe".into(),
        errored_on_utc: chrono::Utc::now(),
    });
    repos.connections.update(&c, &[]).await.unwrap();
    let (_, op) = api.post(&format!("/companies/{company}/data/queue/commerce-customers"), json!({})).await;
    let (_, got) = api.get(&format!("/companies/{company}/data/history/{}", op["id"].as_str().unwrap())).await;
    assert_eq!(got["status"], "Queued", "{got}");
    assert!(got.get("completed").is_none(), "{got}");
    let (_, listed) = api.get(&format!("/companies/{company}/connections/{id}")).await;
    let error = &listed["dataConnectionErrors"][0];
    assert_eq!(error["errorMessage"], "Linking failed at Stripe");
    assert!(error.get("statusText").is_none(), "{listed}");
}

#[tokio::test]
async fn an_over_long_company_name_is_400_naming_it_and_an_over_limit_body_is_413() {
    let api = TestServer::start().await;
    let (status, body) = api.post("/companies", json!({"name": "a".repeat(100_000)})).await;
    common::assert_envelope(status, &body, 400);
    assert_eq!(body["validation"]["errors"][0]["itemId"], "name", "{body}");
    let company = api.company("Short").await;
    let (status, body) =
        api.call(reqwest::Method::PATCH, &format!("/companies/{company}"), Some(json!({"description": "d".repeat(4001)}))).await;
    common::assert_envelope(status, &body, 400);
    assert_eq!(body["validation"]["errors"][0]["itemId"], "description", "{body}");
    assert_eq!(api.get("/companies?pageSize=10").await.1["totalResults"], 1, "nothing was created");
    // Over axum's 2 MiB: 413 in Codat's envelope, not a 400.
    let (status, body) = api.post("/companies", json!({"name": "Big", "description": "x".repeat(3 << 20)})).await;
    let message = common::assert_envelope(status, &body, 413);
    assert!(message.contains("2 MiB"), "{message}");
}

#[tokio::test]
async fn a_key_over_its_limit_gets_429_with_retry_after_and_rate_headers_and_other_keys_go_on() {
    let s = TestServer::start_configured("http://127.0.0.1:9", |o| o.limits.per_key_per_minute = 5).await;
    let (_, second) = s.post("/apiKeys", json!({"name": "second"})).await; // request 1 of the first key
    let second =
        format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, second["apiKey"].as_str().unwrap()));
    for left in (0..4).rev() {
        let res = s.client.get(format!("{}/companies", s.base)).header("Authorization", s.auth()).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let h = res.headers();
        assert_eq!(h["x-rate-limit-limit"], "5");
        assert_eq!(h["x-rate-limit-remaining"], left.to_string().as_str());
        let reset = chrono::DateTime::parse_from_rfc3339(h["x-rate-limit-reset"].to_str().unwrap()).unwrap();
        assert!(reset > chrono::Utc::now() && reset <= chrono::Utc::now() + chrono::Duration::seconds(61), "{reset}");
    }
    let res = s.client.get(format!("{}/companies", s.base)).header("Authorization", s.auth()).send().await.unwrap();
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(res.headers()["x-rate-limit-remaining"], "0");
    let status = res.status().as_u16();
    let body: serde_json::Value = res.json().await.unwrap();
    let message = assert_envelope(status, &body, 429);
    assert!(message.contains("too many requests"), "{message}");
    let res = s.client.get(format!("{}/companies", s.base)).header("Authorization", &second).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200, "limits are per key");
}

#[tokio::test]
async fn an_address_that_fails_to_authenticate_too_often_gets_429_before_any_key_is_checked() {
    let s = TestServer::start_configured("http://127.0.0.1:9", |o| o.limits.failed_auth_per_minute = 3).await;
    for _ in 0..3 {
        let res = s.client.get(format!("{}/companies", s.base)).header("Authorization", "Basic d3Jvbmc=").send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401);
    }
    // Now even the right key is refused from this address until the window ends: a guess that
    // happens to be right cannot be told apart.
    for auth in ["Basic d3Jvbmc=".to_owned(), s.auth()] {
        let res = s.client.get(format!("{}/companies", s.base)).header("Authorization", &auth).send().await.unwrap();
        assert!(res.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
        let status = res.status().as_u16();
        assert_envelope(status, &res.json().await.unwrap(), 429);
    }
    // The console's sign-in counts with them.
    let res = s
        .client
        .post(format!("{}/console/sign-in", s.base))
        .header("Origin", &s.base)
        .form(&[("apiKey", s.key.as_str()), ("next", "/console")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(s.client.get(format!("{}/health", s.base)).send().await.unwrap().status().as_u16(), 200, "health is not limited");
}

#[tokio::test]
async fn failed_console_sign_ins_count_towards_the_address_limit() {
    let s = TestServer::start_configured("http://127.0.0.1:9", |o| o.limits.failed_auth_per_minute = 2).await;
    let sign_in = |key: String| {
        let (client, base) = (s.client.clone(), s.base.clone());
        async move {
            client
                .post(format!("{base}/console/sign-in"))
                .header("Origin", &base)
                .form(&[("apiKey", key.as_str()), ("next", "/console")])
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(sign_in("wrong".into()).await.status().as_u16(), 401);
    assert_eq!(sign_in("wrong".into()).await.status().as_u16(), 401);
    assert_eq!(sign_in(s.key.clone()).await.status().as_u16(), 429);
    let res = s.client.get(format!("{}/companies", s.base)).header("Authorization", s.auth()).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 429, "the API too");
}

#[test]
fn the_openapi_document_declares_every_status_an_operation_answers_and_types_every_body() {
    let doc = tributary_api::http::openapi::document();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let r = &op["responses"];
            for status in ["401", "429", "500"] {
                assert!(r.get(status).is_some(), "{method} {path} does not declare {status}");
            }
            assert!(r["429"]["headers"].get("Retry-After").is_some(), "{method} {path}");
            if path.contains('{') {
                assert!(r.get("400").is_some() && r.get("404").is_some(), "{method} {path}: a malformed or unknown id");
            }
            if op.get("requestBody").is_some() {
                assert!(r.get("413").is_some(), "{method} {path}");
            }
            for (status, body) in r.as_object().unwrap() {
                if let Some(schema) = body.pointer("/content/application~1json/schema") {
                    assert_ne!(schema, &json!({"type": "object"}), "{method} {path} {status}: an untyped body");
                }
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                match p["name"].as_str().unwrap() {
                    "companyId" | "connectionId" | "datasetId" | "webhookId" | "apiKeyId" => {
                        assert_eq!(p["schema"]["format"], "uuid", "{method} {path}")
                    }
                    "page" => assert_eq!((&p["schema"]["minimum"], &p["schema"]["default"]), (&json!(1), &json!(1))),
                    "pageSize" => assert_eq!(
                        (&p["schema"]["minimum"], &p["schema"]["maximum"], &p["schema"]["default"]),
                        (&json!(1), &json!(5000), &json!(100))
                    ),
                    _ => {}
                }
            }
        }
    }
    assert!(operations >= 40, "{operations}");
    for op in ["unlink-connection", "delete-connection"] {
        let found =
            doc["paths"].as_object().unwrap().values().flat_map(|i| i.as_object().unwrap().values()).find(|o| o["operationId"] == op);
        assert!(found.unwrap()["responses"].get("502").is_some(), "{op} calls Stripe");
    }
    let base = "/companies/{companyId}/connections/{connectionId}/data";
    assert_eq!(
        doc["paths"][format!("{base}/commerce-payments")]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Paged_Payment"
    );
    assert_eq!(
        doc["paths"][format!("{base}/commerce-customers/{{customerId}}")]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/Customer"
    );
    let s = &doc["components"]["schemas"];
    assert_eq!(s["PaymentStatus"]["enum"], json!(["Pending", "Authorized", "Paid", "Failed", "Cancelled", "Unknown"]));
    assert_eq!(s["ConnectionDto"]["properties"]["status"]["enum"], json!(["PendingAuth", "Linked", "Unlinked", "Deauthorized"]));
    assert_eq!(s["PullOperationDto"]["properties"]["status"]["enum"].as_array().unwrap().len(), 21);
    assert_eq!(s["Payment"]["properties"]["createdDate"]["format"], "date-time");
    assert_eq!(s["Amount"]["type"], "number");
}

#[tokio::test]
async fn errors_raised_by_the_framework_come_in_codats_envelope_too() {
    let s = TestServer::start().await;
    let company = s.company("Envelope").await;
    // A repeated query parameter (found by schemathesis: answered in text/plain before).
    let (status, body) =
        s.call(Method::POST, &format!("/companies/{company}/data/queue/commerce-customers?connectionId=a&connectionId=b"), None).await;
    assert!(assert_envelope(status, &body, 400).contains("connectionId"), "{body}");
    // A path segment that is not UTF-8 once decoded.
    let (status, body) = s.call(Method::GET, "/companies/%FF%FE", None).await;
    assert_envelope(status, &body, 400);
    // On a page, the page's security headers stay.
    let res = s.client.get(format!("{}/link/%FF%FE", s.base)).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert!(res.headers().contains_key("content-security-policy"), "{:?}", res.headers());
}

#[tokio::test]
async fn a_patch_checks_only_the_fields_it_sends() {
    let s = TestServer::start().await;
    let company = s.company("Long").await;
    // A company stored before names had a limit.
    let repos = s.platform.repositories();
    let mut stored = repos.companies.get(company.parse().unwrap()).await.unwrap().unwrap();
    stored.name = "n".repeat(300);
    repos.companies.update(&stored).await.unwrap();
    let (status, body) = s.call(Method::PATCH, &format!("/companies/{company}"), Some(json!({"tags": {"region": "eu"}}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tags"]["region"], "eu");
    let (status, body) = s.call(Method::PATCH, &format!("/companies/{company}"), Some(json!({"name": "n".repeat(201)}))).await;
    assert!(!assert_envelope(status, &body, 400).is_empty());
    assert_eq!(body["validation"]["errors"][0]["itemId"], "name");
}
