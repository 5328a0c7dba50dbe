//! The host's persistent state: its identity and the clients it has paired with.
//!
//! Everything lives in the data directory:
//! - `state.json`: the host's `uniqueid` and the paired clients (each with its whole certificate);
//! - `identity/cert.pem`, `identity/key.pem`: the RSA-2048 identity the host pairs and serves
//!   HTTPS with.
//!
//! Files are written atomically (temporary file, fsync, rename), so a host killed at any moment
//! leaves either the old or the new file. A file that exists but cannot be read is never
//! overwritten: the host stops and names it, because silently replacing it would unpair every
//! client and change the host's identity.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// Version written into `state.json`; older files are upgraded, newer ones refused.
pub const STATE_VERSION: u32 = 1;

/// The name of the state file inside the data directory.
pub const STATE_FILE: &str = "state.json";

/// The on-disk form of the host state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    /// File format version.
    pub version: u32,
    /// The host's identity towards clients (`uniqueid` in serverinfo).
    pub uniqueid: String,
    /// Paired clients.
    #[serde(default)]
    pub clients: Vec<PairedClient>,
    /// Fields written by a newer version, kept so that a downgrade-upgrade keeps them.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, serde_json::Value>,
}

/// One paired client.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PairedClient {
    /// A host-made identifier, shown by `punktfunk clients` and taken by `punktfunk unpair`.
    pub id: String,
    /// A friendly name.
    pub name: String,
    /// The client's whole certificate, PEM. HTTPS requests are authorised by comparing the
    /// peer certificate with this one byte for byte (every Moonlight certificate has the same
    /// subject, so names prove nothing).
    pub cert_pem: String,
    /// The client's `uniqueid` when it paired (informational only; clients choose it freely).
    #[serde(default)]
    pub uniqueid: String,
    /// Unix seconds when the pairing completed.
    #[serde(default)]
    pub paired_at: u64,
    /// Fields written by a newer version.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, serde_json::Value>,
}

impl State {
    /// A fresh state with a new host identity id.
    pub fn new(uniqueid: String) -> Self {
        Self {
            version: STATE_VERSION,
            uniqueid,
            clients: Vec::new(),
            unknown: BTreeMap::new(),
        }
    }

    /// Loads `state.json` from `dir`; `Ok(None)` when it does not exist yet.
    pub fn load(dir: &Path) -> anyhow::Result<Option<Self>> {
        let path = dir.join(STATE_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Self::parse(&bytes, &path).map(Some)
    }

    /// Parses and checks the bytes of a state file; `path` only names the file in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> anyhow::Result<Self> {
        let state: State = serde_json::from_slice(bytes).map_err(|e| {
            anyhow::anyhow!(
                "the state file {} is corrupt ({e}); it was left untouched. Move it away to start \
                 with a fresh identity (every client will have to pair again).",
                path.display()
            )
        })?;
        if state.version > STATE_VERSION {
            bail!(
                "the state file {} has version {}, newer than this punktfunk understands ({})",
                path.display(),
                state.version,
                STATE_VERSION
            );
        }
        Ok(state)
    }

    /// Writes `state.json` into `dir` atomically.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self).context("serialising the state")?;
        bytes.push(b'\n');
        write_atomic(&dir.join(STATE_FILE), &bytes, 0o600)
    }

    /// Finds the client whose certificate is exactly `cert_der`.
    pub fn client_by_cert(&self, cert_der: &[u8]) -> Option<&PairedClient> {
        self.clients
            .iter()
            .find(|c| pem_matches_der(&c.cert_pem, cert_der))
    }
}

/// Whether a PEM certificate encodes exactly the DER bytes given.
pub fn pem_matches_der(pem: &str, der: &[u8]) -> bool {
    openssl::x509::X509::from_pem(pem.as_bytes())
        .and_then(|c| c.to_der())
        .map(|d| d == der)
        .unwrap_or(false)
}

/// A host's claim on its data directory: an exclusive `flock` on `host.lock` in it, held while
/// the value lives. The kernel drops it when the process ends, however it ends, so a stale lock
/// file never blocks anything.
#[derive(Debug)]
pub struct DataDirLock {
    _file: fs::File,
}

/// The lock file's name in the data directory.
const LOCK_FILE: &str = "host.lock";

impl DataDirLock {
    /// Takes the lock; `None` while another process holds it.
    pub fn try_acquire(dir: &Path) -> anyhow::Result<Option<Self>> {
        use std::os::fd::AsRawFd;
        let path = dir.join(LOCK_FILE);
        // Read-only when it exists (flock needs no write access), so that a lock file another
        // user created (`sudo punktfunk unpair`) does not keep the host from starting.
        // A lock file just created is opened again read-only too: a file held open for writing
        // keeps its file system from being remounted read-only.
        let file = fs::File::open(&path)
            .or_else(|_| {
                fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)?;
                fs::File::open(&path)
            })
            .with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: flock on a file descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Some(Self { _file: file }));
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(err).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;

    let dir = path.parent().context("path without a directory")?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = tmp_path(path);
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
    })();
    if written.is_err() {
        // A part written on a full disk would hold on to the space it took.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    // Make the rename itself durable.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `state` fuzz target: a number in a newer version's field changed in its last
    /// digit at every save (serde_json's fast float parsing is not correctly rounded).
    #[test]
    fn a_save_keeps_a_newer_versions_numbers_exactly() {
        let text = format!(
            r#"{{"version": 1, "uniqueid": "A", "future": [{}, 0.1, 1e-300, 123456789.123456789]}}"#,
            "1".repeat(308)
        );
        let first = State::parse(text.as_bytes(), Path::new("state.json")).unwrap();
        let saved = serde_json::to_vec_pretty(&first).unwrap();
        let again = State::parse(&saved, Path::new("state.json")).unwrap();
        assert_eq!(first, again, "{}", String::from_utf8_lossy(&saved));
    }

    #[test]
    fn round_trip_keeps_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let json = r#"{"version":1,"uniqueid":"abc","clients":[{"id":"1","name":"n","cert_pem":"x","future":3}],"later":true}"#;
        fs::write(dir.path().join(STATE_FILE), json).unwrap();
        let s = State::load(dir.path()).unwrap().unwrap();
        assert_eq!(s.uniqueid, "abc");
        s.save(dir.path()).unwrap();
        let again = State::load(dir.path()).unwrap().unwrap();
        assert_eq!(again, s);
        assert_eq!(
            again.unknown.get("later"),
            Some(&serde_json::Value::Bool(true))
        );
        assert_eq!(
            again.clients[0].unknown.get("future"),
            Some(&serde_json::json!(3))
        );
    }

    #[test]
    fn corrupt_file_is_an_error_naming_it_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        fs::write(&path, b"{not json").unwrap();
        let err = State::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
        assert!(err.contains("corrupt"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"{not json");
    }

    #[test]
    fn missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(State::load(dir.path()).unwrap().is_none());
    }
}
