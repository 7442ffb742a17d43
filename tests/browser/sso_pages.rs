//! Single sign-on in the browser: an owner sets it up on the settings page (testing the
//! connection first), and a person of the allowed domain signs in from the sign-in page
//! through the identity provider (the test provider approves at once) and lands signed in,
//! a member of the organization.
use super::*;

use common::oidc_provider::{CLIENT_SECRET, OidcProvider, identity};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_sets_up_single_sign_on_and_a_colleague_signs_in_through_the_provider() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let idp = OidcProvider::start("xagent-engines", identity("grace@engines.example", true)).await;
    let ada = app.create_user(ADA_EMAIL, ADA_NAME).await;
    let owner = app.login(ADA_EMAIL).await;
    engines(&owner).await;

    let b = Browser::launch(&app).await;
    b.sign_in(&ada).await;
    b.goto("/o/engines/settings").await;
    b.wait_for("#sso-settings-link")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for_path("/o/engines/settings/sso").await;
    b.type_into("#sso-issuer", &idp.issuer).await;
    b.wait_for("#sso-test").await.click().await.unwrap();
    b.wait_until_text_contains("#sso-test-result", "Connection works")
        .await;
    b.type_into("#sso-issuer", &idp.issuer).await;
    b.type_into("#sso-client-id", "xagent-engines").await;
    b.type_into("#sso-client-secret", CLIENT_SECRET).await;
    b.type_into("#sso-domains", "engines.example").await;
    b.wait_for("#sso-save").await.click().await.unwrap();
    b.wait_until_text_contains("#sso-notice", "Single sign-on saved")
        .await;
    let hint = b.text_of("#sso-secret-hint").await;
    assert!(!hint.is_empty() && !CLIENT_SECRET.contains(&hint), "{hint}");
    let secret_field = b
        .wait_for("#sso-client-secret")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(
        secret_field.as_deref(),
        Some(""),
        "the secret is not sent back"
    );
    assert!(b.text_of("#sso-redirect-uri").await.ends_with("/callback"));
    b.close().await;

    // A colleague, in a browser of their own: email → provider → back, signed in.
    let b = Browser::launch(&app).await;
    b.goto("/login").await;
    b.wait_for("#sso-link").await.click().await.unwrap();
    b.wait_for_path("/login/sso").await;
    b.type_into("#sso-email", "grace@engines.example").await;
    b.wait_for("#sso-continue").await.click().await.unwrap();
    b.wait_for_path("/o/engines").await;
    b.wait_for_text("#org-name", "Analytical Engines").await;
    assert_eq!(b.text_of("#org-role").await, "member");
    b.wait_for("#sign-out").await;
    let asked = idp.authorize_requests();
    assert_eq!(asked.len(), 1, "the sign-in went through the provider");
    assert_eq!(asked[0]["login_hint"], "grace@engines.example");

    // An email domain no organization routes stays on the page with a message.
    b.close().await;
    let b = Browser::launch(&app).await;
    b.goto("/login/sso").await;
    b.type_into("#sso-email", "someone@elsewhere.example").await;
    b.wait_for("#sso-continue").await.click().await.unwrap();
    b.wait_until_text_contains("#sso-email-error", "sign in with your password")
        .await;
    assert_eq!(b.path().await, "/login/sso");
    b.close().await;
    app.stop().await;
}
