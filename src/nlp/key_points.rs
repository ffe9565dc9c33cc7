//! Key points: the most salient distinct sentences of a text, most important
//! first, chosen with Maximal Marginal Relevance so that each new point adds
//! something the previous ones did not say.
//!
//! Invariants: at most `max_points` points (0 counts as 1); no two points are
//! near-duplicates (Jaccard on content stems above 0.6) or equal ignoring
//! case and punctuation; each point is trimmed; the list is empty only when
//! the text has no letter or digit. A text that is one long sentence is cut
//! into clauses first so it can still yield several points.

use super::salience::{jaccard, rank, sentence_scores};
use super::text::{bare, capitalize_first, content_terms, split_sentences, word_count};

/// Points at least this similar to a chosen one are skipped.
const DUPLICATE_SIMILARITY: f64 = 0.6;
/// MMR trade-off between salience and novelty.
const LAMBDA: f64 = 0.75;
/// A single sentence longer than this is split into clauses.
const LONG_SENTENCE_WORDS: usize = 20;

/// Up to `max_points` key points, most important first (see module docs).
pub fn key_points(text: &str, max_points: usize) -> Vec<String> {
    let max = max_points.max(1);
    if !text.chars().any(char::is_alphanumeric) {
        return Vec::new();
    }
    let mut units = split_sentences(text);
    if units.len() == 1 && word_count(&units[0]) > LONG_SENTENCE_WORDS {
        let clauses = split_clauses(&units[0]);
        if clauses.len() >= 2 {
            units = clauses;
        }
    }
    let terms: Vec<Vec<String>> = units.iter().map(|u| content_terms(u)).collect();
    let scores = sentence_scores(&units, &terms);
    let top = scores.iter().copied().fold(0.0_f64, f64::max);
    let norm = |i: usize| if top > 0.0 { scores[i] / top } else { 0.0 };
    // Units without content words (e.g. "Yes!") only qualify when nothing
    // else does.
    let has_content = terms.iter().any(|t| !t.is_empty());
    let mut candidates: Vec<usize> = rank(&scores)
        .into_iter()
        .filter(|&i| !has_content || !terms[i].is_empty())
        .collect();

    let mut chosen: Vec<usize> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    while chosen.len() < max && !candidates.is_empty() {
        // Candidates are in rank order, so the first maximum is also the
        // tie-break by rank (then source order).
        let mut best: Option<(usize, f64)> = None;
        let mut rejected: Vec<usize> = Vec::new();
        for (pos, &i) in candidates.iter().enumerate() {
            let max_sim = chosen
                .iter()
                .map(|&c| jaccard(&terms[c], &terms[i]))
                .fold(0.0, f64::max);
            let key = dedup_key(&units[i]);
            if max_sim > DUPLICATE_SIMILARITY || keys.contains(&key) {
                rejected.push(pos);
                continue;
            }
            let value = LAMBDA * norm(i) - (1.0 - LAMBDA) * max_sim;
            if best.is_none_or(|(_, v)| value > v) {
                best = Some((pos, value));
            }
        }
        let Some((pos, _)) = best else { break };
        let i = candidates[pos];
        chosen.push(i);
        keys.push(dedup_key(&units[i]));
        rejected.push(pos);
        rejected.sort_unstable();
        for p in rejected.into_iter().rev() {
            candidates.remove(p);
        }
    }
    chosen
        .into_iter()
        .map(|i| units[i].trim().to_string())
        .collect()
}

/// Lowercase words only: two points with the same key say the same thing.
fn dedup_key(s: &str) -> String {
    s.split_whitespace()
        .map(bare)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Conjunctions that start a new clause when they follow a word.
const CLAUSE_STARTERS: &[&str] = &["but", "whereas", "while", "although", "because", "so"];
/// Words opening a relative clause, which stays with its antecedent.
const RELATIVES: &[&str] = &["which", "who", "whom", "whose", "that", "where"];
/// Leading words dropped from a clause so it reads as a sentence.
const LEADING_JOINERS: &[&str] = &["and", "but", "or", "so", "yet", "whereas", "while", "then"];

/// Cuts one long sentence into clean, sentence-like clauses at `,;:` and
/// before conjunctions; clauses under four words are merged into a
/// neighbour so no point is a meaningless fragment.
fn split_clauses(sentence: &str) -> Vec<String> {
    let mut parts: Vec<Vec<&str>> = vec![Vec::new()];
    for w in sentence.split_whitespace() {
        let starts_clause = CLAUSE_STARTERS.contains(&bare(w).as_str());
        // ", and although ...": the joiner stays with the clause it opens.
        let open = parts.last().is_some_and(|p| {
            !p.is_empty()
                && !p
                    .iter()
                    .all(|x| LEADING_JOINERS.contains(&bare(x).as_str()))
        });
        if starts_clause && open {
            parts.push(Vec::new());
        }
        if let Some(p) = parts.last_mut() {
            p.push(w);
        }
        if w.ends_with([',', ';', ':']) || w == "—" || w == "–" {
            parts.push(Vec::new());
        }
    }
    let mut merged: Vec<Vec<&str>> = Vec::new();
    for p in parts.into_iter().filter(|p| !p.is_empty()) {
        // A relative clause ("..., which ...") cannot stand on its own.
        let relative = p
            .first()
            .is_some_and(|w| RELATIVES.contains(&bare(w).as_str()));
        match merged.last_mut() {
            Some(last) if last.len() < 4 || p.len() < 4 || relative => last.extend(p),
            _ => merged.push(p),
        }
    }
    merged
        .into_iter()
        .map(|p| clean_clause(&p))
        .filter(|c| !c.is_empty())
        .collect()
}

/// Joins clause words, drops a leading joiner and dangling punctuation,
/// capitalises and ends with a period.
fn clean_clause(words: &[&str]) -> String {
    let mut ws = words;
    if ws.len() > 1 && LEADING_JOINERS.contains(&bare(ws[0]).as_str()) {
        ws = &ws[1..];
    }
    let joined = ws.join(" ");
    let body = joined.trim_end_matches([',', ';', ':', '—', '–', '-', ' ']);
    if body.is_empty() {
        return String::new();
    }
    let mut out = capitalize_first(body);
    if !out.ends_with(['.', '!', '?', '…']) {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
The city council approved a new recycling program on Tuesday. \
The recycling program will collect plastic, glass and paper from every household each week. \
The city council approved a new recycling program on Tuesday! \
Residents will receive two free recycling bins by March. \
Officials hope the recycling program cuts landfill waste by half. \
Some residents worried about the cost of the recycling program. \
The weather was sunny during the council meeting.";

    #[test]
    fn respects_limit_and_order_of_importance() {
        let points = key_points(TEXT, 3);
        assert_eq!(points.len(), 3);
        assert!(points.iter().all(|p| p.contains("recycling")), "{points:?}");
        assert!(points.iter().all(|p| p.trim_end() == p));
        assert_eq!(key_points(TEXT, 0).len(), 1);
    }

    #[test]
    fn removes_near_duplicates() {
        let points = key_points(TEXT, 10);
        let council = points
            .iter()
            .filter(|p| p.contains("council approved"))
            .count();
        assert_eq!(council, 1, "{points:?}");
        for (i, a) in points.iter().enumerate() {
            for b in &points[i + 1..] {
                assert!(jaccard(&content_terms(a), &content_terms(b)) <= DUPLICATE_SIMILARITY);
            }
        }
        assert!(points.len() <= 6);
    }

    #[test]
    fn single_long_sentence_yields_clauses() {
        let text = "The new library has a large reading room for students, a rooftop garden with solar panels, \
                    and a children's wing with thousands of picture books, but the parking lot is still unfinished.";
        let points = key_points(text, 4);
        assert!(points.len() >= 2, "{points:?}");
        for p in &points {
            assert!(
                p.ends_with('.') && p.chars().next().is_some_and(char::is_uppercase),
                "{p}"
            );
        }
    }

    #[test]
    fn empty_only_without_words() {
        assert!(key_points("!!!!!!!!!!!!", 3).is_empty());
        assert_eq!(key_points("aaaaaaaaaaaa", 3), vec!["aaaaaaaaaaaa"]);
        let bullets = key_points(
            "- buy milk today\n- call the bank\n- book flights to Rome\n",
            5,
        );
        assert_eq!(bullets.len(), 3);
        assert!(bullets.iter().all(|b| !b.starts_with('-')));
    }

    #[test]
    fn no_panic_on_odd_input() {
        let long = "x".repeat(10_000);
        let words = "word ".repeat(2_000);
        for t in [
            long.as_str(),
            words.as_str(),
            "東京は日本の首都です。人口はとても多いです。😀 ok",
            "a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t, u",
        ] {
            let points = key_points(t, 5);
            assert!(!points.is_empty() && points.len() <= 5);
        }
    }
}
