//! Bad input against the whole API: schemathesis (PyPI) generates requests from the
//! served `/api/openapi.json` and checks every answer against the document, once with an
//! API token and once with a browser session, against the real server.
//!
//! Run alone with `cargo test --test schemathesis`; it needs the `schemathesis`
//! executable (`pip install schemathesis==<the version .ci/run pins>`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use common::mock_llm::MockLlm;
use common::{PASSWORD, TestApp, cookie_client, reply};
use reqwest::StatusCode;
use serde_json::{Value, json};
use xagent::services::identity;

/// Examples per operation and phase: enough to reach every documented constraint, few
/// enough that both passes take a few minutes on two cores. Generation is deterministic
/// (Hypothesis derandomized, one worker, no cache between runs): the same document and
/// server give the same requests, so a failure in CI fails the same way locally.
const MAX_EXAMPLES: u32 = 60;

/// Operations that change who may act in the scene's organization: each runs in a pass of
/// its own, after the others.
const SECURITY_POLICY: &str = "PATCH /api/v1/orgs/{org}/security";
const REVOKE_ACCESS: &str = "POST /api/v1/orgs/{org}/members/{user_id}/revoke-access";

/// Operations whose valid input the server may still refuse with a 400, for a rule a
/// JSON Schema cannot state; `positive_data_acceptance` is off for them, every other
/// check stays.
const BEYOND_THE_SCHEMA: &[(&str, &str)] = &[
    (
        "POST /api/v1/me/password",
        "the current password must be the account's",
    ),
    (
        "POST /api/v1/me/2fa/totp/confirm",
        "the code must be the one the authenticator app shows now",
    ),
    (
        "POST /api/v1/me/tokens",
        "expires_at must lie in the future",
    ),
    (
        "PATCH /api/v1/orgs/{org}/security",
        "setting up single sign-on needs the issuer, the client id and the email domains together (a later change may send one)",
    ),
    (
        "POST /api/v1/orgs/{org}/security/sso/test",
        "without an issuer in the body the saved one is tested, and the organization may have none",
    ),
    (
        "POST /api/v1/orgs/{org}/documents",
        "the file's bytes decide its type, which must be one of the accepted ones",
    ),
    (
        "PATCH /api/v1/orgs/{org}/llm/policy",
        "default_model must be one of allowed_models",
    ),
    (
        "PUT /api/v1/orgs/{org}/llm/providers/{provider}",
        "an entry that needs no key needs a base URL, given now or stored before",
    ),
    (
        "POST /api/v1/me/move-to-organization",
        "resources move out of the caller's personal workspace only",
    ),
    (
        "POST /api/v1/orgs/{org}/workflows",
        "a condition step must go to a later step, and each kind needs its own fields",
    ),
    (
        "PATCH /api/v1/orgs/{org}/workflows/{id}",
        "a condition step must go to a later step, and each kind needs its own fields",
    ),
    (
        "POST /api/v1/orgs/{org}/workflows/{id}/runs",
        "a run needs the stored workflow to have steps",
    ),
    (
        "PUT /api/v1/orgs/{org}/documents/{id}/content",
        "the file's bytes decide its type, which must be one of the accepted ones",
    ),
    (
        "POST /api/v1/orgs/{org}/conversations/{id}/messages",
        "a reply needs the conversation to have an agent and a model, which the stored conversation decides",
    ),
    (
        "DELETE /api/v1/admin/organizations/{id}",
        "the confirmation must repeat the organization's slug",
    ),
    (
        "PATCH /api/v1/admin/organizations/{id}",
        "the plan must name an existing plan, and suspending needs a reason",
    ),
    (
        "POST /api/v1/admin/plans",
        "a plan's id must be a slug no plan has yet, and its name not blank",
    ),
    (
        "POST /api/v1/admin/model-prices",
        "the moment must read as a date or a time, the model must not be blank and the provider has no spaces",
    ),
    (
        "PATCH /api/v1/admin/model-prices/{id}",
        "the moment must read as a date or a time, the model must not be blank and the provider has no spaces",
    ),
    (
        "PATCH /api/v1/admin/settings",
        "the default plan must name an existing plan",
    ),
    (
        "POST /api/v1/admin/settings/test-mail",
        "the address must be one mail can be sent to",
    ),
    (
        "PATCH /api/v1/orgs/{org}/security",
        "whoever requires two-factor of the members must have it on their own account; an allowlist without the caller's address needs confirm_lockout, and once one is saved the caller's next calls are refused, as are calls past a rate limit it set",
    ),
    (
        "POST /api/v1/orgs/{org}/members/{user_id}/revoke-access",
        "ending one's own access (or an owner's, as a lower role) is refused or ends the session the next calls use",
    ),
];

/// Operations whose input names other objects (`shared_with` members and teams, a
/// conversation's agent, an agent's knowledge bases, the heir of a removed member): the fuzzing phase draws those
/// from the scene's real ids (the dictionaries below), the coverage phase cannot, so
/// `positive_data_acceptance` is off in that phase only.
fn naming_other_objects() -> Vec<String> {
    let mut ops = vec!["DELETE /api/v1/orgs/{org}/members/{user_id}".to_string()];
    for ty in ["agents", "tools", "knowledge-bases", "conversations"] {
        ops.push(format!("POST /api/v1/orgs/{{org}}/{ty}"));
        ops.push(format!("PATCH /api/v1/orgs/{{org}}/{ty}/{{id}}"));
    }
    ops.push("PATCH /api/v1/orgs/{org}/documents/{id}".to_string());
    ops
}

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
        "schemathesis is not installed: `pip install schemathesis==<version>` (the version \
         .ci/run pins) and run `cargo test --test schemathesis` again"
    );
}

/// A signed-in browser session as schemathesis sends it: the cookie and the CSRF header.
#[derive(Clone)]
struct Login {
    cookie: String,
    csrf: String,
}

/// A client for setting the scene through the API itself.
struct Api<'a> {
    app: &'a TestApp,
    login: Login,
    client: reqwest::Client,
}

impl Api<'_> {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .client
            .request(method.clone(), self.app.url(path))
            .header("cookie", format!("xagent_session={}", self.login.cookie))
            .header("x-csrf-token", &self.login.csrf);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = reply(req.send().await.unwrap()).await;
        assert!(r.status.is_success(), "{method} {path}: {}", r.text);
        r.body
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Value {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    fn id(v: &Value) -> String {
        v["id"].as_str().unwrap().to_string()
    }
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

/// Invites `email` into `org` as `role` and accepts as them; their user id.
async fn join(api: &Api<'_>, org: &str, email: &str, role: &str) -> String {
    let user = api.app.create_user(email, email).await;
    let inv = api
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": email, "role": role}),
        )
        .await;
    let them = Api {
        app: api.app,
        login: login(api.app, email).await,
        client: cookie_client(),
    };
    them.post("/api/v1/invitations/accept", json!({"token": inv["token"]}))
        .await;
    user.id
}

/// The objects the passes work on: real ids, so that requests reach more than 404s.
struct Scene {
    org: String,
    personal_org: String,
    /// Operation name (`GET /api/v1/...`) → fixed path parameters.
    fixed: BTreeMap<String, Vec<(&'static str, String)>>,
    members: Vec<String>,
    teams: Vec<String>,
    agents: Vec<String>,
    knowledge_bases: Vec<String>,
    /// The issuer single sign-on bodies name: this server, which answers discovery with a
    /// 404 (a generated issuer would send the server to random addresses).
    issuer: String,
}

/// Uploads a small text document; its id.
async fn upload(api: &Api<'_>, org: &str, name: &str) -> String {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"notes\n".to_vec())
            .file_name(format!("{name}.txt"))
            .mime_str("text/plain")
            .unwrap(),
    );
    let r = reply(
        api.client
            .post(api.app.url(&format!("/api/v1/orgs/{org}/documents")))
            .header("cookie", format!("xagent_session={}", api.login.cookie))
            .header("x-csrf-token", &api.login.csrf)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    Api::id(&r.body)
}

async fn make(api: &Api<'_>, org: &str, ty: &str, name: &str) -> String {
    if ty == "documents" {
        upload(api, org, name).await
    } else {
        Api::id(
            &api.post(&format!("/api/v1/orgs/{org}/{ty}"), json!({"name": name}))
                .await,
        )
    }
}

const TYPES: [&str; 6] = [
    "agents",
    "workflows",
    "documents",
    "tools",
    "knowledge-bases",
    "conversations",
];

async fn scene(api: &Api<'_>, owner: &common::TestUser, mock: &MockLlm) -> Scene {
    let org = Api::id(
        &api.post(
            "/api/v1/orgs",
            json!({"name": "Fuzzed", "slug": "fuzzed", "plan": "enterprise"}),
        )
        .await,
    );
    let o = |p: &str| format!("/api/v1/orgs/{org}{p}");
    let member = join(api, &org, "member@example.com", "member").await;
    let team = Api::id(&api.post(&o("/teams"), json!({"name": "Fuzzers"})).await);
    api.put(&o(&format!("/teams/{team}/members/{member}")), json!({}))
        .await;
    // Something to move out of the personal workspace.
    make(api, &owner.personal_org, "agents", "personal").await;

    let mut fixed: BTreeMap<String, Vec<(&'static str, String)>> = BTreeMap::new();
    let mut fix = |op: String, params: Vec<(&'static str, String)>| {
        fixed.insert(op, params);
    };
    let m = "/api/v1/orgs/{org}/members/{user_id}";
    fix(format!("GET {m}"), vec![("user_id", member.clone())]);
    fix(format!("PATCH {m}"), vec![("user_id", member.clone())]);
    let t = "/api/v1/orgs/{org}/teams/{id}";
    fix(format!("GET {t}"), vec![("id", team.clone())]);
    fix(format!("PATCH {t}"), vec![("id", team.clone())]);
    for method in ["PUT", "DELETE"] {
        fix(
            format!("{method} {t}/members/{{user_id}}"),
            vec![("id", team.clone()), ("user_id", member.clone())],
        );
    }
    let mut kept = BTreeMap::new();
    for ty in TYPES {
        let keep = make(api, &org, ty, "kept").await;
        let one = format!("/api/v1/orgs/{{org}}/{ty}/{{id}}");
        for op in ["GET {}", "PATCH {}", "GET {}/access"] {
            fix(op.replace("{}", &one), vec![("id", keep.clone())]);
        }
        kept.insert(ty, keep);
    }
    fix(
        "GET /api/v1/orgs/{org}/documents/{id}/content".into(),
        vec![("id", kept["documents"].clone())],
    );
    let conv = "/api/v1/orgs/{org}/conversations/{id}/messages";
    for method in ["GET", "POST"] {
        fix(
            format!("{method} {conv}"),
            vec![("id", kept["conversations"].clone())],
        );
    }
    let kb = "/api/v1/orgs/{org}/knowledge-bases/{id}/documents/{doc_id}";
    for method in ["PUT", "DELETE"] {
        fix(
            format!("{method} {kb}"),
            vec![
                ("id", kept["knowledge-bases"].clone()),
                ("doc_id", kept["documents"].clone()),
            ],
        );
    }

    // "Test connection" asks the mock, never the internet: its provider is one the
    // passes do not change (they change providers of random names).
    api.put(
        &o("/llm/providers/probe"),
        json!({"base_url": mock.base, "api_key": "sk-probe-key-0001"}),
    )
    .await;
    api.send(
        reqwest::Method::PATCH,
        &o("/llm/policy"),
        Some(json!({"allow_user_keys": true})),
    )
    .await;
    api.put(
        &format!("/api/v1/me/llm/providers/probe?org={org}"),
        json!({"base_url": mock.base, "api_key": "sk-probe-key-0002"}),
    )
    .await;
    for op in [
        "POST /api/v1/orgs/{org}/llm/providers/{provider}/test",
        "POST /api/v1/me/llm/providers/{provider}/test",
    ] {
        fix(op.into(), vec![("provider", "probe".into())]);
    }
    Scene {
        org,
        personal_org: owner.personal_org.clone(),
        fixed,
        members: vec![owner.id.clone(), member],
        teams: vec![team],
        agents: vec![kept["agents"].clone()],
        knowledge_bases: vec![kept["knowledge-bases"].clone()],
        issuer: api.app.base.clone(),
    }
}

/// What the DELETE operations of one pass get: objects of their own, so that the rest of
/// the pass still finds the scene's, and each pass deletes something real.
async fn doomed(
    api: &Api<'_>,
    scene: &Scene,
    pass: &str,
) -> BTreeMap<String, Vec<(&'static str, String)>> {
    let org = &scene.org;
    let o = |p: &str| format!("/api/v1/orgs/{org}{p}");
    let mut fixed = BTreeMap::new();
    let doomed_org = Api::id(
        &api.post("/api/v1/orgs", json!({"name": format!("Doomed {pass}")}))
            .await,
    );
    fixed.insert(
        "DELETE /api/v1/orgs/{org}".to_string(),
        vec![("org", doomed_org)],
    );
    let leaver = join(api, org, &format!("leaver-{pass}@example.com"), "viewer").await;
    fixed.insert(
        "DELETE /api/v1/orgs/{org}/members/{user_id}".into(),
        vec![("user_id", leaver)],
    );
    let team = Api::id(
        &api.post(&o("/teams"), json!({"name": format!("Doomed {pass}")}))
            .await,
    );
    fixed.insert(
        "DELETE /api/v1/orgs/{org}/teams/{id}".into(),
        vec![("id", team)],
    );
    let invitation = Api::id(
        &api.post(
            &o("/invitations"),
            json!({"email": format!("invited-{pass}@example.com"), "role": "viewer"}),
        )
        .await,
    );
    fixed.insert(
        "DELETE /api/v1/orgs/{org}/invitations/{id}".into(),
        vec![("id", invitation)],
    );
    let token = Api::id(
        &api.post(
            "/api/v1/me/tokens",
            json!({"name": format!("doomed {pass}"), "organization_id": org}),
        )
        .await,
    );
    fixed.insert("DELETE /api/v1/me/tokens/{id}".into(), vec![("id", token)]);
    // Another session of the owner, the newest one that is not this client's.
    login(api.app, "owner@example.com").await;
    let sessions = api
        .send(reqwest::Method::GET, "/api/v1/me/sessions", None)
        .await;
    let session = sessions["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["current"] == false)
        .max_by_key(|s| s["created_at"].as_str().unwrap_or("").to_string())
        .map(Api::id)
        .unwrap();
    fixed.insert(
        "DELETE /api/v1/me/sessions/{id}".into(),
        vec![("id", session)],
    );
    for ty in TYPES {
        let id = make(api, org, ty, &format!("doomed {pass}")).await;
        fixed.insert(
            format!("DELETE /api/v1/orgs/{{org}}/{ty}/{{id}}"),
            vec![("id", id)],
        );
    }
    fixed
}

fn toml_list(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("\"{v}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The configuration of one pass: the scene's fixed values and how requests authenticate.
fn config(
    scene: &Scene,
    doomed: &BTreeMap<String, Vec<(&'static str, String)>>,
    auth: &str,
) -> String {
    let mut c = String::new();
    writeln!(
        c,
        r#"
# Every check runs but these, which cannot apply here: use_after_free and
# ensure_resource_availability follow links between operations in the stateful phase,
# which this document does not define (the phase is off); object_level_authorization
# needs several identities from a Web Fuzzing Commons auth file (tenant isolation has its
# own table in tests/api/isolation_matrix.rs). Set here rather than with --checks, which
# would override the per-operation settings below.
[checks]
use_after_free.enabled = false
ensure_resource_availability.enabled = false
object_level_authorization.enabled = false

# No state carried from one run to the next: the same seed gives the same run.
[cache]
enabled = false

[parameters]
# Without a real organization nearly every request would be a 404.
org = "{org}"
# A cursor only means something as the next_cursor of a page the server gave; a random
# one is rightly a 400, which positive_data_acceptance would count against the server.
# Empty is the first page. Bad cursors have their own tests in tests/api.
cursor = ""
# References in bodies name real members, teams and agents (random ids are a 400).
"body.shared_with.users[*]" = {{ dictionary = "members" }}
"body.shared_with.teams[*]" = {{ dictionary = "teams" }}
"body.agent_id" = {{ dictionary = "agents" }}
"body.knowledge_base_ids[*]" = {{ dictionary = "knowledge_bases" }}
"query.transfer_to" = {{ dictionary = "members" }}
"body.organization_id" = {{ dictionary = "orgs" }}
"query.organization_id" = {{ dictionary = "orgs" }}
"body.to_organization_id" = {{ dictionary = "orgs" }}
"body.from_organization_id" = {{ dictionary = "personal" }}
"body.issuer" = {{ dictionary = "issuers" }}
"body.sso.issuer" = {{ dictionary = "issuers" }}

[dictionaries.members]
values = {members}
[dictionaries.teams]
values = {teams}
[dictionaries.agents]
values = {agents}
[dictionaries.knowledge_bases]
values = {knowledge_bases}
[dictionaries.orgs]
values = ["{org}"]
[dictionaries.personal]
values = ["{personal}"]
[dictionaries.issuers]
values = ["{issuer}"]
"#,
        org = scene.org,
        members = toml_list(&scene.members),
        teams = toml_list(&scene.teams),
        agents = toml_list(&scene.agents),
        knowledge_bases = toml_list(&scene.knowledge_bases),
        personal = scene.personal_org,
        issuer = scene.issuer,
    )
    .unwrap();
    for (op, params) in scene.fixed.iter().chain(doomed) {
        let list: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k} = \"{v}\""))
            .collect();
        writeln!(
            c,
            "[[operations]]\ninclude-name = \"{op}\"\nparameters = {{ {} }}\n",
            list.join(", ")
        )
        .unwrap();
    }
    for (op, why) in BEYOND_THE_SCHEMA {
        writeln!(
            c,
            "[[operations]]\n# {why}\ninclude-name = \"{op}\"\nchecks.positive_data_acceptance.enabled = false\n"
        )
        .unwrap();
    }
    for op in naming_other_objects() {
        writeln!(
            c,
            "[[operations]]\ninclude-name = \"{op}\"\nphases.coverage.checks.positive_data_acceptance.enabled = false\n"
        )
        .unwrap();
    }
    c.push_str(auth);
    c
}

struct Pass {
    name: &'static str,
    auth: String,
    /// Only this operation (`--include-name`).
    only: Option<&'static str>,
    exclude: &'static [&'static str],
}

type Fixed = BTreeMap<String, Vec<(&'static str, String)>>;

async fn run(api: &Api<'_>, dir: &Path, bin: &str, scene: &Scene, doomed: &Fixed, pass: &Pass) {
    let file = dir.join(format!("{}.toml", pass.name));
    std::fs::write(&file, config(scene, doomed, &pass.auth)).unwrap();
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--config-file")
        .arg(&file)
        .arg("--no-color")
        .arg("run")
        .arg(api.app.url("/api/openapi.json"))
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &MAX_EXAMPLES.to_string()])
        .arg("--generation-deterministic")
        // One worker: requests in a fixed order, so a seed is one run.
        .args(["--workers", "1"])
        .args(["--request-timeout", "15"])
        .args(["--suppress-health-check", "all"])
        .arg("--report-dir")
        .arg(dir.join(format!("report-{}", pass.name)));
    // To look at every request and answer afterwards: XAGENT_SCHEMATHESIS_REPORTS=DIR.
    if let Some(reports) = std::env::var_os("XAGENT_SCHEMATHESIS_REPORTS") {
        cmd.args(["--report", "har,junit"])
            .arg("--report-dir")
            .arg(Path::new(&reports).join(pass.name));
    }
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
    // The summary (operations, phases, warnings) is worth a look even when all is well.
    if let Some(summary) = text.find("SUMMARY") {
        eprintln!("{}", &text[summary..]);
    }
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
    let mock = MockLlm::start().await;
    let app = TestApp::spawn().await;
    // Sign-up is open so that its success answers are checked too.
    identity::set_signup(&app.svc, true, None).await.unwrap();
    let owner = app.create_superuser("owner@example.com", "Owner").await;
    let api = Api {
        app: &app,
        login: login(&app, "owner@example.com").await,
        client: cookie_client(),
    };
    let scene = scene(&api, &owner, &mock).await;
    let token = api
        .post(
            "/api/v1/me/tokens",
            json!({"name": "schemathesis", "organization_id": scene.org}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let passes = [
        Pass {
            name: "token",
            auth: format!("[auth.openapi.token]\nbearer = \"{token}\"\n"),
            only: None,
            // The organization's policy could shut out (or rate-limit) the rest of the
            // pass; both get passes of their own at the end.
            exclude: &[SECURITY_POLICY, REVOKE_ACCESS],
        },
        Pass {
            name: "session",
            auth: session_auth(&api.login),
            only: None,
            // Signing out would end the session the rest of this pass uses; the last
            // passes sign out sessions of their own. Closing sign-up would refuse the
            // sign-ups of this pass; the settings get a pass of their own after it.
            exclude: &[
                "POST /api/v1/auth/logout",
                "POST /api/v1/me/sign-out-everywhere",
                "PATCH /api/v1/admin/settings",
                SECURITY_POLICY,
                REVOKE_ACCESS,
            ],
        },
        Pass {
            name: "instance-settings",
            auth: session_auth(&login(&app, "owner@example.com").await),
            only: Some("PATCH /api/v1/admin/settings"),
            exclude: &[],
        },
        Pass {
            name: "security-policy",
            auth: session_auth(&login(&app, "owner@example.com").await),
            only: Some(SECURITY_POLICY),
            exclude: &[],
        },
        Pass {
            name: "revoke-access",
            auth: session_auth(&login(&app, "owner@example.com").await),
            only: Some(REVOKE_ACCESS),
            exclude: &[],
        },
        Pass {
            name: "logout",
            auth: session_auth(&login(&app, "owner@example.com").await),
            only: Some("POST /api/v1/auth/logout"),
            exclude: &[],
        },
        Pass {
            name: "sign-out-everywhere",
            auth: session_auth(&login(&app, "owner@example.com").await),
            // Last: it ends every session of the owner, the other passes' too.
            only: Some("POST /api/v1/me/sign-out-everywhere"),
            exclude: &[],
        },
    ];
    // Everything that signs in happens before the passes: their failed sign-ins lock
    // the address out for a while (429), as they should.
    let mut doomed_per_pass = Vec::new();
    for pass in &passes {
        doomed_per_pass.push(match pass.only {
            Some(_) => Fixed::new(),
            None => doomed(&api, &scene, pass.name).await,
        });
    }
    let dir = tempfile::tempdir().unwrap();
    for (pass, doomed) in passes.iter().zip(&doomed_per_pass) {
        run(&api, dir.path(), &bin, &scene, doomed, pass).await;
    }
}
