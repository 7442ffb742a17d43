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

#[tokio::test]
async fn a_panic_is_logged_once_with_its_request_id_route_and_place() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_xagent"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("XAGENT_LOG", "warn")
        .env_remove("XAGENT_MASTER_KEY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_string();
    let read_all = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut all = String::new();
            let _ = r.read_to_string(&mut all);
            all
        })
    };
    let err_log = read_all(Box::new(server.stderr.take().unwrap()));
    let out_log = read_all(Box::new(stdout));
    let client = cookie_client();
    let r = client
        .get(format!("{base}/api/v1/debug/panic"))
        .header("x-request-id", "panic-check-7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.headers()["x-request-id"], "panic-check-7");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert!(server.wait().unwrap().success());
    let log = format!("{}{}", out_log.join().unwrap(), err_log.join().unwrap());
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("panic")).collect();
    assert_eq!(lines.len(), 1, "logged more or less than once:\n{log}");
    for part in [
        "panic-check-7",
        "/api/v1/debug/panic",
        "debug panic route",
        "src/http/mod.rs",
    ] {
        assert!(lines[0].contains(part), "{part} missing from {}", lines[0]);
    }
}
