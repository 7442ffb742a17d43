//! Browser tests: the real server (TestApp) driven through headless Chromium over WebDriver.
//!
//! Each test starts its own server, its own chromedriver and its own throw-away Chromium
//! profile. They take turns (one Chromium at a time) because Chromium is heavy on a small
//! machine. Chromium and chromedriver are required: a missing one fails the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;
mod forms;
mod layout;

mod agent_pages;
mod audit_pages;
mod billing_pages;
mod console_pages;
mod security_pages;
mod sso_pages;
mod two_factor_pages;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{PASSWORD, TestApp, TestUser};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);

/// Without these Chromium hangs on this closed network (it keeps trying to reach Google).
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// One Chromium at a time: tests in this binary run on parallel threads otherwise.
static ONE_BROWSER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ADA_EMAIL: &str = "ada@example.com";
const ADA_NAME: &str = "Ada Lovelace";
const ADA_PERSONAL_ORG: &str = "Ada Lovelace (personal)";

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

/// Ada's team organization "Analytical Engines" (slug `engines`), made over the API by
/// `owner`; its id.
async fn engines(owner: &common::Session) -> String {
    let org = owner
        .post(
            "/api/v1/orgs",
            json!({"name": "Analytical Engines", "slug": "engines"}),
        )
        .await;
    assert_eq!(org.status, StatusCode::CREATED, "{}", org.text);
    org.body["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_stays_on_sign_in_and_the_right_one_opens_the_personal_org_home() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let ada = app.create_user(ADA_EMAIL, ADA_NAME).await;
    let b = Browser::launch(&app).await;

    b.fill_sign_in(ADA_EMAIL, "not the password").await;
    let error = b.wait_for("#login-error").await;
    assert_eq!(
        error.text().await.unwrap(),
        "Email or password is incorrect."
    );
    assert_eq!(b.path().await, "/login", "a failed sign-in stays on /login");
    assert!(
        b.absent("#sign-out").await,
        "a failed sign-in shows no signed-in header"
    );
    let kept = b.wait_for("#email").await.prop("value").await.unwrap();
    assert_eq!(kept.as_deref(), Some(ADA_EMAIL), "the email is kept");

    b.fill_sign_in(ADA_EMAIL, PASSWORD).await;
    b.wait_for_path(&format!("/o/{}", ada.personal_slug)).await;
    b.wait_for_text("#org-name", ADA_PERSONAL_ORG).await;
    assert_eq!(b.text_of("#org-role").await, "owner");
    assert!(b.absent("#login-error").await);
    b.wait_for("#sign-out").await;

    b.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_organization_can_be_created_and_the_header_switcher_changes_the_current_one() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let ada = app.create_user(ADA_EMAIL, ADA_NAME).await;
    let b = Browser::launch(&app).await;
    b.sign_in(&ada).await;

    // Create a second organization through the page.
    b.wait_for("a[href='/orgs/new']")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for("#new-org").await;
    b.type_into("#org-name-input", "Analytical Engines").await;
    b.type_into("#org-slug-input", "engines").await;
    b.wait_for("#create-org").await.click().await.unwrap();
    b.wait_for_path("/o/engines").await;
    b.wait_for_text("#org-name", "Analytical Engines").await;
    assert_eq!(b.text_of("#org-role").await, "owner");

    let options = b.switcher_options().await;
    assert_eq!(
        options.len(),
        2,
        "both orgs are in the switcher: {options:?}"
    );
    let engines = options
        .iter()
        .find(|o| o.text.starts_with("Analytical Engines"))
        .unwrap_or_else(|| panic!("no switcher option for the new org: {options:?}"))
        .clone();
    assert_ne!(engines.value, ada.personal_org);
    assert_only_marked(&options, &engines.value);

    // Switch back with the form's own button (the no-JavaScript path): pick the option
    // without firing `change`, so htmx's auto-submit stays out of it.
    let picked = b
        .client
        .execute(
            "const s = document.getElementById('switch-org'); s.value = arguments[0]; return s.value;",
            vec![json!(ada.personal_org)],
        )
        .await
        .unwrap();
    assert_eq!(
        picked,
        json!(ada.personal_org),
        "the personal org is an option"
    );
    b.wait_for("#switch-org-go").await.click().await.unwrap();
    b.wait_for_path(&format!("/o/{}", ada.personal_slug)).await;
    b.wait_for_text("#org-name", ADA_PERSONAL_ORG).await;
    assert_only_marked(&b.switcher_options().await, &ada.personal_org);

    // The choice is stored: the account says so, and the front door leads there.
    let me = cookie_get(&app, &b.cookie_header().await, "/api/v1/me").await;
    assert_eq!(me.0, StatusCode::OK, "{:?}", me.1);
    assert_eq!(me.1["current_organization_id"], json!(ada.personal_org));
    b.goto("/").await;
    b.wait_for_path(&format!("/o/{}", ada.personal_slug)).await;
    b.wait_for_text("#org-name", ADA_PERSONAL_ORG).await;

    // htmx submits the switcher as soon as the selection changes.
    b.wait_for("#switch-org")
        .await
        .select_by_value(&engines.value)
        .await
        .unwrap();
    b.wait_for_path("/o/engines").await;
    b.wait_for_text("#org-name", "Analytical Engines").await;
    assert_only_marked(&b.switcher_options().await, &engines.value);
    b.goto("/").await;
    b.wait_for_path("/o/engines").await;
    b.wait_for_text("#org-name", "Analytical Engines").await;

    b.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_token_made_on_the_account_page_works_until_it_is_revoked_there() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let ada = app.create_user(ADA_EMAIL, ADA_NAME).await;
    let b = Browser::launch(&app).await;
    b.sign_in(&ada).await;

    b.wait_for("a[href='/account']")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for_path("/account").await;
    b.wait_for("#create-token").await;
    assert!(
        b.absent("#token-table").await,
        "a new account has no tokens"
    );
    b.type_into("#token-name", "CI deploy").await;
    b.wait_for("#token-org")
        .await
        .select_by_value(&ada.personal_org)
        .await
        .unwrap();
    // A date input's typing format depends on the browser locale; set its value directly.
    b.client
        .execute(
            "document.getElementById('token-expires').value = '2099-12-31';",
            vec![],
        )
        .await
        .unwrap();
    b.wait_for("#create-token-btn").await.click().await.unwrap();

    let secret = b.wait_for("#new-token-value").await.text().await.unwrap();
    let secret = secret.trim().to_string();
    assert!(secret.starts_with("xa_"), "token secret {secret:?}");
    assert!(secret.len() > 20, "token secret {secret:?} is too short");
    let notice = b.text_of("#new-token").await;
    assert!(
        notice.contains("CI deploy") && notice.contains(ADA_PERSONAL_ORG),
        "creation notice: {notice:?}"
    );

    let (status, me) = bearer_get(&app, &secret, "/api/v1/me").await;
    assert_eq!(status, StatusCode::OK, "the new token works: {me:?}");
    assert_eq!(me["user"]["email"], json!(ADA_EMAIL));

    let rows = b
        .client
        .find_all(Locator::Css("#token-table tr[data-token-id]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one token row");
    let token_id = rows[0].attr("data-token-id").await.unwrap().unwrap();
    let row_css = format!("#token-table tr[data-token-id='{token_id}']");
    let row = b.text_of(&row_css).await;
    assert!(row.contains("CI deploy"), "row: {row:?}");
    assert!(row.contains("active"), "row: {row:?}");
    assert!(
        row.contains("2099-12-31"),
        "row shows the expiry date: {row:?}"
    );
    assert!(!row.contains(&secret), "the table never shows the secret");

    // Accepting the confirmation revokes it.
    let revoke_css = format!("{row_css} button.revoke-token");
    b.wait_for(&revoke_css).await.click().await.unwrap();
    b.wait_for_alert().await;
    b.client.accept_alert().await.unwrap();
    b.wait_until_text_contains(&row_css, "revoked").await;
    assert!(
        b.absent(&revoke_css).await,
        "a revoked token has no revoke button"
    );
    let (status, body) = bearer_get(&app, &secret, "/api/v1/me").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revoked token is refused: {body:?}"
    );

    // The secret was shown once and is nowhere on the page afterwards.
    b.goto("/account").await;
    b.wait_for("#token-table").await;
    assert!(b.absent("#new-token-value").await);
    let html = b.client.source().await.unwrap();
    assert!(
        !html.contains(&secret),
        "the secret is still on /account after a reload"
    );
    assert!(b.text_of(&row_css).await.contains("revoked"));

    b.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_confirmation_on_the_account_page_revokes_nothing() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let ada = app.create_user(ADA_EMAIL, ADA_NAME).await;
    let b = Browser::launch(&app).await;
    b.sign_in(&ada).await;
    let cookie = b.cookie_header().await;

    b.goto("/account").await;
    b.type_into("#token-name", "keep me").await;
    b.wait_for("#create-token-btn").await.click().await.unwrap();
    let secret = b.wait_for("#new-token-value").await.text().await.unwrap();
    let secret = secret.trim().to_string();
    b.goto("/account").await;
    b.wait_for("#token-table").await;

    // "Cancel" on "Revoke this token?"
    let revoke_css = "#token-table tr[data-token-id] button.revoke-token";
    b.wait_for(revoke_css).await.click().await.unwrap();
    let question = b.wait_for_alert().await;
    assert!(
        question.contains("Revoke this token"),
        "confirm text: {question:?}"
    );
    b.client.dismiss_alert().await.unwrap();
    // Give a wrongly sent form time to land before looking.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (token_status, _) = bearer_get(&app, &secret, "/api/v1/me").await;

    // "Cancel" on "Sign this session out?" for this browser's own session.
    b.goto("/account").await;
    let sign_out_css = "#session-table tr:has(.pill.ok) button";
    b.wait_for(sign_out_css).await.click().await.unwrap();
    let question = b.wait_for_alert().await;
    assert!(
        question.contains("Sign this session out"),
        "confirm text: {question:?}"
    );
    b.client.dismiss_alert().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (session_status, _) = cookie_get(&app, &cookie, "/api/v1/me").await;

    assert_eq!(
        (token_status, session_status),
        (StatusCode::OK, StatusCode::OK),
        "(token, session) after cancelling their revoke confirmations: \
         a cancelled confirm must not send the form"
    );

    b.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_errors_are_shown_next_to_the_form() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let ada = app.create_user(ADA_EMAIL, ADA_NAME).await;
    let b = Browser::launch(&app).await;
    b.sign_in(&ada).await;

    // A slug that is taken (by Ada's personal org).
    b.wait_for("a[href='/orgs/new']")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for("#new-org").await;
    b.type_into("#org-name-input", "Taken Slug").await;
    b.type_into("#org-slug-input", &ada.personal_slug).await;
    b.wait_for("#create-org").await.click().await.unwrap();
    let error = b.text_of("#slug-error").await;
    assert!(!error.trim().is_empty(), "the slug error says something");
    assert_eq!(b.path().await, "/orgs/new");
    let kept = b
        .wait_for("#org-name-input")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(
        kept.as_deref(),
        Some("Taken Slug"),
        "the typed name is kept"
    );

    // An expiry date in the past.
    b.goto("/account").await;
    b.type_into("#token-name", "too late").await;
    b.client
        .execute(
            "document.getElementById('token-expires').value = '2001-01-01';",
            vec![],
        )
        .await
        .unwrap();
    b.wait_for("#create-token-btn").await.click().await.unwrap();
    let error = b.text_of("#create-token .field-error").await;
    assert!(
        !error.trim().is_empty(),
        "the token form error says something"
    );
    assert!(b.absent("#new-token-value").await, "no token was made");
    let kept = b.wait_for("#token-name").await.prop("value").await.unwrap();
    assert_eq!(kept.as_deref(), Some("too late"), "the typed name is kept");

    b.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_secret_is_not_kept_by_the_browser_after_it_was_shown() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let ada = app.create_user(ADA_EMAIL, ADA_NAME).await;
    let b = Browser::launch(&app).await;
    b.sign_in(&ada).await;

    b.wait_for("a[href='/account']")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for("#create-token").await;
    b.type_into("#token-name", "shown once").await;
    b.wait_for("#create-token-btn").await.click().await.unwrap();
    let secret = b.wait_for("#new-token-value").await.text().await.unwrap();
    let secret = secret.trim().to_string();
    assert!(secret.starts_with("xa_"), "token secret {secret:?}");

    // Leave the page the way people do: a link (htmx snapshots the page it leaves).
    b.wait_for("a[href='/orgs/new']")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for("#new-org").await;
    let stored = b
        .client
        .execute(
            "return JSON.stringify(Object.assign({}, localStorage)) + \
             JSON.stringify(Object.assign({}, sessionStorage));",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        !stored.as_str().unwrap_or_default().contains(&secret),
        "the token secret was written to the browser's storage (htmx history cache)"
    );

    // Back shows the account page, not the secret again.
    b.client.back().await.unwrap();
    b.wait_for("#create-token").await;
    assert!(
        !b.client.source().await.unwrap().contains(&secret),
        "Back shows the token secret again"
    );

    // The address bar holds a page that can be reloaded.
    b.client.refresh().await.unwrap();
    b.wait_for("#create-token").await;
    assert_eq!(b.path().await, "/account");
    assert!(!b.client.source().await.unwrap().contains(&secret));

    b.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_session_and_account_pages_send_back_to_sign_in() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let ada = app.create_user(ADA_EMAIL, ADA_NAME).await;
    let b = Browser::launch(&app).await;
    b.sign_in(&ada).await;

    let cookie = b.cookie_header().await;
    let (status, _) = cookie_get(&app, &cookie, "/api/v1/me").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the browser's cookie is a live session"
    );

    b.wait_for("#sign-out").await.click().await.unwrap();
    b.wait_for_path("/login").await;
    b.wait_for("#sign-in").await;
    assert!(
        b.absent("#sign-out").await,
        "no signed-in header after signing out"
    );

    let (status, _) = cookie_get(&app, &cookie, "/api/v1/me").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "signing out ends the session on the server, not only in the browser"
    );

    b.goto("/account").await;
    b.wait_for_path("/login").await;
    b.wait_for("#sign-in").await;
    let url = b.client.current_url().await.unwrap();
    assert_eq!(url.query(), Some("next=/account"), "{url}");

    // Signing in again goes back to where the visitor was headed.
    b.fill_sign_in(ADA_EMAIL, PASSWORD).await;
    b.wait_for_path("/account").await;
    b.wait_for("#create-token").await;

    b.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_invites_bob_who_joins_from_the_link_and_the_audit_log_tells_the_story() {
    const BOB_EMAIL: &str = "bob@example.com";
    const BOB_NAME: &str = "Bob Babbage";
    const BOB_PASSWORD: &str = "difference engine no 2";
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let ada = app.create_user(ADA_EMAIL, ADA_NAME).await;
    let owner = Browser::launch(&app).await;
    owner.sign_in(&ada).await;

    // The owner makes a team organization and invites Bob from its members page.
    owner.goto("/orgs/new").await;
    owner
        .type_into("#org-name-input", "Analytical Engines")
        .await;
    owner.type_into("#org-slug-input", "engines").await;
    owner.wait_for("#create-org").await.click().await.unwrap();
    owner.wait_for_path("/o/engines").await;
    owner
        .wait_for("#org-nav a[href='/o/engines/members']")
        .await
        .click()
        .await
        .unwrap();
    owner.wait_for_path("/o/engines/members").await;
    owner.type_into("#invite-email", BOB_EMAIL).await;
    owner
        .wait_for("#invite-role")
        .await
        .select_by_value("member")
        .await
        .unwrap();
    owner.wait_for("#invite-btn").await.click().await.unwrap();
    let link = owner.text_of("#invite-link").await.trim().to_string();
    assert!(
        link.starts_with(&format!("{}/invite/", app.base)),
        "accept link {link:?}"
    );
    let notice = owner.text_of("#new-invite").await;
    assert!(notice.contains(BOB_EMAIL), "invitation notice: {notice:?}");
    assert_eq!(
        owner.path().await,
        "/o/engines/members",
        "the address bar holds the members page, not the form's address"
    );
    owner
        .wait_until_text_contains("#invitation-table", BOB_EMAIL)
        .await;

    // Bob, in a browser of his own and not signed in, makes his account from the link.
    let bob = Browser::launch(&app).await;
    bob.client.goto(&link).await.unwrap();
    bob.wait_for("#sign-up-form").await;
    assert_eq!(bob.text_of("#invite-org").await, "Analytical Engines");
    assert_eq!(bob.text_of("#invite-role").await, "member");
    assert_eq!(bob.text_of("#invite-email").await, BOB_EMAIL);
    bob.type_into("#sign-up-name", BOB_NAME).await;
    bob.type_into("#sign-up-password", BOB_PASSWORD).await;
    bob.type_into("#sign-up-confirm", BOB_PASSWORD).await;
    bob.wait_for("#sign-up-accept").await.click().await.unwrap();
    bob.wait_for_path("/o/engines").await;
    bob.wait_for_text("#org-name", "Analytical Engines").await;
    assert_eq!(bob.text_of("#org-role").await, "member");
    bob.wait_for("#sign-out").await;

    // The link was used up.
    bob.client.goto(&link).await.unwrap();
    bob.wait_until_text_contains("main", "This invitation is not valid")
        .await;

    // The owner makes Bob a manager on the members page.
    owner.goto("/o/engines/members").await;
    owner.wait_for("#members-table").await;
    let bob_id = owner
        .client
        .execute(
            "const r = Array.from(document.querySelectorAll('#members-table tr[data-user-id]')) \
             .find(r => r.textContent.includes(arguments[0])); \
             return r ? r.dataset.userId : null;",
            vec![json!(BOB_EMAIL)],
        )
        .await
        .unwrap();
    let bob_id = bob_id
        .as_str()
        .unwrap_or_else(|| panic!("Bob is not in the members table: {bob_id}"))
        .to_string();
    assert!(
        owner.absent("#invitation-table").await,
        "no invitation is pending after Bob joined"
    );
    let row = format!("#members-table tr[data-user-id='{bob_id}']");
    owner
        .wait_for(&format!("{row} select.role-select"))
        .await
        .select_by_value("manager")
        .await
        .unwrap();
    owner
        .wait_for(&format!("{row} button.save-role"))
        .await
        .click()
        .await
        .unwrap();
    owner
        .wait_until_text_contains("#members-notice", "Role changed")
        .await;
    let shown = owner
        .wait_for(&format!("{row} select.role-select"))
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(shown.as_deref(), Some("manager"));
    bob.goto("/o/engines").await;
    bob.wait_for_text("#org-role", "manager").await;

    // The audit log tells the three steps, newest first, each by whom it was done.
    owner
        .wait_for("#org-nav a[href='/o/engines/audit']")
        .await
        .click()
        .await
        .unwrap();
    owner.wait_for_path("/o/engines/audit").await;
    owner.wait_for("#audit-table").await;
    let rows = owner
        .client
        .execute(
            "return Array.from(document.querySelectorAll('#audit-table tr[data-audit-id]')).map(r => \
             [r.querySelector('.audit-action').textContent.trim(), \
              r.cells[1].querySelector('.audit-actor').textContent.trim()]);",
            vec![],
        )
        .await
        .unwrap();
    let rows: Vec<(String, String)> = serde_json::from_value(rows).unwrap();
    let wanted = ["member.role_changed", "member.joined", "member.invited"];
    let seen: Vec<&(String, String)> = rows
        .iter()
        .filter(|(a, _)| wanted.contains(&a.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            &("member.role_changed".to_string(), ADA_NAME.to_string()),
            &("member.joined".to_string(), BOB_NAME.to_string()),
            &("member.invited".to_string(), ADA_NAME.to_string()),
        ],
        "audit rows: {rows:?}"
    );

    // Filtering by action narrows the table to that event.
    owner.type_into("#audit-action", "member.joined").await;
    owner.wait_for("#audit-apply").await.click().await.unwrap();
    owner
        .wait_until(
            "#audit-table tbody",
            |t| !t.contains("member.invited"),
            "without member.invited",
        )
        .await;
    assert_eq!(
        owner
            .client
            .find_all(Locator::Css("#audit-table tr[data-audit-id]"))
            .await
            .unwrap()
            .len(),
        1
    );
    let export = owner
        .wait_for("#export-csv")
        .await
        .attr("href")
        .await
        .unwrap();
    assert!(
        export.is_some_and(|h| h.contains("action=member.joined") && h.contains("format=csv")),
        "the export link carries the filter"
    );

    bob.close().await;
    owner.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_shares_an_agent_with_the_organization_uploads_a_document_and_publishes_to_the_gallery()
 {
    const AGENT: &str = "Difference Engine helper";
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    app.create_user(ADA_EMAIL, ADA_NAME).await;
    let bob_user = app.create_user("bob@example.com", "Bob Babbage").await;
    let carol_user = app.create_user("carol@example.com", "Carol Herschel").await;

    // The owner makes a team organization; Bob and Carol join it as members (API).
    let owner = app.login(ADA_EMAIL).await;
    let org_id = engines(&owner).await;
    for who in [&bob_user, &carol_user] {
        let inv = owner
            .post(
                &format!("/api/v1/orgs/{org_id}/invitations"),
                json!({"email": who.email, "role": "member"}),
            )
            .await;
        assert_eq!(inv.status, StatusCode::CREATED, "{}", inv.text);
        let joined = app
            .login(&who.email)
            .await
            .post(
                "/api/v1/invitations/accept",
                json!({"token": inv.body["token"]}),
            )
            .await;
        assert_eq!(joined.status, StatusCode::OK, "{}", joined.text);
    }

    // Bob creates an agent on the agents page: private unless he says otherwise.
    let bob = Browser::launch(&app).await;
    bob.fill_sign_in(&bob_user.email, PASSWORD).await;
    bob.wait_for("#sign-out").await;
    bob.goto("/o/engines").await;
    bob.wait_for("#org-nav a[href='/o/engines/agents']")
        .await
        .click()
        .await
        .unwrap();
    bob.wait_for_path("/o/engines/agents").await;
    bob.wait_for("details.new-resource > summary")
        .await
        .click()
        .await
        .unwrap();
    bob.type_into("#resource-name", AGENT).await;
    bob.type_into("#resource-system-prompt", "Tabulate polynomials.")
        .await;
    bob.type_into("#resource-traits", "patient=very").await;
    bob.wait_for("#create-resource")
        .await
        .click()
        .await
        .unwrap();
    bob.wait_for_text("#resource-title", AGENT).await;
    assert_eq!(bob.text_of("#resource-visibility-badge").await, "private");
    let agent_path = bob.path().await;
    assert!(
        agent_path.starts_with("/o/engines/agents/"),
        "the new agent's page: {agent_path}"
    );
    bob.wait_until_text_contains("#resource-facts", "patient: very")
        .await;

    // Carol, a member too, does not see it; the owner does (owners hold agents.manage).
    let carol = Browser::launch(&app).await;
    carol.fill_sign_in(&carol_user.email, PASSWORD).await;
    carol.wait_for("#sign-out").await;
    carol.goto("/o/engines/agents").await;
    carol.wait_for_text("#resources-title", "Agents").await;
    assert!(
        !carol.text_of("main").await.contains(AGENT),
        "a private agent is listed for another member"
    );
    let owner_page = owner.get("/o/engines/agents").await;
    assert!(
        owner_page.text.contains(AGENT),
        "the owner's list shows every agent"
    );

    // Bob opens the share dialog and makes it visible to the organization.
    bob.wait_for("#share > summary")
        .await
        .click()
        .await
        .unwrap();
    bob.wait_for("#share-visibility input[value='organization']")
        .await
        .click()
        .await
        .unwrap();
    bob.wait_for("#save-share").await.click().await.unwrap();
    bob.wait_until_text_contains("#resource-notice", "Sharing saved")
        .await;
    bob.wait_for_text("#resource-visibility-badge", "organization")
        .await;
    assert_eq!(bob.path().await, agent_path);

    // Who has access: Carol can read it now, by its visibility; she cannot write.
    bob.wait_for("#share > summary")
        .await
        .click()
        .await
        .unwrap();
    bob.wait_for("#who-has-access").await.click().await.unwrap();
    bob.wait_for_path(&format!("{agent_path}/access")).await;
    let carol_row = bob
        .client
        .execute(
            "const r = Array.from(document.querySelectorAll('#access-table tbody tr')) \
             .find(r => r.textContent.includes('Carol Herschel')); \
             return r ? Array.from(r.cells).map(c => c.textContent.trim()) : null;",
            vec![],
        )
        .await
        .unwrap();
    let carol_row: Vec<String> = serde_json::from_value(carol_row).unwrap();
    assert_eq!(carol_row[1], "member", "{carol_row:?}");
    assert_eq!(carol_row[2], "yes", "{carol_row:?}");
    assert_eq!(carol_row[3], "no", "{carol_row:?}");
    assert!(
        carol_row[4].contains("organization visibility"),
        "{carol_row:?}"
    );

    // Carol's list shows it now, with the organization badge.
    carol.goto("/o/engines/agents").await;
    let row = "#resource-table tbody tr";
    carol.wait_until_text_contains(row, AGENT).await;
    let badge = carol
        .client
        .execute(
            "const r = Array.from(document.querySelectorAll('#resource-table tbody tr')) \
             .find(r => r.textContent.includes(arguments[0])); \
             return r ? r.querySelector('.vis').textContent.trim() : null;",
            vec![json!(AGENT)],
        )
        .await
        .unwrap();
    assert_eq!(badge, json!("organization"));
    assert!(
        carol.text_of(row).await.contains("Bob Babbage"),
        "the owner's name is shown"
    );

    // Bob uploads a small text document on the documents page and downloads it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    let content = "Notes on the engine: the mill and the store.\n";
    std::fs::write(&file, content).unwrap();
    bob.goto("/o/engines/documents").await;
    bob.wait_for("details.new-resource > summary")
        .await
        .click()
        .await
        .unwrap();
    bob.wait_for("#resource-file")
        .await
        .send_keys(&file.display().to_string())
        .await
        .unwrap();
    bob.wait_for("#create-resource")
        .await
        .click()
        .await
        .unwrap();
    bob.wait_for_text("#resource-title", "notes.txt").await;
    assert_eq!(bob.text_of("#resource-visibility-badge").await, "private");
    bob.wait_until_text_contains("#resource-facts", "text/plain")
        .await;
    let href = bob
        .wait_for("#download-document")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let res = reqwest::Client::new()
        .get(app.url(&href))
        .header(reqwest::header::COOKIE, bob.cookie_header().await)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "download {href}");
    let disposition = res
        .headers()
        .get(reqwest::header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(disposition.contains("notes.txt"), "{disposition}");
    assert_eq!(res.text().await.unwrap(), content);

    // The gallery shows the agent once it is public, and not before.
    carol
        .wait_for(".topnav a[href='/gallery/agents']")
        .await
        .click()
        .await
        .unwrap();
    carol.wait_for_path("/gallery/agents").await;
    carol.wait_for_text("#gallery-title", "Gallery").await;
    assert!(
        !carol.text_of("main").await.contains(AGENT),
        "an organization-wide agent is in the public gallery"
    );
    bob.goto(&agent_path).await;
    bob.wait_for("#share > summary")
        .await
        .click()
        .await
        .unwrap();
    bob.wait_for("#share-visibility input[value='public']")
        .await
        .click()
        .await
        .unwrap();
    bob.wait_for("#save-share").await.click().await.unwrap();
    bob.wait_for_text("#resource-visibility-badge", "public")
        .await;
    carol.goto("/gallery/agents").await;
    carol
        .wait_until_text_contains("#gallery-cards", AGENT)
        .await;
    assert!(
        carol
            .text_of("#gallery-cards")
            .await
            .contains("Analytical Engines"),
        "the card names the organization"
    );

    carol.close().await;
    bob.close().await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct SwitcherOption {
    value: String,
    text: String,
    /// The `selected` attribute the server rendered.
    marked: bool,
    /// What the select shows now.
    selected: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_configures_a_provider_a_member_brings_a_key_and_the_usage_page_shows_the_calls() {
    const ORG_KEY: &str = "sk-live-secret-0000-ABCD1234";
    const BOB_KEY: &str = "sk-bob-secret-0000-EFGH5678";
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let mock = common::mock_llm::MockLlm::start().await;
    let app = TestApp::spawn().await;
    app.create_user(ADA_EMAIL, ADA_NAME).await;
    let bob_user = app.create_user("bob@example.com", "Bob Babbage").await;
    let owner = app.login(ADA_EMAIL).await;
    let org_id = engines(&owner).await;
    let inv = owner
        .post(
            &format!("/api/v1/orgs/{org_id}/invitations"),
            json!({"email": bob_user.email, "role": "member"}),
        )
        .await;
    let bob_api = app.login(&bob_user.email).await;
    let joined = bob_api
        .post(
            "/api/v1/invitations/accept",
            json!({"token": inv.body["token"]}),
        )
        .await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.text);

    // Ada adds the provider from the AI providers page: the key is accepted, then shown
    // only as a hint, and the page never carries it.
    let ada = Browser::launch(&app).await;
    ada.fill_sign_in(ADA_EMAIL, PASSWORD).await;
    ada.wait_for("#sign-out").await;
    ada.goto("/o/engines").await;
    ada.wait_for("#org-nav a[href='/o/engines/llm']")
        .await
        .click()
        .await
        .unwrap();
    ada.wait_for_path("/o/engines/llm").await;
    ada.wait_for("#no-providers").await;
    ada.type_into("#new-provider", "openai").await;
    ada.type_into("#new-base-url", &mock.base).await;
    ada.type_into("#new-key", ORG_KEY).await;
    ada.wait_for("#add-provider").await.click().await.unwrap();
    ada.wait_for_text("#llm-notice", "openai: provider saved.")
        .await;
    assert_eq!(ada.text_of("#hint-openai").await, "sk-…1234");
    assert_eq!(
        ada.text_of("#effective-openai").await,
        "the organization's key"
    );
    assert!(!ada.client.source().await.unwrap().contains(ORG_KEY));

    // "Test connection" asks the provider with that key.
    ada.wait_for("#test-openai").await.click().await.unwrap();
    ada.wait_until_text_contains("#test-result-openai", "the provider offers 2 models")
        .await;
    assert!(
        ada.text_of("#test-result-openai")
            .await
            .contains("sk-…1234")
    );
    assert_eq!(
        mock.requests().last().unwrap().authorization,
        format!("Bearer {ORG_KEY}")
    );

    // A wrong base URL is refused next to the field, and nothing changes.
    ada.wait_for("#edit-openai > summary")
        .await
        .click()
        .await
        .unwrap();
    ada.wait_for("#base-url-openai")
        .await
        .clear()
        .await
        .unwrap();
    ada.type_into("#base-url-openai", "ftp://nowhere").await;
    // The browser's own URL check would stop the form; the server's answer is tested.
    ada.client
        .execute(
            "document.getElementById('base-url-openai').type = 'text';",
            vec![],
        )
        .await
        .unwrap();
    ada.wait_for("#save-openai").await.click().await.unwrap();
    ada.wait_until_text_contains("#edit-openai", "starts with http:// or https://")
        .await;
    assert_eq!(
        owner.get(&format!("/api/v1/orgs/{org_id}/llm")).await.body["providers"][0]["base_url"],
        json!(mock.base)
    );

    // The policy lets members bring their own keys.
    ada.goto("/o/engines/llm").await;
    ada.wait_for("#allow-user-keys")
        .await
        .click()
        .await
        .unwrap();
    ada.wait_for("#default-model").await.clear().await.unwrap();
    ada.type_into("#default-model", "gpt-4o-mini").await;
    ada.wait_for("#save-policy").await.click().await.unwrap();
    ada.wait_for_text("#llm-notice", "Policy saved.").await;
    let policy = owner.get(&format!("/api/v1/orgs/{org_id}/llm")).await.body;
    assert_eq!(policy["policy"]["allow_user_keys"], true);
    assert_eq!(policy["policy"]["default_model"], "gpt-4o-mini");

    // Bob's calls use the organization's key until he saves his own.
    let bob = Browser::launch(&app).await;
    bob.fill_sign_in(&bob_user.email, PASSWORD).await;
    bob.wait_for("#sign-out").await;
    bob.goto("/o/engines/llm").await;
    bob.wait_for("#providers-table").await;
    assert!(bob.absent("#add-provider-form").await && bob.absent("#test-openai").await);
    assert!(bob.absent("#org-nav a[href='/o/engines/usage']").await);
    bob.wait_for("#my-keys-link").await.click().await.unwrap();
    bob.wait_for_path("/o/engines/llm/keys").await;
    assert_eq!(
        bob.text_of("#resolves-openai .source").await,
        "the organization's key"
    );
    bob.type_into("#my-provider", "openai").await;
    bob.type_into("#my-key", BOB_KEY).await;
    bob.wait_for("#save-my-key").await.click().await.unwrap();
    bob.wait_for_text("#keys-notice", "openai: your key saved.")
        .await;
    assert_eq!(bob.text_of("#resolves-openai .source").await, "your key");
    assert!(bob.text_of("#my-key-openai").await.contains("sk-…5678"));
    assert!(!bob.client.source().await.unwrap().contains(BOB_KEY));
    bob.wait_for("#test-my-openai").await.click().await.unwrap();
    bob.wait_until_text_contains("#test-result-openai", "connected")
        .await;
    assert_eq!(
        mock.requests().last().unwrap().authorization,
        format!("Bearer {BOB_KEY}")
    );

    // Bob calls the gateway three times with a token; the usage page shows the calls.
    let made = bob_api
        .post(
            "/api/v1/me/tokens",
            json!({"name": "cli", "organization_id": org_id}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let token = common::TokenClient::new(&app.base, made.body["token"].as_str().unwrap());
    for _ in 0..3 {
        let r = token
            .send(
                reqwest::Method::POST,
                "/v1/chat/completions",
                Some(json!({"messages": [{"role": "user", "content": "hello"}]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let mut usage = Value::Null;
    for _ in 0..100 {
        usage = owner
            .get(&format!("/api/v1/orgs/{org_id}/usage"))
            .await
            .body;
        if usage["totals"]["requests"] == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(usage["totals"]["requests"], 3, "{usage}");

    ada.goto("/o/engines").await;
    ada.wait_for("#org-nav a[href='/o/engines/usage']")
        .await
        .click()
        .await
        .unwrap();
    ada.wait_for_path("/o/engines/usage").await;
    assert_eq!(ada.text_of("#total-requests").await, "3");
    assert_eq!(ada.text_of("#total-input").await, "33");
    assert_eq!(ada.text_of("#total-output").await, "21");
    assert!(ada.text_of("#by-model").await.contains("gpt-4o-mini"));
    let by_member = ada.text_of("#by-member").await;
    assert!(by_member.contains("Bob Babbage") && by_member.contains("bob@example.com"));
    // The free plan's monthly credits apply to every team organization.
    assert!(
        ada.text_of("#quota-limits")
            .await
            .contains("The organization's AI credits"),
        "{}",
        ada.diagnostics().await
    );
    // The chart is an SVG drawn by the server: one bar for today.
    let bars = ada
        .client
        .execute(
            "return [...document.querySelectorAll('#daily-cost-chart svg rect')]
                .filter(r => (r.getAttribute('fill') || '').toLowerCase() === '#2f6eba').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(bars, json!(1), "{}", ada.diagnostics().await);
    // The CSV link downloads the same figures with the session.
    let href = ada
        .wait_for("#usage-csv")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let csv = cookie_text(&app, &ada.cookie_header().await, &href).await;
    assert!(csv.starts_with("period,breakdown,key,requests"), "{csv}");
    assert!(csv.contains(",model,gpt-4o-mini,3,33,21,"), "{csv}");

    // Ada sets monthly credits; a wrong amount is refused next to the field first.
    ada.type_into("#q-credits", "lots").await;
    ada.wait_for("#save-quota").await.click().await.unwrap();
    ada.wait_until_text_contains("#quota-error-monthly_credits", "amount in dollars")
        .await;
    ada.wait_for("#q-credits").await.clear().await.unwrap();
    ada.type_into("#q-credits", "0.000100").await;
    ada.wait_for("#q-thresholds").await.clear().await.unwrap();
    ada.type_into("#q-thresholds", "50, 100").await;
    ada.wait_for("#save-quota").await.click().await.unwrap();
    ada.wait_for_text("#usage-notice", "Quota saved.").await;
    let meter = ada.text_of("#quota-limits").await;
    assert!(meter.contains("The organization's AI credits"), "{meter}");
    assert!(meter.contains("of $0.0001"), "{meter}");
    let q = owner
        .get(&format!("/api/v1/orgs/{org_id}/quota"))
        .await
        .body;
    assert_eq!(q["monthly_credits_micros"], 100);
    assert_eq!(q["alert_thresholds"], json!([50, 100]));

    // Bob, a member, may not see the organization's usage.
    bob.goto("/o/engines/usage").await;
    bob.wait_until_text_contains("main", "usage.view").await;
    ada.close().await;
    bob.close().await;
}

async fn cookie_text(app: &TestApp, cookie: &str, path: &str) -> String {
    let res = reqwest::Client::new()
        .get(format!("{}{path}", app.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.text().await.unwrap()
}

fn assert_only_marked(options: &[SwitcherOption], org_id: &str) {
    for o in options {
        let expected = o.value == org_id;
        assert_eq!(
            (o.marked, o.selected),
            (expected, expected),
            "switcher option {o:?} (expected only {org_id} selected): {options:?}"
        );
    }
    assert!(
        options.iter().any(|o| o.value == org_id),
        "{org_id} is not in the switcher: {options:?}"
    );
}

async fn bearer_get(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn cookie_get(app: &TestApp, cookie: &str, path: &str) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .get(app.url(path))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// chromedriver, started by us, in its own process group so that dropping it also ends the
/// Chromium it started — even when a test panics before `close`.
struct Driver {
    child: Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Driver {
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = log.len().saturating_sub(3000);
        log.get(start..).unwrap_or_default().to_string()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Browser {
    client: Client,
    base: String,
    /// chromedriver's address (for Chrome DevTools commands it relays).
    webdriver: String,
    /// Dropped after `client`; the browser's profile directory goes with it.
    driver: Driver,
}

impl Browser {
    async fn launch(app: &TestApp) -> Browser {
        for (path, what) in [(CHROMIUM, "Chromium"), (CHROMEDRIVER, "chromedriver")] {
            assert!(
                Path::new(path).exists(),
                "{what} is missing at {path}: the browser tests need it. \
                 Install it with `apt-get install chromium chromium-driver`."
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("profile");
        std::fs::create_dir(&profile).unwrap();
        let log = dir.path().join("chromedriver.log");
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {CHROMEDRIVER}: {e}. \
                     Install it with `apt-get install chromium chromium-driver`."
                )
            });
        let mut driver = Driver {
            child,
            log,
            _dir: dir,
        };

        let webdriver = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok(Some(exit)) = driver.child.try_wait() {
                panic!(
                    "chromedriver exited at start ({exit}):\n{}",
                    driver.log_tail()
                );
            }
            let ready = reqwest::get(format!("{webdriver}/status"))
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if ready.is_some() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not answer on port {port}:\n{}",
                driver.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": args }),
        );
        let client = match ClientBuilder::native()
            .capabilities(caps)
            .connect(&webdriver)
            .await
        {
            Ok(c) => c,
            Err(e) => panic!(
                "chromedriver could not start {CHROMIUM}: {e}\n{}",
                driver.log_tail()
            ),
        };
        Browser {
            client,
            base: app.base.clone(),
            webdriver,
            driver,
        }
    }

    /// Ends the WebDriver session (Chromium quits); the driver process ends on drop.
    async fn close(self) {
        let Browser { client, driver, .. } = self;
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        drop(driver);
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
    }

    async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_string()
    }

    /// Where the browser is and what it shows, for failure messages.
    async fn diagnostics(&self) -> String {
        let url = match self.client.current_url().await {
            Ok(u) => u.to_string(),
            Err(e) => format!("(no url: {e})"),
        };
        let text = match self
            .client
            .execute(
                "return document.body ? document.body.innerText : '';",
                vec![],
            )
            .await
        {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(e) => format!("(no page text: {e})"),
        };
        format!("at {url}, the page reads:\n{text}")
    }

    async fn wait_for(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!("`{css}` did not appear ({e}); {}", self.diagnostics().await),
        }
    }

    /// Waits until `css` is displayed, finding it afresh each time: after a click that
    /// stays on the same path, the element found first may belong to the page being left
    /// (and go stale when the new one arrives).
    async fn wait_displayed(&self, css: &str) -> bool {
        let deadline = std::time::Instant::now() + WAIT;
        while std::time::Instant::now() < deadline {
            if let Ok(e) = self.client.find(Locator::Css(css)).await
                && e.is_displayed().await.unwrap_or(false)
            {
                return true;
            }
            tokio::time::sleep(POLL).await;
        }
        false
    }

    async fn absent(&self, css: &str) -> bool {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    async fn text_of(&self, css: &str) -> String {
        self.wait_for(css).await.text().await.unwrap()
    }

    /// Waits until `css` shows exactly `expected` (htmx swaps pages in place, so the element
    /// of the previous page may still be there for a moment).
    async fn wait_for_text(&self, css: &str, expected: &str) {
        self.wait_until(css, |t| t.trim() == expected, &format!("= {expected:?}"))
            .await;
    }

    async fn wait_until_text_contains(&self, css: &str, part: &str) {
        self.wait_until(css, |t| t.contains(part), &format!("containing {part:?}"))
            .await;
    }

    async fn wait_until(&self, css: &str, ok: impl Fn(&str) -> bool, what: &str) {
        let started = Instant::now();
        let mut last = None;
        while started.elapsed() < WAIT {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = el.text().await
            {
                if ok(&text) {
                    return;
                }
                last = Some(text);
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "`{css}` never had text {what} (last seen: {last:?}); {}",
            self.diagnostics().await
        );
    }

    async fn wait_for_path(&self, expected: &str) {
        let started = Instant::now();
        while started.elapsed() < WAIT {
            if let Ok(url) = self.client.current_url().await
                && url.path() == expected
            {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "the browser never reached {expected}; {}",
            self.diagnostics().await
        );
    }

    async fn wait_for_alert(&self) -> String {
        let started = Instant::now();
        while started.elapsed() < WAIT {
            if let Ok(text) = self.client.get_alert_text().await {
                return text;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("no confirm dialog appeared; {}", self.diagnostics().await);
    }

    async fn type_into(&self, css: &str, text: &str) {
        let input = self.wait_for(css).await;
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    async fn fill_sign_in(&self, email: &str, password: &str) {
        if self.path().await != "/login" {
            self.goto("/login").await;
        }
        self.type_into("#email", email).await;
        self.type_into("#password", password).await;
        self.wait_for("#sign-in").await.click().await.unwrap();
    }

    async fn sign_in(&self, user: &TestUser) {
        self.fill_sign_in(&user.email, PASSWORD).await;
        self.wait_for_path(&format!("/o/{}", user.personal_slug))
            .await;
        self.wait_for("#org-name").await;
    }

    async fn switcher_options(&self) -> Vec<SwitcherOption> {
        let raw = self
            .client
            .execute(
                "return Array.from(document.querySelectorAll('#switch-org option')).map(o => \
                 ({value: o.value, text: o.textContent.trim(), marked: o.defaultSelected, \
                 selected: o.selected}));",
                vec![],
            )
            .await
            .unwrap();
        raw.as_array()
            .unwrap_or_else(|| panic!("switcher options: {raw}"))
            .iter()
            .map(|o| SwitcherOption {
                value: o["value"].as_str().unwrap_or_default().to_string(),
                text: o["text"].as_str().unwrap_or_default().to_string(),
                marked: o["marked"].as_bool().unwrap_or_default(),
                selected: o["selected"].as_bool().unwrap_or_default(),
            })
            .collect()
    }

    /// The browser's cookies (the session cookie is HttpOnly, but WebDriver sees it).
    async fn cookie_header(&self) -> String {
        let cookies = self.client.get_all_cookies().await.unwrap();
        assert!(!cookies.is_empty(), "no cookies after signing in");
        cookies
            .iter()
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect::<Vec<_>>()
            .join("; ")
    }
}
