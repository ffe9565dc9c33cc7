//! `JobConsumer`: the supervised actor that takes job deliveries for this
//! instance, and the worker that runs one delivery.
//!
//! The actor owns the consume loop's lifecycle (started in `pre_start`, a
//! loop that ends unexpectedly fails the actor so `EngineSupervisor`
//! restarts it). The loop claims at most `JOB_WORKERS - running` deliveries
//! at a time and spawns one task per job: a job's orchestration never runs
//! inside the actor. When the store fails the loop backs off and retries by
//! itself; it pauses while the (cluster-wide) pause flag is set and stops
//! claiming once shutdown begins. After a failed claim (and at start) it
//! first re-reads its own pending deliveries: a read Redis applied but
//! whose answer was lost would otherwise strand those jobs until the
//! visibility timeout.
//!
//! A worker: reads the record, refuses what needs no run (final, expired,
//! poisoned), marks it `running` with a check-and-set, runs it through the
//! attached [`Runner`] — the `/process` pipeline — while
//! watching for a cancel or a lost delivery, then writes the outcome with a
//! check-and-set that also acknowledges the delivery.

use super::runner::{RunFailure, Runner};
use super::store::{Delivery, Effects, Enqueue, Versioned};
use super::{JobFailure, JobRecord, JobStatus, Jobs, WebhookState};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::time::Duration;
use tokio::sync::watch;

/// How often a running job checks that it still owns its delivery.
const OWNERSHIP_CHECK: Duration = Duration::from_millis(250);
/// How long an idle consumer waits before looking again (also the
/// granularity of not-before times in the memory store).
const IDLE_POLL: Duration = Duration::from_millis(200);
/// How often the pause flag is read.
const PAUSE_CHECK: Duration = Duration::from_millis(500);

/// Messages of the consumer actor.
pub enum JobConsumerMsg {
    /// The consume loop ended on its own (sent by the loop's watcher); the
    /// actor fails so its supervisor restarts it.
    LoopEnded(String),
}

/// The actor.
pub struct JobConsumer;

/// Its state: the running loop.
pub struct JobConsumerState {
    task: tokio::task::AbortHandle,
}

impl Actor for JobConsumer {
    type Msg = JobConsumerMsg;
    type State = JobConsumerState;
    type Arguments = Arc<Jobs>;

    async fn pre_start(
        &self,
        myself: ActorRef<JobConsumerMsg>,
        jobs: Arc<Jobs>,
    ) -> Result<JobConsumerState, ActorProcessingErr> {
        if let super::store::Store::Redis(r) = jobs.store() {
            r.start_subscriber();
        }
        let task = tokio::spawn(consume(jobs.clone()));
        let abort = task.abort_handle();
        // Report the loop's end to the actor, which then fails and is
        // restarted; an abort from `post_stop` is not reported.
        tokio::spawn(async move {
            let reason = match task.await {
                Ok(()) => "consume loop returned".to_string(),
                Err(e) if e.is_cancelled() => return,
                Err(e) => format!("consume loop panicked: {e}"),
            };
            if !jobs.stopping.load(Relaxed) {
                let _ = myself.send_message(JobConsumerMsg::LoopEnded(reason));
            }
        });
        Ok(JobConsumerState { task: abort })
    }

    async fn handle(
        &self,
        _myself: ActorRef<JobConsumerMsg>,
        message: JobConsumerMsg,
        _state: &mut JobConsumerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            JobConsumerMsg::LoopEnded(reason) => Err(reason.into()),
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<JobConsumerMsg>,
        state: &mut JobConsumerState,
    ) -> Result<(), ActorProcessingErr> {
        state.task.abort();
        Ok(())
    }
}

/// The consume loop of this instance.
async fn consume(jobs: Arc<Jobs>) {
    let runner = loop {
        if let Some(r) = jobs.runner.get() {
            break r.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let consumer = jobs.config.instance_id.clone();
    let workers = jobs.config.workers;
    let mut paused = false;
    let mut paused_checked: Option<tokio::time::Instant> = None;
    let mut backoff = Duration::from_millis(100);
    let mut store_down = false;
    loop {
        if jobs.stopping.load(Relaxed) {
            return std::future::pending().await;
        }
        if jobs.pause_changed.swap(false, AcqRel) {
            paused_checked = None;
        }
        if paused_checked.is_none_or(|t| t.elapsed() >= PAUSE_CHECK) {
            if let Ok(p) = jobs.store.is_paused().await {
                paused = p;
            }
            paused_checked = Some(tokio::time::Instant::now());
        }
        if paused {
            let _ = tokio::time::timeout(PAUSE_CHECK, jobs.wake.notified()).await;
            paused_checked = None;
            continue;
        }
        let mut free = workers.saturating_sub(jobs.running.len());
        if free == 0 {
            let _ = tokio::time::timeout(IDLE_POLL, jobs.wake.notified()).await;
            continue;
        }
        if jobs.own_pending_unsure.swap(false, AcqRel) {
            free -= rerun_own_pending(&jobs, &runner, &consumer, free).await;
            if free == 0 {
                continue;
            }
        }
        match jobs.store.claim(&consumer, free).await {
            Ok(deliveries) => {
                if store_down {
                    tracing::info!("job store reachable again; consuming");
                    store_down = false;
                }
                backoff = Duration::from_millis(100);
                if deliveries.is_empty() {
                    let _ = tokio::time::timeout(IDLE_POLL, jobs.wake.notified()).await;
                    continue;
                }
                for d in deliveries {
                    spawn_worker(&jobs, &runner, d);
                }
            }
            Err(e) => {
                // The failed read may have been applied: its deliveries sit
                // in this consumer's pending list, unheard of.
                jobs.own_pending_unsure.store(true, Relaxed);
                if !store_down {
                    tracing::warn!(error = %e, "job store unavailable; consumption paused until it answers");
                    store_down = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Runs the deliveries pending for this consumer that no worker here runs
/// (at most `free`); returns how many it started. Such deliveries are the
/// answers this consumer lost — a read applied by Redis whose reply timed
/// out or died with the connection — and would otherwise wait for the
/// visibility timeout. When the store fails or more are pending than
/// `free`, the check is left due for the next round.
async fn rerun_own_pending(
    jobs: &Arc<Jobs>,
    runner: &Arc<dyn Runner>,
    consumer: &str,
    free: usize,
) -> usize {
    let busy: std::collections::HashSet<String> =
        jobs.running.iter().map(|r| r.value().0.clone()).collect();
    let pending = match jobs
        .store
        .own_pending(consumer, busy.len() + free + 16)
        .await
    {
        Ok(p) => p,
        Err(_) => {
            jobs.own_pending_unsure.store(true, Relaxed);
            return 0;
        }
    };
    let mut orphans: Vec<Delivery> = pending
        .into_iter()
        .filter(|d| !busy.contains(&d.job_id))
        .collect();
    if orphans.len() > free {
        orphans.truncate(free);
        jobs.own_pending_unsure.store(true, Relaxed);
    }
    let started = orphans.len();
    if started > 0 {
        tracing::info!(
            deliveries = started,
            "re-running deliveries whose claim answer was lost"
        );
    }
    for d in orphans {
        spawn_worker(jobs, runner, d);
    }
    started
}

fn spawn_worker(jobs: &Arc<Jobs>, runner: &Arc<dyn Runner>, d: Delivery) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = jobs.next_worker.fetch_add(1, Relaxed);
    jobs.running.insert(worker, (d.job_id.clone(), stop_tx));
    let jobs = jobs.clone();
    let runner = runner.clone();
    tokio::spawn(async move {
        work(&jobs, &*runner, d, stop_rx).await;
        jobs.running.remove(&worker);
        jobs.wake.notify_one();
    });
}

/// Waits until the delivery is no longer ours to finish: a stop signal
/// (cancel here, shutdown) or the record changed under us (cancelled
/// elsewhere, reclaimed by another consumer).
async fn lost(jobs: &Jobs, id: &str, ver: u64, stop: &mut watch::Receiver<bool>) {
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
            _ = tokio::time::sleep(OWNERSHIP_CHECK) => {
                match jobs.store.get(id).await {
                    Ok(Some(v)) if v.ver != ver => return,
                    Ok(None) => return,
                    _ => {}
                }
            }
        }
    }
}

fn now_ms() -> u64 {
    crate::time::unix_ms()
}

/// The first wait after a transient failure, doubled per delivery (≤ 60 s).
fn requeue_delay(deliveries: u32) -> Duration {
    let exp = deliveries.saturating_sub(1).min(6);
    Duration::from_secs(1u64 << exp).min(Duration::from_secs(60))
}

async fn work(jobs: &Arc<Jobs>, runner: &dyn Runner, d: Delivery, mut stop: watch::Receiver<bool>) {
    let store = &jobs.store;
    let id = d.job_id.clone();
    let Some(found) = read(jobs, &id).await else {
        // The store stayed down: the delivery stays pending and is reclaimed.
        return;
    };
    let Some(Versioned { record, ver }) = found else {
        let _ = store.ack(&d.entry).await;
        return;
    };
    if record.status.is_final() {
        let _ = store.ack(&d.entry).await;
        return;
    }
    let now = now_ms();
    if now >= record.expires_at_ms {
        let mut next = record.clone();
        expire(
            &mut next,
            "the job's ttl_seconds ran out before it could run",
        );
        finish(jobs, &d, &id, ver, next, Effects::default()).await;
        return;
    }
    if record.not_before_ms > now + 50 {
        // Delivered before its time (an operator retry raced a requeue):
        // wait in the delayed set instead.
        let effects = Effects {
            ack: Some(d.entry.clone()),
            enqueue: Enqueue::At(record.not_before_ms),
            ..Effects::default()
        };
        let _ = store.update(&id, ver, &record, effects).await;
        return;
    }
    if record.unfinished >= jobs.config.max_deliveries {
        let mut next = record.clone();
        next.status = JobStatus::Failed;
        next.error = Some(JobFailure {
            error: format!(
                "the job was delivered {} times without finishing; dead-lettered",
                record.unfinished
            ),
            error_code: "JOB_POISONED".into(),
            retryable: false,
        });
        let effects = Effects {
            dead: Some(true),
            ..Effects::default()
        };
        finish(jobs, &d, &id, ver, next, effects).await;
        return;
    }
    if record.deliveries > 0 {
        jobs.metrics.redeliveries.fetch_add(1, Relaxed);
    }
    if record.deliveries == 0 {
        jobs.metrics.queue_wait.record(Duration::from_millis(
            now.saturating_sub(record.created_at_ms),
        ));
    }
    let mut running = record.clone();
    running.status = JobStatus::Running;
    running.deliveries += 1;
    running.unfinished += 1;
    running.started_at_ms = Some(now);
    running.not_before_ms = 0;
    running.consumer = Some(jobs.config.instance_id.clone());
    let keep = Effects {
        keep_until_ms: Some(running.expires_at_ms),
        ..Effects::default()
    };
    // Claiming the job survives a store blip: a claim whose answer was lost
    // is read back (see `write`) instead of leaving the job `running` with
    // nobody running it until the visibility timeout.
    if !write(jobs, &id, ver, &running, keep).await {
        if let Ok(Some(v)) = store.get(&id).await
            && v.record.status.is_final()
        {
            let _ = store.ack(&d.entry).await;
        }
        return;
    }
    let ver = ver + 1;
    let Some(run) = runner.start(running.request.clone()) else {
        return;
    };
    let started = tokio::time::Instant::now();
    let span =
        crate::telemetry::async_job_span(&id, &running.operation, running.traceparent.as_deref());
    let trace = crate::telemetry::trace_ref(&span);
    let settle_span = span.clone();
    let run = tracing::Instrument::instrument(run, span);
    let outcome = tokio::select! {
        outcome = run => Some(outcome),
        _ = lost(jobs, &id, ver, &mut stop) => None,
    };
    jobs.metrics
        .run_time
        .record_traced(started.elapsed(), trace);
    let Some(outcome) = outcome else {
        abandoned(jobs, &d, &id, ver, running).await;
        return;
    };
    let mut next = running;
    next.unfinished = 0;
    // Settled inside the job's span: a webhook delivery is its child.
    let settle = async move {
        match outcome {
            Ok(body) => {
                next.status = JobStatus::Succeeded;
                next.result = body;
                next.error = None;
                finish(jobs, &d, &id, ver, next, Effects::default()).await;
            }
            Err(RunFailure::Unavailable {
                reason,
                retry_after,
            }) => {
                // Every provider refused or failed for now: wait for the
                // earliest recovery, as long as the job's time to live allows.
                let delay = retry_after
                    .unwrap_or_else(|| requeue_delay(next.deliveries))
                    .max(Duration::from_millis(50));
                let at = now_ms().saturating_add(u64::try_from(delay.as_millis()).unwrap_or(0));
                if at >= next.expires_at_ms {
                    expire(
                        &mut next,
                        &format!(
                            "no provider could answer before the job's ttl_seconds ran out: {reason}"
                        ),
                    );
                    finish(jobs, &d, &id, ver, next, Effects::default()).await;
                } else {
                    next.status = JobStatus::Queued;
                    next.not_before_ms = at;
                    let effects = Effects {
                        ack: Some(d.entry.clone()),
                        enqueue: Enqueue::At(at),
                        keep_until_ms: Some(next.expires_at_ms),
                        ..Effects::default()
                    };
                    if write(jobs, &id, ver, &next, effects).await {
                        jobs.metrics.requeued.fetch_add(1, Relaxed);
                        tracing::info!(job_id = %id, delay_ms = delay.as_millis() as u64, "providers unavailable; job requeued");
                    }
                }
            }
            Err(RunFailure::Failed { message, code }) => {
                next.status = JobStatus::Failed;
                next.error = Some(JobFailure {
                    error: message,
                    error_code: code,
                    retryable: false,
                });
                finish(jobs, &d, &id, ver, next, Effects::default()).await;
            }
        }
    };
    tracing::Instrument::instrument(settle, settle_span).await;
}

fn expire(next: &mut JobRecord, why: &str) {
    next.status = JobStatus::Expired;
    next.error = Some(JobFailure {
        error: why.to_string(),
        error_code: "JOB_EXPIRED".into(),
        retryable: true,
    });
}

/// The run stopped before an outcome: hand the job back at shutdown, or
/// acknowledge a delivery whose job someone else finished.
async fn abandoned(jobs: &Arc<Jobs>, d: &Delivery, id: &str, ver: u64, running: JobRecord) {
    if jobs.stopping.load(Relaxed) {
        let mut back = running;
        back.status = JobStatus::Queued;
        back.unfinished = back.unfinished.saturating_sub(1);
        let effects = Effects {
            ack: Some(d.entry.clone()),
            enqueue: Enqueue::Now,
            keep_until_ms: Some(back.expires_at_ms),
            ..Effects::default()
        };
        if matches!(jobs.store.update(id, ver, &back, effects).await, Ok(true)) {
            jobs.metrics.handed_back.fetch_add(1, Relaxed);
            tracing::info!(job_id = %id, "shutting down; job handed back to the queue");
            return;
        }
    }
    if let Ok(Some(v)) = jobs.store.get(id).await
        && v.record.status.is_final()
    {
        let _ = jobs.store.ack(&d.entry).await;
    }
}

/// Writes a final outcome (acknowledging the delivery), then tells waiters
/// and starts the webhook.
async fn finish(
    jobs: &Arc<Jobs>,
    d: &Delivery,
    id: &str,
    ver: u64,
    mut next: JobRecord,
    mut effects: Effects,
) {
    next.finished_at_ms = Some(now_ms());
    if next.callback_url.is_some() {
        next.webhook = Some(WebhookState {
            status: "pending".into(),
            attempts: 0,
            last_status: None,
            last_error: None,
            last_attempt_at: None,
        });
    }
    effects.ack = Some(d.entry.clone());
    effects.finalize = true;
    if write(jobs, id, ver, &next, effects).await {
        jobs.metrics.outcome(next.status);
        jobs.job_finished(&next);
        if next.callback_url.is_some() {
            let jobs = jobs.clone();
            tokio::spawn(tracing::Instrument::in_current_span(async move {
                super::webhook::deliver(&jobs, next).await
            }));
        }
    } else if let Ok(Some(v)) = jobs.store.get(id).await
        && v.record.status.is_final()
    {
        // Someone else wrote the outcome (a cancel, or a newer delivery).
        let _ = jobs.store.ack(&d.entry).await;
    }
}

/// Reads a job, retrying while the store is unavailable (for up to the
/// visibility timeout, and not once shutdown began): a delivery claimed just
/// before Redis went away runs when it returns instead of waiting for a
/// reclaim. `None` when the store stayed unavailable.
async fn read(jobs: &Jobs, id: &str) -> Option<Option<Versioned>> {
    let give_up = tokio::time::Instant::now() + jobs.config.visibility_timeout;
    let mut wait = Duration::from_millis(50);
    loop {
        match jobs.store.get(id).await {
            Ok(found) => return Some(found),
            Err(e) => {
                if jobs.stopping.load(Relaxed) || tokio::time::Instant::now() >= give_up {
                    jobs.own_pending_unsure.store(true, Relaxed);
                    tracing::warn!(job_id = %id, error = %e, "could not read the job; its delivery will be reclaimed");
                    return None;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// A check-and-set that outlives a store outage: retried while the store is
/// unavailable, for up to the visibility timeout (after that the delivery
/// belongs to whoever reclaimed it). True when written.
///
/// A failed call may still have been applied (a timeout after Redis ran the
/// script), so before writing again the record is read back: at `ver + 1`
/// with this very change, the lost answer was a yes.
async fn write(jobs: &Jobs, id: &str, ver: u64, next: &JobRecord, effects: Effects) -> bool {
    let give_up = tokio::time::Instant::now() + jobs.config.visibility_timeout;
    let mut wait = Duration::from_millis(50);
    let mut uncertain = false;
    loop {
        let attempt = async {
            if uncertain {
                match jobs.store.get(id).await? {
                    Some(v) if v.ver == ver + 1 && same_change(&v.record, next) => return Ok(true),
                    Some(v) if v.ver == ver => {}
                    _ => return Ok(false),
                }
            }
            jobs.store.update(id, ver, next, effects.clone()).await
        };
        match attempt.await {
            Ok(written) => return written,
            Err(e) => {
                uncertain = true;
                if tokio::time::Instant::now() >= give_up {
                    jobs.own_pending_unsure.store(true, Relaxed);
                    tracing::warn!(job_id = %id, error = %e, "could not record the job's state; it will be re-run");
                    return false;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// True when `stored` is the change `written` describes (the fields every
/// write of a worker sets afresh), so a write whose answer was lost is
/// recognised when read back.
fn same_change(stored: &JobRecord, written: &JobRecord) -> bool {
    stored.status == written.status
        && stored.deliveries == written.deliveries
        && stored.unfinished == written.unfinished
        && stored.started_at_ms == written.started_at_ms
        && stored.finished_at_ms == written.finished_at_ms
        && stored.not_before_ms == written.not_before_ms
        && stored.consumer == written.consumer
}

impl Jobs {
    /// Shutdown: stop claiming, let running jobs finish for up to `grace`,
    /// then hand the rest back so another instance takes them at once.
    pub async fn drain(&self, grace: Duration) {
        self.stopping.store(true, Relaxed);
        self.wake.notify_one();
        let deadline = tokio::time::Instant::now() + grace;
        while !self.running.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !self.running.is_empty() {
            tracing::info!(
                running = self.running.len(),
                "grace period over; handing running jobs back"
            );
            for r in self.running.iter() {
                r.value().1.send_replace(true);
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while !self.running.is_empty() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        if let super::store::Store::Redis(r) = &self.store {
            r.stop_subscriber();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::env::MapEnv;
    use crate::jobs::{NewJob, SubmitResult};
    use crate::redis_link::RedisLinkOptions;
    use keel_testkit::redis_server::RedisServer;

    /// Arms a [`muting_proxy`]: the next server answer that contains these
    /// bytes (any answer when empty) is dropped.
    type Mute = std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>;

    /// A TCP proxy to `upstream` that, once armed, drops the next matching
    /// answer of the server together with the connection: the server
    /// applied a command, its client never hears of it.
    async fn muting_proxy(upstream: std::net::SocketAddr) -> (String, Mute) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mute: Mute = Default::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let m = mute.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let m = m.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = sr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        // Armed: the server's answer is dropped with the
                        // connection, as when a network path fails.
                        let drop_it = {
                            let mut armed = m.lock().unwrap_or_else(|p| p.into_inner());
                            let hit = armed.as_ref().is_some_and(|pat| {
                                pat.is_empty()
                                    || buf[..n].windows(pat.len()).any(|w| w == pat.as_slice())
                            });
                            if hit {
                                *armed = None;
                            }
                            hit
                        };
                        if drop_it || cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (format!("redis://{addr}"), mute)
    }

    /// Jobs on the harness Redis reached through a [`muting_proxy`] (50 ms
    /// command timeout), with one queued job: (jobs, mute, job id).
    async fn one_job_behind_a_muting_proxy(server: &RedisServer) -> (Arc<Jobs>, Mute, String) {
        let upstream: std::net::SocketAddr = server
            .url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .parse()
            .expect("harness url is host:port");
        let (url, mute) = muting_proxy(upstream).await;
        let settings =
            Settings::from_source(&MapEnv::new(&[("REDIS_URL", url.as_str())])).expect("settings");
        let options = RedisLinkOptions {
            timeout: Duration::from_millis(50),
            cooloff: Duration::from_millis(20),
        };
        let jobs = Jobs::new(settings.jobs.clone(), Some(&url), options).expect("jobs");
        let submitted = jobs
            .submit(NewJob {
                owner: "alpha".into(),
                operation: "summarize".into(),
                request: serde_json::json!({"text": "A text long enough to run.", "operation": "summarize"}),
                metadata: None,
                callback_url: None,
                ttl: Duration::from_secs(60),
                idempotency_key: None,
                request_hash: "h".into(),
                traceparent: None,
            })
            .await
            .expect("submit");
        let SubmitResult::Created(accepted) = submitted else {
            panic!("a new job");
        };
        (jobs, mute, accepted.job_id)
    }

    /// A read of the stream Redis applied but whose answer was lost moves
    /// the job's entry into this consumer's pending list, where a plain
    /// claim never looks again (until the visibility timeout); re-reading
    /// the consumer's own pending list finds it at once. This is what the
    /// consume loop does after a failed claim.
    #[tokio::test]
    async fn a_delivery_whose_answer_was_lost_is_found_again() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let (jobs, mute, id) = one_job_behind_a_muting_proxy(&server).await;
        // Only the answer naming the job (the stream read) is dropped.
        *mute.lock().expect("mute") = Some(id.as_bytes().to_vec());
        assert!(
            jobs.store.claim("me", 4).await.is_err(),
            "the read's answer was lost"
        );
        assert!(
            mute.lock().expect("mute").is_none(),
            "the read was answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await; // past the link's cool-off
        let again = jobs.store.claim("me", 4).await.expect("claim");
        assert!(
            again.is_empty(),
            "a plain claim does not see the lost delivery: {again:?}"
        );
        let found = jobs.store.own_pending("me", 4).await.expect("own pending");
        assert_eq!(
            found.iter().map(|d| d.job_id.as_str()).collect::<Vec<_>>(),
            vec![id.as_str()],
            "the lost delivery is in this consumer's pending list"
        );
        assert!(
            jobs.store
                .own_pending("someone-else", 4)
                .await
                .expect("own pending")
                .is_empty(),
            "and in nobody else's"
        );
    }

    /// A claim Redis applied but whose answer was lost (a timeout) is
    /// recognised as made when read back, instead of leaving the job
    /// `running` with nobody running it until the visibility timeout.
    #[tokio::test]
    async fn a_write_whose_answer_was_lost_is_recognised() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let (jobs, mute, id) = one_job_behind_a_muting_proxy(&server).await;
        let Some(Versioned { record, ver }) = jobs.store.get(&id).await.expect("get") else {
            panic!("stored");
        };
        // One write first, so the check-and-set script is loaded (a NOSCRIPT
        // answer is not what this test drops).
        assert!(
            jobs.store
                .update(&id, ver, &record, Effects::default())
                .await
                .expect("warm-up")
        );
        let ver = ver + 1;
        let mut running = record.clone();
        running.status = JobStatus::Running;
        running.deliveries = 1;
        running.unfinished = 1;
        running.started_at_ms = Some(now_ms());
        running.consumer = Some("me".into());

        // The first claim is applied by Redis; its answer is lost with the
        // connection, and the client reconnects.
        *mute.lock().expect("mute") = Some(Vec::new());
        let written = write(&jobs, &id, ver, &running, Effects::default()).await;
        assert!(written, "the claim Redis applied is known as made");
        let Some(stored) = jobs.store.get(&id).await.expect("get") else {
            panic!("stored");
        };
        assert_eq!(stored.ver, ver + 1, "applied exactly once");
        assert_eq!(stored.record.status, JobStatus::Running);
        assert_eq!(stored.record.consumer.as_deref(), Some("me"));
    }

    #[test]
    fn requeue_waits_grow_and_are_capped() {
        assert_eq!(requeue_delay(1), Duration::from_secs(1));
        assert_eq!(requeue_delay(2), Duration::from_secs(2));
        assert_eq!(requeue_delay(30), Duration::from_secs(60));
    }
}
