//! Recent batches, so `GET /v1/text_processing/batch_status/{id}` can report
//! on a batch while it runs and after it finished.
//!
//! Invariants: memory is bounded — at most `capacity` batches are kept, the
//! oldest evicted first; a batch is visible only to the API key (or the open
//! access identity) that submitted it, so one tenant cannot probe another's ids.

use dashmap::DashMap;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Where a batch is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BatchState {
    /// Items are still running.
    Processing,
    /// Every item has finished (successfully or not).
    Completed,
}

/// Live progress of one batch.
#[derive(Debug)]
pub struct BatchRecord {
    /// The client's or the generated id.
    pub batch_id: String,
    /// Fingerprint of the submitting identity.
    owner: String,
    /// Number of items.
    pub total: u64,
    completed: AtomicU64,
    failed: AtomicU64,
    created_at: chrono::DateTime<chrono::Utc>,
    finished: Mutex<Option<(chrono::DateTime<chrono::Utc>, f64)>>,
}

/// What `batch_status` returns.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = BatchProgress)]
pub struct BatchStatus {
    /// The batch id.
    pub batch_id: String,
    /// processing or completed.
    pub status: BatchState,
    /// Number of items.
    pub total_requests: u64,
    /// Items answered so far.
    pub completed: u64,
    /// Items failed so far.
    pub failed: u64,
    /// When the batch was accepted (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When the last item finished (RFC 3339); `null` while processing.
    #[schema(required = true, format = DateTime)]
    pub completed_at: Option<String>,
    /// Wall time of the whole batch in seconds; `null` while processing.
    #[schema(required = true)]
    pub total_processing_time: Option<f64>,
}

impl BatchRecord {
    /// Counts one finished item.
    pub fn item_done(&self, ok: bool) {
        if ok {
            self.completed.fetch_add(1, Relaxed);
        } else {
            self.failed.fetch_add(1, Relaxed);
        }
    }

    /// Marks the batch finished after `seconds` of wall time.
    pub fn finish(&self, seconds: f64) {
        if let Ok(mut f) = self.finished.lock() {
            *f = Some((chrono::Utc::now(), seconds));
        }
    }

    /// The current status.
    pub fn status(&self) -> BatchStatus {
        let finished = self.finished.lock().ok().and_then(|f| *f);
        BatchStatus {
            batch_id: self.batch_id.clone(),
            status: if finished.is_some() {
                BatchState::Completed
            } else {
                BatchState::Processing
            },
            total_requests: self.total,
            completed: self.completed.load(Relaxed),
            failed: self.failed.load(Relaxed),
            created_at: crate::time::rfc3339(self.created_at),
            completed_at: finished.map(|(t, _)| crate::time::rfc3339(t)),
            total_processing_time: finished.map(|(_, s)| s),
        }
    }

    fn is_processing(&self) -> bool {
        self.finished.lock().map(|f| f.is_none()).unwrap_or(false)
    }
}

/// Returned when a client reuses the id of a batch that is still running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("batch '{0}' is still processing")]
pub struct BatchInProgress(pub String);

/// The bounded store of recent batches.
pub struct BatchStore {
    capacity: usize,
    records: DashMap<String, Arc<BatchRecord>>,
    order: Mutex<VecDeque<String>>,
}

impl BatchStore {
    /// A store keeping at most `capacity` batches.
    pub fn new(capacity: usize) -> BatchStore {
        BatchStore {
            capacity: capacity.max(1),
            records: DashMap::new(),
            order: Mutex::new(VecDeque::new()),
        }
    }

    /// Registers a new batch for `owner`; a finished batch with the same id
    /// and owner is replaced, a running one is refused.
    pub fn begin(
        &self,
        batch_id: &str,
        owner: &str,
        total: u64,
    ) -> Result<Arc<BatchRecord>, BatchInProgress> {
        let key = format!("{owner}\u{1f}{batch_id}");
        if self.records.get(&key).is_some_and(|r| r.is_processing()) {
            return Err(BatchInProgress(batch_id.to_string()));
        }
        let record = Arc::new(BatchRecord {
            batch_id: batch_id.to_string(),
            owner: owner.to_string(),
            total,
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            created_at: chrono::Utc::now(),
            finished: Mutex::new(None),
        });
        if self.records.insert(key.clone(), record.clone()).is_none()
            && let Ok(mut order) = self.order.lock()
        {
            order.push_back(key);
            while order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    self.records.remove(&old);
                }
            }
        }
        Ok(record)
    }

    /// The status of `batch_id` as seen by `owner`.
    pub fn status(&self, batch_id: &str, owner: &str) -> Option<BatchStatus> {
        let key = format!("{owner}\u{1f}{batch_id}");
        self.records
            .get(&key)
            .filter(|r| r.owner == owner)
            .map(|r| r.status())
    }

    /// Batches currently held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no batch is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_reported_and_owners_are_isolated() {
        let store = BatchStore::new(10);
        let r = store.begin("b1", "alice", 3).unwrap();
        r.item_done(true);
        r.item_done(false);
        let s = store.status("b1", "alice").unwrap();
        assert_eq!(s.status, BatchState::Processing);
        assert_eq!((s.completed, s.failed, s.total_requests), (1, 1, 3));
        assert!(store.status("b1", "mallory").is_none());
        assert_eq!(
            store.begin("b1", "alice", 1).unwrap_err(),
            BatchInProgress("b1".into())
        );
        r.item_done(true);
        r.finish(0.5);
        let s = store.status("b1", "alice").unwrap();
        assert_eq!(s.status, BatchState::Completed);
        assert_eq!(s.total_processing_time, Some(0.5));
        assert!(
            store.begin("b1", "alice", 1).is_ok(),
            "a finished id may be reused"
        );
    }

    #[test]
    fn memory_is_bounded() {
        let store = BatchStore::new(2);
        for i in 0..5 {
            store.begin(&format!("b{i}"), "o", 1).unwrap().finish(0.0);
        }
        assert_eq!(store.len(), 2);
        assert!(store.status("b0", "o").is_none());
        assert!(store.status("b4", "o").is_some());
    }
}
