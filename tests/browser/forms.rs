//! Forms refused by the server: every bad field is reported at once, each message under its
//! own input (tied to it with `aria-invalid` and `aria-describedby`) in words a person
//! reads, and what was typed is still there, except secrets.
use super::*;

/// What a person sees of one input after a refused submit, read from the page.
#[derive(Debug, serde::Deserialize)]
struct Field {
    /// The input's `aria-invalid`.
    invalid: Option<String>,
    /// The text of the `.field-error` the input's `aria-describedby` names.
    error: Option<String>,
    /// Whether that error comes after the input in the page.
    after: bool,
    /// Other inputs between the input and its error (the error would then sit under them).
    between: Vec<String>,
    /// The value (a checkbox: "true"/"false").
    value: String,
}

const READ_FIELD: &str = "
const input = document.getElementById(arguments[0]);
if (!input) { return null; }
const ids = (input.getAttribute('aria-describedby') || '').split(/\\s+/).filter(Boolean);
const err = ids.map(id => document.getElementById(id))
  .find(e => e && e.classList.contains('field-error'));
const follows = (a, b) => !!(a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING);
let between = [];
if (err && input.form) {
  between = Array.from(input.form.querySelectorAll('input:not([type=hidden]), select, textarea'))
    .filter(c => c !== input && follows(input, c) && follows(c, err))
    .map(c => c.id || c.name);
}
return {
  invalid: input.getAttribute('aria-invalid'),
  error: err ? err.textContent.trim() : null,
  after: err ? follows(input, err) : false,
  between,
  value: input.type === 'checkbox' ? String(input.checked) : input.value,
};";

async fn field(b: &Browser, id: &str) -> Field {
    let raw = b.client.execute(READ_FIELD, vec![json!(id)]).await.unwrap();
    assert!(!raw.is_null(), "no input #{id}; {}", b.diagnostics().await);
    serde_json::from_value(raw).unwrap()
}

/// A word of the message that looks like a program's field name (`expires_at`).
fn snake_case_word(text: &str) -> Option<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .find(|w| {
            let parts: Vec<&str> = w.split('_').collect();
            parts.len() > 1 && parts.iter().all(|p| !p.is_empty())
        })
}

/// The error under `#id` says `says`, as a sentence without field names, and belongs to it.
async fn assert_error_under(b: &Browser, id: &str, says: &str) -> Field {
    let f = field(b, id).await;
    let Some(error) = f.error.clone() else {
        panic!(
            "#{id} has no error of its own ({f:?}); {}",
            b.diagnostics().await
        );
    };
    assert_eq!(f.invalid.as_deref(), Some("true"), "#{id}: {f:?}");
    assert!(
        f.after && f.between.is_empty(),
        "the error of #{id} is not right under it: {f:?}"
    );
    assert!(
        error.contains(says),
        "the error under #{id} is {error:?}, expected it to say {says:?}"
    );
    assert!(
        error.starts_with(|c: char| c.is_uppercase()),
        "the error under #{id} is not a sentence: {error:?}"
    );
    assert!(
        snake_case_word(&error).is_none(),
        "the error under #{id} names a program's field: {error:?}"
    );
    assert!(
        !error.contains(&format!("{id}:")),
        "the error under #{id} starts with a field name: {error:?}"
    );
    f
}

async fn assert_no_error(b: &Browser, id: &str) -> Field {
    let f = field(b, id).await;
    assert!(
        f.invalid.is_none() && f.error.is_none(),
        "#{id} is marked wrong: {f:?}"
    );
    f
}

/// How many field errors and alerts the form shows: one per bad field, nothing else.
async fn errors_in(b: &Browser, form: &str) -> (usize, usize) {
    let n = |css: String| async move { b.client.find_all(Locator::Css(&css)).await.unwrap().len() };
    (
        n(format!("{form} .field-error")).await,
        n(format!("{form} .alert")).await,
    )
}

/// The browser's own checks (required, pattern, type) would stop these forms before the
/// server sees them; the server's answer is what is tested.
async fn without_browser_checks(b: &Browser, form: &str) {
    b.client
        .execute(
            "document.querySelector(arguments[0]).noValidate = true;",
            vec![json!(form)],
        )
        .await
        .unwrap();
}

async fn set_value(b: &Browser, id: &str, value: &str) {
    b.client
        .execute(
            "const e = document.getElementById(arguments[0]); e.value = arguments[1];",
            vec![json!(id), json!(value)],
        )
        .await
        .unwrap();
}

async fn click(b: &Browser, css: &str) {
    b.wait_for(css).await.click().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_new_organization_and_token_forms_report_every_bad_field_under_its_own_input() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let ada = app.create_user(ADA_EMAIL, ADA_NAME).await;
    let engines = app
        .login(ADA_EMAIL)
        .await
        .post(
            "/api/v1/orgs",
            json!({"name": "Analytical Engines", "slug": "engines"}),
        )
        .await;
    assert_eq!(engines.status, StatusCode::CREATED, "{}", engines.text);
    let engines_id = engines.body["id"].as_str().unwrap().to_string();
    let b = Browser::launch(&app).await;

    // Sign-in with both fields empty.
    b.goto("/login").await;
    b.wait_for("#sign-in").await;
    without_browser_checks(&b, "form[action='/login']").await;
    click(&b, "#sign-in").await;
    b.wait_for("#email[aria-invalid='true']").await;
    assert_error_under(&b, "email", "Enter your email").await;
    assert_error_under(&b, "password", "Enter your password").await;
    assert!(b.absent("#login-error").await, "no second, general error");

    b.sign_in(&ada).await;

    // A new organization with no name and a slug that breaks the rules.
    b.goto("/orgs/new").await;
    b.wait_for("#new-org").await;
    without_browser_checks(&b, "#new-org").await;
    b.type_into("#org-slug-input", "Bad Slug!").await;
    click(&b, "#create-org").await;
    b.wait_for("#org-name-input[aria-invalid='true']").await;
    assert_error_under(&b, "org-name-input", "Enter a name").await;
    let slug = assert_error_under(&b, "org-slug-input", "lowercase").await;
    assert_eq!(slug.value, "Bad Slug!", "the typed slug is kept");
    assert_eq!(errors_in(&b, "#new-org").await, (2, 0));

    // An API token with no name and an expiry in the past, for the second organization.
    b.goto("/account").await;
    b.wait_for("#create-token").await;
    without_browser_checks(&b, "#create-token").await;
    b.wait_for("#token-org")
        .await
        .select_by_value(&engines_id)
        .await
        .unwrap();
    // A date input's typing format depends on the browser locale; set its value directly.
    set_value(&b, "token-expires", "2001-01-01").await;
    click(&b, "#create-token-btn").await;
    b.wait_for("#token-name[aria-invalid='true']").await;
    assert_error_under(&b, "token-name", "Enter a name").await;
    let expires = assert_error_under(&b, "token-expires", "Choose a date in the future").await;
    assert_eq!(expires.value, "2001-01-01", "the typed date is kept");
    let org = assert_no_error(&b, "token-org").await;
    assert_eq!(org.value, engines_id, "the chosen organization is kept");
    assert_eq!(errors_in(&b, "#create-token").await, (2, 0));
    assert!(b.absent("#new-token-value").await, "no token was made");

    b.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_forms_report_every_bad_field_under_its_own_input_and_keep_what_was_typed() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let ada = app.create_user(ADA_EMAIL, ADA_NAME).await;
    let org = app
        .login(ADA_EMAIL)
        .await
        .post(
            "/api/v1/orgs",
            json!({"name": "Analytical Engines", "slug": "engines"}),
        )
        .await;
    assert_eq!(org.status, StatusCode::CREATED, "{}", org.text);
    let b = Browser::launch(&app).await;
    b.sign_in(&ada).await;

    // A workflow without a name whose steps are not JSON: both are reported.
    b.goto("/o/engines/workflows").await;
    click(&b, "details.new-resource > summary").await;
    without_browser_checks(&b, "#new-resource").await;
    b.type_into("#resource-description", "Runs every night")
        .await;
    b.wait_for("#resource-visibility")
        .await
        .select_by_value("team")
        .await
        .unwrap();
    b.type_into("#resource-steps", "[{\"name\": \"fetch\"")
        .await;
    click(&b, "#create-resource").await;
    b.wait_for("#resource-name[aria-invalid='true']").await;
    assert_error_under(&b, "resource-name", "Enter a name").await;
    let steps = assert_error_under(&b, "resource-steps", "not valid JSON").await;
    assert_eq!(
        steps.value, "[{\"name\": \"fetch\"",
        "the typed steps are kept"
    );
    let description = assert_no_error(&b, "resource-description").await;
    assert_eq!(description.value, "Runs every night");
    let visibility = assert_no_error(&b, "resource-visibility").await;
    assert_eq!(visibility.value, "team", "the chosen visibility is kept");
    assert_eq!(errors_in(&b, "#new-resource").await, (2, 0));

    // An agent without a name and a personality trait without a name.
    b.goto("/o/engines/agents").await;
    click(&b, "details.new-resource > summary").await;
    without_browser_checks(&b, "#new-resource").await;
    b.wait_for("#resource-visibility")
        .await
        .select_by_value("organization")
        .await
        .unwrap();
    b.type_into("#resource-model", "gpt-4o-mini").await;
    b.type_into("#resource-traits", "=curious").await;
    b.type_into("#resource-skills", "sql=expert").await;
    click(&b, "#create-resource").await;
    b.wait_for("#resource-name[aria-invalid='true']").await;
    assert_error_under(&b, "resource-name", "Enter a name").await;
    let traits = assert_error_under(&b, "resource-traits", "trait").await;
    assert_eq!(traits.value, "=curious");
    assert_eq!(
        assert_no_error(&b, "resource-model").await.value,
        "gpt-4o-mini"
    );
    assert_eq!(
        assert_no_error(&b, "resource-skills").await.value,
        "sql=expert"
    );
    assert_eq!(
        assert_no_error(&b, "resource-visibility").await.value,
        "organization"
    );
    assert_eq!(errors_in(&b, "#new-resource").await, (2, 0));

    b.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_policy_invite_settings_and_quota_forms_report_every_bad_field_under_its_own_input()
 {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let ada = app.create_user(ADA_EMAIL, ADA_NAME).await;
    let org = app
        .login(ADA_EMAIL)
        .await
        .post(
            "/api/v1/orgs",
            json!({"name": "Analytical Engines", "slug": "engines"}),
        )
        .await;
    assert_eq!(org.status, StatusCode::CREATED, "{}", org.text);
    let b = Browser::launch(&app).await;
    b.sign_in(&ada).await;

    // A provider with a bad name, a base URL that is not http(s) and a key with a space.
    b.goto("/o/engines/llm").await;
    b.wait_for("#add-provider-form").await;
    without_browser_checks(&b, "#add-provider-form").await;
    b.type_into("#new-provider", "Open AI").await;
    b.type_into("#new-base-url", "ftp://nowhere").await;
    b.type_into("#new-key", "sk-has a space").await;
    click(&b, "#new-no-key").await;
    click(&b, "#add-provider").await;
    b.wait_for("#new-provider[aria-invalid='true']").await;
    let name = assert_error_under(&b, "new-provider", "lower-case letters").await;
    assert_eq!(name.value, "Open AI");
    let url = assert_error_under(&b, "new-base-url", "http://").await;
    assert_eq!(url.value, "ftp://nowhere");
    let key = assert_error_under(&b, "new-key", "spaces").await;
    assert_eq!(key.value, "", "a key is never sent back to the browser");
    assert_eq!(
        field(&b, "new-no-key").await.value,
        "true",
        "the box stays ticked"
    );
    assert_eq!(errors_in(&b, "#add-provider-form").await, (3, 0));

    // A default model outside the allowed list.
    b.goto("/o/engines/llm").await;
    b.type_into("#default-model", "o1").await;
    b.type_into("#allowed-models", "gpt-4o").await;
    click(&b, "#save-policy").await;
    b.wait_for("#default-model[aria-invalid='true']").await;
    let default = assert_error_under(&b, "default-model", "allowed models").await;
    assert_eq!(default.value, "o1");
    assert_eq!(assert_no_error(&b, "allowed-models").await.value, "gpt-4o");

    // An invitation to an address without a domain, with a role that does not exist.
    b.goto("/o/engines/members").await;
    b.wait_for("#invite-form").await;
    without_browser_checks(&b, "#invite-form").await;
    b.type_into("#invite-email", "bob@nowhere").await;
    b.client
        .execute(
            "const s = document.getElementById('invite-role'); \
             s.add(new Option('boss', 'boss')); s.value = 'boss';",
            vec![],
        )
        .await
        .unwrap();
    click(&b, "#invite-btn").await;
    b.wait_for("#invite-email[aria-invalid='true']").await;
    let email = assert_error_under(&b, "invite-email", "email address").await;
    assert_eq!(email.value, "bob@nowhere");
    assert_error_under(&b, "invite-role", "Choose one of the roles").await;
    assert_eq!(errors_in(&b, "#invite-form").await, (2, 0));

    // Settings: every field wrong at once.
    b.goto("/o/engines/settings").await;
    b.wait_for("#settings-form").await;
    without_browser_checks(&b, "#settings-form").await;
    b.wait_for("#settings-name").await.clear().await.unwrap();
    b.type_into("#settings-slug", "Bad Slug!").await;
    b.type_into("#settings-ttl", "0").await;
    b.type_into("#settings-retention", "0").await;
    click(&b, "#save-settings").await;
    b.wait_for("#settings-name[aria-invalid='true']").await;
    assert_error_under(&b, "settings-name", "Enter a name").await;
    let slug = assert_error_under(&b, "settings-slug", "lowercase").await;
    assert_eq!(slug.value, "Bad Slug!");
    let ttl = assert_error_under(&b, "settings-ttl", "between 1 and 90").await;
    assert_eq!(ttl.value, "0");
    let retention = assert_error_under(&b, "settings-retention", "between 1 and").await;
    assert_eq!(retention.value, "0");
    assert_eq!(errors_in(&b, "#settings-form").await, (4, 0));

    // Quota: an amount that is not one, and a webhook address that is not http(s).
    b.goto("/o/engines/usage").await;
    b.wait_for("#quota-form").await;
    without_browser_checks(&b, "#quota-form").await;
    b.type_into("#q-credits", "lots").await;
    b.type_into("#q-webhook", "ftp://alerts").await;
    click(&b, "#save-quota").await;
    b.wait_for("#q-credits[aria-invalid='true']").await;
    let credits = assert_error_under(&b, "q-credits", "dollars").await;
    assert_eq!(credits.value, "lots");
    let hook = assert_error_under(&b, "q-webhook", "http://").await;
    assert_eq!(hook.value, "ftp://alerts");
    assert_eq!(errors_in(&b, "#quota-form").await, (2, 0));

    b.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_edit_message_upload_and_audit_filter_forms_report_every_bad_field_under_its_own_input()
 {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let ada = app.create_user(ADA_EMAIL, ADA_NAME).await;
    let api = app.login(ADA_EMAIL).await;
    let org_id = engines(&api).await;
    let flow = api
        .post(
            &format!("/api/v1/orgs/{org_id}/workflows"),
            json!({"name": "Nightly", "steps": []}),
        )
        .await;
    assert_eq!(flow.status, StatusCode::CREATED, "{}", flow.text);
    let flow_id = flow.body["id"].as_str().unwrap().to_string();
    let chat = api
        .post(
            &format!("/api/v1/orgs/{org_id}/conversations"),
            json!({"name": "Standup"}),
        )
        .await;
    assert_eq!(chat.status, StatusCode::CREATED, "{}", chat.text);
    let chat_id = chat.body["id"].as_str().unwrap().to_string();
    let b = Browser::launch(&app).await;
    b.sign_in(&ada).await;
    let long = "x".repeat(1001);

    // A team without a name and with a description over the limit.
    b.goto("/o/engines/teams").await;
    b.wait_for("#new-team").await;
    without_browser_checks(&b, "#new-team").await;
    b.client
        .execute(
            "const d = document.getElementById('team-description'); \
             d.removeAttribute('maxlength'); d.value = arguments[0];",
            vec![json!(long)],
        )
        .await
        .unwrap();
    click(&b, "#create-team").await;
    b.wait_for("#team-name[aria-invalid='true']").await;
    assert_error_under(&b, "team-name", "Enter a name").await;
    let d = assert_error_under(&b, "team-description", "1000 characters").await;
    assert_eq!(d.value, long, "the typed description is kept");
    assert_eq!(errors_in(&b, "#new-team").await, (2, 0));

    // Editing a workflow: the name emptied and the steps broken, both reported.
    b.goto(&format!("/o/engines/workflows/{flow_id}")).await;
    b.wait_for("#edit-resource").await;
    without_browser_checks(&b, "#edit-resource").await;
    b.wait_for("#resource-name").await.clear().await.unwrap();
    set_value(&b, "resource-steps", "[{").await;
    click(&b, "#save-resource").await;
    b.wait_for("#resource-name[aria-invalid='true']").await;
    assert_error_under(&b, "resource-name", "Enter a name").await;
    let steps = assert_error_under(&b, "resource-steps", "not valid JSON").await;
    assert_eq!(steps.value, "[{", "the typed steps are kept");
    assert_eq!(errors_in(&b, "#edit-resource").await, (2, 0));

    // A message with no text.
    b.goto(&format!("/o/engines/conversations/{chat_id}")).await;
    b.wait_for("#add-message").await;
    without_browser_checks(&b, "#add-message").await;
    click(&b, "#add-message-btn").await;
    b.wait_for("#message-content[aria-invalid='true']").await;
    assert_error_under(&b, "message-content", "Write a message").await;
    assert_eq!(errors_in(&b, "#add-message").await, (1, 0));

    // An upload without a file, with a description over the limit.
    b.goto("/o/engines/documents").await;
    click(&b, "details.new-resource > summary").await;
    without_browser_checks(&b, "#new-resource").await;
    let long = "y".repeat(5001);
    b.client
        .execute(
            "const d = document.getElementById('resource-description'); \
             d.removeAttribute('maxlength'); d.value = arguments[0];",
            vec![json!(long)],
        )
        .await
        .unwrap();
    b.type_into("#resource-name", "Handbook").await;
    click(&b, "#create-resource").await;
    b.wait_for("#resource-file[aria-invalid='true']").await;
    assert_error_under(&b, "resource-file", "Choose a file").await;
    let d = assert_error_under(&b, "resource-description", "5000 characters").await;
    assert_eq!(d.value, long);
    assert_eq!(assert_no_error(&b, "resource-name").await.value, "Handbook");
    assert_eq!(errors_in(&b, "#new-resource").await, (2, 0));

    // The audit filter: an action that does not exist and a date that is not one.
    b.goto("/o/engines/audit").await;
    b.wait_for("#audit-filter").await;
    without_browser_checks(&b, "#audit-filter").await;
    b.type_into("#audit-action", "member.hugged").await;
    b.client
        .execute(
            "const d = document.getElementById('audit-since'); d.type = 'text'; d.value = 'soon';",
            vec![],
        )
        .await
        .unwrap();
    click(&b, "#audit-apply").await;
    b.wait_for("#audit-action[aria-invalid='true']").await;
    let action = assert_error_under(&b, "audit-action", "no audit action").await;
    assert_eq!(action.value, "member.hugged");
    assert_error_under(&b, "audit-since", "date").await;
    assert_no_error(&b, "audit-until").await;
    assert_eq!(errors_in(&b, "#audit-filter").await, (2, 0));

    b.close().await;
    app.stop().await;
}

#[test]
fn field_names_in_messages_are_recognised() {
    assert_eq!(
        snake_case_word("expires_at: must be in the future"),
        Some("expires_at")
    );
    assert_eq!(snake_case_word("Choose a date in the future."), None);
    assert_eq!(snake_case_word("Use _ or -"), None);
}
