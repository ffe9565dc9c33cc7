//! Question generation from the text's own salient sentences.
//!
//! Each sentence is parsed shallowly into fronted phrase / subject /
//! auxiliary / predicate (with do-support for plain past or present verbs),
//! then rewritten with templates chosen by what the predicate holds: a date
//! gives "When ...?", money "How much ...?", a percentage "By how much
//! ...?", a counted noun "How many ...?", a person-like subject "Who ...?",
//! a definition "What is X?", otherwise "Why/How ...?". Named entities give
//! "What role does X play?", and the top keywords give "What does the text
//! say about X?". Sentences are visited in salience order, one question per
//! sentence first, so the list covers the text before going deeper.
//!
//! Invariants: every question ends with '?', starts with an uppercase letter
//! where the script has case, questions are distinct (ignoring case and
//! punctuation), at most `n` (0 counts as 1), deterministic. Only char-aware
//! operations are used.

use std::collections::{BTreeMap, BTreeSet};

use super::data::{self, PairList, WordList};
use super::salience::{rank, sentence_scores, term_weights};
use super::text::{
    MONTHS, WEEKDAYS, bare, capitalize_first, content_terms, is_stopword, split_sentences, stem,
};

/// Up to `n` distinct questions about `text` (see the module docs).
pub fn generate_questions(text: &str, n: usize) -> Vec<String> {
    let n = n.max(1);
    if !text.chars().any(char::is_alphanumeric) {
        return Vec::new();
    }
    let sentences = split_sentences(text);
    let terms: Vec<Vec<String>> = sentences.iter().map(|s| content_terms(s)).collect();
    let order = rank(&sentence_scores(&sentences, &terms));
    let proper = proper_words(&sentences);

    // Round 1 holds each sentence's best question, round 2 the second-best,
    // round 3 the rest, so the first questions spread over the text.
    let mut rounds: [Vec<String>; 3] = Default::default();
    for &i in &order {
        let (questions, vague) = sentence_questions(&sentences[i], &proper);
        for (r, q) in questions.into_iter().enumerate() {
            // Questions about "it"/"they" are unclear out of context, so
            // they only come after everything else from the sentences.
            let round = if vague { 2 } else { r.min(2) };
            rounds[round].push(q);
        }
    }
    let [first, second, rest] = rounds;
    let entities = entity_questions(&sentences, &order, &proper);
    let keywords = keyword_questions(&sentences, &terms, &proper);
    let fallback = order
        .iter()
        .filter_map(|&i| snippet_question(&sentences[i]));

    let mut out: Vec<String> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let all = first
        .into_iter()
        .chain(entities)
        .chain(second)
        .chain(keywords)
        .chain(rest)
        .chain(fallback);
    for q in all {
        if out.len() >= n {
            break;
        }
        let key = q
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect::<String>();
        if !key.is_empty() && seen.insert(key) {
            out.push(q);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Word classes.

static COPULAS: WordList =
    WordList::new(|| data::words(include_str!("data/questions_copulas.txt")));
static MODALS: WordList = WordList::new(|| data::words(include_str!("data/questions_modals.txt")));
static PERFECTS: WordList =
    WordList::new(|| data::words(include_str!("data/questions_perfects.txt")));
static DOS: WordList = WordList::new(|| data::words(include_str!("data/questions_dos.txt")));

/// Words that cannot open a subject we can invert.
static BAD_SUBJECT_STARTS: WordList =
    WordList::new(|| data::words(include_str!("data/questions_bad_subject_starts.txt")));
/// Words that mark a relative, subordinate or reported clause inside a
/// would-be subject.
static SUBJECT_BREAKERS: WordList =
    WordList::new(|| data::words(include_str!("data/questions_subject_breakers.txt")));
/// Openers of a fronted adverbial we may move out of the way.
static FRONTED_STARTS: WordList =
    WordList::new(|| data::words(include_str!("data/questions_fronted_starts.txt")));
static RELATIVE_DAYS: WordList =
    WordList::new(|| data::words(include_str!("data/questions_relative_days.txt")));
static PERIODS: WordList =
    WordList::new(|| data::words(include_str!("data/questions_periods.txt")));
static DATE_PREPOSITIONS: WordList =
    WordList::new(|| data::words(include_str!("data/questions_date_prepositions.txt")));
static DURATION_PREPOSITIONS: WordList =
    WordList::new(|| data::words(include_str!("data/questions_duration_prepositions.txt")));
static NUMBER_WORDS: WordList =
    WordList::new(|| data::words(include_str!("data/number_words.txt")));
static MULTIPLIERS: WordList =
    WordList::new(|| data::words(include_str!("data/questions_multipliers.txt")));
static CURRENCIES: WordList =
    WordList::new(|| data::words(include_str!("data/questions_currencies.txt")));
static MEASURE_ADJECTIVES: WordList =
    WordList::new(|| data::words(include_str!("data/questions_measure_adjectives.txt")));
static TITLES: WordList = WordList::new(|| data::words(include_str!("data/titles.txt")));
/// Verbs (stems) whose subject is most likely a person.
static HUMAN_VERBS: WordList =
    WordList::new(|| data::words(include_str!("data/questions_human_verbs.txt")));
/// Irregular past tenses and their base forms, for do-support.
static IRREGULAR_PAST: PairList =
    PairList::new(|| data::pairs(include_str!("data/questions_irregular_past.tsv")));
/// Words ending in "ed" that are not regular past tenses.
static NOT_PAST: WordList =
    WordList::new(|| data::words(include_str!("data/questions_not_past.txt")));
/// Past participles that mark "has/have/had" as an auxiliary.
static IRREGULAR_PARTICIPLES: WordList =
    WordList::new(|| data::words(include_str!("data/questions_irregular_participles.txt")));
/// Words a present-tense verb is typically followed by ("aims to", "covers the").
static AFTER_PRESENT_VERB: WordList =
    WordList::new(|| data::words(include_str!("data/questions_after_present_verb.txt")));
static DETERMINERS: WordList =
    WordList::new(|| data::words(include_str!("data/questions_determiners.txt")));
/// Verbs whose object is a reported clause.
static REPORTING_VERBS: WordList =
    WordList::new(|| data::words(include_str!("data/questions_reporting_verbs.txt")));
/// Predicate cut points: a relative or subordinate clause starts here.
static PREDICATE_BREAKS: WordList =
    WordList::new(|| data::words(include_str!("data/questions_predicate_breaks.txt")));

fn is_year(b: &str) -> bool {
    let digits = b.strip_suffix('s').unwrap_or(b);
    digits.len() == 4
        && digits.bytes().all(|c| c.is_ascii_digit())
        && (1000..=2199).contains(&digits.parse::<u32>().unwrap_or(0))
}

fn is_number(b: &str) -> bool {
    let has_digit = b.chars().any(|c| c.is_ascii_digit());
    (has_digit
        && b.chars()
            .all(|c| c.is_ascii_digit() || c == ',' || c == '.'))
        || NUMBER_WORDS.contains(&b)
}

fn is_day_number(b: &str) -> bool {
    let digits: String = b.chars().take_while(char::is_ascii_digit).collect();
    let suffix = &b[digits.len()..];
    !digits.is_empty() && digits.len() <= 2 && matches!(suffix, "" | "st" | "nd" | "rd" | "th")
}

fn is_date_anchor(b: &str) -> bool {
    is_year(b) || MONTHS.contains(&b) || WEEKDAYS.contains(&b) || RELATIVE_DAYS.contains(&b)
}

fn is_capitalised(w: &str) -> bool {
    w.chars()
        .find(|c| c.is_alphabetic())
        .is_some_and(char::is_uppercase)
}

/// Lowercased words that appear capitalised somewhere other than at the
/// start of a sentence: names, which must keep their capital when a
/// sentence-initial word moves inside a question.
/// Words that open two or more sentences capitalised and never appear in
/// lowercase ("Apple was ... Apple sells ...") count as names too.
fn proper_words(sentences: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut initial: BTreeMap<String, usize> = BTreeMap::new();
    let mut lowercase: BTreeSet<String> = BTreeSet::new();
    for s in sentences {
        let words: Vec<&str> = s.split_whitespace().collect();
        if let Some(first) = words.first().filter(|w| is_capitalised(w)) {
            *initial.entry(bare(first)).or_default() += 1;
        }
        for (k, w) in words.iter().enumerate() {
            if !is_capitalised(w) {
                lowercase.insert(bare(w));
            } else if k > 0 && !words[k - 1].ends_with([':', '.', '!', '?', '"', '“']) {
                out.insert(bare(w));
            }
        }
    }
    for (word, count) in initial {
        if count >= 2 && !is_stopword(&word) && !lowercase.contains(&word) {
            out.insert(word);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Shallow clause parsing.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// is/are/was/were
    Copula,
    /// will/can/should/...
    Modal,
    /// has/have/had + participle
    Perfect,
    /// an explicit do/does/did
    Do,
    /// a plain verb rewritten with do/does/did + base form
    Support,
}

#[derive(Debug, Clone)]
struct Clause {
    /// Date phrase moved out of the sentence front ("In 1932,"), if any.
    fronted_date: Option<String>,
    subject: Vec<String>,
    aux: String,
    kind: Kind,
    /// Predicate after the auxiliary (base verb first for do-support).
    predicate: Vec<String>,
    /// The original verb form for do-support ("discovered").
    verb: Option<String>,
}

/// Parses "(fronted,) subject aux predicate".
fn parse_clause(words: &[String], proper: &BTreeSet<String>) -> Option<Clause> {
    let mut fronted_date = None;
    let mut rest = words;
    if let Some(k) = words.iter().take(6).position(|w| w.ends_with(',')) {
        let first = bare(&words[0]);
        let prefix: Vec<String> = words[..=k].iter().map(|w| bare(w)).collect();
        let has_date = prefix.iter().any(|b| is_date_anchor(b));
        if FRONTED_STARTS.contains(&first.as_str()) || has_date {
            if has_date {
                fronted_date = Some(words[..=k].join(" ").trim_end_matches(',').to_string());
            }
            rest = &words[k + 1..];
        }
    }
    if rest.len() < 2 {
        return None;
    }
    let first = bare(&rest[0]);
    if BAD_SUBJECT_STARTS.contains(&first.as_str()) || first.is_empty() {
        return None;
    }
    for p in 1..rest.len().min(9) {
        let subject = &rest[..p];
        let w = bare(&rest[p]);
        // A comma or relative pronoun inside the subject means we are not
        // looking at a simple "subject verb" sentence.
        if subject
            .iter()
            .any(|s| s.ends_with([',', ';', ':', '(', ')']))
            || subject
                .iter()
                .skip(1)
                .any(|s| SUBJECT_BREAKERS.contains(&bare(s).as_str()))
        {
            return None;
        }
        let subject_ok = !is_stopword(&bare(&subject[p - 1])) || subject.len() == 1;
        let predicate: Vec<String> = rest[p + 1..].to_vec();
        let make = |aux: &str, kind: Kind, predicate: Vec<String>, verb: Option<String>| Clause {
            fronted_date: fronted_date.clone(),
            subject: adjust_subject(subject, proper),
            aux: aux.to_string(),
            kind,
            predicate,
            verb,
        };
        let aux_kind = if COPULAS.contains(&w.as_str()) {
            Some(Kind::Copula)
        } else if MODALS.contains(&w.as_str()) {
            Some(Kind::Modal)
        } else if PERFECTS.contains(&w.as_str()) {
            Some(Kind::Perfect)
        } else if DOS.contains(&w.as_str()) {
            Some(Kind::Do)
        } else {
            None
        };
        if let Some(kind) = aux_kind {
            if !subject_ok || predicate.is_empty() {
                return None;
            }
            if kind == Kind::Perfect && !is_participle(&bare(&predicate[0])) {
                // "The city has 42 parks": "has" is the main verb.
                let aux = match w.as_str() {
                    "has" => "does",
                    "have" => "do",
                    _ => "did",
                };
                let pred = std::iter::once("have".to_string())
                    .chain(predicate)
                    .collect();
                return Some(make(aux, Kind::Support, pred, Some(rest[p].clone())));
            }
            return Some(make(&w, kind, predicate, None));
        }
        if !subject_ok || predicate.is_empty() {
            continue;
        }
        if REPORTING_VERBS.contains(&w.as_str()) {
            // "Critics say ...": a plural subject with a reporting verb.
            let pred = std::iter::once(w.clone()).chain(predicate).collect();
            return Some(make("do", Kind::Support, pred, Some(rest[p].clone())));
        }
        if let Some(base) = past_base(&w) {
            let pred = std::iter::once(base).chain(predicate).collect();
            return Some(make("did", Kind::Support, pred, Some(rest[p].clone())));
        }
        let determined = subject.len() >= 2 && DETERMINERS.contains(&bare(&subject[0]).as_str());
        let follows = bare(&predicate[0]);
        let fits = AFTER_PRESENT_VERB.contains(&follows.as_str()) || is_number(&follows);
        if determined
            && fits
            && let Some(base) = present_base(&w)
        {
            let pred = std::iter::once(base).chain(predicate).collect();
            return Some(make("does", Kind::Support, pred, Some(rest[p].clone())));
        }
    }
    None
}

/// Lowercases a sentence-initial common word ("The city" -> "the city") but
/// keeps names, acronyms and "I".
fn adjust_subject(subject: &[String], proper: &BTreeSet<String>) -> Vec<String> {
    let mut out = subject.to_vec();
    // "Joseph Strauss": a capitalised word followed by another is a name.
    let multiword_name = out.len() >= 2 && is_capitalised(&out[1]) && !is_stopword(&bare(&out[0]));
    if let Some(first) = out.first_mut() {
        let b = bare(first);
        let acronym = first.chars().filter(|c| c.is_alphabetic()).count() > 1
            && first
                .chars()
                .all(|c| !c.is_alphabetic() || c.is_uppercase());
        if !proper.contains(&b) && !acronym && !multiword_name && b != "i" {
            *first = first.to_lowercase();
        }
    }
    out
}

fn is_participle(b: &str) -> bool {
    (b.len() > 3 && (b.ends_with("ed") || b.ends_with("en"))) || IRREGULAR_PARTICIPLES.contains(&b)
}

/// Base form of a past-tense verb, if `b` looks like one.
fn past_base(b: &str) -> Option<String> {
    if let Some(&(_, base)) = IRREGULAR_PAST.iter().find(|(past, _)| *past == b) {
        return Some(base.to_string());
    }
    // ASCII-only from here on, so byte slicing below is safe.
    if b.len() < 5 || !b.bytes().all(|c| c.is_ascii_lowercase()) || !b.ends_with("ed") {
        return None;
    }
    if b.ends_with("eed") || NOT_PAST.contains(&b) {
        return None;
    }
    Some(regular_lemma(&b[..b.len() - 2]))
}

/// Restores the base form from a regular past stem ("stopp" -> "stop",
/// "hir" -> "hire", "studi" -> "study"). Heuristic; only used to phrase
/// "did ... <base>" questions.
fn regular_lemma(stem: &str) -> String {
    let b = stem.as_bytes();
    let n = b.len();
    let vowel = |c: u8| matches!(c, b'a' | b'e' | b'i' | b'o' | b'u');
    if n < 2 {
        return stem.to_string();
    }
    let (prev, last) = (b[n - 2], b[n - 1]);
    if last == b'i' {
        return format!("{}y", &stem[..n - 1]);
    }
    if last == prev && !vowel(last) && !matches!(last, b'l' | b's' | b'f' | b'z') {
        return stem[..n - 1].to_string();
    }
    if matches!(last, b'c' | b'g' | b'v' | b'z' | b'u') {
        return format!("{stem}e");
    }
    if prev == b'a' && last == b't' {
        // "-ated" takes an e (created, located, negotiated) except after
        // "-eat" verbs (repeated, treated).
        let eat = n >= 3 && b[n - 3] == b'e' && !stem.ends_with("creat");
        return if eat {
            stem.to_string()
        } else {
            format!("{stem}e")
        };
    }
    let prev2_vowel = n >= 3 && vowel(b[n - 3]);
    if vowel(prev) && last == b's' {
        return format!("{stem}e");
    }
    if vowel(prev) && !vowel(last) && !prev2_vowel {
        let silent_e = matches!(
            (prev, last),
            (b'a', b'r' | b'd' | b'k' | b'p' | b'm' | b'l')
                | (b'o', b't' | b'd' | b'k' | b'b' | b'm')
                | (b'u', b't' | b'r' | b'd' | b'b' | b'm' | b'l')
                | (b'i', b'r' | b'd' | b'n' | b'k' | b'b' | b'l')
        ) || (prev == b'o' && last == b'r' && n <= 5)
            || stem.ends_with("let");
        if silent_e {
            return format!("{stem}e");
        }
    }
    stem.to_string()
}

/// Base form of a third-person present verb ("aims" -> "aim").
fn present_base(b: &str) -> Option<String> {
    if b.len() < 4 || !b.bytes().all(|c| c.is_ascii_lowercase()) || !b.ends_with('s') {
        return None;
    }
    if b.ends_with("ss") || b.ends_with("us") || b.ends_with("is") || is_stopword(b) {
        return None;
    }
    // ASCII checked above, so byte slicing is safe.
    let base = if let Some(s) = b.strip_suffix("ies") {
        format!("{s}y")
    } else if ["sses", "shes", "ches", "xes", "zes", "oes"]
        .iter()
        .any(|e| b.ends_with(e))
    {
        b[..b.len() - 2].to_string()
    } else {
        b[..b.len() - 1].to_string()
    };
    Some(base)
}

// ---------------------------------------------------------------------------
// Templates.

/// Subjects that need the previous sentence to make sense.
static PRONOUNS: WordList =
    WordList::new(|| data::words(include_str!("data/questions_pronouns.txt")));

/// Questions for one sentence, best first, and whether they are vague
/// (the subject is a pronoun).
fn sentence_questions(sentence: &str, proper: &BTreeSet<String>) -> (Vec<String>, bool) {
    let trimmed = sentence.trim();
    let count = trimmed.split_whitespace().count();
    if trimmed.ends_with('?') {
        // The text asks it itself.
        let own = if (3..=25).contains(&count) {
            finish(trimmed).into_iter().collect()
        } else {
            Vec::new()
        };
        return (own, false);
    }
    let words: Vec<String> = trimmed.split_whitespace().map(str::to_string).collect();
    if words.len() < 3 {
        return (Vec::new(), false);
    }
    let mut out = Vec::new();
    let mut vague = false;
    if let Some(clause) = parse_clause(&words, proper) {
        let questions = clause_questions(&clause);
        // "There are 250 ropes" is fine: its questions do not say "there".
        vague = clause.subject.len() == 1
            && PRONOUNS.contains(&bare(&clause.subject[0]).as_str())
            && questions.iter().any(|q| {
                q.split_whitespace()
                    .any(|w| PRONOUNS.contains(&bare(w).as_str()))
            });
        out.extend(questions);
    }
    if let Some((s, e)) = date_phrase(&words)
        && matches!(bare(&words[s]).as_str(), "in" | "on" | "during")
    {
        out.extend(finish(&format!("What happened {}", words[s..e].join(" "))));
    }
    (out, vague)
}

fn clause_questions(c: &Clause) -> Vec<String> {
    let aux = c.aux.to_lowercase();
    let subj = c.subject.join(" ");
    let pred = cut_predicate(&c.predicate);
    let copula = c.kind == Kind::Copula;
    let mut out: Vec<Option<String>> = Vec::new();
    let ask = |lead: &str, rest: &[String]| -> Option<String> {
        let tail = if rest.is_empty() {
            String::new()
        } else {
            format!(" {}", rest.join(" "))
        };
        finish(&format!("{lead} {aux} {subj}{tail}"))
    };

    if subj.eq_ignore_ascii_case("there") && copula {
        if let Some((_, num, e)) = counted_noun(&pred) {
            let np = noun_phrase(&pred[num + 1..e]);
            let rest: Vec<String> = pred[e..].to_vec();
            let tail = if rest.is_empty() {
                String::new()
            } else {
                format!(" {}", rest.join(" "))
            };
            out.push(finish(&format!("How many {np} {aux} there{tail}")));
        }
        return out.into_iter().flatten().collect();
    }
    // "Officials said (that) ...": the content is the embedded clause, so
    // only ask what was said.
    let lemma = c.predicate.first().map(|w| bare(w)).unwrap_or_default();
    if c.kind == Kind::Support && REPORTING_VERBS.contains(&lemma.as_str()) {
        out.push(finish(&format!("What {aux} {subj} {lemma}")));
        return out.into_iter().flatten().collect();
    }
    // The date may sit after a comma-separated list ("founded by A, B and C
    // in 1976") but not in a later clause ("..., although ... since 1800").
    let same_clause = c
        .predicate
        .iter()
        .position(|w| {
            w.ends_with(';') || (bare(w) != "and" && PREDICATE_BREAKS.contains(&bare(w).as_str()))
        })
        .map_or(c.predicate.len(), |i| i.max(1));
    if let Some((s, e)) = date_phrase(&c.predicate[..same_clause]) {
        // What follows the date is usually circumstance ("... in 1937 after
        // four years of work"); the question reads better without it.
        let rest = if s > 0 {
            c.predicate[..s].to_vec()
        } else {
            without(&c.predicate, s, e)
        };
        let rest = if rest.len() > 12 {
            cut_predicate(&rest)
        } else {
            rest
        };
        if !rest.is_empty() || copula {
            out.push(ask("When", &rest));
        }
    } else if c.fronted_date.is_some() {
        out.push(ask("When", &pred));
    }
    if let Some((s, e)) = money_phrase(&pred) {
        let rest = without(&pred, s, e);
        let after_of = s > 0 && bare(&pred[s - 1]) == "of";
        if (!rest.is_empty() || copula) && !after_of {
            out.push(ask("How much", &rest));
        }
    }
    if let Some((s, e)) = percent_phrase(&pred) {
        let rest = without(&pred, s, e);
        if !rest.is_empty() {
            out.push(ask("By how much", &rest));
        }
    }
    if let Some((s, num, e)) = counted_noun(&pred) {
        let unit_then_adjective = e == num + 2
            && pred
                .get(e)
                .is_some_and(|w| MEASURE_ADJECTIVES.contains(&bare(w).as_str()));
        if copula && unit_then_adjective {
            out.push(finish(&format!("How {} {aux} {subj}", bare(&pred[e]))));
        } else {
            let np = noun_phrase(&pred[num + 1..e]);
            let rest = without(&pred, s, e);
            out.push(ask(&format!("How many {np}"), &rest));
        }
    }
    // Passive with a named agent: "Apple was founded by Steve Jobs" ->
    // "Who founded Apple?".
    let by_agent = copula
        && pred.len() >= 3
        && is_participle(&bare(&pred[0]))
        && bare(&pred[1]) == "by"
        && is_capitalised(&pred[2]);
    if by_agent {
        out.push(finish(&format!("Who {} {subj}", pred[0].to_lowercase())));
    }
    if is_person_like(c) {
        match (&c.kind, &c.verb) {
            (Kind::Support, Some(verb)) => {
                let tail: Vec<String> = pred.iter().skip(1).cloned().collect();
                out.push(finish(&format!(
                    "Who {} {}",
                    verb.to_lowercase(),
                    tail.join(" ")
                )));
            }
            _ => out.push(finish(&format!("Who {aux} {}", pred.join(" ")))),
        }
    }
    let definition = copula
        && c.subject.len() <= 5
        && pred
            .first()
            .is_some_and(|w| matches!(bare(w).as_str(), "a" | "an" | "the" | "one"));
    if definition {
        let wh = if names_a_person(c, &pred) {
            "Who"
        } else {
            "What"
        };
        out.push(finish(&format!("{wh} {aux} {subj}")));
    }
    if pred.len() <= 16 {
        let lead = if c.kind == Kind::Modal { "How" } else { "Why" };
        out.push(ask(lead, &pred));
    }
    out.into_iter().flatten().collect()
}

/// The predicate up to its first clause break (a comma-ended word, kept,
/// or a conjunction/relative word after the first word).
fn cut_predicate(pred: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, w) in pred.iter().enumerate() {
        if i >= 1 && PREDICATE_BREAKS.contains(&bare(w).as_str()) {
            break;
        }
        out.push(w.clone());
        if w.ends_with([',', ';', ':']) {
            break;
        }
    }
    out
}

/// Noun phrase words without trailing punctuation ("days." -> "days").
fn noun_phrase(words: &[String]) -> String {
    words
        .iter()
        .map(|w| w.trim_end_matches(|c: char| !c.is_alphanumeric()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `words` without `words[s..e]`.
fn without(words: &[String], s: usize, e: usize) -> Vec<String> {
    words[..s].iter().chain(&words[e..]).cloned().collect()
}

/// The first date phrase: an anchor (year, month, weekday, "today", "last
/// year") widened over day numbers and a leading preposition. (start, end).
fn date_phrase(words: &[String]) -> Option<(usize, usize)> {
    let bares: Vec<String> = words.iter().map(|w| bare(w)).collect();
    let period = |i: usize| {
        matches!(
            bares[i].as_str(),
            "last" | "next" | "this" | "early" | "late"
        ) && bares
            .get(i + 1)
            .is_some_and(|b| PERIODS.contains(&b.as_str()))
    };
    // "May" is too often the modal to anchor a date on its own.
    let anchor = (0..words.len()).find(|&i| {
        (is_date_anchor(&bares[i]) && (bares[i] != "may" || is_capitalised(&words[i]))) || period(i)
    })?;
    let mut start = anchor;
    let mut end = if period(anchor) {
        anchor + 2
    } else {
        anchor + 1
    };
    while end < words.len()
        && !words[end - 1].ends_with(['.', ';'])
        && (is_day_number(&bares[end])
            || is_year(&bares[end])
            || (bares[end] == "of" && bares.get(end + 1).is_some_and(|b| is_date_anchor(b))))
    {
        end += 1;
    }
    while start > 0
        && !words[start - 1].ends_with([',', ';'])
        && (is_day_number(&bares[start - 1])
            || matches!(
                bares[start - 1].as_str(),
                "the" | "early" | "late" | "mid" | "of"
            ))
    {
        start -= 1;
    }
    if period(anchor) && start > 0 && DURATION_PREPOSITIONS.contains(&bares[start - 1].as_str()) {
        // "over the next decade" is a duration, not a point in time.
        return None;
    }
    if start > 0 && DATE_PREPOSITIONS.contains(&bares[start - 1].as_str()) {
        start -= 1;
    }
    Some((start, end))
}

/// "$12 million", "5,000 euros": (start, end).
fn money_phrase(words: &[String]) -> Option<(usize, usize)> {
    let bares: Vec<String> = words.iter().map(|w| bare(w)).collect();
    for i in 0..words.len() {
        let w = words[i].trim_start_matches(|c: char| {
            !c.is_alphanumeric() && !matches!(c, '$' | '€' | '£' | '¥')
        });
        let symbol = w.starts_with(['$', '€', '£', '¥']) && w.chars().any(|c| c.is_ascii_digit());
        let numeric = is_number(&bares[i]) && !NUMBER_WORDS.contains(&bares[i].as_str());
        if !symbol && !numeric {
            continue;
        }
        let mut end = i + 1;
        while end < words.len() && MULTIPLIERS.contains(&bares[end].as_str()) {
            end += 1;
        }
        let currency_word = end < words.len() && CURRENCIES.contains(&bares[end].as_str());
        if currency_word {
            end += 1;
        }
        if symbol || currency_word {
            return Some((i, end));
        }
    }
    None
}

/// "by 40 percent" / "by 40%": (start of "by", end).
fn percent_phrase(words: &[String]) -> Option<(usize, usize)> {
    let bares: Vec<String> = words.iter().map(|w| bare(w)).collect();
    (1..words.len()).find_map(|i| {
        let with_sign =
            words[i].trim_end_matches([',', '.', ';']).ends_with('%') && is_number(&bares[i]);
        let with_word = is_number(&bares[i]) && bares.get(i + 1).is_some_and(|b| b == "percent");
        if bares[i - 1] == "by" && (with_sign || with_word) {
            Some((i - 1, if with_word { i + 2 } else { i + 1 }))
        } else {
            None
        }
    })
}

/// Words softening a number ("about 5,000"), removed along with it.
static APPROXIMATORS: WordList =
    WordList::new(|| data::words(include_str!("data/questions_approximators.txt")));

/// A number followed by the noun phrase it counts ("about 5,000 solar
/// panels", "250 pairs of ropes"): (start including approximators, index of
/// the number, end of the noun phrase). Years, money and percentages are
/// excluded; a trailing measure adjective ("meters long") is left out.
fn counted_noun(words: &[String]) -> Option<(usize, usize, usize)> {
    let bares: Vec<String> = words.iter().map(|w| bare(w)).collect();
    let noun_like = |b: &str| {
        !b.is_empty()
            && b.chars().all(char::is_alphabetic)
            && !is_stopword(b)
            && !matches!(b, "percent" | "per")
            && !CURRENCIES.contains(&b)
            && !MULTIPLIERS.contains(&b)
            && !MEASURE_ADJECTIVES.contains(&b)
    };
    for i in 0..words.len() {
        let b = &bares[i];
        let excluded = is_year(b)
            || words[i].contains(['$', '€', '£', '%'])
            || words[i].ends_with([',', '.', ';', ':']);
        if !is_number(b) || excluded {
            continue;
        }
        let mut end = i + 1;
        while end < words.len() && end - i <= 5 {
            let nb = bares[end].as_str();
            let of_link =
                nb == "of" && end > i + 1 && bares.get(end + 1).is_some_and(|x| noun_like(x));
            if !noun_like(nb) && !of_link {
                break;
            }
            end += 1;
            if words[end - 1].ends_with([',', '.', ';', ':']) {
                break;
            }
        }
        if end > i + 1 {
            let mut start = i;
            while start > 0 && APPROXIMATORS.contains(&bares[start - 1].as_str()) {
                start -= 1;
            }
            return Some((start, i, end));
        }
    }
    None
}

/// Subject looks like a person: a title ("Dr. Lee"), or a short
/// capitalised name doing something people do.
fn is_person_like(c: &Clause) -> bool {
    let first = c.subject.first().map(|w| bare(w)).unwrap_or_default();
    if TITLES.contains(&first.as_str()) {
        return true;
    }
    let named = (1..=3).contains(&c.subject.len())
        && c.subject.iter().all(|w| is_capitalised(w))
        && !is_stopword(&first);
    let verb = match (&c.verb, c.predicate.first()) {
        (Some(v), _) => bare(v),
        (None, Some(p)) => bare(p),
        _ => return false,
    };
    named
        && HUMAN_VERBS
            .iter()
            .any(|h| stem(&verb).starts_with(h) || verb == *h)
}

/// Nouns naming people, for "Who is X?" rather than "What is X?".
static ROLE_NOUNS: WordList =
    WordList::new(|| data::words(include_str!("data/questions_role_nouns.txt")));

/// A definition ("X is the first Canadian ...") whose subject is a name and
/// whose head noun names a person.
fn names_a_person(c: &Clause, pred: &[String]) -> bool {
    let name = c.subject.iter().all(|w| is_capitalised(w));
    // The words after the article, up to the first preposition.
    let mut head = pred
        .iter()
        .skip(1)
        .take(4)
        .map(|w| bare(w))
        .take_while(|b| {
            !matches!(
                b.as_str(),
                "of" | "in" | "to" | "who" | "that" | "at" | "for" | "from"
            )
        });
    name && head
        .any(|b| ROLE_NOUNS.contains(&b.as_str()) || b.ends_with("ian") || b.ends_with("ist"))
}

/// Turns a phrase into a question: collapses spaces, trims trailing
/// punctuation, capitalises, appends '?'. None for too short/long phrases.
fn finish(phrase: &str) -> Option<String> {
    let words: Vec<&str> = phrase.split_whitespace().collect();
    if words.len() < 2 || words.len() > 30 {
        return None;
    }
    let joined = words.join(" ");
    let body = joined
        .trim_end_matches(|c: char| !c.is_alphanumeric() && !matches!(c, ')' | '"' | '”' | '\''));
    if body.is_empty() {
        return None;
    }
    Some(format!("{}?", capitalize_first(body)))
}

// ---------------------------------------------------------------------------
// Entity, keyword and fallback questions.

/// "What role does `<Entity>` play?" for capitalised names (most frequent
/// first), with a preceding "the" kept ("the European Union").
fn entity_questions(
    sentences: &[String],
    order: &[usize],
    proper: &BTreeSet<String>,
) -> Vec<String> {
    // entity -> (count, first rank position, display form)
    let mut found: BTreeMap<String, (usize, usize, String)> = BTreeMap::new();
    for (rank_pos, &i) in order.iter().enumerate() {
        let words: Vec<&str> = sentences[i].split_whitespace().collect();
        let mut k = 0;
        while k < words.len() {
            let b = bare(words[k]);
            let eligible = is_capitalised(words[k])
                && !is_stopword(&b)
                && !b.is_empty()
                && !MONTHS.contains(&b.as_str())
                && !WEEKDAYS.contains(&b.as_str())
                && (k > 0
                    || proper.contains(&b)
                    || words
                        .get(1)
                        .is_some_and(|w| is_capitalised(w) && !is_stopword(&bare(w))));
            if !eligible {
                k += 1;
                continue;
            }
            let start = k;
            let mut end = k + 1;
            while end < words.len()
                && end - start < 4
                && !words[end - 1].ends_with([',', '.', ';', ':', '!', '?'])
            {
                if is_capitalised(words[end]) && !is_stopword(&bare(words[end])) {
                    end += 1;
                } else {
                    break;
                }
            }
            let name: Vec<String> = words[start..end]
                .iter()
                .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_string())
                .collect();
            let name = name.join(" ");
            let key = name.to_lowercase();
            let with_article = start > 0 && bare(words[start - 1]) == "the";
            let display = if with_article {
                format!("the {name}")
            } else {
                name
            };
            if !key.is_empty() && key.chars().any(char::is_alphabetic) {
                let entry = found.entry(key).or_insert((0, rank_pos, display));
                entry.0 += 1;
            }
            k = end;
        }
    }
    let mut ranked: Vec<(usize, usize, String)> = found.into_values().collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    ranked
        .into_iter()
        .take(6)
        .filter_map(|(_, _, e)| finish(&format!("What role does {e} play")))
        .collect()
}

/// Words that look like topics to the counters but make poor ones.
static WEAK_KEYWORDS: WordList =
    WordList::new(|| data::words(include_str!("data/questions_weak_keywords.txt")));

/// "What does the text say about `<keyword>`?" and variants, for the top
/// keyword phrases (a repeated pair of content words) and single keywords.
/// Words seen right after a determiner are likely nouns and are preferred
/// (and asked about with "the"); adverbs, past-tense verbs and names (which
/// get entity questions) are skipped.
fn keyword_questions(
    sentences: &[String],
    terms: &[Vec<String>],
    proper: &BTreeSet<String>,
) -> Vec<String> {
    let weights = term_weights(terms);
    // surface word -> (count, seen after a determiner)
    let mut singles: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    let mut pairs: BTreeMap<(String, String), usize> = BTreeMap::new();
    for s in sentences {
        let words: Vec<&str> = s.split_whitespace().collect();
        let mut prev: Option<String> = None;
        for (k, w) in words.iter().enumerate() {
            let b = bare(w);
            let b = b.strip_suffix("'s").unwrap_or(&b).to_string();
            let usable = b.chars().count() > 2
                && !is_stopword(&b)
                && b.chars().any(char::is_alphabetic)
                && !proper.contains(&b)
                && !WEAK_KEYWORDS.contains(&b.as_str());
            if usable {
                if let Some(p) = prev.take() {
                    *pairs.entry((p, b.clone())).or_default() += 1;
                }
                let verbish = b.ends_with("ly") || past_base(&b).is_some();
                if !verbish {
                    let after_determiner =
                        k > 0 && DETERMINERS.contains(&bare(words[k - 1]).as_str());
                    let entry = singles.entry(b.clone()).or_insert((0, false));
                    entry.0 += 1;
                    entry.1 |= after_determiner;
                }
            }
            // A pair must be adjacent within one phrase.
            prev = if usable && !w.ends_with([',', '.', ';', ':', '!', '?']) {
                Some(b)
            } else {
                None
            };
        }
    }
    let weight = |w: &str| weights.get(&stem(w)).copied().unwrap_or(0.0);

    let mut phrases: Vec<(f64, String)> = pairs
        .into_iter()
        .filter(|(_, count)| *count >= 2)
        .map(|((a, b), count)| (count as f64 * (weight(&a) + weight(&b)), format!("{a} {b}")))
        .collect();
    phrases.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    // One surface per stem: the most frequent ("panels" over "panel").
    let mut by_stem: BTreeMap<String, (f64, usize, String)> = BTreeMap::new();
    for (word, (count, nounish)) in singles {
        let score = weight(&word) * if nounish { 1.5 } else { 1.0 };
        let display = if nounish {
            format!("the {word}")
        } else {
            word.clone()
        };
        let entry = by_stem
            .entry(stem(&word))
            .or_insert((score, 0, display.clone()));
        if count > entry.1 {
            *entry = (score, count, display);
        }
    }
    let mut singles: Vec<(f64, String)> = by_stem
        .into_values()
        .map(|(score, _, display)| (score, display))
        .collect();
    singles.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));

    let phrases: Vec<String> = phrases.into_iter().take(3).map(|(_, k)| k).collect();
    // Single words already covered by a phrase would only repeat it.
    let in_phrase = |k: &str| {
        let word = k.strip_prefix("the ").unwrap_or(k);
        phrases.iter().any(|p| p.split(' ').any(|w| w == word))
    };
    let singles = singles
        .into_iter()
        .map(|(_, k)| k)
        .filter(|k| !in_phrase(k))
        .take(6);
    let keywords: Vec<String> = phrases.iter().cloned().chain(singles).collect();
    let templates = [
        "What does the text say about {}",
        "How is {} described in the text",
        "Why does {} matter here",
    ];
    let mut out = Vec::new();
    for t in templates {
        for k in &keywords {
            out.extend(finish(&t.replace("{}", k)));
        }
    }
    out
}

/// Last resort for sentences no template fits: ask about its opening words.
fn snippet_question(sentence: &str) -> Option<String> {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    if words.is_empty() {
        return None;
    }
    let snippet = words.iter().take(8).copied().collect::<Vec<_>>().join(" ");
    let snippet = snippet.trim_end_matches(|c: char| !c.is_alphanumeric());
    let ellipsis = if words.len() > 8 { "…" } else { "" };
    Some(format!(
        "What does the text mean by \"{snippet}{ellipsis}\"?"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRIDGE: &str = "\
The Golden Gate Bridge is a suspension bridge in San Francisco. \
The bridge was completed in 1937 after four years of work. \
Joseph Strauss designed the bridge with help from Charles Ellis. \
The main span is 1,280 meters long. \
There are 250 pairs of vertical suspender ropes on the bridge. \
The project will cost $12 million to maintain over the next decade. \
Engineers reduced wind sway by 40 percent in 2019. \
The Golden Gate Bridge carries about 112,000 vehicles every day.";

    fn q(text: &str, n: usize) -> Vec<String> {
        generate_questions(text, n)
    }

    #[test]
    fn questions_are_well_formed_distinct_and_bounded() {
        for n in [0, 1, 3, 8] {
            let qs = q(BRIDGE, n);
            assert_eq!(qs.len(), n.max(1), "{qs:?}");
            let mut keys: Vec<String> = qs.iter().map(|x| x.to_lowercase()).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), qs.len());
            for x in &qs {
                assert!(x.ends_with('?') && !x.ends_with("??"), "{x}");
                assert!(x.chars().next().is_some_and(char::is_uppercase), "{x}");
            }
        }
    }

    #[test]
    fn uses_sentence_transformations() {
        let sentences = split_sentences(BRIDGE);
        let proper = proper_words(&sentences);
        let all: Vec<String> = sentences
            .iter()
            .flat_map(|s| sentence_questions(s, &proper).0)
            .collect();
        for expected in [
            "When was the bridge completed?",
            "How many pairs of vertical suspender ropes are there on the bridge?",
            "How long is the main span?",
            "How much will the project cost to maintain over the next decade?",
            "Who designed the bridge with help from Charles Ellis?",
            "What is the Golden Gate Bridge?",
            "By how much did engineers reduce wind sway in 2019?",
        ] {
            assert!(
                all.iter().any(|x| x == expected),
                "missing {expected:?} in {all:#?}"
            );
        }
    }

    #[test]
    fn reporting_people_and_plain_verbs() {
        let text = "Critics say the program is expensive. Jeremy Hansen trained for years. \
                    Hansen is the first Canadian to fly to the Moon. The company hired 200 workers in May.";
        let sentences = split_sentences(text);
        let proper = proper_words(&sentences);
        let all: Vec<String> = sentences
            .iter()
            .flat_map(|s| sentence_questions(s, &proper).0)
            .collect();
        for expected in [
            "What do critics say?",
            "Who is Hansen?",
            "When did the company hire 200 workers?",
            "How many workers did the company hire in May?",
        ] {
            assert!(
                all.iter().any(|x| x == expected),
                "missing {expected:?} in {all:#?}"
            );
        }
        assert!(
            !all.iter().any(|x| x.contains("critics say the program")),
            "{all:#?}"
        );
    }

    #[test]
    fn produces_n_for_long_texts_and_differs_between_texts() {
        let other = "Coffee was first cultivated in Yemen. Coffee beans are roasted before brewing. \
                     Brazil produces more coffee than any other country. Many people drink coffee every morning. \
                     Too much caffeine can cause sleep problems. Decaffeinated coffee contains little caffeine.";
        let a = q(BRIDGE, 5);
        let b = q(other, 5);
        assert_eq!(b.len(), 5, "{b:?}");
        assert_ne!(a, b);
        let many = q(BRIDGE, 20);
        assert!(many.len() >= 8, "{many:?}");
    }

    #[test]
    fn lemmas_for_do_support() {
        for (past, base) in [
            ("completed", "complete"),
            ("stopped", "stop"),
            ("studied", "study"),
            ("installed", "install"),
            ("hired", "hire"),
            ("created", "create"),
            ("announced", "announce"),
            ("opened", "open"),
            ("visited", "visit"),
            ("released", "release"),
            ("built", "build"),
            ("reduced", "reduce"),
        ] {
            assert_eq!(past_base(past).as_deref(), Some(base), "{past}");
        }
        assert_eq!(past_base("need"), None);
        assert_eq!(present_base("aims").as_deref(), Some("aim"));
        assert_eq!(present_base("reaches").as_deref(), Some("reach"));
    }

    #[test]
    fn deterministic() {
        assert_eq!(q(BRIDGE, 6), q(BRIDGE, 6));
    }

    #[test]
    fn odd_inputs() {
        assert!(q("!!!!!!!!!!!!", 3).is_empty());
        let long = "x".repeat(10_000);
        for t in [
            "aaaaaaaaaaaa",
            long.as_str(),
            "東京は日本の首都です。人口はとても多いです。😀",
            "- milk\n- eggs\n- bread\n",
            "may may may may. 1 2 3 4 5 6.",
        ] {
            let qs = q(t, 4);
            assert!(!qs.is_empty() && qs.len() <= 4, "{t}: {qs:?}");
            assert!(qs.iter().all(|x| x.ends_with('?')));
        }
    }
}
