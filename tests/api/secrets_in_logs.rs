//! Secrets never reach the logs: the real binary runs with debug logging while keys are
//! stored, resolved and used through the gateway (success, a provider that echoes the key
//! in its error, an unreachable provider) and a single sign-on goes through an identity
//! provider; then its whole log is searched for them.
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::mock_llm::MockLlm;
use crate::common::oidc_provider::{CLIENT_SECRET, OidcProvider, identity};
use crate::common::{PASSWORD, Session, TokenClient, reply};

const ORG_KEY: &str = "sk-logcheck-org-0000-AAAA1111";
const USER_KEY: &str = "sk-logcheck-user-0000-BBBB2222";
const ENV_KEY: &str = "sk-logcheck-env-0000-CCCC3333";

#[tokio::test]
async fn no_key_or_token_appears_in_the_servers_log() {
    let mock = MockLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bin = env!("CARGO_BIN_EXE_xagent");
    let mut server = Command::new(bin)
        .args([
            "serve",
            "--allow-private-targets",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .env("XAGENT_LOG", "debug")
        .env("XAGENT_OPENAI_API_KEY", ENV_KEY)
        .env_remove("XAGENT_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_string();
    let mut stderr = server.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = stderr.read_to_string(&mut all);
        all
    });
    let mut create = Command::new(bin)
        .args([
            "admin",
            "create-user",
            "--email",
            "logs@example.com",
            "--password-stdin",
            "--data-dir",
        ])
        .arg(&data)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        create.stdin.as_mut().unwrap(),
        format!("{PASSWORD}\n").as_bytes(),
    )
    .unwrap();
    assert!(create.wait().unwrap().success());

    let client = crate::common::cookie_client();
    let login = reply(
        client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": "logs@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    let s = Session {
        client,
        csrf: login.body["csrf_token"].as_str().unwrap().to_string(),
        base: base.clone(),
        login: login.body.clone(),
    };
    let org = login.body["current_organization_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .put(
            &format!("/api/v1/orgs/{org}/llm/providers/openai"),
            json!({"api_key": ORG_KEY, "base_url": mock.base}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = s
        .send(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}/llm/policy"),
            Some(json!({"allow_user_keys": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = s
        .put(
            &format!("/api/v1/me/llm/providers/openai?org={org}"),
            json!({"api_key": USER_KEY, "base_url": mock.base}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let t = s
        .post(
            "/api/v1/me/tokens",
            json!({"name": "logs", "organization_id": org}),
        )
        .await;
    let token = t.body["token"].as_str().unwrap().to_string();
    let api = TokenClient::new(&base, &token);
    for model in ["gpt-4o-mini", "fail-401", "fail-500"] {
        let _ = api
            .send(
                Method::POST,
                "/v1/chat/completions",
                Some(json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})),
            )
            .await;
    }
    let _ = s
        .get(&format!("/api/v1/orgs/{org}/llm/resolve?provider=openai"))
        .await;
    // The organization's key through an unreachable provider, then the environment's.
    let _ = s
        .delete(&format!("/api/v1/me/llm/providers/openai?org={org}"))
        .await;
    let _ = s
        .put(
            &format!("/api/v1/orgs/{org}/llm/providers/openai"),
            json!({"base_url": "http://127.0.0.1:9/v1"}),
        )
        .await;
    let _ = api
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})),
        )
        .await;
    let _ = s
        .put(
            &format!("/api/v1/orgs/{org}/llm/providers/openai"),
            json!({"api_key": null, "base_url": null}),
        )
        .await;
    let resolved = s
        .get(&format!("/api/v1/orgs/{org}/llm/resolve?provider=openai"))
        .await;
    assert_eq!(resolved.body["source"], "environment");
    assert!(
        mock.requests()
            .iter()
            .any(|r| r.authorization.contains(USER_KEY))
    );

    // Single sign-on: the client secret, the code, the state and the ID token stay out too.
    let idp = OidcProvider::start("xagent-logs", identity("sso@logs.example", true)).await;
    let r = s
        .post("/api/v1/orgs", json!({"name": "Logs", "slug": "logs-team"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = s
        .send(
            Method::PATCH,
            "/api/v1/orgs/logs-team/security",
            Some(
                json!({"sso": {"issuer": idp.issuer, "client_id": "xagent-logs",
                "client_secret": CLIENT_SECRET, "allowed_domains": ["logs.example"]}}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let browser = crate::common::cookie_client();
    let location = |r: &reqwest::Response| r.headers()["location"].to_str().unwrap().to_string();
    let started = browser
        .get(format!("{base}/sso/logs-team/start"))
        .send()
        .await
        .unwrap();
    let approved = browser.get(location(&started)).send().await.unwrap();
    let back = location(&approved);
    let signed_in = browser.get(&back).send().await.unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let sso_query: std::collections::HashMap<String, String> = url::Url::parse(&back)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let id_token = idp.id_tokens().pop().unwrap();

    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let status = server.wait().unwrap();
    assert!(status.success(), "server exit: {status}");
    let log = log.join().unwrap();
    assert!(
        log.len() > 1000,
        "debug logging produced almost nothing: {log}"
    );
    assert!(
        log.contains("/v1/chat/completions"),
        "requests are not logged"
    );
    let session_cookie = login.body["csrf_token"].as_str().unwrap();
    for (what, secret) in [
        ("organization key", ORG_KEY),
        ("member key", USER_KEY),
        ("environment key", ENV_KEY),
        ("API token", token.as_str()),
        ("CSRF token", session_cookie),
        ("password", PASSWORD),
        ("single sign-on client secret", CLIENT_SECRET),
        ("authorization code", sso_query["code"].as_str()),
        ("single sign-on state", sso_query["state"].as_str()),
        ("ID token", id_token.as_str()),
    ] {
        assert!(!log.contains(secret), "the log shows the {what}");
    }
    // Also no distinctive part of a key (e.g. cut by a formatter).
    assert!(!log.contains("logcheck-"), "the log shows part of a key");
}
