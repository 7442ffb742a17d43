//! `xagent import` through the real binary while a server runs: the sample lands in each
//! user's personal organization, private; imported argon2 and bcrypt hashes sign in; a
//! second run imports nothing; a refused user or item leaves the rest in; a failure rolls
//! back its user only; imported knowledge-base documents get indexed by the running server.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::mock_llm::MockLlm;
use crate::common::*;

const ADA_PASSWORD: &str = "ada imported password";
const GRACE_PASSWORD: &str = "grace legacy password";

fn sample() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/import-sample.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn write_file(app: &TestApp, name: &str, v: &Value) -> PathBuf {
    let p = app.root().join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p
}

struct Run {
    ok: bool,
    report: String,
    stderr: String,
}

fn import(app: &TestApp, file: &Path) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_xagent"))
        .env_remove("XAGENT_DATA_DIR")
        .env_remove("XAGENT_CONFIG")
        .env("XAGENT_LOG", "warn")
        .arg("import")
        .arg(file)
        .arg("--data-dir")
        .arg(app.data_dir())
        .output()
        .unwrap();
    Run {
        ok: out.status.success(),
        report: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The report's paragraph of one user: its first line and the indented ones below it.
fn paragraph(report: &str, email: &str) -> String {
    let mut lines = report
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{email}:")));
    let mut out = String::new();
    if let Some(first) = lines.next() {
        out.push_str(first);
        out.push('\n');
    }
    for l in lines.take_while(|l| l.starts_with(' ')) {
        out.push_str(l);
        out.push('\n');
    }
    out
}

fn raw_db(app: &TestApp) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(app.data_dir().join("xagent.db")).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

fn count(app: &TestApp, table: &str) -> i64 {
    raw_db(app)
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn personal_org(s: &Session) -> String {
    let org = &s.login["organizations"][0];
    assert_eq!(org["kind"], "personal", "{}", s.login);
    org["id"].as_str().unwrap().to_string()
}

async fn items(s: &Session, org: &str, ty: &str) -> Vec<Value> {
    let r = s.get(&format!("/api/v1/orgs/{org}/{ty}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["items"].as_array().unwrap().clone()
}

fn named<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list:?}"))
}

const TABLES: [&str; 9] = [
    "users",
    "organizations",
    "agents",
    "workflows",
    "tools",
    "uploaded_documents",
    "knowledge_base_documents",
    "conversations",
    "messages",
];

#[tokio::test]
async fn the_sample_lands_private_in_personal_organizations_signs_in_and_imports_nothing_twice() {
    let mock = MockLlm::start().await;
    let app = TestApp::spawn_with(|c| {
        env_mock(c, &mock);
        // Documents queued by another process are picked up this soon.
        c.indexer_poll = Duration::from_millis(200);
    })
    .await;
    // Linus has an account already: he keeps it and his password.
    app.create_user("linus@example.com", "Linus T.").await;

    let mut file = sample();
    // A user who cannot be imported, and items that cannot: the rest lands.
    file["users"]
        .as_array_mut()
        .unwrap()
        .push(json!({"email": "not-an-email", "name": "Nobody"}));
    let ada = &mut file["users"][0];
    ada["documents"].as_array_mut().unwrap().push(
        json!({"source_id": "doc-broken", "filename": "broken.txt", "content_base64": "%%%"}),
    );
    ada["agents"].as_array_mut().unwrap().push(
        json!({"source_id": "agent-dangling", "name": "Dangling", "knowledge_base_refs": ["kb-missing"]}),
    );
    file["users"][1]["agents"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "Shown to all", "visibility": "public"}));
    let path = write_file(&app, "export.json", &file);

    let run = import(&app, &path);
    assert!(
        !run.ok,
        "refusals must show in the exit status:\n{}",
        run.report
    );
    assert!(
        run.stderr.contains("some users or items were not imported"),
        "{}",
        run.stderr
    );
    let report = &run.report;
    assert_eq!(
        paragraph(report, "ada@example.com"),
        "ada@example.com: created, personal organization ada\n  \
         imported: 2 documents, 1 knowledge base, 1 tool, 1 agent, 1 workflow, 1 conversation, 3 messages\n  \
         skipped, already imported: nothing\n  \
         queued for indexing: 2 documents in knowledge bases\n  \
         refused: 2\n    \
         documents[2] \"broken.txt\": content_base64: this is not base64\n    \
         agents[1] \"Dangling\": it refers to knowledge base \"kb-missing\", which is not among this user's imported knowledge bases\n",
        "{report}"
    );
    assert_eq!(
        paragraph(report, "grace@example.com"),
        "grace@example.com: created, personal organization grace\n  \
         imported: 1 agent, 1 conversation, 2 messages\n  \
         skipped, already imported: nothing\n  \
         refused: 1\n    \
         agents[1] \"Shown to all\": body: \"visibility\" is not a field of agents.\n",
        "{report}"
    );
    assert_eq!(
        paragraph(report, "linus@example.com"),
        "linus@example.com: existing account kept, personal organization linus\n  \
         imported: 1 document, 1 agent\n  \
         skipped, already imported: nothing\n  \
         refused: none\n",
        "{report}"
    );
    assert!(
        report.contains(
            "not-an-email: refused: email: Enter an email address like name@example.com.\n"
        ),
        "{report}"
    );
    assert!(
        report.ends_with("4 users: 2 created, 1 existing, 1 refused, 0 failed; 3 items refused\n"),
        "{report}"
    );

    // Ada signs in with the imported argon2 hash (other parameters than the server's).
    let ada = app
        .login_with("ada@example.com", ADA_PASSWORD)
        .await
        .unwrap();
    let ada_org = personal_org(&ada);
    let agents = items(&ada, &ada_org, "agents").await;
    assert_eq!(agents.len(), 1, "{agents:?}");
    let agent = named(&agents, "Support helper");
    assert_eq!(agent["visibility"], "private");
    assert_eq!(agent["owner_id"], ada.login["user"]["id"]);
    let agent_id = agent["id"].as_str().unwrap().to_string();
    let full = ada
        .get(&format!("/api/v1/orgs/{ada_org}/agents/{agent_id}"))
        .await;
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(full.body["memory"], "per_user");
    assert_eq!(
        full.body["skills"],
        json!([{"skill": "refunds", "level": "expert"}])
    );
    let kbs = items(&ada, &ada_org, "knowledge-bases").await;
    let kb_id = named(&kbs, "Handbook")["id"].as_str().unwrap().to_string();
    assert_eq!(full.body["knowledge_base_ids"], json!([kb_id]));
    let tools = items(&ada, &ada_org, "tools").await;
    let tool_id = named(&tools, "Order lookup")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let workflows = items(&ada, &ada_org, "workflows").await;
    let steps = &named(&workflows, "Triage")["steps"];
    assert_eq!(steps[0]["agent_id"], agent_id.as_str(), "{steps}");
    assert_eq!(steps[1]["tool_id"], tool_id.as_str(), "{steps}");
    assert!(steps[0].get("agent_ref").is_none(), "{steps}");
    let docs = items(&ada, &ada_org, "documents").await;
    assert_eq!(docs.len(), 2);
    assert_eq!(named(&docs, "refunds.md")["content_type"], "text/markdown");
    let shipping = named(&docs, "Shipping policy");
    let content = ada
        .get(&format!(
            "/api/v1/orgs/{ada_org}/documents/{}/content",
            shipping["id"].as_str().unwrap()
        ))
        .await;
    assert!(
        content.text.starts_with("Shipping\n\nOrders leave"),
        "{}",
        content.text
    );
    for list in [&agents, &kbs, &tools, &workflows, &docs] {
        assert!(
            list.iter().all(|r| r["visibility"] == "private"),
            "{list:?}"
        );
    }
    let convs = items(&ada, &ada_org, "conversations").await;
    let conv = named(&convs, "Refund for order 1042");
    assert_eq!(conv["agent_id"], agent_id.as_str());
    let messages = ada
        .get(&format!(
            "/api/v1/orgs/{ada_org}/conversations/{}/messages",
            conv["id"].as_str().unwrap()
        ))
        .await;
    let messages = messages.body["items"].as_array().unwrap().clone();
    let seen: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap(),
                m["created_at"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("user", "2025-03-01T09:00:00.000000Z"),
            ("assistant", "2025-03-01T09:00:04.000000Z"),
            ("user", "2025-03-01T09:01:00.000000Z"),
        ]
    );

    // The running server indexes the imported documents of the knowledge base.
    let started = Instant::now();
    loop {
        let r = ada
            .get(&format!(
                "/api/v1/orgs/{ada_org}/knowledge-bases/{kb_id}/documents"
            ))
            .await;
        let entries = r.body["items"].as_array().unwrap().clone();
        assert_eq!(entries.len(), 2, "{}", r.text);
        assert!(
            entries.iter().all(|d| d["status"] != "failed"),
            "{}",
            r.text
        );
        if entries.iter().all(|d| d["status"] == "ready") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never indexed: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Grace signs in with the imported bcrypt hash, which becomes an argon2id one.
    let grace = app
        .login_with("grace@example.com", GRACE_PASSWORD)
        .await
        .unwrap();
    let grace_org = personal_org(&grace);
    let stored = || -> String {
        raw_db(&app)
            .query_row(
                "SELECT password_hash FROM users WHERE email = 'grace@example.com'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stored().starts_with("$argon2id$") {
        assert!(Instant::now() < deadline, "still {}", stored());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        app.login_with("grace@example.com", GRACE_PASSWORD)
            .await
            .is_ok()
    );
    let (status, _) = app
        .login_with("grace@example.com", "grace legacy passwort")
        .await
        .err()
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let grace_convs = items(&grace, &grace_org, "conversations").await;
    assert_eq!(
        grace_convs[0]["name"],
        "Summarise the COBOL report, please."
    );

    // Linus kept his account and password; his resources joined his personal workspace.
    let linus = app.login("linus@example.com").await;
    assert_eq!(linus.login["user"]["name"], "Linus T.");
    let linus_org = personal_org(&linus);
    assert_eq!(
        named(&items(&linus, &linus_org, "agents").await, "Kernel notes")["visibility"],
        "private"
    );

    // Nobody else sees Ada's resources: 404 in her organization and in their own.
    for other in [&grace, &linus] {
        let own = personal_org(other);
        for path in [
            format!("/api/v1/orgs/{ada_org}/agents/{agent_id}"),
            format!("/api/v1/orgs/{ada_org}/agents"),
            format!("/api/v1/orgs/{own}/agents/{agent_id}"),
            format!("/api/v1/orgs/{own}/knowledge-bases/{kb_id}"),
        ] {
            let r = other.get(&path).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
        }
        let visible = other.get("/api/v1/me/accessible/agents").await;
        assert!(!visible.text.contains(&agent_id), "{}", visible.text);
    }

    // Each user's import is in their organization's chain, which verifies.
    let audit = ada
        .get(&format!(
            "/api/v1/orgs/{ada_org}/audit?action=import.completed"
        ))
        .await;
    let entries = audit.body["items"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{}", audit.text);
    let details = &entries[0]["details"];
    assert_eq!(details["source"], "export.json");
    assert_eq!(details["account"], "created");
    assert_eq!(details["imported"]["agents"], 1);
    assert_eq!(details["imported"]["messages"], 3);
    assert_eq!(details["refused"], 2);
    assert_eq!(details["queued_for_indexing"], 2);
    let created = ada
        .get(&format!(
            "/api/v1/orgs/{ada_org}/audit?action=agent.created"
        ))
        .await;
    assert_eq!(created.body["items"].as_array().unwrap().len(), 1);

    // A second run imports nothing and says what it skipped.
    let before: Vec<i64> = TABLES.iter().map(|t| count(&app, t)).collect();
    let again = import(&app, &path);
    assert!(!again.ok);
    assert_eq!(
        paragraph(&again.report, "ada@example.com"),
        "ada@example.com: existing account kept, personal organization ada\n  \
         imported: nothing\n  \
         skipped, already imported: 2 documents, 1 knowledge base, 1 tool, 1 agent, 1 workflow, 1 conversation\n  \
         refused: 2\n    \
         documents[2] \"broken.txt\": content_base64: this is not base64\n    \
         agents[1] \"Dangling\": it refers to knowledge base \"kb-missing\", which is not among this user's imported knowledge bases\n  \
         note: the account exists: it keeps its password, the file's password_hash is not used\n",
        "{}",
        again.report
    );
    let after: Vec<i64> = TABLES.iter().map(|t| count(&app, t)).collect();
    assert_eq!(before, after, "{TABLES:?}");

    // Corrected, the refused items land and nothing else is imported again; a deleted
    // imported item stays imported.
    let r = grace
        .delete(&format!(
            "/api/v1/orgs/{grace_org}/agents/{}",
            named(
                &items(&grace, &grace_org, "agents").await,
                "Research assistant"
            )["id"]
                .as_str()
                .unwrap()
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let ada = &mut file["users"][0];
    ada["documents"][2]["content_base64"] = json!("TmV3IG5vdGVzLg==");
    ada["agents"][1]["knowledge_base_refs"] = json!(["kb-handbook"]);
    file["users"][1]["agents"][1]
        .as_object_mut()
        .unwrap()
        .remove("visibility");
    file["users"].as_array_mut().unwrap().pop();
    let fixed = write_file(&app, "export-fixed.json", &file);
    let third = import(&app, &fixed);
    assert!(third.ok, "{}\n{}", third.report, third.stderr);
    assert!(
        paragraph(&third.report, "ada@example.com").contains("  imported: 1 document, 1 agent\n"),
        "{}",
        third.report
    );
    assert!(
        paragraph(&third.report, "grace@example.com").contains(
            "  imported: 1 agent\n  skipped, already imported: 1 agent, 1 conversation\n"
        ),
        "{}",
        third.report
    );
    let grace_agents = items(&grace, &grace_org, "agents").await;
    assert_eq!(
        grace_agents.len(),
        1,
        "the deleted one stays deleted: {grace_agents:?}"
    );
    assert_eq!(grace_agents[0]["name"], "Shown to all");
    assert_eq!(grace_agents[0]["visibility"], "private");

    let verify = Command::new(env!("CARGO_BIN_EXE_xagent"))
        .env("XAGENT_LOG", "warn")
        .args(["audit", "verify", "--data-dir"])
        .arg(app.data_dir())
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[tokio::test]
async fn a_failing_user_is_rolled_back_alone_and_the_plan_limits_refuse_items() {
    let app = TestApp::spawn().await;
    // A failure no rule of the import foresees: the database refuses one ledger row.
    raw_db(&app)
        .execute_batch(
            "CREATE TRIGGER planted_failure BEFORE INSERT ON import_ledger
             WHEN NEW.source_id = 'boom' BEGIN SELECT RAISE(ABORT, 'planted failure'); END;",
        )
        .unwrap();
    let many: Vec<Value> = (0..11)
        .map(|i| json!({"source_id": format!("a{i}"), "name": format!("Agent {i}")}))
        .collect();
    let file = json!({"version": 1, "users": [
        {"email": "first@example.com", "agents": [{"source_id": "ok", "name": "Fine"}]},
        {"email": "doomed@example.com", "name": "Doomed",
         "tools": [{"source_id": "t1", "name": "Lands first"}],
         "agents": [{"source_id": "boom", "name": "Fails"}]},
        {"email": "many@example.com", "agents": many},
        {"email": "first@example.com"},
    ]});
    let run = import(&app, &write_file(&app, "users.json", &file));
    assert!(!run.ok);
    let doomed = paragraph(&run.report, "doomed@example.com");
    assert!(
        doomed.starts_with("doomed@example.com: failed, nothing of this user was imported: ")
            && doomed.contains("planted failure"),
        "{}",
        run.report
    );
    // Nothing of that user is left: no account, no workspace, no tool.
    let db = raw_db(&app);
    let left: i64 = db
        .query_row(
            "SELECT (SELECT COUNT(*) FROM users WHERE email = 'doomed@example.com')
                  + (SELECT COUNT(*) FROM tools WHERE name = 'Lands first')
                  + (SELECT COUNT(*) FROM organizations WHERE name LIKE 'Doomed%')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
    assert!(
        paragraph(&run.report, "first@example.com").contains("  imported: 1 agent\n"),
        "{}",
        run.report
    );
    let many = paragraph(&run.report, "many@example.com");
    assert!(many.contains("  imported: 10 agents\n"), "{many}");
    assert!(
        many.contains("    agents[10] \"Agent 10\": the Free plan allows at most 10 agents; upgrade the plan or remove some\n"),
        "{many}"
    );
    assert!(
        run.report
            .contains("first@example.com: refused: the same email as users[0] of this file\n"),
        "{}",
        run.report
    );
    // The account made by the import has no password to sign in with.
    assert!(
        paragraph(&run.report, "first@example.com")
            .contains("note: no password_hash: the account cannot sign in with a password"),
        "{}",
        run.report
    );
    assert!(
        run.report
            .ends_with("4 users: 2 created, 0 existing, 1 refused, 1 failed; 1 items refused\n"),
        "{}",
        run.report
    );
}

#[tokio::test]
async fn a_file_that_is_no_import_file_imports_nothing() {
    let app = TestApp::spawn().await;
    let users = count(&app, "users");
    for (name, text, expected) in [
        (
            "v2.json",
            r#"{"version": 2, "users": []}"#,
            "version 2 of the import format",
        ),
        ("junk.json", "not json", "not an import file"),
        (
            "extra.json",
            r#"{"version": 1, "users": [], "teams": []}"#,
            "unknown field `teams`",
        ),
    ] {
        let p = app.root().join(name);
        std::fs::write(&p, text).unwrap();
        let run = import(&app, &p);
        assert!(!run.ok);
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
        assert!(run.report.is_empty(), "{}", run.report);
    }
    let run = import(&app, &app.root().join("missing.json"));
    assert!(!run.ok);
    assert!(run.stderr.contains("cannot read"), "{}", run.stderr);
    assert_eq!(count(&app, "users"), users);
}

#[test]
fn the_sample_follows_the_json_schema_and_the_schema_refuses_what_the_import_refuses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("packaging/import.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let sample = sample();
    let problems: Vec<String> = validator
        .iter_errors(&sample)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(problems.is_empty(), "{problems:?}");
    for (bad, why) in [
        (json!({"version": 2, "users": []}), "another version"),
        (json!({"version": 1, "users": [{"name": "x"}]}), "no email"),
        (
            json!({"version": 1, "users": [{"email": "a@example.com", "agents": [{"name": "A", "visibility": "public"}]}]}),
            "a visibility",
        ),
        (
            json!({"version": 1, "users": [{"email": "a@example.com", "documents": [{"filename": "A.txt", "text": "x", "content_base64": "eA=="}]}]}),
            "two contents",
        ),
        (
            json!({"version": 1, "users": [{"email": "a@example.com", "password_hash": "md5$x"}]}),
            "an unknown hash",
        ),
    ] {
        assert!(!validator.is_valid(&bad), "the schema accepts {why}");
    }
}
