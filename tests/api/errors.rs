//! Bad input gets a clear error in the API's envelope and changes nothing.
use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

fn assert_clean(r: &Reply) {
    let lower = r.text.to_lowercase();
    for bad in [
        "sqlite",
        "select ",
        "panicked",
        "backtrace",
        "rusqlite",
        "src/",
    ] {
        assert!(!lower.contains(bad), "error body leaks {bad:?}: {}", r.text);
    }
    assert!(
        r.body["error"]["code"].is_string(),
        "not the envelope: {}",
        r.text
    );
    assert!(r.body["error"]["message"].is_string());
}

#[tokio::test]
async fn malformed_json_wrong_types_and_missing_fields_are_400() {
    let app = TestApp::spawn().await;
    let ann = app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    let raw = |body: &'static str, ctype: &'static str| {
        s.client
            .post(s.url("/api/v1/me/tokens"))
            .header("x-csrf-token", &s.csrf)
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    let r = reply(raw("{\"name\": ", "application/json").await.unwrap()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "malformed_json");
    assert_clean(&r);
    let r = reply(
        raw("{\"name\": 5, \"organization_id\": []}", "application/json")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "invalid_body");
    assert_clean(&r);
    let r = reply(raw("{}", "application/json").await.unwrap()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field")
    );
    let r = reply(raw("name=x", "text/plain").await.unwrap()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "unsupported_media_type");
    // Nothing was created.
    assert!(
        s.get("/api/v1/me/tokens").await.body["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let _ = ann;
}

/// A struct would also read a JSON array positionally (`[null, null]` was a valid PATCH
/// of an organization); every body of this API is an object.
#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_400_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let ann = app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    let org = &ann.personal_org;
    let before = s.get(&format!("/api/v1/orgs/{org}")).await;
    for body in [
        json!([null, null]),
        json!(["New name"]),
        json!("x"),
        json!(7),
    ] {
        for path in [
            format!("/api/v1/orgs/{org}"),
            format!("/api/v1/orgs/{org}/quota"),
            format!("/api/v1/orgs/{org}/llm/policy"),
        ] {
            let r = s
                .send(reqwest::Method::PATCH, &path, Some(body.clone()))
                .await;
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "{path} {body}: {}",
                r.text
            );
            assert_eq!(r.code(), "invalid_body", "{path} {body}");
        }
    }
    let after = s.get(&format!("/api/v1/orgs/{org}")).await;
    assert_eq!(before.body, after.body);
}

/// JSON has one number type: `17.0` is the integer 17 (JSON Schema agrees), and a client
/// that writes it so is not refused.
#[tokio::test]
async fn a_whole_number_written_with_a_decimal_point_is_that_integer() {
    let app = TestApp::spawn().await;
    let ann = app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    let org = &ann.personal_org;
    let r = s
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/orgs/{org}/quota"),
            Some(json!({"billing_anchor_day": 17.0, "alert_thresholds": [50.0, 90]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["billing_anchor_day"], 17);
    assert_eq!(r.body["alert_thresholds"], json!([50, 90]));
    let r = s
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/orgs/{org}/quota"),
            Some(json!({"billing_anchor_day": 17.5})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

#[tokio::test]
async fn oversize_bodies_are_413() {
    let app = TestApp::spawn_with(|c| c.body_limit_bytes = 64 * 1024).await;
    app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    let huge = json!({"name": "x".repeat(200 * 1024)});
    let r = s.post("/api/v1/orgs", huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "payload_too_large");
    assert_clean(&r);
    let login = reply(
        reqwest::Client::new()
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"email": "a@b.co", "password": "p".repeat(100 * 1024)}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(login.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        s.get("/api/v1/orgs").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn unknown_ids_routes_and_missing_auth_are_clean_errors() {
    let app = TestApp::spawn().await;
    app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    for path in [
        "/api/v1/me/tokens/not-a-uuid",
        "/api/v1/me/tokens/0190a0b0-0000-7000-8000-000000000000",
        "/api/v1/me/sessions/%27%20OR%201=1--",
    ] {
        let r = s.delete(path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_clean(&r);
    }
    let r = s
        .send(reqwest::Method::PATCH, "/api/v1/me", Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_clean(&r);
    let r = s.get("/api/v1/no/such/thing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_clean(&r);
    let anon = reply(reqwest::get(app.url("/api/v1/me")).await.unwrap()).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anon.code(), "unauthorized");
    let bad_query = s.get("/api/v1/me/tokens?limit=abc").await;
    assert_eq!(bad_query.status, StatusCode::BAD_REQUEST);
    let over = s.get("/api/v1/me/tokens?limit=1000").await;
    assert_eq!(over.status, StatusCode::BAD_REQUEST);
    let cursor = s.get("/api/v1/me/tokens?cursor=%%%").await;
    assert_eq!(cursor.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn cross_origin_writes_are_refused() {
    let app = TestApp::spawn().await;
    app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    let r = reply(
        s.client
            .post(s.url("/api/v1/orgs"))
            .header("x-csrf-token", &s.csrf)
            .header("origin", "https://evil.example")
            .json(&json!({"name": "Evil"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "cross_origin");
    assert_eq!(
        s.get("/api/v1/orgs").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn lists_paginate_with_limit_and_cursor() {
    let app = TestApp::spawn().await;
    let ann = app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    for i in 0..5 {
        let r = s
            .post(
                "/api/v1/me/tokens",
                json!({"name": format!("t{i}"), "organization_id": ann.personal_org}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/me/tokens?limit=2".to_string();
    loop {
        let page = s.get(&path).await;
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_string()),
        );
        match page.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/me/tokens?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, vec!["t4", "t3", "t2", "t1", "t0"]);
}

/// What a form with an empty cursor field sends: it means the first page, on every list.
#[tokio::test]
async fn an_empty_cursor_is_the_first_page_of_every_list() {
    let app = TestApp::spawn().await;
    let ann = app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    let org = &ann.personal_org;
    let r = s
        .post(
            "/api/v1/me/tokens",
            json!({"name": "t", "organization_id": org}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = s
        .post(&format!("/api/v1/orgs/{org}/agents"), json!({"name": "A"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    for list in [
        "/api/v1/me/tokens".to_string(),
        "/api/v1/me/sessions".to_string(),
        format!("/api/v1/orgs/{org}/members"),
        format!("/api/v1/orgs/{org}/agents"),
        format!("/api/v1/orgs/{org}/audit"),
        "/api/v1/me/accessible/agents".to_string(),
    ] {
        let first = s.get(&list).await;
        let empty = s.get(&format!("{list}?cursor=")).await;
        assert_eq!(empty.status, StatusCode::OK, "{list}: {}", empty.text);
        assert!(
            !first.body["items"].as_array().unwrap().is_empty(),
            "{list}"
        );
        assert_eq!(empty.body["items"], first.body["items"], "{list}");
    }
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    let h = reply(reqwest::get(app.url("/healthz")).await.unwrap()).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.body, json!({"status": "ok"}));
    let r = reply(reqwest::get(app.url("/readyz")).await.unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(h.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn the_openapi_description_lists_every_api_route() {
    let app = TestApp::spawn().await;
    let r = reply(reqwest::get(app.url("/api/openapi.json")).await.unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    let paths = r.body["paths"].as_object().unwrap();
    // Every route string registered in src/http/api is described.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/api");
    let mut routes = 0;
    let files = crate::common::files_under(&dir);
    for file in files {
        let src = std::fs::read_to_string(file).unwrap();
        for part in src.split(".route(\"").skip(1) {
            let path = part.split('"').next().unwrap();
            if path.starts_with("/api/v1") {
                routes += 1;
                // `{type}` routes are described once per resource type.
                let described = paths.contains_key(path)
                    || crate::isolation_matrix::RESOURCE_TYPES
                        .iter()
                        .any(|t| paths.contains_key(&path.replace("{type}", t)));
                assert!(described, "{path} missing from openapi.json");
            }
        }
    }
    assert!(routes >= 10, "found only {routes} routes");
}
