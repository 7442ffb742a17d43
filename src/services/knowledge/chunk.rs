//! Chunks of text for embedding: pieces of at most `max_chars` characters, cut at the
//! largest semantic boundary that fits (paragraphs, then lines, sentences, words), each
//! repeating up to `overlap` characters of the one before so that a passage cut in two
//! is still found whole in one of them.
use text_splitter::{ChunkConfig, TextSplitter};

/// The most characters (Unicode scalar values) in one piece.
pub const MAX_CHARS: usize = 1000;
/// How many characters of a piece the next one may repeat.
pub const OVERLAP: usize = 150;

/// One piece of a document's text, `position` counting from 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub position: usize,
    pub text: String,
}

/// Splits `text` into pieces of at most `max_chars` characters with up to `overlap`
/// characters shared between neighbours; blank text gives no pieces. An overlap as large
/// as the pieces themselves would never move forward, so it is then left out.
pub fn split(text: &str, max_chars: usize, overlap: usize) -> Vec<Piece> {
    let max_chars = max_chars.max(1);
    let config = match ChunkConfig::new(max_chars).with_overlap(overlap) {
        Ok(c) => c,
        Err(_) => ChunkConfig::new(max_chars),
    };
    TextSplitter::new(config)
        .chunks(text)
        .filter(|t| !t.trim().is_empty())
        .enumerate()
        .map(|(position, t)| Piece {
            position,
            text: t.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> usize {
        s.chars().count()
    }

    /// Paragraphs of numbered sentences, so that every sentence is unique.
    fn essay(paragraphs: usize, sentences: usize) -> String {
        (0..paragraphs)
            .map(|p| {
                (0..sentences)
                    .map(|s| format!("Paragraph {p} sentence {s} says something about topic {s}."))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    #[test]
    fn blank_text_gives_no_pieces() {
        assert!(split("", MAX_CHARS, OVERLAP).is_empty());
        assert!(split(" \n\n\t \n", MAX_CHARS, OVERLAP).is_empty());
    }

    #[test]
    fn a_short_text_is_one_piece() {
        let pieces = split("  Hello there.  ", MAX_CHARS, OVERLAP);
        assert_eq!(
            pieces,
            vec![Piece {
                position: 0,
                text: "Hello there.".into()
            }]
        );
    }

    #[test]
    fn no_piece_is_longer_than_the_limit_and_positions_count_from_zero() {
        let text = essay(12, 20);
        for (max, overlap) in [(1000, 150), (200, 50), (80, 0), (37, 10)] {
            let pieces = split(&text, max, overlap);
            assert!(pieces.len() > 1, "{max}: {}", pieces.len());
            for (i, p) in pieces.iter().enumerate() {
                assert_eq!(p.position, i);
                assert!(chars(&p.text) <= max, "{max}: {} chars", chars(&p.text));
                assert!(!p.text.trim().is_empty());
            }
        }
    }

    #[test]
    fn characters_not_bytes_are_counted() {
        let text = "Grüße aus Köln, schönes Wetter heute. ".repeat(100);
        for p in split(&text, 100, 20) {
            assert!(chars(&p.text) <= 100);
        }
    }

    #[test]
    fn pieces_end_at_paragraphs_when_paragraphs_fit() {
        let text = essay(6, 3);
        let paragraph = chars(text.split("\n\n").next().unwrap_or(""));
        let pieces = split(&text, paragraph + 5, 0);
        for p in &pieces {
            assert!(
                p.text.starts_with("Paragraph") && p.text.ends_with('.'),
                "{:?}",
                p.text
            );
            assert!(!p.text.contains("\n\n"), "{:?}", p.text);
        }
        assert_eq!(pieces.len(), 6);
    }

    #[test]
    fn pieces_are_cut_at_sentences_rather_than_inside_them() {
        let text = essay(1, 40);
        for p in split(&text, 200, 0) {
            assert!(p.text.ends_with('.'), "{:?}", p.text);
        }
    }

    /// Where each piece starts and ends in the text (the pieces are unique here).
    fn spans(text: &str, pieces: &[Piece]) -> Vec<(usize, usize)> {
        pieces
            .iter()
            .map(|p| {
                let start = text.find(&p.text).unwrap_or(usize::MAX);
                (start, start.saturating_add(p.text.len()))
            })
            .collect()
    }

    #[test]
    fn neighbours_share_text_when_an_overlap_is_asked_for() {
        let text = essay(1, 60);
        let pieces = split(&text, 300, 120);
        assert!(pieces.len() > 2);
        for pair in spans(&text, &pieces).windows(2) {
            let ((_, end), (start, _)) = (pair[0], pair[1]);
            assert!(start < end, "no overlap: {pair:?}");
            assert!(end - start <= 120, "too much overlap: {pair:?}");
        }
        let without = split(&text, 300, 0);
        assert!(without.len() < pieces.len());
        for pair in spans(&text, &without).windows(2) {
            let ((_, end), (start, _)) = (pair[0], pair[1]);
            assert!(start >= end, "overlap without asking: {pair:?}");
        }
    }

    #[test]
    fn every_sentence_is_kept() {
        let text = essay(5, 15);
        let pieces = split(&text, MAX_CHARS, OVERLAP);
        for sentence in text.split_inclusive('.').map(str::trim) {
            assert!(
                pieces.iter().any(|p| p.text.contains(sentence)),
                "lost {sentence:?}"
            );
        }
    }

    #[test]
    fn an_overlap_as_large_as_the_pieces_is_left_out() {
        let text = essay(3, 10);
        let pieces = split(&text, 100, 100);
        assert!(!pieces.is_empty());
        assert!(pieces.iter().all(|p| chars(&p.text) <= 100));
        assert!(!split("x y z", 0, 0).is_empty());
    }
}
