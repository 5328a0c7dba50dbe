//! The running host: its state and the game sessions.
//!
//! One [`Host`] is shared by every protocol's servers and by the management API. It owns the
//! persistent state (identity, paired clients), the app catalog, the configuration and the game
//! sessions, at most one per paired client: each has its own compositor at the client's mode,
//! its apps (the base app, if the host has one, and a catalog app on top) and the stream that
//! carries it to the client, which a protocol attaches ([`Host::attach_stream`]). The host
//! knows no protocol: what GameStream keeps between requests is in [`crate::gamestream`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use protocol::pairing::HostIdentity;
use tracing::{error, info, warn};

use crate::apps::{self, App, RunningApp};
use crate::config::Config;
use crate::prep;
use crate::state::{PairedClient, State};
use crate::web::model;

/// The ports, as offsets from the base (Sunshine's layout).
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// The base: HTTP.
    pub http: u16,
    /// base - 5
    pub https: u16,
    /// base + 1 (loopback only)
    pub mgmt: u16,
    /// base + 9
    pub video: u16,
    /// base + 10
    pub control: u16,
    /// base + 11
    pub audio: u16,
    /// base + 21
    pub rtsp: u16,
}

impl Ports {
    /// The ports derived from `base`.
    pub fn from_base(base: u16) -> Self {
        Self {
            http: base,
            https: base - 5,
            mgmt: base + 1,
            video: base + 9,
            control: base + 10,
            audio: base + 11,
            rtsp: base + 21,
        }
    }
}

/// A client's launch in progress, from [`Host::begin_launch`].
pub struct LaunchGuard {
    host: Arc<Host>,
    client: String,
}

impl Drop for LaunchGuard {
    fn drop(&mut self) {
        let mut launching = self
            .host
            .launching
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        launching.remove(&self.client);
    }
}

/// What a protocol's stream gets from the session it carries ([`Host::attach_stream`]).
pub struct StreamSeat {
    /// The session's compositor: frames out, input in.
    pub compositor: Arc<compositor::CompositorHandle>,
    /// The session's sink, recorded for the stream's sound; `None` without a sound server.
    pub audio: Option<streamer::audio::AudioSource>,
    /// Runs once when the stream ends by itself: the session keeps running for a resume.
    pub on_end: Box<dyn FnOnce(streamer::EndReason) + Send>,
}

/// A game session: one client's compositor, the apps in it and the stream that carries it.
pub struct GameSession {
    /// The host-wide serial number of the session.
    pub id: u64,
    /// The paired client it belongs to.
    pub client: String,
    /// The mode the compositor was started with.
    pub mode: compositor::Mode,
    /// What the session's apps learn about the client.
    pub vars: prep::ClientVars,
    /// Where the session's apps connect.
    pub display: apps::Display,
    /// The stream that carries the session to its client, once the client asked for it.
    pub stream: Option<Box<dyn streamer::StreamHandle>>,
    /// The serial number of `stream` ([`Host::attach_stream`]).
    pub stream_serial: u64,
    /// The catalog app, on top of the base app when the host has one.
    pub app: Option<TopApp>,
    /// The host's base app, restarted whenever it exits while the session runs.
    pub base: Option<BaseApp>,
    /// The compositor the apps run in.
    pub compositor: Arc<compositor::CompositorHandle>,
    /// The sink the app plays into; last, so that it goes after the app.
    pub sink: Option<streamer::audio::VirtualSink>,
}

/// A catalog app running in a session.
pub struct TopApp {
    /// The app's process.
    pub running: RunningApp,
    /// The undo commands of its prep.
    pub undo: prep::Undo,
    serial: u64,
}

/// The base app running in a session.
pub struct BaseApp {
    /// The app's process.
    pub running: RunningApp,
    serial: u64,
    started: Instant,
    /// How often it has exited within [`BASE_QUICK_EXIT`] of starting, in a row.
    quick_exits: u32,
}

/// Why [`Host::edit_config`] changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ConfigEditFailure {
    /// The edit itself could not be made (no such app, a name taken, a file not TOML).
    #[error("{0}")]
    Edit(crate::config_edit::EditError),
    /// The edited file would not load; the config loader's message.
    #[error("{0}")]
    Invalid(String),
    /// The file could not be read or written.
    #[error("{0}")]
    Unsaved(String),
}

/// A base app that exits sooner than this after its start is restarted later each time.
pub const BASE_QUICK_EXIT: Duration = Duration::from_secs(10);

/// The host.
pub struct Host {
    /// The configuration in force; the keys that apply without a restart change when the
    /// console saves the config file ([`Config::apply_live`]).
    config: Mutex<Arc<Config>>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The host's identity (certificate and key).
    pub identity: HostIdentity,
    /// The ports.
    pub ports: Ports,
    /// The app catalog; replaced as a whole when the console edits it.
    catalog: Mutex<Arc<Vec<App>>>,
    /// The config file the console saves to: the one the host read, else the default one
    /// (created on the first save). `None` without a home directory.
    pub config_file: Option<PathBuf>,
    /// Held while the config file is edited, so that two edits do not interleave.
    config_writes: Mutex<()>,
    /// The shared media sockets.
    pub media: streamer::Media,
    /// The sound server that sessions' sinks are made on, if there is one.
    pub sound: Option<streamer::audio::PulseServer>,
    state: Mutex<State>,
    /// The running sessions, at most one per client.
    sessions: Mutex<Vec<GameSession>>,
    next_session: AtomicU64,
    /// The renderer of the newest session's compositor, for `GET /api/status`.
    last_renderer: Mutex<Option<compositor::RendererInfo>>,
    /// Clients whose `/launch` or `/resume` is being handled (see [`Host::begin_launch`]).
    launching: Mutex<std::collections::HashSet<String>>,
    next_app: AtomicU64,
    /// The recent history of each stream, for the console's graphs.
    stats: Mutex<crate::stats::StatsHistory>,
    me: Weak<Host>,
}

/// Takes a sample of every stream each [`crate::stats::INTERVAL`] while the host runs.
pub async fn sample_stats(host: Weak<Host>) {
    let mut tick = tokio::time::interval(crate::stats::INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(host) = host.upgrade() else { return };
        let streaming: Vec<(u64, streamer::StreamStats)> = host
            .lock_sessions()
            .iter()
            .filter_map(|s| Some((s.id, s.stream.as_ref()?.stats())))
            .collect();
        host.stats.lock().unwrap_or_else(|e| e.into_inner()).record(
            Instant::now(),
            SystemTime::now(),
            &streaming,
        );
    }
}

/// What [`Host::new`] builds a host from.
pub struct HostSetup {
    /// The configuration.
    pub config: Config,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The host's identity (certificate and key).
    pub identity: HostIdentity,
    /// The ports.
    pub ports: Ports,
    /// The app catalog.
    pub apps: Vec<App>,
    /// The config file the console saves to.
    pub config_file: Option<PathBuf>,
    /// The shared media sockets.
    pub media: streamer::Media,
    /// The sound server that sessions' sinks are made on, if there is one.
    pub sound: Option<streamer::audio::PulseServer>,
    /// The persistent state (paired clients).
    pub state: State,
}

impl Host {
    /// A host with no session yet.
    pub fn new(setup: HostSetup) -> Arc<Host> {
        Arc::new_cyclic(|me| Host {
            config: Mutex::new(Arc::new(setup.config)),
            data_dir: setup.data_dir,
            identity: setup.identity,
            ports: setup.ports,
            catalog: Mutex::new(Arc::new(setup.apps)),
            config_file: setup.config_file,
            config_writes: Mutex::new(()),
            media: setup.media,
            sound: setup.sound,
            state: Mutex::new(setup.state),
            sessions: Mutex::new(Vec::new()),
            next_session: AtomicU64::new(1),
            last_renderer: Mutex::new(None),
            launching: Mutex::new(Default::default()),
            next_app: AtomicU64::new(1),
            stats: Mutex::new(Default::default()),
            me: me.clone(),
        })
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The app catalog as it is now.
    pub fn apps(&self) -> Arc<Vec<App>> {
        self.catalog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the app catalog: clients see the new one at their next app list; running
    /// sessions keep their apps.
    pub fn replace_catalog(&self, apps: Vec<App>) {
        *self.catalog.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(apps);
        info!("the app catalog was reloaded");
    }

    /// Edits the config file with `edit` (its text in, the new text out), checks the result as
    /// the config loader does, writes it atomically and reloads the app catalog from it.
    pub fn edit_config(
        &self,
        edit: impl FnOnce(&str) -> Result<String, crate::config_edit::EditError>,
    ) -> Result<(), ConfigEditFailure> {
        self.update_config(Some(Box::new(edit)))
    }

    /// Reads the config file again (SIGHUP): the app catalog and the keys that apply to new
    /// sessions take its values.
    pub fn reload_config(&self) -> Result<(), ConfigEditFailure> {
        self.update_config(None)
    }

    #[allow(clippy::type_complexity)]
    fn update_config(
        &self,
        edit: Option<Box<dyn FnOnce(&str) -> Result<String, crate::config_edit::EditError> + '_>>,
    ) -> Result<(), ConfigEditFailure> {
        let _writing = self.config_writes.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.config_file.as_ref().ok_or_else(|| {
            ConfigEditFailure::Unsaved(
                "the host has no config file (no --config and no home directory)".into(),
            )
        })?;
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(ConfigEditFailure::Unsaved(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        let new = match edit {
            Some(edit) => Some(edit(&text).map_err(ConfigEditFailure::Edit)?),
            None => None,
        };
        let checked = new.as_deref().unwrap_or(&text);
        let config = Config::parse(checked, path)
            .map_err(|e| ConfigEditFailure::Invalid(format!("{e:#}")))?;
        let catalog = apps::catalog(&config.apps, self.config().base_app.as_ref())
            .map_err(|e| ConfigEditFailure::Invalid(format!("{e:#}")))?;
        if let Some(new) = &new {
            crate::state::write_atomic(path, new.as_bytes(), 0o644)
                .map_err(|e| ConfigEditFailure::Unsaved(format!("{e:#}")))?;
            info!(file = %path.display(), "the config file was saved");
        }
        {
            let mut current = self.config.lock().unwrap_or_else(|e| e.into_inner());
            let mut next = Config::clone(&current);
            next.apply_live(&config);
            *current = Arc::new(next);
        }
        self.replace_catalog(catalog);
        Ok(())
    }

    /// The box art of app `id`: its configured PNG, else punktfunk's.
    pub fn box_art(&self, id: Option<i32>) -> Vec<u8> {
        let apps = self.apps();
        let image = apps
            .iter()
            .find(|a| Some(a.id) == id)
            .and_then(|a| a.image.as_ref());
        if let Some(path) = image {
            match std::fs::read(path) {
                Ok(png) => return png,
                Err(e) => {
                    warn!(path = %path.display(), %e, "cannot read the box art; sending the default")
                }
            }
        }
        crate::assets::BOX_ART.to_vec()
    }

    /// A copy of the persistent state.
    pub fn state_snapshot(&self) -> State {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The paired client whose certificate is `der`.
    pub fn paired_client(&self, der: &[u8]) -> Option<PairedClient> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .client_by_cert(der)
            .cloned()
    }

    /// Adds a paired client and saves the state.
    pub fn add_paired_client(&self, cert_pem: String, uniqueid: &str) -> anyhow::Result<String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let der = openssl::x509::X509::from_pem(cert_pem.as_bytes())?.to_der()?;
        if let Some(existing) = state.client_by_cert(&der) {
            return Ok(existing.id.clone());
        }
        let id = (1..)
            .map(|n: u32| n.to_string())
            .find(|n| !state.clients.iter().any(|c| &c.id == n))
            .unwrap_or_default();
        let paired_at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut next = state.clone();
        next.clients.push(PairedClient {
            id: id.clone(),
            name: format!("client {id}"),
            cert_pem,
            uniqueid: uniqueid.to_string(),
            paired_at,
            unknown: Default::default(),
        });
        next.save(&self.data_dir)?;
        *state = next;
        info!(client = %id, "client paired");
        Ok(id)
    }

    /// Renames a paired client and saves the state; `Ok(false)` when there is none with that
    /// id.
    pub fn rename_client(&self, id: &str, name: &str) -> anyhow::Result<bool> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = state.clone();
        let Some(client) = next.clients.iter_mut().find(|c| c.id == id) else {
            return Ok(false);
        };
        client.name = name.to_string();
        next.save(&self.data_dir)?;
        *state = next;
        info!(client = %id, %name, "client renamed");
        Ok(true)
    }

    /// Removes a paired client; `Ok(false)` when there is none with that id.
    pub fn unpair(&self, id: &str) -> anyhow::Result<bool> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = state.clone();
        next.clients.retain(|c| c.id != id);
        if next.clients.len() == state.clients.len() {
            return Ok(false);
        }
        next.save(&self.data_dir)?;
        *state = next;
        info!(client = %id, "client unpaired");
        Ok(true)
    }

    /// The last minutes of session `id`'s stream, one sample a second.
    pub fn session_stats(&self, id: u64) -> model::SessionStats {
        model::SessionStats {
            id,
            samples: self
                .stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .samples(id),
        }
    }

    /// The id of the app running in `client`'s session, or 0 (also for no client).
    pub fn current_game(&self, client: Option<&str>) -> i32 {
        let Some(client) = client else { return 0 };
        self.lock_sessions()
            .iter()
            .find(|s| s.client == client)
            .and_then(|s| s.current_app().map(|a| a.id))
            .unwrap_or(0)
    }

    /// The id of `client`'s session, if it has one.
    pub fn session_of(&self, client: &str) -> Option<u64> {
        self.lock_sessions()
            .iter()
            .find(|s| s.client == client)
            .map(|s| s.id)
    }

    /// What `GET /api/status` reports, without the encoder probes.
    pub fn status(&self) -> model::Status {
        model::Status {
            name: self.config().host.name.clone(),
            uniqueid: self.state_snapshot().uniqueid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ports: model::PortsReply {
                http: self.ports.http,
                https: self.ports.https,
                rtsp: self.ports.rtsp,
            },
            sessions: self.sessions(),
            renderer: self.renderer(),
            video_encoders: None,
            base_app: self.apps().iter().find(|a| a.base).map(|a| a.name.clone()),
        }
    }

    /// The paired clients, oldest first.
    pub fn clients(&self) -> Vec<model::Client> {
        self.state_snapshot()
            .clients
            .iter()
            .map(model::Client::from)
            .collect()
    }

    /// The configured renderer and the renderer and device of the newest session.
    fn renderer(&self) -> model::Renderer {
        let last = self
            .last_renderer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        model::Renderer {
            setting: self.config().video.renderer.name().to_string(),
            render_node: self.config().video.render_node.clone(),
            in_use: last.map(|r| model::RendererInUse {
                name: r.name.to_string(),
                device: r.device,
                description: r.description,
                fallback: r.fallback,
            }),
        }
    }

    /// The running sessions.
    pub fn sessions(&self) -> Vec<model::Session> {
        let sessions = self.lock_sessions();
        sessions
            .iter()
            .map(|s| {
                let stats = s.stream.as_ref().map(|st| st.stats());
                let renderer = s.compositor.renderer();
                model::Session {
                    id: s.id,
                    client: s.client.clone(),
                    app: s.current_app().map(|a| a.name.clone()),
                    width: s.mode.width,
                    height: s.mode.height,
                    fps: s.mode.refresh_mhz / 1000,
                    streaming: stats.is_some(),
                    fec_percent: stats.map(|st| st.fec_percent),
                    video_bitrate_kbps: stats.map(|st| st.video_bitrate_kbps),
                    video_codec: stats.map(|st| st.video_codec.to_string()),
                    chroma: stats.map(|st| if st.chroma_444 { "4:4:4" } else { "4:2:0" }.into()),
                    bit_depth: stats.map(|st| st.bit_depth),
                    video_encoder: stats.and_then(|st| st.video_encoder).map(str::to_string),
                    renderer: renderer.name.to_string(),
                    render_device: renderer.device.clone(),
                }
            })
            .collect()
    }

    /// Whether session `id` runs.
    pub fn has_session(&self, id: u64) -> bool {
        self.lock_sessions().iter().any(|s| s.id == id)
    }

    /// Marks `client` as launching until the guard drops; `None` while another launch of the
    /// same client is under way (two requests at once would otherwise both find no session
    /// and both start one).
    pub fn begin_launch(self: &Arc<Self>, client: &str) -> Option<LaunchGuard> {
        let mut launching = self.launching.lock().unwrap_or_else(|e| e.into_inner());
        launching.insert(client.to_string()).then(|| LaunchGuard {
            host: self.clone(),
            client: client.to_string(),
        })
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, Vec<GameSession>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session for `client` in a new compositor at `mode`: the base app when the host
    /// has one, and `app` on top of it unless `app` is the base app. Returns the session's id.
    /// The caller checked that `client` has no session.
    /// `audio_channels` (from `surroundAudioInfo`) sets the layout of the session's sink.
    pub fn start_session(
        &self,
        client: &str,
        app: &App,
        mode: compositor::Mode,
        mut vars: prep::ClientVars,
        audio_channels: u32,
    ) -> anyhow::Result<u64> {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let opts = compositor::CompositorOptions {
            mode,
            keymap: compositor::KeymapOptions {
                layout: self.config().input.keymap.clone(),
                variant: self.config().input.keymap_variant.clone(),
                ..Default::default()
            },
            // A fullscreen game's own buffer goes to the encoder without a copy.
            client_buffer_frames: true,
            // On a GPU, frames stay there until the stream converts them to Y'CbCr (there
            // too); without one this changes nothing.
            gpu_frames: true,
            renderer: crate::config::renderer(self.config().video.renderer),
            render_node: self.config().video.render_node(),
            scaling: crate::config::scaling(self.config().video.scaling),
            scale_filter: crate::config::scale_filter(self.config().video.scale_filter),
            ..compositor::CompositorOptions::new(mode)
        };
        let comp = compositor::Compositor::spawn(opts).context("cannot start the compositor")?;
        *self.last_renderer.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(comp.renderer().clone());
        let display = apps::Display {
            wayland_display: comp.socket_name().to_string(),
            runtime_dir: comp.runtime_dir().to_path_buf(),
            x11_display: comp.x11_display(),
        };
        // The apps' sound goes to the session's sink, unless their config says otherwise.
        let sink = crate::sound::session_sink(self.sound.as_ref(), audio_channels);
        for (key, value) in sink.iter().flat_map(|s| s.app_env()) {
            vars.extra.entry(key.to_string()).or_insert(value);
        }
        let mut session = GameSession {
            id,
            client: client.to_string(),
            mode,
            vars,
            display,
            stream: None,
            stream_serial: 0,
            app: None,
            base: None,
            compositor: Arc::new(comp),
            sink,
        };
        if let Some(base) = self.apps().iter().find(|a| a.base) {
            session.base = Some(self.start_base(id, base, &session.display, &session.vars, 0)?);
        }
        if !app.base {
            session.app = Some(self.start_top(id, app, &session.display, &session.vars)?);
        }
        info!(session = id, %client, app = %app.name, ?mode, "session started");
        self.lock_sessions().push(session);
        self.catch_early_exits(id);
        Ok(id)
    }

    /// An app that exited before its session held it was not noticed by its exit handler:
    /// handle that now.
    fn catch_early_exits(&self, id: u64) {
        let (top, base) = {
            let sessions = self.lock_sessions();
            let Some(s) = sessions.iter().find(|s| s.id == id) else {
                return;
            };
            (
                s.app
                    .as_ref()
                    .filter(|t| t.running.has_exited())
                    .map(|t| t.serial),
                s.base
                    .as_ref()
                    .filter(|b| b.running.has_exited())
                    .map(|b| b.serial),
            )
        };
        if let Some(serial) = top {
            self.app_exited(id, serial);
        }
        if let Some(serial) = base {
            self.base_exited(id, serial);
        }
    }

    /// Whether the host has a base app.
    pub fn has_base_app(&self) -> bool {
        self.apps().iter().any(|a| a.base)
    }

    /// Replaces the catalog app of session `id` with `app`: the old one is stopped and its
    /// prep undone, then `app`'s prep runs and it starts on top of the base app. With `app`
    /// the base app itself, the base app shows again.
    pub fn launch_in_session(&self, id: u64, app: &App) -> anyhow::Result<()> {
        let (old, display, vars) = {
            let mut sessions = self.lock_sessions();
            let s = sessions
                .iter_mut()
                .find(|s| s.id == id)
                .context("the session has ended")?;
            (s.app.take(), s.display.clone(), s.vars.clone())
        };
        if let Some(old) = old {
            info!(session = id, app = %old.running.app.name, "stopping the app for another");
            stop_top(old);
        }
        if app.base {
            return Ok(());
        }
        let top = self.start_top(id, app, &display, &vars)?;
        let mut sessions = self.lock_sessions();
        match sessions.iter_mut().find(|s| s.id == id) {
            Some(s) => {
                info!(session = id, app = %app.name, "app launched in the session");
                s.app = Some(top);
                drop(sessions);
                self.catch_early_exits(id);
                Ok(())
            }
            None => {
                drop(sessions);
                stop_top(top);
                anyhow::bail!("the session ended while the app started")
            }
        }
    }

    /// `app` with the client's variables added to its environment (its own `env` wins).
    fn app_with_env(app: &App, vars: &prep::ClientVars) -> App {
        let mut app = app.clone();
        for (key, value) in vars.env(&app) {
            app.env.entry(key).or_insert(value);
        }
        app
    }

    /// Runs `app`'s prep and starts it in session `id`.
    fn start_top(
        &self,
        id: u64,
        app: &App,
        display: &apps::Display,
        vars: &prep::ClientVars,
    ) -> anyhow::Result<TopApp> {
        let app = Self::app_with_env(app, vars);
        let logs = self.data_dir.join("logs");
        // Dropped on failure, which undoes the prep.
        let undo = prep::run(&app, display, &logs)?;
        let serial = self.next_app.fetch_add(1, Ordering::Relaxed);
        let me = self.me.clone();
        let running = RunningApp::start(&app, display, &logs, move |_status| {
            if let Some(host) = me.upgrade() {
                host.app_exited(id, serial);
            }
        })?;
        Ok(TopApp {
            running,
            undo,
            serial,
        })
    }

    /// Starts the base app in session `id`.
    fn start_base(
        &self,
        id: u64,
        app: &App,
        display: &apps::Display,
        vars: &prep::ClientVars,
        quick_exits: u32,
    ) -> anyhow::Result<BaseApp> {
        let app = Self::app_with_env(app, vars);
        let serial = self.next_app.fetch_add(1, Ordering::Relaxed);
        let me = self.me.clone();
        let running =
            RunningApp::start(&app, display, &self.data_dir.join("logs"), move |_status| {
                if let Some(host) = me.upgrade() {
                    host.base_exited(id, serial);
                }
            })?;
        Ok(BaseApp {
            running,
            serial,
            started: Instant::now(),
            quick_exits,
        })
    }

    /// The catalog app of session `id` exited by itself: its prep is undone; with a base app
    /// the session goes on showing it, without one the session ends and the client is told.
    fn app_exited(&self, id: u64, serial: u64) {
        let (top, has_base) = {
            let mut sessions = self.lock_sessions();
            let Some(s) = sessions.iter_mut().find(|s| s.id == id) else {
                return;
            };
            if s.app.as_ref().is_none_or(|t| t.serial != serial) {
                return;
            }
            (s.app.take(), s.base.is_some())
        };
        if has_base {
            info!(session = id, "the app exited; the base app shows again");
        } else {
            info!(session = id, "the app exited; ending the session");
        }
        if let Some(top) = top {
            stop_top(top);
        }
        if !has_base {
            self.stop_session(id, true);
        }
    }

    /// The base app of session `id` exited: start it again after a pause that grows while it
    /// keeps exiting right after its start.
    fn base_exited(&self, id: u64, serial: u64) {
        let quick_exits = {
            let sessions = self.lock_sessions();
            let Some(b) = sessions
                .iter()
                .find(|s| s.id == id)
                .and_then(|s| s.base.as_ref())
            else {
                return;
            };
            if b.serial != serial {
                return;
            }
            if b.started.elapsed() < BASE_QUICK_EXIT {
                b.quick_exits + 1
            } else {
                0
            }
        };
        let delay = Duration::from_secs(1 << quick_exits.min(5)).min(Duration::from_secs(30));
        warn!(session = id, ?delay, "the base app exited; restarting it");
        let me = self.me.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            if let Some(host) = me.upgrade() {
                host.restart_base(id, serial, quick_exits);
            }
        });
    }

    fn restart_base(&self, id: u64, old_serial: u64, quick_exits: u32) {
        let (display, vars) = {
            let sessions = self.lock_sessions();
            match sessions.iter().find(|s| s.id == id) {
                Some(s) if s.base.as_ref().is_some_and(|b| b.serial == old_serial) => {
                    (s.display.clone(), s.vars.clone())
                }
                _ => return,
            }
        };
        let apps = self.apps();
        let Some(app) = apps.iter().find(|a| a.base) else {
            return;
        };
        let base = match self.start_base(id, app, &display, &vars, quick_exits) {
            Ok(b) => b,
            Err(e) => {
                warn!(session = id, err = %format!("{e:#}"), "cannot restart the base app");
                return;
            }
        };
        let mut sessions = self.lock_sessions();
        match sessions.iter_mut().find(|s| s.id == id) {
            Some(s) if s.base.as_ref().is_some_and(|b| b.serial == old_serial) => {
                info!(session = id, "base app restarted");
                let old = s.base.replace(base);
                drop(sessions);
                drop(old);
                self.catch_early_exits(id);
            }
            _ => {
                drop(sessions);
                base.running.stop(Duration::from_secs(3));
            }
        }
    }

    /// Ends session `id`: its client is told (gracefully when `tell_client`), the stream
    /// stops, the app's process group is stopped and the compositor shuts down. Other sessions
    /// are not touched.
    pub fn stop_session(&self, id: u64, tell_client: bool) {
        let session = {
            let mut sessions = self.lock_sessions();
            sessions
                .iter()
                .position(|s| s.id == id)
                .map(|i| sessions.remove(i))
        };
        if let Some(s) = session {
            finish_session(s, tell_client);
        }
    }

    /// Ends every session at once, telling each client (SIGTERM, SIGINT).
    pub fn stop_all_sessions(&self) {
        let sessions = std::mem::take(&mut *self.lock_sessions());
        std::thread::scope(|scope| {
            for s in sessions {
                scope.spawn(move || finish_session(s, true));
            }
        });
    }

    /// Starts (or restarts) the stream of session `id` at `mode`: the compositor's output takes
    /// the mode, then `start` starts the protocol's stream on the session's compositor and
    /// sound, replacing the stream the session had. Returns the stream's serial number, for
    /// [`Host::detach_stream`].
    pub fn attach_stream(
        &self,
        id: u64,
        mode: compositor::Mode,
        start: impl FnOnce(StreamSeat) -> anyhow::Result<Box<dyn streamer::StreamHandle>>,
    ) -> anyhow::Result<u64> {
        // A stream that ends by itself locks the sessions to report it: stop the old one
        // without holding the lock.
        let old = self
            .lock_sessions()
            .iter_mut()
            .find(|s| s.id == id)
            .and_then(|s| s.stream.take());
        if let Some(old) = old {
            old.stop();
        }
        let mut sessions = self.lock_sessions();
        let s = sessions
            .iter_mut()
            .find(|s| s.id == id)
            .context("the session of this launch has ended")?;
        s.compositor.set_mode(mode);
        s.mode = mode;
        let me = self.me.clone();
        let seat = StreamSeat {
            compositor: s.compositor.clone(),
            audio: s.sink.as_ref().map(|sink| sink.source()),
            on_end: Box::new(move |reason| {
                if let Some(host) = me.upgrade() {
                    host.stream_ended(id, reason);
                }
            }),
        };
        s.stream = Some(start(seat)?);
        s.stream_serial = self.next_app.fetch_add(1, Ordering::Relaxed);
        Ok(s.stream_serial)
    }

    /// Stops session `id`'s stream if it is still the one [`Host::attach_stream`] numbered
    /// `serial` (its client went away); the session keeps running for a resume.
    pub fn detach_stream(&self, id: u64, serial: u64) {
        let stream = self
            .lock_sessions()
            .iter_mut()
            .find(|s| s.id == id && s.stream_serial == serial)
            .and_then(|s| s.stream.take());
        if let Some(stream) = stream {
            stream.stop();
            info!(
                session = id,
                "the stream stopped; the app keeps running for a resume"
            );
        }
    }

    /// Whether session `id` runs the stream [`Host::attach_stream`] numbered `serial`.
    pub fn stream_is(&self, id: u64, serial: u64) -> bool {
        self.lock_sessions()
            .iter()
            .any(|s| s.id == id && s.stream_serial == serial && s.stream.is_some())
    }

    /// Changes the output of session `id` to `mode` (a client's mode change mid-stream);
    /// `false` when there is no such session.
    pub fn set_session_mode(&self, id: u64, mode: compositor::Mode) -> bool {
        let mut sessions = self.lock_sessions();
        let Some(s) = sessions.iter_mut().find(|s| s.id == id) else {
            return false;
        };
        s.compositor.set_mode(mode);
        s.mode = mode;
        s.vars.width = mode.width;
        s.vars.height = mode.height;
        s.vars.fps = mode.refresh_mhz / 1000;
        true
    }

    fn stream_ended(&self, id: u64, reason: streamer::EndReason) {
        warn!(
            session = id,
            ?reason,
            "the stream ended; the app keeps running for a resume"
        );
        let stream = self
            .lock_sessions()
            .iter_mut()
            .find(|s| s.id == id)
            .and_then(|s| s.stream.take());
        if let Some(stream) = stream {
            // Stopping joins threads; never from one of the stream's own threads.
            std::thread::spawn(move || stream.stop());
        }
    }

    /// Logs an internal error that was recovered from.
    pub fn bug(&self, what: &str, err: &anyhow::Error) {
        error!(%what, err = %format!("{err:#}"), "internal error");
    }
}

impl GameSession {
    /// The app the client sees: the catalog app, else the base app.
    pub fn current_app(&self) -> Option<&App> {
        match (&self.app, &self.base) {
            (Some(t), _) if !t.running.has_exited() => Some(&t.running.app),
            (_, Some(b)) => Some(&b.running.app),
            _ => None,
        }
    }
}

/// Stops a catalog app's process group and undoes its prep.
fn stop_top(mut top: TopApp) {
    top.running.stop(Duration::from_secs(3));
    top.undo.run();
}

/// Tells the client (when `tell_client`), stops the stream, the apps and the compositor.
fn finish_session(mut s: GameSession, tell_client: bool) {
    if let Some(stream) = s.stream.take() {
        if tell_client {
            stream.end_session();
        }
        stream.stop();
    }
    if let Some(top) = s.app.take() {
        stop_top(top);
    }
    if let Some(base) = s.base.take() {
        base.running.stop(Duration::from_secs(3));
    }
    info!(session = s.id, client = %s.client, "session ended");
}
