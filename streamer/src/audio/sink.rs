//! Sound servers and the virtual sinks made on them.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use libpulse_binding::callbacks::ListResult;
use libpulse_binding::context::{self, Context};
use libpulse_binding::mainloop::standard::{IterateResult, Mainloop};
use libpulse_binding::operation;
use tracing::{debug, info, warn};

use super::channel_map;
use crate::encode::{ChannelLayout, AUDIO_SAMPLE_RATE as SAMPLE_RATE};

/// How long a request to the sound server may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The address of a sound server that speaks the PulseAudio protocol, as libpulse takes it
/// (`unix:/run/user/1000/pulse/native`) and as apps take it in `PULSE_SERVER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulseServer(String);

/// What a server says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `pulseaudio`, or `PulseAudio (on PipeWire 1.0.5)` for pipewire-pulse.
    pub name: String,
    /// The server's version.
    pub version: String,
}

impl PulseServer {
    /// A server given by address (`unix:PATH`, `tcp:HOST:PORT`, or a bare socket path).
    pub fn new(address: impl Into<String>) -> PulseServer {
        PulseServer(address.into())
    }

    /// The server listening on the Unix socket `path`.
    pub fn at_socket(path: &Path) -> PulseServer {
        PulseServer(format!("unix:{}", path.display()))
    }

    /// Where the user's own server would be: `$PULSE_SERVER` when set, else
    /// `$XDG_RUNTIME_DIR/pulse/native` when that socket exists. Nothing is contacted.
    pub fn of_user() -> Option<PulseServer> {
        if let Some(s) = std::env::var_os("PULSE_SERVER").filter(|s| !s.is_empty()) {
            return Some(PulseServer(s.to_string_lossy().into_owned()));
        }
        let runtime = PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty())?);
        let socket = runtime.join("pulse/native");
        std::fs::symlink_metadata(&socket).ok()?;
        Some(PulseServer::at_socket(&socket))
    }

    /// The address.
    pub fn address(&self) -> &str {
        &self.0
    }

    /// Connects and asks the server for its name and version.
    pub fn probe(&self) -> Result<ServerInfo> {
        let mut conn = Connection::open(self)?;
        let info = Rc::new(RefCell::new(None));
        let op = {
            let info = info.clone();
            conn.context.introspect().get_server_info(move |i| {
                *info.borrow_mut() = Some(ServerInfo {
                    name: i.server_name.as_deref().unwrap_or("?").to_owned(),
                    version: i.server_version.as_deref().unwrap_or("?").to_owned(),
                });
            })
        };
        conn.wait(&op, "asking for the server info")?;
        let info = info.borrow_mut().take();
        info.context("the server sent no server info")
    }
}

impl fmt::Display for PulseServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A null sink made for one session: apps play into it, a [`super::Capture`] records its monitor.
/// Dropping it unloads it; streams still playing into it move to another sink.
#[derive(Debug)]
pub struct VirtualSink {
    server: PulseServer,
    name: String,
    module: u32,
    layout: ChannelLayout,
}

impl VirtualSink {
    /// Loads `module-null-sink` on `server` as a sink named `punktfunk-<pid>-<n>`, at 48 kHz
    /// in `layout`, so that the apps' sound reaches it without any remixing.
    pub fn create(server: &PulseServer, layout: ChannelLayout) -> Result<VirtualSink> {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!(
            "punktfunk-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let args = format!(
            "sink_name={name} format=s16le rate={SAMPLE_RATE} channels={} channel_map={} \
             sink_properties=device.description=punktfunk",
            layout.channels(),
            channel_map(layout),
        );
        let mut conn = Connection::open(server)?;
        let index = Rc::new(RefCell::new(None));
        let op = {
            let index = index.clone();
            conn.context
                .introspect()
                .load_module("module-null-sink", &args, move |i| {
                    *index.borrow_mut() = Some(i)
                })
        };
        conn.wait(&op, "loading module-null-sink")?;
        let module = index.borrow_mut().take().unwrap_or(u32::MAX);
        if module == u32::MAX {
            bail!("the sound server refused to load module-null-sink {args}");
        }
        info!(sink = %name, module, channels = layout.channels(), "virtual sink created");
        Ok(VirtualSink {
            server: server.clone(),
            name,
            module,
            layout,
        })
    }

    /// The sink's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The speaker layout it was made with.
    pub fn layout(&self) -> ChannelLayout {
        self.layout
    }

    /// Where a stream records this sink.
    pub fn source(&self) -> super::AudioSource {
        super::AudioSource {
            server: self.server.clone(),
            source: format!("{}.monitor", self.name),
        }
    }

    /// The environment that sends an app's sound here: `PULSE_SERVER` and `PULSE_SINK`, which
    /// libpulse (and so ALSA's pulse plugin, SDL and most games) reads for its default device.
    pub fn app_env(&self) -> [(&'static str, String); 2] {
        [
            ("PULSE_SERVER", self.server.0.clone()),
            ("PULSE_SINK", self.name.clone()),
        ]
    }

    fn unload(&self) -> Result<()> {
        let mut conn = Connection::open(&self.server)?;
        let ok = Rc::new(RefCell::new(false));
        let op = {
            let ok = ok.clone();
            conn.context
                .introspect()
                .unload_module(self.module, move |s| *ok.borrow_mut() = s)
        };
        conn.wait(&op, "unloading the sink")?;
        if !*ok.borrow() {
            bail!("the sound server did not unload module {}", self.module);
        }
        Ok(())
    }
}

/// Unloads the sinks that hosts which are gone (killed before they could clean up) left on
/// `server`: null sinks named `punktfunk-<pid>-<n>` whose process is gone. (A reused pid keeps
/// a leftover for longer; a running host never loses its sinks.) Returns how many were removed.
pub fn remove_orphaned_sinks(server: &PulseServer) -> Result<usize> {
    let mut conn = Connection::open(server)?;
    let orphans = Rc::new(RefCell::new(Vec::new()));
    let op = {
        let orphans = orphans.clone();
        conn.context.introspect().get_module_info_list(move |item| {
            if let ListResult::Item(m) = item {
                let owner = m.argument.as_deref().and_then(sink_owner);
                if m.name.as_deref() == Some("module-null-sink")
                    && owner.is_some_and(|pid| !is_running(pid))
                {
                    orphans.borrow_mut().push(m.index);
                }
            }
        })
    };
    conn.wait(&op, "listing modules")?;
    let orphans = orphans.borrow().clone();
    for &index in &orphans {
        let op = conn.context.introspect().unload_module(index, |_| {});
        conn.wait(&op, "unloading an orphaned sink")?;
        info!(module = index, "removed a sink a previous host left behind");
    }
    Ok(orphans.len())
}

/// The pid in a `sink_name=punktfunk-<pid>-<n>` module argument.
fn sink_owner(argument: &str) -> Option<u32> {
    let rest = argument
        .split_whitespace()
        .find_map(|a| a.strip_prefix("sink_name=punktfunk-"))?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// Whether a process `pid` exists.
fn is_running(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl Drop for VirtualSink {
    fn drop(&mut self) {
        match self.unload() {
            Ok(()) => debug!(sink = %self.name, "virtual sink removed"),
            Err(e) => {
                warn!(sink = %self.name, err = %format!("{e:#}"), "cannot remove the virtual sink")
            }
        }
    }
}

/// A connected context on its own (non-threaded) main loop, driven by [`Connection::wait`].
/// Fields drop in order: the context before the main loop it runs on.
pub(super) struct Connection {
    pub(super) context: Context,
    pub(super) mainloop: Mainloop,
}

impl Connection {
    pub(super) fn open(server: &PulseServer) -> Result<Connection> {
        let mut mainloop = Mainloop::new().context("cannot create a libpulse main loop")?;
        let mut context =
            Context::new(&mainloop, "punktfunk").context("cannot create a libpulse context")?;
        context
            .connect(Some(&server.0), context::FlagSet::NOAUTOSPAWN, None)
            .with_context(|| format!("cannot connect to the sound server {server}"))?;
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match context.get_state() {
                context::State::Ready => break,
                context::State::Failed | context::State::Terminated => {
                    bail!(
                        "cannot connect to the sound server {server}: {}",
                        context.errno()
                    )
                }
                _ => {}
            }
            step(&mut mainloop, deadline, "connecting")?;
        }
        Ok(Connection { context, mainloop })
    }

    fn wait<T: ?Sized>(&mut self, op: &operation::Operation<T>, what: &str) -> Result<()> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match op.get_state() {
                operation::State::Done => return Ok(()),
                operation::State::Cancelled => bail!("{what}: the sound server cancelled it"),
                operation::State::Running => {}
            }
            if matches!(
                self.context.get_state(),
                context::State::Failed | context::State::Terminated
            ) {
                bail!("{what}: lost the sound server ({})", self.context.errno());
            }
            step(&mut self.mainloop, deadline, what)?;
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.context.disconnect();
    }
}

/// One non-blocking main loop iteration, then a short nap; fails after `deadline`.
pub(super) fn step(mainloop: &mut Mainloop, deadline: Instant, what: &str) -> Result<()> {
    match mainloop.iterate(false) {
        IterateResult::Success(n) if n > 0 => return Ok(()),
        IterateResult::Success(_) => {}
        IterateResult::Quit(_) => bail!("{what}: the libpulse main loop quit"),
        IterateResult::Err(e) => bail!("{what}: libpulse main loop error: {e}"),
    }
    if Instant::now() > deadline {
        bail!(
            "{what}: the sound server did not answer within {} s",
            TIMEOUT.as_secs()
        );
    }
    std::thread::sleep(Duration::from_millis(2));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_owners_come_from_our_names_only() {
        let args = "sink_name=punktfunk-4242-3 format=s16le rate=48000 channels=2";
        assert_eq!(sink_owner(args), Some(4242));
        assert_eq!(sink_owner("sink_name=punktfunk-x-3"), None);
        assert_eq!(sink_owner("sink_name=other-4242-3"), None);
        assert_eq!(sink_owner("sink_name=punktfunk-4242"), None);
        assert!(is_running(std::process::id()));
    }
}
