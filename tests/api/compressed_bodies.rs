//! Streamed and downloaded bodies end cleanly through the compression layer: every
//! encoding a common client asks for decodes to exactly the uncompressed body.
use std::io::Read;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Session, TestApp, reply};
use crate::org_fixture::{create_org, new_person};

const ENCODINGS: [&str; 4] = ["gzip", "br", "zstd", "identity"];

/// The raw bytes of the response to `req` asked for with `encoding`, and the encoding
/// the server used.
async fn fetch(
    req: reqwest::RequestBuilder,
    what: &str,
    encoding: &str,
) -> (Vec<u8>, Option<String>) {
    let res = req
        .header("accept-encoding", encoding)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{what} ({encoding})");
    let used = res
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_string());
    // A body that breaks off mid-way is an error here, not a short body.
    let bytes = res
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{what} ({encoding}) broke off: {e:?}"));
    (bytes.to_vec(), used)
}

fn decode(bytes: &[u8], used: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    match used {
        None | Some("identity") => out.extend_from_slice(bytes),
        Some("gzip") => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("br") => {
            brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("zstd") => out = zstd::decode_all(bytes).unwrap(),
        Some(other) => panic!("unexpected content-encoding {other}"),
    }
    out
}

/// Asserts that `path` decodes to the same bytes in every encoding, that compression was
/// actually applied when asked for, and returns the body.
async fn same_in_every_encoding(s: &Session, path: &str) -> Vec<u8> {
    same_for_every_encoding(|| s.client.get(s.url(path)), path).await
}

/// The same for any request `make` builds (a POST, a bearer token, ...).
pub async fn same_for_every_encoding(
    make: impl Fn() -> reqwest::RequestBuilder,
    what: &str,
) -> Vec<u8> {
    let (plain, used) = fetch(make(), what, "identity").await;
    assert_eq!(used, None, "{what} encoded although identity was asked for");
    assert!(!plain.is_empty(), "{what} is empty");
    for enc in ENCODINGS {
        let (bytes, used) = fetch(make(), what, enc).await;
        if enc != "identity" {
            assert_eq!(
                used.as_deref(),
                Some(enc),
                "{what} not compressed with {enc}"
            );
        }
        assert_eq!(
            decode(&bytes, used.as_deref()),
            plain,
            "{what} decoded from {enc} differs from the uncompressed body"
        );
    }
    plain
}

/// The raw bytes of a response the server must not compress (an event stream: each
/// event has to reach the client when it is sent), asked for with `encoding`.
pub async fn uncompressed_for_every_encoding(
    make: impl Fn() -> reqwest::RequestBuilder,
    what: &str,
) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    for enc in ENCODINGS {
        let (bytes, used) = fetch(make(), what, enc).await;
        assert_eq!(used, None, "{what} was compressed with {enc}");
        bodies.push(bytes);
    }
    bodies
}

#[tokio::test]
async fn audit_exports_and_csv_downloads_end_cleanly_in_every_encoding() {
    let app = TestApp::spawn().await;
    let (_, owner) = new_person(&app, "owner@zip.example", "Owner").await;
    let (org, _) = create_org(&owner, "Zip Org", "zip-org").await;
    // Enough audit rows for more than one chunk of the stream.
    for i in 0..40 {
        let r = owner
            .post(
                &format!("/api/v1/orgs/{org}/teams"),
                json!({"name": format!("Team {i}")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let csv = same_in_every_encoding(
        &owner,
        &format!("/api/v1/orgs/{org}/audit/export?format=csv"),
    )
    .await;
    assert!(String::from_utf8(csv).unwrap().lines().count() > 40);
    let nd = same_in_every_encoding(
        &owner,
        &format!("/api/v1/orgs/{org}/audit/export?format=ndjson"),
    )
    .await;
    for line in String::from_utf8(nd).unwrap().lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    same_in_every_encoding(&owner, &format!("/api/v1/orgs/{org}/usage.csv")).await;
}

#[tokio::test]
async fn a_document_download_ends_cleanly_in_every_encoding() {
    let app = TestApp::spawn().await;
    let (_, owner) = new_person(&app, "doc@zip.example", "Owner").await;
    let (org, _) = create_org(&owner, "Doc Zip Org", "doc-zip-org").await;
    let text: String = (0..2000)
        .map(|i| format!("line {i} of the notes\n"))
        .collect();
    let part = reqwest::multipart::Part::bytes(text.clone().into_bytes())
        .file_name("notes.md")
        .mime_str("text/markdown")
        .unwrap();
    let r = reply(
        owner
            .client
            .post(owner.url(&format!("/api/v1/orgs/{org}/documents")))
            .header("x-csrf-token", &owner.csrf)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap();
    let body = same_in_every_encoding(
        &owner,
        &format!("/api/v1/orgs/{org}/documents/{id}/content"),
    )
    .await;
    assert_eq!(body, text.into_bytes());
}
