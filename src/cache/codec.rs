//! The stored value ([`CachedAnswer`]) and its byte encoding.
//!
//! Format: one format byte, then the payload. `j` = plain JSON; `z` = gzip'd
//! JSON, used when the JSON is longer than the compression threshold *and*
//! gzip actually makes it smaller. Anything else — an unknown prefix, bad
//! gzip, JSON of another shape, a payload inflating past
//! [`MAX_DECODED_BYTES`] — decodes to `None`: the cache treats it as a miss
//! and the next put overwrites it. Decoding never panics and never errors.

use crate::job::JobOutput;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

/// Format byte of plain JSON.
const PLAIN: u8 = b'j';
/// Format byte of gzip-compressed JSON.
const GZIP: u8 = b'z';
/// Largest JSON a stored value may inflate to (16 MiB); more is treated as
/// corrupt, so a hostile or broken value cannot exhaust memory.
pub const MAX_DECODED_BYTES: u64 = 16 * 1024 * 1024;

/// One cached provider answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedAnswer {
    /// The validated, non-degraded output.
    pub output: JobOutput,
    /// The provider that produced it (e.g. `openai`).
    pub provider: String,
    /// The model that produced it.
    pub model: String,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub stored_at_unix_ms: u64,
}

impl CachedAnswer {
    /// Bytes of text the value holds on the heap (output, provider, model,
    /// plus a `String` header per list item): what the memory tier charges
    /// for it, known without serialising it.
    pub fn heap_bytes(&self) -> usize {
        const STRING: usize = std::mem::size_of::<String>();
        let list = |items: &[String]| items.iter().map(|i| i.len() + STRING).sum::<usize>();
        let output = match &self.output {
            JobOutput::Summary { text } | JobOutput::Answer { text, .. } => text.len(),
            JobOutput::Sentiment(s) => s.explanation.len(),
            JobOutput::KeyPoints { points } => list(points),
            JobOutput::Questions { questions } => list(questions),
        };
        output + self.provider.len() + self.model.len()
    }

    /// True when the output carries nothing worth serving again: an empty
    /// summary or answer, no (non-blank) points or questions, or a sentiment
    /// whose confidence is not a finite number. [`super::Cache::put`]
    /// refuses such values as a last line of defence; deciding that an answer
    /// is degraded or invalid stays the caller's job.
    pub fn is_empty(&self) -> bool {
        match &self.output {
            JobOutput::Summary { text } | JobOutput::Answer { text, .. } => text.trim().is_empty(),
            JobOutput::KeyPoints { points } => points.iter().all(|p| p.trim().is_empty()),
            JobOutput::Questions { questions } => questions.iter().all(|q| q.trim().is_empty()),
            JobOutput::Sentiment(s) => !s.confidence.is_finite(),
        }
    }
}

/// Why a value could not be encoded (never expected for well-formed outputs).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// JSON serialisation failed.
    #[error("cannot serialise cached answer: {0}")]
    Json(#[from] serde_json::Error),
    /// Compression failed.
    #[error("cannot compress cached answer: {0}")]
    Gzip(#[from] std::io::Error),
}

/// Encodes `value` into the bytes to store (format byte included),
/// gzip'ing JSON longer than `compression_threshold` bytes when that makes
/// it smaller.
pub fn encode(value: &CachedAnswer, compression_threshold: usize) -> Result<Vec<u8>, CodecError> {
    let json = serde_json::to_vec(value)?;
    let json_len = json.len();
    if json_len > compression_threshold {
        let mut gz = GzEncoder::new(
            Vec::with_capacity(json_len / 2 + 16),
            Compression::default(),
        );
        gz.write_all(&json)?;
        let compressed = gz.finish()?;
        if compressed.len() < json_len {
            let mut bytes = Vec::with_capacity(compressed.len() + 1);
            bytes.push(GZIP);
            bytes.extend_from_slice(&compressed);
            return Ok(bytes);
        }
    }
    let mut bytes = Vec::with_capacity(json_len + 1);
    bytes.push(PLAIN);
    bytes.extend_from_slice(&json);
    Ok(bytes)
}

/// Decodes bytes written by [`encode`]; `None` for anything else.
pub fn decode(bytes: &[u8]) -> Option<CachedAnswer> {
    let (&format, payload) = bytes.split_first()?;
    match format {
        PLAIN => serde_json::from_slice(payload).ok(),
        GZIP => {
            let mut json = Vec::with_capacity(payload.len().saturating_mul(3));
            GzDecoder::new(payload)
                .take(MAX_DECODED_BYTES + 1)
                .read_to_end(&mut json)
                .ok()?;
            if json.len() as u64 > MAX_DECODED_BYTES {
                return None;
            }
            serde_json::from_slice(&json).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Sentiment, SentimentLabel};

    fn is_compressed(bytes: &[u8]) -> bool {
        bytes.first() == Some(&GZIP)
    }

    fn answer(output: JobOutput) -> CachedAnswer {
        CachedAnswer {
            output,
            provider: "local".into(),
            model: "keel-local".into(),
            stored_at_unix_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn small_values_round_trip_as_plain_json() {
        let v = answer(JobOutput::Sentiment(Sentiment {
            sentiment: SentimentLabel::Positive,
            confidence: 0.9,
            explanation: "great".into(),
        }));
        let e = encode(&v, 1000).unwrap();
        assert!(!is_compressed(&e));
        assert_eq!(e[0], b'j');
        assert_eq!(&e[1..], serde_json::to_vec(&v).unwrap());
        assert_eq!(decode(&e).unwrap(), v);
    }

    #[test]
    fn large_values_are_compressed_smaller_and_round_trip() {
        let text = "Rust gives memory safety without garbage collection. ".repeat(100);
        let v = answer(JobOutput::Summary { text });
        let e = encode(&v, 1000).unwrap();
        assert!(is_compressed(&e));
        let json_len = serde_json::to_vec(&v).unwrap().len();
        assert!(e.len() * 4 < json_len, "{} vs {json_len}", e.len());
        assert_eq!(decode(&e).unwrap(), v);

        // Same value under a higher threshold: plain, still round-trips.
        let plain = encode(&v, 1_000_000).unwrap();
        assert!(!is_compressed(&plain));
        assert_eq!(decode(&plain).unwrap(), v);
    }

    #[test]
    fn incompressible_values_stay_plain() {
        // A tiny value over a zero threshold: gzip's 18-byte frame makes it
        // bigger, so it is stored plain.
        let v = CachedAnswer {
            output: JobOutput::Summary { text: "x".into() },
            provider: "a".into(),
            model: "b".into(),
            stored_at_unix_ms: 1,
        };
        let e = encode(&v, 0).unwrap();
        assert!(!is_compressed(&e));
        assert_eq!(decode(&e).unwrap(), v);
    }

    #[test]
    fn corrupt_values_decode_to_none() {
        let v = answer(JobOutput::KeyPoints {
            points: vec!["a".repeat(2000)],
        });
        let e = encode(&v, 100).unwrap();
        assert!(is_compressed(&e));
        let mut truncated = e.clone();
        truncated.truncate(truncated.len() / 2);
        let mut flipped = e.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0xff;
        for bad in [
            &b""[..],
            b"j",
            b"jnot json",
            b"z\x1f\x8bgarbage",
            b"x{}",
            b"j{\"output\":{\"kind\":\"nope\"}}",
            &truncated,
            &flipped,
        ] {
            assert!(decode(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn heap_bytes_count_the_text_without_serialising() {
        // "local" + "keel-local" = 15 bytes besides the output.
        let summary = answer(JobOutput::Summary {
            text: "abcd".into(),
        });
        assert_eq!(summary.heap_bytes(), 4 + 15);
        let points = answer(JobOutput::KeyPoints {
            points: vec!["ab".into(), "cde".into()],
        });
        assert_eq!(points.heap_bytes(), 5 + 2 * size_of::<String>() + 15);
        let long = answer(JobOutput::Summary {
            text: "x".repeat(10_000),
        });
        assert!(long.heap_bytes() >= 10_000);
    }

    #[test]
    fn empty_outputs_are_detected() {
        assert!(answer(JobOutput::Summary { text: " ".into() }).is_empty());
        assert!(answer(JobOutput::KeyPoints { points: vec![] }).is_empty());
        assert!(
            answer(JobOutput::Questions {
                questions: vec!["".into()]
            })
            .is_empty()
        );
        assert!(
            answer(JobOutput::Answer {
                text: String::new(),
                confidence: None
            })
            .is_empty()
        );
        assert!(!answer(JobOutput::Summary { text: "ok".into() }).is_empty());
        assert!(
            !answer(JobOutput::Questions {
                questions: vec!["Why?".into()]
            })
            .is_empty()
        );
    }
}
