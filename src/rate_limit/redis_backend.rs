//! The shared (Redis) backend: one Lua script checks and counts a request
//! in every window of one identity atomically, so a limit holds across all
//! keel instances that share Redis (README "Running several instances").
//!
//! Layout: one HASH per (identity, scope, window), named
//! `keel:rl:{<id>}:<window>` (or `keel:rl:{<id>}:<route>:<window>` for a
//! route with an override), where `<id>` is the first 16 hex digits of the
//! identity's SHA-256 — raw identities (API-key fingerprints, IPs) never
//! reach Redis — and `{<id>}` is the Redis Cluster hash tag, so all keys one
//! script touches live in one slot. Fields are bucket indexes, values counts.
//!
//! Invariants: the script is the only writer of these keys; it implements
//! exactly the rules of `window.rs` (conservative bucket counting,
//! all-or-nothing increment) using the Redis server clock (`TIME`), so
//! instances with skewed clocks still agree, and Redis runs scripts one at a
//! time, so concurrent checks from any number of processes never over-admit.
//! Every call goes through [`RedisLink`] (timeouts, cool-off); errors are
//! returned for the facade to apply the configured failure mode.

use super::window::{Outcome, Window, WindowLimit};
use crate::redis_link::{RedisError, RedisLink};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// KEYS: one hash per window. ARGV[1] = cost, then per window in KEYS order
/// `length_ms, bucket_ms, limit`. Returns
/// `{allowed (1|0), limit, remaining, reset_ms, retry_after_ms (-1 = none)}`.
const CHECK_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cost = tonumber(ARGV[1])
local wins = {}
local allowed = true
for i = 1, #KEYS do
  local len = tonumber(ARGV[i * 3 - 1])
  local b = tonumber(ARGV[i * 3])
  local limit = tonumber(ARGV[i * 3 + 1])
  -- The oldest bucket that overlaps [now - len, now] is counted whole.
  local first = math.floor((now - len) / b)
  local raw = redis.call('HGETALL', KEYS[i])
  local buckets = {}
  local stale = {}
  local total = 0
  for j = 1, #raw, 2 do
    local idx = tonumber(raw[j])
    local c = tonumber(raw[j + 1])
    if idx == nil or c == nil or idx < first then
      stale[#stale + 1] = raw[j]
    else
      total = total + c
      buckets[#buckets + 1] = {idx, c}
    end
  end
  if #stale > 0 then
    redis.call('HDEL', KEYS[i], unpack(stale))
  end
  table.sort(buckets, function(x, y) return x[1] < y[1] end)
  if total + cost > limit then
    allowed = false
  end
  wins[i] = {len = len, b = b, limit = limit, total = total, buckets = buckets}
end

if allowed and cost > 0 then
  for i = 1, #KEYS do
    local w = wins[i]
    local cur = math.floor(now / w.b)
    local last = w.buckets[#w.buckets]
    -- Never count into a bucket older than the newest one (a server clock
    -- step backwards must not hide this request from later checks).
    if last ~= nil and last[1] >= cur then
      cur = last[1]
      last[2] = last[2] + cost
    else
      w.buckets[#w.buckets + 1] = {cur, cost}
    end
    redis.call('HINCRBY', KEYS[i], string.format('%d', cur), cost)
    -- One bucket longer than the window: the oldest bucket is counted whole.
    redis.call('PEXPIRE', KEYS[i], w.len + w.b)
    w.total = w.total + cost
  end
end

local best_remaining, best_reset, best_limit = nil, 0, 0
local retry = -1
for i = 1, #KEYS do
  local w = wins[i]
  local remaining = math.max(0, w.limit - w.total)
  local reset = 0
  if #w.buckets > 0 then
    reset = math.max(0, (w.buckets[1][1] + 1) * w.b + w.len - now)
  end
  if best_remaining == nil or remaining < best_remaining
      or (remaining == best_remaining and reset > best_reset) then
    best_remaining, best_reset, best_limit = remaining, reset, w.limit
  end
  if not allowed then
    local excess = w.total + cost - w.limit
    local wait = 0
    if excess > 0 then
      local freed = 0
      local leave = now
      for _, bucket in ipairs(w.buckets) do
        freed = freed + bucket[2]
        leave = (bucket[1] + 1) * w.b + w.len
        if freed >= excess then
          break
        end
      end
      wait = math.max(0, leave - now)
    end
    retry = math.max(retry, wait)
  end
end
return {allowed and 1 or 0, best_limit, best_remaining, best_reset, retry}
"#;

/// Checks requests against windows kept in Redis.
pub(crate) struct RedisBackend {
    link: Arc<RedisLink>,
    script: redis::Script,
}

impl RedisBackend {
    /// A backend using `link` (whose cool-off and statistics it shares with
    /// nobody else, per `RedisLink`'s design).
    pub(crate) fn new(link: Arc<RedisLink>) -> RedisBackend {
        RedisBackend {
            link,
            script: redis::Script::new(CHECK_SCRIPT),
        }
    }

    /// The link, for status reporting.
    pub(crate) fn link(&self) -> &RedisLink {
        &self.link
    }

    /// Checks and (when allowed) counts `cost` for `identity` in `limits`'
    /// windows of the scope `route` (`None` = the default limits).
    pub(crate) async fn check(
        &self,
        identity: &str,
        route: Option<&str>,
        limits: &[WindowLimit],
        cost: u32,
    ) -> Result<Outcome, RedisError> {
        if limits.is_empty() {
            return Ok(Outcome::UNLIMITED);
        }
        let tag = identity_tag(identity);
        let keys: Vec<String> = limits
            .iter()
            .map(|l| window_key(&tag, route, l.window))
            .collect();
        let mut args = Vec::with_capacity(1 + 3 * limits.len());
        args.push(cost.to_string());
        for l in limits {
            args.push(l.window.length_ms().to_string());
            args.push(l.window.bucket_ms().to_string());
            args.push(l.limit.to_string());
        }
        let reply: Vec<i64> = self.link.script(&self.script, &keys, &args).await?;
        parse_reply(&reply)
    }
}

fn parse_reply(reply: &[i64]) -> Result<Outcome, RedisError> {
    let &[allowed, limit, remaining, reset_ms, retry_ms] = reply else {
        return Err(RedisError::Failed(format!(
            "rate-limit script returned {reply:?}"
        )));
    };
    let to_u32 = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
    let to_u64 = |v: i64| u64::try_from(v.max(0)).unwrap_or(0);
    Ok(Outcome {
        allowed: allowed == 1,
        limit: to_u32(limit),
        remaining: to_u32(remaining),
        reset_ms: to_u64(reset_ms),
        retry_after_ms: (retry_ms >= 0).then(|| to_u64(retry_ms)),
    })
}

/// The first 16 hex digits of SHA-256(`identity`): short, stable, and it
/// keeps raw identities out of Redis.
pub(crate) fn identity_tag(identity: &str) -> String {
    let digest = Sha256::digest(identity.as_bytes());
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest[..8]);
    format!("{:016x}", u64::from_be_bytes(prefix))
}

/// `keel:rl:{<tag>}[:<route>]:<window>`.
pub(crate) fn window_key(tag: &str, route: Option<&str>, window: Window) -> String {
    match route {
        Some(route) => format!("keel:rl:{{{tag}}}:{route}:{}", window.name()),
        None => format!("keel:rl:{{{tag}}}:{}", window.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_hash_tag_and_no_raw_identity() {
        let tag = identity_tag("key:secret-fingerprint");
        assert_eq!(tag.len(), 16);
        assert!(tag.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(tag, identity_tag("key:secret-fingerprint"), "stable");
        assert_ne!(tag, identity_tag("key:other"));
        let key = window_key(&tag, None, Window::Minute);
        assert_eq!(key, format!("keel:rl:{{{tag}}}:minute"));
        let key = window_key(&tag, Some("/v1/x"), Window::Burst);
        assert_eq!(key, format!("keel:rl:{{{tag}}}:/v1/x:burst"));
        assert!(!key.contains("secret"));
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert!(parse_reply(&[1, 2]).is_err());
        let o = parse_reply(&[0, 10, 0, 1500, 700]).unwrap();
        assert_eq!(
            o,
            Outcome {
                allowed: false,
                limit: 10,
                remaining: 0,
                reset_ms: 1500,
                retry_after_ms: Some(700)
            }
        );
        assert_eq!(
            parse_reply(&[1, 10, 9, 60_000, -1]).unwrap().retry_after_ms,
            None
        );
    }
}
