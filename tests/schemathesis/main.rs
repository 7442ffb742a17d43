//! Bad input against the whole API: schemathesis (PyPI) generates requests from the
//! served `/api/openapi.json` and checks every answer against the document, once signed
//! in with a browser session and once with an API token, against the real server.
//!
//! Run alone with `cargo test --test schemathesis`; it needs the `schemathesis`
//! executable (`pip install schemathesis==<the version .ci/run pins>`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Instant;

use common::{PASSWORD, TestApp, cookie_client, reply};
use reqwest::StatusCode;
use serde_json::json;
use xagent::services::identity;

/// Examples per operation and phase. Small enough that both passes finish in a few
/// minutes on two cores; the seed makes a failure reproducible.
const MAX_EXAMPLES: u32 = 20;
const SEED: u64 = 20_250_601;

/// The executable, or a failure that says how to install it.
fn schemathesis() -> String {
    for name in ["schemathesis", "st"] {
        let found = std::process::Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return name.to_string();
        }
    }
    panic!(
        "schemathesis is not installed: `pip install schemathesis` (the version .ci/run pins) \
         and run `cargo test --test schemathesis` again"
    );
}

/// A signed-in browser session as schemathesis sends it: the cookie and the CSRF header.
struct Login {
    cookie: String,
    csrf: String,
}

async fn login(app: &TestApp, email: &str) -> Login {
    let res = cookie_client()
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("xagent_session="))
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_string();
    let body = reply(res).await;
    assert_eq!(body.status, StatusCode::OK, "{}", body.text);
    Login {
        cookie,
        csrf: body.body["csrf_token"].as_str().unwrap().to_string(),
    }
}

/// The checks every answer must pass. Left out, because they cannot apply here:
/// `use_after_free` and `ensure_resource_availability` follow links between operations in
/// the stateful phase, which this document does not define (the phase is off);
/// `object_level_authorization` needs several identities from a Web Fuzzing Commons auth
/// file (tenant isolation has its own table in tests/api/isolation_matrix.rs).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_headers_conformance,response_schema_conformance,negative_data_rejection,\
positive_data_acceptance,missing_required_header,unsupported_method,\
allow_header_conformance,ignored_auth";

/// The configuration of one pass: what is fixed (the organization to work in) and how
/// the requests authenticate.
fn config(org: &str, doomed_org: &str, auth: &str) -> String {
    format!(
        r#"
[parameters]
# Without a real organization nearly every request would be a 404.
org = "{org}"

[[operations]]
# Deleting the organization the rest of the pass works in would turn it into 404s.
include-name = "DELETE /api/v1/orgs/{{org}}"
parameters = {{ org = "{doomed_org}" }}

{auth}
"#
    )
}

struct Pass {
    name: &'static str,
    auth: String,
    /// Operations left out of this pass (`--exclude-name`), or the only ones run.
    only: Option<&'static str>,
    exclude: &'static [&'static str],
}

async fn run(app: &TestApp, dir: &Path, bin: &str, org: &str, doomed: &str, pass: &Pass) {
    let file = dir.join(format!("{}.toml", pass.name));
    std::fs::write(&file, config(org, doomed, &pass.auth)).unwrap();
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--config-file")
        .arg(&file)
        .arg("--no-color")
        .arg("run")
        .arg(app.url("/api/openapi.json"))
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &MAX_EXAMPLES.to_string()])
        .args(["--seed", &SEED.to_string()])
        .arg("--generation-deterministic")
        .args(["--workers", "2"])
        .args(["--request-timeout", "15"])
        .args(["--suppress-health-check", "all"])
        .arg("--report-dir")
        .arg(dir.join(format!("report-{}", pass.name)));
    if let Some(name) = pass.only {
        cmd.args(["--include-name", name]);
    }
    for name in pass.exclude {
        cmd.args(["--exclude-name", name]);
    }
    let started = Instant::now();
    let out = cmd.output().await.expect("run schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "schemathesis pass `{}` took {:.1} s",
        pass.name,
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "schemathesis pass `{}` failed ({}):\n{text}",
        pass.name,
        out.status
    );
}

fn session_auth(login: &Login) -> String {
    format!(
        "[auth.openapi.session]\napi_key = \"{}\"\n[auth.openapi.csrf]\napi_key = \"{}\"\n",
        login.cookie, login.csrf
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_operation_answers_bad_and_good_input_as_its_openapi_document_says() {
    let bin = schemathesis();
    let app = TestApp::spawn().await;
    // Sign-up is open so that its success answers are checked too.
    identity::set_signup(&app.db, true, None).await.unwrap();
    app.create_user("owner@example.com", "Owner").await;
    let owner = login(&app, "owner@example.com").await;
    let api = cookie_client();
    let post = |path: &str, body: serde_json::Value| {
        api.post(app.url(path))
            .header("cookie", format!("xagent_session={}", owner.cookie))
            .header("x-csrf-token", &owner.csrf)
            .json(&body)
            .send()
    };
    let org = reply(
        post("/api/v1/orgs", json!({"name": "Fuzzed"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(org.status, StatusCode::CREATED, "{}", org.text);
    let org_id = org.body["id"].as_str().unwrap().to_string();
    let doomed = reply(
        post("/api/v1/orgs", json!({"name": "Doomed"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(doomed.status, StatusCode::CREATED, "{}", doomed.text);
    let doomed_id = doomed.body["id"].as_str().unwrap().to_string();
    let token = reply(
        post(
            "/api/v1/me/tokens",
            json!({"name": "schemathesis", "organization_id": org_id}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(token.status, StatusCode::CREATED, "{}", token.text);
    let token = token.body["token"].as_str().unwrap().to_string();

    let passes = [
        Pass {
            name: "token",
            auth: format!("[auth.openapi.token]\nbearer = \"{token}\"\n"),
            only: None,
            exclude: &[],
        },
        Pass {
            name: "session",
            auth: session_auth(&owner),
            only: None,
            // Signing out would end the session the rest of this pass uses; the last
            // pass signs out a session of its own.
            exclude: &["POST /api/v1/auth/logout"],
        },
        Pass {
            name: "logout",
            auth: session_auth(&login(&app, "owner@example.com").await),
            only: Some("POST /api/v1/auth/logout"),
            exclude: &[],
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    for pass in &passes {
        run(&app, dir.path(), &bin, &org_id, &doomed_id, pass).await;
    }
}
