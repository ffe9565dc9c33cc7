//! Text primitives shared by every local algorithm: sentence splitting, word
//! spans and tokenization, a stopword list, a light suffix stemmer and word
//! budgeting helpers.
//!
//! Invariants: nothing here panics on any `&str`. Byte offsets are only ever
//! taken from `char_indices`, so every slice lands on a char boundary; byte
//! slicing by arithmetic happens only on words already checked to be ASCII.
//! All functions are pure and deterministic.

use std::borrow::Cow;

/// Abbreviations whose trailing period never ends a sentence ("Dr. Smith",
/// "e.g. London", "approx. 5"). Compared lowercased, without the final period.
const ABBREVIATIONS: &[&str] = &[
    "al", "approx", "apr", "aug", "ave", "blvd", "ca", "capt", "cf", "col", "corp", "dec", "dept",
    "dr", "e.g", "eg", "est", "feb", "fig", "gen", "gov", "hon", "i.e", "ie", "inc", "jan", "jr",
    "jul", "jun", "lt", "ltd", "mar", "mr", "mrs", "ms", "mt", "nov", "oct", "prof", "rd", "rep",
    "rev", "sen", "sep", "sept", "sgt", "sr", "st", "univ", "vs",
];

/// Abbreviations that are only abbreviations before a number ("No. 5",
/// "p. 12"); elsewhere the word is ordinary ("The answer is no.").
const NUMERIC_ABBREVIATIONS: &[&str] = &["no", "nos", "p", "pp", "vol", "ch", "sec"];

/// Common English function words. They carry little topical meaning, so they
/// are dropped before ranking, matching and keyword extraction.
const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "almost",
    "also",
    "although",
    "am",
    "among",
    "an",
    "and",
    "another",
    "any",
    "are",
    "aren't",
    "around",
    "as",
    "at",
    "be",
    "became",
    "because",
    "become",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "can't",
    "cannot",
    "could",
    "couldn't",
    "did",
    "didn't",
    "do",
    "does",
    "doesn't",
    "doing",
    "don't",
    "down",
    "during",
    "each",
    "either",
    "else",
    "etc",
    "even",
    "ever",
    "every",
    "few",
    "for",
    "from",
    "further",
    "get",
    "gets",
    "got",
    "had",
    "hadn't",
    "has",
    "hasn't",
    "have",
    "haven't",
    "having",
    "he",
    "he'd",
    "he'll",
    "he's",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "however",
    "i",
    "i'd",
    "i'll",
    "i'm",
    "i've",
    "if",
    "in",
    "into",
    "is",
    "isn't",
    "it",
    "it's",
    "its",
    "itself",
    "just",
    "let's",
    "many",
    "may",
    "me",
    "might",
    "more",
    "most",
    "much",
    "must",
    "my",
    "myself",
    "neither",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "often",
    "on",
    "once",
    "only",
    "onto",
    "or",
    "other",
    "others",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "per",
    "quite",
    "rather",
    "really",
    "same",
    "shall",
    "she",
    "she'd",
    "she'll",
    "she's",
    "should",
    "shouldn't",
    "since",
    "so",
    "some",
    "such",
    "than",
    "that",
    "that's",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "there's",
    "these",
    "they",
    "they'd",
    "they'll",
    "they're",
    "they've",
    "this",
    "those",
    "though",
    "through",
    "thus",
    "to",
    "too",
    "toward",
    "towards",
    "under",
    "until",
    "up",
    "upon",
    "us",
    "very",
    "via",
    "was",
    "wasn't",
    "we",
    "we'd",
    "we'll",
    "we're",
    "we've",
    "were",
    "weren't",
    "what",
    "what's",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "won't",
    "would",
    "wouldn't",
    "yet",
    "you",
    "you'd",
    "you'll",
    "you're",
    "you've",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// Leading list markers stripped from bullet lines ("- ", "• ", "1. ", "a) ").
const BULLET_CHARS: &[char] = &['-', '*', '•', '·', '–', '—', '+', '‣', '◦', '▪', '►', '>'];

/// True for ideographs and kana: scripts written without spaces, where each
/// character is treated as its own token so matching still works.
pub(crate) fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// Sentence terminators. Full-width CJK ones end a sentence even without a
/// following space.
fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？')
}

fn is_cjk_terminator(c: char) -> bool {
    matches!(c, '。' | '！' | '？')
}

/// Closing quotes/brackets that belong to the sentence they follow.
fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | '”' | '’' | ')' | ']' | '»' | '」' | '』')
}

/// Opening quotes/brackets skipped when looking at how the next sentence starts.
fn is_opener(c: char) -> bool {
    matches!(c, '"' | '\'' | '“' | '‘' | '(' | '[' | '«' | '「' | '『')
}

/// Splits `text` into sentences.
///
/// Handles abbreviations ("Dr.", "e.g."), initials ("J. K."), decimals
/// ("3.5"), ellipses, closing quotes, CJK terminators, and newline-separated
/// bullet lists (one item per sentence, marker stripped). Wrapped lines are
/// joined back together. Fragments without any letter or digit (":)", "---")
/// are attached to a neighbour, so every returned sentence contains a word
/// unless the whole text has none; in that case the trimmed text is the single
/// sentence. Returns an empty vector only for whitespace-only input. Each
/// sentence is trimmed with internal whitespace collapsed to single spaces.
pub(crate) fn split_sentences(text: &str) -> Vec<String> {
    let mut raw = Vec::new();
    for block in split_blocks(text) {
        split_block(&block, &mut raw);
    }
    // Attach word-less fragments (emoticons, separators) to a neighbour so
    // callers never see a "sentence" with nothing to rank or quote.
    let mut out: Vec<String> = Vec::new();
    let mut pending = String::new();
    for s in raw {
        if s.chars().any(char::is_alphanumeric) {
            let merged = if pending.is_empty() {
                s
            } else {
                format!("{} {}", std::mem::take(&mut pending), s)
            };
            out.push(merged);
        } else if let Some(last) = out.last_mut() {
            last.push(' ');
            last.push_str(&s);
        } else {
            if !pending.is_empty() {
                pending.push(' ');
            }
            pending.push_str(&s);
        }
    }
    if out.is_empty() && !pending.is_empty() {
        out.push(pending);
    }
    out
}

/// Groups lines into blocks: a blank line, a bullet, or a line that ends
/// with terminal punctuation or is short (a heading) closes the block; a
/// long line without final punctuation, or a next line starting in
/// lowercase, is treated as wrapped prose and joined.
fn split_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut cur = String::new();
    let mut prev_open = false; // whether the previous line looks wrapped
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            flush(&mut cur, &mut blocks);
            prev_open = false;
            continue;
        }
        let (body, bullet) = strip_bullet(line);
        let starts_lower = body.chars().next().is_some_and(char::is_lowercase);
        if bullet || !(prev_open || starts_lower) {
            flush(&mut cur, &mut blocks);
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(body);
        let last = body.chars().last().unwrap_or(' ');
        prev_open = body.chars().count() >= 40 && !is_terminator(last) && !is_closer(last);
    }
    flush(&mut cur, &mut blocks);
    blocks
}

fn flush(cur: &mut String, blocks: &mut Vec<String>) {
    if !cur.trim().is_empty() {
        blocks.push(std::mem::take(cur));
    }
    cur.clear();
}

/// Removes a leading list marker. Returns the rest and whether one was found.
fn strip_bullet(line: &str) -> (&str, bool) {
    let mut chars = line.char_indices();
    if let Some((_, c)) = chars.next()
        && BULLET_CHARS.contains(&c)
        && let Some((i, n)) = chars.next()
        && n.is_whitespace()
    {
        return (line[i..].trim_start(), true);
    }
    // "12. item", "3) item", "b) item"
    let mut digits = 0;
    let mut letters = 0;
    for (i, c) in line.char_indices() {
        if c.is_ascii_digit() && letters == 0 {
            digits += 1;
        } else if c.is_ascii_alphabetic() && digits == 0 && letters == 0 {
            letters += 1;
        } else if (c == '.' && digits > 0 || c == ')') && (1..=3).contains(&(digits + letters)) {
            let rest = &line[i + c.len_utf8()..];
            if rest.starts_with(char::is_whitespace) {
                return (rest.trim_start(), true);
            }
            break;
        } else {
            break;
        }
    }
    (line, false)
}

/// Splits one block at sentence terminators, appending trimmed sentences.
fn split_block(block: &str, out: &mut Vec<String>) {
    let chars: Vec<char> = block.chars().collect();
    let n = chars.len();
    let mut start = 0;
    let mut i = 0;
    while i < n {
        if !is_terminator(chars[i]) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < n && is_terminator(chars[j]) {
            j += 1;
        }
        while j < n && is_closer(chars[j]) {
            j += 1;
        }
        if is_boundary(&chars, start, i, j) {
            // A word-less token right after the terminator (":)", "😀")
            // belongs to the sentence it reacts to.
            let mut k = j;
            while k < n && chars[k].is_whitespace() {
                k += 1;
            }
            let token_start = k;
            while k < n && !chars[k].is_whitespace() && !chars[k].is_alphanumeric() {
                k += 1;
            }
            if k > token_start && (k == n || chars[k].is_whitespace()) {
                j = k;
            }
            push_sentence(&chars[start..j], out);
            start = j;
        }
        i = j;
    }
    if start < n {
        push_sentence(&chars[start..], out);
    }
}

fn push_sentence(chars: &[char], out: &mut Vec<String>) {
    let s = collapse_whitespace(&chars.iter().collect::<String>()).into_owned();
    if !s.is_empty() {
        out.push(s);
    }
}

/// Decides whether the terminator run `chars[i..j]` (closers included) ends
/// the sentence that began at `start`.
fn is_boundary(chars: &[char], start: usize, i: usize, j: usize) -> bool {
    if chars[i..j].iter().any(|&c| is_cjk_terminator(c)) {
        return true;
    }
    if j >= chars.len() {
        return true;
    }
    // "3.5", "example.com", "U.S.A", "Yahoo!Inc": no space, no boundary.
    if !chars[j].is_whitespace() {
        return false;
    }
    let mut k = j;
    while k < chars.len() && (chars[k].is_whitespace() || is_opener(chars[k])) {
        k += 1;
    }
    let Some(&next) = chars.get(k) else {
        return true;
    };
    // A sentence does not continue in lowercase: "e.g. the", "approx. five",
    // "...and then", "'Help!' she cried".
    if next.is_lowercase() {
        return false;
    }
    let run = &chars[i..j];
    let single_period = run.first() == Some(&'.') && run.iter().filter(|c| **c == '.').count() == 1;
    if !single_period {
        return true;
    }
    // The word right before the period.
    let mut w = i;
    while w > start && !chars[w - 1].is_whitespace() {
        w -= 1;
    }
    let word: String = chars[w..i]
        .iter()
        .skip_while(|c| is_opener(**c))
        .flat_map(|c| c.to_lowercase())
        .collect();
    if ABBREVIATIONS.contains(&word.as_str()) {
        return false;
    }
    if NUMERIC_ABBREVIATIONS.contains(&word.as_str()) && next.is_ascii_digit() {
        return false;
    }
    // Initials ("J. K. Rowling") and dotted acronyms ("U.S."): keeping them
    // attached merges at worst two sentences, which hurts less than a cut.
    let letters: Vec<char> = chars[w..i]
        .iter()
        .copied()
        .filter(|c| c.is_alphabetic())
        .collect();
    if letters.len() == 1 && letters[0].is_uppercase() && i - w == 1 {
        return false;
    }
    // "a.m."/"p.m." before a capital usually ends the sentence.
    if word == "a.m" || word == "p.m" {
        return true;
    }
    // Dotted acronyms have short segments ("U.S", "Ph.D"); "example.com"
    // does not.
    let segments: Vec<&[char]> = chars[w..i].split(|c| *c == '.').collect();
    let dotted = segments.len() > 1
        && segments
            .iter()
            .all(|seg| (1..=2).contains(&seg.len()) && seg.iter().all(|c| c.is_alphabetic()));
    if dotted {
        return false;
    }
    // Inline numbering right at a sentence start or after a colon: "1. Mix".
    let is_small_number =
        (1..=2).contains(&(i - w)) && chars[w..i].iter().all(char::is_ascii_digit);
    if is_small_number {
        let before = chars[start..w].iter().rev().find(|c| !c.is_whitespace());
        if before.is_none() || before == Some(&':') {
            return false;
        }
    }
    true
}

/// Byte ranges of the words in `text`: runs of letters/digits, keeping
/// inner apostrophes ("don't") and digit separators ("3.5", "5,000"). Each
/// CJK character is its own word. Ranges always fall on char boundaries.
pub(crate) fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let cs: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |k: usize| cs.get(k).map_or(text.len(), |x| x.0);
    let mut out = Vec::new();
    let mut k = 0;
    while k < cs.len() {
        let c = cs[k].1;
        if is_cjk(c) {
            out.push((cs[k].0, end_of(k + 1)));
            k += 1;
            continue;
        }
        if !c.is_alphanumeric() {
            k += 1;
            continue;
        }
        let start = k;
        k += 1;
        while k < cs.len() {
            let c = cs[k].1;
            if is_cjk(c) {
                break;
            }
            if c.is_alphanumeric() {
                k += 1;
                continue;
            }
            let prev = cs[k - 1].1;
            let next = cs.get(k + 1).map(|x| x.1);
            let joins = match c {
                '\'' | '’' => {
                    prev.is_alphanumeric() && next.is_some_and(|n| n.is_alphabetic() && !is_cjk(n))
                }
                '.' | ',' => prev.is_ascii_digit() && next.is_some_and(|n| n.is_ascii_digit()),
                _ => false,
            };
            if joins {
                k += 2;
            } else {
                break;
            }
        }
        out.push((cs[start].0, end_of(k)));
    }
    out
}

/// Lowercases a word and normalises typographic apostrophes to `'`.
pub(crate) fn normalize_word(word: &str) -> String {
    word.chars()
        .flat_map(char::to_lowercase)
        .map(|c| if c == '’' { '\'' } else { c })
        .collect()
}

/// Lowercased words of `text` (see [`word_spans`]).
pub(crate) fn tokenize(text: &str) -> Vec<String> {
    word_spans(text)
        .into_iter()
        .map(|(s, e)| normalize_word(&text[s..e]))
        .collect()
}

/// True for function words that carry no topic (expects a lowercased word).
pub(crate) fn is_stopword(word: &str) -> bool {
    STOPWORDS.contains(&word)
}

fn is_vowel(b: u8) -> bool {
    matches!(b, b'a' | b'e' | b'i' | b'o' | b'u' | b'y')
}

/// A light suffix stemmer, so that "running", "runs" and "run" (or
/// "cities"/"city", "completed"/"complete") share one key. Only ASCII
/// lowercase words are changed; anything else is returned as is. It is
/// deliberately conservative: it only needs to be consistent, not to
/// produce dictionary words.
pub(crate) fn stem(word: &str) -> String {
    // ASCII-only from here on, so byte slicing below is always safe.
    if word.len() <= 3 || !word.bytes().all(|b| b.is_ascii_lowercase()) {
        return word.to_string();
    }
    let mut w = word.to_string();
    // Plurals and third person singular.
    if w.ends_with("sses") {
        w.truncate(w.len() - 2);
    } else if w.ends_with("ies") && w.len() > 4 {
        w.truncate(w.len() - 3);
        w.push('y');
    } else if w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        w.pop();
    }
    // Verb, adverb and noun endings; the remaining base must keep a vowel
    // and three letters so "thing", "need" or "only" stay intact.
    let keeps = |base: &str| base.len() >= 3 && base.bytes().any(is_vowel);
    if let Some(base) = w.strip_suffix("ied").filter(|b| b.len() >= 2) {
        w = format!("{base}y");
    } else if let Some(base) = w.strip_suffix("ing").filter(|b| keeps(b)) {
        w = undouble(base);
    } else if let Some(base) = w.strip_suffix("ed").filter(|b| keeps(b)) {
        w = undouble(base);
    } else if let Some(base) = w.strip_suffix("ily").filter(|b| b.len() >= 3) {
        w = format!("{base}y");
    } else if let Some(base) = w.strip_suffix("ly").filter(|b| keeps(b)) {
        w = base.to_string();
    } else if let Some(base) = w.strip_suffix("iness").filter(|b| b.len() >= 3) {
        w = format!("{base}y");
    } else if let Some(base) = w.strip_suffix("ness").filter(|b| keeps(b)) {
        w = base.to_string();
    } else if let Some(base) = w.strip_suffix("ment").filter(|b| b.len() >= 4) {
        w = base.to_string();
    }
    // "make"/"making" -> "mak": drop a final silent e.
    if w.len() > 3 && w.ends_with('e') {
        w.pop();
    }
    w
}

/// "runn" -> "run", "stopp" -> "stop"; keeps "fall", "pass", "buzz".
fn undouble(base: &str) -> String {
    let b = base.as_bytes();
    let n = b.len();
    if n >= 2
        && b[n - 1] == b[n - 2]
        && !is_vowel(b[n - 1])
        && !matches!(b[n - 1], b'l' | b's' | b'z')
    {
        base[..n - 1].to_string()
    } else {
        base.to_string()
    }
}

/// Stemmed content words of `text`: tokens minus stopwords, possessive
/// "'s" and lone ASCII letters. These are the terms every ranker works on.
pub(crate) fn content_terms(text: &str) -> Vec<String> {
    tokenize(text)
        .into_iter()
        .filter_map(|t| {
            let t = t.strip_suffix("'s").map_or(t.as_str(), |b| b).to_string();
            if is_stopword(&t) {
                return None;
            }
            let mut cs = t.chars();
            let lone_ascii =
                matches!((cs.next(), cs.next()), (Some(c), None) if c.is_ascii_alphabetic());
            if lone_ascii { None } else { Some(stem(&t)) }
        })
        .collect()
}

/// Number of whitespace-separated words: the unit of every word budget (and
/// of `metadata.word_count`). ASCII text, the common case, is counted byte by
/// byte; anything else by Unicode whitespace, with the same result.
pub(crate) fn word_count(text: &str) -> usize {
    if !text.is_ascii() {
        return text.split_whitespace().count();
    }
    let mut words = 0;
    let mut in_word = false;
    for &b in text.as_bytes() {
        let space = is_ascii_space(b);
        words += usize::from(in_word && space);
        in_word = !space;
    }
    words + usize::from(in_word)
}

/// The ASCII characters `char::is_whitespace` accepts (unlike
/// `u8::is_ascii_whitespace`, this includes the vertical tab).
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// The words of `text` joined by single spaces: runs of whitespace collapse to
/// one space and the ends are trimmed. Text already in that form, the common
/// case, is borrowed as is. Other ASCII text is split byte by byte; anything
/// else by Unicode whitespace, with the same result.
pub(crate) fn collapse_whitespace(text: &str) -> Cow<'_, str> {
    if is_collapsed(text) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(collapse_into_new(text))
}

/// True when `text` has single spaces between words, none at the ends and
/// no control or non-ASCII byte: collapsing it would change nothing. Text
/// with tabs, newlines or Unicode answers false and takes the slow path.
fn is_collapsed(text: &str) -> bool {
    let bytes = text.as_bytes();
    let next = bytes.get(1..).unwrap_or_default();
    // Branch-free folds, so the compiler vectorises them.
    let unusual = bytes
        .iter()
        .fold(false, |seen, &b| seen | !(0x20..0x80).contains(&b));
    let doubled = bytes
        .iter()
        .zip(next)
        .fold(false, |seen, (&a, &b)| seen | ((a == b' ') & (b == b' ')));
    !unusual && !doubled && bytes.first() != Some(&b' ') && bytes.last() != Some(&b' ')
}

fn collapse_into_new(text: &str) -> String {
    if !text.is_ascii() {
        let mut out = String::with_capacity(text.len());
        for word in text.split_whitespace() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
        }
        return out;
    }
    let mut out = Vec::with_capacity(text.len());
    let words = text
        .as_bytes()
        .split(|&b| is_ascii_space(b))
        .filter(|word| !word.is_empty());
    for word in words {
        if !out.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(word);
    }
    // ASCII in, ASCII out: the conversion cannot fail.
    String::from_utf8(out).unwrap_or_default()
}

/// Keeps at most `max_words` whitespace-separated words. When words are cut,
/// dangling punctuation is trimmed and "…" is appended to the last word (so
/// the word count never exceeds `max_words`).
pub(crate) fn truncate_words(text: &str, max_words: usize) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() <= max_words {
        return words.join(" ");
    }
    let kept = words[..max_words].join(" ");
    let trimmed = kept.trim_end_matches(|c: char| !c.is_alphanumeric() && !is_closer(c));
    let base = if trimmed.is_empty() {
        kept.as_str()
    } else {
        trimmed
    };
    format!("{base}…")
}

/// `word` with its first character uppercased (char-aware).
pub(crate) fn capitalize_first(word: &str) -> String {
    let mut cs = word.chars();
    match cs.next() {
        Some(c) => c.to_uppercase().chain(cs).collect(),
        None => String::new(),
    }
}

/// `word` lowercased and stripped of surrounding punctuation ("(Boston)," ->
/// "boston"). Used when working on whitespace-separated words.
pub(crate) fn bare(word: &str) -> String {
    normalize_word(word.trim_matches(|c: char| !c.is_alphanumeric()))
}

/// English month names, lowercase (date cues for QA and question generation).
pub(super) const MONTHS: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// English weekday names, lowercase.
pub(super) const WEEKDAYS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapsing_whitespace_matches_unicode_splitting() {
        for text in [
            "",
            " \t\r\n ",
            "one",
            "two words",
            "two words ",
            " two words",
            "two\twords",
            "  two  words  ",
            "tabs\tand\r\nline\u{b}breaks\u{c}here",
            "caf\u{e9}\u{85}na\u{ef}ve \u{3000} \u{6771}\u{4eac}\u{a0}x",
        ] {
            let expected = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let collapsed = collapse_whitespace(text);
            assert_eq!(collapsed, expected, "{text:?}");
            // Borrowed exactly when nothing had to change (ASCII only).
            let borrowed = matches!(collapsed, Cow::Borrowed(_));
            assert_eq!(borrowed, text.is_ascii() && expected == text, "{text:?}");
        }
    }

    #[test]
    fn splits_simple_sentences() {
        let s = split_sentences("The sky is blue. The grass is green! Is it? Yes.");
        assert_eq!(
            s,
            vec!["The sky is blue.", "The grass is green!", "Is it?", "Yes."]
        );
    }

    #[test]
    fn keeps_abbreviations_decimals_and_initials_together() {
        let s = split_sentences(
            "Dr. Smith paid $3.5 million, e.g. for land. J. K. Rowling wrote it in the U.S. today. Done.",
        );
        assert_eq!(
            s,
            vec![
                "Dr. Smith paid $3.5 million, e.g. for land.",
                "J. K. Rowling wrote it in the U.S. today.",
                "Done."
            ]
        );
    }

    #[test]
    fn handles_times_and_urls() {
        let s = split_sentences("We met at 5 p.m. The talk was at example.com. Then we left.");
        assert_eq!(
            s,
            vec![
                "We met at 5 p.m.",
                "The talk was at example.com.",
                "Then we left."
            ]
        );
    }

    #[test]
    fn handles_ellipses_and_quotes() {
        let s = split_sentences(
            "He waited... and waited. \"Stop!\" she cried. \"Fine.\" Then he left…  Later it rained.",
        );
        assert_eq!(
            s,
            vec![
                "He waited... and waited.",
                "\"Stop!\" she cried.",
                "\"Fine.\"",
                "Then he left…",
                "Later it rained."
            ]
        );
    }

    #[test]
    fn handles_bullets_wrapped_lines_and_cjk() {
        let text = "Shopping list\n- eggs and milk\n* bread\n1. cheese\n\nThis paragraph is wrapped over a line break that\ncontinues here. 今天天气很好。我们去公园！";
        let s = split_sentences(text);
        assert_eq!(
            s,
            vec![
                "Shopping list",
                "eggs and milk",
                "bread",
                "cheese",
                "This paragraph is wrapped over a line break that continues here.",
                "今天天气很好。",
                "我们去公园！"
            ]
        );
    }

    #[test]
    fn wordless_fragments_are_attached() {
        assert_eq!(
            split_sentences("Great stuff! :) Really."),
            vec!["Great stuff! :)", "Really."]
        );
        assert_eq!(split_sentences("!!!!!!!!!!!!"), vec!["!!!!!!!!!!!!"]);
        assert!(split_sentences("   \n  ").is_empty());
    }

    #[test]
    fn tokenizes_lowercase_with_contractions_and_numbers() {
        assert_eq!(
            tokenize("Don’t pay 5,000 or 3.5 USD—ever! 東京"),
            vec![
                "don't", "pay", "5,000", "or", "3.5", "usd", "ever", "東", "京"
            ]
        );
    }

    #[test]
    fn stems_inflections_to_one_key() {
        for group in [
            &["run", "runs", "running"][..],
            &["city", "cities"],
            &["complete", "completed", "completes"],
            &["make", "making", "makes"],
            &["install", "installed", "installing", "installs"],
            &["happy", "happiness", "happily"],
        ] {
            let first = stem(group[0]);
            for w in group {
                assert_eq!(stem(w), first, "{w}");
            }
        }
        assert_eq!(stem("thing"), "thing");
        assert_eq!(stem("need"), "need");
        assert_eq!(stem("café"), "café");
    }

    #[test]
    fn content_terms_drop_stopwords() {
        assert_eq!(
            content_terms("The city's panels are running."),
            vec!["city", "panel", "run"]
        );
    }

    #[test]
    fn truncation_respects_budget() {
        assert_eq!(truncate_words("one two, three four", 2), "one two…");
        assert_eq!(truncate_words("one two", 5), "one two");
        assert_eq!(word_count(&truncate_words("a b c d e f", 3)), 3);
        for text in [
            "",
            "  ",
            "one",
            " one  two\tthree\n",
            "a\x0Bb\x0Cc\rd",
            "é tü  ß",
            "x\u{85}y z",
        ] {
            assert_eq!(
                word_count(text),
                text.split_whitespace().count(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn no_panic_on_odd_input() {
        let long = "x".repeat(10_000);
        for t in [
            "aaaaaaaaaaaa",
            long.as_str(),
            "😀😀 ok 你好。 é… «»",
            "- \n* \n1.\n",
            "...",
            "a.b.c.d.",
        ] {
            let _ = split_sentences(t);
            let _ = content_terms(t);
            let _ = truncate_words(t, 1);
        }
    }
}
