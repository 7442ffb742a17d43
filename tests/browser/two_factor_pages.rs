//! Two-factor authentication in the browser: Ada enrols from her account page by reading
//! the secret the page shows (as she would type it into an app), signs out, and signs in
//! again with the password and then a code.
use super::*;

fn code_for(app: &TestApp, secret: &str) -> String {
    totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap()
        .generate(app.svc.now().timestamp() as u64)
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ada_enrols_two_factor_from_the_page_and_signs_in_again_with_a_code() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let clock = xagent::domain::Clock::default();
    let app = TestApp::spawn_with(|c| c.clock = clock.clone()).await;
    let ada = app.create_user(ADA_EMAIL, ADA_NAME).await;
    let b = Browser::launch(&app).await;
    b.sign_in(&ada).await;

    b.goto("/account").await;
    b.wait_for_text("#two-factor-state", "off").await;
    b.wait_for("#manage-two-factor")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for_path("/account/two-factor").await;
    b.wait_for("#start-two-factor-btn")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for("#totp-qr svg").await;
    let secret = b.text_of("#totp-secret").await;
    assert!(
        secret.len() >= 32,
        "the secret is shown as text: {secret:?}"
    );
    b.type_into("#confirm-code", &code_for(&app, &secret)).await;
    b.wait_for("#confirm-two-factor-btn")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for("#recovery-codes").await;
    let codes = b
        .client
        .find_all(Locator::Css(".recovery-code"))
        .await
        .unwrap();
    assert_eq!(codes.len(), 10, "ten recovery codes, shown once");
    b.wait_for_text("#two-factor-state", "on").await;

    b.wait_for("#sign-out").await.click().await.unwrap();
    b.wait_for_path("/login").await;

    // The password first, then the second step asks for a code.
    b.fill_sign_in(ADA_EMAIL, PASSWORD).await;
    b.wait_for("#second-step").await;
    assert!(
        b.absent("#password").await,
        "the password is not asked again"
    );
    let right = {
        // The code of the enrolment was used: the next one is for the next 30 seconds.
        clock.advance(Duration::from_secs(30));
        code_for(&app, &secret)
    };
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    b.type_into("#code", wrong).await;
    b.wait_for("#verify-code").await.click().await.unwrap();
    b.wait_for("#code-error").await;
    b.type_into("#code", &right).await;
    b.wait_for("#verify-code").await.click().await.unwrap();
    b.wait_for_path(&format!("/o/{}", ada.personal_slug)).await;
    b.wait_for("#org-name").await;

    b.close().await;
    app.stop().await;
}
