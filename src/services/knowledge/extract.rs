//! Text from uploaded documents.
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("documents of type {content_type} cannot be read")]
    Unsupported { content_type: String },
    #[error("no text found in the document")]
    Empty,
}

#[derive(Debug, Clone)]
pub struct Extractor {
    pub exe: PathBuf,
    pub timeout: Duration,
}

impl Extractor {
    pub async fn extract(
        &self,
        bytes: Vec<u8>,
        content_type: &str,
        _filename: &str,
    ) -> Result<String, ExtractError> {
        if !content_type.starts_with("text/") {
            return Err(ExtractError::Unsupported {
                content_type: content_type.into(),
            });
        }
        let t = String::from_utf8_lossy(&bytes).trim().to_string();
        if t.is_empty() {
            Err(ExtractError::Empty)
        } else {
            Ok(t)
        }
    }
}
