//! The audit log is a hash chain: `xagent audit verify` finds edits and gaps; retention
//! purges old rows and leaves an anchor so that the rest still verifies.
use std::process::Command;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

fn verify_cli(app: &TestApp, org: Option<&str>) -> (bool, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xagent"));
    c.env("XAGENT_LOG", "warn")
        .args(["audit", "verify", "--data-dir"])
        .arg(app.data_dir());
    if let Some(o) = org {
        c.args(["--org", o]);
    }
    let out = c.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn raw_db(app: &TestApp) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(app.data_dir().join("xagent.db")).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    c
}

async fn busy_org(app: &TestApp) -> (Session, String) {
    app.create_user("owner@example.com", "Owner").await;
    let s = app.login("owner@example.com").await;
    let org = s
        .post("/api/v1/orgs", json!({"name": "Chain", "slug": "chain"}))
        .await;
    let org = org.body["id"].as_str().unwrap().to_string();
    for i in 0..5 {
        let r = s
            .post(
                &format!("/api/v1/orgs/{org}/teams"),
                json!({"name": format!("team {i}")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    (s, org)
}

#[tokio::test]
async fn verify_passes_on_an_untouched_log_and_names_the_first_edited_row() {
    let app = TestApp::spawn().await;
    let (_s, org) = busy_org(&app).await;
    let (ok, out) = verify_cli(&app, None);
    assert!(ok, "{out}");
    assert!(out.contains("chain") && out.contains("6 rows"), "{out}");

    // Someone with the file edits a row (after removing the append-only trigger).
    let db = raw_db(&app);
    db.execute_batch("DROP TRIGGER organization_audit_logs_append_only")
        .unwrap();
    let n = db
        .execute(
            "UPDATE organization_audit_logs SET details = '{\"name\":\"innocent\"}'
             WHERE organization_id = ?1 AND seq = 3",
            [&org],
        )
        .unwrap();
    assert_eq!(n, 1);
    let (ok, out) = verify_cli(&app, Some("chain"));
    assert!(!ok, "{out}");
    assert!(out.contains("seq 3") && out.contains("edited"), "{out}");
}

#[tokio::test]
async fn verify_notices_a_deleted_row() {
    let app = TestApp::spawn().await;
    let (_s, org) = busy_org(&app).await;
    let db = raw_db(&app);
    db.execute(
        "DELETE FROM organization_audit_logs WHERE organization_id = ?1 AND seq = 4",
        [&org],
    )
    .unwrap();
    let reports = xagent::services::audit::verify(&app.svc, Some(org.clone()))
        .await
        .unwrap();
    let (seq, _, why) = reports[0].broken.clone().unwrap();
    assert_eq!(seq, 5);
    assert!(why.contains("missing"), "{why}");
}

#[tokio::test]
async fn retention_purges_old_rows_audits_the_purge_and_the_rest_still_verifies() {
    let app = TestApp::spawn().await;
    let (s, org) = busy_org(&app).await;
    let r = s
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/orgs/{org}"),
            Some(json!({"settings": {"audit_retention_days": 30}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["settings"]["audit_retention_days"], 30);
    // Age the first four rows by 60 days. Their hashes no longer match, which is fine:
    // they are about to be purged, and the anchor keeps the stored hash.
    let db = raw_db(&app);
    db.execute_batch("DROP TRIGGER organization_audit_logs_append_only")
        .unwrap();
    db.execute(
        "UPDATE organization_audit_logs SET at = '2000-01-01T00:00:00.000000Z' WHERE organization_id = ?1 AND seq <= 4",
        [&org],
    )
    .unwrap();
    let removed = xagent::services::audit::purge_expired(&app.svc)
        .await
        .unwrap();
    assert_eq!(removed, 4);
    let log = s.get(&format!("/api/v1/orgs/{org}/audit?limit=200")).await;
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items[0]["action"], "audit.purged");
    assert_eq!(items[0]["details"]["removed"], 4);
    assert_eq!(items[0]["actor"]["id"], serde_json::Value::Null);
    assert_eq!(items.len(), 1 + 7 - 4, "{items:?}");
    let reports = xagent::services::audit::verify(&app.svc, Some(org.clone()))
        .await
        .unwrap();
    assert!(reports[0].broken.is_none(), "{:?}", reports[0]);
    // Running again purges nothing more.
    assert_eq!(
        xagent::services::audit::purge_expired(&app.svc)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn the_instance_chain_verifies_too() {
    let app = TestApp::spawn().await;
    app.create_user("a@example.com", "A").await;
    let _ = app.login_with("a@example.com", "wrong password").await;
    let reports = xagent::services::audit::verify(&app.svc, None)
        .await
        .unwrap();
    let instance = reports.iter().find(|r| r.scope == "instance").unwrap();
    assert!(
        instance.rows >= 2 && instance.broken.is_none(),
        "{instance:?}"
    );
}
