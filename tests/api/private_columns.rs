//! Columns that are secret or internal never reach the API's JSON: a session's CSRF token
//! and user, a password hash, an API token's hash and owner, an invitation's token hash
//! and organization. Each answer's keys are compared with the documented set, so a column
//! added to a table stays out until it is added to the response on purpose.
use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn set<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
    names.iter().copied().collect()
}

fn raw_db(app: &TestApp) -> rusqlite::Connection {
    rusqlite::Connection::open(app.data_dir().join("xagent.db")).unwrap()
}

#[tokio::test]
async fn secret_and_internal_columns_stay_out_of_the_json() {
    let app = TestApp::spawn().await;
    let ann = app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    let db = raw_db(&app);
    let hash: String = db
        .query_row(
            "SELECT password_hash FROM users WHERE id = ?1",
            [&ann.id],
            |r| r.get(0),
        )
        .unwrap();

    let user_keys = set(&[
        "id",
        "email",
        "name",
        "is_superuser",
        "status",
        "created_at",
    ]);
    assert_eq!(keys(&s.login["user"]), user_keys);
    let me = s.get("/api/v1/me").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(keys(&me.body["user"]), user_keys);
    assert!(!me.text.contains(&hash));
    assert!(!me.text.contains("password"));

    let sessions = s.get("/api/v1/me/sessions").await;
    assert_eq!(sessions.status, StatusCode::OK);
    assert_eq!(
        keys(&sessions.body["items"][0]),
        set(&[
            "id",
            "created_at",
            "last_seen_at",
            "expires_at",
            "ip",
            "user_agent",
            "current"
        ])
    );
    assert!(!sessions.text.contains(&s.csrf));
    assert!(!sessions.text.contains(&ann.id));

    let created = s
        .post(
            "/api/v1/me/tokens",
            json!({"name": "ci", "organization_id": ann.personal_org}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let secret = created.body["token"].as_str().unwrap().to_string();
    let token_keys = [
        "id",
        "organization_id",
        "name",
        "token_hint",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ];
    let mut with_secret = set(&token_keys);
    with_secret.insert("token");
    assert_eq!(keys(&created.body), with_secret);
    let token_hash: String = db
        .query_row("SELECT token_hash FROM api_tokens", [], |r| r.get(0))
        .unwrap();
    let tokens = s.get("/api/v1/me/tokens").await;
    assert_eq!(keys(&tokens.body["items"][0]), set(&token_keys));
    for text in [&created.text, &tokens.text] {
        assert!(!text.contains(&token_hash));
        assert!(!text.contains(&ann.id));
    }
    assert!(!tokens.text.contains(&secret));

    let org = s
        .post("/api/v1/orgs", json!({"name": "Team", "slug": "team"}))
        .await;
    assert_eq!(org.status, StatusCode::CREATED);
    let org = org.body["id"].as_str().unwrap().to_string();
    let inv = s
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": "bob@example.com", "role": "member"}),
        )
        .await;
    assert_eq!(inv.status, StatusCode::CREATED);
    let invite_token = inv.body["token"].as_str().unwrap().to_string();
    let invite_hash: String = db
        .query_row("SELECT token_hash FROM organization_invitations", [], |r| {
            r.get(0)
        })
        .unwrap();
    let pending = s.get(&format!("/api/v1/orgs/{org}/invitations")).await;
    assert_eq!(
        keys(&pending.body["items"][0]),
        set(&[
            "id",
            "email",
            "role",
            "invited_by",
            "created_at",
            "expires_at"
        ])
    );
    for text in [&inv.text, &pending.text] {
        assert!(!text.contains(&invite_hash));
        assert!(!text.contains(&org));
    }
    assert!(!pending.text.contains(&invite_token));
}
