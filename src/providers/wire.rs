//! Request bodies for the remote providers, escaped once where they never
//! change.
//!
//! A chat request is a fixed envelope (model, system prompt, settings) around
//! one variable string, the user message. [`Envelope`] serialises the
//! provider's request struct once, at construction, with a marker in place of
//! the user message and keeps the bytes on either side of it; a call then only
//! escapes the user message, with [`push_json_str`], between the two. The
//! request structs stay the one description of each wire format, and a call
//! no longer walks (and escapes) the 900-byte system prompt through serde.
//!
//! Invariant: `envelope.body(user)` is byte for byte what `serde_json` writes
//! for the request struct holding `user` (tests compare the two).

use super::{ProviderError, ProviderErrorKind, ProviderKind};
use serde::Serialize;

/// Stands in for the user message while the envelope is serialised. Control
/// characters keep it from colliding with anything the envelope itself holds
/// (model names and the system prompt have none).
const USER_MARKER: &str = "\u{1}keel-user-message\u{1}";

/// The bytes of a request body before and after its user message.
#[derive(Debug, Clone)]
pub(super) struct Envelope {
    head: Vec<u8>,
    tail: Vec<u8>,
}

/// Why an envelope could not be built (a bug, surfaced at start-up as the
/// provider's construction error).
#[derive(Debug, thiserror::Error)]
enum EnvelopeError {
    /// serde_json refused the request struct.
    #[error("cannot serialise the request body: {0}")]
    Serialise(#[from] serde_json::Error),
    /// The marker is not in the body exactly once.
    #[error("the request body does not hold the user-message marker exactly once")]
    Marker,
}

impl Envelope {
    /// Serialises `build(USER_MARKER)` once and splits it around the marker;
    /// a failure is a start-up error of provider `kind`.
    pub(super) fn new<T: Serialize>(
        kind: ProviderKind,
        build: impl FnOnce(&'static str) -> T,
    ) -> Result<Envelope, ProviderError> {
        Envelope::split(build)
            .map_err(|e| ProviderError::new(kind, ProviderErrorKind::Transport(e.to_string())))
    }

    fn split<T: Serialize>(
        build: impl FnOnce(&'static str) -> T,
    ) -> Result<Envelope, EnvelopeError> {
        let body = serde_json::to_vec(&build(USER_MARKER))?;
        let mut marker = Vec::with_capacity(USER_MARKER.len() + 16);
        push_json_str(&mut marker, USER_MARKER);
        let finder = memchr::memmem::Finder::new(&marker);
        let mut hits = finder.find_iter(&body);
        let (Some(at), None) = (hits.next(), hits.next()) else {
            return Err(EnvelopeError::Marker);
        };
        Ok(Envelope {
            head: body[..at].to_vec(),
            tail: body[at + marker.len()..].to_vec(),
        })
    }

    /// The whole body with `user` as the user message.
    pub(super) fn body(&self, user: &str) -> Vec<u8> {
        // Escaping rarely adds more than a few bytes per line.
        let mut out =
            Vec::with_capacity(self.head.len() + user.len() + user.len() / 8 + 8 + self.tail.len());
        out.extend_from_slice(&self.head);
        push_json_str(&mut out, user);
        out.extend_from_slice(&self.tail);
        out
    }
}

/// `true` for the bytes JSON requires escaped inside a string: `"`, `\` and
/// the control characters below U+0020.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The high bit of each byte of `word` that needs escaping is set (SWAR: one
/// test per 8 bytes instead of one per byte; prompts are mostly plain text).
/// Bits above the lowest set one may be false positives (a borrow carries into
/// the next byte); the lowest set bit is always exact.
fn escape_mask(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit is set for every byte below `n` (n <= 0x80); bytes >= 0x80
    // (UTF-8 lead and continuation bytes) are never flagged.
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS;
    below(word, 0x20)
        | below(word ^ (ONES * u64::from(b'"')), 1)
        | below(word ^ (ONES * u64::from(b'\\')), 1)
}

/// Index of the first byte at or after `from` that needs escaping, or
/// `bytes.len()`.
fn next_escape(bytes: &[u8], mut from: usize) -> usize {
    while let Some(chunk) = bytes.get(from..from + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let mask = escape_mask(u64::from_le_bytes(word));
        if mask != 0 {
            return from + (mask.trailing_zeros() / 8) as usize;
        }
        from += 8;
    }
    bytes
        .get(from..)
        .and_then(|rest| rest.iter().position(|&b| needs_escape(b)))
        .map_or(bytes.len(), |at| from + at)
}

/// Appends `s` as a JSON string literal, quotes included, escaped exactly as
/// `serde_json` escapes it (`\"`, `\\`, `\b \f \n \r \t`, other control
/// characters as `\u00XX`; everything else, non-ASCII included, as is).
///
/// Hand-written because it pays: `serde_json::to_writer` gives the same bytes
/// (a test checks) but costs ~3.3 k more instructions per cache miss, 1.9 %
/// of a miss's ~174 k — above the 1 % a hand-rolled piece must beat (issue
/// 16 item 7). Measured with callgrind on the release build, 400 unique
/// sentiment jobs, serde_json's escaper in its place vs this one.
pub(super) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut run_start = 0;
    loop {
        let at = next_escape(bytes, run_start);
        let Some(&b) = bytes.get(at) else {
            break;
        };
        out.extend_from_slice(&bytes[run_start..at]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        run_start = at + 1;
    }
    out.extend_from_slice(&bytes[run_start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        push_json_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_exactly_like_serde_json() {
        let mut cases: Vec<String> = vec![
            String::new(),
            "plain text".into(),
            "exactly8".into(),
            "exactly8 and then sixteen!".into(),
            "quote \" backslash \\ newline \n tab \t cr \r".into(),
            "\u{8}\u{c}\u{0}\u{1f}\u{7f} del and U+2028 \u{2028}".into(),
            "non-ASCII: café, 東京, emoji 🎉, ümläut \"quoted\"".into(),
            "\"\"\"\"\"\"\"\"\"\"".into(),
            "\\\\\\\\\\\\\\\\\\".into(),
        ];
        // Every ASCII byte, at every offset within an 8-byte word.
        for b in 0u8..0x80 {
            for pad in 0..9 {
                let mut s = "a".repeat(pad);
                s.push(char::from(b));
                s.push_str("tail-tail");
                cases.push(s);
            }
        }
        for s in &cases {
            assert_eq!(escaped(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn the_swar_search_finds_the_first_byte_to_escape() {
        // Every byte at every position of a word, after clean bytes and
        // before another escape (so a false positive above the hit would show).
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut bytes = vec![b'a'; 16];
                bytes[pos] = b;
                bytes[pos + 1] = b'"';
                let expected = if needs_escape(b) { pos } else { pos + 1 };
                assert_eq!(next_escape(&bytes, 0), expected, "byte {b:#x} at {pos}");
            }
        }
        assert_eq!(next_escape(b"clean text, no escapes", 0), 22);
        assert_eq!(next_escape(b"ab\"", 1), 2);
    }

    #[derive(Serialize)]
    struct Request<'a> {
        model: &'a str,
        messages: [(&'a str, &'a str); 2],
        temperature: f32,
    }

    #[test]
    fn an_envelope_body_is_what_serde_writes() {
        let build = |user| Request {
            model: "m-1",
            messages: [("system", "rules \"here\"\n"), ("user", user)],
            temperature: 0.2,
        };
        let envelope = Envelope::new(ProviderKind::OpenAi, build).unwrap();
        for user in ["", "hello", "line\nbreak \"quoted\" \u{1} ☃"] {
            assert_eq!(
                String::from_utf8(envelope.body(user)).unwrap(),
                serde_json::to_string(&build(user)).unwrap()
            );
        }
    }

    #[test]
    fn a_body_without_the_marker_is_refused() {
        let err = Envelope::split(|_| ("constant",)).unwrap_err();
        assert!(matches!(err, EnvelopeError::Marker), "{err}");
    }
}
