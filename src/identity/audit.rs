//! The audit trail of operator actions (`GET /internal/audit`).
//!
//! Every operator action that changes something (key created/revoked, token
//! revoked, preset or config switched, breaker forced, cache cleared, jobs
//! paused) is recorded with the acting identity in a bounded ring
//! (`AUDIT_LOG_CAPACITY`, oldest dropped first) and logged as one
//! `keel::audit` line. The ring is per instance and not durable; the log
//! lines are the durable record.

use super::Identity;
use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Mutex;

/// One recorded action.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// When (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub at: String,
    /// What was done, e.g. `key.created`, `breaker.force_open`.
    pub action: String,
    /// The acting identity's id.
    pub actor: String,
    /// The acting identity's kind.
    pub actor_kind: super::Kind,
    /// What it was done to (key id, breaker name, preset...).
    pub target: String,
    /// Extra facts (never secrets).
    #[schema(value_type = Object)]
    pub details: Value,
}

/// The bounded ring. A mutex is enough: operator actions are rare and the
/// critical section is a push.
pub struct AuditLog {
    capacity: usize,
    ring: Mutex<VecDeque<AuditEntry>>,
}

impl AuditLog {
    /// A ring keeping the last `capacity` entries.
    pub fn new(capacity: usize) -> AuditLog {
        AuditLog {
            capacity: capacity.max(1),
            ring: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
        }
    }

    /// Records `action` on `target` by `actor` and logs it.
    pub fn record(&self, actor: &Identity, action: &str, target: &str, details: Value) {
        tracing::info!(
            target: "keel::audit",
            action,
            actor = %actor.id,
            actor_kind = ?actor.kind,
            target_id = target,
            details = %details,
            "operator action"
        );
        let entry = AuditEntry {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            action: action.to_string(),
            actor: actor.id.clone(),
            actor_kind: actor.kind,
            target: target.to_string(),
            details,
        };
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    /// Up to `limit` entries, newest first.
    pub fn recent(&self, limit: usize) -> Vec<AuditEntry> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().rev().take(limit).cloned().collect()
    }

    /// The ring's capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Roles;

    #[test]
    fn bounded_and_newest_first() {
        let log = AuditLog::new(2);
        let who = Identity::anonymous(Roles::OPERATOR);
        for n in 0..3 {
            log.record(&who, "test", &n.to_string(), Value::Null);
        }
        let r = log.recent(10);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].target, "2");
        assert_eq!(r[1].target, "1");
    }
}
