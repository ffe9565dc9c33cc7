//! `ProviderSupervisor`: starts one [`ProviderActor`] per configured provider
//! and restarts any that fails, with its original settings.

use super::provider::{ProviderActor, ProviderArgs};
use super::restart::{RestartHistory, RestartPolicy, stopped_child};
use crate::metrics::Metrics;
use crate::providers::ProviderSettings;
use crate::providers::ProviderTable;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Messages the provider supervisor handles (none today; restarts are driven
/// by supervision events).
pub enum ProviderSupervisorMsg {}

/// Arguments the supervisor (re)starts with.
#[derive(Clone)]
pub struct ProviderSupervisorArgs {
    /// One entry per provider, in chain order.
    pub providers: Vec<ProviderSettings>,
    /// The table provider actors publish into.
    pub table: Arc<ProviderTable>,
    /// Where restarts are counted.
    pub metrics: Arc<Metrics>,
    /// Restart intensity per child.
    pub policy: RestartPolicy,
}

/// The supervisor actor.
pub struct ProviderSupervisor;

/// Running supervisor state: which child is which.
pub struct ProviderSupervisorState {
    args: ProviderSupervisorArgs,
    children: HashMap<ActorId, ProviderArgs>,
    history: HashMap<&'static str, RestartHistory>,
}

/// The metrics/log name of a provider actor.
pub fn provider_actor_name(settings: &ProviderSettings) -> &'static str {
    match settings.kind {
        crate::providers::ProviderKind::Local => "provider:local",
        crate::providers::ProviderKind::OpenAi => "provider:openai",
        crate::providers::ProviderKind::Gemini => "provider:gemini",
    }
}

async fn spawn_child(
    supervisor: ActorCell,
    args: ProviderArgs,
) -> Result<ActorRef<super::provider::ProviderMsg>, ActorProcessingErr> {
    let (actor, _handle) = Actor::spawn_linked(None, ProviderActor, args, supervisor).await?;
    Ok(actor)
}

impl Actor for ProviderSupervisor {
    type Msg = ProviderSupervisorMsg;
    type State = ProviderSupervisorState;
    type Arguments = ProviderSupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ProviderSupervisorMsg>,
        args: ProviderSupervisorArgs,
    ) -> Result<ProviderSupervisorState, ActorProcessingErr> {
        let mut children = HashMap::new();
        for settings in &args.providers {
            let child_args = ProviderArgs {
                settings: settings.clone(),
                table: args.table.clone(),
            };
            let actor = spawn_child(myself.get_cell(), child_args.clone()).await?;
            children.insert(actor.get_id(), child_args);
        }
        Ok(ProviderSupervisorState {
            args,
            children,
            history: HashMap::new(),
        })
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ProviderSupervisorMsg>,
        event: SupervisionEvent,
        state: &mut ProviderSupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, reason)) = stopped_child(event) else {
            return Ok(());
        };
        let Some(child_args) = state.children.remove(&cell.get_id()) else {
            return Ok(());
        };
        let name = provider_actor_name(&child_args.settings);
        let allowed = state
            .history
            .entry(name)
            .or_default()
            .allow(state.args.policy, Instant::now());
        if !allowed {
            // The last published client keeps serving; the operator sees the
            // error and the frozen generation.
            tracing::error!(actor = name, %reason, "provider actor keeps failing; not restarting it again");
            return Ok(());
        }
        tracing::warn!(actor = name, %reason, "provider actor stopped; restarting it");
        state.args.metrics.record_restart(name);
        let actor = spawn_child(myself.get_cell(), child_args.clone()).await?;
        state.children.insert(actor.get_id(), child_args);
        Ok(())
    }
}
