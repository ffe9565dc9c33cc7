//! Timestamps as the API writes them: RFC 3339, UTC, millisecond precision.

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats `t` like `2026-11-22T01:02:03.456Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The current time, formatted with [`rfc3339`].
pub fn now_rfc3339() -> String {
    rfc3339(Utc::now())
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0)
}
