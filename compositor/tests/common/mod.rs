//! Test fixture: a compositor on a private socket plus real Wayland client processes.

#![allow(dead_code, unreachable_pub)]

pub mod dmabuf;
pub mod pattern;
pub mod tablet;
pub mod wl;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compositor::{Compositor, CompositorHandle, CompositorOptions, Frame, Mode, RendererChoice};

pub const MODE: Mode = Mode {
    width: 640,
    height: 480,
    refresh_mhz: 60_000,
};

pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("compositor=info,compositor::render=debug")
            }),
        )
        .with_test_writer()
        .try_init();
}

/// The renderer the tests run on: `PUNKTFUNK_TEST_RENDERER=gles` runs them on GLES (on Mesa's
/// software device where there is no GPU), anything else or nothing on pixman.
pub fn test_renderer() -> RendererChoice {
    match std::env::var("PUNKTFUNK_TEST_RENDERER").as_deref() {
        Ok("gles") => RendererChoice::Gles,
        _ => RendererChoice::Pixman,
    }
}

/// Options for `mode` on [`test_renderer`].
pub fn options(mode: Mode) -> CompositorOptions {
    CompositorOptions {
        renderer: test_renderer(),
        ..CompositorOptions::new(mode)
    }
}

/// A private runtime directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "punktfunk-compositor-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Fixture {
    pub handle: CompositorHandle,
    // Dropped after the handle, which removes the socket first.
    pub _dir: TempDir,
}

impl Fixture {
    pub fn new(mode: Mode) -> Self {
        Self::with_options(options(mode))
    }

    /// A compositor started with `opts`, on a private runtime directory.
    pub fn with_options(mut opts: CompositorOptions) -> Self {
        init_logging();
        let dir = TempDir::new();
        opts.runtime_dir = Some(dir.0.clone());
        let handle = Compositor::spawn(opts).expect("compositor starts");
        Fixture { handle, _dir: dir }
    }

    /// Starts `program` connected to this compositor over Wayland, capturing its output lines.
    pub fn spawn_client(&self, program: &str, args: &[&str]) -> Client {
        self.spawn_with_env(program, args, &[])
    }

    /// [`Self::spawn_client`] with `env` set on top.
    pub fn spawn_with_env(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> Client {
        self.spawn_with(program, args, |c| {
            c.env("WAYLAND_DISPLAY", self.handle.socket_name())
                .env("XDG_RUNTIME_DIR", self.handle.runtime_dir())
                .env_remove("DISPLAY")
                .envs(env.iter().copied());
        })
    }

    /// Starts `program` as an X11 client of this compositor's Xwayland.
    pub fn spawn_x11_client(&self, program: &str, args: &[&str]) -> Client {
        let display = self.handle.x11_display().expect("an X display");
        self.spawn_with(program, args, |c| {
            c.env("DISPLAY", &display).env_remove("WAYLAND_DISPLAY");
        })
    }

    /// Starts `program` with `setup` applied, capturing its stdout and stderr lines.
    ///
    /// The program runs under `stdbuf -oL` when available: clients such as wev and xev print
    /// with stdio, which buffers whole blocks when stdout is a pipe. Its working directory is
    /// the fixture's, so whatever it writes (xterm's screen dumps) goes away with the fixture.
    fn spawn_with(&self, program: &str, args: &[&str], setup: impl FnOnce(&mut Command)) -> Client {
        let mut command = if have_quiet("stdbuf") {
            let mut c = Command::new("stdbuf");
            c.arg("-oL").arg(program);
            c
        } else {
            Command::new(program)
        };
        command.args(args);
        // Its own process group, so that killing it also kills whatever it started (a shell
        // or launcher running the real client as its child).
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        setup(&mut command);
        let mut child = command
            .current_dir(&self._dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {program}: {err}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Client {
            name: program.to_string(),
            child,
            lines,
        }
    }

    /// Waits for a frame matching `pred`, skipping others.
    pub fn wait_frame(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&Frame) -> bool,
    ) -> Option<Frame> {
        let rx = self.handle.frames();
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Some(frame) = rx.recv_timeout(left) {
                if pred(&frame) {
                    return Some(frame);
                }
            }
        }
        None
    }
}

/// A client process; killed (by its own PID) on drop.
pub struct Client {
    pub name: String,
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Client {
    /// Waits until some output line contains `needle`; returns that line.
    pub fn wait_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_line_after(0, needle, timeout)
    }

    /// Like `wait_line`, looking only at lines after the first `skip`.
    pub fn wait_line_after(&self, skip: usize, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .skip(skip)
                .find(|l| l.contains(needle))
            {
                return Some(line.clone());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn line_count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on the process group this client leads (see `spawn_with`); the
            // child is not reaped yet, so the id still names it.
            unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.kill();
    }
}

fn have_quiet(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

/// Whether `program` is on PATH; prints why the caller skips if not.
///
/// Under CI (`CI` set, as `.ci/run` runs) a missing program fails the calling test instead:
/// there a skipped test would pass for a run that was meant to run it.
pub fn have(program: &str) -> bool {
    let found = have_quiet(program);
    if !found {
        skip(&format!(
            "`{program}` is not installed (scripts/deps.sh --test installs it)"
        ));
    }
    found
}

/// Prints why the caller skips; under CI, fails instead (see [`have`]).
pub fn skip(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "required under CI: {why}");
    eprintln!("SKIPPED: {why}");
}

/// The (B, G, R) bytes of pixel (x, y).
pub fn pixel(frame: &Frame, x: u32, y: u32) -> (u8, u8, u8) {
    frame
        .with_pixels(|data| bgr_at(data, frame.stride(), x, y))
        .expect("readable frame")
}

fn bgr_at(data: &[u8], stride: u32, x: u32, y: u32) -> (u8, u8, u8) {
    let i = (y * stride + x * 4) as usize;
    (data[i], data[i + 1], data[i + 2])
}

/// How many pixels in the rectangle are not black.
pub fn non_black_pixels(frame: &Frame, x0: u32, y0: u32, w: u32, h: u32) -> usize {
    frame
        .with_pixels(|data| {
            let mut n = 0;
            for y in y0..(y0 + h).min(frame.height) {
                for x in x0..(x0 + w).min(frame.width) {
                    if bgr_at(data, frame.stride(), x, y) != (0, 0, 0) {
                        n += 1;
                    }
                }
            }
            n
        })
        .expect("readable frame")
}

/// The machine's first render node; fails the test without one (`needs` says how to run it
/// where there is one).
pub fn render_node(needs: &str) -> PathBuf {
    let node = std::fs::read_dir("/dev/dri").ok().and_then(|dir| {
        dir.flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("renderD"))
            })
            .min()
    });
    node.unwrap_or_else(|| panic!("no render node in /dev/dri; this test {needs}"))
}
