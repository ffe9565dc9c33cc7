//! `Provider[kind]`: the actor that owns one provider's client.
//!
//! It builds the client from its [`ProviderSettings`] when it starts (and again
//! on every supervised restart) and publishes it in the [`ProviderTable`].
//! Jobs call the published client directly from their own tasks, so a slow
//! upstream never queues behind this mailbox.

use super::provider_table::{ProviderSlot, ProviderTable};
use crate::config::ProviderSettings;
use crate::providers::{ProviderKind, build_provider};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use std::sync::Arc;
use std::time::SystemTime;

/// Messages a provider actor handles.
pub enum ProviderMsg {
    /// Describe this provider; replies at once.
    Describe(RpcReplyPort<ProviderInfo>),
    /// Crash on purpose (operators' and tests' way to exercise supervision).
    Crash,
}

/// Operator-facing description of one provider (never includes its key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderInfo {
    /// The provider kind.
    pub kind: ProviderKind,
    /// The configured model.
    pub model: String,
    /// The upstream base URL (empty for `local`).
    pub base_url: String,
    /// Whether an API key is configured.
    pub has_api_key: bool,
    /// How many times this actor has started (1 = never restarted).
    pub generation: u64,
}

/// Arguments a provider actor (re)starts with.
#[derive(Clone)]
pub struct ProviderArgs {
    /// What to connect to.
    pub settings: ProviderSettings,
    /// Where to publish the client.
    pub table: Arc<ProviderTable>,
}

/// The actor itself (stateless; its state is [`ProviderState`]).
pub struct ProviderActor;

/// What a running provider actor holds.
pub struct ProviderState {
    settings: ProviderSettings,
    generation: u64,
}

impl Actor for ProviderActor {
    type Msg = ProviderMsg;
    type State = ProviderState;
    type Arguments = ProviderArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ProviderMsg>,
        args: ProviderArgs,
    ) -> Result<ProviderState, ActorProcessingErr> {
        let kind = args.settings.kind;
        let current = args.table.get(kind);
        // The first start adopts the client the engine built for the initial
        // table (no actor owns it yet): building a TLS client loads the
        // system's root certificates, which is most of keel's start-up time.
        // Every restart builds a fresh client.
        let provider = match &current {
            Some(slot) if slot.actor.is_none() => slot.provider.clone(),
            _ => build_provider(&args.settings)?,
        };
        let generation = current.map(|s| s.generation + 1).unwrap_or(1);
        args.table.publish(
            kind,
            ProviderSlot {
                provider,
                actor: Some(myself),
                generation,
                started_at: SystemTime::now(),
            },
        );
        tracing::debug!(provider = %kind, generation, "provider actor started");
        Ok(ProviderState {
            settings: args.settings,
            generation,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ProviderMsg>,
        message: ProviderMsg,
        state: &mut ProviderState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ProviderMsg::Describe(reply) => {
                let s = &state.settings;
                // The caller may have timed out and gone; nothing to do then.
                let _ = reply.send(ProviderInfo {
                    kind: s.kind,
                    model: s.model.clone(),
                    base_url: s.base_url.clone(),
                    has_api_key: s.api_key.is_some(),
                    generation: state.generation,
                });
            }
            ProviderMsg::Crash => {
                return Err(format!("provider {} crashed on request", state.settings.kind).into());
            }
        }
        Ok(())
    }
}
