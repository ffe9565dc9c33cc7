//! The durable job store: Redis Streams with one consumer group, shared by
//! every keel instance (each is a consumer named by its instance id).
//!
//! Keys (one hash tag, so they live in one Cluster slot and the Lua scripts
//! may touch several):
//! - `{keel:jobs}:stream` — deliveries (`job` field = id), group `workers`;
//!   an entry is acknowledged *and deleted* when its job needs nothing more,
//!   so the stream's length is the number of unfinished deliveries;
//! - `{keel:jobs}:job:<id>` — hash `rec` (the record's JSON), `ver`, `status`;
//!   expires `JOB_RESULT_TTL_SECONDS` after the job is final;
//! - `{keel:jobs}:delayed` — zset of jobs waiting for a not-before time;
//! - `{keel:jobs}:dead` — zset of dead-lettered jobs;
//! - `{keel:jobs}:idem:<owner>:<key digest>` — the job an `Idempotency-Key` names (24 h);
//! - `{keel:jobs}:owner:<owner>` — lex-sorted index for listing;
//! - `{keel:jobs}:paused`, `{keel:jobs}:outcomes`;
//! - channel `{keel:jobs}:events` — `new` (wake consumers) and `done:<id>`
//!   (wake `?wait=` on every instance).
//!
//! Every command goes through a [`RedisLink`] (timeout, cool-off): when Redis
//! is down a call fails within `REDIS_TIMEOUT_MS` and callers answer 503.
//! Submission is one script (idempotency check, queue bound, record, index,
//! stream entry), every later change one check-and-set script, so a crash
//! between two steps cannot leave a half-made job.

use super::config::JobsConfig;
use super::store::{
    Delivery, Depth, Effects, Enqueue, IDEMPOTENCY_WINDOW, StoreError, SubmitOutcome, Versioned,
    index_member,
};
use super::{ConsumerInfo, JobRecord};
use crate::redis_link::{RedisError, RedisLink, RedisLinkOptions};
use futures::StreamExt;
use redis::Value;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, broadcast};

const PREFIX: &str = "{keel:jobs}";
const GROUP: &str = "workers";

static SUBMIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
-- KEYS: job, stream, delayed, idem, owner index
-- ARGV: rec, job id, queue max, idem mode (0 none | 1 check | 2 overwrite),
--       idem ttl s, index member, index ttl s, record ttl ms, channel
if ARGV[4] == '1' then
  local existing = redis.call('GET', KEYS[4])
  if existing then return {'existing', existing} end
end
local depth = redis.call('XLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3])
if depth >= tonumber(ARGV[3]) then return {'full', tostring(depth)} end
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'ver', '1', 'status', 'queued')
redis.call('PEXPIRE', KEYS[1], ARGV[8])
if ARGV[4] ~= '0' then redis.call('SET', KEYS[4], ARGV[2], 'EX', ARGV[5]) end
redis.call('ZADD', KEYS[5], 0, ARGV[6])
redis.call('EXPIRE', KEYS[5], ARGV[7])
redis.call('XADD', KEYS[2], '*', 'job', ARGV[2])
redis.call('PUBLISH', ARGV[9], 'new')
return {'created'}
"#,
    )
});

static UPDATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
-- KEYS: job, stream, delayed, dead, outcomes
-- ARGV: expected ver, rec, status, pexpire ms (0 = keep), ack entry (''),
--       group, enqueue ('' | now | rem | <ms>), job id, dead ('' | add | rem),
--       count outcome ('' | status), channel, publish ('' | message), now ms
local ver = redis.call('HGET', KEYS[1], 'ver')
if (not ver) or ver ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'rec', ARGV[2], 'status', ARGV[3], 'ver', tostring(tonumber(ver) + 1))
if ARGV[4] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
if ARGV[5] ~= '' then
  redis.call('XACK', KEYS[2], ARGV[6], ARGV[5])
  redis.call('XDEL', KEYS[2], ARGV[5])
end
if ARGV[7] == 'now' then
  redis.call('XADD', KEYS[2], '*', 'job', ARGV[8])
  redis.call('PUBLISH', ARGV[11], 'new')
elseif ARGV[7] == 'rem' then
  redis.call('ZREM', KEYS[3], ARGV[8])
elseif ARGV[7] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[8])
end
if ARGV[9] == 'add' then redis.call('ZADD', KEYS[4], ARGV[13], ARGV[8])
elseif ARGV[9] == 'rem' then redis.call('ZREM', KEYS[4], ARGV[8]) end
if ARGV[10] ~= '' then redis.call('HINCRBY', KEYS[5], ARGV[10], 1) end
if ARGV[12] ~= '' then redis.call('PUBLISH', ARGV[11], ARGV[12]) end
return 1
"#,
    )
});

static PROMOTE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
-- KEYS: delayed, stream; ARGV: now ms, max, channel
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('XADD', KEYS[2], '*', 'job', id)
end
if #due > 0 then redis.call('PUBLISH', ARGV[3], 'new') end
return #due
"#,
    )
});

static ACK: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
-- KEYS: stream; ARGV: group, entry, requeue job id ('' = no), channel
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('XADD', KEYS[1], '*', 'job', ARGV[3])
  redis.call('PUBLISH', ARGV[4], 'new')
end
return 1
"#,
    )
});

static MGET_RECORDS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('HGET', k, 'rec')
  if v then out[i] = v else out[i] = '' end
end
return out
"#,
    )
});

/// The Redis Streams store.
pub struct RedisStore {
    link: RedisLink,
    client: redis::Client,
    timeout: Duration,
    result_ttl_ms: u64,
    visibility_ms: u64,
    group_ready: AtomicBool,
    last_reclaim_ms: AtomicU64,
    finished: broadcast::Sender<Arc<str>>,
    wake: Arc<Notify>,
    subscriber: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn job_key(id: &str) -> String {
    format!("{PREFIX}:job:{id}")
}

fn key(name: &str) -> String {
    format!("{PREFIX}:{name}")
}

fn channel() -> String {
    key("events")
}

fn owner_key(owner: &str) -> String {
    format!("{PREFIX}:owner:{owner}")
}

fn idem_key(owner: &str, idem: &str) -> String {
    let digest = Sha256::digest(idem.as_bytes());
    format!("{PREFIX}:idem:{owner}:{}", super::hex(&digest[..16]))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => text(other).and_then(|s| s.parse().ok()),
    }
}

/// `[[id, [field, value, ...]], ...]` -> deliveries (entries without a `job`
/// field are skipped).
fn entries(v: &Value) -> Vec<Delivery> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(pair) = item else {
                return None;
            };
            let entry = text(pair.first()?)?;
            let Value::Array(fields) = pair.get(1)? else {
                return None;
            };
            let job_id = fields
                .chunks(2)
                .find(|kv| kv.first().and_then(text).as_deref() == Some("job"))
                .and_then(|kv| kv.get(1).and_then(text))?;
            Some(Delivery { entry, job_id })
        })
        .collect()
}

/// The deliveries of an `XREADGROUP` reply (RESP2 array or RESP3 map of
/// streams; nil when nothing was read).
fn stream_entries(v: &Value) -> Vec<Delivery> {
    let mut out = Vec::new();
    match v {
        Value::Array(streams) => {
            for s in streams {
                if let Value::Array(pair) = s
                    && let Some(items) = pair.get(1)
                {
                    out.extend(entries(items));
                }
            }
        }
        Value::Map(streams) => {
            for (_, items) in streams {
                out.extend(entries(items));
            }
        }
        _ => {}
    }
    out
}

/// A flat `[k, v, k, v]` reply (or a RESP3 map) as pairs.
fn pairs(v: &Value) -> Vec<(String, Value)> {
    match v {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|kv| Some((text(kv.first()?)?, kv.get(1)?.clone())))
            .collect(),
        Value::Map(items) => items
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, v.clone())))
            .collect(),
        _ => Vec::new(),
    }
}

fn parse_record(raw: &str) -> Option<JobRecord> {
    serde_json::from_str(raw).ok()
}

fn encode(r: &JobRecord) -> Result<String, StoreError> {
    serde_json::to_string(r).map_err(|e| StoreError::Unavailable(e.to_string()))
}

impl RedisStore {
    /// A lazy store (nothing is contacted until first use).
    pub fn new(
        url: &str,
        options: RedisLinkOptions,
        config: &JobsConfig,
        finished: broadcast::Sender<Arc<str>>,
        wake: Arc<Notify>,
    ) -> Result<RedisStore, RedisError> {
        let client = redis::Client::open(url).map_err(|e| RedisError::Failed(e.to_string()))?;
        Ok(RedisStore {
            link: RedisLink::new(url, options)?,
            client,
            timeout: options.timeout,
            result_ttl_ms: ms(config.result_ttl),
            visibility_ms: ms(config.visibility_timeout),
            group_ready: AtomicBool::new(false),
            last_reclaim_ms: AtomicU64::new(0),
            finished,
            wake,
            subscriber: Mutex::new(None),
        })
    }

    /// The link's operator view.
    pub fn link_status(&self) -> crate::redis_link::RedisStatus {
        self.link.status()
    }

    /// Starts the task that turns `{keel:jobs}:events` messages into local
    /// wake-ups (reconnecting by itself). Idempotent.
    pub fn start_subscriber(&self) {
        let Ok(mut slot) = self.subscriber.lock() else {
            return;
        };
        if slot.is_some() {
            return;
        }
        let client = self.client.clone();
        let finished = self.finished.clone();
        let wake = self.wake.clone();
        let connect_timeout = self.timeout.max(Duration::from_millis(500));
        *slot = Some(tokio::spawn(async move {
            loop {
                let connected = tokio::time::timeout(connect_timeout, async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(channel()).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                })
                .await;
                if let Ok(Ok(pubsub)) = connected {
                    // Anything may have finished while we were away.
                    wake.notify_one();
                    let mut messages = pubsub.into_on_message();
                    while let Some(msg) = messages.next().await {
                        let Ok(payload) = msg.get_payload::<String>() else {
                            continue;
                        };
                        if let Some(id) = payload.strip_prefix("done:") {
                            let _ = finished.send(Arc::from(id));
                        } else {
                            wake.notify_one();
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }));
    }

    /// Stops the subscriber task.
    pub fn stop_subscriber(&self) {
        if let Ok(mut slot) = self.subscriber.lock()
            && let Some(task) = slot.take()
        {
            task.abort();
        }
    }

    /// Persists and enqueues a job in one script.
    pub async fn submit(&self, r: &JobRecord, queue_max: u64) -> Result<SubmitOutcome, StoreError> {
        let rec = encode(r)?;
        let idem = r.idempotency_key.as_deref().map(|k| idem_key(&r.owner, k));
        let mut mode = if idem.is_some() { "1" } else { "0" };
        let record_ttl = r
            .expires_at_ms
            .saturating_sub(r.created_at_ms)
            .saturating_add(self.result_ttl_ms)
            .max(1);
        for _ in 0..2 {
            let keys = vec![
                job_key(&r.job_id),
                key("stream"),
                key("delayed"),
                idem.clone().unwrap_or_else(|| key("idem:-")),
                owner_key(&r.owner),
            ];
            let args = vec![
                rec.clone(),
                r.job_id.clone(),
                queue_max.to_string(),
                mode.to_string(),
                IDEMPOTENCY_WINDOW.as_secs().to_string(),
                index_member(r),
                ((record_ttl / 1000) + 1).to_string(),
                record_ttl.to_string(),
                channel(),
            ];
            let reply: Vec<String> = self
                .link
                .script(&SUBMIT, &keys, &args)
                .await
                .map_err(unavailable)?;
            match reply.first().map(String::as_str) {
                Some("created") => return Ok(SubmitOutcome::Created),
                Some("full") => {
                    let depth = reply
                        .get(1)
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(queue_max);
                    return Ok(SubmitOutcome::Full(depth));
                }
                Some("existing") => {
                    let id = reply.get(1).cloned().unwrap_or_default();
                    match self.get(&id).await? {
                        Some(v) => return Ok(SubmitOutcome::Existing(Box::new(v.record))),
                        // The job the key named is gone: the key starts afresh.
                        None => mode = "2",
                    }
                }
                _ => return Err(StoreError::Unavailable("unexpected submit reply".into())),
            }
        }
        Err(StoreError::Unavailable(
            "idempotency key kept changing".into(),
        ))
    }

    /// A job and its version.
    pub async fn get(&self, id: &str) -> Result<Option<Versioned>, StoreError> {
        let (rec, ver): (Option<String>, Option<u64>) = self
            .link
            .query(redis::cmd("HMGET").arg(job_key(id)).arg("rec").arg("ver"))
            .await
            .map_err(unavailable)?;
        Ok(match (rec.as_deref().and_then(parse_record), ver) {
            (Some(record), Some(ver)) => Some(Versioned { record, ver }),
            _ => None,
        })
    }

    /// The check-and-set with its side effects, in one script.
    pub async fn update(
        &self,
        id: &str,
        ver: u64,
        r: &JobRecord,
        e: Effects,
    ) -> Result<bool, StoreError> {
        let now = crate::time::unix_ms();
        let expire = if e.finalize {
            self.result_ttl_ms.max(1)
        } else if let Some(until) = e.keep_until_ms {
            until
                .saturating_sub(now)
                .saturating_add(self.result_ttl_ms)
                .max(1)
        } else {
            0
        };
        let enqueue = match e.enqueue {
            Enqueue::Keep => String::new(),
            Enqueue::Now => "now".into(),
            Enqueue::Remove => "rem".into(),
            Enqueue::At(at) => at.to_string(),
        };
        let keys = vec![
            job_key(id),
            key("stream"),
            key("delayed"),
            key("dead"),
            key("outcomes"),
        ];
        let args = vec![
            ver.to_string(),
            encode(r)?,
            r.status.as_str().to_string(),
            expire.to_string(),
            e.ack.clone().unwrap_or_default(),
            GROUP.to_string(),
            enqueue,
            id.to_string(),
            match e.dead {
                Some(true) => "add".into(),
                Some(false) => "rem".into(),
                None => String::new(),
            },
            if e.finalize {
                r.status.as_str().to_string()
            } else {
                String::new()
            },
            channel(),
            if e.finalize {
                format!("done:{id}")
            } else {
                String::new()
            },
            now.to_string(),
        ];
        let applied: i64 = self
            .link
            .script(&UPDATE, &keys, &args)
            .await
            .map_err(unavailable)?;
        Ok(applied == 1)
    }

    async fn records(&self, ids: &[String]) -> Result<Vec<Option<JobRecord>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| job_key(id)).collect();
        let raw: Vec<String> = self
            .link
            .script(&MGET_RECORDS, &keys, &[])
            .await
            .map_err(unavailable)?;
        Ok(raw.iter().map(|r| parse_record(r)).collect())
    }

    /// A page of the owner's index, newest first.
    pub async fn list(
        &self,
        owner: &str,
        cursor: Option<&str>,
        max: usize,
    ) -> Result<(Vec<(String, JobRecord)>, Option<String>), StoreError> {
        let start = match cursor {
            Some(c) => format!("({c}"),
            None => "+".into(),
        };
        let members: Vec<String> = self
            .link
            .query(
                redis::cmd("ZREVRANGEBYLEX")
                    .arg(owner_key(owner))
                    .arg(start)
                    .arg("-")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(max + 1),
            )
            .await
            .map_err(unavailable)?;
        let more = members.len() > max;
        let members: Vec<String> = members.into_iter().take(max).collect();
        let ids: Vec<String> = members
            .iter()
            .map(|m| {
                m.split_once(':')
                    .map_or(m.clone(), |(_, id)| id.to_string())
            })
            .collect();
        let records = self.records(&ids).await?;
        let mut page = Vec::new();
        let mut gone = Vec::new();
        for (member, record) in members.iter().zip(records) {
            match record {
                Some(r) => page.push((member.clone(), r)),
                None => gone.push(member.clone()),
            }
        }
        if !gone.is_empty() {
            // Expired records leave the index lazily.
            let _ = self
                .link
                .query::<i64>(redis::cmd("ZREM").arg(owner_key(owner)).arg(&gone))
                .await;
        }
        let next = if more { members.last().cloned() } else { None };
        Ok((page, next))
    }

    async fn ensure_group(&self) -> Result<(), StoreError> {
        if self.group_ready.load(Relaxed) {
            return Ok(());
        }
        let created = self
            .link
            .query::<String>(
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(key("stream"))
                    .arg(GROUP)
                    .arg("0")
                    .arg("MKSTREAM"),
            )
            .await;
        match created {
            Ok(_) => {}
            Err(RedisError::Failed(m)) if m.contains("BUSYGROUP") => {}
            Err(e) => return Err(unavailable(e)),
        }
        self.group_ready.store(true, Relaxed);
        Ok(())
    }

    fn forget_group_on(&self, e: &RedisError) {
        if let RedisError::Failed(m) = e
            && m.contains("NOGROUP")
        {
            self.group_ready.store(false, Relaxed);
        }
    }

    /// The deliveries already pending for `consumer` (up to `max`, oldest
    /// first): what this consumer was handed but may never have heard of —
    /// a read whose answer was lost to a timeout or a dying Redis still
    /// moved its entries into the consumer's pending list. Reading them
    /// back (`XREADGROUP ... 0`) runs them now instead of after the
    /// visibility timeout.
    pub async fn own_pending(
        &self,
        consumer: &str,
        max: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.ensure_group().await?;
        self.read_group(consumer, max, "0").await
    }

    /// `XREADGROUP` of up to `count` entries for `consumer` from `from`
    /// (`>`: new entries; `0`: the consumer's own pending ones).
    async fn read_group(
        &self,
        consumer: &str,
        count: usize,
        from: &str,
    ) -> Result<Vec<Delivery>, StoreError> {
        let reply: Result<Value, _> = self
            .link
            .query(
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(GROUP)
                    .arg(consumer)
                    .arg("COUNT")
                    .arg(count)
                    .arg("STREAMS")
                    .arg(key("stream"))
                    .arg(from),
            )
            .await;
        reply.map(|v| stream_entries(&v)).map_err(|e| {
            self.forget_group_on(&e);
            unavailable(e)
        })
    }

    /// Moves due delayed jobs into the stream; reclaims deliveries idle
    /// longer than the visibility timeout; reads new ones.
    pub async fn claim(&self, consumer: &str, max: usize) -> Result<Vec<Delivery>, StoreError> {
        self.ensure_group().await?;
        let now = crate::time::unix_ms();
        let _: i64 = self
            .link
            .script(
                &PROMOTE,
                &[key("delayed"), key("stream")],
                &[now.to_string(), "100".into(), channel()],
            )
            .await
            .map_err(unavailable)?;
        let mut out = Vec::new();
        let every = (self.visibility_ms / 4).clamp(100, 5_000);
        if now.saturating_sub(self.last_reclaim_ms.load(Relaxed)) >= every {
            self.last_reclaim_ms.store(now, Relaxed);
            let reply: Result<Value, _> = self
                .link
                .query(
                    redis::cmd("XAUTOCLAIM")
                        .arg(key("stream"))
                        .arg(GROUP)
                        .arg(consumer)
                        .arg(self.visibility_ms)
                        .arg("0-0")
                        .arg("COUNT")
                        .arg(max),
                )
                .await;
            match reply {
                Ok(Value::Array(parts)) => {
                    if let Some(claimed) = parts.get(1) {
                        out.extend(entries(claimed));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    self.forget_group_on(&e);
                    return Err(unavailable(e));
                }
            }
        }
        if out.len() < max {
            out.extend(self.read_group(consumer, max - out.len(), ">").await?);
        }
        Ok(out)
    }

    /// Acknowledges and drops a delivery.
    pub async fn ack(&self, entry: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .link
            .script(
                &ACK,
                &[key("stream")],
                &[GROUP.into(), entry.into(), String::new(), channel()],
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Replaces a delivery by a fresh one any consumer takes at once.
    pub async fn release(&self, d: &Delivery) -> Result<(), StoreError> {
        let _: i64 = self
            .link
            .script(
                &ACK,
                &[key("stream")],
                &[GROUP.into(), d.entry.clone(), d.job_id.clone(), channel()],
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Queue depth from the stream, the group and the sets.
    pub async fn depth(&self) -> Result<Depth, StoreError> {
        self.ensure_group().await?;
        let len: u64 = self
            .link
            .query(redis::cmd("XLEN").arg(key("stream")))
            .await
            .map_err(unavailable)?;
        let delayed: u64 = self
            .link
            .query(redis::cmd("ZCARD").arg(key("delayed")))
            .await
            .map_err(unavailable)?;
        let dead: u64 = self
            .link
            .query(redis::cmd("ZCARD").arg(key("dead")))
            .await
            .map_err(unavailable)?;
        let pending: Value = self
            .link
            .query(redis::cmd("XPENDING").arg(key("stream")).arg(GROUP))
            .await
            .map_err(unavailable)?;
        let running = match &pending {
            Value::Array(p) => p.first().and_then(int).unwrap_or(0),
            _ => 0,
        };
        // The oldest undelivered entry: the first after the group's cursor.
        let groups: Value = self
            .link
            .query(redis::cmd("XINFO").arg("GROUPS").arg(key("stream")))
            .await
            .map_err(unavailable)?;
        let last = match &groups {
            Value::Array(gs) => gs.iter().find_map(|g| {
                let p = pairs(g);
                let is_ours = p
                    .iter()
                    .any(|(k, v)| k == "name" && text(v).as_deref() == Some(GROUP));
                is_ours
                    .then(|| {
                        p.iter()
                            .find(|(k, _)| k == "last-delivered-id")
                            .and_then(|(_, v)| text(v))
                    })
                    .flatten()
            }),
            _ => None,
        };
        let oldest = match last {
            Some(last) => {
                let next: Value = self
                    .link
                    .query(
                        redis::cmd("XRANGE")
                            .arg(key("stream"))
                            .arg(format!("({last}"))
                            .arg("+")
                            .arg("COUNT")
                            .arg(1),
                    )
                    .await
                    .map_err(unavailable)?;
                entries(&next)
                    .first()
                    .and_then(|d| d.entry.split('-').next().and_then(|t| t.parse().ok()))
            }
            None => None,
        };
        Ok(Depth {
            queued: len.saturating_sub(running) + delayed,
            delayed,
            running,
            dead,
            oldest_queued_ms: oldest,
        })
    }

    /// Outcome counters.
    pub async fn outcomes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let map: Vec<(String, u64)> = self
            .link
            .query(redis::cmd("HGETALL").arg(key("outcomes")))
            .await
            .map_err(unavailable)?;
        Ok(map)
    }

    /// Dead-lettered jobs, newest first.
    pub async fn dead(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        let ids: Vec<String> = self
            .link
            .query(
                redis::cmd("ZREVRANGE")
                    .arg(key("dead"))
                    .arg(0)
                    .arg(limit.saturating_sub(1)),
            )
            .await
            .map_err(unavailable)?;
        Ok(self.records(&ids).await?.into_iter().flatten().collect())
    }

    /// Sets or clears the cluster-wide pause flag.
    pub async fn set_paused(&self, paused: bool) -> Result<(), StoreError> {
        let cmd = if paused {
            redis::cmd("SET").arg(key("paused")).arg("1").to_owned()
        } else {
            redis::cmd("DEL").arg(key("paused")).to_owned()
        };
        self.link.query::<Value>(&cmd).await.map_err(unavailable)?;
        if !paused {
            let _ = self
                .link
                .query::<i64>(redis::cmd("PUBLISH").arg(channel()).arg("new"))
                .await;
        }
        Ok(())
    }

    /// The pause flag.
    pub async fn is_paused(&self) -> Result<bool, StoreError> {
        let n: i64 = self
            .link
            .query(redis::cmd("EXISTS").arg(key("paused")))
            .await
            .map_err(unavailable)?;
        Ok(n > 0)
    }

    /// The group's consumers.
    pub async fn consumers(&self) -> Result<Vec<ConsumerInfo>, StoreError> {
        self.ensure_group().await?;
        let reply: Value = self
            .link
            .query(
                redis::cmd("XINFO")
                    .arg("CONSUMERS")
                    .arg(key("stream"))
                    .arg(GROUP),
            )
            .await
            .map_err(unavailable)?;
        let Value::Array(items) = reply else {
            return Ok(Vec::new());
        };
        Ok(items
            .iter()
            .map(|c| {
                let p = pairs(c);
                let get = |name: &str| p.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
                ConsumerInfo {
                    name: get("name").as_ref().and_then(text).unwrap_or_default(),
                    pending: get("pending").as_ref().and_then(int).unwrap_or(0),
                    last_seen_seconds_ago: get("idle").as_ref().and_then(int).unwrap_or(0) as f64
                        / 1000.0,
                }
            })
            .collect())
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.stop_subscriber();
    }
}
