//! An organization's security policy: IP allowlist (v4, v6, trusted and untrusted
//! proxies, the lock-out confirmation), session and token lifetimes on the injectable
//! clock, ending a member's access, the per-organization API rate limit — each enforced
//! on pages, API and gateway in that organization and never in the same user's others —
//! and the security headers of every response.
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;
use crate::org_fixture::{audit_rows, create_org, invite_and_join, new_person, token_for};

/// Alpha (owner Olga, admin Adam, member Mia) and Bravo (owner Boris, member Mia).
struct Two {
    app: TestApp,
    clock: xagent::domain::Clock,
    a: String,
    b: String,
    owner: Session,
    owner_id: String,
    admin: (TestUser, Session),
    member: (TestUser, Session),
    b_owner: Session,
}

async fn two(tweak: impl FnOnce(&mut xagent::config::Config)) -> Two {
    let clock = xagent::domain::Clock::default();
    let c2 = clock.clone();
    let app = TestApp::spawn_with(move |c| {
        c.clock = c2;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        tweak(c);
    })
    .await;
    let (olga, owner) = new_person(&app, "olga@alpha.example", "Olga").await;
    let admin = new_person(&app, "adam@alpha.example", "Adam").await;
    let member = new_person(&app, "mia@both.example", "Mia").await;
    let (_, b_owner) = new_person(&app, "boris@bravo.example", "Boris").await;
    let (a, _) = create_org(&owner, "Alpha", "alpha").await;
    let (b, _) = create_org(&b_owner, "Bravo", "bravo").await;
    invite_and_join(&owner, &a, "adam@alpha.example", "admin", &admin.1).await;
    invite_and_join(&owner, &a, "mia@both.example", "member", &member.1).await;
    invite_and_join(&b_owner, &b, "mia@both.example", "member", &member.1).await;
    Two {
        app,
        clock,
        a,
        b,
        owner,
        owner_id: olga.id,
        admin,
        member,
        b_owner,
    }
}

/// A request of `s` as if made from `ip` through the trusted proxy on 127.0.0.1.
async fn from(s: &Session, ip: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut req = s
        .client
        .request(method, s.url(path))
        .header("x-csrf-token", &s.csrf)
        .header("x-forwarded-for", ip);
    if let Some(b) = body {
        req = req.json(&b);
    }
    reply(req.send().await.unwrap()).await
}

async fn token_from(t: &TokenClient, ip: &str, path: &str) -> Reply {
    reply(
        t.client
            .get(format!("{}{path}", t.base))
            .bearer_auth(&t.token)
            .header("x-forwarded-for", ip)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn security(org: &str) -> String {
    format!("/api/v1/orgs/{org}/security")
}

async fn patch(s: &Session, ip: &str, org: &str, body: Value) -> Reply {
    from(s, ip, Method::PATCH, &security(org), Some(body)).await
}

#[tokio::test]
async fn the_policy_is_for_security_managers_of_its_own_organization_and_checks_its_input() {
    let t = two(|_| {}).await;
    let r = from(&t.owner, "10.1.1.1", Method::GET, &security(&t.a), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["ip_allowlist"], json!([]));
    assert_eq!(r.body["your_ip"], "10.1.1.1", "the address the server sees");
    assert!(r.body["api_rate_limit_rpm"].is_null());

    // An admin has no security.manage by default; a member neither.
    for s in [&t.admin.1, &t.member.1] {
        let r = s.get(&security(&t.a)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert_eq!(r.code(), "permission_denied");
        let r = s
            .send(
                Method::PATCH,
                &security(&t.a),
                Some(json!({"api_rate_limit_rpm": 1})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    // Another organization's owner: 404 for reading and for changing.
    let r = t.b_owner.get(&security(&t.a)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .b_owner
        .send(
            Method::PATCH,
            &security(&t.a),
            Some(json!({"ip_allowlist": ["0.0.0.0/0"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Bad input: every wrong field named, nothing saved.
    let r = patch(
        &t.owner,
        "10.1.1.1",
        &t.a,
        json!({"ip_allowlist": ["10.0.0.0/8", "10.0.0.0/33"], "session_max_hours": 0, "token_max_days": -3}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let fields = r.body["error"]["fields"].as_object().unwrap();
    for f in ["ip_allowlist", "session_max_hours", "token_max_days"] {
        assert!(fields.contains_key(f), "{f} in {fields:?}");
    }
    assert!(
        fields["ip_allowlist"]
            .as_str()
            .unwrap()
            .contains("10.0.0.0/33")
    );
    for bad in [
        json!({"ip_allowlist": "10.0.0.0/8"}),
        json!({"api_rate_limit_rpm": "lots"}),
        json!({"no_such_field": true}),
    ] {
        let r = patch(&t.owner, "10.1.1.1", &t.a, bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }
    let r = from(&t.owner, "10.1.1.1", Method::GET, &security(&t.a), None).await;
    assert_eq!(r.body["ip_allowlist"], json!([]), "nothing saved");
    assert!(r.body["session_max_hours"].is_null());

    // A good change is normalized, audited with before and after, and `null` clears.
    let r = patch(
        &t.owner,
        "10.1.1.1",
        &t.a,
        json!({"ip_allowlist": ["10.9.9.9/8", "2001:DB8::/32"], "session_idle_minutes": 30, "api_rate_limit_rpm": 1000}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["ip_allowlist"],
        json!(["10.0.0.0/8", "2001:db8::/32"])
    );
    assert_eq!(r.body["session_idle_minutes"], 30);
    let r = patch(
        &t.owner,
        "10.1.1.1",
        &t.a,
        json!({"session_idle_minutes": null, "ip_allowlist": []}),
    )
    .await;
    assert!(r.body["session_idle_minutes"].is_null());
    assert_eq!(r.body["ip_allowlist"], json!([]));
    assert_eq!(r.body["api_rate_limit_rpm"], 1000, "left out stays");
    let rows = audit_rows(&t.owner, &t.a).await;
    let changed: Vec<&Value> = rows
        .iter()
        .filter(|r| r["action"] == "organization.security_changed")
        .collect();
    assert_eq!(changed.len(), 2);
    let first = changed.last().unwrap();
    assert_eq!(
        first["details"]["changes"]["ip_allowlist"]["to"],
        json!(["10.0.0.0/8", "2001:db8::/32"])
    );
    assert_eq!(
        first["details"]["changes"]["session_idle_minutes"]["from"],
        Value::Null
    );
}

#[tokio::test]
async fn an_allowlist_admits_its_networks_on_pages_api_and_gateway_and_only_in_its_organization() {
    let t = two(|_| {}).await;
    let (_, tok) = token_for(&t.app, &t.member.1, &t.a, "ci").await;
    let r = patch(
        &t.owner,
        "10.1.1.1",
        &t.a,
        json!({"ip_allowlist": ["10.0.0.0/8", "2001:db8::/32"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mia = &t.member.1;
    let agents = format!("/api/v1/orgs/{}/agents", t.a);
    for (ip, allowed) in [
        ("10.2.3.4", true),
        ("2001:db8::5", true),
        ("192.0.2.1", false),
        ("2001:db9::1", false),
        ("11.0.0.1", false),
    ] {
        let r = from(mia, ip, Method::GET, &agents, None).await;
        if allowed {
            assert_eq!(r.status, StatusCode::OK, "{ip}: {}", r.text);
        } else {
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{ip}: {}", r.text);
            assert_eq!(r.code(), "ip_not_allowed");
            assert!(r.body["error"]["message"].as_str().unwrap().contains(ip));
        }
    }
    // The same member from the same refused address in Bravo and in their personal
    // workspace: not Alpha's business.
    let r = from(
        mia,
        "192.0.2.1",
        Method::GET,
        &format!("/api/v1/orgs/{}/agents", t.b),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = from(
        mia,
        "192.0.2.1",
        Method::GET,
        &format!("/api/v1/orgs/{}/agents", t.member.0.personal_org),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // Pages of Alpha: the error page, 403.
    let r = from(mia, "192.0.2.1", Method::GET, "/o/alpha", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text.contains("allowlist"), "{}", r.text);
    let r = from(mia, "10.0.0.7", Method::GET, "/o/alpha", None).await;
    assert_eq!(r.status, StatusCode::OK);
    // A token of Alpha (made before the list), on the API and the gateway.
    let r = token_from(&tok, "192.0.2.1", &agents).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "ip_not_allowed");
    let r = token_from(&tok, "10.0.0.1", &agents).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = token_from(&tok, "10.0.0.1", "/v1/models").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Twice from a refused address: the gateway remembers token holders, not addresses.
    for _ in 0..2 {
        let r = token_from(&tok, "192.0.2.1", "/v1/models").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert_eq!(r.body["error"]["code"], "ip_not_allowed");
    }
    // Making a token for Alpha from outside is acting in Alpha.
    let r = from(
        mia,
        "192.0.2.1",
        Method::POST,
        "/api/v1/me/tokens",
        Some(json!({"name": "outside", "organization_id": t.a})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    // No trusted proxy: the peer (127.0.0.1) is the client, whatever the header claims.
    let app = TestApp::spawn().await;
    let (_, owner) = new_person(&app, "olga@alpha.example", "Olga").await;
    let (a, _) = create_org(&owner, "Alpha", "alpha").await;
    let r = owner
        .send(
            Method::PATCH,
            &security(&a),
            Some(json!({"ip_allowlist": ["10.0.0.0/8"], "confirm_lockout": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = from(
        &owner,
        "10.1.1.1",
        Method::GET,
        &format!("/api/v1/orgs/{a}/agents"),
        None,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a claimed address is not believed"
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1")
    );
}

#[tokio::test]
async fn an_allowlist_that_leaves_out_the_owner_needs_a_confirmation() {
    let t = two(|_| {}).await;
    let r = patch(
        &t.owner,
        "192.0.2.9",
        &t.a,
        json!({"ip_allowlist": ["10.0.0.0/8"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "lockout_unconfirmed");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("192.0.2.9")
    );
    let r = from(&t.owner, "192.0.2.9", Method::GET, &security(&t.a), None).await;
    assert_eq!(r.body["ip_allowlist"], json!([]), "nothing saved");
    let r = patch(
        &t.owner,
        "192.0.2.9",
        &t.a,
        json!({"ip_allowlist": ["10.0.0.0/8"], "confirm_lockout": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = from(&t.owner, "192.0.2.9", Method::GET, &security(&t.a), None).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the owner is out from there"
    );
    let r = from(&t.owner, "10.0.0.2", Method::GET, &security(&t.a), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let audit = format!("/api/v1/orgs/{}/audit?limit=50", t.a);
    let r = from(&t.owner, "10.0.0.2", Method::GET, &audit, None).await;
    let row = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "organization.security_changed")
        .expect("audited")
        .clone();
    assert_eq!(row["details"]["lockout_confirmed"], true);
    let rows = audit_rows(&t.b_owner, &t.b).await;
    assert!(
        rows.iter()
            .all(|r| r["action"] != "organization.security_changed")
    );
}

#[tokio::test]
async fn session_lifetimes_are_the_organizations_and_end_only_there() {
    let t = two(|_| {}).await;
    let r = patch(
        &t.owner,
        "10.0.0.1",
        &t.a,
        json!({"session_max_hours": 1, "session_idle_minutes": 30}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mia = &t.member.1;
    let alpha = format!("/api/v1/orgs/{}/agents", t.a);
    let bravo = format!("/api/v1/orgs/{}/agents", t.b);
    assert_eq!(mia.get(&alpha).await.status, StatusCode::OK);

    // 31 minutes without use: idle in Alpha; Bravo (instance timeout: a day) still works.
    t.clock.advance(Duration::from_secs(31 * 60));
    let r = mia.get(&alpha).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(r.code(), "session_expired");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("30 minutes")
    );
    // A refused request is no use of the session: trying again is refused again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = mia.get(&alpha).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "a retry revived it: {}",
        r.text
    );
    // A page of Alpha asks to sign in again, and the sign-in page asks although signed in.
    let r = mia.get("/o/alpha/agents").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let to = r.headers["location"].to_str().unwrap().to_string();
    assert!(
        to.starts_with("/login?next=") && to.ends_with("&reauth=1"),
        "{to}"
    );
    let r = mia.get(&to).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("sign in again"), "{}", r.text);
    // Bravo (the instance's timeout: a day) takes the same session.
    assert_eq!(mia.get(&bravo).await.status, StatusCode::OK);

    // Signing in again gives a session that works in Alpha.
    let again = t.app.login("mia@both.example").await;
    assert_eq!(again.get(&alpha).await.status, StatusCode::OK);
    // Past the lifetime (1 h) even a session in use is refused there.
    for _ in 0..3 {
        t.clock.advance(Duration::from_secs(25 * 60));
        // Keeps it from being idle: any use counts.
        let _ = again.get(&bravo).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = again.get(&alpha).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 hour"),
        "{}",
        r.text
    );
    assert_eq!(again.get(&bravo).await.status, StatusCode::OK);
}

#[tokio::test]
async fn token_lifetimes_refuse_long_tokens_and_cap_existing_ones() {
    let t = two(|_| {}).await;
    let mia = &t.member.1;
    // Made before the policy, without an expiry.
    let (_, old) = token_for(&t.app, mia, &t.a, "old").await;
    let (_, bravo_tok) = token_for(&t.app, mia, &t.b, "bravo").await;
    let r = patch(&t.owner, "10.0.0.1", &t.a, json!({"token_max_days": 30})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = mia
        .post(
            "/api/v1/me/tokens",
            json!({"name": "forever", "organization_id": t.a}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.body["error"]["fields"]["expires_at"]
            .as_str()
            .unwrap()
            .contains("30 days")
    );
    let far = (chrono::Utc::now() + chrono::Duration::days(45))
        .format("%Y-%m-%d")
        .to_string();
    let r = mia
        .post(
            "/api/v1/me/tokens",
            json!({"name": "long", "organization_id": t.a, "expires_at": far}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let near = (chrono::Utc::now() + chrono::Duration::days(10))
        .format("%Y-%m-%d")
        .to_string();
    let r = mia
        .post(
            "/api/v1/me/tokens",
            json!({"name": "short", "organization_id": t.a, "expires_at": near}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Bravo has no such rule.
    let r = mia
        .post(
            "/api/v1/me/tokens",
            json!({"name": "b-forever", "organization_id": t.b}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    let agents = format!("/api/v1/orgs/{}/agents", t.a);
    assert_eq!(old.get(&agents).await.status, StatusCode::OK);
    t.clock.advance(Duration::from_secs(31 * 24 * 3600));
    let r = old.get(&agents).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(r.code(), "token_expired");
    let r = old.get("/v1/models").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "gateway: {}", r.text);
    let r = bravo_tok.get(&format!("/api/v1/orgs/{}/agents", t.b)).await;
    assert_eq!(r.status, StatusCode::OK, "Bravo's token is Bravo's");
}

#[tokio::test]
async fn an_admin_ends_a_members_access_in_their_organization_only() {
    let t = two(|_| {}).await;
    let (mia_user, mia) = (&t.member.0, &t.member.1);
    let (_, tok) = token_for(&t.app, mia, &t.a, "ci").await;
    let (_, btok) = token_for(&t.app, mia, &t.b, "ci").await;
    let revoke = format!("/api/v1/orgs/{}/members/{}/revoke-access", t.a, mia_user.id);
    // Bravo's owner cannot, through either organization.
    let r = t.b_owner.post(&revoke, json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .b_owner
        .post(
            &format!(
                "/api/v1/orgs/{}/members/{}/revoke-access",
                t.b, t.admin.0.id
            ),
            json!({}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "Adam is no member of Bravo"
    );
    // A member cannot; an admin cannot end an owner's.
    let r = mia
        .post(
            &format!(
                "/api/v1/orgs/{}/members/{}/revoke-access",
                t.a, t.admin.0.id
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let owner_id = &t.owner_id;
    let r = t
        .admin
        .1
        .post(
            &format!("/api/v1/orgs/{}/members/{owner_id}/revoke-access", t.a),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    let r = t.admin.1.post(&revoke, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["tokens_revoked"], 1);
    let alpha = format!("/api/v1/orgs/{}/agents", t.a);
    let bravo = format!("/api/v1/orgs/{}/agents", t.b);
    let r = mia.get(&alpha).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "session_expired");
    assert_eq!(tok.get(&alpha).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        mia.get(&bravo).await.status,
        StatusCode::OK,
        "Bravo untouched"
    );
    assert_eq!(btok.get(&bravo).await.status, StatusCode::OK);
    let again = t.app.login("mia@both.example").await;
    assert_eq!(again.get(&alpha).await.status, StatusCode::OK);
    let rows = audit_rows(&t.owner, &t.a).await;
    let row = rows
        .iter()
        .find(|r| r["action"] == "member.access_revoked")
        .expect("audited");
    assert_eq!(row["details"]["email"], "mia@both.example");
    assert_eq!(row["details"]["tokens_revoked"], 1);
}

#[tokio::test]
async fn the_api_rate_limit_counts_the_whole_organization_and_nothing_else() {
    let t = two(|_| {}).await;
    let (_, tok) = token_for(&t.app, &t.member.1, &t.a, "ci").await;
    let r = patch(&t.owner, "10.0.0.1", &t.a, json!({"api_rate_limit_rpm": 4})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let alpha = format!("/api/v1/orgs/{}/agents", t.a);
    // Four requests from three callers, then the fifth is refused whoever makes it.
    assert_eq!(t.owner.get(&alpha).await.status, StatusCode::OK);
    assert_eq!(t.member.1.get(&alpha).await.status, StatusCode::OK);
    assert_eq!(tok.get(&alpha).await.status, StatusCode::OK);
    assert_eq!(t.admin.1.get(&alpha).await.status, StatusCode::OK);
    let r = t.admin.1.get(&alpha).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.code(), "rate_limit_exceeded");
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let r = tok.get("/v1/models").await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the gateway too: {}",
        r.text
    );
    assert!(r.headers.contains_key("retry-after"));
    // Bravo and the member's personal workspace are not Alpha's.
    let r = t
        .member
        .1
        .get(&format!("/api/v1/orgs/{}/agents", t.b))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = t
        .member
        .1
        .get(&format!("/api/v1/orgs/{}/agents", t.member.0.personal_org))
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_https_adds_hsts() {
    let app = TestApp::spawn().await;
    tls();
    let client = reqwest::Client::new();
    for path in [
        "/login",
        "/api/v1/me",
        "/healthz",
        "/v1/models",
        "/assets/style.css",
    ] {
        let r = client.get(app.url(path)).send().await.unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(h.contains_key("referrer-policy"), "{path}");
        assert!(
            !h.contains_key("strict-transport-security"),
            "{path}: plain http"
        );
    }
    // The pages have no inline script for the policy to block.
    let html = client
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("<script>") && !html.contains(" onclick="),
        "{html}"
    );
    let https =
        TestApp::spawn_with(|c| c.public_url = Some("https://xagent.example.com".into())).await;
    let r = client
        .get(format!("http://{}/login", https.addr))
        .send()
        .await
        .unwrap();
    let hsts = r.headers()["strict-transport-security"].to_str().unwrap();
    assert!(hsts.starts_with("max-age="), "{hsts}");
}

#[tokio::test]
async fn accepting_invitation_links_that_are_not_valid_is_throttled() {
    let t = two(|c| c.login_max_failures_per_account = 3).await;
    let (_, newcomer) = new_person(&t.app, "nell@new.example", "Nell").await;
    let (_, token) = crate::org_fixture::invite(&t.owner, &t.a, "nell@new.example", "member").await;
    for i in 0..3 {
        let r = newcomer
            .post(
                "/api/v1/invitations/accept",
                json!({"token": format!("guess-{i}-0000000000000000000000")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        assert_eq!(r.code(), "invitation_invalid");
    }
    // Now even the real link waits: the guesses came first.
    let r = newcomer
        .post("/api/v1/invitations/accept", json!({"token": token}))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.headers.contains_key("retry-after"));
    // Someone else, from another address, is not held up by Nell's guesses.
    let (_, token2) = crate::org_fixture::invite(&t.owner, &t.a, "zoe@new.example", "member").await;
    let (_, zoe) = new_person(&t.app, "zoe@new.example", "Zoe").await;
    let r = from(
        &zoe,
        "10.9.9.9",
        Method::POST,
        "/api/v1/invitations/accept",
        Some(json!({"token": token2})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Nothing was joined by the refused attempt.
    let r = newcomer.get(&format!("/api/v1/orgs/{}", t.a)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
