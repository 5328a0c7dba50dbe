//! The app catalog and the processes started from it.
//!
//! Apps run inside a session's compositor: their environment points `WAYLAND_DISPLAY` and
//! `XDG_RUNTIME_DIR` at it, and `DISPLAY` at its Xwayland when it has one. Each app gets its own process group so that stopping it also stops
//! whatever it started; its stdout and stderr are appended to `logs/app-<slug>.log` in the data
//! directory.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tracing::{info, warn};

use crate::config::{AppConfig, BaseAppConfig};

/// The name of the built-in app.
pub const TEST_PATTERN: &str = "Test Pattern";

/// One entry of the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    /// The stable, non-zero id clients use.
    pub id: i32,
    /// The title.
    pub name: String,
    /// Program and arguments.
    pub cmd: Vec<String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// The directory it starts in; the host's when `None`.
    pub working_dir: Option<PathBuf>,
    /// Its box art (a PNG); punktfunk's when `None`.
    pub image: Option<PathBuf>,
    /// Commands to run before it starts and to undo after it ended.
    pub prep: Vec<Prep>,
    /// Whether this is the base app, which runs under the catalog apps of every session.
    pub base: bool,
    /// Whether this is the built-in test pattern of a host without apps.
    pub builtin: bool,
}

/// One prep entry: a command run before the app starts and one run after it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Prep {
    /// Program and arguments run before the app; empty for none.
    pub run: Vec<String>,
    /// Program and arguments run after the app; empty for none.
    pub undo: Vec<String>,
}

impl App {
    /// An app with a command and nothing else.
    pub fn new(name: &str, cmd: Vec<String>) -> Self {
        Self {
            id: 0,
            name: name.into(),
            cmd,
            env: BTreeMap::new(),
            working_dir: None,
            image: None,
            prep: Vec::new(),
            base: false,
            builtin: false,
        }
    }
}

/// Builds the catalog from the config: the base app first when there is one, then the apps;
/// without either it holds the test pattern.
pub fn catalog(apps: &[AppConfig], base: Option<&BaseAppConfig>) -> anyhow::Result<Vec<App>> {
    let mut out: Vec<App> = Vec::new();
    if let Some(b) = base {
        out.push(App {
            env: b.env.clone(),
            working_dir: b.working_dir.as_ref().map(|d| d.get_ref().clone()),
            base: true,
            ..App::new(&b.name, b.cmd.clone())
        });
    }
    if apps.is_empty() && base.is_none() {
        let exe = std::env::current_exe().context("cannot find the punktfunk executable")?;
        out.push(App {
            builtin: true,
            ..App::new(
                TEST_PATTERN,
                vec![exe.to_string_lossy().into_owned(), "testpattern".into()],
            )
        });
    }
    for a in apps {
        out.push(App {
            env: a.env.clone(),
            working_dir: a.working_dir.as_ref().map(|d| d.get_ref().clone()),
            image: a.image.as_ref().map(|i| i.get_ref().clone()),
            prep: a
                .prep
                .iter()
                .map(|p| Prep {
                    run: p.get_ref().run.clone(),
                    undo: p.get_ref().undo.clone(),
                })
                .collect(),
            ..App::new(&a.name, a.cmd.clone())
        });
    }
    // Ids derive from names so that clients' cached ids (and box art) survive restarts.
    let names: Vec<&str> = out.iter().map(|a| a.name.as_str()).collect();
    let ids = protocol::nvhttp::app_ids(&names);
    for (app, id) in out.iter_mut().zip(ids) {
        app.id = id;
    }
    Ok(out)
}

/// The file name part used for an app's log: lowercase, non-alphanumerics collapsed to `-`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "app".into()
    } else {
        out
    }
}

/// Where a compositor can be reached by apps.
#[derive(Debug, Clone)]
pub struct Display {
    /// `WAYLAND_DISPLAY`
    pub wayland_display: String,
    /// `XDG_RUNTIME_DIR`
    pub runtime_dir: PathBuf,
    /// `DISPLAY` of the compositor's Xwayland, when it has one.
    pub x11_display: Option<String>,
}

/// A running app. Dropping it stops the process group.
pub struct RunningApp {
    /// The catalog entry.
    pub app: App,
    pid: u32,
    child: Arc<Mutex<Option<Child>>>,
    exited: Arc<Mutex<Option<std::process::ExitStatus>>>,
}

impl std::fmt::Debug for RunningApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningApp")
            .field("app", &self.app.name)
            .field("pid", &self.pid)
            .finish()
    }
}

impl RunningApp {
    /// Starts `app` in `display`, logging into `log_dir`. `on_exit` runs (on a helper thread)
    /// when the process exits by itself or is stopped.
    pub fn start(
        app: &App,
        display: &Display,
        log_dir: &Path,
        on_exit: impl FnOnce(std::process::ExitStatus) + Send + 'static,
    ) -> anyhow::Result<Self> {
        fs::create_dir_all(log_dir)
            .with_context(|| format!("cannot create {}", log_dir.display()))?;
        let log_path = log_dir.join(format!("app-{}.log", slug(&app.name)));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let log2 = log.try_clone()?;
        let (program, args) = app.cmd.split_first().context("the app has no command")?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("WAYLAND_DISPLAY", &display.wayland_display)
            .env("XDG_RUNTIME_DIR", &display.runtime_dir)
            .env("XDG_SESSION_TYPE", "wayland")
            .env_remove("DISPLAY");
        if let Some(x11_display) = &display.x11_display {
            cmd.env("DISPLAY", x11_display);
        }
        if let Some(dir) = &app.working_dir {
            cmd.current_dir(dir);
        }
        cmd.envs(&app.env)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {:?}", app.cmd))?;
        let pid = child.id();
        info!(app = %app.name, pid, log = %log_path.display(), "app started");
        let child = Arc::new(Mutex::new(Some(child)));
        let exited = Arc::new(Mutex::new(None));
        {
            let child = child.clone();
            let exited = exited.clone();
            let name = app.name.clone();
            std::thread::Builder::new()
                .name("app-wait".into())
                .spawn(move || {
                    // Poll rather than block in wait() so that stop() can take the child.
                    let status = loop {
                        let mut guard = child.lock().unwrap_or_else(|e| e.into_inner());
                        match guard.as_mut().map(|c| c.try_wait()) {
                            Some(Ok(Some(status))) => break status,
                            Some(Ok(None)) => {}
                            Some(Err(e)) => {
                                warn!(?e, "cannot wait for the app");
                                return;
                            }
                            None => return,
                        }
                        drop(guard);
                        std::thread::sleep(Duration::from_millis(50));
                    };
                    info!(app = %name, %status, "app exited");
                    *exited.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
                    on_exit(status);
                })?;
        }
        Ok(Self {
            app: app.clone(),
            pid,
            child,
            exited,
        })
    }

    /// The process id (also the process group id).
    #[cfg(test)]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process has exited.
    pub fn has_exited(&self) -> bool {
        self.exited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Stops the whole process group: SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&self, grace: Duration) {
        let pgid = self.pid as libc::pid_t;
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && !self.has_exited() {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left of the group (the app's own children too) gets SIGKILL.
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && !self.has_exited() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        if !self.has_exited() {
            self.stop(Duration::from_secs(3));
        }
        // Reap if the waiter thread has not yet.
        if let Some(mut c) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = c.try_wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Processes of process group `pgid` that are not zombies (a killed orphan may stay a
    /// zombie until init reaps it).
    fn live_members(pgid: u32) -> usize {
        let mut n = 0;
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp ...; comm may contain spaces, so split after ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.get(2) == Some(&pgid.to_string().as_str()) && fields[0] != "Z" {
                n += 1;
            }
        }
        n
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Test Pattern"), "test-pattern");
        assert_eq!(slug("  Steam: Big Picture!! "), "steam-big-picture");
        assert_eq!(slug("日本"), "app");
    }

    #[test]
    fn ids_are_stable_nonzero_and_distinct() {
        let config = crate::config::Config::parse(
            "[[apps]]\nname = \"A\"\ncmd = [\"a\"]\n[[apps]]\nname = \"B\"\ncmd = [\"b\"]\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let apps = config.apps;
        let c1 = catalog(&apps, None).unwrap();
        let c2 = catalog(&apps, None).unwrap();
        assert_eq!(c1, c2);
        assert!(c1.iter().all(|a| a.id > 0));
        assert_ne!(c1[0].id, c1[1].id);
        assert_eq!(catalog(&[], None).unwrap()[0].name, TEST_PATTERN);
    }

    #[test]
    fn start_logs_and_stop_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let app = App {
            id: 1,
            env: [("FOO".to_string(), "bar".to_string())].into(),
            working_dir: Some("/".into()),
            ..App::new(
                "Sleeper",
                vec![
                    "sh".into(),
                    "-c".into(),
                    "echo hello $FOO $DISPLAY $PWD; sleep 100 & sleep 100".into(),
                ],
            )
        };
        let display = Display {
            wayland_display: "wayland-x".into(),
            runtime_dir: dir.path().into(),
            x11_display: Some(":42".into()),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let running = RunningApp::start(&app, &display, dir.path(), move |s| {
            let _ = tx.send(s);
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(!running.has_exited());
        running.stop(Duration::from_secs(2));
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok());
        let log = fs::read_to_string(dir.path().join("app-sleeper.log")).unwrap();
        assert_eq!(log.trim(), "hello bar :42 /");
        assert_eq!(
            live_members(running.pid()),
            0,
            "the background sleep of the group was killed too"
        );
    }
}
