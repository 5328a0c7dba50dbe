//! What the client keeps between runs: its certificate and the hosts it paired with.
//!
//! ```text
//! DIR/cert.pem     the client's self-signed certificate (presented to every host)
//! DIR/key.pem      its RSA key (mode 0600)
//! DIR/hosts.json   { "host:port": "<SHA-256 hex of the host certificate's DER>", ... }
//! ```
//!
//! Every file is written whole to a temporary file beside it and renamed into place, so a crash
//! leaves the old version or the new one, never half of one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use protocol::pairing::HostIdentity;

/// The state directory: `--state-dir`, else `$XDG_CONFIG_HOME/punktfunk-client`, else
/// `$HOME/.config/punktfunk-client`.
pub(crate) fn state_dir(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir);
    }
    let nonempty = |v: &str| std::env::var_os(v).filter(|s| !s.is_empty());
    if let Some(xdg) = nonempty("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(xdg).join("punktfunk-client"));
    }
    match nonempty("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".config/punktfunk-client")),
        None => bail!("neither XDG_CONFIG_HOME nor HOME is set: pass --state-dir"),
    }
}

/// The client's certificate and key, generated on first use.
pub(crate) fn load_or_create_identity(dir: &Path) -> anyhow::Result<HostIdentity> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() || key.exists() {
        let cert_pem =
            fs::read(&cert).with_context(|| format!("cannot read {}", cert.display()))?;
        let key_pem = fs::read(&key).with_context(|| format!("cannot read {}", key.display()))?;
        return HostIdentity::from_pem(&cert_pem, &key_pem).with_context(|| {
            format!(
                "{} and {} do not hold a certificate and its key",
                cert.display(),
                key.display()
            )
        });
    }
    create_dir(dir)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    // A day back, so that a host whose clock lags a little still finds it valid.
    let identity =
        HostIdentity::generate(now - 86_400).context("cannot generate the client certificate")?;
    write_atomic(&key, identity.key_pem(), 0o600)?;
    write_atomic(&cert, identity.cert_pem(), 0o644)?;
    Ok(identity)
}

/// The pinned host fingerprints, `hosts.json`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Pins {
    hosts: BTreeMap<String, String>,
}

impl Pins {
    /// Reads `DIR/hosts.json`; a missing file is an empty store.
    pub(crate) fn load(dir: &Path) -> anyhow::Result<Pins> {
        let path = dir.join("hosts.json");
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Pins::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let hosts: BTreeMap<String, String> = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a JSON object of \"host:port\": \"fingerprint\"",
                path.display()
            )
        })?;
        Ok(Pins { hosts })
    }

    /// The pinned fingerprint (lower-case hex) of `host` (`host:port`).
    pub(crate) fn get(&self, host: &str) -> Option<&str> {
        self.hosts.get(host).map(String::as_str)
    }

    /// Pins `host` to `fingerprint_hex`; returns the pin it replaced.
    pub(crate) fn insert(&mut self, host: &str, fingerprint_hex: &str) -> Option<String> {
        self.hosts
            .insert(host.to_owned(), fingerprint_hex.to_ascii_lowercase())
    }

    /// Writes `DIR/hosts.json` atomically.
    pub(crate) fn save(&self, dir: &Path) -> anyhow::Result<()> {
        create_dir(dir)?;
        let mut text = serde_json::to_string_pretty(&self.hosts)?;
        text.push('\n');
        write_atomic(&dir.join("hosts.json"), text.as_bytes(), 0o644)
    }
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it over `path`.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .context("a state file needs a name")?
        .to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn pins_round_trip_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert_eq!(Pins::load(&state).unwrap(), Pins::default());
        let mut pins = Pins::default();
        assert_eq!(pins.insert("box:48019", "AB01"), None);
        assert_eq!(pins.insert("[::1]:40030", "cd02"), None);
        pins.save(&state).unwrap();
        let loaded = Pins::load(&state).unwrap();
        assert_eq!(loaded.get("box:48019"), Some("ab01"));
        assert_eq!(loaded.get("[::1]:40030"), Some("cd02"));
        assert_eq!(loaded.get("box:1"), None);

        let text = fs::read_to_string(state.join("hosts.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["box:48019"], "ab01");

        let mut again = loaded.clone();
        assert_eq!(again.insert("box:48019", "ef03"), Some("ab01".into()));
        again.save(&state).unwrap();
        assert_eq!(Pins::load(&state).unwrap().get("box:48019"), Some("ef03"));
        // Nothing left behind by the atomic writes.
        let names: Vec<_> = fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["hosts.json"]);
    }

    #[test]
    fn a_broken_pin_store_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hosts.json"), "[1, 2]").unwrap();
        let err = Pins::load(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("not a JSON object"), "{err:#}");
    }

    #[test]
    fn identity_is_made_once_with_a_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_identity(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = load_or_create_identity(dir.path()).unwrap();
        assert_eq!(first.cert_der(), second.cert_der());
    }

    #[test]
    fn state_dir_prefers_the_flag() {
        assert_eq!(
            state_dir(Some("/x/y".into())).unwrap(),
            PathBuf::from("/x/y")
        );
    }
}
