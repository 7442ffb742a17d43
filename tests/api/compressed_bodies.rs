//! Streamed and downloaded bodies end cleanly through the compression layer: every
//! encoding a common client asks for decodes to exactly the uncompressed body.
use std::io::Read;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Session, TestApp};
use crate::org_fixture::{create_org, new_person};

const ENCODINGS: [&str; 4] = ["gzip", "br", "zstd", "identity"];

/// The raw bytes of `path` asked for with `encoding`, and the encoding the server used.
async fn fetch(s: &Session, path: &str, encoding: &str) -> (Vec<u8>, Option<String>) {
    let res = s
        .client
        .get(s.url(path))
        .header("accept-encoding", encoding)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path} ({encoding})");
    let used = res
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_string());
    // A body that breaks off mid-way is an error here, not a short body.
    let bytes = res
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{path} ({encoding}) broke off: {e:?}"));
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
    let (plain, used) = fetch(s, path, "identity").await;
    assert_eq!(used, None, "{path} encoded although identity was asked for");
    assert!(!plain.is_empty(), "{path} is empty");
    for enc in ENCODINGS {
        let (bytes, used) = fetch(s, path, enc).await;
        if enc != "identity" {
            assert_eq!(
                used.as_deref(),
                Some(enc),
                "{path} not compressed with {enc}"
            );
        }
        assert_eq!(
            decode(&bytes, used.as_deref()),
            plain,
            "{path} decoded from {enc} differs from the uncompressed body"
        );
    }
    plain
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
