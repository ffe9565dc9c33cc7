//! keel's built-in offline NLP: the algorithms behind the "local" provider,
//! which is what users get without any API key.
//!
//! Everything here is deterministic, std-only and works on arbitrary Unicode
//! input without panicking (all slicing is char-boundary safe) or looping
//! forever. The algorithms are classic, explainable ones:
//!
//! - [`summarize()`]: extractive summary by TF-IDF sentence centrality, kept
//!   within a word budget and printed in source order.
//! - [`analyze_sentiment`]: VADER-style lexicon scoring with negation,
//!   intensifiers, contrast and emphasis, plus the cues that decided it.
//! - [`key_points()`]: the most salient distinct sentences (MMR, near-duplicates
//!   removed).
//! - [`generate_questions`]: questions rewritten from salient sentences
//!   (when / how many / who / what / why), entities and keywords.
//! - [`answer_question`]: BM25 sentence retrieval with a question-type boost.
//!
//! Shared building blocks live in `text` (sentence splitting, tokens,
//! stopwords, stemming) and `salience` (sentence ranking). Counts given as 0
//! (`max_words`, `max_points`, `n`) are treated as 1.

mod data;
mod key_points;
mod lexicon;
mod qa;
mod questions;
mod salience;
mod sentiment;
mod summarize;
pub(crate) mod text;

pub(crate) use text::word_count;

pub use key_points::key_points;
pub use qa::{Answer, answer_question};
pub use questions::generate_questions;
pub use sentiment::{Polarity, SentimentAnalysis, analyze_sentiment};
pub use summarize::summarize;

#[cfg(test)]
mod tests {
    use super::*;

    /// Tricky fragments: abbreviations, decimals, quotes, bullets, emoji,
    /// CJK, combining marks, RTL text, lone punctuation and whitespace.
    const PIECES: &[&str] = &[
        "The",
        "bridge",
        "was",
        "completed",
        "in",
        "1932",
        ".",
        "Dr.",
        "e.g.",
        "3.5",
        "...",
        "…",
        "!",
        "?",
        "\"",
        "“",
        "”",
        "'",
        "’",
        "n't",
        "not",
        "very",
        "good",
        "bad",
        "but",
        "However,",
        "\n",
        "\n\n",
        "- ",
        "• ",
        "1. ",
        "😀",
        "👍🏽",
        "東京",
        "。",
        "！",
        "é",
        "e\u{301}",
        "ß",
        "İ",
        "שלום",
        "مرحبا",
        ",",
        ";",
        ":",
        "(",
        ")",
        "$12",
        "40%",
        "May",
        "There",
        "are",
        "250",
        "panels",
        "Apple",
        "is",
        "a",
        "company",
        "\t",
        "  ",
        ":)",
        "—",
        "Mr.",
        "U.S.",
        "who",
        "when",
        "how",
        "many",
    ];

    /// Deterministic pseudo-random text (a linear congruential generator, so
    /// the test needs no dependency and never changes between runs).
    fn fuzz_text(seed: u64, pieces: usize) -> String {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut out = String::new();
        for _ in 0..pieces {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let piece = PIECES[(state >> 33) as usize % PIECES.len()];
            out.push_str(piece);
            if !(state >> 20).is_multiple_of(3) {
                out.push(' ');
            }
        }
        out
    }

    fn check(text: &str) {
        for budget in [0, 1, 5, 40] {
            let s = summarize(text, budget);
            assert!(
                s.split_whitespace().count() <= budget.max(1),
                "{text:?} -> {s:?}"
            );
            assert!(!s.is_empty() || text.trim().is_empty(), "{text:?}");
        }
        let r = analyze_sentiment(text);
        assert!((-1.0..=1.0).contains(&r.score) && (0.0..=1.0).contains(&r.confidence));
        let points = key_points(text, 4);
        assert!(points.len() <= 4);
        assert!(points.iter().all(|p| p.trim_end() == p && !p.is_empty()));
        let qs = generate_questions(text, 5);
        assert!(qs.len() <= 5);
        assert!(qs.iter().all(|q| q.ends_with('?')), "{qs:?}");
        let mut keys: Vec<String> = qs.iter().map(|q| q.to_lowercase()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), qs.len());
        let a = answer_question(text, "When was the bridge completed?");
        assert!((0.0..=1.0).contains(&a.confidence));
    }

    #[test]
    fn fuzz_no_panic_and_invariants() {
        for seed in 0..300 {
            check(&fuzz_text(seed, 5 + (seed as usize % 60)));
        }
        for seed in 0..3 {
            let long = fuzz_text(1000 + seed, 3000);
            let long: String = long.chars().take(10_000).collect();
            check(&long);
        }
    }

    #[test]
    fn edge_inputs() {
        let long_word = "w".repeat(10_000);
        let long_sentence = "and the city grew ".repeat(550);
        for text in [
            "aaaaaaaaaaaa",
            long_word.as_str(),
            long_sentence.as_str(),
            "😀😀😀😀😀 🎉🎉 東京は日本の首都です。大阪も大きいです。",
            "!!!!!!!!!!!!",
            "! ! ! ? ? . . , ,",
            "- milk\n- eggs\n- bread\n- a very long list item that keeps going and going\n",
            "          ",
        ] {
            check(text);
        }
        assert!(key_points("!!!!!!!!!!!!", 3).is_empty());
        assert!(generate_questions("!!!!!!!!!!!!", 3).is_empty());
    }
}
