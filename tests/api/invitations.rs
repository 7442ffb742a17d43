//! Invitations: lifetimes, single use, email match, visitors making an account, email.
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::*;

async fn team_org(s: &Session, slug: &str) -> String {
    let r = s
        .post("/api/v1/orgs", json!({"name": "Team", "slug": slug}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    r.body["id"].as_str().unwrap().to_string()
}

fn raw_db(app: &TestApp) -> rusqlite::Connection {
    rusqlite::Connection::open(app.data_dir().join("xagent.db")).unwrap()
}

#[tokio::test]
async fn an_invitation_is_used_once_and_every_invalid_token_looks_the_same() {
    let app = TestApp::spawn().await;
    app.create_user("owner@example.com", "Owner").await;
    app.create_user("bob@example.com", "Bob").await;
    let owner = app.login("owner@example.com").await;
    let org = team_org(&owner, "acme").await;
    let inv = owner
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": "Bob@Example.com", "role": "member"}),
        )
        .await;
    assert_eq!(inv.status, StatusCode::CREATED);
    assert_eq!(inv.body["email"], "bob@example.com");
    assert_eq!(inv.body["email_sent"], false);
    let token = inv.body["token"].as_str().unwrap().to_string();
    assert_eq!(
        inv.body["accept_url"],
        format!("{}/invite/{token}", app.base).as_str()
    );
    // Seven days by default.
    let exp =
        chrono::DateTime::parse_from_rfc3339(inv.body["expires_at"].as_str().unwrap()).unwrap();
    let days = (exp.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!((167..=168).contains(&days), "{days}");
    // The pending list never shows the token.
    let pending = owner.get(&format!("/api/v1/orgs/{org}/invitations")).await;
    assert_eq!(pending.body["items"].as_array().unwrap().len(), 1);
    assert!(!pending.text.contains(&token));

    let bob = app.login("bob@example.com").await;
    let ok = bob
        .post("/api/v1/invitations/accept", json!({"token": token}))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body["role"], "member");
    assert_eq!(ok.body["organization"]["id"], org.as_str());
    assert_eq!(
        bob.get(&format!("/api/v1/orgs/{org}")).await.body["role"],
        "member"
    );
    // Accepting made it Bob's current organization.
    assert_eq!(
        bob.get("/api/v1/me").await.body["current_organization_id"],
        org.as_str()
    );

    let used = bob
        .post("/api/v1/invitations/accept", json!({"token": token}))
        .await;
    let unknown = bob
        .post(
            "/api/v1/invitations/accept",
            json!({"token": "x".repeat(43)}),
        )
        .await;
    let cancelled = {
        let inv = owner
            .post(
                &format!("/api/v1/orgs/{org}/invitations"),
                json!({"email": "carol@example.com", "role": "viewer"}),
            )
            .await;
        let id = inv.body["id"].as_str().unwrap();
        assert_eq!(
            owner
                .delete(&format!("/api/v1/orgs/{org}/invitations/{id}"))
                .await
                .status,
            StatusCode::NO_CONTENT
        );
        app.create_user("carol@example.com", "Carol").await;
        let carol = app.login("carol@example.com").await;
        carol
            .post(
                "/api/v1/invitations/accept",
                json!({"token": inv.body["token"]}),
            )
            .await
    };
    let expired = {
        let inv = owner
            .post(
                &format!("/api/v1/orgs/{org}/invitations"),
                json!({"email": "dan@example.com", "role": "viewer"}),
            )
            .await;
        raw_db(&app)
            .execute(
                "UPDATE organization_invitations SET expires_at = '2001-01-01T00:00:00.000000Z' WHERE id = ?1",
                [inv.body["id"].as_str().unwrap()],
            )
            .unwrap();
        app.create_user("dan@example.com", "Dan").await;
        let dan = app.login("dan@example.com").await;
        dan.post(
            "/api/v1/invitations/accept",
            json!({"token": inv.body["token"]}),
        )
        .await
    };
    for r in [&used, &unknown, &cancelled, &expired] {
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.code(), "invitation_invalid");
        assert_eq!(
            r.body, used.body,
            "the four cases must be indistinguishable"
        );
    }
}

#[tokio::test]
async fn a_user_with_another_email_cannot_accept() {
    let app = TestApp::spawn().await;
    app.create_user("owner@example.com", "Owner").await;
    app.create_user("mallory@example.com", "Mallory").await;
    let owner = app.login("owner@example.com").await;
    let org = team_org(&owner, "acme").await;
    let inv = owner
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": "bob@example.com", "role": "admin"}),
        )
        .await;
    let mallory = app.login("mallory@example.com").await;
    let r = mallory
        .post(
            "/api/v1/invitations/accept",
            json!({"token": inv.body["token"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "invitation_email_mismatch");
    assert_eq!(
        mallory.get(&format!("/api/v1/orgs/{org}")).await.status,
        StatusCode::NOT_FOUND
    );
    // Still usable by Bob afterwards.
    assert_eq!(
        owner
            .get(&format!("/api/v1/orgs/{org}/invitations"))
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn the_members_page_says_when_an_invitation_replaced_an_earlier_link() {
    let app = TestApp::spawn().await;
    app.create_user("owner@example.com", "Owner").await;
    let owner = app.login("owner@example.com").await;
    team_org(&owner, "acme").await;
    let mut pages = Vec::new();
    for _ in 0..2 {
        let r = owner
            .client
            .post(app.url("/o/acme/invitations"))
            .form(&[
                ("email", "bob@example.com"),
                ("role", "member"),
                ("csrf_token", owner.csrf.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        pages.push(r.text().await.unwrap());
    }
    let note = "The link sent earlier to bob@example.com no longer works";
    assert!(!pages[0].contains(note), "{}", pages[0]);
    assert!(pages[1].contains(note), "{}", pages[1]);
}

#[tokio::test]
async fn inviting_again_replaces_the_earlier_link_and_members_cannot_be_invited() {
    let app = TestApp::spawn().await;
    app.create_user("owner@example.com", "Owner").await;
    let owner = app.login("owner@example.com").await;
    let org = team_org(&owner, "acme").await;
    let first = owner
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": "bob@example.com", "role": "member"}),
        )
        .await;
    let second = owner
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": "bob@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(first.body["replaced_invitation"], false);
    assert_eq!(second.body["replaced_invitation"], true);
    let pending = owner.get(&format!("/api/v1/orgs/{org}/invitations")).await;
    let items = pending.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["role"], "viewer");
    app.create_user("bob@example.com", "Bob").await;
    let bob = app.login("bob@example.com").await;
    let old = bob
        .post(
            "/api/v1/invitations/accept",
            json!({"token": first.body["token"]}),
        )
        .await;
    assert_eq!(old.code(), "invitation_invalid");
    assert_eq!(
        bob.post(
            "/api/v1/invitations/accept",
            json!({"token": second.body["token"]})
        )
        .await
        .status,
        StatusCode::OK
    );
    let again = owner
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": "bob@example.com", "role": "member"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "already_member");
    // Personal workspaces take no invitations.
    let me = owner.get("/api/v1/me").await;
    let personal = me.body["memberships"][0]["organization"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = owner
        .post(
            &format!("/api/v1/orgs/{personal}/invitations"),
            json!({"email": "x@example.com", "role": "member"}),
        )
        .await;
    assert_eq!(r.code(), "personal_organization");
}

#[tokio::test]
async fn a_visitor_makes_an_account_through_an_invitation_even_with_signup_off() {
    let app = TestApp::spawn().await;
    app.create_user("owner@example.com", "Owner").await;
    let owner = app.login("owner@example.com").await;
    let org = team_org(&owner, "acme").await;
    let inv = owner
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": "new@example.com", "role": "manager"}),
        )
        .await;
    let token = inv.body["token"].as_str().unwrap();
    let meta = xagent::services::ClientMeta::default();
    let short = xagent::services::invitations::accept_with_new_account(
        &app.svc, token, "New", "short", &meta,
    )
    .await;
    assert!(short.is_err());
    let (user, org_joined, role) = xagent::services::invitations::accept_with_new_account(
        &app.svc,
        token,
        "New Person",
        PASSWORD,
        &meta,
    )
    .await
    .unwrap();
    assert_eq!(user.email, "new@example.com");
    assert_eq!(org_joined.id.to_string(), org);
    assert_eq!(role, xagent::domain::Role::Manager);
    let s = app.login("new@example.com").await;
    let orgs = s.get("/api/v1/orgs").await;
    assert_eq!(
        orgs.body["items"].as_array().unwrap().len(),
        2,
        "personal workspace and the team org"
    );
    // The token is spent.
    let again = xagent::services::invitations::accept_with_new_account(
        &app.svc, token, "X", PASSWORD, &meta,
    )
    .await;
    assert!(again.is_err());
}

/// A minimal SMTP server: accepts one message and hands its DATA over.
pub(crate) async fn smtp_listener() -> (u16, tokio::sync::mpsc::Receiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220 test ESMTP\r\n").await.unwrap();
                let mut data = String::new();
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            w.write_all(b"250 OK queued\r\n").await.unwrap();
                            let _ = tx.send(std::mem::take(&mut data)).await;
                        } else {
                            data.push_str(&line);
                            data.push('\n');
                        }
                        continue;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250-test\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("DATA") {
                        in_data = true;
                        b"354 go ahead\r\n"
                    } else if upper.starts_with("QUIT") {
                        w.write_all(b"221 bye\r\n").await.unwrap();
                        break;
                    } else {
                        b"250 OK\r\n"
                    };
                    w.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, rx)
}

#[tokio::test]
async fn with_smtp_configured_the_invitation_is_emailed() {
    let (port, mut mails) = smtp_listener().await;
    let app = TestApp::spawn_with(|c| {
        c.smtp = Some(xagent::config::SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: xagent::config::SmtpTls::None,
            username: None,
            password: None,
            from: "xagent <noreply@example.com>".into(),
        });
    })
    .await;
    app.create_user("owner@example.com", "Owner").await;
    let owner = app.login("owner@example.com").await;
    let org = team_org(&owner, "acme").await;
    let inv = owner
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": "bob@example.com", "role": "member"}),
        )
        .await;
    assert_eq!(inv.status, StatusCode::CREATED);
    assert_eq!(inv.body["email_sent"], true);
    let mail = tokio::time::timeout(Duration::from_secs(10), mails.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(mail.contains("To: bob@example.com"), "{mail}");
    assert!(
        mail.contains("Subject: You are invited to Team on xagent"),
        "{mail}"
    );
    // Long lines may be folded by the transfer encoding; compare without soft breaks.
    let unfolded = mail.replace("=\n", "");
    assert!(
        unfolded.contains(inv.body["accept_url"].as_str().unwrap()),
        "{mail}"
    );
}

#[tokio::test]
async fn an_unreachable_smtp_server_does_not_lose_the_invitation() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = TestApp::spawn_with(|c| {
        c.smtp = Some(xagent::config::SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: xagent::config::SmtpTls::None,
            username: Some("u".into()),
            password: Some(xagent::config::Secret::new("smtp-secret-pw")),
            from: "xagent <noreply@example.com>".into(),
        });
    })
    .await;
    app.create_user("owner@example.com", "Owner").await;
    let owner = app.login("owner@example.com").await;
    let org = team_org(&owner, "acme").await;
    let inv = owner
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": "bob@example.com", "role": "member"}),
        )
        .await;
    assert_eq!(inv.status, StatusCode::CREATED);
    assert_eq!(inv.body["email_sent"], false);
    assert!(!inv.text.contains("smtp-secret-pw"));
    assert!(inv.body["token"].is_string());
}

#[tokio::test]
async fn the_plans_member_limit_counts_members_and_pending_invitations() {
    let app = TestApp::spawn().await;
    app.create_user("owner@example.com", "Owner").await;
    let owner = app.login("owner@example.com").await;
    let org = team_org(&owner, "full").await;
    // The free plan allows 10 members: the owner plus nine invitations fill it.
    let mut tokens = Vec::new();
    for i in 0..9 {
        let r = owner
            .post(
                &format!("/api/v1/orgs/{org}/invitations"),
                json!({"email": format!("u{i}@example.com"), "role": "member"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        tokens.push(r.body["token"].as_str().unwrap().to_string());
    }
    let over = owner
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": "u9@example.com", "role": "member"}),
        )
        .await;
    assert_eq!(over.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(over.code(), "plan_limit");
    assert!(
        over.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("10")
    );
    // Re-inviting someone already invited replaces the invitation and still fits.
    let again = owner
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": "u0@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    let limits = owner.get(&format!("/api/v1/orgs/{org}/limits")).await;
    assert_eq!(limits.body["users"], json!({"used": 1, "max": 10}));
}

#[tokio::test]
async fn finished_invitations_are_removed_a_month_after_they_ended_and_pending_ones_stay() {
    let clock = xagent::domain::Clock::default();
    let app = TestApp::spawn_with(|c| {
        c.clock = clock.clone();
        c.maintenance_interval = Duration::from_millis(100);
    })
    .await;
    app.create_user("owner@example.com", "Owner").await;
    let owner = app.login("owner@example.com").await;
    let org = team_org(&owner, "tidy").await;
    let other = team_org(&owner, "other-tidy").await;
    let invite = |org: String, email: &'static str| {
        let owner = &owner;
        async move {
            let r = owner
                .post(
                    &format!("/api/v1/orgs/{org}/invitations"),
                    json!({"email": email, "role": "member"}),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
            r.body["id"].as_str().unwrap().to_string()
        }
    };
    let cancelled = invite(org.clone(), "gone@example.com").await;
    let r = owner
        .delete(&format!("/api/v1/orgs/{org}/invitations/{cancelled}"))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let cancelled_elsewhere = invite(other.clone(), "gone@example.com").await;
    let r = owner
        .delete(&format!(
            "/api/v1/orgs/{other}/invitations/{cancelled_elsewhere}"
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let count = |id: &str| -> i64 {
        raw_db(&app)
            .query_row(
                "SELECT count(*) FROM organization_invitations WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
    };

    // Several maintenance ticks later, a fresh cancellation is still there (the members
    // page and the audit log may still refer to it).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(count(&cancelled), 1, "kept while recent");

    // A month and a day on, both organizations' finished invitations go; one made just
    // now (still pending) stays.
    clock.advance(Duration::from_secs(31 * 24 * 3600));
    // The session ended with the month; signing in again is what a person does.
    let owner = app.login("owner@example.com").await;
    let r = owner
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": "new@example.com", "role": "member"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let pending = r.body["id"].as_str().unwrap().to_string();
    let mut waited = 0;
    while (count(&cancelled) + count(&cancelled_elsewhere)) > 0 {
        assert!(waited < 100, "finished invitations were never removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert_eq!(count(&pending), 1, "a pending invitation stays");
    let listed = owner.get(&format!("/api/v1/orgs/{org}/invitations")).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
}
