//! Prometheus exposition of keel's metrics (`GET /internal/metrics`).
//!
//! The request path already counts everything in lock-free atomics
//! ([`crate::metrics::Metrics`], breaker counters); this module reads them at
//! scrape time through a `prometheus-client` collector, so exposing metrics
//! adds no cost per request. Counter names get `_total` appended by the
//! OpenMetrics encoder.
//!
//! One of four metrics modules; `crate::metrics` says which is which.

use crate::engine::Engine;
use crate::job::Operation;
use crate::jobs::JobStatus;
use crate::jobs::store::Depth;
use crate::metrics::LatencyHistogram;
use crate::providers::ProviderKind;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering::Relaxed;

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// Everything a scrape reads.
#[derive(Clone)]
struct EngineCollector {
    engine: Engine,
    process: Option<(u64, u64)>,
    /// The job store's depth, read once per scrape (`None` when it did not answer).
    job_depth: Option<Depth>,
    /// Identity figures (JWKS refreshes, key counts), when the caller has them.
    identity: Option<std::sync::Arc<crate::identity::Authenticator>>,
}

impl std::fmt::Debug for EngineCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineCollector")
    }
}

fn counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        if labels.is_empty() {
            // An unlabelled series is written without `{}`; there is only one.
            return ConstCounter::new(value).encode(metric);
        }
        ConstCounter::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauges(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, i64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        if labels.is_empty() {
            return ConstGauge::new(value).encode(metric);
        }
        ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One histogram family, written by [`write_histograms`].
struct HistogramFamily<'a> {
    name: &'static str,
    help: &'static str,
    series: Vec<(Labels, &'a LatencyHistogram)>,
}

/// Every latency histogram keel exposes; `routes` is
/// [`crate::metrics::Metrics::routes`], read once per scrape.
fn histogram_families<'a>(
    engine: &'a Engine,
    routes: &'a [(String, std::sync::Arc<crate::metrics::RouteStats>)],
) -> Vec<HistogramFamily<'a>> {
    let m = engine.metrics();
    let jm = &engine.jobs().metrics;
    vec![
        HistogramFamily {
            name: "keel_http_request_duration_seconds",
            help: "Time to answer an HTTP request, by route",
            series: routes
                .iter()
                .map(|(route, s)| (vec![("route", route.clone())], &s.latency))
                .collect(),
        },
        HistogramFamily {
            name: "keel_overhead_seconds",
            help: "keel's own time per job: handler time minus time spent waiting for providers",
            series: vec![(Vec::new(), &m.overhead)],
        },
        HistogramFamily {
            name: "keel_provider_call_duration_seconds",
            help: "Provider call latency, by provider",
            series: PROVIDERS
                .into_iter()
                .map(|k| (vec![("provider", k.to_string())], &m.provider(k).latency))
                .collect(),
        },
        HistogramFamily {
            name: "keel_async_job_queue_wait_seconds",
            help: "Submission to first start, for jobs started here",
            series: vec![(Vec::new(), &jm.queue_wait)],
        },
        HistogramFamily {
            name: "keel_async_job_run_seconds",
            help: "One run of a job here, start to outcome",
            series: vec![(Vec::new(), &jm.run_time)],
        },
    ]
}

/// Writes histogram families in the OpenMetrics text format, with each
/// bucket's exemplar (`# {trace_id="…",span_id="…"} value timestamp`) when
/// tracing recorded one.
///
/// Why by hand: `prometheus-client` 0.25 only builds an exemplar inside its
/// own lock-guarded `HistogramWithExemplars`, whose every observation takes a
/// write lock; keel's histograms are lock-free atomics read at scrape time.
/// The format is small and tested (`exposition::tests`).
fn write_histograms(out: &mut String, families: &[HistogramFamily<'_>]) {
    use std::fmt::Write as _;
    for family in families {
        let name = family.name;
        let _ = writeln!(out, "# HELP {name} {}", family.help);
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (labels, h) in &family.series {
            let labels = label_text(labels);
            let sep = if labels.is_empty() { "" } else { "," };
            let (buckets, sum, count) = h.cumulative();
            let braces = if labels.is_empty() {
                String::new()
            } else {
                format!("{{{labels}}}")
            };
            let _ = writeln!(out, "{name}_sum{braces} {}", float(sum));
            let _ = writeln!(out, "{name}_count{braces} {count}");
            for ((upper, cumulative), exemplar) in buckets.iter().zip(h.exemplars()) {
                let le = if upper.is_infinite() {
                    "+Inf".to_string()
                } else {
                    float(*upper)
                };
                let _ = write!(
                    out,
                    "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
                );
                if let Some(e) = exemplar {
                    let at =
                        e.at.duration_since(std::time::UNIX_EPOCH)
                            .unwrap_or_default()
                            .as_secs_f64();
                    let _ = write!(
                        out,
                        " # {{trace_id=\"{:032x}\",span_id=\"{:016x}\"}} {} {at:.3}",
                        e.trace.trace_id,
                        e.trace.span_id,
                        float(e.value.as_secs_f64()),
                    );
                }
                out.push('\n');
            }
        }
    }
}

/// `k="v",…` with OpenMetrics escaping of the values.
fn label_text(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A float as OpenMetrics wants it: always with a decimal point.
fn float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        v.to_string()
    }
}

const PROVIDERS: [ProviderKind; 3] = [
    ProviderKind::Local,
    ProviderKind::OpenAi,
    ProviderKind::Gemini,
];

impl prometheus_client::collector::Collector for EngineCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = self.engine.metrics();
        let routes = m.routes();
        counters(
            &mut e,
            "keel_http_requests",
            "HTTP requests answered, by route and status",
            routes.iter().flat_map(|(route, s)| {
                let mut v: Vec<(Labels, u64)> = s
                    .statuses
                    .iter()
                    .map(|st| {
                        (
                            vec![("route", route.clone()), ("status", st.key().to_string())],
                            st.value().load(Relaxed),
                        )
                    })
                    .collect();
                v.sort_by(|a, b| a.0.cmp(&b.0));
                v
            }),
        )?;
        counters(
            &mut e,
            "keel_chaos_injected",
            "Faults injected by chaos experiments, by provider and fault",
            self.engine.chaos().injected().into_iter().map(|(p, f, v)| {
                (
                    vec![("provider", p.to_string()), ("fault", f.to_string())],
                    v,
                )
            }),
        )?;
        counters(
            &mut e,
            "keel_jobs",
            "Jobs by operation and outcome (succeeded, failed, degraded)",
            Operation::ALL.into_iter().flat_map(|op| {
                let o = m.operation(op);
                [
                    ("succeeded", o.succeeded.load(Relaxed)),
                    ("failed", o.failed.load(Relaxed)),
                    ("degraded", o.degraded.load(Relaxed)),
                ]
                .into_iter()
                .map(move |(outcome, v)| {
                    (
                        vec![
                            ("operation", op.to_string()),
                            ("outcome", outcome.to_string()),
                        ],
                        v,
                    )
                })
            }),
        )?;
        counters(
            &mut e,
            "keel_provider_calls",
            "Provider calls by provider and outcome",
            PROVIDERS.into_iter().flat_map(|k| {
                let p = m.provider(k);
                [
                    ("success", p.successes.load(Relaxed)),
                    ("transient_error", p.transient_failures.load(Relaxed)),
                    ("permanent_error", p.permanent_failures.load(Relaxed)),
                ]
                .into_iter()
                .map(move |(outcome, v)| {
                    (
                        vec![
                            ("provider", k.to_string()),
                            ("outcome", outcome.to_string()),
                        ],
                        v,
                    )
                })
            }),
        )?;
        counters(
            &mut e,
            "keel_provider_tokens",
            "Tokens reported by upstreams, by provider and kind",
            PROVIDERS.into_iter().flat_map(|k| {
                let p = m.provider(k);
                [
                    ("prompt", p.prompt_tokens.load(Relaxed)),
                    ("completion", p.completion_tokens.load(Relaxed)),
                ]
                .into_iter()
                .map(move |(kind, v)| {
                    (
                        vec![("provider", k.to_string()), ("kind", kind.to_string())],
                        v,
                    )
                })
            }),
        )?;
        let breakers = self.engine.resilience().breakers();
        gauges(
            &mut e,
            "keel_circuit_breaker_state",
            "Breaker state: 0 closed, 1 half-open, 2 open or forced open, 3 disabled, 4 metrics-only",
            breakers.iter().map(|b| {
                (
                    vec![("breaker", b.name().to_string())],
                    i64::from(b.state().gauge()),
                )
            }),
        )?;
        let snapshots: Vec<_> = breakers
            .iter()
            .map(|b| (b.name().to_string(), b.snapshot()))
            .collect();
        counters(
            &mut e,
            "keel_circuit_breaker_opens",
            "Transitions to open, by breaker",
            snapshots
                .iter()
                .map(|(n, s)| (vec![("breaker", n.clone())], s.counters.opens)),
        )?;
        counters(
            &mut e,
            "keel_circuit_breaker_rejections",
            "Calls refused by an open breaker, by breaker",
            snapshots
                .iter()
                .map(|(n, s)| (vec![("breaker", n.clone())], s.counters.rejections)),
        )?;
        counters(
            &mut e,
            "keel_breaker_transitions",
            "Breaker transitions, by breaker, new state and origin (local, operator, remote)",
            breakers.iter().flat_map(|b| {
                let name = b.name().to_string();
                let mut v: Vec<(Labels, u64)> = b
                    .transition_counts()
                    .into_iter()
                    .map(|((to, origin), n)| {
                        (
                            vec![
                                ("breaker", name.clone()),
                                ("to", to.to_string()),
                                ("origin", origin.to_string()),
                            ],
                            n,
                        )
                    })
                    .collect();
                v.sort_by(|a, b| a.0.cmp(&b.0));
                v
            }),
        )?;
        if let Some(cluster) = self.engine.cluster() {
            gauges(
                &mut e,
                "keel_cluster_sharing_live",
                "1 while this instance follows the shared breaker picture, 0 while it runs on its own (Redis unreachable)",
                [(Vec::new(), i64::from(cluster.is_live()))],
            )?;
            let c = cluster.event_counts();
            counters(
                &mut e,
                "keel_cluster_events",
                "Cluster sync events, by outcome (published, applied, dropped, failed)",
                [
                    ("published", c.published),
                    ("applied", c.applied),
                    ("dropped", c.dropped),
                    ("failed", c.failed),
                ]
                .into_iter()
                .map(|(outcome, v)| (vec![("outcome", outcome.to_string())], v)),
            )?;
            counters(
                &mut e,
                "keel_cluster_probe_leases_won",
                "Half-open probe leases this instance won",
                [(Vec::new(), c.probe_leases_won)],
            )?;
        }
        let r = &m.resilience;
        for (name, help, value) in [
            (
                "keel_retries",
                "Retries (attempts after the first)",
                &r.retries,
            ),
            ("keel_backoffs", "Backoff sleeps taken", &r.backoffs),
            (
                "keel_fallbacks",
                "Moves to a fallback provider",
                &r.fallbacks,
            ),
            (
                "keel_bulkhead_rejections",
                "Calls refused by a full bulkhead",
                &r.bulkhead_rejections,
            ),
            (
                "keel_retry_budget_refusals",
                "Retries refused by the retry budget",
                &r.budget_refusals,
            ),
            (
                "keel_deadline_exceeded",
                "Jobs that ran out of deadline",
                &r.deadline_exceeded,
            ),
            (
                "keel_hedges_started",
                "Hedged calls started (a call still unanswered after the hedge delay)",
                &r.hedges_started,
            ),
            (
                "keel_hedges_won",
                "Hedged calls that answered before the call they hedged",
                &r.hedges_won,
            ),
        ] {
            counters(&mut e, name, help, [(Vec::new(), value.load(Relaxed))])?;
        }
        counters(
            &mut e,
            "keel_trace_spans_dropped",
            "Spans not exported because the export queue was full (a slow or dead OTLP collector)",
            [(Vec::new(), crate::telemetry::queue::dropped())],
        )?;
        let (memory_hits, redis_hits, misses) = self.engine.cache().hit_counters();
        counters(
            &mut e,
            "keel_cache_requests",
            "Cache lookups by result (memory_hit, redis_hit, miss)",
            [
                ("memory_hit", memory_hits),
                ("redis_hit", redis_hits),
                ("miss", misses),
            ]
            .into_iter()
            .map(|(result, v)| (vec![("result", result.to_string())], v)),
        )?;
        let limits = self.engine.rate_limiter().stats();
        counters(
            &mut e,
            "keel_rate_limited",
            "Requests refused by the rate limiter",
            [(Vec::new(), limits.denied)],
        )?;
        counters(
            &mut e,
            "keel_rate_limit_redis_fallbacks",
            "Rate-limit checks answered by the Redis failure mode",
            [(Vec::new(), limits.redis_fallbacks)],
        )?;
        self.encode_async_jobs(&mut e)?;
        counters(
            &mut e,
            "keel_actor_restarts",
            "Supervised actor restarts, by actor",
            m.all_restarts()
                .into_iter()
                .map(|(actor, n)| (vec![("actor", actor)], n)),
        )?;
        if let Some(auth) = &self.identity {
            if let Some(jwt) = &auth.jwt {
                let status = jwt.status();
                counters(
                    &mut e,
                    "keel_jwks_refreshes",
                    "Successful JWKS loads",
                    [(Vec::new(), status.refreshes)],
                )?;
                counters(
                    &mut e,
                    "keel_jwks_refresh_failures",
                    "Failed JWKS refreshes (the last good key set stayed in force)",
                    [(Vec::new(), status.refresh_failures)],
                )?;
                gauges(
                    &mut e,
                    "keel_jwks_keys",
                    "Verification keys loaded from the JWKS",
                    [(
                        Vec::new(),
                        i64::try_from(status.kids.len()).unwrap_or(i64::MAX),
                    )],
                )?;
            }
            gauges(
                &mut e,
                "keel_client_keys",
                "Client keys known to this instance (revoked ones included)",
                [(
                    Vec::new(),
                    i64::try_from(auth.keys.list().len()).unwrap_or(i64::MAX),
                )],
            )?;
            counters(
                &mut e,
                "keel_identity_task_restarts",
                "Restarts of the identity refresh tasks after a panic",
                [(Vec::new(), auth.task_restarts.load(Relaxed))],
            )?;
        }
        if let Some((rss, cpu_ms)) = self.process {
            gauges(
                &mut e,
                "process_resident_memory_bytes",
                "Resident memory of the keel process",
                [(Vec::new(), i64::try_from(rss).unwrap_or(i64::MAX))],
            )?;
            let metric = e.encode_descriptor(
                "process_cpu_seconds",
                "CPU time used by the keel process",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu_ms as f64 / 1000.0).encode(metric)?;
        }
        Ok(())
    }
}

impl EngineCollector {
    /// The async jobs: depth (store-wide), and this instance's submissions,
    /// outcomes, redeliveries, webhooks, queue wait and run time.
    fn encode_async_jobs(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let jobs = self.engine.jobs();
        let jm = &jobs.metrics;
        gauges(
            e,
            "keel_async_jobs_store_up",
            "1 when the job store answered this scrape, 0 when it did not",
            [(Vec::new(), i64::from(self.job_depth.is_some()))],
        )?;
        if let Some(d) = &self.job_depth {
            let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            gauges(
                e,
                "keel_async_jobs_depth",
                "Jobs in the store by state: queued (incl. delayed), delayed (waiting for a not-before time), running, dead (dead letter)",
                [
                    ("queued", d.queued),
                    ("delayed", d.delayed),
                    ("running", d.running),
                    ("dead", d.dead),
                ]
                .map(|(state, n)| (vec![("state", state.to_string())], as_i64(n))),
            )?;
            let age = d
                .oldest_queued_ms
                .map_or(0, |ms| crate::time::unix_ms().saturating_sub(ms));
            let metric = e.encode_descriptor(
                "keel_async_jobs_oldest_queued_age_seconds",
                "Age of the oldest job waiting for delivery (0 when none waits)",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(age as f64 / 1000.0).encode(metric)?;
        }
        gauges(
            e,
            "keel_async_jobs_running_here",
            "Jobs running on this instance",
            [(Vec::new(), jobs.running_here() as i64)],
        )?;
        counters(
            e,
            "keel_async_jobs_submitted",
            "Jobs accepted by this instance",
            [(Vec::new(), jm.submitted.load(Relaxed))],
        )?;
        counters(
            e,
            "keel_async_jobs_rejected",
            "Submissions refused by this instance, by reason",
            [
                ("queue_full", jm.rejected_full.load(Relaxed)),
                ("store_unavailable", jm.rejected_store.load(Relaxed)),
            ]
            .map(|(reason, n)| (vec![("reason", reason.to_string())], n)),
        )?;
        counters(
            e,
            "keel_async_jobs_outcomes",
            "Final job states written by this instance, by status",
            JobStatus::ALL
                .iter()
                .zip(jm.outcomes.iter())
                .filter(|(s, _)| s.is_final())
                .map(|(s, n)| (vec![("status", s.as_str().to_string())], n.load(Relaxed))),
        )?;
        counters(
            e,
            "keel_async_jobs_redeliveries",
            "Deliveries of a job that had been delivered before (a consumer died or timed out)",
            [(Vec::new(), jm.redeliveries.load(Relaxed))],
        )?;
        counters(
            e,
            "keel_async_jobs_requeued",
            "Jobs put back to wait because every provider refused (breakers open, bulkheads full)",
            [(Vec::new(), jm.requeued.load(Relaxed))],
        )?;
        counters(
            e,
            "keel_async_jobs_handed_back",
            "Deliveries handed back at shutdown for another instance to take",
            [(Vec::new(), jm.handed_back.load(Relaxed))],
        )?;
        counters(
            e,
            "keel_async_job_webhooks",
            "Webhook POSTs: delivered jobs and failed attempts",
            [
                ("delivered", jm.webhook_delivered.load(Relaxed)),
                ("failed_attempt", jm.webhook_failures.load(Relaxed)),
            ]
            .map(|(outcome, n)| (vec![("outcome", outcome.to_string())], n)),
        )
    }
}

/// Resident memory (bytes) and accumulated CPU time (ms) of this process.
fn process_figures() -> Option<(u64, u64)> {
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, RefreshKind, System};
    let pid = sysinfo::get_current_pid().ok()?;
    let mut sys = System::new_with_specifics(RefreshKind::nothing()).ok()?;
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing().with_memory().with_cpu(),
    );
    let p = sys.process(pid)?;
    Some((p.memory(), p.accumulated_cpu_time()))
}

/// Renders every metric in the OpenMetrics text format.
pub async fn render(engine: &Engine) -> Result<String, std::fmt::Error> {
    render_with(engine, None).await
}

/// [`render`] plus the identity figures of `identity`.
pub async fn render_with(
    engine: &Engine,
    identity: Option<std::sync::Arc<crate::identity::Authenticator>>,
) -> Result<String, std::fmt::Error> {
    let process = tokio::task::spawn_blocking(process_figures)
        .await
        .ok()
        .flatten();
    let mut registry = Registry::default();
    registry.register_collector(Box::new(EngineCollector {
        engine: engine.clone(),
        process,
        job_depth: engine.jobs().store().depth().await.ok(),
        identity,
    }));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    // The histograms go before the closing `# EOF` the encoder wrote.
    let eof = out.rfind("# EOF").unwrap_or(out.len());
    let tail = out.split_off(eof);
    let routes = engine.metrics().routes();
    write_histograms(&mut out, &histogram_families(engine, &routes));
    out.push_str(if tail.is_empty() { "# EOF\n" } else { &tail });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::TraceRef;
    use std::time::Duration;

    fn lines_of(out: &str, prefix: &str) -> Vec<String> {
        out.lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn buckets_are_cumulative_once_and_end_at_the_count() {
        let h = LatencyHistogram::default();
        for ms in [1, 1, 1, 40, 900] {
            h.record(Duration::from_millis(ms));
        }
        let mut out = String::new();
        write_histograms(
            &mut out,
            &[HistogramFamily {
                name: "t_seconds",
                help: "test",
                series: vec![(vec![("route", "/v1/a".to_string())], &h)],
            }],
        );
        assert!(out.starts_with("# HELP t_seconds test\n# TYPE t_seconds histogram\n"));
        assert!(
            out.contains("t_seconds_count{route=\"/v1/a\"} 5\n"),
            "{out}"
        );
        assert!(
            out.contains("t_seconds_sum{route=\"/v1/a\"} 0.943\n"),
            "{out}"
        );
        let counts: Vec<u64> = lines_of(&out, "t_seconds_bucket")
            .iter()
            .map(|l| {
                l.rsplit(' ')
                    .next()
                    .unwrap_or("")
                    .parse()
                    .unwrap_or(u64::MAX)
            })
            .collect();
        assert_eq!(counts.len(), LatencyHistogram::upper_bounds().count());
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        assert_eq!(counts.last(), Some(&5), "{counts:?}");
        assert!(
            out.contains("t_seconds_bucket{route=\"/v1/a\",le=\"0.0013\"} 3\n"),
            "{out}"
        );
        assert!(out.contains("le=\"300.0\"} 5\n"), "{out}");
        assert!(out.contains("le=\"+Inf\"} 5\n"), "{out}");
        assert!(!out.contains(" # {"), "no exemplar without a trace: {out}");
    }

    #[test]
    fn a_traced_bucket_carries_its_exemplar() {
        let h = LatencyHistogram::default();
        let trace = TraceRef {
            trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            span_id: 0x00f0_67aa_0ba9_02b7,
        };
        h.record_traced(Duration::from_micros(1_200), Some(trace));
        let mut out = String::new();
        write_histograms(
            &mut out,
            &[HistogramFamily {
                name: "t_seconds",
                help: "test",
                series: vec![(Vec::new(), &h)],
            }],
        );
        let with_exemplar = lines_of(&out, "t_seconds_bucket")
            .into_iter()
            .filter(|l| l.contains(" # {"))
            .collect::<Vec<_>>();
        assert_eq!(with_exemplar.len(), 1, "{out}");
        let line = &with_exemplar[0];
        assert!(
            line.starts_with(
                "t_seconds_bucket{le=\"0.0013\"} 1 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\",span_id=\"00f067aa0ba902b7\"} 0.0012 "
            ),
            "{line}"
        );
        let at: f64 = line.rsplit(' ').next().unwrap_or("").parse().unwrap_or(0.0);
        assert!(at > 1.7e9, "a Unix timestamp in seconds: {line}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            label_text(&vec![("k", "a\"b\\c\nd".to_string())]),
            r#"k="a\"b\\c\nd""#
        );
        assert_eq!(float(2.0), "2.0");
        assert_eq!(float(0.00005), "0.00005");
    }
}
