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

/// An encoded value.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The bytes to store (format byte included).
    pub bytes: Vec<u8>,
    /// Length of the uncompressed JSON; the memory tier's size estimate.
    pub json_len: usize,
}

impl Encoded {
    /// True when the payload is gzip'd.
    #[cfg(test)]
    pub fn is_compressed(&self) -> bool {
        self.bytes.first() == Some(&GZIP)
    }
}

/// Encodes `value`, gzip'ing JSON longer than `compression_threshold` bytes
/// when that makes it smaller.
pub fn encode(value: &CachedAnswer, compression_threshold: usize) -> Result<Encoded, CodecError> {
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
            return Ok(Encoded { bytes, json_len });
        }
    }
    let mut bytes = Vec::with_capacity(json_len + 1);
    bytes.push(PLAIN);
    bytes.extend_from_slice(&json);
    Ok(Encoded { bytes, json_len })
}

/// A decoded value and the length of its JSON.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The value.
    pub value: CachedAnswer,
    /// Length of its uncompressed JSON.
    pub json_len: usize,
}

/// Decodes bytes written by [`encode`]; `None` for anything else.
pub fn decode(bytes: &[u8]) -> Option<Decoded> {
    let (&format, payload) = bytes.split_first()?;
    match format {
        PLAIN => {
            let value = serde_json::from_slice(payload).ok()?;
            Some(Decoded {
                value,
                json_len: payload.len(),
            })
        }
        GZIP => {
            let mut json = Vec::with_capacity(payload.len().saturating_mul(3));
            GzDecoder::new(payload)
                .take(MAX_DECODED_BYTES + 1)
                .read_to_end(&mut json)
                .ok()?;
            if json.len() as u64 > MAX_DECODED_BYTES {
                return None;
            }
            let value = serde_json::from_slice(&json).ok()?;
            Some(Decoded {
                value,
                json_len: json.len(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Sentiment, SentimentLabel};

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
        assert!(!e.is_compressed());
        assert_eq!(e.bytes[0], b'j');
        assert_eq!(e.json_len, e.bytes.len() - 1);
        let d = decode(&e.bytes).unwrap();
        assert_eq!(d.value, v);
        assert_eq!(d.json_len, e.json_len);
    }

    #[test]
    fn large_values_are_compressed_smaller_and_round_trip() {
        let text = "Rust gives memory safety without garbage collection. ".repeat(100);
        let v = answer(JobOutput::Summary { text });
        let e = encode(&v, 1000).unwrap();
        assert!(e.is_compressed());
        assert!(
            e.bytes.len() * 4 < e.json_len,
            "{} vs {}",
            e.bytes.len(),
            e.json_len
        );
        let d = decode(&e.bytes).unwrap();
        assert_eq!(d.value, v);
        assert_eq!(d.json_len, e.json_len);

        // Same value under a higher threshold: plain, still round-trips.
        let plain = encode(&v, 1_000_000).unwrap();
        assert!(!plain.is_compressed());
        assert_eq!(decode(&plain.bytes).unwrap().value, v);
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
        assert!(!e.is_compressed());
        assert_eq!(decode(&e.bytes).unwrap().value, v);
    }

    #[test]
    fn corrupt_values_decode_to_none() {
        let v = answer(JobOutput::KeyPoints {
            points: vec!["a".repeat(2000)],
        });
        let e = encode(&v, 100).unwrap();
        assert!(e.is_compressed());
        let mut truncated = e.bytes.clone();
        truncated.truncate(truncated.len() / 2);
        let mut flipped = e.bytes.clone();
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
