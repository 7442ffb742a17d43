//! The security page in the browser: an owner sees their address, is asked to confirm a
//! list that would shut them out, saves an allowlist with it and the other limits, and a
//! wrong entry is shown next to the field — all with the Content-Security-Policy in force
//! (htmx boosts the form, nothing inline runs).
use super::*;

#[tokio::test]
async fn an_owner_sets_the_security_policy_and_is_warned_before_shutting_themselves_out() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let user = app.create_user(ADA_EMAIL, ADA_NAME).await;
    let ada = app.login(ADA_EMAIL).await;
    let org = engines(&ada).await;
    let b = Browser::launch(&app).await;
    b.sign_in(&user).await;
    b.goto("/o/engines").await;
    b.wait_for("#org-nav a[href='/o/engines/security']")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for_path("/o/engines/security").await;
    b.wait_until_text_contains("#your-ip", "127.0.0.1").await;

    // A list without the browser's own address: a warning and a checkbox, nothing saved.
    b.type_into("#ip-allowlist", "10.0.0.0/8").await;
    b.wait_for("#save-security").await.click().await.unwrap();
    b.wait_until_text_contains("#lockout-warning", "127.0.0.1")
        .await;
    let r = ada.get(&format!("/api/v1/orgs/{org}/security")).await;
    assert_eq!(r.body["ip_allowlist"], json!([]), "nothing saved yet");

    // A wrong entry is named next to the field.
    b.type_into("#ip-allowlist", "127.0.0.1\n10.0.0.0/33").await;
    b.wait_for("#save-security").await.click().await.unwrap();
    b.wait_until_text_contains("#ip-allowlist-error", "10.0.0.0/33")
        .await;

    // With the own address in it, and the other limits, it saves.
    b.type_into("#ip-allowlist", "127.0.0.1\n10.0.0.0/8\n2001:db8::/32")
        .await;
    b.type_into("#session-idle", "30").await;
    b.type_into("#token-max", "90").await;
    b.type_into("#api-rpm", "6000").await;
    b.wait_for("#save-security").await.click().await.unwrap();
    b.wait_until_text_contains("#security-notice", "saved")
        .await;
    let r = ada.get(&format!("/api/v1/orgs/{org}/security")).await;
    assert_eq!(
        r.body["ip_allowlist"],
        json!(["127.0.0.1/32", "10.0.0.0/8", "2001:db8::/32"]),
        "{}",
        r.text
    );
    assert_eq!(r.body["session_idle_minutes"], 30);
    assert_eq!(r.body["token_max_days"], 90);
    assert_eq!(r.body["api_rate_limit_rpm"], 6000);
    assert!(r.body["session_max_hours"].is_null());
    // The page shows what is stored, one network per line.
    let shown = b
        .wait_for("#ip-allowlist")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(
        shown.as_deref(),
        Some("127.0.0.1/32\n10.0.0.0/8\n2001:db8::/32")
    );
    // Requiring two-factor needs it on one's own account first: said on the page.
    b.wait_for("#require-2fa").await.click().await.unwrap();
    b.wait_for("#save-security").await.click().await.unwrap();
    b.wait_until_text_contains("#security-error", "two-factor")
        .await;
    let r = ada.get(&format!("/api/v1/orgs/{org}/security")).await;
    assert_eq!(r.body["require_2fa"], false);
    assert_eq!(
        r.body["api_rate_limit_rpm"], 6000,
        "nothing else changed either"
    );
    b.close().await;
}
