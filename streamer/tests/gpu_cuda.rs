//! The CUDA hand-off for NVENC: frames converted on the GPU into the compositor's Y'CbCr textures,
//! registered with CUDA through GL interop and copied on the GPU, into CPU memory and into
//! a CUDA frame of FFmpeg's pool (what `*_nvenc` encodes), hold what the compositor reads back
//! of those textures, byte for byte, and that is the CPU's conversion within one code.
//!
//! Needs an NVIDIA GPU with its driver and a render node, so it is ignored in a plain
//! `cargo test`; `scripts/gpu-check.sh` runs it (its `cuda` stage):
//!
//! ```sh
//! cargo test -p streamer --test gpu_cuda -- --include-ignored
//! ```

mod gpu_common;

use std::time::Duration;

use compositor::{FrameData, YuvLayout, YuvStorage};
use gpu_common::PatternOnGpu;
use streamer::encode::cuda::{Cuda, CudaCopier, CudaFrames, PlaneDestination};
use streamer::encode::Colorspace;

const T: Duration = Duration::from_secs(30);

#[test]
#[ignore = "needs an NVIDIA GPU with a render node (scripts/gpu-check.sh)"]
fn frames_reach_cuda_from_the_gpu_as_the_compositor_converted_them() {
    let node = gpu_common::render_node().expect("a render node in /dev/dri");
    let cuda = Cuda::open(Some(&node)).expect("CUDA on the GPU of the render node");
    let name = cuda.name().to_string();
    let (width, height) = (640, 480);
    let pattern = PatternOnGpu::start(Some(node), (width, height), false, Duration::from_secs(60))
        .expect("GLES on the render node");
    let frame = pattern.dmabuf_frame(T);
    let FrameData::Dmabuf(gpu) = &frame.data else {
        unreachable!("a dmabuf frame");
    };
    let pixels = frame.to_vec().expect("the frame read back");
    let mut copier = CudaCopier::new(cuda);
    for layout in YuvLayout::ALL {
        let conversion = Colorspace::Rec709Limited.yuv_conversion(layout);
        let image = gpu
            .to_yuv_image(&conversion, YuvStorage::Texture)
            .expect("converting into a texture");
        let want = image.read().expect("reading the texture back");
        // The conversion on this GPU is the CPU's, within one code.
        let cpu = compositor::convert_on_cpu(
            &pixels,
            width,
            height,
            frame.stride() as usize,
            &conversion,
        )
        .unwrap();
        for plane in 0..layout.planes() {
            for row in 0..layout.plane_rows(plane, height) {
                for i in 0..width {
                    let (g, c) = (want.sample(plane, row, i), cpu.sample(plane, row, i));
                    assert!(
                        g.unwrap().abs_diff(c.unwrap()) <= 1,
                        "{layout:?}: plane {plane} row {row} sample {i} is {g:?} on the GPU, \
                         {c:?} on the CPU"
                    );
                }
            }
        }
        let want = gpu_common::planes(&want);
        // Into CPU memory.
        let row = image.row_bytes() as usize;
        let mut host: Vec<Vec<u8>> = want.iter().map(|p| vec![0; p.len()]).collect();
        let destinations: Vec<PlaneDestination> = host
            .iter_mut()
            .map(|p| PlaneDestination::Host {
                ptr: p.as_mut_ptr(),
                pitch: row,
                len: p.len(),
            })
            .collect();
        // SAFETY: each destination is a vector of ours, of its plane's rows at `row` bytes.
        unsafe { copier.copy(&image, &destinations) }.expect("copying through CUDA");
        for (plane, (got, want)) in host.iter().zip(&want).enumerate() {
            assert!(
                got == want,
                "{layout:?}: plane {plane} differs after CUDA's copy"
            );
        }
        // Into a CUDA frame of FFmpeg's pool, and back, by the same copier (one registration
        // of each texture).
        let mut frames = CudaFrames::new(copier, layout, width, height).expect("CUDA frames");
        let through = frames.planes(&image).expect("a CUDA frame");
        copier = frames.into_copier();
        for (plane, (got, want)) in through.iter().zip(&want).enumerate() {
            assert!(
                got == want,
                "{layout:?}: plane {plane} differs in the CUDA frame"
            );
        }
    }
    drop(frame);
    // Frame after frame in one layout, as a stream goes: the pool's four textures come round
    // again (three images held at a time), each registered with CUDA once, and each copy holds
    // the frame just converted into its texture, not what CUDA saw there before.
    let conversion = Colorspace::Rec709Limited.yuv_conversion(YuvLayout::Nv12);
    let mut frames =
        CudaFrames::new(copier, YuvLayout::Nv12, width, height).expect("a pool of CUDA frames");
    let rx = pattern.comp.frames();
    let (mut held, mut last_seq, mut last_planes) = (std::collections::VecDeque::new(), 0, None);
    for n in 0..8 {
        let frame = loop {
            let frame = rx.recv_timeout(T).expect("a frame of the test pattern");
            if frame.seq > last_seq {
                break frame;
            }
        };
        last_seq = frame.seq;
        let FrameData::Dmabuf(gpu) = &frame.data else {
            panic!("frame {} is not a dmabuf", frame.seq);
        };
        let image = gpu
            .to_yuv_image(&conversion, YuvStorage::Texture)
            .expect("converting");
        let want = gpu_common::planes(&image.read().expect("reading the texture back"));
        let through = frames.planes(&image).expect("a CUDA frame");
        assert!(
            through == want,
            "frame {n} (seq {}): the CUDA frame is not the texture's picture",
            frame.seq
        );
        assert!(
            last_planes.as_ref() != Some(&want),
            "frames {} and the one before converted alike: the check would not see a stale copy",
            frame.seq
        );
        last_planes = Some(want);
        held.push_back(image);
        if held.len() > 3 {
            held.pop_front();
        }
    }
    drop(held);
    println!(
        "[cuda] {name}: {width}x{height} frames in NV12, 4:4:4, P010 and 4:4:4 16-bit reached \
         CUDA and a CUDA frame equal to the compositor's conversion, also frame after frame \
         through textures registered once"
    );
    drop(rx);
    pattern.stop();
}
