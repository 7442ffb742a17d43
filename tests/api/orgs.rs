//! Organizations: create, list, show; slugs; plans; audit of creation.
use reqwest::StatusCode;
use serde_json::json;
use xagent::db::repo::audit;

use crate::common::*;

#[tokio::test]
async fn creating_an_organization_makes_the_creator_owner_and_is_audited() {
    let app = TestApp::spawn().await;
    let ann = app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    let r = reply(
        s.client
            .post(s.url("/api/v1/orgs"))
            .header("x-csrf-token", &s.csrf)
            .header("user-agent", "org-test/1.0")
            .json(&json!({"name": "Acme Research"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["slug"], "acme-research");
    assert_eq!(r.body["kind"], "team");
    assert_eq!(r.body["plan"], "free");
    assert_eq!(r.body["role"], "owner");
    let id = r.body["id"].as_str().unwrap().to_string();

    let list = s.get("/api/v1/orgs").await;
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], ann.personal_org.as_str(), "personal first");
    assert!(
        items
            .iter()
            .any(|o| o["id"] == id.as_str() && o["role"] == "owner")
    );

    for r in [id.as_str(), "acme-research"] {
        let show = s.get(&format!("/api/v1/orgs/{r}")).await;
        assert_eq!(show.status, StatusCode::OK);
        assert_eq!(show.body["id"], id.as_str());
        assert!(
            show.body["permissions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == "org.delete")
        );
    }

    let ctx = xagent::services::orgs::context(
        &app.svc,
        xagent::domain::UserId::parse(&ann.id).unwrap(),
        id.clone(),
    )
    .await
    .unwrap();
    let rows = app
        .db
        .read(move |tx| audit::recent(tx, &ctx, 10))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.action, "organization.created");
    assert_eq!(row.actor_id.as_deref(), Some(ann.id.as_str()));
    assert_eq!(row.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(row.user_agent.as_deref(), Some("org-test/1.0"));
    assert_eq!(row.details["name"], "Acme Research");
}

#[tokio::test]
async fn slugs_are_validated_and_unique() {
    let app = TestApp::spawn().await;
    app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    assert_eq!(
        s.post("/api/v1/orgs", json!({"name": "A", "slug": "acme"}))
            .await
            .status,
        StatusCode::CREATED
    );
    let taken = s
        .post("/api/v1/orgs", json!({"name": "B", "slug": "acme"}))
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(taken.code(), "slug_taken");
    for bad in ["AC", "Acme", "-acme", "a_b", "admin"] {
        let r = s
            .post("/api/v1/orgs", json!({"name": "C", "slug": bad}))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.body["error"]["fields"]["slug"].is_string());
    }
    // A derived slug that is taken gets a suffix instead of failing.
    let derived = s.post("/api/v1/orgs", json!({"name": "Acme"})).await;
    assert_eq!(derived.status, StatusCode::CREATED);
    assert!(derived.body["slug"].as_str().unwrap().starts_with("acme-"));
    let empty = s.post("/api/v1/orgs", json!({"name": "   "})).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(empty.body["error"]["fields"]["name"].is_string());
}

#[tokio::test]
async fn only_instance_admins_choose_a_paid_plan() {
    let app = TestApp::spawn().await;
    app.create_user("ann@example.com", "Ann").await;
    app.create_superuser("root@example.com", "Root").await;
    let ann = app.login("ann@example.com").await;
    let r = ann
        .post("/api/v1/orgs", json!({"name": "Big", "plan": "enterprise"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "plan_requires_admin");
    let root = app.login("root@example.com").await;
    let r = root
        .post("/api/v1/orgs", json!({"name": "Big", "plan": "enterprise"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["plan"], "enterprise");
    let r = root
        .post("/api/v1/orgs", json!({"name": "Odd", "plan": "platinum"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    let app = TestApp::spawn_with(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    let ann = app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    let r = reply(
        s.client
            .post(s.url("/api/v1/orgs"))
            .header("x-csrf-token", &s.csrf)
            // The client claims 10.9.9.9; the proxy (127.0.0.1, trusted) appended 203.0.113.7.
            .header("x-forwarded-for", "10.9.9.9, 203.0.113.7")
            .json(&json!({"name": "Proxied"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["id"].as_str().unwrap().to_string();
    let ctx = xagent::services::orgs::context(
        &app.svc,
        xagent::domain::UserId::parse(&ann.id).unwrap(),
        id,
    )
    .await
    .unwrap();
    let rows = app
        .db
        .read(move |tx| audit::recent(tx, &ctx, 1))
        .await
        .unwrap();
    assert_eq!(
        rows[0].ip.as_deref(),
        Some("203.0.113.7"),
        "the right-most untrusted address"
    );
}
