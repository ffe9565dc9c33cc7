//! Lexicon-based sentiment analysis in the style of VADER.
//!
//! Every opinion word (or idiom, or emoji) found becomes a *cue* whose
//! valence is adjusted by the words around it: a negator up to three words
//! before flips and dampens it, intensifiers/diminishers scale it, a
//! contrast ("but", "however") halves what comes before and boosts what
//! comes after, a concession ("although ...") is halved, exclamation marks
//! and ALL-CAPS add a little. Modifiers never reach across clause
//! punctuation. The net valence is normalised to -1..=1, damped for long
//! texts so one stray word does not colour a whole article.
//!
//! Invariants: `score` is in -1.0..=1.0 and `confidence` in 0.0..=1.0; the
//! polarity agrees with the sign of `score`; cue lists are in order of
//! appearance without case-insensitive duplicates; deterministic.

use super::lexicon::{
    CONCESSIVE, CONTRAST, EMOTICONS, IDIOMS, NEGATION_SCALAR, is_negator, modifier, valence,
};
use super::text::{normalize_word, split_sentences, word_spans};

/// Overall direction of the opinion in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    /// Favourable opinion dominates.
    Positive,
    /// Unfavourable opinion dominates.
    Negative,
    /// No clear opinion: no cues, balanced cues, or too few for the length.
    Neutral,
}

/// Result of [`analyze_sentiment`].
#[derive(Debug, Clone, PartialEq)]
pub struct SentimentAnalysis {
    /// Overall direction.
    pub polarity: Polarity,
    /// Normalised score in -1.0..=1.0 (negative to positive).
    pub score: f64,
    /// 0.0..=1.0: higher with more and stronger agreeing cues; low when cues
    /// are mixed; 0.55 for a neutral text without any cue.
    pub confidence: f64,
    /// Cue words/phrases that pushed positive, as they appear ("not bad").
    pub positive_cues: Vec<String>,
    /// Cue words/phrases that pushed negative, as they appear.
    pub negative_cues: Vec<String>,
    /// One-line human-readable reason naming the strongest cues.
    pub explanation: String,
}

/// |score| needed for a non-neutral polarity (a single "okay" in a short
/// text passes; a single "good" in a 200-word report does not).
const POLARITY_THRESHOLD: f64 = 0.15;
/// VADER's normalisation constant: `s / sqrt(s² + ALPHA)`.
const ALPHA: f64 = 15.0;
/// Confidence reported when nothing opinionated was found.
const NO_CUE_CONFIDENCE: f64 = 0.55;
/// Texts longer than this many words get their net valence damped by
/// `sqrt(words / DAMPING_WORDS)`.
const DAMPING_WORDS: f64 = 12.0;

/// One piece of evidence: surface text and its adjusted valence.
#[derive(Debug, Clone)]
struct Cue {
    surface: String,
    value: f64,
}

/// Lexicon-based sentiment of `text` (see the module docs for the rules).
pub fn analyze_sentiment(text: &str) -> SentimentAnalysis {
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
    let upper = letters.iter().filter(|c| c.is_uppercase()).count();
    // In an all-caps text, capitals are not emphasis.
    let shouting_text = !letters.is_empty() && upper * 10 >= letters.len() * 7;

    let mut cues: Vec<Cue> = Vec::new();
    let mut prev_range: Option<(usize, usize)> = None;
    let mut total_words = 0usize;
    for sentence in split_sentences(text) {
        let start = cues.len();
        let (starts_with_contrast, words) = sentence_cues(&sentence, shouting_text, &mut cues);
        total_words += words;
        // "The screen is great. But the battery is awful." — a sentence
        // opening with a contrast word discounts the previous sentence.
        if starts_with_contrast {
            if let Some((a, b)) = prev_range {
                cues[a..b].iter_mut().for_each(|c| c.value *= 0.5);
            }
            cues[start..].iter_mut().for_each(|c| c.value *= 1.5);
        }
        prev_range = Some((start, cues.len()));
    }
    summarize_cues(&cues, total_words)
}

/// Finds the cues of one sentence and appends them to `out`. Returns whether
/// the sentence opens with a contrast word, and its word count.
fn sentence_cues(sentence: &str, shouting_text: bool, out: &mut Vec<Cue>) -> (bool, usize) {
    let spans = word_spans(sentence);
    let words: Vec<String> = spans
        .iter()
        .map(|&(s, e)| normalize_word(&sentence[s..e]))
        .collect();
    let n = words.len();
    // break_before[k]: clause punctuation between word k-1 and word k, which
    // stops negation and intensifier scope.
    let break_before: Vec<bool> = (0..n)
        .map(|k| {
            k > 0
                && sentence[spans[k - 1].1..spans[k].0]
                    .chars()
                    .any(|c| matches!(c, ',' | ';' | ':' | '(' | ')' | '—' | '–' | '"' | '“' | '”'))
        })
        .collect();

    let weights = clause_weights(&words, &break_before);
    let exclamations = sentence.matches('!').count().min(3) as f64;
    let emphasis = 1.0 + 0.1 * exclamations;

    let mut consumed = vec![false; n];
    let mut k = 0;
    while k < n {
        if let Some((len, v)) = match_idiom(&words[k..], &break_before[k..]) {
            let surface = &sentence[spans[k].0..spans[k + len - 1].1];
            out.push(Cue {
                surface: surface.to_string(),
                value: v * weights[k] * emphasis,
            });
            consumed[k..k + len].iter_mut().for_each(|c| *c = true);
            k += len;
            continue;
        }
        let w = words[k].as_str();
        let next_is_opinion = words.get(k + 1).is_some_and(|nw| valence(nw).is_some());
        // Modifiers act on the next opinion word; only "pretty" with nothing
        // to modify is itself an opinion ("a pretty town").
        let is_modifier = modifier(w).is_some() && (w != "pretty" || next_is_opinion);
        let kind_of = matches!(w, "kind" | "sort") && words.get(k + 1).is_some_and(|nw| nw == "of");
        let Some(base) = valence(w).filter(|_| !is_modifier && !kind_of) else {
            k += 1;
            continue;
        };
        let (mult, first) = modifiers_before(&words, &break_before, &consumed, k);
        let raw = &sentence[spans[k].0..spans[k].1];
        let caps = !shouting_text
            && raw.chars().filter(|c| c.is_alphabetic()).count() > 1
            && raw.chars().all(|c| !c.is_alphabetic() || c.is_uppercase());
        let caps_boost = if caps { 1.25 } else { 1.0 };
        let surface = &sentence[spans[first].0..spans[k].1];
        out.push(Cue {
            surface: surface.to_string(),
            value: base * mult * caps_boost * weights[k] * emphasis,
        });
        k += 1;
    }

    for (offset, symbol, v) in find_emoticons(sentence) {
        // Weight an emoji like the word just before it (its clause).
        let before = spans.iter().filter(|s| s.0 < offset).count();
        let w = weights
            .get(before.saturating_sub(1))
            .copied()
            .unwrap_or(1.0);
        out.push(Cue {
            surface: symbol.to_string(),
            value: v * w * emphasis,
        });
    }

    let starts_with_contrast = words
        .first()
        .is_some_and(|w| CONTRAST.contains(&w.as_str()));
    (starts_with_contrast, n)
}

/// Per-word weights from contrast and concession. "A but B": A x0.5, B x1.5.
/// "although A, B" / "B although A": the concessive clause A x0.5, the
/// rest x1.5.
fn clause_weights(words: &[String], break_before: &[bool]) -> Vec<f64> {
    let n = words.len();
    let mut weights = vec![1.0; n];
    if let Some(c) = words
        .iter()
        .skip(1)
        .position(|w| CONTRAST.contains(&w.as_str()))
    {
        let c = c + 1;
        weights[..c].iter_mut().for_each(|w| *w *= 0.5);
        weights[c + 1..].iter_mut().for_each(|w| *w *= 1.5);
    }
    if let Some(c) = words.iter().position(|w| CONCESSIVE.contains(&w.as_str())) {
        let end = (c + 1..n).find(|&k| break_before[k]).unwrap_or(n);
        for (k, w) in weights.iter_mut().enumerate() {
            *w *= if (c..end).contains(&k) { 0.5 } else { 1.5 };
        }
    }
    weights
}

/// Longest idiom starting at `words[0]` that does not span clause
/// punctuation: (length in words, valence).
fn match_idiom(words: &[String], break_before: &[bool]) -> Option<(usize, f64)> {
    IDIOMS
        .iter()
        .filter(|(phrase, _)| {
            phrase.len() <= words.len()
                && phrase.iter().zip(words).all(|(p, w)| p == w)
                && !break_before[1..phrase.len()].iter().any(|b| *b)
        })
        .max_by_key(|(phrase, _)| phrase.len())
        .map(|(phrase, v)| (phrase.len(), *v))
}

/// Looks back up to three words from the opinion word at `k` for
/// intensifiers/diminishers (the two nearest words) and one negator.
/// Returns the combined multiplier and the index of the first word that
/// belongs to the cue's surface form.
fn modifiers_before(
    words: &[String],
    break_before: &[bool],
    consumed: &[bool],
    k: usize,
) -> (f64, usize) {
    let mut mult = 1.0;
    let mut first = k;
    let mut j = k;
    let mut steps = 0;
    while j > 0 && steps < 3 {
        if break_before[j] || consumed[j - 1] {
            break;
        }
        let p = words[j - 1].as_str();
        if CONTRAST.contains(&p) || CONCESSIVE.contains(&p) {
            break;
        }
        if let Some(m) = modifier(p) {
            if steps < 2 {
                mult *= m;
                first = j - 1;
            }
        } else if p == "of" && j >= 2 && matches!(words[j - 2].as_str(), "kind" | "sort") {
            // "kind of good": a diminisher spelled as two words.
            mult *= 0.7;
            first = j - 2;
            j -= 1;
        } else if matches!(p, "bit" | "little") && j >= 2 && words[j - 2] == "a" {
            mult *= 0.7;
            first = j - 2;
            j -= 1;
        } else if is_negator(p) {
            // "not only good", "not just fast": not a negation.
            let follows = words.get(j).map(String::as_str);
            if !matches!(follows, Some("only" | "just" | "merely")) {
                mult *= NEGATION_SCALAR;
                first = j - 1;
            }
            break;
        } else if valence(p).is_some() {
            // Another opinion word: it owns whatever lies before it.
            break;
        }
        j -= 1;
        steps += 1;
    }
    (mult, first)
}

/// Emoji and emoticons in `sentence`: (byte offset, symbol, valence),
/// ordered by offset. Longer emoticons win (":-)" is not also ":)").
fn find_emoticons(sentence: &str) -> Vec<(usize, &'static str, f64)> {
    let mut found: Vec<(usize, &'static str, f64)> = Vec::new();
    for &(sym, v) in EMOTICONS.iter() {
        for (offset, _) in sentence.match_indices(sym) {
            found.push((offset, sym, v));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.len().cmp(&a.1.len())));
    let mut out: Vec<(usize, &'static str, f64)> = Vec::new();
    let mut covered_to = 0;
    for f in found {
        if out.is_empty() || f.0 >= covered_to {
            covered_to = f.0 + f.1.len();
            out.push(f);
        }
    }
    out
}

/// Turns cues into the final analysis: net score, polarity, confidence and
/// explanation.
fn summarize_cues(cues: &[Cue], total_words: usize) -> SentimentAnalysis {
    let positive: Vec<&Cue> = cues.iter().filter(|c| c.value > 0.0).collect();
    let negative: Vec<&Cue> = cues.iter().filter(|c| c.value < 0.0).collect();
    let pos_mass: f64 = positive.iter().map(|c| c.value).sum();
    let neg_mass: f64 = negative.iter().map(|c| -c.value).sum();
    let net = pos_mass - neg_mass;

    let damping = (total_words as f64 / DAMPING_WORDS).sqrt().max(1.0);
    let s = net / damping;
    let score = (s / (s * s + ALPHA).sqrt()).clamp(-1.0, 1.0);
    let polarity = if score >= POLARITY_THRESHOLD {
        Polarity::Positive
    } else if score <= -POLARITY_THRESHOLD {
        Polarity::Negative
    } else {
        Polarity::Neutral
    };

    let mass = pos_mass + neg_mass;
    let confidence = if cues.is_empty() || mass == 0.0 {
        NO_CUE_CONFIDENCE
    } else if polarity == Polarity::Neutral {
        // Some opinion was present but it cancelled out or was too thin for
        // the length: less sure than when there was none at all.
        0.5 - 0.15 * (mass / 4.0).min(1.0)
    } else {
        let agreement = (net.abs() / mass).clamp(0.0, 1.0);
        0.5 + 0.45 * score.abs() * agreement
    }
    .clamp(0.0, 1.0);

    let positive_cues = distinct_surfaces(&positive);
    let negative_cues = distinct_surfaces(&negative);
    let explanation = explain(polarity, &positive, &negative);
    SentimentAnalysis {
        polarity,
        score,
        confidence,
        positive_cues,
        negative_cues,
        explanation,
    }
}

/// Surface forms in order of appearance, without case-insensitive repeats.
fn distinct_surfaces(cues: &[&Cue]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for c in cues {
        let key = c.surface.to_lowercase();
        if !seen.contains(&key) {
            seen.push(key);
            out.push(c.surface.clone());
        }
    }
    out
}

/// Up to four distinct cue surfaces, strongest first, quoted: "'a', 'b'".
fn strongest(cues: &[&Cue]) -> String {
    let mut sorted: Vec<&Cue> = cues.to_vec();
    // Stable sort: equal strengths keep their order of appearance.
    sorted.sort_by(|a, b| b.value.abs().total_cmp(&a.value.abs()));
    distinct_surfaces(&sorted)
        .into_iter()
        .take(4)
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn explain(polarity: Polarity, positive: &[&Cue], negative: &[&Cue]) -> String {
    let (label, main, other, other_name) = match polarity {
        Polarity::Positive => ("Positive", positive, negative, "negative"),
        Polarity::Negative => ("Negative", negative, positive, "positive"),
        Polarity::Neutral => {
            return match (positive.is_empty(), negative.is_empty()) {
                (true, true) => "Neutral: no opinion words found.".to_string(),
                (false, false) => format!(
                    "Neutral: positive cues {} and negative cues {} roughly balance.",
                    strongest(positive),
                    strongest(negative)
                ),
                (false, true) => format!(
                    "Neutral: only weak positive cues {} for a text of this length.",
                    strongest(positive)
                ),
                (true, false) => format!(
                    "Neutral: only weak negative cues {} for a text of this length.",
                    strongest(negative)
                ),
            };
        }
    };
    if other.is_empty() {
        format!("{label}: cues {}; no {other_name} cues.", strongest(main))
    } else {
        format!(
            "{label}: cues {} outweigh {}.",
            strongest(main),
            strongest(other)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearly_negative_review() {
        let r = analyze_sentiment(
            "The hotel was dirty, the staff were rude and the food was terrible. I will never come back.",
        );
        assert_eq!(r.polarity, Polarity::Negative);
        assert!(r.confidence > 0.6, "{r:?}");
        assert!(r.score < -0.5);
        for cue in ["dirty", "rude", "terrible"] {
            assert!(r.negative_cues.iter().any(|c| c == cue), "{r:?}");
            assert!(r.explanation.contains(cue), "{}", r.explanation);
        }
        assert!(r.positive_cues.is_empty());
    }

    #[test]
    fn clearly_positive_review() {
        let r = analyze_sentiment(
            "Absolutely wonderful stay! The room was spotless and comfortable, and the staff were very helpful.",
        );
        assert_eq!(r.polarity, Polarity::Positive);
        assert!(r.confidence > 0.6);
        assert!(r.positive_cues.iter().any(|c| c == "very helpful"), "{r:?}");
        assert!(r.explanation.starts_with("Positive"));
    }

    #[test]
    fn negation_flips() {
        let r = analyze_sentiment("The movie was not good.");
        assert_eq!(r.polarity, Polarity::Negative);
        assert_eq!(r.negative_cues, vec!["not good"]);
        let r = analyze_sentiment("Honestly, the food was not bad at all.");
        assert_eq!(r.polarity, Polarity::Positive);
        assert_eq!(r.positive_cues, vec!["not bad"]);
        let r = analyze_sentiment("The app doesn't crash and I never felt bored.");
        assert_eq!(r.polarity, Polarity::Positive, "{r:?}");
    }

    #[test]
    fn contrast_favours_the_clause_after_but() {
        let r = analyze_sentiment(
            "The screen is great but the battery life is awful and it overheats.",
        );
        assert_eq!(r.polarity, Polarity::Negative, "{r:?}");
        assert!(r.positive_cues.contains(&"great".to_string()));
        assert!(r.explanation.contains("outweigh"), "{}", r.explanation);
        let r = analyze_sentiment("The battery is awful. But the screen is absolutely stunning.");
        assert_eq!(r.polarity, Polarity::Positive, "{r:?}");
        let r = analyze_sentiment("Although the screen is great, the battery is awful.");
        assert_eq!(r.polarity, Polarity::Negative, "{r:?}");
    }

    #[test]
    fn neutral_fact() {
        let r = analyze_sentiment("The meeting is scheduled for 3 pm on Tuesday in room 204.");
        assert_eq!(r.polarity, Polarity::Neutral);
        assert_eq!(r.score, 0.0);
        assert!((0.5..=0.6).contains(&r.confidence));
        assert!(r.positive_cues.is_empty() && r.negative_cues.is_empty());
    }

    #[test]
    fn more_cues_mean_more_confidence() {
        let weak = analyze_sentiment("The service was okay.");
        let strong = analyze_sentiment("The service was excellent, fast and friendly. I loved it!");
        assert_eq!(weak.polarity, Polarity::Positive);
        assert!(
            strong.confidence > weak.confidence,
            "{strong:?} vs {weak:?}"
        );
    }

    #[test]
    fn modifiers_scale() {
        let plain = analyze_sentiment("The hotel was good.").score;
        let very = analyze_sentiment("The hotel was very good.").score;
        let slightly = analyze_sentiment("The hotel was slightly good.").score;
        let bang = analyze_sentiment("The hotel was good!!!").score;
        assert!(very > plain && plain > slightly && bang > plain);
    }

    #[test]
    fn idioms_and_emoji() {
        let r = analyze_sentiment("Total waste of money 👎");
        assert_eq!(r.polarity, Polarity::Negative);
        assert!(
            r.negative_cues.contains(&"waste of money".to_string()),
            "{r:?}"
        );
        let r = analyze_sentiment("Can't wait to go back 😍");
        assert_eq!(r.polarity, Polarity::Positive, "{r:?}");
    }

    #[test]
    fn mixed_is_less_confident() {
        let mixed = analyze_sentiment(
            "The food was great and the view was lovely, the service was awful and the room was dirty.",
        );
        let pure = analyze_sentiment("The food was great and the view was lovely.");
        assert!(mixed.confidence < pure.confidence);
    }

    #[test]
    fn one_word_does_not_colour_a_long_text() {
        let text = "The council met on Monday to review the transport budget. ".repeat(20)
            + "The coffee was good.";
        assert_eq!(analyze_sentiment(&text).polarity, Polarity::Neutral);
    }

    #[test]
    fn no_panic_on_odd_input() {
        let long = "x".repeat(10_000);
        for t in [
            "aaaaaaaaaaaa",
            long.as_str(),
            "😀😀😀 東京 :-) :(",
            "!!!!!!!!!!!!",
            "- bad\n- good\n",
            "NOT GOOD AT ALL",
        ] {
            let r = analyze_sentiment(t);
            assert!((-1.0..=1.0).contains(&r.score) && (0.0..=1.0).contains(&r.confidence));
        }
    }
}
