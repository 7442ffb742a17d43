//! Billing: an issued invoice never changes; a correction is a credit note against it
//! (`billing.manage`), at most the invoice's total less the earlier ones, with a reason,
//! audited in the organization's chain, listed on the invoice (JSON, CSV, page). Another
//! organization's invoice is not found and nothing is written. The billing page shows the
//! period's cost so far and its projection.
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::mock_llm::MockLlm;
use crate::common::{Session, TestApp, TokenClient};
use crate::org_fixture::{audit_rows, create_org, invite_and_join, new_person, token_for};

struct Billed {
    app: TestApp,
    clock: xagent::domain::Clock,
    _mock: MockLlm,
    org: String,
    slug: String,
    /// Signed in again after the period closed.
    owner: Session,
    /// An admin: billing.view without billing.manage.
    admin: Session,
    /// The closed period's invoice: 3 calls × 6 µ$.
    invoice: String,
}

fn raw_db(app: &TestApp) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(app.data_dir().join("xagent.db")).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

fn count(app: &TestApp, sql: &str) -> i64 {
    raw_db(app).query_row(sql, [], |r| r.get(0)).unwrap()
}

async fn calls(token: &TokenClient, n: usize) {
    for _ in 0..n {
        let r = token
            .send(
                Method::POST,
                "/v1/chat/completions",
                Some(json!({"model": "gpt-test", "messages": [{"role": "user", "content": "Say hello"}]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
}

/// Waits until the org has `n` usage events.
async fn metered(app: &TestApp, org: &str, n: i64) {
    for _ in 0..100 {
        let got: i64 = raw_db(app)
            .query_row(
                "SELECT COUNT(*) FROM usage_events WHERE organization_id = ?1",
                [org],
                |r| r.get(0),
            )
            .unwrap();
        if got >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the calls were not metered");
}

async fn billed() -> Billed {
    let mock = MockLlm::start().await;
    let clock = xagent::domain::Clock::default();
    let app = TestApp::spawn_with(|c| c.clock = clock.clone()).await;
    let (_, owner) = new_person(&app, "owner@billing.example", "Owner").await;
    let (_, admin) = new_person(&app, "admin@billing.example", "Admin").await;
    let (org, slug) = create_org(&owner, "Billed Org", "billed-org").await;
    invite_and_join(&owner, &org, "admin@billing.example", "admin", &admin).await;
    let r = owner
        .put(
            &format!("/api/v1/orgs/{org}/llm/providers/openai"),
            json!({"api_key": "sk-billing-test-0000", "base_url": mock.base}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    raw_db(&app)
        .execute(
            "INSERT OR REPLACE INTO model_price_entries (id, provider, model, input_micros_per_mtok, output_micros_per_mtok, effective_from, created_at, updated_at) VALUES (lower(hex(randomblob(16))), '', 'gpt-test', 150000, 600000, '2000-01-01T00:00:00.000000Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
    let (_, token) = token_for(&app, &owner, &org, "billing").await;
    calls(&token, 3).await;
    metered(&app, &org, 3).await;
    clock.advance(Duration::from_secs(40 * 24 * 3600));
    let issued = xagent::services::invoices::close_periods(&app.svc, clock.now())
        .await
        .unwrap();
    assert_eq!(issued, 1);
    // Sessions end with the month: both sign in again.
    let owner = app.login("owner@billing.example").await;
    let admin = app.login("admin@billing.example").await;
    let list = owner.get(&format!("/api/v1/orgs/{org}/invoices")).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let invoice = list.body["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(list.body["items"][0]["total_micros"], 18);
    Billed {
        app,
        clock,
        _mock: mock,
        org,
        slug,
        owner,
        admin,
        invoice,
    }
}

fn notes_path(b: &Billed) -> String {
    format!("/api/v1/orgs/{}/invoices/{}/credit-notes", b.org, b.invoice)
}

#[tokio::test]
async fn credit_notes_correct_an_issued_invoice_up_to_its_total_and_the_invoice_never_changes() {
    let b = billed().await;
    let invoice_path = format!("/api/v1/orgs/{}/invoices/{}", b.org, b.invoice);
    let before = b.owner.get(&invoice_path).await;
    assert_eq!(before.status, StatusCode::OK);
    assert_eq!(before.body["credit_notes"], json!([]));
    assert_eq!(
        (
            &before.body["credited_micros"],
            &before.body["balance_micros"]
        ),
        (&json!(0), &json!(18))
    );

    let r = b
        .owner
        .post(
            &notes_path(&b),
            json!({"amount_micros": 5, "reason": "Outage on the 3rd"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let first = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["amount_micros"], 5);
    assert_eq!(r.body["invoice_id"], b.invoice.as_str());
    assert_eq!(r.body["reason"], "Outage on the 3rd");

    // More than is left (13) is refused; exactly what is left is not.
    let r = b
        .owner
        .post(
            &notes_path(&b),
            json!({"amount_micros": 14, "reason": "Too much"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.code(), "credit_exceeds_invoice");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("13 micro-USD")
    );
    let r = b
        .owner
        .post(
            &notes_path(&b),
            json!({"amount_micros": 13, "reason": "The rest"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = b
        .owner
        .post(
            &notes_path(&b),
            json!({"amount_micros": 1, "reason": "Nothing left"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);

    // Bad input, and a member without billing.manage, write nothing.
    for (body, field) in [
        (
            json!({"amount_micros": 0, "reason": "Zero"}),
            "amount_micros",
        ),
        (
            json!({"amount_micros": -3, "reason": "Negative"}),
            "amount_micros",
        ),
        (json!({"amount_micros": 1, "reason": "   "}), "reason"),
        (json!({"amount_micros": 1, "reason": "a\u{7}b"}), "reason"),
        (
            json!({"amount_micros": 1, "reason": "x".repeat(501)}),
            "reason",
        ),
    ] {
        let r = b.owner.post(&notes_path(&b), body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert!(r.body["error"]["fields"][field].is_string(), "{}", r.text);
    }
    let r = b
        .owner
        .post(&notes_path(&b), json!({"amount_micros": 1}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a reason is required");
    let r = b
        .admin
        .post(
            &notes_path(&b),
            json!({"amount_micros": 1, "reason": "Admin"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(count(&b.app, "SELECT COUNT(*) FROM credit_notes"), 2);

    // Listed on the invoice and on their own, oldest first; the admin may read them.
    let list = b.admin.get(&notes_path(&b)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], first.as_str());
    assert_eq!(items[1]["amount_micros"], 13);
    let after = b.owner.get(&invoice_path).await;
    assert_eq!(after.body["credit_notes"].as_array().unwrap().len(), 2);
    assert_eq!(
        (
            &after.body["credited_micros"],
            &after.body["balance_micros"]
        ),
        (&json!(18), &json!(0))
    );
    // The invoice itself is as it was issued.
    for key in [
        "id",
        "period",
        "currency",
        "subtotal_micros",
        "total_micros",
        "line_items",
        "issued_at",
    ] {
        assert_eq!(after.body[key], before.body[key], "{key}");
    }
    let csv = b.owner.get(&format!("{invoice_path}.csv")).await;
    assert!(
        csv.text
            .contains(",credit_note,Outage on the 3rd,,,,0.000005\r\n"),
        "{}",
        csv.text
    );
    assert!(
        csv.text.ends_with(",balance,,,,,0.000000\r\n"),
        "{}",
        csv.text
    );

    // Audited in the organization's chain, one row per note.
    let rows: Vec<Value> = audit_rows(&b.owner, &b.org)
        .await
        .into_iter()
        .filter(|r| r["action"] == "invoice.credit_note_issued")
        .collect();
    assert_eq!(rows.len(), 2);
    let oldest = &rows[1];
    assert_eq!(oldest["resource_type"], "invoice");
    assert_eq!(oldest["resource_id"], b.invoice.as_str());
    assert_eq!(oldest["details"]["credit_note_id"], first.as_str());
    assert_eq!(oldest["details"]["amount_micros"], 5);
    assert_eq!(oldest["details"]["reason"], "Outage on the 3rd");
    assert_eq!(oldest["actor"]["email"], "owner@billing.example");
}

#[tokio::test]
async fn nothing_edits_an_issued_invoice_or_a_credit_note() {
    let b = billed().await;
    let r = b
        .owner
        .post(
            &notes_path(&b),
            json!({"amount_micros": 2, "reason": "Goodwill"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let note = r.body["id"].as_str().unwrap().to_string();
    // The API has no way to change or remove either.
    let invoice_path = format!("/api/v1/orgs/{}/invoices/{}", b.org, b.invoice);
    for method in [Method::PUT, Method::PATCH, Method::DELETE, Method::POST] {
        let r = b
            .owner
            .send(
                method.clone(),
                &invoice_path,
                Some(json!({"total_micros": 1})),
            )
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} invoice");
    }
    for method in [Method::PUT, Method::PATCH, Method::DELETE] {
        let r = b
            .owner
            .send(
                method.clone(),
                &format!("{}/{note}", notes_path(&b)),
                Some(json!({"amount_micros": 1})),
            )
            .await;
        assert!(
            [StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&r.status),
            "{method} credit note: {}",
            r.status
        );
    }
    // Nor does the database let anything through.
    let db = raw_db(&b.app);
    let err = db
        .execute("UPDATE invoices SET total_micros = 1", [])
        .unwrap_err()
        .to_string();
    assert!(err.contains("immutable"), "{err}");
    let err = db
        .execute("UPDATE credit_notes SET amount_micros = 1", [])
        .unwrap_err()
        .to_string();
    assert!(err.contains("immutable"), "{err}");
    assert_eq!(
        count(&b.app, "SELECT total_micros FROM invoices"),
        18,
        "the invoice is as issued"
    );
    assert_eq!(count(&b.app, "SELECT amount_micros FROM credit_notes"), 2);
    // Closing the periods again issues nothing and changes nothing.
    let again = xagent::services::invoices::close_periods(&b.app.svc, b.clock.now())
        .await
        .unwrap();
    assert_eq!(again, 0);
    assert_eq!(count(&b.app, "SELECT total_micros FROM invoices"), 18);
}

#[tokio::test]
async fn another_orgs_invoice_has_no_credit_notes_to_read_or_issue_and_nothing_is_written() {
    let b = billed().await;
    let (_, other_owner) = new_person(&b.app, "other@billing.example", "Other").await;
    let (other, _) = create_org(&other_owner, "Other Org", "other-billing").await;
    let audit_before = count(&b.app, "SELECT COUNT(*) FROM organization_audit_logs");
    let body = json!({"amount_micros": 1, "reason": "Not mine"});
    for path in [
        notes_path(&b),
        format!("/api/v1/orgs/{other}/invoices/{}/credit-notes", b.invoice),
        format!(
            "/api/v1/orgs/{}/invoices/{}/credit-notes",
            b.slug, b.invoice
        ),
    ] {
        let r = other_owner.post(&path, body.clone()).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "POST {path}: {}", r.text);
        assert!(!r.text.contains(&b.invoice) && !r.text.contains("gpt-test"));
        let r = other_owner.get(&path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "GET {path}: {}", r.text);
        assert!(!r.text.contains(&b.invoice));
    }
    // The pages neither.
    for path in [
        format!("/o/{}/billing/invoices/{}", b.slug, b.invoice),
        format!("/o/other-billing/billing/invoices/{}", b.invoice),
    ] {
        let r = other_owner.get(&path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!r.text.contains("gpt-test"));
    }
    assert_eq!(count(&b.app, "SELECT COUNT(*) FROM credit_notes"), 0);
    assert_eq!(
        count(&b.app, "SELECT COUNT(*) FROM organization_audit_logs"),
        audit_before
    );
}

#[tokio::test]
async fn the_billing_page_projects_the_period_and_the_invoice_page_issues_credit_notes() {
    let b = billed().await;
    // Usage in the new period: the page shows the cost so far and its projection.
    let (_, token) = token_for(&b.app, &b.owner, &b.org, "billing-2").await;
    calls(&token, 2).await;
    metered(&b.app, &b.org, 5).await;
    let page = b.owner.get(&format!("/o/{}/billing", b.slug)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.text.contains("id=\"cost-so-far\">$0.000012<"),
        "{}",
        page.text
    );
    assert!(page.text.contains("id=\"projection\""));
    assert!(
        page.text
            .contains("The projection is a straight-line estimate")
    );
    assert!(page.text.contains(&format!(
        "href=\"/o/{}/billing/invoices/{}\"",
        b.slug, b.invoice
    )));
    assert!(page.text.contains(&format!(
        "href=\"/o/{}/billing\" aria-current=\"page\"",
        b.slug
    )));
    // The admin sees the page and the invoice but no credit note form.
    let inv = format!("/o/{}/billing/invoices/{}", b.slug, b.invoice);
    let r = b.admin.get(&inv).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.text.contains("credit-note-form"));
    // The owner issues one through the form; too much is refused next to the field.
    let form = |amount: &str, reason: &str| {
        b.owner
            .client
            .post(b.owner.url(&format!("{inv}/credit-notes")))
            .form(&[
                ("csrf_token", b.owner.csrf.as_str()),
                ("amount", amount),
                ("reason", reason),
            ])
            .send()
    };
    let res = form("0.000004", "Late answers").await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        format!("{inv}?credited=1")
    );
    let res = form("1", "Far too much").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"credit-error\""), "{html}");
    assert!(
        html.contains("value=\"Far too much\""),
        "what was typed stays"
    );
    let res = form("lots", "Unreadable").await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("id=\"credit-error-amount\"")
    );
    let r = b.owner.get(&inv).await;
    assert!(r.text.contains("Late answers"), "{}", r.text);
    assert!(
        r.text.contains("id=\"invoice-balance\">$0.000014<"),
        "{}",
        r.text
    );
    assert_eq!(count(&b.app, "SELECT COUNT(*) FROM credit_notes"), 1);
    // A viewer has no billing.view: no page, no link.
    let (_, viewer) = new_person(&b.app, "viewer@billing.example", "Viewer").await;
    invite_and_join(
        &b.owner,
        &b.org,
        "viewer@billing.example",
        "viewer",
        &viewer,
    )
    .await;
    let r = viewer.get(&format!("/o/{}/billing", b.slug)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let home = viewer.get(&format!("/o/{}", b.slug)).await;
    assert!(!home.text.contains(&format!("/o/{}/billing", b.slug)));
}
