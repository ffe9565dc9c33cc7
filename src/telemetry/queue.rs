//! Counting the spans a full export queue drops.
//!
//! Why this exists: the SDK's batch processor drops a span when its bounded
//! queue is full, but keeps the count private (it only logs it at shutdown).
//! keel puts its own admission in front: [`Admission`] counts the spans
//! handed to the batch processor and not yet taken by the exporter (which
//! [`Counting`] subtracts as each batch leaves), and refuses a span — counted
//! in [`dropped`], exposed as `keel_trace_spans_dropped_total` — once that
//! count reaches the queue's capacity. The count is never below the real
//! queue occupancy, so the SDK's own queue never overflows and every drop is
//! counted here. Cost per span: two atomic operations.

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Spans dropped because the export queue was full, since start.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Spans dropped because the export queue was full (a slow or dead
/// collector), since the process started.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Spans queued for export, shared by [`Admission`] and [`Counting`].
#[derive(Debug, Default)]
pub(crate) struct Pending(AtomicUsize);

impl Pending {
    fn release(&self, n: usize) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                Some(p.saturating_sub(n))
            });
    }
}

/// The span processor keel installs: a bounded admission in front of the
/// SDK's batch processor.
#[derive(Debug)]
pub(crate) struct Admission<P> {
    pub(crate) inner: P,
    pub(crate) capacity: usize,
    pub(crate) pending: Arc<Pending>,
}

impl<P: SpanProcessor> SpanProcessor for Admission<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.pending.0.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.pending.release(1);
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The exporter wrapper: each batch leaving the queue is subtracted from
/// [`Pending`] before it is sent.
#[derive(Debug)]
pub(crate) struct Counting<E> {
    pub(crate) inner: E,
    pub(crate) pending: Arc<Pending>,
}

impl<E: SpanExporter> SpanExporter for Counting<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.pending.release(batch.len());
        self.inner.export(batch)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
