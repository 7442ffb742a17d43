//! Sign-in, sessions, API tokens, the current organization, sign-up.
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use xagent::db::repo::audit;

use crate::common::*;

async fn instance_audit(app: &TestApp) -> Vec<audit::Record> {
    app.db
        .read(|tx| audit::recent_instance(tx, 100))
        .await
        .unwrap()
}

#[tokio::test]
async fn login_returns_the_user_organizations_csrf_token_and_a_safe_cookie() {
    let app = TestApp::spawn().await;
    let ann = app.create_user("ann@example.com", "Ann").await;
    let client = cookie_client();
    let res = client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "ANN@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("xagent_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/")
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["email"], "ann@example.com");
    assert_eq!(body["user"]["id"], ann.id.as_str());
    assert!(body["user"].get("password_hash").is_none());
    assert_eq!(body["current_organization_id"], ann.personal_org.as_str());
    let orgs = body["organizations"].as_array().unwrap();
    assert_eq!(orgs.len(), 1);
    assert_eq!(orgs[0]["kind"], "personal");
    assert_eq!(orgs[0]["role"], "owner");
    assert_eq!(body["csrf_token"].as_str().unwrap().len(), 43);
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer_and_are_audited() {
    let app = TestApp::spawn().await;
    app.create_user("ann@example.com", "Ann").await;
    let (s1, b1) = app
        .login_with("nobody@example.com", PASSWORD)
        .await
        .err()
        .unwrap();
    let (s2, b2) = app
        .login_with("ann@example.com", "wrong password!")
        .await
        .err()
        .unwrap();
    assert_eq!(s1, StatusCode::UNAUTHORIZED);
    assert_eq!(s2, StatusCode::UNAUTHORIZED);
    assert_eq!(b1, b2);
    assert_eq!(b1["error"]["code"], "invalid_credentials");
    let log = instance_audit(&app).await;
    let failures: Vec<_> = log
        .iter()
        .filter(|r| r.action == "auth.login_failed")
        .collect();
    assert_eq!(failures.len(), 2);
    assert!(
        failures
            .iter()
            .all(|r| r.ip.as_deref() == Some("127.0.0.1"))
    );
    assert!(
        failures
            .iter()
            .any(|r| r.details["reason"] == "unknown_email")
    );
    assert!(
        failures
            .iter()
            .any(|r| r.details["reason"] == "wrong_password")
    );
    // The password typed is never recorded.
    assert!(
        !log.iter()
            .any(|r| r.details.to_string().contains("wrong password!"))
    );
}

#[tokio::test]
async fn repeated_failures_are_throttled_per_account_with_retry_after() {
    let app = TestApp::spawn_with(|c| c.login_max_failures_per_account = 3).await;
    app.create_user("ann@example.com", "Ann").await;
    for _ in 0..3 {
        let (s, _) = app
            .login_with("ann@example.com", "not the password")
            .await
            .err()
            .unwrap();
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // Even the right password is refused while the account is throttled.
    let client = cookie_client();
    let res = client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "ann@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry));
    assert_eq!(reply(res).await.code(), "rate_limited");
    assert!(
        instance_audit(&app)
            .await
            .iter()
            .any(|r| r.details["reason"] == "throttled")
    );
}

#[tokio::test]
async fn repeated_failures_from_one_ip_are_throttled_across_accounts() {
    let app = TestApp::spawn_with(|c| c.login_max_failures_per_ip = 2).await;
    app.create_user("ann@example.com", "Ann").await;
    app.login_with("x@example.com", "whatever1")
        .await
        .err()
        .unwrap();
    app.login_with("y@example.com", "whatever1")
        .await
        .err()
        .unwrap();
    let (s, _) = app
        .login_with("ann@example.com", PASSWORD)
        .await
        .err()
        .unwrap();
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn me_lists_memberships_and_logout_ends_the_session() {
    let app = TestApp::spawn().await;
    let ann = app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    let me = s.get("/api/v1/me").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["user"]["id"], ann.id.as_str());
    assert_eq!(
        me.body["memberships"][0]["organization"]["id"],
        ann.personal_org.as_str()
    );
    assert_eq!(me.body["memberships"][0]["role"], "owner");
    assert_eq!(
        me.body["current_organization_id"],
        ann.personal_org.as_str()
    );

    let out = s.post("/api/v1/auth/logout", json!({})).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(s.get("/api/v1/me").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_copied_cookie_is_useless_after_logout() {
    let app = TestApp::spawn().await;
    app.create_user("ann@example.com", "Ann").await;
    let client = cookie_client();
    let res = client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "ann@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let set = res.headers()["set-cookie"].to_str().unwrap().to_string();
    let pair = set.split(';').next().unwrap().to_string();
    let csrf = res.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let replay = || {
        reqwest::Client::new()
            .get(app.url("/api/v1/me"))
            .header("cookie", pair.clone())
            .send()
    };
    assert_eq!(replay().await.unwrap().status(), StatusCode::OK);
    let out = client
        .post(app.url("/api/v1/auth/logout"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(replay().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn mutations_with_the_cookie_need_the_csrf_header() {
    let app = TestApp::spawn().await;
    let ann = app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    let body = json!({"name": "t", "organization_id": ann.personal_org});
    let missing = reply(
        s.client
            .post(s.url("/api/v1/me/tokens"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert_eq!(missing.code(), "csrf_failed");
    let wrong = reply(
        s.client
            .post(s.url("/api/v1/me/tokens"))
            .header("x-csrf-token", "x".repeat(43))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    // Nothing was created by the refused requests.
    assert_eq!(
        s.get("/api/v1/me/tokens").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        s.post("/api/v1/me/tokens", body).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn switching_the_current_organization_persists_and_needs_membership() {
    let app = TestApp::spawn().await;
    let ann = app.create_user("ann@example.com", "Ann").await;
    let bob = app.create_user("bob@example.com", "Bob").await;
    let s = app.login("ann@example.com").await;
    let org = s
        .post("/api/v1/orgs", json!({"name": "Acme Research"}))
        .await;
    assert_eq!(org.status, StatusCode::CREATED);
    let org_id = org.body["id"].as_str().unwrap().to_string();

    let r = s
        .put(
            "/api/v1/me/current-organization",
            json!({"organization_id": org_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["current_organization_id"], org_id.as_str());
    assert_eq!(
        s.get("/api/v1/me").await.body["current_organization_id"],
        org_id.as_str()
    );
    // Persisted: a new sign-in starts there.
    let again = app.login("ann@example.com").await;
    assert_eq!(again.login["current_organization_id"], org_id.as_str());

    for other in [
        bob.personal_org.as_str(),
        bob.personal_slug.as_str(),
        "not-an-org",
        "0190a0b0-0000-7000-8000-000000000000",
    ] {
        let r = s
            .put(
                "/api/v1/me/current-organization",
                json!({"organization_id": other}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{other}");
    }
    assert_eq!(
        s.get("/api/v1/me").await.body["current_organization_id"],
        org_id.as_str()
    );
    let _ = ann;
}

#[tokio::test]
async fn api_tokens_are_shown_once_act_in_one_organization_and_can_be_revoked() {
    let app = TestApp::spawn().await;
    let ann = app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    let second = s
        .post(
            "/api/v1/orgs",
            json!({"name": "Second", "slug": "second-org"}),
        )
        .await;
    let created = s
        .post(
            "/api/v1/me/tokens",
            json!({"name": "ci", "organization_id": ann.personal_org}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let secret = created.body["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("xa_"));
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["organization_id"], ann.personal_org.as_str());

    let list = s.get("/api/v1/me/tokens").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert!(!list.text.contains(&secret), "the list shows the secret");
    assert!(
        list.text.contains(&secret[secret.len() - 4..]),
        "hint missing"
    );

    let t = TokenClient::new(&app.base, &secret);
    let me = t.get("/api/v1/me").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        me.body["memberships"].as_array().unwrap().len(),
        1,
        "a token sees one org"
    );
    assert_eq!(
        t.get(&format!("/api/v1/orgs/{}", ann.personal_org))
            .await
            .status,
        StatusCode::OK
    );
    // The user's other organization is invisible to this token.
    let other = t
        .get(&format!(
            "/api/v1/orgs/{}",
            second.body["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(
        t.get("/api/v1/orgs").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A token cannot mint tokens or switch organizations.
    let mint = t
        .send(
            Method::POST,
            "/api/v1/me/tokens",
            Some(json!({"name": "x", "organization_id": ann.personal_org})),
        )
        .await;
    assert_eq!(mint.status, StatusCode::FORBIDDEN);
    assert_eq!(mint.code(), "session_required");

    // last_used_at is recorded.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listed = s.get("/api/v1/me/tokens").await;
    assert!(listed.body["items"][0]["last_used_at"].is_string());

    assert_eq!(
        s.delete(&format!("/api/v1/me/tokens/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(t.get("/api/v1/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.delete(&format!("/api/v1/me/tokens/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn token_expiry_is_validated_and_enforced() {
    let app = TestApp::spawn().await;
    let ann = app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    let past = s
        .post("/api/v1/me/tokens", json!({"name": "old", "organization_id": ann.personal_org, "expires_at": "2020-01-01T00:00:00Z"}))
        .await;
    assert_eq!(past.status, StatusCode::BAD_REQUEST);
    assert!(past.body["error"]["fields"]["expires_at"].is_string());
    let garbage = s
        .post(
            "/api/v1/me/tokens",
            json!({"name": "x", "organization_id": ann.personal_org, "expires_at": "tomorrow"}),
        )
        .await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);

    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let t = s
        .post("/api/v1/me/tokens", json!({"name": "short", "organization_id": ann.personal_org, "expires_at": soon.to_rfc3339()}))
        .await;
    assert_eq!(t.status, StatusCode::CREATED);
    let client = TokenClient::new(&app.base, t.body["token"].as_str().unwrap());
    assert_eq!(client.get("/api/v1/me").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(
        client.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    // Unknown and malformed tokens alike.
    assert_eq!(
        TokenClient::new(&app.base, "xa_nope")
            .get("/api/v1/me")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        TokenClient::new(&app.base, "garbage")
            .get("/api/v1/me")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn sessions_are_listed_and_revoking_one_signs_that_browser_out() {
    let app = TestApp::spawn().await;
    app.create_user("ann@example.com", "Ann").await;
    let laptop = app.login("ann@example.com").await;
    let phone = app.login("ann@example.com").await;
    let list = laptop.get("/api/v1/me/sessions").await;
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items.iter().filter(|i| i["current"] == true).count(), 1);
    assert!(!list.text.contains("token_hash") && !list.text.contains("csrf"));
    let phone_id = phone.get("/api/v1/me/sessions").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        laptop
            .delete(&format!("/api/v1/me/sessions/{phone_id}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        phone.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(laptop.get("/api/v1/me").await.status, StatusCode::OK);
    assert_eq!(
        laptop.get("/api/v1/me/sessions").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        instance_audit(&app)
            .await
            .iter()
            .any(|r| r.action == "session.revoked")
    );
}

#[tokio::test]
async fn idle_sessions_expire() {
    let app = TestApp::spawn_with(|c| c.session_idle = Duration::from_secs(1)).await;
    app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    assert_eq!(s.get("/api/v1/me").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(s.get("/api/v1/me").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_end_at_their_absolute_expiry_even_when_active() {
    let app = TestApp::spawn_with(|c| c.session_max_age = Duration::from_secs(2)).await;
    app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    for _ in 0..3 {
        assert_eq!(s.get("/api/v1/me").await.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(s.get("/api/v1/me").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn signup_is_off_by_default_and_works_when_an_admin_turns_it_on() {
    let app = TestApp::spawn().await;
    let client = cookie_client();
    let body = json!({"email": "new@example.com", "password": "a good password", "name": "New"});
    let off = reply(
        client
            .post(app.url("/api/v1/auth/signup"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(off.status, StatusCode::FORBIDDEN);
    assert_eq!(off.code(), "signup_disabled");

    xagent::services::identity::set_signup(&app.svc, true, None)
        .await
        .unwrap();
    let on = reply(
        client
            .post(app.url("/api/v1/auth/signup"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(on.status, StatusCode::CREATED);
    assert_eq!(on.body["user"]["email"], "new@example.com");
    assert_eq!(on.body["personal_organization"]["kind"], "personal");
    assert!(
        app.login_with("new@example.com", "a good password")
            .await
            .is_ok()
    );

    let again = reply(
        client
            .post(app.url("/api/v1/auth/signup"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "email_taken");

    let long = json!({"email": "x@example.com", "password": "p".repeat(257), "name": "X"});
    let bad = reply(
        client
            .post(app.url("/api/v1/auth/signup"))
            .json(&long)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body["error"]["fields"]["password"]
            .as_str()
            .unwrap()
            .contains("at most 256")
    );
    let short = json!({"email": "not-an-email", "password": "short", "name": ""});
    let bad = reply(
        client
            .post(app.url("/api/v1/auth/signup"))
            .json(&short)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let fields = &bad.body["error"]["fields"];
    assert!(
        fields["email"].is_string() && fields["password"].is_string() && fields["name"].is_string()
    );
}

#[tokio::test]
async fn sessions_tokens_and_invitations_expire_when_the_servers_clock_passes_them() {
    let clock = xagent::domain::Clock::default();
    let app = TestApp::spawn_with(|c| {
        c.clock = clock.clone();
        c.session_idle = Duration::from_secs(3600);
    })
    .await;
    app.create_user("owner@clock.example", "Owner").await;
    app.create_user("late@clock.example", "Late").await;
    let owner = app.login("owner@clock.example").await;
    let (org, _) = crate::org_fixture::create_org(&owner, "Clock", "clock").await;
    let r = owner
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": "late@clock.example", "role": "member"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let invite = r.body["accept_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let in_two_hours = xagent::domain::fmt_time(clock.now() + chrono::Duration::hours(2));
    let r = owner
        .post(
            "/api/v1/me/tokens",
            json!({"name": "short", "organization_id": org, "expires_at": in_two_hours}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let token = TokenClient::new(&app.base, r.body["token"].as_str().unwrap());

    // Within the idle time and the token's life, both work.
    clock.advance(Duration::from_secs(30 * 60));
    assert_eq!(owner.get("/api/v1/me").await.status, StatusCode::OK);
    assert_eq!(token.get("/api/v1/me").await.status, StatusCode::OK);
    // Past them, neither does; nothing but the clock moved.
    clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(
        owner.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        token.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );

    // The invitation lives its days (seven by default) by the same clock.
    clock.advance(Duration::from_secs(8 * 24 * 3600));
    let late = app.login("late@clock.example").await;
    let r = late
        .post("/api/v1/invitations/accept", json!({"token": invite}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.code(), "invitation_invalid");
}
