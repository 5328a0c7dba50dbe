//! The sound server that sessions play into.
//!
//! At start the host looks for the user's sound server: `$PULSE_SERVER`, else
//! `$XDG_RUNTIME_DIR/pulse/native` (PulseAudio, or PipeWire's `pipewire-pulse`). Where none
//! answers (a headless server, CI, root without a runtime directory) it starts a private
//! `pulseaudio` of its own: in a fresh private directory, with no system or user scripts, never
//! exiting by itself, logging to `logs/pulseaudio.log`, and stopped (by its pid) when the host
//! exits. Without either, streams carry silence; the host says so once at start.
//!
//! Each game session then gets a virtual sink on that server ([`session_sink`]), made in the
//! speaker layout the client asked for at launch.

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use streamer::audio::{self, PulseServer, VirtualSink};
use tracing::{info, warn};

/// How long a private server may take to answer after it was started.
const PRIVATE_START_TIMEOUT: Duration = Duration::from_secs(10);

/// A private server's directory this old whose socket nobody answers is a leftover.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// What the private server reads instead of the system's `daemon.conf`.
const PRIVATE_DAEMON_CONF: &str = "\
default-sample-format = s16le
default-sample-rate = 48000
alternate-sample-rate = 48000
exit-idle-time = -1
";

/// The host's sound server, if it has one. A private server stops when this is dropped.
pub struct SoundServer {
    server: Option<PulseServer>,
    // Held for its Drop, which stops the server.
    #[allow(dead_code)]
    private: Option<PrivateServer>,
}

impl SoundServer {
    /// Finds the user's server or starts a private one (logging into `log_dir`); never fails,
    /// but says once why streams will carry silence when neither works.
    pub fn start(log_dir: &Path) -> SoundServer {
        if let Some(server) = PulseServer::of_user() {
            match server.probe() {
                Ok(i) => {
                    info!(%server, name = %i.name, version = %i.version, "sound: using the running sound server");
                    if let Err(e) = audio::remove_orphaned_sinks(&server) {
                        warn!(err = %format!("{e:#}"), "sound: cannot look for sinks left behind");
                    }
                    return SoundServer {
                        server: Some(server),
                        private: None,
                    };
                }
                Err(e) => {
                    warn!(%server, err = %format!("{e:#}"), "sound: the user's sound server does not answer")
                }
            }
        }
        match PrivateServer::start(log_dir) {
            Ok((private, server)) => {
                info!(%server, pid = private.child.id(), "sound: started a private PulseAudio");
                SoundServer {
                    server: Some(server),
                    private: Some(private),
                }
            }
            Err(e) => {
                warn!(err = %format!("{e:#}"), "sound: no sound server; streams carry silence");
                SoundServer {
                    server: None,
                    private: None,
                }
            }
        }
    }

    /// The server's address, when there is one.
    pub fn server(&self) -> Option<&PulseServer> {
        self.server.as_ref()
    }

    /// The private server's process id, when the host started one.
    #[cfg(test)]
    fn private_pid(&self) -> Option<u32> {
        self.private.as_ref().map(|p| p.child.id())
    }
}

/// A virtual sink for a new session, in the layout of `channels` (from the launch's
/// `surroundAudioInfo`), or `None` (logged) when there is no server or it refuses.
pub fn session_sink(server: Option<&PulseServer>, channels: u32) -> Option<VirtualSink> {
    let server = server?;
    match VirtualSink::create(server, audio::layout_for_channels(channels)) {
        Ok(sink) => Some(sink),
        Err(e) => {
            warn!(err = %format!("{e:#}"), "cannot create the session's sink; its streams carry silence");
            None
        }
    }
}

/// A `pulseaudio` the host started, with its private directory.
struct PrivateServer {
    child: Child,
    dir: PathBuf,
}

impl PrivateServer {
    fn start(log_dir: &Path) -> anyhow::Result<(PrivateServer, PulseServer)> {
        let program = find_program("pulseaudio").context("pulseaudio is not installed")?;
        let dir = private_dir()?;
        let child = match spawn(&program, &dir, log_dir) {
            Ok(c) => c,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let socket = dir.join("native");
        let log_path = log_dir.join("pulseaudio.log");
        let mut private = PrivateServer { child, dir };
        let server = PulseServer::at_socket(&socket);
        let deadline = Instant::now() + PRIVATE_START_TIMEOUT;
        loop {
            if let Some(status) = private.child.try_wait()? {
                bail!(
                    "pulseaudio exited at start ({status}); see {}",
                    log_path.display()
                );
            }
            if socket.exists() && server.probe().is_ok() {
                return Ok((private, server));
            }
            if Instant::now() > deadline {
                bail!(
                    "pulseaudio did not answer within {} s; see {}",
                    PRIVATE_START_TIMEOUT.as_secs(),
                    log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on the pid of our own child, which is not reaped yet, so the pid
        // cannot belong to anyone else.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
        info!("sound: private PulseAudio stopped");
    }
}

/// Starts `program` as a private server living in `dir`, logging into `log_dir`.
fn spawn(program: &Path, dir: &Path, log_dir: &Path) -> anyhow::Result<Child> {
    let conf = dir.join("daemon.conf");
    fs::write(&conf, PRIVATE_DAEMON_CONF)
        .with_context(|| format!("cannot write {}", conf.display()))?;
    fs::create_dir_all(log_dir).with_context(|| format!("cannot create {}", log_dir.display()))?;
    let log_path = log_dir.join("pulseaudio.log");
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let mut cmd = Command::new(program);
    cmd.args([
        "--daemonize=no",
        "-n",
        "--exit-idle-time=-1",
        "--use-pid-file=no",
        "--system=no",
        "--realtime=no",
        "--high-priority=no",
        "--disallow-exit=yes",
        "--log-target=stderr",
    ])
    .arg("-L")
    .arg(format!(
        "module-native-protocol-unix socket={} auth-anonymous=1",
        dir.join("native").display()
    ))
    // Everything the server might read or write stays in its directory: no user or system
    // config, no D-Bus session, no X11.
    .env_clear()
    .env(
        "PATH",
        std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin")),
    )
    .env("HOME", dir)
    .env("XDG_RUNTIME_DIR", dir)
    .env("XDG_CONFIG_HOME", dir.join("config"))
    .env("PULSE_RUNTIME_PATH", dir.join("runtime"))
    .env("PULSE_STATE_PATH", dir.join("state"))
    .env("PULSE_CONFIG", &conf)
    .stdin(Stdio::null())
    .stdout(log.try_clone()?)
    .stderr(log)
    .process_group(0);
    // SAFETY: prctl is async-signal-safe and only sets a flag of the child: the server gets
    // SIGTERM when the host's main thread (which starts it) dies, even by SIGKILL.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .with_context(|| format!("cannot start {}", program.display()))
}

/// `name` on `$PATH`.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A fresh directory only we can enter, in `$XDG_RUNTIME_DIR` or else `/tmp` (short, because
/// the server's socket path must fit in a `sockaddr_un`).
fn private_dir() -> anyhow::Result<PathBuf> {
    // sun_path holds 107 bytes; the socket is <dir>/native.
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| {
            d.is_dir() && d.as_os_str().len() + "/punktfunk-pulse-XXXXXX/native".len() < 100
        })
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    remove_stale_dirs(&base);
    let template = base.join("punktfunk-pulse-XXXXXX");
    let mut bytes = template.into_os_string().into_vec();
    bytes.push(0);
    // SAFETY: `bytes` is a NUL-terminated, writable template ending in XXXXXX, as mkdtemp wants.
    let p = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
    if p.is_null() {
        return Err(std::io::Error::last_os_error())
            .context("cannot create the sound server's directory");
    }
    bytes.pop();
    Ok(PathBuf::from(OsString::from_vec(bytes)))
}

/// Removes what private servers of hosts that were killed left in `base`: directories of ours
/// whose socket nobody answers, and old enough not to belong to a server that is still starting.
fn remove_stale_dirs(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    // SAFETY: getuid cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = entry
            .file_name()
            .to_string_lossy()
            .starts_with("punktfunk-pulse-");
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|a| a > STALE_AFTER);
        if !ours || !meta.is_dir() || meta.uid() != uid || !old {
            continue;
        }
        if std::os::unix::net::UnixStream::connect(path.join("native")).is_err() {
            info!(dir = %path.display(), "sound: removing a dead private server's directory");
            let _ = fs::remove_dir_all(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fallback a headless host uses: a private server starts, takes a session sink, and is
    /// gone (process and directory) after the drop.
    #[test]
    fn private_server_starts_serves_a_sink_and_stops() {
        if find_program("pulseaudio").is_none() {
            eprintln!("pulseaudio is not installed; skipping");
            return;
        }
        let logs = tempfile::tempdir().unwrap();
        let (private, server) = PrivateServer::start(logs.path()).unwrap();
        let sound = SoundServer {
            server: Some(server.clone()),
            private: Some(private),
        };
        let pid = sound.private_pid().unwrap();
        let dir = sound.private.as_ref().unwrap().dir.clone();
        assert!(server
            .probe()
            .unwrap()
            .name
            .to_lowercase()
            .contains("pulseaudio"));
        let sink = session_sink(sound.server(), 6).expect("a 5.1 sink");
        assert_eq!(sink.layout(), streamer::encode::ChannelLayout::Surround51);
        drop(sink);
        drop(sound);
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pulseaudio {pid} still runs"
        );
    }
}

#[cfg(test)]
mod stale_tests {
    use super::*;

    #[test]
    fn only_dead_old_private_dirs_are_removed() {
        let base = tempfile::tempdir().unwrap();
        let dead = base.path().join("punktfunk-pulse-dead00");
        let fresh = base.path().join("punktfunk-pulse-fresh0");
        let other = base.path().join("something-else");
        for d in [&dead, &fresh, &other] {
            fs::create_dir(d).unwrap();
        }
        let old = std::time::SystemTime::now() - Duration::from_secs(600);
        for d in [&dead, &other] {
            fs::File::open(d).unwrap().set_modified(old).unwrap();
        }
        remove_stale_dirs(base.path());
        assert!(!dead.exists(), "a dead, old directory stays");
        assert!(
            fresh.exists(),
            "a directory of a server still starting went"
        );
        assert!(other.exists(), "someone else's directory went");
    }
}
