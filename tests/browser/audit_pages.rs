//! Pages a person reads: the audit log names people and things (ids stay in tooltips), its
//! details open under the entry; look-alike names are told apart in pickers; the upload
//! label states the plan's limit; empty lists say what to do next.
#![allow(dead_code)]
use super::*;

/// Ada's team organization with Bob as a member, made over the API.
async fn engines_with_bob(app: &TestApp) -> (common::Session, String, TestUser) {
    app.create_user(ADA_EMAIL, ADA_NAME).await;
    let bob = app.create_user("bob@example.com", "Bob Babbage").await;
    let owner = app.login(ADA_EMAIL).await;
    let org = owner
        .post(
            "/api/v1/orgs",
            json!({"name": "Analytical Engines", "slug": "engines"}),
        )
        .await;
    assert_eq!(org.status, StatusCode::CREATED, "{}", org.text);
    let org_id = org.body["id"].as_str().unwrap().to_string();
    let inv = owner
        .post(
            &format!("/api/v1/orgs/{org_id}/invitations"),
            json!({"email": bob.email, "role": "member"}),
        )
        .await;
    assert_eq!(inv.status, StatusCode::CREATED, "{}", inv.text);
    let joined = app
        .login(&bob.email)
        .await
        .post(
            "/api/v1/invitations/accept",
            json!({"token": inv.body["token"]}),
        )
        .await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.text);
    (owner, org_id, bob)
}

fn raw_db(app: &TestApp) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(app.data_dir().join("xagent.db")).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

/// A label's text, shown or not (the upload form is folded until opened).
async fn label_text(b: &Browser, input_id: &str) -> String {
    b.wait_for(&format!("label[for='{input_id}']")).await;
    let raw = b
        .client
        .execute(
            "return document.querySelector(\"label[for='\" + arguments[0] + \"']\").textContent;",
            vec![json!(input_id)],
        )
        .await
        .unwrap();
    raw.as_str().unwrap_or_default().to_string()
}

/// The texts of the options of a select.
async fn option_texts(b: &Browser, css: &str) -> Vec<String> {
    b.wait_for(css).await;
    let raw = b
        .client
        .execute(
            "return Array.from(document.querySelectorAll(arguments[0] + ' option')) \
             .map(o => o.textContent.trim());",
            vec![json!(css)],
        )
        .await
        .unwrap();
    serde_json::from_value(raw).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_entries_name_their_actor_and_resource_and_open_their_details_below_the_row() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let (owner, org_id, bob) = engines_with_bob(&app).await;
    let team = owner
        .post(
            &format!("/api/v1/orgs/{org_id}/teams"),
            json!({"name": "Research", "description": "Looks into the mill"}),
        )
        .await;
    assert_eq!(team.status, StatusCode::CREATED, "{}", team.text);
    let team_id = team.body["id"].as_str().unwrap().to_string();
    let old = owner
        .post(
            &format!("/api/v1/orgs/{org_id}/teams"),
            json!({"name": "Old team"}),
        )
        .await;
    let old_id = old.body["id"].as_str().unwrap().to_string();
    let gone = owner
        .delete(&format!("/api/v1/orgs/{org_id}/teams/{old_id}"))
        .await;
    assert!(gone.status.is_success(), "{}", gone.text);
    let ada_id = owner.get("/api/v1/me").await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let b = Browser::launch(&app).await;
    b.fill_sign_in(ADA_EMAIL, PASSWORD).await;
    b.wait_for("#sign-out").await;
    b.goto("/o/engines/audit").await;
    b.wait_for("#audit-table").await;

    // Each entry row: what its cells read, and the tooltips of its actor and resource.
    let rows = b
        .client
        .execute(
            "return Array.from(document.querySelectorAll('#audit-table tr[data-audit-id]')) \
             .map(r => ({action: r.querySelector('.audit-action').textContent.trim(), \
               actor: r.cells[1].innerText.trim(), resource: r.cells[3].innerText.trim(), \
               actor_title: Array.from(r.cells[1].querySelectorAll('[title]')).map(e => e.title).join(' '), \
               resource_title: Array.from(r.cells[3].querySelectorAll('[title]')).map(e => e.title).join(' '), \
               text: r.innerText}));",
            vec![],
        )
        .await
        .unwrap();
    let rows = rows.as_array().unwrap().clone();
    let find = |action: &str, id: &str| {
        rows.iter()
            .find(|r| r["action"] == action && r["resource_title"].as_str().unwrap().contains(id))
            .unwrap_or_else(|| panic!("no {action} row with {id} in a resource tooltip: {rows:#?}"))
            .clone()
    };

    let created = find("team.created", &team_id);
    assert!(
        created["resource"].as_str().unwrap().contains("Research"),
        "the resource is named: {created:#}"
    );
    assert!(
        created["actor"].as_str().unwrap().contains(ADA_NAME)
            && created["actor"].as_str().unwrap().contains(ADA_EMAIL),
        "the actor is named, with the email: {created:#}"
    );
    assert!(
        created["actor_title"].as_str().unwrap().contains(&ada_id),
        "the actor's id is in a tooltip: {created:#}"
    );
    assert!(
        !created["text"].as_str().unwrap().contains(&team_id)
            && !created["text"].as_str().unwrap().contains(&ada_id),
        "no bare id in the row's text: {created:#}"
    );

    // A deleted team keeps the name recorded when it was made.
    let deleted = find("team.deleted", &old_id);
    let label = deleted["resource"].as_str().unwrap();
    assert!(
        label.contains("Old team") && label.contains("deleted"),
        "{deleted:#}"
    );

    // Bob joined: the member is named, and so is he as the actor.
    let joined = find("member.joined", &bob.id);
    assert!(
        joined["resource"].as_str().unwrap().contains("Bob Babbage"),
        "{joined:#}"
    );
    assert!(
        joined["actor"].as_str().unwrap().contains("Bob Babbage"),
        "{joined:#}"
    );

    // The details of the team's creation open in a full-width row under the entry.
    let entry_css = "#audit-table tr[data-audit-id]";
    let summary = b
        .client
        .execute(
            "const r = Array.from(document.querySelectorAll(arguments[0])) \
               .find(r => r.cells[3].querySelector('[title*=\"' + arguments[1] + '\"]')); \
             const next = r.nextElementSibling; \
             const d = next && next.querySelector('details.audit-details'); \
             if (!d) return null; \
             d.querySelector('summary').click(); \
             return {id: r.dataset.auditId, open: d.open, \
               in_entry_row: r.contains(d), \
               details_width: d.getBoundingClientRect().width, \
               table_width: document.getElementById('audit-table').getBoundingClientRect().width, \
               text: d.innerText};",
            vec![json!(entry_css), json!(team_id)],
        )
        .await
        .unwrap();
    assert!(
        !summary.is_null(),
        "the row after the entry holds its details; {}",
        b.diagnostics().await
    );
    assert_eq!(summary["open"], json!(true), "{summary:#}");
    assert_eq!(summary["in_entry_row"], json!(false), "{summary:#}");
    let (dw, tw) = (
        summary["details_width"].as_f64().unwrap(),
        summary["table_width"].as_f64().unwrap(),
    );
    assert!(
        dw >= tw * 0.9,
        "the details use the table's width ({dw} of {tw}): {summary:#}"
    );
    let text = summary["text"].as_str().unwrap();
    assert!(
        text.contains("name") && text.contains("Research"),
        "the details read as keys and values: {text}"
    );
    assert!(
        text.contains(&team_id),
        "the details keep the resource id: {text}"
    );
    // Opening them does not squeeze the columns: the time still fits on one line.
    let time_lines = b
        .client
        .execute(
            "const range = document.createRange(); \
             range.selectNodeContents(document.querySelector('#audit-table tr[data-audit-id] td')); \
             return range.getClientRects().length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(time_lines, json!(1), "the time cell wraps");

    b.close().await;
    app.stop().await;
}
