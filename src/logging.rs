//! Log output for `keel serve`: a tracing subscriber whose writes can never
//! stop, block or crash the server.
//!
//! Why this exists: with `keel serve 2>&1 | tee log`, a Ctrl-C kills `tee`
//! first; every later log write then fails with `EPIPE`. tracing-subscriber's
//! stock stdout writer reports such failures with `eprintln!`, which panics
//! when stderr is the same broken pipe — and the panic landed in the task
//! that was about to start the shutdown, so keel ignored SIGINT and SIGTERM.
//!
//! Invariants:
//! - a log call only formats the line and hands it to a bounded queue
//!   (`try_send`); when the queue is full the line is dropped and counted —
//!   a log call never waits for the terminal, a pipe or a file;
//! - one writer thread empties the queue into stdout and ignores every write
//!   error (a reader that went away is not a reason to stop serving);
//! - SIGPIPE is ignored by the Rust runtime, so a broken pipe is an `EPIPE`
//!   error here, never a signal that kills keel;
//! - colours only when stdout is a terminal: a file or a pipe gets plain text.
//!
//! The [`LogGuard`] flushes the queue (bounded wait) when the server ends.

use crate::config::{LogFormat, Settings};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};
use tracing_subscriber::fmt::MakeWriter;

/// Lines held for the writer thread before new ones are dropped.
const QUEUE_LINES: usize = 8192;
/// Longest wait for the queue to drain when keel exits.
const FLUSH_WAIT: Duration = Duration::from_secs(1);

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `LOG_LEVEL` is not a tracing filter.
    #[error(
        "invalid LOG_LEVEL={value:?}: allowed a level (error, warn, info, debug, trace) or a filter like 'keel=debug,info' ({reason})"
    )]
    Filter {
        /// What `LOG_LEVEL` held.
        value: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The writer thread could not be started.
    #[error("cannot start the log writer thread: {0}")]
    Thread(#[from] std::io::Error),
    /// Another global subscriber was installed first.
    #[error("cannot install the log subscriber: {0}")]
    Install(String),
    /// The OpenTelemetry exporter could not be built.
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
}

enum Msg {
    Line(Vec<u8>),
    Flush(std::sync::mpsc::Sender<()>),
}

/// The queue shared by every [`QueueWriter`] and the writer thread.
struct Queue {
    tx: SyncSender<Msg>,
    dropped: AtomicU64,
}

/// A [`MakeWriter`] whose writers enqueue whole lines and never fail or block.
#[derive(Clone)]
pub struct NonBlockingWriter {
    queue: Arc<Queue>,
}

/// One event's writer: each `write` is one formatted line (tracing-subscriber
/// formats an event into a buffer, then writes it at once).
pub struct QueueWriter<'a> {
    queue: &'a Queue,
}

impl Write for QueueWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.queue.tx.try_send(Msg::Line(buf.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.queue.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for NonBlockingWriter {
    type Writer = QueueWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        QueueWriter { queue: &self.queue }
    }
}

impl NonBlockingWriter {
    /// A writer into `out`, emptied by a new thread named `keel-log`.
    pub fn spawn<W: Write + Send + 'static>(
        out: W,
    ) -> std::io::Result<(NonBlockingWriter, LogGuard)> {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_LINES);
        std::thread::Builder::new()
            .name("keel-log".into())
            .spawn(move || drain(rx, out))?;
        let queue = Arc::new(Queue {
            tx,
            dropped: AtomicU64::new(0),
        });
        Ok((
            NonBlockingWriter {
                queue: queue.clone(),
            },
            LogGuard {
                queue,
                tracer: None,
            },
        ))
    }

    /// Lines dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped.load(Ordering::Relaxed)
    }
}

/// The writer thread: every error is ignored, the queue is always emptied.
fn drain<W: Write>(rx: Receiver<Msg>, mut out: W) {
    for msg in rx {
        match msg {
            Msg::Line(line) => {
                let _ = out.write_all(&line);
            }
            Msg::Flush(done) => {
                let _ = out.flush();
                let _ = done.send(());
            }
        }
    }
}

/// Keeps the log writer (and the trace exporter, when tracing is on) alive;
/// on drop, exports the queued spans (bounded wait), then waits (at most a
/// second) for the queued lines to be written.
pub struct LogGuard {
    queue: Arc<Queue>,
    tracer: Option<crate::telemetry::TracerGuard>,
}

impl LogGuard {
    /// Waits until every line queued so far is written, or `wait` passed;
    /// true when everything was written.
    pub fn flush(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let mut msg = Msg::Flush(done_tx);
        loop {
            match self.queue.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        done_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(tracer) = &mut self.tracer {
            tracer.shutdown();
        }
        self.flush(FLUSH_WAIT);
    }
}

/// Installs the global subscriber for `keel serve`: `LOG_LEVEL` filter,
/// `LOG_FORMAT` (json or pretty; pretty has colours only on a terminal),
/// written to stdout through a [`NonBlockingWriter`]. With an OTLP endpoint
/// (`settings.tracing`) an OpenTelemetry layer is added that sees only the
/// spans of [`crate::telemetry::TARGET`], which the log output never shows.
pub fn init(settings: &Settings) -> Result<LogGuard, LoggingError> {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log_level)
        .map_err(|e| LoggingError::Filter {
            value: settings.log_level.clone(),
            reason: e.to_string(),
        })?
        // The OpenTelemetry spans are for the exporter, not for the log.
        .add_directive(crate::telemetry::LOG_OFF_DIRECTIVE.parse().map_err(
            |e: tracing_subscriber::filter::ParseError| LoggingError::Filter {
                value: crate::telemetry::LOG_OFF_DIRECTIVE.into(),
                reason: e.to_string(),
            },
        )?);
    let (writer, mut guard) = NonBlockingWriter::spawn(std::io::stdout())?;
    let installed = match &settings.tracing {
        None => {
            let builder = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(writer)
                // Our writer never fails; and if it did, reporting it with
                // `eprintln!` could panic on a broken stderr.
                .log_internal_errors(false);
            match settings.log_format {
                LogFormat::Json => builder
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .try_init(),
                LogFormat::Pretty => builder
                    .with_ansi(std::io::stdout().is_terminal())
                    .try_init(),
            }
        }
        Some(config) => {
            use tracing_subscriber::Layer;
            use tracing_subscriber::layer::SubscriberExt;
            use tracing_subscriber::util::SubscriberInitExt;
            type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;
            let (tracer, tracer_guard) = crate::telemetry::install(config)?;
            guard.tracer = Some(tracer_guard);
            let fmt = tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .log_internal_errors(false);
            let fmt: Boxed = match settings.log_format {
                LogFormat::Json => fmt
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_filter(filter)
                    .boxed(),
                LogFormat::Pretty => fmt
                    .with_ansi(std::io::stdout().is_terminal())
                    .with_filter(filter)
                    .boxed(),
            };
            let otel: Boxed = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_location(false)
                .with_tracked_inactivity(false)
                .with_threads(false)
                .with_level(false)
                .with_target(false)
                .with_filter(
                    tracing_subscriber::filter::Targets::new()
                        .with_target(crate::telemetry::TARGET, tracing::Level::TRACE),
                )
                .boxed();
            tracing_subscriber::registry()
                .with(vec![fmt, otel])
                .try_init()
                .map_err(|e| e.to_string().into())
        }
    };
    installed.map_err(|e: Box<dyn std::error::Error + Send + Sync>| {
        LoggingError::Install(e.to_string())
    })?;
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A sink that fails like a pipe whose reader went away.
    struct BrokenPipe;
    impl Write for BrokenPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    /// A sink that blocks until released, like a pipe nobody reads.
    struct Stuck(Arc<Mutex<()>>);
    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _held = self.0.lock();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_errors_are_swallowed() {
        let (writer, guard) = NonBlockingWriter::spawn(BrokenPipe).unwrap();
        for _ in 0..100 {
            assert_eq!(writer.make_writer().write(b"line\n").unwrap(), 5);
        }
        // The thread survived the errors and still answers a flush.
        assert!(guard.flush(Duration::from_secs(5)));
    }

    #[test]
    fn a_stuck_output_never_blocks_the_logger() {
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let (writer, guard) = NonBlockingWriter::spawn(Stuck(gate.clone())).unwrap();
        let started = Instant::now();
        for _ in 0..(QUEUE_LINES + 100) {
            writer.make_writer().write_all(b"line\n").unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(writer.dropped() >= 99, "dropped {}", writer.dropped());
        // Flushing gives up after its deadline instead of hanging.
        let started = Instant::now();
        assert!(!guard.flush(Duration::from_millis(100)));
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(held);
        assert!(guard.flush(Duration::from_secs(10)));
    }

    #[test]
    fn lines_arrive_in_order() {
        #[derive(Clone, Default)]
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Shared::default();
        let (writer, guard) = NonBlockingWriter::spawn(out.clone()).unwrap();
        writer.make_writer().write_all(b"one\n").unwrap();
        writer.make_writer().write_all(b"two\n").unwrap();
        assert!(guard.flush(Duration::from_secs(5)));
        assert_eq!(&*out.0.lock().unwrap(), b"one\ntwo\n");
    }
}
