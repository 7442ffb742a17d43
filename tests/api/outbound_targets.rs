//! The instance's outbound rule: with the default (public addresses only), a provider base
//! URL, a personal key's base URL or an alert webhook that names a private, loopback or
//! link-local address is refused when it is saved, as a field error.
use crate::common::TestApp;
use crate::common::mock_llm::MockLlm;
use crate::org_fixture::{create_org, new_person, token_for};
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

/// Counts the connections made to it; answers none of them.
async fn listener() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = l.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(conn);
        }
    });
    (format!("http://{addr}"), count)
}

#[tokio::test]
async fn addresses_saved_while_private_targets_were_allowed_are_refused_when_connecting() {
    let mock = MockLlm::start().await;
    let (hook, hook_hits) = listener().await;
    // Saved while the instance allowed private targets.
    let app = TestApp::spawn().await;
    let (_, owner) = new_person(&app, "owner@connect.example", "Owner").await;
    let (org, _) = create_org(&owner, "Connect", "connect").await;
    let r = owner
        .put(
            &format!("/api/v1/orgs/{org}/llm/providers/local"),
            json!({"base_url": mock.base, "key_required": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = owner
        .send(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}/quota"),
            Some(
                json!({"monthly_credits_micros": 40, "alert_thresholds": [10],
                        "webhook_url": format!("{hook}/hook")}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let dir = app.stop().await;

    // The same data under the default policy; the operator's own provider stays reachable.
    let app = TestApp::spawn_in(dir, |c| {
        c.targets = TargetPolicy::PublicOnly;
        c.webhook_tick = std::time::Duration::from_millis(50);
        c.env_providers.insert(
            "operator".into(),
            xagent::config::EnvProvider {
                api_key: Some(xagent::config::Secret::new("sk-operator-0000-1111")),
                base_url: Some(mock.base.clone()),
            },
        );
    })
    .await;
    let owner = app.login("owner@connect.example").await;
    let (_, token) = token_for(&app, &owner, &org, "connect").await;
    rusqlite::Connection::open(app.data_dir().join("xagent.db"))
        .unwrap()
        .execute(
            "INSERT OR REPLACE INTO model_price_entries (id, provider, model, input_micros_per_mtok, output_micros_per_mtok, effective_from, created_at, updated_at) VALUES (lower(hex(randomblob(16))), '', 'gpt-test', 150000, 600000, '2000-01-01T00:00:00.000000Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            [],
        )
        .unwrap();

    let r = token
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(
                json!({"model": "local/gpt-test", "max_tokens": 7, "messages": [{"role": "user", "content": "hi"}]}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::FAILED_DEPENDENCY, "{}", r.text);
    assert_eq!(r.code(), "provider_address_not_allowed");
    assert!(r.text.contains("127.0.0.1"), "{}", r.text);
    assert!(mock.requests().is_empty(), "the provider was called");

    let r = owner
        .post(
            &format!("/api/v1/orgs/{org}/llm/providers/local/test"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["ok"], false, "{}", r.text);
    let message = r.body["message"].as_str().unwrap_or("");
    assert!(message.contains("not a public address"), "{}", r.text);
    assert!(mock.requests().is_empty(), "the provider was called");

    // The operator's provider is called; its spending fires the alert, whose webhook
    // (an organization's address) is refused at delivery and says why.
    let r = token
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(json!({"model": "operator/gpt-test", "max_tokens": 7, "messages": [{"role": "user", "content": "hi"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(mock.requests().len(), 1);
    let path = format!("/api/v1/orgs/{org}/quota/webhook-deliveries");
    let mut last = serde_json::Value::Null;
    for _ in 0..100 {
        last = owner.get(&path).await.body;
        if last["items"][0]["attempts"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let d = &last["items"][0];
    assert_ne!(d["status"], "delivered", "{last}");
    assert!(
        d["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("not a public address"),
        "{last}"
    );
    assert_eq!(
        hook_hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the webhook address was connected to"
    );
    app.stop().await;
}
