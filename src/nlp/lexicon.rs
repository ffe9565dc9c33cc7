//! The sentiment lexicon: a few hundred common English opinion words with
//! VADER-style valences (about -4..=4), the modifier word lists (negators,
//! intensifiers, diminishers, contrast words), multi-word idioms and emoji.
//! The tables themselves are data files in `src/nlp/data/` (`lexicon.tsv`,
//! `idioms.tsv`, `modifiers.tsv`, `emoticons.tsv`, `negators.txt`, …; see
//! [`super::data`] for the format); this module holds the lookups.
//!
//! Invariants: lookups take lowercased words with `'` apostrophes (see
//! `text::normalize_word`); every table is static, so results are
//! deterministic. Words that are usually neutral in factual prose ("like",
//! "well", "right", "work") are deliberately left out.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::data::{self, PhraseList, WeightedList, WordList};
use super::text::stem;

/// Opinion words and their valence.
static WORDS: WeightedList = WeightedList::new(|| data::weighted(include_str!("data/lexicon.tsv")));

/// Multi-word expressions whose meaning is not the sum of their words.
/// Matched on consecutive tokens before single words.
pub(crate) static IDIOMS: PhraseList =
    PhraseList::new(|| data::phrases(include_str!("data/idioms.tsv")));

/// Sentence adverbs whose stem looks like an opinion word but which only
/// mark stance ("Honestly, ...", "Seriously, ...").
static NOT_OPINIONS: WordList =
    WordList::new(|| data::words(include_str!("data/not_opinions.txt")));

/// Words that flip (and dampen) the next opinion word: "not good".
static NEGATORS: WordList = WordList::new(|| data::words(include_str!("data/negators.txt")));

/// Scale applied to a negated valence: flips the sign and dampens it, as
/// "not good" is milder than "bad" (VADER uses the same constant).
pub(crate) const NEGATION_SCALAR: f64 = -0.74;

/// Intensifiers (> 1) and diminishers (< 1) and their multipliers.
static MODIFIERS: WeightedList =
    WeightedList::new(|| data::weighted(include_str!("data/modifiers.tsv")));

/// Words after which the following clause carries the main opinion.
pub(crate) static CONTRAST: WordList =
    WordList::new(|| data::words(include_str!("data/contrast.txt")));

/// Words opening a concession, whose clause carries less weight.
pub(crate) static CONCESSIVE: WordList =
    WordList::new(|| data::words(include_str!("data/concessive.txt")));

/// Emoji and ASCII emoticons with a clear polarity.
pub(crate) static EMOTICONS: WeightedList =
    WeightedList::new(|| data::weighted(include_str!("data/emoticons.tsv")));

fn exact_map() -> &'static HashMap<&'static str, f64> {
    static MAP: OnceLock<HashMap<&'static str, f64>> = OnceLock::new();
    MAP.get_or_init(|| WORDS.iter().copied().collect())
}

/// Stem -> valence, for inflections the table does not list ("terribly"
/// finds "terrible"). Built in table order and keeping the first entry, so
/// it is deterministic; it is only used for lookups, never iterated.
fn stem_map() -> &'static HashMap<String, f64> {
    static MAP: OnceLock<HashMap<String, f64>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut m = HashMap::new();
        for &(w, v) in WORDS.iter() {
            m.entry(stem(w)).or_insert(v);
        }
        m
    })
}

/// Valence of an opinion word, by exact form first, then by stem.
/// Negators have none (they act on other words). Modifiers are not listed,
/// except "pretty", which the caller disambiguates ("pretty good" vs "a
/// pretty town").
pub(crate) fn valence(word: &str) -> Option<f64> {
    if is_negator(word) || NOT_OPINIONS.contains(&word) {
        return None;
    }
    exact_map()
        .get(word)
        .copied()
        .or_else(|| stem_map().get(&stem(word)).copied())
}

/// True for negation words, including any "n't" contraction.
pub(crate) fn is_negator(word: &str) -> bool {
    NEGATORS.contains(&word) || word.ends_with("n't")
}

/// Multiplier of an intensifier/diminisher, if `word` is one.
pub(crate) fn modifier(word: &str) -> Option<f64> {
    MODIFIERS.iter().find(|(w, _)| *w == word).map(|&(_, m)| m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_exact_and_inflected_forms() {
        assert_eq!(valence("great"), Some(3.1));
        assert!(valence("terribly").is_some_and(|v| v < 0.0));
        assert!(valence("disappoints").is_some_and(|v| v < 0.0));
        assert_eq!(valence("table"), None);
        assert_eq!(valence("very"), None);
        assert_eq!(valence("not"), None);
    }

    #[test]
    fn modifier_lists() {
        assert!(is_negator("isn't") && is_negator("never"));
        assert!(modifier("extremely").is_some_and(|m| m > 1.0));
        assert!(modifier("slightly").is_some_and(|m| m < 1.0));
    }

    #[test]
    fn no_word_listed_twice() {
        let mut words: Vec<&str> = WORDS.iter().map(|(w, _)| *w).collect();
        words.sort_unstable();
        let before = words.len();
        words.dedup();
        assert_eq!(before, words.len());
    }
}
