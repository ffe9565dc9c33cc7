//! Extractive summarization: rank sentences by salience, pick the best ones
//! that fit the word budget, and print them in source order.
//!
//! Invariants: the result never has more than `max_words` whitespace-separated
//! words (0 is treated as 1); it is non-empty whenever the text has any
//! non-whitespace character; near-duplicate sentences are never both chosen.

use super::salience::{jaccard, rank, sentence_scores};
use super::text::{content_terms, split_sentences, truncate_words, word_count};

/// Sentences at least this similar (Jaccard on content stems) count as
/// repeats; only the better-ranked one is kept.
const DUPLICATE_SIMILARITY: f64 = 0.6;

/// Extractive summary of at most `max_words` words (0 counts as 1).
///
/// Sentences are ranked by TF-IDF centrality with a small bonus for the
/// opening ones, chosen best-first while they fit the budget, and output in
/// source order. If even the best sentence is longer than the budget (or
/// only scraps fit), the best sentence is truncated at a word boundary and
/// ends with "…".
pub fn summarize(text: &str, max_words: usize) -> String {
    let budget = max_words.max(1);
    let sentences = split_sentences(text);
    if sentences.is_empty() {
        return truncate_words(text, budget);
    }
    let terms: Vec<Vec<String>> = sentences.iter().map(|s| content_terms(s)).collect();
    let order = rank(&sentence_scores(&sentences, &terms));

    let mut chosen: Vec<usize> = Vec::new();
    let mut used = 0;
    for &i in &order {
        let len = word_count(&sentences[i]);
        if used + len > budget {
            continue;
        }
        if chosen
            .iter()
            .any(|&c| jaccard(&terms[c], &terms[i]) > DUPLICATE_SIMILARITY)
        {
            continue;
        }
        chosen.push(i);
        used += len;
        if used == budget {
            break;
        }
    }

    // `order` is a permutation of the non-empty sentence list, so it has a
    // first element; fall back to 0 defensively anyway.
    let best = order.first().copied().unwrap_or(0);
    // When the top sentence does not fit and only minor sentences filled
    // less than half the budget, the start of the top sentence says more.
    if chosen.is_empty() || (!chosen.contains(&best) && used * 2 < budget) {
        return truncate_words(&sentences[best], budget);
    }
    chosen.sort_unstable();
    chosen
        .iter()
        .map(|&i| sentences[i].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARTICLE: &str = "\
Riverton launched a new solar energy program this spring. \
The solar program will install solar panels on every public school and library in Riverton. \
City officials said the weather in April was unusually mild. \
Under the solar energy program, Riverton residents can also lease rooftop solar panels at low cost. \
The local bakery celebrated its tenth anniversary with free cupcakes. \
Traffic on Main Street was heavy during the parade. \
A new dog park opened near the river last weekend. \
The high school football team won its third game in a row. \
Several residents complained about potholes on Elm Avenue. \
The library extended its opening hours on Thursdays. \
Officials expect the solar energy program to cut Riverton's electricity costs by a third. \
The museum will host an exhibit of local painters in June. \
A farmers market now runs every Saturday morning. \
The council approved a budget for new street lights. \
Volunteers planted two hundred trees along the highway. \
The fire department held an open house for families. \
Bus routes will change slightly next month. \
A jazz festival is planned for late August. \
The city pool will reopen after repairs. \
Local students won a regional science competition.";

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    #[test]
    fn keeps_central_sentences_within_budget_in_source_order() {
        let summary = summarize(ARTICLE, 60);
        assert!(words(&summary) <= 60, "{summary}");
        let central = [
            "The solar program will install solar panels on every public school and library in Riverton.",
            "Under the solar energy program, Riverton residents can also lease rooftop solar panels at low cost.",
            "Officials expect the solar energy program to cut Riverton's electricity costs by a third.",
        ];
        let mut last = 0;
        for c in central {
            let pos = summary
                .find(c)
                .unwrap_or_else(|| panic!("missing {c:?} in {summary:?}"));
            assert!(pos >= last, "not in source order: {summary}");
            last = pos;
        }
        assert!(!summary.contains("cupcakes"));
    }

    #[test]
    fn tiny_budget_truncates_best_sentence() {
        for budget in [0, 1, 3, 5] {
            let summary = summarize(ARTICLE, budget);
            assert!(!summary.is_empty());
            assert!(words(&summary) <= budget.max(1), "{budget}: {summary}");
            assert!(summary.ends_with('…'), "{summary}");
        }
    }

    #[test]
    fn short_text_is_returned_whole() {
        let text = "The meeting moved to Tuesday. Bring the reports.";
        assert_eq!(summarize(text, 50), text);
    }

    #[test]
    fn repeated_sentence_is_not_duplicated() {
        let text = "The bridge opened in 1932 after years of work. The bridge opened in 1932 after years of work! \
                    Engineers praised its steel design.";
        let summary = summarize(text, 100);
        assert_eq!(summary.matches("opened").count(), 1, "{summary}");
    }

    #[test]
    fn no_panic_and_non_empty_on_odd_input() {
        let long_word = "x".repeat(10_000);
        let cjk = "東京は日本の首都です。人口はとても多いです。😀😀 emoji too";
        for text in [
            "aaaaaaaaaaaa",
            long_word.as_str(),
            cjk,
            "!!!!!!!!!!!!",
            "- one\n- two\n- three\n",
        ] {
            for budget in [0, 1, 7, 1000] {
                let s = summarize(text, budget);
                assert!(!s.is_empty());
                assert!(words(&s) <= budget.max(1));
            }
        }
    }
}
