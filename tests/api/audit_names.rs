//! The audit page names actors and resources from its own organization only: an entry
//! whose id now points into another organization (a moved agent, a crafted row) shows what
//! the entry recorded, never that organization's names.
use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

fn raw_db(app: &TestApp) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(app.data_dir().join("xagent.db")).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    c
}

/// Appends a row to `org`'s log directly (the chain is not what this test is about).
fn insert_row(app: &TestApp, org: &str, actor: (&str, &str), action: &str, resource: (&str, &str)) {
    let c = raw_db(app);
    let seq: i64 = c
        .query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM organization_audit_logs WHERE organization_id = ?1",
            [org],
            |r| r.get(0),
        )
        .unwrap();
    c.execute(
        "INSERT INTO organization_audit_logs (id, organization_id, seq, at, actor_id, actor_email,
             action, resource_type, resource_id, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, '{}', 'x', 'x')",
        rusqlite::params![
            format!("crafted-{seq}"),
            org,
            seq,
            chrono::Utc::now().to_rfc3339(),
            actor.0,
            actor.1,
            action,
            resource.0,
            resource.1
        ],
    )
    .unwrap();
}

#[tokio::test]
async fn the_audit_page_never_names_what_an_entry_points_to_in_another_organization() {
    let app = TestApp::spawn().await;
    let ada = app.create_user("ada@example.com", "Ada Lovelace").await;
    let carol = app.create_user("carol@example.com", "Carol Hidden").await;
    let s = app.login(&ada.email).await;

    // Ada's agent moves from her personal workspace into Beta, where it is renamed.
    let agent = s
        .post(
            &format!("/api/v1/orgs/{}/agents", ada.personal_org),
            json!({"name": "Loom notes"}),
        )
        .await;
    assert_eq!(agent.status, StatusCode::CREATED, "{}", agent.text);
    let agent_id = agent.body["id"].as_str().unwrap().to_string();
    let beta = s
        .post("/api/v1/orgs", json!({"name": "Beta", "slug": "beta"}))
        .await;
    let beta_id = beta.body["id"].as_str().unwrap().to_string();
    let moved = s
        .post(
            "/api/v1/me/move-to-organization",
            json!({"from_organization_id": ada.personal_org, "to_organization_id": beta_id}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    let renamed = s
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/orgs/{beta_id}/agents/{agent_id}"),
            Some(json!({"name": "Beta Secret Agent"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    let renamed = s
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/orgs/{beta_id}"),
            Some(json!({"name": "Beta Secret Org"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);

    // Carol's organization, team and name belong to nobody Ada works with.
    let c = app.login(&carol.email).await;
    let gamma = c
        .post(
            "/api/v1/orgs",
            json!({"name": "Gamma Hidden Org", "slug": "gamma"}),
        )
        .await;
    let gamma_id = gamma.body["id"].as_str().unwrap().to_string();
    let team = c
        .post(
            &format!("/api/v1/orgs/{gamma_id}/teams"),
            json!({"name": "Gamma Hidden Team"}),
        )
        .await;
    let team_id = team.body["id"].as_str().unwrap().to_string();
    let personal = ada.personal_org.as_str();
    let by_carol = (carol.id.as_str(), carol.email.as_str());
    insert_row(&app, personal, by_carol, "team.updated", ("team", &team_id));
    insert_row(
        &app,
        personal,
        by_carol,
        "organization.updated",
        ("organization", &gamma_id),
    );
    insert_row(
        &app,
        personal,
        by_carol,
        "member.role_changed",
        ("member", &carol.id),
    );

    let page = s.get(&format!("/o/{}/audit", ada.personal_slug)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    // The header lists Ada's own organizations (Beta among them): the log is what counts.
    let start = page
        .text
        .find("id=\"audit-table\"")
        .expect("the audit table");
    let end = start + page.text[start..].find("</table>").unwrap();
    let log = &page.text[start..end];
    for foreign in [
        "Beta Secret Agent",
        "Beta Secret Org",
        "Gamma Hidden Org",
        "Gamma Hidden Team",
        "Carol Hidden",
    ] {
        assert!(
            !log.contains(foreign),
            "the personal audit log shows {foreign:?}"
        );
    }
    // What the entries recorded still labels them.
    assert!(log.contains("Loom notes"), "the agent's recorded name");
    assert!(log.contains("deleted team"), "a team not found here");
    assert!(log.contains("carol@example.com"), "the recorded actor");
    // The ids are kept for whoever needs them.
    assert!(log.contains(&team_id) && log.contains(&agent_id));

    // The API is unchanged: ids and recorded emails only.
    let api = s
        .get(&format!("/api/v1/orgs/{personal}/audit?limit=100"))
        .await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.text);
    assert!(!api.text.contains("Beta Secret") && !api.text.contains("Gamma Hidden"));
}
