//! The instance console in the browser: an administrator raises an organization's plan,
//! overrides a limit and suspends it (its owner then sees the reason), disables a user,
//! adds a plan and a price, and finds it all in the instance audit log.
use super::*;

#[tokio::test]
async fn an_administrator_raises_a_plan_suspends_an_org_disables_a_user_and_finds_it_audited() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let root = app.create_superuser("root@console.example", "Root").await;
    app.create_user(ADA_EMAIL, ADA_NAME).await;
    let ada = app.login(ADA_EMAIL).await;
    let org = engines(&ada).await;
    let b = Browser::launch(&app).await;
    b.sign_in(&root).await;
    b.wait_for("#console-link").await.click().await.unwrap();
    b.wait_for_path("/admin").await;
    b.wait_until_text_contains("#admin-figures", "organizations")
        .await;

    // Find the organization and raise its plan.
    b.goto("/admin/organizations").await;
    b.type_into("#org-q", "engin").await;
    b.wait_for("#org-search").await.click().await.unwrap();
    // The search result replaces the list: wait until only the match is left.
    b.wait_until("#admin-orgs", |t| !t.contains("personal"), "only the match")
        .await;
    b.wait_for("tr[data-org='engines'] a")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for_path(&format!("/admin/organizations/{org}"))
        .await;
    b.wait_for("#plan option[value='team']")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for("#change-plan").await.click().await.unwrap();
    b.wait_until_text_contains("#admin-notice", "plan is changed")
        .await;
    // Override the members limit alone; a bad value is shown, not saved.
    b.type_into("#limit-members", "many").await;
    b.wait_for("#save-limits").await.click().await.unwrap();
    b.wait_until_text_contains("#admin-error", "whole number")
        .await;
    b.type_into("#limit-members", "150").await;
    b.wait_for("#save-limits").await.click().await.unwrap();
    b.wait_until_text_contains("#admin-notice", "limits are saved")
        .await;
    let r = ada.get(&format!("/api/v1/orgs/{org}/limits")).await;
    assert_eq!(r.body["users"]["max"], 150, "{}", r.text);

    // Suspend it with a reason (confirmed); its owner's page says why.
    b.type_into("#suspend-reason", "abuse report 17").await;
    b.wait_for("#suspend").await.click().await.unwrap();
    b.wait_for_alert().await;
    b.client.accept_alert().await.unwrap();
    b.wait_until_text_contains("#suspended-banner", "abuse report 17")
        .await;
    let page = ada.client.get(app.url("/o/engines")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert!(page.text().await.unwrap().contains("abuse report 17"));
    b.wait_for("#unsuspend").await.click().await.unwrap();
    b.wait_until_text_contains("#admin-notice", "active again")
        .await;
    assert_eq!(
        ada.get(&format!("/api/v1/orgs/{org}/agents")).await.status,
        StatusCode::OK
    );

    // Disable Ada (confirmed): her session ends at once.
    b.goto("/admin/users?q=ada").await;
    b.wait_for(&format!("tr[data-user='{ADA_EMAIL}'] a"))
        .await
        .click()
        .await
        .unwrap();
    b.wait_for("#disable-user").await.click().await.unwrap();
    b.wait_for_alert().await;
    b.client.accept_alert().await.unwrap();
    b.wait_for("#enable-user").await;
    assert_eq!(ada.get("/api/v1/me").await.status, StatusCode::UNAUTHORIZED);
    // A reset link is shown once on the page.
    b.wait_for("#reset-password").await.click().await.unwrap();
    let url = b.text_of("#reset-url").await;
    assert!(url.contains("/reset-password/"), "{url}");

    // A new plan and a price.
    b.goto("/admin/plans").await;
    b.type_into("#new-id", "scale").await;
    b.type_into("#new-name", "Scale").await;
    b.type_into("#new-fee", "149").await;
    b.type_into("#new-agents", "500").await;
    b.wait_for("#create-plan").await.click().await.unwrap();
    b.wait_until_text_contains("#admin-notice", "plan is created")
        .await;
    b.wait_for("section[data-plan='scale']").await;
    b.goto("/admin/prices").await;
    b.type_into("#np-model", "house-model").await;
    b.type_into("#np-input", "0.50").await;
    b.type_into("#np-output", "1.50").await;
    b.type_into("#np-from", "2026-01-01").await;
    b.wait_for("#add-price").await.click().await.unwrap();
    b.wait_until_text_contains("#admin-notice", "price is saved")
        .await;
    b.wait_for("tr[data-price='house-model']").await;

    // The instance audit log has each step, filterable by action.
    b.goto("/admin/audit").await;
    let log = b.text_of("#admin-audit").await;
    for a in [
        "organization.plan_changed",
        "organization.limits_overridden",
        "organization.suspended",
        "organization.unsuspended",
        "user.disabled",
        "user.password_reset_issued",
        "plan.created",
        "model_price.created",
    ] {
        assert!(log.contains(a), "{a} missing from the log: {log}");
    }
    b.wait_for("#aa-action option[value='plan.created']")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for("#aa-apply").await.click().await.unwrap();
    b.wait_until(
        "#admin-audit",
        |t| t.contains("plan.created") && !t.contains("user.disabled"),
        "only plan.created rows",
    )
    .await;
    b.close().await;

    // A member is refused the console's pages.
    let bob = app.create_user("bob@console.example", "Bob").await;
    let bob_s = app.login(&bob.email).await;
    let r = bob_s
        .client
        .get(app.url("/admin/organizations"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}
