//! `config.toml`: the file the host starts from, and the console's edits of it (an app as the
//! management API receives it, in JSON, put into or removed from the user's text).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use store::config::Config;
use store::config_edit::{self, AppFields};

fuzz_target!(|data: &[u8]| {
    let (text, app) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let parsed = Config::parse(text, Path::new("config.toml"));
    let Some(app) = app.and_then(|a| serde_json::from_slice::<AppFields>(a).ok()) else {
        return;
    };
    if let Ok(edited) = config_edit::put_app(text, None, &app) {
        let _ = Config::parse(&edited, Path::new("config.toml"));
        // What was put in can be taken out again, leaving a file that parses as before.
        let removed = config_edit::remove_app(&edited, &app.name).expect("the app put in is there");
        if parsed.is_ok() {
            assert!(
                Config::parse(&removed, Path::new("config.toml")).is_ok(),
                "{removed}"
            );
        }
    }
    let _ = config_edit::remove_app(text, &app.name);
    let _ = config_edit::set_app_image(text, &app.name, "");
});
