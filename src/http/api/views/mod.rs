//! The JSON the API answers with, written down field by field. Rows from `db` are not
//! serializable: a column reaches a response only once it is named here, so a new
//! (possibly secret) column stays private by default. Each type borrows its row, so
//! shaping a list costs no copies.
//!
//! Field order is the order on the wire. Every answer is one of these types (or a
//! service's own typed answer); none is built as a `serde_json::Value`.
pub mod identity;
pub mod members;
pub mod orgs;
pub mod resources;
pub mod usage;

pub use orgs::{MembershipOut, OrgOut, OrgWithRole};

/// Views of each item of a list.
pub fn all<'a, R, V: From<&'a R>>(rows: &'a [R]) -> Vec<V> {
    rows.iter().map(V::from).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Types in `db` that are serialized because they are stored as JSON text inside a
    /// row, not because a response shows them.
    const STORED_AS_JSON: &[&str] = &["InvoiceLine", "Citation"];

    fn rs_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                rs_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Whether a line derives or implements `Serialize` (not only `Deserialize`).
    fn serializes(line: &str) -> bool {
        let l = line.trim_start();
        let derives = l.starts_with("#[derive(")
            && l.match_indices("Serialize")
                .any(|(i, _)| !l[..i].ends_with("De"));
        derives || (l.starts_with("impl") && l.contains("Serialize for"))
    }

    fn type_name(line: &str) -> Option<&str> {
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            if w == "struct" || w == "enum" || w == "for" {
                return words.next().map(|n| {
                    let end = n
                        .find(|c: char| !c.is_alphanumeric() && c != '_')
                        .unwrap_or(n.len());
                    &n[..end]
                });
            }
        }
        None
    }

    /// A row that serializes itself makes each new column public by default; responses
    /// are written out in `http::api::views` instead.
    #[test]
    fn no_database_row_is_serializable() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/db");
        let mut files = Vec::new();
        rs_files(&root, &mut files);
        assert!(
            files.len() > 10,
            "src/db was not found at {}",
            root.display()
        );
        let mut found = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                if !serializes(line) {
                    continue;
                }
                let name = if line.trim_start().starts_with("impl") {
                    type_name(line)
                } else {
                    lines[i + 1..].iter().find_map(|l| {
                        let l = l.trim_start();
                        (l.starts_with("pub") || l.starts_with("struct") || l.starts_with("enum"))
                            .then(|| type_name(l))
                            .flatten()
                    })
                };
                let name = name.unwrap_or("?");
                if !STORED_AS_JSON.contains(&name) {
                    found.push(format!("{}: {name}", file.display()));
                }
            }
        }
        assert!(found.is_empty(), "serializable types in src/db: {found:?}");
    }

    #[test]
    fn the_guard_sees_derives_and_impls_but_not_deserialize_alone() {
        assert!(serializes("#[derive(Debug, Clone, Serialize)]"));
        assert!(serializes("#[derive(Debug, serde::Serialize, PartialEq)]"));
        assert!(serializes("impl serde::Serialize for Row {"));
        assert!(!serializes("#[derive(Debug, Deserialize)]"));
        assert!(!serializes("use serde::Serialize;"));
        assert_eq!(type_name("pub struct Session {"), Some("Session"));
        assert_eq!(type_name("impl Serialize for Row<'_> {"), Some("Row"));
    }

    #[test]
    fn invoice_lines_keep_their_keys_in_alphabetical_order() {
        use crate::db::repo::invoices::{Invoice, InvoiceLine};
        use crate::domain::Micros;
        let inv = Invoice {
            id: "i1".into(),
            period: "2026-11".into(),
            currency: "USD".into(),
            subtotal_micros: Micros::new(150),
            total_micros: Micros::new(150),
            line_items: vec![InvoiceLine::Usage {
                model: "m".into(),
                requests: 3,
                input_tokens: 1000,
                output_tokens: 0,
                amount_micros: Micros::new(150),
            }],
            issued_at: chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00.000000Z")
                .unwrap()
                .to_utc(),
        };
        let json = serde_json::to_string(&super::usage::InvoiceOut::from(&inv)).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"id":"i1","period":"2026-11","currency":"USD","subtotal_micros":150,"total_micros":150,"line_items":[{"amount_micros":150,"input_tokens":1000,"kind":"usage","model":"m","output_tokens":0,"requests":3}],"issued_at":"2026-12-01T00:00:00.000000Z"}"#
        );
    }
}
