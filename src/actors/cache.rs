//! `CacheActor`: owns the cache's administrative operations — invalidation
//! by operation or pattern and clear-all (SCAN + UNLINK batches on Redis) —
//! so concurrent operator requests run one at a time and are logged. Request
//! tasks read and write the shared [`Cache`] directly and never wait on this
//! mailbox.

use crate::cache::{Cache, InvalidPattern, InvalidationReport};
use crate::job::Operation;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::Arc;

/// What to invalidate.
#[derive(Debug, Clone)]
pub enum Invalidation {
    /// Every entry of one operation.
    Operation(Operation),
    /// Entries whose `{operation}:{hash}` matches a glob.
    Pattern(String),
    /// Everything.
    All,
}

/// How often the actor probes Redis (when configured).
const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Messages the cache actor handles.
pub enum CacheMsg {
    /// Ping Redis so outages and recoveries are noticed without traffic
    /// (sent by the actor's own timer).
    Probe,
    /// Run an invalidation on both tiers; replies with what was removed.
    Invalidate(
        Invalidation,
        String,
        RpcReplyPort<Result<InvalidationReport, InvalidPattern>>,
    ),
}

/// The actor.
pub struct CacheActor;

impl Actor for CacheActor {
    type Msg = CacheMsg;
    type State = Arc<Cache>;
    type Arguments = Arc<Cache>;

    async fn pre_start(
        &self,
        myself: ActorRef<CacheMsg>,
        cache: Arc<Cache>,
    ) -> Result<Arc<Cache>, ActorProcessingErr> {
        if cache.redis_status().is_some() {
            myself.send_interval(PROBE_EVERY, || CacheMsg::Probe);
        }
        Ok(cache)
    }

    async fn handle(
        &self,
        _myself: ActorRef<CacheMsg>,
        message: CacheMsg,
        cache: &mut Arc<Cache>,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            // At most one link timeout (tens of ms); admin messages wait that long at worst.
            CacheMsg::Probe => cache.probe_redis().await,
            CacheMsg::Invalidate(what, who, reply) => {
                let report = match &what {
                    Invalidation::Operation(op) => Ok(cache.invalidate_operation(*op).await),
                    Invalidation::Pattern(p) => cache.invalidate_pattern(p).await,
                    Invalidation::All => Ok(cache.clear().await),
                };
                if let Ok(r) = &report {
                    tracing::info!(by = %who, what = ?what, memory_removed = r.memory_removed, redis_removed = ?r.redis_removed, "cache invalidated");
                }
                let _ = reply.send(report);
            }
        }
        Ok(())
    }
}
