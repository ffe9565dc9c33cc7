//! The job settings, re-exported where the job runtime has always found
//! them. They are defined in [`crate::config::jobs`] so that configuration
//! sits below the job runtime (the runtime reads its settings; the settings
//! know nothing of the runtime).

pub use crate::config::jobs::{JobsConfig, StoreKind};
