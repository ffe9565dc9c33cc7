//! `RateLimiterActor`: owns the rate limiter's housekeeping. Request tasks
//! check limits directly on the shared [`RateLimiter`] (a `DashMap` or one
//! Redis script call); this actor periodically sweeps idle identities out of
//! the memory buckets, so memory stays bounded however many clients come
//! and go, and probes Redis every second so the link notices an outage or a
//! recovery without waiting for traffic.

use crate::rate_limit::RateLimiter;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;
use std::time::Duration;

/// How often idle identities are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Messages the actor handles.
pub enum RateLimiterMsg {
    /// Drop idle identities (sent by the actor's own timer).
    Sweep,
    /// Ping Redis so outages and recoveries are noticed without traffic.
    Probe,
}

/// How often the actor probes Redis.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The actor.
pub struct RateLimiterActor;

impl Actor for RateLimiterActor {
    type Msg = RateLimiterMsg;
    type State = Arc<RateLimiter>;
    type Arguments = Arc<RateLimiter>;

    async fn pre_start(
        &self,
        myself: ActorRef<RateLimiterMsg>,
        limiter: Arc<RateLimiter>,
    ) -> Result<Arc<RateLimiter>, ActorProcessingErr> {
        myself.send_interval(SWEEP_EVERY, || RateLimiterMsg::Sweep);
        if limiter.stats().redis.is_some() {
            myself.send_interval(PROBE_EVERY, || RateLimiterMsg::Probe);
        }
        Ok(limiter)
    }

    async fn handle(
        &self,
        _myself: ActorRef<RateLimiterMsg>,
        message: RateLimiterMsg,
        limiter: &mut Arc<RateLimiter>,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RateLimiterMsg::Sweep => limiter.sweep(),
            RateLimiterMsg::Probe => limiter.probe_redis().await,
        }
        Ok(())
    }
}
