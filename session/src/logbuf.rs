//! The host's recent log lines, kept in memory for the console's Logs page: a tracing layer
//! that records every event the log filter lets through, numbered, in a ring of
//! [`KEEP`] lines, and hands each new one to live readers.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// How many lines are kept.
pub const KEEP: usize = 2000;

/// One line of the host's log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogLine {
    /// Its number: one more than the line before.
    pub seq: u64,
    /// When it was logged, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// The module that logged it.
    pub target: String,
    /// The message, then its fields as `name=value`.
    pub text: String,
}

/// The ring of recent lines.
pub struct LogBuffer {
    lines: Mutex<(u64, VecDeque<LogLine>)>,
    live: broadcast::Sender<LogLine>,
}

impl Default for LogBuffer {
    fn default() -> Self {
        Self {
            lines: Mutex::new((0, VecDeque::with_capacity(KEEP))),
            live: broadcast::channel(1024).0,
        }
    }
}

impl LogBuffer {
    /// Keeps `line` (its `seq` is set here) and hands it to live readers.
    pub fn push(&self, mut line: LogLine) {
        let mut guard = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let (next, lines) = &mut *guard;
        *next += 1;
        line.seq = *next;
        if lines.len() == KEEP {
            lines.pop_front();
        }
        lines.push_back(line.clone());
        // No reader is fine; a reader that fell behind learns so from its receiver.
        let _ = self.live.send(line);
    }

    /// The kept lines at `min` or more severe, oldest first, and a receiver of the lines to
    /// come (none is lost between the two).
    pub fn subscribe(&self, min: Level) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        let guard = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.live.subscribe();
        let lines = guard
            .1
            .iter()
            .filter(|l| at_least(l, min))
            .cloned()
            .collect();
        (lines, rx)
    }
}

/// Whether `line` is at `min` or more severe.
pub fn at_least(line: &LogLine, min: Level) -> bool {
    parse_level(&line.level).is_some_and(|l| l <= min)
}

/// `error`, `warn`, `info`, `debug` or `trace`.
pub fn parse_level(name: &str) -> Option<Level> {
    Some(match name {
        "error" => Level::ERROR,
        "warn" => Level::WARN,
        "info" => Level::INFO,
        "debug" => Level::DEBUG,
        "trace" => Level::TRACE,
        _ => return None,
    })
}

static HOST_LOG: OnceLock<Arc<LogBuffer>> = OnceLock::new();

/// The host's log buffer (empty when logging was set up without it, as in tests).
pub fn host_log() -> Arc<LogBuffer> {
    HOST_LOG.get_or_init(Default::default).clone()
}

/// The layer that fills [`host_log`].
pub fn layer() -> BufferLayer {
    BufferLayer(host_log())
}

/// A tracing layer writing into a [`LogBuffer`].
pub struct BufferLayer(Arc<LogBuffer>);

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for BufferLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        self.0.push(LogLine {
            seq: 0,
            unix_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            level: meta.level().as_str().to_ascii_lowercase(),
            target: meta.target().to_string(),
            text: format!("{}{}", fields.message, fields.rest),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn lines_are_numbered_filtered_kept_and_sent_live() {
        let buffer = Arc::new(LogBuffer::default());
        let subscriber = tracing_subscriber::registry().with(BufferLayer(buffer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(port = 47989, "serving");
            tracing::warn!("something odd");
        });
        let (lines, mut rx) = buffer.subscribe(Level::INFO);
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].seq, lines[0].level.as_str()), (1, "info"));
        assert_eq!(lines[0].text, "serving port=47989");
        let (warnings, _) = buffer.subscribe(Level::WARN);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].text, "something odd");
        let subscriber = tracing_subscriber::registry().with(BufferLayer(buffer.clone()));
        tracing::subscriber::with_default(subscriber, || tracing::error!("later"));
        let live = rx.try_recv().unwrap();
        assert_eq!((live.seq, live.text.as_str()), (3, "later"));
        for i in 0..KEEP {
            buffer.push(LogLine {
                seq: 0,
                unix_ms: 0,
                level: "info".into(),
                target: "t".into(),
                text: i.to_string(),
            });
        }
        let (lines, _) = buffer.subscribe(Level::TRACE);
        assert_eq!(lines.len(), KEEP);
        assert_eq!(lines.last().unwrap().seq, 3 + KEEP as u64);
    }
}
