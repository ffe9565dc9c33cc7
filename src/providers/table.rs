//! The handle table of providers: what request tasks read to find the
//! provider for a job, and what provider actors (`crate::actors::provider`)
//! publish into. It lives here, with the providers, because it is on the
//! request path: the orchestrator reads it and never talks to an actor.
//!
//! Invariant: the set and order of slots (primary first, then fallbacks) is
//! fixed at start-up; each slot's content is swapped atomically when its actor
//! (re)starts. A restart never leaves a slot empty: the previous client keeps
//! serving until the new actor publishes, so traffic does not notice.

use super::{ProviderKind, SharedProvider, UpstreamHealth};
use arc_swap::ArcSwap;
use ractor::ActorCell;
use std::sync::Arc;
use std::time::SystemTime;

/// What one provider actor publishes.
#[derive(Clone)]
pub struct ProviderSlot {
    /// The client request tasks call.
    pub provider: SharedProvider,
    /// The actor that owns it (dead refs are replaced on restart); `None`
    /// until the provider actor first starts. Untyped so this table, which
    /// request tasks read, does not depend on the actor tree.
    pub actor: Option<ActorCell>,
    /// Bumped on every (re)start of the owning actor.
    pub generation: u64,
    /// When the owning actor last started.
    pub started_at: SystemTime,
    /// The upstream's reachability, written by the owning actor's probes;
    /// the same one across restarts, so the last verdict is kept.
    pub health: Arc<UpstreamHealth>,
}

/// Ordered provider slots: `slots[0]` is the primary.
pub struct ProviderTable {
    slots: Vec<(ProviderKind, ArcSwap<ProviderSlot>)>,
}

impl ProviderTable {
    /// Builds the table with initial clients (generation 0, no actor yet).
    pub fn new(initial: Vec<SharedProvider>) -> ProviderTable {
        ProviderTable {
            slots: initial
                .into_iter()
                .map(|provider| {
                    (
                        provider.kind(),
                        ArcSwap::from_pointee(ProviderSlot {
                            provider,
                            actor: None,
                            generation: 0,
                            started_at: SystemTime::now(),
                            health: Arc::default(),
                        }),
                    )
                })
                .collect(),
        }
    }

    /// The kinds in chain order.
    pub fn kinds(&self) -> impl Iterator<Item = ProviderKind> + '_ {
        self.slots.iter().map(|(k, _)| *k)
    }

    /// The current slot for `kind`, if configured.
    pub fn get(&self, kind: ProviderKind) -> Option<Arc<ProviderSlot>> {
        self.slots
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, slot)| slot.load_full())
    }

    /// Every slot in chain order (primary first).
    pub fn chain(&self) -> Vec<Arc<ProviderSlot>> {
        self.slots.iter().map(|(_, s)| s.load_full()).collect()
    }

    /// Replaces the slot for `kind`; called only by that kind's provider actor.
    pub(crate) fn publish(&self, kind: ProviderKind, slot: ProviderSlot) {
        if let Some((_, s)) = self.slots.iter().find(|(k, _)| *k == kind) {
            s.store(Arc::new(slot));
        }
    }
}
