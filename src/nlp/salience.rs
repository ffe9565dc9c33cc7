//! Sentence salience shared by summaries, key points and questions: a
//! TF-IDF "centrality" score per sentence, a stable ranking, and a Jaccard
//! similarity used to drop near-duplicates.
//!
//! Invariants: scores are finite and non-negative; rankings are total and
//! deterministic (score descending, then sentence index ascending), so the
//! output never depends on hash or sort instability.

use std::collections::{BTreeMap, BTreeSet};

/// Weight of every distinct term across a document whose sentences have the
/// given (stemmed) terms: `(tf - 0.5) * idf`. Terms repeated across the text
/// are what it is "about"; the `- 0.5` keeps one-off words from dominating
/// just because they are rare.
pub(crate) fn term_weights(terms: &[Vec<String>]) -> BTreeMap<String, f64> {
    let mut tf: BTreeMap<&str, usize> = BTreeMap::new();
    let mut df: BTreeMap<&str, usize> = BTreeMap::new();
    for sentence in terms {
        for t in sentence {
            *tf.entry(t.as_str()).or_default() += 1;
        }
        let distinct: BTreeSet<&str> = sentence.iter().map(String::as_str).collect();
        for t in distinct {
            *df.entry(t).or_default() += 1;
        }
    }
    let n = terms.len().max(1) as f64;
    tf.into_iter()
        .map(|(t, count)| {
            let d = df.get(t).copied().unwrap_or(1).max(1) as f64;
            let idf = 1.0 + (n / d).ln();
            (t.to_string(), (count as f64 - 0.5) * idf)
        })
        .collect()
}

/// Salience of each sentence: the summed weight of its distinct terms,
/// normalised by the square root of their number (so long sentences gain,
/// but sub-linearly), with a small bonus for the opening sentences (leads
/// tend to state the topic) and a penalty for fragments and questions.
pub(crate) fn sentence_scores(sentences: &[String], terms: &[Vec<String>]) -> Vec<f64> {
    let weights = term_weights(terms);
    sentences
        .iter()
        .zip(terms)
        .enumerate()
        .map(|(i, (sentence, ts))| {
            let distinct: BTreeSet<&str> = ts.iter().map(String::as_str).collect();
            if distinct.is_empty() {
                return 0.0;
            }
            let sum: f64 = distinct
                .iter()
                .map(|t| weights.get(*t).copied().unwrap_or(0.0))
                .sum();
            let mut score = sum / (distinct.len() as f64).sqrt();
            score *= 1.0 + 0.2 / (1.0 + i as f64);
            if distinct.len() < 3 {
                score *= 0.6;
            }
            if sentence.trim_end().ends_with('?') {
                score *= 0.8;
            }
            score.max(0.0)
        })
        .collect()
}

/// Indices sorted by score descending; ties keep source order.
pub(crate) fn rank(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

/// Jaccard similarity of two term lists taken as sets; 0.0 if either is
/// empty (nothing to compare is not evidence of duplication).
pub(crate) fn jaccard(a: &[String], b: &[String]) -> f64 {
    let sa: BTreeSet<&str> = a.iter().map(String::as_str).collect();
    let sb: BTreeSet<&str> = b.iter().map(String::as_str).collect();
    if sa.is_empty() || sb.is_empty() {
        return 0.0;
    }
    let inter = sa.intersection(&sb).count() as f64;
    let union = sa.union(&sb).count() as f64;
    inter / union
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn central_sentence_outranks_peripheral() {
        let sentences: Vec<String> = [
            "solar panels city",
            "solar panels roofs city",
            "weather was mild",
            "solar city plan",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let ts: Vec<Vec<String>> = sentences
            .iter()
            .map(|s| s.split(' ').map(str::to_string).collect())
            .collect();
        let order = rank(&sentence_scores(&sentences, &ts));
        assert_eq!(*order.last().unwrap_or(&0), 2);
    }

    #[test]
    fn rank_is_stable_on_ties() {
        assert_eq!(rank(&[1.0, 2.0, 1.0, 2.0]), vec![1, 3, 0, 2]);
    }

    #[test]
    fn jaccard_basics() {
        assert_eq!(jaccard(&terms(&["a", "b"]), &terms(&["a", "b"])), 1.0);
        assert_eq!(jaccard(&terms(&["a"]), &terms(&[])), 0.0);
        assert!((jaccard(&terms(&["a", "b"]), &terms(&["b", "c"])) - 1.0 / 3.0).abs() < 1e-9);
    }
}
