//! Pages a person reads: the audit log names people and things (ids stay in tooltips), its
//! details open under the entry; look-alike names are told apart in pickers; the upload
//! label states the plan's limit; empty lists say what to do next.
use super::*;

/// Ada's team organization with Bob as a member, made over the API.
async fn engines_with_bob(app: &TestApp) -> (common::Session, String, TestUser) {
    app.create_user(ADA_EMAIL, ADA_NAME).await;
    let bob = app.create_user("bob@example.com", "Bob Babbage").await;
    let owner = app.login(ADA_EMAIL).await;
    let org_id = engines(&owner).await;
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

    // The home page's recent activity names them the same way.
    b.goto("/o/engines").await;
    b.wait_for("#recent-activity").await;
    let recent = b
        .client
        .execute(
            "return Array.from(document.querySelectorAll('#recent-activity tbody tr')).map(r => \
             ({who: r.cells[1].textContent.trim(), title: r.cells[1].querySelector('span').title, \
               what: r.cells[2].textContent.trim(), on: r.cells[3].textContent.trim()}));",
            vec![],
        )
        .await
        .unwrap();
    let created = recent
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["what"] == "team.created" && r["on"] == "team Research")
        .unwrap_or_else(|| panic!("no named team.created row: {recent:#}"));
    assert_eq!(created["who"], ADA_NAME, "{recent:#}");
    assert_eq!(created["title"], format!("user {ada_id}"), "{recent:#}");
    assert!(
        !recent.to_string().contains(ADA_EMAIL),
        "recent activity shows the email, not the name: {recent:#}"
    );

    b.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_organizations_with_the_same_name_are_told_apart_in_the_switcher() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    app.create_user(ADA_EMAIL, ADA_NAME).await;
    let owner = app.login(ADA_EMAIL).await;
    for slug in ["acme-east", "acme-west"] {
        let r = owner
            .post("/api/v1/orgs", json!({"name": "Acme", "slug": slug}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let b = Browser::launch(&app).await;
    b.fill_sign_in(ADA_EMAIL, PASSWORD).await;
    b.wait_for("#sign-out").await;
    b.goto("/o/acme-east").await;
    let acme: Vec<String> = b
        .switcher_options()
        .await
        .into_iter()
        .map(|o| o.text)
        .filter(|t| t.starts_with("Acme"))
        .collect();
    assert_eq!(acme.len(), 2, "{acme:?}");
    assert_ne!(acme[0], acme[1], "the two Acme look the same: {acme:?}");
    assert!(
        acme.iter().any(|t| t.contains("acme-east"))
            && acme.iter().any(|t| t.contains("acme-west")),
        "each shows its slug: {acme:?}"
    );
    // The token form's organization choice tells them apart the same way.
    b.goto("/account").await;
    let tokens: Vec<String> = option_texts(&b, "#token-org")
        .await
        .into_iter()
        .filter(|t| t.starts_with("Acme"))
        .collect();
    assert!(
        tokens.len() == 2 && tokens[0] != tokens[1],
        "token organizations: {tokens:?}"
    );

    b.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_with_the_same_name_are_told_apart_by_their_owners_in_the_agent_picker() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let (owner, org_id, bob) = engines_with_bob(&app).await;
    let bob_api = app.login(&bob.email).await;
    for who in [&owner, &bob_api] {
        let r = who
            .post(
                &format!("/api/v1/orgs/{org_id}/agents"),
                json!({"name": "Helper", "visibility": "organization"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let one = owner
        .post(
            &format!("/api/v1/orgs/{org_id}/agents"),
            json!({"name": "Only one", "visibility": "organization"}),
        )
        .await;
    assert_eq!(one.status, StatusCode::CREATED, "{}", one.text);

    let b = Browser::launch(&app).await;
    b.fill_sign_in(ADA_EMAIL, PASSWORD).await;
    b.wait_for("#sign-out").await;
    b.goto("/o/engines/conversations").await;
    let options = option_texts(&b, "#resource-agent").await;
    let helpers: Vec<&String> = options.iter().filter(|t| t.starts_with("Helper")).collect();
    assert_eq!(helpers.len(), 2, "{options:?}");
    assert_ne!(helpers[0], helpers[1], "{options:?}");
    assert!(
        helpers.iter().any(|t| t.contains("Bob Babbage")),
        "Bob's Helper names him: {options:?}"
    );
    assert!(
        options.iter().any(|t| t == "Only one"),
        "a name nobody else uses stays as it is: {options:?}"
    );

    b.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_label_states_the_limit_of_the_organizations_plan() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let ada = app.create_user(ADA_EMAIL, ADA_NAME).await;
    let b = Browser::launch(&app).await;
    b.sign_in(&ada).await;
    let documents = format!("/o/{}/documents", ada.personal_slug);
    b.goto(&documents).await;
    let label = label_text(&b, "resource-file").await;
    // The free plan accepts documents up to 10 MiB (the server's own limit is 64 MiB).
    assert!(label.contains("up to 10 MiB"), "{label:?}");

    raw_db(&app)
        .execute(
            "UPDATE plans SET max_document_bytes = 2621440 WHERE id = 'free'",
            [],
        )
        .unwrap();
    b.goto(&documents).await;
    let label = label_text(&b, "resource-file").await;
    assert!(label.contains("up to 2.5 MiB"), "{label:?}");

    b.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_knowledge_base_links_to_the_upload_and_an_empty_list_to_its_create_form() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let (owner, org_id, bob) = engines_with_bob(&app).await;
    let kb = owner
        .post(
            &format!("/api/v1/orgs/{org_id}/knowledge-bases"),
            json!({"name": "Manuals", "visibility": "organization"}),
        )
        .await;
    assert_eq!(kb.status, StatusCode::CREATED, "{}", kb.text);
    let kb_id = kb.body["id"].as_str().unwrap().to_string();

    let b = Browser::launch(&app).await;
    b.fill_sign_in(ADA_EMAIL, PASSWORD).await;
    b.wait_for("#sign-out").await;
    b.goto(&format!("/o/engines/knowledge-bases/{kb_id}")).await;
    b.wait_for("#kb-empty a").await.click().await.unwrap();
    b.wait_for_path("/o/engines/documents").await;
    assert!(
        b.wait_displayed("#resource-file").await,
        "the link opens the upload form; {}",
        b.diagnostics().await
    );

    // An empty list links to its create form, which the link opens.
    b.goto("/o/engines/tools").await;
    b.wait_for("#resources-empty a")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for_path("/o/engines/tools").await;
    assert!(
        b.wait_displayed("#resource-name").await,
        "the link opens the new tool form; {}",
        b.diagnostics().await
    );
    // So do the teams page and the invitations.
    b.goto("/o/engines/teams").await;
    let href = b
        .wait_for("#teams-empty a")
        .await
        .attr("href")
        .await
        .unwrap();
    assert!(href.is_some_and(|h| h.ends_with("#new-team")), "teams link");
    b.close().await;

    // A viewer may create nothing: the empty list explains instead of linking.
    let set = owner
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/orgs/{org_id}/members/{}", bob.id),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    let viewer = Browser::launch(&app).await;
    viewer.fill_sign_in(&bob.email, PASSWORD).await;
    viewer.wait_for("#sign-out").await;
    viewer.goto("/o/engines/tools").await;
    let empty = viewer.text_of("#resources-empty").await;
    assert!(!empty.trim().is_empty());
    assert!(
        viewer.absent("#resources-empty a").await,
        "a viewer is offered a form they cannot use: {empty:?}"
    );
    viewer
        .goto(&format!("/o/engines/knowledge-bases/{kb_id}"))
        .await;
    viewer.wait_for("#kb-empty").await;
    assert!(viewer.absent("#kb-empty a[href*='documents']").await);

    viewer.close().await;
    app.stop().await;
}
