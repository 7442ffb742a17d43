//! Pages over plain HTTP (the browser suite drives them in Chromium).
use reqwest::StatusCode;

use crate::common::*;

async fn form_login(app: &TestApp, email: &str, password: &str, next: &str) -> reqwest::Response {
    cookie_client()
        .post(app.url("/login"))
        .form(&[("email", email), ("password", password), ("next", next)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_first_run_hint_names_the_data_directory_the_server_uses() {
    let app = TestApp::spawn().await;
    let page = reply(reqwest::get(app.url("/login")).await.unwrap()).await;
    assert_eq!(page.status, StatusCode::OK);
    let dir = app.data_dir().display().to_string();
    assert!(
        page.text.contains(&format!(
            "xagent admin create-user --data-dir {dir} --email"
        )),
        "{}",
        page.text
    );
}

#[tokio::test]
async fn the_sign_in_page_signs_in_and_refuses_open_redirects() {
    let app = TestApp::spawn().await;
    let ann = app.create_user("ann@example.com", "Ann").await;
    let page = reply(reqwest::get(app.url("/login")).await.unwrap()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text.contains("name=\"password\""));

    let bad = form_login(&app, "ann@example.com", "nope nope nope", "/account").await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let html = bad.text().await.unwrap();
    assert!(html.contains("Email or password is incorrect."));

    let ok = form_login(&app, "ann@example.com", PASSWORD, "/account").await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()["location"], "/account");
    assert!(
        ok.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("HttpOnly")
    );

    for evil in [
        "//evil.example/x",
        "https://evil.example",
        "/\\evil.example",
    ] {
        let r = form_login(&app, "ann@example.com", PASSWORD, evil).await;
        assert_eq!(r.headers()["location"], "/", "{evil}");
    }
    let client = cookie_client();
    client
        .post(app.url("/login"))
        .form(&[
            ("email", "ann@example.com"),
            ("password", PASSWORD),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    let home = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(
        home.headers()["location"],
        format!("/o/{}", ann.personal_slug).as_str()
    );
}

#[tokio::test]
async fn signed_out_visitors_are_sent_to_sign_in_with_the_page_to_return_to() {
    let app = TestApp::spawn().await;
    let r = cookie_client()
        .get(app.url("/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?next=/account");
    let root = cookie_client().get(app.url("/")).send().await.unwrap();
    assert_eq!(root.headers()["location"], "/login");
}

#[tokio::test]
async fn page_forms_need_the_csrf_field() {
    let app = TestApp::spawn().await;
    app.create_user("ann@example.com", "Ann").await;
    let client = cookie_client();
    client
        .post(app.url("/login"))
        .form(&[
            ("email", "ann@example.com"),
            ("password", PASSWORD),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    let r = client
        .post(app.url("/orgs/new"))
        .form(&[("name", "No Token"), ("slug", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let html = r.text().await.unwrap();
    assert!(html.contains("<html") && html.contains("reload the page"));
    let orgs = client
        .get(app.url("/api/v1/orgs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!orgs.contains("No Token"));
}

#[tokio::test]
async fn unknown_pages_are_an_html_404() {
    let app = TestApp::spawn().await;
    let r = reply(reqwest::get(app.url("/no/such/page")).await.unwrap()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.contains("<html") && r.text.contains("Not found"));
}

#[tokio::test]
async fn assets_are_embedded_with_etags_and_compression() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let css = client
        .get(app.url("/assets/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let etag = css.headers()["etag"].to_str().unwrap().to_string();
    let again = client
        .get(app.url("/assets/style.css"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let js = client
        .get(app.url("/assets/vendor/htmx.min.js"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert_eq!(js.headers()["content-encoding"], "gzip");
    assert_eq!(
        client
            .get(app.url("/assets/nope.css"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn page_forms_are_for_browser_sessions_not_api_tokens() {
    let app = TestApp::spawn().await;
    let ann = app.create_user("ann@example.com", "Ann").await;
    let s = app.login("ann@example.com").await;
    let t = s
        .post(
            "/api/v1/me/tokens",
            serde_json::json!({"name": "t", "organization_id": ann.personal_org}),
        )
        .await;
    let token = t.body["token"].as_str().unwrap();
    let r = reqwest::Client::new()
        .post(app.url("/orgs/new"))
        .bearer_auth(token)
        .form(&[("name", "Via Token"), ("slug", ""), ("csrf_token", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let orgs = s.get("/api/v1/orgs").await;
    assert!(!orgs.text.contains("Via Token"));
}
