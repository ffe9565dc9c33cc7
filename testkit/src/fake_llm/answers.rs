//! Deterministic, model-looking answers for the fake LLM upstream.
//!
//! keel's prompts carry exactly one operation phrase (sentiment, key points,
//! question answering, question generation, otherwise summarize) and wrap the
//! user's text in `---USER TEXT START---` / `---USER TEXT END---` markers.
//! [`answer`] recognises the phrase and derives a plausible reply purely from
//! the prompt, so the same prompt always yields the same answer.
//!
//! Invariants: nothing here panics on any input. Every slice index comes from
//! `str::find`/`char_indices` (so it is a UTF-8 char boundary), every number
//! parsed from the prompt is clamped, and the reply is never empty (an empty
//! reply is reserved for the `empty_rate` fault).

use std::fmt::Write as _;

use serde::Serialize;

const USER_TEXT_START: &str = "---USER TEXT START---";
const USER_TEXT_END: &str = "---USER TEXT END---";
const QUESTION_START: &str = "---USER QUESTION START---";
const QUESTION_END: &str = "---USER QUESTION END---";

const SENTIMENT_PHRASE: &str = "Analyze the sentiment";
const KEY_POINTS_PHRASE: &str = "most important key points";
const ANSWER_PHRASE: &str = "Answer the question";
const QUESTIONS_PHRASE: &str = "Generate ";

/// Defaults used when a count cannot be parsed out of the prompt.
const DEFAULT_ITEMS: usize = 5;
const DEFAULT_SUMMARY_WORDS: usize = 100;
/// Caps keep a hostile prompt ("Generate 999999999 questions") from making
/// the fake server allocate unbounded replies.
const MAX_ITEMS: usize = 100;
const MAX_SUMMARY_WORDS: usize = 10_000;

const POSITIVE_WORDS: &[&str] = &[
    "good",
    "great",
    "excellent",
    "amazing",
    "awesome",
    "love",
    "loved",
    "loves",
    "like",
    "liked",
    "enjoy",
    "enjoyed",
    "happy",
    "glad",
    "pleased",
    "wonderful",
    "fantastic",
    "best",
    "better",
    "brilliant",
    "perfect",
    "nice",
    "superb",
    "positive",
    "delightful",
    "success",
    "successful",
    "recommend",
    "fast",
    "reliable",
];

const NEGATIVE_WORDS: &[&str] = &[
    "bad",
    "terrible",
    "awful",
    "horrible",
    "hate",
    "hated",
    "hates",
    "dislike",
    "sad",
    "angry",
    "poor",
    "worst",
    "worse",
    "disappointing",
    "disappointed",
    "negative",
    "broken",
    "fail",
    "failed",
    "fails",
    "failure",
    "ugly",
    "annoying",
    "slow",
    "problem",
    "problems",
    "bug",
    "buggy",
    "useless",
    "unreliable",
];

/// Small stop-word list so question matching and "salient word" choice look
/// at content words rather than "the" and "is".
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "did", "do", "does", "for", "from",
    "had", "has", "have", "how", "in", "is", "it", "its", "of", "on", "or", "that", "the", "their",
    "there", "they", "this", "to", "was", "were", "what", "when", "where", "which", "who", "why",
    "will", "with", "you", "your",
];

/// The operation a prompt asks for, recognised by its phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Sentiment,
    KeyPoints(usize),
    Answer,
    Questions(usize),
    Summarize(usize),
}

/// Produce the deterministic reply for a prompt.
///
/// `prompt` is every message text concatenated (system + user); `last_message`
/// is the text of the final message, used as the user text when the prompt
/// has no `---USER TEXT START---` marker.
pub(crate) fn answer(prompt: &str, last_message: &str) -> String {
    let text = user_text(prompt).unwrap_or(last_message).trim();
    match detect(prompt) {
        Operation::Sentiment => sentiment(text),
        Operation::KeyPoints(n) => key_points(text, n),
        Operation::Answer => answer_question(text, between(prompt, QUESTION_START, QUESTION_END)),
        Operation::Questions(n) => questions(text, n),
        Operation::Summarize(n) => summarize(text, n),
    }
}

/// Recognise the operation, checking phrases in keel's documented order.
pub(crate) fn detect(prompt: &str) -> Operation {
    if prompt.contains(SENTIMENT_PHRASE) {
        return Operation::Sentiment;
    }
    if let Some(idx) = prompt.find(KEY_POINTS_PHRASE) {
        // "Extract the N most important key points." – N is the word before.
        let n = prompt[..idx]
            .split_whitespace()
            .next_back()
            .and_then(parse_count);
        return Operation::KeyPoints(clamp_count(n, DEFAULT_ITEMS, MAX_ITEMS));
    }
    if prompt.contains(ANSWER_PHRASE) {
        return Operation::Answer;
    }
    if let Some(n) = questions_count(prompt) {
        return Operation::Questions(n);
    }
    Operation::Summarize(summary_words(prompt))
}

/// `Generate N questions` → `Some(N)`; `Generate questions` → default count.
fn questions_count(prompt: &str) -> Option<usize> {
    for (idx, _) in prompt.match_indices(QUESTIONS_PHRASE) {
        let mut words = prompt[idx + QUESTIONS_PHRASE.len()..].split_whitespace();
        let Some(first) = words.next() else {
            continue;
        };
        if first.starts_with("question") {
            return Some(DEFAULT_ITEMS);
        }
        if words.next().is_some_and(|w| w.starts_with("question")) {
            return Some(clamp_count(parse_count(first), DEFAULT_ITEMS, MAX_ITEMS));
        }
    }
    None
}

/// Target length of a summary: the number after "about" in
/// `Summarize the text in about N words.`, else the default.
fn summary_words(prompt: &str) -> usize {
    let from = prompt.find("Summarize").unwrap_or(0);
    let n = prompt[from..].find("about ").and_then(|idx| {
        prompt[from + idx + "about ".len()..]
            .split_whitespace()
            .next()
            .and_then(parse_count)
    });
    clamp_count(n, DEFAULT_SUMMARY_WORDS, MAX_SUMMARY_WORDS)
}

/// Parse a count token such as `3`, `3,` or `(3)`; `None` when no digits or
/// when the number overflows.
fn parse_count(token: &str) -> Option<usize> {
    let digits: String = token.chars().filter(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Zero or unparsable counts fall back to the default; huge ones are capped.
fn clamp_count(n: Option<usize>, default: usize, max: usize) -> usize {
    match n {
        Some(0) | None => default,
        Some(n) => n.min(max),
    }
}

/// The text between two markers, if both are present in order.
fn between<'a>(haystack: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = haystack.find(start)? + start.len();
    let rest = &haystack[from..];
    let to = rest.find(end).unwrap_or(rest.len());
    Some(rest[..to].trim())
}

/// The user text between keel's markers (the last marked block wins, since the
/// user text follows the instructions in keel's prompts).
fn user_text(prompt: &str) -> Option<&str> {
    let from = prompt.rfind(USER_TEXT_START)? + USER_TEXT_START.len();
    let rest = &prompt[from..];
    let to = rest.find(USER_TEXT_END).unwrap_or(rest.len());
    Some(&rest[..to])
}

/// Split text into trimmed sentences, keeping terminal punctuation. A
/// sentence ends at `.`, `!` or `?` followed by whitespace (or the end), or at
/// a line break, so "3.5" and "e.g.x" stay inside one sentence.
pub(crate) fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut iter = text.char_indices().peekable();
    while let Some((idx, ch)) = iter.next() {
        let end = match ch {
            '.' | '!' | '?' => match iter.peek() {
                None => Some(idx + ch.len_utf8()),
                Some((_, next)) if next.is_whitespace() => Some(idx + ch.len_utf8()),
                Some(_) => None,
            },
            '\n' => Some(idx),
            _ => None,
        };
        if let Some(end) = end {
            push_sentence(&mut out, &text[start..end]);
            start = if ch == '\n' { idx + 1 } else { end };
        }
    }
    push_sentence(&mut out, &text[start..]);
    out
}

fn push_sentence<'a>(out: &mut Vec<&'a str>, candidate: &'a str) {
    let trimmed = candidate.trim();
    // A lone "." or "-" is noise, not a sentence.
    if trimmed.chars().any(char::is_alphanumeric) {
        out.push(trimmed);
    }
}

/// Lower-cased words (alphanumeric runs, apostrophes kept inside words).
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty())
}

fn is_content_word(word: &str) -> bool {
    !STOP_WORDS.contains(&word)
}

#[derive(Serialize)]
struct SentimentReply<'a> {
    sentiment: &'a str,
    confidence: f64,
    explanation: String,
}

/// `{"sentiment":...,"confidence":...,"explanation":...}` from word counts.
fn sentiment(text: &str) -> String {
    let (mut pos, mut neg) = (0u32, 0u32);
    for word in words(text) {
        if POSITIVE_WORDS.contains(&word.as_str()) {
            pos += 1;
        } else if NEGATIVE_WORDS.contains(&word.as_str()) {
            neg += 1;
        }
    }
    let label = match pos.cmp(&neg) {
        std::cmp::Ordering::Greater => "positive",
        std::cmp::Ordering::Less => "negative",
        std::cmp::Ordering::Equal => "neutral",
    };
    let total = f64::from(pos + neg);
    // Neutral is a coin flip; otherwise confidence grows with the margin but
    // stays below 1.0 like a real model's self-reported score.
    let raw = if pos == neg {
        0.5
    } else {
        0.6 + 0.39 * f64::from(pos.abs_diff(neg)) / total
    };
    let reply = SentimentReply {
        sentiment: label,
        confidence: (raw * 100.0).round() / 100.0,
        explanation: format!(
            "The text contains {pos} positive and {neg} negative indicator words, so the overall tone is {label}."
        ),
    };
    // Serializing a struct of plain strings and a finite f64 cannot fail; the
    // fallback only exists to honour the no-panic invariant.
    serde_json::to_string(&reply).unwrap_or_else(|_| {
        r#"{"sentiment":"neutral","confidence":0.5,"explanation":"n/a"}"#.to_owned()
    })
}

/// `- <sentence>` lines for the first `n` sentences.
fn key_points(text: &str, n: usize) -> String {
    let all = sentences(text);
    if all.is_empty() {
        return "- The text does not contain any key points.".to_owned();
    }
    let mut out = String::with_capacity(text.len().min(4096));
    for (i, sentence) in all.iter().take(n).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str("- ");
        out.push_str(sentence);
    }
    out
}

/// The sentence of `text` sharing the most content words with the question;
/// ties go to the earlier sentence.
fn answer_question(text: &str, question: Option<&str>) -> String {
    let all = sentences(text);
    let question_words: Vec<String> = question
        .map(|q| words(q).filter(|w| is_content_word(w)).collect())
        .unwrap_or_default();
    let best = all
        .iter()
        .enumerate()
        .map(|(idx, sentence)| {
            let mut seen: Vec<String> = Vec::new();
            for w in words(sentence) {
                if question_words.contains(&w) && !seen.contains(&w) {
                    seen.push(w);
                }
            }
            // Negated index so that max_by_key prefers the earliest sentence.
            ((seen.len(), std::cmp::Reverse(idx)), *sentence)
        })
        .max_by_key(|(score, _)| *score)
        .map(|(_, sentence)| sentence);
    match best {
        Some(sentence) => sentence.to_owned(),
        None => "The text does not contain enough information to answer the question.".to_owned(),
    }
}

/// `n` numbered questions, one per sentence (cycling when the text is short).
fn questions(text: &str, n: usize) -> String {
    let all = sentences(text);
    let mut out = String::new();
    for i in 0..n {
        let topic = if all.is_empty() {
            "the main topic".to_owned()
        } else {
            // On the k-th pass over a short text pick the k-th most salient
            // word, so repeated sentences still give different questions.
            salient_word(all[i % all.len()], i / all.len())
        };
        if i > 0 {
            out.push('\n');
        }
        // Writing into a String cannot fail.
        let _ = write!(out, "{}. What does the text say about {topic}?", i + 1);
    }
    out
}

/// The `rank`-th longest content word of a sentence (longest = most salient
/// by this cheap heuristic); falls back to the longest word, then a filler.
fn salient_word(sentence: &str, rank: usize) -> String {
    let mut candidates: Vec<String> = Vec::new();
    for w in words(sentence) {
        if is_content_word(&w) && !candidates.contains(&w) {
            candidates.push(w);
        }
    }
    // Stable sort keeps first-occurrence order among equal lengths.
    candidates.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    let idx = if rank < candidates.len() { rank } else { 0 };
    candidates
        .into_iter()
        .nth(idx)
        .unwrap_or_else(|| "this part".to_owned())
}

/// The first `n` words of the text, ending with a single period.
fn summarize(text: &str, n: usize) -> String {
    let mut out = String::with_capacity(text.len().min(n.saturating_mul(8)));
    for (i, word) in text.split_whitespace().take(n).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    let kept = out
        .trim_end_matches(|c: char| c.is_ascii_punctuation() && c != ')' && c != '"')
        .len();
    out.truncate(kept);
    if out.is_empty() {
        return "The text is empty.".to_owned();
    }
    out.push('.');
    out
}

/// Rough token estimate (≈ 4 characters per token, at least 1 for non-empty
/// text) – good enough for usage numbers and benchmarks.
pub(crate) fn estimate_tokens(text: &str) -> u64 {
    let chars = text.chars().count() as u64;
    chars.div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(instruction: &str, text: &str) -> String {
        format!("{instruction}\n{USER_TEXT_START}\n{text}\n{USER_TEXT_END}")
    }

    #[test]
    fn detects_operations_in_order() {
        assert_eq!(
            detect("Analyze the sentiment of the text."),
            Operation::Sentiment
        );
        assert_eq!(
            detect("Extract the 3 most important key points."),
            Operation::KeyPoints(3)
        );
        assert_eq!(
            detect("Answer the question using the text."),
            Operation::Answer
        );
        assert_eq!(
            detect("Generate 4 questions about the text."),
            Operation::Questions(4)
        );
        assert_eq!(
            detect("Summarize the text in about 20 words."),
            Operation::Summarize(20)
        );
        assert_eq!(detect("whatever"), Operation::Summarize(100));
        assert_eq!(
            detect("Extract the most important key points."),
            Operation::KeyPoints(5)
        );
        assert_eq!(
            detect("Generate 99999999999999999999999 questions"),
            Operation::Questions(5)
        );
        assert_eq!(
            detect("Generate 1000 questions"),
            Operation::Questions(MAX_ITEMS)
        );
    }

    #[test]
    fn sentences_split_on_terminators_and_lines() {
        let s = sentences("Pi is 3.14 here. Really? Yes!\nNew line without stop");
        assert_eq!(
            s,
            vec![
                "Pi is 3.14 here.",
                "Really?",
                "Yes!",
                "New line without stop"
            ]
        );
        assert!(sentences("  ...  ").is_empty());
    }

    #[test]
    fn sentiment_counts_words() {
        let pos: serde_json::Value = serde_json::from_str(&answer(
            &prompt("Analyze the sentiment", "I love it, great!"),
            "",
        ))
        .unwrap();
        assert_eq!(pos["sentiment"], "positive");
        let conf = pos["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&conf));
        let neg: serde_json::Value = serde_json::from_str(&answer(
            &prompt("Analyze the sentiment", "Terrible, slow and broken."),
            "",
        ))
        .unwrap();
        assert_eq!(neg["sentiment"], "negative");
        let neutral: serde_json::Value =
            serde_json::from_str(&answer(&prompt("Analyze the sentiment", "A table."), ""))
                .unwrap();
        assert_eq!(neutral["sentiment"], "neutral");
        assert_eq!(neutral["confidence"], 0.5);
    }

    #[test]
    fn summarize_takes_first_words() {
        let out = answer(
            &prompt(
                "Summarize the text in about 4 words.",
                "One two three, four five six.",
            ),
            "",
        );
        assert_eq!(out, "One two three, four.");
        assert_eq!(
            answer(&prompt("Summarize the text in about 4 words.", ""), ""),
            "The text is empty."
        );
    }

    #[test]
    fn falls_back_to_last_message() {
        assert_eq!(
            answer("Summarize the text in about 2 words.", "alpha beta gamma"),
            "alpha beta."
        );
    }

    #[test]
    fn answers_with_best_matching_sentence() {
        let p = format!(
            "Answer the question.\n{QUESTION_START}\nWhere does the cat sleep?\n{QUESTION_END}\n{}",
            prompt(
                "",
                "Dogs bark loudly. The cat sleeps on the warm sofa. Birds sing."
            )
        );
        // "sleep" vs "sleeps" differ, but "cat" matches only one sentence.
        assert_eq!(answer(&p, ""), "The cat sleeps on the warm sofa.");
    }

    #[test]
    fn questions_are_numbered_and_cycle() {
        let out = answer(
            &prompt(
                "Generate 3 questions about the text.",
                "Rust guarantees memory safety. Cargo builds.",
            ),
            "",
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "1. What does the text say about guarantees?");
        assert!(lines[2].starts_with("3. What does the text say about "));
        assert_ne!(lines[0], lines[2]);
    }

    #[test]
    fn never_panics_on_odd_input() {
        let odd = [
            "",
            "é",
            "Generate",
            "Generate ",
            "Generate 𝔘 questions",
            "Extract the ünïcødé most important key points",
            "most important key points",
            "Summarize about",
            "Summarize the text in about -3 words.",
            "---USER TEXT START---",
            "---USER TEXT END------USER TEXT START---日本語。テキスト!",
            "Answer the question ---USER QUESTION START---",
            "Answer the question ---USER QUESTION END------USER QUESTION START---？",
            "Analyze the sentiment 😀😀 bad",
        ];
        for p in odd {
            for last in ["", "ß.", "a\u{0301}!?"] {
                let out = answer(p, last);
                assert!(!out.is_empty(), "empty answer for {p:?}/{last:?}");
            }
        }
    }

    #[test]
    fn token_estimate() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abc"), 1);
        assert_eq!(estimate_tokens("abcdefgh"), 2);
    }
}
