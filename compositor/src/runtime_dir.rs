//! Where the Wayland socket lives.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use tracing::{info, warn};

use crate::Error;

/// The runtime directory; a private one made by us is removed on drop.
#[derive(Debug)]
pub(crate) struct RuntimeDir {
    path: PathBuf,
    owned: bool,
}

impl RuntimeDir {
    /// Uses `explicit`, else `XDG_RUNTIME_DIR`, else creates a private 0700 directory.
    pub(crate) fn resolve(explicit: Option<PathBuf>) -> Result<Self, Error> {
        if let Some(path) =
            explicit.or_else(|| std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from))
        {
            if !path.is_dir() {
                return Err(Error::RuntimeDir {
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
                    path,
                });
            }
            return Ok(Self { path, owned: false });
        }
        Self::create_private()
    }

    fn create_private() -> Result<Self, Error> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let uid = unsafe { libc::getuid() };
        let base = std::env::temp_dir();
        let mut last_err = None;
        for _ in 0..16 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!(
                "punktfunk-runtime-{uid}-{}-{n}",
                std::process::id()
            ));
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    info!(path = %path.display(), "XDG_RUNTIME_DIR is unset; created a private runtime directory");
                    return Ok(Self { path, owned: true });
                }
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => last_err = Some(err),
                Err(source) => return Err(Error::RuntimeDir { path, source }),
            }
        }
        Err(Error::RuntimeDir {
            path: base,
            source: last_err.unwrap_or_else(|| std::io::Error::other("no free directory name")),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        if self.owned {
            if let Err(err) = std::fs::remove_dir_all(&self.path) {
                warn!(?err, path = %self.path.display(), "cannot remove the private runtime directory");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn private_dir_is_0700_and_removed_on_drop() {
        let dir = RuntimeDir::create_private().unwrap();
        let path = dir.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn explicit_dir_is_kept() {
        let dir = RuntimeDir::create_private().unwrap();
        let explicit = RuntimeDir::resolve(Some(dir.path().to_path_buf())).unwrap();
        assert_eq!(explicit.path(), dir.path());
        drop(explicit);
        assert!(dir.path().exists());
    }

    #[test]
    fn missing_explicit_dir_is_an_error() {
        let missing = std::env::temp_dir().join("punktfunk-no-such-runtime-dir");
        assert!(matches!(
            RuntimeDir::resolve(Some(missing)),
            Err(Error::RuntimeDir { .. })
        ));
    }
}
