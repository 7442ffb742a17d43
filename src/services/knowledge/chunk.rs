//! Chunks of text for embedding.
pub const MAX_CHARS: usize = 1000;
pub const OVERLAP: usize = 150;

pub struct Piece {
    pub position: usize,
    pub text: String,
}

pub fn split(text: &str, _max_chars: usize, _overlap: usize) -> Vec<Piece> {
    text.split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
        .map(|(position, t)| Piece {
            position,
            text: t.to_string(),
        })
        .collect()
}
