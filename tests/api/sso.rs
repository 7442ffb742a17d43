//! Single sign-on per organization against a real OpenID Connect provider process (the
//! test provider of tests/common on its own port): the settings API, the sign-in with
//! discovery, PKCE, state and nonce, every refusal, provisioning, "SSO only", the domain
//! rule and the isolation between organizations.
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::oidc_provider::{CLIENT_SECRET, OidcProvider, Twist, identity};
use crate::common::*;
use crate::org_fixture::*;

const CLIENT_ID: &str = "xagent-acme";

struct Scene {
    app: TestApp,
    idp: OidcProvider,
    owner: Session,
    org_id: String,
}

/// An instance with the organization `acme` (owner ada@acme.example) whose single sign-on
/// is the test provider, for `example.com` people, adding them as viewers.
async fn scene() -> Scene {
    let app = TestApp::spawn_with(|c| {
        // Every refusal below comes from one client address; the throttle is tested on
        // password sign-in.
        c.login_max_failures_per_account = 1000;
        c.login_max_failures_per_ip = 1000;
    })
    .await;
    let idp = OidcProvider::start(CLIENT_ID, identity("grace@example.com", true)).await;
    let (_, owner) = new_person(&app, "ada@acme.example", "Ada").await;
    let (org_id, _) = create_org(&owner, "Acme", "acme").await;
    let r = configure(&owner, "acme", &idp, &["example.com"]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    Scene {
        app,
        idp,
        owner,
        org_id,
    }
}

async fn configure(s: &Session, org: &str, idp: &OidcProvider, domains: &[&str]) -> Reply {
    s.send(
        reqwest::Method::PATCH,
        &format!("/api/v1/orgs/{org}/security"),
        Some(json!({"sso": {
            "issuer": idp.issuer, "client_id": idp.client_id, "client_secret": CLIENT_SECRET,
            "allowed_domains": domains, "default_role": "viewer"
        }})),
    )
    .await
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// A browser's way through a sign-in: the start at xagent, the provider (which approves
/// at once) and the callback URL it sends the browser back to, not yet followed.
async fn to_callback(app: &TestApp, browser: &reqwest::Client, org: &str) -> String {
    let r = browser
        .get(app.url(&format!("/sso/{org}/start?email=grace@example.com")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "start");
    let at_provider = location(&r);
    let r = browser.get(&at_provider).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "provider approves");
    location(&r)
}

/// Follows the callback with `browser`; the answer.
async fn callback(browser: &reqwest::Client, url: &str) -> Reply {
    reply(browser.get(url).send().await.unwrap()).await
}

async fn me(browser: &reqwest::Client, app: &TestApp) -> Reply {
    reply(browser.get(app.url("/api/v1/me")).send().await.unwrap()).await
}

async fn refusals(owner: &Session, org: &str) -> Vec<Value> {
    audit_rows(owner, org)
        .await
        .into_iter()
        .filter(|r| r["action"] == "auth.sso_failed")
        .collect()
}

/// The sign-in is refused with a page naming what went wrong, no session is made, and the
/// organization's log records the reason.
async fn assert_refused(s: &Scene, got: Reply, browser: &reqwest::Client, reason: &str) {
    assert_eq!(got.status, StatusCode::FORBIDDEN, "{reason}: {}", got.text);
    assert!(
        got.text.contains("Single sign-on did not succeed"),
        "{reason}: {}",
        got.text
    );
    assert!(!got.text.contains(CLIENT_SECRET));
    assert_eq!(me(browser, &s.app).await.status, StatusCode::UNAUTHORIZED);
    let rows = refusals(&s.owner, "acme").await;
    assert_eq!(rows[0]["details"]["reason"], reason, "{rows:?}");
}

#[tokio::test]
async fn a_verified_email_of_an_allowed_domain_signs_in_and_gets_an_account_and_a_membership() {
    let s = scene().await;
    let browser = cookie_client();
    let back = to_callback(&s.app, &browser, "acme").await;
    assert!(
        back.starts_with(&s.app.url(&format!("/sso/{}/callback?", s.org_id))),
        "{back}"
    );
    // The authorization request carried PKCE (the provider checks the verifier), a state,
    // a nonce, the email as a hint and the scopes.
    let asked = &s.idp.authorize_requests()[0];
    assert_eq!(asked["code_challenge_method"], "S256");
    assert!(!asked["state"].is_empty() && !asked["nonce"].is_empty());
    assert_eq!(asked["login_hint"], "grace@example.com");
    assert_eq!(asked["scope"], "openid email profile");
    assert_eq!(
        asked["redirect_uri"],
        s.app.url(&format!("/sso/{}/callback", s.org_id))
    );
    let r = browser.get(&back).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/o/acme");
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(cookies.iter().any(|c| c.starts_with("xagent_session=")));
    // A normal session: /api/v1/me answers, with the personal workspace and acme.
    let who = me(&browser, &s.app).await;
    assert_eq!(who.status, StatusCode::OK, "{}", who.text);
    assert_eq!(who.body["user"]["email"], "grace@example.com");
    assert_eq!(who.body["user"]["name"], "Ada Lovelace");
    let memberships = who.body["memberships"].as_array().unwrap();
    assert_eq!(memberships.len(), 2, "{memberships:?}");
    assert!(
        memberships
            .iter()
            .any(|m| m["organization"]["kind"] == "personal" && m["role"] == "owner")
    );
    assert!(
        memberships
            .iter()
            .any(|m| m["organization"]["slug"] == "acme" && m["role"] == "viewer")
    );
    assert_eq!(
        who.body["current_organization_id"],
        Value::String(s.org_id.clone())
    );
    let joined: Vec<Value> = audit_rows(&s.owner, "acme")
        .await
        .into_iter()
        .filter(|r| r["action"] == "member.joined")
        .collect();
    assert_eq!(joined[0]["details"]["via"], "sso");
    assert_eq!(joined[0]["details"]["role"], "viewer");
    // A second sign-in finds the account and the membership; nothing is added.
    let again = cookie_client();
    let back = to_callback(&s.app, &again, "acme").await;
    assert_eq!(callback(&again, &back).await.status, StatusCode::SEE_OTHER);
    let who = me(&again, &s.app).await;
    assert_eq!(who.body["memberships"].as_array().unwrap().len(), 2);
    let joined = audit_rows(&s.owner, "acme")
        .await
        .into_iter()
        .filter(|r| r["action"] == "member.joined")
        .count();
    assert_eq!(joined, 1);
    assert!(refusals(&s.owner, "acme").await.is_empty());
}

#[tokio::test]
async fn an_existing_account_with_that_email_signs_in_and_joins_with_the_default_role() {
    let s = scene().await;
    let user = s.app.create_user("grace@example.com", "Grace").await;
    let browser = cookie_client();
    let back = to_callback(&s.app, &browser, "acme").await;
    assert_eq!(
        callback(&browser, &back).await.status,
        StatusCode::SEE_OTHER
    );
    let who = me(&browser, &s.app).await;
    assert_eq!(who.body["user"]["id"], Value::String(user.id.clone()));
    assert_eq!(
        who.body["user"]["name"], "Grace",
        "the account is kept as it is"
    );
    assert_eq!(
        role_of(&s.owner, "acme", &user.id).await.as_deref(),
        Some("viewer")
    );
    // The password still works for an organization that allows it.
    assert!(
        s.app
            .login_with("grace@example.com", PASSWORD)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn an_id_token_from_another_issuer_is_refused() {
    let s = scene().await;
    s.idp.twist(Twist {
        issuer: Some("http://127.0.0.1:1".into()),
        ..Twist::default()
    });
    let browser = cookie_client();
    let back = to_callback(&s.app, &browser, "acme").await;
    let got = callback(&browser, &back).await;
    assert!(got.text.contains("another issuer"), "{}", got.text);
    assert_refused(&s, got, &browser, "wrong_issuer").await;
}

#[tokio::test]
async fn an_id_token_for_another_client_is_refused() {
    let s = scene().await;
    s.idp.twist(Twist {
        audience: Some("some-other-client".into()),
        ..Twist::default()
    });
    let browser = cookie_client();
    let back = to_callback(&s.app, &browser, "acme").await;
    let got = callback(&browser, &back).await;
    assert_refused(&s, got, &browser, "wrong_audience").await;
}

#[tokio::test]
async fn an_id_token_signed_with_a_key_the_issuer_does_not_publish_is_refused() {
    let s = scene().await;
    s.idp.twist(Twist {
        foreign_key: true,
        ..Twist::default()
    });
    let browser = cookie_client();
    let back = to_callback(&s.app, &browser, "acme").await;
    let got = callback(&browser, &back).await;
    assert_refused(&s, got, &browser, "bad_signature").await;
}

#[tokio::test]
async fn an_expired_id_token_is_refused() {
    let s = scene().await;
    s.idp.twist(Twist {
        expired: true,
        ..Twist::default()
    });
    let browser = cookie_client();
    let back = to_callback(&s.app, &browser, "acme").await;
    let got = callback(&browser, &back).await;
    assert_refused(&s, got, &browser, "expired").await;
}

#[tokio::test]
async fn an_id_token_with_another_nonce_is_refused() {
    let s = scene().await;
    s.idp.twist(Twist {
        nonce: Some("a-nonce-of-another-sign-in".into()),
        ..Twist::default()
    });
    let browser = cookie_client();
    let back = to_callback(&s.app, &browser, "acme").await;
    let got = callback(&browser, &back).await;
    assert_refused(&s, got, &browser, "nonce_mismatch").await;
}

#[tokio::test]
async fn a_callback_in_another_browser_or_with_another_state_is_refused() {
    let s = scene().await;
    // Started in one browser, brought back in another (a planted sign-in link).
    let started = cookie_client();
    let back = to_callback(&s.app, &started, "acme").await;
    let other = cookie_client();
    let got = callback(&other, &back).await;
    assert_refused(&s, got, &other, "state_mismatch").await;
    // The right browser with the state changed.
    let browser = cookie_client();
    let back = to_callback(&s.app, &browser, "acme").await;
    let mut url = url::Url::parse(&back).unwrap();
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    url.query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", "forged-state");
    let got = callback(&browser, url.as_str()).await;
    assert_refused(&s, got, &browser, "state_mismatch").await;
    assert!(
        s.idp.token_refusals().is_empty(),
        "no code was sent to the provider"
    );
}

#[tokio::test]
async fn an_email_the_provider_has_not_verified_is_refused() {
    let s = scene().await;
    s.idp.set_identity(identity("grace@example.com", false));
    let browser = cookie_client();
    let back = to_callback(&s.app, &browser, "acme").await;
    let got = callback(&browser, &back).await;
    assert_refused(&s, got, &browser, "email_unverified").await;
    assert!(
        s.app
            .login_with("grace@example.com", PASSWORD)
            .await
            .is_err(),
        "no account was made"
    );
}

#[tokio::test]
async fn an_email_outside_the_allowed_domains_is_refused() {
    let s = scene().await;
    s.idp.set_identity(identity("eve@elsewhere.example", true));
    let browser = cookie_client();
    let back = to_callback(&s.app, &browser, "acme").await;
    let got = callback(&browser, &back).await;
    assert!(got.text.contains("elsewhere.example"), "{}", got.text);
    assert_refused(&s, got, &browser, "domain_not_allowed").await;
    let rows = refusals(&s.owner, "acme").await;
    assert_eq!(rows[0]["details"]["email"], "eve@elsewhere.example");
}

#[tokio::test]
async fn a_replayed_code_or_callback_is_refused() {
    let s = scene().await;
    let browser = cookie_client();
    let back = to_callback(&s.app, &browser, "acme").await;
    assert_eq!(
        callback(&browser, &back).await.status,
        StatusCode::SEE_OTHER
    );
    let url = url::Url::parse(&back).unwrap();
    let pair = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .unwrap()
            .1
            .into_owned()
    };
    let (code, state) = (pair("code"), pair("state"));
    // The same callback again, with the state cookie it had: the state was used.
    let attacker = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let got = reply(
        attacker
            .get(&back)
            .header("cookie", format!("xagent_sso_state={state}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_refused(&s, got, &attacker, "state_unknown").await;
    // The used code with a fresh sign-in's state: the provider refuses the code.
    let fresh = cookie_client();
    let r = fresh
        .get(s.app.url("/sso/acme/start"))
        .send()
        .await
        .unwrap();
    let at_provider = url::Url::parse(&location(&r)).unwrap();
    let new_state = at_provider
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let mut replay = url.clone();
    replay
        .query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", &new_state);
    let got = callback(&fresh, replay.as_str()).await;
    assert!(got.text.contains("invalid_grant"), "{}", got.text);
    assert_refused(&s, got, &fresh, "code_refused").await;
    assert_eq!(s.idp.token_refusals(), vec!["invalid_grant".to_string()]);
}

#[tokio::test]
async fn a_callback_started_for_one_organization_cannot_sign_in_to_another() {
    let s = scene().await;
    let (org_b, _) = create_org(&s.owner, "Beta", "beta").await;
    let idp_b = OidcProvider::start(CLIENT_ID, identity("grace@example.com", true)).await;
    let r = configure(&s.owner, "beta", &idp_b, &["example.org"]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let browser = cookie_client();
    let back = to_callback(&s.app, &browser, "acme").await;
    let url = url::Url::parse(&back).unwrap();
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    // acme's code and state, delivered to beta's callback with acme's state cookie.
    let to_b = back.replace(&s.org_id, &org_b);
    let attacker = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let got = reply(
        attacker
            .get(&to_b)
            .header("cookie", format!("xagent_sso_state={state}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN, "{}", got.text);
    let in_b = refusals(&s.owner, "beta").await;
    assert_eq!(in_b[0]["details"]["reason"], "state_unknown");
    assert!(idp_b.token_refusals().is_empty() && s.idp.token_refusals().is_empty());
    assert!(
        s.app
            .login_with("grace@example.com", PASSWORD)
            .await
            .is_err(),
        "no account was made"
    );
    // acme's own callback still works afterwards (the state was not used up by beta).
    assert_eq!(
        callback(&browser, &back).await.status,
        StatusCode::SEE_OTHER
    );
    let who = me(&browser, &s.app).await;
    let slugs: Vec<&str> = who.body["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["organization"]["slug"].as_str().unwrap())
        .collect();
    assert!(
        slugs.contains(&"acme") && !slugs.contains(&"beta"),
        "{slugs:?}"
    );
}

#[tokio::test]
async fn sso_settings_show_the_secret_only_as_a_hint_and_every_change_is_audited_without_it() {
    let s = scene().await;
    let r = s.owner.get("/api/v1/orgs/acme/security").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let sso = &r.body["sso"];
    assert_eq!(sso["issuer"], Value::String(s.idp.issuer.clone()));
    assert_eq!(sso["client_id"], CLIENT_ID);
    assert_eq!(sso["allowed_domains"], json!(["example.com"]));
    assert_eq!(sso["default_role"], "viewer");
    assert_eq!(sso["sso_only"], false);
    assert_eq!(
        sso["redirect_uri"],
        Value::String(s.app.url(&format!("/sso/{}/callback", s.org_id)))
    );
    let hint = sso["client_secret_hint"].as_str().unwrap();
    assert!(!hint.is_empty() && !CLIENT_SECRET.contains(hint), "{hint}");
    assert!(!r.text.contains(CLIENT_SECRET));
    // A change without the secret keeps it; sign-in still works (the secret opens).
    let r = s
        .owner
        .send(
            reqwest::Method::PATCH,
            "/api/v1/orgs/acme/security",
            Some(json!({"sso": {"allowed_domains": ["Example.com", "corp.example.com"], "default_role": "member"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["sso"]["allowed_domains"],
        json!(["corp.example.com", "example.com"])
    );
    assert_eq!(r.body["sso"]["client_secret_hint"].as_str(), Some(hint));
    let browser = cookie_client();
    let back = to_callback(&s.app, &browser, "acme").await;
    assert_eq!(
        callback(&browser, &back).await.status,
        StatusCode::SEE_OTHER
    );
    // Removed with null.
    let r = s
        .owner
        .send(
            reqwest::Method::PATCH,
            "/api/v1/orgs/acme/security",
            Some(json!({"sso": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["sso"], Value::Null);
    let gone = reply(
        cookie_client()
            .get(s.app.url("/sso/acme/start"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let rows = audit_rows(&s.owner, "acme").await;
    let actions: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["action"].as_str())
        .filter(|a| a.starts_with("sso."))
        .collect();
    assert_eq!(actions, vec!["sso.removed", "sso.updated", "sso.updated"]);
    let text = serde_json::to_string(&rows).unwrap();
    assert!(!text.contains(CLIENT_SECRET), "the secret is never audited");
    let first = rows.iter().rfind(|r| r["action"] == "sso.updated").unwrap();
    assert_eq!(first["details"]["client_secret"], "set");
    assert_eq!(first["details"]["before"], Value::Null);
    let second = rows.iter().find(|r| r["action"] == "sso.updated").unwrap();
    assert_eq!(second["details"]["client_secret"], "unchanged");
    assert_eq!(second["details"]["before"]["default_role"], "viewer");
    assert_eq!(second["details"]["after"]["default_role"], "member");
}

#[tokio::test]
async fn bad_sso_settings_are_refused_field_by_field_and_nothing_is_saved() {
    let app = TestApp::spawn().await;
    let (_, owner) = new_person(&app, "ada@acme.example", "Ada").await;
    create_org(&owner, "Acme", "acme").await;
    let patch = |body: Value| {
        owner.send(
            reqwest::Method::PATCH,
            "/api/v1/orgs/acme/security",
            Some(body),
        )
    };
    let r = patch(json!({"sso": {"issuer": "ftp://x", "client_id": "", "allowed_domains": ["not a domain"], "default_role": "owner"}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    for f in [
        "sso.issuer",
        "sso.client_id",
        "sso.allowed_domains",
        "sso.default_role",
    ] {
        assert!(r.body["error"]["fields"][f].is_string(), "{f}: {}", r.text);
    }
    let r = patch(json!({"sso": {"issuer": "https://login.example.com"}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body["error"]["fields"]["sso.client_id"].is_string());
    assert!(r.body["error"]["fields"]["sso.allowed_domains"].is_string());
    let r = patch(json!({"sso": {"issuer": "https://login.example.com", "surprise": 1}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = owner.get("/api/v1/orgs/acme/security").await;
    assert_eq!(r.body["sso"], Value::Null);
    // A personal workspace has none.
    let me = owner.get("/api/v1/me").await;
    let personal = me.body["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["organization"]["kind"] == "personal")
        .unwrap()["organization"]["slug"]
        .as_str()
        .unwrap()
        .to_string();
    let r = owner
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/orgs/{personal}/security"),
            Some(json!({"sso": {"issuer": "https://login.example.com", "client_id": "x", "allowed_domains": ["example.com"]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body["error"]["fields"]["sso"].is_string());
}

#[tokio::test]
async fn an_email_domain_routes_to_one_organization_only() {
    let s = scene().await;
    let (_, other_owner) = new_person(&s.app, "bob@beta.example", "Bob").await;
    let (beta_id, _) = create_org(&other_owner, "Beta", "beta").await;
    let r = configure(
        &other_owner,
        "beta",
        &s.idp,
        &["beta.example", "example.com"],
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "domain_taken");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("example.com")
    );
    assert!(
        !r.text.contains("acme"),
        "the other organization is not named"
    );
    let r = other_owner.get("/api/v1/orgs/beta/security").await;
    assert_eq!(r.body["sso"], Value::Null, "nothing saved");
    let r = configure(&other_owner, "beta", &s.idp, &["beta.example"]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The sign-in page sends each domain to its organization's start.
    let browser = cookie_client();
    for (email, id) in [("x@example.com", &s.org_id), ("y@beta.example", &beta_id)] {
        let r = browser
            .post(s.app.url("/login/sso"))
            .form(&[("email", email)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{email}");
        assert!(
            location(&r).starts_with(&format!("/sso/{id}/start?email=")),
            "{}",
            location(&r)
        );
    }
    let r = browser
        .post(s.app.url("/login/sso"))
        .form(&[("email", "z@nowhere.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("sign in with your password")
    );
}

#[tokio::test]
async fn sso_only_refuses_password_sign_in_to_members_and_to_owners_without_two_factor() {
    let s = scene().await;
    let (member, joiner) = new_person(&s.app, "max@acme.example", "Max").await;
    invite_and_join(&s.owner, "acme", &member.email, "member", &joiner).await;
    let (_, _outsider) = new_person(&s.app, "olga@else.example", "Olga").await;
    let r = s
        .owner
        .send(
            reqwest::Method::PATCH,
            "/api/v1/orgs/acme/security",
            Some(json!({"sso": {"sso_only": true}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["sso"]["sso_only"], true);
    for email in ["max@acme.example", "ada@acme.example"] {
        let (status, body) = s.app.login_with(email, PASSWORD).await.err().unwrap();
        assert_eq!(status, StatusCode::FORBIDDEN, "{email}: {body}");
        assert_eq!(body["error"]["code"], "sso_required");
    }
    // A wrong password says nothing about the rule.
    let (status, body) = s
        .app
        .login_with("max@acme.example", "not the password at all")
        .await
        .err()
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "invalid_credentials");
    assert!(
        s.app
            .login_with("olga@else.example", PASSWORD)
            .await
            .is_ok()
    );
    // The existing sessions are not the question; the single sign-on still signs in.
    let browser = cookie_client();
    let back = to_callback(&s.app, &browser, "acme").await;
    assert_eq!(
        callback(&browser, &back).await.status,
        StatusCode::SEE_OTHER
    );
    let r = s
        .owner
        .send(
            reqwest::Method::PATCH,
            "/api/v1/orgs/acme/security",
            Some(json!({"sso": {"sso_only": false}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(s.app.login_with("max@acme.example", PASSWORD).await.is_ok());
}

#[tokio::test]
async fn only_security_managers_read_or_change_sso_and_tokens_cannot_change_it() {
    let s = scene().await;
    let (admin_user, admin) = new_person(&s.app, "adam@acme.example", "Adam").await;
    invite_and_join(&s.owner, "acme", &admin_user.email, "admin", &admin).await;
    let r = admin.get("/api/v1/orgs/acme/security").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = admin
        .send(
            reqwest::Method::PATCH,
            "/api/v1/orgs/acme/security",
            Some(json!({"sso": {"sso_only": true}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let (_, token) = token_for(&s.app, &s.owner, "acme", "automation").await;
    assert_eq!(
        token.get("/api/v1/orgs/acme/security").await.status,
        StatusCode::OK
    );
    let r = token
        .send(
            reqwest::Method::PATCH,
            "/api/v1/orgs/acme/security",
            Some(json!({"sso": {"sso_only": true}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = s.owner.get("/api/v1/orgs/acme/security").await;
    assert_eq!(r.body["sso"]["sso_only"], false, "nothing changed");
}

#[tokio::test]
async fn sso_settings_of_another_org_are_not_found_and_nothing_is_written() {
    let s = scene().await;
    let (_, b_owner) = new_person(&s.app, "bob@beta.example", "Bob").await;
    create_org(&b_owner, "Beta", "beta").await;
    for path in [
        "/api/v1/orgs/acme/security",
        &format!("/api/v1/orgs/{}/security", s.org_id),
    ] {
        let r = b_owner.get(path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!r.text.contains(&s.idp.issuer));
        let r = b_owner
            .send(reqwest::Method::PATCH, path, Some(json!({"sso": null})))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        let r = b_owner.post(&format!("{path}/sso/test"), json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}/sso/test");
    }
    let r = s.owner.get("/api/v1/orgs/acme/security").await;
    assert_eq!(r.body["sso"]["client_id"], CLIENT_ID, "still there");
}

#[tokio::test]
async fn test_the_connection_reads_the_discovery_document_or_says_why_not() {
    let s = scene().await;
    let r = s
        .owner
        .post("/api/v1/orgs/acme/security/sso/test", json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["ok"], true, "{}", r.text);
    assert_eq!(
        r.body["authorization_endpoint"],
        Value::String(format!("{}/authorize", s.idp.issuer))
    );
    // A server that is no OpenID Connect issuer: xagent itself.
    let r = s
        .owner
        .post(
            "/api/v1/orgs/acme/security/sso/test",
            json!({"issuer": s.app.base}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["ok"], false);
    assert!(
        r.body["message"].as_str().unwrap().contains("HTTP 404"),
        "{}",
        r.text
    );
    let r = s
        .owner
        .post(
            "/api/v1/orgs/acme/security/sso/test",
            json!({"issuer": "http://127.0.0.1:1"}),
        )
        .await;
    assert_eq!(r.body["ok"], false);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn issuers_on_private_addresses_are_refused_unless_the_server_allows_them() {
    let app = TestApp::spawn_with(|c| {
        c.targets = xagent::services::outbound::TargetPolicy::PublicOnly;
    })
    .await;
    let idp = OidcProvider::start(CLIENT_ID, identity("grace@example.com", true)).await;
    let (_, owner) = new_person(&app, "ada@acme.example", "Ada").await;
    create_org(&owner, "Acme", "acme").await;
    let r = configure(&owner, "acme", &idp, &["example.com"]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.body["error"]["fields"]["sso.issuer"]
            .as_str()
            .unwrap()
            .contains("--allow-private-targets")
    );
    let r = owner
        .post(
            "/api/v1/orgs/acme/security/sso/test",
            json!({"issuer": idp.issuer}),
        )
        .await;
    assert_eq!(r.body["ok"], false, "{}", r.text);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("not a public address"),
        "{}",
        r.text
    );
    assert!(idp.authorize_requests().is_empty());
}

#[tokio::test]
async fn a_sign_in_that_stays_at_the_provider_too_long_is_refused_and_forgotten() {
    let s = scene().await;
    let browser = cookie_client();
    let back = to_callback(&s.app, &browser, "acme").await;
    s.app
        .svc
        .clock
        .advance(std::time::Duration::from_secs(11 * 60));
    let got = callback(&browser, &back).await;
    assert_refused(&s, got, &browser, "state_unknown").await;
    // One left behind at the provider is removed by the maintenance.
    let abandoned = cookie_client();
    to_callback(&s.app, &abandoned, "acme").await;
    assert_eq!(
        xagent::services::sso::purge_expired_logins(&s.app.svc)
            .await
            .unwrap(),
        0,
        "not expired yet"
    );
    s.app
        .svc
        .clock
        .advance(std::time::Duration::from_secs(11 * 60));
    assert_eq!(
        xagent::services::sso::purge_expired_logins(&s.app.svc)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn an_instance_administrators_account_is_never_opened_by_an_organizations_provider() {
    let s = scene().await;
    s.app.create_superuser("root@example.com", "Root").await;
    s.idp.set_identity(identity("root@example.com", true));
    let browser = cookie_client();
    let back = to_callback(&s.app, &browser, "acme").await;
    let got = callback(&browser, &back).await;
    assert_refused(&s, got, &browser, "instance_administrator").await;
    // Nor does "SSO only" lock them out of their password.
    let root = s.app.login("root@example.com").await;
    let r = root.get("/api/v1/me").await;
    let root_id = r.body["user"]["id"].as_str().unwrap().to_string();
    let (_, token) = invite(&s.owner, "acme", "root@example.com", "member").await;
    assert_eq!(accept(&root, &token).await.status, StatusCode::OK);
    let r = s
        .owner
        .send(
            reqwest::Method::PATCH,
            "/api/v1/orgs/acme/security",
            Some(json!({"sso": {"sso_only": true}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        role_of(&s.owner, "acme", &root_id).await.as_deref(),
        Some("member")
    );
    assert!(s.app.login_with("root@example.com", PASSWORD).await.is_ok());
}

#[tokio::test]
async fn an_owner_with_two_factor_keeps_the_break_glass_password_sign_in_of_an_sso_only_org() {
    let s = scene().await;
    let (secret, _) = crate::two_factor::enrol(&s.app, &s.owner).await;
    let r = s
        .owner
        .send(
            reqwest::Method::PATCH,
            "/api/v1/orgs/acme/security",
            Some(json!({"sso": {"sso_only": true}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The password alone is not refused for the rule but asks for the second factor…
    let (status, body) = s
        .app
        .login_with("ada@acme.example", PASSWORD)
        .await
        .err()
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "two_factor_required");
    // …and with it the owner is in (the next code: the enrolment used this one).
    crate::two_factor::next_step(&s.app.svc.clock);
    let r = reply(
        cookie_client()
            .post(s.app.url("/api/v1/auth/login"))
            .json(&json!({
                "email": "ada@acme.example",
                "password": PASSWORD,
                "totp": crate::two_factor::code_now(&s.app, &secret),
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A member with two-factor is no owner: still refused.
    let (member, joiner) = new_person(&s.app, "max@acme.example", "Max").await;
    invite_and_join(&s.owner, "acme", &member.email, "member", &joiner).await;
    crate::two_factor::enrol(&s.app, &joiner).await;
    let (status, body) = s
        .app
        .login_with("max@acme.example", PASSWORD)
        .await
        .err()
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "sso_required");
}
