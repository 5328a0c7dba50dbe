//! The client against a real compositor: Weston's headless backend.
//!
//! Each test starts its own `weston --backend=headless-backend.so` on a private
//! `XDG_RUNTIME_DIR` and socket. Weston's desktop shell lets the client pick its size (configure
//! 0x0) and sends frame callbacks; its kiosk shell imposes the output size but, headless and
//! without a seat, never repaints, which checks that `exit_after` holds without frames.
//!
//! Without a `weston` binary the tests print why they skip and pass; with
//! `PUNKTFUNK_REQUIRE_WESTON=1` set they fail instead.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running headless Weston, killed (by its own pid) and cleaned up on drop.
struct Weston {
    child: Child,
    runtime_dir: PathBuf,
    socket: String,
}

impl Weston {
    /// Starts Weston with `shell` and an output of `width` x `height`; `None` (after saying why)
    /// when Weston is not installed.
    fn start(shell: &str, width: u32, height: u32) -> Option<Self> {
        if !on_path("weston") {
            let why = "weston not found on PATH (apt-get install weston)";
            if std::env::var_os("PUNKTFUNK_REQUIRE_WESTON").is_some() {
                panic!("{why}, and PUNKTFUNK_REQUIRE_WESTON is set");
            }
            // Written to the real stderr, past the test harness's capture, so a skip is seen.
            let _ = writeln!(std::io::stderr(), "SKIPPED {}: {why}", test_name());
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let runtime_dir =
            std::env::temp_dir().join(format!("punktfunk-testpattern-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&runtime_dir);
        std::fs::create_dir(&runtime_dir).expect("create the runtime dir");
        std::fs::set_permissions(
            &runtime_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod the runtime dir");
        let socket = format!("testpattern-{n}");
        let log = std::fs::File::create(runtime_dir.join("weston.log")).expect("create the log");
        let child = Command::new("weston")
            .arg("--backend=headless-backend.so")
            .arg(format!("--socket={socket}"))
            .arg(format!("--width={width}"))
            .arg(format!("--height={height}"))
            .arg(format!("--shell={shell}"))
            .arg("--no-config")
            .arg("--use-pixman")
            .env("XDG_RUNTIME_DIR", &runtime_dir)
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("DISPLAY")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the log"))
            .stderr(log)
            .spawn()
            .expect("start weston");
        let mut weston = Self {
            child,
            runtime_dir,
            socket,
        };
        weston.wait_for_socket();
        Some(weston)
    }

    fn wait_for_socket(&mut self) {
        let path = self.runtime_dir.join(&self.socket);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !path.exists() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("weston exited early ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "weston made no socket in 10 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.runtime_dir.join("weston.log")).unwrap_or_default()
    }

    /// Runs the `punktfunk-testpattern` binary against this Weston, killing it after `limit`.
    fn run_pattern(&self, args: &[&str], limit: Duration) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_punktfunk-testpattern"))
            .args(args)
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .env("WAYLAND_DISPLAY", &self.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start punktfunk-testpattern");
        let deadline = Instant::now() + limit;
        while child.try_wait().expect("wait for the pattern").is_none() {
            if Instant::now() >= deadline {
                child.kill().expect("kill the pattern");
                let output = child.wait_with_output().expect("collect the pattern");
                panic!(
                    "the pattern ran past {limit:?}; stdout:\n{}\nstderr:\n{}\nweston:\n{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Run::new(child.wait_with_output().expect("collect the pattern"))
    }
}

impl Drop for Weston {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
    }
}

/// What one run of the pattern printed, parsed.
struct Run {
    output: Output,
    events: Vec<Value>,
}

impl Run {
    fn new(output: Output) -> Self {
        let stdout = String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8");
        let events = stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
            .collect();
        Self { output, events }
    }

    fn assert_success(&self) {
        assert!(
            self.output.status.success(),
            "the pattern failed ({}):\n{}",
            self.output.status,
            String::from_utf8_lossy(&self.output.stderr)
        );
    }

    fn first(&self, name: &str) -> &Value {
        self.events
            .iter()
            .find(|e| e["event"] == name)
            .unwrap_or_else(|| panic!("no {name:?} event in {:?}", self.events))
    }

    fn last(&self) -> &Value {
        self.events.last().expect("the pattern printed nothing")
    }
}

fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("a weston test")
        .to_owned()
}

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| is_file(&dir.join(binary))))
}

fn is_file(path: &Path) -> bool {
    path.metadata().is_ok_and(|m| m.is_file())
}

#[test]
fn runs_a_fixed_number_of_frames_and_exits_cleanly() {
    let Some(weston) = Weston::start("desktop-shell.so", 1024, 768) else {
        return;
    };
    let run = weston.run_pattern(&["--max-frames", "30"], Duration::from_secs(30));
    run.assert_success();
    // The desktop shell leaves the size to the client: the 1280x720 fallback.
    assert_eq!(run.first("configure")["width"], 1280);
    assert_eq!(run.first("configure")["height"], 720);
    assert_eq!(run.first("ready")["width"], 1280);
    let exit = run.last();
    assert_eq!(exit["event"], "exit");
    assert_eq!(exit["reason"], "max_frames");
    assert_eq!(exit["frames"], 30);
}

#[test]
fn size_hints_apply_when_the_compositor_leaves_the_size_open() {
    let Some(weston) = Weston::start("desktop-shell.so", 1024, 768) else {
        return;
    };
    let run = weston.run_pattern(
        &["--width", "800", "--height", "600", "--max-frames", "5"],
        Duration::from_secs(30),
    );
    run.assert_success();
    assert_eq!(run.first("configure")["width"], 800);
    assert_eq!(run.first("configure")["height"], 600);
    assert_eq!(run.last()["frames"], 5);
}

#[test]
fn draws_at_the_configured_size_and_honours_exit_after_without_frames() {
    // The kiosk shell configures the output size and, headless, sends no frame callbacks.
    let Some(weston) = Weston::start("kiosk-shell.so", 640, 480) else {
        return;
    };
    let started = Instant::now();
    let run = weston.run_pattern(&["--exit-after", "0.5"], Duration::from_secs(30));
    run.assert_success();
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(run.first("configure")["width"], 640);
    assert_eq!(run.first("configure")["height"], 480);
    assert_eq!(run.first("ready")["height"], 480);
    assert_eq!(run.last()["reason"], "exit_after");
}

#[test]
fn run_works_in_process_on_a_thread() {
    let Some(weston) = Weston::start("desktop-shell.so", 1024, 768) else {
        return;
    };
    // Only this test touches the process environment; the others pass it to children.
    std::env::set_var("XDG_RUNTIME_DIR", &weston.runtime_dir);
    std::env::set_var("WAYLAND_DISPLAY", &weston.socket);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let opts = testpattern::Options {
            max_frames: Some(10),
            exit_after: Some(Duration::from_secs(20)),
            ..Default::default()
        };
        let _ = tx.send(testpattern::run(opts).map_err(|e| format!("{e:#}")));
    });
    let result = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("run did not return in 30 s");
    result.expect("run failed");
}

#[test]
fn fails_clearly_without_a_compositor() {
    let dir =
        std::env::temp_dir().join(format!("punktfunk-testpattern-none-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_punktfunk-testpattern"))
        .env("XDG_RUNTIME_DIR", &dir)
        .env("WAYLAND_DISPLAY", "no-such-socket")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!status.success());
    assert!(
        stderr.contains("error connecting to the Wayland compositor"),
        "{stderr}"
    );
}
