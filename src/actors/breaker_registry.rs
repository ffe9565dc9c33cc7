//! `BreakerRegistry`: the actor that owns every change to the circuit
//! breakers that is not a call outcome — operator commands (reset,
//! force-open, force-closed, disable, metrics-only) and configuration
//! switches (a new preset or custom config applied at runtime).
//!
//! Request tasks read breakers through the shared [`Resilience`] view and
//! record call outcomes on their permits; they never wait on this mailbox.

use crate::resilience::Resilience;
use crate::resilience::breaker::{BreakerCommand, BreakerSnapshot};
use crate::resilience::config::ResilienceConfig;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::Arc;

/// Messages the registry handles; each replies when applied.
pub enum BreakerRegistryMsg {
    /// Apply `command` to the breaker called `name` (`provider:operation`);
    /// replies with its new snapshot, or `None` for an unknown name.
    Command {
        /// Breaker name.
        name: String,
        /// What to do.
        command: BreakerCommand,
        /// Who asked (for the transition log).
        who: String,
        /// Share it with the other instances (false: this instance only).
        cluster: bool,
        /// The reply.
        reply: RpcReplyPort<Option<BreakerSnapshot>>,
    },
    /// Install a new configuration for every new call and every breaker.
    Reconfigure(Box<ResilienceConfig>, RpcReplyPort<()>),
}

/// The registry actor.
pub struct BreakerRegistry;

impl Actor for BreakerRegistry {
    type Msg = BreakerRegistryMsg;
    type State = Arc<Resilience>;
    type Arguments = Arc<Resilience>;

    async fn pre_start(
        &self,
        _myself: ActorRef<BreakerRegistryMsg>,
        resilience: Arc<Resilience>,
    ) -> Result<Arc<Resilience>, ActorProcessingErr> {
        Ok(resilience)
    }

    async fn handle(
        &self,
        _myself: ActorRef<BreakerRegistryMsg>,
        message: BreakerRegistryMsg,
        resilience: &mut Arc<Resilience>,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            BreakerRegistryMsg::Command {
                name,
                command,
                who,
                cluster,
                reply,
            } => {
                let snapshot = resilience.find_breaker(&name).map(|b| {
                    b.command(command, &who, cluster);
                    b.snapshot()
                });
                let _ = reply.send(snapshot);
            }
            BreakerRegistryMsg::Reconfigure(config, reply) => {
                resilience.reconfigure(*config);
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}
