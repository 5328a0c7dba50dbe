//! What the host reads from and writes to disk, without the host: `config.toml` ([`config`]),
//! the edits the console makes to it ([`config_edit`]), and `state.json` with the host identity
//! ([`state`]). Each parser takes text or bytes, so it can be tested and fuzzed on its own.
#![warn(missing_docs)]

pub mod config;
pub mod config_edit;
pub mod state;
