//! The instance's outbound rule: with the default (public addresses only), a provider base
//! URL, a personal key's base URL or an alert webhook that names a private, loopback or
//! link-local address is refused when it is saved, as a field error.
use crate::common::TestApp;
use crate::org_fixture::{create_org, new_person};
use reqwest::{Method, StatusCode};
use serde_json::json;
use xagent::services::outbound::TargetPolicy;

const LOCAL: [&str; 5] = [
    "http://127.0.0.1:11434/v1",
    "http://localhost:8000/v1",
    "http://169.254.169.254/latest",
    "http://[::1]:9/v1",
    "http://10.0.0.7/v1",
];

#[tokio::test]
async fn private_addresses_are_refused_when_saved_unless_the_instance_allows_them() {
    let app = TestApp::spawn_with(|c| c.targets = TargetPolicy::PublicOnly).await;
    let (_, owner) = new_person(&app, "owner@targets.example", "Owner").await;
    let (org, _) = create_org(&owner, "Targets", "targets").await;
    let r = owner
        .send(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}/llm/policy"),
            Some(json!({ "allow_user_keys": true })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let provider = format!("/api/v1/orgs/{org}/llm/providers/local");
    let mine = format!("/api/v1/me/llm/providers/local?org={org}");

    for url in LOCAL {
        let r = owner
            .put(&provider, json!({"base_url": url, "key_required": false}))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url}: {}", r.text);
        assert_eq!(r.code(), "validation_failed");
        let why = r.body["error"]["fields"]["base_url"].as_str().unwrap_or("");
        assert!(why.contains("--allow-private-targets"), "{url}: {}", r.text);

        let r = owner
            .put(
                &mine,
                json!({"api_key": "sk-mine-0000-1111", "base_url": url}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url}: {}", r.text);
        assert!(
            r.body["error"]["fields"]["base_url"].is_string(),
            "{}",
            r.text
        );
        assert!(!r.text.contains("sk-mine-0000-1111"));

        let r = owner
            .send(
                Method::PATCH,
                &format!("/api/v1/orgs/{org}/quota"),
                Some(json!({"webhook_url": url})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url}: {}", r.text);
        assert!(
            r.body["error"]["fields"]["webhook_url"].is_string(),
            "{}",
            r.text
        );
    }
    // Nothing was saved.
    let r = owner.get(&format!("/api/v1/orgs/{org}/llm")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(!r.text.contains("\"local\""), "{}", r.text);
    let r = owner.get(&format!("/api/v1/orgs/{org}/quota")).await;
    assert!(r.body["webhook_url"].is_null(), "{}", r.text);

    // A public address is saved as before.
    let r = owner
        .put(
            &provider,
            json!({"base_url": "https://8.8.8.8/v1", "key_required": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.stop().await;

    // With the instance setting on, the same local addresses are accepted.
    let app = TestApp::spawn_with(|c| c.targets = TargetPolicy::AllowPrivate).await;
    let (_, owner) = new_person(&app, "owner@targets.example", "Owner").await;
    let (org, _) = create_org(&owner, "Targets", "targets").await;
    for url in LOCAL {
        let r = owner
            .put(
                &format!("/api/v1/orgs/{org}/llm/providers/local"),
                json!({"base_url": url, "key_required": false}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.text);
    }
    app.stop().await;
}
