//! The host configuration (TOML).
//!
//! Every key is optional; `assets/config.toml` documents them all with their defaults. A bad
//! file is reported with its path, the line and column, the key and what is allowed; problems
//! found after parsing (an app without a command, two apps with one name) are all reported in
//! one go rather than one per run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use toml::Spanned;

/// Default base port, as Sunshine and GameStream use it.
pub const DEFAULT_PORT_BASE: u16 = 47989;

/// The base ports whose whole family (base-5 to base+21) fits in 1..=65535.
pub const PORT_BASES: std::ops::RangeInclusive<u16> = 6..=65535 - 21;

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[host]`
    pub host: HostConfig,
    /// `[video]`
    pub video: VideoConfig,
    /// `[input]`
    pub input: InputConfig,
    /// `[console]`
    pub console: ConsoleConfig,
    /// `[native]`
    pub native: NativeConfig,
    /// `[base_app]`: an app that runs under every session's catalog apps (Steam, a desktop).
    pub base_app: Option<BaseAppConfig>,
    /// `[[apps]]`: the catalog. Empty means the built-in test pattern (unless there is a base
    /// app).
    pub apps: Vec<AppConfig>,
}

/// `[host]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    /// The name clients show for this host.
    pub name: String,
    /// The base port: HTTP. HTTPS is base-5, management base+1, video base+9, control base+10,
    /// audio base+11, RTSP base+21.
    pub port_base: u16,
    /// The address the public servers listen on.
    pub bind: String,
    /// Whether to advertise the host on the local network (mDNS, `_nvstream._tcp`), so that
    /// Moonlight lists it without an address being typed in.
    pub mdns: bool,
    /// With `bind` the IPv4 wildcard: "both" listens for IPv4 and IPv6 clients on every port,
    /// "ipv4" for IPv4 clients only.
    pub address_family: AddressFamily,
}

/// `host.address_family`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    /// IPv4 and IPv6.
    #[default]
    Both,
    /// IPv4 only.
    Ipv4,
}

/// The spellings `video.encoder` takes, in the order the configuration documents them (the
/// streamer's `EncoderPreference::ALL`; a test in the host checks that the two agree).
pub const ENCODER_NAMES: [&str; 4] = ["auto", "nvenc", "vaapi", "software"];

/// `[native]`: punktfunk/1, the native protocol.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NativeConfig {
    /// Whether the host serves punktfunk/1.
    pub enabled: bool,
    /// Its UDP (QUIC) port; 0 is the base port + 30.
    pub port: u16,
}

impl Default for NativeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            port: 0,
        }
    }
}

impl NativeConfig {
    /// The QUIC port, with `port_base` the host's base port.
    pub fn port(&self, port_base: u16) -> u16 {
        if self.port == 0 {
            port_base + 30
        } else {
            self.port
        }
    }
}

/// `[console]`: the web console.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Whether the host serves the console.
    pub enabled: bool,
    /// Its HTTPS port; 0 is the base port + 2.
    pub port: u16,
    /// The address it listens on; empty is `host.bind`.
    pub listen: String,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            port: 0,
            listen: String::new(),
        }
    }
}

impl ConsoleConfig {
    /// The address the console listens on: `listen`, or `host_listen` (the address of the
    /// host's other ports) when it is empty.
    pub fn listen_address(
        &self,
        host_listen: std::net::IpAddr,
    ) -> anyhow::Result<std::net::IpAddr> {
        match self.listen.as_str() {
            "" => Ok(host_listen),
            a => a
                .parse()
                .with_context(|| format!("console.listen {a:?} is not an IP address")),
        }
    }

    /// The port the console listens on, with `port_base` the host's base port.
    pub fn port(&self, port_base: u16) -> u16 {
        if self.port == 0 {
            port_base + 2
        } else {
            self.port
        }
    }
}

/// `[video]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VideoConfig {
    /// Share of FEC parity packets per frame, in percent (0..=100; 0 turns FEC off).
    pub fec_percent: u8,
    /// Which video encoder to use: "auto" (NVENC, else VAAPI, else software), "nvenc", "vaapi"
    /// or "software". `None` is "auto". Checked after parsing, so a bad value is reported with
    /// the other problems.
    pub encoder: Option<Spanned<String>>,
    /// The render node VAAPI opens (default: the one the compositor renders on where VAAPI
    /// encodes there, else the first one in `/dev/dri`).
    pub vaapi_device: Option<PathBuf>,
    /// What renders each session's output: "auto" (GLES on the first hardware render node that
    /// works, else pixman), "gles" (on Mesa's software device when there is no GPU) or "pixman".
    pub renderer: RendererSetting,
    /// The device GLES renders on: "auto" (the first that works) or a render node's path.
    pub render_node: String,
    /// How a game window that keeps its own size is scaled to the stream: "fit", "stretch",
    /// "fill" or "integer".
    pub scaling: ScalingSetting,
    /// How its pixels are sampled when scaled: "linear" or "nearest".
    pub scale_filter: ScaleFilterSetting,
}

/// `video.scaling`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScalingSetting {
    /// As large as fits, centred, black bars.
    #[default]
    Fit,
    /// The whole picture, aspect ratio ignored.
    Stretch,
    /// Covers the whole picture, cut off at two sides.
    Fill,
    /// Whole multiples of the window's size only.
    Integer,
}

/// `video.scale_filter`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScaleFilterSetting {
    /// Bilinear.
    #[default]
    Linear,
    /// Nearest neighbour.
    Nearest,
}

/// `video.renderer`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RendererSetting {
    /// GLES on a hardware render node, else pixman.
    #[default]
    Auto,
    /// GLES, on Mesa's software device without a GPU.
    Gles,
    /// pixman on the CPU.
    Pixman,
}

impl RendererSetting {
    /// The name as the config file spells it.
    pub fn name(self) -> &'static str {
        match self {
            RendererSetting::Auto => "auto",
            RendererSetting::Gles => "gles",
            RendererSetting::Pixman => "pixman",
        }
    }
}

impl VideoConfig {
    /// The configured render node; `None` for "auto".
    pub fn render_node(&self) -> Option<PathBuf> {
        (self.render_node != "auto").then(|| PathBuf::from(&self.render_node))
    }
}

/// `[input]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// XKB layout of the session keyboard, e.g. "us" or "de".
    pub keymap: String,
    /// XKB variant, e.g. "nodeadkeys".
    pub keymap_variant: String,
    /// What a client's PlayStation controller becomes: "dualsense" or "dualshock4".
    pub playstation_pad: PlaystationPad,
}

/// `input.playstation_pad`: the virtual pad a client's PlayStation controller becomes.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PlaystationPad {
    /// A DualSense (`hid-playstation`'s names, ids and ranges).
    #[default]
    DualSense,
    /// A DualShock 4, for games that only know that one.
    DualShock4,
}

/// One `[[apps]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The title clients show.
    pub name: String,
    /// The program and its arguments.
    pub cmd: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The directory the app and its prep commands start in (default: the host's).
    #[serde(default, alias = "working-dir")]
    pub working_dir: Option<Spanned<PathBuf>>,
    /// A PNG shown as the app's box art (default: punktfunk's).
    #[serde(default)]
    pub image: Option<Spanned<PathBuf>>,
    /// Commands run before the app starts, in order; their `undo`s run in reverse order when
    /// the app ends.
    #[serde(default)]
    pub prep: Vec<Spanned<PrepConfig>>,
}

/// One `prep` entry of an app.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrepConfig {
    /// Run before the app starts: the program and its arguments.
    #[serde(default, rename = "do")]
    pub run: Vec<String>,
    /// Run after the app ended: the program and its arguments.
    #[serde(default)]
    pub undo: Vec<String>,
}

/// `[base_app]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BaseAppConfig {
    /// The title of the app-list entry that streams the base app alone.
    #[serde(default = "default_base_name")]
    pub name: String,
    /// The program and its arguments.
    pub cmd: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The directory it starts in (default: the host's).
    #[serde(default, alias = "working-dir")]
    pub working_dir: Option<Spanned<PathBuf>>,
}

/// The base app's title when `[base_app]` has no `name`.
pub const DEFAULT_BASE_NAME: &str = "Desktop";

fn default_base_name() -> String {
    DEFAULT_BASE_NAME.into()
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            name: hostname().unwrap_or_else(|| "punktfunk".into()),
            port_base: DEFAULT_PORT_BASE,
            bind: "0.0.0.0".into(),
            mdns: true,
            address_family: AddressFamily::Both,
        }
    }
}

impl Default for VideoConfig {
    fn default() -> Self {
        Self {
            fec_percent: 20,
            encoder: None,
            vaapi_device: None,
            renderer: RendererSetting::Auto,
            render_node: "auto".into(),
            scaling: ScalingSetting::Fit,
            scale_filter: ScaleFilterSetting::Linear,
        }
    }
}

impl Default for InputConfig {
    fn default() -> Self {
        Self {
            keymap: "us".into(),
            keymap_variant: String::new(),
            playstation_pad: PlaystationPad::default(),
        }
    }
}

/// The keys that apply without a restart: to the sessions that start after a save. The rest
/// (ports, addresses, the renderer, the console, the base app) need one.
pub const LIVE_KEYS: &[&str] = &[
    "video.fec_percent",
    "video.encoder",
    "video.vaapi_device",
    "video.scaling",
    "video.scale_filter",
    "input.keymap",
    "input.keymap_variant",
    "input.playstation_pad",
];

impl Config {
    /// Takes the keys of [`LIVE_KEYS`] (and the app catalog) from `saved`, a config just read
    /// from the file; everything else stays as the host started with it.
    pub fn apply_live(&mut self, saved: &Config) {
        self.video.fec_percent = saved.video.fec_percent;
        self.video.encoder = saved.video.encoder.clone();
        self.video.vaapi_device = saved.video.vaapi_device.clone();
        self.video.scaling = saved.video.scaling;
        self.video.scale_filter = saved.video.scale_filter;
        self.input = saved.input.clone();
        self.apps = saved.apps.clone();
    }

    /// Reads and checks a config file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses and checks config text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let mut msg = format!("invalid config {}", path.display());
            if let Some(span) = e.span() {
                let (line, col) = line_col(text, span.start);
                let _ = write!(msg, ", line {line}, column {col}");
            }
            let _ = write!(msg, ": {}", e.message());
            anyhow::anyhow!(msg)
        })?;
        let problems = config.problems(text);
        if !problems.is_empty() {
            let mut msg = format!("invalid config {}:", path.display());
            for p in problems {
                let _ = write!(msg, "\n  - {p}");
            }
            anyhow::bail!(msg);
        }
        Ok(config)
    }

    fn problems(&self, text: &str) -> Vec<String> {
        let at = |span: std::ops::Range<usize>| format!("line {}", line_col(text, span.start).0);
        // "line N: " where the key is written as `key = ...` under its table, else nothing.
        let line = |table: &str, index: usize, key: &str| {
            key_line(text, table, index, key).map_or(String::new(), |n| format!("line {n}: "))
        };
        let mut out = Vec::new();
        if self.video.fec_percent > 100 {
            out.push(format!(
                "{}video.fec_percent is {}; allowed: 0 to 100",
                line("video", 0, "fec_percent"),
                self.video.fec_percent
            ));
        }
        if let Some(encoder) = &self.video.encoder {
            if !ENCODER_NAMES.contains(&encoder.get_ref().as_str()) {
                let allowed: Vec<String> =
                    ENCODER_NAMES.iter().map(|p| format!("\"{p}\"")).collect();
                out.push(format!(
                    "{}: video.encoder is \"{}\"; allowed: {}",
                    at(encoder.span()),
                    encoder.get_ref(),
                    allowed.join(", ")
                ));
            }
        }
        if self
            .video
            .vaapi_device
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            out.push(
                "video.vaapi_device is empty; allowed: the path of a render node such as \"/dev/dri/renderD128\""
                    .into(),
            );
        }
        if self.video.render_node != "auto" && !self.video.render_node.starts_with('/') {
            out.push(format!(
                "{}video.render_node is \"{}\"; allowed: \"auto\" or the path of a render node such as \"/dev/dri/renderD128\"",
                line("video", 0, "render_node"),
                self.video.render_node
            ));
        }
        if !PORT_BASES.contains(&self.host.port_base) {
            out.push(format!(
                "{}host.port_base is {}; allowed: {} to {} (ports from base-5 to base+21 are used)",
                line("host", 0, "port_base"),
                self.host.port_base,
                PORT_BASES.start(),
                PORT_BASES.end()
            ));
        }
        if !self.console.listen.is_empty()
            && self.console.listen.parse::<std::net::IpAddr>().is_err()
        {
            out.push(format!(
                "{}console.listen is \"{}\"; allowed: an IP address such as \"0.0.0.0\" or \"127.0.0.1\", or \"\" for host.bind",
                line("console", 0, "listen"),
                self.console.listen
            ));
        }
        if self.input.keymap.is_empty() {
            out.push(format!(
                "{}input.keymap is empty; allowed: an XKB layout name such as \"us\"",
                line("input", 0, "keymap")
            ));
        }
        let mut seen = BTreeMap::new();
        for (i, app) in self.apps.iter().enumerate() {
            if app.name.trim().is_empty() {
                out.push(format!(
                    "{}apps[{i}].name is empty; allowed: any non-empty title",
                    line("apps", i, "name")
                ));
            }
            if app.cmd.is_empty() || app.cmd[0].is_empty() {
                out.push(format!(
                    "{}apps[{i}].cmd is empty; allowed: a list with the program first, e.g. [\"foot\"]",
                    line("apps", i, "cmd")
                ));
            }
            if let Some(prev) = seen.insert(app.name.clone(), i) {
                out.push(format!(
                    "{}apps[{i}].name \"{}\" is already used by apps[{prev}]; allowed: unique names",
                    line("apps", i, "name"),
                    app.name
                ));
            }
            if let Some(dir) = &app.working_dir {
                out.extend(dir_problem(
                    dir,
                    &format!("apps[{i}].working_dir"),
                    at(dir.span()),
                ));
            }
            if let Some(image) = &app.image {
                if !image.get_ref().is_file() {
                    out.push(format!(
                        "{}: apps[{i}].image {} is not a file; allowed: the path of a PNG",
                        at(image.span()),
                        image.get_ref().display()
                    ));
                }
            }
            for (j, prep) in app.prep.iter().enumerate() {
                let p = prep.get_ref();
                if p.run.is_empty() && p.undo.is_empty() {
                    out.push(format!(
                        "{}: apps[{i}].prep[{j}] has neither do nor undo; allowed: {{ do = [\"program\", ...], undo = [\"program\", ...] }}, either may be left out",
                        at(prep.span())
                    ));
                }
                for (key, cmd) in [("do", &p.run), ("undo", &p.undo)] {
                    if cmd.first().is_some_and(|c| c.is_empty()) {
                        out.push(format!(
                            "{}: apps[{i}].prep[{j}].{key} starts with an empty program; allowed: a list with the program first",
                            at(prep.span())
                        ));
                    }
                }
            }
        }
        if let Some(base) = &self.base_app {
            if base.name.trim().is_empty() {
                out.push(format!(
                    "{}base_app.name is empty; allowed: any non-empty title",
                    line("base_app", 0, "name")
                ));
            }
            if base.cmd.first().is_none_or(|c| c.is_empty()) {
                out.push(format!(
                    "{}base_app.cmd is empty; allowed: a list with the program first, e.g. [\"steam\", \"-gamepadui\"]",
                    line("base_app", 0, "cmd")
                ));
            }
            if let Some(prev) = seen.get(&base.name) {
                out.push(format!(
                    "{}base_app.name \"{}\" is already used by apps[{prev}]; allowed: unique names",
                    line("base_app", 0, "name"),
                    base.name
                ));
            }
            if let Some(dir) = &base.working_dir {
                out.extend(dir_problem(dir, "base_app.working_dir", at(dir.span())));
            }
        }
        out
    }
}

/// Where the host looks for its config without `--config`: `$XDG_CONFIG_HOME/punktfunk/config.toml`,
/// or `~/.config/punktfunk/config.toml`; `None` without either variable.
pub fn default_config_path() -> Option<PathBuf> {
    let dir = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(dir.join("punktfunk/config.toml"))
}

/// Where `punktfunk` keeps its state when `--data-dir` is not given.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("punktfunk");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(h).join(".local/state/punktfunk");
    }
    PathBuf::from("/var/lib/punktfunk")
}

/// The line of `key = ...` in the `index`th `[table]` or `[[table]]` of `text` (1-based), if it
/// is written that way (not inline or dotted).
fn key_line(text: &str, table: &str, index: usize, key: &str) -> Option<usize> {
    let mut current: Option<(&str, usize)> = None;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (n, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim();
            let count = counts.entry(name).or_insert(0);
            current = Some((name, *count));
            *count += 1;
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.split(']').next()) {
            current = Some((name.trim(), 0));
        } else if current == Some((table, index)) {
            let rest = l.strip_prefix(key).map(str::trim_start);
            if rest.is_some_and(|r| r.starts_with('=')) {
                return Some(n + 1);
            }
        }
    }
    None
}

fn dir_problem(dir: &Spanned<PathBuf>, key: &str, at: String) -> Option<String> {
    (!dir.get_ref().is_dir()).then(|| {
        format!(
            "{at}: {key} {} is not a directory; allowed: an existing directory",
            dir.get_ref().display()
        )
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Config> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_config_is_the_default() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn the_shipped_config_parses_and_equals_the_defaults_except_the_catalog() {
        let text = include_str!("../../assets/config.toml");
        let parsed = parse(text).unwrap();
        let mut expected = Config::default();
        expected.host.name = parsed.host.name.clone();
        assert_eq!(parsed.video.fec_percent, expected.video.fec_percent);
        let encoder = |c: &Config| {
            c.video
                .encoder
                .as_ref()
                .map_or("auto".to_string(), |e| e.get_ref().clone())
        };
        assert_eq!(encoder(&parsed), encoder(&expected));
        assert_eq!(parsed.video.vaapi_device, expected.video.vaapi_device);
        assert_eq!(parsed.input, expected.input);
        assert_eq!(parsed.host.port_base, expected.host.port_base);
        assert_eq!(parsed.host.mdns, expected.host.mdns);
        assert_eq!(parsed.console, expected.console);
        assert_eq!(parsed.host.address_family, expected.host.address_family);
    }

    #[test]
    fn the_console_port_follows_the_base_unless_set() {
        let c = parse("").unwrap().console;
        assert!(c.enabled);
        assert_eq!(c.port(47989), 47991);
        let c = parse("[console]\nport = 8443\nlisten = \"127.0.0.1\"\n")
            .unwrap()
            .console;
        assert_eq!(c.port(47989), 8443);
        let err = parse("[console]\nlisten = \"lan\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2: console.listen is \"lan\""), "{err}");
    }

    #[test]
    fn mdns_can_be_turned_off_and_wants_a_boolean() {
        assert!(Config::default().host.mdns);
        assert!(!parse("[host]\nmdns = false\n").unwrap().host.mdns);
        let err = parse("[host]\nmdns = \"no\"\n").unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("bool"), "{err}");
    }

    #[test]
    fn apps_with_env() {
        let c = parse(
            "[[apps]]\nname = \"Foot\"\ncmd = [\"foot\", \"-e\", \"sh\"]\nenv = { A = \"1\" }\n",
        )
        .unwrap();
        assert_eq!(c.apps[0].cmd, ["foot", "-e", "sh"]);
        assert_eq!(c.apps[0].env["A"], "1");
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = parse("[host]\nname = \"x\"\nprot_base = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("test.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("prot_base"), "{err}");
        assert!(err.contains("port_base"), "lists the allowed keys: {err}");
    }

    #[test]
    fn a_bad_renderer_or_render_node_names_line_and_the_allowed_values() {
        let err = parse("[video]\nrenderer = \"vulkan\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("`auto`, `gles`, `pixman`"), "{err}");
        let err = parse("[video]\nfec_percent = 10\nrender_node = \"renderD128\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "line 3: video.render_node is \"renderD128\"; allowed: \"auto\" or the path"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_bad_encoder_names_file_line_key_and_the_allowed_values() {
        let err = parse("[video]\nfec_percent = 10\nencoder = \"cuda\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("test.toml"), "{err}");
        assert!(err.contains("line 3: video.encoder is \"cuda\""), "{err}");
        assert!(
            err.contains("allowed: \"auto\", \"nvenc\", \"vaapi\", \"software\""),
            "{err}"
        );
        let err = parse("[video]\nencoder = 1\n").unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("string"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_line() {
        let err = parse("[video]\nfec_percent = \"lots\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let err = parse(
            "[video]\nfec_percent = 150\n[[apps]]\nname = \"\"\ncmd = []\n[[apps]]\nname = \"a\"\ncmd = [\"x\"]\n[[apps]]\nname = \"a\"\ncmd = [\"y\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 2: video.fec_percent is 150"), "{err}");
        assert!(err.contains("line 4: apps[0].name is empty"), "{err}");
        assert!(err.contains("line 5: apps[0].cmd is empty"), "{err}");
        assert!(
            err.contains("line 10: apps[2].name \"a\" is already used by apps[1]"),
            "{err}"
        );
    }

    #[test]
    fn prep_working_dir_image_and_base_app() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("art.png");
        std::fs::write(&image, b"png").unwrap();
        let text = format!(
            "[base_app]\ncmd = [\"steam\"]\n[[apps]]\nname = \"G\"\ncmd = [\"g\"]\nworking-dir = \"{d}\"\nimage = \"{i}\"\nprep = [{{ do = [\"a\", \"1\"], undo = [\"b\"] }}, {{ undo = [\"c\"] }}]\n",
            d = dir.path().display(),
            i = image.display()
        );
        let c = parse(&text).unwrap();
        let base = c.base_app.unwrap();
        assert_eq!(
            (base.name.as_str(), base.cmd.as_slice()),
            (DEFAULT_BASE_NAME, &["steam".to_string()][..])
        );
        let app = &c.apps[0];
        assert_eq!(app.working_dir.as_ref().unwrap().get_ref(), dir.path());
        assert_eq!(app.image.as_ref().unwrap().get_ref(), &image);
        assert_eq!(app.prep[0].get_ref().run, ["a", "1"]);
        assert_eq!(app.prep[1].get_ref().undo, ["c"]);
        assert!(app.prep[1].get_ref().run.is_empty());
    }

    #[test]
    fn prep_mistakes_name_the_line_and_key() {
        let err = parse(
            "[[apps]]\nname = \"G\"\ncmd = [\"g\"]\nprep = [{ do = [\"a\"], redo = [\"b\"] }]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("test.toml") && err.contains("line 4"), "{err}");
        assert!(
            err.contains("redo") && err.contains("undo"),
            "names the key and the allowed ones: {err}"
        );
        let err = parse(
            "[[apps]]\nname = \"G\"\ncmd = [\"g\"]\n\nprep = [{}]\nworking_dir = \"/nonexistent/dir\"\nimage = \"/nonexistent.png\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("line 5: apps[0].prep[0] has neither do nor undo"),
            "{err}"
        );
        assert!(
            err.contains("line 6: apps[0].working_dir /nonexistent/dir is not a directory"),
            "{err}"
        );
        assert!(
            err.contains("line 7: apps[0].image /nonexistent.png is not a file"),
            "{err}"
        );
        let err =
            parse("[base_app]\nname = \"A\"\ncmd = []\n[[apps]]\nname = \"A\"\ncmd = [\"a\"]\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("line 3: base_app.cmd is empty"), "{err}");
        assert!(
            err.contains("line 2: base_app.name \"A\" is already used by apps[0]"),
            "{err}"
        );
    }
}
