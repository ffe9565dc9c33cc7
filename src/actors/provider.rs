//! `Provider[kind]`: the actor that owns one provider's client and knows
//! whether its upstream answers.
//!
//! It builds the client from its [`ProviderSettings`] when it starts (and again
//! on every supervised restart) and publishes it in the [`ProviderTable`].
//! Jobs call the published client directly from their own tasks, so a slow
//! upstream never queues behind this mailbox.
//!
//! It also probes the upstream on a timer (`PROVIDER_PROBE_INTERVAL_MS`, a
//! model-metadata `GET` with the provider's credentials, see
//! [`crate::providers::Provider::probe`]) and publishes the verdict in the
//! slot's [`UpstreamHealth`]: that is what `/v1/health`'s
//! `ai_model_available` and the health model read. A probe runs in its own
//! task and reports back by message, so the mailbox never waits on the
//! upstream; at most one probe is in flight. The verdict lives in the slot,
//! not in the actor, so a restarted actor keeps it until its own first
//! probe (sent at start) replaces it.

use crate::providers::{ProviderKind, build_provider};
use crate::providers::{ProviderSettings, Reachability, SharedProvider, UpstreamHealth};
use crate::providers::{ProviderSlot, ProviderTable};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Messages a provider actor handles.
pub enum ProviderMsg {
    /// Describe this provider; replies at once.
    Describe(RpcReplyPort<ProviderInfo>),
    /// Crash on purpose (operators' and tests' way to exercise supervision).
    Crash,
    /// Probe the upstream now (sent by the actor's timer and once at start);
    /// ignored while a probe is in flight.
    Probe,
    /// A probe finished: `Err` carries keel's description of the failure.
    ProbeDone(Result<(), String>),
}

/// Longest a health probe may take, whatever the call timeout: a probe that
/// slow already says the upstream is not fit to serve.
const PROBE_TIMEOUT_CAP: Duration = Duration::from_secs(5);

/// Operator-facing description of one provider (never includes its key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
    /// The client it published (the one probes use).
    provider: SharedProvider,
    /// The published reading its probes write.
    health: Arc<UpstreamHealth>,
    /// A probe task is running.
    probing: bool,
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
        let generation = current.as_ref().map(|s| s.generation + 1).unwrap_or(1);
        // The reading outlives the actor: a restart keeps the last verdict.
        let health = current.map(|s| s.health.clone()).unwrap_or_default();
        args.table.publish(
            kind,
            ProviderSlot {
                provider: provider.clone(),
                actor: Some(myself.get_cell()),
                generation,
                started_at: SystemTime::now(),
                health: health.clone(),
            },
        );
        tracing::debug!(provider = %kind, generation, "provider actor started");
        if kind == ProviderKind::Local {
            // No upstream: always reachable.
            health.record(Ok(()));
        } else if let Some(every) = args.settings.probe_interval {
            myself.send_message(ProviderMsg::Probe)?;
            myself.send_interval(every, || ProviderMsg::Probe);
        }
        Ok(ProviderState {
            settings: args.settings,
            generation,
            provider,
            health,
            probing: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ProviderMsg>,
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
            ProviderMsg::Probe if state.probing => {}
            ProviderMsg::Probe => {
                state.probing = true;
                let provider = state.provider.clone();
                let timeout = state.settings.timeout.min(PROBE_TIMEOUT_CAP);
                tokio::spawn(async move {
                    let outcome = provider
                        .probe(timeout)
                        .await
                        .map_err(|e| e.kind.to_string());
                    // The actor may have stopped meanwhile; the reading then
                    // waits for its successor's probe.
                    let _ = myself.send_message(ProviderMsg::ProbeDone(outcome));
                });
            }
            ProviderMsg::ProbeDone(outcome) => {
                state.probing = false;
                let kind = state.settings.kind;
                let error = outcome.as_ref().err().cloned();
                let before = state.health.record(outcome);
                match (before, error) {
                    (Reachability::Unreachable, None) => {
                        tracing::info!(provider = %kind, "provider upstream reachable again");
                    }
                    (Reachability::Unreachable, Some(_)) => {}
                    (_, Some(error)) => {
                        tracing::warn!(provider = %kind, %error, "provider upstream failed its health probe");
                    }
                    (_, None) => {}
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn openai_settings() -> ProviderSettings {
        ProviderSettings {
            kind: ProviderKind::OpenAi,
            model: "gpt-test".into(),
            base_url: "http://127.0.0.1:9/v1".into(),
            api_key: None,
            timeout: Duration::from_secs(1),
            probe_interval: None,
        }
    }

    /// The first start publishes the client the engine already built (one TLS
    /// set-up at start-up); a restart publishes a freshly built one.
    #[tokio::test]
    async fn first_start_adopts_the_initial_client_and_a_restart_rebuilds() {
        let settings = openai_settings();
        let initial = build_provider(&settings).expect("client builds");
        let table = Arc::new(ProviderTable::new(vec![initial.clone()]));
        let args = ProviderArgs {
            settings,
            table: table.clone(),
        };

        let (actor, handle) = Actor::spawn(None, ProviderActor, args.clone())
            .await
            .expect("actor starts");
        let first = table.get(ProviderKind::OpenAi).expect("slot");
        assert!(Arc::ptr_eq(&first.provider, &initial), "client was rebuilt");
        assert_eq!(first.generation, 1);
        assert!(first.actor.is_some());

        actor.stop(None);
        handle.await.expect("actor stops");
        let (again, handle) = Actor::spawn(None, ProviderActor, args)
            .await
            .expect("actor restarts");
        let second = table.get(ProviderKind::OpenAi).expect("slot");
        assert!(
            !Arc::ptr_eq(&second.provider, &initial),
            "client was reused"
        );
        assert_eq!(second.generation, 2);
        again.stop(None);
        handle.await.expect("actor stops");
    }
}
