//! Copies of what the host's parsers read from clients, for the fuzzers' seed corpora
//! (`fuzz/corpus`, `scripts/fuzz-seeds.sh`).
//!
//! Off unless `PUNKTFUNK_FUZZ_CORPUS` names a directory when the host starts; then each input is
//! written, after decryption where the parser sees plaintext, to `DIR/<fuzz target>/<hash>`, in
//! the form that target reads, at most [`MAX_PER_TARGET`] per target. Never set it on a host
//! clients really use: the files hold what they sent, keys and PINs' proofs included.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// Most inputs kept per target in one run.
pub const MAX_PER_TARGET: usize = 300;

fn dir() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os("PUNKTFUNK_FUZZ_CORPUS").map(PathBuf::from))
        .as_ref()
}

/// Whether inputs are being recorded.
pub fn enabled() -> bool {
    dir().is_some()
}

/// Records `parts`, back to back, as one input of the fuzz target `target`.
pub fn record(target: &'static str, parts: &[&[u8]]) {
    let Some(dir) = dir() else {
        return;
    };
    static COUNTS: Mutex<Option<HashMap<&'static str, usize>>> = Mutex::new(None);
    {
        let mut counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts
            .get_or_insert_with(HashMap::new)
            .entry(target)
            .or_default();
        if *n >= MAX_PER_TARGET {
            return;
        }
        *n += 1;
    }
    let bytes = parts.concat();
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    let dir = dir.join(target);
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{:016x}", h.finish())), &bytes));
    if let Err(e) = written {
        tracing::warn!(%e, dir = %dir.display(), "cannot record a fuzz seed");
    }
}
