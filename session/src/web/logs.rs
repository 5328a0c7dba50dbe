//! The log routes: the host's own log (from [`crate::logbuf`]) and the log files of the apps
//! and the sound server in the data directory's `logs/`, as JSON and live as server-sent
//! events.
//!
//! - `GET /api/logs`: the logs there are.
//! - `GET /api/logs/{name}?level=warn`: the recent lines of one (the host's at `level` or more
//!   severe).
//! - `GET /api/logs/{name}/events?level=warn`: the same, then every new line as it comes.

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::stream::{self, Stream};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tracing::Level;

use super::api::ApiError;
use crate::host::Host;
use crate::logbuf::{self, LogLine};

/// The host's own log's name.
pub const HOST: &str = "host";
/// How many lines of an app's log are sent first.
const APP_LINES: usize = 500;
/// How much of the end of an app's log is read for those.
const APP_TAIL_BYTES: u64 = 256 * 1024;
/// How often an app's log is looked at for new lines.
const APP_POLL: Duration = Duration::from_millis(500);

/// A log there is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogSource {
    /// `host`, or the file's name in `logs/` (`app-steam.log`).
    pub name: String,
    /// `host` or `file`: only the host's log has levels.
    pub kind: String,
}

/// The query of the log routes.
#[derive(Debug, Deserialize)]
pub struct LogQuery {
    /// The least severe level shown (host log only): `error`, `warn`, `info` (default),
    /// `debug` or `trace`.
    #[serde(default)]
    level: Option<String>,
}

/// `GET /api/logs`
pub async fn list(State(host): State<Arc<Host>>) -> Json<Vec<LogSource>> {
    let mut files: Vec<String> = std::fs::read_dir(host.data_dir.join("logs"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| valid_file_name(n))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut out = vec![LogSource {
        name: HOST.into(),
        kind: "host".into(),
    }];
    out.extend(files.into_iter().map(|name| LogSource {
        name,
        kind: "file".into(),
    }));
    Json(out)
}

fn valid_file_name(name: &str) -> bool {
    name.ends_with(".log")
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// What a route serves: the host's log at a level, or an app's file.
enum Source {
    Host(Level),
    File(PathBuf),
}

fn source(host: &Host, name: &str, query: &LogQuery) -> Result<Source, ApiError> {
    let level = match query.level.as_deref() {
        None => Level::INFO,
        Some(l) => logbuf::parse_level(l).ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("level {l:?}; allowed: error, warn, info, debug, trace"),
            )
        })?,
    };
    if name == HOST {
        return Ok(Source::Host(level));
    }
    let path = host.data_dir.join("logs").join(name);
    if valid_file_name(name) && path.is_file() {
        Ok(Source::File(path))
    } else {
        Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no log named {name:?}"),
        ))
    }
}

/// `GET /api/logs/{name}`
pub async fn recent(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
    Query(query): Query<LogQuery>,
) -> Result<Json<Vec<LogLine>>, ApiError> {
    match source(&host, &name, &query)? {
        Source::Host(level) => Ok(Json(logbuf::host_log().subscribe(level).0)),
        Source::File(path) => {
            let (lines, _) = tokio::task::spawn_blocking(move || tail(&path, &name))
                .await
                .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            Ok(Json(lines))
        }
    }
}

/// The last [`APP_LINES`] lines of the file, and where it ends.
fn tail(path: &std::path::Path, name: &str) -> (Vec<LogLine>, u64) {
    let Ok(mut file) = std::fs::File::open(path) else {
        return (Vec::new(), 0);
    };
    let end = file.metadata().map_or(0, |m| m.len());
    let start = end.saturating_sub(APP_TAIL_BYTES);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err()
        || file.take(end - start).read_to_end(&mut bytes).is_err()
    {
        return (Vec::new(), end);
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // cut in the middle
    }
    let skip = lines.len().saturating_sub(APP_LINES);
    let out = lines[skip..]
        .iter()
        .enumerate()
        .map(|(i, l)| file_line(name, i as u64 + 1, l))
        .collect();
    (out, end)
}

fn file_line(name: &str, seq: u64, text: &str) -> LogLine {
    LogLine {
        seq,
        unix_ms: 0,
        level: String::new(),
        target: name.to_string(),
        text: text.to_string(),
    }
}

fn event(line: &LogLine) -> Result<Event, Infallible> {
    Ok(Event::default()
        .id(line.seq.to_string())
        .json_data(line)
        .unwrap_or_else(|_| Event::default().data("{}")))
}

/// `GET /api/logs/{name}/events`
pub async fn events(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
    Query(query): Query<LogQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let stream: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> =
        match source(&host, &name, &query)? {
            Source::Host(level) => Box::pin(host_events(level)),
            Source::File(path) => Box::pin(file_events(path, name)),
        };
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn host_events(level: Level) -> impl Stream<Item = Result<Event, Infallible>> {
    let (backlog, rx) = logbuf::host_log().subscribe(level);
    let first = stream::iter(backlog.iter().map(event).collect::<Vec<_>>());
    let live = stream::unfold(rx, move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(line) if logbuf::at_least(&line, level) => return Some((event(&line), rx)),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let note = Event::default()
                        .event("skipped")
                        .data(format!("{n} lines went by too fast to be sent"));
                    return Some((Ok(note), rx));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    futures_util::StreamExt::chain(first, live)
}

fn file_events(path: PathBuf, name: String) -> impl Stream<Item = Result<Event, Infallible>> {
    struct Tail {
        path: PathBuf,
        name: String,
        offset: Option<u64>,
        seq: u64,
        partial: Vec<u8>,
        pending: std::collections::VecDeque<LogLine>,
    }
    let state = Tail {
        path,
        name,
        offset: None,
        seq: 0,
        partial: Vec::new(),
        pending: Default::default(),
    };
    stream::unfold(state, |mut t| async move {
        loop {
            if let Some(line) = t.pending.pop_front() {
                return Some((event(&line), t));
            }
            match t.offset {
                None => {
                    let (path, name) = (t.path.clone(), t.name.clone());
                    let (lines, end) = tokio::task::spawn_blocking(move || tail(&path, &name))
                        .await
                        .unwrap_or_default();
                    t.seq = lines.last().map_or(0, |l| l.seq);
                    t.pending.extend(lines);
                    t.offset = Some(end);
                }
                Some(offset) => {
                    tokio::time::sleep(APP_POLL).await;
                    let path = t.path.clone();
                    let read = tokio::task::spawn_blocking(move || read_from(&path, offset))
                        .await
                        .ok()
                        .flatten();
                    let Some((bytes, end)) = read else { continue };
                    if end < offset {
                        t.partial.clear(); // the file was started again
                    }
                    t.offset = Some(end);
                    t.partial.extend_from_slice(&bytes);
                    while let Some(nl) = t.partial.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = t.partial.drain(..=nl).collect();
                        t.seq += 1;
                        let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                        t.pending.push_back(file_line(&t.name, t.seq, &text));
                    }
                }
            }
        }
    })
}

/// The bytes of the file from `offset` (from the start when it has become shorter), and its
/// length.
fn read_from(path: &std::path::Path, offset: u64) -> Option<(Vec<u8>, u64)> {
    let mut file = std::fs::File::open(path).ok()?;
    let end = file.metadata().ok()?.len();
    let from = if end < offset { 0 } else { offset };
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut bytes = Vec::new();
    file.take(end - from).read_to_end(&mut bytes).ok()?;
    Some((bytes, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_log_file_names_are_served() {
        for good in ["app-steam.log", "pulseaudio.log", "app-x_1.log"] {
            assert!(valid_file_name(good), "{good}");
        }
        for bad in [
            "../state.json",
            "app.txt",
            ".hidden.log",
            "a/b.log",
            "mgmt-token",
            "x y.log",
        ] {
            assert!(!valid_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_tail_is_the_last_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app-a.log");
        let text: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let (lines, end) = tail(&path, "app-a.log");
        assert_eq!(end, text.len() as u64);
        assert_eq!(lines.len(), APP_LINES);
        assert_eq!(lines.last().unwrap().text, "line 999");
        assert_eq!(lines[0].text, format!("line {}", 1000 - APP_LINES));
        let (more, end2) = read_from(&path, end).unwrap();
        assert!(more.is_empty() && end2 == end);
        std::fs::write(&path, "new\n").unwrap();
        assert_eq!(read_from(&path, end).unwrap(), (b"new\n".to_vec(), 4));
    }
}
