//! What an app learns about its client, and the prep commands run around it.
//!
//! Apps and their prep commands get the client's request in their environment, under
//! punktfunk's names (`PUNKTFUNK_CLIENT_WIDTH`, ...) and under Sunshine's
//! (`SUNSHINE_CLIENT_WIDTH`, ...) so that scripts written for Sunshine work unchanged.
//!
//! An app's `prep` entries run in order before it starts, each `do` waited for; the first that
//! fails stops the launch and undoes the entries before it. When the app ends, the `undo`s of
//! the entries that ran are run in reverse order. Their output goes to the app's log.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tracing::{info, warn};

use crate::apps::{App, Display};

/// How long one prep command may run before it is killed (and counts as failed).
pub const PREP_TIMEOUT: Duration = Duration::from_secs(30);

/// What a client asked for, as apps see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientVars {
    /// The host's id of the paired client.
    pub client_id: String,
    /// Its name on the host.
    pub client_name: String,
    /// The `uniqueid` it paired with.
    pub uniqueid: String,
    /// The requested width.
    pub width: u32,
    /// The requested height.
    pub height: u32,
    /// The requested frame rate.
    pub fps: u32,
    /// Whether the client asked for HDR.
    pub hdr: bool,
    /// Audio channels (2, 6 or 8).
    pub audio_channels: u16,
    /// Gamepads attached at launch, one bit each.
    pub gamepad_mask: u32,
    /// Whether the client wants the sound played on the host too.
    pub host_audio: bool,
    /// Whether the client asked the host to optimise game settings.
    pub sops: bool,
    /// More variables the host sets for the session's apps.
    pub extra: BTreeMap<String, String>,
}

impl ClientVars {
    /// The environment for `app`: each variable under punktfunk's and Sunshine's name.
    pub fn env(&self, app: &App) -> BTreeMap<String, String> {
        let audio = match self.audio_channels {
            6 => "5.1",
            8 => "7.1",
            _ => "2.0",
        };
        let flag = |b: bool| if b { "true" } else { "false" }.to_string();
        let vars = [
            ("APP_ID", app.id.to_string()),
            ("APP_NAME", app.name.clone()),
            ("CLIENT_ID", self.client_id.clone()),
            ("CLIENT_NAME", self.client_name.clone()),
            ("CLIENT_WIDTH", self.width.to_string()),
            ("CLIENT_HEIGHT", self.height.to_string()),
            ("CLIENT_FPS", self.fps.to_string()),
            ("CLIENT_HDR", flag(self.hdr)),
            ("CLIENT_AUDIO_CONFIGURATION", audio.to_string()),
            ("CLIENT_GCMAP", self.gamepad_mask.to_string()),
            ("CLIENT_HOST_AUDIO", flag(self.host_audio)),
            ("CLIENT_ENABLE_SOPS", flag(self.sops)),
        ];
        let mut env = BTreeMap::new();
        for (name, value) in vars {
            env.insert(format!("PUNKTFUNK_{name}"), value.clone());
            env.insert(format!("SUNSHINE_{name}"), value);
        }
        env.insert("PUNKTFUNK_CLIENT_UNIQUEID".into(), self.uniqueid.clone());
        env.insert("SUNSHINE_CLIENT_UNIQUE_ID".into(), self.uniqueid.clone());
        env.extend(self.extra.clone());
        env
    }
}

/// The undo commands of an app's prep entries that ran, in the order they ran.
#[derive(Debug, Default)]
pub struct Undo {
    app: String,
    commands: Vec<Vec<String>>,
    env: BTreeMap<String, String>,
    display: Option<Display>,
    working_dir: Option<std::path::PathBuf>,
    log: Option<std::path::PathBuf>,
}

impl Undo {
    /// Runs the undo commands in reverse order (once; later calls do nothing).
    pub fn run(&mut self) {
        while let Some(cmd) = self.commands.pop() {
            if let Err(e) = self.command(&cmd) {
                warn!(app = %self.app, ?cmd, err = %format!("{e:#}"), "an undo command failed");
            }
        }
    }

    fn command(&self, cmd: &[String]) -> anyhow::Result<()> {
        let display = self.display.as_ref().context("no display")?;
        let log = self.log.as_deref().context("no log")?;
        run_command(cmd, &self.env, display, self.working_dir.as_deref(), log)
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        self.run();
    }
}

/// Runs `app`'s prep commands (its environment already holds the client's variables). On
/// failure the entries that ran are undone and the error names the command.
pub fn run(app: &App, display: &Display, log_dir: &Path) -> anyhow::Result<Undo> {
    let log = log_dir.join(format!("app-{}.log", crate::apps::slug(&app.name)));
    let mut undo = Undo {
        app: app.name.clone(),
        commands: Vec::new(),
        env: app.env.clone(),
        display: Some(display.clone()),
        working_dir: app.working_dir.clone(),
        log: Some(log.clone()),
    };
    if app.prep.is_empty() {
        return Ok(undo);
    }
    std::fs::create_dir_all(log_dir)
        .with_context(|| format!("cannot create {}", log_dir.display()))?;
    for (i, prep) in app.prep.iter().enumerate() {
        if !prep.run.is_empty() {
            info!(app = %app.name, cmd = ?prep.run, "prep command");
            if let Err(e) = run_command(
                &prep.run,
                &app.env,
                display,
                app.working_dir.as_deref(),
                &log,
            ) {
                undo.run();
                return Err(e.context(format!("prep[{i}] of {} failed", app.name)));
            }
        }
        if !prep.undo.is_empty() {
            undo.commands.push(prep.undo.clone());
        }
    }
    Ok(undo)
}

/// Runs one command to its end (at most [`PREP_TIMEOUT`]) with the app's environment.
fn run_command(
    cmd: &[String],
    env: &BTreeMap<String, String>,
    display: &Display,
    working_dir: Option<&Path>,
    log: &Path,
) -> anyhow::Result<()> {
    let (program, args) = cmd.split_first().context("empty command")?;
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env("WAYLAND_DISPLAY", &display.wayland_display)
        .env("XDG_RUNTIME_DIR", &display.runtime_dir)
        .env_remove("DISPLAY");
    if let Some(x11) = &display.x11_display {
        command.env("DISPLAY", x11);
    }
    if let Some(dir) = working_dir {
        command.current_dir(dir);
    }
    let mut child = command
        .envs(env)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let deadline = Instant::now() + PREP_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("{cmd:?} exited with {status}");
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{cmd:?} still ran after {} s and was killed",
                PREP_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::Prep;

    fn display(dir: &Path) -> Display {
        Display {
            wayland_display: "wayland-t".into(),
            runtime_dir: dir.into(),
            x11_display: None,
        }
    }

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn runs_in_order_and_undoes_in_reverse() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let line = |s: &str| {
            sh(&format!(
                "echo {s} $PUNKTFUNK_CLIENT_WIDTH $SUNSHINE_CLIENT_AUDIO_CONFIGURATION >> {}",
                out.display()
            ))
        };
        let mut app = App::new("P", vec!["true".into()]);
        app.prep = vec![
            Prep {
                run: line("do1"),
                undo: line("undo1"),
            },
            Prep {
                run: vec![],
                undo: line("undo2"),
            },
            Prep {
                run: line("do3"),
                undo: vec![],
            },
        ];
        let vars = ClientVars {
            width: 1024,
            audio_channels: 6,
            ..Default::default()
        };
        app.env = vars.env(&app);
        let mut undo = run(&app, &display(dir.path()), dir.path()).unwrap();
        undo.run();
        undo.run();
        let got = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            got,
            "do1 1024 5.1\ndo3 1024 5.1\nundo2 1024 5.1\nundo1 1024 5.1\n"
        );
    }

    #[test]
    fn a_failing_command_undoes_what_ran_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let line = |s: &str| sh(&format!("echo {s} >> {}", out.display()));
        let mut app = App::new("P", vec!["true".into()]);
        app.prep = vec![
            Prep {
                run: line("do1"),
                undo: line("undo1"),
            },
            Prep {
                run: sh("exit 3"),
                undo: line("undo2"),
            },
            Prep {
                run: line("do3"),
                undo: line("undo3"),
            },
        ];
        let err = run(&app, &display(dir.path()), dir.path()).unwrap_err();
        assert!(
            format!("{err:#}").contains("prep[1] of P failed"),
            "{err:#}"
        );
        assert!(format!("{err:#}").contains("exit status: 3"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "do1\nundo1\n");
    }

    #[test]
    fn env_carries_both_names() {
        let app = App {
            id: 7,
            ..App::new("G", vec![])
        };
        let vars = ClientVars {
            width: 1,
            height: 2,
            fps: 3,
            hdr: true,
            uniqueid: "u".into(),
            ..Default::default()
        };
        let env = vars.env(&app);
        for (k, v) in [
            ("PUNKTFUNK_CLIENT_WIDTH", "1"),
            ("SUNSHINE_CLIENT_HEIGHT", "2"),
            ("PUNKTFUNK_CLIENT_FPS", "3"),
            ("SUNSHINE_CLIENT_HDR", "true"),
            ("PUNKTFUNK_CLIENT_AUDIO_CONFIGURATION", "2.0"),
            ("PUNKTFUNK_CLIENT_UNIQUEID", "u"),
            ("SUNSHINE_CLIENT_UNIQUE_ID", "u"),
            ("SUNSHINE_APP_ID", "7"),
            ("PUNKTFUNK_APP_NAME", "G"),
        ] {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
        }
    }
}
