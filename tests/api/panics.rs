//! A panic inside a request answers a clean 500 and leaves the server serving. The panic
//! routes exist in debug builds only.
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestApp, cookie_client, reply};

#[tokio::test]
async fn a_panic_answers_a_clean_500_and_the_server_keeps_serving() {
    let app = TestApp::spawn().await;
    // One client, so the follow-up requests reuse the connection the panic happened on.
    let client = cookie_client();
    for path in ["/api/v1/debug/panic", "/v1/debug/panic"] {
        let r = reply(client.get(app.url(path)).send().await.unwrap()).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(
            r.body,
            json!({"error": {"code": "internal", "message": "internal error"}}),
            "{path}: {}",
            r.text
        );
        assert!(
            !r.text.contains("debug panic route"),
            "{path} shows the panic"
        );
    }
    let r = reply(client.get(app.url("/debug/panic")).send().await.unwrap()).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.text.contains("Something went wrong"), "{}", r.text);
    assert!(!r.text.contains("debug panic route"));
    for _ in 0..3 {
        let r = reply(client.get(app.url("/healthz")).send().await.unwrap()).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["status"], "ok");
    }
}
