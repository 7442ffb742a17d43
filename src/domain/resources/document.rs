//! Uploaded documents: what the upload's bytes turned out to be. Clients change none of
//! these fields; an upload sets them all.
use serde::{Deserialize, Serialize};

use super::{Cell, ColumnReader, ResourceFields, ResourceKind};
use crate::domain::Invalid;

/// Fields in alphabetical order: the order of the JSON the API has always sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = DocumentFields)]
pub struct Document {
    pub content_type: String,
    pub filename: String,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
    #[schema(minimum = 1)]
    pub size_bytes: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DocumentInput)]
pub struct DocumentPatch {
    /// Set by the upload from the file; never read from a request, so every key a client
    /// sends for a document is refused as unknown.
    #[serde(skip)]
    #[schema(ignore)]
    pub file: Option<Document>,
}

impl ResourceFields for Document {
    const KIND: ResourceKind = ResourceKind::Document;
    const TABLE: &'static str = "uploaded_documents";
    const COLUMNS: &'static [&'static str] = &["filename", "content_type", "size_bytes", "sha256"];
    const PUBLIC: &'static [&'static str] = &["filename", "content_type", "size_bytes"];
    type Patch = DocumentPatch;

    /// The server measured the file itself: nothing to refuse.
    fn validate(_: &DocumentPatch, _: &mut Vec<Invalid>) {}

    fn to_row(p: &DocumentPatch) -> Vec<(&'static str, Cell)> {
        match &p.file {
            Some(d) => vec![
                ("filename", Cell::Text(d.filename.clone())),
                ("content_type", Cell::Text(d.content_type.clone())),
                ("size_bytes", Cell::Int(d.size_bytes)),
                ("sha256", Cell::Text(d.sha256.clone())),
            ],
            None => Vec::new(),
        }
    }

    fn from_row<R: ColumnReader>(r: &mut R) -> Result<Self, R::Error> {
        Ok(Document {
            filename: r.text()?,
            content_type: r.text()?,
            size_bytes: r.int()?,
            sha256: r.text()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Cells, problems};
    use super::*;
    use serde_json::json;

    #[test]
    fn clients_cannot_send_a_documents_fields() {
        assert!(serde_json::from_value::<DocumentPatch>(json!({"filename": "x"})).is_err());
        assert!(serde_json::from_value::<DocumentPatch>(json!({"file": null})).is_err());
        assert_eq!(
            serde_json::from_value::<DocumentPatch>(json!({})).ok(),
            Some(DocumentPatch::default())
        );
    }

    #[test]
    fn a_document_goes_to_its_row_and_back() {
        let d = Document {
            content_type: "text/plain".into(),
            filename: "a.txt".into(),
            sha256: "ab".into(),
            size_bytes: 3,
        };
        let row = Document::to_row(&DocumentPatch {
            file: Some(d.clone()),
        });
        assert_eq!(row[2], ("size_bytes", Cell::Int(3)));
        assert_eq!(Document::from_row(&mut Cells::of(row)).unwrap(), d);
        assert!(!d.public().contains_key("sha256"));
    }

    #[test]
    fn every_key_sent_for_a_document_is_refused() {
        assert_eq!(
            problems(
                ResourceKind::Document,
                json!({"filename": "a", "sha256": "b"})
            ),
            [
                (
                    "body",
                    "\"filename\" is not a field of documents.".to_string()
                ),
                ("body", "\"sha256\" is not a field of documents.".into()),
            ]
        );
        assert!(problems(ResourceKind::Document, json!({})).is_empty());
    }
}
