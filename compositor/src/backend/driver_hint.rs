//! What a machine's GPU driver is missing for the GPU path, where the driver itself does not
//! say: NVIDIA's GBM, which buffers shared with games and the frames' ring are made with, needs
//! the driver's DRM module with kernel modesetting on (`nvidia-drm.modeset=1`), and without that
//! module the GPU has no render node at all. Added to the log line of each fallback it explains.

use std::path::Path;

/// What the driver lacks, read from the sysfs tree at `sys` (`/sys`): `None` where nothing
/// known is missing (no NVIDIA driver loaded, or its DRM module with modesetting on).
pub(crate) fn missing(sys: &Path) -> Option<String> {
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

/// `reason`, followed by what the machine's driver is missing where [`missing`] knows.
pub(crate) fn explain(reason: impl Into<String>) -> String {
    let reason = reason.into();
    match missing(Path::new("/sys")) {
        Some(hint) => format!("{reason} ({hint})"),
        None => reason,
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
            missing(none.path()),
            None,
            "no NVIDIA driver: nothing to say"
        );

        let no_drm = sysfs(&[], &["module/nvidia"]);
        let hint = missing(no_drm.path()).expect("nvidia without nvidia_drm");
        assert!(hint.contains("modprobe nvidia-drm modeset=1"), "{hint}");

        let off = sysfs(
            &[("module/nvidia_drm/parameters/modeset", "N\n")],
            &["module/nvidia"],
        );
        let hint = missing(off.path()).expect("modeset=N");
        assert!(hint.contains("options nvidia-drm modeset=1"), "{hint}");

        let on = sysfs(
            &[("module/nvidia_drm/parameters/modeset", "Y\n")],
            &["module/nvidia"],
        );
        assert_eq!(missing(on.path()), None, "modeset=Y: nothing missing");
    }
}
