//! What keeps the GPU path from a machine's GPU where the driver itself does not say: a render
//! node this user may not open (it belongs to the `render` group), and NVIDIA's driver without
//! what its GBM needs (GBM makes the buffers games hand over and the frames' ring): its DRM module
//! with kernel modesetting on (`nvidia-drm.modeset=1`); without that module the GPU has no render
//! node at all. Added to the log line of each fallback it explains.

use std::io;
use std::path::{Path, PathBuf};

/// What NVIDIA's driver lacks, read from the sysfs tree at `sys` (`/sys`): `None` where nothing
/// known is missing (no NVIDIA driver loaded, or its DRM module with modesetting on).
fn nvidia(sys: &Path) -> Option<String> {
    if !sys.join("module/nvidia").exists() {
        return None;
    }
    let drm = sys.join("module/nvidia_drm");
    if !drm.exists() {
        return Some(
            "the NVIDIA driver is loaded without its DRM module, so the GPU has no render node: \
             load it with `modprobe nvidia-drm modeset=1`"
                .into(),
        );
    }
    let modeset = std::fs::read_to_string(drm.join("parameters/modeset")).ok()?;
    matches!(modeset.trim(), "N" | "0").then(|| {
        "nvidia-drm runs without modeset=1, which NVIDIA's GBM needs: put \
         `options nvidia-drm modeset=1` into a file in /etc/modprobe.d and reload the driver \
         (or reboot)"
            .into()
    })
}

/// The render nodes in `dev` (`/dev/dri`), each with whether this process could open it for
/// reading and writing, as a renderer does.
fn render_nodes(dev: &Path) -> Vec<(PathBuf, io::Result<()>)> {
    let Ok(entries) = std::fs::read_dir(dev) else {
        return Vec::new();
    };
    let mut nodes: Vec<_> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("renderD"))
        .map(|e| {
            let path = e.path();
            let opened = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map(drop);
            (path, opened)
        })
        .collect();
    nodes.sort_by(|a, b| a.0.cmp(&b.0));
    nodes
}

/// The render nodes among `nodes` that this user was refused, and what to do about it.
fn refused(nodes: &[(PathBuf, io::Result<()>)]) -> Option<String> {
    let refused: Vec<_> = nodes
        .iter()
        .filter(|(_, opened)| {
            opened
                .as_ref()
                .is_err_and(|e| e.kind() == io::ErrorKind::PermissionDenied)
        })
        .map(|(path, _)| path.display().to_string())
        .collect();
    (!refused.is_empty()).then(|| {
        format!(
            "this user may not open {}: add it to the node's group (`render` on Debian and \
             Ubuntu: `sudo usermod -aG render USER`) and log in again",
            refused.join(", ")
        )
    })
}

/// `reason`, followed by what keeps the GPU path from this machine's GPU where that is known.
pub(crate) fn explain(reason: impl Into<String>) -> String {
    let reason = reason.into();
    let hints: Vec<String> = [
        refused(&render_nodes(Path::new("/dev/dri"))),
        nvidia(Path::new("/sys")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if hints.is_empty() {
        reason
    } else {
        format!("{reason} ({})", hints.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sysfs tree with the given files (path, content); directories for the rest.
    fn sysfs(files: &[(&str, &str)], dirs: &[&str]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for dir in dirs {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        for (path, content) in files {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        root
    }

    #[test]
    fn an_nvidia_driver_without_modesetting_is_named_and_nothing_else_is() {
        let none = sysfs(&[], &["module/amdgpu"]);
        assert_eq!(
            nvidia(none.path()),
            None,
            "no NVIDIA driver: nothing to say"
        );

        let no_drm = sysfs(&[], &["module/nvidia"]);
        let hint = nvidia(no_drm.path()).expect("nvidia without nvidia_drm");
        assert!(hint.contains("modprobe nvidia-drm modeset=1"), "{hint}");

        let off = sysfs(
            &[("module/nvidia_drm/parameters/modeset", "N\n")],
            &["module/nvidia"],
        );
        let hint = nvidia(off.path()).expect("modeset=N");
        assert!(hint.contains("options nvidia-drm modeset=1"), "{hint}");

        let on = sysfs(
            &[("module/nvidia_drm/parameters/modeset", "Y\n")],
            &["module/nvidia"],
        );
        assert_eq!(nvidia(on.path()), None, "modeset=Y: nothing missing");
    }

    #[test]
    fn render_nodes_this_user_may_not_open_are_named_with_the_group_to_join() {
        let dev = sysfs(
            &[("renderD128", ""), ("renderD129", ""), ("card0", "")],
            &[],
        );
        let nodes = render_nodes(dev.path());
        let names: Vec<_> = nodes.iter().map(|(p, _)| p.file_name().unwrap()).collect();
        assert_eq!(
            names,
            ["renderD128", "renderD129"],
            "render nodes only, in order"
        );
        assert!(nodes.iter().all(|(_, opened)| opened.is_ok()));
        assert_eq!(refused(&nodes), None, "every node opens: nothing to say");

        // As a user outside the `render` group sees them (root opens every file).
        let denied = || Err(io::Error::from(io::ErrorKind::PermissionDenied));
        let nodes = [
            (PathBuf::from("/dev/dri/renderD128"), denied()),
            (PathBuf::from("/dev/dri/renderD129"), Ok(())),
            (
                PathBuf::from("/dev/dri/renderD130"),
                Err(io::Error::from(io::ErrorKind::NotFound)),
            ),
        ];
        let hint = refused(&nodes).expect("a node refused");
        assert!(
            hint.starts_with("this user may not open /dev/dri/renderD128:"),
            "{hint}"
        );
        assert!(hint.contains("usermod -aG render"), "{hint}");
        assert!(
            !hint.contains("renderD129") && !hint.contains("renderD130"),
            "{hint}"
        );
        assert_eq!(render_nodes(&dev.path().join("none")).len(), 0);
    }
}
