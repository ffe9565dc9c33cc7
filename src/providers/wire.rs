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

/// Appends `s` as a JSON string literal, quotes included, exactly as
/// `serde_json` writes it everywhere else in the body.
pub(super) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a `str` into a `Vec` cannot fail: neither the serializer (no
    // map keys, no non-finite floats) nor the writer (`Vec` grows) errors.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

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
