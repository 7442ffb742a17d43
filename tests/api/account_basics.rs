//! Account basics: changing the password (other sessions and tokens end by default),
//! signing out everywhere, "forgot password" by a mailed one-time link, and
//! `xagent admin reset-password` on the command line.
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::invitations::smtp_listener;
use crate::org_fixture::*;

fn instance_actions(app: &TestApp) -> Vec<(String, String)> {
    let c = rusqlite::Connection::open(app.data_dir().join("xagent.db")).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut stmt = c
        .prepare("SELECT action, details FROM instance_audit_logs ORDER BY rowid")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

const NEW_PASSWORD: &str = "a brand new passphrase";

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_other_sessions_and_tokens() {
    let app = TestApp::spawn().await;
    let ada = app.create_user("ada@example.com", "Ada").await;
    let here = app.login("ada@example.com").await;
    let elsewhere = app.login("ada@example.com").await;
    let (_, token) = token_for(&app, &here, &ada.personal_org, "ci").await;
    let wrong = here
        .post(
            "/api/v1/me/password",
            json!({"current_password": "not it at all", "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.text);
    assert!(wrong.body["error"]["fields"]["current_password"].is_string());
    let short = here
        .post(
            "/api/v1/me/password",
            json!({"current_password": PASSWORD, "new_password": "short"}),
        )
        .await;
    assert!(
        short.body["error"]["fields"]["new_password"].is_string(),
        "{}",
        short.text
    );
    // A token cannot change the password.
    let r = token
        .send(
            reqwest::Method::POST,
            "/api/v1/me/password",
            Some(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "session_required")
    );
    assert_eq!(elsewhere.get("/api/v1/me").await.status, StatusCode::OK);
    let r = here
        .post(
            "/api/v1/me/password",
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["sessions_ended"], 1);
    assert_eq!(r.body["tokens_revoked"], 1);
    assert_eq!(
        here.get("/api/v1/me").await.status,
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(
        elsewhere.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        token.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(app.login_with("ada@example.com", PASSWORD).await.is_err());
    app.login_with("ada@example.com", NEW_PASSWORD)
        .await
        .unwrap();
    let (_, details) = instance_actions(&app)
        .into_iter()
        .find(|(a, _)| a == "user.password_changed")
        .expect("audited");
    assert!(details.contains("\"sessions_ended\":1"), "{details}");
    assert!(!details.contains(NEW_PASSWORD) && !details.contains(PASSWORD));
}

#[tokio::test]
async fn a_password_change_can_keep_the_other_sessions_and_the_tokens() {
    let app = TestApp::spawn().await;
    let ada = app.create_user("ada@example.com", "Ada").await;
    let here = app.login("ada@example.com").await;
    let elsewhere = app.login("ada@example.com").await;
    let (_, token) = token_for(&app, &here, &ada.personal_org, "ci").await;
    let r = here
        .post(
            "/api/v1/me/password",
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                   "end_other_sessions": false, "revoke_tokens": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (
            r.body["sessions_ended"].clone(),
            r.body["tokens_revoked"].clone()
        ),
        (json!(0), json!(0))
    );
    assert_eq!(elsewhere.get("/api/v1/me").await.status, StatusCode::OK);
    assert_eq!(token.get("/api/v1/me").await.status, StatusCode::OK);
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_session_and_the_tokens_when_asked() {
    let app = TestApp::spawn().await;
    let ada = app.create_user("ada@example.com", "Ada").await;
    let here = app.login("ada@example.com").await;
    let elsewhere = app.login("ada@example.com").await;
    let (_, token) = token_for(&app, &here, &ada.personal_org, "ci").await;
    let r = here.post("/api/v1/me/sign-out-everywhere", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["sessions_ended"], 2);
    assert!(
        r.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("xagent_session=")
    );
    assert_eq!(
        here.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        elsewhere.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        token.get("/api/v1/me").await.status,
        StatusCode::OK,
        "tokens stay by default"
    );
    let again = app.login("ada@example.com").await;
    let r = again
        .post(
            "/api/v1/me/sign-out-everywhere",
            json!({"revoke_tokens": true}),
        )
        .await;
    assert_eq!(r.body["tokens_revoked"], 1, "{}", r.text);
    assert_eq!(
        token.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    let n = instance_actions(&app)
        .iter()
        .filter(|(a, _)| a == "user.signed_out_everywhere")
        .count();
    assert_eq!(n, 2);
}

async fn next_mail(mails: &mut tokio::sync::mpsc::Receiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), mails.recv())
        .await
        .expect("a mail arrives")
        .unwrap()
        .replace("=\n", "")
}

/// The reset link a mail carries (after the transfer encoding's soft breaks).
fn link_in(mail: &str) -> String {
    let start = mail.find("http://").expect("a link");
    mail[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .replace("=3D", "=")
        .to_string()
}

fn smtp_to(c: &mut xagent::config::Config, port: u16) {
    c.smtp = Some(xagent::config::SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: xagent::config::SmtpTls::None,
        username: None,
        password: None,
        from: "xagent <noreply@example.com>".into(),
    });
}

#[tokio::test]
async fn forgot_password_mails_a_link_that_works_once_for_thirty_minutes() {
    let (port, mut mails) = smtp_listener().await;
    let clock = xagent::domain::Clock::default();
    let app = TestApp::spawn_with(|c| {
        smtp_to(c, port);
        c.clock = clock.clone();
    })
    .await;
    app.create_user("ada@example.com", "Ada").await;
    let old_session = app.login("ada@example.com").await;
    let anon = cookie_client();
    let ask = |email: &'static str| {
        let anon = anon.clone();
        let url = app.url("/api/v1/auth/forgot-password");
        async move {
            reply(
                anon.post(url)
                    .json(&json!({"email": email}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let r = ask("ada@example.com").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(
        !r.text.contains("reset-password/"),
        "the link is mailed, not answered"
    );
    let mail = next_mail(&mut mails).await;
    assert!(mail.contains("To: ada@example.com"), "{mail}");
    let link = link_in(&mail);
    assert!(
        link.starts_with(&format!("{}/reset-password/", app.base)),
        "{link}"
    );
    let token = link.rsplit('/').next().unwrap().to_string();
    // The page of the link names the account; setting the password works once.
    let page = reply(anon.get(&link).send().await.unwrap()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("ada@example.com"));
    let set = reply(
        anon.post(app.url("/api/v1/auth/reset-password"))
            .json(&json!({"token": token, "password": NEW_PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(set.status, StatusCode::NO_CONTENT, "{}", set.text);
    assert_eq!(
        old_session.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    app.login_with("ada@example.com", NEW_PASSWORD)
        .await
        .unwrap();
    let again = reply(
        anon.post(app.url("/api/v1/auth/reset-password"))
            .json(&json!({"token": token, "password": "yet another one!"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "used once");
    // A second link expires after 30 minutes.
    assert_eq!(ask("ada@example.com").await.status, StatusCode::ACCEPTED);
    let late = link_in(&next_mail(&mut mails).await);
    clock.advance(Duration::from_secs(31 * 60));
    let page = reply(anon.get(&late).send().await.unwrap()).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    // An unknown email gets the same answer and no mail.
    let r = ask("nobody@example.com").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), mails.recv())
            .await
            .is_err(),
        "no mail for an unknown email"
    );
    // Three requests for the same email within half an hour; the fourth is throttled.
    assert_eq!(ask("ada@example.com").await.status, StatusCode::ACCEPTED);
    next_mail(&mut mails).await;
    let r = ask("ada@example.com").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.headers.get("retry-after").is_some());
    // Every step is in the instance chain, and no token is in it.
    let actions = instance_actions(&app);
    let requested: Vec<&String> = actions
        .iter()
        .filter(|(a, _)| a == "user.password_reset_requested")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(requested.len(), 4, "{requested:?}");
    assert!(requested[2].contains("\"emailed\":false"), "{requested:?}");
    assert!(actions.iter().any(|(a, _)| a == "user.password_reset"));
    assert!(actions.iter().all(|(_, d)| !d.contains(&token)));
}

#[tokio::test]
async fn forgot_password_without_mail_says_to_ask_an_administrator() {
    let app = TestApp::spawn().await;
    app.create_user("ada@example.com", "Ada").await;
    let r = reply(
        cookie_client()
            .post(app.url("/api/v1/auth/forgot-password"))
            .json(&json!({"email": "ada@example.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "smtp_not_configured")
    );
    let page = reply(
        cookie_client()
            .get(app.url("/forgot-password"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        page.text.contains("Ask an instance administrator"),
        "{}",
        page.text
    );
    let login = reply(cookie_client().get(app.url("/login")).send().await.unwrap()).await;
    assert!(login.text.contains("href=\"/forgot-password\""));
}

#[tokio::test]
async fn the_command_line_prints_a_one_time_reset_link() {
    let app = TestApp::spawn().await;
    app.create_user("ada@example.com", "Ada").await;
    let out = crate::cli::xagent()
        .args([
            "admin",
            "reset-password",
            "--email",
            "ada@example.com",
            "--data-dir",
        ])
        .arg(app.data_dir())
        .args(["--public-url", &app.base])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = stdout
        .split_whitespace()
        .find(|w| w.contains("/reset-password/"))
        .expect("a link")
        .to_string();
    assert!(
        link.starts_with(&format!("{}/reset-password/", app.base)),
        "{link}"
    );
    let token = link.rsplit('/').next().unwrap();
    let anon = cookie_client();
    let set = reply(
        anon.post(app.url("/api/v1/auth/reset-password"))
            .json(&json!({"token": token, "password": NEW_PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(set.status, StatusCode::NO_CONTENT, "{}", set.text);
    app.login_with("ada@example.com", NEW_PASSWORD)
        .await
        .unwrap();
    let (_, details) = instance_actions(&app)
        .into_iter()
        .find(|(a, _)| a == "user.password_reset_issued")
        .expect("audited");
    assert!(
        details.contains("command line") && !details.contains(token),
        "{details}"
    );
    // An unknown email is an error, and says so.
    let out = crate::cli::xagent()
        .args([
            "admin",
            "reset-password",
            "--email",
            "nobody@example.com",
            "--data-dir",
        ])
        .arg(app.data_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no account"));
}
