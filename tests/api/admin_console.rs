//! The instance console's API: only signed-in superusers reach it, every change is in
//! the instance chain, and what it changes takes effect at once — plans and overrides for
//! limits, suspension on pages, API and gateway, disabled users everywhere, prices from
//! their moment on.
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::mock_llm::MockLlm;
use crate::common::*;
use crate::org_fixture::*;

fn raw_db(app: &TestApp) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(app.data_dir().join("xagent.db")).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

fn count(app: &TestApp, sql: &str) -> i64 {
    raw_db(app).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The instance chain's actions, newest first, as the console lists them.
async fn instance_actions(root: &Session) -> Vec<String> {
    let r = root.get("/api/v1/admin/audit?limit=200").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

struct Console {
    app: TestApp,
    root: Session,
    root_user: TestUser,
    owner: Session,
    owner_user: TestUser,
    org: String,
}

async fn console() -> Console {
    let app = TestApp::spawn().await;
    let root_user = app.create_superuser("root@console.example", "Root").await;
    let root = app.login("root@console.example").await;
    let (owner_user, owner) = new_person(&app, "owner@console.example", "Owner").await;
    let (org, _) = create_org(&owner, "Acme", "acme").await;
    Console {
        app,
        root,
        root_user,
        owner,
        owner_user,
        org,
    }
}

/// Every console route with a body that would change something if it were let through.
fn admin_routes(org: &str, user: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/api/v1/admin/organizations".into(), None),
        (
            Method::GET,
            format!("/api/v1/admin/organizations/{org}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/admin/organizations/{org}"),
            Some(json!({"status": "suspended", "suspend_reason": "x", "plan": "enterprise"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/admin/organizations/{org}"),
            Some(json!({"confirm": "acme"})),
        ),
        (
            Method::POST,
            format!("/api/v1/admin/organizations/{org}/enter"),
            Some(json!({"reason": "x"})),
        ),
        (Method::GET, "/api/v1/admin/users".into(), None),
        (Method::GET, format!("/api/v1/admin/users/{user}"), None),
        (
            Method::PATCH,
            format!("/api/v1/admin/users/{user}"),
            Some(json!({"superuser": true})),
        ),
        (
            Method::POST,
            format!("/api/v1/admin/users/{user}/sign-out"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/users/{user}/password-reset"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/users/{user}/reset-2fa"),
            None,
        ),
        (Method::GET, "/api/v1/admin/plans".into(), None),
        (
            Method::POST,
            "/api/v1/admin/plans".into(),
            Some(json!({"id": "sneaky", "name": "Sneaky"})),
        ),
        (
            Method::PATCH,
            "/api/v1/admin/plans/free".into(),
            Some(json!({"limits": {"agents": 100000}})),
        ),
        (Method::DELETE, "/api/v1/admin/plans/team".into(), None),
        (Method::GET, "/api/v1/admin/model-prices".into(), None),
        (
            Method::POST,
            "/api/v1/admin/model-prices".into(),
            Some(
                json!({"model": "m", "input_per_million_micros": 0, "output_per_million_micros": 0}),
            ),
        ),
        (Method::GET, "/api/v1/admin/settings".into(), None),
        (
            Method::PATCH,
            "/api/v1/admin/settings".into(),
            Some(json!({"signup_open": true, "default_plan": "enterprise"})),
        ),
        (
            Method::POST,
            "/api/v1/admin/settings/test-mail".into(),
            Some(json!({"to": "a@b.example"})),
        ),
        (Method::GET, "/api/v1/admin/audit".into(), None),
        (Method::GET, "/api/v1/admin/audit/export".into(), None),
    ]
}

/// What the console's refusals must leave as it was.
fn instance_state(app: &TestApp) -> Vec<i64> {
    vec![
        count(app, "SELECT COUNT(*) FROM instance_audit_logs"),
        count(
            app,
            "SELECT COUNT(*) FROM organizations WHERE status = 'active'",
        ),
        count(app, "SELECT COUNT(*) FROM users WHERE is_superuser = 1"),
        count(app, "SELECT COUNT(*) FROM plans"),
        count(app, "SELECT COUNT(*) FROM model_price_entries"),
        count(app, "SELECT COUNT(*) FROM instance_settings"),
        count(
            app,
            "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL",
        ),
        count(app, "SELECT COUNT(*) FROM password_resets"),
        count(app, "SELECT COUNT(*) FROM organization_members"),
        count(app, "SELECT COALESCE(SUM(max_agents), 0) FROM plans"),
    ]
}

#[tokio::test]
async fn every_admin_route_refuses_non_superusers_and_tokens_and_changes_nothing() {
    let c = console().await;
    let (_, root_token) = token_for(&c.app, &c.root, &c.root_user.personal_org, "root").await;
    let (_, owner_token) = token_for(&c.app, &c.owner, &c.org, "owner").await;
    let before = instance_state(&c.app);
    let routes = admin_routes(&c.org, &c.owner_user.id);
    assert!(routes.len() >= 20);
    for (method, path, body) in &routes {
        // An owner's session, an owner's token, and even a superuser's token.
        for (who, r) in [
            (
                "owner session",
                c.owner.send(method.clone(), path, body.clone()).await,
            ),
            (
                "owner token",
                owner_token.send(method.clone(), path, body.clone()).await,
            ),
            (
                "superuser token",
                root_token.send(method.clone(), path, body.clone()).await,
            ),
        ] {
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{who} {method} {path}: {}",
                r.text
            );
            assert_eq!(r.code(), "superuser_required", "{who} {method} {path}");
            assert!(
                !r.text.contains("acme\""),
                "{who} {method} {path} leaked: {}",
                r.text
            );
        }
        // Without any credentials: 401.
        let anon = reply(
            reqwest::Client::new()
                .request(method.clone(), c.app.url(path))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(anon.status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    assert_eq!(
        instance_state(&c.app),
        before,
        "a refused request changed something"
    );
    // The superuser's session reaches every one of them (none is 403).
    for (method, path, _) in &routes {
        if *method == Method::GET {
            let r = c.root.get(path).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        }
    }
    // A superuser whose flag is taken away is refused on the next request.
    let second = c
        .app
        .create_superuser("second@console.example", "Second")
        .await;
    let second_s = c.app.login("second@console.example").await;
    assert_eq!(
        second_s.get("/api/v1/admin/users").await.status,
        StatusCode::OK
    );
    let r = c
        .root
        .send(
            Method::PATCH,
            &format!("/api/v1/admin/users/{}", second.id),
            Some(json!({"superuser": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        second_s.get("/api/v1/admin/users").await.code(),
        "superuser_required"
    );
}

#[tokio::test]
async fn raising_the_plan_and_overriding_one_limit_take_effect_at_once() {
    let c = console().await;
    let agents = c.owner_path("/agents");
    for i in 0..10 {
        let r = c
            .owner
            .post(&agents, json!({"name": format!("a{i}")}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let r = c.owner.post(&agents, json!({"name": "eleventh"})).await;
    assert_eq!(r.code(), "plan_limit", "{}", r.text);
    // An override of the agents limit alone.
    let r = c
        .root
        .send(
            Method::PATCH,
            &format!("/api/v1/admin/organizations/{}", c.org),
            Some(json!({"limits": {"agents": 11}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["limits"]["agents"], 11);
    assert_eq!(r.body["limits"]["workflows"], 10, "others follow the plan");
    assert_eq!(r.body["limit_overrides"], json!({"agents": 11}));
    let r = c.owner.post(&agents, json!({"name": "eleventh"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = c.owner.post(&agents, json!({"name": "twelfth"})).await;
    assert_eq!(r.code(), "plan_limit");
    // The override goes back to the plan; then the plan changes (fee from next period).
    let r = c
        .root
        .send(
            Method::PATCH,
            "/api/v1/admin/organizations/acme",
            Some(json!({"limits": {"agents": "plan"}, "plan": "team"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["plan"], "team");
    assert_eq!(r.body["limits"]["agents"], 200);
    assert_eq!(
        r.body["fee_plan"]["plan"], "free",
        "this period still pays the free fee"
    );
    let r = c.owner.post(&agents, json!({"name": "twelfth"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // The owner sees the new limits through the organization's own API.
    let r = c.owner.get(&c.owner_path("/limits")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["agents"]["max"], 200, "{}", r.text);
    assert_eq!(r.body["plan"], "team");
    // Apply now: no fee held back.
    let r = c
        .root
        .send(
            Method::PATCH,
            "/api/v1/admin/organizations/acme",
            Some(json!({"plan": "enterprise", "apply_now": true})),
        )
        .await;
    assert_eq!(r.body["fee_plan"], Value::Null, "{}", r.text);
    // Bad input: unknown plan, unknown limit, negative limit; nothing changes.
    for body in [
        json!({"plan": "nope"}),
        json!({"limits": {"cats": 1}}),
        json!({"limits": {"agents": -1}}),
        json!({"status": "gone"}),
        json!({"status": "suspended"}),
        json!({"plan": 7}),
    ] {
        let r = c
            .root
            .send(
                Method::PATCH,
                "/api/v1/admin/organizations/acme",
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
    }
    let r = c.root.get("/api/v1/admin/organizations/acme").await;
    assert_eq!(
        (r.body["plan"].as_str(), r.body["status"].as_str()),
        (Some("enterprise"), Some("active"))
    );
    let r = c.root.get("/api/v1/admin/organizations/no-such-org").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The list finds it by name and slug, with members and usage.
    let r = c.root.get("/api/v1/admin/organizations?q=ACM").await;
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", r.text);
    assert_eq!(items[0]["members"], 1);
    assert_eq!(items[0]["usage"]["requests"], 0);
    let actions = instance_actions(&c.root).await;
    for a in [
        "organization.limits_overridden",
        "organization.plan_changed",
    ] {
        assert!(actions.contains(&a.to_string()), "{a} missing: {actions:?}");
    }
}

impl Console {
    fn owner_path(&self, rest: &str) -> String {
        format!("/api/v1/orgs/{}{rest}", self.org)
    }
}

#[tokio::test]
async fn a_suspended_org_refuses_its_members_on_pages_api_and_gateway_and_not_their_other_orgs() {
    let mock = MockLlm::start().await;
    let c = console().await;
    let r = c
        .owner
        .put(
            &c.owner_path("/llm/providers/openai"),
            json!({"api_key": "sk-suspension-test-0000-KEY1", "base_url": mock.base}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (_, token) = token_for(&c.app, &c.owner, &c.org, "gw").await;
    let chat = json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]});
    let r = token
        .send(Method::POST, "/v1/chat/completions", Some(chat.clone()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = c
        .root
        .send(
            Method::PATCH,
            "/api/v1/admin/organizations/acme",
            Some(json!({"status": "suspended", "suspend_reason": "unpaid invoices since October"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "suspended");
    // API (session and token), gateway, page: 403 with the reason.
    let api = c.owner.get(&c.owner_path("/agents")).await;
    let by_token = token.get(&c.owner_path("/agents")).await;
    let gw = token
        .send(Method::POST, "/v1/chat/completions", Some(chat.clone()))
        .await;
    for (what, r) in [("api", &api), ("token", &by_token), ("gateway", &gw)] {
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {}", r.text);
        assert!(
            r.text.contains("organization_suspended"),
            "{what}: {}",
            r.text
        );
        assert!(
            r.text.contains("unpaid invoices since October"),
            "{what}: {}",
            r.text
        );
    }
    let page = c
        .owner
        .client
        .get(c.app.url("/o/acme"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    let html = page.text().await.unwrap();
    assert!(html.contains("unpaid invoices since October"), "{html}");
    // Writing is refused too, and nothing is written.
    let agents_before = count(&c.app, "SELECT COUNT(*) FROM agents");
    let r = c
        .owner
        .post(&c.owner_path("/agents"), json!({"name": "x"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(count(&c.app, "SELECT COUNT(*) FROM agents"), agents_before);
    // The same person's personal workspace is unaffected.
    let personal = format!("/api/v1/orgs/{}/agents", c.owner_user.personal_org);
    assert_eq!(c.owner.get(&personal).await.status, StatusCode::OK);
    // Someone who is no member still gets 404, not the reason.
    let (_, stranger) = new_person(&c.app, "stranger@console.example", "S").await;
    let r = stranger.get(&c.owner_path("/agents")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(!r.text.contains("unpaid"));
    // Reinstated: everything works again.
    let r = c
        .root
        .send(
            Method::PATCH,
            "/api/v1/admin/organizations/acme",
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!(r.body["suspend_reason"], Value::Null, "{}", r.text);
    assert_eq!(
        c.owner.get(&c.owner_path("/agents")).await.status,
        StatusCode::OK
    );
    let r = token
        .send(Method::POST, "/v1/chat/completions", Some(chat))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let actions = instance_actions(&c.root).await;
    assert!(actions.contains(&"organization.suspended".to_string()));
    assert!(actions.contains(&"organization.unsuspended".to_string()));
}

#[tokio::test]
async fn a_disabled_user_is_refused_everywhere_at_once_and_the_last_superuser_stays() {
    let c = console().await;
    let (_, token) = token_for(&c.app, &c.owner, &c.org, "t").await;
    assert_eq!(
        token.get(&c.owner_path("/agents")).await.status,
        StatusCode::OK
    );
    let path = format!("/api/v1/admin/users/{}", c.owner_user.id);
    let r = c
        .root
        .send(Method::PATCH, &path, Some(json!({"disabled": true})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "disabled");
    assert_eq!(
        r.body["organizations"].as_array().unwrap().len(),
        2,
        "{}",
        r.text
    );
    assert_eq!(
        c.owner.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        token.get(&c.owner_path("/agents")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        c.app
            .login_with("owner@console.example", PASSWORD)
            .await
            .is_err()
    );
    // Enabled again: signs in, but the old session and token stay ended.
    let r = c
        .root
        .send(Method::PATCH, &path, Some(json!({"disabled": false})))
        .await;
    assert_eq!(r.body["status"], "active");
    assert_eq!(
        c.owner.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        token.get(&c.owner_path("/agents")).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = c.app.login("owner@console.example").await;
    assert_eq!(again.get("/api/v1/me").await.status, StatusCode::OK);
    // Force sign-out ends that session.
    let r = c.root.post(&format!("{path}/sign-out"), json!({})).await;
    assert_eq!(r.body["sessions_ended"], 1, "{}", r.text);
    assert_eq!(
        again.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    // The last instance administrator can neither be disabled nor demoted.
    let root_path = format!("/api/v1/admin/users/{}", c.root_user.id);
    for body in [json!({"disabled": true}), json!({"superuser": false})] {
        let r = c.root.send(Method::PATCH, &root_path, Some(body)).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        assert_eq!(r.code(), "last_superuser");
    }
    // With a second one, the first may step down.
    let r = c
        .root
        .send(Method::PATCH, &path, Some(json!({"superuser": true})))
        .await;
    assert_eq!(r.body["is_superuser"], true);
    let r = c
        .root
        .send(Method::PATCH, &root_path, Some(json!({"superuser": false})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Unknown users are 404.
    for p in [
        "/api/v1/admin/users/not-an-id",
        "/api/v1/admin/users/0192f3a4-5b6c-7d8e-9f01-23456789abcd",
    ] {
        let owner_now = c.app.login("owner@console.example").await;
        assert_eq!(owner_now.get(p).await.status, StatusCode::NOT_FOUND, "{p}");
    }
    let r = c
        .app
        .login("owner@console.example")
        .await
        .get("/api/v1/admin/audit")
        .await;
    let actions: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "user.disabled",
        "user.enabled",
        "user.signed_out",
        "user.superuser_granted",
        "user.superuser_revoked",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
}

#[tokio::test]
async fn a_password_reset_link_works_once_and_ends_every_session() {
    let c = console().await;
    let r = c
        .root
        .post(
            &format!("/api/v1/admin/users/{}/password-reset", c.owner_user.id),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let url = r.body["url"].as_str().unwrap().to_string();
    let path = url
        .split_once("/reset-password/")
        .map(|(_, t)| format!("/reset-password/{t}"))
        .unwrap();
    // The audit row does not hold the link.
    let token = path.rsplit('/').next().unwrap();
    let audit = c
        .root
        .get("/api/v1/admin/audit?action=user.password_reset_issued")
        .await;
    assert_eq!(audit.body["items"].as_array().unwrap().len(), 1);
    assert!(!audit.text.contains(token));
    let anon = cookie_client();
    let page = anon.get(c.app.url(&path)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("owner@console.example"));
    // Too short a password: the form again, nothing used up.
    let r = anon
        .post(c.app.url(&path))
        .form(&[("password", "short")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = anon
        .post(c.app.url(&path))
        .form(&[("password", "a brand new passphrase")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("reset-done"));
    assert_eq!(
        c.owner.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        c.app
            .login_with("owner@console.example", PASSWORD)
            .await
            .is_err()
    );
    assert!(
        c.app
            .login_with("owner@console.example", "a brand new passphrase")
            .await
            .is_ok()
    );
    // Used: 404, and the password stays.
    let r = anon
        .post(c.app.url(&path))
        .form(&[("password", "another new passphrase")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        c.app
            .login_with("owner@console.example", "a brand new passphrase")
            .await
            .is_ok()
    );
    let r = anon
        .get(c.app.url("/reset-password/forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn plans_are_created_edited_and_removed_and_the_default_plan_is_used_for_new_orgs() {
    let c = console().await;
    let r = c
        .root
        .post(
            "/api/v1/admin/plans",
            json!({"name": "Team Plus", "monthly_fee_micros": 99_000_000,
                   "limits": {"agents": 3, "members": 50, "rate_limit_rpm": 600}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["id"], "team-plus");
    assert_eq!(
        r.body["limits"]["workflows"],
        Value::Null,
        "absent is unlimited"
    );
    let again = c
        .root
        .post("/api/v1/admin/plans", json!({"name": "Team Plus"}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    for bad in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "x", "limits": {"agents": -2}}),
        json!({"name": "x", "id": "Bad Id"}),
        json!({"name": "x", "limits": {"cats": 1}}),
    ] {
        let r = c.root.post("/api/v1/admin/plans", bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }
    let r = c
        .root
        .send(
            Method::PATCH,
            "/api/v1/admin/settings",
            Some(json!({"default_plan": "team-plus", "signup_open": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (
            r.body["default_plan"].as_str(),
            r.body["signup_open"].as_bool()
        ),
        (Some("team-plus"), Some(true))
    );
    // New organizations and personal workspaces start on it.
    let (newcomer, s) = new_person(&c.app, "new@console.example", "New").await;
    let r = c
        .root
        .get(&format!(
            "/api/v1/admin/organizations/{}",
            newcomer.personal_org
        ))
        .await;
    assert_eq!(r.body["plan"], "team-plus", "{}", r.text);
    let (org, _) = create_org(&s, "Fresh", "fresh").await;
    let r = c
        .root
        .get(&format!("/api/v1/admin/organizations/{org}"))
        .await;
    assert_eq!(r.body["plan"], "team-plus");
    // Its limits apply: three agents.
    for i in 0..3 {
        let r = s
            .post(
                &format!("/api/v1/orgs/{org}/agents"),
                json!({"name": format!("a{i}")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let r = s
        .post(&format!("/api/v1/orgs/{org}/agents"), json!({"name": "a4"}))
        .await;
    assert_eq!(r.code(), "plan_limit");
    // Raising the plan's limit raises it for the org at once.
    let r = c
        .root
        .send(
            Method::PATCH,
            "/api/v1/admin/plans/team-plus",
            Some(json!({"limits": {"agents": 4, "members": 50}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["organizations"], 2);
    let r = s
        .post(&format!("/api/v1/orgs/{org}/agents"), json!({"name": "a4"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // A plan in use, or the default, is not removed.
    let r = c.root.delete("/api/v1/admin/plans/team-plus").await;
    assert_eq!(r.code(), "plan_in_use", "{}", r.text);
    let r = c
        .root
        .post(
            "/api/v1/admin/plans",
            json!({"id": "spare", "name": "Spare"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = c.root.delete("/api/v1/admin/plans/spare").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        c.root.delete("/api/v1/admin/plans/spare").await.status,
        StatusCode::NOT_FOUND
    );
    // An owner still cannot pick a non-default plan for a new organization.
    let r = s
        .post(
            "/api/v1/orgs",
            json!({"name": "Rich", "plan": "enterprise"}),
        )
        .await;
    assert_eq!(r.code(), "plan_requires_admin");
    let actions = instance_actions(&c.root).await;
    for a in [
        "plan.created",
        "plan.updated",
        "plan.deleted",
        "instance.default_plan_changed",
        "instance.signup_changed",
    ] {
        assert!(actions.contains(&a.to_string()), "{a}: {actions:?}");
    }
}

/// (cost, model) of each usage event of the org, oldest first, once `n` are there.
async fn costs(app: &TestApp, org: &str, n: usize) -> Vec<i64> {
    for _ in 0..200 {
        let db = raw_db(app);
        let mut st = db
            .prepare("SELECT cost_micros FROM usage_events WHERE organization_id = ?1 ORDER BY created_at, id")
            .unwrap();
        let got: Vec<i64> = st
            .query_map([org], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("usage events did not arrive");
}

#[tokio::test]
async fn a_price_applies_from_its_moment_on_and_past_usage_keeps_its_price() {
    let mock = MockLlm::start().await;
    let c = console().await;
    let r = c
        .owner
        .put(
            &c.owner_path("/llm/providers/openai"),
            json!({"api_key": "sk-price-test-0000-KEY2", "base_url": mock.base}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (_, token) = token_for(&c.app, &c.owner, &c.org, "gw").await;
    let chat = json!({"model": "price-test", "messages": [{"role": "user", "content": "hi"}]});
    // $1 per million tokens either way from 2020; the mock answers 11 + 7 tokens.
    let r = c
        .root
        .post(
            "/api/v1/admin/model-prices",
            json!({"model": "price-test", "input_per_million_micros": 1_000_000,
                   "output_per_million_micros": 1_000_000, "effective_from": "2020-01-01"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let first_price = r.body["id"].as_str().unwrap().to_string();
    // A price far in the future does not apply yet.
    let r = c
        .root
        .post(
            "/api/v1/admin/model-prices",
            json!({"model": "price-test", "provider": "openai", "input_per_million_micros": 900_000_000,
                   "output_per_million_micros": 900_000_000, "effective_from": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = token
        .send(Method::POST, "/v1/chat/completions", Some(chat.clone()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(costs(&c.app, &c.org, 1).await, vec![18]);
    // A new price from now on, for this provider: the next call costs double.
    let r = c
        .root
        .post(
            "/api/v1/admin/model-prices",
            json!({"model": "price-test", "provider": "openai", "input_per_million_micros": 2_000_000,
                   "output_per_million_micros": 2_000_000}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = token
        .send(Method::POST, "/v1/chat/completions", Some(chat.clone()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(costs(&c.app, &c.org, 2).await, vec![18, 36]);
    // Editing the old price changes nothing already charged.
    let r = c
        .root
        .send(
            Method::PATCH,
            &format!("/api/v1/admin/model-prices/{first_price}"),
            Some(json!({"input_per_million_micros": 5_000_000})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(costs(&c.app, &c.org, 2).await, vec![18, 36]);
    // The same provider, model and moment twice is refused; bad input too.
    let r = c
        .root
        .post(
            "/api/v1/admin/model-prices",
            json!({"model": "price-test", "input_per_million_micros": 1, "output_per_million_micros": 1,
                   "effective_from": "2020-01-01"}),
        )
        .await;
    assert_eq!(r.code(), "price_exists", "{}", r.text);
    for bad in [
        json!({"model": "x"}),
        json!({"model": "x", "input_per_million_micros": -1, "output_per_million_micros": 1}),
        json!({"model": "x", "input_per_million_micros": 1, "output_per_million_micros": 1, "effective_from": "soon"}),
        json!({"model": "", "input_per_million_micros": 1, "output_per_million_micros": 1}),
    ] {
        let r = c.root.post("/api/v1/admin/model-prices", bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }
    let list = c.root.get("/api/v1/admin/model-prices").await;
    let ours: Vec<&Value> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["model"] == "price-test")
        .collect();
    assert_eq!(ours.len(), 3, "{}", list.text);
    let r = c
        .root
        .delete(&format!("/api/v1/admin/model-prices/{first_price}"))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        c.root
            .delete(&format!("/api/v1/admin/model-prices/{first_price}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // The starting prices of the earlier schema survived the migration.
    assert!(list.text.contains("\"gpt-4o-mini\""), "{}", list.text);
}

#[tokio::test]
async fn entering_an_org_is_explicit_visible_and_audited_in_its_own_log() {
    let c = console().await;
    // Before entering: the superuser is no member, so the org's API is 404 for them.
    assert_eq!(
        c.root.get(&c.owner_path("/agents")).await.status,
        StatusCode::NOT_FOUND
    );
    let r = c
        .root
        .post(
            "/api/v1/admin/organizations/acme/enter",
            json!({"reason": ""}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = c
        .root
        .post(
            "/api/v1/admin/organizations/acme/enter",
            json!({"reason": "support ticket 4711"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["role"], "admin");
    assert_eq!(
        c.root.get(&c.owner_path("/agents")).await.status,
        StatusCode::OK
    );
    let roles = member_roles(&c.owner, &c.org).await;
    assert!(
        roles
            .iter()
            .any(|(id, role)| *id == c.root_user.id && role == "admin"),
        "{roles:?}"
    );
    let rows = audit_rows(&c.owner, &c.org).await;
    let joined = rows
        .iter()
        .find(|r| r["action"] == "member.instance_admin_joined")
        .expect("audited in the org's chain");
    assert_eq!(joined["actor"]["email"], "root@console.example");
    assert_eq!(joined["details"]["reason"], "support ticket 4711");
    let r = c
        .root
        .post(
            "/api/v1/admin/organizations/acme/enter",
            json!({"reason": "again"}),
        )
        .await;
    assert_eq!(r.code(), "already_member");
    let personal = format!(
        "/api/v1/admin/organizations/{}/enter",
        c.owner_user.personal_org
    );
    let r = c.root.post(&personal, json!({"reason": "curious"})).await;
    assert_eq!(r.code(), "personal_organization", "{}", r.text);
    assert!(
        instance_actions(&c.root)
            .await
            .contains(&"organization.entered".to_string())
    );
}

#[tokio::test]
async fn deleting_an_org_needs_its_slug_typed_and_never_takes_a_personal_workspace() {
    let c = console().await;
    let path = format!("/api/v1/admin/organizations/{}", c.org);
    let r = c
        .root
        .send(Method::DELETE, &path, Some(json!({"confirm": "acm"})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = c.root.send(Method::DELETE, &path, Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        count(
            &c.app,
            "SELECT COUNT(*) FROM organizations WHERE slug = 'acme'"
        ),
        1
    );
    let personal = format!("/api/v1/admin/organizations/{}", c.owner_user.personal_org);
    let r = c
        .root
        .send(
            Method::DELETE,
            &personal,
            Some(json!({"confirm": c.owner_user.personal_slug})),
        )
        .await;
    assert_eq!(r.code(), "personal_organization");
    let r = c
        .root
        .send(Method::DELETE, &path, Some(json!({"confirm": "acme"})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        count(
            &c.app,
            "SELECT COUNT(*) FROM organizations WHERE slug = 'acme'"
        ),
        0
    );
    assert_eq!(
        c.owner.get(&c.owner_path("/agents")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.root
            .send(Method::DELETE, &path, Some(json!({"confirm": "acme"})))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_instance_audit_is_filtered_and_exported() {
    let c = console().await;
    let r = c
        .root
        .send(
            Method::PATCH,
            "/api/v1/admin/settings",
            Some(json!({"signup_open": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = c
        .root
        .get("/api/v1/admin/audit?action=instance.signup_changed")
        .await;
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", r.text);
    assert_eq!(items[0]["actor"]["email"], "root@console.example");
    let r = c
        .root
        .get("/api/v1/admin/audit?action=member.invited")
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "organization actions are not in this chain"
    );
    let r = c.root.get("/api/v1/admin/audit?since=yesterday").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let csv = c
        .root
        .get("/api/v1/admin/audit/export?format=csv&action=user.created")
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    let lines: Vec<&str> = csv.text.lines().collect();
    assert!(lines[0].starts_with("id,at,actor_id"), "{}", csv.text);
    assert_eq!(lines.len(), 1 + 2, "two users were created: {}", csv.text);
    let nd = c.root.get("/api/v1/admin/audit/export").await;
    assert!(nd.text.lines().count() >= 4, "{}", nd.text);
    // A test mail without SMTP says so.
    let r = c
        .root
        .post(
            "/api/v1/admin/settings/test-mail",
            json!({"to": "x@y.example"}),
        )
        .await;
    assert_eq!(r.code(), "smtp_not_configured", "{}", r.text);
}

/// The plan line of each invoice of the org, by period, oldest first.
async fn plan_fees(s: &Session, org: &str) -> Vec<(String, Option<Value>)> {
    let list = s.get(&format!("/api/v1/orgs/{org}/invoices")).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let mut out: Vec<(String, Option<Value>)> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|inv| {
            let plan = inv["line_items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["kind"] == "plan")
                .cloned();
            (inv["period"].as_str().unwrap().to_string(), plan)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn a_plan_change_charges_the_new_fee_from_the_next_period_unless_applied_now() {
    let mock = MockLlm::start().await;
    let clock = xagent::domain::Clock::default();
    let app = TestApp::spawn_with(|c| c.clock = clock.clone()).await;
    app.create_superuser("root@console.example", "Root").await;
    let root = app.login("root@console.example").await;
    let (_, owner) = new_person(&app, "owner@console.example", "Owner").await;
    let mut tokens = Vec::new();
    for (name, slug) in [("Later", "later"), ("Now", "now")] {
        let (org, _) = create_org(&owner, name, slug).await;
        let r = owner
            .put(
                &format!("/api/v1/orgs/{org}/llm/providers/openai"),
                json!({"api_key": "sk-fee-test-0000-KEY3", "base_url": mock.base}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        tokens.push((org.clone(), token_for(&app, &owner, &org, "gw").await.1));
    }
    let chat = json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]});
    let call = |t: &TokenClient| {
        let chat = chat.clone();
        let t = TokenClient::new(&t.base, &t.token);
        async move {
            let r = t
                .send(Method::POST, "/v1/chat/completions", Some(chat))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
    };
    for (_, t) in &tokens {
        call(t).await;
    }
    for (slug, apply_now) in [("later", false), ("now", true)] {
        let r = root
            .send(
                Method::PATCH,
                &format!("/api/v1/admin/organizations/{slug}"),
                Some(json!({"plan": "team", "apply_now": apply_now})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    // Wait for the calls to be metered, then the next period, with a call in it too.
    for (org, _) in &tokens {
        costs(&app, org, 1).await;
    }
    clock.advance(Duration::from_secs(35 * 24 * 3600));
    for (org, t) in &tokens {
        call(t).await;
        costs(&app, org, 2).await;
    }
    clock.advance(Duration::from_secs(35 * 24 * 3600));
    let issued = xagent::services::invoices::close_periods(&app.svc, clock.now())
        .await
        .unwrap();
    assert_eq!(issued, 4, "two periods of two organizations");
    let owner = app.login("owner@console.example").await;
    let later = plan_fees(&owner, &tokens[0].0).await;
    let now = plan_fees(&owner, &tokens[1].0).await;
    assert_eq!(later.len(), 2);
    assert!(
        later[0].1.is_none(),
        "the first period keeps the free plan's (no) fee: {later:?}"
    );
    let team_fee = |line: &Option<Value>| {
        line.as_ref()
            .map(|l| (l["description"].clone(), l["amount_micros"].clone()))
    };
    assert_eq!(
        team_fee(&later[1].1),
        Some((json!("Team plan"), json!(49_000_000)))
    );
    assert_eq!(
        team_fee(&now[0].1),
        Some((json!("Team plan"), json!(49_000_000))),
        "{now:?}"
    );
    assert_eq!(
        team_fee(&now[1].1),
        Some((json!("Team plan"), json!(49_000_000)))
    );
}

#[tokio::test]
async fn a_superuser_downloads_a_consistent_backup_and_nobody_else_can() {
    let c = console().await;
    let r = c
        .owner
        .client
        .get(c.app.url("/admin/backup"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .root
        .client
        .get(c.app.url("/admin/backup"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.contains("xagent-") && disposition.ends_with(".db\""),
        "{disposition}"
    );
    let gzipped = r
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let raw = r.bytes().await.unwrap();
    let bytes = if gzipped {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out).unwrap();
        out
    } else {
        raw.to_vec()
    };
    assert!(bytes.starts_with(b"SQLite format 3\0"), "not a database");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.db");
    std::fs::write(&path, &bytes).unwrap();
    let copy = rusqlite::Connection::open(&path).unwrap();
    let ok: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let n: i64 = copy
        .query_row(
            "SELECT COUNT(*) FROM organizations WHERE slug = 'acme'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    // Nothing is left in the data directory, and the download is audited.
    let left: Vec<String> = std::fs::read_dir(c.app.data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains("download"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(
        instance_actions(&c.root)
            .await
            .contains(&"instance.backup_downloaded".to_string())
    );
}
