//! Extractive question answering: BM25 over the text's sentences.
//!
//! The question is reduced to stemmed content terms; every sentence is a
//! BM25 "document" (k1 = 1.2, b = 0.75). A light question-type boost favours
//! sentences holding the kind of fact asked for: dates for "when", numbers
//! for "how many/much", capitalised names for "who", places for "where",
//! causal connectives for "why". The passage is the best sentence, extended
//! by a neighbour when one clearly continues it ("It was completed ...").
//!
//! Invariants: `sentence_index` indexes `split_sentences(text)`; confidence
//! is in 0.0..=1.0 and below 0.3 whenever no question term occurs in the
//! text; ties go to the earlier sentence; deterministic.

use std::collections::{BTreeMap, BTreeSet};

use super::data::{self, WordList};
use super::text::{MONTHS, WEEKDAYS, bare, content_terms, is_stopword, split_sentences, tokenize};

/// The answer to a question about a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The best passage: one sentence, or that sentence plus the neighbour
    /// that clearly continues it.
    pub text: String,
    /// 0.0..=1.0, from the coverage of question terms and the BM25 margin
    /// over the runner-up; below 0.3 when no question term matches.
    pub confidence: f64,
    /// Index of the chosen sentence in the sentence split of the text.
    pub sentence_index: usize,
}

const K1: f64 = 1.2;
const B: f64 = 0.75;
/// Relative score bonus for a sentence holding the kind of fact asked for.
const TYPE_BOOST: f64 = 0.35;

/// What kind of fact the question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Time,
    Quantity,
    Person,
    Place,
    Reason,
    Anything,
}

/// Answers `question` from `text` with the single best passage.
pub fn answer_question(text: &str, question: &str) -> Answer {
    let sentences = split_sentences(text);
    if sentences.is_empty() {
        return Answer {
            text: String::new(),
            confidence: 0.0,
            sentence_index: 0,
        };
    }
    let docs: Vec<Vec<String>> = sentences.iter().map(|s| content_terms(s)).collect();
    let query: Vec<String> = content_terms(question)
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let wanted = wanted(question);

    let n = sentences.len() as f64;
    let mut df: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &docs {
        for t in d.iter().map(String::as_str).collect::<BTreeSet<_>>() {
            *df.entry(t).or_default() += 1;
        }
    }
    // Smoothed BM25 idf, always positive even for terms in every sentence.
    let idf = |t: &str| {
        let d = df.get(t).copied().unwrap_or(0) as f64;
        (1.0 + (n - d + 0.5) / (d + 0.5)).ln()
    };
    let avgdl = (docs.iter().map(Vec::len).sum::<usize>() as f64 / n).max(1.0);

    let bm25: Vec<f64> = docs
        .iter()
        .map(|d| {
            let dl = d.len() as f64;
            query
                .iter()
                .map(|q| {
                    let tf = d.iter().filter(|t| *t == q).count() as f64;
                    if tf == 0.0 {
                        0.0
                    } else {
                        idf(q) * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * dl / avgdl))
                    }
                })
                .sum()
        })
        .collect();
    let has_feature: Vec<bool> = sentences.iter().map(|s| holds(wanted, s)).collect();
    let boosted: Vec<f64> = bm25
        .iter()
        .zip(&has_feature)
        .map(|(score, f)| {
            if *f {
                score * (1.0 + TYPE_BOOST)
            } else {
                *score
            }
        })
        .collect();

    let any_match = bm25.iter().any(|s| *s > 0.0);
    let best = if any_match {
        argmax(&boosted)
    } else {
        // Nothing matched: a sentence of the right kind, else the lead.
        has_feature.iter().position(|f| *f).unwrap_or(0)
    };
    let runner_up = boosted
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != best)
        .map(|(_, s)| *s)
        .fold(0.0, f64::max);

    let (start, end) = extend_passage(&sentences, &docs, &query, &has_feature, wanted, best);
    let passage = sentences[start..=end].join(" ");

    let confidence = if query.is_empty() || !any_match {
        // Without matching terms any pick is a guess.
        if has_feature[best] && wanted != Wanted::Anything {
            0.2
        } else {
            0.05
        }
    } else {
        let covered: BTreeSet<&String> = docs[start..=end].iter().flatten().collect();
        let total: f64 = query.iter().map(|q| idf(q)).sum();
        let hit: f64 = query
            .iter()
            .filter(|q| covered.contains(q))
            .map(|q| idf(q))
            .sum();
        let coverage = if total > 0.0 { hit / total } else { 0.0 };
        let margin = if boosted[best] > 0.0 {
            ((boosted[best] - runner_up) / boosted[best]).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let type_bonus = if wanted != Wanted::Anything && (start..=end).any(|i| has_feature[i]) {
            0.1
        } else {
            0.0
        };
        // Capped below 1: term overlap is never proof of an answer.
        (0.15 + 0.55 * coverage + 0.2 * margin + type_bonus).min(0.95)
    }
    .clamp(0.0, 1.0);

    Answer {
        text: passage,
        confidence,
        sentence_index: best,
    }
}

/// Index of the largest score; the earliest wins ties.
fn argmax(scores: &[f64]) -> usize {
    let mut best = 0;
    for (i, s) in scores.iter().enumerate() {
        if *s > scores[best] {
            best = i;
        }
    }
    best
}

/// The question type, from its wh-word.
fn wanted(question: &str) -> Wanted {
    let tokens = tokenize(question);
    let has = |w: &str| tokens.iter().any(|t| t == w);
    let pair = |a: &str, b: &str| tokens.windows(2).any(|p| p[0] == a && p[1] == b);
    if has("when")
        || pair("what", "year")
        || pair("which", "year")
        || pair("what", "date")
        || pair("what", "time")
    {
        Wanted::Time
    } else if pair("how", "many")
        || pair("how", "much")
        || pair("how", "long")
        || pair("how", "old")
        || pair("how", "far")
        || pair("what", "percentage")
        || pair("what", "number")
    {
        Wanted::Quantity
    } else if has("who") || has("whom") || has("whose") {
        Wanted::Person
    } else if has("where") {
        Wanted::Place
    } else if has("why") {
        Wanted::Reason
    } else {
        Wanted::Anything
    }
}

static TIME_WORDS: WordList = WordList::new(|| data::words(include_str!("data/qa_time_words.txt")));
static NUMBER_WORDS: WordList =
    WordList::new(|| data::words(include_str!("data/number_words.txt")));
static REASON_WORDS: WordList =
    WordList::new(|| data::words(include_str!("data/reason_words.txt")));
static TITLES: WordList = WordList::new(|| data::words(include_str!("data/titles.txt")));

/// Whether `sentence` holds the kind of fact `wanted` asks for.
fn holds(wanted: Wanted, sentence: &str) -> bool {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    let bares: Vec<String> = words.iter().map(|w| bare(w)).collect();
    let capitalised_later = |i: usize| {
        i > 0
            && words[i]
                .chars()
                .find(|c| c.is_alphabetic())
                .is_some_and(char::is_uppercase)
            && !is_stopword(&bares[i])
    };
    match wanted {
        Wanted::Time => bares.iter().enumerate().any(|(i, b)| {
            let year = b.len() == 4 && b.bytes().all(|c| c.is_ascii_digit());
            // "may" is a month only when written like one (it is usually the verb).
            let month = if b == "may" {
                capitalised_later(i)
            } else {
                MONTHS.contains(&b.as_str())
            };
            year || month || WEEKDAYS.contains(&b.as_str()) || TIME_WORDS.contains(&b.as_str())
        }),
        Wanted::Quantity => bares
            .iter()
            .any(|b| b.chars().any(|c| c.is_ascii_digit()) || NUMBER_WORDS.contains(&b.as_str())),
        Wanted::Person => {
            (0..words.len()).any(|i| capitalised_later(i) || TITLES.contains(&bares[i].as_str()))
        }
        Wanted::Place => (1..words.len()).any(|i| {
            matches!(bares[i - 1].as_str(), "in" | "at" | "near" | "from" | "to")
                && capitalised_later(i)
        }),
        Wanted::Reason => bares.iter().any(|b| REASON_WORDS.contains(&b.as_str())),
        Wanted::Anything => false,
    }
}

/// Pronouns and connectives that tie a sentence to the one before it.
static CONTINUERS: WordList = WordList::new(|| data::words(include_str!("data/qa_continuers.txt")));

/// The inclusive sentence range of the passage around `best`: the previous
/// sentence is prepended when `best` opens with a pronoun and the previous
/// one holds question terms `best` lacks; the next one is appended when it
/// opens with a continuer and adds missing terms or the wanted kind of fact,
/// or when it adds both a missing term and the missing kind of fact.
fn extend_passage(
    sentences: &[String],
    docs: &[Vec<String>],
    query: &[String],
    has_feature: &[bool],
    wanted: Wanted,
    best: usize,
) -> (usize, usize) {
    let opens_with_continuer = |i: usize| {
        sentences[i]
            .split_whitespace()
            .next()
            .is_some_and(|w| CONTINUERS.contains(&bare(w).as_str()))
    };
    let adds_terms = |i: usize| {
        query
            .iter()
            .any(|q| docs[i].contains(q) && !docs[best].contains(q))
    };
    let mut start = best;
    let mut end = best;
    if best > 0 && opens_with_continuer(best) && adds_terms(best - 1) {
        start = best - 1;
    } else if best + 1 < sentences.len() {
        let next = best + 1;
        let supplies_fact = wanted != Wanted::Anything && !has_feature[best] && has_feature[next];
        // A continuation ("It ...") that adds something, or any next
        // sentence that holds both a missing term and the missing fact.
        if (opens_with_continuer(next) && (adds_terms(next) || supplies_fact))
            || (adds_terms(next) && supplies_fact)
        {
            end = next;
        }
    }
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
The Harbor Bridge connects the old town with the northern districts. \
Construction began after a long debate in the city council. \
The bridge was completed in 1932. \
Chief engineer Anna Keller designed its steel arch. \
About 160,000 vehicles cross the bridge every day. \
The bridge was closed for repairs because salt water had corroded the cables. \
Tourists often climb the arch for the view over the harbor.";

    #[test]
    fn finds_the_date() {
        let a = answer_question(TEXT, "When was the bridge completed?");
        assert_eq!(a.text, "The bridge was completed in 1932.");
        assert_eq!(a.sentence_index, 2);
        assert!(a.confidence > 0.5, "{a:?}");
    }

    #[test]
    fn finds_the_person() {
        let a = answer_question(TEXT, "Who designed the steel arch?");
        assert_eq!(a.sentence_index, 3, "{a:?}");
        assert!(a.text.contains("Anna Keller"));
    }

    #[test]
    fn finds_the_quantity() {
        let a = answer_question(TEXT, "How many vehicles cross the bridge each day?");
        assert_eq!(a.sentence_index, 4, "{a:?}");
        let a = answer_question(TEXT, "Why was the bridge closed?");
        assert_eq!(a.sentence_index, 5, "{a:?}");
    }

    #[test]
    fn unrelated_question_has_low_confidence() {
        let a = answer_question(TEXT, "What is the capital of Mongolia?");
        assert!(a.confidence < 0.3, "{a:?}");
        let related = answer_question(TEXT, "When was the bridge completed?");
        assert!(related.confidence > a.confidence);
    }

    #[test]
    fn extends_with_a_continuing_sentence() {
        let text = "The museum was founded by Clara Holt. It opened to the public in 1911. Visitors love the gardens.";
        let a = answer_question(text, "When did the museum open?");
        assert_eq!(
            a.text,
            "The museum was founded by Clara Holt. It opened to the public in 1911."
        );
        assert_eq!(a.sentence_index, 1);
    }

    #[test]
    fn index_matches_split() {
        let a = answer_question(TEXT, "Where do tourists climb?");
        assert_eq!(
            split_sentences(TEXT)[a.sentence_index],
            "Tourists often climb the arch for the view over the harbor."
        );
    }

    #[test]
    fn no_panic_on_odd_input() {
        let long = "x".repeat(10_000);
        for t in [
            "aaaaaaaaaaaa",
            long.as_str(),
            "東京は日本の首都です。人口はとても多いです。😀",
            "!!!!!!!!!!!!",
            "- a\n- b\n",
        ] {
            for q in ["What?", "", "東京はどこ？", "how many aaaaaaaaaaaa"] {
                let a = answer_question(t, q);
                assert!((0.0..=1.0).contains(&a.confidence));
                assert!(a.sentence_index < split_sentences(t).len().max(1));
            }
        }
    }
}
