//! Two-factor authentication: enrolment, sign-in with a code or a recovery code, replay,
//! throttling, turning it off, the instance administrator's reset, and organizations'
//! "require two-factor" policy with its grace period, enforced per organization.
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::org_fixture::*;

fn raw_db(app: &TestApp) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(app.data_dir().join("xagent.db")).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

/// The code an authenticator app shows for `secret` at the server's clock.
pub fn code_now(app: &TestApp, secret: &str) -> String {
    let t = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap();
    t.generate(app.svc.now().timestamp() as u64).to_string()
}

/// Moves the server's clock to the next 30-second step, so that a new code is accepted.
pub fn next_step(clock: &xagent::domain::Clock) {
    clock.advance(Duration::from_secs(30));
}

/// Enrols the session's user: returns (secret, recovery codes).
pub async fn enrol(app: &TestApp, s: &Session) -> (String, Vec<String>) {
    let r = s.post("/api/v1/me/2fa/totp", json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    let r = s
        .post(
            "/api/v1/me/2fa/totp/confirm",
            json!({"code": code_now(app, &secret)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let codes = r.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    (secret, codes)
}

async fn login_body(app: &TestApp, body: Value) -> Reply {
    reply(
        cookie_client()
            .post(app.url("/api/v1/auth/login"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// A session opened with a second factor.
async fn login_2fa(app: &TestApp, email: &str, extra: Value) -> Session {
    let client = cookie_client();
    let mut body = json!({"email": email, "password": PASSWORD});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = reply(
        client
            .post(app.url("/api/v1/auth/login"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    Session {
        client,
        csrf: r.body["csrf_token"].as_str().unwrap().to_string(),
        base: app.base.clone(),
        login: r.body,
    }
}

fn instance_actions(app: &TestApp) -> Vec<(String, String)> {
    let c = raw_db(app);
    let mut stmt = c
        .prepare("SELECT action, details FROM instance_audit_logs ORDER BY rowid")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

async fn clocked() -> (TestApp, xagent::domain::Clock) {
    let clock = xagent::domain::Clock::default();
    let app = TestApp::spawn_with(|c| {
        c.clock = clock.clone();
        c.session_idle = Duration::from_secs(60 * 24 * 3600);
        c.session_max_age = Duration::from_secs(90 * 24 * 3600);
    })
    .await;
    (app, clock)
}

#[tokio::test]
async fn enrolment_shows_a_qr_code_and_the_secret_and_turns_on_only_with_a_right_code() {
    let (app, _clock) = clocked().await;
    app.create_user("ada@example.com", "Ada").await;
    let s = app.login("ada@example.com").await;
    let r = s.post("/api/v1/me/2fa/totp", json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.headers["cache-control"], "no-store");
    let secret = r.body["secret"].as_str().unwrap().to_string();
    assert!(secret.len() >= 32, "160 bits in base32: {secret}");
    let url = r.body["otpauth_url"].as_str().unwrap();
    assert!(
        url.starts_with("otpauth://totp/xagent:ada%40example.com?"),
        "{url}"
    );
    assert!(url.contains(&format!("secret={secret}")), "{url}");
    assert!(url.contains("issuer=xagent"), "{url}");
    let svg = r.body["qr_svg"].as_str().unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    let st = s.get("/api/v1/me/2fa").await;
    assert_eq!(
        (st.body["enabled"].clone(), st.body["pending"].clone()),
        (json!(false), json!(true))
    );
    // Until confirmed, signing in needs the password only.
    assert_eq!(
        login_body(
            &app,
            json!({"email": "ada@example.com", "password": PASSWORD})
        )
        .await
        .status,
        StatusCode::OK
    );
    // A wrong code does not turn it on.
    let wrong = if code_now(&app, &secret) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = s
        .post("/api/v1/me/2fa/totp/confirm", json!({"code": wrong}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body["error"]["fields"]["code"].is_string(), "{}", r.text);
    assert_eq!(s.get("/api/v1/me/2fa").await.body["enabled"], false);
    // The right one does, and gives ten different recovery codes, once.
    let r = s
        .post(
            "/api/v1/me/2fa/totp/confirm",
            json!({"code": code_now(&app, &secret)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.headers["cache-control"], "no-store");
    let codes: Vec<String> = r.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    let mut distinct = codes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 10);
    let st = s.get("/api/v1/me/2fa").await;
    assert_eq!(st.body["enabled"], true);
    assert_eq!(st.body["recovery_codes_left"], 10);
    assert!(!st.text.contains(&secret) && !st.text.contains(&codes[0]));
    // Confirming again, or starting over, is refused while it is on.
    let again = s.post("/api/v1/me/2fa/totp", json!({})).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "two_factor_enabled")
    );
    // At rest: the secret is sealed, the codes hashed; the audit names neither.
    let db = raw_db(&app);
    let sealed: String = db
        .query_row("SELECT secret_sealed FROM user_totp", [], |r| r.get(0))
        .unwrap();
    assert!(sealed.starts_with("v1:") && !sealed.contains(&secret));
    let hashes: Vec<String> = db
        .prepare("SELECT code_hash FROM user_recovery_codes")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(hashes.len(), 10);
    let normal = |c: &str| c.replace('-', "");
    assert!(
        hashes
            .iter()
            .all(|h| codes.iter().all(|c| !h.contains(&normal(c))))
    );
    let actions = instance_actions(&app);
    assert!(actions.iter().any(|(a, _)| a == "user.two_factor_enabled"));
    assert!(
        actions
            .iter()
            .all(|(_, d)| !d.contains(&secret) && codes.iter().all(|c| !d.contains(c)))
    );
}

#[tokio::test]
async fn login_asks_for_the_second_factor_and_takes_each_code_once() {
    let (app, clock) = clocked().await;
    app.create_user("ada@example.com", "Ada").await;
    let s = app.login("ada@example.com").await;
    let (secret, _) = enrol(&app, &s).await;
    next_step(&clock);
    let creds = json!({"email": "ada@example.com", "password": PASSWORD});
    // The password alone: 401 naming what is missing.
    let r = login_body(&app, creds.clone()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "two_factor_required"),
        "{}",
        r.text
    );
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("totp") && msg.contains("recovery_code"),
        "{msg}"
    );
    assert!(
        r.headers.get("set-cookie").is_none(),
        "no session without the code"
    );
    // A wrong password with a right code is still the password's error.
    let r = login_body(
        &app,
        json!({"email": "ada@example.com", "password": "wrong password!", "totp": code_now(&app, &secret)}),
    )
    .await;
    assert_eq!(r.code(), "invalid_credentials");
    // A wrong code.
    let right = code_now(&app, &secret);
    let wrong = if right == "123456" {
        "654321"
    } else {
        "123456"
    };
    let r = login_body(
        &app,
        json!({"email": "ada@example.com", "password": PASSWORD, "totp": wrong}),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "invalid_two_factor"),
        "{}",
        r.text
    );
    // The right code signs in; the same code again is a replay and refused.
    let ok = login_2fa(&app, "ada@example.com", json!({"totp": right})).await;
    assert_eq!(ok.get("/api/v1/me").await.status, StatusCode::OK);
    let r = login_body(
        &app,
        json!({"email": "ada@example.com", "password": PASSWORD, "totp": right}),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "invalid_two_factor"),
        "{}",
        r.text
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("used already")
    );
    // The next step's code works.
    next_step(&clock);
    login_2fa(
        &app,
        "ada@example.com",
        json!({"totp": code_now(&app, &secret)}),
    )
    .await;
    let actions = instance_actions(&app);
    let failed: Vec<&String> = actions
        .iter()
        .filter(|(a, _)| a == "auth.two_factor_failed")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed[1].contains("replayed"), "{failed:?}");
}

#[tokio::test]
async fn each_recovery_code_signs_in_once() {
    let (app, _clock) = clocked().await;
    app.create_user("ada@example.com", "Ada").await;
    let s = app.login("ada@example.com").await;
    let (_, codes) = enrol(&app, &s).await;
    let first = login_2fa(&app, "ada@example.com", json!({"recovery_code": codes[0]})).await;
    assert_eq!(first.get("/api/v1/me").await.status, StatusCode::OK);
    let r = login_body(
        &app,
        json!({"email": "ada@example.com", "password": PASSWORD, "recovery_code": codes[0]}),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "invalid_two_factor")
    );
    // Typed without dashes and in capitals, another one works (once too).
    let typed = codes[1].replace('-', "").to_uppercase();
    login_2fa(&app, "ada@example.com", json!({"recovery_code": typed})).await;
    let r = login_body(
        &app,
        json!({"email": "ada@example.com", "password": PASSWORD, "recovery_code": codes[1]}),
    )
    .await;
    assert_eq!(r.code(), "invalid_two_factor");
    assert_eq!(s.get("/api/v1/me/2fa").await.body["recovery_codes_left"], 8);
    let used: Vec<String> = instance_actions(&app)
        .into_iter()
        .filter(|(a, _)| a == "user.recovery_code_used")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(used.len(), 2);
    assert!(used[1].contains("\"codes_left\":8"), "{used:?}");
}

#[tokio::test]
async fn wrong_codes_are_throttled_like_passwords_and_a_right_password_does_not_clear_them() {
    let clock = xagent::domain::Clock::default();
    let app = TestApp::spawn_with(|c| {
        c.clock = clock.clone();
        c.login_max_failures_per_account = 3;
    })
    .await;
    app.create_user("ada@example.com", "Ada").await;
    let s = app.login("ada@example.com").await;
    let (secret, codes) = enrol(&app, &s).await;
    next_step(&clock);
    let right = code_now(&app, &secret);
    let wrong = if right == "000000" {
        "999999"
    } else {
        "000000"
    };
    for _ in 0..3 {
        let r = login_body(
            &app,
            json!({"email": "ada@example.com", "password": PASSWORD, "totp": wrong}),
        )
        .await;
        assert_eq!(r.code(), "invalid_two_factor");
    }
    // Locked now: even the right code (and a recovery code) waits.
    for extra in [json!({"totp": right}), json!({"recovery_code": codes[0]})] {
        let mut body = json!({"email": "ada@example.com", "password": PASSWORD});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = login_body(&app, body).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
        assert!(r.headers.get("retry-after").is_some());
    }
    // Codes checked while signed in count against the same limit.
    let r = s
        .post("/api/v1/me/2fa/recovery-codes", json!({"code": right}))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    // Nothing was used up by the refused attempts.
    assert_eq!(
        s.get("/api/v1/me/2fa").await.body["recovery_codes_left"],
        10
    );
}

#[tokio::test]
async fn turning_two_factor_off_needs_the_password_and_a_code() {
    let (app, clock) = clocked().await;
    app.create_user("ada@example.com", "Ada").await;
    let s = app.login("ada@example.com").await;
    let (secret, codes) = enrol(&app, &s).await;
    next_step(&clock);
    let r = s
        .send(
            reqwest::Method::DELETE,
            "/api/v1/me/2fa/totp",
            Some(json!({"password": "not my password", "code": code_now(&app, &secret)})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.body["error"]["fields"]["password"].is_string(),
        "{}",
        r.text
    );
    let r = s
        .send(
            reqwest::Method::DELETE,
            "/api/v1/me/2fa/totp",
            Some(json!({"password": PASSWORD, "code": "000000-not-a-code"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body["error"]["fields"]["code"].is_string(), "{}", r.text);
    assert_eq!(s.get("/api/v1/me/2fa").await.body["enabled"], true);
    // A recovery code works for it too.
    let r = s
        .send(
            reqwest::Method::DELETE,
            "/api/v1/me/2fa/totp",
            Some(json!({"password": PASSWORD, "code": codes[3]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let st = s.get("/api/v1/me/2fa").await;
    assert_eq!(
        (
            st.body["enabled"].clone(),
            st.body["recovery_codes_left"].clone()
        ),
        (json!(false), json!(0))
    );
    assert_eq!(
        login_body(
            &app,
            json!({"email": "ada@example.com", "password": PASSWORD})
        )
        .await
        .status,
        StatusCode::OK
    );
    assert!(
        instance_actions(&app)
            .iter()
            .any(|(a, _)| a == "user.two_factor_disabled")
    );
    // Enrolling again makes a new secret.
    let (again, _) = enrol(&app, &s).await;
    assert_ne!(again, secret);
}

#[tokio::test]
async fn new_recovery_codes_replace_the_old_ones() {
    let (app, clock) = clocked().await;
    app.create_user("ada@example.com", "Ada").await;
    let s = app.login("ada@example.com").await;
    let (secret, old) = enrol(&app, &s).await;
    next_step(&clock);
    let r = s
        .post(
            "/api/v1/me/2fa/recovery-codes",
            json!({"code": code_now(&app, &secret)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new: Vec<String> = r.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(new.len(), 10);
    let r = login_body(
        &app,
        json!({"email": "ada@example.com", "password": PASSWORD, "recovery_code": old[0]}),
    )
    .await;
    assert_eq!(r.code(), "invalid_two_factor");
    login_2fa(&app, "ada@example.com", json!({"recovery_code": new[0]})).await;
    assert!(
        instance_actions(&app)
            .iter()
            .any(|(a, _)| a == "user.recovery_codes_regenerated")
    );
}

#[tokio::test]
async fn a_superuser_resets_a_users_two_factor_and_nobody_else_can() {
    let (app, _clock) = clocked().await;
    app.create_superuser("root@example.com", "Root").await;
    let ada = app.create_user("ada@example.com", "Ada").await;
    app.create_user("eve@example.com", "Eve").await;
    let s = app.login("ada@example.com").await;
    enrol(&app, &s).await;
    let eve = app.login("eve@example.com").await;
    let path = format!("/api/v1/admin/users/{}/reset-2fa", ada.id);
    let r = eve.post(&path, json!({})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "superuser_required")
    );
    assert_eq!(s.get("/api/v1/me/2fa").await.body["enabled"], true);
    let root = app.login("root@example.com").await;
    let shown = root.get(&format!("/api/v1/admin/users/{}", ada.id)).await;
    assert_eq!(shown.body["two_factor_enabled"], true, "{}", shown.text);
    let r = root.post(&path, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["had_two_factor"], true);
    assert_eq!(s.get("/api/v1/me/2fa").await.body["enabled"], false);
    assert_eq!(
        login_body(
            &app,
            json!({"email": "ada@example.com", "password": PASSWORD})
        )
        .await
        .status,
        StatusCode::OK
    );
    let audit = root
        .get("/api/v1/admin/audit?action=user.two_factor_reset")
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    let items = audit.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", audit.text);
    assert_eq!(items[0]["resource_id"], ada.id.as_str());
    assert_eq!(items[0]["actor"]["email"], "root@example.com");
}

#[tokio::test]
async fn an_organization_requiring_two_factor_refuses_members_without_it_after_the_grace_period() {
    let (app, clock) = clocked().await;
    let (_, owner) = new_person(&app, "owner@example.com", "Owner").await;
    let (member_user, member) = new_person(&app, "mia@example.com", "Mia").await;
    let (org, slug) = create_org(&owner, "Acme", "acme").await;
    invite_and_join(&owner, &org, "mia@example.com", "member", &member).await;
    let (_, token) = token_for(&app, &member, &org, "ci").await;
    let security = format!("/api/v1/orgs/{org}/security");
    // Requiring it needs it on the owner's own account first.
    let r = owner
        .send(
            reqwest::Method::PATCH,
            &security,
            Some(json!({"require_2fa": true})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "two_factor_required"),
        "{}",
        r.text
    );
    enrol(&app, &owner).await;
    let r = owner
        .send(
            reqwest::Method::PATCH,
            &security,
            Some(json!({"require_2fa": true, "require_2fa_grace_days": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = owner
        .send(
            reqwest::Method::PATCH,
            &security,
            Some(json!({"require_2fa": true, "require_2fa_grace_days": 3})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["require_2fa"], true);
    assert_eq!(r.body["require_2fa_grace_days"], 3);
    assert!(r.body["require_2fa_enforced_from"].is_string());
    assert_eq!(owner.get(&security).await.body, r.body);
    // A member may not read or change the policy.
    let r = member.get(&security).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "permission_denied")
    );
    // The owner sees who has not enrolled; the member does not see anyone's state.
    let seen = owner.get(&format!("/api/v1/orgs/{org}/members")).await;
    let state: Vec<(String, Value)> = seen.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["user"]["email"].as_str().unwrap().to_string(),
                m["two_factor_enabled"].clone(),
            )
        })
        .collect();
    assert!(
        state.contains(&("owner@example.com".into(), json!(true))),
        "{state:?}"
    );
    assert!(
        state.contains(&("mia@example.com".into(), json!(false))),
        "{state:?}"
    );
    let by_member = member.get(&format!("/api/v1/orgs/{org}/members")).await;
    assert!(
        !by_member.text.contains("two_factor_enabled"),
        "{}",
        by_member.text
    );
    let page = owner.get(&format!("/o/{slug}/members")).await;
    assert!(
        page.text.contains("no two-factor"),
        "the members page marks Mia"
    );
    // In the grace period the member still gets in.
    assert_eq!(
        member.get(&format!("/api/v1/orgs/{org}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        token.get(&format!("/api/v1/orgs/{org}")).await.status,
        StatusCode::OK
    );
    // After it: refused there on the API (session and token), the gateway and the pages.
    clock.advance(Duration::from_secs(3 * 24 * 3600 + 60));
    let r = member.get(&format!("/api/v1/orgs/{org}/agents")).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "two_factor_required"),
        "{}",
        r.text
    );
    let r = token.get(&format!("/api/v1/orgs/{org}/agents")).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "two_factor_required"),
        "{}",
        r.text
    );
    let r = token.get("/v1/models").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = member.get(&format!("/o/{slug}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers["location"], "/account/two-factor?required=1");
    let enrol_page = member.get("/account/two-factor?required=1").await;
    assert_eq!(enrol_page.status, StatusCode::OK);
    assert!(
        enrol_page.text.contains("requires two-factor"),
        "{}",
        enrol_page.text
    );
    // Their personal workspace is not affected, nor is the owner (who has it).
    assert_eq!(
        member
            .get(&format!("/api/v1/orgs/{}/agents", member_user.personal_org))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        owner
            .get(&format!("/api/v1/orgs/{org}/agents"))
            .await
            .status,
        StatusCode::OK
    );
    // Enrolling lets the member in again.
    enrol(&app, &member).await;
    assert_eq!(
        member
            .get(&format!("/api/v1/orgs/{org}/agents"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        token
            .get(&format!("/api/v1/orgs/{org}/agents"))
            .await
            .status,
        StatusCode::OK
    );
    // The policy change is in the organization's chain.
    let rows = audit_rows(&owner, &org).await;
    let row = rows
        .iter()
        .find(|r| {
            r["action"] == "organization.security_changed"
                && r["details"]["changes"]["require_2fa"].is_object()
        })
        .expect("audited");
    assert_eq!(row["details"]["changes"]["require_2fa_grace_days"]["to"], 3);
}

#[tokio::test]
async fn another_orgs_security_policy_is_not_found_and_one_orgs_policy_leaves_the_others_alone() {
    let (app, clock) = clocked().await;
    let (_, alice) = new_person(&app, "alice@example.com", "Alice").await;
    let (_, bob) = new_person(&app, "bob@example.com", "Bob").await;
    let (_, carol) = new_person(&app, "carol@example.com", "Carol").await;
    let (org_a, _) = create_org(&alice, "Alpha", "alpha").await;
    let (org_b, _) = create_org(&bob, "Beta", "beta").await;
    // Carol belongs to both; neither owner knows the other's organization.
    invite_and_join(&alice, &org_a, "carol@example.com", "member", &carol).await;
    invite_and_join(&bob, &org_b, "carol@example.com", "admin", &carol).await;
    enrol(&app, &alice).await;
    // Bob, owner of B, reaches nothing of A's policy, by id or by slug.
    for path in [
        format!("/api/v1/orgs/{org_a}/security"),
        "/api/v1/orgs/alpha/security".into(),
    ] {
        let r = bob.get(&path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
        assert!(!r.text.contains("require_2fa"));
        let r = bob
            .send(
                reqwest::Method::PATCH,
                &path,
                Some(json!({"require_2fa": false, "require_2fa_grace_days": 9})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
    }
    let r = alice
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/orgs/{org_a}/security"),
            Some(json!({"require_2fa": true, "require_2fa_grace_days": 0})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Bob's organization is untouched by it: its policy is off and Carol works there.
    let b_policy = bob.get(&format!("/api/v1/orgs/{org_b}/security")).await;
    assert_eq!(b_policy.body["require_2fa"], false, "{}", b_policy.text);
    clock.advance(Duration::from_secs(60));
    let (_, carol_in_b) = token_for(&app, &carol, &org_b, "b-token").await;
    assert_eq!(
        carol
            .get(&format!("/api/v1/orgs/{org_a}/agents"))
            .await
            .code(),
        "two_factor_required"
    );
    assert_eq!(
        carol
            .get(&format!("/api/v1/orgs/{org_b}/agents"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        carol_in_b
            .get(&format!("/api/v1/orgs/{org_b}/agents"))
            .await
            .status,
        StatusCode::OK
    );
    let models = carol_in_b.get("/v1/models").await;
    assert_ne!(models.status, StatusCode::FORBIDDEN, "{}", models.text);
    // A's policy is as Alice set it: Bob's attempts changed nothing.
    let a_policy = alice.get(&format!("/api/v1/orgs/{org_a}/security")).await;
    assert_eq!(a_policy.body["require_2fa_grace_days"], 0);
    // Carol's own state is hers: the policy of A never shows in B's member list.
    let listed = bob.get(&format!("/api/v1/orgs/{org_b}/members")).await;
    assert!(!listed.text.contains("alpha") && !listed.text.contains("Alpha"));
}
