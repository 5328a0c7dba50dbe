//! The Steam app a process was launched as, for windows that do not say so with `STEAM_GAME`
//! (native Wayland games, games without Steam's overlay).
//!
//! Steam starts every game under its `reaper` process, with the arguments
//! `reaper SteamLaunch AppId=<id> -- <the game's command>`. gamescope walks from a window's
//! process up its ancestors and takes the app id of the outermost such `reaper`; so does this.

use std::path::Path;

/// The app id of the outermost Steam `reaper` among `pid` and its ancestors; 0 for none.
pub(crate) fn launched_app_id(pid: u32) -> u32 {
    launched_app_id_in(Path::new("/proc"), pid)
}

fn launched_app_id_in(proc: &Path, pid: u32) -> u32 {
    let mut found = 0;
    let mut next = pid;
    // A bound against a cycle in a changing process table.
    for _ in 0..256 {
        if next == 0 {
            break;
        }
        let dir = proc.join(next.to_string());
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            break;
        };
        let Some((name, parent)) = parse_stat(&stat) else {
            break;
        };
        if name == "reaper" {
            if let Ok(cmdline) = std::fs::read(dir.join("cmdline")) {
                if let Some(id) = reaper_app_id(&cmdline) {
                    found = id;
                }
            }
        }
        next = parent;
    }
    found
}

/// The command name and the parent pid from `/proc/<pid>/stat` ("pid (comm) state ppid ...";
/// the name may hold spaces and parentheses, so it ends at the last ')').
fn parse_stat(stat: &str) -> Option<(&str, u32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let parent = stat
        .get(close + 1..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((name, parent))
}

/// `AppId=<id>` after `SteamLaunch` among a reaper's arguments (NUL-separated), before `--`.
fn reaper_app_id(cmdline: &[u8]) -> Option<u32> {
    let mut steam_launch = false;
    let mut found = None;
    for arg in cmdline.split(|&b| b == 0).skip(1) {
        match arg {
            b"--" => break,
            b"SteamLaunch" => steam_launch = true,
            _ => {
                let id = arg
                    .strip_prefix(b"AppId=")
                    .and_then(|id| std::str::from_utf8(id).ok())
                    .and_then(|id| id.parse::<u32>().ok())
                    .filter(|&id| id != 0);
                if let (Some(id), true) = (id, steam_launch) {
                    found = Some(id);
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaper_arguments() {
        let args = |a: &[&str]| a.join("\0").into_bytes();
        assert_eq!(
            reaper_app_id(&args(&["reaper", "SteamLaunch", "AppId=570", "--", "game"])),
            Some(570)
        );
        // AppId without SteamLaunch before it, after `--`, zero or not a number.
        assert_eq!(reaper_app_id(&args(&["reaper", "AppId=570", "--"])), None);
        assert_eq!(
            reaper_app_id(&args(&["reaper", "SteamLaunch", "--", "AppId=570"])),
            None
        );
        assert_eq!(
            reaper_app_id(&args(&["reaper", "SteamLaunch", "AppId=0"])),
            None
        );
        assert_eq!(
            reaper_app_id(&args(&["reaper", "SteamLaunch", "AppId=x"])),
            None
        );
        assert_eq!(reaper_app_id(b""), None);
    }

    #[test]
    fn stat_lines() {
        assert_eq!(
            parse_stat("42 (reaper) S 7 42 42 0 -1"),
            Some(("reaper", 7))
        );
        assert_eq!(parse_stat("42 (a (b) c) S 9 42"), Some(("a (b) c", 9)));
        assert_eq!(parse_stat("42 reaper S 7"), None);
        assert_eq!(parse_stat("42 (reaper)"), None);
    }

    #[test]
    fn the_outermost_reaper_wins() {
        let dir = std::env::temp_dir().join(format!("punktfunk-launch-{}", std::process::id()));
        let process = |pid: u32, name: &str, parent: u32, args: &[&str]| {
            let p = dir.join(pid.to_string());
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("stat"), format!("{pid} ({name}) S {parent} 0 0")).unwrap();
            std::fs::write(p.join("cmdline"), args.join("\0")).unwrap();
        };
        process(10, "game", 9, &["game"]);
        process(
            9,
            "reaper",
            8,
            &["reaper", "SteamLaunch", "AppId=7", "--", "game"],
        );
        process(8, "sh", 5, &["sh"]);
        process(
            5,
            "reaper",
            1,
            &["reaper", "SteamLaunch", "AppId=5", "--", "sh"],
        );
        process(1, "init", 0, &["init"]);
        process(20, "other", 1, &["other"]);
        assert_eq!(launched_app_id_in(&dir, 10), 5);
        assert_eq!(launched_app_id_in(&dir, 9), 5);
        assert_eq!(launched_app_id_in(&dir, 20), 0);
        // Gone.
        assert_eq!(launched_app_id_in(&dir, 99), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
