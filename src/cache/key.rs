//! Cache keys: what makes two jobs "the same answer".
//!
//! A key is `keel:v1:cache:{operation}:{sha256 hex}` (no literal braces: the
//! operation is a plain segment, not a Redis Cluster hash tag, so keys spread
//! over every slot — each cache command touches a single key). The hash covers,
//! in a fixed order and each field length-prefixed (so no two different field
//! tuples can concatenate to the same bytes): a domain tag, the operation, the
//! text with every whitespace run collapsed to one space, the one option that
//! matters to the operation (`max_length` for summarize, `max_points` for
//! key_points, `num_questions` for questions, none otherwise — an option the
//! operation ignores never fragments the cache), the question (qa, whitespace
//! normalised the same way), the provider and the model.
//!
//! Invariants: the user's text never appears in a key (unlike the reference
//! project's keys); the same job, provider and model always give the same key
//! in every keel instance and version sharing the `v1` prefix.
//!
//! Invalidation patterns ([`KeyPattern`]) are globs over a key's suffix,
//! `{operation}:{hash}`: `*` matches any run of characters, `?` exactly one.
//! `summarize:*` is every summary, `*` everything, `qa:3f*` the qa entries
//! whose hash starts with `3f`. Because keys hash the text, the question,
//! the options, the provider and the model, a pattern can select by
//! operation (and by hash) only — never by words of the text.

use crate::job::{Job, Operation};
use crate::nlp::text::collapse_whitespace;
use sha2::{Digest, Sha256};
use std::fmt;
use std::hash::{Hash, Hasher};

/// Every cache key starts with this; `SCAN` patterns are built on it.
pub const KEY_PREFIX: &str = "keel:v1:cache:";

/// Domain tag hashed first, so another use of SHA-256 over similar fields
/// cannot produce a cache key by accident. Bump with the prefix's version.
const DOMAIN: &[u8] = b"keel-cache-v1";

/// The identity of one cached answer.
///
/// Cheap to clone and hash; usable as a [`super::SingleFlight`] key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    key: String,
    operation: Operation,
}

impl CacheKey {
    /// Builds the key of `job` answered by `provider` with `model`.
    pub fn new(job: &Job, provider: &str, model: &str) -> CacheKey {
        let mut hasher = Sha256::new();
        field(&mut hasher, DOMAIN);
        field(&mut hasher, job.operation.as_str().as_bytes());
        normalized_field(&mut hasher, &job.text);
        let option = match job.operation {
            Operation::Summarize => Some(("max_length", job.options.max_length)),
            Operation::KeyPoints => Some(("max_points", job.options.max_points)),
            Operation::Questions => Some(("num_questions", job.options.num_questions)),
            Operation::Sentiment | Operation::Qa => None,
        };
        let option = option.map(|(name, value)| format!("{name}={value}"));
        field(&mut hasher, option.as_deref().unwrap_or("").as_bytes());
        let question = match job.operation {
            Operation::Qa => job.question.as_deref().unwrap_or(""),
            _ => "",
        };
        normalized_field(&mut hasher, question);
        field(&mut hasher, provider.as_bytes());
        field(&mut hasher, model.as_bytes());
        let digest = hasher.finalize();

        let op = job.operation.as_str();
        let mut key = String::with_capacity(KEY_PREFIX.len() + op.len() + 1 + 64);
        key.push_str(KEY_PREFIX);
        key.push_str(op);
        key.push(':');
        push_hex(&mut key, &digest);
        CacheKey {
            key,
            operation: job.operation,
        }
    }

    /// The full key, as stored in Redis.
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The key without [`KEY_PREFIX`]: `{operation}:{hash}`, what invalidation
    /// patterns are matched against.
    pub fn suffix(&self) -> &str {
        self.key.strip_prefix(KEY_PREFIX).unwrap_or(&self.key)
    }

    /// The operation the key belongs to.
    pub fn operation(&self) -> Operation {
        self.operation
    }
}

/// Hashes only the key's last 16 hex digits: they are digest bits, which
/// already depend on everything else in the key, and 16 bytes hash in a
/// fraction of the time the ~90-byte key takes (the single-flight map looks
/// a key up three times per cache miss). Equal keys have equal tails, so
/// this agrees with `Eq`.
impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let bytes = self.key.as_bytes();
        state.write(bytes.get(bytes.len().saturating_sub(16)..).unwrap_or(bytes));
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

/// Hashes one field as `u64 LE length ‖ bytes`.
fn field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// Hashes `text` with whitespace runs collapsed to one space and the ends
/// trimmed, as one length-prefixed field.
fn normalized_field(hasher: &mut Sha256, text: &str) {
    // One pass into one buffer, then one hash update: many small updates
    // (one per word) cost more than the hashing itself.
    let normalized = collapse_whitespace(text);
    hasher.update((normalized.len() as u64).to_le_bytes());
    hasher.update(normalized.as_bytes());
}

/// Longest accepted invalidation pattern, in bytes.
pub const MAX_PATTERN_LEN: usize = 200;

/// Why an invalidation pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPattern {
    /// The pattern is empty.
    #[error(
        "empty pattern: a pattern is a glob over `{{operation}}:{{sha256 hex}}`, \
         e.g. `summarize:*` or `*`"
    )]
    Empty,
    /// The pattern is longer than [`MAX_PATTERN_LEN`].
    #[error("pattern of {len} bytes is longer than the {max} allowed")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The pattern has a character no key can contain (keys are lowercase
    /// operation names, `:` and hex digits), or a glob feature not supported.
    #[error(
        "pattern {pattern:?} contains {ch:?}: allowed are a-z, 0-9, '_', ':', '*' (any run) \
         and '?' (one character); a pattern matches `{{operation}}:{{sha256 hex}}`, \
         e.g. `summarize:*`, and cannot match the text, which keys only hold hashed"
    )]
    BadChar {
        /// The pattern.
        pattern: String,
        /// The first offending character.
        ch: char,
    },
}

/// A validated invalidation pattern (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern(String);

impl KeyPattern {
    /// Validates `pattern`.
    pub fn parse(pattern: &str) -> Result<KeyPattern, InvalidPattern> {
        if pattern.is_empty() {
            return Err(InvalidPattern::Empty);
        }
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(InvalidPattern::TooLong {
                len: pattern.len(),
                max: MAX_PATTERN_LEN,
            });
        }
        let allowed = |c: char| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | ':' | '*' | '?')
        };
        if let Some(ch) = pattern.chars().find(|c| !allowed(*c)) {
            return Err(InvalidPattern::BadChar {
                pattern: pattern.to_string(),
                ch,
            });
        }
        Ok(KeyPattern(pattern.to_string()))
    }

    /// The pattern matching every key of `operation`.
    pub fn operation(operation: Operation) -> KeyPattern {
        KeyPattern(format!("{}:*", operation.as_str()))
    }

    /// The pattern matching every key.
    pub fn all() -> KeyPattern {
        KeyPattern("*".into())
    }

    /// The pattern as given, e.g. `summarize:*`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Redis `SCAN MATCH` argument: [`KEY_PREFIX`] + pattern. The
    /// allowed characters mean the same to Redis as to [`Self::matches`].
    pub fn redis_match(&self) -> String {
        format!("{KEY_PREFIX}{}", self.0)
    }

    /// True when the full key `key` (prefix included) matches.
    pub fn matches(&self, key: &str) -> bool {
        key.strip_prefix(KEY_PREFIX)
            .is_some_and(|suffix| glob(self.0.as_bytes(), suffix.as_bytes()))
    }
}

/// Glob match with `*` (any run, possibly empty) and `?` (one byte);
/// linear-time backtracking over the last `*`.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobOptions;

    fn job(op: Operation, text: &str) -> Job {
        Job {
            operation: op,
            text: text.into(),
            question: (op == Operation::Qa).then(|| "What is it?".to_string()),
            options: JobOptions::default(),
        }
    }

    fn key(job: &Job) -> CacheKey {
        CacheKey::new(job, "openai", "gpt-4o-mini")
    }

    #[test]
    fn key_shape_has_no_text_and_no_hash_tag() {
        let j = job(Operation::KeyPoints, "The secret launch code is hunter2.");
        let k = key(&j);
        let s = k.as_str();
        assert!(s.starts_with("keel:v1:cache:key_points:"), "{s}");
        assert_eq!(s.len(), KEY_PREFIX.len() + "key_points:".len() + 64);
        assert!(!s.contains("hunter2") && !s.contains('{') && !s.contains('}'));
        assert_eq!(k.suffix(), &s[KEY_PREFIX.len()..]);
        assert_eq!(k.operation(), Operation::KeyPoints);
        assert_eq!(k, key(&j), "deterministic");
    }

    #[test]
    fn keys_hash_by_their_digest_tail() {
        use std::collections::HashSet;
        use std::hash::BuildHasher;
        let state = std::collections::hash_map::RandomState::new();
        let j = job(Operation::Summarize, "A text to summarise, twice.");
        assert_eq!(state.hash_one(key(&j)), state.hash_one(key(&j.clone())));
        let hashes: HashSet<u64> = (0..2000)
            .map(|i| state.hash_one(key(&job(Operation::Sentiment, &format!("text number {i}")))))
            .collect();
        assert_eq!(hashes.len(), 2000);
    }

    /// Keys outlive a process (Redis keeps them across upgrades): a change
    /// to the hashing must be deliberate, with a new `KEY_PREFIX` version.
    /// The value was computed with the code of commit 239cf2a.
    #[test]
    fn keys_are_stable_across_releases() {
        let j = Job {
            operation: Operation::Qa,
            text: "Rust is   fast.\n\nAnd\tsafe, caf\u{e9}\u{a0}time.".into(),
            question: Some(" What  is it?\n".into()),
            options: JobOptions::default(),
        };
        assert_eq!(
            key(&j).as_str(),
            "keel:v1:cache:qa:8855fb95a938f906be06070b52d94f259b6105dfdfba1e280dbd92b5154f60e5"
        );
    }

    #[test]
    fn whitespace_runs_are_normalised() {
        let a = job(Operation::Summarize, "Rust is   fast.\n\nAnd\tsafe.");
        let b = job(Operation::Summarize, "Rust is fast. And safe.");
        let c = job(Operation::Summarize, "Rust is fast. And safe!");
        let d = job(Operation::Summarize, "Rustis fast. And safe.");
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&b), key(&c));
        assert_ne!(key(&b), key(&d));
    }

    #[test]
    fn only_the_relevant_option_counts() {
        let text = "A text long enough to be a job.";
        let mut a = job(Operation::Summarize, text);
        let mut b = a.clone();
        b.options.max_points = 9;
        b.options.num_questions = 2;
        assert_eq!(
            key(&a),
            key(&b),
            "summarize ignores max_points / num_questions"
        );
        b.options.max_length = 50;
        assert_ne!(key(&a), key(&b), "summarize depends on max_length");

        for op in [Operation::Sentiment, Operation::Qa] {
            a = job(op, text);
            b = a.clone();
            b.options = JobOptions {
                max_length: 7,
                max_points: 8,
                num_questions: 9,
            };
            assert_eq!(key(&a), key(&b), "{op} has no relevant option");
        }

        a = job(Operation::KeyPoints, text);
        b = a.clone();
        b.options.max_length = 3;
        assert_eq!(key(&a), key(&b));
        b.options.max_points = 3;
        assert_ne!(key(&a), key(&b));

        a = job(Operation::Questions, text);
        b = a.clone();
        b.options.max_points = 3;
        assert_eq!(key(&a), key(&b));
        b.options.num_questions = 3;
        assert_ne!(key(&a), key(&b));
    }

    #[test]
    fn question_provider_model_and_operation_change_the_key() {
        let text = "A text long enough to be a job.";
        let a = job(Operation::Qa, text);
        let mut b = a.clone();
        b.question = Some("Who is it?".into());
        assert_ne!(key(&a), key(&b));
        b.question = Some("  What   is\nit?".into());
        assert_eq!(key(&a), key(&b), "question whitespace is normalised");

        assert_ne!(
            CacheKey::new(&a, "openai", "m1"),
            CacheKey::new(&a, "gemini", "m1")
        );
        assert_ne!(
            CacheKey::new(&a, "openai", "m1"),
            CacheKey::new(&a, "openai", "m2")
        );
        assert_ne!(key(&a), key(&job(Operation::Sentiment, text)));
    }

    #[test]
    fn globs() {
        for (p, t, m) in [
            ("*", "", true),
            ("*", "summarize:ab", true),
            ("summarize:*", "summarize:ab", true),
            ("summarize:*", "sentiment:ab", false),
            ("s*:a?", "summarize:ab", true),
            ("s*:a?", "summarize:abc", false),
            ("*:*b", "qa:aab", true),
            ("qa", "qa:1", false),
            ("?a:*", "qa:1", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
        ] {
            assert_eq!(glob(p.as_bytes(), t.as_bytes()), m, "{p} ~ {t}");
        }
    }

    #[test]
    fn patterns_match_the_suffix_and_are_validated() {
        let k = key(&job(Operation::KeyPoints, "Some text to hash here."));
        assert!(
            KeyPattern::parse("key_points:*")
                .unwrap()
                .matches(k.as_str())
        );
        assert!(KeyPattern::all().matches(k.as_str()));
        assert!(KeyPattern::operation(Operation::KeyPoints).matches(k.as_str()));
        assert!(!KeyPattern::operation(Operation::Summarize).matches(k.as_str()));
        assert!(!KeyPattern::all().matches("other:prefix:key_points:x"));
        let prefix = &k.suffix()[..14];
        assert!(
            KeyPattern::parse(&format!("{prefix}*"))
                .unwrap()
                .matches(k.as_str())
        );
        assert_eq!(
            KeyPattern::parse("qa:*").unwrap().redis_match(),
            "keel:v1:cache:qa:*"
        );

        assert_eq!(KeyPattern::parse(""), Err(InvalidPattern::Empty));
        assert!(matches!(
            KeyPattern::parse(&"*".repeat(201)),
            Err(InvalidPattern::TooLong { len: 201, .. })
        ));
        for (bad, ch) in [
            ("*hello world*", ' '),
            ("Summarize:*", 'S'),
            ("[a-z]*", '['),
            ("a\\*", '\\'),
        ] {
            let err = KeyPattern::parse(bad).unwrap_err();
            assert_eq!(
                err,
                InvalidPattern::BadChar {
                    pattern: bad.into(),
                    ch
                }
            );
            assert!(err.to_string().contains("cannot match the text"), "{err}");
        }
    }

    #[test]
    fn fields_cannot_collide_by_concatenation() {
        let a = job(Operation::Sentiment, "A text long enough to be a job.");
        assert_ne!(
            CacheKey::new(&a, "open", "aimodel"),
            CacheKey::new(&a, "openai", "model")
        );
    }
}
