//! Documents of knowledge bases are read by a child process of the real binary: PDFs,
//! HTML and Markdown become searchable text; a corrupt or crashing PDF, an unreadable type
//! and a reader out of time fail that document alone, with a reason a person can read,
//! and the server goes on serving.
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

/// A one-page PDF showing `lines` in Helvetica (`font` replaces the font dictionary), with
/// a correct cross-reference table.
fn pdf_with_font(lines: &[&str], font: &str) -> Vec<u8> {
    let mut content = String::from("BT /F1 12 Tf 72 720 Td");
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            content.push_str(" 0 -16 Td");
        }
        content.push_str(&format!(" ({line}) Tj"));
    }
    content.push_str(" ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
         /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
            .to_string(),
        font.to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn pdf(lines: &[&str]) -> Vec<u8> {
    pdf_with_font(
        lines,
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    )
}

/// A `%PDF-1.4` header, then noise, cut off mid-way.
fn corrupt_pdf() -> Vec<u8> {
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R".to_vec();
    let mut x: u32 = 0x2545_4f46;
    for _ in 0..4000 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        out.push((x >> 24) as u8);
    }
    out
}

struct Kb {
    /// Keeps the server running.
    _app: TestApp,
    s: Session,
    org: String,
    kb: String,
}

/// A member's organization with the mock as its provider and an empty knowledge base.
async fn kb_with(tweak: impl FnOnce(&mut xagent::config::Config)) -> Kb {
    let mock = mock_llm::MockLlm::start().await;
    let app = TestApp::spawn_with(|c| {
        env_mock(c, &mock);
        tweak(c);
    })
    .await;
    let u = app.create_user("reader@example.com", "Reader").await;
    let s = app.login("reader@example.com").await;
    let org = u.personal_org;
    let kb = s
        .post(
            &format!("/api/v1/orgs/{org}/knowledge-bases"),
            json!({"name": "Library"}),
        )
        .await;
    assert_eq!(kb.status, StatusCode::CREATED, "{}", kb.text);
    let kb = kb.body["id"].as_str().unwrap().to_string();
    Kb {
        _app: app,
        s,
        org,
        kb,
    }
}

impl Kb {
    /// Uploads a document and adds it to the knowledge base; returns its id.
    async fn add(&self, name: &str, bytes: Vec<u8>, mime: &str) -> String {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name.to_string())
            .mime_str(mime)
            .unwrap();
        let form = reqwest::multipart::Form::new().part("file", part);
        let up = reply(
            self.s
                .client
                .post(self.s.url(&format!("/api/v1/orgs/{}/documents", self.org)))
                .header("x-csrf-token", &self.s.csrf)
                .multipart(form)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(up.status, StatusCode::CREATED, "{name}: {}", up.text);
        let id = up.body["id"].as_str().unwrap().to_string();
        let added = self
            .s
            .put(
                &format!(
                    "/api/v1/orgs/{}/knowledge-bases/{}/documents/{id}",
                    self.org, self.kb
                ),
                json!({}),
            )
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
        id
    }

    /// The document's entry once indexing stopped (ready or failed).
    async fn settled(&self, doc: &str) -> Value {
        let path = format!(
            "/api/v1/orgs/{}/knowledge-bases/{}/documents",
            self.org, self.kb
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let list = self.s.get(&path).await;
            assert_eq!(list.status, StatusCode::OK, "{}", list.text);
            let entry = list.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["document_id"] == doc)
                .cloned()
                .unwrap();
            if matches!(entry["status"].as_str(), Some("ready" | "failed")) {
                return entry;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still {entry} after 90 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn search(&self, q: &str) -> Vec<Value> {
        let r = self
            .s
            .get(&format!(
                "/api/v1/orgs/{}/knowledge-bases/{}/search?q={}&k=10",
                self.org,
                self.kb,
                q.replace(' ', "+")
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["items"].as_array().unwrap().clone()
    }

    /// The server still answers an ordinary request.
    async fn still_serving(&self) {
        let r = self
            .s
            .get(&format!(
                "/api/v1/orgs/{}/knowledge-bases/{}",
                self.org, self.kb
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
}

/// A reason fit for a status line: one sentence, no trace of the program inside.
fn assert_clean_reason(reason: &str) {
    assert!(!reason.is_empty());
    assert!(!reason.contains('\n'), "{reason:?}");
    for trace in [
        "panicked",
        "backtrace",
        ".rs:",
        "RUST_",
        "stack",
        "thread '",
    ] {
        assert!(!reason.contains(trace), "{reason:?} shows {trace}");
    }
}

#[tokio::test]
async fn pdf_html_and_markdown_documents_become_text_that_search_finds() {
    let k = kb_with(|_| {}).await;
    let pdf_id = k
        .add(
            "report.pdf",
            pdf(&[
                "Quarterly zephyr report",
                "The marmalade budget grew by nine percent.",
            ]),
            "application/pdf",
        )
        .await;
    let html_id = k
        .add(
            "page.html",
            b"<!DOCTYPE html><html><head><title>Ignored title</title>\
              <style>.quokka { color: red }</style>\
              <script>var trackingpixel = 'beacon';</script></head>\
              <body><h1>Harbour timetable</h1><p>Ferries leave the <b>harbour</b> hourly.</p>\
              <p>Tickets are sold aboard.</p></body></html>"
                .to_vec(),
            "text/html",
        )
        .await;
    let md_id = k
        .add(
            "guide.md",
            b"# Gardening guide\n\nWater the **tomatoes** every morning.\n\n- compost\n- mulch\n"
                .to_vec(),
            "text/markdown",
        )
        .await;

    for (id, name) in [(&pdf_id, "pdf"), (&html_id, "html"), (&md_id, "markdown")] {
        let entry = k.settled(id).await;
        assert_eq!(entry["status"], "ready", "{name}: {entry}");
        assert!(entry["chunks"].as_i64().unwrap() >= 1, "{name}: {entry}");
        assert!(entry.get("error").is_none(), "{name}: {entry}");
    }

    let found = k.search("marmalade budget").await;
    let best = &found[0];
    assert_eq!(best["document_id"], pdf_id.as_str(), "{found:?}");
    let text = best["text"].as_str().unwrap();
    assert!(
        text.contains("Quarterly zephyr report") && text.contains("marmalade budget grew"),
        "{text:?}"
    );

    let found = k.search("harbour ferries").await;
    assert_eq!(found[0]["document_id"], html_id.as_str(), "{found:?}");
    let text = found[0]["text"].as_str().unwrap();
    assert_eq!(
        text,
        "Harbour timetable\n\nFerries leave the harbour hourly.\n\nTickets are sold aboard."
    );

    let found = k.search("tomatoes").await;
    assert_eq!(found[0]["document_id"], md_id.as_str(), "{found:?}");
    assert_eq!(
        found[0]["text"].as_str().unwrap(),
        "Gardening guide\n\nWater the tomatoes every morning.\n\ncompost\nmulch"
    );

    // What a browser does not show is not indexed.
    for hidden in ["trackingpixel", "quokka", "Ignored title"] {
        for passage in k.search(hidden).await {
            assert!(
                !passage["text"].as_str().unwrap().contains(hidden),
                "{hidden} indexed: {passage}"
            );
        }
    }
    k.still_serving().await;
}

#[tokio::test]
async fn a_corrupt_or_crashing_pdf_fails_with_a_clear_reason_and_the_server_keeps_serving() {
    let k = kb_with(|_| {}).await;
    let corrupt = k.add("broken.pdf", corrupt_pdf(), "application/pdf").await;
    // pdf-extract panics on a composite font without descendant fonts.
    let crashing = k
        .add(
            "crashing.pdf",
            pdf_with_font(
                &["never read"],
                "<< /Type /Font /Subtype /Type0 /BaseFont /X /Encoding /Identity-H >>",
            ),
            "application/pdf",
        )
        .await;
    let picture = k
        .add(
            "picture.png",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde".to_vec(),
            "image/png",
        )
        .await;

    let entry = k.settled(&corrupt).await;
    assert_eq!(entry["status"], "failed", "{entry}");
    let reason = entry["error"].as_str().unwrap();
    assert!(
        reason.starts_with("the PDF could not be read: "),
        "{reason:?}"
    );
    assert_clean_reason(reason);

    let entry = k.settled(&crashing).await;
    assert_eq!(entry["status"], "failed", "{entry}");
    let reason = entry["error"].as_str().unwrap();
    assert_eq!(
        reason,
        "the PDF could not be read: the reader failed on its content"
    );
    assert_clean_reason(reason);

    let entry = k.settled(&picture).await;
    assert_eq!(entry["status"], "failed", "{entry}");
    assert_eq!(
        entry["error"], "documents of type image/png cannot be read",
        "{entry}"
    );

    // The server, and its indexer, go on.
    k.still_serving().await;
    let good = k
        .add(
            "after.pdf",
            pdf(&["Afterwards the walrus sang."]),
            "application/pdf",
        )
        .await;
    assert_eq!(k.settled(&good).await["status"], "ready");
    let found = k.search("walrus").await;
    assert_eq!(found[0]["document_id"], good.as_str(), "{found:?}");
    assert!(
        found
            .iter()
            .all(|p| p["document_id"] != corrupt.as_str() && p["document_id"] != crashing.as_str())
    );
}

#[tokio::test]
async fn a_document_whose_reading_takes_too_long_fails_with_the_time_limit_as_its_reason() {
    let k = kb_with(|c| c.extract_timeout = Duration::from_millis(1)).await;
    let doc = k
        .add("slow.pdf", pdf(&["Too slow to read"]), "application/pdf")
        .await;
    let entry = k.settled(&doc).await;
    assert_eq!(entry["status"], "failed", "{entry}");
    assert_eq!(
        entry["error"], "reading the document took longer than 1 ms",
        "{entry}"
    );
    // Plain text needs no reader and no time limit.
    let text = k
        .add(
            "plain.txt",
            b"Plain words are read at once.".to_vec(),
            "text/plain",
        )
        .await;
    assert_eq!(k.settled(&text).await["status"], "ready");
    k.still_serving().await;
}
