//! Another organization's data is 404, and lists hold nothing of it. Every endpoint of
//! the identity and organization API is tried with another user's ids.
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

struct World {
    app: TestApp,
    ann: TestUser,
    bob: Session,
    ann_s: Session,
    ann_team_org: String,
    ann_token_id: String,
    ann_session_id: String,
}

async fn world() -> World {
    let app = TestApp::spawn().await;
    let ann = app.create_user("ann@example.com", "Ann Secret-Name").await;
    app.create_user("bob@example.com", "Bob").await;
    let ann_s = app.login("ann@example.com").await;
    let team = ann_s
        .post(
            "/api/v1/orgs",
            json!({"name": "Ann Hidden Corp", "slug": "ann-hidden"}),
        )
        .await;
    let token = ann_s
        .post(
            "/api/v1/me/tokens",
            json!({"name": "ann-ci-token", "organization_id": ann.personal_org}),
        )
        .await;
    let sessions = ann_s.get("/api/v1/me/sessions").await;
    let bob = app.login("bob@example.com").await;
    World {
        ann_team_org: team.body["id"].as_str().unwrap().to_string(),
        ann_token_id: token.body["id"].as_str().unwrap().to_string(),
        ann_session_id: sessions.body["items"][0]["id"]
            .as_str()
            .unwrap()
            .to_string(),
        app,
        ann,
        bob,
        ann_s,
    }
}

fn assert_no_trace(text: &str, w: &World) {
    for secret in [
        w.ann.id.as_str(),
        w.ann.personal_org.as_str(),
        w.ann_team_org.as_str(),
        w.ann_token_id.as_str(),
        w.ann_session_id.as_str(),
        "Ann Secret-Name",
        "Ann Hidden Corp",
        "ann-ci-token",
        "ann@example.com",
    ] {
        assert!(!text.contains(secret), "leaked {secret:?} in {text}");
    }
}

#[tokio::test]
async fn another_users_organizations_are_not_found_by_id_or_slug() {
    let w = world().await;
    for r in [
        w.ann.personal_org.clone(),
        w.ann.personal_slug.clone(),
        w.ann_team_org.clone(),
        "ann-hidden".to_string(),
    ] {
        let res = w.bob.get(&format!("/api/v1/orgs/{r}")).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{r}");
        assert_no_trace(&res.text, &w);
        // The answer is the same as for an organization that does not exist.
        let missing = w.bob.get("/api/v1/orgs/no-such-org").await;
        assert_eq!(res.body, missing.body);

        let switch = w
            .bob
            .put(
                "/api/v1/me/current-organization",
                json!({"organization_id": r}),
            )
            .await;
        assert_eq!(switch.status, StatusCode::NOT_FOUND);
        let token = w
            .bob
            .post(
                "/api/v1/me/tokens",
                json!({"name": "x", "organization_id": r}),
            )
            .await;
        assert_eq!(token.status, StatusCode::NOT_FOUND);
        assert_no_trace(&token.text, &w);
    }
}

#[tokio::test]
async fn another_users_tokens_and_sessions_cannot_be_seen_or_revoked() {
    let w = world().await;
    let del = w
        .bob
        .delete(&format!("/api/v1/me/tokens/{}", w.ann_token_id))
        .await;
    assert_eq!(del.status, StatusCode::NOT_FOUND);
    let del = w
        .bob
        .delete(&format!("/api/v1/me/sessions/{}", w.ann_session_id))
        .await;
    assert_eq!(del.status, StatusCode::NOT_FOUND);
    // Ann's credentials still work.
    assert_eq!(w.ann_s.get("/api/v1/me").await.status, StatusCode::OK);
    assert_eq!(
        w.ann_s.get("/api/v1/me/tokens").await.body["items"][0]["revoked_at"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn lists_contain_nothing_of_another_user() {
    let w = world().await;
    for path in [
        "/api/v1/me",
        "/api/v1/orgs",
        "/api/v1/me/tokens",
        "/api/v1/me/sessions",
    ] {
        let res = w.bob.get(path).await;
        assert_eq!(res.status, StatusCode::OK, "{path}");
        assert_no_trace(&res.text, &w);
    }
    let orgs = w.bob.get("/api/v1/orgs").await;
    assert_eq!(orgs.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_token_of_one_organization_cannot_reach_another() {
    let w = world().await;
    let bob_me = w.bob.get("/api/v1/me").await;
    let bob_org = bob_me.body["current_organization_id"]
        .as_str()
        .unwrap()
        .to_string();
    let t = w
        .bob
        .post(
            "/api/v1/me/tokens",
            json!({"name": "bob", "organization_id": bob_org}),
        )
        .await;
    let client = TokenClient::new(&w.app.base, t.body["token"].as_str().unwrap());
    for r in [&w.ann.personal_org, &w.ann_team_org] {
        let res = client.get(&format!("/api/v1/orgs/{r}")).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
    }
    let res = client
        .send(
            Method::DELETE,
            &format!("/api/v1/me/tokens/{}", w.ann_token_id),
            None,
        )
        .await;
    assert_ne!(res.status, StatusCode::NO_CONTENT);
    assert_no_trace(&client.get("/api/v1/me").await.text, &w);
}

#[tokio::test]
async fn pages_of_another_organization_are_not_found() {
    let w = world().await;
    for r in [
        &w.ann.personal_slug,
        &"ann-hidden".to_string(),
        &w.ann_team_org,
    ] {
        let res = reply(
            w.bob
                .client
                .get(w.bob.url(&format!("/o/{r}")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
        assert!(res.text.contains("<html"));
        assert_no_trace(&res.text, &w);
    }
    let own = reply(
        w.bob
            .client
            .get(w.bob.url("/account"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(own.status, StatusCode::OK);
    assert_no_trace(&own.text, &w);
}
