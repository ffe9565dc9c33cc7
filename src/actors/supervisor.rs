//! `EngineSupervisor`: the root of keel's actor tree.
//!
//! It starts its direct children — the [`MetricsAggregator`], the
//! [`BreakerRegistry`], the [`RateLimiterActor`], the [`CacheActor`], the
//! [`ProviderSupervisor`] (which supervises one actor per provider), the
//! [`JobConsumer`] and, when breakers are shared, the [`ClusterSync`] —
//! restarts any of them when it fails (with its original arguments), counts
//! and logs every restart, and keeps the current child refs in [`EngineActors`] so handles
//! never hold a dead `ActorRef`. A child that fails more often than the
//! [`RestartPolicy`] allows makes the supervisor give up: it records why in
//! [`EngineActors::gave_up`] and stops (its children stop with it); the
//! [`crate::engine::Engine`] notices, liveness fails and `keel serve` exits
//! non-zero.

use super::breaker_registry::{BreakerRegistry, BreakerRegistryMsg};
use super::cache::{CacheActor, CacheMsg};
use super::cluster_sync::{ClusterSync, ClusterSyncMsg};
use super::metrics::{MetricsAggregator, MetricsAggregatorArgs, MetricsMsg};
use super::provider_supervisor::{
    ProviderSupervisor, ProviderSupervisorArgs, ProviderSupervisorMsg,
};
use super::rate_limiter::{RateLimiterActor, RateLimiterMsg};
use super::restart::{RestartHistory, RestartPolicy, stopped_child};
use crate::cache::Cache;
use crate::jobs::Jobs;
use crate::jobs::consumer::{JobConsumer, JobConsumerMsg};
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::resilience::Resilience;
use arc_swap::ArcSwapOption;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Current refs of the engine's direct children, refreshed on every restart.
#[derive(Default)]
pub struct EngineActors {
    /// The metrics aggregator.
    pub metrics: ArcSwapOption<ActorRef<MetricsMsg>>,
    /// The provider supervisor.
    pub providers: ArcSwapOption<ActorRef<ProviderSupervisorMsg>>,
    /// The breaker registry.
    pub breakers: ArcSwapOption<ActorRef<BreakerRegistryMsg>>,
    /// The rate limiter's housekeeper.
    pub rate_limiter: ArcSwapOption<ActorRef<RateLimiterMsg>>,
    /// The cache administrator.
    pub cache: ArcSwapOption<ActorRef<CacheMsg>>,
    /// The async jobs consumer.
    pub jobs: ArcSwapOption<ActorRef<JobConsumerMsg>>,
    /// The cluster sync (only when breakers are shared through Redis).
    pub cluster: ArcSwapOption<ActorRef<ClusterSyncMsg>>,
    /// Whether the cluster sync is part of the tree.
    pub cluster_configured: std::sync::atomic::AtomicBool,
    /// Set (once) by the supervisor when a child exhausted its restarts and
    /// the supervisor stopped: why the engine is dead. The engine's watcher
    /// reads it to fail liveness and end `keel serve`.
    pub gave_up: ArcSwapOption<String>,
}

impl EngineActors {
    /// The status of each direct child (`None` when it has never started).
    pub fn statuses(&self) -> Vec<Option<ractor::ActorStatus>> {
        self.named_statuses().into_iter().map(|(_, s)| s).collect()
    }

    /// Each direct child's name (as in restart counters and logs) with its
    /// status (`None` when it has never started); the health model reports
    /// a child that is not running by this name.
    pub fn named_statuses(&self) -> Vec<(&'static str, Option<ractor::ActorStatus>)> {
        fn status<M: ractor::Message>(
            slot: &ArcSwapOption<ActorRef<M>>,
        ) -> Option<ractor::ActorStatus> {
            slot.load().as_ref().map(|a| a.get_status())
        }
        let mut all = vec![
            (Child::Metrics.name(), status(&self.metrics)),
            (Child::Providers.name(), status(&self.providers)),
            (Child::Breakers.name(), status(&self.breakers)),
            (Child::RateLimiter.name(), status(&self.rate_limiter)),
            (Child::Cache.name(), status(&self.cache)),
            (Child::Jobs.name(), status(&self.jobs)),
        ];
        if self
            .cluster_configured
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            all.push((Child::Cluster.name(), status(&self.cluster)));
        }
        all
    }
}

/// Messages the engine supervisor handles (none today).
pub enum EngineMsg {}

/// Arguments of the root supervisor.
#[derive(Clone)]
pub struct EngineSupervisorArgs {
    /// Passed to the provider supervisor.
    pub providers: ProviderSupervisorArgs,
    /// The registry the aggregator reads.
    pub metrics: Arc<Metrics>,
    /// The resilience state the breaker registry manages.
    pub resilience: Arc<Resilience>,
    /// The limiter the rate-limiter actor sweeps.
    pub rate_limiter: Arc<RateLimiter>,
    /// The cache the cache actor administers.
    pub cache: Arc<Cache>,
    /// The jobs subsystem the consumer serves.
    pub jobs: Arc<Jobs>,
    /// The cluster sync, when breakers are shared through Redis.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Where current child refs are published.
    pub actors: Arc<EngineActors>,
    /// Restart intensity per child.
    pub policy: RestartPolicy,
}

/// The root supervisor.
pub struct EngineSupervisor;

/// Which direct child an actor id is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Child {
    Metrics,
    Breakers,
    RateLimiter,
    Cache,
    Providers,
    Jobs,
    Cluster,
}

impl Child {
    fn name(self) -> &'static str {
        match self {
            Child::Metrics => "metrics_aggregator",
            Child::Breakers => "breaker_registry",
            Child::RateLimiter => "rate_limiter",
            Child::Cache => "cache",
            Child::Providers => "provider_supervisor",
            Child::Jobs => "job_consumer",
            Child::Cluster => "cluster_sync",
        }
    }
}

/// Running state of the root supervisor.
pub struct EngineSupervisorState {
    args: EngineSupervisorArgs,
    children: HashMap<ractor::ActorId, Child>,
    history: HashMap<Child, RestartHistory>,
}

async fn start_child(
    child: Child,
    myself: ActorCell,
    args: &EngineSupervisorArgs,
) -> Result<ractor::ActorId, ActorProcessingErr> {
    match child {
        Child::Metrics => {
            let aggregator_args = MetricsAggregatorArgs {
                metrics: args.metrics.clone(),
                resilience: args.resilience.clone(),
            };
            let (r, _) =
                Actor::spawn_linked(None, MetricsAggregator, aggregator_args, myself).await?;
            let id = r.get_id();
            args.actors.metrics.store(Some(Arc::new(r)));
            Ok(id)
        }
        Child::Breakers => {
            let (r, _) =
                Actor::spawn_linked(None, BreakerRegistry, args.resilience.clone(), myself).await?;
            let id = r.get_id();
            args.actors.breakers.store(Some(Arc::new(r)));
            Ok(id)
        }
        Child::RateLimiter => {
            let (r, _) =
                Actor::spawn_linked(None, RateLimiterActor, args.rate_limiter.clone(), myself)
                    .await?;
            let id = r.get_id();
            args.actors.rate_limiter.store(Some(Arc::new(r)));
            Ok(id)
        }
        Child::Cache => {
            let (r, _) = Actor::spawn_linked(None, CacheActor, args.cache.clone(), myself).await?;
            let id = r.get_id();
            args.actors.cache.store(Some(Arc::new(r)));
            Ok(id)
        }
        Child::Providers => {
            let (r, _) =
                Actor::spawn_linked(None, ProviderSupervisor, args.providers.clone(), myself)
                    .await?;
            let id = r.get_id();
            args.actors.providers.store(Some(Arc::new(r)));
            Ok(id)
        }
        Child::Jobs => {
            let (r, _) = Actor::spawn_linked(None, JobConsumer, args.jobs.clone(), myself).await?;
            let id = r.get_id();
            args.actors.jobs.store(Some(Arc::new(r)));
            Ok(id)
        }
        Child::Cluster => {
            let Some(cluster) = args.cluster.clone() else {
                return Err("cluster sync started without a cluster".into());
            };
            let (r, _) = Actor::spawn_linked(None, ClusterSync, cluster, myself).await?;
            let id = r.get_id();
            args.actors.cluster.store(Some(Arc::new(r)));
            Ok(id)
        }
    }
}

impl Actor for EngineSupervisor {
    type Msg = EngineMsg;
    type State = EngineSupervisorState;
    type Arguments = EngineSupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<EngineMsg>,
        args: EngineSupervisorArgs,
    ) -> Result<EngineSupervisorState, ActorProcessingErr> {
        let mut children = HashMap::new();
        let mut all = vec![
            Child::Metrics,
            Child::Breakers,
            Child::RateLimiter,
            Child::Cache,
            Child::Providers,
            Child::Jobs,
        ];
        if args.cluster.is_some() {
            args.actors
                .cluster_configured
                .store(true, std::sync::atomic::Ordering::Relaxed);
            all.push(Child::Cluster);
        }
        for child in all {
            let id = start_child(child, myself.get_cell(), &args).await?;
            children.insert(id, child);
        }
        Ok(EngineSupervisorState {
            args,
            children,
            history: HashMap::new(),
        })
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<EngineMsg>,
        event: SupervisionEvent,
        state: &mut EngineSupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, reason)) = stopped_child(event) else {
            return Ok(());
        };
        let Some(child) = state.children.remove(&cell.get_id()) else {
            return Ok(());
        };
        let allowed = state
            .history
            .entry(child)
            .or_default()
            .allow(state.args.policy, Instant::now());
        if !allowed {
            // A child that cannot stay up makes the engine unusable: stop.
            // The engine's watcher sees the supervisor end, liveness turns
            // 503 and `keel serve` exits non-zero, so the process's own
            // supervisor (systemd, k8s) acts.
            let why = format!(
                "{} failed {} times within {:?}: {reason}",
                child.name(),
                state.args.policy.max_restarts + 1,
                state.args.policy.window
            );
            tracing::error!(actor = child.name(), %reason, "child keeps failing; stopping the engine");
            state.args.actors.gave_up.store(Some(Arc::new(why.clone())));
            return Err(why.into());
        }
        tracing::warn!(actor = child.name(), %reason, "child stopped; restarting it");
        state.args.metrics.record_restart(child.name());
        let id = start_child(child, myself.get_cell(), &state.args).await?;
        state.children.insert(id, child);
        Ok(())
    }
}
