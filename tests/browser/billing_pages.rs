//! The billing page shows the period's cost so far and its projection; an invoice page
//! prints as the invoice alone (under print media the navigation, the header and the
//! credit note form are hidden, the lines are not).
use super::*;

use xagent::domain::Micros;
use xagent::domain::period::{linear_projection, period_at};

/// "$0.000040" → 40 micro-dollars.
fn micros_of(shown: &str) -> i64 {
    Micros::parse_usd(
        shown
            .trim()
            .trim_start_matches('$')
            .replace(',', "")
            .as_str(),
    )
    .unwrap_or_else(|| panic!("not an amount: {shown}"))
    .get()
}

impl Browser {
    /// Chrome DevTools' `Emulation.setEmulatedMedia`, through chromedriver.
    async fn emulate_media(&self, media: &str) {
        let session = self.client.session_id().await.unwrap().unwrap();
        let res = reqwest::Client::new()
            .post(format!(
                "{}/session/{session}/goog/cdp/execute",
                self.webdriver
            ))
            .json(&json!({"cmd": "Emulation.setEmulatedMedia", "params": {"media": media}}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{:?}", res.text().await);
    }

    /// Whether the first element matching `css` takes up room on the page (it and every
    /// ancestor are displayed); panics when there is no such element.
    async fn is_laid_out(&self, css: &str) -> bool {
        let v = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.getClientRects().length > 0 : null;",
                vec![json!(css)],
            )
            .await
            .unwrap();
        v.as_bool()
            .unwrap_or_else(|| panic!("no {css} on the page"))
    }
}

async fn gateway_calls(token: &str, base: &str, n: usize) {
    let client = reqwest::Client::new();
    for _ in 0..n {
        let r = client
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(token)
            .json(&json!({"model": "gpt-test", "messages": [{"role": "user", "content": "Say hello"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
}

async fn new_token(s: &common::Session, org: &str) -> String {
    let t = s
        .post(
            "/api/v1/me/tokens",
            json!({"name": "calls", "organization_id": org}),
        )
        .await;
    assert_eq!(t.status, StatusCode::CREATED, "{}", t.text);
    t.body["token"].as_str().unwrap().to_string()
}

async fn metered(app: &TestApp, org: &str, n: i64) {
    let db = rusqlite::Connection::open(app.data_dir().join("xagent.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    for _ in 0..100 {
        let got: i64 = db
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_billing_page_shows_the_projection_and_an_invoice_prints_without_the_navigation() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let mock = common::mock_llm::MockLlm::start().await;
    let clock = xagent::domain::Clock::default();
    let app = TestApp::spawn_with(|c| c.clock = clock.clone()).await;
    let ada = app.create_user(ADA_EMAIL, ADA_NAME).await;
    let owner = app.login(ADA_EMAIL).await;
    let org = engines(&owner).await;
    let r = owner
        .put(
            &format!("/api/v1/orgs/{org}/llm/providers/openai"),
            json!({"api_key": "sk-browser-billing-0000", "base_url": mock.base}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    rusqlite::Connection::open(app.data_dir().join("xagent.db"))
        .unwrap()
        .execute(
            "INSERT OR REPLACE INTO model_price_entries (id, provider, model, input_micros_per_mtok, output_micros_per_mtok, effective_from, created_at, updated_at) VALUES (lower(hex(randomblob(16))), '', 'gpt-test', 150000, 600000, '2000-01-01T00:00:00.000000Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
    // Three calls of 6 µ$ in one period, which then closes into an invoice; two in the next.
    gateway_calls(&new_token(&owner, &org).await, &app.base, 3).await;
    metered(&app, &org, 3).await;
    clock.advance(Duration::from_secs(40 * 24 * 3600));
    let issued = xagent::services::invoices::close_periods(&app.svc, clock.now())
        .await
        .unwrap();
    assert_eq!(issued, 1);
    let owner = app.login(ADA_EMAIL).await;
    gateway_calls(&new_token(&owner, &org).await, &app.base, 2).await;
    metered(&app, &org, 5).await;

    let b = Browser::launch(&app).await;
    b.sign_in(&ada).await;
    let before = clock.now();
    b.goto("/o/engines").await;
    b.wait_for("#org-nav a[href='/o/engines/billing']")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for_path("/o/engines/billing").await;
    let after = clock.now();
    assert_eq!(b.text_of("#cost-so-far").await, "$0.000012");
    // The linear projection at the moment the page was made, which lies between these two.
    let (p0, p1) = (period_at(before, 1), period_at(after, 1));
    let high = linear_projection(Micros::new(12), &p0, before).get();
    let low = linear_projection(Micros::new(12), &p1, after).get();
    let shown = micros_of(&b.text_of("#projection").await);
    assert!(
        (low..=high).contains(&shown) && shown >= 12,
        "projection {shown} outside {low}..={high}"
    );
    b.wait_until_text_contains("#projection-note", "straight-line estimate")
        .await;
    assert!(
        b.wait_for("#org-nav a[aria-current='page']")
            .await
            .text()
            .await
            .unwrap()
            .contains("Billing")
    );

    // The invoice, from the list; on screen with its navigation and form.
    b.wait_for("#invoices a").await.click().await.unwrap();
    b.wait_for("#invoice-lines").await;
    assert_eq!(b.text_of("#invoice-total").await, "$0.000018");
    assert!(b.is_laid_out("#org-nav").await);
    assert!(b.is_laid_out("#credit-note-form").await);
    assert!(b.is_laid_out("#invoice-csv").await);

    // Printed: the invoice alone.
    b.emulate_media("print").await;
    for hidden in [
        "#org-nav",
        "header.topbar",
        "footer.footer",
        "#credit-note-form",
        "#invoice-csv",
    ] {
        assert!(!b.is_laid_out(hidden).await, "{hidden} shows in print");
    }
    assert!(b.is_laid_out("#invoice-lines").await);
    assert!(b.is_laid_out("#invoice-total").await);
    assert!(b.is_laid_out("main h1").await);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    std::fs::write(
        shots.join("invoice-print.png"),
        b.client.screenshot().await.unwrap(),
    )
    .unwrap();
    b.emulate_media("").await;
    assert!(b.is_laid_out("#org-nav").await);

    b.close().await;
    app.stop().await;
}
