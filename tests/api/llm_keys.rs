//! LLM providers and keys: write-only keys sealed per row, user → organization →
//! environment resolution, master key rotation, and isolation between organizations.
use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use xagent::config::{EnvProvider, Secret};

use crate::common::mock_llm::MockLlm;
use crate::common::{Session, TestApp};
use crate::org_fixture::{World, create_org, invite_and_join, new_person, token_for, two_orgs_in};

const ORG_KEY: &str = "sk-org-secret-0000-AAAA1111";
const USER_KEY: &str = "sk-user-secret-0000-BBBB2222";
const ENV_KEY: &str = "sk-env-secret-0000-CCCC3333";

fn raw_db(app: &TestApp) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(app.data_dir().join("xagent.db")).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    c
}

fn assert_no_secret(what: &str, text: &str) {
    for k in [ORG_KEY, USER_KEY, ENV_KEY] {
        assert!(!text.contains(k), "{what} shows a key: {text}");
    }
}

async fn set_org_key(owner: &Session, org: &str, key: Option<&str>) {
    let r = owner
        .put(
            &format!("/api/v1/orgs/{org}/llm/providers/openai"),
            json!({ "api_key": key }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_secret("PUT provider", &r.text);
}

async fn allow_user_keys(owner: &Session, org: &str, allow: bool) {
    let r = owner
        .send(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}/llm/policy"),
            Some(json!({ "allow_user_keys": allow })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn resolve(s: &Session, org: &str) -> Value {
    let r = s
        .get(&format!("/api/v1/orgs/{org}/llm/resolve?provider=openai"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_secret("resolve", &r.text);
    r.body
}

/// An owner and a member of one team organization.
async fn org_with_member(app: &TestApp) -> (Session, Session, String) {
    let (_, owner) = new_person(app, "owner@llm.example", "Owner").await;
    let (_, member) = new_person(app, "member@llm.example", "Member").await;
    let (org, _) = create_org(&owner, "LLM Org", "llm-org").await;
    invite_and_join(&owner, &org, "member@llm.example", "member", &member).await;
    (owner, member, org)
}

fn with_env_key(c: &mut xagent::config::Config) {
    c.env_providers.insert(
        "openai".into(),
        EnvProvider {
            api_key: Some(Secret::new(ENV_KEY)),
            base_url: None,
        },
    );
}

#[tokio::test]
async fn keys_resolve_user_then_organization_then_environment() {
    for env in [false, true] {
        let app = if env {
            TestApp::spawn_with(with_env_key).await
        } else {
            TestApp::spawn().await
        };
        let (owner, member, org) = org_with_member(&app).await;
        for allow in [false, true] {
            for user_key in [false, true] {
                for org_key in [false, true] {
                    let case = format!("env={env} allow={allow} user={user_key} org={org_key}");
                    // A user key can only be stored while allowed; it stays when disallowed.
                    allow_user_keys(&owner, &org, true).await;
                    let mine = format!("/api/v1/me/llm/providers/openai?org={org}");
                    if user_key {
                        let r = member.put(&mine, json!({ "api_key": USER_KEY })).await;
                        assert_eq!(r.status, StatusCode::OK, "{case}: {}", r.text);
                        assert_eq!(r.body["key_hint"], "sk-…2222");
                    } else {
                        let _ = member.delete(&mine).await;
                    }
                    allow_user_keys(&owner, &org, allow).await;
                    set_org_key(&owner, &org, org_key.then_some(ORG_KEY)).await;
                    let (source, hint) = if allow && user_key {
                        ("user", json!("sk-…2222"))
                    } else if org_key {
                        ("organization", json!("sk-…1111"))
                    } else if env {
                        ("environment", json!("sk-…3333"))
                    } else {
                        ("none", Value::Null)
                    };
                    let got = resolve(&member, &org).await;
                    assert_eq!(got["source"], source, "{case}: {got}");
                    assert_eq!(got["key_hint"], hint, "{case}: {got}");
                    assert_eq!(got["base_url"], "https://api.openai.com/v1", "{case}");
                    if source == "none" {
                        assert!(
                            got["reason"]
                                .as_str()
                                .unwrap()
                                .contains("XAGENT_OPENAI_API_KEY")
                        );
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn a_disabled_provider_and_base_urls_resolve_as_configured() {
    let app = TestApp::spawn_with(with_env_key).await;
    let (owner, member, org) = org_with_member(&app).await;
    let path = format!("/api/v1/orgs/{org}/llm/providers/openai");
    // Only a base URL: the key still comes from the environment, through that URL.
    let r = owner
        .put(&path, json!({"base_url": "http://127.0.0.1:9/v1/"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["key_hint"], Value::Null);
    let got = resolve(&member, &org).await;
    assert_eq!(got["source"], "environment");
    assert_eq!(got["base_url"], "http://127.0.0.1:9/v1");
    let r = owner.put(&path, json!({"enabled": false})).await;
    assert_eq!(r.status, StatusCode::OK);
    let got = resolve(&member, &org).await;
    assert_eq!(got["source"], "none");
    assert!(got["reason"].as_str().unwrap().contains("disabled"));
    // Deleting the entry brings the environment back, at its default URL.
    assert_eq!(owner.delete(&path).await.status, StatusCode::NO_CONTENT);
    let got = resolve(&member, &org).await;
    assert_eq!(got["source"], "environment");
    assert_eq!(got["base_url"], "https://api.openai.com/v1");
    assert_eq!(owner.delete(&path).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn keys_are_write_only_validated_permissioned_and_audited_without_secrets() {
    let app = TestApp::spawn().await;
    let (owner, member, org) = org_with_member(&app).await;
    let path = format!("/api/v1/orgs/{org}/llm/providers/openai");
    // A member may not manage the organization's keys or policy.
    let r = member.put(&path, json!({"api_key": ORG_KEY})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "permission_denied")
    );
    let r = member
        .send(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}/llm/policy"),
            Some(json!({"allow_user_keys": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Own keys only when the organization allows them.
    let mine = format!("/api/v1/me/llm/providers/openai?org={org}");
    let r = member.put(&mine, json!({"api_key": USER_KEY})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "user_keys_disabled")
    );
    // Bad input: clear errors, nothing stored.
    for (p, body, field) in [
        (
            path.clone(),
            json!({"api_key": "has space in it"}),
            "api_key",
        ),
        (path.clone(), json!({"base_url": "ftp://x"}), "base_url"),
        (path.clone(), json!({"api_key": 42}), ""),
        (path.clone(), json!({"apikey": ORG_KEY}), ""),
        (
            format!("/api/v1/orgs/{org}/llm/providers/Open%20AI"),
            json!({"api_key": ORG_KEY}),
            "provider",
        ),
    ] {
        let r = owner.put(&p, body.clone()).await;
        assert!(
            r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {} {}",
            r.status,
            r.text
        );
        assert_no_secret("error", &r.text);
        if !field.is_empty() {
            assert!(r.body["error"]["fields"][field].is_string(), "{}", r.text);
        }
    }
    let r = owner
        .send(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}/llm/policy"),
            Some(json!({"allowed_models": ["gpt-4o-mini"], "default_model": "gpt-5"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "validation_failed"),
        "{}",
        r.text
    );
    let settings = owner.get(&format!("/api/v1/orgs/{org}/llm")).await;
    assert_eq!(settings.body["providers"], json!([]));
    assert_eq!(settings.body["policy"]["allowed_models"], json!([]));
    // Set, read back as a hint only.
    set_org_key(&owner, &org, Some(ORG_KEY)).await;
    allow_user_keys(&owner, &org, true).await;
    let r = member.put(&mine, json!({"api_key": USER_KEY})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_no_secret("PUT own key", &r.text);
    let settings = member.get(&format!("/api/v1/orgs/{org}/llm")).await;
    assert_eq!(settings.status, StatusCode::OK);
    assert_no_secret("settings", &settings.text);
    assert_eq!(settings.body["providers"][0]["key_hint"], "sk-…1111");
    assert_eq!(settings.body["policy"]["allow_user_keys"], true);
    let own = member
        .get(&format!("/api/v1/me/llm/providers?org={org}"))
        .await;
    assert_eq!(own.body["items"][0]["key_hint"], "sk-…2222");
    assert_no_secret("own keys", &own.text);
    // Every change is audited, none with a key in it.
    let audit = owner
        .get(&format!("/api/v1/orgs/{org}/audit?limit=200"))
        .await;
    assert_no_secret("audit", &audit.text);
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for a in [
        "llm.provider.updated",
        "llm.policy.updated",
        "llm.user_key.updated",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    // Removing one's own key works even after the organization disallows them.
    allow_user_keys(&owner, &org, false).await;
    assert_eq!(member.delete(&mine).await.status, StatusCode::NO_CONTENT);
    assert_eq!(member.delete(&mine).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn provider_keys_are_encrypted_at_rest_and_bound_to_their_row() {
    let app = TestApp::spawn().await;
    let (owner, member, org) = org_with_member(&app).await;
    set_org_key(&owner, &org, Some(ORG_KEY)).await;
    allow_user_keys(&owner, &org, true).await;
    let r = member
        .put(
            &format!("/api/v1/me/llm/providers/openai?org={org}"),
            json!({"api_key": USER_KEY}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let (other, _) = create_org(&owner, "Other", "other-org").await;
    set_org_key(&owner, &other, Some("sk-other-secret-0000-DDDD4444")).await;
    // The database file and its WAL hold no key in the clear.
    for name in ["xagent.db", "xagent.db-wal"] {
        let path = app.data_dir().join(name);
        if let Ok(bytes) = std::fs::read(&path) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("secret-0000"),
                "{name} holds a key in the clear"
            );
        }
    }
    assert_eq!(resolve(&member, &org).await["source"], "user");
    assert_eq!(resolve(&owner, &org).await["source"], "organization");
    // A ciphertext moved to another row does not open: the member's sealed key placed in
    // the organization's row, and the other organization's placed in this one.
    let db = raw_db(&app);
    let (user_ct, user_kid): (String, String) = db
        .query_row(
            "SELECT key_ciphertext, key_id FROM user_llm_settings WHERE organization_id = ?1",
            [&org],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    db.execute(
        "UPDATE organization_llm_settings SET key_ciphertext = ?2, key_id = ?3 WHERE organization_id = ?1",
        rusqlite::params![org, user_ct, user_kid],
    )
    .unwrap();
    let r = owner
        .get(&format!("/api/v1/orgs/{org}/llm/resolve?provider=openai"))
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
    assert_no_secret("moved ciphertext", &r.text);
    let (foreign_ct, foreign_kid): (String, String) = db
        .query_row(
            "SELECT key_ciphertext, key_id FROM organization_llm_settings WHERE organization_id = ?1",
            [&other],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    db.execute(
        "UPDATE organization_llm_settings SET key_ciphertext = ?2, key_id = ?3 WHERE organization_id = ?1",
        rusqlite::params![org, foreign_ct, foreign_kid],
    )
    .unwrap();
    let r = owner
        .get(&format!("/api/v1/orgs/{org}/llm/resolve?provider=openai"))
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
    assert!(!r.text.contains("DDDD4444"));
    // The untouched organization still resolves.
    assert_eq!(resolve(&owner, &other).await["key_hint"], "sk-…4444");
}

fn xagent(data_dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xagent"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("XAGENT_MASTER_KEY")
        .env("XAGENT_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn master_key_rotation_keeps_every_key_usable_and_a_wrong_key_stops_the_start() {
    let app = TestApp::spawn().await;
    let (owner, member, org) = org_with_member(&app).await;
    set_org_key(&owner, &org, Some(ORG_KEY)).await;
    allow_user_keys(&owner, &org, true).await;
    let r = member
        .put(
            &format!("/api/v1/me/llm/providers/openai?org={org}"),
            json!({"api_key": USER_KEY}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let data = app.data_dir();
    let key_file = std::fs::read_to_string(data.join("master.key")).unwrap();
    let old_id = key_file
        .lines()
        .find(|l| l.starts_with("mk-"))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    // Rotate while the server runs: the data keys are re-wrapped, the server follows.
    let (ok, out) = xagent(&data, &["keys", "rotate"]);
    assert!(ok, "{out}");
    assert!(out.contains("1 data keys re-wrapped"), "{out}");
    let (ok, out) = xagent(&data, &["keys", "list"]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{old_id}  older, unused")), "{out}");
    assert_eq!(resolve(&member, &org).await["key_hint"], "sk-…2222");
    assert_eq!(resolve(&owner, &org).await["key_hint"], "sk-…1111");
    // A new organization's data key is wrapped by the new master key.
    let (second, _) = create_org(&owner, "Second", "second-org").await;
    set_org_key(&owner, &second, Some("sk-second-secret-0000-EEEE5555")).await;
    let (ok, out) = xagent(&data, &["keys", "retire"]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("retired {old_id}")), "{out}");
    assert!(
        !std::fs::read_to_string(data.join("master.key"))
            .unwrap()
            .contains(&old_id)
    );
    assert_eq!(resolve(&owner, &org).await["key_hint"], "sk-…1111");
    assert_eq!(resolve(&owner, &second).await["key_hint"], "sk-…5555");
    let dir = app.stop().await;
    // A wrong master key is refused at start with a clear message, not garbage later.
    let mut config = xagent::config::Config::new(dir.path().join("data"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.master_key = Some(Secret::new("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
    let err = xagent::app::Application::build(config)
        .await
        .err()
        .expect("a wrong master key must stop the start");
    let msg = err.to_string();
    assert!(msg.contains("does not match this database"), "{msg}");
    assert!(!msg.contains("AAAAAAAA"), "{msg}");
    // The key file's key as the environment variable works, and so does the file.
    let current = std::fs::read_to_string(dir.path().join("data/master.key")).unwrap();
    let b64 = current
        .lines()
        .find(|l| l.starts_with("mk-"))
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .to_string();
    let mut config = xagent::config::Config::new(dir.path().join("data"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.master_key = Some(Secret::new(b64));
    assert!(xagent::app::Application::build(config).await.is_ok());
}

#[tokio::test]
async fn llm_settings_and_keys_of_another_org_are_not_found() {
    let app = TestApp::spawn_with(with_env_key).await;
    let w: World = two_orgs_in(app).await;
    let a = &w.a;
    set_org_key(a.owner(), &a.id, Some(ORG_KEY)).await;
    allow_user_keys(a.owner(), &a.id, true).await;
    let member = &a.person("member").s;
    let r = member
        .put(
            &format!("/api/v1/me/llm/providers/openai?org={}", a.id),
            json!({"api_key": USER_KEY}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let before = a.owner().get(&a.path("/llm")).await.text;
    let missing = "01890000-0000-7000-8000-000000000000";
    let requests = |org: &str| {
        vec![
            (Method::GET, format!("/api/v1/orgs/{org}/llm"), None),
            (
                Method::PUT,
                format!("/api/v1/orgs/{org}/llm/providers/openai"),
                Some(json!({"api_key": "sk-intruder-0000-ZZZZ9999"})),
            ),
            (
                Method::POST,
                format!("/api/v1/orgs/{org}/llm/providers/openai/test"),
                None,
            ),
            (
                Method::POST,
                format!("/api/v1/me/llm/providers/openai/test?org={org}"),
                None,
            ),
            (
                Method::DELETE,
                format!("/api/v1/orgs/{org}/llm/providers/openai"),
                None,
            ),
            (
                Method::PATCH,
                format!("/api/v1/orgs/{org}/llm/policy"),
                Some(json!({"allow_user_keys": false})),
            ),
            (
                Method::GET,
                format!("/api/v1/orgs/{org}/llm/resolve?provider=openai"),
                None,
            ),
            (
                Method::GET,
                format!("/api/v1/me/llm/providers?org={org}"),
                None,
            ),
            (
                Method::PUT,
                format!("/api/v1/me/llm/providers/openai?org={org}"),
                Some(json!({"api_key": "sk-intruder-0000-ZZZZ9999"})),
            ),
            (
                Method::DELETE,
                format!("/api/v1/me/llm/providers/openai?org={org}"),
                None,
            ),
        ]
    };
    let (_, b_token) = token_for(&w.app, w.b.owner(), &w.b.id, "b-owner").await;
    for person in &w.b.people {
        for ((m, path, body), (_, missing_path, _)) in
            requests(&a.id).into_iter().zip(requests(missing))
        {
            let got = person.s.send(m.clone(), &path, body.clone()).await;
            let baseline = person.s.send(m.clone(), &missing_path, body.clone()).await;
            assert_eq!(
                got.status,
                StatusCode::NOT_FOUND,
                "{} {m} {path}",
                person.role
            );
            assert_eq!(got.body, baseline.body, "{m} {path}");
            assert_no_secret("cross-org", &got.text);
        }
        // By slug too.
        let got = person.s.get(&format!("/api/v1/orgs/{}/llm", a.slug)).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND);
    }
    for (m, path, body) in requests(&a.id) {
        let got = b_token.send(m.clone(), &path, body).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND, "token {m} {path}");
    }
    // Nothing of A changed, and A's member still resolves to their own key.
    assert_eq!(a.owner().get(&a.path("/llm")).await.text, before);
    assert_eq!(resolve(member, &a.id).await["source"], "user");
    // B's own view holds nothing of A.
    let b_view = w.b.owner().get(&w.b.path("/llm")).await;
    assert_eq!(b_view.body["providers"], json!([]));
    let b_resolve = resolve(w.b.owner(), &w.b.id).await;
    assert_eq!(b_resolve["source"], "environment");
}

#[tokio::test]
async fn test_connection_asks_the_provider_with_the_key_calls_would_use_and_tells_what_happened() {
    let mock = MockLlm::start().await;
    let app = TestApp::spawn_with(with_env_key).await;
    let (owner, member, org) = org_with_member(&app).await;
    let test_org = format!("/api/v1/orgs/{org}/llm/providers/openai/test");

    // The organization has no entry yet: the server's environment key is tested, at the
    // real OpenAI address, which this closed network cannot reach.
    let r = owner.post(&test_org, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["ok"], false);
    assert_eq!(r.body["source"], "environment");
    assert_eq!(r.body["base_url"], "https://api.openai.com/v1");
    assert_no_secret("env test", &r.text);

    let r = owner
        .put(
            &format!("/api/v1/orgs/{org}/llm/providers/openai"),
            json!({"api_key": ORG_KEY, "base_url": mock.base}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = owner.post(&test_org, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["ok"], true, "{}", r.text);
    assert_eq!(r.body["status"], 200);
    assert_eq!(r.body["source"], "organization");
    assert_eq!(r.body["key_hint"], "sk-…1111");
    assert_eq!(r.body["model_count"], 2);
    assert_eq!(r.body["models"], json!(["gpt-4o", "gpt-4o-mini"]));
    assert_eq!(r.body["message"], "connected: the provider offers 2 models");
    assert_no_secret("org test", &r.text);
    let seen = mock.requests();
    let last = seen.last().unwrap();
    assert_eq!(last.path, "/models");
    assert_eq!(last.authorization, format!("Bearer {ORG_KEY}"));

    // A key the provider refuses (the mock echoes it in its answer): the result says so
    // and carries neither the key nor the provider's text.
    let bad = "sk-org-bad-key-0000-DDDD4444";
    owner
        .put(
            &format!("/api/v1/orgs/{org}/llm/providers/openai"),
            json!({"api_key": bad}),
        )
        .await;
    let r = owner.post(&test_org, json!({})).await;
    assert_eq!(r.body["ok"], false);
    assert_eq!(r.body["status"], 401);
    assert_eq!(r.body["message"], "the provider refused the key (HTTP 401)");
    assert!(
        !r.text.contains(bad) && !r.text.contains("Incorrect"),
        "{}",
        r.text
    );

    // A base URL with nothing listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    owner
        .put(
            &format!("/api/v1/orgs/{org}/llm/providers/openai"),
            json!({"api_key": ORG_KEY, "base_url": format!("http://127.0.0.1:{closed}/v1")}),
        )
        .await;
    let r = owner.post(&test_org, json!({})).await;
    assert_eq!(r.body["ok"], false);
    assert_eq!(r.body["status"], Value::Null);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{}",
        r.text
    );

    // Testing the organization's key is for key managers; a member tests their own key,
    // which they must have.
    let r = member.post(&test_org, json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let mine = format!("/api/v1/me/llm/providers/openai/test?org={org}");
    assert_eq!(
        member.post(&mine, json!({})).await.status,
        StatusCode::NOT_FOUND
    );
    allow_user_keys(&owner, &org, true).await;
    let r = member
        .put(
            &format!("/api/v1/me/llm/providers/openai?org={org}"),
            json!({"api_key": USER_KEY, "base_url": mock.base}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = member.post(&mine, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["ok"], true, "{}", r.text);
    assert_eq!(r.body["source"], "user");
    assert_eq!(
        mock.requests().last().unwrap().authorization,
        format!("Bearer {USER_KEY}")
    );
    // The organization's test leaves members' keys out.
    let r = owner.post(&test_org, json!({})).await;
    assert_eq!(r.body["source"], "organization");
    // Unknown provider names are refused before anything is sent.
    let r = owner
        .post(
            &format!("/api/v1/orgs/{org}/llm/providers/Bad_Name/test"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// A page form post with the session's CSRF field, as a browser sends it.
async fn form_post(s: &Session, path: &str, fields: &[(&str, &str)]) -> crate::common::Reply {
    let mut form: Vec<(&str, &str)> = vec![("csrf_token", s.csrf.as_str())];
    form.extend_from_slice(fields);
    crate::common::reply(s.client.post(s.url(path)).form(&form).send().await.unwrap()).await
}

#[tokio::test]
async fn ai_provider_and_usage_pages_of_another_org_are_not_found_and_change_nothing() {
    let app = TestApp::spawn_with(with_env_key).await;
    let w: World = two_orgs_in(app).await;
    let a = &w.a;
    set_org_key(a.owner(), &a.id, Some(ORG_KEY)).await;
    allow_user_keys(a.owner(), &a.id, true).await;
    let member = &a.person("member").s;
    member
        .put(
            &format!("/api/v1/me/llm/providers/openai?org={}", a.id),
            json!({"api_key": USER_KEY}),
        )
        .await;
    let llm_before = a.owner().get(&a.path("/llm")).await.text;
    let quota_before = a.owner().get(&a.path("/quota")).await.text;
    let audit_before = a.owner().get(&a.path("/audit?limit=200")).await.text;
    let note = "01890000-0000-7000-8000-000000000001";
    let gets = ["llm", "llm/keys", "usage", "usage?period=2026-01"];
    let posts: [(&str, &[(&str, &str)]); 9] = [
        (
            "llm/providers",
            &[
                ("provider", "openai"),
                ("api_key", "sk-intruder-0000-ZZZZ9999"),
            ],
        ),
        ("llm/providers/openai/delete", &[]),
        ("llm/providers/openai/test", &[]),
        ("llm/policy", &[("allowed_models", "gpt-intruder")]),
        (
            "llm/keys",
            &[
                ("provider", "openai"),
                ("api_key", "sk-intruder-0000-ZZZZ9999"),
            ],
        ),
        ("llm/keys/openai/delete", &[]),
        ("llm/keys/openai/test", &[]),
        (
            "usage/quota",
            &[("monthly_credits", "0"), ("billing_anchor_day", "1")],
        ),
        ("usage/notifications/X/read", &[]),
    ];
    for person in &w.b.people {
        for org in [&a.id, &a.slug] {
            for page in gets {
                let r = person.s.get(&format!("/o/{org}/{page}")).await;
                assert_eq!(
                    r.status,
                    StatusCode::NOT_FOUND,
                    "{} GET {page}",
                    person.role
                );
                assert!(r.text.contains("<html"));
                assert_no_secret("cross-org page", &r.text);
                assert!(!r.text.contains(&a.name), "{page} names the other org");
            }
            for (page, fields) in posts {
                let page = page.replace('X', note);
                let r = form_post(&person.s, &format!("/o/{org}/{page}"), fields).await;
                assert_eq!(
                    r.status,
                    StatusCode::NOT_FOUND,
                    "{} POST {page}",
                    person.role
                );
                assert!(!r.text.contains(&a.name), "{page} names the other org");
            }
        }
    }
    assert_eq!(a.owner().get(&a.path("/llm")).await.text, llm_before);
    assert_eq!(a.owner().get(&a.path("/quota")).await.text, quota_before);
    assert_eq!(
        a.owner().get(&a.path("/audit?limit=200")).await.text,
        audit_before
    );
    assert_eq!(resolve(member, &a.id).await["source"], "user");
    // The same pages of one's own organization answer (the 404s above are not a broken
    // route): B's owner reads them, a made-up notification is not found.
    let b = &w.b;
    for page in gets {
        let r = b.owner().get(&format!("/o/{}/{page}", b.slug)).await;
        assert_eq!(r.status, StatusCode::OK, "own GET {page}: {}", r.text);
        assert_no_secret("own page", &r.text);
    }
    let r = form_post(
        b.owner(),
        &format!("/o/{}/usage/notifications/{note}/read", b.slug),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
