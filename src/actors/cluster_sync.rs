//! `ClusterSync`: owns the cluster sync of one engine (see [`crate::cluster`]).
//!
//! It runs the two long-lived tasks — the outbox (this instance's breaker
//! events to Redis) and the subscriber (other instances' events to this
//! instance's breakers) — and the tick (heartbeat, liveness, the picture's
//! rebuild, the probe lease round) as its own message, sent again
//! [`TICK`] after each one ends so a slow Redis never piles ticks up in the
//! mailbox. A task that ends fails the actor, and the supervisor restarts
//! it: the new actor starts both tasks again (the outbox takes over the
//! same channel, so no event already handed over is lost) and reads the
//! shared picture back from the state keys. While it is down every breaker
//! runs on its own, exactly as when Redis is unreachable. Request tasks
//! never message it: breakers hand events over through the channel.

use crate::cluster::{Cluster, TICK, TickMemo};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Messages the actor handles.
pub enum ClusterSyncMsg {
    /// One tick of the sync (sent by the actor to itself).
    Tick,
}

/// The actor.
pub struct ClusterSync;

/// Aborts the sync's tasks when the actor's state goes, however it ends.
struct Tasks(Vec<(&'static str, JoinHandle<()>)>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for (_, task) in &self.0 {
            task.abort();
        }
    }
}

/// Running state: the cluster, its tasks and the tick's memory.
pub struct ClusterSyncState {
    cluster: Arc<Cluster>,
    tasks: Tasks,
    memo: TickMemo,
}

impl Drop for ClusterSyncState {
    fn drop(&mut self) {
        self.cluster.sync_stopped();
    }
}

impl Actor for ClusterSync {
    type Msg = ClusterSyncMsg;
    type State = ClusterSyncState;
    type Arguments = Arc<Cluster>;

    async fn pre_start(
        &self,
        myself: ActorRef<ClusterSyncMsg>,
        cluster: Arc<Cluster>,
    ) -> Result<ClusterSyncState, ActorProcessingErr> {
        cluster.sync_stopped();
        let tasks = Tasks(vec![
            ("outbox", tokio::spawn(cluster.clone().run_outbox())),
            ("subscriber", tokio::spawn(cluster.clone().run_subscriber())),
        ]);
        myself.send_message(ClusterSyncMsg::Tick)?;
        Ok(ClusterSyncState {
            cluster,
            tasks,
            memo: TickMemo::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ClusterSyncMsg>,
        message: ClusterSyncMsg,
        state: &mut ClusterSyncState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ClusterSyncMsg::Tick => {
                if let Some((name, _)) = state.tasks.0.iter().find(|(_, t)| t.is_finished()) {
                    return Err(format!("cluster sync: the {name} task ended").into());
                }
                state.cluster.tick(&mut state.memo).await;
                myself.send_after(TICK, || ClusterSyncMsg::Tick);
            }
        }
        Ok(())
    }
}
