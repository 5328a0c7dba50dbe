//! What the streamer's GPU tests and benches share: a compositor on a render node rendering the
//! test pattern into dmabuf frames.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use compositor::{
    Compositor, CompositorHandle, CompositorOptions, Frame, FrameData, Mode, RendererChoice,
    YuvPicture,
};

/// The first render node in `/dev/dri`, if there is one.
#[allow(dead_code)]
pub(crate) fn render_node() -> Option<PathBuf> {
    std::fs::read_dir("/dev/dri").ok().and_then(|d| {
        d.flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains("renderD"))
    })
}

/// The rows of each plane of `picture`, `row_bytes` each, one after another.
#[allow(dead_code)]
pub(crate) fn planes(picture: &YuvPicture) -> Vec<Vec<u8>> {
    let layout = picture.layout();
    (0..layout.planes())
        .map(|p| {
            let plane = picture.plane(p).unwrap();
            plane
                .chunks(picture.stride())
                .flat_map(|row| row[..picture.row_bytes()].to_vec())
                .collect()
        })
        .collect()
}

/// A compositor rendering with GLES on `node` (the first hardware node that works, for `None`)
/// into dmabuf frames of `width` x `height`, without Xwayland.
pub(crate) fn compositor_on(
    node: Option<PathBuf>,
    (width, height): (u32, u32),
) -> CompositorHandle {
    Compositor::spawn(CompositorOptions {
        renderer: RendererChoice::Gles,
        render_node: node,
        gpu_frames: true,
        xwayland: false,
        ..CompositorOptions::new(Mode {
            width,
            height,
            refresh_mhz: 60_000,
        })
    })
    .expect("starting the compositor")
}

/// The compositor and the test pattern in it, which runs in this process (one at a time: it
/// finds the compositor through the environment).
pub(crate) struct PatternOnGpu {
    /// Shared, for a stream's pipeline (which keeps only a weak reference).
    pub(crate) comp: Arc<CompositorHandle>,
    client: JoinHandle<()>,
}

impl PatternOnGpu {
    /// GLES on `node` (the first hardware node that works, for `None`) with dmabuf frames of
    /// `width` x `height`, and the test pattern running for `exit_after` (its moving band grey
    /// noise with `noise`). `None` where the compositor found no render node to render on.
    pub(crate) fn start(
        node: Option<PathBuf>,
        (width, height): (u32, u32),
        noise: bool,
        exit_after: Duration,
    ) -> Option<PatternOnGpu> {
        let comp = compositor_on(node, (width, height));
        if comp.renderer().render_node.is_none() {
            comp.shutdown();
            return None;
        }
        std::env::set_var("WAYLAND_DISPLAY", comp.socket_name());
        std::env::set_var("XDG_RUNTIME_DIR", comp.runtime_dir());
        let client = std::thread::spawn(move || {
            let _ = testpattern::run(testpattern::Options {
                noise,
                exit_after: Some(exit_after),
                ..Default::default()
            });
        });
        Some(PatternOnGpu {
            comp: Arc::new(comp),
            client,
        })
    }

    /// A frame of the pattern from the fifth on (the first may come before it has drawn), which
    /// has to be a dmabuf.
    #[allow(dead_code)]
    pub(crate) fn dmabuf_frame(&self, timeout: Duration) -> Frame {
        let rx = self.comp.frames();
        loop {
            let frame = rx
                .recv_timeout(timeout)
                .expect("a frame of the test pattern");
            if frame.seq >= 5 {
                assert!(
                    matches!(frame.data, FrameData::Dmabuf(_)),
                    "frame {} is not a dmabuf",
                    frame.seq
                );
                return frame;
            }
        }
    }

    /// Stops the compositor, and with it the pattern, once nothing else holds the compositor.
    pub(crate) fn stop(self) {
        match Arc::try_unwrap(self.comp) {
            Ok(comp) => comp.shutdown(),
            Err(_) => panic!("the compositor is still held; drop its other users first"),
        }
        drop(self.client.join());
    }
}
