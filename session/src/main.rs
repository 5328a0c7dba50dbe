//! `punktfunk`: a game-streaming host that is its own Wayland compositor.
//!
//! `serve` runs the host, `session` runs it with a base app; `pair`, `clients` and `unpair`
//! talk to a running host through its management endpoint (loopback, base port + 1), or edit
//! the data directory when none runs; `console-link` and `console-password` set up the web
//! console's password; `testpattern` is the built-in test app.

// A binary: `pub` marks what a module offers to its siblings.
#![allow(unreachable_pub)]

mod apps;
mod assets;
mod boxart;
mod config;
use store::{config_edit, state};
mod gamestream;
mod host;
mod http;
mod logbuf;
mod mdns;
mod mgmt;
mod native;
mod prep;
mod record;
mod serve;
mod settings;
mod sound;
mod stats;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::info;

use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "punktfunk",
    version,
    about = "A game-streaming host that is its own Wayland compositor"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Where the host keeps its identity, paired clients and logs.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The base port (HTTP); the other ports are fixed offsets from it (base-5 to base+21).
    #[arg(long, value_name = "N", value_parser = port_base_arg)]
    port_base: Option<u16>,
}

/// What `serve` and `session` take besides [`Common`].
#[derive(clap::Args, Clone)]
struct HostArgs {
    /// The configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Do not advertise the host on the local network (overrides `[host] mdns`).
    #[arg(long)]
    no_mdns: bool,
    /// What renders the sessions' output (overrides `[video] renderer`).
    #[arg(long, value_enum)]
    renderer: Option<config::RendererSetting>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host.
    Serve {
        #[command(flatten)]
        host: HostArgs,
        #[command(flatten)]
        common: Common,
    },
    /// Run the host as a dedicated session: CMD is the base app (Steam, a desktop) that every
    /// client's session shows, with the catalog apps launched on top of it.
    Session {
        #[command(flatten)]
        host: HostArgs,
        #[command(flatten)]
        common: Common,
        /// The base app: the program and its arguments (replaces `[base_app] cmd`).
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Hand a PIN shown by a Moonlight client to the running host's pending pairing, or with
    /// `--native` arm a punktfunk/1 pairing and print the PIN to type on the native client.
    Pair {
        /// The four digits the Moonlight client shows.
        #[arg(required_unless_present = "native")]
        pin: Option<String>,
        /// The address of the Moonlight client that shows the PIN, when several pair at once.
        #[arg(long, conflicts_with = "native")]
        address: Option<std::net::IpAddr>,
        /// Pair a punktfunk/1 client instead: prints a PIN to type on it, good for one attempt.
        #[arg(long, conflicts_with = "pin")]
        native: bool,
        #[command(flatten)]
        common: Common,
    },
    /// List the paired clients.
    Clients {
        #[command(flatten)]
        common: Common,
    },
    /// Remove a paired client.
    Unpair {
        /// The client's id, as `punktfunk clients` shows it.
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Print the web console's address and, while no password is set, its one-time set-up link.
    ConsoleLink {
        /// The configuration file the host runs with (for `[console]`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Set a new password for the web console (read from standard input); logs every browser
    /// out.
    ConsolePassword {
        #[command(flatten)]
        common: Common,
    },
    /// Run a command in a fresh headless compositor and record what it renders.
    Run {
        /// The output mode, WIDTHxHEIGHT@REFRESH (e.g. 1280x720@60 or 800x600@59.94).
        #[arg(long, value_parser = record::parse_mode, default_value = "1280x720@60")]
        mode: compositor::Mode,
        /// Stop after this many frames.
        #[arg(long, default_value_t = 300)]
        frames: u64,
        /// Where to write the frames: .y4m, .h264 or .png (the last frame).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// What renders the output, as `[video] renderer` (default: auto).
        #[arg(long, value_enum, default_value = "auto")]
        renderer: config::RendererSetting,
        /// Take frames as dmabufs, rendered with GLES into GBM buffers on the GPU (read back
        /// for the file); without a render node they stay in CPU memory, and the log says why.
        #[arg(long)]
        gpu_frames: bool,
        /// The program and its arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Run the test pattern, a Wayland client, in the compositor named by WAYLAND_DISPLAY.
    Testpattern {
        /// Exit after this many frames.
        #[arg(long)]
        frames: Option<u64>,
        /// Grey noise in the motion band, so that frames cost as many bits as a game's.
        #[arg(long)]
        noise: bool,
        /// Add the CLOCK_MONOTONIC time (`t_ns`) to every event line.
        #[arg(long)]
        timestamps: bool,
        /// Print a `frame` line with the counter of every frame as it is committed.
        #[arg(long)]
        frame_events: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(
        cli.command,
        Command::Serve { .. } | Command::Session { .. }
    ));
    let result = match cli.command {
        Command::Serve { host, common } => serve(host, common, None),
        Command::Session { host, common, cmd } => serve(host, common, Some(cmd)),
        Command::Pair {
            native: true,
            common,
            ..
        } => mgmt::cli_pair_native(&data_dir(&common), port_base(&common)),
        Command::Pair {
            pin,
            address,
            common,
            ..
        } => mgmt::cli_pair(
            pin.as_deref().unwrap_or_default(),
            address,
            &data_dir(&common),
            port_base(&common),
        ),
        Command::Clients { common } => mgmt::cli_clients(&data_dir(&common), port_base(&common)),
        Command::Unpair { id, common } => {
            mgmt::cli_unpair(&id, &data_dir(&common), port_base(&common))
        }
        Command::ConsoleLink { config, common } => console_link(config, &common),
        Command::ConsolePassword { common } => console_password(&data_dir(&common)),
        Command::Run {
            mode,
            frames,
            output,
            renderer,
            gpu_frames,
            cmd,
        } => record::run(record::RunOptions {
            mode,
            frames,
            output,
            renderer: config::renderer(renderer),
            gpu_frames,
            cmd,
        }),
        Command::Testpattern {
            frames,
            noise,
            timestamps,
            frame_events,
        } => testpattern::run(testpattern::Options {
            max_frames: frames,
            noise,
            timestamps,
            frame_events,
            ..Default::default()
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("punktfunk: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: HostArgs, common: Common, base_cmd: Option<Vec<String>>) -> anyhow::Result<()> {
    raise_file_limit();
    // Where the console saves: the file read, else the default one, created on the first save.
    let save_to = config_file(args.config.clone()).or_else(config::default_config_path);
    let mut config = match config_file(args.config.clone()) {
        Some(path) => {
            info!(file = %path.display(), "configuration");
            if streamer::corpus::enabled() {
                if let Ok(text) = std::fs::read(&path) {
                    streamer::corpus::record("config", &[&text]);
                }
            }
            Config::load(&path)?
        }
        None => {
            let create = config::default_config_path().map_or_else(
                || "pass --config FILE".to_string(),
                |p| format!("create {}", p.display()),
            );
            info!("no configuration file; the defaults apply ({create} to change them)");
            Config::default()
        }
    };
    if let Some(cmd) = base_cmd {
        if cmd.first().is_none_or(|c| c.is_empty()) {
            anyhow::bail!("punktfunk session needs the base app's command after --");
        }
        let base = config
            .base_app
            .get_or_insert_with(|| config::BaseAppConfig {
                name: config::DEFAULT_BASE_NAME.into(),
                cmd: Vec::new(),
                env: Default::default(),
                working_dir: None,
            });
        base.cmd = cmd;
        if config.apps.iter().any(|a| a.name == base.name) {
            anyhow::bail!(
                "the base app's name {:?} is also an app's name in the config; \
                 set another with [base_app] name",
                base.name
            );
        }
    }
    if let Some(p) = common.port_base {
        config.host.port_base = p;
    }
    if args.no_mdns {
        config.host.mdns = false;
    }
    if let Some(renderer) = args.renderer {
        config.video.renderer = renderer;
    }
    let data_dir = data_dir(&common);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("punktfunk-io")
        .build()?;
    runtime.block_on(serve::run(config, data_dir, save_to))
}

/// `punktfunk console-link`
fn console_link(config: Option<PathBuf>, common: &Common) -> anyhow::Result<()> {
    let config = match config_file(config) {
        Some(path) => Config::load(&path)?,
        None => Config::default(),
    };
    if !config.console.enabled {
        anyhow::bail!("the web console is off in this configuration ([console] enabled = false)");
    }
    let base = common.port_base.unwrap_or(config.host.port_base);
    let ip = config
        .console
        .listen_address(config::listen_address(&config.host)?)?;
    let urls = web::console::urls((ip, config.console.port(base)).into());
    let data_dir = data_dir(common);
    std::fs::create_dir_all(&data_dir)?;
    match web::login::setup_token(&data_dir)? {
        Some(token) => {
            println!("Open this link to set the console's password (it works once):");
            for url in &urls {
                println!("  {}", web::console::setup_link(url, &token));
            }
        }
        None => {
            println!("The console's password is set; log in at:");
            for url in &urls {
                println!("  {url}");
            }
            println!("Forgot it? `punktfunk console-password` sets a new one.");
        }
    }
    Ok(())
}

/// `punktfunk console-password`
fn console_password(data_dir: &std::path::Path) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let read = |prompt: &str| -> anyhow::Result<String> {
        if terminal {
            eprint!("{prompt}");
        }
        let _echo = terminal.then(EchoOff::new);
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        if terminal {
            eprintln!();
        }
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    };
    let password = read("New console password: ")?;
    if let Some(problem) = web::login::password_problem(&password) {
        anyhow::bail!(problem);
    }
    if terminal && read("The same again: ")? != password {
        anyhow::bail!("the two passwords differ; nothing was changed");
    }
    std::fs::create_dir_all(data_dir)?;
    web::login::set_password(data_dir, &password)?;
    println!("The console's password is set; every browser logged in before must log in again.");
    Ok(())
}

/// Turns the terminal's echo off while it lives.
struct EchoOff(Option<libc::termios>);

impl EchoOff {
    fn new() -> Self {
        // SAFETY: tcgetattr and tcsetattr read and write the struct passed, on stdin.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return Self(None);
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            libc::tcsetattr(0, libc::TCSANOW, &t);
            Self(Some(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            // SAFETY: as in `new`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, saved);
            }
        }
    }
}

fn data_dir(common: &Common) -> PathBuf {
    common
        .data_dir
        .clone()
        .unwrap_or_else(config::default_data_dir)
}

/// `--port-base`: a number whose whole port family fits, like `[host] port_base`.
fn port_base_arg(value: &str) -> Result<u16, String> {
    let (start, end) = (config::PORT_BASES.start(), config::PORT_BASES.end());
    value
        .parse::<u16>()
        .ok()
        .filter(|base| config::PORT_BASES.contains(base))
        .ok_or_else(|| format!("allowed: {start} to {end} (ports from base-5 to base+21 are used)"))
}

/// The config file the host reads: `explicit` (`--config`), else the default one when it
/// exists ([`config::default_config_path`]).
fn config_file(explicit: Option<PathBuf>) -> Option<PathBuf> {
    explicit.or_else(|| config::default_config_path().filter(|path| path.exists()))
}

/// The host's base port for the CLI commands: `--port-base`, else the one in the config file
/// the host reads without `--config`, else the default.
fn port_base(common: &Common) -> u16 {
    common.port_base.unwrap_or_else(|| {
        config_file(None)
            .and_then(|path| Config::load(&path).ok())
            .map_or(config::DEFAULT_PORT_BASE, |c| c.host.port_base)
    })
}

fn init_logging(is_server: bool) {
    use tracing_subscriber::EnvFilter;
    // Smithay's X11 event thread logs an error whenever Xwayland's connection closes, also when
    // a session ends and stops its Xwayland; the compositor says itself (and at the right
    // level) whether Xwayland stopped or was lost. Its DRM device wrapper warns that it cannot
    // become DRM master: the compositor opens it on a render node (for explicit sync), where
    // there is no master to become.
    let default = if is_server {
        "info,smithay::utils::x11rb=off,smithay::backend::drm::device::fd=error"
    } else {
        "warn,smithay::utils::x11rb=off,smithay::backend::drm::device::fd=error"
    };
    let filter =
        EnvFilter::try_from_env("PUNKTFUNK_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // A host also keeps its recent lines for the console's Logs page.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(is_server.then(logbuf::layer))
        .try_init();
}

/// Raises the soft limit on open files to the hard one: each listening port serves up to
/// `http::MAX_CONNECTIONS` connections at a time, and sessions open sockets, pipes and buffers
/// of their own (the common soft limit is 1024).
fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= limit.rlim_max
        {
            return;
        }
        let before = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
            tracing::debug!(before, after = limit.rlim_cur, "raised the open file limit");
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    #[test]
    fn a_port_base_whose_ports_do_not_fit_is_refused() {
        for command in ["serve", "pair", "clients"] {
            let mut args = vec!["punktfunk", command, "--port-base"];
            for bad in ["65530", "65515", "5", "0", "70000", "x"] {
                args.push(bad);
                if command == "pair" {
                    args.push("1234");
                }
                let err = Cli::try_parse_from(&args)
                    .err()
                    .unwrap_or_else(|| panic!("{args:?} was accepted"));
                let msg = err.to_string();
                assert!(msg.contains("allowed: 6 to 65514"), "{args:?}: {msg}");
                args.truncate(3);
            }
            args.push("65514");
            if command == "pair" {
                args.push("1234");
            }
            assert!(Cli::try_parse_from(&args).is_ok(), "{args:?}");
        }
    }
}
