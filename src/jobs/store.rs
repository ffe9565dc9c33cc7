//! The job store: one interface ([`Store`]) over the memory store (here) and
//! the Redis Streams store ([`super::redis_store`]).
//!
//! The model both implement, in Redis words: a **stream** of deliveries read
//! by one consumer group, a **record** per job with a version number, a
//! **delayed** set of jobs waiting for a not-before time, a **dead** set, and
//! per-owner and idempotency indexes. Every change to a record after
//! submission is [`Store::update`]: a check-and-set on the version that also
//! applies its side effects (acknowledge the delivery, enqueue again, enter
//! or leave the dead set, count the outcome) atomically — so a worker that
//! lost its delivery can never overwrite a newer outcome.
//!
//! The memory store keeps all of it behind one mutex: one instance, bounded
//! by `JOB_QUEUE_MAX` waiting jobs, final records dropped after
//! `JOB_RESULT_TTL_SECONDS`, nothing survives the process.

use super::redis_store::RedisStore;
use super::{ConsumerInfo, JobRecord, JobStatus};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// A record with the version a check-and-set must name.
#[derive(Debug, Clone)]
pub struct Versioned {
    /// The job.
    pub record: JobRecord,
    /// Its version (bumped by every update).
    pub ver: u64,
}

/// What a submission did.
#[derive(Debug)]
pub enum SubmitOutcome {
    /// Persisted and enqueued.
    Created,
    /// Refused: this many jobs are waiting or running.
    Full(u64),
    /// The owner's `Idempotency-Key` names this existing job.
    Existing(Box<JobRecord>),
}

/// One delivery of a job to this consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The stream entry (what is acknowledged).
    pub entry: String,
    /// The job.
    pub job_id: String,
}

/// What to do with the job's place in the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Enqueue {
    /// Nothing.
    #[default]
    Keep,
    /// A new delivery at once.
    Now,
    /// A new delivery at this time (ms since the epoch).
    At(u64),
    /// Leave the delayed set (cancel of a waiting job).
    Remove,
}

/// Side effects applied atomically with a successful update.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    /// Acknowledge (and drop) this delivery.
    pub ack: Option<String>,
    /// Re-enqueue or leave the delayed set.
    pub enqueue: Enqueue,
    /// Enter (true) or leave (false) the dead set.
    pub dead: Option<bool>,
    /// The record is final: count its outcome, keep it `JOB_RESULT_TTL_SECONDS`,
    /// tell every instance's waiters.
    pub finalize: bool,
    /// Not final: keep the record at least until this time + the result TTL.
    pub keep_until_ms: Option<u64>,
}

/// How many jobs are where.
#[derive(Debug, Clone, Copy, Default)]
pub struct Depth {
    /// Waiting (ready or delayed).
    pub queued: u64,
    /// Of those, delayed.
    pub delayed: u64,
    /// Delivered, not acknowledged.
    pub running: u64,
    /// Dead-lettered.
    pub dead: u64,
    /// Submission time of the oldest job waiting for delivery.
    pub oldest_queued_ms: Option<u64>,
}

/// Why the store did not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend is down or slow; nothing was changed.
    #[error("{0}")]
    Unavailable(String),
}

/// The configured store.
pub enum Store {
    /// In-process.
    Memory(MemoryStore),
    /// Redis Streams.
    Redis(RedisStore),
}

impl Store {
    /// Persists and enqueues a new job (honouring its idempotency key).
    pub async fn submit(&self, r: &JobRecord, queue_max: u64) -> Result<SubmitOutcome, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.submit(r, queue_max)),
            Store::Redis(s) => s.submit(r, queue_max).await,
        }
    }

    /// A job and its version.
    pub async fn get(&self, id: &str) -> Result<Option<Versioned>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.get(id)),
            Store::Redis(s) => s.get(id).await,
        }
    }

    /// Check-and-set: writes `r` (and applies `effects`) only if the job's
    /// version is still `ver`. `Ok(false)` = someone else changed it.
    pub async fn update(
        &self,
        id: &str,
        ver: u64,
        r: &JobRecord,
        effects: Effects,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.update(id, ver, r, effects)),
            Store::Redis(s) => s.update(id, ver, r, effects).await,
        }
    }

    /// Up to `max` of the owner's jobs older than `cursor`, newest first,
    /// with each one's index position; and whether more may follow.
    pub async fn list(
        &self,
        owner: &str,
        cursor: Option<&str>,
        max: usize,
    ) -> Result<(Vec<(String, JobRecord)>, Option<String>), StoreError> {
        match self {
            Store::Memory(m) => Ok(m.list(owner, cursor, max)),
            Store::Redis(s) => s.list(owner, cursor, max).await,
        }
    }

    /// Up to `max` deliveries for `consumer` (reclaimed ones first).
    pub async fn claim(&self, consumer: &str, max: usize) -> Result<Vec<Delivery>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.claim(max)),
            Store::Redis(s) => s.claim(consumer, max).await,
        }
    }

    /// Deliveries already pending for `consumer` that it may not know of
    /// (see [`RedisStore::own_pending`]). The memory store cannot lose an
    /// answer, so it has none.
    ///
    /// [`RedisStore::own_pending`]: super::redis_store::RedisStore::own_pending
    pub async fn own_pending(
        &self,
        consumer: &str,
        max: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        match self {
            Store::Memory(_) => Ok(Vec::new()),
            Store::Redis(s) => s.own_pending(consumer, max).await,
        }
    }

    /// Acknowledges a delivery whose job needs nothing more.
    pub async fn ack(&self, entry: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.ack(entry);
                Ok(())
            }
            Store::Redis(s) => s.ack(entry).await,
        }
    }

    /// Queue depth.
    pub async fn depth(&self) -> Result<Depth, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.depth()),
            Store::Redis(s) => s.depth().await,
        }
    }

    /// Final outcomes counted so far, by status name.
    pub async fn outcomes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.outcomes()),
            Store::Redis(s) => s.outcomes().await,
        }
    }

    /// Dead-lettered jobs, newest first.
    pub async fn dead(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.dead(limit)),
            Store::Redis(s) => s.dead(limit).await,
        }
    }

    /// Sets the (cluster-wide) pause flag.
    pub async fn set_paused(&self, paused: bool) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.lock().paused = paused;
                Ok(())
            }
            Store::Redis(s) => s.set_paused(paused).await,
        }
    }

    /// The pause flag.
    pub async fn is_paused(&self) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.lock().paused),
            Store::Redis(s) => s.is_paused().await,
        }
    }

    /// Consumers the store knows.
    pub async fn consumers(&self) -> Result<Vec<ConsumerInfo>, StoreError> {
        match self {
            Store::Memory(_) => Ok(Vec::new()),
            Store::Redis(s) => s.consumers().await,
        }
    }

    /// Hands a delivery back so any consumer takes it at once (shutdown).
    pub async fn release(&self, delivery: &Delivery) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.release(delivery);
                Ok(())
            }
            Store::Redis(s) => s.release(delivery).await,
        }
    }
}

/// The in-process store.
pub struct MemoryStore {
    inner: Mutex<Mem>,
    result_ttl_ms: u64,
}

#[derive(Default)]
struct Mem {
    jobs: HashMap<String, (JobRecord, u64)>,
    /// Deliveries not yet taken: (entry, job id).
    ready: VecDeque<(String, String)>,
    /// (not before ms, job id).
    delayed: BTreeSet<(u64, String)>,
    /// Taken, not acknowledged: entry -> job id.
    pending: HashMap<String, String>,
    /// owner + key -> (job id, valid until ms).
    idem: HashMap<String, (String, u64)>,
    /// owner -> index members (`<created ms, 16 digits>:<id>`).
    owners: HashMap<String, BTreeSet<String>>,
    /// (finished ms, id).
    dead: BTreeSet<(u64, String)>,
    /// (drop at ms, id) of final records.
    expiry: BTreeSet<(u64, String)>,
    outcomes: HashMap<&'static str, u64>,
    paused: bool,
    seq: u64,
    submits: u64,
}

/// How long an `Idempotency-Key` names its job.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The owner-index member of a record: sorts by creation time, then id.
pub fn index_member(r: &JobRecord) -> String {
    format!("{:016}:{}", r.created_at_ms, r.job_id)
}

impl MemoryStore {
    /// An empty store keeping final records for `result_ttl`.
    pub fn new(result_ttl: Duration) -> MemoryStore {
        MemoryStore {
            inner: Mutex::new(Mem::default()),
            result_ttl_ms: u64::try_from(result_ttl.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mem> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way later calls would trip on; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next_entry(m: &mut Mem) -> String {
        m.seq += 1;
        format!("{}-0", m.seq)
    }

    fn sweep(m: &mut Mem, now: u64) {
        while let Some((at, id)) = m.expiry.first().cloned() {
            if at > now {
                break;
            }
            m.expiry.pop_first();
            // Only drop a record that is still final (a retry may have revived it).
            if m.jobs.get(&id).is_some_and(|(r, _)| r.status.is_final())
                && let Some((r, _)) = m.jobs.remove(&id)
            {
                if let Some(set) = m.owners.get_mut(&r.owner) {
                    set.remove(&index_member(&r));
                }
                m.dead.retain(|(_, d)| d != &id);
            }
        }
        m.submits += 1;
        if m.submits.is_multiple_of(1024) {
            m.idem.retain(|_, (_, until)| *until > now);
            m.owners.retain(|_, s| !s.is_empty());
        }
    }

    fn submit(&self, r: &JobRecord, queue_max: u64) -> SubmitOutcome {
        let now = crate::time::unix_ms();
        let mut m = self.lock();
        Self::sweep(&mut m, now);
        let idem_key = r
            .idempotency_key
            .as_ref()
            .map(|k| format!("{}\n{}", r.owner, k));
        if let Some(k) = &idem_key
            && let Some((id, until)) = m.idem.get(k)
            && *until > now
            && let Some((existing, _)) = m.jobs.get(id)
        {
            return SubmitOutcome::Existing(Box::new(existing.clone()));
        }
        let depth = (m.ready.len() + m.delayed.len() + m.pending.len()) as u64;
        if depth >= queue_max {
            return SubmitOutcome::Full(depth);
        }
        if let Some(k) = idem_key {
            let until = now + u64::try_from(IDEMPOTENCY_WINDOW.as_millis()).unwrap_or(0);
            m.idem.insert(k, (r.job_id.clone(), until));
        }
        m.jobs.insert(r.job_id.clone(), (r.clone(), 1));
        m.owners
            .entry(r.owner.clone())
            .or_default()
            .insert(index_member(r));
        let entry = Self::next_entry(&mut m);
        m.ready.push_back((entry, r.job_id.clone()));
        SubmitOutcome::Created
    }

    fn get(&self, id: &str) -> Option<Versioned> {
        self.lock().jobs.get(id).map(|(r, v)| Versioned {
            record: r.clone(),
            ver: *v,
        })
    }

    fn update(&self, id: &str, ver: u64, r: &JobRecord, e: Effects) -> bool {
        let now = crate::time::unix_ms();
        let mut m = self.lock();
        match m.jobs.get_mut(id) {
            Some((rec, v)) if *v == ver => {
                *rec = r.clone();
                *v += 1;
            }
            _ => return false,
        }
        if let Some(entry) = &e.ack {
            m.pending.remove(entry);
        }
        match e.enqueue {
            Enqueue::Keep => {}
            Enqueue::Now => {
                let entry = Self::next_entry(&mut m);
                m.ready.push_back((entry, id.to_string()));
            }
            Enqueue::At(ms) => {
                m.delayed.insert((ms, id.to_string()));
            }
            Enqueue::Remove => m.delayed.retain(|(_, d)| d != id),
        }
        match e.dead {
            Some(true) => {
                m.dead.insert((now, id.to_string()));
            }
            Some(false) => m.dead.retain(|(_, d)| d != id),
            None => {}
        }
        if e.finalize {
            *m.outcomes.entry(r.status.as_str()).or_default() += 1;
            let at = now.saturating_add(self.result_ttl_ms);
            m.expiry.insert((at, id.to_string()));
        }
        true
    }

    fn list(
        &self,
        owner: &str,
        cursor: Option<&str>,
        max: usize,
    ) -> (Vec<(String, JobRecord)>, Option<String>) {
        let m = self.lock();
        let Some(index) = m.owners.get(owner) else {
            return (Vec::new(), None);
        };
        let members: Vec<String> = match cursor {
            Some(c) => index
                .range(..c.to_string())
                .rev()
                .take(max + 1)
                .cloned()
                .collect(),
            None => index.iter().rev().take(max + 1).cloned().collect(),
        };
        let more = members.len() > max;
        let page: Vec<(String, JobRecord)> = members
            .into_iter()
            .take(max)
            .filter_map(|member| {
                let id = member.split_once(':').map(|(_, id)| id)?;
                m.jobs.get(id).map(|(r, _)| (member.clone(), r.clone()))
            })
            .collect();
        let next = if more {
            page.last().map(|(member, _)| member.clone())
        } else {
            None
        };
        (page, next)
    }

    fn claim(&self, max: usize) -> Vec<Delivery> {
        let now = crate::time::unix_ms();
        let mut m = self.lock();
        while let Some((at, id)) = m.delayed.first().cloned() {
            if at > now {
                break;
            }
            m.delayed.pop_first();
            let entry = Self::next_entry(&mut m);
            m.ready.push_back((entry, id));
        }
        let mut out = Vec::new();
        while out.len() < max {
            let Some((entry, job_id)) = m.ready.pop_front() else {
                break;
            };
            m.pending.insert(entry.clone(), job_id.clone());
            out.push(Delivery { entry, job_id });
        }
        out
    }

    fn ack(&self, entry: &str) {
        self.lock().pending.remove(entry);
    }

    fn release(&self, d: &Delivery) {
        let mut m = self.lock();
        if m.pending.remove(&d.entry).is_some() {
            m.ready.push_front((d.entry.clone(), d.job_id.clone()));
        }
    }

    fn depth(&self) -> Depth {
        let m = self.lock();
        let oldest = m
            .ready
            .iter()
            .filter_map(|(_, id)| m.jobs.get(id))
            .filter(|(r, _)| r.status == JobStatus::Queued)
            .map(|(r, _)| r.created_at_ms)
            .min();
        Depth {
            queued: (m.ready.len() + m.delayed.len()) as u64,
            delayed: m.delayed.len() as u64,
            running: m.pending.len() as u64,
            dead: m.dead.len() as u64,
            oldest_queued_ms: oldest,
        }
    }

    fn outcomes(&self) -> Vec<(String, u64)> {
        self.lock()
            .outcomes
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    }

    fn dead(&self, limit: usize) -> Vec<JobRecord> {
        let m = self.lock();
        m.dead
            .iter()
            .rev()
            .take(limit)
            .filter_map(|(_, id)| m.jobs.get(id).map(|(r, _)| r.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: &str, owner: &str, created: u64) -> JobRecord {
        JobRecord {
            job_id: id.into(),
            owner: owner.into(),
            status: JobStatus::Queued,
            operation: "summarize".into(),
            request: json!({}),
            metadata: None,
            callback_url: None,
            created_at_ms: created,
            started_at_ms: None,
            finished_at_ms: None,
            expires_at_ms: u64::MAX,
            not_before_ms: 0,
            deliveries: 0,
            unfinished: 0,
            traceparent: None,
            result: None,
            error: None,
            webhook: None,
            request_hash: "h".into(),
            idempotency_key: None,
            consumer: None,
        }
    }

    #[test]
    fn a_stale_version_cannot_overwrite_a_newer_outcome() {
        let s = MemoryStore::new(Duration::from_secs(60));
        let r = record("a", "o", 1);
        assert!(matches!(s.submit(&r, 10), SubmitOutcome::Created));
        let d = s.claim(5);
        assert_eq!(d.len(), 1);
        let mut running = r.clone();
        running.status = JobStatus::Running;
        assert!(s.update("a", 1, &running, Effects::default()));
        let mut done = running.clone();
        done.status = JobStatus::Succeeded;
        assert!(
            !s.update("a", 1, &done, Effects::default()),
            "stale version"
        );
        assert!(s.update(
            "a",
            2,
            &done,
            Effects {
                ack: Some(d[0].entry.clone()),
                finalize: true,
                ..Effects::default()
            }
        ));
        assert_eq!(s.depth().running, 0);
        assert_eq!(s.get("a").unwrap().record.status, JobStatus::Succeeded);
    }

    #[test]
    fn the_queue_is_bounded_and_idempotency_names_the_first_job() {
        let s = MemoryStore::new(Duration::from_secs(60));
        let mut a = record("a", "o", 1);
        a.idempotency_key = Some("k".into());
        assert!(matches!(s.submit(&a, 2), SubmitOutcome::Created));
        let mut b = record("b", "o", 2);
        b.idempotency_key = Some("k".into());
        match s.submit(&b, 2) {
            SubmitOutcome::Existing(r) => assert_eq!(r.job_id, "a"),
            other => panic!("{other:?}"),
        }
        // Another owner's key is another key.
        let mut c = record("c", "p", 3);
        c.idempotency_key = Some("k".into());
        assert!(matches!(s.submit(&c, 2), SubmitOutcome::Created));
        assert!(matches!(
            s.submit(&record("d", "o", 4), 2),
            SubmitOutcome::Full(2)
        ));
    }

    #[test]
    fn listing_is_newest_first_with_a_cursor() {
        let s = MemoryStore::new(Duration::from_secs(60));
        for i in 0..5 {
            s.submit(&record(&format!("j{i}"), "o", 10 + i), 100);
        }
        let (page, next) = s.list("o", None, 2);
        let ids: Vec<_> = page.iter().map(|(_, r)| r.job_id.as_str()).collect();
        assert_eq!(ids, ["j4", "j3"]);
        let (page, next) = s.list("o", next.as_deref(), 2);
        let ids: Vec<_> = page.iter().map(|(_, r)| r.job_id.as_str()).collect();
        assert_eq!(ids, ["j2", "j1"]);
        let (page, next) = s.list("o", next.as_deref(), 2);
        assert_eq!(page.len(), 1);
        assert!(next.is_none());
        assert!(s.list("p", None, 2).0.is_empty());
    }
}
