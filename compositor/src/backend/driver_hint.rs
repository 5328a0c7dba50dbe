//! What keeps the GPU path from a machine's GPU where the driver itself does not say: a render
//! node this user may not open (it belongs to the `render` group), and NVIDIA's driver without
//! what its GBM needs (GBM makes the buffers games hand over and the frames' ring): its DRM module
//! with kernel modesetting on (`nvidia-drm.modeset=1`); without that module the GPU has no render
//! node at all. Added to the log line of each fallback it explains.

use std::io;
use std::path::{Path, PathBuf};

/// What NVIDIA's driver lacks, read from the sysfs tree at `sys` (`/sys`): `None` where nothing
/// known is missing (no NVIDIA driver loaded, or its DRM module with modesetting on), or where
/// `node` is a GPU of another driver (a machine whose NVIDIA card only computes).
fn nvidia(sys: &Path, node: Option<&Path>) -> Option<String> {
    if !sys.join("module/nvidia").exists() {
        return None;
    }
    if let Some(driver) = node.and_then(|node| node_driver(sys, node)) {
        if driver != "nvidia" {
            return None;
        }
    }
    let drm = sys.join("module/nvidia_drm");
    if !drm.exists() {
        return Some(
            "the NVIDIA driver is loaded without its DRM module, so the GPU has no render node: \
             load it with `modprobe nvidia-drm modeset=1`"
                .into(),
        );
    }
    let fix = "put `options nvidia-drm modeset=1` into a file in /etc/modprobe.d and reload the \
               driver (or reboot)";
    // Only root may read the parameter (NVIDIA declares it 0400).
    match std::fs::read_to_string(drm.join("parameters/modeset")) {
        Ok(modeset) => matches!(modeset.trim(), "N" | "0")
            .then(|| format!("nvidia-drm runs without modeset=1, which NVIDIA's GBM needs: {fix}")),
        Err(_) => Some(format!(
            "NVIDIA's GBM needs nvidia-drm with modeset=1: where \
             `sudo cat /sys/module/nvidia_drm/parameters/modeset` prints N, {fix}"
        )),
    }
}

/// The kernel driver of the GPU at `node` (`/dev/dri/renderD128`), from the sysfs tree `sys`.
fn node_driver(sys: &Path, node: &Path) -> Option<String> {
    let name = node.file_name()?;
    let link = std::fs::read_link(sys.join("class/drm").join(name).join("device/driver")).ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
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

/// `reason`, followed by what keeps the GPU path from this machine's GPU where that is known:
/// from the GPU at `node` where the fallback concerns one, else from any.
pub(crate) fn explain(reason: impl Into<String>, node: Option<&Path>) -> String {
    let reason = reason.into();
    let mut nodes = render_nodes(Path::new("/dev/dri"));
    if let Some(node) = node {
        nodes.retain(|(path, _)| path == node);
    }
    let hints: Vec<String> = [refused(&nodes), nvidia(Path::new("/sys"), node)]
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
            nvidia(none.path(), None),
            None,
            "no NVIDIA driver: nothing to say"
        );

        let no_drm = sysfs(&[], &["module/nvidia"]);
        let hint = nvidia(no_drm.path(), None).expect("nvidia without nvidia_drm");
        assert!(hint.contains("modprobe nvidia-drm modeset=1"), "{hint}");

        let off = sysfs(
            &[("module/nvidia_drm/parameters/modeset", "N\n")],
            &["module/nvidia"],
        );
        let hint = nvidia(off.path(), None).expect("modeset=N");
        assert!(hint.contains("options nvidia-drm modeset=1"), "{hint}");

        let on = sysfs(
            &[("module/nvidia_drm/parameters/modeset", "Y\n")],
            &["module/nvidia"],
        );
        assert_eq!(nvidia(on.path(), None), None, "modeset=Y: nothing missing");

        // A user other than root may not read the parameter: how to look is the hint.
        let unreadable = sysfs(&[], &["module/nvidia", "module/nvidia_drm/parameters"]);
        let hint = nvidia(unreadable.path(), None).expect("modeset unknown");
        assert!(
            hint.contains("sudo cat /sys/module/nvidia_drm/parameters/modeset"),
            "{hint}"
        );
    }

    #[test]
    fn on_a_machine_with_an_nvidia_card_beside_another_gpu_only_the_nvidia_node_gets_its_hint() {
        let sys = sysfs(
            &[("module/nvidia_drm/parameters/modeset", "N\n")],
            &[
                "module/nvidia",
                "bus/pci/drivers/amdgpu",
                "bus/pci/drivers/nvidia",
            ],
        );
        for (node, driver) in [("renderD128", "amdgpu"), ("renderD129", "nvidia")] {
            let device = sys.path().join("class/drm").join(node).join("device");
            std::fs::create_dir_all(&device).unwrap();
            let target = sys.path().join("bus/pci/drivers").join(driver);
            std::os::unix::fs::symlink(target, device.join("driver")).unwrap();
        }
        let amd = Path::new("/dev/dri/renderD128");
        assert_eq!(node_driver(sys.path(), amd).as_deref(), Some("amdgpu"));
        assert_eq!(
            nvidia(sys.path(), Some(amd)),
            None,
            "the AMD GPU's fallback"
        );
        let hint = nvidia(sys.path(), Some(Path::new("/dev/dri/renderD129")));
        assert!(hint.is_some_and(|h| h.contains("modeset=1")));
        // A node sysfs does not know (or none): the machine's driver is what there is to go by.
        assert!(nvidia(sys.path(), Some(Path::new("/dev/dri/renderD130"))).is_some());
        assert!(nvidia(sys.path(), None).is_some());
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
