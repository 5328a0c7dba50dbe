//! The VAAPI hand-off for `*_vaapi`: frames converted on the GPU into the compositor's Y'CbCr
//! buffers, imported as VA surfaces as they are (NV12 and P010), hold what the compositor reads
//! back of those buffers, byte for byte, also when a buffer comes round again with another
//! picture; and each buffer goes back to the compositor once the surface's frame is let go.
//!
//! Needs a render node with a VAAPI driver (on the virtual GPU, Mesa's for virgl, which imports
//! and reads surfaces but encodes nothing), so it is ignored in a plain `cargo test` and run on
//! a virtual GPU by `scripts/test.sh`:
//!
//! ```sh
//! scripts/gpu-vm.sh -- cargo test -p streamer --test gpu_vaapi -- --include-ignored
//! ```
//!
//! Run that way, a missing render node or VAAPI driver fails it.

mod gpu_common;

use std::sync::Arc;
use std::time::Duration;

use compositor::{FrameData, YuvLayout, YuvStorage};
use gpu_common::PatternOnGpu;
use streamer::encode::vaapi::SurfaceReader;
use streamer::encode::Colorspace;

const T: Duration = Duration::from_secs(120);

/// Whether the render node `node` is a virtio-gpu (virgl): its PCI vendor is virtio's.
fn is_virtio(node: &std::path::Path) -> bool {
    let Some(name) = node.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    std::fs::read_to_string(format!("/sys/class/drm/{name}/device/vendor"))
        .is_ok_and(|v| v.trim() == "0x1af4")
}

#[test]
#[ignore = "needs a render node with a VAAPI driver (scripts/gpu-vm.sh)"]
fn frames_reach_vaapi_surfaces_as_the_compositor_converted_them() {
    let node = gpu_common::render_node().expect("a render node in /dev/dri");
    let virgl = is_virtio(&node);
    let (width, height) = (640, 480);
    let pattern = PatternOnGpu::start(Some(node.clone()), (width, height), false, T)
        .expect("GLES on the render node");
    let frame = pattern.dmabuf_frame(T);
    let FrameData::Dmabuf(gpu) = &frame.data else {
        unreachable!("a dmabuf frame");
    };
    let convert = |layout: YuvLayout, colorspace: Colorspace| {
        gpu.to_yuv_image(&colorspace.yuv_conversion(layout), YuvStorage::Buffer)
            .unwrap_or_else(|err| panic!("converting into a {layout:?} buffer: {err}"))
    };
    for layout in [YuvLayout::Nv12, YuvLayout::P010] {
        let mut reader = SurfaceReader::new(&node, layout, width, height)
            .unwrap_or_else(|err| panic!("VA surfaces on {}: {err}", node.display()));
        // Eight conversions, the colour space changing each time, each image dropped before the
        // next: the pool's buffers come round again, and the surface a buffer was imported as
        // must show the newer picture.
        let spaces = [Colorspace::Rec709Limited, Colorspace::Rec601Full];
        for (i, &colorspace) in spaces.iter().cycle().take(8).enumerate() {
            let image = Arc::new(convert(layout, colorspace));
            image.wait_rendered().expect("the conversion");
            let want = gpu_common::planes(&image.read().expect("reading the buffer back"));
            // Not all one value: a test pattern, and the chroma of its colour bars.
            assert!(want[0].iter().any(|&b| b != want[0][0]), "{layout:?}");
            assert!(want[1].iter().any(|&b| b != want[1][0]), "{layout:?}");
            let got = reader
                .planes(&image)
                .unwrap_or_else(|err| panic!("{layout:?} through a VA surface: {err}"));
            assert_eq!(got.len(), want.len());
            // virgl makes one host resource of a dmabuf and imports each plane of it as that
            // whole resource, ignoring the plane's offset: only the luma plane can be checked
            // there (the offsets are checked in the unit tests of `vaapi`).
            let checked = if virgl { 1 } else { want.len() };
            for (plane, (got, want)) in got.iter().zip(&want).enumerate().take(checked) {
                if got != want {
                    let at = got.iter().zip(want).position(|(g, w)| g != w);
                    panic!(
                        "{layout:?} {colorspace:?}, conversion {i}: plane {plane} differs in the \
                         VA surface, first at byte {at:?} of {}",
                        want.len()
                    );
                }
            }
            // The surface's frame let go of the image: ours is the last reference.
            let image = Arc::into_inner(image).expect("the VA surface's frame let the image go");
            drop(image);
        }
        // Every buffer went back to the compositor: four conversions can be held at once.
        let held: Vec<_> = (0..4)
            .map(|_| convert(layout, Colorspace::Rec709Limited))
            .collect();
        drop(held);
    }
    let planes = if virgl {
        "luma planes (virgl)"
    } else {
        "planes"
    };
    println!(
        "[vaapi] {width}x{height} frames in NV12 and P010 reached VA surfaces on {}, their \
         {planes} equal to the compositor's conversion",
        node.display()
    );
    drop(frame);
    pattern.stop();
}
